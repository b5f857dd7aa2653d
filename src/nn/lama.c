/* lama.c: LAMA attention pooling (include/attn/lama.h, docs/lama.md), a
 * composition of graph ops. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/lama.h"
#include "attn/ops.h"

attn_status attn_lama_init(attn_lama *m, attn_params *ps, const char *prefix, int64_t d, int64_t heads,
                           int64_t rank, attn_rng *rng) {
    static const char fn[] = "attn_lama_init";
    if (!m || !ps) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    memset(m, 0, sizeof *m);
    if (d < 1 || heads < 1 || rank < 1 || d > (1 << 20) || heads > 1024 || rank > 4096)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: d %lld, heads %lld, rank %lld: expected d in 1 .. 2^20, heads in 1 .. 1024, "
                           "rank in 1 .. 4096",
                           fn, (long long)d, (long long)heads, (long long)rank);
    m->d = d;
    m->heads = heads;
    m->rank = rank;
    const int64_t s[2] = {heads * rank, d};
    char nm[256];
    const float bd = (float)(1.0 / sqrt((double)d));
    snprintf(nm, sizeof nm, "%sp", prefix ? prefix : "");
    attn_status st = attn_params_add(ps, nm, 2, s, &m->p);
    if (st != ATTN_OK) return st;
    snprintf(nm, sizeof nm, "%sq", prefix ? prefix : "");
    st = attn_params_add(ps, nm, 2, s, &m->q);
    if (st != ATTN_OK) return st;
    if (rng) {
        attn_init_uniform(m->p, bd, rng);
        attn_init_uniform(m->q, bd, rng);
    }
    return ATTN_OK;
}

/* Checks lengths (I32 [B], values in [1, n]) and returns its values, or
 * NULL with the context's error. */
static const int32_t *check_lengths(attn_ctx *ctx, const char *op, attn_tensor *lengths, int64_t B, int64_t n) {
    if (lengths->dtype != ATTN_I32 || lengths->ndim != 1 || lengths->shape[0] != B) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: lengths %s, expected I32 [%lld]", op, attn__shp(lengths), (long long)B);
        return NULL;
    }
    const int32_t *len = (const int32_t *)lengths->data;
    for (int64_t b = 0; b < B; b++)
        if (len[b] < 1 || len[b] > n) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: lengths[%lld] = %d, expected 1 .. %lld", op, (long long)b,
                       (int)len[b], (long long)n);
            return NULL;
        }
    return len;
}

attn_tensor *attn_masked_mean(attn_ctx *ctx, attn_tensor *h, attn_tensor *lengths) {
    if (attn__any_null(ctx, "masked_mean", 1, h)) return NULL;
    if (h->ndim != 3) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "masked_mean: h %s, expected [B, n, d]", attn__shp(h));
        return NULL;
    }
    const int64_t B = h->shape[0], n = h->shape[1];
    if (!lengths) return attn_mean(ctx, h, 1, 0);
    const int32_t *len = check_lengths(ctx, "masked_mean", lengths, B, n);
    if (!len) return NULL;
    /* c = sum_i w[b, i] h[b, i], w = 1/len at valid positions, 0 beyond */
    attn_tensor *w = attn_tensor_new(ctx, ATTN_F32, 3, (const int64_t[]){B, n, 1});
    if (!w) return NULL;
    float *wf = attn_f32(w);
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < len[b]; i++) wf[b * n + i] = 1.0f / (float)len[b];
    return attn_sum(ctx, attn_mul(ctx, h, w), 1, 0);
}

attn_tensor *attn_lama_forward(attn_ctx *ctx, const attn_lama *m, attn_tensor *h, attn_tensor *lengths,
                               attn_tensor *c, attn_tensor **weights) {
    if (weights) *weights = NULL;
    if (attn__any_null(ctx, "lama", 1, h)) return NULL;
    if (!m || !m->p) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "lama: NULL or uninitialised module");
        return NULL;
    }
    const int64_t d = m->d, k = m->heads, r = m->rank;
    if (h->ndim != 3 || h->shape[2] != d) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "lama: h %s, expected [B, n, %lld]", attn__shp(h), (long long)d);
        return NULL;
    }
    const int64_t B = h->shape[0], n = h->shape[1];
    const int32_t *len = NULL;
    if (lengths && !(len = check_lengths(ctx, "lama", lengths, B, n))) return NULL;
    if (c && (c->ndim != 2 || c->shape[0] != B || c->shape[1] != d)) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "lama: c %s, expected [%lld, %lld]", attn__shp(c), (long long)B, (long long)d);
        return NULL;
    }
    if (!c) c = attn_masked_mean(ctx, h, lengths);
    /* u = (P_j^T c)_j [B, 1, k, r]; v = (Q_j^T h_i)_{i,j} [B, n, k, r] */
    attn_tensor *u = attn_reshape(ctx, attn_linear(ctx, c, m->p, NULL), 4, (const int64_t[]){B, 1, k, r});
    attn_tensor *v = attn_reshape(ctx, attn_linear(ctx, h, m->q, NULL), 4, (const int64_t[]){B, n, k, r});
    /* score [B, n, k] = sum_t u v, then [B, k, n] */
    attn_tensor *score = attn_sum(ctx, attn_mul(ctx, v, u), -1, 0);
    score = attn_permute(ctx, score, (const int[]){0, 2, 1});
    attn_tensor *mask = NULL;
    if (len) {
        mask = attn_tensor_new(ctx, ATTN_F32, 3, (const int64_t[]){B, 1, n});
        if (!mask) return NULL;
        float *mf = attn_f32(mask);
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = len[b]; i < n; i++) mf[b * n + i] = -INFINITY;
    }
    attn_tensor *a = attn_softmax(ctx, attn_contiguous(ctx, score), mask); /* [B, k, n] */
    if (!a) return NULL;
    if (weights) *weights = a;
    attn_tensor *z = attn_bmm(ctx, a, h, 0, 0); /* [B, k, d] */
    return attn_reshape(ctx, z, 2, (const int64_t[]){B, k * d});
}
