/* fixture.h: reader of the test fixtures (".atfx" files) written by
 * tools/make_fixtures.py.
 *
 * Format, version 1 (every integer little-endian, no padding anywhere):
 *
 *   magic      4 bytes  "ATFX"
 *   version    u32      1
 *   n_tensors  u32
 *   seed       u64      the generator's seed (informational)
 *   n_tensors times:
 *     name_len u32      1 .. ATFX_MAX_NAME bytes
 *     name     name_len bytes of UTF-8 (no NUL), unique in the file
 *     dtype    u32      0 = f32, 2 = i32 (the values of attn_dtype)
 *     ndim     u32      0 .. ATFX_MAX_DIMS (0: a scalar with one element)
 *     shape    ndim x i64, each >= 0
 *     data     numel x 4 bytes, row-major, little-endian
 *
 * The file ends right after the last tensor; anything else is an error.
 * Conventions used by the op fixtures (docs/testing.md): "op" and
 * "c<k>.label" are text tensors (an i32 vector of the UTF-8 bytes, see
 * atfx_text), "n_cases" an i32 scalar, and case k's tensors are named
 * "c<k>.<what>".
 *
 * The reader is strict: a bad magic or version, a truncated file, an unknown
 * dtype, a size that overflows, a duplicated name or trailing bytes give
 * ATTN_ERR_FORMAT (ATTN_ERR_IO when the file cannot be read, ATTN_ERR_OOM
 * when memory runs out) and a message naming the file, the tensor and the
 * byte offset. It never crashes on malformed input and never prints.
 *
 * Usage:
 *   atfx_file *fx;
 *   char err[256];
 *   if (atfx_load("tests/fixtures/exp.atfx", &fx, err, sizeof err)) { ... err ... }
 *   const atfx_tensor *x = atfx_find(fx, "c0.x");          // NULL if absent
 *   const atfx_tensor *g = atfx_findf(fx, "c%d.grad.%s", k, "x");
 *   ... x->shape, x->ndim, atfx_f32(x)[i] ...
 *   atfx_free(fx);
 */
#ifndef ATTN_TEST_FIXTURE_H
#define ATTN_TEST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "attn/attn.h"

#define ATFX_VERSION 1
#define ATFX_MAX_DIMS 8
#define ATFX_MAX_NAME 4096

typedef struct atfx_tensor {
    char *name;        /* NUL-terminated copy of the name */
    attn_dtype dtype;  /* ATTN_F32 or ATTN_I32 */
    int ndim;          /* 0 .. ATFX_MAX_DIMS */
    int64_t shape[ATFX_MAX_DIMS];
    int64_t numel;     /* product of shape (1 for a scalar) */
    void *data;        /* numel elements, host byte order, aligned for float/int32 */
} atfx_tensor;

typedef struct atfx_file {
    uint32_t version;
    uint64_t seed;
    int n;               /* number of tensors */
    atfx_tensor *tensors; /* in file order */
} atfx_file;

/* Reads and validates the file at `path`. On success *out owns everything
 * (free with atfx_free) and ATTN_OK is returned; on error *out is NULL and
 * err (when non-NULL) receives a NUL-terminated message. */
attn_status atfx_load(const char *path, atfx_file **out, char *err, size_t err_size);

/* The same from a buffer of `size` bytes (`what` names it in messages). */
attn_status atfx_parse(const void *buf, size_t size, const char *what, atfx_file **out, char *err,
                       size_t err_size);

void atfx_free(atfx_file *fx);

/* The tensor with this exact name, or NULL. atfx_findf formats the name
 * first (printf style; names longer than 255 bytes are not found). */
const atfx_tensor *atfx_find(const atfx_file *fx, const char *name);
const atfx_tensor *atfx_findf(const atfx_file *fx, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Typed views of the data (no dtype check; look at t->dtype). */
static inline const float *atfx_f32(const atfx_tensor *t) { return (const float *)t->data; }
static inline const int32_t *atfx_i32(const atfx_tensor *t) { return (const int32_t *)t->data; }

/* Decodes a text tensor (i32 vector of byte values) into buf, NUL-terminated
 * and truncated to buf_size - 1 bytes. Returns buf; "" if t is NULL or not
 * an i32 tensor. */
char *atfx_text(const atfx_tensor *t, char *buf, size_t buf_size);

/* Writes "[2,3,4]" into buf; returns buf. */
char *atfx_shape_str(const atfx_tensor *t, char *buf, size_t buf_size);

#endif
