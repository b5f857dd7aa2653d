/* attn/wavenet.h: a WaveNet-style causal dilated convolution language model
 * over bytes or characters, its training loss, and incremental generation
 * with per-layer queues. docs/wavenet.md has the math, the receptive field,
 * the backward and the generation.
 *
 * The model (B batch, T positions, V vocabulary, R residual channels, D gate
 * channels, S skip channels, H head channels, K kernel size, L layers):
 *   x_0 = embed[ids]^T                               [B, R, T]
 *   layer l (dilation d_l = 2^(l mod layers_per_block)):
 *     f = conv1d_causal(x_l, W_f, b_f, d_l)          [B, D, T]
 *     g = conv1d_causal(x_l, W_g, b_g, d_l)          [B, D, T]
 *     h = tanh(f) * sigmoid(g)                        (gated unit)
 *     s = s + W_skip h + b_skip                       (1x1, [B, S, T])
 *     x_{l+1} = x_l + W_res h + b_res                 (1x1; not in the last layer)
 *   logits = W_2 relu(W_1 relu(s) + b_1) + b_2        (1x1 convs, [B, T, V])
 *   loss = mean over the scored positions of -log softmax(logits)[target]
 * conv1d_causal pads the sequence on the left only, by d (K - 1) zeros
 * (conv.h), so the output at t depends on inputs t' <= t only. Receptive
 * field (inputs that reach one output): 1 + (K - 1) sum_l d_l
 *   = 1 + (K - 1) n_blocks (2^layers_per_block - 1).
 *
 * Parameter names (the order attn_wavenet_new adds them):
 *   embed.weight [V, R];
 *   layers.<l>.filter.weight [D, R, K], layers.<l>.filter.bias [D],
 *   layers.<l>.gate.weight [D, R, K], layers.<l>.gate.bias [D],
 *   layers.<l>.skip.weight [S, D, 1], layers.<l>.skip.bias [S],
 *   layers.<l>.residual.weight [R, D, 1], layers.<l>.residual.bias [R]
 *     (every layer but the last: its residual output would feed nothing);
 *   head1.weight [H, S, 1], head1.bias [H], head2.weight [V, H, 1], head2.bias [V].
 *
 * Initialisation (rng non-NULL): embed N(0, 1); every conv weight
 * N(0, 1 / sqrt(fan_in)) (fan_in = in channels x K), head1 with the ReLU
 * gain sqrt(2 / fan_in); biases 0.
 *
 * Errors follow ops.h: graph functions return NULL with the status and a
 * message in the context; other functions return a status with the message
 * in attn_last_error(). Nothing prints. Results repeat bitwise for a given
 * thread count (the conv op's GEMM); the incremental step is single-threaded.
 */
#ifndef ATTN_WAVENET_H
#define ATTN_WAVENET_H

#include <stdint.h>

#include "context.h"
#include "gpt.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_wavenet_config {
    int64_t vocab;         /* V >= 2 */
    int64_t res_channels;  /* R >= 1 */
    int64_t gate_channels; /* D >= 1 (the "dilation channels") */
    int64_t skip_channels; /* S >= 1 */
    int64_t head_channels; /* H; 0: S */
    int kernel;            /* K, 2 .. 16 (WaveNet's 2) */
    int layers_per_block;  /* 1 .. 20: dilations 1, 2, ..., 2^(layers_per_block - 1) */
    int n_blocks;          /* 1 .. 64: the dilation cycle repeated */
} attn_wavenet_config;

typedef struct attn_wavenet_layer {
    int64_t dilation;
    attn_tensor *filter_w, *filter_b, *gate_w, *gate_b; /* [D, R, K], [D] */
    attn_tensor *skip_w, *skip_b;                       /* [S, D, 1], [S] */
    attn_tensor *res_w, *res_b;                         /* [R, D, 1], [R]; NULL in the last layer */
} attn_wavenet_layer;

typedef struct attn_wavenet {
    attn_wavenet_config cfg;  /* resolved (head_channels filled in) */
    attn_params *params;      /* the store given to attn_wavenet_new (not owned) */
    int n_layers;             /* layers_per_block x n_blocks */
    attn_tensor *embed;       /* [V, R] */
    attn_wavenet_layer *layers; /* [n_layers], owned */
    attn_tensor *head1_w, *head1_b, *head2_w, *head2_b;
} attn_wavenet;

/* The receptive field of a configuration, 1 + (K - 1) n_blocks
 * (2^layers_per_block - 1); 0 for NULL. */
int64_t attn_wavenet_receptive_field(const attn_wavenet_config *cfg);

/* Adds the model's parameters to `ps` (names above) and, with rng non-NULL,
 * initialises them (rng NULL leaves zeros, to be loaded). Errors:
 * ATTN_ERR_INVALID_ARG (NULL, a configuration outside the ranges above),
 * ATTN_ERR_OOM. On error *out is NULL (parameters added so far stay in the
 * store). */
attn_status attn_wavenet_new(attn_wavenet **out, attn_params *ps, const attn_wavenet_config *cfg,
                             attn_rng *rng);
void attn_wavenet_free(attn_wavenet *m); /* NULL is fine; the store is the caller's */

/* Logits of the last n_last positions: ids i32 [B, T] (each in [0, V)),
 * 1 <= n_last <= T -> [B, n_last, V]. Every layer runs over all T positions
 * (the first T - n_last give the later ones their context); only the head
 * runs on the last n_last. Errors: ATTN_ERR_SHAPE (ids not [B, T], n_last
 * outside [1, T]), ATTN_ERR_DTYPE, ATTN_ERR_INVALID_ARG (an id outside
 * [0, V), a NULL model), those of the ops. */
attn_tensor *attn_wavenet_logits(attn_ctx *ctx, const attn_wavenet *m, attn_tensor *ids,
                                 int64_t n_last);

/* Teacher-forced loss: mean cross-entropy of the logits of the last N
 * positions of ids [B, T] against targets i32 [B, N] (N <= T; targets
 * equal to ignore_index are left out; pass -1 when every target counts).
 * targets[b, j] is the id that follows ids[b, T - N + j]. Errors as
 * attn_wavenet_logits, and ATTN_ERR_SHAPE for targets of another batch or
 * N > T. */
attn_tensor *attn_wavenet_loss(attn_ctx *ctx, const attn_wavenet *m, attn_tensor *ids,
                               attn_tensor *targets, int32_t ignore_index);

/* ---- incremental generation ---------------------------------------------------- */

/* The fast incremental form: layer l keeps a queue of its last
 * (K - 1) d_l inputs (R values each; zeros at the start, as the causal
 * padding), so one step costs one column of every conv, independent of the
 * receptive field. */
typedef struct attn_wavenet_state {
    int64_t pos;      /* tokens read so far */
    int n_layers;
    int64_t width;    /* R */
    int64_t *qlen;    /* [n_layers]: (K - 1) d_l */
    float **queue;    /* [n_layers] ring buffers of qlen[l] x R floats */
    float *work;      /* scratch: x, f, g, h, skip, head */
} attn_wavenet_state;

/* Allocates a state for one sequence (empty: pos 0, queues zero). Free with
 * attn_wavenet_state_free. Errors: ATTN_ERR_INVALID_ARG (NULL), ATTN_ERR_OOM. */
attn_status attn_wavenet_state_init(const attn_wavenet *m, attn_wavenet_state *s);
void attn_wavenet_state_free(attn_wavenet_state *s); /* safe on a zeroed or freed state */
void attn_wavenet_state_reset(attn_wavenet_state *s); /* back to pos 0, queues zero */

/* Reads token `tok` at position s->pos and writes the V logits of the next
 * token to logits (equal, up to float rounding, to row pos of
 * attn_wavenet_logits over the whole sequence). Errors: ATTN_ERR_INVALID_ARG
 * (NULL, tok outside [0, V), a state of another model). */
attn_status attn_wavenet_step(const attn_wavenet *m, attn_wavenet_state *s, int32_t tok,
                              float *logits);

/* Generates n_new tokens after prompt[0 .. n_prompt-1] (n_prompt >= 1) with
 * the incremental form (no context limit: the queues only ever hold the
 * receptive field). Sampling as attn_sample_token (gpt.h): draw i uses
 * attn_rng_uniform(opts->seed, 0, i). out receives n_new ids; step_logits,
 * when not NULL, the n_new rows of V logits the draws came from. on_token
 * (may be NULL) sees each token as it is drawn and stops the generation by
 * returning non-zero; *n_done (may be NULL) receives the tokens written.
 * Errors: ATTN_ERR_INVALID_ARG (NULL, n_prompt < 1, n_new < 0, a prompt id
 * outside [0, V)), ATTN_ERR_OOM. */
attn_status attn_wavenet_generate(const attn_wavenet *m, const int32_t *prompt, int64_t n_prompt,
                                  int64_t n_new, const attn_sample_opts *opts, int32_t *out,
                                  float *step_logits, attn_gpt_token_fn on_token, void *user,
                                  int64_t *n_done);

/* ---- files ----------------------------------------------------------------------------- */

/* Writes the configuration as metadata entries "wavenet.vocab",
 * "wavenet.res_channels", "wavenet.gate_channels", "wavenet.skip_channels",
 * "wavenet.head_channels", "wavenet.kernel", "wavenet.layers_per_block",
 * "wavenet.n_blocks" into kv[0 .. 7] (ATTN_WAVENET_META entries), whose value
 * strings live in buf (ATTN_WAVENET_META * 32 bytes). */
#define ATTN_WAVENET_META 8
void attn_wavenet_config_meta(const attn_wavenet_config *cfg, attn_kv *kv, char *buf);

/* Reads a configuration from the metadata of a safetensors file. Errors:
 * those of attn_safetensors_open, ATTN_ERR_FORMAT (an entry missing or
 * malformed). */
attn_status attn_wavenet_config_load(const char *path, attn_wavenet_config *cfg);

/* Saves the parameters with the configuration and the n_meta (0 .. 64)
 * extra entries in the metadata. */
attn_status attn_wavenet_save(const char *path, const attn_wavenet *m, const attn_kv *meta,
                              int n_meta);

/* Builds a model from a file written by attn_wavenet_save or a checkpoint of
 * one: configuration from the metadata (checked against the file's tensors
 * before anything is built), parameters loaded into a new model in `ps`
 * (optimizer tensors of a checkpoint are ignored). Errors: those of
 * attn_wavenet_config_load, ATTN_ERR_INVALID_ARG (a configuration out of
 * range), ATTN_ERR_SHAPE / ATTN_ERR_FORMAT (tensors that do not match it),
 * those of attn_safetensors_load_params. */
attn_status attn_wavenet_load(const char *path, attn_params *ps, attn_wavenet **out);

#ifdef __cplusplus
}
#endif
#endif
