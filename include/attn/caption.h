/* attn/caption.h: the Show, Attend and Tell decoder (Xu et al. 2015): an
 * LSTM that writes a caption word by word while attending over the L
 * annotation vectors a_i (D dims each) of an image, with soft
 * (deterministic) attention, hard (stochastic, REINFORCE) attention, or
 * none (the mean annotation: the baseline). The math, the backward of each
 * part and the REINFORCE estimator: docs/caption.md.
 *
 * The decoder reads annotation tensors [B, L, D]; it knows nothing of the
 * encoder that made them (in attn the frozen CNN of the caption command).
 *
 * One step t (y_{t-1} the previous word, h_{t-1}, c_{t-1} the LSTM state):
 *   e_ti   = v^T tanh(W_a a_i + W_h h_{t-1})          additive score
 *   alpha_t = softmax_i(e_t)
 *   beta_t = sigmoid(f_beta h_{t-1} + b_beta)          the gating scalar
 *   z_t    = beta_t sum_i alpha_ti a_i                 SOFT
 *          = beta_t a_{s_t}, s_t ~ Multinoulli(alpha_t) HARD (or, for a row
 *            that draws "expected", the SOFT context)
 *          = mean_i a_i                                 NONE (no gate)
 *   h_t, c_t = LSTM([E y_{t-1}; z_t], h_{t-1}, c_{t-1})
 *   p(y_t) = softmax(L_o (E y_{t-1} + L_h h_t + L_z z_t) + b_o)  deep output
 * with h_0 = tanh(init_h(mean_i a_i)), c_0 = tanh(init_c(mean_i a_i)).
 *
 * Loss of a batch (N = number of target tokens that are not PAD):
 *   CE      = (1/N) sum_{b,t} -log p(y_bt)
 *   penalty = lambda (1/B) sum_b sum_i (1 - sum_t alpha_bti)^2  (the doubly
 *             stochastic regularisation, t over the row's target tokens)
 *   HARD adds the surrogate whose gradient is the REINFORCE estimator:
 *     -(1/N) sum_b [row b sampled] lambda_r (R_b - baseline) sum_t log alpha_{b,t,s_bt}
 *     -(1/N) lambda_e sum_{b,t} H(alpha_bt)
 *   with R_b = (1/n_b) sum_t log p(y_bt | s_b) (the mean log-likelihood of
 *   row b's n_b target tokens) held constant (no gradient), and
 *   baseline <- decay baseline + (1 - decay) mean_b R_b after each drawn batch
 *   (a baseline still at exactly 0 starts at the batch's mean reward).
 *
 * Parameters (torch state_dict names, W stored [out, in]):
 *   embed.weight [V, E]; init_h.weight [H, D], init_h.bias [H]; init_c.*;
 *   attn.W_q.weight [A, H] (W_h above), attn.W_h.weight [A, D] (W_a above),
 *   attn.v.weight [1, A]; f_beta.weight [1, H], f_beta.bias [1];
 *   lstm.weight_ih [4H, E + D], lstm.bias_ih [4H], lstm.weight_hh [4H, H],
 *   lstm.bias_hh [4H] (torch.nn.LSTMCell, gates i|f|g|o);
 *   out_h.weight [E, H], out_h.bias [E], out_z.weight [E, D];
 *   out.weight [V, E], out.bias [V];
 *   HARD: baseline [1] (not trained by gradients; saved with the model).
 *   NONE has no attn.* and no f_beta.*.
 *
 * Errors follow ops.h: the status, and a message naming the function and
 * the shapes, in the context and in attn_last_error().
 */
#ifndef ATTN_CAPTION_H
#define ATTN_CAPTION_H

#include <stdint.h>

#include "context.h"
#include "params.h"
#include "rng.h"
#include "rnn_attention.h"
#include "safetensors.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The token ids the decoder relies on (the first three ids of scenes.h's
 * vocabulary): PAD targets are ignored, BOS starts a caption, EOS ends it. */
#define ATTN_CAPTION_PAD_ID 0
#define ATTN_CAPTION_BOS_ID 1
#define ATTN_CAPTION_EOS_ID 2

typedef enum attn_caption_mode {
    ATTN_CAPTION_SOFT = 0,
    ATTN_CAPTION_HARD = 1,
    ATTN_CAPTION_NONE = 2,
    ATTN_CAPTION_MODE_COUNT
} attn_caption_mode;

typedef struct attn_caption_config {
    attn_caption_mode mode;
    int64_t vocab;     /* V >= 4 (PAD 0, BOS 1, EOS 2 and at least one word) */
    int64_t annot_dim; /* D >= 1 */
    int64_t embed;     /* E >= 1 */
    int64_t hidden;    /* H >= 1 */
    int64_t attn_size; /* A >= 0, 0 selects H */
    float lambda;         /* doubly stochastic penalty weight >= 0 */
    float reinforce;      /* HARD: lambda_r >= 0 (1: the unbiased estimator) */
    float entropy;        /* HARD: lambda_e >= 0, the entropy bonus */
    float baseline_decay; /* HARD: in [0, 1) (the paper's 0.9) */
    float mix;            /* HARD: probability in [0, 1] that a row uses the
                             expected (soft) context instead of a sample (0.5) */
    int64_t samples;      /* HARD: K in [0, 64] (0 reads as 1): the batch's rows
                             come in groups of K copies of one caption (the last
                             group may be shorter), each with its own draws; a
                             sampled row's baseline is the mean
                             reward of the other sampled rows of its group
                             (leave-one-out), the moving average when it has none */
    int reward_to_go;     /* HARD: 0 (the paper): every step of a row is credited
                             with the row's reward R_b; 1: step t with the return
                             G_bt = (1/n_b) sum_{t' >= t} log p(y_bt') (a draw
                             cannot change the words before it), its baseline
                             per step (leave-one-out at t, or the moving
                             average times the share of tokens from t on) */
} attn_caption_config;

/* Fills the defaults: lambda 0.001 (docs/caption.md, "Decisions"), reinforce 1,
 * entropy 0.01, baseline_decay 0.9, mix 0.5, samples 1, reward_to_go 0; the
 * sizes are left as given. */
void attn_caption_config_defaults(attn_caption_config *cfg);

typedef struct attn_caption {
    attn_caption_config cfg;
    attn_attention att; /* SOFT/HARD: the additive score (rnn_attention.h) */
    attn_tensor *embed, *init_h_w, *init_h_b, *init_c_w, *init_c_b, *beta_w, *beta_b;
    attn_tensor *w_ih, *b_ih, *w_hh, *b_hh, *out_h_w, *out_h_b, *out_z_w, *out_w, *out_b;
    attn_tensor *baseline; /* HARD only, else NULL */
} attn_caption;

/* Adds the parameters to ps (names above, in that order). rng non-NULL:
 * linear weights and biases uniform in +-1/sqrt(in) (torch.nn.Linear's),
 * the embedding uniform in +-0.1; rng NULL: zeros (to be loaded).
 * Errors: ATTN_ERR_INVALID_ARG (NULL, a size or weight out of range, a mode
 * outside the enum, a name already in ps), ATTN_ERR_OOM. */
attn_status attn_caption_init(attn_caption *m, attn_params *ps, const attn_caption_config *cfg,
                              attn_rng *rng);

/* The configuration as metadata entries "caption.mode", "caption.vocab",
 * "caption.annot_dim", "caption.embed", "caption.hidden", "caption.attn_size",
 * "caption.lambda", "caption.reinforce", "caption.entropy",
 * "caption.baseline_decay", "caption.mix", "caption.samples",
 * "caption.reward_to_go" into kv[0 .. 12], the values in buf
 * (ATTN_CAPTION_META * 32 bytes); a file without the last two (written
 * before they existed) reads as 1 sample, no reward-to-go. */
#define ATTN_CAPTION_META 13
void attn_caption_config_meta(const attn_caption_config *cfg, attn_kv *kv, char *buf);

/* Reads a configuration from a safetensors file's metadata (a checkpoint of
 * attn caption train) and checks it as attn_caption_init does. Errors: those
 * of attn_safetensors_open, ATTN_ERR_FORMAT (an entry missing or malformed). */
attn_status attn_caption_config_load(const char *path, attn_caption_config *cfg);

/* attn_caption_config_load, attn_caption_init into ps (rng NULL), then the
 * parameters from the file (its optimizer tensors ignored). Errors: those
 * of the three; the file's tensors must have the configuration's shapes. */
attn_status attn_caption_load(const char *path, attn_params *ps, attn_caption *m);

/* HARD's draws for one batch: either given (tests, replay) or drawn from
 * (seed, offset) by the loss. samples [B, T] locations in [0, L), expected
 * [B] 0/1 flags (1: the row uses the expected context and draws nothing). */
typedef struct attn_caption_draws {
    const int32_t *samples;
    const uint8_t *expected;
    int argmax; /* 1: the rows not flagged expected read the location of their
                   alpha's maximum (found in the forward, first on ties;
                   samples may then be NULL and is not read): the argmax
                   decoding's teacher-forced pass */
} attn_caption_draws;

typedef struct attn_caption_loss_out {
    attn_tensor *loss;    /* scalar: what to differentiate */
    attn_tensor *logits;  /* [B, T, V] */
    attn_tensor *alphas;  /* [B, T, L] (NULL for NONE) */
    attn_tensor *betas;   /* [B, T] (NULL for NONE) */
    double ce, penalty;   /* the two parts of the loss (penalty with lambda) */
    double reward;        /* HARD: mean R_b over the sampled rows (0 if none) */
    double baseline;      /* HARD: the moving-average baseline the surrogate used
                             (rows with a leave-one-out baseline do not use it) */
    int64_t tokens;       /* N */
} attn_caption_loss_out;

/* The loss of a batch: annot F32 [B, L, D] (constant: the encoder is
 * frozen), tokens I32 [B, T + 1] = BOS w_1 .. w_n EOS PAD.. (T >= 1; inputs
 * tokens[:, :T], targets tokens[:, 1:], PAD targets ignored).
 * HARD: draws NULL draws locations from the context's random stream
 * (attn_ctx_set_rng: seed, offset; the offset is not advanced) and updates
 * the baseline when gradients are on; given draws are used as they are
 * and the baseline is left alone. SOFT and NONE ignore draws.
 * Errors: ATTN_ERR_SHAPE (annot not [B, L, D] with D = annot_dim; tokens
 * not [B, T + 1]), ATTN_ERR_DTYPE, ATTN_ERR_INVALID_ARG (a token outside
 * [0, V), a draw outside [0, L)), ATTN_ERR_OOM. */
attn_status attn_caption_loss(attn_ctx *ctx, attn_caption *m, attn_tensor *annot, attn_tensor *tokens,
                              const attn_caption_draws *draws, attn_caption_loss_out *out);

/* How HARD decodes (greedy and teacher-forced evaluation): the context of
 * a step is either the expectation beta sum_i alpha_i a_i (deterministic,
 * as soft attention) or beta a_l at the most probable location l = argmax_i
 * alpha_i (deterministic, one location as in training's sampled rows).
 * SOFT and NONE ignore it. docs/caption.md compares the two. */
typedef enum attn_caption_decode {
    ATTN_CAPTION_DECODE_EXPECTED = 0,
    ATTN_CAPTION_DECODE_ARGMAX = 1,
    ATTN_CAPTION_DECODE_COUNT
} attn_caption_decode;

/* Greedy decoding of B captions from annot [B, L, D], gradients off: up to
 * max_len words each (1..256); ids [B, max_len] receives the words, then
 * EOS, then PAD; alphas (NULL or [B, max_len, L] floats) the attention of
 * each emitted word (zeros after EOS; NONE: uniform 1/L); betas (NULL or
 * [B, max_len]) the gate (NONE: 1). HARD decodes with the expected context.
 * The context is not reset (annot may live in its arena): the caller resets
 * it afterwards.
 * Errors: ATTN_ERR_SHAPE, ATTN_ERR_DTYPE, ATTN_ERR_INVALID_ARG, ATTN_ERR_OOM. */
attn_status attn_caption_greedy(attn_ctx *ctx, const attn_caption *m, attn_tensor *annot,
                                int64_t max_len, int32_t *ids, float *alphas, float *betas);

/* attn_caption_greedy with HARD's context chosen by decode (above);
 * attn_caption_greedy is decode = ATTN_CAPTION_DECODE_EXPECTED. Errors: those
 * of attn_caption_greedy; ATTN_ERR_INVALID_ARG for a decode outside the enum. */
attn_status attn_caption_greedy_decode(attn_ctx *ctx, const attn_caption *m, attn_tensor *annot,
                                       int64_t max_len, attn_caption_decode decode, int32_t *ids,
                                       float *alphas, float *betas);

/* "expected", "argmax" ("?" outside the enum), and back (-1 if unknown). */
const char *attn_caption_decode_name(attn_caption_decode decode);
int attn_caption_decode_parse(const char *s, attn_caption_decode *out);

/* "soft", "hard", "none" ("?" outside the enum), and back (-1 if unknown). */
const char *attn_caption_mode_name(attn_caption_mode mode);
int attn_caption_mode_parse(const char *s, attn_caption_mode *out);

#ifdef __cplusplus
}
#endif
#endif
