/* layernorm.c: layer normalisation over the last axis, as
 * torch.nn.functional.layer_norm(x, (C,), gamma, beta, eps).
 *
 * Shape contract: x [..., C] f32, gamma [C] or none, beta [C] or none
 * -> y [..., C]. Inputs: in[0] = x, then gamma (if iarg[0]), then beta (if
 * iarg[1]); farg[0] = eps. With R = numel / C rows:
 *   mean_r = sum_j x_rj / C,  var_r = sum_j (x_rj - mean_r)^2 / C  (biased)
 *   rstd_r = 1 / sqrt(var_r + eps),  xhat_rj = (x_rj - mean_r) rstd_r
 *   y_rj   = xhat_rj gamma_j + beta_j
 * saved[0] = mean [R], saved[1] = rstd [R] (f32) for backward.
 * Derivation of the backward: docs/ops.md, "Layer normalisation".
 */
#include <math.h>
#include <string.h>

#include "../core/internal.h"
#include "view_internal.h"
#include "attn/ops.h"

#define LN_LANES 16      /* independent partial sums: vectorisable without reassociation */
#define LN_COL_BLOCK 64  /* columns per task in the gamma/beta gradient reduction */
#define LN_DLANES 8      /* double partial sums of the input gradient's two row sums */

/* The row kernels (forward, input gradient) are compiled for the baseline (SSE2), AVX2
 * and AVX-512 on x86-64 with GCC, chosen at load time (ifunc); no FMA
 * contraction (ISO C) and fixed summation orders, so every clone gives the
 * same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ATTN_NO_CLONES)
#define LN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LN_CLONES
#endif

attn_tensor *attn_layernorm(attn_ctx *ctx, attn_tensor *x, attn_tensor *gamma, attn_tensor *beta,
                            float eps) {
    const char *name = "layernorm";
    if (attn__any_null(ctx, name, 1, x)) return NULL;
    if (attn__check_dtype(ctx, name, "x", x, ATTN_F32)) return NULL;
    if (x->ndim < 1 || x->shape[x->ndim - 1] < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x %s: expected [..., C] with C >= 1", name,
                   attn__shp(x));
        return NULL;
    }
    const int64_t C = x->shape[x->ndim - 1];
    attn_tensor *const affine[2] = {gamma, beta};
    static const char *const affine_name[2] = {"gamma", "beta"};
    for (int k = 0; k < 2; k++) {
        const attn_tensor *p = affine[k];
        if (!p) continue;
        if (attn__check_dtype(ctx, name, affine_name[k], p, ATTN_F32)) return NULL;
        if (p->ndim != 1 || p->shape[0] != C) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %s %s does not match x %s: expected [%lld]", name,
                       affine_name[k], attn__shp(p), attn__shp(x), (long long)C);
            return NULL;
        }
    }
    if (!(eps >= 0.0f) || isinf(eps)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: eps %g must be finite and >= 0", name,
                   (double)eps);
        return NULL;
    }
    x = attn__contig(ctx, x);
    if (!x) return NULL;
    attn_tensor *in[3];
    int n_in = 0;
    in[n_in++] = x;
    if (gamma && !(in[n_in++] = attn__contig(ctx, gamma))) return NULL;
    if (beta && !(in[n_in++] = attn__contig(ctx, beta))) return NULL;
    const int64_t rows = attn_tensor_numel(x) / C;
    attn_tensor *y = attn__tensor_like(ctx, name, x);
    attn_tensor *mean = attn__tensor(ctx, name, ATTN_F32, 1, &rows);
    attn_tensor *rstd = attn__tensor(ctx, name, ATTN_F32, 1, &rows);
    if (!y || !mean || !rstd) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_LAYERNORM, n_in, in, y);
    if (!node) return NULL;
    node->iarg[0] = gamma != NULL;
    node->iarg[1] = beta != NULL;
    node->farg[0] = eps;
    node->saved[0] = mean;
    node->saved[1] = rstd;
    return attn__run(ctx, node);
}

/* gamma and beta of the node (NULL when absent). */
static void ln_affine(const attn_node *node, const float **gamma, const float **beta, int *ig,
                      int *ib) {
    int k = 1;
    *ig = node->iarg[0] ? k++ : -1;
    *ib = node->iarg[1] ? k++ : -1;
    *gamma = *ig >= 0 ? attn_f32(node->in[*ig]) : NULL;
    *beta = *ib >= 0 ? attn_f32(node->in[*ib]) : NULL;
}

/* sum_j x_j, in LN_LANES float partial sums combined in double. */
static inline double ln_sum(const float *x, int64_t n) {
    float acc[LN_LANES] = {0};
    int64_t nb = n - n % LN_LANES, j = 0;
    for (; j < nb; j += LN_LANES)
        for (int k = 0; k < LN_LANES; k++) acc[k] += x[j + k];
    double s = 0.0;
    for (int k = 0; k < LN_LANES; k++) s += acc[k];
    for (; j < n; j++) s += x[j];
    return s;
}

/* sum_j (x_j - mu)^2, the same way (second pass of the two-pass variance). */
static inline double ln_sqdev(const float *x, int64_t n, float mu) {
    float acc[LN_LANES] = {0};
    int64_t nb = n - n % LN_LANES, j = 0;
    for (; j < nb; j += LN_LANES)
        for (int k = 0; k < LN_LANES; k++) {
            float d = x[j + k] - mu;
            acc[k] += d * d;
        }
    double s = 0.0;
    for (int k = 0; k < LN_LANES; k++) s += acc[k];
    for (; j < n; j++) {
        double d = (double)x[j] - mu;
        s += d * d;
    }
    return s;
}

/* One row of the forward: its mean and 1 / std (two passes), then
 * yr = (xr - mu) rs gamma + beta (either absent). In the clones like the
 * input gradient's row kernel (same bits in every clone). */
LN_CLONES static void ln_forward_row(float *restrict yr, float *restrict mean, float *restrict rstd,
                                     const float *restrict xr, const float *restrict gamma,
                                     const float *restrict beta, int64_t C, double eps) {
    const float mu = (float)(ln_sum(xr, C) / (double)C);
    const float rs = (float)(1.0 / sqrt(ln_sqdev(xr, C, mu) / (double)C + eps));
    *mean = mu;
    *rstd = rs;
    if (gamma && beta)
        for (int64_t j = 0; j < C; j++) yr[j] = (xr[j] - mu) * rs * gamma[j] + beta[j];
    else if (gamma)
        for (int64_t j = 0; j < C; j++) yr[j] = (xr[j] - mu) * rs * gamma[j];
    else if (beta)
        for (int64_t j = 0; j < C; j++) yr[j] = (xr[j] - mu) * rs + beta[j];
    else
        for (int64_t j = 0; j < C; j++) yr[j] = (xr[j] - mu) * rs;
}

attn_status attn__layernorm_forward(attn_ctx *ctx, attn_node *node) {
    const attn_tensor *xt = node->in[0];
    const int64_t C = xt->shape[xt->ndim - 1], rows = attn_tensor_numel(xt) / C;
    const float *x = attn_f32(xt);
    const float *gamma, *beta;
    int ig, ib;
    ln_affine(node, &gamma, &beta, &ig, &ib);
    const double eps = node->farg[0];
    float *y = attn_f32(node->out), *mean = attn_f32(node->saved[0]),
          *rstd = attn_f32(node->saved[1]);
    int nt = attn__threads_for(ctx, 8.0 * (double)rows * (double)C);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t r = 0; r < rows; r++)
        ln_forward_row(y + r * C, mean + r, rstd + r, x + r * C, gamma, beta, C, eps);
    return ATTN_OK;
}

attn_status attn__layernorm_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const attn_tensor *xt = node->in[0];
    const int64_t C = xt->shape[xt->ndim - 1], rows = attn_tensor_numel(xt) / C;
    const float *x = attn_f32(xt);
    const float *gamma, *beta;
    int ig, ib;
    ln_affine(node, &gamma, &beta, &ig, &ib);
    const double eps = node->farg[0];
    float *y = attn_f32(node->out), *mean = attn_f32(node->saved[0]),
          *rstd = attn_f32(node->saved[1]);
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        double mu = 0.0, var = 0.0;
        for (int64_t j = 0; j < C; j++) mu += xr[j];
        mu /= (double)C;
        for (int64_t j = 0; j < C; j++) var += ((double)xr[j] - mu) * ((double)xr[j] - mu);
        var /= (double)C;
        const double rs = 1.0 / sqrt(var + eps);
        mean[r] = (float)mu;
        rstd[r] = (float)rs;
        for (int64_t j = 0; j < C; j++) {
            double v = ((double)xr[j] - mu) * rs;
            if (gamma) v *= gamma[j];
            if (beta) v += beta[j];
            y[r * C + j] = (float)v;
        }
    }
    return ATTN_OK;
}

/* One row of the input gradient: dr[j] += rs (gg_j - mean(gg) - xh_j mean(gg xh)),
 * gg = g gamma (g without gamma), xh = (x - mu) rs. The two means are sums
 * over LN_DLANES double partial sums in a fixed order. */
LN_CLONES static void ln_dx_row(float *restrict dr, const float *restrict xr,
                                const float *restrict gr, const float *restrict gamma, int64_t C,
                                float mu, float rs) {
    double a[LN_DLANES] = {0}, b[LN_DLANES] = {0};
    int64_t j = 0;
    if (gamma) {
        for (; j + LN_DLANES <= C; j += LN_DLANES)
            for (int k = 0; k < LN_DLANES; k++) {
                const float gg = gr[j + k] * gamma[j + k];
                a[k] += gg;
                b[k] += (double)gg * ((xr[j + k] - mu) * rs);
            }
        for (int k = 0; j < C; j++, k++) {
            const float gg = gr[j] * gamma[j];
            a[k] += gg;
            b[k] += (double)gg * ((xr[j] - mu) * rs);
        }
    } else {
        for (; j + LN_DLANES <= C; j += LN_DLANES)
            for (int k = 0; k < LN_DLANES; k++) {
                a[k] += gr[j + k];
                b[k] += (double)gr[j + k] * ((xr[j + k] - mu) * rs);
            }
        for (int k = 0; j < C; j++, k++) {
            a[k] += gr[j];
            b[k] += (double)gr[j] * ((xr[j] - mu) * rs);
        }
    }
    const double sa = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    const double sb = ((b[0] + b[1]) + (b[2] + b[3])) + ((b[4] + b[5]) + (b[6] + b[7]));
    const float ma = (float)(sa / (double)C), mb = (float)(sb / (double)C);
    if (gamma)
        for (j = 0; j < C; j++) {
            const float xh = (xr[j] - mu) * rs;
            dr[j] += rs * (gr[j] * gamma[j] - ma - xh * mb);
        }
    else
        for (j = 0; j < C; j++) {
            const float xh = (xr[j] - mu) * rs;
            dr[j] += rs * (gr[j] - ma - xh * mb);
        }
}

/* The affine parameters' gradient sums over a block of w <= LN_COL_BLOCK
 * columns (x and gy at the block's first column, row stride C):
 * sg[k] = sum_r gy_rk xhat_rk and sb[k] = sum_r gy_rk, in double, over the
 * rows in order (the same sums in every clone). */
LN_CLONES static void ln_affine_sums(double *restrict sg, double *restrict sb,
                                     const float *restrict x, const float *restrict gy,
                                     const float *restrict mean, const float *restrict rstd,
                                     int64_t rows, int64_t C, int64_t w) {
    for (int64_t k = 0; k < w; k++) sg[k] = sb[k] = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * C, *gr = gy + r * C;
        const float mu = mean[r], rs = rstd[r];
        for (int64_t k = 0; k < w; k++) {
            sg[k] += (double)gr[k] * ((xr[k] - mu) * rs);
            sb[k] += gr[k];
        }
    }
}

attn_status attn__layernorm_backward(attn_ctx *ctx, attn_node *node) {
    const attn_tensor *xt = node->in[0];
    const int64_t C = xt->shape[xt->ndim - 1], rows = attn_tensor_numel(xt) / C;
    const float *x = attn_f32(xt), *gy = node->out->grad;
    const float *gamma, *beta;
    int ig, ib;
    ln_affine(node, &gamma, &beta, &ig, &ib);
    (void)beta;
    const float *mean = attn_f32(node->saved[0]), *rstd = attn_f32(node->saved[1]);
    int nt = attn__threads_for(ctx, 10.0 * (double)rows * (double)C);
    (void)nt;

    if (attn__needs_grad(node, 0)) {
        /* y = xhat * gamma + beta, xhat = (x - mean) rstd. With gg = g * gamma:
         *   dx_j = rstd (gg_j - mean_k(gg_k) - xhat_j mean_k(gg_k xhat_k)),
         * the mean and rstd terms being the derivatives through mean_r and
         * var_r (docs/ops.md). */
        float *gx = node->in[0]->grad;
        ATTN__OMP_FOR(nt)
        for (int64_t r = 0; r < rows; r++)
            ln_dx_row(gx + r * C, x + r * C, gy + r * C, gamma, C, mean[r], rstd[r]);
    }

    const int need_g = ig >= 0 && attn__needs_grad(node, ig);
    const int need_b = ib >= 0 && attn__needs_grad(node, ib);
    if (need_g || need_b) {
        /* y_rj = xhat_rj gamma_j + beta_j  =>  dgamma_j += sum_r g_rj xhat_rj,
         * dbeta_j += sum_r g_rj. Each task owns a block of columns and walks
         * the rows in order: no race, and the same sums for any thread count. */
        float *ggam = need_g ? node->in[ig]->grad : NULL;
        float *gbet = need_b ? node->in[ib]->grad : NULL;
        const int64_t nblk = (C + LN_COL_BLOCK - 1) / LN_COL_BLOCK;
        ATTN__OMP_FOR(nt)
        for (int64_t blk = 0; blk < nblk; blk++) {
            const int64_t j0 = blk * LN_COL_BLOCK;
            const int64_t w = C - j0 < LN_COL_BLOCK ? C - j0 : LN_COL_BLOCK;
            double sg[LN_COL_BLOCK], sb[LN_COL_BLOCK];
            ln_affine_sums(sg, sb, x + j0, gy + j0, mean, rstd, rows, C, w);
            for (int64_t k = 0; k < w; k++) {
                if (ggam) ggam[j0 + k] += (float)sg[k];
                if (gbet) gbet[j0 + k] += (float)sb[k];
            }
        }
    }
    return ATTN_OK;
}
