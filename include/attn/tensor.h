/* attn/tensor.h: the tensor descriptor.
 *
 * Dimension legend used in every shape contract of attn:
 *   B batch, T queries (target positions), S keys (source positions),
 *   H heads, D head size, C channels / model width, V vocabulary, N rows.
 * Shapes are written outermost first: [B, T, C] is row-major with C fastest.
 *
 * A tensor has up to ATTN_MAX_DIMS dimensions (0 dims = a scalar with one
 * element). Its data is row-major; `stride` (in elements) allows views
 * (permute, slice) that share the storage of a contiguous parent. Kernels
 * read contiguous data only: the graph ops make a contiguous copy of a
 * strided input themselves (recorded on the tape, so gradients flow).
 *
 * Ownership: tensors created by the graph ops and attn_tensor_new live in the
 * context's arena and die at attn_ctx_reset. Parameters live in an
 * attn_params store (params.h) and keep their data and gradient across steps.
 *
 * `grad` is float32, contiguous, in the tensor's logical shape, whatever the
 * tensor's layout and dtype. It is NULL until backward reaches the tensor.
 */
#ifndef ATTN_TENSOR_H
#define ATTN_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_MAX_DIMS 4

typedef enum attn_dtype {
    ATTN_F32 = 0,  /* IEEE float32 */
    ATTN_BF16 = 1, /* bfloat16 storage (upper half of a float32): the inputs of the fused
                      attention's bf16 forward (sdpa.h) */
    ATTN_I32 = 2,  /* int32: token ids, class targets */
    ATTN_DTYPE_COUNT
} attn_dtype;

typedef struct attn_tensor {
    attn_dtype dtype;
    int ndim;
    int64_t shape[ATTN_MAX_DIMS];
    int64_t stride[ATTN_MAX_DIMS]; /* in elements */
    void *data;                    /* the first element */
    float *grad;                   /* contiguous f32 gradient, logical shape, or NULL */
    int requires_grad;             /* gradients flow into this tensor */
    int is_param;                  /* owned by an attn_params store */
    int32_t node;                  /* index of the tape node that produced it, -1 if none */
    const char *name;              /* parameter name (state_dict style), else NULL */
} attn_tensor;

/* Size in bytes of one element of `dtype` (0 for an invalid dtype). */
size_t attn_dtype_size(attn_dtype dtype);
const char *attn_dtype_name(attn_dtype dtype);

/* Number of elements (1 for a scalar). */
int64_t attn_tensor_numel(const attn_tensor *t);

/* 1 if the elements are laid out densely in row-major order. */
int attn_tensor_is_contiguous(const attn_tensor *t);

/* Typed access to the data (no check of dtype beyond an assert-free cast). */
static inline float *attn_f32(const attn_tensor *t) { return (float *)t->data; }
static inline int32_t *attn_i32(const attn_tensor *t) { return (int32_t *)t->data; }
static inline uint16_t *attn_bf16(const attn_tensor *t) { return (uint16_t *)t->data; }

/* bfloat16 conversions of n elements: to bf16 rounds to nearest, ties to even
 * (a NaN stays a quiet NaN, inf stays inf); to f32 is exact. */
void attn_bf16_from_f32(uint16_t *dst, const float *src, int64_t n);
void attn_f32_from_bf16(float *dst, const uint16_t *src, int64_t n);

/* Writes "[2,3,4]" (or "[]" for a scalar) into buf; returns buf. */
char *attn_shape_str(const attn_tensor *t, char *buf, size_t buf_size);

#ifdef __cplusplus
}
#endif
#endif
