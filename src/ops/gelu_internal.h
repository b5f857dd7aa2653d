/* gelu_internal.h: the exact GELU over a flat span, in the CPU's best clone
 * (unary.c), for the ops that apply it to a buffer of their own: the gelu op
 * and the fused linear + GELU (matmul.c). One implementation, so the two ops
 * give the same bits.
 */
#ifndef ATTN_GELU_INTERNAL_H
#define ATTN_GELU_INTERNAL_H

#include "../core/internal.h"

/* y[i] = x[i] Phi(x[i]) for i < n (y may equal x), on the context's threads. */
void attn__gelu_erf_apply(attn_ctx *ctx, float *y, const float *x, int64_t n);

/* gx[i] += gy[i] (Phi(x[i]) + x[i] phi(x[i])) for i < n, on the context's
 * threads (gx must not overlap gy or x). */
void attn__dgelu_erf_apply_add(attn_ctx *ctx, float *gx, const float *gy, const float *x,
                               int64_t n);

/* y[i] = x[i] Phi(x[i]) and d[i] = Phi(x[i]) + x[i] phi(x[i]) in one pass, on
 * the context's threads (d may equal x; y must not overlap d or x): the bits
 * of attn__gelu_erf_apply for y, and d the factor attn__dgelu_erf_apply_add
 * multiplies gy by. */
void attn__gelu_dgelu_erf_apply(attn_ctx *ctx, float *y, float *d, const float *x, int64_t n);

#endif
