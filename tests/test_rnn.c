/* test_rnn.c: the recurrent layers of include/attn/rnn.h.
 *
 *   - parity with torch.nn.GRU / torch.nn.LSTM (tests/fixtures/rnn_gru.atfx,
 *     rnn_lstm.atfx from tools/make_rnn_fixtures.py): the same weights loaded
 *     by their torch names; 1 and 2 layers, uni- and bidirectional, variable
 *     lengths through pack_padded_sequence, given and zero initial states, no
 *     bias. Outputs, h_n (c_n), and the gradients of every parameter, x, h0
 *     (c0) of sum(out * R) + sum(h_n * R2) [+ sum(c_n * R3)]; fast and
 *     reference kernels;
 *   - central finite differences of the same loss through the layer API on a
 *     2-step, 2-layer, bidirectional batch with lengths [2, 1];
 *   - the single-step API against the sequence forward (states and
 *     gradients);
 *   - the fused cells' fast kernels against their references at ragged
 *     sizes (B 65, H 33) with frozen rows;
 *   - attn_gru_cell_at / attn_lstm_cell_at against the cells on a view of
 *     the step's block, and their errors;
 *   - attn__gru_cell_lookup / attn__lstm_cell_lookup (gate inputs read from
 *     table rows picked by ids, alone or plus a dense addend) against the
 *     cells on the embedded rows (plus the addend through add), bitwise,
 *     with repeated ids and a frozen row, and their errors;
 *   - B = 1 and T = 1 (where the layout changes become reshapes) against
 *     the full batch;
 *   - attn__rnn_forward_ids (layer 0 projects the embedding table, then
 *     looks the ids up) against attn_rnn_forward on the embedded ids:
 *     outputs, h_n (c_n) and the gradients of the table and every parameter;
 *   - the length-0 rule, dropout between layers only, torch's names and
 *     initial ranges, and the error paths.
 *
 * Tolerances (|a - b| <= atol + rtol |ref|), each about 10x the largest
 * error measured with the tolerance set to 0:
 *   PARITY_*  the fixtures are float64 results rounded once to float32 of the
 *             same float32 inputs, attn runs in float32 (GEMM sums, exp and
 *             tanh within 2e-7 absolute, see rnn_cell.c) over T <= 6 steps
 *             and 2 layers. Measured: outputs within 1.8e-7, gradients
 *             (sums over B*T terms, |g| up to ~4) within 9e-7. Outputs get
 *             2e-6 + 2e-5 |ref|, gradients 1e-5 + 5e-5 |ref|. A wrong gate
 *             order, a mask at the wrong step or a missing term moves values
 *             by 1e-2 or more.
 *   FD_*      central differences of the float32 forward with h = 1e-2: the
 *             truncation h^2/6 |f'''| dominates; measured within 2e-5 for
 *             gradients of 3e-3 .. 0.2. 1e-4 + 5e-3 |fd|.
 *   STEP_*    step API vs sequence forward: the same math with the input
 *             projection in different GEMM shapes; measured within 2.4e-7
 *             (at |g| 2.4): 1e-6 + 1e-5 |ref|. Also the ids path against
 *             the embedded input (the same sums grouped by token: measured
 *             outputs and h_n equal, gradients within about 1e-7).
 *   REF_*     fast vs reference cell kernels at B 65, H 33: the op table's
 *             (1e-5, 1e-4); measured within 9e-7.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/nn/rnn_internal.h"       /* attn__rnn_forward_ids */
#include "../src/ops/rnn_cell_internal.h" /* attn__gru_cell_lookup, attn__lstm_cell_lookup */
#include "fixture.h"
#include "test.h"

#define PARITY_ATOL 2e-6f
#define PARITY_RTOL 2e-5f
#define PARITY_GATOL 1e-5f
#define PARITY_GRTOL 5e-5f
#define FD_STEP 1e-2f
#define FD_ATOL 1e-4
#define FD_RTOL 5e-3
#define STEP_ATOL 1e-6f
#define STEP_RTOL 1e-5f
#define REF_ATOL 1e-5f
#define REF_RTOL 1e-4f
/* Every context: 64 MiB of arena, one thread, 16 guard bytes. */
#define ARENA_BYTES ((size_t)64 << 20)
#define GUARD_BYTES 16

static void fill_uniform(float *x, int64_t n, float lo, float hi, attn_rng *rng) {
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * attn_rng_next_uniform(rng);
}

/* ==== parity with PyTorch =================================================== */

static const atfx_tensor *need(const atfx_file *fx, const char *name, attn_dtype dt,
                               int64_t numel) {
    return test_fx_need(fx, name, dt, numel, "tools/make_rnn_fixtures.py");
}

/* Compares n floats with the fixture tensor `name` (numel n). */
static void cmp_fx(const char *tag, const char *what, const float *got, const atfx_file *fx,
                   const char *name, int64_t n, float atol, float rtol) {
    test_fx_close(tag, what, got, fx, name, n, atol, rtol, "tools/make_rnn_fixtures.py");
}

static void parity_case(const atfx_file *fx, int lstm, int k, int use_ref) {
    char label[160], tname[320], tag[256], nm[256];
    atfx_text(atfx_findf(fx, "c%d.label", k), label, sizeof label);
    snprintf(tname, sizeof tname, "rnn/%s parity case %d (%s) [%s]", lstm ? "lstm" : "gru", k,
             label, use_ref ? "ref" : "fast");
    snprintf(tag, sizeof tag, "%s case %d [%s]", lstm ? "lstm" : "gru", k,
             use_ref ? "ref" : "fast");
    TEST_BEGIN(tname);
    attn_params *ps = NULL;
    attn_ctx *ctx = NULL;
    snprintf(nm, sizeof nm, "c%d.cfg", k);
    const atfx_tensor *ct = need(fx, nm, ATTN_I32, 6);
    if (!ct) goto out;
    const int32_t *cv = atfx_i32(ct);
    attn_rnn_config cfg = {.cell = lstm ? ATTN_RNN_LSTM : ATTN_RNN_GRU,
                           .input_size = cv[0],
                           .hidden_size = cv[1],
                           .num_layers = cv[2],
                           .bidirectional = cv[3],
                           .no_bias = cv[4]};
    const int has_len = cv[5], D = cfg.bidirectional ? 2 : 1, L = cfg.num_layers;
    attn_rnn rnn;
    CHECK_OK(attn_params_new(&ps));
    if (!ps) goto out;
    CHECK_OK(attn_rnn_init(&rnn, ps, "rnn.", &cfg, NULL));
    if (test__failed_checks) goto out;

    /* torch's named_parameters(), in order, into the store */
    if (test_load_torch_params(fx, k, ps, 4, tag) < 0) goto out;

    ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    if (!ctx) goto out;
    attn_ctx_set_use_ref(ctx, use_ref);
    snprintf(nm, sizeof nm, "c%d.x", k);
    const atfx_tensor *xt = need(fx, nm, ATTN_F32, -1);
    if (!xt || xt->ndim != 3) goto out;
    const int64_t B = xt->shape[0], T = xt->shape[1], H = cfg.hidden_size;
    const int64_t sstate[3] = {(int64_t)L * D, B, H};
    attn_tensor *x = test_leaf(ctx, 3, xt->shape, atfx_f32(xt)), *lengths = NULL, *h0 = NULL,
                *c0 = NULL;
    if (has_len) {
        snprintf(nm, sizeof nm, "c%d.lengths", k);
        const atfx_tensor *lt = need(fx, nm, ATTN_I32, B);
        if (!lt) goto out;
        lengths = attn_tensor_from(ctx, ATTN_I32, 1, &B, lt->data);
    }
    const atfx_tensor *h0t = atfx_findf(fx, "c%d.h0", k), *c0t = atfx_findf(fx, "c%d.c0", k);
    if (h0t) h0 = test_leaf(ctx, 3, sstate, atfx_f32(h0t));
    if (c0t) c0 = test_leaf(ctx, 3, sstate, atfx_f32(c0t));
    attn_tensor *hn = NULL, *cn = NULL;
    attn_tensor *out = attn_rnn_forward(ctx, &rnn, x, lengths, h0, c0, &hn, lstm ? &cn : NULL);
    CHECK(out && hn && (!lstm || cn), "%s: forward failed: %s", tag, attn_ctx_error(ctx));
    if (!out || !hn || (lstm && !cn)) goto out;
    CHECK(out->ndim == 3 && out->shape[0] == B && out->shape[1] == T && out->shape[2] == D * H,
          "%s: output shape %s", tag, attn_shape_str(out, nm, sizeof nm));
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s: forward: %s", tag, attn_last_error());

    snprintf(nm, sizeof nm, "c%d.out", k);
    cmp_fx(tag, "(a) output vs torch", attn_f32(out), fx, nm, B * T * D * H, PARITY_ATOL,
           PARITY_RTOL);
    snprintf(nm, sizeof nm, "c%d.h_n", k);
    cmp_fx(tag, "(a) h_n vs torch", attn_f32(hn), fx, nm, L * D * B * H, PARITY_ATOL, PARITY_RTOL);
    if (lstm) {
        snprintf(nm, sizeof nm, "c%d.c_n", k);
        cmp_fx(tag, "(a) c_n vs torch", attn_f32(cn), fx, nm, L * D * B * H, PARITY_ATOL,
               PARITY_RTOL);
    }
    if (lengths) { /* padded positions are exactly zero */
        int64_t bad = 0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = attn_i32(lengths)[b]; t < T; t++)
                for (int64_t j = 0; j < D * H; j++)
                    bad += attn_f32(out)[(b * T + t) * D * H + j] != 0.0f;
        CHECK(bad == 0, "%s: %lld output values at padded steps are not 0", tag, (long long)bad);
    }

    /* the loss and its gradients */
    const atfx_tensor *r1 =
        need(fx, (snprintf(nm, sizeof nm, "c%d.R", k), nm), ATTN_F32, B * T * D * H);
    const atfx_tensor *r2 =
        need(fx, (snprintf(nm, sizeof nm, "c%d.R2", k), nm), ATTN_F32, L * D * B * H);
    const atfx_tensor *r3 =
        lstm ? need(fx, (snprintf(nm, sizeof nm, "c%d.R3", k), nm), ATTN_F32, L * D * B * H) : NULL;
    if (!r1 || !r2 || (lstm && !r3)) goto out;
    attn_tensor *loss =
        attn_add(ctx, test_dot_loss(ctx, out, atfx_f32(r1)), test_dot_loss(ctx, hn, atfx_f32(r2)));
    if (lstm) loss = attn_add(ctx, loss, test_dot_loss(ctx, cn, atfx_f32(r3)));
    attn_params_zero_grad(ps);
    CHECK(loss != NULL, "%s: loss: %s", tag, attn_ctx_error(ctx));
    if (!loss) goto out;
    CHECK_OK(attn_backward(ctx, loss));
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s: backward: %s", tag, attn_last_error());
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        char what[128], fxname[192];
        snprintf(what, sizeof what, "(b) gradient of %s vs torch", p->name);
        snprintf(fxname, sizeof fxname, "c%d.grad.param.%s", k, p->name + 4);
        cmp_fx(tag, what, p->grad, fx, fxname, attn_tensor_numel(p), PARITY_GATOL, PARITY_GRTOL);
    }
    snprintf(nm, sizeof nm, "c%d.grad.x", k);
    cmp_fx(tag, "(b) gradient of x vs torch", x->grad, fx, nm, attn_tensor_numel(x), PARITY_GATOL,
           PARITY_GRTOL);
    if (h0) {
        snprintf(nm, sizeof nm, "c%d.grad.h0", k);
        cmp_fx(tag, "(b) gradient of h0 vs torch", h0->grad, fx, nm, attn_tensor_numel(h0),
               PARITY_GATOL, PARITY_GRTOL);
    }
    if (c0) {
        snprintf(nm, sizeof nm, "c%d.grad.c0", k);
        cmp_fx(tag, "(b) gradient of c0 vs torch", c0->grad, fx, nm, attn_tensor_numel(c0),
               PARITY_GATOL, PARITY_GRTOL);
    }
out:
    attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

static void test_parity(void) {
    for (int lstm = 0; lstm < 2; lstm++) {
        char path[512], err[256];
        snprintf(path, sizeof path, "%s/%s.atfx", test_fixture_dir(),
                 lstm ? "rnn_lstm" : "rnn_gru");
        atfx_file *fx = NULL;
        if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
            TEST_BEGIN(lstm ? "rnn/lstm fixture" : "rnn/gru fixture");
            CHECK(0, "cannot load %s: %s (run tools/make_rnn_fixtures.py)", path, err);
            TEST_END();
            continue;
        }
        const atfx_tensor *nc = atfx_find(fx, "n_cases");
        int n = nc && nc->dtype == ATTN_I32 && nc->numel == 1 ? atfx_i32(nc)[0] : 0;
        TEST_BEGIN(lstm ? "rnn/lstm fixture" : "rnn/gru fixture");
        CHECK(n >= 4, "%s: %d cases, expected at least 4", path, n);
        TEST_END();
        for (int k = 0; k < n; k++)
            for (int ref = 0; ref < 2; ref++) parity_case(fx, lstm, k, ref);
        atfx_free(fx);
    }
}

/* ==== finite differences through the layer API ================================ */

/* A small problem: B 2, T 2, In 3, H 2, 2 layers, bidirectional, lengths
 * [2, 1], h0 (c0) given. */
typedef struct fd_problem {
    int lstm;
    attn_params *ps;
    attn_rnn rnn;
    float x[2 * 2 * 3], h0[4 * 2 * 2], c0[4 * 2 * 2];
    float r1[2 * 2 * 4], r2[4 * 2 * 2], r3[4 * 2 * 2];
} fd_problem;

static const int64_t FD_XS[3] = {2, 2, 3}, FD_SS[3] = {4, 2, 2};
static const int32_t FD_LEN[2] = {2, 1};

/* Runs the forward; with grad, the loss's backward too (gradients land in
 * the store and in *gx, *gh, *gc). Returns the loss (double sum of float
 * outputs), NaN on failure. */
static double fd_eval(attn_ctx *ctx, fd_problem *p, int grad, float *gx, float *gh, float *gc) {
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_tensor *x = test_leaf(ctx, 3, FD_XS, p->x), *h0 = test_leaf(ctx, 3, FD_SS, p->h0);
    attn_tensor *c0 = p->lstm ? test_leaf(ctx, 3, FD_SS, p->c0) : NULL;
    attn_tensor *len = attn_tensor_from(ctx, ATTN_I32, 1, (const int64_t[1]){2}, FD_LEN);
    attn_tensor *hn = NULL, *cn = NULL;
    attn_tensor *out = attn_rnn_forward(ctx, &p->rnn, x, len, h0, c0, &hn, p->lstm ? &cn : NULL);
    attn_ctx_set_grad_enabled(ctx, 1);
    if (!out) {
        CHECK(0, "fd forward failed: %s", attn_ctx_error(ctx));
        return NAN;
    }
    double l = test_dot_d(out, p->r1) + test_dot_d(hn, p->r2) +
               (p->lstm ? test_dot_d(cn, p->r3) : 0.0);
    if (grad) {
        attn_tensor *loss =
            attn_add(ctx, test_dot_loss(ctx, out, p->r1), test_dot_loss(ctx, hn, p->r2));
        if (p->lstm) loss = attn_add(ctx, loss, test_dot_loss(ctx, cn, p->r3));
        attn_params_zero_grad(p->ps);
        if (!loss || attn_backward(ctx, loss) != ATTN_OK) {
            CHECK(0, "fd backward failed: %s", attn_ctx_error(ctx));
            return NAN;
        }
        memcpy(gx, x->grad, sizeof p->x);
        memcpy(gh, h0->grad, sizeof p->h0);
        if (p->lstm) memcpy(gc, c0->grad, sizeof p->c0);
    }
    return l;
}

/* Central difference of the loss in *v (the value is restored). */
static double fd_probe(attn_ctx *ctx, fd_problem *p, float *v) {
    const float v0 = *v, vp = v0 + FD_STEP, vm = v0 - FD_STEP;
    *v = vp;
    double lp = fd_eval(ctx, p, 0, NULL, NULL, NULL);
    *v = vm;
    double lm = fd_eval(ctx, p, 0, NULL, NULL, NULL);
    *v = v0;
    return (lp - lm) / ((double)vp - (double)vm);
}

/* Probes every element of `vals` (n) against the analytic `grad`. */
static void fd_check(attn_ctx *ctx, fd_problem *p, const char *what, float *vals, const float *grad,
                     int64_t n) {
    int64_t bad = 0, worst = -1;
    double worst_ex = 0.0, worst_fd = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double fd = fd_probe(ctx, p, &vals[i]), an = grad[i];
        double ex = fabs(an - fd) - (FD_ATOL + FD_RTOL * fabs(fd));
        if (!isfinite(fd) || !isfinite(an)) ex = INFINITY;
        if (ex > 0) {
            bad++;
            if (worst < 0 || ex > worst_ex) worst = i, worst_ex = ex, worst_fd = fd;
        }
    }
    CHECK(worst < 0,
          "%s %s: element %lld: analytic %.9g, central difference (h %g) %.9g (> %g + %g |fd|); "
          "%lld of %lld elements out of tolerance",
          p->lstm ? "lstm" : "gru", what, (long long)worst, worst >= 0 ? (double)grad[worst] : 0.0,
          (double)FD_STEP, worst_fd, FD_ATOL, FD_RTOL, (long long)bad, (long long)n);
}

static void test_finite_differences(void) {
    for (int lstm = 0; lstm < 2; lstm++) {
        TEST_BEGIN(
            lstm ? "rnn/lstm finite differences (2 layers, bidirectional, T 2, lengths [2,1])"
                 : "rnn/gru finite differences (2 layers, bidirectional, T 2, lengths [2,1])");
        fd_problem p;
        memset(&p, 0, sizeof p);
        p.lstm = lstm;
        attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
        attn_rng rng;
        attn_rng_init(&rng, 0xFD0 + (uint64_t)lstm);
        attn_rnn_config cfg = {.cell = lstm ? ATTN_RNN_LSTM : ATTN_RNN_GRU,
                               .input_size = 3,
                               .hidden_size = 2,
                               .num_layers = 2,
                               .bidirectional = 1};
        CHECK_OK(attn_params_new(&p.ps));
        if (ctx && p.ps) {
            /* weights in [-0.8, 0.8] (torch's range for H = 2 is +-0.71):
             * the gates are far from saturation, so gradients are O(0.1) */
            CHECK_OK(attn_rnn_init(&p.rnn, p.ps, NULL, &cfg, &rng));
            fill_uniform(p.x, 12, -1, 1, &rng);
            fill_uniform(p.h0, 16, -0.8f, 0.8f, &rng);
            fill_uniform(p.c0, 16, -1, 1, &rng);
            fill_uniform(p.r1, 16, -1, 1, &rng);
            fill_uniform(p.r2, 16, -1, 1, &rng);
            fill_uniform(p.r3, 16, -1, 1, &rng);
            float gx[12], gh[16], gc[16];
            double l = fd_eval(ctx, &p, 1, gx, gh, gc);
            CHECK(isfinite(l), "loss %g", l);
            /* analytic gradients of the parameters, copied before probing */
            const int np = attn_params_count(p.ps);
            float *pg[4 * ATTN_RNN_MAX_LAYERS * 2];
            for (int i = 0; i < np; i++) {
                attn_tensor *t = attn_params_at(p.ps, i);
                pg[i] = malloc(sizeof(float) * (size_t)attn_tensor_numel(t));
                if (pg[i]) memcpy(pg[i], t->grad, sizeof(float) * (size_t)attn_tensor_numel(t));
            }
            for (int i = 0; i < np; i++) {
                attn_tensor *t = attn_params_at(p.ps, i);
                if (pg[i]) fd_check(ctx, &p, t->name, attn_f32(t), pg[i], attn_tensor_numel(t));
                free(pg[i]);
            }
            fd_check(ctx, &p, "x", p.x, gx, 12);
            fd_check(ctx, &p, "h0", p.h0, gh, 16);
            if (lstm) fd_check(ctx, &p, "c0", p.c0, gc, 16);
            /* x[1, 1, :] is a padded step: exactly no gradient */
            CHECK(gx[9] == 0.0f && gx[10] == 0.0f && gx[11] == 0.0f,
                  "gradient at a padded step: %g %g %g", (double)gx[9], (double)gx[10],
                  (double)gx[11]);
        }
        attn_params_free(p.ps);
        attn_ctx_free(ctx);
        TEST_END();
    }
}

/* ==== the step API ================================================================== */

static void test_step_matches_forward(void) {
    for (int lstm = 0; lstm < 2; lstm++) {
        TEST_BEGIN(lstm ? "rnn/lstm step API = sequence forward (2 layers, states and gradients)"
                        : "rnn/gru step API = sequence forward (2 layers, states and gradients)");
        enum { B = 3, T = 4, IN = 5, H = 6, L = 2 };
        attn_rng rng;
        attn_rng_init(&rng, 0x57E9 + (uint64_t)lstm);
        attn_rnn_config cfg = {.cell = lstm ? ATTN_RNN_LSTM : ATTN_RNN_GRU,
                               .input_size = IN,
                               .hidden_size = H,
                               .num_layers = L};
        attn_params *ps = NULL;
        attn_rnn rnn;
        CHECK_OK(attn_params_new(&ps));
        attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
        static float x[B * T * IN], h0[L * B * H], c0[L * B * H], r[B * T * H], r2[L * B * H];
        float *g1 = NULL;
        if (!ps || !ctx) goto done;
        CHECK_OK(attn_rnn_init(&rnn, ps, "dec.", &cfg, &rng));
        fill_uniform(x, B * T * IN, -1, 1, &rng);
        fill_uniform(h0, L * B * H, -1, 1, &rng);
        fill_uniform(c0, L * B * H, -1, 1, &rng);
        fill_uniform(r, B * T * H, -1, 1, &rng);
        fill_uniform(r2, L * B * H, -1, 1, &rng);
        const int64_t xs[3] = {B, T, IN}, ss[3] = {L, B, H};
        const int np = attn_params_count(ps);
        int64_t ntot = attn_params_numel(ps);
        g1 = malloc(sizeof(float) * (size_t)ntot);
        if (!g1) goto done;

        /* sequence forward */
        attn_tensor *hn = NULL, *cn = NULL;
        attn_tensor *out = attn_rnn_forward(
            ctx, &rnn, attn_tensor_from(ctx, ATTN_F32, 3, xs, x), NULL,
            attn_tensor_from(ctx, ATTN_F32, 3, ss, h0),
            lstm ? attn_tensor_from(ctx, ATTN_F32, 3, ss, c0) : NULL, &hn, lstm ? &cn : NULL);
        attn_tensor *loss = attn_add(ctx, test_dot_loss(ctx, out, r), test_dot_loss(ctx, hn, r2));
        CHECK(loss != NULL, "forward: %s", attn_ctx_error(ctx));
        if (!loss) goto done;
        static float out_seq[B * T * H], hn_seq[L * B * H], cn_seq[L * B * H];
        memcpy(out_seq, attn_f32(out), sizeof out_seq);
        memcpy(hn_seq, attn_f32(hn), sizeof hn_seq);
        if (lstm) memcpy(cn_seq, attn_f32(cn), sizeof cn_seq);
        attn_params_zero_grad(ps);
        CHECK_OK(attn_backward(ctx, loss));
        for (int i = 0, o = 0; i < np; o += (int)attn_tensor_numel(attn_params_at(ps, i)), i++)
            memcpy(g1 + o, attn_params_at(ps, i)->grad,
                   sizeof(float) * (size_t)attn_tensor_numel(attn_params_at(ps, i)));

        /* the same through attn_rnn_step */
        attn_ctx_reset(ctx);
        attn_tensor *xt = attn_tensor_from(ctx, ATTN_F32, 3, xs, x);
        attn_tensor *h[L], *c[L], *hsrc = attn_tensor_from(ctx, ATTN_F32, 3, ss, h0),
                                  *csrc = attn_tensor_from(ctx, ATTN_F32, 3, ss, c0);
        for (int l = 0; l < L; l++) {
            h[l] = attn_reshape(ctx, attn_slice(ctx, hsrc, 0, l, 1), 2, (const int64_t[2]){B, H});
            c[l] = attn_reshape(ctx, attn_slice(ctx, csrc, 0, l, 1), 2, (const int64_t[2]){B, H});
        }
        static float rt[T][B * H];
        attn_tensor *lsum = NULL;
        static float top[T][B * H];
        for (int t = 0; t < T; t++) {
            attn_tensor *in =
                attn_reshape(ctx, attn_slice(ctx, xt, 1, t, 1), 2, (const int64_t[2]){B, IN});
            attn_tensor *ho[L], *co[L];
            attn_tensor *y = attn_rnn_step(ctx, &rnn, in, h, lstm ? c : NULL, ho, lstm ? co : NULL);
            CHECK(y != NULL, "step %d: %s", t, attn_ctx_error(ctx));
            if (!y) goto done;
            CHECK(y == ho[L - 1], "step %d: the result is not h_out[L-1]", t);
            for (int b = 0; b < B; b++)
                for (int j = 0; j < H; j++) rt[t][b * H + j] = r[(b * T + t) * H + j];
            memcpy(top[t], attn_f32(y), sizeof top[t]);
            attn_tensor *lt = test_dot_loss(ctx, y, rt[t]);
            lsum = lsum ? attn_add(ctx, lsum, lt) : lt;
            for (int l = 0; l < L; l++) {
                h[l] = ho[l];
                if (lstm) c[l] = co[l];
            }
        }
        for (int t = 0; t < T; t++) {
            static float col[B * H];
            for (int b = 0; b < B; b++)
                memcpy(col + b * H, out_seq + (b * T + t) * H, sizeof(float) * H);
            char what[64];
            snprintf(what, sizeof what, "step %d output vs sequence forward", t);
            test_allclose(what, top[t], col, B * H, STEP_ATOL, STEP_RTOL);
        }
        for (int l = 0; l < L; l++) {
            test_allclose("final h vs h_n", attn_f32(h[l]), hn_seq + l * B * H, B * H, STEP_ATOL,
                          STEP_RTOL);
            if (lstm)
                test_allclose("final c vs c_n", attn_f32(c[l]), cn_seq + l * B * H, B * H,
                              STEP_ATOL, STEP_RTOL);
        }
        attn_tensor *hcat = attn_concat(ctx, h, L, 0);
        static float r2f[L * B * H];
        memcpy(r2f, r2, sizeof r2f);
        lsum = attn_add(ctx, lsum, test_dot_loss(ctx, hcat, r2f));
        attn_params_zero_grad(ps);
        CHECK(lsum != NULL, "step loss: %s", attn_ctx_error(ctx));
        if (!lsum) goto done;
        CHECK_OK(attn_backward(ctx, lsum));
        for (int i = 0, o = 0; i < np; o += (int)attn_tensor_numel(attn_params_at(ps, i)), i++) {
            attn_tensor *p = attn_params_at(ps, i);
            char what[128];
            snprintf(what, sizeof what, "gradient of %s, step API vs sequence forward", p->name);
            test_allclose(what, p->grad, g1 + o, attn_tensor_numel(p), STEP_ATOL, STEP_RTOL);
        }
    done:
        free(g1);
        attn_ctx_free(ctx);
        attn_params_free(ps);
        TEST_END();
    }
}

/* ==== fast vs reference cells at ragged sizes ======================================== */

static void test_cells_fast_vs_ref(void) {
    for (int lstm = 0; lstm < 2; lstm++) {
        TEST_BEGIN(lstm ? "rnn/lstm_cell fast vs reference (B 65, H 33, frozen rows)"
                        : "rnn/gru_cell fast vs reference (B 65, H 33, frozen rows)");
        enum { B = 65, H = 33 };
        const int G = lstm ? 4 : 3;
        attn_rng rng;
        attn_rng_init(&rng, 0xCE11 + (uint64_t)lstm);
        static float gx[B * 4 * H], h[B * H], c[B * H], w[4 * H * H], bb[4 * H], go[2 * B * H];
        int32_t mask[B];
        fill_uniform(gx, B * G * H, -3, 3, &rng);
        fill_uniform(h, B * H, -1, 1, &rng);
        fill_uniform(c, B * H, -2, 2, &rng);
        fill_uniform(w, G * H * H, -0.3f, 0.3f, &rng);
        fill_uniform(bb, G * H, -0.5f, 0.5f, &rng);
        fill_uniform(go, 2 * B * H, -1, 1, &rng);
        for (int b = 0; b < B; b++) mask[b] = b % 7 != 3;
        attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
        enum { NIN = 5 };
        static float res[2][NIN + 1][4 * H * H > 2 * B * 4 * H ? 4 * H * H : 2 * B * 4 * H];
        int64_t nres[NIN + 1] = {0};
        for (int ref = 0; ctx && ref < 2; ref++) {
            attn_ctx_reset(ctx);
            attn_ctx_set_use_ref(ctx, ref);
            attn_tensor *tg = test_leaf(ctx, 2, (const int64_t[2]){B, G * H}, gx),
                        *th = test_leaf(ctx, 2, (const int64_t[2]){B, H}, h),
                        *tc = test_leaf(ctx, 2, (const int64_t[2]){B, H}, c),
                        *tw = test_leaf(ctx, 2, (const int64_t[2]){G * H, H}, w),
                        *tb = test_leaf(ctx, 1, (const int64_t[1]){G * H}, bb),
                        *tm = attn_tensor_from(ctx, ATTN_I32, 1, (const int64_t[1]){B}, mask);
            attn_tensor *y;
            if (lstm) {
                attn_tensor *hc[2] = {NULL, NULL};
                hc[0] = attn_lstm_cell(ctx, tg, th, tc, tw, tb, tm, &hc[1]);
                y = hc[0] ? attn_concat(ctx, hc, 2, 0) : NULL;
            } else {
                y = attn_gru_cell(ctx, tg, th, tw, tb, tm);
            }
            CHECK(y != NULL, "forward: %s", attn_ctx_error(ctx));
            if (!y) break;
            nres[NIN] = attn_tensor_numel(y);
            memcpy(res[ref][NIN], attn_f32(y), sizeof(float) * (size_t)nres[NIN]);
            CHECK_OK(attn_backward_from(ctx, y, go));
            attn_tensor *ins[NIN] = {tg, th, tc, tw, tb};
            for (int i = 0; i < NIN; i++) {
                nres[i] = attn_tensor_numel(ins[i]);
                if (ins[i]->grad)
                    memcpy(res[ref][i], ins[i]->grad, sizeof(float) * (size_t)nres[i]);
                else
                    memset(res[ref][i], 0, sizeof(float) * (size_t)nres[i]);
            }
            /* frozen rows pass the state through exactly */
            for (int b = 0; b < B; b++)
                if (!mask[b]) {
                    CHECK(memcmp(attn_f32(y) + b * H, h + b * H, sizeof(float) * H) == 0,
                          "[%s] frozen row %d: h' != h", ref ? "ref" : "fast", b);
                    if (lstm)
                        CHECK(memcmp(attn_f32(y) + (B + b) * H, c + b * H, sizeof(float) * H) == 0,
                              "[%s] frozen row %d: c' != c", ref ? "ref" : "fast", b);
                }
        }
        static const char *const names[NIN + 1] = {"grad gx",   "grad h",    "grad c",
                                                   "grad w_hh", "grad b_hh", "output"};
        for (int i = 0; ctx && i <= NIN; i++) {
            if (i == 2 && !lstm) continue;
            char what[64];
            snprintf(what, sizeof what, "fast vs reference %s", names[i]);
            test_allclose(what, res[0][i], res[1][i], nres[i], REF_ATOL, REF_RTOL);
        }
        attn_ctx_free(ctx);
        TEST_END();
    }
}

/* ==== attn_*_cell_at: the cell on block t of a [T, B, G*H] projection ================= */

static void test_cell_at(void) {
    for (int lstm = 0; lstm < 2; lstm++) {
        TEST_BEGIN(lstm ? "rnn/lstm_cell_at = lstm_cell on the step's block (values, gradients)"
                        : "rnn/gru_cell_at = gru_cell on the step's block (values, gradients)");
        enum { T = 3, B = 4, H = 5 };
        const int G = lstm ? 4 : 3;
        attn_rng rng;
        attn_rng_init(&rng, 0xA7 + (uint64_t)lstm);
        float gx[T * B * 4 * H], h[B * H], c[B * H], w[4 * H * H], go[2 * B * H];
        fill_uniform(gx, T * B * G * H, -2, 2, &rng);
        fill_uniform(h, B * H, -1, 1, &rng);
        fill_uniform(c, B * H, -1, 1, &rng);
        fill_uniform(w, G * H * H, -0.5f, 0.5f, &rng);
        fill_uniform(go, 2 * B * H, -1, 1, &rng);
        const int32_t mask[B] = {1, 0, 1, 1};
        attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
        float out[2][2 * B * H], gseq[2][T * B * 4 * H], gw[2][4 * H * H];
        const int64_t t = 1, sseq[3] = {T, B, G * H}, sh[2] = {B, H}, sw[2] = {G * H, H};
        for (int at = 0; ctx && at < 2; at++) {
            attn_ctx_reset(ctx);
            attn_tensor *tg = test_leaf(ctx, 3, sseq, gx), *th = test_leaf(ctx, 2, sh, h),
                        *tc = test_leaf(ctx, 2, sh, c), *tw = test_leaf(ctx, 2, sw, w);
            attn_tensor *tm = attn_tensor_from(ctx, ATTN_I32, 1, (const int64_t[1]){B}, mask);
            attn_tensor *blk = at ? NULL
                                  : attn_reshape(ctx, attn_slice(ctx, tg, 0, t, 1), 2,
                                                 (const int64_t[2]){B, G * H});
            attn_tensor *y, *cn = NULL;
            if (lstm) {
                attn_tensor *hc[2];
                hc[0] = at ? attn_lstm_cell_at(ctx, tg, t, th, tc, tw, NULL, tm, &cn)
                           : attn_lstm_cell(ctx, blk, th, tc, tw, NULL, tm, &cn);
                hc[1] = cn;
                y = hc[0] && cn ? attn_concat(ctx, hc, 2, 0) : NULL;
            } else {
                y = at ? attn_gru_cell_at(ctx, tg, t, th, tw, NULL, tm)
                       : attn_gru_cell(ctx, blk, th, tw, NULL, tm);
            }
            CHECK(y != NULL, "[%s] %s", at ? "at" : "block", attn_ctx_error(ctx));
            if (!y) break;
            memcpy(out[at], attn_f32(y), sizeof(float) * (size_t)attn_tensor_numel(y));
            CHECK_OK(attn_backward_from(ctx, y, go));
            CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "guards: %s", attn_last_error());
            memcpy(gseq[at], tg->grad, sizeof(float) * T * B * G * H);
            memcpy(gw[at], tw->grad, sizeof(float) * G * H * H);
        }
        if (ctx && attn_ctx_status(ctx) == ATTN_OK) {
            const int n = (lstm ? 2 : 1) * B * H;
            CHECK(memcmp(out[0], out[1], sizeof(float) * (size_t)n) == 0, "outputs differ");
            CHECK(memcmp(gseq[0], gseq[1], sizeof(float) * T * B * G * H) == 0,
                  "gradients of gx_seq differ");
            CHECK(memcmp(gw[0], gw[1], sizeof(float) * G * H * H) == 0, "gradients of w_hh differ");
            int nz = 0;
            for (int i = 0; i < T * B * G * H; i++)
                nz += gseq[1][i] != 0.0f && (i / (B * G * H) != t || i / (G * H) % B == 1);
            CHECK(nz == 0, "%d gradient entries outside step %d's unmasked rows", nz, (int)t);
        }
        /* errors: t outside [0, T), a 2-D gx */
        if (ctx) {
            attn_ctx_reset(ctx);
            attn_tensor *tg = attn_tensor_new(ctx, ATTN_F32, 3, sseq),
                        *th = attn_tensor_new(ctx, ATTN_F32, 2, sh),
                        *tc = attn_tensor_new(ctx, ATTN_F32, 2, sh),
                        *tw = attn_tensor_new(ctx, ATTN_F32, 2, sw);
            const char *name = lstm ? "lstm_cell" : "gru_cell";
            for (int k = 0; k < 3; k++) {
                const int64_t tt = k == 0 ? T : k == 1 ? -1 : 0;
                attn_tensor *g2 =
                    k == 2 ? attn_reshape(ctx, tg, 2, (const int64_t[2]){T * B, G * H}) : tg;
                attn_tensor *cn = NULL;
                attn_tensor *y = lstm ? attn_lstm_cell_at(ctx, g2, tt, th, tc, tw, NULL, NULL, &cn)
                                      : attn_gru_cell_at(ctx, g2, tt, th, tw, NULL, NULL);
                attn_status want = k == 2 ? ATTN_ERR_SHAPE : ATTN_ERR_INVALID_ARG;
                CHECK(!y && attn_ctx_status(ctx) == want && strstr(attn_ctx_error(ctx), name),
                      "case %d: expected '%s' naming %s, got %s: %s", k, attn_status_str(want),
                      name, y ? "a tensor" : "NULL", attn_ctx_error(ctx));
                attn_ctx_reset(ctx);
                tg = attn_tensor_new(ctx, ATTN_F32, 3, sseq),
                th = attn_tensor_new(ctx, ATTN_F32, 2, sh);
                tc = attn_tensor_new(ctx, ATTN_F32, 2, sh),
                tw = attn_tensor_new(ctx, ATTN_F32, 2, sw);
            }
        }
        attn_ctx_free(ctx);
        TEST_END();
    }
}

/* ==== attn__*_cell_lookup: the cell on rows of a table picked by ids ================== */

static void test_cell_lookup(void) {
    for (int lstm = 0; lstm < 2; lstm++) {
        TEST_BEGIN(lstm ? "rnn/lstm_cell_lookup = lstm_cell on the looked-up rows (bitwise)"
                        : "rnn/gru_cell_lookup = gru_cell on the looked-up rows (bitwise)");
        enum { T = 3, B = 5, V = 4, H = 5 };
        const int G = lstm ? 4 : 3;
        attn_rng rng;
        attn_rng_init(&rng, 0xD1 + (uint64_t)lstm);
        float tab[V * 4 * H], h[B * H], c[B * H], w[4 * H * H], b[4 * H], go[2 * B * H],
            x2[B * 4 * H];
        fill_uniform(tab, V * G * H, -2, 2, &rng);
        fill_uniform(h, B * H, -1, 1, &rng);
        fill_uniform(c, B * H, -1, 1, &rng);
        fill_uniform(w, G * H * H, -0.5f, 0.5f, &rng);
        fill_uniform(b, G * H, -0.5f, 0.5f, &rng);
        fill_uniform(go, 2 * B * H, -1, 1, &rng);
        fill_uniform(x2, B * G * H, -1, 1, &rng);
        /* step 1 repeats id 2 (rows 0, 2, 3), row 3 frozen; id 0 unused */
        const int32_t ids[T * B] = {0, 1, 2, 3, 0, 2, 1, 2, 2, 3, 3, 3, 1, 0, 2};
        const int32_t mask[B] = {1, 1, 1, 0, 1};
        attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
        float out[2][2 * B * H], gt[2][V * 4 * H], gw[2][4 * H * H], gb[2][4 * H], gh[2][B * H],
            gx2[2][B * 4 * H];
        const int64_t t = 1, stab[2] = {V, G * H}, sh[2] = {B, H}, sw[2] = {G * H, H},
                      sb[1] = {G * H}, sid[2] = {T, B};
        /* v 0: the table rows alone; v 1: plus a dense addend x2 (against add) */
        for (int v = 0; v < 2; v++) {
            for (int lk = 0; ctx && lk < 2; lk++) {
                attn_ctx_reset(ctx);
                attn_tensor *tt = test_leaf(ctx, 2, stab, tab), *th = test_leaf(ctx, 2, sh, h),
                            *tc = test_leaf(ctx, 2, sh, c), *tw = test_leaf(ctx, 2, sw, w),
                            *tb = test_leaf(ctx, 1, sb, b),
                            *tx = v ? test_leaf(ctx, 2, (const int64_t[2]){B, G * H}, x2) : NULL;
                attn_tensor *tm = attn_tensor_from(ctx, ATTN_I32, 1, (const int64_t[1]){B}, mask);
                attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, sid, ids);
                attn_tensor *blk =
                    lk ? NULL
                       : attn_embedding(ctx, tt,
                                        attn_tensor_from(ctx, ATTN_I32, 1, (const int64_t[1]){B},
                                                         ids + t * B));
                if (blk && tx) blk = attn_add(ctx, blk, tx);
                attn_tensor *y, *cn = NULL;
                if (lstm) {
                    attn_tensor *hc[2];
                    hc[0] = lk ? attn__lstm_cell_lookup(ctx, tt, ti, t, tx, th, tc, tw, tb, tm, &cn)
                               : attn_lstm_cell(ctx, blk, th, tc, tw, tb, tm, &cn);
                    hc[1] = cn;
                    y = hc[0] && cn ? attn_concat(ctx, hc, 2, 0) : NULL;
                } else {
                    y = lk ? attn__gru_cell_lookup(ctx, tt, ti, t, tx, th, tw, tb, tm)
                           : attn_gru_cell(ctx, blk, th, tw, tb, tm);
                }
                CHECK(y != NULL, "[%s] %s", lk ? "lookup" : "embedded", attn_ctx_error(ctx));
                if (!y) break;
                memcpy(out[lk], attn_f32(y), sizeof(float) * (size_t)attn_tensor_numel(y));
                CHECK_OK(attn_backward_from(ctx, y, go));
                CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "guards: %s", attn_last_error());
                if (!tt->grad) break;
                memcpy(gt[lk], tt->grad, sizeof(float) * V * G * H);
                memcpy(gw[lk], tw->grad, sizeof(float) * G * H * H);
                memcpy(gb[lk], tb->grad, sizeof(float) * G * H);
                memcpy(gh[lk], th->grad, sizeof(float) * B * H);
                if (tx) memcpy(gx2[lk], tx->grad, sizeof(float) * B * G * H);
            }
            if (ctx && attn_ctx_status(ctx) == ATTN_OK) {
                const int n = (lstm ? 2 : 1) * B * H;
                CHECK(memcmp(out[0], out[1], sizeof(float) * (size_t)n) == 0, "outputs differ");
                CHECK(memcmp(gt[0], gt[1], sizeof(float) * V * G * H) == 0,
                      "gradients of the table differ");
                CHECK(memcmp(gw[0], gw[1], sizeof(float) * G * H * H) == 0,
                      "gradients of w_hh differ");
                CHECK(memcmp(gb[0], gb[1], sizeof(float) * G * H) == 0, "gradients of b_hh differ");
                CHECK(memcmp(gh[0], gh[1], sizeof(float) * B * H) == 0, "gradients of h differ");
                CHECK(!v || memcmp(gx2[0], gx2[1], sizeof(float) * B * G * H) == 0,
                      "gradients of x2 differ");
                int nz0 = 0, nz2 = 0;
                for (int j = 0; j < G * H; j++) {
                    nz0 += gt[1][j] != 0.0f;             /* id 0: not used at step 1 */
                    nz2 += gt[1][2 * G * H + j] != 0.0f; /* id 2: rows 0 and 2 */
                }
                CHECK(nz0 == 0 && nz2 > 0,
                      "table gradient: %d entries in the unused row, %d in row 2", nz0, nz2);
            }
        }
        /* errors: an id outside [0, V), t outside [0, T), ids of the wrong shape */
        for (int k = 0; ctx && k < 3; k++) {
            attn_ctx_reset(ctx);
            int32_t bad[T * B];
            memcpy(bad, ids, sizeof bad);
            bad[t * B + 4] = V;
            attn_tensor *tt = attn_tensor_new(ctx, ATTN_F32, 2, stab),
                        *th = attn_tensor_new(ctx, ATTN_F32, 2, sh),
                        *tc = attn_tensor_new(ctx, ATTN_F32, 2, sh),
                        *tw = attn_tensor_new(ctx, ATTN_F32, 2, sw);
            attn_tensor *ti = k == 2
                                  ? attn_tensor_new(ctx, ATTN_I32, 2, (const int64_t[2]){T, B + 1})
                                  : attn_tensor_from(ctx, ATTN_I32, 2, sid, k == 0 ? bad : ids);
            const int64_t tt_step = k == 1 ? T : t;
            attn_tensor *cn = NULL;
            attn_tensor *y =
                lstm ? attn__lstm_cell_lookup(ctx, tt, ti, tt_step, NULL, th, tc, tw, NULL, NULL,
                                              &cn)
                     : attn__gru_cell_lookup(ctx, tt, ti, tt_step, NULL, th, tw, NULL, NULL);
            const attn_status want = k == 2 ? ATTN_ERR_SHAPE : ATTN_ERR_INVALID_ARG;
            const char *name = lstm ? "lstm_cell" : "gru_cell";
            CHECK(!y && attn_ctx_status(ctx) == want && strstr(attn_ctx_error(ctx), name),
                  "case %d: expected '%s' naming %s, got %s: %s", k, attn_status_str(want), name,
                  y ? "a tensor" : "NULL", attn_ctx_error(ctx));
        }
        attn_ctx_free(ctx);
        TEST_END();
    }
}

/* ==== B = 1 and T = 1 (the layout changes become reshapes) ============================ */

static void test_degenerate_shapes(void) {
    for (int lstm = 0; lstm < 2; lstm++) {
        TEST_BEGIN(lstm ? "rnn/lstm B 1 and T 1 agree with the full batch"
                        : "rnn/gru B 1 and T 1 agree with the full batch");
        enum { B = 3, T = 4, IN = 2, H = 3 };
        attn_params *ps = NULL;
        attn_rnn rnn;
        attn_rng rng;
        attn_rng_init(&rng, 0xB1 + (uint64_t)lstm);
        attn_rnn_config cfg = {.cell = lstm ? ATTN_RNN_LSTM : ATTN_RNN_GRU,
                               .input_size = IN,
                               .hidden_size = H,
                               .num_layers = 2,
                               .bidirectional = 1};
        CHECK_OK(attn_params_new(&ps));
        attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
        if (ps && ctx && attn_rnn_init(&rnn, ps, "", &cfg, &rng) == ATTN_OK) {
            float x[B * T * IN], full[B * T * 2 * H];
            fill_uniform(x, B * T * IN, -1, 1, &rng);
            const int32_t len[B] = {4, 2, 3};
            attn_tensor *y = attn_rnn_forward(
                ctx, &rnn, attn_tensor_from(ctx, ATTN_F32, 3, (const int64_t[3]){B, T, IN}, x),
                attn_tensor_from(ctx, ATTN_I32, 1, (const int64_t[1]){B}, len), NULL, NULL, NULL,
                NULL);
            CHECK(y != NULL, "full batch: %s", attn_ctx_error(ctx));
            if (y) memcpy(full, attn_f32(y), sizeof full);
            /* each row alone (B = 1), with its own length */
            for (int b = 0; y && b < B; b++) {
                attn_ctx_reset(ctx);
                attn_tensor *yb = attn_rnn_forward(
                    ctx, &rnn,
                    attn_tensor_from(ctx, ATTN_F32, 3, (const int64_t[3]){1, T, IN},
                                     x + b * T * IN),
                    attn_tensor_from(ctx, ATTN_I32, 1, (const int64_t[1]){1}, len + b), NULL, NULL,
                    NULL, NULL);
                CHECK(yb != NULL, "row %d alone: %s", b, attn_ctx_error(ctx));
                if (yb)
                    test_allclose("B 1 vs the same row of the batch", attn_f32(yb),
                                  full + b * T * 2 * H, T * 2 * H, STEP_ATOL, STEP_RTOL);
            }
            /* T = 1 against the full x with every length 1 (bidirectional: both
             * directions then see step 0 only) */
            const int32_t ones[B] = {1, 1, 1};
            float first[B * T * 2 * H];
            attn_ctx_reset(ctx);
            attn_tensor *yl = attn_rnn_forward(
                ctx, &rnn, attn_tensor_from(ctx, ATTN_F32, 3, (const int64_t[3]){B, T, IN}, x),
                attn_tensor_from(ctx, ATTN_I32, 1, (const int64_t[1]){B}, ones), NULL, NULL, NULL,
                NULL);
            CHECK(yl != NULL, "lengths 1: %s", attn_ctx_error(ctx));
            if (yl) memcpy(first, attn_f32(yl), sizeof first);
            float x1[B * IN];
            for (int b = 0; b < B; b++) memcpy(x1 + b * IN, x + b * T * IN, sizeof(float) * IN);
            attn_ctx_reset(ctx);
            attn_tensor *y1 = attn_rnn_forward(
                ctx, &rnn, attn_tensor_from(ctx, ATTN_F32, 3, (const int64_t[3]){B, 1, IN}, x1),
                NULL, NULL, NULL, NULL, NULL);
            CHECK(y1 && y1->shape[1] == 1 && y1->shape[2] == 2 * H, "T 1: %s", attn_ctx_error(ctx));
            for (int b = 0; y1 && yl && b < B; b++)
                test_allclose("T 1 vs step 0 of the batch with lengths 1", attn_f32(y1) + b * 2 * H,
                              first + b * T * 2 * H, 2 * H, STEP_ATOL, STEP_RTOL);
        }
        attn_ctx_free(ctx);
        attn_params_free(ps);
        TEST_END();
    }
}

/* ==== from ids: the projected table looked up = the embedded ids projected ============ */

static void test_forward_ids(void) {
    for (int lstm = 0; lstm < 2; lstm++) {
        TEST_BEGIN(lstm ? "rnn/lstm from ids (projected table) = from the embedded ids"
                        : "rnn/gru from ids (projected table) = from the embedded ids");
        enum { B = 3, T = 4, V = 5, IN = 2, H = 3, L = 2, D = 2 };
        attn_params *ps = NULL;
        attn_rnn rnn;
        attn_rng rng;
        attn_rng_init(&rng, 0xC3 + (uint64_t)lstm);
        attn_rnn_config cfg = {.cell = lstm ? ATTN_RNN_LSTM : ATTN_RNN_GRU,
                               .input_size = IN,
                               .hidden_size = H,
                               .num_layers = L,
                               .bidirectional = 1};
        CHECK_OK(attn_params_new(&ps));
        attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
        if (ps && ctx && attn_rnn_init(&rnn, ps, "", &cfg, &rng) == ATTN_OK) {
            const int np = attn_params_count(ps);
            float table[V * IN], go[B * T * D * H], gn[L * D * B * H];
            fill_uniform(table, V * IN, -1, 1, &rng);
            fill_uniform(go, B * T * D * H, -1, 1, &rng);
            fill_uniform(gn, L * D * B * H, -1, 1, &rng);
            /* repeated ids (the table rows gather several positions), padding */
            const int32_t ids[B * T] = {1, 3, 1, 0, 4, 1, 0, 0, 2, 2, 3, 0};
            const int32_t len[B] = {4, 2, 3};
            float y[2][B * T * D * H], hn[2][L * D * B * H], cn[2][L * D * B * H];
            float gt[2][V * IN], gp[2][4096];
            int64_t off[64], total = 0;
            for (int i = 0; i < np && i < 64; i++) {
                off[i] = total;
                total += attn_tensor_numel(attn_params_at(ps, i));
            }
            CHECK(np < 64 && total <= 4096, "parameters: %d, %lld values", np, (long long)total);
            for (int path = 0; path < 2 && np < 64 && total <= 4096; path++) {
                attn_ctx_reset(ctx);
                attn_params_zero_grad(ps);
                attn_tensor *tt = test_leaf(ctx, 2, (const int64_t[2]){V, IN}, table);
                attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (const int64_t[2]){B, T}, ids);
                attn_tensor *tl = attn_tensor_from(ctx, ATTN_I32, 1, (const int64_t[1]){B}, len);
                attn_tensor *h_n = NULL, *c_n = NULL;
                attn_tensor *out =
                    path ? attn__rnn_forward_ids(ctx, &rnn, tt, ti, tl, NULL, NULL, &h_n,
                                                 lstm ? &c_n : NULL)
                         : attn_rnn_forward(ctx, &rnn, attn_embedding(ctx, tt, ti), tl, NULL,
                                            NULL, &h_n, lstm ? &c_n : NULL);
                CHECK(out && h_n && (!lstm || c_n), "[%s] %s", path ? "ids" : "embedded",
                      attn_ctx_error(ctx));
                if (!out || !h_n || (lstm && !c_n)) break;
                memcpy(y[path], attn_f32(out), sizeof y[path]);
                memcpy(hn[path], attn_f32(h_n), sizeof hn[path]);
                if (lstm) memcpy(cn[path], attn_f32(c_n), sizeof cn[path]);
                /* loss = sum(out * go) + sum(h_n * gn) */
                attn_tensor *two[2] = {
                    attn_sum(ctx, attn_mul(ctx, out, attn_tensor_from(ctx, ATTN_F32, 3,
                                                                     out->shape, go)),
                             ATTN_ALL_AXES, 0),
                    attn_sum(ctx, attn_mul(ctx, h_n, attn_tensor_from(ctx, ATTN_F32, 3,
                                                                     h_n->shape, gn)),
                             ATTN_ALL_AXES, 0)};
                attn_tensor *loss = attn_add(ctx, two[0], two[1]);
                CHECK(loss && attn_backward(ctx, loss) == ATTN_OK, "[%s] backward: %s",
                      path ? "ids" : "embedded", attn_ctx_error(ctx));
                CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "guards: %s", attn_last_error());
                if (!loss || !tt->grad) break;
                memcpy(gt[path], tt->grad, sizeof gt[path]);
                for (int i = 0; i < np; i++) {
                    attn_tensor *p = attn_params_at(ps, i);
                    memcpy(gp[path] + off[i], p->grad,
                           sizeof(float) * (size_t)attn_tensor_numel(p));
                }
            }
            if (attn_ctx_status(ctx) == ATTN_OK && np < 64 && total <= 4096) {
                test_allclose("outputs", y[1], y[0], B * T * D * H, STEP_ATOL, STEP_RTOL);
                test_allclose("h_n", hn[1], hn[0], L * D * B * H, STEP_ATOL, STEP_RTOL);
                if (lstm) test_allclose("c_n", cn[1], cn[0], L * D * B * H, STEP_ATOL, STEP_RTOL);
                test_allclose("gradient of the table", gt[1], gt[0], V * IN, STEP_ATOL, STEP_RTOL);
                test_allclose("gradients of the parameters", gp[1], gp[0], (int)total, STEP_ATOL,
                              STEP_RTOL);
                int nz = 0;
                for (int i = 0; i < V * IN; i++) nz += gt[0][i] != 0.0f;
                CHECK(nz == V * IN, "only %d of %d table gradients are nonzero", nz, V * IN);
            }
        }
        /* errors: ids of the wrong dtype or shape, a table of the wrong width */
        if (ctx && ps && rnn.w_ih[0][0]) {
            attn_ctx_reset(ctx);
            const int64_t tsh[2] = {V, IN}, bad_t[2] = {V, IN + 1}, ish[2] = {B, T};
            struct {
                attn_tensor *t, *i;
                attn_status want;
            } cases[3];
            cases[0].t = attn_tensor_new(ctx, ATTN_F32, 2, tsh);
            cases[0].i = attn_tensor_new(ctx, ATTN_F32, 2, ish);
            cases[0].want = ATTN_ERR_DTYPE;
            cases[1].t = attn_tensor_new(ctx, ATTN_F32, 2, bad_t);
            cases[1].i = attn_tensor_new(ctx, ATTN_I32, 2, ish);
            cases[1].want = ATTN_ERR_SHAPE;
            cases[2].t = attn_tensor_new(ctx, ATTN_F32, 2, tsh);
            cases[2].i = attn_tensor_new(ctx, ATTN_I32, 1, (const int64_t[1]){B});
            cases[2].want = ATTN_ERR_SHAPE;
            for (int k = 0; k < 3; k++) {
                attn_tensor *r = attn__rnn_forward_ids(ctx, &rnn, cases[k].t, cases[k].i, NULL,
                                                       NULL, NULL, NULL, NULL);
                CHECK(!r && attn_ctx_status(ctx) == cases[k].want &&
                          strstr(attn_ctx_error(ctx), "attn__rnn_forward_ids"),
                      "case %d: expected '%s', got %s: %s", k, attn_status_str(cases[k].want),
                      r ? "a tensor" : "NULL", attn_ctx_error(ctx));
                attn_ctx_reset(ctx);
                /* the tensors of the later cases were allocated before the reset:
                 * rebuild them */
                cases[1].t = attn_tensor_new(ctx, ATTN_F32, 2, bad_t);
                cases[1].i = attn_tensor_new(ctx, ATTN_I32, 2, ish);
                cases[2].t = attn_tensor_new(ctx, ATTN_F32, 2, tsh);
                cases[2].i = attn_tensor_new(ctx, ATTN_I32, 1, (const int64_t[1]){B});
            }
        }
        attn_ctx_free(ctx);
        attn_params_free(ps);
        TEST_END();
    }
}

/* ==== rules: length 0, dropout, names, initialisation ================================== */

static void test_length_zero(void) {
    TEST_BEGIN("rnn/length 0: zero outputs, h_n = h0");
    attn_params *ps = NULL;
    attn_rnn rnn;
    attn_rng rng;
    attn_rng_init(&rng, 7);
    attn_rnn_config cfg = {.cell = ATTN_RNN_LSTM,
                           .input_size = 2,
                           .hidden_size = 3,
                           .num_layers = 1,
                           .bidirectional = 1};
    CHECK_OK(attn_params_new(&ps));
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    if (ps && ctx && attn_rnn_init(&rnn, ps, "", &cfg, &rng) == ATTN_OK) {
        float x[2 * 3 * 2], h0[2 * 2 * 3], c0[2 * 2 * 3];
        fill_uniform(x, 12, -1, 1, &rng);
        fill_uniform(h0, 12, -1, 1, &rng);
        fill_uniform(c0, 12, -1, 1, &rng);
        const int32_t len[2] = {0, 2};
        attn_tensor *hn = NULL, *cn = NULL;
        attn_tensor *y = attn_rnn_forward(
            ctx, &rnn, attn_tensor_from(ctx, ATTN_F32, 3, (const int64_t[3]){2, 3, 2}, x),
            attn_tensor_from(ctx, ATTN_I32, 1, (const int64_t[1]){2}, len),
            attn_tensor_from(ctx, ATTN_F32, 3, (const int64_t[3]){2, 2, 3}, h0),
            attn_tensor_from(ctx, ATTN_F32, 3, (const int64_t[3]){2, 2, 3}, c0), &hn, &cn);
        CHECK(y && hn && cn, "forward: %s", attn_ctx_error(ctx));
        if (y && hn && cn) {
            int bad = 0;
            for (int i = 0; i < 3 * 6; i++) bad += attn_f32(y)[i] != 0.0f; /* row 0 */
            CHECK(bad == 0, "%d outputs of the length-0 row are not 0", bad);
            for (int d = 0; d < 2; d++) {
                CHECK(memcmp(attn_f32(hn) + d * 6, h0 + d * 6, 3 * sizeof(float)) == 0,
                      "direction %d: h_n of the length-0 row differs from h0", d);
                CHECK(memcmp(attn_f32(cn) + d * 6, c0 + d * 6, 3 * sizeof(float)) == 0,
                      "direction %d: c_n of the length-0 row differs from c0", d);
            }
        }
    }
    attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

/* Output of a GRU of `layers` layers with dropout 0.5 on fixed input, in
 * training or evaluation mode, with the context's RNG reset to (1, 0). */
static int dropout_run(int layers, int training, float *out) {
    attn_params *ps = NULL;
    attn_rnn rnn;
    attn_rng rng;
    attn_rng_init(&rng, 11);
    attn_rnn_config cfg = {.cell = ATTN_RNN_GRU,
                           .input_size = 4,
                           .hidden_size = 8,
                           .num_layers = layers,
                           .dropout = 0.5f};
    int ok = 0;
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    if (ctx && attn_params_new(&ps) == ATTN_OK &&
        attn_rnn_init(&rnn, ps, "", &cfg, &rng) == ATTN_OK) {
        float x[2 * 3 * 4];
        fill_uniform(x, 24, -1, 1, &rng);
        attn_ctx_set_training(ctx, training);
        attn_ctx_set_rng(ctx, 1, 0);
        attn_tensor *y = attn_rnn_forward(
            ctx, &rnn, attn_tensor_from(ctx, ATTN_F32, 3, (const int64_t[3]){2, 3, 4}, x), NULL,
            NULL, NULL, NULL, NULL);
        if (y)
            memcpy(out, attn_f32(y), 48 * sizeof(float)), ok = 1;
        else
            CHECK(0, "forward: %s", attn_ctx_error(ctx));
    }
    attn_ctx_free(ctx);
    attn_params_free(ps);
    return ok;
}

static void test_dropout(void) {
    TEST_BEGIN("rnn/dropout between layers only, in training mode only");
    float a[48], b[48], c[48], d[48];
    if (dropout_run(1, 1, a) && dropout_run(1, 0, b))
        CHECK(memcmp(a, b, sizeof a) == 0, "1 layer: training and eval outputs differ (dropout "
                                           "must not touch the last layer's output)");
    if (dropout_run(2, 1, c) && dropout_run(2, 0, d)) {
        CHECK(memcmp(c, d, sizeof c) != 0, "2 layers: training output equals eval output");
        float e[48];
        if (dropout_run(2, 1, e))
            CHECK(memcmp(c, e, sizeof c) == 0, "2 layers: same RNG state, different outputs");
    }
    TEST_END();
}

static void test_names_and_init(void) {
    TEST_BEGIN("rnn/torch names, order and initial range");
    attn_params *ps = NULL;
    attn_rnn rnn;
    attn_rng rng;
    attn_rng_init(&rng, 3);
    attn_rnn_config cfg = {.cell = ATTN_RNN_LSTM,
                           .input_size = 5,
                           .hidden_size = 16,
                           .num_layers = 3,
                           .bidirectional = 1};
    CHECK_OK(attn_params_new(&ps));
    if (ps) {
        CHECK_OK(attn_rnn_init(&rnn, ps, "encoder.rnn.", &cfg, &rng));
        CHECK(attn_params_count(ps) == 24, "%d parameters, expected 24", attn_params_count(ps));
        static const char *const want[] = {
            "encoder.rnn.weight_ih_l0",         "encoder.rnn.weight_hh_l0",
            "encoder.rnn.bias_ih_l0",           "encoder.rnn.bias_hh_l0",
            "encoder.rnn.weight_ih_l0_reverse", "encoder.rnn.weight_hh_l0_reverse",
            "encoder.rnn.bias_ih_l0_reverse",   "encoder.rnn.bias_hh_l0_reverse",
            "encoder.rnn.weight_ih_l1"};
        for (int i = 0; i < 9 && i < attn_params_count(ps); i++)
            CHECK(strcmp(attn_params_at(ps, i)->name, want[i]) == 0,
                  "parameter %d is '%s', "
                  "expected '%s'",
                  i, attn_params_at(ps, i)->name, want[i]);
        attn_tensor *w = attn_params_find(ps, "encoder.rnn.weight_ih_l2_reverse");
        CHECK(w && w == rnn.w_ih[2][1] && w->ndim == 2 && w->shape[0] == 64 && w->shape[1] == 32,
              "weight_ih_l2_reverse missing or not [64, 32]");
        const float bound = 0.25f; /* 1 / sqrt(16) */
        for (int i = 0; i < attn_params_count(ps); i++) {
            attn_tensor *t = attn_params_at(ps, i);
            int64_t n = attn_tensor_numel(t), out = 0;
            double mx = 0.0;
            for (int64_t j = 0; j < n; j++) {
                float v = attn_f32(t)[j];
                out += !(fabsf(v) <= bound);
                mx = fabs(v) > mx ? fabs(v) : mx;
            }
            CHECK(out == 0 && mx > 0.5 * bound, "%s: %lld values outside +-%g, max |v| %g", t->name,
                  (long long)out, (double)bound, mx);
        }
        /* the same layer again under the same prefix: duplicate names */
        attn_rnn r2;
        CHECK(attn_rnn_init(&r2, ps, "encoder.rnn.", &cfg, &rng) == ATTN_ERR_INVALID_ARG &&
                  strstr(attn_last_error(), "already exists"),
              "re-adding the same names: %s", attn_last_error());
        /* no_bias: only the weights */
        attn_params *p2 = NULL;
        attn_rnn_config nb = {
            .cell = ATTN_RNN_GRU, .input_size = 2, .hidden_size = 2, .num_layers = 1, .no_bias = 1};
        CHECK_OK(attn_params_new(&p2));
        if (p2) {
            CHECK_OK(attn_rnn_init(&r2, p2, NULL, &nb, NULL));
            CHECK(attn_params_count(p2) == 2 && r2.b_ih[0][0] == NULL && r2.b_hh[0][0] == NULL &&
                      attn_params_find(p2, "weight_hh_l0"),
                  "no_bias: %d parameters", attn_params_count(p2));
        }
        attn_params_free(p2);
    }
    attn_params_free(ps);
    TEST_END();
}

/* ==== error paths ========================================================================== */

static void test_errors(void) {
    TEST_BEGIN("rnn/error paths");
    attn_params *ps = NULL;
    attn_rnn rnn, bad;
    CHECK_OK(attn_params_new(&ps));
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    if (!ps || !ctx) goto out;
    attn_rnn_config cfg = {.cell = ATTN_RNN_GRU,
                           .input_size = 3,
                           .hidden_size = 4,
                           .num_layers = 1,
                           .bidirectional = 1};
    /* configurations */
    attn_rnn_config c = cfg;
    c.cell = (attn_rnn_cell)7;
    CHECK(attn_rnn_init(&bad, ps, "a.", &c, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "attn_rnn_init: cell"),
          "cell 7: %s", attn_last_error());
    c = cfg, c.hidden_size = 0;
    CHECK(attn_rnn_init(&bad, ps, "a.", &c, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "hidden_size 0"),
          "H 0: %s", attn_last_error());
    c = cfg, c.num_layers = ATTN_RNN_MAX_LAYERS + 1;
    CHECK(attn_rnn_init(&bad, ps, "a.", &c, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "num_layers"),
          "L 9: %s", attn_last_error());
    c = cfg, c.dropout = 1.0f;
    CHECK(attn_rnn_init(&bad, ps, "a.", &c, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "dropout"),
          "dropout 1: %s", attn_last_error());
    CHECK(attn_rnn_init(&bad, ps, "a.", NULL, NULL) == ATTN_ERR_INVALID_ARG, "NULL config");
    CHECK(attn_params_count(ps) == 0, "failed inits added %d parameters", attn_params_count(ps));
    CHECK_OK(attn_rnn_init(&rnn, ps, "r.", &cfg, NULL));

    const int64_t xs[3] = {2, 5, 3};
    attn_tensor *hn = NULL, *cn = NULL;
    /* shapes and dtypes */
    test_expect_fail(ctx,
           !attn_rnn_forward(ctx, &rnn,
                             attn_tensor_new(ctx, ATTN_F32, 3, (const int64_t[3]){2, 5, 4}), NULL,
                             NULL, NULL, &hn, NULL),
           ATTN_ERR_SHAPE, "attn_rnn_forward: x [2,5,4]", "x with In 4");
    CHECK(hn == NULL, "h_n set after an error");
    test_expect_fail(ctx,
           !attn_rnn_forward(ctx, &rnn, attn_tensor_new(ctx, ATTN_I32, 3, xs), NULL, NULL, NULL,
                             NULL, NULL),
           ATTN_ERR_DTYPE, "attn_rnn_forward: x", "x i32");
    test_expect_fail(ctx,
           !attn_rnn_forward(ctx, &rnn, attn_tensor_new(ctx, ATTN_F32, 3, xs), NULL,
                             attn_tensor_new(ctx, ATTN_F32, 3, (const int64_t[3]){1, 2, 4}), NULL,
                             NULL, NULL),
           ATTN_ERR_SHAPE, "h0 [1,2,4]", "h0 with L*D 1");
    /* lengths */
    const int32_t big[2] = {5, 6};
    test_expect_fail(ctx,
           !attn_rnn_forward(ctx, &rnn, attn_tensor_new(ctx, ATTN_F32, 3, xs),
                             attn_tensor_from(ctx, ATTN_I32, 1, (const int64_t[1]){2}, big), NULL,
                             NULL, NULL, NULL),
           ATTN_ERR_INVALID_ARG, "lengths[1] = 6", "length 6 > T 5");
    test_expect_fail(ctx,
           !attn_rnn_forward(ctx, &rnn, attn_tensor_new(ctx, ATTN_F32, 3, xs),
                             attn_tensor_new(ctx, ATTN_F32, 1, (const int64_t[1]){2}), NULL, NULL,
                             NULL, NULL),
           ATTN_ERR_DTYPE, "lengths", "f32 lengths");
    test_expect_fail(ctx,
           !attn_rnn_forward(ctx, &rnn, attn_tensor_new(ctx, ATTN_F32, 3, xs),
                             attn_tensor_new(ctx, ATTN_I32, 1, (const int64_t[1]){3}), NULL, NULL,
                             NULL, NULL),
           ATTN_ERR_SHAPE, "lengths [3]", "3 lengths for B 2");
    /* LSTM-only arguments, NULLs, the step API on a bidirectional rnn */
    test_expect_fail(ctx,
           !attn_rnn_forward(ctx, &rnn, attn_tensor_new(ctx, ATTN_F32, 3, xs), NULL, NULL, NULL,
                             &hn, &cn),
           ATTN_ERR_INVALID_ARG, "c0 or c_n given for a GRU", "c_n for a GRU");
    test_expect_fail(ctx, !attn_rnn_forward(ctx, &rnn, NULL, NULL, NULL, NULL, NULL, NULL),
           ATTN_ERR_INVALID_ARG, "attn_rnn_forward", "NULL x");
    test_expect_fail(ctx,
           !attn_rnn_forward(ctx, NULL, attn_tensor_new(ctx, ATTN_F32, 3, xs), NULL, NULL, NULL,
                             NULL, NULL),
           ATTN_ERR_INVALID_ARG, "rnn is NULL", "NULL rnn");
    memset(&bad, 0, sizeof bad);
    bad.cfg = cfg;
    test_expect_fail(ctx,
           !attn_rnn_forward(ctx, &bad, attn_tensor_new(ctx, ATTN_F32, 3, xs), NULL, NULL, NULL,
                             NULL, NULL),
           ATTN_ERR_INVALID_ARG, "are missing", "uninitialised rnn");
    test_expect_fail(ctx,
           !attn_rnn_step(ctx, &rnn, attn_tensor_new(ctx, ATTN_F32, 2, (const int64_t[2]){2, 3}),
                          NULL, NULL, NULL, NULL),
           ATTN_ERR_INVALID_ARG, "bidirectional", "step on a bidirectional rnn");
    /* the step API's own checks */
    attn_rnn uni;
    attn_rnn_config u2 = {
        .cell = ATTN_RNN_LSTM, .input_size = 3, .hidden_size = 4, .num_layers = 2};
    CHECK_OK(attn_rnn_init(&uni, ps, "u.", &u2, NULL));
    attn_tensor *ho[2], *co[2];
    test_expect_fail(ctx,
           !attn_rnn_step(ctx, &uni, attn_tensor_new(ctx, ATTN_F32, 2, (const int64_t[2]){2, 3}),
                          NULL, NULL, NULL, NULL),
           ATTN_ERR_INVALID_ARG, "h_out", "2 layers without h_out");
    test_expect_fail(ctx,
           !attn_rnn_step(ctx, &uni, attn_tensor_new(ctx, ATTN_F32, 2, (const int64_t[2]){2, 4}),
                          NULL, NULL, ho, co),
           ATTN_ERR_SHAPE, "attn_rnn_step: x_t [2,4]", "x_t with In 4");
    attn_tensor *hs[2];
    hs[0] = attn_tensor_new(ctx, ATTN_F32, 2, (const int64_t[2]){2, 4});
    hs[1] = attn_tensor_new(ctx, ATTN_F32, 2, (const int64_t[2]){2, 5});
    test_expect_fail(ctx,
           !attn_rnn_step(ctx, &uni, attn_tensor_new(ctx, ATTN_F32, 2, (const int64_t[2]){2, 3}),
                          hs, NULL, ho, co),
           ATTN_ERR_SHAPE, "h_in[1] [2,5]", "h_in[1] of H 5");
    /* a NULL input after an earlier error keeps the first error */
    attn_tensor_new(ctx, ATTN_F32, ATTN_MAX_DIMS + 1, (const int64_t[ATTN_MAX_DIMS + 1]){0});
    char first[512];
    snprintf(first, sizeof first, "%s", attn_ctx_error(ctx));
    CHECK(!attn_rnn_forward(ctx, &rnn, NULL, NULL, NULL, NULL, NULL, NULL) &&
              strcmp(first, attn_ctx_error(ctx)) == 0,
          "chained NULL input replaced the first error '%s' by '%s'", first, attn_ctx_error(ctx));
out:
    attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

void suite_rnn(void) {
    test_parity();
    test_finite_differences();
    test_step_matches_forward();
    test_cells_fast_vs_ref();
    test_degenerate_shapes();
    test_cell_at();
    test_cell_lookup();
    test_forward_ids();
    test_length_zero();
    test_dropout();
    test_names_and_init();
    test_errors();
}
