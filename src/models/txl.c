/* txl.c: the Transformer-XL language model (include/attn/txl.h), composed
 * from graph ops and TXL_ATTENTION (long_context.h); nothing here has a
 * backward of its own. The memory lives in host memory (it survives
 * attn_ctx_reset) and enters each forward as a constant copy, so no gradient
 * reaches it (Transformer-XL's stop-gradient).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/long_context.h"
#include "attn/ops.h"
#include "attn/params.h"
#include "attn/txl.h"

static attn_status txl_check_config(const attn_txl_config *c) {
    static const char fn[] = "attn_txl_new";
    if (c->vocab < 2 || c->vocab > INT32_MAX || c->n_layers < 1 || c->n_heads < 1 ||
        c->d_head < 1 || c->d_model < 2 || c->d_model % 2 != 0 || (!c->no_ffn && c->d_inner < 1) ||
        c->n_persist < 0)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: vocab %lld (in [2, 2^31)), n_layers %d, n_heads %d, d_head %lld "
                           "(>= 1), d_model %lld (even, >= 2), d_inner %lld (>= 1 unless no_ffn), "
                           "n_persist %lld (>= 0)",
                           fn, (long long)c->vocab, c->n_layers, c->n_heads, (long long)c->d_head,
                           (long long)c->d_model, (long long)c->d_inner, (long long)c->n_persist);
    if (c->n_layers > 4096 || c->n_heads > 4096 || c->d_head > (1 << 20) ||
        c->d_model > (1 << 20) || c->d_inner > (1 << 24) || c->n_persist > (1 << 20))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: a size is too large (n_layers %d, n_heads "
                           "%d, d_head %lld, d_model %lld, d_inner %lld, n_persist %lld)", fn,
                           c->n_layers, c->n_heads, (long long)c->d_head, (long long)c->d_model,
                           (long long)c->d_inner, (long long)c->n_persist);
    if (!(c->ln_eps > 0.0f && isfinite(c->ln_eps)))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: ln_eps %g, expected finite > 0", fn,
                           (double)c->ln_eps);
    if (!(c->span_max >= 0.0f && c->span_max <= 1e7f))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: span_max %g, expected 0 (off) or in (0, "
                           "1e7]", fn, (double)c->span_max);
    if (c->span_max > 0.0f &&
        (!(c->span_ramp > 0.0f && c->span_ramp <= 1e7f) ||
         !(c->span_init >= 0.0f && c->span_init <= c->span_max) ||
         !(c->span_eps >= 0.0f && c->span_eps <= 1.0f)))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: span ramp %g (in (0, 1e7]), init %g (in "
                           "[0, span_max %g]), eps %g (in [0, 1])", fn, (double)c->span_ramp,
                           (double)c->span_init, (double)c->span_max, (double)c->span_eps);
    return ATTN_OK;
}

void attn_txl_free(attn_txl *m) {
    if (!m) return;
    free(m->layers);
    free(m);
}

static attn_status add(attn_params *ps, const char *prefix, const char *name, int ndim,
                       const int64_t *shape, attn_tensor **out) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return attn_params_add(ps, full, ndim, shape, out);
}

attn_status attn_txl_new(attn_txl **out, attn_params *ps, const attn_txl_config *cfg,
                         attn_rng *rng) {
    if (out) *out = NULL;
    if (!out || !ps || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "attn_txl_new: NULL argument");
    attn_txl_config c = *cfg;
    if (c.ln_eps == 0.0f) c.ln_eps = 1e-5f;
    if (c.span_max > 0.0f && c.span_ramp == 0.0f) c.span_ramp = 32.0f;
    attn_status st = txl_check_config(&c);
    if (st != ATTN_OK) return st;
    attn_txl *m = calloc(1, sizeof *m);
    if (m) m->layers = calloc((size_t)c.n_layers, sizeof *m->layers);
    if (!m || !m->layers) {
        attn_txl_free(m);
        return attn__error(ATTN_ERR_OOM, "attn_txl_new: out of memory");
    }
    m->cfg = c;
    m->params = ps;
    const int64_t V = c.vocab, E = c.d_model, H = c.n_heads, D = c.d_head, HD = H * D,
                  F = c.d_inner, N = c.n_persist;
    st = attn_params_add(ps, "transformer.word_emb.emb_layers.0.weight", 2, (int64_t[]){V, E},
                         &m->emb);
    for (int l = 0; l < c.n_layers && st == ATTN_OK; l++) {
        attn_txl_layer *y = &m->layers[l];
        char p[64];
        snprintf(p, sizeof p, "transformer.layers.%d.", l);
        st = add(ps, p, "dec_attn.qkv_net.weight", 2, (int64_t[]){3 * HD, E}, &y->qkv_w);
        if (!st) st = add(ps, p, "dec_attn.r_net.weight", 2, (int64_t[]){HD, E}, &y->r_w);
        if (!st) st = add(ps, p, "dec_attn.o_net.weight", 2, (int64_t[]){E, HD}, &y->o_w);
        if (!st) st = add(ps, p, "dec_attn.layer_norm.weight", 1, (int64_t[]){E}, &y->ln1_w);
        if (!st) st = add(ps, p, "dec_attn.layer_norm.bias", 1, (int64_t[]){E}, &y->ln1_b);
        if (!st) st = add(ps, p, "dec_attn.r_w_bias", 2, (int64_t[]){H, D}, &y->u);
        if (!st) st = add(ps, p, "dec_attn.r_r_bias", 2, (int64_t[]){H, D}, &y->vb);
        if (!st && c.span_max > 0.0f) st = add(ps, p, "dec_attn.span", 1, (int64_t[]){H}, &y->span);
        if (!st && N > 0) st = add(ps, p, "dec_attn.pers_k", 3, (int64_t[]){H, N, D}, &y->pers_k);
        if (!st && N > 0) st = add(ps, p, "dec_attn.pers_v", 3, (int64_t[]){H, N, D}, &y->pers_v);
        if (!c.no_ffn) {
            if (!st) st = add(ps, p, "pos_ff.CoreNet.0.weight", 2, (int64_t[]){F, E}, &y->ff1_w);
            if (!st) st = add(ps, p, "pos_ff.CoreNet.0.bias", 1, (int64_t[]){F}, &y->ff1_b);
            if (!st) st = add(ps, p, "pos_ff.CoreNet.3.weight", 2, (int64_t[]){E, F}, &y->ff2_w);
            if (!st) st = add(ps, p, "pos_ff.CoreNet.3.bias", 1, (int64_t[]){E}, &y->ff2_b);
            if (!st) st = add(ps, p, "pos_ff.layer_norm.weight", 1, (int64_t[]){E}, &y->ln2_w);
            if (!st) st = add(ps, p, "pos_ff.layer_norm.bias", 1, (int64_t[]){E}, &y->ln2_b);
        }
    }
    if (st == ATTN_OK) st = attn_params_add(ps, "crit.out_layers.0.bias", 1, (int64_t[]){V}, &m->out_b);
    if (st != ATTN_OK) {
        attn_txl_free(m);
        return st;
    }
    for (int l = 0; l < c.n_layers; l++) {
        attn_txl_layer *y = &m->layers[l];
        attn_init_constant(y->ln1_w, 1.0f);
        if (y->ln2_w) attn_init_constant(y->ln2_w, 1.0f);
        if (y->span) attn_init_constant(y->span, c.span_init);
        if (!rng) continue;
        attn_tensor *w[] = {y->qkv_w, y->r_w, y->o_w, y->u, y->vb, y->ff1_w, y->ff2_w};
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
            if (w[i]) attn_init_normal(w[i], 0.02f, rng);
        if (y->pers_k) attn_init_normal(y->pers_k, 1.0f / sqrtf((float)D), rng);
        if (y->pers_v) attn_init_normal(y->pers_v, 1.0f / sqrtf((float)N), rng);
    }
    if (rng) attn_init_normal(m->emb, 0.02f, rng);
    *out = m;
    return ATTN_OK;
}

/* ---- memory ------------------------------------------------------------------------ */

attn_status attn_txl_memory_init(attn_txl_memory *mem, const attn_txl *m, int64_t B,
                                 int64_t mem_len, int zeros) {
    if (!mem) return attn__error(ATTN_ERR_INVALID_ARG, "attn_txl_memory_init: NULL memory");
    memset(mem, 0, sizeof *mem);
    if (!m || B < 1 || B > (1 << 20) || mem_len < 0 || mem_len > (1 << 24))
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_txl_memory_init: model %s, B %lld (in "
                           "[1, 2^20]), mem_len %lld (in [0, 2^24])", m ? "given" : "NULL",
                           (long long)B, (long long)mem_len);
    size_t n;
    if (attn__mul_size((size_t)m->cfg.n_layers * (size_t)B, (size_t)mem_len, &n) ||
        attn__mul_size(n, (size_t)m->cfg.d_model, &n) || attn__mul_size(n, sizeof(float), &n))
        return attn__error(ATTN_ERR_OOM, "attn_txl_memory_init: size overflows");
    mem->h = calloc(n ? n : 1, 1);
    if (!mem->h)
        return attn__error(ATTN_ERR_OOM, "attn_txl_memory_init: out of memory (needed %zu bytes)", n);
    mem->B = B;
    mem->E = m->cfg.d_model;
    mem->mem_len = mem_len;
    mem->n_layers = m->cfg.n_layers;
    mem->len = zeros ? mem_len : 0;
    return ATTN_OK;
}

void attn_txl_memory_free(attn_txl_memory *mem) {
    if (!mem) return;
    free(mem->h);
    memset(mem, 0, sizeof *mem);
}

void attn_txl_memory_reset(attn_txl_memory *mem, int zeros) {
    if (!mem || !mem->h) return;
    memset(mem->h, 0, sizeof(float) * (size_t)(mem->n_layers * mem->B * mem->mem_len * mem->E));
    mem->len = zeros ? mem->mem_len : 0;
}

static float *mem_rows(const attn_txl_memory *mem, int l, int64_t b) {
    return mem->h + (((size_t)l * (size_t)mem->B + (size_t)b) * (size_t)mem->mem_len) * (size_t)mem->E;
}

/* ---- forward ------------------------------------------------------------------------- */

int64_t attn_txl_span_window(const attn_txl *m, int layer) {
    if (!m || layer < 0 || layer >= m->cfg.n_layers || !m->layers[layer].span) return 0;
    const float *z = attn_f32(m->layers[layer].span);
    float zmax = 0.0f;
    for (int h = 0; h < m->cfg.n_heads; h++)
        if (z[h] > zmax) zmax = z[h];
    return (int64_t)ceil((double)zmax + (double)m->cfg.span_ramp);
}

/* The sinusoid of distances 0 .. S-1: [S, E], row x = [sin(x w_i) | cos(x w_i)],
 * w_i = 10000^(-2i/E), in float as Transformer-XL's code computes it. */
static attn_tensor *distance_table(attn_ctx *ctx, int64_t S, int64_t E) {
    attn_tensor *r = attn_tensor_new(ctx, ATTN_F32, 2, (int64_t[]){S, E});
    if (!r) return NULL;
    float *p = attn_f32(r);
    const int64_t half = E / 2;
    for (int64_t i = 0; i < half; i++) {
        const float w = 1.0f / powf(10000.0f, (float)(2 * i) / (float)E);
        for (int64_t x = 0; x < S; x++) {
            const float a = (float)x * w;
            p[x * E + i] = sinf(a);
            p[x * E + half + i] = cosf(a);
        }
    }
    return r;
}

static attn_tensor *heads(attn_ctx *ctx, attn_tensor *x, int64_t B, int64_t R, int64_t H,
                          int64_t D) { /* [B, R, H D] view -> [B, H, R, D] */
    static const int perm[4] = {0, 2, 1, 3};
    return attn_permute(ctx, attn_reshape(ctx, x, 4, (int64_t[]){B, R, H, D}), perm);
}

attn_tensor *attn_txl_logits(attn_ctx *ctx, const attn_txl *m, attn_tensor *ids,
                             attn_txl_memory *mem, attn_tensor **attn_weights) {
    static const char fn[] = "txl_logits";
    if (!m) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: NULL model", fn);
        return NULL;
    }
    const attn_txl_config *c = &m->cfg;
    if (attn_weights)
        for (int l = 0; l < c->n_layers; l++) attn_weights[l] = NULL;
    if (attn__any_null(ctx, fn, 1, ids)) return NULL;
    if (attn__check_dtype(ctx, fn, "ids", ids, ATTN_I32)) return NULL;
    if (ids->ndim != 2 || ids->shape[0] < 1 || ids->shape[1] < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: ids %s, expected [B, T]", fn, attn__shp(ids));
        return NULL;
    }
    const int64_t B = ids->shape[0], T = ids->shape[1], E = c->d_model, H = c->n_heads,
                  D = c->d_head, HD = H * D;
    if (mem && (mem->B != B || mem->E != E || mem->n_layers != c->n_layers || !mem->h)) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: ids %s with a memory of B %lld, E %lld, %d layers "
                   "(model: E %lld, %d layers)", fn, attn__shp(ids), (long long)(mem ? mem->B : 0),
                   (long long)(mem ? mem->E : 0), mem ? mem->n_layers : 0, (long long)E,
                   c->n_layers);
        return NULL;
    }
    attn_tensor *h = attn_scale(ctx, attn_embedding(ctx, m->emb, ids), sqrtf((float)E));
    attn_tensor **inputs = NULL; /* each layer's input, for the memory update */
    if (mem && mem->mem_len > 0) {
        inputs = attn__alloc(ctx, sizeof(attn_tensor *) * (size_t)c->n_layers, "txl layer inputs");
        if (!inputs) return NULL;
    }
    for (int l = 0; l < c->n_layers && h; l++) {
        const attn_txl_layer *y = &m->layers[l];
        if (inputs) inputs[l] = h;
        int64_t M = mem ? mem->len : 0;
        const int64_t win = attn_txl_span_window(m, l);
        if (win > 0 && M > win && !c->span_no_trim) M = win; /* trimmed: farther keys have a zero mask */
        attn_tensor *cat = h;
        if (M > 0) {
            attn_tensor *mt = attn_tensor_new(ctx, ATTN_F32, 3, (int64_t[]){B, M, E});
            if (!mt) return NULL;
            for (int64_t b = 0; b < B; b++)
                memcpy(attn_f32(mt) + b * M * E, mem_rows(mem, l, b) + (mem->len - M) * E,
                       sizeof(float) * (size_t)(M * E));
            attn_tensor *parts[2] = {mt, h};
            cat = attn_concat(ctx, parts, 2, 1);
        }
        const int64_t S = M + T;
        attn_tensor *wh = attn_linear(ctx, cat, y->qkv_w, NULL); /* [B, S, 3 H D] */
        attn_tensor *q = heads(ctx, attn_slice(ctx, attn_slice(ctx, wh, 1, M, T), 2, 0, HD), B, T, H, D);
        attn_tensor *k = heads(ctx, attn_slice(ctx, wh, 2, HD, HD), B, S, H, D);
        attn_tensor *v = heads(ctx, attn_slice(ctx, wh, 2, 2 * HD, HD), B, S, H, D);
        attn_tensor *r = distance_table(ctx, S, E);
        static const int rperm[3] = {1, 0, 2};
        attn_tensor *rk = attn_permute(
            ctx, attn_reshape(ctx, attn_linear(ctx, r, y->r_w, NULL), 3, (int64_t[]){S, H, D}), rperm);
        attn_txl_attention_opts o;
        memset(&o, 0, sizeof o);
        o.span = y->span;
        o.ramp = c->span_ramp;
        o.span_eps = c->span_eps;
        o.pers_k = y->pers_k;
        o.pers_v = y->pers_v;
        attn_tensor *a = attn_txl_attention(ctx, q, k, v, rk, y->u, y->vb, &o,
                                            attn_weights ? &attn_weights[l] : NULL);
        static const int operm[4] = {0, 2, 1, 3};
        a = attn_reshape(ctx, attn_permute(ctx, a, operm), 3, (int64_t[]){B, T, HD});
        a = attn_linear(ctx, a, y->o_w, NULL);
        h = attn_layernorm(ctx, attn_add(ctx, h, a), y->ln1_w, y->ln1_b, c->ln_eps);
        if (!c->no_ffn) {
            attn_tensor *f = attn_linear(ctx, attn_relu(ctx, attn_linear(ctx, h, y->ff1_w, y->ff1_b)),
                                         y->ff2_w, y->ff2_b);
            h = attn_layernorm(ctx, attn_add(ctx, h, f), y->ln2_w, y->ln2_b, c->ln_eps);
        }
    }
    attn_tensor *logits = h ? attn_linear(ctx, h, m->emb, m->out_b) : NULL;
    if (!logits) return NULL;
    if (inputs) { /* mem_l <- the last mem_len rows of [mem_l ; h_l] */
        const int64_t keep = mem->len + T < mem->mem_len ? mem->len + T : mem->mem_len;
        const int64_t from_old = keep > T ? keep - T : 0; /* rows kept from the old memory */
        for (int l = 0; l < c->n_layers; l++) {
            const attn_tensor *x = attn_contiguous(ctx, inputs[l]);
            if (!x) return NULL;
            for (int64_t b = 0; b < B; b++) {
                float *dst = mem_rows(mem, l, b);
                memmove(dst, dst + (mem->len - from_old) * E, sizeof(float) * (size_t)(from_old * E));
                const int64_t new_rows = keep - from_old;
                memcpy(dst + from_old * E, attn_f32(x) + (b * T + (T - new_rows)) * E,
                       sizeof(float) * (size_t)(new_rows * E));
            }
        }
        mem->len = keep;
    }
    return logits;
}

attn_tensor *attn_txl_loss(attn_ctx *ctx, const attn_txl *m, attn_tensor *ids,
                           attn_tensor *targets, int32_t ignore_index, attn_txl_memory *mem,
                           attn_tensor **logits_out) {
    static const char fn[] = "txl_loss";
    if (logits_out) *logits_out = NULL;
    if (attn__any_null(ctx, fn, 2, ids, targets)) return NULL;
    if (attn__check_dtype(ctx, fn, "targets", targets, ATTN_I32)) return NULL;
    if (targets->ndim != 2 || ids->ndim != 2 || targets->shape[0] != ids->shape[0] ||
        targets->shape[1] != ids->shape[1]) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: targets %s for ids %s, expected the same [B, T]", fn,
                   attn__shp(targets), attn__shp(ids));
        return NULL;
    }
    attn_tensor *logits = attn_txl_logits(ctx, m, ids, mem, NULL);
    if (!logits) return NULL;
    if (logits_out) *logits_out = logits;
    const int64_t BT = ids->shape[0] * ids->shape[1];
    return attn_cross_entropy(ctx, attn_reshape(ctx, logits, 2, (int64_t[]){BT, m->cfg.vocab}),
                              attn_reshape(ctx, targets, 1, (int64_t[]){BT}), ignore_index, 0.0f);
}

attn_tensor *attn_txl_span_penalty(attn_ctx *ctx, const attn_txl *m, float coeff) {
    if (!m || !m->layers[0].span) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "txl_span_penalty: the model has no adaptive span "
                   "(span_max 0)");
        return NULL;
    }
    attn_tensor *sum = NULL;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        attn_tensor *t = attn_mean(ctx, m->layers[l].span, ATTN_ALL_AXES, 0);
        sum = sum ? attn_add(ctx, sum, t) : t;
    }
    return attn_scale(ctx, sum, coeff);
}

void attn_txl_clamp_spans(attn_txl *m) {
    if (!m) return;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        if (!m->layers[l].span) continue;
        float *z = attn_f32(m->layers[l].span);
        for (int h = 0; h < m->cfg.n_heads; h++)
            z[h] = !(z[h] > 0.0f) ? 0.0f : z[h] > m->cfg.span_max ? m->cfg.span_max : z[h];
    }
}
