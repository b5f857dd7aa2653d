/* test_reformer.c: the Reformer's LSH attention (include/attn/reformer.h).
 *
 * The op's generic checks (PyTorch oracle fixture, fast vs reference,
 * finite differences, errors, arena exhaustion) are in the op suite
 * (tests/test_ops.c, tests/fixtures/lsh_attention.atfx). Here:
 *   - parity with Hugging Face's LSHSelfAttention (transformers 4.30.2) with
 *     fixed rotations: buckets, output and the gradients of the input and of
 *     both projections (tests/fixtures/reformer_hf.atfx,
 *     tools/make_reformer_fixtures.py --hf), fast and reference kernels;
 *   - replay: the same seed gives the same rotations, buckets and output;
 *   - a larger ragged case: fast vs reference, 1 vs 2 threads, finite
 *     differences of the gradient;
 *   - memory O(T L): the op's arena use at T = 2048 is far below a T x T
 *     matrix and grows linearly in T.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "fixture.h"
#include "test.h"

static const char script[] = "tools/make_reformer_fixtures.py --hf";

/* x [B,T,E] -> [B,H,T,D] through the no-bias projection w [H D, E]. */
static attn_tensor *heads(attn_ctx *ctx, attn_tensor *x, attn_tensor *w, int64_t B, int64_t T,
                          int64_t H, int64_t D) {
    attn_tensor *y = attn_linear(ctx, x, w, NULL);
    y = attn_reshape(ctx, y, 4, (int64_t[]){B, T, H, D});
    return attn_contiguous(ctx, attn_permute(ctx, y, (int[]){0, 2, 1, 3}));
}

static void hf_case(const atfx_file *fx, const char *key, int use_ref) {
    char name[160];
    snprintf(name, sizeof name, "reformer: Hugging Face LSHSelfAttention '%s' (%s)", key,
             use_ref ? "reference" : "fast");
    TEST_BEGIN(name);
    const atfx_tensor *cfg = atfx_findf(fx, "%s.cfg", key), *xt = atfx_findf(fx, "%s.x", key),
                      *wq = atfx_findf(fx, "%s.w_qk", key), *wv = atfx_findf(fx, "%s.w_v", key),
                      *rot = atfx_findf(fx, "%s.rot", key), *bk = atfx_findf(fx, "%s.buckets", key),
                      *out = atfx_findf(fx, "%s.out", key), *go = atfx_findf(fx, "%s.grad_out", key),
                      *gx = atfx_findf(fx, "%s.grad.x", key), *gq = atfx_findf(fx, "%s.grad.w_qk", key),
                      *gv = atfx_findf(fx, "%s.grad.w_v", key);
    if (!cfg || !xt || !wq || !wv || !rot || !bk || !out || !go || !gx || !gq || !gv || cfg->numel != 9) {
        CHECK(0, "%s: case %s incomplete (regenerate with %s)", test_fixture_dir(), key, script);
        TEST_END();
        return;
    }
    const int32_t *c = atfx_i32(cfg);
    const int64_t B = c[0], T = c[1], E = c[2], H = c[3], D = c[4];
    attn_ctx *ctx = test_ctx_new(64u << 20, 1, 0);
    if (!ctx) {
        TEST_END();
        return;
    }
    attn_ctx_set_use_ref(ctx, use_ref);
    attn_tensor *x = test_leaf(ctx, 3, (int64_t[]){B, T, E}, atfx_f32(xt));
    attn_tensor *w_qk = test_leaf(ctx, 2, (int64_t[]){H * D, E}, atfx_f32(wq));
    attn_tensor *w_v = test_leaf(ctx, 2, (int64_t[]){H * D, E}, atfx_f32(wv));
    attn_tensor *qk = heads(ctx, x, w_qk, B, T, H, D), *v = heads(ctx, x, w_v, B, T, H, D);
    attn_lsh_opts o;
    memset(&o, 0, sizeof o);
    o.n_hashes = c[5];
    o.n_buckets = c[6];
    o.chunk_len = c[7];
    o.causal = c[8];
    o.rotations = atfx_f32(rot);
    attn_tensor *a = attn_lsh_attention(ctx, qk, v, &o);
    attn_tensor *y = attn_reshape(ctx, attn_contiguous(ctx, attn_permute(ctx, a, (int[]){0, 2, 1, 3})), 3,
                                  (int64_t[]){B, T, H * D});
    CHECK(y != NULL, "forward: %s", attn_ctx_error(ctx));
    if (y) {
        int32_t *mine = malloc(sizeof(int32_t) * (size_t)bk->numel);
        CHECK(mine && attn_lsh_hash(attn_f32(qk), B, H, T, D, atfx_f32(rot), c[5], c[6], mine) == ATTN_OK,
              "hash");
        if (mine) {
            int64_t diff = 0;
            for (int64_t i = 0; i < bk->numel; i++) diff += mine[i] != atfx_i32(bk)[i];
            CHECK(diff == 0, "%lld of %lld buckets differ from Hugging Face's", (long long)diff,
                  (long long)bk->numel);
        }
        free(mine);
        test_allclose("output vs Hugging Face", attn_f32(y), atfx_f32(out), out->numel, 1e-5f, 1e-4f);
        CHECK_OK(attn_backward_from(ctx, y, atfx_f32(go)));
        test_allclose("grad x vs Hugging Face", x->grad, atfx_f32(gx), gx->numel, 1e-5f, 1e-4f);
        test_allclose("grad w_qk vs Hugging Face", w_qk->grad, atfx_f32(gq), gq->numel, 1e-5f, 1e-4f);
        test_allclose("grad w_v vs Hugging Face", w_v->grad, atfx_f32(gv), gv->numel, 1e-5f, 1e-4f);
    }
    attn_ctx_free(ctx);
    TEST_END();
}

/* A deterministic fill in [-1, 1). */
static void fill(float *p, int64_t n, uint64_t seed) {
    attn_rng r;
    attn_rng_init(&r, seed);
    for (int64_t i = 0; i < n; i++) p[i] = 2.0f * attn_rng_next_uniform(&r) - 1.0f;
}

static void replay(void) {
    TEST_BEGIN("reformer: seeded rotations replay (same seed, same buckets and output)");
    const int64_t B = 1, H = 2, T = 32, D = 8;
    float *x = malloc(sizeof(float) * (size_t)(B * H * T * D));
    float *r1 = malloc(sizeof(float) * (size_t)(H * D * 3 * 4)), *r2 = malloc(sizeof(float) * (size_t)(H * D * 3 * 4));
    attn_ctx *ctx = test_ctx_new(16u << 20, 1, 0);
    if (!x || !r1 || !r2 || !ctx) {
        CHECK(0, "setup");
    } else {
        fill(x, B * H * T * D, 7);
        CHECK_OK(attn_lsh_rotations(r1, H, D, 3, 8, 1234));
        CHECK_OK(attn_lsh_rotations(r2, H, D, 3, 8, 1234));
        CHECK(memcmp(r1, r2, sizeof(float) * (size_t)(H * D * 12)) == 0, "same seed, different rotations");
        CHECK_OK(attn_lsh_rotations(r2, H, D, 3, 8, 1235));
        CHECK(memcmp(r1, r2, sizeof(float) * (size_t)(H * D * 12)) != 0, "another seed, same rotations");
        attn_lsh_opts o;
        memset(&o, 0, sizeof o);
        o.n_hashes = 3, o.n_buckets = 8, o.chunk_len = 4, o.causal = 1, o.seed = 1234;
        attn_tensor *q = test_leaf(ctx, 4, (int64_t[]){B, H, T, D}, x);
        attn_tensor *a = attn_lsh_attention(ctx, q, q, &o);
        o.rotations = r1; /* the same rotations given explicitly */
        attn_tensor *b = attn_lsh_attention(ctx, q, q, &o);
        o.rotations = NULL, o.seed = 99;
        attn_tensor *d = attn_lsh_attention(ctx, q, q, &o);
        CHECK(a && b && d, "forward: %s", attn_ctx_error(ctx));
        if (a && b && d) {
            const size_t n = sizeof(float) * (size_t)(B * H * T * D);
            CHECK(memcmp(attn_f32(a), attn_f32(b), n) == 0, "seeded and explicit rotations differ");
            CHECK(memcmp(attn_f32(a), attn_f32(d), n) != 0, "another seed gave the same output");
        }
    }
    attn_ctx_free(ctx);
    free(x);
    free(r1);
    free(r2);
    TEST_END();
}

/* sum(out * r) of lsh(x, v) in double, for finite differences. */
static double loss_of(attn_ctx *ctx, const int64_t *shx, const float *x, const int64_t *shv,
                      const float *v, const attn_lsh_opts *o, const float *r) {
    attn_ctx_reset(ctx);
    attn_tensor *a = attn_lsh_attention(ctx, attn_tensor_from(ctx, ATTN_F32, 4, shx, x),
                                        attn_tensor_from(ctx, ATTN_F32, 4, shv, v), o);
    if (!a) return NAN;
    double s = 0.0;
    for (int64_t i = 0; i < attn_tensor_numel(a); i++) s += (double)attn_f32(a)[i] * (double)r[i];
    return s;
}

static void large_ragged(void) {
    TEST_BEGIN("reformer: ragged T 50, L 8, 3 rounds, causal: fast vs reference, threads, finite differences");
    const int64_t B = 2, H = 3, T = 50, D = 8, Dv = 6;
    const int64_t nx = B * H * T * D, nv = B * H * T * Dv, no = B * H * T * Dv;
    const int64_t shx[4] = {B, H, T, D}, shv[4] = {B, H, T, Dv};
    float *x = malloc(sizeof(float) * (size_t)nx), *v = malloc(sizeof(float) * (size_t)nv),
          *r = malloc(sizeof(float) * (size_t)no), *res[3][3] = {{0}};
    attn_ctx *ctx = test_ctx_new(64u << 20, 1, 0);
    attn_lsh_opts o;
    memset(&o, 0, sizeof o);
    o.n_hashes = 3, o.n_buckets = 6, o.chunk_len = 8, o.causal = 1, o.seed = 5;
    if (!x || !v || !r || !ctx) {
        CHECK(0, "setup");
        goto done;
    }
    fill(x, nx, 1);
    fill(v, nv, 2);
    fill(r, no, 3);
    for (int k = 0; k < nx; k++) x[k] *= 2.0f;
    /* k = 0 fast 1 thread, 1 reference, 2 fast 2 threads: out, dx, dv */
    for (int k = 0; k < 3; k++) {
        attn_ctx_reset(ctx);
        attn_ctx_set_use_ref(ctx, k == 1);
        attn_ctx_set_threads(ctx, k == 2 ? 2 : 1);
        attn_tensor *tx = test_leaf(ctx, 4, shx, x), *tv = test_leaf(ctx, 4, shv, v);
        attn_tensor *a = attn_lsh_attention(ctx, tx, tv, &o);
        CHECK(a != NULL, "forward: %s", attn_ctx_error(ctx));
        if (!a) goto done;
        CHECK_OK(attn_backward_from(ctx, a, r));
        const int64_t n[3] = {no, nx, nv};
        const float *src[3] = {attn_f32(a), tx->grad, tv->grad};
        for (int j = 0; j < 3; j++) {
            res[k][j] = malloc(sizeof(float) * (size_t)n[j]);
            if (!res[k][j] || !src[j]) {
                CHECK(0, "no result");
                goto done;
            }
            memcpy(res[k][j], src[j], sizeof(float) * (size_t)n[j]);
        }
    }
    attn_ctx_set_use_ref(ctx, 0);
    attn_ctx_set_threads(ctx, 1);
    test_allclose("fast vs reference output", res[0][0], res[1][0], no, 1e-5f, 1e-4f);
    test_allclose("fast vs reference grad qk (backward after the reference forward)", res[0][1], res[1][1], nx, 1e-5f, 1e-4f);
    test_allclose("fast vs reference grad v", res[0][2], res[1][2], nv, 1e-5f, 1e-4f);
    test_allclose("1 vs 2 threads output", res[2][0], res[0][0], no, 1e-6f, 1e-5f);
    test_allclose("1 vs 2 threads grad qk", res[2][1], res[0][1], nx, 1e-6f, 1e-5f);
    /* central differences in the reference kernel (double sums) on sampled
     * elements; a probe that moves a bucket is skipped (counted) */
    attn_ctx_set_use_ref(ctx, 1);
    {
        const float h = 1e-3f;
        int probed = 0, moved = 0, bad = 0;
        int32_t *b0 = malloc(sizeof(int32_t) * (size_t)(B * H * 3 * T)), *b1 = malloc(sizeof(int32_t) * (size_t)(B * H * 3 * T));
        float *rot = malloc(sizeof(float) * (size_t)(H * D * 3 * 3));
        if (!b0 || !b1 || !rot) {
            CHECK(0, "oom");
        } else {
            attn_lsh_rotations(rot, H, D, 3, 6, 5);
            attn_lsh_hash(x, B, H, T, D, rot, 3, 6, b0);
            for (int64_t e = 0; e < nx; e += 37) {
                const float x0 = x[e];
                x[e] = x0 + h;
                attn_lsh_hash(x, B, H, T, D, rot, 3, 6, b1);
                int same = memcmp(b0, b1, sizeof(int32_t) * (size_t)(B * H * 3 * T)) == 0;
                const double lp = loss_of(ctx, shx, x, shv, v, &o, r);
                x[e] = x0 - h;
                attn_lsh_hash(x, B, H, T, D, rot, 3, 6, b1);
                same = same && memcmp(b0, b1, sizeof(int32_t) * (size_t)(B * H * 3 * T)) == 0;
                const double lm = loss_of(ctx, shx, x, shv, v, &o, r);
                x[e] = x0;
                if (!same) {
                    moved++;
                    continue;
                }
                const double fd = (lp - lm) / (2.0 * (double)h), an = res[1][1][e];
                probed++;
                if (!(fabs(fd - an) <= 2e-3 + 1e-2 * fabs(fd))) {
                    bad++;
                    CHECK(0, "grad qk[%lld]: analytic %.7g, central difference %.7g", (long long)e, an, fd);
                }
            }
            CHECK(probed >= 60 && bad == 0, "%d probes, %d off, %d moved a bucket", probed, bad, moved);
        }
        free(b0);
        free(b1);
        free(rot);
    }
done:
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 3; j++) free(res[k][j]);
    attn_ctx_free(ctx);
    free(x);
    free(v);
    free(r);
    TEST_END();
}

/* Arena bytes of one forward + backward at length T. */
static size_t op_bytes(attn_ctx *ctx, int64_t T, float *x) {
    attn_ctx_reset(ctx);
    const int64_t sh[4] = {1, 1, T, 16};
    attn_tensor *q = test_leaf(ctx, 4, sh, x);
    const size_t before = attn_ctx_arena_used(ctx);
    attn_lsh_opts o;
    memset(&o, 0, sizeof o);
    o.n_hashes = 2, o.n_buckets = 32, o.chunk_len = 32, o.causal = 1, o.seed = 3;
    attn_tensor *a = attn_lsh_attention(ctx, q, q, &o);
    attn_tensor *l = a ? attn_sum(ctx, a, ATTN_ALL_AXES, 0) : NULL;
    if (!l || attn_backward(ctx, l) != ATTN_OK) return 0;
    return attn_ctx_arena_peak(ctx) - before;
}

static void memory_linear(void) {
    TEST_BEGIN("reformer: memory O(T L): no T x T matrix, linear growth in T");
    float *x = malloc(sizeof(float) * 4096 * 16);
    attn_ctx *ctx = test_ctx_new(256u << 20, 1, 0);
    if (x && ctx) {
        fill(x, 4096 * 16, 11);
        const size_t m2 = op_bytes(ctx, 2048, x), m4 = op_bytes(ctx, 4096, x);
        CHECK(m2 > 0 && m4 > 0, "run: %s", attn_ctx_error(ctx));
        /* a T x T float matrix at T = 4096 is 64 MiB */
        CHECK(m4 < (size_t)4096 * 4096 * 4 / 8, "T 4096: %zu bytes, a T x T matrix is %zu", m4,
              (size_t)4096 * 4096 * 4);
        CHECK((double)m4 < 2.2 * (double)m2, "T 2048 -> 4096: %zu -> %zu bytes (more than linear)", m2, m4);
    } else {
        CHECK(0, "setup");
    }
    attn_ctx_free(ctx);
    free(x);
    TEST_END();
}

void suite_reformer(void) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/reformer_hf.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        TEST_BEGIN("reformer: Hugging Face fixture");
        CHECK(0, "%s: %s (written by %s)", path, err, script);
        TEST_END();
    } else {
        char keys[256];
        atfx_text(atfx_find(fx, "keys"), keys, sizeof keys);
        int n = 0;
        for (char *k = strtok(keys, ","); k; k = strtok(NULL, ",")) {
            hf_case(fx, k, 0);
            hf_case(fx, k, 1);
            n++;
        }
        TEST_BEGIN("reformer: Hugging Face fixture has its cases");
        CHECK(n >= 5, "%d cases in %s", n, path);
        TEST_END();
        atfx_free(fx);
    }
    replay();
    large_ragged();
    memory_linear();
}
