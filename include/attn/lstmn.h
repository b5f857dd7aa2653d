/* attn/lstmn.h: the Long Short-Term Memory-Network (Cheng, Dong and Lapata
 * 2016, "Long Short-Term Memory-Networks for Machine Reading"): an LSTM whose
 * single memory cell is replaced by a tape of every earlier hidden and cell
 * state, read by attention at each step (intra-attention). Graph op LSTMN,
 * run over a whole batch of sequences; the math and the backward are derived
 * in docs/lstmn.md.
 *
 * Dimension legend (see tensor.h): B batch, T time steps, H hidden size,
 * A attention size.
 *
 * Errors follow ops.h: graph functions return NULL and keep the status and a
 * message naming the function, the shapes and what was expected in the
 * context (attn_ctx_status / attn_ctx_error) and in attn_last_error().
 */
#ifndef ATTN_LSTMN_H
#define ATTN_LSTMN_H

#include <stdint.h>

#include "context.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The LSTMN layer over a batch of sequences, with the input projections
 * given (the caller computes them for all steps with attn_linear):
 *   gx      [B, T, 4H]  W_x x_t + b for the gates, blocks i | f | g | o
 *                       (torch's LSTM order; g is the candidate c^)
 *   ax      [B, T, A]   W_x' x_t (+ bias) for the attention score
 *   h0, c0  [B, H]      the initial state, memory slot 0 of the tape; NULL
 *                       for zeros (no gradient then)
 *   w_hh    [4H, H]     the gates' weights on the adaptive summary h~_t
 *   w_mem   [A, H]      W_h: the score's weights on a memory h_i
 *   v       [A]         the score vector
 *   w_sum   [A, H]      W_h~: the score's weights on the previous summary
 *                       h~_{t-1} (h~_0 = h0), or NULL to drop that term
 *   lengths I32 [B] in [0, T], or NULL (every row has T steps)
 * Step t of row b (t < lengths[b]) reads the tape of its t + 1 memories
 * (h_0, c_0) ... (h_t, c_t) (the initial state included):
 *   a_i  = v . tanh(W_h h_i + ax_t + W_h~ h~_{t-1}),  s = softmax(a),
 *   h~_t = sum_i s_i h_i,  c~_t = sum_i s_i c_i,
 *   [i, f, g, o] = [sigma, sigma, tanh, sigma](gx_t + W_hh h~_t),
 *   c_{t+1} = f * c~_t + i * g,  h_{t+1} = o * tanh(c_{t+1}),
 * and appends (h_{t+1}, c_{t+1}) to the tape.
 * -> [B, T, H]: h_{t+1} at step t, zeros at padded steps (t >= lengths[b]).
 * Cost per row: O(T^2 A) for the scores, O(T (4H + 2A) H) for the products;
 * the backward adds into every earlier h and c (docs/lstmn.md).
 * Errors: ATTN_ERR_SHAPE, ATTN_ERR_DTYPE (lengths I32, the rest F32),
 * ATTN_ERR_INVALID_ARG (NULL required input, a length outside [0, T]),
 * ATTN_ERR_OOM. */
attn_tensor *attn_lstmn(attn_ctx *ctx, attn_tensor *gx, attn_tensor *ax, attn_tensor *h0,
                        attn_tensor *c0, attn_tensor *w_hh, attn_tensor *w_mem, attn_tensor *v,
                        attn_tensor *w_sum, attn_tensor *lengths);

/* The attention weights of `out`, a result of attn_lstmn recorded on ctx's
 * tape (gradients enabled and an input that requires them: the forward keeps
 * the weights with what backward needs): weights[(b * T + t) * (T + 1) + i]
 * = s_{t,i}, the weight step t of row b gave memory slot i (slot 0 the
 * initial state, slot i >= 1 the state after step i - 1), for i <= t; 0 for
 * i > t and for padded steps. n: capacity of weights in floats, B T (T + 1)
 * needed. Errors: ATTN_ERR_INVALID_ARG (NULL argument, out not an attn_lstmn
 * result on the tape, naming its shape), ATTN_ERR_SHAPE (n too small). */
attn_status attn_lstmn_weights(const attn_ctx *ctx, const attn_tensor *out, float *weights,
                               int64_t n);

#ifdef __cplusplus
}
#endif
#endif
