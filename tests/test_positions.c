/* test_positions.c: include/attn/positions.h beyond the op suite (suite
 * "positions"). The graph ops ROPE, REL_LOGITS and REL_VALUES are also in
 * the op suite (PyTorch fixtures, finite differences, fast vs reference,
 * guards, error paths); here:
 *
 *   - the sinusoidal table, the ALiBi slopes and the ALiBi bias against
 *     tests/fixtures/positions.atfx (tools/make_position_fixtures.py), and
 *     their known properties: sin^2 + cos^2 = 1 per frequency, a table from
 *     pos0 is rows pos0.. of the table from 0 (bitwise), the slopes of 8 heads
 *     are exactly 1/2 .. 1/256, those of 12 heads follow the paper's rule
 *     (8 heads' slopes, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5), the causal bias
 *     is 0 on the diagonal and -inf exactly above it, the symmetric bias is
 *     symmetric about the diagonal; error paths;
 *   - RoPE properties: norms are preserved; q_rot(p1) . k_rot(p2) depends only
 *     on p1 - p2 (shifts by 7 and by 100000, both layouts, partial rotary);
 *     the interleaved layout equals rotate-half after the fixed permutation
 *     of D (bitwise); pos0 and an explicit positions tensor agree (bitwise);
 *     the gradient is the rotation by -phi (= RoPE of grad_out at -p); a
 *     large position (3e9) against the double-precision reference kernel;
 *   - Shaw: the clipped distance itself (tables whose row j holds the value
 *     j) for logits and values, T != S with the KV-cache offset and K = 0;
 *   - all three ops at large ragged sizes: fast vs reference forward, the
 *     gradients against plain double loops written here, 1 vs 2 threads
 *     bitwise.
 *
 * Tolerances (|a - b| <= atol + rtol |ref|):
 *   TABLE_*  tables computed in double and rounded once, against torch in
 *            float64 rounded once: at most 1 ulp apart. 1e-7 + 2e-7 |ref|.
 *   ROT_*    float32 rotations against each other or a double loop: 1e-5 +
 *            1e-5 |ref| (a rotation of |x| ~ 3 rounds to a few 1e-7).
 *   GRAD_*   gradients of the ragged cases against double loops: the op
 *            table's 1e-5 + 1e-4 |ref| (float sums of up to 70 terms).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "test.h"

#define TABLE_ATOL 1e-7f
#define TABLE_RTOL 2e-7f
#define ROT_ATOL 1e-5f
#define ROT_RTOL 1e-5f
#define GRAD_ATOL 1e-5f
#define GRAD_RTOL 1e-4f
#define ARENA ((size_t)64 << 20)

static void fill_normal(float *x, int64_t n, uint64_t seed) {
    attn_rng rng;
    attn_rng_init(&rng, seed);
    for (int64_t i = 0; i < n; i++) x[i] = attn_rng_next_normal(&rng);
}

/* ---- fixtures: sinusoidal table, slopes, bias ---------------------------------- */

static void run_fixture_values(void) {
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/positions.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    attn_status st = atfx_load(path, &fx, err, sizeof err);
    TEST_BEGIN("positions/fixture file");
    CHECK(st == ATTN_OK, "no usable fixture (run `make fixtures`): %s", err);
    TEST_END();
    if (st != ATTN_OK) return;
    attn_ctx *ctx = test_ctx_new(ARENA, 0, 64);
    if (!ctx) {
        atfx_free(fx);
        return;
    }

    TEST_BEGIN("positions/sinusoidal table against PyTorch");
    {
        const atfx_tensor *n = atfx_find(fx, "n_sin");
        int cases = n ? atfx_i32(n)[0] : 0;
        CHECK(cases >= 4, "fixture has %d sinusoidal cases", cases);
        for (int k = 0; k < cases; k++) {
            const atfx_tensor *cfg = atfx_findf(fx, "sin%d.cfg", k),
                              *base = atfx_findf(fx, "sin%d.base", k),
                              *ref = atfx_findf(fx, "sin%d.out", k);
            if (!cfg || !base || !ref) {
                CHECK(0, "sin%d incomplete", k);
                continue;
            }
            const int32_t *c = atfx_i32(cfg);
            attn_ctx_reset(ctx);
            attn_tensor *pe = attn_sinusoidal_positions(ctx, c[0], c[1], c[2], atfx_f32(base)[0]);
            CHECK(pe && pe->ndim == 2 && pe->shape[0] == c[0] && pe->shape[1] == c[1] &&
                      !pe->requires_grad,
                  "sin%d: %s", k, attn_ctx_error(ctx));
            if (!pe) continue;
            char what[96];
            snprintf(what, sizeof what, "sinusoidal T %d E %d pos0 %d base %g", c[0], c[1], c[2],
                     (double)atfx_f32(base)[0]);
            test_allclose(what, attn_f32(pe), atfx_f32(ref), ref->numel, TABLE_ATOL, TABLE_RTOL);
        }
    }
    TEST_END();

    TEST_BEGIN("positions/ALiBi slopes against the paper's rule (PyTorch script)");
    {
        int seen = 0;
        for (int H = 1; H <= 64; H++) {
            const atfx_tensor *ref = atfx_findf(fx, "slopes%d", H);
            if (!ref) continue;
            seen++;
            float s[64];
            attn_alibi_slopes(H, s);
            char what[64];
            snprintf(what, sizeof what, "slopes of %d heads", H);
            test_allclose(what, s, atfx_f32(ref), H, 0.0f, TABLE_RTOL);
        }
        CHECK(seen >= 10, "only %d slope vectors in the fixture", seen);
    }
    TEST_END();

    TEST_BEGIN("positions/ALiBi bias against PyTorch (-inf above the causal diagonal)");
    {
        const atfx_tensor *n = atfx_find(fx, "n_alibi");
        int cases = n ? atfx_i32(n)[0] : 0;
        CHECK(cases >= 4, "fixture has %d ALiBi cases", cases);
        for (int k = 0; k < cases; k++) {
            const atfx_tensor *cfg = atfx_findf(fx, "alibi%d.cfg", k),
                              *ref = atfx_findf(fx, "alibi%d.out", k);
            if (!cfg || !ref) {
                CHECK(0, "alibi%d incomplete", k);
                continue;
            }
            const int32_t *c = atfx_i32(cfg);
            attn_ctx_reset(ctx);
            attn_tensor *b = attn_alibi_bias(ctx, c[0], c[1], c[2], c[3]);
            CHECK(b && b->ndim == 4 && b->shape[0] == 1 && b->shape[1] == c[0] &&
                      b->shape[2] == c[1] && b->shape[3] == c[2] && !b->requires_grad,
                  "alibi%d: %s", k, attn_ctx_error(ctx));
            if (!b) continue;
            char what[96];
            snprintf(what, sizeof what, "ALiBi H %d T %d S %d causal %d", c[0], c[1], c[2], c[3]);
            test_allclose(what, attn_f32(b), atfx_f32(ref), ref->numel, TABLE_ATOL, TABLE_RTOL);
        }
    }
    TEST_END();
    attn_ctx_free(ctx);
    atfx_free(fx);
}

/* ---- properties of the tables ------------------------------------------------------ */

static void run_table_properties(void) {
    attn_ctx *ctx = test_ctx_new(ARENA, 0, 64);
    if (!ctx) return;

    TEST_BEGIN("positions/sinusoidal: sin^2 + cos^2 = 1, column 0 is sin(p), shift by pos0");
    {
        const int64_t T = 40, E = 33;
        attn_tensor *a = attn_sinusoidal_positions(ctx, T, E, 0, 0.0f);
        attn_tensor *b = attn_sinusoidal_positions(ctx, T - 11, E, 11, 0.0f);
        CHECK(a && b, "%s", attn_ctx_error(ctx));
        if (a && b) {
            const float *pa = attn_f32(a), *pb = attn_f32(b);
            int bad = 0;
            for (int64_t t = 0; t < T; t++) {
                for (int64_t c = 0; c + 1 < E; c += 2) {
                    double s = pa[t * E + c], co = pa[t * E + c + 1];
                    if (fabs(s * s + co * co - 1.0) > 1e-6) bad++;
                }
                if (fabsf(pa[t * E] - (float)sin((double)t)) > 0.0f) bad++;
            }
            CHECK(bad == 0, "%d entries break sin^2 + cos^2 = 1 or column 0 = sin(p)", bad);
            CHECK(memcmp(pa + 11 * E, pb, sizeof(float) * (size_t)((T - 11) * E)) == 0,
                  "the table from pos0 11 is not rows 11.. of the table from 0");
            /* the last column of an odd E is a sin column of frequency base^(-(E-1)/E) */
            double want = sin(5.0 * pow(10000.0, -(double)(E - 1) / (double)E));
            CHECK(fabs(pa[5 * E + E - 1] - want) < 1e-7, "odd E: last column %g, want %g",
                  (double)pa[5 * E + E - 1], want);
        }
    }
    TEST_END();

    TEST_BEGIN("positions/sinusoidal: error paths");
    {
        struct {
            int64_t T, E, pos0;
            float base;
            const char *needle;
        } bad[] = {{0, 4, 0, 0.0f, "T 0"},          {3, 0, 0, 0.0f, "E 0"},
                   {3, 4, 0, -2.0f, "base"},        {3, 4, 0, NAN, "base"},
                   {3, 4, 0, INFINITY, "base"},     {3, 4, (int64_t)1 << 41, 0.0f, "pos0"}};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            attn_ctx_reset(ctx);
            attn_tensor *t = attn_sinusoidal_positions(ctx, bad[i].T, bad[i].E, bad[i].pos0,
                                                       bad[i].base);
            CHECK(!t && attn_ctx_status(ctx) == ATTN_ERR_INVALID_ARG &&
                      strstr(attn_ctx_error(ctx), bad[i].needle) &&
                      strstr(attn_ctx_error(ctx), "sinusoidal_positions"),
                  "case %zu: %s, status '%s': %s", i, t ? "a tensor" : "NULL",
                  attn_status_str(attn_ctx_status(ctx)), attn_ctx_error(ctx));
        }
        CHECK(attn_sinusoidal_positions(NULL, 3, 4, 0, 0.0f) == NULL, "NULL context");
        attn_ctx_reset(ctx);
    }
    TEST_END();

    TEST_BEGIN("positions/ALiBi slopes: 8 heads 1/2 .. 1/256, 12 heads the paper's rule");
    {
        float s[16];
        attn_alibi_slopes(8, s);
        for (int h = 0; h < 8; h++)
            CHECK(s[h] == ldexpf(1.0f, -(h + 1)), "H 8 slope %d: %.9g, want 2^-%d", h,
                  (double)s[h], h + 1);
        attn_alibi_slopes(12, s);
        for (int h = 0; h < 8; h++)
            CHECK(s[h] == ldexpf(1.0f, -(h + 1)), "H 12 slope %d: %.9g, want 2^-%d", h,
                  (double)s[h], h + 1);
        for (int h = 8; h < 12; h++) {
            float want = (float)exp2(-0.5 - (double)(h - 8));
            CHECK(s[h] == want, "H 12 slope %d: %.9g, want 2^-%.1f = %.9g", h, (double)s[h],
                  0.5 + (h - 8), (double)want);
        }
        attn_alibi_slopes(16, s);
        for (int h = 0; h < 16; h++)
            CHECK(s[h] == (float)exp2(-0.5 * (h + 1)), "H 16 slope %d: %.9g", h, (double)s[h]);
        s[0] = 42.0f;
        attn_alibi_slopes(0, s);
        attn_alibi_slopes(-3, s);
        attn_alibi_slopes(4, NULL);
        CHECK(s[0] == 42.0f, "H < 1 wrote a slope");
        attn_alibi_slopes(1, s);
        CHECK(s[0] == ldexpf(1.0f, -8), "H 1: %.9g, want 2^-8", (double)s[0]);
    }
    TEST_END();

    TEST_BEGIN("positions/ALiBi bias: diagonal 0, -inf exactly above it, symmetric form");
    {
        const int H = 5;
        const int64_t T = 4, S = 9, off = S - T;
        attn_tensor *c = attn_alibi_bias(ctx, H, T, S, 1);
        attn_tensor *n = attn_alibi_bias(ctx, H, T, S, 0);
        CHECK(c && n, "%s", attn_ctx_error(ctx));
        float sl[8];
        attn_alibi_slopes(H, sl);
        if (c && n) {
            int bad = 0;
            for (int h = 0; h < H; h++)
                for (int64_t t = 0; t < T; t++)
                    for (int64_t s = 0; s < S; s++) {
                        float vc = attn_f32(c)[(h * T + t) * S + s];
                        float vn = attn_f32(n)[(h * T + t) * S + s];
                        int64_t d = t + off - s;
                        if (d < 0 && !(isinf(vc) && vc < 0)) bad++;
                        if (d >= 0 && vc != vn) bad++; /* the same below the diagonal */
                        if (d == 0 && vc != 0.0f) bad++;
                        if (vn != (float)(-(double)sl[h] * (double)(d < 0 ? -d : d))) bad++;
                        if (d == 1 && vc != -sl[h]) bad++;
                    }
            CHECK(bad == 0, "%d bias entries wrong", bad);
        }
        const struct {
            int H;
            int64_t T, S;
        } e[] = {{0, 3, 3}, {2, 0, 3}, {2, 3, 0}};
        for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
            attn_ctx_reset(ctx);
            attn_tensor *b = attn_alibi_bias(ctx, e[i].H, e[i].T, e[i].S, 1);
            CHECK(!b && attn_ctx_status(ctx) == ATTN_ERR_INVALID_ARG &&
                      strstr(attn_ctx_error(ctx), "alibi_bias"),
                  "case %zu: status '%s': %s", i, attn_status_str(attn_ctx_status(ctx)),
                  attn_ctx_error(ctx));
        }
        attn_ctx_reset(ctx);
    }
    TEST_END();
    attn_ctx_free(ctx);
}

/* ---- RoPE properties ------------------------------------------------------------------- */

/* rope of a contiguous [B,H,T,D] copy of x with the given options; NULL on error. */
static attn_tensor *rope_of(attn_ctx *ctx, const float *x, int64_t B, int64_t H, int64_t T,
                            int64_t D, const attn_rope_opts *o) {
    const int64_t sh[4] = {B, H, T, D};
    attn_tensor *xt = attn_tensor_from(ctx, ATTN_F32, 4, sh, x);
    return attn_rope(ctx, xt, o);
}

static attn_tensor *positions_of(attn_ctx *ctx, const int32_t *p, int64_t T) {
    return attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){T}, p);
}

static void run_rope_properties(void) {
    attn_ctx *ctx = test_ctx_new(ARENA, 0, 64);
    if (!ctx) return;
    enum { B = 2, H = 3, T = 9, D = 20 };
    static float x[B * H * T * D], y[B * H * T * D];
    fill_normal(x, B * H * T * D, 11);

    TEST_BEGIN("positions/rope: norms are preserved (both layouts, partial rotary)");
    for (int inter = 0; inter < 2; inter++)
        for (int rd = 0; rd <= 12; rd += 12) {
            attn_ctx_reset(ctx);
            attn_rope_opts o = {1234, NULL, 0.0f, rd, inter};
            attn_tensor *r = rope_of(ctx, x, B, H, T, D, &o);
            CHECK(r, "%s", attn_ctx_error(ctx));
            if (!r) continue;
            double worst = 0.0;
            for (int64_t row = 0; row < B * H * T; row++) {
                double n0 = 0, n1 = 0, p0 = 0, p1 = 0;
                const int64_t r2 = rd ? rd : D;
                for (int64_t d = 0; d < D; d++) {
                    double a = x[row * D + d], b = attn_f32(r)[row * D + d];
                    n0 += a * a, n1 += b * b;
                    if (d < r2) p0 += a * a, p1 += b * b;
                }
                double e = fabs(sqrt(n1) - sqrt(n0)) / sqrt(n0);
                double ep = fabs(sqrt(p1) - sqrt(p0)) / sqrt(p0);
                if (e > worst) worst = e;
                if (ep > worst) worst = ep;
            }
            CHECK(worst < 1e-6, "interleaved %d rotary_dim %d: relative norm change %.3g", inter,
                  rd, worst);
        }
    TEST_END();

    TEST_BEGIN("positions/rope: q_rot(p1) . k_rot(p2) depends only on p1 - p2");
    {
        /* one head, two rows: q at position p1, k at p2 */
        float qk[2 * D];
        fill_normal(qk, 2 * D, 12);
        const int32_t p[][2] = {{3, 0}, {10, 7}, {100003, 100000}, {5, 9}, {1005, 1009}};
        for (int inter = 0; inter < 2; inter++)
            for (int rd = 0; rd <= 8; rd += 8) {
                double dots[5];
                for (int k = 0; k < 5; k++) {
                    attn_ctx_reset(ctx);
                    attn_rope_opts o = {0, positions_of(ctx, p[k], 2), 0.0f, rd, inter};
                    attn_tensor *r = rope_of(ctx, qk, 1, 1, 2, D, &o);
                    CHECK(r, "%s", attn_ctx_error(ctx));
                    dots[k] = 0.0;
                    for (int d = 0; r && d < D; d++)
                        dots[k] += (double)attn_f32(r)[d] * (double)attn_f32(r)[D + d];
                }
                double s = fabs(dots[0]) + 1.0;
                CHECK(fabs(dots[1] - dots[0]) < 1e-5 * s && fabs(dots[2] - dots[0]) < 1e-4 * s,
                      "interleaved %d rotary_dim %d: p1 - p2 = 3 gives %.9g, %.9g, %.9g", inter,
                      rd, dots[0], dots[1], dots[2]);
                CHECK(fabs(dots[4] - dots[3]) < 1e-4 * (fabs(dots[3]) + 1.0),
                      "interleaved %d rotary_dim %d: p1 - p2 = -4 gives %.9g, %.9g", inter, rd,
                      dots[3], dots[4]);
                /* and it does depend on the difference */
                CHECK(fabs(dots[3] - dots[0]) > 1e-3, "difference 3 and -4 give the same dot");
            }
    }
    TEST_END();

    TEST_BEGIN("positions/rope: interleaved = rotate-half after the permutation of D (bitwise)");
    {
        const int64_t r = 14, half = r / 2; /* partial: dims 14..19 pass through */
        for (int64_t row = 0; row < B * H * T; row++) {
            for (int64_t i = 0; i < half; i++) {
                y[row * D + 2 * i] = x[row * D + i];
                y[row * D + 2 * i + 1] = x[row * D + i + half];
            }
            for (int64_t d = r; d < D; d++) y[row * D + d] = x[row * D + d];
        }
        attn_ctx_reset(ctx);
        attn_rope_opts oh = {37, NULL, 500.0f, r, 0}, oi = {37, NULL, 500.0f, r, 1};
        attn_tensor *rh = rope_of(ctx, x, B, H, T, D, &oh);
        attn_tensor *ri = rope_of(ctx, y, B, H, T, D, &oi);
        CHECK(rh && ri, "%s", attn_ctx_error(ctx));
        int bad = 0;
        for (int64_t row = 0; rh && ri && row < B * H * T; row++) {
            const float *a = attn_f32(rh) + row * D, *b = attn_f32(ri) + row * D;
            for (int64_t i = 0; i < half; i++)
                bad += a[i] != b[2 * i] || a[i + half] != b[2 * i + 1];
            for (int64_t d = r; d < D; d++) bad += a[d] != b[d] || a[d] != x[row * D + d];
        }
        CHECK(bad == 0, "%d elements differ", bad);
    }
    TEST_END();

    TEST_BEGIN("positions/rope: pos0 and a positions tensor agree; [B,T] positions per batch");
    {
        attn_ctx_reset(ctx);
        int32_t pt[T], pbt[B * T];
        for (int t = 0; t < T; t++) pt[t] = 50 + t, pbt[t] = 50 + t, pbt[T + t] = 7 + 3 * t;
        attn_rope_opts o0 = {50, NULL, 0.0f, 0, 1};
        attn_rope_opts o1 = {0, positions_of(ctx, pt, T), 0.0f, 0, 1};
        attn_rope_opts o2 = {0, attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T}, pbt), 0.0f,
                             0, 1};
        attn_tensor *a = rope_of(ctx, x, B, H, T, D, &o0), *b = rope_of(ctx, x, B, H, T, D, &o1),
                    *c = rope_of(ctx, x, B, H, T, D, &o2);
        CHECK(a && b && c, "%s", attn_ctx_error(ctx));
        if (a && b && c) {
            const size_t half_bytes = sizeof(float) * (size_t)(H * T * D);
            CHECK(memcmp(attn_f32(a), attn_f32(b), 2 * half_bytes) == 0,
                  "pos0 50 and positions 50.. differ");
            CHECK(memcmp(attn_f32(a), attn_f32(c), half_bytes) == 0,
                  "batch 0 of [B,T] positions differs from positions [T]");
            CHECK(memcmp(attn_f32(a) + H * T * D, attn_f32(c) + H * T * D, half_bytes) != 0,
                  "batch 1 of [B,T] positions (other positions) equals batch 0's rotation");
            /* batch 1, t 2 is at position 13 */
            attn_rope_opts o3 = {13, NULL, 0.0f, 0, 1};
            attn_tensor *d = rope_of(ctx, x + (H * T + 2) * D, 1, 1, 1, D, &o3);
            CHECK(d && memcmp(attn_f32(d), attn_f32(c) + (H * T + 2) * D, sizeof(float) * D) == 0,
                  "row (b 1, h 0, t 2) is not the rotation at position 13");
        }
    }
    TEST_END();

    TEST_BEGIN("positions/rope: the gradient is the rotation by -phi");
    for (int inter = 0; inter < 2; inter++) {
        attn_ctx_reset(ctx);
        int32_t pt[T], nt[T];
        for (int t = 0; t < T; t++) pt[t] = 3 * t - 5, nt[t] = -pt[t];
        attn_tensor *xt = test_leaf(ctx, 4, (int64_t[]){B, H, T, D}, x);
        attn_rope_opts o = {0, positions_of(ctx, pt, T), 0.0f, 16, inter};
        attn_tensor *r = attn_rope(ctx, xt, &o);
        fill_normal(y, B * H * T * D, 13);
        CHECK(r, "%s", attn_ctx_error(ctx));
        if (!r) continue;
        CHECK_OK(attn_backward_from(ctx, r, y));
        attn_rope_opts on = {0, positions_of(ctx, nt, T), 0.0f, 16, inter};
        attn_tensor *gr = rope_of(ctx, y, B, H, T, D, &on);
        CHECK(gr && xt->grad, "%s", attn_ctx_error(ctx));
        if (gr && xt->grad)
            test_allclose("rope gradient vs rope(grad_out, -p)", xt->grad, attn_f32(gr),
                          B * H * T * D, ROT_ATOL, ROT_RTOL);
    }
    TEST_END();

    TEST_BEGIN("positions/rope: position 3e9 (angles in double) against the reference kernel");
    {
        attn_ctx_reset(ctx);
        attn_rope_opts o = {3000000000LL, NULL, 0.0f, 0, 0};
        attn_tensor *a = rope_of(ctx, x, 1, 1, T, D, &o);
        attn_ctx_set_use_ref(ctx, 1);
        attn_tensor *b = rope_of(ctx, x, 1, 1, T, D, &o);
        attn_ctx_set_use_ref(ctx, 0);
        CHECK(a && b, "%s", attn_ctx_error(ctx));
        if (a && b) {
            test_allclose("rope at 3e9: fast vs reference", attn_f32(a), attn_f32(b), T * D,
                          ROT_ATOL, ROT_RTOL);
            /* the first pair (frequency 1) by hand, in double */
            double phi = 3000000000.0, xa = x[0], xb = x[D / 2];
            double want = xa * cos(phi) - xb * sin(phi);
            CHECK(fabs(attn_f32(a)[0] - want) < 1e-5, "out[0] %.9g, want %.9g",
                  (double)attn_f32(a)[0], want);
        }
    }
    TEST_END();
    attn_ctx_free(ctx);
}

/* ---- Shaw: the clipped distance itself -------------------------------------------------- */

static void run_shaw_clip(void) {
    attn_ctx *ctx = test_ctx_new(ARENA, 0, 64);
    if (!ctx) return;
    TEST_BEGIN("positions/shaw: clip(s - (t + offset), -K, K) + K for logits and values");
    {
        const struct {
            int64_t T, S, K, off;
        } cs[] = {{6, 9, 2, 3}, {5, 5, 1, 0}, {4, 4, 0, 0}, {1, 12, 3, 11}, {3, 7, 10, 4},
                  {4, 6, 2, -3}};
        for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
            const int64_t T = cs[c].T, S = cs[c].S, K = cs[c].K, off = cs[c].off, R = 2 * K + 1;
            attn_ctx_reset(ctx);
            /* rel[j] = (j, 1) and q = (1, 0): logits[t, s] = j(t, s) */
            float *tab = malloc(sizeof(float) * (size_t)(R * 2)), q[2] = {1.0f, 0.0f};
            float *p = calloc((size_t)(T * S), sizeof(float));
            if (!tab || !p) {
                free(tab);
                free(p);
                CHECK(0, "out of memory");
                break;
            }
            for (int64_t j = 0; j < R; j++) tab[2 * j] = (float)j, tab[2 * j + 1] = 1.0f;
            attn_tensor *rt = attn_tensor_from(ctx, ATTN_F32, 2, (int64_t[]){R, 2}, tab);
            float *qq = malloc(sizeof(float) * (size_t)(T * 2));
            for (int64_t t = 0; qq && t < T; t++) qq[2 * t] = q[0], qq[2 * t + 1] = q[1];
            attn_tensor *qt = qq ? attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){1, 1, T, 2}, qq)
                                 : NULL;
            attn_tensor *lg = attn_rel_logits(ctx, qt, rt, S, off);
            /* values: p[t] one-hot at s = (t * 5 + 2) % S */
            for (int64_t t = 0; t < T; t++) p[t * S + (t * 5 + 2) % S] = 1.0f;
            attn_tensor *pt = attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){1, 1, T, S}, p);
            attn_tensor *vl = attn_rel_values(ctx, pt, rt, off);
            CHECK(lg && vl, "%s", attn_ctx_error(ctx));
            int bad = 0;
            for (int64_t t = 0; lg && vl && t < T; t++) {
                for (int64_t s = 0; s < S; s++) {
                    int64_t d = s - (t + off);
                    int64_t j = (d < -K ? -K : d > K ? K : d) + K;
                    bad += attn_f32(lg)[t * S + s] != (float)j;
                }
                int64_t s = (t * 5 + 2) % S, d = s - (t + off);
                int64_t j = (d < -K ? -K : d > K ? K : d) + K;
                bad += attn_f32(vl)[t * 2] != (float)j || attn_f32(vl)[t * 2 + 1] != 1.0f;
            }
            CHECK(bad == 0, "T %lld S %lld K %lld offset %lld: %d entries wrong", (long long)T,
                  (long long)S, (long long)K, (long long)off, bad);
            free(tab);
            free(p);
            free(qq);
        }
    }
    TEST_END();
    attn_ctx_free(ctx);
}

/* ---- Shaw attention composed from the ops (the recipe of positions.h) ------------------- */

static void run_shaw_composed(void) {
    attn_ctx *ctx = test_ctx_new(ARENA, 0, 64);
    if (!ctx) return;
    TEST_BEGIN("positions/shaw attention composed from bmm, rel_logits, softmax, rel_values "
               "(causal, KV-cache offset) against double loops");
    {
        enum { B = 2, H = 2, T = 3, S = 7, D = 5, K = 2, R = 2 * K + 1 };
        const int64_t off = S - T;
        const float scale = 0.4472136f; /* 1/sqrt(5) */
        static float q[B * H * T * D], k[B * H * S * D], v[B * H * S * D], rk[R * D], rv[R * D],
            mask[T * S];
        fill_normal(q, B * H * T * D, 21);
        fill_normal(k, B * H * S * D, 22);
        fill_normal(v, B * H * S * D, 23);
        fill_normal(rk, R * D, 24);
        fill_normal(rv, R * D, 25);
        for (int t = 0; t < T; t++)
            for (int s = 0; s < S; s++) mask[t * S + s] = s <= t + off ? 0.0f : -INFINITY;
        attn_tensor *qt = test_leaf(ctx, 4, (int64_t[]){B, H, T, D}, q);
        attn_tensor *kt = test_leaf(ctx, 4, (int64_t[]){B, H, S, D}, k);
        attn_tensor *vt = test_leaf(ctx, 4, (int64_t[]){B, H, S, D}, v);
        attn_tensor *rkt = test_leaf(ctx, 2, (int64_t[]){R, D}, rk);
        attn_tensor *rvt = test_leaf(ctx, 2, (int64_t[]){R, D}, rv);
        attn_tensor *mt = attn_tensor_from(ctx, ATTN_F32, 2, (int64_t[]){T, S}, mask);
        attn_tensor *logits = attn_scale(
            ctx, attn_add(ctx, attn_bmm(ctx, qt, kt, 0, 1), attn_rel_logits(ctx, qt, rkt, S, off)),
            scale);
        attn_tensor *P = attn_softmax(ctx, logits, mt);
        attn_tensor *out = attn_add(ctx, attn_bmm(ctx, P, vt, 0, 0), attn_rel_values(ctx, P, rvt, off));
        CHECK(out && out->ndim == 4 && out->shape[2] == T && out->shape[3] == D, "%s",
              attn_ctx_error(ctx));
        if (out) {
            float want[B * H * T * D];
            for (int bh = 0; bh < B * H; bh++)
                for (int t = 0; t < T; t++) {
                    double e[S], mx = -INFINITY, z = 0.0;
                    for (int s = 0; s < S; s++) {
                        int d = s - (t + (int)off), j = (d < -K ? -K : d > K ? K : d) + K;
                        double acc = 0.0;
                        for (int c = 0; c < D; c++)
                            acc += (double)q[(bh * T + t) * D + c] *
                                   ((double)k[(bh * S + s) * D + c] + (double)rk[j * D + c]);
                        e[s] = s <= t + off ? (double)scale * acc : -INFINITY;
                        if (e[s] > mx) mx = e[s];
                    }
                    for (int s = 0; s < S; s++) z += e[s] == -INFINITY ? 0.0 : exp(e[s] - mx);
                    for (int c = 0; c < D; c++) {
                        double acc = 0.0;
                        for (int s = 0; s <= t + off && s < S; s++) {
                            int d = s - (t + (int)off), j = (d < -K ? -K : d > K ? K : d) + K;
                            acc += exp(e[s] - mx) / z *
                                   ((double)v[(bh * S + s) * D + c] + (double)rv[j * D + c]);
                        }
                        want[(bh * T + t) * D + c] = (float)acc;
                    }
                }
            test_allclose("Shaw attention (composed) vs double loops", attn_f32(out), want,
                          B * H * T * D, 2e-6f, 2e-5f);
            attn_tensor *loss = attn_sum(ctx, out, ATTN_ALL_AXES, 0);
            CHECK(loss && attn_backward(ctx, loss) == ATTN_OK, "backward: %s", attn_ctx_error(ctx));
            int finite = rkt->grad && rvt->grad && qt->grad;
            for (int i = 0; finite && i < R * D; i++)
                finite = isfinite(rkt->grad[i]) && isfinite(rvt->grad[i]);
            CHECK(finite, "the tables received no or non-finite gradients");
        }
    }
    TEST_END();
    attn_ctx_free(ctx);
}

/* ---- large ragged sizes ------------------------------------------------------------------- */

typedef struct big_out {
    float *out, *g0, *g1; /* output, gradient of input 0, of input 1 (or NULL) */
    int64_t n_out, n0, n1;
} big_out;

static void big_free(big_out *b) {
    free(b->out);
    free(b->g0);
    free(b->g1);
    memset(b, 0, sizeof *b);
}

static float *dup_floats(const float *src, int64_t n) {
    float *d = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (d && src) memcpy(d, src, sizeof(float) * (size_t)n);
    if (d && !src) memset(d, 0, sizeof(float) * (size_t)n);
    return d;
}

enum { BIG_B = 2, BIG_H = 3, BIG_T = 65, BIG_S = 70, BIG_D = 130, BIG_K = 8, BIG_OFF = 5,
       BIG_DK = 33 };

/* Runs op `which` (0 rope, 1 rel_logits, 2 rel_values) on the fixed large
 * inputs with the given kernels and threads; backward from go. */
static int run_big(attn_ctx *ctx, int which, int use_ref, int threads, const float *a,
                   const float *b, const float *go, big_out *res) {
    memset(res, 0, sizeof *res);
    attn_ctx_reset(ctx);
    attn_ctx_set_use_ref(ctx, use_ref);
    attn_ctx_set_threads(ctx, threads);
    attn_tensor *x0 = NULL, *x1 = NULL, *out = NULL;
    if (which == 0) {
        /* x stored [B, T, H, D], rotated as the view [B, H, T, D] */
        attn_tensor *xs = test_leaf(ctx, 4, (int64_t[]){BIG_B, BIG_T, BIG_H, BIG_D}, a);
        x0 = xs;
        attn_rope_opts o = {123, NULL, 0.0f, 128, 0};
        out = attn_rope(ctx, attn_permute(ctx, xs, (int[]){0, 2, 1, 3}), &o);
    } else if (which == 1) {
        x0 = test_leaf(ctx, 4, (int64_t[]){BIG_B, BIG_H, BIG_T, BIG_DK}, a);
        x1 = test_leaf(ctx, 2, (int64_t[]){2 * BIG_K + 1, BIG_DK}, b);
        out = attn_rel_logits(ctx, x0, x1, BIG_S, BIG_OFF);
    } else {
        x0 = test_leaf(ctx, 4, (int64_t[]){BIG_B, BIG_H, BIG_T, BIG_S}, a);
        x1 = test_leaf(ctx, 2, (int64_t[]){2 * BIG_K + 1, BIG_DK}, b);
        out = attn_rel_values(ctx, x0, x1, BIG_OFF);
    }
    attn_ctx_set_use_ref(ctx, 0);
    if (!out) {
        CHECK(0, "op %d: %s", which, attn_ctx_error(ctx));
        return -1;
    }
    res->n_out = attn_tensor_numel(out);
    res->out = dup_floats(attn_f32(out), res->n_out);
    if (attn_backward_from(ctx, out, go) != ATTN_OK) {
        CHECK(0, "op %d backward: %s", which, attn_ctx_error(ctx));
        return -1;
    }
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "guards: %s", attn_last_error());
    res->n0 = attn_tensor_numel(x0);
    res->g0 = dup_floats(x0->grad, res->n0);
    if (x1) {
        res->n1 = attn_tensor_numel(x1);
        res->g1 = dup_floats(x1->grad, res->n1);
    }
    return 0;
}

static int64_t clipj(int64_t t, int64_t s) {
    int64_t d = s - (t + BIG_OFF);
    return (d < -BIG_K ? -BIG_K : d > BIG_K ? BIG_K : d) + BIG_K;
}

/* The gradients by plain double loops. */
static void naive_grads(int which, const float *a, const float *b, const float *go, double *g0,
                        double *g1) {
    const int64_t N = BIG_B * BIG_H * BIG_T, R = 2 * BIG_K + 1;
    if (which == 0) {
        /* x [B,T,H,D] storage; out [B,H,T,D]; r = 128: rotate-half pairs (i, i + 64) */
        for (int64_t bb = 0; bb < BIG_B; bb++)
            for (int64_t h = 0; h < BIG_H; h++)
                for (int64_t t = 0; t < BIG_T; t++) {
                    const float *gr = go + ((bb * BIG_H + h) * BIG_T + t) * BIG_D;
                    double *dx = g0 + ((bb * BIG_T + t) * BIG_H + h) * BIG_D;
                    for (int64_t i = 0; i < 64; i++) {
                        double phi = (double)(123 + t) * pow(10000.0, -2.0 * (double)i / 128.0);
                        dx[i] += gr[i] * cos(phi) + gr[i + 64] * sin(phi);
                        dx[i + 64] += gr[i + 64] * cos(phi) - gr[i] * sin(phi);
                    }
                    for (int64_t d = 128; d < BIG_D; d++) dx[d] += gr[d];
                }
    } else if (which == 1) {
        /* out[n,s] = q[n] . rk[j] */
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < BIG_S; s++) {
                const int64_t j = clipj(n % BIG_T, s);
                const double g = go[n * BIG_S + s];
                for (int64_t d = 0; d < BIG_DK; d++) {
                    g0[n * BIG_DK + d] += g * b[j * BIG_DK + d];
                    g1[j * BIG_DK + d] += g * a[n * BIG_DK + d];
                }
            }
    } else {
        /* out[n] = sum_s p[n,s] rv[j] */
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < BIG_S; s++) {
                const int64_t j = clipj(n % BIG_T, s);
                double acc = 0.0;
                for (int64_t d = 0; d < BIG_DK; d++) {
                    acc += (double)go[n * BIG_DK + d] * b[j * BIG_DK + d];
                    g1[j * BIG_DK + d] += (double)a[n * BIG_S + s] * go[n * BIG_DK + d];
                }
                g0[n * BIG_S + s] += acc;
            }
    }
    (void)R;
}

static void run_big_cases(void) {
    attn_ctx *ctx = test_ctx_new((size_t)128 << 20, 0, 64);
    if (!ctx) return;
    static const char *names[3] = {"rope", "rel_logits", "rel_values"};
    const int64_t N = BIG_B * BIG_H * BIG_T;
    const int64_t na[3] = {N * BIG_D, N * BIG_DK, N * BIG_S};
    const int64_t nb = (2 * BIG_K + 1) * BIG_DK;
    const int64_t no[3] = {N * BIG_D, N * BIG_S, N * BIG_DK};
    for (int w = 0; w < 3; w++) {
        char tname[128];
        snprintf(tname, sizeof tname,
                 "positions/%s at a ragged size: fast vs reference, gradients vs double loops, "
                 "1 vs 2 threads", names[w]);
        TEST_BEGIN(tname);
        float *a = malloc(sizeof(float) * (size_t)na[w]), *b = malloc(sizeof(float) * (size_t)nb);
        float *go = malloc(sizeof(float) * (size_t)no[w]);
        float *want0 = malloc(sizeof(float) * (size_t)na[w]), *want1 = malloc(sizeof(float) * (size_t)nb);
        double *d0 = calloc((size_t)na[w], sizeof(double)), *d1 = calloc((size_t)nb, sizeof(double));
        if (!a || !b || !go || !want0 || !want1 || !d0 || !d1) {
            CHECK(0, "out of memory");
        } else {
            fill_normal(a, na[w], 100 + w);
            fill_normal(b, nb, 200 + w);
            fill_normal(go, no[w], 300 + w);
            if (w == 2) /* a masked weight or two */
                for (int64_t i = 0; i < na[w]; i += 7) a[i] = 0.0f;
            big_out f1 = {0}, r1 = {0}, f2 = {0};
            int ok = run_big(ctx, w, 0, 1, a, b, go, &f1) == 0;
            ok = ok && run_big(ctx, w, 1, 1, a, b, go, &r1) == 0;
            ok = ok && run_big(ctx, w, 0, 2, a, b, go, &f2) == 0;
            if (ok) {
                char what[96];
                snprintf(what, sizeof what, "%s: fast vs reference output", names[w]);
                test_allclose(what, f1.out, r1.out, f1.n_out, 1e-5f, 1e-4f);
                naive_grads(w, a, b, go, d0, d1);
                for (int64_t i = 0; i < na[w]; i++) want0[i] = (float)d0[i];
                for (int64_t i = 0; i < nb; i++) want1[i] = (float)d1[i];
                snprintf(what, sizeof what, "%s: gradient of input 0 vs double loops", names[w]);
                test_allclose(what, f1.g0, want0, na[w], GRAD_ATOL, GRAD_RTOL);
                if (w) {
                    snprintf(what, sizeof what, "%s: gradient of the table vs double loops",
                             names[w]);
                    test_allclose(what, f1.g1, want1, nb, GRAD_ATOL, GRAD_RTOL);
                }
                CHECK(memcmp(f1.out, f2.out, sizeof(float) * (size_t)f1.n_out) == 0 &&
                          memcmp(f1.g0, f2.g0, sizeof(float) * (size_t)f1.n0) == 0 &&
                          (!w || memcmp(f1.g1, f2.g1, sizeof(float) * (size_t)f1.n1) == 0),
                      "%s: 1 and 2 threads differ", names[w]);
            }
            big_free(&f1);
            big_free(&r1);
            big_free(&f2);
        }
        free(a), free(b), free(go), free(want0), free(want1), free(d0), free(d1);
        TEST_END();
    }
    attn_ctx_free(ctx);
}

void suite_positions(void) {
    run_fixture_values();
    run_table_properties();
    run_rope_properties();
    run_shaw_clip();
    run_shaw_composed();
    run_big_cases();
}
