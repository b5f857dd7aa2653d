/* test_location_attention.c: the stepped attention scores of rnn_attention.h,
 * location-sensitive (Chorowski et al. 2015, Tacotron 2's form) and Deep
 * Voice 3's attention block, over a few decoder steps:
 *   (a) PyTorch parity (tests/fixtures/location_attention.atfx, written by
 *       tools/make_location_attention_fixtures.py): contexts, weights and
 *       the gradients of q, h and every parameter, fast and reference ops;
 *   (b) a plain double-precision scalar reference written here from the
 *       header's equations (the convolution, the cumulative alignment, the
 *       positional encodings, the window, the sqrt(S_b) scale);
 *   (c) central finite differences of the loss, including the query of the
 *       first step (whose gradient at later steps flows only through the
 *       convolution over the previous alignments) and the filters;
 *   (d) the errors: a stepped score through attn_attention_forward, no state,
 *       a state of the wrong shape, a window start outside [0, S], bad
 *       configurations.
 * The whole encoder-decoder with both kinds is checked in test_seq2seq.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "fixture.h"
#include "test.h"

#define ARENA_BYTES ((size_t)8 << 20)
#define PARITY_ATOL 2e-5f
#define PARITY_RTOL 2e-4f
#define REF_ATOL 1e-5f /* float32 graph against the double scalar reference */
#define REF_RTOL 1e-4f
#define FD_EPS 1e-2f
#define FD_ATOL 2e-3
#define FD_RTOL 2e-2
#define MAXN 4096

static const char SCRIPT[] = "tools/make_location_attention_fixtures.py";

typedef struct lcase {
    attn_attention_config cfg;
    int64_t T, B, S, Dq, Dh;
    const atfx_tensor *q, *h, *len, *win, *gc, *ga;
} lcase;

static int load_case(const atfx_file *fx, int k, lcase *c) {
    memset(c, 0, sizeof *c);
    char name[64];
    snprintf(name, sizeof name, "c%d.cfg", k);
    const atfx_tensor *cv = test_fx_need(fx, name, ATTN_I32, 7, SCRIPT);
    snprintf(name, sizeof name, "c%d.key_rate", k);
    const atfx_tensor *kr = test_fx_need(fx, name, ATTN_F32, 1, SCRIPT);
    snprintf(name, sizeof name, "c%d.q", k);
    c->q = test_fx_need(fx, name, ATTN_F32, -1, SCRIPT);
    snprintf(name, sizeof name, "c%d.h", k);
    c->h = test_fx_need(fx, name, ATTN_F32, -1, SCRIPT);
    snprintf(name, sizeof name, "c%d.len", k);
    c->len = test_fx_need(fx, name, ATTN_I32, -1, SCRIPT);
    snprintf(name, sizeof name, "c%d.gc", k);
    c->gc = test_fx_need(fx, name, ATTN_F32, -1, SCRIPT);
    snprintf(name, sizeof name, "c%d.ga", k);
    c->ga = test_fx_need(fx, name, ATTN_F32, -1, SCRIPT);
    c->win = atfx_findf(fx, "c%d.win", k);
    if (!cv || !kr || !c->q || !c->h || !c->len || !c->gc || !c->ga) return -1;
    if (c->q->ndim != 3 || c->h->ndim != 3) return -1;
    const int32_t *v = atfx_i32(cv);
    c->cfg.score = (attn_score)v[0];
    c->cfg.align = ATTN_ALIGN_GLOBAL;
    c->cfg.query_size = v[1];
    c->cfg.memory_size = v[2];
    c->cfg.attn_size = v[3];
    c->cfg.loc_filters = v[4];
    c->cfg.loc_kernel = v[5];
    c->cfg.window = v[6];
    c->cfg.key_rate = atfx_f32(kr)[0];
    c->T = c->q->shape[0], c->B = c->q->shape[1], c->Dq = c->q->shape[2];
    c->S = c->h->shape[1], c->Dh = c->h->shape[2];
    return 0;
}

/* Runs the T steps; returns the loss sum_t sum(c_t gc_t) + sum(a_t ga_t) and
 * the per-step outputs (when cs/as are not NULL). */
static attn_tensor *run_steps(attn_ctx *ctx, const attn_attention *att, const lcase *c,
                              attn_tensor *q, attn_tensor *h, attn_tensor **cs, attn_tensor **as) {
    attn_tensor *len = attn_tensor_from(ctx, ATTN_I32, 1, c->len->shape, c->len->data);
    attn_attention_memory mem;
    if (!len || attn_attention_memory_init(ctx, att, h, len, &mem)) return NULL;
    attn_attention_state st;
    memset(&st, 0, sizeof st);
    attn_tensor *loss = NULL;
    const int64_t B = c->B, S = c->S, Dh = c->Dh;
    for (int64_t t = 0; t < c->T; t++) {
        const int64_t qs[2] = {B, c->Dq};
        attn_tensor *qt = attn_reshape(ctx, attn_slice(ctx, q, 0, t, 1), 2, qs);
        st.window_from = c->win ? atfx_i32(c->win) + t * B : NULL;
        attn_tensor *a = NULL;
        attn_tensor *ct = qt ? attn_attention_step(ctx, att, &mem, qt, t, &st, &a) : NULL;
        if (!ct || !a) return NULL;
        if (cs) cs[t] = ct;
        if (as) as[t] = a;
        attn_tensor *l = attn_add(ctx, test_dot_loss(ctx, ct, atfx_f32(c->gc) + t * B * Dh),
                                  test_dot_loss(ctx, a, atfx_f32(c->ga) + t * B * S));
        loss = loss ? attn_add(ctx, loss, l) : l;
        if (!loss) return NULL;
    }
    return loss;
}

static attn_status new_module(const atfx_file *fx, int k, const lcase *c, attn_params **ps,
                              attn_attention *att, const char *tag) {
    *ps = NULL;
    attn_status st = attn_params_new(ps);
    if (!st) st = attn_attention_init(att, *ps, "", &c->cfg, NULL);
    if (st) return st;
    return test_load_torch_params(fx, k, *ps, 0, tag) < 0 ? ATTN_ERR_INVALID_ARG : ATTN_OK;
}

/* ---- (b) the scalar reference ----------------------------------------------------------- */

static double pe(int64_t pos, int64_t i, int64_t D, double r) {
    const double ang = r * (double)pos / pow(10000.0, (double)(2 * (i / 2)) / (double)D);
    return i % 2 == 0 ? sin(ang) : cos(ang);
}

static const float *par(const attn_params *ps, const char *name) {
    const attn_tensor *t = attn_params_find(ps, name);
    return t ? attn_f32(t) : NULL;
}

/* Writes c [T, B, Dh] and a [T, B, S] in double from the equations. */
static void scalar_ref(const lcase *c, const attn_params *ps, double *cout, double *aout) {
    const int64_t T = c->T, B = c->B, S = c->S, Dq = c->Dq, Dh = c->Dh;
    const int64_t A = c->cfg.attn_size, K = c->cfg.loc_filters, R = c->cfg.loc_kernel;
    const float *q = atfx_f32(c->q), *h = atfx_f32(c->h);
    const int32_t *len = atfx_i32(c->len);
    const int ls = c->cfg.score == ATTN_SCORE_LOCATION_SENSITIVE;
    const float *wq = par(ps, "W_q.weight");
    for (int64_t b = 0; b < B; b++) {
        const float *hb = h + b * S * Dh;
        double prev[64] = {0}, cum[64] = {0}, keys[64][16], vals[64][16];
        for (int64_t s = 0; s < S; s++)
            for (int64_t j = 0; j < A; j++) {
                double k = 0.0, v = 0.0;
                if (ls) {
                    for (int64_t d = 0; d < Dh; d++) k += par(ps, "W_h.weight")[j * Dh + d] * hb[s * Dh + d];
                } else {
                    k = par(ps, "W_k.bias")[j];
                    v = par(ps, "W_v.bias")[j];
                    for (int64_t d = 0; d < Dh; d++) {
                        k += par(ps, "W_k.weight")[j * Dh + d] *
                             (hb[s * Dh + d] + pe(s, d, Dh, (double)c->cfg.key_rate));
                        v += par(ps, "W_v.weight")[j * Dh + d] * hb[s * Dh + d];
                    }
                }
                keys[s][j] = k;
                vals[s][j] = v;
            }
        for (int64_t t = 0; t < T; t++) {
            const float *qt = q + (t * B + b) * Dq;
            double e[64], a[64], qa[16];
            for (int64_t j = 0; j < A; j++) {
                qa[j] = ls ? 0.0 : par(ps, "W_q.bias")[j];
                for (int64_t i = 0; i < Dq; i++)
                    qa[j] += wq[j * Dq + i] * (qt[i] + (ls ? 0.0 : pe(t, i, Dq, 1.0)));
            }
            int64_t lo = 0, hi = len[b];
            if (!ls && c->win) {
                const int64_t p = atfx_i32(c->win)[t * B + b], W = c->cfg.window;
                lo = p;
                if (p + W < hi) hi = p + W;
            }
            double mx = -INFINITY, z = 0.0;
            for (int64_t s = lo; s < hi; s++) {
                if (ls) {
                    double f[16];
                    for (int64_t kf = 0; kf < K; kf++) {
                        f[kf] = 0.0;
                        for (int64_t r = 0; r < R; r++) {
                            const int64_t x = s + r - (R - 1) / 2;
                            if (x < 0 || x >= S) continue;
                            f[kf] += par(ps, "F.weight")[(kf * 2 + 0) * R + r] * prev[x] +
                                     par(ps, "F.weight")[(kf * 2 + 1) * R + r] * cum[x];
                        }
                    }
                    e[s] = 0.0;
                    for (int64_t j = 0; j < A; j++) {
                        double u = par(ps, "U.bias")[j];
                        for (int64_t kf = 0; kf < K; kf++) u += par(ps, "U.weight")[j * K + kf] * f[kf];
                        e[s] += par(ps, "v.weight")[j] * tanh(qa[j] + keys[s][j] + u);
                    }
                } else {
                    e[s] = 0.0;
                    for (int64_t j = 0; j < A; j++) e[s] += qa[j] * keys[s][j];
                }
                if (e[s] > mx) mx = e[s];
            }
            for (int64_t s = 0; s < S; s++) a[s] = 0.0;
            for (int64_t s = lo; s < hi; s++) z += (a[s] = exp(e[s] - mx));
            for (int64_t s = lo; s < hi; s++) a[s] /= z;
            double *co = cout + (t * B + b) * Dh;
            if (ls) {
                for (int64_t d = 0; d < Dh; d++) {
                    co[d] = 0.0;
                    for (int64_t s = 0; s < S; s++) co[d] += a[s] * hb[s * Dh + d];
                }
                for (int64_t s = 0; s < S; s++) {
                    prev[s] = a[s];
                    cum[s] += a[s];
                }
            } else {
                double cv[16];
                for (int64_t j = 0; j < A; j++) {
                    cv[j] = 0.0;
                    for (int64_t s = 0; s < S; s++) cv[j] += a[s] * vals[s][j];
                    cv[j] *= sqrt((double)len[b]);
                }
                for (int64_t d = 0; d < Dh; d++) {
                    co[d] = par(ps, "W_o.bias")[d];
                    for (int64_t j = 0; j < A; j++) co[d] += par(ps, "W_o.weight")[d * A + j] * cv[j];
                }
            }
            for (int64_t s = 0; s < S; s++) aout[(t * B + b) * S + s] = a[s];
        }
    }
}

/* ---- (a), (b) and (c) per fixture case ------------------------------------------------- */

static void copy_out(float *dst, attn_tensor **xs, int64_t T, int64_t n) {
    for (int64_t t = 0; t < T; t++) memcpy(dst + t * n, attn_f32(xs[t]), sizeof(float) * (size_t)n);
}

static void case_checks(const atfx_file *fx, int k) {
    char label[160], tname[256], tag[64], what[160];
    atfx_text(atfx_findf(fx, "c%d.label", k), label, sizeof label);
    lcase c;
    attn_params *ps = NULL;
    attn_attention att;
    attn_ctx *ctx = NULL;
    static float buf[MAXN], buf2[MAXN];
    static double rc[MAXN], ra[MAXN];
    for (int use_ref = 0; use_ref < 2; use_ref++) {
        snprintf(tname, sizeof tname, "location_attention/parity case %d (%s) [%s]", k, label,
                 use_ref ? "ref" : "fast");
        snprintf(tag, sizeof tag, "case %d [%s]", k, use_ref ? "ref" : "fast");
        TEST_BEGIN(tname);
        if (load_case(fx, k, &c) || new_module(fx, k, &c, &ps, &att, tag)) goto out;
        CHECK(c.T * c.B * c.S <= MAXN && c.T * c.B * c.Dh <= MAXN && c.S <= 64 &&
                  c.cfg.attn_size <= 16 && c.cfg.loc_filters <= 16,
              "%s: case too large for the test's buffers", tag);
        if (test__failed_checks) goto out;
        ctx = test_ctx_new(ARENA_BYTES, 1, 64);
        if (!ctx) goto out;
        attn_ctx_set_use_ref(ctx, use_ref);
        attn_params_zero_grad(ps);
        attn_tensor *q = test_leaf(ctx, 3, c.q->shape, atfx_f32(c.q));
        attn_tensor *h = test_leaf(ctx, 3, c.h->shape, atfx_f32(c.h));
        attn_tensor *cs[16], *as[16];
        attn_tensor *loss = q && h ? run_steps(ctx, &att, &c, q, h, cs, as) : NULL;
        CHECK(loss != NULL, "%s: forward failed: %s", tag, attn_ctx_error(ctx));
        if (!loss) goto out;
        copy_out(buf, cs, c.T, c.B * c.Dh);
        snprintf(what, sizeof what, "%s: contexts vs torch", tag);
        test_allclose(what, buf, atfx_f32(atfx_findf(fx, "c%d.c", k)), c.T * c.B * c.Dh,
                      PARITY_ATOL, PARITY_RTOL);
        copy_out(buf2, as, c.T, c.B * c.S);
        snprintf(what, sizeof what, "%s: weights vs torch", tag);
        test_allclose(what, buf2, atfx_f32(atfx_findf(fx, "c%d.a", k)), c.T * c.B * c.S,
                      PARITY_ATOL, PARITY_RTOL);
        /* (b) the scalar reference, on the fast path's outputs */
        if (!use_ref) {
            scalar_ref(&c, ps, rc, ra);
            float rcf[MAXN], raf[MAXN];
            for (int64_t i = 0; i < c.T * c.B * c.Dh; i++) rcf[i] = (float)rc[i];
            for (int64_t i = 0; i < c.T * c.B * c.S; i++) raf[i] = (float)ra[i];
            snprintf(what, sizeof what, "%s: contexts vs the scalar reference", tag);
            test_allclose(what, buf, rcf, c.T * c.B * c.Dh, REF_ATOL, REF_RTOL);
            snprintf(what, sizeof what, "%s: weights vs the scalar reference", tag);
            test_allclose(what, buf2, raf, c.T * c.B * c.S, REF_ATOL, REF_RTOL);
        }
        CHECK_OK(attn_backward(ctx, loss));
        CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s: guards: %s", tag, attn_last_error());
        snprintf(what, sizeof what, "%s: gradient of q vs torch", tag);
        CHECK(q->grad != NULL, "%s: q has no gradient", tag);
        if (q->grad)
            test_allclose(what, q->grad, atfx_f32(atfx_findf(fx, "c%d.grad.q", k)),
                          attn_tensor_numel(q), PARITY_ATOL, PARITY_RTOL);
        snprintf(what, sizeof what, "%s: gradient of h vs torch", tag);
        CHECK(h->grad != NULL, "%s: h has no gradient", tag);
        if (h->grad)
            test_allclose(what, h->grad, atfx_f32(atfx_findf(fx, "c%d.grad.h", k)),
                          attn_tensor_numel(h), PARITY_ATOL, PARITY_RTOL);
        for (int i = 0; i < attn_params_count(ps); i++) {
            attn_tensor *p = attn_params_at(ps, i);
            const atfx_tensor *g =
                atfx_findf(fx, "c%d.grad.param.%s", k, p->name);
            CHECK(g && p->grad && g->numel == attn_tensor_numel(p),
                  "%s: no gradient of %s (or torch's)", tag, p->name);
            if (!g || !p->grad || g->numel != attn_tensor_numel(p)) continue;
            snprintf(what, sizeof what, "%s: gradient of %s vs torch", tag,
                     p->name);
            test_allclose(what, p->grad, atfx_f32(g), g->numel, PARITY_ATOL, PARITY_RTOL);
        }
        /* (c) central differences of the loss (fast path): the first step's
         * query, h, and the first entries of every parameter */
        if (!use_ref) {
            const float *gq = q->grad, *gh = h->grad;
            float *qd = malloc(sizeof(float) * (size_t)attn_tensor_numel(q));
            float *hd = malloc(sizeof(float) * (size_t)attn_tensor_numel(h));
            if (!qd || !hd || !gq || !gh) {
                free(qd);
                free(hd);
                goto out;
            }
            memcpy(qd, atfx_f32(c.q), sizeof(float) * (size_t)attn_tensor_numel(q));
            memcpy(hd, atfx_f32(c.h), sizeof(float) * (size_t)attn_tensor_numel(h));
            int probes = 0, worst_i = -1;
            double worst = 0.0;
            /* probe list: (tensor 0 = q, 1 = h, 2+ = parameters), index */
            for (int which = 0; which < 2 + attn_params_count(ps); which++) {
                float *x = which == 0 ? qd : which == 1 ? hd : attn_f32(attn_params_at(ps, which - 2));
                const int64_t n = which == 0 ? c.B * c.Dq /* step 0's query */
                                  : which == 1 ? attn_tensor_numel(h)
                                               : attn_tensor_numel(attn_params_at(ps, which - 2));
                const float *ga = which == 0 ? gq : which == 1 ? gh : NULL;
                float *pg = which >= 2 ? attn_params_at(ps, which - 2)->grad : NULL;
                const int64_t stride = n > 6 ? n / 6 : 1;
                for (int64_t i = 0; i < n; i += stride) {
                    const double ana = ga ? ga[i] : pg[i];
                    double lv[2];
                    const float x0 = x[i];
                    for (int sgn = 0; sgn < 2; sgn++) {
                        x[i] = x0 + (sgn ? -FD_EPS : FD_EPS);
                        attn_ctx *fc = test_ctx_new(ARENA_BYTES, 1, 0);
                        if (!fc) break;
                        attn_ctx_set_grad_enabled(fc, 0);
                        attn_tensor *q2 = attn_tensor_from(fc, ATTN_F32, 3, c.q->shape, qd);
                        attn_tensor *h2 = attn_tensor_from(fc, ATTN_F32, 3, c.h->shape, hd);
                        attn_tensor *l2 = run_steps(fc, &att, &c, q2, h2, NULL, NULL);
                        lv[sgn] = l2 ? (double)attn_f32(l2)[0] : NAN;
                        attn_ctx_free(fc);
                    }
                    x[i] = x0;
                    const double num = (lv[0] - lv[1]) / (2.0 * (double)FD_EPS);
                    const double err = fabs(num - ana) - (FD_ATOL + FD_RTOL * fabs(num));
                    probes++;
                    if (!(err <= 0.0)) {
                        CHECK(0, "%s: d loss / d %s[%lld]: finite differences %.6g, backward %.6g",
                              tag, which == 0 ? "q" : which == 1 ? "h" : attn_params_at(ps, which - 2)->name,
                              (long long)i, num, ana);
                        worst_i = which;
                    }
                    if (fabs(num - ana) > worst) worst = fabs(num - ana);
                }
            }
            CHECK(probes >= 20 && worst_i < 0, "%s: %d finite-difference probes", tag, probes);
            if (test__verbose)
                printf("    %d finite-difference probes, worst |fd - backward| %.3g\n", probes,
                       worst);
            free(qd);
            free(hd);
        }
    out:
        attn_ctx_free(ctx);
        ctx = NULL;
        attn_params_free(ps);
        ps = NULL;
        TEST_END();
    }
}

static void test_fixture_cases(void) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/location_attention.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    TEST_BEGIN("location_attention/fixture");
    attn_status st = atfx_load(path, &fx, err, sizeof err);
    CHECK(st == ATTN_OK, "cannot load %s: %s (run %s)", path, err, SCRIPT);
    const atfx_tensor *nc = fx ? atfx_find(fx, "n_cases") : NULL;
    const int n = nc && nc->dtype == ATTN_I32 && nc->numel == 1 ? atfx_i32(nc)[0] : 0;
    CHECK(n >= 4, "%s: %d cases, expected at least 4", path, n);
    TEST_END();
    for (int k = 0; k < n; k++) case_checks(fx, k);
    atfx_free(fx);
}

/* ---- (d) errors -------------------------------------------------------------------------- */

static void test_errors(void) {
    TEST_BEGIN("location_attention/errors");
    attn_params *ps = NULL;
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, 0);
    CHECK_OK(attn_params_new(&ps));
    if (!ps || !ctx) goto out;
    attn_rng rng;
    attn_rng_init(&rng, 5);
    attn_attention_config cfg = {.score = ATTN_SCORE_LOCATION_SENSITIVE, .query_size = 3,
                                 .memory_size = 4, .attn_size = 3, .loc_filters = 2,
                                 .loc_kernel = 4};
    attn_attention ls, dv3;
    CHECK(attn_attention_init(&ls, ps, "a.", &cfg, &rng) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "odd loc_kernel"),
          "an even kernel width: %s", attn_last_error());
    cfg.loc_kernel = 3;
    cfg.align = ATTN_ALIGN_LOCAL_M;
    cfg.window = 1;
    CHECK(attn_attention_init(&ls, ps, "b.", &cfg, &rng) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "global align"),
          "a local align: %s", attn_last_error());
    cfg.align = ATTN_ALIGN_GLOBAL;
    CHECK_OK(attn_attention_init(&ls, ps, "ls.", &cfg, &rng));
    attn_attention_config dc = {.score = ATTN_SCORE_DV3, .query_size = 3, .memory_size = 4,
                                .attn_size = 3, .key_rate = NAN};
    CHECK(attn_attention_init(&dv3, ps, "c.", &dc, &rng) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "key_rate"),
          "a NaN key rate: %s", attn_last_error());
    dc.key_rate = 0.5f;
    dc.dropout = 1.0f;
    CHECK(attn_attention_init(&dv3, ps, "d.", &dc, &rng) == ATTN_ERR_INVALID_ARG,
          "dropout 1: %s", attn_last_error());
    dc.dropout = 0.0f;
    CHECK_OK(attn_attention_init(&dv3, ps, "dv3.", &dc, &rng));
    CHECK(dv3.cfg.window == 3 && ls.cfg.loc_filters == 2, "defaults: window %d", dv3.cfg.window);

    const int64_t hs[3] = {2, 5, 4}, qs[2] = {2, 3}, bad[2] = {2, 4};
    float hv[40], qv[6];
    test_fill_normal(hv, 40, &rng);
    test_fill_normal(qv, 6, &rng);
    attn_tensor *h, *q, *w = NULL;
    attn_attention_memory mem;
    attn_attention_state st;
    /* test_expect_fail resets the context: every check starts afresh */
#define FRESH(module)                                                    \
    do {                                                                 \
        attn_ctx_reset(ctx);                                             \
        memset(&st, 0, sizeof st);                                       \
        h = attn_tensor_from(ctx, ATTN_F32, 3, hs, hv);                  \
        q = attn_tensor_from(ctx, ATTN_F32, 2, qs, qv);                  \
        CHECK_OK(attn_attention_memory_init(ctx, module, h, NULL, &mem)); \
    } while (0)
    FRESH(&ls);
    test_expect_fail(ctx, attn_attention_forward(ctx, &ls, &mem, q, 0, &w, NULL) == NULL,
                     ATTN_ERR_INVALID_ARG, "attn_attention_step", "forward of a stepped score");
    FRESH(&ls);
    test_expect_fail(ctx, attn_attention_step(ctx, &ls, &mem, q, 0, NULL, &w) == NULL,
                     ATTN_ERR_INVALID_ARG, "needs a state", "no state");
    FRESH(&ls);
    st.prev = attn_tensor_new(ctx, ATTN_F32, 2, bad);
    test_expect_fail(ctx, attn_attention_step(ctx, &ls, &mem, q, 0, &st, &w) == NULL,
                     ATTN_ERR_SHAPE, "state prev [2,4]", "a state of the wrong shape");
    /* a full step, then the state holds the new alignment */
    FRESH(&ls);
    attn_tensor *c1 = attn_attention_step(ctx, &ls, &mem, q, 0, &st, &w);
    CHECK(c1 && st.prev == w && st.cum && c1->shape[1] == 4, "one step: %s", attn_ctx_error(ctx));
    FRESH(&dv3);
    const int32_t win[2] = {0, 6};
    st.window_from = win;
    test_expect_fail(ctx, attn_attention_step(ctx, &dv3, &mem, q, 0, &st, &w) == NULL,
                     ATTN_ERR_INVALID_ARG, "window_from[1] = 6", "a window past the keys");
    /* windows [4, 7) and [5, 8) of 5 keys: one key, then none (zero weights;
     * the context is then the output projection's bias) */
    FRESH(&dv3);
    const int32_t win2[2] = {4, 5};
    st.window_from = win2;
    attn_tensor *c2 = attn_attention_step(ctx, &dv3, &mem, q, 2, &st, &w);
    CHECK(c2 && w, "dv3 step with a window: %s", attn_ctx_error(ctx));
    if (c2 && w) {
        CHECK(attn_f32(w)[4] == 1.0f && attn_f32(w)[5 + 4] == 0.0f && attn_f32(w)[5] == 0.0f,
              "window [4, 7) of 5 keys: weight %g at 4; [5, 8): %g", (double)attn_f32(w)[4],
              (double)attn_f32(w)[9]);
        const float *bo = attn_f32(attn_params_find(ps, "dv3.W_o.bias"));
        CHECK(attn_f32(c2)[4] == bo[0], "an empty window's context is the output bias");
    }
#undef FRESH
out:
    attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

void suite_location_attention(void) {
    test_fixture_cases();
    test_errors();
}
