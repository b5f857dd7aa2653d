/* test_flash.c: the fused attention op attn_flash_sdpa (suite "flash"). The
 * PyTorch parity, finite differences, reference kernel, arena exhaustion and
 * error paths run in the ops suite (tests/fixtures/flash_sdpa.atfx, the cases
 * of sdpa.atfx). This suite checks the fused op against the reference op
 * attn_sdpa through the public API, on random inputs:
 *
 *   - output and the gradients of q, k, v (and bias) at ragged sizes: T, S in
 *     {1, 7, 65, 1000} (T = S = 1000 forward and backward once, causal),
 *     D in {16, 64, 80, 128}, Dv != D, under every mask: none, causal with
 *     T < S and T > S, causal window, symmetric window, key_lengths with a 0,
 *     bias [1,H,T,S] with -inf and [T,S] (gradient summed), GQA, MQA,
 *     dropout (same stream: the mask must be the reference's);
 *   - rows without a visible key: output and gradients exactly 0;
 *   - the weights recovered from the saved row statistics equal attn_sdpa's;
 *   - the property suite (test_property): 160 random cases (shapes, every
 *     mask, GQA, dropout, biases from -inf, -1e9, -FLT_MAX, +-1e4, whole
 *     masked rows, logits in the thousands, NaN in the padding beyond
 *     key_lengths, a random block-sparse pattern in a third of the cases,
 *     sparse.h) and 80 bf16 forward cases against attn_sdpa;
 *   - the bf16 backward (ATTN_PRECISION_BF16 on f32 inputs, test_bf16_backward):
 *     dq, dk, dv, dbias within the derived per-element bound of the f32
 *     reference on random cases of every mask, in each kernel variant; the
 *     bound must be used (> 1%) where the bf16 kernels exist and must catch
 *     a dropped key tile (dQ) and query tile (dV); 1 vs 2 threads bitwise;
 *   - 1 vs 2 threads: bitwise equal outputs and gradients (with one kv
 *     head and batch 1 the backward splits over query chunks per thread:
 *     dK, dV then repeat bitwise for a thread count and agree within the
 *     tolerance across counts);
 *   - memory: forward + backward of B1 H1 T = S = 4096 D 64 keeps the arena
 *     peak above the inputs, outputs and gradients within O(S D) per
 *     thread: the forward's staged K, V of one kv head per thread, the
 *     backward's staged K, V and dK/dV accumulators per thread ((S + 128) x
 *     896 floats with 2 threads) plus 1 MiB of tiles, under T S / 4 floats (the
 *     reference op needs 2 T S floats: P and the logits' gradient).
 *
 * Tolerance (|a - b| <= atol + rtol |ref|): FLASH_ATOL 2e-5, FLASH_RTOL 1e-4
 * on outputs and gradients. Both ops round to float32 differently (online
 * rescaling, float partial sums over 64-key tiles vs the GEMM); measured
 * worst differences are reported by the verbose run; a missing rescale by
 * exp(m_old - m_new), a wrong D_i, or the top-left causal diagonal each
 * exceed it by orders of magnitude.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "../src/ops/flash_sdpa_internal.h"

#define FLASH_ATOL 2e-5f
#define FLASH_RTOL 1e-4f
#define WEIGHTS_ATOL 1e-6f
#define WEIGHTS_RTOL 1e-4f

typedef struct fcfg {
    const char *label;
    int64_t B, H, Hkv, T, S, D, Dv;
    int causal;
    int64_t window;
    float dropout;
    int bias; /* 0 none, 1 [1,H,T,S] with -inf, 2 [T,S] */
    int has_kl;
    int32_t kl[2];
    int backward;
} fcfg;

typedef struct fres {
    float *out, *g[4], *w;
    int64_t n_out, n[4], n_w;
} fres;

static void fres_free(fres *r) {
    free(r->out);
    free(r->w);
    for (int i = 0; i < 4; i++) free(r->g[i]);
    memset(r, 0, sizeof *r);
}

static float *dup(const float *x, int64_t n) {
    float *y = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (y && x) memcpy(y, x, sizeof(float) * (size_t)n);
    if (y && !x) memset(y, 0, sizeof(float) * (size_t)n);
    return y;
}

/* Input i of case c (0 q, 1 k, 2 v, 3 bias): its shape (*nd dims), n =
 * its size, and its values drawn from rng (the [1,H,T,S] bias with -inf at
 * every fifth element); malloc'd, NULL when out of memory. */
static float *make_input(const fcfg *c, int i, attn_rng *rng, int *nd, int64_t shape[4],
                         int64_t *n) {
    const int64_t sh[4][4] = {{c->B, c->H, c->T, c->D},
                              {c->B, c->Hkv, c->S, c->D},
                              {c->B, c->Hkv, c->S, c->Dv},
                              {1, c->H, c->T, c->S}};
    *nd = i == 3 && c->bias == 2 ? 2 : 4;
    if (*nd == 2) {
        shape[0] = c->T, shape[1] = c->S;
    } else {
        memcpy(shape, sh[i], sizeof sh[i]);
    }
    *n = 1;
    for (int j = 0; j < *nd; j++) *n *= shape[j];
    float *buf = malloc(sizeof(float) * (size_t)*n);
    if (!buf) return NULL;
    test_fill_normal(buf, *n, rng);
    if (i == 3 && c->bias == 1)
        for (int64_t j = 0; j < *n; j += 5) buf[j] = -INFINITY;
    return buf;
}

/* The options of case c with the given bias tensor. */
static attn_sdpa_opts case_opts(attn_ctx *ctx, const fcfg *c, attn_tensor *bias) {
    attn_sdpa_opts o = {0};
    o.causal = c->causal;
    o.window = c->window;
    o.dropout = c->dropout;
    o.bias = bias;
    if (c->has_kl) o.key_lengths = attn_tensor_from(ctx, ATTN_I32, 1, &c->B, c->kl);
    return o;
}

/* Runs one op (flash or reference) on the inputs of seed; fills r. */
static int run_op(attn_ctx *ctx, const fcfg *c, int flash, int want_w, fres *r) {
    memset(r, 0, sizeof *r);
    attn_ctx_reset(ctx);
    attn_ctx_set_rng(ctx, 99, 5);
    attn_rng rng;
    attn_rng_init(&rng, 1234);
    attn_tensor *x[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4; i++) {
        if (i == 3 && !c->bias) break;
        int nd;
        int64_t shape[4], n;
        float *buf = make_input(c, i, &rng, &nd, shape, &n);
        if (!buf) return -1;
        x[i] = test_leaf(ctx, nd, shape, buf);
        free(buf);
        if (!x[i]) return -1;
        r->n[i] = n;
    }
    const attn_sdpa_opts o = case_opts(ctx, c, x[3]);
    attn_tensor *w = NULL;
    attn_tensor *y = flash ? attn_flash_sdpa(ctx, x[0], x[1], x[2], &o, want_w ? &w : NULL)
                           : attn_sdpa(ctx, x[0], x[1], x[2], &o, want_w ? &w : NULL);
    CHECK(y != NULL, "%s: %s failed: %s", c->label, flash ? "flash" : "sdpa", attn_last_error());
    if (!y) return -1;
    r->n_out = attn_tensor_numel(y);
    r->out = dup(attn_f32(y), r->n_out);
    if (w) {
        r->n_w = attn_tensor_numel(w);
        r->w = dup(attn_f32(w), r->n_w);
    }
    if (c->backward) {
        float *gy = malloc(sizeof(float) * (size_t)r->n_out);
        if (!gy) return -1;
        test_fill_normal(gy, r->n_out, &rng);
        attn_status st = attn_backward_from(ctx, y, gy);
        free(gy);
        CHECK(st == ATTN_OK, "%s: backward: %s", c->label, attn_last_error());
        for (int i = 0; i < 4; i++)
            if (x[i]) r->g[i] = dup(x[i]->grad, r->n[i]);
    }
    return 0;
}

static const char *gname[4] = {"dq", "dk", "dv", "dbias"};

static void compare_cfg(attn_ctx *ctx, const fcfg *c) {
    char tname[160];
    snprintf(tname, sizeof tname, "flash/vs sdpa: %s", c->label);
    TEST_BEGIN(tname);
    fres a = {0}, b = {0};
    if (run_op(ctx, c, 1, 1, &a) == 0 && run_op(ctx, c, 0, 1, &b) == 0) {
        char what[200];
        snprintf(what, sizeof what, "%s: out", c->label);
        test_allclose(what, a.out, b.out, a.n_out, FLASH_ATOL, FLASH_RTOL);
        snprintf(what, sizeof what, "%s: weights", c->label);
        if (a.w && b.w) test_allclose(what, a.w, b.w, a.n_w, WEIGHTS_ATOL, WEIGHTS_RTOL);
        for (int i = 0; i < 4 && c->backward; i++) {
            if (!b.g[i]) continue;
            snprintf(what, sizeof what, "%s: %s", c->label, gname[i]);
            CHECK(a.g[i] != NULL, "%s missing", what);
            if (a.g[i]) test_allclose(what, a.g[i], b.g[i], a.n[i], FLASH_ATOL, FLASH_RTOL);
        }
    }
    fres_free(&a);
    fres_free(&b);
    TEST_END();
}

static void test_against_sdpa(void) {
    attn_ctx *ctx = test_ctx_new((size_t)256 << 20, 1, 0);
    if (!ctx) return;
    static const int64_t sizes[4] = {1, 7, 65, 1000};
    static const int64_t dims[4] = {16, 64, 80, 128};
    /* every (T, S) pair of the ragged sizes below 1000, the D values in turn */
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            for (int causal = 0; causal < 2; causal++) {
                char label[96];
                const int64_t D = dims[(i * 3 + j + causal) % 4];
                snprintf(label, sizeof label, "T%lld S%lld D%lld causal %d", (long long)sizes[i],
                         (long long)sizes[j], (long long)D, causal);
                fcfg c = {label, 2, 2, 2, sizes[i], sizes[j], D, D, causal, 0, 0.0f, 0, 0,
                          {0, 0}, 1};
                compare_cfg(ctx, &c);
            }
    const fcfg cases[] = {
        {"T65 S65 D128 Dv80, causal window 9", 1, 2, 2, 65, 65, 128, 80, 1, 9, 0, 0, 0, {0, 0}, 1},
        {"T7 S65 D64, symmetric window 5", 2, 2, 2, 7, 65, 64, 64, 0, 5, 0, 0, 0, {0, 0}, 1},
        {"T65 S7 D16 causal (early rows see nothing)", 1, 2, 2, 65, 7, 16, 16, 1, 0, 0, 0, 0,
         {0, 0}, 1},
        {"key_lengths [40, 0], T65 S65 D80", 2, 2, 2, 65, 65, 80, 80, 0, 0, 0, 0, 1, {40, 0}, 1},
        {"key_lengths [3, 65] causal", 2, 2, 1, 65, 65, 16, 16, 1, 0, 0, 0, 1, {3, 65}, 1},
        {"bias [1,H,T,S] with -inf, T65 S70", 2, 2, 2, 65, 70, 64, 64, 0, 0, 0, 1, 0, {0, 0}, 1},
        {"bias [T,S] causal window 20", 2, 2, 2, 65, 65, 16, 16, 1, 20, 0, 2, 0, {0, 0}, 1},
        {"GQA H4 Hkv2 causal T65 S130", 2, 4, 2, 65, 130, 64, 64, 1, 0, 0, 0, 0, {0, 0}, 1},
        {"MQA H4 Hkv1 T7 S65 Dv 16", 1, 4, 1, 7, 65, 80, 16, 0, 0, 0, 0, 0, {0, 0}, 1},
        {"MQA B1 H3 Hkv1 T300 S260 bias [T,S] (backward split in chunks)", 1, 3, 1, 300, 260, 64,
         32, 1, 0, 0, 2, 0, {0, 0}, 1},
        {"dropout 0.3 GQA causal T65 S65", 2, 4, 2, 65, 65, 16, 16, 1, 0, 0.3f, 0, 0, {0, 0}, 1},
        {"T1000 S1000 D64 causal", 1, 1, 1, 1000, 1000, 64, 64, 1, 0, 0, 0, 0, {0, 0}, 1},
        {"T1000 S7 D128 forward", 1, 2, 2, 1000, 7, 128, 128, 0, 0, 0, 0, 0, {0, 0}, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) compare_cfg(ctx, &cases[i]);
    attn_ctx_free(ctx);
}

/* Rows without a visible key: exactly 0 out, 0 gradient through them. */
static void test_empty_rows(void) {
    TEST_BEGIN("flash/rows without a visible key give zeros");
    attn_ctx *ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    if (ctx) {
        /* batch 1 has key_lengths 0; causal T > S: the first T - S rows see nothing */
        const fcfg c = {"empty", 2, 2, 2, 9, 4, 16, 16, 1, 0, 0, 0, 1, {4, 0}, 1};
        fres r;
        if (run_op(ctx, &c, 1, 1, &r) == 0) {
            int bad = 0;
            for (int64_t b = 0; b < 2; b++)
                for (int64_t h = 0; h < 2; h++)
                    for (int64_t t = 0; t < 9; t++) {
                        const int empty = b == 1 || t < 5;
                        for (int64_t e = 0; e < 16; e++) {
                            const float o = r.out[((b * 2 + h) * 9 + t) * 16 + e];
                            const float g = r.g[0][((b * 2 + h) * 9 + t) * 16 + e];
                            if (empty && (o != 0.0f || g != 0.0f)) bad++;
                            if (!isfinite(o) || !isfinite(g)) bad++;
                        }
                        for (int64_t s = 0; s < 4; s++)
                            if (empty && r.w[((b * 2 + h) * 9 + t) * 4 + s] != 0.0f) bad++;
                    }
            for (int64_t i = r.n[1] / 2; i < r.n[1]; i++) bad += r.g[1][i] != 0.0f || r.g[2][i] != 0.0f;
            CHECK(bad == 0, "%d nonzero or non-finite values in rows without keys", bad);
        }
        fres_free(&r);
        attn_ctx_free(ctx);
    }
    TEST_END();
}

static void test_threads(void) {
    TEST_BEGIN("flash/1 vs 2 threads bitwise");
    attn_ctx *c1 = test_ctx_new((size_t)128 << 20, 1, 0), *c2 = test_ctx_new((size_t)128 << 20, 2, 0);
    if (c1 && c2) {
        const fcfg cs[3] = {
            {"threads bias", 2, 4, 2, 200, 150, 64, 48, 1, 0, 0.0f, 2, 1, {150, 77}, 1},
            {"threads dropout", 2, 2, 2, 130, 130, 32, 32, 0, 40, 0.2f, 0, 0, {0, 0}, 1},
            /* one kv head, batch 1: with 2 threads the backward splits the
             * unit's query tiles in 2 chunks, so 1 vs 2 threads differ in
             * the last bits of dK, dV (checked below: close, and repeatable) */
            {"threads MQA B1 split", 1, 3, 1, 300, 260, 64, 64, 1, 0, 0.0f, 0, 0, {0, 0}, 1},
        };
        for (int k = 0; k < 3; k++) {
            if (k == 2) {
                fres a = {0}, b = {0}, c = {0};
                if (run_op(c1, &cs[k], 1, 0, &a) == 0 && run_op(c2, &cs[k], 1, 0, &b) == 0 &&
                    run_op(c2, &cs[k], 1, 0, &c) == 0) {
                    CHECK(memcmp(a.out, b.out, sizeof(float) * (size_t)a.n_out) == 0,
                          "%s: out differs", cs[k].label);
                    for (int i = 0; i < 3; i++) {
                        CHECK(memcmp(b.g[i], c.g[i], sizeof(float) * (size_t)b.n[i]) == 0,
                              "%s: %s differs between two 2-thread runs", cs[k].label, gname[i]);
                        test_allclose(gname[i], b.g[i], a.g[i], a.n[i], FLASH_ATOL, FLASH_RTOL);
                    }
                }
                fres_free(&a), fres_free(&b), fres_free(&c);
                continue;
            }
            fres a = {0}, b = {0};
            if (run_op(c1, &cs[k], 1, 0, &a) == 0 && run_op(c2, &cs[k], 1, 0, &b) == 0) {
                CHECK(memcmp(a.out, b.out, sizeof(float) * (size_t)a.n_out) == 0, "%s: out differs",
                      cs[k].label);
                for (int i = 0; i < 4; i++)
                    if (a.g[i])
                        CHECK(b.g[i] && memcmp(a.g[i], b.g[i], sizeof(float) * (size_t)a.n[i]) == 0,
                              "%s: %s differs", cs[k].label, gname[i]);
            }
            fres_free(&a);
            fres_free(&b);
        }
    }
    if (c1) attn_ctx_free(c1);
    if (c2) attn_ctx_free(c2);
    TEST_END();
}

/* Arena peak of forward + backward at T = S = 4096, over the bytes of the
 * inputs, outputs, their gradients and the saved row statistics. */
static void test_memory(void) {
    TEST_BEGIN("flash/T = S = 4096: extra memory O(T), not O(T S)");
    const int64_t T = 4096, D = 64;
    attn_ctx *ctx = test_ctx_new((size_t)64 << 20, 2, 0);
    if (ctx) {
        const int64_t sh[4] = {1, 1, T, D};
        float *buf = malloc(sizeof(float) * (size_t)(T * D));
        attn_rng rng;
        attn_rng_init(&rng, 5);
        if (buf) {
            test_fill_normal(buf, T * D, &rng);
            attn_tensor *q = test_leaf(ctx, 4, sh, buf), *k = test_leaf(ctx, 4, sh, buf),
                        *v = test_leaf(ctx, 4, sh, buf);
            const size_t base = attn_ctx_arena_used(ctx);
            attn_sdpa_opts o = {0};
            o.causal = 1;
            attn_tensor *y = attn_flash_sdpa(ctx, q, k, v, &o, NULL);
            CHECK(y != NULL, "flash_sdpa: %s", attn_last_error());
            if (y) CHECK_OK(attn_backward_from(ctx, y, buf));
            const size_t peak = attn_ctx_arena_peak(ctx) - base;
            /* out + 3 gradients + out's gradient: 5 T D floats, the row
             * statistics (m, 1 / l) 2 T floats */
            const size_t needed = sizeof(float) * (size_t)(5 * T * D + 2 * T);
            const size_t extra = peak > needed ? peak - needed : 0;
            const size_t ts = sizeof(float) * (size_t)(T * T);
            if (test__verbose)
                printf("     flash T=S=4096: peak %zu B above inputs, extra %zu B (T*S*4 = %zu)\n",
                       peak, extra, ts);
            /* (S + 128) rows of: the forward's staged K^T, V (128 floats per
             * thread, 2 threads) and the backward's staged K^T, V^T, K and dK,
             * dV accumulators (320 floats per thread; 2 threads, as the one kv
             * head is split over query chunks), and tiles under 1 MiB; under a
             * quarter of one T x S matrix (the reference op keeps two) */
            const size_t allowed = sizeof(float) * (size_t)((T + 128) * 896) + ((size_t)1 << 20);
            CHECK(extra <= allowed && extra * 4 < ts,
                  "extra %zu bytes: more than O(S D) per thread (%zu) or not << T S * 4 = %zu", extra,
                  allowed, ts);
        }
        free(buf);
        attn_ctx_free(ctx);
    }
    TEST_END();
}

/* ---- bf16 inputs ---------------------------------------------------------------------- */

/* The forward of bf16 q, k, v (made from the normal inputs of cfg rounded to
 * bf16) against the reference op attn_sdpa on the same values widened to f32
 * (exact). The fast path rounds P to bf16 before P V, so each output element
 * may differ by the bf16 unit roundoff 2^-8 times sum_s P[t,s] |V[s,e]| (the
 * reference's P applied to |V|, computed by a third run) on top of the f32
 * tolerance of the fused op; the logits are exact products summed in f32.
 * Where the CPU has no AVX-512 BF16 (or ATTN_FLASH_GENERIC is set) the op
 * widens the inputs and runs in f32, which meets the same bound. */
static int run_bf16(attn_ctx *ctx, const fcfg *c, int mode, float **out, int64_t *n_out) {
    /* mode 0: flash on bf16; 1: sdpa on the widened values; 2: sdpa with |v| */
    attn_ctx_reset(ctx);
    attn_ctx_set_rng(ctx, 99, 5);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_rng rng;
    attn_rng_init(&rng, 4321);
    attn_tensor *x[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4; i++) {
        if (i == 3 && !c->bias) break;
        int nd;
        int64_t shape[4], n;
        float *buf = make_input(c, i, &rng, &nd, shape, &n);
        uint16_t *h = malloc(sizeof(uint16_t) * (size_t)n);
        if (!buf || !h) {
            free(buf), free(h);
            return -1;
        }
        if (i == 3) {
            x[i] = attn_tensor_from(ctx, ATTN_F32, nd, shape, buf);
        } else {
            attn_bf16_from_f32(h, buf, n);
            attn_f32_from_bf16(buf, h, n);
            if (mode == 2 && i == 2)
                for (int64_t j = 0; j < n; j++) buf[j] = fabsf(buf[j]);
            x[i] = mode == 0 ? attn_tensor_from(ctx, ATTN_BF16, 4, shape, h)
                             : attn_tensor_from(ctx, ATTN_F32, 4, shape, buf);
        }
        free(buf);
        free(h);
        if (!x[i]) return -1;
    }
    const attn_sdpa_opts o = case_opts(ctx, c, x[3]);
    attn_ctx_set_training(ctx, c->dropout > 0.0f);
    attn_tensor *y = mode == 0 ? attn_flash_sdpa(ctx, x[0], x[1], x[2], &o, NULL)
                               : attn_sdpa(ctx, x[0], x[1], x[2], &o, NULL);
    attn_ctx_set_training(ctx, 0);
    attn_ctx_set_grad_enabled(ctx, 1);
    CHECK(y != NULL, "%s: bf16 mode %d: %s", c->label, mode, attn_last_error());
    if (!y) return -1;
    CHECK(y->dtype == ATTN_F32, "%s: bf16 flash output is %s, expected f32", c->label,
          attn_dtype_name(y->dtype));
    *n_out = attn_tensor_numel(y);
    *out = dup(attn_f32(y), *n_out);
    return *out ? 0 : -1;
}

static void test_bf16(void) {
    attn_ctx *ctx = test_ctx_new((size_t)256 << 20, 1, 0);
    if (!ctx) return;
    const fcfg cases[] = {
        {"bf16 T1 S7 D16", 2, 2, 2, 1, 7, 16, 16, 0, 0, 0, 0, 0, {0, 0}, 0},
        {"bf16 T65 S65 D64 causal", 2, 2, 2, 65, 65, 64, 64, 1, 0, 0, 0, 0, {0, 0}, 0},
        {"bf16 T7 S1000 D80", 1, 2, 2, 7, 1000, 80, 80, 0, 0, 0, 0, 0, {0, 0}, 0},
        {"bf16 T1000 S65 D128 Dv80", 1, 2, 2, 1000, 65, 128, 80, 0, 0, 0, 0, 0, {0, 0}, 0},
        {"bf16 T1000 S1000 D64 causal", 1, 1, 1, 1000, 1000, 64, 64, 1, 0, 0, 0, 0, {0, 0}, 0},
        {"bf16 odd D 15, S 65, window 9", 1, 2, 2, 65, 65, 15, 15, 1, 9, 0, 0, 0, {0, 0}, 0},
        {"bf16 key_lengths [40, 0] GQA", 2, 4, 2, 65, 65, 64, 64, 0, 0, 0, 0, 1, {40, 0}, 0},
        {"bf16 bias [1,H,T,S] -inf, MQA", 2, 4, 1, 65, 70, 64, 32, 0, 0, 0, 1, 0, {0, 0}, 0},
        {"bf16 dropout 0.3 causal", 2, 2, 2, 65, 65, 16, 16, 1, 0, 0.3f, 2, 0, {0, 0}, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const fcfg *c = &cases[i];
        char tname[160];
        snprintf(tname, sizeof tname, "flash/bf16 forward vs sdpa: %s", c->label);
        TEST_BEGIN(tname);
        float *a = NULL, *r = NULL, *bound = NULL;
        int64_t na = 0, nr = 0, nb = 0;
        if (run_bf16(ctx, c, 0, &a, &na) == 0 && run_bf16(ctx, c, 1, &r, &nr) == 0 &&
            run_bf16(ctx, c, 2, &bound, &nb) == 0 && na == nr && nb == nr) {
            int64_t bad = 0, first = -1;
            double worst = 0.0;
            for (int64_t j = 0; j < na; j++) {
                const double tol = 0x1.0p-8 * (double)bound[j] + FLASH_ATOL + FLASH_RTOL * fabs(r[j]);
                const double d = fabs((double)a[j] - (double)r[j]);
                if (!(d <= tol)) {
                    if (first < 0) first = j;
                    bad++;
                }
                if (d / tol > worst) worst = d / tol;
            }
            if (test__verbose) printf("     %s: worst error / bound %.3f\n", c->label, worst);
            CHECK(bad == 0, "%s: %lld of %lld outside 2^-8 P|V| + f32 tolerance (first [%lld]: %g vs %g, bound %g)",
                  c->label, (long long)bad, (long long)na, (long long)first,
                  first >= 0 ? a[first] : 0.0, first >= 0 ? r[first] : 0.0,
                  first >= 0 ? bound[first] : 0.0);
        }
        free(a), free(r), free(bound);
        TEST_END();
    }
    TEST_BEGIN("flash/bf16 inputs that need gradients are refused");
    attn_ctx_reset(ctx);
    const int64_t sh[4] = {1, 1, 4, 8};
    uint16_t h[32] = {0};
    attn_tensor *q = attn_tensor_from(ctx, ATTN_BF16, 4, sh, h);
    attn_tensor *k = attn_tensor_from(ctx, ATTN_BF16, 4, sh, h);
    attn_tensor *v = attn_tensor_from(ctx, ATTN_BF16, 4, sh, h);
    if (q && k && v) {
        q->requires_grad = 1;
        test_expect_fail(ctx, attn_flash_sdpa(ctx, q, k, v, NULL, NULL) == NULL, ATTN_ERR_DTYPE,
                         "forward only", "bf16 q that needs a gradient");
        attn_ctx_reset(ctx);
        float f[32] = {0};
        attn_tensor *qf = attn_tensor_from(ctx, ATTN_F32, 4, sh, f);
        attn_tensor *kb = attn_tensor_from(ctx, ATTN_BF16, 4, sh, h);
        test_expect_fail(ctx, attn_flash_sdpa(ctx, qf, kb, kb, NULL, NULL) == NULL, ATTN_ERR_DTYPE,
                         "k [1,1,4,8] is bf16, expected f32", "f32 q with bf16 k, v");
    }
    TEST_END();
    TEST_BEGIN("flash/bf16 conversions: nearest even, NaN, inf, exact widening");
    {
        const float src[6] = {1.0f, 1.00390625f /* 1 + 2^-8: tie, to even 1 */,
                              1.01171875f /* 1 + 3 2^-8: tie, to even 1 + 2^-6 */, -INFINITY, NAN,
                              3.3895314e38f /* the largest bf16 */};
        uint16_t hb[6];
        float back[6];
        attn_bf16_from_f32(hb, src, 6);
        attn_f32_from_bf16(back, hb, 6);
        CHECK(back[0] == 1.0f && back[1] == 1.0f && back[2] == 1.015625f, "rounding: %g %g %g",
              back[0], back[1], back[2]);
        CHECK(back[3] == -INFINITY && isnan(back[4]) && back[5] == 3.3895314e38f,
              "specials: %g %g %g", back[3], back[4], back[5]);
    }
    TEST_END();
    attn_ctx_free(ctx);
}

/* ---- property suite: every finite input ------------------------------------------------- */

/* Random cases over wide ranges, the fused op against the reference op
 * attn_sdpa on the same inputs: output, weights and every gradient at the
 * op's normal tolerances (FLASH_*, WEIGHTS_*), and the bf16 forward against
 * the reference on the widened values at its bound. The suite runs once per
 * kernel variant (make test: AVX-512, ATTN_FLASH_GENERIC=1 for the portable
 * kernels, ATTN_FLASH_NO_AMX=1 for AVX-512 BF16 instead of AMX; CI: the
 * AVX2 build).
 *
 * The logits of a case are made exact in f32 under any order of summation
 * when the case asks for large magnitudes: q and k are multiples of 1/8 in
 * [-2, 2] (exact in bf16 too), the scale a power of two, so both ops see the
 * very same f32 logits and any difference is the softmax's own rounding (the
 * rounding of a logit of 1e4 is 1e-3, which would hide the defect this suite
 * guards against: a row statistic that loses log l when |max logit| is
 * large, which gave weights of 1 instead of 1 / S under a -1e9 mask bias).
 * Biases come from a mixture: N(0, sigma) with sigma up to 100, -inf,
 * -1e9, -FLT_MAX, -3.4e38 and +-1e4 per element, whole rows masked by one
 * finite value, and constant offsets of +-1e4 (logits in the thousands with
 * a softmax that is not one-hot). Some cases put NaN in the keys and values
 * at or beyond key_lengths, which no kernel may read (the reference op
 * reads them, so it gets zeros there). */

typedef struct prop_case {
    char label[520];
    int64_t B, H, Hkv, T, S, D, Dv;
    int causal, dropout, exact, nan_pad, has_kl, bias_shape, bias_mix, want_grad, alibi;
    int64_t window;
    int32_t kl[2];
    float scale;
    int has_sp; /* a random sparse pattern (test_sparse_draw) in sp */
    attn_sparse_pattern sp;
} prop_case;

/* With probability 1/3 (and never for the fixed cases below 12), a random
 * sparse pattern from prng for case c, named in its label. prng is its own
 * stream so that the other draws of every case stay as they were. */
static void prop_sparse(attn_rng *prng, int i, prop_case *c) {
    const int on = attn_rng_next_below(prng, 3) == 0;
    attn_sparse_pattern p;
    test_sparse_draw(prng, c->T, c->S, &p);
    if (!on || i < 12) return;
    c->has_sp = 1;
    c->sp = p;
    char pl[300];
    test_sparse_label(&p, pl, sizeof pl);
    const size_t n = strlen(c->label);
    snprintf(c->label + n, sizeof c->label - n, " sparse %s", pl);
}

static int64_t prop_pick(attn_rng *rng, int64_t lo, int64_t hi) {
    return lo + (int64_t)attn_rng_next_below(rng, (uint32_t)(hi - lo + 1));
}

/* a size from the ragged set {1 .. 9, 63 .. 66, 127 .. 130} or any in [1, 200] */
static int64_t prop_size(attn_rng *rng) {
    static const int64_t ragged[] = {1, 2, 3, 7, 9, 31, 33, 63, 64, 65, 66, 127, 128, 129, 130};
    if (attn_rng_next_below(rng, 2)) return ragged[attn_rng_next_below(rng, 15)];
    return prop_pick(rng, 1, 200);
}

static void prop_draw(attn_rng *rng, int i, prop_case *c) {
    memset(c, 0, sizeof *c);
    static const int64_t heads[][2] = {{1, 1}, {2, 2}, {2, 1}, {4, 2}, {3, 1}, {4, 4}};
    const int hs = (int)attn_rng_next_below(rng, 6);
    c->B = prop_pick(rng, 1, 2);
    c->H = heads[hs][0], c->Hkv = heads[hs][1];
    c->T = prop_size(rng), c->S = prop_size(rng);
    c->D = attn_rng_next_below(rng, 3) ? prop_size(rng) % 97 + 1 : 64;
    c->Dv = attn_rng_next_below(rng, 2) ? c->D : prop_size(rng) % 80 + 1;
    c->causal = attn_rng_next_below(rng, 3) == 0;
    c->window = attn_rng_next_below(rng, 4) == 0 ? prop_pick(rng, 1, c->S + 2) : 0;
    c->has_kl = attn_rng_next_below(rng, 3) == 0;
    for (int b = 0; b < 2; b++) c->kl[b] = (int32_t)prop_pick(rng, 0, c->S);
    c->nan_pad = c->has_kl && attn_rng_next_below(rng, 2);
    c->bias_shape = (int)attn_rng_next_below(rng, 5); /* 0 none, 1 [B,H,T,S], 2 [T,S], 3 [1,H,1,S], 4 [B,1,T,1] */
    c->bias_mix = (int)attn_rng_next_below(rng, 7);
    c->exact = c->bias_mix >= 3 || attn_rng_next_below(rng, 2);
    static const float pow2[] = {0.0625f, 0.125f, 0.25f, 1.0f, 4.0f, 16.0f};
    c->scale = c->exact ? pow2[attn_rng_next_below(rng, 6)] : 0.0f;
    c->dropout = attn_rng_next_below(rng, 6) == 0;
    c->alibi = (int)attn_rng_next_below(rng, 4); /* 1: the paper's slopes, 2: random in [0, 2) */
    if (c->alibi > 2) c->alibi = 0;
    c->want_grad = 1;
    snprintf(c->label, sizeof c->label,
             "prop %d: B%lld H%lld Hkv%lld T%lld S%lld D%lld Dv%lld causal %d window %lld kl %s"
             "[%d,%d]%s bias shape %d mix %d %s scale %g dropout %d alibi %d",
             i, (long long)c->B, (long long)c->H, (long long)c->Hkv, (long long)c->T,
             (long long)c->S, (long long)c->D, (long long)c->Dv, c->causal, (long long)c->window,
             c->has_kl ? "" : "(off)", c->kl[0], c->kl[1], c->nan_pad ? " NaN padding" : "",
             c->bias_shape, c->bias_mix, c->exact ? "exact logits" : "normal inputs",
             (double)c->scale, c->dropout, c->alibi);
}

/* The ALiBi slopes of case c in x [H] (c->alibi 1: attn_alibi_slopes, 2:
 * multiples of 1/16 in [0, 2), exact, so the term is exact too). */
static void prop_slopes(const prop_case *c, float *x) {
    attn_alibi_slopes((int)c->H, x);
    if (c->alibi == 2)
        for (int64_t h = 0; h < c->H; h++) x[h] = (float)((h * 7 + c->T) % 32) / 16.0f;
}

static void prop_bias_shape(const prop_case *c, int *nd, int64_t sh[4]) {
    *nd = 4;
    switch (c->bias_shape) {
    case 1: sh[0] = c->B, sh[1] = c->H, sh[2] = c->T, sh[3] = c->S; break;
    case 2: *nd = 2, sh[0] = c->T, sh[1] = c->S; break;
    case 3: sh[0] = 1, sh[1] = c->H, sh[2] = 1, sh[3] = c->S; break;
    default: sh[0] = c->B, sh[1] = 1, sh[2] = c->T, sh[3] = 1; break;
    }
}

/* The bias values of mixture c->bias_mix; row = the last dim's length. */
static void prop_bias_fill(const prop_case *c, float *x, int64_t n, int64_t row, attn_rng *rng) {
    static const float masks[] = {-INFINITY, -1e9f, -FLT_MAX, -3.4e38f};
    static const float sigmas[] = {1.0f, 10.0f, 100.0f};
    const float sigma = sigmas[attn_rng_next_below(rng, 3)];
    for (int64_t j = 0; j < n; j++) {
        const float u = attn_rng_next_uniform(rng);
        float v = sigma * attn_rng_next_normal(rng);
        switch (c->bias_mix) {
        case 0: break;                                               /* N(0, sigma) */
        case 1: if (u < 0.3f) v = masks[attn_rng_next_below(rng, 4)]; break; /* sparse masks */
        case 2: if (u < 0.8f) v = masks[attn_rng_next_below(rng, 4)]; break; /* mostly masked */
        case 3: v = u < 0.5f ? 1e4f : -1e4f; break;                  /* +-1e4 per element */
        default: break;
        }
        x[j] = v;
    }
    if (c->bias_mix == 4 || c->bias_mix == 5) { /* whole rows: one finite value, or masked */
        for (int64_t r0 = 0; r0 < n; r0 += row) {
            const int whole = attn_rng_next_below(rng, 3) != 0;
            const float m = c->bias_mix == 4 ? masks[1 + attn_rng_next_below(rng, 3)]
                                             : (attn_rng_next_below(rng, 2) ? 1e4f : -1e4f);
            for (int64_t j = r0; j < r0 + row && j < n; j++)
                if (whole || attn_rng_next_below(rng, 4) == 0)
                    x[j] = c->bias_mix == 4 ? m : m + (float)((int)attn_rng_next_below(rng, 64) - 32) / 8.0f;
        }
    }
    if (c->bias_mix == 6) /* a constant offset of +-1e4: logits in the thousands */
        for (int64_t j = 0; j < n; j++) x[j] = (j / row % 2 ? 1e4f : -1e4f) + (float)(j % 7) / 4.0f;
}

typedef struct prop_inputs {
    float *x[4]; /* q, k, v, bias (as the fused op gets them) */
    float *clean[3]; /* k, v with zeros at the padding (for the reference op) */
    int nd[4];
    int64_t sh[4][4], n[4];
} prop_inputs;

static void prop_inputs_free(prop_inputs *in) {
    for (int i = 0; i < 4; i++) free(in->x[i]);
    for (int i = 0; i < 3; i++) free(in->clean[i]);
}

/* bst = the element strides of the bias broadcast to [B,H,T,S] (0 along
 * its size-1 dimensions); all 0 without a bias (want 0). */
static void bias_strides(const prop_inputs *in, const void *want, int64_t bst[4]) {
    for (int i = 0; i < 4; i++) bst[i] = 0;
    if (!want) return;
    int64_t st = 1;
    for (int j = in->nd[3] - 1; j >= 0; j--) {
        const int dim = 4 - in->nd[3] + j;
        bst[dim] = in->sh[3][j] == 1 ? 0 : st;
        st *= in->sh[3][j];
    }
}

static int prop_make(const prop_case *c, attn_rng *rng, prop_inputs *in) {
    memset(in, 0, sizeof *in);
    const int64_t shp[3][4] = {{c->B, c->H, c->T, c->D},
                               {c->B, c->Hkv, c->S, c->D},
                               {c->B, c->Hkv, c->S, c->Dv}};
    for (int i = 0; i < 4; i++) {
        if (i == 3) {
            if (!c->bias_shape) break;
            prop_bias_shape(c, &in->nd[3], in->sh[3]);
        } else {
            in->nd[i] = 4;
            memcpy(in->sh[i], shp[i], sizeof shp[i]);
        }
        in->n[i] = 1;
        for (int j = 0; j < in->nd[i]; j++) in->n[i] *= in->sh[i][j];
        if (!(in->x[i] = malloc(sizeof(float) * (size_t)in->n[i]))) return -1;
        if (i == 3) {
            prop_bias_fill(c, in->x[3], in->n[3], in->sh[3][in->nd[3] - 1], rng);
        } else if (c->exact && i < 2) {
            for (int64_t j = 0; j < in->n[i]; j++)
                in->x[i][j] = (float)((int)attn_rng_next_below(rng, 33) - 16) / 8.0f;
        } else {
            test_fill_normal(in->x[i], in->n[i], rng);
        }
    }
    for (int i = 1; i < 3; i++) {
        if (!(in->clean[i] = malloc(sizeof(float) * (size_t)in->n[i]))) return -1;
        memcpy(in->clean[i], in->x[i], sizeof(float) * (size_t)in->n[i]);
        if (!c->nan_pad) continue;
        const int64_t w = i == 1 ? c->D : c->Dv;
        for (int64_t b = 0; b < c->B; b++)
            for (int64_t h = 0; h < c->Hkv; h++)
                for (int64_t s = c->kl[b]; s < c->S; s++)
                    for (int64_t e = 0; e < w; e++) {
                        const int64_t j = ((b * c->Hkv + h) * c->S + s) * w + e;
                        in->x[i][j] = NAN;
                        in->clean[i][j] = 0.0f;
                    }
    }
    return 0;
}

/* One op on the case's inputs (flash on in->x, the reference on the clean
 * k, v); fills r (weights, and gradients for the seed gy). */
static int prop_run(attn_ctx *ctx, const prop_case *c, const prop_inputs *in, int flash,
                    const float *gy, fres *r) {
    memset(r, 0, sizeof *r);
    attn_ctx_reset(ctx);
    attn_ctx_set_rng(ctx, 7, 3);
    attn_ctx_set_training(ctx, c->dropout);
    attn_tensor *x[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4 && in->x[i]; i++) {
        const float *src = !flash && i >= 1 && i <= 2 ? in->clean[i] : in->x[i];
        x[i] = test_leaf(ctx, in->nd[i], in->sh[i], src);
        if (!x[i]) return -1;
        r->n[i] = in->n[i];
    }
    attn_sdpa_opts o = {0};
    o.causal = c->causal;
    o.window = c->window;
    o.scale = c->scale;
    o.dropout = c->dropout ? 0.25f : 0.0f;
    o.bias = x[3];
    if (c->has_sp) o.sparse = &c->sp;
    if (c->has_kl) o.key_lengths = attn_tensor_from(ctx, ATTN_I32, 1, &c->B, c->kl);
    if (c->alibi) {
        float sl[4];
        prop_slopes(c, sl);
        o.alibi_slopes = attn_tensor_from(ctx, ATTN_F32, 1, &c->H, sl);
    }
    attn_tensor *w = NULL;
    attn_tensor *y = flash ? attn_flash_sdpa(ctx, x[0], x[1], x[2], &o, &w)
                           : attn_sdpa(ctx, x[0], x[1], x[2], &o, &w);
    attn_ctx_set_training(ctx, 0);
    CHECK(y != NULL && w != NULL, "%s: %s failed: %s", c->label, flash ? "flash" : "sdpa",
          attn_last_error());
    if (!y || !w) return -1;
    r->n_out = attn_tensor_numel(y);
    r->out = dup(attn_f32(y), r->n_out);
    r->n_w = attn_tensor_numel(w);
    r->w = dup(attn_f32(w), r->n_w);
    if (c->want_grad) {
        attn_status st = attn_backward_from(ctx, y, gy);
        CHECK(st == ATTN_OK, "%s: backward: %s", c->label, attn_last_error());
        if (st != ATTN_OK) return -1;
        for (int i = 0; i < 4; i++)
            if (x[i]) r->g[i] = dup(x[i]->grad, r->n[i]);
    }
    return 0;
}

/* The rounding bound of the gradients that go through dS = P (Z dP - D_t)
 * (docs/transformer.md, "Fused attention", accuracy): dP = dO_t . V_s and
 * D_t = dO_t . O_t are dot products of length Dv, computed in f32 by the
 * fused op (D in double from the f32 output) and as sum_s P dP by the
 * reference op, so their difference is cancelled to within
 *   E_ts = gamma P_ts (Zmax sum_e |dO_te V_se| + sum_e |dO_te O_te|),
 * gamma = (Dv + 4) 2^-24 (the worst-case bound of a length-Dv dot product
 * and the subtraction), which the reference op does not see when a row is
 * one-hot (its D is its own sum). The bound of dq_td is scale sum_s E_ts
 * |K_sd|, of dk_sd scale sum_t E_ts |Q_td| over the group's heads, of the
 * bias the sum of E over the broadcast entries; v's gradient has no
 * cancellation and keeps the plain tolerance (bound NULL). Computed from
 * the reference op's P (weights) and output. */
static void prop_grad_bounds(const prop_case *c, const prop_inputs *in, const fres *ref,
                             const float *gy, float *bound[4]) {
    const int64_t B = c->B, H = c->H, T = c->T, S = c->S, D = c->D, Dv = c->Dv, G = H / c->Hkv;
    const double scale = c->scale > 0.0f ? c->scale : 1.0 / sqrt((double)D);
    const double gamma = (double)(Dv + 4) * 0x1.0p-24, zmax = c->dropout ? 1.0 / 0.75 : 1.0;
    for (int i = 0; i < 4; i++) {
        if (i == 2 || !ref->g[i]) continue;
        bound[i] = calloc((size_t)ref->n[i], sizeof(float));
        if (!bound[i]) return;
    }
    const float *Q = in->x[0], *K = in->clean[1], *V = in->clean[2];
    int64_t bst[4];
    bias_strides(in, bound[3], bst);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++) {
                const int64_t bh = b * H + h, kvo = (b * c->Hkv + h / G) * S;
                const float *dO = gy + (bh * T + t) * Dv, *O = ref->out + (bh * T + t) * Dv;
                double dOO = 0.0;
                for (int64_t e = 0; e < Dv; e++) dOO += fabs((double)dO[e] * O[e]);
                for (int64_t s = 0; s < S; s++) {
                    const double p = ref->w[(bh * T + t) * S + s];
                    if (!(p > 0.0)) continue;
                    double dOV = 0.0;
                    for (int64_t e = 0; e < Dv; e++) dOV += fabs((double)dO[e] * V[(kvo + s) * Dv + e]);
                    const double E = gamma * p * (zmax * dOV + dOO);
                    if (bound[0])
                        for (int64_t d = 0; d < D; d++)
                            bound[0][(bh * T + t) * D + d] += (float)(scale * E * fabs(K[(kvo + s) * D + d]));
                    if (bound[1])
                        for (int64_t d = 0; d < D; d++)
                            bound[1][(kvo + s) * D + d] += (float)(scale * E * fabs(Q[(bh * T + t) * D + d]));
                    if (bound[3]) bound[3][b * bst[0] + h * bst[1] + t * bst[2] + s * bst[3]] += (float)E;
                }
            }
}

/* |a - ref| <= FLASH_ATOL + FLASH_RTOL |ref| + bound (bound NULL: 0), NaN
 * or inf in a a failure; reports the worst element. */
static void prop_close(const char *what, const float *a, const float *ref, const float *bound,
                       int64_t n) {
    int64_t bad = 0, worst = -1;
    double excess = 0.0;
    for (int64_t j = 0; j < n; j++) {
        const double tol = FLASH_ATOL + FLASH_RTOL * fabs((double)ref[j]) + (bound ? bound[j] : 0.0);
        const double d = fabs((double)a[j] - (double)ref[j]);
        if (!(d <= tol) && !(a[j] == ref[j])) {
            bad++;
            if (worst < 0 || !(d - tol <= excess)) worst = j, excess = d - tol;
        }
    }
    CHECK(bad == 0, "%s: %lld of %lld elements outside the tolerance (worst [%lld]: got %.9g, expected %.9g, rounding bound %.3g)",
          what, (long long)bad, (long long)n, (long long)worst, worst >= 0 ? a[worst] : 0.0,
          worst >= 0 ? ref[worst] : 0.0, worst >= 0 && bound ? bound[worst] : 0.0);
}

/* The kernel variants of the property suite: the context's kernel flags. */
static const struct {
    int flags;
    const char *name;
} prop_variants[3] = {{0, "the CPU's kernels"},
                      {ATTN_KERNELS_PORTABLE, "portable kernels"},
                      {ATTN_KERNELS_NO_AMX, "no AMX"}};

/* ---- the bf16 backward ---------------------------------------------------------------------- */

/* Per-element bounds of the bf16 backward (ATTN_PRECISION_BF16 on f32 inputs
 * that are bf16 values already) against the f32 reference op on the same
 * values (docs/transformer.md, "bf16 backward"), from the reference's P,
 * output and the seed dO, in double. With u = 2^-8 (bf16's unit roundoff,
 * round to nearest even), e = 2^-24 (f32's), W_te = sum_s P_ts |V_se|,
 * A_ts = sum_e |dO_te| (|V_se| + 2 W_te) and n = T G + 2 (the terms of a
 * dK or dV sum):
 *   dS_ts before its rounding: E_ts = (u + (Dv + 4) e) P_ts A_ts
 *             (dO~ in dP and D_t, the bf16 forward's output in D_t, the f32
 *             cancellation of prop_grad_bounds)
 *   dQ_td:    alpha sum_s ((u + (S + 2) e) |dS_ts| + (1 + u) E_ts) |K_sd|
 *   dK_sd:    alpha sum_t ((u + n e) |dS_ts| + (1 + u) E_ts) |Q_td|  (the group)
 *   dV_se:    (2u + u^2 + n e) sum_t P_ts |dO_te|
 *   dbias:    E summed over the broadcast entries.
 * With dropout (p 0.25, mask unknown here) P becomes Zmax P in W, A and dV,
 * and |dS| is bounded by P (Zmax |dP| + sum_e |dO_te| W_te).
 * Also the mutants: drop[0] = the part of dQ from key tile 0 (keys < 64),
 * drop[2] = the part of dV from query tile 0 (rows < 64), what a kernel that
 * skipped one tile would lose. */
static void bf16_bwd_bounds(const prop_case *c, const prop_inputs *in, const fres *ref,
                            const float *gy, float *bound[4], double *drop[3]) {
    const int64_t B = c->B, H = c->H, T = c->T, S = c->S, D = c->D, Dv = c->Dv, G = H / c->Hkv;
    const double scale = c->scale > 0.0f ? c->scale : 1.0 / sqrt((double)D);
    const double u = 0x1.0p-8, e32 = 0x1.0p-24, n = (double)(T * G + 2);
    const double uq = u + (double)(S + 2) * e32, uk = u + n * e32, uv = 2.0 * u + u * u + n * e32;
    const double ue = u + (double)(Dv + 4) * e32, zmax = c->dropout ? 1.0 / 0.75 : 1.0;
    for (int i = 0; i < 4; i++)
        if (ref->g[i] && !(bound[i] = calloc((size_t)ref->n[i], sizeof(float)))) return;
    drop[0] = calloc((size_t)ref->n[0], sizeof(double));
    drop[2] = calloc((size_t)ref->n[2], sizeof(double));
    double *W = malloc(sizeof(double) * (size_t)Dv), *dP = malloc(sizeof(double) * (size_t)S);
    if (!drop[0] || !drop[2] || !W || !dP) {
        free(W), free(dP);
        return;
    }
    const float *Q = in->x[0], *K = in->clean[1], *V = in->clean[2];
    int64_t bst[4];
    bias_strides(in, bound[3], bst);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++) {
                const int64_t bh = b * H + h, kvo = (b * c->Hkv + h / G) * S;
                const float *dO = gy + (bh * T + t) * Dv, *P = ref->w + (bh * T + t) * S;
                double Dt = 0.0, dOW = 0.0;
                for (int64_t e = 0; e < Dv; e++) W[e] = 0.0;
                for (int64_t s = 0; s < S; s++) {
                    dP[s] = 0.0;
                    if (!(P[s] > 0.0f)) continue;
                    for (int64_t e = 0; e < Dv; e++) {
                        const double v = V[(kvo + s) * Dv + e];
                        W[e] += zmax * P[s] * fabs(v);
                        dP[s] += dO[e] * v;
                    }
                    Dt += P[s] * dP[s];
                }
                for (int64_t e = 0; e < Dv; e++) dOW += fabs((double)dO[e]) * W[e];
                for (int64_t s = 0; s < S; s++) {
                    const double p = P[s];
                    if (!(p > 0.0)) continue;
                    double A = 0.0;
                    for (int64_t e = 0; e < Dv; e++)
                        A += fabs((double)dO[e]) * (zmax * fabs((double)V[(kvo + s) * Dv + e]) + 2.0 * W[e]);
                    /* with dropout the mask is unknown here: |dS| <= P (Zmax |dP| + |D_t|),
                     * |D_t| <= sum_e |dO_te| W_te, and no mutant */
                    const double dS = c->dropout ? 0.0 : p * (dP[s] - Dt), E = ue * p * A;
                    const double adS = c->dropout ? p * (zmax * fabs(dP[s]) + dOW) : fabs(dS);
                    const double fq = uq * adS + (1.0 + u) * E, fk = uk * adS + (1.0 + u) * E;
                    for (int64_t d = 0; d < D; d++) {
                        if (bound[0]) bound[0][(bh * T + t) * D + d] += (float)(scale * fq * fabs(K[(kvo + s) * D + d]));
                        if (bound[1]) bound[1][(kvo + s) * D + d] += (float)(scale * fk * fabs(Q[(bh * T + t) * D + d]));
                        if (s < 64) drop[0][(bh * T + t) * D + d] += scale * dS * K[(kvo + s) * D + d];
                    }
                    for (int64_t e = 0; e < Dv; e++) {
                        if (bound[2]) bound[2][(kvo + s) * Dv + e] += (float)(uv * zmax * p * fabs(dO[e]));
                        if (t < 64 && !c->dropout) drop[2][(kvo + s) * Dv + e] += p * dO[e];
                    }
                    if (bound[3]) bound[3][b * bst[0] + h * bst[1] + t * bst[2] + s * bst[3]] += (float)E;
                }
            }
    free(W), free(dP);
}

/* Elements of a outside FLASH_ATOL + FLASH_RTOL |ref| + bound (NaN counts);
 * *ratio = the largest |a - ref| / (that tolerance), *worst its index. */
static int64_t bf16_outside(const float *a, const float *ref, const float *bound, int64_t n,
                            double *ratio, int64_t *worst) {
    int64_t bad = 0;
    for (int64_t j = 0; j < n; j++) {
        const double tol = FLASH_ATOL + FLASH_RTOL * fabs((double)ref[j]) + bound[j];
        const double d = fabs((double)a[j] - (double)ref[j]);
        if (!(d <= tol)) bad++;
        if (!(d / tol <= *ratio)) *ratio = d / tol, *worst = j;
    }
    return bad;
}

/* The bf16 backward: random cases of the property suite with q, k, v bf16
 * values, the fused op under ATTN_PRECISION_BF16 (bf16 products on AMX or
 * AVX-512 BF16; the portable variant stays f32) against the reference op in
 * f32: dq, dk, dv and the bias gradient within bf16_bwd_bounds. The rounding
 * must show (the worst element uses more than 1% of its bound on the bf16
 * kernels: the bound is not vacuous and the bf16 path ran), and the bound
 * must catch a dropped tile: dQ less the contribution of key tile 0, dV
 * less that of query tile 0, each leave some element outside (cases
 * without dropout). The forward keeps its own test. */
static void test_bf16_backward(attn_ctx *ctx, int variant, attn_rng *rng, attn_rng *prng) {
    char tname[160];
    snprintf(tname, sizeof tname,
             "flash/property (%s): bf16 backward, random shapes and masks vs sdpa in f32",
             prop_variants[variant].name);
    TEST_BEGIN(tname);
    double worst_ratio = 0.0;
    int mutants = 0, caught = 0;
    const int n_cases = variant ? 12 : 24;
    for (int i = 0; i < n_cases; i++) {
        prop_case c;
        prop_draw(rng, 2000 + i, &c);
        prop_sparse(prng, 2000 + i, &c);
        if (i < 2) { /* the bench's shapes, several tiles each way */
            c.B = 1, c.H = 2, c.Hkv = 2 - i, c.T = 130 + 70 * i, c.S = 130 + 20 * i;
            c.D = c.Dv = 64 + 64 * i, c.causal = !i, c.window = 0, c.has_kl = 0, c.nan_pad = 0;
            c.bias_shape = 0, c.alibi = 0, c.has_sp = 0, c.exact = 0, c.scale = 0.0f, c.dropout = 0;
        }
        const size_t nl = strlen(c.label);
        snprintf(c.label + nl, sizeof c.label - nl, " (bf16 backward %d)", i);
        prop_inputs in;
        fres a = {0}, r = {0};
        float *gy = NULL, *bound[4] = {NULL, NULL, NULL, NULL};
        double *drop[3] = {NULL, NULL, NULL};
        if (prop_make(&c, rng, &in) == 0 &&
            (gy = malloc(sizeof(float) * (size_t)(c.B * c.H * c.T * c.Dv)))) {
            test_fill_normal(gy, c.B * c.H * c.T * c.Dv, rng);
            for (int t = 0; t < 3; t++) { /* q, k, v: bf16 values */
                uint16_t *hb = malloc(sizeof(uint16_t) * (size_t)in.n[t]);
                if (!hb) continue;
                attn_bf16_from_f32(hb, in.x[t], in.n[t]);
                attn_f32_from_bf16(in.x[t], hb, in.n[t]);
                if (t) {
                    attn_bf16_from_f32(hb, in.clean[t], in.n[t]);
                    attn_f32_from_bf16(in.clean[t], hb, in.n[t]);
                }
                free(hb);
            }
            attn_ctx_set_precision(ctx, ATTN_PRECISION_BF16);
            const int ok = prop_run(ctx, &c, &in, 1, gy, &a) == 0;
            attn_ctx_set_precision(ctx, ATTN_PRECISION_F32);
            if (ok && prop_run(ctx, &c, &in, 0, gy, &r) == 0) {
                bf16_bwd_bounds(&c, &in, &r, gy, bound, drop);
                for (int g = 0; g < 4; g++) {
                    if (!r.g[g]) continue;
                    CHECK(a.g[g] && bound[g], "%s: %s missing", c.label, gname[g]);
                    if (!a.g[g] || !bound[g]) continue;
                    int64_t worst = -1;
                    double ratio = 0.0;
                    const int64_t bad = bf16_outside(a.g[g], r.g[g], bound[g], a.n[g], &ratio, &worst);
                    CHECK(bad == 0,
                          "%s: %s: %lld of %lld outside the bf16 bound (worst [%lld]: %.9g vs %.9g, bound %.3g)",
                          c.label, gname[g], (long long)bad, (long long)a.n[g], (long long)worst,
                          a.g[g][worst], r.g[g][worst], bound[g][worst]);
                    if (ratio > worst_ratio) worst_ratio = ratio;
                }
                /* mutants: a dropped key tile in dQ, a dropped query tile in dV */
                for (int g = 0; g <= 2; g += 2) {
                    if (!a.g[g] || !bound[g] || !drop[g]) continue;
                    double big = 0.0;
                    for (int64_t j = 0; j < a.n[g]; j++) big = fmax(big, fabs(drop[g][j]));
                    if (big < 1e-3) continue; /* nothing to lose (e.g. no visible key) */
                    float *m = dup(a.g[g], a.n[g]);
                    if (!m) continue;
                    for (int64_t j = 0; j < a.n[g]; j++) m[j] -= (float)drop[g][j];
                    double ratio = 0.0;
                    int64_t worst = -1;
                    mutants++;
                    caught += bf16_outside(m, r.g[g], bound[g], a.n[g], &ratio, &worst) > 0;
                    free(m);
                }
            }
        } else {
            CHECK(0, "%s: out of memory making the inputs", c.label);
        }
        free(gy);
        for (int g = 0; g < 4; g++) free(bound[g]);
        free(drop[0]), free(drop[2]);
        fres_free(&a), fres_free(&r);
        prop_inputs_free(&in);
    }
    if (variant == 0) { /* 1 vs 2 threads: the same bits (B Hkv >= 2: no query split) */
        prop_case c;
        prop_draw(rng, 3000, &c);
        c.B = 2, c.H = 4, c.Hkv = 2, c.T = 100, c.S = 90, c.D = c.Dv = 64, c.causal = 1;
        c.window = 0, c.has_kl = 0, c.nan_pad = 0, c.bias_shape = 0, c.alibi = 0, c.has_sp = 0;
        c.dropout = 0, c.exact = 0, c.scale = 0.0f;
        snprintf(c.label, sizeof c.label, "bf16 backward, 1 vs 2 threads");
        prop_inputs in;
        memset(&in, 0, sizeof in);
        fres a = {0}, b = {0};
        float *gy = malloc(sizeof(float) * (size_t)(c.B * c.H * c.T * c.Dv));
        if (gy && prop_make(&c, rng, &in) == 0) {
            test_fill_normal(gy, c.B * c.H * c.T * c.Dv, rng);
            attn_ctx_set_precision(ctx, ATTN_PRECISION_BF16);
            int ok = prop_run(ctx, &c, &in, 1, gy, &a) == 0;
            attn_ctx_set_threads(ctx, 2);
            ok = ok && prop_run(ctx, &c, &in, 1, gy, &b) == 0;
            attn_ctx_set_threads(ctx, 1);
            attn_ctx_set_precision(ctx, ATTN_PRECISION_F32);
            for (int g = 0; ok && g < 3; g++)
                test_allclose(gname[g], b.g[g], a.g[g], a.n[g], 0.0f, 0.0f);
        }
        free(gy);
        fres_free(&a), fres_free(&b);
        prop_inputs_free(&in);
    }
    if (test__verbose)
        printf("     bf16 backward: worst |error| / bound %.3f, %d of %d dropped tiles caught\n",
               worst_ratio, caught, mutants);
    CHECK(mutants >= 4 && caught == mutants, "bf16 backward: only %d of %d dropped tiles caught",
          caught, mutants);
    /* where the bf16 kernels exist (flash_sdpa_internal.h, fl_bf16_kernels) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ATTN_NO_CLONES)
    const int bf16_kernels = __builtin_cpu_supports("avx512bf16") &&
                             __builtin_cpu_supports("avx512bw") &&
                             !(attn_ctx_kernel_flags(ctx) & ATTN_KERNELS_PORTABLE);
#else
    const int bf16_kernels = 0;
#endif
    if (bf16_kernels)
        CHECK(worst_ratio > 0.01, "bf16 backward: worst error %.3g of the bound: no bf16 rounding seen",
              worst_ratio);
    TEST_END();
}

/* ---- the decode path ------------------------------------------------------------------------- */

/* Calls with at most 4 query rows and no gradient to compute read K and V
 * in place instead of staging them (fwd_tile_direct, fl_direct): random
 * cases of the property suite's kinds (every mask, GQA, wide-range biases,
 * NaN beyond key_lengths, ALiBi, dropout in training mode; no sparse
 * pattern) with T in 1..4, gradients off, output and weights against
 * attn_sdpa at the f32 tolerances; then that the path really ran: for T = 1
 * against 600 keys the op's arena use stays below the staged K and V it
 * would need. */
static void test_decode_path(attn_ctx *ctx, attn_rng *rng) {
    TEST_BEGIN("flash/decode path (T <= 4, no gradient): K and V read in place, vs sdpa");
    for (int i = 0; i < 120; i++) {
        prop_case c;
        prop_draw(rng, 2000 + i, &c);
        c.T = 1 + i % 4;
        if (c.window > c.S + 2) c.window = c.S + 2;
        c.want_grad = 0;
        prop_inputs in;
        fres a = {0}, b = {0};
        if (prop_make(&c, rng, &in) == 0) {
            attn_ctx_set_grad_enabled(ctx, 0);
            const int ok = prop_run(ctx, &c, &in, 1, NULL, &a) == 0 &&
                           prop_run(ctx, &c, &in, 0, NULL, &b) == 0;
            attn_ctx_set_grad_enabled(ctx, 1);
            if (ok) {
                char what[600];
                snprintf(what, sizeof what, "decode, T = %lld (not the label's): %s: out",
                         (long long)c.T, c.label);
                test_allclose(what, a.out, b.out, a.n_out, FLASH_ATOL, FLASH_RTOL);
                snprintf(what, sizeof what, "decode, T = %lld (not the label's): %s: weights",
                         (long long)c.T, c.label);
                test_allclose(what, a.w, b.w, a.n_w, WEIGHTS_ATOL, WEIGHTS_RTOL);
            }
        } else {
            CHECK(0, "%s: out of memory making the inputs", c.label);
        }
        fres_free(&a), fres_free(&b);
        prop_inputs_free(&in);
    }
    /* the path ran: no staged K^T and V (640 x (64 + 64) floats) */
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    const int64_t qs[4] = {1, 2, 1, 64}, ks[4] = {1, 2, 600, 64};
    float *buf = calloc(600 * 2 * 64, sizeof(float));
    attn_tensor *q = buf ? attn_tensor_from(ctx, ATTN_F32, 4, qs, buf) : NULL;
    attn_tensor *k = buf ? attn_tensor_from(ctx, ATTN_F32, 4, ks, buf) : NULL;
    const size_t before = attn_ctx_arena_used(ctx);
    attn_tensor *y = q && k ? attn_flash_sdpa(ctx, q, k, k, NULL, NULL) : NULL;
    CHECK(y != NULL, "decode T = 1: %s", attn_last_error());
    const size_t used = attn_ctx_arena_used(ctx) - before, staged = 640 * 128 * sizeof(float);
    CHECK(used < staged, "decode T = 1 against 600 keys used %zu arena bytes, the staged K and V "
          "alone take %zu: the tile path ran", used, staged);
    attn_ctx_set_grad_enabled(ctx, 1);
    free(buf);
    TEST_END();
}

static void test_property(int variant) {
    attn_ctx *ctx = test_ctx_new((size_t)128 << 20, 1, 0);
    if (!ctx) return;
    attn_ctx_set_kernel_flags(ctx, attn_ctx_kernel_flags(ctx) | prop_variants[variant].flags);
    attn_rng rng, prng;
    attn_rng_init(&rng, 20261205 + (uint64_t)variant);
    attn_rng_init(&prng, 0x5A55E0 + (uint64_t)variant);
    const int n_cases = variant ? 60 : 160;
    int failed_cases = 0;
    char tname[160];
    snprintf(tname, sizeof tname,
             "flash/property (%s): random shapes, masks and wide-range biases vs sdpa",
             prop_variants[variant].name);
    TEST_BEGIN(tname);
    for (int i = 0; i < n_cases; i++) {
        prop_case c;
        prop_draw(&rng, i, &c);
        if (i < 12) { /* the defect's two classes first, on fixed ragged shapes */
            static const int mixes[4] = {4, 5, 6, 3};
            c.bias_shape = 1 + i % 3;
            c.bias_mix = mixes[i % 4];
            c.exact = 1;
            c.scale = i % 2 ? 1.0f : 0.125f;
            c.dropout = 0;
            snprintf(c.label, sizeof c.label,
                     "prop %d (fixed): B%lld H%lld Hkv%lld T%lld S%lld D%lld Dv%lld causal %d window "
                     "%lld, bias shape %d mix %d, exact logits, scale %g",
                     i, (long long)c.B, (long long)c.H, (long long)c.Hkv, (long long)c.T,
                     (long long)c.S, (long long)c.D, (long long)c.Dv, c.causal, (long long)c.window,
                     c.bias_shape, c.bias_mix, (double)c.scale);
        }
        prop_sparse(&prng, i, &c);
        prop_inputs in;
        fres a = {0}, b = {0};
        float *gy = NULL;
        const int before = test__failed_checks;
        if (prop_make(&c, &rng, &in) == 0 &&
            (gy = malloc(sizeof(float) * (size_t)(c.B * c.H * c.T * c.Dv)))) {
            test_fill_normal(gy, c.B * c.H * c.T * c.Dv, &rng);
            if (prop_run(ctx, &c, &in, 1, gy, &a) == 0 && prop_run(ctx, &c, &in, 0, gy, &b) == 0) {
                char what[600];
                snprintf(what, sizeof what, "%s: out", c.label);
                test_allclose(what, a.out, b.out, a.n_out, FLASH_ATOL, FLASH_RTOL);
                snprintf(what, sizeof what, "%s: weights", c.label);
                test_allclose(what, a.w, b.w, a.n_w, WEIGHTS_ATOL, WEIGHTS_RTOL);
                float *bound[4] = {NULL, NULL, NULL, NULL};
                prop_grad_bounds(&c, &in, &b, gy, bound);
                for (int g = 0; g < 4; g++) {
                    if (!b.g[g]) continue;
                    snprintf(what, sizeof what, "%s: %s", c.label, gname[g]);
                    CHECK(a.g[g] != NULL, "%s missing", what);
                    if (a.g[g]) prop_close(what, a.g[g], b.g[g], bound[g], a.n[g]);
                    free(bound[g]);
                }
            }
        } else {
            CHECK(0, "%s: out of memory making the inputs", c.label);
        }
        failed_cases += test__failed_checks > before;
        free(gy);
        fres_free(&a), fres_free(&b);
        prop_inputs_free(&in);
    }
    if (test__verbose) printf("     property: %d cases, %d failed\n", n_cases, failed_cases);
    TEST_END();

    /* the bf16 forward (AMX, AVX-512 BF16 or widened) on the same kind of
     * cases, against the reference on the widened values: per element
     * 2^-8 sum_s P |V| + the f32 tolerance (test_bf16 above) */
    snprintf(tname, sizeof tname,
             "flash/property (%s): bf16 forward, random shapes, masks and biases vs sdpa",
             prop_variants[variant].name);
    TEST_BEGIN(tname);
    for (int i = 0; i < (variant ? 40 : 80); i++) {
        prop_case c;
        prop_draw(&rng, 1000 + i, &c);
        prop_sparse(&prng, 1000 + i, &c);
        c.dropout = 0;
        c.want_grad = 0;
        prop_inputs in;
        if (prop_make(&c, &rng, &in) != 0) {
            CHECK(0, "%s: out of memory", c.label);
            prop_inputs_free(&in);
            continue;
        }
        /* round q, k, v to bf16 (exact for the exact cases) */
        for (int t = 0; t < 3; t++) {
            uint16_t *hb = malloc(sizeof(uint16_t) * (size_t)in.n[t]);
            if (!hb) continue;
            attn_bf16_from_f32(hb, in.x[t], in.n[t]);
            attn_f32_from_bf16(in.x[t], hb, in.n[t]);
            if (t) {
                attn_bf16_from_f32(hb, in.clean[t], in.n[t]);
                attn_f32_from_bf16(in.clean[t], hb, in.n[t]);
            }
            free(hb);
        }
        float *outs[3] = {NULL, NULL, NULL};
        int64_t n_out = c.B * c.H * c.T * c.Dv;
        for (int mode = 0; mode < 3; mode++) { /* flash bf16, sdpa, sdpa with |v| */
            attn_ctx_reset(ctx);
            attn_ctx_set_grad_enabled(ctx, 0);
            attn_tensor *x[4] = {NULL, NULL, NULL, NULL};
            int ok = 1;
            for (int t = 0; t < 4 && in.x[t]; t++) {
                const float *src = mode && t >= 1 && t <= 2 ? in.clean[t] : in.x[t];
                if (mode == 0 && t < 3) {
                    uint16_t *hb = malloc(sizeof(uint16_t) * (size_t)in.n[t]);
                    if (hb) attn_bf16_from_f32(hb, src, in.n[t]);
                    x[t] = hb ? attn_tensor_from(ctx, ATTN_BF16, 4, in.sh[t], hb) : NULL;
                    free(hb);
                } else if (mode == 2 && t == 2) {
                    float *av = malloc(sizeof(float) * (size_t)in.n[t]);
                    if (av)
                        for (int64_t j = 0; j < in.n[t]; j++) av[j] = fabsf(src[j]);
                    x[t] = av ? attn_tensor_from(ctx, ATTN_F32, 4, in.sh[t], av) : NULL;
                    free(av);
                } else {
                    x[t] = attn_tensor_from(ctx, ATTN_F32, in.nd[t], in.sh[t], src);
                }
                ok &= x[t] != NULL;
            }
            attn_sdpa_opts o = {0};
            o.causal = c.causal;
            o.window = c.window;
            o.scale = c.scale;
            o.bias = x[3];
            if (c.has_sp) o.sparse = &c.sp;
            if (c.has_kl) o.key_lengths = attn_tensor_from(ctx, ATTN_I32, 1, &c.B, c.kl);
            if (c.alibi) {
                float sl[4];
                prop_slopes(&c, sl);
                o.alibi_slopes = attn_tensor_from(ctx, ATTN_F32, 1, &c.H, sl);
            }
            attn_tensor *y = !ok ? NULL
                             : mode == 0 ? attn_flash_sdpa(ctx, x[0], x[1], x[2], &o, NULL)
                                         : attn_sdpa(ctx, x[0], x[1], x[2], &o, NULL);
            attn_ctx_set_grad_enabled(ctx, 1);
            CHECK(y != NULL, "%s: bf16 mode %d: %s", c.label, mode, attn_last_error());
            if (y) outs[mode] = dup(attn_f32(y), n_out);
        }
        if (outs[0] && outs[1] && outs[2]) {
            int64_t bad = 0, first = -1;
            for (int64_t j = 0; j < n_out; j++) {
                const double tol =
                    0x1.0p-8 * (double)outs[2][j] + FLASH_ATOL + FLASH_RTOL * fabs(outs[1][j]);
                if (!(fabs((double)outs[0][j] - (double)outs[1][j]) <= tol)) {
                    if (first < 0) first = j;
                    bad++;
                }
            }
            CHECK(bad == 0, "%s: bf16: %lld of %lld outside 2^-8 P|V| + f32 tolerance (first [%lld]: %g vs %g)",
                  c.label, (long long)bad, (long long)n_out, (long long)first,
                  first >= 0 ? outs[0][first] : 0.0, first >= 0 ? outs[1][first] : 0.0);
        }
        for (int m = 0; m < 3; m++) free(outs[m]);
        prop_inputs_free(&in);
    }
    TEST_END();
    if (variant == 0) test_decode_path(ctx, &rng);
    test_bf16_backward(ctx, variant, &rng, &prng);
    attn_ctx_free(ctx);
}

/* ALiBi as a kernel parameter (opts.alibi_slopes) equals the materialised
 * bias of attn_alibi_bias, bitwise (the same f32 term is added to the same
 * logit), for both ops, forward and backward, causal and not, with a user
 * bias on top; and the parameter's errors. */
static void test_alibi_param(void) {
    TEST_BEGIN("flash/ALiBi slopes as a kernel parameter = the materialised [1,H,T,S] bias");
    attn_ctx *ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    const int64_t B = 2, H = 4, T = 37, S = 70, D = 24;
    for (int variant = 0; ctx && variant < 8; variant++) {
        const int flash = variant & 1, causal = variant >> 1 & 1, user_bias = variant >> 2 & 1;
        float *res[2][4] = {{NULL}};
        for (int mode = 0; mode < 2; mode++) { /* 0: parameter, 1: materialised */
            attn_ctx_reset(ctx);
            attn_rng rng;
            attn_rng_init(&rng, 77);
            const int64_t qs[4] = {B, H, T, D}, ks[4] = {B, H, S, D}, bs[2] = {T, S}, hs[1] = {H};
            float *buf = malloc(sizeof(float) * (size_t)(B * H * S * D));
            if (!buf) break;
            attn_tensor *x[4] = {NULL, NULL, NULL, NULL};
            for (int i = 0; i < 4; i++) {
                const int64_t n = i == 0 ? B * H * T * D : i == 3 ? T * S : B * H * S * D;
                test_fill_normal(buf, n, &rng);
                x[i] = i == 3 ? (user_bias ? test_leaf(ctx, 2, bs, buf) : NULL)
                              : test_leaf(ctx, 4, i == 0 ? qs : ks, buf);
            }
            free(buf);
            float sl[4];
            attn_alibi_slopes((int)H, sl);
            attn_sdpa_opts o = {0};
            o.causal = causal;
            o.bias = x[3];
            if (mode == 0) {
                o.alibi_slopes = attn_tensor_from(ctx, ATTN_F32, 1, hs, sl);
            } else {
                attn_tensor *al = attn_alibi_bias(ctx, (int)H, T, S, causal);
                o.bias = user_bias ? attn_add(ctx, al, x[3]) : al;
            }
            attn_tensor *y = flash ? attn_flash_sdpa(ctx, x[0], x[1], x[2], &o, NULL)
                                   : attn_sdpa(ctx, x[0], x[1], x[2], &o, NULL);
            CHECK(y != NULL, "variant %d mode %d: %s", variant, mode, attn_last_error());
            if (!y) break;
            float *gy = malloc(sizeof(float) * (size_t)attn_tensor_numel(y));
            if (gy) {
                test_fill_normal(gy, attn_tensor_numel(y), &rng);
                CHECK_OK(attn_backward_from(ctx, y, gy));
            }
            free(gy);
            res[mode][0] = dup(attn_f32(y), attn_tensor_numel(y));
            for (int i = 0; i < 3; i++) res[mode][i + 1] = dup(x[i]->grad, attn_tensor_numel(x[i]));
        }
        const int64_t n[4] = {B * H * T * D, B * H * T * D, B * H * S * D, B * H * S * D};
        for (int i = 0; i < 4; i++) {
            CHECK(res[0][i] && res[1][i] &&
                      memcmp(res[0][i], res[1][i], sizeof(float) * (size_t)n[i]) == 0,
                  "%s causal %d user bias %d: %s differs between slopes and the materialised bias",
                  flash ? "flash_sdpa" : "sdpa", causal, user_bias,
                  i == 0 ? "out" : gname[i - 1]);
            free(res[0][i]), free(res[1][i]);
        }
    }
    if (ctx) { /* errors */
        attn_ctx_reset(ctx);
        const int64_t sh[4] = {1, 2, 3, 4}, h3[1] = {3}, h2[1] = {2};
        float z[24] = {0}, bad[2] = {0.5f, NAN};
        attn_tensor *q = attn_tensor_from(ctx, ATTN_F32, 4, sh, z);
        attn_sdpa_opts o = {0};
        o.alibi_slopes = attn_tensor_from(ctx, ATTN_F32, 1, h3, z);
        test_expect_fail(ctx, attn_flash_sdpa(ctx, q, q, q, &o, NULL) == NULL, ATTN_ERR_SHAPE,
                         "alibi_slopes [3], expected [H] = [2]", "slopes of the wrong length");
        q = attn_tensor_from(ctx, ATTN_F32, 4, sh, z);
        o.alibi_slopes = attn_tensor_from(ctx, ATTN_F32, 1, h2, bad);
        test_expect_fail(ctx, attn_sdpa(ctx, q, q, q, &o, NULL) == NULL, ATTN_ERR_INVALID_ARG,
                         "alibi_slopes[1] = nan", "a NaN slope");
        q = attn_tensor_from(ctx, ATTN_F32, 4, sh, z);
        int32_t iz[2] = {0, 0};
        o.alibi_slopes = attn_tensor_from(ctx, ATTN_I32, 1, h2, iz);
        test_expect_fail(ctx, attn_flash_sdpa(ctx, q, q, q, &o, NULL) == NULL, ATTN_ERR_DTYPE,
                         "alibi_slopes", "i32 slopes");
    }
    if (ctx) attn_ctx_free(ctx);
    TEST_END();
}

/* The multi-head attention module with ALiBi positions on the fused op:
 * forward + backward at T = S = 2048 keep the arena peak O(S D), with no
 * [1, H, T, S] bias (which alone would be 64 MiB here) and no copies of the
 * heads of the packed projection beyond O(T E). */
static void test_mha_alibi_memory(void) {
    TEST_BEGIN("flash/MHA with ALiBi on the fused op: extra memory O(T E), no [H,T,S] bias");
    enum { T = 2048, E = 64, H = 4 };
    attn_ctx *ctx = test_ctx_new((size_t)96 << 20, 1, 0);
    attn_params *ps = NULL;
    CHECK_OK(attn_params_new(&ps));
    attn_rng rng;
    attn_rng_init(&rng, 11);
    attn_mha mha;
    attn_mha_config cfg = {.embed_dim = E, .n_heads = H, .packed = 1, .pos = ATTN_POS_ALIBI,
                           .kernel = ATTN_KERNEL_FUSED};
    float *x = malloc(sizeof(float) * T * E);
    if (ctx && ps && x && attn_mha_init(&mha, ps, "", &cfg, &rng) == ATTN_OK) {
        test_fill_normal(x, T * E, &rng);
        const int64_t xs[3] = {1, T, E};
        attn_tensor *xt = test_leaf(ctx, 3, xs, x);
        const size_t base = attn_ctx_arena_used(ctx);
        const attn_mha_call call = {.causal = 1};
        attn_tensor *y = attn_mha_forward(ctx, &mha, xt, xt, &call, NULL);
        CHECK(y != NULL, "forward: %s", attn_ctx_error(ctx));
        if (y) CHECK_OK(attn_backward_from(ctx, y, x));
        const size_t extra = attn_ctx_arena_peak(ctx) - base;
        const size_t bias_bytes = sizeof(float) * (size_t)H * T * T; /* 64 MiB */
        /* the packed projection, its gradient, the output and its gradient
         * (and the graph's intermediates: O(T E) floats, under 64 T E) plus
         * the fused op's per-thread O(S D) staging and 1 MiB of tiles */
        const size_t allowed = sizeof(float) * (size_t)(64 * T * E) + ((size_t)2 << 20);
        if (test__verbose)
            printf("     MHA ALiBi T=%d: arena %zu B above the input (a [H,T,S] bias: %zu B)\n", T,
                   extra, bias_bytes);
        CHECK(extra <= allowed, "extra %zu bytes, more than O(T E) (%zu); a [H,T,S] bias is %zu",
              extra, allowed, bias_bytes);
    }
    free(x);
    attn_params_free(ps);
    if (ctx) attn_ctx_free(ctx);
    TEST_END();
}

/* The AVX-512 row pass's pieces on their own: the exponential
 * (fl_exp16_maskz) against exp in double on a dense sweep of [-87, 0] (what
 * the row pass feeds it: logit - max), within 1.5e-7 relative (2.5 units in
 * the last place; measured 7.5e-8: a wrong constant or a lost Cody-Waite
 * step is off by orders of magnitude), exactly 1 at 0, exactly +0 on every
 * masked lane whatever it holds, NaN kept on an unmasked lane; and the 8-row
 * reductions (fl_red8_max exact, fl_red8_add against a double sum), whose
 * lane bookkeeping a swapped shuffle would scramble. */
#if defined(FL_X86)
__attribute__((target("avx512f"))) static void row_pass_pieces(void) {
    double worst = 0.0;
    float worst_x = 0.0f;
    const long n = 1L << 20;
    for (long i = 0; i <= n; i += 16) {
        float x[16], y[16];
        for (int j = 0; j < 16; j++) x[j] = -87.0f * (float)(i + j > n ? n : i + j) / (float)n;
        _mm512_storeu_ps(y, fl_exp16_maskz(0xFFFF, _mm512_loadu_ps(x)));
        for (int j = 0; j < 16; j++) {
            const double e = exp((double)x[j]), rel = fabs((double)y[j] - e) / e;
            if (!(rel <= worst)) worst = rel, worst_x = x[j];
        }
    }
    CHECK(worst <= 1.5e-7, "exp: relative error %.3g at x = %.9g (bound 1.5e-7)", worst, (double)worst_x);
    float in[16] = {0.0f, NAN, INFINITY, -INFINITY, 1e30f, -1e30f, FLT_MAX, -FLT_MAX,
                    -88.0f, -100.0f, 88.0f, 3.0f, -1.0f, -0.5f, NAN, -87.0f};
    float out[16];
    _mm512_storeu_ps(out, fl_exp16_maskz(0x0001 | 0x0002, _mm512_loadu_ps(in)));
    CHECK(out[0] == 1.0f, "exp(0) = %.9g, expected exactly 1", (double)out[0]);
    CHECK(isnan(out[1]), "exp(NaN) on an unmasked lane = %g, expected NaN", (double)out[1]);
    for (int j = 2; j < 16; j++) {
        uint32_t bits;
        memcpy(&bits, &out[j], sizeof bits);
        CHECK(bits == 0u, "masked lane %d (input %g) = %g, expected +0", j, (double)in[j], (double)out[j]);
    }
    uint64_t st = 0x9E3779B97F4A7C15ull;
    for (int trial = 0; trial < 200; trial++) {
        __m512 v[8];
        float a[8][16], mx[8], sm[8];
        for (int r = 0; r < 8; r++) {
            for (int j = 0; j < 16; j++) {
                st = st * 6364136223846793005ull + 1442695040888963407ull;
                a[r][j] = ((float)(st >> 40) / 16777216.0f - 0.5f) * (trial % 2 ? 1e4f : 2.0f);
            }
            v[r] = _mm512_loadu_ps(a[r]);
        }
        _mm256_storeu_ps(mx, fl_red8_max(v));
        _mm256_storeu_ps(sm, fl_red8_add(v));
        for (int r = 0; r < 8; r++) {
            float m = -INFINITY;
            double s = 0.0, sa = 0.0;
            for (int j = 0; j < 16; j++) {
                m = a[r][j] > m ? a[r][j] : m;
                s += a[r][j];
                sa += fabs(a[r][j]);
            }
            CHECK(mx[r] == m, "red8_max row %d: %g, expected %g (trial %d)", r, (double)mx[r], (double)m, trial);
            CHECK(fabs(sm[r] - s) <= 1e-6 * sa, "red8_add row %d: %.9g, expected %.9g (trial %d)", r,
                  (double)sm[r], s, trial);
        }
    }
}
#endif

static void test_row_pass_pieces(void) {
#if defined(FL_X86)
    if (__builtin_cpu_supports("avx512f")) {
        TEST_BEGIN("flash/AVX-512 row pass: exp within 2.5 ulp, masked lanes 0, 8-row reductions");
        row_pass_pieces();
        TEST_END();
        return;
    }
    test_skip("flash/AVX-512 row pass", "this CPU has no AVX-512");
#else
    test_skip("flash/AVX-512 row pass", "built without the AVX-512 kernels (ATTN_NO_CLONES or not x86)");
#endif
}

/* ---- strided views read in place ------------------------------------------------------------- */

/* One run of the strided-view test: q is head-split from a [B, T, H, D]
 * leaf by permute, k and v are the rows [s0, s0 + S) of [B, Hkv, Smax, D]
 * leaves (a KV cache's layout), every view read in place (copy = 0) or
 * through attn_contiguous (copy = 1). Fills the output and the three
 * leaves' gradients; *extra gets the arena bytes of the op's forward. */
static int strided_run(attn_ctx *ctx, const fcfg *c, int64_t Smax, int64_t s0, int copy,
                       int flash, fres *r, size_t *extra) {
    memset(r, 0, sizeof *r);
    attn_ctx_reset(ctx);
    attn_ctx_set_rng(ctx, 7, 3);
    attn_rng rng;
    attn_rng_init(&rng, 4321);
    const int64_t qsh[4] = {c->B, c->T, c->H, c->D}, ksh[4] = {c->B, c->Hkv, Smax, c->D},
                  vsh[4] = {c->B, c->Hkv, Smax, c->Dv};
    const int64_t *shp[3] = {qsh, ksh, vsh};
    attn_tensor *leaf[3], *x[3];
    for (int i = 0; i < 3; i++) {
        const int64_t n = shp[i][0] * shp[i][1] * shp[i][2] * shp[i][3];
        float *buf = malloc(sizeof(float) * (size_t)n);
        if (!buf) return -1;
        test_fill_normal(buf, n, &rng);
        leaf[i] = test_leaf(ctx, 4, shp[i], buf);
        free(buf);
        if (!leaf[i]) return -1;
        r->n[i] = n;
    }
    static const int perm[4] = {0, 2, 1, 3};
    x[0] = attn_permute(ctx, leaf[0], perm);
    x[1] = attn_slice(ctx, leaf[1], 2, s0, c->S);
    x[2] = attn_slice(ctx, leaf[2], 2, s0, c->S);
    for (int i = 0; i < 3; i++) {
        if (x[i] && copy) x[i] = attn_contiguous(ctx, x[i]);
        CHECK(x[i] != NULL, "%s: view %d: %s", c->label, i, attn_last_error());
        if (!x[i]) return -1;
    }
    CHECK(copy || c->T == 1 || !attn_tensor_is_contiguous(x[0]), "%s: the permuted q is contiguous",
          c->label);
    attn_sdpa_opts o = {0};
    o.causal = c->causal;
    o.window = c->window;
    o.dropout = c->dropout;
    if (c->has_kl) o.key_lengths = attn_tensor_from(ctx, ATTN_I32, 1, &c->B, c->kl);
    const size_t before = attn_ctx_arena_used(ctx);
    attn_tensor *y = flash ? attn_flash_sdpa(ctx, x[0], x[1], x[2], &o, NULL)
                           : attn_sdpa(ctx, x[0], x[1], x[2], &o, NULL);
    CHECK(y != NULL, "%s: %s on views: %s", c->label, flash ? "flash_sdpa" : "sdpa",
          attn_last_error());
    if (!y) return -1;
    *extra = attn_ctx_arena_used(ctx) - before;
    r->n_out = attn_tensor_numel(y);
    r->out = dup(attn_f32(y), r->n_out);
    float *gy = malloc(sizeof(float) * (size_t)r->n_out);
    if (!gy) return -1;
    test_fill_normal(gy, r->n_out, &rng);
    const attn_status st = attn_backward_from(ctx, y, gy);
    free(gy);
    CHECK(st == ATTN_OK, "%s: backward: %s", c->label, attn_last_error());
    for (int i = 0; i < 3; i++) r->g[i] = dup(leaf[i]->grad, r->n[i]);
    return 0;
}

/* attn_flash_sdpa (and attn_sdpa, the last run) read f32 views with unit
 * stride along D in place: the output and the leaves' gradients are bitwise
 * those of the same views copied contiguous first, on every kernel variant
 * and under bf16 precision, and the op allocates no copy of them (its arena use on the
 * views is no more than on contiguous inputs). A kernel that took the
 * contiguous strides for a view reads the wrong rows and fails the
 * comparison. */
static void test_strided_views(void) {
    const fcfg cs[4] = {
        {"views: causal, GQA, cache prefix at 0", 2, 4, 2, 70, 200, 64, 64, 1, 0, 0.0f, 0, 0,
         {0, 0}, 1},
        {"views: window, Dv != D, key_lengths", 2, 2, 2, 65, 130, 48, 80, 0, 40, 0.0f, 0, 1,
         {130, 61}, 1},
        {"views: decode step T = 1, dropout", 1, 3, 3, 1, 600, 64, 64, 1, 0, 0.1f, 0, 0, {0, 0}, 1},
        {"views: T = 3 over S = 9", 1, 2, 1, 3, 9, 16, 16, 1, 0, 0.0f, 0, 0, {0, 0}, 1},
    };
    static const int64_t smax[4] = {320, 131, 700, 40}, s0s[4] = {0, 1, 57, 30};
    for (int variant = 0; variant < 4; variant++)
        for (int bf = 0; bf < (variant < 3 ? 2 : 1); bf++) {
            const int flash = variant < 3;
            char tname[160];
            snprintf(tname, sizeof tname, "flash/strided views read in place (%s%s)",
                     flash ? prop_variants[variant].name : "the reference op attn_sdpa",
                     bf ? ", bf16 precision" : "");
            TEST_BEGIN(tname);
            attn_ctx *ctx = test_ctx_new((size_t)128 << 20, 2, 0);
            if (ctx) {
                if (flash)
                    attn_ctx_set_kernel_flags(ctx, attn_ctx_kernel_flags(ctx) |
                                                       prop_variants[variant].flags);
                attn_ctx_set_training(ctx, 1);
                if (bf) attn_ctx_set_precision(ctx, ATTN_PRECISION_BF16);
                for (int k = 0; k < 4; k++) {
                    fres a = {0}, b = {0};
                    size_t ea = 0, eb = 0;
                    if (strided_run(ctx, &cs[k], smax[k], s0s[k], 0, flash, &a, &ea) == 0 &&
                        strided_run(ctx, &cs[k], smax[k], s0s[k], 1, flash, &b, &eb) == 0) {
                        CHECK(memcmp(a.out, b.out, sizeof(float) * (size_t)a.n_out) == 0,
                              "%s: out differs from the contiguous copies'", cs[k].label);
                        for (int i = 0; i < 3; i++)
                            CHECK(memcmp(a.g[i], b.g[i], sizeof(float) * (size_t)a.n[i]) == 0,
                                  "%s: %s differs from the contiguous copies'", cs[k].label,
                                  gname[i]);
                        CHECK(ea <= eb, "%s: the op used %zu arena bytes on the views, %zu on "
                              "contiguous inputs (a copy of the views?)", cs[k].label, ea, eb);
                    }
                    fres_free(&a);
                    fres_free(&b);
                }
                attn_ctx_free(ctx);
            }
            TEST_END();
        }
}

/* ---- the reference kernels on extreme logits -------------------------------------------------- */

/* The scalar reference kernels (use_ref) follow the fast kernels' f32
 * logits (found by an audit, 2026-12-07): attn_sdpa's reference on a row
 * masked whole by a -1e9 bias gives the uniform row (it added the bias in
 * double and gave [0.119, 0.881]), and attn_flash_sdpa's reference with
 * logits near 1e4 and gradients keeps its weights within 1e-6 of a
 * probability distribution and its dV next to attn_sdpa's (its double
 * logits did not fit the tile products that recompute them: weights 1.004,
 * dV off by 0.4%). */
static void test_reference_extremes(void) {
    TEST_BEGIN("flash/reference kernels on -1e9 rows and logits near 1e4 (use_ref)");
    attn_ctx *ctx = test_ctx_new((size_t)16 << 20, 1, 0);
    if (ctx) {
        /* 1. a whole row at -1e9 */
        attn_ctx_set_use_ref(ctx, 1);
        const int64_t q1[4] = {1, 1, 1, 1}, k1[4] = {1, 1, 2, 1}, b1[2] = {1, 2};
        const float qv[1] = {1.0f}, kv[2] = {0.0f, 2.0f}, vv[2] = {0.0f, 1.0f},
                    bv[2] = {-1e9f, -1e9f};
        for (int flash = 0; flash < 2; flash++) {
            attn_ctx_reset(ctx);
            attn_sdpa_opts o = {0};
            o.scale = 1.0f;
            o.bias = attn_tensor_from(ctx, ATTN_F32, 2, b1, bv);
            attn_tensor *q = attn_tensor_from(ctx, ATTN_F32, 4, q1, qv),
                        *k = attn_tensor_from(ctx, ATTN_F32, 4, k1, kv),
                        *v = attn_tensor_from(ctx, ATTN_F32, 4, k1, vv), *w = NULL;
            attn_tensor *y = flash ? attn_flash_sdpa(ctx, q, k, v, &o, &w) : attn_sdpa(ctx, q, k, v, &o, &w);
            CHECK(y && w, "%s: %s", flash ? "flash" : "sdpa", attn_last_error());
            if (y && w)
                CHECK(attn_f32(y)[0] == 0.5f && attn_f32(w)[0] == 0.5f && attn_f32(w)[1] == 0.5f,
                      "%s reference, -1e9 row: out %.9g weights [%.9g %.9g], expected 0.5 [0.5 0.5]",
                      flash ? "flash" : "sdpa", attn_f32(y)[0], attn_f32(w)[0], attn_f32(w)[1]);
        }
        /* 2. logits near 1e4, with gradients: flash reference vs fast sdpa */
        const int64_t T = 67, D = 16, sh[4] = {1, 1, T, D};
        float *x[3], *gy = malloc(sizeof(float) * T * D);
        attn_rng rng;
        attn_rng_init(&rng, 31);
        for (int i = 0; i < 3; i++) {
            x[i] = malloc(sizeof(float) * T * D);
            if (x[i]) test_fill_normal(x[i], T * D, &rng);
            for (int64_t j = 0; x[i] && i < 2 && j < T * D; j++) x[i][j] *= 100.0f;
        }
        if (gy) test_fill_normal(gy, T * D, &rng);
        float *dv[2] = {NULL, NULL};
        for (int flash = 0; flash < 2 && gy && x[0] && x[1] && x[2]; flash++) {
            attn_ctx_set_use_ref(ctx, flash);
            attn_ctx_reset(ctx);
            attn_tensor *q = test_leaf(ctx, 4, sh, x[0]), *k = test_leaf(ctx, 4, sh, x[1]),
                        *v = test_leaf(ctx, 4, sh, x[2]), *w = NULL;
            attn_sdpa_opts o = {0};
            o.causal = 1;
            attn_tensor *y = flash ? attn_flash_sdpa(ctx, q, k, v, &o, &w) : attn_sdpa(ctx, q, k, v, &o, &w);
            CHECK(y && w && attn_backward_from(ctx, y, gy) == ATTN_OK, "%s", attn_last_error());
            if (!y || !w || !v->grad) continue;
            double worst = 0.0;
            for (int64_t t = 0; t < T; t++) {
                double sum = 0.0;
                for (int64_t s = 0; s < T; s++) {
                    const double p = attn_f32(w)[t * T + s];
                    sum += p;
                    if (p - 1.0 > worst) worst = p - 1.0;
                }
                if (fabs(sum - 1.0) > worst) worst = fabs(sum - 1.0);
            }
            CHECK(worst <= 1e-6, "%s: weights leave a distribution by %.3g (bound 1e-6)",
                  flash ? "flash reference" : "sdpa", worst);
            dv[flash] = dup(v->grad, T * D);
        }
        if (dv[0] && dv[1]) test_allclose("flash reference dv vs sdpa", dv[1], dv[0], T * D, FLASH_ATOL, FLASH_RTOL);
        for (int i = 0; i < 3; i++) free(x[i]);
        free(gy), free(dv[0]), free(dv[1]);
        attn_ctx_free(ctx);
    }
    TEST_END();
}

void suite_flash(void) {
    test_row_pass_pieces();
    test_bf16();
    test_against_sdpa();
    for (int v = 0; v < 3; v++) test_property(v);
    test_alibi_param();
    test_mha_alibi_memory();
    test_empty_rows();
    test_threads();
    test_strided_views();
    test_reference_extremes();
    test_memory();
}
