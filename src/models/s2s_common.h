/* s2s_common.h (private): what the encoder-decoder models share (seq2seq.c:
 * the RNN translator; transformer_s2s.c: the Transformer): the checks of an
 * attn_s2s_batch, and the beam search bookkeeping. A model runs its decoder on N = B * k rows (k hypotheses per
 * sentence), hands each step's log-probabilities [N, V] to attn__beam_step,
 * reorders whatever state survives the step by bm->parent, feeds bm->next as
 * the next input tokens, and finally reads the best hypothesis of every
 * sentence with attn__beam_finish.
 *
 * Scores: a hypothesis of n tokens (eos included) scores
 * sum log p / n^alpha (alpha 0: the raw sum). Per sentence and step, every
 * live unfinished hypothesis offers each token other than pad (and bos,
 * unless it is also eos), finished hypotheses offer themselves unchanged,
 * and the k best candidates survive; a candidate displaces another only when
 * strictly better, so ties keep the one offered first (lower row, then lower
 * token). A sentence stops when its k survivors have all ended with eos.
 * With k = 1 this is greedy decoding (the argmax, first on ties). The k rows
 * of a sentence start identical, so only the first is live at step 0.
 *
 * Everything lives in the context's arena, allocated by attn__beam_init
 * (call it before the model takes the arena mark it rewinds to each step).
 */
#ifndef ATTN_MODELS_S2S_COMMON_H
#define ATTN_MODELS_S2S_COMMON_H

#include <stdint.h>

#include "../core/internal.h"
#include "attn/s2s_types.h"

/* Validates the source half of a batch (and the target half when
 * `targets`): src I32 [B, S], src_len I32 [B], tgt_in and tgt_out I32 [B, T];
 * sets B, S, T (T = 0 without targets). m is the model (only checked for
 * NULL). Returns 0, or -1 with the error recorded in ctx naming fn. */
int attn__s2s_check_batch(attn_ctx *ctx, const void *m, const attn_s2s_batch *batch, int targets,
                          const char *fn, int64_t *B, int64_t *S, int64_t *T);

/* src_len's values as a contiguous array, each checked to be in [1, S];
 * NULL with the error recorded. */
const int32_t *attn__s2s_lengths(attn_ctx *ctx, attn_tensor *len, int64_t S, const char *fn);

typedef struct attn__beam_hyp {
    double raw, norm; /* sum of log p; raw / len^alpha */
    int32_t len;      /* tokens so far (eos included when fin) */
    int32_t fin;      /* ended with eos */
    int32_t dead;     /* no hypothesis in this row */
} attn__beam_hyp;

typedef struct attn__beam_cand {
    double norm, raw;
    int32_t parent, token, len, fin;
} attn__beam_cand;

typedef struct attn__beam {
    int64_t B, N, max_len, W; /* sentences, rows, steps at most, floats per row kept per step */
    int k;
    double alpha;
    int32_t pad_id, bos_id, eos_id;
    int64_t steps;            /* steps taken */
    int32_t *tok, *par;       /* [max_len, N]: token chosen (-1: none), row extended */
    float *hist;              /* [max_len, N, W] when W > 0: the rows given to step */
    attn__beam_hyp *hyp;      /* [N] */
    attn__beam_cand *top;     /* [k] */
    uint8_t *done;            /* [B] */
    int32_t *parent;          /* [N]: after a step, row i continues row parent[i] */
    int32_t *next;            /* [N]: after a step, the next input token of row i */
} attn__beam;

/* Allocates the bookkeeping in ctx's arena for B sentences, width k, at most
 * max_len steps, keeping W floats per row and step (0: none). next starts as
 * bos_id everywhere. Returns 0, or -1 with the error in ctx (OOM or an
 * overflowing size, named by fn). */
int attn__beam_init(attn_ctx *ctx, attn__beam *bm, int64_t B, int k, int64_t max_len, int64_t W,
                    double alpha, int32_t pad_id, int32_t bos_id, int32_t eos_id, const char *fn);

/* Step t (0-based, in order): lp [N, V] log-probabilities of row i's next
 * token; rows [N, W] (W > 0) the floats kept with the step (attention
 * weights). Sets parent and next. Returns 1 when decoding is over (every
 * sentence stopped, or t is the last step), else 0. */
int attn__beam_step(attn__beam *bm, int64_t t, const float *lp, int64_t V, const float *rows);

/* The best hypothesis of every sentence: out_ids [B * max_len] (eos
 * excluded, pad_id after), out_len [B]; rows, when not NULL,
 * [B * max_len * W] the kept floats of the step that emitted each output
 * token (the eos step included when it fits), zeros after. */
void attn__beam_finish(const attn__beam *bm, int32_t *out_ids, int32_t *out_len, float *rows);

#endif
