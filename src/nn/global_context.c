/* global_context.c: the Global Context block (Cao et al. 2019, GCNet;
 * vision_modules.h, docs/vision_modules.md): attention pooling over all
 * positions with one 1x1 convolution and a softmax, a bottleneck transform
 * (1x1 conv, LayerNorm, ReLU, 1x1 conv) and a broadcast add. Graph ops only. */
#include "../core/internal.h"
#include "attn/ops.h"
#include "vision_modules_internal.h"

attn_tensor *attn__vm_gc(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *x,
                         attn_tensor **map) {
    if (!x) return NULL;
    const int64_t B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3], N = H * W;
    /* p = softmax_j(w_m . x_j + b_m)  [B, 1, N] */
    const int64_t s3[3] = {B, 1, N}, x3[3] = {B, C, N}, m4[4] = {B, 1, H, W}, y4[4] = {B, C, 1, 1};
    attn_tensor *logit = attn__vm_conv(ctx, x, m->mask_w, m->mask_b, 1, 1);
    attn_tensor *p = attn_softmax(ctx, attn_reshape(ctx, logit, 3, s3), NULL);
    /* context_c = sum_j x_cj p_j: [B, C, N] @ [B, N, 1] */
    attn_tensor *cx = attn_bmm(ctx, attn_reshape(ctx, x, 3, x3), p, 0, 1);
    if (!cx) return NULL;
    const int64_t s2[2] = {B, C};
    attn_tensor *h = attn_linear(ctx, attn_reshape(ctx, cx, 2, s2), m->fc1_w, m->fc1_b);
    h = attn_relu(ctx, attn_layernorm(ctx, h, m->ln_w, m->ln_b, 1e-5f));
    attn_tensor *t = attn_linear(ctx, h, m->fc2_w, m->fc2_b);
    if (map && p) *map = attn_reshape(ctx, p, 4, m4);
    return attn_add(ctx, x, attn_reshape(ctx, t, 4, y4));
}
