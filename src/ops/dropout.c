/* dropout.c: inverted dropout with a replayable counter-based mask.
 *
 * Shape contract: x [...] f32 -> y [...]. farg[0] = p, node->seed = the
 * context's seed, iarg[0] = the stream offset taken from the context. Element
 * i is kept iff attn_rng_uniform(seed, offset, i) >= p, so that
 *   y_i = keep_i ? x_i / (1 - p) : 0.
 * The op consumes ceil(numel / 4) counters of the context's stream (one
 * Philox block gives four elements); the mask is recomputed in backward, not
 * stored. Without training mode, or with p == 0, the op returns x itself.
 *
 * With a batch slice (attn_ctx_set_batch_slice: rows [row0, row0 + rows) of
 * a batch of `total`) and numel a multiple of rows, x is taken as those rows
 * of the global batch's tensor: element i is element g0 + i of it (iarg[1]
 * = g0 = row0 numel / rows), kept iff attn_rng_uniform(seed, offset, g0 + i)
 * >= p, and the op consumes the global tensor's ceil(total numel / rows / 4)
 * counters: the masks of the single process's rows, on every rank.
 */

#include "../core/internal.h"
#include "view_internal.h"
#include "attn/ops.h"

attn_tensor *attn_dropout(attn_ctx *ctx, attn_tensor *x, float p) {
    const char *name = "dropout";
    if (attn__any_null(ctx, name, 1, x)) return NULL;
    if (attn__check_dtype(ctx, name, "x", x, ATTN_F32)) return NULL;
    if (!(p >= 0.0f && p < 1.0f)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: p %g is outside [0, 1) (x %s)", name, (double)p,
                   attn__shp(x));
        return NULL;
    }
    if (!ctx->training || p == 0.0f) return x;
    x = attn__contig(ctx, x);
    if (!x) return NULL;
    attn_tensor *y = attn__tensor_like(ctx, name, x);
    if (!y) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_DROPOUT, 1, &x, y);
    if (!node) return NULL;
    uint64_t seed = 0, g0 = 0;
    node->iarg[0] = (int64_t)attn__rng_take(ctx, (uint64_t)attn_tensor_numel(x), &seed, &g0);
    node->iarg[1] = (int64_t)g0;
    node->seed = seed;
    node->farg[0] = p;
    return attn__run(ctx, node);
}

/* Applies the mask of the node to src: dst_i (op)= keep_i ? src_i * scale : 0,
 * with op "=" (forward) or "+=" (backward). Element i is element g = g0 + i
 * of the (global) stream; one Philox block serves the four elements 4b ..
 * 4b+3 of it; blocks are split statically over threads. */
static void dropout_apply(attn_ctx *ctx, const attn_node *node, const float *src, float *dst,
                          int accumulate) {
    const int64_t n = attn_tensor_numel(node->out), g0 = node->iarg[1];
    const uint64_t seed = node->seed, offset = (uint64_t)node->iarg[0];
    const float p = node->farg[0];
    const float scale = 1.0f / (1.0f - p);
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const int64_t b0 = g0 / 4, b1 = (g0 + n + 3) / 4; /* the blocks of elements g0 .. g0 + n - 1 */
    int nt = attn__threads_for(ctx, 32.0 * (double)n);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t b = b0; b < b1; b++) {
        const uint64_t c = offset + (uint64_t)b;
        const uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), 0, 0};
        uint32_t w[4];
        attn_philox4x32(ctr, key, w);
        const int64_t i0 = 4 * b - g0; /* this tensor's index of the block's first element */
        const int k0 = i0 < 0 ? (int)-i0 : 0, m = n - i0 < 4 ? (int)(n - i0) : 4;
        for (int k = k0; k < m; k++) {
            const float u = (float)(w[k] >> 8) * 0x1.0p-24f; /* = attn_rng_uniform */
            const float v = u >= p ? src[i0 + k] * scale : 0.0f;
            if (accumulate)
                dst[i0 + k] += v;
            else
                dst[i0 + k] = v;
        }
    }
}

attn_status attn__dropout_forward(attn_ctx *ctx, attn_node *node) {
    dropout_apply(ctx, node, attn_f32(node->in[0]), attn_f32(node->out), 0);
    return ATTN_OK;
}

attn_status attn__dropout_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const int64_t n = attn_tensor_numel(node->out);
    const uint64_t seed = node->seed, offset = (uint64_t)node->iarg[0], g0 = (uint64_t)node->iarg[1];
    const double p = node->farg[0];
    const float *x = attn_f32(node->in[0]);
    float *y = attn_f32(node->out);
    for (int64_t i = 0; i < n; i++) {
        const int keep = attn_rng_uniform(seed, offset, g0 + (uint64_t)i) >= node->farg[0];
        y[i] = keep ? (float)((double)x[i] / (1.0 - p)) : 0.0f;
    }
    return ATTN_OK;
}

attn_status attn__dropout_backward(attn_ctx *ctx, attn_node *node) {
    /* y_i = keep_i x_i / (1 - p)  =>  gx_i += keep_i gy_i / (1 - p), with the
     * same mask regenerated from (seed, offset). */
    if (!attn__needs_grad(node, 0)) return ATTN_OK;
    dropout_apply(ctx, node, node->out->grad, node->in[0]->grad, 1);
    return ATTN_OK;
}
