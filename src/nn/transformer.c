/* transformer.c: multi-head attention and the Transformer encoder / decoder
 * block (include/attn/transformer.h), composed from graph ops; nothing here
 * has a backward of its own.
 *
 * The graph of one attention call (self-attention, packed projection):
 *   qkv = linear(x, in_proj_weight, in_proj_bias)      [B, T, (H + 2 Hkv) D]
 *   heads = permute(reshape(qkv, [B, T, H + 2 Hkv, D]), 0 2 1 3)
 *   q, k, v = slices of heads along axis 1              (strided views)
 *   [RoPE on q and k]
 *   o = attention(q, k, v, masks)                        [B, H, T, D]
 *   y = linear(reshape(permute(o, 0 2 1 3), [B, T, H D]), out_proj)
 * Without a cache and without RoPE or Shaw's positions (which act on the
 * split heads), self-attention skips the views and copies: the SDPA op reads
 * q, k and v in place from qkv and writes o as [B, T, H D] (its packed
 * layout, attn__sdpa_packed), the same numbers without moving them.
 * Cross-attention and separate weights use one linear per input, with row
 * slices of the packed weight (the slices are views; their gradients scatter
 * back into the packed parameter).
 *
 * attention() is attn_sdpa, except for Shaw's relative positions, whose value
 * term needs the probabilities P with their gradient: that path composes
 * bmm, rel_logits, softmax, dropout, bmm and rel_values. Grouped-query heads
 * go through bmm by viewing q [B, H, T, D] as [B, Hkv, G T, D] (the G = H /
 * Hkv query heads of one key head are adjacent), which is exact.
 *
 * The KV cache lives outside the arena: a forward with a cache copies the
 * new keys and values (already rotated by RoPE) into it and attends over a
 * strided arena view of the filled part, a constant for the tape.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "../ops/sdpa_internal.h"
#include "attn/ops.h"
#include "attn/params.h"
#include "attn/positions.h"
#include "attn/sdpa.h"
#include "attn/transformer.h"

const char *attn_pos_kind_name(attn_pos_kind kind) {
    static const char *const names[ATTN_POS_COUNT] = {"none", "sinusoidal", "learned",
                                                      "shaw", "rope",       "alibi"};
    return (unsigned)kind < ATTN_POS_COUNT ? names[kind] : "?";
}

int attn_pos_kind_parse(const char *name, attn_pos_kind *out) {
    for (int k = 0; name && k < ATTN_POS_COUNT; k++)
        if (strcmp(name, attn_pos_kind_name((attn_pos_kind)k)) == 0) {
            *out = (attn_pos_kind)k;
            return 0;
        }
    return -1;
}

/* Test hook: nonzero routes every attention through the composed path. */
static int force_composed;
int attn__mha_force_composed(int on) {
    const int old = force_composed;
    force_composed = on;
    return old;
}

/* ---- KV cache ----------------------------------------------------------------------- */

attn_status attn_kv_cache_init(attn_kv_cache *cache, int n_layers, int64_t B, int64_t Hkv,
                               int64_t max_len, int64_t D) {
    static const char fn[] = "attn_kv_cache_init";
    if (!cache) return attn__error(ATTN_ERR_INVALID_ARG, "%s: cache is NULL", fn);
    memset(cache, 0, sizeof *cache);
    if (n_layers < 1 || B < 1 || Hkv < 1 || max_len < 1 || D < 1)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: n_layers %d, B %lld, Hkv %lld, max_len %lld, D %lld: all must "
                           "be >= 1",
                           fn, n_layers, (long long)B, (long long)Hkv, (long long)max_len,
                           (long long)D);
    size_t n = 1, bytes = 0;
    if (attn__mul_size(n, (size_t)B, &n) || attn__mul_size(n, (size_t)Hkv, &n) ||
        attn__mul_size(n, (size_t)max_len, &n) || attn__mul_size(n, (size_t)D, &n) ||
        attn__mul_size(n, sizeof(float), &bytes))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: [B, Hkv, max_len, D] = [%lld,%lld,%lld,%lld] overflows", fn,
                           (long long)B, (long long)Hkv, (long long)max_len, (long long)D);
    attn_kv_cache_layer *layers = calloc((size_t)n_layers, sizeof *layers);
    if (!layers)
        return attn__error(ATTN_ERR_OOM, "%s: needed %zu bytes for %d layer records", fn,
                           (size_t)n_layers * sizeof *layers, n_layers);
    cache->layers = layers;
    cache->n_layers = n_layers;
    for (int l = 0; l < n_layers; l++) {
        attn_kv_cache_layer *L = &layers[l];
        L->B = B;
        L->Hkv = Hkv;
        L->max_len = max_len;
        L->D = D;
        L->k = calloc(n, sizeof(float));
        L->v = calloc(n, sizeof(float));
        if (!L->k || !L->v) {
            attn_kv_cache_free(cache);
            return attn__error(ATTN_ERR_OOM,
                               "%s: needed 2 x %zu bytes for the keys and values of layer %d", fn,
                               bytes, l);
        }
    }
    return ATTN_OK;
}

void attn_kv_cache_free(attn_kv_cache *cache) {
    if (!cache) return;
    for (int l = 0; l < cache->n_layers && cache->layers; l++) {
        free(cache->layers[l].k);
        free(cache->layers[l].v);
    }
    free(cache->layers);
    memset(cache, 0, sizeof *cache);
}

void attn_kv_cache_reset(attn_kv_cache *cache) {
    if (!cache) return;
    for (int l = 0; l < cache->n_layers && cache->layers; l++) cache->layers[l].len = 0;
}

/* ---- configuration and parameters ------------------------------------------------------ */

/* Validates cfg for `fn` (message in attn_last_error) and writes the resolved
 * configuration (defaults filled in) to *res. */
static attn_status mha_check_config(const attn_mha_config *cfg, const char *fn,
                                    attn_mha_config *res) {
    if (!cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: config is NULL", fn);
    const int64_t E = cfg->embed_dim;
    const int H = cfg->n_heads, Hkv = cfg->n_kv_heads ? cfg->n_kv_heads : cfg->n_heads;
    if (E < 1 || H < 1 || E % H)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: embed_dim %lld and n_heads %d: both must be >= 1 and embed_dim "
                           "divisible by n_heads",
                           fn, (long long)E, H);
    if (Hkv < 1 || H % Hkv)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: n_kv_heads %d, expected 0 (= n_heads) or a divisor of n_heads %d",
                           fn, cfg->n_kv_heads, H);
    if (cfg->kdim < 0 || cfg->vdim < 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: kdim %lld, vdim %lld: expected >= 0 (0: E)",
                           fn, (long long)cfg->kdim, (long long)cfg->vdim);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: dropout %g, expected in [0, 1)", fn,
                           (double)cfg->dropout);
    if ((unsigned)cfg->kernel >= ATTN_KERNEL_COUNT)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: kernel %d, expected ATTN_KERNEL_AUTO (0), ATTN_KERNEL_FUSED (1) "
                           "or ATTN_KERNEL_REFERENCE (2)",
                           fn, (int)cfg->kernel);
    if ((unsigned)cfg->pos >= ATTN_POS_COUNT)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: pos %d, expected 0 to %d (attn_pos_kind)",
                           fn, (int)cfg->pos, ATTN_POS_COUNT - 1);
    const int64_t D = E / H;
    if (cfg->pos == ATTN_POS_SHAW && cfg->shaw_clip < 1)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: shaw positions need shaw_clip >= 1, got %d",
                           fn, cfg->shaw_clip);
    if (cfg->pos == ATTN_POS_ROPE && D % 2)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: rope positions need an even head size, got D = E / H = %lld", fn,
                           (long long)D);
    if (cfg->pos == ATTN_POS_ROPE &&
        !(cfg->rope_theta == 0.0f || (isfinite(cfg->rope_theta) && cfg->rope_theta > 1.0f)))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: rope_theta %g, expected 0 (10000) or a finite value > 1", fn,
                           (double)cfg->rope_theta);
    *res = *cfg;
    res->n_kv_heads = Hkv;
    if (!res->kdim) res->kdim = E;
    if (!res->vdim) res->vdim = E;
    res->packed = cfg->packed && res->kdim == E && res->vdim == E;
    if (res->pos == ATTN_POS_ROPE && res->rope_theta == 0.0f) res->rope_theta = 10000.0f;
    return ATTN_OK;
}

enum { INIT_ZERO, INIT_XAVIER, INIT_FAN_IN, INIT_ONE };

/* Adds prefix+name [d0] or [d0, d1] (d1 == 0: 1-d), initialised per `init`
 * when rng is non-NULL (fan_in is the bound's fan for INIT_FAN_IN). */
static attn_status add_param(attn_params *ps, const char *fn, const char *prefix,
                             const char *name, int64_t d0, int64_t d1, int init, int64_t fan_in,
                             attn_rng *rng, attn_tensor **out) {
    char full[320];
    int len = snprintf(full, sizeof full, "%s%s", prefix, name);
    if (len < 0 || (size_t)len >= sizeof full)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: prefix '%.40s...' makes a name longer than %zu bytes", fn, prefix,
                           sizeof full - 1);
    const int64_t shape[2] = {d0, d1};
    attn_status st = attn_params_add(ps, full, d1 ? 2 : 1, shape, out);
    if (st) return st; /* attn_params_add set the message */
    if (!rng) return ATTN_OK;
    switch (init) {
    case INIT_XAVIER:
        attn_init_uniform(*out, (float)sqrt(6.0 / (double)(d0 + d1)), rng);
        break;
    case INIT_FAN_IN: attn_init_uniform(*out, (float)(1.0 / sqrt((double)fan_in)), rng); break;
    case INIT_ONE: attn_init_constant(*out, 1.0f); break;
    default: break; /* zero already */
    }
    return ATTN_OK;
}

static attn_status mha_init(attn_mha *mha, attn_params *ps, const char *prefix,
                            const attn_mha_config *cfg, attn_rng *rng, const char *fn) {
    if (!mha || !ps)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: module or params store is NULL", fn);
    memset(mha, 0, sizeof *mha);
    attn_mha m;
    memset(&m, 0, sizeof m);
    attn_status st = mha_check_config(cfg, fn, &m.cfg);
    if (st) return st;
    if (!prefix) prefix = "";
    const int64_t E = m.cfg.embed_dim, H = m.cfg.n_heads, Hkv = m.cfg.n_kv_heads;
    const int64_t D = E / H;
    m.head_dim = D;
    if (m.cfg.packed) {
        st = add_param(ps, fn, prefix, "in_proj_weight", (H + 2 * Hkv) * D, E, INIT_XAVIER, 0, rng,
                       &m.in_proj_weight);
    } else {
        st = add_param(ps, fn, prefix, "q_proj_weight", H * D, E, INIT_XAVIER, 0, rng,
                       &m.q_proj_weight);
        if (!st)
            st = add_param(ps, fn, prefix, "k_proj_weight", Hkv * D, m.cfg.kdim, INIT_XAVIER, 0,
                           rng, &m.k_proj_weight);
        if (!st)
            st = add_param(ps, fn, prefix, "v_proj_weight", Hkv * D, m.cfg.vdim, INIT_XAVIER, 0,
                           rng, &m.v_proj_weight);
    }
    if (!st && !m.cfg.no_bias)
        st = add_param(ps, fn, prefix, "in_proj_bias", (H + 2 * Hkv) * D, 0, INIT_ZERO, 0, rng,
                       &m.in_proj_bias);
    if (!st)
        st = add_param(ps, fn, prefix, "out_proj.weight", E, H * D, INIT_FAN_IN, H * D, rng,
                       &m.out_proj_weight);
    if (!st && !m.cfg.no_bias)
        st = add_param(ps, fn, prefix, "out_proj.bias", E, 0, INIT_ZERO, 0, rng, &m.out_proj_bias);
    if (!st && m.cfg.pos == ATTN_POS_SHAW) {
        const int64_t R = 2 * (int64_t)m.cfg.shaw_clip + 1;
        st = add_param(ps, fn, prefix, "rel_k", R, D, INIT_XAVIER, 0, rng, &m.rel_k);
        if (!st) st = add_param(ps, fn, prefix, "rel_v", R, D, INIT_XAVIER, 0, rng, &m.rel_v);
    }
    if (st) return st;
    *mha = m;
    return ATTN_OK;
}

attn_status attn_mha_init(attn_mha *mha, attn_params *ps, const char *prefix,
                          const attn_mha_config *cfg, attn_rng *rng) {
    return mha_init(mha, ps, prefix, cfg, rng, "attn_mha_init");
}

/* Validates a module as attn_mha_init leaves it; 0 or -1 (recorded). */
static int mha_check(attn_ctx *ctx, const attn_mha *mha, const char *fn) {
    attn_mha_config res;
    if (!mha) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: module is NULL", fn);
        return -1;
    }
    if (mha_check_config(&mha->cfg, fn, &res)) {
        char msg[256]; /* attn__fail formats into the buffer attn_last_error() returns */
        snprintf(msg, sizeof msg, "%s", attn_last_error());
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s", msg);
        return -1;
    }
    const attn_mha_config *c = &mha->cfg;
    int ok = mha->out_proj_weight && mha->head_dim == c->embed_dim / c->n_heads &&
             c->n_kv_heads == res.n_kv_heads && c->kdim == res.kdim && c->vdim == res.vdim;
    ok = ok && (c->packed ? mha->in_proj_weight != NULL
                          : (mha->q_proj_weight && mha->k_proj_weight && mha->v_proj_weight));
    ok = ok && (c->no_bias || (mha->in_proj_bias && mha->out_proj_bias));
    ok = ok && (c->pos != ATTN_POS_SHAW || (mha->rel_k && mha->rel_v));
    if (!ok) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: the module's parameters are missing (initialise it with attn_mha_init)",
                   fn);
        return -1;
    }
    return 0;
}

/* ---- graph helpers ------------------------------------------------------------------ */

/* Rows [start, start + len) of a parameter (NULL stays NULL). */
static attn_tensor *rows(attn_ctx *ctx, attn_tensor *w, int64_t start, int64_t len) {
    if (!w) return NULL;
    if (start == 0 && len == w->shape[0]) return w;
    return attn_slice(ctx, w, 0, start, len);
}

/* y [B, T, n D] -> [B, n, T, D] (a permuted view). */
static attn_tensor *split_heads(attn_ctx *ctx, attn_tensor *y, int64_t n, int64_t D) {
    if (!y) return NULL;
    const int64_t sh[4] = {y->shape[0], y->shape[1], n, D};
    static const int perm[4] = {0, 2, 1, 3};
    return attn_permute(ctx, attn_reshape(ctx, y, 4, sh), perm);
}

/* x [B, n, T, D] -> [B, T, n D] (contiguous). */
static attn_tensor *merge_heads(attn_ctx *ctx, attn_tensor *x) {
    if (!x) return NULL;
    static const int perm[4] = {0, 2, 1, 3};
    const int64_t sh[3] = {x->shape[0], x->shape[2], x->shape[1] * x->shape[3]};
    return attn_reshape(ctx, attn_contiguous(ctx, attn_permute(ctx, x, perm)), 3, sh);
}

static attn_tensor *reshape4(attn_ctx *ctx, attn_tensor *x, int64_t a, int64_t b, int64_t c,
                             int64_t d) {
    const int64_t sh[4] = {a, b, c, d};
    return attn_reshape(ctx, x, 4, sh);
}

/* The additive mask [B, 1, T, S] (0 or -inf) of the causal flag (bottom-right)
 * and the key lengths, or NULL (and *none = 1) when nothing is masked. */
static attn_tensor *build_mask(attn_ctx *ctx, const char *fn, int64_t B, int64_t T, int64_t S,
                               int causal, const attn_tensor *key_lengths, int *none) {
    *none = 1;
    if (!causal && !key_lengths) return NULL;
    const int64_t sh[4] = {B, 1, T, S};
    attn_tensor *m = attn__tensor(ctx, fn, ATTN_F32, 4, sh);
    if (!m) return NULL;
    float *p = attn_f32(m);
    for (int64_t b = 0; b < B; b++) {
        const int64_t len = key_lengths ? attn_i32(key_lengths)[b] : S;
        for (int64_t t = 0; t < T; t++)
            for (int64_t s = 0; s < S; s++) {
                const int vis = s < len && (!causal || s <= t + (S - T));
                p[(b * T + t) * S + s] = vis ? 0.0f : -INFINITY;
            }
    }
    *none = 0;
    return m;
}

/* Attention of q [B, H, T, D] over k, v [B, Hkv, S, D] by composition:
 * P = softmax(scale (q k^T [+ rel_logits(q, rel_k)]) + bias + masks), then
 * Drop(P) v [+ rel_values(Drop(P), rel_v)] (the bracketed terms when shaw).
 * Returns [B, H, T, D]; *p_out receives P [B, H, T, S] (before dropout). */
static attn_tensor *attend_composed(attn_ctx *ctx, const char *fn, const attn_mha *mha,
                                    attn_tensor *q, attn_tensor *k, attn_tensor *v, int causal,
                                    attn_tensor *key_lengths, attn_tensor *bias, int shaw,
                                    attn_tensor **p_out) {
    const int64_t B = q->shape[0], H = q->shape[1], T = q->shape[2], D = q->shape[3];
    const int64_t Hkv = k->shape[1], S = k->shape[2], G = H / Hkv;
    const float scale = (float)(1.0 / sqrt((double)D));
    /* the G query heads of key head g are adjacent: [B, Hkv, G T, D] */
    attn_tensor *qg = G > 1 ? reshape4(ctx, attn_contiguous(ctx, q), B, Hkv, G * T, D) : q;
    attn_tensor *logits = attn_bmm(ctx, qg, k, 0, 1); /* [B, Hkv, G T, S] */
    if (G > 1) logits = reshape4(ctx, logits, B, H, T, S);
    if (shaw) logits = attn_add(ctx, logits, attn_rel_logits(ctx, q, mha->rel_k, S, S - T));
    logits = attn_scale(ctx, logits, scale);
    if (!logits) return NULL;
    if (bias) logits = attn_add(ctx, logits, bias);
    int none;
    attn_tensor *mask = build_mask(ctx, fn, B, T, S, causal, key_lengths, &none);
    if (!none && !mask) return NULL;
    attn_tensor *p = attn_softmax(ctx, logits, mask);
    if (!p) return NULL;
    *p_out = p;
    attn_tensor *pd = attn_dropout(ctx, p, mha->cfg.dropout);
    attn_tensor *o = attn_bmm(ctx, G > 1 ? reshape4(ctx, pd, B, Hkv, G * T, S) : pd, v, 0, 0);
    if (G > 1) o = reshape4(ctx, o, B, H, T, D);
    if (shaw) o = attn_add(ctx, o, attn_rel_values(ctx, pd, mha->rel_v, S - T));
    return o;
}

/* Checks x is f32 [B, L, width] (B < 0: any B >= 1); 0 or -1 (recorded). */
static int check_input(attn_ctx *ctx, const char *fn, const char *what, const attn_tensor *x,
                       int64_t B, int64_t width) {
    if (attn__check_dtype(ctx, fn, what, x, ATTN_F32)) return -1;
    if (x->ndim != 3 || x->shape[0] < 1 || x->shape[1] < 1 || x->shape[2] != width ||
        (B >= 0 && x->shape[0] != B)) {
        if (B >= 0)
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %s %s, expected [B, L, %lld] with B = %lld", fn,
                       what, attn__shp(x), (long long)width, (long long)B);
        else
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %s %s, expected [B, L, %lld] with B, L >= 1", fn,
                       what, attn__shp(x), (long long)width);
        return -1;
    }
    return 0;
}

/* Copies x [B, Hkv, T, D] (contiguous) into the cache at positions
 * dst .. dst + T - 1. */
static void cache_store(float *buf, const attn_kv_cache_layer *L, const attn_tensor *x,
                        int64_t dst) {
    const int64_t B = x->shape[0], Hkv = x->shape[1], T = x->shape[2], D = x->shape[3];
    const float *src = attn_f32(x);
    for (int64_t b = 0; b < B; b++)
        for (int64_t g = 0; g < Hkv; g++)
            memcpy(buf + ((b * L->Hkv + g) * L->max_len + dst) * L->D,
                   src + ((b * Hkv + g) * T) * D, sizeof(float) * (size_t)(T * D));
}

/* A [B, Hkv, len, D] arena view of the cache's first len positions. */
static attn_tensor *cache_view(attn_ctx *ctx, const char *fn, const attn_kv_cache_layer *L,
                               float *buf, int64_t len) {
    const int64_t sh[4] = {L->B, L->Hkv, len, L->D};
    const int64_t st[4] = {L->Hkv * L->max_len * L->D, L->max_len * L->D, L->D, 1};
    return attn__tensor_view(ctx, fn, ATTN_F32, 4, sh, st, buf);
}

/* The shared body of attn_mha_forward and attn_mha_forward_kv. xk == NULL is
 * self-attention (keys and values from xq); xk == xv is the one-memory
 * cross-attention. */
static attn_tensor *mha_forward(attn_ctx *ctx, const char *fn, const attn_mha *mha,
                                attn_tensor *xq, attn_tensor *xk, attn_tensor *xv,
                                const attn_mha_call *call, attn_tensor **weights) {
    if (weights) *weights = NULL;
    if (!ctx) {
        attn__error(ATTN_ERR_INVALID_ARG, "%s: context is NULL", fn);
        return NULL;
    }
    if (attn__any_null(ctx, fn, 1, xq)) return NULL;
    if (ctx->status) return NULL;
    if (mha_check(ctx, mha, fn)) return NULL;
    const attn_mha_config *c = &mha->cfg;
    const int64_t E = c->embed_dim, H = c->n_heads, Hkv = c->n_kv_heads, D = mha->head_dim;
    const int self = xk == NULL;
    if (check_input(ctx, fn, "query", xq, -1, E)) return NULL;
    const int64_t B = xq->shape[0], T = xq->shape[1];
    if (self && (c->kdim != E || c->vdim != E)) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: self-attention needs kdim == vdim == embed_dim, the module has kdim "
                   "%lld, vdim %lld, embed_dim %lld",
                   fn, (long long)c->kdim, (long long)c->vdim, (long long)E);
        return NULL;
    }
    attn_kv_cache_layer *L = call ? call->cache : NULL;
    const int cross_reuse = !self && L && L->len > 0;
    if (!self && !cross_reuse) {
        if (check_input(ctx, fn, "key", xk, B, c->kdim)) return NULL;
        if (check_input(ctx, fn, "value", xv, B, c->vdim)) return NULL;
        if (xk->shape[1] != xv->shape[1]) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: key %s and value %s differ in length", fn,
                       attn__shp(xk), attn__shp(xv));
            return NULL;
        }
    }
    if (L) {
        if (attn_ctx_grad_enabled(ctx)) {
            attn__fail(ctx, ATTN_ERR_STATE,
                       "%s: a KV cache is for inference: disable gradients first "
                       "(attn_ctx_set_grad_enabled(ctx, 0))",
                       fn);
            return NULL;
        }
        const int64_t need = self ? L->len + T : (cross_reuse ? L->len : xk->shape[1]);
        if (!L->k || !L->v || L->B != B || L->Hkv != Hkv || L->D != D || L->len < 0 ||
            need > L->max_len) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                       "%s: cache [B, Hkv, max_len, D] = [%lld,%lld,%lld,%lld] holding %lld "
                       "positions does not fit: expected B %lld, Hkv %lld, D %lld and room for "
                       "%lld positions",
                       fn, (long long)L->B, (long long)L->Hkv, (long long)L->max_len,
                       (long long)L->D, (long long)L->len, (long long)B, (long long)Hkv,
                       (long long)D, (long long)need);
            return NULL;
        }
    }
    /* ---- projections ---- */
    const int64_t qn = H * D, kn = Hkv * D;
    attn_tensor *wq, *wk, *wv;
    if (c->packed) {
        wq = rows(ctx, mha->in_proj_weight, 0, qn);
        wk = rows(ctx, mha->in_proj_weight, qn, kn);
        wv = rows(ctx, mha->in_proj_weight, qn + kn, kn);
    } else {
        wq = mha->q_proj_weight;
        wk = mha->k_proj_weight;
        wv = mha->v_proj_weight;
    }
    attn_tensor *bq = rows(ctx, mha->in_proj_bias, 0, qn);
    attn_tensor *bk = rows(ctx, mha->in_proj_bias, qn, kn);
    attn_tensor *bv = rows(ctx, mha->in_proj_bias, qn + kn, kn);
    if (ctx->status) return NULL;
    attn_tensor *q = NULL, *k = NULL, *v = NULL, *qkv = NULL;
    /* Self-attention with the packed projection, no cache and no position
     * op between projection and attention: the SDPA op reads the heads in
     * place from the projection and writes its output in the layout the
     * output projection reads (attn__sdpa_packed), so no head is copied. */
    /* keys of this call: the cache's and the new ones, or the memory */
    const int64_t n_keys = self ? (L ? L->len : 0) + T : cross_reuse ? L->len : xk->shape[1];
    const int fused = c->kernel == ATTN_KERNEL_FUSED ||
                      (c->kernel == ATTN_KERNEL_AUTO && n_keys >= ATTN_FUSED_MIN_KEYS);
    const int in_place = self && c->packed && !L && c->pos != ATTN_POS_ROPE &&
                         c->pos != ATTN_POS_SHAW && !force_composed;
    if (in_place) {
        qkv = attn_linear(ctx, xq, mha->in_proj_weight, mha->in_proj_bias);
        if (!qkv) return NULL;
    } else if (self && c->packed) {
        /* one product for q, k and v */
        attn_tensor *proj = attn_linear(ctx, xq, mha->in_proj_weight, mha->in_proj_bias);
        attn_tensor *heads = split_heads(ctx, proj, H + 2 * Hkv, D);
        q = attn_slice(ctx, heads, 1, 0, H);
        k = attn_slice(ctx, heads, 1, H, Hkv);
        v = attn_slice(ctx, heads, 1, H + Hkv, Hkv);
    } else {
        q = split_heads(ctx, attn_linear(ctx, xq, wq, bq), H, D);
        if (!cross_reuse) {
            attn_tensor *ink = self ? xq : xk, *inv = self ? xq : xv;
            k = split_heads(ctx, attn_linear(ctx, ink, wk, bk), Hkv, D);
            v = split_heads(ctx, attn_linear(ctx, inv, wv, bv), Hkv, D);
        }
    }
    if (!qkv && (!q || (!cross_reuse && (!k || !v)))) return NULL;
    /* ---- positions (self-attention only) ---- */
    const int64_t past = self && L ? L->len : 0;
    const attn_pos_kind pos = self ? c->pos : ATTN_POS_NONE;
    if (pos == ATTN_POS_ROPE) {
        /* queries and the new keys sit at the same positions */
        attn_rope_opts ro;
        memset(&ro, 0, sizeof ro);
        ro.pos0 = L ? past : (call ? call->pos0 : 0);
        ro.theta = c->rope_theta;
        q = attn_rope(ctx, q, &ro);
        k = attn_rope(ctx, k, &ro);
        if (!q || !k) return NULL;
    }
    /* ---- the cache ---- */
    if (L) {
        if (!cross_reuse) {
            attn_tensor *kc = attn_contiguous(ctx, k), *vc = attn_contiguous(ctx, v);
            if (!kc || !vc) return NULL;
            cache_store(L->k, L, kc, past);
            cache_store(L->v, L, vc, past);
        }
        const int64_t len = self ? past + T : (cross_reuse ? L->len : k->shape[2]);
        k = cache_view(ctx, fn, L, L->k, len);
        v = cache_view(ctx, fn, L, L->v, len);
        if (!k || !v) return NULL;
    }
    const int64_t S = qkv ? T : k->shape[2];
    attn_tensor *kl = call ? call->key_lengths : NULL;
    if (kl) {
        if (attn__check_dtype(ctx, fn, "key_lengths", kl, ATTN_I32)) return NULL;
        if (kl->ndim != 1 || kl->shape[0] != B || !attn_tensor_is_contiguous(kl)) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: key_lengths %s, expected contiguous [B] = [%lld]",
                       fn, attn__shp(kl), (long long)B);
            return NULL;
        }
        for (int64_t b = 0; b < B; b++)
            if (attn_i32(kl)[b] < 0 || attn_i32(kl)[b] > S) {
                attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                           "%s: key_lengths[%lld] = %d is outside [0, S] = [0, %lld]", fn,
                           (long long)b, (int)attn_i32(kl)[b], (long long)S);
                return NULL;
            }
    }
    /* ---- attention ---- */
    const int causal = call ? call->causal : 0;
    attn_tensor *bias = call ? call->bias : NULL;
    if (bias) { /* checked here so that the message names this function */
        if (attn__check_dtype(ctx, fn, "bias", bias, ATTN_F32)) return NULL;
        const int64_t want[4] = {B, H, T, S};
        int ok = bias->ndim >= 1 && bias->ndim <= 4;
        for (int i = 0; ok && i < bias->ndim; i++) {
            const int64_t n = bias->shape[bias->ndim - 1 - i];
            ok = n == 1 || n == want[3 - i];
        }
        if (!ok) {
            attn__fail(ctx, ATTN_ERR_SHAPE,
                       "%s: bias %s does not broadcast to [B, H, T, S] = [%lld, %lld, %lld, %lld]",
                       fn, attn__shp(bias), (long long)B, (long long)H, (long long)T, (long long)S);
            return NULL;
        }
    }
    const int composed = !qkv && (pos == ATTN_POS_SHAW || force_composed);
    const attn_sparse_pattern *sp = call ? call->sparse : NULL;
    attn_status sst;
    if (sp && (sst = attn_sparse_check(NULL, sp)) != ATTN_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", attn_last_error());
        attn__fail(ctx, sst, "%s: %s", fn, msg);
        return NULL;
    }
    if (sp && composed) { /* the composed path takes the pattern as a [1,H,T,S] -inf bias */
        const int64_t sh[4] = {1, H, T, S};
        attn_tensor *sb = attn_tensor_new(ctx, ATTN_F32, 4, sh);
        if (!sb) return NULL;
        float *m = attn_f32(sb);
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++)
                for (int64_t s = 0; s < S; s++)
                    m[(h * T + t) * S + s] = attn_sparse_visible(sp, h, T, S, t, s) ? 0.0f : -INFINITY;
        bias = bias ? attn_add(ctx, sb, bias) : sb;
        if (!bias) return NULL;
    }
    attn_tensor *slopes = NULL;
    if (pos == ATTN_POS_ALIBI && composed) { /* the composed path takes a [1,H,T,S] bias */
        attn_tensor *al = attn_alibi_bias(ctx, (int)H, T, S, causal);
        bias = bias ? attn_add(ctx, al, bias) : al;
        if (!bias) return NULL;
    } else if (pos == ATTN_POS_ALIBI) { /* a kernel parameter: no [H,T,S] tensor */
        const int64_t hs[1] = {H};
        slopes = attn_tensor_new(ctx, ATTN_F32, 1, hs);
        if (!slopes) return NULL;
        attn_alibi_slopes((int)H, attn_f32(slopes));
    }
    attn_tensor *p = NULL, *o;
    attn_sdpa_opts so;
    memset(&so, 0, sizeof so);
    so.causal = causal;
    so.bias = bias;
    so.key_lengths = kl;
    so.dropout = c->dropout;
    so.alibi_slopes = slopes;
    so.sparse = sp;
    if (qkv)
        o = fused ? attn__flash_sdpa_packed(ctx, qkv, H, Hkv, &so, weights ? &p : NULL)
                  : attn__sdpa_packed(ctx, qkv, H, Hkv, &so, weights ? &p : NULL); /* [B, T, H D] */
    else if (composed)
        o = attend_composed(ctx, fn, mha, q, k, v, causal, kl, bias, pos == ATTN_POS_SHAW, &p);
    else
        o = fused ? attn_flash_sdpa(ctx, q, k, v, &so, weights ? &p : NULL)
                  : attn_sdpa(ctx, q, k, v, &so, weights ? &p : NULL);
    if (!o) return NULL;
    attn_tensor *y = attn_linear(ctx, qkv ? o : merge_heads(ctx, o), mha->out_proj_weight,
                                 mha->out_proj_bias);
    if (!y) return NULL;
    if (L) L->len = self ? past + T : S;
    if (weights && p) {
        /* without history: the probabilities for inspection (the composed
         * path's P is a graph tensor, so it is copied) */
        *weights = p->requires_grad || p->node >= 0
                       ? attn_tensor_from(ctx, ATTN_F32, 4, p->shape, attn_f32(p))
                       : p;
        if (!*weights) return NULL;
    }
    return y;
}

attn_tensor *attn_mha_forward(attn_ctx *ctx, const attn_mha *mha, attn_tensor *xq,
                              attn_tensor *xkv, const attn_mha_call *call,
                              attn_tensor **weights) {
    return mha_forward(ctx, "attn_mha_forward", mha, xq, xkv, xkv, call, weights);
}

attn_tensor *attn_mha_forward_kv(attn_ctx *ctx, const attn_mha *mha, attn_tensor *xq,
                                 attn_tensor *xk, attn_tensor *xv, const attn_mha_call *call,
                                 attn_tensor **weights) {
    static const char fn[] = "attn_mha_forward_kv";
    if (weights) *weights = NULL;
    if (ctx && attn__any_null(ctx, fn, 3, xq, xk, xv)) return NULL;
    return mha_forward(ctx, fn, mha, xq, xk, xv, call, weights);
}

/* ---- the Transformer block ------------------------------------------------------------ */

static attn_status block_check_config(const attn_block_config *cfg, const char *fn,
                                      attn_block_config *res, attn_mha_config *self_cfg,
                                      attn_mha_config *cross_cfg) {
    if (!cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: config is NULL", fn);
    if (cfg->d_ff < 1)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: d_ff %lld, expected >= 1", fn,
                           (long long)cfg->d_ff);
    if (!(cfg->ln_eps >= 0.0f) || !isfinite(cfg->ln_eps))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: ln_eps %g, expected a finite value >= 0",
                           fn, (double)cfg->ln_eps);
    if (cfg->activation != ATTN_ACT_RELU && cfg->activation != ATTN_ACT_GELU)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: activation %d, expected ATTN_ACT_RELU or ATTN_ACT_GELU", fn,
                           (int)cfg->activation);
    attn_mha_config m;
    memset(&m, 0, sizeof m);
    m.embed_dim = cfg->d_model;
    m.n_heads = cfg->n_heads;
    m.n_kv_heads = cfg->n_kv_heads;
    m.packed = 1;
    m.no_bias = cfg->no_bias;
    m.dropout = cfg->dropout;
    m.kernel = cfg->kernel;
    attn_mha_config cross = m, resolved;
    m.pos = cfg->pos;
    m.shaw_clip = cfg->shaw_clip;
    m.rope_theta = cfg->rope_theta;
    attn_status st = mha_check_config(&m, fn, &resolved);
    if (st) return st;
    *res = *cfg;
    res->n_kv_heads = resolved.n_kv_heads;
    if (res->ln_eps == 0.0f) res->ln_eps = 1e-5f;
    res->cross = cfg->cross != 0;
    res->norm_first = cfg->norm_first != 0;
    res->external_mixer = cfg->external_mixer != 0;
    if (res->external_mixer && res->cross)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: external_mixer with cross: a decoder block keeps its attentions", fn);
    *self_cfg = m;
    *cross_cfg = cross;
    return ATTN_OK;
}

attn_status attn_block_init(attn_block *blk, attn_params *ps, const char *prefix,
                            const attn_block_config *cfg, attn_rng *rng) {
    static const char fn[] = "attn_block_init";
    if (!blk || !ps)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: block or params store is NULL", fn);
    memset(blk, 0, sizeof *blk);
    attn_block b;
    memset(&b, 0, sizeof b);
    attn_mha_config sc, cc;
    attn_status st = block_check_config(cfg, fn, &b.cfg, &sc, &cc);
    if (st) return st;
    if (!prefix) prefix = "";
    char sub[320];
    int len = snprintf(sub, sizeof sub, "%sself_attn.", prefix);
    if (len < 0 || (size_t)len >= sizeof sub)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: prefix '%.40s...' makes a name longer than %zu bytes", fn, prefix,
                           sizeof sub - 1);
    if (!b.cfg.external_mixer) st = mha_init(&b.self_attn, ps, sub, &sc, rng, fn);
    if (!st && b.cfg.cross) {
        snprintf(sub, sizeof sub, "%smultihead_attn.", prefix);
        st = mha_init(&b.cross_attn, ps, sub, &cc, rng, fn);
    }
    const int64_t E = b.cfg.d_model, F = b.cfg.d_ff;
    const int nb = !b.cfg.no_bias;
    if (!st) st = add_param(ps, fn, prefix, "linear1.weight", F, E, INIT_FAN_IN, E, rng, &b.linear1_w);
    if (!st && nb)
        st = add_param(ps, fn, prefix, "linear1.bias", F, 0, INIT_FAN_IN, E, rng, &b.linear1_b);
    if (!st) st = add_param(ps, fn, prefix, "linear2.weight", E, F, INIT_FAN_IN, F, rng, &b.linear2_w);
    if (!st && nb)
        st = add_param(ps, fn, prefix, "linear2.bias", E, 0, INIT_FAN_IN, F, rng, &b.linear2_b);
    static const char *const wn[3] = {"norm1.weight", "norm2.weight", "norm3.weight"};
    static const char *const bn[3] = {"norm1.bias", "norm2.bias", "norm3.bias"};
    for (int i = 0; i < (b.cfg.cross ? 3 : 2) && !st; i++) {
        st = add_param(ps, fn, prefix, wn[i], E, 0, INIT_ONE, 0, rng, &b.norm_w[i]);
        if (!st && nb) st = add_param(ps, fn, prefix, bn[i], E, 0, INIT_ZERO, 0, rng, &b.norm_b[i]);
    }
    if (st) return st;
    if (!rng)
        for (int i = 0; i < 3; i++)
            if (b.norm_w[i]) attn_init_constant(b.norm_w[i], 1.0f);
    *blk = b;
    return ATTN_OK;
}

static attn_tensor *block_ff(attn_ctx *ctx, const attn_block *blk, attn_tensor *x) {
    /* linear_gelu: the bits of linear then gelu, in one op (fused into the
     * product's blocks under bf16 without gradients) */
    attn_tensor *h = blk->cfg.activation == ATTN_ACT_GELU
                         ? attn_linear_gelu(ctx, x, blk->linear1_w, blk->linear1_b)
                         : attn_relu(ctx, attn_linear(ctx, x, blk->linear1_w, blk->linear1_b));
    h = attn_dropout(ctx, h, blk->cfg.dropout);
    return attn_linear(ctx, h, blk->linear2_w, blk->linear2_b);
}

/* x + Drop(f) then (post-LN) norm i; or (pre-LN) just x + Drop(f). */
static attn_tensor *residual(attn_ctx *ctx, const attn_block *blk, attn_tensor *x,
                             attn_tensor *f, int norm) {
    attn_tensor *y = attn_add(ctx, x, attn_dropout(ctx, f, blk->cfg.dropout));
    if (blk->cfg.norm_first) return y;
    return attn_layernorm(ctx, y, blk->norm_w[norm], blk->norm_b[norm], blk->cfg.ln_eps);
}

attn_tensor *attn_block_forward(attn_ctx *ctx, const attn_block *blk, attn_tensor *x,
                                attn_tensor *memory, const attn_mha_call *self_call,
                                const attn_mha_call *cross_call, attn_tensor **self_weights) {
    return attn_block_forward_ex(ctx, blk, x, memory, self_call, cross_call, self_weights, NULL);
}

attn_tensor *attn_block_forward_ex(attn_ctx *ctx, const attn_block *blk, attn_tensor *x,
                                   attn_tensor *memory, const attn_mha_call *self_call,
                                   const attn_mha_call *cross_call, attn_tensor **self_weights,
                                   attn_tensor **cross_weights) {
    static const char fn[] = "attn_block_forward";
    if (self_weights) *self_weights = NULL;
    if (cross_weights) *cross_weights = NULL;
    if (!ctx) {
        attn__error(ATTN_ERR_INVALID_ARG, "%s: context is NULL", fn);
        return NULL;
    }
    if (attn__any_null(ctx, fn, 1, x) || ctx->status) return NULL;
    if (!blk) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: block is NULL", fn);
        return NULL;
    }
    if (blk->cfg.external_mixer) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: the block was made with external_mixer: run it with "
                   "attn_block_forward_mixer", fn);
        return NULL;
    }
    const int cross = blk->cfg.cross;
    if (!blk->linear1_w || !blk->linear2_w || !blk->norm_w[0] || !blk->norm_w[1] ||
        (cross && !blk->norm_w[2])) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: the block's parameters are missing (initialise it with attn_block_init)",
                   fn);
        return NULL;
    }
    if (cross != (memory != NULL)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   cross ? "%s: a decoder block (cross) needs memory [B, S, E]"
                         : "%s: an encoder block takes no memory (got one)",
                   fn);
        return NULL;
    }
    const float eps = blk->cfg.ln_eps;
    const int pre = blk->cfg.norm_first;
    const int last = cross ? 2 : 1;
    /* self-attention */
    attn_tensor *h = pre ? attn_layernorm(ctx, x, blk->norm_w[0], blk->norm_b[0], eps) : x;
    attn_tensor *a = attn_mha_forward(ctx, &blk->self_attn, h, NULL, self_call, self_weights);
    x = residual(ctx, blk, x, a, 0);
    /* cross-attention */
    if (cross) {
        h = pre ? attn_layernorm(ctx, x, blk->norm_w[1], blk->norm_b[1], eps) : x;
        a = attn_mha_forward(ctx, &blk->cross_attn, h, memory, cross_call, cross_weights);
        x = residual(ctx, blk, x, a, 1);
    }
    /* feed-forward */
    h = pre ? attn_layernorm(ctx, x, blk->norm_w[last], blk->norm_b[last], eps) : x;
    x = residual(ctx, blk, x, block_ff(ctx, blk, h), last);
    return x;
}

attn_tensor *attn_block_forward_mixer(attn_ctx *ctx, const attn_block *blk, attn_tensor *x,
                                      attn_block_mixer_fn mixer, const void *state) {
    static const char fn[] = "attn_block_forward_mixer";
    if (!ctx) {
        attn__error(ATTN_ERR_INVALID_ARG, "%s: context is NULL", fn);
        return NULL;
    }
    if (attn__any_null(ctx, fn, 1, x) || ctx->status) return NULL;
    if (!blk || !mixer || !blk->cfg.external_mixer || !blk->linear1_w || !blk->norm_w[1]) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: %s", fn, !blk ? "block is NULL" : !mixer ? "mixer is NULL"
                   : !blk->cfg.external_mixer ? "the block has its own self-attention (made "
                                                "without external_mixer): use attn_block_forward"
                   : "the block's parameters are missing (initialise it with attn_block_init)");
        return NULL;
    }
    const float eps = blk->cfg.ln_eps;
    const int pre = blk->cfg.norm_first;
    attn_tensor *h = pre ? attn_layernorm(ctx, x, blk->norm_w[0], blk->norm_b[0], eps) : x;
    attn_tensor *a = h ? mixer(ctx, state, h) : NULL;
    if (!a) return NULL;
    x = residual(ctx, blk, x, a, 0);
    h = pre ? attn_layernorm(ctx, x, blk->norm_w[1], blk->norm_b[1], eps) : x;
    return residual(ctx, blk, x, block_ff(ctx, blk, h), 1);
}
