/* attn/bert.h: a BERT-style Transformer encoder: masked-language-
 * model pretraining, then sequence classification from the [CLS] position.
 * docs/bert.md has the model, the data, the commands and measured figures.
 *
 * The model (B batch, T positions, V vocabulary, E d_model, L layers, C
 * classes); ids [B, T] start with the [CLS] token, lengths [B] count the
 * real tokens of each row (the rest is padding, never attended to):
 *   x_0 = LN_emb(tok_emb[ids] + pos_emb[t])         (type_vocab 0: no segment
 *                                                    embeddings)
 *   x_0 = LN_emb((tok_emb[ids] + type_emb[types]) + pos_emb[t])
 *                                 (type_vocab > 0, Hugging Face's order)
 *   x_0 = Dropout(x_0)
 *   x_l = Block_l(x_{l-1}, key padding = lengths)   encoder blocks of
 *         transformer.h with GELU (erf form):
 *         post-LN (BERT, norm_first 0): x = LN1(x + Drop(SA(x)));
 *                                       x = LN2(x + Drop(FF(x)))
 *         pre-LN (norm_first 1):        x = x + Drop(SA(LN1(x)));
 *                                       x = x + Drop(FF(LN2(x))), and a final
 *                                       LN_f after the last block
 *   h = x_L (after LN_f for pre-LN)                  [B, T, E]
 * MLM head, on the selected positions only:
 *   z = LN_mlm(GELU(h W_t^T + b_t));  logits = z tok_emb^T + b_out   [N, V]
 *   (the decoder is tied to the token embeddings; b_out is its own bias)
 *   loss = mean over the N positions with a label of -log softmax[label]
 * Classification head:
 *   p = tanh(h[:, 0] W_p^T + b_p)  (the pooled [CLS] vector)
 *   logits = Dropout(p) W_c^T + b_c                                [B, C]
 *   loss = mean over B of -log softmax[label]
 *
 * Parameter names (the order attn_bert_new adds them; the PyTorch model of
 * tools/make_bert_fixtures.py has the same names and order):
 *   tok_emb.weight [V, E]; pos_emb.weight [max_len, E];
 *   emb_norm.weight, emb_norm.bias [E];
 *   type_emb.weight [type_vocab, E]                       (type_vocab > 0 only)
 *   layers.<l>.self_attn.in_proj_weight ... layers.<l>.norm2.bias
 *     (torch.nn.TransformerEncoderLayer's names, transformer.h);
 *   norm_f.weight, norm_f.bias [E]                        (pre-LN only)
 *   mlm.transform.weight [E, E], mlm.transform.bias [E],
 *   mlm.norm.weight, mlm.norm.bias [E], mlm.bias [V]      (mlm only)
 *   pooler.weight [E, E], pooler.bias [E],
 *   classifier.weight [C, E], classifier.bias [C]         (n_classes > 0)
 * The encoder is every parameter before the heads: a pretrained model's
 * encoder loads into a classifier with attn_bert_load_encoder.
 *
 * Initialisation (BERT): weights and embeddings N(0, 0.02), biases 0,
 * LayerNorm weights 1, biases 0.
 *
 * Errors follow ops.h: graph functions return NULL with the status and a
 * message in the context; other functions return a status with the message
 * in attn_last_error(). Nothing prints. Results repeat bitwise for a given
 * thread count.
 */
#ifndef ATTN_BERT_H
#define ATTN_BERT_H

#include <stdint.h>

#include "bert_corpus.h"
#include "context.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"
#include "status.h"
#include "tensor.h"
#include "text.h"
#include "transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_bert_config {
    int64_t vocab;    /* V >= 2: the tokeniser's ids plus [MASK] (see attn_bert_mask) */
    int64_t max_len;  /* the longest sequence (rows of pos_emb), >= 1 */
    int n_layers;     /* L >= 1 */
    int n_heads;      /* H >= 1, divides d_model */
    int64_t d_model;  /* E >= 1 */
    int64_t d_ff;     /* 0: 4 E */
    float dropout;    /* in [0, 1): embeddings, attention weights, FF hidden,
                         residual branches and the classifier's input, in
                         training mode */
    int norm_first;   /* 0: post-LN (BERT); nonzero: pre-LN with a final LN */
    float ln_eps;     /* every LayerNorm's eps; 0: 1e-12 (BERT's) */
    int mlm;          /* nonzero: the MLM head */
    int n_classes;    /* C > 0: the pooler and classifier; 0: none */
    attn_attention_kernel kernel; /* the attention op: 0 AUTO (fused from
                                     ATTN_FUSED_MIN_KEYS keys), FUSED or REFERENCE
                                     (transformer.h) */
    int64_t type_vocab; /* 0: no segment embeddings (attn's own BERT); > 0:
                           type_emb.weight [type_vocab, E] (Hugging Face's
                           token_type_embeddings, MiniLM: 2) added to the token
                           embeddings. Not kept in the file metadata:
                           attn_bert_save refuses a model with them
                           (minilm.h loads them by their Hugging Face name) */
} attn_bert_config;

typedef struct attn_bert {
    attn_bert_config cfg;      /* resolved (d_ff, ln_eps filled in) */
    attn_params *params;       /* the store given to attn_bert_new (not owned) */
    int n_encoder;             /* the first n_encoder parameters of the
                                  model are the encoder's */
    int first_param;           /* the model's first parameter in the store */
    attn_tensor *tok_emb, *pos_emb, *emb_norm_w, *emb_norm_b;
    attn_tensor *type_emb;     /* type_vocab > 0 only, else NULL */
    attn_block *blocks;        /* [L], owned */
    attn_tensor *norm_f_w, *norm_f_b;                 /* pre-LN only */
    attn_tensor *mlm_w, *mlm_b, *mlm_norm_w, *mlm_norm_b, *mlm_bias;
    attn_tensor *pool_w, *pool_b, *cls_w, *cls_b;
} attn_bert;

/* Adds the model's parameters to `ps` (names above) and, with rng non-NULL,
 * initialises them as BERT (rng NULL: LayerNorm weights 1, the rest 0, to be
 * loaded). Errors: ATTN_ERR_INVALID_ARG (NULL, a configuration outside the
 * ranges above; mlm == 0 with n_classes == 0 is allowed: an encoder
 * alone), those of attn_block_init, ATTN_ERR_OOM. On
 * error *out is NULL (parameters added so far stay in the store). */
attn_status attn_bert_new(attn_bert **out, attn_params *ps, const attn_bert_config *cfg,
                          attn_rng *rng);
void attn_bert_free(attn_bert *m); /* NULL is fine; the store is the caller's */

/* The encoder: ids i32 [B, T] (each in [0, V), T <= max_len), lengths i32
 * [B] (each in [1, T]; NULL: every row has T tokens) -> h [B, T, E]. Keys at
 * t >= lengths[b] are masked in every attention; the outputs there are
 * computed but meaningless (and the heads never read them).
 * Errors: ATTN_ERR_SHAPE (ids not [B, T], T > max_len, lengths not [B]),
 * ATTN_ERR_DTYPE, ATTN_ERR_INVALID_ARG (an id outside [0, V), a length
 * outside [1, T]), those of the blocks. */
attn_tensor *attn_bert_encode(attn_ctx *ctx, const attn_bert *m, attn_tensor *ids,
                              attn_tensor *lengths);

/* attn_bert_encode, and the self-attention probabilities of every layer:
 * self_weights, when not NULL, is an array of n_layers slots; slot l
 * receives layer l's weights [B, H, T, T] before dropout (no gradient). Row
 * t of row b sums to 1 over the keys 0 .. lengths[b]-1 and is exactly 0 at
 * padding keys (rows of padding queries are meaningless). The slots are set
 * to NULL first. The tensors live in the context's arena until the next
 * attn_ctx_reset. Errors as attn_bert_encode. */
attn_tensor *attn_bert_encode_ex(attn_ctx *ctx, const attn_bert *m, attn_tensor *ids,
                                 attn_tensor *lengths, attn_tensor **self_weights);

/* attn_bert_encode_ex with segment ids: types i32 [B, T] (each in [0,
 * type_vocab)), or NULL: every position has type 0. A model without
 * type embeddings takes only types NULL. Errors as attn_bert_encode_ex,
 * ATTN_ERR_SHAPE (types not [B, T]), ATTN_ERR_STATE (types given to a model
 * without type embeddings). */
attn_tensor *attn_bert_encode_typed(attn_ctx *ctx, const attn_bert *m, attn_tensor *ids,
                                    attn_tensor *types, attn_tensor *lengths,
                                    attn_tensor **self_weights);

/* MLM logits of the positions `positions` i32 [N] of h [B, T, E] (flat
 * indices b T + t, each in [0, B T)) -> [N, V]. Errors: ATTN_ERR_STATE (no
 * MLM head), ATTN_ERR_SHAPE, ATTN_ERR_INVALID_ARG (a position outside). */
attn_tensor *attn_bert_mlm_logits(attn_ctx *ctx, const attn_bert *m, attn_tensor *h,
                                  attn_tensor *positions);

/* MLM loss of a masked batch: ids [B, T] (the corrupted input of
 * attn_bert_mask), lengths [B] or NULL, labels i32 [B, T] (the original id
 * at selected positions, -1 elsewhere). The loss is the mean over the
 * selected positions (0 when none is selected). When correct / count are
 * not NULL they receive how many selected positions the arg max of the
 * logits gets right and how many there are. Errors: those of
 * attn_bert_encode and attn_bert_mlm_logits, ATTN_ERR_SHAPE (labels of
 * another shape), ATTN_ERR_INVALID_ARG (a label outside [0, V) other than
 * -1, or at a padding position), ATTN_ERR_OOM. */
attn_tensor *attn_bert_mlm_loss(attn_ctx *ctx, const attn_bert *m, attn_tensor *ids,
                                attn_tensor *lengths, attn_tensor *labels, int64_t *correct,
                                int64_t *count);

/* Classification logits [B, C] from the [CLS] position (t = 0) of the
 * encoder's output. Errors: those of attn_bert_encode, ATTN_ERR_STATE (no
 * classifier). */
attn_tensor *attn_bert_cls_logits(attn_ctx *ctx, const attn_bert *m, attn_tensor *ids,
                                  attn_tensor *lengths);

/* Mean cross-entropy of the classification logits against labels i32 [B]
 * (each in [0, C)); *correct (if not NULL) receives the number of rows whose
 * arg max (the smallest index on ties) is the label. Errors: those of
 * attn_bert_cls_logits, ATTN_ERR_SHAPE, ATTN_ERR_INVALID_ARG. */
attn_tensor *attn_bert_cls_loss(attn_ctx *ctx, const attn_bert *m, attn_tensor *ids,
                                attn_tensor *lengths, attn_tensor *labels, int64_t *correct);

/* ---- masking ------------------------------------------------------------------------ */

typedef struct attn_bert_mask_opts {
    float prob;          /* the probability that a position is selected (BERT: 0.15) */
    int32_t mask_id;     /* the [MASK] token */
    int32_t first_id;    /* ids below it (the specials: padding, [CLS], ...) and
                            mask_id are never selected */
    int32_t random_lo;   /* a random replacement is uniform in [random_lo, random_hi) */
    int32_t random_hi;
} attn_bert_mask_opts;

/* BERT's masking of a batch ids [B, T] with lengths[b] real tokens per row
 * (lengths NULL: all T). Each position p = b T + t with t < lengths[b] and
 * an id that is neither below first_id nor mask_id is selected with
 * probability prob; a selected position gets labels[p] = ids[p] and input
 *   [MASK] with probability 0.8, a random id with probability 0.1, its own
 *   id with probability 0.1;
 * every other position gets labels[p] = -1 and inputs[p] = ids[p]. The
 * random numbers are attn_rng_u32(seed, stream << 32, 3 p + k), k = 0, 1, 2
 * (rng.h): position p is selected iff u0 < prob 2^32 (u_k as unsigned
 * 32-bit integers), its input is [MASK] iff u1 < 0.8 * 2^32, random iff
 * 0.8 * 2^32 <= u1 < 0.9 * 2^32, and the random id is random_lo +
 * (u2 (random_hi - random_lo)) >> 32. So a batch's masks are a pure function
 * of (seed, stream, ids) (the CLI uses the step as the stream). *n_selected
 * (if not NULL) receives the number of selected positions.
 * inputs and labels hold B T ids each (caller-owned; inputs may be ids).
 * Errors: ATTN_ERR_INVALID_ARG (NULL, B < 1, T < 1, prob outside [0, 1],
 * random_lo >= random_hi, a length outside [0, T], B T > 2^30). */
attn_status attn_bert_mask(const attn_bert_mask_opts *opts, uint64_t seed, uint64_t stream,
                           const int32_t *ids, const int32_t *lengths, int64_t B, int64_t T,
                           int32_t *inputs, int32_t *labels, int64_t *n_selected);

/* ---- files -------------------------------------------------------------------------- */

/* Metadata entries "bert.vocab", "bert.max_len", "bert.n_layers",
 * "bert.n_heads", "bert.d_model", "bert.d_ff", "bert.dropout",
 * "bert.norm_first", "bert.ln_eps", "bert.mlm", "bert.n_classes" into
 * kv[0 .. ATTN_BERT_META-1], value strings in buf (ATTN_BERT_META * 32
 * bytes). */
#define ATTN_BERT_META 11
void attn_bert_config_meta(const attn_bert_config *cfg, attn_kv *kv, char *buf);

/* Reads a configuration from a file's metadata (attn_bert_save or a
 * checkpoint). Errors: those of attn_safetensors_open, ATTN_ERR_FORMAT (an
 * entry missing or malformed). */
attn_status attn_bert_config_load(const char *path, attn_bert_config *cfg);

/* Saves the model's parameters with its configuration and n_meta extra
 * metadata entries (attn_safetensors_save_params). Errors: those of
 * attn_safetensors_save_params, ATTN_ERR_INVALID_ARG (a model with type
 * embeddings, which the metadata cannot describe). */
attn_status attn_bert_save(const char *path, const attn_bert *m, const attn_kv *meta, int n_meta);

/* A model from a file of attn_bert_save or a checkpoint of one
 * (configuration from the metadata; optimizer tensors ignored). Errors:
 * those of attn_bert_config_load, attn_bert_new,
 * attn_safetensors_load_params. */
attn_status attn_bert_load(const char *path, attn_params *ps, attn_bert **out);

/* Loads the encoder's parameters (the first n_encoder: embeddings, their
 * LayerNorm, the blocks, norm_f) of m from a file of another BERT model
 * (e.g. a pretrained MLM model into a classifier); the heads of m and any
 * other tensor of the file are left alone. Every encoder parameter must be
 * in the file with its exact shape (so the vocabulary, max_len, widths and
 * depth agree); the file's bert.norm_first, when present, must equal m's.
 * Everything is checked before anything is copied. Errors: ATTN_ERR_INVALID_ARG,
 * ATTN_ERR_IO, ATTN_ERR_FORMAT (a tensor missing, another norm_first),
 * ATTN_ERR_SHAPE, ATTN_ERR_DTYPE. */
attn_status attn_bert_load_encoder(const char *path, attn_bert *m);

#ifdef __cplusplus
}
#endif
#endif
