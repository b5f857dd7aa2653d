/* attn/conv.h: convolution-side graph ops for images and sequences:
 * conv2d, conv1d (with causal left padding), transposed conv2d, max and
 * average pooling, batch normalisation and spectral normalisation.
 *
 * Conventions of ops.h (NULL on error with the message in the context,
 * strided inputs copied, every op has a backward). Layout is NCHW as in
 * PyTorch: N batch, C channels, H height, W width, T sequence length. The
 * math and every backward derivation: docs/conv.md.
 *
 * Options structs: a zero-initialised struct ({0}) or a NULL pointer means
 * PyTorch's defaults (stride 1, padding 0, dilation 1, groups 1), i.e. a 0
 * in a stride, dilation or groups field reads as 1.
 *
 * Errors: ATTN_ERR_INVALID_ARG for a NULL input or a bad attribute
 * (negative padding, channels not divisible by groups, an output of size
 * < 1); ATTN_ERR_SHAPE for inputs whose shapes do not fit; ATTN_ERR_DTYPE for
 * non-f32 inputs; ATTN_ERR_OOM when the arena is full.
 *
 * Threads and determinism: the products go through the project's GEMM
 * (OpenBLAS or the built-in kernel) with the context's thread count; for a
 * given thread count results are bitwise reproducible. Weight and bias
 * gradients are summed over the batch in batch order.
 */
#ifndef ATTN_CONV_H
#define ATTN_CONV_H

#include <stdint.h>

#include "context.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options of conv2d and conv_transpose2d; index 0 is the height, 1 the
 * width. output_padding is read by conv_transpose2d only (it must be
 * smaller than the stride or the dilation, as in torch). */
typedef struct attn_conv2d_opts {
    int64_t stride[2], padding[2], dilation[2];
    int64_t groups;
    int64_t output_padding[2];
} attn_conv2d_opts;

/* y = conv2d(x, w) + b, as torch.nn.functional.conv2d (cross-correlation).
 *   x [N, Cin, H, W], w [Cout, Cin/groups, KH, KW], b [Cout] or NULL
 *   -> y [N, Cout, OH, OW],
 *   OH = (H + 2 padding[0] - dilation[0] (KH - 1) - 1) / stride[0] + 1 (floor),
 *   OW likewise. Cin and Cout must be divisible by groups (groups = Cin =
 * Cout is a depthwise convolution). Zero padding. Fast path: im2col and one
 * GEMM per chunk of images and group, with a workspace of at most 4 MiB (more
 * only if one image needs more) allocated in the arena with the output;
 * 1x1 kernels with stride 1 and no padding read x directly. The scalar
 * reference is the direct 7-loop sum in double. */
attn_tensor *attn_conv2d(attn_ctx *ctx, attn_tensor *x, attn_tensor *w, attn_tensor *b,
                         const attn_conv2d_opts *opts);

/* Options of conv1d. With causal set, the sequence is padded on the left
 * only, by dilation (K - 1), and `padding` must be 0: output t sees inputs
 * t' <= t (WaveNet), and with stride 1 the output length is T. */
typedef struct attn_conv1d_opts {
    int64_t stride, padding, dilation, groups;
    int causal;
} attn_conv1d_opts;

/* y = conv1d(x, w) + b, as torch.nn.functional.conv1d (after
 * F.pad(x, (dilation (K-1), 0)) when causal).
 *   x [N, Cin, T], w [Cout, Cin/groups, K], b [Cout] or NULL -> y [N, Cout, OT],
 *   OT = (T + pad_left + pad_right - dilation (K - 1) - 1) / stride + 1, with
 *   pad_left = pad_right = padding, or pad_left = dilation (K - 1),
 *   pad_right = 0 when causal. */
attn_tensor *attn_conv1d(attn_ctx *ctx, attn_tensor *x, attn_tensor *w, attn_tensor *b,
                         const attn_conv1d_opts *opts);

/* y = conv_transpose2d(x, w) + b, as torch.nn.functional.conv_transpose2d
 * (the gradient of conv2d with respect to its input, as an op).
 *   x [N, Cin, H, W], w [Cin, Cout/groups, KH, KW], b [Cout] or NULL
 *   -> y [N, Cout, OH, OW],
 *   OH = (H - 1) stride[0] - 2 padding[0] + dilation[0] (KH - 1)
 *        + output_padding[0] + 1, OW likewise. */
attn_tensor *attn_conv_transpose2d(attn_ctx *ctx, attn_tensor *x, attn_tensor *w, attn_tensor *b,
                                   const attn_conv2d_opts *opts);

/* Options of the 2-D poolings (required: NULL is ATTN_ERR_INVALID_ARG).
 * kernel must be >= 1; stride 0 means the
 * kernel size (torch's default); padding at most kernel / 2 (torch's rule).
 * Floor mode only (torch's ceil_mode = False). exclude_pad (average pooling
 * only): 0 divides by the whole window, padding included (torch's default
 * count_include_pad = True); 1 by the number of input elements in it. */
typedef struct attn_pool2d_opts {
    int64_t kernel[2], stride[2], padding[2];
    int exclude_pad;
} attn_pool2d_opts;

/* y = max_pool2d(x), as torch.nn.functional.max_pool2d (padding is -inf).
 *   x [N, C, H, W] -> y [N, C, OH, OW], OH = (H + 2 padding[0] - kernel[0]) /
 *   stride[0] + 1. Backward routes each output's gradient to the element
 * that was the maximum; among equal maxima the first in row-major window
 * order wins (as torch). A NaN in the window is the maximum (propagated).
 * If argmax is not NULL it receives the I32 [N, C, OH, OW] flat index
 * (h W + w) of each maximum in its plane, as torch's return_indices. */
attn_tensor *attn_max_pool2d(attn_ctx *ctx, attn_tensor *x, const attn_pool2d_opts *opts,
                             attn_tensor **argmax);

/* y = avg_pool2d(x), as torch.nn.functional.avg_pool2d (count_include_pad
 * True unless opts->exclude_pad). Shapes as max_pool2d. */
attn_tensor *attn_avg_pool2d(attn_ctx *ctx, attn_tensor *x, const attn_pool2d_opts *opts);

/* Batch normalisation over the channel axis, as
 * torch.nn.functional.batch_norm.
 *   x [N, C], [N, C, L] or [N, C, H, W]; gamma, beta [C] or NULL (1 and 0);
 *   running_mean, running_var [C] contiguous f32 or both NULL -> y like x.
 * Per channel c over its M = numel(x) / C values:
 *   y = (x - mean_c) / sqrt(var_c + eps) gamma_c + beta_c.
 * In training mode (attn_ctx_set_training, the default) and whenever the
 * running buffers are NULL, mean_c and var_c are the batch's (biased
 * variance); then, if the buffers are given, they are updated in place as
 * torch does: running = (1 - momentum) running + momentum stat, with the
 * unbiased variance var_c M / (M - 1) (torch's default momentum is 0.1).
 * In evaluation mode with buffers, the running statistics are used and
 * nothing is written. The buffers belong to the caller (not graph inputs:
 * they receive no gradient). Gradients flow to x, gamma and beta in both
 * modes (through the batch statistics in training mode).
 * Errors (besides the common ones): ATTN_ERR_INVALID_ARG for one running
 * buffer without the other, a strided buffer, eps < 0, momentum outside
 * [0, 1], or training mode with M < 2 (with or without buffers, as torch). */
attn_tensor *attn_batchnorm(attn_ctx *ctx, attn_tensor *x, attn_tensor *gamma, attn_tensor *beta,
                            attn_tensor *running_mean, attn_tensor *running_var, float momentum,
                            float eps);

/* Spectral normalisation of a weight, as
 * torch.nn.utils.parametrizations.spectral_norm(module, n_power_iterations=1,
 * eps, dim) computes the normalised weight.
 *   w [A, B, ...] (rank >= 2), read as a matrix W [O, K]: with dim 0 (conv
 *   and linear weights) W = w.reshape(A, -1), O = A; with dim 1 (torch's
 *   default for transposed-conv weights [Cin, Cout/G, ...]) W = w with its
 *   first two dimensions swapped, reshaped to [B, -1], O = B;
 *   u [O] and v [K = numel(w) / O]: the power iteration's vectors,
 *   contiguous f32, owned by the caller and kept across steps (initialise
 *   them as torch does: random normal, normalised, then 15 iterations, e.g.
 *   15 calls in training mode) -> y like w.
 * In training mode (attn_ctx_set_training) one power iteration runs first
 * and updates u and v in place: u = normalize(W v), then
 * v = normalize(W^T u), normalize(a) = a / max(|a|, eps) (torch's default
 * eps is 1e-12). In evaluation mode u and v are only read. Then
 *   sigma = u^T W v,  y = w / sigma.
 * The gradient flows to w through W and sigma with u and v constants (as
 * torch, which detaches them); u and v receive none.
 * Errors (besides the common ones): ATTN_ERR_SHAPE for u or v of the wrong
 * length; ATTN_ERR_INVALID_ARG for dim other than 0 or 1, strided u or v,
 * or eps <= 0. */
attn_tensor *attn_spectral_norm(attn_ctx *ctx, attn_tensor *w, attn_tensor *u, attn_tensor *v,
                                int dim, float eps);

#ifdef __cplusplus
}
#endif

#endif
