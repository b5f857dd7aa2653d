/* test_model_files.c: model files whose metadata does not match their
 * tensors (found by fuzz/fuzz_gpt_load and fuzz/fuzz_bert_load; see
 * docs/testing.md, "Fuzzing"). A few bytes of configuration metadata set
 * the size of the model that attn_gpt_load and attn_bert_load build: a
 * 2.4 KB GPT file saying gpt.vocab = 100000000 made attn allocate 51 GB,
 * one saying gpt.n_layers = 100000 took 13 s and 660 MB before it was
 * rejected; gpt.d_ff, gpt.ctx_len or bert.max_len of 2*10^9 ask for
 * 64 GB. The loaders now check the file's tensors against the
 * configuration first, so such a file is refused before any parameter is
 * created: these tests use sizes small enough to be harmless without the
 * check, and assert that the load fails and the store stays empty (the
 * status and the message are those of whichever check refuses first: a
 * missing tensor is ATTN_ERR_FORMAT, another shape ATTN_ERR_SHAPE, naming
 * the tensor). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

static void tmp_path(char *dir, size_t n_dir, char *path, size_t n_path, const char *name) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, n_dir, "%s/attn_test_mf_XXXXXX", base && base[0] ? base : "/tmp");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, n_path, "%s/%s", dir, name);
}

/* Saves the parameters of a small GPT (config `real`) under the metadata of
 * `claimed`, loads the file, and checks that the load fails before anything
 * is built. `want` and `tensor` (the status of the tensor check and the
 * tensor that refuses the file) only label a failure. */
static void gpt_case(const char *what, const attn_gpt_config *real, const attn_gpt_config *claimed,
                     attn_status want, const char *tensor) {
    attn_params *ps = NULL, *ps2 = NULL;
    attn_gpt *m = NULL, *m2 = NULL;
    attn_rng rng;
    attn_rng_init(&rng, 5);
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_params_new(&ps2));
    CHECK_OK(attn_gpt_new(&m, ps, real, &rng));
    char dir[512], path[600];
    tmp_path(dir, sizeof dir, path, sizeof path, "gpt.safetensors");
    if (m && ps2) {
        attn_kv kv[ATTN_GPT_META];
        char buf[ATTN_GPT_META * 32];
        attn_gpt_config_meta(claimed, kv, buf);
        CHECK_OK(attn_safetensors_save_params(path, ps, kv, ATTN_GPT_META));
        const attn_status st = attn_gpt_load(path, ps2, &m2);
        CHECK(st != ATTN_OK && m2 == NULL, "%s: the file loads (expected %s naming %s)", what,
              attn_status_str(want), tensor);
        CHECK(attn_params_count(ps2) == 0,
              "%s: %d parameters were created before the file was refused (%s: %s)", what,
              attn_params_count(ps2), attn_status_str(st), attn_last_error());
        unlink(path);
    }
    rmdir(dir);
    attn_gpt_free(m2);
    attn_gpt_free(m);
    attn_params_free(ps2);
    attn_params_free(ps);
}

static void test_gpt(void) {
    TEST_BEGIN("model_files/gpt_metadata_vs_tensors");
    attn_gpt_config c;
    memset(&c, 0, sizeof c);
    c.vocab = 6, c.ctx_len = 4, c.n_layers = 1, c.n_heads = 2, c.d_model = 4, c.d_ff = 8;
    c.pos = ATTN_POS_LEARNED, c.tied = 1;
    attn_gpt_config big = c;
    big.vocab = 200000;  /* 3.2 MB of embeddings (the fuzzer's file: 10^8, 51 GB) */
    gpt_case("gpt.vocab 200000", &c, &big, ATTN_ERR_SHAPE, "tok_emb.weight");
    big = c;
    big.n_layers = 2000; /* the fuzzer's file: 100,000 layers */
    gpt_case("gpt.n_layers 2000", &c, &big, ATTN_ERR_FORMAT, "layers.1999.linear1.weight");
    big = c;
    big.d_ff = 100000;
    gpt_case("gpt.d_ff 100000", &c, &big, ATTN_ERR_SHAPE, "layers.0.linear1.weight");
    big = c;
    big.ctx_len = 100000;
    gpt_case("gpt.ctx_len 100000", &c, &big, ATTN_ERR_SHAPE, "pos_emb.weight");
    /* the file as saved still loads */
    attn_params *ps = NULL, *ps2 = NULL;
    attn_gpt *m = NULL, *m2 = NULL;
    attn_rng rng;
    attn_rng_init(&rng, 5);
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_params_new(&ps2));
    CHECK_OK(attn_gpt_new(&m, ps, &c, &rng));
    char dir[512], path[600];
    tmp_path(dir, sizeof dir, path, sizeof path, "gpt.safetensors");
    if (m) {
        CHECK_OK(attn_gpt_save(path, m, NULL, 0));
        CHECK_OK(attn_gpt_load(path, ps2, &m2));
        CHECK(attn_params_count(ps2) == attn_params_count(ps), "%d vs %d parameters",
              attn_params_count(ps2), attn_params_count(ps));
        unlink(path);
    }
    rmdir(dir);
    attn_gpt_free(m2);
    attn_gpt_free(m);
    attn_params_free(ps2);
    attn_params_free(ps);
    TEST_END();
}

static void bert_case(const char *what, const attn_bert_config *real, const attn_bert_config *claimed,
                      attn_status want, const char *tensor) {
    attn_params *ps = NULL, *ps2 = NULL;
    attn_bert *m = NULL, *m2 = NULL;
    attn_rng rng;
    attn_rng_init(&rng, 6);
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_params_new(&ps2));
    CHECK_OK(attn_bert_new(&m, ps, real, &rng));
    char dir[512], path[600];
    tmp_path(dir, sizeof dir, path, sizeof path, "bert.safetensors");
    if (m && ps2) {
        attn_kv kv[ATTN_BERT_META];
        char buf[ATTN_BERT_META * 32];
        attn_bert_config_meta(claimed, kv, buf);
        CHECK_OK(attn_safetensors_save_params(path, ps, kv, ATTN_BERT_META));
        const attn_status st = attn_bert_load(path, ps2, &m2);
        CHECK(st != ATTN_OK && m2 == NULL, "%s: the file loads (expected %s naming %s)", what,
              attn_status_str(want), tensor);
        CHECK(attn_params_count(ps2) == 0,
              "%s: %d parameters were created before the file was refused (%s: %s)", what,
              attn_params_count(ps2), attn_status_str(st), attn_last_error());
        unlink(path);
    }
    rmdir(dir);
    attn_bert_free(m2);
    attn_bert_free(m);
    attn_params_free(ps2);
    attn_params_free(ps);
}

static void test_bert(void) {
    TEST_BEGIN("model_files/bert_metadata_vs_tensors");
    attn_bert_config c;
    memset(&c, 0, sizeof c);
    c.vocab = 7, c.max_len = 5, c.n_layers = 1, c.n_heads = 2, c.d_model = 4, c.d_ff = 8;
    c.mlm = 1, c.n_classes = 2;
    attn_bert_config big = c;
    big.vocab = 200000;
    bert_case("bert.vocab 200000", &c, &big, ATTN_ERR_SHAPE, "tok_emb.weight");
    big = c;
    big.n_layers = 2000;
    bert_case("bert.n_layers 2000", &c, &big, ATTN_ERR_FORMAT, "layers.1999.linear1.weight");
    big = c;
    big.max_len = 100000;
    bert_case("bert.max_len 100000", &c, &big, ATTN_ERR_SHAPE, "pos_emb.weight");
    big = c;
    big.d_ff = 100000;
    bert_case("bert.d_ff 100000", &c, &big, ATTN_ERR_SHAPE, "layers.0.linear1.weight");
    big = c;
    big.n_classes = 100000;
    bert_case("bert.n_classes 100000", &c, &big, ATTN_ERR_SHAPE, "classifier.weight");
    TEST_END();
}

/* A flag in the metadata is 0 or 1. fuzz/fuzz_bert_load found a file with
 * bert.norm_first = 2: attn_bert_load read it as "pre-LN" and
 * attn_bert_load_encoder, comparing the number, refused the model's own
 * file. Every loader now refuses such a value, naming the key. */
static void test_flags(void) {
    TEST_BEGIN("model_files/flag_values");
    attn_bert_config c;
    memset(&c, 0, sizeof c);
    c.vocab = 7, c.max_len = 5, c.n_layers = 1, c.n_heads = 2, c.d_model = 4, c.d_ff = 8;
    c.mlm = 1, c.norm_first = 1;
    attn_params *ps = NULL, *ps2 = NULL;
    attn_bert *m = NULL, *m2 = NULL;
    attn_rng rng;
    attn_rng_init(&rng, 7);
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_bert_new(&m, ps, &c, &rng));
    char dir[512], path[600];
    tmp_path(dir, sizeof dir, path, sizeof path, "bert.safetensors");
    static const char *const keys[] = {"bert.norm_first", "bert.mlm"};
    static const char *const values[] = {"2", "1000", "-1", "1.0", "", "0", "1", " 1"};
    for (int k = 0; m && k < 2; k++)
        for (int v = 0; v < (int)(sizeof values / sizeof values[0]); v++) {
            attn_kv kv[ATTN_BERT_META];
            char buf[ATTN_BERT_META * 32];
            attn_bert_config_meta(&c, kv, buf);
            for (int i = 0; i < ATTN_BERT_META; i++)
                if (strcmp(kv[i].key, keys[k]) == 0) kv[i].value = values[v];
            CHECK_OK(attn_safetensors_save_params(path, ps, kv, ATTN_BERT_META));
            const int ok = v >= 5; /* "0", "1" and " 1" (strtoll skips leading space) */
            attn_bert_config got;
            const attn_status sc = attn_bert_config_load(path, &got);
            CHECK((sc == ATTN_OK) == ok, "%s = '%s': attn_bert_config_load %s (%s)", keys[k],
                  values[v], attn_status_str(sc), attn_last_error());
            if (!ok)
                CHECK(strstr(attn_last_error(), keys[k]) != NULL, "the message names %s: %s",
                      keys[k], attn_last_error());
            CHECK_OK(attn_params_new(&ps2));
            const attn_status sl = attn_bert_load(path, ps2, &m2);
            CHECK((sl == ATTN_OK) == ok && (m2 != NULL) == ok, "%s = '%s': attn_bert_load %s",
                  keys[k], values[v], attn_status_str(sl));
            /* whatever loads, loads as its own encoder */
            if (m2) CHECK_OK(attn_bert_load_encoder(path, m2));
            attn_bert_free(m2);
            m2 = NULL;
            attn_params_free(ps2);
            ps2 = NULL;
            unlink(path);
        }
    rmdir(dir);
    attn_bert_free(m);
    attn_params_free(ps);
    TEST_END();
}

void suite_model_files(void) {
    test_gpt();
    test_bert();
    test_flags();
}
