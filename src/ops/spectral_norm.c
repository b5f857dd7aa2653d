/* spectral_norm.c: spectral normalisation of a weight (include/attn/conv.h),
 * as torch.nn.utils.parametrizations.spectral_norm with one power iteration.
 *
 * Shape contract: w [A, B, ...] (rank >= 2) f32, with R = the product of the
 * dimensions after the first two, read as the matrix W [O, K]:
 *   dim 0: W[a, b R + r] = w[a, b, r]   (O = A, K = B R; conv weights)
 *   dim 1: W[b, a R + r] = w[a, b, r]   (O = B, K = A R; transposed-conv
 *          weights [Cin, Cout/G, ...], torch's default for them)
 * u [O], v [K]: caller-owned contiguous f32 vectors.
 *   training: u <- normalize(W v), v <- normalize(W^T u) (in place, sums in
 *             double, before the node runs; normalize(a) = a / max(|a|, eps))
 *   sigma = u^T W v,  y = w / sigma.
 * Node: input w; iarg[0] = dim; saved[0] = u [O], saved[1] = v [K] (copies
 * after the iteration: constants of the backward, as torch's clones),
 * saved[2] = sigma [1]. Backward (docs/conv.md, "Spectral normalisation"):
 *   dW += g / sigma - (sum(g . W) / sigma^2) u v^T  (mapped back to w's layout).
 */
#include <math.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/conv.h"
#include "view_internal.h"

/* w as [A, B, R] and the matrix it is read as. */
typedef struct sn_lay {
    int64_t A, B, R, O, K;
    int dim;
} sn_lay;

static sn_lay sn_layout(const attn_tensor *w, int dim) {
    sn_lay l;
    l.A = w->shape[0];
    l.B = w->shape[1];
    l.R = attn_tensor_numel(w) / (l.A * l.B);
    l.dim = dim;
    l.O = dim ? l.B : l.A;
    l.K = dim ? l.A * l.R : l.B * l.R;
    return l;
}

/* The row and the column of W that element (a, b, r) of w is. */
static inline int64_t sn_row(const sn_lay *l, int64_t a, int64_t b) { return l->dim ? b : a; }
static inline int64_t sn_col(const sn_lay *l, int64_t a, int64_t b, int64_t r) {
    return (l->dim ? a : b) * l->R + r;
}

/* sigma = u^T W v in double, elements in w's order. */
static double sn_sigma(const sn_lay *l, const float *w, const float *u, const float *v) {
    double s = 0.0;
    for (int64_t a = 0; a < l->A; a++)
        for (int64_t b = 0; b < l->B; b++) {
            const float *wr = w + (a * l->B + b) * l->R;
            const float *vr = v + sn_col(l, a, b, 0);
            double t = 0.0;
            for (int64_t r = 0; r < l->R; r++) t += (double)wr[r] * vr[r];
            s += (double)u[sn_row(l, a, b)] * t;
        }
    return s;
}

attn_status attn__spectral_norm_forward(attn_ctx *ctx, attn_node *node) {
    const attn_tensor *wt = node->in[0];
    const sn_lay l = sn_layout(wt, (int)node->iarg[0]);
    const int64_t n = attn_tensor_numel(wt);
    const float *W = attn_f32(wt), *u = attn_f32(node->saved[0]), *v = attn_f32(node->saved[1]);
    float *sig = attn_f32(node->saved[2]), *y = attn_f32(node->out);
    const float sigma = (float)sn_sigma(&l, W, u, v);
    sig[0] = sigma;
    const int nt = attn__threads_for(ctx, (double)n);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t i = 0; i < n; i++) y[i] = W[i] / sigma;
    return ATTN_OK;
}

attn_status attn__spectral_norm_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const attn_tensor *wt = node->in[0];
    const sn_lay l = sn_layout(wt, (int)node->iarg[0]);
    const float *W = attn_f32(wt), *u = attn_f32(node->saved[0]), *v = attn_f32(node->saved[1]);
    double s = 0.0;
    for (int64_t a = 0; a < l.A; a++)
        for (int64_t b = 0; b < l.B; b++)
            for (int64_t r = 0; r < l.R; r++)
                s += (double)u[sn_row(&l, a, b)] * W[(a * l.B + b) * l.R + r] *
                     v[sn_col(&l, a, b, r)];
    attn_f32(node->saved[2])[0] = (float)s;
    float *y = attn_f32(node->out);
    const int64_t n = attn_tensor_numel(wt);
    for (int64_t i = 0; i < n; i++) y[i] = (float)(W[i] / s);
    return ATTN_OK;
}

attn_status attn__spectral_norm_backward(attn_ctx *ctx, attn_node *node) {
    if (!attn__needs_grad(node, 0)) return ATTN_OK;
    const attn_tensor *wt = node->in[0];
    const sn_lay l = sn_layout(wt, (int)node->iarg[0]);
    const int64_t n = attn_tensor_numel(wt);
    const float *W = attn_f32(wt), *u = attn_f32(node->saved[0]), *v = attn_f32(node->saved[1]);
    const float *g = node->out->grad;
    float *dW = node->in[0]->grad;
    const double sigma = attn_f32(node->saved[2])[0];
    /* y = W / sigma, sigma = u^T W v with u, v constant (d sigma / dW = u v^T):
     *   dW = g / sigma - (sum_ij g_ij W_ij) / sigma^2 u v^T */
    double gw = 0.0;
    for (int64_t i = 0; i < n; i++) gw += (double)g[i] * W[i];
    const float ca = (float)(1.0 / sigma), cb = (float)(gw / (sigma * sigma));
    const int nt = attn__threads_for(ctx, 3.0 * (double)n);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t a = 0; a < l.A; a++)
        for (int64_t b = 0; b < l.B; b++) {
            const int64_t e = (a * l.B + b) * l.R;
            const float bu = cb * u[sn_row(&l, a, b)];
            const float *vr = v + sn_col(&l, a, b, 0);
            for (int64_t r = 0; r < l.R; r++) dW[e + r] += ca * g[e + r] - bu * vr[r];
        }
    return ATTN_OK;
}

/* ---- the graph op -------------------------------------------------------------------------- */

static int sn_check_vec(attn_ctx *ctx, const char *name, const char *arg, const attn_tensor *p,
                        int64_t len, const attn_tensor *w) {
    if (attn__check_dtype(ctx, name, arg, p, ATTN_F32)) return -1;
    if (p->ndim != 1 || p->shape[0] != len) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %s %s for w %s: expected [%lld]", name, arg,
                   attn__shp(p), attn__shp(w), (long long)len);
        return -1;
    }
    if (!attn_tensor_is_contiguous(p)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: %s must be contiguous (it is updated in place)",
                   name, arg);
        return -1;
    }
    return 0;
}

attn_tensor *attn_spectral_norm(attn_ctx *ctx, attn_tensor *w, attn_tensor *u, attn_tensor *v,
                                int dim, float eps) {
    const char *name = "spectral_norm";
    if (attn__any_null(ctx, name, 3, w, u, v)) return NULL;
    if (attn__check_dtype(ctx, name, "w", w, ATTN_F32)) return NULL;
    if (w->ndim < 2) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: w %s: expected rank >= 2", name, attn__shp(w));
        return NULL;
    }
    for (int d = 0; d < w->ndim; d++)
        if (w->shape[d] < 1) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: w %s: every dimension must be >= 1", name,
                       attn__shp(w));
            return NULL;
        }
    if (dim != 0 && dim != 1) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: dim %d: expected 0 (conv weights) or 1 "
                   "(transposed-conv weights)", name, dim);
        return NULL;
    }
    const sn_lay l = sn_layout(w, dim);
    if (sn_check_vec(ctx, name, "u", u, l.O, w) || sn_check_vec(ctx, name, "v", v, l.K, w))
        return NULL;
    if (!(eps > 0.0f) || isinf(eps)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: eps %g must be finite and > 0", name,
                   (double)eps);
        return NULL;
    }
    if (!(w = attn__contig(ctx, w))) return NULL;
    attn_tensor *y = attn__tensor_like(ctx, name, w);
    const int64_t one = 1;
    attn_tensor *us = attn__tensor(ctx, name, ATTN_F32, 1, &l.O);
    attn_tensor *vs = attn__tensor(ctx, name, ATTN_F32, 1, &l.K);
    attn_tensor *sig = attn__tensor(ctx, name, ATTN_F32, 1, &one);
    if (!y || !us || !vs || !sig) return NULL;
    float *uu = attn_f32(u), *vv = attn_f32(v);
    if (ctx->training) {
        /* one power iteration, torch's order: u from v, then v from u; each
         * entry summed in double and rounded once (into us / vs, which then
         * receive the copies) */
        const float *W = attn_f32(w);
        float *ut = attn_f32(us), *vt = attn_f32(vs);
        double nu = 0.0, nv = 0.0;
        for (int64_t o = 0; o < l.O; o++) { /* (W v)[o] */
            double t = 0.0;
            for (int64_t x = 0; x < (dim ? l.A : l.B); x++) {
                const int64_t a = dim ? x : o, b = dim ? o : x;
                const float *wr = W + (a * l.B + b) * l.R, *vr = vv + sn_col(&l, a, b, 0);
                for (int64_t r = 0; r < l.R; r++) t += (double)wr[r] * vr[r];
            }
            ut[o] = (float)t;
            nu += t * t;
        }
        nu = sqrt(nu) < eps ? (double)eps : sqrt(nu);
        for (int64_t o = 0; o < l.O; o++) uu[o] = (float)(ut[o] / nu);
        for (int64_t k = 0; k < l.K; k++) { /* (W^T u)[k], k = x R + r */
            const int64_t x = k / l.R, r = k % l.R;
            double t = 0.0;
            for (int64_t o = 0; o < l.O; o++) {
                const int64_t a = dim ? x : o, b = dim ? o : x;
                t += (double)W[(a * l.B + b) * l.R + r] * uu[o];
            }
            vt[k] = (float)t;
            nv += t * t;
        }
        nv = sqrt(nv) < eps ? (double)eps : sqrt(nv);
        for (int64_t k = 0; k < l.K; k++) vv[k] = (float)(vt[k] / nv);
    }
    memcpy(attn_f32(us), uu, sizeof(float) * (size_t)l.O);
    memcpy(attn_f32(vs), vv, sizeof(float) * (size_t)l.K);
    attn_node *node = attn__node(ctx, ATTN_OP_SPECTRAL_NORM, 1, &w, y);
    if (!node) return NULL;
    node->iarg[0] = dim;
    node->saved[0] = us;
    node->saved[1] = vs;
    node->saved[2] = sig;
    return attn__run(ctx, node);
}
