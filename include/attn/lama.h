/* lama.h: LAMA, low-rank factorised multi-head attention pooling (Mehta,
 * Rangwala and Ramakrishnan 2019, "Low Rank Factorization for Compact
 * Multi-Head Self-Attention"; src/nn/lama.c, docs/lama.md).
 *
 * Over states h_1 .. h_n [d] (a GRU's outputs) and a global context vector
 * c [d], head j = 1 .. k scores every position with a bilinear form whose
 * matrix is factorised at rank r:
 *   score_j(i) = c^T W_j h_i,  W_j = P_j Q_j^T,  P_j, Q_j [d, r]
 *              = sum_{t<r} (P_j^T c)_t (Q_j^T h_i)_t
 * (the low-rank bilinear pooling of Kim et al. 2017 that the paper builds
 * on: a Hadamard product of two rank-r projections, summed), normalised by
 * a softmax over the positions of each head,
 *   a_j = softmax_i(score_j(i))   (padded positions masked out),
 * and the k pooled vectors z_j = sum_i a_j(i) h_i are concatenated into the
 * sentence representation [k d] (the paper's structured representation M =
 * A H, flattened). The context vector is the mean of the valid states,
 * c = (1/len) sum_{i<len} h_i (the paper queries "a global context vector"
 * instead of every word; its mean-of-states choice is the one we take), or
 * one given by the caller.
 *
 * Parameters (names under `prefix`): p [k r, d] (rows j r .. j r + r - 1
 * are P_j^T), q [k r, d] (Q_j^T likewise); initialised uniform
 * +-1/sqrt(d) (torch's Linear default). The module is graph ops (linear,
 * mul, sum, permute, softmax with a mask, bmm), so its backward is theirs;
 * docs/lama.md derives it.
 * Errors: ATTN_ERR_INVALID_ARG (bad sizes), ATTN_ERR_SHAPE (h not [B, n, d],
 * lengths not I32 [B] in [1, n], c not [B, d]), ATTN_ERR_OOM.
 */
#ifndef ATTN_LAMA_H
#define ATTN_LAMA_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_lama {
    int64_t d, heads, rank; /* d, k, r */
    attn_tensor *p, *q;     /* [k r, d] each */
} attn_lama;

attn_status attn_lama_init(attn_lama *m, attn_params *ps, const char *prefix, int64_t d, int64_t heads,
                           int64_t rank, attn_rng *rng);

/* The masked mean of h [B, n, d] over positions < lengths[b] (lengths NULL:
 * all n) -> [B, d]. */
attn_tensor *attn_masked_mean(attn_ctx *ctx, attn_tensor *h, attn_tensor *lengths);

/* pooled [B, k d] from h [B, n, d]; lengths I32 [B] (values in [1, n]) or
 * NULL; c [B, d] or NULL (the masked mean of h). weights, when not NULL,
 * receives a [B, k, n] (no gradient; zeros at padded positions). */
attn_tensor *attn_lama_forward(attn_ctx *ctx, const attn_lama *m, attn_tensor *h, attn_tensor *lengths,
                               attn_tensor *c, attn_tensor **weights);

#ifdef __cplusplus
}
#endif
#endif
