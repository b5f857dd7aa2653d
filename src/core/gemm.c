/* gemm.c: single-precision matrix products (C = alpha op(A) op(B) + beta C,
 * row-major) for every op of attn.
 *
 * Two back ends:
 *   - OpenBLAS, found at RUN time with dlopen (nothing BLAS-related is needed
 *     to build attn: the prototypes below are our own). Loading happens once,
 *     on first use or in attn_blas_select.
 *   - the built-in blocked kernel: panels of A and B are packed, and a
 *     register-tile micro-kernel (AVX-512, AVX2+FMA, or plain C, picked at run
 *     time from the CPU's features) runs over them.
 *
 * The core-type decision. Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) does not
 * know AMD Zen 4/5 and falls back to its Haswell AVX2 kernels there (about
 * 47% of the fp32 peak on Zen 5); told OPENBLAS_CORETYPE=SkylakeX it runs its
 * AVX-512 kernels at about 90%. OpenBLAS reads that variable only while it is
 * being loaded, which is why attn loads it itself: when the user has not set
 * OPENBLAS_CORETYPE and the CPU has AVX-512 F/BW/DQ/VL (what the SkylakeX
 * kernels need), attn sets it just before dlopen and removes it again just
 * after, so the process environment is left as it was. setenv is not
 * thread-safe against concurrent getenv: the first matrix product (or
 * attn_blas_select / attn_info) should not race with other threads reading
 * the environment. What OpenBLAS really chose is read back with
 * openblas_get_corename() and reported by attn_info().
 *
 * Determinism: the built-in kernel computes every element of C on a fixed
 * tile grid (tiles at multiples of MR x NR from the origin, K in blocks of
 * KC from 0), whatever the thread count; threads only take different tiles.
 * Its results are therefore bitwise identical for any thread count (on the
 * same micro-kernel). OpenBLAS repeats its results for a given thread count
 * but not across counts (measured: 1 and 2 threads differ in the last bits).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "attn/info.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ATTN__GEMM_X86 1
#else
#define ATTN__GEMM_X86 0
#endif


/* ==== OpenBLAS, loaded at run time ========================================= */

/* cblas_sgemm's enums are plain ints in the C ABI. */
enum { ATTN__CBLAS_ROW_MAJOR = 101, ATTN__CBLAS_NO_TRANS = 111, ATTN__CBLAS_TRANS = 112 };
typedef void (*attn__cblas_sgemm_fn)(int order, int trans_a, int trans_b, int m, int n, int k,
                                     float alpha, const float *a, int lda, const float *b, int ldb,
                                     float beta, float *c, int ldc);
typedef void (*attn__set_threads_fn)(int n);
typedef char *(*attn__get_str_fn)(void);

enum { REQ_UNSET = -1, REQ_AUTO = 0, REQ_OPENBLAS = 1, REQ_BUILTIN = 2 };

static struct {
    attn__cblas_sgemm_fn sgemm; /* NULL: the built-in kernel serves every call */
    attn__set_threads_fn set_threads;
    int requested;              /* REQ_* in force when loading ran */
    char blas[330];             /* attn_info().blas */
    char core[64];              /* attn_info().blas_core */
    char why[192];              /* attn_info().blas_core_why */
    int split;                  /* ATTN_BLAS=auto chose per shape (see gemm_use_builtin) */
    char policy[320];           /* attn_info().blas_policy */
} g_blas;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_request = REQ_UNSET; /* set by attn_blas_select before loading */
static atomic_int g_loaded;              /* 1 once the loading below has run */
static atomic_int g_blas_threads;        /* thread count last given to OpenBLAS (0: none) */
static atomic_int g_force_builtin;       /* test hook: route attn__sgemm to the builtin */

/* 1 if the CPU has what OpenBLAS's SkylakeX kernels use. */
static int cpu_has_avx512_skx(void) {
#if ATTN__GEMM_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

static int parse_request(const char *s) {
    if (!s || !s[0] || strcmp(s, "auto") == 0) return REQ_AUTO;
    if (strcmp(s, "openblas") == 0) return REQ_OPENBLAS;
    if (strcmp(s, "builtin") == 0) return REQ_BUILTIN;
    return REQ_UNSET;
}

/* A note about an ATTN_BLAS value that was not understood (the library
 * cannot print; attn_info shows it). */
static char g_note[96];

static void use_builtin(const char *reason) {
    snprintf(g_blas.blas, sizeof g_blas.blas, "builtin (%.180s%.95s; kernel %.15s)", reason, g_note,
             attn__gemm_kernel_name());
    g_blas.core[0] = 0;
    g_blas.why[0] = 0;
    snprintf(g_blas.policy, sizeof g_blas.policy, "%s",
             cpu_has_avx512_skx() ? "the built-in kernels for every product (the direct one for "
                                    "short K, see gemm_small.c; the blocked one for the rest)"
                                  : "the built-in kernel for every product");
}

/* ---- ATTN_BLAS=auto: which library takes which product -----------------------------
 *
 * Measured on the Sapphire Rapids Xeon of docs/design.md ("Matrix products",
 * 1 thread, tools in the text there): with its AVX-512 (SkylakeX) kernels
 * OpenBLAS is as fast as the built-in 12x32 kernel or faster on every shape,
 * and 2-10x faster below 64^3 (lower call overhead), so it takes every
 * product. When OpenBLAS runs AVX2-only kernels on an AVX-512 CPU (the user
 * set OPENBLAS_CORETYPE=Haswell, which attn respects, or an OpenBLAS that
 * kept its own choice), the built-in AVX-512 kernel is 1.1-1.8x faster from
 * about half a MFLOP up (64^3: 1.13x, 128^3: 1.58x, 512^3: 1.80x) as long
 * as C has at least 32 columns (its tile is 32 wide: at N = 16 it is 0.48x),
 * and 1.5-7x slower below (16^3: 0.14x). The rule below is that
 * measurement: a deterministic function of the shape and the core, never a
 * timing taken at run time, so a run repeats bit for bit. */
#define AUTO_BUILTIN_MIN_FLOPS ((double)(1 << 19))
#define AUTO_BUILTIN_MIN_N 32

/* 1 if OpenBLAS's core name is one of its AVX-512 kernel sets. */
static int core_is_avx512(const char *core) {
    static const char *const names[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (core && strcmp(core, names[i]) == 0) return 1;
    return 0;
}

static void choose_policy(int req, const char *core) {
    const char *c = core ? core : "unknown";
    g_blas.split = 0;
    if (req == REQ_OPENBLAS) {
        snprintf(g_blas.policy, sizeof g_blas.policy, "%s",
                 "OpenBLAS for every product (asked for: ATTN_BLAS=openblas or attn_blas_select)");
    } else if (!cpu_has_avx512_skx()) {
        snprintf(g_blas.policy, sizeof g_blas.policy,
                 "auto: OpenBLAS for every product (this CPU has no AVX-512: the built-in kernel "
                 "has no wider registers than OpenBLAS's %.40s kernels)",
                 c);
    } else if (core_is_avx512(core)) {
        snprintf(g_blas.policy, sizeof g_blas.policy,
                 "auto: the built-in direct AVX-512 kernel for products with a short K "
                 "(gemm_small.c: no packing, up to 1.6x faster there), OpenBLAS for the rest (its "
                 "%.40s kernels use AVX-512; as fast as the built-in blocked kernel or faster)",
                 c);
    } else {
        g_blas.split = 1;
        snprintf(g_blas.policy, sizeof g_blas.policy,
                 "auto, per shape: the built-in direct AVX-512 kernel for products with a short K, "
                 "the blocked one for other products of at least 0.5 MFLOP with at least %d "
                 "columns, OpenBLAS for the rest (its %.40s kernels are AVX2 only on this AVX-512 "
                 "CPU: 1.1-1.8x slower above that size)",
                 AUTO_BUILTIN_MIN_N, c);
    }
}

/* 1 if the auto policy sends this product to the built-in kernel. */
static int gemm_use_builtin(int64_t M, int64_t N, int64_t K) {
    return g_blas.split && N >= AUTO_BUILTIN_MIN_N &&
           2.0 * (double)M * (double)N * (double)K >= AUTO_BUILTIN_MIN_FLOPS;
}

/* Runs once (pthread_once). Reads the request (attn_blas_select, else
 * ATTN_BLAS), decides the core type, loads OpenBLAS and resolves its
 * symbols; anything missing leaves the built-in kernel in charge, with the
 * reason recorded for attn_info. */
static void blas_load(void) {
    int req = atomic_load(&g_request);
    char reason[224];
    if (req == REQ_UNSET) {
        const char *env = getenv("ATTN_BLAS");
        req = parse_request(env);
        if (req == REQ_UNSET) {
            req = REQ_AUTO;
            snprintf(g_note, sizeof g_note, "; ATTN_BLAS='%.32s' not understood, used auto", env);
        }
        snprintf(reason, sizeof reason, "%s", "selected by ATTN_BLAS=builtin");
    } else {
        snprintf(reason, sizeof reason, "%s", "selected by attn_blas_select");
    }
    g_blas.requested = req;
    if (req == REQ_BUILTIN) {
        use_builtin(reason);
        atomic_store(&g_loaded, 1);
        return;
    }

    const char *user = getenv("OPENBLAS_CORETYPE");
    int we_set = 0;
    char why[192];
    if (user && user[0]) {
        snprintf(why, sizeof why, "set by the user (OPENBLAS_CORETYPE=%.64s)", user);
    } else if (cpu_has_avx512_skx()) {
        /* (an empty OPENBLAS_CORETYPE counts as unset; it is put back after) */
        we_set = setenv("OPENBLAS_CORETYPE", "SkylakeX", 1) == 0;
        snprintf(why, sizeof why, "%s",
                 "set by attn: CPU has AVX-512 and OpenBLAS 0.3.21 does not know this core");
    } else {
        snprintf(why, sizeof why, "%s", "OpenBLAS's own detection");
    }

    /* With OpenMP in attn, OpenBLAS's OpenMP build comes first: both then
     * share libgomp's thread pool. The pthread build next to an OpenMP
     * runtime makes two pools spin against each other on the same cores
     * (measured: an MLP epoch took 4.8-9 s instead of 1.6 s on 2 cores). */
    static const char *const names[] = {
#if defined(_OPENMP) && defined(__x86_64__)
        "/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0",
#elif defined(_OPENMP) && defined(__aarch64__)
        "/usr/lib/aarch64-linux-gnu/openblas-openmp/libopenblas.so.0",
#endif
        "libopenblas.so.0", "libopenblas.so"};
    const char *name = NULL;
    void *h = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !h; i++) {
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h) {
            name = names[i];
        } else {
            const char *e = dlerror();
            snprintf(reason, sizeof reason, "OpenBLAS not loadable: %.160s", e ? e : "dlopen failed");
        }
    }
    if (we_set) { /* OpenBLAS has read it while loading: restore the environment */
        if (user)
            setenv("OPENBLAS_CORETYPE", "", 1);
        else
            unsetenv("OPENBLAS_CORETYPE");
    }
    if (!h) {
        use_builtin(reason);
        atomic_store(&g_loaded, 1);
        return;
    }
    g_blas.sgemm = (attn__cblas_sgemm_fn)(uintptr_t)dlsym(h, "cblas_sgemm");
    if (!g_blas.sgemm) {
        dlclose(h);
        snprintf(reason, sizeof reason, "%s has no cblas_sgemm", name);
        use_builtin(reason);
        atomic_store(&g_loaded, 1);
        return;
    }
    g_blas.set_threads = (attn__set_threads_fn)(uintptr_t)dlsym(h, "openblas_set_num_threads");
    attn__get_str_fn get_config = (attn__get_str_fn)(uintptr_t)dlsym(h, "openblas_get_config");
    attn__get_str_fn get_core = (attn__get_str_fn)(uintptr_t)dlsym(h, "openblas_get_corename");

    /* "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..." -> "0.3.21" */
    char version[32] = "?";
    const char *cfg = get_config ? get_config() : NULL;
    if (cfg && strncmp(cfg, "OpenBLAS ", 9) == 0) {
        size_t n = strcspn(cfg + 9, " ");
        if (n >= sizeof version) n = sizeof version - 1;
        memcpy(version, cfg + 9, n);
        version[n] = 0;
    }
    snprintf(g_blas.blas, sizeof g_blas.blas, "openblas %s (%s%s)", version, name, g_note);
    const char *core = get_core ? get_core() : NULL;
    snprintf(g_blas.core, sizeof g_blas.core, "%.60s", core ? core : "unknown");
    if (we_set && core && strcmp(core, "SkylakeX") != 0) {
        /* The library did not take the request (not a DYNAMIC_ARCH build, or
         * already loaded in this process): say what really runs. */
        snprintf(g_blas.why, sizeof g_blas.why,
                 "attn asked for SkylakeX (CPU has AVX-512); OpenBLAS kept %.60s (already "
                 "loaded, or not a DYNAMIC_ARCH build)",
                 core);
    } else {
        snprintf(g_blas.why, sizeof g_blas.why, "%s", why);
    }
    choose_policy(req, core);
    atomic_store(&g_loaded, 1);
}

static void blas_ensure(void) {
    if (!atomic_load_explicit(&g_loaded, memory_order_acquire)) pthread_once(&g_once, blas_load);
}

attn_status attn_blas_select(const char *which) {
    int req = parse_request(which);
    if (!which || req == REQ_UNSET)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_blas_select: '%s' is not a matrix library (auto, openblas, builtin)",
                           which ? which : "(null)");
    pthread_mutex_lock(&g_mu);
    int did_load = 0;
    if (!atomic_load(&g_loaded)) {
        atomic_store(&g_request, req);
        pthread_once(&g_once, blas_load);
        did_load = g_blas.requested == req; /* (a racing first product may have won) */
    }
    /* Asking again for what is in force is fine; anything else is too late. */
    attn_status st = ATTN_OK;
    int have = g_blas.sgemm != NULL;
    if (req == REQ_OPENBLAS && !have && did_load)
        st = attn__error(ATTN_ERR_UNSUPPORTED, "attn_blas_select('openblas'): %s", g_blas.blas);
    else if ((req == REQ_OPENBLAS && !have) || (req == REQ_BUILTIN && have) ||
             (req == REQ_AUTO && !have && g_blas.requested == REQ_BUILTIN))
        st = attn__error(ATTN_ERR_STATE,
                         "attn_blas_select('%s'): the matrix library was already chosen (%s); "
                         "select it before the first matrix product",
                         which, g_blas.blas);
    pthread_mutex_unlock(&g_mu);
    return st;
}

void attn__blas_describe(const char **blas, const char **core, const char **why,
                         const char **policy) {
    blas_ensure();
    if (blas) *blas = g_blas.blas;
    if (core) *core = g_blas.core;
    if (why) *why = g_blas.why;
    if (policy) *policy = g_blas.policy;
}

int attn__blas_loaded(void) {
    blas_ensure();
    return g_blas.sgemm != NULL;
}

/* Test/benchmark hook: on = 1 sends every attn__sgemm to the built-in kernel
 * even when OpenBLAS is loaded. Returns the previous setting. */
int attn__gemm_force_builtin(int on) { return atomic_exchange(&g_force_builtin, on != 0); }

/* ==== shared helpers ======================================================= */

/* C = beta * C over M x N (beta == 0 writes zeros without reading C, so NaN
 * in C does not survive, as in BLAS). */
static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc) {
    if (beta == 1.0f) return;
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f)
            for (int64_t j = 0; j < N; j++) c[j] = 0.0f;
        else
            for (int64_t j = 0; j < N; j++) c[j] *= beta;
    }
}

/* ==== reference ============================================================= */

void attn__sgemm_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                     int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) { /* BLAS: A and B are not read */
        scale_c(M, N, beta, C, ldc);
        return;
    }
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < K; k++) {
                double a = trans_a ? A[k * lda + i] : A[i * lda + k];
                double b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            double v = (double)alpha * s;
            if (beta != 0.0f) v += (double)beta * C[i * ldc + j];
            C[i * ldc + j] = (float)v;
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
        scale_c(M, N, beta, C, ldc);
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

/* ==== dispatch ================================================================ */

/* 1 if OpenBLAS accepts these sizes and strides (cblas checks them and
 * would print through xerbla otherwise; the library never prints). */
static int blas_args_ok(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, int64_t lda,
                        int64_t ldb, int64_t ldc) {
    const int64_t lim = 0x7fffffff;
    if (M > lim || N > lim || K > lim || lda > lim || ldb > lim || ldc > lim) return 0;
    int64_t need_a = trans_a ? M : K, need_b = trans_b ? K : N;
    return lda >= need_a && ldb >= need_b && ldc >= N;
}

static void blas_threads(int n) {
    if (!g_blas.set_threads || atomic_load(&g_blas_threads) == n) return;
    pthread_mutex_lock(&g_mu);
    if (atomic_load(&g_blas_threads) != n) {
        g_blas.set_threads(n);
        atomic_store(&g_blas_threads, n);
    }
    pthread_mutex_unlock(&g_mu);
}

/* OpenBLAS on nt > 1 threads. OpenBLAS's own threading splits a product
 * into one static share per thread and waits for the slowest: with another
 * process busy on one core, the share there runs at half speed or waits for
 * a time slice, and 2 threads fell to 0.13x of 1 thread (bench_threads, a
 * busy neighbour). Instead the product is cut into chunks of C (rows, or
 * columns when C is wide), each computed by a 1-thread OpenBLAS call, and
 * the threads take chunks as they come free (dynamic schedule): a slow
 * thread takes fewer chunks and nobody waits for more than one of them. The
 * cut depends on the shape only (chunks of at least 16 rows or columns and
 * about 4 MFLOP, at most 64), so results do not depend on the thread count. */
#define BLAS_CHUNK_FLOPS 16.0e6
#define BLAS_CHUNK_MIN 64
#define BLAS_CHUNK_MAX 64

static void blas_call(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                      int64_t ldc) {
    g_blas.sgemm(ATTN__CBLAS_ROW_MAJOR, trans_a ? ATTN__CBLAS_TRANS : ATTN__CBLAS_NO_TRANS,
                 trans_b ? ATTN__CBLAS_TRANS : ATTN__CBLAS_NO_TRANS, (int)M, (int)N, (int)K, alpha, A,
                 (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

static void blas_chunked(int nt, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                         float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                         float beta, float *C, int64_t ldc) {
    const int by_rows = M >= N;
    const int64_t dim = by_rows ? M : N;
    int64_t n_chunks = (int64_t)(2.0 * (double)M * (double)N * (double)K / BLAS_CHUNK_FLOPS);
    if (n_chunks > dim / BLAS_CHUNK_MIN) n_chunks = dim / BLAS_CHUNK_MIN;
    if (n_chunks > BLAS_CHUNK_MAX) n_chunks = BLAS_CHUNK_MAX;
    blas_threads(1);
    if (n_chunks < 2 || nt < 2) {
        blas_call(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* chunk size: a multiple of 16 (the kernels' unroll), covering dim */
    int64_t step = (dim + n_chunks - 1) / n_chunks;
    step = (step + 15) / 16 * 16;
    n_chunks = (dim + step - 1) / step;
    (void)nt;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
#endif
    for (int64_t c = 0; c < n_chunks; c++) {
        const int64_t lo = c * step, len = dim - lo < step ? dim - lo : step;
        if (by_rows) /* rows lo.. of C and of op(A) */
            blas_call(trans_a, trans_b, len, N, K, alpha, trans_a ? A + lo : A + lo * lda, lda, B,
                      ldb, beta, C + lo * ldc, ldc);
        else /* columns lo.. of C and of op(B) */
            blas_call(trans_a, trans_b, M, len, K, alpha, A, lda, trans_b ? B + lo * ldb : B + lo,
                      ldb, beta, C + lo, ldc);
    }
}

/* 1 if the direct kernel may take this product (it still checks the shape
 * and the CPU). It runs on one thread, so with several threads it takes
 * only what the other path would run on one thread too: OpenBLAS's
 * products below blas_chunked's first split, and, where the built-in
 * blocked kernel (which splits every product) would serve, products under
 * 0.5 MFLOP, where sharing them costs more than it gives. */
static int small_may_take(int n_threads, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                          int64_t lda, int64_t ldb, int64_t ldc) {
    if (g_blas.requested == REQ_OPENBLAS ||
        atomic_load_explicit(&g_force_builtin, memory_order_relaxed))
        return 0;
    if (n_threads <= 1) return 1;
    const double flops = 2.0 * (double)M * (double)N * (double)K;
    const int blas = g_blas.sgemm && !gemm_use_builtin(M, N, K) &&
                     blas_args_ok(trans_a, trans_b, M, N, K, lda, ldb, ldc);
    return blas ? flops < 2.0 * BLAS_CHUNK_FLOPS : flops < AUTO_BUILTIN_MIN_FLOPS;
}

void attn__sgemm(int n_threads, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                 float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                 float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    blas_ensure();
    /* Products with a short K take the direct kernel of gemm_small.c on
     * AVX-512 CPUs (it skips packing op(A) and the call's fixed cost),
     * unless OpenBLAS was asked for by name (small_may_take). */
    if (small_may_take(n_threads, trans_a, trans_b, M, N, K, lda, ldb, ldc) &&
        attn__sgemm_small(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
        return;
    /* OpenBLAS (unless the auto policy sends this shape to the built-in
     * kernel, see choose_policy) takes every size: measured on Zen 3 (its
     * Zen kernels) and on Sapphire Rapids (SkylakeX kernels), it is faster
     * than the built-in kernel from 4x4x4 up, so there is no small-size
     * cut-over. */
    if (g_blas.sgemm && !atomic_load_explicit(&g_force_builtin, memory_order_relaxed) &&
        !gemm_use_builtin(M, N, K) && blas_args_ok(trans_a, trans_b, M, N, K, lda, ldb, ldc)) {
        blas_chunked(n_threads < 1 ? 1 : n_threads, trans_a, trans_b, M, N, K, alpha, A, lda, B,
                     ldb, beta, C, ldc);
        return;
    }
    attn__sgemm_builtin(n_threads, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
