/* attn/lstmn_lm.h: a word-level language model with one recurrent layer,
 * the LSTMN of lstmn.h or, as its baseline, an LSTM (rnn.h):
 *   x_t = E[w_t] (dropout),  h_t = cell(x_1 .. x_t),  logits_t = W_o h_t + b_o (dropout on h),
 *   loss = mean_t -log softmax(logits_t)[w_{t+1}].
 * Every window starts from a zero state (the LSTMN's tape holds the window
 * only). Parameters (names in the store):
 *   embed.weight [V, D]; out.weight [V, H], out.bias [V];
 *   LSTMN: lstmn.w_x [4H, D], lstmn.b [4H], lstmn.w_ax [A, D], lstmn.w_hh [4H, H],
 *          lstmn.w_mem [A, H], lstmn.v [A], lstmn.w_sum [A, H] (with the h~ term);
 *   LSTM:  torch.nn.LSTM's names under "lstm." (rnn.h).
 * Dimension legend (tensor.h): B batch, T time steps, V vocabulary, D
 * embedding size, H hidden size, A attention size. Errors follow ops.h. */
#ifndef ATTN_LSTMN_LM_H
#define ATTN_LSTMN_LM_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "rnn.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_lstmn_lm_cell { ATTN_LM_CELL_LSTMN = 0, ATTN_LM_CELL_LSTM = 1 } attn_lstmn_lm_cell;

typedef struct attn_lstmn_lm_config {
    attn_lstmn_lm_cell cell;
    int64_t vocab;    /* V >= 2 */
    int64_t embed;    /* D >= 1 */
    int64_t hidden;   /* H >= 1 */
    int64_t attn;     /* A >= 1 (LSTMN only) */
    int summary_term; /* LSTMN: 1 keeps W_h~ h~_{t-1} in the score (lstmn.h) */
    float dropout;    /* in [0, 1): on the embeddings and on h before the output layer */
} attn_lstmn_lm_config;

typedef struct attn_lstmn_lm {
    attn_lstmn_lm_config cfg;
    attn_tensor *embed, *out_w, *out_b;
    attn_tensor *w_x, *b, *w_ax, *w_hh, *w_mem, *v, *w_sum; /* LSTMN (w_sum NULL without the term) */
    attn_rnn rnn;                                           /* LSTM */
} attn_lstmn_lm;

/* Adds the model's parameters to ps and returns the model in *out (free it
 * with attn_lstmn_lm_free; ps owns the tensors). rng non-NULL: initialised
 * (embedding uniform +-0.1; every weight and bias of the cell and the
 * output layer uniform +-1/sqrt(H), torch's LSTM rule; output bias 0);
 * NULL: zeros (to be loaded).
 * Errors: ATTN_ERR_INVALID_ARG (a bad configuration), ATTN_ERR_OOM. */
attn_status attn_lstmn_lm_new(attn_lstmn_lm **out, attn_params *ps, const attn_lstmn_lm_config *cfg,
                              attn_rng *rng);
void attn_lstmn_lm_free(attn_lstmn_lm *m);

/* The parameter count a configuration gives (without building it). */
int64_t attn_lstmn_lm_param_count(const attn_lstmn_lm_config *cfg);

/* Mean cross-entropy (nats per token) of targets I32 [B, T] given inputs
 * I32 [B, T] (ids in [0, V)); each row starts from a zero state. Dropout in
 * training mode. Errors: those of the ops (an id outside [0, V) is
 * ATTN_ERR_INVALID_ARG naming it). */
attn_tensor *attn_lstmn_lm_loss(attn_ctx *ctx, const attn_lstmn_lm *m, attn_tensor *inputs,
                                attn_tensor *targets);

/* The LSTMN's attention over one sequence ids I32 [1, T]: weights
 * [T, T + 1] (caller-owned, T (T + 1) floats): row t is step t's softmax over
 * the memory slots 0 .. t (slot 0 the zero initial state, slot i the state
 * after reading ids[i - 1]), zeros beyond. Runs the forward on ctx with
 * gradients enabled (the context's settings are restored; dropout off).
 * Errors: ATTN_ERR_INVALID_ARG (an LSTM model, bad ids), those of the ops. */
attn_status attn_lstmn_lm_attention(attn_ctx *ctx, const attn_lstmn_lm *m, attn_tensor *ids,
                                    float *weights);

#ifdef __cplusplus
}
#endif
#endif
