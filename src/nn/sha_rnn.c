/* sha_rnn.c: the SHA-RNN's single-headed attention and Boom feed-forward
 * (include/attn/sha_rnn.h, docs/sha_rnn.md). Both are compositions of graph
 * ops; the attention core is the SDPA op with one head. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/ops.h"
#include "attn/sdpa.h"
#include "attn/sha_rnn.h"

/* prefix + name, added zero; uniform +-bound when rng and bound > 0, the
 * constant `fill` when rng and bound == 0. */
static attn_status add_param(attn_params *ps, const char *prefix, const char *name, int ndim,
                             const int64_t *shape, float bound, float fill, attn_rng *rng,
                             attn_tensor **out) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix ? prefix : "", name);
    attn_status st = attn_params_add(ps, full, ndim, shape, out);
    if (st == ATTN_OK && rng) {
        if (bound > 0) attn_init_uniform(*out, bound, rng);
        else attn_init_constant(*out, fill);
    }
    return st;
}

attn_status attn_sha_attention_init(attn_sha_attention *m, attn_params *ps, const char *prefix,
                                    int64_t d, attn_rng *rng) {
    static const char fn[] = "attn_sha_attention_init";
    if (!m || !ps) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    memset(m, 0, sizeof *m);
    if (d < 1 || d > (int64_t)1 << 20)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: d %lld, expected 1 .. 2^20", fn, (long long)d);
    m->d = d;
    const int64_t gs[3] = {1, 1, d}, wq[2] = {d, d}, vec[1] = {d}, wv[2] = {2 * d, d}, bv[1] = {2 * d};
    const float bd = (float)(1.0 / sqrt((double)d));
    attn_status st = add_param(ps, prefix, "qs", 3, gs, 0.0f, 0.0f, rng, &m->qs);
    if (st == ATTN_OK) st = add_param(ps, prefix, "ks", 3, gs, 0.0f, 0.0f, rng, &m->ks);
    if (st == ATTN_OK) st = add_param(ps, prefix, "vs", 3, gs, 0.0f, 0.0f, rng, &m->vs);
    if (st == ATTN_OK) st = add_param(ps, prefix, "q.weight", 2, wq, bd, 0.0f, rng, &m->q_w);
    if (st == ATTN_OK) st = add_param(ps, prefix, "q.bias", 1, vec, bd, 0.0f, rng, &m->q_b);
    if (st == ATTN_OK) st = add_param(ps, prefix, "qln.weight", 1, vec, 0.0f, 1.0f, rng, &m->qln_g);
    if (st == ATTN_OK) st = add_param(ps, prefix, "qln.bias", 1, vec, 0.0f, 0.0f, rng, &m->qln_b);
    if (st == ATTN_OK) st = add_param(ps, prefix, "vq.l1.weight", 2, wv, bd, 0.0f, rng, &m->vq_w);
    if (st == ATTN_OK) st = add_param(ps, prefix, "vq.l1.bias", 1, bv, bd, 0.0f, rng, &m->vq_b);
    return st;
}

attn_status attn_boom_init(attn_boom *m, attn_params *ps, const char *prefix, int64_t d, int64_t n,
                           attn_rng *rng) {
    static const char fn[] = "attn_boom_init";
    if (!m || !ps) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    memset(m, 0, sizeof *m);
    if (d < 1 || n < 1 || d > (int64_t)1 << 20 || n > 64)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: d %lld, n %lld: expected d in 1 .. 2^20, n in 1 .. 64",
                           fn, (long long)d, (long long)n);
    m->d = d;
    m->n = n;
    const int64_t ws[2] = {n * d, d}, bs[1] = {n * d};
    const float bd = (float)(1.0 / sqrt((double)d));
    attn_status st = add_param(ps, prefix, "linear1.weight", 2, ws, bd, 0.0f, rng, &m->w1);
    if (st == ATTN_OK) st = add_param(ps, prefix, "linear1.bias", 1, bs, bd, 0.0f, rng, &m->b1);
    return st;
}

attn_tensor *attn_gelu_sigmoid(attn_ctx *ctx, attn_tensor *x) {
    /* gelu(x) = x sigmoid(1.702 x) (the released code's GELU) */
    return attn_mul(ctx, x, attn_sigmoid(ctx, attn_scale(ctx, x, 1.702f)));
}

attn_tensor *attn_boom_forward(attn_ctx *ctx, const attn_boom *m, attn_tensor *x) {
    if (attn__any_null(ctx, "boom", 1, x)) return NULL;
    if (!m || !m->w1) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "boom: NULL or uninitialised module");
        return NULL;
    }
    if (x->ndim < 1 || x->ndim > 3 || x->shape[x->ndim - 1] != m->d) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "boom: x %s, expected [..., %lld] with at most 3 dims", attn__shp(x),
                   (long long)m->d);
        return NULL;
    }
    attn_tensor *u = attn_gelu_sigmoid(ctx, attn_linear(ctx, x, m->w1, m->b1));
    if (!u) return NULL;
    /* [..., n d] -> [..., n, d], summed over the n chunks */
    int64_t s[4];
    for (int i = 0; i < x->ndim - 1; i++) s[i] = x->shape[i];
    s[x->ndim - 1] = m->n;
    s[x->ndim] = m->d;
    return attn_sum(ctx, attn_reshape(ctx, u, x->ndim + 1, s), -2, 0);
}

attn_tensor *attn_sha_attention_forward(attn_ctx *ctx, const attn_sha_attention *m, attn_tensor *x_q,
                                        attn_tensor *x_kv, int causal, attn_tensor **weights) {
    if (weights) *weights = NULL;
    if (attn__any_null(ctx, "sha_attention", 2, x_q, x_kv)) return NULL;
    if (!m || !m->qs) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "sha_attention: NULL or uninitialised module");
        return NULL;
    }
    const int64_t d = m->d;
    if (x_q->ndim != 3 || x_kv->ndim != 3 || x_q->shape[2] != d || x_kv->shape[2] != d ||
        x_q->shape[0] != x_kv->shape[0] || x_kv->shape[1] < x_q->shape[1]) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "sha_attention: x_q %s and x_kv %s, expected [B, T, %lld] and [B, S, %lld] with S >= T",
                   attn__shp(x_q), attn__shp(x_kv), (long long)d, (long long)d);
        return NULL;
    }
    const int64_t B = x_q->shape[0], T = x_q->shape[1], S = x_kv->shape[1];
    /* the gates: qs = sigmoid(s_q), ks = sigmoid(s_k), vs = overparam(sigmoid(s_v)) */
    attn_tensor *qs = attn_sigmoid(ctx, m->qs), *ks = attn_sigmoid(ctx, m->ks);
    attn_tensor *cf = attn_linear(ctx, attn_sigmoid(ctx, m->vs), m->vq_w, m->vq_b); /* [1, 1, 2d] */
    attn_tensor *cf2[2] = {NULL, NULL};
    if (!cf || attn_split(ctx, cf, 2, 2, (const int64_t[]){d, d}, cf2) != 0) return NULL;
    attn_tensor *vs = attn_mul(ctx, attn_sigmoid(ctx, cf2[1]), attn_tanh(ctx, cf2[0]));
    /* Q = qs * LN(W_q x_q + b_q); K = ks * x_kv; V = vs * x_kv */
    attn_tensor *q = attn_layernorm(ctx, attn_linear(ctx, x_q, m->q_w, m->q_b), m->qln_g, m->qln_b, 1e-12f);
    q = attn_mul(ctx, q, qs);
    attn_tensor *k = attn_mul(ctx, x_kv, ks), *v = attn_mul(ctx, x_kv, vs);
    q = attn_reshape(ctx, q, 4, (const int64_t[]){B, 1, T, d});
    k = attn_reshape(ctx, k, 4, (const int64_t[]){B, 1, S, d});
    v = attn_reshape(ctx, v, 4, (const int64_t[]){B, 1, S, d});
    attn_sdpa_opts o;
    memset(&o, 0, sizeof o);
    o.causal = causal != 0;
    attn_tensor *y = attn_sdpa(ctx, q, k, v, &o, weights);
    return attn_reshape(ctx, y, 3, (const int64_t[]){B, T, d});
}
