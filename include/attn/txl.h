/* attn/txl.h: the Transformer-XL language model (Dai et al. 2019) with
 * segment-level recurrence, and its two variants of issue 14: the adaptive
 * attention span (Sukhbaatar et al. 2019a) and the all-attention layer with
 * persistent vectors (Sukhbaatar et al. 2019b). docs/long_context.md has
 * the math and the conventions.
 *
 * The model (B batch, T segment length, M memory length, V vocabulary,
 * E d_model, H heads of size D, L layers), as Hugging Face's
 * TransfoXLLMHeadModel with pre_lnorm False, div_val 1, no cutoffs, a tied
 * output layer and clamp_len 0:
 *   h_0 = word_emb[ids] * sqrt(E)
 *   for each layer l, with mem_l [B, M, E] (no gradient) and R_x the
 *   sinusoid of distance x ([sin | cos] halves, docs/long_context.md):
 *     c   = [mem_l ; h_l]                         [B, S = M + T, E]
 *     q, k, v = split(c W_qkv^T)  (q from the last T rows)
 *     rk  = R W_r^T                               [S, H D], row x: distance x
 *     a   = txl_attention(q, k, v, rk, u_l, v_l; span, persistent vectors)
 *     h   = LayerNorm(h_l + a W_o^T)
 *     h_{l+1} = LayerNorm(h + W_2 relu(W_1 h + b_1) + b_2)   (skipped: no_ffn)
 *   logits = h_L word_emb^T + out_bias
 *   loss   = mean over the positions with a target of -log softmax(logits)[target]
 * Then mem_l <- the last mem_len rows of [mem_l ; h_l] (values only).
 *
 * Parameter names are Hugging Face's state_dict names, so that a
 * TransfoXLLMHeadModel checkpoint of this shape loads by name:
 *   transformer.word_emb.emb_layers.0.weight [V, E]  (also the output layer)
 *   transformer.layers.<l>.dec_attn.qkv_net.weight [3 H D, E]
 *   transformer.layers.<l>.dec_attn.r_net.weight [H D, E]
 *   transformer.layers.<l>.dec_attn.o_net.weight [E, H D]
 *   transformer.layers.<l>.dec_attn.layer_norm.{weight,bias} [E]
 *   transformer.layers.<l>.dec_attn.r_w_bias, r_r_bias [H, D]   (u and v)
 *   transformer.layers.<l>.pos_ff.CoreNet.0.{weight [F, E], bias [F]}
 *   transformer.layers.<l>.pos_ff.CoreNet.3.{weight [E, F], bias [E]}
 *   transformer.layers.<l>.pos_ff.layer_norm.{weight,bias} [E]
 *   crit.out_layers.0.bias [V]
 * and attn's own, for the variants:
 *   transformer.layers.<l>.dec_attn.span [H]          (adaptive span: p in [0, 1],
 *                                                      z = span_max p keys, as the
 *                                                      published code's current_val)
 *   transformer.layers.<l>.dec_attn.pers_k [H, N, D], pers_v [H, N, D]
 *
 * Errors: graph functions return NULL with the status and message in the
 * context; the others return a status with the message in attn_last_error().
 */
#ifndef ATTN_TXL_H
#define ATTN_TXL_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_txl_config {
    int64_t vocab;      /* V >= 2 */
    int n_layers;       /* L >= 1 */
    int n_heads;        /* H >= 1 */
    int64_t d_head;     /* D >= 1 */
    int64_t d_model;    /* E >= 2, even (the sinusoid's two halves) */
    int64_t d_inner;    /* F >= 1 (ignored with no_ffn) */
    float ln_eps;       /* 0: 1e-5 */
    int no_ffn;         /* all-attention: no feed-forward sublayer */
    int64_t n_persist;  /* N >= 0 persistent key/value vectors per head */
    int pers_scaled;    /* nonzero: the published code's parametrization of the
                           persistent vectors: the parameters hold pk / sqrt(D)
                           and pv / sqrt(N), the forward multiplies them back
                           (so, initialised N(0, 1/sqrt(D)) and N(0, 1/sqrt(N)),
                           the vectors start N(0, 1) and Adam moves them sqrt(D)
                           and sqrt(N) times faster); 0: the parameters are the
                           vectors themselves (files written before this field) */
    float span_max;     /* > 0: adaptive span, each z = span_max p in [0, span_max]; 0: off */
    float span_ramp;    /* R > 0 with a span (0: 32) */
    float span_init;    /* the initial z in keys, in [0, span_max] (p = span_init / span_max) */
    float span_eps;     /* the renormaliser's eps (the published code's 1e-8) */
    int span_no_trim;   /* nonzero: give every layer its whole memory (to check
                           the trimming, which is exact for span_eps 0); not saved */
    int64_t clamp_len;  /* > 0: relative distances above clamp_len use the position
                           row of clamp_len (Transformer-XL's clamp_len, for an
                           evaluation memory longer than the trained distances);
                           0: off */
    float dropout;      /* in [0, 1): in training mode, on the scaled embeddings,
                           each sublayer's output (before the residual sum) and
                           the FFN's hidden layer (Hugging Face's `dropout`; its
                           `dropatt` on the weights is not offered) */
} attn_txl_config;

typedef struct attn_txl_layer {
    attn_tensor *qkv_w, *r_w, *o_w, *ln1_w, *ln1_b, *u, *vb;
    attn_tensor *ff1_w, *ff1_b, *ff2_w, *ff2_b, *ln2_w, *ln2_b; /* NULL with no_ffn */
    attn_tensor *span;           /* [H] or NULL */
    attn_tensor *pers_k, *pers_v; /* [H, N, D] or NULL */
} attn_txl_layer;

typedef struct attn_txl {
    attn_txl_config cfg;  /* resolved */
    attn_params *params;  /* not owned */
    attn_tensor *emb;     /* [V, E], tied output layer */
    attn_tensor *out_b;   /* [V] */
    attn_txl_layer *layers; /* [L], owned */
} attn_txl;

/* Adds the parameters to ps and, with rng non-NULL, initialises them:
 * weights and u, v N(0, 0.02), biases 0, LayerNorm 1 and 0, persistent
 * keys N(0, 1/sqrt(D)) and values N(0, 1/sqrt(N)) (the parameters: with
 * pers_scaled the vectors themselves start N(0, 1)). The spans start at
 * span_init / span_max and LayerNorm weights at 1 with or without rng.
 * Errors: ATTN_ERR_INVALID_ARG (a configuration outside the ranges above),
 * ATTN_ERR_OOM. */
attn_status attn_txl_new(attn_txl **out, attn_params *ps, const attn_txl_config *cfg,
                         attn_rng *rng);
void attn_txl_free(attn_txl *m);

/* The recurrent memory of B sequences: per layer the last `len` (<= mem_len)
 * inputs of that layer, host memory that survives attn_ctx_reset. */
typedef struct attn_txl_memory {
    int64_t B, E, mem_len, len;
    int n_layers;
    float *h; /* [n_layers][B][mem_len][E]; rows 0 .. len-1 used */
} attn_txl_memory;

/* mem_len >= 0 positions kept (it may differ from training: evaluation
 * with a longer memory). zeros nonzero starts with mem_len rows of zeros
 * (Hugging Face's init_mems), else empty (len 0). Errors:
 * ATTN_ERR_INVALID_ARG, ATTN_ERR_OOM. */
attn_status attn_txl_memory_init(attn_txl_memory *mem, const attn_txl *m, int64_t B,
                                 int64_t mem_len, int zeros);
void attn_txl_memory_free(attn_txl_memory *mem);
/* Back to the initial state (zeros or empty as at init). */
void attn_txl_memory_reset(attn_txl_memory *mem, int zeros);

/* Logits [B, T, V] of segment ids i32 [B, T] after the memory; the memory
 * then holds the last mem_len inputs of each layer (mem may be NULL: no
 * memory). With a span, the memory given to layer l is trimmed to its last
 * ceil(max_h z + R) rows (keys farther away have a zero mask for every
 * head; exact for span_eps 0, docs/long_context.md "Trimming" for eps > 0).
 * attn_weights, when not NULL, has n_layers slots that receive each layer's
 * A [B, H, T, S + N] (no gradient). Errors: ATTN_ERR_SHAPE (ids not
 * [B, T], B not the memory's), ATTN_ERR_DTYPE, ATTN_ERR_INVALID_ARG (an id
 * outside [0, V)), ATTN_ERR_OOM, those of the ops. On error the memory is
 * unchanged. */
attn_tensor *attn_txl_logits(attn_ctx *ctx, const attn_txl *m, attn_tensor *ids,
                             attn_txl_memory *mem, attn_tensor **attn_weights);

/* Mean cross entropy of the logits of ids against targets i32 [B, T]
 * (ignore_index left out), and the memory update of attn_txl_logits.
 * *logits_out (may be NULL) receives the logits. */
attn_tensor *attn_txl_loss(attn_ctx *ctx, const attn_txl *m, attn_tensor *ids,
                           attn_tensor *targets, int32_t ignore_index, attn_txl_memory *mem,
                           attn_tensor **logits_out);

/* Adaptive span: coeff * span_max * sum over layers of the mean p of the
 * layer's heads = coeff * sum_l mean_h z (the published code's loss, per
 * layer), a scalar to add to the loss; NULL with an error when the model
 * has no span. */
attn_tensor *attn_txl_span_penalty(attn_ctx *ctx, const attn_txl *m, float coeff);
/* Clamps every p to [0, 1], i.e. z to [0, span_max] (after each optimizer
 * step, as the published code). */
void attn_txl_clamp_spans(attn_txl *m);
/* The memory rows a layer needs: ceil(span_max max_h p + R) (0 without a
 * span: everything). */
int64_t attn_txl_span_window(const attn_txl *m, int layer);

/* ---- evaluation and generation -------------------------------------------------- */

/* Reads ids[0 .. n) (n >= 2) as one long text, segment by segment (seg_len
 * ids each, the last one shorter), with a memory of mem_len positions that
 * starts empty: the target of position i is ids[i + 1], across segment
 * boundaries, so every id but the first is predicted exactly once. Adds the
 * negative log-likelihood (nats, summed in double) to *nll and the number
 * of predictions (n - 1) to *count; bits per id = nll / count / ln 2. The
 * context is rewound to its mark between segments and gradients are off
 * during the call. Errors: ATTN_ERR_INVALID_ARG (NULL, n < 2, seg_len < 1,
 * mem_len < 0, an id outside [0, V)), ATTN_ERR_OOM, those of the forward. */
attn_status attn_txl_eval_stream(attn_ctx *ctx, const attn_txl *m, const int32_t *ids, int64_t n,
                                 int64_t seg_len, int64_t mem_len, double *nll, int64_t *count);
/* The same reading, each prediction's loss kept: losses[i] (n - 1 of them)
 * is the negative log-likelihood (nats) of ids[i + 1], so their sum is
 * attn_txl_eval_stream's nll (the paired comparison of two memories, byte
 * by byte, needs them); after a failure its contents are undefined. Errors as
 * attn_txl_eval_stream, and ATTN_ERR_INVALID_ARG for a NULL losses. */
attn_status attn_txl_eval_stream_losses(attn_ctx *ctx, const attn_txl *m, const int32_t *ids, int64_t n,
                                        int64_t seg_len, int64_t mem_len, double *losses);

/* Generates n_new ids after prompt[0 .. n_prompt) with the memory cache:
 * the prompt in one forward, then one id per forward; the memory keeps the
 * last mem_len positions of every layer (so each new id sees mem_len + 1
 * positions, at the relative distances it was trained on). Draws as
 * attn_sample_token (gpt.h) with attn_rng_uniform(opts->seed, 0, i) for
 * draw i (opts NULL: temperature 1). Errors as attn_txl_eval_stream. */
struct attn_sample_opts;
attn_status attn_txl_generate(attn_ctx *ctx, const attn_txl *m, const int32_t *prompt,
                              int64_t n_prompt, int64_t n_new, int64_t mem_len,
                              const struct attn_sample_opts *opts, int32_t *out);

/* ---- files --------------------------------------------------------------------------- */

/* Configuration metadata: "txl.vocab", "txl.n_layers", "txl.n_heads",
 * "txl.d_head", "txl.d_model", "txl.d_inner", "txl.ln_eps", "txl.no_ffn",
 * "txl.n_persist", "txl.span_max", "txl.span_ramp", "txl.span_init",
 * "txl.span_eps", "txl.dropout", "txl.pers_scaled", "txl.clamp_len" into
 * kv[0 .. ATTN_TXL_META), the values in buf (ATTN_TXL_META * 32 bytes). The
 * last two are optional when read (a file without them reads 0). */
#define ATTN_TXL_META 16
void attn_txl_config_meta(const attn_txl_config *cfg, attn_kv *kv, char *buf);
/* Reads a configuration from a safetensors file's metadata. Errors: those of
 * attn_safetensors_open, ATTN_ERR_FORMAT (an entry missing or malformed). */
attn_status attn_txl_config_load(const char *path, attn_txl_config *cfg);
/* Saves the parameters with the configuration and n_meta extra entries. */
attn_status attn_txl_save(const char *path, const attn_txl *m, const attn_kv *meta, int n_meta);
/* A model from a file of attn_txl_save or a checkpoint of one (parameters
 * loaded into ps). Errors: those of attn_txl_config_load, attn_txl_new,
 * attn_safetensors_load_params; ATTN_ERR_FORMAT / ATTN_ERR_SHAPE when the
 * file's tensors do not match its metadata. */
attn_status attn_txl_load(const char *path, attn_params *ps, attn_txl **out);

#ifdef __cplusplus
}
#endif
#endif
