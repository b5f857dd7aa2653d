/* gru_classifier.h: a text classifier over a bidirectional GRU with a
 * choice of pooling (src/models/gru_classifier.c, docs/lama.md):
 *   x = E[ids] [B, n, e];  h = BiGRU(x, lengths) [B, n, d = 2u]
 *   z = pool(h):
 *     MEAN  the mean of the valid states [d]
 *     ATTN  single-head attention pooling (additive score, one
 *           distribution): s_i = w^T tanh(W h_i + b), a = softmax(s), z =
 *           sum_i a_i h_i [d]
 *     MHSA  multi-head self-attention over the states (transformer.h's
 *           attn_mha, `heads` heads, padded keys masked), then the mean of
 *           its valid outputs [d]
 *     LAMA  lama.h with k = heads, rank r, the context c = the mean of the
 *           valid states [k d]
 *   logits = W_o z + b_o [B, C]
 * Parameters: embed.weight [V, e]; gru.* (torch.nn.GRU's names,
 * bidirectional); pool.* (ATTN: pool.w.weight [d, d], pool.w.bias [d],
 * pool.v.weight [1, d]; MHSA: attn_mha's names; LAMA: pool.p, pool.q);
 * out.weight [C, width of z], out.bias [C]. Dimension legend (tensor.h): B
 * batch, n tokens, V vocabulary, C classes. Errors follow ops.h. */
#ifndef ATTN_GRU_CLASSIFIER_H
#define ATTN_GRU_CLASSIFIER_H

#include <stdint.h>

#include "context.h"
#include "lama.h"
#include "params.h"
#include "rng.h"
#include "rnn.h"
#include "status.h"
#include "tensor.h"
#include "transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_pool_kind {
    ATTN_POOL_MEAN = 0,
    ATTN_POOL_ATTN = 1,
    ATTN_POOL_MHSA = 2,
    ATTN_POOL_LAMA = 3
} attn_pool_kind;

typedef struct attn_gru_classifier_config {
    int64_t vocab;   /* V >= 2 */
    int64_t embed;   /* e >= 1 */
    int64_t hidden;  /* u >= 1 per direction (d = 2u) */
    int64_t classes; /* C >= 2 */
    attn_pool_kind pool;
    int64_t heads;   /* MHSA: heads (dividing d); LAMA: k */
    int64_t rank;    /* LAMA: r */
    float dropout;   /* in [0, 1): on the embeddings and on z, training mode */
} attn_gru_classifier_config;

typedef struct attn_gru_classifier {
    attn_gru_classifier_config cfg;
    attn_tensor *embed, *out_w, *out_b;
    attn_rnn gru;
    attn_tensor *att_w, *att_b, *att_v; /* ATTN */
    attn_mha mha;                       /* MHSA */
    attn_lama lama;                     /* LAMA */
} attn_gru_classifier;

/* Adds the parameters (rng NULL: zeros, to be loaded). Errors:
 * ATTN_ERR_INVALID_ARG (a bad configuration), ATTN_ERR_OOM. */
attn_status attn_gru_classifier_new(attn_gru_classifier **out, attn_params *ps,
                                    const attn_gru_classifier_config *cfg, attn_rng *rng);
void attn_gru_classifier_free(attn_gru_classifier *m);

/* "mean", "attn", "mhsa", "lama" -> 0 and *out, else -1. */
int attn_pool_parse(const char *s, attn_pool_kind *out);
const char *attn_pool_name(attn_pool_kind k);

/* logits [B, C] of ids I32 [B, n] (ids in [0, V); padding beyond
 * lengths[b] is never read by the pooling) with lengths I32 [B] in [1, n].
 * weights, when not NULL, receives the pooling's attention [B, heads, n]
 * (ATTN: [B, 1, n]; LAMA: [B, k, n]; MHSA: [B, heads, n, n]; MEAN: NULL). */
attn_tensor *attn_gru_classifier_logits(attn_ctx *ctx, const attn_gru_classifier *m, attn_tensor *ids,
                                        attn_tensor *lengths, attn_tensor **weights);

#ifdef __cplusplus
}
#endif
#endif
