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
 *     matrix and grows linearly in T;
 *   - the Reformer LM's rotary path (RoPE on the shared query-keys, then
 *     the LSH op, which hashes the rotated vectors): buckets, output and
 *     gradients against tests/fixtures/reformer_rope.atfx (torch, float64,
 *     tools/make_reformer_fixtures.py), and central differences.
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

/* ---- the rotary path: LSH(RoPE(qk), v) ------------------------------------------------ */

static const char rope_script[] = "tools/make_reformer_fixtures.py";

/* sum(LSH(RoPE(qk), v) * r) in double (for finite differences). */
static double rope_loss(attn_ctx *ctx, const int64_t *shq, const float *qk, const int64_t *shv, const float *v,
                        const attn_rope_opts *ro, const attn_lsh_opts *o, const float *r) {
    attn_ctx_reset(ctx);
    attn_tensor *a = attn_lsh_attention(ctx, attn_rope(ctx, attn_tensor_from(ctx, ATTN_F32, 4, shq, qk), ro),
                                        attn_tensor_from(ctx, ATTN_F32, 4, shv, v), o);
    if (!a) return NAN;
    double s = 0.0;
    for (int64_t i = 0; i < attn_tensor_numel(a); i++) s += (double)attn_f32(a)[i] * (double)r[i];
    return s;
}

static void rope_case(const atfx_file *fx, const char *key, int use_ref) {
    char name[160];
    snprintf(name, sizeof name, "reformer: rotary shared-QK LSH '%s' vs torch (%s kernel%s)", key,
             use_ref ? "reference" : "fast", use_ref ? ", central differences" : "");
    TEST_BEGIN(name);
    const atfx_tensor *cfg = atfx_findf(fx, "%s.cfg", key), *th = atfx_findf(fx, "%s.theta", key),
                      *qt = atfx_findf(fx, "%s.qk", key), *vt = atfx_findf(fx, "%s.v", key),
                      *rot = atfx_findf(fx, "%s.rot", key), *bk = atfx_findf(fx, "%s.buckets", key),
                      *out = atfx_findf(fx, "%s.out", key), *go = atfx_findf(fx, "%s.grad_out", key),
                      *gq = atfx_findf(fx, "%s.grad.qk", key), *gv = atfx_findf(fx, "%s.grad.v", key);
    if (!cfg || !th || !qt || !vt || !rot || !bk || !out || !go || !gq || !gv || cfg->numel != 9) {
        CHECK(0, "%s: case %s incomplete (regenerate with %s)", test_fixture_dir(), key, rope_script);
        TEST_END();
        return;
    }
    const int32_t *c = atfx_i32(cfg);
    const int64_t B = c[0], H = c[1], T = c[2], D = c[3], Dv = c[4];
    const int64_t shq[4] = {B, H, T, D}, shv[4] = {B, H, T, Dv};
    attn_ctx *ctx = test_ctx_new(64u << 20, 1, 0);
    float *qk = malloc(sizeof(float) * (size_t)qt->numel);
    int32_t *b0 = malloc(sizeof(int32_t) * (size_t)bk->numel), *b1 = malloc(sizeof(int32_t) * (size_t)bk->numel);
    if (!ctx || !qk || !b0 || !b1) {
        CHECK(0, "setup");
        goto done;
    }
    attn_ctx_set_use_ref(ctx, use_ref);
    attn_rope_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.theta = atfx_f32(th)[0];
    const atfx_tensor *rdims = atfx_findf(fx, "%s.rope_dims", key);
    if (rdims) ro.rotary_dim = atfx_i32(rdims)[0];
    attn_lsh_opts o;
    memset(&o, 0, sizeof o);
    o.n_hashes = c[5];
    o.n_buckets = c[6];
    o.chunk_len = c[7];
    o.causal = c[8];
    o.rotations = atfx_f32(rot);
    attn_tensor *q = test_leaf(ctx, 4, shq, atfx_f32(qt)), *v = test_leaf(ctx, 4, shv, atfx_f32(vt));
    attn_tensor *rq = attn_rope(ctx, q, &ro);
    attn_tensor *a = attn_lsh_attention(ctx, rq, v, &o);
    CHECK(a != NULL, "forward: %s", attn_ctx_error(ctx));
    if (!a) goto done;
    CHECK(attn_lsh_hash(attn_f32(rq), B, H, T, D, atfx_f32(rot), c[5], c[6], b0) == ATTN_OK, "hash");
    int64_t diff = 0;
    for (int64_t i = 0; i < bk->numel; i++) diff += b0[i] != atfx_i32(bk)[i];
    CHECK(diff == 0, "%lld of %lld buckets of the rotated query-keys differ from torch's", (long long)diff,
          (long long)bk->numel);
    test_allclose("output vs torch", attn_f32(a), atfx_f32(out), out->numel, 1e-5f, 1e-4f);
    CHECK_OK(attn_backward_from(ctx, a, atfx_f32(go)));
    test_allclose("grad qk (before the rotation) vs torch", q->grad, atfx_f32(gq), gq->numel, 1e-5f, 1e-4f);
    test_allclose("grad v vs torch", v->grad, atfx_f32(gv), gv->numel, 1e-5f, 1e-4f);
    if (use_ref && q->grad) {
        /* central differences of sum(out * grad_out) on every qk element, reference kernel */
        float *an = malloc(sizeof(float) * (size_t)qt->numel);
        if (!an) {
            CHECK(0, "oom");
            goto done;
        }
        memcpy(an, q->grad, sizeof(float) * (size_t)qt->numel);
        memcpy(qk, atfx_f32(qt), sizeof(float) * (size_t)qt->numel);
        const float h = 1e-3f;
        int probed = 0, moved = 0, bad = 0;
        for (int64_t e = 0; e < qt->numel; e++) {
            const float x0 = qk[e];
            double l[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                qk[e] = x0 + (sgn ? -h : h);
                l[sgn] = rope_loss(ctx, shq, qk, shv, atfx_f32(vt), &ro, &o, atfx_f32(go));
                /* the buckets of this probe (the fixture's margins make a move unlikely) */
                attn_ctx_reset(ctx);
                attn_tensor *r1 = attn_rope(ctx, attn_tensor_from(ctx, ATTN_F32, 4, shq, qk), &ro);
                if (!r1 || attn_lsh_hash(attn_f32(r1), B, H, T, D, atfx_f32(rot), c[5], c[6], b1) != ATTN_OK ||
                    memcmp(b0, b1, sizeof(int32_t) * (size_t)bk->numel))
                    moved++, sgn = 2;
            }
            qk[e] = x0;
            if (!isfinite(l[0]) || !isfinite(l[1])) continue;
            const double fd = (l[0] - l[1]) / (2.0 * (double)h);
            probed++;
            if (!(fabs(fd - an[e]) <= 2e-3 + 1e-2 * fabs(fd))) {
                bad++;
                if (bad <= 3) CHECK(0, "grad qk[%lld]: analytic %.7g, central difference %.7g", (long long)e, an[e], fd);
            }
        }
        CHECK(moved == 0 && bad == 0 && probed == qt->numel, "%d of %lld probes, %d off, %d moved a bucket", probed,
              (long long)qt->numel, bad, moved);
        free(an);
    }
done:
    attn_ctx_free(ctx);
    free(qk);
    free(b0);
    free(b1);
    TEST_END();
}

static void rope_fixture(void) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/reformer_rope.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        TEST_BEGIN("reformer: rotary fixture");
        CHECK(0, "%s: %s (written by %s)", path, err, rope_script);
        TEST_END();
        return;
    }
    char keys[256];
    atfx_text(atfx_find(fx, "keys"), keys, sizeof keys);
    int n = 0;
    for (char *k = strtok(keys, ","); k; k = strtok(NULL, ",")) {
        rope_case(fx, k, 0);
        rope_case(fx, k, 1);
        n++;
    }
    TEST_BEGIN("reformer: rotary fixture has its cases");
    CHECK(n >= 5, "%d cases in %s", n, path);
    TEST_END();
    atfx_free(fx);
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
        int32_t bk[2 * 3 * 32];
        o.buckets_out = bk;
        attn_tensor *e = attn_lsh_attention(ctx, q, q, &o);
        o.rotations = NULL, o.seed = 99, o.buckets_out = NULL;
        attn_tensor *d = attn_lsh_attention(ctx, q, q, &o);
        o.buckets_in = bk; /* the buckets of seed 1234, whatever the seed */
        attn_tensor *f = attn_lsh_attention(ctx, q, q, &o);
        CHECK(e && f && memcmp(attn_f32(e), attn_f32(a), sizeof(float) * (size_t)(B * H * T * D)) == 0 &&
                  memcmp(attn_f32(f), attn_f32(a), sizeof(float) * (size_t)(B * H * T * D)) == 0,
              "buckets_out / buckets_in do not replay the output");

        CHECK(a && b && d, "forward: %s", attn_ctx_error(ctx));
        if (a && b && d) {
            const size_t n = sizeof(float) * (size_t)(B * H * T * D);
            CHECK(memcmp(attn_f32(a), attn_f32(b), n) == 0, "seeded and explicit rotations differ");
            CHECK(memcmp(attn_f32(a), attn_f32(d), n) != 0, "another seed gave the same output");
        }
        bk[3] = 8;
        test_expect_fail(ctx, attn_lsh_attention(ctx, q, q, &o) == NULL, ATTN_ERR_INVALID_ARG,
                         "buckets_in[3] = 8", "bucket out of range");
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

/* ---- reversible layers ------------------------------------------------------------- */

/* F: LSH attention of [B, T, E] (H heads of D, projections qk, v, out, dropout
 * on its output); G: the feed-forward W2 relu(W1 y + b1) + b2, dropout on the
 * hidden layer, applied to chunks of 3 positions. */
typedef struct rev_model {
    int64_t B, T, E, H, D, F;
    attn_params *ps;
    attn_tensor **w; /* per layer: qk, v, o, w1, b1, w2, b2 */
    float drop;
    int cache;        /* reversible run: F keeps its buckets from the forward for the recompute */
    int32_t *buckets; /* [L][B H R T] */
} rev_model;

static attn_tensor *rev_f(attn_ctx *ctx, void *user, int l, attn_tensor *x) {
    rev_model *m = user;
    attn_tensor **w = m->w + 7 * l;
    attn_tensor *qk = heads(ctx, x, w[0], m->B, m->T, m->H, m->D), *v = heads(ctx, x, w[1], m->B, m->T, m->H, m->D);
    attn_lsh_opts o;
    memset(&o, 0, sizeof o);
    o.n_hashes = 2, o.n_buckets = 4, o.chunk_len = 4, o.causal = 1, o.seed = 100 + (uint64_t)l;
    if (m->cache) {
        /* the forward runs without gradients: it hashes and keeps the buckets;
         * the recompute of the backward (gradients on) reuses them */
        int32_t *b = m->buckets + (int64_t)l * m->B * m->H * 2 * m->T;
        if (attn_ctx_grad_enabled(ctx)) o.buckets_in = b;
        else o.buckets_out = b;
    }
    attn_tensor *a = attn_lsh_attention(ctx, qk, v, &o);
    a = attn_reshape(ctx, attn_contiguous(ctx, attn_permute(ctx, a, (int[]){0, 2, 1, 3})), 3,
                     (int64_t[]){m->B, m->T, m->H * m->D});
    return attn_dropout(ctx, attn_linear(ctx, a, w[2], NULL), m->drop);
}

static attn_tensor *rev_ff(attn_ctx *ctx, void *user, int l, attn_tensor *y) {
    rev_model *m = user;
    attn_tensor **w = m->w + 7 * l;
    attn_tensor *h = attn_dropout(ctx, attn_relu(ctx, attn_linear(ctx, y, w[3], w[4])), m->drop);
    return attn_linear(ctx, h, w[5], w[6]);
}

static attn_tensor *rev_g(attn_ctx *ctx, void *user, int l, attn_tensor *y) {
    return attn_chunked_apply(ctx, y, 1, 3, rev_ff, user, l);
}

static int rev_model_new(rev_model *m, int L) {
    memset(m, 0, sizeof *m);
    m->B = 2, m->T = 8, m->E = 6, m->H = 2, m->D = 3, m->F = 10, m->drop = 0.1f;
    if (attn_params_new(&m->ps) != ATTN_OK) return -1;
    m->w = calloc((size_t)(7 * L), sizeof *m->w);
    m->buckets = calloc((size_t)(L * m->B * m->H * 2 * m->T), sizeof *m->buckets);
    if (!m->w || !m->buckets) return -1;
    attn_rng rng;
    attn_rng_init(&rng, 77);
    for (int l = 0; l < L; l++) {
        const int64_t HD = m->H * m->D;
        const int64_t sh[7][2] = {{HD, m->E}, {HD, m->E}, {m->E, HD}, {m->F, m->E}, {m->F, 0}, {m->E, m->F}, {m->E, 0}};
        for (int j = 0; j < 7; j++) {
            char name[32];
            snprintf(name, sizeof name, "l%d.w%d", l, j);
            if (attn_params_add(m->ps, name, sh[j][1] ? 2 : 1, sh[j], &m->w[7 * l + j]) != ATTN_OK) return -1;
            attn_init_normal(m->w[7 * l + j], 0.15f, &rng);
        }
    }
    return 0;
}

static void rev_model_free(rev_model *m) {
    attn_params_free(m->ps);
    free(m->w);
    free(m->buckets);
}

/* All parameter gradients, concatenated (malloc'ed). */
static float *param_grads(const rev_model *m, int64_t *n) {
    *n = attn_params_numel(m->ps);
    float *g = malloc(sizeof(float) * (size_t)*n);
    if (!g) return NULL;
    int64_t k = 0;
    for (int i = 0; i < attn_params_count(m->ps); i++) {
        const attn_tensor *t = attn_params_at(m->ps, i);
        const int64_t c = attn_tensor_numel(t);
        memcpy(g + k, t->grad, sizeof(float) * (size_t)c);
        k += c;
    }
    return g;
}

/* One run of L layers, reversible or plain, in a fresh context; returns the
 * arena high-water mark (0 on failure) and fills y1, y2, dx1, dx2, the
 * parameter gradients (*pg, malloc'ed) and, reversible, the recomputed inputs. */
static size_t rev_run(int L, int reversible, float *y1o, float *y2o, float *dx1, float *dx2,
                      float **pg, float *x1r, float *x2r) {
    rev_model m;
    size_t peak = 0;
    *pg = NULL;
    attn_ctx *ctx = test_ctx_new(64u << 20, 1, 0);
    memset(&m, 0, sizeof m);
    if (!ctx || rev_model_new(&m, L)) {
        CHECK(0, "setup");
        rev_model_free(&m);
        attn_ctx_free(ctx);
        return 0;
    }
    const int64_t sh[3] = {m.B, m.T, m.E}, n = m.B * m.T * m.E;
    float x1[96], x2[96], r1[96], r2[96];
    fill(x1, n, 21);
    fill(x2, n, 22);
    fill(r1, n, 23);
    fill(r2, n, 24);
    attn_ctx_set_rng(ctx, 5, 1000);
    attn_params_zero_grad(m.ps);
    if (reversible) {
        attn_rev_stack s;
        attn_tensor *y1, *y2;
        m.cache = 1;
        CHECK_OK(attn_rev_stack_init(&s, L, rev_f, rev_g, &m));
        attn_tensor *a = attn_tensor_from(ctx, ATTN_F32, 3, sh, x1), *b = attn_tensor_from(ctx, ATTN_F32, 3, sh, x2);
        if (attn_rev_forward(ctx, &s, a, b, &y1, &y2) == ATTN_OK) {
            memcpy(y1o, attn_f32(y1), sizeof(float) * (size_t)n);
            memcpy(y2o, attn_f32(y2), sizeof(float) * (size_t)n);
            if (attn_rev_backward(ctx, &s, y1, y2, r1, r2, dx1, dx2, x1r, x2r) == ATTN_OK)
                peak = attn_ctx_arena_peak(ctx);
        }
        CHECK(peak > 0, "reversible run: %s", attn_ctx_error(ctx));
        attn_rev_stack_free(&s);
    } else {
        attn_tensor *a = test_leaf(ctx, 3, sh, x1), *b = test_leaf(ctx, 3, sh, x2), *y1 = a, *y2 = b;
        for (int l = 0; l < L; l++) {
            y1 = attn_add(ctx, y1, rev_f(ctx, &m, l, y2));
            y2 = attn_add(ctx, y2, rev_g(ctx, &m, l, y1));
        }
        attn_tensor *loss = attn_add(ctx, test_dot_loss(ctx, y1, r1), test_dot_loss(ctx, y2, r2));
        if (loss && attn_backward(ctx, loss) == ATTN_OK) {
            memcpy(y1o, attn_f32(attn_contiguous(ctx, y1)), sizeof(float) * (size_t)n);
            memcpy(y2o, attn_f32(attn_contiguous(ctx, y2)), sizeof(float) * (size_t)n);
            memcpy(dx1, a->grad, sizeof(float) * (size_t)n);
            memcpy(dx2, b->grad, sizeof(float) * (size_t)n);
            peak = attn_ctx_arena_peak(ctx);
        }
        CHECK(peak > 0, "plain run: %s", attn_ctx_error(ctx));
    }
    int64_t np;
    if (peak) *pg = param_grads(&m, &np);
    rev_model_free(&m);
    attn_ctx_free(ctx);
    return peak;
}

static void reversible_vs_plain(void) {
    TEST_BEGIN("reformer: reversible stack (LSH attention F, chunked FF G, dropout) = the plain stack; memory flat in depth");
    enum { N = 2 * 8 * 6 };
    float y1[2][N], y2[2][N], dx1[2][N], dx2[2][N], x1r[N], x2r[N], x1[N], x2[N];
    size_t peak[2][2] = {{0}};
    const int depth[2] = {2, 12};
    fill(x1, N, 21);
    fill(x2, N, 22);
    for (int d = 0; d < 2; d++) {
        float *pg[2];
        for (int rv = 0; rv < 2; rv++)
            peak[d][rv] = rev_run(depth[d], rv, y1[rv], y2[rv], dx1[rv], dx2[rv], &pg[rv], x1r, x2r);
        if (peak[d][0] && peak[d][1] && pg[0] && pg[1]) {
            rev_model m;
            int64_t np = 0;
            if (rev_model_new(&m, depth[d]) == 0) np = attn_params_numel(m.ps);
            rev_model_free(&m);
            char what[96];
            snprintf(what, sizeof what, "%d layers: y1 reversible vs plain", depth[d]);
            test_allclose(what, y1[1], y1[0], N, 1e-5f, 1e-4f);
            snprintf(what, sizeof what, "%d layers: y2 reversible vs plain", depth[d]);
            test_allclose(what, y2[1], y2[0], N, 1e-5f, 1e-4f);
            snprintf(what, sizeof what, "%d layers: dx1 reversible vs plain", depth[d]);
            test_allclose(what, dx1[1], dx1[0], N, 1e-5f, 1e-4f);
            snprintf(what, sizeof what, "%d layers: dx2 reversible vs plain", depth[d]);
            test_allclose(what, dx2[1], dx2[0], N, 1e-5f, 1e-4f);
            snprintf(what, sizeof what, "%d layers: parameter gradients reversible vs plain", depth[d]);
            test_allclose(what, pg[1], pg[0], np, 1e-5f, 1e-4f);
            snprintf(what, sizeof what, "%d layers: x1 recomputed from the outputs", depth[d]);
            test_allclose(what, x1r, x1, N, 1e-5f, 1e-4f);
            snprintf(what, sizeof what, "%d layers: x2 recomputed from the outputs", depth[d]);
            test_allclose(what, x2r, x2, N, 1e-5f, 1e-4f);
        }
        free(pg[0]);
        free(pg[1]);
    }
    /* activation memory (arena high-water mark): flat for the reversible
     * stack, growing with depth for the plain one (the parameters live
     * outside the arena) */
    CHECK(peak[1][1] <= peak[0][1] + 4096, "reversible: %zu bytes at 2 layers, %zu at 12", peak[0][1], peak[1][1]);
    CHECK(peak[1][0] > 4 * peak[0][0], "plain: %zu bytes at 2 layers, %zu at 12 (expected growth)", peak[0][0], peak[1][0]);
    TEST_END();
}

static attn_tensor *ff_only(attn_ctx *ctx, void *user, int l, attn_tensor *y) { return rev_ff(ctx, user, l, y); }

static void chunked_equal(void) {
    TEST_BEGIN("reformer: chunked feed-forward = the feed-forward (values and gradients)");
    rev_model m;
    memset(&m, 0, sizeof m);
    attn_ctx *ctx = test_ctx_new(16u << 20, 1, 0);
    if (!ctx || rev_model_new(&m, 1)) {
        CHECK(0, "setup");
        rev_model_free(&m);
        attn_ctx_free(ctx);
        TEST_END();
        return;
    }
    m.drop = 0.0f;
    enum { N = 2 * 8 * 6 };
    float x[N], r[N], out[2][N], gx[2][N];
    fill(x, N, 31);
    fill(r, N, 32);
    const int64_t sh[3] = {m.B, m.T, m.E};
    for (int k = 0; k < 2; k++) {
        attn_ctx_reset(ctx);
        attn_tensor *xt = test_leaf(ctx, 3, sh, x);
        attn_tensor *y = k ? attn_chunked_apply(ctx, xt, 1, 3, ff_only, &m, 0) : ff_only(ctx, &m, 0, xt);
        attn_tensor *l = test_dot_loss(ctx, y, r);
        CHECK(l && attn_backward(ctx, l) == ATTN_OK, "run: %s", attn_ctx_error(ctx));
        if (!l) break;
        memcpy(out[k], attn_f32(attn_contiguous(ctx, y)), sizeof out[k]);
        memcpy(gx[k], xt->grad, sizeof gx[k]);
    }
    test_allclose("chunked vs whole output", out[1], out[0], N, 1e-6f, 1e-6f);
    test_allclose("chunked vs whole grad", gx[1], gx[0], N, 1e-6f, 1e-6f);
    /* without gradients (a reversible forward): same values, and the peak is
     * one chunk's hidden layer, not the whole sequence's */
    {
        enum { T2 = 64 };
        static float x2[2 * T2 * 6], o2[3][2 * T2 * 6];
        size_t peak[3] = {0, 0, 0};
        fill(x2, 2 * T2 * 6, 33);
        m.drop = 0.1f;
        /* 0: whole, no gradients; 1: chunks of 4, no gradients; 2: chunks of 4, recorded */
        for (int k = 0; k < 3; k++) {
            attn_ctx *c2 = test_ctx_new(16u << 20, 1, 0);
            if (!c2) break;
            attn_ctx_set_grad_enabled(c2, k == 2);
            attn_ctx_set_rng(c2, 9, 0);
            attn_tensor *xt2 = attn_tensor_from(c2, ATTN_F32, 3, (int64_t[]){2, T2, 6}, x2);
            const size_t before = attn_ctx_arena_used(c2);
            attn_tensor *y = attn_chunked_apply(c2, xt2, 1, k ? 4 : T2, ff_only, &m, 0);
            y = attn_contiguous(c2, y);
            CHECK(y != NULL, "chunked run %d: %s", k, attn_ctx_error(c2));
            if (y) {
                memcpy(o2[k], attn_f32(y), sizeof o2[k]);
                peak[k] = attn_ctx_arena_peak(c2) - before;
            }
            attn_ctx_free(c2);
        }
        test_allclose("chunked: no-grad vs recorded output (dropout replayed per chunk)", o2[1], o2[2],
                      2 * T2 * 6, 0.0f, 0.0f);
        CHECK(peak[1] > 0 && 2 * peak[1] < peak[0], "no-grad peak: chunks of 4 %zu bytes, whole %zu", peak[1], peak[0]);
        m.drop = 0.0f;
    }
    attn_tensor *xt = test_leaf(ctx, 3, sh, x);
    test_expect_fail(ctx, attn_chunked_apply(ctx, xt, 1, 0, ff_only, &m, 0) == NULL, ATTN_ERR_INVALID_ARG,
                     "chunk 0", "chunk 0");
    xt = test_leaf(ctx, 3, sh, x);
    test_expect_fail(ctx, attn_chunked_apply(ctx, xt, 5, 2, ff_only, &m, 0) == NULL, ATTN_ERR_INVALID_ARG,
                     "axis", "axis 5");
    attn_rev_stack s;
    CHECK(attn_rev_stack_init(&s, 0, rev_f, rev_g, &m) == ATTN_ERR_INVALID_ARG, "0 layers accepted");
    rev_model_free(&m);
    attn_ctx_free(ctx);
    TEST_END();
}

static attn_tensor *bad_shape(attn_ctx *ctx, void *user, int l, attn_tensor *x) {
    (void)user, (void)l;
    return attn_sum(ctx, x, 0, 0);
}

static void reversible_errors_and_tape(void) {
    TEST_BEGIN("reformer: reversible errors; a tape recorded before attn_rev_backward survives it");
    rev_model m;
    memset(&m, 0, sizeof m);
    attn_ctx *ctx = test_ctx_new(16u << 20, 1, 0);
    attn_rev_stack s, bad;
    memset(&s, 0, sizeof s);
    memset(&bad, 0, sizeof bad);
    if (!ctx || rev_model_new(&m, 2) || attn_rev_stack_init(&s, 2, rev_f, rev_g, &m) ||
        attn_rev_stack_init(&bad, 1, bad_shape, rev_g, &m)) {
        CHECK(0, "setup");
    } else {
        m.cache = 1;
        enum { N = 2 * 8 * 6 };
        const int64_t sh[3] = {2, 8, 6};
        float x[N], r[N], d1[N], d2[N];
        fill(x, N, 41);
        fill(r, N, 42);
        attn_tensor *a = attn_tensor_from(ctx, ATTN_F32, 3, sh, x), *b, *y1, *y2;
        test_expect_fail(ctx, attn_rev_forward(ctx, &bad, a, a, &y1, &y2) != ATTN_OK, ATTN_ERR_SHAPE,
                         "expected the input's shape", "F of another shape");
        a = attn_tensor_from(ctx, ATTN_F32, 3, sh, x);
        b = attn_tensor_from(ctx, ATTN_F32, 2, (int64_t[]){16, 6}, x);
        test_expect_fail(ctx, attn_rev_forward(ctx, &s, a, b, &y1, &y2) != ATTN_OK, ATTN_ERR_SHAPE,
                         "two f32 tensors of one shape", "halves of different shapes");
        a = attn_tensor_from(ctx, ATTN_F32, 3, sh, x);
        CHECK_OK(attn_rev_forward(ctx, &s, a, a, &y1, &y2));
        attn_ctx_set_grad_enabled(ctx, 0);
        test_expect_fail(ctx, attn_rev_backward(ctx, &s, y1, y2, r, r, d1, d2, NULL, NULL) != ATTN_OK,
                         ATTN_ERR_STATE, "disabled", "backward without gradients");
        attn_ctx_set_grad_enabled(ctx, 1);
        /* the usual use: a head recorded on the stack's outputs */
        a = attn_tensor_from(ctx, ATTN_F32, 3, sh, x);
        CHECK_OK(attn_rev_forward(ctx, &s, a, a, &y1, &y2));
        attn_tensor *h = test_leaf(ctx, 3, sh, attn_f32(y1));
        attn_tensor *loss = test_dot_loss(ctx, h, r);
        const int tape = attn_ctx_tape_size(ctx);
        CHECK_OK(attn_rev_backward(ctx, &s, y1, y2, r, r, d1, d2, NULL, NULL));
        CHECK(attn_ctx_tape_size(ctx) == tape, "tape size %d after, %d before", attn_ctx_tape_size(ctx), tape);
        CHECK_OK(attn_backward(ctx, loss));
        if (h->grad) test_allclose("head gradient after the reversible backward", h->grad, r, N, 0.0f, 0.0f);
    }
    attn_rev_stack_free(&s);
    attn_rev_stack_free(&bad);
    rev_model_free(&m);
    attn_ctx_free(ctx);
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
    rope_fixture();
    replay();
    large_ragged();
    memory_linear();
    reversible_vs_plain();
    reversible_errors_and_tape();
    chunked_equal();
}
