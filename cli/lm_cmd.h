/* lm_cmd.h: what the two files of `attn lm` share (private to the CLI):
 * cmd_lm.c (train, eval, sample, the run's metadata, the duplication task)
 * and cmd_lm_viz.c (viz and the pattern pictures). */
#ifndef ATTN_CLI_LM_CMD_H
#define ATTN_CLI_LM_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "attn/attn.h"

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

/* The subcommands of cmd_lm_viz.c. */
int cmd_lm_viz(int argc, char **argv);
int cmd_lm_pattern(int argc, char **argv);

#endif
