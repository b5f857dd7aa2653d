/* test_lama.c: LAMA attention pooling (include/attn/lama.h) and the BiGRU
 * classifier with its poolings (include/attn/gru_classifier.h); suite
 * "lama".
 *
 *   (a) PyTorch parity (tests/fixtures/lama.atfx, written by
 *       tools/make_sha_lama_fixtures.py from the paper's equations): LAMA
 *       with padded rows and the context as the masked mean, and with a
 *       given context: output, the k attention distributions, the gradients
 *       of h, c, P and Q; the classifier with LAMA, single-head attention
 *       and mean pooling over variable-length rows: logits and the gradient
 *       of every parameter;
 *   (b) finite differences (central, double accumulation of sum(y * r)) of
 *       8 elements of h (and c) and one element of P and Q, and of every
 *       parameter of the LAMA classifier;
 *   (c) padding: tokens past a row's length do not move its logits;
 *   (d) errors: bad sizes, lengths outside [1, n].
 *
 * Tolerance: LA_ATOL 3e-5, LA_RTOL 2e-4 (float32 composed ops, d <= 6,
 * n <= 5; the fixtures are float64 rounded once). Finite differences: h
 * 1e-2, |fd - analytic| <= 2e-3 + 2e-2 |fd|. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "test.h"

#define LA_ATOL 3e-5f
#define LA_RTOL 2e-4f
#define SCRIPT "tools/make_sha_lama_fixtures.py"
#define N_CASES 5

typedef struct la_case {
    const atfx_file *fx;
    int k, kind;
    const int32_t *cfg;
    attn_params *ps;
    attn_lama lama;
    attn_gru_classifier *m;
    float *in[2]; /* LAMA: h, c */
    const atfx_tensor *it[2], *lengths, *ids;
    int n_in;
} la_case;

static const atfx_tensor *need(const la_case *c, const char *what, attn_dtype dt) {
    char nm[96];
    snprintf(nm, sizeof nm, "c%d.%s", c->k, what);
    return test_fx_need(c->fx, nm, dt, -1, SCRIPT);
}

static void case_free(la_case *c) {
    for (int i = 0; i < 2; i++) free(c->in[i]);
    attn_gru_classifier_free(c->m);
    attn_params_free(c->ps);
    memset(c, 0, sizeof *c);
}

static int case_make(const atfx_file *fx, int k, la_case *c) {
    memset(c, 0, sizeof *c);
    c->fx = fx;
    c->k = k;
    const atfx_tensor *ct = need(c, "cfg", ATTN_I32);
    c->lengths = need(c, "lengths", ATTN_I32);
    if (!ct || !c->lengths || attn_params_new(&c->ps) != ATTN_OK) return -1;
    c->cfg = atfx_i32(ct);
    c->kind = c->cfg[0];
    attn_status st;
    if (c->kind == 0) {
        st = attn_lama_init(&c->lama, c->ps, "", c->cfg[1], c->cfg[2], c->cfg[3], NULL);
        c->n_in = c->cfg[6] ? 2 : 1;
    } else {
        attn_gru_classifier_config mc;
        memset(&mc, 0, sizeof mc);
        mc.vocab = c->cfg[1];
        mc.embed = c->cfg[2];
        mc.hidden = c->cfg[3];
        mc.classes = c->cfg[4];
        mc.pool = (attn_pool_kind)c->cfg[5];
        mc.heads = c->cfg[6];
        mc.rank = c->cfg[7];
        st = attn_gru_classifier_new(&c->m, c->ps, &mc, NULL);
        c->ids = need(c, "ids", ATTN_I32);
        if (!c->ids) return -1;
    }
    CHECK(st == ATTN_OK, "case %d: init: %s", k, attn_last_error());
    if (st != ATTN_OK || test_load_torch_params(fx, k, c->ps, 0, "lama") < 0) return -1;
    const char *names[2] = {"h", "c"};
    for (int i = 0; i < c->n_in; i++) {
        if (!(c->it[i] = need(c, names[i], ATTN_F32))) return -1;
        c->in[i] = malloc(sizeof(float) * (size_t)c->it[i]->numel);
        if (!c->in[i]) return -1;
        memcpy(c->in[i], atfx_f32(c->it[i]), sizeof(float) * (size_t)c->it[i]->numel);
    }
    return 0;
}

static attn_tensor *case_forward(attn_ctx *ctx, const la_case *c, attn_tensor **leaves, attn_tensor **w) {
    attn_tensor *x[2] = {NULL, NULL};
    for (int i = 0; i < c->n_in; i++) {
        x[i] = attn_tensor_from(ctx, ATTN_F32, c->it[i]->ndim, c->it[i]->shape, c->in[i]);
        if (x[i] && leaves) {
            x[i]->requires_grad = 1;
            leaves[i] = x[i];
        }
    }
    attn_tensor *len = attn_tensor_from(ctx, ATTN_I32, 1, c->lengths->shape, atfx_i32(c->lengths));
    if (c->kind == 0) return attn_lama_forward(ctx, &c->lama, x[0], len, x[1], w);
    attn_tensor *ids = attn_tensor_from(ctx, ATTN_I32, 2, c->ids->shape, atfx_i32(c->ids));
    return attn_gru_classifier_logits(ctx, c->m, ids, len, w);
}

static void parity_case(const atfx_file *fx, int k) {
    char tag[96], nm[160];
    snprintf(tag, sizeof tag, "lama/case %d: PyTorch parity", k);
    TEST_BEGIN(tag);
    la_case c;
    attn_ctx *ctx = NULL;
    if (case_make(fx, k, &c) != 0) goto out;
    ctx = test_ctx_new((size_t)64 << 20, 1, 1);
    const atfx_tensor *go = need(&c, "grad_out", ATTN_F32);
    if (!ctx || !go) goto out;
    attn_tensor *leaves[2] = {NULL, NULL}, *w = NULL;
    attn_tensor *y = case_forward(ctx, &c, leaves, c.kind == 0 ? &w : NULL);
    CHECK(y != NULL, "forward: %s", attn_ctx_error(ctx));
    if (!y) goto out;
    snprintf(nm, sizeof nm, "c%d.out", k);
    test_fx_close(tag, "output", attn_f32(y), fx, nm, attn_tensor_numel(y), LA_ATOL, LA_RTOL, SCRIPT);
    float *wcopy = NULL;
    if (w) {
        /* the weights as values (the tensor stays on the tape) */
        wcopy = malloc(sizeof(float) * (size_t)attn_tensor_numel(w));
        if (wcopy) memcpy(wcopy, attn_f32(w), sizeof(float) * (size_t)attn_tensor_numel(w));
        snprintf(nm, sizeof nm, "c%d.weights", k);
        if (wcopy) test_fx_close(tag, "weights", wcopy, fx, nm, attn_tensor_numel(w), LA_ATOL, LA_RTOL, SCRIPT);
        free(wcopy);
    }
    CHECK_OK(attn_backward_from(ctx, y, atfx_f32(go)));
    const char *inn[2] = {"h", "c"};
    for (int i = 0; i < c.n_in; i++) {
        snprintf(nm, sizeof nm, "c%d.grad.%s", k, inn[i]);
        test_fx_close(tag, inn[i], leaves[i]->grad, fx, nm, c.it[i]->numel, LA_ATOL, LA_RTOL, SCRIPT);
    }
    for (int i = 0; i < attn_params_count(c.ps); i++) {
        attn_tensor *p = attn_params_at(c.ps, i);
        snprintf(nm, sizeof nm, "c%d.grad.%s", k, p->name);
        test_fx_close(tag, p->name, p->grad, fx, nm, attn_tensor_numel(p), LA_ATOL, LA_RTOL, SCRIPT);
    }
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s", attn_last_error());
out:
    if (ctx) attn_ctx_free(ctx);
    case_free(&c);
    TEST_END();
}

static double loss_of(attn_ctx *ctx, const la_case *c, const float *r) {
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *y = case_forward(ctx, c, NULL, NULL);
    attn_ctx_set_grad_enabled(ctx, 1);
    return y ? test_dot_d(y, r) : NAN;
}

static int fd_probe(attn_ctx *ctx, const la_case *c, const float *r, float *v, double analytic, const char *what,
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
    snprintf(tag, sizeof tag, "lama/case %d: finite differences", k);
    TEST_BEGIN(tag);
    la_case c;
    attn_ctx *ctx = NULL;
    float *g[2] = {NULL, NULL};
    if (case_make(fx, k, &c) != 0) goto out;
    ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    const atfx_tensor *go = need(&c, "grad_out", ATTN_F32);
    if (!ctx || !go) goto out;
    attn_tensor *leaves[2] = {NULL, NULL};
    attn_ctx_reset(ctx);
    attn_params_zero_grad(c.ps);
    attn_tensor *y = case_forward(ctx, &c, leaves, NULL);
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
            bad += fd_probe(ctx, &c, atfx_f32(go), &c.in[i][j], g[i][j], i ? "c" : "h", j);
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

/* (c): tokens past a row's length never reach its logits (every pooling). */
static void test_padding(void) {
    TEST_BEGIN("lama/classifier: padding does not move the logits");
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    for (int pool = 0; ctx && pool < 4; pool++) {
        attn_params *ps = NULL;
        attn_gru_classifier *m = NULL;
        attn_gru_classifier_config mc = {30, 6, 4, 3, (attn_pool_kind)pool, 2, 3, 0.0f};
        attn_rng rng;
        attn_rng_init(&rng, 3);
        if (attn_params_new(&ps) != ATTN_OK || attn_gru_classifier_new(&m, ps, &mc, &rng) != ATTN_OK) {
            CHECK(0, "%s: %s", attn_pool_name((attn_pool_kind)pool), attn_last_error());
            attn_params_free(ps);
            continue;
        }
        /* the same rows padded to 9 with different padding past row 0's length 5 */
        int32_t a[2 * 9], b[2 * 9];
        const int32_t l2[2] = {5, 9};
        for (int i = 0; i < 18; i++) a[i] = b[i] = (i * 7) % 30;
        for (int t = 5; t < 9; t++) b[t] = (t * 13 + 1) % 30;
        float ya[6] = {0}, yb[6] = {0};
        for (int v = 0; v < 2; v++) {
            attn_ctx_reset(ctx);
            attn_tensor *y = attn_gru_classifier_logits(ctx, m,
                attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){2, 9}, v ? b : a),
                attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){2}, l2), NULL);
            if (y) memcpy(v ? yb : ya, attn_f32(y), sizeof ya);
        }
        CHECK(!memcmp(ya, yb, sizeof ya), "%s: padding moved the logits", attn_pool_name((attn_pool_kind)pool));
        attn_gru_classifier_free(m);
        attn_params_free(ps);
    }
    if (ctx) attn_ctx_free(ctx);
    TEST_END();
}

static void test_errors(void) {
    TEST_BEGIN("lama/errors: sizes and lengths");
    attn_params *ps = NULL;
    attn_lama l;
    attn_gru_classifier *m = NULL;
    attn_ctx *ctx = test_ctx_new((size_t)16 << 20, 1, 0);
    CHECK_OK(attn_params_new(&ps));
    CHECK(attn_lama_init(&l, ps, "x.", 4, 0, 2, NULL) == ATTN_ERR_INVALID_ARG, "0 heads accepted");
    CHECK(attn_lama_init(&l, ps, "y.", 4, 2, 0, NULL) == ATTN_ERR_INVALID_ARG, "rank 0 accepted");
    attn_gru_classifier_config mc = {30, 6, 4, 3, ATTN_POOL_MHSA, 3, 1, 0.0f};
    CHECK(attn_gru_classifier_new(&m, ps, &mc, NULL) == ATTN_ERR_INVALID_ARG && !m, "3 heads over width 8 accepted");
    attn_pool_kind pk;
    CHECK(attn_pool_parse("lama", &pk) == 0 && pk == ATTN_POOL_LAMA && attn_pool_parse("max", &pk) == -1,
          "pool names");
    CHECK_OK(attn_lama_init(&l, ps, "z.", 4, 2, 2, NULL));
    if (ctx) {
        attn_tensor *h = attn_tensor_new(ctx, ATTN_F32, 3, (int64_t[]){2, 3, 4});
        const int32_t bad[2] = {3, 0}, big[2] = {4, 1};
        CHECK(!attn_lama_forward(ctx, &l, h, attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){2}, bad), NULL, NULL) &&
                  attn_ctx_status(ctx) == ATTN_ERR_SHAPE,
              "length 0 accepted");
        attn_ctx_reset(ctx);
        h = attn_tensor_new(ctx, ATTN_F32, 3, (int64_t[]){2, 3, 4});
        CHECK(!attn_lama_forward(ctx, &l, h, attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){2}, big), NULL, NULL),
              "length 4 of 3 accepted");
        attn_ctx_reset(ctx);
        h = attn_tensor_new(ctx, ATTN_F32, 3, (int64_t[]){2, 3, 5});
        CHECK(!attn_lama_forward(ctx, &l, h, NULL, NULL, NULL) && attn_ctx_status(ctx) == ATTN_ERR_SHAPE,
              "width 5 for d 4 accepted");
        attn_ctx_free(ctx);
    }
    attn_params_free(ps);
    TEST_END();
}

void suite_lama(void) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/lama.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        TEST_BEGIN("lama/fixture");
        CHECK(0, "%s (regenerate with %s)", err, SCRIPT);
        TEST_END();
        return;
    }
    const atfx_tensor *nc = atfx_findf(fx, "n_cases");
    const int n = nc ? atfx_i32(nc)[0] : 0;
    TEST_BEGIN("lama/fixture has 5 cases");
    CHECK(n == N_CASES, "%d cases", n);
    TEST_END();
    for (int k = 0; k < n; k++) {
        parity_case(fx, k);
        if (k != 3 && k != 4) fd_case(fx, k);
    }
    test_padding();
    test_errors();
    atfx_free(fx);
}
