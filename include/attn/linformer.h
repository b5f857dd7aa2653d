/* linformer.h: multi-head linear attention (Wang et al. 2020, "Linformer:
 * Self-Attention with Linear Complexity"; src/nn/linformer.c,
 * docs/synthesizer.md, "Linformer"). Keys and values are projected along the
 * sequence to k rows before the attention, so the cost is O(T k) instead of
 * O(T^2):
 *
 *   Q = X W_q^T + b_q, K = X W_k^T + b_k, V = X W_v^T + b_v  (H heads of D),
 *   K'_h = E_h[:, :T] K_h [k, D],   V'_h = F_h[:, :T] V_h [k, D],
 *   head_h = softmax(Q_h K'_h^T / sqrt(D)) V'_h,
 *   out = [head_1 ... head_H] W_o^T + b_o.
 *
 * E, F [k, n] (n = max_len; a sequence of T <= n uses their first T
 * columns). Sharing, as the paper's section 4: NONE, one E_h and F_h per head
 * ([H, k, n] each); HEADWISE, one E and one F for all heads ([1, k, n]);
 * KEY_VALUE, one matrix for keys and values and all heads (F = E). Layerwise
 * sharing is the caller's: the block is a plain value, so a model sets the
 * proj_k / proj_v pointers of every layer's block to the first layer's.
 *
 * Not causal: every projected key mixes all T positions, the later ones
 * included, so a query would see its future. attn refuses causal use
 * (ATTN_ERR_INVALID_ARG at init) rather than run a model that looks ahead;
 * the paper evaluates it as an encoder (masked LM pretraining, classification).
 *
 * Parameters (names under `prefix`): q.weight [E, E], q.bias, k.weight,
 * k.bias, v.weight, v.bias, out.weight, out.bias (uniform +-1/sqrt(E), torch's
 * default), proj_k [G, k, n] and (not KEY_VALUE) proj_v [G, k, n], G = H for
 * NONE else 1, initialised normal(0, 1/sqrt(k)) (the random projection of the
 * paper's Johnson-Lindenstrauss argument, entries N(0, 1/k)).
 * Errors: ATTN_ERR_INVALID_ARG for a configuration that does not fit (sizes
 * < 1, H not dividing E, an unknown sharing, causal), ATTN_ERR_SHAPE for x
 * that is not [B, T, E] with 1 <= T <= n, ATTN_ERR_OOM.
 */
#ifndef ATTN_LINFORMER_H
#define ATTN_LINFORMER_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "tensor.h"
#include "transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_linformer_sharing {
    ATTN_LINFORMER_NONE = 0,      /* E_h, F_h per head */
    ATTN_LINFORMER_HEADWISE = 1,  /* one E, one F */
    ATTN_LINFORMER_KEY_VALUE = 2  /* one E = F */
} attn_linformer_sharing;

typedef struct attn_linformer_config {
    int64_t d_model;  /* E */
    int64_t n_heads;  /* H, divides E */
    int64_t max_len;  /* n: the longest sequence */
    int64_t k;        /* the projected length */
    attn_linformer_sharing sharing;
    int causal;       /* must be 0 (see above) */
    float dropout;    /* on the weights, in training mode */
    attn_attention_kernel kernel; /* the attention op; 0 = AUTO */
} attn_linformer_config;

typedef struct attn_linformer {
    attn_linformer_config cfg;
    int64_t head_dim;
    attn_tensor *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
    attn_tensor *proj_k, *proj_v; /* proj_v == proj_k with KEY_VALUE */
} attn_linformer;

/* Adds the block's parameters to ps under prefix and initialises them when
 * rng is not NULL. */
attn_status attn_linformer_init(attn_linformer *m, attn_params *ps, const char *prefix,
                                const attn_linformer_config *cfg, attn_rng *rng);

/* out [B, T, E] = the block on x [B, T, E]; weights, when not NULL, receives
 * the weights [B, H, T, k] over the projected keys (no gradient). */
attn_tensor *attn_linformer_forward(attn_ctx *ctx, const attn_linformer *m, attn_tensor *x,
                                    attn_tensor **weights);

#ifdef __cplusplus
}
#endif
#endif
