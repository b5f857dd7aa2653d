/* gemm_small.c: the direct AVX-512 kernel for small products.
 *
 * C = alpha * op(A) op(B) + beta * C without packing op(A): each row block
 * of C keeps its accumulators in registers while k runs, op(A)'s elements
 * are broadcast from where they are (a row of A, or a column when A is
 * transposed), and op(B)'s rows are loaded from B itself (NN, TN) or from a
 * transposed copy of at most K x 64 floats (NT, TT). It serves the products
 * that OpenBLAS pays a call's fixed cost on: the per-head products of the
 * reference attention at short contexts (64 x 64 x 16 in a d64 GPT step,
 * about 4 microseconds each through OpenBLAS from a training step's caches)
 * and the like. attn__sgemm decides when (docs/design.md, "Matrix
 * products"); the rule is in attn__sgemm_small_fits.
 *
 * Each element of C is one FMA chain over k = 0..K-1 in order, then
 * alpha * sum (+ beta * C when beta != 0; C is not read when beta == 0,
 * as in BLAS). The result does not depend on the thread or the block a row
 * falls in, so a product gives the same bits however it is called.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SM_X86 1
#else
#define SM_X86 0
#endif

enum {
    SM_PANEL = 64,  /* columns of C per panel (4 vectors of 16) */
    SM_MAX_K = 256, /* op(B)'s panel or its transposed copy, K x 64 floats, fits L2 */
};

/* Where the direct kernel is used: measured against OpenBLAS 0.3.21's
 * SkylakeX kernels on an Ice Lake Xeon, one thread, every trans case over
 * M 16-8192, N 16-1024, K 16-1024 (docs/design.md, "Matrix products";
 * `bench_matmul --short-k`). It wins by 1.1-1.6x (1.3-1.9x in a first
 * sweep) where op(A) is read once or a few times (M K <= 2^18 floats,
 * N <= 256) and K is short, ties within 8% on the mid sizes where
 * OpenBLAS is at its best, and loses where the transposed copy of op(B)
 * is not paid back by enough rows (NT with M < 64 and K > 16), where op(A)
 * is re-read too often (N > 256 with large M K), on 16-column TN products
 * of many rows, and on TT (not served). */
int attn__sgemm_small_fits(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K) {
    if (M <= 0 || N <= 0 || K <= 0 || K > SM_MAX_K || N > 256) return 0;
    if ((double)M * (double)K > (double)(1 << 18)) return 0;
    if (trans_a && trans_b) return 0;
    if (trans_b && M < 64 && K > 16) return 0;
    if (trans_a && N <= 16 && M > 64) return 0;
    return 1;
}

#if SM_X86

static int sm_cpu_ok(void) {
    static atomic_int ok = -1; /* every thread that finds -1 stores the same value */
    int v = atomic_load_explicit(&ok, memory_order_relaxed);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512f") ? 1 : 0;
        atomic_store_explicit(&ok, v, memory_order_relaxed);
    }
    return v;
}

/* One block of MR rows x NR vectors of C. a points at op(A)[i, 0]: element
 * (r, k) is a[r * a_rs + k * a_ks]. Row k of op(B) starts at b + k * ldb;
 * its last vector is loaded under `tail` (zeros beyond N). */
#define SM_BLOCK(MR, NR)                                                                           \
    __attribute__((target("avx512f"), noinline)) static void sm_block_##MR##x##NR(                 \
        int64_t K, const float *a, int64_t a_rs, int64_t a_ks, const float *b, int64_t ldb,      \
        __mmask16 tail, float *c, int64_t ldc, float alpha, float beta) {                         \
        __m512 acc[MR][NR];                                                                        \
        _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++)                                      \
            _Pragma("GCC unroll 4") for (int v = 0; v < NR; v++) acc[r][v] = _mm512_setzero_ps(); \
        for (int64_t k = 0; k < K; k++) {                                                          \
            const float *bk = b + k * ldb, *ak = a + k * a_ks;                                     \
            __m512 bv[NR];                                                                         \
            _Pragma("GCC unroll 4") for (int v = 0; v < NR - 1; v++) bv[v] =                      \
                _mm512_loadu_ps(bk + 16 * v);                                                      \
            bv[NR - 1] = _mm512_maskz_loadu_ps(tail, bk + 16 * (NR - 1));                          \
            _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++) {                                \
                const __m512 av = _mm512_set1_ps(ak[r * a_rs]);                                    \
                _Pragma("GCC unroll 4") for (int v = 0; v < NR; v++) acc[r][v] =                  \
                    _mm512_fmadd_ps(av, bv[v], acc[r][v]);                                         \
            }                                                                                      \
        }                                                                                          \
        const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);                        \
        _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++) {                                    \
            float *cr = c + r * ldc;                                                               \
            _Pragma("GCC unroll 4") for (int v = 0; v < NR; v++) {                                \
                const __mmask16 m = v == NR - 1 ? tail : (__mmask16)0xFFFF;                        \
                __m512 t = _mm512_mul_ps(va, acc[r][v]);                                           \
                if (beta != 0.0f)                                                                  \
                    t = _mm512_add_ps(t, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m, cr + 16 * v))); \
                _mm512_mask_storeu_ps(cr + 16 * v, m, t);                                          \
            }                                                                                      \
        }                                                                                          \
    }

/* The row blocks: MR x NR accumulators within the 32 registers, with room
 * for the NR loaded vectors and one broadcast. Two families: where op(A)'s
 * rows are A's columns (TN: a row block's broadcasts are adjacent floats)
 * the blocks are tall, up to 16 rows, for enough independent FMA chains at
 * one vector per row; where they are A's rows (NN: one address register
 * per row) at most 8 rows, as more would spill the addresses. */
SM_BLOCK(16, 1)
SM_BLOCK(12, 2)
SM_BLOCK(8, 1)
SM_BLOCK(8, 2)
SM_BLOCK(8, 3)
SM_BLOCK(7, 3)
SM_BLOCK(6, 4)
SM_BLOCK(4, 1)
SM_BLOCK(4, 2)
SM_BLOCK(4, 3)
SM_BLOCK(4, 4)
SM_BLOCK(1, 1)
SM_BLOCK(1, 2)
SM_BLOCK(1, 3)
SM_BLOCK(1, 4)

typedef void (*sm_block_fn)(int64_t, const float *, int64_t, int64_t, const float *, int64_t,
                            __mmask16, float *, int64_t, float, float);

typedef struct sm_blocks {
    int mr;
    sm_block_fn big, four, one;
} sm_blocks;

static const sm_blocks SM_ROWS_STRIDED[4] = {
    {8, sm_block_8x1, sm_block_4x1, sm_block_1x1},
    {8, sm_block_8x2, sm_block_4x2, sm_block_1x2},
    {7, sm_block_7x3, sm_block_4x3, sm_block_1x3},
    {6, sm_block_6x4, sm_block_4x4, sm_block_1x4},
};
static const sm_blocks SM_ROWS_ADJACENT[4] = {
    {16, sm_block_16x1, sm_block_4x1, sm_block_1x1},
    {12, sm_block_12x2, sm_block_4x2, sm_block_1x2},
    {8, sm_block_8x3, sm_block_4x3, sm_block_1x3},
    {6, sm_block_6x4, sm_block_4x4, sm_block_1x4},
};

/* dst[k * SM_PANEL + j] = src[j * lds + k] for j < n, k < K; zeros for
 * n <= j < round16(n). Row k of the panel is gathered 16 columns at a time
 * (one gather per 16 floats, contiguous stores) where the offsets fit in
 * 32 bits, else copied element by element. */
__attribute__((target("avx512f"))) static void sm_transpose(float *dst, const float *src,
                                                             int64_t lds, int64_t n, int64_t K) {
    const int64_t nw = (n + 15) & ~(int64_t)15;
    if ((double)nw * (double)lds + (double)K >= 2147483647.0) {
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = n; j < nw; j++) dst[k * SM_PANEL + j] = 0.0f;
        for (int64_t j = 0; j < n; j++) {
            const float *s = src + j * lds;
            for (int64_t k = 0; k < K; k++) dst[k * SM_PANEL + j] = s[k];
        }
        return;
    }
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i idx = _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)lds));
    for (int64_t j0 = 0; j0 < n; j0 += 16) {
        const int64_t rem = n - j0 < 16 ? n - j0 : 16;
        const __mmask16 m = (__mmask16)(rem == 16 ? 0xFFFF : (1u << rem) - 1u);
        const float *base = src + j0 * lds;
        for (int64_t k = 0; k < K; k++)
            _mm512_store_ps(dst + k * SM_PANEL + j0,
                            _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, base + k, 4));
    }
}

int attn__sgemm_direct(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                       float *C, int64_t ldc) {
    if (M <= 0 || N <= 0 || K <= 0 || !sm_cpu_ok()) return 0;
    float *bt = NULL;
    int owned = 0;
    if (trans_b) { /* the calling thread's packing space (64-byte aligned) */
        bt = attn__gemm_scratch((size_t)K * SM_PANEL, &owned);
        if (!bt) return 0;
    }
    const int64_t a_rs = trans_a ? 1 : lda, a_ks = trans_a ? lda : 1;
    for (int64_t j0 = 0; j0 < N; j0 += SM_PANEL) {
        const int64_t n = N - j0 < SM_PANEL ? N - j0 : SM_PANEL;
        const int nv = (int)((n + 15) / 16);
        const int rem = (int)(n - 16 * (nv - 1));
        const __mmask16 tail = (__mmask16)(rem == 16 ? 0xFFFF : (1u << rem) - 1u);
        const float *bp;
        int64_t ldbp;
        if (trans_b) { /* op(B)[k, j] = B[j * ldb + k] */
            sm_transpose(bt, B + j0 * ldb, ldb, n, K);
            bp = bt;
            ldbp = SM_PANEL;
        } else {
            bp = B + j0;
            ldbp = ldb;
        }
        const sm_blocks *blk = trans_a ? &SM_ROWS_ADJACENT[nv - 1] : &SM_ROWS_STRIDED[nv - 1];
        const int mr = blk->mr;
        int64_t i = 0;
        for (; i + mr <= M; i += mr)
            blk->big(K, A + i * a_rs, a_rs, a_ks, bp, ldbp, tail, C + i * ldc + j0, ldc, alpha,
                     beta);
        for (; i + 4 <= M; i += 4)
            blk->four(K, A + i * a_rs, a_rs, a_ks, bp, ldbp, tail, C + i * ldc + j0, ldc, alpha,
                      beta);
        for (; i < M; i++)
            blk->one(K, A + i * a_rs, a_rs, a_ks, bp, ldbp, tail, C + i * ldc + j0, ldc, alpha,
                     beta);
    }
    if (owned) free(bt);
    return 1;
}

#else /* not x86: the other kernels serve every product */

int attn__sgemm_direct(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                       float *C, int64_t ldc) {
    (void)trans_a, (void)trans_b, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda;
    (void)B, (void)ldb, (void)beta, (void)C, (void)ldc;
    return 0;
}

#endif

int attn__sgemm_small(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc) {
    if (!attn__sgemm_small_fits(trans_a, trans_b, M, N, K)) return 0;
    return attn__sgemm_direct(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
