/* lm_cmd.h: what the two files of `attn lm` share (private to the CLI):
 * cmd_lm.c (train's options), lm_train_task.c (training), lm_model.c (the
 * model directory and its metadata), lm_heldout.c (held-out scores, the
 * duplication task), cmd_lm_eval.c (eval, sample) and cmd_lm_viz.c (viz
 * and the pattern pictures). */
#ifndef ATTN_CLI_LM_CMD_H
#define ATTN_CLI_LM_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "attn/attn.h"
#include "lm_pixels.h"

#define LM_VOCAB 256

/* The run's settings (checkpoint metadata run.*). */
typedef struct lm_info {
    char data[1024];
    int txl; /* the architecture: 0 gpt, 1 txl */
    int reformer; /* 1: the Reformer (txl 0) */
    long long dup_len, dup_vocab, dup_eval; /* --data dup: sequence length, symbols, held-out sequences */
    long long eval_rounds;                  /* reformer: hashing rounds of the evaluations */
    long long batch, total_steps, warmup, seed, segment, mem_len, eval_mem_len, run_segments;
    long long pixels; /* 0: bytes; else images as pixel sequences of this many levels (lm_pixels.h) */
    double lr, min_lr, weight_decay, span_penalty, train_seconds;
} lm_info;

/* The model: one of the two architectures. */
typedef struct lm_model {
    attn_params *ps;
    attn_gpt *g;
    attn_txl *t;
    attn_reformer_lm *rf;
} lm_model;

void lm_model_free(lm_model *m);
/* Loads DIR/model.safetensors: the run's settings into *r and the model;
 * 0, or 1 (message printed). */
int lm_load(const char *dir, lm_info *r, lm_model *m);
/* The share of the causal entries that c's pattern keeps (averaged over
 * layers and heads) and of the dense kernel's 64 x 64 tiles the fused
 * kernel computes under it; 0, or 1 with the context's error. */
int lm_pattern_share(attn_ctx *ctx, const attn_gpt_config *c, int64_t T, double *vis, double *tiles);
/* The text form of c's pattern as --pattern takes it; "dense" without one. */
void lm_pattern_text(const attn_gpt_config *c, char *buf, size_t cap);

/* lm_losses.c: the TXL's bits/byte of ids[0 .. n) as attn_txl_eval_stream,
 * each predicted byte's loss (bits) written to path, one line each; 0, 1
 * (message printed), 2 (not a TXL). */
int lm_eval_losses(attn_ctx *ctx, const lm_model *m, const int32_t *ids, int64_t n, int64_t segment, int64_t mem_len,
                   const char *path, double *bpb, double *seconds, int64_t *bytes);

/* ---- the model directory (lm_model.c) ---- */

/* The checkpoint's metadata: the model's configuration, the run's settings
 * (17 keys), and those added with the duplication task and the Reformer
 * (4, optional when read). */
#define LM_RUN_META 17
#define LM_RUN_EXTRA 4
_Static_assert(ATTN_REFORMER_LM_META <= ATTN_TXL_META + ATTN_GPT_META, "lm_meta: room for the Reformer's entries");
typedef struct lm_meta {
    attn_kv kv[ATTN_TXL_META + ATTN_GPT_META + LM_RUN_META + LM_RUN_EXTRA];
    char mbuf[(ATTN_TXL_META + ATTN_GPT_META) * 32];
    char vbuf[LM_RUN_META + LM_RUN_EXTRA][1100];
    int n;
} lm_meta;
/* The metadata of model m trained with settings r. */
void lm_meta_build(lm_meta *mm, const lm_model *m, const lm_info *r);

/* ---- held-out scores (lm_heldout.c) ---- */

/* The rotations of the Reformer's evaluations: one fixed seed, so that an
 * evaluation is a function of the model and the number of rounds. */
#define LM_EVAL_ROT_SEED 0x5eed0f4a11ull

typedef struct lm_eval_result {
    double bpb, seconds;
    int64_t bytes;
} lm_eval_result;

/* Bits per byte of ids[0 .. n): TXL segment by segment with a memory of
 * mem_len, GPT and Reformer (`rounds`) with the sliding window of `stride`,
 * B windows per forward. 0, or 1 (message printed). */
int lm_eval(attn_ctx *ctx, lm_model *m, int64_t rounds, const int32_t *ids, int64_t n, int64_t segment,
            int64_t mem_len, int64_t stride, int64_t B, lm_eval_result *out);
/* Bits per dimension of images 0 .. n - 1 of px, B per forward (out->bytes
 * counts the pixels). 0, or 1 (message printed). */
int pixel_eval(attn_ctx *ctx, const attn_gpt *g, const lm_pixels *px, int64_t n, int64_t B, lm_eval_result *out);

/* The Reformer paper's task: s = 0 w 0 w, w a random string of N/2 - 1
 * symbols drawn uniformly from 1 .. V-1 (0 is the separator). The model
 * reads s[0 .. N) and position t predicts s[t + 1]; only the second w is
 * scored (t = N/2 .. N-2, targets s[N/2 + 1 .. N)), the rest is ignored
 * (target -1). Training sequences come from (seed, step, row): a resumed
 * run replays them; the held-out ones from a fixed seed of their own
 * (stream 0, index k), the same for every run. */
#define DUP_TRAIN_SALT 0x6475707472616eull
void dup_sequence(uint64_t seed, uint64_t stream, uint64_t index, int64_t N, int64_t V, int32_t *in, int32_t *tg);
typedef struct dup_result {
    double loss, acc, seconds; /* nats and fraction correct per scored symbol */
    int64_t symbols, sequences;
} dup_result;

/* Held-out accuracy and loss of the duplication task's second halves over
 * the first n held-out sequences, B at a time. 0, or 1 (message printed). */
int dup_eval(attn_ctx *ctx, lm_model *m, const lm_info *r, int64_t n, int64_t B, int64_t rounds, dup_result *out);

/* The subcommands of cmd_lm_eval.c and cmd_lm_viz.c. */
int cmd_lm_eval(int argc, char **argv);
int cmd_lm_sample(int argc, char **argv);
int cmd_lm_viz(int argc, char **argv);
int cmd_lm_pattern(int argc, char **argv);

#endif
