/* soft_attention.c: channel-wise soft attention across branches, the
 * fusion of a selective-kernel unit in the form of ResNeSt's split attention
 * (vision_modules.h, docs/vision_modules.md): softmax over the branches per
 * channel, then the weighted sum of the branches. Graph ops only. */
#include <string.h>

#include "../core/internal.h"
#include "attn/ops.h"
#include "vision_modules_internal.h"

attn_tensor *attn_channel_soft_attention(attn_ctx *ctx, attn_tensor *const *u, int K,
                                         attn_tensor *logits, attn_tensor **a) {
    static const char fn[] = "channel_soft_attention";
    if (a) *a = NULL;
    if (!ctx) return NULL;
    if (!u || K < 2 || K > 4) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: %d branches, expected 2 to 4", fn, K);
        return NULL;
    }
    if (attn__any_null(ctx, fn, 1, logits)) return NULL;
    for (int k = 0; k < K; k++)
        if (attn__any_null(ctx, fn, 1, u[k])) return NULL;
    const attn_tensor *u0 = u[0];
    int ok = u0->dtype == ATTN_F32 && u0->ndim == 4 && logits->dtype == ATTN_F32 &&
             logits->ndim == 3 && logits->shape[0] == u0->shape[0] && logits->shape[1] == K &&
             logits->shape[2] == u0->shape[1];
    for (int k = 1; k < K && ok; k++)
        ok = u[k]->dtype == ATTN_F32 && u[k]->ndim == 4 &&
             !memcmp(u[k]->shape, u0->shape, sizeof u0->shape);
    if (!ok) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: branches %s ... (%d of them), logits %s: expected f32 branches of one "
                   "shape [B, C, H, W] and logits [B, %d, C]",
                   fn, attn__shp(u0), K, attn__shp(logits), K);
        return NULL;
    }
    const int64_t B = u0->shape[0], C = u0->shape[1];
    /* softmax over k per channel: [B, K, C] -> [B, C, K] */
    attn_tensor *w = attn_softmax(ctx, attn_contiguous(ctx, attn_transpose(ctx, logits, 1, 2)), NULL);
    attn_tensor *wt = attn_contiguous(ctx, attn_transpose(ctx, w, 1, 2)); /* [B, K, C] */
    if (!wt) return NULL;
    attn_tensor *y = NULL;
    const int64_t s4[4] = {B, C, 1, 1};
    for (int k = 0; k < K; k++) {
        attn_tensor *ak = attn_reshape(ctx, attn_slice(ctx, wt, 1, k, 1), 4, s4);
        attn_tensor *t = attn_mul(ctx, u[k], ak);
        y = k ? attn_add(ctx, y, t) : t;
    }
    if (y && a) *a = wt;
    return y;
}

attn_tensor *attn__vm_soft(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *x,
                           attn_tensor **map) {
    if (!x) return NULL;
    const int K = (int)m->cfg.branches;
    const int64_t B = x->shape[0], C = x->shape[1];
    attn_tensor *u[4] = {NULL, NULL, NULL, NULL}, *sum = NULL;
    for (int k = 0; k < K; k++) { /* U_k = ReLU(BN(conv3x3, dilation k+1)) */
        u[k] = attn_relu(ctx, attn__vm_bn(ctx, m, attn__vm_conv(ctx, x, m->br_w[k], NULL, 3, k + 1),
                                          &m->br_bn[k]));
        sum = k ? attn_add(ctx, sum, u[k]) : u[k];
    }
    attn_tensor *z = attn_relu(ctx, attn__vm_bn(ctx, m, attn_linear(ctx, attn__vm_avgpool(ctx, sum),
                                                                     m->fc1_w, m->fc1_b),
                                                &m->fuse_bn));
    const int64_t l3[3] = {B, K, C};
    attn_tensor *logits = attn_reshape(ctx, attn_linear(ctx, z, m->fc2_w, m->fc2_b), 3, l3);
    if (!logits) return NULL;
    attn_tensor *v = attn_channel_soft_attention(ctx, u, K, logits, map);
    return attn_add(ctx, x, v);
}
