/* txl_attention.c: Transformer-XL relative attention with the adaptive span
 * and persistent-memory options, graph op TXL_ATTENTION
 * (include/attn/long_context.h; docs/long_context.md has the derivations).
 *
 * Node layout:
 *   in[0] q [B,H,T,D], in[1] k [B,H,S,D], in[2] v [B,H,S,Dv],
 *   in[3] rk [H,L,D], in[4] u [H,D], in[5] vb [H,D] (all contiguous), then
 *   in[6] z [H] when iarg[0] (span), then pk [H,N,D] and pv [H,N,Dv] when
 *   iarg[1] = N > 0.
 *   farg[0] scale, farg[1] ramp R, farg[2] eps.
 *   -> out [B,H,T,Dv]; saved[0] = P [B,H,T,S+N], the softmax probabilities
 *   (0 at masked keys), before the span mask.
 *
 * Backward, per row, G = dout (derivation in docs/long_context.md):
 *   dA_j  = G . v_j  (pv_n for the persistent j)
 *   span: A_j = P_j m_j / Z, Z = sum_j P_j m_j + eps, c = sum_j A_j dA_j,
 *         dP_j = m_j / Z (dA_j - c),  dm_j = P_j / Z (dA_j - c),
 *         dz += dm_j / R where the clamp is not saturated;
 *   no span: dP = dA;
 *   dL_j  = P_j (dP_j - sum_i P_i dP_i)                (softmax)
 *   dqu   = scale (sum_s dL_s k_s + sum_n dL_n pk_n),  dqv = scale sum_s dL_s rk[x_s]
 *   dq += dqu + dqv,  du += dqu,  dvb += dqv,
 *   dk_s += scale dL_s qu,  drk[x_s] += scale dL_s qv,  dpk_n += scale dL_n qu,
 *   dv_s += A_s G,  dpv_n += A_n G.
 * The work unit of backward is a head: it owns dk, dv of its (b, h) blocks
 * and du, dvb, dz, drk, dpk, dpv of head h, so units run in parallel
 * without races and every sum has a fixed order.
 */
#include <math.h>
#include <string.h>

#include "../core/internal.h"
#include "view_internal.h"
#include "attn/long_context.h"

typedef struct txl_geom {
    int64_t B, H, T, S, M, D, Dv, L, N, W; /* W = S + N: the row width of P */
    float scale, ramp, eps;
    int span;
    const float *q, *k, *v, *rk, *u, *vb, *z, *pk, *pv;
} txl_geom;

static txl_geom txl_geometry(const attn_node *node) {
    txl_geom g;
    const attn_tensor *q = node->in[0], *k = node->in[1], *v = node->in[2], *rk = node->in[3];
    g.B = q->shape[0];
    g.H = q->shape[1];
    g.T = q->shape[2];
    g.D = q->shape[3];
    g.S = k->shape[2];
    g.M = g.S - g.T;
    g.Dv = v->shape[3];
    g.L = rk->shape[1];
    g.span = (int)node->iarg[0];
    g.N = node->iarg[1];
    g.W = g.S + g.N;
    g.scale = node->farg[0];
    g.ramp = node->farg[1];
    g.eps = node->farg[2];
    g.q = attn_f32(node->in[0]);
    g.k = attn_f32(node->in[1]);
    g.v = attn_f32(node->in[2]);
    g.rk = attn_f32(node->in[3]);
    g.u = attn_f32(node->in[4]);
    g.vb = attn_f32(node->in[5]);
    int i = 6;
    g.z = g.span ? attn_f32(node->in[i++]) : NULL;
    g.pk = g.N ? attn_f32(node->in[i]) : NULL;
    g.pv = g.N ? attn_f32(node->in[i + 1]) : NULL;
    return g;
}

/* sum_d (a[d] + b[d]) c[d] with 8 partial sums in a fixed order. */
static inline float dot_add(const float *restrict a, const float *restrict b,
                            const float *restrict c, int64_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (a[i + j] + b[i + j]) * c[i + j];
    for (int j = 0; i < n; i++, j++) acc[j] += (a[i] + b[i]) * c[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static inline float dot(const float *restrict a, const float *restrict c, int64_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * c[i + j];
    for (int j = 0; i < n; i++, j++) acc[j] += a[i] * c[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static inline void axpy(float a, const float *restrict x, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* The span's pre-clamp value (R + z - x) / R and the mask m = clamp(., 0, 1). */
static inline float span_pre(const txl_geom *g, int64_t h, int64_t x) {
    return (g->ramp + g->z[h] - (float)x) / g->ramp;
}
static inline float span_mask(float pre) { return pre < 0.0f ? 0.0f : pre > 1.0f ? 1.0f : pre; }

/* 1 / Z of the span renormalisation for row P (t's visible keys are
 * 0 .. M + t), or 0 when Z is 0. */
static float span_inv_z(const txl_geom *g, int64_t h, int64_t t, const float *P) {
    const int64_t last = g->M + t;
    float Z = g->eps;
    for (int64_t s = 0; s <= last; s++) Z += P[s] * span_mask(span_pre(g, h, last - s));
    for (int64_t n = 0; n < g->N; n++) Z += P[g->S + n];
    return Z > 0.0f ? 1.0f / Z : 0.0f;
}

/* The weights A of a row from its P (A may be P). */
static void row_weights(const txl_geom *g, int64_t h, int64_t t, const float *P, float *A) {
    if (!g->span) {
        if (A != P) memcpy(A, P, sizeof(float) * (size_t)g->W);
        return;
    }
    const int64_t last = g->M + t;
    const float iz = span_inv_z(g, h, t, P);
    for (int64_t s = 0; s < g->S; s++)
        A[s] = s <= last ? P[s] * span_mask(span_pre(g, h, last - s)) * iz : 0.0f;
    for (int64_t n = 0; n < g->N; n++) A[g->S + n] = P[g->S + n] * iz;
}

/* ---- forward ------------------------------------------------------------------------- */

static void row_forward(const txl_geom *g, int64_t b, int64_t h, int64_t t, float *P, float *o) {
    const int64_t D = g->D, Dv = g->Dv, last = g->M + t;
    const float *q = g->q + ((b * g->H + h) * g->T + t) * D;
    const float *u = g->u + h * D, *vb = g->vb + h * D;
    const float *K = g->k + (b * g->H + h) * g->S * D, *V = g->v + (b * g->H + h) * g->S * Dv;
    const float *rk = g->rk + h * g->L * D;
    float mx = -INFINITY;
    for (int64_t s = 0; s <= last; s++) {
        /* a_s = scale ((q + u) . k_s + (q + vb) . rk[x]),  x = last - s */
        const float a = g->scale * (dot_add(q, u, K + s * D, D) + dot_add(q, vb, rk + (last - s) * D, D));
        P[s] = a;
        if (a > mx) mx = a;
    }
    for (int64_t s = last + 1; s < g->S; s++) P[s] = 0.0f;
    for (int64_t n = 0; n < g->N; n++) {
        const float a = g->scale * dot_add(q, u, g->pk + (h * g->N + n) * D, D);
        P[g->S + n] = a;
        if (a > mx) mx = a;
    }
    float sum = 0.0f;
    for (int64_t s = 0; s <= last; s++) sum += (P[s] = expf(P[s] - mx));
    for (int64_t n = 0; n < g->N; n++) sum += (P[g->S + n] = expf(P[g->S + n] - mx));
    const float inv = 1.0f / sum;
    for (int64_t s = 0; s <= last; s++) P[s] *= inv;
    for (int64_t n = 0; n < g->N; n++) P[g->S + n] *= inv;
    memset(o, 0, sizeof(float) * (size_t)Dv);
    const float iz = g->span ? span_inv_z(g, h, t, P) : 1.0f;
    for (int64_t s = 0; s <= last; s++) {
        const float a = g->span ? P[s] * span_mask(span_pre(g, h, last - s)) * iz : P[s];
        if (a != 0.0f) axpy(a, V + s * Dv, o, Dv);
    }
    for (int64_t n = 0; n < g->N; n++) {
        const float a = P[g->S + n] * iz;
        if (a != 0.0f) axpy(a, g->pv + (h * g->N + n) * Dv, o, Dv);
    }
}

attn_status attn__txl_attention_forward(attn_ctx *ctx, attn_node *node) {
    const txl_geom g = txl_geometry(node);
    float *P = attn_f32(node->saved[0]), *out = attn_f32(node->out);
    const int64_t rows = g.B * g.H * g.T;
    const int nt = attn__threads_for(ctx, 4.0 * (double)rows * (double)g.W * (double)(g.D + g.Dv));
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t t = r % g.T, h = (r / g.T) % g.H, b = r / (g.T * g.H);
        row_forward(&g, b, h, t, P + r * g.W, out + r * g.Dv);
    }
    return ATTN_OK;
}

/* Logit of key j (context j < S, persistent j >= S) of row (b, h, t), in double. */
static double ref_logit(const txl_geom *g, int64_t b, int64_t h, int64_t t, int64_t j) {
    const int64_t D = g->D, last = g->M + t;
    const float *q = g->q + ((b * g->H + h) * g->T + t) * D, *u = g->u + h * D,
                *vb = g->vb + h * D;
    const int pers = j >= g->S;
    const float *kr = pers ? g->pk + (h * g->N + j - g->S) * D : g->k + ((b * g->H + h) * g->S + j) * D;
    double a = 0.0;
    for (int64_t d = 0; d < D; d++) {
        a += ((double)q[d] + (double)u[d]) * (double)kr[d];
        if (!pers) a += ((double)q[d] + (double)vb[d]) * (double)g->rk[(h * g->L + last - j) * D + d];
    }
    return a * (double)g->scale;
}

/* The span mask of key j of row (h, t) in double (1 for persistent keys). */
static double ref_mask(const txl_geom *g, int64_t h, int64_t t, int64_t j) {
    if (!g->span || j >= g->S) return 1.0;
    const double m = ((double)g->ramp + (double)g->z[h] - (double)(g->M + t - j)) / (double)g->ramp;
    return m < 0.0 ? 0.0 : m > 1.0 ? 1.0 : m;
}

/* The plain reference: the same function, every sum in double, one thread. */
attn_status attn__txl_attention_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const txl_geom g = txl_geometry(node);
    float *Pall = attn_f32(node->saved[0]), *out = attn_f32(node->out);
    for (int64_t b = 0; b < g.B; b++)
        for (int64_t h = 0; h < g.H; h++)
            for (int64_t t = 0; t < g.T; t++) {
                const int64_t r = (b * g.H + h) * g.T + t, last = g.M + t;
                float *P = Pall + r * g.W;
                double mx = -INFINITY, sum = 0.0, Z = 0.0;
                for (int64_t j = 0; j < g.W; j++)
                    if (j <= last || j >= g.S) {
                        const double a = ref_logit(&g, b, h, t, j);
                        if (a > mx) mx = a;
                    }
                for (int64_t j = 0; j < g.W; j++)
                    if (j <= last || j >= g.S) sum += exp(ref_logit(&g, b, h, t, j) - mx);
                for (int64_t j = 0; j < g.W; j++) {
                    const int vis = j <= last || j >= g.S;
                    P[j] = vis ? (float)(exp(ref_logit(&g, b, h, t, j) - mx) / sum) : 0.0f;
                    if (vis) Z += (double)P[j] * ref_mask(&g, h, t, j);
                }
                /* the span renormaliser from the rounded P, as backward sees it */
                Z += (double)g.eps;
                float *o = out + r * g.Dv;
                for (int64_t d = 0; d < g.Dv; d++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < g.W; j++) {
                        if (j > last && j < g.S) continue;
                        double a = (double)P[j];
                        if (g.span) a = Z > 0.0 ? a * ref_mask(&g, h, t, j) / Z : 0.0;
                        const float *vr = j >= g.S ? g.pv + (h * g.N + j - g.S) * g.Dv
                                                   : g.v + ((b * g.H + h) * g.S + j) * g.Dv;
                        acc += a * (double)vr[d];
                    }
                    o[d] = (float)acc;
                }
            }
    return ATTN_OK;
}

/* ---- backward ------------------------------------------------------------------------ */

attn_status attn__txl_attention_backward(attn_ctx *ctx, attn_node *node) {
    const txl_geom g = txl_geometry(node);
    const float *Pall = attn_f32(node->saved[0]), *go = node->out->grad;
    const int64_t D = g.D, Dv = g.Dv, W = g.W;
    float *dq = attn__needs_grad(node, 0) ? node->in[0]->grad : NULL;
    float *dk = attn__needs_grad(node, 1) ? node->in[1]->grad : NULL;
    float *dv = attn__needs_grad(node, 2) ? node->in[2]->grad : NULL;
    float *drk = attn__needs_grad(node, 3) ? node->in[3]->grad : NULL;
    float *du = attn__needs_grad(node, 4) ? node->in[4]->grad : NULL;
    float *dvb = attn__needs_grad(node, 5) ? node->in[5]->grad : NULL;
    int i = 6;
    float *dz = NULL, *dpk = NULL, *dpv = NULL;
    if (g.span) {
        if (attn__needs_grad(node, i)) dz = node->in[i]->grad;
        i++;
    }
    if (g.N) {
        if (attn__needs_grad(node, i)) dpk = node->in[i]->grad;
        if (attn__needs_grad(node, i + 1)) dpv = node->in[i + 1]->grad;
    }
    /* scratch per head: dA/dP/dL row [W], A row [W], qu, qv, dqu, dqv [D] each */
    const size_t per = (size_t)(2 * W + 4 * D);
    size_t bytes;
    if (attn__mul_size((size_t)g.H, per, &bytes) || attn__mul_size(bytes, sizeof(float), &bytes))
        return attn__fail(ctx, ATTN_ERR_OOM, "txl_attention backward: scratch for %lld heads "
                          "overflows", (long long)g.H);
    const size_t mark = attn__arena_mark(ctx);
    float *scratch = attn__alloc(ctx, bytes, "txl_attention backward (row scratch)");
    if (!scratch) return ctx->status;
    const int nt = attn__threads_for(ctx, 8.0 * (double)g.B * (double)g.H * (double)g.T *
                                              (double)W * (double)(D + Dv));
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t h = 0; h < g.H; h++) {
        float *dP = scratch + (size_t)h * per, *A = dP + W, *qu = A + W, *qv = qu + D,
              *dqu = qv + D, *dqv = dqu + D;
        float dzacc = 0.0f;
        const float *u = g.u + h * D, *vb = g.vb + h * D, *rk = g.rk + h * g.L * D;
        for (int64_t b = 0; b < g.B; b++) {
            const int64_t bh = b * g.H + h;
            const float *K = g.k + bh * g.S * D, *V = g.v + bh * g.S * Dv;
            for (int64_t t = 0; t < g.T; t++) {
                const int64_t r = bh * g.T + t, last = g.M + t;
                const float *P = Pall + r * W, *G = go + r * Dv, *q = g.q + r * D;
                row_weights(&g, h, t, P, A);
                /* out = sum_j A_j v_j  =>  dA_j = G . v_j,  dv_j += A_j G */
                for (int64_t s = 0; s <= last; s++) {
                    dP[s] = dot(G, V + s * Dv, Dv);
                    if (dv && A[s] != 0.0f) axpy(A[s], G, dv + (bh * g.S + s) * Dv, Dv);
                }
                for (int64_t n = 0; n < g.N; n++) {
                    const int64_t hn = h * g.N + n;
                    dP[g.S + n] = dot(G, g.pv + hn * Dv, Dv);
                    if (dpv && A[g.S + n] != 0.0f) axpy(A[g.S + n], G, dpv + hn * Dv, Dv);
                }
                if (g.span) {
                    /* A_j = P_j m_j / Z  =>  dP_j = m_j/Z (dA_j - c), dm_j = P_j/Z (dA_j - c) */
                    const float iz = span_inv_z(&g, h, t, P);
                    float c = 0.0f;
                    for (int64_t s = 0; s <= last; s++) c += A[s] * dP[s];
                    for (int64_t n = 0; n < g.N; n++) c += A[g.S + n] * dP[g.S + n];
                    for (int64_t s = 0; s <= last; s++) {
                        const float pre = span_pre(&g, h, last - s), e = (dP[s] - c) * iz;
                        if (pre >= 0.0f && pre <= 1.0f) dzacc += P[s] * e / g.ramp;
                        dP[s] = span_mask(pre) * e;
                    }
                    for (int64_t n = 0; n < g.N; n++) dP[g.S + n] = (dP[g.S + n] - c) * iz;
                }
                /* P = softmax(a)  =>  dL_j = P_j (dP_j - sum_i P_i dP_i) */
                float sp = 0.0f;
                for (int64_t s = 0; s <= last; s++) sp += P[s] * dP[s];
                for (int64_t n = 0; n < g.N; n++) sp += P[g.S + n] * dP[g.S + n];
                for (int64_t s = 0; s <= last; s++) dP[s] = P[s] * (dP[s] - sp);
                for (int64_t n = 0; n < g.N; n++) dP[g.S + n] = P[g.S + n] * (dP[g.S + n] - sp);
                /* a_s = scale (qu . k_s + qv . rk[x]),  a_n = scale qu . pk_n */
                for (int64_t d = 0; d < D; d++) {
                    qu[d] = q[d] + u[d];
                    qv[d] = q[d] + vb[d];
                    dqu[d] = dqv[d] = 0.0f;
                }
                for (int64_t s = 0; s <= last; s++) {
                    const float w = g.scale * dP[s];
                    if (w == 0.0f) continue;
                    const int64_t x = last - s;
                    axpy(w, K + s * D, dqu, D);
                    axpy(w, rk + x * D, dqv, D);
                    if (dk) axpy(w, qu, dk + (bh * g.S + s) * D, D);
                    if (drk) axpy(w, qv, drk + (h * g.L + x) * D, D);
                }
                for (int64_t n = 0; n < g.N; n++) {
                    const float w = g.scale * dP[g.S + n];
                    if (w == 0.0f) continue;
                    const int64_t hn = h * g.N + n;
                    axpy(w, g.pk + hn * D, dqu, D);
                    if (dpk) axpy(w, qu, dpk + hn * D, D);
                }
                for (int64_t d = 0; d < D; d++) {
                    if (dq) dq[r * D + d] += dqu[d] + dqv[d];
                    if (du) du[h * D + d] += dqu[d];
                    if (dvb) dvb[h * D + d] += dqv[d];
                }
            }
        }
        if (dz) dz[h] += dzacc;
    }
    attn__arena_rewind(ctx, mark); /* scratch only: no node was recorded since the mark */
    return ATTN_OK;
}

/* ---- builder ------------------------------------------------------------------------- */

static int fail_shape(attn_ctx *ctx, const char *what, const attn_tensor *t, const attn_tensor *q,
                      const char *expected) {
    attn__fail(ctx, ATTN_ERR_SHAPE, "txl_attention: %s %s for q %s, expected %s", what,
               attn__shp(t), attn__shp(q), expected);
    return -1;
}

static int check_dims(const attn_tensor *t, int ndim, const int64_t *want) {
    if (t->ndim != ndim) return -1;
    for (int i = 0; i < ndim; i++)
        if (want[i] >= 0 ? t->shape[i] != want[i] : t->shape[i] < 1) return -1;
    return 0;
}

attn_tensor *attn_txl_attention(attn_ctx *ctx, attn_tensor *q, attn_tensor *k, attn_tensor *v,
                                attn_tensor *rk, attn_tensor *u, attn_tensor *vb,
                                const attn_txl_attention_opts *opts, attn_tensor **weights) {
    static const char name[] = "txl_attention";
    if (weights) *weights = NULL;
    if (attn__any_null(ctx, name, 6, q, k, v, rk, u, vb)) return NULL;
    attn_txl_attention_opts o;
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    const attn_tensor *chk[8] = {q, k, v, rk, u, vb, o.span, o.pers_k};
    static const char *cn[8] = {"q", "k", "v", "rk", "u", "vb", "span", "pers_k"};
    for (int i = 0; i < 8; i++)
        if (chk[i] && attn__check_dtype(ctx, name, cn[i], chk[i], ATTN_F32)) return NULL;
    if (o.pers_v && attn__check_dtype(ctx, name, "pers_v", o.pers_v, ATTN_F32)) return NULL;
    const int64_t any4[4] = {-1, -1, -1, -1};
    if (check_dims(q, 4, any4)) {
        fail_shape(ctx, "q", q, q, "[B, H, T, D] with every size >= 1");
        return NULL;
    }
    const int64_t B = q->shape[0], H = q->shape[1], T = q->shape[2], D = q->shape[3];
    const int64_t kw[4] = {B, H, -1, D};
    if (check_dims(k, 4, kw) || k->shape[2] < T) {
        fail_shape(ctx, "k", k, q, "[B, H, S, D] with S >= T (memory then segment)");
        return NULL;
    }
    const int64_t S = k->shape[2];
    const int64_t vw[4] = {B, H, S, -1};
    if (check_dims(v, 4, vw)) {
        fail_shape(ctx, "v", v, q, "[B, H, S, Dv] with the S of k");
        return NULL;
    }
    const int64_t Dv = v->shape[3];
    const int64_t rw[3] = {H, -1, D};
    if (check_dims(rk, 3, rw) || rk->shape[1] < S) {
        fail_shape(ctx, "rk", rk, q, "[H, L, D] with L >= S (one row per distance 0 .. S-1)");
        return NULL;
    }
    const int64_t hd[2] = {H, D};
    if (check_dims(u, 2, hd)) {
        fail_shape(ctx, "u", u, q, "[H, D]");
        return NULL;
    }
    if (check_dims(vb, 2, hd)) {
        fail_shape(ctx, "vb", vb, q, "[H, D]");
        return NULL;
    }
    if (!(o.scale == 0.0f || (isfinite(o.scale) && o.scale > 0.0f))) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "txl_attention: scale %g, expected 0 (1/sqrt(D)) "
                   "or a finite value > 0", (double)o.scale);
        return NULL;
    }
    const float scale = o.scale == 0.0f ? (float)(1.0 / sqrt((double)D)) : o.scale;
    if (o.span) {
        const int64_t hw[1] = {H};
        if (check_dims(o.span, 1, hw)) {
            fail_shape(ctx, "span", o.span, q, "[H]");
            return NULL;
        }
        if (!(isfinite(o.ramp) && o.ramp > 0.0f) || !(isfinite(o.span_eps) && o.span_eps >= 0.0f)) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG, "txl_attention: span with ramp %g and eps %g, "
                       "expected a finite ramp > 0 and a finite eps >= 0", (double)o.ramp,
                       (double)o.span_eps);
            return NULL;
        }
    }
    if ((o.pers_k == NULL) != (o.pers_v == NULL)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "txl_attention: pers_k and pers_v must be given "
                   "together (got %s and %s)", o.pers_k ? "pers_k" : "NULL",
                   o.pers_v ? "pers_v" : "NULL");
        return NULL;
    }
    int64_t N = 0;
    if (o.pers_k) {
        const int64_t pw[3] = {H, -1, D};
        if (check_dims(o.pers_k, 3, pw)) {
            fail_shape(ctx, "pers_k", o.pers_k, q, "[H, N, D]");
            return NULL;
        }
        N = o.pers_k->shape[1];
        const int64_t pvw[3] = {H, N, Dv};
        if (check_dims(o.pers_v, 3, pvw)) {
            fail_shape(ctx, "pers_v", o.pers_v, q, "[H, N, Dv] with the N of pers_k and the Dv of v");
            return NULL;
        }
    }
    attn_tensor *in[9] = {q, k, v, rk, u, vb, NULL, NULL, NULL};
    int n_in = 6;
    if (o.span) in[n_in++] = o.span;
    if (N) {
        in[n_in++] = o.pers_k;
        in[n_in++] = o.pers_v;
    }
    for (int i = 0; i < n_in; i++)
        if (!(in[i] = attn__contig(ctx, in[i]))) return NULL;
    if (o.span) { /* the values, once contiguous */
        const float *z = attn_f32(in[6]);
        for (int64_t h = 0; h < H; h++)
            if (!isfinite(z[h])) {
                attn__fail(ctx, ATTN_ERR_INVALID_ARG, "txl_attention: span[%lld] = %g is not "
                           "finite", (long long)h, (double)z[h]);
                return NULL;
            }
    }
    const int64_t ysh[4] = {B, H, T, Dv}, psh[4] = {B, H, T, S + N};
    attn_tensor *out = attn__tensor(ctx, name, ATTN_F32, 4, ysh);
    attn_tensor *P = out ? attn__tensor(ctx, name, ATTN_F32, 4, psh) : NULL;
    if (!P) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_TXL_ATTENTION, n_in, in, out);
    if (!node) return NULL;
    node->iarg[0] = o.span != NULL;
    node->iarg[1] = N;
    node->farg[0] = scale;
    node->farg[1] = o.span ? o.ramp : 1.0f;
    node->farg[2] = o.span ? o.span_eps : 0.0f;
    node->saved[0] = P;
    attn_tensor *y = attn__run(ctx, node);
    if (y && weights) {
        attn_tensor *w = attn__tensor(ctx, name, ATTN_F32, 4, psh);
        if (!w) return NULL;
        const txl_geom g = txl_geometry(node);
        const int64_t rows = B * H * T;
        for (int64_t r = 0; r < rows; r++)
            row_weights(&g, (r / T) % H, r % T, attn_f32(P) + r * g.W, attn_f32(w) + r * g.W);
        *weights = w;
    }
    return y;
}
