/* gru_classifier.c: the BiGRU text classifier with mean, attention,
 * multi-head self-attention or LAMA pooling (include/attn/gru_classifier.h),
 * a composition of graph ops. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/gru_classifier.h"
#include "attn/ops.h"

#define FN "attn_gru_classifier"

static const char *const pool_names[4] = {"mean", "attn", "mhsa", "lama"};

int attn_pool_parse(const char *s, attn_pool_kind *out) {
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, pool_names[i])) {
            *out = (attn_pool_kind)i;
            return 0;
        }
    return -1;
}

const char *attn_pool_name(attn_pool_kind k) { return (int)k >= 0 && (int)k < 4 ? pool_names[k] : "?"; }

static attn_status add_linear(attn_params *ps, const char *name, int64_t out, int64_t in, int bias, attn_rng *rng,
                              attn_tensor **w, attn_tensor **b) {
    char nm[128];
    const float bd = (float)(1.0 / sqrt((double)in));
    snprintf(nm, sizeof nm, "%s.weight", name);
    attn_status st = attn_params_add(ps, nm, 2, (const int64_t[]){out, in}, w);
    if (st == ATTN_OK && rng) attn_init_uniform(*w, bd, rng);
    if (st == ATTN_OK && bias) {
        snprintf(nm, sizeof nm, "%s.bias", name);
        st = attn_params_add(ps, nm, 1, (const int64_t[]){out}, b);
        if (st == ATTN_OK && rng) attn_init_uniform(*b, bd, rng);
    }
    return st;
}

attn_status attn_gru_classifier_new(attn_gru_classifier **out, attn_params *ps,
                                    const attn_gru_classifier_config *cfg, attn_rng *rng) {
    if (!out || !ps || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s_new: NULL argument", FN);
    *out = NULL;
    const attn_gru_classifier_config c = *cfg;
    const int64_t d = 2 * c.hidden;
    if (c.vocab < 2 || c.vocab > (1 << 24) || c.embed < 1 || c.embed > 65536 || c.hidden < 1 ||
        c.hidden > 32768 || c.classes < 2 || c.classes > 65536 || (int)c.pool < 0 || (int)c.pool > 3 ||
        !(c.dropout >= 0.0f && c.dropout < 1.0f))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s_new: vocab %lld, embed %lld, hidden %lld, classes %lld, pool %d, dropout %g: "
                           "expected sizes >= 1 (vocab and classes >= 2), a pool kind 0 .. 3, dropout in [0, 1)",
                           FN, (long long)c.vocab, (long long)c.embed, (long long)c.hidden, (long long)c.classes,
                           (int)c.pool, (double)c.dropout);
    if ((c.pool == ATTN_POOL_MHSA && (c.heads < 1 || d % c.heads != 0)) ||
        (c.pool == ATTN_POOL_LAMA && (c.heads < 1 || c.rank < 1)))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s_new: %s pooling with heads %lld, rank %lld over width %lld", FN,
                           attn_pool_name(c.pool), (long long)c.heads, (long long)c.rank, (long long)d);
    attn_gru_classifier *m = calloc(1, sizeof *m);
    if (!m) return attn__error(ATTN_ERR_OOM, "%s_new: out of memory", FN);
    m->cfg = c;
    attn_status st = attn_params_add(ps, "embed.weight", 2, (const int64_t[]){c.vocab, c.embed}, &m->embed);
    if (st != ATTN_OK) goto fail;
    if (rng) attn_init_uniform(m->embed, 0.1f, rng);
    attn_rnn_config rc;
    memset(&rc, 0, sizeof rc);
    rc.cell = ATTN_RNN_GRU;
    rc.input_size = c.embed;
    rc.hidden_size = c.hidden;
    rc.num_layers = 1;
    rc.bidirectional = 1;
    if ((st = attn_rnn_init(&m->gru, ps, "gru.", &rc, rng)) != ATTN_OK) goto fail;
    int64_t zw = d;
    if (c.pool == ATTN_POOL_ATTN) {
        if ((st = add_linear(ps, "pool.w", d, d, 1, rng, &m->att_w, &m->att_b)) != ATTN_OK ||
            (st = add_linear(ps, "pool.v", 1, d, 0, rng, &m->att_v, NULL)) != ATTN_OK)
            goto fail;
    } else if (c.pool == ATTN_POOL_MHSA) {
        attn_mha_config mc;
        memset(&mc, 0, sizeof mc);
        mc.embed_dim = d;
        mc.n_heads = (int)c.heads;
        mc.packed = 1;
        if ((st = attn_mha_init(&m->mha, ps, "pool.", &mc, rng)) != ATTN_OK) goto fail;
    } else if (c.pool == ATTN_POOL_LAMA) {
        if ((st = attn_lama_init(&m->lama, ps, "pool.", d, c.heads, c.rank, rng)) != ATTN_OK) goto fail;
        zw = c.heads * d;
    }
    if ((st = add_linear(ps, "out", c.classes, zw, 1, rng, &m->out_w, &m->out_b)) != ATTN_OK) goto fail;
    *out = m;
    return ATTN_OK;
fail:
    free(m);
    return st;
}

void attn_gru_classifier_free(attn_gru_classifier *m) { free(m); }

attn_tensor *attn_gru_classifier_logits(attn_ctx *ctx, const attn_gru_classifier *m, attn_tensor *ids,
                                        attn_tensor *lengths, attn_tensor **weights) {
    if (weights) *weights = NULL;
    if (attn__any_null(ctx, FN "_logits", 2, ids, lengths)) return NULL;
    if (!m) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s_logits: NULL model", FN);
        return NULL;
    }
    if (ids->ndim != 2 || ids->dtype != ATTN_I32 || lengths->ndim != 1 || lengths->dtype != ATTN_I32 ||
        lengths->shape[0] != ids->shape[0]) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s_logits: ids %s and lengths %s, expected I32 [B, n] and I32 [B]", FN,
                   attn__shp(ids), attn__shp(lengths));
        return NULL;
    }
    const int64_t B = ids->shape[0], n = ids->shape[1], d = 2 * m->cfg.hidden;
    const int32_t *len = (const int32_t *)lengths->data;
    for (int64_t b = 0; b < B; b++)
        if (len[b] < 1 || len[b] > n) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s_logits: lengths[%lld] = %d, expected 1 .. %lld", FN, (long long)b,
                       (int)len[b], (long long)n);
            return NULL;
        }
    const float p = m->cfg.dropout;
    attn_tensor *x = attn_dropout(ctx, attn_embedding(ctx, m->embed, ids), p);
    attn_tensor *h = attn_rnn_forward(ctx, &m->gru, x, lengths, NULL, NULL, NULL, NULL);
    if (!h) return NULL;
    attn_tensor *z = NULL;
    switch (m->cfg.pool) {
    case ATTN_POOL_MEAN: z = attn_masked_mean(ctx, h, lengths); break;
    case ATTN_POOL_ATTN: {
        /* s = v^T tanh(W h + b) [B, n, 1] -> [B, 1, n]; a = masked softmax; z = a h */
        attn_tensor *s = attn_linear(ctx, attn_tanh(ctx, attn_linear(ctx, h, m->att_w, m->att_b)), m->att_v, NULL);
        s = attn_reshape(ctx, s, 3, (const int64_t[]){B, 1, n});
        attn_tensor *mask = attn_tensor_new(ctx, ATTN_F32, 3, (const int64_t[]){B, 1, n});
        if (!s || !mask) return NULL;
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = len[b]; i < n; i++) attn_f32(mask)[b * n + i] = -INFINITY;
        attn_tensor *a = attn_softmax(ctx, s, mask);
        if (a && weights) *weights = a;
        z = attn_reshape(ctx, attn_bmm(ctx, a, h, 0, 0), 2, (const int64_t[]){B, d});
        break;
    }
    case ATTN_POOL_MHSA: {
        attn_mha_call call;
        memset(&call, 0, sizeof call);
        call.key_lengths = lengths;
        attn_tensor *y = attn_mha_forward(ctx, &m->mha, h, NULL, &call, weights);
        z = attn_masked_mean(ctx, y, lengths);
        break;
    }
    case ATTN_POOL_LAMA: z = attn_lama_forward(ctx, &m->lama, h, lengths, NULL, weights); break;
    }
    z = attn_dropout(ctx, z, p);
    return attn_linear(ctx, z, m->out_w, m->out_b);
}
