/* test_cnn.c: the CNN classifier (include/attn/cnn.h; suite "cnn").
 *
 *   (a) shapes: logits, pooled vector and the feature map of every stage on
 *       28x28 and 56x56 inputs (the 14x14 annotation grid of a 56x56
 *       canvas), the SAGAN map's shape, refusals of inputs that do not fit;
 *   (b) PyTorch parity (tests/fixtures/cnn.atfx, tools/make_cnn_fixtures.py):
 *       the whole network in training mode (logits, pooled vector, loss with
 *       label smoothing, the gradient of every parameter, the running
 *       statistics after the step) and in evaluation mode (logits from the
 *       updated running statistics), plain, with SAGAN (paper and code
 *       forms) and with symmetric Simple SA;
 *   (c) finite differences of the loss on a tiny model (input, a conv
 *       weight, a BatchNorm weight, the attention's gamma, the head);
 *   (d) BatchNorm modes: training mode depends on the batch, evaluation mode
 *       does not, and leaves the running statistics alone;
 *   (e) save / load round trip (configuration, every tensor, same logits);
 *   (f) hostile files: metadata claiming a bigger model than the file holds,
 *       out-of-range or malformed entries, a missing entry, a NaN weight,
 *       a truncated file: refused with a clear status, the store empty.
 *
 * Tolerance of (b): CNN_ATOL 5e-5, CNN_RTOL 5e-4: float32 convolutions and
 * batch statistics over at most 3 x 8 x 8 values, through up to four
 * normalised layers (BatchNorm divides by batch deviations of order 0.1, so
 * float32 rounding of ~1e-7 relative grows by about 10x per layer); the
 * fixtures are float64 rounded once. Finite differences: h 1e-3 (small
 * enough that ReLU kinks and max-pool switches are rarely crossed), |fd -
 * analytic| <= 3e-3 + 3e-2 |fd| (float32 forward: noise ~1e-4). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "test.h"

#define CNN_ATOL 5e-5f
#define CNN_RTOL 5e-4f
#define SCRIPT "tools/make_cnn_fixtures.py"

static attn_tensor *input(attn_ctx *ctx, int64_t B, int64_t C, int64_t H, int64_t W, unsigned seed) {
    attn_tensor *x = attn_tensor_new(ctx, ATTN_F32, 4, (int64_t[]){B, C, H, W});
    if (!x) return NULL;
    attn_rng rng;
    attn_rng_init(&rng, seed);
    for (int64_t i = 0; i < attn_tensor_numel(x); i++) attn_f32(x)[i] = attn_rng_next_uniform(&rng);
    return x;
}

static int same_shape(const attn_tensor *t, int ndim, const int64_t *s) {
    if (!t || t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != s[i]) return 0;
    return 1;
}

#define CHECK_SHAPE(t, ...)                                                                  \
    do {                                                                                     \
        const int64_t want__[] = {__VA_ARGS__};                                              \
        char b__[64];                                                                        \
        CHECK(same_shape(t, (int)(sizeof want__ / sizeof want__[0]), want__),                \
              "%s: shape %s", #t, (t) ? attn_shape_str(t, b__, sizeof b__) : "(NULL)");     \
    } while (0)

/* ---- (a) shapes ------------------------------------------------------------------------- */

static void test_shapes(void) {
    TEST_BEGIN("cnn/shapes on 28x28 and 56x56 inputs, every stage");
    attn_params *ps = NULL;
    attn_cnn *m = NULL;
    attn_rng rng;
    attn_rng_init(&rng, 3);
    attn_cnn_config c = attn_cnn_config_default();
    c.convs_per_stage = 1;
    c.attention = ATTN_CNN_ATT_SAGAN;
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_cnn_new(&m, ps, &c, &rng));
    attn_ctx *ctx = test_ctx_new((size_t)256 << 20, 1, 16);
    if (!m || !ctx) goto out;
    attn_ctx_set_training(ctx, 0);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *pooled = NULL, *w = NULL;
    attn_tensor *x = input(ctx, 2, 1, 28, 28, 1);
    attn_tensor *lg = attn_cnn_forward(ctx, m, x, &pooled, &w);
    CHECK(lg != NULL, "forward 28x28: %s", attn_ctx_error(ctx));
    CHECK_SHAPE(lg, 2, 10);
    CHECK_SHAPE(pooled, 2, 128);
    CHECK_SHAPE(w, 2, 1, 196, 196);
    attn_tensor *f0 = attn_cnn_features(ctx, m, x, 0, NULL);
    attn_tensor *f1 = attn_cnn_features(ctx, m, x, 1, NULL);
    attn_tensor *f2 = attn_cnn_features(ctx, m, x, 2, NULL);
    CHECK_SHAPE(f0, 2, 32, 14, 14);
    CHECK_SHAPE(f1, 2, 64, 7, 7);
    CHECK_SHAPE(f2, 2, 128, 7, 7);
    attn_tensor *p2 = attn_cnn_pooled(ctx, m, x);
    CHECK_SHAPE(p2, 2, 128);
    if (p2 && pooled) test_allclose("pooled twice", attn_f32(p2), attn_f32(pooled), 256, 0.0f, 0.0f);
    /* the same weights on a 56x56 canvas: 14x14 annotation vectors at stage 1 */
    attn_tensor *x56 = input(ctx, 3, 1, 56, 56, 2);
    attn_tensor *a1 = attn_cnn_features(ctx, m, x56, 1, &w);
    CHECK(a1 != NULL, "features 56x56: %s", attn_ctx_error(ctx));
    CHECK_SHAPE(a1, 3, 64, 14, 14);
    CHECK_SHAPE(w, 3, 1, 784, 784);
    lg = attn_cnn_forward(ctx, m, x56, &pooled, NULL);
    CHECK_SHAPE(lg, 3, 10);
    CHECK_SHAPE(pooled, 3, 128);
    /* inputs that do not fit */
    attn_tensor *tiny = input(ctx, 1, 1, 3, 3, 3);
    test_expect_fail(ctx, attn_cnn_forward(ctx, m, tiny, NULL, NULL) == NULL, ATTN_ERR_SHAPE,
                     "pooling needs a map of at least 2x2", "a 3x3 image through two poolings");
    attn_tensor *rgb = input(ctx, 1, 3, 28, 28, 4);
    test_expect_fail(ctx, attn_cnn_forward(ctx, m, rgb, NULL, NULL) == NULL, ATTN_ERR_SHAPE,
                     "expected [B, 1, H, W]", "3 channels for a grey model");
    x = input(ctx, 1, 1, 28, 28, 5);
    test_expect_fail(ctx, attn_cnn_features(ctx, m, x, 3, NULL) == NULL, ATTN_ERR_INVALID_ARG,
                     "stage 3 outside [0, 3)", "stage 3 of 3");
    test_expect_fail(ctx, attn_cnn_features(ctx, m, x, -1, NULL) == NULL, ATTN_ERR_INVALID_ARG,
                     "outside", "stage -1");
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s", attn_last_error());
out:
    if (ctx) attn_ctx_free(ctx);
    attn_cnn_free(m);
    attn_params_free(ps);
    TEST_END();
}

static void test_config_errors(void) {
    TEST_BEGIN("cnn/configurations that do not fit are refused");
    attn_params *ps = NULL;
    attn_cnn *m = NULL;
    CHECK_OK(attn_params_new(&ps));
    attn_cnn_config c = attn_cnn_config_default();
    c.widths[0] = 12;
    c.attention = ATTN_CNN_ATT_SAGAN;
    CHECK(attn_cnn_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "multiple of 8"),
          "SAGAN on 12 channels: %s", attn_last_error());
    c = attn_cnn_config_default();
    c.n_stages = 5;
    CHECK(attn_cnn_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG, "5 stages accepted");
    c = attn_cnn_config_default();
    c.attention = ATTN_CNN_ATT_SIMPLE;
    c.attention_stage = 3;
    CHECK(attn_cnn_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "attention_stage 3"),
          "attention after stage 3 of 3: %s", attn_last_error());
    c = attn_cnn_config_default();
    c.dropout = NAN;
    CHECK(attn_cnn_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG, "NaN dropout accepted");
    c = attn_cnn_config_default();
    c.input_std = -1.0f;
    CHECK(attn_cnn_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG, "negative std accepted");
    CHECK(m == NULL && attn_params_count(ps) == 0, "a refused model left %d tensors",
          attn_params_count(ps));
    attn_cnn_attention a;
    CHECK(attn_cnn_attention_parse("sagan-code", &a) == 0 && a == ATTN_CNN_ATT_SAGAN_CODE &&
              attn_cnn_attention_parse("bogus", &a) == -1 &&
              !strcmp(attn_cnn_attention_name(ATTN_CNN_ATT_SIMPLE), "simple"),
          "attention names");
    attn_params_free(ps);
    TEST_END();
}

/* ---- (b) PyTorch parity ------------------------------------------------------------------ */

/* The configuration of fixture case k. */
static int case_config(const atfx_file *fx, int k, attn_cnn_config *c, float *smoothing) {
    char nm[64];
    const atfx_tensor *ct = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.cfg", k), nm), ATTN_I32,
                                         10, SCRIPT);
    const atfx_tensor *ft = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.fcfg", k), nm), ATTN_F32,
                                         4, SCRIPT);
    if (!ct || !ft) return -1;
    const int32_t *v = atfx_i32(ct);
    const float *f = atfx_f32(ft);
    memset(c, 0, sizeof *c);
    c->in_channels = v[0];
    c->n_classes = v[1];
    c->n_stages = v[2];
    c->widths[0] = v[3];
    c->widths[1] = v[4];
    c->convs_per_stage = v[5];
    c->attention = (attn_cnn_attention)v[6];
    c->attention_stage = v[7];
    c->sym = v[8];
    c->dropout = f[0];
    c->input_mean = f[1];
    c->input_std = f[2];
    *smoothing = f[3];
    return 0;
}

static void parity_case(const atfx_file *fx, int k) {
    char tname[160], tag[64], nm[128];
    attn_params *ps = NULL;
    attn_cnn *m = NULL;
    attn_ctx *ctx = NULL;
    attn_cnn_config c;
    float smoothing = 0.0f;
    const atfx_tensor *ct = atfx_findf(fx, "c%d.cfg", k);
    const int att = ct && ct->numel == 10 ? atfx_i32(ct)[6] : 0;
    snprintf(tname, sizeof tname, "cnn/forward and backward vs torch (case %d: attention %s)", k,
             attn_cnn_attention_name((attn_cnn_attention)att));
    snprintf(tag, sizeof tag, "case %d", k);
    TEST_BEGIN(tname);
    if (case_config(fx, k, &c, &smoothing)) goto out;
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_cnn_new(&m, ps, &c, NULL));
    if (!m || test_load_torch_params(fx, k, ps, 0, tag) < 0) goto out;
    ctx = test_ctx_new((size_t)64 << 20, 1, 64);
    const atfx_tensor *xt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.x", k), nm), ATTN_F32, -1, SCRIPT);
    const atfx_tensor *yt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.y", k), nm), ATTN_I32, -1, SCRIPT);
    if (!ctx || !xt || !yt) goto out;
    attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, 4, xt->shape, atfx_f32(xt));
    attn_tensor *y = attn_tensor_from(ctx, ATTN_I32, 1, yt->shape, atfx_i32(yt));
    attn_tensor *logits = attn_cnn_forward(ctx, m, x, NULL, NULL);
    attn_tensor *pooled = NULL;
    attn_tensor *loss = logits ? attn_cross_entropy(ctx, logits, y, -1, smoothing) : NULL;
    CHECK(loss != NULL, "%s: forward: %s", tag, attn_ctx_error(ctx));
    if (!loss) goto out;
    test_fx_close(tag, "logits", attn_f32(logits), fx, (snprintf(nm, sizeof nm, "c%d.logits", k), nm),
                  attn_tensor_numel(logits), CNN_ATOL, CNN_RTOL, SCRIPT);
    test_fx_close(tag, "loss", attn_f32(loss), fx, (snprintf(nm, sizeof nm, "c%d.loss", k), nm), 1,
                  CNN_ATOL, CNN_RTOL, SCRIPT);
    CHECK_OK(attn_backward(ctx, loss));
    int n_grads = 0, n_stats = 0;
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        char what[128];
        if (p->requires_grad) {
            snprintf(what, sizeof what, "gradient of %s", p->name);
            CHECK(p->grad != NULL, "%s: %s has no gradient", tag, p->name);
            if (p->grad)
                test_fx_close(tag, what, p->grad, fx, (snprintf(nm, sizeof nm, "c%d.grad.%s", k, p->name), nm),
                              attn_tensor_numel(p), CNN_ATOL, CNN_RTOL, SCRIPT);
            n_grads++;
        } else {
            snprintf(what, sizeof what, "%s after the step", p->name);
            test_fx_close(tag, what, attn_f32(p), fx, (snprintf(nm, sizeof nm, "c%d.after.%s", k, p->name), nm),
                          attn_tensor_numel(p), CNN_ATOL, CNN_RTOL, SCRIPT);
            n_stats++;
        }
    }
    CHECK(n_grads >= 7 && n_stats >= 4, "%s: %d gradients, %d statistics compared", tag, n_grads, n_stats);
    /* the pooled vector (training mode, same batch statistics) */
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    /* a second training forward would move the running statistics again:
     * evaluation mode first, with the statistics the step left */
    attn_ctx_set_training(ctx, 0);
    x = attn_tensor_from(ctx, ATTN_F32, 4, xt->shape, atfx_f32(xt));
    attn_tensor *ev = attn_cnn_forward(ctx, m, x, NULL, NULL);
    CHECK(ev != NULL, "%s: eval forward: %s", tag, attn_ctx_error(ctx));
    if (ev)
        test_fx_close(tag, "evaluation-mode logits", attn_f32(ev), fx,
                      (snprintf(nm, sizeof nm, "c%d.eval_logits", k), nm), attn_tensor_numel(ev),
                      CNN_ATOL, CNN_RTOL, SCRIPT);
    attn_ctx_set_training(ctx, 1);
    attn_cnn_forward(ctx, m, x, &pooled, NULL);
    CHECK(pooled != NULL, "%s: %s", tag, attn_ctx_error(ctx));
    if (pooled)
        test_fx_close(tag, "pooled vector", attn_f32(pooled), fx, (snprintf(nm, sizeof nm, "c%d.pooled", k), nm),
                      attn_tensor_numel(pooled), CNN_ATOL, CNN_RTOL, SCRIPT);
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s: %s", tag, attn_last_error());
out:
    if (ctx) attn_ctx_free(ctx);
    attn_cnn_free(m);
    attn_params_free(ps);
    TEST_END();
}

/* ---- (c) finite differences --------------------------------------------------------------- */

static double loss_value(attn_ctx *ctx, const attn_cnn *m, const int64_t *xs, const float *x,
                         const int32_t *y) {
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *xt = attn_tensor_from(ctx, ATTN_F32, 4, xs, x);
    attn_tensor *yt = attn_tensor_from(ctx, ATTN_I32, 1, xs, y);
    attn_tensor *l = attn_cnn_loss(ctx, m, xt, yt, 0.0f, NULL);
    attn_ctx_set_grad_enabled(ctx, 1);
    return l ? (double)attn_f32(l)[0] : NAN;
}

static void test_finite_differences(attn_cnn_attention att) {
    char tname[128];
    snprintf(tname, sizeof tname, "cnn/finite differences of the loss (tiny model, attention %s)",
             attn_cnn_attention_name(att));
    TEST_BEGIN(tname);
    attn_params *ps = NULL;
    attn_cnn *m = NULL;
    attn_rng rng;
    attn_rng_init(&rng, 11);
    attn_cnn_config c = attn_cnn_config_default();
    c.n_stages = 2;
    c.widths[0] = 8;
    c.widths[1] = 4;
    c.convs_per_stage = 1;
    c.n_classes = 3;
    c.attention = att;
    c.bn_momentum = 0.0f; /* reads as 0.1: the running statistics move, the training output does not */
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_cnn_new(&m, ps, &c, &rng));
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    if (!m || !ctx) goto out;
    if (att != ATTN_CNN_ATT_NONE) attn_f32(m->att.gamma)[0] = 0.5f;
    const int64_t xs[4] = {3, 1, 6, 6};
    float x[108];
    int32_t y[3] = {0, 2, 1};
    for (int i = 0; i < 108; i++) x[i] = attn_rng_next_uniform(&rng);
    attn_ctx_reset(ctx);
    attn_tensor *xl = test_leaf(ctx, 4, xs, x);
    attn_tensor *yt = attn_tensor_from(ctx, ATTN_I32, 1, xs, y);
    attn_params_zero_grad(ps);
    attn_tensor *l = attn_cnn_loss(ctx, m, xl, yt, 0.0f, NULL);
    CHECK(l != NULL, "forward: %s", attn_ctx_error(ctx));
    if (!l) goto out;
    CHECK_OK(attn_backward(ctx, l));
    float gx[108];
    memcpy(gx, xl->grad, sizeof gx);
    const float h = 1e-3f;
    int bad = 0, probes = 0;
    for (int i = 0; i < 108; i += 13, probes++) {
        const float keep = x[i];
        x[i] = keep + h;
        const double lp = loss_value(ctx, m, xs, x, y);
        x[i] = keep - h;
        const double lm = loss_value(ctx, m, xs, x, y);
        x[i] = keep;
        const double fd = (lp - lm) / (2.0 * h);
        if (!(fabs(fd - gx[i]) <= 3e-3 + 3e-2 * fabs(fd))) {
            bad++;
            CHECK(0, "x[%d]: analytic %g, central difference %g", i, (double)gx[i], fd);
        }
    }
    attn_tensor *probe[5] = {m->layers[0][0].conv_w, m->layers[1][0].bn_w, m->layers[0][0].bn_b,
                             m->head_w, att != ATTN_CNN_ATT_NONE ? m->att.gamma : m->head_b};
    for (int j = 0; j < 5; j++) {
        for (int64_t e = 0; e < attn_tensor_numel(probe[j]) && e < 3; e++, probes++) {
            float *pv = attn_f32(probe[j]);
            const double analytic = probe[j]->grad[e];
            const float keep = pv[e];
            pv[e] = keep + h;
            const double lp = loss_value(ctx, m, xs, x, y);
            pv[e] = keep - h;
            const double lm = loss_value(ctx, m, xs, x, y);
            pv[e] = keep;
            const double fd = (lp - lm) / (2.0 * h);
            if (!(fabs(fd - analytic) <= 3e-3 + 3e-2 * fabs(fd))) {
                bad++;
                CHECK(0, "%s[%lld]: analytic %g, central difference %g", probe[j]->name, (long long)e,
                      analytic, fd);
            }
        }
    }
    CHECK(bad == 0 && probes >= 15, "%d of %d probes out of tolerance", bad, probes);
out:
    if (ctx) attn_ctx_free(ctx);
    attn_cnn_free(m);
    attn_params_free(ps);
    TEST_END();
}

/* ---- (d) BatchNorm modes ---------------------------------------------------------------- */

static void test_bn_modes(void) {
    TEST_BEGIN("cnn/evaluation mode uses the running statistics, training mode the batch's");
    attn_params *ps = NULL;
    attn_cnn *m = NULL;
    attn_rng rng;
    attn_rng_init(&rng, 21);
    attn_cnn_config c = attn_cnn_config_default();
    c.widths[0] = 8, c.widths[1] = 8, c.widths[2] = 8;
    c.convs_per_stage = 1;
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_cnn_new(&m, ps, &c, &rng));
    attn_ctx *ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    if (!m || !ctx) goto out;
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *x = input(ctx, 4, 1, 12, 12, 7);
    attn_tensor *x1 = attn_slice(ctx, x, 0, 0, 1);
    /* training mode: image 0's logits depend on the other images */
    attn_tensor *all = attn_cnn_forward(ctx, m, x, NULL, NULL);
    const float mean_after = attn_f32(m->layers[0][0].bn_mean)[0];
    CHECK(mean_after != 0.0f, "training mode did not update the running mean");
    attn_tensor *two = attn_cnn_forward(ctx, m, attn_slice(ctx, x, 0, 0, 2), NULL, NULL);
    if (all && two) {
        double d = 0.0;
        for (int k = 0; k < 10; k++) d += fabs((double)attn_f32(all)[k] - attn_f32(two)[k]);
        CHECK(d > 1e-4, "training mode: image 0 gives the same logits in batches of 4 and 2 (%g)", d);
    }
    /* evaluation mode: batch-independent, statistics untouched */
    attn_ctx_set_training(ctx, 0);
    float stats[8];
    memcpy(stats, attn_f32(m->layers[0][0].bn_var), sizeof stats);
    attn_tensor *e_all = attn_cnn_forward(ctx, m, x, NULL, NULL);
    attn_tensor *e_one = attn_cnn_forward(ctx, m, x1, NULL, NULL);
    CHECK(e_all && e_one, "%s", attn_ctx_error(ctx));
    if (e_all && e_one) test_allclose("eval: image 0 alone vs in a batch", attn_f32(e_one), attn_f32(e_all), 10, 1e-6f, 1e-5f);
    CHECK(memcmp(stats, attn_f32(m->layers[0][0].bn_var), sizeof stats) == 0,
          "evaluation mode changed the running variance");
    /* batch 1 in training mode cannot update running statistics: a clear error */
    attn_ctx_set_training(ctx, 1);
    attn_tensor *xone = input(ctx, 1, 1, 4, 4, 8);
    test_expect_fail(ctx, attn_cnn_forward(ctx, m, xone, NULL, NULL) == NULL, ATTN_ERR_INVALID_ARG,
                     "batchnorm", "training mode on one 1x1 value per channel");
out:
    if (ctx) attn_ctx_free(ctx);
    attn_cnn_free(m);
    attn_params_free(ps);
    TEST_END();
}

/* ---- (e) save / load -------------------------------------------------------------------- */

static void tmp_dir(char *dir, size_t n) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, n, "%s/attn_test_cnn_XXXXXX", base && base[0] ? base : "/tmp");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
}

static void test_save_load(void) {
    TEST_BEGIN("cnn/save and load: configuration, parameters, running statistics, same logits");
    char dir[512], path[600];
    tmp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/cnn.safetensors", dir);
    attn_params *ps = NULL, *ps2 = NULL;
    attn_cnn *m = NULL, *m2 = NULL;
    attn_rng rng;
    attn_rng_init(&rng, 31);
    attn_cnn_config c = attn_cnn_config_default();
    c.widths[0] = 8, c.widths[1] = 16, c.widths[2] = 16;
    c.attention = ATTN_CNN_ATT_SAGAN_CODE;
    c.dropout = 0.25f;
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_params_new(&ps2));
    CHECK_OK(attn_cnn_new(&m, ps, &c, &rng));
    attn_ctx *ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    if (!m || !ctx) goto out;
    attn_f32(m->att.gamma)[0] = 0.3f;
    attn_f32(m->layers[1][0].bn_mean)[2] = 0.7f;
    attn_f32(m->layers[2][1].bn_var)[5] = 2.5f;
    const attn_kv extra[1] = {{"note", "round trip"}};
    CHECK_OK(attn_cnn_save(path, m, extra, 1));
    CHECK_OK(attn_cnn_load(path, ps2, &m2));
    if (!m2) goto out;
    CHECK(memcmp(&m->cfg, &m2->cfg, sizeof c) == 0, "configuration differs after the round trip");
    CHECK(attn_params_count(ps) == attn_params_count(ps2) && attn_cnn_numel(&c) == attn_params_numel(ps),
          "%d vs %d tensors; numel %lld vs store %lld", attn_params_count(ps), attn_params_count(ps2),
          (long long)attn_cnn_numel(&c), (long long)attn_params_numel(ps));
    for (int i = 0; i < attn_params_count(ps) && i < attn_params_count(ps2); i++) {
        const attn_tensor *a = attn_params_at(ps, i), *b = attn_params_at(ps2, i);
        CHECK(!strcmp(a->name, b->name) && attn_tensor_numel(a) == attn_tensor_numel(b) &&
                  !memcmp(a->data, b->data, sizeof(float) * (size_t)attn_tensor_numel(a)) &&
                  a->requires_grad == b->requires_grad,
              "tensor %d (%s) differs", i, a->name);
    }
    attn_ctx_set_training(ctx, 0);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *x = input(ctx, 2, 1, 28, 28, 9);
    attn_tensor *l1 = attn_cnn_forward(ctx, m, x, NULL, NULL), *l2 = attn_cnn_forward(ctx, m2, x, NULL, NULL);
    CHECK(l1 && l2, "%s", attn_ctx_error(ctx));
    if (l1 && l2) test_allclose("logits after load", attn_f32(l2), attn_f32(l1), 20, 0.0f, 0.0f);
    CHECK(fabsf(attn_cnn_gamma(m2) - 0.3f) == 0.0f, "gamma %g", (double)attn_cnn_gamma(m2));
out:
    remove(path);
    rmdir(dir);
    if (ctx) attn_ctx_free(ctx);
    attn_cnn_free(m);
    attn_cnn_free(m2);
    attn_params_free(ps);
    attn_params_free(ps2);
    TEST_END();
}

/* ---- (f) hostile files ------------------------------------------------------------------- */

/* Saves a small model's tensors under the metadata kv (n entries) and checks
 * that attn_cnn_load refuses the file with `want` and a message holding
 * needle, leaving the store empty. */
static void hostile_case(const char *what, const attn_kv *kv, int n, int nan_weight,
                         attn_status want, const char *needle) {
    char dir[512], path[600];
    tmp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/cnn.safetensors", dir);
    attn_params *ps = NULL, *ps2 = NULL;
    attn_cnn *m = NULL, *m2 = NULL;
    attn_rng rng;
    attn_rng_init(&rng, 41);
    attn_cnn_config c = attn_cnn_config_default();
    c.widths[0] = 8, c.widths[1] = 8, c.widths[2] = 8;
    c.convs_per_stage = 1;
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_params_new(&ps2));
    CHECK_OK(attn_cnn_new(&m, ps, &c, &rng));
    if (m) {
        if (nan_weight) attn_f32(m->layers[1][0].conv_w)[3] = NAN;
        CHECK_OK(attn_safetensors_save_params(path, ps, kv, n));
        const attn_status st = attn_cnn_load(path, ps2, &m2);
        /* refused from the metadata: nothing built; a bad tensor (NaN) is
         * found by the load itself, after the model's tensors were added */
        CHECK(st == want && m2 == NULL && (want == ATTN_ERR_NUMERIC || attn_params_count(ps2) == 0) &&
                  strstr(attn_last_error(), needle) != NULL,
              "%s: status %s (want %s), %d tensors built: %s", what, attn_status_str(st),
              attn_status_str(want), attn_params_count(ps2), attn_last_error());
    }
    remove(path);
    rmdir(dir);
    attn_cnn_free(m);
    attn_cnn_free(m2);
    attn_params_free(ps);
    attn_params_free(ps2);
}

/* The metadata of the small model of hostile_case with entry `key` set to
 * value (NULL: left out). */
static int meta_with(attn_kv *kv, char *buf, const char *key, const char *value) {
    attn_cnn_config c = attn_cnn_config_default();
    c.widths[0] = 8, c.widths[1] = 8, c.widths[2] = 8;
    c.convs_per_stage = 1;
    attn_cnn_config_meta(&c, kv, buf);
    int n = 0;
    for (int i = 0; i < ATTN_CNN_META; i++) {
        if (!strcmp(kv[i].key, key)) {
            if (!value) continue;
            kv[i].value = value;
        }
        kv[n++] = kv[i];
    }
    return n;
}

static void test_hostile_files(void) {
    TEST_BEGIN("cnn/hostile files are refused before a model is built");
    attn_kv kv[ATTN_CNN_META];
    char buf[ATTN_CNN_META * 32];
    int n = meta_with(kv, buf, "cnn.width0", "4096");
    hostile_case("width0 4096 claimed by a file of an 8-wide model", kv, n, 0, ATTN_ERR_FORMAT,
                 "needs at least");
    n = meta_with(kv, buf, "cnn.n_classes", "100000");
    hostile_case("100000 classes claimed", kv, n, 0, ATTN_ERR_FORMAT, "needs at least");
    n = meta_with(kv, buf, "cnn.n_classes", "11");
    hostile_case("one class more than the head holds", kv, n, 0, ATTN_ERR_FORMAT, "");
    n = meta_with(kv, buf, "cnn.n_stages", "9");
    hostile_case("9 stages", kv, n, 0, ATTN_ERR_FORMAT, "n_stages 9");
    n = meta_with(kv, buf, "cnn.attention", "12");
    hostile_case("attention kind 12", kv, n, 0, ATTN_ERR_FORMAT, "attention 12");
    n = meta_with(kv, buf, "cnn.width1", "-8");
    hostile_case("negative width", kv, n, 0, ATTN_ERR_FORMAT, "is not a number");
    n = meta_with(kv, buf, "cnn.input_std", "nan");
    hostile_case("NaN input std", kv, n, 0, ATTN_ERR_FORMAT, "input_std");
    n = meta_with(kv, buf, "cnn.convs_per_stage", "two");
    hostile_case("non-number", kv, n, 0, ATTN_ERR_FORMAT, "is not a number");
    n = meta_with(kv, buf, "cnn.width2", NULL);
    hostile_case("an entry missing", kv, n, 0, ATTN_ERR_FORMAT, "has no metadata entry cnn.width2");
    n = meta_with(kv, buf, "cnn.bn_eps", "0.00001");
    hostile_case("a NaN weight", kv, n, 1, ATTN_ERR_NUMERIC, "stages.1.0.conv.weight");
    hostile_case("no metadata (not a CNN file)", NULL, 0, 0, ATTN_ERR_FORMAT, "not a CNN file");
    /* a truncated file */
    {
        char dir[512], path[600];
        tmp_dir(dir, sizeof dir);
        snprintf(path, sizeof path, "%s/cnn.safetensors", dir);
        attn_params *ps = NULL;
        attn_cnn *m = NULL;
        attn_cnn_config c = attn_cnn_config_default();
        c.widths[0] = 8, c.widths[1] = 8, c.widths[2] = 8;
        CHECK_OK(attn_params_new(&ps));
        CHECK_OK(attn_cnn_new(&m, ps, &c, NULL));
        if (m) CHECK_OK(attn_cnn_save(path, m, NULL, 0));
        FILE *f = fopen(path, "rb+");
        if (f) {
            fseek(f, 0, SEEK_END);
            const long size = ftell(f);
            fclose(f);
            CHECK(truncate(path, size - 100) == 0, "truncate");
        }
        attn_params *ps2 = NULL;
        attn_cnn *m2 = NULL;
        CHECK_OK(attn_params_new(&ps2));
        const attn_status st = attn_cnn_load(path, ps2, &m2);
        CHECK(st == ATTN_ERR_FORMAT && m2 == NULL && attn_params_count(ps2) == 0,
              "truncated file: %s: %s", attn_status_str(st), attn_last_error());
        remove(path);
        rmdir(dir);
        attn_cnn_free(m);
        attn_params_free(ps);
        attn_params_free(ps2);
    }
    TEST_END();
}

void suite_cnn(void) {
    test_shapes();
    test_config_errors();
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/cnn.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        TEST_BEGIN("cnn/fixture");
        CHECK(0, "%s (regenerate with %s)", err, SCRIPT);
        TEST_END();
    } else {
        const atfx_tensor *nc = atfx_findf(fx, "n_cases");
        const int n = nc ? atfx_i32(nc)[0] : 0;
        TEST_BEGIN("cnn/fixture has 4 cases");
        CHECK(n == 4, "%d cases", n);
        TEST_END();
        for (int k = 0; k < n; k++) parity_case(fx, k);
        atfx_free(fx);
    }
    test_finite_differences(ATTN_CNN_ATT_NONE);
    test_finite_differences(ATTN_CNN_ATT_SAGAN);
    test_finite_differences(ATTN_CNN_ATT_SIMPLE);
    test_bn_modes();
    test_save_load();
    test_hostile_files();
}
