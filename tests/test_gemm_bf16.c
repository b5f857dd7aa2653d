/* test_gemm_bf16.c: the bf16 matrix products (src/core/gemm_bf16.c) and the
 * context's precision setting.
 *
 * What is checked:
 *   - the rounding to bf16: ties to even, NaN stays NaN, infinities stay,
 *     values above the largest bf16 become infinite, signed zeros;
 *   - every kernel the CPU has (AMX tiles, the rounded-f32 path) against the
 *     reference (rounded operands, sums in double) on ragged sizes, all four
 *     transposes, alpha and beta (beta 0 with NaN in C);
 *   - AMX results bitwise equal on 1 and 2 threads;
 *   - the error against the f32 product of the unrounded operands stays
 *     within the bound of docs/mixed_precision.md and is not zero (the
 *     rounding really happens);
 *   - the product ops under ATTN_PRECISION_BF16: forward and every gradient
 *     against the reference kernels under the same precision.
 *
 * Tolerance against the reference. A product of two bf16 numbers is exact in
 * float, so a kernel differs from the reference only by the float rounding
 * of its K-term sum: as in test_gemm.c,
 *     atol = 8 sqrt(K) u |alpha| max_ij sum_k |a_ik b_kj|,  rtol = 4 u,
 * u = 2^-24, the products taken of the rounded operands.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/internal.h"
#include "test.h"

#define U 5.9604644775390625e-8 /* 2^-24 */

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static float urand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 40) / (double)(1ull << 23) - 1.0);
}

static float bits_to_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static void test_rounding(void) {
    TEST_BEGIN("bf16 rounding: nearest even, NaN, infinities, overflow, zeros");
    /* 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even one (1) */
    CHECK(attn__bf16_round(1.0f + 0x1p-8f) == 1.0f, "1 + 2^-8 -> %a", attn__bf16_round(1.0f + 0x1p-8f));
    /* 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: even is 1 + 2^-6 */
    CHECK(attn__bf16_round(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f, "1 + 3*2^-8 -> %a",
          attn__bf16_round(1.0f + 3 * 0x1p-8f));
    /* just above the tie rounds up */
    CHECK(attn__bf16_round(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f, "above the tie");
    CHECK(attn__bf16_round(-1.0f - 0x1p-8f - 0x1p-20f) == -1.0f - 0x1p-7f, "negative above the tie");
    CHECK(isnan(attn__bf16_round(NAN)), "NaN");
    /* a NaN whose payload sits only in the low 16 bits must not become inf */
    CHECK(isnan(attn__bf16_round(bits_to_float(0x7F800001u))), "low-payload NaN");
    CHECK(isinf(attn__bf16_round(INFINITY)) && attn__bf16_round(-INFINITY) < 0, "infinities");
    CHECK(isinf(attn__bf16_round(FLT_MAX)), "FLT_MAX rounds to inf (as torch's bfloat16)");
    CHECK(float_bits(attn__bf16_round(-0.0f)) == 0x80000000u, "-0 keeps its sign");
    CHECK(attn__bf16_round(0x1p-130f) == 0x1p-130f, "a subnormal that fits");
    /* every result has its low 16 bits clear */
    int low = 0;
    for (int i = 0; i < 1000; i++) low |= (int)(float_bits(attn__bf16_round(urand() * 1e3f)) & 0xFFFFu);
    CHECK(low == 0, "low bits left: %x", low);
    TEST_END();
}

typedef struct bcase {
    int ta, tb;
    int64_t M, N, K, lda, ldb, ldc;
    float alpha, beta;
    float *A, *B, *C0, *ref;
    double atol, sumabs; /* atol against the reference; max_ij sum_k |a b| (rounded) */
} bcase;

static int bcase_init(bcase *g, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                      float beta) {
    memset(g, 0, sizeof *g);
    g->ta = ta, g->tb = tb, g->M = M, g->N = N, g->K = K, g->alpha = alpha, g->beta = beta;
    const int64_t ra = ta ? K : M, ca = ta ? M : K, rb = tb ? N : K, cb = tb ? K : N;
    g->lda = ca + 5, g->ldb = cb + 2, g->ldc = N + 3;
    g->A = malloc(sizeof(float) * (size_t)(ra * g->lda));
    g->B = malloc(sizeof(float) * (size_t)(rb * g->ldb));
    g->C0 = malloc(sizeof(float) * (size_t)(M * g->ldc));
    g->ref = malloc(sizeof(float) * (size_t)(M * g->ldc));
    if (!g->A || !g->B || !g->C0 || !g->ref) return -1;
    for (int64_t i = 0; i < ra * g->lda; i++) g->A[i] = urand() * 4.0f;
    for (int64_t i = 0; i < rb * g->ldb; i++) g->B[i] = urand();
    for (int64_t i = 0; i < M * g->ldc; i++) g->C0[i] = beta == 0.0f ? NAN : urand();
    memcpy(g->ref, g->C0, sizeof(float) * (size_t)(M * g->ldc));
    attn__sgemm_bf16_ref(ta, tb, M, N, K, alpha, g->A, g->lda, g->B, g->ldb, beta, g->ref, g->ldc);
    double mx = 0.0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0.0;
            for (int64_t p = 0; p < K; p++) {
                const float a = ta ? g->A[p * g->lda + i] : g->A[i * g->lda + p];
                const float b = tb ? g->B[j * g->ldb + p] : g->B[p * g->ldb + j];
                s += fabs((double)attn__bf16_round(a) * (double)attn__bf16_round(b));
            }
            if (s > mx) mx = s;
        }
    g->sumabs = mx;
    g->atol = 8.0 * sqrt((double)K) * U * fabs((double)alpha) * mx;
    return 0;
}

static void bcase_free(bcase *g) {
    free(g->A);
    free(g->B);
    free(g->C0);
    free(g->ref);
}

/* Largest violation of |c - ref| <= atol + 4u|ref| (0 when within), and
 * whether the padding of C was left alone. */
static double bcase_excess(const bcase *g, const float *C, int *pad_ok) {
    double worst = 0.0;
    *pad_ok = 1;
    for (int64_t i = 0; i < g->M; i++) {
        for (int64_t j = 0; j < g->N; j++) {
            const double r = g->ref[i * g->ldc + j], c = C[i * g->ldc + j];
            const double e = fabs(c - r) - (g->atol + 4.0 * U * fabs(r));
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
        for (int64_t j = g->N; j < g->ldc; j++)
            if (float_bits(C[i * g->ldc + j]) != float_bits(g->C0[i * g->ldc + j])) *pad_ok = 0;
    }
    return worst;
}

static void test_kernels_against_ref(void) {
    TEST_BEGIN("bf16 products: every kernel against the reference, ragged sizes, transposes");
    static const int64_t dims[] = {1, 7, 16, 17, 31, 32, 33, 48, 65, 100};
    const int nd = (int)(sizeof dims / sizeof dims[0]);
    const int flags_list[2] = {0, ATTN_KERNELS_PORTABLE};
    const int nflags = attn__amx_usable() ? 2 : 1; /* without AMX, flag 0 is the rounded path too */
    int cases = 0;
    for (int f = 0; f < nflags; f++) {
        const int flags = flags_list[nflags == 2 ? f : 1];
        for (int c = 0; c < 40; c++) {
            const int64_t M = dims[(c * 7 + 3) % nd], N = dims[(c * 3 + f) % nd],
                          K = dims[(c * 5 + 1) % nd] + (c % 3 == 0 ? 200 : 0);
            const int ta = c & 1, tb = (c >> 1) & 1;
            const float alpha = c % 4 == 3 ? -0.5f : 1.0f,
                        beta = c % 5 == 0 ? 0.0f : c % 5 == 1 ? 1.0f : 0.75f;
            bcase g;
            if (bcase_init(&g, ta, tb, M, N, K, alpha, beta) != 0) {
                CHECK(0, "out of memory");
                bcase_free(&g);
                break;
            }
            float *C = malloc(sizeof(float) * (size_t)(M * g.ldc));
            if (C) {
                memcpy(C, g.C0, sizeof(float) * (size_t)(M * g.ldc));
                attn__sgemm_bf16(flags, 1, ta, tb, M, N, K, alpha, g.A, g.lda, g.B, g.ldb, beta, C,
                                 g.ldc);
                int pad_ok;
                const double ex = bcase_excess(&g, C, &pad_ok);
                CHECK(ex <= 0.0 && pad_ok,
                      "%s M %lld N %lld K %lld ta %d tb %d alpha %g beta %g: beyond tolerance by %g "
                      "(atol %g), padding %s",
                      attn__gemm_bf16_kernel(flags), (long long)M, (long long)N, (long long)K, ta,
                      tb, alpha, beta, ex, g.atol, pad_ok ? "kept" : "written");
                cases++;
            }
            free(C);
            bcase_free(&g);
        }
    }
    CHECK(cases >= 40, "only %d cases ran", cases);
    TEST_END();
}

static void test_threads_bitwise(void) {
    TEST_BEGIN("bf16 products: 1 and 2 threads give the same bits");
    bcase g;
    if (bcase_init(&g, 0, 1, 97, 130, 70, 1.0f, 0.0f) == 0) {
        float *c1 = calloc((size_t)(g.M * g.ldc), sizeof(float));
        float *c2 = calloc((size_t)(g.M * g.ldc), sizeof(float));
        if (c1 && c2) {
            attn__sgemm_bf16(0, 1, 0, 1, g.M, g.N, g.K, 1.0f, g.A, g.lda, g.B, g.ldb, 0.0f, c1, g.ldc);
            attn__sgemm_bf16(0, 2, 0, 1, g.M, g.N, g.K, 1.0f, g.A, g.lda, g.B, g.ldb, 0.0f, c2, g.ldc);
            CHECK(memcmp(c1, c2, sizeof(float) * (size_t)(g.M * g.ldc)) == 0,
                  "%s: results differ between 1 and 2 threads", attn__gemm_bf16_kernel(0));
        }
        free(c1);
        free(c2);
    }
    bcase_free(&g);
    TEST_END();
}

/* |C_bf16 - C_f32| <= (2 u_b + u_b^2) sum_k |a_k b_k| + the f32 sums' error,
 * u_b = 2^-8 the unit roundoff of bf16 (docs/mixed_precision.md). */
static void test_error_bound(void) {
    TEST_BEGIN("bf16 products: error against f32 within the derived bound, and not zero");
    const int64_t M = 40, N = 50, K = 300;
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *cb = malloc(sizeof(float) * M * N), *cf = malloc(sizeof(float) * M * N);
    if (A && B && cb && cf) {
        for (int64_t i = 0; i < M * K; i++) A[i] = urand();
        for (int64_t i = 0; i < K * N; i++) B[i] = urand();
        attn__sgemm_bf16(0, 1, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, cb, N);
        attn__sgemm_ref(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, cf, N);
        const double ub = 0x1p-8;
        double worst = 0.0, largest_rel = 0.0;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0.0;
                for (int64_t p = 0; p < K; p++) s += fabs((double)A[i * K + p] * B[p * N + j]);
                const double err = fabs((double)cb[i * N + j] - cf[i * N + j]);
                const double bound = (2.0 * ub + ub * ub) * s * (1.0 + 1e-6) + 8.0 * sqrt((double)K) * U * s;
                if (err / bound > worst) worst = err / bound;
                if (err / s > largest_rel) largest_rel = err / s;
            }
        CHECK(worst <= 1.0, "error / bound = %g", worst);
        CHECK(largest_rel > 1e-5, "largest error %g of sum|ab|: the operands were not rounded?",
              largest_rel);
    }
    free(A);
    free(B);
    free(cb);
    free(cf);
    TEST_END();
}

static attn_tensor *param(attn_ctx *ctx, int ndim, const int64_t *shape) {
    attn_tensor *t = attn_tensor_new(ctx, ATTN_F32, ndim, shape);
    if (!t) return NULL;
    for (int64_t i = 0; i < attn_tensor_numel(t); i++) attn_f32(t)[i] = urand();
    t->requires_grad = 1;
    return t;
}

/* A constant tensor like t (no gradient). */
static attn_tensor *weights_like(attn_ctx *ctx, const attn_tensor *t) {
    if (!t) return NULL;
    attn_tensor *c = attn_tensor_new(ctx, ATTN_F32, t->ndim, t->shape);
    if (c)
        for (int64_t i = 0; i < attn_tensor_numel(c); i++) attn_f32(c)[i] = urand();
    return c;
}

/* Loss sum(y1 c1) + sum(y2 c2) + sum(y3 c3) of the three product ops (c
 * constants, so every gradient product has the same operands in every run),
 * forward and backward under the context's settings; out[0..n) the outputs,
 * then the gradients. */
static int run_ops(attn_ctx *ctx, int use_ref, float *out, int64_t cap) {
    attn_ctx_reset(ctx);
    attn_ctx_set_use_ref(ctx, use_ref);
    rng_state = 77;
    const int64_t sx[2] = {37, 45}, sw[2] = {45, 29}, sl[2] = {33, 45}, sb[3] = {3, 19, 21},
                  sc[3] = {3, 21, 18};
    attn_tensor *x = param(ctx, 2, sx), *w = param(ctx, 2, sw), *wl = param(ctx, 2, sl);
    attn_tensor *a = param(ctx, 3, sb), *b = param(ctx, 3, sc);
    attn_tensor *y1 = attn_matmul(ctx, x, w), *y2 = attn_linear(ctx, x, wl, NULL);
    attn_tensor *y3 = attn_bmm(ctx, a, b, 0, 0);
    attn_tensor *c1 = weights_like(ctx, y1), *c2 = weights_like(ctx, y2), *c3 = weights_like(ctx, y3);
    attn_tensor *l = attn_add(
        ctx,
        attn_add(ctx, attn_sum(ctx, attn_mul(ctx, y1, c1), ATTN_ALL_AXES, 0),
                 attn_sum(ctx, attn_mul(ctx, y2, c2), ATTN_ALL_AXES, 0)),
        attn_sum(ctx, attn_mul(ctx, y3, c3), ATTN_ALL_AXES, 0));
    if (!l || attn_backward(ctx, l) != ATTN_OK) return -1;
    attn_tensor *outs[5] = {y1, y2, y3, NULL, NULL};
    attn_tensor *grads[5] = {x, w, wl, a, b};
    int64_t n = 0;
    for (int i = 0; i < 3; i++)
        for (int64_t k = 0; k < attn_tensor_numel(outs[i]) && n < cap; k++) out[n++] = attn_f32(outs[i])[k];
    for (int i = 0; i < 5; i++)
        for (int64_t k = 0; k < attn_tensor_numel(grads[i]) && n < cap; k++) out[n++] = grads[i]->grad[k];
    return (int)n;
}

static void test_ops_under_bf16(void) {
    TEST_BEGIN("matmul, linear, bmm under ATTN_PRECISION_BF16: forward and gradients");
    attn_ctx *ctx = NULL;
    CHECK_OK(attn_ctx_new(&ctx, NULL));
    if (ctx) {
        CHECK(attn_ctx_set_precision(ctx, 7) == ATTN_ERR_INVALID_ARG, "precision 7 accepted");
        CHECK(strstr(attn_ctx_error(ctx), "ATTN_PRECISION_BF16") != NULL, "message '%s'",
              attn_ctx_error(ctx));
        attn_ctx_reset(ctx);
        const int64_t cap = 20000;
        float *f32 = malloc(sizeof(float) * cap), *fast = malloc(sizeof(float) * cap),
              *ref = malloc(sizeof(float) * cap);
        if (f32 && fast && ref) {
            const int n0 = run_ops(ctx, 0, f32, cap);
            CHECK_OK(attn_ctx_set_precision(ctx, ATTN_PRECISION_BF16));
            CHECK(attn_ctx_precision(ctx) == ATTN_PRECISION_BF16, "precision not kept");
            const int n1 = run_ops(ctx, 0, fast, cap);
            const int n2 = run_ops(ctx, 1, ref, cap);
            CHECK(n0 > 0 && n0 == n1 && n1 == n2, "runs failed: %d %d %d (%s)", n0, n1, n2,
                  attn_ctx_error(ctx));
            /* Every output and gradient is one product of the same rounded
             * operands in both runs: they differ by the f32 sums' rounding,
             * about 8 sqrt(K) u sum|a b| ~ 1e-5 of the largest value at K <= 45;
             * judged at 2^-14 of it (the bf16 rounding itself is 2^-8, a
             * wrong operand or a missed term O(1)). */
            double worst = 0.0, mx = 0.0, dev_f32 = 0.0;
            for (int i = 0; i < n1 && n1 == n2; i++) {
                if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
            }
            for (int i = 0; i < n1 && n1 == n2 && n0 == n1; i++) {
                const double e = fabs((double)fast[i] - ref[i]);
                if (e > worst) worst = e;
                const double d = fabs((double)fast[i] - f32[i]);
                if (d > dev_f32) dev_f32 = d;
            }
            CHECK(worst <= 0x1p-14 * mx, "fast vs reference under bf16: %g of max %g", worst, mx);
            CHECK(dev_f32 > 1e-6 * mx, "bf16 run equals the f32 run (%g): precision ignored?",
                  dev_f32);
            CHECK(dev_f32 <= 0x1p-5 * mx, "bf16 run far from f32: %g of max %g", dev_f32, mx);
        }
        free(f32);
        free(fast);
        free(ref);
    }
    attn_ctx_free(ctx);
    TEST_END();
}

/* linear_gelu with gradients off takes the fused path under bf16 on AMX
 * (bias and GELU applied to each finished block): it must give the bits of
 * linear then gelu, on ragged sizes (partial blocks, rows under 16, no bias),
 * on 1 and 2 threads, and on the kernels without AMX. */
static void test_linear_gelu_fused(void) {
    TEST_BEGIN("linear_gelu under bf16 (fused epilogue) equals linear + gelu bit for bit");
    static const int64_t sizes[][3] = {{1, 5, 7},    {15, 17, 33},  {16, 16, 16}, {32, 32, 32},
                                       {33, 47, 65}, {64, 96, 384}, {70, 1536, 96}, {97, 31, 129}};
    attn_ctx *ctx = NULL;
    CHECK_OK(attn_ctx_new(&ctx, NULL));
    for (int kf = 0; ctx && kf < 2; kf++)
        for (int nt = 1; nt <= 2; nt++)
            for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++)
                for (int with_b = 0; with_b < 2; with_b++) {
                    attn_ctx_reset(ctx);
                    attn_ctx_set_kernel_flags(ctx, kf ? ATTN_KERNELS_NO_AMX : 0);
                    attn_ctx_set_threads(ctx, nt);
                    attn_ctx_set_grad_enabled(ctx, 0);
                    CHECK_OK(attn_ctx_set_precision(ctx, ATTN_PRECISION_BF16));
                    rng_state = 1234 + c;
                    const int64_t R = sizes[c][0], Out = sizes[c][1], In = sizes[c][2];
                    const int64_t sx[2] = {R, In}, sw[2] = {Out, In}, sb[1] = {Out};
                    attn_tensor *x = attn_tensor_new(ctx, ATTN_F32, 2, sx);
                    attn_tensor *w = attn_tensor_new(ctx, ATTN_F32, 2, sw);
                    attn_tensor *b = with_b ? attn_tensor_new(ctx, ATTN_F32, 1, sb) : NULL;
                    if (!x || !w || (with_b && !b)) {
                        CHECK(0, "allocation failed");
                        continue;
                    }
                    /* wide values: GELU's tails (x << 0, x >> 0) and its middle */
                    for (int64_t i = 0; i < R * In; i++) attn_f32(x)[i] = 3.0f * urand();
                    for (int64_t i = 0; i < Out * In; i++) attn_f32(w)[i] = urand();
                    for (int64_t i = 0; with_b && i < Out; i++) attn_f32(b)[i] = 4.0f * urand();
                    attn_tensor *y1 = attn_linear_gelu(ctx, x, w, b);
                    attn_tensor *y2 = attn_gelu(ctx, attn_linear(ctx, x, w, b), 0);
                    CHECK(y1 && y2, "ops failed: %s", attn_ctx_error(ctx));
                    if (!y1 || !y2) continue;
                    int64_t diff = 0, first = -1;
                    for (int64_t i = 0; i < R * Out; i++)
                        if (memcmp(attn_f32(y1) + i, attn_f32(y2) + i, sizeof(float)) != 0) {
                            diff++;
                            if (first < 0) first = i;
                        }
                    CHECK(diff == 0,
                          "R %lld Out %lld In %lld bias %d threads %d %s: %lld of %lld differ "
                          "(first %lld: %.9g vs %.9g)",
                          (long long)R, (long long)Out, (long long)In, with_b, nt,
                          kf ? "no AMX" : "AMX if present", (long long)diff, (long long)(R * Out),
                          (long long)first, first >= 0 ? (double)attn_f32(y1)[first] : 0.0,
                          first >= 0 ? (double)attn_f32(y2)[first] : 0.0);
                }
    attn_ctx_free(ctx);
    TEST_END();
}

/* Frozen weights (attn_ctx_freeze_weight): the packed copy gives the bits of
 * packing at every call; thawing drops it, so changed weights are read
 * again; a matmul reading the same buffer as B with other dimensions does
 * not take the copy; errors name the op. */
static float lin_run(attn_ctx *ctx, attn_tensor *x, attn_tensor *w, attn_tensor *b, float *out,
                     int64_t n) {
    attn_tensor *y = attn_linear(ctx, x, w, b);
    if (!y) return -1.0f;
    memcpy(out, attn_f32(y), (size_t)n * sizeof *out);
    return 0.0f;
}
static void test_frozen_weights(void) {
    TEST_BEGIN("frozen weights: packed once, the same bits, thawed weights read again");
    attn_ctx *ctx = NULL;
    CHECK_OK(attn_ctx_new(&ctx, NULL));
    if (ctx) {
        attn_ctx_set_grad_enabled(ctx, 0);
        CHECK_OK(attn_ctx_set_precision(ctx, ATTN_PRECISION_BF16));
        const int64_t R = 45, In = 70, Out = 50;
        const int64_t sx[2] = {R, In}, sw[2] = {Out, In}, sb[1] = {Out};
        attn_tensor *x = attn_tensor_new(ctx, ATTN_F32, 2, sx);
        attn_tensor *w = attn_tensor_new(ctx, ATTN_F32, 2, sw);
        attn_tensor *b = attn_tensor_new(ctx, ATTN_F32, 1, sb);
        float *y0 = malloc(sizeof(float) * R * Out), *y1 = malloc(sizeof(float) * R * Out);
        if (x && w && b && y0 && y1) {
            rng_state = 99;
            for (int64_t i = 0; i < R * In; i++) attn_f32(x)[i] = urand();
            for (int64_t i = 0; i < Out * In; i++) attn_f32(w)[i] = urand();
            for (int64_t i = 0; i < Out; i++) attn_f32(b)[i] = urand();
            CHECK(lin_run(ctx, x, w, b, y0, R * Out) == 0.0f, "linear: %s", attn_ctx_error(ctx));
            CHECK_OK(attn_ctx_freeze_weight(ctx, w));
            CHECK_OK(attn_ctx_freeze_weight(ctx, w)); /* twice: one entry */
            for (int rep = 0; rep < 2; rep++) { /* the first packs, the second reuses */
                CHECK(lin_run(ctx, x, w, b, y1, R * Out) == 0.0f, "linear: %s", attn_ctx_error(ctx));
                CHECK(memcmp(y0, y1, sizeof(float) * R * Out) == 0, "frozen run %d differs", rep);
            }
            /* a product reading w's buffer as B = [In, Out] (matmul: the same K
             * and N as the frozen linear copy, another layout) */
            const int64_t sw2[2] = {In, Out};
            attn_tensor *w2 = attn_reshape(ctx, w, 2, sw2);
            attn_tensor *m1 = w2 ? attn_matmul(ctx, x, w2) : NULL;
            CHECK(m1 != NULL, "matmul over the frozen buffer: %s", attn_ctx_error(ctx));
            attn_ctx_thaw_weights(ctx);
            attn_tensor *m2 = w2 ? attn_matmul(ctx, x, w2) : NULL;
            CHECK(m1 && m2 && memcmp(attn_f32(m1), attn_f32(m2), sizeof(float) * R * Out) == 0,
                  "matmul took the frozen linear copy");
            /* changed weights after thawing: the new values count */
            for (int64_t i = 0; i < Out * In; i++) attn_f32(w)[i] *= -0.5f;
            CHECK(lin_run(ctx, x, w, b, y1, R * Out) == 0.0f, "linear: %s", attn_ctx_error(ctx));
            CHECK(memcmp(y0, y1, sizeof(float) * R * Out) != 0, "stale weights after thaw");
            attn_ctx_set_kernel_flags(ctx, ATTN_KERNELS_NO_AMX); /* no tiles: no copy, same rule */
            CHECK_OK(attn_ctx_freeze_weight(ctx, w));
            float *y2 = malloc(sizeof(float) * R * Out);
            if (y2) {
                CHECK(lin_run(ctx, x, w, b, y2, R * Out) == 0.0f, "linear: %s", attn_ctx_error(ctx));
                attn_ctx_thaw_weights(ctx);
                CHECK(lin_run(ctx, x, w, b, y1, R * Out) == 0.0f, "linear: %s", attn_ctx_error(ctx));
                CHECK(memcmp(y1, y2, sizeof(float) * R * Out) == 0, "no-AMX frozen run differs");
            }
            free(y2);
            attn_tensor *wt = attn_transpose(ctx, w, 0, 1);
            CHECK(wt && attn_ctx_freeze_weight(ctx, wt) == ATTN_ERR_INVALID_ARG,
                  "a non-contiguous weight was frozen");
            CHECK(strstr(attn_ctx_error(ctx), "ctx_freeze_weight") != NULL, "message '%s'",
                  attn_ctx_error(ctx));
            CHECK(attn_ctx_freeze_weight(NULL, w) == ATTN_ERR_INVALID_ARG, "NULL ctx accepted");
        } else {
            CHECK(0, "allocation failed");
        }
        free(y0);
        free(y1);
    }
    attn_ctx_free(ctx);
    TEST_END();
}

void suite_gemm_bf16(void) {
    test_rounding();
    test_kernels_against_ref();
    test_threads_bitwise();
    test_error_bound();
    test_ops_under_bf16();
    test_linear_gelu_fused();
    test_frozen_weights();
}
