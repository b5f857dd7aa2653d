/* test_gan.c: the small SAGAN (include/attn/gan.h) and the Frechet distance
 * (include/attn/fid.h); suite "gan".
 *
 *   (a) PyTorch parity (tests/fixtures/gan_c0.atfx without attention,
 *       gan_c1.atfx with it; tools/make_gan_fixtures.py, torch modules with
 *       torch.nn.utils.parametrizations.spectral_norm and its u, v): a
 *       discriminator pass in training mode (G(z), D(x), D(G(z)), L_D and
 *       the gradients of every learned tensor of both nets, and the power
 *       iteration's vectors and batchnorm's running statistics it wrote), a
 *       generator pass (L_G and G's gradients) and an evaluation-mode pass;
 *   (b) finite differences (central, float64 accumulation) of the two hinge
 *       losses on scores, and of L_G and L_D through both nets in
 *       evaluation mode (spectral norm's vectors then fixed);
 *   (c) the Frechet distance: identical sets give 0, shifted sets the
 *       squared shift, diagonal Gaussians the closed form, and the
 *       fixture's values (the FID code's route: eigenvalues of S1 S2);
 *       the Jacobi eigensolver against numpy.linalg.eigh;
 *   (d) a checkpoint round trip of the generator (bitwise), errors.
 *
 * Tolerances: the nets GAN_ATOL 1e-4, GAN_RTOL 1e-3 (float32 through
 * spectral norm, batchnorm over 2 images and up to 6 layers; the fixtures
 * are float64 rounded once); finite differences |fd - analytic| <=
 * 2e-3 + 2e-2 |fd| with h 1e-2 (1e-3 through the nets); FID 1e-9
 * relative to the fixture's float64 value. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "test.h"

#define GAN_ATOL 1e-4f
#define GAN_RTOL 1e-3f
#define SCRIPT "tools/make_gan_fixtures.py"

/* ---- helpers ------------------------------------------------------------------------------ */

/* Copies "c0.<net>.<name>" into every tensor of the store; also checks the
 * fixture holds no other tensor of that net. Returns 0 or -1 (checked). */
static int load_state(const atfx_file *fx, const char *net, attn_params *ps, const char *tag) {
    char nm[400];
    const int n = attn_params_count(ps);
    for (int i = 0; i < n; i++) {
        attn_tensor *p = attn_params_at(ps, i);
        snprintf(nm, sizeof nm, "c0.%s.%s", net, p->name);
        const atfx_tensor *t = test_fx_need(fx, nm, ATTN_F32, attn_tensor_numel(p), SCRIPT);
        if (!t) return -1;
        memcpy(attn_f32(p), atfx_f32(t), (size_t)attn_tensor_numel(p) * sizeof(float));
    }
    int in_fx = 0;
    char prefix[16];
    snprintf(prefix, sizeof prefix, "c0.%s.", net);
    for (int i = 0; i < fx->n; i++) in_fx += strncmp(fx->tensors[i].name, prefix, strlen(prefix)) == 0;
    CHECK(in_fx == n, "%s: the fixture holds %d tensors of %s, the store %d", tag, in_fx, net, n);
    return in_fx == n ? 0 : -1;
}

static int make_gan(const atfx_file *fx, attn_gan *g, const char *tag) {
    const atfx_tensor *ct = test_fx_need(fx, "c0.cfg", ATTN_I32, 4, SCRIPT);
    if (!ct) return -1;
    const int32_t *cv = atfx_i32(ct);
    attn_gan_config cfg = {cv[0], cv[1], cv[2], cv[3]};
    attn_rng rng;
    attn_rng_init(&rng, 5);
    CHECK_OK(attn_gan_init(g, &cfg, &rng));
    if (!g->gps) return -1;
    if (load_state(fx, "g", g->gps, tag) || load_state(fx, "d", g->dps, tag)) {
        attn_gan_free(g);
        return -1;
    }
    return 0;
}

/* Compares the gradients of the learned tensors (requires_grad) of ps with
 * "c0.<pass>.grad.<net>.<name>", and (post) the others with
 * "c0.<pass>.post.<net>.<name>". */
static void compare_store(const atfx_file *fx, const char *pass, const char *net, attn_params *ps,
                          int post, const char *tag) {
    char nm[400];
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        const int64_t n = attn_tensor_numel(p);
        if (p->requires_grad) {
            snprintf(nm, sizeof nm, "c0.%s.grad.%s.%s", pass, net, p->name);
            test_fx_close(tag, nm, p->grad, fx, nm, n, GAN_ATOL, GAN_RTOL, SCRIPT);
        } else if (post) {
            snprintf(nm, sizeof nm, "c0.%s.post.%s.%s", pass, net, p->name);
            test_fx_close(tag, nm, attn_f32(p), fx, nm, n, GAN_ATOL, GAN_RTOL, SCRIPT);
        }
    }
}

static attn_tensor *fx_input(attn_ctx *ctx, const atfx_file *fx, const char *name) {
    const atfx_tensor *t = test_fx_need(fx, name, ATTN_F32, -1, SCRIPT);
    if (!t) return NULL;
    int64_t shape[4];
    for (int i = 0; i < t->ndim; i++) shape[i] = t->shape[i];
    return attn_tensor_from(ctx, ATTN_F32, t->ndim, shape, atfx_f32(t));
}

/* ---- (a) parity ------------------------------------------------------------------------------ */

static void parity_file(int k) {
    char path[512], err[256], tname[128], tag[64];
    snprintf(path, sizeof path, "%s/gan_c%d.atfx", test_fixture_dir(), k);
    snprintf(tname, sizeof tname, "gan/torch parity, %s", k ? "SAGAN blocks" : "no attention");
    snprintf(tag, sizeof tag, "gan c%d", k);
    TEST_BEGIN(tname);
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        CHECK(0, "%s (regenerate with %s)", err, SCRIPT);
        TEST_END();
        return;
    }
    attn_gan g;
    attn_ctx *ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    if (!ctx || make_gan(fx, &g, tag)) {
        attn_ctx_free(ctx);
        atfx_free(fx);
        TEST_END();
        return;
    }
    CHECK(g.cfg.attention == k, "case %d has attention %d", k, g.cfg.attention);
    /* pass A: the discriminator's loss, training mode */
    attn_ctx_set_training(ctx, 1);
    attn_tensor *z = fx_input(ctx, fx, "c0.z"), *x = fx_input(ctx, fx, "c0.x");
    attn_tensor *fake = attn_gan_generate(ctx, &g, z, NULL);
    attn_tensor *dr = attn_gan_discriminate(ctx, &g, x), *df = attn_gan_discriminate(ctx, &g, fake);
    attn_tensor *ld = attn_gan_d_hinge_loss(ctx, dr, df);
    CHECK(ld != NULL, "pass A: %s", attn_ctx_error(ctx));
    if (ld) {
        attn_params_zero_grad(g.gps);
        attn_params_zero_grad(g.dps);
        CHECK_OK(attn_backward(ctx, ld));
        test_fx_close(tag, "A.fake", attn_f32(fake), fx, "c0.A.fake", attn_tensor_numel(fake), GAN_ATOL, GAN_RTOL, SCRIPT);
        test_fx_close(tag, "A.d_real", attn_f32(dr), fx, "c0.A.d_real", attn_tensor_numel(dr), GAN_ATOL, GAN_RTOL, SCRIPT);
        test_fx_close(tag, "A.d_fake", attn_f32(df), fx, "c0.A.d_fake", attn_tensor_numel(df), GAN_ATOL, GAN_RTOL, SCRIPT);
        test_fx_close(tag, "A.loss_d", attn_f32(ld), fx, "c0.A.loss_d", 1, GAN_ATOL, GAN_RTOL, SCRIPT);
        compare_store(fx, "A", "g", g.gps, 1, tag);
        compare_store(fx, "A", "d", g.dps, 1, tag);
    }
    /* pass B: the generator's loss, from the initial state */
    attn_ctx_reset(ctx);
    load_state(fx, "g", g.gps, tag);
    load_state(fx, "d", g.dps, tag);
    attn_params_zero_grad(g.gps);
    attn_params_zero_grad(g.dps);
    z = fx_input(ctx, fx, "c0.z");
    attn_tensor *lg = attn_gan_g_hinge_loss(ctx, attn_gan_discriminate(ctx, &g, attn_gan_generate(ctx, &g, z, NULL)));
    CHECK(lg != NULL, "pass B: %s", attn_ctx_error(ctx));
    if (lg) {
        CHECK_OK(attn_backward(ctx, lg));
        test_fx_close(tag, "B.loss_g", attn_f32(lg), fx, "c0.B.loss_g", 1, GAN_ATOL, GAN_RTOL, SCRIPT);
        compare_store(fx, "B", "g", g.gps, 0, tag);
    }
    /* pass E: evaluation mode (running statistics, vectors read only) */
    attn_ctx_reset(ctx);
    load_state(fx, "g", g.gps, tag);
    load_state(fx, "d", g.dps, tag);
    attn_ctx_set_training(ctx, 0);
    attn_ctx_set_grad_enabled(ctx, 0);
    z = fx_input(ctx, fx, "c0.z");
    x = fx_input(ctx, fx, "c0.x");
    attn_tensor *ef = attn_gan_generate(ctx, &g, z, NULL), *er = attn_gan_discriminate(ctx, &g, x);
    CHECK(ef && er, "pass E: %s", attn_ctx_error(ctx));
    if (ef && er) {
        test_fx_close(tag, "E.fake", attn_f32(ef), fx, "c0.E.fake", attn_tensor_numel(ef), GAN_ATOL, GAN_RTOL, SCRIPT);
        test_fx_close(tag, "E.d_real", attn_f32(er), fx, "c0.E.d_real", attn_tensor_numel(er), GAN_ATOL, GAN_RTOL, SCRIPT);
        /* evaluation mode writes nothing */
        char nm[400];
        for (int i = 0; i < attn_params_count(g.gps); i++) {
            attn_tensor *p = attn_params_at(g.gps, i);
            snprintf(nm, sizeof nm, "c0.g.%s", p->name);
            const atfx_tensor *t = atfx_find(fx, nm);
            if (t && !p->requires_grad)
                CHECK(!memcmp(attn_f32(p), atfx_f32(t), (size_t)attn_tensor_numel(p) * sizeof(float)),
                      "%s: evaluation mode changed %s", tag, p->name);
        }
    }
    attn_gan_free(&g);
    attn_ctx_free(ctx);
    atfx_free(fx);
    TEST_END();
}

/* ---- (b) finite differences ----------------------------------------------------------------- */

static void fd_hinge(void) {
    TEST_BEGIN("gan/hinge losses: finite differences");
    attn_ctx *ctx = test_ctx_new((size_t)16 << 20, 1, 0);
    /* scores away from the kinks at +-1 */
    const float real[5] = {0.3f, 1.7f, -0.4f, 0.95f - 0.5f, 2.5f}, fakev[4] = {-0.2f, -1.8f, 0.6f, -3.0f};
    const int64_t s5[1] = {5}, s4[1] = {4};
    const double h = 1e-2;
    for (int which = 0; which < 2 && ctx; which++) {
        attn_ctx_reset(ctx);
        attn_tensor *a = test_leaf(ctx, 1, s5, real), *b = test_leaf(ctx, 1, s4, fakev);
        attn_tensor *l = which ? attn_gan_g_hinge_loss(ctx, b) : attn_gan_d_hinge_loss(ctx, a, b);
        CHECK(l && attn_backward(ctx, l) == ATTN_OK, "hinge %d: %s", which, attn_ctx_error(ctx));
        if (!l) break;
        float ga[5] = {0}, gb[4] = {0};
        if (a->grad) memcpy(ga, a->grad, sizeof ga);
        if (b->grad) memcpy(gb, b->grad, sizeof gb);
        attn_ctx_set_grad_enabled(ctx, 0);
        for (int t = 0; t < 9; t++) {
            if (which && t < 5) continue;
            float ra[5], rb[4];
            memcpy(ra, real, sizeof ra);
            memcpy(rb, fakev, sizeof rb);
            float *v = t < 5 ? &ra[t] : &rb[t - 5];
            double f[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                const float v0 = *v;
                *v = (float)(v0 + (sgn ? -h : h));
                attn_tensor *xa = attn_tensor_from(ctx, ATTN_F32, 1, s5, ra), *xb = attn_tensor_from(ctx, ATTN_F32, 1, s4, rb);
                attn_tensor *ll = which ? attn_gan_g_hinge_loss(ctx, xb) : attn_gan_d_hinge_loss(ctx, xa, xb);
                f[sgn] = ll ? attn_f32(ll)[0] : NAN;
                *v = v0;
            }
            const double fd = (f[0] - f[1]) / (2 * h), an = t < 5 ? ga[t] : gb[t - 5];
            CHECK(fabs(fd - an) <= 2e-3 + 2e-2 * fabs(fd), "%s hinge, score %d: fd %.6g, analytic %.6g",
                  which ? "G" : "D", t, fd, an);
        }
        attn_ctx_set_grad_enabled(ctx, 1);
    }
    attn_ctx_free(ctx);
    TEST_END();
}

/* L_G (through G and D) or L_D (through D) in evaluation mode, as double. */
static double net_loss(attn_ctx *ctx, const attn_gan *g, const float *z, const float *x, int64_t B, int d_loss) {
    attn_ctx_reset(ctx);
    const int64_t zs[2] = {B, g->cfg.z_dim}, xs[4] = {B, 1, 28, 28};
    attn_tensor *tz = attn_tensor_from(ctx, ATTN_F32, 2, zs, z);
    attn_tensor *fake = attn_gan_generate(ctx, g, tz, NULL);
    attn_tensor *l = d_loss ? attn_gan_d_hinge_loss(ctx, attn_gan_discriminate(ctx, g, attn_tensor_from(ctx, ATTN_F32, 4, xs, x)),
                                                    attn_gan_discriminate(ctx, g, fake))
                            : attn_gan_g_hinge_loss(ctx, attn_gan_discriminate(ctx, g, fake));
    return l ? attn_f32(l)[0] : NAN;
}

static void fd_nets(void) {
    TEST_BEGIN("gan/L_G and L_D through both nets: finite differences");
    attn_gan_config cfg = {4, 8, 8, 1};
    attn_rng rng;
    attn_rng_init(&rng, 11);
    attn_gan g;
    attn_ctx *ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    CHECK_OK(attn_gan_init(&g, &cfg, &rng));
    enum { B = 3 };
    float z[B * 4], x[B * 784];
    test_fill_normal(z, B * 4, &rng);
    for (int i = 0; i < B * 784; i++) x[i] = 2.0f * attn_rng_next_uniform(&rng) - 1.0f;
    /* gammas away from 0 so the blocks take part */
    attn_init_constant(g.g_attn.gamma, 0.7f);
    attn_init_constant(g.d_attn.gamma, -0.6f);
    attn_ctx_set_training(ctx, 0);
    for (int d_loss = 0; d_loss < 2 && ctx && g.gps; d_loss++) {
        net_loss(ctx, &g, z, x, B, d_loss);
        attn_params_zero_grad(g.gps);
        attn_params_zero_grad(g.dps);
        attn_ctx_reset(ctx);
        const int64_t zs[2] = {B, 4}, xs[4] = {B, 1, 28, 28};
        attn_tensor *fake = attn_gan_generate(ctx, &g, attn_tensor_from(ctx, ATTN_F32, 2, zs, z), NULL);
        attn_tensor *l = d_loss ? attn_gan_d_hinge_loss(ctx, attn_gan_discriminate(ctx, &g, attn_tensor_from(ctx, ATTN_F32, 4, xs, x)),
                                                        attn_gan_discriminate(ctx, &g, fake))
                                : attn_gan_g_hinge_loss(ctx, attn_gan_discriminate(ctx, &g, fake));
        CHECK(l && attn_backward(ctx, l) == ATTN_OK, "backward: %s", attn_ctx_error(ctx));
        if (!l) break;
        /* a few entries of several tensors of the net the loss trains */
        attn_tensor *ts[5];
        const char *names[5];
        int nt = 0;
        if (d_loss) {
            ts[nt] = g.d_c1.w; names[nt++] = "D conv1";
            ts[nt] = g.d_q.w; names[nt++] = "D attn.query";
            ts[nt] = g.d_attn.gamma; names[nt++] = "D attn.gamma";
            ts[nt] = g.d_fc.w; names[nt++] = "D fc";
        } else {
            ts[nt] = g.g_fc.w; names[nt++] = "G fc";
            ts[nt] = g.g_up1.w; names[nt++] = "G up1";
            ts[nt] = g.g_v.w; names[nt++] = "G attn.value";
            ts[nt] = g.bn_w[2]; names[nt++] = "G bn3.weight";
            ts[nt] = g.g_out.w; names[nt++] = "G out";
        }
        attn_ctx_set_grad_enabled(ctx, 0);
        const double h = 1e-3;
        for (int t = 0; t < nt; t++) {
            const int64_t n = attn_tensor_numel(ts[t]);
            const int64_t idx[2] = {0, n / 2 + 1 < n ? n / 2 + 1 : 0};
            for (int j = 0; j < 2; j++) {
                float *p = attn_f32(ts[t]) + idx[j];
                const float an = ts[t]->grad[idx[j]], p0 = *p;
                *p = (float)(p0 + h);
                const double fp = net_loss(ctx, &g, z, x, B, d_loss);
                *p = (float)(p0 - h);
                const double fm = net_loss(ctx, &g, z, x, B, d_loss);
                *p = p0;
                const double fd = (fp - fm) / (2 * h);
                CHECK(fabs(fd - an) <= 2e-3 + 2e-2 * fabs(fd), "%s, %s[%lld]: fd %.6g, analytic %.6g",
                      d_loss ? "L_D" : "L_G", names[t], (long long)idx[j], fd, (double)an);
            }
        }
        attn_ctx_set_grad_enabled(ctx, 1);
    }
    attn_gan_free(&g);
    attn_ctx_free(ctx);
    TEST_END();
}

/* ---- (c) Frechet distance ------------------------------------------------------------------- */

static void fid_exact(void) {
    TEST_BEGIN("gan/fid: identical sets 0, shifted sets the squared shift, diagonal closed form");
    enum { N = 400, D = 12 };
    float *a = malloc(sizeof(float) * N * D), *b = malloc(sizeof(float) * N * D);
    attn_rng rng;
    attn_rng_init(&rng, 3);
    double shift2 = 0.0, d = -1.0;
    for (int i = 0; i < N * D; i++) a[i] = attn_rng_next_normal(&rng) * (1.0f + (float)(i % D) * 0.3f) + (float)(i % 5);
    CHECK_OK(attn_fid(a, N, a, N, D, &d));
    CHECK(fabs(d) <= 1e-9, "identical sets: %.3g", d);
    for (int j = 0; j < D; j++) shift2 += (0.25 * j - 1) * (0.25 * j - 1);
    for (int i = 0; i < N * D; i++) b[i] = a[i] + (float)(0.25 * (i % D) - 1);
    CHECK_OK(attn_fid(a, N, b, N, D, &d));
    /* the shift is exact in float only up to rounding of a[i] + s: compare
     * with the distance of the means as fitted */
    attn_fid_stats sa, sb;
    CHECK_OK(attn_fid_stats_compute(a, N, D, &sa));
    CHECK_OK(attn_fid_stats_compute(b, N, D, &sb));
    double dmu = 0.0;
    for (int j = 0; j < D && sa.mu && sb.mu; j++) dmu += (sa.mu[j] - sb.mu[j]) * (sa.mu[j] - sb.mu[j]);
    CHECK(fabs(d - dmu) <= 1e-6 * dmu && fabs(dmu - shift2) <= 1e-4 * shift2,
          "shifted: fid %.12g, |dmu|^2 %.12g, shift^2 %.12g", d, dmu, shift2);
    /* diagonal Gaussians: d = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2 */
    for (int j = 0; j < D && sa.cov && sb.cov; j++)
        for (int k = 0; k < D; k++) {
            sa.cov[j * D + k] = j == k ? 1.0 + j : 0.0;
            sb.cov[j * D + k] = j == k ? 4.0 / (1.0 + j) : 0.0;
        }
    double want = dmu;
    for (int j = 0; j < D; j++) want += pow(sqrt(1.0 + j) - sqrt(4.0 / (1.0 + j)), 2);
    CHECK_OK(attn_fid_distance(&sa, &sb, &d));
    CHECK(fabs(d - want) <= 1e-10 * want, "diagonal: %.15g, closed form %.15g", d, want);
    /* symmetric in its arguments */
    double d2 = -1.0;
    CHECK_OK(attn_fid_distance(&sb, &sa, &d2));
    CHECK(fabs(d - d2) <= 1e-10 * want, "d(a, b) %.15g, d(b, a) %.15g", d, d2);
    attn_fid_stats_free(&sa);
    attn_fid_stats_free(&sb);
    free(a);
    free(b);
    TEST_END();
}

static void fid_fixture(void) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/gan_fid.atfx", test_fixture_dir());
    TEST_BEGIN("gan/fid and the Jacobi eigensolver against torch/numpy");
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        CHECK(0, "%s (regenerate with %s)", err, SCRIPT);
        TEST_END();
        return;
    }
    const atfx_tensor *nc = atfx_find(fx, "n_cases");
    const int n = nc ? atfx_i32(nc)[0] : 0;
    CHECK(n == 3, "%d cases", n);
    for (int k = 0; k < n; k++) {
        const atfx_tensor *a = atfx_findf(fx, "c%d.a", k), *b = atfx_findf(fx, "c%d.b", k);
        const atfx_tensor *hi = atfx_findf(fx, "c%d.fid_hi", k), *lo = atfx_findf(fx, "c%d.fid_lo", k);
        const atfx_tensor *m = atfx_findf(fx, "c%d.sym", k), *eh = atfx_findf(fx, "c%d.eig_hi", k);
        const atfx_tensor *el = atfx_findf(fx, "c%d.eig_lo", k);
        CHECK(a && b && hi && lo && m && eh && el, "case %d: tensors missing (regenerate with %s)", k, SCRIPT);
        if (!a || !b || !hi || !lo || !m || !eh || !el) continue;
        const int64_t D = a->shape[1];
        double d = -1.0;
        CHECK_OK(attn_fid(atfx_f32(a), a->shape[0], atfx_f32(b), b->shape[0], D, &d));
        const double ref = (double)atfx_f32(hi)[0] + (double)atfx_f32(lo)[0];
        CHECK(fabs(d - ref) <= 1e-9 * ref, "case %d: fid %.15g, torch %.15g", k, d, ref);
        double *mm = malloc(sizeof(double) * (size_t)(D * D)), *w = malloc(sizeof(double) * (size_t)D);
        double *v = malloc(sizeof(double) * (size_t)(D * D));
        for (int64_t i = 0; i < D * D; i++) mm[i] = atfx_f32(m)[i];
        CHECK_OK(attn_sym_eig(mm, D, w, v));
        double worst = 0.0, scale = 0.0;
        for (int64_t i = 0; i < D; i++) {
            const double r = (double)atfx_f32(eh)[i] + (double)atfx_f32(el)[i];
            worst = fmax(worst, fabs(w[i] - r));
            scale = fmax(scale, fabs(r));
        }
        CHECK(worst <= 1e-12 * scale, "case %d: eigenvalues off by %.3g (scale %.3g)", k, worst, scale);
        /* A v_i = w_i v_i */
        double res = 0.0;
        for (int64_t i = 0; i < D; i++)
            for (int64_t r = 0; r < D; r++) {
                double s = 0.0;
                for (int64_t c = 0; c < D; c++) s += mm[r * D + c] * v[c * D + i];
                res = fmax(res, fabs(s - w[i] * v[r * D + i]));
            }
        CHECK(res <= 1e-11 * scale, "case %d: eigenvector residual %.3g", k, res);
        free(mm);
        free(w);
        free(v);
    }
    atfx_free(fx);
    TEST_END();
}

static void fid_errors(void) {
    TEST_BEGIN("gan/fid: bad input is an error, never a crash");
    float f[6] = {1, 2, 3, 4, 5, 6};
    double d = 0.0;
    CHECK(attn_fid(f, 1, f, 3, 2, &d) == ATTN_ERR_INVALID_ARG, "one vector accepted");
    CHECK(attn_fid(NULL, 3, f, 3, 2, &d) == ATTN_ERR_INVALID_ARG, "NULL accepted");
    CHECK(attn_fid(f, 3, f, 3, 0, &d) == ATTN_ERR_INVALID_ARG, "dimension 0 accepted");
    f[3] = NAN;
    CHECK(attn_fid(f, 3, f, 3, 2, &d) == ATTN_ERR_NUMERIC, "NaN accepted");
    CHECK(strstr(attn_last_error(), "vector 1") != NULL, "message: %s", attn_last_error());
    f[3] = 4;
    attn_fid_stats a, b;
    CHECK_OK(attn_fid_stats_compute(f, 3, 2, &a));
    CHECK_OK(attn_fid_stats_compute(f, 2, 3, &b));
    CHECK(attn_fid_distance(&a, &b, &d) == ATTN_ERR_SHAPE, "dimensions 2 and 3 accepted");
    attn_fid_stats_free(&a);
    attn_fid_stats_free(&b);
    const double bad[4] = {1, INFINITY, INFINITY, 1};
    double w[2];
    CHECK(attn_sym_eig(bad, 2, w, NULL) == ATTN_ERR_NUMERIC, "inf accepted");
    TEST_END();
}

/* ---- (d) files and errors ------------------------------------------------------------------- */

static void round_trip(void) {
    TEST_BEGIN("gan/generator checkpoint round trip (bitwise samples)");
    attn_gan_config cfg = {16, 16, 8, 1};
    attn_rng rng;
    attn_rng_init(&rng, 21);
    attn_gan a, b;
    CHECK_OK(attn_gan_init(&a, &cfg, &rng));
    CHECK_OK(attn_gan_init(&b, &cfg, &rng)); /* other weights */
    attn_init_constant(a.g_attn.gamma, 0.3f);
    attn_ctx *ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    char path[256];
    snprintf(path, sizeof path, "/tmp/attn_test_gan_%d.safetensors", (int)getpid());
    if (ctx && a.gps && b.gps) {
        attn_kv kv[ATTN_GAN_META];
        char buf[ATTN_GAN_META][32];
        attn_gan_config_meta(&cfg, kv, buf);
        CHECK_OK(attn_checkpoint_save(path, a.gps, NULL, 7, kv, ATTN_GAN_META));
        int64_t step = -1;
        CHECK_OK(attn_checkpoint_load(path, b.gps, NULL, &step));
        CHECK(step == 7, "step %lld", (long long)step);
        attn_ctx_set_training(ctx, 0);
        const int64_t zs[2] = {4, 16};
        float z[64];
        test_fill_normal(z, 64, &rng);
        attn_tensor *xa = attn_gan_generate(ctx, &a, attn_tensor_from(ctx, ATTN_F32, 2, zs, z), NULL);
        attn_tensor *xb = attn_gan_generate(ctx, &b, attn_tensor_from(ctx, ATTN_F32, 2, zs, z), NULL);
        CHECK(xa && xb && !memcmp(attn_f32(xa), attn_f32(xb), 4 * 784 * sizeof(float)),
              "samples differ after the round trip");
        remove(path);
    }
    attn_ctx_free(ctx);
    attn_gan_free(&a);
    attn_gan_free(&b);
    TEST_END();
}

static void gan_errors(void) {
    TEST_BEGIN("gan/errors: configurations and shapes that do not fit");
    attn_rng rng;
    attn_rng_init(&rng, 1);
    attn_gan g;
    const attn_gan_config bad[4] = {{0, 16, 16, 0}, {8, 12, 16, 1}, {8, 15, 16, 0}, {8, 16, 16, 2}};
    for (int i = 0; i < 4; i++) {
        CHECK(attn_gan_init(&g, &bad[i], &rng) == ATTN_ERR_INVALID_ARG, "config %d accepted", i);
        CHECK(g.gps == NULL, "config %d left a store", i);
    }
    const attn_gan_config ok = {8, 8, 8, 1};
    CHECK_OK(attn_gan_init(&g, &ok, &rng));
    attn_ctx *ctx = test_ctx_new((size_t)16 << 20, 1, 0);
    if (ctx && g.gps) {
        const int64_t zs[2] = {2, 7}, xs[4] = {2, 1, 28, 27}, ss[2] = {2, 1};
        CHECK(!attn_gan_generate(ctx, &g, attn_tensor_new(ctx, ATTN_F32, 2, zs), NULL) &&
                  attn_ctx_status(ctx) == ATTN_ERR_SHAPE, "z [2, 7] accepted");
        attn_ctx_reset(ctx);
        CHECK(!attn_gan_discriminate(ctx, &g, attn_tensor_new(ctx, ATTN_F32, 4, xs)) &&
                  attn_ctx_status(ctx) == ATTN_ERR_SHAPE, "x [2, 1, 28, 27] accepted");
        attn_ctx_reset(ctx);
        attn_tensor *s2 = attn_tensor_new(ctx, ATTN_F32, 2, ss);
        CHECK(!attn_gan_d_hinge_loss(ctx, s2, s2) && attn_ctx_status(ctx) == ATTN_ERR_SHAPE, "[2, 1] scores accepted");
        attn_ctx_reset(ctx);
        CHECK(!attn_gan_g_hinge_loss(ctx, NULL), "NULL accepted");
        CHECK(!attn_gan_generate(ctx, NULL, NULL, NULL), "NULL model accepted");
    }
    attn_ctx_free(ctx);
    attn_gan_free(&g);
    TEST_END();
}

void suite_gan(void) {
    parity_file(0);
    parity_file(1);
    fd_hinge();
    fd_nets();
    fid_exact();
    fid_fixture();
    fid_errors();
    round_trip();
    gan_errors();
}
