/* sdpa_internal.h: private entry points of the attention ops (sdpa.c,
 * flash_sdpa.c) for the layers above (src/nn/transformer.c).
 */
#ifndef ATTN_SDPA_INTERNAL_H
#define ATTN_SDPA_INTERNAL_H

#include "../core/internal.h"
#include "attn/sdpa.h"

/* Self-attention read in place from a packed projection: qkv [B, T, (H + 2
 * Hkv) D] holds, per position, the H query heads, then the Hkv key heads,
 * then the Hkv value heads (D columns each); returns [B, T, H D], head h in
 * columns h D .. h D + D (what the output projection reads). The same as
 * attn_sdpa on the split heads followed by merging them, without the copies;
 * the same options (S = T) and errors, plus ATTN_ERR_SHAPE when the last
 * dimension is not a multiple of H + 2 Hkv. One SDPA node (packed layout). */
attn_tensor *attn__sdpa_packed(attn_ctx *ctx, attn_tensor *qkv, int64_t H, int64_t Hkv,
                               const attn_sdpa_opts *opts, attn_tensor **weights);

/* The same for the fused op (src/ops/flash_sdpa.c): q, k, v read in place
 * from qkv by strides, the output written as [B, T, H D], the gradients
 * added in place into qkv's; one FLASH_SDPA node (packed layout, f32). */
attn_tensor *attn__flash_sdpa_packed(attn_ctx *ctx, attn_tensor *qkv, int64_t H, int64_t Hkv,
                                     const attn_sdpa_opts *opts, attn_tensor **weights);

#endif
