/* sha_rnn.h: the single-headed attention and the Boom feed-forward of the
 * SHA-RNN (Merity 2019, "Single Headed Attention RNN: Stop Thinking With
 * Your Head"; src/nn/sha_rnn.c, docs/sha_rnn.md). Conventions follow the
 * paper's released code (Smerity/sha-rnn, model.py: Attention with q=True,
 * k=False, v=False, r=False, one head; Overparam; Boom with shortcut=True).
 *
 * Single-headed attention over queries x_q [B, T, d] and a key/value
 * sequence x_kv [B, S, d] (in the SHA-LSTM: a memory of earlier positions
 * followed by the current ones):
 *   qs = sigmoid(s_q), ks = sigmoid(s_k)               (learned vectors [d])
 *   [c; f] = W_o sigmoid(s_v) + b_o,  vs = sigmoid(f) * tanh(c)
 *                                       (the "Overparam" value gate, W_o [2d, d])
 *   Q = qs * LN(W_q x_q + b_q)   (LN eps 1e-12, with gamma and beta)
 *   K = ks * x_kv,  V = vs * x_kv (no key or value projection)
 *   out = softmax(Q K^T / sqrt(d) + M) V
 * M is the causal mask aligned bottom-right (key s is visible to query t iff
 * s <= t + S - T): the memory is visible to every query. The attention
 * itself is the SDPA op with one head (sdpa.h).
 *
 * Boom (the paper's feed-forward with the second projection replaced by a
 * sum): for x [..., d],  u = GELU(W_1 x + b_1) [..., n d],
 * out[..., i] = sum_{j<n} u[..., j d + i], with the paper's GELU
 * x sigmoid(1.702 x). The SHA-LSTM uses n = 4.
 *
 * Every part is a composition of graph ops (linear, sigmoid, tanh, mul,
 * layernorm, sdpa, reshape, sum), so its backward is theirs; docs/sha_rnn.md
 * derives it. Parameters (attn_params, names under `prefix`, the released
 * code's names): qs, ks, vs [1, 1, d]; q.weight [d, d], q.bias [d];
 * qln.weight, qln.bias [d]; vq.l1.weight [2d, d], vq.l1.bias [2d]; Boom:
 * linear1.weight [n d, d], linear1.bias [n d]. Initialisation: the gate
 * vectors 0 (gates 0.5, as the released code), linear layers uniform
 * +-1/sqrt(fan_in) (torch's default), LN gamma 1, beta 0.
 * Errors: ATTN_ERR_INVALID_ARG (bad sizes), ATTN_ERR_SHAPE (inputs that are
 * not [B, T, d] / [B, S, d] with S >= T), ATTN_ERR_OOM; graph functions
 * return NULL with the message in the context.
 */
#ifndef ATTN_SHA_RNN_H
#define ATTN_SHA_RNN_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_sha_attention {
    int64_t d;
    attn_tensor *qs, *ks, *vs;   /* [1, 1, d] gate logits */
    attn_tensor *q_w, *q_b;      /* [d, d], [d] */
    attn_tensor *qln_g, *qln_b;  /* [d] */
    attn_tensor *vq_w, *vq_b;    /* [2d, d], [2d] */
} attn_sha_attention;

typedef struct attn_boom {
    int64_t d, n;             /* out width d, hidden n d */
    attn_tensor *w1, *b1;     /* [n d, d], [n d] */
} attn_boom;

/* Adds the parameters to ps under prefix ("" or NULL for none); rng NULL
 * leaves them zero (LN gamma too: to be loaded). */
attn_status attn_sha_attention_init(attn_sha_attention *m, attn_params *ps, const char *prefix,
                                    int64_t d, attn_rng *rng);
attn_status attn_boom_init(attn_boom *m, attn_params *ps, const char *prefix, int64_t d, int64_t n,
                           attn_rng *rng);

/* out [B, T, d] from x_q [B, T, d] and x_kv [B, S, d], S >= T; causal as
 * above when `causal` is nonzero (else every key is visible). weights, when
 * not NULL, receives the attention probabilities [B, 1, T, S] (no
 * gradient). */
attn_tensor *attn_sha_attention_forward(attn_ctx *ctx, const attn_sha_attention *m, attn_tensor *x_q,
                                        attn_tensor *x_kv, int causal, attn_tensor **weights);

/* out [..., d] = Boom(x [..., d]). */
attn_tensor *attn_boom_forward(attn_ctx *ctx, const attn_boom *m, attn_tensor *x);

/* The paper's GELU, x sigmoid(1.702 x), as graph ops. */
attn_tensor *attn_gelu_sigmoid(attn_ctx *ctx, attn_tensor *x);

#ifdef __cplusplus
}
#endif
#endif
