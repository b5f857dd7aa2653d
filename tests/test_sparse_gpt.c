/* test_sparse_gpt.c: block-sparse patterns inside the GPT (attn_gpt_config
 * .sparse, .sparse_by_layer; docs/sparse.md "In the language model"; suite
 * "sparse_gpt").
 *
 *   - the text form: attn_sparse_parse / attn_sparse_format round trips for
 *     every kind, and each malformed text refused with its reason;
 *   - the same model on the fused kernel and on the reference kernel (which
 *     applies the pattern as an element mask) gives the same logits, loss
 *     and parameter gradients, for every kind, per head (alternate) and per
 *     layer (sparse_by_layer), at a ragged length (T = 37); and the loss
 *     differs from the dense model's (the pattern is really applied);
 *   - a KV cache: the logits of tokens fed after a cached prefix equal
 *     those of the whole sequence in one forward (positions of the full
 *     sequence);
 *   - files: the pattern survives attn_gpt_save / attn_gpt_load; bad
 *     configurations are refused with their reason.
 * Tolerances: fused vs reference logits and loss 2e-5 + 1e-4 |ref| (the
 * flash suite's, the op's tolerance: one model of two layers stays within
 * it); gradients 5e-5 + 1e-3 |ref| (summed over B T positions); cache
 * 1e-5 + 1e-4 |ref| (the fused op on both sides).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

#define SG_ATOL 2e-5f
#define SG_RTOL 1e-4f
#define SG_GATOL 5e-5f
#define SG_GRTOL 1e-3f

static void test_text(void) {
    TEST_BEGIN("sparse_gpt/text");
    static const char *good[] = {
        "local1d:block=9",
        "local2d:width=6,bh=2,bw=3,mh=2,mw=1",
        "strided:block=6,heads=alternate",
        "fixed:block=8,summary=2,heads=alternate,offsets=1",
        "sliding:window=5",
        "dilated:window=9,dilation=2",
        "global:window=5,globals=3",
        "fixed:block=8,summary=2,heads=b,causal=1",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        attn_sparse_pattern p, q;
        char buf[256];
        CHECK_OK(attn_sparse_parse(good[i], &p));
        CHECK(attn_sparse_format(&p, buf, sizeof buf) == 0, "format '%s'", good[i]);
        CHECK_OK(attn_sparse_parse(buf, &q));
        CHECK(memcmp(&p, &q, sizeof p) == 0, "'%s' -> '%s' does not parse back", good[i], buf);
    }
    attn_sparse_pattern p;
    CHECK_OK(attn_sparse_parse("strided:block=6", &p));
    CHECK(p.kind == ATTN_SPARSE_STRIDED && p.block == 6 && p.heads == ATTN_SPARSE_HEADS_UNION,
          "strided:block=6 read as kind %d block %lld heads %d", p.kind, (long long)p.block, p.heads);
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"banded:block=4", "unknown kind"},
        {"local1d", "block"},
        {"local1d:block=0", "block"},
        {"local1d:block=-3", "integer"},
        {"local1d:block=4x", "integer"},
        {"local1d:block=99999999999", "integer"},
        {"local1d:blok=4", "unknown key"},
        {"local1d:block", "key=value"},
        {"local1d:=4", "key=value"},
        {"fixed:block=4,summary=5", "summary"},
        {"strided:block=4,heads=diagonal", "heads"},
        {"local2d:width=6,bh=2,bw=0,mh=1,mw=1", "block_w"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&p, 0x5a, sizeof p);
        const attn_status st = attn_sparse_parse(bad[i].text, &p);
        CHECK(st == ATTN_ERR_INVALID_ARG && strstr(attn_last_error(), bad[i].why),
              "'%s': status %d, message '%s' (expected one naming '%s')", bad[i].text, (int)st,
              attn_last_error(), bad[i].why);
        CHECK(p.kind == 0x5a5a5a5a, "'%s': the output was written on error", bad[i].text);
    }
    char longtext[400];
    memset(longtext, 'a', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = 0;
    CHECK(attn_sparse_parse(longtext, &p) == ATTN_ERR_INVALID_ARG, "a 399-character text accepted");
    CHECK(attn_sparse_parse(NULL, &p) == ATTN_ERR_INVALID_ARG, "NULL accepted");
    char small[8];
    CHECK_OK(attn_sparse_parse("global:window=5,globals=3", &p));
    CHECK(attn_sparse_format(&p, small, sizeof small) == -1, "a cut text reported as whole");
    TEST_END();
}

#define SG_V 11
#define SG_B 2
#define SG_T 37

static attn_gpt *sg_model(attn_params **ps, const attn_sparse_pattern *sp, int by_layer,
                          attn_attention_kernel kernel, uint64_t seed) {
    attn_gpt_config gc;
    memset(&gc, 0, sizeof gc);
    gc.vocab = SG_V;
    gc.ctx_len = 40;
    gc.n_layers = 2;
    gc.n_heads = 4;
    gc.d_model = 16;
    gc.d_ff = 24;
    gc.pos = ATTN_POS_LEARNED;
    gc.tied = 1;
    gc.kernel = kernel;
    if (sp) gc.sparse = *sp;
    gc.sparse_by_layer = by_layer;
    attn_rng rng;
    attn_rng_init(&rng, seed);
    attn_gpt *m = NULL;
    *ps = NULL;
    CHECK_OK(attn_params_new(ps));
    CHECK_OK(attn_gpt_new(&m, *ps, &gc, &rng));
    /* weights far from GPT-2's small init: attention far from uniform */
    for (int i = 0; m && i < attn_params_count(*ps); i++) {
        attn_tensor *p = attn_params_at(*ps, i);
        if (p->ndim == 2) attn_init_normal(p, 0.3f, &rng);
    }
    return m;
}

/* loss (and logits into lg, gradients into the params) of m on the batch */
static float sg_loss(attn_ctx *ctx, attn_gpt *m, attn_params *ps, const int32_t *in,
                     const int32_t *tg, float *lg) {
    attn_ctx_reset(ctx);
    attn_params_zero_grad(ps);
    attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){SG_B, SG_T}, in);
    attn_tensor *tt = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){SG_B, SG_T}, tg);
    attn_tensor *logits = attn_gpt_logits(ctx, m, ti, NULL);
    attn_tensor *loss = attn_gpt_loss(ctx, m, ti, tt, -1);
    CHECK(logits && loss, "%s", attn_ctx_error(ctx));
    if (!logits || !loss) return NAN;
    memcpy(lg, attn_f32(logits), sizeof(float) * SG_B * SG_T * SG_V);
    CHECK_OK(attn_backward(ctx, loss));
    return attn_f32(loss)[0];
}

static void test_kernels(void) {
    TEST_BEGIN("sparse_gpt/fused equals reference");
    static const struct {
        const char *text;
        int by_layer;
    } cases[] = {
        {"local1d:block=9", 0},
        {"local2d:width=6,bh=2,bw=3,mh=2,mw=1", 0},
        {"strided:block=6,heads=alternate", 0},
        {"strided:block=6", 1},
        {"fixed:block=8,summary=2,heads=alternate,offsets=1", 0},
        {"fixed:block=8,summary=2", 1},
        {"sliding:window=5", 0},
        {"dilated:window=9,dilation=2", 0},
        {"global:window=5,globals=3", 0},
    };
    int32_t in[SG_B * SG_T], tg[SG_B * SG_T];
    for (int i = 0; i < SG_B * SG_T; i++) in[i] = (i * 7 + 3) % SG_V, tg[i] = (i * 5 + 1) % SG_V;
    static float lf[SG_B * SG_T * SG_V], lr[SG_B * SG_T * SG_V], ld[SG_B * SG_T * SG_V];
    attn_ctx *ctx = test_ctx_new((size_t)64 << 20, 1, 64);
    attn_params *pd = NULL;
    attn_gpt *dense = sg_model(&pd, NULL, 0, ATTN_KERNEL_FUSED, 5);
    const float loss_dense = ctx && dense ? sg_loss(ctx, dense, pd, in, tg, ld) : NAN;
    for (size_t c = 0; ctx && dense && c < sizeof cases / sizeof cases[0]; c++) {
        attn_sparse_pattern sp;
        CHECK_OK(attn_sparse_parse(cases[c].text, &sp));
        attn_params *pf = NULL, *pr = NULL;
        attn_gpt *mf = sg_model(&pf, &sp, cases[c].by_layer, ATTN_KERNEL_FUSED, 5);
        attn_gpt *mr = sg_model(&pr, &sp, cases[c].by_layer, ATTN_KERNEL_REFERENCE, 5);
        if (mf && mr) {
            const float a = sg_loss(ctx, mf, pf, in, tg, lf), b = sg_loss(ctx, mr, pr, in, tg, lr);
            char what[160];
            snprintf(what, sizeof what, "%s%s: logits", cases[c].text, cases[c].by_layer ? " by layer" : "");
            test_allclose(what, lf, lr, SG_B * SG_T * SG_V, SG_ATOL, SG_RTOL);
            CHECK(fabsf(a - b) <= SG_ATOL + SG_RTOL * fabsf(b), "%s: loss fused %.7f, reference %.7f", what,
                  (double)a, (double)b);
            CHECK(fabsf(a - loss_dense) > 1e-3f, "%s: loss %.6f equals the dense model's %.6f", what, (double)a,
                  (double)loss_dense);
            for (int i = 0; i < attn_params_count(pf); i++) {
                attn_tensor *x = attn_params_at(pf, i), *y = attn_params_at(pr, i);
                snprintf(what, sizeof what, "%s%s: grad %s", cases[c].text, cases[c].by_layer ? " by layer" : "",
                         x->name);
                test_allclose(what, x->grad, y->grad, attn_tensor_numel(x), SG_GATOL, SG_GRTOL);
            }
        }
        attn_gpt_free(mf);
        attn_gpt_free(mr);
        attn_params_free(pf);
        attn_params_free(pr);
    }
    attn_gpt_free(dense);
    attn_params_free(pd);
    attn_ctx_free(ctx);
    TEST_END();
}

static void test_cache(void) {
    TEST_BEGIN("sparse_gpt/kv_cache");
    attn_sparse_pattern sp;
    CHECK_OK(attn_sparse_parse("fixed:block=8,summary=2,heads=alternate", &sp));
    attn_params *ps = NULL;
    attn_gpt *m = sg_model(&ps, &sp, 0, ATTN_KERNEL_FUSED, 9);
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 64);
    if (m && ctx) {
        attn_ctx_set_grad_enabled(ctx, 0);
        int32_t ids[SG_T];
        for (int i = 0; i < SG_T; i++) ids[i] = (i * 3 + 1) % SG_V;
        attn_tensor *all = attn_gpt_logits(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, SG_T}, ids), NULL);
        CHECK(all != NULL, "%s", attn_ctx_error(ctx));
        attn_kv_cache cache;
        memset(&cache, 0, sizeof cache);
        CHECK_OK(attn_gpt_cache_init(m, 1, &cache));
        const int64_t P = 21; /* prefix, then the rest in one call */
        attn_tensor *a = attn_gpt_logits(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, P}, ids), &cache);
        attn_tensor *b =
            attn_gpt_logits(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, SG_T - P}, ids + P), &cache);
        CHECK(a && b, "%s", attn_ctx_error(ctx));
        if (all && a && b) {
            test_allclose("prefix", attn_f32(a), attn_f32(all), P * SG_V, 1e-5f, 1e-4f);
            test_allclose("after the cached prefix", attn_f32(b), attn_f32(all) + P * SG_V, (SG_T - P) * SG_V, 1e-5f,
                          1e-4f);
        }
        attn_kv_cache_free(&cache);
    }
    attn_ctx_free(ctx);
    attn_gpt_free(m);
    attn_params_free(ps);
    TEST_END();
}

static void test_files(void) {
    TEST_BEGIN("sparse_gpt/files and errors");
    attn_sparse_pattern sp;
    CHECK_OK(attn_sparse_parse("local2d:width=6,bh=2,bw=3,mh=2,mw=1", &sp));
    attn_params *ps = NULL;
    attn_gpt *m = sg_model(&ps, &sp, 0, ATTN_KERNEL_AUTO, 3);
    char dir[512], path[600];
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/attn_test_sgpt_XXXXXX", base && base[0] ? base : "/tmp");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (m) {
        CHECK_OK(attn_gpt_save(path, m, NULL, 0));
        attn_params *ps2 = NULL;
        attn_gpt *m2 = NULL;
        CHECK_OK(attn_params_new(&ps2));
        CHECK_OK(attn_gpt_load(path, ps2, &m2));
        CHECK(m2 && memcmp(&m2->cfg, &m->cfg, sizeof m->cfg) == 0, "configuration differs after load");
        CHECK(m2 && m2->cfg.sparse.kind == ATTN_SPARSE_LOCAL_2D && m2->cfg.sparse.margin_w == 1,
              "the pattern is lost");
        attn_gpt_free(m2);
        attn_params_free(ps2);
        remove(path);
    }
    rmdir(dir);
    attn_gpt_free(m);
    attn_params_free(ps);
    /* refused configurations */
    attn_gpt_config gc;
    memset(&gc, 0, sizeof gc);
    gc.vocab = 5, gc.ctx_len = 8, gc.n_layers = 2, gc.n_heads = 2, gc.d_model = 8;
    gc.pos = ATTN_POS_LEARNED;
    static const char *why[3] = {"block", "sparse_by_layer", "synth"};
    for (int k = 0; k < 3; k++) {
        attn_gpt_config c = gc;
        if (k == 0) c.sparse.kind = ATTN_SPARSE_LOCAL_1D; /* block 0 */
        if (k == 1) c.sparse.kind = ATTN_SPARSE_SLIDING, c.sparse.window = 3, c.sparse_by_layer = 1;
        if (k == 2) c.sparse.kind = ATTN_SPARSE_SLIDING, c.sparse.window = 3, c.synth = ATTN_SYNTH_DENSE;
        attn_params *p2 = NULL;
        attn_gpt *g = NULL;
        CHECK_OK(attn_params_new(&p2));
        const attn_status st = attn_gpt_new(&g, p2, &c, NULL);
        CHECK(st == ATTN_ERR_INVALID_ARG && !g && strstr(attn_last_error(), why[k]),
              "case %d: status %d, '%s' (expected a message naming %s)", k, (int)st, attn_last_error(), why[k]);
        attn_gpt_free(g);
        attn_params_free(p2);
    }
    TEST_END();
}

void suite_sparse_gpt(void) {
    test_text();
    test_kernels();
    test_cache();
    test_files();
}
