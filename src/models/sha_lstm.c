/* sha_lstm.c: the SHA-LSTM byte language model and its plain LSTM baseline
 * (include/attn/sha_lstm.h, docs/sha_rnn.md). The model is graph ops
 * (embedding, the LSTM layers of rnn.h, layernorm, the SHA and Boom of
 * sha_rnn.h, a tied linear decoder); the state carried between segments is
 * copied out of the forward's tensors as plain values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/ops.h"
#include "attn/sha_lstm.h"

#define FN "attn_sha_lstm"
#define LN_EPS 1e-12f

static attn_status check_config(const attn_sha_lstm_config *c) {
    if (!c) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL configuration", FN);
    if (c->arch != ATTN_SHA_LSTM && c->arch != ATTN_PLAIN_LSTM)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: arch %d, expected 0 (SHA-LSTM) or 1 (LSTM)", FN, (int)c->arch);
    if (c->vocab < 2 || c->vocab > (1 << 24) || c->d < 1 || c->d > 65536 || c->layers < 1 ||
        c->layers > ATTN_SHA_LSTM_MAX_LAYERS)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: vocab %lld, d %lld, layers %d: expected vocab in 2 .. 2^24, d in 1 .. 65536, "
                           "layers in 1 .. %d",
                           FN, (long long)c->vocab, (long long)c->d, c->layers, ATTN_SHA_LSTM_MAX_LAYERS);
    if (c->arch == ATTN_SHA_LSTM &&
        (c->attn_layer < -1 || c->attn_layer >= c->layers || c->boom < 1 || c->boom > 64 || c->mem_len < 0 ||
         c->mem_len > (1 << 20)))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: attn_layer %d, boom %lld, mem_len %lld: expected attn_layer in [-1, %d), boom in "
                           "1 .. 64, mem_len in 0 .. 2^20",
                           FN, c->attn_layer, (long long)c->boom, (long long)c->mem_len, c->layers);
    return ATTN_OK;
}

int64_t attn_sha_lstm_param_count(const attn_sha_lstm_config *c) {
    if (check_config(c) != ATTN_OK) return -1;
    const int64_t d = c->d, V = c->vocab, lstm = 8 * d * d + 8 * d;
    int64_t n = V * d + V;
    if (c->arch == ATTN_PLAIN_LSTM) return n + c->layers * lstm;
    n += c->layers * (lstm + 6 * d + c->boom * d * d + c->boom * d);
    /* lnmem, lnmid 4d; qs ks vs 3d; q d^2 + d; qln 2d; vq 2d^2 + 2d */
    if (c->attn_layer >= 0) n += 3 * d * d + 12 * d;
    return n;
}

static attn_status add_ln(attn_params *ps, const char *name, int64_t d, attn_rng *rng, attn_tensor **g,
                          attn_tensor **b) {
    char nm[128];
    const int64_t s[1] = {d};
    snprintf(nm, sizeof nm, "%s.weight", name);
    attn_status st = attn_params_add(ps, nm, 1, s, g);
    if (st != ATTN_OK) return st;
    if (rng) attn_init_constant(*g, 1.0f);
    snprintf(nm, sizeof nm, "%s.bias", name);
    return attn_params_add(ps, nm, 1, s, b);
}

attn_status attn_sha_lstm_new(attn_sha_lstm **out, attn_params *ps, const attn_sha_lstm_config *cfg,
                              attn_rng *rng) {
    if (!out || !ps) return attn__error(ATTN_ERR_INVALID_ARG, "%s_new: NULL argument", FN);
    *out = NULL;
    attn_status st = check_config(cfg);
    if (st != ATTN_OK) return st;
    attn_sha_lstm *m = calloc(1, sizeof *m);
    if (!m) return attn__error(ATTN_ERR_OOM, "%s_new: out of memory", FN);
    m->cfg = *cfg;
    const int64_t V = cfg->vocab, d = cfg->d;
    if ((st = attn_params_add(ps, "embed.weight", 2, (const int64_t[]){V, d}, &m->embed)) != ATTN_OK) goto fail;
    if (rng) attn_init_uniform(m->embed, 0.1f, rng);
    if ((st = attn_params_add(ps, "decoder.bias", 1, (const int64_t[]){V}, &m->dec_b)) != ATTN_OK) goto fail;
    attn_rnn_config rc;
    memset(&rc, 0, sizeof rc);
    rc.cell = ATTN_RNN_LSTM;
    rc.input_size = d;
    rc.hidden_size = d;
    if (cfg->arch == ATTN_PLAIN_LSTM) {
        rc.num_layers = cfg->layers;
        if ((st = attn_rnn_init(&m->rnn, ps, "rnn.", &rc, rng)) != ATTN_OK) goto fail;
    } else {
        rc.num_layers = 1;
        for (int l = 0; l < cfg->layers; l++) {
            attn_sha_lstm_block *b = &m->blocks[l];
            char p[64], nm[96];
            snprintf(p, sizeof p, "blocks.%d.", l);
#define LN(field, name)                                                                    \
    snprintf(nm, sizeof nm, "%s" name, p);                                                 \
    if ((st = add_ln(ps, nm, d, rng, &b->field##_g, &b->field##_b)) != ATTN_OK) goto fail;
            LN(lnstart, "lnstart")
            snprintf(nm, sizeof nm, "%srnn.", p);
            if ((st = attn_rnn_init(&b->rnn, ps, nm, &rc, rng)) != ATTN_OK) goto fail;
            if (l == cfg->attn_layer) {
                LN(lnmem, "lnmem")
                LN(lnmid, "lnmid")
                snprintf(nm, sizeof nm, "%sattn.", p);
                if ((st = attn_sha_attention_init(&b->attn, ps, nm, d, rng)) != ATTN_OK) goto fail;
            }
            LN(lnff, "lnff")
            LN(lnxff, "lnxff")
#undef LN
            snprintf(nm, sizeof nm, "%sff.", p);
            if ((st = attn_boom_init(&b->ff, ps, nm, d, cfg->boom, rng)) != ATTN_OK) goto fail;
        }
    }
    *out = m;
    return ATTN_OK;
fail:
    free(m);
    return st;
}

void attn_sha_lstm_free(attn_sha_lstm *m) { free(m); }

attn_status attn_sha_lstm_state_init(attn_sha_lstm_state *s, const attn_sha_lstm *m, int64_t B) {
    if (!s || !m) return attn__error(ATTN_ERR_INVALID_ARG, "%s_state_init: NULL argument", FN);
    memset(s, 0, sizeof *s);
    if (B < 1 || B > (1 << 20))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s_state_init: B %lld, expected 1 .. 2^20", FN, (long long)B);
    s->B = B;
    s->L = m->cfg.layers;
    s->d = m->cfg.d;
    s->M = m->cfg.arch == ATTN_SHA_LSTM ? m->cfg.mem_len : 0;
    const size_t hs = (size_t)(s->L * B * s->d), ms = (size_t)(B * (s->M > 0 ? s->M : 1) * s->d);
    s->h = calloc(hs, sizeof *s->h);
    s->c = calloc(hs, sizeof *s->c);
    s->mem = calloc(ms, sizeof *s->mem);
    if (!s->h || !s->c || !s->mem) {
        attn_sha_lstm_state_free(s);
        return attn__error(ATTN_ERR_OOM, "%s_state_init: out of memory (batch %lld)", FN, (long long)B);
    }
    return ATTN_OK;
}

void attn_sha_lstm_state_reset(attn_sha_lstm_state *s) {
    if (!s || !s->h) return;
    const size_t hs = (size_t)(s->L * s->B * s->d);
    memset(s->h, 0, hs * sizeof *s->h);
    memset(s->c, 0, hs * sizeof *s->c);
    s->fill = 0;
}

void attn_sha_lstm_state_free(attn_sha_lstm_state *s) {
    if (!s) return;
    free(s->h);
    free(s->c);
    free(s->mem);
    memset(s, 0, sizeof *s);
}

/* Copies a [n_layers, B, d] state tensor into dst. */
static void copy_state(float *dst, const attn_tensor *t) {
    memcpy(dst, attn_f32(t), (size_t)attn_tensor_numel(t) * sizeof *dst);
}

attn_tensor *attn_sha_lstm_logits(attn_ctx *ctx, const attn_sha_lstm *m, attn_tensor *ids,
                                  attn_sha_lstm_state *s, attn_tensor **weights) {
    if (weights) *weights = NULL;
    if (attn__any_null(ctx, FN "_logits", 1, ids)) return NULL;
    if (!m) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s_logits: NULL model", FN);
        return NULL;
    }
    if (ids->ndim != 2) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s_logits: ids %s, expected [B, T]", FN, attn__shp(ids));
        return NULL;
    }
    const int64_t B = ids->shape[0], d = m->cfg.d;
    const int L = m->cfg.layers;
    if (s && (s->B != B || s->d != d || s->L != L || !s->h)) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s_logits: ids %s and a state of batch %lld, width %lld, %lld layers", FN,
                   attn__shp(ids), (long long)s->B, (long long)s->d, (long long)s->L);
        return NULL;
    }
    attn_tensor *h = attn_embedding(ctx, m->embed, ids);
    if (!h) return NULL;
    if (m->cfg.arch == ATTN_PLAIN_LSTM) {
        attn_tensor *h0 = NULL, *c0 = NULL, *hn = NULL, *cn = NULL;
        if (s) {
            const int64_t sh[3] = {L, B, d};
            h0 = attn_tensor_from(ctx, ATTN_F32, 3, sh, s->h);
            c0 = attn_tensor_from(ctx, ATTN_F32, 3, sh, s->c);
            if (!h0 || !c0) return NULL;
        }
        h = attn_rnn_forward(ctx, &m->rnn, h, NULL, h0, c0, s ? &hn : NULL, s ? &cn : NULL);
        if (!h) return NULL;
        if (s) {
            copy_state(s->h, hn);
            copy_state(s->c, cn);
        }
    } else {
        float *new_mem = NULL;
        int64_t new_fill = 0;
        for (int l = 0; l < L && h; l++) {
            const attn_sha_lstm_block *b = &m->blocks[l];
            attn_tensor *h0 = NULL, *c0 = NULL, *hn = NULL, *cn = NULL;
            const int64_t sh[3] = {1, B, d};
            if (s) {
                h0 = attn_tensor_from(ctx, ATTN_F32, 3, sh, s->h + (size_t)l * (size_t)(B * d));
                c0 = attn_tensor_from(ctx, ATTN_F32, 3, sh, s->c + (size_t)l * (size_t)(B * d));
                if (!h0 || !c0) return NULL;
            }
            /* h = LSTM(LN_start(h)), no residual (the released code's residual=False) */
            h = attn_layernorm(ctx, h, b->lnstart_g, b->lnstart_b, LN_EPS);
            h = attn_rnn_forward(ctx, &b->rnn, h, NULL, h0, c0, s ? &hn : NULL, s ? &cn : NULL);
            if (!h) return NULL;
            if (s) {
                copy_state(s->h + (size_t)l * (size_t)(B * d), hn);
                copy_state(s->c + (size_t)l * (size_t)(B * d), cn);
            }
            if (l == m->cfg.attn_layer) {
                attn_tensor *mh = attn_layernorm(ctx, h, b->lnmem_g, b->lnmem_b, LN_EPS);
                h = attn_layernorm(ctx, h, b->lnmid_g, b->lnmid_b, LN_EPS);
                attn_tensor *big = mh;
                if (s && s->fill > 0) {
                    attn_tensor *mem =
                        attn_tensor_from(ctx, ATTN_F32, 3, (const int64_t[]){B, s->fill, d}, s->mem);
                    attn_tensor *parts[2] = {mem, mh};
                    big = mem ? attn_concat(ctx, parts, 2, 1) : NULL;
                }
                attn_tensor *x = attn_sha_attention_forward(ctx, &b->attn, h, big, 1, weights);
                h = attn_add(ctx, x, h);
                if (!h) return NULL;
                if (s && s->M > 0) {
                    /* the memory: the last min(M, S) rows of [memory; m] */
                    const int64_t S = big->shape[1], keep = S < s->M ? S : s->M;
                    new_mem = malloc(sizeof *new_mem * (size_t)(B * keep * d));
                    if (!new_mem) {
                        attn__fail(ctx, ATTN_ERR_OOM, "%s_logits: out of memory for the memory", FN);
                        return NULL;
                    }
                    const float *src = attn_f32(big);
                    for (int64_t r = 0; r < B; r++)
                        memcpy(new_mem + (size_t)(r * keep * d), src + (size_t)((r * S + S - keep) * d),
                               sizeof *new_mem * (size_t)(keep * d));
                    new_fill = keep;
                }
            }
            /* h = LN_ff(h) + Boom(LN_xff(h)) */
            attn_tensor *hf = attn_layernorm(ctx, h, b->lnff_g, b->lnff_b, LN_EPS);
            attn_tensor *x = attn_boom_forward(ctx, &b->ff, attn_layernorm(ctx, h, b->lnxff_g, b->lnxff_b, LN_EPS));
            h = attn_add(ctx, x, hf);
        }
        if (new_mem) {
            if (h) {
                memcpy(s->mem, new_mem, sizeof *new_mem * (size_t)(B * new_fill * d));
                s->fill = new_fill;
            }
            free(new_mem);
        }
        if (!h) return NULL;
    }
    return attn_linear(ctx, h, m->embed, m->dec_b);
}

attn_tensor *attn_sha_lstm_loss(attn_ctx *ctx, const attn_sha_lstm *m, attn_tensor *inputs,
                                attn_tensor *targets, attn_sha_lstm_state *s) {
    if (attn__any_null(ctx, FN "_loss", 2, inputs, targets)) return NULL;
    if (targets->ndim != 2 || inputs->ndim != 2 || targets->shape[0] != inputs->shape[0] ||
        targets->shape[1] != inputs->shape[1]) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s_loss: inputs %s and targets %s, expected both [B, T]", FN,
                   attn__shp(inputs), attn__shp(targets));
        return NULL;
    }
    const int64_t N = inputs->shape[0] * inputs->shape[1];
    attn_tensor *logits = attn_sha_lstm_logits(ctx, m, inputs, s, NULL);
    if (!logits) return NULL;
    attn_tensor *lg = attn_reshape(ctx, logits, 2, (const int64_t[]){N, m->cfg.vocab});
    attn_tensor *tg = attn_reshape(ctx, targets, 1, (const int64_t[]){N});
    return attn_cross_entropy(ctx, lg, tg, -1, 0.0f);
}
