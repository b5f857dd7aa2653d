/* attn/checkpoint.h: parameter stores and training checkpoints in safetensors
 * files (the format and its reader: safetensors.h).
 *
 * Tensor names are the parameter store's names (state_dict style), so files
 * written by PyTorch users (safetensors.torch.save_file(model.state_dict()))
 * load into a store built with the same names.
 *
 * Writes are atomic: the file is written to "<path>.tmp.<pid>", flushed and
 * fsync'ed, renamed over <path>, and the directory is fsync'ed. On any
 * failure the temporary file is removed and a previous file at <path> is
 * left untouched.
 */
#ifndef ATTN_CHECKPOINT_H
#define ATTN_CHECKPOINT_H

#include <stdint.h>

#include "optim.h"
#include "params.h"
#include "safetensors.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- parameter stores ---------------------------------------------------------- */

/* Writes every parameter of ps (F32, under its name, in store order) and the
 * n_meta metadata entries (meta may be NULL when n_meta is 0), atomically.
 * Errors: ATTN_ERR_INVALID_ARG (NULL path or store, a name or metadata
 * string that is not valid UTF-8, a parameter named "__metadata__", a
 * duplicated metadata key), ATTN_ERR_IO (with the system's reason; the
 * previous file is intact), ATTN_ERR_OOM. */
attn_status attn_safetensors_save_params(const char *path, const attn_params *ps,
                                         const attn_kv *meta, int n_meta);

/* Flags of attn_safetensors_load_params. */
#define ATTN_ST_ALLOW_UNEXPECTED 1u /* ignore tensors that are not parameters of the store */
#define ATTN_ST_ALLOW_MISSING 2u    /* keep the values of parameters absent from the file */
#define ATTN_ST_ALLOW_NONFINITE 4u  /* load NaN or Inf values (debugging a diverged run) */

/* Loads the file's tensors into the parameters of the same names. Strict by
 * default: every parameter must be present, with exactly its shape (same
 * number of dimensions), every value finite, and the file may hold no other
 * tensor. F32 tensors
 * are copied; F16 and BF16 ones are converted to float. Everything is
 * checked before anything is copied, so on error the store is unchanged.
 * Gradients are not touched. Errors: ATTN_ERR_INVALID_ARG, ATTN_ERR_IO,
 * ATTN_ERR_FORMAT (malformed file; a missing or an unexpected tensor),
 * ATTN_ERR_SHAPE (a shape differs), ATTN_ERR_DTYPE (a dtype other than F32,
 * F16, BF16), ATTN_ERR_NUMERIC (a NaN or Inf in a tensor, named with the
 * first such element; ATTN_ST_ALLOW_NONFINITE loads it anyway), ATTN_ERR_OOM. */
attn_status attn_safetensors_load_params(const char *path, attn_params *ps, unsigned flags);

/* ---- training checkpoints ---------------------------------------------------------- */

/* Writes a checkpoint, atomically: the parameters under their names, and
 * when opt is not NULL its state as F32 tensors
 *   "optimizer.state.<param name>.momentum_buffer"          (SGD with momentum)
 *   "optimizer.state.<param name>.exp_avg", ".exp_avg_sq"    (Adam, AdamW)
 * with metadata
 *   format "attn-checkpoint", version "1", step "<step>", and with opt:
 *   optimizer "sgd" | "adam" | "adamw", optimizer_steps, lr, weight_decay,
 *   momentum and nesterov (SGD), betas "b1,b2" and eps (Adam, AdamW)
 * (numbers in decimal, floats in the shortest form that reads back to the
 * same float), followed by the caller's n_meta entries. opt must have been
 * made for ps. Errors: those of attn_safetensors_save_params, and
 * ATTN_ERR_INVALID_ARG for a negative step, a user metadata key that is one
 * of the reserved keys above, or a parameter whose name begins with
 * "optimizer.state.". */
attn_status attn_checkpoint_save(const char *path, const attn_params *ps, attn_optim *opt,
                                 int64_t step, const attn_kv *meta, int n_meta);

/* Restores a checkpoint written by attn_checkpoint_save: the parameters
 * (strictly, as attn_safetensors_load_params with flags 0, the optimizer
 * tensors aside), and when opt is not NULL its state buffers and its step
 * count (optimizer_steps). The hyperparameters stored in the metadata are
 * informational: the optimizer keeps its own configuration (to resume with
 * another learning rate, say). *step (if not NULL) receives the checkpoint's
 * step. All is checked before anything is copied: on error, the store and
 * the optimizer are unchanged. Errors: ATTN_ERR_INVALID_ARG, ATTN_ERR_IO,
 * ATTN_ERR_FORMAT (not an attn checkpoint, an unknown version, a bad step,
 * missing or unexpected tensors, no optimizer state while opt is given, the
 * state of another kind of optimizer), ATTN_ERR_SHAPE, ATTN_ERR_DTYPE,
 * ATTN_ERR_NUMERIC (a NaN or Inf in a parameter or in the optimizer state,
 * named; a diverged run's weights load only through
 * attn_safetensors_load_params with ATTN_ST_ALLOW_NONFINITE), ATTN_ERR_OOM. */
attn_status attn_checkpoint_load(const char *path, attn_params *ps, attn_optim *opt,
                                 int64_t *step);

#ifdef __cplusplus
}
#endif
#endif
