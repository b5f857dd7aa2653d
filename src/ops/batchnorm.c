/* batchnorm.c: batch normalisation over the channel axis (include/attn/conv.h),
 * as torch.nn.functional.batch_norm.
 *
 * Shape contract: x [N, C], [N, C, L] or [N, C, H, W] f32; gamma, beta [C]
 * or none -> y like x. Per channel c, over its M = N * (spatial size)
 * elements:
 *   batch statistics: mean_c = sum x / M, var_c = sum (x - mean_c)^2 / M (biased)
 *   running:          mean_c = running_mean[c], var_c = running_var[c]
 *   y = (x - mean_c) rstd_c gamma_c + beta_c,  rstd_c = 1 / sqrt(var_c + eps).
 * Node: inputs x, then gamma (iarg[0]), then beta (iarg[1]); iarg[2] = 1 for
 * batch statistics (computed by the kernels), 0 for running statistics
 * (written into saved[0..1] by attn_batchnorm before the kernels run);
 * farg[0] = eps. saved[0] = mean [C], saved[1] = rstd [C], saved[2] = the
 * biased variance [C] (for the running-variance update).
 * Derivation of the backward: docs/conv.md, "Batch normalisation".
 */
#include <math.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/conv.h"
#include "view_internal.h"

typedef struct bn_geom {
    int64_t N, C, S; /* S: spatial size (1 for [N, C]) */
    const float *gamma, *beta;
    int ig, ib, batch;
} bn_geom;

static bn_geom bn_geom_of(const attn_node *node) {
    const attn_tensor *x = node->in[0];
    bn_geom g;
    g.N = x->shape[0];
    g.C = x->shape[1];
    g.S = attn_tensor_numel(x) / (g.N * g.C);
    int k = 1;
    g.ig = node->iarg[0] ? k++ : -1;
    g.ib = node->iarg[1] ? k++ : -1;
    g.gamma = g.ig >= 0 ? attn_f32(node->in[g.ig]) : NULL;
    g.beta = g.ib >= 0 ? attn_f32(node->in[g.ib]) : NULL;
    g.batch = (int)node->iarg[2];
    return g;
}

/* y of channel c from the saved mean and rstd. */
static void bn_apply(const bn_geom *g, const float *x, float *y, int64_t c, float mu, float rs) {
    const float ga = g->gamma ? g->gamma[c] : 1.0f, be = g->beta ? g->beta[c] : 0.0f;
    for (int64_t n = 0; n < g->N; n++) {
        const float *xr = x + (n * g->C + c) * g->S;
        float *yr = y + (n * g->C + c) * g->S;
        for (int64_t s = 0; s < g->S; s++) yr[s] = (xr[s] - mu) * rs * ga + be;
    }
}

attn_status attn__batchnorm_forward(attn_ctx *ctx, attn_node *node) {
    const bn_geom g = bn_geom_of(node);
    const float *x = attn_f32(node->in[0]);
    float *y = attn_f32(node->out), *mean = attn_f32(node->saved[0]),
          *rstd = attn_f32(node->saved[1]), *var = attn_f32(node->saved[2]);
    const double eps = node->farg[0], M = (double)(g.N * g.S);
    const int nt = attn__threads_for(ctx, 6.0 * (double)g.N * (double)g.C * (double)g.S);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t c = 0; c < g.C; c++) {
        if (g.batch) {
            /* two passes, each row summed in float and the rows in double */
            double s = 0.0;
            for (int64_t n = 0; n < g.N; n++) {
                const float *xr = x + (n * g.C + c) * g.S;
                float r = 0.0f;
                for (int64_t i = 0; i < g.S; i++) r += xr[i];
                s += r;
            }
            const float mu = (float)(s / M);
            double q = 0.0;
            for (int64_t n = 0; n < g.N; n++) {
                const float *xr = x + (n * g.C + c) * g.S;
                float r = 0.0f;
                for (int64_t i = 0; i < g.S; i++) {
                    const float d = xr[i] - mu;
                    r += d * d;
                }
                q += r;
            }
            mean[c] = mu;
            var[c] = (float)(q / M);
            rstd[c] = (float)(1.0 / sqrt(q / M + eps));
        }
        bn_apply(&g, x, y, c, mean[c], rstd[c]);
    }
    return ATTN_OK;
}

attn_status attn__batchnorm_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const bn_geom g = bn_geom_of(node);
    const float *x = attn_f32(node->in[0]);
    float *y = attn_f32(node->out), *mean = attn_f32(node->saved[0]),
          *rstd = attn_f32(node->saved[1]), *var = attn_f32(node->saved[2]);
    const double eps = node->farg[0], M = (double)(g.N * g.S);
    for (int64_t c = 0; c < g.C; c++) {
        double mu = mean[c], rs = rstd[c];
        if (g.batch) {
            double s = 0.0, q = 0.0;
            for (int64_t n = 0; n < g.N; n++)
                for (int64_t i = 0; i < g.S; i++) s += x[(n * g.C + c) * g.S + i];
            mu = s / M;
            for (int64_t n = 0; n < g.N; n++)
                for (int64_t i = 0; i < g.S; i++) {
                    const double d = x[(n * g.C + c) * g.S + i] - mu;
                    q += d * d;
                }
            rs = 1.0 / sqrt(q / M + eps);
            mean[c] = (float)mu;
            var[c] = (float)(q / M);
            rstd[c] = (float)rs;
        }
        const double ga = g.gamma ? g.gamma[c] : 1.0, be = g.beta ? g.beta[c] : 0.0;
        for (int64_t n = 0; n < g.N; n++)
            for (int64_t i = 0; i < g.S; i++) {
                const int64_t o = (n * g.C + c) * g.S + i;
                y[o] = (float)((x[o] - mu) * rs * ga + be);
            }
    }
    return ATTN_OK;
}

attn_status attn__batchnorm_backward(attn_ctx *ctx, attn_node *node) {
    const bn_geom g = bn_geom_of(node);
    const float *x = attn_f32(node->in[0]), *gy = node->out->grad;
    const float *mean = attn_f32(node->saved[0]), *rstd = attn_f32(node->saved[1]);
    float *gx = attn__needs_grad(node, 0) ? node->in[0]->grad : NULL;
    float *ggam = g.ig >= 0 && attn__needs_grad(node, g.ig) ? node->in[g.ig]->grad : NULL;
    float *gbet = g.ib >= 0 && attn__needs_grad(node, g.ib) ? node->in[g.ib]->grad : NULL;
    const double M = (double)(g.N * g.S);
    const int nt = attn__threads_for(ctx, 8.0 * (double)g.N * (double)g.C * (double)g.S);
    (void)nt;
    /* Each task owns channels: no races, the same sums for any thread count. */
    ATTN__OMP_FOR(nt)
    for (int64_t c = 0; c < g.C; c++) {
        const float mu = mean[c], rs = rstd[c], ga = g.gamma ? g.gamma[c] : 1.0f;
        /* sg = sum_i dy_i, sgx = sum_i dy_i xhat_i (double, rows in order) */
        double sg = 0.0, sgx = 0.0;
        for (int64_t n = 0; n < g.N; n++) {
            const float *xr = x + (n * g.C + c) * g.S, *gr = gy + (n * g.C + c) * g.S;
            for (int64_t i = 0; i < g.S; i++) {
                sg += gr[i];
                sgx += (double)gr[i] * ((xr[i] - mu) * rs);
            }
        }
        /* y = xhat gamma + beta  =>  dgamma += sum dy xhat, dbeta += sum dy */
        if (ggam) ggam[c] += (float)sgx;
        if (gbet) gbet[c] += (float)sg;
        if (!gx) continue;
        if (g.batch) {
            /* mean and var depend on x:
             *   dx_i = gamma rstd (dy_i - sg / M - xhat_i sgx / M) */
            const float a = (float)(sg / M), b = (float)(sgx / M), k = ga * rs;
            for (int64_t n = 0; n < g.N; n++) {
                const float *xr = x + (n * g.C + c) * g.S, *gr = gy + (n * g.C + c) * g.S;
                float *dr = gx + (n * g.C + c) * g.S;
                for (int64_t i = 0; i < g.S; i++)
                    dr[i] += k * (gr[i] - a - (xr[i] - mu) * rs * b);
            }
        } else {
            /* running statistics are constants: dx_i = gamma rstd dy_i */
            const float k = ga * rs;
            for (int64_t n = 0; n < g.N; n++) {
                const float *gr = gy + (n * g.C + c) * g.S;
                float *dr = gx + (n * g.C + c) * g.S;
                for (int64_t i = 0; i < g.S; i++) dr[i] += k * gr[i];
            }
        }
    }
    return ATTN_OK;
}

/* ---- the graph op ---------------------------------------------------------------------------- */

static int bn_check_vec(attn_ctx *ctx, const char *name, const char *arg, const attn_tensor *p,
                        const attn_tensor *x, int contiguous) {
    if (!p) return 0;
    if (attn__check_dtype(ctx, name, arg, p, ATTN_F32)) return -1;
    if (p->ndim != 1 || p->shape[0] != x->shape[1]) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %s %s does not match x %s: expected [%lld]", name, arg,
                   attn__shp(p), attn__shp(x), (long long)x->shape[1]);
        return -1;
    }
    if (contiguous && !attn_tensor_is_contiguous(p)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: %s must be contiguous (it is updated in place)",
                   name, arg);
        return -1;
    }
    return 0;
}

attn_tensor *attn_batchnorm(attn_ctx *ctx, attn_tensor *x, attn_tensor *gamma, attn_tensor *beta,
                            attn_tensor *running_mean, attn_tensor *running_var, float momentum,
                            float eps) {
    const char *name = "batchnorm";
    if (attn__any_null(ctx, name, 1, x)) return NULL;
    if (attn__check_dtype(ctx, name, "x", x, ATTN_F32)) return NULL;
    if (x->ndim < 2 || x->ndim > 4) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x %s: expected [N, C], [N, C, L] or [N, C, H, W]",
                   name, attn__shp(x));
        return NULL;
    }
    for (int d = 0; d < x->ndim; d++)
        if (x->shape[d] < 1) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x %s: every dimension must be >= 1", name,
                       attn__shp(x));
            return NULL;
        }
    if (bn_check_vec(ctx, name, "gamma", gamma, x, 0) || bn_check_vec(ctx, name, "beta", beta, x, 0) ||
        bn_check_vec(ctx, name, "running_mean", running_mean, x, 1) ||
        bn_check_vec(ctx, name, "running_var", running_var, x, 1))
        return NULL;
    if (!running_mean != !running_var) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: running_mean and running_var must be given together or not at all", name);
        return NULL;
    }
    if (!(eps >= 0.0f) || isinf(eps) || !(momentum >= 0.0f && momentum <= 1.0f)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: eps %g must be finite and >= 0, momentum %g in [0, 1]", name, (double)eps,
                   (double)momentum);
        return NULL;
    }
    const int batch = ctx->training || !running_mean;
    const int64_t C = x->shape[1], M = attn_tensor_numel(x) / C;
    if (ctx->training && M < 2) { /* torch: "Expected more than 1 value per channel" */
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: x %s: training needs more than one value per channel (the batch's "
                   "variance of one value is 0 and y would be beta whatever x is)",
                   name, attn__shp(x));
        return NULL;
    }
    if (!(x = attn__contig(ctx, x))) return NULL;
    attn_tensor *in[3];
    int n_in = 0;
    in[n_in++] = x;
    if (gamma && !(in[n_in++] = attn__contig(ctx, gamma))) return NULL;
    if (beta && !(in[n_in++] = attn__contig(ctx, beta))) return NULL;
    attn_tensor *y = attn__tensor_like(ctx, name, x);
    attn_tensor *mean = attn__tensor(ctx, name, ATTN_F32, 1, &C);
    attn_tensor *rstd = attn__tensor(ctx, name, ATTN_F32, 1, &C);
    attn_tensor *var = attn__tensor(ctx, name, ATTN_F32, 1, &C);
    if (!y || !mean || !rstd || !var) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_BATCHNORM, n_in, in, y);
    if (!node) return NULL;
    node->iarg[0] = gamma != NULL;
    node->iarg[1] = beta != NULL;
    node->iarg[2] = batch;
    node->farg[0] = eps;
    node->saved[0] = mean;
    node->saved[1] = rstd;
    node->saved[2] = var;
    if (!batch)
        for (int64_t c = 0; c < C; c++) {
            const double v = attn_f32(running_var)[c];
            attn_f32(mean)[c] = attn_f32(running_mean)[c];
            attn_f32(var)[c] = (float)v;
            attn_f32(rstd)[c] = (float)(1.0 / sqrt(v + eps));
        }
    attn_tensor *r = attn__run(ctx, node);
    if (r && batch && running_mean) {
        /* torch: running = (1 - momentum) running + momentum * batch statistic,
         * the variance unbiased (times M / (M - 1)) */
        const double m = momentum, unb = (double)M / (double)(M - 1);
        float *rm = attn_f32(running_mean), *rv = attn_f32(running_var);
        for (int64_t c = 0; c < C; c++) {
            rm[c] = (float)((1.0 - m) * rm[c] + m * attn_f32(mean)[c]);
            rv[c] = (float)((1.0 - m) * rv[c] + m * attn_f32(var)[c] * unb);
        }
    }
    return r;
}
