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
 * Forward, per (b, h): C = (q+u) K^T, BD = (q+vb) rk^T (every distance
 * 0 .. S-1), Cp = (q+u) pk^T by attn__sgemm; logit a_s = scale (C[t, s] +
 * BD[t, M + t - s]) for the visible s (a gather, no relative shift); out =
 * A V + A_pers pv. Backward, per head: dA and dV by products, the span and
 * softmax steps per row, then dBD[t, x] = dlogit[t, M + t - x] (the
 * scatter by distance) and dqv = dBD rk, drk += dBD^T qv, dqu = dlogit K
 * (+ pk), dk += dlogit^T qu by products.
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

#if defined(_OPENMP)
#define TXL_TID() omp_get_thread_num()
#else
#define TXL_TID() 0
#endif

/* Threads: units in parallel (single-threaded products) when there are at
 * least as many units as threads, else units in order with threaded
 * products (as sdpa.c). */
static int unit_threads(const attn_ctx *ctx, const txl_geom *g, int64_t units, int *parallel) {
    const double work = 2.0 * (double)g->B * (double)g->H * (double)g->T *
                        ((double)g->S * (double)(2 * g->D + g->Dv) + (double)g->N * (double)(g->D + g->Dv));
    const int nt = attn__threads_for(ctx, work);
    *parallel = nt > 1 && units >= nt;
    return nt;
}

/* Scratch of n floats for each of `slots` units; NULL (error recorded) on
 * overflow or a full arena. */
static float *txl_scratch(attn_ctx *ctx, int slots, int64_t n, const char *what) {
    size_t bytes;
    if (attn__mul_size((size_t)slots, (size_t)n, &bytes) || attn__mul_size(bytes, sizeof(float), &bytes)) {
        attn__fail(ctx, ATTN_ERR_OOM, "txl_attention: %s of %d x %lld floats overflows", what, slots,
                   (long long)n);
        return NULL;
    }
    return attn__alloc(ctx, bytes, what);
}

/* qu = q + u[h], qv = q + vb[h] for the T rows of one (b, h). */
static void biased_queries(const txl_geom *g, const float *q, int64_t h, float *qu, float *qv) {
    const float *u = g->u + h * g->D, *vb = g->vb + h * g->D;
    for (int64_t t = 0; t < g->T; t++)
        for (int64_t d = 0; d < g->D; d++) {
            qu[t * g->D + d] = q[t * g->D + d] + u[d];
            qv[t * g->D + d] = q[t * g->D + d] + vb[d];
        }
}

/* Scratch of one forward unit: qu, qv [T, D], BD [T, S], A [T, W]. */
static int64_t forward_scratch(const txl_geom *g) {
    return 2 * g->T * g->D + g->T * g->S + g->T * g->W;
}

/* One (b, h): the logits by three products (content (q+u) K^T, position
 * (q+vb) rk^T for every distance, persistent (q+u) pk^T), the gather of
 * each pair's distance, the softmax, then out = A [V ; pv] by two products. */
static void forward_unit(const txl_geom *g, int64_t b, int64_t h, float *Pall, float *out,
                         float *scr, int nt) {
    const int64_t T = g->T, S = g->S, D = g->D, Dv = g->Dv, W = g->W, N = g->N, bh = b * g->H + h;
    const float *q = g->q + bh * T * D, *K = g->k + bh * S * D, *V = g->v + bh * S * Dv;
    const float *rk = g->rk + h * g->L * D;
    float *P = Pall + bh * T * W, *o = out + bh * T * Dv;
    float *qu = scr, *qv = qu + T * D, *BD = qv + T * D, *A = BD + T * S;
    biased_queries(g, q, h, qu, qv);
    attn__sgemm(nt, 0, 1, T, S, D, 1.0f, qu, D, K, D, 0.0f, P, W);   /* (q+u) . k_s */
    attn__sgemm(nt, 0, 1, T, S, D, 1.0f, qv, D, rk, D, 0.0f, BD, S); /* (q+vb) . rk[x], every x */
    if (N) attn__sgemm(nt, 0, 1, T, N, D, 1.0f, qu, D, g->pk + h * N * D, D, 0.0f, P + S, W);
    for (int64_t t = 0; t < T; t++) {
        float *row = P + t * W;
        const float *bd = BD + t * S;
        const int64_t last = g->M + t;
        float mx = -INFINITY;
        for (int64_t s = 0; s <= last; s++) {
            /* a_s = scale ((q + u) . k_s + (q + vb) . rk[x]),  x = last - s */
            const float a = g->scale * (row[s] + bd[last - s]);
            row[s] = a;
            if (a > mx) mx = a;
        }
        for (int64_t s = last + 1; s < S; s++) row[s] = 0.0f;
        for (int64_t n = 0; n < N; n++) {
            const float a = g->scale * row[S + n];
            row[S + n] = a;
            if (a > mx) mx = a;
        }
        float sum = 0.0f;
        for (int64_t s = 0; s <= last; s++) sum += (row[s] = expf(row[s] - mx));
        for (int64_t n = 0; n < N; n++) sum += (row[S + n] = expf(row[S + n] - mx));
        const float inv = 1.0f / sum;
        for (int64_t s = 0; s <= last; s++) row[s] *= inv;
        for (int64_t n = 0; n < N; n++) row[S + n] *= inv;
        if (g->span) row_weights(g, h, t, row, A + t * W);
    }
    const float *Aw = g->span ? A : P; /* masked keys have weight 0 */
    attn__sgemm(nt, 0, 0, T, Dv, S, 1.0f, Aw, W, V, Dv, 0.0f, o, Dv);
    if (N) attn__sgemm(nt, 0, 0, T, Dv, N, 1.0f, Aw + S, W, g->pv + h * N * Dv, Dv, 1.0f, o, Dv);
}

attn_status attn__txl_attention_forward(attn_ctx *ctx, attn_node *node) {
    const txl_geom g = txl_geometry(node);
    float *P = attn_f32(node->saved[0]), *out = attn_f32(node->out);
    const int64_t units = g.B * g.H, n = forward_scratch(&g);
    int par;
    const int nt = unit_threads(ctx, &g, units, &par);
    /* kept until the context is reset (the arena's high-water mark then
     * counts it, as the forward's own need) */
    float *scr = txl_scratch(ctx, par ? nt : 1, n, "txl_attention forward scratch");
    if (!scr) return ctx->status;
    if (par) {
        ATTN__OMP_FOR(nt)
        for (int64_t u = 0; u < units; u++)
            forward_unit(&g, u / g.H, u % g.H, P, out, scr + (int64_t)TXL_TID() * n, 1);
    } else {
        for (int64_t u = 0; u < units; u++) forward_unit(&g, u / g.H, u % g.H, P, out, scr, nt);
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

typedef struct txl_grads {
    float *dq, *dk, *dv, *drk, *du, *dvb, *dz, *dpk, *dpv; /* NULL: not needed */
} txl_grads;

/* Scratch of one backward unit: qu, qv, dqu, dqv [T, D], A, dP [T, W], dBD [T, S]. */
static int64_t backward_scratch(const txl_geom *g) {
    return 4 * g->T * g->D + 2 * g->T * g->W + g->T * g->S;
}

/* One head h, every batch row in order: it owns every gradient of the head
 * (dk, dv of its (b, h) blocks; du, dvb, dz, drk, dpk, dpv), so heads run in
 * parallel without races. */
static void backward_unit(const txl_geom *g, int64_t h, const float *Pall, const float *go,
                          const txl_grads *gr, float *scr, int nt) {
    const int64_t T = g->T, S = g->S, D = g->D, Dv = g->Dv, W = g->W, N = g->N;
    float *qu = scr, *qv = qu + T * D, *dqu = qv + T * D, *dqv = dqu + T * D, *A = dqv + T * D,
          *dP = A + T * W, *dBD = dP + T * W;
    const float *rk = g->rk + h * g->L * D;
    const float *pk = N ? g->pk + h * N * D : NULL, *pv = N ? g->pv + h * N * Dv : NULL;
    float dzacc = 0.0f;
    for (int64_t b = 0; b < g->B; b++) {
        const int64_t bh = b * g->H + h;
        const float *q = g->q + bh * T * D, *K = g->k + bh * S * D, *V = g->v + bh * S * Dv;
        const float *P = Pall + bh * T * W, *G = go + bh * T * Dv;
        biased_queries(g, q, h, qu, qv);
        if (g->span)
            for (int64_t t = 0; t < T; t++) row_weights(g, h, t, P + t * W, A + t * W);
        const float *Aw = g->span ? A : P;
        /* out = A [V ; pv]  =>  dA = G [V ; pv]^T,  dV += A^T G,  dpv += A_pers^T G */
        attn__sgemm(nt, 0, 1, T, S, Dv, 1.0f, G, Dv, V, Dv, 0.0f, dP, W);
        if (N) attn__sgemm(nt, 0, 1, T, N, Dv, 1.0f, G, Dv, pv, Dv, 0.0f, dP + S, W);
        if (gr->dv) attn__sgemm(nt, 1, 0, S, Dv, T, 1.0f, Aw, W, G, Dv, 1.0f, gr->dv + bh * S * Dv, Dv);
        if (gr->dpv && N) attn__sgemm(nt, 1, 0, N, Dv, T, 1.0f, Aw + S, W, G, Dv, 1.0f, gr->dpv + h * N * Dv, Dv);
        for (int64_t t = 0; t < T; t++) {
            const int64_t last = g->M + t;
            const float *p = P + t * W, *a = Aw + t * W;
            float *d = dP + t * W, *dbd = dBD + t * S;
            if (g->span) {
                /* A_j = P_j m_j / Z  =>  dP_j = m_j/Z (dA_j - c), dm_j = P_j/Z (dA_j - c) */
                const float iz = span_inv_z(g, h, t, p);
                float c = 0.0f;
                for (int64_t s = 0; s <= last; s++) c += a[s] * d[s];
                for (int64_t n = 0; n < N; n++) c += a[S + n] * d[S + n];
                for (int64_t s = 0; s <= last; s++) {
                    const float pre = span_pre(g, h, last - s), e = (d[s] - c) * iz;
                    if (pre >= 0.0f && pre <= 1.0f) dzacc += p[s] * e / g->ramp;
                    d[s] = span_mask(pre) * e;
                }
                for (int64_t n = 0; n < N; n++) d[S + n] = (d[S + n] - c) * iz;
            }
            /* P = softmax(a)  =>  dlogit_j = P_j (dP_j - sum_i P_i dP_i); times scale */
            float sp = 0.0f;
            for (int64_t s = 0; s <= last; s++) sp += p[s] * d[s];
            for (int64_t n = 0; n < N; n++) sp += p[S + n] * d[S + n];
            for (int64_t s = 0; s <= last; s++) d[s] = g->scale * p[s] * (d[s] - sp);
            for (int64_t s = last + 1; s < S; s++) d[s] = 0.0f; /* masked keys */
            for (int64_t n = 0; n < N; n++) d[S + n] = g->scale * p[S + n] * (d[S + n] - sp);
            /* the position term's logit gradient by distance: dBD[t, x] = d[last - x] */
            for (int64_t x = 0; x <= last; x++) dbd[x] = d[last - x];
            for (int64_t x = last + 1; x < S; x++) dbd[x] = 0.0f;
        }
        /* a_s = scale ((q+u) . k_s + (q+vb) . rk[x]),  a_n = scale (q+u) . pk_n */
        attn__sgemm(nt, 0, 0, T, D, S, 1.0f, dP, W, K, D, 0.0f, dqu, D);
        if (N) attn__sgemm(nt, 0, 0, T, D, N, 1.0f, dP + S, W, pk, D, 1.0f, dqu, D);
        attn__sgemm(nt, 0, 0, T, D, S, 1.0f, dBD, S, rk, D, 0.0f, dqv, D);
        if (gr->dk) attn__sgemm(nt, 1, 0, S, D, T, 1.0f, dP, W, qu, D, 1.0f, gr->dk + bh * S * D, D);
        if (gr->dpk && N) attn__sgemm(nt, 1, 0, N, D, T, 1.0f, dP + S, W, qu, D, 1.0f, gr->dpk + h * N * D, D);
        if (gr->drk) attn__sgemm(nt, 1, 0, S, D, T, 1.0f, dBD, S, qv, D, 1.0f, gr->drk + h * g->L * D, D);
        for (int64_t t = 0; t < T; t++)
            for (int64_t e = 0; e < D; e++) {
                const float a = dqu[t * D + e], c = dqv[t * D + e];
                if (gr->dq) gr->dq[(bh * T + t) * D + e] += a + c;
                if (gr->du) gr->du[h * D + e] += a;
                if (gr->dvb) gr->dvb[h * D + e] += c;
            }
    }
    if (gr->dz) gr->dz[h] += dzacc;
}

attn_status attn__txl_attention_backward(attn_ctx *ctx, attn_node *node) {
    const txl_geom g = txl_geometry(node);
    txl_grads gr;
    memset(&gr, 0, sizeof gr);
    float **slot[6] = {&gr.dq, &gr.dk, &gr.dv, &gr.drk, &gr.du, &gr.dvb};
    for (int i = 0; i < 6; i++)
        if (attn__needs_grad(node, i)) *slot[i] = node->in[i]->grad;
    int i = 6;
    if (g.span) {
        if (attn__needs_grad(node, i)) gr.dz = node->in[i]->grad;
        i++;
    }
    if (g.N) {
        if (attn__needs_grad(node, i)) gr.dpk = node->in[i]->grad;
        if (attn__needs_grad(node, i + 1)) gr.dpv = node->in[i + 1]->grad;
    }
    const int64_t n = backward_scratch(&g);
    int par;
    const int nt = unit_threads(ctx, &g, g.H, &par);
    const size_t mark = attn__arena_mark(ctx);
    float *scr = txl_scratch(ctx, par ? nt : 1, n, "txl_attention backward scratch");
    if (!scr) return ctx->status;
    const float *P = attn_f32(node->saved[0]), *go = node->out->grad;
    if (par) {
        ATTN__OMP_FOR(nt)
        for (int64_t h = 0; h < g.H; h++) backward_unit(&g, h, P, go, &gr, scr + (int64_t)TXL_TID() * n, 1);
    } else {
        for (int64_t h = 0; h < g.H; h++) backward_unit(&g, h, P, go, &gr, scr, nt);
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
