/* linformer.c: multi-head linear attention (include/attn/linformer.h,
 * docs/synthesizer.md, "Linformer"). The projections along the sequence are
 * batched products over the projection groups (G = H or 1), the attention
 * is the attention op over k keys; every step is a graph op, so the block's
 * backward is its ops'. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/linformer.h"
#include "attn/ops.h"
#include "attn/sdpa.h"

static attn_status add_param(attn_params *ps, const char *prefix, const char *name, int ndim,
                             const int64_t *shape, attn_tensor **out) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix ? prefix : "", name);
    return attn_params_add(ps, full, ndim, shape, out);
}

static attn_status add_linear(attn_params *ps, const char *prefix, const char *name, int64_t E,
                              attn_rng *rng, attn_tensor **w, attn_tensor **b) {
    char nm[64];
    const int64_t ws[2] = {E, E}, bs[1] = {E};
    const float bound = (float)(1.0 / sqrt((double)E));
    snprintf(nm, sizeof nm, "%s.weight", name);
    attn_status st = add_param(ps, prefix, nm, 2, ws, w);
    if (st == ATTN_OK) {
        snprintf(nm, sizeof nm, "%s.bias", name);
        st = add_param(ps, prefix, nm, 1, bs, b);
    }
    if (st == ATTN_OK && rng) {
        attn_init_uniform(*w, bound, rng);
        attn_init_uniform(*b, bound, rng);
    }
    return st;
}

attn_status attn_linformer_init(attn_linformer *m, attn_params *ps, const char *prefix,
                                const attn_linformer_config *cfg, attn_rng *rng) {
    static const char fn[] = "attn_linformer_init";
    if (!m || !ps || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    memset(m, 0, sizeof *m);
    const int64_t E = cfg->d_model, H = cfg->n_heads, n = cfg->max_len, k = cfg->k;
    if (E < 1 || H < 1 || E % H != 0 || n < 1 || k < 1 || n > (int64_t)1 << 24 ||
        k > (int64_t)1 << 24)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: d_model %lld, n_heads %lld, max_len %lld, k %lld: expected sizes "
                           ">= 1 (max_len and k <= 2^24), n_heads dividing d_model",
                           fn, (long long)E, (long long)H, (long long)n, (long long)k);
    if (cfg->sharing != ATTN_LINFORMER_NONE && cfg->sharing != ATTN_LINFORMER_HEADWISE &&
        cfg->sharing != ATTN_LINFORMER_KEY_VALUE)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: sharing %d, expected NONE, HEADWISE or "
                           "KEY_VALUE", fn, (int)cfg->sharing);
    if (cfg->causal)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: causal Linformer refused: each projected key mixes all positions, "
                           "later ones included, so a query would see its future", fn);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: dropout %g, expected [0, 1)", fn,
                           (double)cfg->dropout);
    if (cfg->kernel < 0 || cfg->kernel >= ATTN_KERNEL_COUNT)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: kernel %d", fn, (int)cfg->kernel);
    m->cfg = *cfg;
    m->head_dim = E / H;
    attn_status st = add_linear(ps, prefix, "q", E, rng, &m->wq, &m->bq);
    if (st == ATTN_OK) st = add_linear(ps, prefix, "k", E, rng, &m->wk, &m->bk);
    if (st == ATTN_OK) st = add_linear(ps, prefix, "v", E, rng, &m->wv, &m->bv);
    if (st == ATTN_OK) st = add_linear(ps, prefix, "out", E, rng, &m->wo, &m->bo);
    const int64_t ps3[3] = {cfg->sharing == ATTN_LINFORMER_NONE ? H : 1, k, n};
    const float sd = (float)(1.0 / sqrt((double)k));
    if (st == ATTN_OK) st = add_param(ps, prefix, "proj_k", 3, ps3, &m->proj_k);
    if (st == ATTN_OK && rng) attn_init_normal(m->proj_k, sd, rng);
    if (st == ATTN_OK && cfg->sharing == ATTN_LINFORMER_KEY_VALUE) m->proj_v = m->proj_k;
    else if (st == ATTN_OK) {
        st = add_param(ps, prefix, "proj_v", 3, ps3, &m->proj_v);
        if (st == ATTN_OK && rng) attn_init_normal(m->proj_v, sd, rng);
    }
    return st;
}

/* y [B, T, H D] projected along T by P [G, k, n] (its first T columns) ->
 * [B, H, k, D]. G = H: head h by P_h; G = 1: every head by P_0. */
static attn_tensor *project(attn_ctx *ctx, attn_tensor *y, attn_tensor *P, int64_t H) {
    if (!y) return NULL;
    const int64_t B = y->shape[0], T = y->shape[1], D = y->shape[2] / H;
    const int64_t G = P->shape[0], k = P->shape[1];
    attn_tensor *p = attn_contiguous(ctx, attn_slice(ctx, P, 2, 0, T)); /* [G, k, T] */
    attn_tensor *r;
    if (G == H) {
        static const int in[4] = {2, 1, 0, 3}, out[4] = {2, 0, 1, 3};
        const int64_t s4[4] = {B, T, H, D}, s3[3] = {H, T, B * D}, o4[4] = {H, k, B, D};
        r = attn_contiguous(ctx, attn_permute(ctx, attn_reshape(ctx, y, 4, s4), in));
        r = attn_bmm(ctx, p, attn_reshape(ctx, r, 3, s3), 0, 0); /* [H, k, B D] */
        return attn_permute(ctx, attn_reshape(ctx, r, 4, o4), out);
    }
    static const int in[3] = {1, 0, 2}, out[4] = {1, 2, 0, 3};
    const int64_t s3[3] = {1, T, B * H * D}, o4[4] = {k, B, H, D};
    r = attn_contiguous(ctx, attn_permute(ctx, y, in)); /* [T, B, H D] */
    r = attn_bmm(ctx, p, attn_reshape(ctx, r, 3, s3), 0, 0); /* [1, k, B H D] */
    return attn_permute(ctx, attn_reshape(ctx, r, 4, o4), out);
}

attn_tensor *attn_linformer_forward(attn_ctx *ctx, const attn_linformer *m, attn_tensor *x,
                                    attn_tensor **weights) {
    static const char fn[] = "attn_linformer_forward";
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
    const int64_t E = m->cfg.d_model, H = m->cfg.n_heads, D = m->head_dim;
    if (x->dtype != ATTN_F32 || x->ndim != 3 || x->shape[0] < 1 || x->shape[1] < 1 ||
        x->shape[1] > m->cfg.max_len || x->shape[2] != E) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x %s (%s), expected f32 [B, T, %lld] with 1 <= T <= "
                   "max_len %lld", fn, attn__shp(x), attn_dtype_name(x->dtype), (long long)E,
                   (long long)m->cfg.max_len);
        return NULL;
    }
    const int64_t B = x->shape[0], T = x->shape[1];
    static const int perm[4] = {0, 2, 1, 3};
    const int64_t s4[4] = {B, T, H, D}, s3[3] = {B, T, E};
    attn_tensor *q = attn_permute(ctx, attn_reshape(ctx, attn_linear(ctx, x, m->wq, m->bq), 4, s4),
                                  perm);
    attn_tensor *k = project(ctx, attn_linear(ctx, x, m->wk, m->bk), m->proj_k, H);
    attn_tensor *v = project(ctx, attn_linear(ctx, x, m->wv, m->bv), m->proj_v, H);
    if (!q || !k || !v) return NULL;
    attn_sdpa_opts so;
    memset(&so, 0, sizeof so);
    so.dropout = m->cfg.dropout;
    const int fused = m->cfg.kernel == ATTN_KERNEL_FUSED ||
                      (m->cfg.kernel == ATTN_KERNEL_AUTO && m->cfg.k >= ATTN_FUSED_MIN_KEYS);
    attn_tensor *p = NULL;
    attn_tensor *o = fused ? attn_flash_sdpa(ctx, q, k, v, &so, weights ? &p : NULL)
                           : attn_sdpa(ctx, q, k, v, &so, weights ? &p : NULL);
    if (!o) return NULL;
    attn_tensor *y = attn_reshape(ctx, attn_contiguous(ctx, attn_permute(ctx, o, perm)), 3, s3);
    y = attn_linear(ctx, y, m->wo, m->bo);
    if (y && weights) *weights = p;
    return y;
}
