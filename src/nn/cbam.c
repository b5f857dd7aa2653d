/* cbam.c: CBAM's channel and spatial attention modules (Woo et al. 2018)
 * and CenterMask's spatial attention-guided mask (Lee and Park 2019), which
 * shares the spatial module's channel-pooled maps (vision_modules.h,
 * docs/vision_modules.md). Compositions of graph ops. */
#include <string.h>

#include "../core/internal.h"
#include "attn/ops.h"
#include "vision_modules_internal.h"

/* Mc = sigmoid(MLP(avg) + MLP(max)), y = Mc * x */
attn_tensor *attn__vm_channel(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *x,
                              attn_tensor **map) {
    if (!x) return NULL;
    const int64_t B = x->shape[0], C = x->shape[1];
    attn_tensor *d[2] = {attn__vm_avgpool(ctx, x), attn__vm_maxpool(ctx, x)};
    attn_tensor *sum = NULL;
    for (int i = 0; i < 2; i++) { /* the shared MLP, once per descriptor */
        attn_tensor *h = attn_relu(ctx, attn_linear(ctx, d[i], m->fc1_w, m->fc1_b));
        attn_tensor *o = attn_linear(ctx, h, m->fc2_w, m->fc2_b);
        sum = i ? attn_add(ctx, sum, o) : o;
    }
    const int64_t s4[4] = {B, C, 1, 1};
    attn_tensor *mc = attn_reshape(ctx, attn_sigmoid(ctx, sum), 4, s4);
    if (map) *map = mc;
    return attn_mul(ctx, x, mc);
}

/* [p0; p1] -> conv (k x k, padding k/2) -> [B, 1, H, W] */
static attn_tensor *pooled_conv(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *p0,
                                attn_tensor *p1) {
    attn_tensor *cat[2] = {p0, p1};
    if (!p0 || !p1) return NULL;
    return attn__vm_conv(ctx, attn_concat(ctx, cat, 2, 1), m->sp_w, m->sp_b, m->cfg.kernel, 1);
}

/* Ms = sigmoid(BN(conv([max_c; mean_c]))), y = Ms * x (the authors' code's
 * order: max first) */
attn_tensor *attn__vm_spatial(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *x,
                              attn_tensor **map) {
    if (!x) return NULL;
    attn_tensor *s =
        pooled_conv(ctx, m, attn__vm_channel_max(ctx, x), attn__vm_channel_mean(ctx, x));
    if (m->cfg.spatial_bn) s = attn__vm_bn(ctx, m, s, &m->sp_bn);
    attn_tensor *ms = attn_sigmoid(ctx, s);
    if (map) *map = ms;
    return attn_mul(ctx, x, ms);
}

/* Ms = sigmoid(conv([mean_c; max_c])), y = Ms * x (CenterMask's order) */
attn_tensor *attn__vm_sag(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *x,
                          attn_tensor **map) {
    if (!x) return NULL;
    attn_tensor *ms = attn_sigmoid(
        ctx, pooled_conv(ctx, m, attn__vm_channel_mean(ctx, x), attn__vm_channel_max(ctx, x)));
    if (map) *map = ms;
    return attn_mul(ctx, x, ms);
}
