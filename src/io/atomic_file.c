/* atomic_file.c: atomic file writes (src/io/atomic_file_internal.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/internal.h"
#include "atomic_file_internal.h"

/* ATTN_ERR_IO "FN: cannot WHAT PATH: <the system's reason>" (from errno). */
static attn_status fail_io(const char *fn, const char *what, const char *path) {
    return attn__error(ATTN_ERR_IO, "%s: cannot %s %s: %s", fn, what, path, strerror(errno));
}

static void release(attn__atomic_file *f) {
    free(f->tmp);
    free(f->path);
    f->fp = NULL;
    f->tmp = f->path = NULL;
}

attn_status attn__atomic_open(attn__atomic_file *f, const char *fn, const char *path) {
    size_t plen = strlen(path);
    f->fp = NULL;
    f->fn = fn;
    f->tmp = malloc(plen + 32);
    f->path = malloc(plen + 1);
    if (!f->tmp || !f->path) {
        release(f);
        return attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    }
    memcpy(f->path, path, plen + 1);
    snprintf(f->tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    f->fp = fopen(f->tmp, "wb");
    if (!f->fp) {
        attn_status st = fail_io(fn, "create", f->tmp);
        release(f);
        return st;
    }
    return ATTN_OK;
}

void attn__atomic_abort(attn__atomic_file *f) {
    if (f->fp) fclose(f->fp);
    if (f->tmp) remove(f->tmp);
    release(f);
}

/* Makes the rename durable: fsync of the directory holding path. File
 * systems that cannot sync a directory (EINVAL) are accepted. */
static attn_status sync_dir(const char *path, const char *fn) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        if (n >= sizeof dir) return ATTN_OK; /* cannot name it; the data is written */
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return attn__error(ATTN_ERR_IO, "%s: %s was written, but its directory %s "
                                   "cannot be opened to sync it: %s", fn, path, dir,
                                   strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL)
        return attn__error(ATTN_ERR_IO, "%s: %s was written, but syncing directory %s failed: %s",
                           fn, path, dir, strerror(e));
    return ATTN_OK;
}

attn_status attn__atomic_commit(attn__atomic_file *f) {
    const char *fn = f->fn, *tmp = f->tmp;
    FILE *fp = f->fp;
    attn_status st = ATTN_OK;
    if (ferror(fp)) {
        errno = EIO;
        st = fail_io(fn, "write", tmp);
    }
    if (!st && fflush(fp) != 0) st = fail_io(fn, "flush", tmp);
    if (!st && fsync(fileno(fp)) != 0) st = fail_io(fn, "fsync", tmp);
    if (fclose(fp) != 0 && !st) st = fail_io(fn, "close", tmp);
    f->fp = NULL;
    if (!st && rename(tmp, f->path) != 0)
        st = attn__error(ATTN_ERR_IO, "%s: cannot rename %s to %s: %s", fn, tmp, f->path,
                         strerror(errno));
    if (st) {
        remove(tmp);
        release(f);
        return st;
    }
    st = sync_dir(f->path, fn);
    release(f);
    return st;
}
