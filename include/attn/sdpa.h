/* sdpa.h: scaled dot-product attention, the reference graph op of the
 * Transformer family (graph op SDPA, src/ops/sdpa.c), and the basic
 * parameter-free self-attention built on it.
 *
 * Dimension legend (tensor.h): B batch, H query heads, Hkv key/value heads,
 * T queries, S keys, D head size of queries and keys, Dv head size of values.
 *
 *   out[b,h,t,:] = sum_s P[b,h,t,s] v[b,g,s,:],   g = h / (H / Hkv)
 *   P[b,h,t,:]   = softmax_s( scale * q[b,h,t,:] . k[b,g,s,:] + bias[b,h,t,s]
 *                            - alibi_slopes[h] |t + (S - T) - s| + M[b,h,t,s] )
 *
 * where M is 0 where key s is visible to query t and -inf where it is not:
 *   - causal: key s is visible to query t iff s <= t + (S - T). The causal
 *     diagonal is aligned bottom-right, so with T new queries and S - T keys
 *     already in a KV cache the last query sees every key (PyTorch's
 *     is_causal aligns top-left, which is the same when T == S);
 *   - window > 0: additionally s > t + (S - T) - window (a sliding window of
 *     `window` keys ending at the query's own position; with causal off the
 *     window is symmetric: |s - (t + S - T)| < window);
 *   - key_lengths: key s of batch b is visible iff s < key_lengths[b]
 *     (padding at the end of each key sequence);
 *   - sparse: key s is visible to query t of head h iff
 *     attn_sparse_visible(sparse, h, T, S, t, s) (sparse.h).
 * A query row with no visible key gives a zero output row and a zero row of
 * weights (not NaN), and no gradient flows through it.
 *
 * NaN is never taken for a mask: a NaN (or +inf) logit from q, k or bias
 * makes its row of weights and output NaN. Keys at or beyond key_lengths[b]
 * are never read, so padding may hold anything; a NaN or inf in v at any
 * other key reaches every row of its (b, kv head) that has a visible key
 * (0 * NaN in the product, as in PyTorch), while rows with no visible key
 * stay zero.
 *
 * Grouped-query attention: H % Hkv == 0; Hkv == H is multi-head attention,
 * Hkv == 1 multi-query attention. Gradients of the shared k, v heads sum
 * over the H / Hkv query heads of their group.
 *
 * This op is the clear reference: it materialises P [B,H,T,S] (saved for
 * backward). The fused flash-style kernel (O(T) memory) is a separate op
 * checked against this one.
 */
#ifndef ATTN_SDPA_H
#define ATTN_SDPA_H

#include <stdint.h>

#include "context.h"
#include "sparse.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_sdpa_opts {
    float scale;              /* 0: 1/sqrt(D) */
    int causal;               /* see above (bottom-right aligned) */
    int64_t window;           /* > 0: sliding window of this many keys; 0: none */
    attn_tensor *bias;        /* NULL or f32, broadcastable to [B,H,T,S] (a size-1 dim
                                 broadcasts; fewer dims align right); -inf masks;
                                 gets a gradient (summed over broadcast dims) when it
                                 requires one (learned relative biases) */
    attn_tensor *key_lengths; /* NULL or i32 [B], each in [0, S] */
    float dropout;            /* probability on P in training mode (inverted dropout,
                                 mask from the context RNG, recomputed in backward);
                                 must be in [0, 1) */
    attn_tensor *alibi_slopes; /* NULL or f32 [H], finite: ALiBi as a kernel parameter,
                                 adds -slopes[h] |t + (S - T) - s| to the logit of
                                 query t and key s (computed in double, rounded to
                                 f32, added to the bias first when both are given);
                                 no [B,H,T,S] tensor is built and no gradient flows
                                 to the slopes (attn_alibi_slopes gives the paper's) */
    const attn_sparse_pattern *sparse; /* NULL or a block-sparse pattern (sparse.h):
                                 keys it hides are masked like the rules above
                                 (composes with all of them); copied at the call */
} attn_sdpa_opts;

/* Scaled dot-product attention. q [B,H,T,D], k [B,Hkv,S,D], v [B,Hkv,S,Dv]
 * -> out [B,H,T,Dv] (contiguous). Inputs may be strided views (e.g. heads
 * split from a projection by reshape + permute, the prefix of a KV cache):
 * f32 views with unit stride along the last dimension are read in place (no
 * copy; their gradients are contiguous as always), others copied first. opts may be NULL (scale
 * 1/sqrt(D), no mask, no dropout). When weights is non-NULL it receives the
 * attention probabilities P [B,H,T,S] before dropout: a tensor of the arena
 * that carries no gradient (for inspection and maps).
 * Errors (NULL returned, message in the context): ATTN_ERR_SHAPE for ranks
 * other than 4, a size 0, mismatched B, D, S, Hkv, H % Hkv != 0, a bias that does not
 * broadcast, key_lengths not [B] or out of [0, S], alibi_slopes not [H];
 * ATTN_ERR_DTYPE for non-f32 q/k/v/bias/alibi_slopes or non-i32 key_lengths;
 * ATTN_ERR_INVALID_ARG for a dropout outside [0, 1), a negative window, a
 * non-finite or negative scale, a non-finite slope, or a sparse pattern that
 * fails attn_sparse_check.
 * *weights is set to NULL on error. Dropout takes ceil(B H T S / 4) counters
 * of the context's RNG stream (only when it is active: training mode and
 * dropout > 0); element i of P in row-major order is kept iff
 * attn_rng_uniform(seed, offset, i) >= dropout, as attn_dropout. */
attn_tensor *attn_sdpa(attn_ctx *ctx, attn_tensor *q, attn_tensor *k, attn_tensor *v,
                       const attn_sdpa_opts *opts, attn_tensor **weights);

/* Fused (flash-style) scaled dot-product attention: the function of
 * attn_sdpa with the same shapes, options, errors (messages name
 * "flash_sdpa") and dropout stream (the same counters, the same mask), but
 * computed tile by tile with an online softmax, so that only the output and
 * two statistics per query [B,H,T,2] (the row's largest logit m and 1 / l,
 * l = sum_s exp(logit - m)) are kept for backward, which recomputes the
 * weights exactly for every finite input, -1e9 mask biases and logits in the
 * thousands included (graph op FLASH_SDPA, docs/transformer.md "Fused
 * attention"). Logits are f32: (scale q) . k, then + bias.
 * Extra memory is O(B H T) plus, per thread, tiles and (backward) dK/dV
 * accumulators of O(S D); the exception is a bias that
 * requires a gradient, whose backward keeps the logits' gradient
 * [B,H,T,S] as attn_sdpa does. When weights is non-NULL, *weights receives
 * P [B,H,T,S] recomputed from the saved statistics (O(T S) memory, on
 * request only; no gradient). Differences from attn_sdpa: a NaN or inf in v
 * reaches only the query tiles (64 rows) whose visible keys span it, and keys at or
 * beyond key_lengths[b] are never read (their gradients are 0, whatever they
 * hold), on every kernel (f32, bf16, AMX). Results are bitwise
 * the same for any thread count, except dK and dV when B * Hkv is below the
 * thread count (the backward then splits each kv head's query tiles over the
 * threads): those are the same for a given count.
 *
 * bf16: q, k and v may all be ATTN_BF16 (contiguous; bias stays f32), for
 * inference: the output (and the saved statistics) are f32, the products sum exact
 * bf16 products in f32, P is rounded to bf16 for P V (so an element may
 * differ from the f32 result of the same values by 2^-8 sum_s P|V|); AMX
 * or AVX-512 BF16 where the CPU has them, else the inputs are widened to
 * f32. bf16 inputs that need gradients fail with ATTN_ERR_DTYPE ("forward
 * only"); mixing f32 and bf16 fails with ATTN_ERR_DTYPE. Training in bf16:
 * f32 q, k, v under ATTN_PRECISION_BF16 (context.h) are rounded to bf16 for
 * the same bf16 forward, and the backward rounds the output's gradient, P
 * and dS too (sums in f32; each gradient within the per-element bound of
 * docs/transformer.md, "bf16 backward"), where the CPU has AVX-512 BF16;
 * elsewhere that precision leaves the op in f32. */
attn_tensor *attn_flash_sdpa(attn_ctx *ctx, attn_tensor *q, attn_tensor *k, attn_tensor *v,
                             const attn_sdpa_opts *opts, attn_tensor **weights);

/* The basic self-attention of the lecture notes, with no parameters:
 * x [B,T,E] -> y [B,T,E], y_i = sum_j softmax_j(x_i . x_j) x_j (no scaling),
 * with an optional causal mask. It is attn_sdpa with q = k = v = x as one
 * head and scale 1. */
attn_tensor *attn_basic_self_attention(attn_ctx *ctx, attn_tensor *x, int causal);

#ifdef __cplusplus
}
#endif
#endif
