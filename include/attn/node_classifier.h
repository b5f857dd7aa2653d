/* node_classifier.h: a node classifier over a graph with bag-of-words node
 * features, with or without graph self-attention over the neighbours
 * (src/models/node_classifier.c, docs/graph_attention.md "Node
 * classification"). The model of the Debian package-graph experiment.
 *
 *   x_i  = mean of emb[w] over the words w of node i (no word: 0)   [d]
 *   h_i  = relu(W_in x_i + b_in)                                    [E]
 *   per layer l (n_layers may be 0: the words alone):
 *     a  = graph_attention(q, k, v of LN(h)) over N(i), H heads of E / H
 *     h  = h + W_o a + b_o
 *   logits_i = W_c LN_f(h_i) + b_c                                  [C]
 *
 * Parameters (names in the order they are added): emb.weight [V + 1, d]
 * (row 0, the padding word, is never read), in.weight [E, d], in.bias,
 * layers.<l>.norm.weight/bias [E], layers.<l>.{q,k,v,out}.weight [E, E] and
 * .bias [E], norm_f.weight/bias, head.weight [C, E], head.bias [C].
 * Initialisation: emb N(0, 1), linear layers uniform +-1/sqrt(fan_in)
 * (torch's default), norms 1 and 0.
 * Errors: graph functions return NULL with the context's status; the others
 * a status with attn_last_error(). */
#ifndef ATTN_NODE_CLASSIFIER_H
#define ATTN_NODE_CLASSIFIER_H

#include <stdint.h>

#include "context.h"
#include "graph_attention.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_node_classifier_config {
    int64_t vocab;     /* V: word ids 1 .. V (0 pads) */
    int64_t max_words; /* L: word slots per node */
    int64_t emb_dim;   /* d */
    int64_t hidden;    /* E, divisible by n_heads */
    int64_t n_classes; /* C >= 2 */
    int n_layers;      /* graph attention layers (0: none) */
    int n_heads;       /* H */
    float dropout;     /* on h after each residual, in training mode */
} attn_node_classifier_config;

#define ATTN_NODE_CLASSIFIER_MAX_LAYERS 8

typedef struct attn_node_classifier {
    attn_node_classifier_config cfg;
    attn_tensor *emb, *w_in, *b_in;
    attn_tensor *norm_w[ATTN_NODE_CLASSIFIER_MAX_LAYERS], *norm_b[ATTN_NODE_CLASSIFIER_MAX_LAYERS];
    attn_tensor *w[ATTN_NODE_CLASSIFIER_MAX_LAYERS][4], *b[ATTN_NODE_CLASSIFIER_MAX_LAYERS][4];
    attn_tensor *norm_f_w, *norm_f_b, *w_c, *b_c;
} attn_node_classifier;

attn_status attn_node_classifier_init(attn_node_classifier *m, attn_params *ps,
                                      const attn_node_classifier_config *cfg, attn_rng *rng);

/* logits [N, C] for the nodes of graph g with word ids feat [N, L] (i32,
 * values in [0, V]); attention (when not NULL, n_layers > 0) receives the
 * last layer's edge weights [1, H, E]. */
attn_tensor *attn_node_classifier_logits(attn_ctx *ctx, const attn_node_classifier *m,
                                         attn_tensor *feat, const attn_graph *g,
                                         attn_tensor **attention);

/* Metadata "node.vocab", "node.max_words", "node.emb_dim", "node.hidden",
 * "node.n_classes", "node.n_layers", "node.n_heads", "node.dropout"
 * (ATTN_NODE_CLASSIFIER_META entries, values in buf of 32 bytes each). */
#define ATTN_NODE_CLASSIFIER_META 8
void attn_node_classifier_config_meta(const attn_node_classifier_config *c, attn_kv *kv,
                                      char *buf);
attn_status attn_node_classifier_config_load(const char *path, attn_node_classifier_config *c);

#ifdef __cplusplus
}
#endif
#endif
