/* atomic_file_internal.h: atomic file writes, the one way attn replaces a
 * file (safetensors.c, and the data sets that write files, such as
 * src/data/gettext_parallel.c): the data go to "<path>.tmp.<pid>", which is
 * flushed, fsync'ed, closed, renamed over <path>, and then the directory is
 * fsync'ed, so a crash leaves the old file or the new one, never a torn one.
 */
#ifndef ATTN_ATOMIC_FILE_INTERNAL_H
#define ATTN_ATOMIC_FILE_INTERNAL_H

#include <stdio.h>

#include "../core/internal.h"

typedef struct attn__atomic_file {
    FILE *fp;        /* write here (fwrite, fprintf, ...) */
    char *tmp;       /* "<path>.tmp.<pid>" */
    char *path;      /* the final name */
    const char *fn;  /* names the caller in messages */
} attn__atomic_file;

/* Creates the temporary file of path. Errors (message "fn: ..."):
 * ATTN_ERR_OOM, ATTN_ERR_IO ("cannot create <tmp>: <reason>"); f is then
 * empty and needs no abort. */
attn_status attn__atomic_open(attn__atomic_file *f, const char *fn, const char *path);

/* Finishes the write: a write error seen on f->fp, then flush, fsync,
 * close, rename over path, fsync of the directory (a file system that
 * cannot sync a directory, EINVAL, is accepted). On failure the temporary
 * file is removed and a previous file at path is intact (except when only
 * the directory sync fails: the new file is then in place). Errors:
 * ATTN_ERR_IO naming the step and the system's reason. f is released in
 * every case. */
attn_status attn__atomic_commit(attn__atomic_file *f);

/* Gives up: closes and removes the temporary file; releases f. */
void attn__atomic_abort(attn__atomic_file *f);

#endif
