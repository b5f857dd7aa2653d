/* additive_score.c: the fused additive (Bahdanau / concat) alignment score,
 * graph op ADDITIVE_SCORE (include/attn/rnn_attention.h, attn_additive_score).
 *
 * Shape contract:
 *   in[0] wq [B, T, A]  the projected queries W_q q_t
 *   in[1] wk [B, S, A]  the projected keys W_h h_s
 *   in[2] v  [A] or [1, A]
 *   -> e [B, T, S],  e[b,t,s] = sum_a v_a tanh(wq[b,t,a] + wk[b,s,a]).
 * No attributes, nothing saved: backward recomputes the tanh.
 *
 * Why a fused op: composed from add + tanh + linear, the score materialises
 * the [B, T, S, A] pre-activation and its tanh (and their gradients in
 * backward): at B 64, T 20, S 30, A 128 that is 4.9M elements per tensor,
 * ~90 MB of arena, and libm's tanhf over all of it took 70% of a 130 ms
 * forward+backward. Fused, each (b, t, s) row of A values lives in L1 and
 * the tanh is vectorised.
 *
 * Backward (docs/ops.md, "Attention for recurrent models"), with
 * tau = tanh(wq[b,t] + wk[b,s]) and g = de[b,t,s]:
 *   dwq[b,t,a] += sum_s g v_a (1 - tau_a^2)
 *   dwk[b,s,a] += sum_t g v_a (1 - tau_a^2)
 *   dv[a]      += sum_{b,t,s} g tau_a
 * Work is split over the batch: each b owns its rows of dwq and dwk, and its
 * partial dv goes to a [B, A] scratch that is summed over b in order
 * afterwards, so every result is the same for any thread count. Terms with
 * g = 0 (masked positions after the softmax) are skipped: they add exactly 0.
 */
#include <math.h>
#include <string.h>

#include "../core/internal.h"
#include "../core/vmath.h"
#include "view_internal.h"
#include "attn/ops.h"

#define ADS_CHUNK 256 /* values of A processed at once (stack buffers, L1) */

/* The row kernels are compiled three times on x86-64 with GCC: for the
 * baseline (SSE2), for AVX2 and for AVX-512F, chosen at load time (ifunc). No
 * FMA contraction (ISO C mode) and a fixed summation order, so all give the
 * same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ATTN_NO_CLONES)
#define ADS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define ADS_INLINE static inline __attribute__((always_inline)) /* into each clone */
#else
#define ADS_CLONES
#define ADS_INLINE static inline
#endif

/* ---- vectorisable tanh ---------------------------------------------------------
 * attn__exp_core (src/core/vmath.h); tanh x = 2 / (1 + e^-2x) - 1,
 * absolute error below 2e-7. The argument clamp runs as its own loop so that
 * GCC if-converts and vectorises both loops (see vmath.h).
 */
/* u[j] <- tanh(q[j] + k[j]) for j < n. */
ADS_INLINE void ads_tanh_sum(float *restrict u, const float *restrict q, const float *restrict k,
                             int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        float x = -2.0f * (q[j] + k[j]);
        x = x < -87.0f ? -87.0f : x;
        u[j] = x > 88.0f ? 88.0f : x;
    }
    for (int64_t j = 0; j < n; j++) u[j] = 2.0f / (1.0f + attn__exp_core(u[j])) - 1.0f;
}

/* sum_j v[j] u[j] with 8 partial sums (vectorisable without reassociation
 * licences; the order is fixed, so the result is reproducible). */
ADS_INLINE float ads_dot(const float *restrict v, const float *restrict u, int64_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) acc[k] += v[j + k] * u[j + k];
    for (int k = 0; j < n; j++, k++) acc[k] += v[j] * u[j];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* ---- builder ----------------------------------------------------------------------- */

attn_tensor *attn_additive_score(attn_ctx *ctx, attn_tensor *wq, attn_tensor *wk, attn_tensor *v) {
    static const char name[] = "additive_score";
    if (attn__any_null(ctx, name, 3, wq, wk, v)) return NULL;
    if (attn__check_dtype(ctx, name, "wq", wq, ATTN_F32) ||
        attn__check_dtype(ctx, name, "wk", wk, ATTN_F32) ||
        attn__check_dtype(ctx, name, "v", v, ATTN_F32))
        return NULL;
    if (wq->ndim != 3 || wk->ndim != 3 || wq->shape[0] != wk->shape[0] ||
        wq->shape[2] != wk->shape[2] || wq->shape[0] < 1 || wq->shape[1] < 1 || wk->shape[1] < 1 ||
        wq->shape[2] < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: wq %s and wk %s, expected [B, T, A] and [B, S, A] with the same B and A, "
                   "all >= 1",
                   name, attn__shp(wq), attn__shp(wk));
        return NULL;
    }
    const int64_t B = wq->shape[0], T = wq->shape[1], S = wk->shape[1], A = wq->shape[2];
    if (!((v->ndim == 1 && v->shape[0] == A) ||
          (v->ndim == 2 && v->shape[0] == 1 && v->shape[1] == A))) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: v %s, expected [A] or [1, A] with A = %lld (wq is %s)",
                   name, attn__shp(v), (long long)A, attn__shp(wq));
        return NULL;
    }
    attn_tensor *in[3] = {attn__contig(ctx, wq), NULL, NULL};
    if (!in[0] || !(in[1] = attn__contig(ctx, wk)) || !(in[2] = attn__contig(ctx, v))) return NULL;
    const int64_t osh[3] = {B, T, S};
    attn_tensor *out = attn__tensor(ctx, name, ATTN_F32, 3, osh);
    if (!out) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_ADDITIVE_SCORE, 3, in, out);
    return node ? attn__run(ctx, node) : NULL;
}

/* ---- kernels ---------------------------------------------------------------------------- */

typedef struct ads_geom {
    int64_t B, T, S, A;
    const float *wq, *wk, *v;
} ads_geom;

static ads_geom ads_geometry(const attn_node *node) {
    ads_geom g;
    g.B = node->in[0]->shape[0];
    g.T = node->in[0]->shape[1];
    g.S = node->in[1]->shape[1];
    g.A = node->in[0]->shape[2];
    g.wq = attn_f32(node->in[0]);
    g.wk = attn_f32(node->in[1]);
    g.v = attn_f32(node->in[2]);
    return g;
}

/* Row r = (b, t) of e: e[r, s] = sum_a v_a tanh(wq[r, a] + wk[b, s, a]). */
ADS_CLONES static void ads_forward_row(const ads_geom *g, int64_t r, float *restrict e) {
    const int64_t b = r / g->T;
    const float *q = g->wq + r * g->A;
    float u[ADS_CHUNK];
    for (int64_t s = 0; s < g->S; s++) {
        const float *k = g->wk + (b * g->S + s) * g->A;
        float acc = 0.0f;
        for (int64_t a0 = 0; a0 < g->A; a0 += ADS_CHUNK) { /* one chunk of A at a time */
            const int64_t n = g->A - a0 < ADS_CHUNK ? g->A - a0 : ADS_CHUNK;
            ads_tanh_sum(u, q + a0, k + a0, n);
            acc += ads_dot(g->v + a0, u, n);
        }
        e[s] = acc;
    }
}

attn_status attn__additive_score_forward(attn_ctx *ctx, attn_node *node) {
    const ads_geom g = ads_geometry(node);
    float *e = attn_f32(node->out);
    const int64_t rows = g.B * g.T;
    const int nt = attn__threads_for(ctx, 25.0 * (double)rows * (double)g.S * (double)g.A);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t r = 0; r < rows; r++) ads_forward_row(&g, r, e + r * g.S);
    return ATTN_OK;
}

attn_status attn__additive_score_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const ads_geom g = ads_geometry(node);
    float *e = attn_f32(node->out);
    for (int64_t b = 0; b < g.B; b++)
        for (int64_t t = 0; t < g.T; t++)
            for (int64_t s = 0; s < g.S; s++) {
                const float *q = g.wq + (b * g.T + t) * g.A, *k = g.wk + (b * g.S + s) * g.A;
                double acc = 0.0;
                for (int64_t a = 0; a < g.A; a++)
                    acc += (double)g.v[a] * tanh((double)q[a] + (double)k[a]);
                e[(b * g.T + t) * g.S + s] = (float)acc;
            }
    return ATTN_OK;
}

/* Batch b's share of the backward: its rows of dwq and dwk (either may be
 * NULL) and its partial dv (dvb [A], or NULL). */
ADS_CLONES static void ads_backward_batch(const ads_geom *g, int64_t b, const float *restrict ge,
                                          float *dwq, float *dwk, float *dvb_all) {
    float u[ADS_CHUNK], d[ADS_CHUNK], dq[ADS_CHUNK];
    for (int64_t a0 = 0; a0 < g->A; a0 += ADS_CHUNK) {
        const int64_t n = g->A - a0 < ADS_CHUNK ? g->A - a0 : ADS_CHUNK;
        const float *v = g->v + a0;
        float *dvb = dvb_all ? dvb_all + a0 : NULL;
        for (int64_t t = 0; t < g->T; t++) {
            const float *q = g->wq + (b * g->T + t) * g->A + a0;
            for (int64_t j = 0; j < n; j++) dq[j] = 0.0f;
            for (int64_t s = 0; s < g->S; s++) {
                const float gs = ge[(b * g->T + t) * g->S + s];
                if (gs == 0.0f) continue; /* adds exactly 0 */
                ads_tanh_sum(u, q, g->wk + (b * g->S + s) * g->A + a0, n);
                /* e = sum_a v_a tau_a, tau = tanh(q + k):
                 * de/dq_a = de/dk_a = v_a (1 - tau_a^2), de/dv_a = tau_a */
                for (int64_t j = 0; j < n; j++) d[j] = gs * v[j] * (1.0f - u[j] * u[j]);
                for (int64_t j = 0; j < n; j++) dq[j] += d[j];
                if (dwk) {
                    float *dk = dwk + (b * g->S + s) * g->A + a0;
                    for (int64_t j = 0; j < n; j++) dk[j] += d[j];
                }
                if (dvb)
                    for (int64_t j = 0; j < n; j++) dvb[j] += gs * u[j];
            }
            if (dwq) {
                float *dqo = dwq + (b * g->T + t) * g->A + a0;
                for (int64_t j = 0; j < n; j++) dqo[j] += dq[j];
            }
        }
    }
}

attn_status attn__additive_score_backward(attn_ctx *ctx, attn_node *node) {
    const ads_geom g = ads_geometry(node);
    const float *ge = node->out->grad;
    float *dwq = attn__needs_grad(node, 0) ? node->in[0]->grad : NULL;
    float *dwk = attn__needs_grad(node, 1) ? node->in[1]->grad : NULL;
    float *dv = attn__needs_grad(node, 2) ? node->in[2]->grad : NULL;
    float *dvp = NULL; /* per-batch partial dv [B, A] */
    if (dv) {
        size_t bytes;
        if (attn__mul_size((size_t)g.B * (size_t)g.A, sizeof(float), &bytes))
            return attn__fail(ctx, ATTN_ERR_OOM,
                              "additive_score backward: scratch [%lld,%lld] "
                              "overflows",
                              (long long)g.B, (long long)g.A);
        if (!(dvp = attn__alloc_zero(ctx, bytes, "additive_score backward (scratch)")))
            return ctx->status;
    }
    const int nt =
        attn__threads_for(ctx, 40.0 * (double)g.B * (double)g.T * (double)g.S * (double)g.A);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t b = 0; b < g.B; b++)
        ads_backward_batch(&g, b, ge, dwq, dwk, dvp ? dvp + b * g.A : NULL);
    if (dv) /* sum the partials over b in order: the same for any thread count */
        for (int64_t a = 0; a < g.A; a++) {
            double acc = 0.0;
            for (int64_t b = 0; b < g.B; b++) acc += dvp[b * g.A + a];
            dv[a] += (float)acc;
        }
    return ATTN_OK;
}
