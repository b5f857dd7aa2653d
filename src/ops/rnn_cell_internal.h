/* rnn_cell_internal.h: private entry points of the recurrent cells
 * (rnn_cell.c) for the layers above (src/nn/rnn.c, src/models/seq2seq.c).
 */
#ifndef ATTN_RNN_CELL_INTERNAL_H
#define ATTN_RNN_CELL_INTERNAL_H

#include "../core/internal.h"

/* attn_gru_cell_at / attn_lstm_cell_at with the gate inputs of step t looked
 * up instead of stored: row b's gx is row ids[t, b] of table P [V, G*H]
 * (ids I32 [T, B], values in [0, V), 0 <= t < T), plus row b of x2 [B, G*H]
 * when x2 is not NULL. The same values as the cell on attn_embedding(P, ids)
 * row block t (+ x2 through attn_add); the gradient of each unfrozen row is
 * added into its row of P's gradient (rows in order, one thread) and into
 * x2's. Errors as the cells, plus ATTN_ERR_INVALID_ARG for an id outside
 * [0, V). */
attn_tensor *attn__gru_cell_lookup(attn_ctx *ctx, attn_tensor *table, attn_tensor *ids, int64_t t,
                                   attn_tensor *x2, attn_tensor *h, attn_tensor *w_hh,
                                   attn_tensor *b_hh, attn_tensor *mask);
attn_tensor *attn__lstm_cell_lookup(attn_ctx *ctx, attn_tensor *table, attn_tensor *ids, int64_t t,
                                    attn_tensor *x2, attn_tensor *h, attn_tensor *c,
                                    attn_tensor *w_hh, attn_tensor *b_hh, attn_tensor *mask,
                                    attn_tensor **c_out);

#endif
