/* info.c: attn_info(): version, the CPU's SIMD level, the matrix library
 * and its core type, threads. The matrix-library facts come from gemm.c,
 * which loads OpenBLAS on first use. */
#include "internal.h"
#include "attn/info.h"


static const char *simd_level(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        if (__builtin_cpu_supports("avx512bf16")) return "avx512-bf16";
        return "avx512";
    }
    if (__builtin_cpu_supports("avx2")) return "avx2";
    return "sse2"; /* part of x86-64 itself */
#else
    return "none";
#endif
}

void attn_info(attn_info_t *out) {
    if (!out) return;
    out->version = ATTN_VERSION_STRING;
    out->abi = ATTN_ABI_VERSION;
    out->simd = simd_level();
    attn__blas_describe(&out->blas, &out->blas_core, &out->blas_core_why, &out->blas_policy);
#if defined(_OPENMP)
    out->openmp = 1;
    out->max_threads = omp_get_max_threads();
#else
    out->openmp = 0;
    out->max_threads = 1;
#endif
}

int attn_abi_version(void) { return ATTN_ABI_VERSION; }
