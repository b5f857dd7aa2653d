/* bench_common.h: what the benchmarks of bench/ share: a monotonic clock,
 * a comparison for qsort, and the machine's f32 FMA peak measured with a
 * loop of independent FMA chains (AVX-512 when the CPU has it, else
 * AVX2+FMA), so that speeds are reported as a share of a measured peak. */
#ifndef ATTN_BENCH_COMMON_H
#define ATTN_BENCH_COMMON_H

#include <stdlib.h>

#include "attn/progress.h" /* attn_monotonic_s: the library's one clock */

static double now_s(void) { return attn_monotonic_s(); }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- the FMA peak ----------------------------------------------------------- */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* 24 independent chains of a = a * m + c: with 4 cycles of latency and two
 * FMA pipes, 8 would suffice; 24 leave no doubt. Returns a value that
 * depends on every chain so that nothing is optimised away. */
__attribute__((target("avx512f"))) static float fma_loop_avx512(long iters) {
    __m512 acc[24];
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-3f);
    for (int j = 0; j < 24; j++) acc[j] = _mm512_set1_ps((float)j);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 24
        for (int j = 0; j < 24; j++) acc[j] = _mm512_fmadd_ps(acc[j], m, c);
    }
    __m512 s = acc[0];
    for (int j = 1; j < 24; j++) s = _mm512_add_ps(s, acc[j]);
    float out[16];
    _mm512_storeu_ps(out, s);
    return out[0];
}

/* 12 chains (16 ymm registers: 12 + the two constants). */
__attribute__((target("avx2,fma"))) static float fma_loop_avx2(long iters) {
    __m256 acc[12];
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-3f);
    for (int j = 0; j < 12; j++) acc[j] = _mm256_set1_ps((float)j);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++) acc[j] = _mm256_fmadd_ps(acc[j], m, c);
    }
    __m256 s = acc[0];
    for (int j = 1; j < 12; j++) s = _mm256_add_ps(s, acc[j]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}
#endif

static volatile float g_sink;

/* flop per iteration of the loop in use, and its name; 0 if none. */
static double peak_flop_per_iter(const char **isa) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        *isa = "AVX-512 FMA";
        return 24.0 * 16 * 2;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *isa = "AVX2 FMA";
        return 12.0 * 8 * 2;
    }
#endif
    *isa = "none";
    return 0.0;
}

static float run_fma_loop(long iters) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f")) return fma_loop_avx512(iters);
    return fma_loop_avx2(iters);
#else
    (void)iters;
    return 0.0f;
#endif
}

/* Best of `trials` timings of the loop on nt threads (each runs it whole). */
__attribute__((unused)) static double measure_peak(int nt, long iters, int trials) {
    const char *isa;
    double per_iter = peak_flop_per_iter(&isa);
    if (per_iter == 0.0) return 0.0;
    double best = 0.0;
    for (int t = 0; t < trials; t++) {
        double t0 = now_s();
#if defined(_OPENMP)
#pragma omp parallel num_threads(nt)
#endif
        {
            float v = run_fma_loop(iters);
            if (v == 12345.0f) g_sink = v;
        }
        double dt = now_s() - t0;
        double gf = per_iter * (double)iters * nt / dt * 1e-9;
        if (gf > best) best = gf;
    }
    return best;
}

#endif
