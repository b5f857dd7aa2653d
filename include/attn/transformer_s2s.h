/* attn/transformer_s2s.h: the encoder-decoder Transformer for translation
 * (Vaswani et al. 2017), on the batches, vocabularies and decoding settings
 * of the RNN translator (seq2seq.h, s2s_data.h), so the two families train
 * and evaluate on the same data with the same code.
 *
 *   encoder  x = Drop(emb_src(src) * sqrt(E) + P_src)          [B, S, E]
 *            enc_layers encoder blocks (transformer.h), self-attention
 *            over the valid source positions (key_lengths = src_len);
 *            pre-LN: then encoder.norm                -> memory [B, S, E]
 *   decoder  y = Drop(emb_tgt(tgt_in) * sqrt(E) + P_tgt)       [B, T, E]
 *            dec_layers decoder blocks: causal self-attention, then
 *            cross-attention over memory (key_lengths = src_len), then the
 *            feed-forward layer; pre-LN: then decoder.norm
 *   logits   y W_out^T + b_out                                 [B, T, Vt]
 *            (W_out is the target embedding when tie_output)
 * P is the sinusoidal table (pos SINUSOIDAL) or a learned table [max_len, E]
 * (LEARNED); with ROPE, ALIBI or SHAW the positions act inside every
 * self-attention (encoder and decoder; never in cross-attention), and with
 * NONE there are none.
 *
 * Parameter names follow torch.nn.Transformer where it has the part
 * (tools/make_t2t_fixtures.py builds the same model from
 * nn.TransformerEncoderLayer / nn.TransformerDecoderLayer and loads it from
 * our names):
 *   src_embedding.weight [Vs, E], tgt_embedding.weight [Vt, E],
 *   src_pos_embedding.weight, tgt_pos_embedding.weight [max_len, E] (LEARNED),
 *   encoder.layers.N.* (nn.TransformerEncoderLayer's names),
 *   encoder.norm.weight/.bias (pre-LN only),
 *   decoder.layers.N.* (nn.TransformerDecoderLayer's names),
 *   decoder.norm.weight/.bias (pre-LN only),
 *   output.weight [Vt, E] (unless tie_output), output.bias [Vt].
 * Unlike torch.nn.Transformer, a post-LN model has no final norms (the
 * blocks end with a LayerNorm already).
 *
 * Token conventions are seq2seq.h's (pad, bos, eos; targets equal to pad_id
 * are ignored by the loss). Errors: functions returning a tensor return NULL
 * with the status and a message naming the function and the shapes in the
 * context; those returning a status also record it in the context (when one
 * is given) and in attn_last_error(). Threads: results repeat bitwise for a
 * given thread count.
 */
#ifndef ATTN_TRANSFORMER_S2S_H
#define ATTN_TRANSFORMER_S2S_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "s2s_types.h"
#include "status.h"
#include "transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_t2t_config {
    int64_t src_vocab, tgt_vocab; /* Vs, Vt >= 4 */
    int64_t d_model;              /* E */
    int n_heads;                  /* H, divides E */
    int n_kv_heads;               /* 0: H; H % Hkv == 0 (grouped-query heads) */
    int enc_layers, dec_layers;   /* >= 1 */
    int64_t d_ff;                 /* F >= 1 */
    float dropout;                /* [0, 1): embeddings, attention weights, every
                                     residual branch and the feed-forward hidden
                                     layer, in training mode */
    int norm_first;               /* nonzero: pre-LN blocks and the final norms */
    attn_activation activation;   /* of the feed-forward layers */
    attn_pos_kind pos;            /* see above; SINUSOIDAL is the paper's */
    int shaw_clip;                /* SHAW: clipping distance >= 1 */
    float rope_theta;             /* ROPE: 0 means 10000 */
    int64_t max_len;              /* LEARNED: positions per side (sources and
                                     decoder inputs must fit); else unused */
    int tie_output;               /* nonzero: the output layer uses tgt_embedding.weight */
    int32_t pad_id, bos_id, eos_id;
    attn_attention_kernel kernel; /* the attention op: 0 AUTO (fused from
                                     ATTN_FUSED_MIN_KEYS keys), FUSED or REFERENCE
                                     (transformer.h) */
} attn_t2t_config;

typedef struct attn_t2t attn_t2t;

/* Creates the model and adds its parameters to ps (initialised from rng:
 * embeddings N(0, E^-1/2) so that the sqrt(E) scale gives unit variance,
 * learned positions N(0, 0.02), blocks as attn_block_init (torch's), the
 * output layer as torch.nn.Linear; NULL rng leaves everything zero (norm
 * weights one), for loading). Errors: ATTN_ERR_INVALID_ARG naming the bad
 * field, ATTN_ERR_OOM. */
attn_status attn_t2t_new(attn_t2t **out, attn_params *ps, const attn_t2t_config *cfg,
                         attn_rng *rng);
void attn_t2t_free(attn_t2t *m);
/* The resolved configuration (n_kv_heads filled in). */
const attn_t2t_config *attn_t2t_get_config(const attn_t2t *m);

/* The attention probabilities of every layer and head (no gradient), for
 * alignment maps and pictures: each member is NULL (not wanted) or an array
 * of that many slots, filled with one tensor per layer:
 *   enc_self [enc_layers]: [B, H, S, S]  (columns s >= src_len[b] are 0)
 *   dec_self [dec_layers]: [B, H, T, T]  (causal: zero above the diagonal)
 *   cross    [dec_layers]: [B, H, T, S]  (columns s >= src_len[b] are 0) */
typedef struct attn_t2t_maps {
    attn_tensor **enc_self;
    attn_tensor **dec_self;
    attn_tensor **cross;
} attn_t2t_maps;

/* Teacher-forced logits of a batch (s2s_types.h's attn_s2s_batch; tgt_out
 * unused): [B, T, Vt]. maps, when not NULL, receives the attention
 * probabilities (see attn_t2t_maps).
 * Errors: ATTN_ERR_SHAPE / ATTN_ERR_DTYPE (batch tensors not I32 [B, S],
 * [B], [B, T]), ATTN_ERR_INVALID_ARG (src_len outside [1, S], a token
 * outside the vocabulary, a LEARNED model given more than max_len
 * positions). */
attn_tensor *attn_t2t_logits(attn_ctx *ctx, const attn_t2t *m, const attn_s2s_batch *batch,
                             const attn_t2t_maps *maps);

/* Mean cross-entropy over the non-pad target tokens of tgt_out (label
 * smoothing as attn_cross_entropy) -> scalar; maps as attn_t2t_logits. */
attn_tensor *attn_t2t_loss(attn_ctx *ctx, const attn_t2t *m, const attn_s2s_batch *batch,
                           float label_smoothing, const attn_t2t_maps *maps);

/* Where the alignment of a decoded output comes from: the cross-attention
 * of decoder layer `layer` (0-based; -1: the mean over all layers), averaged
 * over its heads. */
typedef struct attn_t2t_align {
    int layer;
} attn_t2t_align;

/* Decodes every source of the batch (tgt_in / tgt_out unused) with
 * gradients off, greedy (dc->beam 1) or by beam search, with the rules and
 * outputs of attn_seq2seq_decode: out_ids [B * max_len] (eos excluded, pad
 * after), out_len [B]; align, when not NULL, [B * max_len * S] the
 * cross-attention (as chosen by `how`; NULL means the mean over all layers)
 * of the step that emitted each output token. cross, when not NULL,
 * receives every layer's and head's cross-attention of those steps:
 * [B, max_len, dec_layers, H, S], zeros after the last step.
 * The encoder runs once; the decoder runs one token per step with a KV cache
 * per layer (self-attention keys and values appended each step and
 * reordered by the beam; the cross-attention keys and values of the memory
 * projected once). The context is used as scratch (the caller resets it).
 * Errors: those of attn_t2t_logits, ATTN_ERR_INVALID_ARG (beam or max_len
 * < 1, a bad length_alpha, how->layer outside [-1, dec_layers), a LEARNED
 * model asked for more than max_len steps), ATTN_ERR_OOM. */
attn_status attn_t2t_decode(attn_ctx *ctx, const attn_t2t *m, const attn_s2s_batch *batch,
                            const attn_decode_config *dc, const attn_t2t_align *how,
                            int32_t *out_ids, int32_t *out_len, float *align, float *cross);

#ifdef __cplusplus
}
#endif
#endif
