/* attn/idx.h: the IDX reader (MNIST, Fashion-MNIST).
 *
 * IDX is the format of MNIST and Fashion-MNIST (LeCun et al.): a 4-byte
 * magic, then one big-endian 32-bit size per dimension, then the elements in
 * row-major order:
 *
 *   byte 0, 1   0x00 0x00
 *   byte 2      element type: 0x08 = unsigned byte (the only one read here)
 *   byte 3      number of dimensions (1 to ATTN_IDX_MAX_DIMS here)
 *   4 * ndim    the dimensions, big-endian u32, each >= 1
 *   then        dims[0] * ... * dims[ndim-1] bytes, and nothing after them
 *
 * e.g. Fashion-MNIST's train-images-idx3-ubyte is [60000, 28, 28] and
 * train-labels-idx1-ubyte is [60000]. The reader is strict: any departure
 * from the layout above is an error naming the file and what was wrong.
 * Files must be uncompressed (scripts/setup.sh decompresses the .gz files
 * that Debian's dataset-fashion-mnist package ships); a gzip file is
 * recognised and reported as such.
 *
 * An "item" is one slice along the first dimension: an image of
 * dims[1] * ... * dims[ndim-1] bytes, or a single label when ndim is 1.
 */
#ifndef ATTN_IDX_H
#define ATTN_IDX_H

#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_IDX_MAX_DIMS 4

/* An IDX array of unsigned bytes, loaded into memory. */
typedef struct attn_idx {
    uint8_t *data;                    /* numel bytes, row-major; owned (malloc) */
    int ndim;                         /* 1 to ATTN_IDX_MAX_DIMS */
    int64_t dims[ATTN_IDX_MAX_DIMS];  /* dims[i] >= 1; unused entries are 0 */
    int64_t numel;                    /* product of the dims */
    int64_t item_size;                /* numel / dims[0]: bytes per item */
} attn_idx;

/* Reads the IDX file at `path` into *out, whose data the caller releases
 * with attn_idx_free. On error *out is left empty (data NULL, ndim 0) and
 * there is nothing to free.
 * Errors (the message names the path and the problem):
 *   ATTN_ERR_INVALID_ARG  path or out is NULL
 *   ATTN_ERR_IO           the file cannot be opened, is not a regular file,
 *                         or a read fails
 *   ATTN_ERR_FORMAT       bad magic (gzip-compressed files are named as
 *                         such), element type other than 0x08, 0 or more
 *                         than ATTN_IDX_MAX_DIMS dimensions, a dimension of
 *                         0, a product of dimensions that overflows, or a
 *                         file size other than header + product (truncated
 *                         or with trailing bytes)
 *   ATTN_ERR_OOM          the data cannot be allocated */
attn_status attn_idx_load(const char *path, attn_idx *out);

/* Frees the data of an attn_idx filled by attn_idx_load and empties it.
 * Safe on NULL, on an emptied or zero-initialised struct, and twice. */
void attn_idx_free(attn_idx *idx);

/* Converts items [first, first + count) to floats:
 *   out[i] = (byte / 255 - mean) / std
 * so mean = 0, std = 1 gives values in [0, 1]. `out` holds
 * count * item_size floats (caller-owned). Errors: ATTN_ERR_INVALID_ARG
 * (NULL idx/data/out, a range outside [0, dims[0]], std not finite and > 0,
 * mean not finite). */
attn_status attn_idx_to_f32(const attn_idx *idx, int64_t first, int64_t count, float mean,
                            float std, float *out);

/* Copies the bytes of items [first, first + count) into int32 (class labels
 * for attn_cross_entropy). `out` holds count * item_size ints (caller-owned).
 * Errors: ATTN_ERR_INVALID_ARG (NULL argument, range out of bounds). */
attn_status attn_idx_to_i32(const attn_idx *idx, int64_t first, int64_t count, int32_t *out);

#ifdef __cplusplus
}
#endif
#endif
