/* bench_flash_kernels.c: the fused attention's AVX-512 micro-kernels alone,
 * on operands that stay in the L1 and L2 caches, against the machine's own
 * FMA peak: what the register block costs, apart from staging, masks and
 * memory traffic (docs/transformer.md, "Tiling and threads").
 *
 * Fixed cases (one thread, D = 64, f32):
 *   product 8x32      C[64][64] += A[64][64] B[64][64] in 8 x 32 blocks
 *                     (fl_k8x32: 8 broadcasts and 2 loads per 16 FMAs)
 *   product 4x64      the same product in 4 x 64 blocks (fl_k8xn: 4 and 4)
 *   product^T 8x32    C += A^T B with A read by column (the backward's
 *                     dV and dK products), 8 x 32 blocks (fl_k8x32t)
 *   product^T 4x64    the same in 4 x 64 blocks (fl_k8xnt)
 *   forward 8x32      the forward's inner loop: for 64 query rows against 16
 *                     key tiles of 64 keys (K and V: 256 KiB at D = 64, in
 *                     L2; --key-tiles 64 puts them in L3 at D = 128), per
 *                     key tile the logits Q K^T of the 8 blocks of 8 rows,
 *                     their online-softmax updates (fl_block512), then
 *                     acc += P V, in 8 x 32 blocks
 *   forward 4x64      the same in 4 x 64 blocks (what fwd_tile512 runs)
 *   forward 4x64, no softmax   the products of the line above alone
 * The two block shapes give the same bits (each element of C is one FMA
 * chain over k in order); the bench checks that too. The machine's clock and
 * neighbours move single timings by tens of percent on a shared virtual
 * machine, so each case reports the best and the median of its repetitions.
 *
 * Usage: bench_flash_kernels [--reps N] [--D 64|128] [--key-tiles N]
 *   (default 15 timed repetitions; the forward cases at D = 64 against 16
 *   key tiles; the products are always 64 x 64 x 64)
 * Build: make bench.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "ops/flash_sdpa_internal.h"

#if defined(FL_X86)

/* the forward cases: head size and key tiles (--D, --key-tiles) */
static int64_t BK_D = 64, BK_NKT = 16;
#define BK_ATTR __attribute__((target("avx512f"), noinline))

typedef struct bk_buffers {
    float *a, *b, *c, *c2;          /* products: [64][64] each */
    float *kt, *v, *qs, *acc, *sb;  /* forward: K^T tiles, V, scaled Q, acc, logits */
    float m[QT];
    double l[QT];
    int bad[QT];
} bk_buffers;

BK_ATTR static void bk_product(float *c, const float *a, const float *b, int wide, int trans) {
    for (int64_t i = 0; i < 64; i += 8) {
        if (trans) {
            if (wide)
                fl_k8xnt(c + i * 64, 64, a + i, 64, b, 64, 64, 64);
            else
                for (int64_t j = 0; j < 64; j += 32) fl_k8x32t(c + i * 64 + j, 64, a + i, 64, b + j, 64, 64);
        } else if (wide) {
            fl_k8xn(c + i * 64, 64, a + i * 64, 64, b, 64, 64, 64, 1);
        } else {
            for (int64_t j = 0; j < 64; j += 32) fl_k8x32(c + i * 64 + j, 64, a + i * 64, 64, b + j, 64, 64, 1);
        }
    }
}

/* 64 query rows against BK_NKT key tiles, as fwd_tile512 walks them: per
 * key tile, the logits of every block of 8 rows, their online-softmax
 * updates (unless !softmax), then acc += P V. */
BK_ATTR static void bk_forward(bk_buffers *w, int wide, int softmax) {
    for (int r = 0; r < QT; r++) w->m[r] = -INFINITY, w->l[r] = 0.0, w->bad[r] = 0;
    memset(w->acc, 0, sizeof(float) * QT * BK_D);
    const int on[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    for (int t = 0; t < BK_NKT; t++) {
        const float *kb = w->kt + t * KT * BK_D, *vb = w->v + t * KT * BK_D;
        for (int64_t rb = 0; rb < QT; rb += 8) {
            float *sb = w->sb + rb * KT;
            if (wide) {
                fl_k8xn(sb, KT, w->qs + rb * BK_D, BK_D, kb, KT, KT, BK_D, 0);
            } else {
                fl_k8x32(sb, KT, w->qs + rb * BK_D, BK_D, kb, KT, BK_D, 0);
                fl_k8x32(sb + 32, KT, w->qs + rb * BK_D, BK_D, kb + 32, KT, BK_D, 0);
            }
        }
        if (softmax)
            for (int64_t rb = 0; rb < QT; rb += 8)
                fl_block512(w->sb + rb * KT, on, w->m + rb, w->l + rb, w->bad + rb,
                            w->acc + rb * BK_D, BK_D, BK_D);
        for (int64_t rb = 0; rb < QT; rb += 8) {
            const float *sb = w->sb + rb * KT;
            if (wide) {
                fl_k8xn(w->acc + rb * BK_D, BK_D, sb, KT, vb, BK_D, BK_D, KT, 1);
            } else {
                for (int64_t j = 0; j < BK_D; j += 32)
                    fl_k8x32(w->acc + rb * BK_D + j, BK_D, sb, KT, vb + j, BK_D, KT, 1);
            }
        }
    }
}

static void fill(float *p, int64_t n, unsigned seed, float scale) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = scale * ((float)(seed >> 8) / 16777216.0f - 0.5f);
    }
}

/* case ids */
enum { P8, P64, PT8, PT64, F8, F64, F64_NOSOFT, N_CASES };
static const char *const NAMES[N_CASES] = {
    "product 8x32", "product 4x64", "product^T 8x32", "product^T 4x64",
    "forward 8x32", "forward 4x64", "forward 4x64, no softmax"};

/* One timed repetition of case c: returns seconds and sets *flop. */
static double run_case(bk_buffers *w, int c, double *flop) {
    /* about 10 ms per repetition */
    const int64_t fw = 102400 / (BK_NKT * BK_D);
    const int64_t inner = c <= PT64 ? 4000 : fw > 0 ? fw : 1;
    const double t0 = now_s();
    for (int64_t i = 0; i < inner; i++) {
        switch (c) {
        case P8: bk_product(w->c, w->a, w->b, 0, 0); break;
        case P64: bk_product(w->c, w->a, w->b, 1, 0); break;
        case PT8: bk_product(w->c, w->a, w->b, 0, 1); break;
        case PT64: bk_product(w->c, w->a, w->b, 1, 1); break;
        case F8: bk_forward(w, 0, 1); break;
        case F64: bk_forward(w, 1, 1); break;
        default: bk_forward(w, 1, 0); break;
        }
    }
    const double t = now_s() - t0;
    *flop = c <= PT64 ? inner * 2.0 * 64 * 64 * 64 : inner * 4.0 * QT * BK_NKT * KT * BK_D;
    return t;
}

int main(int argc, char **argv) {
    int reps = 15;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
            if (reps < 3) reps = 3;
            if (reps > 200) reps = 200;
        } else if (strcmp(argv[i], "--D") == 0 && i + 1 < argc) {
            BK_D = atoi(argv[++i]);
            if (BK_D != 64 && BK_D != 128) {
                fprintf(stderr, "bench_flash_kernels: --D is 64 or 128\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--key-tiles") == 0 && i + 1 < argc) {
            BK_NKT = atoi(argv[++i]);
            if (BK_NKT < 1 || BK_NKT > 1024) {
                fprintf(stderr, "bench_flash_kernels: --key-tiles is 1 to 1024\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: %s [--reps N] [--D 64|128] [--key-tiles N]\n", argv[0]);
            return 2;
        }
    }
    if (!__builtin_cpu_supports("avx512f")) {
        printf("bench_flash_kernels: this CPU has no AVX-512; the kernels measured here are "
               "the AVX-512 ones (nothing to do)\n");
        return 0;
    }
    bk_buffers w;
    const size_t sq = sizeof(float) * 64 * 64, kv = sizeof(float) * BK_NKT * KT * BK_D;
    w.a = aligned_alloc(64, sq), w.b = aligned_alloc(64, sq), w.c = aligned_alloc(64, sq);
    w.c2 = aligned_alloc(64, sq);
    w.kt = aligned_alloc(64, kv), w.v = aligned_alloc(64, kv);
    w.qs = aligned_alloc(64, sizeof(float) * QT * BK_D);
    w.acc = aligned_alloc(64, sizeof(float) * QT * BK_D);
    w.sb = aligned_alloc(64, sizeof(float) * QT * KT);
    if (!w.a || !w.b || !w.c || !w.c2 || !w.kt || !w.v || !w.qs || !w.acc || !w.sb) {
        fprintf(stderr, "bench_flash_kernels: out of memory\n");
        return 1;
    }
    fill(w.a, 64 * 64, 1u, 1.0f), fill(w.b, 64 * 64, 2u, 1.0f);
    fill(w.kt, BK_NKT * KT * BK_D, 3u, 1.0f), fill(w.v, BK_NKT * KT * BK_D, 4u, 1.0f);
    fill(w.qs, QT * BK_D, 5u, 0.3f);

    /* the two block shapes must agree bit for bit */
    int same = 1;
    for (int t = 0; t < 2; t++) {
        memset(w.c, 0, sq), memset(w.c2, 0, sq);
        bk_product(w.c, w.a, w.b, 0, t), bk_product(w.c2, w.a, w.b, 1, t);
        same &= memcmp(w.c, w.c2, sq) == 0;
    }
    float *first = malloc(sizeof(float) * QT * BK_D);
    if (!first) {
        fprintf(stderr, "bench_flash_kernels: out of memory\n");
        return 1;
    }
    bk_forward(&w, 0, 1);
    memcpy(first, w.acc, sizeof(float) * QT * BK_D);
    bk_forward(&w, 1, 1);
    same &= memcmp(first, w.acc, sizeof(float) * QT * BK_D) == 0;
    free(first);

    const double peak = measure_peak(1, 20000000L, 3);
    printf("bench_flash_kernels: fp32 FMA peak measured %.1f GFLOP/s on 1 thread; 8x32 and 4x64 "
           "results %s; forward cases at D = %lld against %lld key tiles\n", peak,
           same ? "bitwise equal" : "DIFFER", (long long)BK_D, (long long)BK_NKT);
    printf("%-26s %10s %10s %8s %8s\n", "case", "best GF/s", "median", "best %", "median %");
    double t[200];
    for (int c = 0; c < N_CASES; c++) {
        double flop = 0.0;
        run_case(&w, c, &flop); /* warm-up */
        for (int r = 0; r < reps; r++) t[r] = run_case(&w, c, &flop);
        qsort(t, (size_t)reps, sizeof(double), cmp_double);
        const double best = flop / t[0] * 1e-9, med = flop / t[reps / 2] * 1e-9;
        printf("%-26s %10.1f %10.1f %7.1f%% %7.1f%%\n", NAMES[c], best, med, 100.0 * best / peak,
               100.0 * med / peak);
    }
    free(w.a), free(w.b), free(w.c), free(w.c2), free(w.kt), free(w.v), free(w.qs), free(w.acc),
        free(w.sb);
    return same ? 0 : 1;
}

#else
int main(void) {
    printf("bench_flash_kernels: built without the x86 AVX-512 kernels (nothing to do)\n");
    return 0;
}
#endif
