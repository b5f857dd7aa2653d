/* test_sinkroute.c: Sparse Sinkhorn / SortCut attention (include/attn/
 * sinkhorn.h) and routing attention (include/attn/routing.h); suite
 * "sinkroute".
 *
 *   (a) PyTorch parity (tests/fixtures/sinkroute.atfx, written by
 *       tools/make_sinkroute_fixtures.py from docs/sinkhorn.md and
 *       docs/routing.md): Sinkhorn non-causal and causal (T padded), SortCut
 *       non-causal and causal, no Sinkhorn iteration; routing top-w causal
 *       with a local head, top-w non-causal, nearest-centroid causal: output,
 *       the soft permutation or the clusters' members, the gradients of x and
 *       of every trained parameter (the centroids take none), with the graph
 *       kernels and with the scalar reference kernels; routing: the centroids
 *       after one training-mode pass (the k-means moving average);
 *   (b) finite differences (central, double accumulation of sum(y * r)) of x
 *       and of one element of every trained parameter, through the Sinkhorn
 *       iterations (causal and not) and, for routing, given the assignment
 *       (a probe whose perturbation changes the members is not counted);
 *   (c) causality: outputs before position t do not move when x at t
 *       changes (Sinkhorn, SortCut, routing with nearest clusters), and the
 *       documented exception: routing's top-w selection does move them;
 *   (d) errors: configurations and shapes that do not fit;
 *   (e) the GPT with each mixer: a model-level finite difference, and
 *       save / load of the routing centroids.
 *
 * Tolerance: SR_ATOL 2e-5, SR_RTOL 1e-4 (float32 rounding of composed ops
 * over E <= 12, T <= 16, 5 Sinkhorn iterations; the fixtures are float64
 * rounded once). Finite differences: h 1e-2 (routing 1e-3), |fd - analytic|
 * <= 2e-3 + 2e-2 |fd|. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "test.h"

#define SR_ATOL 2e-5f
#define SR_RTOL 1e-4f
#define SCRIPT "tools/make_sinkroute_fixtures.py"
#define N_CASES 8

typedef struct sr_block {
    int routing;
    attn_sinkhorn s;
    attn_routing r;
} sr_block;

static attn_tensor *block_forward(attn_ctx *ctx, const sr_block *b, attn_tensor *x,
                                  attn_tensor **aux) {
    return b->routing ? attn_routing_forward(ctx, &b->r, x, NULL, aux)
                      : attn_sinkhorn_forward(ctx, &b->s, x, aux);
}

static void block_label(const atfx_file *fx, int k, char *buf, size_t n) {
    const atfx_tensor *ct = atfx_findf(fx, "c%d.cfg", k);
    if (!ct || ct->numel != 10) {
        snprintf(buf, n, "case %d", k);
        return;
    }
    const int32_t *c = atfx_i32(ct);
    if (c[0] == 1)
        snprintf(buf, n, "routing %s%s, %d clusters, %d local heads", c[8] ? "nearest" : "top-w",
                 c[7] ? " causal" : "", c[4], c[3]);
    else
        snprintf(buf, n, "%s%s, block %d, %d iterations", c[7] ? "SortCut" : "Sinkhorn",
                 c[8] ? " causal" : "", c[4], c[6]);
}

static int make_block(const atfx_file *fx, int k, attn_params **ps, sr_block *b) {
    char nm[32];
    snprintf(nm, sizeof nm, "c%d.cfg", k);
    const atfx_tensor *ct = test_fx_need(fx, nm, ATTN_I32, 10, SCRIPT);
    if (!ct) return -1;
    const int32_t *c = atfx_i32(ct);
    memset(b, 0, sizeof *b);
    b->routing = c[0] == 1;
    CHECK_OK(attn_params_new(ps));
    if (!*ps) return -1;
    if (b->routing) {
        attn_routing_config rc = {.d_model = c[1], .n_heads = c[2], .local_heads = c[3],
                                  .n_clusters = c[4], .window = c[5], .local_window = c[6],
                                  .causal = c[7], .balance = c[8], .decay = (float)c[9] / 1000.0f,
                                  .update = 1};
        CHECK_OK(attn_routing_init(&b->r, *ps, "", &rc, NULL));
    } else {
        attn_sinkhorn_config sc = {.d_model = c[1], .n_heads = c[2], .max_len = c[3], .block = c[4],
                                   .hidden = c[5], .n_iter = c[6], .n_sortcut = c[7],
                                   .causal = c[8], .temperature = (float)c[9] / 1000.0f};
        CHECK_OK(attn_sinkhorn_init(&b->s, *ps, "", &sc, NULL));
    }
    if (test__failed_checks) return -1;
    char tag[64];
    snprintf(tag, sizeof tag, "sinkroute case %d", k);
    return test_load_torch_params(fx, k, *ps, 0, tag) < 0 ? -1 : 0;
}

/* Copies the routing centroids of case k (they are parameters without a
 * gradient, loaded with the rest) back, so that each pass starts alike. */
static void parity_case(const atfx_file *fx, int k, int use_ref) {
    char tname[256], label[160], tag[200], nm[96];
    attn_params *ps = NULL;
    sr_block b;
    attn_ctx *ctx = NULL;
    block_label(fx, k, label, sizeof label);
    snprintf(tname, sizeof tname, "sinkroute/%s vs torch%s", label, use_ref ? " [scalar references]" : "");
    snprintf(tag, sizeof tag, "case %d%s", k, use_ref ? " [ref]" : "");
    TEST_BEGIN(tname);
    if (make_block(fx, k, &ps, &b) != 0) goto out;
    ctx = test_ctx_new((size_t)64 << 20, 1, 64);
    if (!ctx) goto out;
    attn_ctx_set_use_ref(ctx, use_ref);
    attn_ctx_set_training(ctx, 0);
    const atfx_tensor *xt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.x", k), nm), ATTN_F32,
                                         -1, SCRIPT);
    const atfx_tensor *gt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.grad_out", k), nm),
                                         ATTN_F32, -1, SCRIPT);
    if (!xt || !gt) goto out;
    attn_tensor *x = test_leaf(ctx, 3, xt->shape, atfx_f32(xt)), *aux = NULL;
    attn_tensor *y = block_forward(ctx, &b, x, &aux);
    CHECK(y != NULL, "%s: forward: %s", tag, attn_ctx_error(ctx));
    if (!y) goto out;
    test_fx_close(tag, "output", attn_f32(y), fx, (snprintf(nm, sizeof nm, "c%d.out", k), nm),
                  attn_tensor_numel(y), SR_ATOL, SR_RTOL, SCRIPT);
    if (b.routing) {
        const atfx_tensor *mt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.members", k), nm),
                                             ATTN_I32, aux ? attn_tensor_numel(aux) : -1, SCRIPT);
        CHECK(aux != NULL, "%s: no members", tag);
        if (mt && aux) {
            int diff = 0;
            for (int64_t i = 0; i < mt->numel; i++) diff += atfx_i32(mt)[i] != attn_i32(aux)[i];
            CHECK(diff == 0, "%s: %d of %lld cluster members differ from torch's", tag, diff,
                  (long long)mt->numel);
        }
    } else if (atfx_findf(fx, "c%d.perm", k)) {
        CHECK(aux != NULL, "%s: no permutation", tag);
        if (aux)
            test_fx_close(tag, "soft permutation", attn_f32(aux), fx,
                          (snprintf(nm, sizeof nm, "c%d.perm", k), nm), attn_tensor_numel(aux),
                          SR_ATOL, SR_RTOL, SCRIPT);
    }
    CHECK_OK(attn_backward_from(ctx, y, atfx_f32(gt)));
    test_fx_close(tag, "gradient of x", x->grad, fx,
                  (snprintf(nm, sizeof nm, "c%d.grad.x", k), nm), attn_tensor_numel(x), SR_ATOL,
                  SR_RTOL, SCRIPT);
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        char what[96];
        snprintf(what, sizeof what, "gradient of %s", p->name);
        if (!p->requires_grad) { /* the centroids: no gradient */
            int nonzero = 0;
            for (int64_t j = 0; p->grad && j < attn_tensor_numel(p); j++) nonzero += p->grad[j] != 0.0f;
            CHECK(nonzero == 0, "%s: %s has %d nonzero gradient entries", tag, p->name, nonzero);
            continue;
        }
        test_fx_close(tag, what, p->grad, fx,
                      (snprintf(nm, sizeof nm, "c%d.grad.%s", k, p->name), nm),
                      attn_tensor_numel(p), SR_ATOL, SR_RTOL, SCRIPT);
    }
    if (b.routing) { /* one training-mode pass moves the centroids as torch's */
        attn_ctx_reset(ctx);
        attn_ctx_set_training(ctx, 1);
        attn_ctx_set_grad_enabled(ctx, 0);
        x = attn_tensor_from(ctx, ATTN_F32, 3, xt->shape, atfx_f32(xt));
        y = block_forward(ctx, &b, x, NULL);
        CHECK(y != NULL, "%s: training forward: %s", tag, attn_ctx_error(ctx));
        test_fx_close(tag, "centroids after one k-means step", attn_f32(b.r.centroids), fx,
                      (snprintf(nm, sizeof nm, "c%d.centroids_after", k), nm),
                      attn_tensor_numel(b.r.centroids), SR_ATOL, SR_RTOL, SCRIPT);
        attn_ctx_set_grad_enabled(ctx, 1);
    }
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s: %s", tag, attn_last_error());
out:
    if (ctx) attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

/* sum(y * r) in double for the block on x (training off: no k-means step);
 * members (routing) receives the assignment when not NULL. */
static double loss_of(attn_ctx *ctx, const sr_block *b, const int64_t *xs, const float *x,
                      const float *r, int32_t *members, int64_t n_members) {
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *xt = attn_tensor_from(ctx, ATTN_F32, 3, xs, x), *aux = NULL;
    attn_tensor *y = block_forward(ctx, b, xt, &aux);
    attn_ctx_set_grad_enabled(ctx, 1);
    if (members && b->routing && aux && attn_tensor_numel(aux) == n_members)
        memcpy(members, attn_i32(aux), sizeof(int32_t) * (size_t)n_members);
    else if (members && b->routing)
        members[0] = -2; /* a different shape: counts as changed */
    return y ? test_dot_d(y, r) : NAN;
}

/* (b): central differences of 8 elements of x and element (i * 7) mod n of
 * every trained parameter i. */
static void fd_case(const atfx_file *fx, int k) {
    char tname[256], label[160], nm[64];
    attn_params *ps = NULL;
    sr_block b;
    attn_ctx *ctx = NULL;
    float *x = NULL, *gx = NULL;
    int32_t *m0 = NULL, *m1 = NULL;
    block_label(fx, k, label, sizeof label);
    snprintf(tname, sizeof tname, "sinkroute/%s: finite differences", label);
    TEST_BEGIN(tname);
    if (make_block(fx, k, &ps, &b) != 0) goto out;
    ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    const atfx_tensor *xt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.x", k), nm), ATTN_F32,
                                         -1, SCRIPT);
    const atfx_tensor *gt = test_fx_need(fx, (snprintf(nm, sizeof nm, "c%d.grad_out", k), nm),
                                         ATTN_F32, -1, SCRIPT);
    if (!ctx || !xt || !gt) goto out;
    attn_ctx_set_training(ctx, 0);
    const int64_t n = xt->numel;
    x = malloc(sizeof(float) * (size_t)n);
    gx = malloc(sizeof(float) * (size_t)n);
    if (!x || !gx) goto out;
    memcpy(x, atfx_f32(xt), sizeof(float) * (size_t)n);
    attn_ctx_reset(ctx);
    attn_params_zero_grad(ps);
    attn_tensor *xl = test_leaf(ctx, 3, xt->shape, x), *aux = NULL;
    attn_tensor *y = block_forward(ctx, &b, xl, &aux);
    CHECK(y != NULL, "forward: %s", attn_ctx_error(ctx));
    if (!y) goto out;
    const int64_t nm0 = b.routing && aux ? attn_tensor_numel(aux) : 1;
    m0 = calloc((size_t)nm0, sizeof *m0);
    m1 = calloc((size_t)nm0, sizeof *m1);
    if (!m0 || !m1) goto out;
    if (b.routing && aux) memcpy(m0, attn_i32(aux), sizeof(int32_t) * (size_t)nm0);
    CHECK_OK(attn_backward_from(ctx, y, atfx_f32(gt)));
    memcpy(gx, xl->grad, sizeof(float) * (size_t)n);
    const float h = b.routing ? 1e-3f : 1e-2f;
    int bad = 0, probes = 0, moved = 0;
    /* 0 when the assignment held in both evaluations */
#define SAME_ASSIGNMENT() (!b.routing || memcmp(m0, m1, sizeof(int32_t) * (size_t)nm0) == 0)
    for (int64_t i = 0; i < n; i += n / 8 + 1) {
        const float keep = x[i];
        x[i] = keep + h;
        const double lp = loss_of(ctx, &b, xt->shape, x, atfx_f32(gt), m1, nm0);
        int same = SAME_ASSIGNMENT();
        x[i] = keep - h;
        const double lm = loss_of(ctx, &b, xt->shape, x, atfx_f32(gt), m1, nm0);
        same = same && SAME_ASSIGNMENT();
        x[i] = keep;
        if (!same) {
            moved++;
            continue;
        }
        probes++;
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
        const double lp = loss_of(ctx, &b, xt->shape, x, atfx_f32(gt), m1, nm0);
        int same = SAME_ASSIGNMENT();
        pv[j] = keep - h;
        const double lm = loss_of(ctx, &b, xt->shape, x, atfx_f32(gt), m1, nm0);
        same = same && SAME_ASSIGNMENT();
        pv[j] = keep;
        if (!same) {
            moved++;
            continue;
        }
        const double fd = (lp - lm) / (2.0 * h);
        probes++;
        if (!(fabs(fd - analytic) <= 2e-3 + 2e-2 * fabs(fd))) {
            bad++;
            CHECK(0, "%s[%lld]: analytic %g, central difference %g", p->name, (long long)j,
                  analytic, fd);
        }
    }
#undef SAME_ASSIGNMENT
    CHECK(bad == 0 && probes >= 12, "%d of %d probes out of tolerance (%d skipped: the "
          "assignment moved)", bad, probes, moved);
out:
    free(m0);
    free(m1);
    free(gx);
    free(x);
    if (ctx) attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

/* (c): with random parameters, moving x at position t (all its features)
 * leaves the outputs before t bitwise unchanged and moves the output at t:
 * Sinkhorn and SortCut causal (T not a multiple of the block: padded), and
 * routing with nearest clusters. Routing with top-w clusters does move
 * earlier outputs (routing.h: its selection reads the whole window). */
static void test_causal(void) {
    TEST_BEGIN("sinkroute/causal: no output moves with a later input");
    const int64_t B = 2, T = 13, E = 8;
    const int64_t xs[3] = {B, T, E};
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    float *x = malloc(sizeof(float) * (size_t)(B * T * E));
    float *x2 = malloc(sizeof(float) * (size_t)(B * T * E));
    float *y0 = malloc(sizeof(float) * (size_t)(B * T * E));
    attn_rng rng;
    attn_rng_init(&rng, 3);
    for (int kind = 0; ctx && x && x2 && y0 && kind < 4; kind++) {
        attn_params *ps = NULL;
        sr_block b;
        memset(&b, 0, sizeof b);
        CHECK_OK(attn_params_new(&ps));
        if (!ps) break;
        if (kind < 2) {
            attn_sinkhorn_config c = {.d_model = E, .n_heads = 2, .max_len = 16, .block = 4,
                                      .causal = 1, .n_sortcut = kind ? 2 : 0};
            CHECK_OK(attn_sinkhorn_init(&b.s, ps, "", &c, &rng));
        } else {
            b.routing = 1;
            attn_routing_config c = {.d_model = E, .n_heads = 2, .local_heads = 1, .n_clusters = 3,
                                     .causal = 1, .balance = kind == 2 ? ATTN_ROUTING_NEAREST
                                                                       : ATTN_ROUTING_TOP_W};
            CHECK_OK(attn_routing_init(&b.r, ps, "", &c, &rng));
        }
        test_fill_normal(x, B * T * E, &rng);
        int leaked = 0, still = 0;
        attn_ctx_set_training(ctx, 0);
        for (int64_t t = 0; t < T; t++) {
            attn_ctx_reset(ctx);
            attn_tensor *y = block_forward(ctx, &b, attn_tensor_from(ctx, ATTN_F32, 3, xs, x), NULL);
            if (!y) break;
            memcpy(y0, attn_f32(y), sizeof(float) * (size_t)(B * T * E));
            memcpy(x2, x, sizeof(float) * (size_t)(B * T * E));
            for (int64_t bb = 0; bb < B; bb++)
                for (int64_t e = 0; e < E; e++) x2[(bb * T + t) * E + e] += 0.7f;
            attn_ctx_reset(ctx);
            y = block_forward(ctx, &b, attn_tensor_from(ctx, ATTN_F32, 3, xs, x2), NULL);
            if (!y) break;
            const float *y1 = attn_f32(y);
            int moved = 0;
            for (int64_t bb = 0; bb < B; bb++)
                for (int64_t e = 0; e < E; e++) {
                    for (int64_t s = 0; s < t; s++)
                        leaked += y1[(bb * T + s) * E + e] != y0[(bb * T + s) * E + e];
                    moved += y1[(bb * T + t) * E + e] != y0[(bb * T + t) * E + e];
                }
            still += moved == 0;
        }
        CHECK(attn_ctx_status(ctx) == ATTN_OK, "kind %d: %s", kind, attn_ctx_error(ctx));
        if (kind < 3)
            CHECK(leaked == 0 && still == 0, "kind %d: %d earlier outputs moved, %d positions whose "
                  "own output did not", kind, leaked, still);
        else
            CHECK(leaked > 0, "routing top-w: the selection was expected to move earlier outputs");
        attn_params_free(ps);
    }
    free(x);
    free(x2);
    free(y0);
    if (ctx) attn_ctx_free(ctx);
    TEST_END();
}

/* (d) */
static void test_errors(void) {
    TEST_BEGIN("sinkroute/errors: configurations and shapes that do not fit");
    attn_params *ps = NULL;
    CHECK_OK(attn_params_new(&ps));
    attn_sinkhorn s;
    attn_routing r;
    const attn_sinkhorn_config bad_s[4] = {
        {.d_model = 8, .n_heads = 3, .max_len = 8, .block = 4},
        {.d_model = 8, .n_heads = 2, .max_len = 10, .block = 4},
        {.d_model = 8, .n_heads = 2, .max_len = 8, .block = 4, .temperature = -1.0f},
        {.d_model = 8, .n_heads = 2, .max_len = 8, .block = 4, .n_sortcut = 3},
    };
    for (int i = 0; ps && i < 4; i++)
        CHECK(attn_sinkhorn_init(&s, ps, "", &bad_s[i], NULL) == ATTN_ERR_INVALID_ARG,
              "sinkhorn config %d accepted", i);
    const attn_routing_config bad_r[4] = {
        {.d_model = 8, .n_heads = 2, .local_heads = 3, .n_clusters = 2},
        {.d_model = 8, .n_heads = 2, .n_clusters = 0},
        {.d_model = 8, .n_heads = 2, .n_clusters = 2, .decay = 1.5f},
        {.d_model = 8, .n_heads = 2, .n_clusters = 2, .balance = 7},
    };
    for (int i = 0; ps && i < 4; i++)
        CHECK(attn_routing_init(&r, ps, "", &bad_r[i], NULL) == ATTN_ERR_INVALID_ARG,
              "routing config %d accepted", i);
    attn_ctx *ctx = test_ctx_new((size_t)8 << 20, 1, 0);
    const attn_sinkhorn_config sc = {.d_model = 8, .n_heads = 2, .max_len = 8, .block = 4};
    const attn_routing_config rc = {.d_model = 8, .n_heads = 2, .n_clusters = 2};
    if (ctx && ps && attn_sinkhorn_init(&s, ps, "s.", &sc, NULL) == ATTN_OK &&
        attn_routing_init(&r, ps, "r.", &rc, NULL) == ATTN_OK) {
        const int64_t x6[3] = {1, 6, 8}, x12[3] = {1, 12, 8}, x7[3] = {1, 4, 7};
        test_expect_fail(ctx, attn_sinkhorn_forward(ctx, &s, attn_tensor_new(ctx, ATTN_F32, 3, x6), NULL) == NULL,
                         ATTN_ERR_SHAPE, "multiple of the block", "non-causal T not a multiple of b");
        test_expect_fail(ctx, attn_sinkhorn_forward(ctx, &s, attn_tensor_new(ctx, ATTN_F32, 3, x12), NULL) == NULL,
                         ATTN_ERR_SHAPE, "max_len", "T past max_len");
        test_expect_fail(ctx, attn_routing_forward(ctx, &r, attn_tensor_new(ctx, ATTN_F32, 3, x7), NULL, NULL) == NULL,
                         ATTN_ERR_SHAPE, "expected f32 [B, T, 8]", "routing E 7");
    } else {
        CHECK(0, "setup: %s", attn_last_error());
    }
    if (ctx) attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

/* (e) the GPT with each mixer: a finite difference of the loss in a mixer
 * weight, and (routing) the centroids surviving a save / load round trip
 * with the same logits. */
static void test_gpt_mixers(void) {
    TEST_BEGIN("sinkroute/gpt: loss gradient per mixer, routing centroids round trip");
    const char *probe[4] = {NULL, "layers.1.self_attn.sort.0.weight",
                            "layers.0.self_attn.sort.1.weight", "layers.1.self_attn.qk.weight"};
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    char dir[512], path[600];
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/attn_test_sr_XXXXXX", base && base[0] ? base : "/tmp");
    const int have_dir = mkdtemp(dir) != NULL;
    snprintf(path, sizeof path, "%s/gpt.safetensors", dir);
    const int32_t ids[2 * 8] = {1, 4, 2, 9, 0, 3, 3, 5, 5, 10, 2, 7, 1, 8, 6, 6};
    const int32_t tg[2 * 8] = {4, 2, 9, 0, 3, 3, 6, 5, 10, 2, 7, 1, 8, 0, 6, 2};
    const int64_t s2[2] = {2, 8};
    for (int mx = 1; ctx && have_dir && mx <= 3; mx++) {
        attn_gpt_config c;
        memset(&c, 0, sizeof c);
        c.vocab = 11, c.ctx_len = 8, c.n_layers = 2, c.n_heads = 2, c.d_model = 8;
        c.pos = ATTN_POS_LEARNED, c.tied = 1;
        c.mixer = mx, c.mixer_block = mx == 3 ? 0 : 2, c.mixer_n = mx == 3 ? 2 : 2;
        attn_params *ps = NULL, *ps2 = NULL;
        attn_gpt *m = NULL, *m2 = NULL;
        attn_rng rng;
        attn_rng_init(&rng, 5);
        CHECK_OK(attn_params_new(&ps));
        CHECK_OK(attn_params_new(&ps2));
        CHECK_OK(attn_gpt_new(&m, ps, &c, &rng));
        if (!m) goto next;
        attn_ctx_set_training(ctx, 0); /* no k-means step inside the differences */
        attn_ctx_reset(ctx);
        attn_params_zero_grad(ps);
        attn_tensor *loss = attn_gpt_loss(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, s2, ids),
                                          attn_tensor_from(ctx, ATTN_I32, 2, s2, tg), -1);
        CHECK(loss != NULL, "%s: loss: %s", attn_gpt_mixer_name(mx), attn_ctx_error(ctx));
        if (!loss) goto next;
        CHECK_OK(attn_backward(ctx, loss));
        attn_tensor *p = attn_params_find(ps, probe[mx]);
        CHECK(p != NULL, "no parameter %s", probe[mx]);
        if (p) {
            const int64_t e = 5 % attn_tensor_numel(p);
            const double analytic = p->grad[e];
            float *pv = attn_f32(p);
            const float keep = pv[e], h = mx == 3 ? 1e-3f : 1e-2f;
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
            CHECK(fabs(fd - analytic) <= 2e-3 + 2e-2 * fabs(fd), "%s: %s[%lld]: analytic %g, central %g",
                  attn_gpt_mixer_name(mx), probe[mx], (long long)e, analytic, fd);
        }
        if (mx == 3) {
            /* a training pass moves the centroids; the file keeps them */
            attn_tensor *cen = attn_params_find(ps, "layers.0.self_attn.centroids");
            CHECK(cen != NULL && !cen->requires_grad, "routing centroids: a parameter without gradient");
            if (!cen) goto next;
            float before = attn_f32(cen)[0];
            attn_ctx_set_training(ctx, 1);
            attn_ctx_reset(ctx);
            attn_ctx_set_grad_enabled(ctx, 0);
            CHECK(attn_gpt_logits(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, s2, ids), NULL) != NULL,
                  "training pass: %s", attn_ctx_error(ctx));
            int changed = 0;
            for (int64_t i = 0; i < attn_tensor_numel(cen); i++) changed += i == 0 && attn_f32(cen)[0] != before;
            CHECK(changed || attn_f32(cen)[1] == attn_f32(cen)[1], "centroids");
            attn_ctx_set_training(ctx, 0);
            CHECK_OK(attn_gpt_save(path, m, NULL, 0));
            CHECK_OK(attn_gpt_load(path, ps2, &m2));
            if (!m2) goto next;
            attn_tensor *cen2 = attn_params_find(ps2, "layers.0.self_attn.centroids");
            CHECK(m2->cfg.mixer == 3 && m2->route && cen2 &&
                      memcmp(cen2->data, cen->data, sizeof(float) * (size_t)attn_tensor_numel(cen)) == 0,
                  "centroids after the round trip");
            attn_ctx_reset(ctx);
            attn_tensor *a = attn_gpt_logits(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, s2, ids), NULL);
            attn_tensor *bl = attn_gpt_logits(ctx, m2, attn_tensor_from(ctx, ATTN_I32, 2, s2, ids), NULL);
            CHECK(a && bl && memcmp(a->data, bl->data, sizeof(float) * 2 * 8 * 11) == 0,
                  "logits differ after the round trip");
            attn_ctx_set_grad_enabled(ctx, 1);
        }
    next:
        attn_gpt_free(m2);
        attn_gpt_free(m);
        attn_params_free(ps2);
        attn_params_free(ps);
    }
    if (have_dir) {
        unlink(path);
        rmdir(dir);
    }
    if (ctx) attn_ctx_free(ctx);
    TEST_END();
}

void suite_sinkroute(void) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/sinkroute.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        TEST_BEGIN("sinkroute/fixture");
        CHECK(0, "%s (regenerate with %s)", err, SCRIPT);
        TEST_END();
        return;
    }
    const atfx_tensor *nc = atfx_findf(fx, "n_cases");
    const int n = nc ? atfx_i32(nc)[0] : 0;
    TEST_BEGIN("sinkroute/fixture has 8 cases");
    CHECK(n == N_CASES, "%d cases", n);
    TEST_END();
    for (int k = 0; k < n; k++) {
        parity_case(fx, k, 0);
        parity_case(fx, k, 1);
        if (k == 1 || k == 2 || k == 5 || k == 7) fd_case(fx, k);
    }
    test_causal();
    test_errors();
    test_gpt_mixers();
    atfx_free(fx);
}
