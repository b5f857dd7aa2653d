/* fuzz_s2s_load: the encoder-decoder families (`attn seq2seq`, `attn
 * transformer`) on arbitrary model files. Their configuration metadata is
 * read by the CLI (cli/cmd_seq2seq.c, bundle_load), which the library does
 * not export; this harness reads the model part of it the same way (the
 * same keys, the same ranges, metadata "model" = "attn-seq2seq" or
 * "attn-transformer"), then does what the CLI does with it through the
 * library: attn_seq2seq_new / attn_t2t_new with no initialisation, and
 * attn_checkpoint_load with an AdamW optimizer (or none, by the input's
 * size).
 *
 * The CLI builds the model from those ranges before it looks at the
 * tensors (vocabularies up to 2^30, widths up to 2^20): a few bytes of
 * metadata can ask for terabytes (docs/testing.md, "Fuzzing"). The harness
 * therefore skips configurations whose embeddings and layers alone need
 * more bytes than the file holds (they cannot load: every parameter must
 * be in the file, at 2 bytes or more an element), so that it exercises the
 * constructors and the loader instead of reporting that one defect on
 * every run. */
#include <math.h>

#include "fuzz_common.h"

typedef struct reader {
    const attn_safetensors *f;
    int bad;
} reader;

static long long get_ll(reader *r, const char *key, long long lo, long long hi) {
    const char *s = attn_safetensors_metadata(r->f, key);
    char *end = NULL;
    if (!s || !*s) return r->bad = 1, 0;
    errno = 0;
    const long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return r->bad = 1, 0;
    return v;
}

static double get_real(reader *r, const char *key, double lo, double hi) {
    const char *s = attn_safetensors_metadata(r->f, key);
    char *end = NULL;
    if (!s || !*s) return r->bad = 1, 0.0;
    errno = 0;
    const double v = strtod(s, &end);
    if (errno || *end || !(v >= lo && v <= hi)) return r->bad = 1, 0.0;
    return v;
}

static const char *get_str(reader *r, const char *key) {
    const char *s = attn_safetensors_metadata(r->f, key);
    if (!s) r->bad = 1;
    return s ? s : "";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    attn_safetensors *f = NULL;
    if (attn_safetensors_open_memory(&f, data, size) != ATTN_OK) return 0;
    const char *model = attn_safetensors_metadata(f, "model");
    const int t2t = model && strcmp(model, "attn-transformer") == 0;
    if (!model || (!t2t && strcmp(model, "attn-seq2seq") != 0)) {
        attn_safetensors_close(f);
        return 0;
    }
    reader r = {f, 0};
    attn_seq2seq_config c;
    attn_t2t_config t;
    memset(&c, 0, sizeof c);
    memset(&t, 0, sizeof t);
    c.src_vocab = get_ll(&r, "src_vocab", 4, 1 << 30);
    c.tgt_vocab = get_ll(&r, "tgt_vocab", 4, 1 << 30);
    c.max_src_len = get_ll(&r, "max_src_len", 0, 1 << 30);
    c.dropout = (float)get_real(&r, "dropout", 0.0, 1.0);
    c.pad_id = (int32_t)get_ll(&r, "pad_id", 0, 1 << 30);
    c.bos_id = (int32_t)get_ll(&r, "bos_id", 0, 1 << 30);
    c.eos_id = (int32_t)get_ll(&r, "eos_id", 0, 1 << 30);
    double need; /* elements of the embeddings and of the layers' largest matrices */
    if (t2t) {
        t.src_vocab = c.src_vocab, t.tgt_vocab = c.tgt_vocab, t.dropout = c.dropout;
        t.pad_id = c.pad_id, t.bos_id = c.bos_id, t.eos_id = c.eos_id;
        t.d_model = get_ll(&r, "d_model", 1, 1 << 20);
        t.n_heads = (int)get_ll(&r, "heads", 1, 1 << 10);
        t.n_kv_heads = (int)get_ll(&r, "kv_heads", 0, 1 << 10);
        t.enc_layers = (int)get_ll(&r, "enc_layers", 1, 64);
        t.dec_layers = (int)get_ll(&r, "dec_layers", 1, 64);
        t.d_ff = get_ll(&r, "d_ff", 1, 1 << 22);
        t.norm_first = (int)get_ll(&r, "norm_first", 0, 1);
        t.activation = strcmp(get_str(&r, "activation"), "gelu") == 0 ? ATTN_ACT_GELU : ATTN_ACT_RELU;
        const char *pos = get_str(&r, "pos");
        int found = 0;
        for (int k = 0; k < ATTN_POS_COUNT; k++)
            if (strcmp(pos, attn_pos_kind_name((attn_pos_kind)k)) == 0) t.pos = (attn_pos_kind)k, found = 1;
        if (!found) r.bad = 1;
        t.shaw_clip = (int)get_ll(&r, "shaw_clip", 0, 1 << 20);
        t.rope_theta = (float)get_real(&r, "rope_theta", 0.0, 1e12);
        t.max_len = get_ll(&r, "max_pos", 0, 1 << 30);
        t.tie_output = (int)get_ll(&r, "tie_output", 0, 1);
        need = ((double)t.src_vocab + (double)t.tgt_vocab) * (double)t.d_model +
               ((double)t.enc_layers + t.dec_layers) * 2.0 * (double)t.d_model * (double)t.d_ff;
        if (t.pos == ATTN_POS_LEARNED) need += 2.0 * (double)t.max_len * (double)t.d_model;
        if (t.pos == ATTN_POS_SHAW) need += (2.0 * t.shaw_clip + 1) * (double)t.d_model;
    } else {
        c.cell = strcmp(get_str(&r, "cell"), "lstm") == 0 ? ATTN_RNN_LSTM : ATTN_RNN_GRU;
        if (attn_s2s_attention_parse(get_str(&r, "attention"), &c.attention) != 0) r.bad = 1;
        c.emb_dim = get_ll(&r, "emb_dim", 1, 1 << 20);
        c.hidden = get_ll(&r, "hidden", 1, 1 << 20);
        c.enc_layers = (int)get_ll(&r, "enc_layers", 1, 64);
        c.dec_layers = (int)get_ll(&r, "dec_layers", 1, 64);
        c.bidirectional = (int)get_ll(&r, "bidirectional", 0, 1);
        c.attn_dim = get_ll(&r, "attn_dim", 0, 1 << 20);
        c.combine_dim = attn_safetensors_metadata(f, "combine_dim") ? get_ll(&r, "combine_dim", 0, 1 << 20) : 0;
        c.no_input_feed = attn_safetensors_metadata(f, "input_feed") ? !get_ll(&r, "input_feed", 0, 1) : 0;
        c.local_window = (int)get_ll(&r, "local_window", 0, 1 << 20);
        const double A = c.attn_dim ? (double)c.attn_dim : (double)c.hidden;
        const double K = c.combine_dim ? (double)c.combine_dim : (double)c.hidden;
        need = ((double)c.src_vocab + (double)c.tgt_vocab) * (double)c.emb_dim +
               ((double)c.enc_layers + c.dec_layers) * 3.0 * (double)c.hidden * (double)c.hidden +
               (double)c.tgt_vocab * fmin((double)c.hidden, K);
        if (c.attention == ATTN_S2S_LOCATION) need += (double)c.max_src_len;
        if (c.attention != ATTN_S2S_NONE) need += A;
    }
    attn_safetensors_close(f);
    if (r.bad || need * 2.0 > (double)size) return 0;

    const char *path = fz_file(0, data, size);
    attn_params *ps = NULL;
    if (attn_params_new(&ps) != ATTN_OK) return 0;
    attn_seq2seq *s2s = NULL;
    attn_t2t *tt = NULL;
    const attn_status st = t2t ? attn_t2t_new(&tt, ps, &t, NULL) : attn_seq2seq_new(&s2s, ps, &c, NULL);
    if (st == ATTN_OK) {
        attn_optim *opt = NULL;
        attn_optim_config oc = {ATTN_OPTIM_ADAMW, 1e-3f, 0.0f, 0, 0.9f, 0.98f, 1e-9f, 0.01f};
        if ((size & 1) && attn_optim_new(&opt, ps, &oc) != ATTN_OK) opt = NULL;
        int64_t step = -1;
        if (attn_checkpoint_load(path, ps, opt, &step) == ATTN_OK && step < 0) fz_fail("negative step");
        attn_optim_free(opt);
    }
    attn_t2t_free(tt);
    attn_seq2seq_free(s2s);
    attn_params_free(ps);
    return 0;
}
