/* lstmn_lm.c: the word-level language model of include/attn/lstmn_lm.h: an
 * embedding, one LSTMN (graph op LSTMN) or LSTM layer, a linear output layer
 * and the mean cross-entropy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/lstmn.h"
#include "attn/lstmn_lm.h"
#include "attn/ops.h"

#define FN "attn_lstmn_lm"
#define MAX_DIM ((int64_t)1 << 24)

static attn_status check_config(const attn_lstmn_lm_config *c) {
    if (!c) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL configuration", FN);
    if (c->cell != ATTN_LM_CELL_LSTMN && c->cell != ATTN_LM_CELL_LSTM)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: cell %d, expected lstmn (0) or lstm (1)", FN,
                           (int)c->cell);
    if (c->vocab < 2 || c->vocab > MAX_DIM || c->embed < 1 || c->embed > 65536 || c->hidden < 1 ||
        c->hidden > 65536 || (c->cell == ATTN_LM_CELL_LSTMN && (c->attn < 1 || c->attn > 65536)))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: vocab %lld, embed %lld, hidden %lld, attn %lld: expected vocab in "
                           "[2, 2^24], the sizes in [1, 65536]",
                           FN, (long long)c->vocab, (long long)c->embed, (long long)c->hidden,
                           (long long)c->attn);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: dropout %g outside [0, 1)", FN,
                           (double)c->dropout);
    return ATTN_OK;
}

int64_t attn_lstmn_lm_param_count(const attn_lstmn_lm_config *c) {
    if (check_config(c) != ATTN_OK) return -1;
    const int64_t V = c->vocab, D = c->embed, H = c->hidden, A = c->attn;
    int64_t n = V * D + V * H + V;
    if (c->cell == ATTN_LM_CELL_LSTM)
        n += 4 * H * (D + H) + 8 * H; /* torch: weight_ih, weight_hh, bias_ih, bias_hh */
    else
        n += 4 * H * D + 4 * H + A * D + 4 * H * H + A * H + A + (c->summary_term ? A * H : 0);
    return n;
}

static attn_status add(attn_params *ps, const char *name, int ndim, int64_t d0, int64_t d1,
                       attn_tensor **out) {
    const int64_t sh[2] = {d0, d1};
    return attn_params_add(ps, name, ndim, sh, out);
}

attn_status attn_lstmn_lm_new(attn_lstmn_lm **out, attn_params *ps, const attn_lstmn_lm_config *cfg,
                              attn_rng *rng) {
    if (!out || !ps) return attn__error(ATTN_ERR_INVALID_ARG, "%s_new: NULL argument", FN);
    *out = NULL;
    attn_status st = check_config(cfg);
    if (st != ATTN_OK) return st;
    attn_lstmn_lm *m = calloc(1, sizeof *m);
    if (!m) return attn__error(ATTN_ERR_OOM, "%s_new: out of memory", FN);
    m->cfg = *cfg;
    const int64_t V = cfg->vocab, D = cfg->embed, H = cfg->hidden, A = cfg->attn;
    const float bound = 1.0f / sqrtf((float)H);
    if ((st = add(ps, "embed.weight", 2, V, D, &m->embed)) != ATTN_OK) goto fail;
    if (cfg->cell == ATTN_LM_CELL_LSTMN) {
        if ((st = add(ps, "lstmn.w_x", 2, 4 * H, D, &m->w_x)) != ATTN_OK ||
            (st = add(ps, "lstmn.b", 1, 4 * H, 0, &m->b)) != ATTN_OK ||
            (st = add(ps, "lstmn.w_ax", 2, A, D, &m->w_ax)) != ATTN_OK ||
            (st = add(ps, "lstmn.w_hh", 2, 4 * H, H, &m->w_hh)) != ATTN_OK ||
            (st = add(ps, "lstmn.w_mem", 2, A, H, &m->w_mem)) != ATTN_OK ||
            (st = add(ps, "lstmn.v", 1, A, 0, &m->v)) != ATTN_OK ||
            (cfg->summary_term && (st = add(ps, "lstmn.w_sum", 2, A, H, &m->w_sum)) != ATTN_OK))
            goto fail;
    } else {
        attn_rnn_config rc;
        memset(&rc, 0, sizeof rc);
        rc.cell = ATTN_RNN_LSTM;
        rc.input_size = D;
        rc.hidden_size = H;
        rc.num_layers = 1;
        if ((st = attn_rnn_init(&m->rnn, ps, "lstm.", &rc, rng)) != ATTN_OK) goto fail;
    }
    if ((st = add(ps, "out.weight", 2, V, H, &m->out_w)) != ATTN_OK ||
        (st = add(ps, "out.bias", 1, V, 0, &m->out_b)) != ATTN_OK)
        goto fail;
    if (rng) {
        attn_init_uniform(m->embed, 0.1f, rng);
        attn_tensor *cell[7] = {m->w_x, m->b, m->w_ax, m->w_hh, m->w_mem, m->v, m->w_sum};
        for (int i = 0; i < 7; i++)
            if (cell[i]) attn_init_uniform(cell[i], bound, rng);
        attn_init_uniform(m->out_w, bound, rng);
    }
    *out = m;
    return ATTN_OK;
fail:
    free(m);
    return st;
}

void attn_lstmn_lm_free(attn_lstmn_lm *m) { free(m); }

attn_tensor *attn_lstmn_lm_loss(attn_ctx *ctx, const attn_lstmn_lm *m, attn_tensor *inputs,
                                attn_tensor *targets) {
    if (attn__any_null(ctx, FN "_loss", 2, inputs, targets)) return NULL;
    if (!m) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s_loss: NULL model", FN);
        return NULL;
    }
    if (inputs->ndim != 2 || targets->ndim != 2 || inputs->shape[0] != targets->shape[0] ||
        inputs->shape[1] != targets->shape[1]) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s_loss: inputs %s and targets %s, expected both [B, T]",
                   FN, attn__shp(inputs), attn__shp(targets));
        return NULL;
    }
    const int64_t B = inputs->shape[0], T = inputs->shape[1], H = m->cfg.hidden;
    const float p = m->cfg.dropout;
    attn_tensor *x = attn_dropout(ctx, attn_embedding(ctx, m->embed, inputs), p);
    attn_tensor *h;
    if (m->cfg.cell == ATTN_LM_CELL_LSTMN) {
        attn_tensor *gx = attn_linear(ctx, x, m->w_x, m->b);
        attn_tensor *ax = attn_linear(ctx, x, m->w_ax, NULL);
        h = attn_lstmn(ctx, gx, ax, NULL, NULL, m->w_hh, m->w_mem, m->v, m->w_sum, NULL);
    } else {
        h = attn_rnn_forward(ctx, &m->rnn, x, NULL, NULL, NULL, NULL, NULL);
    }
    h = attn_dropout(ctx, h, p);
    attn_tensor *logits = attn_linear(ctx, attn_reshape(ctx, h, 2, (int64_t[]){B * T, H}),
                                      m->out_w, m->out_b);
    attn_tensor *tg = attn_reshape(ctx, targets, 1, (int64_t[]){B * T});
    if (!logits || !tg) return NULL;
    return attn_cross_entropy(ctx, logits, tg, -1, 0.0f);
}

attn_status attn_lstmn_lm_attention(attn_ctx *ctx, const attn_lstmn_lm *m, attn_tensor *ids,
                                    float *weights) {
    if (!ctx || !m || !ids || !weights)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s_attention: NULL argument", FN);
    if (m->cfg.cell != ATTN_LM_CELL_LSTMN)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s_attention: the model is an LSTM (no attention)",
                           FN);
    if (ids->ndim != 2 || ids->shape[0] != 1)
        return attn__error(ATTN_ERR_SHAPE, "%s_attention: ids %s, expected [1, T]", FN,
                           attn__shp(ids));
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 1);
    attn_ctx_set_training(ctx, 0);
    attn_tensor *x = attn_embedding(ctx, m->embed, ids);
    attn_tensor *gx = attn_linear(ctx, x, m->w_x, m->b);
    attn_tensor *ax = attn_linear(ctx, x, m->w_ax, NULL);
    attn_tensor *h = attn_lstmn(ctx, gx, ax, NULL, NULL, m->w_hh, m->w_mem, m->v, m->w_sum, NULL);
    attn_status st = h ? attn_lstmn_weights(ctx, h, weights, ids->shape[1] * (ids->shape[1] + 1))
                       : attn_ctx_status(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    return st;
}
