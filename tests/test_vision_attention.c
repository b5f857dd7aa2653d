/* test_vision_attention.c: the self-attention blocks for feature maps
 * (include/attn/vision_attention.h; suite "vision_attention").
 *
 *   (a) PyTorch parity (tests/fixtures/vision_attention.atfx, written by
 *       tools/make_vision_attention_fixtures.py): seed 001's SAGAN code with
 *       its weights mapped as the header states (the same map transposed),
 *       the BigGAN code's block, seed 001's Simple Self-Attention without
 *       and with the symmetric weight: output, attention map and the
 *       gradients of x and of every parameter, with the reference and the
 *       fused attention op (and the scalar reference kernels);
 *   (b) finite differences (central, double accumulation of sum(y * r)) of
 *       x, gamma and one weight of each block;
 *   (c) errors: configurations and shapes that do not fit.
 *
 * Tolerance: VA_ATOL 2e-5, VA_RTOL 1e-4 (the composed ops' own float32
 * rounding over C <= 16 channels and N <= 24 positions; the fixtures are
 * float64 rounded once). Finite differences: h 1e-2, |fd - analytic| <=
 * 2e-3 + 2e-2 |fd| (float32 forward, smooth blocks). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "test.h"

#define VA_ATOL 2e-5f
#define VA_RTOL 1e-4f
#define SCRIPT "tools/make_vision_attention_fixtures.py"

static const char *const form_name[3] = {"SAGAN (paper, seed code)", "SAGAN (BigGAN code)",
                                         "Simple Self-Attention"};

/* Builds the block of case k, its parameters loaded from the fixture. */
static int make_block(const atfx_file *fx, int k, attn_attention_kernel kernel, attn_params **ps,
                      attn_map_attention *m) {
    char nm[64];
    snprintf(nm, sizeof nm, "c%d.cfg", k);
    const atfx_tensor *ct = test_fx_need(fx, nm, ATTN_I32, 5, SCRIPT);
    if (!ct) return -1;
    const int32_t *cv = atfx_i32(ct);
    attn_map_attention_config cfg = {.channels = cv[1],
                                     .form = (attn_map_attention_form)cv[0],
                                     .bias = cv[2],
                                     .sym = cv[3],
                                     .kernel = kernel};
    CHECK_OK(attn_params_new(ps));
    if (!*ps) return -1;
    CHECK_OK(attn_map_attention_init(m, *ps, "", &cfg, NULL));
    if (test__failed_checks) return -1;
    char tag[64];
    snprintf(tag, sizeof tag, "vision_attention case %d", k);
    return test_load_torch_params(fx, k, *ps, 0, tag) < 0 ? -1 : 0;
}

static void parity_case(const atfx_file *fx, int k, attn_attention_kernel kernel, int use_ref) {
    char tname[200], tag[160], nm[96];
    attn_params *ps = NULL;
    attn_map_attention m;
    attn_ctx *ctx = NULL;
    const char *kn = kernel == ATTN_KERNEL_FUSED ? "fused" : "reference";
    const atfx_tensor *ct = atfx_findf(fx, "c%d.cfg", k);
    const int form = ct ? atfx_i32(ct)[0] : 0;
    const int sym = ct ? atfx_i32(ct)[3] : 0;
    snprintf(tname, sizeof tname, "vision_attention/%s%s vs torch [%s op%s]",
             form_name[form < 3 ? form : 0], sym ? ", symmetric W" : "", kn,
             use_ref ? ", scalar references" : "");
    snprintf(tag, sizeof tag, "case %d %s [%s%s]", k, form_name[form < 3 ? form : 0], kn,
             use_ref ? ", ref" : "");
    TEST_BEGIN(tname);
    if (make_block(fx, k, kernel, &ps, &m) != 0) goto out;
    ctx = test_ctx_new((size_t)64 << 20, 1, 64);
    if (!ctx) goto out;
    attn_ctx_set_use_ref(ctx, use_ref);
    const atfx_tensor *xt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.x", k), nm), ATTN_F32,
                                         -1, SCRIPT);
    const atfx_tensor *gt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.grad_out", k), nm),
                                         ATTN_F32, -1, SCRIPT);
    if (!xt || !gt) goto out;
    attn_tensor *x = test_leaf(ctx, 4, xt->shape, atfx_f32(xt)), *w = NULL;
    attn_tensor *y = attn_map_attention_forward(ctx, &m, x, form == 2 ? NULL : &w);
    CHECK(y != NULL, "%s: forward: %s", tag, attn_ctx_error(ctx));
    if (!y) goto out;
    test_fx_close(tag, "output", attn_f32(y), fx, (snprintf(nm, sizeof nm, "c%d.out", k), nm),
                  attn_tensor_numel(y), VA_ATOL, VA_RTOL, SCRIPT);
    if (form != 2) {
        CHECK(w != NULL, "%s: no attention map", tag);
        if (w)
            test_fx_close(tag, "attention map", attn_f32(w), fx,
                          (snprintf(nm, sizeof nm, "c%d.weights", k), nm), attn_tensor_numel(w),
                          VA_ATOL, VA_RTOL, SCRIPT);
    }
    CHECK_OK(attn_backward_from(ctx, y, atfx_f32(gt)));
    test_fx_close(tag, "gradient of x", x->grad, fx,
                  (snprintf(nm, sizeof nm, "c%d.grad.x", k), nm), attn_tensor_numel(x), VA_ATOL,
                  VA_RTOL, SCRIPT);
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        char what[96];
        snprintf(what, sizeof what, "gradient of %s", p->name);
        test_fx_close(tag, what, p->grad, fx, (snprintf(nm, sizeof nm, "c%d.grad.%s", k, p->name), nm),
                      attn_tensor_numel(p), VA_ATOL, VA_RTOL, SCRIPT);
    }
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s: %s", tag, attn_last_error());
out:
    if (ctx) attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

/* sum(y * r) in double for the block on x. */
static double loss_of(attn_ctx *ctx, const attn_map_attention *m, const int64_t *xs,
                      const float *x, const float *r) {
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *xt = attn_tensor_from(ctx, ATTN_F32, 4, xs, x);
    attn_tensor *y = attn_map_attention_forward(ctx, m, xt, NULL);
    attn_ctx_set_grad_enabled(ctx, 1);
    return y ? test_dot_d(y, r) : NAN;
}

/* (b): central differences of x (a few elements), gamma and the first
 * weight of the block. */
static void fd_case(const atfx_file *fx, int k) {
    char tname[160], nm[64];
    attn_params *ps = NULL;
    attn_map_attention m;
    attn_ctx *ctx = NULL;
    const atfx_tensor *ct = atfx_findf(fx, "c%d.cfg", k);
    const int form = ct ? atfx_i32(ct)[0] : 0;
    snprintf(tname, sizeof tname, "vision_attention/%s%s: finite differences",
             form_name[form < 3 ? form : 0], ct && atfx_i32(ct)[3] ? ", symmetric W" : "");
    TEST_BEGIN(tname);
    if (make_block(fx, k, ATTN_KERNEL_REFERENCE, &ps, &m) != 0) goto out;
    ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    const atfx_tensor *xt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.x", k), nm), ATTN_F32,
                                         -1, SCRIPT);
    const atfx_tensor *gt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.grad_out", k), nm),
                                         ATTN_F32, -1, SCRIPT);
    if (!ctx || !xt || !gt) goto out;
    const int64_t n = xt->numel;
    float *x = malloc(sizeof(float) * (size_t)n);
    if (!x) goto out;
    memcpy(x, atfx_f32(xt), sizeof(float) * (size_t)n);
    attn_ctx_reset(ctx);
    attn_tensor *xl = test_leaf(ctx, 4, xt->shape, x);
    attn_tensor *y = attn_map_attention_forward(ctx, &m, xl, NULL);
    CHECK(y != NULL, "forward: %s", attn_ctx_error(ctx));
    if (y) CHECK_OK(attn_backward_from(ctx, y, atfx_f32(gt)));
    float *gx = y ? malloc(sizeof(float) * (size_t)n) : NULL;
    if (gx) memcpy(gx, xl->grad, sizeof(float) * (size_t)n);
    const float h = 1e-2f;
    int bad = 0, probes = 0;
    for (int64_t i = 0; gx && i < n; i += n / 7 + 1, probes++) {
        const float keep = x[i];
        x[i] = keep + h;
        const double lp = loss_of(ctx, &m, xt->shape, x, atfx_f32(gt));
        x[i] = keep - h;
        const double lm = loss_of(ctx, &m, xt->shape, x, atfx_f32(gt));
        x[i] = keep;
        const double fd = (lp - lm) / (2.0 * h);
        if (!(fabs(fd - gx[i]) <= 2e-3 + 2e-2 * fabs(fd))) {
            bad++;
            CHECK(0, "x[%lld]: analytic %g, central difference %g", (long long)i, (double)gx[i], fd);
        }
    }
    /* parameters: gamma and element 0 of the first weight (their gradients
     * from the graph run above) */
    attn_tensor *params[2] = {m.gamma, form == 2 ? m.w : m.wq};
    for (int j = 0; gx && j < 2; j++, probes++) {
        float *pv = attn_f32(params[j]);
        const double analytic = params[j]->grad[0];
        const float keep = pv[0];
        pv[0] = keep + h;
        const double lp = loss_of(ctx, &m, xt->shape, x, atfx_f32(gt));
        pv[0] = keep - h;
        const double lm = loss_of(ctx, &m, xt->shape, x, atfx_f32(gt));
        pv[0] = keep;
        const double fd = (lp - lm) / (2.0 * h);
        if (!(fabs(fd - analytic) <= 2e-3 + 2e-2 * fabs(fd))) {
            bad++;
            CHECK(0, "%s[0]: analytic %g, central difference %g", params[j]->name, analytic, fd);
        }
    }
    CHECK(bad == 0 && probes >= 9, "%d of %d probes out of tolerance", bad, probes);
    free(gx);
    free(x);
out:
    if (ctx) attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

static void test_errors(void) {
    TEST_BEGIN("vision_attention/errors");
    attn_params *ps = NULL;
    CHECK_OK(attn_params_new(&ps));
    attn_map_attention m;
    attn_map_attention_config cfg = {.channels = 12, .form = ATTN_SAGAN_PAPER};
    CHECK(attn_map_attention_init(&m, ps, "", &cfg, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "channels 12, expected a multiple of 8"),
          "C = 12 accepted: %s", attn_last_error());
    cfg.form = (attn_map_attention_form)7;
    CHECK(attn_map_attention_init(&m, ps, "", &cfg, NULL) == ATTN_ERR_INVALID_ARG,
          "form 7 accepted");
    cfg.channels = 16, cfg.form = ATTN_SAGAN_BIGGAN;
    CHECK_OK(attn_map_attention_init(&m, ps, "blk.", &cfg, NULL));
    attn_ctx *ctx = test_ctx_new((size_t)16 << 20, 1, 0);
    if (ctx) {
        const int64_t odd[4] = {1, 16, 5, 4}, wrongc[4] = {1, 8, 4, 4};
        attn_tensor *x = attn_tensor_new(ctx, ATTN_F32, 4, odd);
        test_expect_fail(ctx, attn_map_attention_forward(ctx, &m, x, NULL) == NULL, ATTN_ERR_SHAPE,
                         "with H and W even", "an odd map for the pooled form");
        x = attn_tensor_new(ctx, ATTN_F32, 4, wrongc);
        test_expect_fail(ctx, attn_map_attention_forward(ctx, &m, x, NULL) == NULL, ATTN_ERR_SHAPE,
                         "expected f32 [B, 16, H, W]", "8 channels for a 16-channel block");
        attn_ctx_free(ctx);
    }
    attn_params_free(ps);
    TEST_END();
}

void suite_vision_attention(void) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/vision_attention.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        TEST_BEGIN("vision_attention/fixture");
        CHECK(0, "%s (regenerate with %s)", err, SCRIPT);
        TEST_END();
        return;
    }
    const atfx_tensor *nc = atfx_findf(fx, "n_cases");
    const int n = nc ? atfx_i32(nc)[0] : 0;
    TEST_BEGIN("vision_attention/fixture has 4 cases");
    CHECK(n == 4, "%d cases", n);
    TEST_END();
    for (int k = 0; k < n; k++) {
        parity_case(fx, k, ATTN_KERNEL_REFERENCE, 0);
        parity_case(fx, k, ATTN_KERNEL_REFERENCE, 1);
        const atfx_tensor *ct = atfx_findf(fx, "c%d.cfg", k);
        if (ct && atfx_i32(ct)[0] != 2) parity_case(fx, k, ATTN_KERNEL_FUSED, 0);
        fd_case(fx, k);
    }
    test_errors();
    atfx_free(fx);
}
