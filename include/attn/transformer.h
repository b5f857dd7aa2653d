/* attn/transformer.h: multi-head attention (torch.nn.MultiheadAttention
 * compatible, plus grouped-query heads, relative positions and a KV cache)
 * and the Transformer encoder / decoder block (torch.nn.TransformerEncoderLayer
 * and TransformerDecoderLayer compatible, post-LN or pre-LN).
 *
 * Everything here is composed from graph ops (linear, reshape, permute,
 * slice, sdpa, layernorm, relu/gelu, dropout, add and the position ops of
 * positions.h), so gradients flow to every parameter and input without a
 * backward of its own. Derivations of the pieces: docs/ops.md; the module
 * itself: docs/transformer.md, "Multi-head attention and the Transformer
 * block".
 *
 * Dimension legend (tensor.h): B batch, T queries, S keys, E embed_dim
 * (d_model), H query heads, Hkv key/value heads, D = E / H head size,
 * Ek, Ev the widths of the key and value inputs (kdim, vdim), F d_ff.
 *
 * Errors follow ops.h: forward functions return NULL and keep the status and
 * a message naming the function, the shapes and what was expected in the
 * context (attn_ctx_status / attn_ctx_error) and in attn_last_error(); a NULL
 * input makes them return NULL at once. Init functions return the status
 * (message in attn_last_error()).
 * Threads: results repeat bitwise for a given thread count.
 */
#ifndef ATTN_TRANSFORMER_H
#define ATTN_TRANSFORMER_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "sparse.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- position information ---------------------------------------------- */

/* How a model tells positions apart. Only SHAW, ROPE and ALIBI act inside
 * multi-head attention (and only in self-attention; cross-attention ignores
 * them). SINUSOIDAL and LEARNED are absolute encodings that a model adds to
 * its token embeddings (positions.h); to MHA they mean the same as NONE.
 *   SHAW   relative position representations (Shaw et al. 2018): learned
 *          vectors a^K, a^V for each clipped distance j - i in
 *          [-shaw_clip, shaw_clip], shared by all heads; logits get
 *          q_i . a^K_{ij}, outputs get sum_j P_ij a^V_{ij}.
 *   ROPE   rotary embeddings on q and k (theta = rope_theta, 0: 10000);
 *          needs an even head size D.
 *   ALIBI  linear biases -m_h (i - j) on the logits, with the head slopes of
 *          Press et al. (geometric from 2^(-8/H)). */
typedef enum attn_pos_kind {
    ATTN_POS_NONE = 0,
    ATTN_POS_SINUSOIDAL = 1,
    ATTN_POS_LEARNED = 2,
    ATTN_POS_SHAW = 3,
    ATTN_POS_ROPE = 4,
    ATTN_POS_ALIBI = 5,
    ATTN_POS_COUNT
} attn_pos_kind;

/* "none", "sinusoidal", "learned", "shaw", "rope", "alibi" ("?" otherwise). */
const char *attn_pos_kind_name(attn_pos_kind kind);
/* The kind of one of those names into *out; 0, or -1 (out untouched) for a
 * NULL or unknown name. */
int attn_pos_kind_parse(const char *name, attn_pos_kind *out);

/* ---- KV cache ------------------------------------------------------------- */

/* Keys and values of past tokens for incremental decoding, one layer.
 * Persistent: the buffers are malloc'd (not in a context's arena), so they
 * survive attn_ctx_reset between decoding steps.
 *   k [B, Hkv, max_len, D], v [B, Hkv, max_len, D], row-major, contiguous;
 *   positions 0 .. len-1 of every batch row are filled.
 * Keys are stored after RoPE (rotated at their own positions), so they are
 * never rotated again. A self-attention forward with a cache appends its T
 * new keys/values at len .. len+T-1 and then sets len += T. A cross-attention
 * forward with a cache projects the memory into it once (when len == 0) and
 * reuses it afterwards. */
typedef struct attn_kv_cache_layer {
    int64_t B, Hkv, max_len, D;
    int64_t len; /* filled positions, 0 <= len <= max_len */
    float *k;
    float *v;
} attn_kv_cache_layer;

/* The cache of a whole model: n_layers layers of the same geometry. */
typedef struct attn_kv_cache {
    int n_layers;
    attn_kv_cache_layer *layers; /* [n_layers] */
} attn_kv_cache;

/* Allocates (zeroed) buffers for n_layers layers of [B, Hkv, max_len, D].
 * Errors: ATTN_ERR_INVALID_ARG (a size < 1, NULL cache), ATTN_ERR_OOM (the
 * message gives the bytes needed); on error *cache is zeroed. */
attn_status attn_kv_cache_init(attn_kv_cache *cache, int n_layers, int64_t B, int64_t Hkv,
                               int64_t max_len, int64_t D);
/* Frees the buffers and zeroes *cache (NULL or a zeroed cache is fine). */
void attn_kv_cache_free(attn_kv_cache *cache);
/* Sets every layer's len to 0 (a new sequence); the buffers are kept. */
void attn_kv_cache_reset(attn_kv_cache *cache);

/* ---- multi-head attention ------------------------------------------------ */

/* Which attention op a module calls (where positions allow a choice; Shaw's
 * relative positions always take the composed path). */
typedef enum attn_attention_kernel {
    ATTN_KERNEL_AUTO = 0,      /* the default: FUSED when a call has at least
                                  ATTN_FUSED_MIN_KEYS keys, else REFERENCE */
    ATTN_KERNEL_FUSED = 1,     /* attn_flash_sdpa: tiled, O(T) memory */
    ATTN_KERNEL_REFERENCE = 2, /* attn_sdpa: the materialised [T, S] reference op
                                  (with the packed projection it reads the heads
                                  in place, no copies) */
    ATTN_KERNEL_COUNT
} attn_attention_kernel;

/* AUTO's threshold: a GPT training step (2 layers, d 256, 4 heads, 1 thread)
 * was 10% faster with the reference op at 256 keys and 11% faster with the
 * fused one at 1024 (docs/transformer.md, "Which op the modules call"). */
#define ATTN_FUSED_MIN_KEYS 512

typedef struct attn_mha_config {
    int64_t embed_dim;   /* E >= 1, divisible by n_heads */
    int n_heads;         /* H >= 1 */
    int n_kv_heads;      /* Hkv: 0 means H (multi-head); H % Hkv == 0; 1 is
                            multi-query attention, 1 < Hkv < H grouped-query */
    int64_t kdim, vdim;  /* Ek, Ev: widths of the key / value inputs; 0 means E */
    int packed;          /* nonzero: one packed input projection
                            in_proj_weight [(H + 2 Hkv) D, E] when Ek == Ev == E
                            (torch's layout: query rows, then key rows, then
                            value rows); otherwise (or packed == 0) separate
                            q_proj_weight, k_proj_weight, v_proj_weight */
    int no_bias;         /* nonzero: no in_proj_bias / out_proj.bias (torch's bias=False) */
    float dropout;       /* in [0, 1): dropout on the attention weights in
                            training mode (torch's `dropout`) */
    attn_pos_kind pos;   /* see attn_pos_kind */
    int shaw_clip;       /* SHAW: the clipping distance k >= 1 */
    float rope_theta;    /* ROPE: the base; 0 means 10000 */
    attn_attention_kernel kernel; /* the attention op; 0 = AUTO */
} attn_mha_config;

/* The module: its resolved configuration (defaults filled in), sizes, and
 * pointers to its parameters, which the attn_params store given to
 * attn_mha_init owns. A plain value: copy it freely; it stays valid as long
 * as the store does. Unused pointers are NULL. */
typedef struct attn_mha {
    attn_mha_config cfg;
    int64_t head_dim;            /* D = E / H */
    attn_tensor *in_proj_weight; /* packed: [(H + 2 Hkv) D, E] */
    attn_tensor *q_proj_weight;  /* separate: [H D, E] */
    attn_tensor *k_proj_weight;  /* separate: [Hkv D, Ek] */
    attn_tensor *v_proj_weight;  /* separate: [Hkv D, Ev] */
    attn_tensor *in_proj_bias;   /* [(H + 2 Hkv) D] in both layouts, unless no_bias */
    attn_tensor *out_proj_weight; /* [E, H D] */
    attn_tensor *out_proj_bias;   /* [E], unless no_bias */
    attn_tensor *rel_k;          /* SHAW: [2 shaw_clip + 1, D], row r is distance r - clip */
    attn_tensor *rel_v;          /* SHAW: [2 shaw_clip + 1, D] */
} attn_mha;

/* Adds the module's parameters to `ps` under torch's names, prefixed by
 * `prefix` (NULL or "" for none; e.g. "layers.0.self_attn."), in torch's
 * order:
 *   packed:   <prefix>in_proj_weight
 *   separate: <prefix>q_proj_weight, <prefix>k_proj_weight, <prefix>v_proj_weight
 *   then      <prefix>in_proj_bias, <prefix>out_proj.weight, <prefix>out_proj.bias
 *   SHAW:     <prefix>rel_k, <prefix>rel_v (our names; torch has none)
 * so attn_params_find and safetensors files use the names of
 * module.state_dict(). With rng non-NULL the initialisation is torch's:
 * xavier-uniform in_proj_weight (bound sqrt(6 / (rows + cols)) over the whole
 * packed matrix) or each of q/k/v_proj_weight; out_proj.weight uniform in
 * [-1/sqrt(E), 1/sqrt(E)]; biases zero; rel_k and rel_v xavier-uniform. With
 * rng NULL everything stays zero (to be loaded).
 * Errors: ATTN_ERR_INVALID_ARG (a bad configuration: E % H, H % Hkv, a
 * dropout outside [0, 1), SHAW with shaw_clip < 1, ROPE with an odd D, an
 * unknown pos; a name already in the store or too long), ATTN_ERR_OOM; on
 * error the parameters added so far stay in the store and *mha is zeroed. */
attn_status attn_mha_init(attn_mha *mha, attn_params *ps, const char *prefix,
                          const attn_mha_config *cfg, attn_rng *rng);

/* Per-call settings of a forward. A zeroed struct (or NULL) means: no mask,
 * positions from 0, no cache. */
typedef struct attn_mha_call {
    int causal;               /* query t sees key s iff s <= t + (S - T) (bottom-right
                                 aligned, as attn_sdpa; with a cache S - T is the
                                 number of cached tokens) */
    attn_tensor *key_lengths; /* NULL or i32 [B] in [0, S]: key s of row b is visible
                                 iff s < key_lengths[b] (torch's key_padding_mask with
                                 True at the padded end); with a cache S counts the
                                 cached keys too */
    attn_tensor *bias;        /* NULL or an additive f32 bias broadcastable to
                                 [B, H, T, S] (torch's float attn_mask; -inf masks) */
    int64_t pos0;             /* position of the first query and key (no cache);
                                 ROPE uses absolute positions pos0 + t; SHAW and
                                 ALIBI only differences. With a cache the new
                                 queries are at cache->len + t and pos0 is ignored */
    attn_kv_cache_layer *cache; /* NULL, or the cache of this layer (see above).
                                   Inference only: gradients must be disabled
                                   (attn_ctx_set_grad_enabled(ctx, 0)) */
    const attn_sparse_pattern *sparse; /* NULL or a block-sparse pattern (sparse.h,
                                   positions as with causal: t + S - T): the
                                   attention ops get it as attn_sdpa_opts.sparse
                                   (the fused op computes only its tiles); the
                                   composed path (SHAW) adds it as a -inf bias */
} attn_mha_call;

/* Multi-head attention.
 *   xq  [B, T, E]   queries
 *   xkv [B, S, Ek]  keys = values for cross-attention (Ek == Ev required
 *                   then), or NULL for self-attention (keys and values are
 *                   xq; Ek == Ev == E required)
 * -> [B, T, E]:
 *   q = xq Wq^T + bq, k = xkv Wk^T + bk, v = xkv Wv^T + bv, split into heads
 *   ([B, H, T, D], [B, Hkv, S, D]); positions (SHAW, ROPE, ALIBI) in
 *   self-attention; per head softmax(q k^T / sqrt(D) + masks) v (attn_sdpa,
 *   grouped-query heads share k, v); heads concatenated [B, T, H D], then
 *   out_proj. When weights is non-NULL it receives the attention
 *   probabilities [B, H, T, S] before dropout (no gradient), as torch's
 *   need_weights=True with average_attn_weights=False.
 * Separate key and value inputs of different widths (torch's key != value)
 * are served by attn_mha_forward_kv.
 * Errors: ATTN_ERR_SHAPE (ranks, E, Ek, Ev, B mismatches, key_lengths not [B]),
 * ATTN_ERR_DTYPE, ATTN_ERR_INVALID_ARG (mha not initialised, a cache of the
 * wrong geometry or too short for len + T), ATTN_ERR_STATE (a cache with
 * gradients enabled), ATTN_ERR_OOM. */
attn_tensor *attn_mha_forward(attn_ctx *ctx, const attn_mha *mha, attn_tensor *xq,
                              attn_tensor *xkv, const attn_mha_call *call,
                              attn_tensor **weights);

/* The same with separate key [B, S, Ek] and value [B, S, Ev] inputs (torch's
 * forward(query, key, value)); both non-NULL. */
attn_tensor *attn_mha_forward_kv(attn_ctx *ctx, const attn_mha *mha, attn_tensor *xq,
                                 attn_tensor *xk, attn_tensor *xv, const attn_mha_call *call,
                                 attn_tensor **weights);

/* ---- the Transformer block ----------------------------------------------- */

typedef enum attn_activation { ATTN_ACT_RELU = 0, ATTN_ACT_GELU = 1 } attn_activation;

typedef struct attn_block_config {
    int64_t d_model;     /* E */
    int n_heads;         /* H */
    int n_kv_heads;      /* 0: H */
    int64_t d_ff;        /* F >= 1 (torch's dim_feedforward) */
    int norm_first;      /* nonzero: pre-LN (x + f(LN(x))); zero: post-LN
                            (LN(x + f(x))), torch's default */
    attn_activation activation; /* of the feed-forward layer (GELU is the exact erf form) */
    float dropout;       /* in [0, 1): attention weights, the feed-forward
                            hidden layer and every residual branch, in
                            training mode (torch's `dropout`) */
    float ln_eps;        /* LayerNorm eps; 0 means 1e-5 */
    int cross;           /* nonzero: a decoder layer (self-attention, then
                            cross-attention over `memory`, then feed-forward) */
    int no_bias;         /* nonzero: no biases in attention, linears and norms */
    attn_pos_kind pos;   /* positions in self-attention (see attn_mha_config) */
    int shaw_clip;
    float rope_theta;
    attn_attention_kernel kernel; /* of both attentions (see attn_mha_config) */
    int external_mixer;  /* nonzero: the self-attention sublayer is the caller's
                            token mixer (e.g. a synthesizer.h block): no
                            self_attn.* parameters are added and the block runs
                            with attn_block_forward_mixer (not with cross) */
} attn_block_config;

/* The block's parameters (owned by the store) and resolved configuration. */
typedef struct attn_block {
    attn_block_config cfg;
    attn_mha self_attn;
    attn_mha cross_attn;               /* cross only: torch's multihead_attn */
    attn_tensor *linear1_w, *linear1_b; /* [F, E], [F] */
    attn_tensor *linear2_w, *linear2_b; /* [E, F], [E] */
    attn_tensor *norm_w[3], *norm_b[3]; /* norm1, norm2, norm3 (cross only): [E] */
} attn_block;

/* Adds the block's parameters under torch's TransformerEncoderLayer /
 * TransformerDecoderLayer names, prefixed by `prefix` (e.g. "layers.3."), in
 * torch's order:
 *   self_attn.in_proj_weight, self_attn.in_proj_bias, self_attn.out_proj.weight,
 *   self_attn.out_proj.bias, [multihead_attn.* the same,] linear1.weight,
 *   linear1.bias, linear2.weight, linear2.bias, norm1.weight, norm1.bias,
 *   norm2.weight, norm2.bias[, norm3.weight, norm3.bias]
 * (the attention modules are packed; with n_kv_heads < n_heads in_proj_weight
 * has (H + 2 Hkv) D rows). With rng: attention as attn_mha_init, linears as
 * torch.nn.Linear (weight and bias uniform in [-1/sqrt(in), 1/sqrt(in)]),
 * norms weight 1 bias 0; with rng NULL, zeros. Errors as attn_mha_init, plus
 * ATTN_ERR_INVALID_ARG for d_ff < 1 or a negative ln_eps. */
attn_status attn_block_init(attn_block *blk, attn_params *ps, const char *prefix,
                            const attn_block_config *cfg, attn_rng *rng);

/* One block.
 *   x      [B, T, E]
 *   memory [B, S, E] for a decoder block (cfg.cross), else must be NULL
 *   self_call  the self-attention's settings (causal mask, key_lengths of x,
 *              pos0, its KV cache); NULL for none
 *   cross_call the cross-attention's settings (key_lengths of memory, its KV
 *              cache of the projected memory); NULL for none; ignored by an
 *              encoder block
 *   self_weights NULL, or receives the self-attention probabilities
 *              [B, H, T, S] (no gradient)
 * -> [B, T, E]. Post-LN (torch's default):
 *     x = LN1(x + Drop(SA(x))); [x = LN2(x + Drop(CA(x, memory)));]
 *     x = LNlast(x + Drop(FF(x)))
 *   pre-LN (norm_first):
 *     x = x + Drop(SA(LN1(x))); [x = x + Drop(CA(LN2(x), memory));]
 *     x = x + Drop(FF(LNlast(x)))
 *   with FF(x) = linear2(Drop(act(linear1(x)))), LNlast = norm2 (encoder) or
 *   norm3 (decoder).
 * Errors as attn_mha_forward, plus ATTN_ERR_INVALID_ARG for a memory given to
 * an encoder block or missing for a decoder block. */
attn_tensor *attn_block_forward(attn_ctx *ctx, const attn_block *blk, attn_tensor *x,
                                attn_tensor *memory, const attn_mha_call *self_call,
                                const attn_mha_call *cross_call, attn_tensor **self_weights);

/* attn_block_forward, and for a decoder block also the cross-attention
 * probabilities: cross_weights, when not NULL, receives [B, H, T, S] (no
 * gradient; NULL for an encoder block). The encoder-decoder model
 * (transformer_s2s.h) draws its alignment maps from them. */
attn_tensor *attn_block_forward_ex(attn_ctx *ctx, const attn_block *blk, attn_tensor *x,
                                   attn_tensor *memory, const attn_mha_call *self_call,
                                   const attn_mha_call *cross_call, attn_tensor **self_weights,
                                   attn_tensor **cross_weights);

/* The token mixer of a block made with external_mixer: y [B, T, E] from its
 * input h [B, T, E] (the normalised x with norm_first), NULL on error with
 * the context's status set. */
typedef attn_tensor *(*attn_block_mixer_fn)(attn_ctx *ctx, const void *state, attn_tensor *h);

/* A block made with external_mixer: the encoder block of attn_block_forward
 * with mixer(state, .) in place of the self-attention:
 *   pre-LN:  x = x + Drop(mixer(LN1(x)));  x = x + Drop(FF(LN2(x)))
 *   post-LN: x = LN1(x + Drop(mixer(x)));  x = LN2(x + Drop(FF(x)))
 * Errors: ATTN_ERR_INVALID_ARG for a block made without external_mixer or a
 * NULL mixer, and the mixer's. */
attn_tensor *attn_block_forward_mixer(attn_ctx *ctx, const attn_block *blk, attn_tensor *x,
                                      attn_block_mixer_fn mixer, const void *state);

#ifdef __cplusplus
}
#endif
#endif
