/* test_wavenet.c: the causal dilated convolution language model
 * (include/attn/wavenet.h; suite "wavenet").
 *
 *   (a) PyTorch parity (tests/fixtures/wavenet.atfx, written by
 *       tools/make_wavenet_fixtures.py): logits of every position, the loss
 *       of the last N positions and the gradient of every parameter, for
 *       kernel 2 with dilations 1 2 4 and kernel 3 with two blocks of 1 2;
 *       with the fast kernels and with the scalar reference kernels;
 *   (b) finite differences of the loss (central, h 2e-3 and 1e-3, double
 *       accumulation) for three elements of every parameter of a tiny net
 *       (an element whose two quotients disagree sits at a ReLU kink of the
 *       head and is skipped; at most 3 may);
 *   (c) the incremental form: attn_wavenet_step token by token gives the
 *       full forward's logits at every position, past the receptive field
 *       (the queues wrap), and after attn_wavenet_state_reset;
 *   (d) causality: changing input t changes no logit before t, and does
 *       change logits at t .. t + RF - 1 (and none at t + RF or later);
 *   (e) generation: attn_wavenet_generate's step logits are the full
 *       forward's of the generated sequence; greedy is deterministic;
 *   (f) save/load round trip, a file without wavenet.* and a crafted one;
 *   (g) errors: configurations, shapes, ids, states.
 *
 * Tolerances: parity WN_ATOL 2e-5 + WN_RTOL 1e-4 |ref| for logits and loss,
 * gradients 2e-5 + 2e-4 |ref| (the fixture is float64 rounded once; the
 * ops sum in float32 over at most 4 layers of <= 9 channels); incremental
 * vs full: 1e-5 + 1e-5 |ref| (two float32 summation orders of the same
 * products through up to 6 layers; measured at most 5e-7); finite differences:
 * |fd - analytic| <= 2e-3 + 2e-2 |fd|. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "test.h"

#define WN_ATOL 2e-5f
#define WN_RTOL 1e-4f
#define WN_GRAD_ATOL 2e-5f
#define WN_GRAD_RTOL 2e-4f
#define WN_INC_ATOL 1e-5f
#define WN_INC_RTOL 1e-5f
#define SCRIPT "tools/make_wavenet_fixtures.py"

static attn_tensor *ids_tensor(attn_ctx *ctx, int64_t B, int64_t T, const int32_t *ids) {
    return attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T}, ids);
}

static attn_wavenet *tiny_model(attn_params **ps, int64_t V, int K, int per_block, int blocks,
                                uint64_t seed) {
    attn_wavenet_config c = {0};
    c.vocab = V;
    c.res_channels = 5;
    c.gate_channels = 4;
    c.skip_channels = 6;
    c.head_channels = 7;
    c.kernel = K;
    c.layers_per_block = per_block;
    c.n_blocks = blocks;
    attn_rng rng;
    attn_rng_init(&rng, seed);
    attn_wavenet *m = NULL;
    *ps = NULL;
    CHECK_OK(attn_params_new(ps));
    if (*ps) CHECK_OK(attn_wavenet_new(&m, *ps, &c, &rng));
    return m;
}

/* (a) */
static void parity_case(const atfx_file *fx, int k, int use_ref) {
    char tname[128], tag[64];
    const atfx_tensor *ct = test_fx_need(fx, (snprintf(tag, sizeof tag, "c%d.cfg", k), tag),
                                         ATTN_I32, 7, SCRIPT);
    if (!ct) return;
    const int32_t *cv = atfx_i32(ct);
    snprintf(tname, sizeof tname, "wavenet/torch parity: kernel %d, %d x %d layers%s", cv[5],
             cv[6] / 1000, cv[6] % 1000, use_ref ? " [scalar references]" : "");
    snprintf(tag, sizeof tag, "wavenet case %d%s", k, use_ref ? " ref" : "");
    TEST_BEGIN(tname);
    attn_wavenet_config c = {cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6] / 1000, cv[6] % 1000};
    attn_params *ps = NULL;
    attn_wavenet *m = NULL;
    attn_ctx *ctx = NULL;
    CHECK_OK(attn_params_new(&ps));
    if (ps) CHECK_OK(attn_wavenet_new(&m, ps, &c, NULL));
    if (!m || test_load_torch_params(fx, k, ps, 0, tag) < 0) goto out;
    char nm[96];
    const atfx_tensor *it = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.ids", k), nm), ATTN_I32,
                                         -1, SCRIPT);
    const atfx_tensor *tt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.targets", k), nm),
                                         ATTN_I32, -1, SCRIPT);
    if (!it || !tt || it->ndim != 2 || tt->ndim != 2) goto out;
    const int64_t B = it->shape[0], T = it->shape[1], N = tt->shape[1], V = c.vocab;
    ctx = test_ctx_new((size_t)32 << 20, 1, 64);
    if (!ctx) goto out;
    attn_ctx_set_use_ref(ctx, use_ref);
    attn_tensor *logits = attn_wavenet_logits(ctx, m, ids_tensor(ctx, B, T, atfx_i32(it)), T);
    CHECK(logits != NULL, "logits: %s", attn_ctx_error(ctx));
    if (!logits) goto out;
    CHECK(logits->ndim == 3 && logits->shape[0] == B && logits->shape[1] == T &&
              logits->shape[2] == V,
          "logits of %d dims: expected [B, T, V]", logits->ndim);
    snprintf(nm, sizeof nm, "c%d.logits", k);
    test_fx_close(tag, "logits", attn_f32(logits), fx, nm, B * T * V, WN_ATOL, WN_RTOL, SCRIPT);
    attn_ctx_reset(ctx);
    attn_params_zero_grad(ps);
    attn_tensor *loss = attn_wavenet_loss(ctx, m, ids_tensor(ctx, B, T, atfx_i32(it)),
                                          ids_tensor(ctx, B, N, atfx_i32(tt)), -1);
    CHECK(loss != NULL, "loss: %s", attn_ctx_error(ctx));
    if (!loss) goto out;
    snprintf(nm, sizeof nm, "c%d.loss", k);
    test_fx_close(tag, "loss", attn_f32(loss), fx, nm, 1, WN_ATOL, WN_RTOL, SCRIPT);
    CHECK_OK(attn_backward(ctx, loss));
    int n_grads = 0;
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        char what[96];
        snprintf(nm, sizeof nm, "c%d.grad.%s", k, p->name);
        snprintf(what, sizeof what, "grad %s", p->name);
        CHECK(p->grad != NULL, "%s: no gradient", p->name);
        if (!p->grad) continue;
        test_fx_close(tag, what, p->grad, fx, nm, attn_tensor_numel(p), WN_GRAD_ATOL,
                      WN_GRAD_RTOL, SCRIPT);
        n_grads++;
    }
    CHECK(n_grads == attn_params_count(ps) && n_grads > 10, "%d gradients compared", n_grads);
out:
    attn_ctx_free(ctx);
    attn_wavenet_free(m);
    attn_params_free(ps);
    TEST_END();
}

static void test_parity(void) {
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/wavenet.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        TEST_BEGIN("wavenet/torch parity");
        CHECK(0, "%s (regenerate with %s)", err, SCRIPT);
        TEST_END();
        return;
    }
    const atfx_tensor *n = atfx_find(fx, "n_cases");
    const int nc = n ? atfx_i32(n)[0] : 0;
    for (int k = 0; k < nc; k++)
        for (int r = 0; r < 2; r++) parity_case(fx, k, r);
    if (nc < 2) {
        TEST_BEGIN("wavenet/torch parity cases");
        CHECK(0, "%d cases in %s, expected 2", nc, path);
        TEST_END();
    }
    atfx_free(fx);
}

/* (b) */
static double loss_value(attn_ctx *ctx, const attn_wavenet *m, const int32_t *ids,
                         const int32_t *tg, int64_t B, int64_t T, int64_t N) {
    attn_ctx_reset(ctx);
    attn_tensor *l = attn_wavenet_loss(ctx, m, ids_tensor(ctx, B, T, ids), ids_tensor(ctx, B, N, tg), -1);
    return l ? (double)attn_f32(l)[0] : NAN;
}

static void test_finite_differences(void) {
    TEST_BEGIN("wavenet/finite differences of every parameter (tiny net)");
    attn_params *ps = NULL;
    attn_wavenet *m = tiny_model(&ps, 6, 2, 2, 2, 7);
    attn_ctx *ctx = test_ctx_new((size_t)16 << 20, 1, 64);
    if (!m || !ctx) goto out;
    enum { B = 2, T = 9, N = 6 };
    int32_t ids[B * T], tg[B * N];
    for (int i = 0; i < B * T; i++) ids[i] = (i * 5 + 1) % 6;
    for (int i = 0; i < B * N; i++) tg[i] = (i * 7 + 3) % 6;
    attn_params_zero_grad(ps);
    attn_ctx_reset(ctx);
    attn_tensor *loss = attn_wavenet_loss(ctx, m, ids_tensor(ctx, B, T, ids), ids_tensor(ctx, B, N, tg), -1);
    CHECK(loss != NULL, "loss: %s", attn_ctx_error(ctx));
    if (!loss) goto out;
    CHECK_OK(attn_backward(ctx, loss));
    attn_ctx_set_grad_enabled(ctx, 0);
    const float h = 2e-3f;
    int checked = 0, nonzero = 0, kinks = 0;
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        const int64_t n = attn_tensor_numel(p);
        const int64_t picks[3] = {0, n / 2, n - 1};
        for (int j = 0; j < 3; j++) {
            float *v = attn_f32(p) + picks[j];
            const float keep = *v;
            double fdh[2];
            for (int r = 0; r < 2; r++) {
                const float hr = r ? h / 2 : h;
                *v = keep + hr;
                const double lp = loss_value(ctx, m, ids, tg, B, T, N);
                *v = keep - hr;
                const double lm = loss_value(ctx, m, ids, tg, B, T, N);
                fdh[r] = (lp - lm) / (2.0 * hr);
            }
            *v = keep;
            /* a ReLU of the head crossing its kink inside [-h, h] makes the
             * difference quotient depend on h: such elements are skipped
             * (counted below, they must stay rare) */
            if (fabs(fdh[0] - fdh[1]) > 2e-3 + 2e-2 * fabs(fdh[1])) {
                kinks++;
                continue;
            }
            const double fd = fdh[1], an = p->grad[picks[j]];
            const double excess = fabs(fd - an) - (2e-3 + 2e-2 * fabs(fd));
            CHECK(excess <= 0.0, "%s[%lld]: finite difference %.6g, backward %.6g", p->name,
                  (long long)picks[j], fd, an);
            checked++;
            nonzero += fabs(fd) > 1e-4;
        }
    }
    /* not blind: most of the picked elements move the loss */
    CHECK(checked > 40 && nonzero > checked / 2 && kinks <= 3,
          "%d elements checked, %d with a gradient, %d skipped at a ReLU kink", checked, nonzero,
          kinks);
out:
    attn_ctx_free(ctx);
    attn_wavenet_free(m);
    attn_params_free(ps);
    TEST_END();
}

/* (c) */
static void incremental_case(int K, int per_block, int blocks) {
    char name[128];
    snprintf(name, sizeof name, "wavenet/incremental == full forward (kernel %d, %d x %d layers)", K,
             per_block, blocks);
    TEST_BEGIN(name);
    attn_params *ps = NULL;
    attn_wavenet *m = tiny_model(&ps, 9, K, per_block, blocks, 11);
    attn_ctx *ctx = test_ctx_new((size_t)16 << 20, 1, 64);
    attn_wavenet_state s;
    memset(&s, 0, sizeof s);
    enum { T = 80, V = 9 };
    static float inc[T * V];
    if (!m || !ctx) goto out;
    CHECK(attn_wavenet_receptive_field(&m->cfg) < T, "receptive field %lld: the queues never wrap",
          (long long)attn_wavenet_receptive_field(&m->cfg));
    int32_t ids[T];
    for (int t = 0; t < T; t++) ids[t] = (t * t + 3 * t + 1) % V;
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *full = attn_wavenet_logits(ctx, m, ids_tensor(ctx, 1, T, ids), T);
    CHECK(full != NULL, "full: %s", attn_ctx_error(ctx));
    if (!full) goto out;
    CHECK_OK(attn_wavenet_state_init(m, &s));
    for (int round = 0; round < 2; round++) {
        for (int t = 0; t < T; t++) CHECK_OK(attn_wavenet_step(m, &s, ids[t], inc + t * V));
        test_allclose(round ? "incremental logits after reset" : "incremental logits", inc,
                      attn_f32(full), T * V, WN_INC_ATOL, WN_INC_RTOL);
        attn_wavenet_state_reset(&s);
    }
    /* the logits are not trivial: positions differ */
    double spread = 0.0;
    for (int i = 0; i < V; i++) spread = fmax(spread, fabs((double)inc[i] - inc[(T - 1) * V + i]));
    CHECK(spread > 1e-2, "logits of positions 0 and %d alike (%g): the test is blind", T - 1, spread);
out:
    attn_wavenet_state_free(&s);
    attn_ctx_free(ctx);
    attn_wavenet_free(m);
    attn_params_free(ps);
    TEST_END();
}

/* (d) */
static void test_causality(void) {
    TEST_BEGIN("wavenet/causality: a later input never changes an earlier logit");
    attn_params *ps = NULL;
    attn_wavenet *m = tiny_model(&ps, 8, 2, 3, 1, 5); /* receptive field 8 */
    attn_ctx *ctx = test_ctx_new((size_t)16 << 20, 1, 64);
    enum { T = 24, V = 8 };
    if (!m || !ctx) goto out;
    const int64_t RF = attn_wavenet_receptive_field(&m->cfg);
    CHECK(RF == 8, "receptive field %lld, expected 1 + (2 - 1) (1 + 2 + 4) = 8", (long long)RF);
    attn_ctx_set_grad_enabled(ctx, 0);
    int32_t a[T], b[T];
    for (int t = 0; t < T; t++) a[t] = (3 * t + 2) % V;
    attn_tensor *la = attn_wavenet_logits(ctx, m, ids_tensor(ctx, 1, T, a), T);
    if (!la) {
        CHECK(0, "%s", attn_ctx_error(ctx));
        goto out;
    }
    for (int c = 0; c < T; c += 5) {
        memcpy(b, a, sizeof b);
        b[c] = (a[c] + 3) % V;
        attn_tensor *lb = attn_wavenet_logits(ctx, m, ids_tensor(ctx, 1, T, b), T);
        if (!lb) break;
        for (int t = 0; t < T; t++) {
            double d = 0.0;
            for (int v = 0; v < V; v++)
                d = fmax(d, fabs((double)attn_f32(la)[t * V + v] - attn_f32(lb)[t * V + v]));
            if (t < c || t >= c + RF)
                CHECK(d == 0.0, "input %d changed: logits at %d moved by %g (outside %d .. %d)", c, t,
                      d, c, c + (int)RF - 1);
            else
                CHECK(d > 1e-6, "input %d changed: logits at %d (inside the receptive field) did "
                                "not move", c, t);
        }
    }
out:
    attn_ctx_free(ctx);
    attn_wavenet_free(m);
    attn_params_free(ps);
    TEST_END();
}

/* (e) */
static void test_generate(void) {
    TEST_BEGIN("wavenet/generate: step logits are the full forward's; greedy repeats");
    attn_params *ps = NULL;
    attn_wavenet *m = tiny_model(&ps, 10, 2, 3, 1, 9);
    attn_ctx *ctx = test_ctx_new((size_t)16 << 20, 1, 64);
    enum { P = 3, NEW = 20, V = 10 };
    int32_t prompt[P] = {1, 4, 2}, out[NEW], out2[NEW], seq[P + NEW];
    static float rows[NEW * V];
    if (!m || !ctx) goto out;
    attn_sample_opts so = {0.9f, 0, 0.0f, 42, 0};
    int64_t done = 0;
    CHECK_OK(attn_wavenet_generate(m, prompt, P, NEW, &so, out, rows, NULL, NULL, &done));
    CHECK(done == NEW, "%lld tokens generated, expected %d", (long long)done, NEW);
    memcpy(seq, prompt, sizeof prompt);
    memcpy(seq + P, out, sizeof out);
    attn_ctx_set_grad_enabled(ctx, 0);
    /* draw i comes from the logits after seq[0 .. P + i - 1]: full rows P-1 .. */
    attn_tensor *full = attn_wavenet_logits(ctx, m, ids_tensor(ctx, 1, P + NEW - 1, seq), NEW);
    CHECK(full != NULL, "%s", attn_ctx_error(ctx));
    if (full) test_allclose("step logits", rows, attn_f32(full), NEW * V, WN_INC_ATOL, WN_INC_RTOL);
    so.temperature = 0.0f;
    CHECK_OK(attn_wavenet_generate(m, prompt, P, NEW, &so, out, NULL, NULL, NULL, NULL));
    CHECK_OK(attn_wavenet_generate(m, prompt, P, NEW, &so, out2, NULL, NULL, NULL, NULL));
    CHECK(memcmp(out, out2, sizeof out) == 0, "greedy generation differs between two runs");
    CHECK(attn_wavenet_generate(m, prompt, 0, NEW, &so, out, NULL, NULL, NULL, NULL) ==
              ATTN_ERR_INVALID_ARG, "an empty prompt accepted");
    prompt[1] = V;
    CHECK(attn_wavenet_generate(m, prompt, P, NEW, &so, out, NULL, NULL, NULL, NULL) ==
              ATTN_ERR_INVALID_ARG, "a prompt id outside the vocabulary accepted");
out:
    attn_ctx_free(ctx);
    attn_wavenet_free(m);
    attn_params_free(ps);
    TEST_END();
}

/* (f) */
static void test_files(void) {
    TEST_BEGIN("wavenet/files: save, load, foreign and crafted files");
    attn_params *ps = NULL;
    attn_wavenet *m = tiny_model(&ps, 12, 3, 2, 2, 3);
    char dir[512], path[600];
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/attn_test_wavenet_XXXXXX", base && base[0] ? base : "/tmp");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (m) {
        const attn_kv extra[1] = {{"note", "round trip"}};
        CHECK_OK(attn_wavenet_save(path, m, extra, 1));
        attn_params *ps2 = NULL;
        attn_wavenet *m2 = NULL;
        CHECK_OK(attn_params_new(&ps2));
        CHECK_OK(attn_wavenet_load(path, ps2, &m2));
        if (m2) {
            CHECK(memcmp(&m2->cfg, &m->cfg, sizeof m->cfg) == 0, "configuration differs after load");
            CHECK(attn_params_count(ps2) == attn_params_count(ps), "%d vs %d parameters",
                  attn_params_count(ps2), attn_params_count(ps));
            int same = 1;
            for (int i = 0; i < attn_params_count(ps) && i < attn_params_count(ps2); i++) {
                attn_tensor *a = attn_params_at(ps, i), *b = attn_params_at(ps2, i);
                same &= strcmp(a->name, b->name) == 0 &&
                        memcmp(a->data, b->data, (size_t)attn_tensor_numel(a) * 4) == 0;
            }
            CHECK(same, "parameters differ after the round trip");
        }
        attn_wavenet_free(m2);
        attn_params_free(ps2);
        /* a safetensors file without the configuration is not a WaveNet file */
        snprintf(path, sizeof path, "%s/plain.safetensors", dir);
        CHECK_OK(attn_safetensors_save_params(path, ps, NULL, 0));
        attn_wavenet_config c;
        CHECK(attn_wavenet_config_load(path, &c) == ATTN_ERR_FORMAT, "a file without wavenet.* accepted");
        /* crafted: the small model's tensors under metadata that claims 64
         * blocks of 20 layers, or a vocabulary of 2^31 - 1, or a kernel of 0 */
        for (int claim = 0; claim < 3; claim++) {
            attn_wavenet_config big = m->cfg;
            if (claim == 0) big.layers_per_block = 20, big.n_blocks = 64;
            else if (claim == 1) big.vocab = 2147483647;
            else big.kernel = 0;
            attn_kv kv[ATTN_WAVENET_META];
            char buf[ATTN_WAVENET_META * 32];
            attn_wavenet_config_meta(&big, kv, buf);
            CHECK_OK(attn_safetensors_save_params(path, ps, kv, ATTN_WAVENET_META));
            attn_params *p4 = NULL;
            attn_wavenet *m4 = NULL;
            CHECK_OK(attn_params_new(&p4));
            const attn_status st = attn_wavenet_load(path, p4, &m4);
            CHECK(st != ATTN_OK && m4 == NULL && attn_params_count(p4) == 0,
                  "crafted claim %d: status %d, %d parameters built", claim, (int)st,
                  attn_params_count(p4));
            attn_params_free(p4);
        }
        remove(path);
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        remove(path);
    }
    remove(dir);
    attn_wavenet_free(m);
    attn_params_free(ps);
    TEST_END();
}

/* (g) */
static void test_errors(void) {
    TEST_BEGIN("wavenet/errors: configurations, shapes, ids, states");
    attn_params *ps = NULL;
    CHECK_OK(attn_params_new(&ps));
    attn_wavenet *m = NULL;
    const attn_wavenet_config good = {10, 4, 4, 4, 0, 2, 3, 1};
    CHECK(attn_wavenet_receptive_field(&good) == 8, "receptive field %lld, expected 8",
          (long long)attn_wavenet_receptive_field(&good));
    const attn_wavenet_config big = {10, 4, 4, 4, 0, 2, 10, 1};
    CHECK(attn_wavenet_receptive_field(&big) == 1024, "receptive field of 10 layers %lld, expected 1024",
          (long long)attn_wavenet_receptive_field(&big));
    for (int i = 0; i < 6; i++) {
        attn_wavenet_config c = good;
        if (i == 0) c.vocab = 1;
        else if (i == 1) c.res_channels = 0;
        else if (i == 2) c.kernel = 1;
        else if (i == 3) c.layers_per_block = 21;
        else if (i == 4) c.n_blocks = 0;
        else c.head_channels = -1;
        CHECK(attn_wavenet_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG && m == NULL,
              "bad configuration %d accepted", i);
    }
    CHECK(attn_wavenet_new(&m, NULL, &good, NULL) == ATTN_ERR_INVALID_ARG, "NULL store accepted");
    CHECK_OK(attn_wavenet_new(&m, ps, &good, NULL));
    CHECK(m && m->cfg.head_channels == 4, "head channels 0 not resolved to the skip channels");
    attn_ctx *ctx = test_ctx_new((size_t)8 << 20, 1, 64);
    if (m && ctx) {
        const int32_t ids[6] = {1, 2, 3, 4, 5, 6}, badid[3] = {1, 10, 2};
        test_expect_fail(ctx, attn_wavenet_logits(ctx, m, ids_tensor(ctx, 1, 6, ids), 7) == NULL,
                         ATTN_ERR_SHAPE, "last positions", "n_last > T");
        test_expect_fail(ctx, attn_wavenet_logits(ctx, m, ids_tensor(ctx, 1, 6, ids), 0) == NULL,
                         ATTN_ERR_SHAPE, "last positions", "n_last 0");
        test_expect_fail(ctx, attn_wavenet_logits(ctx, m, ids_tensor(ctx, 1, 3, badid), 3) == NULL,
                         ATTN_ERR_INVALID_ARG, "", "an id outside the vocabulary");
        attn_tensor *x3 = attn_tensor_from(ctx, ATTN_I32, 3, (int64_t[]){1, 2, 3}, ids);
        test_expect_fail(ctx, attn_wavenet_logits(ctx, m, x3, 1) == NULL, ATTN_ERR_SHAPE,
                         "expected i32 [B, T]", "3-D ids");
        test_expect_fail(ctx,
                         attn_wavenet_loss(ctx, m, ids_tensor(ctx, 1, 3, ids),
                                           ids_tensor(ctx, 1, 4, ids), -1) == NULL,
                         ATTN_ERR_SHAPE, "1 <= N <= T", "targets longer than ids");
        test_expect_fail(ctx,
                         attn_wavenet_loss(ctx, m, ids_tensor(ctx, 1, 6, ids),
                                           ids_tensor(ctx, 2, 3, ids), -1) == NULL,
                         ATTN_ERR_SHAPE, "1 <= N <= T", "targets of another batch");
        attn_wavenet_state s;
        memset(&s, 0, sizeof s);
        float row[10];
        CHECK(attn_wavenet_step(m, &s, 1, row) == ATTN_ERR_INVALID_ARG, "an uninitialised state accepted");
        CHECK_OK(attn_wavenet_state_init(m, &s));
        CHECK(attn_wavenet_step(m, &s, 10, row) == ATTN_ERR_INVALID_ARG, "token 10 of 10 accepted");
        CHECK(attn_wavenet_step(m, &s, -1, row) == ATTN_ERR_INVALID_ARG, "token -1 accepted");
        attn_wavenet_state_free(&s);
        attn_wavenet_state_free(&s); /* twice is fine */
    }
    attn_ctx_free(ctx);
    attn_wavenet_free(m);
    attn_params_free(ps);
    TEST_END();
}

void suite_wavenet(void) {
    test_parity();
    test_finite_differences();
    incremental_case(2, 3, 2);
    incremental_case(3, 2, 2);
    incremental_case(2, 5, 1);
    test_causality();
    test_generate();
    test_files();
    test_errors();
}
