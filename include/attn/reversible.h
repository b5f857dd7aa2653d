/* attn/reversible.h: reversible residual layers (Gomez et al. 2017, as the
 * Reformer, Kitaev et al. 2020) and the chunked application of a
 * position-wise function. docs/reformer.md has the math.
 *
 * A layer maps (X1, X2) to
 *   Y1 = X1 + F(X2),   Y2 = X2 + G(Y1)
 * (the Reformer: F the attention, G the feed-forward), and its inputs are
 * recomputed from its outputs:
 *   X2 = Y2 - G(Y1),   X1 = Y1 - F(X2).
 * attn_rev_forward runs the stack without recording anything on the tape
 * and keeps only the current (Y1, Y2): the activation memory is one
 * layer's temporaries, whatever the depth. attn_rev_backward walks the
 * layers from the top: for each it recomputes G(Y1) and F(X2) on a tape of
 * its own (the dropout masks replayed from the RNG counters the forward
 * recorded), backpropagates through them, recovers (X1, X2) and the input
 * gradients, and frees the layer's arena memory before the next:
 *   dY1' = dY1 + (dG/dY1)^T dY2,   dX1 = dY1',   dX2 = dY2 + (dF/dX2)^T dY1'
 * and the parameters' gradients accumulate as in a normal backward.
 *
 * F and G are the caller's functions of one tensor (any graph ops, their
 * parameters in an attn_params store so that they outlive the arena);
 * their output has the input's shape. They must be deterministic given the
 * context's RNG counter (dropout is; anything drawn from elsewhere must be
 * replayed by the caller, e.g. LSH rotations from a fixed seed).
 *
 * The usual use: (Y1, Y2) = attn_rev_forward(X, X); a head on [Y1; Y2]
 * recorded on the tape with Y1, Y2 as leaves; attn_backward of the loss;
 * then attn_rev_backward with Y1->grad, Y2->grad. attn_rev_backward leaves
 * the tape recorded before it untouched.
 *
 * Errors: the status (message in the context): ATTN_ERR_INVALID_ARG,
 * ATTN_ERR_SHAPE (an F or G output of another shape), ATTN_ERR_OOM, or the
 * error of F or G.
 */
#ifndef ATTN_REVERSIBLE_H
#define ATTN_REVERSIBLE_H

#include <stdint.h>

#include "context.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* F or G of layer `layer`: a graph function of x with x's shape. */
typedef attn_tensor *(*attn_rev_fn)(attn_ctx *ctx, void *user, int layer, attn_tensor *x);

typedef struct attn_rev_stack {
    int n_layers;
    attn_rev_fn f, g;
    void *user;
    uint64_t *offsets; /* [2 n_layers]: the RNG counter before F and before G of each layer
                          (written by attn_rev_forward, read by attn_rev_backward) */
} attn_rev_stack;

/* Errors: ATTN_ERR_INVALID_ARG (n_layers < 1, f or g NULL), ATTN_ERR_OOM. */
attn_status attn_rev_stack_init(attn_rev_stack *s, int n_layers, attn_rev_fn f, attn_rev_fn g,
                                void *user);
void attn_rev_stack_free(attn_rev_stack *s);

/* (y1, y2) of the stack from x1, x2 (f32, the same shape): new arena tensors
 * that do not require gradients. Nothing is recorded on the tape. */
attn_status attn_rev_forward(attn_ctx *ctx, attn_rev_stack *s, attn_tensor *x1, attn_tensor *x2,
                             attn_tensor **y1, attn_tensor **y2);

/* From the forward's outputs y1, y2 and their gradients dy1, dy2 (numel
 * floats each): accumulates the parameters' gradients and writes the input
 * gradients into dx1, dx2 (numel floats each, or NULL) and, when x1r / x2r
 * are non-NULL, the recomputed inputs. y1 and y2 are left as they were.
 * Needs gradients enabled. */
attn_status attn_rev_backward(attn_ctx *ctx, attn_rev_stack *s, attn_tensor *y1, attn_tensor *y2,
                              const float *dy1, const float *dy2, float *dx1, float *dx2,
                              float *x1r, float *x2r);

/* fn applied to consecutive chunks of `chunk` positions along `axis` of x
 * (the last chunk may be shorter), the results concatenated along it: the
 * chunked feed-forward of the Reformer, equal to fn(x) for a position-wise
 * fn. Recorded on the tape like any graph function. NULL on error. */
attn_tensor *attn_chunked_apply(attn_ctx *ctx, attn_tensor *x, int axis, int64_t chunk,
                                attn_rev_fn fn, void *user, int layer);

#ifdef __cplusplus
}
#endif
#endif
