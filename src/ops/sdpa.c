/* sdpa.c: scaled dot-product attention, the reference op of the Transformer
 * family (graph op SDPA, include/attn/sdpa.h), and the parameter-free basic
 * self-attention built on it.
 *
 * Shape contract:
 *   in[0] q [B, H, T, D], in[1] k [B, Hkv, S, D], in[2] v [B, Hkv, S, Dv]
 *   (contiguous copies), then optionally in[3] bias (contiguous, f32,
 *   broadcastable to [B, H, T, S]) and key_lengths (i32 [B]), in that order.
 *   -> out [B, H, T, Dv].
 *   iarg[0] causal, iarg[1] window (0: none), iarg[2] has bias,
 *   iarg[3] has key_lengths, iarg[4] the RNG offset of the dropout mask,
 *   iarg[5] packed layout, iarg[6] H and iarg[7] Hkv when packed;
 *   farg[0] scale, farg[1] dropout p (0 when not training); node->seed.
 *
 * Packed layout (attn__sdpa_packed, the self-attention of the Transformer
 * blocks): in[0] = in[1] = in[2] = qkv [B, T, (H + 2 Hkv) D], the output of
 * the packed input projection, read in place: q[b,h,t,:] is
 * qkv[b, t, h D : (h+1) D], k and v the next Hkv D and the last Hkv D
 * columns (S = T, Dv = D); out [B, T, H D], head h in columns h D .. h D + D,
 * so that it feeds the output projection as it is. The kernels see every
 * layout as strides of (b, head, row) with unit stride within a row, so the
 * products read and write the heads in place (GEMM leading dimensions), and
 * the gradients, which have the layout of the data, too. Nothing else
 * changes: P, the dropout counters and the bias are indexed by (b, h, t, s).
 *   saved[0] = P [B, H, T, S], the probabilities after masking and before
 *   dropout (zero at masked keys, a zero row for a query with no visible key).
 *   saved[1] = the sparse pattern of attn_sdpa_opts.sparse (its bytes in an
 *   i32 tensor) or NULL: an element mask, attn_sparse_visible per logit, the
 *   hidden keys -inf after the bias (P = 0 there, so the backward needs
 *   nothing more).
 *
 * Dropout: element i of P in row-major [B, H, T, S] order is kept iff
 * attn_rng_uniform(seed, offset, i) >= p, and then scaled by 1 / (1 - p):
 * the same stream convention as the DROPOUT op (ceil(numel(P) / 4) counters
 * are consumed). The mask is regenerated in backward, never stored.
 *
 * Backward (docs/transformer.md, "Scaled dot-product attention: the reference
 * op"), per (b, h) with g = h / (H / Hkv), Z the scaled mask (1 without
 * dropout):
 *   dV_g += (P o Z)^T dO
 *   dP    = (dO V_g^T) o Z
 *   dL    = P o (dP - rowsum(P o dP))          (the logits' gradient)
 *   dQ_h += scale dL K_g,   dK_g += scale dL^T Q_h,   dbias += dL (reduced)
 *
 * Threads: the work unit is (b, g), a key/value head with the H / Hkv query
 * heads that read it, processed in order: it owns its dK_g, dV_g and the
 * dQ rows of its query heads, so units run in parallel without races and
 * every sum has a fixed order. With at least as many units as threads, the
 * units are split statically and every product is single-threaded, so the
 * results are bitwise the same for any thread count; with fewer units the
 * units run one after the other and the products use the threads. The bias
 * gradient is reduced after the parallel part, in index order.
 */
#include <math.h>
#include <string.h>

#include "../core/internal.h"
#include "../core/vmath.h"
#include "sdpa_common.h"
#include "sdpa_internal.h"
#include "view_internal.h"
#include "attn/ops.h"
#include "attn/sdpa.h"

/* The row kernels of the softmax and its derivative are compiled for the
 * baseline (SSE2), AVX2 and AVX-512 on x86-64 with GCC, chosen at load time
 * (ifunc). ISO C mode contracts no FMA and the sums run in a fixed order of
 * ROW_LANES partial sums, so every clone gives the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ATTN_NO_CLONES)
#define SDPA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SDPA_CLONES
#endif
#define ROW_LANES 8
#define ROW_CHUNK 256

/* ---- geometry ------------------------------------------------------------------ */

typedef struct sdpa_geom {
    int64_t B, H, Hkv, T, S, D, Dv, G; /* G = H / Hkv query heads per kv head */
    float scale, p;
    int causal;
    int64_t window;          /* 0: none; clamped to S + T + 1 (no overflow) */
    const float *q, *k, *v;
    int64_t qs[3], ks[3], vs[3]; /* strides of (b, head, row) of q, k, v (views read in place) */
    int64_t gqs[3], gks[3], gvs[3]; /* the same of their gradients (contiguous unless packed) */
    int64_t os[3];               /* the same for out (and its gradient) */
    int64_t goff[3];             /* element offset of q, k, v in their input */
    const float *bias;       /* NULL or contiguous */
    int64_t bst[4];          /* broadcast strides of bias over [B, H, T, S] */
    const int32_t *kl;       /* NULL or [B] */
    const float *slopes;     /* NULL or the ALiBi slopes [H] */
    const attn_sparse_pattern *sp; /* NULL or the sparse pattern (saved[1]) */
    uint64_t seed, offset;
} sdpa_geom;

static void set3(int64_t *st, int64_t a, int64_t b, int64_t c) {
    st[0] = a;
    st[1] = b;
    st[2] = c;
}

static sdpa_geom sdpa_geometry(const attn_node *node) {
    sdpa_geom g;
    const attn_tensor *q = node->in[0], *k = node->in[1], *v = node->in[2];
    if (node->iarg[5]) { /* packed: q = k = v = qkv [B, T, (H + 2 Hkv) D] */
        g.B = q->shape[0];
        g.T = g.S = q->shape[1];
        g.H = node->iarg[6];
        g.Hkv = node->iarg[7];
        g.D = g.Dv = q->shape[2] / (g.H + 2 * g.Hkv);
        const int64_t W = q->shape[2];
        set3(g.qs, g.T * W, g.D, W);
        set3(g.ks, g.T * W, g.D, W);
        set3(g.vs, g.T * W, g.D, W);
        set3(g.os, g.T * g.H * g.D, g.D, g.H * g.D);
        set3(g.goff, 0, g.H * g.D, (g.H + g.Hkv) * g.D);
        memcpy(g.gqs, g.qs, sizeof g.qs), memcpy(g.gks, g.ks, sizeof g.ks);
        memcpy(g.gvs, g.vs, sizeof g.vs);
    } else {
        g.B = q->shape[0];
        g.H = q->shape[1];
        g.T = q->shape[2];
        g.D = q->shape[3];
        g.Hkv = k->shape[1];
        g.S = k->shape[2];
        g.Dv = v->shape[3];
        set3(g.qs, q->stride[0], q->stride[1], q->stride[2]);
        set3(g.ks, k->stride[0], k->stride[1], k->stride[2]);
        set3(g.vs, v->stride[0], v->stride[1], v->stride[2]);
        set3(g.gqs, g.H * g.T * g.D, g.T * g.D, g.D);
        set3(g.gks, g.Hkv * g.S * g.D, g.S * g.D, g.D);
        set3(g.gvs, g.Hkv * g.S * g.Dv, g.S * g.Dv, g.Dv);
        set3(g.os, g.H * g.T * g.Dv, g.T * g.Dv, g.Dv);
        set3(g.goff, 0, 0, 0);
    }
    g.G = g.H / g.Hkv;
    g.causal = (int)node->iarg[0];
    g.window = node->iarg[1];
    if (g.window > g.S + g.T + 1) g.window = g.S + g.T + 1; /* the same visibility */
    g.scale = node->farg[0];
    g.p = node->farg[1];
    g.q = attn_f32(node->in[0]) + g.goff[0];
    g.k = attn_f32(node->in[1]) + g.goff[1];
    g.v = attn_f32(node->in[2]) + g.goff[2];
    const int64_t shape[4] = {g.B, g.H, g.T, g.S};
    sdpa_node_inputs(node, shape, &g.bias, g.bst, &g.kl, &g.slopes, &g.seed, &g.offset);
    g.sp = sdpa_node_sparse(node);
    return g;
}

/* The visible keys of query t of batch b form one interval [*lo, *hi) (empty
 * when *lo >= *hi); see sdpa.h for the rules. */
static void visible_range(const sdpa_geom *g, int64_t b, int64_t t, int64_t *lo, int64_t *hi) {
    sdpa_visible(g->S, g->T, g->causal, g->window, g->kl, b, t, lo, hi);
}

/* Keys of batch b that any query may see: key_lengths[b] (or S). The
 * products stop there, so padded keys (whatever their values, NaN included)
 * never reach the output or the gradients. */
static inline int64_t key_limit(const sdpa_geom *g, int64_t b) {
    return g->kl ? (int64_t)g->kl[b] : g->S;
}

static inline const float *bias_row(const sdpa_geom *g, int64_t b, int64_t h, int64_t t) {
    return g->bias ? g->bias + b * g->bst[0] + h * g->bst[1] + t * g->bst[2] : NULL;
}

/* dst[s] = keep ? src[s] / (1 - p) : 0 for the S elements of P's row whose
 * first element has index `base` (one Philox block serves four elements);
 * dst may be src. */
static void dropout_row(const sdpa_geom *g, uint64_t base, const float *src, float *dst) {
    const uint32_t key[2] = {(uint32_t)g->seed, (uint32_t)(g->seed >> 32)};
    const float p = g->p, inv = 1.0f / (1.0f - g->p);
    const uint64_t end = base + (uint64_t)g->S;
    uint64_t i = base;
    while (i < end) {
        const uint64_t c = g->offset + (i >> 2);
        const uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), 0, 0};
        uint32_t w[4];
        attn_philox4x32(ctr, key, w);
        for (int j = (int)(i & 3); j < 4 && i < end; j++, i++) {
            const float u = (float)(w[j] >> 8) * 0x1.0p-24f; /* = attn_rng_uniform */
            dst[i - base] = u >= p ? src[i - base] * inv : 0.0f;
        }
    }
}

/* ---- builder ---------------------------------------------------------------------- */

/* Checks the options against the geometry [B, H, T, S] (q is named in the
 * messages), builds the node over in[0..2] (and bias, key_lengths) with an
 * output of shape ysh, and runs it. packed: in[] holds qkv three times and
 * iarg[5..7] say so. */
static attn_tensor *sdpa_build(attn_ctx *ctx, const char *name, attn_tensor *const *qkv3,
                               const int64_t *ysh, int yndim, int64_t B, int64_t H, int64_t Hkv,
                               int64_t T, int64_t S, int64_t D, int packed,
                               const attn_sdpa_opts *opts, attn_tensor **weights) {
    const attn_tensor *q = qkv3[0], *k = qkv3[1];
    const int64_t osh[4] = {B, H, T, S};
    attn_sdpa_opts o;
    if (sdpa_check_opts(ctx, name, q, k, osh, opts, &o)) return NULL;
    attn_tensor *in[6] = {qkv3[0], qkv3[1], qkv3[2], NULL, NULL, NULL};
    int n_in = 3;
    if (sdpa_opt_inputs(ctx, &o, in, &n_in)) return NULL;
    attn_tensor *out = attn__tensor(ctx, name, ATTN_F32, yndim, ysh);
    attn_tensor *P = out ? attn__tensor(ctx, name, ATTN_F32, 4, osh) : NULL;
    if (!P) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_SDPA, n_in, in, out);
    if (!node) return NULL;
    sdpa_node_attrs(ctx, node, &o, D, (uint64_t)attn_tensor_numel(P));
    node->iarg[5] = packed != 0;
    node->iarg[6] = H;
    node->iarg[7] = Hkv;
    node->saved[0] = P;
    if (sdpa_save_sparse(ctx, name, node, o.sparse)) return NULL;
    attn_tensor *y = attn__run(ctx, node);
    if (y && weights) {
        attn_tensor *w = attn__tensor(ctx, name, ATTN_F32, 4, osh);
        if (!w) return NULL;
        memcpy(w->data, P->data, sizeof(float) * (size_t)attn_tensor_numel(P));
        *weights = w;
    }
    return y;
}

attn_tensor *attn_sdpa(attn_ctx *ctx, attn_tensor *q, attn_tensor *k, attn_tensor *v,
                       const attn_sdpa_opts *opts, attn_tensor **weights) {
    static const char name[] = "sdpa";
    if (weights) *weights = NULL;
    if (sdpa_check_qkv(ctx, name, q, k, v, 0)) return NULL;
    const int64_t B = q->shape[0], H = q->shape[1], T = q->shape[2], D = q->shape[3];
    const int64_t Hkv = k->shape[1], S = k->shape[2], Dv = v->shape[3];
    /* f32 views (heads split by permute, a KV cache's prefix) are read in
     * place by their strides (sdpa_in_place) */
    attn_tensor *in[3] = {sdpa_in_place(ctx, q), sdpa_in_place(ctx, k), sdpa_in_place(ctx, v)};
    if (!in[0] || !in[1] || !in[2]) return NULL;
    const int64_t ysh[4] = {B, H, T, Dv};
    return sdpa_build(ctx, name, in, ysh, 4, B, H, Hkv, T, S, D, 0, opts, weights);
}

attn_tensor *attn__sdpa_packed(attn_ctx *ctx, attn_tensor *qkv, int64_t H, int64_t Hkv,
                               const attn_sdpa_opts *opts, attn_tensor **weights) {
    static const char name[] = "sdpa (packed)";
    if (weights) *weights = NULL;
    if (!(qkv = sdpa_check_packed(ctx, name, qkv, H, Hkv))) return NULL;
    const int64_t B = qkv->shape[0], T = qkv->shape[1], D = qkv->shape[2] / (H + 2 * Hkv);
    attn_tensor *in[3] = {qkv, qkv, qkv};
    const int64_t ysh[3] = {B, T, H * D};
    return sdpa_build(ctx, name, in, ysh, 3, B, H, Hkv, T, T, D, 1, opts, weights);
}

attn_tensor *attn_basic_self_attention(attn_ctx *ctx, attn_tensor *x, int causal) {
    static const char name[] = "basic_self_attention";
    if (attn__any_null(ctx, name, 1, x)) return NULL;
    if (attn__check_dtype(ctx, name, "x", x, ATTN_F32)) return NULL;
    if (x->ndim != 3 || x->shape[0] < 1 || x->shape[1] < 1 || x->shape[2] < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x %s, expected [B,T,E] with every size >= 1", name,
                   attn__shp(x));
        return NULL;
    }
    const int64_t B = x->shape[0], T = x->shape[1], E = x->shape[2];
    const int64_t sh4[4] = {B, 1, T, E};
    attn_tensor *x4 = attn_reshape(ctx, attn__contig(ctx, x), 4, sh4);
    if (!x4) return NULL;
    attn_sdpa_opts o = {0};
    o.scale = 1.0f;
    o.causal = causal;
    attn_tensor *y = attn_sdpa(ctx, x4, x4, x4, &o, NULL);
    return y ? attn_reshape(ctx, y, 3, x->shape) : NULL;
}

/* ---- forward (fast) ---------------------------------------------------------------- */

/* The largest of z[0 .. n) that is not NaN (-inf if none); *nan = 1 when
 * some z is NaN. ROW_LANES running maxima, combined at the end. */
ATTN__VMATH_INLINE float row_max(const float *restrict z, int64_t n, int *nan) {
    float m[ROW_LANES];
    int bad[ROW_LANES];
    for (int k = 0; k < ROW_LANES; k++) m[k] = -INFINITY, bad[k] = 0;
    int64_t j = 0;
    for (; j + ROW_LANES <= n; j += ROW_LANES)
        for (int k = 0; k < ROW_LANES; k++) {
            const float v = z[j + k];
            bad[k] |= v != v;
            m[k] = v > m[k] ? v : m[k];
        }
    float mx = -INFINITY;
    int any = 0;
    for (int k = 0; k < ROW_LANES; k++) {
        any |= bad[k];
        mx = m[k] > mx ? m[k] : mx;
    }
    for (; j < n; j++) {
        any |= z[j] != z[j];
        mx = z[j] > mx ? z[j] : mx;
    }
    *nan = any;
    return mx;
}

/* z[j] <- exp(z[j] - mx) in place, with attn__exp_core (vmath.h); 0 where
 * z - mx < -87 (-inf included: masked keys get exactly 0; libm's expf is
 * below 1.7e-38 there too). Returns the sum of the new z in double,
 * ROW_LANES partial sums in a fixed order. The clamp runs as its own loop
 * over a chunk so that both loops vectorise (see vmath.h); the choice of 0
 * is a bit mask for the same reason. */
ATTN__VMATH_INLINE double row_exp(float *restrict z, int64_t n, float mx) {
    double acc[ROW_LANES] = {0};
    float c[ROW_CHUNK];
    for (int64_t i0 = 0; i0 < n; i0 += ROW_CHUNK) {
        const int64_t m = n - i0 < ROW_CHUNK ? n - i0 : ROW_CHUNK;
        float *zz = z + i0;
        for (int64_t j = 0; j < m; j++) {
            const float d = zz[j] - mx;
            c[j] = d < -87.0f ? -87.0f : d; /* NaN (inf - inf) passes and stays NaN */
        }
        for (int64_t j = 0; j < m; j++) {
            const float e = attn__exp_core(c[j]);
            uint32_t eb;
            memcpy(&eb, &e, sizeof eb);
            eb &= (uint32_t)((zz[j] - mx < -87.0f) ? 0u : 0xFFFFFFFFu);
            memcpy(&zz[j], &eb, sizeof eb);
        }
        int64_t j = 0;
        for (; j + ROW_LANES <= m; j += ROW_LANES)
            for (int k = 0; k < ROW_LANES; k++) acc[k] += (double)zz[j + k];
        for (int k = 0; j < m; j++, k++) acc[k] += (double)zz[j];
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* The softmax's derivative on one row: with c = sum_s p[s] r[s] (double,
 * ROW_LANES partial sums), r[s] <- p[s] (r[s] - c), exactly 0 where p[s] is
 * 0 (masked keys), whatever r holds there. */
SDPA_CLONES static void row_dsoftmax(float *restrict r, const float *restrict p, int64_t n) {
    double acc[ROW_LANES] = {0};
    int64_t j = 0;
    for (; j + ROW_LANES <= n; j += ROW_LANES)
        for (int k = 0; k < ROW_LANES; k++) acc[k] += (double)p[j + k] * (double)r[j + k];
    for (int k = 0; j < n; j++, k++) acc[k] += (double)p[j] * (double)r[j];
    const float c =
        (float)(((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
    for (j = 0; j < n; j++) {
        const float v = p[j] * (r[j] - c);
        uint32_t vb;
        memcpy(&vb, &v, sizeof vb);
        vb &= (uint32_t)(p[j] == 0.0f ? 0u : 0xFFFFFFFFu);
        memcpy(&r[j], &vb, sizeof vb);
    }
}

/* One row of P in place (compiled in the clones with row_max and row_exp
 * inlined: one call per row, and the zeroing and scaling loops in the
 * clone's vectors too): on entry row[s] holds scale q.k for every s; on exit
 * the probabilities (0 outside [lo, hi) and at -inf logits). The bias row
 * brow (stride bs) and, with slopes, the ALiBi term of slope *slope at query
 * position qpos are added first, then keys the sparse pattern sp hides (head
 * h, query t of T) become -inf. Returns 1 when the row has no visible key
 * (all zeros). A NaN logit makes the visible part of the row NaN (it
 * propagates; it is never taken for a masked row). */
SDPA_CLONES static int softmax_row(float *row, int64_t S, int64_t lo, int64_t hi, const float *brow,
                       int64_t bs, const float *slope, int64_t qpos,
                       const attn_sparse_pattern *sp, int64_t h, int64_t T) {
    for (int64_t s = 0; s < lo; s++) row[s] = 0.0f;
    for (int64_t s = hi; s < S; s++) row[s] = 0.0f;
    if (slope)
        for (int64_t s = lo; s < hi; s++)
            row[s] += brow ? sdpa_alibi(*slope, qpos, s) + brow[s * bs] : sdpa_alibi(*slope, qpos, s);
    else if (brow)
        for (int64_t s = lo; s < hi; s++) row[s] += brow[s * bs];
    if (sp)
        for (int64_t s = lo; s < hi; s++)
            if (!attn_sparse_visible(sp, h, T, S, qpos - (S - T), s)) row[s] = -INFINITY;
    int nan = 0;
    const float mx = row_max(row + lo, hi - lo, &nan);
    if (nan) {
        for (int64_t s = lo; s < hi; s++) row[s] = NAN;
        return 0;
    }
    if (mx == -INFINITY) {
        for (int64_t s = lo; s < hi; s++) row[s] = 0.0f;
        return 1;
    }
    /* the exponential and the scaling run over [lo, hx), hx - lo a multiple
     * of 16 where the row has room: the keys [hi, hx) enter as -inf, give
     * exact zeros and add +0 to the lanes of the sum they fall in, so the
     * bits are those of [lo, hi) alone, without the scalar tails of short
     * (causal) rows */
    int64_t hx = lo + ((hi - lo + 15) & ~(int64_t)15);
    if (hx > S) hx = S;
    for (int64_t s = hi; s < hx; s++) row[s] = -INFINITY;
    const double sum = row_exp(row + lo, hx - lo, mx);
    const float inv = (float)(1.0 / sum);
    for (int64_t s = lo; s < hx; s++) row[s] *= inv;
    return 0;
}

/* Forward of unit (b, kv head kh) with nt threads per product; pz is a
 * [T, S] scratch (dropout only). */
static void forward_unit(const sdpa_geom *g, int64_t b, int64_t kh, float *P, float *out, float *pz,
                         int nt) {
    const int64_t T = g->T, S = g->S, D = g->D, Dv = g->Dv;
    const float *K = g->k + b * g->ks[0] + kh * g->ks[1];
    const float *V = g->v + b * g->vs[0] + kh * g->vs[1];
    const int64_t Sb = key_limit(g, b);
    for (int64_t h = kh * g->G; h < (kh + 1) * g->G; h++) {
        const int64_t bh = b * g->H + h;
        const float *Q = g->q + b * g->qs[0] + h * g->qs[1];
        float *Pb = P + bh * T * S, *O = out + b * g->os[0] + h * g->os[1];
        /* logits = scale Q K^T   [T,D] x [D,Sb] (softmax_row zeroes s >= Sb) */
        attn__sgemm(nt, 0, 1, T, Sb, D, g->scale, Q, g->qs[2], K, g->ks[2], 0.0f, Pb, S);
        int dead = 0; /* rows without a visible key are zeroed after the product */
        for (int64_t t = 0; t < T; t++) {
            int64_t lo, hi;
            visible_range(g, b, t, &lo, &hi);
            dead |= softmax_row(Pb + t * S, S, lo, hi, bias_row(g, b, h, t), g->bst[3],
                                g->slopes ? g->slopes + h : NULL, t + (S - T), g->sp, h, T);
        }
        const float *A = Pb;
        if (g->p > 0.0f) {
            for (int64_t t = 0; t < T; t++)
                dropout_row(g, (uint64_t)((bh * T + t) * S), Pb + t * S, pz + t * S);
            A = pz;
        }
        /* out = (P o Z) V   [T,Sb] x [Sb,Dv] */
        attn__sgemm(nt, 0, 0, T, Dv, Sb, 1.0f, A, S, V, g->vs[2], 0.0f, O, g->os[2]);
        /* 0 * (a NaN or inf in v) must not leak into an empty row. A row is
         * empty iff it is all zeros: a live row's largest weight is >= 1/S,
         * and a NaN row compares unequal to 0. */
        for (int64_t t = 0; dead && t < T; t++) {
            const float *row = Pb + t * S;
            int any = 0;
            for (int64_t s = 0; s < S && !any; s++) any = row[s] != 0.0f;
            if (!any) memset(O + t * g->os[2], 0, sizeof(float) * (size_t)Dv);
        }
    }
}

/* Scratch of n floats for each of `slots` threads; NULL (error recorded) on
 * overflow or a full arena. */
static float *scratch(attn_ctx *ctx, int slots, int64_t n, const char *what) {
    return sdpa_scratch(ctx, "sdpa", slots, n, what);
}

#if defined(_OPENMP)
#define SDPA_TID() omp_get_thread_num()
#else
#define SDPA_TID() 0
#endif

/* Threads: units in parallel (single-threaded products) when there are at
 * least as many units as threads, else units in order with threaded
 * products. */
static int unit_threads(const attn_ctx *ctx, const sdpa_geom *g, int *parallel) {
    const double work =
        2.0 * (double)g->B * (double)g->H * (double)g->T * (double)g->S * (double)(g->D + g->Dv);
    const int nt = attn__threads_for(ctx, work);
    *parallel = nt > 1 && g->B * g->Hkv >= nt;
    return nt;
}

attn_status attn__sdpa_forward(attn_ctx *ctx, attn_node *node) {
    const sdpa_geom g = sdpa_geometry(node);
    float *P = attn_f32(node->saved[0]), *out = attn_f32(node->out);
    int par;
    const int nt = unit_threads(ctx, &g, &par);
    const int slots = par ? nt : 1;
    float *pz = NULL;
    if (g.p > 0.0f && !(pz = scratch(ctx, slots, g.T * g.S, "sdpa forward (dropout scratch)")))
        return ctx->status;
    const int64_t units = g.B * g.Hkv;
    if (par) {
        ATTN__OMP_FOR(nt)
        for (int64_t u = 0; u < units; u++)
            forward_unit(&g, u / g.Hkv, u % g.Hkv, P, out, pz ? pz + SDPA_TID() * g.T * g.S : NULL,
                         1);
    } else {
        for (int64_t u = 0; u < units; u++) forward_unit(&g, u / g.Hkv, u % g.Hkv, P, out, pz, nt);
    }
    return ATTN_OK;
}

/* ---- forward (reference) --------------------------------------------------------------- */

attn_status attn__sdpa_ref(attn_ctx *ctx, attn_node *node) {
    const sdpa_geom g = sdpa_geometry(node);
    float *P = attn_f32(node->saved[0]), *out = attn_f32(node->out);
    const int64_t T = g.T, S = g.S, D = g.D, Dv = g.Dv;
    double *z = attn__alloc(ctx, sizeof(double) * (size_t)S, "sdpa reference (row)");
    if (!z) return ctx->status;
    for (int64_t b = 0; b < g.B; b++)
        for (int64_t h = 0; h < g.H; h++) {
            const int64_t kh = h / g.G, bh = b * g.H + h;
            const float *K = g.k + b * g.ks[0] + kh * g.ks[1];
            const float *V = g.v + b * g.vs[0] + kh * g.vs[1];
            for (int64_t t = 0; t < T; t++) {
                const float *qr = g.q + b * g.qs[0] + h * g.qs[1] + t * g.qs[2];
                const float *br = bias_row(&g, b, h, t);
                float *pr = P + (bh * T + t) * S;
                float *orow = out + b * g.os[0] + h * g.os[1] + t * g.os[2];
                int64_t lo, hi;
                visible_range(&g, b, t, &lo, &hi);
                double mx = -INFINITY;
                int nan = 0;
                for (int64_t s = lo; s < hi; s++) {
                    if (g.sp && !attn_sparse_visible(g.sp, h, T, S, t, s)) {
                        z[s] = -INFINITY; /* hidden by the pattern: weight exp(-inf) = 0 */
                        continue;
                    }
                    /* the logit the fast kernel defines, up to the order of
                     * its sum: scale q . k rounded to f32, then the ALiBi
                     * term and the bias added in f32 (a -1e9 bias must swamp
                     * q . k as it does there) */
                    double acc = 0.0;
                    for (int64_t d = 0; d < D; d++) acc += (double)qr[d] * (double)K[s * g.ks[2] + d];
                    float x = (float)((double)g.scale * acc);
                    if (g.slopes)
                        x += br ? sdpa_alibi(g.slopes[h], t + (S - T), s) + br[s * g.bst[3]]
                                : sdpa_alibi(g.slopes[h], t + (S - T), s);
                    else if (br)
                        x += br[s * g.bst[3]];
                    z[s] = x;
                    if (isnan(z[s]))
                        nan = 1;
                    else if (z[s] > mx)
                        mx = z[s];
                }
                for (int64_t s = 0; s < S; s++) z[s] = s < lo || s >= hi ? 0.0 : z[s];
                if (nan) {
                    for (int64_t s = lo; s < hi; s++) z[s] = NAN;
                } else if (mx == -INFINITY) {
                    for (int64_t s = lo; s < hi; s++) z[s] = 0.0;
                } else {
                    double sum = 0.0;
                    for (int64_t s = lo; s < hi; s++) sum += (z[s] = exp(z[s] - mx));
                    for (int64_t s = lo; s < hi; s++) z[s] /= sum;
                }
                for (int64_t s = 0; s < S; s++) pr[s] = (float)z[s];
                /* an empty row is 0; a live one sums over every key below
                 * key_lengths, as the fast product (0 * NaN in v is NaN) */
                const int empty = !nan && mx == -INFINITY;
                const int64_t Sb = key_limit(&g, b);
                for (int64_t e = 0; e < Dv; e++) {
                    double acc = 0.0;
                    for (int64_t s = 0; s < Sb && !empty; s++) {
                        double w = z[s];
                        if (g.p > 0.0f) {
                            const uint64_t i = (uint64_t)((bh * T + t) * S + s);
                            w = attn_rng_uniform(g.seed, g.offset, i) >= g.p
                                    ? w / (1.0 - (double)g.p)
                                    : 0.0;
                        }
                        acc += w * (double)V[s * g.vs[2] + e];
                    }
                    orow[e] = (float)acc;
                }
            }
        }
    return ATTN_OK;
}

/* ---- backward ------------------------------------------------------------------------------ */

typedef struct sdpa_grads {
    float *dq, *dk, *dv; /* NULL when not needed */
    float *dl_all;       /* [B,H,T,S] logits gradient kept for the bias, or NULL */
    int need_dl;         /* q, k or bias needs a gradient */
} sdpa_grads;

/* Backward of unit (b, kh); pz and dl are [T, S] scratch (dl unused when
 * dl_all is kept). */
static void backward_unit(const sdpa_geom *g, const sdpa_grads *gr, const float *P, const float *gy,
                          int64_t b, int64_t kh, float *pz, float *dl, int nt) {
    const int64_t T = g->T, S = g->S, D = g->D, Dv = g->Dv;
    const int64_t ko = b * g->ks[0] + kh * g->ks[1], vo = b * g->vs[0] + kh * g->vs[1];
    const int64_t gko = b * g->gks[0] + kh * g->gks[1], gvo = b * g->gvs[0] + kh * g->gvs[1];
    const float *K = g->k + ko, *V = g->v + vo;
    const int64_t Sb = key_limit(g, b);
    for (int64_t h = kh * g->G; h < (kh + 1) * g->G; h++) {
        const int64_t bh = b * g->H + h, qo = b * g->qs[0] + h * g->qs[1];
        const int64_t gqo = b * g->gqs[0] + h * g->gqs[1];
        const float *Pb = P + bh * T * S, *Q = g->q + qo;
        const float *dO = gy + b * g->os[0] + h * g->os[1];
        if (gr->dv) {
            const float *A = Pb;
            if (g->p > 0.0f) {
                for (int64_t t = 0; t < T; t++)
                    dropout_row(g, (uint64_t)((bh * T + t) * S), Pb + t * S, pz + t * S);
                A = pz;
            }
            /* dV += (P o Z)^T dO   [Sb,T] x [T,Dv] (rows s >= Sb get nothing) */
            attn__sgemm(nt, 1, 0, Sb, Dv, T, 1.0f, A, S, dO, g->os[2], 1.0f, gr->dv + gvo, g->gvs[2]);
        }
        if (!gr->need_dl) continue;
        float *L = gr->dl_all ? gr->dl_all + bh * T * S : dl;
        /* dA = dO V^T   [T,Dv] x [Dv,Sb] */
        attn__sgemm(nt, 0, 1, T, Sb, Dv, 1.0f, dO, g->os[2], V, g->vs[2], 0.0f, L, S);
        for (int64_t t = 0; t < T; t++) {
            float *r = L + t * S;
            const float *pr = Pb + t * S;
            for (int64_t s = Sb; s < S; s++) r[s] = 0.0f;
            if (g->p > 0.0f) dropout_row(g, (uint64_t)((bh * T + t) * S), r, r); /* dP = dA o Z */
            /* masked keys (P = 0) get exactly 0, whatever dA holds there */
            row_dsoftmax(r, pr, Sb);
        }
        /* dQ += scale dL K   [T,Sb] x [Sb,D];   dK += scale dL^T Q   [Sb,T] x [T,D] */
        if (gr->dq)
            attn__sgemm(nt, 0, 0, T, D, Sb, g->scale, L, S, K, g->ks[2], 1.0f, gr->dq + gqo,
                        g->gqs[2]);
        if (gr->dk)
            attn__sgemm(nt, 1, 0, Sb, D, T, g->scale, L, S, Q, g->qs[2], 1.0f, gr->dk + gko,
                        g->gks[2]);
    }
}

attn_status attn__sdpa_backward(attn_ctx *ctx, attn_node *node) {
    const sdpa_geom g = sdpa_geometry(node);
    const float *P = attn_f32(node->saved[0]), *gy = node->out->grad;
    const int bias_i = node->iarg[2] ? 3 : -1;
    sdpa_grads gr;
    /* the gradients have the layout of the data (offset and strides) */
    gr.dq = attn__needs_grad(node, 0) ? node->in[0]->grad + g.goff[0] : NULL;
    gr.dk = attn__needs_grad(node, 1) ? node->in[1]->grad + g.goff[1] : NULL;
    gr.dv = attn__needs_grad(node, 2) ? node->in[2]->grad + g.goff[2] : NULL;
    float *db = bias_i >= 0 && attn__needs_grad(node, bias_i) ? node->in[bias_i]->grad : NULL;
    gr.need_dl = gr.dq || gr.dk || db;
    gr.dl_all = NULL;
    int par;
    const int nt = unit_threads(ctx, &g, &par);
    const int slots = par ? nt : 1;
    const int64_t TS = g.T * g.S;
    float *pz = NULL, *dl = NULL;
    if (db && !(gr.dl_all = scratch(ctx, 1, attn_tensor_numel(node->saved[0]),
                                    "sdpa backward (logits gradient for the bias)")))
        return ctx->status;
    if (g.p > 0.0f && gr.dv && !(pz = scratch(ctx, slots, TS, "sdpa backward (dropout scratch)")))
        return ctx->status;
    if (gr.need_dl && !gr.dl_all &&
        !(dl = scratch(ctx, slots, TS, "sdpa backward (logits gradient)")))
        return ctx->status;
    const int64_t units = g.B * g.Hkv;
    if (par) {
        ATTN__OMP_FOR(nt)
        for (int64_t u = 0; u < units; u++) {
            const int64_t off = SDPA_TID() * TS;
            backward_unit(&g, &gr, P, gy, u / g.Hkv, u % g.Hkv, pz ? pz + off : NULL,
                          dl ? dl + off : NULL, 1);
        }
    } else {
        for (int64_t u = 0; u < units; u++)
            backward_unit(&g, &gr, P, gy, u / g.Hkv, u % g.Hkv, pz, dl, nt);
    }
    if (db) { /* dbias: the logits gradient summed over the broadcast dims, in index order */
        const attn_tensor *bt = node->in[bias_i];
        const int64_t nb = attn_tensor_numel(bt);
        double *acc = attn__alloc_zero(ctx, sizeof(double) * (size_t)nb, "sdpa backward (bias sums)");
        if (!acc) return ctx->status;
        const float *L = gr.dl_all;
        for (int64_t b = 0; b < g.B; b++)
            for (int64_t h = 0; h < g.H; h++)
                for (int64_t t = 0; t < g.T; t++) {
                    const int64_t o = b * g.bst[0] + h * g.bst[1] + t * g.bst[2];
                    const float *r = L + ((b * g.H + h) * g.T + t) * g.S;
                    for (int64_t s = 0; s < g.S; s++) acc[o + s * g.bst[3]] += r[s];
                }
        for (int64_t i = 0; i < nb; i++) db[i] += (float)acc[i];
    }
    return ATTN_OK;
}
