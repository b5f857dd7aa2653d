/* test_conv.c: properties of the convolution-side ops (include/attn/conv.h)
 * that the generic op suite cannot check: its fixtures, finite differences
 * and fast-vs-reference runs are in the `ops` suite (tests/op_cases.c,
 * tools/make_fixtures.py). Here: max pooling's tie and NaN rules (finite
 * differences are undefined at a tie), the causality of conv1d, and the
 * side effects on caller-owned buffers (running statistics, the power
 * iteration's vectors) against PyTorch fixtures.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "fixture.h"
#include "test.h"

static attn_ctx *conv_ctx(void) {
    attn_ctx_config cfg = {0};
    cfg.arena_bytes = (size_t)64 << 20;
    cfg.n_threads = 1;
    cfg.guard_bytes = 64;
    attn_ctx *ctx = NULL;
    CHECK(attn_ctx_new(&ctx, &cfg) == ATTN_OK, "attn_ctx_new failed");
    return ctx;
}

/* Ties go to the first element of the window in row-major order, in the
 * forward's index and in the backward's routing, for both kernels. */
static void test_max_pool_ties(void) {
    TEST_BEGIN("conv: max_pool2d ties route to the first index (torch's rule), fast and reference");
    attn_ctx *ctx = conv_ctx();
    if (!ctx) {
        TEST_END();
        return;
    }
    for (int use_ref = 0; use_ref < 2; use_ref++) {
        attn_ctx_reset(ctx);
        attn_ctx_set_use_ref(ctx, use_ref);
        /* 4x4 plane of zeros, then one plane with a tie of two 3s */
        float xs[2 * 16] = {0};
        xs[16 + 1] = 3.0f, xs[16 + 4] = 3.0f, xs[16 + 5] = 1.0f;
        const int64_t shape[4] = {1, 2, 4, 4};
        attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, 4, shape, xs);
        if (x) x->requires_grad = 1;
        attn_pool2d_opts o = {{2, 2}, {1, 1}, {0, 0}, 0};
        attn_tensor *idx = NULL;
        attn_tensor *y = attn_max_pool2d(ctx, x, &o, &idx);
        CHECK(y && idx && y->shape[2] == 3 && y->shape[3] == 3, "max_pool2d failed: %s",
              attn_ctx_error(ctx));
        if (!y || !idx) break;
        for (int p = 0; p < 3; p++)
            for (int q = 0; q < 3; q++) {
                int32_t got = attn_i32(idx)[p * 3 + q];
                CHECK(got == p * 4 + q, "[%s] zeros: window (%d,%d): argmax %d, expected %d",
                      use_ref ? "ref" : "fast", p, q, got, p * 4 + q);
            }
        /* plane 1, window (0,0) holds 3 at index 1 and at index 4: 1 wins */
        CHECK(attn_i32(idx)[9] == 1, "[%s] tie 3/3: argmax %d, expected 1", use_ref ? "ref" : "fast",
              attn_i32(idx)[9]);
        float g[18];
        for (int i = 0; i < 18; i++) g[i] = 1.0f;
        CHECK_OK(attn_backward_from(ctx, y, g));
        if (x && x->grad) {
            /* plane 0: element (h, w) is the first of window (h, w) only */
            for (int h = 0; h < 4; h++)
                for (int w = 0; w < 4; w++) {
                    float want = h < 3 && w < 3 ? 1.0f : 0.0f;
                    CHECK(x->grad[h * 4 + w] == want, "[%s] zeros: dx[%d,%d] = %g, expected %g",
                          use_ref ? "ref" : "fast", h, w, (double)x->grad[h * 4 + w], (double)want);
                }
            /* plane 1: windows (0,0) and (0,1) both pick index 1 */
            CHECK(x->grad[16 + 1] == 2.0f && x->grad[16 + 4] == 1.0f,
                  "[%s] tie 3/3: dx[1] = %g (expected 2), dx[4] = %g (expected 1, from window "
                  "(1,0))",
                  use_ref ? "ref" : "fast", (double)x->grad[17], (double)x->grad[20]);
        }
    }
    attn_ctx_set_use_ref(ctx, 0);
    attn_ctx_free(ctx);
    TEST_END();
}

static void test_max_pool_nan(void) {
    TEST_BEGIN("conv: max_pool2d propagates a NaN and routes the gradient to it");
    attn_ctx *ctx = conv_ctx();
    if (!ctx) {
        TEST_END();
        return;
    }
    for (int use_ref = 0; use_ref < 2; use_ref++) {
        attn_ctx_reset(ctx);
        attn_ctx_set_use_ref(ctx, use_ref);
        float xs[4] = {1.0f, 5.0f, NAN, 7.0f};
        const int64_t shape[4] = {1, 1, 2, 2};
        attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, 4, shape, xs);
        attn_pool2d_opts o = {{2, 2}, {0, 0}, {0, 0}, 0};
        attn_tensor *idx = NULL;
        attn_tensor *y = attn_max_pool2d(ctx, x, &o, &idx);
        CHECK(y && idx && isnan(attn_f32(y)[0]) && attn_i32(idx)[0] == 2,
              "[%s] expected NaN at index 2, got %g at %d", use_ref ? "ref" : "fast",
              y ? (double)attn_f32(y)[0] : 0.0, idx ? attn_i32(idx)[0] : -1);
    }
    attn_ctx_set_use_ref(ctx, 0);
    attn_ctx_free(ctx);
    TEST_END();
}

/* Causal conv1d: output length T (stride 1), and output t depends on inputs
 * t' <= t only: changing x[t0] leaves outputs t < t0 bitwise unchanged and
 * changes output t0. */
static void test_conv1d_causal(void) {
    TEST_BEGIN("conv: causal conv1d keeps the length and never looks ahead (dilations 1, 2, 4)");
    attn_ctx *ctx = conv_ctx();
    if (!ctx) {
        TEST_END();
        return;
    }
    enum { N = 2, C = 3, O = 4, T = 17, K = 3 };
    float xs[N * C * T], ws[O * C * K], base[N * O * T];
    for (int i = 0; i < N * C * T; i++) xs[i] = (float)((i * 37 % 23) - 11) / 7.0f;
    for (int i = 0; i < O * C * K; i++) ws[i] = (float)((i * 13 % 17) - 8) / 9.0f;
    const int64_t xsh[3] = {N, C, T}, wsh[3] = {O, C, K};
    attn_ctx_set_grad_enabled(ctx, 0);
    for (int dil = 1; dil <= 4; dil *= 2)
        for (int t0 = 0; t0 < T; t0 += 5) {
            attn_conv1d_opts o = {1, 0, dil, 1, 1};
            attn_ctx_reset(ctx);
            attn_tensor *y = attn_conv1d(ctx, attn_tensor_from(ctx, ATTN_F32, 3, xsh, xs),
                                         attn_tensor_from(ctx, ATTN_F32, 3, wsh, ws), NULL, &o);
            CHECK(y && y->shape[2] == T, "dilation %d: output %s", dil,
                  y ? "of the wrong length" : attn_ctx_error(ctx));
            if (!y || y->shape[2] != T) continue;
            memcpy(base, attn_f32(y), sizeof base);
            float xp[N * C * T];
            memcpy(xp, xs, sizeof xp);
            for (int n = 0; n < N; n++)
                for (int c = 0; c < C; c++) xp[(n * C + c) * T + t0] += 1.0f;
            attn_ctx_reset(ctx);
            y = attn_conv1d(ctx, attn_tensor_from(ctx, ATTN_F32, 3, xsh, xp),
                            attn_tensor_from(ctx, ATTN_F32, 3, wsh, ws), NULL, &o);
            if (!y) continue;
            int ahead = 0, moved = 0;
            for (int n = 0; n < N; n++)
                for (int c = 0; c < O; c++)
                    for (int t = 0; t < T; t++) {
                        const float a = attn_f32(y)[(n * O + c) * T + t], b = base[(n * O + c) * T + t];
                        if (t < t0 && a != b) ahead++;
                        if (t == t0 && a != b) moved++;
                    }
            CHECK(ahead == 0, "dilation %d: changing x[t=%d] changed %d earlier outputs", dil, t0,
                  ahead);
            CHECK(moved > 0, "dilation %d: changing x[t=%d] did not change output t=%d", dil, t0,
                  t0);
        }
    attn_ctx_set_grad_enabled(ctx, 1);
    attn_ctx_free(ctx);
    TEST_END();
}

static atfx_file *conv_fixture(const char *name) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/%s.atfx", test_fixture_dir(), name);
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK)
        CHECK(0, "cannot load fixture %s: %s (tools/make_fixtures.py --only %s)", path, err, name);
    return fx;
}

static attn_tensor *fx_tensor(attn_ctx *ctx, const atfx_file *fx, int k, const char *name) {
    const atfx_tensor *t = atfx_findf(fx, "c%d.%s", k, name);
    return t ? attn_tensor_from(ctx, t->dtype, t->ndim, t->shape, t->data) : NULL;
}

/* |got - want| <= atol + rtol |want| elementwise; reports the worst. */
static void check_close(const char *what, int k, const float *got, const float *want, int64_t n,
                        double atol, double rtol) {
    int64_t worst = -1;
    double excess = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)got[i] - want[i]) - (atol + rtol * fabs((double)want[i]));
        if (!(e <= 0.0) && (worst < 0 || !(e <= excess))) worst = i, excess = e;
    }
    CHECK(worst < 0, "case %d: %s element %lld: got %.9g, expected %.9g (atol %g, rtol %g)", k,
          what, (long long)worst, worst >= 0 ? (double)got[worst] : 0.0,
          worst >= 0 ? (double)want[worst] : 0.0, atol, rtol);
}

/* The running statistics after one forward, against torch's in-place update
 * (training: momentum and the unbiased variance; evaluation: unchanged). */
static void test_batchnorm_running(void) {
    TEST_BEGIN("conv: batchnorm updates the caller's running statistics as torch does");
    attn_ctx *ctx = conv_ctx();
    atfx_file *fx = conv_fixture("batchnorm");
    const atfx_tensor *nc = fx ? atfx_find(fx, "n_cases") : NULL;
    int checked = 0;
    for (int k = 0; ctx && nc && k < atfx_i32(nc)[0]; k++) {
        const atfx_tensor *want_m = atfx_findf(fx, "c%d.running_mean_after", k),
                          *want_v = atfx_findf(fx, "c%d.running_var_after", k);
        if (!want_m || !want_v) continue;
        for (int use_ref = 0; use_ref < 2; use_ref++) {
            attn_ctx_reset(ctx);
            attn_ctx_set_use_ref(ctx, use_ref);
            const atfx_tensor *tr = atfx_findf(fx, "c%d.attr.training", k),
                              *mo = atfx_findf(fx, "c%d.attr.momentum", k),
                              *ep = atfx_findf(fx, "c%d.attr.eps", k);
            attn_tensor *rm = fx_tensor(ctx, fx, k, "attr.running_mean"),
                        *rv = fx_tensor(ctx, fx, k, "attr.running_var");
            attn_ctx_set_training(ctx, tr ? atfx_i32(tr)[0] : 1);
            attn_tensor *y = attn_batchnorm(ctx, fx_tensor(ctx, fx, k, "x"),
                                            fx_tensor(ctx, fx, k, "gamma"),
                                            fx_tensor(ctx, fx, k, "beta"), rm, rv,
                                            mo ? atfx_f32(mo)[0] : 0.1f, ep ? atfx_f32(ep)[0] : 1e-5f);
            attn_ctx_set_training(ctx, 1);
            CHECK(y && rm && rv, "case %d: batchnorm failed: %s", k, attn_ctx_error(ctx));
            if (!y || !rm || !rv) continue;
            check_close(use_ref ? "running_mean [ref]" : "running_mean [fast]", k, attn_f32(rm),
                        atfx_f32(want_m), want_m->numel, 1e-6, 1e-5);
            check_close(use_ref ? "running_var [ref]" : "running_var [fast]", k, attn_f32(rv),
                        atfx_f32(want_v), want_v->numel, 1e-6, 1e-5);
            checked++;
        }
    }
    CHECK(checked >= 8, "only %d running-statistics checks ran", checked);
    attn_ctx_set_use_ref(ctx, 0);
    atfx_free(fx);
    attn_ctx_free(ctx);
    TEST_END();
}

/* The power iteration's vectors after one forward, against torch's
 * parametrization (training: one iteration; evaluation: unchanged). */
static void test_spectral_norm_vectors(void) {
    TEST_BEGIN("conv: spectral_norm updates the caller's u and v as torch's parametrization");
    attn_ctx *ctx = conv_ctx();
    atfx_file *fx = conv_fixture("spectral_norm");
    const atfx_tensor *nc = fx ? atfx_find(fx, "n_cases") : NULL;
    int checked = 0;
    for (int k = 0; ctx && nc && k < atfx_i32(nc)[0]; k++) {
        const atfx_tensor *want_u = atfx_findf(fx, "c%d.u_after", k),
                          *want_v = atfx_findf(fx, "c%d.v_after", k),
                          *tr = atfx_findf(fx, "c%d.attr.training", k),
                          *ep = atfx_findf(fx, "c%d.attr.eps", k),
                          *dm = atfx_findf(fx, "c%d.attr.dim", k);
        CHECK(want_u && want_v && tr && ep, "case %d: u_after, v_after, training or eps missing", k);
        if (!want_u || !want_v || !tr || !ep) continue;
        for (int use_ref = 0; use_ref < 2; use_ref++) {
            attn_ctx_reset(ctx);
            attn_ctx_set_use_ref(ctx, use_ref);
            attn_tensor *u = fx_tensor(ctx, fx, k, "attr.u"), *v = fx_tensor(ctx, fx, k, "attr.v");
            attn_ctx_set_training(ctx, atfx_i32(tr)[0]);
            attn_tensor *y =
                attn_spectral_norm(ctx, fx_tensor(ctx, fx, k, "w"), u, v, dm ? atfx_i32(dm)[0] : 0,
                                   atfx_f32(ep)[0]);
            attn_ctx_set_training(ctx, 1);
            CHECK(y && u && v, "case %d: spectral_norm failed: %s", k, attn_ctx_error(ctx));
            if (!y || !u || !v) continue;
            check_close(use_ref ? "u [ref]" : "u [fast]", k, attn_f32(u), atfx_f32(want_u),
                        want_u->numel, 1e-6, 1e-5);
            check_close(use_ref ? "v [ref]" : "v [fast]", k, attn_f32(v), atfx_f32(want_v),
                        want_v->numel, 1e-6, 1e-5);
            checked++;
        }
    }
    CHECK(checked >= 22, "only %d checks ran", checked);
    attn_ctx_set_use_ref(ctx, 0);
    atfx_free(fx);
    attn_ctx_free(ctx);
    TEST_END();
}

/* The AVX-512 row kernels of src/ops/conv_avx512.c (im2col, col2im and the
 * depthwise kernels, taken when the CPU has AVX-512F) against the portable
 * loops (ATTN_KERNELS_PORTABLE) and the scalar reference forward (use_ref)
 * on ragged sizes: rows of 1 to 70 columns (one, two and five 16-column
 * chunks), strides 1, 2 (the permutation path) and 3 (the gather path),
 * padding over and under the kernel's reach, dilation, groups, the
 * depthwise kernels, conv1d and conv_transpose2d, the whole-row im2col of
 * stride 1 (OW = W), several chunks of images (the transposed weight
 * gradient and the bias gradient summed over them) and K < O. Output and
 * the gradients of x, w and b (upstream gradient: fixed pseudo-random
 * values) fast vs portable, and the gradients fast vs a double evaluation
 * of their definition (conv_row_grad_ref), at the convolutions' atol 1e-5
 * / rtol 1e-4 (docs/conv.md). On a CPU without
 * AVX-512 both runs take the portable loops and the test still compares
 * them with the reference. */
typedef struct conv_row_case {
    int kind; /* 0 conv2d, 1 conv1d (H = KH = 1), 2 conv_transpose2d */
    int64_t N, C, H, W, O, KH, KW, S, P, D, G;
    const char *what;
    int64_t SH; /* the row stride when not S (0: S) */
} conv_row_case;

static float conv_row_val(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 16777216.0f * 2.0f - 1.0f;
}

/* Runs the case's op forward and backward under kernel flags `flags` (and
 * use_ref for the forward when `ref`); copies y, dx, dw, db into out[0..3]
 * (malloc'd; NULL on failure). */
static int conv_row_run(const conv_row_case *k, int flags, int ref, float *out[4], int64_t n[4]) {
    attn_ctx *ctx = conv_ctx();
    if (!ctx) return -1;
    attn_ctx_set_kernel_flags(ctx, flags);
    attn_ctx_set_use_ref(ctx, ref);
    {
        /* the arena handed out again holds NaN: an output or gradient
         * buffer that a kernel reads before writing (=, not +=) shows */
        const int64_t big = 2 * (k->N * (k->C + k->O) * (k->H * k->S + k->KH) * (k->W * k->S + k->KW) +
                                 k->C * k->O * k->KH * k->KW) + 300000;
        attn_tensor *poison = attn_tensor_new(ctx, ATTN_F32, 1, &big);
        if (poison)
            for (int64_t i = 0; i < big; i++) attn_f32(poison)[i] = NAN;
        attn_ctx_reset(ctx);
    }
    const int64_t xs4[4] = {k->N, k->C, k->H, k->W}, xs3[3] = {k->N, k->C, k->W};
    const int64_t ws4[4] = {k->kind == 2 ? k->C : k->O, k->kind == 2 ? k->O / k->G : k->C / k->G,
                            k->KH, k->KW};
    const int64_t ws3[3] = {k->O, k->C / k->G, k->KW}, bs = k->O;
    attn_tensor *x = k->kind == 1 ? attn_tensor_new(ctx, ATTN_F32, 3, xs3)
                                  : attn_tensor_new(ctx, ATTN_F32, 4, xs4);
    attn_tensor *w = k->kind == 1 ? attn_tensor_new(ctx, ATTN_F32, 3, ws3)
                                  : attn_tensor_new(ctx, ATTN_F32, 4, ws4);
    attn_tensor *b = attn_tensor_new(ctx, ATTN_F32, 1, &bs);
    int rc = -1;
    if (x && w && b) {
        uint32_t seed = 12345u;
        attn_tensor *in[3] = {x, w, b};
        for (int t = 0; t < 3; t++) {
            for (int64_t i = 0; i < attn_tensor_numel(in[t]); i++)
                attn_f32(in[t])[i] = conv_row_val(&seed);
            in[t]->requires_grad = 1;
        }
        attn_tensor *y;
        if (k->kind == 1) {
            attn_conv1d_opts o = {k->S, k->P, k->D, k->G, 0};
            y = attn_conv1d(ctx, x, w, b, &o);
        } else {
            attn_conv2d_opts o;
            memset(&o, 0, sizeof o);
            o.stride[0] = k->SH ? k->SH : k->S;
            o.stride[1] = k->S;
            o.padding[0] = o.padding[1] = k->P;
            o.dilation[0] = o.dilation[1] = k->D;
            o.groups = k->G;
            y = k->kind == 0 ? attn_conv2d(ctx, x, w, b, &o) : attn_conv_transpose2d(ctx, x, w, b, &o);
        }
        CHECK(y != NULL, "%s: %s", k->what, attn_ctx_error(ctx));
        float *g = y ? malloc(sizeof(float) * (size_t)attn_tensor_numel(y)) : NULL;
        if (g) {
            for (int64_t i = 0; i < attn_tensor_numel(y); i++) g[i] = conv_row_val(&seed);
            attn_status st = attn_backward_from(ctx, y, g);
            CHECK(st == ATTN_OK, "%s: backward: %s", k->what, attn_ctx_error(ctx));
            const attn_tensor *src[4] = {y, x, w, b};
            rc = st == ATTN_OK ? 0 : -1;
            for (int t = 0; t < 4; t++) {
                n[t] = attn_tensor_numel(src[t]);
                out[t] = malloc(sizeof(float) * (size_t)n[t]);
                const float *v = t ? src[t]->grad : attn_f32(src[t]);
                if (!out[t] || !v) rc = -1;
                else memcpy(out[t], v, sizeof(float) * (size_t)n[t]);
            }
        }
        free(g);
    }
    attn_ctx_free(ctx);
    return rc;
}

/* The gradients of the case's op in double from the definition (the
 * relation v[n,o,p,q] += w[o,c,i,j] u[n, g Cg + c, ih, iw] of src/ops/conv.c,
 * with u = x, v = y for conv2d and conv1d, u = y, v = x for the transposed
 * op), from the inputs and upstream gradient that conv_row_run made: the
 * weight and bias gradients summed over several chunks of images, which
 * the fast and the portable runs share, are checked against them too.
 * out[1..3] get dx, dw, db (malloc'd); -1 on failure. */
static int conv_row_grad_ref(const conv_row_case *k, float *out[4]) {
    const int tr = k->kind == 2, c1 = k->kind == 1;
    const int64_t SH = c1 ? 1 : k->SH ? k->SH : k->S, SW = k->S, PH = c1 ? 0 : k->P, PW = k->P;
    const int64_t DH = c1 ? 1 : k->D, DW = k->D;
    /* u [N, Cu, Hu, Wu] -> v [N, Ov, Hv, Wv], w [Ov, Cu / G, KH, KW] */
    int64_t Cu, Hu, Wu, Ov, Hv, Wv;
    if (!tr) {
        Cu = k->C, Hu = k->H, Wu = k->W, Ov = k->O;
        Hv = (Hu + 2 * PH - DH * (k->KH - 1) - 1) / SH + 1;
        Wv = (Wu + 2 * PW - DW * (k->KW - 1) - 1) / SW + 1;
    } else {
        Ov = k->C, Hv = k->H, Wv = k->W, Cu = k->O;
        Hu = (Hv - 1) * SH - 2 * PH + DH * (k->KH - 1) + 1;
        Wu = (Wv - 1) * SW - 2 * PW + DW * (k->KW - 1) + 1;
    }
    const int64_t Cg = Cu / k->G, Og = Ov / k->G, KK = k->KH * k->KW;
    const int64_t nx = k->N * k->C * k->H * k->W, nw = Ov * Cg * KK, nb = k->O;
    const int64_t ny = tr ? k->N * Cu * Hu * Wu : k->N * Ov * Hv * Wv;
    float *x = malloc(sizeof(float) * (size_t)nx), *w = malloc(sizeof(float) * (size_t)nw);
    float *gy = malloc(sizeof(float) * (size_t)ny);
    double *dx = calloc((size_t)nx, sizeof(double)), *dw = calloc((size_t)nw, sizeof(double));
    double *db = calloc((size_t)nb, sizeof(double));
    int rc = -1;
    if (x && w && gy && dx && dw && db) {
        uint32_t seed = 12345u; /* conv_row_run's order: x, w, b, then dy */
        for (int64_t i = 0; i < nx; i++) x[i] = conv_row_val(&seed);
        for (int64_t i = 0; i < nw; i++) w[i] = conv_row_val(&seed);
        for (int64_t i = 0; i < nb; i++) (void)conv_row_val(&seed);
        for (int64_t i = 0; i < ny; i++) gy[i] = conv_row_val(&seed);
        for (int64_t n = 0; n < k->N; n++)
            for (int64_t o = 0; o < Ov; o++)
                for (int64_t c = 0; c < Cg; c++)
                    for (int64_t t = 0; t < KK; t++)
                        for (int64_t p = 0; p < Hv; p++)
                            for (int64_t q = 0; q < Wv; q++) {
                                const int64_t ih = p * SH - PH + t / k->KW * DH;
                                const int64_t iw = q * SW - PW + t % k->KW * DW;
                                if (ih < 0 || ih >= Hu || iw < 0 || iw >= Wu) continue;
                                const int64_t iu = ((n * Cu + o / Og * Cg + c) * Hu + ih) * Wu + iw;
                                const int64_t iv = ((n * Ov + o) * Hv + p) * Wv + q;
                                const int64_t iwt = (o * Cg + c) * KK + t;
                                if (!tr) { /* x = u, gy at v */
                                    dx[iu] += (double)gy[iv] * w[iwt];
                                    dw[iwt] += (double)gy[iv] * x[iu];
                                } else { /* x = v, gy at u */
                                    dx[iv] += (double)gy[iu] * w[iwt];
                                    dw[iwt] += (double)gy[iu] * x[iv];
                                }
                            }
        const int64_t P = ny / (k->N * k->O); /* db: y's channels */
        for (int64_t i = 0; i < ny; i++) db[i / P % k->O] += gy[i];
        const int64_t len[3] = {nx, nw, nb};
        const double *src[3] = {dx, dw, db};
        rc = 0;
        for (int t = 0; t < 3; t++) {
            if (!(out[t + 1] = malloc(sizeof(float) * (size_t)len[t]))) rc = -1;
            else
                for (int64_t i = 0; i < len[t]; i++) out[t + 1][i] = (float)src[t][i];
        }
    }
    free(x), free(w), free(gy), free(dx), free(dw), free(db);
    return rc;
}

static void test_conv_row_kernels(void) {
    TEST_BEGIN("conv: AVX-512 row kernels vs portable loops vs reference forward and gradients, ragged sizes");
    static const conv_row_case cases[] = {
        {0, 2, 3, 9, 70, 5, 3, 3, 1, 1, 1, 1, "3x3 pad 1, W 70 (five 16-column chunks)", 0},
        {0, 3, 2, 11, 17, 4, 4, 4, 2, 1, 1, 1, "4x4 stride 2 pad 1, W 17", 0},
        {0, 2, 3, 8, 41, 3, 3, 5, 2, 3, 1, 1, "3x5 stride 2 pad 3, W 41 (two chunks, permutation)", 0},
        {0, 2, 2, 10, 53, 3, 3, 3, 3, 2, 1, 1, "stride 3 pad 2, W 53 (gather)", 0},
        {0, 2, 4, 9, 35, 6, 3, 3, 1, 2, 2, 2, "dilation 2 groups 2, W 35", 0},
        {0, 2, 1, 13, 1, 3, 3, 3, 1, 1, 1, 1, "C 1, W 1 (one column)", 0},
        {0, 3, 1, 28, 28, 8, 3, 3, 1, 1, 1, 1, "C 1 first layer, 28x28", 0},
        {0, 2, 6, 9, 33, 6, 3, 3, 1, 1, 1, 6, "depthwise 3x3, W 33", 0},
        {0, 2, 5, 12, 37, 5, 5, 3, 2, 2, 1, 5, "depthwise 5x3 stride 2 pad 2, W 37", 0},
        {0, 2, 4, 7, 22, 4, 3, 3, 3, 4, 2, 4, "depthwise stride 3 pad 4 dilation 2 (gather)", 0},
        {0, 2, 5, 14, 14, 20, 3, 3, 1, 1, 1, 1, "3x3 on 14x14, O 20", 0},
        {0, 2, 17, 7, 7, 16, 3, 3, 1, 1, 1, 1, "7x7, C 17", 0},
        {0, 2, 16, 9, 13, 18, 3, 3, 2, 1, 1, 1, "stride 2, W 13, O 18", 0},
        {0, 1, 16, 8, 16, 16, 5, 3, 1, 2, 2, 1, "5x3 dilation 2, W 16", 0},
        {0, 2, 16, 14, 14, 16, 1, 1, 1, 0, 1, 1, "1x1 on 14x14, 16 channels", 0},
        {0, 3, 16, 5, 5, 17, 3, 3, 1, 1, 1, 1, "5x5, O 17", 0},
        {2, 2, 16, 7, 7, 16, 4, 4, 2, 1, 1, 1, "transposed 16->16 4x4 stride 2, 7x7 -> 14x14", 0},
        {0, 2, 6, 14, 14, 6, 3, 3, 1, 1, 1, 6, "depthwise 3x3 on 14x14 (narrow kernels)", 0},
        {0, 2, 4, 11, 16, 4, 5, 3, 2, 2, 1, 4, "depthwise 5x3 stride 2, W 16 (narrow)", 0},
        {0, 2, 3, 9, 13, 3, 3, 3, 1, 3, 2, 3, "depthwise dilation 2 pad 3, W 13 (narrow)", 0},
        {0, 2, 3, 7, 9, 3, 3, 3, 1, 3, 1, 3, "depthwise pad 3 beyond the kernel's reach, W 9", 0},
        /* the fused depthwise backward (3x3, stride 1, rows of <= 16):
         * channel blocks of 16 with a tail, full and single lanes, OW < W,
         * dilation, one row */
        {0, 3, 18, 14, 14, 18, 3, 3, 1, 1, 1, 18, "depthwise C 18 (a block and a tail), N 3 (fused backward)", 0},
        {0, 2, 5, 6, 16, 5, 3, 3, 1, 1, 1, 5, "depthwise W 16 (fused, every lane)", 0},
        {0, 2, 4, 9, 11, 4, 3, 3, 1, 0, 1, 4, "depthwise pad 0: 7x9 out of 9x11 (fused)", 0},
        {0, 2, 3, 10, 12, 3, 3, 3, 1, 2, 2, 3, "depthwise dilation 2 pad 2, W 12 (fused)", 0},
        {0, 2, 3, 1, 1, 3, 3, 3, 1, 1, 1, 3, "depthwise 1x1 map (fused)", 0},
        {0, 1, 2, 37, 5, 2, 3, 3, 1, 1, 1, 2, "depthwise 37x5, N 1 (fused)", 0},
        {0, 2, 17, 5, 7, 17, 3, 3, 1, 2, 1, 17, "depthwise pad 2: 7x9 out of 5x7, C 17 (fused)", 0},
        {0, 2, 5, 14, 14, 3, 1, 1, 1, 0, 1, 1, "1x1 on 14x14 (chunked im2col)", 0},
        {0, 2, 4, 14, 14, 5, 3, 3, 1, 1, 1, 1, "3x3 pad 1 on 14x14 (col2im in registers)", 0},
        {0, 2, 3, 9, 16, 4, 5, 5, 1, 2, 1, 1, "5x5 pad 2, W 16 (col2im in registers)", 0},
        {0, 2, 3, 11, 13, 4, 3, 3, 1, 2, 2, 1, "dilation 2 pad 2, W 13 (col2im in registers)", 0},
        {0, 2, 3, 15, 9, 4, 4, 3, 1, 1, 1, 1, "row stride 3, W 9 (col2im in registers)", 3},
        {0, 2, 3, 12, 14, 4, 4, 4, 2, 1, 1, 1, "4x4 stride 2, W 14 (col2im in registers)", 0},
        {0, 2, 2, 10, 16, 3, 3, 3, 3, 1, 1, 1, "stride 3, W 16 (col2im in registers)", 0},
        {2, 2, 4, 7, 7, 3, 4, 4, 2, 1, 1, 1, "transposed 4x4 stride 2, 7x7 -> 14x14", 0},
        {1, 2, 3, 1, 67, 4, 1, 2, 1, 3, 3, 1, "conv1d K 2 dilation 3 pad 3, T 67", 0},
        {1, 2, 4, 1, 50, 4, 1, 3, 2, 1, 1, 2, "conv1d stride 2 groups 2, T 50", 0},
        {2, 2, 4, 7, 19, 3, 4, 4, 2, 1, 1, 1, "transposed 4x4 stride 2, 7x19 -> 14x38", 0},
        {2, 2, 3, 5, 12, 2, 3, 3, 3, 0, 1, 1, "transposed 3x3 stride 3 (gather / scatter)", 0},
        /* stride 1 with OW == W: im2col a tap's whole row at once (flat) */
        {0, 1, 7, 7, 7, 9, 3, 3, 1, 1, 1, 1, "N 1, C 7, O 9, 7x7 (flat im2col; K 63 > O)", 0},
        {0, 2, 3, 11, 13, 5, 5, 3, 1, 1, 1, 1, "5x3 pad 1: OH 9 < H, OW = W 13 (flat im2col)", 0},
        {0, 2, 5, 9, 10, 3, 3, 3, 1, 2, 2, 1, "dilation 2 pad 2, 9x10 (flat im2col)", 0},
        {0, 1, 3, 40, 40, 4, 5, 5, 1, 2, 1, 1, "5x5 pad 2 on 40x40, N 1 (too many masks: row im2col)", 0},
        {0, 2, 1, 9, 9, 12, 3, 3, 1, 1, 1, 1, "C 1, O 12: K 9 < O (weight gradient not transposed)", 0},
        /* several chunks: the transposed weight gradient and the fused bias
         * gradient summed over them */
        {0, 5, 16, 28, 28, 16, 3, 3, 1, 1, 1, 2, "groups 2 on 28x28, N 5 (two chunks)", 0},
        {0, 3, 16, 28, 28, 6, 3, 3, 1, 1, 1, 1, "C 16 O 6 on 28x28, N 3 (chunks of 2 and 1 images)", 0},
        {2, 5, 32, 14, 14, 16, 4, 4, 2, 1, 1, 1, "transposed 32->16 4x4 stride 2, N 5 (two chunks)", 0},
        /* 3x3 stride 1 pad 1, C and O >= 16: Winograd F(2x2, 3x3) (conv_winograd.c) */
        {0, 3, 16, 3, 5, 19, 3, 3, 1, 1, 1, 1, "Winograd 3x5 map, O 19, N 3 (whole-plane transforms)", 0},
        {0, 1, 17, 8, 8, 16, 3, 3, 1, 1, 1, 1, "Winograd 8x8 map, C 17, N 1", 0},
        {0, 2, 16, 1, 1, 16, 3, 3, 1, 1, 1, 1, "Winograd 1x1 map", 0},
        {0, 2, 16, 14, 14, 20, 3, 3, 1, 1, 1, 1, "Winograd 14x14, O 20 (row transforms)", 0},
        {0, 2, 18, 11, 13, 16, 3, 3, 1, 1, 1, 1, "Winograd 11x13 (odd tiles cut by the edge)", 0},
        {0, 1, 16, 21, 9, 17, 3, 3, 1, 1, 1, 1, "Winograd 21x9, N 1", 0},
        {0, 9, 64, 7, 7, 64, 3, 3, 1, 1, 1, 1, "Winograd 7x7 64->64, N 9 (two chunks)", 0},
        {0, 6, 32, 14, 14, 32, 3, 3, 1, 1, 1, 1, "Winograd 14x14 32->32, N 6 (two chunks)", 0},
        /* tile-row pairs (two tile rows per register) at their limits, and
         * the filter transforms' 16-channel blocks with tails (C and O) */
        {0, 2, 33, 16, 16, 31, 3, 3, 1, 1, 1, 1, "Winograd 16x16 (a pair fills 16 lanes), C 33, O 31", 0},
        {0, 2, 16, 9, 15, 18, 3, 3, 1, 1, 1, 1, "Winograd 9x15 (odd tile rows, W odd, TW 8)", 0},
        {0, 3, 16, 2, 16, 16, 3, 3, 1, 1, 1, 1, "Winograd 2x16 (one tile row: half a pair)", 0},
        {0, 2, 31, 10, 9, 47, 3, 3, 1, 1, 1, 1, "Winograd 10x9 (9 columns: pairs), C 31, O 47", 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const conv_row_case *k = &cases[c];
        float *fast[4] = {0}, *port[4] = {0}, *ref[4] = {0};
        int64_t n[4] = {0}, n2[4] = {0}, n3[4] = {0};
        if (conv_row_run(k, 0, 0, fast, n) == 0 &&
            conv_row_run(k, ATTN_KERNELS_PORTABLE, 0, port, n2) == 0 &&
            conv_row_run(k, ATTN_KERNELS_PORTABLE, 1, ref, n3) == 0) {
            static const char *names[4] = {"y", "dx", "dw", "db"};
            char what[160];
            /* Winograd (the fast path's 3x3 pad-1 stride-1 layers with C, O >=
             * 16 and rows of <= 16) sums in another order than im2col: each
             * is checked against the double reference below at the op's
             * tolerance; fast vs portable only for y (within it) and db (the
             * same code): two sums each within the tolerance of the exact
             * value need not be within it of each other */
            const int wino = k->kind == 0 && k->KH == 3 && k->KW == 3 && k->S == 1 && k->P == 1 &&
                             k->D == 1 && k->G == 1 && k->C >= 16 && k->O >= 16 && k->W <= 16 &&
                             !k->SH;
            for (int t = 0; t < 4; t++) {
                if (wino && (t == 1 || t == 2)) continue;
                snprintf(what, sizeof what, "%s: %s, fast vs portable", k->what, names[t]);
                check_close(what, (int)c, fast[t], port[t], n[t], 1e-5, 1e-4);
            }
            snprintf(what, sizeof what, "%s: y, fast vs reference forward", k->what);
            check_close(what, (int)c, fast[0], ref[0], n[0], 1e-5, 1e-4);
            snprintf(what, sizeof what, "%s: y, portable vs reference forward", k->what);
            check_close(what, (int)c, port[0], ref[0], n[0], 1e-5, 1e-4);
            float *gref[4] = {0};
            CHECK(conv_row_grad_ref(k, gref) == 0, "%s: reference gradients", k->what);
            for (int t = 1; t < 4 && gref[t]; t++) {
                snprintf(what, sizeof what, "%s: %s, fast vs reference in double", k->what, names[t]);
                check_close(what, (int)c, fast[t], gref[t], n[t], 1e-5, 1e-4);
                snprintf(what, sizeof what, "%s: %s, portable vs reference in double", k->what,
                         names[t]);
                check_close(what, (int)c, port[t], gref[t], n[t], 1e-5, 1e-4);
            }
            for (int t = 0; t < 4; t++) free(gref[t]);
        }
        for (int t = 0; t < 4; t++) free(fast[t]), free(port[t]), free(ref[t]);
    }
    TEST_END();
}

void suite_conv(void) {
    test_max_pool_ties();
    test_max_pool_nan();
    test_conv1d_causal();
    test_batchnorm_running();
    test_spectral_norm_vectors();
    test_conv_row_kernels();
}
