/* psa.c: point-wise spatial attention (Zhao et al. 2018, PSANet;
 * vision_modules.h, docs/vision_modules.md): each position predicts an
 * over-complete (2H-1) x (2W-1) map; the H x W window of it centred on the
 * position gives the position's weights (collect) or the weights it hands
 * out (distribute). The window cut is a gather (the embedding op over the
 * flattened map), so its backward is the embedding's scatter-add. */
#include <limits.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/ops.h"
#include "vision_modules_internal.h"

attn_tensor *attn_psa_gather(attn_ctx *ctx, attn_tensor *over, int64_t H, int64_t W,
                             int distribute) {
    static const char fn[] = "psa_gather";
    if (!ctx) return NULL;
    if (attn__any_null(ctx, fn, 1, over)) return NULL;
    const int64_t R = (2 * H - 1) * (2 * W - 1), N = H * W;
    if (H < 1 || W < 1 || H > 64 || W > 64 || over->dtype != ATTN_F32 || over->ndim != 4 ||
        over->shape[1] != R || over->shape[2] != H || over->shape[3] != W) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: over %s (%s) with H %lld, W %lld: expected f32 [B, (2H-1)(2W-1) = %lld, H, "
                   "W], H and W in [1, 64]",
                   fn, attn__shp(over), attn_dtype_name(over->dtype), (long long)H, (long long)W,
                   (long long)R);
        return NULL;
    }
    const int64_t B = over->shape[0];
    if (B > INT32_MAX / (R * N) || B * N > INT32_MAX / N) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: over %s: %lld x %lld values is too many to index", fn,
                   attn__shp(over), (long long)B, (long long)(R * N));
        return NULL;
    }
    const int64_t flat[2] = {B * R * N, 1}, is[3] = {B, N, N}, os[3] = {B, N, N};
    attn_tensor *ids = attn_tensor_new(ctx, ATTN_I32, 3, is);
    if (!ids) return NULL;
    int32_t *id = attn_i32(ids);
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < N; j++)
            for (int64_t i = 0; i < N; i++) {
                const int64_t hi = i / W, wi = i % W, hj = j / W, wj = j % W;
                /* collect: position i's map at the offset of j from i;
                 * distribute: position j's map at the offset of i from j */
                const int64_t at = distribute ? j : i;
                const int64_t dh = distribute ? hi - hj : hj - hi, dw = distribute ? wi - wj : wj - wi;
                const int64_t r = (dh + H - 1) * (2 * W - 1) + (dw + W - 1);
                id[(b * N + j) * N + i] = (int32_t)((b * R + r) * N + at);
            }
    attn_tensor *g = attn_embedding(ctx, attn_reshape(ctx, over, 2, flat), ids);
    return attn_reshape(ctx, g, 3, os);
}

/* z = (1/N) sum_j A[j, i] r_j for one branch; r [B, Ch, H, W] */
static attn_tensor *branch(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *x, int b,
                           attn_tensor **weights) {
    const int64_t B = x->shape[0], H = x->shape[2], W = x->shape[3], Ch = m->hidden;
    attn_tensor *r = attn_relu(ctx, attn__vm_bn(ctx, m, attn__vm_conv(ctx, x, m->psa_reduce_w[b], NULL, 1, 1),
                                                &m->psa_reduce_bn[b]));
    attn_tensor *a = attn_relu(ctx, attn__vm_bn(ctx, m, attn__vm_conv(ctx, r, m->psa_att_w[b], NULL, 1, 1),
                                                &m->psa_att_bn[b]));
    attn_tensor *over = attn__vm_conv(ctx, a, m->psa_map_w[b], m->psa_map_b[b], 1, 1);
    attn_tensor *A = attn_psa_gather(ctx, over, H, W, b);
    if (!A || !r) return NULL;
    if (weights) *weights = attn_contiguous(ctx, attn_transpose(ctx, A, 1, 2));
    const int64_t r3[3] = {B, Ch, H * W}, z4[4] = {B, Ch, H, W};
    attn_tensor *z = attn_bmm(ctx, attn_reshape(ctx, r, 3, r3), A, 0, 0);
    return attn_reshape(ctx, attn_scale(ctx, z, 1.0f / (float)(H * W)), 4, z4);
}

attn_tensor *attn__vm_psa(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *x,
                          attn_tensor **map) {
    if (!x) return NULL;
    attn_tensor *z[2] = {branch(ctx, m, x, 0, map), branch(ctx, m, x, 1, NULL)};
    if (!z[0] || !z[1]) return NULL;
    attn_tensor *p = attn__vm_conv(ctx, attn_concat(ctx, z, 2, 1), m->proj_w, NULL, 1, 1);
    return attn_add(ctx, x, attn_relu(ctx, attn__vm_bn(ctx, m, p, &m->fuse_bn)));
}
