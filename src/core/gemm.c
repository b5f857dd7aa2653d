/* gemm.c: single-precision matrix products (C = alpha op(A) op(B) + beta C,
 * row-major) for every op of attn.
 *
 * Two back ends:
 *   - OpenBLAS, found at RUN time with dlopen (nothing BLAS-related is needed
 *     to build attn: the prototypes below are our own). Loading happens once,
 *     on first use or in attn_blas_select.
 *   - the built-in blocked kernel (gemm_builtin.c): panels of A and B are
 *     packed, and a register-tile micro-kernel (AVX-512, AVX2+FMA, or plain
 *     C, picked at run time from the CPU's features) runs over them;
 *   - the direct kernel for short K (gemm_small.c), which packs nothing.
 * This file loads OpenBLAS, holds the ATTN_BLAS policy, the double
 * reference and the dispatch (attn__sgemm).
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

/* ==== reference ============================================================= */

void attn__sgemm_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                     int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) { /* BLAS: A and B are not read */
        attn__gemm_scale_c(M, N, beta, C, ldc);
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
        attn__gemm_scale_c(M, N, beta, C, ldc);
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
