/* vision_attention.c: self-attention blocks for feature maps
 * (include/attn/vision_attention.h, docs/vision_attention.md): SAGAN in the
 * paper's form and the BigGAN code's form, and Simple Self-Attention. Every
 * block is a composition of graph ops (1x1 conv2d, max_pool2d, reshape,
 * permute, the attention ops, bmm, matmul, mul, add), so its backward is
 * theirs. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/internal.h"
#include "../ops/view_internal.h"
#include "attn/conv.h"
#include "attn/ops.h"
#include "attn/sdpa.h"
#include "attn/vision_attention.h"

/* Adds parameter prefix + name of the given shape, uniform in +-bound. */
static attn_status add_param(attn_params *ps, const char *prefix, const char *name, int ndim,
                             const int64_t *shape, float bound, attn_rng *rng, attn_tensor **out) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix ? prefix : "", name);
    attn_status st = attn_params_add(ps, full, ndim, shape, out);
    if (st == ATTN_OK && rng) attn_init_uniform(*out, bound, rng);
    return st;
}

/* A 1x1 convolution's weight [cout, cin, 1, 1] and (bias) bias [cout]. */
static attn_status add_conv1x1(attn_params *ps, const char *prefix, const char *name,
                               int64_t cout, int64_t cin, int bias, attn_rng *rng,
                               attn_tensor **w, attn_tensor **b) {
    char nm[64];
    const int64_t ws[4] = {cout, cin, 1, 1}, bs[1] = {cout};
    const float bound = (float)(1.0 / sqrt((double)cin));
    snprintf(nm, sizeof nm, "%s.weight", name);
    attn_status st = add_param(ps, prefix, nm, 4, ws, bound, rng, w);
    if (st == ATTN_OK && bias) {
        snprintf(nm, sizeof nm, "%s.bias", name);
        st = add_param(ps, prefix, nm, 1, bs, bound, rng, b);
    }
    return st;
}

attn_status attn_map_attention_init(attn_map_attention *m, attn_params *ps, const char *prefix,
                                    const attn_map_attention_config *cfg, attn_rng *rng) {
    static const char fn[] = "attn_map_attention_init";
    if (!m || !ps || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    memset(m, 0, sizeof *m);
    const int64_t C = cfg->channels;
    if (cfg->form != ATTN_SAGAN_PAPER && cfg->form != ATTN_SAGAN_BIGGAN &&
        cfg->form != ATTN_SIMPLE_SA)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: form %d is not a block of vision_attention.h",
                           fn, (int)cfg->form);
    if (cfg->form == ATTN_SIMPLE_SA ? C < 1 : (C < 8 || C % 8 != 0))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: channels %lld, expected %s", fn, (long long)C,
                           cfg->form == ATTN_SIMPLE_SA ? ">= 1" : "a multiple of 8 (C/8 query "
                                                                  "and key channels)");
    if (cfg->kernel < 0 || cfg->kernel >= ATTN_KERNEL_COUNT)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: kernel %d", fn, (int)cfg->kernel);
    if (!isfinite(cfg->gamma_init))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: gamma_init is not finite", fn);
    m->cfg = *cfg;
    attn_status st;
    const int64_t one[1] = {1};
    if (cfg->form == ATTN_SIMPLE_SA) {
        const int64_t ws[3] = {C, C, 1};
        st = add_param(ps, prefix, "conv.weight", 3, ws, (float)(1.0 / sqrt((double)C)), rng,
                       &m->w);
    } else {
        const int64_t Cq = C / 8, Cv = cfg->form == ATTN_SAGAN_PAPER ? C : C / 2;
        st = add_conv1x1(ps, prefix, "query", Cq, C, cfg->bias, rng, &m->wq, &m->bq);
        if (st == ATTN_OK) st = add_conv1x1(ps, prefix, "key", Cq, C, cfg->bias, rng, &m->wk, &m->bk);
        if (st == ATTN_OK)
            st = add_conv1x1(ps, prefix, "value", Cv, C, cfg->bias, rng, &m->wv, &m->bv);
        if (st == ATTN_OK && cfg->form == ATTN_SAGAN_BIGGAN)
            st = add_conv1x1(ps, prefix, "out", C, Cv, cfg->bias, rng, &m->wo, &m->bo);
    }
    if (st == ATTN_OK) st = add_param(ps, prefix, "gamma", 1, one, 0.0f, NULL, &m->gamma);
    if (st == ATTN_OK) attn_init_constant(m->gamma, cfg->gamma_init);
    return st;
}

/* x [B, c, h, w] -> [B, 1, h w, c] (positions as rows, one head). */
static attn_tensor *to_rows(attn_ctx *ctx, attn_tensor *x) {
    if (!x) return NULL;
    static const int perm[3] = {0, 2, 1};
    const int64_t B = x->shape[0], c = x->shape[1], n = x->shape[2] * x->shape[3];
    const int64_t s3[3] = {B, c, n}, s4[4] = {B, 1, n, c};
    attn_tensor *t = attn_contiguous(ctx, attn_permute(ctx, attn_reshape(ctx, x, 3, s3), perm));
    return t ? attn_reshape(ctx, t, 4, s4) : NULL;
}

/* [B, 1, N, c] -> [B, c, h, w] */
static attn_tensor *from_rows(attn_ctx *ctx, attn_tensor *o, int64_t h, int64_t w) {
    if (!o) return NULL;
    static const int perm[3] = {0, 2, 1};
    const int64_t B = o->shape[0], n = o->shape[2], c = o->shape[3];
    const int64_t s3[3] = {B, n, c}, s4[4] = {B, c, h, w};
    attn_tensor *t = attn_contiguous(ctx, attn_permute(ctx, attn_reshape(ctx, o, 3, s3), perm));
    return t ? attn_reshape(ctx, t, 4, s4) : NULL;
}

static attn_tensor *sagan_forward(attn_ctx *ctx, const attn_map_attention *m, attn_tensor *x,
                                  attn_tensor **weights) {
    const int64_t H = x->shape[2], W = x->shape[3];
    attn_conv2d_opts co;
    memset(&co, 0, sizeof co);
    attn_tensor *q = attn_conv2d(ctx, x, m->wq, m->bq, &co);
    attn_tensor *k = attn_conv2d(ctx, x, m->wk, m->bk, &co);
    attn_tensor *v = attn_conv2d(ctx, x, m->wv, m->bv, &co);
    if (m->cfg.form == ATTN_SAGAN_BIGGAN) { /* keys and values pooled 2x2 */
        attn_pool2d_opts po;
        memset(&po, 0, sizeof po);
        po.kernel[0] = po.kernel[1] = 2;
        po.stride[0] = po.stride[1] = 2;
        k = attn_max_pool2d(ctx, k, &po, NULL);
        v = attn_max_pool2d(ctx, v, &po, NULL);
    }
    attn_tensor *qr = to_rows(ctx, q), *kr = to_rows(ctx, k), *vr = to_rows(ctx, v);
    if (!qr || !kr || !vr) return NULL;
    attn_sdpa_opts so;
    memset(&so, 0, sizeof so);
    so.scale = 1.0f; /* SAGAN: q . k unscaled */
    const int64_t n_keys = kr->shape[2];
    const int fused = m->cfg.kernel == ATTN_KERNEL_FUSED ||
                      (m->cfg.kernel == ATTN_KERNEL_AUTO && n_keys >= ATTN_FUSED_MIN_KEYS);
    attn_tensor *p = NULL;
    attn_tensor *o = fused ? attn_flash_sdpa(ctx, qr, kr, vr, &so, weights ? &p : NULL)
                           : attn_sdpa(ctx, qr, kr, vr, &so, weights ? &p : NULL);
    o = from_rows(ctx, o, H, W);
    if (o && m->cfg.form == ATTN_SAGAN_BIGGAN) o = attn_conv2d(ctx, o, m->wo, m->bo, &co);
    attn_tensor *y = attn_add(ctx, attn_mul(ctx, m->gamma, o), x);
    if (y && weights) *weights = p;
    return y;
}

static attn_tensor *simple_sa_forward(attn_ctx *ctx, const attn_map_attention *m,
                                      attn_tensor *x) {
    const int64_t B = x->shape[0], C = x->shape[1], N = x->shape[2] * x->shape[3];
    const int64_t s3[3] = {B, C, N}, w2[2] = {C, C};
    attn_tensor *xf = attn_reshape(ctx, attn__contig(ctx, x), 3, s3);
    attn_tensor *wm = attn_reshape(ctx, m->w, 2, w2);
    if (m->cfg.sym) wm = attn_scale(ctx, attn_add(ctx, wm, attn_transpose(ctx, wm, 0, 1)), 0.5f);
    /* c^T = (W x)^T = x^T W^T  [B, N, C] */
    attn_tensor *xt = attn_contiguous(ctx, attn_transpose(ctx, xf, 1, 2));
    attn_tensor *ct = attn_matmul(ctx, xt, attn_contiguous(ctx, attn_transpose(ctx, wm, 0, 1)));
    /* o = (x x^T) (W x): [B, C, C] then [B, C, N] */
    attn_tensor *g = attn_bmm(ctx, xf, xf, 0, 1);
    attn_tensor *o = attn_bmm(ctx, g, ct, 0, 1);
    attn_tensor *y = attn_add(ctx, attn_mul(ctx, m->gamma, o), xf);
    return y ? attn_reshape(ctx, y, 4, x->shape) : NULL;
}

attn_tensor *attn_map_attention_forward(attn_ctx *ctx, const attn_map_attention *m,
                                        attn_tensor *x, attn_tensor **weights) {
    static const char fn[] = "attn_map_attention_forward";
    if (weights) *weights = NULL;
    if (!ctx) {
        attn__error(ATTN_ERR_INVALID_ARG, "%s: context is NULL", fn);
        return NULL;
    }
    if (!m) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: block is NULL", fn);
        return NULL;
    }
    if (attn__any_null(ctx, fn, 1, x)) return NULL;
    const int pooled = m->cfg.form == ATTN_SAGAN_BIGGAN;
    if (x->dtype != ATTN_F32 || x->ndim != 4 || x->shape[0] < 1 || x->shape[1] != m->cfg.channels ||
        x->shape[2] < 1 || x->shape[3] < 1 ||
        (pooled && (x->shape[2] % 2 != 0 || x->shape[3] % 2 != 0))) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x %s (%s), expected f32 [B, %lld, H, W]%s", fn,
                   attn__shp(x), attn_dtype_name(x->dtype), (long long)m->cfg.channels,
                   pooled ? " with H and W even (keys and values are pooled 2x2)" : "");
        return NULL;
    }
    return m->cfg.form == ATTN_SIMPLE_SA ? simple_sa_forward(ctx, m, x)
                                         : sagan_forward(ctx, m, x, weights);
}
