/* attn/cnn.h: a convolutional image classifier (src/models/cnn.c,
 * docs/cnn.md), fully convolutional up to a global average pool, with an
 * optional self-attention block of vision_attention.h after one stage.
 *
 * Dimension legend (tensor.h): B batch, C channels, H x W the image, K the
 * classes, S the stages.
 *
 * The model, for x [B, Cin, H, W] (pixels, e.g. in [0, 1]):
 *   h = (x - input_mean) / input_std
 *   for stage s = 0 .. S-1:
 *     repeat convs_per_stage times:
 *       h = ReLU(BatchNorm(conv3x3(h, padding 1, no bias)))   widths[s] channels
 *     if s < S-1: h = max_pool2d(h, 2x2, stride 2)             H, W halved (floor)
 *     if s == attention_stage: h = Attention(h)   (SAGAN paper or code form, or
 *                                                  Simple SA; gamma starts at 0;
 *                                                  or a module of vision_modules.h)
 *   pooled = mean of h over its H x W positions                [B, widths[S-1]]
 *   logits = Linear(Dropout(pooled))                           [B, K]
 * Every stage but the last halves the map, so a 28x28 image leaves stage 0
 * at 14x14 and (S = 3) stage 1 at 7x7; a 56x56 canvas leaves stage 1 at 14x14.
 * Nothing depends on H and W but the pooling: the same weights run on any
 * size whose maps stay >= 1x1 (and even where the code-form attention sits).
 *
 * Batch normalisation: in training mode (attn_ctx_set_training(ctx, 1))
 * batch statistics, and the running statistics are updated in place (torch's
 * momentum rule); in evaluation mode (attn_ctx_set_training(ctx, 0)) the
 * running statistics are used: evaluate, extract features and save in that
 * mode. A frozen encoder: evaluation mode, and requires_grad = 0 on every
 * tensor of the store (or gradients off).
 *
 * Parameter names (torch's state_dict of tools/make_cnn_fixtures.py's
 * module), s the stage, j the conv in it:
 *   stages.<s>.<j>.conv.weight [widths[s], C_prev, 3, 3]
 *   stages.<s>.<j>.bn.weight, .bn.bias [widths[s]]
 *   stages.<s>.<j>.bn.running_mean, .bn.running_var [widths[s]]
 *       (buffers, in the store with requires_grad 0: the optimizer skips
 *        them, files carry them)
 *   attention.<...> (vision_attention.h's names), when there is one
 *   head.weight [K, widths[S-1]], head.bias [K]
 * Initialisation as torch's defaults: conv and linear weights and the head's
 * bias uniform in +-1/sqrt(fan_in); BatchNorm weight 1, bias 0, running mean
 * 0, running variance 1.
 *
 * Errors follow ops.h: graph functions return NULL with the status and a
 * message in the context; the others return a status with the message in
 * attn_last_error(). Nothing prints. Results repeat bitwise for a given
 * thread count.
 */
#ifndef ATTN_CNN_H
#define ATTN_CNN_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"
#include "status.h"
#include "tensor.h"
#include "vision_attention.h"
#include "vision_modules.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_CNN_MAX_STAGES 4

/* The attention block after a stage. */
typedef enum attn_cnn_attention {
    ATTN_CNN_ATT_NONE = 0,
    ATTN_CNN_ATT_SAGAN = 1,      /* SAGAN, paper form (ATTN_SAGAN_PAPER) */
    ATTN_CNN_ATT_SAGAN_CODE = 2, /* SAGAN, BigGAN code form (ATTN_SAGAN_BIGGAN) */
    ATTN_CNN_ATT_SIMPLE = 3,     /* Simple Self-Attention (ATTN_SIMPLE_SA) */
    /* the modules of vision_modules.h (kind = value - ATTN_CNN_ATT_CHANNEL) */
    ATTN_CNN_ATT_CHANNEL = 4,    /* CBAM's channel attention module (reduction 16) */
    ATTN_CNN_ATT_SPATIAL = 5,    /* CBAM's spatial attention module (7x7, BN) */
    ATTN_CNN_ATT_CBAM = 6,       /* CBAM: channel then spatial */
    ATTN_CNN_ATT_SOFT = 7,       /* channel-wise soft attention, 2 branches (hidden C) */
    ATTN_CNN_ATT_GC = 8,         /* Global Context block (reduction 16) */
    ATTN_CNN_ATT_SAG = 9,        /* CenterMask's spatial attention-guided mask (3x3) */
    ATTN_CNN_ATT_PSA = 10,       /* point-wise spatial attention (reduction 4) */
    ATTN_CNN_ATT_AACONV = 11     /* attention-augmented convolution (2 heads, dk = dv = C/4) */
} attn_cnn_attention;

#define ATTN_CNN_ATT_COUNT 12
/* PSA and AACONV have weights tied to the map size: in the CNN they are
 * built for the map that a ATTN_CNN_FIXED_INPUT x ATTN_CNN_FIXED_INPUT image
 * gives after the block's stage (28x28 Fashion-MNIST), and other image sizes
 * get ATTN_ERR_SHAPE from the module. */
#define ATTN_CNN_FIXED_INPUT 28

/* "none", "sagan", "sagan-code", "simple", then the module names of
 * vision_modules.h ("channel", "spatial", "cbam", "soft", "gc", "sag",
 * "psa", "aaconv"); "?" for another value. */
const char *attn_cnn_attention_name(attn_cnn_attention a);
/* The kind named s: 0 with *out, -1 for an unknown name. */
int attn_cnn_attention_parse(const char *s, attn_cnn_attention *out);

typedef struct attn_cnn_config {
    int64_t in_channels;     /* Cin >= 1 (1 for grey images) */
    int64_t n_classes;       /* K >= 2 */
    int n_stages;            /* S in [1, ATTN_CNN_MAX_STAGES] */
    int64_t widths[ATTN_CNN_MAX_STAGES]; /* channels of stage s, in [1, 4096] */
    int convs_per_stage;     /* conv-BN-ReLU layers per stage, in [1, 4] */
    attn_cnn_attention attention;
    int attention_stage;     /* the stage after which it sits, in [0, S) */
    int sym;                 /* Simple SA: symmetric W */
    float dropout;           /* before the head, in [0, 1) */
    float input_mean, input_std; /* input normalisation; std > 0 (0 reads as 1) */
    float bn_momentum;       /* running statistics' momentum (0 reads as torch's 0.1) */
    float bn_eps;            /* BatchNorm's eps (0 reads as torch's 1e-5) */
} attn_cnn_config;

/* A configuration with the defaults of attn vision train: 1 input channel,
 * 10 classes, 3 stages of widths 32, 64, 128, 2 convs per stage, no
 * attention (attention_stage 0: after stage 0, at 14x14 for 28x28 images),
 * dropout 0, Fashion-MNIST's pixel mean 0.2860 and std 0.3530. */
attn_cnn_config attn_cnn_config_default(void);

typedef struct attn_cnn_layer {
    attn_tensor *conv_w;             /* [Cout, Cin, 3, 3] */
    attn_tensor *bn_w, *bn_b;        /* [Cout] */
    attn_tensor *bn_mean, *bn_var;   /* [Cout], requires_grad 0 */
} attn_cnn_layer;

typedef struct attn_cnn {
    attn_cnn_config cfg;  /* resolved (zeros read as defaults filled in) */
    attn_params *params;  /* the store given to attn_cnn_new (not owned) */
    attn_cnn_layer layers[ATTN_CNN_MAX_STAGES][4]; /* [stage][conv] */
    attn_map_attention att; /* valid when cfg.attention is sagan, sagan-code or simple */
    attn_vision_module vmod; /* valid when cfg.attention >= ATTN_CNN_ATT_CHANNEL */
    attn_tensor *head_w;  /* [K, widths[S-1]] */
    attn_tensor *head_b;  /* [K] */
} attn_cnn;

/* Adds the model's parameters (names above) to ps and, with rng non-NULL,
 * initialises them (rng NULL: weights zero, BatchNorm weight 1 and running
 * variance 1, to be loaded). Errors: ATTN_ERR_INVALID_ARG (NULL, a
 * configuration outside the ranges above; a SAGAN width that is not a
 * multiple of 8), ATTN_ERR_OOM. On error *out is NULL. */
attn_status attn_cnn_new(attn_cnn **out, attn_params *ps, const attn_cnn_config *cfg,
                         attn_rng *rng);
void attn_cnn_free(attn_cnn *m); /* NULL is fine; the store is the caller's */

/* Number of values of the model's parameters and buffers (what attn_cnn_new
 * adds to a store), or -1 for an invalid configuration. */
int64_t attn_cnn_numel(const attn_cnn_config *cfg);

/* The whole forward: x f32 [B, Cin, H, W] -> logits [B, K]. Optional
 * outputs (each may be NULL):
 *   pooled:  the penultimate vector [B, widths[S-1]] (after the global
 *            average pool, before dropout: the features of an FID);
 *   att_weights: a SAGAN block's attention map [B, 1, N, Nk] (N = H' W'
 *            positions of the map it sits on; vision_attention.h), a
 *            module's map (attn_vision_module_forward's), NULL without a
 *            block or for Simple SA.
 * Errors: ATTN_ERR_SHAPE (x not [B, Cin, H, W]; a map that pools below 1x1;
 * an odd map under the code-form block), ATTN_ERR_DTYPE, and those of the
 * ops. */
attn_tensor *attn_cnn_forward(attn_ctx *ctx, const attn_cnn *m, attn_tensor *x,
                              attn_tensor **pooled, attn_tensor **att_weights);

/* The feature map after stage `stage` (its pooling and, when it sits there,
 * the attention block included): [B, widths[stage], H', W'] with H' = H /
 * 2^(stage+1) for stage < S-1 (floor at each pooling) and H / 2^(S-1) for
 * the last stage. Only stages 0 .. stage run. E.g. the default model on
 * 56x56 canvases: stage 1 gives [B, 64, 14, 14], the 14 x 14 annotation
 * vectors of Show, Attend and Tell. att_weights as attn_cnn_forward (NULL
 * when the block is after `stage`). Errors: ATTN_ERR_INVALID_ARG (stage
 * outside [0, S)), those of attn_cnn_forward. */
attn_tensor *attn_cnn_features(attn_ctx *ctx, const attn_cnn *m, attn_tensor *x, int stage,
                               attn_tensor **att_weights);

/* The penultimate vector alone: [B, widths[S-1]] (attn_cnn_forward's
 * pooled, without the head). */
attn_tensor *attn_cnn_pooled(attn_ctx *ctx, const attn_cnn *m, attn_tensor *x);

/* Mean cross-entropy of the logits against targets i32 [B] (classes in
 * [0, K)), with label smoothing in [0, 1). Returns the scalar loss; logits
 * (may be NULL) receives the logits [B, K]. */
attn_tensor *attn_cnn_loss(attn_ctx *ctx, const attn_cnn *m, attn_tensor *x, attn_tensor *targets,
                           float label_smoothing, attn_tensor **logits);

/* The attention block's gamma (0 when there is none). */
float attn_cnn_gamma(const attn_cnn *m);

/* ---- files ---------------------------------------------------------------------- */

/* Metadata entries "cnn.in_channels", "cnn.n_classes", "cnn.n_stages",
 * "cnn.width0" .. "cnn.width3", "cnn.convs_per_stage", "cnn.attention" (0
 * none, 1 sagan, 2 sagan-code, 3 simple, 4 .. 11 the modules, in the order
 * of attn_cnn_attention), "cnn.attention_stage", "cnn.sym",
 * "cnn.dropout", "cnn.input_mean", "cnn.input_std", "cnn.bn_momentum",
 * "cnn.bn_eps" into kv[0 .. ATTN_CNN_META), values in buf
 * (ATTN_CNN_META * 32 bytes). */
#define ATTN_CNN_META 17
void attn_cnn_config_meta(const attn_cnn_config *cfg, attn_kv *kv, char *buf);

/* Reads a configuration from a safetensors file's metadata (attn_cnn_save's
 * file or a checkpoint of attn vision train) and checks it. Errors: those
 * of attn_safetensors_open, ATTN_ERR_FORMAT (an entry missing, malformed or
 * out of range). */
attn_status attn_cnn_config_load(const char *path, attn_cnn_config *cfg);

/* Saves the store's tensors (parameters and running statistics) with the
 * configuration and n_meta extra entries (n_meta in [0, 64]) as metadata. */
attn_status attn_cnn_save(const char *path, const attn_cnn *m, const attn_kv *meta, int n_meta);

/* Builds a model from a file of attn_cnn_save or a checkpoint of attn vision
 * train (optimizer tensors ignored): configuration from the metadata, checked
 * against the file's tensors before anything is allocated (a file whose
 * metadata claims more values than it holds is refused), then every tensor
 * loaded strictly (shapes, finite values) into a new model in ps. Errors:
 * those of attn_cnn_config_load, attn_cnn_new and
 * attn_safetensors_load_params; ATTN_ERR_FORMAT / ATTN_ERR_SHAPE for a file
 * that does not hold the configuration's tensors. *out is NULL on error; a
 * file refused by its metadata adds nothing to ps, one refused by the final
 * load (a NaN, a missing tensor) leaves the new model's tensors in ps (as
 * attn_gpt_load): use a fresh store per load. */
attn_status attn_cnn_load(const char *path, attn_params *ps, attn_cnn **out);

#ifdef __cplusplus
}
#endif
#endif
