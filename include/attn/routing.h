/* routing.h: routing attention (Roy et al. 2020, "Efficient Content-Based
 * Sparse Attention with Routing Transformers"; src/nn/routing.c,
 * docs/routing.md). Queries and keys are shared (one projection) and
 * layer-normalised without scale or shift:
 *
 *   u = LN(x W_qk^T + b_qk) split into H heads of D, v = x W_v^T + b_v.
 *
 * The first local_heads heads attend locally: each query to the
 * local_window keys ending at itself (causal) or centred on it (not causal).
 * Each of the other H_r = H - local_heads heads (routing heads) routes its
 * unit vectors û_t = u_t / |u_t| to n_clusters centroids mu_c [D] (one set per
 * routing head, a state outside the gradient):
 *   (balance TOP_W, below) cluster c takes the w tokens with the largest û_t . mu_c / |mu_c| (the
 *   paper's implementation balances the clusters this way: top-w per
 *   centroid, so a token may sit in several clusters or in none; ties go to
 *   the earlier position), ordered by position; its members attend to each
 *   other (causal: to members at or before their own position, which in
 *   position order is the usual lower-triangular mask), scale 1/sqrt(D);
 *   a token's output is the mean of its outputs over the clusters that took
 *   it (0 when none did).
 * The heads are joined and projected: out = [heads] W_o^T + b_o.
 * The assignment (the top-w lists) takes no gradient; given it, the block
 * is a composition of graph ops (linear, layernorm, embedding as gather,
 * sdpa, mul, sum), so its backward is theirs.
 *
 * Online k-means: in training mode (attn_ctx_training) with update on, after
 * the forward pass every routing head's centroid c moves to
 *   mu_c <- decay mu_c + (1 - decay) mean{û_t : argmax_c' û_t . mu_c'/|mu_c'| = c}
 * (the mean over the batch's tokens nearest to it; a centroid with none
 * stays). The centroids are the parameter `centroids` [H_r, n_clusters, D]
 * with requires_grad 0, so checkpoints hold them and the optimizer skips
 * them; they start as unit vectors drawn N(0, 1) and normalised.
 *
 * Parameters (under `prefix`): qk.weight [E, E], qk.bias [E], v.*, out.*,
 * centroids [H_r, k, D] (absent when H_r == 0).
 * Errors: ATTN_ERR_INVALID_ARG for a configuration that does not fit (sizes
 * < 1, E not divisible by H, local_heads outside [0, H], decay outside
 * [0, 1)), ATTN_ERR_SHAPE for x not [B, T, E] with T >= 1, ATTN_ERR_OOM.
 */
#ifndef ATTN_ROUTING_H
#define ATTN_ROUTING_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_routing_config {
    int64_t d_model;      /* E */
    int64_t n_heads;      /* H, divides E */
    int64_t local_heads;  /* heads of local attention, in [0, H] */
    int64_t n_clusters;   /* k >= 1 */
    int64_t window;       /* w: members per cluster (min(w, T) at a call); 0
                             means ceil(T / k) at each call */
    int64_t local_window; /* keys of a local head; 0 means window, or 32 */
    float decay;          /* the k-means moving average; 0 means 0.99 */
    int causal;
    int update;           /* nonzero: move the centroids in training mode */
    int balance;          /* ATTN_ROUTING_TOP_W (0) or ATTN_ROUTING_NEAREST */
} attn_routing_config;

/* How clusters are formed (attn_routing_config.balance):
 *   TOP_W    the paper's implementation: cluster c takes the w tokens
 *            closest to its centroid (balanced; a token in several clusters
 *            or none). Which tokens a cluster takes depends on the whole
 *            window, so with causal on a later token can push an earlier one
 *            out of a cluster: the attention inside a cluster is causal, the
 *            selection is not (the paper's implementation shares this);
 *   NEAREST  every token joins its nearest centroid's cluster only
 *            (unbalanced: w becomes the largest cluster, smaller ones are
 *            padded and masked); a token's membership depends on itself
 *            only, so with causal on the block is strictly causal. The GPT
 *            mixer uses this one (a language model must not read ahead). */
enum { ATTN_ROUTING_TOP_W = 0, ATTN_ROUTING_NEAREST = 1 };

typedef struct attn_routing {
    attn_routing_config cfg; /* defaults filled in */
    int64_t head_dim;        /* D */
    attn_tensor *wqk, *bqk, *wv, *bv, *wo, *bo;
    attn_tensor *centroids; /* [H_r, k, D], no gradient; NULL when H_r == 0 */
} attn_routing;

attn_status attn_routing_init(attn_routing *m, attn_params *ps, const char *prefix,
                              const attn_routing_config *cfg, attn_rng *rng);

/* out [B, T, E] = the block on x [B, T, E]. assign, when not NULL, receives
 * the nearest centroid of every token and routing head, i32 [B, H_r, T]
 * (NULL when H_r == 0), and members, when not NULL, the clusters' members
 * (positions), i32 [B, H_r, k, w]. Moves the centroids (see above) in
 * training mode with update on. NULL on error. */
attn_tensor *attn_routing_forward(attn_ctx *ctx, const attn_routing *m, attn_tensor *x,
                                  attn_tensor **assign, attn_tensor **members);

/* The clusters' members of unit vectors u [N, T, D] (N = B H_r, row n of
 * head n mod H_r) and centroids mu [H_r, k, D]: members [N, k, w] (positions,
 * ascending in each cluster) and nearest [N, T] (either may be NULL). The
 * routing rule of attn_routing_forward, for tests and tools. */
void attn_routing_assign(const float *u, int64_t N, int64_t T, int64_t D, const float *mu,
                         int64_t Hr, int64_t k, int64_t w, int32_t *members, int32_t *nearest);

#ifdef __cplusplus
}
#endif
#endif
