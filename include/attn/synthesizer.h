/* synthesizer.h: synthesized attention (Tay et al. 2020, "Synthesizer:
 * Rethinking Self-Attention in Transformer Models"; src/nn/synthesizer.c,
 * docs/synthesizer.md). The attention weights are produced without (or
 * besides) query-key dot products:
 *
 *   Y = softmax(S) G(X),   G(X) = X W_v^T + b_v split into H heads of D,
 *   out = Y W_o^T + b_o   (Y's heads joined back to E = H D),
 *
 * where the logits S [B, H, T, T] are one component or a mixture:
 *   DENSE             S_t = W_2 relu(W_1 x_t + b_1) + b_2, one row of l
 *                     logits per token and head (the first T are used);
 *   RANDOM            S = R_h [l, l], a matrix of parameters (trained, or
 *                     fixed when fixed_random), the same for every input;
 *   FACTORIZED_DENSE  a_t = W_a x_t + b_a [a], b_t = W_b x_t + b_b [b] per
 *                     head, a b = l, S_t[j] = a_t[j mod a] b_t[j div a]
 *                     (the paper's two tiling functions: a repeated b times
 *                     and b's entries each repeated a times, so every
 *                     (a, b) pair appears once in a row);
 *   FACTORIZED_RANDOM S = R1_h R2_h^T with R1, R2 [l, k];
 *   DOT               S = Q K^T / sqrt(D) (the Transformer's own).
 * With more than one component S = sum_m alpha_m S_m, alpha = softmax(mix)
 * over the components, mix a learned vector that starts at 0 (the paper's
 * learned weights that sum to 1). For a sequence of T <= l tokens the
 * top-left T x T block of each l x l logit pattern is used; causal masks the
 * keys after each query (a decoder); dropout acts on the weights.
 *
 * The block is a composition of graph ops (linear, relu, mul, bmm, reshape,
 * permute, softmax, and the attention op with the synthesized logits as its
 * bias, which takes the gradient), so its backward is theirs.
 *
 * Parameters (attn_params, names under `prefix`, PyTorch's conventions):
 *   DENSE:      dense.0.weight [Dh, E], dense.0.bias [Dh],
 *               dense.1.weight [H l, Dh], dense.1.bias [H l]   (Dh = hidden)
 *   RANDOM:     random.weight [H, l, l]
 *   FACT. DENSE fdense.a.weight [H a, E], fdense.a.bias [H a],
 *               fdense.b.weight [H b, E], fdense.b.bias [H b]
 *   FACT. RAND. frandom.r1 [H, l, k], frandom.r2 [H, l, k]
 *   DOT:        q.weight [E, E], q.bias, k.weight [E, E], k.bias
 *   always:     v.weight [E, E], v.bias, out.weight [E, E], out.bias
 *   mixtures:   mix [number of components]
 * Initialisation: linear layers uniform +-1/sqrt(fan_in) (torch's default),
 * R normal(0, 1), R1 and R2 normal(0, k^-1/4) (so R1 R2^T has unit variance),
 * mix 0.
 * Errors: ATTN_ERR_INVALID_ARG for a configuration that does not fit (no
 * component, E not divisible by H, a not dividing l, sizes < 1, dropout
 * outside [0, 1)), ATTN_ERR_SHAPE for x that is not [B, T, E] with
 * 1 <= T <= l, ATTN_ERR_OOM.
 */
#ifndef ATTN_SYNTHESIZER_H
#define ATTN_SYNTHESIZER_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "tensor.h"
#include "transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The logit components, as bits of attn_synthesizer_config.components. */
enum {
    ATTN_SYNTH_DENSE = 1,
    ATTN_SYNTH_RANDOM = 2,
    ATTN_SYNTH_FACTORIZED_DENSE = 4,
    ATTN_SYNTH_FACTORIZED_RANDOM = 8,
    ATTN_SYNTH_DOT = 16,
    ATTN_SYNTH_ALL = 31
};

typedef struct attn_synthesizer_config {
    int64_t d_model;     /* E */
    int64_t n_heads;     /* H, divides E */
    int64_t max_len;     /* l: the longest sequence */
    unsigned components; /* a non-empty set of ATTN_SYNTH_* bits */
    int64_t hidden;      /* DENSE: the hidden width; 0 means E */
    int64_t factor_a;    /* FACTORIZED_DENSE: a, dividing l (b = l / a); 0
                            means the divisor of l closest to sqrt(l) from below */
    int64_t rank;        /* FACTORIZED_RANDOM: k; 0 means 8 */
    int fixed_random;    /* RANDOM, FACTORIZED_RANDOM: the matrices are not trained */
    int causal;          /* mask keys after the query */
    float dropout;       /* on the weights, in training mode */
    attn_attention_kernel kernel; /* the attention op; 0 = AUTO */
} attn_synthesizer_config;

typedef struct attn_synthesizer {
    attn_synthesizer_config cfg; /* defaults filled in */
    int64_t head_dim;            /* D = E / H */
    int64_t factor_b;            /* b = l / a */
    int n_components;
    attn_tensor *w1, *b1, *w2, *b2; /* DENSE */
    attn_tensor *r;                 /* RANDOM */
    attn_tensor *wa, *ba, *wb, *bb; /* FACTORIZED_DENSE */
    attn_tensor *r1, *r2;           /* FACTORIZED_RANDOM */
    attn_tensor *wq, *bq, *wk, *bk; /* DOT */
    attn_tensor *wv, *bv, *wo, *bo;
    attn_tensor *mix; /* [n_components], mixtures only */
} attn_synthesizer;

/* Adds the block's parameters to ps under prefix (may be "" or NULL) and
 * initialises them when rng is not NULL (else they stay zero). */
attn_status attn_synthesizer_init(attn_synthesizer *m, attn_params *ps, const char *prefix,
                                  const attn_synthesizer_config *cfg, attn_rng *rng);

/* out [B, T, E] = the block on x [B, T, E]. weights, when not NULL,
 * receives the attention weights [B, H, T, T] (before dropout; no
 * gradient). NULL on error (status and message in the context). */
attn_tensor *attn_synthesizer_forward(attn_ctx *ctx, const attn_synthesizer *m, attn_tensor *x,
                                      attn_tensor **weights);

/* Components by name: "dense", "random", "fdense" (factorized dense),
 * "frandom" (factorized random), "dot", joined by commas or '+' (e.g.
 * "dense+random"). 0 and *out set, or -1 with attn_last_error() naming the
 * unknown part. */
int attn_synth_parse(const char *s, unsigned *out);

/* The names of a component set joined by '+' into buf (n bytes). */
void attn_synth_name(unsigned components, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
