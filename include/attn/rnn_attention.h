/* attn/rnn_attention.h: attention for recurrent encoder-decoders (Bahdanau et
 * al. 2015, Luong et al. 2015, Graves et al. 2014): the six alignment score
 * functions, global attention and Luong's local attention (local-m, local-p),
 * with source padding masked everywhere.
 *
 * A module is composed from the graph ops of ops.h (linear, bmm, add, tanh,
 * softmax with an additive mask, exp, ...): nothing here has its own
 * kernel, every step is recorded on the context's tape, and gradients reach
 * the query, the encoder states and every parameter through those ops.
 * Derivations, and how the gradient reaches local-p's position p_t:
 * docs/ops.md, "Attention for recurrent models".
 *
 * Dimension legend (tensor.h): B batch, T decoder steps (queries), S source
 * positions (keys), Dq query size, Dh encoder state ("memory") size, A the
 * hidden size of the additive score and of local-p's position network.
 *
 * Use:
 *   attn_attention att;
 *   attn_attention_config cfg = {.score = ATTN_SCORE_ADDITIVE,
 *                                .query_size = 256, .memory_size = 512};
 *   attn_attention_init(&att, ps, "decoder.attn.", &cfg, &rng);
 *   ...each step of a training loop, in a context:
 *   attn_attention_memory mem;
 *   attn_attention_memory_init(ctx, &att, enc_out, src_lengths, &mem);  // once per batch
 *   for t: c_t = attn_attention_forward(ctx, &att, &mem, s_t, t, &a_t, NULL);
 * The memory holds what depends only on the source sentence (the additive
 * score's W_h h, general's W_a h, cosine's normalised h, the padding mask),
 * so a step-by-step decoder computes it once per batch, not once per step.
 *
 * Errors follow ops.h: graph functions return NULL and keep the status and a
 * message naming the function, the shapes and what was expected in the
 * context (attn_ctx_status / attn_ctx_error) and in attn_last_error().
 * Threads and determinism: those of the underlying ops (bitwise repeatable
 * for a given thread count; see design.md).
 */
#ifndef ATTN_RNN_ATTENTION_H
#define ATTN_RNN_ATTENTION_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Alignment score functions, score(q_t, h_s) for a decoder state q_t [Dq] and
 * an encoder state h_s [Dh]. Parameters (names after the module's prefix;
 * each W is stored as torch.nn.Linear(in, out, bias=False).weight [out, in],
 * so y = x W^T):
 *   DOT         q . h                               needs Dq == Dh; none
 *   SCALED_DOT  q . h / sqrt(Dh)                    needs Dq == Dh; none
 *   GENERAL     q^T W_a h                           "W_a.weight" [Dq, Dh]
 *   ADDITIVE    v^T tanh(W_q q + W_h h)             "W_q.weight" [A, Dq],
 *               (Bahdanau's concat: W [q; h] =       "W_h.weight" [A, Dh],
 *               W_q q + W_h h)                      "v.weight"   [1, A]
 *   COSINE      beta * cos(q, h), cos(q, h) =       needs Dq == Dh;
 *               q.h / (sqrt(|q|^2 + eps)             "beta" [1]: the sharpening
 *                      sqrt(|h|^2 + eps)),           strength, learned unless
 *               eps = 1e-8 (a zero vector scores 0)  cfg.beta_fixed
 *   LOCATION    (W_a q)_s: Luong's a_t =            "W_a.weight" [S_max, Dq]
 *               softmax(W_a q_t), one logit per source position s < S_max
 *               from the target state alone (h's values are not read; only
 *               the first S logits are used for a memory of S positions).
 * Graves' content addressing is the cosine score with a key strength beta;
 * his beta comes from the controller at every step, ours is one scalar per
 * module (learned, or a fixed hyper-parameter).
 *
 * Two scores read the module's own past and so run one decoder step at a
 * time through attn_attention_step (below); attn_attention_forward refuses
 * them. Derivations: docs/location_attention.md.
 *   LOCATION_SENSITIVE  Chorowski et al. 2015 in Tacotron 2's form:
 *               e_i(s) = v^T tanh(W_q q_i + W_h h_s + U f_i(s) + b),
 *               f_i = F * [a_{i-1}; sum_{k<i} a_k] (a 1-D convolution, K
 *               filters of odd width R, zero "same" padding (R-1)/2, no
 *               bias, over the previous and the cumulative alignment; both
 *               are zero before the first step). Parameters:
 *               "W_q.weight" [A, Dq], "W_h.weight" [A, Dh], "v.weight" [1, A],
 *               "F.weight" [K, 2, R], "U.weight" [A, K], "U.bias" [A] (= b).
 *   DV3         Deep Voice 3's attention block (Ping et al. 2017):
 *               Q = W_q (q_i + P(i; rq)) + b_q, K_s = W_k (h_s + P(s; rk)) + b_k,
 *               V_s = W_v h_s + b_v, e_i(s) = Q . K_s (no 1/sqrt scale),
 *               a_i = dropout(softmax(e_i)), c_i = W_o (sqrt(S_b) sum_s a_i(s) V_s)
 *               + b_o [Dh]. P(p; r) [D] is the sinusoidal encoding at rate r:
 *               P(p; r)_{2j} = sin(r p / 10000^(2j/D)), P_{2j+1} = cos(same);
 *               positions count from 0 (i the decoder step, s the source
 *               position), rq = 1, rk = cfg.key_rate. sqrt(S_b), S_b the
 *               sentence's number of keys, is the paper's (ConvS2S's)
 *               m sqrt(1/m) scale of the averaged values. Dropout on the
 *               weights uses cfg.dropout (training only). At inference with a
 *               window (attn_attention_state.window_from), row b attends only
 *               to keys [p_b, p_b + cfg.window) (p_b the previous step's
 *               argmax; clipped to the sentence). Parameters: "W_q.weight"
 *               [A, Dq], "W_q.bias" [A], "W_k.weight" [A, Dh], "W_k.bias",
 *               "W_v.weight" [A, Dh], "W_v.bias", "W_o.weight" [Dh, A],
 *               "W_o.bias" [Dh]. W_k starts as a copy of W_q when Dq == Dh
 *               (the paper's identical initialisation). */
typedef enum attn_score {
    ATTN_SCORE_DOT = 0,
    ATTN_SCORE_SCALED_DOT = 1,
    ATTN_SCORE_GENERAL = 2,
    ATTN_SCORE_ADDITIVE = 3,
    ATTN_SCORE_COSINE = 4,
    ATTN_SCORE_LOCATION = 5,
    ATTN_SCORE_LOCATION_SENSITIVE = 6,
    ATTN_SCORE_DV3 = 7,
    ATTN_SCORE_COUNT
} attn_score;

/* Which source positions a query attends to (Luong et al. 2015, section 3).
 * With the score row e_t [S] and the padding rule (positions s >= S_b of
 * sentence b, S_b its source length, are masked everywhere):
 *   GLOBAL   a_t = softmax(e_t) over the S_b valid positions.
 *   LOCAL_M  monotonic: p_t = min(t, S_b - 1) (clipped to the sentence, and
 *            0 when S_b = 0), where t is the decoder step (the `step`
 *            argument plus the row's index in a block of T queries). The
 *            window W_t = {s : |s - p_t| <= D, 0 <= s < S_b} has at most
 *            2D + 1 positions, and a_t = softmax of e_t over W_t. No Gaussian:
 *            the paper defines local-m's a_t by its eq. (7), the plain align.
 *   LOCAL_P  predictive: p_t = S_b * sigmoid(v_p^T tanh(W_p q_t)), a real
 *            number in [0, S_b] (Luong's formula with S = S_b, the sentence's
 *            own length; positions are numbered from 0, so p_t may lie up to
 *            one position past the last, where the Gaussian below still
 *            weights the last positions). The window is centred on the
 *            nearest integer, c_t = floor(p_t + 1/2):
 *            W_t = {s : |s - c_t| <= D, 0 <= s < S_b} (2D + 1 positions before
 *            clipping, as the paper's fixed-size a_t), and
 *              a_t(s) = softmax over W_t of e_t (s) * exp(-(s - p_t)^2 / (2 sigma^2)),
 *            sigma = D / 2. The weights of a local-p row do not sum to 1
 *            (the paper's definition). Gradients reach p_t (and so W_p, v_p
 *            and q_t) through the Gaussian; the window's boundaries, which
 *            depend on p_t through floor, are constants (their derivative is
 *            zero almost everywhere).
 *            Parameters: "W_p.weight" [A, Dq], "v_p.weight" [1, A].
 * Local attention is computed as a mask over the full score row (it costs
 * what global attention costs); what it changes is the model. */
typedef enum attn_align {
    ATTN_ALIGN_GLOBAL = 0,
    ATTN_ALIGN_LOCAL_M = 1,
    ATTN_ALIGN_LOCAL_P = 2,
    ATTN_ALIGN_COUNT
} attn_align;

typedef struct attn_attention_config {
    attn_score score;
    attn_align align;
    int64_t query_size;     /* Dq >= 1 */
    int64_t memory_size;    /* Dh >= 1 */
    int64_t attn_size;      /* A >= 0 for ADDITIVE and LOCAL_P; 0 selects Dq */
    int64_t max_source_len; /* S_max >= 1 for LOCATION (ignored otherwise) */
    int window;             /* D >= 1 for LOCAL_M and LOCAL_P; DV3: the
                               monotonic window's width W >= 0 at inference
                               (0 selects 3); ignored otherwise */
    float beta;             /* COSINE: the initial (or fixed) sharpening
                               strength, finite; 0 selects 10 (so that a
                               cosine gap of 0.5 weighs e^5 = 148x). Ignored
                               otherwise. */
    int beta_fixed;         /* COSINE: nonzero freezes beta (its parameter
                               gets requires_grad = 0; it is still stored and
                               saved with the module) */
    int loc_filters;        /* LOCATION_SENSITIVE: K >= 0 filters (0 selects 32,
                               Tacotron 2's) */
    int loc_kernel;         /* LOCATION_SENSITIVE: odd width R >= 0 (0 selects 31,
                               Tacotron 2's) */
    float key_rate;         /* DV3: the keys' position rate rk, finite, >= 0 (0
                               selects 1); the queries' rate is 1 */
    float dropout;          /* DV3: dropout on the weights in [0, 1) (training) */
} attn_attention_config;

/* The module: its configuration (defaults resolved) and pointers to its
 * parameters, owned by the attn_params store given to attn_attention_init;
 * the ones a configuration does not use are NULL. A plain value: copy it
 * freely; it stays valid as long as the store does. */
typedef struct attn_attention {
    attn_attention_config cfg;
    attn_tensor *w_a;  /* GENERAL [Dq, Dh]; LOCATION [S_max, Dq] */
    attn_tensor *w_q;  /* ADDITIVE [A, Dq] */
    attn_tensor *w_h;  /* ADDITIVE [A, Dh] */
    attn_tensor *v;    /* ADDITIVE [1, A] */
    attn_tensor *beta; /* COSINE [1] */
    attn_tensor *w_p;  /* LOCAL_P [A, Dq] */
    attn_tensor *v_p;  /* LOCAL_P [1, A] */
    attn_tensor *f;    /* LOCATION_SENSITIVE [K, 2, R] */
    attn_tensor *u, *u_b; /* LOCATION_SENSITIVE [A, K], [A] */
    attn_tensor *b_q, *w_k, *b_k, *w_v, *b_v, *w_o, *b_o; /* DV3 (w_q above) */
} attn_attention;

/* Adds the module's parameters to `ps` under `prefix` (NULL or "" for none;
 * e.g. "decoder.attn.") followed by the names above, in the order
 * W_a, W_q, W_h, v, beta, W_p, v_p (those the configuration uses). With rng
 * non-NULL every weight is drawn uniform in [-1/sqrt(in), 1/sqrt(in)]
 * (torch.nn.Linear's initial range, `in` its input size) and beta is set to
 * cfg->beta (or 10); with rng NULL the weights stay zero (to be loaded) and
 * beta still gets its initial value.
 * Errors: ATTN_ERR_INVALID_ARG (a NULL argument, a score or align outside the
 * enum, a size < 1, Dq != Dh for DOT/SCALED_DOT/COSINE, attn_size < 0,
 * S_max < 1 for LOCATION, window < 1 for a local align, a non-finite beta, a
 * name already in the store or too long), ATTN_ERR_OOM; on error the
 * parameters added so far stay in the store and *att is zeroed. */
attn_status attn_attention_init(attn_attention *att, attn_params *ps, const char *prefix,
                                const attn_attention_config *cfg, attn_rng *rng);

/* What the scores need from one batch of source sentences, computed once and
 * reused by every decoder step (arena tensors: valid until attn_ctx_reset;
 * the struct itself is a plain value the caller owns). */
typedef struct attn_attention_memory {
    attn_tensor *values;       /* h [B, S, Dh] (contiguous): what the context averages */
    attn_tensor *keys;         /* what the scores read: DOT h; SCALED_DOT h / sqrt(Dh);
                                  GENERAL h W_a^T [B, S, Dq]; ADDITIVE h W_h^T
                                  [B, S, A]; COSINE h / sqrt(|h|^2 + eps);
                                  LOCATION NULL; LOCATION_SENSITIVE W_h h;
                                  DV3 W_k (h + P(s; rk)) + b_k [B, S, A] */
    attn_tensor *proj_values;  /* DV3: W_v h + b_v [B, S, A]; NULL otherwise */
    attn_tensor *value_scale;  /* DV3: sqrt(S_b) [B, 1, 1]; NULL otherwise */
    attn_tensor *mask;         /* F32 [B, 1, S]: 0 at valid positions, -inf at
                                  padding; NULL when nothing is padded */
    const int32_t *lengths;    /* S_b for every b (arena copy; all S without lengths) */
    int64_t batch, source_len; /* B, S */
} attn_attention_memory;

/* Prepares the memory of `att` for encoder states h [B, S, Dh] (B, S >= 1)
 * and source lengths I32 [B] with values in [0, S], or NULL (every sentence
 * has S positions). A length of 0 gives that sentence zero weights and a zero
 * context (never NaN). Gradients flow into h (and W_a or W_h) through keys
 * and values from every step that uses the memory.
 * Errors: ATTN_ERR_INVALID_ARG (NULL ctx/att/h/out, a length outside [0, S],
 * an uninitialised att), ATTN_ERR_SHAPE (h not [B, S, Dh]; lengths not [B];
 * S > S_max for LOCATION), ATTN_ERR_DTYPE, ATTN_ERR_OOM. On error the status
 * is also kept in the context and *out is zeroed; a context that already
 * holds an error makes it return that status at once (the first error and
 * its message are kept, as with the graph ops). */
attn_status attn_attention_memory_init(attn_ctx *ctx, const attn_attention *att, attn_tensor *h,
                                       attn_tensor *lengths, attn_attention_memory *out);

/* Attends from queries q to the memory:
 *   q [B, T, Dq] (T >= 1: a block of decoder steps, e.g. teacher-forced
 *     Luong-style scoring of a whole target sentence), or q [B, Dq] (one
 *     step; the T axis is then left out of every result).
 *   step: the decoder position of q's first row (row i is step + i); used by
 *     LOCAL_M only, must be >= 0.
 * -> the context c [B, T, Dh] (c_t = sum_s a_t(s) h_s);
 *    *weights (when not NULL) receives a [B, T, S], the alignment (masked
 *    positions are exactly 0; global rows with S_b >= 1 sum to 1);
 *    *positions (when not NULL) receives p_t [B, T] for the local aligns
 *    (LOCAL_P's carries gradients), NULL for GLOBAL.
 * All three are arena tensors recorded on the tape (gradients flow from any
 * of them). Cost: the score function's (ADDITIVE: O(B T S A) in the fused
 * attn_additive_score of ops.h, no [B, T, S, A] tensor), then O(B T S) for the
 * softmax and O(B T S Dh) for c.
 * Errors: ATTN_ERR_INVALID_ARG (NULL att/mem/q, step < 0, a memory from
 * another configuration), ATTN_ERR_SHAPE (q's batch or Dq), ATTN_ERR_DTYPE,
 * ATTN_ERR_OOM; on error every output is NULL. */
attn_tensor *attn_attention_forward(attn_ctx *ctx, const attn_attention *att,
                                    const attn_attention_memory *mem, attn_tensor *q, int64_t step,
                                    attn_tensor **weights, attn_tensor **positions);

/* What a stepped attention carries from one decoder step to the next
 * (a plain value the caller owns; its tensors are arena tensors).
 *   prev, cum  LOCATION_SENSITIVE: a_{i-1} and sum_{k<i} a_k, [B, S]; NULL
 *              means zeros (the first step). attn_attention_step replaces
 *              them by a_i and cum + a_i, on the tape, so that gradients
 *              flow back through the convolution into earlier steps.
 *   window_from  DV3 at inference: NULL (no window), or B ints, the first
 *              key of each row's window (the previous step's argmax; 0 at
 *              the first step). The caller updates it (attn_attention_argmax). */
typedef struct attn_attention_state {
    attn_tensor *prev, *cum;
    const int32_t *window_from;
} attn_attention_state;

/* One decoder step of any score: q [B, Dq] -> c [B, Dh], *weights a [B, S]
 * (may be NULL). Scores other than LOCATION_SENSITIVE and DV3 ignore st
 * (which may then be NULL) and run attn_attention_forward. `step` is the
 * decoder position (DV3's query position, LOCAL_M's window). Errors as
 * attn_attention_forward, and ATTN_ERR_SHAPE for a state of the wrong shape,
 * ATTN_ERR_INVALID_ARG for a NULL st on the two stepped scores or a window
 * start outside [0, S]. */
attn_tensor *attn_attention_step(attn_ctx *ctx, const attn_attention *att,
                                 const attn_attention_memory *mem, attn_tensor *q, int64_t step,
                                 attn_attention_state *st, attn_tensor **weights);

/* Constant names for messages and CLIs: "dot", "scaled_dot", "general",
 * "additive", "cosine", "location", "location-sensitive", "dv3"; "global",
 * "local-m", "local-p"; "?" for a value outside the enum. */
const char *attn_score_name(attn_score score);
const char *attn_align_name(attn_align align);

#ifdef __cplusplus
}
#endif
#endif
