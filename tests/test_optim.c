/* test_optim.c: SGD (momentum, nesterov), Adam and AdamW against 10-step
 * PyTorch trajectories (tests/fixtures/optim_*.atfx, written by
 * tools/make_optim_fixtures.py), gradient clipping against torch and closed
 * forms, the warmup + cosine schedule, and the error paths.
 *
 * Tolerance of the trajectories: |attn - torch| <= 1e-6 + 1e-5 * |torch|.
 * The hyperparameters in the fixtures are float32 values, so the scalar
 * factors (1 - beta, beta^t, lr / bias correction, 1 - lr * wd) are the same
 * doubles on both sides; what differs is float32 rounding order (torch's
 * vectorised kernels fuse multiply-adds), a few ulps per step. With |p| ~ 1
 * and updates ~ lr, 10 steps accumulate at most ~10 * 4 ulp(1) ~ 5e-6, well
 * inside 1e-6 + 1e-5 * |p|; a wrong rule (bias correction, the nesterov
 * term, L2 vs decoupled decay) moves the first step by ~lr * wd or more,
 * i.e. 1e-4 to 1e-2, and fails. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "test.h"

#define TRAJ_ATOL 1e-6f
#define TRAJ_RTOL 1e-5f

static atfx_file *load_fixture(const char *name) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/%s.atfx", test_fixture_dir(), name);
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK)
        CHECK(0, "cannot load fixture %s: %s (regenerate with tools/make_optim_fixtures.py)",
              path, err);
    return fx;
}

/* The tensor `name` of fx with `numel` elements, or NULL (a failed check). */
static const atfx_tensor *need(const atfx_file *fx, const char *name, int64_t numel) {
    const atfx_tensor *t = atfx_find(fx, name);
    CHECK(t != NULL, "fixture lacks tensor '%s'", name);
    if (t && numel >= 0 && (t->dtype != ATTN_F32 || t->numel != numel)) {
        CHECK(0, "fixture tensor '%s' has %lld elements, expected %lld f32", name,
              (long long)t->numel, (long long)numel);
        return NULL;
    }
    return t;
}

static float hp(const atfx_file *fx, const char *name) {
    char full[64];
    snprintf(full, sizeof full, "hp.%s", name);
    const atfx_tensor *t = need(fx, full, 1);
    return t ? atfx_f32(t)[0] : NAN;
}

/* Replays the fixture's 10 steps on a store of p0 [3,5], p1 [7] plus a
 * frozen parameter (requires_grad 0, non-zero gradient) that must not move,
 * comparing every step and the final optimizer state. */
static void check_trajectory(const char *test, const char *file, attn_optim_kind kind) {
    TEST_BEGIN(test);
    atfx_file *fx = load_fixture(file);
    attn_params *ps = NULL;
    attn_optim *opt = NULL;
    if (!fx) goto out;
    CHECK_OK(attn_params_new(&ps));
    if (!ps) goto out;
    const int64_t s0[2] = {3, 5}, s1[1] = {7}, s2[1] = {2};
    attn_tensor *p[3] = {NULL, NULL, NULL};
    CHECK_OK(attn_params_add(ps, "layer.weight", 2, s0, &p[0]));
    CHECK_OK(attn_params_add(ps, "layer.bias", 1, s1, &p[1]));
    CHECK_OK(attn_params_add(ps, "frozen", 1, s2, &p[2]));
    if (!p[0] || !p[1] || !p[2]) goto out;
    p[2]->requires_grad = 0;
    attn_f32(p[2])[0] = 1.0f;
    attn_f32(p[2])[1] = -2.0f;
    p[2]->grad[0] = p[2]->grad[1] = 3.0f;

    int steps = (int)hp(fx, "steps");
    int64_t n[2] = {15, 7};
    const atfx_tensor *init[2], *grad[2], *traj[2], *lrs = need(fx, "hp.lr_steps", steps);
    for (int i = 0; i < 2; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "p%d.init", i);
        init[i] = need(fx, nm, n[i]);
        snprintf(nm, sizeof nm, "p%d.grad", i);
        grad[i] = need(fx, nm, steps * n[i]);
        snprintf(nm, sizeof nm, "p%d.traj", i);
        traj[i] = need(fx, nm, steps * n[i]);
        if (!init[i] || !grad[i] || !traj[i]) goto out;
        memcpy(attn_f32(p[i]), atfx_f32(init[i]), sizeof(float) * (size_t)n[i]);
    }
    if (!lrs) goto out;

    attn_optim_config cfg = {.kind = kind, .lr = hp(fx, "lr"), .weight_decay = hp(fx, "weight_decay")};
    if (kind == ATTN_OPTIM_SGD) {
        cfg.momentum = hp(fx, "momentum");
        cfg.nesterov = hp(fx, "nesterov") != 0.0f;
    } else {
        cfg.beta1 = hp(fx, "beta1");
        cfg.beta2 = hp(fx, "beta2");
        cfg.eps = hp(fx, "eps");
    }
    CHECK_OK(attn_optim_new(&opt, ps, &cfg));
    if (!opt) goto out;
    for (int t = 0; t < steps; t++) {
        for (int i = 0; i < 2; i++)
            memcpy(p[i]->grad, atfx_f32(grad[i]) + t * n[i], sizeof(float) * (size_t)n[i]);
        CHECK_OK(attn_optim_step(opt, atfx_f32(lrs)[t]));
        for (int i = 0; i < 2; i++) {
            char what[64];
            snprintf(what, sizeof what, "%s p%d after step %d", file, i, t + 1);
            if (!test_allclose(what, attn_f32(p[i]), atfx_f32(traj[i]) + t * n[i], n[i],
                               TRAJ_ATOL, TRAJ_RTOL))
                t = steps; /* one failing step is enough detail */
        }
    }
    CHECK(attn_optim_steps(opt) == steps, "steps %lld, expected %d",
          (long long)attn_optim_steps(opt), steps);
    CHECK(attn_f32(p[2])[0] == 1.0f && attn_f32(p[2])[1] == -2.0f,
          "the frozen parameter moved: %g %g", (double)attn_f32(p[2])[0],
          (double)attn_f32(p[2])[1]);

    /* The final state, under PyTorch's names. */
    const char *names[2] = {"momentum_buffer", NULL};
    if (kind != ATTN_OPTIM_SGD) names[0] = "exp_avg", names[1] = "exp_avg_sq";
    for (int i = 0; i < 2; i++) {
        float *buf[2];
        int nb = attn_optim_state(opt, i, &buf[0], &buf[1]);
        CHECK(nb == (kind == ATTN_OPTIM_SGD ? 1 : 2), "attn_optim_state gave %d buffers", nb);
        for (int b = 0; b < nb && b < 2; b++) {
            char nm[64];
            snprintf(nm, sizeof nm, "p%d.%s", i, names[b]);
            const atfx_tensor *ref = need(fx, nm, n[i]);
            if (ref) test_allclose(nm, buf[b], atfx_f32(ref), n[i], TRAJ_ATOL, TRAJ_RTOL);
        }
    }
out:
    attn_optim_free(opt);
    attn_params_free(ps);
    atfx_free(fx);
    TEST_END();
}

/* A store of two parameters with the given gradients. */
static attn_params *two_params(const float *g0, int64_t n0, const float *g1, int64_t n1) {
    attn_params *ps = NULL;
    CHECK_OK(attn_params_new(&ps));
    attn_tensor *a = NULL, *b = NULL;
    if (ps) {
        CHECK_OK(attn_params_add(ps, "a", 1, &n0, &a));
        CHECK_OK(attn_params_add(ps, "b", 1, &n1, &b));
    }
    if (!a || !b) {
        attn_params_free(ps);
        return NULL;
    }
    memcpy(a->grad, g0, sizeof(float) * (size_t)n0);
    memcpy(b->grad, g1, sizeof(float) * (size_t)n1);
    for (int64_t i = 0; i < n0; i++) attn_f32(a)[i] = 0.5f * (float)i - 1.0f;
    for (int64_t i = 0; i < n1; i++) attn_f32(b)[i] = 2.0f - (float)i;
    return ps;
}

static void test_plain_sgd(void) {
    TEST_BEGIN("optim.sgd_plain_closed_form");
    const float g0[3] = {1.0f, -2.0f, 0.5f}, g1[2] = {4.0f, 0.0f};
    attn_params *ps = two_params(g0, 3, g1, 2);
    attn_optim *opt = NULL;
    attn_optim_config cfg = {.kind = ATTN_OPTIM_SGD, .lr = 0.5f, .weight_decay = 0.25f};
    if (ps) CHECK_OK(attn_optim_new(&opt, ps, &cfg));
    if (opt) {
        /* p -= lr * (g + wd * p), momentum 0: no state. Dyadic values:
         * exact in float. */
        CHECK(attn_optim_state(opt, 0, NULL, NULL) == 0, "SGD without momentum has state");
        CHECK_OK(attn_optim_step(opt, cfg.lr));
        const float *a = attn_f32(attn_params_at(ps, 0)), *b = attn_f32(attn_params_at(ps, 1));
        const float ea[3] = {-1.0f - 0.5f * (1.0f + 0.25f * -1.0f),
                             -0.5f - 0.5f * (-2.0f + 0.25f * -0.5f), 0.0f - 0.5f * 0.5f};
        const float eb[2] = {2.0f - 0.5f * (4.0f + 0.25f * 2.0f), 1.0f - 0.5f * 0.25f};
        test_allclose("sgd a", a, ea, 3, 0.0f, 0.0f);
        test_allclose("sgd b", b, eb, 2, 0.0f, 0.0f);
    }
    attn_optim_free(opt);
    attn_params_free(ps);
    TEST_END();
}

static void test_nonfinite(void) {
    TEST_BEGIN("optim.nonfinite_gradient_changes_nothing");
    const float g0[4] = {0.1f, 0.2f, 0.3f, 0.4f}, g1[3] = {1.0f, 2.0f, 3.0f};
    attn_params *ps = two_params(g0, 4, g1, 3);
    attn_optim *opt = NULL;
    attn_optim_config cfg = {.kind = ATTN_OPTIM_ADAMW, .lr = 0.1f, .weight_decay = 0.1f};
    if (ps) CHECK_OK(attn_optim_new(&opt, ps, &cfg));
    if (opt) {
        CHECK_OK(attn_optim_step(opt, cfg.lr)); /* non-zero state to compare */
        attn_tensor *b = attn_params_at(ps, 1);
        float bad[2] = {NAN, INFINITY};
        for (int k = 0; k < 2; k++) {
            float before[7], state[14], *s0, *s1;
            memcpy(before, attn_f32(attn_params_at(ps, 0)), 4 * sizeof(float));
            memcpy(before + 4, attn_f32(b), 3 * sizeof(float));
            attn_optim_state(opt, 1, &s0, &s1);
            memcpy(state, s0, 3 * sizeof(float));
            memcpy(state + 3, s1, 3 * sizeof(float));
            b->grad[2] = bad[k];
            attn_status st = attn_optim_step(opt, cfg.lr);
            CHECK(st == ATTN_ERR_NUMERIC, "step with a %s gradient returned %s",
                  k ? "inf" : "nan", attn_status_str(st));
            CHECK(strstr(attn_last_error(), "'b'") && strstr(attn_last_error(), "element 2"),
                  "message does not name the parameter and element: %s", attn_last_error());
            CHECK(memcmp(before, attn_f32(attn_params_at(ps, 0)), 4 * sizeof(float)) == 0 &&
                      memcmp(before + 4, attn_f32(b), 3 * sizeof(float)) == 0,
                  "a parameter changed");
            CHECK(memcmp(state, s0, 3 * sizeof(float)) == 0 &&
                      memcmp(state + 3, s1, 3 * sizeof(float)) == 0,
                  "the state changed");
            CHECK(attn_optim_steps(opt) == 1, "step count moved to %lld",
                  (long long)attn_optim_steps(opt));
        }
        /* A frozen parameter's gradient is not looked at. */
        b->requires_grad = 0;
        CHECK_OK(attn_optim_step(opt, cfg.lr));
        CHECK(attn_optim_steps(opt) == 2, "steps %lld", (long long)attn_optim_steps(opt));
    }
    attn_optim_free(opt);
    attn_params_free(ps);
    TEST_END();
}

static void test_config_errors(void) {
    TEST_BEGIN("optim.config_errors_and_defaults");
    const float g[2] = {1.0f, 1.0f};
    attn_params *ps = two_params(g, 2, g, 2);
    attn_optim *opt = NULL;
    if (!ps) goto out;
    attn_optim_config bad[] = {
        {.kind = ATTN_OPTIM_SGD, .lr = -0.1f},
        {.kind = ATTN_OPTIM_SGD, .lr = NAN},
        {.kind = ATTN_OPTIM_SGD, .lr = 0.1f, .nesterov = 1},       /* no momentum */
        {.kind = ATTN_OPTIM_SGD, .lr = 0.1f, .momentum = -0.5f},
        {.kind = ATTN_OPTIM_ADAM, .lr = 0.1f, .beta1 = 1.0f, .beta2 = 0.9f},
        {.kind = ATTN_OPTIM_ADAM, .lr = 0.1f, .beta1 = 0.9f, .beta2 = -0.1f},
        {.kind = ATTN_OPTIM_ADAMW, .lr = 0.1f, .eps = -1e-8f},
        {.kind = ATTN_OPTIM_ADAMW, .lr = 0.1f, .weight_decay = -1.0f},
        {.kind = (attn_optim_kind)7, .lr = 0.1f},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        attn_status st = attn_optim_new(&opt, ps, &bad[i]);
        CHECK(st == ATTN_ERR_INVALID_ARG && opt == NULL, "bad config %zu gave %s", i,
              attn_status_str(st));
        CHECK(attn_last_error()[0] != 0, "bad config %zu: no message", i);
        attn_optim_free(opt);
        opt = NULL;
    }
    CHECK(attn_optim_new(NULL, ps, &bad[0]) == ATTN_ERR_INVALID_ARG, "NULL out accepted");
    CHECK(attn_optim_new(&opt, NULL, &bad[0]) == ATTN_ERR_INVALID_ARG, "NULL store accepted");
    CHECK(attn_optim_step(NULL, 0.1f) == ATTN_ERR_INVALID_ARG, "NULL optimizer accepted");

    attn_optim_config c = {.kind = ATTN_OPTIM_ADAM, .lr = 1e-3f};
    CHECK_OK(attn_optim_new(&opt, ps, &c));
    if (opt) {
        const attn_optim_config *r = attn_optim_get_config(opt);
        CHECK(r->beta1 == 0.9f && r->beta2 == 0.999f && r->eps == 1e-8f,
              "defaults: betas (%g, %g), eps %g", (double)r->beta1, (double)r->beta2,
              (double)r->eps);
        CHECK(attn_optim_step(opt, -1.0f) == ATTN_ERR_INVALID_ARG, "negative step lr accepted");
        CHECK(attn_optim_state(opt, 2, NULL, NULL) == 0 && attn_optim_state(opt, -1, NULL, NULL) == 0,
              "state of an invalid index");
        attn_optim_set_steps(opt, 41);
        CHECK(attn_optim_steps(opt) == 41, "set_steps");
        /* The store gains a parameter: the optimizer refuses to step. */
        int64_t one = 1;
        CHECK_OK(attn_params_add(ps, "late", 1, &one, NULL));
        attn_status st = attn_optim_step(opt, 1e-3f);
        CHECK(st == ATTN_ERR_STATE, "step after the store grew gave %s", attn_status_str(st));
        CHECK(attn_optim_steps(opt) == 41, "steps moved on error");
    }
out:
    attn_optim_free(opt);
    attn_params_free(ps);
    TEST_END();
}

static void test_clip_fixture(void) {
    TEST_BEGIN("optim.clip_grad_norm_vs_torch");
    atfx_file *fx = load_fixture("optim_clip");
    const atfx_tensor *nc = fx ? atfx_find(fx, "n_cases") : NULL;
    CHECK(!fx || nc, "optim_clip lacks n_cases");
    for (int k = 0; nc && k < atfx_i32(nc)[0]; k++) {
        const atfx_tensor *g0 = atfx_findf(fx, "c%d.g0", k), *g1 = atfx_findf(fx, "c%d.g1", k);
        const atfx_tensor *mn = atfx_findf(fx, "c%d.max_norm", k), *nr = atfx_findf(fx, "c%d.norm", k);
        const atfx_tensor *o0 = atfx_findf(fx, "c%d.out.g0", k), *o1 = atfx_findf(fx, "c%d.out.g1", k);
        if (!g0 || !g1 || !mn || !nr || !o0 || !o1) {
            CHECK(0, "optim_clip case %d incomplete", k);
            break;
        }
        attn_params *ps = two_params(atfx_f32(g0), g0->numel, atfx_f32(g1), g1->numel);
        if (!ps) break;
        float norm = attn_clip_grad_norm(ps, atfx_f32(mn)[0]);
        /* torch sums per-tensor float norms; we sum squares in double: a
         * few ulps apart. */
        test_allclose("clip norm", &norm, atfx_f32(nr), 1, 0.0f, 1e-6f);
        test_allclose("clipped g0", attn_params_at(ps, 0)->grad, atfx_f32(o0), o0->numel, 1e-7f,
                      1e-6f);
        test_allclose("clipped g1", attn_params_at(ps, 1)->grad, atfx_f32(o1), o1->numel, 1e-7f,
                      1e-6f);
        attn_params_free(ps);
    }
    atfx_free(fx);
    TEST_END();
}

static void test_clip_closed_form(void) {
    TEST_BEGIN("optim.clip_grad_norm_closed_form");
    const float g0[2] = {3.0f, 0.0f}, g1[1] = {4.0f}; /* norm 5 */
    attn_params *ps = two_params(g0, 2, g1, 1);
    if (ps) {
        float norm = attn_clip_grad_norm(ps, 10.0f);
        CHECK(norm == 5.0f, "norm %.9g, expected 5", (double)norm);
        CHECK(attn_params_at(ps, 0)->grad[0] == 3.0f && attn_params_at(ps, 1)->grad[0] == 4.0f,
              "gradients below max_norm were scaled");
        norm = attn_clip_grad_norm(ps, 1.0f);
        float coef = (float)(1.0 / (5.0 + 1e-6));
        CHECK(norm == 5.0f, "norm %.9g, expected 5", (double)norm);
        test_allclose("clipped a", attn_params_at(ps, 0)->grad, (float[]){3.0f * coef, 0.0f}, 2,
                      0.0f, 2e-7f);
        test_allclose("clipped b", attn_params_at(ps, 1)->grad, (float[]){4.0f * coef}, 1, 0.0f,
                      2e-7f);
        /* A frozen parameter takes no part. */
        attn_params_at(ps, 1)->requires_grad = 0;
        attn_params_at(ps, 1)->grad[0] = 1e30f;
        attn_params_at(ps, 0)->grad[0] = 3.0f;
        norm = attn_clip_grad_norm(ps, 100.0f);
        CHECK(norm == 3.0f, "norm with a frozen parameter %.9g, expected 3", (double)norm);
        /* Non-finite: the norm says so and nothing is scaled. */
        attn_params_at(ps, 1)->requires_grad = 1;
        attn_params_at(ps, 1)->grad[0] = INFINITY;
        norm = attn_clip_grad_norm(ps, 1.0f);
        CHECK(isinf(norm) && attn_params_at(ps, 0)->grad[0] == 3.0f,
              "inf gradient: norm %g, a[0] %g", (double)norm,
              (double)attn_params_at(ps, 0)->grad[0]);
        attn_params_at(ps, 1)->grad[0] = NAN;
        norm = attn_clip_grad_norm(ps, 1.0f);
        CHECK(isnan(norm) && attn_params_at(ps, 0)->grad[0] == 3.0f, "nan gradient: norm %g",
              (double)norm);
        CHECK(isnan(attn_clip_grad_norm(ps, -1.0f)), "negative max_norm accepted");
        CHECK(isnan(attn_clip_grad_norm(NULL, 1.0f)), "NULL store accepted");
    }
    attn_params_free(ps);
    TEST_END();
}

static void test_schedule(void) {
    TEST_BEGIN("optim.lr_warmup_cosine_closed_form");
    const double pi = 3.14159265358979323846;
    const float hi = 1e-3f, lo = 1e-5f;
    struct {
        int64_t step, warmup, total;
        double want;
    } c[] = {
        {0, 10, 110, 0.0},
        {5, 10, 110, 0.5 * hi},
        {9, 10, 110, 0.9 * hi},
        {10, 10, 110, hi},                                            /* peak */
        {35, 10, 110, lo + (hi - lo) * 0.5 * (1 + cos(pi * 0.25))},
        {60, 10, 110, 0.5 * ((double)hi + lo)},                       /* half way */
        {109, 10, 110, lo + (hi - lo) * 0.5 * (1 + cos(pi * 0.99))},
        {110, 10, 110, lo},
        {500, 10, 110, lo},
        {-3, 10, 110, 0.0},
        {0, 0, 100, hi},                                              /* no warmup */
        {50, 0, 100, 0.5 * ((double)hi + lo)},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        float got = attn_lr_warmup_cosine(c[i].step, c[i].warmup, c[i].total, hi, lo);
        float want = (float)c[i].want;
        CHECK(fabsf(got - want) <= 1e-7f * hi, "step %lld (warmup %lld, total %lld): %.9g, "
              "expected %.9g", (long long)c[i].step, (long long)c[i].warmup,
              (long long)c[i].total, (double)got, (double)want);
    }
    TEST_END();
}

void suite_optim(void) {
    check_trajectory("optim.sgd_momentum_vs_torch", "optim_sgd", ATTN_OPTIM_SGD);
    check_trajectory("optim.sgd_nesterov_vs_torch", "optim_sgd_nesterov", ATTN_OPTIM_SGD);
    check_trajectory("optim.adam_vs_torch", "optim_adam", ATTN_OPTIM_ADAM);
    check_trajectory("optim.adamw_lr_per_step_vs_torch", "optim_adamw", ATTN_OPTIM_ADAMW);
    test_plain_sgd();
    test_nonfinite();
    test_config_errors();
    test_clip_fixture();
    test_clip_closed_form();
    test_schedule();
}
