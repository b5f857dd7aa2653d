/* attn/context.h: the context: activation arena, autograd tape, settings.
 *
 * One context serves one training or inference loop on one thread of the
 * caller. It owns:
 *   - the arena: one block of `arena_bytes` reserved at creation, from which
 *     every activation tensor, gradient and tape node of a step is carved.
 *     attn_ctx_reset() empties it (nothing is freed); when it is full the op
 *     fails with ATTN_ERR_OOM and a message "needed N bytes, had M free".
 *   - the tape: while gradients are enabled, each graph op whose inputs
 *     require gradients appends a node; attn_backward() walks the nodes in
 *     reverse and accumulates (+=) gradients into every tensor that requires
 *     them, parameters included.
 *   - the sticky error: the first failing op stores its status and message;
 *     later ops given a NULL input return NULL at once, so a model can chain
 *     calls and check once (attn_ctx_status) at the end of the step.
 *   - the settings: thread count, training flag (dropout), the RNG seed and
 *     counter (dropout masks are replayable from them), and `use_ref`, which
 *     forces every op through its plain scalar reference kernel.
 *
 * Threads: ops split work statically over `n_threads` (OpenMP when the build
 * has it); results are bitwise identical for a given thread count. The
 * context never starts threads outside an op call.
 */
#ifndef ATTN_CONTEXT_H
#define ATTN_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_ctx attn_ctx;

/* Kernel choice, the context's configuration (flags, 0 = the fastest kernels
 * this CPU has). Each flag is also set by its environment variable, read
 * once when the context is created (never inside a kernel):
 *   ATTN_KERNELS_PORTABLE  ATTN_FLASH_GENERIC=1  the portable (AVX2 / baseline)
 *                          tile kernels of the fused attention, not the
 *                          AVX-512 ones (nor the bf16 ones: bf16 is widened);
 *   ATTN_KERNELS_NO_AMX    ATTN_FLASH_NO_AMX=1   no AMX tiles: the bf16 fused
 *                          attention runs on AVX-512 BF16.
 * The scalar reference kernels have their own switch (use_ref, ATTN_USE_REF=1)
 * and the matrix library its own (attn_blas_select, ATTN_BLAS). */
enum { ATTN_KERNELS_PORTABLE = 1, ATTN_KERNELS_NO_AMX = 2 };

typedef struct attn_ctx_config {
    size_t arena_bytes; /* 0: 256 MiB (reserved lazily by the OS) */
    int n_threads;      /* 0: all available (OpenMP's count, else 1) */
    uint64_t seed;      /* seed of the context's RNG stream (dropout, init) */
    int guard_bytes;    /* debug: write 0xA5 guard bytes after every arena
                           allocation; attn_ctx_check_guards verifies them */
} attn_ctx_config;

/* Creates a context. cfg may be NULL for the defaults.
 * Errors: ATTN_ERR_OOM, ATTN_ERR_INVALID_ARG. */
attn_status attn_ctx_new(attn_ctx **out, const attn_ctx_config *cfg);
void attn_ctx_free(attn_ctx *ctx);

/* Empties the arena and the tape and clears the sticky error. Every tensor
 * created in the context since the last reset becomes invalid. Gradients of
 * parameters are untouched (zero them with attn_params_zero_grad). */
void attn_ctx_reset(attn_ctx *ctx);

/* The first error since the last reset (ATTN_OK if none) and its message. */
attn_status attn_ctx_status(const attn_ctx *ctx);
const char *attn_ctx_error(const attn_ctx *ctx);

/* Gradient recording (default on). Off: no tape nodes (inference). */
void attn_ctx_set_grad_enabled(attn_ctx *ctx, int enabled);
int attn_ctx_grad_enabled(const attn_ctx *ctx);

/* Training mode (default on): dropout is active only in training mode. */
void attn_ctx_set_training(attn_ctx *ctx, int training);
int attn_ctx_training(const attn_ctx *ctx);

/* Forces the scalar reference kernels (default off; also set by the
 * environment variable ATTN_USE_REF=1 at creation). */
void attn_ctx_set_use_ref(attn_ctx *ctx, int use_ref);
int attn_ctx_use_ref(const attn_ctx *ctx);

/* The kernel flags (ATTN_KERNELS_*) in force; set replaces them (the
 * environment's are applied at creation only). */
void attn_ctx_set_kernel_flags(attn_ctx *ctx, int flags);
int attn_ctx_kernel_flags(const attn_ctx *ctx);

/* Precision of the matrix products (matmul, bmm, linear and the reference
 * attention's products; docs/mixed_precision.md):
 *   ATTN_PRECISION_F32   (default) float32 throughout;
 *   ATTN_PRECISION_BF16  both operands of every product rounded to bfloat16,
 *                        the sums in float32 (AMX tiles where the CPU has
 *                        them); activations, gradients, weights and the
 *                        optimizer state stay float32 (the "master" copy).
 * The fused attention (attn_flash_sdpa) with f32 inputs rounds q, k, v, the
 * output's gradient, P and dS to bf16 and sums in f32, forward and backward,
 * where the CPU has AVX-512 BF16 (docs/transformer.md, "bf16 backward").
 * Other ops (softmax, norms, attn_sdpa's own products) are not affected.
 * set returns ATTN_ERR_INVALID_ARG for another value. */
enum { ATTN_PRECISION_F32 = 0, ATTN_PRECISION_BF16 = 1 };
attn_status attn_ctx_set_precision(attn_ctx *ctx, int precision);
int attn_ctx_precision(const attn_ctx *ctx);

/* Inference with fixed weights: the caller promises that w's values do not
 * change until attn_ctx_thaw_weights (or attn_ctx_free). Under
 * ATTN_PRECISION_BF16 on AMX, a product that reads w as its second operand
 * (linear's weight) then packs it into bf16 tiles once and reuses the copy
 * (about half of w's bytes, freed by thaw) instead of packing it at every
 * call; the results are the same bits. Elsewhere it changes nothing. w must
 * be contiguous f32. attn_ctx_reset keeps the frozen weights. */
attn_status attn_ctx_freeze_weight(attn_ctx *ctx, const attn_tensor *w);
/* Forgets every frozen weight and frees the packed copies. */
void attn_ctx_thaw_weights(attn_ctx *ctx);

int attn_ctx_threads(const attn_ctx *ctx);
void attn_ctx_set_threads(attn_ctx *ctx, int n_threads);

/* The RNG stream: seed and the next unused counter. Dropout takes counters
 * from here; setting them back replays the same masks. */
uint64_t attn_ctx_seed(const attn_ctx *ctx);
uint64_t attn_ctx_rng_offset(const attn_ctx *ctx);
void attn_ctx_set_rng(attn_ctx *ctx, uint64_t seed, uint64_t offset);

/* Data parallelism: the batch this context computes is rows [row0, row0 +
 * rows) of a global batch of `total` rows (batch-major: each row's elements
 * contiguous, the batch the outermost dimension). The ops that draw random
 * numbers (dropout) then give a tensor of n elements, n a multiple of rows,
 * the mask that the same op on the global batch (n / rows * total elements)
 * gives those rows, and take from the stream the counters the global
 * batch's op takes, so that every rank of a data-parallel run draws the
 * masks of its rows of the single-process run (a tensor whose n is not a
 * multiple of rows, which holds no batch dimension, gets the whole-tensor
 * mask). rows 0 (the default) turns it off. Persists across
 * attn_ctx_reset. Errors: ATTN_ERR_INVALID_ARG (a negative value, rows > 0
 * with row0 + rows > total). */
attn_status attn_ctx_set_batch_slice(attn_ctx *ctx, int64_t row0, int64_t rows, int64_t total);

/* Arena use in bytes: currently used, capacity, high-water mark. */
size_t attn_ctx_arena_used(const attn_ctx *ctx);
size_t attn_ctx_arena_capacity(const attn_ctx *ctx);
size_t attn_ctx_arena_peak(const attn_ctx *ctx);

/* Number of nodes on the tape. */
int attn_ctx_tape_size(const attn_ctx *ctx);

/* With guard_bytes set: ATTN_OK if every guard is intact, else ATTN_ERR_STATE
 * with the offending allocation in the message. */
attn_status attn_ctx_check_guards(const attn_ctx *ctx);

/* A new arena tensor of the given shape (contiguous). Its data is zeroed.
 * requires_grad is 0; set it to make the tensor a leaf that receives a
 * gradient. Returns NULL on error (status in the context). */
attn_tensor *attn_tensor_new(attn_ctx *ctx, attn_dtype dtype, int ndim, const int64_t *shape);

/* The same, with the data copied from `src` (numel elements of dtype). */
attn_tensor *attn_tensor_from(attn_ctx *ctx, attn_dtype dtype, int ndim, const int64_t *shape,
                              const void *src);

/* Reverse-mode autodiff from a scalar `loss` (one element): sets its gradient
 * to 1 and runs the backward of every tape node in reverse order,
 * accumulating into the gradients of all tensors that require them.
 * The tape is consumed: a second call without a new forward fails with
 * ATTN_ERR_STATE. Errors: ATTN_ERR_SHAPE (not a scalar), ATTN_ERR_STATE
 * (loss not produced by a recorded op, or not on this context's current
 * tape: made before the last attn_ctx_reset, or by another context),
 * ATTN_ERR_INVALID_ARG (NULL context or loss), ATTN_ERR_OOM. */
attn_status attn_backward(attn_ctx *ctx, attn_tensor *loss);

/* Like attn_backward, with an explicit upstream gradient for `out` (numel
 * floats, logical shape) instead of a scalar loss. */
attn_status attn_backward_from(attn_ctx *ctx, attn_tensor *out, const float *grad_out);

#ifdef __cplusplus
}
#endif
#endif
