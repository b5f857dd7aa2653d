/* softmax.c: softmax and log-softmax over the last axis (with an optional
 * additive mask), and the mean cross-entropy loss.
 *
 * Shape contracts:
 *   SOFTMAX, LOG_SOFTMAX  x [..., L] f32, mask NULL or f32 broadcastable to x
 *                         (the broadcast of x and mask must be x's shape)
 *                         -> y [..., L]. Inputs: in[0] = x, in[1] = mask.
 *   CROSS_ENTROPY         logits [N, V] f32, targets [N] i32 -> [] (scalar).
 *                         Inputs: in[0] = logits, in[1] = targets;
 *                         iarg[0] = ignore_index, iarg[1] = rows counted,
 *                         farg[0] = label smoothing e,
 *                         saved[0] = per-row log-sum-exp [N] (0 if ignored).
 *
 * A row whose entries of x + mask are all -inf gives an output row of zeros
 * and a zero gradient (for softmax and log-softmax alike), never NaN.
 * Derivations: docs/ops.md, "Softmax" and "Cross-entropy".
 */
#include <math.h>
#include <string.h>

#include "../core/internal.h"
#include "../core/vmath.h"
#include "view_internal.h"
#include "attn/ops.h"

/* ---- geometry -------------------------------------------------------------- */

/* x viewed as rows of length L; the mask element j of row r is
 * mask[moff(r) + j * mst[3]], where moff walks the broadcast strides of the
 * three leading (left-padded) dimensions. */
typedef struct sm_geom {
    int64_t rows, L;
    int64_t sh[ATTN_MAX_DIMS];  /* x's shape left-padded with 1s */
    int64_t mst[ATTN_MAX_DIMS]; /* broadcast strides of the mask (0 if none) */
} sm_geom;

static void sm_geometry(const attn_node *node, sm_geom *g) {
    const attn_tensor *x = node->in[0];
    int pad = ATTN_MAX_DIMS - x->ndim;
    for (int d = 0; d < ATTN_MAX_DIMS; d++) {
        g->sh[d] = d < pad ? 1 : x->shape[d - pad];
        g->mst[d] = 0;
    }
    g->L = g->sh[ATTN_MAX_DIMS - 1];
    g->rows = g->sh[0] * g->sh[1] * g->sh[2];
    if (node->n_in > 1) attn__broadcast_strides(node->in[1], x->ndim, x->shape, g->mst);
}

static inline int64_t sm_mask_offset(const sm_geom *g, int64_t r) {
    int64_t i2 = r % g->sh[2];
    r /= g->sh[2];
    int64_t i1 = r % g->sh[1];
    int64_t i0 = r / g->sh[1];
    return i0 * g->mst[0] + i1 * g->mst[1] + i2 * g->mst[2];
}

/* ---- builder ------------------------------------------------------------------- */

static attn_tensor *softmax_build(attn_ctx *ctx, attn_op op, attn_tensor *x, attn_tensor *mask) {
    const char *name = attn__ops[op].name;
    if (attn__any_null(ctx, name, 1, x)) return NULL;
    if (attn__check_dtype(ctx, name, "x", x, ATTN_F32)) return NULL;
    if (x->ndim < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x %s is a scalar, expected at least one dimension",
                   name, attn__shp(x));
        return NULL;
    }
    if (mask) {
        if (attn__check_dtype(ctx, name, "mask", mask, ATTN_F32)) return NULL;
        int nd;
        int64_t sh[ATTN_MAX_DIMS];
        if (attn__broadcast_shape(ctx, name, x, mask, &nd, sh)) return NULL;
        int same = nd == x->ndim;
        for (int d = 0; same && d < nd; d++) same = sh[d] == x->shape[d];
        if (!same) {
            attn__fail(ctx, ATTN_ERR_SHAPE,
                       "%s: mask %s must broadcast to x %s without enlarging it (the broadcast "
                       "shape has %d dims)",
                       name, attn__shp(mask), attn__shp(x), nd);
            return NULL;
        }
        mask = attn__contig(ctx, mask);
        if (!mask) return NULL;
    }
    x = attn__contig(ctx, x);
    if (!x) return NULL;
    attn_tensor *y = attn__tensor_like(ctx, name, x);
    if (!y) return NULL;
    attn_tensor *in[2] = {x, mask};
    return attn__run(ctx, attn__node(ctx, op, mask ? 2 : 1, in, y));
}

attn_tensor *attn_softmax(attn_ctx *ctx, attn_tensor *x, attn_tensor *mask) {
    return softmax_build(ctx, ATTN_OP_SOFTMAX, x, mask);
}

attn_tensor *attn_log_softmax(attn_ctx *ctx, attn_tensor *x, attn_tensor *mask) {
    return softmax_build(ctx, ATTN_OP_LOG_SOFTMAX, x, mask);
}

/* ---- forward (fast) ---------------------------------------------------------------- */

/* One row: z = x + m (m NULL: z = x), y = softmax(z) or log_softmax(z).
 * Stable: exponentials of z - max(z). The sum is kept in double so that long
 * rows (thousands of keys) stay within the op's tolerance of the reference. */
static void softmax_row(const float *x, const float *m, int64_t ms, float *y, int64_t L,
                        int is_log) {
    const float *z = x;
    if (m) {
        for (int64_t j = 0; j < L; j++) y[j] = x[j] + m[j * ms];
        z = y;
    }
    float mx = -INFINITY;
    for (int64_t j = 0; j < L; j++) mx = z[j] > mx ? z[j] : mx;
    if (mx == -INFINITY) { /* empty or fully masked row: defined as zeros */
        for (int64_t j = 0; j < L; j++) y[j] = 0.0f;
        return;
    }
    double s = 0.0;
    if (is_log) {
        for (int64_t j = 0; j < L; j++) s += expf(z[j] - mx);
        const float ls = (float)log(s);
        for (int64_t j = 0; j < L; j++) y[j] = (z[j] - mx) - ls;
    } else {
        for (int64_t j = 0; j < L; j++) {
            float e = expf(z[j] - mx);
            y[j] = e;
            s += e;
        }
        const float inv = (float)(1.0 / s);
        for (int64_t j = 0; j < L; j++) y[j] *= inv;
    }
}

static attn_status softmax_forward_common(attn_ctx *ctx, attn_node *node, int is_log) {
    sm_geom g;
    sm_geometry(node, &g);
    const float *x = attn_f32(node->in[0]);
    const float *m = node->n_in > 1 ? attn_f32(node->in[1]) : NULL;
    float *y = attn_f32(node->out);
    const int64_t rows = g.rows, L = g.L, ms = g.mst[3];
    int nt = attn__threads_for(ctx, 24.0 * (double)rows * (double)L);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t r = 0; r < rows; r++)
        softmax_row(x + r * L, m ? m + sm_mask_offset(&g, r) : NULL, ms, y + r * L, L, is_log);
    return ATTN_OK;
}

attn_status attn__softmax_forward(attn_ctx *ctx, attn_node *node) {
    return softmax_forward_common(ctx, node, 0);
}
attn_status attn__log_softmax_forward(attn_ctx *ctx, attn_node *node) {
    return softmax_forward_common(ctx, node, 1);
}

/* ---- reference ------------------------------------------------------------------------ */

static attn_status softmax_ref_common(attn_ctx *ctx, attn_node *node, int is_log) {
    (void)ctx;
    sm_geom g;
    sm_geometry(node, &g);
    const float *x = attn_f32(node->in[0]);
    const float *m = node->n_in > 1 ? attn_f32(node->in[1]) : NULL;
    float *y = attn_f32(node->out);
    for (int64_t r = 0; r < g.rows; r++) {
        const float *xr = x + r * g.L;
        const float *mr = m ? m + sm_mask_offset(&g, r) : NULL;
        float *yr = y + r * g.L;
        double mx = -INFINITY;
        for (int64_t j = 0; j < g.L; j++) {
            double z = (double)xr[j] + (mr ? (double)mr[j * g.mst[3]] : 0.0);
            if (z > mx) mx = z;
        }
        if (mx == -INFINITY) {
            for (int64_t j = 0; j < g.L; j++) yr[j] = 0.0f;
            continue;
        }
        double s = 0.0;
        for (int64_t j = 0; j < g.L; j++)
            s += exp((double)xr[j] + (mr ? (double)mr[j * g.mst[3]] : 0.0) - mx);
        for (int64_t j = 0; j < g.L; j++) {
            double z = (double)xr[j] + (mr ? (double)mr[j * g.mst[3]] : 0.0);
            yr[j] = (float)(is_log ? z - mx - log(s) : exp(z - mx) / s);
        }
    }
    return ATTN_OK;
}

attn_status attn__softmax_ref(attn_ctx *ctx, attn_node *node) {
    return softmax_ref_common(ctx, node, 0);
}
attn_status attn__log_softmax_ref(attn_ctx *ctx, attn_node *node) {
    return softmax_ref_common(ctx, node, 1);
}

/* ---- backward --------------------------------------------------------------------------- */

/* 1 if every entry of the row x + m is -inf (the forward wrote zeros). Only
 * called for a row of y that is all zeros, which a normal log-softmax row
 * is only when L == 1. */
static int row_fully_masked(const float *x, const float *m, int64_t ms, int64_t L) {
    for (int64_t j = 0; j < L; j++)
        if (x[j] + (m ? m[j * ms] : 0.0f) > -INFINITY) return 0;
    return 1;
}

/* d += dL/dz for one row, given y and the upstream gradient gy. */
static void softmax_row_backward(const float *y, const float *gy, const float *x, const float *m,
                                 int64_t ms, float *d, int64_t L, int is_log) {
    if (is_log) {
        /* y = z - max - log(sum exp(z - max))  =>  dz_j = g_j - exp(y_j) sum_k g_k.
         * A fully masked row was set to zeros (constant): no gradient. */
        int64_t nz = 0;
        while (nz < L && y[nz] == 0.0f) nz++;
        if (nz == L && row_fully_masked(x, m, ms, L)) return;
        double sg = 0.0;
        for (int64_t j = 0; j < L; j++) sg += gy[j];
        const float sgf = (float)sg;
        for (int64_t j = 0; j < L; j++) d[j] += gy[j] - expf(y[j]) * sgf;
    } else {
        /* y = exp(z - max) / sum  =>  dz_j = y_j (g_j - sum_k g_k y_k).
         * A fully masked row has y = 0, so its gradient is 0 by this formula. */
        double dot = 0.0;
        for (int64_t j = 0; j < L; j++) dot += (double)gy[j] * y[j];
        const float dotf = (float)dot;
        for (int64_t j = 0; j < L; j++) d[j] += y[j] * (gy[j] - dotf);
    }
}

/* The gradient of z = x + mask goes to x as is and to the mask summed over
 * the dims it was broadcast along. With a mask gradient, the per-element
 * gradient dz is first written to a scratch buffer (rows in parallel), then
 * added to gx and reduced into gmask serially, rows in order, so that the
 * result does not depend on the thread count. */
static attn_status softmax_backward_common(attn_ctx *ctx, attn_node *node, int is_log) {
    const int need_x = attn__needs_grad(node, 0);
    const int need_m = node->n_in > 1 && attn__needs_grad(node, 1);
    if (!need_x && !need_m) return ATTN_OK;
    sm_geom g;
    sm_geometry(node, &g);
    const float *x = attn_f32(node->in[0]);
    const float *m = node->n_in > 1 ? attn_f32(node->in[1]) : NULL;
    const float *y = attn_f32(node->out);
    const float *gy = node->out->grad;
    const int64_t rows = g.rows, L = g.L, ms = g.mst[3], n = rows * L;
    float *d = node->in[0]->grad;
    if (need_m) {
        d = attn__alloc_zero(ctx, (size_t)(n > 0 ? n : 1) * sizeof(float),
                             is_log ? "log_softmax backward (scratch)" : "softmax backward (scratch)");
        if (!d) return ctx->status;
    }
    int nt = attn__threads_for(ctx, 12.0 * (double)n);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t r = 0; r < rows; r++)
        softmax_row_backward(y + r * L, gy + r * L, x + r * L, m ? m + sm_mask_offset(&g, r) : NULL,
                             ms, d + r * L, L, is_log);
    if (need_m) {
        if (need_x) {
            float *gx = node->in[0]->grad;
            ATTN__OMP_FOR(nt)
            for (int64_t i = 0; i < n; i++) gx[i] += d[i];
        }
        float *gm = node->in[1]->grad;
        for (int64_t r = 0; r < rows; r++) {
            float *gmr = gm + sm_mask_offset(&g, r);
            const float *dr = d + r * L;
            for (int64_t j = 0; j < L; j++) gmr[j * ms] += dr[j];
        }
    }
    return ATTN_OK;
}

attn_status attn__softmax_backward(attn_ctx *ctx, attn_node *node) {
    return softmax_backward_common(ctx, node, 0);
}
attn_status attn__log_softmax_backward(attn_ctx *ctx, attn_node *node) {
    return softmax_backward_common(ctx, node, 1);
}

/* ---- cross-entropy ------------------------------------------------------------------------ */

attn_tensor *attn_cross_entropy(attn_ctx *ctx, attn_tensor *logits, attn_tensor *targets,
                                int32_t ignore_index, float label_smoothing) {
    const char *name = "cross_entropy";
    if (attn__any_null(ctx, name, 2, logits, targets)) return NULL;
    if (attn__check_dtype(ctx, name, "logits", logits, ATTN_F32)) return NULL;
    if (attn__check_dtype(ctx, name, "targets", targets, ATTN_I32)) return NULL;
    if (logits->ndim != 2 || targets->ndim != 1 || targets->shape[0] != logits->shape[0]) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: logits %s and targets %s: expected logits [N, V] and targets [N]", name,
                   attn__shp(logits), attn__shp(targets));
        return NULL;
    }
    if (!(label_smoothing >= 0.0f && label_smoothing < 1.0f)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: label_smoothing %g is outside [0, 1)", name,
                   (double)label_smoothing);
        return NULL;
    }
    logits = attn__contig(ctx, logits);
    targets = attn__contig(ctx, targets);
    if (!logits || !targets) return NULL;
    const int64_t N = logits->shape[0], V = logits->shape[1];
    const int32_t *t = attn_i32(targets);
    int64_t count = 0;
    for (int64_t i = 0; i < N; i++) {
        if (t[i] == ignore_index) continue;
        if (t[i] < 0 || t[i] >= V) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                       "%s: targets[%lld] = %d is outside [0, %lld) for logits %s, and is not "
                       "ignore_index (%d)",
                       name, (long long)i, (int)t[i], (long long)V, attn__shp(logits),
                       (int)ignore_index);
            return NULL;
        }
        count++;
    }
    attn_tensor *loss = attn__tensor(ctx, name, ATTN_F32, 0, NULL);
    const int64_t ssh[2] = {N, 2}; /* per row: the largest logit m and 1 / s */
    attn_tensor *lse = attn__tensor(ctx, name, ATTN_F32, 2, ssh);
    if (!loss || !lse) return NULL;
    attn_tensor *in[2] = {logits, targets};
    attn_node *node = attn__node(ctx, ATTN_OP_CROSS_ENTROPY, 2, in, loss);
    if (!node) return NULL;
    node->iarg[0] = ignore_index;
    node->iarg[1] = count;
    node->farg[0] = label_smoothing;
    node->saved[0] = lse;
    return attn__run(ctx, node);
}

/* The cross-entropy's exponentials, compiled for the baseline (SSE2), AVX2
 * and AVX-512 on x86-64 with GCC, chosen at load time (ifunc); ISO C mode
 * contracts no FMA, so every clone gives the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ATTN_NO_CLONES)
#define CE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CE_CLONES
#endif
#define CE_CHUNK 256

/* p[v] = exp(x[v] - sub) for v < n (n <= CE_CHUNK) with attn__exp_core
 * (vmath.h, below 1 ulp), exactly 0 where x[v] - sub < -87 (a -inf logit
 * included; libm's expf is below 1.7e-38 there); at most e^88 above (x[v] -
 * sub is at most a few ulp above 0 here). NaN stays NaN. The clamp is a loop
 * of its own and the zero a bit mask, so that both loops vectorise. */
CE_CLONES static void ce_exp_chunk(float *restrict p, const float *restrict x, float sub,
                                   int64_t n) {
    float c[CE_CHUNK];
    for (int64_t v = 0; v < n; v++) {
        const float d = x[v] - sub;
        const float hi = d > 88.0f ? 88.0f : d;
        c[v] = hi < -87.0f ? -87.0f : hi;
    }
    for (int64_t v = 0; v < n; v++) {
        const float e = attn__exp_core(c[v]);
        uint32_t eb;
        memcpy(&eb, &e, sizeof eb);
        eb &= (uint32_t)((x[v] - sub < -87.0f) ? 0u : 0xFFFFFFFFu);
        memcpy(&p[v], &eb, sizeof eb);
    }
}

/* loss_i = (1 - e) (lse_i - x_i[t_i]) + e (lse_i - mean_v x_i[v])
 *        = (1 - e) (-log p_i[t_i]) + e mean_v(-log p_i[v])
 * loss   = sum over counted rows of loss_i / count   (0 when count = 0),
 * with lse_i = m_i + log s_i, m_i the row's largest logit and s_i = sum_v
 * exp(x_i[v] - m_i) in [1, V]: each difference is formed as (m_i - x) +
 * log s_i in double, so logits of any finite size keep the log s_i that a
 * rounded lse_i would lose (logits of 1e30 gave a loss of 0 instead of log
 * 2). The row keeps m_i and 1 / s_i (saved[0], [N, 2]) for the backward.
 * The smoothing term is left out entirely when e = 0 (as PyTorch does), so
 * a -inf logit off the target does not turn the loss into NaN. */
static attn_status cross_entropy_forward_common(attn_ctx *ctx, attn_node *node, int is_ref) {
    const attn_tensor *lg = node->in[0];
    const int64_t N = lg->shape[0], V = lg->shape[1];
    const float *x = attn_f32(lg);
    const int32_t *t = attn_i32(node->in[1]);
    const int32_t ignore = (int32_t)node->iarg[0];
    const int64_t count = node->iarg[1];
    const double e = node->farg[0];
    float *stat = attn_f32(node->saved[0]);
    double *row_loss = attn__alloc(ctx, (size_t)(N > 0 ? N : 1) * sizeof(double),
                                   "cross_entropy (row losses)");
    if (!row_loss) return ctx->status;
    int nt = is_ref ? 1 : attn__threads_for(ctx, 24.0 * (double)N * (double)V);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t i = 0; i < N; i++) {
        const float *xi = x + i * V;
        if (t[i] == ignore) {
            stat[2 * i] = stat[2 * i + 1] = 0.0f;
            row_loss[i] = 0.0;
            continue;
        }
        double mx = -INFINITY, s = 0.0, sx = 0.0;
        for (int64_t v = 0; v < V; v++) mx = xi[v] > mx ? xi[v] : mx;
        if (is_ref) {
            for (int64_t v = 0; v < V; v++) s += exp((double)xi[v] - mx);
            if (e > 0.0)
                for (int64_t v = 0; v < V; v++) sx += xi[v];
        } else {
            float p[CE_CHUNK]; /* summed in order, in double */
            for (int64_t v0 = 0; v0 < V; v0 += CE_CHUNK) {
                const int64_t n = V - v0 < CE_CHUNK ? V - v0 : CE_CHUNK;
                ce_exp_chunk(p, xi + v0, (float)mx, n);
                for (int64_t v = 0; v < n; v++) s += p[v];
            }
            if (e > 0.0) {
                float acc[8] = {0};
                int64_t v8 = V - V % 8, v = 0;
                for (; v < v8; v += 8)
                    for (int k = 0; k < 8; k++) acc[k] += xi[v + k];
                for (int k = 0; k < 8; k++) sx += acc[k];
                for (; v < V; v++) sx += xi[v];
            }
        }
        const double ls = log(s);
        stat[2 * i] = (float)mx;
        stat[2 * i + 1] = (float)(1.0 / s);
        double li = (1.0 - e) * ((mx - (double)xi[t[i]]) + ls);
        if (e > 0.0) li += e * ((mx - sx / (double)V) + ls);
        row_loss[i] = li;
    }
    double total = 0.0;
    for (int64_t i = 0; i < N; i++) total += row_loss[i];
    attn_f32(node->out)[0] = count > 0 ? (float)(total / (double)count) : 0.0f;
    return ATTN_OK;
}

attn_status attn__cross_entropy_forward(attn_ctx *ctx, attn_node *node) {
    return cross_entropy_forward_common(ctx, node, 0);
}
attn_status attn__cross_entropy_ref(attn_ctx *ctx, attn_node *node) {
    return cross_entropy_forward_common(ctx, node, 1);
}

attn_status attn__cross_entropy_backward(attn_ctx *ctx, attn_node *node) {
    /* From loss = sum_i [lse_i - (1-e) x_i[t_i] - (e/V) sum_v x_i[v]] / count:
     *   dloss/dx_i[v] = (p_i[v] - (1-e) [v == t_i] - e/V) / count,
     * p_i[v] = exp(x_i[v] - m_i) / s_i from the forward's m_i and 1 / s_i,
     * for counted rows; ignored rows get 0. */
    if (!attn__needs_grad(node, 0)) return ATTN_OK;
    const int64_t count = node->iarg[1];
    if (count == 0) return ATTN_OK;
    const attn_tensor *lg = node->in[0];
    const int64_t N = lg->shape[0], V = lg->shape[1];
    const float *x = attn_f32(lg);
    const int32_t *t = attn_i32(node->in[1]);
    const int32_t ignore = (int32_t)node->iarg[0];
    const float e = node->farg[0];
    const float *stat = attn_f32(node->saved[0]);
    float *gx = node->in[0]->grad;
    const float scale = (float)((double)node->out->grad[0] / (double)count);
    const float smooth = e / (float)V;
    int nt = attn__threads_for(ctx, 16.0 * (double)N * (double)V);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t i = 0; i < N; i++) {
        if (t[i] == ignore) continue;
        const float *xi = x + i * V;
        float *gi = gx + i * V;
        const float mi = stat[2 * i], inv = stat[2 * i + 1];
        float p[CE_CHUNK];
        for (int64_t v0 = 0; v0 < V; v0 += CE_CHUNK) {
            const int64_t n = V - v0 < CE_CHUNK ? V - v0 : CE_CHUNK;
            ce_exp_chunk(p, xi + v0, mi, n);
            for (int64_t v = 0; v < n; v++) gi[v0 + v] += scale * (p[v] * inv - smooth);
        }
        gi[t[i]] -= scale * (1.0f - e);
    }
    return ATTN_OK;
}
