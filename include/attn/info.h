/* attn/info.h: what this build and this machine give attn.
 *
 * attn_info() reports the version, the SIMD level the CPU offers, the matrix
 * library in use (found at run time: attn loads OpenBLAS with dlopen when it
 * is installed, and falls back to its own blocked kernel otherwise) and the
 * core type OpenBLAS was told, the thread count and whether OpenMP is built
 * in. See docs/design.md, "Matrix products", for the core-type decision.
 */
#ifndef ATTN_INFO_H
#define ATTN_INFO_H

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_VERSION_MAJOR 0
#define ATTN_VERSION_MINOR 1
#define ATTN_VERSION_PATCH 0
#define ATTN_VERSION_STRING "0.1.0"
/* The ABI version: the shared library's soname is libattn.so.<ATTN_ABI_VERSION>
 * (the file libattn.so.<ATTN_VERSION_STRING>, `make install`). It is raised
 * whenever a public struct's layout or a function's signature changes in a way
 * that breaks programs linked against the previous library. */
#define ATTN_ABI_VERSION 0

typedef struct attn_info_t {
    const char *version;        /* "0.1.0" */
    const char *simd;           /* "avx512-bf16", "avx512", "avx2", "sse2", "none" */
    const char *blas;           /* "openblas 0.3.21 (libopenblas.so.0)" or "builtin" */
    const char *blas_core;      /* OpenBLAS's core name ("SkylakeX"), or "" */
    const char *blas_core_why;  /* who chose the core type, in words */
    const char *blas_policy;    /* which library takes which product, and why */
    int openmp;                 /* 1 if built with OpenMP */
    int max_threads;            /* threads available to ops */
    int abi;                    /* ATTN_ABI_VERSION of the library (not of the header
                                   the caller compiled against) */
} attn_info_t;

/* Fills *out (strings are static). Loads the BLAS on first call. */
void attn_info(attn_info_t *out);

/* ATTN_ABI_VERSION of the library that runs (a program built against one
 * header and run with another shared library can compare it with its own
 * ATTN_ABI_VERSION before trusting attn_info_t's layout). */
int attn_abi_version(void);

/* Chooses the matrix library before first use: "auto" (default: OpenBLAS if
 * it can be loaded, per shape where its kernels are narrower than the CPU:
 * attn_info().blas_policy says what was decided and why), "openblas"
 * (OpenBLAS for every product), or "builtin". The environment variable
 * ATTN_BLAS has the same effect. Returns ATTN_ERR_UNSUPPORTED if "openblas"
 * is asked for and cannot be loaded, ATTN_ERR_STATE after first use. */
attn_status attn_blas_select(const char *which);

/* The graph ops of this build, in table order (for listings and tools). */
int attn_op_count(void);
const char *attn_op_name(int index); /* NULL outside [0, attn_op_count()) */

#ifdef __cplusplus
}
#endif
#endif
