/* bert.c: the BERT-style encoder, its MLM and classification heads, BERT's
 * masking, the fortune-file data and the model files
 * (include/attn/bert.h). Composed from graph ops and the encoder blocks of
 * transformer.h; nothing here has a backward of its own.
 *
 * The graph of one batch (B rows, T positions):
 *   x = layernorm(embedding(tok_emb, ids) + slice(pos_emb, 0, 0, T))
 *   x = dropout(x)
 *   x = block_l(x, key_lengths = lengths)        l = 0 .. L-1
 *   h = x, or layernorm(x, norm_f) for pre-LN
 * The heads read rows of h viewed as [B T, E]: an embedding lookup with h as
 * the table picks the selected rows (its backward scatters the gradient back
 * into those rows only), so the MLM head costs N rows, not B T.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "model_meta.h"
#include "../ops/view_internal.h"
#include "attn/bert.h"
#include "attn/checkpoint.h"
#include "attn/ops.h"
#include "attn/params.h"
#include "attn/safetensors.h"
#include "attn/transformer.h"

/* ---- the model ---------------------------------------------------------------------- */

static attn_status bert_check_config(const attn_bert_config *c) {
    static const char fn[] = "attn_bert_new";
    if (c->vocab < 2 || c->max_len < 1 || c->n_layers < 1 || c->n_heads < 1 || c->d_model < 1 ||
        c->d_ff < 0 || c->n_classes < 0)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: vocab %lld (>= 2), max_len %lld, n_layers %d, n_heads %d, d_model "
                           "%lld (>= 1), d_ff %lld, n_classes %d (>= 0)",
                           fn, (long long)c->vocab, (long long)c->max_len, c->n_layers, c->n_heads,
                           (long long)c->d_model, (long long)c->d_ff, c->n_classes);
    if (c->type_vocab < 0 || c->type_vocab > (1 << 16))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: type_vocab %lld outside [0, 65536]", fn,
                           (long long)c->type_vocab);
    if (c->vocab > INT32_MAX || c->max_len > (1ll << 31) || c->n_classes > (1 << 24))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: vocab %lld, max_len %lld or n_classes %d too large",
                           fn, (long long)c->vocab, (long long)c->max_len, c->n_classes);
    if (c->d_model % c->n_heads != 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: d_model %lld is not a multiple of n_heads %d",
                           fn, (long long)c->d_model, c->n_heads);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: dropout %g outside [0, 1)", fn,
                           (double)c->dropout);
    if (!(c->ln_eps >= 0.0f) || isinf(c->ln_eps))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: ln_eps %g: expected >= 0 (0: 1e-12)", fn,
                           (double)c->ln_eps);
    return ATTN_OK;
}

void attn_bert_free(attn_bert *m) {
    if (!m) return;
    free(m->blocks);
    free(m);
}

static int is_norm_weight(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && strcmp(dot, ".weight") == 0 && strstr(name, "norm") != NULL;
}

attn_status attn_bert_new(attn_bert **out, attn_params *ps, const attn_bert_config *cfg,
                          attn_rng *rng) {
    if (out) *out = NULL;
    if (!out || !ps || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "attn_bert_new: NULL argument");
    attn_bert_config c = *cfg;
    if (c.d_ff == 0) c.d_ff = 4 * c.d_model;
    if (c.ln_eps == 0.0f) c.ln_eps = 1e-12f;
    attn_status st = bert_check_config(&c);
    if (st != ATTN_OK) return st;
    attn_bert *m = calloc(1, sizeof *m);
    if (m) m->blocks = calloc((size_t)c.n_layers, sizeof *m->blocks);
    if (!m || !m->blocks) {
        attn_bert_free(m);
        return attn__error(ATTN_ERR_OOM, "attn_bert_new: out of memory");
    }
    m->cfg = c;
    m->params = ps;
    m->first_param = attn_params_count(ps);
    const int64_t V = c.vocab, E = c.d_model;
    st = attn_params_add(ps, "tok_emb.weight", 2, (int64_t[]){V, E}, &m->tok_emb);
    if (st == ATTN_OK) st = attn_params_add(ps, "pos_emb.weight", 2, (int64_t[]){c.max_len, E}, &m->pos_emb);
    if (st == ATTN_OK) st = attn_params_add(ps, "emb_norm.weight", 1, (int64_t[]){E}, &m->emb_norm_w);
    if (st == ATTN_OK) st = attn_params_add(ps, "emb_norm.bias", 1, (int64_t[]){E}, &m->emb_norm_b);
    if (st == ATTN_OK && c.type_vocab > 0)
        st = attn_params_add(ps, "type_emb.weight", 2, (int64_t[]){c.type_vocab, E}, &m->type_emb);
    for (int l = 0; l < c.n_layers && st == ATTN_OK; l++) {
        attn_block_config bc;
        memset(&bc, 0, sizeof bc);
        bc.d_model = E;
        bc.n_heads = c.n_heads;
        bc.d_ff = c.d_ff;
        bc.norm_first = c.norm_first ? 1 : 0;
        bc.activation = ATTN_ACT_GELU;
        bc.kernel = c.kernel;
        bc.dropout = c.dropout;
        bc.ln_eps = c.ln_eps;
        bc.pos = ATTN_POS_NONE;
        char prefix[32];
        snprintf(prefix, sizeof prefix, "layers.%d.", l);
        st = attn_block_init(&m->blocks[l], ps, prefix, &bc, NULL);
    }
    if (st == ATTN_OK && c.norm_first) {
        st = attn_params_add(ps, "norm_f.weight", 1, (int64_t[]){E}, &m->norm_f_w);
        if (st == ATTN_OK) st = attn_params_add(ps, "norm_f.bias", 1, (int64_t[]){E}, &m->norm_f_b);
    }
    m->n_encoder = attn_params_count(ps) - m->first_param;
    if (st == ATTN_OK && c.mlm) {
        st = attn_params_add(ps, "mlm.transform.weight", 2, (int64_t[]){E, E}, &m->mlm_w);
        if (st == ATTN_OK) st = attn_params_add(ps, "mlm.transform.bias", 1, (int64_t[]){E}, &m->mlm_b);
        if (st == ATTN_OK) st = attn_params_add(ps, "mlm.norm.weight", 1, (int64_t[]){E}, &m->mlm_norm_w);
        if (st == ATTN_OK) st = attn_params_add(ps, "mlm.norm.bias", 1, (int64_t[]){E}, &m->mlm_norm_b);
        if (st == ATTN_OK) st = attn_params_add(ps, "mlm.bias", 1, (int64_t[]){V}, &m->mlm_bias);
    }
    if (st == ATTN_OK && c.n_classes > 0) {
        const int64_t C = c.n_classes;
        st = attn_params_add(ps, "pooler.weight", 2, (int64_t[]){E, E}, &m->pool_w);
        if (st == ATTN_OK) st = attn_params_add(ps, "pooler.bias", 1, (int64_t[]){E}, &m->pool_b);
        if (st == ATTN_OK) st = attn_params_add(ps, "classifier.weight", 2, (int64_t[]){C, E}, &m->cls_w);
        if (st == ATTN_OK) st = attn_params_add(ps, "classifier.bias", 1, (int64_t[]){C}, &m->cls_b);
    }
    if (st != ATTN_OK) {
        attn_bert_free(m);
        return st;
    }
    /* BERT: N(0, 0.02) for weights and embeddings, biases 0, LayerNorm 1 / 0.
     * Parameters start at zero in the store. */
    const int n = attn_params_count(ps);
    for (int i = m->first_param; i < n; i++) {
        attn_tensor *p = attn_params_at(ps, i);
        if (is_norm_weight(p->name))
            attn_init_constant(p, 1.0f);
        else if (rng && p->ndim == 2)
            attn_init_normal(p, 0.02f, rng);
    }
    *out = m;
    return ATTN_OK;
}

/* lengths: NULL, or i32 [B] with every value in [1, T]. */
static int check_lengths(attn_ctx *ctx, const char *op, const attn_tensor *lengths, int64_t B,
                         int64_t T) {
    if (!lengths) return 0;
    if (lengths->dtype != ATTN_I32 || lengths->ndim != 1 || lengths->shape[0] != B) {
        attn__fail(ctx, lengths->dtype != ATTN_I32 ? ATTN_ERR_DTYPE : ATTN_ERR_SHAPE,
                   "%s: lengths %s: expected i32 [%lld]", op, attn__shp(lengths), (long long)B);
        return -1;
    }
    const attn_tensor *lc = lengths;
    for (int64_t b = 0; b < B; b++) {
        const int32_t v = ((const int32_t *)lc->data)[b * lc->stride[0]];
        if (v < 1 || v > T) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: lengths[%lld] = %d outside [1, %lld]", op,
                       (long long)b, v, (long long)T);
            return -1;
        }
    }
    return 0;
}

attn_tensor *attn_bert_encode(attn_ctx *ctx, const attn_bert *m, attn_tensor *ids,
                              attn_tensor *lengths) {
    return attn_bert_encode_ex(ctx, m, ids, lengths, NULL);
}

attn_tensor *attn_bert_encode_ex(attn_ctx *ctx, const attn_bert *m, attn_tensor *ids,
                                 attn_tensor *lengths, attn_tensor **self_weights) {
    return attn_bert_encode_typed(ctx, m, ids, NULL, lengths, self_weights);
}

attn_tensor *attn_bert_encode_typed(attn_ctx *ctx, const attn_bert *m, attn_tensor *ids,
                                    attn_tensor *types, attn_tensor *lengths,
                                    attn_tensor **self_weights) {
    static const char op[] = "bert";
    if (self_weights && m)
        for (int l = 0; l < m->cfg.n_layers; l++) self_weights[l] = NULL;
    if (!ctx || attn_ctx_status(ctx) != ATTN_OK) return NULL;
    if (!m) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: model is NULL", op);
        return NULL;
    }
    if (attn__any_null(ctx, op, 1, ids)) return NULL;
    if (ids->dtype != ATTN_I32 || ids->ndim != 2) {
        attn__fail(ctx, ids->dtype != ATTN_I32 ? ATTN_ERR_DTYPE : ATTN_ERR_SHAPE,
                   "%s: ids %s: expected i32 [B, T]", op, attn__shp(ids));
        return NULL;
    }
    const attn_bert_config *c = &m->cfg;
    const int64_t B = ids->shape[0], T = ids->shape[1];
    if (T > c->max_len) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: ids %s: T = %lld is past max_len %lld", op,
                   attn__shp(ids), (long long)T, (long long)c->max_len);
        return NULL;
    }
    if (check_lengths(ctx, op, lengths, B, T)) return NULL;
    if (types && !m->type_emb) {
        attn__fail(ctx, ATTN_ERR_STATE, "%s: types %s given to a model without type embeddings",
                   op, attn__shp(types));
        return NULL;
    }
    if (types && (types->ndim != 2 || types->shape[0] != B || types->shape[1] != T)) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: types %s: expected [%lld, %lld] as ids", op,
                   attn__shp(types), (long long)B, (long long)T);
        return NULL;
    }
    attn_tensor *x = attn_embedding(ctx, m->tok_emb, ids);
    /* Hugging Face's order: (token + type) + position */
    if (types)
        x = attn_add(ctx, x, attn_embedding(ctx, m->type_emb, types));
    else if (m->type_emb)
        x = attn_add(ctx, x, attn_slice(ctx, m->type_emb, 0, 0, 1));
    x = attn_add(ctx, x, attn_slice(ctx, m->pos_emb, 0, 0, T));
    x = attn_layernorm(ctx, x, m->emb_norm_w, m->emb_norm_b, c->ln_eps);
    x = attn_dropout(ctx, x, c->dropout);
    for (int l = 0; l < c->n_layers; l++) {
        attn_mha_call call;
        memset(&call, 0, sizeof call);
        call.key_lengths = lengths;
        x = attn_block_forward(ctx, &m->blocks[l], x, NULL, &call, NULL,
                               self_weights ? &self_weights[l] : NULL);
    }
    if (c->norm_first) x = attn_layernorm(ctx, x, m->norm_f_w, m->norm_f_b, c->ln_eps);
    return x;
}

/* Rows `rows` i32 [N] of h [B, T, E] viewed as [B T, E] -> [N, E]. */
static attn_tensor *pick_rows(attn_ctx *ctx, attn_tensor *h, attn_tensor *rows) {
    if (!h || !rows) return NULL;
    const int64_t BT = h->shape[0] * h->shape[1], E = h->shape[2];
    attn_tensor *flat = attn_reshape(ctx, h, 2, (int64_t[]){BT, E});
    return attn_embedding(ctx, flat, rows);
}

attn_tensor *attn_bert_mlm_logits(attn_ctx *ctx, const attn_bert *m, attn_tensor *h,
                                  attn_tensor *positions) {
    static const char op[] = "bert_mlm";
    if (!ctx || attn_ctx_status(ctx) != ATTN_OK) return NULL;
    if (!m || !m->mlm_w) {
        attn__fail(ctx, ATTN_ERR_STATE, "%s: %s", op, m ? "the model has no MLM head" : "model is NULL");
        return NULL;
    }
    if (attn__any_null(ctx, op, 2, h, positions)) return NULL;
    if (h->ndim != 3 || h->shape[2] != m->cfg.d_model || positions->ndim != 1 ||
        positions->dtype != ATTN_I32) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: h %s, positions %s: expected [B, T, %lld] and i32 [N]",
                   op, attn__shp(h), attn__shp(positions), (long long)m->cfg.d_model);
        return NULL;
    }
    attn_tensor *z = pick_rows(ctx, h, positions);
    z = attn_linear_gelu(ctx, z, m->mlm_w, m->mlm_b);
    z = attn_layernorm(ctx, z, m->mlm_norm_w, m->mlm_norm_b, m->cfg.ln_eps);
    z = attn_linear(ctx, z, m->tok_emb, NULL);
    return attn_bias_add(ctx, z, m->mlm_bias);
}

/* Arg max of each of the n rows of logits [n, K] (first on ties). */
static int64_t count_correct(const attn_tensor *logits, const int32_t *targets, int64_t n) {
    const int64_t K = logits->shape[1];
    const float *p = attn_f32(logits);
    int64_t ok = 0;
    for (int64_t i = 0; i < n; i++) {
        if (targets[i] < 0) continue;
        int64_t best = 0;
        for (int64_t k = 1; k < K; k++)
            if (p[i * K + k] > p[i * K + best]) best = k;
        ok += best == targets[i];
    }
    return ok;
}

static const int32_t *i32_data(attn_ctx *ctx, const char *op, const char *what, attn_tensor *t) {
    attn_tensor *tc = attn__contig(ctx, t);
    if (!tc) return NULL;
    if (tc->dtype != ATTN_I32) {
        attn__fail(ctx, ATTN_ERR_DTYPE, "%s: %s %s: expected i32", op, what, attn__shp(t));
        return NULL;
    }
    return (const int32_t *)tc->data;
}

attn_tensor *attn_bert_mlm_loss(attn_ctx *ctx, const attn_bert *m, attn_tensor *ids,
                                attn_tensor *lengths, attn_tensor *labels, int64_t *correct,
                                int64_t *count) {
    static const char op[] = "bert_mlm_loss";
    if (correct) *correct = 0;
    if (count) *count = 0;
    if (!ctx || attn_ctx_status(ctx) != ATTN_OK) return NULL;
    if (attn__any_null(ctx, op, 2, ids, labels)) return NULL;
    if (labels->ndim != 2 || ids->ndim != 2 || labels->shape[0] != ids->shape[0] ||
        labels->shape[1] != ids->shape[1]) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: ids %s and labels %s: expected the same [B, T]", op,
                   attn__shp(ids), attn__shp(labels));
        return NULL;
    }
    if (!m || !m->mlm_w) {
        attn__fail(ctx, ATTN_ERR_STATE, "%s: %s", op, m ? "the model has no MLM head" : "model is NULL");
        return NULL;
    }
    attn_tensor *h = attn_bert_encode(ctx, m, ids, lengths);
    if (!h) return NULL;
    const int64_t B = ids->shape[0], T = ids->shape[1], V = m->cfg.vocab;
    const int32_t *lab = i32_data(ctx, op, "labels", labels);
    const int32_t *len = lengths ? i32_data(ctx, op, "lengths", lengths) : NULL;
    if (!lab || (lengths && !len)) return NULL;
    int64_t n = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            const int32_t y = lab[b * T + t];
            if (y == -1) continue;
            if (y < 0 || y >= V || (len && t >= len[b])) {
                attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                           "%s: labels[%lld, %lld] = %d: expected -1, or an id in [0, %lld) at a "
                           "real token (length %d)",
                           op, (long long)b, (long long)t, y, (long long)V, len ? len[b] : (int)T);
                return NULL;
            }
            n++;
        }
    /* With nothing selected, one ignored row keeps the graph (loss 0). */
    const int64_t N = n > 0 ? n : 1;
    attn_tensor *pos = attn_tensor_new(ctx, ATTN_I32, 1, (int64_t[]){N});
    attn_tensor *tgt = attn_tensor_new(ctx, ATTN_I32, 1, (int64_t[]){N});
    if (!pos || !tgt) return NULL;
    int32_t *pp = (int32_t *)pos->data, *tp = (int32_t *)tgt->data;
    pp[0] = 0;
    tp[0] = -1;
    int64_t k = 0;
    for (int64_t i = 0; i < B * T; i++)
        if (lab[i] != -1) {
            pp[k] = (int32_t)i;
            tp[k++] = lab[i];
        }
    attn_tensor *logits = attn_bert_mlm_logits(ctx, m, h, pos);
    if (!logits) return NULL;
    if (correct) *correct = count_correct(logits, tp, N);
    if (count) *count = n;
    return attn_cross_entropy(ctx, logits, tgt, -1, 0.0f);
}

attn_tensor *attn_bert_cls_logits(attn_ctx *ctx, const attn_bert *m, attn_tensor *ids,
                                  attn_tensor *lengths) {
    static const char op[] = "bert_cls";
    if (!ctx || attn_ctx_status(ctx) != ATTN_OK) return NULL;
    if (!m || !m->cls_w) {
        attn__fail(ctx, ATTN_ERR_STATE, "%s: %s", op, m ? "the model has no classifier" : "model is NULL");
        return NULL;
    }
    attn_tensor *h = attn_bert_encode(ctx, m, ids, lengths);
    if (!h) return NULL;
    const int64_t B = h->shape[0], T = h->shape[1];
    attn_tensor *rows = attn_tensor_new(ctx, ATTN_I32, 1, (int64_t[]){B});
    if (!rows) return NULL;
    for (int64_t b = 0; b < B; b++) ((int32_t *)rows->data)[b] = (int32_t)(b * T);
    attn_tensor *p = pick_rows(ctx, h, rows);
    p = attn_tanh(ctx, attn_linear(ctx, p, m->pool_w, m->pool_b));
    p = attn_dropout(ctx, p, m->cfg.dropout);
    return attn_linear(ctx, p, m->cls_w, m->cls_b);
}

attn_tensor *attn_bert_cls_loss(attn_ctx *ctx, const attn_bert *m, attn_tensor *ids,
                                attn_tensor *lengths, attn_tensor *labels, int64_t *correct) {
    static const char op[] = "bert_cls_loss";
    if (correct) *correct = 0;
    if (!ctx || attn_ctx_status(ctx) != ATTN_OK) return NULL;
    if (attn__any_null(ctx, op, 2, ids, labels)) return NULL;
    if (labels->ndim != 1 || ids->ndim != 2 || labels->shape[0] != ids->shape[0]) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: ids %s and labels %s: expected [B, T] and [B]", op,
                   attn__shp(ids), attn__shp(labels));
        return NULL;
    }
    attn_tensor *logits = attn_bert_cls_logits(ctx, m, ids, lengths);
    if (!logits) return NULL;
    const int32_t *lab = i32_data(ctx, op, "labels", labels);
    if (!lab) return NULL;
    for (int64_t b = 0; b < labels->shape[0]; b++)
        if (lab[b] < 0 || lab[b] >= m->cfg.n_classes) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: labels[%lld] = %d outside [0, %d)", op,
                       (long long)b, lab[b], m->cfg.n_classes);
            return NULL;
        }
    if (correct) *correct = count_correct(logits, lab, labels->shape[0]);
    return attn_cross_entropy(ctx, logits, labels, -1, 0.0f);
}

/* ---- masking ------------------------------------------------------------------------ */

attn_status attn_bert_mask(const attn_bert_mask_opts *o, uint64_t seed, uint64_t stream,
                           const int32_t *ids, const int32_t *lengths, int64_t B, int64_t T,
                           int32_t *inputs, int32_t *labels, int64_t *n_selected) {
    static const char fn[] = "attn_bert_mask";
    if (n_selected) *n_selected = 0;
    if (!o || !ids || !inputs || !labels) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (B < 1 || T < 1 || B * T > (1ll << 30))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: B %lld, T %lld: expected >= 1 and B T <= 2^30", fn,
                           (long long)B, (long long)T);
    if (!(o->prob >= 0.0f && o->prob <= 1.0f) || o->random_lo >= o->random_hi)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: prob %g (in [0, 1]), random ids [%d, %d) (not empty)",
                           fn, (double)o->prob, o->random_lo, o->random_hi);
    if (lengths)
        for (int64_t b = 0; b < B; b++)
            if (lengths[b] < 0 || lengths[b] > T)
                return attn__error(ATTN_ERR_INVALID_ARG, "%s: lengths[%lld] = %d outside [0, %lld]", fn,
                                   (long long)b, lengths[b], (long long)T);
    /* Thresholds on 32-bit integers: u < p 2^32 has probability p exactly
     * when p 2^32 is an integer (prob 1 selects all). */
    const uint64_t sel = (uint64_t)((double)o->prob * 4294967296.0);
    const uint64_t t_mask = (uint64_t)(0.8 * 4294967296.0), t_rand = (uint64_t)(0.9 * 4294967296.0);
    const uint64_t range = (uint64_t)((int64_t)o->random_hi - o->random_lo);
    const uint64_t off = stream << 32;
    int64_t n = 0;
    for (int64_t b = 0; b < B; b++) {
        const int64_t len = lengths ? lengths[b] : T;
        for (int64_t t = 0; t < T; t++) {
            const int64_t p = b * T + t;
            const int32_t id = ids[p];
            labels[p] = -1;
            inputs[p] = id;
            if (t >= len || id < o->first_id || id == o->mask_id) continue;
            const uint64_t i3 = 3 * (uint64_t)p;
            if ((uint64_t)attn_rng_u32(seed, off, i3) >= sel) continue;
            labels[p] = id;
            n++;
            const uint64_t u1 = attn_rng_u32(seed, off, i3 + 1);
            if (u1 < t_mask)
                inputs[p] = o->mask_id;
            else if (u1 < t_rand)
                inputs[p] = o->random_lo +
                            (int32_t)(((uint64_t)attn_rng_u32(seed, off, i3 + 2) * range) >> 32);
        }
    }
    if (n_selected) *n_selected = n;
    return ATTN_OK;
}

/* ---- files -------------------------------------------------------------------------- */

static const attn__meta_field meta_fields[ATTN_BERT_META] = {
    ATTN__META_FIELD("bert.vocab", ATTN__META_I64, attn_bert_config, vocab),
    ATTN__META_FIELD("bert.max_len", ATTN__META_I64, attn_bert_config, max_len),
    ATTN__META_FIELD("bert.n_layers", ATTN__META_INT, attn_bert_config, n_layers),
    ATTN__META_FIELD("bert.n_heads", ATTN__META_INT, attn_bert_config, n_heads),
    ATTN__META_FIELD("bert.d_model", ATTN__META_I64, attn_bert_config, d_model),
    ATTN__META_FIELD("bert.d_ff", ATTN__META_I64, attn_bert_config, d_ff),
    ATTN__META_FIELD("bert.dropout", ATTN__META_FLOAT, attn_bert_config, dropout),
    ATTN__META_FIELD("bert.norm_first", ATTN__META_FLAG, attn_bert_config, norm_first),
    ATTN__META_FIELD("bert.ln_eps", ATTN__META_FLOAT, attn_bert_config, ln_eps),
    ATTN__META_FIELD("bert.mlm", ATTN__META_FLAG, attn_bert_config, mlm),
    ATTN__META_FIELD("bert.n_classes", ATTN__META_INT, attn_bert_config, n_classes),
};

void attn_bert_config_meta(const attn_bert_config *c, attn_kv *kv, char *buf) {
    attn__meta_write(meta_fields, ATTN_BERT_META, c, kv, buf);
}

attn_status attn_bert_config_load(const char *path, attn_bert_config *cfg) {
    static const char fn[] = "attn_bert_config_load";
    if (!path || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_bert_config c;
    memset(&c, 0, sizeof c);
    const attn_status st =
        attn__meta_load(fn, "BERT", path, meta_fields, ATTN_BERT_META, &c);
    if (st == ATTN_OK) *cfg = c;
    return st;
}

attn_status attn_bert_save(const char *path, const attn_bert *m, const attn_kv *meta, int n_meta) {
    if (!path || !m || (n_meta > 0 && !meta) || n_meta < 0 || n_meta > 64)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_bert_save: NULL argument or n_meta %d", n_meta);
    if (m->type_emb)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_bert_save: a model with type embeddings (type_vocab %lld) cannot "
                           "be described by the bert.* metadata",
                           (long long)m->cfg.type_vocab);
    attn_kv kv[ATTN_BERT_META + 64];
    char buf[ATTN_BERT_META * 32];
    attn_bert_config_meta(&m->cfg, kv, buf);
    return attn__meta_save(path, m->params, kv, ATTN_BERT_META, meta, n_meta);
}

attn_status attn_bert_load(const char *path, attn_params *ps, attn_bert **out) {
    if (out) *out = NULL;
    if (!path || !ps || !out) return attn__error(ATTN_ERR_INVALID_ARG, "attn_bert_load: NULL argument");
    attn_bert_config c;
    attn_status st = attn_bert_config_load(path, &c);
    if (st != ATTN_OK) return st;
    /* the file must hold what the metadata claims before anything is built:
     * the token embedding [vocab, d_model] and d_model^2 per layer at least */
    st = attn__meta_check_size("attn_bert_load", path, c.n_layers,
                               attn__meta_mul_add(c.d_model,
                                                  attn__meta_mul_add(c.d_model, c.n_layers, c.vocab),
                                                  0));
    if (st != ATTN_OK) return st;
    /* The file's tensors must match the sizes of its metadata before a model
     * of that size is built (as attn_gpt_load). */
    if (c.n_layers >= 1 && c.d_model >= 1) {
        const int64_t E = c.d_model, F = c.d_ff > 0 ? c.d_ff : 4 * c.d_model;
        char last[48];
        snprintf(last, sizeof last, "layers.%d.linear1.weight", c.n_layers - 1);
        const attn__meta_shape want[] = {{"tok_emb.weight", c.vocab, E},
                                         {"pos_emb.weight", c.max_len, E},
                                         {last, F, E},
                                         {"classifier.weight", c.n_classes, E}};
        st = attn__meta_check_shapes("attn_bert_load", path, want, c.n_classes > 0 ? 4 : 3);
        if (st != ATTN_OK) return st;
    }
    attn_bert *m = NULL;
    st = attn_bert_new(&m, ps, &c, NULL);
    if (st != ATTN_OK) return st;
    st = attn_safetensors_load_params(path, ps, ATTN_ST_ALLOW_UNEXPECTED);
    if (st != ATTN_OK) {
        attn_bert_free(m);
        return st;
    }
    *out = m;
    return ATTN_OK;
}

attn_status attn_bert_load_encoder(const char *path, attn_bert *m) {
    static const char fn[] = "attn_bert_load_encoder";
    if (!path || !m) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_safetensors *f = NULL;
    attn_status st = attn_safetensors_open(&f, path);
    if (st != ATTN_OK) return st;
    /* read as attn_bert_config_load reads it: an integer, 0 or 1 */
    const char *nf = attn_safetensors_metadata(f, "bert.norm_first");
    char *end = NULL;
    const long long nfv = nf ? strtoll(nf, &end, 10) : 0;
    if (nf && (end == nf || *end || nfv < 0 || nfv > 1))
        st = attn__error(ATTN_ERR_FORMAT, "%s: %s: bert.norm_first = '%s' (0 or 1)", fn, path, nf);
    else if (nf && nfv != (m->cfg.norm_first ? 1 : 0))
        st = attn__error(ATTN_ERR_FORMAT, "%s: %s is a %s model, this one is %s", fn, path,
                         nfv ? "pre-LN" : "post-LN", m->cfg.norm_first ? "pre-LN" : "post-LN");
    /* Check every tensor first, then copy. */
    for (int i = 0; i < m->n_encoder && st == ATTN_OK; i++) {
        const attn_tensor *p = attn_params_at(m->params, m->first_param + i);
        const attn_st_tensor *t = attn_safetensors_find(f, p->name);
        if (!t) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s has no tensor %s", fn, path, p->name);
            break;
        }
        int same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) {
            st = attn__error(ATTN_ERR_SHAPE, "%s: %s: %s has %d dims [%lld, ...], the model %s", fn,
                             path, p->name, t->ndim, (long long)(t->ndim ? t->shape[0] : 0),
                             attn__shp(p));
            break;
        }
        if (t->dtype != ATTN_ST_F32 && t->dtype != ATTN_ST_F16 && t->dtype != ATTN_ST_BF16)
            st = attn__error(ATTN_ERR_DTYPE, "%s: %s: %s is not F32, F16 or BF16", fn, path, p->name);
    }
    for (int i = 0; i < m->n_encoder && st == ATTN_OK; i++) {
        attn_tensor *p = attn_params_at(m->params, m->first_param + i);
        st = attn_safetensors_read_f32(attn_safetensors_find(f, p->name), attn_f32(p));
    }
    attn_safetensors_close(f);
    return st;
}
