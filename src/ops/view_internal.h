/* view_internal.h: private helpers of the view family (view.c) for the other
 * ops and the layers above them.
 */
#ifndef ATTN_VIEW_INTERNAL_H
#define ATTN_VIEW_INTERNAL_H

#include "../core/internal.h"

/* x itself if contiguous, else a recorded CONTIGUOUS copy (NULL on error). */
attn_tensor *attn__contig(attn_ctx *ctx, attn_tensor *x);

/* A [rows, cols] VIEW node of contiguous x starting at element `offset`
 * (rows * cols elements from there must lie inside x; not checked): one node
 * where slice + reshape take two. The gradient scatters back into x's.
 * `op` names the caller in error messages. */
attn_tensor *attn__view_rows(attn_ctx *ctx, const char *op, attn_tensor *x, int64_t rows,
                             int64_t cols, int64_t offset);

#endif
