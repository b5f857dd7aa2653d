/* attn/reformer_lm.h: the Reformer language model (Kitaev et al. 2020):
 * shared query-key LSH attention (attn/reformer.h) in reversible residual
 * layers (attn/reversible.h), a chunked feed-forward and a chunked output
 * layer and loss. src/models/reformer_lm.c; docs/reformer.md has the math.
 *
 * The graph of one batch (B rows, T <= ctx_len positions), causal:
 *   X  = dropout(tok_emb[ids] + pos_emb[0 .. T))                  [B, T, E]
 *        (or + the sinusoidal table: config.sinusoidal; or no absolute
 *        positions with config.rope 1). With config.rope 1 or 2 the shared
 *        query-keys of every layer are rotated, qk_t <- RoPE_t(qk_t) on
 *        config.rope_dims dims of a head, before the LSH op hashes them, so
 *        the logits see relative positions (rope 2 keeps the table too)
 *   (Y1, Y2) = (X, X); for each layer l:
 *     Y1 = Y1 + F_l(Y2)   F: dropout(out(LSH(LN(.) W_qk, LN(.) W_v)))
 *     Y2 = Y2 + G_l(Y1)   G: dropout(W2 gelu(W1 LN(.) + b1) + b2), applied to
 *                            chunks of ff_chunk positions
 *   logits = head(LN([Y1 ; Y2]))                                  [B, T, V]
 * The LSH rotations of layer l are drawn from a seed the caller gives per
 * call (attn_reformer_lm_run.seed): training draws fresh ones each step,
 * evaluation a fixed one. The number of hashing rounds is a run setting
 * too (a model trained with 2 rounds can be evaluated with 8).
 *
 * Training (attn_reformer_lm_train_step) never records the stack on the
 * tape: the forward keeps only (Y1, Y2), the output layer and its loss run
 * chunk by chunk (out_chunk positions, each backpropagated at once), and the
 * stack's backward recomputes each layer's inputs from its outputs
 * (attn_rev_backward; the buckets of the forward are reused).
 * attn_reformer_lm_loss records the same function non-reversibly on the tape
 * (the reference the test compares the reversible gradients with).
 */
#ifndef ATTN_REFORMER_LM_H
#define ATTN_REFORMER_LM_H

#include <stdint.h>

#include "context.h"
#include "gpt.h"
#include "params.h"
#include "reversible.h"
#include "rng.h"
#include "safetensors.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_reformer_lm_config {
    int64_t vocab;     /* V >= 2 */
    int64_t ctx_len;   /* the longest sequence (learned positions) */
    int64_t d_model;   /* E, a multiple of n_heads */
    int64_t d_ff;      /* feed-forward width (0: 4 E) */
    int n_layers, n_heads;
    int n_hashes;      /* training rounds R >= 1 */
    int n_buckets;     /* NB >= 2, even */
    int64_t chunk_len; /* LSH chunk length L >= 1 */
    int64_t ff_chunk;  /* positions per feed-forward chunk (>= 1) */
    int64_t out_chunk; /* positions per output-layer chunk (>= 1) */
    float dropout;     /* in [0, 1) */
    int sinusoidal;    /* 0: learned positions (pos_emb [ctx_len, E]); 1: the fixed sinusoidal table */
    int rope;          /* rotary embeddings of the shared query-keys (per head, before hashing:
                          docs/reformer.md section 4). 0: none; 1: rotary and NO absolute
                          positions (excludes sinusoidal); 2: rotary AND the absolute table
                          (learned, or sinusoidal) */
    float rope_theta;  /* the rotary base (0: 10000) */
    int64_t rope_dims; /* leading dims of each head that rotate (even, <= d_model / heads; 0: all),
                          the others pass unrotated (position-free) */
} attn_reformer_lm_config;

#define ATTN_REFORMER_LM_W 11 /* tensors per layer */

typedef struct attn_reformer_lm {
    attn_reformer_lm_config cfg;
    attn_params *params;
    attn_tensor *tok_emb, *pos_emb;   /* [V, E], [ctx_len, E] */
    attn_tensor **w;                  /* [n_layers][ATTN_REFORMER_LM_W] */
    attn_tensor *norm_w, *norm_b;     /* [2E] */
    attn_tensor *head_w, *head_b;     /* [V, 2E], [V] */
    /* the state of the call in progress (set by the functions below) */
    attn_rev_stack stack;
    int run_hashes;
    uint64_t run_seed;
    int bucket_mode; /* 0 hash, 1 hash and keep, 2 reuse the kept buckets */
    int64_t run_B, run_T;
    int32_t *buckets;
    size_t buckets_cap;
} attn_reformer_lm;

/* What a call may change without changing the model. */
typedef struct attn_reformer_lm_run {
    int n_hashes;  /* 0: the configuration's */
    uint64_t seed; /* the rotations of layer l come from attn_lsh_rotations(seed mixed with l) */
} attn_reformer_lm_run;

/* Builds the model, its tensors added to ps ("tok_emb.weight",
 * "pos_emb.weight", "layers.<l>.<name>", "norm_f.*", "head.*"), initialised
 * from rng (N(0, 0.02), the residual outputs scaled by 1/sqrt(2 L), norms 1,
 * biases 0) unless rng is NULL. Errors: ATTN_ERR_INVALID_ARG (a size out of
 * range, NB odd, dropout outside [0, 1)), ATTN_ERR_OOM. */
attn_status attn_reformer_lm_new(attn_reformer_lm **out, attn_params *ps, const attn_reformer_lm_config *cfg,
                                 attn_rng *rng);
void attn_reformer_lm_free(attn_reformer_lm *m);

/* One training step's forward and backward of ids, targets [B * T] (I32,
 * host; T <= ctx_len): accumulates every parameter's gradient of the mean
 * cross-entropy over the targets other than `ignore` (0 when all are) and
 * writes that loss to *loss and the number of counted targets to *count
 * (either may be NULL). Needs gradients enabled; leaves the tape empty.
 * Errors: ATTN_ERR_INVALID_ARG (sizes, an id or target out of range),
 * ATTN_ERR_OOM, those of the ops. */
attn_status attn_reformer_lm_train_step(attn_ctx *ctx, attn_reformer_lm *m, const int32_t *ids,
                                        const int32_t *targets, int64_t B, int64_t T, int32_t ignore,
                                        const attn_reformer_lm_run *run, double *loss, int64_t *count);

/* The same loss recorded non-reversibly on the tape (a scalar; the stack and
 * the output layer are not chunked apart from the feed-forward): attn_backward
 * of it gives the gradients attn_reformer_lm_train_step accumulates. NULL on
 * error. */
attn_tensor *attn_reformer_lm_loss(attn_ctx *ctx, attn_reformer_lm *m, attn_tensor *ids, attn_tensor *targets,
                                   int32_t ignore, const attn_reformer_lm_run *run);

/* Logits [B, T, V] of ids [B, T] (I32), computed without gradients through
 * the reversible forward (one layer's activations at a time). NULL on error. */
attn_tensor *attn_reformer_lm_logits(attn_ctx *ctx, attn_reformer_lm *m, attn_tensor *ids,
                                     const attn_reformer_lm_run *run);

/* Generates n_new ids after prompt[0 .. n_prompt) (n_prompt >= 1): each
 * draw recomputes the last ctx_len positions (no cache), sampled as
 * attn_sample_token with attn_rng_uniform(opts->seed, 0, i). The context is
 * reset between draws, gradients off (restored). Errors: ATTN_ERR_INVALID_ARG,
 * ATTN_ERR_OOM, those of attn_reformer_lm_logits. */
attn_status attn_reformer_lm_generate(attn_ctx *ctx, attn_reformer_lm *m, const int32_t *prompt,
                                      int64_t n_prompt, int64_t n_new, const attn_sample_opts *opts,
                                      const attn_reformer_lm_run *run, int32_t *out);

/* The configuration as metadata entries "reformer.vocab" .. "reformer.rope_dims"
 * in kv[0 .. ATTN_REFORMER_LM_META), value strings in buf (32 bytes each).
 * "reformer.sinusoidal", "reformer.rope", "reformer.rope_theta", "reformer.rope_dims" are
 * optional when read: files written before them load as learned positions. */
#define ATTN_REFORMER_LM_META 16
void attn_reformer_lm_config_meta(const attn_reformer_lm_config *cfg, attn_kv *kv, char *buf);

/* Builds the model of a checkpoint's metadata and loads its tensors into ps.
 * Errors: those of attn_safetensors_open, ATTN_ERR_FORMAT, ATTN_ERR_SHAPE,
 * ATTN_ERR_INVALID_ARG (a configuration out of range). */
attn_status attn_reformer_lm_load(const char *path, attn_params *ps, attn_reformer_lm **out);

#ifdef __cplusplus
}
#endif
#endif
