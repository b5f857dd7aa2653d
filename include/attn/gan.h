/* attn/gan.h: a small SAGAN for 28 x 28 grey images (Fashion-MNIST)
 * (src/models/gan.c, docs/gan.md): Zhang et al., "Self-Attention
 * Generative Adversarial Networks" (2018), scaled down.
 *
 * Generator (z [B, Z] -> x [B, 1, 28, 28] in [-1, 1]), with c = g_ch:
 *   fc      linear Z -> 2c * 7 * 7, reshape [B, 2c, 7, 7], batchnorm, ReLU
 *   up1     conv_transpose2d 2c -> c, kernel 4, stride 2, padding 1 -> 14 x 14,
 *           batchnorm, ReLU
 *   attn    SAGAN block (paper form, vision_attention.h) on [B, c, 14, 14]
 *           (when attention is on)
 *   up2     conv_transpose2d c -> c/2, kernel 4, stride 2, padding 1 -> 28 x 28,
 *           batchnorm, ReLU
 *   out     conv2d c/2 -> 1, kernel 3, padding 1, tanh
 * Discriminator (x [B, 1, 28, 28] -> score [B], unbounded), with d = d_ch:
 *   conv1   conv2d 1 -> d, kernel 4, stride 2, padding 1 -> 14 x 14, LeakyReLU(0.1)
 *   attn    SAGAN block on [B, d, 14, 14] (when attention is on)
 *   conv2   conv2d d -> 2d, kernel 4, stride 2, padding 1 -> 7 x 7, LeakyReLU(0.1)
 *   fc      linear 2d * 7 * 7 -> 1
 * Spectral normalisation (conv.h, attn_spectral_norm, one power iteration
 * per forward in training mode) wraps EVERY weight of both nets, the
 * attention block's query, key and value convolutions included, as in the
 * paper (transposed-conv weights with dim 1, as torch's default); biases,
 * batchnorm scales and the block's gamma are not normalised. The
 * discriminator has no batchnorm.
 *
 * Parameters: two stores (gps: generator, dps: discriminator), names as the
 * state_dict of the PyTorch modules of tools/make_gan_fixtures.py with
 * torch.nn.utils.parametrizations.spectral_norm:
 *   <layer>.parametrizations.weight.original   the raw weight (learned)
 *   <layer>.parametrizations.weight.0._u, ._v  the power iteration's vectors
 *   <layer>.bias, bn<k>.weight, bn<k>.bias     (learned)
 *   bn<k>.running_mean, bn<k>.running_var      batchnorm's running statistics
 *   attn.query. ..., attn.key. ..., attn.value. ..., attn.gamma
 * The vectors and the running statistics are stored as parameters with
 * requires_grad 0 (no gradient, skipped by the optimizers), so that a
 * checkpoint holds the whole state of the nets.
 *
 * Modes: in training mode (attn_ctx_set_training) every spectral norm runs
 * one power iteration (updating its u and v) and batchnorm uses the batch's
 * statistics (updating the running ones); in evaluation mode nothing is
 * written and batchnorm uses the running statistics. Each call of
 * attn_gan_generate / attn_gan_discriminate is one forward of the module in
 * torch's sense (one power iteration per weight).
 *
 * Errors: ATTN_ERR_INVALID_ARG (a config out of range: z_dim, g_ch, d_ch
 * below 8 or above 4096, g_ch odd), ATTN_ERR_SHAPE (z not [B, Z], x not
 * [B, 1, 28, 28]), ATTN_ERR_OOM; the op errors of the context.
 */
#ifndef ATTN_GAN_H
#define ATTN_GAN_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"
#include "tensor.h"
#include "vision_attention.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_GAN_SIZE 28 /* image side */

typedef struct attn_gan_config {
    int64_t z_dim;  /* Z, the latent size */
    int64_t g_ch;   /* c: the generator's channels at 14 x 14 (even, >= 8) */
    int64_t d_ch;   /* d: the discriminator's channels at 14 x 14 (>= 8) */
    int attention;  /* 1: the SAGAN block at 14 x 14 in both nets; 0: the baseline */
} attn_gan_config;

/* The defaults of `attn gan train`: Z 64, c 32, d 32, attention on. */
void attn_gan_config_default(attn_gan_config *cfg);

/* One spectrally normalised weight: the raw weight and its vectors. */
typedef struct attn_gan_sn {
    attn_tensor *w, *u, *v;
    int dim; /* 0, or 1 for transposed-conv weights */
} attn_gan_sn;

typedef struct attn_gan {
    attn_gan_config cfg;
    attn_params *gps, *dps; /* owned */
    /* generator */
    attn_gan_sn g_fc, g_up1, g_up2, g_out;
    attn_tensor *g_fc_b, *g_up1_b, *g_up2_b, *g_out_b;
    attn_tensor *bn_w[3], *bn_b[3], *bn_mean[3], *bn_var[3];
    attn_map_attention g_attn;
    attn_gan_sn g_q, g_k, g_v;
    /* discriminator */
    attn_gan_sn d_c1, d_c2, d_fc;
    attn_tensor *d_c1_b, *d_c2_b, *d_fc_b;
    attn_map_attention d_attn;
    attn_gan_sn d_q, d_k, d_v;
} attn_gan;

/* Builds both nets with fresh stores and initialises them as torch does
 * (uniform +-1/sqrt(fan_in) weights and biases, batchnorm 1 and 0, running
 * statistics 0 and 1, gamma 0), then the spectral-norm vectors as torch's
 * parametrisation: u, v normal, normalised, then 15 power iterations.
 * On error *g is left empty (nothing to free). */
attn_status attn_gan_init(attn_gan *g, const attn_gan_config *cfg, attn_rng *rng);
void attn_gan_free(attn_gan *g);

/* x [B, 1, 28, 28] = G(z), z [B, Z]. attn_map, when not NULL, receives the
 * generator's attention map [B, 1, 196, 196] (NULL without attention). */
attn_tensor *attn_gan_generate(attn_ctx *ctx, const attn_gan *g, attn_tensor *z,
                               attn_tensor **attn_map);

/* score [B] = D(x), x [B, 1, 28, 28]. */
attn_tensor *attn_gan_discriminate(attn_ctx *ctx, const attn_gan *g, attn_tensor *x);

/* The hinge losses of the paper (scalars):
 *   L_D = mean(relu(1 - D(x_real))) + mean(relu(1 + D(G(z)))),
 *   L_G = -mean(D(G(z))).
 * d_real, d_fake: [B] scores (the batches may differ in size). */
attn_tensor *attn_gan_d_hinge_loss(attn_ctx *ctx, attn_tensor *d_real, attn_tensor *d_fake);
attn_tensor *attn_gan_g_hinge_loss(attn_ctx *ctx, attn_tensor *d_fake);

/* The configuration as checkpoint metadata ("gan.z_dim", "gan.g_ch",
 * "gan.d_ch", "gan.attention"): kv[ATTN_GAN_META] point into buf. */
#define ATTN_GAN_META 4
void attn_gan_config_meta(const attn_gan_config *cfg, attn_kv *kv, char buf[ATTN_GAN_META][32]);

#ifdef __cplusplus
}
#endif

#endif
