/* attn/rnn.h: multi-layer, bidirectional recurrent layers (GRU, LSTM) with backpropagation through time, numerically and by
 * name compatible with torch.nn.GRU / torch.nn.LSTM.
 *
 * Two levels:
 *   - the fused cells attn_gru_cell / attn_lstm_cell (rnn_cell.h; graph ops
 *     GRU_CELL and LSTM_CELL): ONE time step, given the input projection gx already
 *     computed. A layer computes gx = x W_ih^T + b_ih for every time step
 *     with one large product and runs only h W_hh^T inside the recurrence.
 *   - attn_rnn: the layer (parameters named as torch's state_dict), its
 *     sequence forward (variable lengths as pack_padded_sequence gives them)
 *     and a single-step API for decoders.
 * Gradients flow through time automatically: every step is recorded on the
 * context's tape like any other op. Derivations: docs/ops.md, "Recurrent
 * cells".
 *
 * Dimension legend (see tensor.h): B batch, T time steps, H hidden size,
 * In input size, L layers, D directions (1, or 2 if bidirectional).
 * Errors follow ops.h: graph functions return NULL and keep the status and a
 * message naming the function, the shapes and what was expected in the
 * context (attn_ctx_status / attn_ctx_error) and in attn_last_error().
 * Threads: results repeat bitwise for a given thread count; with OpenBLAS
 * the recurrent products (and so everything after them) may differ in the
 * last bits between thread counts (see design.md).
 */
#ifndef ATTN_RNN_H
#define ATTN_RNN_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "rnn_cell.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- layers ------------------------------------------------------------- */

#define ATTN_RNN_MAX_LAYERS 8

typedef enum attn_rnn_cell { ATTN_RNN_GRU = 0, ATTN_RNN_LSTM = 1 } attn_rnn_cell;

typedef struct attn_rnn_config {
    attn_rnn_cell cell;
    int64_t input_size;  /* In >= 1 */
    int64_t hidden_size; /* H >= 1 */
    int num_layers;      /* L in [1, ATTN_RNN_MAX_LAYERS] */
    int bidirectional;   /* 0: D = 1; nonzero: D = 2 */
    float dropout;       /* in [0, 1): inverted dropout on the output of every
                            layer but the last, in training mode only
                            (torch's `dropout`) */
    int no_bias;         /* nonzero: no bias_ih / bias_hh (torch's bias=False) */
} attn_rnn_config;

/* The layer: its configuration and pointers to its parameters, which the
 * attn_params store given to attn_rnn_init owns. Indexed [layer][direction]
 * (direction 1 = reverse, only when bidirectional). With G = 3 (GRU) or 4
 * (LSTM) and In_l = In for l = 0, D*H above:
 *   w_ih [G*H, In_l], w_hh [G*H, H], b_ih and b_hh [G*H] (NULL with no_bias).
 * The struct is a plain value: copy it freely; it stays valid as long as the
 * store does. */
typedef struct attn_rnn {
    attn_rnn_config cfg;
    attn_tensor *w_ih[ATTN_RNN_MAX_LAYERS][2];
    attn_tensor *w_hh[ATTN_RNN_MAX_LAYERS][2];
    attn_tensor *b_ih[ATTN_RNN_MAX_LAYERS][2];
    attn_tensor *b_hh[ATTN_RNN_MAX_LAYERS][2];
} attn_rnn;

/* Adds the layer's parameters to `ps` under torch's names, prefixed by
 * `prefix` (NULL or "" for none; e.g. "encoder.rnn."):
 *   <prefix>weight_ih_l<k>[_reverse], weight_hh_l<k>[_reverse],
 *   bias_ih_l<k>[_reverse], bias_hh_l<k>[_reverse]
 * in torch's order (layer by layer, forward direction first), so
 * attn_params_find and safetensors files use the same names as
 * module.state_dict(). With rng non-NULL every parameter is drawn uniform in
 * [-1/sqrt(H), 1/sqrt(H)] (torch's reset_parameters); with rng NULL they stay
 * zero (to be loaded). Errors: ATTN_ERR_INVALID_ARG (a bad configuration, a
 * name already in the store or longer than the store allows), ATTN_ERR_OOM;
 * on error the parameters added so far stay in the store and *rnn is
 * zeroed. */
attn_status attn_rnn_init(attn_rnn *rnn, attn_params *ps, const char *prefix,
                          const attn_rnn_config *cfg, attn_rng *rng);

/* Runs the layer over a batch of sequences.
 *   x       [B, T, In] (batch first)
 *   lengths I32 [B] with values in [0, T], or NULL (every sequence has T
 *           steps). Row b uses steps 0 .. lengths[b]-1, exactly as
 *           torch.nn.utils.rnn.pack_padded_sequence(x, lengths,
 *           batch_first=True, enforce_sorted=False) would: the forward
 *           direction stops at step lengths[b]-1, the reverse direction
 *           starts there. Padded steps leave the state of their row unchanged
 *           (the cells' mask), so a length of 0 gives h_n = h0 and zero
 *           outputs (torch refuses length 0).
 *   h0      [L*D, B, H] initial states (index l*D + d, torch's layout), or
 *           NULL for zeros; c0 the same for LSTM (must be NULL for GRU).
 * -> outputs [B, T, D*H]: the top layer's states, forward direction in
 *    [..., 0:H], reverse in [..., H:2H]; zeros at padded steps.
 *    *h_n (when h_n is not NULL) receives [L*D, B, H], the final state of
 *    every layer and direction (each row at its own last valid step for the
 *    forward direction, at step 0 for the reverse one); *c_n the same for
 *    LSTM (must be NULL for GRU).
 * Between layers, dropout of cfg.dropout applies in training mode.
 * Cost: per layer and direction one [B*T, In_l] x [In_l, G*H] product, then T
 * cell steps of one [B, H] x [H, G*H] product each.
 * Errors: ATTN_ERR_SHAPE, ATTN_ERR_DTYPE, ATTN_ERR_INVALID_ARG (a length
 * outside [0, T], c0/c_n given for a GRU, a bad rnn), ATTN_ERR_OOM. */
attn_tensor *attn_rnn_forward(attn_ctx *ctx, const attn_rnn *rnn, attn_tensor *x,
                              attn_tensor *lengths, attn_tensor *h0, attn_tensor *c0,
                              attn_tensor **h_n, attn_tensor **c_n);

/* One time step of a unidirectional layer, for decoders that feed their own
 * input at each step:
 *   x_t [B, In]; h_in (and c_in for LSTM): NULL for zeros, or an array of L
 *   tensors [B, H] (layer 0 first).
 * -> the top layer's new state [B, H]; h_out (and c_out for LSTM), arrays of
 *    L entries, receive every layer's new state (h_out may be NULL when
 *    L = 1; c_out may be NULL when L = 1; both must be NULL for GRU's c).
 * Dropout between layers applies as in attn_rnn_forward. Running
 * attn_rnn_step over t = 0..T-1 gives the states of attn_rnn_forward.
 * Errors as attn_rnn_forward; ATTN_ERR_INVALID_ARG for a bidirectional rnn. */
attn_tensor *attn_rnn_step(attn_ctx *ctx, const attn_rnn *rnn, attn_tensor *x_t,
                           attn_tensor *const *h_in, attn_tensor *const *c_in, attn_tensor **h_out,
                           attn_tensor **c_out);

#ifdef __cplusplus
}
#endif
#endif
