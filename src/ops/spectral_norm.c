/* spectral_norm.c: spectral normalisation of a weight (include/attn/conv.h),
 * as torch.nn.utils.parametrizations.spectral_norm with dim = 0 and one power
 * iteration.
 *
 * Shape contract: w [O, ...] (rank >= 2) f32, read as the matrix
 * W [O, K], K = numel / O; u [O], v [K] caller-owned contiguous f32 vectors.
 *   training: u <- normalize(W v), v <- normalize(W^T u) (in place, in
 *             double, before the node runs; normalize(a) = a / max(|a|, eps))
 *   sigma = u^T W v,  y = w / sigma.
 * Node: input w; saved[0] = u [O], saved[1] = v [K] (copies after the
 * iteration: constants of the backward, as torch's clones), saved[2] =
 * sigma [1]. Backward (docs/conv.md, "Spectral normalisation"):
 *   dW += g / sigma - (sum(g . W) / sigma^2) u v^T.
 */
#include <math.h>
#include <string.h>

#include "../core/internal.h"

/* sigma = u^T W v: row sums in double, rows in order. */
static double sn_sigma(const float *W, const float *u, const float *v, int64_t O, int64_t K) {
    double s = 0.0;
    for (int64_t o = 0; o < O; o++) {
        const float *r = W + o * K;
        double t = 0.0;
        for (int64_t k = 0; k < K; k++) t += (double)r[k] * v[k];
        s += (double)u[o] * t;
    }
    return s;
}

attn_status attn__spectral_norm_forward(attn_ctx *ctx, attn_node *node) {
    const attn_tensor *wt = node->in[0];
    const int64_t O = wt->shape[0], n = attn_tensor_numel(wt), K = n / O;
    const float *W = attn_f32(wt), *u = attn_f32(node->saved[0]), *v = attn_f32(node->saved[1]);
    float *sig = attn_f32(node->saved[2]), *y = attn_f32(node->out);
    const float sigma = (float)sn_sigma(W, u, v, O, K);
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
    const int64_t O = wt->shape[0], n = attn_tensor_numel(wt), K = n / O;
    const float *W = attn_f32(wt), *u = attn_f32(node->saved[0]), *v = attn_f32(node->saved[1]);
    double s = 0.0;
    for (int64_t o = 0; o < O; o++)
        for (int64_t k = 0; k < K; k++) s += (double)u[o] * W[o * K + k] * v[k];
    attn_f32(node->saved[2])[0] = (float)s;
    float *y = attn_f32(node->out);
    for (int64_t i = 0; i < n; i++) y[i] = (float)(W[i] / s);
    return ATTN_OK;
}

attn_status attn__spectral_norm_backward(attn_ctx *ctx, attn_node *node) {
    if (!attn__needs_grad(node, 0)) return ATTN_OK;
    const attn_tensor *wt = node->in[0];
    const int64_t O = wt->shape[0], n = attn_tensor_numel(wt), K = n / O;
    const float *W = attn_f32(wt), *u = attn_f32(node->saved[0]), *v = attn_f32(node->saved[1]);
    const float *g = node->out->grad;
    float *dW = node->in[0]->grad;
    const double sigma = attn_f32(node->saved[2])[0];
    /* y = W / sigma, sigma = u^T W v with u, v constant (d sigma / dW = u v^T):
     *   dW = g / sigma - (sum_ij g_ij W_ij) / sigma^2 u v^T */
    double gw = 0.0;
    for (int64_t i = 0; i < n; i++) gw += (double)g[i] * W[i];
    const float a = (float)(1.0 / sigma), b = (float)(gw / (sigma * sigma));
    const int nt = attn__threads_for(ctx, 3.0 * (double)n);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t o = 0; o < O; o++) {
        const float bu = b * u[o];
        for (int64_t k = 0; k < K; k++) dW[o * K + k] += a * g[o * K + k] - bu * v[k];
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
                                float eps) {
    const char *name = "spectral_norm";
    if (attn__any_null(ctx, name, 3, w, u, v)) return NULL;
    if (attn__check_dtype(ctx, name, "w", w, ATTN_F32)) return NULL;
    if (w->ndim < 2) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: w %s: expected rank >= 2 ([O, ...])", name,
                   attn__shp(w));
        return NULL;
    }
    for (int d = 0; d < w->ndim; d++)
        if (w->shape[d] < 1) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: w %s: every dimension must be >= 1", name,
                       attn__shp(w));
            return NULL;
        }
    const int64_t O = w->shape[0], K = attn_tensor_numel(w) / O;
    if (sn_check_vec(ctx, name, "u", u, O, w) || sn_check_vec(ctx, name, "v", v, K, w)) return NULL;
    if (!(eps > 0.0f) || isinf(eps)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: eps %g must be finite and > 0", name,
                   (double)eps);
        return NULL;
    }
    if (!(w = attn__contig(ctx, w))) return NULL;
    attn_tensor *y = attn__tensor_like(ctx, name, w);
    const int64_t one = 1;
    attn_tensor *us = attn__tensor(ctx, name, ATTN_F32, 1, &O);
    attn_tensor *vs = attn__tensor(ctx, name, ATTN_F32, 1, &K);
    attn_tensor *sig = attn__tensor(ctx, name, ATTN_F32, 1, &one);
    if (!y || !us || !vs || !sig) return NULL;
    float *uu = attn_f32(u), *vv = attn_f32(v);
    if (ctx->training) {
        /* one power iteration, torch's order: u from v, then v from u; the
         * products in double, each rounded once (into us / vs, which then
         * receive the copies) */
        const float *W = attn_f32(w);
        float *ut = attn_f32(us), *vt = attn_f32(vs);
        double nu = 0.0, nv = 0.0;
        for (int64_t o = 0; o < O; o++) {
            double t = 0.0;
            for (int64_t k = 0; k < K; k++) t += (double)W[o * K + k] * vv[k];
            ut[o] = (float)t;
            nu += t * t;
        }
        nu = sqrt(nu) < eps ? (double)eps : sqrt(nu);
        for (int64_t o = 0; o < O; o++) uu[o] = (float)(ut[o] / nu);
        for (int64_t k = 0; k < K; k++) {
            double t = 0.0;
            for (int64_t o = 0; o < O; o++) t += (double)W[o * K + k] * uu[o];
            vt[k] = (float)t;
            nv += t * t;
        }
        nv = sqrt(nv) < eps ? (double)eps : sqrt(nv);
        for (int64_t k = 0; k < K; k++) vv[k] = (float)(vt[k] / nv);
    }
    memcpy(attn_f32(us), uu, sizeof(float) * (size_t)O);
    memcpy(attn_f32(vs), vv, sizeof(float) * (size_t)K);
    attn_node *node = attn__node(ctx, ATTN_OP_SPECTRAL_NORM, 1, &w, y);
    if (!node) return NULL;
    node->saved[0] = us;
    node->saved[1] = vs;
    node->saved[2] = sig;
    return attn__run(ctx, node);
}
