/* attn/params.h: the parameter store.
 *
 * A store owns named float32 tensors (weights) with their gradients. Names
 * follow PyTorch's state_dict ("encoder.layers.0.self_attn.in_proj_weight"),
 * so a store saves to and loads from the safetensors files PyTorch users
 * already have. Data and gradients live outside any context and survive
 * attn_ctx_reset; gradients accumulate across backward calls until
 * attn_params_zero_grad.
 *
 * The tensors handed out by attn_params_add stay valid (same address) until
 * attn_params_free. Their requires_grad is 1 (set it to 0 to freeze one).
 */
#ifndef ATTN_PARAMS_H
#define ATTN_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_params attn_params;

attn_status attn_params_new(attn_params **out);
void attn_params_free(attn_params *ps);

/* Adds a zero-initialised f32 parameter. Errors: ATTN_ERR_INVALID_ARG (name
 * empty, duplicated, or longer than 255 bytes; a dimension < 1),
 * ATTN_ERR_OOM. */
attn_status attn_params_add(attn_params *ps, const char *name, int ndim, const int64_t *shape,
                            attn_tensor **out);

int attn_params_count(const attn_params *ps);
attn_tensor *attn_params_at(const attn_params *ps, int index);
attn_tensor *attn_params_find(const attn_params *ps, const char *name); /* NULL if absent */
int64_t attn_params_numel(const attn_params *ps);                          /* all elements */

/* Sets every gradient to zero. */
void attn_params_zero_grad(attn_params *ps);

/* Initialisers (PyTorch's conventions): uniform in [-bound, bound], normal
 * with the given std, a constant. */
void attn_init_uniform(attn_tensor *t, float bound, attn_rng *rng);
void attn_init_normal(attn_tensor *t, float std, attn_rng *rng);
void attn_init_constant(attn_tensor *t, float value);

#ifdef __cplusplus
}
#endif
#endif
