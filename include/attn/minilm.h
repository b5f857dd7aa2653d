/* attn/minilm.h: pretrained BERT sentence encoders in the
 * sentence-transformers layout, all-MiniLM-L6-v2 first (docs/minilm.md):
 * Hugging Face's BertModel weights loaded by their own names into attn's
 * BERT encoder (bert.h), the uncased WordPiece tokenizer (wordpiece.h), mean
 * pooling over the real tokens and L2 normalisation.
 *
 * A model directory (scripts/get_minilm.sh writes data/minilm/) holds:
 *   model.safetensors          the BertModel weights (F32, F16 or BF16)
 *   vocab.txt                  the WordPiece vocabulary
 *   config.json                hidden_size, num_hidden_layers,
 *                              num_attention_heads, intermediate_size,
 *                              vocab_size, max_position_embeddings,
 *                              type_vocab_size, layer_norm_eps, hidden_act
 *                              ("gelu": the erf form)
 *   sentence_bert_config.json  max_seq_length (optional: default 256)
 *   pooling_config.json        sentence-transformers' 1_Pooling/config.json:
 *                              pooling_mode_mean_tokens must be true, the
 *                              other modes false (optional: mean)
 *   modules.json               normalised iff it lists a Normalize module
 *                              (optional: normalised)
 *
 * The embedding of a text (E = hidden_size):
 *   ids = [CLS] wordpiece(text)[:max_seq - 2] [SEP]          (n tokens)
 *   h = BERT encoder(ids, token types 0)                     [n, E]
 *   e = (sum_t h[t]) / n ;  e = e / max(||e||_2, 1e-12)      (normalised models)
 * A batch pads its rows to its longest; padding is never attended to nor
 * pooled, so a text's embedding does not depend on its batch (up to float
 * rounding of the matrix products).
 *
 * The name map (Hugging Face -> attn, l = 0 .. L-1):
 *   embeddings.word_embeddings.weight        tok_emb.weight
 *   embeddings.position_embeddings.weight    pos_emb.weight
 *   embeddings.token_type_embeddings.weight  type_emb.weight
 *   embeddings.LayerNorm.{weight,bias}       emb_norm.{weight,bias}
 *   encoder.layer.l.attention.self.{query,key,value}.{weight,bias}
 *                       rows [0,E), [E,2E), [2E,3E) of layers.l.self_attn.in_proj_{weight,bias}
 *   encoder.layer.l.attention.output.dense   layers.l.self_attn.out_proj
 *   encoder.layer.l.attention.output.LayerNorm  layers.l.norm1
 *   encoder.layer.l.intermediate.dense       layers.l.linear1
 *   encoder.layer.l.output.dense             layers.l.linear2
 *   encoder.layer.l.output.LayerNorm         layers.l.norm2
 * (.dense and .LayerNorm stand for their .weight and .bias.) An optional
 * "bert." prefix is accepted; embeddings.position_ids and pooler.* are not
 * used (sentence-transformers pools the token states, not [CLS]).
 *
 * Nothing here prints; errors return a status with attn_last_error().
 */
#ifndef ATTN_MINILM_H
#define ATTN_MINILM_H

#include <stddef.h>
#include <stdint.h>

#include "bert.h"
#include "context.h"
#include "params.h"
#include "status.h"
#include "wordpiece.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_minilm {
    attn_params *params;   /* owned */
    attn_bert *bert;       /* owned: the encoder (type_vocab > 0, post-LN, GELU) */
    attn_wordpiece *tok;   /* owned */
    int max_seq;           /* tokens per text, [CLS] and [SEP] included, in [2, max_len] */
    int normalize;         /* nonzero: L2-normalised embeddings */
    int64_t dim;           /* E */
} attn_minilm;

/* Loads a model directory (above). Errors: ATTN_ERR_INVALID_ARG (NULL),
 * ATTN_ERR_IO (a file missing), ATTN_ERR_FORMAT (a malformed or
 * unsupported configuration: another activation, another pooling mode, a
 * position type other than absolute; a tensor missing), ATTN_ERR_SHAPE (a
 * tensor of another shape than the configuration says), those of
 * attn_wordpiece_load and attn_bert_new, ATTN_ERR_OOM. */
attn_status attn_minilm_load(const char *dir, attn_minilm **out);
void attn_minilm_free(attn_minilm *m); /* NULL is fine */

/* Loads Hugging Face BertModel weights by their names (the map above) into
 * the encoder of m (its type_vocab > 0, post-LN); every encoder tensor must
 * be in the file with its shape. Everything is checked before anything is
 * copied. Errors: those of attn_safetensors_open, ATTN_ERR_FORMAT (a tensor
 * missing), ATTN_ERR_SHAPE, ATTN_ERR_DTYPE, ATTN_ERR_INVALID_ARG. */
attn_status attn_minilm_load_hf(const char *path, attn_bert *m);

/* Sets the tokens per text (2 .. the model's max_len, 512 for MiniLM).
 * Errors: ATTN_ERR_INVALID_ARG. */
attn_status attn_minilm_set_max_seq(attn_minilm *m, int max_seq);

/* The embeddings out[i E .. i E + E) of the n texts texts[i] (lens[i]
 * bytes each; lens NULL: NUL-terminated). The texts are sorted by token
 * count (longest first, ties in input order) and run `batch` at a time
 * (batch >= 1), each batch padded to its longest text; a batch that does
 * not fit the context's arena (ATTN_ERR_OOM) runs in halves, quarters ...
 * (the results do not depend on the batch). ctx (inference: gradients off,
 * training off) is reset before each forward. n_tokens (optional) receives the token count of
 * each text after truncation, n_truncated (optional) how many texts were
 * cut to max_seq. Under ATTN_PRECISION_BF16 the model's weights are frozen
 * in ctx while it runs (attn_ctx_freeze_weight: packed into tiles once) and
 * every frozen weight of ctx is thawed when it returns. Errors:
 * ATTN_ERR_INVALID_ARG, those of the encoder (the context's message),
 * ATTN_ERR_OOM. */
attn_status attn_minilm_embed(attn_ctx *ctx, const attn_minilm *m, const char *const *texts,
                              const size_t *lens, int64_t n, int batch, float *out,
                              int32_t *n_tokens, int64_t *n_truncated);

/* The embeddings of ids given directly: ids i32 [B, T] with lengths[b] real
 * tokens ([CLS] ... [SEP]) in row b, into out[b E ...]. Errors: those of
 * attn_bert_encode_typed. */
attn_status attn_minilm_embed_ids(attn_ctx *ctx, const attn_minilm *m, const int32_t *ids,
                                  const int32_t *lengths, int64_t B, int64_t T, float *out);

#ifdef __cplusplus
}
#endif
#endif
