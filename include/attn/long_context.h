/* attn/long_context.h: the attention op of the long-context language models
 * (graph op TXL_ATTENTION, src/ops/txl_attention.c; docs/long_context.md):
 * Transformer-XL's relative attention over a memory (Dai et al. 2019), with
 * two options, the adaptive attention span (Sukhbaatar et al. 2019a) and
 * the persistent memory vectors of the all-attention layer (Sukhbaatar et
 * al. 2019b).
 *
 * Dimension legend (tensor.h): B batch, H heads, T queries (the current
 * segment), S = M + T keys (M memory positions followed by the segment),
 * D head size of queries and keys, Dv head size of values, L rows of the
 * position table (L >= S), N persistent vectors per head.
 *
 * Query t sits at key position M + t. Key s is visible to it iff
 * s <= M + t (causal with memory), at the relative distance x = M + t - s
 * in [0, S - 1]. For each row (b, h, t), with qu = q + u[h], qv = q + vb[h]:
 *
 *   a_s = scale * ( qu . k[s]  +  qv . rk[h, x] )    s visible (else masked)
 *   a_n = scale *   qu . pk[h, n]                     n < N (persistent keys:
 *                                                     content only, no position)
 *   P   = softmax over the visible s and every n of a (one softmax)
 *   A_j = P_j                                         without a span, else
 *   A_j = P_j m_j / (sum_s P_s m_s + sum_n P_n + eps) with
 *         m_s = clamp((R + z[h] - x) / R, 0, 1)      context keys,
 *         m_n = 1                                     persistent keys
 *   out = sum_s A_s v[s] + sum_n A_n pv[h, n]
 *
 * rk is the projected position table W_R r indexed DIRECTLY by the distance
 * (row x holds W_R r_x, the sinusoid of distance x projected per head): no
 * "relative shift" is done, and its gradient is scattered exactly into the
 * row of each (query, key) pair's distance. When the denominator of the
 * span renormalisation is 0 (eps 0 and every weight masked) the row's
 * weights, output and gradients are 0.
 *
 * The span gradient follows PyTorch's clamp: d m_s / d z = 1/R where
 * 0 <= (R + z - x) / R <= 1 (ends included), else 0.
 *
 * Memory: P [B, H, T, S + N] is saved for backward (the reference path; the
 * op materialises every weight, which attn viz reads). Keys the span masks
 * are still computed: trimming them is the module's job (it passes fewer
 * memory keys, docs/long_context.md "Trimming").
 *
 * Kernels: the logits are three matrix products per (b, h) (content
 * (q+u) k^T, position (q+vb) rk^T for every distance, persistent
 * (q+u) pk^T), then each pair reads its distance's column; the output is
 * A [v ; pv]. Masked keys enter the products with weight 0, so a NaN or inf
 * in v reaches every row of its (b, h) (0 * NaN), as in sdpa.h. The
 * reference kernel (use_ref) sums each logit and output in double, per
 * visible pair only.
 *
 * Threads: forward work units are the (b, h) pairs, backward units the
 * heads (every gradient of a head has one owner); with at least as many
 * units as threads each unit runs single-threaded and results are bitwise
 * the same for any thread count, else units run in order with threaded
 * products (the same for a given thread count).
 */
#ifndef ATTN_LONG_CONTEXT_H
#define ATTN_LONG_CONTEXT_H

#include <stdint.h>

#include "context.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_txl_attention_opts {
    float scale;           /* 0: 1/sqrt(D); else finite and > 0 */
    attn_tensor *span;     /* NULL, or f32 [H]: the adaptive span z of each head
                              (in keys, finite); gets a gradient when it requires one */
    float ramp;            /* R of the soft mask, finite and > 0 when span is given */
    float span_eps;        /* added to the renormaliser, finite and >= 0 (the
                              published code uses 1e-8) */
    attn_tensor *pers_k;   /* NULL, or f32 [H, N, D]: persistent keys */
    attn_tensor *pers_v;   /* f32 [H, N, Dv], given iff pers_k is */
} attn_txl_attention_opts;

/* Transformer-XL relative attention (see above). q [B,H,T,D],
 * k [B,H,S,D], v [B,H,S,Dv] with S >= T, rk [H,L,D] with L >= S, u and vb
 * [H,D] -> out [B,H,T,Dv]. Inputs may be strided views (copied contiguous).
 * opts may be NULL (scale 1/sqrt(D), no span, no persistent vectors). When
 * weights is non-NULL it receives A [B,H,T,S+N] (after the span mask; no
 * gradient). Errors (NULL returned, message naming "txl_attention" and the
 * shapes): ATTN_ERR_SHAPE for wrong ranks, sizes 0, S < T, L < S or any
 * mismatch of B, H, D, Dv, N; ATTN_ERR_DTYPE for a non-f32 input;
 * ATTN_ERR_INVALID_ARG for a bad scale, a span without a valid ramp or eps,
 * a non-finite span value, or pers_k without pers_v (or the reverse). */
attn_tensor *attn_txl_attention(attn_ctx *ctx, attn_tensor *q, attn_tensor *k, attn_tensor *v,
                                attn_tensor *rk, attn_tensor *u, attn_tensor *vb,
                                const attn_txl_attention_opts *opts, attn_tensor **weights);

#ifdef __cplusplus
}
#endif
#endif
