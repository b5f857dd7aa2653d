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
#include "model_meta.h"
#include "attn/checkpoint.h"
#include "attn/gpt.h"
#include "attn/long_context.h"
#include "attn/ops.h"
#include "attn/params.h"
#include "attn/safetensors.h"
#include "attn/txl.h"

static attn_status txl_check_config(const attn_txl_config *c) {
    static const char fn[] = "attn_txl_new";
    if (c->vocab < 2 || c->vocab > INT32_MAX || c->n_layers < 1 || c->n_heads < 1 ||
        c->d_head < 1 || c->d_model < 2 || c->d_model % 2 != 0 || (!c->no_ffn && c->d_inner < 1) ||
        c->n_persist < 0 || c->clamp_len < 0)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: vocab %lld (in [2, 2^31)), n_layers %d, n_heads %d, d_head %lld "
                           "(>= 1), d_model %lld (even, >= 2), d_inner %lld (>= 1 unless no_ffn), "
                           "n_persist %lld (>= 0), clamp_len %lld (>= 0)",
                           fn, (long long)c->vocab, c->n_layers, c->n_heads, (long long)c->d_head,
                           (long long)c->d_model, (long long)c->d_inner, (long long)c->n_persist,
                           (long long)c->clamp_len);
    if (c->n_layers > 4096 || c->n_heads > 4096 || c->d_head > (1 << 20) ||
        c->d_model > (1 << 20) || c->d_inner > (1 << 24) || c->n_persist > (1 << 20) ||
        c->clamp_len > INT32_MAX)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: a size is too large (n_layers %d, n_heads "
                           "%d, d_head %lld, d_model %lld, d_inner %lld, n_persist %lld)", fn,
                           c->n_layers, c->n_heads, (long long)c->d_head, (long long)c->d_model,
                           (long long)c->d_inner, (long long)c->n_persist);
    if (!(c->ln_eps > 0.0f && isfinite(c->ln_eps)))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: ln_eps %g, expected finite > 0", fn,
                           (double)c->ln_eps);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: dropout %g outside [0, 1)", fn,
                           (double)c->dropout);
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
        if (y->span) attn_init_constant(y->span, c.span_init / c.span_max); /* p = z / span_max */
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
    const float *p = attn_f32(m->layers[layer].span);
    float pmax = 0.0f;
    for (int h = 0; h < m->cfg.n_heads; h++)
        if (p[h] > pmax) pmax = p[h];
    /* z = span_max p, as the op computes it (attn_scale: one f32 product) */
    return (int64_t)ceil((double)(m->cfg.span_max * pmax) + (double)m->cfg.span_ramp);
}

/* The sinusoid of distances 0 .. S-1: [S, E], row x = [sin(x w_i) | cos(x w_i)],
 * w_i = 10000^(-2i/E), in float as Transformer-XL's code computes it; with
 * clamp > 0 the rows past clamp repeat the row of clamp (its clamp_len). */
static attn_tensor *distance_table(attn_ctx *ctx, int64_t S, int64_t E, int64_t clamp) {
    attn_tensor *r = attn_tensor_new(ctx, ATTN_F32, 2, (int64_t[]){S, E});
    if (!r) return NULL;
    float *p = attn_f32(r);
    const int64_t half = E / 2;
    for (int64_t i = 0; i < half; i++) {
        const float w = 1.0f / powf(10000.0f, (float)(2 * i) / (float)E);
        for (int64_t x = 0; x < S; x++) {
            const float a = (float)(clamp > 0 && x > clamp ? clamp : x) * w;
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
    const float p = c->dropout;
    attn_tensor *h = attn_dropout(ctx, attn_scale(ctx, attn_embedding(ctx, m->emb, ids), sqrtf((float)E)), p);
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
        attn_tensor *r = distance_table(ctx, S, E, c->clamp_len);
        static const int rperm[3] = {1, 0, 2};
        attn_tensor *rk = attn_permute(
            ctx, attn_reshape(ctx, attn_linear(ctx, r, y->r_w, NULL), 3, (int64_t[]){S, H, D}), rperm);
        attn_txl_attention_opts o;
        memset(&o, 0, sizeof o);
        o.span = y->span ? attn_scale(ctx, y->span, c->span_max) : NULL; /* z = span_max p */
        if (y->span && !o.span) return NULL;
        o.ramp = c->span_ramp;
        o.span_eps = c->span_eps;
        o.pers_k = y->pers_k;
        o.pers_v = y->pers_v;
        if (y->pers_k && c->pers_scaled) { /* the published code: key sqrt(D), value sqrt(N) */
            o.pers_k = attn_scale(ctx, y->pers_k, sqrtf((float)D));
            o.pers_v = attn_scale(ctx, y->pers_v, sqrtf((float)c->n_persist));
            if (!o.pers_k || !o.pers_v) return NULL;
        }
        attn_tensor *a = attn_txl_attention(ctx, q, k, v, rk, y->u, y->vb, &o,
                                            attn_weights ? &attn_weights[l] : NULL);
        static const int operm[4] = {0, 2, 1, 3};
        a = attn_reshape(ctx, attn_permute(ctx, a, operm), 3, (int64_t[]){B, T, HD});
        a = attn_dropout(ctx, attn_linear(ctx, a, y->o_w, NULL), p);
        h = attn_layernorm(ctx, attn_add(ctx, h, a), y->ln1_w, y->ln1_b, c->ln_eps);
        if (!c->no_ffn) {
            attn_tensor *f = attn_relu(ctx, attn_linear(ctx, h, y->ff1_w, y->ff1_b));
            f = attn_dropout(ctx, attn_linear(ctx, attn_dropout(ctx, f, p), y->ff2_w, y->ff2_b), p);
            h = attn_layernorm(ctx, attn_add(ctx, h, f), y->ln2_w, y->ln2_b, c->ln_eps);
        }
    }
    attn_tensor *logits = h ? attn_linear(ctx, h, m->emb, m->out_b) : NULL;
    if (!logits) return NULL;
    if (inputs) { /* mem_l <- the last mem_len rows of [mem_l ; h_l] */
        const int64_t keep = mem->len + T < mem->mem_len ? mem->len + T : mem->mem_len;
        const int64_t from_old = keep > T ? keep - T : 0; /* rows kept from the old memory */
        for (int l = 0; l < c->n_layers; l++) /* all first: on error the memory is unchanged */
            if (!(inputs[l] = attn_contiguous(ctx, inputs[l]))) return NULL;
        for (int l = 0; l < c->n_layers; l++) {
            const attn_tensor *x = inputs[l];
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
    return attn_scale(ctx, sum, coeff * m->cfg.span_max); /* coeff span_max sum_l mean_h p */
}

void attn_txl_clamp_spans(attn_txl *m) {
    if (!m) return;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        if (!m->layers[l].span) continue;
        float *p = attn_f32(m->layers[l].span);
        for (int h = 0; h < m->cfg.n_heads; h++) p[h] = !(p[h] > 0.0f) ? 0.0f : p[h] > 1.0f ? 1.0f : p[h];
    }
}

/* ---- evaluation and generation ---------------------------------------------------------- */

static attn_status check_ids(const char *fn, const attn_txl *m, const int32_t *ids, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab)
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: id %d at %lld outside [0, %lld)", fn,
                               ids[i], (long long)i, (long long)m->cfg.vocab);
    return ATTN_OK;
}

/* Logits [1, n, V] of ids[0 .. n) after the memory (gradients off). */
static attn_tensor *segment_logits(attn_ctx *ctx, const attn_txl *m, const int32_t *ids, int64_t n,
                                   attn_txl_memory *mem) {
    attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, n}, ids);
    return t ? attn_txl_logits(ctx, m, t, mem, NULL) : NULL;
}

/* attn_txl_eval_stream and attn_txl_eval_stream_losses (fn: the caller's
 * name): the summed loss into *nll and *count, each prediction's into
 * losses[i] when losses is not NULL. */
static attn_status eval_stream(const char *fn, attn_ctx *ctx, const attn_txl *m, const int32_t *ids, int64_t n,
                               int64_t seg_len, int64_t mem_len, double *nll, int64_t *count, double *losses) {
    if (!ctx || !m || !ids || !nll || !count)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (n < 2 || seg_len < 1 || mem_len < 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: n %lld (>= 2), seg_len %lld (>= 1), mem_len "
                           "%lld (>= 0)", fn, (long long)n, (long long)seg_len, (long long)mem_len);
    attn_status st = check_ids(fn, m, ids, n);
    if (st != ATTN_OK) return st;
    attn_txl_memory mem;
    st = attn_txl_memory_init(&mem, m, 1, mem_len, 0);
    if (st != ATTN_OK) return st;
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    const size_t mark = attn__arena_mark(ctx);
    const int64_t V = m->cfg.vocab;
    double sum = 0.0;
    /* positions 0 .. n-2 are inputs (position n-1 has no target) */
    for (int64_t i = 0; i < n - 1 && st == ATTN_OK; i += seg_len) {
        const int64_t T = n - 1 - i < seg_len ? n - 1 - i : seg_len;
        attn_tensor *lg = segment_logits(ctx, m, ids + i, T, &mem);
        if (!lg) {
            st = attn_ctx_status(ctx);
            attn__error(st, "%s", attn_ctx_error(ctx));
            break;
        }
        for (int64_t t = 0; t < T; t++) {
            const float *row = attn_f32(lg) + t * V;
            double mx = -INFINITY, z = 0.0;
            for (int64_t v = 0; v < V; v++) mx = row[v] > mx ? row[v] : mx;
            for (int64_t v = 0; v < V; v++) z += exp((double)row[v] - mx);
            const double loss = mx + log(z) - (double)row[ids[i + t + 1]];
            if (losses) losses[i + t] = loss;
            sum += loss;
        }
        attn__arena_rewind(ctx, mark);
    }
    attn__arena_rewind(ctx, mark);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    attn_txl_memory_free(&mem);
    if (st == ATTN_OK) {
        *nll += sum;
        *count += n - 1;
    }
    return st;
}

attn_status attn_txl_eval_stream(attn_ctx *ctx, const attn_txl *m, const int32_t *ids, int64_t n,
                                 int64_t seg_len, int64_t mem_len, double *nll, int64_t *count) {
    return eval_stream("attn_txl_eval_stream", ctx, m, ids, n, seg_len, mem_len, nll, count, NULL);
}

attn_status attn_txl_eval_stream_losses(attn_ctx *ctx, const attn_txl *m, const int32_t *ids, int64_t n,
                                        int64_t seg_len, int64_t mem_len, double *losses) {
    static const char fn[] = "attn_txl_eval_stream_losses";
    if (!losses) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    double nll = 0.0;
    int64_t count = 0;
    return eval_stream(fn, ctx, m, ids, n, seg_len, mem_len, &nll, &count, losses);
}

attn_status attn_txl_generate(attn_ctx *ctx, const attn_txl *m, const int32_t *prompt,
                              int64_t n_prompt, int64_t n_new, int64_t mem_len,
                              const struct attn_sample_opts *opts, int32_t *out) {
    static const char fn[] = "attn_txl_generate";
    if (!ctx || !m || !prompt || (!out && n_new > 0))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (n_prompt < 1 || n_new < 0 || mem_len < 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: n_prompt %lld (>= 1), n_new %lld (>= 0), "
                           "mem_len %lld (>= 0)", fn, (long long)n_prompt, (long long)n_new,
                           (long long)mem_len);
    attn_status st = check_ids(fn, m, prompt, n_prompt);
    if (st != ATTN_OK || n_new == 0) return st;
    const attn_sample_opts def = {1.0f, 0, 0.0f, 0, 0};
    const attn_sample_opts *o = opts ? opts : &def;
    const int64_t V = m->cfg.vocab;
    float *row = malloc((size_t)V * sizeof *row);
    void *work = malloc((size_t)V * (sizeof(float) + sizeof(int32_t)));
    attn_txl_memory mem;
    memset(&mem, 0, sizeof mem);
    st = row && work ? attn_txl_memory_init(&mem, m, 1, mem_len, 0)
                     : attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    const size_t mark = attn__arena_mark(ctx);
    const int32_t *seg = prompt;
    int64_t T = n_prompt;
    for (int64_t i = 0; i < n_new && st == ATTN_OK; i++) {
        attn_tensor *lg = segment_logits(ctx, m, seg, T, &mem);
        if (!lg) {
            st = attn_ctx_status(ctx);
            attn__error(st, "%s", attn_ctx_error(ctx));
            break;
        }
        memcpy(row, attn_f32(lg) + (T - 1) * V, (size_t)V * sizeof *row);
        attn__arena_rewind(ctx, mark);
        out[i] = attn_sample_token(row, V, o, attn_rng_uniform(o->seed, 0, (uint64_t)i), work);
        seg = &out[i];
        T = 1;
    }
    attn__arena_rewind(ctx, mark);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    attn_txl_memory_free(&mem);
    free(row);
    free(work);
    return st;
}

/* ---- files ------------------------------------------------------------------------------ */

static const attn__meta_field meta_fields[ATTN_TXL_META] = {
    ATTN__META_FIELD("txl.vocab", ATTN__META_I64, attn_txl_config, vocab),
    ATTN__META_FIELD("txl.n_layers", ATTN__META_INT, attn_txl_config, n_layers),
    ATTN__META_FIELD("txl.n_heads", ATTN__META_INT, attn_txl_config, n_heads),
    ATTN__META_FIELD("txl.d_head", ATTN__META_I64, attn_txl_config, d_head),
    ATTN__META_FIELD("txl.d_model", ATTN__META_I64, attn_txl_config, d_model),
    ATTN__META_FIELD("txl.d_inner", ATTN__META_I64, attn_txl_config, d_inner),
    ATTN__META_FIELD("txl.ln_eps", ATTN__META_FLOAT, attn_txl_config, ln_eps),
    ATTN__META_FIELD("txl.no_ffn", ATTN__META_FLAG, attn_txl_config, no_ffn),
    ATTN__META_FIELD("txl.n_persist", ATTN__META_I64, attn_txl_config, n_persist),
    ATTN__META_FIELD("txl.span_max", ATTN__META_FLOAT, attn_txl_config, span_max),
    ATTN__META_FIELD("txl.span_ramp", ATTN__META_FLOAT, attn_txl_config, span_ramp),
    ATTN__META_FIELD("txl.span_init", ATTN__META_FLOAT, attn_txl_config, span_init),
    ATTN__META_FIELD("txl.span_eps", ATTN__META_FLOAT, attn_txl_config, span_eps),
    ATTN__META_FIELD("txl.dropout", ATTN__META_FLOAT, attn_txl_config, dropout),
    ATTN__META_FIELD_OPT("txl.pers_scaled", ATTN__META_FLAG, attn_txl_config, pers_scaled),
    ATTN__META_FIELD_OPT("txl.clamp_len", ATTN__META_I64, attn_txl_config, clamp_len),
};

void attn_txl_config_meta(const attn_txl_config *c, attn_kv *kv, char *buf) {
    attn__meta_write(meta_fields, ATTN_TXL_META, c, kv, buf);
}

attn_status attn_txl_config_load(const char *path, attn_txl_config *cfg) {
    static const char fn[] = "attn_txl_config_load";
    if (!path || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_txl_config c;
    memset(&c, 0, sizeof c);
    const attn_status st = attn__meta_load(fn, "Transformer-XL", path, meta_fields, ATTN_TXL_META, &c);
    if (st == ATTN_OK) *cfg = c;
    return st;
}

attn_status attn_txl_save(const char *path, const attn_txl *m, const attn_kv *meta, int n_meta) {
    if (!path || !m || (n_meta > 0 && !meta) || n_meta < 0 || n_meta > 64)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_txl_save: NULL argument or n_meta %d", n_meta);
    attn_kv kv[ATTN_TXL_META + 64];
    char buf[ATTN_TXL_META * 32];
    attn_txl_config_meta(&m->cfg, kv, buf);
    return attn__meta_save(path, m->params, kv, ATTN_TXL_META, meta, n_meta);
}

attn_status attn_txl_load(const char *path, attn_params *ps, attn_txl **out) {
    static const char fn[] = "attn_txl_load";
    if (out) *out = NULL;
    if (!path || !ps || !out) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_txl_config c;
    attn_status st = attn_txl_config_load(path, &c);
    if (st != ATTN_OK) return st;
    /* the file must hold what the metadata claims before anything is built */
    st = attn__meta_check_size(fn, path, c.n_layers,
                               attn__meta_mul_add(c.d_model, c.vocab, c.d_model));
    if (st != ATTN_OK) return st;
    if (c.n_layers >= 1 && c.d_model >= 1 && c.n_heads >= 1 && c.d_head >= 1) {
        char last[80];
        snprintf(last, sizeof last, "transformer.layers.%d.dec_attn.qkv_net.weight", c.n_layers - 1);
        const attn__meta_shape want[] = {
            {"transformer.word_emb.emb_layers.0.weight", c.vocab, c.d_model},
            {last, 3 * (int64_t)c.n_heads * c.d_head, c.d_model}};
        st = attn__meta_check_shapes(fn, path, want, 2);
        if (st != ATTN_OK) return st;
    }
    attn_txl *m = NULL;
    st = attn_txl_new(&m, ps, &c, NULL);
    if (st != ATTN_OK) return st;
    st = attn_safetensors_load_params(path, ps, ATTN_ST_ALLOW_UNEXPECTED);
    if (st != ATTN_OK) {
        attn_txl_free(m);
        return st;
    }
    *out = m;
    return ATTN_OK;
}
