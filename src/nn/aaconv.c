/* aaconv.c: attention-augmented convolution (Bello et al. 2019;
 * vision_modules.h, docs/vision_modules.md): a 3x3 convolution's output
 * concatenated with multi-head self-attention over the positions, whose
 * logits carry 2-D relative position terms (width and height). Graph ops
 * only; the relative terms are matmuls with the embedding tables and a
 * gather (the embedding op) of the offsets each key sits at. */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/ops.h"
#include "vision_modules_internal.h"

/* full [P, H, W, 2L-1] (query (h, w) against every offset) -> [P, N, ...]:
 * along_w: out[p, (h, w), 1, w'] = full[p, h, w, w' - w + W - 1] -> [P, N, 1, W];
 * else:    out[p, (h, w), h', 1] = full[p, h, w, h' - h + H - 1] -> [P, N, H, 1]. */
static attn_tensor *rel_to_abs(attn_ctx *ctx, attn_tensor *full, int along_w) {
    if (!full) return NULL;
    const int64_t P = full->shape[0], H = full->shape[1], W = full->shape[2], L2 = full->shape[3];
    const int64_t K = along_w ? W : H, n = P * H * W;
    if (n > INT32_MAX / L2) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "aaconv: relative logits %s are too many to index",
                   attn__shp(full));
        return NULL;
    }
    const int64_t is[3] = {P * H, W, K}, flat[2] = {n * L2, 1};
    attn_tensor *ids = attn_tensor_new(ctx, ATTN_I32, 3, is);
    if (!ids) return NULL;
    int32_t *id = attn_i32(ids);
    for (int64_t ph = 0; ph < P * H; ph++)
        for (int64_t w = 0; w < W; w++)
            for (int64_t k = 0; k < K; k++) {
                const int64_t q = along_w ? w : ph % H;
                id[(ph * W + w) * K + k] = (int32_t)((ph * W + w) * L2 + (k - q + K - 1));
            }
    attn_tensor *g = attn_embedding(ctx, attn_reshape(ctx, full, 2, flat), ids);
    const int64_t ow[4] = {P, H * W, 1, W}, oh[4] = {P, H * W, H, 1};
    return attn_reshape(ctx, g, 4, along_w ? ow : oh);
}

/* t [B, c, H, W] -> [B, heads, N, c / heads] */
static attn_tensor *split_heads(attn_ctx *ctx, attn_tensor *t, int64_t heads) {
    if (!t) return NULL;
    const int64_t B = t->shape[0], c = t->shape[1], N = t->shape[2] * t->shape[3];
    const int64_t s4[4] = {B, heads, c / heads, N};
    return attn_contiguous(ctx, attn_transpose(ctx, attn_reshape(ctx, attn_contiguous(ctx, t), 4, s4), 2, 3));
}

attn_tensor *attn__vm_aaconv(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *x,
                             attn_tensor **map) {
    if (!x) return NULL;
    const attn_vision_module_config *c = &m->cfg;
    const int64_t B = x->shape[0], H = x->shape[2], W = x->shape[3], N = H * W;
    const int64_t Nh = c->heads, dk = c->key_channels, dv = c->value_channels, dkh = dk / Nh;
    attn_tensor *conv = attn__vm_conv(ctx, x, m->conv_w, m->conv_b, 3, 1);
    attn_tensor *qkv = attn__vm_conv(ctx, x, m->qkv_w, m->qkv_b, 1, 1);
    attn_tensor *parts[3];
    const int64_t sizes[3] = {dk, dk, dv};
    if (!qkv || attn_split(ctx, qkv, 1, 3, sizes, parts)) return NULL;
    attn_tensor *q = attn_scale(ctx, split_heads(ctx, parts[0], Nh), (float)(1.0 / sqrt((double)dkh)));
    attn_tensor *k = split_heads(ctx, parts[1], Nh), *v = split_heads(ctx, parts[2], Nh);
    attn_tensor *logits = attn_bmm(ctx, q, k, 0, 1); /* [B, Nh, N, N] */
    /* relative logits: q . r_{offset}, then each key's offset picked */
    const int64_t q4[4] = {B * Nh, H, W, dkh}, l4[4] = {B, Nh, N, N};
    attn_tensor *qs = attn_reshape(ctx, q, 4, q4);
    attn_tensor *rw = attn_contiguous(ctx, attn_transpose(ctx, m->rel_w, 0, 1));
    attn_tensor *rh = attn_contiguous(ctx, attn_transpose(ctx, m->rel_h, 0, 1));
    attn_tensor *rel = attn_add(ctx, rel_to_abs(ctx, attn_matmul(ctx, qs, rw), 1),
                                rel_to_abs(ctx, attn_matmul(ctx, qs, rh), 0)); /* [B Nh, N, H, W] */
    logits = attn_add(ctx, logits, attn_reshape(ctx, rel, 4, l4));
    attn_tensor *p = attn_softmax(ctx, logits, NULL);
    attn_tensor *o = attn_bmm(ctx, p, v, 0, 0); /* [B, Nh, N, dv / Nh] */
    if (!o) return NULL;
    const int perm[4] = {0, 1, 3, 2};
    const int64_t o4[4] = {B, dv, H, W};
    o = attn_reshape(ctx, attn_contiguous(ctx, attn_permute(ctx, o, perm)), 4, o4);
    o = attn__vm_conv(ctx, o, m->out_w, m->out_b, 1, 1);
    if (map) {
        const int64_t m3[3] = {B, N, N};
        *map = attn_reshape(ctx, attn_contiguous(ctx, attn_slice(ctx, p, 1, 0, 1)), 3, m3);
    }
    attn_tensor *cat[2] = {conv, o};
    return conv ? attn_concat(ctx, cat, 2, 1) : NULL;
}
