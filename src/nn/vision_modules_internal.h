/* vision_modules_internal.h: helpers shared by the files of the vision
 * attention modules (src/nn/vision_modules.c, cbam.c, soft_attention.c,
 * global_context.c, psa.c, aaconv.c); include/attn/vision_modules.h is the
 * public side. */
#ifndef ATTN_VISION_MODULES_INTERNAL_H
#define ATTN_VISION_MODULES_INTERNAL_H

#include "attn/vision_modules.h"

/* ---- graph helpers (all return NULL on error, with the context's message) */

/* x [B, C, H, W] -> [B, C]: the mean over the positions. */
attn_tensor *attn__vm_avgpool(attn_ctx *ctx, attn_tensor *x);
/* x [B, C, H, W] -> [B, C]: the maximum over the positions. */
attn_tensor *attn__vm_maxpool(attn_ctx *ctx, attn_tensor *x);
/* x [B, C, H, W] -> [B, 1, H, W]: the mean over the channels. */
attn_tensor *attn__vm_channel_mean(attn_ctx *ctx, attn_tensor *x);
/* x [B, C, H, W] -> [B, 1, H, W]: the maximum over the channels. */
attn_tensor *attn__vm_channel_max(attn_ctx *ctx, attn_tensor *x);
/* BatchNorm with the module's momentum and eps. */
attn_tensor *attn__vm_bn(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *x,
                         const attn_vm_bn *bn);
/* A convolution with square kernel k, stride 1, padding k / 2, dilation d. */
attn_tensor *attn__vm_conv(attn_ctx *ctx, attn_tensor *x, attn_tensor *w, attn_tensor *b,
                           int64_t k, int64_t d);

/* ---- the modules' forwards (x already checked) ------------------------- */

attn_tensor *attn__vm_channel(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *x,
                              attn_tensor **map);
attn_tensor *attn__vm_spatial(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *x,
                              attn_tensor **map);
attn_tensor *attn__vm_sag(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *x,
                          attn_tensor **map);
attn_tensor *attn__vm_soft(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *x,
                           attn_tensor **map);
attn_tensor *attn__vm_gc(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *x,
                         attn_tensor **map);
attn_tensor *attn__vm_psa(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *x,
                          attn_tensor **map);
attn_tensor *attn__vm_aaconv(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *x,
                             attn_tensor **map);

#endif
