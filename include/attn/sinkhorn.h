/* sinkhorn.h: Sparse Sinkhorn attention and SortCut Sinkhorn attention
 * (Tay et al. 2020, "Sparse Sinkhorn Attention"; src/nn/sinkhorn.c,
 * docs/sinkhorn.md). The sequence is cut into nb = T / b blocks of b tokens;
 * a meta sorting network scores every (query block, key block) pair, the
 * scores are Sinkhorn-normalised into a doubly stochastic (soft permutation)
 * matrix P [nb, nb], and P sorts the key and value blocks:
 *
 *   s_i   = sum_t A[i, t] x_t             (block summaries, [nb, E])
 *   R     = W_2 relu(W_1 s_i + b_1) + b_2  (per head: nb logits per row)
 *   L^0   = R / tau;  L^{n+1} = Fc(Fr(L^n))  (n_iter times, in log space:
 *           Fr(L)_ij = L_ij - logsumexp_j' L_ij',  Fc the same over i)
 *   P     = exp(L^{n_iter})
 *   Ks_i  = sum_j P_ij K_j, Vs_i likewise (K_j the b keys of block j)
 *   Sinkhorn: the queries of block i attend to [Ks_i ; K_i] (its sorted
 *             block and its own, local block), values [Vs_i ; V_i];
 *   SortCut (n_sortcut = n > 0): the queries of block i attend to
 *             [Ks_0 .. Ks_{n-1} ; K_i] (the first n sorted blocks, shared by
 *             every block, and the local block).
 * Non-causal: A[i, t] = 1/b over block i (the block's mean), every key above
 * visible; T must be a multiple of b.
 * Causal: the summary of block i is the mean of x_0 .. x_{ib} (up to the
 * block's first token, so that no query reads its future through R), R is
 * masked so that block i only sorts blocks j < i: P is computed on the
 * (nb-1) x (nb-1) lower-triangular matrix of rows 1 .. nb-1 and columns
 * 0 .. nb-2 (masked entries are -inf in log space, i.e. exactly 0 in P), and
 * only its row normalisation remains (causal Sinkhorn balancing: a column
 * normalisation would let row i read later blocks, and one over the rows up
 * to i forces the diagonal to 1), so causal P = masked softmax(R / tau) over
 * the past blocks, whatever n_iter (docs/sinkhorn.md); block 0 has no
 * sorted block; local keys are masked after the query. SortCut causal: the
 * sorted blocks 1 .. n (block 0's is empty), sorted block j visible to
 * query blocks i >= j. A causal call pads T up to a multiple of b with zeros
 * at the end (they cannot reach earlier positions) and drops them after.
 * No Gumbel noise (the paper's option for sampling permutations is off).
 *
 * Attention per head with scale 1/sqrt(D), D = E / H; Q, K, V and the output
 * are linear maps of E. The block is a composition of graph ops (linear,
 * relu, matmul, log_softmax with a -inf mask, exp, bmm, concat, sdpa), so
 * its backward, through every Sinkhorn iteration, is theirs.
 *
 * Parameters (attn_params, under `prefix`):
 *   q.weight [E, E], q.bias [E], k.*, v.*, out.* (the same),
 *   sort.0.weight [Dh, E], sort.0.bias [Dh], sort.1.weight [H nbmax, Dh],
 *   sort.1.bias [H nbmax]   (Dh = hidden, nbmax = max_len / b; a sequence of
 *   nb < nbmax blocks uses the first nb logits of each row).
 * Initialisation: torch's default uniform +-1/sqrt(fan_in).
 * Errors: ATTN_ERR_INVALID_ARG for a configuration that does not fit (sizes
 * < 1, E not divisible by H, b not dividing max_len, tau <= 0, n_iter < 0 or
 * > 100, n_sortcut > nbmax), ATTN_ERR_SHAPE for x not [B, T, E] with
 * 1 <= T <= max_len (non-causal: T a multiple of b), ATTN_ERR_OOM.
 */
#ifndef ATTN_SINKHORN_H
#define ATTN_SINKHORN_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_sinkhorn_config {
    int64_t d_model;   /* E */
    int64_t n_heads;   /* H, divides E */
    int64_t max_len;   /* the longest sequence, a multiple of block */
    int64_t block;     /* b: tokens per block */
    int64_t hidden;    /* the sorting network's hidden width; 0 means E */
    int n_iter;        /* Sinkhorn iterations (row then column); 0 means 5 */
    float temperature; /* tau; 0 means 0.75 */
    int n_sortcut;     /* 0: Sinkhorn attention; n > 0: SortCut with n blocks */
    int causal;
} attn_sinkhorn_config;

typedef struct attn_sinkhorn {
    attn_sinkhorn_config cfg; /* defaults filled in */
    int64_t head_dim;         /* D */
    int64_t max_blocks;       /* nbmax = max_len / b */
    attn_tensor *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
    attn_tensor *w1, *b1, *w2, *b2; /* sorting network */
} attn_sinkhorn;

/* Adds the block's parameters to ps under prefix (may be NULL) and
 * initialises them when rng is not NULL (else they stay zero). */
attn_status attn_sinkhorn_init(attn_sinkhorn *m, attn_params *ps, const char *prefix,
                               const attn_sinkhorn_config *cfg, attn_rng *rng);

/* out [B, T, E] = the block on x [B, T, E]. perm, when not NULL, receives
 * the soft permutation P (no gradient): [B, H, nb, nb] non-causal, and
 * causal [B, H, nb-1, nb-1] (rows: query blocks 1 .. nb-1, columns: key
 * blocks 0 .. nb-2), NULL when nb == 1 and causal. NULL on error. */
attn_tensor *attn_sinkhorn_forward(attn_ctx *ctx, const attn_sinkhorn *m, attn_tensor *x,
                                   attn_tensor **perm);

#ifdef __cplusplus
}
#endif
#endif
