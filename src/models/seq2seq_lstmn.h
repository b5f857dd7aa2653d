/* seq2seq_lstmn.h (private): the LSTMN wiring of the RNN encoder-decoder
 * (include/attn/seq2seq.h, fusion SHALLOW or DEEP; docs/lstmn.md, "The
 * encoder-decoder"). seq2seq.c owns the model and its shared parameters
 * (embeddings, bridge, Bahdanau attention, output layer) and hands them over
 * in this struct; seq2seq_lstmn.c adds and runs the LSTMN's own. */
#ifndef ATTN_MODELS_SEQ2SEQ_LSTMN_H
#define ATTN_MODELS_SEQ2SEQ_LSTMN_H

#include <stdint.h>

#include "attn/context.h"
#include "attn/params.h"
#include "attn/rng.h"
#include "attn/rnn_attention.h"
#include "attn/s2s_types.h"
#include "attn/seq2seq.h"
#include "attn/tensor.h"

typedef struct attn__s2s_lstmn {
    int deep;
    int64_t H, A, E; /* hidden (both sides), attention size, embedding */
    int64_t P;       /* the decoder's input projection width: 4H + A (+ A + H deep) */
    float dropout;
    int32_t pad_id;
    /* the model's, shared with the other wirings */
    attn_tensor *enc_emb, *dec_emb, *bridge_w, *bridge_b, *out_w, *out_b;
    const attn_attention *att; /* Bahdanau's inter-attention (additive) */
    /* encoder: W_in [4H + A, E] and b_in (gates i|f|g|o, then the score's
     * W_x'), W_hh [4H, H] on h~, W_h [A, H] on the tape, v [A] */
    attn_tensor *e_in_w, *e_in_b, *e_hh, *e_mem, *e_v;
    /* decoder: input x_t = [emb(y_{t-1}); c_t] (E + H), W_in [P, E + H], b_in,
     * W_hh, W_h, v as the encoder's, and W_h~ [A, H] on h~_{t-1} */
    attn_tensor *d_in_w, *d_in_b, *d_hh, *d_mem, *d_v, *d_sum;
    /* deep fusion: W_gamma [A, H] on the encoder's tape, W_gamma~ [A, H] on
     * gamma~_{t-1}, u [A], W_r [H, H] on gamma~_t (x_t's parts of the score
     * and of r, with b_r, are rows 4H + A .. P of d_in_w, d_in_b) */
    attn_tensor *f_enc, *f_sum, *f_v, *f_r;
} attn__s2s_lstmn;

/* Adds the LSTMN's parameters to ps (initialised from rng, or zeros when
 * rng is NULL): part 0 the encoder's (first: it also sets p's sizes), part 1
 * the decoder's; the shared pointers are set by the caller. */
attn_status attn__s2s_lstmn_init(attn__s2s_lstmn *p, attn_params *ps, const attn_seq2seq_config *c,
                                 int part, attn_rng *rng);

/* Teacher-forced mean cross-entropy (seq2seq.h's attn_seq2seq_loss; the
 * batch is checked by the caller). weights_out as there. */
attn_tensor *attn__s2s_lstmn_loss(attn_ctx *ctx, const attn__s2s_lstmn *p,
                                  const attn_s2s_batch *batch, float label_smoothing,
                                  attn_tensor **weights_out);

/* Greedy / beam decoding (seq2seq.h's attn_seq2seq_decode) with gradients
 * off; 0, or -1 with the error recorded. */
int attn__s2s_lstmn_decode(attn_ctx *ctx, const attn__s2s_lstmn *p, const attn_seq2seq_config *c,
                           const attn_s2s_batch *batch, const attn_decode_config *dc,
                           int32_t *out_ids, int32_t *out_len, float *align);

#endif
