/* test_attention.c: the attention modules of include/attn/rnn_attention.h
 * (suite "attention").
 *
 *   - parity with an independent PyTorch implementation
 *     (tests/fixtures/attention_global.atfx, attention_local.atfx from
 *     tools/make_attention_fixtures.py): every score function with global
 *     attention, local-m and local-p over several score functions, T = 1 and
 *     T > 1, with and without padding, a learned and a fixed beta. Context,
 *     weights, positions, and the gradients of q, h and every parameter of
 *     sum(context * R) + sum(weights * R2) (local-p's gradient reaches W_p
 *     and v_p only through p_t); fast and reference kernels;
 *   - central finite differences of the same loss through the public API for
 *     every score function and both local aligns (sampled elements of q, h
 *     and every parameter);
 *   - properties: padded positions get exactly 0 weight, global rows sum to 1,
 *     local weights are 0 outside the window (and local-m rows sum to 1),
 *     location attention ignores h's values, an empty sentence gives zeros
 *     and finite gradients, step-by-step decoding (2-D queries, one memory
 *     reused) reproduces the block of T queries in values and gradients;
 *   - the fused ADDITIVE_SCORE kernel at a ragged size (A 300: one full
 *     256-wide chunk and a partial one) against its reference kernel, and
 *     bitwise the same with 1 and 2 threads;
 *   - parameter names, shapes, initial ranges, and the error paths.
 *
 * Tolerances (|a - b| <= atol + rtol |ref|), each several times the largest
 * error measured with the tolerance set to 0:
 *   PARITY_*  float32 attn against float64 torch rounded once, the same
 *             float32 inputs. Measured: context, weights and positions
 *             within 4.8e-7 (|ref| up to 5.4), gradients within 2.3e-6 (|g|
 *             up to 7.6). 3e-6 + 3e-5 |ref| and 1e-5 + 1e-4 |ref|. A wrong
 *             formula, scale, window or a missing gradient path moves values
 *             by 1e-2 or more (checked by mutating rnn_attention.c: a detached
 *             p_t, floor(p) as the centre, sigma = D/sqrt 2, S_b - 1, ...).
 *   FD_*      central differences of the float32 forward with h = 1e-2 (the
 *             loss summed in double): the truncation h^2/6 |f'''| dominates;
 *             measured within 2.8e-4 at |fd| up to 2.1, at most 0.27 of the
 *             tolerance 3e-4 + 3e-3 |fd|.
 *   STEP_*    one step at a time vs the block: values are bitwise equal,
 *             gradients (summed in another order) within 1.9e-6 at |g| up to
 *             8.8. 2e-6 + 2e-5 |ref|.
 *   the fused kernel vs its reference: the op table's 1e-5 + 1e-4 |ref|;
 *             measured within 4.8e-7.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "test.h"

#define PARITY_ATOL 3e-6f
#define PARITY_RTOL 3e-5f
#define PARITY_GATOL 1e-5f
#define PARITY_GRTOL 1e-4f
#define FD_STEP 1e-2f
#define FD_ATOL 3e-4
#define FD_RTOL 3e-3
#define FD_SAMPLES 12
#define STEP_ATOL 2e-6f
#define STEP_RTOL 2e-5f
/* Every context: 32 MiB of arena, one thread, 16 guard bytes. */
#define ARENA_BYTES ((size_t)32 << 20)
#define GUARD_BYTES 16

static int finite_all(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

static const char *combo_name(attn_score s, attn_align a, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", attn_score_name(s), attn_align_name(a));
    return buf;
}

/* A configuration for score s and align a with the given sizes (Dq is set to
 * Dh where the score needs equal sizes). */
static attn_attention_config make_cfg(attn_score s, attn_align a, int64_t Dq, int64_t Dh, int64_t A,
                                      int64_t smax, int D) {
    attn_attention_config c = {.score = s,
                               .align = a,
                               .query_size = Dq,
                               .memory_size = Dh,
                               .attn_size = A,
                               .max_source_len = smax,
                               .window = D,
                               .beta = 3.0f};
    if (s == ATTN_SCORE_DOT || s == ATTN_SCORE_SCALED_DOT || s == ATTN_SCORE_COSINE)
        c.query_size = Dh;
    return c;
}

/* ==== parity with PyTorch ======================================================= */

static const atfx_tensor *need(const atfx_file *fx, const char *name, attn_dtype dt,
                               int64_t numel) {
    return test_fx_need(fx, name, dt, numel, "tools/make_attention_fixtures.py");
}

static void cmp_fx(const char *tag, const char *what, const float *got, const atfx_file *fx,
                   const char *name, int64_t n, float atol, float rtol) {
    test_fx_close(tag, what, got, fx, name, n, atol, rtol, "tools/make_attention_fixtures.py");
}

static void parity_case(const char *file, const atfx_file *fx, int k, int use_ref) {
    char label[160], tname[320], tag[256], nm[256];
    atfx_text(atfx_findf(fx, "c%d.label", k), label, sizeof label);
    snprintf(tname, sizeof tname, "attention/%s case %d (%s) [%s]", file, k, label,
             use_ref ? "ref" : "fast");
    snprintf(tag, sizeof tag, "%s case %d [%s]", file, k, use_ref ? "ref" : "fast");
    TEST_BEGIN(tname);
    attn_params *ps = NULL;
    attn_ctx *ctx = NULL;
    snprintf(nm, sizeof nm, "c%d.cfg", k);
    const atfx_tensor *ct = need(fx, nm, ATTN_I32, 10);
    if (!ct) goto out;
    const int32_t *cv = atfx_i32(ct);
    attn_attention_config cfg = {.score = (attn_score)cv[0],
                                 .align = (attn_align)cv[1],
                                 .query_size = cv[2],
                                 .memory_size = cv[3],
                                 .attn_size = cv[4],
                                 .max_source_len = cv[5],
                                 .window = cv[6],
                                 .beta_fixed = cv[8]};
    const int64_t step = cv[7];
    const int has_len = cv[9];
    const atfx_tensor *bt = atfx_findf(fx, "c%d.beta", k);
    if (bt) cfg.beta = atfx_f32(bt)[0];
    attn_attention att;
    CHECK_OK(attn_params_new(&ps));
    if (!ps) goto out;
    CHECK_OK(attn_attention_init(&att, ps, "attn.", &cfg, NULL));
    if (test__failed_checks) goto out;

    /* torch's named_parameters(), in order, into the store */
    if (test_load_torch_params(fx, k, ps, 5, tag) < 0) goto out;

    ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    if (!ctx) goto out;
    attn_ctx_set_use_ref(ctx, use_ref);
    const atfx_tensor *qt = need(fx, (snprintf(nm, sizeof nm, "c%d.q", k), nm), ATTN_F32, -1);
    const atfx_tensor *ht = need(fx, (snprintf(nm, sizeof nm, "c%d.h", k), nm), ATTN_F32, -1);
    if (!qt || !ht || qt->ndim != 3 || ht->ndim != 3) goto out;
    const int64_t B = qt->shape[0], T = qt->shape[1], S = ht->shape[1], Dh = ht->shape[2];
    attn_tensor *q = test_leaf(ctx, 3, qt->shape, atfx_f32(qt)),
                *h = test_leaf(ctx, 3, ht->shape, atfx_f32(ht));
    attn_tensor *lengths = NULL;
    if (has_len) {
        const atfx_tensor *lt =
            need(fx, (snprintf(nm, sizeof nm, "c%d.lengths", k), nm), ATTN_I32, B);
        if (!lt) goto out;
        lengths = attn_tensor_from(ctx, ATTN_I32, 1, &B, lt->data);
    }
    attn_attention_memory mem;
    CHECK_OK(attn_attention_memory_init(ctx, &att, h, lengths, &mem));
    attn_tensor *w = NULL, *pos = NULL;
    attn_tensor *c = attn_attention_forward(ctx, &att, &mem, q, step, &w, &pos);
    CHECK(c && w, "%s: forward failed: %s", tag, attn_ctx_error(ctx));
    if (!c || !w) goto out;
    CHECK(c->ndim == 3 && c->shape[0] == B && c->shape[1] == T && c->shape[2] == Dh &&
              w->ndim == 3 && w->shape[2] == S,
          "%s: context %s, weights %s", tag, attn_shape_str(c, nm, 128),
          attn_shape_str(w, nm + 128, 128));
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s: forward: %s", tag, attn_last_error());
    cmp_fx(tag, "(a) context vs torch", attn_f32(c), fx,
           (snprintf(nm, sizeof nm, "c%d.context", k), nm), B * T * Dh, PARITY_ATOL, PARITY_RTOL);
    cmp_fx(tag, "(a) weights vs torch", attn_f32(w), fx,
           (snprintf(nm, sizeof nm, "c%d.weights", k), nm), B * T * S, PARITY_ATOL, PARITY_RTOL);
    if (cfg.align != ATTN_ALIGN_GLOBAL) {
        CHECK(pos != NULL, "%s: no positions for a local align", tag);
        cmp_fx(tag, "(a) positions vs torch", pos ? attn_f32(pos) : NULL, fx,
               (snprintf(nm, sizeof nm, "c%d.positions", k), nm), B * T, PARITY_ATOL, PARITY_RTOL);
    } else {
        CHECK(pos == NULL, "%s: global attention returned positions", tag);
    }

    const atfx_tensor *r1 =
        need(fx, (snprintf(nm, sizeof nm, "c%d.R", k), nm), ATTN_F32, B * T * Dh);
    const atfx_tensor *r2 =
        need(fx, (snprintf(nm, sizeof nm, "c%d.R2", k), nm), ATTN_F32, B * T * S);
    if (!r1 || !r2) goto out;
    attn_tensor *loss =
        attn_add(ctx, test_dot_loss(ctx, c, atfx_f32(r1)), test_dot_loss(ctx, w, atfx_f32(r2)));
    attn_params_zero_grad(ps);
    CHECK(loss != NULL, "%s: loss: %s", tag, attn_ctx_error(ctx));
    if (!loss) goto out;
    CHECK_OK(attn_backward(ctx, loss));
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s: backward: %s", tag, attn_last_error());
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        char what[128], fxname[192];
        snprintf(fxname, sizeof fxname, "c%d.grad.param.%s", k, p->name + 5);
        if (!p->requires_grad) { /* a fixed beta: torch has no gradient, ours stays 0 */
            int64_t nz = 0;
            for (int64_t j = 0; j < attn_tensor_numel(p); j++) nz += p->grad && p->grad[j] != 0.0f;
            CHECK(atfx_find(fx, fxname) == NULL && nz == 0,
                  "%s: frozen %s: torch gradient present or %lld nonzero gradient values", tag,
                  p->name, (long long)nz);
            continue;
        }
        snprintf(what, sizeof what, "(b) gradient of %s vs torch", p->name);
        cmp_fx(tag, what, p->grad, fx, fxname, attn_tensor_numel(p), PARITY_GATOL, PARITY_GRTOL);
    }
    cmp_fx(tag, "(b) gradient of q vs torch", q->grad, fx,
           (snprintf(nm, sizeof nm, "c%d.grad.q", k), nm), attn_tensor_numel(q), PARITY_GATOL,
           PARITY_GRTOL);
    cmp_fx(tag, "(b) gradient of h vs torch", h->grad, fx,
           (snprintf(nm, sizeof nm, "c%d.grad.h", k), nm), attn_tensor_numel(h), PARITY_GATOL,
           PARITY_GRTOL);
out:
    attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

static void test_parity(void) {
    static const char *const files[2] = {"attention_global", "attention_local"};
    static const int min_cases[2] = {12, 8};
    for (int f = 0; f < 2; f++) {
        char path[512], err[256], tname[96];
        snprintf(path, sizeof path, "%s/%s.atfx", test_fixture_dir(), files[f]);
        snprintf(tname, sizeof tname, "attention/%s fixture", files[f]);
        atfx_file *fx = NULL;
        TEST_BEGIN(tname);
        attn_status st = atfx_load(path, &fx, err, sizeof err);
        CHECK(st == ATTN_OK, "cannot load %s: %s (run tools/make_attention_fixtures.py)", path,
              err);
        const atfx_tensor *nc = fx ? atfx_find(fx, "n_cases") : NULL;
        int n = nc && nc->dtype == ATTN_I32 && nc->numel == 1 ? atfx_i32(nc)[0] : 0;
        CHECK(n >= min_cases[f], "%s: %d cases, expected at least %d", path, n, min_cases[f]);
        TEST_END();
        for (int k = 0; k < n; k++)
            for (int ref = 0; ref < 2; ref++) parity_case(files[f], fx, k, ref);
        atfx_free(fx);
    }
}

/* ==== one problem, run through the public API ================================= */

/* Sizes, data and module of a test problem. q is [B, T, Dq], h [B, S, Dh];
 * R [B, T, Dh] and R2 [B, T, S] weight the loss. */
typedef struct problem {
    attn_params *ps;
    attn_attention att;
    int64_t B, T, S, Dq, Dh, step;
    int32_t len[8];
    int has_len;
    float *q, *h, *r1, *r2;
} problem;

static void problem_free(problem *p) {
    attn_params_free(p->ps);
    free(p->q);
    free(p->h);
    free(p->r1);
    free(p->r2);
    memset(p, 0, sizeof *p);
}

/* Builds a problem with random (seeded) weights and data; 0 on success. */
static int problem_init(problem *p, const attn_attention_config *cfg, int64_t B, int64_t T,
                        int64_t S, const int32_t *len, int64_t step, uint64_t seed) {
    memset(p, 0, sizeof *p);
    attn_rng rng;
    attn_rng_init(&rng, seed);
    CHECK_OK(attn_params_new(&p->ps));
    if (!p->ps) return -1;
    CHECK_OK(attn_attention_init(&p->att, p->ps, "attn.", cfg, &rng));
    if (test__failed_checks) return -1;
    /* local-p: spread the predicted positions over the sentence */
    if (p->att.v_p)
        for (int64_t i = 0; i < attn_tensor_numel(p->att.v_p); i++) attn_f32(p->att.v_p)[i] *= 3.0f;
    p->B = B, p->T = T, p->S = S, p->step = step;
    p->Dq = p->att.cfg.query_size, p->Dh = p->att.cfg.memory_size;
    p->has_len = len != NULL;
    for (int64_t b = 0; b < B && b < 8; b++) p->len[b] = len ? len[b] : (int32_t)S;
    p->q = malloc(sizeof(float) * (size_t)(B * T * p->Dq));
    p->h = malloc(sizeof(float) * (size_t)(B * S * p->Dh));
    p->r1 = malloc(sizeof(float) * (size_t)(B * T * p->Dh));
    p->r2 = malloc(sizeof(float) * (size_t)(B * T * S));
    if (!p->q || !p->h || !p->r1 || !p->r2) {
        CHECK(0, "out of memory");
        return -1;
    }
    test_fill_normal(p->q, B * T * p->Dq, &rng);
    test_fill_normal(p->h, B * S * p->Dh, &rng);
    test_fill_normal(p->r1, B * T * p->Dh, &rng);
    test_fill_normal(p->r2, B * T * S, &rng);
    return 0;
}

typedef struct run_out {
    attn_tensor *q, *h, *c, *w, *pos, *loss;
    attn_attention_memory mem;
    double loss_d; /* sum(c * R) + sum(w * R2) in double */
} run_out;

/* Resets ctx and runs the module on the problem's data (q and h as leaves);
 * with `graph_loss` also builds the loss on the tape. 0 on success. */
static int problem_run(attn_ctx *ctx, problem *p, int graph_loss, run_out *o) {
    memset(o, 0, sizeof *o);
    attn_ctx_reset(ctx);
    const int64_t qs[3] = {p->B, p->T, p->Dq}, hs[3] = {p->B, p->S, p->Dh};
    o->q = test_leaf(ctx, 3, qs, p->q);
    o->h = test_leaf(ctx, 3, hs, p->h);
    attn_tensor *len = p->has_len ? attn_tensor_from(ctx, ATTN_I32, 1, &p->B, p->len) : NULL;
    if (!o->q || !o->h || (p->has_len && !len) ||
        attn_attention_memory_init(ctx, &p->att, o->h, len, &o->mem) != ATTN_OK ||
        !(o->c = attn_attention_forward(ctx, &p->att, &o->mem, o->q, p->step, &o->w, &o->pos))) {
        CHECK(0, "forward failed: %s", attn_ctx_error(ctx));
        return -1;
    }
    o->loss_d = test_dot_d(o->c, p->r1) + test_dot_d(o->w, p->r2);
    if (graph_loss) {
        o->loss = attn_add(ctx, test_dot_loss(ctx, o->c, p->r1), test_dot_loss(ctx, o->w, p->r2));
        if (!o->loss) {
            CHECK(0, "loss failed: %s", attn_ctx_error(ctx));
            return -1;
        }
    }
    return 0;
}

/* The configurations every property and finite-difference test walks. */
typedef struct combo {
    attn_score score;
    attn_align align;
} combo;

static const combo COMBOS[] = {
    {ATTN_SCORE_DOT, ATTN_ALIGN_GLOBAL},       {ATTN_SCORE_SCALED_DOT, ATTN_ALIGN_GLOBAL},
    {ATTN_SCORE_GENERAL, ATTN_ALIGN_GLOBAL},   {ATTN_SCORE_ADDITIVE, ATTN_ALIGN_GLOBAL},
    {ATTN_SCORE_COSINE, ATTN_ALIGN_GLOBAL},    {ATTN_SCORE_LOCATION, ATTN_ALIGN_GLOBAL},
    {ATTN_SCORE_GENERAL, ATTN_ALIGN_LOCAL_M},  {ATTN_SCORE_ADDITIVE, ATTN_ALIGN_LOCAL_M},
    {ATTN_SCORE_DOT, ATTN_ALIGN_LOCAL_P},      {ATTN_SCORE_GENERAL, ATTN_ALIGN_LOCAL_P},
    {ATTN_SCORE_ADDITIVE, ATTN_ALIGN_LOCAL_P}, {ATTN_SCORE_COSINE, ATTN_ALIGN_LOCAL_P},
    {ATTN_SCORE_LOCATION, ATTN_ALIGN_LOCAL_P},
};
#define N_COMBOS ((int)(sizeof COMBOS / sizeof COMBOS[0]))

/* ==== finite differences ========================================================= */

/* Window centres of the local aligns (floor(p + 1/2)) written to cen. */
static void centres(const attn_tensor *pos, int64_t n, int64_t *cen) {
    for (int64_t i = 0; i < n; i++)
        cen[i] = pos ? (int64_t)floor((double)attn_f32(pos)[i] + 0.5) : 0;
}

/* Central difference of the loss in *v (restored) with step `step`. *moved is
 * set when a perturbation moved a local window (the loss jumps there: not a
 * gradient). */
static double fd_diff(attn_ctx *ctx, problem *p, float *v, float step, const int64_t *cen0,
                      int *moved) {
    const float v0 = *v, vp = v0 + step, vm = v0 - step;
    const int64_t n = p->B * p->T;
    int64_t cen[64];
    double l[2];
    *moved = 0;
    attn_ctx_set_grad_enabled(ctx, 0);
    for (int side = 0; side < 2; side++) {
        *v = side ? vm : vp;
        run_out o;
        if (problem_run(ctx, p, 0, &o)) {
            l[side] = NAN;
            continue;
        }
        l[side] = o.loss_d;
        centres(o.pos, n, cen);
        for (int64_t i = 0; i < n; i++) *moved |= cen[i] != cen0[i];
    }
    attn_ctx_set_grad_enabled(ctx, 1);
    *v = v0;
    return (l[0] - l[1]) / ((double)vp - (double)vm);
}

/* FD_STEP, or FD_STEP / 10 where FD_STEP moves a local-p window (p_t within
 * FD_STEP |dp/dx| of a half-integer); *moved if both do. */
static double fd_probe(attn_ctx *ctx, problem *p, float *v, const int64_t *cen0, int *moved) {
    double fd = fd_diff(ctx, p, v, FD_STEP, cen0, moved);
    if (*moved) fd = fd_diff(ctx, p, v, FD_STEP / 10.0f, cen0, moved);
    return fd;
}

typedef struct fd_stats {
    int probed, skipped, failed;
    double worst; /* largest |fd - an| / (atol + rtol |fd|) */
} fd_stats;

/* Probes up to FD_SAMPLES elements of x (n floats; analytic gradient g). */
static void fd_tensor(attn_ctx *ctx, problem *p, const char *tag, const char *what, float *x,
                      const float *g, int64_t n, const int64_t *cen0, fd_stats *st) {
    const int64_t k = n < FD_SAMPLES ? n : FD_SAMPLES;
    for (int64_t j = 0; j < k; j++) {
        /* first, last and a fixed spread in between */
        const int64_t i = k == 1 ? 0 : (j * (n - 1)) / (k - 1);
        int moved;
        const double fd = fd_probe(ctx, p, &x[i], cen0, &moved);
        if (moved) {
            st->skipped++;
            continue;
        }
        st->probed++;
        const double an = g ? (double)g[i] : 0.0, tol = FD_ATOL + FD_RTOL * fabs(fd);
        const double r = fabs(fd - an) / tol;
        if (r > st->worst) st->worst = r;
        if (!(fabs(fd - an) <= tol)) {
            st->failed++;
            CHECK(0,
                  "%s: d loss / d %s[%lld]: finite difference %.7g, analytic %.7g (tolerance %.2g)",
                  tag, what, (long long)i, fd, an, tol);
        }
    }
}

static void test_finite_differences(void) {
    static const int32_t len[3] = {6, 4, 2};
    for (int ci = 0; ci < N_COMBOS; ci++) {
        for (int one = 0; one < 2; one++) { /* T = 3 and T = 1 */
            const combo cb = COMBOS[ci];
            char name[64], tname[128];
            combo_name(cb.score, cb.align, name, sizeof name);
            snprintf(tname, sizeof tname, "attention/finite differences %s T %d", name,
                     one ? 1 : 3);
            TEST_BEGIN(tname);
            problem p;
            attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
            const attn_attention_config cfg = make_cfg(cb.score, cb.align, 5, 4, 3, 8, 2);
            if (!ctx || problem_init(&p, &cfg, 3, one ? 1 : 3, 6, len, one ? 4 : 1,
                                     1000 + (uint64_t)(ci * 2 + one))) {
                problem_free(&p);
                attn_ctx_free(ctx);
                TEST_END();
                continue;
            }
            run_out o;
            if (!problem_run(ctx, &p, 1, &o)) {
                attn_params_zero_grad(p.ps);
                CHECK_OK(attn_backward(ctx, o.loss));
                /* copy the analytic gradients: the probes reset the context */
                const int64_t nq = p.B * p.T * p.Dq, nh = p.B * p.S * p.Dh;
                float *gq = calloc((size_t)nq, sizeof(float)),
                      *gh = calloc((size_t)nh, sizeof(float));
                int64_t cen0[64];
                centres(o.pos, p.B * p.T, cen0);
                if (gq && gh) {
                    if (o.q->grad) memcpy(gq, o.q->grad, sizeof(float) * (size_t)nq);
                    if (o.h->grad) memcpy(gh, o.h->grad, sizeof(float) * (size_t)nh);
                    fd_stats st = {0, 0, 0, 0.0};
                    fd_tensor(ctx, &p, name, "q", p.q, gq, nq, cen0, &st);
                    fd_tensor(ctx, &p, name, "h", p.h, gh, nh, cen0, &st);
                    for (int i = 0; i < attn_params_count(p.ps); i++) {
                        attn_tensor *prm = attn_params_at(p.ps, i);
                        fd_tensor(ctx, &p, name, prm->name, attn_f32(prm), prm->grad,
                                  attn_tensor_numel(prm), cen0, &st);
                    }
                    /* a moved window is a jump of the loss, not a wrong
                     * gradient; most probes must still run */
                    CHECK(st.skipped * 4 <= st.probed + st.skipped,
                          "%s: %d of %d probes moved a local window", name, st.skipped,
                          st.probed + st.skipped);
                    if (test__verbose)
                        printf("    %s T %d: %d probes, %d skipped, worst %.3f of tolerance\n",
                               name, one ? 1 : 3, st.probed, st.skipped, st.worst);
                }
                free(gq);
                free(gh);
            }
            problem_free(&p);
            attn_ctx_free(ctx);
            TEST_END();
        }
    }
}

/* ==== properties ================================================================= */

/* Padding gets exactly 0, global rows sum to 1, local weights are 0 outside
 * the window and local-m rows sum to 1; nothing is NaN. */
static void test_masks(void) {
    static const int32_t len[3] = {9, 5, 1};
    for (int ci = 0; ci < N_COMBOS; ci++) {
        const combo cb = COMBOS[ci];
        char name[64], tname[128];
        combo_name(cb.score, cb.align, name, sizeof name);
        snprintf(tname, sizeof tname, "attention/masks and row sums %s", name);
        TEST_BEGIN(tname);
        problem p;
        attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
        const attn_attention_config cfg = make_cfg(cb.score, cb.align, 6, 7, 5, 12, 2);
        run_out o;
        if (ctx && !problem_init(&p, &cfg, 3, 6, 9, len, 2, 77 + (uint64_t)ci) &&
            !problem_run(ctx, &p, 0, &o)) {
            const int64_t B = p.B, T = p.T, S = p.S, D = cfg.window;
            int64_t pad_bad = 0, win_bad = 0, sum_bad = 0, neg = 0;
            double worst_sum = 0.0;
            CHECK(finite_all(attn_f32(o.w), B * T * S) && finite_all(attn_f32(o.c), B * T * p.Dh),
                  "%s: NaN or Inf in weights or context", name);
            for (int64_t b = 0; b < B; b++)
                for (int64_t t = 0; t < T; t++) {
                    const float *row = attn_f32(o.w) + (b * T + t) * S;
                    const int64_t c =
                        o.pos ? (int64_t)floor((double)attn_f32(o.pos)[b * T + t] + 0.5) : 0;
                    double sum = 0.0;
                    for (int64_t s = 0; s < S; s++) {
                        sum += row[s];
                        neg += row[s] < 0.0f;
                        if (s >= p.len[b])
                            pad_bad += row[s] != 0.0f;
                        else if (cb.align != ATTN_ALIGN_GLOBAL && (s < c - D || s > c + D))
                            win_bad += row[s] != 0.0f;
                    }
                    if (cb.align != ATTN_ALIGN_LOCAL_P) {
                        sum_bad += !(fabs(sum - 1.0) <= 1e-6);
                        if (fabs(sum - 1.0) > worst_sum) worst_sum = fabs(sum - 1.0);
                    } else {
                        sum_bad += !(sum > 0.0 && sum <= 1.0 + 1e-6); /* Gaussian <= 1 */
                    }
                }
            CHECK(pad_bad == 0, "%s: %lld padded positions have nonzero weight", name,
                  (long long)pad_bad);
            CHECK(win_bad == 0, "%s: %lld positions outside the window have nonzero weight", name,
                  (long long)win_bad);
            CHECK(neg == 0, "%s: %lld negative weights", name, (long long)neg);
            CHECK(sum_bad == 0, "%s: %lld rows with a bad sum (worst |sum - 1| %.3g)", name,
                  (long long)sum_bad, worst_sum);
            if (cb.align == ATTN_ALIGN_LOCAL_M) { /* p_t = min(step + t, S_b - 1) */
                int64_t bad = 0;
                for (int64_t b = 0; b < B; b++)
                    for (int64_t t = 0; t < T; t++) {
                        int64_t want = p.step + t < p.len[b] - 1 ? p.step + t : p.len[b] - 1;
                        bad += attn_f32(o.pos)[b * T + t] != (float)want;
                    }
                CHECK(bad == 0, "%s: %lld positions differ from min(step + t, S_b - 1)", name,
                      (long long)bad);
            }
            if (cb.align == ATTN_ALIGN_LOCAL_P) { /* p_t in [0, S_b] */
                int64_t bad = 0;
                for (int64_t b = 0; b < B; b++)
                    for (int64_t t = 0; t < T; t++) {
                        const float v = attn_f32(o.pos)[b * T + t];
                        bad += !(v >= 0.0f && v <= (float)p.len[b]);
                    }
                CHECK(bad == 0, "%s: %lld positions outside [0, S_b]", name, (long long)bad);
            }
        }
        problem_free(&p);
        attn_ctx_free(ctx);
        TEST_END();
    }
}

/* Location attention depends on the target state only: other values of h
 * give bitwise the same weights (and a different context). */
static void test_location_ignores_h(void) {
    TEST_BEGIN("attention/location ignores h");
    static const int32_t len[2] = {5, 3};
    problem p;
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    const attn_attention_config cfg =
        make_cfg(ATTN_SCORE_LOCATION, ATTN_ALIGN_GLOBAL, 4, 3, 0, 7, 0);
    run_out o;
    if (ctx && !problem_init(&p, &cfg, 2, 3, 5, len, 0, 5) && !problem_run(ctx, &p, 0, &o)) {
        const int64_t nw = p.B * p.T * p.S, nc = p.B * p.T * p.Dh;
        float *w0 = malloc(sizeof(float) * (size_t)nw), *c0 = malloc(sizeof(float) * (size_t)nc);
        if (w0 && c0) {
            memcpy(w0, attn_f32(o.w), sizeof(float) * (size_t)nw);
            memcpy(c0, attn_f32(o.c), sizeof(float) * (size_t)nc);
            for (int64_t i = 0; i < p.B * p.S * p.Dh; i++) p.h[i] = 3.0f * p.h[i] + 1.0f;
            if (!problem_run(ctx, &p, 0, &o)) {
                CHECK(memcmp(w0, attn_f32(o.w), sizeof(float) * (size_t)nw) == 0,
                      "weights changed with h's values");
                CHECK(memcmp(c0, attn_f32(o.c), sizeof(float) * (size_t)nc) != 0,
                      "context did not change with h's values");
            }
        }
        free(w0);
        free(c0);
    }
    problem_free(&p);
    attn_ctx_free(ctx);
    TEST_END();
}

/* A sentence of length 0: zero weights, zero context, finite gradients that
 * are zero for its h; the other sentence is unaffected. */
static void test_empty_sentence(void) {
    static const int32_t len[2] = {0, 4};
    for (int ci = 0; ci < N_COMBOS; ci++) {
        const combo cb = COMBOS[ci];
        char name[64], tname[128];
        combo_name(cb.score, cb.align, name, sizeof name);
        snprintf(tname, sizeof tname, "attention/empty sentence %s", name);
        TEST_BEGIN(tname);
        problem p;
        attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
        const attn_attention_config cfg = make_cfg(cb.score, cb.align, 3, 4, 2, 6, 1);
        run_out o;
        if (ctx && !problem_init(&p, &cfg, 2, 2, 5, len, 0, 11 + (uint64_t)ci) &&
            !problem_run(ctx, &p, 1, &o)) {
            const int64_t T = p.T, S = p.S, Dh = p.Dh;
            int64_t nz = 0;
            for (int64_t i = 0; i < T * S; i++) nz += attn_f32(o.w)[i] != 0.0f;
            for (int64_t i = 0; i < T * Dh; i++) nz += attn_f32(o.c)[i] != 0.0f;
            CHECK(nz == 0, "%s: %lld nonzero weights or context values for the empty sentence",
                  name, (long long)nz);
            double s1 = 0.0;
            for (int64_t i = 0; i < S; i++) s1 += attn_f32(o.w)[T * S + i];
            CHECK(cb.align == ATTN_ALIGN_LOCAL_P || fabs(s1 - 1.0) <= 1e-6,
                  "%s: the other sentence's row sums to %.9g", name, s1);
            attn_params_zero_grad(p.ps);
            CHECK_OK(attn_backward(ctx, o.loss));
            CHECK(o.q->grad && o.h->grad && finite_all(o.q->grad, p.B * T * p.Dq) &&
                      finite_all(o.h->grad, p.B * S * Dh),
                  "%s: missing or non-finite gradients of q or h", name);
            for (int i = 0; i < attn_params_count(p.ps); i++) {
                attn_tensor *prm = attn_params_at(p.ps, i);
                CHECK(finite_all(prm->grad, attn_tensor_numel(prm)),
                      "%s: non-finite gradient of %s", name, prm->name);
            }
            int64_t gnz = 0;
            for (int64_t i = 0; o.h->grad && i < S * Dh; i++) gnz += o.h->grad[i] != 0.0f;
            CHECK(gnz == 0, "%s: %lld nonzero gradients for the empty sentence's h", name,
                  (long long)gnz);
        }
        problem_free(&p);
        attn_ctx_free(ctx);
        TEST_END();
    }
}

/* Step-by-step decoding: T calls with 2-D queries q[:, t] and step = t on one
 * memory reproduce the block of T queries (step 0): context, weights,
 * positions, and the gradients of q, h and every parameter of the summed
 * loss (the memory's gradients accumulate over the steps). */
static void test_steps_match_block(void) {
    static const int32_t len[3] = {7, 3, 5};
    for (int ci = 0; ci < N_COMBOS; ci++) {
        const combo cb = COMBOS[ci];
        char name[64], tname[128];
        combo_name(cb.score, cb.align, name, sizeof name);
        snprintf(tname, sizeof tname, "attention/steps match block %s", name);
        TEST_BEGIN(tname);
        problem p;
        attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
        const attn_attention_config cfg = make_cfg(cb.score, cb.align, 5, 4, 3, 9, 2);
        run_out o;
        if (!ctx || problem_init(&p, &cfg, 3, 6, 7, len, 0, 300 + (uint64_t)ci) ||
            problem_run(ctx, &p, 1, &o)) {
            problem_free(&p);
            attn_ctx_free(ctx);
            TEST_END();
            continue;
        }
        const int64_t B = p.B, T = p.T, S = p.S, Dq = p.Dq, Dh = p.Dh;
        const int np = attn_params_count(p.ps);
        attn_params_zero_grad(p.ps);
        CHECK_OK(attn_backward(ctx, o.loss));
        /* the block's results, gradients included */
        size_t nbuf = (size_t)(B * T * (Dh + S + 1 + Dq) + B * S * Dh);
        for (int i = 0; i < np; i++) nbuf += (size_t)attn_tensor_numel(attn_params_at(p.ps, i));
        float *buf = calloc(nbuf, sizeof(float));
        if (!buf) {
            CHECK(0, "out of memory");
            problem_free(&p);
            attn_ctx_free(ctx);
            TEST_END();
            continue;
        }
        float *bc = buf, *bw = bc + B * T * Dh, *bp = bw + B * T * S, *bgq = bp + B * T,
              *bgh = bgq + B * T * Dq, *bgp = bgh + B * S * Dh;
        memcpy(bc, attn_f32(o.c), sizeof(float) * (size_t)(B * T * Dh));
        memcpy(bw, attn_f32(o.w), sizeof(float) * (size_t)(B * T * S));
        if (o.pos) memcpy(bp, attn_f32(o.pos), sizeof(float) * (size_t)(B * T));
        memcpy(bgq, o.q->grad, sizeof(float) * (size_t)(B * T * Dq));
        memcpy(bgh, o.h->grad, sizeof(float) * (size_t)(B * S * Dh));
        float *g = bgp;
        for (int i = 0; i < np; i++) {
            attn_tensor *prm = attn_params_at(p.ps, i);
            memcpy(g, prm->grad, sizeof(float) * (size_t)attn_tensor_numel(prm));
            g += attn_tensor_numel(prm);
        }

        /* one step at a time */
        attn_ctx_reset(ctx);
        attn_params_zero_grad(p.ps);
        const int64_t hs[3] = {B, S, Dh}, qs[2] = {B, Dq};
        attn_tensor *h = test_leaf(ctx, 3, hs, p.h);
        attn_tensor *lt = attn_tensor_from(ctx, ATTN_I32, 1, &B, p.len);
        attn_attention_memory mem;
        CHECK_OK(attn_attention_memory_init(ctx, &p.att, h, lt, &mem));
        attn_tensor *loss = NULL, *qt[16];
        float qbuf[64], r1[64], r2[64], sc[64], sw[64];
        char what[160];
        for (int64_t t = 0; t < T && !test__failed_checks; t++) {
            for (int64_t b = 0; b < B; b++) {
                memcpy(qbuf + b * Dq, p.q + (b * T + t) * Dq, sizeof(float) * (size_t)Dq);
                memcpy(r1 + b * Dh, p.r1 + (b * T + t) * Dh, sizeof(float) * (size_t)Dh);
                memcpy(r2 + b * S, p.r2 + (b * T + t) * S, sizeof(float) * (size_t)S);
                memcpy(sc + b * Dh, bc + (b * T + t) * Dh, sizeof(float) * (size_t)Dh);
                memcpy(sw + b * S, bw + (b * T + t) * S, sizeof(float) * (size_t)S);
            }
            qt[t] = test_leaf(ctx, 2, qs, qbuf);
            attn_tensor *w = NULL, *pos = NULL;
            attn_tensor *c = attn_attention_forward(ctx, &p.att, &mem, qt[t], t, &w, &pos);
            CHECK(c && w && c->ndim == 2 && c->shape[0] == B && c->shape[1] == Dh && w->ndim == 2 &&
                      w->shape[1] == S &&
                      (cb.align == ATTN_ALIGN_GLOBAL ? !pos : pos && pos->ndim == 1),
                  "%s step %lld: forward failed or wrong shapes: %s", name, (long long)t,
                  attn_ctx_error(ctx));
            if (test__failed_checks) break;
            snprintf(what, sizeof what, "%s step %lld: context vs block", name, (long long)t);
            test_allclose(what, attn_f32(c), sc, B * Dh, STEP_ATOL, STEP_RTOL);
            snprintf(what, sizeof what, "%s step %lld: weights vs block", name, (long long)t);
            test_allclose(what, attn_f32(w), sw, B * S, STEP_ATOL, STEP_RTOL);
            if (pos) {
                float pb[8];
                for (int64_t b = 0; b < B; b++) pb[b] = bp[b * T + t];
                snprintf(what, sizeof what, "%s step %lld: positions vs block", name, (long long)t);
                test_allclose(what, attn_f32(pos), pb, B, STEP_ATOL, STEP_RTOL);
            }
            attn_tensor *l = attn_add(ctx, test_dot_loss(ctx, c, r1), test_dot_loss(ctx, w, r2));
            loss = loss ? attn_add(ctx, loss, l) : l;
        }
        if (!test__failed_checks && loss) {
            CHECK_OK(attn_backward(ctx, loss));
            float gq[256];
            for (int64_t t = 0; t < T; t++)
                for (int64_t b = 0; b < B; b++)
                    memcpy(gq + (b * T + t) * Dq, qt[t]->grad + b * Dq, sizeof(float) * (size_t)Dq);
            snprintf(what, sizeof what, "%s steps: gradient of q vs block", name);
            test_allclose(what, gq, bgq, B * T * Dq, STEP_ATOL, STEP_RTOL);
            snprintf(what, sizeof what, "%s steps: gradient of h vs block", name);
            test_allclose(what, h->grad, bgh, B * S * Dh, STEP_ATOL, STEP_RTOL);
            g = bgp;
            for (int i = 0; i < np; i++) {
                attn_tensor *prm = attn_params_at(p.ps, i);
                snprintf(what, sizeof what, "%s steps: gradient of %s vs block", name, prm->name);
                test_allclose(what, prm->grad, g, attn_tensor_numel(prm), STEP_ATOL, STEP_RTOL);
                g += attn_tensor_numel(prm);
            }
        }
        free(buf);
        problem_free(&p);
        attn_ctx_free(ctx);
        TEST_END();
    }
}

/* ==== the fused additive score at ragged sizes ================================ */

/* Fast kernel vs the reference (double) kernel on B 3, T 5, S 17, A 300 (a
 * full 256-wide chunk plus a ragged one), and the fast kernel's output and
 * gradients bitwise the same with 1 and 2 threads. The gradient of the
 * reference run is the same backward, so only the forward is compared
 * across kernels (the backward is judged by the fixtures and the finite
 * differences). */
static void test_additive_kernel(void) {
    TEST_BEGIN("attention/additive_score fast vs reference, 1 vs 2 threads");
    const int64_t B = 3, T = 5, S = 17, A = 300;
    const int64_t qs[3] = {B, T, A}, ks[3] = {B, S, A};
    float *wq = malloc(sizeof(float) * (size_t)(B * T * A)),
          *wk = malloc(sizeof(float) * (size_t)(B * S * A)), *v = malloc(sizeof(float) * (size_t)A),
          *g = malloc(sizeof(float) * (size_t)(B * T * S)),
          *keep = malloc(sizeof(float) * (size_t)(B * T * S + B * T * A + B * S * A + A));
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    if (!wq || !wk || !v || !g || !keep || !ctx) {
        CHECK(0, "setup failed");
        goto out;
    }
    attn_rng rng;
    attn_rng_init(&rng, 42);
    test_fill_normal(wq, B * T * A, &rng);
    test_fill_normal(wk, B * S * A, &rng);
    test_fill_normal(v, A, &rng);
    for (int64_t i = 0; i < A; i++) v[i] *= 0.1f;
    test_fill_normal(g, B * T * S, &rng);
    for (int64_t i = 0; i < B * T * S; i += 3) g[i] = 0.0f; /* masked positions */
    for (int run = 0; run < 3; run++) { /* 0: fast, 2 threads; 1: fast, 1 thread; 2: reference */
        attn_ctx_reset(ctx);
        attn_ctx_set_threads(ctx, run == 0 ? 2 : 1);
        attn_ctx_set_use_ref(ctx, run == 2);
        attn_tensor *tq = test_leaf(ctx, 3, qs, wq), *tk = test_leaf(ctx, 3, ks, wk),
                    *tv = test_leaf(ctx, 1, &A, v);
        attn_tensor *e = attn_additive_score(ctx, tq, tk, tv);
        CHECK(e != NULL, "forward failed: %s", attn_ctx_error(ctx));
        if (!e) break;
        CHECK_OK(attn_backward_from(ctx, e, g));
        CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "guards: %s", attn_last_error());
        if (test__failed_checks) break;
        float *parts[4] = {attn_f32(e), tq->grad, tk->grad, tv->grad};
        const int64_t sizes[4] = {B * T * S, B * T * A, B * S * A, A};
        if (run == 0) {
            float *dst = keep;
            for (int i = 0; i < 4; i++) {
                memcpy(dst, parts[i], sizeof(float) * (size_t)sizes[i]);
                dst += sizes[i];
            }
        } else if (run == 1) {
            const float *src = keep;
            static const char *const names[4] = {"output", "grad wq", "grad wk", "grad v"};
            for (int i = 0; i < 4; i++) {
                CHECK(memcmp(src, parts[i], sizeof(float) * (size_t)sizes[i]) == 0,
                      "%s differs between 1 and 2 threads", names[i]);
                src += sizes[i];
            }
        } else {
            /* the op table's forward tolerance (1e-5, 1e-4) */
            test_allclose("additive_score fast vs reference", keep, attn_f32(e), B * T * S, 1e-5f,
                          1e-4f);
        }
    }
out:
    free(wq);
    free(wk);
    free(v);
    free(g);
    free(keep);
    attn_ctx_free(ctx);
    TEST_END();
}

/* ==== parameters =================================================================== */

static void test_params(void) {
    TEST_BEGIN("attention/parameter names, shapes and initial ranges");
    static const struct {
        attn_score s;
        attn_align a;
        const char *names;
    } want[] = {
        {ATTN_SCORE_DOT, ATTN_ALIGN_GLOBAL, ""},
        {ATTN_SCORE_SCALED_DOT, ATTN_ALIGN_LOCAL_M, ""},
        {ATTN_SCORE_GENERAL, ATTN_ALIGN_GLOBAL, "W_a.weight[6,7]"},
        {ATTN_SCORE_ADDITIVE, ATTN_ALIGN_GLOBAL, "W_q.weight[5,6] W_h.weight[5,7] v.weight[1,5]"},
        {ATTN_SCORE_COSINE, ATTN_ALIGN_GLOBAL, "beta[1]"},
        {ATTN_SCORE_LOCATION, ATTN_ALIGN_GLOBAL, "W_a.weight[11,6]"},
        {ATTN_SCORE_GENERAL, ATTN_ALIGN_LOCAL_P, "W_a.weight[6,7] W_p.weight[5,6] v_p.weight[1,5]"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        attn_params *ps = NULL;
        attn_rng rng;
        attn_rng_init(&rng, 9);
        CHECK_OK(attn_params_new(&ps));
        attn_attention att;
        attn_attention_config cfg = make_cfg(want[i].s, want[i].a, 6, 7, 5, 11, 2);
        if (want[i].s == ATTN_SCORE_COSINE) cfg.beta = 0.0f; /* the default, 10 */
        CHECK_OK(attn_attention_init(&att, ps, "dec.attn.", &cfg, &rng));
        char got[256] = "";
        for (int k = 0; ps && k < attn_params_count(ps); k++) {
            attn_tensor *p = attn_params_at(ps, k);
            char sh[64];
            size_t l = strlen(got);
            snprintf(got + l, sizeof got - l, "%s%s%s", k ? " " : "", p->name + 9,
                     attn_shape_str(p, sh, sizeof sh));
            CHECK(strncmp(p->name, "dec.attn.", 9) == 0, "name %s lacks the prefix", p->name);
            if (p->ndim == 2) { /* uniform in +-1/sqrt(in), and not all zero */
                const float bound = 1.0f / sqrtf((float)p->shape[1]);
                int64_t out = 0, zero = 0;
                for (int64_t j = 0; j < attn_tensor_numel(p); j++) {
                    out += fabsf(attn_f32(p)[j]) > bound;
                    zero += attn_f32(p)[j] == 0.0f;
                }
                CHECK(out == 0 && zero < attn_tensor_numel(p), "%s: %lld values outside +-%g",
                      p->name, (long long)out, (double)bound);
            }
        }
        char cn[64];
        CHECK(strcmp(got, want[i].names) == 0, "%s: parameters '%s', expected '%s'",
              combo_name(want[i].s, want[i].a, cn, sizeof cn), got, want[i].names);
        if (want[i].s == ATTN_SCORE_COSINE)
            CHECK(att.beta && attn_f32(att.beta)[0] == 10.0f && att.beta->requires_grad &&
                      att.cfg.beta == 10.0f,
                  "cosine: default beta should be 10 and learned");
        attn_params_free(ps);
    }
    /* a fixed beta is stored with requires_grad 0; attn_size 0 selects Dq */
    attn_params *ps = NULL;
    CHECK_OK(attn_params_new(&ps));
    attn_attention att;
    attn_attention_config cfg = make_cfg(ATTN_SCORE_COSINE, ATTN_ALIGN_LOCAL_P, 4, 4, 0, 0, 3);
    cfg.beta = 2.5f;
    cfg.beta_fixed = 1;
    CHECK_OK(attn_attention_init(&att, ps, NULL, &cfg, NULL));
    CHECK(att.beta && attn_f32(att.beta)[0] == 2.5f && !att.beta->requires_grad,
          "fixed beta: value or requires_grad wrong");
    CHECK(att.w_p && att.w_p->shape[0] == 4 && att.cfg.attn_size == 4 &&
              attn_params_find(ps, "W_p.weight") && attn_f32(att.w_p)[0] == 0.0f,
          "attn_size 0 should select Dq = 4, no prefix, zero weights without rng");
    attn_params_free(ps);
    TEST_END();
}

/* ==== errors ========================================================================== */

static void expect_fail(attn_ctx *ctx, int failed, attn_status want, const char *needle,
                        const char *what) {
    CHECK(failed && attn_ctx_status(ctx) == want && strstr(attn_ctx_error(ctx), needle) &&
              strstr(attn_last_error(), needle),
          "%s: status %s, message '%s' (expected %s naming '%s')", what,
          attn_status_str(attn_ctx_status(ctx)), attn_ctx_error(ctx), attn_status_str(want),
          needle);
    attn_ctx_reset(ctx);
}

static void test_errors(void) {
    TEST_BEGIN("attention/errors");
    attn_params *ps = NULL;
    CHECK_OK(attn_params_new(&ps));
    attn_attention att;
    attn_attention_config cfg;
    /* configurations */
    cfg = make_cfg(ATTN_SCORE_DOT, ATTN_ALIGN_GLOBAL, 4, 4, 0, 0, 0);
    cfg.query_size = 5;
    CHECK(attn_attention_init(&att, ps, "a.", &cfg, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "attn_attention_init: the dot score needs query_size == "
                                        "memory_size"),
          "dot with Dq != Dh: %s", attn_last_error());
    cfg = make_cfg((attn_score)9, ATTN_ALIGN_GLOBAL, 4, 4, 0, 0, 0);
    CHECK(attn_attention_init(&att, ps, "a.", &cfg, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "score 9"),
          "score 9: %s", attn_last_error());
    cfg = make_cfg(ATTN_SCORE_GENERAL, (attn_align)3, 4, 4, 0, 0, 0);
    CHECK(attn_attention_init(&att, ps, "a.", &cfg, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "align 3"),
          "align 3: %s", attn_last_error());
    cfg = make_cfg(ATTN_SCORE_GENERAL, ATTN_ALIGN_LOCAL_P, 4, 4, 0, 0, 0);
    CHECK(attn_attention_init(&att, ps, "a.", &cfg, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "window D >= 1, got 0"),
          "window 0: %s", attn_last_error());
    cfg = make_cfg(ATTN_SCORE_LOCATION, ATTN_ALIGN_GLOBAL, 4, 4, 0, 0, 0);
    CHECK(attn_attention_init(&att, ps, "a.", &cfg, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "max_source_len >= 1"),
          "S_max 0: %s", attn_last_error());
    cfg = make_cfg(ATTN_SCORE_COSINE, ATTN_ALIGN_GLOBAL, 4, 4, 0, 0, 0);
    cfg.beta = NAN;
    CHECK(attn_attention_init(&att, ps, "a.", &cfg, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "beta"),
          "beta NaN: %s", attn_last_error());
    cfg = make_cfg(ATTN_SCORE_ADDITIVE, ATTN_ALIGN_GLOBAL, 4, 0, 0, 0, 0);
    CHECK(attn_attention_init(&att, ps, "a.", &cfg, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "memory_size 0"),
          "Dh 0: %s", attn_last_error());
    CHECK(attn_params_count(ps) == 0, "failed inits added %d parameters", attn_params_count(ps));
    cfg = make_cfg(ATTN_SCORE_GENERAL, ATTN_ALIGN_GLOBAL, 3, 4, 0, 0, 0);
    CHECK_OK(attn_attention_init(&att, ps, "a.", &cfg, NULL));
    attn_attention att2;
    CHECK(attn_attention_init(&att2, ps, "a.", &cfg, NULL) == ATTN_ERR_INVALID_ARG &&
              att2.w_a == NULL,
          "duplicate names: %s", attn_last_error());

    /* shapes and values at run time (att: general, Dq 3, Dh 4) */
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    if (!ctx) goto out;
    attn_attention_memory mem;
    const int64_t hs[3] = {2, 5, 4}, bad_hs[3] = {2, 5, 3}, q3s[3] = {2, 2, 3},
                  bad_qs[3] = {3, 2, 3};
    attn_tensor *h = attn_tensor_new(ctx, ATTN_F32, 3, bad_hs);
    expect_fail(ctx, attn_attention_memory_init(ctx, &att, h, NULL, &mem) != ATTN_OK,
                ATTN_ERR_SHAPE, "attn_attention_memory_init: h [2,5,3]", "h with Dh 3");
    h = attn_tensor_new(ctx, ATTN_F32, 3, hs);
    attn_tensor *l =
        attn_tensor_from(ctx, ATTN_I32, 1, (const int64_t[1]){2}, (const int32_t[2]){5, 6});
    expect_fail(ctx, attn_attention_memory_init(ctx, &att, h, l, &mem) != ATTN_OK,
                ATTN_ERR_INVALID_ARG, "lengths[1] = 6 is outside [0, S] = [0, 5]", "length 6");
    h = attn_tensor_new(ctx, ATTN_F32, 3, hs);
    l = attn_tensor_new(ctx, ATTN_I32, 1, (const int64_t[1]){3});
    expect_fail(ctx, attn_attention_memory_init(ctx, &att, h, l, &mem) != ATTN_OK, ATTN_ERR_SHAPE,
                "lengths [3], expected [B] = [2]", "lengths [3]");
    h = attn_tensor_new(ctx, ATTN_F32, 3, hs);
    l = attn_tensor_new(ctx, ATTN_F32, 1, (const int64_t[1]){2});
    expect_fail(ctx, attn_attention_memory_init(ctx, &att, h, l, &mem) != ATTN_OK, ATTN_ERR_DTYPE,
                "lengths", "f32 lengths");
    h = attn_tensor_new(ctx, ATTN_I32, 3, hs);
    expect_fail(ctx, attn_attention_memory_init(ctx, &att, h, NULL, &mem) != ATTN_OK,
                ATTN_ERR_DTYPE, "attn_attention_memory_init: h", "i32 h");
    expect_fail(ctx, attn_attention_memory_init(ctx, &att, NULL, NULL, &mem) != ATTN_OK,
                ATTN_ERR_INVALID_ARG, "attn_attention_memory_init", "NULL h");
    CHECK(mem.values == NULL && mem.keys == NULL, "memory not zeroed on error");

    h = attn_tensor_new(ctx, ATTN_F32, 3, hs);
    CHECK_OK(attn_attention_memory_init(ctx, &att, h, NULL, &mem));
    CHECK(mem.mask == NULL && mem.lengths && mem.lengths[1] == 5,
          "no lengths: no mask, lengths all S");
    attn_tensor *w = h; /* overwritten with NULL on error */
    attn_tensor *q = attn_tensor_new(ctx, ATTN_F32, 3, bad_qs);
    expect_fail(ctx, attn_attention_forward(ctx, &att, &mem, q, 0, &w, NULL) == NULL && w == NULL,
                ATTN_ERR_SHAPE, "attn_attention_forward: q [3,2,3]", "q batch 3");
    h = attn_tensor_new(ctx, ATTN_F32, 3, hs);
    CHECK_OK(attn_attention_memory_init(ctx, &att, h, NULL, &mem));
    q = attn_tensor_new(ctx, ATTN_F32, 3, q3s);
    expect_fail(ctx, attn_attention_forward(ctx, &att, &mem, q, -1, NULL, NULL) == NULL,
                ATTN_ERR_INVALID_ARG, "step -1", "step -1");
    h = attn_tensor_new(ctx, ATTN_F32, 3, hs);
    CHECK_OK(attn_attention_memory_init(ctx, &att, h, NULL, &mem));
    q = attn_tensor_new(ctx, ATTN_F32, 1, (const int64_t[1]){3});
    expect_fail(ctx, attn_attention_forward(ctx, &att, &mem, q, 0, NULL, NULL) == NULL,
                ATTN_ERR_SHAPE, "q [3]", "1-D q");
    q = attn_tensor_new(ctx, ATTN_F32, 3, q3s);
    expect_fail(ctx, attn_attention_forward(ctx, &att, NULL, q, 0, NULL, NULL) == NULL,
                ATTN_ERR_INVALID_ARG, "memory is NULL", "NULL memory");
    attn_attention_memory zero;
    memset(&zero, 0, sizeof zero);
    q = attn_tensor_new(ctx, ATTN_F32, 3, q3s);
    expect_fail(ctx, attn_attention_forward(ctx, &att, &zero, q, 0, NULL, NULL) == NULL,
                ATTN_ERR_INVALID_ARG, "was not made by attn_attention_memory_init", "zero memory");
    expect_fail(ctx, attn_attention_forward(ctx, &att, &zero, NULL, 0, NULL, NULL) == NULL,
                ATTN_ERR_INVALID_ARG, "attn_attention_forward: input 0 is NULL", "NULL q");
    attn_attention bad;
    memset(&bad, 0, sizeof bad);
    bad.cfg = cfg;
    q = attn_tensor_new(ctx, ATTN_F32, 3, q3s);
    expect_fail(ctx, attn_attention_forward(ctx, &bad, &zero, q, 0, NULL, NULL) == NULL,
                ATTN_ERR_INVALID_ARG, "parameters are missing", "uninitialised module");

    /* a memory of another module's kind (additive keys for a general module) */
    attn_attention add;
    attn_attention_config acfg = make_cfg(ATTN_SCORE_ADDITIVE, ATTN_ALIGN_GLOBAL, 3, 4, 6, 0, 0);
    CHECK_OK(attn_attention_init(&add, ps, "b.", &acfg, NULL));
    h = attn_tensor_new(ctx, ATTN_F32, 3, hs);
    CHECK_OK(attn_attention_memory_init(ctx, &add, h, NULL, &mem));
    q = attn_tensor_new(ctx, ATTN_F32, 3, q3s);
    expect_fail(ctx, attn_attention_forward(ctx, &att, &mem, q, 0, NULL, NULL) == NULL,
                ATTN_ERR_INVALID_ARG, "was not made by attn_attention_memory_init for this general",
                "additive memory, general module");

    /* location: S > S_max */
    attn_attention loc;
    attn_attention_config lcfg = make_cfg(ATTN_SCORE_LOCATION, ATTN_ALIGN_GLOBAL, 3, 4, 0, 4, 0);
    CHECK_OK(attn_attention_init(&loc, ps, "c.", &lcfg, NULL));
    h = attn_tensor_new(ctx, ATTN_F32, 3, hs);
    expect_fail(ctx, attn_attention_memory_init(ctx, &loc, h, NULL, &mem) != ATTN_OK,
                ATTN_ERR_SHAPE, "more than the location score's max_source_len 4", "S 5 > S_max 4");

    /* an earlier error is kept: the memory fails with it, the forward returns NULL */
    q = attn_tensor_new(ctx, ATTN_F32, 3, bad_qs);
    h = attn_tensor_new(ctx, ATTN_F32, 3, hs);
    CHECK(attn_matmul(ctx, q, q) == NULL, "matmul of [3,2,3] by itself should fail");
    attn_status st0 = attn_ctx_status(ctx);
    CHECK(st0 != ATTN_OK && attn_attention_memory_init(ctx, &att, h, NULL, &mem) == st0 &&
              strstr(attn_ctx_error(ctx), "matmul") &&
              attn_attention_forward(ctx, &att, &mem, q, 0, NULL, NULL) == NULL &&
              strstr(attn_ctx_error(ctx), "matmul"),
          "earlier error not kept: %s", attn_ctx_error(ctx));
    attn_ctx_reset(ctx);
out:
    attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

void suite_attention(void) {
    test_parity();
    test_finite_differences();
    test_masks();
    test_location_ignores_h();
    test_empty_sentence();
    test_steps_match_block();
    test_additive_kernel();
    test_params();
    test_errors();
}
