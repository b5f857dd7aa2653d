/* attn/safetensors.h: the safetensors format: a strict reader. Parameter
 * stores and training checkpoints are saved and loaded through checkpoint.h.
 *
 * The format (https://github.com/huggingface/safetensors), all integers
 * little-endian:
 *
 *   8 bytes   N, unsigned 64-bit: the size of the header
 *   N bytes   a UTF-8 JSON object, beginning with '{', possibly padded at the
 *             end with spaces (writers pad it to a multiple of 8):
 *               {"__metadata__": {"key": "value", ...},
 *                "<name>": {"dtype": "F32", "shape": [2, 3],
 *                           "data_offsets": [begin, end]}, ...}
 *   the rest  the byte buffer: each tensor's elements, row-major,
 *             little-endian, at [begin, end) relative to the buffer's start
 *
 * The reader is strict, as the format's specification asks: the header size
 * must fit the file (and be at most 100 MB); the JSON must be well formed
 * (no duplicate keys, no unknown fields in a tensor entry, metadata values
 * strings only); every dtype known; shapes non-negative integers (at most
 * ATTN_ST_MAX_DIMS of them); each end - begin must equal numel * dtype size
 * (checked for overflow); and the tensors must cover the buffer exactly,
 * without overlaps, holes or trailing bytes. A file that breaks any rule
 * gives ATTN_ERR_FORMAT with a message naming the file, what is wrong and
 * where (a tensor name or a byte offset into the header).
 *
 * attn writes the format through checkpoint.h (atomically, F32 tensors
 * under the parameter store's names).
 */
#ifndef ATTN_SAFETENSORS_H
#define ATTN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- reading any safetensors file ------------------------------------------ */

/* The element types of the format. All are recognised (sizes known, so any
 * valid file opens); attn converts only F32, F16 and BF16 to float. */
typedef enum attn_st_dtype {
    ATTN_ST_BOOL = 0,
    ATTN_ST_U8,
    ATTN_ST_I8,
    ATTN_ST_F8_E4M3,
    ATTN_ST_F8_E5M2,
    ATTN_ST_I16,
    ATTN_ST_U16,
    ATTN_ST_F16,
    ATTN_ST_BF16,
    ATTN_ST_I32,
    ATTN_ST_U32,
    ATTN_ST_F32,
    ATTN_ST_I64,
    ATTN_ST_U64,
    ATTN_ST_F64,
    ATTN_ST_DTYPE_COUNT
} attn_st_dtype;

/* The format's spelling ("F32", "BF16", ...), "?" if invalid. */
const char *attn_st_dtype_name(attn_st_dtype dtype);
/* Bytes per element (0 if invalid). */
size_t attn_st_dtype_size(attn_st_dtype dtype);

#define ATTN_ST_MAX_DIMS 8

/* One tensor of an open file. Everything is owned by the file and valid
 * until attn_safetensors_close. */
typedef struct attn_st_tensor {
    const char *name;  /* NUL-terminated UTF-8 (a name containing "\u0000" is rejected) */
    attn_st_dtype dtype;
    int ndim;          /* 0 (a scalar) to ATTN_ST_MAX_DIMS */
    int64_t shape[ATTN_ST_MAX_DIMS];
    int64_t numel;     /* product of shape (1 for a scalar, 0 if a dimension is 0) */
    uint64_t offset;   /* of the first byte, from the start of the file */
    uint64_t nbytes;   /* numel * attn_st_dtype_size(dtype) */
    const void *data;  /* the raw little-endian bytes; NOT aligned for the dtype:
                          copy with memcpy or use attn_safetensors_read_f32 */
} attn_st_tensor;

typedef struct attn_safetensors attn_safetensors;

/* Reads and validates a whole file (it stays in memory until close).
 * Errors: ATTN_ERR_INVALID_ARG (NULL), ATTN_ERR_IO (cannot open or read),
 * ATTN_ERR_FORMAT (malformed), ATTN_ERR_OOM. *out is NULL on error. */
attn_status attn_safetensors_open(attn_safetensors **out, const char *path);

/* The same from bytes in memory (copied; the caller keeps `bytes`). */
attn_status attn_safetensors_open_memory(attn_safetensors **out, const void *bytes, size_t size);

void attn_safetensors_close(attn_safetensors *f); /* NULL is fine */

/* Tensors in the order of their data in the buffer. */
int attn_safetensors_count(const attn_safetensors *f);
/* NULL if index is out of range. */
const attn_st_tensor *attn_safetensors_at(const attn_safetensors *f, int index);
/* By exact name (binary search); NULL if absent. */
const attn_st_tensor *attn_safetensors_find(const attn_safetensors *f, const char *name);

/* The "__metadata__" entries, in file order. _at returns 0 and sets *key and
 * *value (owned by the file), or -1 if index is out of range. */
int attn_safetensors_metadata_count(const attn_safetensors *f);
int attn_safetensors_metadata_at(const attn_safetensors *f, int index, const char **key,
                                 const char **value);
/* The value of metadata `key`, or NULL if absent. */
const char *attn_safetensors_metadata(const attn_safetensors *f, const char *key);

/* Converts tensor t (of file f) from F32, F16 or BF16 to float into
 * dst[0 .. t->numel). Errors: ATTN_ERR_INVALID_ARG (NULL), ATTN_ERR_DTYPE
 * (another dtype). */
attn_status attn_safetensors_read_f32(const attn_st_tensor *t, float *dst);

/* ---- metadata entries (for writers) -------------------------------------------- */

/* A metadata entry: both strings UTF-8, NUL-terminated. */
typedef struct attn_kv {
    const char *key;
    const char *value;
} attn_kv;

#ifdef __cplusplus
}
#endif
#endif
