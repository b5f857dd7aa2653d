/* make_seeds: writes the seed corpora of the fuzz harnesses, small valid
 * files made by attn itself (fuzz/make_corpus.sh runs it; the .mo catalogs
 * and the IDX slices of real data are added by the script).
 *
 *   make_seeds OUT_DIR
 *
 * writes OUT_DIR/<target>/<name> for the targets safetensors,
 * safetensors_file, checkpoint, gpt_load, bert_load, s2s_load, wavenet_load, vocab, idx,
 * lm_text, bert_corpus, pairs (the directories must exist). Deterministic:
 * the same files every time. The encoder-decoder checkpoints carry the
 * metadata keys that cli/cmd_seq2seq.c writes (meta_build). */
#include "fuzz_common.h" /* first: it sets _GNU_SOURCE */

#include <math.h>

static const char *out_dir;
static int failures;

static const char *at(const char *target, const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s/%s", out_dir, target, name);
    return buf;
}

static void check(attn_status st, const char *what) {
    if (st != ATTN_OK) {
        fprintf(stderr, "make_seeds: %s: %s\n", what, attn_last_error());
        failures++;
    }
}

static void put(const char *target, const char *name, const void *bytes, size_t n) {
    FILE *f = fopen(at(target, name), "wb");
    if (!f || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "make_seeds: cannot write %s\n", at(target, name));
        failures++;
    }
}

static void fill(attn_params *ps, float scale) {
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *t = attn_params_at(ps, i);
        float *x = attn_f32(t);
        const int64_t n = attn_tensor_numel(t);
        for (int64_t k = 0; k < n; k++) x[k] = scale * sinf((float)(k + 1) * 0.37f + (float)i);
        if (t->grad)
            for (int64_t k = 0; k < n; k++) t->grad[k] = 0.1f * cosf((float)k + (float)i);
    }
}

static void gpt_claims(attn_params *ps, const attn_gpt_config *cfg);
static void bert_claims(attn_params *ps, const attn_bert_config *cfg);

/* A file with one tensor of each float dtype and an I64 one, written by
 * hand: the library writes F32 only. */
static void handmade_safetensors(const char *target) {
    static const char hdr[] =
        "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"x\"},"
        "\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[4,8]},"
        "\"c\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,12]},"
        "\"d\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[12,20]}}";
    size_t hl = sizeof hdr - 1;
    const size_t padded = (hl + 7) / 8 * 8;
    uint8_t buf[512];
    memset(buf, 0, sizeof buf);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(padded >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    memset(buf + 8 + hl, ' ', padded - hl);
    static const uint8_t data[20] = {0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f, 0x00, 0x40, 0x00, 0x00,
                                     0x80, 0x3f, 7, 0, 0, 0, 0, 0, 0, 0};
    memcpy(buf + 8 + padded, data, sizeof data);
    put(target, "dtypes.safetensors", buf, 8 + padded + sizeof data);
}

static void params_files(void) {
    attn_params *ps = fz_store();
    if (!ps) {
        failures++;
        return;
    }
    fill(ps, 0.5f);
    const attn_kv meta[] = {{"format", "pt"}, {"comment", "made by fuzz/make_seeds.c"}};
    check(attn_safetensors_save_params(at("safetensors", "params.safetensors"), ps, meta, 2), "params");
    check(attn_safetensors_save_params(at("safetensors_file", "params.safetensors"), ps, NULL, 0), "params");
    handmade_safetensors("safetensors");
    handmade_safetensors("safetensors_file");
    /* checkpoints after one step of each optimizer, and one without */
    static const struct {
        attn_optim_kind kind;
        const char *name;
    } kinds[] = {{ATTN_OPTIM_SGD, "sgd.ckpt"}, {ATTN_OPTIM_ADAM, "adam.ckpt"}, {ATTN_OPTIM_ADAMW, "adamw.ckpt"}};
    for (int k = 0; k < 3; k++) {
        attn_optim_config oc = {0};
        oc.kind = kinds[k].kind;
        oc.lr = 0.01f;
        oc.momentum = kinds[k].kind == ATTN_OPTIM_SGD ? 0.9f : 0.0f;
        oc.weight_decay = 0.01f;
        attn_optim *opt = NULL;
        check(attn_optim_new(&opt, ps, &oc), "optimizer");
        if (!opt) continue;
        check(attn_optim_step(opt, 0.01f), "optimizer step");
        const attn_kv user[] = {{"run.note", "seed"}};
        check(attn_checkpoint_save(at("checkpoint", kinds[k].name), ps, opt, 3, user, 1), kinds[k].name);
        if (k == 2) check(attn_checkpoint_save(at("safetensors", "adamw.ckpt"), ps, opt, 3, NULL, 0), "ckpt");
        attn_optim_free(opt);
    }
    check(attn_checkpoint_save(at("checkpoint", "noopt.ckpt"), ps, NULL, 0, NULL, 0), "checkpoint");
    attn_params_free(ps);
}

static void gpt_files(void) {
    attn_gpt_config cfgs[2];
    memset(cfgs, 0, sizeof cfgs);
    cfgs[0].vocab = 6, cfgs[0].ctx_len = 4, cfgs[0].n_layers = 1, cfgs[0].n_heads = 2;
    cfgs[0].d_model = 4, cfgs[0].d_ff = 8, cfgs[0].pos = ATTN_POS_LEARNED, cfgs[0].tied = 1;
    cfgs[1] = cfgs[0];
    cfgs[1].n_layers = 2, cfgs[1].n_kv_heads = 1, cfgs[1].pos = ATTN_POS_ROPE, cfgs[1].tied = 0;
    cfgs[1].dropout = 0.1f, cfgs[1].rope_theta = 500.0f;
    for (int i = 0; i < 2; i++) {
        attn_params *ps = NULL;
        attn_gpt *m = NULL;
        attn_rng rng;
        attn_rng_init(&rng, 1);
        check(attn_params_new(&ps), "params");
        if (!ps) continue;
        check(attn_gpt_new(&m, ps, &cfgs[i], &rng), "gpt");
        if (m) {
            char name[32];
            snprintf(name, sizeof name, "gpt%d.safetensors", i);
            check(attn_gpt_save(at("gpt_load", name), m, NULL, 0), name);
            /* a training checkpoint: parameters, AdamW state, the configuration */
            attn_kv kv[ATTN_GPT_META];
            char buf[ATTN_GPT_META * 32];
            attn_gpt_config_meta(&m->cfg, kv, buf);
            attn_optim_config oc = {ATTN_OPTIM_ADAMW, 0.01f, 0.0f, 0, 0.0f, 0.0f, 0.0f, 0.01f};
            attn_optim *opt = NULL;
            check(attn_optim_new(&opt, ps, &oc), "optimizer");
            snprintf(name, sizeof name, "gpt%d.ckpt", i);
            if (opt) check(attn_checkpoint_save(at("gpt_load", name), ps, opt, 1, kv, ATTN_GPT_META), name);
            attn_optim_free(opt);
            if (i == 0) gpt_claims(ps, &m->cfg);
        }
        attn_gpt_free(m);
        attn_params_free(ps);
    }
}

/* Files whose configuration metadata claims far more than their tensors
 * (the parameters of cfg saved under the metadata of each claim): attn must
 * refuse them before it builds the model. Without that check each asks for
 * tens of gigabytes, which ASan and libFuzzer report at once, so every run
 * of the targets replays these regressions (docs/testing.md). */
static void gpt_claims(attn_params *ps, const attn_gpt_config *cfg) {
    static const struct {
        const char *name;
        int64_t vocab, ctx_len, d_model, d_ff;
        int n_layers;
    } claims[] = {{"claim_vocab", 100000000, 0, 64, 0, 0},
                  {"claim_layers", 0, 0, 0, 0, 100000},
                  {"claim_d_ff", 0, 0, 0, 2000000000, 0},
                  {"claim_ctx_len", 0, 2000000000, 0, 0, 0}};
    for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++) {
        attn_gpt_config c = *cfg;
        if (claims[i].vocab) c.vocab = claims[i].vocab;
        if (claims[i].ctx_len) c.ctx_len = claims[i].ctx_len;
        if (claims[i].d_model) c.d_model = claims[i].d_model;
        if (claims[i].d_ff) c.d_ff = claims[i].d_ff;
        if (claims[i].n_layers) c.n_layers = claims[i].n_layers;
        attn_kv kv[ATTN_GPT_META];
        char buf[ATTN_GPT_META * 32];
        attn_gpt_config_meta(&c, kv, buf);
        check(attn_safetensors_save_params(at("gpt_load", claims[i].name), ps, kv, ATTN_GPT_META),
              claims[i].name);
    }
}

static void bert_claims(attn_params *ps, const attn_bert_config *cfg) {
    static const struct {
        const char *name;
        int64_t vocab, max_len, d_ff;
        int n_layers, n_classes;
    } claims[] = {{"claim_vocab", 2000000000, 0, 0, 0, 0},
                  {"claim_layers", 0, 0, 0, 100000, 0},
                  {"claim_max_len", 0, 2000000000, 0, 0, 0},
                  {"claim_d_ff", 0, 0, 2000000000, 0, 0},
                  {"claim_n_classes", 0, 0, 0, 0, 2000000000}};
    for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++) {
        attn_bert_config c = *cfg;
        if (claims[i].vocab) c.vocab = claims[i].vocab;
        if (claims[i].max_len) c.max_len = claims[i].max_len;
        if (claims[i].d_ff) c.d_ff = claims[i].d_ff;
        if (claims[i].n_layers) c.n_layers = claims[i].n_layers;
        if (claims[i].n_classes) c.n_classes = claims[i].n_classes;
        attn_kv kv[ATTN_BERT_META];
        char buf[ATTN_BERT_META * 32];
        attn_bert_config_meta(&c, kv, buf);
        check(attn_safetensors_save_params(at("bert_load", claims[i].name), ps, kv, ATTN_BERT_META),
              claims[i].name);
    }
}

static void bert_files(void) {
    attn_bert_config cfgs[2];
    memset(cfgs, 0, sizeof cfgs);
    cfgs[0].vocab = 7, cfgs[0].max_len = 5, cfgs[0].n_layers = 1, cfgs[0].n_heads = 2;
    cfgs[0].d_model = 4, cfgs[0].d_ff = 8, cfgs[0].mlm = 1, cfgs[0].n_classes = 0;
    cfgs[1] = cfgs[0];
    cfgs[1].norm_first = 1, cfgs[1].mlm = 0, cfgs[1].n_classes = 3, cfgs[1].ln_eps = 1e-5f;
    for (int i = 0; i < 2; i++) {
        attn_params *ps = NULL;
        attn_bert *m = NULL;
        attn_rng rng;
        attn_rng_init(&rng, 2);
        check(attn_params_new(&ps), "params");
        if (!ps) continue;
        check(attn_bert_new(&m, ps, &cfgs[i], &rng), "bert");
        if (m) {
            char name[32];
            snprintf(name, sizeof name, "bert%d.safetensors", i);
            check(attn_bert_save(at("bert_load", name), m, NULL, 0), name);
            if (i == 1) bert_claims(ps, &m->cfg);
        }
        attn_bert_free(m);
        attn_params_free(ps);
    }
}

/* A checkpoint of an encoder-decoder with AdamW state and the CLI's
 * metadata (the model part and the run settings of cmd_seq2seq.c). */
static void s2s_checkpoint(const char *name, attn_params *ps, const attn_kv *model_kv, int n_model) {
    static const attn_kv common[] = {
        {"task", "dates"}, {"lang", ""}, {"tokenizer", "char"}, {"bpe_merges", "0"},
        {"src_vocab", "9"}, {"tgt_vocab", "8"}, {"max_src_len", "6"}, {"dropout", "0.1"},
        {"pad_id", "0"}, {"bos_id", "1"}, {"eos_id", "2"}, {"data_seed", "1"},
        {"n_train", "100"}, {"max_len", "6"}, {"data_cursor", "0"}, {"train_batch", "2"},
        {"train_pool", "4"}, {"train_warmup", "0"}, {"train_total_steps", "1"},
        {"train_seed", "1"}, {"train_lr", "0.001"}, {"train_weight_decay", "0"},
        {"train_label_smoothing", "0"}, {"train_time_budget", "0"}, {"train_seconds", "0.1"}};
    const int nc = (int)(sizeof common / sizeof common[0]);
    attn_kv kv[64];
    int n = 0;
    for (int i = 0; i < n_model; i++) kv[n++] = model_kv[i];
    for (int i = 0; i < nc; i++) kv[n++] = common[i];
    attn_optim_config oc = {ATTN_OPTIM_ADAMW, 1e-3f, 0.0f, 0, 0.9f, 0.98f, 1e-9f, 0.01f};
    attn_optim *opt = NULL;
    check(attn_optim_new(&opt, ps, &oc), "optimizer");
    if (opt) check(attn_checkpoint_save(at("s2s_load", name), ps, opt, 1, kv, n), name);
    attn_optim_free(opt);
}

static void s2s_files(void) {
    attn_rng rng;
    attn_rng_init(&rng, 3);
    attn_params *ps = NULL;
    check(attn_params_new(&ps), "params");
    attn_t2t_config t;
    memset(&t, 0, sizeof t);
    t.src_vocab = 9, t.tgt_vocab = 8, t.d_model = 4, t.n_heads = 2, t.enc_layers = 1;
    t.dec_layers = 1, t.d_ff = 8, t.dropout = 0.1f, t.pos = ATTN_POS_LEARNED, t.max_len = 6;
    t.pad_id = 0, t.bos_id = 1, t.eos_id = 2, t.tie_output = 1;
    attn_t2t *tm = NULL;
    if (ps) check(attn_t2t_new(&tm, ps, &t, &rng), "t2t");
    if (tm) {
        const attn_kv kv[] = {{"model", "attn-transformer"}, {"d_model", "4"}, {"heads", "2"},
                              {"kv_heads", "2"}, {"enc_layers", "1"}, {"dec_layers", "1"},
                              {"d_ff", "8"}, {"norm_first", "0"}, {"activation", "relu"},
                              {"pos", attn_pos_kind_name(ATTN_POS_LEARNED)}, {"shaw_clip", "0"},
                              {"rope_theta", "0"}, {"max_pos", "6"}, {"tie_output", "1"},
                              {"align_layer", "-1"}};
        s2s_checkpoint("t2t.ckpt", ps, kv, (int)(sizeof kv / sizeof kv[0]));
    }
    attn_t2t_free(tm);
    attn_params_free(ps);
    ps = NULL;
    check(attn_params_new(&ps), "params");
    attn_seq2seq_config c;
    memset(&c, 0, sizeof c);
    c.cell = ATTN_RNN_GRU, c.src_vocab = 9, c.tgt_vocab = 8, c.emb_dim = 3, c.hidden = 4;
    c.enc_layers = 1, c.dec_layers = 1, c.bidirectional = 1, c.attention = ATTN_S2S_BAHDANAU;
    c.attn_dim = 4, c.max_src_len = 6, c.dropout = 0.1f, c.pad_id = 0, c.bos_id = 1, c.eos_id = 2;
    attn_seq2seq *sm = NULL;
    if (ps) check(attn_seq2seq_new(&sm, ps, &c, &rng), "seq2seq");
    if (sm) {
        const attn_kv kv[] = {{"model", "attn-seq2seq"}, {"cell", "gru"}, {"attention", "bahdanau"},
                              {"emb_dim", "3"}, {"hidden", "4"}, {"enc_layers", "1"},
                              {"dec_layers", "1"}, {"bidirectional", "1"}, {"attn_dim", "4"},
                              {"combine_dim", "0"}, {"input_feed", "1"}, {"local_window", "0"}};
        s2s_checkpoint("seq2seq.ckpt", ps, kv, (int)(sizeof kv / sizeof kv[0]));
    }
    attn_seq2seq_free(sm);
    attn_params_free(ps);
}

static const char *const texts[] = {
    "Open the file. Close the file.\n",
    "The quick brown fox jumps over the lazy dog, 1234 times!\n",
    "Fichier \xc3\xa0 ouvrir \xe2\x80\x94 \xc2\xab guillemets \xc2\xbb.\n",
};

static void vocab_files(void) {
    attn_vocab *v = NULL;
    check(attn_vocab_build_chars(texts, 3, 1, &v), "char vocab");
    if (v) check(attn_vocab_save(v, at("vocab", "char.vocab")), "save char vocab");
    attn_vocab_free(v);
    v = NULL;
    check(attn_bpe_learn(texts, 3, 24, 1, &v), "bpe vocab");
    if (v) check(attn_vocab_save(v, at("vocab", "bpe.vocab")), "save bpe vocab");
    attn_vocab_free(v);
}

static void text_files(void) {
    static const uint8_t idx3[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3,
                                   0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255};
    static const uint8_t idx1[] = {0, 0, 8, 1, 0, 0, 0, 4, 9, 0, 3, 7};
    put("idx", "tiny3.idx", idx3, sizeof idx3);
    put("idx", "tiny1.idx", idx1, sizeof idx1);
    char all[1024] = "";
    for (int i = 0; i < 3; i++) strcat(all, texts[i]);
    put("lm_text", "text.txt", all, strlen(all));
    put("lm_text", "text1.txt", texts[0], strlen(texts[0]) - 1); /* odd size: the BPE path */
    static const char corpus[] = "\x0b" "Open the file.\n%\nThe quick brown fox.\n%\n\xc3\xa9t\xc3\xa9\n";
    static const char labels[] = "0\n2\n1\n";
    char buf[256];
    memcpy(buf, corpus, sizeof corpus - 1);
    buf[sizeof corpus - 1] = 0;
    memcpy(buf + sizeof corpus, labels, sizeof labels - 1);
    put("bert_corpus", "labelled", buf, sizeof corpus + sizeof labels - 1);
    put("bert_corpus", "unlabelled", corpus, sizeof corpus - 1);
    static const char pairs[] = "Open the file\tDatei \xc3\xb6" "ffnen\nClose the window now\tFenster jetzt schlie\xc3\x9f" "en\n";
    put("pairs", "pairs.tsv", pairs, sizeof pairs - 1);
}

/* Two small WaveNets (kernel 2 and 3), as attn_wavenet_save writes them, and
 * a checkpoint with the optimizer state. */
static void wavenet_files(void) {
    const attn_wavenet_config cfgs[2] = {{12, 4, 3, 5, 0, 2, 3, 1}, {7, 3, 2, 2, 4, 3, 2, 2}};
    for (int i = 0; i < 2; i++) {
        attn_params *ps = NULL;
        attn_wavenet *m = NULL;
        attn_rng rng;
        attn_rng_init(&rng, 5 + (uint64_t)i);
        check(attn_params_new(&ps), "params");
        if (!ps) continue;
        check(attn_wavenet_new(&m, ps, &cfgs[i], &rng), "wavenet");
        if (m) {
            char name[64];
            snprintf(name, sizeof name, "wavenet%d.safetensors", i);
            check(attn_wavenet_save(at("wavenet_load", name), m, NULL, 0), name);
            attn_optim *opt = NULL;
            attn_optim_config oc = {0};
            oc.kind = ATTN_OPTIM_ADAMW;
            oc.lr = 1e-3f;
            check(attn_optim_new(&opt, ps, &oc), "optim");
            attn_kv kv[ATTN_WAVENET_META];
            char buf[ATTN_WAVENET_META * 32];
            attn_wavenet_config_meta(&m->cfg, kv, buf);
            snprintf(name, sizeof name, "wavenet%d.ckpt", i);
            if (opt) check(attn_checkpoint_save(at("wavenet_load", name), ps, opt, 1, kv, ATTN_WAVENET_META), name);
            attn_optim_free(opt);
        }
        attn_wavenet_free(m);
        attn_params_free(ps);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds OUT_DIR\n");
        return 2;
    }
    out_dir = argv[1];
    params_files();
    gpt_files();
    wavenet_files();
    bert_files();
    s2s_files();
    vocab_files();
    text_files();
    return failures ? 1 : 0;
}
