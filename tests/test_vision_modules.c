/* test_vision_modules.c: the attention modules of vision_modules.h (suite
 * "vision_modules").
 *
 *   (a) PyTorch parity (tests/fixtures/vision_modules.atfx, written by
 *       tools/make_vision_modules_fixtures.py from the papers): CBAM's
 *       channel and spatial modules (with and without the BatchNorm),
 *       CBAM, channel-wise soft attention (2 and 3 branches), the GC block,
 *       the SAG mask, PSA and attention-augmented convolution, in training
 *       mode: output, attention map, the gradients of x and of every
 *       parameter, and the BatchNorm running statistics after the step;
 *       with the fast kernels and with the scalar reference kernels;
 *   (b) finite differences (central, double accumulation of sum(y * r)) of
 *       a few elements of x and element 0 of every trainable parameter;
 *   (c) the CNN with each module: parameter count, a finite loss, gradients
 *       reaching the module, save and load (CBAM, PSA) with the same logits;
 *   (d) errors: configurations and shapes that do not fit.
 *
 * Tolerance: VM_ATOL 5e-5, VM_RTOL 2e-4 (float32 rounding of the composed
 * ops over at most 8 channels and 36 positions, BatchNorm over batches of 3
 * and 4 included; the fixtures are float64 rounded once). Finite
 * differences: h 1e-3, |fd - analytic| <= 3e-3 + 3e-2 |fd| (float32
 * forward; max pools and BatchNorm-ReLU chains are piecewise smooth: with
 * h 3e-3 three probes of the soft and PSA cases crossed a ReLU kink of a
 * batch of 3, whose gradients the torch parity confirms; h 1e-3 stays on
 * one side of every kink of these draws). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "test.h"

#define VM_ATOL 5e-5f
#define VM_RTOL 2e-4f
#define VM_CASES 10
#define SCRIPT "tools/make_vision_modules_fixtures.py"

/* Builds the module of case k, its parameters and buffers loaded from the
 * fixture. */
static int make_module(const atfx_file *fx, int k, attn_params **ps, attn_vision_module *m) {
    char nm[64];
    snprintf(nm, sizeof nm, "c%d.cfg", k);
    const atfx_tensor *ct = test_fx_need(fx, nm, ATTN_I32, 11, SCRIPT);
    if (!ct) return -1;
    const int32_t *v = atfx_i32(ct);
    attn_vision_module_config cfg = {.kind = (attn_vision_module_kind)v[0],
                                     .channels = v[1],
                                     .reduction = v[2],
                                     .kernel = v[3],
                                     .spatial_bn = v[4],
                                     .branches = v[5],
                                     .height = v[6],
                                     .width = v[7],
                                     .heads = v[8],
                                     .key_channels = v[9],
                                     .value_channels = v[10]};
    CHECK_OK(attn_params_new(ps));
    if (!*ps) return -1;
    CHECK_OK(attn_vision_module_init(m, *ps, "", &cfg, NULL));
    if (test__failed_checks) return -1;
    char tag[64];
    snprintf(tag, sizeof tag, "vision_modules case %d", k);
    if (test_load_torch_params(fx, k, *ps, 0, tag) < 0) return -1;
    CHECK(attn_params_numel(*ps) == attn_vision_module_numel(&cfg),
          "%s: the store holds %lld values, attn_vision_module_numel says %lld", tag,
          (long long)attn_params_numel(*ps), (long long)attn_vision_module_numel(&cfg));
    return 0;
}

static const char *kind_of(const atfx_file *fx, int k) {
    const atfx_tensor *ct = atfx_findf(fx, "c%d.cfg", k);
    return attn_vision_module_name(ct ? (attn_vision_module_kind)atfx_i32(ct)[0] : ATTN_VM_COUNT);
}

static void parity_case(const atfx_file *fx, int k, int use_ref) {
    char tname[200], tag[160], nm[160];
    attn_params *ps = NULL;
    attn_vision_module m;
    attn_ctx *ctx = NULL;
    snprintf(tname, sizeof tname, "vision_modules/case %d (%s) vs torch%s", k, kind_of(fx, k),
             use_ref ? " [scalar references]" : "");
    snprintf(tag, sizeof tag, "case %d %s%s", k, kind_of(fx, k), use_ref ? " [ref]" : "");
    TEST_BEGIN(tname);
    if (make_module(fx, k, &ps, &m) != 0) goto out;
    ctx = test_ctx_new((size_t)64 << 20, 1, 64);
    if (!ctx) goto out;
    attn_ctx_set_use_ref(ctx, use_ref);
    const atfx_tensor *xt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.x", k), nm), ATTN_F32,
                                         -1, SCRIPT);
    const atfx_tensor *gt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.grad_out", k), nm),
                                         ATTN_F32, -1, SCRIPT);
    if (!xt || !gt) goto out;
    attn_tensor *x = test_leaf(ctx, 4, xt->shape, atfx_f32(xt)), *map = NULL;
    attn_tensor *y = attn_vision_module_forward(ctx, &m, x, &map);
    CHECK(y != NULL, "%s: forward: %s", tag, attn_ctx_error(ctx));
    if (!y) goto out;
    test_fx_close(tag, "output", attn_f32(y), fx, (snprintf(nm, sizeof nm, "c%d.out", k), nm),
                  attn_tensor_numel(y), VM_ATOL, VM_RTOL, SCRIPT);
    CHECK(map != NULL, "%s: no attention map", tag);
    if (map) {
        attn_tensor *mc = attn_contiguous(ctx, map);
        test_fx_close(tag, "attention map", mc ? attn_f32(mc) : NULL, fx,
                      (snprintf(nm, sizeof nm, "c%d.map", k), nm), attn_tensor_numel(map), VM_ATOL,
                      VM_RTOL, SCRIPT);
    }
    CHECK_OK(attn_backward_from(ctx, y, atfx_f32(gt)));
    test_fx_close(tag, "gradient of x", x->grad, fx,
                  (snprintf(nm, sizeof nm, "c%d.grad.x", k), nm), attn_tensor_numel(x), VM_ATOL,
                  VM_RTOL, SCRIPT);
    int n_grad = 0, n_after = 0;
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        char what[160];
        if (p->requires_grad) {
            snprintf(what, sizeof what, "gradient of %s", p->name);
            test_fx_close(tag, what, p->grad, fx,
                          (snprintf(nm, sizeof nm, "c%d.grad.%s", k, p->name), nm),
                          attn_tensor_numel(p), VM_ATOL, VM_RTOL, SCRIPT);
            n_grad++;
        } else {
            snprintf(what, sizeof what, "%s after the step", p->name);
            test_fx_close(tag, what, attn_f32(p), fx,
                          (snprintf(nm, sizeof nm, "c%d.after.%s", k, p->name), nm),
                          attn_tensor_numel(p), VM_ATOL, VM_RTOL, SCRIPT);
            n_after++;
        }
    }
    CHECK(n_grad >= 1, "%s: no trainable parameter compared", tag);
    (void)n_after;
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s: %s", tag, attn_last_error());
out:
    if (ctx) attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

/* sum(y * r) in double for the module on x. */
static double loss_of(attn_ctx *ctx, const attn_vision_module *m, const int64_t *xs,
                      const float *x, const float *r) {
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *xt = attn_tensor_from(ctx, ATTN_F32, 4, xs, x);
    attn_tensor *y = attn_vision_module_forward(ctx, m, xt, NULL);
    attn_ctx_set_grad_enabled(ctx, 1);
    return y ? test_dot_d(y, r) : NAN;
}

/* (b): central differences of 6 elements of x and of element 0 of every
 * trainable parameter. */
static void fd_case(const atfx_file *fx, int k) {
    char tname[160], nm[64];
    attn_params *ps = NULL;
    attn_vision_module m;
    attn_ctx *ctx = NULL;
    float *x = NULL, *gx = NULL;
    double *gp = NULL;
    snprintf(tname, sizeof tname, "vision_modules/case %d (%s): finite differences", k,
             kind_of(fx, k));
    TEST_BEGIN(tname);
    if (make_module(fx, k, &ps, &m) != 0) goto out;
    ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    const atfx_tensor *xt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.x", k), nm), ATTN_F32,
                                         -1, SCRIPT);
    const atfx_tensor *gt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.grad_out", k), nm),
                                         ATTN_F32, -1, SCRIPT);
    if (!ctx || !xt || !gt) goto out;
    const int64_t n = xt->numel;
    const int np = attn_params_count(ps);
    x = malloc(sizeof(float) * (size_t)n);
    gx = malloc(sizeof(float) * (size_t)n);
    gp = calloc((size_t)np, sizeof *gp);
    if (!x || !gx || !gp) goto out;
    memcpy(x, atfx_f32(xt), sizeof(float) * (size_t)n);
    attn_ctx_reset(ctx);
    attn_tensor *xl = test_leaf(ctx, 4, xt->shape, x);
    attn_tensor *y = attn_vision_module_forward(ctx, &m, xl, NULL);
    CHECK(y != NULL, "forward: %s", attn_ctx_error(ctx));
    if (!y) goto out;
    CHECK_OK(attn_backward_from(ctx, y, atfx_f32(gt)));
    memcpy(gx, xl->grad, sizeof(float) * (size_t)n);
    for (int j = 0; j < np; j++) {
        attn_tensor *p = attn_params_at(ps, j);
        gp[j] = p->requires_grad && p->grad ? p->grad[0] : 0.0;
    }
    const float h = 1e-3f;
    int bad = 0, probes = 0;
    for (int64_t i = 0; i < n; i += n / 6 + 1, probes++) {
        const float keep = x[i];
        x[i] = keep + h;
        const double lp = loss_of(ctx, &m, xt->shape, x, atfx_f32(gt));
        x[i] = keep - h;
        const double lm = loss_of(ctx, &m, xt->shape, x, atfx_f32(gt));
        x[i] = keep;
        const double fd = (lp - lm) / (2.0 * h);
        if (!(fabs(fd - gx[i]) <= 3e-3 + 3e-2 * fabs(fd))) {
            bad++;
            CHECK(0, "x[%lld]: analytic %g, central difference %g", (long long)i, (double)gx[i], fd);
        }
    }
    for (int j = 0; j < np; j++) {
        attn_tensor *p = attn_params_at(ps, j);
        if (!p->requires_grad) continue;
        float *pv = attn_f32(p);
        const float keep = pv[0];
        pv[0] = keep + h;
        const double lp = loss_of(ctx, &m, xt->shape, x, atfx_f32(gt));
        pv[0] = keep - h;
        const double lm = loss_of(ctx, &m, xt->shape, x, atfx_f32(gt));
        pv[0] = keep;
        const double fd = (lp - lm) / (2.0 * h);
        probes++;
        if (!(fabs(fd - gp[j]) <= 3e-3 + 3e-2 * fabs(fd))) {
            bad++;
            CHECK(0, "%s[0]: analytic %g, central difference %g", p->name, gp[j], fd);
        }
    }
    CHECK(bad == 0 && probes >= 7, "%d of %d probes out of tolerance", bad, probes);
out:
    free(gp);
    free(gx);
    free(x);
    if (ctx) attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

/* Saves m, loads it into a new store and compares the evaluation-mode
 * logits of the two images (bitwise: the same tensors, the same ops). */
static void save_load(attn_ctx *ctx, const attn_cnn *m, const float *img) {
    char dir[512], path[600];
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/attn_test_vm_XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp %s", dir);
        return;
    }
    snprintf(path, sizeof path, "%s/cnn.safetensors", dir);
    attn_params *ps2 = NULL;
    attn_cnn *m2 = NULL;
    CHECK_OK(attn_cnn_save(path, m, NULL, 0));
    CHECK_OK(attn_params_new(&ps2));
    CHECK(attn_cnn_load(path, ps2, &m2) == ATTN_OK, "load: %s", attn_last_error());
    if (m2) {
        CHECK(m2->cfg.attention == m->cfg.attention, "attention kind after load");
        float l1[20], l2[20];
        attn_ctx_set_training(ctx, 0);
        for (int r = 0; r < 2; r++) {
            attn_ctx_reset(ctx);
            attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){2, 1, 28, 28}, img);
            attn_tensor *lg = attn_cnn_forward(ctx, r ? m2 : m, x, NULL, NULL);
            CHECK(lg != NULL, "forward: %s", attn_ctx_error(ctx));
            if (lg) memcpy(r ? l2 : l1, attn_f32(lg), sizeof l1);
            else memset(r ? l2 : l1, r, sizeof l1);
        }
        attn_ctx_set_training(ctx, 1);
        CHECK(!memcmp(l1, l2, sizeof l1), "%s: logits differ after save and load",
              attn_cnn_attention_name(m->cfg.attention));
    }
    attn_cnn_free(m2);
    attn_params_free(ps2);
    remove(path);
    rmdir(dir);
}

/* (c): the CNN with each module after stage 0 (widths 8, 16, 16; 28x28). */
static void test_cnn_modules(void) {
    TEST_BEGIN("vision_modules/the CNN with each module: parameters, forward, backward");
    attn_ctx *ctx = test_ctx_new((size_t)96 << 20, 1, 0);
    attn_rng rng;
    attn_rng_init(&rng, 5);
    float img[2 * 784];
    for (int i = 0; i < 2 * 784; i++) img[i] = (float)((i * 37) % 101) / 100.0f;
    const int32_t tg[2] = {3, 7};
    for (int a = ATTN_CNN_ATT_CHANNEL; ctx && a < ATTN_CNN_ATT_COUNT; a++) {
        attn_cnn_config c = attn_cnn_config_default();
        c.widths[0] = 8, c.widths[1] = 16, c.widths[2] = 16, c.convs_per_stage = 1;
        c.attention = (attn_cnn_attention)a;
        attn_params *ps = NULL;
        attn_cnn *m = NULL;
        CHECK_OK(attn_params_new(&ps));
        CHECK(attn_cnn_new(&m, ps, &c, &rng) == ATTN_OK, "%s: %s", attn_cnn_attention_name(c.attention),
              attn_last_error());
        if (m) {
            CHECK(attn_params_numel(ps) == attn_cnn_numel(&c), "%s: %lld values, numel %lld",
                  attn_cnn_attention_name(c.attention), (long long)attn_params_numel(ps),
                  (long long)attn_cnn_numel(&c));
            attn_ctx_reset(ctx);
            attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){2, 1, 28, 28}, img);
            attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){2}, tg);
            attn_tensor *loss = attn_cnn_loss(ctx, m, x, t, 0.0f, NULL);
            CHECK(loss && isfinite(attn_f32(loss)[0]), "%s: loss: %s",
                  attn_cnn_attention_name(c.attention), attn_ctx_error(ctx));
            if (loss) CHECK_OK(attn_backward(ctx, loss));
            /* the module's parameters get gradients (GC's first conv is
             * zero at init, so its input-side layers get none yet) */
            int with_grad = 0;
            for (int i = 0; i < attn_params_count(ps); i++) {
                attn_tensor *p = attn_params_at(ps, i);
                if (!strncmp(p->name, "attention.", 10) && p->requires_grad && p->grad)
                    for (int64_t e = 0; e < attn_tensor_numel(p); e++)
                        if (p->grad[e] != 0.0f) {
                            with_grad++;
                            break;
                        }
            }
            CHECK(with_grad >= 1, "%s: no module parameter has a gradient",
                  attn_cnn_attention_name(c.attention));
            /* save and load: the same logits in evaluation mode */
            if (a == ATTN_CNN_ATT_CBAM || a == ATTN_CNN_ATT_PSA) save_load(ctx, m, img);
        }
        attn_cnn_free(m);
        attn_params_free(ps);
    }
    if (ctx) attn_ctx_free(ctx);
    attn_cnn_attention parsed;
    CHECK(attn_cnn_attention_parse("cbam", &parsed) == 0 && parsed == ATTN_CNN_ATT_CBAM &&
              attn_cnn_attention_parse("aaconv", &parsed) == 0 && parsed == ATTN_CNN_ATT_AACONV &&
              attn_cnn_attention_parse("CBAM", &parsed) == -1,
          "attention names");
    TEST_END();
}

static void test_errors(void) {
    TEST_BEGIN("vision_modules/errors");
    attn_params *ps = NULL;
    CHECK_OK(attn_params_new(&ps));
    attn_vision_module m;
    attn_vision_module_config cfg = {.kind = (attn_vision_module_kind)9, .channels = 8};
    CHECK(attn_vision_module_init(&m, ps, "", &cfg, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "kind 9"),
          "kind 9 accepted: %s", attn_last_error());
    cfg.kind = ATTN_VM_SPATIAL, cfg.kernel = 4;
    CHECK(attn_vision_module_init(&m, ps, "", &cfg, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "kernel 4, expected odd"),
          "kernel 4 accepted: %s", attn_last_error());
    cfg.kind = ATTN_VM_SOFT, cfg.kernel = 0, cfg.branches = 5;
    CHECK(attn_vision_module_init(&m, ps, "", &cfg, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "branches 5"),
          "5 branches accepted: %s", attn_last_error());
    cfg.kind = ATTN_VM_PSA, cfg.branches = 0, cfg.height = 0, cfg.width = 4;
    CHECK(attn_vision_module_init(&m, ps, "", &cfg, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "map 0x4"),
          "a 0x4 PSA map accepted: %s", attn_last_error());
    cfg.kind = ATTN_VM_AACONV, cfg.height = 3, cfg.width = 3, cfg.value_channels = 8;
    CHECK(attn_vision_module_init(&m, ps, "", &cfg, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "dv < C"),
          "dv = C accepted: %s", attn_last_error());
    cfg.value_channels = 0, cfg.channels = -3;
    CHECK(attn_vision_module_init(&m, ps, "", &cfg, NULL) == ATTN_ERR_INVALID_ARG,
          "C = -3 accepted");
    CHECK(attn_vision_module_numel(&cfg) == -1, "numel of an invalid configuration");
    cfg.kind = ATTN_VM_PSA, cfg.channels = 8;
    CHECK_OK(attn_vision_module_init(&m, ps, "psa.", &cfg, NULL));
    attn_vision_module_config gc = {.kind = ATTN_VM_GC, .channels = 8};
    attn_vision_module g;
    CHECK_OK(attn_vision_module_init(&g, ps, "gc.", &gc, NULL));
    attn_ctx *ctx = test_ctx_new((size_t)16 << 20, 1, 0);
    if (ctx) {
        const int64_t other[4] = {2, 8, 4, 3}, wrongc[4] = {1, 6, 3, 3};
        attn_tensor *x = attn_tensor_new(ctx, ATTN_F32, 4, other);
        test_expect_fail(ctx, attn_vision_module_forward(ctx, &m, x, NULL) == NULL, ATTN_ERR_SHAPE,
                         "expected f32 [B, 8, 3, 3]", "a 4x3 map for a 3x3 PSA module");
        x = attn_tensor_new(ctx, ATTN_F32, 4, wrongc);
        test_expect_fail(ctx, attn_vision_module_forward(ctx, &g, x, NULL) == NULL, ATTN_ERR_SHAPE,
                         "expected f32 [B, 8, H, W]", "6 channels for an 8-channel GC block");
        x = attn_tensor_new(ctx, ATTN_I32, 4, other);
        test_expect_fail(ctx, attn_vision_module_forward(ctx, &g, x, NULL) == NULL, ATTN_ERR_SHAPE,
                         "(i32)", "an i32 map");
        x = attn_tensor_new(ctx, ATTN_F32, 4, other);
        test_expect_fail(ctx, attn_psa_gather(ctx, x, 4, 3, 0) == NULL, ATTN_ERR_SHAPE,
                         "expected f32 [B, (2H-1)(2W-1) = 35, H, W]", "psa_gather of 8 channels");
        attn_tensor *u[2] = {x, x};
        attn_tensor *lg = attn_tensor_new(ctx, ATTN_F32, 3, (int64_t[]){2, 3, 8});
        test_expect_fail(ctx, attn_channel_soft_attention(ctx, u, 2, lg, NULL) == NULL,
                         ATTN_ERR_SHAPE, "logits [B, 2, C]", "logits for 3 branches, 2 given");
        test_expect_fail(ctx, attn_channel_soft_attention(ctx, u, 1, lg, NULL) == NULL,
                         ATTN_ERR_INVALID_ARG, "1 branches", "one branch");
        attn_ctx_free(ctx);
    }
    attn_params_free(ps);
    TEST_END();
}

void suite_vision_modules(void) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/vision_modules.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        TEST_BEGIN("vision_modules/fixture");
        CHECK(0, "%s (regenerate with %s)", err, SCRIPT);
        TEST_END();
        return;
    }
    const atfx_tensor *nc = atfx_findf(fx, "n_cases");
    const int n = nc ? atfx_i32(nc)[0] : 0;
    TEST_BEGIN("vision_modules/fixture has 10 cases");
    CHECK(n == VM_CASES, "%d cases", n);
    TEST_END();
    for (int k = 0; k < n && k < VM_CASES; k++) {
        parity_case(fx, k, 0);
        parity_case(fx, k, 1);
        fd_case(fx, k);
    }
    test_cnn_modules();
    test_errors();
    atfx_free(fx);
}
