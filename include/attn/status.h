/* attn/status.h: status codes and error messages.
 *
 * Every fallible function of attn returns an attn_status (or, for the graph
 * ops of ops.h, NULL with the status kept in the context). The library never
 * prints and never exits: the text of the most recent error on the calling
 * thread is available from attn_last_error(), and names the operation, the
 * shapes involved and what was expected, e.g.
 *   "matmul: a [4,3] and b [5,2]: inner dimensions differ (3 vs 5)".
 */
#ifndef ATTN_STATUS_H
#define ATTN_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_status {
    ATTN_OK = 0,
    ATTN_ERR_INVALID_ARG,  /* a NULL pointer, an out-of-range value, a bad option */
    ATTN_ERR_SHAPE,        /* shapes do not satisfy the op's contract */
    ATTN_ERR_DTYPE,        /* a tensor has the wrong element type */
    ATTN_ERR_OOM,          /* malloc failed, or the arena is full ("needed N, had M") */
    ATTN_ERR_IO,           /* a file could not be opened, read or written */
    ATTN_ERR_FORMAT,       /* a file is malformed (bad magic, truncated, bad header) */
    ATTN_ERR_NUMERIC,      /* NaN or Inf where a finite value is required */
    ATTN_ERR_NO_GRADIENT,  /* backward requested through something without one */
    ATTN_ERR_UNSUPPORTED,  /* valid request this build or CPU cannot serve */
    ATTN_ERR_STATE,        /* calls in the wrong order (e.g. backward twice) */
    ATTN_STATUS_COUNT
} attn_status;

/* A short constant English name of the status ("shape mismatch", ...). */
const char *attn_status_str(attn_status status);

/* The message of the most recent error raised on this thread, or "" if none.
 * The pointer stays valid until the next attn call on this thread. */
const char *attn_last_error(void);

/* Forget the thread's last error message. */
void attn_clear_error(void);

#ifdef __cplusplus
}
#endif
#endif
