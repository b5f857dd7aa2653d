/* attn/optim.h: optimizers, gradient clipping, learning-rate schedule.
 *
 * The update rules are PyTorch's (torch.optim.SGD, Adam, AdamW), so that a
 * model trained with attn and one trained with PyTorch from the same weights
 * follow the same trajectory:
 *   SGD:   g = grad + wd * p;  b = mu * b + g (b = g on the first step);
 *          p -= lr * (nesterov ? g + mu * b : b)      (dampening 0)
 *   Adam:  g = grad + wd * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *          p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *   AdamW: p -= lr * wd * p first (decoupled), then Adam with g = grad.
 * Parameters with requires_grad == 0 are skipped by the step and by
 * clipping. Adam's step count t is one count for the whole optimizer (PyTorch
 * counts per parameter; the two differ only for a parameter frozen for some
 * steps and unfrozen later).
 * The optimizer keeps its state (momentum buffers, moments, step count) per
 * parameter of the store it was made for; the store must not gain or lose
 * parameters afterwards. Checkpoints save and restore this state
 * (safetensors.h).
 */
#ifndef ATTN_OPTIM_H
#define ATTN_OPTIM_H

#include <stdint.h>

#include "params.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_optim_kind {
    ATTN_OPTIM_SGD = 0,
    ATTN_OPTIM_ADAM = 1,
    ATTN_OPTIM_ADAMW = 2
} attn_optim_kind;

typedef struct attn_optim_config {
    attn_optim_kind kind;
    float lr;           /* default learning rate (attn_optim_step may override) */
    float momentum;     /* SGD */
    int nesterov;       /* SGD */
    float beta1, beta2; /* Adam/AdamW; 0 and 0 mean the defaults 0.9, 0.999 */
    float eps;          /* Adam/AdamW; 0 means 1e-8 */
    float weight_decay; /* L2 for SGD/Adam, decoupled for AdamW */
} attn_optim_config;

typedef struct attn_optim attn_optim;

/* Errors: ATTN_ERR_INVALID_ARG (NULL, negative lr, beta outside [0, 1)),
 * ATTN_ERR_OOM. */
attn_status attn_optim_new(attn_optim **out, attn_params *ps, const attn_optim_config *cfg);
void attn_optim_free(attn_optim *opt);

/* One update of every parameter with requires_grad from its gradient, at
 * learning rate lr (pass cfg.lr for a constant rate). Gradients are not
 * zeroed. Errors: ATTN_ERR_NUMERIC if a gradient is not finite (no parameter
 * is changed then), ATTN_ERR_STATE if the store changed size. */
attn_status attn_optim_step(attn_optim *opt, float lr);

/* Steps taken so far (Adam's t). */
int64_t attn_optim_steps(const attn_optim *opt);
const attn_optim_config *attn_optim_get_config(const attn_optim *opt);

/* The state of parameter `index`: up to two buffers with its numel each
 * (SGD: momentum buffer; Adam/AdamW: exp_avg, exp_avg_sq). Returns the number
 * of buffers (0 for an invalid index); for checkpoints. */
int attn_optim_state(attn_optim *opt, int index, float **buf0, float **buf1);
void attn_optim_set_steps(attn_optim *opt, int64_t steps);

/* Scales all gradients so that their global L2 norm is at most max_norm, as
 * torch.nn.utils.clip_grad_norm_ (factor max_norm / (norm + 1e-6) when the
 * norm exceeds max_norm). Returns the norm before clipping (NaN or Inf if a
 * gradient is not finite; nothing is scaled then). */
float attn_clip_grad_norm(attn_params *ps, float max_norm);

/* Linear warmup from 0 to lr_max over `warmup` steps, then cosine decay to
 * lr_min at step `total` (lr_min after it). step counts from 0. */
float attn_lr_warmup_cosine(int64_t step, int64_t warmup, int64_t total, float lr_max,
                            float lr_min);

#ifdef __cplusplus
}
#endif
#endif
