/* safetensors_internal.h: the safetensors writer, for the modules that save
 * tensors (src/train/checkpoint.c). */
#ifndef ATTN_SAFETENSORS_INTERNAL_H
#define ATTN_SAFETENSORS_INTERNAL_H

#include "../core/internal.h"
#include "attn/safetensors.h"

/* One tensor to write: f32 data of numel elements, shape[ndim]. */
typedef struct attn__st_out {
    const char *name;
    int ndim;
    const int64_t *shape;
    const float *data;
    int64_t numel;
} attn__st_out;

/* Writes a safetensors file atomically (see safetensors.h): the n tensors
 * as F32 in order, after the n_meta metadata entries. Checks every name and
 * metadata string (valid UTF-8, no tensor named "__metadata__", no repeated
 * key). Errors name `fn`: ATTN_ERR_INVALID_ARG, ATTN_ERR_IO (the previous
 * file is intact), ATTN_ERR_OOM. */
attn_status attn__st_write(const char *fn, const char *path, const attn__st_out *t, int n,
                           const attn_kv *meta, int n_meta);

#endif
