/* attn/positions.h: positional information for the Transformer family.
 *
 * Dimension legend (tensor.h): B batch, H heads, T queries, S keys, D head
 * size, Dv value head size, E model width. docs/positions.md has every
 * formula, the conventions chosen and the backward derivations.
 *
 * Four kinds, and where each plugs into attention:
 *   - absolute positions, added to the token embeddings before the first
 *     layer: the fixed sinusoidal table (attn_sinusoidal_positions) or a
 *     learned table, which is an ordinary parameter [T_max, E] read with
 *     attn_embedding(ctx, table, position_ids) (ops.h), nothing more;
 *   - rotary embeddings (RoPE, graph op ROPE): applied to q and k after
 *     their projections and the split into heads, before attn_sdpa;
 *   - ALiBi: a constant bias [1, H, T, S] passed as attn_sdpa_opts.bias;
 *   - Shaw et al. relative position representations (graph ops REL_LOGITS
 *     and REL_VALUES), composed with the existing ops:
 *       logits = scale * (bmm(q, k^T) + attn_rel_logits(q, rel_k, S, S - T))
 *       P      = attn_softmax(logits, mask)
 *       out    = bmm(P, v) + attn_rel_values(P, rel_v, S - T)
 *     (the value term needs P itself, so this path cannot go through SDPA).
 *
 * Positions are aligned bottom-right, as the causal mask of sdpa.h: with T
 * queries and S keys (S - T of them already in a KV cache), query t sits at
 * key position t + (S - T).
 *
 * Errors: functions returning a tensor return NULL and record the error in
 * the context (a NULL tensor input returns NULL at once, so calls chain);
 * ATTN_ERR_SHAPE for a wrong rank or size, ATTN_ERR_DTYPE for a wrong dtype,
 * ATTN_ERR_INVALID_ARG for an attribute out of range.
 */
#ifndef ATTN_POSITIONS_H
#define ATTN_POSITIONS_H

#include <stdint.h>

#include "context.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- absolute positions ----------------------------------------------- */

/* The sinusoidal table of Vaswani et al. (2017): a constant f32 [T, E]
 * (requires_grad 0, arena) with, for row t at position p = pos0 + t,
 *   PE[t, 2i]   = sin(p / base^(2i/E))
 *   PE[t, 2i+1] = cos(p / base^(2i/E))
 * for every column that exists (an odd E ends with a sin column). base 0
 * means 10000. Computed in double, rounded once to float.
 * Errors: ATTN_ERR_INVALID_ARG for T < 1, E < 1, a base that is negative
 * or not finite, or |pos0| or |pos0 + T| above 2^40.
 * Learned absolute positions: a parameter [T_max, E] and attn_embedding. */
attn_tensor *attn_sinusoidal_positions(attn_ctx *ctx, int64_t T, int64_t E, int64_t pos0,
                                       float base);

/* ---- rotary position embeddings (RoPE, graph op ROPE) ------------------ */

typedef struct attn_rope_opts {
    int64_t pos0;           /* positions p = pos0 + t when `positions` is NULL */
    attn_tensor *positions; /* NULL, or i32 [T] (shared by the batch) or [B, T] */
    float theta;            /* base of the frequencies; 0 means 10000 */
    int64_t rotary_dim;     /* leading dims of D that rotate (even, <= D); 0 means D.
                               Dims [rotary_dim, D) pass through unchanged */
    int interleaved;        /* 0: pairs (i, i + r/2), the rotate-half layout of
                               GPT-NeoX and Llama; 1: adjacent pairs (2i, 2i + 1)
                               of RoFormer and GPT-J */
} attn_rope_opts;

/* Rotary embedding of x [B, H, T, D] (strided views accepted, read in place)
 * -> [B, H, T, D] contiguous. With r = rotary_dim, for pair i < r/2 with
 * members (a, b) = (i, i + r/2) (or (2i, 2i + 1) when interleaved) and the
 * angle phi = p * theta^(-2i/r) of the row's position p:
 *   out[a] = x[a] cos phi - x[b] sin phi
 *   out[b] = x[b] cos phi + x[a] sin phi
 * The angles and their cos/sin are computed in double and stored as float
 * (a table [P, r/2] kept for backward), so large positions lose nothing to a
 * float32 angle. Backward rotates the gradient by -phi. opts may be NULL
 * (pos0 0, theta 10000, rotary_dim D, rotate-half).
 * Errors: ATTN_ERR_SHAPE for x not 4-d or positions not [T] / [B, T];
 * ATTN_ERR_DTYPE for x not f32 or positions not i32; ATTN_ERR_INVALID_ARG
 * for an odd, negative or too large rotary_dim, a theta that is negative
 * or not finite, or |pos0| or |pos0 + T| above 2^40. */
attn_tensor *attn_rope(attn_ctx *ctx, attn_tensor *x, const attn_rope_opts *opts);

/* ---- Shaw et al. (2018) relative positions (graph ops REL_LOGITS, REL_VALUES)
 * With K = (rows of the table - 1) / 2 and the clipped distance
 *   j(t, s) = clip(s - (t + offset), -K, K) + K   in [0, 2K],
 * offset being S - T for bottom-right aligned queries (0 when T == S).
 * |offset| must be at most 2^40 (ATTN_ERR_INVALID_ARG otherwise). */

/* q [B, H, T, D], rel_k [2K+1, D] -> [B, H, T, S],
 *   out[b,h,t,s] = q[b,h,t,:] . rel_k[j(t, s), :]
 * Gradients into q and rel_k. Strided inputs are made contiguous first.
 * Errors: ATTN_ERR_SHAPE for q not 4-d, rel_k not [odd, D]; ATTN_ERR_DTYPE
 * for non-f32 inputs; ATTN_ERR_INVALID_ARG for S < 1 or a bad offset. */
attn_tensor *attn_rel_logits(attn_ctx *ctx, attn_tensor *q, attn_tensor *rel_k, int64_t S,
                             int64_t offset);

/* p [B, H, T, S] (attention weights), rel_v [2K+1, Dv] -> [B, H, T, Dv],
 *   out[b,h,t,:] = sum_s p[b,h,t,s] rel_v[j(t, s), :]
 * Gradients into p and rel_v. Strided inputs are made contiguous first.
 * Errors: ATTN_ERR_SHAPE for p not 4-d, rel_v not [odd, Dv]; ATTN_ERR_DTYPE
 * for non-f32 inputs; ATTN_ERR_INVALID_ARG for a bad offset. */
attn_tensor *attn_rel_values(attn_ctx *ctx, attn_tensor *p, attn_tensor *rel_v, int64_t offset);

/* ---- ALiBi (Press et al., 2022) ----------------------------------------- */

/* The H head slopes into slopes[0..H): for H a power of two the geometric
 * sequence 2^(-8/H), 2^(-16/H), ..., 2^(-8); otherwise, with n the largest
 * power of two below H, the n slopes of n heads followed by the first
 * H - n of every other slope (the 1st, 3rd, ...) of 2n heads. Computed in
 * double, rounded once to float. Does nothing when H < 1 or slopes is NULL. */
void attn_alibi_slopes(int H, float *slopes);

/* The ALiBi bias, a constant f32 [1, H, T, S] (requires_grad 0) for
 * attn_sdpa_opts.bias, with m_h = the slope of head h and the query's key
 * position q = t + (S - T):
 *   causal != 0: bias = -m_h (q - s) for s <= q, and -inf for s > q: the bias
 *                masks the future itself (setting sdpa's causal flag as
 *                well is harmless, and lets a fused kernel skip blocks);
 *   causal == 0: bias = -m_h |q - s| (symmetric, for encoders).
 * Errors: ATTN_ERR_INVALID_ARG for H, T or S < 1. */
attn_tensor *attn_alibi_bias(attn_ctx *ctx, int H, int64_t T, int64_t S, int causal);

#ifdef __cplusplus
}
#endif
#endif
