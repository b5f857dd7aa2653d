/* test_sha_rnn.c: the SHA-RNN's single-headed attention and Boom
 * (include/attn/sha_rnn.h) and the SHA-LSTM / LSTM language models
 * (include/attn/sha_lstm.h); suite "sha_rnn".
 *
 *   (a) PyTorch parity (tests/fixtures/sha_rnn.atfx, written by
 *       tools/make_sha_lama_fixtures.py from the paper's equations and its
 *       released code's conventions): the attention with a memory (S > T,
 *       causal, bottom-right aligned) and without a mask, Boom, the SHA-LSTM
 *       from a given state and memory (2 and 3 blocks, with and without
 *       memory) and the plain LSTM: outputs, attention weights, the
 *       gradients of the inputs and of every parameter, and the state after
 *       the segment (h, c and the memory);
 *   (b) finite differences (central, double accumulation of sum(y * r)) of
 *       8 input elements and one element of every parameter of the
 *       attention and Boom, and of every parameter of the SHA-LSTM;
 *   (c) causality of the model: logits before position t do not move when
 *       the byte at t changes; carrying the state: two segments of 3 give the
 *       logits of one segment of 6 (memory >= 6);
 *   (d) errors: bad configurations and shapes; the ablation without the
 *       attention (attn_layer -1) and its parameter count.
 *
 * Tolerance: SH_ATOL 3e-5, SH_RTOL 2e-4 (float32 composed ops over d <= 6,
 * T <= 4, up to 3 LSTM blocks; the fixtures are float64 rounded once).
 * Finite differences: h 1e-2, |fd - analytic| <= 2e-3 + 2e-2 |fd|. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "test.h"

#define SH_ATOL 3e-5f
#define SH_RTOL 2e-4f
#define SCRIPT "tools/make_sha_lama_fixtures.py"
#define N_CASES 6

/* One fixture case's module and inputs. */
typedef struct sh_case {
    const atfx_file *fx;
    int k, kind;
    const int32_t *cfg;
    attn_params *ps;
    attn_sha_attention att;
    attn_boom boom;
    attn_sha_lstm *m;
    int64_t B, T;
    float *in[2];         /* kind 0: x_q, x_kv; kind 1: x */
    const atfx_tensor *it[2];
    int n_in;
} sh_case;

static const atfx_tensor *need(const sh_case *c, const char *what, attn_dtype dt) {
    char nm[96];
    snprintf(nm, sizeof nm, "c%d.%s", c->k, what);
    return test_fx_need(c->fx, nm, dt, -1, SCRIPT);
}

static void case_free(sh_case *c) {
    for (int i = 0; i < 2; i++) free(c->in[i]);
    attn_sha_lstm_free(c->m);
    attn_params_free(c->ps);
    memset(c, 0, sizeof *c);
}

static int case_make(const atfx_file *fx, int k, sh_case *c) {
    memset(c, 0, sizeof *c);
    c->fx = fx;
    c->k = k;
    const atfx_tensor *ct = need(c, "cfg", ATTN_I32);
    if (!ct || attn_params_new(&c->ps) != ATTN_OK) return -1;
    c->cfg = atfx_i32(ct);
    c->kind = c->cfg[0];
    attn_status st = ATTN_OK;
    const char *names[2] = {"x_q", "x_kv"};
    if (c->kind == 0) {
        st = attn_sha_attention_init(&c->att, c->ps, "", c->cfg[1], NULL);
        c->n_in = 2;
    } else if (c->kind == 1) {
        st = attn_boom_init(&c->boom, c->ps, "", c->cfg[1], c->cfg[2], NULL);
        c->n_in = 1;
        names[0] = "x";
    } else {
        attn_sha_lstm_config mc;
        memset(&mc, 0, sizeof mc);
        mc.arch = (attn_sha_lstm_arch)c->cfg[1];
        mc.vocab = c->cfg[2];
        mc.d = c->cfg[3];
        mc.layers = c->cfg[4];
        mc.attn_layer = c->cfg[5];
        mc.boom = c->cfg[6];
        mc.mem_len = c->cfg[7];
        c->B = c->cfg[8];
        c->T = c->cfg[9];
        st = attn_sha_lstm_new(&c->m, c->ps, &mc, NULL);
    }
    CHECK(st == ATTN_OK, "case %d: init: %s", k, attn_last_error());
    if (st != ATTN_OK) return -1;
    if (test_load_torch_params(fx, k, c->ps, 0, "sha_rnn") < 0) return -1;
    for (int i = 0; i < c->n_in; i++) {
        c->it[i] = need(c, names[i], ATTN_F32);
        if (!c->it[i]) return -1;
        c->in[i] = malloc(sizeof(float) * (size_t)c->it[i]->numel);
        if (!c->in[i]) return -1;
        memcpy(c->in[i], atfx_f32(c->it[i]), sizeof(float) * (size_t)c->it[i]->numel);
    }
    return 0;
}

/* The model's state from the fixture (h0, c0, memory). */
static int state_from(const sh_case *c, attn_sha_lstm_state *s) {
    if (attn_sha_lstm_state_init(s, c->m, c->B) != ATTN_OK) return -1;
    const atfx_tensor *h0 = need(c, "h0", ATTN_F32), *c0 = need(c, "c0", ATTN_F32), *mm = need(c, "mem", ATTN_F32);
    if (!h0 || !c0 || !mm) return -1;
    memcpy(s->h, atfx_f32(h0), sizeof(float) * (size_t)h0->numel);
    memcpy(s->c, atfx_f32(c0), sizeof(float) * (size_t)c0->numel);
    memcpy(s->mem, atfx_f32(mm), sizeof(float) * (size_t)mm->numel);
    s->fill = mm->shape[1];
    return 0;
}

/* The case's output; leaves (with gradients) when `leaves` is not NULL; the
 * model's state after the segment into *after when not NULL. */
static attn_tensor *case_forward(attn_ctx *ctx, const sh_case *c, attn_tensor **leaves, attn_tensor **w,
                                 attn_sha_lstm_state *after) {
    attn_tensor *x[2] = {NULL, NULL};
    for (int i = 0; i < c->n_in; i++) {
        x[i] = attn_tensor_from(ctx, ATTN_F32, c->it[i]->ndim, c->it[i]->shape, c->in[i]);
        if (x[i] && leaves) {
            x[i]->requires_grad = 1;
            leaves[i] = x[i];
        }
    }
    if (c->kind == 0) return attn_sha_attention_forward(ctx, &c->att, x[0], x[1], c->cfg[5], w);
    if (c->kind == 1) return attn_boom_forward(ctx, &c->boom, x[0]);
    const atfx_tensor *ids = need(c, "ids", ATTN_I32);
    attn_sha_lstm_state s;
    memset(&s, 0, sizeof s);
    attn_tensor *y = NULL;
    if (ids && state_from(c, &s) == 0) {
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, ids->shape, atfx_i32(ids));
        y = attn_sha_lstm_logits(ctx, c->m, ti, &s, w);
    }
    if (after) *after = s;
    else attn_sha_lstm_state_free(&s);
    return y;
}

static void parity_case(const atfx_file *fx, int k) {
    char tag[96], nm[160];
    snprintf(tag, sizeof tag, "sha_rnn/case %d: PyTorch parity", k);
    TEST_BEGIN(tag);
    sh_case c;
    attn_ctx *ctx = NULL;
    attn_sha_lstm_state after;
    memset(&after, 0, sizeof after);
    if (case_make(fx, k, &c) != 0) goto out;
    ctx = test_ctx_new((size_t)64 << 20, 1, 1);
    const atfx_tensor *go = need(&c, "grad_out", ATTN_F32);
    if (!ctx || !go) goto out;
    attn_tensor *leaves[2] = {NULL, NULL}, *w = NULL;
    attn_tensor *y = case_forward(ctx, &c, leaves, c.kind == 0 ? &w : NULL, c.kind == 2 ? &after : NULL);
    CHECK(y != NULL, "forward: %s", attn_ctx_error(ctx));
    if (!y) goto out;
    snprintf(nm, sizeof nm, "c%d.out", k);
    test_fx_close(tag, "output", attn_f32(y), fx, nm, attn_tensor_numel(y), SH_ATOL, SH_RTOL, SCRIPT);
    if (w) {
        snprintf(nm, sizeof nm, "c%d.weights", k);
        test_fx_close(tag, "weights", attn_f32(w), fx, nm, attn_tensor_numel(w), SH_ATOL, SH_RTOL, SCRIPT);
    }
    if (c.kind == 2) {
        const int64_t n = after.L * after.B * after.d;
        snprintf(nm, sizeof nm, "c%d.new_h", k);
        test_fx_close(tag, "state h", after.h, fx, nm, n, SH_ATOL, SH_RTOL, SCRIPT);
        snprintf(nm, sizeof nm, "c%d.new_c", k);
        test_fx_close(tag, "state c", after.c, fx, nm, n, SH_ATOL, SH_RTOL, SCRIPT);
        const atfx_tensor *nmem = atfx_findf(fx, "c%d.new_mem", k);
        CHECK((nmem != NULL) == (after.M > 0), "memory kept: %lld rows of capacity %lld", (long long)after.fill,
              (long long)after.M);
        if (nmem) {
            CHECK(after.fill == nmem->shape[1], "memory rows %lld, expected %lld", (long long)after.fill,
                  (long long)nmem->shape[1]);
            snprintf(nm, sizeof nm, "c%d.new_mem", k);
            test_fx_close(tag, "memory", after.mem, fx, nm, nmem->numel, SH_ATOL, SH_RTOL, SCRIPT);
        }
    }
    CHECK_OK(attn_backward_from(ctx, y, atfx_f32(go)));
    const char *inn[2] = {c.kind == 0 ? "x_q" : "x", "x_kv"};
    for (int i = 0; i < c.n_in; i++) {
        snprintf(nm, sizeof nm, "c%d.grad.%s", k, inn[i]);
        test_fx_close(tag, inn[i], leaves[i]->grad, fx, nm, c.it[i]->numel, SH_ATOL, SH_RTOL, SCRIPT);
    }
    for (int i = 0; i < attn_params_count(c.ps); i++) {
        attn_tensor *p = attn_params_at(c.ps, i);
        snprintf(nm, sizeof nm, "c%d.grad.%s", k, p->name);
        test_fx_close(tag, p->name, p->grad, fx, nm, attn_tensor_numel(p), SH_ATOL, SH_RTOL, SCRIPT);
    }
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s", attn_last_error());
out:
    attn_sha_lstm_state_free(&after);
    if (ctx) attn_ctx_free(ctx);
    case_free(&c);
    TEST_END();
}

static double loss_of(attn_ctx *ctx, const sh_case *c, const float *r) {
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *y = case_forward(ctx, c, NULL, NULL, NULL);
    attn_ctx_set_grad_enabled(ctx, 1);
    return y ? test_dot_d(y, r) : NAN;
}

static int fd_probe(attn_ctx *ctx, const sh_case *c, const float *r, float *v, double analytic, const char *what,
                    int64_t j) {
    const float h = 1e-2f, keep = *v;
    *v = keep + h;
    const double lp = loss_of(ctx, c, r);
    *v = keep - h;
    const double lm = loss_of(ctx, c, r);
    *v = keep;
    const double fd = (lp - lm) / (2.0 * h);
    if (fabs(fd - analytic) <= 2e-3 + 2e-2 * fabs(fd)) return 0;
    CHECK(0, "%s[%lld]: analytic %g, central difference %g", what, (long long)j, analytic, fd);
    return 1;
}

static void fd_case(const atfx_file *fx, int k) {
    char tag[96];
    snprintf(tag, sizeof tag, "sha_rnn/case %d: finite differences", k);
    TEST_BEGIN(tag);
    sh_case c;
    attn_ctx *ctx = NULL;
    float *g[2] = {NULL, NULL};
    if (case_make(fx, k, &c) != 0) goto out;
    ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    const atfx_tensor *go = need(&c, "grad_out", ATTN_F32);
    if (!ctx || !go) goto out;
    attn_tensor *leaves[2] = {NULL, NULL};
    attn_ctx_reset(ctx);
    attn_params_zero_grad(c.ps);
    attn_tensor *y = case_forward(ctx, &c, leaves, NULL, NULL);
    CHECK(y != NULL, "forward: %s", attn_ctx_error(ctx));
    if (!y) goto out;
    CHECK_OK(attn_backward_from(ctx, y, atfx_f32(go)));
    for (int i = 0; i < c.n_in; i++) {
        g[i] = malloc(sizeof(float) * (size_t)c.it[i]->numel);
        if (!g[i]) goto out;
        memcpy(g[i], leaves[i]->grad, sizeof(float) * (size_t)c.it[i]->numel);
    }
    int bad = 0, probes = 0;
    for (int i = 0; i < c.n_in; i++) {
        const int64_t n = c.it[i]->numel;
        for (int64_t j = 0; j < n; j += n / 8 + 1, probes++)
            bad += fd_probe(ctx, &c, atfx_f32(go), &c.in[i][j], g[i][j], i ? "x_kv" : "x", j);
    }
    for (int i = 0; i < attn_params_count(c.ps); i++, probes++) {
        attn_tensor *p = attn_params_at(c.ps, i);
        const int64_t j = ((int64_t)i * 7) % attn_tensor_numel(p);
        bad += fd_probe(ctx, &c, atfx_f32(go), &attn_f32(p)[j], p->grad[j], p->name, j);
    }
    CHECK(bad == 0 && probes >= 10, "%d of %d probes out of tolerance", bad, probes);
out:
    free(g[0]);
    free(g[1]);
    if (ctx) attn_ctx_free(ctx);
    case_free(&c);
    TEST_END();
}

/* (c): causality and carrying the state across segments. */
static void test_causal_and_carry(void) {
    TEST_BEGIN("sha_rnn/model: causal, and two segments equal one");
    attn_params *ps = NULL;
    attn_sha_lstm *m = NULL;
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    attn_sha_lstm_state s1, s2;
    memset(&s1, 0, sizeof s1);
    memset(&s2, 0, sizeof s2);
    attn_sha_lstm_config mc = {ATTN_SHA_LSTM, 20, 8, 2, 1, 4, 8};
    attn_rng rng;
    attn_rng_init(&rng, 5);
    if (!ctx || attn_params_new(&ps) != ATTN_OK || attn_sha_lstm_new(&m, ps, &mc, &rng) != ATTN_OK ||
        attn_sha_lstm_state_init(&s1, m, 2) != ATTN_OK || attn_sha_lstm_state_init(&s2, m, 2) != ATTN_OK) {
        CHECK(0, "setup: %s", attn_last_error());
        goto out;
    }
    attn_ctx_set_grad_enabled(ctx, 0);
    int32_t ids[12] = {1, 5, 7, 2, 9, 3, 4, 4, 0, 19, 8, 6}, ids2[12];
    float full[2 * 6 * 20], part[2 * 6 * 20];
    attn_tensor *y = attn_sha_lstm_logits(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){2, 6}, ids), &s1,
                                          NULL);
    CHECK(y != NULL, "%s", attn_ctx_error(ctx));
    if (!y) goto out;
    memcpy(full, attn_f32(y), sizeof full);
    /* causal: change byte 3 of each row, rows' logits 0..2 stay */
    memcpy(ids2, ids, sizeof ids);
    ids2[3] = 11;
    ids2[9] = 12;
    attn_sha_lstm_state_reset(&s1);
    attn_ctx_reset(ctx);
    y = attn_sha_lstm_logits(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){2, 6}, ids2), &s1, NULL);
    int moved_before = 0, moved_at = 0;
    for (int b = 0; y && b < 2; b++)
        for (int t = 0; t < 6; t++)
            for (int v = 0; v < 20; v++) {
                const int i = (b * 6 + t) * 20 + v;
                if (t < 3) moved_before += attn_f32(y)[i] != full[i];
                else moved_at += attn_f32(y)[i] != full[i];
            }
    CHECK(y && moved_before == 0 && moved_at > 0, "logits before t moved %d times, at or after t %d", moved_before,
          moved_at);
    /* carry: two segments of 3 from the same zero state */
    for (int seg = 0; seg < 2; seg++) {
        int32_t part_ids[6];
        for (int b = 0; b < 2; b++)
            for (int t = 0; t < 3; t++) part_ids[b * 3 + t] = ids[b * 6 + seg * 3 + t];
        attn_ctx_reset(ctx);
        y = attn_sha_lstm_logits(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){2, 3}, part_ids), &s2, NULL);
        if (!y) break;
        for (int b = 0; b < 2; b++)
            memcpy(part + (b * 6 + seg * 3) * 20, attn_f32(y) + b * 3 * 20, sizeof(float) * 3 * 20);
    }
    CHECK(y != NULL, "%s", attn_ctx_error(ctx));
    if (y) test_allclose("two segments vs one", part, full, 2 * 6 * 20, 1e-5f, 1e-4f);
out:
    attn_sha_lstm_state_free(&s1);
    attn_sha_lstm_state_free(&s2);
    if (ctx) attn_ctx_free(ctx);
    attn_sha_lstm_free(m);
    attn_params_free(ps);
    TEST_END();
}

static void test_errors(void) {
    TEST_BEGIN("sha_rnn/errors: configurations and shapes");
    attn_params *ps = NULL;
    attn_sha_lstm *m = NULL;
    attn_ctx *ctx = test_ctx_new((size_t)16 << 20, 1, 0);
    CHECK_OK(attn_params_new(&ps));
    attn_sha_lstm_config bad[4] = {{ATTN_SHA_LSTM, 1, 8, 2, 0, 4, 4}, {ATTN_SHA_LSTM, 20, 8, 2, 2, 4, 4},
                                   {ATTN_SHA_LSTM, 20, 8, 9, 0, 4, 4}, {ATTN_SHA_LSTM, 20, 8, 2, 0, 0, 4}};
    for (int i = 0; i < 4; i++) {
        CHECK(attn_sha_lstm_new(&m, ps, &bad[i], NULL) == ATTN_ERR_INVALID_ARG && !m, "config %d accepted", i);
        CHECK(attn_sha_lstm_param_count(&bad[i]) == -1, "config %d counted", i);
    }
    /* the ablation (attn_layer -1): the same blocks without the attention's parameters */
    attn_sha_lstm_config noatt = {ATTN_SHA_LSTM, 20, 8, 2, -1, 4, 8}, att = noatt, worse = noatt;
    att.attn_layer = 1;
    worse.attn_layer = -2;
    CHECK(attn_sha_lstm_param_count(&att) - attn_sha_lstm_param_count(&noatt) == 3 * 64 + 12 * 8 &&
              attn_sha_lstm_param_count(&worse) == -1,
          "parameter counts with and without the attention: %lld, %lld", (long long)attn_sha_lstm_param_count(&att),
          (long long)attn_sha_lstm_param_count(&noatt));
    attn_params *ps2 = NULL;
    attn_sha_lstm *m2 = NULL;
    attn_rng rng;
    attn_rng_init(&rng, 9);
    if (ctx && attn_params_new(&ps2) == ATTN_OK && attn_sha_lstm_new(&m2, ps2, &noatt, &rng) == ATTN_OK) {
        int32_t ids[6] = {1, 2, 3, 4, 5, 6};
        attn_tensor *w = NULL;
        attn_tensor *y = attn_sha_lstm_logits(ctx, m2, attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){2, 3}, ids), NULL, &w);
        CHECK(y && !w && attn_params_numel(ps2) == attn_sha_lstm_param_count(&noatt),
              "the ablation runs without weights and with the counted parameters: %s", attn_ctx_error(ctx));
        attn_ctx_reset(ctx);
    }
    attn_sha_lstm_free(m2);
    attn_params_free(ps2);
    attn_sha_attention a;
    attn_boom bm;
    CHECK(attn_sha_attention_init(&a, ps, "a.", 0, NULL) == ATTN_ERR_INVALID_ARG, "d 0 accepted");
    CHECK(attn_boom_init(&bm, ps, "b.", 4, 0, NULL) == ATTN_ERR_INVALID_ARG, "n 0 accepted");
    CHECK_OK(attn_sha_attention_init(&a, ps, "a.", 4, NULL));
    if (ctx) {
        attn_tensor *q = attn_tensor_new(ctx, ATTN_F32, 3, (int64_t[]){1, 5, 4});
        attn_tensor *kv = attn_tensor_new(ctx, ATTN_F32, 3, (int64_t[]){1, 3, 4});
        CHECK(!attn_sha_attention_forward(ctx, &a, q, kv, 1, NULL) && attn_ctx_status(ctx) == ATTN_ERR_SHAPE,
              "S < T accepted");
        attn_ctx_reset(ctx);
        attn_sha_lstm_config ok = {ATTN_PLAIN_LSTM, 20, 4, 1, 0, 4, 0};
        CHECK(attn_sha_lstm_param_count(&ok) == 20 * 4 + 20 + 8 * 16 + 8 * 4, "LSTM parameter count");
        attn_sha_lstm_state s;
        if (attn_sha_lstm_new(&m, ps, &ok, NULL) == ATTN_OK && attn_sha_lstm_state_init(&s, m, 3) == ATTN_OK) {
            int32_t ids[4] = {1, 2, 3, 25};
            attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){2, 2}, ids);
            CHECK(!attn_sha_lstm_logits(ctx, m, t, &s, NULL) && attn_ctx_status(ctx) == ATTN_ERR_SHAPE,
                  "a state of batch 3 for ids of batch 2 accepted");
            attn_ctx_reset(ctx);
            CHECK(!attn_sha_lstm_logits(ctx, m, t, NULL, NULL) && attn_ctx_status(ctx) == ATTN_ERR_INVALID_ARG,
                  "id 25 of a vocabulary of 20 accepted");
            attn_sha_lstm_state_free(&s);
        }
        attn_ctx_free(ctx);
    }
    attn_sha_lstm_free(m);
    attn_params_free(ps);
    TEST_END();
}

void suite_sha_rnn(void) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/sha_rnn.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        TEST_BEGIN("sha_rnn/fixture");
        CHECK(0, "%s (regenerate with %s)", err, SCRIPT);
        TEST_END();
        return;
    }
    const atfx_tensor *nc = atfx_findf(fx, "n_cases");
    const int n = nc ? atfx_i32(nc)[0] : 0;
    TEST_BEGIN("sha_rnn/fixture has 6 cases");
    CHECK(n == N_CASES, "%d cases", n);
    TEST_END();
    for (int k = 0; k < n; k++) {
        parity_case(fx, k);
        if (k != 1 && k != 4) fd_case(fx, k);
    }
    test_causal_and_carry();
    test_errors();
    atfx_free(fx);
}
