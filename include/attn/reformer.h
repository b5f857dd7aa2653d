/* attn/reformer.h: the Reformer's LSH attention (Kitaev et al. 2020), graph
 * op LSH_ATTENTION (src/ops/lsh_attention.c; docs/reformer.md has the math,
 * the hashing, the sort and unsort and the backward).
 *
 * Dimension legend (tensor.h): B batch, H heads, T positions, D head size of
 * the shared query-key vectors, Dv head size of values, R hashing rounds,
 * NB buckets (even), L chunk length.
 *
 * Per (b, h), with x_t = qk[b, h, t] (the shared query-key projection):
 *   hashing   for round r: y = x_t rot[h, :, r, :]  (NB/2 values),
 *             bucket_r(t) = argmax([y ; -y])   (first maximum on ties);
 *             the hashing has no gradient;
 *   sorting   the R*T pairs (r, t) are stably sorted by (r, bucket, t): sorted
 *             index i holds round i / T and position pos(i);
 *   chunks    the sorted sequence is cut into chunks of L (the last one may
 *             be shorter); chunk c attends to itself and to chunk c - 1
 *             (cyclically over the whole sorted sequence, as Hugging Face's
 *             look-back: the first chunk of round r sees the last chunk of
 *             round r - 1, and the first chunk of all sees the last one); with
 *             a single chunk, only to itself;
 *   keys      k_t = x_t / sqrt(mean_d(x_t^2) + eps) / sqrt(D)  (unit length up
 *             to eps; queries are x itself, not normalised nor scaled);
 *   logits    s_ij = x_pos(i) . k_pos(j)  for j in i's window, replaced by
 *             mask_value (-1e9) when causal and pos(j) > pos(i), and by
 *             self_mask_value (-1e5) when pos(j) == pos(i) (applied last:
 *             a position sees itself only when nothing else is visible);
 *   per round lse_i = log sum_j exp(s_ij),  o_i = sum_j exp(s_ij - lse_i) v_pos(j);
 *   combining out[t] = sum_r w_r(t) o_{i_r(t)},  w_r(t) = softmax_r(lse_{i_r(t)})
 *             where i_r(t) is the sorted index of (r, t) (the unsort).
 * These are Hugging Face's LSHSelfAttention constants and conventions
 * (transformers 4.30, num_chunks_before 1, num_chunks_after 0, no padding
 * mask); its query-key and value projections are outside the op.
 *
 * Memory: the op saves the window weights [B, H, R T, 2L], the per-round
 * outputs and log-sum-exps [B, H, R T, Dv + 1] and the sort [B, H, R T]:
 * O(R T L), never a T x T matrix.
 */
#ifndef ATTN_REFORMER_H
#define ATTN_REFORMER_H

#include <stdint.h>

#include "context.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_lsh_opts {
    int n_hashes;          /* R rounds, 1 <= R <= 64 */
    int n_buckets;         /* NB buckets, even, 2 <= NB <= 2^20 */
    int64_t chunk_len;     /* L, 1 <= L <= 4096 (a row's scores live on the stack) */
    int causal;            /* nonzero: position t sees only positions <= t */
    const float *rotations; /* [H, D, R, NB/2] (Hugging Face's layout), or NULL:
                               drawn N(0, 1) by attn_lsh_rotations from `seed` */
    uint64_t seed;         /* the rotations' seed when rotations is NULL */
    float mask_value;      /* 0: -1e9 (Hugging Face's float32 mask value) */
    float self_mask_value; /* 0: -1e5 (Hugging Face's float32 self-mask value) */
    float norm_eps;        /* 0: 1e-6 (the key normalisation's epsilon) */
    const int32_t *buckets_in; /* [B, H, R, T] buckets in [0, NB) to use instead of hashing
                                  (e.g. those of the forward, when a reversible layer
                                  recomputes the attention from reconstructed inputs, as
                                  Hugging Face caches them), or NULL */
    int32_t *buckets_out;  /* [B, H, R, T]: receives the buckets used, or NULL */
} attn_lsh_opts;

/* Fills rot[H * D * R * NB/2] with N(0, 1) draws of the sequential
 * generator seeded with `seed` (attn_rng), in [H, D, R, NB/2] order: the
 * same seed always gives the same rotations, hence the same buckets.
 * Errors: ATTN_ERR_INVALID_ARG (NULL rot, a size < 1, NB odd). */
attn_status attn_lsh_rotations(float *rot, int64_t H, int64_t D, int n_hashes, int n_buckets,
                               uint64_t seed);

/* The buckets of every (b, h, r, t): buckets[((b H + h) R + r) T + t] in
 * [0, NB), from qk [B, H, T, D] (host floats, contiguous) and rot
 * [H, D, R, NB/2]. Errors: ATTN_ERR_INVALID_ARG. */
attn_status attn_lsh_hash(const float *qk, int64_t B, int64_t H, int64_t T, int64_t D,
                          const float *rot, int n_hashes, int n_buckets, int32_t *buckets);

/* LSH attention of qk [B, H, T, D] and v [B, H, T, Dv] (f32) -> [B, H, T, Dv].
 * Gradients flow to qk (as query and as key) and v; the buckets are
 * computed once, in the call, and the backward reuses the saved sort.
 * With opts->buckets_in the rotations and the seed are not used.
 * Errors (NULL returned, message naming "lsh_attention" in the context):
 * ATTN_ERR_SHAPE, ATTN_ERR_DTYPE, ATTN_ERR_INVALID_ARG (an option out of
 * range, a bucket of buckets_in outside [0, NB), a non-finite qk),
 * ATTN_ERR_OOM. */
attn_tensor *attn_lsh_attention(attn_ctx *ctx, attn_tensor *qk, attn_tensor *v,
                                const attn_lsh_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
