/* transformer_s2s.c: the encoder-decoder Transformer
 * (include/attn/transformer_s2s.h), composed from the Transformer blocks of
 * transformer.h and the graph ops; nothing here has a backward of its own.
 *
 * Teacher forcing runs the encoder over [B, S] and the decoder over all T
 * target positions at once (causal self-attention), then one output
 * projection and one cross-entropy over the [B*T] rows.
 *
 * Decoding (no gradients) runs the encoder once on the B sources, copies the
 * memory to N = B*k rows (k the beam width; row b*k + j is hypothesis j of
 * sentence b), and then feeds the decoder one token per row and step. Each
 * decoder layer has two KV caches (transformer.h): its self-attention keys
 * and values, appended at every step, and its cross-attention keys and
 * values of the memory, projected at the first step and reused. After the
 * beam has chosen (s2s_common.h), the self-attention caches are reordered by
 * the chosen parents (the cross-attention caches never are: the k rows of a
 * sentence share the same memory). Everything a step allocates lies above
 * an arena mark and is released before the next step, so decoding's memory
 * is the encoder's plus one step's plus the caches (malloc'd, freed at the
 * end).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "s2s_common.h"
#include "../ops/view_internal.h"
#include "attn/ops.h"
#include "attn/params.h"
#include "attn/positions.h"
#include "attn/s2s_types.h"
#include "attn/transformer.h"
#include "attn/transformer_s2s.h"

struct attn_t2t {
    attn_t2t_config cfg;
    float emb_scale; /* sqrt(E) */
    attn_tensor *src_emb, *tgt_emb, *src_pos, *tgt_pos, *out_w, *out_b;
    attn_tensor *enc_norm_w, *enc_norm_b, *dec_norm_w, *dec_norm_b;
    attn_block *enc, *dec; /* [enc_layers], [dec_layers] */
};

/* ---- construction ------------------------------------------------------------------- */

static attn_status t2t_check_config(const attn_t2t_config *c, attn_t2t_config *res) {
    static const char fn[] = "attn_t2t_new";
    if (!c) return attn__error(ATTN_ERR_INVALID_ARG, "%s: config is NULL", fn);
    if (c->src_vocab < 4 || c->tgt_vocab < 4)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: src_vocab %lld, tgt_vocab %lld: expected >= 4",
                           fn, (long long)c->src_vocab, (long long)c->tgt_vocab);
    if (c->d_model < 1 || c->n_heads < 1 || c->d_model % c->n_heads != 0)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: d_model %lld and n_heads %d: expected d_model divisible by "
                           "n_heads >= 1",
                           fn, (long long)c->d_model, c->n_heads);
    if (c->enc_layers < 1 || c->dec_layers < 1 || c->enc_layers > 256 || c->dec_layers > 256)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: enc_layers %d, dec_layers %d: expected 1..256",
                           fn, c->enc_layers, c->dec_layers);
    if ((int)c->pos < 0 || c->pos >= ATTN_POS_COUNT)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: pos %d is not an attn_pos_kind", fn,
                           (int)c->pos);
    if (c->pos == ATTN_POS_LEARNED && c->max_len < 1)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: learned positions need max_len >= 1 (got %lld)", fn,
                           (long long)c->max_len);
    const int32_t ids[3] = {c->pad_id, c->bos_id, c->eos_id};
    for (int i = 0; i < 3; i++)
        if (ids[i] < 0 || ids[i] >= c->src_vocab || ids[i] >= c->tgt_vocab)
            return attn__error(ATTN_ERR_INVALID_ARG,
                               "%s: special ids pad %d, bos %d, eos %d must lie in both "
                               "vocabularies (%lld, %lld)",
                               fn, c->pad_id, c->bos_id, c->eos_id, (long long)c->src_vocab,
                               (long long)c->tgt_vocab);
    *res = *c;
    if (res->n_kv_heads == 0) res->n_kv_heads = res->n_heads;
    if (res->pos != ATTN_POS_LEARNED) res->max_len = 0;
    res->tie_output = c->tie_output != 0;
    res->norm_first = c->norm_first != 0;
    return ATTN_OK; /* the blocks check the rest (heads, d_ff, dropout, positions) */
}

static attn_status t2t_param(attn_params *ps, const char *name, int64_t d0, int64_t d1,
                             attn_tensor **out) {
    const int64_t sh[2] = {d0, d1};
    return attn_params_add(ps, name, d1 ? 2 : 1, sh, out);
}

attn_status attn_t2t_new(attn_t2t **out, attn_params *ps, const attn_t2t_config *cfg,
                         attn_rng *rng) {
    static const char fn[] = "attn_t2t_new";
    if (!out || !ps) return attn__error(ATTN_ERR_INVALID_ARG, "%s: out or params is NULL", fn);
    *out = NULL;
    attn_t2t_config c;
    attn_status st = t2t_check_config(cfg, &c);
    if (st) return st;
    attn_t2t *m = calloc(1, sizeof *m);
    if (m) m->enc = calloc((size_t)c.enc_layers, sizeof *m->enc);
    if (m) m->dec = calloc((size_t)c.dec_layers, sizeof *m->dec);
    if (!m || !m->enc || !m->dec) {
        attn_t2t_free(m);
        return attn__error(ATTN_ERR_OOM, "%s: out of memory for the model", fn);
    }
    m->cfg = c;
    const int64_t E = c.d_model;
    m->emb_scale = (float)sqrt((double)E);
    st = t2t_param(ps, "src_embedding.weight", c.src_vocab, E, &m->src_emb);
    if (!st) st = t2t_param(ps, "tgt_embedding.weight", c.tgt_vocab, E, &m->tgt_emb);
    if (!st && c.pos == ATTN_POS_LEARNED) {
        st = t2t_param(ps, "src_pos_embedding.weight", c.max_len, E, &m->src_pos);
        if (!st) st = t2t_param(ps, "tgt_pos_embedding.weight", c.max_len, E, &m->tgt_pos);
    }
    if (!st && rng) {
        const float sd = (float)(1.0 / sqrt((double)E));
        attn_init_normal(m->src_emb, sd, rng);
        attn_init_normal(m->tgt_emb, sd, rng);
        if (m->src_pos) attn_init_normal(m->src_pos, 0.02f, rng);
        if (m->tgt_pos) attn_init_normal(m->tgt_pos, 0.02f, rng);
    }
    attn_block_config bc;
    memset(&bc, 0, sizeof bc);
    bc.d_model = E;
    bc.n_heads = c.n_heads;
    bc.n_kv_heads = c.n_kv_heads;
    bc.d_ff = c.d_ff;
    bc.norm_first = c.norm_first;
    bc.activation = c.activation;
    bc.kernel = c.kernel;
    bc.dropout = c.dropout;
    bc.pos = c.pos == ATTN_POS_SHAW || c.pos == ATTN_POS_ROPE || c.pos == ATTN_POS_ALIBI
                 ? c.pos
                 : ATTN_POS_NONE;
    bc.shaw_clip = c.shaw_clip;
    bc.rope_theta = c.rope_theta;
    char prefix[64];
    for (int l = 0; l < c.enc_layers && !st; l++) {
        snprintf(prefix, sizeof prefix, "encoder.layers.%d.", l);
        st = attn_block_init(&m->enc[l], ps, prefix, &bc, rng);
    }
    if (!st && c.norm_first) {
        st = t2t_param(ps, "encoder.norm.weight", E, 0, &m->enc_norm_w);
        if (!st) st = t2t_param(ps, "encoder.norm.bias", E, 0, &m->enc_norm_b);
        if (!st) attn_init_constant(m->enc_norm_w, 1.0f);
    }
    bc.cross = 1;
    for (int l = 0; l < c.dec_layers && !st; l++) {
        snprintf(prefix, sizeof prefix, "decoder.layers.%d.", l);
        st = attn_block_init(&m->dec[l], ps, prefix, &bc, rng);
    }
    if (!st && c.norm_first) {
        st = t2t_param(ps, "decoder.norm.weight", E, 0, &m->dec_norm_w);
        if (!st) st = t2t_param(ps, "decoder.norm.bias", E, 0, &m->dec_norm_b);
        if (!st) attn_init_constant(m->dec_norm_w, 1.0f);
    }
    if (!st && !c.tie_output) st = t2t_param(ps, "output.weight", c.tgt_vocab, E, &m->out_w);
    if (!st) st = t2t_param(ps, "output.bias", c.tgt_vocab, 0, &m->out_b);
    if (!st && rng) {
        const float bound = (float)(1.0 / sqrt((double)E));
        if (m->out_w) attn_init_uniform(m->out_w, bound, rng);
        attn_init_uniform(m->out_b, bound, rng);
    }
    if (st) {
        attn_t2t_free(m);
        return st;
    }
    if (c.tie_output) m->out_w = m->tgt_emb;
    m->cfg.n_kv_heads = m->dec[0].cfg.n_kv_heads;
    *out = m;
    return ATTN_OK;
}

void attn_t2t_free(attn_t2t *m) {
    if (!m) return;
    free(m->enc);
    free(m->dec);
    free(m);
}

const attn_t2t_config *attn_t2t_get_config(const attn_t2t *m) { return m ? &m->cfg : NULL; }

/* ---- the graph ---------------------------------------------------------------------- */

/* emb(ids) * sqrt(E) + positions pos0 .. pos0 + T - 1 (absolute kinds), then
 * dropout: [B, T, E]. */
static attn_tensor *t2t_embed(attn_ctx *ctx, const attn_t2t *m, attn_tensor *table,
                              attn_tensor *pos_table, attn_tensor *ids, int64_t pos0,
                              const char *fn) {
    const attn_t2t_config *c = &m->cfg;
    const int64_t T = ids->shape[1], E = c->d_model;
    attn_tensor *x = attn_scale(ctx, attn_embedding(ctx, table, ids), m->emb_scale);
    if (!x) return NULL;
    attn_tensor *p = NULL;
    if (c->pos == ATTN_POS_SINUSOIDAL) {
        p = attn_sinusoidal_positions(ctx, T, E, pos0, 0.0f);
        if (!p) return NULL;
    } else if (c->pos == ATTN_POS_LEARNED) {
        if (pos0 + T > c->max_len) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                       "%s: positions %lld .. %lld, the learned table has max_len %lld", fn,
                       (long long)pos0, (long long)(pos0 + T - 1), (long long)c->max_len);
            return NULL;
        }
        const int64_t sh[1] = {T};
        attn_tensor *pid = attn__tensor(ctx, fn, ATTN_I32, 1, sh);
        if (!pid) return NULL;
        for (int64_t t = 0; t < T; t++) attn_i32(pid)[t] = (int32_t)(pos0 + t);
        p = attn_embedding(ctx, pos_table, pid); /* [T, E] */
        if (!p) return NULL;
    }
    if (p) x = attn_add(ctx, x, p);
    if (x && c->dropout > 0.0f) x = attn_dropout(ctx, x, c->dropout);
    return x;
}

/* The encoder: memory [B, S, E]; ws: NULL or enc_layers slots for the
 * self-attention weights. */
static attn_tensor *t2t_encode(attn_ctx *ctx, const attn_t2t *m, attn_tensor *src,
                               attn_tensor *src_len, attn_tensor **ws, const char *fn) {
    attn_tensor *x = t2t_embed(ctx, m, m->src_emb, m->src_pos, src, 0, fn);
    attn_mha_call call;
    memset(&call, 0, sizeof call);
    call.key_lengths = src_len;
    for (int l = 0; l < m->cfg.enc_layers && x; l++)
        x = attn_block_forward(ctx, &m->enc[l], x, NULL, &call, NULL, ws ? &ws[l] : NULL);
    if (x && m->enc_norm_w) x = attn_layernorm(ctx, x, m->enc_norm_w, m->enc_norm_b, 1e-5f);
    return x;
}

/* The decoder over y [B, T, E] (embedded), then the final norm and the
 * output layer: logits [B, T, Vt]. self_cache / cross_cache: NULL, or the
 * caches of every layer. ws, cw: NULL or dec_layers slots for the self- and
 * cross-attention weights. */
static attn_tensor *t2t_decode_logits(attn_ctx *ctx, const attn_t2t *m, attn_tensor *y,
                                      attn_tensor *memory, attn_tensor *src_len,
                                      attn_kv_cache *self_cache, attn_kv_cache *cross_cache,
                                      attn_tensor **ws, attn_tensor **cw) {
    attn_mha_call sc, cc;
    memset(&sc, 0, sizeof sc);
    memset(&cc, 0, sizeof cc);
    sc.causal = 1;
    cc.key_lengths = src_len;
    for (int l = 0; l < m->cfg.dec_layers && y; l++) {
        sc.cache = self_cache ? &self_cache->layers[l] : NULL;
        cc.cache = cross_cache ? &cross_cache->layers[l] : NULL;
        y = attn_block_forward_ex(ctx, &m->dec[l], y, memory, &sc, &cc, ws ? &ws[l] : NULL,
                                  cw ? &cw[l] : NULL);
    }
    if (y && m->dec_norm_w) y = attn_layernorm(ctx, y, m->dec_norm_w, m->dec_norm_b, 1e-5f);
    return y ? attn_linear(ctx, y, m->out_w, m->out_b) : NULL;
}

attn_tensor *attn_t2t_logits(attn_ctx *ctx, const attn_t2t *m, const attn_s2s_batch *batch,
                             const attn_t2t_maps *maps) {
    static const char fn[] = "attn_t2t_logits";
    if (maps && m) {
        for (int l = 0; maps->enc_self && l < m->cfg.enc_layers; l++) maps->enc_self[l] = NULL;
        for (int l = 0; maps->dec_self && l < m->cfg.dec_layers; l++) maps->dec_self[l] = NULL;
        for (int l = 0; maps->cross && l < m->cfg.dec_layers; l++) maps->cross[l] = NULL;
    }
    if (!ctx) return NULL;
    if (ctx->status) return NULL;
    int64_t B, S, T;
    if (attn__s2s_check_batch(ctx, m, batch, 0, fn, &B, &S, &T)) return NULL;
    if (attn__any_null(ctx, fn, 1, batch->tgt_in) ||
        attn__check_dtype(ctx, fn, "tgt_in", batch->tgt_in, ATTN_I32))
        return NULL;
    if (batch->tgt_in->ndim != 2 || batch->tgt_in->shape[0] != B || batch->tgt_in->shape[1] < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: tgt_in %s, expected [B, T] with B = %lld, T >= 1", fn,
                   attn__shp(batch->tgt_in), (long long)B);
        return NULL;
    }
    if (!attn__s2s_lengths(ctx, batch->src_len, S, fn)) return NULL;
    attn_tensor *memory =
        t2t_encode(ctx, m, batch->src, batch->src_len, maps ? maps->enc_self : NULL, fn);
    attn_tensor *y =
        memory ? t2t_embed(ctx, m, m->tgt_emb, m->tgt_pos, batch->tgt_in, 0, fn) : NULL;
    return y ? t2t_decode_logits(ctx, m, y, memory, batch->src_len, NULL, NULL,
                                 maps ? maps->dec_self : NULL, maps ? maps->cross : NULL)
             : NULL;
}

attn_tensor *attn_t2t_loss(attn_ctx *ctx, const attn_t2t *m, const attn_s2s_batch *batch,
                           float label_smoothing, const attn_t2t_maps *maps) {
    static const char fn[] = "attn_t2t_loss";
    if (!ctx || ctx->status) return NULL;
    int64_t B, S, T;
    if (attn__s2s_check_batch(ctx, m, batch, 1, fn, &B, &S, &T)) return NULL;
    attn_tensor *logits = attn_t2t_logits(ctx, m, batch, maps);
    if (!logits) return NULL;
    const int64_t V = m->cfg.tgt_vocab, n = B * T, sh[2] = {n, V};
    attn_tensor *flat = attn_reshape(ctx, logits, 2, sh);
    attn_tensor *tout = attn__contig(ctx, batch->tgt_out);
    attn_tensor *targets = tout ? attn_reshape(ctx, tout, 1, &n) : NULL;
    return flat && targets
               ? attn_cross_entropy(ctx, flat, targets, m->cfg.pad_id, label_smoothing)
               : NULL;
}

/* ---- decoding ----------------------------------------------------------------------- */

/* x [B, ...] contiguous -> [B*k, ...] with row b*k + j = row b (a copy, no
 * gradient); x itself when k == 1. */
static attn_tensor *t2t_repeat_rows(attn_ctx *ctx, attn_tensor *x, int64_t k, const char *fn) {
    x = attn__contig(ctx, x);
    if (!x || k == 1) return x;
    int64_t sh[ATTN_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) sh[i] = x->shape[i];
    const int64_t B = sh[0], row = attn_tensor_numel(x) / B;
    sh[0] = B * k;
    attn_tensor *y = attn__tensor(ctx, fn, x->dtype, x->ndim, sh);
    if (!y) return NULL;
    const size_t bytes = attn_dtype_size(x->dtype) * (size_t)row;
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < k; j++)
            memcpy((char *)y->data + (size_t)(b * k + j) * bytes,
                   (const char *)x->data + (size_t)b * bytes, bytes);
    return y;
}

/* Reorders the rows of every self-attention cache layer: row i takes row
 * parent[i]'s first len positions (of every head). The moved prefixes are
 * copied out to scratch (N rows' worth) before any is written back, since a
 * row may be another's parent. */
static void t2t_gather_cache(attn_kv_cache *cache, const int32_t *parent, int64_t N,
                             float *scratch) {
    int identity = 1;
    for (int64_t i = 0; i < N && identity; i++) identity = parent[i] == (int32_t)i;
    if (identity) return;
    for (int l = 0; l < cache->n_layers; l++) {
        attn_kv_cache_layer *L = &cache->layers[l];
        const int64_t seg = L->len * L->D, head = L->max_len * L->D, row = L->Hkv * head;
        float *bufs[2] = {L->k, L->v};
        for (int w = 0; w < 2; w++) {
            for (int64_t i = 0; i < N; i++)
                if (parent[i] != (int32_t)i)
                    for (int64_t h = 0; h < L->Hkv; h++)
                        memcpy(scratch + (i * L->Hkv + h) * seg,
                               bufs[w] + (int64_t)parent[i] * row + h * head,
                               sizeof(float) * (size_t)seg);
            for (int64_t i = 0; i < N; i++)
                if (parent[i] != (int32_t)i)
                    for (int64_t h = 0; h < L->Hkv; h++)
                        memcpy(bufs[w] + i * row + h * head, scratch + (i * L->Hkv + h) * seg,
                               sizeof(float) * (size_t)seg);
        }
    }
}

static int t2t_decode_run(attn_ctx *ctx, const attn_t2t *m, const attn_s2s_batch *batch,
                          const attn_decode_config *dc, int align_layer, int32_t *out_ids,
                          int32_t *out_len, float *align, float *cross, attn_kv_cache *self_c,
                          attn_kv_cache *cross_c, float **scratch) {
    static const char fn[] = "attn_t2t_decode";
    const attn_t2t_config *c = &m->cfg;
    int64_t B, S, T0;
    if (attn__s2s_check_batch(ctx, m, batch, 0, fn, &B, &S, &T0)) return -1;
    if (!attn__s2s_lengths(ctx, batch->src_len, S, fn)) return -1;
    const int k = dc->beam, Ld = c->dec_layers;
    const int64_t N = B * k, Vt = c->tgt_vocab, maxT = dc->max_len, H = c->n_heads;
    const int64_t Hkv = c->n_kv_heads, D = c->d_model / c->n_heads;
    if (c->pos == ATTN_POS_LEARNED && maxT > c->max_len) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: max_len %lld steps, the learned position table has %lld", fn,
                   (long long)maxT, (long long)c->max_len);
        return -1;
    }
    attn_tensor *memory = t2t_encode(ctx, m, batch->src, batch->src_len, NULL, fn);
    attn_tensor *mem_n = memory ? t2t_repeat_rows(ctx, memory, k, fn) : NULL;
    attn_tensor *len_n = mem_n ? t2t_repeat_rows(ctx, batch->src_len, k, fn) : NULL;
    if (!len_n) return -1;
    attn_status cst = attn_kv_cache_init(self_c, Ld, N, Hkv, maxT, D);
    if (cst == ATTN_OK) cst = attn_kv_cache_init(cross_c, Ld, N, Hkv, S, D);
    if (cst != ATTN_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", attn_last_error());
        attn__fail(ctx, cst, "%s: the KV caches: %s", fn, msg);
        return -1;
    }
    /* floats kept per row and step: every layer's and head's weights, or
     * just the chosen average */
    const int64_t W = cross ? (int64_t)Ld * H * S : (align ? S : 0);
    const int64_t ish[2] = {N, 1};
    attn_tensor *ids = attn__tensor(ctx, fn, ATTN_I32, 2, ish);
    float *rows = W > 0 ? attn__alloc(ctx, sizeof(float) * (size_t)(N * W), fn) : NULL;
    attn_tensor **cw = attn__alloc(ctx, sizeof(attn_tensor *) * (size_t)Ld, fn);
    attn__beam bm;
    if (!ids || (W > 0 && !rows) || !cw ||
        attn__beam_init(ctx, &bm, B, k, maxT, W, (double)dc->length_alpha, c->pad_id, c->bos_id,
                        c->eos_id, fn))
        return -1;
    if (k > 1) {
        *scratch = malloc(sizeof(float) * (size_t)(N * Hkv * maxT * D));
        if (!*scratch) {
            attn__fail(ctx, ATTN_ERR_OOM, "%s: out of memory for the beam's cache scratch", fn);
            return -1;
        }
    }
    const size_t mark = attn__arena_mark(ctx);
    for (int64_t t = 0; t < maxT; t++) {
        memcpy(ids->data, bm.next, sizeof(int32_t) * (size_t)N);
        attn_tensor *y = t2t_embed(ctx, m, m->tgt_emb, m->tgt_pos, ids, t, fn);
        attn_tensor *logits =
            y ? t2t_decode_logits(ctx, m, y, mem_n, len_n, self_c, cross_c, NULL, W > 0 ? cw : NULL)
              : NULL;
        const int64_t sh[2] = {N, Vt};
        attn_tensor *lp =
            logits ? attn_log_softmax(ctx, attn_reshape(ctx, logits, 2, sh), NULL) : NULL;
        if (!lp) return -1;
        if (W > 0) {
            /* cw[l] is [N, H, 1, S] */
            if (cross) {
                for (int64_t i = 0; i < N; i++)
                    for (int l = 0; l < Ld; l++)
                        memcpy(rows + (i * Ld + l) * H * S, attn_f32(cw[l]) + i * H * S,
                               sizeof(float) * (size_t)(H * S));
            } else {
                const int l0 = align_layer < 0 ? 0 : align_layer;
                const int l1 = align_layer < 0 ? Ld : align_layer + 1;
                const float inv = 1.0f / (float)((l1 - l0) * H);
                for (int64_t i = 0; i < N; i++)
                    for (int64_t s = 0; s < S; s++) {
                        float acc = 0.0f;
                        for (int l = l0; l < l1; l++)
                            for (int64_t h = 0; h < H; h++)
                                acc += attn_f32(cw[l])[(i * H + h) * S + s];
                        rows[i * S + s] = acc * inv;
                    }
            }
        }
        if (attn__beam_step(&bm, t, attn_f32(lp), Vt, rows)) break;
        if (k > 1) t2t_gather_cache(self_c, bm.parent, N, *scratch);
        attn__arena_rewind(ctx, mark);
    }
    attn__arena_rewind(ctx, mark);
    if (!cross) {
        attn__beam_finish(&bm, out_ids, out_len, align);
        return 0;
    }
    attn__beam_finish(&bm, out_ids, out_len, cross);
    if (align) {
        /* the average of the kept weights of the chosen layers */
        const int l0 = align_layer < 0 ? 0 : align_layer;
        const int l1 = align_layer < 0 ? Ld : align_layer + 1;
        const float inv = 1.0f / (float)((l1 - l0) * H);
        for (int64_t r = 0; r < B * maxT; r++)
            for (int64_t s = 0; s < S; s++) {
                float acc = 0.0f;
                for (int l = l0; l < l1; l++)
                    for (int64_t h = 0; h < H; h++) acc += cross[((r * Ld + l) * H + h) * S + s];
                align[r * S + s] = acc * inv;
            }
    }
    return 0;
}

attn_status attn_t2t_decode(attn_ctx *ctx, const attn_t2t *m, const attn_s2s_batch *batch,
                            const attn_decode_config *dc, const attn_t2t_align *how,
                            int32_t *out_ids, int32_t *out_len, float *align, float *cross) {
    static const char fn[] = "attn_t2t_decode";
    if (!ctx) return attn__error(ATTN_ERR_INVALID_ARG, "%s: context is NULL", fn);
    if (ctx->status) return ctx->status;
    if (!m || !batch || !dc || !out_ids || !out_len)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                          "%s: model, batch, decode config, out_ids or out_len is NULL", fn);
    if (dc->beam < 1 || dc->max_len < 1 || !(dc->length_alpha >= 0.0f) ||
        !isfinite(dc->length_alpha))
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                          "%s: beam %d and max_len %d must be >= 1, length_alpha %g finite and "
                          ">= 0",
                          fn, dc->beam, dc->max_len, (double)dc->length_alpha);
    const int layer = how ? how->layer : -1;
    if (layer < -1 || layer >= m->cfg.dec_layers)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                          "%s: alignment layer %d, expected -1 (all) or 0 .. %d", fn, layer,
                          m->cfg.dec_layers - 1);
    const int grad = ctx->grad_enabled, training = ctx->training;
    ctx->grad_enabled = 0;
    ctx->training = 0;
    attn_kv_cache self_c, cross_c;
    memset(&self_c, 0, sizeof self_c);
    memset(&cross_c, 0, sizeof cross_c);
    float *scratch = NULL;
    const int rc = t2t_decode_run(ctx, m, batch, dc, layer, out_ids, out_len, align, cross,
                                  &self_c, &cross_c, &scratch);
    attn_kv_cache_free(&self_c);
    attn_kv_cache_free(&cross_c);
    free(scratch);
    ctx->grad_enabled = grad;
    ctx->training = training;
    if (rc) return ctx->status ? ctx->status : ATTN_ERR_STATE;
    return ATTN_OK;
}
