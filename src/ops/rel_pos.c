/* rel_pos.c: Shaw et al. (2018) relative position representations, graph ops
 * REL_LOGITS and REL_VALUES (include/attn/positions.h; docs/positions.md).
 *
 * Both index a table of R = 2K + 1 rows by the clipped distance
 *   j(t, s) = clip(s - (t + offset), -K, K) + K.
 *
 * REL_LOGITS: in[0] q [B, H, T, D], in[1] rel_k [R, D] (both contiguous);
 *   iarg[0] S, iarg[1] offset -> out [B, H, T, S],
 *   out[n, s] = q[n] . rel_k[j(t, s)]       (n = the row (b, h, t)).
 * REL_VALUES: in[0] p [B, H, T, S], in[1] rel_v [R, Dv] (contiguous);
 *   iarg[1] offset -> out [B, H, T, Dv],
 *   out[n] = sum_s p[n, s] rel_v[j(t, s)].
 * Nothing saved.
 *
 * For one row the keys fall into three runs (rel_runs): s < a all clip to
 * j = 0, s >= b all clip to j = 2K, and each s in [a, b) has its own
 * j = s - (t + offset) + K. So a row costs min(S, R) products of length D,
 * never S * R: the clipped runs are one product (logits: computed once and
 * copied; values: the weights of the run are summed first, then one axpy).
 *
 * The two ops are each other's transpose, and so are their backward passes:
 *   REL_LOGITS backward: dq[n]  += sum_s g[n, s] rel_k[j]   (a REL_VALUES
 *                         forward of g), drel_k[j] += sum_{n, s: j(t,s) = j} g[n, s] q[n];
 *   REL_VALUES backward: dp[n, s] += g[n] . rel_v[j]         (a REL_LOGITS
 *                         forward of g), drel_v[j] += sum_{n, s: j(t,s) = j} p[n, s] g[n].
 * The table gradients are one product each: W [N, R] holds the bucketed row
 * (W[n, j] = sum of the row's entries with that j), then dtable += W^T X
 * through attn__sgemm (X = q or g). Row-parallel parts are split by rows;
 * the table product is one matrix call, so the results are the same for a
 * given thread count.
 */
#include <string.h>

#include "../core/internal.h"
#include "view_internal.h"
#include "attn/positions.h"

#define REL_OFFSET_LIMIT ((int64_t)1 << 40)

/* The runs of row t: [0, *a) -> j 0, [*a, *b) -> j = s - base + K, [*b, S) -> j 2K. */
static inline void rel_runs(int64_t t, int64_t offset, int64_t K, int64_t S, int64_t *a,
                            int64_t *b) {
    const int64_t base = t + offset;
    int64_t lo = base - K + 1, hi = base + K;
    lo = lo < 0 ? 0 : lo > S ? S : lo;
    hi = hi < 0 ? 0 : hi > S ? S : hi;
    *a = lo;
    *b = hi < lo ? lo : hi; /* K = 0: one bucket, no middle run */
}

static inline int64_t rel_bucket(int64_t t, int64_t s, int64_t offset, int64_t K) {
    int64_t d = s - (t + offset);
    return (d < -K ? -K : d > K ? K : d) + K;
}

/* sum_i x[i] y[i] with 8 partial sums in a fixed order (vectorisable). */
static inline float rel_dot(const float *restrict x, const float *restrict y, int64_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += x[i + k] * y[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += x[i] * y[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* Logits row: o[s] (+)= x . tab[j(t, s)] for s < S (x and tab rows of D). */
static void rel_gather_dot(const float *x, const float *tab, int64_t D, int64_t K, int64_t S,
                           int64_t t, int64_t offset, float *o, int accumulate) {
    int64_t a, b;
    rel_runs(t, offset, K, S, &a, &b);
    const int64_t jm = K - (t + offset); /* j of s in [a, b) is s + jm */
    if (a > 0) {
        const float v = rel_dot(x, tab, D);
        for (int64_t s = 0; s < a; s++) o[s] = accumulate ? o[s] + v : v;
    }
    for (int64_t s = a; s < b; s++) {
        const float v = rel_dot(x, tab + (s + jm) * D, D);
        o[s] = accumulate ? o[s] + v : v;
    }
    if (b < S) {
        const float v = rel_dot(x, tab + 2 * K * D, D);
        for (int64_t s = b; s < S; s++) o[s] = accumulate ? o[s] + v : v;
    }
}

/* Values row: o[:Dv] += sum_s w[s] tab[j(t, s)] (the clipped runs summed
 * first, then one axpy each). */
static void rel_bucket_axpy(const float *w, const float *tab, int64_t Dv, int64_t K, int64_t S,
                            int64_t t, int64_t offset, float *restrict o) {
    int64_t a, b;
    rel_runs(t, offset, K, S, &a, &b);
    const int64_t jm = K - (t + offset);
    if (a > 0) {
        float sw = 0.0f;
        for (int64_t s = 0; s < a; s++) sw += w[s];
        const float *v = tab;
        for (int64_t d = 0; d < Dv; d++) o[d] += sw * v[d];
    }
    for (int64_t s = a; s < b; s++) {
        const float ws = w[s];
        if (ws == 0.0f) continue; /* masked weights add exactly 0 */
        const float *v = tab + (s + jm) * Dv;
        for (int64_t d = 0; d < Dv; d++) o[d] += ws * v[d];
    }
    if (b < S) {
        float sw = 0.0f;
        for (int64_t s = b; s < S; s++) sw += w[s];
        const float *v = tab + 2 * K * Dv;
        for (int64_t d = 0; d < Dv; d++) o[d] += sw * v[d];
    }
}

/* W[n, :R] = the bucketed row w[n, :S] (W zeroed by the caller). */
static void rel_bucket_rows(attn_ctx *ctx, const float *w, int64_t N, int64_t T, int64_t S,
                            int64_t K, int64_t offset, float *W) {
    const int64_t R = 2 * K + 1;
    const int nt = attn__threads_for(ctx, 2.0 * (double)N * (double)S);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t n = 0; n < N; n++) {
        const int64_t t = n % T;
        const float *wr = w + n * S;
        float *Wr = W + n * R;
        int64_t a, b;
        rel_runs(t, offset, K, S, &a, &b);
        const int64_t jm = K - (t + offset);
        for (int64_t s = 0; s < a; s++) Wr[0] += wr[s];
        for (int64_t s = a; s < b; s++) Wr[s + jm] = wr[s];
        for (int64_t s = b; s < S; s++) Wr[2 * K] += wr[s];
    }
}

/* dtab [R, C] += W^T X with W [N, R] bucketed from w [N, S] and X [N, C]. */
static attn_status rel_table_grad(attn_ctx *ctx, const char *op, const float *w, const float *X,
                                  int64_t N, int64_t T, int64_t S, int64_t K, int64_t C,
                                  int64_t offset, float *dtab) {
    const int64_t R = 2 * K + 1;
    size_t bytes;
    if (attn__mul_size((size_t)N, (size_t)R, &bytes) || attn__mul_size(bytes, sizeof(float), &bytes))
        return attn__fail(ctx, ATTN_ERR_OOM, "%s backward: scratch [%lld,%lld] overflows", op,
                          (long long)N, (long long)R);
    const size_t mark = attn__arena_mark(ctx);
    float *W = attn__alloc_zero(ctx, bytes, "rel_pos backward (bucketed rows)");
    if (!W) return ctx->status;
    rel_bucket_rows(ctx, w, N, T, S, K, offset, W);
    const int nt = attn__threads_for(ctx, 2.0 * (double)N * (double)R * (double)C);
    attn__sgemm(nt, 1, 0, R, C, N, 1.0f, W, R, X, C, 1.0f, dtab, C);
    attn__arena_rewind(ctx, mark); /* scratch only: no node was recorded since the mark */
    return ATTN_OK;
}

/* ---- shared argument checks ------------------------------------------------------------ */

static int rel_check_table(attn_ctx *ctx, const char *op, const char *arg, const attn_tensor *tab,
                           int64_t width, const attn_tensor *x) {
    if (tab->ndim != 2 || tab->shape[0] < 1 || tab->shape[0] % 2 != 1 || tab->shape[1] != width) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %s %s for %s, expected [2K+1, %lld] (an odd number of rows)",
                   op, arg, attn__shp(tab), attn__shp(x), (long long)width);
        return -1;
    }
    return 0;
}

static int rel_check_offset(attn_ctx *ctx, const char *op, int64_t offset) {
    if (offset < -REL_OFFSET_LIMIT || offset > REL_OFFSET_LIMIT) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: offset %lld, expected |offset| <= 2^40", op,
                   (long long)offset);
        return -1;
    }
    return 0;
}

/* ---- REL_LOGITS -------------------------------------------------------------------------- */

attn_tensor *attn_rel_logits(attn_ctx *ctx, attn_tensor *q, attn_tensor *rel_k, int64_t S,
                             int64_t offset) {
    static const char name[] = "rel_logits";
    if (attn__any_null(ctx, name, 2, q, rel_k)) return NULL;
    if (attn__check_dtype(ctx, name, "q", q, ATTN_F32) ||
        attn__check_dtype(ctx, name, "rel_k", rel_k, ATTN_F32))
        return NULL;
    if (q->ndim != 4 || q->shape[0] < 1 || q->shape[1] < 1 || q->shape[2] < 1 || q->shape[3] < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: q %s, expected [B, H, T, D] with every size >= 1",
                   name, attn__shp(q));
        return NULL;
    }
    if (rel_check_table(ctx, name, "rel_k", rel_k, q->shape[3], q)) return NULL;
    if (S < 1 || S > REL_OFFSET_LIMIT) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: S %lld, expected 1 <= S <= 2^40 (q %s)", name,
                   (long long)S, attn__shp(q));
        return NULL;
    }
    if (rel_check_offset(ctx, name, offset)) return NULL;
    attn_tensor *in[2] = {attn__contig(ctx, q), NULL};
    if (!in[0] || !(in[1] = attn__contig(ctx, rel_k))) return NULL;
    const int64_t osh[4] = {q->shape[0], q->shape[1], q->shape[2], S};
    attn_tensor *out = attn__tensor(ctx, name, ATTN_F32, 4, osh);
    if (!out) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_REL_LOGITS, 2, in, out);
    if (!node) return NULL;
    node->iarg[0] = S;
    node->iarg[1] = offset;
    return attn__run(ctx, node);
}

typedef struct rel_geom {
    int64_t N, T, S, D, K, offset; /* N = B*H*T rows; D the table width */
    const float *x, *tab;
} rel_geom;

/* Geometry of either op: x = in[0] [.., T, last], tab = in[1] [R, D]. */
static rel_geom rel_geometry(const attn_node *node, int logits) {
    const attn_tensor *x = node->in[0], *tab = node->in[1];
    rel_geom g;
    g.T = x->shape[2];
    g.N = x->shape[0] * x->shape[1] * g.T;
    g.S = logits ? node->iarg[0] : x->shape[3];
    g.D = tab->shape[1];
    g.K = (tab->shape[0] - 1) / 2;
    g.offset = node->iarg[1];
    g.x = attn_f32(x);
    g.tab = attn_f32(tab);
    return g;
}

attn_status attn__rel_logits_forward(attn_ctx *ctx, attn_node *node) {
    const rel_geom g = rel_geometry(node, 1);
    float *out = attn_f32(node->out);
    const int64_t m = g.S < 2 * g.K + 1 ? g.S : 2 * g.K + 1;
    const int nt = attn__threads_for(ctx, 2.0 * (double)g.N * ((double)m * (double)g.D + (double)g.S));
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t n = 0; n < g.N; n++)
        rel_gather_dot(g.x + n * g.D, g.tab, g.D, g.K, g.S, n % g.T, g.offset, out + n * g.S, 0);
    return ATTN_OK;
}

attn_status attn__rel_logits_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const rel_geom g = rel_geometry(node, 1);
    float *out = attn_f32(node->out);
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t s = 0; s < g.S; s++) {
            const float *k = g.tab + rel_bucket(n % g.T, s, g.offset, g.K) * g.D;
            double acc = 0.0;
            for (int64_t d = 0; d < g.D; d++) acc += (double)g.x[n * g.D + d] * (double)k[d];
            out[n * g.S + s] = (float)acc;
        }
    return ATTN_OK;
}

attn_status attn__rel_logits_backward(attn_ctx *ctx, attn_node *node) {
    const rel_geom g = rel_geometry(node, 1);
    const float *go = node->out->grad; /* [N, S] */
    if (attn__needs_grad(node, 0)) {
        /* out[n, s] = q[n] . rel_k[j]  =>  dq[n] += sum_s g[n, s] rel_k[j] */
        float *dq = node->in[0]->grad;
        const int64_t m = g.S < 2 * g.K + 1 ? g.S : 2 * g.K + 1;
        const int nt = attn__threads_for(ctx, 2.0 * (double)g.N * ((double)m * (double)g.D + (double)g.S));
        (void)nt;
        ATTN__OMP_FOR(nt)
        for (int64_t n = 0; n < g.N; n++)
            rel_bucket_axpy(go + n * g.S, g.tab, g.D, g.K, g.S, n % g.T, g.offset, dq + n * g.D);
    }
    if (attn__needs_grad(node, 1)) {
        /* drel_k[j] += sum over (n, s) with j(t, s) = j of g[n, s] q[n] */
        attn_status st = rel_table_grad(ctx, "rel_logits", go, g.x, g.N, g.T, g.S, g.K, g.D,
                                        g.offset, node->in[1]->grad);
        if (st != ATTN_OK) return st;
    }
    return ATTN_OK;
}

/* ---- REL_VALUES -------------------------------------------------------------------------- */

attn_tensor *attn_rel_values(attn_ctx *ctx, attn_tensor *p, attn_tensor *rel_v, int64_t offset) {
    static const char name[] = "rel_values";
    if (attn__any_null(ctx, name, 2, p, rel_v)) return NULL;
    if (attn__check_dtype(ctx, name, "p", p, ATTN_F32) ||
        attn__check_dtype(ctx, name, "rel_v", rel_v, ATTN_F32))
        return NULL;
    if (p->ndim != 4 || p->shape[0] < 1 || p->shape[1] < 1 || p->shape[2] < 1 || p->shape[3] < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: p %s, expected [B, H, T, S] with every size >= 1",
                   name, attn__shp(p));
        return NULL;
    }
    if (rel_v->ndim != 2 || rel_v->shape[1] < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: rel_v %s, expected [2K+1, Dv] with Dv >= 1", name,
                   attn__shp(rel_v));
        return NULL;
    }
    if (rel_check_table(ctx, name, "rel_v", rel_v, rel_v->shape[1], p)) return NULL;
    if (rel_check_offset(ctx, name, offset)) return NULL;
    attn_tensor *in[2] = {attn__contig(ctx, p), NULL};
    if (!in[0] || !(in[1] = attn__contig(ctx, rel_v))) return NULL;
    const int64_t osh[4] = {p->shape[0], p->shape[1], p->shape[2], rel_v->shape[1]};
    attn_tensor *out = attn__tensor(ctx, name, ATTN_F32, 4, osh);
    if (!out) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_REL_VALUES, 2, in, out);
    if (!node) return NULL;
    node->iarg[0] = p->shape[3];
    node->iarg[1] = offset;
    return attn__run(ctx, node);
}

attn_status attn__rel_values_forward(attn_ctx *ctx, attn_node *node) {
    const rel_geom g = rel_geometry(node, 0);
    float *out = attn_f32(node->out);
    const int64_t m = g.S < 2 * g.K + 1 ? g.S : 2 * g.K + 1;
    const int nt = attn__threads_for(ctx, 2.0 * (double)g.N * ((double)m * (double)g.D + (double)g.S));
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t n = 0; n < g.N; n++) {
        float *o = out + n * g.D;
        memset(o, 0, sizeof(float) * (size_t)g.D);
        rel_bucket_axpy(g.x + n * g.S, g.tab, g.D, g.K, g.S, n % g.T, g.offset, o);
    }
    return ATTN_OK;
}

attn_status attn__rel_values_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const rel_geom g = rel_geometry(node, 0);
    float *out = attn_f32(node->out);
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t d = 0; d < g.D; d++) {
            double acc = 0.0;
            for (int64_t s = 0; s < g.S; s++)
                acc += (double)g.x[n * g.S + s] *
                       (double)g.tab[rel_bucket(n % g.T, s, g.offset, g.K) * g.D + d];
            out[n * g.D + d] = (float)acc;
        }
    return ATTN_OK;
}

attn_status attn__rel_values_backward(attn_ctx *ctx, attn_node *node) {
    const rel_geom g = rel_geometry(node, 0);
    const float *go = node->out->grad; /* [N, Dv] */
    if (attn__needs_grad(node, 0)) {
        /* out[n] = sum_s p[n, s] rel_v[j]  =>  dp[n, s] += g[n] . rel_v[j] */
        float *dp = node->in[0]->grad;
        const int64_t m = g.S < 2 * g.K + 1 ? g.S : 2 * g.K + 1;
        const int nt = attn__threads_for(ctx, 2.0 * (double)g.N * ((double)m * (double)g.D + (double)g.S));
        (void)nt;
        ATTN__OMP_FOR(nt)
        for (int64_t n = 0; n < g.N; n++)
            rel_gather_dot(go + n * g.D, g.tab, g.D, g.K, g.S, n % g.T, g.offset, dp + n * g.S, 1);
    }
    if (attn__needs_grad(node, 1)) {
        /* drel_v[j] += sum over (n, s) with j(t, s) = j of p[n, s] g[n] */
        attn_status st = rel_table_grad(ctx, "rel_values", g.x, go, g.N, g.T, g.S, g.K, g.D,
                                        g.offset, node->in[1]->grad);
        if (st != ATTN_OK) return st;
    }
    return ATTN_OK;
}
