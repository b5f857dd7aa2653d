/* flash_sdpa.c: fused, tiled scaled dot-product attention (graph op
 * FLASH_SDPA, include/attn/sdpa.h): the same function as the SDPA op, but the
 * [T, S] matrix of weights is never stored. The algorithm and its backward are
 * derived in docs/transformer.md, "Fused attention".
 *
 * Shape contract:
 *   in[0] q [B, H, T, D], in[1] k [B, Hkv, S, D], in[2] v [B, Hkv, S, Dv]
 *   (contiguous), then optionally bias (contiguous f32, broadcastable to
 *   [B, H, T, S]), key_lengths (i32 [B]) and the ALiBi slopes (f32 [H]), in
 *   that order.
 *   -> out [B, H, T, Dv].
 *   Packed (iarg[5] = 1, attn__flash_sdpa_packed): in[0..2] are one f32
 *   qkv [B, T, (H + 2 Hkv) D] with H = iarg[6], Hkv = iarg[7] heads, read in
 *   place by strides (fl_geom's qs, ks, vs), S = T, Dv = D, and
 *   -> out [B, T, H D]; the gradients are added in place into qkv's.
 *   iarg[0] causal, iarg[1] window (0: none), iarg[2] has bias,
 *   iarg[3] has key_lengths, iarg[4] the RNG offset of the dropout mask;
 *   farg[0] scale, farg[1] dropout p (0 when not training); node->seed.
 *   saved[0] = the row statistics [B, H, T, 2]: per query t, m = max_s logit[t, s]
 *   and 1 / l with l = sum_s exp(logit[t, s] - m), over the visible keys
 *   (m = -inf and 0 for a query with no visible key, NaN for a NaN row).
 *   The logits are the f32 values the kernels compute: (scale q) . k summed
 *   in f32, then + bias in f32.
 *   saved[1] = the sparse pattern of attn_sdpa_opts.sparse (its bytes, i32;
 *   NULL without one), saved[2] = its tile layout, compiled by the forward
 *   and reused by the backward (NULL without a pattern).
 *
 * Sparse patterns (include/attn/sparse.h, docs/sparse.md): a query tile
 * walks only the key tiles of its layout entry list (fl_walk) instead of
 * every tile of its span, so skipped tiles cost nothing, forward and
 * backward; a fully visible tile runs exactly as without a pattern, a
 * partial one also sets the logits of its hidden keys to -inf from the
 * tile's bit mask (fl_apply_bits) before the softmax update, and rows whose
 * mask is empty take no part in the tile.
 *
 * Why m and 1 / l and not one log-sum-exp m + log l: in f32 the sum rounds
 * log l away when |m| is large (a finite mask bias of -1e9 on a whole row
 * gives lse = -1e9 and P = 1 instead of 1 / S; logits in the thousands lose
 * 1e-4 of every weight). m is one of the logits, so logit - m is what the
 * forward computed, and P = exp(logit - m) / l is exact to f32 rounding for
 * every finite input (docs/transformer.md, "Fused attention").
 *
 * Forward: items (b, h, query tile of QT rows) are split statically over the
 * threads; a thread stages the item's kv head (K transposed [D, Sp], V padded
 * [Sp, Dvp]) in its own buffer when it differs from the last one. For a
 * tile, the keys any of its rows can see form one span, walked in key tiles
 * of KT keys: the logits tile (scale Q) K^T and the product P V go through
 * the register-blocked micro-kernel (fl_mk, fl_mk8). Each row keeps a running
 * max m, a running sum l (double) and an accumulator acc[Dv]; a key tile
 * whose max exceeds m rescales l and acc by exp(m_old - m_new). At the end
 * out = acc / l; the row statistics keep m and 1 / l.
 *
 * Backward: work units are (b, kv head g) with the H / Hkv query heads of the
 * group, split statically; a unit stages K^T, V^T and K padded, owns dK_g and
 * dV_g (accumulated in padded buffers, added once), and the dQ rows of a
 * query tile are summed in a tile buffer and added once. Per row t:
 * Dt = dO_t . O_t; per key s in the row's span the weight is recomputed from
 * the saved statistics, P = exp(logit - m) / l (the logits recomputed by
 * the forward's own products, bit for bit), then with Z the dropout scale (1
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
 * Keys at or beyond key_lengths[b] are never read on any path: staging
 * copies only the keys below the batch's key length (fl_key_limit) and zeroes
 * the rest, so their gradients are exactly 0 whatever the padding holds.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* syscall(), for the AMX permission */
#endif
#include <math.h>
#include <stdlib.h>
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
#define KT 64 /* keys per tile (a multiple of 64) */

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
    const float *q, *k, *v; /* f32 inputs (bf16 ones: widened copies, fl_widen) */
    int64_t qs[3], ks[3], vs[3]; /* strides of (b, head, row) of q, k, v and their gradients */
    int64_t os[3];               /* the same of out and its gradient */
    int64_t off[3];              /* element offsets of q, k, v in their inputs (packed) */
    const uint16_t *qh, *kh, *vh; /* bf16 inputs, else NULL */
    const float *bias;
    int64_t bst[4];
    const int32_t *kl;
    const float *slopes; /* NULL or the ALiBi slopes [H] */
    const attn_sparse_pattern *sp;  /* NULL or the sparse pattern (saved[1]) */
    const attn_sparse_layout *L;    /* its tile layout (QT x KT), compiled per call */
    uint64_t seed, offset;
} fl_geom;

static void fl_set3(int64_t *st, int64_t a, int64_t b, int64_t c) {
    st[0] = a, st[1] = b, st[2] = c;
}

static fl_geom fl_geometry(const attn_node *node) {
    fl_geom g;
    const attn_tensor *q = node->in[0], *k = node->in[1], *v = node->in[2];
    int64_t *off = g.off;
    fl_set3(off, 0, 0, 0);
    if (node->iarg[5]) { /* packed: q = k = v = qkv [B, T, (H + 2 Hkv) D] (f32) */
        g.B = q->shape[0];
        g.T = g.S = q->shape[1];
        g.H = node->iarg[6];
        g.Hkv = node->iarg[7];
        g.D = g.Dv = q->shape[2] / (g.H + 2 * g.Hkv);
        const int64_t W = q->shape[2];
        fl_set3(g.qs, g.T * W, g.D, W);
        fl_set3(g.ks, g.T * W, g.D, W);
        fl_set3(g.vs, g.T * W, g.D, W);
        fl_set3(g.os, g.T * g.H * g.D, g.D, g.H * g.D);
        fl_set3(off, 0, g.H * g.D, (g.H + g.Hkv) * g.D);
    } else {
        g.B = q->shape[0];
        g.H = q->shape[1];
        g.T = q->shape[2];
        g.D = q->shape[3];
        g.Hkv = k->shape[1];
        g.S = k->shape[2];
        g.Dv = v->shape[3];
        fl_set3(g.qs, g.H * g.T * g.D, g.T * g.D, g.D);
        fl_set3(g.ks, g.Hkv * g.S * g.D, g.S * g.D, g.D);
        fl_set3(g.vs, g.Hkv * g.S * g.Dv, g.S * g.Dv, g.Dv);
        fl_set3(g.os, g.H * g.T * g.Dv, g.T * g.Dv, g.Dv);
    }
    g.G = g.H / g.Hkv;
    g.causal = (int)node->iarg[0];
    g.window = node->iarg[1];
    if (g.window > g.S + g.T + 1) g.window = g.S + g.T + 1;
    g.scale = node->farg[0];
    g.p = node->farg[1];
    const int bf16 = q->dtype == ATTN_BF16;
    g.q = bf16 ? NULL : attn_f32(node->in[0]) + off[0];
    g.k = bf16 ? NULL : attn_f32(node->in[1]) + off[1];
    g.v = bf16 ? NULL : attn_f32(node->in[2]) + off[2];
    g.qh = bf16 ? attn_bf16(node->in[0]) : NULL;
    g.kh = bf16 ? attn_bf16(node->in[1]) : NULL;
    g.vh = bf16 ? attn_bf16(node->in[2]) : NULL;
    const int64_t shape[4] = {g.B, g.H, g.T, g.S};
    sdpa_node_inputs(node, shape, &g.bias, g.bst, &g.kl, &g.slopes, &g.seed, &g.offset);
    g.sp = sdpa_node_sparse(node);
    g.L = NULL;
    return g;
}

/* With a sparse pattern: its tile layout for this geometry, g->L set. The
 * forward compiles it (arrays in the arena, where they stay with the node's
 * other tensors) and keeps the struct in saved[2]; the backward of the same
 * node reuses it, and compiles its own only when saved[2] holds none (*L,
 * arena). 0, or -1 with the error set. */
static int fl_layout(attn_ctx *ctx, const attn_node *node, fl_geom *g, attn_sparse_layout *L,
                     int keep) {
    if (!g->sp) return 0;
    attn_sparse_layout *kept = node->saved[2] ? (attn_sparse_layout *)node->saved[2]->data : NULL;
    if (kept && kept->T == g->T && kept->S == g->S && kept->start) {
        g->L = kept;
        return 0;
    }
    if (attn_sparse_compile(ctx, g->sp, g->causal, g->window, g->H, g->T, g->S, QT, KT, L))
        return -1;
    if (kept && keep) *kept = *L;
    g->L = L;
    return 0;
}

/* bf16 inputs widened to f32 copies in the arena (exact), for the paths that
 * compute in f32: the reference, the weights, and the forward where the CPU
 * has no AVX-512 BF16. 0, or -1 with the context's error set. */
static int fl_widen(attn_ctx *ctx, fl_geom *g) {
    if (!g->qh) return 0;
    const int64_t nq = g->B * g->H * g->T * g->D, nk = g->B * g->Hkv * g->S * g->D;
    const int64_t nv = g->B * g->Hkv * g->S * g->Dv;
    float *w = attn__alloc(ctx, sizeof(float) * (size_t)(nq + nk + nv),
                           "flash_sdpa (bf16 inputs widened to f32)");
    if (!w) return -1;
    attn_f32_from_bf16(w, g->qh, nq);
    attn_f32_from_bf16(w + nq, g->kh, nk);
    attn_f32_from_bf16(w + nq + nk, g->vh, nv);
    g->q = w, g->k = w + nq, g->v = w + nq + nk;
    return 0;
}

/* Keys visible to query t of batch b: [*lo, *hi), empty when *lo >= *hi
 * (the rules of sdpa.h). */
static void fl_range(const fl_geom *g, int64_t b, int64_t t, int64_t *lo, int64_t *hi) {
    sdpa_visible(g->S, g->T, g->causal, g->window, g->kl, b, t, lo, hi);
}

/* The keys of batch b that may be read: key_lengths[b], or S. */
static inline int64_t fl_key_limit(const fl_geom *g, int64_t b) {
    return g->kl && g->kl[b] < g->S ? g->kl[b] : g->S;
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
#include <immintrin.h>
#define FL512 __attribute__((target("avx512f"), optimize("fp-contract=fast")))
#define FL512_INLINE __attribute__((target("avx512f"), optimize("fp-contract=fast"), always_inline)) inline

/* Rows i of the 8x32 accumulator tiles c0..c7 (columns 0-15) and d0..d7
 * (16-31) of every AVX-512 micro-kernel below, loaded from / stored to C. */
#define FL_LOADROW(i) c##i = _mm512_loadu_ps(C + i * ldc), d##i = _mm512_loadu_ps(C + i * ldc + 16)
#define FL_STROW(i) _mm512_storeu_ps(C + i * ldc, c##i), _mm512_storeu_ps(C + i * ldc + 16, d##i)
#define FL_LOAD_C() (FL_LOADROW(0), FL_LOADROW(1), FL_LOADROW(2), FL_LOADROW(3), \
                     FL_LOADROW(4), FL_LOADROW(5), FL_LOADROW(6), FL_LOADROW(7))
#define FL_STORE_C() (FL_STROW(0), FL_STROW(1), FL_STROW(2), FL_STROW(3), \
                      FL_STROW(4), FL_STROW(5), FL_STROW(6), FL_STROW(7))

/* C[8][32] (+)= A[8][K] B[K][32]: the micro-kernel of fl_mk8 with its 16
 * accumulators in named registers (no stack copies on entry and exit). */
FL512_INLINE static void fl_k8x32(float *restrict C, int64_t ldc, const float *restrict A,
                                  int64_t lda, const float *restrict B, int64_t ldb, int64_t K,
                                  int accumulate) {
    __m512 c0, c1, c2, c3, c4, c5, c6, c7, d0, d1, d2, d3, d4, d5, d6, d7;
    if (accumulate) {
        FL_LOAD_C();
    } else {
        c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = _mm512_setzero_ps();
        d0 = d1 = d2 = d3 = d4 = d5 = d6 = d7 = _mm512_setzero_ps();
    }
    const float *a0 = A, *a1 = A + lda, *a2 = A + 2 * lda, *a3 = A + 3 * lda;
    const float *a4 = A + 4 * lda, *a5 = A + 5 * lda, *a6 = A + 6 * lda, *a7 = A + 7 * lda;
    for (int64_t k = 0; k < K; k++) {
        const __m512 b0 = _mm512_loadu_ps(B + k * ldb), b1 = _mm512_loadu_ps(B + k * ldb + 16);
#define FL_FMA(i)                                      \
    do {                                               \
        const __m512 a = _mm512_set1_ps(a##i[k]);      \
        c##i = _mm512_fmadd_ps(a, b0, c##i);           \
        d##i = _mm512_fmadd_ps(a, b1, d##i);           \
    } while (0)
        FL_FMA(0); FL_FMA(1); FL_FMA(2); FL_FMA(3);
        FL_FMA(4); FL_FMA(5); FL_FMA(6); FL_FMA(7);
#undef FL_FMA
    }
    FL_STORE_C();
}

/* C[8][32] (+)= A^T B with A [K][lda] read by column: row i of the product
 * is column i of A (the backward's P^T dO and dS^T Q without transposing
 * the tiles). */
FL512_INLINE static void fl_k8x32t(float *restrict C, int64_t ldc, const float *restrict A,
                                   int64_t lda, const float *restrict B, int64_t ldb, int64_t K) {
    __m512 c0, c1, c2, c3, c4, c5, c6, c7, d0, d1, d2, d3, d4, d5, d6, d7;
    FL_LOAD_C();
    for (int64_t k = 0; k < K; k++) {
        const float *ak = A + k * lda;
        const __m512 b0 = _mm512_loadu_ps(B + k * ldb), b1 = _mm512_loadu_ps(B + k * ldb + 16);
#define FL_FMA(i)                                      \
    do {                                               \
        const __m512 a = _mm512_set1_ps(ak[i]);        \
        c##i = _mm512_fmadd_ps(a, b0, c##i);           \
        d##i = _mm512_fmadd_ps(a, b1, d##i);           \
    } while (0)
        FL_FMA(0); FL_FMA(1); FL_FMA(2); FL_FMA(3);
        FL_FMA(4); FL_FMA(5); FL_FMA(6); FL_FMA(7);
#undef FL_FMA
    }
    FL_STORE_C();
}

/* The same on 8 rows (16 accumulators), for AVX-512 only (32 registers). */
FL512 static void fl_mk8(float *restrict C, int64_t ldc, const float *restrict A, int64_t lda,
                         const float *restrict B, int64_t ldb, int64_t K, int accumulate) {
    fl_k8x32(C, ldc, A, lda, B, ldb, K, accumulate);
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

/* Keys of the staged operands: S rounded up to whole key tiles. Key tiles
 * start at multiples of KT (a row's visible range is masked inside them). */
static int64_t fl_sp(const fl_geom *g) { return up(g->S, KT); }

/* The first key tile of a span starting at key lo. */
static inline int64_t fl_tile_start(int64_t lo) { return lo - lo % KT; }

/* The key tiles a query tile computes: every tile of its span [lo, hi)
 * without a pattern; with one, only the tiles of its layout entry list
 * that meet the span (skipped tiles are never seen). */
typedef struct fl_walk {
    int64_t k0, end;               /* the span's first tile, its end */
    const int64_t *kt, *at;        /* the layout's entries (NULL: dense) */
    int64_t e, ne;
    const uint64_t *mask;
} fl_walk;

static void fl_walk_begin(const fl_geom *g, int64_t h, int64_t t0, int64_t span_lo,
                          int64_t span_hi, fl_walk *w) {
    w->k0 = fl_tile_start(span_lo);
    w->end = span_hi;
    w->kt = w->at = NULL;
    w->e = w->ne = 0;
    w->mask = NULL;
    if (!g->L) return;
    const attn_sparse_layout *L = g->L;
    const int64_t i = attn_sparse_head_variant(g->sp, h) * L->nq + t0 / QT;
    w->kt = L->ktile + L->start[i];
    w->at = L->mask_at + L->start[i];
    w->ne = L->start[i + 1] - L->start[i];
    w->mask = L->mask;
}

/* The next key tile: 1 with *k0 and *bits (NULL: every key of the tile is
 * visible under the pattern; else QT words, bit s of word r set iff key
 * k0 + s is visible to row r), 0 at the end. */
static int fl_walk_next(fl_walk *w, int64_t *k0, const uint64_t **bits) {
    if (!w->kt) {
        if (w->k0 >= w->end) return 0;
        *k0 = w->k0;
        *bits = NULL;
        w->k0 += KT;
        return 1;
    }
    while (w->e < w->ne) {
        const int64_t k = w->kt[w->e] * KT, at = w->at[w->e];
        w->e++;
        if (k < w->k0) continue; /* before the span */
        if (k >= w->end) break;
        *k0 = k;
        *bits = at < 0 ? NULL : w->mask + at;
        return 1;
    }
    w->e = w->ne;
    return 0;
}

/* The keys of a logits row the pattern hides (bit s clear) become -inf
 * (branch free, 16 lanes at a time where the clone has them). */
FL_CLONES static void fl_apply_bits(float *restrict row, uint64_t bits) {
    for (int c = 0; c < KT; c += 16) {
        const uint32_t b = (uint32_t)(bits >> c);
        for (int s = 0; s < 16; s++) {
            uint32_t x;
            const uint32_t keep = 0u - (b >> s & 1u), ninf = 0xFF800000u; /* -inf */
            memcpy(&x, &row[c + s], sizeof x);
            x = (x & keep) | (ninf & ~keep);
            memcpy(&row[c + s], &x, sizeof x);
        }
    }
}

/* [n, w] src (rows lds floats apart) transposed tile by tile into dst: key
 * tile j is the contiguous block dst + j w KT of [w, KT] (row d holds
 * element d of the tile's keys), zero beyond n; Sp / KT tiles. A tile's
 * block is the B operand (leading dimension KT) of its products, so a
 * product walks one contiguous 16 KiB block (D = 64) instead of w rows Sp
 * floats apart. */
static void fl_tr_tiles(float *restrict dst, const float *restrict src, int64_t n, int64_t w,
                        int64_t lds, int64_t Sp) {
    for (int64_t j = 0; j < Sp; j += KT) {
        float *blk = dst + j * w;
        for (int64_t d = 0; d < w; d++)
            for (int64_t s = 0; s < KT; s++)
                blk[d * KT + s] = j + s < n ? src[(j + s) * lds + d] : 0.0f;
    }
}

/* Row t of head h of batch b in q, k, v (kv head h), out (and their
 * gradients, which share the layout). */
static inline int64_t fl_qoff(const fl_geom *g, int64_t b, int64_t h, int64_t t) {
    return b * g->qs[0] + h * g->qs[1] + t * g->qs[2];
}
static inline int64_t fl_koff(const fl_geom *g, int64_t b, int64_t h, int64_t s) {
    return b * g->ks[0] + h * g->ks[1] + s * g->ks[2];
}
static inline int64_t fl_voff(const fl_geom *g, int64_t b, int64_t h, int64_t s) {
    return b * g->vs[0] + h * g->vs[1] + s * g->vs[2];
}
static inline int64_t fl_ooff(const fl_geom *g, int64_t b, int64_t h, int64_t t) {
    return b * g->os[0] + h * g->os[1] + t * g->os[2];
}

/* Block of key tile k0 (a multiple of KT) in a tile-major transposed buffer
 * of width w. */
static inline const float *fl_tile(const float *all, int64_t k0, int64_t w) { return all + k0 * w; }

/* K of kv head (b, kh) transposed tile by tile into kt (fl_tr_tiles) and V
 * padded into vp [Sp, Dvp], zero beyond S and Dv: the operands of every tile
 * product of the head's query tiles. */
static void fl_stage_kv(const fl_geom *g, int64_t b, int64_t kh, float *kt, float *vp) {
    const int64_t D = g->D, Dv = g->Dv, Sp = fl_sp(g), Dvp = up(Dv, 32);
    const float *K = g->k + fl_koff(g, b, kh, 0), *V = g->v + fl_voff(g, b, kh, 0);
    const int64_t n = fl_key_limit(g, b); /* zeros beyond the key length */
    fl_tr_tiles(kt, K, n, D, g->ks[2], Sp);
    fl_pad(vp, Sp, Dvp, V, n, Dv, g->vs[2], 1.0f);
}

/* Row t of head h in a score tile after the product: masked outside
 * [lo, hi) - k0 (and beyond n keys) with -inf; the ALiBi term (with slopes)
 * and the bias row brow added, in that order (sdpa.c's softmax_row). */
static void fl_mask_row(const fl_geom *g, int64_t h, int64_t t, float *sc, int64_t n, int64_t k0,
                        int64_t lo, int64_t hi, const float *brow) {
    const int64_t a = lo - k0 > 0 ? lo - k0 : 0, e = hi - k0 < n ? hi - k0 : n;
    for (int64_t s = 0; s < a; s++) sc[s] = -INFINITY;
    for (int64_t s = e; s < KT; s++) sc[s] = -INFINITY;
    if (g->slopes) {
        const float m = g->slopes[h];
        const int64_t qpos = t + (g->S - g->T);
        for (int64_t s = a; s < e; s++)
            sc[s] += brow ? sdpa_alibi(m, qpos, k0 + s) + brow[(k0 + s) * g->bst[3]]
                          : sdpa_alibi(m, qpos, k0 + s);
    } else if (brow) {
        for (int64_t s = a; s < e; s++) sc[s] += brow[(k0 + s) * g->bst[3]];
    }
}

/* The per-row state of a query tile in the forward: each row's visible keys
 * [lo, hi), the span of the tile (the union), the running max m, sum l and
 * a NaN flag. Rows nq .. nqp - 1 (padding) see nothing and count as bad. */
typedef struct fl_rows {
    int64_t lo[QT], hi[QT], span_lo, span_hi;
    float m[QT];
    double l[QT];
    int bad[QT];
} fl_rows;

static void fl_rows_begin(const fl_geom *g, int64_t b, int64_t t0, int64_t nq, int64_t nqp,
                          fl_rows *R) {
    R->span_lo = g->S;
    R->span_hi = 0;
    for (int64_t r = 0; r < nqp; r++) {
        R->m[r] = -INFINITY;
        R->l[r] = 0.0;
        R->bad[r] = r >= nq;
        R->lo[r] = R->hi[r] = 0;
        if (r >= nq) continue;
        fl_range(g, b, t0 + r, &R->lo[r], &R->hi[r]);
        if (R->lo[r] < R->hi[r]) {
            if (R->lo[r] < R->span_lo) R->span_lo = R->lo[r];
            if (R->hi[r] > R->span_hi) R->span_hi = R->hi[r];
        }
    }
}

/* Row r can take part in the key tile [k0, k0 + n). */
static inline int fl_row_on(const fl_rows *R, int64_t r, int64_t k0, int64_t n) {
    return !R->bad[r] && R->hi[r] > k0 && R->lo[r] < k0 + n;
}

/* The row statistics of query row i ([B, H, T] flattened): st[0] = m,
 * st[1] = 1 / l (the layout of saved[0] above). */
static inline const float *fl_stat(const float *stats, int64_t i) { return stats + 2 * i; }

/* The tile's rows of out and of the statistics: acc / l, m and 1 / l; NaN
 * for a bad row, zeros and (-inf, 0) for a row that saw no key. */
static void fl_rows_end(const fl_geom *g, int64_t bh, int64_t t0, int64_t nq, const fl_rows *R,
                        const float *acc, int64_t Dvp, float *out, float *stats) {
    const int64_t Dv = g->Dv;
    for (int64_t r = 0; r < nq; r++) {
        float *orow = out + fl_ooff(g, bh / g->H, bh % g->H, t0 + r);
        float *st = stats + 2 * (bh * g->T + t0 + r);
        if (R->bad[r]) {
            for (int64_t e = 0; e < Dv; e++) orow[e] = NAN;
            st[0] = st[1] = NAN;
        } else if (R->m[r] == -INFINITY) {
            memset(orow, 0, sizeof(float) * (size_t)Dv);
            st[0] = -INFINITY;
            st[1] = 0.0f;
        } else {
            const float inv = (float)(1.0 / R->l[r]);
            for (int64_t e = 0; e < Dv; e++) orow[e] = acc[r * Dvp + e] * inv;
            st[0] = R->m[r];
            st[1] = inv;
        }
    }
}

#if defined(FL_X86) /* the block helpers of the AVX-512 paths */
/* For the nr rows of a block starting at row rb of the tile (logits in sb,
 * KT per row), against key tile [k0, k0 + n): on[i] = row rb + i takes
 * part; its invisible keys are masked and its bias added (rows that see the
 * whole tile without bias are left alone). Returns whether any row is on. */
static int fl_block_live(const fl_rows *R, int64_t rb, int nr, int64_t k0, int64_t n,
                         const uint64_t *bits, int *on) {
    int live = 0;
    for (int i = 0; i < nr; i++)
        live |= on[i] = fl_row_on(R, rb + i, k0, n) && (!bits || bits[rb + i]);
    return live;
}
static void fl_block_mask(const fl_geom *g, int64_t b, int64_t h, int64_t t0, int64_t rb, int nr,
                          float *sb, int64_t k0, int64_t n, const fl_rows *R, const int *on,
                          const uint64_t *bits) {
    for (int i = 0; i < nr; i++) {
        const int64_t r = rb + i;
        if (!on[i]) continue;
        const float *brow = fl_bias_row(g, b, h, t0 + r);
        if (brow || g->slopes || R->lo[r] > k0 || R->hi[r] < k0 + KT)
            fl_mask_row(g, h, t0 + r, sb + i * KT, n, k0, R->lo[r], R->hi[r], brow);
        if (bits) fl_apply_bits(sb + i * KT, bits[r]);
    }
}

/* The keys of a partial tile that some live row of the 8-row block at rb
 * sees (the OR of their masks); every key when the tile is full (bits
 * NULL). */
static inline uint64_t fl_block_bits(const uint64_t *bits, int64_t rb, const int *on) {
    if (!bits) return ~(uint64_t)0;
    uint64_t lb = 0;
    for (int i = 0; i < 8; i++) lb |= on[i] ? bits[rb + i] : 0u;
    return lb;
}

/* Dropout of the block's live rows after the softmax update: row i times the
 * keep scales of its n keys (z: KT floats of scratch). */
static void fl_block_dropout(const fl_geom *g, int64_t bh, int64_t t0, int64_t rb, int nr,
                             float *sb, int64_t k0, int64_t n, const int *on, const int *bad,
                             float *z) {
    if (!(g->p > 0.0f)) return;
    for (int i = 0; i < nr; i++) {
        if (!on[i] || bad[i]) continue;
        float *row = sb + i * KT;
        fl_keep(g, (uint64_t)((bh * g->T + t0 + rb + i) * g->S + k0), n, z);
        for (int64_t s = 0; s < n; s++) row[s] *= z[s];
    }
}
#endif

/* One work item: batch b, head h, query rows [t0, t0 + nq). */
static void fwd_tile(const fl_geom *g, int64_t b, int64_t h, int64_t t0, int64_t nq, float *ws,
                     const float *ktall, const float *vall, float *out, float *stats) {
    const int64_t T = g->T, S = g->S, D = g->D, Dv = g->Dv, bh = b * g->H + h;
    const int64_t Dp = up(D, 32), Dvp = up(Dv, 32), nqp = up(nq, 4);
    const float *Q = g->q + fl_qoff(g, b, h, t0);
    float *qs = ws, *sc = qs + QT * Dp, *acc = sc + QT * KT, *z = acc + QT * Dvp;
    fl_rows R;
    fl_rows_begin(g, b, t0, nq, nqp, &R);
    fl_pad(qs, nqp, Dp, Q, nq, D, g->qs[2], g->scale); /* scale q once: logits = (scale q) . k */
    memset(acc, 0, sizeof(float) * (size_t)(nqp * Dvp));
    fl_walk w;
    fl_walk_begin(g, h, t0, R.span_lo, R.span_hi, &w);
    int64_t k0;
    const uint64_t *bits;
    while (fl_walk_next(&w, &k0, &bits)) {
        const int64_t n = R.span_hi - k0 < KT ? R.span_hi - k0 : KT;
        fl_gemm(sc, KT, qs, Dp, fl_tile(ktall, k0, D), KT, nqp, KT, D, 0);
        for (int64_t r = 0; r < nqp; r++) {
            float *row = sc + r * KT;
            if (!fl_row_on(&R, r, k0, n) || (bits && !bits[r])) {
                memset(row, 0, sizeof(float) * KT);
                continue;
            }
            const int64_t t = t0 + r;
            fl_mask_row(g, h, t, row, n, k0, R.lo[r], R.hi[r], fl_bias_row(g, b, h, t));
            if (bits) fl_apply_bits(row, bits[r]);
            int nan;
            const float mx = fl_rowmax(row, &nan);
            if (nan || mx == -INFINITY) {
                R.bad[r] |= nan;
                memset(row, 0, sizeof(float) * KT);
                continue;
            }
            if (mx > R.m[r]) {
                if (R.m[r] != -INFINITY) {
                    const float alpha = expf(R.m[r] - mx);
                    R.l[r] *= (double)alpha;
                    fl_scal(acc + r * Dvp, alpha, Dv);
                }
                R.m[r] = mx;
            }
            R.l[r] += (double)fl_exp(row, R.m[r]);
            if (g->p > 0.0f) {
                fl_keep(g, (uint64_t)((bh * T + t) * S + k0), n, z);
                for (int64_t s = 0; s < n; s++) row[s] *= z[s];
            }
        }
        fl_gemm(acc, Dvp, sc, KT, vall + k0 * Dvp, Dvp, nqp, Dvp, n, 1);
    }
    fl_rows_end(g, bh, t0, nq, &R, acc, Dvp, out, stats);
}

/* ---- forward, AVX-512 --------------------------------------------------------------------- */

#if defined(FL_X86)
/* exp(x) on 16 lanes by the polynomial of attn__exp_core (vmath.h), for
 * x >= -87 (the caller clamps and zeroes below) */
FL512_INLINE static __m512 fl_exp16(__m512 x) {
    const __m512 shifter = _mm512_set1_ps(12582912.0f);
    const __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), shifter);
    const __m512 n = _mm512_sub_ps(t, shifter);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    const __m512i bits = _mm512_slli_epi32(
        _mm512_add_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(127 - 0x4B400000)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}

/* Online-softmax update of the 8 rows of a block of logits (KT each, already
 * masked and biased; rows with live[r] == 0 are zeroed). In three passes
 * over the rows, each of independent iterations so that the rows' reduction
 * and exp chains overlap: (1) the rows' maxima; (2) per row: a NaN marks it
 * bad (bad[r] = 1, row zeroed), a row of -inf is zeroed, a larger maximum
 * rescales the running sum l[r] and accumulator row acc + r ldacc by
 * exp(m_old - m_new); (3) the row becomes exp(logit - m[r]) (0 where
 * logit - m < -87, -inf included) and its sum is added to l[r]. */
FL512_INLINE static void fl_block512(float *restrict sb, const int *live, float *m, double *l,
                                     int *bad, float *restrict acc, int64_t ldacc, int64_t Dv) {
    float mx[8];
    int go[8];
    for (int r = 0; r < 8; r++) {
        const float *row = sb + r * KT;
        __mmask16 nan = 0;
        __m512 mv = _mm512_set1_ps(-INFINITY);
        for (int c = 0; c < KT; c += 64) {
            const __m512 x0 = _mm512_loadu_ps(row + c), x1 = _mm512_loadu_ps(row + c + 16);
            const __m512 x2 = _mm512_loadu_ps(row + c + 32), x3 = _mm512_loadu_ps(row + c + 48);
            nan |= _mm512_cmp_ps_mask(x0, x1, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(x2, x3, _CMP_UNORD_Q);
            mv = _mm512_max_ps(mv, _mm512_max_ps(_mm512_max_ps(x0, x1), _mm512_max_ps(x2, x3)));
        }
        mx[r] = _mm512_reduce_max_ps(mv);
        go[r] = live[r] ? (nan ? -1 : mx[r] != -INFINITY) : 0;
    }
    for (int r = 0; r < 8; r++) {
        if (go[r] < 0) bad[r] = 1;
        if (go[r] <= 0 || !(mx[r] > m[r])) continue;
        if (m[r] != -INFINITY) {
            const float alpha = expf(m[r] - mx[r]);
            float *a = acc + r * ldacc;
            l[r] *= (double)alpha;
            const __m512 av = _mm512_set1_ps(alpha);
            int64_t e = 0;
            for (; e + 16 <= Dv; e += 16) _mm512_storeu_ps(a + e, _mm512_mul_ps(_mm512_loadu_ps(a + e), av));
            for (; e < Dv; e++) a[e] *= alpha;
        }
        m[r] = mx[r];
    }
    const __m512 lo = _mm512_set1_ps(-87.0f), zero = _mm512_setzero_ps();
    for (int r = 0; r < 8; r++) {
        if (go[r] <= 0) {
            for (int c = 0; c < KT; c += 16) _mm512_storeu_ps(sb + r * KT + c, zero);
            continue;
        }
        const __m512 mv = _mm512_set1_ps(m[r]);
        __m512 sum = zero;
        for (int c = 0; c < KT; c += 64) {
        float *row = sb + r * KT + c;
        __m512 x0 = _mm512_sub_ps(_mm512_loadu_ps(row), mv), x1 = _mm512_sub_ps(_mm512_loadu_ps(row + 16), mv);
        __m512 x2 = _mm512_sub_ps(_mm512_loadu_ps(row + 32), mv), x3 = _mm512_sub_ps(_mm512_loadu_ps(row + 48), mv);
        const __mmask16 k0 = _mm512_cmp_ps_mask(x0, lo, _CMP_GE_OQ), k1 = _mm512_cmp_ps_mask(x1, lo, _CMP_GE_OQ);
        const __mmask16 k2 = _mm512_cmp_ps_mask(x2, lo, _CMP_GE_OQ), k3 = _mm512_cmp_ps_mask(x3, lo, _CMP_GE_OQ);
        x0 = _mm512_maskz_mov_ps(k0, fl_exp16(_mm512_max_ps(x0, lo)));
        x1 = _mm512_maskz_mov_ps(k1, fl_exp16(_mm512_max_ps(x1, lo)));
        x2 = _mm512_maskz_mov_ps(k2, fl_exp16(_mm512_max_ps(x2, lo)));
        x3 = _mm512_maskz_mov_ps(k3, fl_exp16(_mm512_max_ps(x3, lo)));
        sum = _mm512_add_ps(sum, _mm512_add_ps(_mm512_add_ps(x0, x1), _mm512_add_ps(x2, x3)));
        _mm512_storeu_ps(row, x0), _mm512_storeu_ps(row + 16, x1);
        _mm512_storeu_ps(row + 32, x2), _mm512_storeu_ps(row + 48, x3);
        }
        l[r] += (double)_mm512_reduce_add_ps(sum);
    }
}

/* fwd_tile on AVX-512: for each key tile, each block of 8 query rows goes
 * through logits, softmax update and P V before the next block, so a block's
 * logits (2 KiB) and accumulators stay in L1 next to the key tile's K and V. */
FL512 static void fwd_tile512(const fl_geom *g, int64_t b, int64_t h, int64_t t0, int64_t nq,
                              float *ws, const float *ktall, const float *vall, float *out,
                              float *stats) {
    const int64_t D = g->D, Dv = g->Dv, bh = b * g->H + h;
    const int64_t Dp = up(D, 32), Dvp = up(Dv, 32), nqp = up(nq, 8);
    const float *Q = g->q + fl_qoff(g, b, h, t0);
    float *qs = ws, *sc = qs + QT * Dp, *acc = sc + QT * KT, *z = acc + QT * Dvp;
    fl_rows R;
    fl_rows_begin(g, b, t0, nq, nqp, &R);
    fl_pad(qs, nqp, Dp, Q, nq, D, g->qs[2], g->scale);
    memset(acc, 0, sizeof(float) * (size_t)(nqp * Dvp));
    fl_walk w;
    fl_walk_begin(g, h, t0, R.span_lo, R.span_hi, &w);
    int64_t k0;
    const uint64_t *bits;
    while (fl_walk_next(&w, &k0, &bits)) {
        const int64_t n = R.span_hi - k0 < KT ? R.span_hi - k0 : KT;
        const float *kb = fl_tile(ktall, k0, D), *vb = vall + k0 * Dvp;
        for (int64_t rb = 0; rb < nqp; rb += 8) {
            int on[8];
            if (!fl_block_live(&R, rb, 8, k0, n, bits, on)) continue;
            float *sb = sc; /* one block of logits, reused (L1) */
            /* a partial tile: the keys any row of the block sees; a half of
             * 32 keys that none sees is not computed (its stale logits
             * become -inf in fl_block_mask), and P V runs over [ka, ke)
             * only (the weights outside are exact zeros) */
            const uint64_t lb = fl_block_bits(bits, rb, on);
            int64_t ka = 0, ke = n;
            if (bits) {
                ka = __builtin_ctzll(lb);
                ke = 64 - __builtin_clzll(lb);
                if (ke > n) ke = n;
            }
            for (int64_t c = 0; c < KT; c += 32)
                if (lb >> c & 0xFFFFFFFFu) fl_k8x32(sb + c, KT, qs + rb * Dp, Dp, kb + c, KT, D, 0);
            fl_block_mask(g, b, h, t0, rb, 8, sb, k0, n, &R, on, bits);
            fl_block512(sb, on, R.m + rb, R.l + rb, R.bad + rb, acc + rb * Dvp, Dvp, Dv);
            fl_block_dropout(g, bh, t0, rb, 8, sb, k0, n, on, R.bad + rb, z);
            for (int64_t c = 0; c < Dvp; c += 32)
                fl_k8x32(acc + rb * Dvp + c, Dvp, sb + ka, KT, vb + ka * Dvp + c, Dvp, ke - ka, 1);
        }
    }
    fl_rows_end(g, bh, t0, nq, &R, acc, Dvp, out, stats);
}
#endif

static float *fl_scratch(attn_ctx *ctx, int slots, int64_t n, const char *what) {
    return sdpa_scratch(ctx, "flash_sdpa", slots, n, what);
}

#if defined(FL_X86)
/* ---- forward, bf16 inputs on AVX-512 BF16 ------------------------------------------------- */

/* With bf16 q, k, v the products run on VDPBF16PS: each 32-bit lane holds a
 * pair of bf16 (the first in the low half) and the instruction adds
 * a.lo b.lo + a.hi b.hi to a float lane. Products of two bf16 are exact in
 * float, sums are float, so the logits are as accurate as float ones of the
 * same (bf16) inputs. P is rounded to bf16 (nearest even) for P V, as other
 * fused kernels do; l, m, the accumulators and the output stay float.
 * Operands, in 32-bit words (pairs):
 *   q rows  [QT][D2] (D2 = ceil(D / 2), the pairs of d, zero-padded),
 *   K tile  [D2][KT]: word (p, s) = pair p of key k0 + s (fl_stage_bf16),
 *   P rows  [8][KT / 2]: the bf16 row as it lies in memory,
 *   V       [Sp / 2][Dvp]: word (j, e) = (V[2j][e], V[2j + 1][e]).
 * With an odd number n of keys in a tile, the last pair reaches the key after
 * the span (weight 0), and AMX reads keys in chunks of 32: staging zeroes
 * every key at or beyond the batch's key length, so keys the contract says
 * are never read (key_lengths) cannot reach a row, whatever they hold. A NaN
 * in a key inside the span that one row cannot see (causal) reaches that row
 * on every path, as in the reference op (0 times NaN). */
#define FLBF __attribute__((target("avx512f,avx512bf16"), optimize("fp-contract=fast")))
#define FLBF_INLINE \
    __attribute__((target("avx512f,avx512bf16"), optimize("fp-contract=fast"), always_inline)) inline

typedef uint32_t fl_w2; /* a pair of bf16 */

FLBF_INLINE static void fl_kbf8x32(float *restrict C, int64_t ldc, const fl_w2 *restrict A,
                                   int64_t lda, const fl_w2 *restrict B, int64_t ldb, int64_t K2,
                                   int accumulate) {
    __m512 c0, c1, c2, c3, c4, c5, c6, c7, d0, d1, d2, d3, d4, d5, d6, d7;
    if (accumulate) {
        FL_LOAD_C();
    } else {
        c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = _mm512_setzero_ps();
        d0 = d1 = d2 = d3 = d4 = d5 = d6 = d7 = _mm512_setzero_ps();
    }
    const fl_w2 *a0 = A, *a1 = A + lda, *a2 = A + 2 * lda, *a3 = A + 3 * lda;
    const fl_w2 *a4 = A + 4 * lda, *a5 = A + 5 * lda, *a6 = A + 6 * lda, *a7 = A + 7 * lda;
    for (int64_t k = 0; k < K2; k++) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(B + k * ldb);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(B + k * ldb + 16);
#define FL_DP(i)                                                      \
    do {                                                              \
        const __m512bh a = (__m512bh)_mm512_set1_epi32((int)a##i[k]); \
        c##i = _mm512_dpbf16_ps(c##i, a, b0);                         \
        d##i = _mm512_dpbf16_ps(d##i, a, b1);                         \
    } while (0)
        FL_DP(0); FL_DP(1); FL_DP(2); FL_DP(3);
        FL_DP(4); FL_DP(5); FL_DP(6); FL_DP(7);
#undef FL_DP
    }
    FL_STORE_C();
}

static inline int64_t fl_d2(const fl_geom *g) { return (g->D + 1) / 2; }

/* Per-thread scratch of the bf16 forward, in 4-byte words: q pairs, the
 * logits of a block, P in bf16, the accumulators, the dropout row; then the
 * staged K tiles [Sp / KT][D2][KT] and V pairs [Sp / 2][Dvp]. */
static int64_t fwd_bf16_tiles(const fl_geom *g) {
    return QT * fl_d2(g) + 8 * KT + 8 * KT / 2 + QT * up(g->Dv, 32) + KT;
}
static int64_t fwd_bf16_scratch(const fl_geom *g) {
    const int64_t Sp = fl_sp(g);
    return fwd_bf16_tiles(g) + Sp * fl_d2(g) + Sp / 2 * up(g->Dv, 32);
}

/* pair p of row x (bf16, w elements): x[2p] low, x[2p + 1] high (0 past w) */
static inline fl_w2 fl_pair(const uint16_t *x, int64_t p, int64_t w) {
    const uint32_t lo = x[2 * p], hi = 2 * p + 1 < w ? x[2 * p + 1] : 0u;
    return lo | hi << 16;
}

/* K tiles [Sp / KT][d2p][KT] (pairs p >= ceil(D / 2) zero) and V pairs
 * [Sp / 2][Dvp] of kv head (b, kh); keys at or beyond the batch's key length
 * are staged as zeros (never read from the inputs). */
static void fl_stage_bf16(const fl_geom *g, int64_t b, int64_t kh, int64_t d2p, fl_w2 *kt,
                          fl_w2 *vp) {
    const int64_t D = g->D, Dv = g->Dv, Sp = fl_sp(g), D2 = fl_d2(g), Dvp = up(Dv, 32);
    const int64_t S = fl_key_limit(g, b);
    const uint16_t *K = g->kh + (b * g->Hkv + kh) * g->S * D;
    const uint16_t *V = g->vh + (b * g->Hkv + kh) * g->S * Dv;
    for (int64_t j = 0; j < Sp; j += KT) {
        fl_w2 *blk = kt + j * d2p;
        for (int64_t s = 0; s < KT; s++)
            for (int64_t p = 0; p < d2p; p++)
                blk[p * KT + s] = j + s < S && p < D2 ? fl_pair(K + (j + s) * D, p, D) : 0u;
    }
    for (int64_t i = 0; i < Sp / 2; i++)
        for (int64_t e = 0; e < Dvp; e++) {
            const uint32_t lo = 2 * i < S && e < Dv ? V[2 * i * Dv + e] : 0u;
            const uint32_t hi = 2 * i + 1 < S && e < Dv ? V[(2 * i + 1) * Dv + e] : 0u;
            vp[i * Dvp + e] = lo | hi << 16;
        }
}

/* nr rows of KT floats (sb) rounded to bf16 pairs (pb, KT / 2 words a row) */
FLBF_INLINE static void fl_rows_to_bf16(const float *restrict sb, fl_w2 *restrict pb, int nr) {
    for (int64_t i = 0; i < nr * KT; i += 32) {
        const __m512bh w = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(sb + i + 16), _mm512_loadu_ps(sb + i));
        _mm512_storeu_si512(pb + i / 2, (__m512i)w);
    }
}

/* fwd_tile512 for bf16 inputs (see above). */
FLBF static void fwd_tile_bf16(const fl_geom *g, int64_t b, int64_t h, int64_t t0, int64_t nq,
                               float *ws, const fl_w2 *ktall, const fl_w2 *vall, float *out,
                               float *stats) {
    const int64_t T = g->T, D = g->D, Dv = g->Dv, bh = b * g->H + h;
    const int64_t D2 = fl_d2(g), Dvp = up(Dv, 32), nqp = up(nq, 8);
    const uint16_t *Q = g->qh + (bh * T + t0) * D;
    fl_w2 *qp = (fl_w2 *)ws;
    float *sb = ws + QT * D2;
    fl_w2 *pb = (fl_w2 *)(sb + 8 * KT);
    float *acc = (float *)(pb + 8 * KT / 2), *z = acc + QT * Dvp;
    fl_rows R;
    fl_rows_begin(g, b, t0, nq, nqp, &R);
    for (int64_t r = 0; r < nqp; r++)
        for (int64_t p = 0; p < D2; p++) qp[r * D2 + p] = r < nq ? fl_pair(Q + r * D, p, D) : 0u;
    memset(acc, 0, sizeof(float) * (size_t)(nqp * Dvp));
    const __m512 sv = _mm512_set1_ps(g->scale);
    fl_walk w;
    fl_walk_begin(g, h, t0, R.span_lo, R.span_hi, &w);
    int64_t k0;
    const uint64_t *bits;
    while (fl_walk_next(&w, &k0, &bits)) {
        const int64_t n = R.span_hi - k0 < KT ? R.span_hi - k0 : KT;
        const fl_w2 *kb = ktall + k0 * D2, *vb = vall + k0 / 2 * Dvp;
        for (int64_t rb = 0; rb < nqp; rb += 8) {
            int on[8];
            if (!fl_block_live(&R, rb, 8, k0, n, bits, on)) continue;
            for (int64_t c = 0; c < KT; c += 32)
                fl_kbf8x32(sb + c, KT, qp + rb * D2, D2, kb + c, KT, D2, 0);
            for (int64_t i = 0; i < 8 * KT; i += 16)
                _mm512_storeu_ps(sb + i, _mm512_mul_ps(_mm512_loadu_ps(sb + i), sv));
            fl_block_mask(g, b, h, t0, rb, 8, sb, k0, n, &R, on, bits);
            fl_block512(sb, on, R.m + rb, R.l + rb, R.bad + rb, acc + rb * Dvp, Dvp, Dv);
            fl_block_dropout(g, bh, t0, rb, 8, sb, k0, n, on, R.bad + rb, z);
            fl_rows_to_bf16(sb, pb, 8);
            for (int64_t c = 0; c < Dvp; c += 32)
                fl_kbf8x32(acc + rb * Dvp + c, Dvp, pb, KT / 2, vb + c, Dvp, (n + 1) / 2, 1);
        }
    }
    fl_rows_end(g, bh, t0, nq, &R, acc, Dvp, out, stats);
}


/* ---- forward, bf16 inputs on AMX ------------------------------------------------------------ */

/* On CPUs with AMX-BF16 (and the kernel's permission to use the tile state,
 * asked for once with arch_prctl) the products of the bf16 forward run on
 * tiles: TDPBF16PS adds A [16 rows][16 pairs] times B [16 pairs][16 columns]
 * (pairs of bf16, the layout of the operands above) to a 16 x 16 float tile.
 * A block is 16 query rows; its logits are 4 tiles (KT = 64 keys) over the
 * pair chunks of d (D2 padded to whole chunks of 16 pairs), its P V adds
 * to 4 tiles of accumulators at a time. The softmax between them is
 * fl_block512 on each half of the block. Same numbers as the AVX-512 BF16
 * path up to the order of the float sums. */
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FLAMX __attribute__((target("avx512f,avx512bf16,amx-tile,amx-bf16"), optimize("fp-contract=fast")))

typedef struct fl_tilecfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} fl_tilecfg;

/* 1 when the CPU has AMX-BF16 and Linux lets this process use the tiles. */
static int fl_amx_usable(void) {
    static _Atomic int state = -1; /* asked once; racing first calls ask twice, harmlessly */
    const int known = state;
    if (known >= 0) return known;
    unsigned a, b, c, d;
    int ok = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 22 & 1u) && (d >> 24 & 1u);
#if defined(__linux__) && defined(SYS_arch_prctl)
    if (ok) ok = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
#else
    ok = 0;
#endif
    state = ok;
    return ok;
}

static inline int64_t fl_d2a(const fl_geom *g) { return up(fl_d2(g), 16); }

static int64_t fwd_amx_tiles(const fl_geom *g) {
    return QT * fl_d2a(g) + 16 * KT + 16 * KT / 2 + QT * up(g->Dv, 32) + KT;
}
static int64_t fwd_amx_scratch(const fl_geom *g) {
    const int64_t Sp = fl_sp(g);
    return fwd_amx_tiles(g) + Sp * fl_d2a(g) + Sp / 2 * up(g->Dv, 32);
}

FLAMX static void fwd_tile_amx(const fl_geom *g, int64_t b, int64_t h, int64_t t0, int64_t nq,
                               float *ws, const fl_w2 *ktall, const fl_w2 *vall, float *out,
                               float *stats) {
    const int64_t T = g->T, D = g->D, Dv = g->Dv, bh = b * g->H + h;
    const int64_t D2 = fl_d2(g), D2a = fl_d2a(g), Dvp = up(Dv, 32), nqp = up(nq, 16);
    const uint16_t *Q = g->qh + (bh * T + t0) * D;
    fl_w2 *qp = (fl_w2 *)ws;
    float *sb = ws + QT * D2a;
    fl_w2 *pb = (fl_w2 *)(sb + 16 * KT);
    float *acc = (float *)(pb + 16 * KT / 2), *z = acc + QT * Dvp;
    fl_rows R;
    fl_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) cfg.colsb[i] = 64, cfg.rows[i] = 16;
    _tile_loadconfig(&cfg);
    fl_rows_begin(g, b, t0, nq, nqp, &R);
    for (int64_t r = 0; r < nqp; r++)
        for (int64_t p = 0; p < D2a; p++)
            qp[r * D2a + p] = r < nq && p < D2 ? fl_pair(Q + r * D, p, D) : 0u;
    memset(acc, 0, sizeof(float) * (size_t)(nqp * Dvp));
    const __m512 sv = _mm512_set1_ps(g->scale);
    fl_walk w;
    fl_walk_begin(g, h, t0, R.span_lo, R.span_hi, &w);
    int64_t k0;
    const uint64_t *bits;
    while (fl_walk_next(&w, &k0, &bits)) {
        const int64_t n = R.span_hi - k0 < KT ? R.span_hi - k0 : KT, chunks = (n + 31) / 32;
        const fl_w2 *kb = ktall + k0 * D2a, *vb = vall + k0 / 2 * Dvp;
        for (int64_t rb = 0; rb < nqp; rb += 16) {
            int on[16];
            if (!fl_block_live(&R, rb, 16, k0, n, bits, on)) continue;
            /* logits: tiles 0-3 = 16 rows x keys [16 j, 16 j + 16) */
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int64_t c = 0; c < D2a; c += 16) {
                _tile_loadd(4, qp + rb * D2a + c, D2a * 4);
                _tile_loadd(5, kb + c * KT, KT * 4);
                _tile_dpbf16ps(0, 4, 5);
                _tile_loadd(5, kb + c * KT + 16, KT * 4);
                _tile_dpbf16ps(1, 4, 5);
                _tile_loadd(5, kb + c * KT + 32, KT * 4);
                _tile_dpbf16ps(2, 4, 5);
                _tile_loadd(5, kb + c * KT + 48, KT * 4);
                _tile_dpbf16ps(3, 4, 5);
            }
            _tile_stored(0, sb, KT * 4);
            _tile_stored(1, sb + 16, KT * 4);
            _tile_stored(2, sb + 32, KT * 4);
            _tile_stored(3, sb + 48, KT * 4);
            for (int64_t i = 0; i < 16 * KT; i += 16)
                _mm512_storeu_ps(sb + i, _mm512_mul_ps(_mm512_loadu_ps(sb + i), sv));
            fl_block_mask(g, b, h, t0, rb, 16, sb, k0, n, &R, on, bits);
            fl_block512(sb, on, R.m + rb, R.l + rb, R.bad + rb, acc + rb * Dvp, Dvp, Dv);
            fl_block512(sb + 8 * KT, on + 8, R.m + rb + 8, R.l + rb + 8, R.bad + rb + 8,
                        acc + (rb + 8) * Dvp, Dvp, Dv);
            fl_block_dropout(g, bh, t0, rb, 16, sb, k0, n, on, R.bad + rb, z);
            fl_rows_to_bf16(sb, pb, 16);
            /* acc [16 rows][e0, e0 + 64) += P V, in tiles 0-3, chunks of 32 keys */
            float *ar = acc + rb * Dvp;
            for (int64_t e0 = 0; e0 < Dvp; e0 += 64) {
                const int nj = Dvp - e0 >= 64 ? 4 : 2; /* Dvp is a multiple of 32 */
                _tile_loadd(0, ar + e0, Dvp * 4);
                _tile_loadd(1, ar + e0 + 16, Dvp * 4);
                if (nj == 4) {
                    _tile_loadd(2, ar + e0 + 32, Dvp * 4);
                    _tile_loadd(3, ar + e0 + 48, Dvp * 4);
                }
                for (int64_t c = 0; c < chunks; c++) {
                    const fl_w2 *vc = vb + c * 16 * Dvp + e0;
                    _tile_loadd(4, pb + c * 16, KT / 2 * 4);
                    _tile_loadd(5, vc, Dvp * 4);
                    _tile_dpbf16ps(0, 4, 5);
                    _tile_loadd(6, vc + 16, Dvp * 4);
                    _tile_dpbf16ps(1, 4, 6);
                    if (nj == 4) {
                        _tile_loadd(5, vc + 32, Dvp * 4);
                        _tile_dpbf16ps(2, 4, 5);
                        _tile_loadd(6, vc + 48, Dvp * 4);
                        _tile_dpbf16ps(3, 4, 6);
                    }
                }
                _tile_stored(0, ar + e0, Dvp * 4);
                _tile_stored(1, ar + e0 + 16, Dvp * 4);
                if (nj == 4) {
                    _tile_stored(2, ar + e0 + 32, Dvp * 4);
                    _tile_stored(3, ar + e0 + 48, Dvp * 4);
                }
            }
        }
    }
    _tile_release();
    fl_rows_end(g, bh, t0, nq, &R, acc, Dvp, out, stats);
}

/* The bf16 forward: fwd_tile_amx (AMX) or fwd_tile_bf16 (AVX-512 BF16) over
 * the items of attn__flash_sdpa_forward. */
static attn_status fl_forward_bf16(attn_ctx *ctx, const fl_geom *g, float *out, float *stats) {
    const int64_t ntile = (g->T + QT - 1) / QT, items = g->B * g->H * ntile;
    const double work = 2.0 * (double)g->B * g->H * g->T * g->S * (double)(g->D + g->Dv);
    int nt = attn__threads_for(ctx, work);
    if (nt > items) nt = (int)items;
    const int amx = fl_amx_usable() && !(ctx->kernel_flags & ATTN_KERNELS_NO_AMX);
    const int64_t per = amx ? fwd_amx_scratch(g) : fwd_bf16_scratch(g), Sp = fl_sp(g);
    const int64_t d2p = amx ? fl_d2a(g) : fl_d2(g), tiles = amx ? fwd_amx_tiles(g) : fwd_bf16_tiles(g);
    float *ws = fl_scratch(ctx, nt, per, "flash_sdpa forward (bf16 tiles, k, v)");
    int64_t *staged = ws ? attn__alloc(ctx, sizeof(int64_t) * (size_t)nt, "flash_sdpa forward")
                         : NULL;
    if (!staged) return ctx->status;
    for (int i = 0; i < nt; i++) staged[i] = -1;
    ATTN__OMP_FOR(nt)
    for (int64_t it = 0; it < items; it++) {
        const int tid = FL_TID();
        const int64_t bh = it / ntile, t0 = (it % ntile) * QT, b = bh / g->H, h = bh % g->H;
        const int64_t nq = g->T - t0 < QT ? g->T - t0 : QT, u = b * g->Hkv + h / g->G;
        float *w = ws + tid * per;
        fl_w2 *kt = (fl_w2 *)(w + tiles), *vp = kt + Sp * d2p;
        if (staged[tid] != u) {
            fl_stage_bf16(g, b, h / g->G, d2p, kt, vp);
            staged[tid] = u;
        }
        if (amx)
            fwd_tile_amx(g, b, h, t0, nq, w, kt, vp, out, stats);
        else
            fwd_tile_bf16(g, b, h, t0, nq, w, kt, vp, out, stats);
    }
    return ATTN_OK;
}
#endif


attn_status attn__flash_sdpa_forward(attn_ctx *ctx, attn_node *node) {
    fl_geom g = fl_geometry(node);
    float *out = attn_f32(node->out), *stats = attn_f32(node->saved[0]);
    attn_sparse_layout layout;
    if (fl_layout(ctx, node, &g, &layout, 1)) return ctx->status;
#if defined(FL_X86)
    if (g.qh && __builtin_cpu_supports("avx512bf16") && !(ctx->kernel_flags & ATTN_KERNELS_PORTABLE))
        return fl_forward_bf16(ctx, &g, out, stats);
#endif
    if (fl_widen(ctx, &g)) return ctx->status; /* bf16 elsewhere: computed in f32 */
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
#if defined(FL_X86)
    const int avx512 = __builtin_cpu_supports("avx512f") && !(ctx->kernel_flags & ATTN_KERNELS_PORTABLE);
#endif
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
#if defined(FL_X86)
        if (avx512) {
            fwd_tile512(&g, b, h, t0, nq, w, kt, vp, out, stats);
            continue;
        }
#endif
        fwd_tile(&g, b, h, t0, nq, w, kt, vp, out, stats);
    }
    return ATTN_OK;
}

/* ---- forward (reference) --------------------------------------------------------------------- */

/* The scalar reference: each logit is the f32 value the kernels produce up to
 * the order of the sums, (scale q) . k rounded to f32, then + bias in f32;
 * everything after it (max, exp, sums, weights, P V) in double. */
attn_status attn__flash_sdpa_ref(attn_ctx *ctx, attn_node *node) {
    fl_geom g = fl_geometry(node);
    if (fl_widen(ctx, &g)) return ctx->status;
    float *out = attn_f32(node->out), *stats = attn_f32(node->saved[0]);
    const int64_t T = g.T, S = g.S, D = g.D, Dv = g.Dv;
    double *z = attn__alloc(ctx, sizeof(double) * (size_t)S, "flash_sdpa reference (row)");
    if (!z) return ctx->status;
    for (int64_t b = 0; b < g.B; b++)
        for (int64_t h = 0; h < g.H; h++) {
            const int64_t kh = h / g.G, bh = b * g.H + h;
            const float *K = g.k + fl_koff(&g, b, kh, 0), *V = g.v + fl_voff(&g, b, kh, 0);
            const int64_t lk = g.ks[2], lv = g.vs[2];
            for (int64_t t = 0; t < T; t++) {
                const float *qr = g.q + fl_qoff(&g, b, h, t);
                const float *br = fl_bias_row(&g, b, h, t);
                float *orow = out + fl_ooff(&g, b, h, t);
                int64_t lo, hi;
                fl_range(&g, b, t, &lo, &hi);
                double mx = -INFINITY;
                int nan = 0;
                for (int64_t s = lo; s < hi; s++) {
                    if (g.sp && !attn_sparse_visible(g.sp, h, T, S, t, s)) {
                        z[s] = -INFINITY; /* hidden by the pattern: weight 0 */
                        continue;
                    }
                    double acc = 0.0;
                    for (int64_t d = 0; d < D; d++)
                        acc += (double)(g.scale * qr[d]) * (double)K[s * lk + d];
                    float logit = (float)acc;
                    if (g.slopes)
                        logit += br ? sdpa_alibi(g.slopes[h], t + S - T, s) + br[s * g.bst[3]]
                                    : sdpa_alibi(g.slopes[h], t + S - T, s);
                    else if (br)
                        logit += br[s * g.bst[3]];
                    z[s] = (double)logit;
                    if (isnan(z[s]))
                        nan = 1;
                    else if (z[s] > mx)
                        mx = z[s];
                }
                float *st = stats + 2 * (bh * T + t);
                if (nan) {
                    for (int64_t e = 0; e < Dv; e++) orow[e] = NAN;
                    st[0] = st[1] = NAN;
                    continue;
                }
                if (mx == -INFINITY) {
                    for (int64_t e = 0; e < Dv; e++) orow[e] = 0.0f;
                    st[0] = -INFINITY;
                    st[1] = 0.0f;
                    continue;
                }
                double sum = 0.0;
                for (int64_t s = lo; s < hi; s++) sum += (z[s] = exp(z[s] - mx));
                st[0] = (float)mx;
                st[1] = (float)(1.0 / sum);
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
                        acc += w * (double)V[s * lv + e];
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
    const float *out, *gy, *stats; /* stats: saved[0], (m, 1 / l) per row */
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

/* The backward's operands of kv head (b, kh): kt = K^T and vt = V^T tile by
 * tile (fl_tr_tiles), kp = K padded [Sp, Dp]. */
static void fl_stage_bwd(const fl_geom *g, int64_t b, int64_t kh, float *kt, float *vt,
                         float *kp) {
    const int64_t D = g->D, Dv = g->Dv, Sp = fl_sp(g);
    const float *K = g->k + fl_koff(g, b, kh, 0), *V = g->v + fl_voff(g, b, kh, 0);
    const int64_t n = fl_key_limit(g, b); /* zeros beyond the key length */
    fl_tr_tiles(kt, K, n, D, g->ks[2], Sp);
    fl_tr_tiles(vt, V, n, Dv, g->vs[2], Sp);
    fl_pad(kp, Sp, up(D, 32), K, n, D, g->ks[2], 1.0f);
}

/* The start of a query tile's backward: each row's visible keys [lo, hi)
 * (empty for a row that saw no key: no gradient flows through it; also for
 * the padding rows nq .. nqp - 1), their span, D_t = dO_t . O_t (drow), the
 * zero-padded tiles scale Q (qs) and dO (dop), and the dQ tile zeroed. */
static void fl_bwd_begin(const fl_geom *g, const fl_grads *gr, int64_t b, int64_t h, int64_t t0,
                         int64_t nq, int64_t nqp, float *qs, float *dop, float *dq, float *drow,
                         int64_t *lo, int64_t *hi, int64_t *span_lo, int64_t *span_hi) {
    const int64_t T = g->T, D = g->D, Dv = g->Dv, bh = b * g->H + h;
    const int64_t lo_ = g->os[2]; /* row stride of out and its gradient */
    const float *dO = gr->gy + fl_ooff(g, b, h, t0), *O = gr->out + fl_ooff(g, b, h, t0);
    *span_lo = g->S;
    *span_hi = 0;
    for (int64_t r = 0; r < nqp; r++) {
        lo[r] = hi[r] = 0;
        if (r >= nq) continue;
        fl_range(g, b, t0 + r, &lo[r], &hi[r]);
        if (lo[r] < hi[r] && fl_stat(gr->stats, bh * T + t0 + r)[0] != -INFINITY) {
            if (lo[r] < *span_lo) *span_lo = lo[r];
            if (hi[r] > *span_hi) *span_hi = hi[r];
        } else {
            hi[r] = lo[r] = 0;
        }
        double acc = 0.0;
        for (int64_t e = 0; e < Dv; e++) acc += (double)dO[r * lo_ + e] * (double)O[r * lo_ + e];
        drow[r] = (float)acc;
    }
    fl_pad(qs, nqp, up(D, 32), g->q + fl_qoff(g, b, h, t0), nq, D, g->qs[2], g->scale);
    fl_pad(dop, nqp, up(Dv, 32), dO, nq, Dv, lo_, 1.0f);
    memset(dq, 0, sizeof(float) * (size_t)(nqp * up(D, 32)));
}

/* The end of a query tile's backward: dQ += scale dq (the tile's sums). */
static void fl_bwd_end(const fl_geom *g, const fl_grads *gr, int64_t bh, int64_t t0, int64_t nq,
                       const float *dq) {
    if (!gr->dq) return;
    const int64_t D = g->D, Dp = up(D, 32), ld = g->qs[2];
    float *gq = gr->dq + fl_qoff(g, bh / g->H, bh % g->H, t0);
    for (int64_t r = 0; r < nq; r++)
        for (int64_t d = 0; d < D; d++) gq[r * ld + d] += g->scale * dq[r * Dp + d];
}

/* dst [KT, QT] = src [QT, KT] transposed (rows r < nqp) */
FL_CLONES static void fl_tr_tile(float *restrict dst, const float *restrict src, int64_t nqp) {
    for (int64_t r = 0; r < nqp; r++)
        for (int64_t s = 0; s < KT; s++) dst[s * QT + r] = src[r * KT + s];
}

/* Backward of the query tile [t0, t0 + nq) of head h against its key span;
 * dK, dV of the unit accumulate in dka [S + KT, Dp], dva [S + KT, Dvp]. */
FL_CLONES static void bwd_tile(const fl_geom *g, const fl_grads *gr, int64_t b, int64_t h, int64_t t0,
                     int64_t nq, float *ws, const float *ktall, const float *vtall,
                     const float *kpall, float *dka, float *dva) {
    const int64_t T = g->T, S = g->S, D = g->D, Dv = g->Dv, kh = h / g->G, bh = b * g->H + h;
    const int64_t Dp = up(D, 32), Dvp = up(Dv, 32), nqp = up(nq, 4);
    float *qs = ws, *dop = qs + QT * Dp;
    float *P = dop + QT * Dvp, *dS = P + QT * KT, *PT = dS + QT * KT;
    (void)kh;
    float *dST = PT + KT * QT, *dq = dST + KT * QT, *drow = dq + QT * Dp, *z = drow + QT;
    const int want_ds = gr->dq || gr->dk || gr->dl;
    int64_t lo[QT], hi[QT], span_lo, span_hi;
    fl_bwd_begin(g, gr, b, h, t0, nq, nqp, qs, dop, dq, drow, lo, hi, &span_lo, &span_hi);
    fl_walk w;
    fl_walk_begin(g, h, t0, span_lo, span_hi, &w);
    int64_t k0;
    const uint64_t *bits;
    while (fl_walk_next(&w, &k0, &bits)) {
        const int64_t n = span_hi - k0 < KT ? span_hi - k0 : KT, n4 = up(n, 4);
        fl_gemm(P, KT, qs, Dp, fl_tile(ktall, k0, D), KT, nqp, KT, D, 0); /* logits */
        if (want_ds) /* dO V^T */
            fl_gemm(dS, KT, dop, Dvp, fl_tile(vtall, k0, Dv), KT, nqp, KT, Dv, 0);
        for (int64_t r = 0; r < nqp; r++) {
            float *pr = P + r * KT, *dr = dS + r * KT;
            if (r >= nq || hi[r] <= k0 || lo[r] >= k0 + n || (bits && !bits[r])) {
                memset(pr, 0, sizeof(float) * KT);
                if (want_ds) memset(dr, 0, sizeof(float) * KT);
                continue;
            }
            const int64_t t = t0 + r;
            fl_mask_row(g, h, t, pr, n, k0, lo[r], hi[r], fl_bias_row(g, b, h, t));
            if (bits) fl_apply_bits(pr, bits[r]);
            const float *st = fl_stat(gr->stats, bh * T + t);
            (void)fl_exp(pr, st[0]); /* P = exp(logit - m) / l */
            fl_scal(pr, st[1], KT);
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
    fl_bwd_end(g, gr, bh, t0, nq, dq);
}

#if defined(FL_X86)
/* One row of the backward on 16 lanes, with the row's statistics st = (m,
 * 1 / l): p = exp(logit - m) / l (0 where logit - m < -87, -inf included; a
 * NaN stays NaN), then with z the dropout scales (NULL: 1)
 * dS = p (dS z - drow) when want_ds, and p z. */
FL512_INLINE static void fl_bwd_row512(float *restrict pr, float *restrict dr, const float *st,
                                       float drow, const float *restrict z, int want_ds) {
    const __m512 mv = _mm512_set1_ps(st[0]), inv = _mm512_set1_ps(st[1]);
    const __m512 lo = _mm512_set1_ps(-87.0f), dv = _mm512_set1_ps(drow);
    for (int c = 0; c < KT; c += 16) {
        const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(pr + c), mv);
        const __mmask16 keep = _mm512_cmp_ps_mask(d, lo, _CMP_NLT_UQ);
        const __m512 p =
            _mm512_mul_ps(_mm512_maskz_mov_ps(keep, fl_exp16(_mm512_max_ps(lo, d))), inv);
        const __m512 zz = z ? _mm512_loadu_ps(z + c) : _mm512_set1_ps(1.0f);
        if (want_ds) {
            const __m512 ds = _mm512_loadu_ps(dr + c);
            _mm512_storeu_ps(dr + c, _mm512_mul_ps(p, _mm512_fmsub_ps(ds, zz, dv)));
        }
        _mm512_storeu_ps(pr + c, _mm512_mul_ps(p, zz));
    }
}

/* bwd_tile on AVX-512: logits and dO V^T of each 8-row block through the
 * register-blocked kernel, the row pass in intrinsics, then per key tile
 * dV += (P o Z)^T dO and dK += dS^T (scale Q) read P and dS by column
 * (fl_k8x32t, no transposed copies) and dQ += dS K. */
FL512 static void bwd_tile512(const fl_geom *g, const fl_grads *gr, int64_t b, int64_t h,
                              int64_t t0, int64_t nq, float *ws, const float *ktall,
                              const float *vtall, const float *kpall, float *dka, float *dva) {
    const int64_t T = g->T, S = g->S, D = g->D, Dv = g->Dv, bh = b * g->H + h;
    const int64_t Dp = up(D, 32), Dvp = up(Dv, 32), nqp = up(nq, 8);
    float *qs = ws, *dop = qs + QT * Dp;
    float *P = dop + QT * Dvp, *dS = P + QT * KT, *PT = dS + QT * KT;
    float *dST = PT + KT * QT, *dq = dST + KT * QT, *drow = dq + QT * Dp, *z = drow + QT;
    const int want_ds = gr->dq || gr->dk || gr->dl;
    int64_t lo[QT], hi[QT], span_lo, span_hi;
    fl_bwd_begin(g, gr, b, h, t0, nq, nqp, qs, dop, dq, drow, lo, hi, &span_lo, &span_hi);
    fl_walk w;
    fl_walk_begin(g, h, t0, span_lo, span_hi, &w);
    int64_t k0;
    const uint64_t *bits;
    while (fl_walk_next(&w, &k0, &bits)) {
        const int64_t n = span_hi - k0 < KT ? span_hi - k0 : KT, n8 = up(n, 8);
        const float *kb = fl_tile(ktall, k0, D), *vb = fl_tile(vtall, k0, Dv);
        uint64_t lt = 0; /* a partial tile: the keys some live row sees */
        for (int64_t rb = 0; rb < nqp; rb += 8) {
            int live = 0, on[8];
            for (int64_t r = rb; r < rb + 8; r++)
                live |= on[r - rb] = hi[r] > k0 && lo[r] < k0 + n && (!bits || bits[r]);
            float *pb = P + rb * KT, *db = dS + rb * KT;
            if (!live) {
                memset(pb, 0, sizeof(float) * 8 * KT);
                memset(db, 0, sizeof(float) * 8 * KT);
                continue;
            }
            /* as in fwd_tile512: halves of 32 keys no live row sees are
             * not computed (P there becomes 0 through the mask, dS is
             * zeroed), dQ runs over [ka, ke) only */
            const uint64_t lb = fl_block_bits(bits, rb, on);
            lt |= lb;
            int64_t ka = 0, ke = n;
            if (bits) {
                ka = __builtin_ctzll(lb);
                ke = 64 - __builtin_clzll(lb);
                if (ke > n) ke = n;
            }
            for (int64_t c = 0; c < KT; c += 32) {
                if (!(lb >> c & 0xFFFFFFFFu)) {
                    for (int i = 0; i < 8; i++) memset(db + i * KT + c, 0, sizeof(float) * 32);
                    continue;
                }
                fl_k8x32(pb + c, KT, qs + rb * Dp, Dp, kb + c, KT, D, 0);
                if (want_ds) fl_k8x32(db + c, KT, dop + rb * Dvp, Dvp, vb + c, KT, Dv, 0);
            }
            for (int64_t r = rb; r < rb + 8; r++) {
                float *pr = P + r * KT, *dr = dS + r * KT;
                if (hi[r] <= k0 || lo[r] >= k0 + n || (bits && !bits[r])) {
                    memset(pr, 0, sizeof(float) * KT);
                    memset(dr, 0, sizeof(float) * KT);
                    continue;
                }
                const int64_t t = t0 + r;
                const float *brow = fl_bias_row(g, b, h, t);
                if (brow || g->slopes || lo[r] > k0 || hi[r] < k0 + KT)
                    fl_mask_row(g, h, t, pr, n, k0, lo[r], hi[r], brow);
                if (bits) fl_apply_bits(pr, bits[r]);
                const float *zr = NULL;
                if (g->p > 0.0f) {
                    fl_keep(g, (uint64_t)((bh * T + t) * S + k0), n, z);
                    for (int64_t s = n; s < KT; s++) z[s] = 0.0f;
                    zr = z;
                }
                fl_bwd_row512(pr, dr, fl_stat(gr->stats, bh * T + t), drow[r], zr, want_ds);
                if (gr->dl) {
                    const int64_t a = lo[r] - k0 > 0 ? lo[r] - k0 : 0;
                    const int64_t e = hi[r] - k0 < n ? hi[r] - k0 : n;
                    float *Lr = gr->dl + (bh * T + t) * S + k0;
                    for (int64_t s = a; s < e; s++) Lr[s] = dr[s];
                }
            }
            if (gr->dq) /* dQ += dS K (scaled at the end) */
                for (int64_t c = 0; c < Dp; c += 32)
                    fl_k8x32(dq + rb * Dp + c, Dp, db + ka, KT, kpall + (k0 + ka) * Dp + c, Dp,
                             ke - ka, 1);
        }
        for (int64_t i0 = 0; i0 < n8; i0 += 8) {
            if (bits && !(lt >> i0 & 0xFFu)) continue; /* P, dS: zero columns */
            if (gr->dv) /* dV += (P o Z)^T dO */
                for (int64_t c = 0; c < Dvp; c += 32)
                    fl_k8x32t(dva + (k0 + i0) * Dvp + c, Dvp, P + i0, KT, dop + c, Dvp, nqp);
            if (gr->dk) /* dK += dS^T (scale Q) */
                for (int64_t c = 0; c < Dp; c += 32)
                    fl_k8x32t(dka + (k0 + i0) * Dp + c, Dp, dS + i0, KT, qs + c, Dp, nqp);
        }
    }
    fl_bwd_end(g, gr, bh, t0, nq, dq);
}
#endif

/* dK, dV of kv head (b, kh) += the padded accumulators dka [S + KT, Dp],
 * dva [S + KT, Dvp] */
static void fl_add_kv_grads(const fl_geom *g, const fl_grads *gr, int64_t b, int64_t kh,
                            const float *dka, const float *dva) {
    const int64_t Dp = up(g->D, 32), Dvp = up(g->Dv, 32);
    for (int64_t s = 0; s < g->S; s++) {
        if (gr->dk) {
            float *dk = gr->dk + fl_koff(g, b, kh, s);
            for (int64_t d = 0; d < g->D; d++) dk[d] += dka[s * Dp + d];
        }
        if (gr->dv) {
            float *dv = gr->dv + fl_voff(g, b, kh, s);
            for (int64_t e = 0; e < g->Dv; e++) dv[e] += dva[s * Dvp + e];
        }
    }
}

attn_status attn__flash_sdpa_backward(attn_ctx *ctx, attn_node *node) {
    fl_geom g = fl_geometry(node);
    fl_grads gr;
    const int bias_i = node->iarg[2] ? 3 : -1;
    gr.dq = attn__needs_grad(node, 0) ? node->in[0]->grad + g.off[0] : NULL;
    gr.dk = attn__needs_grad(node, 1) ? node->in[1]->grad + g.off[1] : NULL;
    gr.dv = attn__needs_grad(node, 2) ? node->in[2]->grad + g.off[2] : NULL;
    float *db = bias_i >= 0 && attn__needs_grad(node, bias_i) ? node->in[bias_i]->grad : NULL;
    gr.out = attn_f32(node->out);
    gr.gy = node->out->grad;
    gr.stats = attn_f32(node->saved[0]);
    gr.dl = NULL;
    const size_t mark = attn__arena_mark(ctx); /* scratch only from here */
    attn_sparse_layout layout;
    if (fl_layout(ctx, node, &g, &layout, 0)) return ctx->status;
    if (db) {
        size_t n;
        if (attn__mul_size((size_t)(g.B * g.H * g.T), (size_t)g.S * sizeof(float), &n)) {
            attn__fail(ctx, ATTN_ERR_OOM, "flash_sdpa backward: bias gradient buffer overflows");
            return ctx->status;
        }
        gr.dl = attn__alloc_zero(ctx, n, "flash_sdpa backward (logits gradient for the bias)");
        if (!gr.dl) return ctx->status;
    }
    /* Work items: (unit, chunk). A unit (b, kv head g) with its G query heads
     * owns dK_g and dV_g. With fewer units than threads each unit's query
     * tiles are cut into `split` chunks, each accumulating dK, dV in its own
     * buffer (as many buffers as threads: the memory stays O(S D) per
     * thread), summed per unit in chunk order after the parallel part. The
     * chunking depends on the thread count, so the bits do too, in that case
     * only; for a given thread count they are always the same. */
    const int64_t units = g.B * g.Hkv, ntile = (g.T + QT - 1) / QT, tiles_u = g.G * ntile;
    const double work = 4.0 * (double)g.B * g.H * g.T * g.S * (double)(g.D + g.Dv);
    int nt = attn__threads_for(ctx, work);
    int64_t split = 1;
    if (units < nt) {
        split = (nt + units - 1) / units;
        if (split > tiles_u) split = tiles_u;
    }
    const int64_t items = units * split;
    if (nt > items) nt = (int)items;
    const int64_t Dp = up(g.D, 32), Dvp = up(g.Dv, 32), Sp = fl_sp(&g);
    const int64_t accsz = (g.S + KT) * (Dp + Dvp);
    const int64_t per = bwd_scratch(&g) - (split > 1 ? accsz : 0);
    float *ws = fl_scratch(ctx, nt, per, "flash_sdpa backward (tiles)");
    if (!ws) return ctx->status;
    float *accs = NULL;
    if (split > 1 && !(accs = fl_scratch(ctx, (int)items, accsz,
                                         "flash_sdpa backward (dK, dV per query chunk)")))
        return ctx->status;
#if defined(FL_X86)
    const int avx512 = __builtin_cpu_supports("avx512f") && !(ctx->kernel_flags & ATTN_KERNELS_PORTABLE);
#endif
    ATTN__OMP_FOR(nt)
    for (int64_t it = 0; it < items; it++) {
        const int64_t u = it / split, c = it % split, b = u / g.Hkv, kh = u % g.Hkv;
        float *w = ws + FL_TID() * per, *kt = w + bwd_tiles(&g), *vt = kt + g.D * Sp;
        float *kp = vt + g.Dv * Sp, *dka = split > 1 ? accs + it * accsz : kp + Sp * Dp;
        float *dva = dka + (g.S + KT) * Dp;
        fl_stage_bwd(&g, b, kh, kt, vt, kp);
        memset(dka, 0, sizeof(float) * (size_t)accsz);
        for (int64_t j = c * tiles_u / split; j < (c + 1) * tiles_u / split; j++) {
            const int64_t h = kh * g.G + j / ntile, t0 = (j % ntile) * QT;
            const int64_t nq = g.T - t0 < QT ? g.T - t0 : QT;
#if defined(FL_X86)
            if (avx512) {
                bwd_tile512(&g, &gr, b, h, t0, nq, w, kt, vt, kp, dka, dva);
                continue;
            }
#endif
            bwd_tile(&g, &gr, b, h, t0, nq, w, kt, vt, kp, dka, dva);
        }
        if (split == 1) fl_add_kv_grads(&g, &gr, b, kh, dka, dva);
    }
    for (int64_t it = 0; split > 1 && it < items; it++) {
        float *dka = accs + it * accsz;
        fl_add_kv_grads(&g, &gr, it / split / g.Hkv, it / split % g.Hkv, dka, dka + (g.S + KT) * Dp);
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

/* ---- weights from the saved statistics ---------------------------------------------------------- */

/* P [B,H,T,S] = exp(logit - m) / l at visible keys, 0 elsewhere (a zero row
 * for a query with no visible key, a NaN row for a NaN one). The logits come
 * from the forward's own tile products (fl_gemm on the same staged K^T tiles
 * and scaled q rows), so they are the forward's f32 values bit for bit on
 * the f32 path and m is one of them: P is exact to f32 rounding even where
 * |logit| is huge (a -1e9 mask bias on a whole row gives 1 / S). */
static int fl_weights(attn_ctx *ctx, const attn_node *node, float *P) {
    fl_geom g = fl_geometry(node);
    if (fl_widen(ctx, &g)) return -1;
    const float *stats = attn_f32(node->saved[0]);
    const int64_t T = g.T, S = g.S, D = g.D, Dp = up(D, 32), Sp = fl_sp(&g);
    const size_t mark = attn__arena_mark(ctx);
    float *kt = attn__alloc(ctx, sizeof(float) * (size_t)(Sp * D + QT * Dp + QT * KT),
                            "flash_sdpa weights (k tiles, q rows, logits)");
    if (!kt) return -1;
    float *qs = kt + Sp * D, *sc = qs + QT * Dp;
    for (int64_t b = 0; b < g.B; b++)
        for (int64_t h = 0; h < g.H; h++) {
            const int64_t bh = b * g.H + h;
            if (h % g.G == 0)
                fl_tr_tiles(kt, g.k + fl_koff(&g, b, h / g.G, 0), fl_key_limit(&g, b), D, g.ks[2],
                            Sp);
            for (int64_t t0 = 0; t0 < T; t0 += QT) {
                const int64_t nq = T - t0 < QT ? T - t0 : QT, nqp = up(nq, 8);
                fl_pad(qs, nqp, Dp, g.q + fl_qoff(&g, b, h, t0), nq, D, g.qs[2], g.scale);
                for (int64_t k0 = 0; k0 < S; k0 += KT) {
                    const int64_t n = S - k0 < KT ? S - k0 : KT;
                    fl_gemm(sc, KT, qs, Dp, fl_tile(kt, k0, D), KT, nqp, KT, D, 0);
                    for (int64_t r = 0; r < nq; r++) {
                        const int64_t t = t0 + r;
                        const float *st = fl_stat(stats, bh * T + t);
                        const float *br = fl_bias_row(&g, b, h, t);
                        float *pr = P + (bh * T + t) * S + k0;
                        int64_t lo, hi;
                        fl_range(&g, b, t, &lo, &hi);
                        for (int64_t s = 0; s < n; s++) {
                            const int64_t key = k0 + s;
                            if (key < lo || key >= hi || st[0] == -INFINITY ||
                                (g.sp && !attn_sparse_visible(g.sp, h, T, S, t, key))) {
                                pr[s] = 0.0f;
                                continue;
                            }
                            float x = sc[r * KT + s];
                            if (g.slopes)
                                x += br ? sdpa_alibi(g.slopes[h], t + S - T, key) + br[key * g.bst[3]]
                                        : sdpa_alibi(g.slopes[h], t + S - T, key);
                            else if (br)
                                x += br[key * g.bst[3]];
                            pr[s] = (float)(exp((double)(x - st[0])) * (double)st[1]);
                        }
                    }
                }
            }
        }
    attn__arena_rewind(ctx, mark);
    return 0;
}

/* ---- builder ----------------------------------------------------------------------------------- */

/* Checks the options against [B, H, T, S], builds the FLASH_SDPA node over
 * qkv3 (and the optional inputs) with an output of shape ysh and the row
 * statistics [B, H, T, 2], runs it and recovers the weights on request.
 * packed: qkv3 holds the packed projection three times (iarg[5..7], the
 * layout of sdpa.c). */
static attn_tensor *flash_build(attn_ctx *ctx, const char *name, attn_tensor *const *qkv3,
                                const int64_t *ysh, int yndim, int64_t B, int64_t H, int64_t Hkv,
                                int64_t T, int64_t S, int64_t D, int packed,
                                const attn_sdpa_opts *opts, attn_tensor **weights) {
    const int64_t osh[4] = {B, H, T, S};
    attn_sdpa_opts o;
    if (sdpa_check_opts(ctx, name, qkv3[0], qkv3[1], osh, opts, &o)) return NULL;
    attn_tensor *in[6] = {qkv3[0], qkv3[1], qkv3[2], NULL, NULL, NULL};
    int n_in = 3;
    if (sdpa_opt_inputs(ctx, &o, in, &n_in)) return NULL;
    const int64_t ssh[4] = {B, H, T, 2};
    attn_tensor *out = attn__tensor(ctx, name, ATTN_F32, yndim, ysh);
    attn_tensor *stats = out ? attn__tensor(ctx, name, ATTN_F32, 4, ssh) : NULL;
    if (!stats) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_FLASH_SDPA, n_in, in, out);
    if (!node) return NULL;
    /* the SDPA op's attributes and dropout counters */
    sdpa_node_attrs(ctx, node, &o, D, (uint64_t)B * (uint64_t)H * (uint64_t)T * (uint64_t)S);
    node->iarg[5] = packed != 0;
    node->iarg[6] = H;
    node->iarg[7] = Hkv;
    node->saved[0] = stats;
    if (sdpa_save_sparse(ctx, name, node, o.sparse)) return NULL;
    if (o.sparse) { /* the forward's tile layout, for the backward (fl_layout) */
        const int64_t nl = (int64_t)((sizeof(attn_sparse_layout) + 3) / 4);
        if (!(node->saved[2] = attn__tensor(ctx, name, ATTN_I32, 1, &nl))) return NULL;
        memset(node->saved[2]->data, 0, sizeof(attn_sparse_layout));
    }
    attn_tensor *y = attn__run(ctx, node);
    if (y && weights) {
        attn_tensor *w = attn__tensor(ctx, name, ATTN_F32, 4, osh);
        if (!w) return NULL;
        if (fl_weights(ctx, node, attn_f32(w))) return NULL;
        *weights = w;
    }
    return y;
}

attn_tensor *attn_flash_sdpa(attn_ctx *ctx, attn_tensor *q, attn_tensor *k, attn_tensor *v,
                             const attn_sdpa_opts *opts, attn_tensor **weights) {
    static const char name[] = "flash_sdpa";
    if (weights) *weights = NULL;
    if (sdpa_check_qkv(ctx, name, q, k, v, 1)) return NULL;
    if (q->dtype == ATTN_BF16 && ctx->grad_enabled &&
        (q->requires_grad || k->requires_grad || v->requires_grad)) {
        attn__fail(ctx, ATTN_ERR_DTYPE,
                   "flash_sdpa: q %s, k %s, v %s are bf16 and need gradients: the bf16 path is "
                   "forward only (inference); pass f32 tensors to train",
                   attn__shp(q), attn__shp(k), attn__shp(v));
        return NULL;
    }
    const int64_t B = q->shape[0], H = q->shape[1], T = q->shape[2], D = q->shape[3];
    const int64_t Hkv = k->shape[1], S = k->shape[2], Dv = v->shape[3];
    attn_tensor *in[3];
    if (!(in[0] = attn__contig(ctx, q)) || !(in[1] = attn__contig(ctx, k)) ||
        !(in[2] = attn__contig(ctx, v)))
        return NULL;
    const int64_t ysh[4] = {B, H, T, Dv};
    return flash_build(ctx, name, in, ysh, 4, B, H, Hkv, T, S, D, 0, opts, weights);
}

attn_tensor *attn__flash_sdpa_packed(attn_ctx *ctx, attn_tensor *qkv, int64_t H, int64_t Hkv,
                                     const attn_sdpa_opts *opts, attn_tensor **weights) {
    static const char name[] = "flash_sdpa (packed)";
    if (weights) *weights = NULL;
    if (!(qkv = sdpa_check_packed(ctx, name, qkv, H, Hkv))) return NULL;
    const int64_t B = qkv->shape[0], T = qkv->shape[1], D = qkv->shape[2] / (H + 2 * Hkv);
    attn_tensor *in[3] = {qkv, qkv, qkv};
    const int64_t ysh[3] = {B, T, H * D};
    return flash_build(ctx, name, in, ysh, 3, B, H, Hkv, T, T, D, 1, opts, weights);
}

