/* lstmn.c: the graph op LSTMN (include/attn/lstmn.h): the Long Short-Term
 * Memory-Network layer over a batch of sequences, forward, backward and the
 * scalar reference. docs/lstmn.md derives the backward.
 *
 * Node layout: in[0] gx [B, T, 4H], in[1] ax [B, T, A], in[2] h0 [B, H],
 * in[3] c0 [B, H], in[4] w_hh [4H, H], in[5] w_mem [A, H], in[6] v [A], then
 * w_sum [A, H] if iarg[0], then lengths I32 [B] if iarg[1]. out [B, T, H].
 *
 * saved[0] is [B, R]: per row b one record of R floats (row_layout):
 *   hm [T+1, H]  the tape of hidden states: h0, then h after each step
 *   cm [T+1, H]  the tape of cell states
 *   km [T+1, A]  W_h h_i of each memory (computed once, when it is written)
 *   ht [T+1, H]  the summaries: ht[0] = h0 (h~_0), ht[t+1] = h~ of step t
 *   ct [T, H]    c~ of step t
 *   gt [T, 4H]   the activated gates i | f | g | o of step t
 *   tc [T, H]    tanh(c_{t+1})
 *   q  [T, A]    ax_t + W_h~ h~_{t-1}, the query part of step t's scores
 *   s  [T, T+1]  the attention weights of step t (entries i <= t)
 * Entries of padded steps stay zero. The scores' tanh values (T^2 A per row)
 * are not kept: the backward recomputes them from km and q.
 *
 * Fast path: the products of all rows at a step through attn__sgemm (the
 * records' row stride as leading dimension), the tanh of the scores with the
 * vectorisable exp of src/core/vmath.h. Reference: every dot product, sum and
 * activation in double, row by row. The backward (one for both) works in
 * float with the products through attn__sgemm. Threads: the per-row work of a
 * step (attention, summaries, gates, and their gradients) is split statically
 * over rows; dv is kept per row and summed in row order.
 */
#include <math.h>
#include <string.h>

#include "../core/internal.h"
#include "../core/vmath.h"
#include "view_internal.h"
#include "attn/lstmn.h"

#define OP "lstmn"

/* ---- geometry -------------------------------------------------------------------- */

typedef struct lstmn_geom {
    int64_t B, T, H, A, R;
    /* offsets (floats) of the parts inside one row record */
    int64_t o_hm, o_cm, o_km, o_ht, o_ct, o_gt, o_tc, o_q, o_s;
    const float *gx, *ax, *h0, *c0, *w_hh, *w_mem, *v, *w_sum; /* w_sum NULL: no h~ term */
    const int32_t *len;                                          /* NULL: all T */
    int i_sum, i_len;
} lstmn_geom;

static void row_layout(lstmn_geom *g) {
    const int64_t T = g->T, H = g->H, A = g->A;
    int64_t o = 0;
    g->o_hm = o, o += (T + 1) * H;
    g->o_cm = o, o += (T + 1) * H;
    g->o_km = o, o += (T + 1) * A;
    g->o_ht = o, o += (T + 1) * H;
    g->o_ct = o, o += T * H;
    g->o_gt = o, o += T * 4 * H;
    g->o_tc = o, o += T * H;
    g->o_q = o, o += T * A;
    g->o_s = o, o += T * (T + 1);
    g->R = o;
}

static lstmn_geom lstmn_geometry(const attn_node *node) {
    lstmn_geom g;
    memset(&g, 0, sizeof g);
    g.B = node->in[0]->shape[0];
    g.T = node->in[0]->shape[1];
    g.H = node->in[2]->shape[1];
    g.A = node->in[1]->shape[2];
    row_layout(&g);
    g.gx = attn_f32(node->in[0]);
    g.ax = attn_f32(node->in[1]);
    g.h0 = attn_f32(node->in[2]);
    g.c0 = attn_f32(node->in[3]);
    g.w_hh = attn_f32(node->in[4]);
    g.w_mem = attn_f32(node->in[5]);
    g.v = attn_f32(node->in[6]);
    int k = 7;
    g.i_sum = node->iarg[0] ? k++ : -1;
    g.i_len = node->iarg[1] ? k++ : -1;
    g.w_sum = g.i_sum >= 0 ? attn_f32(node->in[g.i_sum]) : NULL;
    g.len = g.i_len >= 0 ? attn_i32(node->in[g.i_len]) : NULL;
    return g;
}

static inline int64_t row_len(const lstmn_geom *g, int64_t b) {
    return g->len ? (int64_t)g->len[b] : g->T;
}

/* ---- builder ------------------------------------------------------------------------ */

static int check_2d(attn_ctx *ctx, const char *what, const attn_tensor *t, int64_t d0, int64_t d1,
                    const char *expect) {
    if (attn__check_dtype(ctx, OP, what, t, ATTN_F32)) return -1;
    if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %s %s, expected %s = [%lld,%lld]", OP, what,
                   attn__shp(t), expect, (long long)d0, (long long)d1);
        return -1;
    }
    return 0;
}

attn_tensor *attn_lstmn(attn_ctx *ctx, attn_tensor *gx, attn_tensor *ax, attn_tensor *h0,
                        attn_tensor *c0, attn_tensor *w_hh, attn_tensor *w_mem, attn_tensor *v,
                        attn_tensor *w_sum, attn_tensor *lengths) {
    if (attn__any_null(ctx, OP, 5, gx, ax, w_hh, w_mem, v)) return NULL;
    if (attn__check_dtype(ctx, OP, "gx", gx, ATTN_F32) ||
        attn__check_dtype(ctx, OP, "ax", ax, ATTN_F32) ||
        attn__check_dtype(ctx, OP, "w_hh", w_hh, ATTN_F32))
        return NULL;
    if (gx->ndim != 3 || gx->shape[0] < 1 || gx->shape[1] < 1 || gx->shape[2] < 4 ||
        gx->shape[2] % 4 != 0) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: gx %s, expected [B, T, 4H] with B, T, H >= 1 (gates i | f | g | o)", OP,
                   attn__shp(gx));
        return NULL;
    }
    const int64_t B = gx->shape[0], T = gx->shape[1], H = gx->shape[2] / 4;
    if (ax->ndim != 3 || ax->shape[0] != B || ax->shape[1] != T || ax->shape[2] < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: ax %s, expected [B, T, A] = [%lld,%lld,A] (gx is %s)",
                   OP, attn__shp(ax), (long long)B, (long long)T, attn__shp(gx));
        return NULL;
    }
    const int64_t A = ax->shape[2];
    if (check_2d(ctx, "w_hh", w_hh, 4 * H, H, "[4H, H]") ||
        check_2d(ctx, "w_mem", w_mem, A, H, "[A, H]") ||
        (w_sum && check_2d(ctx, "w_sum", w_sum, A, H, "[A, H]")) ||
        (h0 && check_2d(ctx, "h0", h0, B, H, "[B, H]")) ||
        (c0 && check_2d(ctx, "c0", c0, B, H, "[B, H]")))
        return NULL;
    if (attn__check_dtype(ctx, OP, "v", v, ATTN_F32)) return NULL;
    if (v->ndim != 1 || v->shape[0] != A) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: v %s, expected [A] = [%lld]", OP, attn__shp(v),
                   (long long)A);
        return NULL;
    }
    if (lengths) {
        if (attn__check_dtype(ctx, OP, "lengths", lengths, ATTN_I32)) return NULL;
        if (lengths->ndim != 1 || lengths->shape[0] != B) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: lengths %s, expected [B] = [%lld]", OP,
                       attn__shp(lengths), (long long)B);
            return NULL;
        }
        if (!(lengths = attn__contig(ctx, lengths))) return NULL;
        const int32_t *l = attn_i32(lengths);
        for (int64_t b = 0; b < B; b++)
            if (l[b] < 0 || l[b] > T) {
                attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                           "%s: lengths[%lld] = %d is outside [0, %lld] (T of gx %s)", OP,
                           (long long)b, (int)l[b], (long long)T, attn__shp(gx));
                return NULL;
            }
    }
    const int64_t bh[2] = {B, H};
    if (!h0 && !(h0 = attn_tensor_new(ctx, ATTN_F32, 2, bh))) return NULL;
    if (!c0 && !(c0 = attn_tensor_new(ctx, ATTN_F32, 2, bh))) return NULL;
    attn_tensor *in[9];
    int n = 0;
    attn_tensor *const src[7] = {gx, ax, h0, c0, w_hh, w_mem, v};
    for (int i = 0; i < 7; i++)
        if (!(in[n++] = attn__contig(ctx, src[i]))) return NULL;
    if (w_sum && !(in[n++] = attn__contig(ctx, w_sum))) return NULL;
    if (lengths) in[n++] = lengths; /* made contiguous above */
    lstmn_geom g;
    memset(&g, 0, sizeof g);
    g.T = T, g.H = H, g.A = A;
    row_layout(&g);
    size_t rec;
    if (attn__mul_size((size_t)B, (size_t)g.R, &rec) || rec > ((size_t)1 << 40)) {
        attn__fail(ctx, ATTN_ERR_OOM, "%s: saved state of %lld x %lld floats is too large", OP,
                   (long long)B, (long long)g.R);
        return NULL;
    }
    const int64_t osh[3] = {B, T, H}, ssh[2] = {B, g.R};
    attn_tensor *out = attn__tensor(ctx, OP, ATTN_F32, 3, osh);
    attn_tensor *saved = attn__tensor(ctx, OP, ATTN_F32, 2, ssh);
    if (!out || !saved) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_LSTMN, n, in, out);
    if (!node) return NULL;
    node->iarg[0] = w_sum != NULL;
    node->iarg[1] = lengths != NULL;
    node->saved[0] = saved;
    return attn__run(ctx, node);
}

attn_status attn_lstmn_weights(const attn_ctx *ctx, const attn_tensor *out, float *weights,
                               int64_t n) {
    if (!ctx || !out || !weights)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_lstmn_weights: NULL argument");
    for (const attn_node *nd = ctx->tape_last; nd; nd = nd->prev) {
        if (nd->op != ATTN_OP_LSTMN || nd->out != out) continue;
        const lstmn_geom g = lstmn_geometry(nd);
        const int64_t need = g.B * g.T * (g.T + 1);
        if (n < need)
            return attn__error(ATTN_ERR_SHAPE,
                               "attn_lstmn_weights: room for %lld floats, the weights of %s need %lld",
                               (long long)n, attn__shp(out), (long long)need);
        const float *sv = attn_f32(nd->saved[0]);
        for (int64_t b = 0; b < g.B; b++)
            memcpy(weights + b * g.T * (g.T + 1), sv + b * g.R + g.o_s,
                   sizeof(float) * (size_t)(g.T * (g.T + 1)));
        return ATTN_OK;
    }
    return attn__error(ATTN_ERR_INVALID_ARG,
                       "attn_lstmn_weights: tensor %s is not an attn_lstmn result on the context's "
                       "tape (the weights are kept only when the op is recorded: gradients enabled "
                       "and an input that requires them)",
                       attn__shp(out));
}

/* ---- forward (fast) --------------------------------------------------------------------- */

/* y[j] <- tanh(y[j]) = 2 sigmoid(2 y) - 1, clamp first (see vmath.h). */
static void vtanh(float *restrict y, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        float a = -2.0f * y[j];
        a = a < -87.0f ? -87.0f : a;
        y[j] = a > 88.0f ? 88.0f : a;
    }
    for (int64_t j = 0; j < n; j++) y[j] = 2.0f / (1.0f + attn__exp_core(y[j])) - 1.0f;
}

static void vsigmoid(float *restrict y, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        float a = -y[j];
        a = a < -87.0f ? -87.0f : a;
        y[j] = a > 88.0f ? 88.0f : a;
    }
    for (int64_t j = 0; j < n; j++) y[j] = 1.0f / (1.0f + attn__exp_core(y[j]));
}

attn_status attn__lstmn_forward(attn_ctx *ctx, attn_node *node) {
    const lstmn_geom g = lstmn_geometry(node);
    const int64_t B = g.B, T = g.T, H = g.H, A = g.A, R = g.R, G = 4 * H;
    float *sv = attn_f32(node->saved[0]), *out = attn_f32(node->out);
    memset(sv, 0, sizeof(float) * (size_t)(B * R));
    memset(out, 0, sizeof(float) * (size_t)(B * T * H));
    /* scratch per row (rows run in parallel): tanh arguments [T+1, A], scores [T+1] */
    const int64_t US = (T + 1) * (A + 1);
    size_t ub;
    if (attn__mul_size(sizeof(float), (size_t)(B * US), &ub)) {
        attn__fail(ctx, ATTN_ERR_OOM, "%s: scratch of %lld x %lld floats is too large", OP,
                   (long long)B, (long long)US);
        return ctx->status;
    }
    float *us = attn__alloc(ctx, ub, OP " (scores)");
    if (!us) return ctx->status;
    const int nt = attn__threads_for(ctx, 2.0 * (double)B * (double)G * (double)H);
    const int ntr = attn__threads_for(ctx, 4.0 * (double)B * (double)T * (double)(T + 1) *
                                               (double)(A + H) / 2.0);
    (void)ntr; /* unused without OpenMP */
    for (int64_t b = 0; b < B; b++) { /* slot 0 of the tape: the initial state */
        float *r = sv + b * R;
        memcpy(r + g.o_hm, g.h0 + b * H, sizeof(float) * (size_t)H);
        memcpy(r + g.o_cm, g.c0 + b * H, sizeof(float) * (size_t)H);
        memcpy(r + g.o_ht, g.h0 + b * H, sizeof(float) * (size_t)H);
    }
    /* km[0] = h0 W_h^T for every row */
    attn__sgemm(nt, 0, 1, B, A, H, 1.0f, sv + g.o_hm, R, g.w_mem, H, 0.0f, sv + g.o_km, R);
    for (int64_t t = 0; t < T; t++) {
        /* q_t = ax_t (+ h~_{t-1} W_h~^T), all rows (padded rows are ignored later) */
        for (int64_t b = 0; b < B; b++)
            memcpy(sv + b * R + g.o_q + t * A, g.ax + (b * T + t) * A, sizeof(float) * (size_t)A);
        if (g.w_sum)
            attn__sgemm(nt, 0, 1, B, A, H, 1.0f, sv + g.o_ht + t * H, R, g.w_sum, H, 1.0f,
                        sv + g.o_q + t * A, R);
        ATTN__OMP_FOR(ntr)
        for (int64_t b = 0; b < B; b++) {
            if (t >= row_len(&g, b)) continue;
            float *r = sv + b * R, *u = us + b * US, *a = u + (T + 1) * A;
            const float *q = r + g.o_q + t * A;
            /* a_i = v . tanh(km_i + q), i = 0..t */
            for (int64_t i = 0; i <= t; i++) {
                const float *k = r + g.o_km + i * A;
                float *ui = u + i * A;
                for (int64_t j = 0; j < A; j++) ui[j] = k[j] + q[j];
            }
            vtanh(u, (t + 1) * A);
            float mx = -INFINITY;
            for (int64_t i = 0; i <= t; i++) {
                const float *ui = u + i * A;
                float acc = 0.0f;
                for (int64_t j = 0; j < A; j++) acc += g.v[j] * ui[j];
                a[i] = acc;
                mx = acc > mx ? acc : mx;
            }
            float *s = r + g.o_s + t * (T + 1);
            float den = 0.0f;
            for (int64_t i = 0; i <= t; i++) {
                s[i] = expf(a[i] - mx);
                den += s[i];
            }
            for (int64_t i = 0; i <= t; i++) s[i] /= den;
            /* h~_t = sum_i s_i h_i, c~_t = sum_i s_i c_i */
            float *ht = r + g.o_ht + (t + 1) * H, *ct = r + g.o_ct + t * H;
            for (int64_t i = 0; i <= t; i++) {
                const float si = s[i], *hi = r + g.o_hm + i * H, *ci = r + g.o_cm + i * H;
                for (int64_t j = 0; j < H; j++) {
                    ht[j] += si * hi[j];
                    ct[j] += si * ci[j];
                }
            }
        }
        /* gate pre-activations z = h~_t W_hh^T, into gt (then + gx) */
        attn__sgemm(nt, 0, 1, B, G, H, 1.0f, sv + g.o_ht + (t + 1) * H, R, g.w_hh, H, 0.0f,
                    sv + g.o_gt + t * G, R);
        ATTN__OMP_FOR(ntr)
        for (int64_t b = 0; b < B; b++) {
            float *r = sv + b * R, *z = r + g.o_gt + t * G;
            if (t >= row_len(&g, b)) {
                memset(z, 0, sizeof(float) * (size_t)G);
                memset(r + g.o_q + t * A, 0, sizeof(float) * (size_t)A);
                continue;
            }
            const float *x = g.gx + (b * T + t) * G;
            for (int64_t j = 0; j < G; j++) z[j] += x[j];
            vsigmoid(z, 2 * H);
            vtanh(z + 2 * H, H);
            vsigmoid(z + 3 * H, H);
            const float *gi = z, *gf = z + H, *gg = z + 2 * H, *go = z + 3 * H;
            const float *ct = r + g.o_ct + t * H;
            float *c = r + g.o_cm + (t + 1) * H, *h = r + g.o_hm + (t + 1) * H;
            float *tc = r + g.o_tc + t * H;
            for (int64_t j = 0; j < H; j++) tc[j] = c[j] = gf[j] * ct[j] + gi[j] * gg[j];
            vtanh(tc, H);
            for (int64_t j = 0; j < H; j++) h[j] = go[j] * tc[j];
            memcpy(out + (b * T + t) * H, h, sizeof(float) * (size_t)H);
        }
        /* km[t+1] = h_{t+1} W_h^T (zero rows stay zero for padded steps) */
        attn__sgemm(nt, 0, 1, B, A, H, 1.0f, sv + g.o_hm + (t + 1) * H, R, g.w_mem, H, 0.0f,
                    sv + g.o_km + (t + 1) * A, R);
    }
    return ATTN_OK;
}

/* ---- forward (reference): double, row by row ------------------------------------------- */

static double dsig(double x) { return 1.0 / (1.0 + exp(-x)); }

attn_status attn__lstmn_ref(attn_ctx *ctx, attn_node *node) {
    const lstmn_geom g = lstmn_geometry(node);
    const int64_t B = g.B, T = g.T, H = g.H, A = g.A, R = g.R, G = 4 * H;
    float *sv = attn_f32(node->saved[0]), *out = attn_f32(node->out);
    memset(sv, 0, sizeof(float) * (size_t)(B * R));
    memset(out, 0, sizeof(float) * (size_t)(B * T * H));
    double *a = attn__alloc(ctx, sizeof(double) * (size_t)(T + 1 + 2 * H + G), OP " (reference)");
    if (!a) return ctx->status;
    double *ht = a + T + 1, *ct = ht + H, *z = ct + H;
    for (int64_t b = 0; b < B; b++) {
        float *r = sv + b * R;
        const int64_t L = row_len(&g, b);
        memcpy(r + g.o_hm, g.h0 + b * H, sizeof(float) * (size_t)H);
        memcpy(r + g.o_cm, g.c0 + b * H, sizeof(float) * (size_t)H);
        memcpy(r + g.o_ht, g.h0 + b * H, sizeof(float) * (size_t)H);
        for (int64_t t = 0; t <= L; t++) { /* km of the slots written: 0 .. L */
            if (t > 0) { /* step t-1: attention, gates, new slot t */
                const int64_t s_ = t - 1;
                float *q = r + g.o_q + s_ * A;
                for (int64_t j = 0; j < A; j++) {
                    double acc = g.ax[(b * T + s_) * A + j];
                    if (g.w_sum)
                        for (int64_t k = 0; k < H; k++)
                            acc += (double)g.w_sum[j * H + k] * r[g.o_ht + s_ * H + k];
                    q[j] = (float)acc;
                }
                double mx = -INFINITY;
                for (int64_t i = 0; i < t; i++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < A; j++)
                        acc += (double)g.v[j] * tanh((double)r[g.o_km + i * A + j] + (double)q[j]);
                    a[i] = acc;
                    mx = acc > mx ? acc : mx;
                }
                double den = 0.0;
                for (int64_t i = 0; i < t; i++) den += (a[i] = exp(a[i] - mx));
                float *s = r + g.o_s + s_ * (T + 1);
                for (int64_t j = 0; j < H; j++) ht[j] = ct[j] = 0.0;
                for (int64_t i = 0; i < t; i++) {
                    const double si = a[i] / den;
                    s[i] = (float)si;
                    for (int64_t j = 0; j < H; j++) {
                        ht[j] += si * r[g.o_hm + i * H + j];
                        ct[j] += si * r[g.o_cm + i * H + j];
                    }
                }
                for (int64_t j = 0; j < H; j++) {
                    r[g.o_ht + t * H + j] = (float)ht[j];
                    r[g.o_ct + s_ * H + j] = (float)ct[j];
                }
                for (int64_t j = 0; j < G; j++) {
                    double acc = g.gx[(b * T + s_) * G + j];
                    for (int64_t k = 0; k < H; k++) acc += (double)g.w_hh[j * H + k] * ht[k];
                    z[j] = j < 2 * H || j >= 3 * H ? dsig(acc) : tanh(acc);
                }
                float *gt = r + g.o_gt + s_ * G;
                for (int64_t j = 0; j < G; j++) gt[j] = (float)z[j];
                for (int64_t j = 0; j < H; j++) {
                    const double c = z[H + j] * ct[j] + z[j] * z[2 * H + j], tc = tanh(c);
                    r[g.o_cm + t * H + j] = (float)c;
                    r[g.o_tc + s_ * H + j] = (float)tc;
                    const float h = (float)(z[3 * H + j] * tc);
                    r[g.o_hm + t * H + j] = h;
                    out[(b * T + s_) * H + j] = h;
                }
            }
            for (int64_t j = 0; j < A; j++) { /* km[t] = W_h h_t */
                double acc = 0.0;
                for (int64_t k = 0; k < H; k++)
                    acc += (double)g.w_mem[j * H + k] * r[g.o_hm + t * H + k];
                r[g.o_km + t * A + j] = (float)acc;
            }
        }
    }
    return ATTN_OK;
}

/* ---- backward ----------------------------------------------------------------------------
 * Reverse over the steps, all rows at once; accumulators for every memory
 * slot (dhm, dcm, dkm) and summary (dht) of each row. Slot t+1 is read only
 * by steps > t, so when step t is reached its gradients are complete. */

attn_status attn__lstmn_backward(attn_ctx *ctx, attn_node *node) {
    const lstmn_geom g = lstmn_geometry(node);
    const int64_t B = g.B, T = g.T, H = g.H, A = g.A, R = g.R, G = 4 * H;
    const float *sv = attn_f32(node->saved[0]), *dy = node->out->grad;
    if (!dy) return ATTN_OK;
    /* per row: dhm [T+1, H], dcm [T+1, H], dkm [T+1, A], dht [T+1, H], dz [T, G], dq [T, A] */
    const int64_t W = 3 * (T + 1) * H + (T + 1) * A + T * G + T * A;
    size_t bytes;
    if (attn__mul_size(sizeof(float), (size_t)(B * W), &bytes)) {
        attn__fail(ctx, ATTN_ERR_OOM, "%s backward: scratch of %lld x %lld floats is too large",
                   OP, (long long)B, (long long)W);
        return ctx->status;
    }
    float *wk = attn__alloc_zero(ctx, bytes, OP " backward (gradients)");
    /* per row (rows run in parallel): u [T+1, A], ds [T+1], dq [A], the row's dv [A] */
    const int64_t US = (T + 1) * (A + 1) + 2 * A;
    float *us = attn__alloc_zero(ctx, sizeof(float) * (size_t)(B * US), OP " backward (scores)");
    if (!wk || !us) return ctx->status;
    const int64_t o_dhm = 0, o_dcm = (T + 1) * H, o_dkm = 2 * (T + 1) * H,
                  o_dht = o_dkm + (T + 1) * A, o_dz = o_dht + (T + 1) * H, o_dq = o_dz + T * G;
    float *dv = attn__needs_grad(node, 6) ? attn__grad(ctx, node->in[6]) : NULL;
    if (attn__needs_grad(node, 6) && !dv) return ctx->status;
    const int nt = attn__threads_for(ctx, 2.0 * (double)B * (double)G * (double)H);
    const int ntr = attn__threads_for(ctx, 6.0 * (double)B * (double)T * (double)(T + 1) *
                                               (double)(A + H) / 2.0);
    (void)ntr; /* unused without OpenMP */
    for (int64_t b = 0; b < B; b++) /* dy enters h_{t+1} = slot t+1 */
        for (int64_t t = 0; t < row_len(&g, b); t++)
            memcpy(wk + b * W + o_dhm + (t + 1) * H, dy + (b * T + t) * H,
                   sizeof(float) * (size_t)H);
    for (int64_t t = T - 1; t >= 0; t--) {
        /* dh_{t+1} += dkm[t+1] W_h  (km[t+1] = h_{t+1} W_h^T, read by steps > t) */
        attn__sgemm(nt, 0, 0, B, H, A, 1.0f, wk + o_dkm + (t + 1) * A, W, g.w_mem, H, 1.0f,
                    wk + o_dhm + (t + 1) * H, W);
        ATTN__OMP_FOR(ntr)
        for (int64_t b = 0; b < B; b++) {
            if (t >= row_len(&g, b)) continue;
            const float *r = sv + b * R;
            float *w = wk + b * W, *u = us + b * US;
            const float *z = r + g.o_gt + t * G, *gi = z, *gf = z + H, *gg = z + 2 * H,
                        *go = z + 3 * H;
            const float *tc = r + g.o_tc + t * H, *ct = r + g.o_ct + t * H;
            const float *dh = w + o_dhm + (t + 1) * H, *dcin = w + o_dcm + (t + 1) * H;
            float *dz = w + o_dz + t * G;
            float *dct = u; /* dc~_t, kept until the summary step below */
            for (int64_t j = 0; j < H; j++) {
                /* h = o tanh(c); c = f c~ + i g */
                const float dc = dcin[j] + dh[j] * go[j] * (1.0f - tc[j] * tc[j]);
                dz[j] = dc * gg[j] * gi[j] * (1.0f - gi[j]);             /* i = sigma(z_i) */
                dz[H + j] = dc * ct[j] * gf[j] * (1.0f - gf[j]);         /* f = sigma(z_f) */
                dz[2 * H + j] = dc * gi[j] * (1.0f - gg[j] * gg[j]);     /* g = tanh(z_g) */
                dz[3 * H + j] = dh[j] * tc[j] * go[j] * (1.0f - go[j]);  /* o = sigma(z_o) */
                dct[j] = dc * gf[j];
            }
            /* stash dc~ in dcm's slot of this step's output (already consumed) */
            memcpy(w + o_dcm + (t + 1) * H, dct, sizeof(float) * (size_t)H);
        }
        /* dh~_t += dz_t W_hh  (z = gx + h~_t W_hh^T) */
        attn__sgemm(nt, 0, 0, B, H, G, 1.0f, wk + o_dz + t * G, W, g.w_hh, H, 1.0f,
                    wk + o_dht + (t + 1) * H, W);
        ATTN__OMP_FOR(ntr)
        for (int64_t b = 0; b < B; b++) {
            if (t >= row_len(&g, b)) continue;
            const float *r = sv + b * R;
            float *w = wk + b * W, *u = us + b * US, *ds = u + (T + 1) * A, *dqv = ds + (T + 1),
                  *dvr = dqv + A;
            const float *s = r + g.o_s + t * (T + 1), *q = r + g.o_q + t * A;
            const float *dht = w + o_dht + (t + 1) * H, *dct = w + o_dcm + (t + 1) * H;
            /* h~ = sum s_i h_i, c~ = sum s_i c_i */
            float sds = 0.0f;
            for (int64_t i = 0; i <= t; i++) {
                const float *hi = r + g.o_hm + i * H, *ci = r + g.o_cm + i * H;
                float *dhi = w + o_dhm + i * H, *dci = w + o_dcm + i * H;
                float acc = 0.0f;
                for (int64_t j = 0; j < H; j++) acc += dht[j] * hi[j] + dct[j] * ci[j];
                ds[i] = acc;
                sds += s[i] * acc;
                for (int64_t j = 0; j < H; j++) {
                    dhi[j] += s[i] * dht[j];
                    dci[j] += s[i] * dct[j];
                }
            }
            /* s = softmax(a): da_i = s_i (ds_i - sum_j s_j ds_j);
             * a_i = v . u_i, u_i = tanh(km_i + q) (recomputed) */
            for (int64_t i = 0; i <= t; i++) {
                const float *k = r + g.o_km + i * A;
                float *ui = u + i * A;
                for (int64_t j = 0; j < A; j++) ui[j] = k[j] + q[j];
            }
            vtanh(u, (t + 1) * A);
            float *dq = w + o_dq + t * A, *dkm = w + o_dkm;
            memset(dqv, 0, sizeof(float) * (size_t)A);
            for (int64_t i = 0; i <= t; i++) {
                const float da = s[i] * (ds[i] - sds);
                const float *ui = u + i * A;
                float *dki = dkm + i * A;
                for (int64_t j = 0; j < A; j++) {
                    const float dpre = da * g.v[j] * (1.0f - ui[j] * ui[j]);
                    dki[j] += dpre;
                    dqv[j] += dpre;
                    dvr[j] += da * ui[j];
                }
            }
            memcpy(dq, dqv, sizeof(float) * (size_t)A);
        }
        /* dh~_{t-1} += dq_t W_h~  (q_t = ax_t + h~_{t-1} W_h~^T) */
        if (g.w_sum)
            attn__sgemm(nt, 0, 0, B, H, A, 1.0f, wk + o_dq + t * A, W, g.w_sum, H, 1.0f,
                        wk + o_dht + t * H, W);
    }
    if (dv) /* the rows' dv, summed in row order: the same for any thread count */
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < A; j++) dv[j] += us[b * US + (T + 1) * (A + 1) + A + j];
    /* slot 0: dh0 += dkm[0] W_h */
    attn__sgemm(nt, 0, 0, B, H, A, 1.0f, wk + o_dkm, W, g.w_mem, H, 1.0f, wk + o_dhm, W);

    /* inputs */
    if (attn__needs_grad(node, 0)) {
        float *d = attn__grad(ctx, node->in[0]);
        if (!d) return ctx->status;
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < T * G; j++) d[b * T * G + j] += wk[b * W + o_dz + j];
    }
    if (attn__needs_grad(node, 1)) {
        float *d = attn__grad(ctx, node->in[1]);
        if (!d) return ctx->status;
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < T * A; j++) d[b * T * A + j] += wk[b * W + o_dq + j];
    }
    if (attn__needs_grad(node, 2)) { /* h0 is slot 0 of the tape and h~_0 */
        float *d = attn__grad(ctx, node->in[2]);
        if (!d) return ctx->status;
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < H; j++)
                d[b * H + j] += wk[b * W + o_dhm + j] + wk[b * W + o_dht + j];
    }
    if (attn__needs_grad(node, 3)) {
        float *d = attn__grad(ctx, node->in[3]);
        if (!d) return ctx->status;
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < H; j++) d[b * H + j] += wk[b * W + o_dcm + j];
    }
    /* weights: sums over every row and step, one product per row */
    if (attn__needs_grad(node, 4)) { /* dW_hh += dz^T h~ (steps 1..T of ht) */
        float *d = attn__grad(ctx, node->in[4]);
        if (!d) return ctx->status;
        for (int64_t b = 0; b < B; b++)
            attn__sgemm(nt, 1, 0, G, H, T, 1.0f, wk + b * W + o_dz, G, sv + b * R + g.o_ht + H, H,
                        1.0f, d, H);
    }
    if (attn__needs_grad(node, 5)) { /* dW_h += dkm^T hm */
        float *d = attn__grad(ctx, node->in[5]);
        if (!d) return ctx->status;
        for (int64_t b = 0; b < B; b++)
            attn__sgemm(nt, 1, 0, A, H, T + 1, 1.0f, wk + b * W + o_dkm, A, sv + b * R + g.o_hm,
                        H, 1.0f, d, H);
    }
    if (g.w_sum && attn__needs_grad(node, g.i_sum)) { /* dW_h~ += dq^T h~_{t-1} */
        float *d = attn__grad(ctx, node->in[g.i_sum]);
        if (!d) return ctx->status;
        for (int64_t b = 0; b < B; b++)
            attn__sgemm(nt, 1, 0, A, H, T, 1.0f, wk + b * W + o_dq, A, sv + b * R + g.o_ht, H,
                        1.0f, d, H);
    }
    return ATTN_OK;
}
