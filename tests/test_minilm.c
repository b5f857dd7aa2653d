/* test_minilm.c: the pretrained sentence encoder all-MiniLM-L6-v2
 * (include/attn/minilm.h), loaded from data/minilm/ (scripts/get_minilm.sh;
 * ATTN_MINILM_DIR overrides the directory).
 *   (a) parity: the embeddings of 112 of the fixture's texts (every special
 *       case: accents, CJK, emoji, empty, over-long ...) against
 *       sentence-transformers' (tests/fixtures/minilm.atfx,
 *       tools/make_minilm_fixtures.py): cosine >= 0.99999 each, norms 1;
 *       skipped (counted) without the model files;
 *   (b) a text's embedding does not depend on its batch (batch 1 against
 *       batch 32, padded to other lengths); the context's arena (128 MiB) is
 *       too small for the batch of the longest texts, so (a) also runs the
 *       halving of attn_minilm_embed;
 *   (c) the name map on a tiny Hugging Face-named file: every tensor lands
 *       where the map says, and a missing or misshapen tensor is an error
 *       (no model needed);
 *   (d) errors: a missing directory, bad arguments.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "test.h"

static const char *model_dir(void) {
    const char *d = getenv("ATTN_MINILM_DIR");
    return d && *d ? d : "data/minilm";
}

static void test_parity(attn_minilm *m) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/minilm.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    TEST_BEGIN("minilm/embeddings: cosine >= 0.99999 against sentence-transformers");
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        CHECK(0, "%s (regenerate with tools/make_minilm_fixtures.py)", err);
        TEST_END();
        return;
    }
    const atfx_tensor *texts = atfx_find(fx, "texts"), *toff = atfx_find(fx, "text_off");
    const atfx_tensor *rows = atfx_find(fx, "emb_rows"), *emb = atfx_find(fx, "emb");
    const int64_t E = m->dim;
    CHECK(texts && toff && rows && emb && emb->ndim == 2 && emb->shape[0] == rows->numel &&
              emb->shape[1] == E,
          "fixture tensors missing or of the wrong shape");
    if (texts && toff && rows && emb && emb->ndim == 2 && emb->shape[1] == E) {
        const int64_t n = rows->numel;
        char **tx = calloc((size_t)n, sizeof *tx);
        size_t *len = calloc((size_t)n, sizeof *len);
        float *out = malloc((size_t)(n * E) * sizeof *out);
        float *one = malloc((size_t)E * sizeof *one);
        int32_t *ntok = malloc((size_t)n * sizeof *ntok);
        attn_ctx *ctx = NULL;
        CHECK_OK(attn_ctx_new(&ctx, &(attn_ctx_config){.arena_bytes = (size_t)128 << 20, .n_threads = 1}));
        if (ctx) {
            attn_ctx_set_grad_enabled(ctx, 0);
            attn_ctx_set_training(ctx, 0);
        }
        for (int64_t i = 0; tx && len && i < n; i++) {
            const int32_t r = atfx_i32(rows)[i];
            const int32_t a = atfx_i32(toff)[r], b = atfx_i32(toff)[r + 1];
            tx[i] = malloc((size_t)(b - a) + 1);
            if (!tx[i]) break;
            for (int32_t k = a; k < b; k++) tx[i][k - a] = (char)atfx_i32(texts)[k];
            tx[i][b - a] = '\0';
            len[i] = (size_t)(b - a);
        }
        int64_t cut = 0;
        if (ctx && out && ntok && one)
            CHECK_OK(attn_minilm_embed(ctx, m, (const char *const *)tx, len, n, 32, out, ntok, &cut));
        double worst = 2.0;
        int64_t worst_i = -1;
        for (int64_t i = 0; out && i < n; i++) {
            const float *a = out + i * E, *b = atfx_f32(emb) + i * E;
            double ab = 0, aa = 0, bb = 0;
            for (int64_t e = 0; e < E; e++) {
                ab += (double)a[e] * b[e];
                aa += (double)a[e] * a[e];
                bb += (double)b[e] * b[e];
            }
            const double cos = ab / sqrt(aa * bb);
            if (!(cos >= worst)) {
                worst = cos;
                worst_i = i;
            }
            CHECK(fabs(sqrt(aa) - 1.0) < 1e-5, "text %lld: norm %.8f", (long long)i, sqrt(aa));
        }
        CHECK(worst >= 0.99999, "worst cosine %.8f at fixture text %d (%.60s)", worst,
              worst_i >= 0 ? atfx_i32(rows)[worst_i] : -1, worst_i >= 0 ? tx[worst_i] : "");
        CHECK(cut >= 2, "%lld texts truncated: expected the over-long ones", (long long)cut);
        if (test__verbose) printf("  minilm: %lld texts, worst cosine %.9f (1 - cos = %.3g)\n", (long long)n, worst, 1.0 - worst);
        /* (b) batch 1 against the batch of 32 above */
        int64_t checked = 0;
        double worst_b = 0;
        for (int64_t i = 0; ctx && out && one && i < n; i += 7) {
            attn_status st = attn_minilm_embed(ctx, m, (const char *const *)&tx[i], &len[i], 1, 1,
                                               one, NULL, NULL);
            if (st != ATTN_OK) {
                CHECK_OK(st);
                break;
            }
            for (int64_t e = 0; e < E; e++) {
                const double d = fabs((double)one[e] - out[i * E + e]);
                if (d > worst_b) worst_b = d;
            }
            checked++;
        }
        CHECK(checked > 10 && worst_b < 1e-5, "batch 1 vs batch 32: max difference %g over %lld texts",
              worst_b, (long long)checked);
        for (int64_t i = 0; tx && i < n; i++) free(tx[i]);
        free(tx);
        free(len);
        free(out);
        free(one);
        free(ntok);
        attn_ctx_free(ctx);
    }
    atfx_free(fx);
    TEST_END();
}

/* (c): a 2-layer model of width 4 written with Hugging Face's names,
 * every element a distinct value; after loading, each attn parameter holds
 * the values the map says. */
static void test_name_map(void) {
    TEST_BEGIN("minilm/name map on a tiny Hugging Face file");
    const int64_t E = 4, F = 8, V = 6, P = 5, TV = 2;
    const int L = 2;
    attn_params *src = NULL, *dst = NULL;
    CHECK_OK(attn_params_new(&src));
    CHECK_OK(attn_params_new(&dst));
    attn_bert *m = NULL;
    attn_bert_config bc;
    memset(&bc, 0, sizeof bc);
    bc.vocab = V;
    bc.max_len = P;
    bc.n_layers = L;
    bc.n_heads = 2;
    bc.d_model = E;
    bc.d_ff = F;
    bc.type_vocab = TV;
    if (src && dst) CHECK_OK(attn_bert_new(&m, dst, &bc, NULL));
    float next = 1.0f;
#define ADD(name, r, c)                                                                       \
    do {                                                                                      \
        attn_tensor *t__ = NULL;                                                              \
        CHECK_OK((c) ? attn_params_add(src, name, 2, (int64_t[]){r, c}, &t__)                  \
                     : attn_params_add(src, name, 1, (int64_t[]){r}, &t__));                   \
        for (int64_t i__ = 0; t__ && i__ < attn_tensor_numel(t__); i__++) attn_f32(t__)[i__] = next++; \
    } while (0)
    ADD("embeddings.word_embeddings.weight", V, E);
    ADD("embeddings.position_embeddings.weight", P, E);
    ADD("embeddings.token_type_embeddings.weight", TV, E);
    ADD("embeddings.LayerNorm.weight", E, 0);
    ADD("embeddings.LayerNorm.bias", E, 0);
    char name[128];
    for (int l = 0; l < L; l++) {
        static const char *const qkv[3] = {"query", "key", "value"};
        for (int j = 0; j < 3; j++) {
            snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.weight", l, qkv[j]);
            ADD(name, E, E);
            snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.bias", l, qkv[j]);
            ADD(name, E, 0);
        }
        snprintf(name, sizeof name, "encoder.layer.%d.attention.output.dense.weight", l);
        ADD(name, E, E);
        snprintf(name, sizeof name, "encoder.layer.%d.attention.output.dense.bias", l);
        ADD(name, E, 0);
        snprintf(name, sizeof name, "encoder.layer.%d.attention.output.LayerNorm.weight", l);
        ADD(name, E, 0);
        snprintf(name, sizeof name, "encoder.layer.%d.attention.output.LayerNorm.bias", l);
        ADD(name, E, 0);
        snprintf(name, sizeof name, "encoder.layer.%d.intermediate.dense.weight", l);
        ADD(name, F, E);
        snprintf(name, sizeof name, "encoder.layer.%d.intermediate.dense.bias", l);
        ADD(name, F, 0);
        snprintf(name, sizeof name, "encoder.layer.%d.output.dense.weight", l);
        ADD(name, E, F);
        snprintf(name, sizeof name, "encoder.layer.%d.output.dense.bias", l);
        ADD(name, E, 0);
        snprintf(name, sizeof name, "encoder.layer.%d.output.LayerNorm.weight", l);
        ADD(name, E, 0);
        snprintf(name, sizeof name, "encoder.layer.%d.output.LayerNorm.bias", l);
        ADD(name, E, 0);
    }
#undef ADD
    const char *path = "build/test_minilm_hf.safetensors";
    if (src) CHECK_OK(attn_safetensors_save_params(path, src, NULL, 0));
    if (m) {
        CHECK_OK(attn_minilm_load_hf(path, m));
        /* spot checks: value = 1 + the element's position in the file order above */
        const float *tok = attn_f32(m->tok_emb), *type = attn_f32(m->type_emb);
        CHECK(tok[0] == 1.0f && tok[V * E - 1] == (float)(V * E), "tok_emb");
        CHECK(type[0] == (float)(V * E + P * E + 1), "type_emb");
        const float first_q = (float)(V * E + P * E + TV * E + 2 * E + 1);
        const float *inw = attn_f32(m->blocks[0].self_attn.in_proj_weight);
        const float *inb = attn_f32(m->blocks[0].self_attn.in_proj_bias);
        /* query.weight, query.bias, key.weight, key.bias, value.weight, value.bias */
        CHECK(inw[0] == first_q && inb[0] == first_q + E * E &&
                  inw[E * E] == first_q + E * E + E && inb[E] == first_q + 2 * E * E + E &&
                  inw[2 * E * E] == first_q + 2 * (E * E + E) && inb[2 * E] == first_q + 3 * E * E + 2 * E,
              "q, k, v rows of in_proj: %g %g %g %g %g %g", inw[0], inb[0], inw[E * E], inb[E],
              inw[2 * E * E], inb[2 * E]);
        const float *ln2b = attn_f32(m->blocks[L - 1].norm_b[1]);
        CHECK(ln2b[E - 1] == next - 1, "the last tensor (layer %d output.LayerNorm.bias) %g vs %g", L - 1,
              ln2b[E - 1], next - 1);
        /* a misshapen tensor: load into a model of another d_ff */
        attn_params *p2 = NULL;
        attn_bert *m2 = NULL;
        bc.d_ff = F + 1;
        CHECK_OK(attn_params_new(&p2));
        if (p2) CHECK_OK(attn_bert_new(&m2, p2, &bc, NULL));
        if (m2) {
            CHECK(attn_minilm_load_hf(path, m2) == ATTN_ERR_SHAPE &&
                      strstr(attn_last_error(), "intermediate.dense.weight"),
                  "another d_ff: %s", attn_last_error());
            CHECK(attn_f32(m2->tok_emb)[0] == 0.0f, "nothing copied on error");
        }
        attn_bert_free(m2);
        attn_params_free(p2);
        /* a model without type embeddings is refused */
        bc.d_ff = F;
        bc.type_vocab = 0;
        CHECK_OK(attn_params_new(&p2));
        if (p2) CHECK_OK(attn_bert_new(&m2, p2, &bc, NULL));
        if (m2) CHECK(attn_minilm_load_hf(path, m2) == ATTN_ERR_INVALID_ARG, "no type embeddings");
        attn_bert_free(m2);
        attn_params_free(p2);
        /* attn_bert_save refuses type embeddings */
        CHECK(attn_bert_save("build/test_minilm_refused.safetensors", m, NULL, 0) == ATTN_ERR_INVALID_ARG,
              "attn_bert_save with type embeddings");
    }
    remove(path);
    attn_bert_free(m);
    attn_params_free(src);
    attn_params_free(dst);
    TEST_END();
}

static void test_errors(void) {
    TEST_BEGIN("minilm/errors");
    attn_minilm *m = NULL;
    CHECK(attn_minilm_load("/nonexistent/minilm", &m) == ATTN_ERR_IO && !m, "missing directory: %s",
          attn_last_error());
    CHECK(attn_minilm_load(NULL, &m) == ATTN_ERR_INVALID_ARG, "NULL");
    CHECK(attn_minilm_set_max_seq(NULL, 10) == ATTN_ERR_INVALID_ARG, "NULL model");
    /* garbled JSON files are format errors, not files without the key (an
     * audit found a garbage sentence_bert_config.json and a "{not json"
     * modules.json read as the defaults); checked before any weight is read */
    char dir[] = "/tmp/attn_minilm_XXXXXX";
    if (mkdtemp(dir)) {
        static const char cfg[] = "{\"hidden_size\": 8, \"num_hidden_layers\": 1, "
                                  "\"num_attention_heads\": 2, \"intermediate_size\": 16, "
                                  "\"vocab_size\": 10, \"max_position_embeddings\": 16, "
                                  "\"type_vocab_size\": 2, \"layer_norm_eps\": 1e-12, "
                                  "\"hidden_act\": \"gelu\"}";
        static const struct {
            const char *file, *text, *needle;
        } bad[] = {{"config.json", "{\"hidden_size\": 8", "config.json is not a JSON object"},
                   {"sentence_bert_config.json", "garbage", "sentence_bert_config.json is not"},
                   {"pooling_config.json", "{\"pooling_mode_mean_tokens\": true]", "pooling_config.json is not"},
                   {"modules.json", "{not json", "modules.json is not a JSON array"}};
        char path[64];
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) { /* files before i valid */
                snprintf(path, sizeof path, "%s/%s", dir, bad[j].file);
                FILE *f = fopen(path, "w");
                if (!f) continue;
                fputs(j == i ? bad[j].text : j == 0 ? cfg : j == 3 ? "[]" : "{}", f);
                fclose(f);
            }
            m = NULL;
            const attn_status st = attn_minilm_load(dir, &m);
            CHECK(st == ATTN_ERR_FORMAT && !m && strstr(attn_last_error(), bad[i].needle),
                  "garbled %s: %s: %s", bad[i].file, attn_status_str(st), attn_last_error());
            attn_minilm_free(m);
        }
        for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) {
            snprintf(path, sizeof path, "%s/%s", dir, bad[j].file);
            remove(path);
        }
        rmdir(dir);
    }
    TEST_END();
}

void suite_minilm(void) {
    test_name_map();
    test_errors();
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", model_dir());
    FILE *f = fopen(path, "rb");
    if (!f) {
        test_skip("minilm/embeddings", "%s is absent (bash scripts/get_minilm.sh fetches it)", path);
        return;
    }
    fclose(f);
    attn_minilm *m = NULL;
    TEST_BEGIN("minilm/load all-MiniLM-L6-v2");
    CHECK_OK(attn_minilm_load(model_dir(), &m));
    if (m) {
        CHECK(m->dim == 384 && m->max_seq == 256 && m->normalize && m->bert->cfg.n_layers == 6 &&
                  m->bert->cfg.n_heads == 12 && m->bert->cfg.d_ff == 1536 &&
                  m->bert->cfg.ln_eps == 1e-12f && m->bert->cfg.max_len == 512,
              "configuration");
        CHECK(attn_minilm_set_max_seq(m, 513) == ATTN_ERR_INVALID_ARG, "max_seq past 512");
    }
    TEST_END();
    if (m) test_parity(m);
    attn_minilm_free(m);
}
