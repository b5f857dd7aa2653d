/* lsh_attention.c: the Reformer's LSH attention, graph op LSH_ATTENTION
 * (include/attn/reformer.h; docs/reformer.md has the derivations).
 *
 * Node layout:
 *   in[0] qk [B,H,T,D], in[1] v [B,H,T,Dv] (contiguous).
 *   iarg[0] R (rounds), iarg[1] L (chunk length), iarg[2] causal.
 *   farg[0] mask value, farg[1] self-mask value, farg[2] normalisation eps.
 *   -> out [B,H,T,Dv];
 *   saved[0] P [B,H,N,2L] with N = R T: the window weights of each sorted
 *            query (window order: previous chunk, then its own chunk; 0 past
 *            the window's width);
 *   saved[1] O [B,H,N,Dv+1]: the per-round output of each sorted query and,
 *            in the last column, its log-sum-exp;
 *   saved[2] pos [B,H,N] (i32): the position of each sorted index, filled by
 *            the builder (the hashing and the stable sort have no gradient).
 *
 * Window of sorted index i: c = i / L; the rows of chunk c - 1 (mod the
 * number of chunks, absent with a single chunk) then those of chunk c.
 *
 * Backward, per (b, h), G = dout (docs/reformer.md):
 *   w_r = softmax_r(lse_r),  dO_r = w_r G,  dlse_r = w_r (G.O_r - sum_r' w_r' G.O_r')
 *   per sorted query i: dP_j = dO_i . v_j,  ds_j = P_j (dP_j - sum_k P_k dP_k + dlse_i)
 *   (0 at masked logits, which are constants), dq_i += sum_j ds_j k_j,
 *   dk_j += ds_j q_i, dv_j += P_j dO_i;
 *   k = x a^-1/2 D^-1/2, a = |x|^2 / D + eps  =>  dx = D^-1/2 (a^-1/2 dk - x a^-3/2 (x.dk) / D).
 * The fast kernels do each chunk by products (attn__sgemm) on gathered
 * window rows; the reference does every sum per query in double. A (b, h) is
 * one work unit: it owns the gradient rows of its block.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "view_internal.h"
#include "attn/reformer.h"
#include "attn/rng.h"

#if defined(_OPENMP)
#define LSH_TID() omp_get_thread_num()
#else
#define LSH_TID() 0
#endif

typedef struct lsh_geom {
    int64_t B, H, T, D, Dv, R, L, N, NC, W2; /* N = R T sorted rows, NC chunks, W2 = 2L */
    int causal;
    float mask, self_mask, eps;
    const float *x, *v;
    const int32_t *pos;
} lsh_geom;

static lsh_geom lsh_geometry(const attn_node *node) {
    lsh_geom g;
    const attn_tensor *x = node->in[0], *v = node->in[1];
    g.B = x->shape[0];
    g.H = x->shape[1];
    g.T = x->shape[2];
    g.D = x->shape[3];
    g.Dv = v->shape[3];
    g.R = node->iarg[0];
    g.L = node->iarg[1];
    g.causal = (int)node->iarg[2];
    g.N = g.R * g.T;
    g.NC = (g.N + g.L - 1) / g.L;
    g.W2 = 2 * g.L;
    g.mask = node->farg[0];
    g.self_mask = node->farg[1];
    g.eps = node->farg[2];
    g.x = attn_f32(x);
    g.v = attn_f32(v);
    g.pos = attn_i32(node->saved[2]);
    return g;
}

/* The window of chunk c: rows [p0, p1) of the previous chunk (empty with a
 * single chunk) then [c0, c1); returns the width. */
static int64_t window(const lsh_geom *g, int64_t c, int64_t *p0, int64_t *p1, int64_t *c0,
                      int64_t *c1) {
    *c0 = c * g->L;
    *c1 = *c0 + g->L < g->N ? *c0 + g->L : g->N;
    if (g->NC > 1) {
        const int64_t p = (c + g->NC - 1) % g->NC;
        *p0 = p * g->L;
        *p1 = *p0 + g->L < g->N ? *p0 + g->L : g->N;
    } else {
        *p0 = *p1 = 0;
    }
    return (*p1 - *p0) + (*c1 - *c0);
}

/* The sorted index of window column j. */
static inline int64_t window_row(int64_t j, int64_t p0, int64_t p1, int64_t c0) {
    return j < p1 - p0 ? p0 + j : c0 + (j - (p1 - p0));
}

/* 0: the logit is the dot product; 1: masked (causal); 2: the position itself. */
static inline int masked(const lsh_geom *g, int32_t pi, int32_t pj) {
    if (pj == pi) return 2;
    if (g->causal && pj > pi) return 1;
    return 0;
}

/* The normalised keys of one (b, h) block, in float. */
static void unit_keys(const lsh_geom *g, const float *x, float *k) {
    const float rd = 1.0f / sqrtf((float)g->D);
    for (int64_t t = 0; t < g->T; t++) {
        const float *xt = x + t * g->D;
        float ss = 0.0f;
        for (int64_t d = 0; d < g->D; d++) ss += xt[d] * xt[d];
        const float f = rd / sqrtf(ss / (float)g->D + g->eps);
        for (int64_t d = 0; d < g->D; d++) k[t * g->D + d] = xt[d] * f;
    }
}

/* ---- forward ------------------------------------------------------------------------- */

/* Floats of scratch per unit: keys [T, D], Kw [2L, D], Vw [2L, Dv], Qc [L, D]. */
static int64_t forward_scratch(const lsh_geom *g) {
    return g->T * g->D + g->W2 * g->D + g->W2 * g->Dv + g->L * g->D;
}

static float *lsh_scratch(attn_ctx *ctx, int slots, int64_t n, const char *what) {
    size_t bytes;
    if (attn__mul_size((size_t)slots, (size_t)n, &bytes) || attn__mul_size(bytes, sizeof(float), &bytes)) {
        attn__fail(ctx, ATTN_ERR_OOM, "lsh_attention: %s of %d x %lld floats overflows", what, slots,
                   (long long)n);
        return NULL;
    }
    return attn__alloc(ctx, bytes, what);
}

/* One (b, h). */
static void forward_unit(const lsh_geom *g, int64_t bh, float *Pall, float *Oall, float *out,
                         float *scr, int32_t *inv, int nt) {
    const int64_t T = g->T, D = g->D, Dv = g->Dv, N = g->N, W2 = g->W2, O1 = Dv + 1;
    const float *x = g->x + bh * T * D, *v = g->v + bh * T * Dv;
    const int32_t *pos = g->pos + bh * N;
    float *P = Pall + bh * N * W2, *O = Oall + bh * N * O1, *o = out + bh * T * Dv;
    float *K = scr, *Kw = K + T * D, *Vw = Kw + W2 * D, *Qc = Vw + W2 * Dv;
    unit_keys(g, x, K);
    for (int64_t c = 0; c < g->NC; c++) {
        int64_t p0, p1, c0, c1;
        const int64_t W = window(g, c, &p0, &p1, &c0, &c1), Lc = c1 - c0;
        for (int64_t j = 0; j < W; j++) {
            const int64_t t = pos[window_row(j, p0, p1, c0)];
            memcpy(Kw + j * D, K + t * D, sizeof(float) * (size_t)D);
            memcpy(Vw + j * Dv, v + t * Dv, sizeof(float) * (size_t)Dv);
        }
        for (int64_t i = 0; i < Lc; i++) memcpy(Qc + i * D, x + pos[c0 + i] * D, sizeof(float) * (size_t)D);
        float *Pc = P + c0 * W2;
        attn__sgemm(nt, 0, 1, Lc, W, D, 1.0f, Qc, D, Kw, D, 0.0f, Pc, W2);
        for (int64_t i = 0; i < Lc; i++) {
            float *row = Pc + i * W2;
            const int32_t pi = pos[c0 + i];
            float mx = -INFINITY;
            for (int64_t j = 0; j < W; j++) {
                const int m = masked(g, pi, pos[window_row(j, p0, p1, c0)]);
                if (m) row[j] = m == 2 ? g->self_mask : g->mask;
                if (row[j] > mx) mx = row[j];
            }
            float sum = 0.0f;
            for (int64_t j = 0; j < W; j++) sum += (row[j] = expf(row[j] - mx));
            const float inv_sum = 1.0f / sum;
            for (int64_t j = 0; j < W; j++) row[j] *= inv_sum;
            for (int64_t j = W; j < W2; j++) row[j] = 0.0f;
            O[(c0 + i) * O1 + Dv] = mx + logf(sum);
        }
        attn__sgemm(nt, 0, 0, Lc, Dv, W, 1.0f, Pc, W2, Vw, Dv, 0.0f, O + c0 * O1, O1);
    }
    for (int64_t i = 0; i < N; i++) inv[(i / T) * T + pos[i]] = (int32_t)i;
    for (int64_t t = 0; t < T; t++) {
        float mx = -INFINITY, sum = 0.0f;
        for (int64_t r = 0; r < g->R; r++) {
            const float l = O[(int64_t)inv[r * T + t] * O1 + Dv];
            if (l > mx) mx = l;
        }
        for (int64_t r = 0; r < g->R; r++) sum += expf(O[(int64_t)inv[r * T + t] * O1 + Dv] - mx);
        float *ot = o + t * Dv;
        for (int64_t d = 0; d < Dv; d++) ot[d] = 0.0f;
        for (int64_t r = 0; r < g->R; r++) {
            const float *Oi = O + (int64_t)inv[r * T + t] * O1;
            const float w = expf(Oi[Dv] - mx) / sum;
            for (int64_t d = 0; d < Dv; d++) ot[d] += w * Oi[d];
        }
    }
}

static int unit_threads(const attn_ctx *ctx, const lsh_geom *g, int *parallel) {
    const double work = 2.0 * (double)g->B * (double)g->H * (double)g->N * (double)g->W2 *
                        (double)(g->D + g->Dv);
    const int nt = attn__threads_for(ctx, work);
    *parallel = nt > 1 && g->B * g->H >= nt;
    return nt;
}

attn_status attn__lsh_attention_forward(attn_ctx *ctx, attn_node *node) {
    const lsh_geom g = lsh_geometry(node);
    float *P = attn_f32(node->saved[0]), *O = attn_f32(node->saved[1]), *out = attn_f32(node->out);
    int par;
    const int nt = unit_threads(ctx, &g, &par);
    const int slots = par ? nt : 1;
    const int64_t n = forward_scratch(&g);
    /* kept until the context is reset: the arena's high-water mark counts it */
    float *scr = lsh_scratch(ctx, slots, n, "lsh_attention forward scratch");
    int32_t *inv = scr ? (int32_t *)lsh_scratch(ctx, slots, g.N, "lsh_attention forward unsort") : NULL;
    if (!inv) return ctx->status;
    const int64_t units = g.B * g.H;
    if (par) {
        ATTN__OMP_FOR(nt)
        for (int64_t u = 0; u < units; u++)
            forward_unit(&g, u, P, O, out, scr + (int64_t)LSH_TID() * n, inv + (int64_t)LSH_TID() * g.N, 1);
    } else {
        for (int64_t u = 0; u < units; u++) forward_unit(&g, u, P, O, out, scr, inv, nt);
    }
    return ATTN_OK;
}

/* The plain reference: the same function, every sum in double, one thread. */
attn_status attn__lsh_attention_ref(attn_ctx *ctx, attn_node *node) {
    const lsh_geom g = lsh_geometry(node);
    /* the unsort, kept with the forward's data until the context is reset */
    int32_t *inv = (int32_t *)lsh_scratch(ctx, 1, g.N, "lsh_attention reference unsort");
    if (!inv) return ctx->status;
    float *Pall = attn_f32(node->saved[0]), *Oall = attn_f32(node->saved[1]), *out = attn_f32(node->out);
    const int64_t T = g.T, D = g.D, Dv = g.Dv, N = g.N, W2 = g.W2, O1 = Dv + 1;
    for (int64_t bh = 0; bh < g.B * g.H; bh++) {
        const float *x = g.x + bh * T * D, *v = g.v + bh * T * Dv;
        const int32_t *pos = g.pos + bh * N;
        float *P = Pall + bh * N * W2, *O = Oall + bh * N * O1;
        for (int64_t i = 0; i < N; i++) {
            int64_t p0, p1, c0, c1;
            const int64_t W = window(&g, i / g.L, &p0, &p1, &c0, &c1);
            const int32_t pi = pos[i];
            const float *xi = x + pi * D;
            double s[2 * 4096 + 1], mx = -INFINITY, sum = 0.0;
            double *sv = W <= 8192 ? s : NULL;
            if (!sv) return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "lsh_attention reference: window %lld > 8192",
                                       (long long)W);
            for (int64_t j = 0; j < W; j++) {
                const int32_t pj = pos[window_row(j, p0, p1, c0)];
                const int m = masked(&g, pi, pj);
                if (m) {
                    sv[j] = m == 2 ? (double)g.self_mask : (double)g.mask;
                } else {
                    const float *xj = x + pj * D;
                    double ss = 0.0, dot = 0.0;
                    for (int64_t d = 0; d < D; d++) {
                        ss += (double)xj[d] * (double)xj[d];
                        dot += (double)xi[d] * (double)xj[d];
                    }
                    sv[j] = dot / sqrt(ss / (double)D + (double)g.eps) / sqrt((double)D);
                }
                if (sv[j] > mx) mx = sv[j];
            }
            for (int64_t j = 0; j < W; j++) sum += exp(sv[j] - mx);
            float *row = P + i * W2;
            for (int64_t j = 0; j < W2; j++) row[j] = j < W ? (float)(exp(sv[j] - mx) / sum) : 0.0f;
            for (int64_t d = 0; d < Dv; d++) {
                double acc = 0.0;
                for (int64_t j = 0; j < W; j++)
                    acc += exp(sv[j] - mx) / sum * (double)v[pos[window_row(j, p0, p1, c0)] * Dv + d];
                O[i * O1 + d] = (float)acc;
            }
            O[i * O1 + Dv] = (float)(mx + log(sum));
        }
        float *o = out + bh * T * Dv;
        for (int64_t i = 0; i < N; i++) inv[(i / T) * T + pos[i]] = (int32_t)i;
        for (int64_t t = 0; t < T; t++) {
            /* idx[r]: the sorted index of (r, t) */
            double lse[64], mx = -INFINITY, sum = 0.0;
            int64_t idx[64];
            for (int64_t r = 0; r < g.R; r++) {
                idx[r] = inv[r * T + t];
                lse[r] = (double)O[idx[r] * O1 + Dv];
                if (lse[r] > mx) mx = lse[r];
            }
            for (int64_t r = 0; r < g.R; r++) sum += exp(lse[r] - mx);
            for (int64_t d = 0; d < Dv; d++) {
                double acc = 0.0;
                for (int64_t r = 0; r < g.R; r++) acc += exp(lse[r] - mx) / sum * (double)O[idx[r] * O1 + d];
                o[t * Dv + d] = (float)acc;
            }
        }
    }
    return ATTN_OK;
}

/* ---- backward ------------------------------------------------------------------------ */

/* Floats of scratch per unit: keys, dX, dK [T, D]; dO [N, Dv]; dlse [N];
 * Kw, dKw [2L, D]; Vw, dVw [2L, Dv]; Qc, dQc [L, D]; dOc [L, Dv]; dP [L, 2L]. */
static int64_t backward_scratch(const lsh_geom *g) {
    return 3 * g->T * g->D + g->N * g->Dv + g->N + 2 * g->W2 * g->D + 2 * g->W2 * g->Dv +
           2 * g->L * g->D + g->L * g->Dv + g->L * g->W2;
}

static void backward_unit(const lsh_geom *g, int64_t bh, const float *Pall, const float *Oall,
                          const float *go, float *gx, float *gv, float *scr, int32_t *inv, int nt) {
    const int64_t T = g->T, D = g->D, Dv = g->Dv, N = g->N, W2 = g->W2, O1 = Dv + 1, L = g->L;
    const float *x = g->x + bh * T * D, *v = g->v + bh * T * Dv, *G = go + bh * T * Dv;
    const int32_t *pos = g->pos + bh * N;
    const float *P = Pall + bh * N * W2, *O = Oall + bh * N * O1;
    float *K = scr, *dX = K + T * D, *dK = dX + T * D, *dO = dK + T * D, *dlse = dO + N * Dv,
          *Kw = dlse + N, *dKw = Kw + W2 * D, *Vw = dKw + W2 * D, *dVw = Vw + W2 * Dv,
          *Qc = dVw + W2 * Dv, *dQc = Qc + L * D, *dOc = dQc + L * D, *dP = dOc + L * Dv;
    unit_keys(g, x, K);
    memset(dX, 0, sizeof(float) * (size_t)(2 * T * D));
    /* the round combination */
    for (int64_t i = 0; i < N; i++) inv[(i / T) * T + pos[i]] = (int32_t)i;
    for (int64_t t = 0; t < T; t++) {
        const float *Gt = G + t * Dv;
        float mx = -INFINITY, sum = 0.0f, cw = 0.0f;
        for (int64_t r = 0; r < g->R; r++) {
            const float l = O[(int64_t)inv[r * T + t] * O1 + Dv];
            if (l > mx) mx = l;
        }
        for (int64_t r = 0; r < g->R; r++) sum += expf(O[(int64_t)inv[r * T + t] * O1 + Dv] - mx);
        for (int64_t r = 0; r < g->R; r++) {
            const int64_t i = inv[r * T + t];
            const float w = expf(O[i * O1 + Dv] - mx) / sum;
            float go_ = 0.0f;
            for (int64_t d = 0; d < Dv; d++) {
                dO[i * Dv + d] = w * Gt[d];
                go_ += Gt[d] * O[i * O1 + d];
            }
            dlse[i] = go_; /* G . O_r for now */
            cw += w * go_;
        }
        for (int64_t r = 0; r < g->R; r++) {
            const int64_t i = inv[r * T + t];
            const float w = expf(O[i * O1 + Dv] - mx) / sum;
            dlse[i] = w * (dlse[i] - cw);
        }
    }
    /* each chunk */
    for (int64_t c = 0; c < g->NC; c++) {
        int64_t p0, p1, c0, c1;
        const int64_t W = window(g, c, &p0, &p1, &c0, &c1), Lc = c1 - c0;
        for (int64_t j = 0; j < W; j++) {
            const int64_t t = pos[window_row(j, p0, p1, c0)];
            memcpy(Kw + j * D, K + t * D, sizeof(float) * (size_t)D);
            memcpy(Vw + j * Dv, v + t * Dv, sizeof(float) * (size_t)Dv);
        }
        for (int64_t i = 0; i < Lc; i++) {
            memcpy(Qc + i * D, x + pos[c0 + i] * D, sizeof(float) * (size_t)D);
            memcpy(dOc + i * Dv, dO + (c0 + i) * Dv, sizeof(float) * (size_t)Dv);
        }
        const float *Pc = P + c0 * W2;
        /* o_i = sum_j P_ij v_j  =>  dP = dO Vw^T,  dVw = P^T dO */
        attn__sgemm(nt, 0, 1, Lc, W, Dv, 1.0f, dOc, Dv, Vw, Dv, 0.0f, dP, W2);
        if (gv) {
            attn__sgemm(nt, 1, 0, W, Dv, Lc, 1.0f, Pc, W2, dOc, Dv, 0.0f, dVw, Dv);
            for (int64_t j = 0; j < W; j++) {
                float *dst = gv + (bh * T + pos[window_row(j, p0, p1, c0)]) * Dv;
                for (int64_t d = 0; d < Dv; d++) dst[d] += dVw[j * Dv + d];
            }
        }
        /* P = softmax(s), lse = logsumexp(s)  =>  ds = P (dP - P.dP + dlse) */
        for (int64_t i = 0; i < Lc; i++) {
            const float *p = Pc + i * W2;
            float *d = dP + i * W2;
            const int32_t pi = pos[c0 + i];
            float sp = 0.0f;
            for (int64_t j = 0; j < W; j++) sp += p[j] * d[j];
            for (int64_t j = 0; j < W; j++)
                d[j] = masked(g, pi, pos[window_row(j, p0, p1, c0)]) ? 0.0f
                                                                      : p[j] * (d[j] - sp + dlse[c0 + i]);
        }
        /* s_ij = q_i . k_j  =>  dQc = ds Kw,  dKw = ds^T Qc */
        attn__sgemm(nt, 0, 0, Lc, D, W, 1.0f, dP, W2, Kw, D, 0.0f, dQc, D);
        attn__sgemm(nt, 1, 0, W, D, Lc, 1.0f, dP, W2, Qc, D, 0.0f, dKw, D);
        for (int64_t i = 0; i < Lc; i++) {
            float *dst = dX + pos[c0 + i] * D;
            for (int64_t d = 0; d < D; d++) dst[d] += dQc[i * D + d];
        }
        for (int64_t j = 0; j < W; j++) {
            float *dst = dK + pos[window_row(j, p0, p1, c0)] * D;
            for (int64_t d = 0; d < D; d++) dst[d] += dKw[j * D + d];
        }
    }
    if (!gx) return;
    /* k = x a^-1/2 D^-1/2, a = |x|^2 / D + eps */
    const float rd = 1.0f / sqrtf((float)D);
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * D, *dk = dK + t * D;
        float ss = 0.0f, xd = 0.0f;
        for (int64_t d = 0; d < D; d++) {
            ss += xt[d] * xt[d];
            xd += xt[d] * dk[d];
        }
        const float a = ss / (float)D + g->eps, ia = 1.0f / sqrtf(a), c3 = ia * ia * ia * xd / (float)D;
        float *dst = gx + (bh * T + t) * D;
        for (int64_t d = 0; d < D; d++) dst[d] += dX[t * D + d] + rd * (ia * dk[d] - xt[d] * c3);
    }
}

attn_status attn__lsh_attention_backward(attn_ctx *ctx, attn_node *node) {
    const lsh_geom g = lsh_geometry(node);
    float *gx = attn__needs_grad(node, 0) ? node->in[0]->grad : NULL;
    float *gv = attn__needs_grad(node, 1) ? node->in[1]->grad : NULL;
    int par;
    const int nt = unit_threads(ctx, &g, &par);
    const int slots = par ? nt : 1;
    const int64_t n = backward_scratch(&g);
    const size_t mark = attn__arena_mark(ctx);
    float *scr = lsh_scratch(ctx, slots, n, "lsh_attention backward scratch");
    int32_t *inv = scr ? (int32_t *)lsh_scratch(ctx, slots, g.N, "lsh_attention backward unsort") : NULL;
    if (!inv) return ctx->status;
    const float *P = attn_f32(node->saved[0]), *O = attn_f32(node->saved[1]), *go = node->out->grad;
    const int64_t units = g.B * g.H;
    if (par) {
        ATTN__OMP_FOR(nt)
        for (int64_t u = 0; u < units; u++)
            backward_unit(&g, u, P, O, go, gx, gv, scr + (int64_t)LSH_TID() * n,
                          inv + (int64_t)LSH_TID() * g.N, 1);
    } else {
        for (int64_t u = 0; u < units; u++) backward_unit(&g, u, P, O, go, gx, gv, scr, inv, nt);
    }
    attn__arena_rewind(ctx, mark); /* scratch only: no node was recorded since the mark */
    return ATTN_OK;
}

/* ---- hashing and the builder ---------------------------------------------------------- */

attn_status attn_lsh_rotations(float *rot, int64_t H, int64_t D, int n_hashes, int n_buckets,
                               uint64_t seed) {
    if (!rot || H < 1 || D < 1 || n_hashes < 1 || n_buckets < 2 || n_buckets % 2)
        return attn__error(ATTN_ERR_INVALID_ARG, "lsh_rotations: H %lld, D %lld, rounds %d, buckets "
                           "%d, rot %s: expected sizes >= 1, an even bucket count >= 2 and a buffer",
                           (long long)H, (long long)D, n_hashes, n_buckets, rot ? "given" : "NULL");
    attn_rng rng;
    attn_rng_init(&rng, seed);
    const int64_t n = H * D * n_hashes * (n_buckets / 2);
    for (int64_t i = 0; i < n; i++) rot[i] = attn_rng_next_normal(&rng);
    return ATTN_OK;
}

attn_status attn_lsh_hash(const float *qk, int64_t B, int64_t H, int64_t T, int64_t D,
                          const float *rot, int n_hashes, int n_buckets, int32_t *buckets) {
    if (!qk || !rot || !buckets || B < 1 || H < 1 || T < 1 || D < 1 || n_hashes < 1 ||
        n_buckets < 2 || n_buckets % 2)
        return attn__error(ATTN_ERR_INVALID_ARG, "lsh_hash: B %lld, H %lld, T %lld, D %lld, rounds "
                           "%d, buckets %d: expected sizes >= 1, an even bucket count >= 2 and "
                           "non-NULL buffers", (long long)B, (long long)H, (long long)T,
                           (long long)D, n_hashes, n_buckets);
    const int64_t half = n_buckets / 2, R = n_hashes;
    size_t bytes;
    if (attn__mul_size((size_t)T, (size_t)half, &bytes) || attn__mul_size(bytes, sizeof(float), &bytes))
        return attn__error(ATTN_ERR_OOM, "lsh_hash: T %lld x %lld rotations overflows", (long long)T,
                           (long long)half);
    float *Y = malloc(bytes);
    if (!Y) return attn__error(ATTN_ERR_OOM, "lsh_hash: %zu bytes of projections", bytes);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t r = 0; r < R; r++) {
                /* Y = X rot[h, :, r, :]: [T, D] x [D, NB/2], the rotation's rows R NB/2 apart */
                attn__sgemm(1, 0, 0, T, half, D, 1.0f, qk + (b * H + h) * T * D, D,
                            rot + h * D * R * half + r * half, R * half, 0.0f, Y, half);
                int32_t *out = buckets + ((b * H + h) * R + r) * T;
                for (int64_t t = 0; t < T; t++) {
                    /* argmax over [y ; -y], the first maximum: the largest y_m wins
                     * unless -(the smallest y_m) is strictly larger */
                    const float *y = Y + t * half;
                    float ymax = -INFINITY, ymin = INFINITY;
                    int32_t amax = 0, amin = 0;
                    for (int64_t m = 0; m < half; m++) {
                        if (y[m] > ymax) {
                            ymax = y[m];
                            amax = (int32_t)m;
                        }
                        if (y[m] < ymin) {
                            ymin = y[m];
                            amin = (int32_t)m;
                        }
                    }
                    out[t] = -ymin > ymax ? (int32_t)half + amin : amax;
                }
            }
    free(Y);
    return ATTN_OK;
}

/* Stable counting sort of each round's positions by bucket: pos[r T + k]. */
static void sort_buckets(const int32_t *bk, int64_t R, int64_t T, int nb, int32_t *pos, int64_t *count) {
    for (int64_t r = 0; r < R; r++) {
        const int32_t *b = bk + r * T;
        for (int m = 0; m <= nb; m++) count[m] = 0;
        for (int64_t t = 0; t < T; t++) count[b[t] + 1]++;
        for (int m = 0; m < nb; m++) count[m + 1] += count[m];
        for (int64_t t = 0; t < T; t++) pos[r * T + count[b[t]]++] = (int32_t)t;
    }
}

static int fail_shape(attn_ctx *ctx, const char *what, const attn_tensor *t, const char *expected) {
    attn__fail(ctx, ATTN_ERR_SHAPE, "lsh_attention: %s %s, expected %s", what, attn__shp(t), expected);
    return -1;
}

attn_tensor *attn_lsh_attention(attn_ctx *ctx, attn_tensor *qk, attn_tensor *v,
                                const attn_lsh_opts *opts) {
    static const char name[] = "lsh_attention";
    if (attn__any_null(ctx, name, 2, qk, v)) return NULL;
    if (attn__check_dtype(ctx, name, "qk", qk, ATTN_F32) || attn__check_dtype(ctx, name, "v", v, ATTN_F32))
        return NULL;
    if (!opts) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "lsh_attention: opts is NULL (rounds, buckets and "
                   "chunk length are needed)");
        return NULL;
    }
    const attn_lsh_opts o = *opts;
    if (qk->ndim != 4 || qk->shape[0] < 1 || qk->shape[1] < 1 || qk->shape[2] < 1 || qk->shape[3] < 1) {
        fail_shape(ctx, "qk", qk, "[B, H, T, D] with every size >= 1");
        return NULL;
    }
    const int64_t B = qk->shape[0], H = qk->shape[1], T = qk->shape[2], D = qk->shape[3];
    if (v->ndim != 4 || v->shape[0] != B || v->shape[1] != H || v->shape[2] != T || v->shape[3] < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "lsh_attention: v %s for qk %s, expected [B, H, T, Dv] with "
                   "the B, H, T of qk", attn__shp(v), attn__shp(qk));
        return NULL;
    }
    const int64_t Dv = v->shape[3];
    if (o.n_hashes < 1 || o.n_hashes > 64 || o.n_buckets < 2 || o.n_buckets % 2 ||
        o.n_buckets > (1 << 20) || o.chunk_len < 1 || o.chunk_len > 4096) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "lsh_attention: rounds %d, buckets %d, chunk length "
                   "%lld: expected 1..64 rounds, an even bucket count in 2..2^20 and a chunk "
                   "length in 1..4096", o.n_hashes, o.n_buckets, (long long)o.chunk_len);
        return NULL;
    }
    if (T > INT32_MAX / o.n_hashes) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "lsh_attention: T %lld x %d rounds overflows the sort "
                   "index", (long long)T, o.n_hashes);
        return NULL;
    }
    const float mask = o.mask_value == 0.0f ? -1e9f : o.mask_value;
    const float self_mask = o.self_mask_value == 0.0f ? -1e5f : o.self_mask_value;
    const float eps = o.norm_eps == 0.0f ? 1e-6f : o.norm_eps;
    if (!isfinite(mask) || !isfinite(self_mask) || !(isfinite(eps) && eps > 0.0f)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "lsh_attention: mask %g, self mask %g, eps %g: "
                   "expected finite masks and a finite eps > 0", (double)mask, (double)self_mask,
                   (double)eps);
        return NULL;
    }
    attn_tensor *in[2] = {attn__contig(ctx, qk), NULL};
    in[1] = in[0] ? attn__contig(ctx, v) : NULL;
    if (!in[1]) return NULL;
    const float *x = attn_f32(in[0]);
    const int64_t nx = B * H * T * D;
    for (int64_t i = 0; i < nx; i++)
        if (!isfinite(x[i])) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG, "lsh_attention: qk %s has a non-finite value at "
                       "element %lld (the hashing needs finite vectors)", attn__shp(qk), (long long)i);
            return NULL;
        }
    const int64_t R = o.n_hashes, N = R * T, half = o.n_buckets / 2;
    const int64_t psh[4] = {B, H, N, 2 * o.chunk_len}, osh[4] = {B, H, N, Dv + 1}, ish[3] = {B, H, N},
                  ysh[4] = {B, H, T, Dv};
    attn_tensor *pos = attn__tensor(ctx, name, ATTN_I32, 3, ish);
    if (!pos) return NULL;
    /* the hashing's scratch: rotations, buckets, counts (small: O(R T)) */
    const float *rot = o.rotations;
    if (!rot && !o.buckets_in) {
        float *r = lsh_scratch(ctx, 1, H * D * R * half, "lsh_attention rotations");
        if (!r) return NULL;
        attn_lsh_rotations(r, H, D, o.n_hashes, o.n_buckets, o.seed);
        rot = r;
    }
    int32_t *bk = (int32_t *)lsh_scratch(ctx, 1, B * H * N, "lsh_attention buckets");
    int64_t *count = bk ? attn__alloc(ctx, sizeof(int64_t) * (size_t)(o.n_buckets + 1), "lsh_attention counts") : NULL;
    if (!count) return NULL;
    if (o.buckets_in) {
        for (int64_t i = 0; i < B * H * N; i++) {
            if (o.buckets_in[i] < 0 || o.buckets_in[i] >= o.n_buckets) {
                attn__fail(ctx, ATTN_ERR_INVALID_ARG, "lsh_attention: buckets_in[%lld] = %d, "
                           "expected 0 .. %d", (long long)i, (int)o.buckets_in[i], o.n_buckets - 1);
                return NULL;
            }
            bk[i] = o.buckets_in[i];
        }
    } else {
        if (attn_lsh_hash(x, B, H, T, D, rot, o.n_hashes, o.n_buckets, bk) != ATTN_OK) {
            attn__fail(ctx, ATTN_ERR_OOM, "lsh_attention: %s", attn_last_error());
            return NULL;
        }
    }
    if (o.buckets_out) memcpy(o.buckets_out, bk, sizeof(int32_t) * (size_t)(B * H * N));
    for (int64_t bh = 0; bh < B * H; bh++)
        sort_buckets(bk + bh * N, R, T, o.n_buckets, attn_i32(pos) + bh * N, count);
    attn_tensor *out = attn__tensor(ctx, name, ATTN_F32, 4, ysh);
    attn_tensor *P = out ? attn__tensor(ctx, name, ATTN_F32, 4, psh) : NULL;
    attn_tensor *O = P ? attn__tensor(ctx, name, ATTN_F32, 4, osh) : NULL;
    if (!O) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_LSH_ATTENTION, 2, in, out);
    if (!node) return NULL;
    node->iarg[0] = R;
    node->iarg[1] = o.chunk_len;
    node->iarg[2] = o.causal != 0;
    node->farg[0] = mask;
    node->farg[1] = self_mask;
    node->farg[2] = eps;
    node->saved[0] = P;
    node->saved[1] = O;
    node->saved[2] = pos;
    return attn__run(ctx, node);
}
