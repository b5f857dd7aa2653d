/* flash_sdpa.c: fused, tiled scaled dot-product attention (graph op
 * FLASH_SDPA, include/attn/sdpa.h): the same function as the SDPA op, but the
 * [T, S] matrix of weights is never stored. The algorithm and its backward are
 * derived in docs/transformer.md, "Fused attention".
 *
 * Shape contract:
 *   in[0] q [B, H, T, D], in[1] k [B, Hkv, S, D], in[2] v [B, Hkv, S, Dv]
 *   (contiguous), then optionally bias (contiguous f32, broadcastable to
 *   [B, H, T, S]) and key_lengths (i32 [B]), in that order.
 *   -> out [B, H, T, Dv].
 *   iarg[0] causal, iarg[1] window (0: none), iarg[2] has bias,
 *   iarg[3] has key_lengths, iarg[4] the RNG offset of the dropout mask;
 *   farg[0] scale, farg[1] dropout p (0 when not training); node->seed.
 *   saved[0] = lse [B, H, T]: log sum_s exp(logit[t, s]) over the visible keys
 *   of each query (-inf for a query with no visible key, NaN for a NaN row).
 *
 * Forward: items (b, h, query tile of QT rows) are split statically over the
 * threads; a thread stages the item's kv head (K transposed [D, Sp], V padded
 * [Sp, Dvp]) in its own buffer when it differs from the last one. For a
 * tile, the keys any of its rows can see form one span, walked in key tiles
 * of KT keys: the logits tile (scale Q) K^T and the product P V go through
 * the register-blocked micro-kernel (fl_mk, fl_mk8). Each row keeps a running
 * max m, a running sum l (double) and an accumulator acc[Dv]; a key tile
 * whose max exceeds m rescales l and acc by exp(m_old - m_new). At the end
 * out = acc / l and lse = m + log l.
 *
 * Backward: work units are (b, kv head g) with the H / Hkv query heads of the
 * group, split statically; a unit stages K^T, V^T and K padded, owns dK_g and
 * dV_g (accumulated in padded buffers, added once), and the dQ rows of a
 * query tile are summed in a tile buffer and added once. Per row t:
 * Dt = dO_t . O_t; per key s in the row's span the weight is recomputed from
 * the saved lse, P = exp(logit - lse), then with Z the dropout scale (1
 * without dropout):
 *   dV_s += P Z dO_t,  dP = Z (dO_t . V_s),  dS = P (dP - Dt),
 *   dQ_t += scale dS K_s,  dK_s += scale dS Q_t,  dbias[t, s] += dS.
 * (Dt = sum_s P Z (dO_t . V_s) = dO_t . O_t, which is why no row of P is
 * needed.) The bias gradient, when wanted, keeps dS in a [B, H, T, S]
 * buffer that is reduced over the broadcast dims after the parallel part, in
 * index order (O(B H T S) memory, as in the SDPA op).
 *
 * Every result depends only on the work item, never on the thread that runs
 * it, so outputs and gradients are bitwise the same for any thread count.
 *
 * Keys are read only inside a query tile's span: a NaN or inf in v at a key
 * that no row of the tile can see does not reach the tile (the SDPA op, which
 * multiplies by the full row of weights, lets it reach every live row).
 */
#include <math.h>
#include <string.h>

#include "../core/internal.h"
#include "../core/vmath.h"
#include "sdpa_common.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ATTN_NO_CLONES)
#define FL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FL_CLONES
#endif

#define QT 64 /* query rows per tile */
#define KT 64 /* keys per tile */

#if defined(_OPENMP)
#define FL_TID() omp_get_thread_num()
#else
#define FL_TID() 0
#endif

typedef struct fl_geom {
    int64_t B, H, Hkv, T, S, D, Dv, G;
    float scale, p;
    int causal;
    int64_t window;
    const float *q, *k, *v;
    const float *bias;
    int64_t bst[4];
    const int32_t *kl;
    uint64_t seed, offset;
} fl_geom;

static fl_geom fl_geometry(const attn_node *node) {
    fl_geom g;
    const attn_tensor *q = node->in[0], *k = node->in[1], *v = node->in[2];
    g.B = q->shape[0];
    g.H = q->shape[1];
    g.T = q->shape[2];
    g.D = q->shape[3];
    g.Hkv = k->shape[1];
    g.S = k->shape[2];
    g.Dv = v->shape[3];
    g.G = g.H / g.Hkv;
    g.causal = (int)node->iarg[0];
    g.window = node->iarg[1];
    if (g.window > g.S + g.T + 1) g.window = g.S + g.T + 1;
    g.scale = node->farg[0];
    g.p = node->farg[1];
    g.q = attn_f32(node->in[0]);
    g.k = attn_f32(node->in[1]);
    g.v = attn_f32(node->in[2]);
    const int64_t shape[4] = {g.B, g.H, g.T, g.S};
    sdpa_node_inputs(node, shape, &g.bias, g.bst, &g.kl, &g.seed, &g.offset);
    return g;
}

/* Keys visible to query t of batch b: [*lo, *hi), empty when *lo >= *hi
 * (the rules of sdpa.h). */
static void fl_range(const fl_geom *g, int64_t b, int64_t t, int64_t *lo, int64_t *hi) {
    sdpa_visible(g->S, g->T, g->causal, g->window, g->kl, b, t, lo, hi);
}

static inline const float *fl_bias_row(const fl_geom *g, int64_t b, int64_t h, int64_t t) {
    return g->bias ? g->bias + b * g->bst[0] + h * g->bst[1] + t * g->bst[2] : NULL;
}

/* z[j] = dropout scale of element base + j of P (row-major [B,H,T,S]):
 * 1 / (1 - p) when kept (attn_rng_uniform >= p), else 0; n elements. */
static void fl_keep(const fl_geom *g, uint64_t base, int64_t n, float *z) {
    const uint32_t key[2] = {(uint32_t)g->seed, (uint32_t)(g->seed >> 32)};
    const float inv = 1.0f / (1.0f - g->p);
    const uint64_t end = base + (uint64_t)n;
    uint64_t i = base;
    while (i < end) {
        const uint64_t c = g->offset + (i >> 2);
        const uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), 0, 0};
        uint32_t w[4];
        attn_philox4x32(ctr, key, w);
        for (int j = (int)(i & 3); j < 4 && i < end; j++, i++) {
            const float u = (float)(w[j] >> 8) * 0x1.0p-24f;
            z[i - base] = u >= g->p ? inv : 0.0f;
        }
    }
}

/* ---- vectorised pieces ----------------------------------------------------------------- */


/* x[j] <- exp(x[j] - m) for j < KT, 0 where x - m < -87 (-inf included).
 * Returns the sum of the new x: 16 lane sums in a fixed order, combined
 * pairwise. */
FL_CLONES static float fl_exp(float *restrict x, float m) {
    float c[KT];
    for (int j = 0; j < KT; j++) {
        const float d = x[j] - m;
        c[j] = d < -87.0f ? -87.0f : d;
    }
    for (int j = 0; j < KT; j++) {
        const float e = attn__exp_core(c[j]);
        uint32_t eb;
        memcpy(&eb, &e, sizeof eb);
        eb &= (uint32_t)((x[j] - m < -87.0f) ? 0u : 0xFFFFFFFFu);
        memcpy(&x[j], &eb, sizeof eb);
    }
    float lane[16] = {0};
    for (int j = 0; j < KT; j += 16)
        for (int k = 0; k < 16; k++) lane[k] += x[j + k];
    for (int w = 8; w >= 1; w /= 2)
        for (int k = 0; k < w; k++) lane[k] += lane[k + w];
    return lane[0];
}

/* The largest of x[0 .. KT) (-inf if none); *nan = 1 when one is NaN. */
FL_CLONES static float fl_rowmax(const float *restrict x, int *nan) {
    float m[16];
    int bad[16];
    for (int k = 0; k < 16; k++) m[k] = -INFINITY, bad[k] = 0;
    for (int64_t j = 0; j < KT; j += 16)
        for (int k = 0; k < 16; k++) {
            const float v = x[j + k];
            bad[k] |= v != v;
            m[k] = v > m[k] ? v : m[k];
        }
    float mx = -INFINITY;
    int any = 0;
    for (int k = 0; k < 16; k++) {
        any |= bad[k];
        mx = m[k] > mx ? m[k] : mx;
    }
    *nan = any;
    return mx;
}


/* y[e] *= a, e < n */
FL_CLONES static void fl_scal(float *restrict y, float a, int64_t n) {
    for (int64_t e = 0; e < n; e++) y[e] *= a;
}

/* The micro-kernel of every tile product: C[4][32] (+)= A[4][K] B[K][32]
 * (C, A, B row-major with leading dimensions ldc, lda, ldb; accumulate 0
 * starts from zero). The 8 accumulators are GCC vectors of 16 floats, held in
 * registers on AVX-512 (16 vectors of 8 on AVX2, where some spill; SSE pairs
 * on the baseline). Products and sums are contracted to FMA where the clone
 * has it, so the bits depend on the clone the CPU picks (never on the thread
 * count). */
#if defined(__GNUC__)
#if defined(__x86_64__) && !defined(__clang__) && !defined(ATTN_NO_CLONES)
#define FL_MK_ATTR \
    __attribute__((target_clones("avx512f", "arch=haswell", "default"), optimize("fp-contract=fast")))
#define FL_X86 1
#else
#define FL_MK_ATTR
#endif
typedef float fl_v16 __attribute__((vector_size(64)));
#define FL_LD(v, p) memcpy(&(v), (p), sizeof(v))
#define FL_ST(p, v) memcpy((p), &(v), sizeof(v))
FL_MK_ATTR static void fl_mk(float *restrict C, int64_t ldc, const float *restrict A, int64_t lda,
                             const float *restrict B, int64_t ldb, int64_t K, int accumulate) {
    fl_v16 c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0}, d0 = {0}, d1 = {0}, d2 = {0}, d3 = {0};
    if (accumulate) {
        FL_LD(c0, C), FL_LD(d0, C + 16);
        FL_LD(c1, C + ldc), FL_LD(d1, C + ldc + 16);
        FL_LD(c2, C + 2 * ldc), FL_LD(d2, C + 2 * ldc + 16);
        FL_LD(c3, C + 3 * ldc), FL_LD(d3, C + 3 * ldc + 16);
    }
    for (int64_t k = 0; k < K; k++) {
        fl_v16 b0, b1;
        FL_LD(b0, B + k * ldb);
        FL_LD(b1, B + k * ldb + 16);
        const float a0 = A[k], a1 = A[lda + k], a2 = A[2 * lda + k], a3 = A[3 * lda + k];
        c0 += a0 * b0, d0 += a0 * b1;
        c1 += a1 * b0, d1 += a1 * b1;
        c2 += a2 * b0, d2 += a2 * b1;
        c3 += a3 * b0, d3 += a3 * b1;
    }
    FL_ST(C, c0), FL_ST(C + 16, d0);
    FL_ST(C + ldc, c1), FL_ST(C + ldc + 16, d1);
    FL_ST(C + 2 * ldc, c2), FL_ST(C + 2 * ldc + 16, d2);
    FL_ST(C + 3 * ldc, c3), FL_ST(C + 3 * ldc + 16, d3);
}
#if defined(FL_X86)
#define FL_HAVE_MK8 1
/* The same on 8 rows (16 accumulators), for AVX-512 only (32 registers):
 * each element gets the same FMA sequence as in fl_mk, so the bits agree. */
__attribute__((target("avx512f"), optimize("fp-contract=fast"))) static void fl_mk8(
    float *restrict C, int64_t ldc, const float *restrict A, int64_t lda, const float *restrict B,
    int64_t ldb, int64_t K, int accumulate) {
    fl_v16 c[8], d[8];
    for (int i = 0; i < 8; i++) {
        const fl_v16 zero = {0};
        c[i] = d[i] = zero;
        if (accumulate) FL_LD(c[i], C + i * ldc), FL_LD(d[i], C + i * ldc + 16);
    }
    for (int64_t k = 0; k < K; k++) {
        fl_v16 b0, b1;
        FL_LD(b0, B + k * ldb);
        FL_LD(b1, B + k * ldb + 16);
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            const float a = A[i * lda + k];
            c[i] += a * b0, d[i] += a * b1;
        }
    }
    for (int i = 0; i < 8; i++) FL_ST(C + i * ldc, c[i]), FL_ST(C + i * ldc + 16, d[i]);
}
#endif
#else
static void fl_mk(float *restrict C, int64_t ldc, const float *restrict A, int64_t lda,
                  const float *restrict B, int64_t ldb, int64_t K, int accumulate) {
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 32; j++) {
            float acc = accumulate ? C[i * ldc + j] : 0.0f;
            for (int64_t k = 0; k < K; k++) acc += A[i * lda + k] * B[k * ldb + j];
            C[i * ldc + j] = acc;
        }
}
#endif

/* C[M][N] (+)= A[M][K] B[K][N] for M a multiple of 4 and N of 32. */
static void fl_gemm(float *C, int64_t ldc, const float *A, int64_t lda, const float *B,
                    int64_t ldb, int64_t M, int64_t N, int64_t K, int accumulate) {
    int64_t i = 0;
#if defined(FL_HAVE_MK8)
    if (__builtin_cpu_supports("avx512f"))
        for (; i + 8 <= M; i += 8)
            for (int64_t j = 0; j < N; j += 32)
                fl_mk8(C + i * ldc + j, ldc, A + i * lda, lda, B + j, ldb, K, accumulate);
#endif
    for (; i < M; i += 4)
        for (int64_t j = 0; j < N; j += 32)
            fl_mk(C + i * ldc + j, ldc, A + i * lda, lda, B + j, ldb, K, accumulate);
}

static inline int64_t up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* rows [0, n) of the [n, w] block src (leading dimension lds) copied into
 * dst [rows, wp] (leading dimension wp) times a, zero elsewhere */
static void fl_pad(float *restrict dst, int64_t rows, int64_t wp, const float *restrict src,
                   int64_t n, int64_t w, int64_t lds, float a) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < wp; c++) dst[r * wp + c] = r < n && c < w ? a * src[r * lds + c] : 0.0f;
}

/* ---- forward (fast) ------------------------------------------------------------------------ */

/* Per-thread scratch of the forward, in floats. */
static int64_t fwd_scratch(const fl_geom *g) {
    const int64_t Dp = up(g->D, 32), Dvp = up(g->Dv, 32);
    return QT * Dp + QT * KT + QT * Dvp + KT;
}

/* Key columns of the shared transposed K (a multiple of KT, with a tile of
 * zeros beyond S, since key tiles start anywhere). */
static int64_t fl_sp(const fl_geom *g) { return up(g->S, KT) + KT; }

/* K of kv head (b, kh) transposed into kt [D, Sp] and V padded into
 * vp [Sp, Dvp], zero beyond S and Dv: the operands of every tile product of
 * the head's query tiles. */
static void fl_stage_kv(const fl_geom *g, int64_t b, int64_t kh, float *kt, float *vp) {
    const int64_t S = g->S, D = g->D, Dv = g->Dv, Sp = fl_sp(g), Dvp = up(Dv, 32);
    const float *K = g->k + (b * g->Hkv + kh) * S * D, *V = g->v + (b * g->Hkv + kh) * S * Dv;
    for (int64_t d = 0; d < D; d++) {
        for (int64_t s = 0; s < S; s++) kt[d * Sp + s] = K[s * D + d];
        for (int64_t s = S; s < Sp; s++) kt[d * Sp + s] = 0.0f;
    }
    fl_pad(vp, Sp, Dvp, V, S, Dv, Dv, 1.0f);
}

/* Row r of a score tile after the product: masked outside [lo, hi) - k0
 * (and beyond n keys) with -inf, bias added. */
static void fl_mask_row(const fl_geom *g, float *sc, int64_t n, int64_t k0, int64_t lo,
                        int64_t hi, const float *brow) {
    const int64_t a = lo - k0 > 0 ? lo - k0 : 0, e = hi - k0 < n ? hi - k0 : n;
    for (int64_t s = 0; s < a; s++) sc[s] = -INFINITY;
    for (int64_t s = e; s < KT; s++) sc[s] = -INFINITY;
    if (brow)
        for (int64_t s = a; s < e; s++) sc[s] += brow[(k0 + s) * g->bst[3]];
}

/* One work item: batch b, head h, query rows [t0, t0 + nq). */
static void fwd_tile(const fl_geom *g, int64_t b, int64_t h, int64_t t0, int64_t nq, float *ws,
                     const float *ktall, const float *vall, float *out, float *lse) {
    const int64_t T = g->T, S = g->S, D = g->D, Dv = g->Dv, kh = h / g->G, bh = b * g->H + h;
    const int64_t Dp = up(D, 32), Dvp = up(Dv, 32), nqp = up(nq, 4);
    const int64_t Sp = fl_sp(g);
    const float *Q = g->q + (bh * T + t0) * D;
    float *qs = ws, *sc = qs + QT * Dp, *acc = sc + QT * KT, *z = acc + QT * Dvp;
    (void)kh;
    int64_t lo[QT], hi[QT], span_lo = S, span_hi = 0;
    float m[QT];
    double l[QT];
    int bad[QT];
    for (int64_t r = 0; r < nq; r++) {
        fl_range(g, b, t0 + r, &lo[r], &hi[r]);
        if (lo[r] < hi[r]) {
            if (lo[r] < span_lo) span_lo = lo[r];
            if (hi[r] > span_hi) span_hi = hi[r];
        }
        m[r] = -INFINITY;
        l[r] = 0.0;
        bad[r] = 0;
    }
    fl_pad(qs, nqp, Dp, Q, nq, D, D, g->scale); /* scale q once: logits = (scale q) . k */
    memset(acc, 0, sizeof(float) * (size_t)(nqp * Dvp));
    for (int64_t k0 = span_lo; k0 < span_hi; k0 += KT) {
        const int64_t n = span_hi - k0 < KT ? span_hi - k0 : KT;
        fl_gemm(sc, KT, qs, Dp, ktall + k0, Sp, nqp, KT, D, 0);
        for (int64_t r = 0; r < nqp; r++) {
            float *row = sc + r * KT;
            if (r >= nq || bad[r] || hi[r] <= k0 || lo[r] >= k0 + n) {
                memset(row, 0, sizeof(float) * KT);
                continue;
            }
            const int64_t t = t0 + r;
            fl_mask_row(g, row, n, k0, lo[r], hi[r], fl_bias_row(g, b, h, t));
            int nan;
            const float mx = fl_rowmax(row, &nan);
            if (nan || mx == -INFINITY) {
                bad[r] |= nan;
                memset(row, 0, sizeof(float) * KT);
                continue;
            }
            if (mx > m[r]) {
                if (m[r] != -INFINITY) {
                    const float alpha = expf(m[r] - mx);
                    l[r] *= (double)alpha;
                    fl_scal(acc + r * Dvp, alpha, Dv);
                }
                m[r] = mx;
            }
            l[r] += (double)fl_exp(row, m[r]);
            if (g->p > 0.0f) {
                fl_keep(g, (uint64_t)((bh * T + t) * S + k0), n, z);
                for (int64_t s = 0; s < n; s++) row[s] *= z[s];
            }
        }
        fl_gemm(acc, Dvp, sc, KT, vall + k0 * Dvp, Dvp, nqp, Dvp, n, 1);
    }
    for (int64_t r = 0; r < nq; r++) {
        float *orow = out + (bh * T + t0 + r) * Dv;
        float *lr = lse + bh * T + t0 + r;
        if (bad[r]) {
            for (int64_t e = 0; e < Dv; e++) orow[e] = NAN;
            *lr = NAN;
        } else if (m[r] == -INFINITY) {
            memset(orow, 0, sizeof(float) * (size_t)Dv);
            *lr = -INFINITY;
        } else {
            const float inv = (float)(1.0 / l[r]);
            for (int64_t e = 0; e < Dv; e++) orow[e] = acc[r * Dvp + e] * inv;
            *lr = (float)((double)m[r] + log(l[r]));
        }
    }
}

static float *fl_scratch(attn_ctx *ctx, int slots, int64_t n, const char *what) {
    return sdpa_scratch(ctx, "flash_sdpa", slots, n, what);
}

attn_status attn__flash_sdpa_forward(attn_ctx *ctx, attn_node *node) {
    const fl_geom g = fl_geometry(node);
    float *out = attn_f32(node->out), *lse = attn_f32(node->saved[0]);
    /* items (b, h, query tile) in one static split; a thread stages K^T and
     * V of an item's kv head into its own buffer when it changes (heads of a
     * group are adjacent, so each thread stages about B Hkv / nt + 1 times) */
    const int64_t ntile = (g.T + QT - 1) / QT, items = g.B * g.H * ntile;
    const double work = 2.0 * (double)g.B * g.H * g.T * g.S * (double)(g.D + g.Dv);
    int nt = attn__threads_for(ctx, work);
    if (nt > items) nt = (int)items;
    const int64_t Sp = fl_sp(&g), per = fwd_scratch(&g) + Sp * (g.D + up(g.Dv, 32));
    /* the scratch stays allocated (the op suite sizes an arena by the
     * forward's use); the backward's is released */
    float *ws = fl_scratch(ctx, nt, per, "flash_sdpa forward (tiles, k, v)");
    int64_t *staged = ws ? attn__alloc(ctx, sizeof(int64_t) * (size_t)nt, "flash_sdpa forward")
                         : NULL;
    if (!staged) return ctx->status;
    for (int i = 0; i < nt; i++) staged[i] = -1;
    ATTN__OMP_FOR(nt)
    for (int64_t it = 0; it < items; it++) {
        const int tid = FL_TID();
        const int64_t bh = it / ntile, t0 = (it % ntile) * QT, b = bh / g.H, h = bh % g.H;
        const int64_t nq = g.T - t0 < QT ? g.T - t0 : QT, u = b * g.Hkv + h / g.G;
        float *w = ws + tid * per, *kt = w + fwd_scratch(&g), *vp = kt + Sp * g.D;
        if (staged[tid] != u) {
            fl_stage_kv(&g, b, h / g.G, kt, vp);
            staged[tid] = u;
        }
        fwd_tile(&g, b, h, t0, nq, w, kt, vp, out, lse);
    }
    return ATTN_OK;
}

/* ---- forward (reference) --------------------------------------------------------------------- */

attn_status attn__flash_sdpa_ref(attn_ctx *ctx, attn_node *node) {
    const fl_geom g = fl_geometry(node);
    float *out = attn_f32(node->out), *lse = attn_f32(node->saved[0]);
    const int64_t T = g.T, S = g.S, D = g.D, Dv = g.Dv;
    double *z = attn__alloc(ctx, sizeof(double) * (size_t)S, "flash_sdpa reference (row)");
    if (!z) return ctx->status;
    for (int64_t b = 0; b < g.B; b++)
        for (int64_t h = 0; h < g.H; h++) {
            const int64_t kh = h / g.G, bh = b * g.H + h;
            const float *K = g.k + (b * g.Hkv + kh) * S * D;
            const float *V = g.v + (b * g.Hkv + kh) * S * Dv;
            for (int64_t t = 0; t < T; t++) {
                const float *qr = g.q + (bh * T + t) * D;
                const float *br = fl_bias_row(&g, b, h, t);
                float *orow = out + (bh * T + t) * Dv;
                int64_t lo, hi;
                fl_range(&g, b, t, &lo, &hi);
                double mx = -INFINITY;
                int nan = 0;
                for (int64_t s = lo; s < hi; s++) {
                    double acc = 0.0;
                    for (int64_t d = 0; d < D; d++) acc += (double)qr[d] * (double)K[s * D + d];
                    z[s] = (double)g.scale * acc + (br ? (double)br[s * g.bst[3]] : 0.0);
                    if (isnan(z[s]))
                        nan = 1;
                    else if (z[s] > mx)
                        mx = z[s];
                }
                if (nan) {
                    for (int64_t e = 0; e < Dv; e++) orow[e] = NAN;
                    lse[bh * T + t] = NAN;
                    continue;
                }
                if (mx == -INFINITY) {
                    for (int64_t e = 0; e < Dv; e++) orow[e] = 0.0f;
                    lse[bh * T + t] = -INFINITY;
                    continue;
                }
                double sum = 0.0;
                for (int64_t s = lo; s < hi; s++) sum += (z[s] = exp(z[s] - mx));
                lse[bh * T + t] = (float)(mx + log(sum));
                for (int64_t e = 0; e < Dv; e++) {
                    double acc = 0.0;
                    for (int64_t s = lo; s < hi; s++) {
                        double w = z[s] / sum;
                        if (g.p > 0.0f) {
                            const uint64_t i = (uint64_t)((bh * T + t) * S + s);
                            w = attn_rng_uniform(g.seed, g.offset, i) >= g.p
                                    ? w / (1.0 - (double)g.p)
                                    : 0.0;
                        }
                        acc += w * (double)V[s * Dv + e];
                    }
                    orow[e] = (float)acc;
                }
            }
        }
    return ATTN_OK;
}

/* ---- backward ---------------------------------------------------------------------------------- */

typedef struct fl_grads {
    float *dq, *dk, *dv; /* NULL when not needed */
    float *dl;           /* [B,H,T,S] dS kept for the bias gradient, or NULL */
    const float *out, *gy, *lse;
} fl_grads;

/* Per-thread scratch of the backward, in floats: the tiles, then the unit's
 * dK and dV accumulators [S + KT, Dp] and [S + KT, Dvp]. */
static int64_t bwd_tiles(const fl_geom *g) {
    const int64_t Dp = up(g->D, 32), Dvp = up(g->Dv, 32);
    return QT * Dp + QT * Dvp + 2 * QT * KT + 2 * KT * QT + QT * Dp + QT + KT;
}
/* ... then the staged kt [D, Sp], vt [Dv, Sp], kp [Sp, Dp] of the unit's kv
 * head, then the dK, dV accumulators [S + KT, Dp], [S + KT, Dvp] */
static int64_t bwd_scratch(const fl_geom *g) {
    const int64_t Sp = fl_sp(g), Dp = up(g->D, 32), Dvp = up(g->Dv, 32);
    return bwd_tiles(g) + Sp * (g->D + g->Dv + Dp) + (g->S + KT) * (Dp + Dvp);
}

/* [n, w] row-major src transposed into dst [w, Sp], zero beyond n */
static void fl_tr_all(float *restrict dst, const float *restrict src, int64_t n, int64_t w,
                      int64_t Sp) {
    for (int64_t d = 0; d < w; d++) {
        for (int64_t s = 0; s < n; s++) dst[d * Sp + s] = src[s * w + d];
        for (int64_t s = n; s < Sp; s++) dst[d * Sp + s] = 0.0f;
    }
}

/* The backward's operands of kv head (b, kh): kt = K^T [D, Sp],
 * vt = V^T [Dv, Sp], kp = K padded [Sp, Dp]. */
static void fl_stage_bwd(const fl_geom *g, int64_t b, int64_t kh, float *kt, float *vt,
                         float *kp) {
    const int64_t S = g->S, D = g->D, Dv = g->Dv, Sp = fl_sp(g);
    const float *K = g->k + (b * g->Hkv + kh) * S * D, *V = g->v + (b * g->Hkv + kh) * S * Dv;
    fl_tr_all(kt, K, S, D, Sp);
    fl_tr_all(vt, V, S, Dv, Sp);
    fl_pad(kp, Sp, up(D, 32), K, S, D, D, 1.0f);
}

/* dst [KT, QT] = src [QT, KT] transposed (rows r < nqp) */
static void fl_tr_tile(float *restrict dst, const float *restrict src, int64_t nqp) {
    for (int64_t r = 0; r < nqp; r++)
        for (int64_t s = 0; s < KT; s++) dst[s * QT + r] = src[r * KT + s];
}

/* Backward of the query tile [t0, t0 + nq) of head h against its key span;
 * dK, dV of the unit accumulate in dka [S + KT, Dp], dva [S + KT, Dvp]. */
static void bwd_tile(const fl_geom *g, const fl_grads *gr, int64_t b, int64_t h, int64_t t0,
                     int64_t nq, float *ws, const float *ktall, const float *vtall,
                     const float *kpall, float *dka, float *dva) {
    const int64_t T = g->T, S = g->S, D = g->D, Dv = g->Dv, kh = h / g->G, bh = b * g->H + h;
    const int64_t Dp = up(D, 32), Dvp = up(Dv, 32), nqp = up(nq, 4);
    const int64_t Sp = fl_sp(g);
    const float *Q = g->q + (bh * T + t0) * D;
    const float *dO = gr->gy + (bh * T + t0) * Dv, *O = gr->out + (bh * T + t0) * Dv;
    float *qs = ws, *dop = qs + QT * Dp;
    float *P = dop + QT * Dvp, *dS = P + QT * KT, *PT = dS + QT * KT;
    (void)kh;
    float *dST = PT + KT * QT, *dq = dST + KT * QT, *drow = dq + QT * Dp, *z = drow + QT;
    const int want_ds = gr->dq || gr->dk || gr->dl;
    int64_t lo[QT], hi[QT], span_lo = S, span_hi = 0;
    for (int64_t r = 0; r < nq; r++) {
        fl_range(g, b, t0 + r, &lo[r], &hi[r]);
        if (lo[r] < hi[r] && gr->lse[bh * T + t0 + r] != -INFINITY) {
            if (lo[r] < span_lo) span_lo = lo[r];
            if (hi[r] > span_hi) span_hi = hi[r];
        } else {
            hi[r] = lo[r] = 0; /* no visible key: no gradient through the row */
        }
        double acc = 0.0;
        for (int64_t e = 0; e < Dv; e++) acc += (double)dO[r * Dv + e] * (double)O[r * Dv + e];
        drow[r] = (float)acc;
    }
    fl_pad(qs, nqp, Dp, Q, nq, D, D, g->scale);
    fl_pad(dop, nqp, Dvp, dO, nq, Dv, Dv, 1.0f);
    memset(dq, 0, sizeof(float) * (size_t)(nqp * Dp));
    for (int64_t k0 = span_lo; k0 < span_hi; k0 += KT) {
        const int64_t n = span_hi - k0 < KT ? span_hi - k0 : KT, n4 = up(n, 4);
        fl_gemm(P, KT, qs, Dp, ktall + k0, Sp, nqp, KT, D, 0); /* logits */
        if (want_ds) fl_gemm(dS, KT, dop, Dvp, vtall + k0, Sp, nqp, KT, Dv, 0); /* dO V^T */
        for (int64_t r = 0; r < nqp; r++) {
            float *pr = P + r * KT, *dr = dS + r * KT;
            if (r >= nq || hi[r] <= k0 || lo[r] >= k0 + n) {
                memset(pr, 0, sizeof(float) * KT);
                if (want_ds) memset(dr, 0, sizeof(float) * KT);
                continue;
            }
            const int64_t t = t0 + r;
            fl_mask_row(g, pr, n, k0, lo[r], hi[r], fl_bias_row(g, b, h, t));
            (void)fl_exp(pr, gr->lse[bh * T + t]); /* P = exp(logit - lse) */
            if (g->p > 0.0f)
                fl_keep(g, (uint64_t)((bh * T + t) * S + k0), n, z);
            else
                for (int64_t s = 0; s < n; s++) z[s] = 1.0f;
            for (int64_t s = n; s < KT; s++) z[s] = 0.0f;
            if (want_ds) {
                for (int64_t s = 0; s < KT; s++) dr[s] = pr[s] * (dr[s] * z[s] - drow[r]);
                if (gr->dl) {
                    const int64_t a = lo[r] - k0 > 0 ? lo[r] - k0 : 0;
                    const int64_t e = hi[r] - k0 < n ? hi[r] - k0 : n;
                    float *L = gr->dl + (bh * T + t) * S + k0;
                    for (int64_t s = a; s < e; s++) L[s] = dr[s];
                }
            }
            for (int64_t s = 0; s < KT; s++) pr[s] *= z[s]; /* P o Z */
        }
        if (gr->dv) { /* dV += (P o Z)^T dO */
            fl_tr_tile(PT, P, nqp);
            fl_gemm(dva + k0 * Dvp, Dvp, PT, QT, dop, Dvp, n4, Dvp, nqp, 1);
        }
        if (gr->dk) { /* dK += dS^T (scale Q) */
            fl_tr_tile(dST, dS, nqp);
            fl_gemm(dka + k0 * Dp, Dp, dST, QT, qs, Dp, n4, Dp, nqp, 1);
        }
        if (gr->dq) { /* dQ += dS K (scaled at the end) */
            fl_gemm(dq, Dp, dS, KT, kpall + k0 * Dp, Dp, nqp, Dp, n, 1);
        }
    }
    if (gr->dq) {
        float *gq = gr->dq + (bh * T + t0) * D;
        for (int64_t r = 0; r < nq; r++)
            for (int64_t d = 0; d < D; d++) gq[r * D + d] += g->scale * dq[r * Dp + d];
    }
}

attn_status attn__flash_sdpa_backward(attn_ctx *ctx, attn_node *node) {
    const fl_geom g = fl_geometry(node);
    fl_grads gr;
    const int bias_i = node->iarg[2] ? 3 : -1;
    gr.dq = attn__needs_grad(node, 0) ? node->in[0]->grad : NULL;
    gr.dk = attn__needs_grad(node, 1) ? node->in[1]->grad : NULL;
    gr.dv = attn__needs_grad(node, 2) ? node->in[2]->grad : NULL;
    float *db = bias_i >= 0 && attn__needs_grad(node, bias_i) ? node->in[bias_i]->grad : NULL;
    gr.out = attn_f32(node->out);
    gr.gy = node->out->grad;
    gr.lse = attn_f32(node->saved[0]);
    gr.dl = NULL;
    const size_t mark = attn__arena_mark(ctx); /* scratch only from here */
    if (db) {
        size_t n;
        if (attn__mul_size((size_t)(g.B * g.H * g.T), (size_t)g.S * sizeof(float), &n)) {
            attn__fail(ctx, ATTN_ERR_OOM, "flash_sdpa backward: bias gradient buffer overflows");
            return ctx->status;
        }
        gr.dl = attn__alloc_zero(ctx, n, "flash_sdpa backward (logits gradient for the bias)");
        if (!gr.dl) return ctx->status;
    }
    const int64_t units = g.B * g.Hkv, ntile = (g.T + QT - 1) / QT;
    const double work = 4.0 * (double)g.B * g.H * g.T * g.S * (double)(g.D + g.Dv);
    int nt = attn__threads_for(ctx, work);
    if (nt > units) nt = (int)units;
    const int64_t per = bwd_scratch(&g);
    float *ws = fl_scratch(ctx, nt, per, "flash_sdpa backward (tiles)");
    if (!ws) return ctx->status;
    ATTN__OMP_FOR(nt)
    for (int64_t u = 0; u < units; u++) {
        const int64_t b = u / g.Hkv, kh = u % g.Hkv;
        const int64_t Dp = up(g.D, 32), Dvp = up(g.Dv, 32), Sp = fl_sp(&g);
        float *w = ws + FL_TID() * per, *kt = w + bwd_tiles(&g), *vt = kt + g.D * Sp;
        float *kp = vt + g.Dv * Sp, *dka = kp + Sp * Dp, *dva = dka + (g.S + KT) * Dp;
        fl_stage_bwd(&g, b, kh, kt, vt, kp);
        memset(dka, 0, sizeof(float) * (size_t)((g.S + KT) * (Dp + Dvp)));
        for (int64_t h = kh * g.G; h < (kh + 1) * g.G; h++)
            for (int64_t i = 0; i < ntile; i++) {
                const int64_t t0 = i * QT, nq = g.T - t0 < QT ? g.T - t0 : QT;
                bwd_tile(&g, &gr, b, h, t0, nq, w, kt, vt, kp, dka, dva);
            }
        const int64_t ko = (b * g.Hkv + kh) * g.S * g.D, vo = (b * g.Hkv + kh) * g.S * g.Dv;
        for (int64_t s = 0; s < g.S; s++) {
            if (gr.dk)
                for (int64_t d = 0; d < g.D; d++) gr.dk[ko + s * g.D + d] += dka[s * Dp + d];
            if (gr.dv)
                for (int64_t e = 0; e < g.Dv; e++) gr.dv[vo + s * g.Dv + e] += dva[s * Dvp + e];
        }
    }
    if (db) { /* summed over the broadcast dims in index order */
        const attn_tensor *bt = node->in[bias_i];
        const int64_t nb = attn_tensor_numel(bt);
        double *acc = attn__alloc_zero(ctx, sizeof(double) * (size_t)nb,
                                       "flash_sdpa backward (bias sums)");
        if (!acc) return ctx->status;
        for (int64_t b = 0; b < g.B; b++)
            for (int64_t h = 0; h < g.H; h++)
                for (int64_t t = 0; t < g.T; t++) {
                    const int64_t o = b * g.bst[0] + h * g.bst[1] + t * g.bst[2];
                    const float *r = gr.dl + ((b * g.H + h) * g.T + t) * g.S;
                    for (int64_t s = 0; s < g.S; s++) acc[o + s * g.bst[3]] += r[s];
                }
        for (int64_t i = 0; i < nb; i++) db[i] += (float)acc[i];
    }
    attn__arena_rewind(ctx, mark);
    return ATTN_OK;
}

/* ---- weights from the saved lse --------------------------------------------------------------- */

/* P [B,H,T,S] = exp(logit - lse) at visible keys, 0 elsewhere (a zero row
 * for a query with no visible key, a NaN row for a NaN one). */
static void fl_weights(const attn_node *node, float *P) {
    const fl_geom g = fl_geometry(node);
    const float *lse = attn_f32(node->saved[0]);
    const int64_t T = g.T, S = g.S, D = g.D;
    for (int64_t b = 0; b < g.B; b++)
        for (int64_t h = 0; h < g.H; h++) {
            const int64_t bh = b * g.H + h;
            const float *K = g.k + (b * g.Hkv + h / g.G) * S * D;
            for (int64_t t = 0; t < T; t++) {
                const float *qr = g.q + (bh * T + t) * D, *br = fl_bias_row(&g, b, h, t);
                float *pr = P + (bh * T + t) * S;
                const float L = lse[bh * T + t];
                int64_t lo, hi;
                fl_range(&g, b, t, &lo, &hi);
                for (int64_t s = 0; s < S; s++) {
                    if (s < lo || s >= hi || L == -INFINITY) {
                        pr[s] = 0.0f;
                        continue;
                    }
                    double acc = 0.0;
                    for (int64_t d = 0; d < D; d++) acc += (double)qr[d] * (double)K[s * D + d];
                    const double x = (double)g.scale * acc + (br ? (double)br[s * g.bst[3]] : 0.0);
                    pr[s] = (float)exp(x - (double)L);
                }
            }
        }
}

/* ---- builder ----------------------------------------------------------------------------------- */

attn_tensor *attn_flash_sdpa(attn_ctx *ctx, attn_tensor *q, attn_tensor *k, attn_tensor *v,
                             const attn_sdpa_opts *opts, attn_tensor **weights) {
    static const char name[] = "flash_sdpa";
    if (weights) *weights = NULL;
    if (sdpa_check_qkv(ctx, name, q, k, v)) return NULL;
    const int64_t B = q->shape[0], H = q->shape[1], T = q->shape[2], D = q->shape[3];
    const int64_t S = k->shape[2], Dv = v->shape[3];
    const int64_t osh[4] = {B, H, T, S};
    attn_sdpa_opts o;
    if (sdpa_check_opts(ctx, name, q, k, osh, opts, &o)) return NULL;
    attn_tensor *bias = o.bias, *kl = o.key_lengths;
    attn_tensor *in[5];
    int n_in = 3;
    if (!(in[0] = attn__contig(ctx, q)) || !(in[1] = attn__contig(ctx, k)) ||
        !(in[2] = attn__contig(ctx, v)))
        return NULL;
    if (bias && !(in[n_in++] = attn__contig(ctx, bias))) return NULL;
    if (kl && !(in[n_in++] = attn__contig(ctx, kl))) return NULL;
    const int64_t ysh[4] = {B, H, T, Dv}, lsh[3] = {B, H, T};
    attn_tensor *out = attn__tensor(ctx, name, ATTN_F32, 4, ysh);
    attn_tensor *lse = out ? attn__tensor(ctx, name, ATTN_F32, 3, lsh) : NULL;
    if (!lse) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_FLASH_SDPA, n_in, in, out);
    if (!node) return NULL;
    node->iarg[0] = o.causal != 0;
    node->iarg[1] = o.window;
    node->iarg[2] = bias != NULL;
    node->iarg[3] = kl != NULL;
    node->farg[0] = o.scale > 0.0f ? o.scale : (float)(1.0 / sqrt((double)D));
    node->farg[1] = ctx->training ? o.dropout : 0.0f;
    node->saved[0] = lse;
    if (node->farg[1] > 0.0f) {
        const uint64_t n = (uint64_t)B * (uint64_t)H * (uint64_t)T * (uint64_t)S;
        node->seed = ctx->seed;
        node->iarg[4] = (int64_t)ctx->rng_offset;
        ctx->rng_offset += (n + 3) / 4; /* the counters of the SDPA op */
    }
    attn_tensor *y = attn__run(ctx, node);
    if (y && weights) {
        attn_tensor *w = attn__tensor(ctx, name, ATTN_F32, 4, osh);
        if (!w) return NULL;
        fl_weights(node, attn_f32(w));
        *weights = w;
    }
    return y;
}
