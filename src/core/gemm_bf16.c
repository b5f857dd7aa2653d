/* gemm_bf16.c: matrix products with bf16 inputs and f32 accumulation, the
 * products of mixed-precision training and inference (attn_ctx_set_precision,
 * context.h; docs/mixed_precision.md).
 *
 * Contract: C = alpha * rb(op(A)) rb(op(B)) + beta * C with the interface of
 * attn__sgemm, where rb rounds every element to bfloat16 (round to nearest
 * even; NaN stays NaN, values beyond the largest bf16 become +-inf, as
 * torch's .to(torch.bfloat16)). A product of two bf16 numbers is exact in
 * f32, so the only error against the f32 product of the rounded inputs is
 * the order of the f32 sums; against the unrounded inputs each product has a
 * relative error of at most 2 * 2^-8 (docs/mixed_precision.md, "Error bound").
 *
 * Kernels:
 *   - AMX (TDPBF16PS), on CPUs with AMX-BF16 whose kernel lets the process
 *     use the tile state: op(A) is packed into 16 x 32 bf16 tiles (16 rows,
 *     32 consecutive k), op(B) into 16 x 16 pair tiles (16 pairs of k, 16
 *     columns, the two bf16 of a pair side by side), each tile a contiguous
 *     1 KiB block, zero padded to whole tiles. A 32 x 32 block of C is four
 *     accumulator tiles (tiles 0-3), two A tiles (4, 5) and two B tiles
 *     (6, 7) per 32 k; blocks are independent jobs for the threads. Each
 *     element of C is summed in the same order whatever the thread count.
 *   - elsewhere: the inputs rounded to bf16 (kept as floats) into scratch and
 *     the f32 product attn__sgemm, which gives the same numbers up to the
 *     order of the sums.
 *   - the reference: rounded inputs, a triple loop in double.
 */
#define _GNU_SOURCE /* syscall(), for the AMX permission */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "vmath.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

/* ---- rounding ------------------------------------------------------------------ */

static inline uint16_t bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

float attn__bf16_round(float x) {
    const uint32_t u = (uint32_t)bf16_bits(x) << 16;
    float y;
    memcpy(&y, &u, sizeof y);
    return y;
}

/* Element (i, p) of op(A) (M x K) and (p, j) of op(B) (K x N). */
static inline float op_a(int ta, const float *A, int64_t lda, int64_t i, int64_t p) {
    return ta ? A[p * lda + i] : A[i * lda + p];
}
static inline float op_b(int tb, const float *B, int64_t ldb, int64_t p, int64_t j) {
    return tb ? B[j * ldb + p] : B[p * ldb + j];
}

static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
}

void attn__sgemm_bf16_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                          const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                          float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0.0;
            for (int64_t p = 0; p < K; p++)
                s += (double)attn__bf16_round(op_a(trans_a, A, lda, i, p)) *
                     (double)attn__bf16_round(op_b(trans_b, B, ldb, p, j));
            const float prev = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
            C[i * ldc + j] = (float)((double)alpha * s) + prev;
        }
}

/* ---- the portable path: round, then the f32 product ---------------------------- */

static int gemm_rounded(int n_threads, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                        float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                        float beta, float *C, int64_t ldc) {
    float *ra = malloc(sizeof(float) * (size_t)(M * K));
    float *rbm = malloc(sizeof(float) * (size_t)(K * N));
    if (!ra || !rbm) {
        free(ra);
        free(rbm);
        return -1;
    }
    for (int64_t i = 0; i < M; i++)
        for (int64_t p = 0; p < K; p++) ra[i * K + p] = attn__bf16_round(op_a(trans_a, A, lda, i, p));
    for (int64_t p = 0; p < K; p++)
        for (int64_t j = 0; j < N; j++) rbm[p * N + j] = attn__bf16_round(op_b(trans_b, B, ldb, p, j));
    attn__sgemm(n_threads, 0, 0, M, N, K, alpha, ra, K, rbm, N, beta, C, ldc);
    free(ra);
    free(rbm);
    return 0;
}

/* ---- AMX ------------------------------------------------------------------------ */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define ATTN__HAVE_AMX 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define GBAMX __attribute__((target("avx512f,avx512bf16,amx-tile,amx-bf16")))

typedef struct gb_tilecfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} gb_tilecfg;

int attn__amx_usable(void) {
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

/* 16 floats rounded to bf16 (the rule of bf16_bits), in the low 16 bits of
 * each 32-bit lane. */
GBAMX static inline __m512i round16(__m512 x) {
    const __m512i u = _mm512_castps_si512(x);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb), 16);
    const __m512i mag = _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF));
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(mag, _mm512_set1_epi32(0x7F800000));
    const __m512i qnan = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    return _mm512_mask_mov_epi32(r, nan, qnan);
}

/* n (<= 16) consecutive floats from p, the rest 0. */
GBAMX static inline __m512 load_n(const float *p, int64_t n) {
    if (n >= 16) return _mm512_loadu_ps(p);
    if (n <= 0) return _mm512_setzero_ps();
    return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p);
}

/* dst[j][i] = src[i][j], 16 x 16 32-bit words: 4 x 4 transposes inside the
 * 128-bit lanes (two rounds of unpacks), then the lanes moved into place
 * (two rounds of shuffle_i32x4); 64 shuffles for 256 words. */
GBAMX static inline void transpose16(const uint32_t *restrict src, uint32_t *restrict dst) {
    __m512i r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512(src + 16 * i);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    /* u[4g + j]: rows 4g..4g+3 at column 4l + j in lane l */
    for (int g = 0; g < 4; g++) {
        const __m512i *a = t + 4 * g;
        r[4 * g + 0] = _mm512_unpacklo_epi64(a[0], a[2]);
        r[4 * g + 1] = _mm512_unpackhi_epi64(a[0], a[2]);
        r[4 * g + 2] = _mm512_unpacklo_epi64(a[1], a[3]);
        r[4 * g + 3] = _mm512_unpackhi_epi64(a[1], a[3]);
    }
    for (int j = 0; j < 4; j++) {
        const __m512i v = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x88);
        const __m512i w = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xDD);
        const __m512i v2 = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x88);
        const __m512i w2 = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xDD);
        _mm512_storeu_si512(dst + 16 * j, _mm512_shuffle_i32x4(v, v2, 0x88));
        _mm512_storeu_si512(dst + 16 * (8 + j), _mm512_shuffle_i32x4(v, v2, 0xDD));
        _mm512_storeu_si512(dst + 16 * (4 + j), _mm512_shuffle_i32x4(w, w2, 0x88));
        _mm512_storeu_si512(dst + 16 * (12 + j), _mm512_shuffle_i32x4(w, w2, 0xDD));
    }
}

/* Packed op(A): tile (r, c) of rows [16 r, 16 r + 16) and k [32 c, 32 c + 32)
 * at ap + (r * kc + c) * 512 (uint16), row-major 16 x 32; kc = Kp / 32. */
GBAMX static void pack_a(int ta, const float *A, int64_t lda, int64_t M, int64_t K, int64_t Mp,
                         int64_t Kp, uint16_t *ap, int nt) {
    const int64_t kc = Kp / 32, mt = Mp / 16;
    (void)nt;
    if (!ta) { /* rows of A are rows of op(A): each read from start to end */
        ATTN__OMP_FOR(nt)
        for (int64_t r = 0; r < mt; r++)
            for (int64_t i = 0; i < 16; i++) {
                const int64_t row = 16 * r + i;
                for (int64_t c = 0; c < kc; c++) {
                    uint16_t *t = ap + (r * kc + c) * 512 + i * 32;
                    const int64_t k0 = 32 * c, nk = K - k0 < 32 ? K - k0 : 32;
                    __m512i lo = _mm512_setzero_si512(), hi = lo;
                    if (row < M) {
                        lo = round16(load_n(A + row * lda + k0, nk));
                        hi = round16(load_n(A + row * lda + k0 + 16, nk - 16));
                    }
                    _mm256_storeu_si256((__m256i *)t, _mm512_cvtepi32_epi16(lo));
                    _mm256_storeu_si256((__m256i *)(t + 16), _mm512_cvtepi32_epi16(hi));
                }
            }
        return;
    }
    /* Row k of A holds op(A)'s column k. The 32 rows of one k block are
     * read together, across all columns (a few pages at a time: walking one
     * 16-column strip down all K rows touched a new page per row); pairs of
     * rows k, k + 1 (16 columns i each) are interleaved and transposed into
     * the tile's rows. */
    ATTN__OMP_FOR(nt)
    for (int64_t c = 0; c < kc; c++) {
        const int64_t k0 = 32 * c, nk = K - k0 < 32 ? K - k0 : 32;
        for (int64_t r = 0; r < mt; r++) {
            uint16_t *t = ap + (r * kc + c) * 512;
            const int64_t i0 = 16 * r, ni = M - i0 < 16 ? M - i0 : 16;
            uint32_t pq[16 * 16];
            for (int64_t q = 0; q < 16; q++) {
                __m512i lo = _mm512_setzero_si512(), hi = lo;
                if (2 * q < nk) lo = round16(load_n(A + (k0 + 2 * q) * lda + i0, ni));
                if (2 * q + 1 < nk) hi = round16(load_n(A + (k0 + 2 * q + 1) * lda + i0, ni));
                _mm512_storeu_si512(pq + q * 16, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
            }
            transpose16(pq, (uint32_t *)t);
        }
    }
}

/* Packed op(B): tile (s, c) of columns [16 s, 16 s + 16) and k [32 c, 32 c + 32)
 * at bp + (s * kc + c) * 256 (uint32 pairs): row q (k pair 32 c + 2 q, + 1)
 * holds 16 columns, element j = bf16(B[k][j]) | bf16(B[k + 1][j]) << 16. */
GBAMX static void pack_b(int tb, const float *B, int64_t ldb, int64_t K, int64_t N, int64_t Np,
                         int64_t Kp, uint32_t *bp, int nt) {
    const int64_t kc = Kp / 32, nt16 = Np / 16;
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t s = 0; s < nt16; s++)
        for (int64_t c = 0; c < kc; c++) {
            uint32_t *t = bp + (s * kc + c) * 256;
            const int64_t j0 = 16 * s, nj = N - j0 < 16 ? N - j0 : 16;
            const int64_t k0 = 32 * c, nk = K - k0 < 32 ? K - k0 : 32;
            if (!tb) { /* rows k and k + 1 of B, 16 columns each */
                for (int64_t q = 0; q < 16; q++) {
                    const int64_t k = k0 + 2 * q;
                    __m512i lo = _mm512_setzero_si512(), hi = lo;
                    if (2 * q < nk) lo = round16(load_n(B + k * ldb + j0, nj));
                    if (2 * q + 1 < nk) hi = round16(load_n(B + (k + 1) * ldb + j0, nj));
                    _mm512_storeu_si512(t + q * 16, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
                }
            } else { /* row j of B holds op(B)'s column j: 32 k at a time, whose
                      * bf16 pairs are the 16 entries of the tile's column j */
                uint32_t jq[16 * 16];
                for (int64_t j = 0; j < 16; j++) {
                    __m256i lo = _mm256_setzero_si256(), hi = lo;
                    if (j < nj) {
                        lo = _mm512_cvtepi32_epi16(round16(load_n(B + (j0 + j) * ldb + k0, nk)));
                        hi = _mm512_cvtepi32_epi16(round16(load_n(B + (j0 + j) * ldb + k0 + 16, nk - 16)));
                    }
                    _mm256_storeu_si256((__m256i *)(jq + j * 16), lo);
                    _mm256_storeu_si256((__m256i *)(jq + j * 16 + 8), hi);
                }
                transpose16(jq, t);
            }
        }
}

/* One 32 x 32 block of C (rows 32 ib.., columns 32 jb..). */
/* act(v) over the rows [i0, i0 + mi) x columns [j0, j0 + nj) of C, in place
 * (through a copy of each row: the span reads restrict-qualified input). */
GBAMX static void block_act(float *C, int64_t ldc, int64_t i0, int64_t j0, int64_t mi,
                            int64_t nj, int act) {
    if (act != 1) return;
    float row[32];
    for (int64_t i = 0; i < mi; i++) {
        float *c = C + (i0 + i) * ldc + j0;
        if (nj == 32) { /* constant sizes: the copy and both loops unroll */
            memcpy(row, c, sizeof row);
            attn__gelu_erf_span(c, row, 32);
        } else {
            memcpy(row, c, (size_t)nj * sizeof *row);
            attn__gelu_erf_span(c, row, nj);
        }
    }
}

/* One 32 x 32 block of C (rows 32 ib.., columns 32 jb..). With bias (then
 * alpha is 1 and beta 0) the sums start from bias[j] on every row, as a
 * product with beta 1 over C filled with the bias does; act 1 applies the
 * exact GELU to the finished block while it is in L1. */
GBAMX static void amx_block(const uint16_t *ap, const uint32_t *bp, int64_t kc, int64_t ib,
                            int64_t jb, int64_t M, int64_t N, float alpha, float beta, float *C,
                            int64_t ldc, int two_rows, int two_cols, const float *bias, int act) {
    float buf[32 * 32];
    const uint16_t *a0 = ap + (2 * ib) * kc * 512, *a1 = a0 + kc * 512;
    const uint32_t *b0 = bp + (2 * jb) * kc * 256, *b1 = b0 + kc * 256;
    const int64_t i0 = 32 * ib, j0 = 32 * jb;
    /* A whole block with alpha 1 and beta 0 or 1 (every product op's call)
     * goes straight between C and the tiles: reading back a tile store with
     * vector loads stalls. beta 1 starts the sums from C (C + p_1 + ... +
     * p_K instead of C + (p_1 + ... + p_K): the same error bound). */
    const int direct = i0 + 32 <= M && j0 + 32 <= N && alpha == 1.0f && (beta == 0.0f || beta == 1.0f);
    float *c00 = C + i0 * ldc + j0;
    const long ldcb = (long)(ldc * 4);
    if (direct && bias) { /* stride 0: every row of the tile is the bias */
        _tile_loadd(0, bias + j0, 0);
        _tile_loadd(1, bias + j0 + 16, 0);
        _tile_loadd(2, bias + j0, 0);
        _tile_loadd(3, bias + j0 + 16, 0);
    } else if (direct && beta == 1.0f) {
        _tile_loadd(0, c00, ldcb);
        _tile_loadd(1, c00 + 16, ldcb);
        _tile_loadd(2, c00 + 16 * ldc, ldcb);
        _tile_loadd(3, c00 + 16 * ldc + 16, ldcb);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    for (int64_t c = 0; c < kc; c++) {
        _tile_loadd(4, a0 + c * 512, 64);
        _tile_loadd(6, b0 + c * 256, 64);
        _tile_dpbf16ps(0, 4, 6);
        if (two_cols) {
            _tile_loadd(7, b1 + c * 256, 64);
            _tile_dpbf16ps(1, 4, 7);
        }
        if (two_rows) {
            _tile_loadd(5, a1 + c * 512, 64);
            _tile_dpbf16ps(2, 5, 6);
            if (two_cols) _tile_dpbf16ps(3, 5, 7);
        }
    }
    if (direct) {
        _tile_stored(0, c00, ldcb);
        _tile_stored(1, c00 + 16, ldcb);
        _tile_stored(2, c00 + 16 * ldc, ldcb);
        _tile_stored(3, c00 + 16 * ldc + 16, ldcb);
        return; /* act: by the caller, one block later (see amx_blocks) */
    }
    _tile_stored(0, buf, 128);
    if (two_cols) _tile_stored(1, buf + 16, 128);
    if (two_rows) _tile_stored(2, buf + 16 * 32, 128);
    if (two_rows && two_cols) _tile_stored(3, buf + 16 * 32 + 16, 128);
    const int64_t mi = M - i0 < 32 ? M - i0 : 32, nj = N - j0 < 32 ? N - j0 : 32;
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int64_t i = 0; i < mi; i++) {
        float *c = C + (i0 + i) * ldc + j0;
        const float *s = buf + i * 32;
        for (int64_t j = 0; j < nj; j += 16) {
            const int64_t n = nj - j < 16 ? nj - j : 16;
            const __mmask16 m = (__mmask16)(n == 16 ? 0xFFFFu : (1u << n) - 1u);
            __m512 r = _mm512_mul_ps(va, _mm512_loadu_ps(s + j));
            if (bias) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, bias + j0 + j));
            else if (beta != 0.0f) r = _mm512_add_ps(r, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m, c + j)));
            _mm512_mask_storeu_ps(c + j, m, r);
        }
    }
    (void)act;
}

GBAMX static void amx_blocks(const uint16_t *ap, const uint32_t *bp, int64_t kc, int64_t M,
                             int64_t N, int64_t mb, int64_t nb, int64_t j0, int64_t j1, float alpha,
                             float beta, float *C, int64_t ldc, const float *bias, int act) {
    gb_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) cfg.colsb[i] = 64, cfg.rows[i] = 16;
    _tile_loadconfig(&cfg);
    for (int64_t job = j0; job < j1; job++) {
        const int64_t jb = job / mb, ib = job % mb; /* rows fastest: B's panel stays warm */
        amx_block(ap, bp, kc, ib, jb, M, N, alpha, beta, C, ldc, 32 * ib + 16 < M,
                  32 * jb + 16 < N, bias, act);
        /* The activation of the previous block: read right after the tile
         * stores, a block's values stall the vector loads (store forwarding
         * from tiles fails); one block later they are in L1 and settled. */
        if (act && job > j0) {
            const int64_t pj = (job - 1) / mb, pi = (job - 1) % mb;
            block_act(C, ldc, 32 * pi, 32 * pj, M - 32 * pi < 32 ? M - 32 * pi : 32,
                      N - 32 * pj < 32 ? N - 32 * pj : 32, act);
        }
    }
    if (act && j1 > j0) {
        const int64_t pj = (j1 - 1) / mb, pi = (j1 - 1) % mb;
        block_act(C, ldc, 32 * pi, 32 * pj, M - 32 * pi < 32 ? M - 32 * pi : 32,
                  N - 32 * pj < 32 ? N - 32 * pj : 32, act);
    }
    (void)nb;
    _tile_release();
    /* GCC does not clear the upper halves of the vector registers after a
     * function with tile instructions: without this, every later SSE
     * instruction of the thread (glibc's expf callers, scalar float code)
     * paid the AVX-SSE transition (measured: the GPT step's cross-entropy
     * took 30x longer after a bf16 product). */
    _mm256_zeroupper();
}

/* bpre: op(B) already packed (attn__bf16_pack_b), or NULL. */
static int gemm_amx(int n_threads, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                    float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                    float beta, float *C, int64_t ldc, const float *bias, int act,
                    const uint32_t *bpre) {
    const int64_t Mp = (M + 31) / 32 * 32, Np = (N + 31) / 32 * 32, Kp = (K + 31) / 32 * 32;
    const int64_t kc = Kp / 32, mb = Mp / 32, nb = Np / 32, jobs = mb * nb;
    int owned = 0; /* A's tiles, then B's (both whole multiples of 64 bytes) */
    float *space = attn__gemm_scratch((size_t)((Mp + (bpre ? 0 : Np)) * Kp / 2), &owned);
    if (!space) return -1;
    uint16_t *ap = (uint16_t *)space;
    uint32_t *bp = bpre ? (uint32_t *)bpre : (uint32_t *)(space + Mp * Kp / 2);
    int nt = n_threads < 1 ? 1 : n_threads;
#if !defined(_OPENMP)
    nt = 1;
#endif
    if ((int64_t)nt > jobs) nt = (int)jobs;
    pack_a(trans_a, A, lda, M, K, Mp, Kp, ap, nt);
    if (!bpre) pack_b(trans_b, B, ldb, K, N, Np, Kp, bp, nt);
    if (nt == 1) {
        amx_blocks(ap, bp, kc, M, N, mb, nb, 0, jobs, alpha, beta, C, ldc, bias, act);
    }
#if defined(_OPENMP)
    else {
        /* Chunks of jobs handed out dynamically (a thread that shares its core
         * does not hold the others back); a block's sums do not depend on
         * which thread computes it. */
        const int64_t chunk = jobs / (4 * nt) > 1 ? jobs / (4 * nt) : 1;
        const int64_t nchunks = (jobs + chunk - 1) / chunk;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int64_t q = 0; q < nchunks; q++) {
            const int64_t e = (q + 1) * chunk < jobs ? (q + 1) * chunk : jobs;
            amx_blocks(ap, bp, kc, M, N, mb, nb, q * chunk, e, alpha, beta, C, ldc, bias, act);
        }
    }
#endif
    if (owned) free(space);
    return 0;
}
#else
int attn__amx_usable(void) { return 0; }
#endif

/* ---- dispatch ------------------------------------------------------------------ */

const char *attn__gemm_bf16_kernel(int kernel_flags) {
#if defined(ATTN__HAVE_AMX)
    if (!(kernel_flags & (ATTN_KERNELS_PORTABLE | ATTN_KERNELS_NO_AMX)) && attn__amx_usable())
        return "amx";
#else
    (void)kernel_flags;
#endif
    return "rounded-f32";
}

void attn__sgemm_bf16(int kernel_flags, int n_threads, int trans_a, int trans_b, int64_t M,
                      int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                      const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    attn__sgemm_bf16_pre(kernel_flags, n_threads, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb,
                         beta, C, ldc, NULL);
}

void attn__sgemm_bf16_pre(int kernel_flags, int n_threads, int trans_a, int trans_b, int64_t M,
                          int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                          const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                          const void *bpre) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
#if defined(ATTN__HAVE_AMX)
    /* Tiles pay from whole 16-row blocks on; a matrix-vector product (a
     * decoding step) stays on the f32 kernels' rounded path. */
    if (M >= 16 && N >= 16 && strcmp(attn__gemm_bf16_kernel(kernel_flags), "amx") == 0 &&
        gemm_amx(n_threads, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL,
                 0, bpre) == 0)
        return;
#else
    (void)kernel_flags, (void)bpre;
#endif
    if (gemm_rounded(n_threads, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) ==
        0)
        return;
    /* No memory for the rounded copies: the reference loop needs none. */
    attn__sgemm_bf16_ref(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

int attn__sgemm_bf16_fused(int kernel_flags, int n_threads, int trans_a, int trans_b, int64_t M,
                           int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                           int64_t ldb, float *C, int64_t ldc, const float *bias, int act,
                           const void *bpre) {
#if defined(ATTN__HAVE_AMX)
    if (M >= 16 && N >= 16 && K > 0 && strcmp(attn__gemm_bf16_kernel(kernel_flags), "amx") == 0)
        return gemm_amx(n_threads, trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc,
                        bias, act, bpre) == 0;
#else
    (void)kernel_flags, (void)n_threads, (void)trans_a, (void)trans_b, (void)M, (void)N, (void)K;
    (void)A, (void)lda, (void)B, (void)ldb, (void)C, (void)ldc, (void)bias, (void)act, (void)bpre;
#endif
    return 0;
}

void *attn__bf16_pack_b(int kernel_flags, int trans_b, const float *B, int64_t ldb, int64_t K,
                        int64_t N) {
#if defined(ATTN__HAVE_AMX)
    if (K <= 0 || N < 16 || strcmp(attn__gemm_bf16_kernel(kernel_flags), "amx") != 0) return NULL;
    const int64_t Np = (N + 31) / 32 * 32, Kp = (K + 31) / 32 * 32;
    const size_t bytes = (size_t)(Np * Kp) * 2;
    void *p = aligned_alloc(64, bytes);
    if (p) pack_b(trans_b, B, ldb, K, N, Np, Kp, (uint32_t *)p, 1);
    return p;
#else
    (void)kernel_flags, (void)trans_b, (void)B, (void)ldb, (void)K, (void)N;
    return NULL;
#endif
}
