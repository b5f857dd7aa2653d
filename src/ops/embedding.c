/* embedding.c: row lookup, as torch.nn.functional.embedding.
 *
 * Shape contract: weight [V, C] f32, ids [...] i32 (0 to 3 dims) ->
 * y [..., C]; y[p, :] = weight[ids[p], :]. Inputs: in[0] = weight,
 * in[1] = ids (validated in [0, V) when the op is built).
 * Backward: gweight[ids[p], :] += gy[p, :].
 */
#include <stdio.h>
#include <string.h>

#include "../core/internal.h"
#include "view_internal.h"
#include "attn/ops.h"

/* "[i,j,k]": the multi-index of flat position p in a tensor of shape t. */
static void index_str(const attn_tensor *t, int64_t p, char *buf, size_t n) {
    int64_t idx[ATTN_MAX_DIMS];
    for (int d = t->ndim - 1; d >= 0; d--) {
        idx[d] = t->shape[d] > 0 ? p % t->shape[d] : 0;
        p = t->shape[d] > 0 ? p / t->shape[d] : 0;
    }
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? ",%lld" : "%lld", (long long)idx[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

attn_tensor *attn_embedding(attn_ctx *ctx, attn_tensor *weight, attn_tensor *ids) {
    const char *name = "embedding";
    if (attn__any_null(ctx, name, 2, weight, ids)) return NULL;
    if (attn__check_dtype(ctx, name, "weight", weight, ATTN_F32)) return NULL;
    if (attn__check_dtype(ctx, name, "ids", ids, ATTN_I32)) return NULL;
    if (weight->ndim != 2) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: weight %s: expected [V, C]", name, attn__shp(weight));
        return NULL;
    }
    if (ids->ndim > ATTN_MAX_DIMS - 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: ids %s has %d dims, at most %d (the output adds the channel dim)", name,
                   attn__shp(ids), ids->ndim, ATTN_MAX_DIMS - 1);
        return NULL;
    }
    weight = attn__contig(ctx, weight);
    ids = attn__contig(ctx, ids);
    if (!weight || !ids) return NULL;
    const int64_t V = weight->shape[0], C = weight->shape[1], n = attn_tensor_numel(ids);
    const int32_t *id = attn_i32(ids);
    for (int64_t p = 0; p < n; p++)
        if (id[p] < 0 || id[p] >= V) {
            char at[64];
            index_str(ids, p, at, sizeof at);
            attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                       "%s: ids%s = %d is outside [0, %lld) (the rows of weight %s)", name, at,
                       (int)id[p], (long long)V, attn__shp(weight));
            return NULL;
        }
    int64_t sh[ATTN_MAX_DIMS];
    for (int d = 0; d < ids->ndim; d++) sh[d] = ids->shape[d];
    sh[ids->ndim] = C;
    attn_tensor *y = attn__tensor(ctx, name, ATTN_F32, ids->ndim + 1, sh);
    if (!y) return NULL;
    attn_tensor *in[2] = {weight, ids};
    return attn__run(ctx, attn__node(ctx, ATTN_OP_EMBEDDING, 2, in, y));
}

attn_status attn__embedding_forward(attn_ctx *ctx, attn_node *node) {
    const float *w = attn_f32(node->in[0]);
    const int32_t *id = attn_i32(node->in[1]);
    float *y = attn_f32(node->out);
    const int64_t C = node->in[0]->shape[1], n = attn_tensor_numel(node->in[1]);
    int nt = attn__threads_for(ctx, 2.0 * (double)n * (double)C);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t p = 0; p < n; p++)
        memcpy(y + p * C, w + (int64_t)id[p] * C, (size_t)C * sizeof(float));
    return ATTN_OK;
}

attn_status attn__embedding_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const float *w = attn_f32(node->in[0]);
    const int32_t *id = attn_i32(node->in[1]);
    float *y = attn_f32(node->out);
    const int64_t C = node->in[0]->shape[1], n = attn_tensor_numel(node->in[1]);
    for (int64_t p = 0; p < n; p++)
        for (int64_t c = 0; c < C; c++) y[p * C + c] = w[(int64_t)id[p] * C + c];
    return ATTN_OK;
}

attn_status attn__embedding_backward(attn_ctx *ctx, attn_node *node) {
    /* y[p, :] = weight[ids[p], :]  =>  gweight[ids[p], :] += gy[p, :].
     * Task k of nt owns the vocabulary rows [V k / nt, V (k+1) / nt) and walks
     * all positions in order, adding only the ones whose id it owns: no two
     * tasks write the same row, and every row sums its positions in the same
     * order whatever nt is, so the result is bitwise independent of it. */
    if (!attn__needs_grad(node, 0)) return ATTN_OK;
    const int32_t *id = attn_i32(node->in[1]);
    const float *gy = node->out->grad;
    float *gw = node->in[0]->grad;
    const int64_t V = node->in[0]->shape[0], C = node->in[0]->shape[1];
    const int64_t n = attn_tensor_numel(node->in[1]);
    int nt = attn__threads_for(ctx, 2.0 * (double)n * (double)C);
    if (nt > V) nt = V > 0 ? (int)V : 1;
    const int64_t tasks = nt;
    ATTN__OMP_FOR(nt)
    for (int64_t k = 0; k < tasks; k++) {
        const int64_t lo = V * k / tasks, hi = V * (k + 1) / tasks;
        for (int64_t p = 0; p < n; p++) {
            const int64_t v = id[p];
            if (v < lo || v >= hi) continue;
            float *dst = gw + v * C;
            const float *src = gy + p * C;
            for (int64_t c = 0; c < C; c++) dst[c] += src[c];
        }
    }
    return ATTN_OK;
}
