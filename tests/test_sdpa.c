/* test_sdpa.c: the scaled dot-product attention op and the basic
 * self-attention of include/attn/sdpa.h (suite "sdpa"). The PyTorch parity,
 * the generic finite differences, arena exhaustion and error paths of the
 * SDPA op run in the ops suite (tests/fixtures/sdpa.atfx, tests/op_cases.c);
 * this suite adds, on random inputs through the public API:
 *
 *   - central finite differences of sum(out * R) for q, k, v and bias under
 *     every mask: causal with T < S and T > S, a causal and a symmetric
 *     window, key_lengths with a 0 (fully masked rows), bias shapes
 *     [1,H,T,S] (with -inf), [B,1,1,S], [T,S], [H,T,S], GQA (H 4, Hkv 2) and
 *     MQA (Hkv 1), dropout (the mask is fixed by resetting the RNG stream);
 *   - rows without a visible key: output, weights and every gradient that
 *     flows through them exactly 0, nothing NaN;
 *   - dropout: replay from the same stream is bitwise equal, the counters
 *     consumed, another offset gives another mask, eval mode is no dropout,
 *     and the output equals (P o keep / (1 - p)) v with attn_rng_uniform;
 *   - the weights output equals a softmax recomputed in double, carries no
 *     gradient and is P before dropout;
 *   - GQA equals MHA with repeated k/v heads; a broadcast bias gradient is
 *     the full bias gradient summed over the broadcast dims;
 *   - fast vs reference kernels at ragged sizes (T, S in 1, 7, 65; D 16 and
 *     80; Dv != D), 1 vs 2 threads bitwise, repeatability with threaded
 *     products (one unit of work);
 *   - NaN: a NaN query row gives a NaN output row and leaves every other
 *     element bitwise unchanged; NaN in padded keys is never read;
 *   - properties: basic self-attention is permutation equivariant (and the
 *     check fails for the causal variant, which is not); under the causal
 *     mask the gradient of output row t with respect to every input after t
 *     is exactly 0.0f.
 *
 * Tolerances (|a - b| <= atol + rtol |ref|):
 *   FD_*     analytic (fast kernels) vs central differences with h = 1e-2 of
 *            the loss evaluated by the reference kernel (double sums, output
 *            rounded to float32). Truncation h^2/6 |f'''| dominates.
 *            Measured worst 5.6e-5 at |fd| up to 3.9 over every config;
 *            tolerance 3e-4 + 3e-3 |fd|. A top-left causal diagonal, a
 *            missing dropout factor in dP or a lost bias entry fail it
 *            (checked by mutating sdpa.c).
 *   the op table's SDPA row (1e-5 + 1e-4 |ref|) for fast vs reference;
 *            measured worst 1.1e-6 (out, |ref| up to 4.2) and 2.4e-6
 *            (gradients, |g| up to 24).
 *   WEIGHTS  the weights vs a double softmax: 1e-6 + 1e-5 |ref|, measured
 *            6e-8.
 *   PERM     permutation equivariance: 1e-6 + 1e-6 |ref| (only summation
 *            order differs), measured 2.4e-7; the causal variant differs by
 *            more than 0.1.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/internal.h"
#include "../src/ops/sdpa_internal.h" /* attn__sdpa_packed */
#include "test.h"

#define FD_STEP 1e-2f
#define FD_ATOL 3e-4
#define FD_RTOL 3e-3
#define FD_MAX_PROBES 160
#define WEIGHTS_ATOL 1e-6
#define WEIGHTS_RTOL 1e-5
#define PERM_ATOL 1e-6f
#define PERM_RTOL 1e-6f
#define ARENA ((size_t)64 << 20)

/* ---- configurations and inputs --------------------------------------------------- */

typedef struct cfg {
    const char *label;
    int64_t B, H, Hkv, T, S, D, Dv;
    int causal;
    int64_t window;
    float scale, dropout;
    int bias_nd; /* 0: no bias */
    int64_t bias_shape[4];
    int has_kl;
    int32_t kl[4];
} cfg;

/* q, k, v, bias as float arrays (storage order), the loss weights r. */
typedef struct data {
    float *x[4];
    int64_t n[4];
    int nd[4];
    int64_t shape[4][4];
    float *r;
    int64_t n_out;
} data;

static int64_t prod(int nd, const int64_t *s) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= s[i];
    return n;
}

static void data_free(data *d) {
    for (int i = 0; i < 4; i++) free(d->x[i]);
    free(d->r);
    memset(d, 0, sizeof *d);
}

static int data_init(data *d, const cfg *c, uint64_t seed) {
    memset(d, 0, sizeof *d);
    const int64_t sh[4][4] = {{c->B, c->H, c->T, c->D},
                              {c->B, c->Hkv, c->S, c->D},
                              {c->B, c->Hkv, c->S, c->Dv},
                              {c->bias_shape[0], c->bias_shape[1], c->bias_shape[2],
                               c->bias_shape[3]}};
    attn_rng rng;
    attn_rng_init(&rng, seed);
    for (int i = 0; i < 4; i++) {
        d->nd[i] = i < 3 ? 4 : c->bias_nd;
        if (i == 3 && !c->bias_nd) continue;
        memcpy(d->shape[i], sh[i], sizeof sh[i]);
        d->n[i] = prod(d->nd[i], sh[i]);
        d->x[i] = malloc(sizeof(float) * (size_t)d->n[i]);
        if (!d->x[i]) return -1;
        test_fill_normal(d->x[i], d->n[i], &rng);
    }
    if (c->bias_nd == 4 && c->bias_shape[0] == 1) d->x[3][5] = -INFINITY; /* a masked key */
    d->n_out = c->B * c->H * c->T * c->Dv;
    d->r = malloc(sizeof(float) * (size_t)d->n_out);
    if (!d->r) return -1;
    test_fill_normal(d->r, d->n_out, &rng);
    return 0;
}

#define RNG_SEED 0xC0FFEE1234ull
#define RNG_OFFSET 5u
static uint64_t g_offset = RNG_OFFSET; /* the stream offset run() sets */

/* Builds the inputs in a reset context (the RNG stream set to a fixed point,
 * so every run draws the same dropout mask) and calls attn_sdpa. */
static attn_tensor *run(attn_ctx *ctx, const cfg *c, const data *d, attn_tensor **leaf,
                        attn_tensor **w) {
    attn_ctx_reset(ctx);
    attn_ctx_set_rng(ctx, RNG_SEED, g_offset);
    for (int i = 0; i < 4; i++)
        leaf[i] = d->x[i] ? test_leaf(ctx, d->nd[i], d->shape[i], d->x[i]) : NULL;
    attn_sdpa_opts o = {0};
    o.scale = c->scale;
    o.causal = c->causal;
    o.window = c->window;
    o.dropout = c->dropout;
    o.bias = leaf[3];
    if (c->has_kl) o.key_lengths = attn_tensor_from(ctx, ATTN_I32, 1, &c->B, c->kl);
    return attn_sdpa(ctx, leaf[0], leaf[1], leaf[2], &o, w);
}

/* Output and gradients of sum(out * r) (g[i] NULL for an absent input). */
typedef struct result {
    float *out, *w, *g[4];
} result;

static void result_free(result *r) {
    free(r->out);
    free(r->w);
    for (int i = 0; i < 4; i++) free(r->g[i]);
    memset(r, 0, sizeof *r);
}

static float *copy_f(const float *src, int64_t n) {
    float *p = calloc((size_t)(n ? n : 1), sizeof(float));
    if (p && src) memcpy(p, src, sizeof(float) * (size_t)n);
    return p;
}

static int forward_backward(attn_ctx *ctx, const cfg *c, const data *d, int use_ref, result *r) {
    memset(r, 0, sizeof *r);
    attn_ctx_set_use_ref(ctx, use_ref);
    attn_ctx_set_grad_enabled(ctx, 1);
    attn_tensor *leaf[4], *w = NULL;
    attn_tensor *out = run(ctx, c, d, leaf, &w);
    attn_ctx_set_use_ref(ctx, 0);
    if (!out || !w) {
        CHECK(0, "%s: sdpa failed: %s", c->label, attn_ctx_error(ctx));
        return -1;
    }
    CHECK_OK(attn_backward_from(ctx, out, d->r));
    r->out = copy_f(attn_f32(out), d->n_out);
    r->w = copy_f(attn_f32(w), attn_tensor_numel(w));
    for (int i = 0; i < 4; i++)
        if (leaf[i]) r->g[i] = copy_f(leaf[i]->grad, d->n[i]);
    return r->out ? 0 : -1;
}

static const char *const in_names[4] = {"q", "k", "v", "bias"};

/* Worst |a - b| and largest |b| of each kind of comparison, printed with
 * ATTN_TEST_MEASURE=1 (the figures quoted above). */
enum { M_FD, M_OUT, M_GRAD, M_WEIGHTS, M_PERM, M_COUNT };
static const char *const m_names[M_COUNT] = {"finite differences", "fast vs ref output",
                                             "fast vs ref gradients", "weights vs double softmax",
                                             "permutation equivariance"};
static double g_err[M_COUNT], g_mag[M_COUNT];

static void measure(int kind, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) continue;
        g_err[kind] = fmax(g_err[kind], fabs((double)a[i] - b[i]));
        g_mag[kind] = fmax(g_mag[kind], fabs((double)b[i]));
    }
}

/* ---- finite differences ------------------------------------------------------------------ */

static double loss_ref(attn_ctx *ctx, const cfg *c, const data *d) {
    attn_ctx_set_use_ref(ctx, 1);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *leaf[4];
    attn_tensor *out = run(ctx, c, d, leaf, NULL);
    attn_ctx_set_grad_enabled(ctx, 1);
    attn_ctx_set_use_ref(ctx, 0);
    return out ? test_dot_d(out, d->r) : NAN;
}


static void check_fd(attn_ctx *ctx, const cfg *c) {
    data d;
    result an;
    if (data_init(&d, c, 0xFD00 + (uint64_t)c->T * 31 + (uint64_t)c->S) ||
        forward_backward(ctx, c, &d, 0, &an)) {
        data_free(&d);
        return;
    }
    for (int i = 0; i < 4; i++) {
        if (!d.x[i]) continue;
        uint64_t s = 0x5D9Aull + (uint64_t)i;
        const int64_t n = d.n[i];
        const int64_t probes = n < FD_MAX_PROBES ? n : FD_MAX_PROBES;
        int64_t worst = -1, bad = 0;
        double worst_ex = 0, worst_fd = 0;
        for (int64_t j = 0; j < probes; j++) {
            int64_t e = j;
            if (n > FD_MAX_PROBES) { /* a fixed pseudo-random sample */
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                e = (int64_t)((s >> 33) % (uint64_t)n);
            }
            const float x0 = d.x[i][e];
            if (!isfinite(x0)) continue;
            const float xp = x0 + FD_STEP, xm = x0 - FD_STEP;
            d.x[i][e] = xp;
            const double lp = loss_ref(ctx, c, &d);
            d.x[i][e] = xm;
            const double lm = loss_ref(ctx, c, &d);
            d.x[i][e] = x0;
            const double fd = (lp - lm) / ((double)xp - (double)xm);
            const double a = an.g[i][e], err = fabs(a - fd);
            double ex = err - (FD_ATOL + FD_RTOL * fabs(fd));
            if (!isfinite(fd) || !isfinite(a)) ex = INFINITY;
            g_err[M_FD] = fmax(g_err[M_FD], err);
            g_mag[M_FD] = fmax(g_mag[M_FD], fabs(fd));
            if (ex > 0 && (worst < 0 || ex > worst_ex)) worst = e, worst_ex = ex, worst_fd = fd;
            bad += ex > 0;
        }
        CHECK(worst < 0,
              "%s: gradient of %s element %lld: analytic %.9g, central difference %.9g (> %g + "
              "%g |fd|); %lld probes out of tolerance",
              c->label, in_names[i], (long long)worst, worst >= 0 ? (double)an.g[i][worst] : 0.0,
              worst_fd, FD_ATOL, FD_RTOL, (long long)bad);
    }
    result_free(&an);
    data_free(&d);
}

/* B, H, Hkv, T, S, D, Dv, causal, window, scale, dropout, bias nd + shape, kl */
static const cfg fd_cfgs[] = {
    {"causal T4 < S7 (bottom-right)", 2, 2, 2, 4, 7, 6, 5, 1, 0, 0, 0, 0, {0}, 0, {0}},
    {"causal T5 > S3 (two rows see no key)", 1, 2, 2, 5, 3, 4, 4, 1, 0, 0, 0, 0, {0}, 0, {0}},
    {"causal window 3, T7 S7", 2, 1, 1, 7, 7, 5, 6, 1, 3, 0, 0, 0, {0}, 0, {0}},
    {"symmetric window 2, T6 S8", 1, 2, 2, 6, 8, 5, 4, 0, 2, 0, 0, 0, {0}, 0, {0}},
    {"key_lengths [5, 0]", 2, 2, 2, 3, 6, 4, 5, 0, 0, 0, 0, 0, {0}, 1, {5, 0}},
    {"bias [1,H,T,S]", 2, 2, 2, 4, 6, 5, 5, 0, 0, 0, 0, 4, {1, 2, 4, 6}, 0, {0}},
    {"bias [B,1,1,S], key_lengths [6, 3]", 2, 2, 2, 4, 6, 5, 5, 0, 0, 0, 0, 4, {2, 1, 1, 6}, 1,
     {6, 3}},
    {"bias [T,S], causal", 2, 2, 2, 5, 5, 4, 4, 1, 0, 0, 0, 2, {5, 5}, 0, {0}},
    {"GQA H4 Hkv2, causal T5 S8, bias [H,T,S]", 2, 4, 2, 5, 8, 4, 6, 1, 0, 0, 0, 3, {4, 5, 8}, 0,
     {0}},
    {"MQA H4 Hkv1, key_lengths [6, 2]", 2, 4, 1, 3, 6, 5, 4, 0, 0, 0, 0, 0, {0}, 1, {6, 2}},
    {"dropout 0.3, GQA H4 Hkv2, causal", 2, 4, 2, 4, 6, 4, 4, 1, 0, 0, 0.3f, 0, {0}, 0, {0}},
    {"scale 0.7, Dv 9 != D 3", 1, 2, 2, 4, 5, 3, 9, 0, 0, 0.7f, 0, 0, {0}, 0, {0}},
};

static void test_finite_differences(attn_ctx *ctx) {
    for (size_t i = 0; i < sizeof fd_cfgs / sizeof fd_cfgs[0]; i++) {
        char name[160];
        snprintf(name, sizeof name, "sdpa/finite differences: %s", fd_cfgs[i].label);
        TEST_BEGIN(name);
        check_fd(ctx, &fd_cfgs[i]);
        TEST_END();
    }
}

/* ---- an independent double-precision model of sdpa.h -------------------------------------- */

static int visible(const cfg *c, int64_t b, int64_t t, int64_t s) {
    const int64_t d = t + c->S - c->T;
    if (c->has_kl && s >= c->kl[b]) return 0;
    if (c->causal && s > d) return 0;
    if (c->window > 0 && (c->causal ? s <= d - c->window : llabs(s - d) >= c->window)) return 0;
    return 1;
}

static double bias_at(const cfg *c, const data *d, int64_t b, int64_t h, int64_t t, int64_t s) {
    if (!d->x[3]) return 0.0;
    const int64_t idx[4] = {b, h, t, s};
    int64_t off = 0;
    for (int i = 0; i < c->bias_nd; i++) {
        const int64_t dim = c->bias_shape[i], j = idx[4 - c->bias_nd + i];
        off = off * dim + (dim == 1 ? 0 : j);
    }
    return d->x[3][off];
}

/* P [B,H,T,S] in double (rows with no visible key: zeros). */
static void model_probs(const cfg *c, const data *d, double *P) {
    const double scale = c->scale > 0 ? c->scale : 1.0 / sqrt((double)c->D);
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->H; h++)
            for (int64_t t = 0; t < c->T; t++) {
                double *row = P + ((b * c->H + h) * c->T + t) * c->S, mx = -INFINITY, sum = 0;
                const int64_t g = h / (c->H / c->Hkv);
                for (int64_t s = 0; s < c->S; s++) {
                    row[s] = -INFINITY;
                    if (!visible(c, b, t, s)) continue;
                    double acc = 0;
                    for (int64_t e = 0; e < c->D; e++)
                        acc += (double)d->x[0][((b * c->H + h) * c->T + t) * c->D + e] *
                               d->x[1][((b * c->Hkv + g) * c->S + s) * c->D + e];
                    row[s] = scale * acc + bias_at(c, d, b, h, t, s);
                    if (row[s] > mx) mx = row[s];
                }
                for (int64_t s = 0; s < c->S; s++)
                    sum += (row[s] = mx == -INFINITY ? 0.0 : exp(row[s] - mx));
                for (int64_t s = 0; s < c->S; s++) row[s] = sum > 0 ? row[s] / sum : 0.0;
            }
}

/* ---- fully masked rows ---------------------------------------------------------------------- */

static int all_zero(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (x[i] != 0.0f) return 0;
    return 1;
}

static void test_masked_rows(attn_ctx *ctx) {
    TEST_BEGIN("sdpa/rows with no visible key: zero output, weights and gradients, no NaN");
    {
        /* batch 1 has key length 0; with causal T 5 > S 3, rows t < 2 of batch 0 see nothing */
        const cfg c = {"masked rows", 2, 2, 2, 5, 3, 4, 4, 1, 0, 0, 0.2f, 0, {0}, 1, {3, 0}};
        data d;
        result r;
        if (!data_init(&d, &c, 77) && !forward_backward(ctx, &c, &d, 0, &r)) {
            for (int i = 0; i < 3; i++)
                for (int64_t j = 0; j < d.n[i]; j++)
                    CHECK(isfinite(r.g[i][j]), "gradient of %s element %lld is %g", in_names[i],
                          (long long)j, (double)r.g[i][j]);
            const int64_t per_b_out = c.H * c.T * c.Dv, per_b_w = c.H * c.T * c.S;
            CHECK(all_zero(r.out + per_b_out, per_b_out), "batch 1 (key length 0): output not 0");
            CHECK(all_zero(r.w + per_b_w, per_b_w), "batch 1 (key length 0): weights not 0");
            CHECK(all_zero(r.g[0] + c.H * c.T * c.D, c.H * c.T * c.D), "batch 1: dq not 0");
            CHECK(all_zero(r.g[1] + c.Hkv * c.S * c.D, c.Hkv * c.S * c.D), "batch 1: dk not 0");
            CHECK(all_zero(r.g[2] + c.Hkv * c.S * c.Dv, c.Hkv * c.S * c.Dv), "batch 1: dv not 0");
            for (int64_t h = 0; h < c.H; h++)
                for (int64_t t = 0; t < 2; t++) {
                    const int64_t row = h * c.T + t;
                    CHECK(all_zero(r.out + row * c.Dv, c.Dv) && all_zero(r.w + row * c.S, c.S) &&
                              all_zero(r.g[0] + row * c.D, c.D),
                          "batch 0 head %lld query %lld (no visible key): output, weights or dq "
                          "not 0", (long long)h, (long long)t);
                    CHECK(!all_zero(r.out + (row + 2) * c.Dv, c.Dv),
                          "batch 0 head %lld query %lld (sees keys) is 0", (long long)h,
                          (long long)t + 2);
                }
            result_free(&r);
        }
        data_free(&d);
    }
    TEST_END();
}

/* ---- dropout ------------------------------------------------------------------------------------ */

static void test_dropout(attn_ctx *ctx) {
    const cfg c = {"dropout", 2, 4, 2, 5, 7, 4, 3, 1, 0, 0, 0.4f, 3, {4, 5, 7}, 1, {7, 5}};
    data d;
    if (data_init(&d, &c, 99)) return;
    TEST_BEGIN("sdpa/dropout: replay, stream use, eval mode, the mask convention");
    {
        result a, b;
        if (!forward_backward(ctx, &c, &d, 0, &a)) {
            const uint64_t used = attn_ctx_rng_offset(ctx) - RNG_OFFSET;
            const uint64_t want = (uint64_t)(c.B * c.H * c.T * c.S + 3) / 4;
            CHECK(used == want, "dropout used %llu counters, expected ceil(B H T S / 4) = %llu",
                  (unsigned long long)used, (unsigned long long)want);
            if (!forward_backward(ctx, &c, &d, 0, &b)) {
                CHECK(!memcmp(a.out, b.out, sizeof(float) * (size_t)d.n_out),
                      "the same stream gave another output");
                for (int i = 0; i < 4; i++)
                    CHECK(!memcmp(a.g[i], b.g[i], sizeof(float) * (size_t)d.n[i]),
                          "the same stream gave another gradient of %s", in_names[i]);
                result_free(&b);
            }
            /* the mask: out = (P o keep / (1 - p)) v, keep from attn_rng_uniform */
            double *P = malloc(sizeof(double) * (size_t)(c.B * c.H * c.T * c.S));
            float *want_out = malloc(sizeof(float) * (size_t)d.n_out);
            int64_t dropped = 0, live = 0;
            if (P && want_out) {
                model_probs(&c, &d, P);
                for (int64_t b0 = 0; b0 < c.B; b0++)
                    for (int64_t h = 0; h < c.H; h++)
                        for (int64_t t = 0; t < c.T; t++)
                            for (int64_t e = 0; e < c.Dv; e++) {
                                double acc = 0;
                                const int64_t g = h / (c.H / c.Hkv);
                                for (int64_t s = 0; s < c.S; s++) {
                                    const int64_t i = ((b0 * c.H + h) * c.T + t) * c.S + s;
                                    const int keep =
                                        attn_rng_uniform(RNG_SEED, RNG_OFFSET, (uint64_t)i) >=
                                        c.dropout;
                                    if (e == 0 && P[i] > 0) live++, dropped += !keep;
                                    if (keep)
                                        acc += P[i] / (1.0 - c.dropout) *
                                               d.x[2][((b0 * c.Hkv + g) * c.S + s) * c.Dv + e];
                                }
                                want_out[((b0 * c.H + h) * c.T + t) * c.Dv + e] = (float)acc;
                            }
                test_allclose("dropout output vs (P o mask / (1 - p)) v", a.out, want_out,
                              d.n_out, 1e-5f, 1e-4f);
                CHECK(dropped > live / 5 && dropped < live * 3 / 5,
                      "%lld of %lld live weights dropped with p 0.4", (long long)dropped,
                      (long long)live);
            }
            free(P);
            free(want_out);
            /* another offset: another mask */
            attn_tensor *leaf[4];
            g_offset = RNG_OFFSET + 1000;
            attn_tensor *o2 = run(ctx, &c, &d, leaf, NULL);
            g_offset = RNG_OFFSET;
            CHECK(o2 && memcmp(attn_f32(o2), a.out, sizeof(float) * (size_t)d.n_out),
                  "another RNG offset gave the same output");
            result_free(&a);
        }
        /* eval mode: no dropout, no counters */
        cfg c0 = c;
        c0.dropout = 0.0f;
        attn_tensor *leaf[4];
        attn_ctx_set_grad_enabled(ctx, 0);
        attn_tensor *y0 = run(ctx, &c0, &d, leaf, NULL);
        float *ref0 = y0 ? copy_f(attn_f32(y0), d.n_out) : NULL;
        attn_ctx_set_training(ctx, 0);
        attn_tensor *ye = run(ctx, &c, &d, leaf, NULL);
        CHECK(ye && ref0 && !memcmp(attn_f32(ye), ref0, sizeof(float) * (size_t)d.n_out),
              "eval mode: the output differs from dropout 0");
        CHECK(attn_ctx_rng_offset(ctx) == RNG_OFFSET, "eval mode consumed RNG counters");
        attn_ctx_set_training(ctx, 1);
        attn_ctx_set_grad_enabled(ctx, 1);
        free(ref0);
    }
    TEST_END();
    data_free(&d);
}

/* ---- weights, GQA, bias broadcast ------------------------------------------------------------ */

static void test_weights(attn_ctx *ctx) {
    TEST_BEGIN("sdpa/weights: softmax recomputed in double, no gradient, before dropout");
    {
        const cfg c = {"weights", 2, 4, 2, 6, 9, 5, 4, 1, 4, 0, 0.5f, 3, {4, 6, 9}, 1, {9, 4}};
        data d;
        result r;
        if (!data_init(&d, &c, 5) && !forward_backward(ctx, &c, &d, 0, &r)) {
            const int64_t n = c.B * c.H * c.T * c.S;
            double *P = malloc(sizeof(double) * (size_t)n);
            float *Pf = malloc(sizeof(float) * (size_t)n);
            if (P && Pf) {
                model_probs(&c, &d, P);
                for (int64_t i = 0; i < n; i++) Pf[i] = (float)P[i];
                measure(M_WEIGHTS, r.w, Pf, n);
                test_allclose("weights vs double softmax", r.w, Pf, n, (float)WEIGHTS_ATOL,
                              (float)WEIGHTS_RTOL);
                for (int64_t i = 0; i < n; i++)
                    if (P[i] == 0.0) CHECK(r.w[i] == 0.0f, "masked weight %lld is %g", (long long)i,
                                           (double)r.w[i]);
            }
            free(P);
            free(Pf);
            result_free(&r);
            attn_tensor *leaf[4], *w = NULL;
            attn_tensor *y = run(ctx, &c, &d, leaf, &w);
            CHECK(y && w && !w->requires_grad && w->node < 0 && w->ndim == 4 && w->shape[3] == c.S,
                  "weights: expected a [B,H,T,S] tensor without gradient");
        }
        data_free(&d);
    }
    TEST_END();
}

static void test_gqa_and_bias(attn_ctx *ctx) {
    TEST_BEGIN("sdpa/GQA equals MHA with repeated k/v heads (values and summed gradients)");
    {
        const cfg cg = {"gqa", 2, 6, 2, 5, 7, 4, 3, 1, 0, 0, 0, 0, {0}, 0, {0}};
        cfg cm = cg;
        cm.Hkv = cg.H;
        data dg, dm;
        result rg, rm;
        if (!data_init(&dg, &cg, 11) && !data_init(&dm, &cm, 11)) {
            const int64_t G = cg.H / cg.Hkv;
            memcpy(dm.x[0], dg.x[0], sizeof(float) * (size_t)dg.n[0]);
            memcpy(dm.r, dg.r, sizeof(float) * (size_t)dg.n_out);
            for (int i = 1; i < 3; i++) {
                const int64_t row = cg.S * (i == 1 ? cg.D : cg.Dv);
                for (int64_t b = 0; b < cg.B; b++)
                    for (int64_t h = 0; h < cg.H; h++)
                        memcpy(dm.x[i] + (b * cg.H + h) * row, dg.x[i] + (b * cg.Hkv + h / G) * row,
                               sizeof(float) * (size_t)row);
            }
            if (!forward_backward(ctx, &cg, &dg, 0, &rg)) {
                if (!forward_backward(ctx, &cm, &dm, 0, &rm)) {
                    test_allclose("GQA output vs MHA", rg.out, rm.out, dg.n_out, 1e-6f, 1e-6f);
                    test_allclose("GQA dq vs MHA", rg.g[0], rm.g[0], dg.n[0], 1e-6f, 1e-6f);
                    for (int i = 1; i < 3; i++) {
                        const int64_t row = cg.S * (i == 1 ? cg.D : cg.Dv);
                        float *sum = calloc((size_t)dg.n[i], sizeof(float));
                        if (!sum) continue;
                        for (int64_t b = 0; b < cg.B; b++)
                            for (int64_t h = 0; h < cg.H; h++)
                                for (int64_t j = 0; j < row; j++)
                                    sum[(b * cg.Hkv + h / G) * row + j] +=
                                        rm.g[i][(b * cg.H + h) * row + j];
                        test_allclose(i == 1 ? "GQA dk vs summed MHA dk" : "GQA dv vs summed MHA dv",
                                      rg.g[i], sum, dg.n[i], 1e-5f, 1e-5f);
                        free(sum);
                    }
                    result_free(&rm);
                }
                result_free(&rg);
            }
        }
        data_free(&dg);
        data_free(&dm);
    }
    TEST_END();

    TEST_BEGIN("sdpa/broadcast bias gradient = full bias gradient summed over broadcast dims");
    {
        const int64_t shapes[3][4] = {{1, 3, 4, 6}, {2, 1, 1, 6}, {4, 6, 0, 0}};
        const int nds[3] = {4, 4, 2};
        cfg cf = {"full bias", 2, 3, 3, 4, 6, 5, 5, 1, 0, 0, 0, 4, {2, 3, 4, 6}, 0, {0}};
        data df;
        result rf;
        if (!data_init(&df, &cf, 21) && !forward_backward(ctx, &cf, &df, 0, &rf)) {
            for (int k = 0; k < 3; k++) {
                cfg cb = cf;
                cb.bias_nd = nds[k];
                memcpy(cb.bias_shape, shapes[k], sizeof cb.bias_shape);
                data db;
                result rb;
                if (data_init(&db, &cb, 21)) {
                    data_free(&db);
                    continue;
                }
                /* the same q, k, v, r; the full bias = the small one broadcast */
                for (int i = 0; i < 3; i++) memcpy(db.x[i], df.x[i], sizeof(float) * (size_t)df.n[i]);
                memcpy(db.r, df.r, sizeof(float) * (size_t)df.n_out);
                float *bfull = df.x[3];
                for (int64_t b = 0; b < 2; b++)
                    for (int64_t h = 0; h < 3; h++)
                        for (int64_t t = 0; t < 4; t++)
                            for (int64_t s = 0; s < 6; s++)
                                bfull[((b * 3 + h) * 4 + t) * 6 + s] = (float)bias_at(&cb, &db, b, h, t, s);
                result rf2;
                if (!forward_backward(ctx, &cf, &df, 0, &rf2) &&
                    !forward_backward(ctx, &cb, &db, 0, &rb)) {
                    double *sum = calloc((size_t)db.n[3], sizeof(double));
                    float *sumf = calloc((size_t)db.n[3], sizeof(float));
                    if (sum && sumf) {
                        for (int64_t b = 0; b < 2; b++)
                            for (int64_t h = 0; h < 3; h++)
                                for (int64_t t = 0; t < 4; t++)
                                    for (int64_t s = 0; s < 6; s++) {
                                        const int64_t idx[4] = {b, h, t, s};
                                        int64_t off = 0;
                                        for (int i = 0; i < cb.bias_nd; i++) {
                                            const int64_t dim = cb.bias_shape[i];
                                            off = off * dim + (dim == 1 ? 0 : idx[4 - cb.bias_nd + i]);
                                        }
                                        sum[off] += rf2.g[3][((b * 3 + h) * 4 + t) * 6 + s];
                                    }
                        for (int64_t i = 0; i < db.n[3]; i++) sumf[i] = (float)sum[i];
                        char what[96];
                        snprintf(what, sizeof what, "bias gradient of a %d-D broadcast bias (case %d)",
                                 cb.bias_nd, k);
                        test_allclose(what, rb.g[3], sumf, db.n[3], 1e-6f, 1e-5f);
                        test_allclose("output with the broadcast bias", rb.out, rf2.out, df.n_out,
                                      0.0f, 0.0f);
                    }
                    free(sum);
                    free(sumf);
                    result_free(&rb);
                    result_free(&rf2);
                }
                data_free(&db);
            }
            result_free(&rf);
        }
        data_free(&df);
    }
    TEST_END();
}

/* ---- fast vs reference, threads ----------------------------------------------------------------- */

static void compare_results(const char *tag, const cfg *c, const data *d, const result *a,
                            const result *b, float atol, float rtol) {
    char what[192];
    snprintf(what, sizeof what, "%s: output", tag);
    test_allclose(what, a->out, b->out, d->n_out, atol, rtol);
    if (atol > 0) measure(M_OUT, a->out, b->out, d->n_out);
    for (int i = 0; i < 4; i++) {
        if (!a->g[i]) continue;
        if (atol > 0) measure(M_GRAD, a->g[i], b->g[i], d->n[i]);
        snprintf(what, sizeof what, "%s: gradient of %s", tag, in_names[i]);
        test_allclose(what, a->g[i], b->g[i], d->n[i], atol, rtol);
    }
    (void)c;
}

static void test_fast_vs_ref(attn_ctx *ctx) {
    TEST_BEGIN("sdpa/fast vs reference at ragged sizes (T, S in 1, 7, 65; D 16, 80; Dv != D)");
    const attn__op_info *info = &attn__ops[ATTN_OP_SDPA];
    const int64_t sizes[3] = {1, 7, 65}, dims[2] = {16, 80};
    int n = 0;
    for (int it = 0; it < 3; it++)
        for (int is = 0; is < 3; is++)
            for (int id = 0; id < 2; id++, n++) {
                cfg c = {"ragged", 2, 4, 2, sizes[it], sizes[is], dims[id], dims[id] + 8,
                         n % 2, 0, 0, 0, 0, {0}, 0, {0}};
                c.window = n % 3 == 2 ? 5 : 0;
                if (n % 4 == 1) c.bias_nd = 2, c.bias_shape[0] = c.T, c.bias_shape[1] = c.S;
                if (n % 5 == 3) c.has_kl = 1, c.kl[0] = (int32_t)c.S, c.kl[1] = (int32_t)(c.S / 2);
                if (n % 6 == 4) c.dropout = 0.2f;
                char tag[160];
                snprintf(tag, sizeof tag, "T %lld S %lld D %lld Dv %lld%s%s%s%s%s", (long long)c.T,
                         (long long)c.S, (long long)c.D, (long long)c.Dv, c.causal ? " causal" : "",
                         c.window ? " window 5" : "", c.bias_nd ? " bias [T,S]" : "",
                         c.has_kl ? " key_lengths" : "", c.dropout > 0 ? " dropout" : "");
                data d;
                result rf, rr;
                if (!data_init(&d, &c, 1000 + (uint64_t)n) && !forward_backward(ctx, &c, &d, 0, &rf)) {
                    if (!forward_backward(ctx, &c, &d, 1, &rr)) {
                        compare_results(tag, &c, &d, &rf, &rr, info->atol, info->rtol);
                        result_free(&rr);
                    }
                    result_free(&rf);
                }
                data_free(&d);
            }
    TEST_END();
}

static void test_threads(void) {
    TEST_BEGIN("sdpa/1 vs 2 threads bitwise (units in parallel), repeatable with threaded products");
    attn_ctx *ctx = test_ctx_new(ARENA, 1, 0);
    if (ctx) {
        const cfg c = {"threads", 2, 4, 2, 65, 65, 80, 48, 1, 0, 0, 0.1f, 3, {4, 65, 65}, 1, {60, 65}};
        data d;
        result r1, r2;
        if (!data_init(&d, &c, 4242) && !forward_backward(ctx, &c, &d, 0, &r1)) {
            attn_ctx_set_threads(ctx, 2);
            if (!forward_backward(ctx, &c, &d, 0, &r2)) {
                compare_results("1 vs 2 threads", &c, &d, &r1, &r2, 0.0f, 0.0f);
                result_free(&r2);
            }
            result_free(&r1);
        }
        data_free(&d);
        /* one unit of work (B 1, Hkv 1): the products are threaded; same bits twice */
        const cfg c1 = {"one unit", 1, 2, 1, 65, 65, 80, 48, 1, 0, 0, 0, 0, {0}, 0, {0}};
        if (!data_init(&d, &c1, 4243) && !forward_backward(ctx, &c1, &d, 0, &r1)) {
            if (!forward_backward(ctx, &c1, &d, 0, &r2)) {
                compare_results("2 threads, twice", &c1, &d, &r1, &r2, 0.0f, 0.0f);
                result_free(&r2);
            }
            result_free(&r1);
        }
        data_free(&d);
        attn_ctx_free(ctx);
    }
    TEST_END();
}

/* ---- NaN --------------------------------------------------------------------------------------- */

static void test_nan(attn_ctx *ctx) {
    TEST_BEGIN("sdpa/NaN: a NaN query row is a NaN output row; padded keys are never read");
    {
        const cfg c = {"nan", 2, 2, 2, 4, 6, 5, 3, 0, 0, 0, 0, 0, {0}, 1, {6, 4}};
        data d;
        if (!data_init(&d, &c, 31)) {
            attn_tensor *leaf[4], *w = NULL;
            attn_ctx_set_grad_enabled(ctx, 0);
            for (int ref = 0; ref < 2; ref++) {
                attn_ctx_set_use_ref(ctx, ref);
                attn_tensor *y = run(ctx, &c, &d, leaf, NULL);
                float *clean = y ? copy_f(attn_f32(y), d.n_out) : NULL;
                /* q[1, 0, 2, 3] = NaN: row (1, 0, 2) only */
                const int64_t qi = ((1 * c.H + 0) * c.T + 2) * c.D + 3, row = (1 * c.H + 0) * c.T + 2;
                const float q0 = d.x[0][qi];
                d.x[0][qi] = NAN;
                y = run(ctx, &c, &d, leaf, &w);
                d.x[0][qi] = q0;
                for (int64_t i = 0; y && clean && i < d.n_out; i++) {
                    const float got = attn_f32(y)[i];
                    if (i / c.Dv == row)
                        CHECK(isnan(got), "[%s] output %lld of the NaN row is %g",
                              ref ? "ref" : "fast", (long long)i, (double)got);
                    else
                        CHECK(!memcmp(&got, &clean[i], sizeof got),
                              "[%s] output %lld changed by a NaN in another row (%g vs %g)",
                              ref ? "ref" : "fast", (long long)i, (double)got, (double)clean[i]);
                }
                CHECK(w && isnan(attn_f32(w)[row * c.S]), "[%s] the NaN row's weights are not NaN",
                      ref ? "ref" : "fast");
                /* v (and k) of batch 1 beyond key length 4: NaN, never read */
                for (int64_t s = 4; s < 6; s++) {
                    d.x[2][((1 * c.Hkv + 1) * c.S + s) * c.Dv] = NAN;
                    d.x[1][((1 * c.Hkv + 0) * c.S + s) * c.D + 1] = INFINITY;
                }
                y = run(ctx, &c, &d, leaf, NULL);
                CHECK(y && clean && !memcmp(attn_f32(y), clean, sizeof(float) * (size_t)d.n_out),
                      "[%s] NaN/inf in padded keys changed the output", ref ? "ref" : "fast");
                data_free(&d);
                data_init(&d, &c, 31);
                free(clean);
            }
            /* NaN in a visible v: every row of that kv head with a visible key is
             * NaN (0 * NaN), a row without one stays exactly 0 (causal T 5 > S 3:
             * queries 0 and 1 see nothing, query 2 sees key 0 only) */
            const cfg cd = {"nan v", 1, 2, 1, 5, 3, 4, 3, 1, 0, 0, 0, 0, {0}, 0, {0}};
            data dd;
            if (!data_init(&dd, &cd, 32)) {
                dd.x[2][1 * cd.Dv + 0] = NAN; /* v[0, 0, 1, 0] */
                for (int ref = 0; ref < 2; ref++) {
                    attn_ctx_set_use_ref(ctx, ref);
                    attn_tensor *y = run(ctx, &cd, &dd, leaf, NULL);
                    for (int64_t r = 0; y && r < cd.H * cd.T; r++) {
                        const float *o = attn_f32(y) + r * cd.Dv;
                        if (r % cd.T < 2)
                            CHECK(all_zero(o, cd.Dv), "[%s] row %lld without a visible key is not "
                                  "0 with NaN in v", ref ? "ref" : "fast", (long long)r);
                        else
                            CHECK(isnan(o[0]) && isfinite(o[1]), "[%s] row %lld: NaN in v[.,1,0] "
                                  "gives %g, %g", ref ? "ref" : "fast", (long long)r,
                                  (double)o[0], (double)o[1]);
                    }
                }
            }
            data_free(&dd);
            attn_ctx_set_use_ref(ctx, 0);
            attn_ctx_set_grad_enabled(ctx, 1);
            /* gradients stay finite with garbage in the padding */
            for (int64_t s = 4; s < 6; s++) d.x[2][((1 * c.Hkv + 1) * c.S + s) * c.Dv] = NAN;
            result r;
            if (!forward_backward(ctx, &c, &d, 0, &r)) {
                for (int i = 0; i < 2; i++)
                    for (int64_t j = 0; j < d.n[i]; j++)
                        CHECK(isfinite(r.g[i][j]), "gradient of %s element %lld is %g with NaN "
                              "in padded v", in_names[i], (long long)j, (double)r.g[i][j]);
                result_free(&r);
            }
        }
        data_free(&d);
    }
    TEST_END();
}

/* ---- properties ------------------------------------------------------------------------------- */

static void test_permutation(attn_ctx *ctx) {
    TEST_BEGIN("sdpa/basic self-attention is permutation equivariant (the causal one is not)");
    {
        enum { B = 2, T = 7, E = 5 };
        const int perm[T] = {3, 0, 6, 2, 5, 1, 4};
        float x[B * T * E], xp[B * T * E], y[B * T * E], want[B * T * E];
        attn_rng rng;
        attn_rng_init(&rng, 8);
        test_fill_normal(x, B * T * E, &rng);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < T; i++)
                memcpy(xp + (b * T + i) * E, x + (b * T + perm[i]) * E, sizeof(float) * E);
        const int64_t sh[3] = {B, T, E};
        for (int causal = 0; causal < 2; causal++) {
            attn_ctx_reset(ctx);
            attn_tensor *y1 = attn_basic_self_attention(ctx, attn_tensor_from(ctx, ATTN_F32, 3, sh, x),
                                                        causal);
            attn_tensor *y2 = attn_basic_self_attention(ctx, attn_tensor_from(ctx, ATTN_F32, 3, sh, xp),
                                                        causal);
            CHECK(y1 && y2 && y1->ndim == 3 && y1->shape[1] == T, "basic_self_attention: %s",
                  attn_ctx_error(ctx));
            if (!y1 || !y2) continue;
            memcpy(y, attn_f32(y2), sizeof y);
            for (int b = 0; b < B; b++)
                for (int i = 0; i < T; i++)
                    memcpy(want + (b * T + i) * E, attn_f32(y1) + (b * T + perm[i]) * E,
                           sizeof(float) * E);
            if (!causal) {
                measure(M_PERM, y, want, B * T * E);
                test_allclose("y(permuted x) vs permuted y(x)", y, want, B * T * E, PERM_ATOL,
                              PERM_RTOL);
            } else {
                double mx = 0;
                for (int i = 0; i < B * T * E; i++) mx = fmax(mx, fabs((double)y[i] - want[i]));
                CHECK(mx > 0.1, "causal self-attention looks permutation equivariant (max "
                      "difference %g): the check cannot fail", mx);
            }
            /* the definition: y_i = sum_j softmax_j(x_i . x_j) x_j */
            if (!causal) {
                float direct[B * T * E];
                for (int b = 0; b < B; b++)
                    for (int i = 0; i < T; i++) {
                        double wgt[T], mxl = -INFINITY, sum = 0;
                        for (int j = 0; j < T; j++) {
                            double dot = 0;
                            for (int e = 0; e < E; e++)
                                dot += (double)x[(b * T + i) * E + e] * x[(b * T + j) * E + e];
                            wgt[j] = dot;
                            mxl = fmax(mxl, dot);
                        }
                        for (int j = 0; j < T; j++) sum += (wgt[j] = exp(wgt[j] - mxl));
                        for (int e = 0; e < E; e++) {
                            double acc = 0;
                            for (int j = 0; j < T; j++) acc += wgt[j] / sum * x[(b * T + j) * E + e];
                            direct[(b * T + i) * E + e] = (float)acc;
                        }
                    }
                test_allclose("basic self-attention vs its definition (scale 1)", attn_f32(y1),
                              direct, B * T * E, 1e-5f, 1e-4f);
            }
        }
    }
    TEST_END();
}

static void test_causal_zero_grad(attn_ctx *ctx) {
    TEST_BEGIN("sdpa/causal: d out[t] / d input[s > t] is exactly 0");
    {
        /* basic self-attention, q = k = v = x */
        enum { B = 2, T = 6, E = 4 };
        float x[B * T * E], g[B * T * E];
        attn_rng rng;
        attn_rng_init(&rng, 12);
        test_fill_normal(x, B * T * E, &rng);
        const int64_t sh[3] = {B, T, E};
        for (int t = 0; t < T; t++) {
            attn_ctx_reset(ctx);
            attn_tensor *xt = test_leaf(ctx, 3, sh, x);
            attn_tensor *y = attn_basic_self_attention(ctx, xt, 1);
            memset(g, 0, sizeof g);
            for (int b = 0; b < B; b++)
                for (int e = 0; e < E; e++) g[(b * T + t) * E + e] = 1.0f + 0.25f * (float)e;
            if (!y || attn_backward_from(ctx, y, g) != ATTN_OK || !xt->grad) {
                CHECK(0, "basic self-attention backward: %s", attn_ctx_error(ctx));
                continue;
            }
            for (int b = 0; b < B; b++) {
                int nonzero = 0;
                for (int s = 0; s < T; s++)
                    for (int e = 0; e < E; e++) {
                        const float gv = xt->grad[(b * T + s) * E + e];
                        if (s > t)
                            CHECK(gv == 0.0f, "basic: d out[%d] / d x[%d, %d, %d] = %g, not 0", t,
                                  b, s, e, (double)gv);
                        else
                            nonzero |= gv != 0.0f;
                    }
                CHECK(nonzero, "basic: d out[%d] / d x[%d, <= %d] is all 0", t, b, t);
            }
        }
        /* attn_sdpa, GQA, T 4 < S 7 (KV cache), with dropout and a bias:
         * query t sits at key position t + 3 */
        const cfg c = {"causal", 2, 4, 2, 4, 7, 5, 3, 1, 0, 0, 0.25f, 3, {4, 4, 7}, 0, {0}};
        data d;
        if (!data_init(&d, &c, 13)) {
            for (int64_t t = 0; t < c.T; t++) {
                for (int64_t i = 0; i < d.n_out; i++)
                    d.r[i] = (i / c.Dv) % c.T == t ? 1.0f + (float)(i % 3) : 0.0f;
                result r;
                if (forward_backward(ctx, &c, &d, 0, &r)) continue;
                for (int64_t i = 0; i < d.n[0]; i++)
                    if ((i / c.D) % c.T != t)
                        CHECK(r.g[0][i] == 0.0f, "dq of query %lld for out[%lld]: %g",
                              (long long)((i / c.D) % c.T), (long long)t, (double)r.g[0][i]);
                for (int i = 1; i < 3; i++) {
                    const int64_t dd = i == 1 ? c.D : c.Dv;
                    int nonzero = 0;
                    for (int64_t j = 0; j < d.n[i]; j++) {
                        const int64_t s = (j / dd) % c.S;
                        if (s > t + c.S - c.T)
                            CHECK(r.g[i][j] == 0.0f, "d%s of key %lld for out[%lld]: %g, not 0",
                                  in_names[i], (long long)s, (long long)t, (double)r.g[i][j]);
                        else
                            nonzero |= r.g[i][j] != 0.0f;
                    }
                    CHECK(nonzero, "d%s for out[%lld] is all 0", in_names[i], (long long)t);
                }
                for (int64_t j = 0; j < d.n[3]; j++) {
                    const int64_t tt = (j / c.S) % c.T, s = j % c.S;
                    if (tt != t || s > t + c.S - c.T)
                        CHECK(r.g[3][j] == 0.0f, "dbias[%lld] for out[%lld]: %g", (long long)j,
                              (long long)t, (double)r.g[3][j]);
                }
                result_free(&r);
            }
        }
        data_free(&d);
    }
    TEST_END();
}

/* ---- the packed layout (attn__sdpa_packed, attn__flash_sdpa_packed) ----------------------------- */

/* One run from qkv [B, T, (H + 2 Hkv) D] of the reference op or (flash) the
 * fused one: packed (attn__sdpa_packed / attn__flash_sdpa_packed) or by the
 * public op on split heads, merged back to [B, T, H D]. Fills out, the
 * weights and the gradient of sum(out * r) with respect to qkv. */
static int packed_run(attn_ctx *ctx, int flash, int packed, int use_ref, int64_t B, int64_t T,
                      int64_t H,
                      int64_t Hkv, int64_t D, const float *x, const float *r,
                      const attn_sdpa_opts *opts, const int32_t *klv, const float *bv,
                      float *out, float *w, float *g) {
    attn_ctx_reset(ctx);
    attn_ctx_set_use_ref(ctx, use_ref);
    attn_ctx_set_rng(ctx, RNG_SEED, RNG_OFFSET);
    const int64_t W = (H + 2 * Hkv) * D, sh[3] = {B, T, W}, bsh[2] = {T, T};
    attn_sdpa_opts os = *opts, *o = &os;
    if (klv) os.key_lengths = attn_tensor_from(ctx, ATTN_I32, 1, &B, klv);
    if (bv) os.bias = test_leaf(ctx, 2, bsh, bv); /* a learned bias: gets a gradient too */
    attn_tensor *qkv = test_leaf(ctx, 3, sh, x), *y, *p = NULL;
    if (packed) {
        y = flash ? attn__flash_sdpa_packed(ctx, qkv, H, Hkv, o, &p)
                  : attn__sdpa_packed(ctx, qkv, H, Hkv, o, &p);
    } else {
        static const int perm[4] = {0, 2, 1, 3};
        const int64_t s4[4] = {B, T, H + 2 * Hkv, D}, s3[3] = {B, T, H * D};
        attn_tensor *heads = attn_permute(ctx, attn_reshape(ctx, qkv, 4, s4), perm);
        attn_tensor *q = attn_slice(ctx, heads, 1, 0, H), *k = attn_slice(ctx, heads, 1, H, Hkv);
        attn_tensor *v = attn_slice(ctx, heads, 1, H + Hkv, Hkv);
        y = flash ? attn_flash_sdpa(ctx, q, k, v, o, &p) : attn_sdpa(ctx, q, k, v, o, &p);
        y = y ? attn_reshape(ctx, attn_contiguous(ctx, attn_permute(ctx, y, perm)), 3, s3) : NULL;
    }
    attn_tensor *loss = test_dot_loss(ctx, y, r);
    attn_ctx_set_use_ref(ctx, 0);
    CHECK(loss && p, "%s run: %s", packed ? "packed" : "split", attn_ctx_error(ctx));
    if (!loss || !p) return -1;
    CHECK(y->ndim == 3 && y->shape[0] == B && y->shape[1] == T && y->shape[2] == H * D,
          "output %s, expected [%lld,%lld,%lld]", attn__shp(y), (long long)B, (long long)T,
          (long long)(H * D));
    CHECK_OK(attn_backward(ctx, loss));
    if (!qkv->grad) return -1;
    memcpy(out, attn_f32(y), sizeof(float) * (size_t)(B * T * H * D));
    memcpy(w, attn_f32(p), sizeof(float) * (size_t)(B * H * T * T));
    memcpy(g, qkv->grad, sizeof(float) * (size_t)(B * T * W));
    return 0;
}

/* The fused op under ATTN_PRECISION_BF16 (bf16 products where the CPU has
 * AVX-512 BF16): packed (f32 qkv read by strides, rounded into contiguous
 * bf16 copies) and split heads run the same kernels on the same bf16 values,
 * so output, weights and the gradient of qkv are bitwise equal; and they
 * differ from the f32 run where the bf16 kernels exist (the rounding is
 * there), within a loose 5% of the largest f32 gradient. */
static void test_packed_bf16(void) {
    TEST_BEGIN("sdpa/fused op's packed layout under bf16 precision = split heads, bitwise");
    attn_ctx *ctx = test_ctx_new(ARENA, 1, 64);
    for (int n = 0; ctx && n < 3; n++) {
        const int64_t B = 2, H = 4, Hkv = n == 0 ? 4 : (n == 1 ? 2 : 1), T = 70, D = n == 2 ? 16 : 64;
        const int64_t W = (H + 2 * Hkv) * D, nx = B * T * W, no = B * T * H * D, nw = B * H * T * T;
        attn_sdpa_opts o = {0};
        o.causal = n != 1;
        float *x = malloc(sizeof(float) * (size_t)nx), *r = malloc(sizeof(float) * (size_t)no);
        float *buf = malloc(sizeof(float) * (size_t)(3 * (no + nw + nx)));
        CHECK(x && r && buf, "allocation");
        if (x && r && buf) {
            attn_rng rng;
            attn_rng_init(&rng, 919 + (uint64_t)n);
            test_fill_normal(x, nx, &rng);
            test_fill_normal(r, no, &rng);
            float *res[3][3];
            int ok = 1;
            for (int k = 0; k < 3 && ok; k++) { /* 0 split bf16, 1 packed bf16, 2 packed f32 */
                res[k][0] = buf + k * (no + nw + nx);
                res[k][1] = res[k][0] + no;
                res[k][2] = res[k][1] + nw;
                attn_ctx_set_precision(ctx, k < 2 ? ATTN_PRECISION_BF16 : ATTN_PRECISION_F32);
                ok = !packed_run(ctx, 1, k > 0, 0, B, T, H, Hkv, D, x, r, &o, NULL, NULL,
                                 res[k][0], res[k][1], res[k][2]);
            }
            attn_ctx_set_precision(ctx, ATTN_PRECISION_F32);
            if (ok) {
                static const char *const what[3] = {"out", "weights", "gradient of qkv"};
                const int64_t cnt[3] = {no, nw, nx};
                char m[200];
                for (int j = 0; j < 3; j++) {
                    snprintf(m, sizeof m, "Hkv %lld D %lld: packed vs split heads under bf16, %s",
                             (long long)Hkv, (long long)D, what[j]);
                    test_allclose(m, res[1][j], res[0][j], cnt[j], 0.0f, 0.0f);
                }
                double diff = 0.0, big = 0.0;
                for (int64_t i = 0; i < nx; i++) {
                    diff = fmax(diff, fabs((double)res[1][2][i] - res[2][2][i]));
                    big = fmax(big, fabs((double)res[2][2][i]));
                }
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ATTN_NO_CLONES)
                /* where the bf16 kernels exist (flash_sdpa_internal.h: not in a
                 * build without clones, such as CI's AVX2 build) */
                const int bf16_cpu = __builtin_cpu_supports("avx512bf16") &&
                                     __builtin_cpu_supports("avx512bw") &&
                                     !(attn_ctx_kernel_flags(ctx) & ATTN_KERNELS_PORTABLE);
#else
                const int bf16_cpu = 0;
#endif
                CHECK(diff <= 0.05 * big && (!bf16_cpu || diff > 0.0),
                      "Hkv %lld: bf16 vs f32 gradient: largest difference %g of %g", (long long)Hkv,
                      diff, big);
            }
        }
        free(x);
        free(r);
        free(buf);
    }
    attn_ctx_free(ctx);
    TEST_END();
}

static void test_packed(int flash) {
    TEST_BEGIN(flash ? "sdpa/fused op's packed layout (in place from qkv) = split heads: values, "
                       "weights, gradients; fast vs reference; 1 vs 2 threads bitwise"
                     : "sdpa/packed layout (in place from qkv) = split heads: values, weights, "
                       "gradients; fast vs reference; 1 vs 2 threads bitwise");
    attn_ctx *ctx = test_ctx_new(ARENA, 1, 64);
    const attn__op_info *info = &attn__ops[flash ? ATTN_OP_FLASH_SDPA : ATTN_OP_SDPA];
    for (int n = 0; ctx && n < 8; n++) {
        const int64_t B = 2, H = 4, Hkv = n % 3 == 0 ? 4 : (n % 3 == 1 ? 2 : 1);
        const int64_t T = n < 4 ? 7 : 33, D = n % 2 ? 16 : 8, W = (H + 2 * Hkv) * D;
        attn_sdpa_opts o = {0};
        o.causal = n % 4 != 1;
        o.dropout = n == 5 ? 0.25f : 0.0f;
        const int32_t klv[2] = {(int32_t)T, (int32_t)(T - 3)};
        float *bv = malloc(sizeof(float) * (size_t)(T * T));
        const int64_t nx = B * T * W, no = B * T * H * D, nw = B * H * T * T;
        float *x = malloc(sizeof(float) * (size_t)nx), *r = malloc(sizeof(float) * (size_t)no);
        float *buf = malloc(sizeof(float) * (size_t)(4 * (no + nw + nx)));
        CHECK(bv && x && r && buf, "allocation");
        if (bv && x && r && buf) {
            attn_rng rng;
            attn_rng_init(&rng, 777 + (uint64_t)n);
            test_fill_normal(x, nx, &rng);
            test_fill_normal(r, no, &rng);
            test_fill_normal(bv, T * T, &rng);
            float *res[4][3];
            for (int k = 0; k < 4; k++) {
                res[k][0] = buf + k * (no + nw + nx);
                res[k][1] = res[k][0] + no;
                res[k][2] = res[k][1] + nw;
            }
            char tag[128];
            snprintf(tag, sizeof tag, "H %lld Hkv %lld T %lld D %lld%s%s%s%s", (long long)H,
                     (long long)Hkv, (long long)T, (long long)D, o.causal ? " causal" : "",
                     n == 2 || n == 6 ? " key_lengths" : "", n == 3 || n == 7 ? " bias" : "",
                     o.dropout > 0 ? " dropout" : "");
            /* runs: 0 split heads, 1 packed, 2 packed reference kernel, 3 packed 2 threads */
            int ok = 1;
            for (int k = 0; k < 4 && ok; k++) {
                attn_ctx_set_threads(ctx, k == 3 ? 2 : 1);
                ok = !packed_run(ctx, flash, k > 0, k == 2, B, T, H, Hkv, D, x, r, &o,
                                 n == 2 || n == 6 ? klv : NULL, n == 3 || n == 7 ? bv : NULL,
                                 res[k][0], res[k][1], res[k][2]);
            }
            attn_ctx_set_threads(ctx, 1);
            if (ok) {
                static const char *const what[3] = {"out", "weights", "gradient of qkv"};
                const int64_t cnt[3] = {no, nw, nx};
                char m[200];
                for (int j = 0; j < 3; j++) {
                    snprintf(m, sizeof m, "%s: packed vs split heads, %s", tag, what[j]);
                    test_allclose(m, res[1][j], res[0][j], cnt[j], 1e-6f, 1e-5f);
                    snprintf(m, sizeof m, "%s: packed fast vs reference, %s", tag, what[j]);
                    test_allclose(m, res[1][j], res[2][j], cnt[j], info->atol, info->rtol);
                    snprintf(m, sizeof m, "%s: packed 1 vs 2 threads, %s", tag, what[j]);
                    test_allclose(m, res[3][j], res[1][j], cnt[j], 0.0f, 0.0f);
                }
            }
        }
        free(bv);
        free(x);
        free(r);
        free(buf);
    }
    if (ctx) { /* errors */
        attn_ctx_reset(ctx);
        const int64_t sh[3] = {2, 3, 20};
        attn_tensor *qkv = attn_tensor_new(ctx, ATTN_F32, 3, sh);
        CHECK(!(flash ? attn__flash_sdpa_packed : attn__sdpa_packed)(ctx, qkv, 4, 2, NULL, NULL) &&
                  attn_ctx_status(ctx) == ATTN_ERR_SHAPE &&
                  strstr(attn_ctx_error(ctx), "qkv [2,3,20] with H 4, Hkv 2"),
              "a width that is not a multiple of H + 2 Hkv: %s", attn_ctx_error(ctx));
        attn_ctx_reset(ctx);
        qkv = attn_tensor_new(ctx, ATTN_F32, 3, sh);
        CHECK(!(flash ? attn__flash_sdpa_packed : attn__sdpa_packed)(ctx, qkv, 3, 2, NULL, NULL) &&
                  attn_ctx_status(ctx) == ATTN_ERR_SHAPE,
              "H not a multiple of Hkv: %s", attn_ctx_error(ctx));
        CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s", attn_last_error());
    }
    attn_ctx_free(ctx);
    TEST_END();
}

void suite_sdpa(void) {
    attn_ctx *ctx = test_ctx_new(ARENA, 1, 64);
    if (!ctx) return;
    test_finite_differences(ctx);
    test_masked_rows(ctx);
    test_dropout(ctx);
    test_weights(ctx);
    test_gqa_and_bias(ctx);
    test_fast_vs_ref(ctx);
    test_nan(ctx);
    test_permutation(ctx);
    test_causal_zero_grad(ctx);
    TEST_BEGIN("sdpa/arena guards intact");
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s", attn_last_error());
    TEST_END();
    attn_ctx_free(ctx);
    test_threads();
    test_packed(0);
    test_packed(1);
    test_packed_bf16();
    if (getenv("ATTN_TEST_MEASURE"))
        for (int k = 0; k < M_COUNT; k++)
            printf("sdpa %-26s worst |diff| %.3g, largest |ref| %.3g\n", m_names[k], g_err[k],
                   g_mag[k]);
}
