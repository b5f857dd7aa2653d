/* attn/vision_modules.h: the attention modules for feature maps of seed
 * 001's method table besides SAGAN (vision_attention.h): CBAM's channel and
 * spatial attention modules and their composition, channel-wise soft
 * attention (a selective-kernel unit), the Global Context block, the spatial
 * attention-guided mask of CenterMask, point-wise spatial attention (PSANet)
 * and attention-augmented convolution. Code in src/nn/ (one file a module),
 * math, backward and the public code each follows: docs/vision_modules.md.
 *
 * Every module is a composition of graph ops (conv2d, batchnorm, linear,
 * max_pool2d, mean, softmax, sigmoid, embedding as a gather, bmm, ...), so
 * its backward is theirs and exact.
 *
 * Dimension legend (tensor.h): B batch, C channels, H x W the map, N = H W
 * positions, Ch = max(1, C / reduction) the hidden width of a bottleneck.
 *
 * The modules, for x [B, C, H, W] -> y [B, C, H, W]:
 *   CHANNEL  (CBAM's channel attention module, Woo et al. 2018)
 *     Mc = sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))   [B, C, 1, 1],
 *     MLP(a) = W2 ReLU(W1 a + b1) + b2 (shared by both descriptors),
 *     y = Mc * x.
 *   SPATIAL  (CBAM's spatial attention module)
 *     Ms = sigmoid(BN(conv_kxk([max_c x; mean_c x])))   [B, 1, H, W],
 *     y = Ms * x. k = kernel (7); the channel-pooled maps in the order of
 *     the authors' code (max, then mean); BatchNorm after the bias-free
 *     convolution as their code (spatial_bn = 1), or a convolution with a
 *     bias and no BatchNorm (spatial_bn = 0, the paper's equations).
 *   CBAM     y = SPATIAL(CHANNEL(x)) (channel first, then spatial).
 *   SOFT     (channel-wise soft attention across branches, a selective-
 *     kernel unit in the form of ResNeSt's split attention): K = branches
 *     branches U_k = ReLU(BN(conv3x3_dilation k(x))) (k = 1 .. K, bias-free),
 *     s = avgpool(sum_k U_k)                        [B, C],
 *     z = ReLU(BN(W1 s + b1))                       [B, Ch],
 *     a = softmax over k of (W2 z + b2) viewed [B, K, C] (per channel),
 *     y = x + sum_k a_k * U_k  (a residual unit, as SKNet's blocks).
 *     attn_channel_soft_attention (below) is the fusion step alone.
 *   GC       (Global Context block, Cao et al. 2019)
 *     p = softmax over the N positions of (w_m . x_j + b_m)   [B, 1, N],
 *     ctx = sum_j p_j x_j                            [B, C],
 *     t = W2 ReLU(LN(W1 ctx + b1)) + b2              [B, C] (LN over Ch,
 *     with gain and bias, eps 1e-5), y = x + t broadcast over positions.
 *     The last 1x1 convolution starts at zero (the authors' code), so the
 *     block starts as the identity.
 *   SAG      (spatial attention-guided mask, CenterMask, Lee and Park 2019)
 *     Ms = sigmoid(conv_kxk([mean_c x; max_c x]))  (k = kernel, 3; bias-
 *     free), y = Ms * x.
 *   PSA      (point-wise spatial attention, Zhao et al. 2018): for each of
 *     two branches (collect, distribute), r = ReLU(BN(W_r x)) [B, C', H, W]
 *     with C' = Ch, then the over-complete map
 *     o = W_o ReLU(BN(W_a r)) [B, (2H-1)(2W-1), H, W]; position i's map,
 *     cut to the H x W window centred on i, gives its weights over j:
 *       collect:    z_i = (1/N) sum_j o_i[j - i] r_j,
 *       distribute: z_i = (1/N) sum_j o_j[i - j] r_j,
 *     y = x + ReLU(BN(W_p [z_collect; z_distribute])). H and W are fixed at
 *     init (height, width) since the map has (2H-1)(2W-1) channels.
 *   AACONV   (attention-augmented convolution, Bello et al. 2019)
 *     y = [conv3x3(x) (C - dv channels, with bias); W_out MHSA(x) (dv)],
 *     MHSA with `heads` heads over the N positions: [q; k; v] = W_qkv x
 *     (1x1, bias, 2 dk + dv channels), per head (dkh = dk / heads)
 *       logits_ij = q_i . k_j / sqrt(dkh) + q_i . r^W_{w_j - w_i}
 *                   + q_i . r^H_{h_j - h_i}
 *     (q scaled before the relative logits too, as the paper's code), with
 *     learned relative embeddings r^W [2W-1, dkh], r^H [2H-1, dkh] shared by
 *     the heads (initialised normal, std dkh^-1/2). Defaults: 2 heads,
 *     dk = dv = C / 4 (rounded down to a multiple of the heads).
 *
 * Parameters (attn_params, names under `prefix`, as the PyTorch modules of
 * tools/make_vision_modules_fixtures.py name them):
 *   CHANNEL/CBAM: channel.fc1.weight [Ch, C], channel.fc1.bias [Ch],
 *     channel.fc2.weight [C, Ch], channel.fc2.bias [C];
 *   SPATIAL/CBAM: spatial.conv.weight [1, 2, k, k] (spatial.conv.bias [1]
 *     without BN), spatial.bn.weight, .bias, .running_mean, .running_var [1];
 *   SOFT: branch<k>.conv.weight [C, C, 3, 3], branch<k>.bn.* [C] (k from 0),
 *     fc1.weight [Ch, C], fc1.bias, bn.* [Ch], fc2.weight [K C, Ch],
 *     fc2.bias [K C];
 *   GC: mask.weight [1, C, 1, 1], mask.bias [1], fc1.weight [Ch, C],
 *     fc1.bias, ln.weight, ln.bias [Ch], fc2.weight [C, Ch], fc2.bias [C];
 *   SAG: conv.weight [1, 2, k, k];
 *   PSA: <b>.reduce.weight [Ch, C, 1, 1], <b>.reduce_bn.* [Ch],
 *     <b>.att.weight [Ch, Ch, 1, 1], <b>.att_bn.* [Ch], <b>.map.weight
 *     [(2H-1)(2W-1), Ch, 1, 1], <b>.map.bias, b in {collect, distribute};
 *     proj.weight [C, 2 Ch, 1, 1], proj_bn.* [C];
 *   AACONV: conv.weight [C - dv, C, 3, 3], conv.bias, qkv.weight
 *     [2 dk + dv, C, 1, 1], qkv.bias, out.weight [dv, dv, 1, 1], out.bias,
 *     rel_w [2W-1, dkh], rel_h [2H-1, dkh].
 *   BatchNorm buffers (running_mean, running_var) have requires_grad 0.
 * Initialisation: convolutions and linears uniform +-1/sqrt(fan_in) (torch's
 * default bound for biases, used for weights too); BatchNorm weight 1, bias
 * 0, running variance 1; LN weight 1, bias 0; the exceptions above.
 *
 * BatchNorm follows the context's mode (attn_ctx_set_training): batch
 * statistics and running updates in training mode, running statistics in
 * evaluation mode.
 *
 * Errors: attn_vision_module_init returns ATTN_ERR_INVALID_ARG for a config
 * that does not fit (an unknown kind, C < 1, an even or too large kernel,
 * branches outside [2, 4], dk or dv not a multiple of heads, dv >= C, H or
 * W outside [1, 64] for PSA and AACONV), ATTN_ERR_OOM. The forward returns
 * NULL with the status in the context: ATTN_ERR_SHAPE for x that is not f32
 * [B, C, H, W] with the module's C (and its H, W for PSA and AACONV), and
 * the ops' errors.
 */
#ifndef ATTN_VISION_MODULES_H
#define ATTN_VISION_MODULES_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_vision_module_kind {
    ATTN_VM_CHANNEL = 0, /* CBAM channel attention module */
    ATTN_VM_SPATIAL = 1, /* CBAM spatial attention module */
    ATTN_VM_CBAM = 2,    /* channel then spatial */
    ATTN_VM_SOFT = 3,    /* channel-wise soft attention over conv branches */
    ATTN_VM_GC = 4,      /* Global Context block */
    ATTN_VM_SAG = 5,     /* CenterMask's spatial attention-guided mask */
    ATTN_VM_PSA = 6,     /* point-wise spatial attention */
    ATTN_VM_AACONV = 7,  /* attention-augmented convolution */
    ATTN_VM_COUNT = 8
} attn_vision_module_kind;

/* "channel", "spatial", "cbam", "soft", "gc", "sag", "psa", "aaconv"
 * ("?" for another value). */
const char *attn_vision_module_name(attn_vision_module_kind k);
/* The kind named s: 0 with *out, -1 for an unknown name. */
int attn_vision_module_parse(const char *s, attn_vision_module_kind *out);

/* A zero field reads as the default given. */
typedef struct attn_vision_module_config {
    attn_vision_module_kind kind;
    int64_t channels;       /* C >= 1 (AACONV: C > dv) */
    int64_t reduction;      /* hidden width Ch = max(1, C / reduction); default 16 */
    int64_t kernel;         /* SPATIAL/CBAM (default 7), SAG (default 3); odd, <= 15 */
    int spatial_bn;         /* SPATIAL/CBAM: 0 no BN (conv bias), 1 BN (the authors' code) */
    int64_t branches;       /* SOFT: K in [2, 4] (default 2) */
    int64_t height, width;  /* PSA, AACONV: the map size, in [1, 64] */
    int64_t heads;          /* AACONV: default 2, at most 64 */
    int64_t key_channels;   /* AACONV dk: a multiple of heads; default C / 4 rounded
                               down to a multiple of heads, at least heads */
    int64_t value_channels; /* AACONV dv: as dk (same default), and dv < C */
    float bn_momentum;      /* default 0.1 (torch's) */
    float bn_eps;           /* default 1e-5 */
} attn_vision_module_config;

/* A BatchNorm's tensors (weight and bias trainable, buffers not). */
typedef struct attn_vm_bn {
    attn_tensor *w, *b, *mean, *var;
} attn_vm_bn;

typedef struct attn_vision_module {
    attn_vision_module_config cfg; /* resolved (defaults filled in) */
    int64_t hidden;                /* Ch */
    /* CHANNEL, CBAM, SOFT, GC: the bottleneck */
    attn_tensor *fc1_w, *fc1_b, *fc2_w, *fc2_b;
    /* SPATIAL, CBAM, SAG: the spatial convolution; SOFT and PSA: the
     * fusion BN; GC: the mask conv and the LN */
    attn_tensor *sp_w, *sp_b;
    attn_vm_bn sp_bn;
    attn_tensor *mask_w, *mask_b, *ln_w, *ln_b;
    attn_vm_bn fuse_bn;
    /* SOFT: the branches */
    attn_tensor *br_w[4];
    attn_vm_bn br_bn[4];
    /* PSA: [0] collect, [1] distribute */
    attn_tensor *psa_reduce_w[2], *psa_att_w[2], *psa_map_w[2], *psa_map_b[2];
    attn_vm_bn psa_reduce_bn[2], psa_att_bn[2];
    attn_tensor *proj_w;
    /* AACONV */
    attn_tensor *conv_w, *conv_b, *qkv_w, *qkv_b, *out_w, *out_b, *rel_w, *rel_h;
} attn_vision_module;

/* Adds the module's parameters (names above) to ps under prefix (may be ""
 * or NULL) and, with rng non-NULL, initialises them (rng NULL: zeros, with
 * BatchNorm and LN weights and running variances 1, to be loaded). */
attn_status attn_vision_module_init(attn_vision_module *m, attn_params *ps, const char *prefix,
                                    const attn_vision_module_config *cfg, attn_rng *rng);

/* Number of values (parameters and buffers) the module adds to a store, or
 * -1 for an invalid configuration. */
int64_t attn_vision_module_numel(const attn_vision_module_config *cfg);

/* y [B, C, H, W] = the module applied to x [B, C, H, W]. map, when not NULL,
 * receives the module's attention map (graph tensors, usable as values):
 *   CHANNEL: Mc [B, C, 1, 1]; SPATIAL, CBAM, SAG: Ms [B, 1, H, W];
 *   SOFT: a [B, K, C]; GC: p [B, 1, H, W] (sums to 1 over positions);
 *   PSA: the collect weights [B, N, N] (row i: position i's weights over
 *   the positions j, before the 1/N); AACONV: the first head's attention
 *   [B, N, N] (row i sums to 1). */
attn_tensor *attn_vision_module_forward(attn_ctx *ctx, const attn_vision_module *m,
                                        attn_tensor *x, attn_tensor **map);

/* The fusion step of channel-wise soft attention alone: u [B, K, C, H, W]
 * given as K tensors [B, C, H, W] (K in [2, 4]), logits [B, K, C] (what
 * the module computes from them) -> y = sum_k softmax_k(logits)_k,c u_k
 * [B, C, H, W]; a (may be NULL) receives the weights [B, K, C]. */
attn_tensor *attn_channel_soft_attention(attn_ctx *ctx, attn_tensor *const *u, int K,
                                         attn_tensor *logits, attn_tensor **a);

/* The gather of PSANet's attention: over [B, (2H-1)(2W-1), H, W] (position
 * i's over-complete map in channels) -> A [B, N, N] with
 *   collect (distribute = 0): A[b, j, i] = over[b, (hj-hi+H-1)(2W-1) + wj-wi+W-1, hi, wi],
 *   distribute (1):           A[b, j, i] = over[b, (hi-hj+H-1)(2W-1) + wi-wj+W-1, hj, wj],
 * so that bmm(r [B, C', N], A) gives sum_j A[j, i] r_j at i. An embedding
 * (gather) of the flattened map: gradients scatter back to over. */
attn_tensor *attn_psa_gather(attn_ctx *ctx, attn_tensor *over, int64_t H, int64_t W,
                             int distribute);

#ifdef __cplusplus
}
#endif
#endif
