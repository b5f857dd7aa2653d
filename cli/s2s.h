/* s2s.h: the encoder-decoder commands (`attn seq2seq`, `attn transformer`,
 * and `attn viz` on a Transformer), private to cli/.
 *
 * The two families share everything but the model: the data and its splits,
 * the vocabularies, batching, the training loop (cli/train_driver.c) and its
 * schedule, the checkpoints and logs, decoding options, evaluation and the
 * alignment maps, so their figures compare one to one. What is the model's
 * own (its options, its checkpoint metadata, creating it, its loss and
 * decoder, how it is described) is a table of functions, s2s_family: the
 * RNN's in cli/s2s_rnn.c, the Transformer's in cli/s2s_t2t.c. A bundle
 * carries the family of its model, so no code branches on which one it is.
 *
 *   cli/s2s_core.c     helpers, checkpoint metadata, loading a model
 *                      directory, the data sets, decoding and evaluation
 *   cli/cmd_seq2seq.c  train (on the driver), the entry points
 *   cli/s2s_translate.c  translate, eval
 *   cli/cmd_viz.c      attn viz (every layer's and head's maps)
 */
#ifndef ATTN_CLI_S2S_H
#define ATTN_CLI_S2S_H

#include <stdint.h>
#include <stdio.h>

#include "attn/attn.h"
#include "commands.h"
#include "train_driver.h"

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

/* The names the messages of the command being run use ("seq2seq" and
 * "attn seq2seq", "transformer" and "attn transformer", "viz" and "attn"),
 * set once by its entry point. Names only: what a model does comes from its
 * bundle's family. */
extern const char *s2s_cmd, *s2s_prog;

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
    double train_seconds;      /* training time so far (all runs) */
} run_info;

typedef struct s2s_family s2s_family;

/* A model with its vocabularies. cfg's vocabulary sizes, special ids,
 * dropout and max_src_len (the longest source of the data + 1) describe the
 * data side of both families; for the Transformer the ids, sizes and
 * dropout are mirrored in tcfg, and the rest of cfg is unused. */
typedef struct bundle {
    const s2s_family *fam;
    attn_seq2seq_config cfg;
    attn_t2t_config tcfg;     /* the Transformer's */
    int align_layer;          /* Transformer: the decoder layer the alignment is read from (-1: mean) */
    run_info info;
    attn_params *ps;
    attn_seq2seq *model;      /* the RNN's */
    attn_t2t *t2t;            /* the Transformer's */
    attn_vocab *sv, *tv;
} bundle;

/* Options of `train` (cmd_seq2seq.c parses them). */
typedef struct s2s_opts {
    const char *task, *lang, *attention, *cell, *tok, *out, *data_dir;
    const char *fusion; /* --fusion (--cell lstmn): NULL when not given */
    long long bpe_merges, emb, hidden, layers, bidir, attn_dim, window, combine_dim, input_feed;
    double dropout;
    long long loc_filters, loc_kernel, dv3_window; /* location-sensitive, dv3 (0: defaults) */
    double dv3_key_rate;                           /* dv3: 0 = from the training data */
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

/* Metadata of a checkpoint: up to META_MAX entries, values formatted here. */
#define META_MAX 64
typedef struct meta_list {
    attn_kv kv[META_MAX];
    char val[META_MAX][48];
    int n;
} meta_list;

void meta_put(meta_list *m, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;


/* ---- a family: what is the model's own ------------------------------------------------ */

struct s2s_family {
    const char *cmd;          /* "seq2seq" */
    const char *prog;         /* "attn seq2seq" */
    const char *meta_model;   /* the checkpoint's "model" metadata */
    const char *usage;        /* `attn <cmd> --help` */
    const char *train_intro;  /* the first paragraph of `train --help` */
    const char *model_help;   /* the model options of `train --help` */
    const char *align_help;   /* --align-layer of translate and eval, or NULL when there is none */
    const char *cap_reason;   /* why sources may be cut ("location attention") */
    int default_layers;       /* --layers */
    /* A model option of `train` at argv[*i] (value argv[*i + 1]): 1 when it is
     * one (*i moved past its value, *rc 0 or 2), 0 when not. */
    int (*parse_opt)(s2s_opts *o, char **argv, int argc, int *i, int *rc);
    /* The model options' defaults and checks once the task is known; 0 or 2. */
    int (*check_opts)(s2s_opts *o, int dates);
    /* The model's configuration from the options (b->cfg's data side is set). */
    void (*config)(const s2s_opts *o, bundle *b);
    /* Once the longest source is known (b->cfg.max_src_len). */
    void (*fit_sources)(bundle *b);
    attn_status (*create)(bundle *b, attn_rng *rng);
    attn_tensor *(*loss)(attn_ctx *ctx, const bundle *b, const attn_s2s_batch *batch, float label_smoothing);
    /* Decodes (seq2seq.h's contract); align [B * max_len * S] or NULL. */
    attn_status (*decode)(attn_ctx *ctx, const bundle *b, const attn_s2s_batch *batch,
                          const attn_decode_config *dc, int32_t *out_ids, int32_t *out_len, float *align);
    const char *(*kind)(const bundle *b);      /* the model in a word, for logs ("bahdanau") */
    const char *(*cell_name)(const bundle *b); /* the log's "cell" ("gru"; the position kind) */
    void (*meta_write)(meta_list *m, const bundle *b);
    void (*meta_read)(meta_reader *m, bundle *b); /* b->cfg's data side is read already */
    void (*describe)(const bundle *b, char *buf, size_t n);
    void (*map_title)(const bundle *b, char *buf, size_t n); /* what an alignment map shows */
    int64_t (*source_cap)(const bundle *b);    /* most source tokens the model reads (0: any) */
    int (*decode_cap)(const bundle *b, int L); /* most output tokens, L or fewer */
    int (*has_attention)(const bundle *b);
    int (*align_layers)(const bundle *b);      /* decoder layers --align-layer chooses from (0: none) */
};

extern const s2s_family s2s_rnn, s2s_t2t;

/* ---- shared helpers (cli/s2s_core.c) ------------------------------------------------------- */

double now_s(void);
int usage_error(const char *sub, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int opt_int(const char *sub, const char *a, const char *v, long long lo, long long hi, long long *out);
int opt_real(const char *sub, const char *a, const char *v, double lo, double hi, double *out);
int opt_str(const char *sub, const char *a, const char *v, const char **out);
int make_dirs(const char *path);
/* mkdir -p of the folder of a file path (nothing when it has none); 0 or -1. */
int make_parent_dirs(const char *file);
/* Warns on stderr, once per line, about the characters of text (input
 * number line) that vocab reads as <unk>, naming them. */
void warn_unknown(const attn_vocab *vocab, const char *text, int64_t line);
int file_exists(const char *path);
void dir_file(char *buf, size_t n, const char *dir, const char *name);
const char *tok_name(attn_vocab_kind k);
int pos_parse(const char *name, attn_pos_kind *out);

void bundle_free(bundle *b);
void meta_build(meta_list *m, const bundle *b);
/* Loads a model directory of family fam: configuration from the checkpoint's
 * metadata, the vocabularies, a model with its parameters (and, when
 * opt_out is not NULL, an AdamW optimizer restored from the checkpoint).
 * Prints the error and returns 1 on failure. */
int bundle_load(const s2s_family *fam, const char *sub, const char *dir, bundle *b, attn_optim **opt_out,
                float lr_for_optimizer, float wd_override, int use_wd_override);
/* --align-layer of translate and eval: -2 (not given) keeps the model's. */
int set_align_layer(const char *sub, bundle *b, long long layer);

/* A held-out set: sources and references (borrowed), and for the date task
 * the examples with their true alignment (owned). */
typedef struct eval_set {
    int64_t n;
    const char **src, **ref;  /* owned arrays of borrowed strings */
    attn_date_example *dates; /* [n] for the date task, else NULL */
    attn_pairs pairs;         /* gettext: the loaded split (owns the strings) */
} eval_set;

void eval_set_free(eval_set *s);
int gettext_path(const char *sub, const char *data_dir, const char *lang, const char *split, char *path,
                 size_t n);
int eval_set_load(const char *sub, const run_info *r, const char *data_dir, attn_data_split split, eval_set *s);
/* Output tokens at most for a source of S tokens: targets of the gettext
 * pairs are at most 2.5 times their source in characters, dates are 10. */
int max_out_len(int64_t S);

/* Encodes a source for the model; sources longer than the family's
 * source_cap are cut there (and *cut set). */
typedef struct id_buf {
    int32_t *ids;
    size_t cap;
} id_buf;
attn_status add_source(attn_s2s_data *d, const bundle *b, const char *text, id_buf *buf, int *cut);

/* Growable text buffer for decoded outputs. */
typedef struct text_buf {
    char *p;
    size_t cap;
} text_buf;
attn_status decode_text(const attn_vocab *v, const int32_t *ids, int32_t n, text_buf *t);

typedef struct eval_out {
    attn_eval ev;
    int64_t digits, digits_aligned; /* dates with attention: output digits, those aligned right */
    int64_t out_tokens;             /* generated tokens, eos included */
    int64_t cut;                    /* sources cut to fit max_src_len */
    double seconds;                 /* decoding time */
} eval_out;

/* Decodes the first `limit` examples of the set (all when limit <= 0) and
 * scores them. n_show examples are printed to `show` with their reference.
 * Returns 0, or 1 after printing the error. */
int evaluate(const char *sub, attn_ctx *ctx, const bundle *b, const eval_set *es, int64_t limit, int beam,
             float alpha, int n_show, FILE *show, eval_out *r);
double eval_bleu(const eval_out *r);
double eval_align(const eval_out *r);

/* The training data of a run. */
typedef struct train_data {
    attn_s2s_data train;      /* the finite training set, or the fresh batch */
    int fresh;                /* dates with n_train 0: a new batch of examples every step */
    uint64_t cursor;          /* fresh: next index of the dates training stream */
    attn_pairs pairs;         /* gettext training split */
    attn_date_example *dates; /* dates with n_train > 0: the examples */
    int64_t skipped;          /* gettext pairs longer than max_len */
} train_data;

void train_data_free(train_data *t);
/* Texts of the training split the vocabularies are learned from. */
int vocab_texts(const run_info *r, train_data *t, const char ***src, const char ***tgt, int64_t *n,
                attn_date_example **tmp);
int train_data_load(const char *data_dir, const run_info *r, train_data *t);
int train_data_encode(const bundle *b, train_data *t);
attn_status fresh_batch(const bundle *bd, train_data *t, int64_t b);
int64_t longest_source(const bundle *b, const eval_set *sets, int n_sets, const train_data *t);

/* translate's files: svg_name is FILE for a single input, FILE with "-k"
 * before its extension otherwise; clip_text keeps at most max bytes of s, cut
 * at a UTF-8 boundary, "..." added when cut; write_svg draws one alignment
 * map (output tokens down, source tokens across; 0 or 1, message printed);
 * read_lines reads standard input into lines (newline and '\r' removed),
 * with (*nul_at)[k] the byte offset of line k's first NUL byte, or -1 when it
 * has none (a NUL would cut the line short as a C string). */
void svg_name(char *buf, size_t n, const char *file, int k, int many);
void clip_text(char *buf, size_t cap, const char *s, size_t max);
int write_svg(const char *path, const bundle *b, const char *src_text, const char *out_text, const int32_t *src,
              int64_t S, const int32_t *out, int32_t out_len, int max_len, const float *align);
/* translate --html: the alignment of one input as an attention explorer page
 * (one map, the step view), and with weights non-NULL its weights as text;
 * arguments as write_svg. */
int write_html(const char *path, const char *weights, const bundle *b, const char *src_text,
               const char *out_text, const int32_t *src, int64_t S, const int32_t *out,
               int32_t out_len, int max_len, const float *align);
int read_lines(char ***lines, int64_t **nul_at, int64_t *n);

/* translate and eval (cli/s2s_translate.c): the subcommand and its help. */
int s2s_cmd_translate(const s2s_family *fam, int argc, char **argv);
void s2s_translate_usage(const s2s_family *fam, FILE *f);
int s2s_cmd_eval(const s2s_family *fam, int argc, char **argv);
void s2s_eval_usage(const s2s_family *fam, FILE *f);

/* The entry of `attn seq2seq` and `attn transformer` (cli/cmd_seq2seq.c). */
int s2s_run_command(const s2s_family *fam, int argc, char **argv);

#endif
