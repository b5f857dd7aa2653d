/* graph_attention.h: multi-head self-attention over the neighbours of a
 * graph (graph self-attention as in Ye et al. 2019, "BP-Transformer", and
 * graph attention networks' masked attention; src/ops/graph_attention.c,
 * docs/graph_attention.md). Graph op GRAPH_ATTENTION.
 *
 * The graph is an adjacency list in compressed sparse row form: node i
 * attends to the nodes col[row_ptr[i] .. row_ptr[i + 1]) (include i itself
 * for a self-loop). For queries q, keys k and values v of the N nodes,
 *   s_ij = scale q_i . k_j   for j in N(i)
 *   P_ij = exp(s_ij - max_j s_ij) / sum_j exp(...)
 *   out_i = sum_{j in N(i)} P_ij v_j       (0 for a node without neighbours)
 * which is attn_sdpa with a bias of 0 on the edges and -inf elsewhere, in
 * O(E D) time and memory instead of O(N^2): the weights are kept per edge.
 *
 * Shapes: q [B, H, N, D], k [B, H, N, D], v [B, H, N, Dv] -> [B, H, N, Dv];
 * the same graph for every batch row and head. Backward (per edge, dO the
 * output's gradient): dP_ij = dO_i . v_j, dS_ij = P_ij (dP_ij - sum_j' P_ij'
 * dP_ij'), dq_i = scale sum_j dS_ij k_j, dk_j += scale dS_ij q_i,
 * dv_j += P_ij dO_i.
 *
 * Errors: ATTN_ERR_SHAPE for shapes that do not fit, ATTN_ERR_DTYPE for non-f32
 * inputs, ATTN_ERR_INVALID_ARG for a graph that is not a valid CSR of N
 * nodes: row_ptr[0] != 0, decreasing row_ptr, a column outside [0, N), or
 * columns of a row that are not strictly increasing (sorted, no duplicate
 * edges), more than 2^31 - 1 edges, a non-finite scale.
 */
#ifndef ATTN_GRAPH_ATTENTION_H
#define ATTN_GRAPH_ATTENTION_H

#include <stdint.h>

#include "context.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_graph {
    int64_t n_nodes;        /* N */
    const int64_t *row_ptr; /* [N + 1]: row_ptr[0] = 0, non-decreasing */
    const int32_t *col;     /* [row_ptr[N]]: sorted and distinct within a row */
} attn_graph;

typedef struct attn_graph_attention_opts {
    float scale; /* 0: 1 / sqrt(D) */
} attn_graph_attention_opts;

/* The op (the graph is copied into the context at the call). opts may be
 * NULL. When weights is not NULL it receives the edge weights [B, H, E]
 * (E = row_ptr[N], edge order of the CSR; no gradient). */
attn_tensor *attn_graph_attention(attn_ctx *ctx, attn_tensor *q, attn_tensor *k, attn_tensor *v,
                                  const attn_graph *graph, const attn_graph_attention_opts *opts,
                                  attn_tensor **weights);

/* Checks a CSR graph as the op does: ATTN_OK, or ATTN_ERR_INVALID_ARG with
 * attn_last_error() naming the first fault. */
attn_status attn_graph_check(const attn_graph *graph);

/* The binary-partitioning graph of BP-Transformer (Ye et al. 2019) over a
 * sequence of n tokens, as the authors' graph builder (github.com/yzh119/BPT,
 * graph_builder/builder.pyx, class BinaryPartition) constructs it:
 *   nodes: level 0 holds the n tokens (ids 0 .. n-1); level j holds
 *     ceil(n_{j-1} / 2) span nodes while n_{j-1} >= 2 (node v of level j
 *     covers the tokens of nodes 2v and 2v + 1 of level j - 1); the last
 *     level is the root;
 *   edges (node i attends to node j):
 *     a span node (and each token itself) attends to every token it covers
 *     (the builder's bottom-up edges);
 *     token i attends, at every level, to `step` nodes on its left and (not
 *     causal) `step` on its right, moving outwards: fine-to-coarse context
 *     whose spans double per level, with the builder's rule that a pointer
 *     of odd parity on the left (even on the right) takes the finer node one
 *     level down so that spans never overlap ones already taken.
 * With causal, no token attends to a node on its right (the builder's triu).
 * *n_nodes receives the node count; *row_ptr ([n_nodes + 1]) and *col (its
 * edges) are malloc'ed in the CSR layout attn_graph_attention takes (free
 * both). Errors: ATTN_ERR_INVALID_ARG (n < 1, step < 1, a graph over
 * 2^31 - 1 edges), ATTN_ERR_OOM. */
attn_status attn_bpt_graph(int64_t n, int step, int causal, int64_t *n_nodes, int64_t **row_ptr,
                           int32_t **col);

#ifdef __cplusplus
}
#endif
#endif
