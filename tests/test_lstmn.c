/* test_lstmn.c: the LSTMN layer (include/attn/lstmn.h, graph op LSTMN) and
 * its language model (include/attn/lstmn_lm.h). The op suite (test_ops.c)
 * also runs the op's fixtures through its generic oracles; here:
 *   - fixture parity: every case of tests/fixtures/lstmn.atfx (the PyTorch
 *     step loop of tools/make_lstmn_fixtures.py), output and every input
 *     gradient, with the fast and with the reference kernels;
 *   - fast vs reference on a ragged case (B 3, T 33, H 17, A 9, lengths
 *     33 20 1), output and gradients;
 *   - central finite differences (in double) of that case, every input;
 *   - identities an independent piece of code checks: T = 1 is exactly
 *     torch's LSTMCell without recurrent bias (attn_lstm_cell) on h0, c0;
 *     w_sum = 0 equals no h~ term; a row of length L equals the same row run
 *     alone with T = L (rows and padded steps do not leak);
 *   - error paths of the model; the LM learns a periodic sequence (LSTMN
 *     and LSTM), and its parameter count formula matches the store.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "fixture.h"
#include "test.h"

#define ARENA ((size_t)64 << 20)
#define N_IN 9 /* gx ax h0 c0 w_hh w_mem v w_sum lengths */

static const char *const in_names[N_IN] = {"gx", "ax", "h0", "c0", "w_hh", "w_mem", "v", "w_sum",
                                           "lengths"};

/* One problem: inputs as flat arrays (NULL: absent), shapes from B T H A. */
typedef struct prob {
    int64_t B, T, H, A;
    float *x[N_IN - 1]; /* float inputs */
    int32_t *len;
    int64_t numel[N_IN - 1];
} prob;

static void prob_shapes(const prob *p, int i, int *nd, int64_t *sh) {
    const int64_t B = p->B, T = p->T, H = p->H, A = p->A;
    switch (i) {
    case 0: *nd = 3, sh[0] = B, sh[1] = T, sh[2] = 4 * H; break;
    case 1: *nd = 3, sh[0] = B, sh[1] = T, sh[2] = A; break;
    case 2: case 3: *nd = 2, sh[0] = B, sh[1] = H; break;
    case 4: *nd = 2, sh[0] = 4 * H, sh[1] = H; break;
    case 5: case 7: *nd = 2, sh[0] = A, sh[1] = H; break;
    default: *nd = 1, sh[0] = A; break;
    }
}

/* Runs the op; out (B T H floats) and, when g_out is given, the gradient of
 * sum(out * g_out) into grads[i] (numel[i] floats) for every present input.
 * Returns 0, or -1 (check failed). */
static int run(attn_ctx *ctx, const prob *p, int use_ref, float *out, const float *g_out,
               float **grads) {
    attn_ctx_reset(ctx);
    attn_ctx_set_use_ref(ctx, use_ref);
    attn_tensor *t[N_IN] = {0};
    for (int i = 0; i < N_IN - 1; i++) {
        if (!p->x[i]) continue;
        int nd;
        int64_t sh[3];
        prob_shapes(p, i, &nd, sh);
        t[i] = test_leaf(ctx, nd, sh, p->x[i]);
    }
    if (p->len) t[8] = attn_tensor_from(ctx, ATTN_I32, 1, &p->B, p->len);
    attn_tensor *y = attn_lstmn(ctx, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8]);
    attn_ctx_set_use_ref(ctx, 0);
    if (!y) {
        CHECK(0, "attn_lstmn: %s", attn_ctx_error(ctx));
        return -1;
    }
    memcpy(out, attn_f32(y), sizeof(float) * (size_t)(p->B * p->T * p->H));
    if (!g_out) return 0;
    if (attn_backward_from(ctx, y, g_out) != ATTN_OK) {
        CHECK(0, "attn_backward_from: %s", attn_ctx_error(ctx));
        return -1;
    }
    for (int i = 0; i < N_IN - 1; i++)
        if (t[i] && grads[i]) {
            if (t[i]->grad)
                memcpy(grads[i], t[i]->grad, sizeof(float) * (size_t)p->numel[i]);
            else
                memset(grads[i], 0, sizeof(float) * (size_t)p->numel[i]);
        }
    return 0;
}

static void prob_alloc(prob *p, uint64_t seed, int h0, int w_sum, const int32_t *lens) {
    attn_rng rng;
    attn_rng_init(&rng, seed);
    const float scale[N_IN - 1] = {1.0f, 0.5f, 0.5f, 0.5f, 0.3f, 0.3f, 1.0f, 0.3f};
    for (int i = 0; i < N_IN - 1; i++) {
        int nd;
        int64_t sh[3], n = 1;
        prob_shapes(p, i, &nd, sh);
        for (int d = 0; d < nd; d++) n *= sh[d];
        p->numel[i] = n;
        p->x[i] = NULL;
        if ((i == 2 || i == 3) && !h0) continue;
        if (i == 7 && !w_sum) continue;
        p->x[i] = malloc(sizeof(float) * (size_t)n);
        test_fill_normal(p->x[i], n, &rng);
        for (int64_t j = 0; j < n; j++) p->x[i][j] *= scale[i];
    }
    p->len = NULL;
    if (lens) {
        p->len = malloc(sizeof(int32_t) * (size_t)p->B);
        memcpy(p->len, lens, sizeof(int32_t) * (size_t)p->B);
    }
}

static void prob_free(prob *p) {
    for (int i = 0; i < N_IN - 1; i++) free(p->x[i]);
    free(p->len);
}

/* ---- fixture parity ------------------------------------------------------------------ */

static void test_fixtures(attn_ctx *ctx) {
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/lstmn.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    TEST_BEGIN("lstmn/fixtures load");
    CHECK(atfx_load(path, &fx, err, sizeof err) == ATTN_OK, "%s: %s", path, err);
    TEST_END();
    if (!fx) return;
    const atfx_tensor *nc = atfx_find(fx, "n_cases");
    const int n_cases = nc ? atfx_i32(nc)[0] : 0;
    for (int k = 0; k < n_cases; k++) {
        for (int ref = 0; ref < 2; ref++) {
            char name[160];
            snprintf(name, sizeof name, "lstmn/fixture case %d vs PyTorch step loop (%s)", k,
                     ref ? "reference" : "fast");
            TEST_BEGIN(name);
            prob p;
            memset(&p, 0, sizeof p);
            const atfx_tensor *gx = atfx_findf(fx, "c%d.gx", k), *ax = atfx_findf(fx, "c%d.ax", k);
            const atfx_tensor *vw = atfx_findf(fx, "c%d.view.gx", k);
            CHECK(gx && ax, "case %d lacks gx or ax", k);
            if (!gx || !ax) {
                TEST_END();
                continue;
            }
            /* the op's logical gx [B, T, 4H]; a stored view is [T, B, 4H] permuted (1, 0, 2) */
            p.B = vw ? gx->shape[1] : gx->shape[0];
            p.T = vw ? gx->shape[0] : gx->shape[1];
            p.H = gx->shape[2] / 4;
            p.A = ax->shape[2];
            float *gxl = NULL;
            for (int i = 0; i < N_IN - 1; i++) {
                const atfx_tensor *t = atfx_findf(fx, "c%d.%s", k, in_names[i]);
                int nd;
                int64_t sh[3], n = 1;
                prob_shapes(&p, i, &nd, sh);
                for (int d = 0; d < nd; d++) n *= sh[d];
                p.numel[i] = n;
                p.x[i] = t ? (float *)atfx_f32(t) : NULL;
            }
            if (vw) { /* un-permute the stored [T, B, G] into [B, T, G] */
                const int64_t G = 4 * p.H;
                gxl = malloc(sizeof(float) * (size_t)(p.B * p.T * G));
                for (int64_t b = 0; b < p.B; b++)
                    for (int64_t t = 0; t < p.T; t++)
                        memcpy(gxl + (b * p.T + t) * G, atfx_f32(gx) + (t * p.B + b) * G,
                               sizeof(float) * (size_t)G);
                p.x[0] = gxl;
            }
            const atfx_tensor *lt = atfx_findf(fx, "c%d.lengths", k);
            p.len = lt ? (int32_t *)atfx_i32(lt) : NULL;
            const atfx_tensor *want = atfx_findf(fx, "c%d.out", k),
                              *gout = atfx_findf(fx, "c%d.grad_out", k);
            float *out = malloc(sizeof(float) * (size_t)(p.B * p.T * p.H));
            float *grads[N_IN - 1] = {0};
            for (int i = 0; i < N_IN - 1; i++)
                if (p.x[i]) grads[i] = malloc(sizeof(float) * (size_t)p.numel[i]);
            if (want && gout && run(ctx, &p, ref, out, atfx_f32(gout), grads) == 0) {
                test_allclose("out", out, atfx_f32(want), p.B * p.T * p.H, 2e-5f, 1e-4f);
                for (int i = 0; i < N_IN - 1; i++) {
                    if (!p.x[i]) continue;
                    const atfx_tensor *gw = atfx_findf(fx, "c%d.grad.%s", k, in_names[i]);
                    CHECK(gw != NULL, "case %d: no grad.%s", k, in_names[i]);
                    if (!gw) continue;
                    if (i == 0 && vw) { /* the fixture's gradient is in storage order [T, B, G] */
                        const int64_t G = 4 * p.H;
                        float *gl = malloc(sizeof(float) * (size_t)p.numel[0]);
                        for (int64_t b = 0; b < p.B; b++)
                            for (int64_t t = 0; t < p.T; t++)
                                memcpy(gl + (b * p.T + t) * G, atfx_f32(gw) + (t * p.B + b) * G,
                                       sizeof(float) * (size_t)G);
                        test_allclose("grad gx", grads[0], gl, p.numel[0], 2e-5f, 1e-4f);
                        free(gl);
                    } else {
                        test_allclose(in_names[i], grads[i], atfx_f32(gw), p.numel[i], 2e-5f, 1e-4f);
                    }
                }
            }
            for (int i = 0; i < N_IN - 1; i++) free(grads[i]);
            free(out);
            free(gxl);
            TEST_END();
        }
    }
    atfx_free(fx);
}

/* ---- fast vs reference, finite differences ------------------------------------------------ */

static void test_ragged(attn_ctx *ctx) {
    prob p = {3, 33, 17, 9, {0}, NULL, {0}};
    const int32_t lens[3] = {33, 20, 1};
    prob_alloc(&p, 7, 1, 1, lens);
    const int64_t no = p.B * p.T * p.H;
    float *g = malloc(sizeof(float) * (size_t)no), *o1 = malloc(sizeof(float) * (size_t)no),
          *o2 = malloc(sizeof(float) * (size_t)no);
    attn_rng rng;
    attn_rng_init(&rng, 99);
    test_fill_normal(g, no, &rng);
    float *g1[N_IN - 1], *g2[N_IN - 1];
    for (int i = 0; i < N_IN - 1; i++) {
        g1[i] = malloc(sizeof(float) * (size_t)p.numel[i]);
        g2[i] = malloc(sizeof(float) * (size_t)p.numel[i]);
    }
    TEST_BEGIN("lstmn/fast vs reference (B 3, T 33, H 17, A 9, lengths 33 20 1)");
    if (run(ctx, &p, 0, o1, g, g1) == 0 && run(ctx, &p, 1, o2, g, g2) == 0) {
        test_allclose("out", o1, o2, no, 2e-5f, 1e-4f);
        for (int i = 0; i < N_IN - 1; i++) test_allclose(in_names[i], g1[i], g2[i], p.numel[i], 1e-4f, 1e-3f);
        /* padded steps are zero */
        int zero = 1;
        for (int64_t t = 1; t < p.T; t++)
            for (int64_t j = 0; j < p.H; j++) zero &= o1[(2 * p.T + t) * p.H + j] == 0.0f;
        CHECK(zero, "row 2 (length 1) has nonzero outputs after step 0");
    }
    TEST_END();

    /* 2 threads: the rows split over threads; bitwise the same (the products are
     * below the size where attn__sgemm is threaded; dv is summed in row order) */
    TEST_BEGIN("lstmn/1 vs 2 threads bitwise (ragged case)");
    {
        attn_ctx *c2 = test_ctx_new(ARENA, 2, 0);
        if (c2 && run(c2, &p, 0, o2, g, g2) == 0) {
            test_allclose("out", o2, o1, no, 0.0f, 0.0f);
            for (int i = 0; i < N_IN - 1; i++) test_allclose(in_names[i], g2[i], g1[i], p.numel[i], 0.0f, 0.0f);
        }
        attn_ctx_free(c2);
    }
    TEST_END();

    /* central differences of L = sum(out * g) in double, 12 elements per input */
    TEST_BEGIN("lstmn/finite differences (every input, ragged case)");
    const float eps = 1e-2f;
    for (int i = 0; i < N_IN - 1; i++) {
        double worst = 0.0;
        int64_t at = -1;
        for (int s = 0; s < 12; s++) {
            const int64_t j = (int64_t)(attn_rng_next_below(&rng, (uint32_t)p.numel[i]));
            const float x0 = p.x[i][j];
            double lp = 0, lm = 0;
            p.x[i][j] = x0 + eps;
            run(ctx, &p, 1, o2, NULL, NULL);
            for (int64_t q = 0; q < no; q++) lp += (double)o2[q] * g[q];
            p.x[i][j] = x0 - eps;
            run(ctx, &p, 1, o2, NULL, NULL);
            for (int64_t q = 0; q < no; q++) lm += (double)o2[q] * g[q];
            p.x[i][j] = x0;
            const double fd = (lp - lm) / (2.0 * eps), an = g1[i][j];
            const double ex = fabs(fd - an) - (2e-3 + 1e-2 * fabs(fd));
            if (ex > worst) worst = ex, at = j;
        }
        CHECK(worst <= 0.0, "input %s: element %lld: analytic gradient off finite differences by %g over "
              "the tolerance (2e-3 + 1e-2 |fd|)", in_names[i], (long long)at, worst);
    }
    TEST_END();
    for (int i = 0; i < N_IN - 1; i++) free(g1[i]), free(g2[i]);
    free(g), free(o1), free(o2);
    prob_free(&p);
}

/* ---- identities ------------------------------------------------------------------------ */

static void test_identities(attn_ctx *ctx) {
    /* T = 1: the tape is (h0, c0) alone, s = 1, h~ = h0, c~ = c0: an LSTMCell */
    TEST_BEGIN("lstmn/T 1 equals attn_lstm_cell on (h0, c0) (no recurrent bias)");
    {
        prob p = {4, 1, 6, 3, {0}, NULL, {0}};
        prob_alloc(&p, 11, 1, 1, NULL);
        float out[24], want[24];
        if (run(ctx, &p, 0, out, NULL, NULL) == 0) {
            attn_ctx_reset(ctx);
            attn_tensor *gx = attn_tensor_from(ctx, ATTN_F32, 2, (int64_t[]){4, 24}, p.x[0]);
            attn_tensor *h = attn_tensor_from(ctx, ATTN_F32, 2, (int64_t[]){4, 6}, p.x[2]);
            attn_tensor *c = attn_tensor_from(ctx, ATTN_F32, 2, (int64_t[]){4, 6}, p.x[3]);
            attn_tensor *w = attn_tensor_from(ctx, ATTN_F32, 2, (int64_t[]){24, 6}, p.x[4]);
            attn_tensor *y = attn_lstm_cell(ctx, gx, h, c, w, NULL, NULL, NULL);
            CHECK(y != NULL, "attn_lstm_cell: %s", attn_ctx_error(ctx));
            if (y) {
                memcpy(want, attn_f32(y), sizeof want);
                test_allclose("h1", out, want, 24, 1e-6f, 1e-5f);
            }
        }
        prob_free(&p);
    }
    TEST_END();

    TEST_BEGIN("lstmn/w_sum = 0 equals no h~ term; rows do not leak (row alone, T = its length)");
    {
        prob p = {3, 9, 5, 4, {0}, NULL, {0}};
        const int32_t lens[3] = {9, 5, 7};
        prob_alloc(&p, 13, 1, 1, lens);
        const int64_t no = p.B * p.T * p.H;
        float *a = malloc(sizeof(float) * (size_t)no), *b = malloc(sizeof(float) * (size_t)no);
        float *ws = p.x[7];
        float *zero = calloc((size_t)p.numel[7], sizeof(float));
        p.x[7] = zero;
        run(ctx, &p, 0, a, NULL, NULL);
        p.x[7] = NULL;
        run(ctx, &p, 0, b, NULL, NULL);
        test_allclose("w_sum 0 vs none", a, b, no, 0.0f, 0.0f);
        p.x[7] = ws;
        free(zero);
        run(ctx, &p, 0, a, NULL, NULL);
        /* row 1 alone with T = 5 */
        prob q = {1, 5, 5, 4, {0}, NULL, {0}};
        prob_alloc(&q, 1, 1, 1, NULL);
        for (int i = 0; i < N_IN - 1; i++) {
            if (i == 0 || i == 1) {
                const int64_t C = i == 0 ? 4 * p.H : p.A;
                for (int64_t t = 0; t < 5; t++)
                    memcpy(q.x[i] + t * C, p.x[i] + (1 * p.T + t) * C, sizeof(float) * (size_t)C);
            } else if (i == 2 || i == 3) {
                memcpy(q.x[i], p.x[i] + p.H, sizeof(float) * (size_t)p.H);
            } else {
                memcpy(q.x[i], p.x[i], sizeof(float) * (size_t)p.numel[i]);
            }
        }
        float alone[25];
        if (run(ctx, &q, 0, alone, NULL, NULL) == 0)
            test_allclose("row 1 alone", alone, a + 1 * p.T * p.H, 25, 1e-6f, 1e-5f);
        prob_free(&q);
        free(a), free(b);
        prob_free(&p);
    }
    TEST_END();
}

/* ---- the language model ---------------------------------------------------------------- */

static double lm_train(attn_lstmn_lm_cell cell, int steps, int64_t *nparams, double *first) {
    attn_params *ps = NULL;
    attn_lstmn_lm *m = NULL;
    attn_optim *opt = NULL;
    attn_ctx *ctx = test_ctx_new(ARENA, 1, 0);
    attn_lstmn_lm_config c = {cell, 7, 8, 16, 8, 1, 0.0f};
    attn_rng rng;
    attn_rng_init(&rng, 5);
    double last = NAN;
    if (!ctx || attn_params_new(&ps) != ATTN_OK || attn_lstmn_lm_new(&m, ps, &c, &rng) != ATTN_OK) {
        CHECK(0, "model: %s", attn_last_error());
        goto done;
    }
    *nparams = attn_params_numel(ps);
    CHECK(attn_lstmn_lm_param_count(&c) == *nparams, "param_count %lld, store %lld",
          (long long)attn_lstmn_lm_param_count(&c), (long long)*nparams);
    attn_optim_config oc = {0};
    oc.kind = ATTN_OPTIM_ADAM;
    oc.lr = 0.02f;
    oc.beta1 = 0.9f;
    oc.beta2 = 0.999f;
    CHECK_OK(attn_optim_new(&opt, ps, &oc));
    if (!opt) goto done;
    /* a sequence of period 6 over 7 symbols with a repeated symbol (3 follows
     * both 1 and 5), so the next symbol needs more than the current one */
    const int32_t pat[6] = {0, 1, 3, 4, 5, 3};
    int32_t in[4 * 12], tg[4 * 12];
    for (int s = 0; s < steps; s++) {
        for (int b = 0; b < 4; b++)
            for (int t = 0; t < 12; t++) {
                in[b * 12 + t] = pat[(s + b + t) % 6];
                tg[b * 12 + t] = pat[(s + b + t + 1) % 6];
            }
        attn_ctx_reset(ctx);
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){4, 12}, in);
        attn_tensor *tt = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){4, 12}, tg);
        attn_tensor *loss = attn_lstmn_lm_loss(ctx, m, ti, tt);
        if (!loss) {
            CHECK(0, "loss: %s", attn_ctx_error(ctx));
            goto done;
        }
        last = attn_f32(loss)[0];
        if (s == 0) *first = last;
        attn_params_zero_grad(ps);
        if (attn_backward(ctx, loss) != ATTN_OK || attn_optim_step(opt, 0.02f) != ATTN_OK) {
            CHECK(0, "step: %s", attn_last_error());
            goto done;
        }
    }
done:
    attn_optim_free(opt);
    attn_lstmn_lm_free(m);
    attn_params_free(ps);
    attn_ctx_free(ctx);
    return last;
}

static void test_lm(void) {
    for (int k = 0; k < 2; k++) {
        const attn_lstmn_lm_cell cell = k ? ATTN_LM_CELL_LSTM : ATTN_LM_CELL_LSTMN;
        TEST_BEGIN(k ? "lstmn/LM (LSTM) learns a periodic sequence"
                     : "lstmn/LM (LSTMN) learns a periodic sequence");
        int64_t np = 0;
        double first = NAN;
        const double last = lm_train(cell, 150, &np, &first);
        /* chance is log 7 = 1.95 nats; the first symbol of a window with a
         * 3 is ambiguous, the rest determined: well below 0.3 when learned */
        CHECK(first > 1.5 && last < 0.3, "loss %.4f -> %.4f after 150 steps (expected < 0.3)", first,
              last);
        TEST_END();
    }
    TEST_BEGIN("lstmn/LM configuration errors");
    attn_params *ps = NULL;
    attn_lstmn_lm *m = NULL;
    CHECK_OK(attn_params_new(&ps));
    attn_lstmn_lm_config c = {ATTN_LM_CELL_LSTMN, 1, 8, 16, 8, 1, 0.0f};
    CHECK(attn_lstmn_lm_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG && !m &&
              strstr(attn_last_error(), "vocab 1"),
          "vocab 1 accepted or not named: %s", attn_last_error());
    c.vocab = 10, c.attn = 0;
    CHECK(attn_lstmn_lm_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG, "attn 0 accepted");
    c.attn = 8, c.dropout = 1.0f;
    CHECK(attn_lstmn_lm_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "dropout"),
          "dropout 1 accepted: %s", attn_last_error());
    CHECK(attn_lstmn_lm_param_count(&c) == -1, "param_count of a bad configuration is not -1");
    attn_params_free(ps);
    TEST_END();
}

/* attn_lstmn_weights: each valid step's weights sum to 1 over slots 0..t,
 * zeros beyond and at padded steps; the errors. */
static void test_weights(attn_ctx *ctx) {
    TEST_BEGIN("lstmn/attention weights on request");
    prob p = {2, 6, 4, 3, {0}, NULL, {0}};
    const int32_t lens[2] = {6, 3};
    prob_alloc(&p, 17, 1, 1, lens);
    attn_ctx_reset(ctx);
    attn_tensor *t[N_IN - 1] = {0};
    for (int i = 0; i < N_IN - 1; i++) {
        int nd;
        int64_t sh[3];
        prob_shapes(&p, i, &nd, sh);
        t[i] = test_leaf(ctx, nd, sh, p.x[i]);
    }
    attn_tensor *len = attn_tensor_from(ctx, ATTN_I32, 1, &p.B, p.len);
    attn_tensor *y = attn_lstmn(ctx, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], len);
    float w[2 * 6 * 7];
    CHECK(y && attn_lstmn_weights(ctx, y, w, 2 * 6 * 7) == ATTN_OK, "weights: %s", attn_last_error());
    int ok = 1;
    for (int b = 0; b < 2; b++)
        for (int s = 0; s < 6; s++) {
            double sum = 0.0;
            for (int i = 0; i < 7; i++) {
                const float v = w[(b * 6 + s) * 7 + i];
                if (i > s || s >= lens[b]) ok &= v == 0.0f;
                else ok &= v > 0.0f;
                sum += v;
            }
            ok &= s >= lens[b] ? sum == 0.0 : fabs(sum - 1.0) < 1e-5;
        }
    CHECK(ok, "weights: a valid step's row does not sum to 1 over slots 0..t, or a zero is not zero");
    CHECK(attn_lstmn_weights(ctx, y, w, 10) == ATTN_ERR_SHAPE && strstr(attn_last_error(), "84"),
          "a short buffer: %s", attn_last_error());
    CHECK(attn_lstmn_weights(ctx, t[0], w, 84) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "not an attn_lstmn result"),
          "a tensor that is not an LSTMN output: %s", attn_last_error());
    prob_free(&p);
    TEST_END();
}

void suite_lstmn(void) {
    attn_ctx *ctx = test_ctx_new(ARENA, 1, 64);
    if (!ctx) return;
    test_fixtures(ctx);
    test_ragged(ctx);
    test_identities(ctx);
    test_weights(ctx);
    TEST_BEGIN("lstmn/guard bytes intact");
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s", attn_last_error());
    TEST_END();
    attn_ctx_free(ctx);
    test_lm();
}
