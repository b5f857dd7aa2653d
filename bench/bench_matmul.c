/* bench_matmul.c: sgemm speed through the attn matmul op, against the
 * machine's own FMA peak.
 *
 * At start-up the peak is measured, not assumed: a loop of independent FMA
 * chains (AVX-512 when the CPU has it, else AVX2+FMA) on 1 thread and on all
 * threads. Then attn_matmul (no gradient) runs on fixed shapes, for both
 * matrix back ends in one process (the built-in blocked kernel and OpenBLAS
 * when it is loaded) and for the bf16 products (ATTN_PRECISION_BF16: "amx"
 * or "rounded-f32"; % peak is then against the f32 FMA peak), on 1 and all
 * threads: median of >= 5 timed runs after
 * one warm-up, GFLOP/s = 2 M N K / time, and the share of the measured peak
 * for that thread count. A case whose runs spread by more than 10% of the
 * median is flagged "noisy" (another process shares the cores).
 *
 * --short-k instead times the direct kernel for short K (gemm_small.c)
 * against OpenBLAS on its fixed list of shapes (docs/design.md, "Matrix
 * products"), every transpose, 1 thread, hot caches: median GFLOP/s of
 * each, the ratio direct / OpenBLAS, and whether attn__sgemm's rule gives
 * the product to the direct kernel ("rule: direct") or not.
 *
 * Usage: bench_matmul [--quick] [--runs N] [--kernel NAME] [--short-k]
 *   --quick   three small shapes only (a smoke test of the benchmark)
 *   --kernel  the built-in micro-kernel to time ("avx512 6x64", "avx512
 *             12x32", "avx2", "scalar"; default: the one the CPU picks)
 * Build: make bench (or gcc ... -Isrc bench/bench_matmul.c build/libattn.a
 *        -lm -ldl -fopenmp).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/attn.h"
#include "bench_common.h"
#include "core/internal.h"


/* ---- the products ------------------------------------------------------------ */

typedef struct shape {
    int64_t M, N, K;
    const char *note;
} shape;

static const shape FULL[] = {
    {1024, 1024, 1024, "square"},
    {512, 512, 512, "square"},
    {2048, 2048, 2048, "square"},
    {1024, 1024, 64, "attention Q K^T (N=1024, D=64)"},
    {1024, 64, 1024, "attention P V (N=1024, D=64)"},
    {4096, 768, 768, "projection (8192/2 tokens, C=768)"},
    {2048, 768, 256, "GPT d 256: QKV (16 x 128 tokens)"},
    {2048, 1024, 256, "GPT d 256: FFN up"},
    {2048, 256, 1024, "GPT d 256: FFN down"},
    {1024, 384, 384, "MiniLM: projection (32 x 32 tokens)"},
    {1024, 1536, 384, "MiniLM: FFN up"},
};
static const shape QUICK[] = {
    {512, 512, 512, "square"},
    {1024, 1024, 64, "attention Q K^T (N=1024, D=64)"},
    {1024, 64, 1024, "attention P V (N=1024, D=64)"},
    {2048, 768, 256, "GPT d 256: QKV (16 x 128 tokens)"},
};

static void fill(attn_tensor *t, unsigned seed) {
    float *p = attn_f32(t);
    int64_t n = attn_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
}

/* Median time of `runs` products a @ b on nt threads (after one warm-up);
 * *spread gets (max - min) / median. Returns a negative value on error. */
static double time_matmul(attn_tensor *a, attn_tensor *b, int nt, int runs, double *spread,
                          int precision) {
    attn_ctx *ctx = NULL;
    attn_ctx_config cfg = {0};
    cfg.n_threads = nt;
    size_t out_bytes = (size_t)a->shape[0] * (size_t)b->shape[1] * sizeof(float);
    cfg.arena_bytes = out_bytes + ((size_t)1 << 20);
    if (attn_ctx_new(&ctx, &cfg) != ATTN_OK) return -1.0;
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_precision(ctx, precision);
    double t[64];
    if (runs > 64) runs = 64;
    for (int r = -1; r < runs; r++) {
        attn_ctx_reset(ctx);
        double t0 = now_s();
        attn_tensor *y = attn_matmul(ctx, a, b);
        double dt = now_s() - t0;
        if (!y) {
            fprintf(stderr, "bench_matmul: %s\n", attn_ctx_error(ctx));
            attn_ctx_free(ctx);
            return -1.0;
        }
        if (r >= 0) t[r] = dt;
    }
    attn_ctx_free(ctx);
    qsort(t, (size_t)runs, sizeof t[0], cmp_double);
    double med = runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]);
    *spread = (t[runs - 1] - t[0]) / med;
    return med;
}

/* ---- --short-k: the direct kernel against OpenBLAS ------------------------------ */

static const shape SHORT_K[] = {
    {64, 64, 16, "attention logits, T 64, head 16"},
    {64, 16, 64, "attention P V, T 64, head 16"},
    {64, 64, 256, ""},
    {256, 64, 64, ""},
    {1024, 64, 64, "GPT d 64: attention output projection"},
    {1024, 192, 64, "GPT d 64: Q K V projection"},
    {1024, 64, 256, "GPT d 64: FFN down"},
    {1024, 16, 64, ""},
    {16, 64, 256, ""},
    {2048, 1024, 256, "GPT d 256: FFN up"},
    {4096, 256, 256, ""},
};

typedef int (*product_fn)(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                          int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc);

static int run_blas(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                    const float *B, int64_t ldb, float *C, int64_t ldc) {
    attn__sgemm(1, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
    return 1;
}

static int run_direct(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                      const float *B, int64_t ldb, float *C, int64_t ldc) {
    return attn__sgemm_direct(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
}

/* Median seconds per product over `runs` timings of enough repetitions for
 * about 2 ms each; negative if fn declined. */
static double time_product(product_fn fn, int ta, int tb, const shape *sh, const float *A,
                           const float *B, float *C, int runs) {
    const int64_t lda = ta ? sh->M : sh->K, ldb = tb ? sh->K : sh->N;
    const double flop = 2.0 * (double)sh->M * (double)sh->N * (double)sh->K;
    const int reps = (int)(2e-3 * 100e9 / flop) + 1;
    double t[64];
    if (runs > 64) runs = 64;
    for (int r = -1; r < runs; r++) {
        const double t0 = now_s();
        for (int q = 0; q < reps; q++)
            if (!fn(ta, tb, sh->M, sh->N, sh->K, A, lda, B, ldb, C, sh->N)) return -1.0;
        if (r >= 0) t[r] = (now_s() - t0) / reps;
    }
    qsort(t, (size_t)runs, sizeof t[0], cmp_double);
    return runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]);
}

static int bench_short_k(int runs) {
    if (attn_blas_select("openblas") != ATTN_OK) {
        fprintf(stderr, "bench_matmul --short-k: OpenBLAS cannot be loaded (%s)\n",
                attn_last_error());
        return 1;
    }
    attn_info_t info;
    attn_info(&info);
    printf("attn %s bench_matmul --short-k: the direct kernel against %s, 1 thread\n",
           info.version, info.blas);
    size_t most = 0;
    for (size_t s = 0; s < sizeof SHORT_K / sizeof SHORT_K[0]; s++) {
        const shape *sh = &SHORT_K[s];
        size_t n = (size_t)(sh->M * sh->K + sh->K * sh->N + sh->M * sh->N);
        if (n > most) most = n;
    }
    float *buf = malloc(most * sizeof(float));
    if (!buf) {
        fprintf(stderr, "bench_matmul: out of memory\n");
        return 1;
    }
    unsigned seed = 7;
    for (size_t i = 0; i < most; i++) {
        seed = seed * 1664525u + 1013904223u;
        buf[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    printf("%-16s %-2s %10s %10s %8s  %-12s %s\n", "M x N x K", "op", "direct", "openblas",
           "ratio", "rule", "shape");
    for (size_t s = 0; s < sizeof SHORT_K / sizeof SHORT_K[0]; s++) {
        const shape *sh = &SHORT_K[s];
        const float *A = buf, *B = buf + sh->M * sh->K;
        float *C = buf + sh->M * sh->K + sh->K * sh->N;
        const double flop = 2.0 * (double)sh->M * (double)sh->N * (double)sh->K;
        for (int t = 0; t < 4; t++) {
            const int ta = t >> 1, tb = t & 1;
            const double td = time_product(run_direct, ta, tb, sh, A, B, C, runs);
            const double tbl = time_product(run_blas, ta, tb, sh, A, B, C, runs);
            char dims[32];
            snprintf(dims, sizeof dims, "%lldx%lldx%lld", (long long)sh->M, (long long)sh->N,
                     (long long)sh->K);
            if (td < 0) {
                printf("%-16s %c%c %10s %10.1f %8s  %-12s %s\n", dims, ta ? 'T' : 'N',
                       tb ? 'T' : 'N', "(no AVX-512)", flop / tbl * 1e-9, "-", "-", sh->note);
                continue;
            }
            printf("%-16s %c%c %10.1f %10.1f %7.2fx  %-12s %s\n", dims, ta ? 'T' : 'N',
                   tb ? 'T' : 'N', flop / td * 1e-9, flop / tbl * 1e-9, tbl / td,
                   attn__sgemm_small_fits(ta, tb, sh->M, sh->N, sh->K) ? "rule: direct"
                                                                       : "rule: blas",
                   sh->note);
            fflush(stdout);
        }
    }
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    int quick = 0, runs = 5, short_k = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
            if (runs < 5) runs = 5;
        } else if (strcmp(argv[i], "--kernel") == 0 && i + 1 < argc) {
            const char *k = argv[++i];
            if (attn__gemm_force_kernel(k) != 0) {
                fprintf(stderr, "bench_matmul: no built-in kernel '%s' on this CPU\n", k);
                return 2;
            }
        } else if (strcmp(argv[i], "--short-k") == 0) {
            short_k = 1;
        } else {
            fprintf(stderr, "usage: %s [--quick] [--runs N (>= 5)] [--kernel NAME] [--short-k]\n",
                    argv[0]);
            return 2;
        }
    }
    if (short_k) return bench_short_k(runs);

    attn_info_t info;
    attn_info(&info);
    int max_nt = info.max_threads > 1 ? info.max_threads : 1;
    printf("attn %s bench_matmul%s\n", info.version, quick ? " (quick)" : "");
    printf("  simd %s, openmp %d, threads %d\n", info.simd, info.openmp, max_nt);
    printf("  blas %s", info.blas);
    if (info.blas_core[0]) printf(", core %s (%s)", info.blas_core, info.blas_core_why);
    printf("\n  builtin kernel %s\n", attn__gemm_kernel_name());

    const char *isa;
    peak_flop_per_iter(&isa);
    long iters = quick ? 2000000L : 10000000L;
    double peak1 = measure_peak(1, iters, 3);
    double peakn = max_nt > 1 ? measure_peak(max_nt, iters, 3) : peak1;
    printf("  peak (%s, measured): %.1f GFLOP/s on 1 thread, %.1f on %d\n", isa, peak1, peakn,
           max_nt);
    if (max_nt > 1 && peakn < 0.75 * max_nt * peak1)
        printf("  warning: %d threads reach only %.2fx one thread: other processes share the "
               "cores, so multi-thread timings and %% of peak are unreliable\n",
               max_nt, peakn / peak1);
    printf("\n");

    const shape *shapes = quick ? QUICK : FULL;
    int n_shapes = quick ? (int)(sizeof QUICK / sizeof QUICK[0]) : (int)(sizeof FULL / sizeof FULL[0]);
    attn_ctx *data = NULL;
    if (attn_ctx_new(&data, NULL) != ATTN_OK) {
        fprintf(stderr, "bench_matmul: %s\n", attn_last_error());
        return 1;
    }
    int backends = attn__blas_loaded() ? 2 : 1;
    printf("%-16s %-9s %3s %10s %9s %7s  %s\n", "M x N x K", "backend", "thr", "median ms",
           "GFLOP/s", "% peak", "shape");
    int rc = 0;
    for (int s = 0; s < n_shapes && rc == 0; s++) {
        const shape *sh = &shapes[s];
        attn_ctx_reset(data);
        int64_t sa[2] = {sh->M, sh->K}, sb[2] = {sh->K, sh->N};
        attn_tensor *a = attn_tensor_new(data, ATTN_F32, 2, sa);
        attn_tensor *b = attn_tensor_new(data, ATTN_F32, 2, sb);
        if (!a || !b) {
            fprintf(stderr, "bench_matmul: %s\n", attn_ctx_error(data));
            rc = 1;
            break;
        }
        fill(a, 1u + (unsigned)s);
        fill(b, 1000u + (unsigned)s);
        double flop = 2.0 * (double)sh->M * (double)sh->N * (double)sh->K;
        char dims[32];
        snprintf(dims, sizeof dims, "%lldx%lldx%lld", (long long)sh->M, (long long)sh->N,
                 (long long)sh->K);
        /* backends: the built-in kernel, OpenBLAS, then the bf16 products
         * (ATTN_PRECISION_BF16: AMX where the CPU has it) */
        for (int be = 0; be < backends + 1; be++) {
            const int bf16 = be == backends;
            attn__gemm_force_builtin(be == 0);
            for (int ti = 0; ti < (max_nt > 1 ? 2 : 1); ti++) {
                int nt = ti == 0 ? 1 : max_nt;
                double spread;
                double t = time_matmul(a, b, nt, runs, &spread,
                                       bf16 ? ATTN_PRECISION_BF16 : ATTN_PRECISION_F32);
                if (t < 0) {
                    rc = 1;
                    break;
                }
                double gf = flop / t * 1e-9, pk = nt == 1 ? peak1 : peakn;
                printf("%-16s %-9s %3d %10.3f %9.1f %6.1f%%  %s%s\n", dims,
                       bf16 ? attn__gemm_bf16_kernel(0) : be == 0 ? "builtin" : "openblas", nt, t * 1e3, gf,
                       pk > 0 ? 100.0 * gf / pk : 0.0, sh->note, spread > 0.10 ? "  [noisy]" : "");
                fflush(stdout);
            }
        }
    }
    attn__gemm_force_builtin(0);
    attn_ctx_free(data);
    return rc;
}
