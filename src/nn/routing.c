/* routing.c: routing attention (include/attn/routing.h, docs/routing.md).
 * The assignment (top-w members of each centroid) is computed from the
 * values of the forward pass; the attention given it is built from graph ops:
 * the members' rows are gathered with the embedding op (whose backward
 * scatter-adds into the gathered tensor), attended within each cluster by one
 * sdpa call with the clusters as heads, and gathered back per token from a
 * [T, m] table of its slots (m = the most clusters any token sits in; empty
 * slots point at a zero row) weighted by 1 / (its number of clusters). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/ops.h"
#include "attn/routing.h"
#include "attn/sdpa.h"
#include "attn/transformer.h"

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

static void normalise_rows(float *p, int64_t n, int64_t D) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int64_t d = 0; d < D; d++) s += (double)p[i * D + d] * p[i * D + d];
        const float inv = s > 0.0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (int64_t d = 0; d < D; d++) p[i * D + d] *= inv;
    }
}

attn_status attn_routing_init(attn_routing *m, attn_params *ps, const char *prefix,
                              const attn_routing_config *cfg, attn_rng *rng) {
    static const char fn[] = "attn_routing_init";
    if (!m || !ps || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    memset(m, 0, sizeof *m);
    attn_routing_config c = *cfg;
    if (c.decay == 0.0f) c.decay = 0.99f;
    if (c.local_window == 0) c.local_window = c.window > 0 ? c.window : 32;
    const int64_t E = c.d_model, H = c.n_heads;
    if (E < 1 || H < 1 || E % H != 0 || c.local_heads < 0 || c.local_heads > H ||
        c.n_clusters < 1 || c.n_clusters > (int64_t)1 << 20 || c.window < 0 ||
        c.local_window < 1 || !(c.decay >= 0.0f && c.decay < 1.0f) ||
        (c.balance != ATTN_ROUTING_TOP_W && c.balance != ATTN_ROUTING_NEAREST))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: d_model %lld, n_heads %lld, local_heads %lld, n_clusters %lld, "
                           "window %lld, local_window %lld, decay %g, balance %d: expected sizes "
                           ">= 1, n_heads dividing d_model, local_heads in [0, n_heads], decay in "
                           "[0, 1), balance TOP_W (0) or NEAREST (1)",
                           fn, (long long)E, (long long)H, (long long)c.local_heads,
                           (long long)c.n_clusters, (long long)c.window,
                           (long long)c.local_window, (double)c.decay, c.balance);
    m->cfg = c;
    m->head_dim = E / H;
    attn_status st = add_linear(ps, prefix, "qk", E, E, rng, &m->wqk, &m->bqk);
    if (st == ATTN_OK) st = add_linear(ps, prefix, "v", E, E, rng, &m->wv, &m->bv);
    if (st == ATTN_OK) st = add_linear(ps, prefix, "out", E, E, rng, &m->wo, &m->bo);
    const int64_t Hr = H - c.local_heads;
    if (st == ATTN_OK && Hr > 0) {
        char full[256];
        snprintf(full, sizeof full, "%scentroids", prefix ? prefix : "");
        const int64_t cs[3] = {Hr, c.n_clusters, m->head_dim};
        st = attn_params_add(ps, full, 3, cs, &m->centroids);
        if (st == ATTN_OK) {
            m->centroids->requires_grad = 0;
            if (rng) {
                attn_init_normal(m->centroids, 1.0f, rng);
                normalise_rows(attn_f32(m->centroids), Hr * c.n_clusters, m->head_dim);
            }
        }
    }
    return st;
}

typedef struct scored {
    float s;
    int32_t t;
} scored;

static int by_score(const void *a, const void *b) { /* descending, then earlier first */
    const scored *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return (x->t > y->t) - (x->t < y->t);
}

static int by_int(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Cosines of every token with every centroid: cs [T, k]. */
static void cosines(const float *u, int64_t T, int64_t D, const float *mu, int64_t k, float *cs) {
    for (int64_t c = 0; c < k; c++) {
        double nn = 0.0;
        for (int64_t d = 0; d < D; d++) nn += (double)mu[c * D + d] * mu[c * D + d];
        const double inv_c = nn > 0.0 ? 1.0 / sqrt(nn) : 0.0;
        for (int64_t t = 0; t < T; t++) {
            double dot = 0.0, uu = 0.0;
            for (int64_t d = 0; d < D; d++) {
                dot += (double)u[t * D + d] * mu[c * D + d];
                uu += (double)u[t * D + d] * u[t * D + d];
            }
            cs[t * k + c] = (float)(uu > 0.0 ? dot * inv_c / sqrt(uu) : 0.0);
        }
    }
}

void attn_routing_assign(const float *u, int64_t N, int64_t T, int64_t D, const float *mu,
                         int64_t Hr, int64_t k, int64_t w, int32_t *members, int32_t *nearest) {
    float *cs = malloc((size_t)(T * k) * sizeof *cs);
    scored *sc = malloc((size_t)T * sizeof *sc);
    if (!cs || !sc) {
        free(cs);
        free(sc);
        return;
    }
    for (int64_t n = 0; n < N; n++) {
        const float *un = u + n * T * D, *mh = mu + (n % Hr) * k * D;
        cosines(un, T, D, mh, k, cs);
        if (nearest)
            for (int64_t t = 0; t < T; t++) {
                int64_t best = 0;
                for (int64_t c = 1; c < k; c++)
                    if (cs[t * k + c] > cs[t * k + best]) best = c;
                nearest[n * T + t] = (int32_t)best;
            }
        if (members)
            for (int64_t c = 0; c < k; c++) {
                for (int64_t t = 0; t < T; t++) sc[t] = (scored){cs[t * k + c], (int32_t)t};
                qsort(sc, (size_t)T, sizeof *sc, by_score);
                int32_t *row = members + (n * k + c) * w;
                for (int64_t j = 0; j < w; j++) row[j] = sc[j].t;
                qsort(row, (size_t)w, sizeof *row, by_int);
            }
    }
    free(cs);
    free(sc);
}

/* The k-means step of the header from the unit vectors of the batch. */
static void update_centroids(const attn_routing *m, const float *u, int64_t B, int64_t T,
                             const int32_t *nearest) {
    const int64_t Hr = m->cfg.n_heads - m->cfg.local_heads, k = m->cfg.n_clusters, D = m->head_dim;
    float *mu = attn_f32(m->centroids);
    double *acc = calloc((size_t)(k * D), sizeof *acc);
    int64_t *cnt = calloc((size_t)k, sizeof *cnt);
    if (!acc || !cnt) {
        free(acc);
        free(cnt);
        return;
    }
    const double lam = m->cfg.decay;
    for (int64_t h = 0; h < Hr; h++) {
        memset(acc, 0, (size_t)(k * D) * sizeof *acc);
        memset(cnt, 0, (size_t)k * sizeof *cnt);
        for (int64_t b = 0; b < B; b++) {
            const int64_t n = b * Hr + h;
            for (int64_t t = 0; t < T; t++) {
                const float *ut = u + (n * T + t) * D;
                double s = 0.0;
                for (int64_t d = 0; d < D; d++) s += (double)ut[d] * ut[d];
                if (!(s > 0.0)) continue;
                const double inv = 1.0 / sqrt(s);
                const int32_t c = nearest[n * T + t];
                cnt[c]++;
                for (int64_t d = 0; d < D; d++) acc[c * D + d] += ut[d] * inv;
            }
        }
        for (int64_t c = 0; c < k; c++) {
            if (!cnt[c]) continue;
            float *mc = mu + (h * k + c) * D;
            for (int64_t d = 0; d < D; d++)
                mc[d] = (float)(lam * mc[d] + (1.0 - lam) * acc[c * D + d] / (double)cnt[c]);
        }
    }
    free(acc);
    free(cnt);
}

attn_tensor *attn_routing_forward(attn_ctx *ctx, const attn_routing *m, attn_tensor *x,
                                  attn_tensor **assign, attn_tensor **members) {
    static const char fn[] = "attn_routing_forward";
    if (assign) *assign = NULL;
    if (members) *members = NULL;
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
    const attn_routing_config *c = &m->cfg;
    const int64_t E = c->d_model, H = c->n_heads, D = m->head_dim, Hl = c->local_heads, Hr = H - Hl;
    if (x->dtype != ATTN_F32 || x->ndim != 3 || x->shape[0] < 1 || x->shape[1] < 1 ||
        x->shape[2] != E) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x %s (%s), expected f32 [B, T, %lld] with T >= 1", fn,
                   attn__shp(x), attn_dtype_name(x->dtype), (long long)E);
        return NULL;
    }
    const int64_t B = x->shape[0], T = x->shape[1], k = c->n_clusters;
    if (k > 1024 && c->balance == ATTN_ROUTING_NEAREST) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: %lld clusters: at most 1024 with balance nearest",
                   fn, (long long)k);
        return NULL;
    }
    int64_t w = c->window > 0 ? c->window : (T + k - 1) / k;
    if (w > T) w = T;
    static const int p0213[4] = {0, 2, 1, 3};
    const int64_t s4[4] = {B, T, H, D};
    attn_tensor *u = attn_layernorm(ctx, attn_reshape(ctx, attn_linear(ctx, x, m->wqk, m->bqk), 4, s4),
                                    NULL, NULL, 1e-5f);
    attn_tensor *v = attn_reshape(ctx, attn_linear(ctx, x, m->wv, m->bv), 4, s4);
    u = attn_permute(ctx, u, p0213); /* [B, H, T, D] */
    v = attn_permute(ctx, v, p0213);
    if (!u || !v) return NULL;
    const float scale = (float)(1.0 / sqrt((double)D));
    attn_tensor *parts[2] = {NULL, NULL};
    int np = 0;
    if (Hl > 0) {
        attn_tensor *ul = attn_slice(ctx, u, 1, 0, Hl), *vl = attn_slice(ctx, v, 1, 0, Hl);
        attn_sdpa_opts so;
        memset(&so, 0, sizeof so);
        so.scale = scale;
        so.causal = c->causal;
        so.window = c->local_window;
        parts[np] = T >= ATTN_FUSED_MIN_KEYS ? attn_flash_sdpa(ctx, ul, ul, vl, &so, NULL)
                                             : attn_sdpa(ctx, ul, ul, vl, &so, NULL);
        if (!parts[np++]) return NULL;
    }
    if (Hr > 0) {
        const int64_t fl[2] = {B * Hr * T, D};
        attn_tensor *ur = attn_reshape(ctx, attn_contiguous(ctx, attn_slice(ctx, u, 1, Hl, Hr)), 2, fl);
        attn_tensor *vr = attn_reshape(ctx, attn_contiguous(ctx, attn_slice(ctx, v, 1, Hl, Hr)), 2, fl);
        const int64_t N = B * Hr, ns[3] = {B, Hr, T};
        attn_tensor *near = attn_tensor_new(ctx, ATTN_I32, 3, ns);
        if (!ur || !vr || !near) return NULL;
        int32_t *cnt = calloc((size_t)(N * T), sizeof *cnt);
        if (!cnt) {
            attn__fail(ctx, ATTN_ERR_OOM, "%s: out of memory (%lld counts)", fn, (long long)(N * T));
            return NULL;
        }
        attn_routing_assign(attn_f32(ur), N, T, D, attn_f32(m->centroids), Hr, k, 0, NULL,
                            attn_i32(near));
        if (c->balance == ATTN_ROUTING_NEAREST) { /* w: the largest cluster */
            w = 1;
            for (int64_t n = 0; n < N; n++) {
                int64_t sz[1024] = {0}; /* k <= 1024, checked above */
                for (int64_t t = 0; t < T; t++) {
                    const int32_t cl = attn_i32(near)[n * T + t];
                    if (++sz[cl] > w) w = sz[cl];
                }
            }
        }
        if ((double)N * (double)k * (double)w >= 2147483647.0 || (double)N * (double)T >= 2147483647.0) {
            free(cnt);
            attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: %lld x %lld clusters of %lld: more rows than i32 "
                       "indices reach", fn, (long long)N, (long long)k, (long long)w);
            return NULL;
        }
        const int64_t ms[4] = {B, Hr, k, w}, is[2] = {N * k, w};
        attn_tensor *mem = attn_tensor_new(ctx, ATTN_I32, 4, ms);
        attn_tensor *ids = attn_tensor_new(ctx, ATTN_I32, 2, is);
        if (!mem || !ids) {
            free(cnt);
            return NULL;
        }
        int32_t *mp = attn_i32(mem);
        int any_pad = 0;
        if (c->balance == ATTN_ROUTING_NEAREST) { /* members in position order, -1 after */
            for (int64_t i = 0; i < N * k * w; i++) mp[i] = -1;
            for (int64_t n = 0; n < N; n++)
                for (int64_t t = 0; t < T; t++) {
                    const int64_t cl = attn_i32(near)[n * T + t];
                    int32_t *row = mp + (n * k + cl) * w;
                    int64_t j = 0;
                    while (row[j] >= 0) j++;
                    row[j] = (int32_t)t;
                }
        } else {
            attn_routing_assign(attn_f32(ur), N, T, D, attn_f32(m->centroids), Hr, k, w, mp, NULL);
        }
        /* slot tables: how many clusters took each token */
        int32_t *ip = attn_i32(ids);
        int64_t mmax = 1;
        for (int64_t n = 0; n < N; n++)
            for (int64_t j = 0; j < k * w; j++) {
                const int32_t t = mp[n * k * w + j];
                if (t < 0) {
                    any_pad = 1;
                    ip[n * k * w + j] = (int32_t)(n * T);
                    continue;
                }
                ip[n * k * w + j] = (int32_t)(n * T + t);
                if (++cnt[n * T + t] > mmax) mmax = cnt[n * T + t];
            }
        const int64_t zrow = N * k * w; /* the zero row */
        const int64_t bs[2] = {N * T, mmax}, ws3[3] = {N * T, mmax, 1};
        attn_tensor *back = attn_tensor_new(ctx, ATTN_I32, 2, bs);
        attn_tensor *wt = attn_tensor_new(ctx, ATTN_F32, 3, ws3);
        if (!back || !wt) {
            free(cnt);
            return NULL;
        }
        int32_t *bp = attn_i32(back);
        float *wp = attn_f32(wt);
        memset(cnt, 0, (size_t)(N * T) * sizeof *cnt);
        for (int64_t i = 0; i < N * T * mmax; i++) bp[i] = (int32_t)zrow;
        for (int64_t n = 0; n < N; n++)
            for (int64_t j = 0; j < k * w; j++) {
                const int64_t t = mp[n * k * w + j], r = n * T + t;
                if (t < 0) continue;
                bp[r * mmax + cnt[r]++] = (int32_t)(n * k * w + j);
            }
        for (int64_t r = 0; r < N * T; r++)
            for (int64_t s = 0; s < cnt[r]; s++) wp[r * mmax + s] = 1.0f / (float)cnt[r];
        free(cnt);
        /* gather, attend within each cluster, gather back */
        const int64_t gs[4] = {N, k, w, D};
        attn_tensor *ug = attn_reshape(ctx, attn_embedding(ctx, ur, ids), 4, gs);
        attn_tensor *vg = attn_reshape(ctx, attn_embedding(ctx, vr, ids), 4, gs);
        attn_sdpa_opts so;
        memset(&so, 0, sizeof so);
        so.scale = scale;
        so.causal = c->causal;
        if (any_pad) { /* padding keys are masked: [N, k, 1, w] */
            const int64_t bs4[4] = {N, k, 1, w};
            so.bias = attn_tensor_new(ctx, ATTN_F32, 4, bs4);
            if (!so.bias) return NULL;
            for (int64_t i = 0; i < N * k * w; i++) attn_f32(so.bias)[i] = mp[i] < 0 ? -INFINITY : 0.0f;
        }
        attn_tensor *og = attn_sdpa(ctx, ug, ug, vg, &so, NULL);
        const int64_t of[2] = {N * k * w, D}, zs[2] = {1, D};
        attn_tensor *zero = attn_tensor_new(ctx, ATTN_F32, 2, zs);
        attn_tensor *cat[2] = {attn_reshape(ctx, og, 2, of), zero};
        if (!cat[0] || !zero) return NULL;
        attn_tensor *table = attn_concat(ctx, cat, 2, 0);
        const int64_t os[4] = {B, Hr, T, D};
        attn_tensor *o = attn_reshape(ctx, attn_sum(ctx, attn_mul(ctx, attn_embedding(ctx, table, back), wt), 1, 0), 4, os);
        if (!o) return NULL; /* [B, Hr, T, D] */
        parts[np++] = o;
        if (attn_ctx_training(ctx) && c->update)
            update_centroids(m, attn_f32(ur), B, T, attn_i32(near));
        if (assign) *assign = near;
        if (members) *members = mem;
    }
    attn_tensor *y = np == 2 ? attn_concat(ctx, parts, 2, 1) : parts[0];
    const int64_t s3[3] = {B, T, E};
    y = attn_reshape(ctx, attn_contiguous(ctx, attn_permute(ctx, y, p0213)), 3, s3);
    return attn_linear(ctx, y, m->wo, m->bo);
}
