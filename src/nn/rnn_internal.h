/* rnn_internal.h: private entry points of the recurrent layers (rnn.c) for
 * the layers above (src/models/seq2seq.c).
 */
#ifndef ATTN_RNN_INTERNAL_H
#define ATTN_RNN_INTERNAL_H

#include "../core/internal.h"
#include "attn/rnn.h"

/* attn_rnn_forward on x = attn_embedding(table, ids) (table [V, In] f32, ids
 * I32 [B, T] in [0, V)), computed the cheaper way round: layer 0's input
 * projection of every step is a row of the per-token table
 * P_d = table W_ih^T + b_ih [V, G*H] (one product of V rows per direction
 * instead of T*B rows), looked up by id. The same function of the inputs
 * (the products are summed in another order, so the last bits differ). For
 * inputs that go straight from an embedding into the layer (no dropout
 * between them). Errors as attn_rnn_forward (the ids' range is checked by
 * attn_embedding). */
attn_tensor *attn__rnn_forward_ids(attn_ctx *ctx, const attn_rnn *rnn, attn_tensor *table,
                                   attn_tensor *ids, attn_tensor *lengths, attn_tensor *h0,
                                   attn_tensor *c0, attn_tensor **h_n, attn_tensor **c_n);

#endif
