/* attn/gpt.h: a decoder-only Transformer language model (GPT), its training
 * loss, and generation with a KV cache. docs/gpt.md has the model,
 * the data and the commands.
 *
 * The model (B batch, T positions, V vocabulary, E d_model, L layers):
 *   x_0 = tok_emb[ids] (+ pos_emb[t] for LEARNED, + PE(t) for SINUSOIDAL)
 *   x_0 = Dropout(x_0)
 *   x_l = Block_l(x_{l-1})   pre-LN causal blocks of transformer.h:
 *         x = x + Drop(SelfAttn(LN1(x)));  x = x + Drop(FF(LN2(x))),
 *         FF(x) = linear2(Drop(GELU(linear1(x)))) (GELU in its erf form);
 *         ROPE and ALIBI act inside the attention
 *   logits = LN_f(x_L) W^T,  W = tok_emb (tied head) or head.weight [V, E]
 *   loss = mean over the B T positions of -log softmax(logits)[target]
 *
 * Parameter names (the order attn_gpt_new adds them; torch's names, see
 * tools/gpt_torch_model.py):
 *   tok_emb.weight [V, E]; pos_emb.weight [ctx_len, E] (LEARNED only);
 *   layers.<l>.self_attn.in_proj_weight ... layers.<l>.norm2.bias (the
 *   names of torch.nn.TransformerEncoderLayer, transformer.h);
 *   norm_f.weight, norm_f.bias [E]; head.weight [V, E] (untied only).
 *
 * Initialisation (GPT-2): weights and embeddings N(0, 0.02); the residual
 * projections (self_attn.out_proj.weight, linear2.weight) N(0, 0.02 /
 * sqrt(2 L)); biases 0; LayerNorm weights 1, biases 0.
 *
 * Errors follow ops.h: graph functions return NULL with the status and a
 * message in the context; other functions return a status with the message
 * in attn_last_error(). Nothing prints. Results repeat bitwise for a given
 * thread count.
 */
#ifndef ATTN_GPT_H
#define ATTN_GPT_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "status.h"
#include "tensor.h"
#include "safetensors.h"
#include "routing.h"
#include "sinkhorn.h"
#include "synthesizer.h"
#include "sparse.h"
#include "transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_gpt_config {
    int64_t vocab;     /* V >= 2 */
    int64_t ctx_len;   /* the longest sequence the model reads (>= 1); the
                          rows of pos_emb and the length of a KV cache */
    int n_layers;      /* L >= 1 */
    int n_heads;       /* H >= 1, divides d_model */
    int n_kv_heads;    /* 0: n_heads; else divides n_heads (grouped-query) */
    int64_t d_model;   /* E */
    int64_t d_ff;      /* 0: 4 E */
    float dropout;     /* in [0, 1): embeddings, attention weights, FF hidden,
                          residual branches, in training mode */
    attn_pos_kind pos; /* LEARNED, SINUSOIDAL, ROPE, ALIBI, or NONE */
    int tied;          /* nonzero: the output head is tok_emb.weight */
    float rope_theta;  /* ROPE base; 0: 10000 */
    attn_attention_kernel kernel; /* the attention op: 0 AUTO (fused from
                                     ATTN_FUSED_MIN_KEYS keys), FUSED or REFERENCE
                                     (transformer.h) */
    unsigned synth;    /* 0: each block mixes tokens by multi-head attention;
                          else a set of ATTN_SYNTH_* bits: a causal synthesizer
                          (synthesizer.h) with max_len ctx_len, n_heads heads and
                          these components, parameters layers.<l>.self_attn.*
                          under synthesizer.h's names; no KV cache (generation
                          recomputes the window) */
    int synth_fixed;   /* synth: the random matrices are not trained */
    int mixer;         /* ATTN_GPT_MIXER_*: 0 (ATTENTION) is the blocks' own
                          multi-head attention; SINKHORN and SORTCUT a causal
                          sinkhorn.h block (block size mixer_block, 0: 16;
                          SortCut blocks mixer_n, 0: 2), ROUTING a causal
                          routing.h block (mixer_n clusters, 0: 4; window
                          mixer_block, 0: ctx_len / clusters; n_heads / 2
                          local heads of the same window), parameters
                          layers.<l>.self_attn.* under their names, the
                          routing centroids included; no KV cache; excludes
                          synth */
    int64_t mixer_block;
    int mixer_n;
    attn_sparse_pattern sparse; /* kind 0: every block attends to its whole
                                   causal window; else a block-sparse pattern
                                   (sparse.h, docs/sparse.md) given to every
                                   block's self-attention (attn_mha_call.sparse),
                                   on top of the causal mask; the fused and
                                   the reference kernels compute the same
                                   function. Not with synth. */
    int sparse_by_layer; /* STRIDED or FIXED only: the factorisation over
                            layers: even layers use component A only, odd
                            layers B only (sparse.heads is then ignored);
                            0: sparse.heads as given (e.g. ALTERNATE, the
                            factorisation over heads) */
} attn_gpt_config;

/* The token mixers of attn_gpt_config.mixer. */
enum {
    ATTN_GPT_MIXER_ATTENTION = 0,
    ATTN_GPT_MIXER_SINKHORN = 1,
    ATTN_GPT_MIXER_SORTCUT = 2,
    ATTN_GPT_MIXER_ROUTING = 3
};

typedef struct attn_gpt {
    attn_gpt_config cfg;     /* resolved (d_ff, n_kv_heads filled in) */
    attn_params *params;     /* the store given to attn_gpt_new (not owned) */
    attn_tensor *tok_emb;    /* [V, E] */
    attn_tensor *pos_emb;    /* [ctx_len, E] or NULL */
    attn_block *blocks;      /* [L], owned */
    attn_synthesizer *synth; /* [L], owned, with cfg.synth; else NULL */
    attn_sinkhorn *sink;     /* [L], owned, with mixer SINKHORN or SORTCUT */
    attn_routing *route;     /* [L], owned, with mixer ROUTING */
    attn_tensor *norm_f_w, *norm_f_b; /* [E] */
    attn_tensor *head;       /* [V, E]; tok_emb when tied */
} attn_gpt;

/* The mixer's name ("attention", "sinkhorn", "sortcut", "routing"; else
 * "unknown") and the mixer of a name (-1 for none). */
const char *attn_gpt_mixer_name(int mixer);
int attn_gpt_mixer_parse(const char *s);

/* Adds the model's parameters to `ps` (names above) and, with rng non-NULL,
 * initialises them as GPT-2 (rng NULL leaves zeros, to be loaded). Errors:
 * ATTN_ERR_INVALID_ARG (NULL, a configuration outside the ranges above, a
 * position kind SHAW or unknown), those of attn_block_init, ATTN_ERR_OOM.
 * On error *out is NULL (parameters added so far stay in the store). */
attn_status attn_gpt_new(attn_gpt **out, attn_params *ps, const attn_gpt_config *cfg,
                         attn_rng *rng);
void attn_gpt_free(attn_gpt *m); /* NULL is fine; the store is the caller's */

/* Logits of every position: ids i32 [B, T] (each in [0, V)) -> [B, T, V].
 * Without a cache, T <= ctx_len and positions are 0 .. T-1. With a cache
 * (from attn_gpt_cache_init; gradients must be off), the ids continue the
 * cached sequence: positions cache_len .. cache_len + T - 1, which must stay
 * below ctx_len; the cache then holds T more positions.
 * Errors: ATTN_ERR_SHAPE (ids not [B, T], T > ctx_len or past the cache's
 * room), ATTN_ERR_DTYPE, ATTN_ERR_INVALID_ARG (an id outside [0, V)),
 * ATTN_ERR_STATE (a cache with gradients enabled), those of the blocks. */
attn_tensor *attn_gpt_logits(attn_ctx *ctx, const attn_gpt *m, attn_tensor *ids,
                             attn_kv_cache *cache);

/* attn_gpt_logits, and the self-attention probabilities of every layer:
 * self_weights, when not NULL, is an array of n_layers slots; slot l
 * receives layer l's weights [B, H, T, S] before dropout (no gradient; S =
 * cache_len + T with a cache, else T). Row t of a head sums to 1 over keys
 * 0 .. pos(t) and is exactly 0 above them (causal), so a picture of the map
 * has an empty upper triangle. The slots are set to NULL first, so on error
 * they are NULL or tensors of layers that ran. The tensors live in the
 * context's arena until the next attn_ctx_reset. Errors as attn_gpt_logits. */
attn_tensor *attn_gpt_logits_ex(attn_ctx *ctx, const attn_gpt *m, attn_tensor *ids,
                                attn_kv_cache *cache, attn_tensor **self_weights);

/* Teacher-forced loss: mean cross-entropy of logits(ids) [B, T, V] against
 * targets i32 [B, T] (targets equal to ignore_index are left out; pass -1
 * when every target counts). Returns the scalar loss. Errors as
 * attn_gpt_logits, and ATTN_ERR_SHAPE for targets of another shape. */
attn_tensor *attn_gpt_loss(attn_ctx *ctx, const attn_gpt *m, attn_tensor *ids,
                           attn_tensor *targets, int32_t ignore_index);

/* A KV cache for B sequences of up to ctx_len positions (transformer.h).
 * Free with attn_kv_cache_free. Errors as attn_kv_cache_init. */
attn_status attn_gpt_cache_init(const attn_gpt *m, int64_t B, attn_kv_cache *cache);

/* ---- sampling ---------------------------------------------------------------- */

typedef struct attn_sample_opts {
    float temperature; /* <= 0: greedy (the arg max; ties to the smallest id) */
    int top_k;         /* > 0: only the k most probable tokens */
    float top_p;       /* in (0, 1): only the smallest set of most probable
                          tokens whose probability reaches top_p (nucleus);
                          0 or >= 1: no limit */
    uint64_t seed;     /* draw i of a generation uses attn_rng_uniform(seed, 0, i) */
    int32_t first_id;  /* ids below it are never drawn (ATTN_TOKEN_SPECIALS keeps
                          the specials of attn's vocabularies out); 0: none */
} attn_sample_opts;

/* Draws a token from logits[0 .. V-1] with uniform number u in [0, 1):
 * the logits of ids below first_id count as -inf; probabilities
 * softmax(logits / temperature), restricted to the top_k most
 * probable (ties broken by the smaller id), then to the nucleus top_p,
 * renormalised; the token is the first, in order of decreasing probability,
 * whose cumulative probability exceeds u. `work` is scratch of V * 8 bytes
 * (may be NULL: then it is malloc'd). Reentrant: threads may sample at once
 * with their own work buffers. Returns
 * the id, or -1 for V < 1, NULL logits, or a failed allocation. Non-finite
 * logits count as -inf (a row of only -inf returns the arg max rule's id 0). */
int32_t attn_sample_token(const float *logits, int64_t V, const attn_sample_opts *opts, float u,
                          void *work);

/* Generates n_new tokens after prompt[0 .. n_prompt-1] (n_prompt >= 1) for
 * one sequence, with a KV cache: the prompt is read in one forward, then one
 * token per forward. When the sequence would pass ctx_len, the cache is
 * emptied and refilled with the last ctx_len / 2 tokens (a sliding window;
 * positions restart at 0). out receives n_new ids; step_logits, when not
 * NULL, receives the n_new rows of V logits each draw came from. The context
 * is reset (attn_ctx_reset) between forwards and its gradients are switched
 * off (restored at the end). Errors: ATTN_ERR_INVALID_ARG (NULL, n_prompt <
 * 1, n_new < 0, a prompt id outside [0, V)), ATTN_ERR_OOM, those of
 * attn_gpt_logits. */
attn_status attn_gpt_generate(attn_ctx *ctx, const attn_gpt *m, const int32_t *prompt,
                              int64_t n_prompt, int64_t n_new, const attn_sample_opts *opts,
                              int32_t *out, float *step_logits);

/* Called with each generated token as soon as it is drawn: tok is out[i].
 * A non-zero return stops the generation after this token (a streaming
 * caller's Ctrl-C): attn_gpt_generate_stream then returns ATTN_OK with
 * *n_done < n_new. */
typedef int (*attn_gpt_token_fn)(void *user, int32_t tok, int64_t i);

/* attn_gpt_generate that hands each token to on_token (may be NULL) as it
 * is drawn and may be stopped by it; the same tokens for the same
 * arguments. *n_done (may be NULL) receives the number of tokens written to
 * out. Errors: those of attn_gpt_generate. */
attn_status attn_gpt_generate_stream(attn_ctx *ctx, const attn_gpt *m, const int32_t *prompt,
                                     int64_t n_prompt, int64_t n_new, const attn_sample_opts *opts,
                                     int32_t *out, float *step_logits, attn_gpt_token_fn on_token,
                                     void *user, int64_t *n_done);

/* ---- files ---------------------------------------------------------------------- */

/* Writes the configuration as metadata entries "gpt.vocab", "gpt.ctx_len",
 * "gpt.n_layers", "gpt.n_heads", "gpt.n_kv_heads", "gpt.d_model", "gpt.d_ff",
 * "gpt.dropout", "gpt.pos", "gpt.tied", "gpt.rope_theta", "gpt.synth",
 * "gpt.synth_fixed", "gpt.mixer", "gpt.mixer_block", "gpt.mixer_n", then the
 * pattern "gpt.sparse.kind", "gpt.sparse.causal",
 * "gpt.sparse.heads", "gpt.sparse.head_offsets", "gpt.sparse.block",
 * "gpt.sparse.summary", "gpt.sparse.window", "gpt.sparse.dilation",
 * "gpt.sparse.globals", "gpt.sparse.width", "gpt.sparse.block_h",
 * "gpt.sparse.block_w", "gpt.sparse.margin_h", "gpt.sparse.margin_w" and
 * "gpt.sparse_by_layer" into kv[0 .. 30] (ATTN_GPT_META entries), whose
 * value strings live in buf (ATTN_GPT_META * 32 bytes). The entries after
 * "gpt.rope_theta" are optional when read (files written before them load
 * as dense multi-head attention). */
#define ATTN_GPT_META 31
void attn_gpt_config_meta(const attn_gpt_config *cfg, attn_kv *kv, char *buf);

/* Reads a configuration from the metadata of a safetensors file (a
 * checkpoint or attn_gpt_save's file). Errors: those of
 * attn_safetensors_open, ATTN_ERR_FORMAT (an entry missing or malformed). */
attn_status attn_gpt_config_load(const char *path, attn_gpt_config *cfg);

/* Saves the parameters with the configuration and the n_meta extra entries
 * in the metadata (attn_safetensors_save_params). */
attn_status attn_gpt_save(const char *path, const attn_gpt *m, const attn_kv *meta, int n_meta);

/* Builds a model from a file written by attn_gpt_save or a checkpoint of
 * one: configuration from the metadata, parameters loaded into a new model
 * in `ps` (optimizer tensors of a checkpoint are ignored). Errors: those of
 * attn_gpt_config_load, attn_gpt_new and attn_safetensors_load_params. */
attn_status attn_gpt_load(const char *path, attn_params *ps, attn_gpt **out);

#ifdef __cplusplus
}
#endif
#endif
