/* attn/safetensors.h: weights and checkpoints in the safetensors format.
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
 * Tensor names are the parameter store's names (state_dict style), so files
 * written by PyTorch users (safetensors.torch.save_file(model.state_dict()))
 * load into a store built with the same names.
 *
 * Writes are atomic: the file is written to "<path>.tmp.<pid>", flushed and
 * fsync'ed, renamed over <path>, and the directory is fsync'ed. On any
 * failure the temporary file is removed and a previous file at <path> is
 * left untouched.
 */
#ifndef ATTN_SAFETENSORS_H
#define ATTN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "optim.h"
#include "params.h"
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

/* ---- parameter stores ---------------------------------------------------------- */

/* A metadata entry: both strings UTF-8, NUL-terminated. */
typedef struct attn_kv {
    const char *key;
    const char *value;
} attn_kv;

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

/* Loads the file's tensors into the parameters of the same names. Strict by
 * default: every parameter must be present, with exactly its shape (same
 * number of dimensions), and the file may hold no other tensor. F32 tensors
 * are copied; F16 and BF16 ones are converted to float. Everything is
 * checked before anything is copied, so on error the store is unchanged.
 * Gradients are not touched. Errors: ATTN_ERR_INVALID_ARG, ATTN_ERR_IO,
 * ATTN_ERR_FORMAT (malformed file; a missing or an unexpected tensor),
 * ATTN_ERR_SHAPE (a shape differs), ATTN_ERR_DTYPE (a dtype other than F32,
 * F16, BF16), ATTN_ERR_OOM. */
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
 * ATTN_ERR_OOM. */
attn_status attn_checkpoint_load(const char *path, attn_params *ps, attn_optim *opt,
                                 int64_t *step);

#ifdef __cplusplus
}
#endif
#endif
