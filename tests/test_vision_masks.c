/* test_vision_masks.c: the item masks of the captioning scenes
 * (attn_scene_mask, scenes.h), the item IoU (attn_mask_scene_iou) and the
 * mask network with the SAG map (mask_head.h); suite "vision_masks".
 *
 *   (a) masks of a scene built by hand: pixels above the threshold of an
 *       occupied cell are its item's, the threshold itself and empty cells
 *       are background; masks of drawn scenes equal the source images'
 *       pixels above the threshold; bad arguments;
 *   (b) the IoU of constructed predictions: exact, wrong class (class-aware
 *       0, class-agnostic 1), half of the item, empty cells;
 *   (c) the network (built only from ops with their own parity and finite-
 *       difference tests): shapes, parameter count, a finite loss near
 *       log(K + 1) at init, gradients reaching every trainable parameter
 *       (the SAG convolution included), central finite differences of a few
 *       parameters through the whole network, the loss falling under a few
 *       AdamW steps on one batch, save and load with the same logits;
 *   (d) errors: configurations, input and target shapes.
 * Finite differences: h 1e-3, |fd - analytic| <= 2e-3 + 5e-2 |fd| (float32
 * forward through BatchNorm in training mode and ReLUs; the probes are
 * elements of the output layer and of the SAG convolution). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

/* A fake Fashion-MNIST of n images: image i's pixel p is (i * 13 + p * 7) % 256,
 * label i % 10. */
static int fake_images(int64_t n, attn_idx *im, attn_idx *lb) {
    memset(im, 0, sizeof *im);
    memset(lb, 0, sizeof *lb);
    im->data = malloc((size_t)n * 784);
    lb->data = malloc((size_t)n);
    if (!im->data || !lb->data) return -1;
    im->ndim = 3;
    im->dims[0] = n;
    im->dims[1] = im->dims[2] = 28;
    im->numel = n * 784;
    im->item_size = 784;
    lb->ndim = 1;
    lb->dims[0] = n;
    lb->numel = n;
    lb->item_size = 1;
    for (int64_t i = 0; i < n; i++) {
        for (int p = 0; p < 784; p++) im->data[i * 784 + p] = (uint8_t)((i * 13 + p * 7) % 256);
        lb->data[i] = (uint8_t)(i % 10);
    }
    return 0;
}

static void test_masks(void) {
    TEST_BEGIN("vision_masks/scene masks: threshold, cells, drawn scenes, arguments");
    /* by hand: items in cells 0 (class 3) and 3 (class 7), cell 1 empty but
     * with a stray bright pixel, cell 2 empty */
    attn_scene sc = {{3, -1, -1, 7}, {0, -1, -1, 1}};
    uint8_t px[56 * 56];
    memset(px, 0, sizeof px);
    px[5 * 56 + 6] = 200;  /* cell 0: item */
    px[5 * 56 + 7] = 26;   /* cell 0: just above the threshold 25: item */
    px[5 * 56 + 8] = 25;   /* cell 0: the threshold itself: background */
    px[2 * 56 + 40] = 255; /* cell 1 (empty): background */
    px[40 * 56 + 40] = 90; /* cell 3: item */
    px[30 * 56 + 10] = 90; /* cell 2 (empty): background */
    attn_scenes s = {1, &sc, px};
    int8_t m[56 * 56];
    const int n = attn_scene_mask(&s, 0, 25, m);
    CHECK(n == 3, "3 item pixels expected, got %d", n);
    CHECK(m[5 * 56 + 6] == 0 && m[5 * 56 + 7] == 0 && m[5 * 56 + 8] == -1, "cell 0: %d %d %d", m[5 * 56 + 6],
          m[5 * 56 + 7], m[5 * 56 + 8]);
    CHECK(m[2 * 56 + 40] == -1 && m[30 * 56 + 10] == -1, "empty cells are background (%d %d)", m[2 * 56 + 40],
          m[30 * 56 + 10]);
    CHECK(m[40 * 56 + 40] == 3 && m[0] == -1, "cell 3 item (%d), background (%d)", m[40 * 56 + 40], m[0]);
    CHECK(attn_scene_mask(&s, 0, 200, m) == 0, "threshold 200: no pixel above it");
    CHECK(attn_scene_mask(&s, 1, 25, m) == -1 && attn_scene_mask(&s, -1, 25, m) == -1, "scene index checked");
    CHECK(attn_scene_mask(&s, 0, 255, m) == -1 && attn_scene_mask(&s, 0, -1, m) == -1, "threshold checked");
    CHECK(attn_scene_mask(NULL, 0, 25, m) == -1 && attn_scene_mask(&s, 0, 25, NULL) == -1, "NULL checked");

    /* drawn scenes: each item pixel is its source image's pixel above the threshold */
    attn_idx im, lb;
    attn_scenes d;
    memset(&d, 0, sizeof d);
    CHECK(fake_images(60, &im, &lb) == 0, "fake images");
    CHECK_OK(attn_scenes_make(&im, &lb, ATTN_SCENES_TEST, 20, 3, &d));
    int bad = 0, items = 0;
    for (int64_t i = 0; i < d.n && d.scenes; i++) {
        attn_scene_mask(&d, i, 60, m);
        for (int r = 0; r < 56; r++)
            for (int c = 0; c < 56; c++) {
                const int cell = (r / 28) * 2 + c / 28;
                const int src = d.scenes[i].src[cell];
                const int want = src >= 0 && im.data[(int64_t)src * 784 + (r % 28) * 28 + c % 28] > 60 ? cell : -1;
                bad += m[r * 56 + c] != want;
            }
        for (int c = 0; c < 4; c++) items += d.scenes[i].cls[c] >= 0;
    }
    CHECK(bad == 0 && items > 20, "%d pixels differ from the source images (%d items)", bad, items);
    attn_scenes_free(&d);
    attn_idx_free(&im);
    attn_idx_free(&lb);
    TEST_END();
}

static void test_iou(void) {
    TEST_BEGIN("vision_masks/item IoU: exact, wrong class, half, empty cells");
    const int K1 = 11, P = 56 * 56;
    float *lg = calloc((size_t)K1 * P, sizeof *lg);
    int8_t m[56 * 56];
    attn_scene sc = {{2, 5, -1, 9}, {0, 1, -1, 2}};
    memset(m, -1, sizeof m);
    /* truth: cell 0 a 10x10 square, cell 1 a 4x8 block, cell 3 an 8x8 square */
    for (int r = 4; r < 14; r++)
        for (int c = 4; c < 14; c++) m[r * 56 + c] = 0;
    for (int r = 10; r < 14; r++)
        for (int c = 30; c < 38; c++) m[r * 56 + c] = 1;
    for (int r = 40; r < 48; r++)
        for (int c = 40; c < 48; c++) m[r * 56 + c] = 3;
    for (int p = 0; lg && p < P; p++) {
        int k = 0; /* background */
        const int r = p / 56, c = p % 56;
        if (m[p] == 0) k = 1 + 2;                     /* cell 0: exact, right class */
        if (m[p] == 1 && c < 34) k = 1 + 5;           /* cell 1: the left half, right class */
        if (m[p] == 3) k = 1 + 4;                     /* cell 3: wrong class */
        if (r == 30 && c == 10) k = 1 + 2;            /* a stray pixel in the empty cell 2 */
        if (r == 0 && c == 20) k = 1 + 2;             /* a false positive in cell 0 */
        lg[(int64_t)k * P + p] = 1.0f;
    }
    double ic[4], ifg[4];
    const int n = lg ? attn_mask_scene_iou(lg, K1, &sc, m, ic, ifg) : -2;
    CHECK(n == 3, "3 items, got %d", n);
    CHECK(fabs(ic[0] - 100.0 / 101.0) < 1e-12 && fabs(ifg[0] - 100.0 / 101.0) < 1e-12, "cell 0: %g %g", ic[0],
          ifg[0]);
    CHECK(fabs(ic[1] - 0.5) < 1e-12 && fabs(ifg[1] - 0.5) < 1e-12, "cell 1: %g %g", ic[1], ifg[1]);
    CHECK(ic[2] == -1.0 && ifg[2] == -1.0, "cell 2 is empty: %g %g", ic[2], ifg[2]);
    CHECK(ic[3] == 0.0 && ifg[3] == 1.0, "cell 3, wrong class: %g %g", ic[3], ifg[3]);
    CHECK(attn_mask_scene_iou(lg, 1, &sc, m, ic, ifg) == -1 && attn_mask_scene_iou(NULL, K1, &sc, m, ic, ifg) == -1,
          "arguments checked");
    free(lg);
    TEST_END();
}

#define TB 2
#define TS 8 /* an 8x8 input: features 2x2 */

/* Image b: a bright 4x4 quadrant (top left, then bottom right) with a
 * little texture, on a dark ground; targets: the quadrant is class 1 + 3 b
 * (coarse enough for the network's 2x2 features to learn). */
static void fill_batch(float *img, int32_t *tg) {
    for (int i = 0; i < TB * TS * TS; i++) {
        const int b = i / (TS * TS), r = i / TS % TS, c = i % TS;
        const int on = b == 0 ? (r < 4 && c < 4) : (r >= 4 && c >= 4);
        img[i] = (on ? 0.8f : 0.1f) + (float)((i * 37) % 11) / 100.0f;
        tg[i] = on ? 1 + 3 * b : 0;
    }
}

static double loss_of(attn_ctx *ctx, const attn_mask_head *m, const float *img, const int32_t *tg) {
    attn_ctx_reset(ctx);
    attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){TB, 1, TS, TS}, img);
    attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 3, (int64_t[]){TB, TS, TS}, tg);
    attn_tensor *l = attn_mask_head_loss(ctx, m, x, t, NULL, NULL);
    return l ? (double)attn_f32(l)[0] : NAN;
}

static void test_network(void) {
    TEST_BEGIN("vision_masks/the mask network: shapes, gradients, finite differences, learning, save/load");
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    attn_rng rng;
    attn_rng_init(&rng, 11);
    float img[TB * TS * TS];
    int32_t tg[TB * TS * TS];
    fill_batch(img, tg);
    for (int sag = 0; sag < 2 && ctx; sag++) {
        attn_mask_head_config cfg = {.width = 4, .sag = sag};
        attn_params *ps = NULL;
        attn_mask_head *m = NULL;
        CHECK_OK(attn_params_new(&ps));
        CHECK_OK(attn_mask_head_new(&m, ps, &cfg, &rng));
        if (!m) {
            attn_params_free(ps);
            continue;
        }
        CHECK(attn_params_numel(ps) == attn_mask_head_numel(&cfg), "sag %d: %lld values, numel %lld", sag,
              (long long)attn_params_numel(ps), (long long)attn_mask_head_numel(&cfg));
        attn_ctx_reset(ctx);
        attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){TB, 1, TS, TS}, img);
        attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 3, (int64_t[]){TB, TS, TS}, tg);
        attn_tensor *lg = NULL, *sm = NULL;
        attn_tensor *loss = attn_mask_head_loss(ctx, m, x, t, &lg, &sm);
        CHECK(loss && lg && lg->ndim == 4 && lg->shape[0] == TB && lg->shape[1] == 11 && lg->shape[2] == TS &&
                  lg->shape[3] == TS,
              "sag %d: logits [2, 11, 8, 8] expected (%s)", sag, attn_ctx_error(ctx));
        if (sag)
            CHECK(sm && sm->ndim == 4 && sm->shape[1] == 1 && sm->shape[2] == TS / 4 && sm->shape[3] == TS / 4,
                  "the SAG map is [2, 1, 2, 2]");
        else
            CHECK(sm == NULL, "no SAG map without sag");
        const double l0 = loss ? (double)attn_f32(loss)[0] : NAN;
        CHECK(isfinite(l0) && fabs(l0 - log(11.0)) < 1.5, "sag %d: initial loss %g, about log 11 = %g expected", sag,
              l0, log(11.0));
        attn_params_zero_grad(ps);
        if (loss) CHECK_OK(attn_backward(ctx, loss));
        int missing = 0;
        for (int i = 0; i < attn_params_count(ps); i++) {
            attn_tensor *p = attn_params_at(ps, i);
            if (!p->requires_grad) continue;
            int any = 0;
            for (int64_t e = 0; p->grad && e < attn_tensor_numel(p); e++) any |= p->grad[e] != 0.0f;
            if (!any) {
                missing++;
                CHECK(0, "sag %d: %s received no gradient", sag, p->name);
            }
        }
        CHECK(missing == 0, "sag %d: every trainable parameter has a gradient", sag);
        /* finite differences of a few elements (the store's values) */
        const char *probe[3] = {"out.bias", "sag.conv.weight", "head.1.conv.weight"};
        for (int q = 0; q < 3; q++) {
            attn_tensor *p = attn_params_find(ps, probe[q]);
            if (!p) {
                CHECK(q == 1 && !sag, "%s missing", probe[q]);
                continue;
            }
            const int64_t n = attn_tensor_numel(p);
            for (int64_t e = 0; e < n && e < 3; e++) {
                const double g = p->grad ? (double)p->grad[e] : NAN;
                float *v = attn_f32(p) + e;
                const float keep = *v;
                const float h = 1e-3f;
                *v = keep + h;
                const double lp = loss_of(ctx, m, img, tg);
                *v = keep - h;
                const double lm = loss_of(ctx, m, img, tg);
                *v = keep;
                const double fd = (lp - lm) / (2.0 * (double)h);
                CHECK(fabs(fd - g) <= 2e-3 + 5e-2 * fabs(fd), "sag %d: %s[%lld]: finite difference %.6g, backward %.6g",
                      sag, probe[q], (long long)e, fd, g);
            }
        }
        /* learning: 40 AdamW steps on the batch lower the loss */
        attn_optim *opt = NULL;
        attn_optim_config oc = {.kind = ATTN_OPTIM_ADAMW, .lr = 1e-2f};
        CHECK_OK(attn_optim_new(&opt, ps, &oc));
        double last = l0;
        for (int s = 0; opt && s < 40; s++) {
            attn_ctx_reset(ctx);
            attn_tensor *x2 = attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){TB, 1, TS, TS}, img);
            attn_tensor *t2 = attn_tensor_from(ctx, ATTN_I32, 3, (int64_t[]){TB, TS, TS}, tg);
            attn_tensor *l = attn_mask_head_loss(ctx, m, x2, t2, NULL, NULL);
            if (!l) break;
            last = (double)attn_f32(l)[0];
            attn_params_zero_grad(ps);
            if (attn_backward(ctx, l) != ATTN_OK || attn_optim_step(opt, 1e-2f) != ATTN_OK) break;
        }
        CHECK(last < 0.6 * l0, "sag %d: loss %g after 40 steps, from %g", sag, last, l0);
        attn_optim_free(opt);
        /* save and load: the same logits in evaluation mode */
        char path[64];
        snprintf(path, sizeof path, "/tmp/attn_vision_masks_%d.safetensors", (int)getpid());
        attn_kv kv[ATTN_MASK_HEAD_META];
        char buf[ATTN_MASK_HEAD_META * 32];
        attn_mask_head_config_meta(&m->cfg, kv, buf);
        CHECK_OK(attn_checkpoint_save(path, ps, NULL, 30, kv, ATTN_MASK_HEAD_META));
        attn_params *ps2 = NULL;
        attn_mask_head *m2 = NULL;
        CHECK_OK(attn_params_new(&ps2));
        CHECK_OK(attn_mask_head_load(path, ps2, &m2));
        unlink(path);
        if (m2) {
            CHECK(m2->cfg.sag == sag && m2->cfg.width == 4, "configuration read back");
            attn_ctx_set_training(ctx, 0);
            attn_ctx_reset(ctx);
            attn_tensor *xa = attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){TB, 1, TS, TS}, img);
            attn_tensor *a = attn_mask_head_forward(ctx, m, xa, NULL);
            attn_tensor *b = attn_mask_head_forward(ctx, m2, xa, NULL);
            if (a && b) test_allclose("loaded logits", attn_f32(b), attn_f32(a), attn_tensor_numel(a), 0.0f, 0.0f);
            else CHECK(0, "forward after load: %s", attn_ctx_error(ctx));
            attn_ctx_set_training(ctx, 1);
        }
        attn_mask_head_free(m2);
        attn_params_free(ps2);
        attn_mask_head_free(m);
        attn_params_free(ps);
    }
    if (ctx) attn_ctx_free(ctx);
    TEST_END();
}

static void test_errors(void) {
    TEST_BEGIN("vision_masks/errors");
    attn_params *ps = NULL;
    attn_mask_head *m = NULL;
    CHECK_OK(attn_params_new(&ps));
    attn_mask_head_config bad = {.width = 5};
    CHECK(attn_mask_head_new(&m, ps, &bad, NULL) == ATTN_ERR_INVALID_ARG && !m &&
              strstr(attn_last_error(), "width 5"),
          "odd width refused: %s", attn_last_error());
    bad.width = 4;
    bad.sag = 2;
    CHECK(attn_mask_head_new(&m, ps, &bad, NULL) == ATTN_ERR_INVALID_ARG && attn_mask_head_numel(&bad) == -1,
          "sag 2 refused");
    attn_params_free(ps);
    ps = NULL;
    CHECK_OK(attn_params_new(&ps));
    attn_mask_head_config cfg = {.width = 4, .sag = 1};
    CHECK_OK(attn_mask_head_new(&m, ps, &cfg, NULL));
    attn_ctx *ctx = test_ctx_new((size_t)8 << 20, 1, 0);
    if (ctx && m) {
        float img[2 * 6 * 6] = {0};
        attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){2, 1, 6, 6}, img);
        test_expect_fail(ctx, attn_mask_head_forward(ctx, m, x, NULL) == NULL, ATTN_ERR_SHAPE, "multiples of 4",
                         "6x6 input");
        float img8[2 * 64] = {0};
        int32_t tg[2 * 64] = {0};
        attn_tensor *x8 = attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){2, 1, 8, 8}, img8);
        attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 3, (int64_t[]){2, 8, 4}, tg);
        test_expect_fail(ctx, attn_mask_head_loss(ctx, m, x8, t, NULL, NULL) == NULL, ATTN_ERR_SHAPE, "targets",
                         "targets of another shape");
        x8 = attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){2, 1, 8, 8}, img8);
        tg[5] = 11; /* K + 1 = 11 classes: 11 is out of range */
        t = attn_tensor_from(ctx, ATTN_I32, 3, (int64_t[]){2, 8, 8}, tg);
        test_expect_fail(ctx, attn_mask_head_loss(ctx, m, x8, t, NULL, NULL) == NULL, ATTN_ERR_INVALID_ARG, "",
                         "a target class out of range");
    }
    attn_ctx_free(ctx);
    attn_mask_head_free(m);
    attn_params_free(ps);
    TEST_END();
}

void suite_vision_masks(void) {
    test_masks();
    test_iou();
    test_network();
    test_errors();
}
