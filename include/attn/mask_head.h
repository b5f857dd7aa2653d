/* attn/mask_head.h: a small per-pixel mask predictor with CenterMask's
 * spatial attention-guided mask (SAG, vision_modules.h) in its own setting:
 * the item masks of the captioning scenes (scenes.h, attn_scene_mask).
 * docs/vision_modules.md ("The SAG mask in its own setting") states the
 * task, the design and the results.
 *
 * The network, for x [B, 1, H, W] (H and W multiples of 4; the scenes are
 * 56 x 56, grey values in [0, 1]) with C = width:
 *   backbone  conv3x3 1 -> C/2, BN, ReLU, 2x2 max pool        (H/2)
 *             conv3x3 C/2 -> C, BN, ReLU, 2x2 max pool         (H/4)
 *             conv3x3 C -> C, BN, ReLU                         the features F
 *   mask head conv3x3 C -> C, BN, ReLU, twice                 (H/4)
 *             with sag: y = Ms * y, Ms = sigmoid(conv3x3([mean_c y; max_c y]))
 *             (CenterMask's SAG-Mask: the map multiplies the head's features
 *             before the mask prediction)
 *             conv_transpose 2x2 stride 2 C -> C/2, BN, ReLU    (H/2)
 *             conv_transpose 2x2 stride 2 C/2 -> C/2, BN, ReLU  (H)
 *             conv1x1 C/2 -> K + 1 + bias: the logits [B, K + 1, H, W]
 * Channel 0 of the logits is the background, channel 1 + k class k (a
 * semantic mask over the K = n_classes Fashion-MNIST classes, as Mask
 * R-CNN's per-class masks). Without sag the network is the same less the
 * 18 SAG weights. Every piece is an existing graph op (conv2d, batchnorm,
 * max_pool2d, conv_transpose2d, relu, the SAG module), so the backward is
 * theirs.
 *
 * Parameters (names in the store): backbone.<i>.conv.weight, backbone.<i>.bn.*
 * (i = 0, 1, 2), head.<i>.conv.weight, head.<i>.bn.* (i = 0, 1),
 * sag.conv.weight [1, 2, 3, 3] (with sag), up.<i>.conv.weight
 * [Cin, Cout, 2, 2], up.<i>.bn.* (i = 0, 1), out.weight [K + 1, C/2, 1, 1],
 * out.bias; the convolutions before a BatchNorm have no bias. Initialisation: uniform +-1/sqrt(fan_in) (torch's bound),
 * BatchNorm weight 1, bias 0, running variance 1.
 *
 * Errors: ATTN_ERR_INVALID_ARG for a configuration out of range (width not
 * even or outside [2, 512], n_classes outside [1, 1000], sag not 0 or 1),
 * ATTN_ERR_OOM; the forward fails with ATTN_ERR_SHAPE for x that is not f32
 * [B, 1, H, W] with H, W positive multiples of 4, and the loss for targets
 * that are not I32 [B, H, W] in [0, K].
 */
#ifndef ATTN_MASK_HEAD_H
#define ATTN_MASK_HEAD_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"
#include "scenes.h"
#include "tensor.h"
#include "vision_modules.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A zero field reads as the default given. */
typedef struct attn_mask_head_config {
    int64_t width;     /* C, even (default 32) */
    int64_t n_classes; /* K (default 10) */
    int sag;           /* 1: the SAG map multiplies the head's features */
    float bn_momentum; /* default 0.1 */
    float bn_eps;      /* default 1e-5 */
} attn_mask_head_config;

typedef struct attn_mask_head {
    attn_mask_head_config cfg; /* resolved */
    attn_params *params;
    attn_tensor *bb_w[3];
    attn_vm_bn bb_bn[3];
    attn_tensor *head_w[2];
    attn_vm_bn head_bn[2];
    attn_vision_module sag; /* with cfg.sag */
    attn_tensor *up_w[2];
    attn_vm_bn up_bn[2];
    attn_tensor *out_w, *out_b;
} attn_mask_head;

/* Builds the network in ps (rng NULL: zeros, to be loaded). */
attn_status attn_mask_head_new(attn_mask_head **out, attn_params *ps, const attn_mask_head_config *cfg,
                               attn_rng *rng);
void attn_mask_head_free(attn_mask_head *m);
/* Values (parameters and BatchNorm statistics) of the configuration, or -1
 * for an invalid one. */
int64_t attn_mask_head_numel(const attn_mask_head_config *cfg);

/* logits [B, K + 1, H, W] of x [B, 1, H, W]; sag_map (may be NULL)
 * receives the SAG map [B, 1, H/4, W/4] (NULL without sag). */
attn_tensor *attn_mask_head_forward(attn_ctx *ctx, const attn_mask_head *m, attn_tensor *x,
                                    attn_tensor **sag_map);

/* The mean per-pixel cross-entropy of the logits against targets I32
 * [B, H, W] (0 background, 1 + k class k); logits and sag_map (may be
 * NULL) receive the forward's. */
attn_tensor *attn_mask_head_loss(attn_ctx *ctx, const attn_mask_head *m, attn_tensor *x,
                                 attn_tensor *targets, attn_tensor **logits, attn_tensor **sag_map);

/* The IoU of each item of one scene: logits [K + 1, 56, 56] (the scene's
 * slice of the forward's), mask the scene's attn_scene_mask. For the item in
 * cell c of class k (sc->cls[c] = k >= 0), restricted to the cell (the
 * item's box): the class-aware prediction is the set of the cell's pixels
 * whose arg-max channel is 1 + k, the class-agnostic one those whose
 * arg-max is not the background; the truth is the cell's pixels with mask
 * c. iou_cls[c] and iou_fg[c] receive |P and T| / |P or T| (1 when both are
 * empty), -1 for an empty cell. Returns the number of items, -1 for a NULL
 * argument or K + 1 < 2. */
int attn_mask_scene_iou(const float *logits, int64_t k1, const attn_scene *sc, const int8_t *mask,
                        double iou_cls[ATTN_SCENE_CELLS], double iou_fg[ATTN_SCENE_CELLS]);

/* Metadata of the configuration (ATTN_MASK_HEAD_META entries, the values in
 * buf, 32 bytes each), and its reader (range-checked; ATTN_ERR_FORMAT for a
 * file that is not a mask head's). */
#define ATTN_MASK_HEAD_META 6
void attn_mask_head_config_meta(const attn_mask_head_config *c, attn_kv *kv, char *buf);
attn_status attn_mask_head_config_load(const char *path, attn_mask_head_config *cfg);
/* Builds the network of path's metadata in ps and loads its values (a
 * checkpoint's optimizer state is allowed and ignored). */
attn_status attn_mask_head_load(const char *path, attn_params *ps, attn_mask_head **out);

#ifdef __cplusplus
}
#endif
#endif
