/* test_gemm.c: the matrix products (src/core/gemm*.c) against the double
 * reference, every built-in micro-kernel the CPU has, OpenBLAS when it is
 * loaded, thread-count determinism, the BLAS edge cases (zero sizes, alpha
 * 0, beta 0 with NaN in C), and the product ops' transposed gradients.
 *
 * Tolerance. The reference accumulates in double and rounds once; a float
 * kernel accumulates in float, in blocks of KC, with FMA or not. For
 * independent inputs of random sign the rounding errors of a K-term float
 * dot product grow like sqrt(K) u sum_k |a_k b_k| (u = 2^-24; Higham & Mary,
 * "A new approach to probabilistic rounding error analysis", 2019); the
 * deterministic worst case is K u sum_k |a_k b_k|. Each case therefore gets
 *     atol = 8 sqrt(K) u |alpha| max_ij sum_k |a_ik b_kj|
 * computed from its own data (8: a wide margin on the probabilistic constant,
 * still 20-40x below the deterministic bound at K = 65..300), and
 *     rtol = 4 u
 * for the final alpha scaling and beta C addition (a few roundings of the
 * result). A wrong index or a missed term changes an element by about
 * |a b| ~ 0.3, orders of magnitude above these.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/internal.h"
#include "test.h"


#define U 5.9604644775390625e-8 /* 2^-24 */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float urand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 40) / (double)(1ull << 23) - 1.0);
}

typedef struct gcase {
    int ta, tb;
    int64_t M, N, K, lda, ldb, ldc;
    float alpha, beta;
    float *A, *B, *C0; /* inputs; C0 is C before the product */
    float *ref;        /* the reference result */
    float atol;
} gcase;

/* Buffers with padded leading dimensions; the padding holds values too, so
 * reading it or writing it shows up. */
static int gcase_init(gcase *g, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                      float beta) {
    memset(g, 0, sizeof *g);
    g->ta = ta;
    g->tb = tb;
    g->M = M;
    g->N = N;
    g->K = K;
    g->alpha = alpha;
    g->beta = beta;
    int64_t ra = ta ? K : M, ca = ta ? M : K; /* A as stored */
    int64_t rb = tb ? N : K, cb = tb ? K : N;
    g->lda = ca + 3;
    g->ldb = cb + 5;
    g->ldc = N + 2;
    size_t na = (size_t)(ra * g->lda), nb = (size_t)(rb * g->ldb), nc = (size_t)(M * g->ldc);
    g->A = malloc((na ? na : 1) * sizeof(float));
    g->B = malloc((nb ? nb : 1) * sizeof(float));
    g->C0 = malloc((nc ? nc : 1) * sizeof(float));
    g->ref = malloc((nc ? nc : 1) * sizeof(float));
    if (!g->A || !g->B || !g->C0 || !g->ref) return -1;
    for (size_t i = 0; i < na; i++) g->A[i] = urand();
    for (size_t i = 0; i < nb; i++) g->B[i] = urand();
    for (size_t i = 0; i < nc; i++) g->C0[i] = urand();
    memcpy(g->ref, g->C0, nc * sizeof(float));
    attn__sgemm_ref(ta, tb, M, N, K, alpha, g->A, g->lda, g->B, g->ldb, beta, g->ref, g->ldc);
    double worst = 0.0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < K; k++) {
                double a = ta ? g->A[k * g->lda + i] : g->A[i * g->lda + k];
                double b = tb ? g->B[j * g->ldb + k] : g->B[k * g->ldb + j];
                s += fabs(a * b);
            }
            if (s > worst) worst = s;
        }
    g->atol = (float)(8.0 * sqrt((double)K) * U * fabs(alpha) * worst);
    return 0;
}

static void gcase_free(gcase *g) {
    free(g->A);
    free(g->B);
    free(g->C0);
    free(g->ref);
}

typedef void (*gemm_fn)(int nt, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                        float *C, int64_t ldc);

/* Runs fn on a copy of C0; returns the result (caller frees). */
static float *gcase_run(const gcase *g, gemm_fn fn, int nt) {
    size_t nc = (size_t)(g->M * g->ldc);
    float *c = malloc((nc ? nc : 1) * sizeof(float));
    if (!c) return NULL;
    memcpy(c, g->C0, nc * sizeof(float));
    fn(nt, g->ta, g->tb, g->M, g->N, g->K, g->alpha, g->A, g->lda, g->B, g->ldb, g->beta, c,
       g->ldc);
    return c;
}

/* got vs the reference: the M x N part within tolerance, the padding
 * columns of C untouched (bitwise). */
static void gcase_check(const gcase *g, const float *got, const char *who, int nt) {
    char what[160];
    snprintf(what, sizeof what, "%s nt=%d ta=%d tb=%d M=%lld N=%lld K=%lld", who, nt, g->ta, g->tb,
             (long long)g->M, (long long)g->N, (long long)g->K);
    for (int64_t i = 0; i < g->M; i++) {
        if (!test_allclose(what, got + i * g->ldc, g->ref + i * g->ldc, g->N, g->atol, 4.0f * (float)U))
            return;
        CHECK(memcmp(got + i * g->ldc + g->N, g->C0 + i * g->ldc + g->N,
                     (size_t)(g->ldc - g->N) * sizeof(float)) == 0,
              "%s: padding of row %lld was written", what, (long long)i);
    }
}

/* The sizes: every mix of {1, 7, 65, 129} (below, at and across the tile
 * sizes 4/6/12 x 16/32 of the kernels), plus K = 300 (two K blocks of 256),
 * 300 in M and N, and N = 4133 (two column blocks of NC = 4096). */
static const int64_t SIZES[][3] = {
    {300, 300, 300}, {300, 7, 129}, {1, 300, 65}, {65, 129, 300}, {129, 300, 1},
    {7, 65, 300},    {3, 4133, 5},  {13, 33, 17},
};
static const int64_t SMALL[] = {1, 7, 65, 129};

static int n_cases(void) { return 4 * 4 * 4 + (int)(sizeof SIZES / sizeof SIZES[0]); }
static void case_dims(int i, int64_t *M, int64_t *N, int64_t *K) {
    if (i < 64) {
        *M = SMALL[i / 16];
        *N = SMALL[(i / 4) % 4];
        *K = SMALL[i % 4];
    } else {
        *M = SIZES[i - 64][0];
        *N = SIZES[i - 64][1];
        *K = SIZES[i - 64][2];
    }
}

/* One pass over every size and transpose: each built-in kernel the CPU has
 * (1 and 2 threads, which must agree bitwise) and attn__sgemm (OpenBLAS when
 * loaded, 1 and 2 threads). alpha/beta vary with the case. */
static void test_against_ref(void) {
    /* the two AVX-512 blocks run the same FMA chains with the same KC, so
     * they must also agree with each other bit for bit */
    static const char *const kernels[] = {"avx512 6x64", "avx512 12x32", "avx2", "scalar"};
    enum { NK = 4 };
    int have[NK];
    for (int k = 0; k < NK; k++) have[k] = attn__gemm_force_kernel(kernels[k]) == 0;
    attn__gemm_force_kernel(NULL);
    int blas = attn__blas_loaded();

    TEST_BEGIN("gemm: builtin kernels and attn__sgemm vs reference (ragged, 4 transposes)");
    for (int i = 0; i < n_cases(); i++) {
        int64_t M, N, K;
        case_dims(i, &M, &N, &K);
        for (int t = 0; t < 4; t++) {
            static const float alphas[] = {0.75f, 1.0f, -1.25f};
            static const float betas[] = {-0.5f, 0.0f, 1.0f, 2.0f};
            gcase g;
            if (gcase_init(&g, t >> 1, t & 1, M, N, K, alphas[(i + t) % 3], betas[(i + t) % 4])) {
                CHECK(0, "out of memory");
                gcase_free(&g);
                continue;
            }
            float *wide = NULL; /* the 6 x 64 result, for the 12 x 32 one */
            for (int k = 0; k < NK; k++) {
                if (!have[k]) continue;
                attn__gemm_force_kernel(kernels[k]);
                float *c1 = gcase_run(&g, attn__sgemm_builtin, 1);
                float *c2 = gcase_run(&g, attn__sgemm_builtin, 2);
                if (c1 && c2) {
                    gcase_check(&g, c1, attn__gemm_kernel_name(), 1);
                    CHECK(memcmp(c1, c2, (size_t)(M * g.ldc) * sizeof(float)) == 0,
                          "%s: 1 and 2 threads differ (ta=%d tb=%d M=%lld N=%lld K=%lld)",
                          attn__gemm_kernel_name(), g.ta, g.tb, (long long)M, (long long)N,
                          (long long)K);
                    if (k == 1 && wide)
                        CHECK(memcmp(c1, wide, (size_t)(M * g.ldc) * sizeof(float)) == 0,
                              "avx512 6x64 and 12x32 differ (ta=%d tb=%d M=%lld N=%lld K=%lld)",
                              g.ta, g.tb, (long long)M, (long long)N, (long long)K);
                }
                if (k == 0) {
                    wide = c1;
                    c1 = NULL;
                }
                free(c1);
                free(c2);
            }
            free(wide);
            attn__gemm_force_kernel(NULL);
            if (blas)
                for (int nt = 1; nt <= 2; nt++) {
                    float *c = gcase_run(&g, attn__sgemm, nt);
                    if (c) gcase_check(&g, c, "attn__sgemm (openblas)", nt);
                    free(c);
                }
            gcase_free(&g);
        }
    }
    TEST_END();
}

/* BLAS conventions every path keeps: M or N = 0 touches nothing; K = 0 or
 * alpha = 0 scales C by beta without reading A or B; beta = 0 never reads C
 * (NaN there does not survive). */
static void test_edges(void) {
    TEST_BEGIN("gemm: zero sizes, alpha = 0, beta = 0 over NaN");
    gemm_fn fns[3] = {attn__sgemm, attn__sgemm_builtin, NULL};
    const char *names[3] = {"attn__sgemm", "attn__sgemm_builtin", "attn__sgemm_ref"};
    for (int f = 0; f < 3; f++) {
        float A[6 * 40], B[40 * 40], C[6 * 40];
        for (int i = 0; i < 6 * 40; i++) A[i] = NAN;
        for (int i = 0; i < 40 * 40; i++) B[i] = NAN;
        for (int i = 0; i < 6 * 40; i++) C[i] = 2.0f;
#define RUN(M, N, K, alpha, beta)                                                        \
    (fns[f] ? fns[f](2, 0, 0, M, N, K, alpha, A, 40, B, 40, beta, C, 40)                 \
            : attn__sgemm_ref(0, 0, M, N, K, alpha, A, 40, B, 40, beta, C, 40))
        RUN(0, 40, 40, 1.0f, 0.0f);
        RUN(6, 0, 40, 1.0f, 0.0f);
        CHECK(C[0] == 2.0f && C[6 * 40 - 1] == 2.0f, "%s: M or N = 0 wrote C", names[f]);
        RUN(6, 40, 0, 1.0f, 0.5f); /* K = 0: C = 0.5 C */
        CHECK(C[0] == 1.0f && C[5 * 40 + 39] == 1.0f, "%s: K = 0 gave %g, expected 1", names[f],
              (double)C[0]);
        RUN(6, 40, 40, 0.0f, 3.0f); /* alpha = 0: A, B (NaN) not read */
        CHECK(C[7] == 3.0f, "%s: alpha = 0 gave %g, expected 3", names[f], (double)C[7]);
        for (int i = 0; i < 6 * 40; i++) A[i] = 1.0f;
        for (int i = 0; i < 40 * 40; i++) B[i] = 0.5f;
        for (int i = 0; i < 6 * 40; i++) C[i] = NAN;
        RUN(6, 40, 40, 1.0f, 0.0f); /* beta = 0: C (NaN) not read: 40 * 0.5 = 20 */
        int ok = 1;
        for (int i = 0; i < 6 * 40; i++) ok &= C[i] == 20.0f;
        CHECK(ok, "%s: beta = 0 over NaN gave %g, expected 20", names[f], (double)C[0]);
#undef RUN
    }
    TEST_END();
}

/* The builtin kernel on a product large enough for both threads to take
 * several tiles, 1 vs 2 threads, bitwise (and the row split vs the column
 * split of the work). */
static void test_threads_bitwise(void) {
    TEST_BEGIN("gemm: builtin is bitwise identical for 1 and 2 threads");
    static const int64_t dims[][3] = {{257, 200, 300}, {5, 700, 64}, {64, 64, 1000}};
    for (int d = 0; d < 3; d++) {
        gcase g;
        if (gcase_init(&g, d == 2, d == 1, dims[d][0], dims[d][1], dims[d][2], 1.0f, 0.0f) == 0) {
            float *c1 = gcase_run(&g, attn__sgemm_builtin, 1);
            float *c2 = gcase_run(&g, attn__sgemm_builtin, 2);
            if (c1 && c2) {
                gcase_check(&g, c1, attn__gemm_kernel_name(), 1);
                CHECK(memcmp(c1, c2, (size_t)(g.M * g.ldc) * sizeof(float)) == 0,
                      "1 and 2 threads differ at M=%lld N=%lld K=%lld", (long long)g.M,
                      (long long)g.N, (long long)g.K);
            }
            free(c1);
            free(c2);
        }
        gcase_free(&g);
    }
    TEST_END();
}

/* OpenBLAS on several threads runs as fixed chunks of C (by rows, or by
 * columns when C is wide), each a 1-thread call, taken dynamically
 * (src/core/gemm.c, blas_chunked): the result is right, for every
 * transpose, and the same bits for 2 and 3 threads since the cut depends on
 * the shape only. */
static void test_blas_chunks(void) {
    if (!attn__blas_loaded()) {
        test_skip("gemm: OpenBLAS chunks", "OpenBLAS is not loaded");
        return;
    }
    TEST_BEGIN("gemm: OpenBLAS in chunks on 2 and 3 threads: right, and the same bits");
    static const int64_t dims[][3] = {{1000, 70, 300}, {70, 1000, 300}, {513, 257, 129},
                                      {1024, 512, 256}, {130, 1100, 64}};
    for (int d = 0; d < 5; d++)
        for (int t = 0; t < 4; t++) {
            gcase g;
            if (gcase_init(&g, t >> 1, t & 1, dims[d][0], dims[d][1], dims[d][2], 1.0f,
                           d % 2 ? 0.5f : 0.0f) != 0) {
                CHECK(0, "out of memory");
                gcase_free(&g);
                continue;
            }
            float *c2 = gcase_run(&g, attn__sgemm, 2);
            float *c3 = gcase_run(&g, attn__sgemm, 3);
            if (c2 && c3) {
                gcase_check(&g, c2, "attn__sgemm (openblas chunks)", 2);
                CHECK(memcmp(c2, c3, (size_t)(g.M * g.ldc) * sizeof(float)) == 0,
                      "2 and 3 threads differ at ta=%d tb=%d M=%lld N=%lld K=%lld", g.ta, g.tb,
                      (long long)g.M, (long long)g.N, (long long)g.K);
            }
            free(c2);
            free(c3);
            gcase_free(&g);
        }
    TEST_END();
}

static void test_info_and_select(void) {
    TEST_BEGIN("gemm: attn_info and attn_blas_select");
    attn_info_t info;
    attn_info(&info);
    CHECK(strcmp(info.version, ATTN_VERSION_STRING) == 0, "version %s", info.version);
    CHECK(info.abi == ATTN_ABI_VERSION && attn_abi_version() == ATTN_ABI_VERSION,
          "abi %d / attn_abi_version() %d, header %d", info.abi, attn_abi_version(), ATTN_ABI_VERSION);
    CHECK(info.simd && (strcmp(info.simd, "avx512-bf16") == 0 || strcmp(info.simd, "avx512") == 0 ||
                        strcmp(info.simd, "avx2") == 0 || strcmp(info.simd, "sse2") == 0 ||
                        strcmp(info.simd, "none") == 0),
          "simd '%s'", info.simd ? info.simd : "(null)");
    CHECK(info.max_threads >= 1, "max_threads %d", info.max_threads);
    if (attn__blas_loaded()) {
        CHECK(strncmp(info.blas, "openblas ", 9) == 0, "blas '%s'", info.blas);
        CHECK(info.blas_core[0] && info.blas_core_why[0], "core '%s' why '%s'", info.blas_core,
              info.blas_core_why);
        CHECK(info.blas_policy && (strncmp(info.blas_policy, "auto", 4) == 0 ||
                                   strncmp(info.blas_policy, "OpenBLAS", 8) == 0),
              "policy '%s'", info.blas_policy ? info.blas_policy : "(null)");
        /* Too late to change: the library is loaded. Asking for it again is fine. */
        CHECK(attn_blas_select("builtin") == ATTN_ERR_STATE, "select(builtin) after use");
        CHECK(attn_blas_select("openblas") == ATTN_OK, "select(openblas) again: %s",
              attn_last_error());
    } else {
        CHECK(strncmp(info.blas, "builtin (", 9) == 0, "blas '%s'", info.blas);
        CHECK(attn_blas_select("builtin") == ATTN_OK, "select(builtin) again: %s",
              attn_last_error());
        CHECK(attn_blas_select("openblas") != ATTN_OK, "select(openblas) after builtin");
    }
    CHECK(attn_blas_select("mkl") == ATTN_ERR_INVALID_ARG, "select(mkl)");
    CHECK(strstr(attn_last_error(), "mkl") != NULL, "message '%s'", attn_last_error());
    TEST_END();
}

/* ---- the ops ---------------------------------------------------------------- */

static attn_tensor *rand_tensor(attn_ctx *ctx, int ndim, const int64_t *shape, int grad) {
    attn_tensor *t = attn_tensor_new(ctx, ATTN_F32, ndim, shape);
    if (!t) return NULL;
    float *p = attn_f32(t);
    for (int64_t i = 0; i < attn_tensor_numel(t); i++) p[i] = urand();
    t->requires_grad = grad;
    return t;
}

static attn_tensor *clone_leaf(attn_ctx *ctx, const attn_tensor *t) {
    attn_tensor *c = attn_tensor_from(ctx, ATTN_F32, t->ndim, t->shape, t->data);
    if (c) c->requires_grad = 1;
    return c;
}

/* bmm with trans flags must give the values and gradients of bmm on
 * explicitly transposed inputs (whose gradients flow through transpose and
 * the contiguous copy: an independent path). The two graphs live in two
 * contexts, each with its own tape. */
static void test_bmm_transposes(void) {
    TEST_BEGIN("bmm: transposed operands match explicit transposes (values and gradients)");
    attn_ctx *c1 = NULL, *c2 = NULL;
    CHECK_OK(attn_ctx_new(&c1, NULL));
    CHECK_OK(attn_ctx_new(&c2, NULL));
    const int64_t Bt = 2, H = 3, M = 7, K = 65, N = 9;
    /* Float GEMMs of the same data in two orders: the gemm tolerance for
     * K = 65 (or N = 9 / M = 7 for the gradients) with |a|, |b|, |dy| < 1. */
    const float atol = (float)(8.0 * sqrt(65.0) * U * 65.0), rtol = 4.0f * (float)U;
    for (int t = 0; t < 4 && c1 && c2; t++) {
        int ta = t >> 1, tb = t & 1;
        attn_ctx_reset(c1);
        attn_ctx_reset(c2);
        int64_t sa[4] = {Bt, H, ta ? K : M, ta ? M : K}, sb[4] = {Bt, H, tb ? N : K, tb ? K : N};
        attn_tensor *a1 = rand_tensor(c1, 4, sa, 1), *b1 = rand_tensor(c1, 4, sb, 1);
        attn_tensor *a2 = a1 ? clone_leaf(c2, a1) : NULL, *b2 = b1 ? clone_leaf(c2, b1) : NULL;
        attn_tensor *y1 = attn_bmm(c1, a1, b1, ta, tb);
        attn_tensor *y2 = attn_bmm(c2, ta ? attn_transpose(c2, a2, -1, -2) : a2,
                                   tb ? attn_transpose(c2, b2, -1, -2) : b2, 0, 0);
        CHECK(y1 && y2, "ta=%d tb=%d: bmm failed: %s %s", ta, tb, attn_ctx_error(c1),
              attn_ctx_error(c2));
        if (!y1 || !y2) continue;
        int64_t n = attn_tensor_numel(y1);
        char what[64];
        snprintf(what, sizeof what, "bmm ta=%d tb=%d: y", ta, tb);
        test_allclose(what, attn_f32(y1), attn_f32(y2), n, atol, rtol);
        float *gy = malloc((size_t)n * sizeof(float));
        if (!gy) continue;
        for (int64_t i = 0; i < n; i++) gy[i] = urand();
        CHECK_OK(attn_backward_from(c1, y1, gy));
        CHECK_OK(attn_backward_from(c2, y2, gy));
        free(gy);
        if (!a1->grad || !a2->grad || !b1->grad || !b2->grad) {
            CHECK(0, "ta=%d tb=%d: a gradient is missing", ta, tb);
            continue;
        }
        snprintf(what, sizeof what, "bmm ta=%d tb=%d: da", ta, tb);
        test_allclose(what, a1->grad, a2->grad, attn_tensor_numel(a1), atol, rtol);
        snprintf(what, sizeof what, "bmm ta=%d tb=%d: db", ta, tb);
        test_allclose(what, b1->grad, b2->grad, attn_tensor_numel(b1), atol, rtol);
    }
    attn_ctx_free(c1);
    attn_ctx_free(c2);
    TEST_END();
}

/* linear against matmul with an explicitly transposed weight, and its bias
 * gradient against plain column sums of dy. */
static void test_linear(void) {
    TEST_BEGIN("linear: matches matmul(x, w^T) + b, values and gradients");
    attn_ctx *c1 = NULL, *c2 = NULL;
    CHECK_OK(attn_ctx_new(&c1, NULL));
    CHECK_OK(attn_ctx_new(&c2, NULL));
    if (c1 && c2) {
        const int64_t sx[3] = {2, 33, 70}, sw[2] = {40, 70}, sb[1] = {40};
        attn_tensor *x1 = rand_tensor(c1, 3, sx, 1), *w1 = rand_tensor(c1, 2, sw, 1);
        attn_tensor *b1 = rand_tensor(c1, 1, sb, 1);
        attn_tensor *x2 = x1 ? clone_leaf(c2, x1) : NULL, *w2 = w1 ? clone_leaf(c2, w1) : NULL;
        attn_tensor *y1 = attn_linear(c1, x1, w1, b1);
        attn_tensor *y2 = attn_matmul(c2, x2, attn_transpose(c2, w2, 0, 1));
        CHECK(y1 && y2, "linear/matmul failed: %s %s", attn_ctx_error(c1), attn_ctx_error(c2));
        if (y1 && y2 && b1) {
            int64_t n = attn_tensor_numel(y1), R = 66, O = 40;
            float *y2b = malloc((size_t)n * sizeof(float)), *gy = malloc((size_t)n * sizeof(float));
            double colsum[40] = {0};
            if (y2b && gy) {
                for (int64_t r = 0; r < R; r++)
                    for (int64_t j = 0; j < O; j++) {
                        y2b[r * O + j] = attn_f32(y2)[r * O + j] + attn_f32(b1)[j];
                        gy[r * O + j] = urand();
                        colsum[j] += gy[r * O + j];
                    }
                /* K = 70, |x|, |w| < 1; the bias adds one rounding. */
                const float atol = (float)(8.0 * sqrt(70.0) * U * 70.0), rtol = 4.0f * (float)U;
                test_allclose("linear y", attn_f32(y1), y2b, n, atol, rtol);
                CHECK_OK(attn_backward_from(c1, y1, gy));
                CHECK_OK(attn_backward_from(c2, y2, gy));
                if (x1->grad && x2->grad && w1->grad && w2->grad && b1->grad) {
                    test_allclose("linear dx", x1->grad, x2->grad, attn_tensor_numel(x1),
                                  (float)(8.0 * sqrt(40.0) * U * 40.0), rtol);
                    test_allclose("linear dw", w1->grad, w2->grad, attn_tensor_numel(w1),
                                  (float)(8.0 * sqrt(66.0) * U * 66.0), rtol);
                    float cs[40];
                    for (int j = 0; j < 40; j++) cs[j] = (float)colsum[j];
                    test_allclose("linear db", b1->grad, cs, 40, 0.0f, 2.0f * (float)U);
                } else {
                    CHECK(0, "a gradient is missing");
                }
            }
            free(y2b);
            free(gy);
        }
    }
    attn_ctx_free(c1);
    attn_ctx_free(c2);
    TEST_END();
}

/* The error message the public headers quote. */
static void test_messages(void) {
    TEST_BEGIN("matmul: shape errors name the op, the shapes and the dimensions");
    attn_ctx *ctx = NULL;
    CHECK_OK(attn_ctx_new(&ctx, NULL));
    if (ctx) {
        const int64_t sa[2] = {4, 3}, sb[2] = {5, 2};
        attn_tensor *a = attn_tensor_new(ctx, ATTN_F32, 2, sa), *b = attn_tensor_new(ctx, ATTN_F32, 2, sb);
        CHECK(attn_matmul(ctx, a, b) == NULL, "matmul accepted [4,3] @ [5,2]");
        CHECK(attn_ctx_status(ctx) == ATTN_ERR_SHAPE, "status %s", attn_status_str(attn_ctx_status(ctx)));
        CHECK(strcmp(attn_ctx_error(ctx), "matmul: a [4,3] and b [5,2]: inner dimensions differ (3 vs 5)") == 0,
              "message '%s'", attn_ctx_error(ctx));
    }
    attn_ctx_free(ctx);
    TEST_END();
}

/* The direct kernel of gemm_small.c (what attn__sgemm runs for short K on
 * AVX-512 CPUs): random shapes over every transpose, padded strides, alpha
 * and beta mixes (beta = 0 over NaN). attn__sgemm_small takes exactly the
 * products its rule fits and leaves C untouched on the others; the kernel
 * (attn__sgemm_direct where the rule declines: TT, K up to 300) is checked
 * on every case against the double reference within the suite's tolerance
 * and, bit for bit, against its stated order: one fmaf chain per element
 * over k = 0..K-1, then alpha * sum (+ beta * C) rounded step by step, so
 * that a reordered sum, a lost FMA, a row block that starts in the wrong
 * place or a column mask one lane off fails. */
static int small_cpu_has_avx512(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
#else
    return 0;
#endif
}

static void test_small_direct(void) {
    TEST_BEGIN("gemm: the direct kernel for short K, against the reference and its FMA order");
    const int avx512 = small_cpu_has_avx512();
    int taken = 0, declined = 0;
    static const float alphas[] = {1.0f, -0.5f, 0.3f};
    static const float betas[] = {0.0f, 1.0f, 0.5f};
    for (int c = 0; c < 240; c++) {
        /* log-uniform sizes in 1..300, biased to the kernel's blocks */
        int64_t dims[3];
        for (int d = 0; d < 3; d++) {
            double u = 0.5 * (urand() + 1.0f);
            dims[d] = (int64_t)exp(u * log(300.0));
            if (dims[d] < 1) dims[d] = 1;
        }
        if (c % 5 == 0) dims[2] = 16 * (1 + c % 16); /* K up to 256 */
        if (c % 7 == 0) dims[0] = 64;
        const int ta = (c >> 1) & 1, tb = c & 1;
        const float alpha = alphas[c % 3], beta = betas[(c / 3) % 3];
        gcase g;
        if (gcase_init(&g, ta, tb, dims[0], dims[1], dims[2], alpha, beta) != 0) {
            CHECK(0, "out of memory");
            gcase_free(&g);
            continue;
        }
        const size_t nc = (size_t)(g.M * g.ldc);
        if (beta == 0.0f)
            for (int64_t i = 0; i < g.M; i++) g.C0[i * g.ldc + (i % g.N)] = NAN; /* not read */
        float *c1 = malloc(nc * sizeof(float));
        if (!c1) {
            CHECK(0, "out of memory");
            gcase_free(&g);
            continue;
        }
        memcpy(c1, g.C0, nc * sizeof(float));
        const int fits = attn__sgemm_small_fits(ta, tb, g.M, g.N, g.K);
        const int ran = attn__sgemm_small(ta, tb, g.M, g.N, g.K, alpha, g.A, g.lda, g.B, g.ldb,
                                          beta, c1, g.ldc);
        CHECK(ran == (fits && avx512), "ta=%d tb=%d M=%lld N=%lld K=%lld: ran %d, fits %d", ta,
              tb, (long long)g.M, (long long)g.N, (long long)g.K, ran, fits);
        CHECK(!(ta && tb) || !fits, "a TT product was taken");
        if (!ran) {
            declined++;
            CHECK(memcmp(c1, g.C0, nc * sizeof(float)) == 0, "declined product wrote C");
        }
        /* the kernel itself on every shape (the rule only picks where it
         * runs): TT and K beyond 256 included */
        const int direct = ran || attn__sgemm_direct(ta, tb, g.M, g.N, g.K, alpha, g.A, g.lda,
                                                     g.B, g.ldb, beta, c1, g.ldc);
        CHECK(direct == avx512, "attn__sgemm_direct ran %d on a CPU with AVX-512 %d", direct,
              avx512);
        if (direct) {
            taken += ran;
            gcase_check(&g, c1, ran ? "attn__sgemm_small" : "attn__sgemm_direct", 1);
            int64_t bad = -1;
            for (int64_t i = 0; i < g.M && bad < 0; i++)
                for (int64_t j = 0; j < g.N; j++) {
                    float sum = 0.0f;
                    for (int64_t k = 0; k < g.K; k++) {
                        float a = ta ? g.A[k * g.lda + i] : g.A[i * g.lda + k];
                        float b = tb ? g.B[j * g.ldb + k] : g.B[k * g.ldb + j];
                        sum = fmaf(a, b, sum);
                    }
                    volatile float t = alpha * sum;
                    if (beta != 0.0f) {
                        volatile float bc = beta * g.C0[i * g.ldc + j];
                        t = t + bc;
                    }
                    if (memcmp(&c1[i * g.ldc + j], (const float *)&t, sizeof(float)) != 0) {
                        bad = i * g.N + j;
                        break;
                    }
                }
            CHECK(bad < 0, "ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g beta=%g: element %lld is "
                  "not the FMA chain's bits", ta, tb, (long long)g.M, (long long)g.N,
                  (long long)g.K, (double)alpha, (double)beta, (long long)bad);
        }
        free(c1);
        gcase_free(&g);
    }
    if (avx512)
        CHECK(taken >= 60 && declined >= 20, "only %d products taken, %d declined", taken,
              declined);
    else
        CHECK(taken == 0, "taken without AVX-512");
    TEST_END();
}

void suite_gemm(void) {
    test_edges();
    test_against_ref();
    test_small_direct();
    test_threads_bitwise();
    test_blas_chunks();
    test_info_and_select();
    test_bmm_transposes();
    test_linear();
    test_messages();
}
