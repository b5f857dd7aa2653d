/* attn/ops.h: the graph ops (forward now, backward recorded on the tape).
 *
 * Conventions shared by every function here:
 *   - The first argument is the context; inputs follow, then attributes.
 *   - The result is a new arena tensor, or NULL on error. The error (status
 *     and a message naming the op, the shapes and what was expected) is kept
 *     in the context (attn_ctx_status / attn_ctx_error) and in
 *     attn_last_error(). A NULL input makes the op return NULL at once, so
 *     calls may be chained and checked once.
 *   - Float inputs are ATTN_F32; ids and targets are ATTN_I32.
 *   - Strided (non-contiguous) inputs are accepted; the op makes a contiguous
 *     copy first, and the gradient flows back through it.
 *   - Every op has a backward (see docs/ops.md for each derivation). Integer
 *     inputs never receive gradients.
 *   - Broadcasting (add/sub/mul/div, softmax masks) follows NumPy/PyTorch:
 *     shapes are aligned on the right; a dimension of 1 stretches.
 * Dimension legend: see tensor.h.
 */
#ifndef ATTN_OPS_H
#define ATTN_OPS_H

#include <stdint.h>

#include "context.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The reduction axis value that means "all axes" (result is a scalar). */
#define ATTN_ALL_AXES 127

/* ---- views (no copy; the result shares the input's storage) ---------- */

/* Same elements, new shape (numel must match; one entry may be -1 to be
 * inferred). A strided input is made contiguous first. */
attn_tensor *attn_reshape(attn_ctx *ctx, attn_tensor *x, int ndim, const int64_t *shape);

/* Reorders dimensions: result dim i is input dim perm[i]. */
attn_tensor *attn_permute(attn_ctx *ctx, attn_tensor *x, const int *perm);

/* Swaps two dimensions (negative indices count from the end). */
attn_tensor *attn_transpose(attn_ctx *ctx, attn_tensor *x, int dim0, int dim1);

/* Elements [start, start+len) along `axis`. */
attn_tensor *attn_slice(attn_ctx *ctx, attn_tensor *x, int axis, int64_t start, int64_t len);

/* Splits x along `axis` into n parts of sizes[i] (summing to the axis size);
 * writes the n views to outs. Returns 0 on success, -1 on error. */
int attn_split(attn_ctx *ctx, attn_tensor *x, int axis, int n, const int64_t *sizes,
               attn_tensor **outs);

/* A contiguous copy (returns x itself when already contiguous). */
attn_tensor *attn_contiguous(attn_ctx *ctx, attn_tensor *x);

/* Joins n tensors along `axis`; all other dimensions must agree. */
attn_tensor *attn_concat(attn_ctx *ctx, attn_tensor *const *xs, int n, int axis);

/* ---- products ------------------------------------------------------- */

/* a [..., M, K] @ b [K, N] -> [..., M, N] (the leading dims of a are rows). */
attn_tensor *attn_matmul(attn_ctx *ctx, attn_tensor *a, attn_tensor *b);

/* Batched: a [Bt, M, K] (or [Bt, K, M] if trans_a), b [Bt, K, N] (or
 * [Bt, N, K] if trans_b) -> [Bt, M, N]. Bt may be several leading dims
 * (up to 2, e.g. [B, H]); they must be equal in a and b. */
attn_tensor *attn_bmm(attn_ctx *ctx, attn_tensor *a, attn_tensor *b, int trans_a, int trans_b);

/* y = x W^T + b, as torch.nn.functional.linear: x [..., In], w [Out, In],
 * b [Out] or NULL -> [..., Out]. */
attn_tensor *attn_linear(attn_ctx *ctx, attn_tensor *x, attn_tensor *w, attn_tensor *b);

/* GELU(x W^T + b) with the exact GELU (torch.nn.functional.gelu, approximate
 * "none"): the same values as attn_gelu(attn_linear(...), 0), bit for bit,
 * in one op. With gradients disabled it keeps no intermediate and, under
 * ATTN_PRECISION_BF16 on AMX, adds the bias and applies the GELU to each
 * block of the product while it is in cache. */
attn_tensor *attn_linear_gelu(attn_ctx *ctx, attn_tensor *x, attn_tensor *w, attn_tensor *b);

/* ---- elementwise ------------------------------------------------------ */

attn_tensor *attn_add(attn_ctx *ctx, attn_tensor *a, attn_tensor *b); /* broadcasting */
attn_tensor *attn_sub(attn_ctx *ctx, attn_tensor *a, attn_tensor *b);
attn_tensor *attn_mul(attn_ctx *ctx, attn_tensor *a, attn_tensor *b);
attn_tensor *attn_div(attn_ctx *ctx, attn_tensor *a, attn_tensor *b);
attn_tensor *attn_scale(attn_ctx *ctx, attn_tensor *x, float s);           /* s * x */
attn_tensor *attn_bias_add(attn_ctx *ctx, attn_tensor *x, attn_tensor *b); /* x [..., C] + b [C] */
attn_tensor *attn_exp(attn_ctx *ctx, attn_tensor *x);
attn_tensor *attn_log(attn_ctx *ctx, attn_tensor *x); /* log of x <= 0 gives -inf/NaN as C does */
attn_tensor *attn_tanh(attn_ctx *ctx, attn_tensor *x);
attn_tensor *attn_sigmoid(attn_ctx *ctx, attn_tensor *x);
/* max(x, 0); a NaN stays NaN and passes its gradient, as torch.relu. */
attn_tensor *attn_relu(attn_ctx *ctx, attn_tensor *x);
/* GELU: exact 0.5 x (1 + erf(x / sqrt 2)); tanh_approx = 1 selects
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as torch's approximate="tanh";
 * any other value fails with ATTN_ERR_INVALID_ARG. */
attn_tensor *attn_gelu(attn_ctx *ctx, attn_tensor *x, int tanh_approx);

/* ---- reductions ------------------------------------------------------- */

/* Sum / mean over `axis` (negative counts from the end, ATTN_ALL_AXES for a
 * scalar result); keepdim keeps the reduced axis with size 1. */
attn_tensor *attn_sum(attn_ctx *ctx, attn_tensor *x, int axis, int keepdim);
attn_tensor *attn_mean(attn_ctx *ctx, attn_tensor *x, int axis, int keepdim);

/* ---- normalisation and probabilities ---------------------------------- */

/* Softmax over the last axis of x + mask. mask is NULL or an additive f32
 * mask broadcastable to x (use -INFINITY to mask). A row whose entries are
 * all -inf gives zeros (and a zero gradient), never NaN. */
attn_tensor *attn_softmax(attn_ctx *ctx, attn_tensor *x, attn_tensor *mask);
attn_tensor *attn_log_softmax(attn_ctx *ctx, attn_tensor *x, attn_tensor *mask);

/* Mean cross-entropy, as torch.nn.functional.cross_entropy:
 * logits [N, V], targets I32 [N] -> scalar. Rows whose target equals
 * ignore_index are left out of the mean (all ignored: the loss is 0).
 * label_smoothing in [0, 1): the target distribution is
 * (1 - e) one_hot + e / V. A target outside [0, V) other than ignore_index is
 * an ATTN_ERR_INVALID_ARG naming the row. */
attn_tensor *attn_cross_entropy(attn_ctx *ctx, attn_tensor *logits, attn_tensor *targets,
                                int32_t ignore_index, float label_smoothing);

/* Layer normalisation over the last axis: x [..., C], gamma and beta [C]
 * (either may be NULL: no scale / no shift), biased variance, eps inside
 * the square root, as torch.nn.functional.layer_norm. */
attn_tensor *attn_layernorm(attn_ctx *ctx, attn_tensor *x, attn_tensor *gamma, attn_tensor *beta,
                            float eps);

/* ---- lookup and regularisation ----------------------------------------- */

/* Rows of weight [V, C] picked by ids I32 [...] -> [..., C]. An id outside
 * [0, V) is an ATTN_ERR_INVALID_ARG naming the position and value. */
attn_tensor *attn_embedding(attn_ctx *ctx, attn_tensor *weight, attn_tensor *ids);

/* Inverted dropout with probability p in [0, 1): in training mode each
 * element is zeroed with probability p and the rest scaled by 1/(1-p);
 * otherwise (or p == 0) x itself is returned. The mask comes from the
 * context's counter-based RNG (seed, offset) and is recomputed, not stored,
 * for backward. */
attn_tensor *attn_dropout(attn_ctx *ctx, attn_tensor *x, float p);

/* ---- fused attention scores ---------------------------------------------- */

/* The fused additive score (graph op ADDITIVE_SCORE), what the recurrent
 * attention's ATTN_SCORE_ADDITIVE (rnn_attention.h) runs on the projections
 * W_q q and W_h h:
 *   wq [B, T, A], wk [B, S, A], v [A] or [1, A] -> e [B, T, S],
 *   e[b,t,s] = sum_a v_a tanh(wq[b,t,a] + wk[b,s,a]).
 * The same value as linear(tanh(wq[:, :, None, :] + wk[:, None, :, :]), v)
 * without the [B, T, S, A] intermediates (backward recomputes the tanh), and
 * with a vectorised tanh (absolute error below 2e-7). Gradients reach wq, wk
 * and v; results are the same for any thread count.
 * Errors: ATTN_ERR_SHAPE, ATTN_ERR_DTYPE, ATTN_ERR_INVALID_ARG (NULL input),
 * ATTN_ERR_OOM. */
attn_tensor *attn_additive_score(attn_ctx *ctx, attn_tensor *wq, attn_tensor *wk, attn_tensor *v);

#ifdef __cplusplus
}
#endif
#endif
