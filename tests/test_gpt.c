/* test_gpt.c: the GPT language model (include/attn/gpt.h).
 *
 *   fixture     llm.c-style model check against PyTorch
 *               (tools/make_gpt_fixtures.py): the weights load under attn's
 *               names, then logits, loss, EVERY parameter gradient and the
 *               losses of 10 AdamW steps must match, with the tolerances
 *               below (float32 here against a float64 oracle).
 *   cache       logits through the KV cache (a prompt, then one token at a
 *               time) equal a full recomputation at every position, for every
 *               position kind and for grouped-query heads; generation's
 *               per-step logits equal a full recomputation of its sequence.
 *   sampling    greedy, top-k, top-p and temperature, as properties of
 *               attn_sample_token over a fine grid of uniform numbers.
 *   files       save / load round trip (configuration and bits), errors.
 *   maps        attn_gpt_logits_ex's per-layer attention weights: rows sum
 *               to 1 over the visible keys, exactly 0 above the diagonal,
 *               the same rows through the KV cache, logits unchanged.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "test.h"

/* Tolerances of the fixture check (|a - b| <= atol + rtol |ref|). The
 * oracle runs in float64, attn in float32. Largest errors observed (1
 * thread, OpenBLAS): logits 1.4e-6, loss and trajectory 5e-7, gradients
 * 6e-8 (on values up to 0.1), each 15-20x below its tolerance. A change of
 * LayerNorm's eps from 1e-5 to 1e-4 in the final norm alone fails both
 * fixture tests. */
#define GPT_LOGITS_ATOL 1e-5f
#define GPT_LOGITS_RTOL 1e-5f
#define GPT_LOSS_ATOL 5e-6f
#define GPT_GRAD_ATOL 1e-6f
#define GPT_GRAD_RTOL 1e-4f
#define GPT_TRAJ_ATOL 1e-5f /* each of the 10 losses of the AdamW trajectory */

static attn_tensor *ids_tensor(attn_ctx *ctx, int64_t B, int64_t T, const int32_t *ids) {
    return attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T}, ids);
}

static void fixture_case(int k) {
    char name[64], path[600], err[256];
    snprintf(name, sizeof name, "gpt/fixture_c%d", k);
    TEST_BEGIN(name);
    snprintf(path, sizeof path, "%s/gpt_c%d.atfx", test_fixture_dir(), k);
    atfx_file *fx = NULL;
    attn_status st = atfx_load(path, &fx, err, sizeof err);
    CHECK(st == ATTN_OK, "fixture: %s", err);
    if (st != ATTN_OK) {
        TEST_END();
        return;
    }
    const atfx_tensor *cfg_t = atfx_find(fx, "c0.cfg"), *opt_t = atfx_find(fx, "c0.optim");
    const atfx_tensor *in_t = atfx_find(fx, "c0.inputs"), *tg_t = atfx_find(fx, "c0.targets");
    const atfx_tensor *lg_t = atfx_find(fx, "c0.logits"), *loss_t = atfx_find(fx, "c0.loss");
    const atfx_tensor *traj_t = atfx_find(fx, "c0.losses");
    CHECK(cfg_t && opt_t && in_t && tg_t && lg_t && loss_t && traj_t, "fixture %s incomplete", path);
    attn_params *ps = NULL;
    attn_gpt *m = NULL;
    attn_ctx *ctx = NULL;
    attn_optim *opt = NULL;
    if (!(cfg_t && opt_t && in_t && tg_t && lg_t && loss_t && traj_t)) goto done;
    const int32_t *c = atfx_i32(cfg_t);
    attn_gpt_config gc;
    memset(&gc, 0, sizeof gc);
    gc.vocab = c[0];
    gc.ctx_len = c[1];
    gc.n_layers = c[2];
    gc.n_heads = c[3];
    gc.d_model = c[4];
    gc.d_ff = c[5];
    gc.tied = c[6];
    gc.pos = ATTN_POS_LEARNED;
    const int64_t B = c[7], T = c[8], steps = c[9], V = c[0];
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_gpt_new(&m, ps, &gc, NULL));
    if (!m) goto done;
    /* Strict load: every name of the model is in the file and nothing else. */
    snprintf(path, sizeof path, "%s/gpt_c%d.safetensors", test_fixture_dir(), k);
    CHECK_OK(attn_safetensors_load_params(path, ps, 0));
    ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    if (!ctx) goto done;

    /* Logits. */
    attn_tensor *ids = ids_tensor(ctx, B, T, atfx_i32(in_t));
    attn_tensor *logits = attn_gpt_logits(ctx, m, ids, NULL);
    CHECK(logits && logits->ndim == 3 && logits->shape[0] == B && logits->shape[1] == T &&
              logits->shape[2] == V,
          "logits: %s", logits ? "wrong shape" : attn_ctx_error(ctx));
    if (logits)
        test_allclose("logits", attn_f32(logits), atfx_f32(lg_t), B * T * V, GPT_LOGITS_ATOL,
                      GPT_LOGITS_RTOL);
    attn_ctx_reset(ctx);

    /* Loss, every gradient, and the AdamW trajectory on the same batch. */
    const float *o = atfx_f32(opt_t);
    attn_optim_config oc = {ATTN_OPTIM_ADAMW, o[0], 0.0f, 0, o[1], o[2], o[3], o[4]};
    CHECK_OK(attn_optim_new(&opt, ps, &oc));
    float traj[16] = {0};
    for (int64_t s = 0; s < steps && s < 16 && opt; s++) {
        attn_params_zero_grad(ps);
        ids = ids_tensor(ctx, B, T, atfx_i32(in_t));
        attn_tensor *tg = ids_tensor(ctx, B, T, atfx_i32(tg_t));
        attn_tensor *loss = attn_gpt_loss(ctx, m, ids, tg, -1);
        CHECK(loss != NULL, "step %lld: %s", (long long)s, attn_ctx_error(ctx));
        if (!loss) break;
        traj[s] = attn_f32(loss)[0];
        CHECK_OK(attn_backward(ctx, loss));
        if (s == 0) {
            const float ref = atfx_f32(loss_t)[0];
            CHECK(fabsf(traj[0] - ref) <= GPT_LOSS_ATOL, "loss %.7f, PyTorch %.7f", (double)traj[0],
                  (double)ref);
            int n_checked = 0;
            for (int i = 0; i < attn_params_count(ps); i++) {
                attn_tensor *p = attn_params_at(ps, i);
                const atfx_tensor *g = atfx_findf(fx, "c0.grad.%s", p->name);
                CHECK(g != NULL, "no PyTorch gradient for %s", p->name);
                if (!g) continue;
                CHECK(g->numel == attn_tensor_numel(p), "%s: %lld vs %lld elements", p->name,
                      (long long)g->numel, (long long)attn_tensor_numel(p));
                if (g->numel != attn_tensor_numel(p)) continue;
                char what[160];
                snprintf(what, sizeof what, "grad %s", p->name);
                test_allclose(what, p->grad, atfx_f32(g), g->numel, GPT_GRAD_ATOL, GPT_GRAD_RTOL);
                n_checked++;
            }
            /* Every gradient of the fixture belongs to a parameter (none left
             * unchecked): count the fixture's "c0.grad." tensors. */
            int n_fx = 0;
            for (int i = 0; i < fx->n; i++)
                if (strncmp(fx->tensors[i].name, "c0.grad.", 8) == 0) n_fx++;
            CHECK(n_checked == attn_params_count(ps) && n_fx == n_checked,
                  "%d of %d gradients checked; the fixture has %d", n_checked,
                  attn_params_count(ps), n_fx);
        }
        CHECK_OK(attn_optim_step(opt, oc.lr));
        attn_ctx_reset(ctx);
    }
    const float *ref = atfx_f32(traj_t);
    for (int64_t s = 0; s < steps && s < 16; s++)
        CHECK(fabsf(traj[s] - ref[s]) <= GPT_TRAJ_ATOL, "AdamW step %lld: loss %.7f, PyTorch %.7f",
              (long long)s, (double)traj[s], (double)ref[s]);
    CHECK(ref[steps - 1] < ref[0] - 0.5f, "the trajectory should fall (%.4f -> %.4f)",
          (double)ref[0], (double)ref[steps - 1]);
done:
    attn_optim_free(opt);
    attn_ctx_free(ctx);
    attn_gpt_free(m);
    attn_params_free(ps);
    atfx_free(fx);
    TEST_END();
}

static void test_fixture(void) {
    fixture_case(0);
    fixture_case(1);
}

/* A small random model. */
static attn_gpt *small_model(attn_params **ps, attn_pos_kind pos, int heads, int kv_heads,
                             int64_t ctx_len, uint64_t seed) {
    attn_gpt_config gc;
    memset(&gc, 0, sizeof gc);
    gc.vocab = 23;
    gc.ctx_len = ctx_len;
    gc.n_layers = 2;
    gc.n_heads = heads;
    gc.n_kv_heads = kv_heads;
    gc.d_model = 16;
    gc.d_ff = 40;
    gc.pos = pos;
    gc.tied = (seed & 1) != 0;
    attn_rng rng;
    attn_rng_init(&rng, seed);
    attn_gpt *m = NULL;
    *ps = NULL;
    CHECK_OK(attn_params_new(ps));
    CHECK_OK(attn_gpt_new(&m, *ps, &gc, &rng));
    /* Larger weights than GPT-2's init so that attention is far from uniform
     * (a cache bug must change the logits visibly). */
    for (int i = 0; m && i < attn_params_count(*ps); i++) {
        attn_tensor *p = attn_params_at(*ps, i);
        if (p->ndim == 2) attn_init_normal(p, 0.3f, &rng);
    }
    return m;
}

static void test_cache(void) {
    TEST_BEGIN("gpt/kv_cache");
    const attn_pos_kind kinds[5] = {ATTN_POS_LEARNED, ATTN_POS_SINUSOIDAL, ATTN_POS_ROPE,
                                    ATTN_POS_ALIBI, ATTN_POS_NONE};
    const int32_t seq[12] = {5, 9, 3, 17, 22, 4, 4, 8, 13, 21, 6, 10};
    for (int kk = 0; kk < 5; kk++) {
        for (int gqa = 0; gqa < 2; gqa++) {
            attn_params *ps;
            attn_gpt *m = small_model(&ps, kinds[kk], 4, gqa ? 2 : 0, 16, 7 + (uint64_t)kk);
            attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 64);
            if (!m || !ctx) {
                attn_ctx_free(ctx);
                attn_gpt_free(m);
                attn_params_free(ps);
                continue;
            }
            attn_ctx_set_grad_enabled(ctx, 0);
            const int64_t V = m->cfg.vocab;
            attn_tensor *full = attn_gpt_logits(ctx, m, ids_tensor(ctx, 1, 12, seq), NULL);
            CHECK(full != NULL, "%s: %s", attn_pos_kind_name(kinds[kk]), attn_ctx_error(ctx));
            attn_kv_cache cache;
            CHECK_OK(attn_gpt_cache_init(m, 1, &cache));
            /* A prompt of 5, then single tokens. */
            float worst = 0.0f;
            int64_t pos = 0;
            while (full && pos < 12) {
                const int64_t n = pos == 0 ? 5 : 1;
                attn_tensor *part = attn_gpt_logits(ctx, m, ids_tensor(ctx, 1, n, seq + pos), &cache);
                CHECK(part != NULL, "%s: cached step at %lld: %s", attn_pos_kind_name(kinds[kk]),
                      (long long)pos, attn_ctx_error(ctx));
                if (!part) break;
                for (int64_t i = 0; i < n * V; i++) {
                    const float d = fabsf(attn_f32(part)[i] - attn_f32(full)[pos * V + i]);
                    worst = d > worst ? d : worst;
                }
                pos += n;
            }
            CHECK(pos == 12 && worst <= 2e-5f,
                  "%s%s: cached logits differ from the full recomputation by %g",
                  attn_pos_kind_name(kinds[kk]), gqa ? " (GQA)" : "", (double)worst);
            CHECK(cache.layers && cache.layers[0].len == 12, "cache length %lld, expected 12",
                  cache.layers ? (long long)cache.layers[0].len : -1ll);
            /* Past ctx_len: an error, not a wrong answer. */
            const int32_t more[5] = {1, 2, 3, 4, 5};
            CHECK(attn_gpt_logits(ctx, m, ids_tensor(ctx, 1, 5, more), &cache) == NULL &&
                      attn_ctx_status(ctx) == ATTN_ERR_SHAPE,
                  "a cache past ctx_len was accepted");
            attn_kv_cache_free(&cache);
            attn_ctx_free(ctx);
            attn_gpt_free(m);
            attn_params_free(ps);
        }
    }
    TEST_END();
}

static void test_generate(void) {
    TEST_BEGIN("gpt/generate");
    attn_params *ps;
    attn_gpt *m = small_model(&ps, ATTN_POS_LEARNED, 2, 0, 16, 3);
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    if (m && ctx) {
        const int64_t V = m->cfg.vocab;
        const int32_t prompt[3] = {4, 11, 7};
        int32_t out[13];
        float *rows = malloc((size_t)(13 * V) * sizeof *rows);
        attn_sample_opts so = {0.9f, 0, 0.0f, 42, 0};
        CHECK_OK(attn_gpt_generate(ctx, m, prompt, 3, 13, &so, out, rows));
        CHECK(attn_ctx_grad_enabled(ctx) == 1, "generation left gradients off");
        /* Every step's logits equal the last row of a full recomputation over
         * prompt + out[0 .. i-1] (3 + 13 = 16 = ctx_len: no window slide). */
        int32_t seq[16];
        memcpy(seq, prompt, sizeof prompt);
        memcpy(seq + 3, out, sizeof out);
        attn_ctx_set_grad_enabled(ctx, 0);
        float worst = 0.0f;
        for (int64_t i = 0; i < 13 && rows; i++) {
            attn_ctx_reset(ctx);
            attn_tensor *full = attn_gpt_logits(ctx, m, ids_tensor(ctx, 1, 3 + i, seq), NULL);
            if (!full) break;
            for (int64_t v = 0; v < V; v++) {
                const float d = fabsf(rows[i * V + v] - attn_f32(full)[(2 + i) * V + v]);
                worst = d > worst ? d : worst;
            }
            CHECK(out[i] >= 0 && out[i] < V, "token %d out of range", out[i]);
        }
        CHECK(worst <= 2e-5f, "generation's logits differ from recomputation by %g", (double)worst);
        /* The same seed gives the same text; another seed another text. */
        int32_t again[13], other[13];
        CHECK_OK(attn_gpt_generate(ctx, m, prompt, 3, 13, &so, again, NULL));
        so.seed = 43;
        CHECK_OK(attn_gpt_generate(ctx, m, prompt, 3, 13, &so, other, NULL));
        CHECK(memcmp(out, again, sizeof out) == 0, "same seed, different tokens");
        CHECK(memcmp(out, other, sizeof out) != 0, "seeds 42 and 43 gave the same 13 tokens");
        /* Beyond ctx_len the window slides: 40 tokens from a 16-token model. */
        int32_t longer[40];
        CHECK_OK(attn_gpt_generate(ctx, m, prompt, 3, 40, &so, longer, NULL));
        /* Errors. */
        const int32_t bad[2] = {4, 23};
        CHECK(attn_gpt_generate(ctx, m, bad, 2, 3, &so, out, NULL) == ATTN_ERR_INVALID_ARG,
              "a prompt id outside the vocabulary accepted");
        CHECK(attn_gpt_generate(ctx, m, prompt, 0, 3, &so, out, NULL) == ATTN_ERR_INVALID_ARG,
              "an empty prompt accepted");
        free(rows);
    }
    attn_ctx_free(ctx);
    attn_gpt_free(m);
    attn_params_free(ps);
    TEST_END();
}

static void test_sampling(void) {
    TEST_BEGIN("gpt/sampling");
    /* probabilities 0.5, 0.3, 0.15, 0.05 at ids 2, 0, 3, 1 (log space) */
    const float lg[4] = {logf(0.3f), logf(0.05f), logf(0.5f), logf(0.15f)};
    const float prob[4] = {0.3f, 0.05f, 0.5f, 0.15f};
    enum { N = 20000 };
    attn_sample_opts o = {1.0f, 0, 0.0f, 0, 0};
    int count[4];
    /* u on a grid: the frequencies are the probabilities (to 1/N). */
#define DRAW(opts)                                                          \
    do {                                                                    \
        memset(count, 0, sizeof count);                                     \
        for (int i = 0; i < N; i++) {                                       \
            int32_t t = attn_sample_token(lg, 4, &(opts), (i + 0.5f) / N, NULL); \
            if (t >= 0 && t < 4) count[t]++;                                \
        }                                                                   \
    } while (0)
    DRAW(o);
    for (int v = 0; v < 4; v++)
        CHECK(fabs(count[v] / (double)N - prob[v]) < 2e-3, "plain: id %d drawn %.4f, p %.4f", v,
              count[v] / (double)N, (double)prob[v]);
    /* greedy: temperature 0 or top_k 1 always give the arg max (id 2) */
    attn_sample_opts g = {0.0f, 0, 0.0f, 0, 0};
    DRAW(g);
    CHECK(count[2] == N, "temperature 0: arg max drawn %d of %d times", count[2], N);
    attn_sample_opts k1 = {1.0f, 1, 0.0f, 0, 0};
    DRAW(k1);
    CHECK(count[2] == N, "top_k 1: arg max drawn %d of %d times", count[2], N);
    /* top_k 2: ids 2 and 0 only, renormalised 0.5/0.8 and 0.3/0.8 */
    attn_sample_opts k2 = {1.0f, 2, 0.0f, 0, 0};
    DRAW(k2);
    CHECK(count[1] == 0 && count[3] == 0 && fabs(count[2] / (double)N - 0.625) < 2e-3 &&
              fabs(count[0] / (double)N - 0.375) < 2e-3,
          "top_k 2: counts %d %d %d %d", count[0], count[1], count[2], count[3]);
    /* top_p 0.7: the nucleus is {2, 0} (0.5 < 0.7 <= 0.8); 0.85: {2, 0, 3} */
    attn_sample_opts p7 = {1.0f, 0, 0.7f, 0, 0};
    DRAW(p7);
    CHECK(count[1] == 0 && count[3] == 0 && count[0] > 0 && count[2] > 0,
          "top_p 0.7: counts %d %d %d %d", count[0], count[1], count[2], count[3]);
    attn_sample_opts p85 = {1.0f, 0, 0.85f, 0, 0};
    DRAW(p85);
    CHECK(count[1] == 0 && fabs(count[3] / (double)N - 0.15 / 0.95) < 2e-3,
          "top_p 0.85: counts %d %d %d %d", count[0], count[1], count[2], count[3]);
    /* temperature 2: probabilities proportional to sqrt(p) */
    attn_sample_opts t2 = {2.0f, 0, 0.0f, 0, 0};
    DRAW(t2);
    double z = 0.0;
    for (int v = 0; v < 4; v++) z += sqrt(prob[v]);
    for (int v = 0; v < 4; v++)
        CHECK(fabs(count[v] / (double)N - sqrt(prob[v]) / z) < 2e-3,
              "temperature 2: id %d drawn %.4f, expected %.4f", v, count[v] / (double)N,
              sqrt(prob[v]) / z);
    /* ties go to the smaller id; -inf and NaN never drawn */
    const float tie[4] = {1.0f, 3.0f, 3.0f, -INFINITY};
    CHECK(attn_sample_token(tie, 4, &g, 0.3f, NULL) == 1, "greedy tie: not the smaller id");
    const float odd[3] = {NAN, 0.0f, -INFINITY};
    DRAW(o); /* (reuses lg; the next lines check odd) */
    int bad = 0;
    for (int i = 0; i < 100; i++) {
        const int32_t t = attn_sample_token(odd, 3, &o, (i + 0.5f) / 100, NULL);
        bad += t != 1;
    }
    CHECK(bad == 0, "NaN or -inf logits drawn %d times", bad);
    /* first_id: ids below it are never drawn, greedy included */
    attn_sample_opts f2 = {1.0f, 0, 0.0f, 0, 3};
    DRAW(f2);
    CHECK(count[0] == 0 && count[1] == 0 && count[2] == 0 && count[3] == N,
          "first_id 3: counts %d %d %d %d", count[0], count[1], count[2], count[3]);
    attn_sample_opts g3 = {0.0f, 0, 0.0f, 0, 3};
    CHECK(attn_sample_token(lg, 4, &g3, 0.5f, NULL) == 3, "greedy with first_id 3: not id 3");
    CHECK(attn_sample_token(NULL, 4, &o, 0.5f, NULL) == -1 && attn_sample_token(lg, 0, &o, 0.5f, NULL) == -1,
          "invalid arguments must give -1");
#undef DRAW
    TEST_END();
}

static void test_files(void) {
    TEST_BEGIN("gpt/files");
    attn_params *ps;
    attn_gpt *m = small_model(&ps, ATTN_POS_ROPE, 4, 2, 12, 10);
    char dir[512], path[600];
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/attn_test_gpt_XXXXXX", base && base[0] ? base : "/tmp");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (m) {
        const attn_kv extra[1] = {{"note", "round trip"}};
        CHECK_OK(attn_gpt_save(path, m, extra, 1));
        attn_params *ps2 = NULL;
        attn_gpt *m2 = NULL;
        CHECK_OK(attn_params_new(&ps2));
        CHECK_OK(attn_gpt_load(path, ps2, &m2));
        if (m2) {
            CHECK(memcmp(&m2->cfg, &m->cfg, sizeof m->cfg) == 0, "configuration differs after load");
            CHECK(attn_params_count(ps2) == attn_params_count(ps), "%d vs %d parameters",
                  attn_params_count(ps2), attn_params_count(ps));
            int same = 1;
            for (int i = 0; i < attn_params_count(ps) && i < attn_params_count(ps2); i++) {
                attn_tensor *a = attn_params_at(ps, i), *b = attn_params_at(ps2, i);
                same &= strcmp(a->name, b->name) == 0 &&
                        memcmp(a->data, b->data, (size_t)attn_tensor_numel(a) * 4) == 0;
            }
            CHECK(same, "parameters differ after the round trip");
        }
        attn_gpt_free(m2);
        attn_params_free(ps2);
        /* A safetensors file without the configuration is not a GPT file. */
        snprintf(path, sizeof path, "%s/plain.safetensors", dir);
        CHECK_OK(attn_safetensors_save_params(path, ps, NULL, 0));
        attn_gpt_config c;
        CHECK(attn_gpt_config_load(path, &c) == ATTN_ERR_FORMAT, "a file without gpt.* accepted");
        /* A crafted file: the small model's tensors under metadata that
         * claims 100,000 layers (or a vocabulary of 2^31 - 1) is refused
         * before anything is built, naming the claim. */
        for (int claim = 0; claim < 2; claim++) {
            attn_gpt_config big = m->cfg;
            if (claim == 0) big.n_layers = 100000;
            else big.vocab = 2147483647;
            attn_kv kv[ATTN_GPT_META];
            char buf[ATTN_GPT_META * 32];
            attn_gpt_config_meta(&big, kv, buf);
            CHECK_OK(attn_safetensors_save_params(path, ps, kv, ATTN_GPT_META));
            attn_params *p4 = NULL;
            attn_gpt *m4 = NULL;
            CHECK_OK(attn_params_new(&p4));
            const attn_status st = attn_gpt_load(path, p4, &m4);
            CHECK(st == ATTN_ERR_FORMAT && m4 == NULL && attn_params_count(p4) == 0 &&
                      strstr(attn_last_error(), claim == 0 ? "claims 100000 layers"
                                                           : "needs at least more values"),
                  "a file claiming %s: %s, %s, %d parameters built",
                  claim == 0 ? "100,000 layers" : "a vocabulary of 2^31 - 1",
                  attn_status_str(st), attn_last_error(), attn_params_count(p4));
            attn_gpt_free(m4);
            attn_params_free(p4);
        }
        unlink(path);
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        unlink(path);
    }
    rmdir(dir);
    attn_gpt_free(m);
    attn_params_free(ps);

    /* Configuration errors. */
    attn_gpt_config bad;
    memset(&bad, 0, sizeof bad);
    bad.vocab = 10, bad.ctx_len = 8, bad.n_layers = 1, bad.n_heads = 3, bad.d_model = 16;
    attn_params *p3 = NULL;
    attn_gpt *m3 = NULL;
    CHECK_OK(attn_params_new(&p3));
    CHECK(attn_gpt_new(&m3, p3, &bad, NULL) == ATTN_ERR_INVALID_ARG && m3 == NULL,
          "d_model 16 with 3 heads accepted");
    bad.n_heads = 4, bad.pos = ATTN_POS_SHAW;
    CHECK(attn_gpt_new(&m3, p3, &bad, NULL) == ATTN_ERR_INVALID_ARG, "shaw positions accepted");
    bad.pos = ATTN_POS_LEARNED, bad.dropout = 1.0f;
    CHECK(attn_gpt_new(&m3, p3, &bad, NULL) == ATTN_ERR_INVALID_ARG, "dropout 1 accepted");
    attn_params_free(p3);
    TEST_END();
}

static void test_init_and_errors(void) {
    TEST_BEGIN("gpt/init_errors");
    attn_gpt_config gc;
    memset(&gc, 0, sizeof gc);
    gc.vocab = 50, gc.ctx_len = 32, gc.n_layers = 4, gc.n_heads = 4, gc.d_model = 64;
    gc.pos = ATTN_POS_LEARNED, gc.tied = 1;
    attn_params *ps = NULL;
    attn_gpt *m = NULL;
    attn_rng rng;
    attn_rng_init(&rng, 5);
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_gpt_new(&m, ps, &gc, &rng));
    if (m) {
        CHECK(m->cfg.d_ff == 256 && m->cfg.n_kv_heads == 4, "defaults: d_ff %lld, kv heads %d",
              (long long)m->cfg.d_ff, m->cfg.n_kv_heads);
        CHECK(m->head == m->tok_emb && attn_params_find(ps, "head.weight") == NULL,
              "a tied head must be tok_emb.weight");
        /* GPT-2 init: std 0.02, residual projections 0.02 / sqrt(2 L) = 0.00707. */
        const char *names[3] = {"layers.1.self_attn.in_proj_weight", "layers.2.linear2.weight",
                                "layers.3.norm1.weight"};
        const double want[3] = {0.02, 0.02 / sqrt(8.0), 0.0};
        for (int i = 0; i < 3; i++) {
            attn_tensor *p = attn_params_find(ps, names[i]);
            CHECK(p != NULL, "no parameter %s", names[i]);
            if (!p) continue;
            double s = 0.0, s2 = 0.0;
            const int64_t n = attn_tensor_numel(p);
            const float *d = attn_f32(p);
            for (int64_t j = 0; j < n; j++) {
                s += d[j];
                s2 += (double)d[j] * d[j];
            }
            const double mean = s / n, sd = sqrt(s2 / n - mean * mean);
            if (i < 2)
                CHECK(fabs(sd - want[i]) < 0.1 * want[i] && fabs(mean) < 0.2 * want[i],
                      "%s: mean %g std %g, expected std %g", names[i], mean, sd, want[i]);
            else
                CHECK(mean == 1.0 && sd == 0.0, "%s: LayerNorm weights not 1", names[i]);
        }
        attn_ctx *ctx = test_ctx_new((size_t)16 << 20, 1, 0);
        if (ctx) {
            const int32_t ids[4] = {1, 2, 50, 3};
            CHECK(attn_gpt_logits(ctx, m, ids_tensor(ctx, 1, 4, ids), NULL) == NULL &&
                      attn_ctx_status(ctx) == ATTN_ERR_INVALID_ARG,
                  "id 50 of a 50-token vocabulary accepted");
            attn_ctx_reset(ctx);
            int32_t many[33] = {0};
            CHECK(attn_gpt_logits(ctx, m, ids_tensor(ctx, 1, 33, many), NULL) == NULL &&
                      attn_ctx_status(ctx) == ATTN_ERR_SHAPE,
                  "33 positions with ctx_len 32 accepted");
            attn_ctx_reset(ctx);
            attn_kv_cache cache;
            CHECK_OK(attn_gpt_cache_init(m, 1, &cache));
            CHECK(attn_gpt_logits(ctx, m, ids_tensor(ctx, 1, 3, many), &cache) == NULL &&
                      attn_ctx_status(ctx) == ATTN_ERR_STATE,
                  "a KV cache with gradients on accepted");
            attn_kv_cache_free(&cache);
            attn_ctx_reset(ctx);
            attn_tensor *f = attn_tensor_new(ctx, ATTN_F32, 2, (int64_t[]){1, 3});
            CHECK(attn_gpt_logits(ctx, m, f, NULL) == NULL && attn_ctx_status(ctx) == ATTN_ERR_DTYPE,
                  "f32 ids accepted");
            attn_ctx_free(ctx);
        }
    }
    attn_gpt_free(m);
    attn_params_free(ps);
    TEST_END();
}

/* Element (b, h, t, s) of a [B, H, T, S] weights tensor. */
static float w_at(const attn_tensor *w, int64_t b, int64_t h, int64_t t, int64_t s) {
    return ((const float *)w->data)[b * w->stride[0] + h * w->stride[1] + t * w->stride[2] +
                                    s * w->stride[3]];
}

static void test_maps(void) {
    TEST_BEGIN("gpt/attention_maps");
    const int32_t seq[2 * 7] = {5, 9, 3, 17, 22, 4, 4, 8, 13, 21, 6, 10, 1, 2};
    for (int gqa = 0; gqa < 2; gqa++) {
        attn_params *ps;
        attn_gpt *m = small_model(&ps, gqa ? ATTN_POS_ROPE : ATTN_POS_LEARNED, 4, gqa ? 2 : 0, 16,
                                  21 + (uint64_t)gqa);
        attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 64);
        attn_kv_cache cache;
        memset(&cache, 0, sizeof cache);
        if (!m || !ctx) goto next;
        attn_ctx_set_grad_enabled(ctx, 0);
        const int64_t V = m->cfg.vocab, B = 2, T = 7, H = 4;
        attn_tensor *plain = attn_gpt_logits(ctx, m, ids_tensor(ctx, B, T, seq), NULL);
        attn_tensor *w[2] = {NULL, NULL};
        attn_tensor *lg = attn_gpt_logits_ex(ctx, m, ids_tensor(ctx, B, T, seq), NULL, w);
        CHECK(plain && lg && w[0] && w[1], "%s", attn_ctx_error(ctx));
        if (!plain || !lg || !w[0] || !w[1]) goto next;
        CHECK(memcmp(attn_f32(plain), attn_f32(lg), sizeof(float) * (size_t)(B * T * V)) == 0,
              "asking for the weights changed the logits");
        double worst_sum = 0.0, above = 0.0, spread = 0.0, layer_diff = 0.0;
        for (int l = 0; l < 2; l++) {
            CHECK(w[l]->dtype == ATTN_F32 && w[l]->ndim == 4 && w[l]->shape[0] == B &&
                      w[l]->shape[1] == H && w[l]->shape[2] == T && w[l]->shape[3] == T,
                  "layer %d weights: expected f32 [2, 4, 7, 7]", l);
            if (w[l]->ndim != 4 || w[l]->shape[1] != H || w[l]->shape[3] != T) goto next;
            for (int64_t b = 0; b < B; b++)
                for (int64_t h = 0; h < H; h++)
                    for (int64_t t = 0; t < T; t++) {
                        double sum = 0.0, lo = 1.0, hi = 0.0;
                        for (int64_t s = 0; s < T; s++) {
                            const float v = w_at(w[l], b, h, t, s);
                            if (s > t) {
                                above = fmax(above, fabs((double)v)); /* must be exactly 0 */
                                continue;
                            }
                            sum += v;
                            lo = fmin(lo, v);
                            hi = fmax(hi, v);
                            if (l == 1) layer_diff = fmax(layer_diff, fabs((double)v - w_at(w[0], b, h, t, s)));
                        }
                        worst_sum = fmax(worst_sum, fabs(sum - 1.0));
                        if (t > 0) spread = fmax(spread, hi - lo);
                    }
        }
        CHECK(above == 0.0, "a weight above the diagonal is %g, expected exactly 0", above);
        CHECK(worst_sum <= 1e-5, "a row's visible weights sum to 1 +- %g (tolerance 1e-5)", worst_sum);
        /* Not blind: the maps are far from uniform and differ between layers. */
        CHECK(spread > 0.1 && layer_diff > 0.05,
              "maps too flat (spread %g) or layers alike (%g): the test is blind", spread, layer_diff);
        /* Through a KV cache: a prompt of 4, then 3 tokens; the last call's
         * weights are rows 4..6 of the full map of sequence 0, keys 0..6. */
        float full[2][4 * 7 * 7];
        for (int l = 0; l < 2; l++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t t = 0; t < T; t++)
                    for (int64_t s = 0; s < T; s++) full[l][(h * T + t) * T + s] = w_at(w[l], 0, h, t, s);
        CHECK_OK(attn_gpt_cache_init(m, 1, &cache));
        attn_tensor *cw[2] = {NULL, NULL};
        if (!attn_gpt_logits_ex(ctx, m, ids_tensor(ctx, 1, 4, seq), &cache, cw) ||
            !attn_gpt_logits_ex(ctx, m, ids_tensor(ctx, 1, 3, seq + 4), &cache, cw)) {
            CHECK(0, "cached pass: %s", attn_ctx_error(ctx));
            goto next;
        }
        double worst = 0.0;
        for (int l = 0; l < 2; l++) {
            CHECK(cw[l] && cw[l]->shape[1] == H && cw[l]->shape[2] == 3 && cw[l]->shape[3] == T,
                  "cached layer %d weights: expected [1, 4, 3, 7]", l);
            if (!cw[l] || cw[l]->shape[2] != 3 || cw[l]->shape[3] != T) goto next;
            for (int64_t h = 0; h < H; h++)
                for (int64_t t = 0; t < 3; t++)
                    for (int64_t s = 0; s < T; s++)
                        worst = fmax(worst, fabs((double)w_at(cw[l], 0, h, t, s) -
                                                 full[l][(h * T + 4 + t) * T + s]));
        }
        CHECK(worst <= 2e-6, "cached weights differ from the full pass's by %g", worst);
        /* On error the slots are NULL. */
        const int32_t bad[2] = {1, 99};
        cw[0] = cw[1] = w[0];
        CHECK(attn_gpt_logits_ex(ctx, m, ids_tensor(ctx, 1, 2, bad), NULL, cw) == NULL &&
                  cw[0] == NULL && cw[1] == NULL,
              "an id outside the vocabulary: no error, or slots left set");
    next:
        attn_kv_cache_free(&cache);
        attn_ctx_free(ctx);
        attn_gpt_free(m);
        attn_params_free(ps);
    }
    TEST_END();
}

void suite_gpt(void) {
    test_fixture();
    test_cache();
    test_generate();
    test_sampling();
    test_files();
    test_init_and_errors();
    test_maps();
}
