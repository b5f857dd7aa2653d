/* vision_attention.h: self-attention blocks for feature maps (src/nn/vision_attention.c,
 * docs/vision_attention.md): the SAGAN block (Zhang et al., 2018) in the
 * paper's form and in the form of the authors' BigGAN code, and the Simple
 * Self-Attention block of seed 001 (sdoria/SimpleSelfAttention).
 *
 * Dimension legend (tensor.h): B batch, C channels, H x W the feature map,
 * N = H W positions.
 *
 * SAGAN, paper form (ATTN_SAGAN_PAPER): with 1x1 convolutions
 *   q = W_q x + b_q  [B, C/8, N],  k = W_k x + b_k  [B, C/8, N],
 *   v = W_v x + b_v  [B, C, N],
 *   o_j = sum_i softmax_i(q_j . k_i) v_i   (no 1/sqrt(d) scaling),
 *   y = gamma o + x,  gamma a learned scalar that starts at 0.
 * (The paper names the maps f (keys), g (queries) and h (values); seed 001's
 * code computes softmax(f^T g, dim=1) and h beta, the same map transposed:
 * its `key` conv is this block's query and its `query` conv this key.)
 *
 * SAGAN, code form (ATTN_SAGAN_BIGGAN), as the authors' BigGAN release
 * writes it: queries at full resolution (C/8), keys (C/8) and values (C/2)
 * max-pooled 2x2 (N/4 positions, H and W even), the attended values
 * (C/2) through a 1x1 convolution back to C:
 *   y = gamma W_o (sum_i softmax_i(q_j . k_i) v_i) + x.
 *
 * Simple Self-Attention (ATTN_SIMPLE_SA, seed 001's SimpleSelfAttention,
 * 1x1 kernel): with W [C, C] (symmetrised as (W + W^T) / 2 when sym),
 *   y = gamma x (x^T (W x)) + x   over x [B, C, N]: no softmax,
 * computed as (x x^T) (W x), C^2 N work instead of C N^2.
 *
 * Parameters (attn_params, names under `prefix`, PyTorch module names):
 *   query.weight [C/8, C, 1, 1], query.bias, key.weight, key.bias,
 *   value.weight [Cv, C, 1, 1], value.bias, (code form) out.weight
 *   [C, C/2, 1, 1], out.bias, gamma [1]; biases only with bias = 1.
 *   Simple SA: conv.weight [C, C, 1], gamma [1].
 * Errors: ATTN_ERR_INVALID_ARG for a config that does not fit (C < 8 for
 * SAGAN, C not a multiple of 8 or of 2, an unknown form), ATTN_ERR_SHAPE for
 * x that is not [B, C, H, W] with the block's C (and even H, W for the code
 * form), ATTN_ERR_OOM.
 */
#ifndef ATTN_VISION_ATTENTION_H
#define ATTN_VISION_ATTENTION_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "tensor.h"
#include "transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_map_attention_form {
    ATTN_SAGAN_PAPER = 0,
    ATTN_SAGAN_BIGGAN = 1,
    ATTN_SIMPLE_SA = 2
} attn_map_attention_form;

typedef struct attn_map_attention_config {
    int64_t channels;             /* C */
    attn_map_attention_form form;
    int bias;                     /* SAGAN: 1x1 convolutions with biases */
    int sym;                      /* Simple SA: symmetric W */
    float gamma_init;             /* the scalar's start (0 in the papers) */
    attn_attention_kernel kernel; /* SAGAN: AUTO, FUSED or REFERENCE (the softmax's op) */
} attn_map_attention_config;

typedef struct attn_map_attention {
    attn_map_attention_config cfg;
    attn_tensor *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo; /* SAGAN (NULL where absent) */
    attn_tensor *w;                                     /* Simple SA: [C, C, 1] */
    attn_tensor *gamma;                                 /* [1] */
} attn_map_attention;

/* Adds the block's parameters to ps under prefix (may be "" or NULL) and
 * initialises them (1x1 convolutions: uniform +-1/sqrt(fan_in), as torch's
 * default; biases the same; gamma = gamma_init). */
attn_status attn_map_attention_init(attn_map_attention *m, attn_params *ps, const char *prefix,
                                    const attn_map_attention_config *cfg, attn_rng *rng);

/* y [B, C, H, W] = the block applied to x [B, C, H, W]. weights, when not
 * NULL, receives the attention map [B, 1, N, Nk] of a SAGAN block (query
 * position j's weights over the Nk key positions; Nk = N / 4 in the code
 * form) without history; NULL for Simple SA (it has none). */
attn_tensor *attn_map_attention_forward(attn_ctx *ctx, const attn_map_attention *m,
                                        attn_tensor *x, attn_tensor **weights);

#ifdef __cplusplus
}
#endif
#endif
