/* attn/rnn_cell.h: the fused recurrent cells (graph ops GRU_CELL and
 * LSTM_CELL): ONE time step of a GRU or an LSTM, given the input projection
 * gx already computed, numerically compatible with torch.nn.GRUCell /
 * torch.nn.LSTMCell. The layers built on them are in rnn.h. Derivations:
 * docs/ops.md, "Recurrent cells".
 *
 * Dimension legend (see tensor.h): B batch, T time steps, H hidden size.
 * Errors follow ops.h: graph functions return NULL and keep the status and a
 * message naming the function, the shapes and what was expected in the
 * context (attn_ctx_status / attn_ctx_error) and in attn_last_error().
 */
#ifndef ATTN_RNN_CELL_H
#define ATTN_RNN_CELL_H

#include <stdint.h>

#include "context.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One GRU step, torch.nn.GRUCell's formula with the input projection given:
 *   gx   [B, 3H] = x W_ih^T + b_ih, gate blocks r | z | n (torch's order)
 *   h    [B, H]  the previous state
 *   w_hh [3H, H], b_hh [3H] or NULL (no recurrent bias)
 *   mask I32 [B] or NULL: rows with mask[b] == 0 are frozen (h'[b] = h[b],
 *        no gradient to gx, w_hh, b_hh from that row); NULL = all rows run.
 * -> h' [B, H]:
 *   r = sigma(gx_r + W_hr h + b_hr),  z = sigma(gx_z + W_hz h + b_hz),
 *   n = tanh(gx_n + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h.
 * Errors: ATTN_ERR_SHAPE, ATTN_ERR_DTYPE (mask must be I32, the rest F32),
 * ATTN_ERR_INVALID_ARG (NULL input), ATTN_ERR_OOM. */
attn_tensor *attn_gru_cell(attn_ctx *ctx, attn_tensor *gx, attn_tensor *h, attn_tensor *w_hh,
                           attn_tensor *b_hh, attn_tensor *mask);

/* One LSTM step, torch.nn.LSTMCell's formula with the input projection given:
 *   gx [B, 4H] = x W_ih^T + b_ih, gate blocks i | f | g | o (torch's order),
 *   h, c [B, H], w_hh [4H, H], b_hh [4H] or NULL, mask as attn_gru_cell.
 * -> h' [B, H]; *c_out (when c_out is not NULL) receives c' [B, H]:
 *   i, f, o = sigma(gx_* + W_h* h + b_h*),  g = tanh(gx_g + W_hg h + b_hg),
 *   c' = f * c + i * g,  h' = o * tanh(c').
 * h' and c' are views of one [2, B, H] result (both carry gradients).
 * Errors as attn_gru_cell; on error *c_out is NULL. */
attn_tensor *attn_lstm_cell(attn_ctx *ctx, attn_tensor *gx, attn_tensor *h, attn_tensor *c,
                            attn_tensor *w_hh, attn_tensor *b_hh, attn_tensor *mask,
                            attn_tensor **c_out);

/* The same cells reading step t of a whole time-major input projection
 * gx_seq [T, B, 3H] (GRU) or [T, B, 4H] (LSTM), 0 <= t < T: identical to
 * calling attn_gru_cell / attn_lstm_cell on the [B, G*H] block t, without a
 * view per step. The gradient of the block is added straight into
 * gx_seq's gradient. This is what attn_rnn_forward runs; gx_seq should be
 * contiguous (a strided one is copied at every call). Errors as the cells,
 * plus ATTN_ERR_INVALID_ARG for t outside [0, T). */
attn_tensor *attn_gru_cell_at(attn_ctx *ctx, attn_tensor *gx_seq, int64_t t, attn_tensor *h,
                              attn_tensor *w_hh, attn_tensor *b_hh, attn_tensor *mask);
attn_tensor *attn_lstm_cell_at(attn_ctx *ctx, attn_tensor *gx_seq, int64_t t, attn_tensor *h,
                               attn_tensor *c, attn_tensor *w_hh, attn_tensor *b_hh,
                               attn_tensor *mask, attn_tensor **c_out);

#ifdef __cplusplus
}
#endif
#endif
