/* test_caption.c: the Show, Attend and Tell decoder (include/attn/caption.h)
 * and its scenes (include/attn/scenes.h); suite "caption".
 *
 *   (a) PyTorch parity (tests/fixtures/caption.atfx, written by
 *       tools/make_caption_fixtures.py): one decoder step and a short
 *       sequence with padding, soft attention and none: loss, its parts,
 *       logits, attention weights, gates and every parameter's gradient;
 *   (b) hard attention with FIXED draws: the gradient of attn's loss equals
 *       the REINFORCE formula assembled term by term in torch,
 *       d(CE + penalty) - (lambda_r/N) sum_b (R_b - b) d log p(s_b)
 *       - (lambda_e/N) d H, for those samples and that baseline;
 *   (c) finite differences of the loss on a tiny configuration (soft, none,
 *       and hard with fixed draws and lambda_r = 0: every other term of the
 *       hard loss is a differentiable function of the parameters);
 *   (d) the drawn path: draws from the context's stream are repeatable,
 *       the baseline moves by its running-average rule, in the reward's
 *       units (per-word mean log-likelihood); with samples K, a sampled
 *       row's baseline is the mean reward of its group's other sampled rows
 *       (the surrogate's value against the formula, fixed draws);
 *       rows that take the expected context get soft attention's loss and
 *       gradient exactly (and mix 1 draws none);
 *   (e) greedy decoding: shapes, attention rows that sum to 1, EOS then PAD;
 *   (f) scenes: determinism, held-out pairs absent from train/valid and
 *       present in test, splits' image ranges, canvases, the grammar
 *       (caption -> parse round trip), and BLEU-4 on caption texts;
 *   (g) errors: wrong shapes, bad tokens and draws, bad configurations.
 *
 * Tolerances: CAP_ATOL 2e-5, CAP_RTOL 2e-4 against torch (float64
 * references rounded once; the C side is float32 through ~10 ops per step).
 * Finite differences: h 1e-2, |fd - analytic| <= 3e-3 + 3e-2 |fd|. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "test.h"

#define CAP_ATOL 2e-5f
#define CAP_RTOL 2e-4f
#define SCRIPT "tools/make_caption_fixtures.py"

typedef struct fx_case {
    attn_caption_config cfg;
    const atfx_tensor *annot, *tokens, *samples, *expected;
} fx_case;

static int load_case(const atfx_file *fx, int k, fx_case *c, attn_params **ps, attn_caption *m) {
    char nm[64];
    const atfx_tensor *ct = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.cfg", k), nm), ATTN_I32, 6, SCRIPT);
    const atfx_tensor *hy = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.hyper", k), nm), ATTN_F32, 5, SCRIPT);
    c->annot = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.annot", k), nm), ATTN_F32, -1, SCRIPT);
    c->tokens = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.tokens", k), nm), ATTN_I32, -1, SCRIPT);
    c->samples = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.samples", k), nm), ATTN_I32, -1, SCRIPT);
    c->expected = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.expected", k), nm), ATTN_I32, -1, SCRIPT);
    if (!ct || !hy || !c->annot || !c->tokens || !c->samples || !c->expected) return -1;
    const int32_t *cv = atfx_i32(ct);
    const float *hv = atfx_f32(hy);
    memset(&c->cfg, 0, sizeof c->cfg);
    c->cfg.mode = (attn_caption_mode)cv[0];
    c->cfg.vocab = cv[1];
    c->cfg.annot_dim = cv[2];
    c->cfg.embed = cv[3];
    c->cfg.hidden = cv[4];
    c->cfg.attn_size = cv[5];
    c->cfg.lambda = hv[0];
    c->cfg.reinforce = hv[1];
    c->cfg.entropy = hv[2];
    c->cfg.baseline_decay = hv[3];
    c->cfg.mix = hv[4];
    CHECK_OK(attn_params_new(ps));
    if (!*ps) return -1;
    CHECK_OK(attn_caption_init(m, *ps, &c->cfg, NULL));
    if (test__failed_checks) return -1;
    char tag[64];
    snprintf(tag, sizeof tag, "caption case %d", k);
    return test_load_torch_params(fx, k, *ps, 0, tag) < 0 ? -1 : 0;
}

/* The fixed draws of a case as the API takes them. */
typedef struct draws_buf {
    uint8_t expected[64];
    attn_caption_draws d;
} draws_buf;

static const attn_caption_draws *case_draws(const fx_case *c, draws_buf *b) {
    for (int64_t i = 0; i < c->expected->numel && i < 64; i++) b->expected[i] = atfx_i32(c->expected)[i] != 0;
    b->d.samples = atfx_i32(c->samples);
    b->d.expected = b->expected;
    b->d.argmax = 0;
    return &b->d;
}

static void parity_case(const atfx_file *fx, int k, const char *what) {
    char tname[160], nm[128];
    attn_params *ps = NULL;
    attn_caption m;
    attn_ctx *ctx = NULL;
    fx_case c;
    snprintf(tname, sizeof tname, "caption/%s vs torch", what);
    TEST_BEGIN(tname);
    if (load_case(fx, k, &c, &ps, &m) != 0) goto out;
    ctx = test_ctx_new((size_t)64 << 20, 1, 64);
    if (!ctx) goto out;
    attn_tensor *annot = attn_tensor_from(ctx, ATTN_F32, 3, c.annot->shape, atfx_f32(c.annot));
    attn_tensor *tok = attn_tensor_from(ctx, ATTN_I32, 2, c.tokens->shape, atfx_i32(c.tokens));
    draws_buf db;
    attn_caption_loss_out lo;
    CHECK_OK(attn_caption_loss(ctx, &m, annot, tok, case_draws(&c, &db), &lo));
    if (!lo.loss) goto out;
    attn_params_zero_grad(ps);
    CHECK_OK(attn_backward(ctx, lo.loss));
    const float ce = (float)lo.ce, pen = (float)lo.penalty;
    test_fx_close(what, "loss", attn_f32(lo.loss), fx, (snprintf(nm, sizeof nm, "c%d.loss", k), nm), 1, CAP_ATOL, CAP_RTOL, SCRIPT);
    test_fx_close(what, "ce", &ce, fx, (snprintf(nm, sizeof nm, "c%d.ce", k), nm), 1, CAP_ATOL, CAP_RTOL, SCRIPT);
    test_fx_close(what, "penalty", &pen, fx, (snprintf(nm, sizeof nm, "c%d.penalty", k), nm), 1, CAP_ATOL, CAP_RTOL, SCRIPT);
    test_fx_close(what, "logits", attn_f32(lo.logits), fx, (snprintf(nm, sizeof nm, "c%d.logits", k), nm),
                  attn_tensor_numel(lo.logits), CAP_ATOL, CAP_RTOL, SCRIPT);
    if (c.cfg.mode != ATTN_CAPTION_NONE) {
        CHECK(lo.alphas && lo.betas, "%s: alphas and betas expected", what);
        if (lo.alphas && lo.betas) {
            test_fx_close(what, "alphas", attn_f32(lo.alphas), fx, (snprintf(nm, sizeof nm, "c%d.alphas", k), nm),
                          attn_tensor_numel(lo.alphas), CAP_ATOL, CAP_RTOL, SCRIPT);
            attn_tensor *bc = attn_contiguous(ctx, lo.betas);
            if (bc)
                test_fx_close(what, "betas", attn_f32(bc), fx, (snprintf(nm, sizeof nm, "c%d.betas", k), nm),
                              attn_tensor_numel(bc), CAP_ATOL, CAP_RTOL, SCRIPT);
        }
    } else {
        CHECK(!lo.alphas && !lo.betas, "%s: NONE has no attention weights", what);
    }
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        if (!p->requires_grad) continue;
        char w[96];
        snprintf(w, sizeof w, "grad %s", p->name);
        /* HARD: compare with the REINFORCE formula assembled in torch */
        snprintf(nm, sizeof nm, c.cfg.mode == ATTN_CAPTION_HARD ? "c%d.formula.%s" : "c%d.grad.%s", k, p->name);
        CHECK(p->grad != NULL, "%s: %s received no gradient", what, p->name);
        if (p->grad) test_fx_close(what, w, p->grad, fx, nm, attn_tensor_numel(p), CAP_ATOL, CAP_RTOL, SCRIPT);
    }
    if (c.cfg.mode == ATTN_CAPTION_HARD)
        CHECK(attn_f32(m.baseline)[0] == -9.0f, "given draws must leave the baseline alone (%g)",
              (double)attn_f32(m.baseline)[0]);
    CHECK_OK(attn_ctx_check_guards(ctx));
out:
    attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

static void test_parity(void) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/caption.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    TEST_BEGIN("caption/fixture file");
    CHECK(atfx_load(path, &fx, err, sizeof err) == ATTN_OK, "%s (run %s)", err, SCRIPT);
    TEST_END();
    if (!fx) return;
    parity_case(fx, 0, "soft attention, a sequence of 4 steps with padding");
    parity_case(fx, 1, "soft attention, one decoder step");
    parity_case(fx, 2, "no attention (mean annotation)");
    parity_case(fx, 3, "hard attention, fixed draws: REINFORCE gradient = formula");
    atfx_free(fx);
}

/* ---- finite differences ---------------------------------------------------------------- */

static void fill_tokens(int32_t *tk, int64_t B, int64_t T1, int64_t V, attn_rng *rng) {
    for (int64_t b = 0; b < B; b++) {
        const int64_t n = b == 0 ? T1 - 1 : 1 + b % (T1 - 1); /* targets in row b */
        for (int64_t t = 0; t < T1; t++) {
            int32_t y = ATTN_CAPTION_PAD_ID;
            if (t == 0) y = ATTN_CAPTION_BOS_ID;
            else if (t < n) y = 3 + (int32_t)attn_rng_next_below(rng, (uint32_t)(V - 3));
            else if (t == n) y = ATTN_CAPTION_EOS_ID;
            tk[b * T1 + t] = y;
        }
    }
}

static double loss_value(attn_ctx *ctx, attn_caption *m, const float *annot, const int64_t *ashape,
                         const int32_t *tk, const int64_t *tshape, const attn_caption_draws *d) {
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_caption_loss_out lo;
    attn_tensor *a = attn_tensor_from(ctx, ATTN_F32, 3, ashape, annot);
    attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 2, tshape, tk);
    const attn_status st = attn_caption_loss(ctx, m, a, t, d, &lo);
    attn_ctx_set_grad_enabled(ctx, 1);
    return st == ATTN_OK ? (double)attn_f32(lo.loss)[0] : NAN;
}

static void fd_case(attn_caption_mode mode, float reinforce) {
    char tname[128];
    snprintf(tname, sizeof tname, "caption/finite differences, %s attention%s", attn_caption_mode_name(mode),
             mode == ATTN_CAPTION_HARD ? " (fixed draws, lambda_r 0, entropy 0.2)" : "");
    TEST_BEGIN(tname);
    attn_params *ps = NULL;
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    attn_caption m;
    attn_caption_config cfg;
    memset(&cfg, 0, sizeof cfg);
    attn_caption_config_defaults(&cfg);
    cfg.mode = mode;
    cfg.vocab = 7;
    cfg.annot_dim = 3;
    cfg.embed = 4;
    cfg.hidden = 5;
    cfg.attn_size = 3;
    cfg.lambda = 0.4f;
    cfg.reinforce = reinforce;
    cfg.entropy = 0.2f;
    attn_rng rng;
    attn_rng_init(&rng, 17);
    CHECK_OK(attn_params_new(&ps));
    if (!ps || !ctx) goto out;
    CHECK_OK(attn_caption_init(&m, ps, &cfg, &rng));
    if (test__failed_checks) goto out;
    for (int i = 0; i < attn_params_count(ps); i++) { /* livelier weights than the init's */
        attn_tensor *p = attn_params_at(ps, i);
        if (p->requires_grad) test_fill_normal(attn_f32(p), attn_tensor_numel(p), &rng);
        if (p->requires_grad)
            for (int64_t j = 0; j < attn_tensor_numel(p); j++) attn_f32(p)[j] *= 0.6f;
    }
    const int64_t B = 3, L = 4, T1 = 5, D = 3;
    float annot[3 * 4 * 3];
    int32_t tk[3 * 5], samples[3 * 4];
    uint8_t expected[3] = {0, 1, 0};
    test_fill_normal(annot, B * L * D, &rng);
    fill_tokens(tk, B, T1, cfg.vocab, &rng);
    for (int i = 0; i < B * (T1 - 1); i++) samples[i] = (int32_t)attn_rng_next_below(&rng, (uint32_t)L);
    const attn_caption_draws draws = {samples, expected, 0};
    const int64_t ashape[3] = {B, L, D}, tshape[2] = {B, T1};
    /* analytic */
    attn_ctx_reset(ctx);
    attn_params_zero_grad(ps);
    attn_caption_loss_out lo;
    attn_tensor *a = attn_tensor_from(ctx, ATTN_F32, 3, ashape, annot);
    attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 2, tshape, tk);
    CHECK_OK(attn_caption_loss(ctx, &m, a, t, &draws, &lo));
    if (!lo.loss) goto out;
    CHECK_OK(attn_backward(ctx, lo.loss));
    const float h = 1e-2f;
    int checked = 0;
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        if (!p->requires_grad || !p->grad) continue;
        const int64_t n = attn_tensor_numel(p);
        for (int64_t j = 0; j < n; j += 1 + n / 3) { /* a few entries of every parameter */
            float *x = attn_f32(p) + j;
            const float x0 = *x, g = p->grad[j];
            *x = x0 + h;
            const double lp = loss_value(ctx, &m, annot, ashape, tk, tshape, &draws);
            *x = x0 - h;
            const double lm = loss_value(ctx, &m, annot, ashape, tk, tshape, &draws);
            *x = x0;
            const double fd = (lp - lm) / (2.0 * h);
            CHECK(fabs(fd - g) <= 3e-3 + 3e-2 * fabs(fd), "%s[%lld]: finite difference %.6g, backward %.6g", p->name,
                  (long long)j, fd, (double)g);
            checked++;
        }
    }
    CHECK(checked > 20, "only %d entries checked", checked);
out:
    attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

/* ---- the drawn path, decoding ---------------------------------------------------------- */

static int tiny_model(attn_caption_mode mode, attn_params **ps, attn_caption *m, uint64_t seed) {
    attn_caption_config cfg;
    memset(&cfg, 0, sizeof cfg);
    attn_caption_config_defaults(&cfg);
    cfg.mode = mode;
    cfg.vocab = ATTN_CAPTION_VOCAB;
    cfg.annot_dim = 6;
    cfg.embed = 8;
    cfg.hidden = 10;
    attn_rng rng;
    attn_rng_init(&rng, seed);
    CHECK_OK(attn_params_new(ps));
    if (!*ps) return -1;
    CHECK_OK(attn_caption_init(m, *ps, &cfg, &rng));
    return test__failed_checks ? -1 : 0;
}

static void test_drawn(void) {
    TEST_BEGIN("caption/hard: draws from the context's stream repeat; the baseline is a running average");
    attn_params *ps = NULL;
    attn_caption m;
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    if (!ctx || tiny_model(ATTN_CAPTION_HARD, &ps, &m, 3)) goto out;
    const int64_t B = 8, L = 9, T1 = 6;
    float annot[8 * 9 * 6];
    int32_t tk[8 * 6];
    attn_rng rng;
    attn_rng_init(&rng, 5);
    test_fill_normal(annot, B * L * 6, &rng);
    fill_tokens(tk, B, T1, ATTN_CAPTION_VOCAB, &rng);
    double loss[3], reward[3], base[3];
    float bl_after[3];
    for (int r = 0; r < 3; r++) {
        attn_ctx_reset(ctx);
        attn_ctx_set_rng(ctx, 42, r == 2 ? 1000 : 0); /* runs 0 and 1 replay, run 2 draws anew */
        if (r == 1) attn_f32(m.baseline)[0] = 0.f;
        attn_tensor *a = attn_tensor_from(ctx, ATTN_F32, 3, (int64_t[]){B, L, 6}, annot);
        attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T1}, tk);
        attn_caption_loss_out lo;
        CHECK_OK(attn_caption_loss(ctx, &m, a, t, NULL, &lo));
        if (!lo.loss) goto out;
        loss[r] = attn_f32(lo.loss)[0];
        reward[r] = lo.reward;
        base[r] = lo.baseline;
        bl_after[r] = attn_f32(m.baseline)[0];
    }
    CHECK(loss[0] == loss[1] && reward[0] == reward[1], "same stream, different loss %g vs %g", loss[0], loss[1]);
    CHECK(reward[0] < 0.0, "R_b is a log-likelihood: %g", reward[0]);
    CHECK(base[0] == reward[0], "the first batch starts the baseline at its mean reward (%g vs %g)", base[0], reward[0]);
    const double want = 0.9 * base[2] + 0.1 * reward[2];
    CHECK(fabs(bl_after[2] - want) <= 1e-4 * fabs(want), "baseline %g, expected 0.9 b + 0.1 R = %g",
          (double)bl_after[2], want);
    CHECK(base[2] == (double)bl_after[1], "run 2 used the baseline left by run 1 (%g vs %g)", base[2], (double)bl_after[1]);
out:
    attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

/* Row b's reward R_b = (1/n_b) sum_t log p(y_bt): the mean log-likelihood of
 * its target tokens, from the logits [B, T, V] of the loss (double). */
static double row_reward(const float *logits, const int32_t *tk, int64_t b, int64_t T1, int64_t V) {
    const int64_t T = T1 - 1;
    double r = 0.0;
    int64_t n = 0;
    for (int64_t t = 0; t < T; t++) {
        const int32_t y = tk[b * T1 + t + 1];
        if (y == ATTN_CAPTION_PAD_ID) continue;
        const float *row = logits + (b * T + t) * V;
        double mx = row[0], z = 0.0;
        for (int64_t v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
        for (int64_t v = 0; v < V; v++) z += exp((double)row[v] - mx);
        r += (double)row[y] - mx - log(z);
        n++;
    }
    return n ? r / (double)n : 0.0;
}

static void test_reward_units(void) {
    TEST_BEGIN("caption/hard: the reward and the moving baseline are both per-word log-likelihoods");
    attn_params *ps = NULL;
    attn_caption m;
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    if (!ctx || tiny_model(ATTN_CAPTION_HARD, &ps, &m, 4)) goto out;
    m.cfg.mix = 0.f; /* every row draws: the reward is the mean over all rows */
    const int64_t B = 6, L = 9, T1 = 7, V = ATTN_CAPTION_VOCAB;
    float annot[6 * 9 * 6];
    int32_t tk[6 * 7];
    attn_rng rng;
    attn_rng_init(&rng, 8);
    test_fill_normal(annot, B * L * 6, &rng);
    fill_tokens(tk, B, T1, V, &rng); /* rows of 1 to 5 targets: the sums differ, the means do not scale */
    attn_f32(m.baseline)[0] = -2.0f;
    attn_ctx_reset(ctx);
    attn_ctx_set_rng(ctx, 9, 0);
    attn_tensor *a = attn_tensor_from(ctx, ATTN_F32, 3, (int64_t[]){B, L, 6}, annot);
    attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T1}, tk);
    attn_caption_loss_out lo;
    CHECK_OK(attn_caption_loss(ctx, &m, a, t, NULL, &lo));
    if (!lo.loss) goto out;
    double want = 0.0;
    for (int64_t b = 0; b < B; b++) want += row_reward(attn_f32(lo.logits), tk, b, T1, V);
    want /= (double)B;
    CHECK(fabs(lo.reward - want) <= 1e-5 * (1.0 + fabs(want)), "reward %g, mean per-word log-likelihood %g",
          lo.reward, want);
    const double bl = 0.9 * -2.0 + 0.1 * want;
    CHECK(fabs(attn_f32(m.baseline)[0] - bl) <= 1e-5 * (1.0 + fabs(bl)),
          "baseline %g after the batch, expected 0.9 (-2) + 0.1 R = %g", (double)attn_f32(m.baseline)[0], bl);
out:
    attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

/* log p(y_bt) of row b's step t (0 for a PAD target). */
static double step_logp(const float *logits, const int32_t *tk, int64_t b, int64_t t, int64_t T1, int64_t V) {
    const int32_t y = tk[b * T1 + t + 1];
    if (y == ATTN_CAPTION_PAD_ID) return 0.0;
    const float *row = logits + (b * (T1 - 1) + t) * V;
    double mx = row[0], z = 0.0;
    for (int64_t v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
    for (int64_t v = 0; v < V; v++) z += exp((double)row[v] - mx);
    return (double)row[y] - mx - log(z);
}

/* samples K = 3 with fixed draws: the surrogate's value against
 * CE - (lambda_r / N) sum_{b sampled, t valid} (G_bt - bl_bt) log(alpha_{b,t,s_bt} + 1e-10),
 * G_bt = R_b (rtg 0) or the per-word return from t (rtg 1), bl_bt the mean G of the group's other
 * sampled rows at t, or the moving baseline (times the share of tokens from t on with rtg 1). */
static void leave_one_out_case(int rtg) {
    attn_params *ps = NULL;
    attn_caption m;
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    if (!ctx || tiny_model(ATTN_CAPTION_HARD, &ps, &m, 5)) goto out;
    m.cfg.samples = 3;
    m.cfg.reward_to_go = rtg;
    m.cfg.lambda = 0.f;
    m.cfg.entropy = 0.f;
    m.cfg.reinforce = 0.7f;
    /* rows 0-2: one caption, three draws; rows 3-5: row 4 expected; rows 6-7: a short group whose
     * only sampled row (6) falls back on the moving baseline */
    const int64_t B = 8, L = 9, T1 = 6, V = ATTN_CAPTION_VOCAB, T = T1 - 1;
    float annot[8 * 9 * 6];
    int32_t tk[8 * 6], samples[8 * 5];
    const uint8_t expected[8] = {0, 0, 0, 0, 1, 0, 0, 1};
    attn_rng rng;
    attn_rng_init(&rng, 12);
    test_fill_normal(annot, B * L * 6, &rng);
    for (int64_t b = 1; b < 3; b++) memcpy(annot + b * L * 6, annot, (size_t)(L * 6) * sizeof *annot);
    fill_tokens(tk, B, T1, V, &rng);
    for (int64_t b = 1; b < 3; b++) memcpy(tk + b * T1, tk, (size_t)T1 * sizeof *tk);
    for (int64_t i = 0; i < B * T; i++) samples[i] = (int32_t)attn_rng_next_below(&rng, (uint32_t)L);
    attn_f32(m.baseline)[0] = -1.25f;
    const attn_caption_draws d = {samples, expected, 0};
    attn_ctx_reset(ctx);
    attn_tensor *a = attn_tensor_from(ctx, ATTN_F32, 3, (int64_t[]){B, L, 6}, annot);
    attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T1}, tk);
    attn_caption_loss_out lo;
    CHECK_OK(attn_caption_loss(ctx, &m, a, t, &d, &lo));
    if (!lo.loss) goto out;
    double G[8][5], share[8][5];
    for (int64_t b = 0; b < B; b++) {
        int64_t n = 0;
        for (int64_t tt = 0; tt < T; tt++) n += tk[b * T1 + tt + 1] != ATTN_CAPTION_PAD_ID;
        const double R = row_reward(attn_f32(lo.logits), tk, b, T1, V);
        for (int64_t tt = 0; tt < T; tt++) {
            double ret = 0.0;
            int64_t left = 0;
            for (int64_t u = tt; u < T; u++) {
                ret += step_logp(attn_f32(lo.logits), tk, b, u, T1, V);
                left += tk[b * T1 + u + 1] != ATTN_CAPTION_PAD_ID;
            }
            G[b][tt] = rtg ? ret / (double)n : R;
            share[b][tt] = rtg ? (double)left / (double)n : 1.0;
        }
    }
    double rf = 0.0;
    for (int64_t b = 0; b < B; b++) {
        if (expected[b]) continue;
        for (int64_t tt = 0; tt < T; tt++) {
            if (tk[b * T1 + tt + 1] == ATTN_CAPTION_PAD_ID) continue;
            double bl;
            if (b < 3) bl = (G[0][tt] + G[1][tt] + G[2][tt] - G[b][tt]) / 2.0;
            else if (b == 3 || b == 5) bl = G[b == 3 ? 5 : 3][tt];
            else bl = -1.25 * share[b][tt];
            rf += (G[b][tt] - bl) * log((double)attn_f32(lo.alphas)[(b * T + tt) * L + samples[b * T + tt]] + 1e-10);
        }
    }
    const double want = lo.ce - 0.7 * rf / (double)lo.tokens;
    const double got = attn_f32(lo.loss)[0];
    CHECK(fabs(got - want) <= 1e-5 * (1.0 + fabs(want)), "reward_to_go %d: loss %.9g, CE - REINFORCE %.9g", rtg, got,
          want);
    CHECK(fabs(G[0][0] - G[1][0]) > 1e-6 || fabs(G[1][0] - G[2][0]) > 1e-6,
          "the draws should give the copies different rewards");
    CHECK(attn_f32(m.baseline)[0] == -1.25f, "given draws leave the moving baseline alone");
out:
    attn_ctx_free(ctx);
    attn_params_free(ps);
}

static void test_leave_one_out(void) {
    TEST_BEGIN("caption/hard: samples K: leave-one-out baselines, per caption and per step (reward-to-go)");
    leave_one_out_case(0);
    leave_one_out_case(1);
    TEST_END();
}

static void test_greedy(void) {
    for (int mode = 0; mode < ATTN_CAPTION_MODE_COUNT; mode++) {
        char tname[96];
        snprintf(tname, sizeof tname, "caption/greedy decoding (%s)", attn_caption_mode_name((attn_caption_mode)mode));
        TEST_BEGIN(tname);
        attn_params *ps = NULL;
        attn_caption m;
        attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 16);
        const int64_t B = 3, L = 7, ML = 6;
        float annot[3 * 7 * 6], alphas[3 * 6 * 7], betas[3 * 6];
        int32_t ids[3 * 6];
        attn_rng rng;
        attn_rng_init(&rng, 9);
        test_fill_normal(annot, B * L * 6, &rng);
        if (!ctx || tiny_model((attn_caption_mode)mode, &ps, &m, 11 + (uint64_t)mode)) goto out;
        attn_tensor *a = attn_tensor_from(ctx, ATTN_F32, 3, (int64_t[]){B, L, 6}, annot);
        CHECK_OK(attn_caption_greedy(ctx, &m, a, ML, ids, alphas, betas));
        for (int64_t b = 0; b < B; b++) {
            int ended = 0;
            for (int64_t t = 0; t < ML; t++) {
                const int32_t y = ids[b * ML + t];
                CHECK(y >= 0 && y < ATTN_CAPTION_VOCAB, "id %d", y);
                if (ended) {
                    CHECK(y == ATTN_CAPTION_PAD_ID, "row %lld step %lld: %d after EOS", (long long)b, (long long)t, y);
                    continue;
                }
                double s = 0.0;
                for (int64_t i = 0; i < L; i++) s += alphas[(b * ML + t) * L + i];
                CHECK(fabs(s - 1.0) < 1e-5, "row %lld step %lld: attention sums to %g", (long long)b, (long long)t, s);
                CHECK(betas[b * ML + t] > 0.f && betas[b * ML + t] <= 1.f, "beta %g", (double)betas[b * ML + t]);
                ended = y == ATTN_CAPTION_EOS_ID || y == ATTN_CAPTION_PAD_ID;
            }
        }
        CHECK(attn_ctx_grad_enabled(ctx) == 1, "greedy must restore the gradient mode");
        CHECK_OK(attn_ctx_check_guards(ctx));
    out:
        attn_ctx_free(ctx);
        attn_params_free(ps);
        TEST_END();
    }
}

/* Teacher-forced logits [B, T, V] of tokens [B, T + 1] under the given draws
 * (NULL: soft or none), copied into out; the alphas into al (NULL: not kept). */
static int forced_logits(attn_ctx *ctx, attn_caption *m, const float *annot, int64_t B, int64_t L, const int32_t *tk,
                         int64_t T1, const attn_caption_draws *d, float *out, float *al) {
    attn_ctx_reset(ctx);
    attn_tensor *a = attn_tensor_from(ctx, ATTN_F32, 3, (int64_t[]){B, L, 6}, annot);
    attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T1}, tk);
    attn_caption_loss_out lo;
    CHECK_OK(attn_caption_loss(ctx, m, a, t, d, &lo));
    if (!lo.logits || (al && !lo.alphas)) return -1;
    memcpy(out, attn_f32(lo.logits), (size_t)(B * (T1 - 1) * ATTN_CAPTION_VOCAB) * sizeof *out);
    if (al) memcpy(al, attn_f32(lo.alphas), (size_t)(B * (T1 - 1) * L) * sizeof *al);
    return 0;
}

/* Greedy decoding and the teacher-forced pass agree on the words when both
 * use the same context rule: every greedy word is the argmax of the forced
 * logits at its step. */
static void check_greedy_matches_forced(const int32_t *ids, const float *logits, int64_t B, int64_t ML,
                                        const char *what) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < ML; t++) {
            const float *row = logits + (b * ML + t) * ATTN_CAPTION_VOCAB;
            int32_t best = 0;
            for (int32_t v = 1; v < ATTN_CAPTION_VOCAB; v++)
                if (row[v] > row[best]) best = v;
            CHECK(best == ids[b * ML + t], "%s: row %lld step %lld: greedy %d, teacher-forced argmax %d", what,
                  (long long)b, (long long)t, ids[b * ML + t], best);
            if (ids[b * ML + t] == ATTN_CAPTION_EOS_ID) break;
        }
}

static void test_decode_argmax(void) {
    TEST_BEGIN("caption/hard decoding: argmax location vs expected context, greedy and teacher-forced agree");
    attn_params *ps = NULL, *ps_soft = NULL;
    attn_caption m, ms;
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 16);
    enum { B = 4, L = 7, ML = 6 };
    float annot[B * L * 6], le[B * ML * ATTN_CAPTION_VOCAB], la[B * ML * ATTN_CAPTION_VOCAB],
        lr[B * ML * ATTN_CAPTION_VOCAB], al[B * ML * L];
    int32_t ide[B * ML], ida[B * ML], tk[B * (ML + 1)], samples[B * ML];
    uint8_t all_expected[B], none_expected[B];
    attn_rng rng;
    attn_rng_init(&rng, 21);
    test_fill_normal(annot, B * L * 6, &rng);
    if (!ctx || tiny_model(ATTN_CAPTION_HARD, &ps, &m, 31) || tiny_model(ATTN_CAPTION_SOFT, &ps_soft, &ms, 31)) goto out;
    /* larger scores: peaked weights, so that the argmax location and the expectation differ */
    for (int64_t i = 0; i < attn_tensor_numel(m.att.v); i++) attn_f32(m.att.v)[i] *= 8.f;
    attn_tensor *a = attn_tensor_from(ctx, ATTN_F32, 3, (int64_t[]){B, L, 6}, annot);
    CHECK_OK(attn_caption_greedy_decode(ctx, &m, a, ML, ATTN_CAPTION_DECODE_EXPECTED, ide, NULL, NULL));
    int32_t ref[B * ML];
    CHECK_OK(attn_caption_greedy(ctx, &m, a, ML, ref, NULL, NULL));
    CHECK(!memcmp(ref, ide, sizeof ref), "attn_caption_greedy is the expected decoding");
    CHECK_OK(attn_caption_greedy_decode(ctx, &m, a, ML, ATTN_CAPTION_DECODE_ARGMAX, ida, NULL, NULL));
    for (int64_t i = 0; i < B; i++) {
        all_expected[i] = 1;
        none_expected[i] = 0;
    }
    /* each decoding, teacher-forced on its own words */
    for (int k = 0; k < 2; k++) {
        const int32_t *ids = k ? ida : ide;
        for (int64_t b = 0; b < B; b++) {
            tk[b * (ML + 1)] = ATTN_CAPTION_BOS_ID;
            for (int64_t t = 0; t < ML; t++) tk[b * (ML + 1) + 1 + t] = ids[b * ML + t];
        }
        memset(samples, 0, sizeof samples);
        const attn_caption_draws d = {k ? NULL : samples, k ? none_expected : all_expected, k};
        if (forced_logits(ctx, &m, annot, B, L, tk, ML + 1, &d, k ? la : le, k ? al : NULL)) goto out;
        check_greedy_matches_forced(ids, k ? la : le, B, ML, k ? "argmax" : "expected");
    }
    /* the argmax pass is a draw of the maxima: replaying them as given samples gives the same logits */
    for (int64_t i = 0; i < B * ML; i++) {
        int32_t best = 0;
        for (int32_t l = 1; l < L; l++)
            if (al[i * L + l] > al[i * L + best]) best = l;
        samples[i] = best;
    }
    const attn_caption_draws replay = {samples, none_expected, 0};
    if (forced_logits(ctx, &m, annot, B, L, tk, ML + 1, &replay, lr, NULL)) goto out;
    CHECK(!memcmp(lr, la, sizeof la), "argmax pass != the same locations given as draws");
    /* and it is not the expectation: on the argmax words, the expected context's logits differ */
    const attn_caption_draws dexp = {samples, all_expected, 0};
    if (forced_logits(ctx, &m, annot, B, L, tk, ML + 1, &dexp, le, NULL)) goto out;
    double diff = 0.0;
    for (int64_t i = 0; i < B * ML * ATTN_CAPTION_VOCAB; i++) diff = fmax(diff, fabs((double)le[i] - la[i]));
    CHECK(diff > 1e-3, "argmax and expected contexts give the same logits (max diff %g)", diff);
    /* SOFT ignores the decode rule */
    int32_t s1[B * ML], s2[B * ML];
    CHECK_OK(attn_caption_greedy_decode(ctx, &ms, a, ML, ATTN_CAPTION_DECODE_EXPECTED, s1, NULL, NULL));
    CHECK_OK(attn_caption_greedy_decode(ctx, &ms, a, ML, ATTN_CAPTION_DECODE_ARGMAX, s2, NULL, NULL));
    CHECK(!memcmp(s1, s2, sizeof s1), "soft attention's decoding depends on the decode rule");
    /* refusals */
    test_expect_fail(ctx, attn_caption_greedy_decode(ctx, &m, a, ML, (attn_caption_decode)5, ida, NULL, NULL) != ATTN_OK,
                     ATTN_ERR_INVALID_ARG, "decode 5", "a decode rule outside the enum");
    attn_ctx_reset(ctx);
    a = attn_tensor_from(ctx, ATTN_F32, 3, (int64_t[]){B, L, 6}, annot);
    attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, ML + 1}, tk);
    attn_caption_loss_out lo;
    const attn_caption_draws nos = {NULL, none_expected, 0};
    test_expect_fail(ctx, attn_caption_loss(ctx, &m, a, t, &nos, &lo) != ATTN_OK, ATTN_ERR_INVALID_ARG, "argmax",
                     "draws without samples and without argmax");
    attn_caption_decode dc;
    CHECK(attn_caption_decode_parse("argmax", &dc) == 0 && dc == ATTN_CAPTION_DECODE_ARGMAX, "parse argmax");
    CHECK(attn_caption_decode_parse("sample", &dc) == -1, "parse refuses sample");
    CHECK(!strcmp(attn_caption_decode_name(ATTN_CAPTION_DECODE_EXPECTED), "expected"), "name of expected");
out:
    attn_ctx_free(ctx);
    attn_params_free(ps);
    attn_params_free(ps_soft);
    TEST_END();
}

/* The question of docs/caption.md, "From scratch": a hard-attention row that takes the expected
 * context is trained exactly as soft attention is (the CE's gradient reaches the scores through
 * alpha), and mix 1 draws nothing. Same parameters in a SOFT and a HARD decoder (entropy 0: the
 * bonus is the only other term on expected rows): the loss and every parameter's gradient agree. */
static void test_expected_rows_are_soft(void) {
    TEST_BEGIN("caption/hard: rows with the expected context get soft attention's loss and gradient");
    attn_params *ph = NULL, *pso = NULL;
    attn_caption mh, ms;
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    enum { B = 3, L = 5, T1 = 5 };
    float annot[B * L * 6];
    int32_t tk[B * T1] = {1, 3, 4, 5, 2, 1, 6, 7, 2, 0, 1, 8, 2, 0, 0};
    int32_t samples[B * (T1 - 1)] = {0};
    uint8_t all_expected[B] = {1, 1, 1};
    float *grads[2] = {NULL, NULL};
    attn_rng rng;
    attn_rng_init(&rng, 5);
    test_fill_normal(annot, B * L * 6, &rng);
    if (!ctx || tiny_model(ATTN_CAPTION_HARD, &ph, &mh, 41) || tiny_model(ATTN_CAPTION_SOFT, &pso, &ms, 41)) goto out;
    mh.cfg.entropy = 0.f;
    double loss[2][2];
    int64_t total = 0;
    for (int i = 0; i < attn_params_count(pso); i++) total += attn_tensor_numel(attn_params_at(pso, i));
    for (int k = 0; k < 2; k++) { /* k 0: soft; k 1: hard, all rows expected (given draws, then mix 1 drawn) */
        grads[k] = calloc((size_t)total, sizeof(float));
        if (!grads[k]) goto out;
    }
    for (int run = 0; run < 3; run++) {
        attn_caption *m = run ? &mh : &ms;
        attn_params *ps = run ? ph : pso;
        attn_ctx_reset(ctx);
        attn_ctx_set_rng(ctx, 77, 0);
        attn_tensor *a = attn_tensor_from(ctx, ATTN_F32, 3, (int64_t[]){B, L, 6}, annot);
        attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T1}, tk);
        const attn_caption_draws d = {samples, all_expected, 0};
        if (run == 2) mh.cfg.mix = 1.f; /* the drawn path: every coin says "expected" */
        attn_caption_loss_out lo;
        CHECK_OK(attn_caption_loss(ctx, m, a, t, run == 1 ? &d : NULL, &lo));
        if (!lo.loss) goto out;
        attn_params_zero_grad(ps);
        CHECK_OK(attn_backward(ctx, lo.loss));
        if (run == 2) CHECK(lo.reward == 0.0, "mix 1 sampled a row (mean reward %g)", lo.reward);
        const int k = run ? 1 : 0;
        loss[k][run == 2] = attn_f32(lo.loss)[0];
        int64_t o = 0;
        for (int i = 0; i < attn_params_count(pso); i++) { /* soft's parameters, in hard's order (baseline last) */
            attn_tensor *p = attn_params_at(ps, i);
            const int64_t n = attn_tensor_numel(p);
            for (int64_t j = 0; j < n; j++) {
                const float g = p->grad ? p->grad[j] : 0.f;
                if (run == 0) grads[0][o + j] = g;
                else if (fabsf(g - grads[0][o + j]) > 1e-6f + 1e-5f * fabsf(grads[0][o + j])) {
                    CHECK(0, "%s: grad %s[%lld] %g, soft %g", run == 1 ? "given draws" : "mix 1", p->name, (long long)j,
                          (double)g, (double)grads[0][o + j]);
                    goto out;
                }
            }
            o += n;
        }
        CHECK(!strcmp(attn_params_at(pso, 0)->name, attn_params_at(ph, 0)->name), "the same parameter order");
    }
    CHECK(fabs(loss[1][0] - loss[0][0]) < 1e-6 && fabs(loss[1][1] - loss[0][0]) < 1e-6,
          "loss: hard %g / %g, soft %g", loss[1][0], loss[1][1], loss[0][0]);
    /* and not trivially: a sampled row changes the gradient of the score */
    {
        attn_ctx_reset(ctx);
        attn_tensor *a = attn_tensor_from(ctx, ATTN_F32, 3, (int64_t[]){B, L, 6}, annot);
        attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T1}, tk);
        uint8_t one_sampled[B] = {0, 1, 1};
        const attn_caption_draws d = {samples, one_sampled, 0};
        attn_caption_loss_out lo;
        mh.cfg.reinforce = 0.f;
        CHECK_OK(attn_caption_loss(ctx, &mh, a, t, &d, &lo));
        if (!lo.loss) goto out;
        attn_params_zero_grad(ph);
        CHECK_OK(attn_backward(ctx, lo.loss));
        double diff = 0.0;
        int64_t o = 0;
        for (int i = 0; i < attn_params_count(pso); i++) {
            attn_tensor *p = attn_params_at(ph, i);
            const int64_t n = attn_tensor_numel(p);
            if (p == mh.att.v && p->grad)
                for (int64_t j = 0; j < n; j++) diff = fmax(diff, fabs((double)p->grad[j] - grads[0][o + j]));
            o += n;
        }
        CHECK(diff > 1e-5, "a sampled row left the score's gradient as soft's (max diff %g)", diff);
    }
    CHECK_OK(attn_ctx_check_guards(ctx));
out:
    free(grads[0]);
    free(grads[1]);
    attn_ctx_free(ctx);
    attn_params_free(ph);
    attn_params_free(pso);
    TEST_END();
}

static void test_errors(void) {
    TEST_BEGIN("caption/errors: shapes, tokens, draws, configurations");
    attn_params *ps = NULL;
    attn_caption m;
    attn_ctx *ctx = test_ctx_new((size_t)16 << 20, 1, 0);
    if (!ctx || tiny_model(ATTN_CAPTION_HARD, &ps, &m, 1)) goto out;
    float annot[2 * 3 * 6] = {0};
    int32_t tk[2 * 3] = {1, 3, 2, 1, 2, 0};
    attn_caption_loss_out lo;
    attn_tensor *a = attn_tensor_from(ctx, ATTN_F32, 3, (int64_t[]){2, 3, 5}, annot);
    attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){2, 3}, tk);
    test_expect_fail(ctx, attn_caption_loss(ctx, &m, a, t, NULL, &lo) != ATTN_OK, ATTN_ERR_SHAPE, "[B, L, 6]",
                     "annotations of D = 5 for a model of 6");
    a = attn_tensor_from(ctx, ATTN_F32, 3, (int64_t[]){2, 3, 6}, annot);
    tk[4] = 99;
    t = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){2, 3}, tk);
    test_expect_fail(ctx, attn_caption_loss(ctx, &m, a, t, NULL, &lo) != ATTN_OK, ATTN_ERR_INVALID_ARG, "token 99",
                     "a token outside the vocabulary");
    tk[4] = 2;
    a = attn_tensor_from(ctx, ATTN_F32, 3, (int64_t[]){2, 3, 6}, annot);
    t = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){2, 3}, tk);
    int32_t samples[4] = {0, 3, 1, 1};
    uint8_t expected[2] = {0, 0};
    const attn_caption_draws d = {samples, expected, 0};
    test_expect_fail(ctx, attn_caption_loss(ctx, &m, a, t, &d, &lo) != ATTN_OK, ATTN_ERR_INVALID_ARG, "outside [0, 3)",
                     "a draw outside the locations");
    attn_caption m2;
    attn_caption_config bad = m.cfg;
    bad.mix = 1.5f;
    CHECK(attn_caption_init(&m2, ps, &bad, NULL) == ATTN_ERR_INVALID_ARG, "mix 1.5 accepted");
    bad = m.cfg;
    bad.lambda = NAN;
    CHECK(attn_caption_init(&m2, ps, &bad, NULL) == ATTN_ERR_INVALID_ARG, "lambda NaN accepted");
    bad = m.cfg;
    bad.mode = (attn_caption_mode)7;
    CHECK(attn_caption_init(&m2, ps, &bad, NULL) == ATTN_ERR_INVALID_ARG, "mode 7 accepted");
    int32_t ids[4];
    a = attn_tensor_from(ctx, ATTN_F32, 3, (int64_t[]){2, 3, 6}, annot);
    test_expect_fail(ctx, attn_caption_greedy(ctx, &m, a, 0, ids, NULL, NULL) != ATTN_OK, ATTN_ERR_INVALID_ARG,
                     "max_len", "max_len 0");
    attn_caption_mode md;
    CHECK(attn_caption_mode_parse("soft", &md) == 0 && md == ATTN_CAPTION_SOFT, "parse soft");
    CHECK(attn_caption_mode_parse("Soft", &md) == -1, "parse is exact");
out:
    attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

/* ---- scenes ----------------------------------------------------------------------------- */

/* A fake Fashion-MNIST of n images: image i is filled with (i * 7) % 251
 * and carries label i % 10. */
static int fake_idx(int64_t n, attn_idx *im, attn_idx *lb) {
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
        memset(im->data + i * 784, (int)((i * 7) % 251), 784);
        lb->data[i] = (uint8_t)(i % 10);
    }
    return 0;
}

static void test_scenes(void) {
    TEST_BEGIN("caption/scenes: deterministic, held-out pairs, splits, canvases, grammar");
    attn_idx im, lb;
    attn_scenes s1, s2, s3, sv, st;
    memset(&s1, 0, sizeof s1);
    memset(&s2, 0, sizeof s2);
    memset(&s3, 0, sizeof s3);
    memset(&sv, 0, sizeof sv);
    memset(&st, 0, sizeof st);
    CHECK(fake_idx(400, &im, &lb) == 0, "out of memory");
    CHECK_OK(attn_scenes_make(&im, &lb, ATTN_SCENES_TRAIN, 2000, 7, &s1));
    CHECK_OK(attn_scenes_make(&im, &lb, ATTN_SCENES_TRAIN, 2000, 7, &s2));
    CHECK_OK(attn_scenes_make(&im, &lb, ATTN_SCENES_TRAIN, 2000, 8, &s3));
    CHECK_OK(attn_scenes_make(&im, &lb, ATTN_SCENES_VALID, 2000, 7, &sv));
    CHECK_OK(attn_scenes_make(&im, &lb, ATTN_SCENES_TEST, 2000, 7, &st));
    if (test__failed_checks) goto out;
    CHECK(!memcmp(s1.scenes, s2.scenes, 2000 * sizeof *s1.scenes) && !memcmp(s1.pixels, s2.pixels, 2000 * 3136),
          "same seed, different scenes");
    CHECK(memcmp(s1.scenes, s3.scenes, 2000 * sizeof *s1.scenes) != 0, "another seed, same scenes");
    int64_t held_train = 0, novel_test = 0, items[5] = {0}, pairs_seen[10][4] = {{0}};
    for (int64_t i = 0; i < 2000; i++) {
        held_train += attn_scene_is_novel(&s1.scenes[i]) + attn_scene_is_novel(&sv.scenes[i]);
        novel_test += attn_scene_is_novel(&st.scenes[i]);
        int k = 0;
        for (int c = 0; c < 4; c++) {
            const attn_scene *e = &s1.scenes[i];
            if (e->cls[c] < 0) continue;
            k++;
            pairs_seen[e->cls[c]][c]++;
            /* the item comes from the train range and shows its image */
            CHECK(e->src[c] >= 0 && e->src[c] < 360 && lb.data[e->src[c]] == e->cls[c], "train item %d", e->src[c]);
            const uint8_t px = s1.pixels[i * 3136 + (c / 2) * 28 * 56 + (c % 2) * 28 + 13 * 56 + 13];
            CHECK(px == (uint8_t)((e->src[c] * 7) % 251), "scene %lld cell %d: pixel %d", (long long)i, c, px);
            const attn_scene *v = &sv.scenes[i];
            if (v->cls[c] >= 0) CHECK(v->src[c] >= 360, "valid item %d from the train range", v->src[c]);
        }
        items[k]++;
        /* empty cells are black */
        for (int c = 0; c < 4; c++)
            if (s1.scenes[i].cls[c] < 0)
                CHECK(s1.pixels[i * 3136 + (c / 2) * 28 * 56 + (c % 2) * 28 + 5 * 56 + 5] == 0, "empty cell not black");
        /* the caption parses back to the scene */
        int32_t ids[ATTN_SCENE_MAX_WORDS];
        int cell_of[ATTN_SCENE_MAX_WORDS];
        const int n = attn_scene_caption(&st.scenes[i], ids, cell_of);
        char text[256];
        attn_caption_text(ids, n, text, sizeof text);
        int8_t back[4];
        CHECK(attn_caption_parse(text, back) == 0 && !memcmp(back, st.scenes[i].cls, 4), "round trip of '%s'", text);
        for (int w = 0; w < n; w++)
            if (cell_of[w] >= 0)
                CHECK(ids[w] == ATTN_CAPTION_CLASS0 + st.scenes[i].cls[cell_of[w]], "word %d of '%s'", w, text);
    }
    CHECK(held_train == 0, "%lld train/valid scenes hold a held-out pair", (long long)held_train);
    CHECK(novel_test > 400 && novel_test < 1000, "%lld of 2000 test scenes are novel (about 1/3 expected)",
          (long long)novel_test);
    for (int k = 1; k <= 4; k++) CHECK(items[k] > 400 && items[k] < 600, "%lld scenes of %d items", (long long)items[k], k);
    int unseen = 0;
    for (int k = 0; k < 10; k++)
        for (int c = 0; c < 4; c++) unseen += pairs_seen[k][c] == 0;
    CHECK(unseen == 6, "%d (class, cell) pairs never in training, expected the 6 held out", unseen);
    /* the grammar */
    attn_scene e = {{8, -1, -1, 7}, {0, -1, -1, 1}};
    int32_t ids[ATTN_SCENE_MAX_WORDS];
    char text[256];
    const int n = attn_scene_caption(&e, ids, NULL);
    attn_caption_text(ids, n, text, sizeof text);
    CHECK(!strcmp(text, "a bag top left and a sneaker bottom right"), "caption '%s'", text);
    int8_t cls[4];
    CHECK(attn_caption_parse("a sneaker bottom right and a bag top left", cls) == -1, "order not enforced");
    CHECK(attn_caption_parse("a bag top middle", cls) == -1, "unknown word accepted");
    CHECK(attn_caption_parse("", cls) == -1, "empty caption accepted");
    char small[8];
    CHECK(attn_caption_text(ids, n, small, sizeof small) == strlen(text) && strlen(small) == 7, "cut text");
    /* errors */
    attn_scenes bad;
    CHECK(attn_scenes_make(&im, &lb, ATTN_SCENES_TRAIN, 0, 1, &bad) == ATTN_ERR_INVALID_ARG, "n 0 accepted");
    im.dims[1] = 27;
    CHECK(attn_scenes_make(&im, &lb, ATTN_SCENES_TRAIN, 5, 1, &bad) == ATTN_ERR_SHAPE, "27x28 images accepted");
    im.dims[1] = 28;
    lb.data[3] = 12;
    CHECK(attn_scenes_make(&im, &lb, ATTN_SCENES_TRAIN, 5, 1, &bad) == ATTN_ERR_FORMAT, "label 12 accepted");
out:
    attn_scenes_free(&s1);
    attn_scenes_free(&s2);
    attn_scenes_free(&s3);
    attn_scenes_free(&sv);
    attn_scenes_free(&st);
    attn_idx_free(&im);
    attn_idx_free(&lb);
    TEST_END();
}

static void test_bleu(void) {
    TEST_BEGIN("caption/BLEU-4 and exact match of caption texts");
    attn_eval ev;
    attn_eval_init(&ev);
    CHECK_OK(attn_eval_add(&ev, "a bag top left and a sneaker bottom right", "a bag top left and a sneaker bottom right"));
    attn_bleu_score s;
    CHECK_OK(attn_eval_bleu(&ev, &s));
    CHECK(fabs(s.score - 100.0) < 1e-9, "identical captions: BLEU %g", s.score);
    CHECK_OK(attn_eval_add(&ev, "a coat top left and a sneaker bottom right", "a bag top left and a sneaker bottom right"));
    CHECK_OK(attn_eval_bleu(&ev, &s));
    CHECK(s.score < 100.0 && s.score > 50.0, "one wrong class of two pairs: BLEU %g", s.score);
    CHECK(fabs(attn_eval_exact_match(&ev) - 0.5) < 1e-12, "exact match %g", attn_eval_exact_match(&ev));
    TEST_END();
}

void suite_caption(void) {
    test_parity();
    fd_case(ATTN_CAPTION_SOFT, 1.f);
    fd_case(ATTN_CAPTION_NONE, 1.f);
    fd_case(ATTN_CAPTION_HARD, 0.f);
    test_drawn();
    test_reward_units();
    test_leave_one_out();
    test_greedy();
    test_decode_argmax();
    test_expected_rows_are_soft();
    test_errors();
    test_scenes();
    test_bleu();
}
