/* cmd_seq2seq.c: `attn seq2seq train|translate|eval`: the RNN encoder-decoder
 * with attention (include/attn/seq2seq.h), and `attn transformer
 * train|translate|eval`: the encoder-decoder Transformer
 * (include/attn/transformer_s2s.h), on the date task and on the gettext
 * translation pairs (include/attn/text.h). docs/seq2seq.md and
 * docs/transformer_s2s.md are the manuals.
 *
 *   attn seq2seq train     --task dates|gettext [--lang de|fr] --out DIR [options]
 *   attn seq2seq translate --model DIR [--beam K] [--alpha A] [--svg FILE] [TEXT ...]
 *   attn seq2seq eval      --model DIR [--split valid|test] [--beam K] [--limit N] [--json]
 *   attn transformer ...   the same commands and files for the Transformer
 *
 * The two families share everything but the model: the data and its splits,
 * the vocabularies, batching, the training loop and its schedule, the
 * checkpoints and logs, decoding options, evaluation and the alignment maps,
 * so their figures compare one to one. The model-specific parts (options,
 * checkpoint metadata, creating the model, its loss and its decoder) branch
 * on T2T.
 *
 * A model directory holds model.safetensors (an attn checkpoint: parameters,
 * AdamW state, and in its metadata the model configuration, the tokeniser,
 * the data settings and the training schedule), src.vocab and tgt.vocab,
 * and train.jsonl (the log). Everything needed to resume, translate or
 * evaluate is read back from there.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "attn/attn.h"
#include "commands.h"
#include "train_driver.h"

/* The family served by this run, set once by the entry point (cmd_seq2seq
 * or cmd_transformer at the bottom). */
static int T2T = 0;
static const char *CMD = "seq2seq", *PROG = "attn seq2seq", *META_MODEL = "attn-seq2seq";
/* Stream of the dates' valid and test examples: fixed, so that every model
 * is evaluated on the same held-out dates whatever its training seed. */
#define DATES_EVAL_SEED 1
#define DATES_VALID_N 1000
#define DATES_TEST_N 2000
/* Examples the date vocabularies are built from when training draws fresh
 * examples (the alphabet of the generator is 59 characters; 20,000 examples
 * hold every one of them many times). */
#define DATES_VOCAB_N 20000
#define CLIP_NORM 1.0f
#define EVAL_BATCH 64

/* ---- small helpers ---------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A usage error: prints it with the hint, returns 2. */
static int usage_error(const char *sub, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int usage_error(const char *sub, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s %s: ", PROG, sub);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (try '%s %s --help')\n", PROG, sub);
    va_end(ap);
    return 2;
}

/* Parses an integer in [lo, hi]; 0 on success. */
static int parse_ll(const char *s, long long lo, long long hi, long long *out) {
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_real(const char *s, double lo, double hi, double *out) {
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

/* Option value helpers for the parsing loops: each takes the option name a,
 * its value v (NULL when missing), and returns 0 or a usage error (2). */
static int opt_int(const char *sub, const char *a, const char *v, long long lo, long long hi,
                   long long *out) {
    if (parse_ll(v, lo, hi, out) == 0) return 0;
    char range[96];
    snprintf(range, sizeof range, "an integer in [%lld, %lld]", lo, hi);
    fprintf(stderr, "%s %s: %s '%s': expected %s (try '%s %s --help')\n", PROG, sub, a,
            v ? v : "(missing)", range, PROG, sub);
    return 2;
}

static int opt_real(const char *sub, const char *a, const char *v, double lo, double hi,
                    double *out) {
    if (parse_real(v, lo, hi, out) == 0) return 0;
    fprintf(stderr,
            "%s %s: %s '%s': expected a number in [%g, %g] (try '%s %s --help')\n", PROG,
            sub, a, v ? v : "(missing)", lo, hi, PROG, sub);
    return 2;
}

static int opt_str(const char *sub, const char *a, const char *v, const char **out) {
    if (v && v[0]) {
        *out = v;
        return 0;
    }
    return usage_error(sub, "%s: a value is required", a);
}

/* mkdir -p. 0 on success. */
static int make_dirs(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- the model bundle: configuration, vocabularies, parameters ----------------------- */

/* What a model directory describes beyond the network itself. */
typedef struct run_info {
    int dates;                 /* 1: the date task; 0: gettext */
    char lang[8];              /* gettext: "de" or "fr" */
    attn_vocab_kind tok;       /* tokeniser of both sides */
    long long bpe_merges;      /* as asked for (the vocabularies say what was learned) */
    long long data_seed;       /* dates: stream of the training examples */
    long long n_train;         /* dates: examples in the training set (0: fresh ones) */
    long long max_len;         /* gettext: longest side kept for training, in tokens (0: all) */
    /* training schedule */
    long long batch, pool, warmup, total_steps, seed;
    double lr, weight_decay, label_smoothing, time_budget;
    /* progress */
    long long step;            /* checkpoint step */
    long long data_cursor;     /* dates, fresh examples: next index of the training stream */
    double train_seconds;      /* training wall time so far (all runs) */
} run_info;

/* A model with its vocabularies. cfg's vocabulary sizes, special ids,
 * dropout and max_src_len (the longest source of the data + 1) describe the
 * data side of both families; for the Transformer the ids, sizes and
 * dropout are mirrored in tcfg, and the rest of cfg is unused. */
typedef struct bundle {
    attn_seq2seq_config cfg;
    attn_t2t_config tcfg;     /* T2T */
    int align_layer;          /* T2T: the decoder layer the alignment is read from (-1: mean) */
    run_info info;
    attn_params *ps;
    attn_seq2seq *model;
    attn_t2t *t2t;            /* T2T */
    attn_vocab *sv, *tv;
} bundle;

static void bundle_free(bundle *b) {
    attn_seq2seq_free(b->model);
    attn_t2t_free(b->t2t);
    attn_params_free(b->ps);
    attn_vocab_free(b->sv);
    attn_vocab_free(b->tv);
    memset(b, 0, sizeof *b);
}

static const char *tok_name(attn_vocab_kind k) { return k == ATTN_VOCAB_BPE ? "bpe" : "char"; }

/* attn_pos_kind from its name (attn_pos_kind_name); 0 or -1. */
static int pos_parse(const char *name, attn_pos_kind *out) {
    for (int k = 0; k < ATTN_POS_COUNT; k++)
        if (name && strcmp(name, attn_pos_kind_name((attn_pos_kind)k)) == 0) {
            *out = (attn_pos_kind)k;
            return 0;
        }
    return -1;
}

/* ---- the model behind the bundle: the only places the families differ at run time ---- */

static attn_status model_new(bundle *b, attn_rng *rng) {
    return T2T ? attn_t2t_new(&b->t2t, b->ps, &b->tcfg, rng)
               : attn_seq2seq_new(&b->model, b->ps, &b->cfg, rng);
}

static attn_tensor *model_loss(attn_ctx *ctx, const bundle *b, const attn_s2s_batch *batch,
                               float label_smoothing) {
    return T2T ? attn_t2t_loss(ctx, b->t2t, batch, label_smoothing, NULL)
               : attn_seq2seq_loss(ctx, b->model, batch, label_smoothing, NULL);
}

/* Decodes (seq2seq.h's contract); align [B * max_len * S] or NULL. */
static attn_status model_decode(attn_ctx *ctx, const bundle *b, const attn_s2s_batch *batch,
                                const attn_decode_config *dc, int32_t *out_ids, int32_t *out_len,
                                float *align) {
    if (!T2T) return attn_seq2seq_decode(ctx, b->model, batch, dc, out_ids, out_len, align);
    const attn_t2t_align how = {b->align_layer};
    return attn_t2t_decode(ctx, b->t2t, batch, dc, &how, out_ids, out_len, align, NULL);
}

/* The model in a few words, for logs and map titles. */
static const char *model_kind(const bundle *b) {
    return T2T ? "transformer" : attn_s2s_attention_name(b->cfg.attention);
}

/* Metadata of a checkpoint: up to META_MAX entries, values formatted here. */
#define META_MAX 48
typedef struct meta_list {
    attn_kv kv[META_MAX];
    char val[META_MAX][48];
    int n;
} meta_list;

static void meta_put(meta_list *m, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void meta_put(meta_list *m, const char *key, const char *fmt, ...) {
    if (m->n >= META_MAX) return; /* META_MAX exceeds the keys written below */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->val[m->n], sizeof m->val[m->n], fmt, ap);
    va_end(ap);
    m->kv[m->n].key = key;
    m->kv[m->n].value = m->val[m->n];
    m->n++;
}

static void meta_build(meta_list *m, const bundle *b) {
    const attn_seq2seq_config *c = &b->cfg;
    const run_info *r = &b->info;
    m->n = 0;
    meta_put(m, "model", "%s", META_MODEL);
    meta_put(m, "task", "%s", r->dates ? "dates" : "gettext");
    meta_put(m, "lang", "%s", r->dates ? "" : r->lang);
    meta_put(m, "tokenizer", "%s", tok_name(r->tok));
    meta_put(m, "bpe_merges", "%lld", r->bpe_merges);
    if (T2T) {
        const attn_t2t_config *t = &b->tcfg;
        meta_put(m, "d_model", "%lld", (long long)t->d_model);
        meta_put(m, "heads", "%d", t->n_heads);
        meta_put(m, "kv_heads", "%d", t->n_kv_heads);
        meta_put(m, "enc_layers", "%d", t->enc_layers);
        meta_put(m, "dec_layers", "%d", t->dec_layers);
        meta_put(m, "d_ff", "%lld", (long long)t->d_ff);
        meta_put(m, "norm_first", "%d", t->norm_first);
        meta_put(m, "activation", "%s", t->activation == ATTN_ACT_GELU ? "gelu" : "relu");
        meta_put(m, "pos", "%s", attn_pos_kind_name(t->pos));
        meta_put(m, "shaw_clip", "%d", t->shaw_clip);
        meta_put(m, "rope_theta", "%.9g", (double)t->rope_theta);
        meta_put(m, "max_pos", "%lld", (long long)t->max_len);
        meta_put(m, "tie_output", "%d", t->tie_output);
        meta_put(m, "align_layer", "%d", b->align_layer);
    } else {
        meta_put(m, "cell", "%s", c->cell == ATTN_RNN_LSTM ? "lstm" : "gru");
        meta_put(m, "attention", "%s", attn_s2s_attention_name(c->attention));
        meta_put(m, "emb_dim", "%lld", (long long)c->emb_dim);
        meta_put(m, "hidden", "%lld", (long long)c->hidden);
        meta_put(m, "enc_layers", "%d", c->enc_layers);
        meta_put(m, "dec_layers", "%d", c->dec_layers);
        meta_put(m, "bidirectional", "%d", c->bidirectional);
        meta_put(m, "attn_dim", "%lld", (long long)c->attn_dim);
        meta_put(m, "combine_dim", "%lld", (long long)c->combine_dim);
        meta_put(m, "input_feed", "%d", !c->no_input_feed);
        meta_put(m, "local_window", "%d", c->local_window);
    }
    meta_put(m, "src_vocab", "%lld", (long long)c->src_vocab);
    meta_put(m, "tgt_vocab", "%lld", (long long)c->tgt_vocab);
    meta_put(m, "max_src_len", "%lld", (long long)c->max_src_len);
    meta_put(m, "dropout", "%.9g", (double)c->dropout);
    meta_put(m, "pad_id", "%d", c->pad_id);
    meta_put(m, "bos_id", "%d", c->bos_id);
    meta_put(m, "eos_id", "%d", c->eos_id);
    meta_put(m, "data_seed", "%lld", r->data_seed);
    meta_put(m, "n_train", "%lld", r->n_train);
    meta_put(m, "max_len", "%lld", r->max_len);
    meta_put(m, "data_cursor", "%lld", r->data_cursor);
    meta_put(m, "train_batch", "%lld", r->batch);
    meta_put(m, "train_pool", "%lld", r->pool);
    meta_put(m, "train_warmup", "%lld", r->warmup);
    meta_put(m, "train_total_steps", "%lld", r->total_steps);
    meta_put(m, "train_seed", "%lld", r->seed);
    meta_put(m, "train_lr", "%.9g", r->lr);
    meta_put(m, "train_weight_decay", "%.9g", r->weight_decay);
    meta_put(m, "train_label_smoothing", "%.9g", r->label_smoothing);
    meta_put(m, "train_time_budget", "%.9g", r->time_budget);
    meta_put(m, "train_seconds", "%.3f", r->train_seconds);
}

/* Reading metadata back: each getter records the first problem in *err. */
typedef struct meta_reader {
    attn_safetensors *f;
    const char *path;
    char err[8192];
} meta_reader;

static const char *meta_str(meta_reader *m, const char *key) {
    const char *v = attn_safetensors_metadata(m->f, key);
    if (!v && !m->err[0])
        snprintf(m->err, sizeof m->err, "%s: metadata '%s' is missing", m->path, key);
    return v ? v : "";
}

static long long meta_ll(meta_reader *m, const char *key, long long lo, long long hi) {
    const char *v = attn_safetensors_metadata(m->f, key);
    long long x = 0;
    if (parse_ll(v, lo, hi, &x) != 0 && !m->err[0])
        snprintf(m->err, sizeof m->err, "%s: metadata '%s' = '%s': expected an integer in [%lld, %lld]",
                 m->path, key, v ? v : "(missing)", lo, hi);
    return x;
}

static int meta_has(meta_reader *m, const char *key) {
    return attn_safetensors_metadata(m->f, key) != NULL;
}

static double meta_real(meta_reader *m, const char *key, double lo, double hi) {
    const char *v = attn_safetensors_metadata(m->f, key);
    double x = 0.0;
    if (parse_real(v, lo, hi, &x) != 0 && !m->err[0])
        snprintf(m->err, sizeof m->err, "%s: metadata '%s' = '%s': expected a number in [%g, %g]",
                 m->path, key, v ? v : "(missing)", lo, hi);
    return x;
}

static void dir_file(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
}

/* Loads a model directory: configuration from the checkpoint's metadata,
 * the vocabularies, a model with its parameters (and, when opt_out is not
 * NULL, an AdamW optimizer restored from the checkpoint). Prints the error
 * and returns 1 on failure. */
static int bundle_load(const char *sub, const char *dir, bundle *b, attn_optim **opt_out,
                       float lr_for_optimizer, float wd_override, int use_wd_override) {
    memset(b, 0, sizeof *b);
    char path[4096], vpath[4096];
    dir_file(path, sizeof path, dir, "model.safetensors");
    if (!file_exists(path)) {
        fprintf(stderr, "%s %s: %s not found (train a model with '%s train --out %s')\n", PROG,
                sub, path, PROG, dir);
        return 1;
    }
    meta_reader m = {0};
    m.path = path;
    if (attn_safetensors_open(&m.f, path) != ATTN_OK)
        return cli_fail(CMD, "cannot read the checkpoint");
    const char *model = attn_safetensors_metadata(m.f, "model");
    if (!model || strcmp(model, META_MODEL) != 0) {
        fprintf(stderr, "%s %s: %s is not a %s checkpoint (metadata model = '%s', "
                        "expected '%s')\n", PROG, sub, path, CMD, model ? model : "(missing)",
                META_MODEL);
        attn_safetensors_close(m.f);
        return 1;
    }
    attn_seq2seq_config *c = &b->cfg;
    run_info *r = &b->info;
    const char *task = meta_str(&m, "task");
    r->dates = strcmp(task, "dates") == 0;
    if (!r->dates && strcmp(task, "gettext") != 0 && !m.err[0])
        snprintf(m.err, sizeof m.err, "%s: metadata task = '%s': expected dates or gettext", path, task);
    snprintf(r->lang, sizeof r->lang, "%s", meta_str(&m, "lang"));
    const char *tok = meta_str(&m, "tokenizer");
    r->tok = strcmp(tok, "bpe") == 0 ? ATTN_VOCAB_BPE : ATTN_VOCAB_CHAR;
    r->bpe_merges = meta_ll(&m, "bpe_merges", 0, 1000000);
    c->src_vocab = meta_ll(&m, "src_vocab", 4, 1 << 30);
    c->tgt_vocab = meta_ll(&m, "tgt_vocab", 4, 1 << 30);
    c->max_src_len = meta_ll(&m, "max_src_len", 0, 1 << 30);
    c->dropout = (float)meta_real(&m, "dropout", 0.0, 1.0);
    c->pad_id = (int32_t)meta_ll(&m, "pad_id", 0, 1 << 30);
    c->bos_id = (int32_t)meta_ll(&m, "bos_id", 0, 1 << 30);
    c->eos_id = (int32_t)meta_ll(&m, "eos_id", 0, 1 << 30);
    if (T2T) {
        attn_t2t_config *t = &b->tcfg;
        t->src_vocab = c->src_vocab;
        t->tgt_vocab = c->tgt_vocab;
        t->dropout = c->dropout;
        t->pad_id = c->pad_id;
        t->bos_id = c->bos_id;
        t->eos_id = c->eos_id;
        t->d_model = meta_ll(&m, "d_model", 1, 1 << 20);
        t->n_heads = (int)meta_ll(&m, "heads", 1, 1 << 10);
        t->n_kv_heads = (int)meta_ll(&m, "kv_heads", 0, 1 << 10);
        t->enc_layers = (int)meta_ll(&m, "enc_layers", 1, 64);
        t->dec_layers = (int)meta_ll(&m, "dec_layers", 1, 64);
        t->d_ff = meta_ll(&m, "d_ff", 1, 1 << 22);
        t->norm_first = (int)meta_ll(&m, "norm_first", 0, 1);
        t->activation = strcmp(meta_str(&m, "activation"), "gelu") == 0 ? ATTN_ACT_GELU : ATTN_ACT_RELU;
        const char *pos = meta_str(&m, "pos");
        if (pos_parse(pos, &t->pos) != 0 && !m.err[0])
            snprintf(m.err, sizeof m.err, "%s: metadata pos = '%s' is unknown", path, pos);
        t->shaw_clip = (int)meta_ll(&m, "shaw_clip", 0, 1 << 20);
        t->rope_theta = (float)meta_real(&m, "rope_theta", 0.0, 1e12);
        t->max_len = meta_ll(&m, "max_pos", 0, 1 << 30);
        t->tie_output = (int)meta_ll(&m, "tie_output", 0, 1);
        b->align_layer = (int)meta_ll(&m, "align_layer", -1, 63);
        c->attention = ATTN_S2S_NONE; /* unused: the Transformer's attention is its own */
    } else {
        c->cell = strcmp(meta_str(&m, "cell"), "lstm") == 0 ? ATTN_RNN_LSTM : ATTN_RNN_GRU;
        const char *att = meta_str(&m, "attention");
        if (attn_s2s_attention_parse(att, &c->attention) != 0 && !m.err[0])
            snprintf(m.err, sizeof m.err, "%s: metadata attention = '%s' is unknown", path, att);
        c->emb_dim = meta_ll(&m, "emb_dim", 1, 1 << 20);
        c->hidden = meta_ll(&m, "hidden", 1, 1 << 20);
        c->enc_layers = (int)meta_ll(&m, "enc_layers", 1, 64);
        c->dec_layers = (int)meta_ll(&m, "dec_layers", 1, 64);
        c->bidirectional = (int)meta_ll(&m, "bidirectional", 0, 1);
        c->attn_dim = meta_ll(&m, "attn_dim", 0, 1 << 20);
        /* absent from checkpoints written before these options: Luong's defaults */
        c->combine_dim = meta_has(&m, "combine_dim") ? meta_ll(&m, "combine_dim", 0, 1 << 20) : 0;
        c->no_input_feed = meta_has(&m, "input_feed") ? !meta_ll(&m, "input_feed", 0, 1) : 0;
        c->local_window = (int)meta_ll(&m, "local_window", 0, 1 << 20);
    }
    r->data_seed = meta_ll(&m, "data_seed", 0, INT64_MAX);
    r->n_train = meta_ll(&m, "n_train", 0, INT64_MAX);
    r->max_len = meta_ll(&m, "max_len", 0, 1 << 30);
    r->data_cursor = meta_ll(&m, "data_cursor", 0, INT64_MAX);
    r->batch = meta_ll(&m, "train_batch", 1, 1 << 20);
    r->pool = meta_ll(&m, "train_pool", 1, 1 << 20);
    r->warmup = meta_ll(&m, "train_warmup", 0, INT64_MAX);
    r->total_steps = meta_ll(&m, "train_total_steps", 0, INT64_MAX);
    r->seed = meta_ll(&m, "train_seed", 0, INT64_MAX);
    r->lr = meta_real(&m, "train_lr", 0.0, 10.0);
    r->weight_decay = meta_real(&m, "train_weight_decay", 0.0, 10.0);
    r->label_smoothing = meta_real(&m, "train_label_smoothing", 0.0, 0.999);
    r->time_budget = meta_real(&m, "train_time_budget", 0.0, 1e9);
    r->train_seconds = meta_real(&m, "train_seconds", 0.0, 1e12);
    r->step = meta_ll(&m, "step", 0, INT64_MAX);
    attn_safetensors_close(m.f);
    if (m.err[0]) {
        fprintf(stderr, "%s %s: %s\n", PROG, sub, m.err);
        return 1;
    }
    dir_file(vpath, sizeof vpath, dir, "src.vocab");
    if (attn_vocab_load(vpath, &b->sv) != ATTN_OK) {
        bundle_free(b);
        return cli_fail(CMD, "cannot load the source vocabulary");
    }
    dir_file(vpath, sizeof vpath, dir, "tgt.vocab");
    if (attn_vocab_load(vpath, &b->tv) != ATTN_OK) {
        bundle_free(b);
        return cli_fail(CMD, "cannot load the target vocabulary");
    }
    if (attn_vocab_size(b->sv) != c->src_vocab || attn_vocab_size(b->tv) != c->tgt_vocab) {
        fprintf(stderr, "%s %s: %s: the vocabularies have %d and %d tokens, the model "
                        "%lld and %lld\n", PROG, sub, dir, attn_vocab_size(b->sv), attn_vocab_size(b->tv),
                (long long)c->src_vocab, (long long)c->tgt_vocab);
        bundle_free(b);
        return 1;
    }
    if (attn_params_new(&b->ps) != ATTN_OK || model_new(b, NULL) != ATTN_OK) {
        int rc = cli_fail(CMD, "cannot create the model");
        bundle_free(b);
        return rc;
    }
    attn_optim *opt = NULL;
    if (opt_out) {
        attn_optim_config oc = {0};
        oc.kind = ATTN_OPTIM_ADAMW;
        oc.lr = lr_for_optimizer;
        oc.weight_decay = use_wd_override ? wd_override : (float)r->weight_decay;
        if (attn_optim_new(&opt, b->ps, &oc) != ATTN_OK) {
            int rc = cli_fail(CMD, "cannot create the optimizer");
            bundle_free(b);
            return rc;
        }
    }
    int64_t step = 0;
    if (attn_checkpoint_load(path, b->ps, opt, &step) != ATTN_OK) {
        int rc = cli_fail(CMD, "cannot load the checkpoint");
        attn_optim_free(opt);
        bundle_free(b);
        return rc;
    }
    r->step = step;
    if (opt_out) *opt_out = opt;
    return 0;
}

/* --align-layer of translate and eval: -2 (not given) keeps the model's. */
static int set_align_layer(const char *sub, bundle *b, long long layer) {
    if (!T2T || layer == -2) return 0;
    if (layer >= b->tcfg.dec_layers) {
        fprintf(stderr, "%s %s: --align-layer %lld: the decoder has %d layers (0 .. %d; -1: their "
                        "mean)\n", PROG, sub, layer, b->tcfg.dec_layers, b->tcfg.dec_layers - 1);
        return 1;
    }
    b->align_layer = (int)layer;
    return 0;
}

/* ---- data ----------------------------------------------------------------------------- */

/* A held-out set: sources and references (borrowed), and for the date task
 * the examples with their true alignment (owned). */
typedef struct eval_set {
    int64_t n;
    const char **src, **ref; /* owned arrays of borrowed strings */
    attn_date_example *dates; /* [n] for the date task, else NULL */
    attn_pairs pairs;         /* gettext: the loaded split (owns the strings) */
} eval_set;

static void eval_set_free(eval_set *s) {
    free(s->src);
    free(s->ref);
    free(s->dates);
    attn_pairs_free(&s->pairs);
    memset(s, 0, sizeof *s);
}

/* The path of a gettext split; prints how to build it when it is missing.
 * Returns 0 when the file exists. */
static int gettext_path(const char *sub, const char *data_dir, const char *lang, const char *split,
                        char *path, size_t n) {
    snprintf(path, n, "%s/en-%s/%s.tsv", data_dir, lang, split);
    if (file_exists(path)) return 0;
    fprintf(stderr,
            "%s %s: %s not found: build the gettext data set first with\n"
            "  bash scripts/get_gettext_data.sh\n"
            "(or pass --data DIR where DIR/en-%s/%s.tsv exists; docs/data.md)\n", PROG,
            sub, path, lang, split);
    return 1;
}

/* Loads split `split` (ATTN_SPLIT_VALID or _TEST) of the run's task. */
static int eval_set_load(const char *sub, const run_info *r, const char *data_dir, attn_data_split split,
                         eval_set *s) {
    memset(s, 0, sizeof *s);
    if (r->dates) {
        const int64_t n = split == ATTN_SPLIT_VALID ? DATES_VALID_N : DATES_TEST_N;
        s->dates = malloc((size_t)n * sizeof *s->dates);
        s->src = malloc((size_t)n * sizeof *s->src);
        s->ref = malloc((size_t)n * sizeof *s->ref);
        if (!s->dates || !s->src || !s->ref) {
            eval_set_free(s);
            fprintf(stderr, "%s %s: out of memory\n", PROG, sub);
            return 1;
        }
        uint64_t cursor = 0;
        for (int64_t i = 0; i < n; i++) {
            attn_date_next(DATES_EVAL_SEED, split, &cursor, &s->dates[i]);
            s->src[i] = s->dates[i].source;
            s->ref[i] = s->dates[i].target;
        }
        s->n = n;
        return 0;
    }
    char path[4096];
    if (gettext_path(sub, data_dir, r->lang, attn_data_split_name(split), path, sizeof path))
        return 1;
    if (attn_pairs_load(path, &s->pairs) != ATTN_OK) return cli_fail(CMD, "cannot read the pairs");
    s->n = s->pairs.n;
    s->src = malloc((size_t)(s->n ? s->n : 1) * sizeof *s->src);
    s->ref = malloc((size_t)(s->n ? s->n : 1) * sizeof *s->ref);
    if (!s->src || !s->ref) {
        eval_set_free(s);
        fprintf(stderr, "%s %s: out of memory\n", PROG, sub);
        return 1;
    }
    for (int64_t i = 0; i < s->n; i++) {
        s->src[i] = s->pairs.src[i];
        s->ref[i] = s->pairs.tgt[i];
    }
    return 0;
}

/* Output tokens at most for a source of S tokens: targets of the gettext
 * pairs are at most 2.5 times their source in characters, dates are 10. */
static int max_out_len(int64_t S) { return (int)(3 * S + 10); }

/* The most source tokens the model reads, 0 for any number: LOCATION
 * attention scores a fixed number of source positions (max_src_len - 1),
 * a Transformer with learned positions has a table of tcfg.max_len. */
static int64_t source_cap(const bundle *b) {
    if (T2T) return b->tcfg.pos == ATTN_POS_LEARNED ? b->tcfg.max_len : 0;
    return b->cfg.attention == ATTN_S2S_LOCATION && b->cfg.max_src_len > 1 ? b->cfg.max_src_len - 1
                                                                            : 0;
}

/* Output tokens at most: L, or fewer when a learned position table ends
 * before (Transformer). */
static int decode_cap(const bundle *b, int L) {
    if (T2T && b->tcfg.pos == ATTN_POS_LEARNED && b->tcfg.max_len > 0 && L > b->tcfg.max_len)
        return (int)b->tcfg.max_len;
    return L;
}

/* Whether the model has attention maps (alignments). */
static int has_attention(const bundle *b) { return T2T || b->cfg.attention != ATTN_S2S_NONE; }

/* Encodes a source for the model; sources longer than source_cap are cut
 * there (and *cut set). */
typedef struct id_buf {
    int32_t *ids;
    size_t cap;
} id_buf;

static attn_status add_source(attn_s2s_data *d, const bundle *b, const char *text, id_buf *buf,
                              int *cut) {
    const size_t len = strlen(text);
    if (len + 1 > buf->cap) {
        int32_t *p = realloc(buf->ids, (len + 1) * sizeof *p);
        if (!p) return attn_s2s_data_add(d, b->sv, text, NULL, NULL); /* reports OOM itself */
        buf->ids = p;
        buf->cap = len + 1;
    }
    size_t n = 0;
    attn_status st = attn_vocab_encode(b->sv, text, len, buf->ids, buf->cap, &n);
    if (st != ATTN_OK) return st;
    const int64_t cap = source_cap(b);
    if (cap > 0 && (int64_t)n > cap) {
        n = (size_t)cap;
        if (cut) *cut = 1;
    }
    return attn_s2s_data_add_ids(d, buf->ids, (int64_t)n, NULL, 0);
}

/* ---- decoding and evaluation ------------------------------------------------------------ */

typedef struct eval_out {
    attn_eval ev;
    int64_t digits, digits_aligned; /* dates with attention: output digits, those aligned right */
    int64_t out_tokens;             /* generated tokens, eos included */
    int64_t cut;                    /* sources cut to fit max_src_len */
    double seconds;                 /* decoding time */
} eval_out;

/* Byte length of a token's text in the source (<unk> stands for one
 * character: the date sources are ASCII). */
static size_t piece_bytes(const attn_vocab *v, int32_t id) {
    if (id == ATTN_TOKEN_UNK) return 1;
    const char *p = attn_vocab_piece(v, id);
    return p ? strlen(p) : 0;
}

/* The alignment score of one decoded date: each output character that is a
 * digit counts once; it is aligned right when it sits at a digit position
 * of the target (i < 10, not a '-') and the source token with the largest
 * attention weight of its output step overlaps the source bytes of that
 * position's field. */
static void align_score(const bundle *b, const int32_t *src, int64_t src_len, const attn_date_example *ex,
                        const int32_t *out, int32_t out_len, const float *align, int64_t S,
                        int64_t *digits, int64_t *hits) {
    int pos = 0;
    for (int32_t k = 0; k < out_len; k++) {
        const char *piece = attn_vocab_piece(b->tv, out[k]);
        if (!piece) continue;
        for (const char *c = piece; *c; c++, pos++) {
            if (!isdigit((unsigned char)*c)) continue;
            (*digits)++;
            if (pos >= ATTN_DATE_TARGET_LEN || ex->field[pos] == ATTN_DATE_SEP) continue;
            const float *row = align + (int64_t)k * S;
            int64_t best = 0;
            for (int64_t j = 1; j < src_len; j++)
                if (row[j] > row[best]) best = j;
            size_t begin = 0;
            for (int64_t j = 0; j < best; j++) begin += piece_bytes(b->sv, src[j]);
            const size_t end = begin + piece_bytes(b->sv, src[best]);
            if ((int)begin < ex->span_end[pos] && (int)end > ex->span_begin[pos]) (*hits)++;
        }
    }
}

/* Growable text buffer for decoded outputs. */
typedef struct text_buf {
    char *p;
    size_t cap;
} text_buf;

static attn_status decode_text(const attn_vocab *v, const int32_t *ids, int32_t n, text_buf *t) {
    size_t len = 0;
    attn_status st = attn_vocab_decode(v, ids, (size_t)n, NULL, 0, &len);
    if (st != ATTN_OK) return st;
    if (len + 1 > t->cap) {
        char *p = realloc(t->p, len + 1);
        if (!p) return attn_vocab_decode(v, ids, (size_t)n, t->p, t->cap, &len);
        t->p = p;
        t->cap = len + 1;
    }
    return attn_vocab_decode(v, ids, (size_t)n, t->p, t->cap, &len);
}

/* Decodes the first `limit` examples of the set (all when limit <= 0) and
 * scores them. n_show examples are printed to `show` with their reference.
 * Returns 0, or 1 after printing the error. */
static int evaluate(const char *sub, attn_ctx *ctx, const bundle *b, const eval_set *es, int64_t limit,
                    int beam, float alpha, int n_show, FILE *show, eval_out *r) {
    memset(r, 0, sizeof *r);
    attn_eval_init(&r->ev);
    const int64_t n = limit > 0 && limit < es->n ? limit : es->n;
    attn_s2s_data d;
    attn_s2s_data_init(&d);
    d.pad_id = b->cfg.pad_id;
    d.bos_id = b->cfg.bos_id;
    d.eos_id = b->cfg.eos_id;
    id_buf ib = {0};
    text_buf tb = {0};
    int32_t *out_ids = NULL, *out_len = NULL;
    float *align = NULL;
    int rc = 1;
    for (int64_t i = 0; i < n; i++) {
        int cut = 0;
        if (add_source(&d, b, es->src[i], &ib, &cut) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot encode a source");
            goto done;
        }
        r->cut += cut;
    }
    const int want_align = es->dates && has_attention(b);
    const int64_t S_max = d.max_src_len > 0 ? d.max_src_len : 1;
    const int L_max = max_out_len(S_max);
    out_ids = malloc((size_t)EVAL_BATCH * (size_t)L_max * sizeof *out_ids);
    out_len = malloc((size_t)EVAL_BATCH * sizeof *out_len);
    if (want_align) align = malloc((size_t)EVAL_BATCH * (size_t)L_max * (size_t)S_max * sizeof *align);
    if (!out_ids || !out_len || (want_align && !align)) {
        fprintf(stderr, "%s %s: out of memory for decoding\n", PROG, sub);
        goto done;
    }
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    int64_t idx[EVAL_BATCH];
    int shown = 0;
    for (int64_t first = 0; first < n; first += EVAL_BATCH) {
        const int64_t bsz = n - first < EVAL_BATCH ? n - first : EVAL_BATCH;
        for (int64_t k = 0; k < bsz; k++) idx[k] = first + k;
        attn_ctx_reset(ctx);
        attn_s2s_batch batch;
        attn_s2s_batch_info info;
        const double t0 = now_s();
        attn_status st = attn_s2s_batch_make(ctx, &d, idx, bsz, &batch, &info);
        attn_decode_config dc = {beam, alpha, max_out_len(info.src_width)};
        if (st == ATTN_OK)
            st = model_decode(ctx, b, &batch, &dc, out_ids, out_len, want_align ? align : NULL);
        r->seconds += now_s() - t0;
        if (st != ATTN_OK) {
            attn_ctx_set_grad_enabled(ctx, grad);
            attn_ctx_set_training(ctx, training);
            rc = cli_fail(CMD, "decoding failed");
            goto done;
        }
        const int64_t S = info.src_width;
        for (int64_t k = 0; k < bsz; k++) {
            const int64_t e = first + k;
            const int32_t *ids = out_ids + k * dc.max_len;
            r->out_tokens += out_len[k] + (out_len[k] < dc.max_len);
            if (decode_text(b->tv, ids, out_len[k], &tb) != ATTN_OK ||
                attn_eval_add(&r->ev, tb.p, es->ref[e]) != ATTN_OK) {
                attn_ctx_set_grad_enabled(ctx, grad);
                attn_ctx_set_training(ctx, training);
                rc = cli_fail(CMD, "cannot score an output");
                goto done;
            }
            if (want_align)
                align_score(b, d.ids + d.src_off[e], d.src_len[e], &es->dates[e], ids, out_len[k],
                            align + k * dc.max_len * S, S, &r->digits, &r->digits_aligned);
            if (show && shown < n_show) {
                fprintf(show, "  %s -> %s   [%s %s]\n", es->src[e], tb.p,
                        strcmp(tb.p, es->ref[e]) == 0 ? "ok" : "expected", es->ref[e]);
                shown++;
            }
        }
    }
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    rc = 0;
done:
    free(out_ids);
    free(out_len);
    free(align);
    free(ib.ids);
    free(tb.p);
    attn_s2s_data_free(&d);
    return rc;
}

static double eval_bleu(const eval_out *r) {
    attn_bleu_score s;
    return attn_eval_bleu(&r->ev, &s) == ATTN_OK ? s.score : NAN;
}

static double eval_align(const eval_out *r) {
    return r->digits > 0 ? (double)r->digits_aligned / (double)r->digits : NAN;
}

/* ---- train --------------------------------------------------------------------------------- */

static void train_usage(FILE *f) {
    if (T2T)
        fprintf(f,
            "usage: attn transformer train --task dates|gettext [--lang de|fr] --out DIR [options]\n\n"
            "Trains an encoder-decoder Transformer (teacher forcing, AdamW with linear warmup\n"
            "and cosine decay, gradients clipped to norm 1) on the data, splits and schedule of\n"
            "'attn seq2seq train', then prints the greedy exact match (and BLEU for gettext,\n"
            "alignment accuracy of the cross-attention for dates) on the test split.\n\n");
    else
        fprintf(f,
            "usage: attn seq2seq train --task dates|gettext [--lang de|fr] --out DIR [options]\n\n"
            "Trains an RNN encoder-decoder with attention (teacher forcing, AdamW with linear\n"
            "warmup and cosine decay, gradients clipped to norm 1), then prints the greedy\n"
            "exact match (and BLEU for gettext, alignment accuracy for dates) on the test split.\n\n");
    fprintf(f,
        "data:\n"
        "  --task dates|gettext   date normalisation (generated) or gettext en->LANG pairs\n"
        "  --lang de|fr           gettext language (default de)\n"
        "  --data DIR             gettext data root (default data/gettext, built by\n"
        "                         bash scripts/get_gettext_data.sh)\n"
        "  --n-train N            dates: N generated training examples; 0 (default) draws\n"
        "                         fresh examples for every batch (the generator is infinite)\n"
        "  --max-len N            gettext: skip training pairs with a side longer than N\n"
        "                         tokens (default 60 bpe / 150 char; 0: keep all)\n"
        "  --tokenizer char|bpe   tokeniser of both sides (default: dates char, gettext bpe;\n"
        "                         alias --tok)\n"
        "  --bpe-merges N         BPE merges per side, learned on the training split\n"
        "                         (default: dates 100, gettext 2000)\n");
    if (T2T)
        fprintf(f,
        "model:\n"
        "  --d-model E            model width (default 64; gettext 128)\n"
        "  --heads H              attention heads (default 4)\n"
        "  --kv-heads K           key/value heads, grouped-query attention (default: H)\n"
        "  --layers L             encoder and decoder layers (default 2)\n"
        "  --enc-layers L, --dec-layers L   each side on its own\n"
        "  --d-ff F               feed-forward width (default 4 E)\n"
        "  --pre-ln 0|1           pre-LN blocks and final norms (default 1); 0: post-LN\n"
        "                         (a bare --pre-ln is --pre-ln 1)\n"
        "  --activation relu|gelu feed-forward activation (default relu)\n"
        "  --pos KIND             sinusoidal|learned|rope|alibi|shaw|none (default sinusoidal)\n"
        "  --shaw-clip K          Shaw relative positions' clipping distance (default 8)\n"
        "  --tie 0|1              output layer tied to the target embedding (default 0; a\n"
        "                         bare --tie is --tie 1)\n"
        "  --dropout P            embeddings, attention weights, residual branches and the\n"
        "                         feed-forward hidden layer (default 0; gettext 0.1)\n"
        "  --align-layer N        decoder layer whose cross-attention (averaged over heads)\n"
        "                         is the alignment; -1: the mean over layers (default -1)\n");
    else
        fprintf(f,
        "model:\n"
        "  --attention KIND       none|bahdanau|dot|general|concat|location|cosine|local-m|\n"
        "                         local-p (default bahdanau)\n"
        "  --cell gru|lstm        recurrent cell (default gru)\n"
        "  --emb E                embedding size (default 64; gettext 128)\n"
        "  --hidden H             hidden size (default 128; gettext 256)\n"
        "  --layers L             encoder and decoder layers (default 1)\n"
        "  --bidir 0|1            bidirectional encoder (default 1; 0 for dot and cosine,\n"
        "                         whose scores need encoder states of size H)\n"
        "  --attn-dim A           additive/concat/local-p score size (default 0: H)\n"
        "  --combine-dim W        Luong kinds: width of the attentional state\n"
        "                         h~ = tanh(W_c [c; h]) that the output layer reads\n"
        "                         (default 0: H, as Luong et al.)\n"
        "  --input-feed 0|1       Luong kinds: feed h~_{t-1} to the decoder cell\n"
        "                         (default 1, as Luong et al.)\n"
        "  --window D             local-m/local-p half window (default 5)\n"
        "  --dropout P            dropout on embeddings and between layers (default 0)\n");
    fprintf(f,
        "training:\n"
        "  --batch B              examples per step (default 64)\n"
        "  --pool K               length bucketing: sort pools of K batches by length\n"
        "                         (default 8; 1: plain shuffling)\n"
        "  --steps N | --epochs E steps to train (default: dates 1000, gettext 4000, unless\n"
        "                         a time budget is given); --epochs needs a finite training set\n"
        "  --time-budget SECONDS  stop when training has run this long (all runs of the\n"
        "                         directory together, evaluations apart); without --steps the\n"
        "                         cosine decay is spread over the budget\n"
        "  --lr LR                peak learning rate (default 3e-3)\n"
        "  --warmup N             linear warmup steps (default 100)\n"
        "  --weight-decay WD      AdamW's decoupled weight decay (default 0.01)\n"
        "  --label-smoothing E    (default 0)\n"
        "  --seed S               initialisation, shuffling and dates stream (default 1)\n"
        "  --threads N            threads for the ops (default: all)\n"
        "  --arena-mb M           per-step activation arena (default 1024)\n"
        "output:\n"
        "  --out DIR              writes DIR/model.safetensors, DIR/src.vocab, DIR/tgt.vocab,\n"
        "                         DIR/train.jsonl, DIR/loss.svg\n"
        "  --resume               continue DIR's run: same step, optimizer state, data order\n"
        "                         (the model, data, batch and seed options come from DIR and\n"
        "                         are refused; --steps, --time-budget, --lr, --warmup,\n"
        "                         --weight-decay, --label-smoothing are applied and printed)\n"
        "  --force                overwrite the run DIR holds (refused without it)\n"
        "  --eval-every N         every N steps: greedy valid metrics on --eval-n examples,\n"
        "                         logged, and a checkpoint (default 500; 0: only at the end)\n"
        "  --eval-n N             valid examples per evaluation (default 500)\n"
        "  --log-every N          steps per JSONL record (default 50)\n"
        "  --quiet                no progress line\n\n"
        "Options take '--opt V' or '--opt=V'. Ctrl-C (SIGINT) or SIGTERM finishes the step,\n"
        "writes a checkpoint and exits 130; --resume continues from it.\n");
}

typedef struct s2s_opts {
    const char *task, *lang, *attention, *cell, *tok, *out, *data_dir;
    long long bpe_merges, emb, hidden, layers, bidir, attn_dim, window, combine_dim, input_feed;
    double dropout;
    /* the Transformer's */
    const char *pos, *activation;
    long long d_model, heads, kv_heads, enc_layers, dec_layers, d_ff, shaw_clip, align_layer;
    int pre_ln, tie;
    long long batch, pool, steps, epochs, n_train, max_len, warmup, seed, threads, arena_mb;
    double lr, weight_decay, label_smoothing, time_budget;
    long long eval_every, eval_n, log_every;
    int resume, quiet;
    int given_lr, given_wd, given_ls, given_warmup;
    train_opts t; /* the options every training command shares (cli/train_driver.h) */
} s2s_opts;

static int train_parse(int argc, char **argv, s2s_opts *o) {
    memset(o, 0, sizeof *o);
    o->lang = "de";
    o->data_dir = getenv("ATTN_GETTEXT_DIR") && getenv("ATTN_GETTEXT_DIR")[0]
                      ? getenv("ATTN_GETTEXT_DIR")
                      : "data/gettext";
    o->attention = "bahdanau";
    o->cell = "gru";
    o->bpe_merges = o->emb = o->hidden = o->max_len = -1;
    o->layers = T2T ? 2 : 1;
    o->bidir = -1;
    o->pos = "sinusoidal";
    o->activation = "relu";
    o->d_model = o->d_ff = o->enc_layers = o->dec_layers = -1;
    o->dropout = -1.0;
    o->heads = 4;
    o->pre_ln = 1;
    o->shaw_clip = 8;
    o->align_layer = -1;
    o->window = 5;
    o->input_feed = 1;
    o->pool = 8;
    train_opts *t = &o->t;
    train_opts_init(t);
    const char *sub = "train";
    char prog[64];
    snprintf(prog, sizeof prog, "%s train", PROG);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        const int k = train_opt(prog, a, v, t, &rc);
        if (k) {
            if (rc) return rc;
            i += k - 1;
            continue;
        }
        if (strcmp(a, "--data")) train_fixed(t, a); /* the model's and the data's; --data may move */
        if (T2T && !strcmp(a, "--pre-ln")) {
            train_opt_bool(argv, argc, &i, &o->pre_ln);
            continue;
        }
        if (T2T && !strcmp(a, "--tie")) {
            train_opt_bool(argv, argc, &i, &o->tie);
            continue;
        }
        i++;
        if (!strcmp(a, "--task")) rc = opt_str(sub, a, v, &o->task);
        else if (!strcmp(a, "--lang")) rc = opt_str(sub, a, v, &o->lang);
        else if (!strcmp(a, "--data")) rc = opt_str(sub, a, v, &o->data_dir);
        else if (!T2T && !strcmp(a, "--attention")) rc = opt_str(sub, a, v, &o->attention);
        else if (!T2T && !strcmp(a, "--cell")) rc = opt_str(sub, a, v, &o->cell);
        else if (!strcmp(a, "--tokenizer") || !strcmp(a, "--tok")) rc = opt_str(sub, a, v, &o->tok);
        else if (!strcmp(a, "--bpe-merges")) rc = opt_int(sub, a, v, 0, 1000000, &o->bpe_merges);
        else if (!T2T && !strcmp(a, "--emb")) rc = opt_int(sub, a, v, 1, 65536, &o->emb);
        else if (!T2T && !strcmp(a, "--hidden")) rc = opt_int(sub, a, v, 1, 65536, &o->hidden);
        else if (!strcmp(a, "--layers")) rc = opt_int(sub, a, v, 1, 16, &o->layers);
        else if (!T2T && !strcmp(a, "--bidir")) rc = opt_int(sub, a, v, 0, 1, &o->bidir);
        else if (!T2T && !strcmp(a, "--attn-dim")) rc = opt_int(sub, a, v, 0, 65536, &o->attn_dim);
        else if (!T2T && !strcmp(a, "--combine-dim")) rc = opt_int(sub, a, v, 0, 65536, &o->combine_dim);
        else if (!T2T && !strcmp(a, "--input-feed")) rc = opt_int(sub, a, v, 0, 1, &o->input_feed);
        else if (!T2T && !strcmp(a, "--window")) rc = opt_int(sub, a, v, 0, 1000, &o->window);
        else if (!strcmp(a, "--dropout")) rc = opt_real(sub, a, v, 0.0, 0.95, &o->dropout);
        else if (T2T && !strcmp(a, "--d-model")) rc = opt_int(sub, a, v, 1, 65536, &o->d_model);
        else if (T2T && !strcmp(a, "--heads")) rc = opt_int(sub, a, v, 1, 1024, &o->heads);
        else if (T2T && !strcmp(a, "--kv-heads")) rc = opt_int(sub, a, v, 0, 1024, &o->kv_heads);
        else if (T2T && !strcmp(a, "--enc-layers")) rc = opt_int(sub, a, v, 1, 16, &o->enc_layers);
        else if (T2T && !strcmp(a, "--dec-layers")) rc = opt_int(sub, a, v, 1, 16, &o->dec_layers);
        else if (T2T && !strcmp(a, "--d-ff")) rc = opt_int(sub, a, v, 1, 1 << 20, &o->d_ff);
        else if (T2T && !strcmp(a, "--activation")) rc = opt_str(sub, a, v, &o->activation);
        else if (T2T && !strcmp(a, "--pos")) rc = opt_str(sub, a, v, &o->pos);
        else if (T2T && !strcmp(a, "--shaw-clip")) rc = opt_int(sub, a, v, 1, 1 << 16, &o->shaw_clip);
        else if (T2T && !strcmp(a, "--align-layer")) rc = opt_int(sub, a, v, -1, 15, &o->align_layer);
        else if (!strcmp(a, "--n-train")) rc = opt_int(sub, a, v, 0, 1LL << 31, &o->n_train);
        else if (!strcmp(a, "--max-len")) rc = opt_int(sub, a, v, 0, 1 << 20, &o->max_len);
        else if (!strcmp(a, "--pool")) rc = opt_int(sub, a, v, 1, 1 << 20, &o->pool);
        else if (!strcmp(a, "--label-smoothing"))
            rc = opt_real(sub, a, v, 0.0, 0.999, &o->label_smoothing), o->given_ls = 1;
        else return usage_error(sub, "unknown option '%s'", a);
        if (rc) return rc;
    }
    /* The common options, with this command's defaults. The batch fixes the
     * sampler's batches: the checkpoint keeps it. */
    if (t->batch > 0) train_fixed(t, "--batch");
    if (t->min_lr >= 0)
        return usage_error(sub, "--min-lr: the cosine of %s decays to 0", PROG);
    int rc = train_opts_check(prog, t);
    if (rc) return rc;
    o->out = t->out;
    o->resume = t->resume;
    o->quiet = t->quiet;
    o->batch = t->batch > 0 ? t->batch : 64;
    o->steps = t->steps;
    o->epochs = t->epochs;
    o->time_budget = t->time_budget > 0 ? t->time_budget : 0.0;
    o->warmup = t->warmup >= 0 ? t->warmup : 100;
    o->given_warmup = t->warmup >= 0;
    o->seed = t->seed >= 0 ? t->seed : 1;
    o->threads = t->threads >= 0 ? t->threads : 0;
    o->arena_mb = t->arena_mb > 0 ? t->arena_mb : 1024;
    o->lr = t->lr >= 0 ? t->lr : 3e-3;
    o->given_lr = t->lr >= 0;
    o->weight_decay = t->weight_decay >= 0 ? t->weight_decay : 0.01;
    o->given_wd = t->weight_decay >= 0;
    o->eval_every = t->eval_every >= 0 ? t->eval_every : 500;
    o->eval_n = t->eval_n > 0 ? t->eval_n : 500;
    o->log_every = t->log_every > 0 ? t->log_every : 50;
    if (o->resume) return 0; /* the rest comes from the checkpoint (train_dir_check refuses it given) */
    if (!o->task) return usage_error(sub, "--task dates|gettext is required");
    if (strcmp(o->task, "dates") && strcmp(o->task, "gettext"))
        return usage_error(sub, "--task '%s': expected dates or gettext", o->task);
    if (strcmp(o->lang, "de") && strcmp(o->lang, "fr"))
        return usage_error(sub, "--lang '%s': expected de or fr", o->lang);
    attn_s2s_attention kind;
    if (T2T) {
        attn_pos_kind pk;
        if (pos_parse(o->pos, &pk) != 0)
            return usage_error(sub, "--pos '%s': expected sinusoidal, learned, rope, alibi, shaw "
                                    "or none", o->pos);
        if (strcmp(o->activation, "relu") && strcmp(o->activation, "gelu"))
            return usage_error(sub, "--activation '%s': expected relu or gelu", o->activation);
    }
    if (attn_s2s_attention_parse(o->attention, &kind) != 0)
        return usage_error(sub, "--attention '%s': expected none, bahdanau, dot, general, concat, "
                                "location, cosine, local-m or local-p", o->attention);
    if (strcmp(o->cell, "gru") && strcmp(o->cell, "lstm"))
        return usage_error(sub, "--cell '%s': expected gru or lstm", o->cell);
    const int dates = !strcmp(o->task, "dates");
    if (!o->tok) o->tok = dates ? "char" : "bpe";
    if (strcmp(o->tok, "char") && strcmp(o->tok, "bpe"))
        return usage_error(sub, "--tokenizer '%s': expected char or bpe", o->tok);
    if (o->epochs > 0 && dates && o->n_train == 0)
        return usage_error(sub, "--epochs needs a finite training set: give --n-train N");
    /* The dot and cosine scores compare the decoder state with the encoder
     * states directly, so both must have H entries: one direction. */
    if (o->bidir < 0) o->bidir = kind == ATTN_S2S_DOT || kind == ATTN_S2S_COSINE ? 0 : 1;
    if (o->bpe_merges < 0) o->bpe_merges = dates ? 100 : 2000;
    if (o->emb < 0) o->emb = dates ? 64 : 128;
    if (o->hidden < 0) o->hidden = dates ? 128 : 256;
    if (o->max_len < 0) o->max_len = dates ? 0 : (!strcmp(o->tok, "bpe") ? 60 : 150);
    if (o->d_model < 0) o->d_model = dates ? 64 : 128;
    if (o->d_ff < 0) o->d_ff = 4 * o->d_model;
    if (o->dropout < 0) o->dropout = T2T && !dates ? 0.1 : 0.0;
    if (T2T && o->align_layer >= (o->dec_layers > 0 ? o->dec_layers : o->layers))
        return usage_error(sub, "--align-layer %lld: the decoder has %lld layers", o->align_layer,
                           o->dec_layers > 0 ? o->dec_layers : o->layers);
    return 0;
}

/* The training data and the held-out sets of a run. */
typedef struct train_data {
    attn_s2s_data train;    /* the finite training set, or the fresh batch */
    int fresh;              /* dates with n_train 0: a new batch of examples every step */
    uint64_t cursor;        /* fresh: next index of the dates training stream */
    attn_pairs pairs;       /* gettext training split */
    attn_date_example *dates; /* dates with n_train > 0: the examples */
    int64_t skipped;        /* gettext pairs longer than max_len */
} train_data;

static void train_data_free(train_data *t) {
    attn_s2s_data_free(&t->train);
    attn_pairs_free(&t->pairs);
    free(t->dates);
    memset(t, 0, sizeof *t);
}

/* Texts of the training split the vocabularies are learned from: both
 * sides, as arrays of borrowed strings. */
static int vocab_texts(const run_info *r, train_data *t, const char ***src,
                       const char ***tgt, int64_t *n, attn_date_example **tmp) {
    *tmp = NULL;
    if (r->dates) {
        const int64_t m = r->n_train > 0 ? r->n_train : DATES_VOCAB_N;
        attn_date_example *ex = r->n_train > 0 ? t->dates : malloc((size_t)m * sizeof *ex);
        *src = malloc((size_t)m * sizeof **src);
        *tgt = malloc((size_t)m * sizeof **tgt);
        if (!ex || !*src || !*tgt) return -1;
        if (r->n_train == 0) {
            *tmp = ex;
            uint64_t c = 0;
            for (int64_t i = 0; i < m; i++) attn_date_next((uint64_t)r->data_seed, ATTN_SPLIT_TRAIN, &c, &ex[i]);
        }
        for (int64_t i = 0; i < m; i++) {
            (*src)[i] = ex[i].source;
            (*tgt)[i] = ex[i].target;
        }
        *n = m;
        return 0;
    }
    *src = t->pairs.src;
    *tgt = t->pairs.tgt;
    *n = t->pairs.n;
    return 0;
}

/* Loads or generates the training split (before the vocabularies exist). */
static int train_data_load(const char *data_dir, const run_info *r, train_data *t) {
    memset(t, 0, sizeof *t);
    attn_s2s_data_init(&t->train);
    if (r->dates) {
        if (r->n_train == 0) {
            t->fresh = 1;
            t->cursor = (uint64_t)r->data_cursor;
            return 0;
        }
        t->dates = malloc((size_t)r->n_train * sizeof *t->dates);
        if (!t->dates) {
            fprintf(stderr, "%s train: out of memory for %lld examples\n", PROG, r->n_train);
            return 1;
        }
        uint64_t c = 0;
        for (int64_t i = 0; i < r->n_train; i++)
            attn_date_next((uint64_t)r->data_seed, ATTN_SPLIT_TRAIN, &c, &t->dates[i]);
        return 0;
    }
    char path[4096];
    if (gettext_path("train", data_dir, r->lang, "train", path, sizeof path)) return 1;
    if (attn_pairs_load(path, &t->pairs) != ATTN_OK) return cli_fail(CMD, "cannot read the pairs");
    return 0;
}

/* Encodes the finite training set with the vocabularies. */
static int train_data_encode(const bundle *b, train_data *t) {
    const run_info *r = &b->info;
    t->train.pad_id = b->cfg.pad_id;
    t->train.bos_id = b->cfg.bos_id;
    t->train.eos_id = b->cfg.eos_id;
    if (t->fresh) return 0;
    const int64_t n = r->dates ? r->n_train : t->pairs.n;
    for (int64_t i = 0; i < n; i++) {
        const char *s = r->dates ? t->dates[i].source : t->pairs.src[i];
        const char *g = r->dates ? t->dates[i].target : t->pairs.tgt[i];
        if (attn_s2s_data_add(&t->train, b->sv, s, b->tv, g) != ATTN_OK)
            return cli_fail(CMD, "cannot encode the training data");
        const int64_t last = t->train.n - 1;
        const int too_long = r->max_len > 0 && (t->train.src_len[last] > r->max_len ||
                                                t->train.tgt_len[last] > r->max_len);
        /* source_cap is 0 while a new gettext model is being set up: it
         * is then taken from these very sources, so none is too long. */
        const int64_t cap = source_cap(b);
        const int location_cut = cap > 0 && t->train.src_len[last] > cap;
        if (too_long || location_cut) {
            attn_s2s_data_truncate(&t->train, last);
            t->skipped++;
        }
    }
    if (t->train.n == 0) {
        fprintf(stderr, "%s train: no training pair is at most %lld tokens long\n", PROG, r->max_len);
        return 1;
    }
    return 0;
}

/* Fills the fresh batch with `b` new examples of the dates training stream. */
static attn_status fresh_batch(const bundle *bd, train_data *t, int64_t b) {
    attn_s2s_data_truncate(&t->train, 0);
    for (int64_t i = 0; i < b; i++) {
        attn_date_example ex;
        attn_date_next((uint64_t)bd->info.data_seed, ATTN_SPLIT_TRAIN, &t->cursor, &ex);
        attn_status st = attn_s2s_data_add(&t->train, bd->sv, ex.source, bd->tv, ex.target);
        if (st != ATTN_OK) return st;
    }
    return ATTN_OK;
}

/* Learning rate at `step` (0-based): warmup then cosine to 0 over the run's
 * total steps; with only a time budget, over the estimated total, the steps
 * done divided by the fraction of the budget used. */
/* The model configuration from the options and the data. */
static void config_from_opts(const s2s_opts *o, bundle *b, int64_t max_src_len) {
    attn_seq2seq_config *c = &b->cfg;
    memset(c, 0, sizeof *c);
    c->cell = strcmp(o->cell, "lstm") == 0 ? ATTN_RNN_LSTM : ATTN_RNN_GRU;
    c->src_vocab = attn_vocab_size(b->sv);
    c->tgt_vocab = attn_vocab_size(b->tv);
    c->emb_dim = o->emb;
    c->hidden = o->hidden;
    c->enc_layers = c->dec_layers = (int)o->layers;
    c->bidirectional = (int)o->bidir;
    attn_s2s_attention_parse(o->attention, &c->attention);
    c->attn_dim = o->attn_dim;
    c->combine_dim = o->combine_dim;
    c->no_input_feed = !o->input_feed;
    c->max_src_len = max_src_len;
    c->local_window = (int)o->window;
    c->dropout = (float)o->dropout;
    c->pad_id = ATTN_TOKEN_PAD;
    c->bos_id = ATTN_TOKEN_BOS;
    c->eos_id = ATTN_TOKEN_EOS;
    if (!T2T) return;
    c->attention = ATTN_S2S_NONE; /* unused: the Transformer's attention is its own */
    attn_t2t_config *t = &b->tcfg;
    memset(t, 0, sizeof *t);
    t->src_vocab = c->src_vocab;
    t->tgt_vocab = c->tgt_vocab;
    t->d_model = o->d_model;
    t->n_heads = (int)o->heads;
    t->n_kv_heads = (int)o->kv_heads;
    t->enc_layers = t->dec_layers = (int)o->layers;
    if (o->enc_layers > 0) t->enc_layers = (int)o->enc_layers;
    if (o->dec_layers > 0) t->dec_layers = (int)o->dec_layers;
    t->d_ff = o->d_ff;
    t->dropout = c->dropout;
    t->norm_first = (int)o->pre_ln;
    t->activation = strcmp(o->activation, "gelu") == 0 ? ATTN_ACT_GELU : ATTN_ACT_RELU;
    pos_parse(o->pos, &t->pos);
    t->shaw_clip = (int)o->shaw_clip;
    t->max_len = 0; /* learned positions: set from the longest source (cmd_train) */
    t->tie_output = (int)o->tie;
    t->pad_id = c->pad_id;
    t->bos_id = c->bos_id;
    t->eos_id = c->eos_id;
    b->align_layer = (int)o->align_layer;
}

/* Longest source, in tokens, over the held-out sets and the training set
 * (dates: every source fits ATTN_DATE_SOURCE_MAX - 1 characters). */
static int64_t longest_source(const bundle *b, const eval_set *sets, int n_sets, const train_data *t) {
    if (b->info.dates) return ATTN_DATE_SOURCE_MAX - 1;
    int64_t best = t->train.max_src_len;
    for (int s = 0; s < n_sets; s++)
        for (int64_t i = 0; i < sets[s].n; i++) {
            size_t n = 0;
            if (attn_vocab_encode(b->sv, sets[s].src[i], strlen(sets[s].src[i]), NULL, 0, &n) == ATTN_OK &&
                (int64_t)n > best)
                best = (int64_t)n;
        }
    return best;
}

/* ---- train: the encoder-decoder families of the training driver ------------------------- */

typedef struct s2s_train {
    bundle *b;
    train_data *td;
    eval_set *valid, *test;
    attn_s2s_sampler *sampler;
    int64_t *iota;       /* fresh batches are examples 0 .. B-1 of the refilled set */
    long long eval_n;
    meta_list meta;
    eval_out test_ev;    /* the final evaluation on the test split */
} s2s_train;

static attn_tensor *s2s_step_loss(void *self, train_run *run, int64_t step, train_counts *c) {
    s2s_train *s = self;
    bundle *b = s->b;
    run_info *r = &b->info;
    (void)step; /* the sampler and the fresh stream are positioned at the run's step */
    /* One step's batch: only the arena is used (the fresh batch reuses its storage). */
    attn_s2s_batch batch;
    attn_s2s_batch_info info;
    attn_status st;
    if (s->td->fresh) {
        /* The fresh set holds exactly this batch, in order. */
        st = fresh_batch(b, s->td, r->batch);
        if (st == ATTN_OK) st = attn_s2s_batch_make(run->ctx, &s->td->train, s->iota, r->batch, &batch, &info);
    } else {
        const int64_t *idx;
        int64_t bsz;
        attn_s2s_sampler_next(s->sampler, &idx, &bsz);
        st = attn_s2s_batch_make(run->ctx, &s->td->train, idx, bsz, &batch, &info);
    }
    if (st != ATTN_OK) return NULL;
    c->items = c->tokens = (double)info.tgt_tokens;
    c->tokens2 = (double)info.src_tokens;
    return model_loss(run->ctx, b, &batch, (float)r->label_smoothing);
}

/* Learning rate at `step` (0-based): warmup then cosine to 0 over the run's
 * total steps; with only a time budget, over the estimated total, the steps
 * done divided by the fraction of the budget used. */
static float s2s_lr_at(void *self, train_run *run, int64_t step, double elapsed) {
    const run_info *r = &((s2s_train *)self)->b->info;
    int64_t total = run->total_steps;
    if (total <= 0) {
        const double frac = r->time_budget > 0 ? elapsed / r->time_budget : 0.0;
        total = frac > 1e-9 ? (int64_t)((double)step / frac) : INT64_MAX / 2;
        if (total <= step) total = step + 1;
    }
    const int64_t warmup = r->warmup < total ? r->warmup : total / 10;
    return attn_lr_warmup_cosine(step, warmup, total, (float)r->lr, 0.0f);
}

/* Periodic: greedy valid metrics on --eval-n examples. Last: the test split,
 * four examples printed. */
static int s2s_evaluate(void *self, train_run *run, int last, double *seconds) {
    s2s_train *s = self;
    const run_info *r = &s->b->info;
    eval_out ev;
    const double t0 = now_s();
    if (last) {
        printf("test examples (greedy):\n");
        if (evaluate("train", run->ctx, s->b, s->test, 0, 1, 0.0f, 4, stdout, &s->test_ev)) return 1;
        ev = s->test_ev;
        const double em = attn_eval_exact_match(&ev.ev), bleu = eval_bleu(&ev), al = eval_align(&ev);
        printf("test: exact match %.2f%% (%lld/%lld)", 100.0 * em, (long long)ev.ev.exact, (long long)ev.ev.n);
        if (!r->dates) printf(", BLEU %.2f", bleu);
        if (isfinite(al)) printf(", alignment accuracy %.2f%% of %lld output digits", 100.0 * al, (long long)ev.digits);
        printf(", greedy, %.0f tok/s decoding\n", ev.seconds > 0 ? (double)ev.out_tokens / ev.seconds : 0.0);
        *seconds = now_s() - t0;
        return 0;
    }
    if (evaluate("train", run->ctx, s->b, s->valid, s->eval_n, 1, 0.0f, 0, NULL, &ev)) return 1;
    *seconds = now_s() - t0;
    const double em = attn_eval_exact_match(&ev.ev), bleu = eval_bleu(&ev), al = eval_align(&ev);
    const attn_json_field f[] = {
        attn_json_str("event", "eval"),     attn_json_int("step", run->step),
        attn_json_str("split", "valid"),    attn_json_int("n", ev.ev.n),
        attn_json_num("exact_match", em),   attn_json_num("bleu", bleu),
        attn_json_num("align_acc", al),     attn_json_num("elapsed", train_seconds(run)),
    };
    if (train_log(run, f, (int)(sizeof f / sizeof f[0]))) return 1;
    if (!run->quiet) {
        if (run->progress.tty) fputc('\n', stderr);
        fprintf(stderr, "step %lld: valid exact match %.2f%% (%lld examples)", (long long)run->step, 100.0 * em,
                (long long)ev.ev.n);
        if (!r->dates) fprintf(stderr, ", BLEU %.2f", bleu);
        if (isfinite(al)) fprintf(stderr, ", alignment %.1f%%", 100.0 * al);
        fprintf(stderr, "\n");
    }
    return 0;
}

static void s2s_meta(void *self, train_run *run, double train_seconds_, const attn_kv **kv, int *n) {
    s2s_train *s = self;
    run_info *r = &s->b->info;
    r->step = run->step;
    r->data_cursor = (long long)s->td->cursor;
    r->train_seconds = train_seconds_;
    r->total_steps = run->total_steps > 0 ? run->total_steps : 0;
    meta_build(&s->meta, s->b);
    *kv = s->meta.kv;
    *n = s->meta.n;
}

static int s2s_finish(void *self, train_run *run, double train_s, double train_cpu) {
    s2s_train *s = self;
    const run_info *r = &s->b->info;
    const eval_out *ev = &s->test_ev;
    (void)train_cpu;
    printf("trained %lld steps in %.1f s (%.1f s in all, evaluations apart); stopped by %s\n",
           (long long)(run->step - run->start), train_s, train_seconds(run),
           !strcmp(run->stopped, "steps") ? "the step count" : "the time budget");
    if (r->time_budget > 0) printf("time budget %.1f s, %lld steps reached\n", r->time_budget, (long long)run->step);
    const double em = attn_eval_exact_match(&ev->ev), bleu = eval_bleu(ev), al = eval_align(ev);
    const attn_json_field f[] = {
        attn_json_str("event", "end"),
        attn_json_int("step", run->step),
        attn_json_str("stopped", run->stopped),
        attn_json_num("time_budget", r->time_budget),
        attn_json_num("elapsed", train_seconds(run)),
        attn_json_str("split", "test"),
        attn_json_int("n", ev->ev.n),
        attn_json_num("exact_match", em),
        attn_json_num("bleu", bleu),
        attn_json_num("align_acc", al),
        attn_json_num("decode_tokens_per_s", ev->seconds > 0 ? (double)ev->out_tokens / ev->seconds : 0.0),
    };
    return train_log(run, f, (int)(sizeof f / sizeof f[0]));
}

static const train_family s2s_family = {
    "tok", NULL, "encoder-decoder training", "loss (nats per target token)", "valid",
    "src_tokens_per_s", "src.vocab, tgt.vocab, train.jsonl, loss.svg",
    s2s_step_loss, s2s_lr_at, s2s_evaluate, s2s_meta, s2s_finish,
};

/* A new model: vocabularies from the training split, the configuration
 * from the options. */
static int new_model(const s2s_opts *o, bundle *b, train_data *td) {
    run_info *r = &b->info;
    r->dates = !strcmp(o->task, "dates");
    snprintf(r->lang, sizeof r->lang, "%s", r->dates ? "" : o->lang);
    r->tok = !strcmp(o->tok, "bpe") ? ATTN_VOCAB_BPE : ATTN_VOCAB_CHAR;
    r->bpe_merges = o->bpe_merges;
    r->data_seed = o->seed;
    r->n_train = r->dates ? o->n_train : 0;
    r->max_len = o->max_len;
    r->batch = o->batch;
    r->pool = o->pool;
    r->warmup = o->warmup;
    r->seed = o->seed;
    r->lr = o->lr;
    r->weight_decay = o->weight_decay;
    r->label_smoothing = o->label_smoothing;
    r->time_budget = o->time_budget;
    if (train_data_load(o->data_dir, r, td)) return 1;
    /* Vocabularies from the training split only. */
    const char **vs = NULL, **vt = NULL;
    int64_t vn = 0;
    attn_date_example *tmp = NULL;
    if (vocab_texts(r, td, &vs, &vt, &vn, &tmp)) {
        fprintf(stderr, "%s train: out of memory\n", PROG);
        if (r->dates) {
            free(vs);
            free(vt);
        }
        free(tmp);
        return 1;
    }
    attn_status st;
    if (r->tok == ATTN_VOCAB_BPE) {
        st = attn_bpe_learn(vs, vn, (int)o->bpe_merges, 1, &b->sv);
        if (st == ATTN_OK) st = attn_bpe_learn(vt, vn, (int)o->bpe_merges, 1, &b->tv);
    } else {
        st = attn_vocab_build_chars(vs, vn, 1, &b->sv);
        if (st == ATTN_OK) st = attn_vocab_build_chars(vt, vn, 1, &b->tv);
    }
    if (r->dates) {
        free(vs);
        free(vt);
    }
    free(tmp);
    if (st != ATTN_OK) return cli_fail(CMD, "cannot build the vocabularies");
    config_from_opts(o, b, r->dates ? ATTN_DATE_SOURCE_MAX : 0);
    return train_data_encode(b, td);
}

/* Writes a new model's vocabularies and creates its parameters and optimizer. */
static int new_model_files(const s2s_opts *o, bundle *b, const eval_set *valid, const eval_set *test,
                           train_data *td, attn_optim **opt) {
    char path[4096];
    const eval_set sets[2] = {*valid, *test};
    b->cfg.max_src_len = longest_source(b, sets, 2, td) + 1;
    /* learned positions: room for the longest source and for decoding it */
    if (T2T && b->tcfg.pos == ATTN_POS_LEARNED) b->tcfg.max_len = max_out_len(b->cfg.max_src_len - 1);
    if (make_dirs(o->out) != 0) {
        fprintf(stderr, "%s train: cannot create the directory %s: %s\n", PROG, o->out, strerror(errno));
        return 1;
    }
    dir_file(path, sizeof path, o->out, "src.vocab");
    if (attn_vocab_save(b->sv, path) != ATTN_OK) return cli_fail(CMD, "cannot save the source vocabulary");
    dir_file(path, sizeof path, o->out, "tgt.vocab");
    if (attn_vocab_save(b->tv, path) != ATTN_OK) return cli_fail(CMD, "cannot save the target vocabulary");
    attn_rng rng;
    attn_rng_init(&rng, (uint64_t)o->seed);
    if (attn_params_new(&b->ps) != ATTN_OK || model_new(b, &rng) != ATTN_OK)
        return cli_fail(CMD, "cannot create the model");
    attn_optim_config oc = {0};
    oc.kind = ATTN_OPTIM_ADAMW;
    oc.lr = (float)o->lr;
    oc.weight_decay = (float)o->weight_decay;
    if (attn_optim_new(opt, b->ps, &oc) != ATTN_OK) return cli_fail(CMD, "cannot create the optimizer");
    run_info *r = &b->info;
    if (o->epochs > 0) r->total_steps = o->epochs * ((td->train.n + r->batch - 1) / r->batch);
    else if (o->steps > 0) r->total_steps = o->steps;
    else if (o->time_budget > 0) r->total_steps = 0;
    else r->total_steps = r->dates ? 1000 : 4000;
    return 0;
}

/* The run in a few words (the first line and the log's start record). */
static void describe(const bundle *b, char *desc, size_t n) {
    const run_info *r = &b->info;
    char luong_desc[96] = "";
    if (!T2T && b->cfg.attention >= ATTN_S2S_DOT)
        snprintf(luong_desc, sizeof luong_desc, ", h~ width %lld, input feeding %s",
                 (long long)(b->cfg.combine_dim ? b->cfg.combine_dim : b->cfg.hidden),
                 b->cfg.no_input_feed ? "off" : "on");
    const attn_t2t_config *tc = &b->tcfg;
    if (T2T)
        snprintf(desc, n,
                 "%s%s: Transformer, d_model %lld, heads %d (kv %d), layers %d+%d, d_ff %lld, "
                 "%s, %s positions, %s%s; %s vocabularies %d -> %d tokens; %lld parameters",
                 r->dates ? "dates" : "gettext en-", r->dates ? "" : r->lang, (long long)tc->d_model, tc->n_heads,
                 tc->n_kv_heads ? tc->n_kv_heads : tc->n_heads, tc->enc_layers, tc->dec_layers,
                 (long long)tc->d_ff, tc->norm_first ? "pre-LN" : "post-LN", attn_pos_kind_name(tc->pos),
                 tc->activation == ATTN_ACT_GELU ? "gelu" : "relu", tc->tie_output ? ", tied output" : "",
                 tok_name(r->tok), attn_vocab_size(b->sv), attn_vocab_size(b->tv),
                 (long long)attn_params_numel(b->ps));
    else
        snprintf(desc, n,
                 "%s%s: %s seq2seq, attention %s, emb %lld, hidden %lld, layers %d, %s encoder%s; "
                 "%s vocabularies %d -> %d tokens; %lld parameters",
                 r->dates ? "dates" : "gettext en-", r->dates ? "" : r->lang,
                 b->cfg.cell == ATTN_RNN_LSTM ? "LSTM" : "GRU", attn_s2s_attention_name(b->cfg.attention),
                 (long long)b->cfg.emb_dim, (long long)b->cfg.hidden, b->cfg.enc_layers,
                 b->cfg.bidirectional ? "bidirectional" : "unidirectional", luong_desc, tok_name(r->tok),
                 attn_vocab_size(b->sv), attn_vocab_size(b->tv), (long long)attn_params_numel(b->ps));
}

static int cmd_train(int argc, char **argv) {
    s2s_opts o;
    int rc = train_parse(argc, argv, &o);
    if (rc) return rc;
    char prog[64];
    snprintf(prog, sizeof prog, "%s train", PROG);
    if ((rc = train_dir_check(prog, &o.t))) return rc;
    bundle b;
    memset(&b, 0, sizeof b);
    train_data td;
    memset(&td, 0, sizeof td);
    attn_s2s_data_init(&td.train);
    eval_set valid = {0}, test = {0};
    attn_optim *opt = NULL;
    attn_ctx *ctx = NULL;
    attn_s2s_sampler sampler;
    memset(&sampler, 0, sizeof sampler);
    s2s_train st;
    memset(&st, 0, sizeof st);
    train_run run;
    memset(&run, 0, sizeof run);
    rc = 1;

    if (o.resume) {
        if (bundle_load("train", o.out, &b, &opt, (float)o.lr, (float)o.weight_decay, o.given_wd))
            goto done;
        run_info *r = &b.info;
        /* A new length of the run: --steps (or --epochs, below) replaces the
         * schedule's total, --time-budget the budget; the other is kept. */
        train_resume_real("--lr", o.t.lr, &r->lr);
        train_resume_real("--weight-decay", o.t.weight_decay, &r->weight_decay);
        train_resume_real("--label-smoothing", o.given_ls ? o.label_smoothing : -1.0, &r->label_smoothing);
        train_resume_ll("--warmup", o.t.warmup, &r->warmup);
        train_resume_ll("--steps", o.steps, &r->total_steps);
        train_resume_real("--time-budget", o.t.time_budget, &r->time_budget);
        if (train_data_load(o.data_dir, r, &td) || train_data_encode(&b, &td)) goto done;
        if (o.epochs > 0) {
            if (td.fresh) {
                fprintf(stderr, "%s train: --epochs needs a finite training set; this "
                                "run draws fresh dates (use --steps)\n", PROG);
                rc = 2;
                goto done;
            }
            train_resume_ll("--steps (from --epochs)", o.epochs * ((td.train.n + r->batch - 1) / r->batch),
                            &r->total_steps);
        }
    } else if (new_model(&o, &b, &td)) {
        goto done;
    }
    run_info *r = &b.info;
    if (eval_set_load("train", r, o.data_dir, ATTN_SPLIT_VALID, &valid) ||
        eval_set_load("train", r, o.data_dir, ATTN_SPLIT_TEST, &test))
        goto done;
    if (!o.resume && new_model_files(&o, &b, &valid, &test, &td, &opt)) goto done;

    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)o.arena_mb << 20;
    cc.n_threads = (int)o.threads;
    cc.seed = (uint64_t)r->seed;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    /* Dropout masks continue where the previous run stopped. */
    attn_ctx_set_rng(ctx, (uint64_t)r->seed, (uint64_t)r->step << 20);
    if (!td.fresh) {
        if (attn_s2s_sampler_init(&sampler, &td.train, r->batch, r->pool, (uint64_t)r->seed ^ 0x5a3c0ffeeULL) !=
            ATTN_OK) {
            rc = cli_fail(CMD, "cannot create the sampler");
            goto done;
        }
        attn_s2s_sampler_seek(&sampler, r->step);
    }
    st.b = &b;
    st.td = &td;
    st.valid = &valid;
    st.test = &test;
    st.sampler = &sampler;
    st.eval_n = o.eval_n;
    st.iota = malloc((size_t)r->batch * sizeof *st.iota);
    if (!st.iota) {
        fprintf(stderr, "%s train: out of memory\n", PROG);
        goto done;
    }
    for (int64_t k = 0; k < r->batch; k++) st.iota[k] = k;
    run.prog = prog;
    run.out = o.out;
    run.fam = &s2s_family;
    run.self = &st;
    run.ctx = ctx;
    run.ps = b.ps;
    run.opt = opt;
    run.step = r->step;
    run.total_steps = r->total_steps;
    run.warmup = r->warmup;
    run.log_every = o.log_every;
    run.eval_every = o.eval_every;
    run.lr = r->lr;
    run.min_lr = 0.0;
    run.clip = CLIP_NORM;
    run.time_budget = r->time_budget;
    run.seconds_before = r->train_seconds;
    run.arena_mb = o.arena_mb;
    run.quiet = o.quiet;
    if ((r->total_steps > 0 && r->step >= r->total_steps) ||
        (r->time_budget > 0 && r->train_seconds >= r->time_budget)) {
        rc = train_loop(&run); /* says the run is complete */
        goto done;
    }
    if (train_log_open(&run, o.resume)) goto done;
    {
        char desc[512];
        describe(&b, desc, sizeof desc);
        printf("%s\n", desc);
        if (td.fresh)
            printf("training data: fresh dates drawn for every batch (stream %lld)\n", r->data_seed);
        else
            printf("training data: %lld pairs (%lld longer than %lld tokens skipped), %lld + %lld "
                   "tokens; batch %lld, %lld batches per epoch\n",
                   (long long)td.train.n, (long long)td.skipped, r->max_len,
                   (long long)td.train.src_tokens, (long long)td.train.tgt_tokens, r->batch,
                   (long long)sampler.n_batches);
        printf("schedule: AdamW lr %g, warmup %lld, cosine over %s; threads: %d\n", r->lr,
               r->warmup, r->total_steps > 0 ? "the steps" : "the time budget",
               attn_ctx_threads(ctx));
        if (o.resume)
            printf("resuming %s at step %lld (%.1f s trained)\n", o.out, (long long)r->step, r->train_seconds);
        fflush(stdout);
        const attn_json_field f[] = {
            attn_json_str("event", o.resume ? "resume" : "start"),
            attn_json_int("step", r->step),
            attn_json_str("task", r->dates ? "dates" : "gettext"),
            attn_json_str("lang", r->lang),
            attn_json_str("attention", model_kind(&b)),
            attn_json_str("cell", T2T ? attn_pos_kind_name(b.tcfg.pos)
                                      : b.cfg.cell == ATTN_RNN_LSTM ? "lstm" : "gru"),
            attn_json_str("tokenizer", tok_name(r->tok)),
            attn_json_int("parameters", attn_params_numel(b.ps)),
            attn_json_int("train_examples", td.fresh ? -1 : td.train.n),
            attn_json_int("total_steps", r->total_steps),
            attn_json_num("time_budget", r->time_budget),
            attn_json_int("threads", attn_ctx_threads(ctx)),
            attn_json_str("description", desc),
        };
        if (train_log(&run, f, (int)(sizeof f / sizeof f[0]))) goto done;
    }
    rc = train_loop(&run);
done:
    if (run.log) attn_jsonl_close(run.log);
    attn_s2s_sampler_free(&sampler);
    free(st.iota);
    attn_ctx_free(ctx);
    attn_optim_free(opt);
    eval_set_free(&valid);
    eval_set_free(&test);
    train_data_free(&td);
    bundle_free(&b);
    return rc;
}

/* ---- translate ------------------------------------------------------------------------------ */

static void translate_usage(FILE *f) {
    fprintf(f,
        "usage: %s translate --model DIR [--beam K] [--alpha A] [--svg FILE]\n"
        "                              [--threads N] [TEXT ...]\n\n"
        "Translates each TEXT (or, without TEXT, each line of standard input) with the\n"
        "model in DIR and prints one output per line.\n\n"
        "  --beam K      beam search of width K (default 1: greedy)\n"
        "  --alpha A     length normalisation of beam scores, log p / len^A (default 0.6)\n"
        "  --max-len N   output tokens at most (default 3 * source tokens + 10)\n"
        "  --svg FILE    write the alignment map (output tokens down, source tokens across,\n"
        "                the attention weights of each output step) as SVG; with several\n"
        "                inputs FILE-1.svg, FILE-2.svg, ... (FILE's extension kept)\n"
        "  --threads N   threads for the ops (default: all)\n", PROG);
    if (T2T)
        fprintf(f, "  --align-layer N  the map's decoder layer (cross-attention averaged over\n"
                   "                heads); -1: the mean over layers (default: the model's)\n"
                   "'attn viz' draws every layer and head.\n");
}

/* FILE for a single input; FILE with "-k" before its extension otherwise. */
static void svg_name(char *buf, size_t n, const char *file, int k, int many) {
    if (!many) {
        snprintf(buf, n, "%s", file);
        return;
    }
    const char *slash = strrchr(file, '/');
    const char *dot = strrchr(file, '.');
    if (dot && (!slash || dot > slash + 1))
        snprintf(buf, n, "%.*s-%d%s", (int)(dot - file), file, k, dot);
    else
        snprintf(buf, n, "%s-%d", file, k);
}

/* At most `max` bytes of s, cut at a UTF-8 character boundary, "..." added
 * when cut. */
static void clip_text(char *buf, size_t cap, const char *s, size_t max) {
    size_t n = strlen(s);
    if (n <= max) {
        snprintf(buf, cap, "%s", s);
        return;
    }
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
    snprintf(buf, cap, "%.*s...", (int)max, s);
}

static int write_svg(const char *path, const bundle *b, const char *src_text, const char *out_text,
                     const int32_t *src, int64_t S, const int32_t *out, int32_t out_len, int max_len,
                     const float *align) {
    /* One row per output token, and the <eos> step when it was produced. */
    const int rows = out_len + (out_len < max_len ? 1 : 0);
    if (rows < 1 || S < 1 || rows > ATTN_VIZ_MAX_TOKENS || S > ATTN_VIZ_MAX_TOKENS) {
        fprintf(stderr, "%s translate: %s: a %d x %lld map cannot be drawn (1 to %d "
                        "tokens per side)\n", PROG, path, rows, (long long)S, ATTN_VIZ_MAX_TOKENS);
        return 1;
    }
    const char **rl = malloc((size_t)rows * sizeof *rl), **cl = malloc((size_t)S * sizeof *cl);
    if (!rl || !cl) {
        free(rl);
        free(cl);
        fprintf(stderr, "%s translate: out of memory\n", PROG);
        return 1;
    }
    for (int k = 0; k < rows; k++) rl[k] = k < out_len ? attn_vocab_piece(b->tv, out[k]) : "<eos>";
    for (int64_t j = 0; j < S; j++) cl[j] = attn_vocab_piece(b->sv, src[j]);
    char a[160], o[160], title[512];
    clip_text(a, sizeof a, src_text, 60);
    clip_text(o, sizeof o, out_text, 60);
    char kind[96];
    if (!T2T)
        snprintf(kind, sizeof kind, "%s attention", model_kind(b));
    else if (b->align_layer < 0)
        snprintf(kind, sizeof kind, "cross-attention (mean of %d layers x %d heads)",
                 b->tcfg.dec_layers, b->tcfg.n_heads);
    else
        snprintf(kind, sizeof kind, "cross-attention (layer %d, mean of %d heads)",
                 b->align_layer, b->tcfg.n_heads);
    snprintf(title, sizeof title, "%s: \"%s\" -> \"%s\"", kind, a, o);
    attn_heatmap map = {0};
    map.weights = align;
    map.rows = rows;
    map.cols = (int)S;
    map.row_labels = rl;
    map.col_labels = cl;
    map.title = title;
    map.x_label = "source";
    map.y_label = "output";
    map.show_values = 0;
    map.colormap = ATTN_CMAP_BLUES;
    attn_status st = attn_svg_heatmap(path, &map);
    free(rl);
    free(cl);
    if (st != ATTN_OK) return cli_fail(CMD, "cannot write the alignment map");
    return 0;
}

/* Reads standard input into lines (newline and a trailing '\r' removed). */
static int read_lines(char ***lines, int64_t *n) {
    *lines = NULL;
    *n = 0;
    size_t cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, stdin)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if ((size_t)*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(*lines, cap * sizeof *p);
            if (!p) break;
            *lines = p;
        }
        char *copy = strdup(line);
        if (!copy) break;
        (*lines)[(*n)++] = copy;
    }
    free(line);
    if (ferror(stdin) || !feof(stdin)) {
        fprintf(stderr, "%s translate: cannot read standard input: %s\n", PROG, strerror(errno));
        return 1;
    }
    return 0;
}

static int cmd_translate(int argc, char **argv) {
    const char *sub = "translate", *dir = NULL, *svg = NULL;
    long long beam = 1, threads = 0, max_len = 0, align_layer = -2;
    double alpha = 0.6;
    char **texts = calloc((size_t)argc + 1, sizeof *texts);
    if (!texts) return 1;
    int64_t n_texts = 0;
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !strcmp(a, "-")) {
            texts[n_texts++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--")) {
            while (++i < argc) texts[n_texts++] = argv[i];
            break;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (!strcmp(a, "--model")) rc = opt_str(sub, a, v, &dir);
        else if (!strcmp(a, "--svg")) rc = opt_str(sub, a, v, &svg);
        else if (!strcmp(a, "--beam")) rc = opt_int(sub, a, v, 1, 256, &beam);
        else if (!strcmp(a, "--alpha")) rc = opt_real(sub, a, v, 0.0, 10.0, &alpha);
        else if (!strcmp(a, "--max-len")) rc = opt_int(sub, a, v, 1, 100000, &max_len);
        else if (!strcmp(a, "--threads")) rc = opt_int(sub, a, v, 0, 1024, &threads);
        else if (T2T && !strcmp(a, "--align-layer")) rc = opt_int(sub, a, v, -1, 63, &align_layer);
        else rc = usage_error(sub, "unknown option '%s'", a);
    }
    if (!rc && !dir) rc = usage_error(sub, "--model DIR is required");
    if (rc) {
        free(texts);
        return rc;
    }
    char **lines = NULL;
    int64_t n_lines = 0;
    const int from_stdin = n_texts == 0;
    if (from_stdin && read_lines(&lines, &n_lines)) {
        free(texts);
        return 1;
    }
    char **inputs = from_stdin ? lines : texts;
    const int64_t n_in = from_stdin ? n_lines : n_texts;

    bundle b;
    attn_ctx *ctx = NULL;
    attn_s2s_data d;
    attn_s2s_data_init(&d);
    id_buf ib = {0};
    text_buf tb = {0};
    int32_t *out_ids = NULL, out_len = 0;
    float *align = NULL;
    size_t out_cap = 0, align_cap = 0;
    rc = 1;
    if (bundle_load(sub, dir, &b, NULL, 0.0f, 0.0f, 0)) goto done_nomodel;
    if (set_align_layer(sub, &b, align_layer)) goto done;
    attn_ctx_config cc = {0};
    cc.n_threads = (int)threads;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    d.pad_id = b.cfg.pad_id;
    d.bos_id = b.cfg.bos_id;
    d.eos_id = b.cfg.eos_id;
    const int want_align = svg && has_attention(&b);
    if (svg && !want_align)
        fprintf(stderr, "%s translate: this model has no attention (--attention none): "
                        "no alignment map is written\n", PROG);
    for (int64_t i = 0; i < n_in; i++) {
        if (!inputs[i][0]) { /* an empty line translates to an empty line */
            printf("\n");
            continue;
        }
        attn_s2s_data_truncate(&d, 0);
        int cut = 0;
        if (add_source(&d, &b, inputs[i], &ib, &cut) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot encode the input");
            goto done;
        }
        if (cut)
            fprintf(stderr, "%s translate: input %lld cut to %lld tokens (%s)\n", PROG,
                    (long long)i + 1, (long long)source_cap(&b),
                    T2T ? "the learned position table ends there"
                        : "location attention scores at most that many");
        const int64_t S = d.src_len[0];
        const int L = decode_cap(&b, max_len > 0 ? (int)max_len : max_out_len(S));
        if ((size_t)L > out_cap) {
            int32_t *p = realloc(out_ids, (size_t)L * sizeof *p);
            if (!p) goto oom;
            out_ids = p;
            out_cap = (size_t)L;
        }
        if (want_align && (size_t)L * (size_t)S > align_cap) {
            float *p = realloc(align, (size_t)L * (size_t)S * sizeof *p);
            if (!p) goto oom;
            align = p;
            align_cap = (size_t)L * (size_t)S;
        }
        attn_ctx_reset(ctx);
        attn_s2s_batch batch;
        const int64_t zero = 0;
        attn_decode_config dc = {(int)beam, (float)alpha, L};
        if (attn_s2s_batch_make(ctx, &d, &zero, 1, &batch, NULL) != ATTN_OK ||
            model_decode(ctx, &b, &batch, &dc, out_ids, &out_len, want_align ? align : NULL) != ATTN_OK) {
            rc = cli_fail(CMD, "decoding failed");
            goto done;
        }
        if (decode_text(b.tv, out_ids, out_len, &tb) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot decode the output");
            goto done;
        }
        printf("%s\n", tb.p);
        fflush(stdout);
        if (want_align) {
            char path[4096];
            svg_name(path, sizeof path, svg, (int)i + 1, n_in > 1);
            if (write_svg(path, &b, inputs[i], tb.p, d.ids + d.src_off[0], S, out_ids, out_len, L, align))
                goto done;
            fprintf(stderr, "alignment map written to %s\n", path);
        }
    }
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "%s translate: out of memory\n", PROG);
done:
    bundle_free(&b);
done_nomodel:
    attn_ctx_free(ctx);
    attn_s2s_data_free(&d);
    free(ib.ids);
    free(tb.p);
    free(out_ids);
    free(align);
    for (int64_t i = 0; i < n_lines; i++) free(lines[i]);
    free(lines);
    free(texts);
    return rc;
}

/* ---- eval ------------------------------------------------------------------------------------ */

static void eval_usage(FILE *f) {
    fprintf(f,
        "usage: %s eval --model DIR [--split valid|test] [--beam K] [--alpha A]\n"
        "                         [--limit N] [--json] [--min-exact X] [--min-align Y]\n"
        "                         [--show N] [--threads N] [--data DIR]\n\n"
        "Decodes a held-out split of the model's task and prints exact match, corpus BLEU\n"
        "(sacrebleu's 13a tokenisation), the character error rate and the decoding speed;\n"
        "for the date task with attention also the alignment accuracy: the fraction of\n"
        "output digits whose largest attention weight falls on the source characters of\n"
        "their date field.\n\n"
        "  --split S       valid or test (default test)\n"
        "  --beam K        beam width (default 1: greedy); --alpha A its length\n"
        "                  normalisation log p / len^A (default 0.6)\n"
        "  --limit N       the first N examples only\n"
        "  --json          one JSON object on standard output instead of text\n"
        "  --min-exact X   exit 1 when the exact match (0 to 1) is below X\n"
        "  --min-align Y   exit 1 when the alignment accuracy (0 to 1) is below Y\n"
        "                  (or when the model has none to measure)\n"
        "  --show N        print the first N examples with their outputs\n"
        "  --threads N     threads for the ops (default: all)\n"
        "  --data DIR      gettext data root (default data/gettext)\n", PROG);
    if (T2T)
        fprintf(f, "  --align-layer N decoder layer whose cross-attention (averaged over heads)\n"
                   "                  is the alignment; -1: the mean over layers (default: the\n"
                   "                  model's, set at training)\n");
}

static int cmd_eval(int argc, char **argv) {
    const char *sub = "eval", *dir = NULL, *split_name = "test";
    const char *data_dir = getenv("ATTN_GETTEXT_DIR") && getenv("ATTN_GETTEXT_DIR")[0]
                               ? getenv("ATTN_GETTEXT_DIR")
                               : "data/gettext";
    long long beam = 1, limit = 0, threads = 0, show = 0, align_layer = -2;
    double alpha = 0.6, min_exact = -1.0, min_align = -1.0;
    int json = 0, rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (!strcmp(a, "--model")) rc = opt_str(sub, a, v, &dir);
        else if (!strcmp(a, "--split")) rc = opt_str(sub, a, v, &split_name);
        else if (!strcmp(a, "--data")) rc = opt_str(sub, a, v, &data_dir);
        else if (!strcmp(a, "--beam")) rc = opt_int(sub, a, v, 1, 256, &beam);
        else if (!strcmp(a, "--alpha")) rc = opt_real(sub, a, v, 0.0, 10.0, &alpha);
        else if (!strcmp(a, "--limit")) rc = opt_int(sub, a, v, 1, 1LL << 40, &limit);
        else if (!strcmp(a, "--show")) rc = opt_int(sub, a, v, 0, 1LL << 40, &show);
        else if (!strcmp(a, "--threads")) rc = opt_int(sub, a, v, 0, 1024, &threads);
        else if (!strcmp(a, "--min-exact")) rc = opt_real(sub, a, v, 0.0, 1.0, &min_exact);
        else if (!strcmp(a, "--min-align")) rc = opt_real(sub, a, v, 0.0, 1.0, &min_align);
        else if (T2T && !strcmp(a, "--align-layer")) rc = opt_int(sub, a, v, -1, 63, &align_layer);
        else rc = usage_error(sub, "unknown option '%s'", a);
    }
    if (rc) return rc;
    if (!dir) return usage_error(sub, "--model DIR is required");
    attn_data_split split;
    if (!strcmp(split_name, "valid")) split = ATTN_SPLIT_VALID;
    else if (!strcmp(split_name, "test")) split = ATTN_SPLIT_TEST;
    else return usage_error(sub, "--split '%s': expected valid or test", split_name);

    bundle b;
    if (bundle_load(sub, dir, &b, NULL, 0.0f, 0.0f, 0)) return 1;
    eval_set es = {0};
    attn_ctx *ctx = NULL;
    rc = 1;
    if (set_align_layer(sub, &b, align_layer)) goto done;
    if (eval_set_load(sub, &b.info, data_dir, split, &es)) goto done;
    attn_ctx_config cc = {0};
    cc.n_threads = (int)threads;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    eval_out ev;
    if (evaluate(sub, ctx, &b, &es, limit, (int)beam, (float)alpha, (int)show, json ? NULL : stdout, &ev))
        goto done;
    attn_bleu_score bs;
    attn_eval_bleu(&ev.ev, &bs);
    const double em = attn_eval_exact_match(&ev.ev), al = eval_align(&ev);
    const double tps = ev.seconds > 0 ? (double)ev.out_tokens / ev.seconds : 0.0;
    const char *task = b.info.dates ? "dates" : "gettext";
    if (json) {
        const attn_json_field f[] = {
            attn_json_str("model", dir),
            attn_json_str("task", task),
            attn_json_str("lang", b.info.lang),
            attn_json_str("attention", model_kind(&b)),
            attn_json_str("split", split_name),
            attn_json_int("n", ev.ev.n),
            attn_json_int("beam", beam),
            attn_json_num("exact_match", em),
            attn_json_num("bleu", bs.score),
            attn_json_num("cer", attn_eval_cer(&ev.ev)),
            attn_json_num("align_acc", al),
            attn_json_int("align_digits", ev.digits),
            attn_json_num("decode_tokens_per_s", tps),
            attn_json_num("decode_seconds", ev.seconds),
            attn_json_int("threads", attn_ctx_threads(ctx)),
            attn_json_int("step", b.info.step),
        };
        char *line = NULL;
        if (attn_json_record(f, (int)(sizeof f / sizeof f[0]), &line) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot format the result");
            goto done;
        }
        printf("%s\n", line);
        free(line);
    } else {
        printf("%s %s (%s, step %lld): %lld examples\n", task, split_name,
               model_kind(&b), (long long)b.info.step, (long long)ev.ev.n);
        printf("exact match      %.2f%% (%lld of %lld)\n", 100.0 * em, (long long)ev.ev.exact,
               (long long)ev.ev.n);
        printf("BLEU             %.2f (1-4 gram precisions %.1f/%.1f/%.1f/%.1f, brevity %.3f)\n",
               bs.score, bs.precision[0], bs.precision[1], bs.precision[2], bs.precision[3], bs.bp);
        printf("CER              %.2f%%\n", 100.0 * attn_eval_cer(&ev.ev));
        if (isfinite(al))
            printf("alignment        %.2f%% of %lld output digits attend most to their date field\n",
                   100.0 * al, (long long)ev.digits);
        if (ev.cut) printf("note: %lld sources were cut to %lld tokens (%s)\n",
                           (long long)ev.cut, (long long)source_cap(&b),
                           T2T ? "the learned position table" : "location attention");
        printf("decoding         %.0f tokens/s (%s, threads: %d, %.2f s)\n", tps,
               beam > 1 ? "beam search" : "greedy", attn_ctx_threads(ctx), ev.seconds);
    }
    rc = 0;
    if (min_exact >= 0 && em < min_exact) {
        fprintf(stderr, "%s eval: exact match %.4f is below --min-exact %.4f\n", PROG, em, min_exact);
        rc = 1;
    }
    if (min_align >= 0 && !(al >= min_align)) {
        if (isfinite(al))
            fprintf(stderr, "%s eval: alignment accuracy %.4f is below --min-align %.4f\n", PROG,
                    al, min_align);
        else
            fprintf(stderr, "%s eval: --min-align: no alignment accuracy for this model "
                            "(it needs the date task and an attention other than none)\n", PROG);
        rc = 1;
    }
done:
    attn_ctx_free(ctx);
    eval_set_free(&es);
    bundle_free(&b);
    return rc;
}

/* ---- viz: every layer's and head's attention of a Transformer ------------------------------ */

static void viz_usage(FILE *f) {
    fprintf(f,
        "usage: attn viz --model DIR [--out PREFIX] [--target TEXT] [--beam K] [--alpha A]\n"
        "                [--threads N] TEXT\n\n"
        "Draws the attention of every layer and head of the model in DIR for one input\n"
        "TEXT, as SVG grids (one row per layer, one column per head, tokens on both axes,\n"
        "all on the colour scale [0, 1]). The checkpoint's metadata says which model it is:\n"
        "  encoder-decoder Transformer ('attn transformer train'), three grids:\n"
        "    PREFIX-encoder.svg  encoder self-attention (source x source)\n"
        "    PREFIX-decoder.svg  decoder self-attention (output step x decoder input, causal)\n"
        "    PREFIX-cross.svg    cross-attention (output step x source)\n"
        "  The output is the model's translation of TEXT (greedy, or beam search of width\n"
        "  K), or TEXT's reference given with --target; the maps come from one teacher-\n"
        "  forced pass over it (row t is the step that emits output token t, the last row\n"
        "  the <eos> step).\n"
        "  GPT ('attn gpt train'): PREFIX-decoder.svg, the causal self-attention over\n"
        "  TEXT's tokens (query x key; the upper triangle is empty).\n"
        "  BERT ('attn bert pretrain|finetune'): PREFIX-encoder.svg, the self-attention\n"
        "  over [CLS] and TEXT's tokens.\n\n"
        "  --out PREFIX   file name prefix (default attn-viz)\n"
        "  --target TEXT  draw the maps for this output instead of the model's (Transformer)\n"
        "  --beam K, --alpha A   decoding as 'attn transformer translate' (Transformer)\n"
        "  --threads N    threads for the ops (default: all)\n");
}

int cmd_viz(int argc, char **argv) {
    const char *sub = "viz", *dir = NULL, *prefix = "attn-viz", *target = NULL, *text = NULL;
    long long beam = 1, threads = 0;
    double alpha = 0.6;
    int rc = 0;
    T2T = 1;
    CMD = "viz";
    PROG = "attn";
    META_MODEL = "attn-transformer";
    if (cli_wants_help(argc, argv)) {
        viz_usage(stdout);
        return 0;
    }
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            if (text) rc = usage_error(sub, "one TEXT only ('%s' and '%s')", text, a);
            text = a;
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (!strcmp(a, "--model")) rc = opt_str(sub, a, v, &dir);
        else if (!strcmp(a, "--out")) rc = opt_str(sub, a, v, &prefix);
        else if (!strcmp(a, "--target")) rc = opt_str(sub, a, v, &target);
        else if (!strcmp(a, "--beam")) rc = opt_int(sub, a, v, 1, 256, &beam);
        else if (!strcmp(a, "--alpha")) rc = opt_real(sub, a, v, 0.0, 10.0, &alpha);
        else if (!strcmp(a, "--threads")) rc = opt_int(sub, a, v, 0, 1024, &threads);
        else rc = usage_error(sub, "unknown option '%s'", a);
    }
    if (!rc && !dir) rc = usage_error(sub, "--model DIR is required");
    if (!rc && (!text || !text[0])) rc = usage_error(sub, "a TEXT to draw the attention of is required");
    if (rc) return rc;
    {
        /* which model wrote the checkpoint: "model" (attn seq2seq / transformer) or
         * "run.model" (attn gpt / bert) in its metadata */
        char path[4096], kind[128] = "";
        dir_file(path, sizeof path, dir, "model.safetensors");
        attn_safetensors *f = NULL;
        if (!file_exists(path)) {
            fprintf(stderr, "attn viz: %s not found (train a model with 'attn transformer train', "
                            "'attn gpt train' or 'attn bert pretrain|finetune')\n", path);
            return 1;
        }
        if (attn_safetensors_open(&f, path) != ATTN_OK) return cli_fail(CMD, "cannot read the checkpoint");
        const char *model = attn_safetensors_metadata(f, "model");
        if (!model) model = attn_safetensors_metadata(f, "run.model");
        snprintf(kind, sizeof kind, "%s", model ? model : "");
        attn_safetensors_close(f);
        if (!strcmp(kind, "attn-seq2seq")) {
            fprintf(stderr, "attn viz: %s holds an RNN seq2seq model, which has one attention "
                            "map: draw it with 'attn seq2seq translate --model %s --svg FILE'\n",
                    dir, dir);
            return 1;
        }
        if (!strcmp(kind, "attn-gpt") || !strcmp(kind, "attn-bert-pretrain") ||
            !strcmp(kind, "attn-bert-finetune")) {
            if (target || beam != 1)
                return usage_error(sub, "--target and --beam are for encoder-decoder Transformers; "
                                        "%s holds a model of kind '%s'", dir, kind);
            return cli_viz_lm(dir, kind, prefix, text, (int)threads);
        }
        if (strcmp(kind, "attn-transformer") != 0) {
            fprintf(stderr, "attn viz: %s: unknown model '%s' (metadata 'model' / 'run.model'); "
                            "viz draws checkpoints of attn transformer ('attn-transformer'), "
                            "attn gpt ('attn-gpt') and attn bert ('attn-bert-pretrain', "
                            "'attn-bert-finetune')\n", path, kind[0] ? kind : "(missing)");
            return 1;
        }
    }
    bundle b;
    attn_ctx *ctx = NULL;
    attn_s2s_data d;
    attn_s2s_data_init(&d);
    id_buf ib = {0};
    int32_t *out_ids = NULL, *tgt = NULL, out_len = 0;
    const char **rl = NULL, **cl = NULL, **il = NULL;
    rc = 1;
    if (bundle_load(sub, dir, &b, NULL, 0.0f, 0.0f, 0)) goto done_nomodel;
    attn_ctx_config cc = {0};
    cc.n_threads = (int)threads;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    d.pad_id = b.cfg.pad_id;
    d.bos_id = b.cfg.bos_id;
    d.eos_id = b.cfg.eos_id;
    int cut = 0;
    if (add_source(&d, &b, text, &ib, &cut) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot encode the input");
        goto done;
    }
    const int64_t S = d.src_len[0];
    const int L = decode_cap(&b, max_out_len(S));
    out_ids = malloc(sizeof(int32_t) * (size_t)L);
    tgt = malloc(sizeof(int32_t) * (size_t)(L + strlen(target ? target : "") + 1));
    if (!out_ids || !tgt) goto oom;
    int64_t n_out = 0;
    if (target) {
        size_t n = 0;
        if (attn_vocab_encode(b.tv, target, strlen(target), tgt, (size_t)L + strlen(target), &n) !=
            ATTN_OK) {
            rc = cli_fail(CMD, "cannot encode the target");
            goto done;
        }
        n_out = (int64_t)n;
    } else {
        attn_ctx_reset(ctx);
        attn_s2s_batch batch;
        const int64_t zero = 0;
        attn_decode_config dc = {(int)beam, (float)alpha, L};
        if (attn_s2s_batch_make(ctx, &d, &zero, 1, &batch, NULL) != ATTN_OK ||
            model_decode(ctx, &b, &batch, &dc, out_ids, &out_len, NULL) != ATTN_OK) {
            rc = cli_fail(CMD, "decoding failed");
            goto done;
        }
        memcpy(tgt, out_ids, sizeof(int32_t) * (size_t)out_len);
        n_out = out_len;
    }
    /* one teacher-forced pass over bos, y_0 .. y_{n-1}: rows emit y_0 .. y_{n-1}, eos */
    /* (ib.ids holds the encoded source: d's storage may move while adding) */
    if (attn_s2s_data_add_ids(&d, ib.ids, S, tgt, n_out) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot build the batch");
        goto done;
    }
    attn_ctx_reset(ctx);
    attn_s2s_batch batch;
    const int64_t one = 1;
    if (attn_s2s_batch_make(ctx, &d, &one, 1, &batch, NULL) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot build the batch");
        goto done;
    }
    const int Le = b.tcfg.enc_layers, Ld = b.tcfg.dec_layers;
    attn_tensor *enc[64], *dec[64], *crs[64];
    const attn_t2t_maps maps = {enc, dec, crs};
    if (Le > 64 || Ld > 64 || !attn_t2t_logits(ctx, b.t2t, &batch, &maps)) {
        rc = cli_fail(CMD, "the teacher-forced pass failed");
        goto done;
    }
    const int64_t T = n_out + 1;
    rl = malloc(sizeof *rl * (size_t)T);
    il = malloc(sizeof *il * (size_t)T);
    cl = malloc(sizeof *cl * (size_t)S);
    if (!rl || !il || !cl) goto oom;
    for (int64_t t = 0; t < T; t++) {
        rl[t] = t < n_out ? attn_vocab_piece(b.tv, tgt[t]) : "<eos>";
        il[t] = t == 0 ? "<bos>" : attn_vocab_piece(b.tv, tgt[t - 1]);
    }
    for (int64_t s = 0; s < S; s++) cl[s] = attn_vocab_piece(b.sv, d.ids[d.src_off[0] + s]);
    {
        text_buf tb = {0};
        if (decode_text(b.tv, tgt, (int32_t)n_out, &tb) != ATTN_OK) {
            free(tb.p);
            rc = cli_fail(CMD, "cannot decode the output");
            goto done;
        }
        printf("%s -> %s%s\n", text, tb.p, target ? " (given)" : "");
        char a[160], o[160], title[512], path[4096];
        clip_text(a, sizeof a, text, 50);
        clip_text(o, sizeof o, tb.p, 50);
        free(tb.p);
        const int64_t H = b.tcfg.n_heads;
        snprintf(path, sizeof path, "%s-encoder.svg", prefix);
        snprintf(title, sizeof title, "encoder self-attention: \"%s\"", a);
        if (cli_viz_grid(path, title, enc, Le, H, cl, cl)) goto done;
        snprintf(path, sizeof path, "%s-decoder.svg", prefix);
        snprintf(title, sizeof title, "decoder self-attention (causal): \"%s\"", o);
        if (cli_viz_grid(path, title, dec, Ld, H, rl, il)) goto done;
        snprintf(path, sizeof path, "%s-cross.svg", prefix);
        snprintf(title, sizeof title, "cross-attention: \"%s\" -> \"%s\"", a, o);
        if (cli_viz_grid(path, title, crs, Ld, H, rl, cl)) goto done;
    }
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "attn viz: out of memory\n");
done:
    bundle_free(&b);
done_nomodel:
    attn_ctx_free(ctx);
    attn_s2s_data_free(&d);
    free(ib.ids);
    free(out_ids);
    free(tgt);
    free(rl);
    free(il);
    free(cl);
    return rc;
}

/* ---- the command ------------------------------------------------------------------------------ */

static void seq2seq_usage(FILE *f) {
    if (T2T) {
        fprintf(f, "usage: attn transformer <train|translate|eval> [options]\n\n"
                   "  train       train an encoder-decoder Transformer on dates or gettext pairs\n"
                   "              (the data, splits and schedule of 'attn seq2seq')\n"
                   "  translate   translate texts with a trained model, optionally drawing its\n"
                   "              cross-attention map (SVG)\n"
                   "  eval        exact match, BLEU, alignment accuracy and speed on a held-out split\n\n"
                   "'attn transformer <command> --help' describes each; docs/transformer_s2s.md\n"
                   "has the details. 'attn viz' draws every layer's and head's attention.\n");
        return;
    }
    fprintf(f, "usage: attn seq2seq <train|translate|eval> [options]\n\n"
               "  train       train an encoder-decoder with attention on dates or gettext pairs\n"
               "  translate   translate texts with a trained model, optionally drawing its\n"
               "              alignment map (SVG)\n"
               "  eval        exact match, BLEU, alignment accuracy and speed on a held-out split\n\n"
               "'attn seq2seq <command> --help' describes each; docs/seq2seq.md has the details.\n");
}

static int run_command(int argc, char **argv) {
    if (argc < 2) {
        seq2seq_usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        seq2seq_usage(stdout);
        return 0;
    }
    struct {
        const char *name;
        int (*fn)(int, char **);
        void (*usage)(FILE *);
    } subs[] = {{"train", cmd_train, train_usage},
                {"translate", cmd_translate, translate_usage},
                {"eval", cmd_eval, eval_usage}};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(sub, subs[i].name) != 0) continue;
        if (cli_wants_help(argc - 1, argv + 1)) {
            subs[i].usage(stdout);
            return 0;
        }
        return subs[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "%s: unknown command '%s'\n\n", PROG, sub);
    seq2seq_usage(stderr);
    return 2;
}

int cmd_seq2seq(int argc, char **argv) {
    T2T = 0;
    CMD = "seq2seq";
    PROG = "attn seq2seq";
    META_MODEL = "attn-seq2seq";
    return run_command(argc, argv);
}

int cmd_transformer(int argc, char **argv) {
    T2T = 1;
    CMD = "transformer";
    PROG = "attn transformer";
    META_MODEL = "attn-transformer";
    return run_command(argc, argv);
}
