/* test_bert.c: the BERT-style encoder (include/attn/bert.h).
 *
 *   fixture     against PyTorch (tools/make_bert_fixtures.py): post-LN and
 *               pre-LN models with padded rows load under attn's names, then
 *               the encoder's output, the MLM logits and loss, the
 *               classification logits and loss and EVERY parameter's
 *               gradient of each loss must match (tolerances below).
 *   mask_rule   attn_bert_mask reproduces the rule written in bert.h, as
 *               recomputed in Python from Philox (the same ids, exactly).
 *   mask_stats  over about 10^5 eligible positions: 15% selected, and of
 *               those 80% [MASK], 10% random, 10% kept, each within 5
 *               binomial standard deviations; padding, specials and [MASK]
 *               never selected; random ids in range; a pure function of
 *               (seed, stream).
 *   padding     the [CLS] output and the class logits of a row do not
 *               depend on the padding after it (its amount or its ids), nor
 *               on the other rows of the batch; without the lengths they do
 *               (so the test can fail).
 *   checkpoint  save / load round trip; a pretrained MLM model's encoder
 *               loads into a classifier (encoder bits equal, heads left
 *               alone, the same encoder output); mismatches are errors.
 *   data        the fortune-file corpus (truncation, chunking, labels), padded
 *               batches, the row sampler; errors.
 *   errors      shapes, lengths, labels, missing heads, configurations.
 *   maps        attn_bert_encode_ex's per-layer attention weights: each row
 *               of a real token sums to 1 over the row's real keys and is
 *               exactly 0 at padding keys; the encoder output is unchanged.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "test.h"

/* Tolerances of the fixture check (|a - b| <= atol + rtol |ref|): float32
 * here against a float64 oracle, as the GPT's (test_gpt.c). */
#define BERT_HIDDEN_ATOL 2e-5f
#define BERT_HIDDEN_RTOL 1e-5f
#define BERT_LOGITS_ATOL 2e-5f
#define BERT_LOGITS_RTOL 1e-5f
#define BERT_LOSS_ATOL 5e-6f
#define BERT_GRAD_ATOL 2e-6f
#define BERT_GRAD_RTOL 1e-4f

static attn_tensor *i32_tensor(attn_ctx *ctx, int ndim, const int64_t *shape, const int32_t *v) {
    return attn_tensor_from(ctx, ATTN_I32, ndim, shape, v);
}

static void check_grads(const atfx_file *fx, attn_params *ps, const char *tag) {
    int n_checked = 0;
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        const atfx_tensor *g = atfx_findf(fx, "c0.%s.%s", tag, p->name);
        CHECK(g != NULL, "no PyTorch gradient %s for %s", tag, p->name);
        if (!g) continue;
        CHECK(g->numel == attn_tensor_numel(p), "%s: %lld vs %lld elements", p->name,
              (long long)g->numel, (long long)attn_tensor_numel(p));
        if (g->numel != attn_tensor_numel(p)) continue;
        char what[160];
        snprintf(what, sizeof what, "%s %s", tag, p->name);
        test_allclose(what, p->grad, atfx_f32(g), g->numel, BERT_GRAD_ATOL, BERT_GRAD_RTOL);
        n_checked++;
    }
    char pre[32];
    snprintf(pre, sizeof pre, "c0.%s.", tag);
    int n_fx = 0;
    for (int i = 0; i < fx->n; i++)
        if (strncmp(fx->tensors[i].name, pre, strlen(pre)) == 0) n_fx++;
    CHECK(n_checked == attn_params_count(ps) && n_fx == n_checked,
          "%s: %d of %d gradients checked; the fixture has %d", tag, n_checked,
          attn_params_count(ps), n_fx);
}

static void fixture_case(int k) {
    char name[64], path[600], err[256];
    snprintf(name, sizeof name, "bert/fixture_c%d", k);
    TEST_BEGIN(name);
    snprintf(path, sizeof path, "%s/bert_c%d.atfx", test_fixture_dir(), k);
    atfx_file *fx = NULL;
    attn_status st = atfx_load(path, &fx, err, sizeof err);
    CHECK(st == ATTN_OK, "fixture: %s", err);
    if (st != ATTN_OK) {
        TEST_END();
        return;
    }
    const atfx_tensor *cfg_t = atfx_find(fx, "c0.cfg"), *eps_t = atfx_find(fx, "c0.eps");
    const atfx_tensor *ids_t = atfx_find(fx, "c0.ids"), *len_t = atfx_find(fx, "c0.lengths");
    const atfx_tensor *ml_t = atfx_find(fx, "c0.mlm_labels"), *cl_t = atfx_find(fx, "c0.cls_labels");
    const atfx_tensor *h_t = atfx_find(fx, "c0.hidden"), *mlo_t = atfx_find(fx, "c0.mlm_logits");
    const atfx_tensor *mloss_t = atfx_find(fx, "c0.mlm_loss"), *clo_t = atfx_find(fx, "c0.cls_logits");
    const atfx_tensor *closs_t = atfx_find(fx, "c0.cls_loss");
    const int complete = cfg_t && eps_t && ids_t && len_t && ml_t && cl_t && h_t && mlo_t &&
                         mloss_t && clo_t && closs_t;
    CHECK(complete, "fixture %s incomplete", path);
    attn_params *ps = NULL;
    attn_bert *m = NULL;
    attn_ctx *ctx = NULL;
    if (!complete) goto done;
    const int32_t *c = atfx_i32(cfg_t);
    attn_bert_config bc;
    memset(&bc, 0, sizeof bc);
    bc.vocab = c[0];
    bc.max_len = c[1];
    bc.n_layers = c[2];
    bc.n_heads = c[3];
    bc.d_model = c[4];
    bc.d_ff = c[5];
    bc.norm_first = c[6];
    bc.n_classes = c[7];
    bc.ln_eps = atfx_f32(eps_t)[0];
    bc.mlm = 1;
    const int64_t B = c[8], T = c[9], E = c[4], V = c[0], C = c[7];
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_bert_new(&m, ps, &bc, NULL));
    if (!m) goto done;
    snprintf(path, sizeof path, "%s/bert_c%d.safetensors", test_fixture_dir(), k);
    CHECK_OK(attn_safetensors_load_params(path, ps, 0)); /* strict: same names, nothing else */
    ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    if (!ctx) goto done;

    /* The encoder's output, padded rows included (torch computes them the same way). */
    attn_tensor *ids = i32_tensor(ctx, 2, (int64_t[]){B, T}, atfx_i32(ids_t));
    attn_tensor *lens = i32_tensor(ctx, 1, (int64_t[]){B}, atfx_i32(len_t));
    attn_tensor *h = attn_bert_encode(ctx, m, ids, lens);
    CHECK(h && h->ndim == 3 && h->shape[0] == B && h->shape[1] == T && h->shape[2] == E,
          "hidden: %s", h ? "wrong shape" : attn_ctx_error(ctx));
    if (h) test_allclose("hidden", attn_f32(h), atfx_f32(h_t), B * T * E, BERT_HIDDEN_ATOL, BERT_HIDDEN_RTOL);
    attn_ctx_reset(ctx);

    /* MLM: logits of the labelled positions, loss, every gradient. */
    attn_params_zero_grad(ps);
    ids = i32_tensor(ctx, 2, (int64_t[]){B, T}, atfx_i32(ids_t));
    lens = i32_tensor(ctx, 1, (int64_t[]){B}, atfx_i32(len_t));
    attn_tensor *ml = i32_tensor(ctx, 2, (int64_t[]){B, T}, atfx_i32(ml_t));
    int64_t correct = -1, count = -1;
    attn_tensor *loss = attn_bert_mlm_loss(ctx, m, ids, lens, ml, &correct, &count);
    CHECK(loss != NULL, "mlm loss: %s", attn_ctx_error(ctx));
    if (loss) {
        const float ref = atfx_f32(mloss_t)[0];
        CHECK(fabsf(attn_f32(loss)[0] - ref) <= BERT_LOSS_ATOL, "mlm loss %.7f, PyTorch %.7f",
              (double)attn_f32(loss)[0], (double)ref);
        CHECK(count == mlo_t->shape[0], "%lld labelled positions, the fixture has %lld",
              (long long)count, (long long)mlo_t->shape[0]);
        /* The head's logits: recompute on the same h through the public call. */
        const int32_t *lab = atfx_i32(ml_t);
        int32_t posv[256];
        int64_t n = 0;
        for (int64_t i = 0; i < B * T && n < 256; i++)
            if (lab[i] >= 0) posv[n++] = (int32_t)i;
        CHECK_OK(attn_backward(ctx, loss));
        check_grads(fx, ps, "grad_mlm");
        attn_ctx_set_grad_enabled(ctx, 0);
        h = attn_bert_encode(ctx, m, ids, lens);
        attn_tensor *lg = attn_bert_mlm_logits(ctx, m, h, i32_tensor(ctx, 1, (int64_t[]){n}, posv));
        CHECK(lg && lg->shape[0] == n && lg->shape[1] == V, "mlm logits: %s",
              lg ? "wrong shape" : attn_ctx_error(ctx));
        if (lg && n == mlo_t->shape[0])
            test_allclose("mlm logits", attn_f32(lg), atfx_f32(mlo_t), n * V, BERT_LOGITS_ATOL,
                          BERT_LOGITS_RTOL);
        attn_ctx_set_grad_enabled(ctx, 1);
    }
    attn_ctx_reset(ctx);

    /* Classification: logits, loss, every gradient (the MLM head's are 0). */
    attn_params_zero_grad(ps);
    ids = i32_tensor(ctx, 2, (int64_t[]){B, T}, atfx_i32(ids_t));
    lens = i32_tensor(ctx, 1, (int64_t[]){B}, atfx_i32(len_t));
    attn_tensor *cl = i32_tensor(ctx, 1, (int64_t[]){B}, atfx_i32(cl_t));
    loss = attn_bert_cls_loss(ctx, m, ids, lens, cl, &correct);
    CHECK(loss != NULL, "cls loss: %s", attn_ctx_error(ctx));
    if (loss) {
        const float ref = atfx_f32(closs_t)[0];
        CHECK(fabsf(attn_f32(loss)[0] - ref) <= BERT_LOSS_ATOL, "cls loss %.7f, PyTorch %.7f",
              (double)attn_f32(loss)[0], (double)ref);
        CHECK_OK(attn_backward(ctx, loss));
        check_grads(fx, ps, "grad_cls");
        attn_ctx_set_grad_enabled(ctx, 0);
        attn_tensor *lg = attn_bert_cls_logits(ctx, m, ids, lens);
        CHECK(lg && lg->shape[0] == B && lg->shape[1] == C, "cls logits: %s",
              lg ? "wrong shape" : attn_ctx_error(ctx));
        if (lg) {
            test_allclose("cls logits", attn_f32(lg), atfx_f32(clo_t), B * C, BERT_LOGITS_ATOL,
                          BERT_LOGITS_RTOL);
            /* correct counts the rows whose arg max is the label. */
            int64_t want = 0;
            for (int64_t b = 0; b < B; b++) {
                int64_t best = 0;
                for (int64_t j = 1; j < C; j++)
                    if (attn_f32(lg)[b * C + j] > attn_f32(lg)[b * C + best]) best = j;
                want += best == atfx_i32(cl_t)[b];
            }
            CHECK(correct == want, "correct %lld, arg max says %lld", (long long)correct, (long long)want);
        }
        attn_ctx_set_grad_enabled(ctx, 1);
    }
done:
    attn_ctx_free(ctx);
    attn_bert_free(m);
    attn_params_free(ps);
    atfx_free(fx);
    TEST_END();
}

static void test_fixture(void) {
    fixture_case(0);
    fixture_case(1);
}

static void test_mask_rule(void) {
    TEST_BEGIN("bert/mask_rule");
    char path[600], err[256];
    snprintf(path, sizeof path, "%s/bert_mask.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    attn_status st = atfx_load(path, &fx, err, sizeof err);
    CHECK(st == ATTN_OK, "fixture: %s", err);
    if (st == ATTN_OK) {
        const atfx_tensor *cfg = atfx_find(fx, "m0.cfg"), *prob = atfx_find(fx, "m0.prob");
        const atfx_tensor *ids = atfx_find(fx, "m0.ids"), *lens = atfx_find(fx, "m0.lengths");
        const atfx_tensor *inp = atfx_find(fx, "m0.inputs"), *lab = atfx_find(fx, "m0.labels");
        CHECK(cfg && prob && ids && lens && inp && lab, "fixture incomplete");
        if (cfg && prob && ids && lens && inp && lab) {
            const int32_t *c = atfx_i32(cfg);
            const int64_t B = c[0], T = c[1];
            attn_bert_mask_opts o = {atfx_f32(prob)[0], c[2], c[3], c[4], c[5]};
            int32_t in[4096], lb[4096];
            int64_t n = -1;
            CHECK(B * T <= 4096, "batch too large");
            CHECK_OK(attn_bert_mask(&o, (uint64_t)c[6], (uint64_t)c[7], atfx_i32(ids), atfx_i32(lens), B,
                                    T, in, lb, &n));
            int64_t bad = 0, want_n = 0;
            for (int64_t i = 0; i < B * T; i++) {
                bad += in[i] != atfx_i32(inp)[i] || lb[i] != atfx_i32(lab)[i];
                want_n += atfx_i32(lab)[i] >= 0;
            }
            CHECK(bad == 0, "%lld of %lld positions differ from the Python rule", (long long)bad,
                  (long long)(B * T));
            CHECK(n == want_n, "n_selected %lld, expected %lld", (long long)n, (long long)want_n);
        }
    }
    atfx_free(fx);
    TEST_END();
}

/* |x - n p| <= 5 sqrt(n p (1 - p)). */
static int binomial_ok(int64_t x, int64_t n, double p) {
    const double sd = sqrt((double)n * p * (1.0 - p));
    return fabs((double)x - (double)n * p) <= 5.0 * sd;
}

static void test_mask_stats(void) {
    TEST_BEGIN("bert/mask_stats");
    enum { B = 32, T = 128 };
    const int32_t V = 300, mask_id = V - 1;
    attn_bert_mask_opts o = {0.15f, mask_id, ATTN_TOKEN_SPECIALS, ATTN_TOKEN_SPECIALS, V - 1};
    static int32_t ids[B * T], in[B * T], lb[B * T], in2[B * T], lb2[B * T];
    int32_t lens[B];
    attn_rng rng;
    attn_rng_init(&rng, 5);
    int64_t eligible = 0, selected = 0, masked = 0, unchanged = 0, randomised = 0;
    int64_t bad_sel = 0, bad_range = 0, bad_label = 0;
    for (int rep = 0; rep < 30; rep++) {
        for (int b = 0; b < B; b++) {
            lens[b] = 1 + (int32_t)attn_rng_next_below(&rng, T);
            for (int t = 0; t < T; t++) {
                int32_t id = (int32_t)attn_rng_next_below(&rng, (uint32_t)V);
                if (t == 0) id = ATTN_BERT_CLS;
                if (t >= lens[b]) id = (t & 1) ? ATTN_TOKEN_PAD : 77; /* padding: anything */
                ids[b * T + t] = id;
            }
        }
        int64_t n = 0;
        CHECK_OK(attn_bert_mask(&o, 99, (uint64_t)rep, ids, lens, B, T, in, lb, &n));
        int64_t count = 0;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                const int p = b * T + t, id = ids[p];
                const int ok = t < lens[b] && id >= ATTN_TOKEN_SPECIALS && id != mask_id;
                eligible += ok;
                if (lb[p] < 0) {
                    bad_label += in[p] != id;
                    continue;
                }
                count++;
                bad_sel += !ok;
                bad_label += lb[p] != id;
                selected++;
                if (in[p] == mask_id)
                    masked++;
                else if (in[p] == id)
                    unchanged++;
                else {
                    randomised++;
                    bad_range += in[p] < o.random_lo || in[p] >= o.random_hi;
                }
            }
        CHECK(count == n, "n_selected %lld, labels say %lld", (long long)n, (long long)count);
        if (rep == 0) {
            /* A pure function of (seed, stream, ids); another stream differs. */
            CHECK_OK(attn_bert_mask(&o, 99, 0, ids, lens, B, T, in2, lb2, NULL));
            CHECK(memcmp(in, in2, sizeof in) == 0 && memcmp(lb, lb2, sizeof lb) == 0,
                  "the same (seed, stream) gave another mask");
            CHECK_OK(attn_bert_mask(&o, 99, 1, ids, lens, B, T, in2, lb2, NULL));
            CHECK(memcmp(lb, lb2, sizeof lb) != 0, "another stream gave the same mask");
        }
    }
    CHECK(bad_sel == 0, "%lld padding / special / [MASK] positions selected", (long long)bad_sel);
    CHECK(bad_label == 0, "%lld labels or untouched inputs wrong", (long long)bad_label);
    CHECK(bad_range == 0, "%lld random ids outside [lo, hi)", (long long)bad_range);
    CHECK(eligible > 50000, "only %lld eligible positions", (long long)eligible);
    CHECK(binomial_ok(selected, eligible, 0.15), "%lld of %lld selected (15%% expected)",
          (long long)selected, (long long)eligible);
    /* A random replacement equal to the original counts as unchanged. */
    const double p_same = 0.1 + 0.1 / (double)(o.random_hi - o.random_lo);
    CHECK(binomial_ok(masked, selected, 0.8), "%lld of %lld [MASK] (80%% expected)", (long long)masked,
          (long long)selected);
    CHECK(binomial_ok(unchanged, selected, p_same), "%lld of %lld kept (%.4f expected)",
          (long long)unchanged, (long long)selected, p_same);
    CHECK(binomial_ok(randomised, selected, 0.2 - p_same), "%lld of %lld random (%.4f expected)",
          (long long)randomised, (long long)selected, 0.2 - p_same);
    /* Extremes: prob 0 selects nothing, prob 1 every eligible position. */
    int64_t n0 = -1, n1 = -1;
    attn_bert_mask_opts z = o;
    z.prob = 0.0f;
    CHECK_OK(attn_bert_mask(&z, 1, 0, ids, lens, B, T, in, lb, &n0));
    z.prob = 1.0f;
    CHECK_OK(attn_bert_mask(&z, 1, 0, ids, lens, B, T, in, lb, &n1));
    int64_t elig = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < lens[b]; t++) elig += ids[b * T + t] >= ATTN_TOKEN_SPECIALS && ids[b * T + t] != mask_id;
    CHECK(n0 == 0 && n1 == elig, "prob 0: %lld selected; prob 1: %lld of %lld", (long long)n0,
          (long long)n1, (long long)elig);
    /* Errors. */
    z.prob = 1.5f;
    CHECK(attn_bert_mask(&z, 1, 0, ids, lens, B, T, in, lb, NULL) == ATTN_ERR_INVALID_ARG, "prob 1.5 accepted");
    z = o;
    z.random_hi = z.random_lo;
    CHECK(attn_bert_mask(&z, 1, 0, ids, lens, B, T, in, lb, NULL) == ATTN_ERR_INVALID_ARG,
          "an empty random range accepted");
    lens[3] = T + 1;
    CHECK(attn_bert_mask(&o, 1, 0, ids, lens, B, T, in, lb, NULL) == ATTN_ERR_INVALID_ARG,
          "a length past T accepted");
    TEST_END();
}

/* A small random classifier (and MLM head) with weights larger than BERT's
 * init, so that attention is far from uniform. */
static attn_bert *small_model(attn_params **ps, int norm_first, int mlm, int n_classes, uint64_t seed) {
    attn_bert_config bc;
    memset(&bc, 0, sizeof bc);
    bc.vocab = 29;
    bc.max_len = 16;
    bc.n_layers = 2;
    bc.n_heads = 2;
    bc.d_model = 16;
    bc.d_ff = 24;
    bc.norm_first = norm_first;
    bc.mlm = mlm;
    bc.n_classes = n_classes;
    attn_rng rng;
    attn_rng_init(&rng, seed);
    attn_bert *m = NULL;
    *ps = NULL;
    CHECK_OK(attn_params_new(ps));
    CHECK_OK(attn_bert_new(&m, *ps, &bc, &rng));
    for (int i = 0; m && i < attn_params_count(*ps); i++) {
        attn_tensor *p = attn_params_at(*ps, i);
        if (p->ndim == 2) attn_init_normal(p, 0.3f, &rng);
    }
    return m;
}

static void test_padding(void) {
    TEST_BEGIN("bert/padding");
    for (int nf = 0; nf < 2; nf++) {
        attn_params *ps;
        attn_bert *m = small_model(&ps, nf, 0, 3, 11 + (uint64_t)nf);
        attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 64);
        if (!m || !ctx) {
            attn_ctx_free(ctx);
            attn_bert_free(m);
            attn_params_free(ps);
            continue;
        }
        attn_ctx_set_grad_enabled(ctx, 0);
        const int32_t row[6] = {ATTN_BERT_CLS, 7, 12, 5, 20, 9};
        /* Alone, without padding. */
        attn_tensor *lg = attn_bert_cls_logits(ctx, m, i32_tensor(ctx, 2, (int64_t[]){1, 6}, row), NULL);
        attn_tensor *h = attn_bert_encode(ctx, m, i32_tensor(ctx, 2, (int64_t[]){1, 6}, row), NULL);
        CHECK(lg && h, "%s", attn_ctx_error(ctx));
        if (!lg || !h) goto next;
        float ref_lg[3], ref_cls[16];
        memcpy(ref_lg, attn_f32(lg), sizeof ref_lg);
        memcpy(ref_cls, attn_f32(h), sizeof ref_cls);
        /* In a batch of 3 rows of T = 13: another long row, the row with
         * junk after it, and the row again with other junk. */
        enum { T = 13 };
        int32_t batch[3 * T];
        for (int i = 0; i < 3 * T; i++) batch[i] = 4 + (i * 7) % 25;
        batch[0] = ATTN_BERT_CLS;
        for (int r = 1; r < 3; r++) {
            memcpy(batch + r * T, row, sizeof row);
            for (int t = 6; t < T; t++) batch[r * T + t] = r == 1 ? ATTN_TOKEN_PAD : 4 + (t * 5) % 25;
        }
        const int32_t lens[3] = {T, 6, 6};
        attn_tensor *ids = i32_tensor(ctx, 2, (int64_t[]){3, T}, batch);
        attn_tensor *lt = i32_tensor(ctx, 1, (int64_t[]){3}, lens);
        lg = attn_bert_cls_logits(ctx, m, ids, lt);
        h = attn_bert_encode(ctx, m, ids, lt);
        CHECK(lg && h, "%s", attn_ctx_error(ctx));
        if (!lg || !h) goto next;
        for (int r = 1; r < 3; r++) {
            char what[64];
            snprintf(what, sizeof what, "%s: row %d class logits", nf ? "pre-LN" : "post-LN", r);
            test_allclose(what, attn_f32(lg) + r * 3, ref_lg, 3, 2e-6f, 1e-5f);
            snprintf(what, sizeof what, "%s: row %d [CLS] output", nf ? "pre-LN" : "post-LN", r);
            test_allclose(what, attn_f32(h) + (int64_t)r * T * 16, ref_cls, 16, 2e-6f, 1e-5f);
        }
        /* Without the lengths the padding is read: the logits must move. */
        lg = attn_bert_cls_logits(ctx, m, ids, NULL);
        if (lg) {
            double d = 0.0;
            for (int j = 0; j < 3; j++) d += fabs((double)attn_f32(lg)[2 * 3 + j] - ref_lg[j]);
            CHECK(d > 1e-3, "padding read as tokens changed nothing (%g): the test is blind", d);
        }
    next:
        attn_ctx_free(ctx);
        attn_bert_free(m);
        attn_params_free(ps);
    }
    TEST_END();
}

static int tmp_dir(char *dir, size_t n) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, n, "%s/attn_test_bert_XXXXXX", base && base[0] ? base : "/tmp");
    return mkdtemp(dir) != NULL;
}

static void test_checkpoint(void) {
    TEST_BEGIN("bert/checkpoint");
    char dir[512], path[600], other[600];
    CHECK(tmp_dir(dir, sizeof dir), "mkdtemp");
    snprintf(path, sizeof path, "%s/pre.safetensors", dir);
    snprintf(other, sizeof other, "%s/other.safetensors", dir);
    attn_params *ps = NULL, *ps2 = NULL, *ps3 = NULL;
    attn_bert *pre = small_model(&ps, 0, 1, 0, 21);
    attn_bert *clf = NULL, *m2 = NULL;
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    if (!pre || !ctx) goto done;
    const attn_kv extra[1] = {{"note", "round trip"}};
    CHECK_OK(attn_bert_save(path, pre, extra, 1));
    /* Round trip. */
    CHECK_OK(attn_params_new(&ps2));
    CHECK_OK(attn_bert_load(path, ps2, &m2));
    if (m2) {
        CHECK(memcmp(&m2->cfg, &pre->cfg, sizeof pre->cfg) == 0, "configuration differs after load");
        int same = attn_params_count(ps2) == attn_params_count(ps);
        for (int i = 0; same && i < attn_params_count(ps); i++) {
            attn_tensor *a = attn_params_at(ps, i), *b = attn_params_at(ps2, i);
            same = strcmp(a->name, b->name) == 0 &&
                   memcmp(a->data, b->data, (size_t)attn_tensor_numel(a) * 4) == 0;
        }
        CHECK(same, "parameters differ after the round trip");
    }
    /* The pretrained encoder into a classifier of another seed. */
    clf = small_model(&ps3, 0, 0, 4, 22);
    if (!clf) goto done;
    CHECK(clf->n_encoder == pre->n_encoder, "encoders of %d and %d parameters", clf->n_encoder,
          pre->n_encoder);
    float head_before[4 * 16];
    memcpy(head_before, attn_f32(clf->cls_w), sizeof head_before);
    CHECK_OK(attn_bert_load_encoder(path, clf));
    int same = 1;
    for (int i = 0; i < clf->n_encoder; i++) {
        attn_tensor *a = attn_params_at(ps, i), *b = attn_params_at(ps3, i);
        same &= strcmp(a->name, b->name) == 0 &&
                memcmp(a->data, b->data, (size_t)attn_tensor_numel(a) * 4) == 0;
    }
    CHECK(same, "encoder parameters differ after attn_bert_load_encoder");
    CHECK(memcmp(head_before, attn_f32(clf->cls_w), sizeof head_before) == 0,
          "the classifier's head was overwritten");
    {
        const int32_t row[2 * 5] = {ATTN_BERT_CLS, 5, 6, 7, 8, ATTN_BERT_CLS, 9, 10, 0, 0};
        const int32_t lens[2] = {5, 3};
        attn_ctx_set_grad_enabled(ctx, 0);
        attn_tensor *ha = attn_bert_encode(ctx, pre, i32_tensor(ctx, 2, (int64_t[]){2, 5}, row),
                                           i32_tensor(ctx, 1, (int64_t[]){2}, lens));
        attn_tensor *hb = attn_bert_encode(ctx, clf, i32_tensor(ctx, 2, (int64_t[]){2, 5}, row),
                                           i32_tensor(ctx, 1, (int64_t[]){2}, lens));
        CHECK(ha && hb && memcmp(ha->data, hb->data, 2 * 5 * 16 * 4) == 0,
              "the classifier's encoder computes another output");
    }
    /* Mismatches: a pre-LN file, a wider model, a file without the encoder. */
    {
        attn_params *pq = NULL;
        attn_bert *q = small_model(&pq, 1, 1, 0, 23);
        if (q) CHECK_OK(attn_bert_save(other, q, NULL, 0));
        CHECK(attn_bert_load_encoder(other, clf) == ATTN_ERR_FORMAT, "a pre-LN encoder loaded into post-LN");
        attn_bert_free(q);
        attn_params_free(pq);
        attn_bert_config wide = clf->cfg;
        wide.d_model = 32;
        wide.d_ff = 0;
        CHECK_OK(attn_params_new(&pq));
        CHECK_OK(attn_bert_new(&q, pq, &wide, NULL));
        if (q) {
            CHECK(attn_bert_load_encoder(path, q) == ATTN_ERR_SHAPE, "a narrower encoder loaded");
            attn_bert_free(q);
        }
        attn_params_free(pq);
        CHECK_OK(attn_params_new(&pq));
        attn_tensor *t = NULL;
        CHECK_OK(attn_params_add(pq, "tok_emb.weight", 2, (int64_t[]){29, 16}, &t));
        CHECK_OK(attn_safetensors_save_params(other, pq, NULL, 0));
        CHECK(attn_bert_load_encoder(other, clf) == ATTN_ERR_FORMAT, "a file without the blocks loaded");
        attn_bert_config bc;
        CHECK(attn_bert_config_load(other, &bc) == ATTN_ERR_FORMAT, "a file without bert.* accepted");
        attn_params_free(pq);
    }
done:
    unlink(path);
    unlink(other);
    rmdir(dir);
    attn_ctx_free(ctx);
    attn_bert_free(pre);
    attn_bert_free(m2);
    attn_bert_free(clf);
    attn_params_free(ps);
    attn_params_free(ps2);
    attn_params_free(ps3);
    TEST_END();
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    const size_t n = strlen(text);
    const int ok = fwrite(text, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static void test_data(void) {
    TEST_BEGIN("bert/data");
    char dir[512], tpath[600], lpath[600];
    CHECK(tmp_dir(dir, sizeof dir), "mkdtemp");
    snprintf(tpath, sizeof tpath, "%s/t.txt", dir);
    snprintf(lpath, sizeof lpath, "%s/t.labels", dir);
    const char *texts[1] = {"abcdefghij\n"};
    attn_vocab *v = NULL;
    CHECK_OK(attn_vocab_build_chars(texts, 1, 1, &v));
    attn_bert_corpus c = {0};
    if (!v) goto done;
    /* Three fortunes (one of two lines, one empty to be skipped). */
    CHECK(write_file(tpath, "abcdefg\n%\nab\ncd\n%\n%\nj\n%\n"), "write");
    CHECK(write_file(lpath, "2\n0\n1\n"), "write");
    CHECK_OK(attn_bert_corpus_load(v, tpath, lpath, 3, 3, 0, &c));
    CHECK(c.n == 3 && c.texts == 3, "%lld sequences of %lld texts (3, 3)", (long long)c.n, (long long)c.texts);
    if (c.n == 3) {
        CHECK(c.offsets[1] == 3 && c.offsets[2] == 6 && c.offsets[3] == 7, "truncation to 3 ids: %lld %lld %lld",
              (long long)c.offsets[1], (long long)c.offsets[2], (long long)c.offsets[3]);
        const int32_t a = attn_vocab_find(v, "a"), nl = attn_vocab_find(v, "\n");
        CHECK(c.ids[0] == a && c.ids[5] == nl, "ids: the texts' first characters");
        CHECK(c.labels && c.labels[0] == 2 && c.labels[1] == 0 && c.labels[2] == 1, "labels");
        /* A padded batch: rows 2 and 0. */
        int32_t ids[2 * 5], lens[2], lab[2];
        const int64_t rows[2] = {2, 0};
        CHECK_OK(attn_bert_batch(&c, rows, 2, 5, ids, lens, lab));
        CHECK(ids[0] == ATTN_BERT_CLS && ids[1] == attn_vocab_find(v, "j") && ids[2] == ATTN_TOKEN_PAD &&
                  lens[0] == 2 && lens[1] == 4 && ids[5] == ATTN_BERT_CLS && ids[6] == a && lab[0] == 1 &&
                  lab[1] == 2,
              "batch layout");
        /* T = 3 keeps 2 ids of a row of 3. */
        CHECK_OK(attn_bert_batch(&c, rows + 1, 1, 3, ids, lens, NULL));
        CHECK(lens[0] == 3, "length %d with T = 3 (3 expected)", lens[0]);
        const int64_t bad_row[1] = {3};
        CHECK(attn_bert_batch(&c, bad_row, 1, 5, ids, lens, NULL) == ATTN_ERR_INVALID_ARG, "row 3 of 3 accepted");
    }
    attn_bert_corpus_free(&c);
    /* Chunking: 7 ids in pieces of 3 -> 3 + 3 + 1, each labelled 2. */
    CHECK_OK(attn_bert_corpus_load(v, tpath, lpath, 3, 3, 1, &c));
    CHECK(c.n == 3 + 2 + 1, "%lld pieces (6 expected)", (long long)c.n);
    if (c.n == 6)
        CHECK(c.offsets[1] == 3 && c.offsets[2] == 6 && c.offsets[3] == 7 && c.labels[2] == 2 &&
                  c.labels[3] == 0,
              "pieces");
    attn_bert_corpus_free(&c);
    attn_bert_corpus_free(&c); /* twice is fine */
    /* The first N of each class, in order: labels 0 1 0 0 1, N = 2 keeps a b c ef. */
    CHECK(write_file(tpath, "a\n%\nb\n%\nc\n%\nd\n%\nef\n%\n"), "write");
    CHECK(write_file(lpath, "0\n1\n0\n0\n1\n"), "write");
    CHECK_OK(attn_bert_corpus_load(v, tpath, lpath, 2, 3, 0, &c));
    CHECK(attn_bert_corpus_per_class(&c, 2, 0) == ATTN_ERR_INVALID_ARG, "per_class 0 accepted");
    CHECK(attn_bert_corpus_per_class(&c, 1, 2) == ATTN_ERR_INVALID_ARG && c.n == 5,
          "label 1 of 1 class accepted, or the corpus changed");
    CHECK_OK(attn_bert_corpus_per_class(&c, 2, 2));
    if (c.n == 4 && c.texts == 4) {
        const int32_t want[5] = {attn_vocab_find(v, "a"), attn_vocab_find(v, "b"), attn_vocab_find(v, "c"),
                                 attn_vocab_find(v, "e"), attn_vocab_find(v, "f")};
        CHECK(c.offsets[0] == 0 && c.offsets[1] == 1 && c.offsets[2] == 2 && c.offsets[3] == 3 &&
                  c.offsets[4] == 5 && memcmp(c.ids, want, sizeof want) == 0,
              "kept sequences a b c ef");
        CHECK(c.labels[0] == 0 && c.labels[1] == 1 && c.labels[2] == 0 && c.labels[3] == 1, "kept labels");
    } else {
        CHECK(0, "%lld sequences of %lld texts kept (4, 4)", (long long)c.n, (long long)c.texts);
    }
    CHECK_OK(attn_bert_corpus_per_class(&c, 2, 100));
    CHECK(c.n == 4, "a larger N dropped sequences (%lld left)", (long long)c.n);
    attn_bert_corpus_free(&c);
    CHECK_OK(attn_bert_corpus_load(v, tpath, NULL, 0, 3, 0, &c));
    CHECK(attn_bert_corpus_per_class(&c, 2, 2) == ATTN_ERR_INVALID_ARG, "an unlabelled corpus accepted");
    attn_bert_corpus_free(&c);
    /* Errors: label counts, label range, no closing '%', no text. */
    CHECK(write_file(lpath, "2\n0\n"), "write");
    CHECK(attn_bert_corpus_load(v, tpath, lpath, 3, 3, 0, &c) == ATTN_ERR_FORMAT, "2 labels for 3 texts accepted");
    CHECK(write_file(lpath, "2\n0\n3\n"), "write");
    CHECK(attn_bert_corpus_load(v, tpath, lpath, 3, 3, 0, &c) == ATTN_ERR_FORMAT, "label 3 of 3 classes accepted");
    CHECK(write_file(tpath, "abc\n%\nde\n"), "write");
    CHECK(attn_bert_corpus_load(v, tpath, NULL, 0, 3, 0, &c) == ATTN_ERR_FORMAT, "a text without its '%%' line accepted");
    CHECK(write_file(tpath, "%\n%\n"), "write");
    CHECK(attn_bert_corpus_load(v, tpath, NULL, 0, 3, 0, &c) == ATTN_ERR_FORMAT, "a file of no text accepted");
    CHECK(c.n == 0 && c.ids == NULL, "corpus not empty after an error");
    CHECK(attn_bert_corpus_load(v, tpath, NULL, 0, 0, 0, &c) == ATTN_ERR_INVALID_ARG, "max_tokens 0 accepted");
    /* The row sampler: deterministic, in range, uses every row. */
    {
        int64_t r1[64], r2[64];
        attn_bert_sample_rows(3, 5, 64, 10, r1);
        attn_bert_sample_rows(3, 5, 64, 10, r2);
        int seen[10] = {0}, ok = memcmp(r1, r2, sizeof r1) == 0;
        for (int i = 0; i < 64; i++) {
            ok &= r1[i] >= 0 && r1[i] < 10;
            if (r1[i] >= 0 && r1[i] < 10) seen[r1[i]] = 1;
        }
        int all = 1;
        for (int i = 0; i < 10; i++) all &= seen[i];
        CHECK(ok && all, "sampler: deterministic %d, every row seen %d", ok, all);
        attn_bert_sample_rows(3, 6, 64, 10, r2);
        CHECK(memcmp(r1, r2, sizeof r1) != 0, "step 6 drew the rows of step 5");
    }
done:
    unlink(tpath);
    unlink(lpath);
    rmdir(dir);
    attn_vocab_free(v);
    TEST_END();
}

static void test_errors(void) {
    TEST_BEGIN("bert/errors");
    attn_params *ps;
    attn_bert *m = small_model(&ps, 0, 1, 0, 31);
    attn_ctx *ctx = test_ctx_new((size_t)16 << 20, 1, 0);
    if (m && ctx) {
        int32_t ids[17] = {ATTN_BERT_CLS, 5, 6, 7};
        for (int i = 4; i < 17; i++) ids[i] = 4;
        CHECK(attn_bert_encode(ctx, m, i32_tensor(ctx, 2, (int64_t[]){1, 17}, ids), NULL) == NULL &&
                  attn_ctx_status(ctx) == ATTN_ERR_SHAPE,
              "17 positions with max_len 16 accepted");
        attn_ctx_reset(ctx);
        const int32_t len0[1] = {0}, len5[1] = {5};
        CHECK(attn_bert_encode(ctx, m, i32_tensor(ctx, 2, (int64_t[]){1, 4}, ids),
                               i32_tensor(ctx, 1, (int64_t[]){1}, len0)) == NULL &&
                  attn_ctx_status(ctx) == ATTN_ERR_INVALID_ARG,
              "length 0 accepted");
        attn_ctx_reset(ctx);
        CHECK(attn_bert_encode(ctx, m, i32_tensor(ctx, 2, (int64_t[]){1, 4}, ids),
                               i32_tensor(ctx, 1, (int64_t[]){1}, len5)) == NULL &&
                  attn_ctx_status(ctx) == ATTN_ERR_INVALID_ARG,
              "length 5 of T = 4 accepted");
        attn_ctx_reset(ctx);
        const int32_t lab[4] = {-1, -1, -1, 6}, len3[1] = {3};
        CHECK(attn_bert_mlm_loss(ctx, m, i32_tensor(ctx, 2, (int64_t[]){1, 4}, ids),
                                 i32_tensor(ctx, 1, (int64_t[]){1}, len3),
                                 i32_tensor(ctx, 2, (int64_t[]){1, 4}, lab), NULL, NULL) == NULL &&
                  attn_ctx_status(ctx) == ATTN_ERR_INVALID_ARG,
              "an MLM label at a padding position accepted");
        attn_ctx_reset(ctx);
        const int32_t none[4] = {-1, -1, -1, -1};
        int64_t cnt = -1;
        attn_tensor *l0 = attn_bert_mlm_loss(ctx, m, i32_tensor(ctx, 2, (int64_t[]){1, 4}, ids), NULL,
                                             i32_tensor(ctx, 2, (int64_t[]){1, 4}, none), NULL, &cnt);
        CHECK(l0 && attn_f32(l0)[0] == 0.0f && cnt == 0, "no selected position: loss %g, count %lld",
              l0 ? (double)attn_f32(l0)[0] : -1.0, (long long)cnt);
        if (l0) CHECK_OK(attn_backward(ctx, l0));
        attn_ctx_reset(ctx);
        const int32_t cls[1] = {0};
        CHECK(attn_bert_cls_loss(ctx, m, i32_tensor(ctx, 2, (int64_t[]){1, 4}, ids), NULL,
                                 i32_tensor(ctx, 1, (int64_t[]){1}, cls), NULL) == NULL &&
                  attn_ctx_status(ctx) == ATTN_ERR_STATE,
              "classification without a classifier accepted");
        attn_ctx_reset(ctx);
        attn_tensor *f = attn_tensor_new(ctx, ATTN_F32, 2, (int64_t[]){1, 3});
        CHECK(attn_bert_encode(ctx, m, f, NULL) == NULL && attn_ctx_status(ctx) == ATTN_ERR_DTYPE,
              "f32 ids accepted");
        attn_ctx_reset(ctx);
    }
    attn_ctx_free(ctx);
    attn_bert_free(m);
    attn_params_free(ps);
    /* Configurations. */
    attn_bert_config bad;
    memset(&bad, 0, sizeof bad);
    bad.vocab = 10;
    bad.max_len = 8;
    bad.n_layers = 1;
    bad.n_heads = 3;
    bad.d_model = 16;
    attn_bert *q = NULL;
    CHECK_OK(attn_params_new(&ps));
    CHECK(attn_bert_new(&q, ps, &bad, NULL) == ATTN_ERR_INVALID_ARG && !q, "d_model 16 with 3 heads accepted");
    bad.n_heads = 2;
    bad.dropout = 1.0f;
    CHECK(attn_bert_new(&q, ps, &bad, NULL) == ATTN_ERR_INVALID_ARG, "dropout 1 accepted");
    bad.dropout = 0.0f;
    bad.n_classes = -1;
    CHECK(attn_bert_new(&q, ps, &bad, NULL) == ATTN_ERR_INVALID_ARG, "n_classes -1 accepted");
    attn_params_free(ps);
    TEST_END();
}

static void test_maps(void) {
    TEST_BEGIN("bert/attention_maps");
    for (int nf = 0; nf < 2; nf++) {
        attn_params *ps;
        attn_bert *m = small_model(&ps, nf, 1, 0, 31 + (uint64_t)nf);
        attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 64);
        if (!m || !ctx) goto next;
        attn_ctx_set_grad_enabled(ctx, 0);
        enum { B = 2, T = 6, H = 2, E = 16 };
        const int32_t ids[B * T] = {ATTN_BERT_CLS, 7, 12, 5, 20, 9, ATTN_BERT_CLS, 11, 4, 25, 0, 0};
        const int32_t lens[B] = {T, 4};
        attn_tensor *it = i32_tensor(ctx, 2, (int64_t[]){B, T}, ids);
        attn_tensor *lt = i32_tensor(ctx, 1, (int64_t[]){B}, lens);
        attn_tensor *h0 = attn_bert_encode(ctx, m, it, lt);
        attn_tensor *w[2] = {NULL, NULL};
        attn_tensor *h1 = attn_bert_encode_ex(ctx, m, it, lt, w);
        CHECK(h0 && h1 && w[0] && w[1], "%s", attn_ctx_error(ctx));
        if (!h0 || !h1 || !w[0] || !w[1]) goto next;
        CHECK(memcmp(attn_f32(h0), attn_f32(h1), sizeof(float) * B * T * E) == 0,
              "asking for the weights changed the encoder's output");
        double worst_sum = 0.0, pad = 0.0, spread = 0.0, layer_diff = 0.0;
        for (int l = 0; l < 2; l++) {
            const attn_tensor *x = w[l];
            CHECK(x->dtype == ATTN_F32 && x->ndim == 4 && x->shape[0] == B && x->shape[1] == H &&
                      x->shape[2] == T && x->shape[3] == T,
                  "layer %d weights: expected f32 [2, 2, 6, 6]", l);
            if (x->ndim != 4 || x->shape[1] != H || x->shape[2] != T || x->shape[3] != T) goto next;
            const float *d = (const float *)x->data;
            for (int64_t b = 0; b < B; b++)
                for (int64_t hh = 0; hh < H; hh++)
                    for (int64_t t = 0; t < lens[b]; t++) {
                        double sum = 0.0, lo = 1.0, hi = 0.0;
                        for (int64_t s = 0; s < T; s++) {
                            const int64_t o = b * x->stride[0] + hh * x->stride[1] +
                                              t * x->stride[2] + s * x->stride[3];
                            if (s >= lens[b]) {
                                pad = fmax(pad, fabs((double)d[o])); /* must be exactly 0 */
                                continue;
                            }
                            sum += d[o];
                            lo = fmin(lo, d[o]);
                            hi = fmax(hi, d[o]);
                            if (l == 1) {
                                const attn_tensor *y = w[0];
                                const int64_t o0 = b * y->stride[0] + hh * y->stride[1] +
                                                   t * y->stride[2] + s * y->stride[3];
                                layer_diff = fmax(layer_diff, fabs((double)d[o] - ((const float *)y->data)[o0]));
                            }
                        }
                        worst_sum = fmax(worst_sum, fabs(sum - 1.0));
                        spread = fmax(spread, hi - lo);
                    }
        }
        CHECK(pad == 0.0, "%s: a weight on a padding key is %g, expected exactly 0",
              nf ? "pre-LN" : "post-LN", pad);
        CHECK(worst_sum <= 1e-5, "%s: a row's real keys sum to 1 +- %g (tolerance 1e-5)",
              nf ? "pre-LN" : "post-LN", worst_sum);
        CHECK(spread > 0.1 && layer_diff > 0.05,
              "maps too flat (spread %g) or layers alike (%g): the test is blind", spread, layer_diff);
        /* On error the slots are NULL. */
        w[0] = w[1] = h0;
        const int32_t bad[2] = {ATTN_BERT_CLS, 99};
        CHECK(attn_bert_encode_ex(ctx, m, i32_tensor(ctx, 2, (int64_t[]){1, 2}, bad), NULL, w) == NULL &&
                  w[0] == NULL && w[1] == NULL,
              "an id outside the vocabulary: no error, or slots left set");
    next:
        attn_ctx_free(ctx);
        attn_bert_free(m);
        attn_params_free(ps);
    }
    TEST_END();
}

void suite_bert(void) {
    test_fixture();
    test_mask_rule();
    test_mask_stats();
    test_padding();
    test_checkpoint();
    test_data();
    test_errors();
    test_maps();
}
