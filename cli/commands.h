/* commands.h: the table of attn's subcommands (the single list). Each row is
 * X(name, summary); the handler is `int cmd_<name>(int argc, char **argv)`
 * (argv[0] is the command name), defined in cli/<file>.c, returning the exit
 * code (0 ok, 1 failure, 2 usage error). Handlers print library errors with
 * cli_fail(). */
#ifndef ATTN_CLI_COMMANDS_H
#define ATTN_CLI_COMMANDS_H

#include <stdint.h>

#include "attn/tensor.h"
#include "attn/explorer.h"
#include "attn/idx.h"

#define CLI_COMMANDS(X)                                                                  \
    X(info, "version, SIMD level, matrix library and its core type, threads")            \
    X(ops, "list the graph ops (each has forward, backward and a reference kernel)")     \
    X(data, "build the data sets: attn data dates|gettext ...")                        \
    X(seq2seq, "train, translate and evaluate RNN encoder-decoders with attention")      \
    X(gpt, "train a GPT language model on English prose, sample text from it")           \
    X(lm, "byte-level long-text language models: GPT or Transformer-XL (memory, adaptive span, persistent vectors)") \
    X(transformer, "train, translate and evaluate encoder-decoder Transformers")          \
    X(viz, "draw every layer's and head's attention (Transformer, GPT, BERT, attn lm) for one input (SVG)") \
    X(bert, "pretrain a BERT-style encoder (masked LM), fine-tune it to classify")       \
    X(caption, "Show, Attend and Tell: caption Fashion-MNIST scenes with soft, hard or no attention") \
    X(vision, "train and evaluate a CNN (optional SAGAN / Simple SA block) on Fashion-MNIST, draw its attention maps") \
    X(gan, "train a small SAGAN on Fashion-MNIST, draw its samples, compute its FID")   \
    X(graph, "node classification on Debian's package graph with graph self-attention over dependencies") \
    X(embed, "sentence embeddings with a pretrained encoder (all-MiniLM-L6-v2): JSONL or safetensors") \
    X(similar, "rank the lines of a file by cosine similarity to a query sentence (all-MiniLM-L6-v2)") \
    X(lstmn, "word-level LSTMN (intra-attention over a memory tape) and LSTM language models: train, eval, viz") \
    X(wavenet, "byte-level causal dilated convolution LM (WaveNet-style): train, eval, sample with per-layer queues") \
    X(word2vec, "word2vec: train skip-gram/CBOW vectors, nearest words, analogies, evaluation") \
    X(rnnlm, "byte-level SHA-LSTM (single-headed attention, Merity 2019) and LSTM language models: train, eval, sample") \
    X(classify, "fortune-file classification over a BiGRU with LAMA, attention, MHSA or mean pooling: train, eval") \
    X(version, "print the version")

#define CLI_DECL(name, summary) int cmd_##name(int argc, char **argv);
CLI_COMMANDS(CLI_DECL)
#undef CLI_DECL
/* attn vision masks (cli/cmd_vision_masks.c), dispatched by cmd_vision. */
int cmd_vision_masks(int argc, char **argv);

/* Prints "attn <cmd>: <what>: <attn_last_error()>" to stderr; returns 1. */
int cli_fail(const char *cmd, const char *what);
/* 1 if argv has --help or -h. */
int cli_wants_help(int argc, char **argv);

/* Shared by the model commands (cli/cli_util.c). cli_opt_int / cli_opt_real: parse option a's value v of
 * "attn <cmd> <sub>" into *out when it is a number in [lo, hi] and return 0,
 * else print why and return 2 (usage error). cli_make_dir: mkdir -p; 0 when
 * path is a folder at the end, else -1. */
/* The most --threads a command accepts: the CPUs online (sysconf), >= 1.
 * More threads than cores only wait for each other (1,000 hung). */
long long cli_max_threads(void);
int cli_opt_int(const char *cmd, const char *sub, const char *a, const char *v, long long lo,
                long long hi, long long *out);
int cli_opt_real(const char *cmd, const char *sub, const char *a, const char *v, double lo,
                 double hi, double *out);
int cli_make_dir(const char *path);

/* attn viz's pictures (cli/cmd_viz.c). cli_viz_grid writes one layers x heads
 * grid to path: maps[l] is layer l's [1, H, R, C] weights, rl / cl the R row
 * and C column labels; prints path; 0 on success, 1 (message printed) on
 * failure. cli_viz_lm draws the self-attention of the GPT (kind "attn-gpt")
 * or BERT ("attn-bert-pretrain" / "attn-bert-finetune") checkpoint in dir for
 * text, to <prefix>-decoder.svg (GPT) or <prefix>-encoder.svg (BERT); returns
 * the exit code. */
int cli_viz_grid(const char *path, const char *title, attn_tensor *const *maps, int L, int64_t H,
                 const char *const *rl, const char *const *cl);
int cli_viz_lm(const char *dir, const char *kind, const char *prefix, const char *text, int threads,
               const char *html, const char *weights);

/* The attention explorer pages of --html (cli/cmd_viz.c; include/attn/explorer.h).
 * A cli_page collects maps, zero-initialised ({0}) before use; it owns copies
 * of the weights and masks, not the labels and names (they must live until
 * cli_page_write). cli_page_add copies L per-layer [1, H, R, C] tensors;
 * cli_page_add_floats a [L, H, R, C] array. causal >= 0 adds the mask "key c
 * allowed where c <= r + causal" (0 for a GPT; the memory length for a
 * Transformer-XL), -1 none. cli_page_write writes the page to html and, with
 * weights non-NULL, every weight as text to weights (attn_explorer_write_weights),
 * prints the paths (on standard error with quiet_stdout, where standard
 * output carries the command's results), and frees the page; each returns 0, or 1 with a message
 * naming cmd printed. */
typedef struct cli_page {
    attn_explorer_map maps[ATTN_EXPLORER_MAX_MAPS];
    float *w[ATTN_EXPLORER_MAX_MAPS];
    uint8_t *mask[ATTN_EXPLORER_MAX_MAPS];
    int n;
} cli_page;
int cli_page_add(cli_page *p, const char *cmd, const char *name, attn_explorer_kind kind,
                 attn_tensor *const *maps, int L, const char *const *rl, const char *const *cl,
                 const char *row_axis, const char *col_axis, int64_t causal);
int cli_page_add_floats(cli_page *p, const char *cmd, const char *name, attn_explorer_kind kind,
                        const float *w, int L, int64_t H, int64_t R, int64_t C,
                        const char *const *rl, const char *const *cl, const char *row_axis,
                        const char *col_axis, int64_t causal);
int cli_page_write(cli_page *p, const char *cmd, const char *html, const char *weights,
                   const char *title, const char *subtitle, int quiet_stdout);
void cli_page_free(cli_page *p);


/* The byte-level commands (attn lm, attn wavenet; cli/cli_util.c):
 * cli_load_bytes reads DIR/NAME as byte ids (*ids malloc'ed, *n bytes), 0 or
 * 1 with "attn <cmd>: cannot read ..." printed; cli_row_nll is
 * -log softmax(row)[y] over V logits, in double. */
int cli_load_bytes(const char *cmd, const char *dir, const char *name, int32_t **ids, int64_t *n);
double cli_row_nll(const float *row, int64_t V, int32_t y);

/* Numbers from text (cli/cli_util.c): parse_ll / parse_real read all of s as
 * a number in [lo, hi] into *out and return 0, else -1 (NULL and empty are
 * not numbers). */
int parse_ll(const char *s, long long lo, long long hi, long long *out);
int parse_real(const char *s, double lo, double hi, double *out);

/* Reading a checkpoint's metadata back, every value range-checked (a file is
 * untrusted input: a batch of 2^59 must not reach an allocation): each
 * getter records the first problem in err (naming the file, the key, the
 * value and the range) and returns 0 / "" then. One helper for every
 * command. */
struct attn_safetensors;
typedef struct meta_reader {
    struct attn_safetensors *f;
    const char *path;
    char err[8192];
} meta_reader;

/* The family of checkpoint f (read from path): 0 when its metadata key
 * (run.model, or model for seq2seq / transformer checkpoints) is want.
 * Otherwise prints "PROG: PATH is not a checkpoint of WHO: its run.model is
 * 'attn-lm', expected 'attn-gpt'" (the family's key looked up under both
 * names, so a checkpoint of the other kind is named too; "it names no
 * family" when it has neither) and returns 1. prog is "attn gpt" and the
 * like, who "attn gpt train". */
int cli_check_family(const char *prog, struct attn_safetensors *f, const char *path, const char *key,
                     const char *want, const char *who);

const char *meta_str(meta_reader *m, const char *key);
long long meta_ll(meta_reader *m, const char *key, long long lo, long long hi);
int meta_has(meta_reader *m, const char *key);
double meta_real(meta_reader *m, const char *key, double lo, double hi);

/* The four IDX files of Fashion-MNIST in dir (training images and labels,
 * test images and labels); 0, or 1 with the message printed and nothing
 * kept. */
int cli_fmnist_load(const char *cmd, const char *dir, attn_idx *train_x, attn_idx *train_y,
                    attn_idx *test_x, attn_idx *test_y);

#endif
