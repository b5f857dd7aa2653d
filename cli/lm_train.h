/* lm_train.h: what cli/cmd_lm.c (the options of `attn lm train`) and
 * cli/lm_train_task.c (its task on the training driver) share. Private to
 * the CLI. */
#ifndef ATTN_CLI_LM_TRAIN_H
#define ATTN_CLI_LM_TRAIN_H

#include <stdint.h>

#include "attn/attn.h"
#include "lm_cmd.h"
#include "lm_pixels.h"
#include "train_driver.h"

/* The state of a training run. */
typedef struct lm_train {
    lm_info r;
    lm_model m;
    lm_pixels ptr, pva; /* --pixels: the train and valid images */
    int32_t *tr, *va;
    int64_t n_tr, n_va, B, T;
    int64_t stream_len, n_seg; /* txl, --run-segments 0: bytes and segments per stream */
    int64_t eval_n, eval_stride, final_eval_n;
    int64_t mem_step;          /* txl: the step whose segment the memory follows (-1: none) */
    attn_txl_memory mem;
    int32_t *bin, *btg;
    int64_t log_every;
    lm_meta meta;
    int dup; /* --data dup */
} lm_train;

/* The driver's families: every architecture but the Reformer, whose step
 * runs the reversible backward itself. */
extern const train_family lm_family;
extern const train_family reformer_family;

#endif
