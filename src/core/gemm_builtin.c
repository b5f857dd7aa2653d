/* gemm_builtin.c: the built-in blocked matrix product (what attn__sgemm
 * uses without OpenBLAS, with ATTN_BLAS=builtin, and for the shapes the auto
 * policy gives it; gemm.c decides). Panels of A and B are packed into the
 * calling threads' scratch, and a register-tile micro-kernel (AVX-512 6 x 64
 * or 12 x 32, AVX2+FMA 6 x 16, or plain C, picked at run time from the CPU's
 * features) runs over them on a fixed tile grid, so the result does not
 * depend on the thread count.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ATTN__GEMM_X86 1
#else
#define ATTN__GEMM_X86 0
#endif

/* C = beta * C over M x N (beta == 0 writes zeros without reading C, so NaN
 * in C does not survive, as in BLAS). */
void attn__gemm_scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc) {
    if (beta == 1.0f) return;
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f)
            for (int64_t j = 0; j < N; j++) c[j] = 0.0f;
        else
            for (int64_t j = 0; j < N; j++) c[j] *= beta;
    }
}


/* ==== the built-in kernel ====================================================
 *
 * Layout (BLIS's loop nest, C row-major with vectors along N):
 *   for jc over N in blocks of NC
 *     pack B[all K, jc..] into NR-wide micro-panels per K block: bp[k*NR + j]
 *     for each job (a block of rows x a group of NR panels), in parallel:
 *       for pc over K in blocks of KC
 *         pack A[rows, pc..] into MR-tall micro-panels: ap[k*MR + r]
 *         for each B micro-panel jr (stays in L1)
 *           for each A micro-panel ir (the A block stays in L2)
 *             micro-kernel: an MR x NR tile of C += alpha * sum_k a b
 * Padding rows/columns of the packed panels are zero; edge tiles are computed
 * whole into a local buffer and only their valid part is written.
 *
 * The update of a tile is t = alpha * acc, then t = t + beta' * c unless
 * beta' == 0 (C not read), with beta' = beta for the first K block and 1 after;
 * the vector and scalar paths evaluate exactly this sequence. */

typedef void (*ukernel_fn)(int64_t kc, const float *restrict ap, const float *restrict bp,
                           float *restrict c, int64_t ldc, int mr, int nr, float alpha, float beta);

typedef struct gemm_kernel {
    const char *name;
    int mr, nr;         /* register tile */
    int64_t kc, mc, nc; /* cache blocks (mc: largest row block) */
    ukernel_fn fn;
} gemm_kernel;

/* Writes the valid mr x nr part of an edge tile held in tmp (row stride nr_full). */
static void tile_update(const float *tmp, int nr_full, float *c, int64_t ldc, int mr, int nr,
                        float alpha, float beta) {
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nr; j++) {
            float t = alpha * tmp[r * nr_full + j];
            if (beta != 0.0f) t = t + beta * c[r * ldc + j];
            c[r * ldc + j] = t;
        }
}

/* ---- plain C: 4 x 16, the portable path (every CPU, every compiler) ---- */
enum { SC_MR = 4, SC_NR = 16 };
static void ukr_scalar(int64_t kc, const float *restrict ap, const float *restrict bp,
                       float *restrict c, int64_t ldc, int mr, int nr, float alpha, float beta) {
    float acc[SC_MR][SC_NR];
    for (int r = 0; r < SC_MR; r++)
        for (int j = 0; j < SC_NR; j++) acc[r][j] = 0.0f;
    for (int64_t k = 0; k < kc; k++) {
        for (int r = 0; r < SC_MR; r++) {
            const float a = ap[r];
            for (int j = 0; j < SC_NR; j++) acc[r][j] += a * bp[j];
        }
        ap += SC_MR;
        bp += SC_NR;
    }
    tile_update(&acc[0][0], SC_NR, c, ldc, mr, nr, alpha, beta);
}

#if ATTN__GEMM_X86
/* ---- AVX2 + FMA: 6 x 16 (12 ymm accumulators, 2 B vectors, 1 broadcast) ---- */
enum { A2_MR = 6, A2_NR = 16 };
__attribute__((target("avx2,fma"))) static void
ukr_avx2(int64_t kc, const float *restrict ap, const float *restrict bp, float *restrict c,
         int64_t ldc, int mr, int nr, float alpha, float beta) {
    __m256 acc[A2_MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < A2_MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
#pragma GCC unroll 6
        for (int r = 0; r < A2_MR; r++) {
            const __m256 a = _mm256_broadcast_ss(ap + r);
            acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
        }
        ap += A2_MR;
        bp += A2_NR;
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (mr == A2_MR && nr == A2_NR) {
#pragma GCC unroll 6
        for (int r = 0; r < A2_MR; r++)
#pragma GCC unroll 2
            for (int v = 0; v < 2; v++) {
                float *cp = c + r * ldc + 8 * v;
                __m256 t = _mm256_mul_ps(va, acc[r][v]);
                if (beta != 0.0f) t = _mm256_add_ps(t, _mm256_mul_ps(vb, _mm256_loadu_ps(cp)));
                _mm256_storeu_ps(cp, t);
            }
    } else {
        _Alignas(32) float tmp[A2_MR * A2_NR];
#pragma GCC unroll 6
        for (int r = 0; r < A2_MR; r++) {
            _mm256_store_ps(tmp + r * A2_NR, acc[r][0]);
            _mm256_store_ps(tmp + r * A2_NR + 8, acc[r][1]);
        }
        tile_update(tmp, A2_NR, c, ldc, mr, nr, alpha, beta);
    }
}

/* ---- AVX-512: 12 x 32 (24 zmm accumulators, 2 B vectors, 1 broadcast):
 * 24 FMAs per 14 loads, enough independent chains for 2 FMA pipes of
 * latency 4. ---- */
enum { A5_MR = 12, A5_NR = 32 };
__attribute__((target("avx512f"))) static void
ukr_avx512(int64_t kc, const float *restrict ap, const float *restrict bp, float *restrict c,
           int64_t ldc, int mr, int nr, float alpha, float beta) {
    __m512 acc[A5_MR][2];
#pragma GCC unroll 12
    for (int r = 0; r < A5_MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 12
        for (int r = 0; r < A5_MR; r++) {
            const __m512 a = _mm512_set1_ps(ap[r]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
        }
        ap += A5_MR;
        bp += A5_NR;
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    if (mr == A5_MR && nr == A5_NR) {
#pragma GCC unroll 12
        for (int r = 0; r < A5_MR; r++)
#pragma GCC unroll 2
            for (int v = 0; v < 2; v++) {
                float *cp = c + r * ldc + 16 * v;
                __m512 t = _mm512_mul_ps(va, acc[r][v]);
                if (beta != 0.0f) t = _mm512_add_ps(t, _mm512_mul_ps(vb, _mm512_loadu_ps(cp)));
                _mm512_storeu_ps(cp, t);
            }
    } else {
        _Alignas(64) float tmp[A5_MR * A5_NR];
#pragma GCC unroll 12
        for (int r = 0; r < A5_MR; r++) {
            _mm512_store_ps(tmp + r * A5_NR, acc[r][0]);
            _mm512_store_ps(tmp + r * A5_NR + 16, acc[r][1]);
        }
        tile_update(tmp, A5_NR, c, ldc, mr, nr, alpha, beta);
    }
}
/* ---- AVX-512: 6 x 64 (24 zmm accumulators, 4 B vectors, 1 broadcast):
 * 24 FMAs per 10 loads. Broadcasts cost more than they seem on some cores:
 * on an Ice Lake Xeon this block runs at about 94% of the FMA peak on
 * L1-resident panels where 12 x 32 (12 broadcasts per 24 FMAs) runs at 83%.
 * Each element of C is the same FMA chain over k as in 12 x 32, so with the
 * same KC both give the same bits. ---- */
enum { A5W_MR = 6, A5W_NR = 64 };
__attribute__((target("avx512f"))) static void
ukr_avx512_6x64(int64_t kc, const float *restrict ap, const float *restrict bp, float *restrict c,
                int64_t ldc, int mr, int nr, float alpha, float beta) {
    __m512 acc[A5W_MR][4];
#pragma GCC unroll 6
    for (int r = 0; r < A5W_MR; r++)
        acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
        const __m512 b2 = _mm512_load_ps(bp + 32), b3 = _mm512_load_ps(bp + 48);
#pragma GCC unroll 6
        for (int r = 0; r < A5W_MR; r++) {
            const __m512 a = _mm512_set1_ps(ap[r]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(a, b2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(a, b3, acc[r][3]);
        }
        ap += A5W_MR;
        bp += A5W_NR;
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    if (mr == A5W_MR && nr == A5W_NR) {
#pragma GCC unroll 6
        for (int r = 0; r < A5W_MR; r++)
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) {
                float *cp = c + r * ldc + 16 * v;
                __m512 t = _mm512_mul_ps(va, acc[r][v]);
                if (beta != 0.0f) t = _mm512_add_ps(t, _mm512_mul_ps(vb, _mm512_loadu_ps(cp)));
                _mm512_storeu_ps(cp, t);
            }
    } else {
        _Alignas(64) float tmp[A5W_MR * A5W_NR];
#pragma GCC unroll 6
        for (int r = 0; r < A5W_MR; r++)
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) _mm512_store_ps(tmp + r * A5W_NR + 16 * v, acc[r][v]);
        tile_update(tmp, A5W_NR, c, ldc, mr, nr, alpha, beta);
    }
}
#endif

/* Cache blocks: the B micro-panel (KC x NR) fits L1 (32 KiB at 12x32/KC=256),
 * the A block (MC x KC) a private L2 (240 KiB), the packed B (K x NC) L3.
 * mc is the largest row block on one thread. */
static const gemm_kernel g_kernels[] = {
#if ATTN__GEMM_X86
    {"avx512 6x64", A5W_MR, A5W_NR, 256, 240, 4096, ukr_avx512_6x64},
    {"avx512 12x32", A5_MR, A5_NR, 256, 240, 4096, ukr_avx512},
    {"avx2 6x16", A2_MR, A2_NR, 256, 240, 4096, ukr_avx2},
#endif
    {"scalar 4x16", SC_MR, SC_NR, 256, 128, 4096, ukr_scalar},
};
enum { N_KERNELS = sizeof g_kernels / sizeof g_kernels[0] };

static int kernel_supported(const gemm_kernel *k) {
#if ATTN__GEMM_X86
    __builtin_cpu_init();
    if (k->fn == ukr_avx512 || k->fn == ukr_avx512_6x64) return __builtin_cpu_supports("avx512f");
    if (k->fn == ukr_avx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return k->fn == ukr_scalar;
}

static _Atomic(const gemm_kernel *) g_kernel; /* NULL until first use */

static const gemm_kernel *pick_kernel(void) {
    const gemm_kernel *k = atomic_load_explicit(&g_kernel, memory_order_acquire);
    if (k) return k;
    for (int i = 0; i < N_KERNELS; i++)
        if (kernel_supported(&g_kernels[i])) {
            k = &g_kernels[i];
            break;
        }
    /* Several threads may race here; they all store the same answer. */
    atomic_store_explicit(&g_kernel, k, memory_order_release);
    return k;
}

const char *attn__gemm_kernel_name(void) { return pick_kernel()->name; }

/* Test hook: forces the first micro-kernel whose name is `name` or starts with
 * `name` and a space ("avx512" picks "avx512 6x64"; "avx512 12x32", "avx2",
 * "scalar"), or the automatic choice for NULL. Returns 0, or -1 if the
 * CPU (or the build) lacks it. Not to be called while products run. */
int attn__gemm_force_kernel(const char *name) {
    if (!name) {
        atomic_store(&g_kernel, NULL);
        pick_kernel();
        return 0;
    }
    for (int i = 0; i < N_KERNELS; i++) {
        size_t n = strlen(name);
        if (strncmp(g_kernels[i].name, name, n) == 0 && (g_kernels[i].name[n] == ' ' || g_kernels[i].name[n] == 0)) {
            if (!kernel_supported(&g_kernels[i])) return -1;
            atomic_store(&g_kernel, &g_kernels[i]);
            return 0;
        }
    }
    return -1;
}

/* op(A) rows [i0, i0+m) x columns [p0, p0+kc) into MR-tall micro-panels
 * (ap[panel][k][r]), zero rows past m. Inlined once per kernel's MR so that
 * the row loop is unrolled (packing is a visible share of small products). */
static inline __attribute__((always_inline)) void
pack_a_mr(const int MR, int trans_a, const float *A, int64_t lda, int64_t i0, int64_t m, int64_t p0,
          int64_t kc, float *restrict dst) {
    for (int64_t ip = 0; ip < m; ip += MR, dst += (int64_t)MR * kc) {
        const int64_t mr = m - ip < MR ? m - ip : MR;
        if (mr == MR && !trans_a) {
            const float *src = A + (i0 + ip) * lda + p0;
            for (int64_t k = 0; k < kc; k++)
#pragma GCC unroll 12
                for (int r = 0; r < MR; r++) dst[k * MR + r] = src[r * lda + k];
        } else if (mr == MR) {
            for (int64_t k = 0; k < kc; k++) {
                const float *src = A + (p0 + k) * lda + i0 + ip;
#pragma GCC unroll 12
                for (int r = 0; r < MR; r++) dst[k * MR + r] = src[r];
            }
        } else {
            for (int64_t k = 0; k < kc; k++)
                for (int r = 0; r < MR; r++)
                    dst[k * MR + r] = r >= mr         ? 0.0f
                                      : trans_a ? A[(p0 + k) * lda + i0 + ip + r]
                                                : A[(i0 + ip + r) * lda + p0 + k];
        }
    }
}

static void pack_a(int MR, int trans_a, const float *A, int64_t lda, int64_t i0, int64_t m,
                   int64_t p0, int64_t kc, float *restrict dst) {
    switch (MR) {
#if ATTN__GEMM_X86
    case A5_MR: pack_a_mr(A5_MR, trans_a, A, lda, i0, m, p0, kc, dst); break;
    case A2_MR: pack_a_mr(A2_MR, trans_a, A, lda, i0, m, p0, kc, dst); break;
#endif
    default: pack_a_mr(SC_MR, trans_a, A, lda, i0, m, p0, kc, dst); break;
    }
}

/* Micro-panel jp of op(B) rows [p0, p0+kc) x columns [j0 + jp*NR, +NR) of a
 * block n wide: bp[k][j], zero columns past n. Inlined once per kernel's NR
 * so that full rows are copied with a fixed-length (vectorised) loop. */
static inline __attribute__((always_inline)) void
pack_b_nr(const int NR, int trans_b, const float *B, int64_t ldb, int64_t p0, int64_t kc,
          int64_t j0, int64_t n, int64_t jp, float *restrict dst) {
    const int64_t js = jp * NR;
    const int64_t nr = n - js < NR ? n - js : NR;
    if (!trans_b && nr == NR) {
        for (int64_t k = 0; k < kc; k++) {
            const float *src = B + (p0 + k) * ldb + j0 + js;
            for (int j = 0; j < NR; j++) dst[k * NR + j] = src[j];
        }
    } else if (!trans_b) {
        for (int64_t k = 0; k < kc; k++) {
            const float *src = B + (p0 + k) * ldb + j0 + js;
            for (int j = 0; j < NR; j++) dst[k * NR + j] = j < nr ? src[j] : 0.0f;
        }
    } else {
        for (int64_t j = 0; j < nr; j++) {
            const float *src = B + (j0 + js + j) * ldb + p0;
            for (int64_t k = 0; k < kc; k++) dst[k * NR + j] = src[k];
        }
        for (int64_t j = nr; j < NR; j++)
            for (int64_t k = 0; k < kc; k++) dst[k * NR + j] = 0.0f;
    }
}

static void pack_b_panel(int NR, int trans_b, const float *B, int64_t ldb, int64_t p0, int64_t kc,
                         int64_t j0, int64_t n, int64_t jp, float *restrict dst) {
    switch (NR) {
#if ATTN__GEMM_X86
    case A5_NR: pack_b_nr(A5_NR, trans_b, B, ldb, p0, kc, j0, n, jp, dst); break;
    case A5W_NR: pack_b_nr(A5W_NR, trans_b, B, ldb, p0, kc, j0, n, jp, dst); break;
#endif
    default: pack_b_nr(SC_NR, trans_b, B, ldb, p0, kc, j0, n, jp, dst); break; /* 16: avx2 too */
    }
}

static float *alloc64(size_t floats) {
    size_t bytes = (floats * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes ? bytes : 64);
}

/* Packing space, kept per calling thread between products (freed when the
 * thread exits) so that repeated products do not map and fault in fresh
 * pages each time. Requests above ATTN__SCRATCH_KEEP floats are allocated
 * and freed per call instead, so a thread keeps at most 32 MiB. */
#define ATTN__SCRATCH_KEEP ((size_t)8 << 20)
typedef struct scratch {
    float *p;
    size_t cap;
} scratch;
static pthread_key_t g_scratch_key;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;
static int g_scratch_ok;
static void scratch_free(void *v) {
    scratch *s = v;
    free(s->p);
    free(s);
}
static void scratch_init(void) { g_scratch_ok = pthread_key_create(&g_scratch_key, scratch_free) == 0; }

/* `floats` floats, 64-byte aligned; *owned is set when the caller must free
 * the block itself. NULL when out of memory. */
float *attn__gemm_scratch(size_t floats, int *owned) {
    *owned = 0;
    pthread_once(&g_scratch_once, scratch_init);
    if (floats > ATTN__SCRATCH_KEEP || !g_scratch_ok) {
        *owned = 1;
        return alloc64(floats);
    }
    scratch *s = pthread_getspecific(g_scratch_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || pthread_setspecific(g_scratch_key, s) != 0) {
            free(s);
            *owned = 1;
            return alloc64(floats);
        }
    }
    if (s->cap < floats) {
        free(s->p);
        s->p = alloc64(floats);
        s->cap = s->p ? floats : 0;
    }
    return s->p;
}

/* Largest packed copy of B kept at once (floats): all of K for up to NC
 * columns, fewer columns when K is very long. */
#define ATTN__BPACK_MAX ((int64_t)8 << 20)

/* One product, planned: sizes, blocking, jobs and the packed buffers. */
typedef struct gemm_plan {
    const gemm_kernel *kr;
    int trans_a, trans_b;
    int64_t M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int64_t NC, n_pc;      /* column block, number of K blocks */
    int64_t m_pan, mb, ng; /* A micro-panels, row blocks, column groups */
    int64_t kc_max, mc_max;
    float *bpack, *apack;
} gemm_plan;

/* Packs B micro-panel q (K block q / npan, panel q % npan) of column block jc. */
static void plan_pack_b(const gemm_plan *p, int64_t jc, int64_t ncb, int64_t npan, int64_t q) {
    const int NR = p->kr->nr;
    const int64_t KC = p->kr->kc;
    const int64_t pi = q / npan, jp = q % npan, pc = pi * KC;
    const int64_t kcb = p->K - pc < KC ? p->K - pc : KC;
    pack_b_panel(NR, p->trans_b, p->B, p->ldb, pc, kcb, jc, ncb, jp,
                 p->bpack + pc * npan * NR + jp * NR * kcb);
}

/* Job `job` of column block jc: its rows times its group of B panels, over
 * all of K; my_a is the thread's A buffer. */
static void plan_job(const gemm_plan *p, int64_t jc, int64_t npan, int64_t job, float *my_a) {
    const gemm_kernel *kr = p->kr;
    const int MR = kr->mr, NR = kr->nr;
    const int64_t KC = kr->kc, M = p->M, N = p->N, K = p->K;
    const int64_t ib = job / p->ng, g = job % p->ng;
    const int64_t p_lo = ib * p->m_pan / p->mb, p_hi = (ib + 1) * p->m_pan / p->mb;
    const int64_t i0 = p_lo * MR;
    const int64_t i1 = p_hi * MR < M ? p_hi * MR : M;
    const int64_t j_lo = g * npan / p->ng, j_hi = (g + 1) * npan / p->ng;
    if (i1 <= i0 || j_hi <= j_lo) return;
    for (int64_t pc = 0; pc < K; pc += KC) {
        const int64_t kcb = K - pc < KC ? K - pc : KC;
        const float beta_eff = pc == 0 ? p->beta : 1.0f;
        pack_a(MR, p->trans_a, p->A, p->lda, i0, i1 - i0, pc, kcb, my_a);
        for (int64_t jp = j_lo; jp < j_hi; jp++) {
            const float *bp = p->bpack + pc * npan * NR + jp * NR * kcb;
            const int64_t j = jc + jp * NR;
            const int nr = (int)(N - j < NR ? N - j : NR);
            for (int64_t i = i0; i < i1; i += MR) {
                const int mr = (int)(i1 - i < MR ? i1 - i : MR);
                kr->fn(kcb, my_a + (i - i0) * kcb, bp, p->C + i * p->ldc + j, p->ldc, mr, nr,
                       p->alpha, beta_eff);
            }
        }
    }
}

void attn__sgemm_builtin(int n_threads, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                         float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                         float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        attn__gemm_scale_c(M, N, beta, C, ldc);
        return;
    }
    gemm_plan p = {.kr = pick_kernel(), .trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N,
                   .K = K, .lda = lda, .ldb = ldb, .ldc = ldc, .alpha = alpha, .beta = beta,
                   .A = A, .B = B, .C = C};
    const int MR = p.kr->mr, NR = p.kr->nr;
    const int64_t KC = p.kr->kc;
    int nt = n_threads < 1 ? 1 : n_threads;
#if !defined(_OPENMP)
    nt = 1;
#endif

    /* Column blocks: B is packed for all of K and NC columns at once (one
     * synchronisation per column block), fewer columns if K is very long. */
    p.NC = ATTN__BPACK_MAX / K / NR * NR;
    if (p.NC > p.kr->nc) p.NC = p.kr->nc;
    if (p.NC < NR) p.NC = NR;
    p.n_pc = (K + KC - 1) / KC;

    /* Jobs: mb row blocks (whole A micro-panels, split evenly) x ng groups of
     * B micro-panels. With several threads, rows are cut into about 4 blocks
     * per thread (of at least 8 micro-panels) when there are enough rows, and
     * columns into nt groups otherwise. Jobs are handed out dynamically so
     * that a thread sharing its core with another process does not hold the
     * others back; the tile grid, hence every bit of C, does not depend on
     * which thread takes which job. */
    p.m_pan = (M + MR - 1) / MR;
    p.mb = (M + p.kr->mc - 1) / p.kr->mc;
    p.ng = 1;
    if (nt > 1) {
        if (p.m_pan >= 2 * (int64_t)nt) {
            int64_t want = p.m_pan / 8 < 4 * (int64_t)nt ? p.m_pan / 8 : 4 * (int64_t)nt;
            if (want < nt) want = nt;
            if (p.mb < want) p.mb = want;
        } else {
            p.ng = nt;
        }
    }
    p.mc_max = (p.m_pan + p.mb - 1) / p.mb * MR; /* rows of the largest block */
    const int64_t jobs = p.mb * p.ng;
    if ((int64_t)nt > jobs) nt = (int)jobs;

    const int64_t nc_blk = N < p.NC ? N : p.NC;
    const int64_t b_floats = K * ((nc_blk + NR - 1) / NR) * NR;
    p.kc_max = K < KC ? K : KC;
    const int64_t a_floats = p.kc_max * p.mc_max; /* per thread */

    int owned = 0;
    float *buf = attn__gemm_scratch((size_t)(b_floats + 16 + nt * a_floats), &owned);
    if (!buf) {
        /* No memory for the packed panels: the unblocked reference loop still
         * gives the right answer. */
        attn__sgemm_ref(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    p.bpack = buf;
    p.apack = buf + (b_floats + 15) / 16 * 16; /* 64-byte aligned */

    if (nt == 1) {
        for (int64_t jc = 0; jc < N; jc += p.NC) {
            const int64_t ncb = N - jc < p.NC ? N - jc : p.NC;
            const int64_t npan = (ncb + NR - 1) / NR;
            for (int64_t q = 0; q < p.n_pc * npan; q++) plan_pack_b(&p, jc, ncb, npan, q);
            for (int64_t job = 0; job < jobs; job++) plan_job(&p, jc, npan, job, p.apack);
        }
    }
#if defined(_OPENMP)
    else {
#pragma omp parallel num_threads(nt)
        {
            float *my_a = p.apack + (size_t)omp_get_thread_num() * (size_t)a_floats;
            for (int64_t jc = 0; jc < N; jc += p.NC) {
                const int64_t ncb = N - jc < p.NC ? N - jc : p.NC;
                const int64_t npan = (ncb + NR - 1) / NR;
#pragma omp for schedule(dynamic, 4)
                for (int64_t q = 0; q < p.n_pc * npan; q++) plan_pack_b(&p, jc, ncb, npan, q);
                /* (implicit barrier: every B panel is packed) */
#pragma omp for schedule(dynamic, 1)
                for (int64_t job = 0; job < jobs; job++) plan_job(&p, jc, npan, job, my_a);
                /* (implicit barrier: bpack may be overwritten) */
            }
        }
    }
#endif
    if (owned) free(buf);
}
