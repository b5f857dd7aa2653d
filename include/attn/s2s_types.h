/* attn/s2s_types.h: the types the encoder-decoder families share with their
 * data: a batch of (source, target) pairs and the decoding options. The RNN
 * encoder-decoder (seq2seq.h), the encoder-decoder Transformer
 * (transformer_s2s.h) and the batch maker (s2s_data.h) all use them; none of
 * them owns them, so none includes another for them.
 *
 * Token conventions (pad_id, bos_id, eos_id) are those of seq2seq.h.
 */
#ifndef ATTN_S2S_TYPES_H
#define ATTN_S2S_TYPES_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A batch: src I32 [B, S] (pad_id after each source's length), src_len I32
 * [B] (each in [1, S]), tgt_in I32 [B, T] (bos_id then the target), tgt_out
 * I32 [B, T] (the target then eos_id, pad_id after). */
typedef struct attn_s2s_batch {
    attn_tensor *src, *src_len, *tgt_in, *tgt_out;
} attn_s2s_batch;

/* How to decode: greedy or beam search, the length penalty, the output
 * length limit (attn_seq2seq_decode, attn_t2t_decode). */
typedef struct attn_decode_config {
    int beam;           /* 1: greedy; > 1: beam search of that width */
    float length_alpha; /* beam score = log p / (len ^ alpha) (0: raw log p) */
    int max_len;        /* output tokens at most (eos included) */
} attn_decode_config;

#ifdef __cplusplus
}
#endif
#endif
