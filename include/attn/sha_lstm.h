/* sha_lstm.h: the SHA-LSTM byte language model of Merity 2019 and its plain
 * LSTM baseline (src/models/sha_lstm.c, docs/sha_rnn.md), with the
 * recurrent state and the attention memory carried from one segment to the
 * next as the paper trains and evaluates.
 *
 * SHA-LSTM (ATTN_SHA_LSTM), L blocks of width d, the released code's Block:
 *   h = E[ids]                                       (embedding [V, d])
 *   per block l:
 *     h = LSTM_l(LN_start(h))                        (no residual)
 *     if l is the attention block (attn_layer):
 *       m = LN_mem(h); h = LN_mid(h)
 *       h = h + SHA(h, [memory; m])                  (sha_rnn.h, causal)
 *       memory <- the last mem_len rows of [memory; m]
 *     h = LN_ff(h) + Boom(LN_xff(h))                 (Boom d -> n d -> d)
 *   logits = h E^T + b                               (tied decoder)
 * LSTM (ATTN_PLAIN_LSTM): h = LSTM(E[ids]) with L layers of d, the same tied
 * decoder. Every LN has eps 1e-12 (the released code's).
 *
 * Parameters (names in the store): embed.weight [V, d], decoder.bias [V];
 * SHA-LSTM: blocks.<l>.{lnstart,lnff,lnxff}.{weight,bias},
 * blocks.<l>.rnn.* (torch.nn.LSTM's names), blocks.<l>.ff.linear1.*, and
 * for the attention block blocks.<l>.{lnmem,lnmid}.* and blocks.<l>.attn.*
 * (sha_rnn.h); LSTM: rnn.* (an L-layer torch.nn.LSTM).
 * Dimension legend (tensor.h): B batch, T time steps, V vocabulary, d width,
 * L blocks, M memory length. Errors follow ops.h.
 */
#ifndef ATTN_SHA_LSTM_H
#define ATTN_SHA_LSTM_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "rnn.h"
#include "sha_rnn.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_sha_lstm_arch { ATTN_SHA_LSTM = 0, ATTN_PLAIN_LSTM = 1 } attn_sha_lstm_arch;

#define ATTN_SHA_LSTM_MAX_LAYERS 8

typedef struct attn_sha_lstm_config {
    attn_sha_lstm_arch arch;
    int64_t vocab;   /* V >= 2 */
    int64_t d;       /* d >= 1 */
    int layers;      /* L in [1, ATTN_SHA_LSTM_MAX_LAYERS] */
    int attn_layer;  /* SHA-LSTM: the block with the attention, in [0, L) (the paper: L - 2);
                        -1: none (the ablation: the same blocks without attention) */
    int64_t boom;    /* SHA-LSTM: Boom's n (hidden n d; the paper 4) */
    int64_t mem_len; /* SHA-LSTM: M >= 0, earlier positions kept as keys */
} attn_sha_lstm_config;

typedef struct attn_sha_lstm_block {
    attn_tensor *lnstart_g, *lnstart_b, *lnff_g, *lnff_b, *lnxff_g, *lnxff_b;
    attn_tensor *lnmem_g, *lnmem_b, *lnmid_g, *lnmid_b; /* the attention block only */
    attn_rnn rnn;
    attn_boom ff;
    attn_sha_attention attn;
} attn_sha_lstm_block;

typedef struct attn_sha_lstm {
    attn_sha_lstm_config cfg;
    attn_tensor *embed, *dec_b;
    attn_sha_lstm_block blocks[ATTN_SHA_LSTM_MAX_LAYERS]; /* SHA-LSTM */
    attn_rnn rnn;                                         /* LSTM */
} attn_sha_lstm;

/* Adds the parameters to ps and returns the model in *out (free with
 * attn_sha_lstm_free; ps owns the tensors). rng non-NULL: initialised
 * (embedding uniform +-0.1, decoder bias 0, the rest as rnn.h and
 * sha_rnn.h); NULL: zeros (to be loaded). Errors: ATTN_ERR_INVALID_ARG (a
 * bad configuration), ATTN_ERR_OOM. */
attn_status attn_sha_lstm_new(attn_sha_lstm **out, attn_params *ps, const attn_sha_lstm_config *cfg,
                              attn_rng *rng);
void attn_sha_lstm_free(attn_sha_lstm *m);

/* The parameter count of a configuration (without building it); -1 if it
 * is invalid. */
int64_t attn_sha_lstm_param_count(const attn_sha_lstm_config *cfg);

/* What is carried between segments: the LSTM states h, c [L, B, d] and the
 * attention memory [B, fill, d] (fill <= M), plain values (no gradient flows
 * across segments: truncated backpropagation through time). */
typedef struct attn_sha_lstm_state {
    int64_t B, L, d, M, fill;
    float *h, *c, *mem;
} attn_sha_lstm_state;

/* Allocates a zero state for batch B (errors: ATTN_ERR_INVALID_ARG,
 * ATTN_ERR_OOM); reset zeroes it and empties the memory; free releases it
 * (safe twice and on a zeroed struct). */
attn_status attn_sha_lstm_state_init(attn_sha_lstm_state *s, const attn_sha_lstm *m, int64_t B);
void attn_sha_lstm_state_reset(attn_sha_lstm_state *s);
void attn_sha_lstm_state_free(attn_sha_lstm_state *s);

/* logits [B, T, V] of ids I32 [B, T] (ids in [0, V)), starting from state
 * s (NULL: zero state, empty memory). With s non-NULL its values are
 * replaced by those after the segment. weights, when not NULL, receives the
 * SHA's probabilities [B, 1, T, fill + T] (NULL for the LSTM). Errors: those
 * of the ops; ATTN_ERR_SHAPE for ids that are not [B, T] or a state of
 * another batch size. */
attn_tensor *attn_sha_lstm_logits(attn_ctx *ctx, const attn_sha_lstm *m, attn_tensor *ids,
                                  attn_sha_lstm_state *s, attn_tensor **weights);

/* Mean cross-entropy (nats) of targets I32 [B, T] after inputs I32 [B, T],
 * as attn_sha_lstm_logits (s updated). */
attn_tensor *attn_sha_lstm_loss(attn_ctx *ctx, const attn_sha_lstm *m, attn_tensor *inputs,
                                attn_tensor *targets, attn_sha_lstm_state *s);

#ifdef __cplusplus
}
#endif
#endif
