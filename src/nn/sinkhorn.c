/* sinkhorn.c: Sparse Sinkhorn and SortCut Sinkhorn attention
 * (include/attn/sinkhorn.h, docs/sinkhorn.md). Built from graph ops: the
 * block summaries are a matmul with a constant averaging matrix, the
 * Sinkhorn iterations alternate log_softmax over rows and over columns (a
 * transposed view) with a -inf mask for the causal form, and the sorted
 * blocks are a bmm of P with the blocks flattened to rows of b D. Every
 * query block then attends to its key set with one sdpa call in which the
 * blocks play the role of heads ([B H, nb, b, D]). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/ops.h"
#include "attn/sdpa.h"
#include "attn/sinkhorn.h"

static attn_status add_linear(attn_params *ps, const char *prefix, const char *name, int64_t out,
                              int64_t in, attn_rng *rng, attn_tensor **w, attn_tensor **b) {
    char full[256];
    const int64_t ws[2] = {out, in}, bs[1] = {out};
    const float bound = (float)(1.0 / sqrt((double)in));
    snprintf(full, sizeof full, "%s%s.weight", prefix ? prefix : "", name);
    attn_status st = attn_params_add(ps, full, 2, ws, w);
    if (st == ATTN_OK) {
        snprintf(full, sizeof full, "%s%s.bias", prefix ? prefix : "", name);
        st = attn_params_add(ps, full, 1, bs, b);
    }
    if (st == ATTN_OK && rng) {
        attn_init_uniform(*w, bound, rng);
        attn_init_uniform(*b, bound, rng);
    }
    return st;
}

attn_status attn_sinkhorn_init(attn_sinkhorn *m, attn_params *ps, const char *prefix,
                               const attn_sinkhorn_config *cfg, attn_rng *rng) {
    static const char fn[] = "attn_sinkhorn_init";
    if (!m || !ps || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    memset(m, 0, sizeof *m);
    attn_sinkhorn_config c = *cfg;
    if (c.hidden == 0) c.hidden = c.d_model;
    if (c.n_iter == 0) c.n_iter = 5;
    if (c.temperature == 0.0f) c.temperature = 0.75f;
    const int64_t E = c.d_model, H = c.n_heads, l = c.max_len, b = c.block;
    if (E < 1 || H < 1 || E % H != 0 || b < 1 || l < 1 || l > (int64_t)1 << 24 || l % b != 0 ||
        c.hidden < 1 || c.hidden > (int64_t)1 << 20)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: d_model %lld, n_heads %lld, max_len %lld, block %lld, hidden %lld: "
                           "expected sizes >= 1, n_heads dividing d_model, block dividing max_len",
                           fn, (long long)E, (long long)H, (long long)l, (long long)b,
                           (long long)c.hidden);
    const int64_t nbmax = l / b;
    if (c.n_iter < 0 || c.n_iter > 100 || !(c.temperature > 0.0f) || isinf(c.temperature) ||
        c.n_sortcut < 0 || c.n_sortcut > nbmax)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: n_iter %d, temperature %g, n_sortcut %d: expected n_iter in "
                           "[0, 100], a finite temperature > 0, n_sortcut in [0, %lld blocks]",
                           fn, c.n_iter, (double)c.temperature, c.n_sortcut, (long long)nbmax);
    if (H * nbmax > (int64_t)1 << 24)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: n_heads x blocks %lld too large", fn,
                           (long long)(H * nbmax));
    m->cfg = c;
    m->head_dim = E / H;
    m->max_blocks = nbmax;
    attn_status st = add_linear(ps, prefix, "q", E, E, rng, &m->wq, &m->bq);
    if (st == ATTN_OK) st = add_linear(ps, prefix, "k", E, E, rng, &m->wk, &m->bk);
    if (st == ATTN_OK) st = add_linear(ps, prefix, "v", E, E, rng, &m->wv, &m->bv);
    if (st == ATTN_OK) st = add_linear(ps, prefix, "out", E, E, rng, &m->wo, &m->bo);
    if (st == ATTN_OK) st = add_linear(ps, prefix, "sort.0", c.hidden, E, rng, &m->w1, &m->b1);
    if (st == ATTN_OK) st = add_linear(ps, prefix, "sort.1", H * nbmax, c.hidden, rng, &m->w2, &m->b2);
    return st;
}

/* [B, T, E] -> [B, H, T, D] (a strided view). */
static attn_tensor *split_heads(attn_ctx *ctx, attn_tensor *y, int64_t H) {
    if (!y) return NULL;
    static const int perm[4] = {0, 2, 1, 3};
    const int64_t s[4] = {y->shape[0], y->shape[1], H, y->shape[2] / H};
    return attn_permute(ctx, attn_reshape(ctx, y, 4, s), perm);
}

/* A constant [n, n] mask: 0 on and below the diagonal, -inf above. */
static attn_tensor *lower_mask(attn_ctx *ctx, int64_t n) {
    const int64_t s[2] = {n, n};
    attn_tensor *t = attn_tensor_new(ctx, ATTN_F32, 2, s);
    if (!t) return NULL;
    float *p = attn_f32(t);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) p[i * n + j] = j > i ? -INFINITY : 0.0f;
    return t;
}

/* log-space Sinkhorn: n_iter times a row then a column log-normalisation of
 * L [B, H, n, n] (both over the whole row / column). Causal (mask: the
 * [n, n] lower-triangular -inf mask): the row normalisation over the visible
 * (past) entries only. A column normalisation would make row i read the
 * later rows of its column (P_ij would depend on blocks after i), and a
 * column normalised over the rows up to i only forces its first entry (the
 * diagonal) to 1 whatever R says; without it the iterations are idempotent,
 * so causal P is one masked softmax of R / tau over the past blocks. */
static attn_tensor *sinkhorn_log(attn_ctx *ctx, attn_tensor *L, attn_tensor *mask, int n_iter) {
    if (mask) return attn_log_softmax(ctx, L, mask);
    for (int it = 0; it < n_iter && L; it++) {
        L = attn_log_softmax(ctx, L, NULL); /* Fr: rows sum to 1 */
        attn_tensor *Lt = attn_contiguous(ctx, attn_transpose(ctx, L, 2, 3));
        Lt = attn_log_softmax(ctx, Lt, NULL); /* Fc: columns sum to 1 */
        L = attn_contiguous(ctx, attn_transpose(ctx, Lt, 2, 3));
    }
    return L;
}

attn_tensor *attn_sinkhorn_forward(attn_ctx *ctx, const attn_sinkhorn *m, attn_tensor *x,
                                   attn_tensor **perm) {
    static const char fn[] = "attn_sinkhorn_forward";
    if (perm) *perm = NULL;
    if (!ctx) {
        attn__error(ATTN_ERR_INVALID_ARG, "%s: context is NULL", fn);
        return NULL;
    }
    if (attn_ctx_status(ctx) != ATTN_OK) return NULL;
    if (!m) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: block is NULL", fn);
        return NULL;
    }
    if (attn__any_null(ctx, fn, 1, x)) return NULL;
    const attn_sinkhorn_config *c = &m->cfg;
    const int64_t E = c->d_model, H = c->n_heads, D = m->head_dim, b = c->block;
    if (x->dtype != ATTN_F32 || x->ndim != 3 || x->shape[0] < 1 || x->shape[1] < 1 ||
        x->shape[1] > c->max_len || x->shape[2] != E || (!c->causal && x->shape[1] % b != 0)) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: x %s (%s), expected f32 [B, T, %lld] with 1 <= T <= max_len %lld%s", fn,
                   attn__shp(x), attn_dtype_name(x->dtype), (long long)E, (long long)c->max_len,
                   c->causal ? "" : " and T a multiple of the block");
        return NULL;
    }
    const int64_t B = x->shape[0], T = x->shape[1];
    const int64_t nb = (T + b - 1) / b, Tp = nb * b;
    if (Tp > T) { /* causal only: zeros after the end */
        const int64_t zs[3] = {B, Tp - T, E};
        attn_tensor *xs[2] = {x, attn_tensor_new(ctx, ATTN_F32, 3, zs)};
        if (!xs[1]) return NULL;
        x = attn_concat(ctx, xs, 2, 1);
    }
    /* s = A x: the block summaries [B, nb, E] */
    const int64_t as[2] = {Tp, nb};
    attn_tensor *At = attn_tensor_new(ctx, ATTN_F32, 2, as); /* A^T */
    if (!At || !x) return NULL;
    float *a = attn_f32(At);
    for (int64_t i = 0; i < nb; i++) {
        const int64_t lo = c->causal ? 0 : i * b, hi = c->causal ? i * b + 1 : (i + 1) * b;
        for (int64_t t = lo; t < hi; t++) a[t * nb + i] = 1.0f / (float)(hi - lo);
    }
    static const int p021[3] = {0, 2, 1};
    attn_tensor *s = attn_permute(ctx, attn_matmul(ctx, attn_contiguous(ctx, attn_permute(ctx, x, p021)), At), p021);
    /* R [B, H, nb, nb] = the sorting network, row i from block i */
    attn_tensor *hdn = attn_relu(ctx, attn_linear(ctx, attn_contiguous(ctx, s), m->w1, m->b1));
    attn_tensor *r = attn_linear(ctx, hdn, m->w2, m->b2); /* [B, nb, H nbmax] */
    if (!r) return NULL;
    const int64_t rs[4] = {B, nb, H, m->max_blocks};
    static const int p0213[4] = {0, 2, 1, 3};
    r = attn_slice(ctx, attn_reshape(ctx, r, 4, rs), 3, 0, nb);
    r = attn_scale(ctx, attn_contiguous(ctx, attn_permute(ctx, r, p0213)), 1.0f / c->temperature);
    /* q, k, v per head and block */
    attn_tensor *q = split_heads(ctx, attn_linear(ctx, x, m->wq, m->bq), H);
    attn_tensor *k = split_heads(ctx, attn_linear(ctx, x, m->wk, m->bk), H);
    attn_tensor *v = split_heads(ctx, attn_linear(ctx, x, m->wv, m->bv), H);
    const int64_t fs[4] = {B, H, nb, b * D};
    attn_tensor *kb = attn_reshape(ctx, attn_contiguous(ctx, k), 4, fs);
    attn_tensor *vb = attn_reshape(ctx, attn_contiguous(ctx, v), 4, fs);
    if (!r || !q || !kb || !vb) return NULL;
    /* the sorted blocks ks, vs [B, H, nb, b D] */
    attn_tensor *ks = NULL, *vs = NULL, *P = NULL;
    const int sorted_any = !c->causal || nb > 1;
    if (!c->causal) {
        P = attn_exp(ctx, sinkhorn_log(ctx, r, NULL, c->n_iter));
        ks = attn_bmm(ctx, P, kb, 0, 0);
        vs = attn_bmm(ctx, P, vb, 0, 0);
    } else if (nb > 1) {
        const int64_t n1 = nb - 1;
        attn_tensor *r1 = attn_contiguous(ctx, attn_slice(ctx, attn_slice(ctx, r, 2, 1, n1), 3, 0, n1));
        P = attn_exp(ctx, sinkhorn_log(ctx, r1, lower_mask(ctx, n1), c->n_iter));
        const int64_t zs[4] = {B, H, 1, b * D};
        attn_tensor *z = attn_tensor_new(ctx, ATTN_F32, 4, zs);
        attn_tensor *kp[2] = {z, attn_bmm(ctx, P, attn_contiguous(ctx, attn_slice(ctx, kb, 2, 0, n1)), 0, 0)};
        attn_tensor *vp[2] = {z, attn_bmm(ctx, P, attn_contiguous(ctx, attn_slice(ctx, vb, 2, 0, n1)), 0, 0)};
        if (!z || !kp[1] || !vp[1]) return NULL;
        ks = attn_concat(ctx, kp, 2, 2);
        vs = attn_concat(ctx, vp, 2, 2);
    }
    if (sorted_any && (!ks || !vs)) return NULL;
    if (perm && P) {
        attn_tensor *cp = attn_tensor_new(ctx, ATTN_F32, P->ndim, P->shape);
        if (!cp) return NULL;
        memcpy(attn_f32(cp), attn_f32(P), (size_t)attn_tensor_numel(P) * sizeof(float));
        *perm = cp;
    }
    /* key sets: [B H, nb, S, D], S = the sorted part + b local keys */
    const int64_t bl[4] = {B * H, nb, b, D};
    attn_tensor *kl = attn_reshape(ctx, kb, 4, bl), *vl = attn_reshape(ctx, vb, 4, bl);
    attn_tensor *q4 = attn_reshape(ctx, attn_contiguous(ctx, q), 4, bl);
    int64_t nsort = 0; /* sorted blocks in each key set */
    attn_tensor *kk = kl, *vv = vl;
    int64_t cut0 = 0; /* SortCut: the first sorted block used */
    if (sorted_any) {
        attn_tensor *kst = attn_reshape(ctx, ks, 4, bl), *vst = attn_reshape(ctx, vs, 4, bl);
        if (c->n_sortcut == 0) {
            nsort = 1;
        } else {
            cut0 = c->causal ? 1 : 0;
            nsort = c->n_sortcut < nb - cut0 ? c->n_sortcut : nb - cut0;
            /* the first nsort sorted blocks, repeated for every query block */
            const int64_t gs[4] = {B * H, 1, nsort * b, D};
            const int64_t os[4] = {1, nb, 1, 1};
            attn_tensor *ones = attn_tensor_new(ctx, ATTN_F32, 4, os);
            if (!ones) return NULL;
            for (int64_t i = 0; i < nb; i++) attn_f32(ones)[i] = 1.0f;
            kst = attn_mul(ctx, attn_reshape(ctx, attn_contiguous(ctx, attn_slice(ctx, kst, 1, cut0, nsort)), 4, gs), ones);
            vst = attn_mul(ctx, attn_reshape(ctx, attn_contiguous(ctx, attn_slice(ctx, vst, 1, cut0, nsort)), 4, gs), ones);
        }
        attn_tensor *kp[2] = {kst, kl}, *vp[2] = {vst, vl};
        kk = attn_concat(ctx, kp, 2, 2);
        vv = attn_concat(ctx, vp, 2, 2);
    }
    const int64_t S = (nsort + 1) * b;
    attn_tensor *bias = NULL;
    if (c->causal) { /* [1, nb, b, S] */
        const int64_t bs[4] = {1, nb, b, S};
        bias = attn_tensor_new(ctx, ATTN_F32, 4, bs);
        if (!bias) return NULL;
        float *bp = attn_f32(bias);
        for (int64_t i = 0; i < nb; i++)
            for (int64_t t = 0; t < b; t++)
                for (int64_t j = 0; j < S; j++) {
                    float v0 = 0.0f;
                    if (j >= nsort * b) { /* local key j - nsort b of block i */
                        if (j - nsort * b > t) v0 = -INFINITY;
                    } else if (c->n_sortcut == 0) {
                        if (i == 0) v0 = -INFINITY; /* block 0 has no sorted block */
                    } else if (cut0 + j / b > i) {
                        v0 = -INFINITY; /* sorted block cut0 + j/b mixes blocks < itself */
                    }
                    bp[(i * b + t) * S + j] = v0;
                }
    }
    attn_sdpa_opts so;
    memset(&so, 0, sizeof so);
    so.scale = (float)(1.0 / sqrt((double)D));
    so.bias = bias;
    attn_tensor *o = attn_sdpa(ctx, q4, kk, vv, &so, NULL); /* [B H, nb, b, D] */
    if (!o) return NULL;
    const int64_t os4[4] = {B, H, Tp, D}, s3[3] = {B, Tp, E};
    attn_tensor *y = attn_permute(ctx, attn_reshape(ctx, o, 4, os4), p0213);
    y = attn_reshape(ctx, attn_contiguous(ctx, y), 3, s3);
    if (Tp > T) y = attn_contiguous(ctx, attn_slice(ctx, y, 1, 0, T));
    return attn_linear(ctx, y, m->wo, m->bo);
}
