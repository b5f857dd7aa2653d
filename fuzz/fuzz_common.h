/* fuzz_common.h: shared by the libFuzzer harnesses of fuzz/ (docs/testing.md,
 * "Fuzzing") and by the seed generator fuzz/make_seeds.c.
 *
 * Most of attn's readers take a path, not bytes: fz_file() writes the input
 * into an anonymous in-memory file (memfd) and returns a path to it
 * ("/proc/self/fd/N"), so a harness touches no disk and leaves nothing
 * behind. Where memfd is not available it falls back to one file per process
 * in $TMPDIR (or /tmp), removed at exit. A harness may use FZ_SLOTS files at
 * once (e.g. a corpus and its labels).
 *
 * The harnesses include only the public "attn/attn.h". A broken invariant
 * (not merely a rejected file) is reported with fz_fail, which aborts: the
 * fuzzer keeps the input as a crash. */
#ifndef ATTN_FUZZ_COMMON_H
#define ATTN_FUZZ_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include "attn/attn.h"

#define FZ_SLOTS 2

static int fz_fd_[FZ_SLOTS] = {-1, -1};
static char fz_path_[FZ_SLOTS][256];
static char fz_tmp_[FZ_SLOTS][256]; /* the fallback files, removed at exit */

__attribute__((unused)) static void fz_cleanup_(void) {
    for (int i = 0; i < FZ_SLOTS; i++)
        if (fz_tmp_[i][0]) unlink(fz_tmp_[i]);
}

__attribute__((unused)) static void fz_fail(const char *what) {
    fprintf(stderr, "fuzz: invariant broken: %s\n", what);
    abort();
}

/* The path of a file that holds exactly data[0 .. size) (slot 0 or 1). */
__attribute__((unused)) static const char *fz_file(int slot, const uint8_t *data, size_t size) {
    if (fz_fd_[slot] < 0) {
#ifdef MFD_CLOEXEC
        fz_fd_[slot] = memfd_create("attn-fuzz", MFD_CLOEXEC);
#endif
        if (fz_fd_[slot] >= 0) {
            snprintf(fz_path_[slot], sizeof fz_path_[slot], "/proc/self/fd/%d", fz_fd_[slot]);
        } else {
            const char *dir = getenv("TMPDIR");
            snprintf(fz_tmp_[slot], sizeof fz_tmp_[slot], "%s/attn-fuzz-%ld-%d",
                     dir && dir[0] ? dir : "/tmp", (long)getpid(), slot);
            fz_fd_[slot] = open(fz_tmp_[slot], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (fz_fd_[slot] < 0) fz_fail("cannot create a temporary file");
            snprintf(fz_path_[slot], sizeof fz_path_[slot], "%s", fz_tmp_[slot]);
            atexit(fz_cleanup_);
        }
    }
    if (ftruncate(fz_fd_[slot], 0) != 0) fz_fail("ftruncate");
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(fz_fd_[slot], data + done, size - done, (off_t)done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) fz_fail("cannot write the temporary file");
        done += (size_t)w;
    }
    return fz_path_[slot];
}

/* The small parameter store of the checkpoint and parameter-file harnesses
 * and of their seeds (make_seeds.c): three tensors of a 3-4-2 MLP. */
__attribute__((unused)) static attn_params *fz_store(void) {
    attn_params *ps = NULL;
    if (attn_params_new(&ps) != ATTN_OK) return NULL;
    attn_tensor *t;
    if (attn_params_add(ps, "fc1.weight", 2, (int64_t[]){4, 3}, &t) != ATTN_OK ||
        attn_params_add(ps, "fc1.bias", 1, (int64_t[]){4}, &t) != ATTN_OK ||
        attn_params_add(ps, "fc2.weight", 2, (int64_t[]){2, 4}, &t) != ATTN_OK) {
        attn_params_free(ps);
        return NULL;
    }
    return ps;
}

#endif
