/* test_synthesizer.c: synthesized attention (include/attn/synthesizer.h) and
 * Linformer (include/attn/linformer.h); suite "synthesizer".
 *
 *   (a) PyTorch parity (tests/fixtures/synthesizer.atfx, written by
 *       tools/make_synthesizer_fixtures.py from the papers' equations): every
 *       Synthesizer component alone (dense causal, random, factorized dense,
 *       factorized random causal), a dense + random + dot mixture (causal) and
 *       all five with fixed random matrices; Linformer with per-head,
 *       head-shared and key-value-shared projections, sequences shorter than
 *       max_len included: output, weights and the gradients of x and of every
 *       trained parameter (fixed ones must stay at zero), on the reference and
 *       the fused attention op and with the scalar reference kernels;
 *   (b) finite differences (central, double accumulation of sum(y * r)) of x
 *       and of one element of every parameter, for the five-component mixture
 *       and each Linformer sharing;
 *   (c) causality: a causal synthesizer's outputs before position t do not
 *       move when x at t changes;
 *   (d) errors: configurations and shapes that do not fit, causal Linformer;
 *   (e) the GPT with a synthesizer mixer (test_gpt_synth).
 *
 * Tolerance: SY_ATOL 2e-5, SY_RTOL 1e-4 (the composed ops' float32 rounding
 * over E <= 12 and T <= 8; the fixtures are float64 rounded once). Finite
 * differences: h 1e-2, |fd - analytic| <= 2e-3 + 2e-2 |fd|. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "test.h"

#define SY_ATOL 2e-5f
#define SY_RTOL 1e-4f
#define SCRIPT "tools/make_synthesizer_fixtures.py"
#define N_CASES 9

/* One block of either kind. */
typedef struct sy_block {
    int linformer;
    attn_synthesizer s;
    attn_linformer l;
} sy_block;

static attn_tensor *block_forward(attn_ctx *ctx, const sy_block *b, attn_tensor *x,
                                  attn_tensor **w) {
    return b->linformer ? attn_linformer_forward(ctx, &b->l, x, w)
                        : attn_synthesizer_forward(ctx, &b->s, x, w);
}

static void block_label(const atfx_file *fx, int k, char *buf, size_t n) {
    const atfx_tensor *ct = atfx_findf(fx, "c%d.cfg", k);
    if (!ct || ct->numel != 10) {
        snprintf(buf, n, "case %d", k);
        return;
    }
    const int32_t *c = atfx_i32(ct);
    if (c[0] == 1) {
        static const char *const sh[3] = {"per head", "head-shared", "key-value-shared"};
        snprintf(buf, n, "Linformer %s, k %d, max_len %d", sh[c[4] >= 0 && c[4] < 3 ? c[4] : 0],
                 c[7], c[3]);
        return;
    }
    static const char *const comp[5] = {"dense", "random", "factorized dense",
                                        "factorized random", "dot"};
    size_t used = (size_t)snprintf(buf, n, "Synthesizer");
    for (int i = 0; i < 5 && used < n; i++)
        if (c[4] & (1 << i)) used += (size_t)snprintf(buf + used, n - used, " %s%s", comp[i],
                                                      (c[4] >> (i + 1)) ? " +" : "");
    if (used < n)
        snprintf(buf + used, n - used, "%s%s, max_len %d", c[8] ? ", fixed random" : "",
                 c[9] ? ", causal" : "", c[3]);
}

static int make_block(const atfx_file *fx, int k, attn_attention_kernel kernel, attn_params **ps,
                      sy_block *b) {
    char nm[32];
    snprintf(nm, sizeof nm, "c%d.cfg", k);
    const atfx_tensor *ct = test_fx_need(fx, nm, ATTN_I32, 10, SCRIPT);
    if (!ct) return -1;
    const int32_t *c = atfx_i32(ct);
    memset(b, 0, sizeof *b);
    b->linformer = c[0] == 1;
    CHECK_OK(attn_params_new(ps));
    if (!*ps) return -1;
    if (b->linformer) {
        attn_linformer_config lc = {.d_model = c[1], .n_heads = c[2], .max_len = c[3], .k = c[7],
                                    .sharing = (attn_linformer_sharing)c[4], .kernel = kernel};
        CHECK_OK(attn_linformer_init(&b->l, *ps, "", &lc, NULL));
    } else {
        attn_synthesizer_config sc = {.d_model = c[1], .n_heads = c[2], .max_len = c[3],
                                      .components = (unsigned)c[4], .hidden = c[5],
                                      .factor_a = c[6], .rank = c[7], .fixed_random = c[8],
                                      .causal = c[9], .kernel = kernel};
        CHECK_OK(attn_synthesizer_init(&b->s, *ps, "", &sc, NULL));
    }
    if (test__failed_checks) return -1;
    char tag[64];
    snprintf(tag, sizeof tag, "synthesizer case %d", k);
    return test_load_torch_params(fx, k, *ps, 0, tag) < 0 ? -1 : 0;
}

static void parity_case(const atfx_file *fx, int k, attn_attention_kernel kernel, int use_ref) {
    char tname[256], label[160], tag[200], nm[96];
    attn_params *ps = NULL;
    sy_block b;
    attn_ctx *ctx = NULL;
    const char *kn = kernel == ATTN_KERNEL_FUSED ? "fused" : "reference";
    block_label(fx, k, label, sizeof label);
    snprintf(tname, sizeof tname, "synthesizer/%s vs torch [%s op%s]", label, kn,
             use_ref ? ", scalar references" : "");
    snprintf(tag, sizeof tag, "case %d [%s%s]", k, kn, use_ref ? ", ref" : "");
    TEST_BEGIN(tname);
    if (make_block(fx, k, kernel, &ps, &b) != 0) goto out;
    ctx = test_ctx_new((size_t)64 << 20, 1, 64);
    if (!ctx) goto out;
    attn_ctx_set_use_ref(ctx, use_ref);
    const atfx_tensor *xt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.x", k), nm), ATTN_F32,
                                         -1, SCRIPT);
    const atfx_tensor *gt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.grad_out", k), nm),
                                         ATTN_F32, -1, SCRIPT);
    if (!xt || !gt) goto out;
    attn_tensor *x = test_leaf(ctx, 3, xt->shape, atfx_f32(xt)), *w = NULL;
    attn_tensor *y = block_forward(ctx, &b, x, &w);
    CHECK(y != NULL, "%s: forward: %s", tag, attn_ctx_error(ctx));
    if (!y) goto out;
    test_fx_close(tag, "output", attn_f32(y), fx, (snprintf(nm, sizeof nm, "c%d.out", k), nm),
                  attn_tensor_numel(y), SY_ATOL, SY_RTOL, SCRIPT);
    CHECK(w != NULL, "%s: no weights", tag);
    if (w)
        test_fx_close(tag, "weights", attn_f32(w), fx,
                      (snprintf(nm, sizeof nm, "c%d.weights", k), nm), attn_tensor_numel(w),
                      SY_ATOL, SY_RTOL, SCRIPT);
    CHECK_OK(attn_backward_from(ctx, y, atfx_f32(gt)));
    test_fx_close(tag, "gradient of x", x->grad, fx,
                  (snprintf(nm, sizeof nm, "c%d.grad.x", k), nm), attn_tensor_numel(x), SY_ATOL,
                  SY_RTOL, SCRIPT);
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        char what[96];
        snprintf(what, sizeof what, "gradient of %s", p->name);
        if (!p->requires_grad) { /* fixed: never trained, its gradient stays 0 */
            int nonzero = 0;
            for (int64_t j = 0; j < attn_tensor_numel(p); j++) nonzero += p->grad[j] != 0.0f;
            CHECK(nonzero == 0 && !atfx_findf(fx, "c%d.grad.%s", k, p->name),
                  "%s: fixed %s has %d nonzero gradient entries", tag, p->name, nonzero);
            continue;
        }
        test_fx_close(tag, what, p->grad, fx,
                      (snprintf(nm, sizeof nm, "c%d.grad.%s", k, p->name), nm),
                      attn_tensor_numel(p), SY_ATOL, SY_RTOL, SCRIPT);
    }
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s: %s", tag, attn_last_error());
out:
    if (ctx) attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

/* sum(y * r) in double for the block on x. */
static double loss_of(attn_ctx *ctx, const sy_block *b, const int64_t *xs, const float *x,
                      const float *r) {
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *xt = attn_tensor_from(ctx, ATTN_F32, 3, xs, x);
    attn_tensor *y = block_forward(ctx, b, xt, NULL);
    attn_ctx_set_grad_enabled(ctx, 1);
    return y ? test_dot_d(y, r) : NAN;
}

/* (b): central differences of 8 elements of x and element (i * 7) mod n of
 * every trained parameter i. */
static void fd_case(const atfx_file *fx, int k) {
    char tname[256], label[160], nm[64];
    attn_params *ps = NULL;
    sy_block b;
    attn_ctx *ctx = NULL;
    float *x = NULL, *gx = NULL;
    block_label(fx, k, label, sizeof label);
    snprintf(tname, sizeof tname, "synthesizer/%s: finite differences", label);
    TEST_BEGIN(tname);
    if (make_block(fx, k, ATTN_KERNEL_REFERENCE, &ps, &b) != 0) goto out;
    ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    const atfx_tensor *xt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.x", k), nm), ATTN_F32,
                                         -1, SCRIPT);
    const atfx_tensor *gt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.grad_out", k), nm),
                                         ATTN_F32, -1, SCRIPT);
    if (!ctx || !xt || !gt) goto out;
    const int64_t n = xt->numel;
    x = malloc(sizeof(float) * (size_t)n);
    gx = malloc(sizeof(float) * (size_t)n);
    if (!x || !gx) goto out;
    memcpy(x, atfx_f32(xt), sizeof(float) * (size_t)n);
    attn_ctx_reset(ctx);
    attn_params_zero_grad(ps);
    attn_tensor *xl = test_leaf(ctx, 3, xt->shape, x);
    attn_tensor *y = block_forward(ctx, &b, xl, NULL);
    CHECK(y != NULL, "forward: %s", attn_ctx_error(ctx));
    if (!y) goto out;
    CHECK_OK(attn_backward_from(ctx, y, atfx_f32(gt)));
    memcpy(gx, xl->grad, sizeof(float) * (size_t)n);
    const float h = 1e-2f;
    int bad = 0, probes = 0;
    for (int64_t i = 0; i < n; i += n / 8 + 1, probes++) {
        const float keep = x[i];
        x[i] = keep + h;
        const double lp = loss_of(ctx, &b, xt->shape, x, atfx_f32(gt));
        x[i] = keep - h;
        const double lm = loss_of(ctx, &b, xt->shape, x, atfx_f32(gt));
        x[i] = keep;
        const double fd = (lp - lm) / (2.0 * h);
        if (!(fabs(fd - gx[i]) <= 2e-3 + 2e-2 * fabs(fd))) {
            bad++;
            CHECK(0, "x[%lld]: analytic %g, central difference %g", (long long)i, (double)gx[i], fd);
        }
    }
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        if (!p->requires_grad) continue;
        const int64_t j = ((int64_t)i * 7) % attn_tensor_numel(p);
        float *pv = attn_f32(p);
        const double analytic = p->grad[j];
        const float keep = pv[j];
        pv[j] = keep + h;
        const double lp = loss_of(ctx, &b, xt->shape, x, atfx_f32(gt));
        pv[j] = keep - h;
        const double lm = loss_of(ctx, &b, xt->shape, x, atfx_f32(gt));
        pv[j] = keep;
        const double fd = (lp - lm) / (2.0 * h);
        probes++;
        if (!(fabs(fd - analytic) <= 2e-3 + 2e-2 * fabs(fd))) {
            bad++;
            CHECK(0, "%s[%lld]: analytic %g, central difference %g", p->name, (long long)j,
                  analytic, fd);
        }
    }
    CHECK(bad == 0 && probes >= 16, "%d of %d probes out of tolerance", bad, probes);
out:
    free(gx);
    free(x);
    if (ctx) attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

/* (c): with random parameters, moving x at position t (all of its features)
 * leaves the outputs of positions < t bitwise unchanged, and changes the
 * output at t, for every component alone and for all five mixed. */
static void test_causal(void) {
    TEST_BEGIN("synthesizer/causal: no output moves with a later input");
    const unsigned sets[6] = {ATTN_SYNTH_DENSE, ATTN_SYNTH_RANDOM, ATTN_SYNTH_FACTORIZED_DENSE,
                              ATTN_SYNTH_FACTORIZED_RANDOM, ATTN_SYNTH_DOT, ATTN_SYNTH_ALL};
    const int64_t B = 2, T = 9, E = 12;
    const int64_t xs[3] = {B, T, E};
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    float *x = malloc(sizeof(float) * (size_t)(B * T * E));
    float *y0 = malloc(sizeof(float) * (size_t)(B * T * E));
    attn_rng rng;
    attn_rng_init(&rng, 11);
    for (int si = 0; ctx && x && y0 && si < 6; si++) {
        attn_params *ps = NULL;
        attn_synthesizer m;
        attn_synthesizer_config c = {.d_model = E, .n_heads = 3, .max_len = 12,
                                     .components = sets[si], .causal = 1};
        CHECK_OK(attn_params_new(&ps));
        CHECK_OK(attn_synthesizer_init(&m, ps, "", &c, &rng));
        for (int64_t i = 0; i < B * T * E; i++) x[i] = attn_rng_next_uniform(&rng) * 2.0f - 1.0f;
        attn_ctx_reset(ctx);
        attn_tensor *y = attn_synthesizer_forward(ctx, &m, attn_tensor_from(ctx, ATTN_F32, 3, xs, x),
                                                  NULL);
        CHECK(y != NULL, "components 0x%x: %s", sets[si], attn_ctx_error(ctx));
        if (!y) {
            attn_params_free(ps);
            continue;
        }
        memcpy(y0, attn_f32(y), sizeof(float) * (size_t)(B * T * E));
        for (int64_t t = 1; t < T; t += 3) {
            for (int64_t bb = 0; bb < B; bb++)
                for (int64_t e = 0; e < E; e++) x[(bb * T + t) * E + e] += 0.5f;
            attn_ctx_reset(ctx);
            y = attn_synthesizer_forward(ctx, &m, attn_tensor_from(ctx, ATTN_F32, 3, xs, x), NULL);
            int before = 0, at = 0;
            for (int64_t bb = 0; y && bb < B; bb++)
                for (int64_t s = 0; s <= t; s++)
                    for (int64_t e = 0; e < E; e++) {
                        const int64_t i = (bb * T + s) * E + e;
                        if (s < t) before += attn_f32(y)[i] != y0[i];
                        else at += attn_f32(y)[i] != y0[i];
                    }
            CHECK(y && before == 0 && at > 0,
                  "components 0x%x, x moved at %lld: %d earlier outputs changed, %d at t", sets[si],
                  (long long)t, before, at);
            for (int64_t bb = 0; bb < B; bb++)
                for (int64_t e = 0; e < E; e++) x[(bb * T + t) * E + e] -= 0.5f;
        }
        attn_params_free(ps);
    }
    free(y0);
    free(x);
    if (ctx) attn_ctx_free(ctx);
    TEST_END();
}

static void test_errors(void) {
    TEST_BEGIN("synthesizer/errors");
    attn_params *ps = NULL;
    CHECK_OK(attn_params_new(&ps));
    attn_synthesizer m;
    attn_synthesizer_config c = {.d_model = 8, .n_heads = 2, .max_len = 6};
    CHECK(attn_synthesizer_init(&m, ps, "", &c, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "non-empty set"),
          "no component accepted: %s", attn_last_error());
    c.components = 64;
    CHECK(attn_synthesizer_init(&m, ps, "", &c, NULL) == ATTN_ERR_INVALID_ARG, "bit 64 accepted");
    c.components = ATTN_SYNTH_FACTORIZED_DENSE, c.factor_a = 4;
    CHECK(attn_synthesizer_init(&m, ps, "", &c, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "factor_a 4"),
          "a = 4 with l = 6 accepted: %s", attn_last_error());
    c.factor_a = 0, c.n_heads = 3;
    CHECK(attn_synthesizer_init(&m, ps, "", &c, NULL) == ATTN_ERR_INVALID_ARG, "H = 3, E = 8");
    c.n_heads = 2, c.dropout = NAN;
    CHECK(attn_synthesizer_init(&m, ps, "", &c, NULL) == ATTN_ERR_INVALID_ARG, "NaN dropout");
    c.dropout = 0.0f;
    CHECK_OK(attn_synthesizer_init(&m, ps, "s.", &c, NULL));
    CHECK(m.cfg.factor_a == 2 && m.factor_b == 3, "default a for l = 6: %lld x %lld",
          (long long)m.cfg.factor_a, (long long)m.factor_b);
    attn_linformer lm;
    attn_linformer_config lc = {.d_model = 8, .n_heads = 2, .max_len = 6, .k = 3, .causal = 1};
    CHECK(attn_linformer_init(&lm, ps, "l.", &lc, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "causal"),
          "causal Linformer accepted: %s", attn_last_error());
    lc.causal = 0, lc.sharing = (attn_linformer_sharing)5;
    CHECK(attn_linformer_init(&lm, ps, "l.", &lc, NULL) == ATTN_ERR_INVALID_ARG, "sharing 5");
    lc.sharing = ATTN_LINFORMER_HEADWISE, lc.k = 0;
    CHECK(attn_linformer_init(&lm, ps, "l.", &lc, NULL) == ATTN_ERR_INVALID_ARG, "k = 0");
    lc.k = 3;
    CHECK_OK(attn_linformer_init(&lm, ps, "l.", &lc, NULL));
    attn_ctx *ctx = test_ctx_new((size_t)16 << 20, 1, 0);
    if (ctx) {
        const int64_t longer[3] = {1, 7, 8}, wrong_e[3] = {1, 4, 6};
        attn_tensor *x = attn_tensor_new(ctx, ATTN_F32, 3, longer);
        test_expect_fail(ctx, attn_synthesizer_forward(ctx, &m, x, NULL) == NULL, ATTN_ERR_SHAPE,
                         "1 <= T <= max_len 6", "T = 7 > max_len");
        test_expect_fail(ctx, attn_linformer_forward(ctx, &lm, x, NULL) == NULL, ATTN_ERR_SHAPE,
                         "1 <= T <= max_len 6", "T = 7 > max_len (Linformer)");
        x = attn_tensor_new(ctx, ATTN_F32, 3, wrong_e);
        test_expect_fail(ctx, attn_synthesizer_forward(ctx, &m, x, NULL) == NULL, ATTN_ERR_SHAPE,
                         "expected f32 [B, T, 8]", "E = 6 for an 8-wide block");
        attn_ctx_free(ctx);
    }
    attn_params_free(ps);
    TEST_END();
}

/* (e) the GPT with a synthesizer mixer: a model-level finite difference of
 * the loss, a save/load round trip (same logits bitwise), greedy generation
 * equal to the arg max of the full forward at each step, a KV cache refused,
 * and a file without the gpt.synth keys (written before them) loading as
 * dot-product attention. */
static void test_gpt_synth(void) {
    TEST_BEGIN("synthesizer/gpt: loss gradient, round trip, generation, old files");
    attn_gpt_config c;
    memset(&c, 0, sizeof c);
    c.vocab = 11, c.ctx_len = 7, c.n_layers = 2, c.n_heads = 2, c.d_model = 8;
    c.pos = ATTN_POS_LEARNED, c.tied = 1;
    c.synth = ATTN_SYNTH_DENSE | ATTN_SYNTH_FACTORIZED_RANDOM | ATTN_SYNTH_DOT;
    attn_params *ps = NULL, *ps2 = NULL;
    attn_gpt *m = NULL, *m2 = NULL;
    attn_rng rng;
    attn_rng_init(&rng, 3);
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_params_new(&ps2));
    CHECK_OK(attn_gpt_new(&m, ps, &c, &rng));
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    char dir[512], path[600];
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/attn_test_sy_XXXXXX", base && base[0] ? base : "/tmp");
    const int have_dir = mkdtemp(dir) != NULL;
    snprintf(path, sizeof path, "%s/gpt.safetensors", dir);
    if (!m || !ctx || !have_dir) goto out;
    CHECK(attn_params_find(ps, "layers.1.self_attn.frandom.r2") != NULL &&
              attn_params_find(ps, "layers.0.self_attn.in_proj_weight") == NULL,
          "parameter names: the synthesizer's under self_attn., no MHA projection");
    const int32_t ids[2 * 7] = {1, 4, 2, 9, 0, 3, 3, 5, 5, 10, 2, 7, 1, 8};
    const int32_t tg[2 * 7] = {4, 2, 9, 0, 3, 3, 6, 5, 10, 2, 7, 1, 8, 0};
    const int64_t s2[2] = {2, 7};
    /* finite difference of the loss in a dense-synthesizer weight */
    attn_ctx_reset(ctx);
    attn_params_zero_grad(ps);
    attn_tensor *loss = attn_gpt_loss(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, s2, ids),
                                      attn_tensor_from(ctx, ATTN_I32, 2, s2, tg), -1);
    CHECK(loss != NULL, "loss: %s", attn_ctx_error(ctx));
    if (!loss) goto out;
    CHECK_OK(attn_backward(ctx, loss));
    const char *probe[3] = {"layers.0.self_attn.dense.1.weight", "layers.1.self_attn.frandom.r1",
                            "layers.1.self_attn.mix"};
    for (int j = 0; j < 3; j++) {
        attn_tensor *p = attn_params_find(ps, probe[j]);
        CHECK(p != NULL, "no parameter %s", probe[j]);
        if (!p) continue;
        const int64_t e = 5 % attn_tensor_numel(p);
        const double analytic = p->grad[e];
        float *pv = attn_f32(p);
        const float keep = pv[e], h = 1e-2f;
        double l[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            pv[e] = keep + (sgn ? -h : h);
            attn_ctx_reset(ctx);
            attn_ctx_set_grad_enabled(ctx, 0);
            attn_tensor *lt = attn_gpt_loss(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, s2, ids),
                                            attn_tensor_from(ctx, ATTN_I32, 2, s2, tg), -1);
            attn_ctx_set_grad_enabled(ctx, 1);
            l[sgn] = lt ? (double)attn_f32(lt)[0] : NAN;
        }
        pv[e] = keep;
        const double fd = (l[0] - l[1]) / (2.0 * h);
        CHECK(fabs(fd - analytic) <= 2e-3 + 2e-2 * fabs(fd), "%s[%lld]: analytic %g, central %g",
              probe[j], (long long)e, analytic, fd);
    }
    /* round trip */
    CHECK_OK(attn_gpt_save(path, m, NULL, 0));
    CHECK_OK(attn_gpt_load(path, ps2, &m2));
    if (!m2) goto out;
    CHECK(m2->cfg.synth == c.synth && m2->synth != NULL, "synth 0x%x after load", m2->cfg.synth);
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *a = attn_gpt_logits(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, s2, ids), NULL);
    attn_tensor *b = attn_gpt_logits(ctx, m2, attn_tensor_from(ctx, ATTN_I32, 2, s2, ids), NULL);
    CHECK(a && b && memcmp(a->data, b->data, sizeof(float) * 2 * 7 * 11) == 0,
          "logits differ after the round trip");
    /* a cache is refused */
    attn_kv_cache cache;
    memset(&cache, 0, sizeof cache);
    CHECK_OK(attn_kv_cache_init(&cache, 2, 1, 2, 7, 4));
    const int64_t s1[2] = {1, 3};
    test_expect_fail(ctx, attn_gpt_logits(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, s1, ids), &cache) == NULL,
                     ATTN_ERR_INVALID_ARG, "no KV cache", "a KV cache with a synthesizer");
    attn_kv_cache_free(&cache);
    /* greedy generation past ctx_len = the arg max of the full forward over
     * the last ctx_len tokens */
    attn_ctx_reset(ctx);
    int32_t seq[20] = {1, 4, 2};
    int32_t out[12];
    const attn_sample_opts greedy = {0.0f, 0, 0.0f, 1, 0};
    CHECK_OK(attn_gpt_generate(ctx, m, seq, 3, 12, &greedy, out, NULL));
    int bad = 0;
    for (int i = 0; i < 12; i++) {
        const int64_t n = 3 + i, k = n < 7 ? n : 7;
        const int64_t sk[2] = {1, k};
        attn_ctx_reset(ctx);
        attn_tensor *lg = attn_gpt_logits(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, sk, seq + n - k), NULL);
        if (!lg) {
            bad++;
            break;
        }
        const float *row = attn_f32(lg) + (k - 1) * 11;
        int32_t best = 0;
        for (int v = 1; v < 11; v++)
            if (row[v] > row[best]) best = v;
        bad += best != out[i];
        seq[n] = out[i];
    }
    CHECK(bad == 0, "%d of 12 generated tokens differ from the full forward's arg max", bad);
    attn_ctx_set_grad_enabled(ctx, 1);
    /* a file written before gpt.synth: dot-product attention */
    attn_gpt_config old = c;
    old.synth = 0;
    attn_gpt *m3 = NULL, *m4 = NULL;
    attn_params *ps3 = NULL, *ps4 = NULL;
    CHECK_OK(attn_params_new(&ps3));
    CHECK_OK(attn_params_new(&ps4));
    CHECK_OK(attn_gpt_new(&m3, ps3, &old, &rng));
    if (m3) {
        attn_kv kv[ATTN_GPT_META];
        char buf[ATTN_GPT_META * 32];
        attn_gpt_config_meta(&m3->cfg, kv, buf);
        int ks = 0; /* the keys before gpt.synth: a file written before the synthesizer */
        while (ks < ATTN_GPT_META && strcmp(kv[ks].key, "gpt.synth") != 0) ks++;
        CHECK(ks < ATTN_GPT_META, "no gpt.synth key");
        CHECK_OK(attn_safetensors_save_params(path, ps3, kv, ks));
        CHECK_OK(attn_gpt_load(path, ps4, &m4));
        CHECK(m4 && m4->cfg.synth == 0 && m4->synth == NULL, "an old file loads as a synthesizer");
    }
    attn_gpt_free(m4);
    attn_gpt_free(m3);
    attn_params_free(ps4);
    attn_params_free(ps3);
out:
    if (have_dir) {
        unlink(path);
        rmdir(dir);
    }
    if (ctx) attn_ctx_free(ctx);
    attn_gpt_free(m2);
    attn_gpt_free(m);
    attn_params_free(ps2);
    attn_params_free(ps);
    TEST_END();
}

void suite_synthesizer(void) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/synthesizer.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        TEST_BEGIN("synthesizer/fixture");
        CHECK(0, "%s (regenerate with %s)", err, SCRIPT);
        TEST_END();
        return;
    }
    const atfx_tensor *nc = atfx_findf(fx, "n_cases");
    const int n = nc ? atfx_i32(nc)[0] : 0;
    TEST_BEGIN("synthesizer/fixture has 9 cases");
    CHECK(n == N_CASES, "%d cases", n);
    TEST_END();
    for (int k = 0; k < n; k++) {
        parity_case(fx, k, ATTN_KERNEL_REFERENCE, 0);
        parity_case(fx, k, ATTN_KERNEL_REFERENCE, 1);
        parity_case(fx, k, ATTN_KERNEL_FUSED, 0);
        if (k >= 5) fd_case(fx, k);
    }
    test_causal();
    test_errors();
    test_gpt_synth();
    atfx_free(fx);
}
