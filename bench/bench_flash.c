/* bench_flash.c: speed of the fused attention op attn_flash_sdpa (fp32),
 * forward and forward + backward, against the FMA peak it measures itself.
 *
 * Shapes (issue 5): B*H in {12, 48} (B = 1 or 4, H = 12), T = S in {256,
 * 1024, 4096, 16384}, D in {64, 128}, causal and not. FLOPs by the
 * convention of /work/shared/PERF.md: forward 4 B H T S D, half when causal;
 * forward + backward 3.5 x forward. Each case: one warm-up, then the median
 * of the timed runs; the share of the measured peak for the thread count;
 * the arena's peak above the inputs ("extra": outputs, saved lse, gradients
 * and tiles; the materialised op would need 2 B H T S floats on top) and
 * the part of it that is workspace ("work": extra less the output, lse and
 * gradients, which any implementation returns).
 *
 * Four kinds per shape: f32 forward, f32 forward + backward, bf16 forward
 * (bf16 q, k, v: inference) and bf16 forward + backward (f32 q, k, v under
 * ATTN_PRECISION_BF16: the training path, bf16 products with f32 sums). A
 * bf16 kind runs interleaved with its f32 twin (one f32 run, one bf16 run,
 * ...), and its row ends with "vs f32 N.NNx": the f32 twin's median CPU
 * time over its own, measured in the same loop, which is what a shared
 * machine can compare. Every row also gives the median CPU time of the
 * process ("cpu ... ms") beside the wall time.
 *
 * Usage: bench_flash [--quick] [--runs N] [--threads N]
 *   --quick   B*H 12, T 256 and 1024, D 64 (what a shared machine allows)
 *   --T N, --D N, --causal 0|1, --bwd 0|1: only the cases that match
 * Build: make bench.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/attn.h"
#include "bench_common.h"
#include "core/internal.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

/* ---- one case --------------------------------------------------------------------------- */

static void fill(float *x, size_t n, unsigned s) {
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One timed pass of kind (0 f32 fwd, 1 f32 fwd+bwd, 2 bf16 fwd, 3 bf16
 * fwd+bwd) on the inputs buf / hb: *wall, *cpu seconds, *extra arena bytes. */
static int one_run(attn_ctx *ctx, const int64_t sh[4], int causal, int kind, float *buf,
                   uint16_t *hb, double *wall, double *cpu, size_t *extra) {
    const int bwd = kind == 1 || kind == 3, bf16in = kind == 2;
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, bwd);
    attn_ctx_set_precision(ctx, kind == 3 ? ATTN_PRECISION_BF16 : ATTN_PRECISION_F32);
    const attn_dtype dt = bf16in ? ATTN_BF16 : ATTN_F32;
    void *x = bf16in ? (void *)hb : (void *)buf;
    attn_tensor *q = attn_tensor_from(ctx, dt, 4, sh, x);
    attn_tensor *k = attn_tensor_from(ctx, dt, 4, sh, x);
    attn_tensor *v = attn_tensor_from(ctx, dt, 4, sh, x);
    if (!q || !k || !v) return -1;
    q->requires_grad = k->requires_grad = v->requires_grad = bwd;
    const size_t used0 = attn_ctx_arena_used(ctx);
    attn_sdpa_opts o = {0};
    o.causal = causal;
    const double t0 = now_s(), c0 = cpu_s();
    attn_tensor *y = attn_flash_sdpa(ctx, q, k, v, &o, NULL);
    if (!y || (bwd && attn_backward_from(ctx, y, buf) != ATTN_OK)) {
        fprintf(stderr, "bench_flash: %s\n", attn_last_error());
        return -1;
    }
    *cpu = cpu_s() - c0;
    *wall = now_s() - t0;
    *extra = attn_ctx_arena_peak(ctx) - used0;
    return 0;
}

static double median(double *t, int runs) {
    qsort(t + 1, (size_t)runs, sizeof(double), cmp_double);
    return t[1 + runs / 2];
}

static int run_case(int B, int H, int64_t T, int64_t D, int causal, int kind, int runs, int nt,
                    double peak) {
    const int64_t sh[4] = {B, H, T, D};
    const int bwd = kind == 1 || kind == 3, bf16 = kind >= 2;
    const size_t n = (size_t)B * H * T * D;
    float *buf = malloc(sizeof(float) * n);
    uint16_t *hb = malloc(sizeof(uint16_t) * n);
    double *t = malloc(sizeof(double) * 4 * (size_t)(runs + 1));
    if (!buf || !hb || !t) {
        free(buf), free(hb), free(t);
        return -1;
    }
    fill(buf, n, 7u);
    attn_bf16_from_f32(hb, buf, (int64_t)n);
    const size_t arena = sizeof(float) * n * 12 + ((size_t)64 << 20);
    attn_ctx *ctx = NULL;
    attn_ctx_config cfg = {0};
    cfg.arena_bytes = arena;
    cfg.n_threads = nt;
    if (attn_ctx_new(&ctx, &cfg) != ATTN_OK) {
        free(buf), free(hb), free(t);
        return -1;
    }
    /* t: wall, cpu of kind; wall, cpu of its f32 twin (bf16 kinds), runs + 1 each */
    double *tw = t, *tc = t + runs + 1, *fw = t + 2 * (runs + 1), *fc = t + 3 * (runs + 1);
    size_t extra = 0, fextra = 0;
    int ok = 1;
    for (int r = 0; ok && r <= runs; r++) {
        if (bf16) ok = one_run(ctx, sh, causal, kind - 2, buf, hb, &fw[r], &fc[r], &fextra) == 0;
        if (ok) ok = one_run(ctx, sh, causal, kind, buf, hb, &tw[r], &tc[r], &extra) == 0;
    }
    if (ok) {
        const double med = median(tw, runs), cmed = median(tc, runs);
        double flop = 4.0 * B * H * (double)T * (double)T * (double)D * (causal ? 0.5 : 1.0);
        if (bwd) flop *= 3.5;
        const double gf = flop / med * 1e-9;
        const int noisy = tw[runs] > 1.1 * med && runs >= 3;
        /* beyond the inputs: the output, the saved lse, and with backward the
         * output's gradient and the three input gradients; the rest is work */
        const size_t kept = sizeof(float) * (n * (bwd ? 5 : 1) + (size_t)B * H * (size_t)T);
        const size_t work = extra > kept ? extra - kept : 0;
        char vs[64] = "";
        if (bf16) snprintf(vs, sizeof vs, "  vs f32 %.2fx", median(fc, runs) / cmed);
        printf("B*H %3d  T=S %5lld  D %3lld  %-6s  %-7s  %-4s  %2d thr  %10.3f ms  %7.1f GFLOP/s  "
               "%5.1f%% peak  extra %8.2f MiB  work %8.2f MiB  cpu %10.3f ms%s%s\n",
               B * H, (long long)T, (long long)D, causal ? "causal" : "full", bwd ? "fwd+bwd" : "fwd",
               bf16 ? "bf16" : "f32", nt, med * 1e3, gf, peak > 0 ? 100.0 * gf / peak : 0.0,
               (double)extra / 1048576.0, (double)work / 1048576.0, cmed * 1e3, vs,
               noisy ? "  (noisy)" : "");
        fflush(stdout);
    }
    free(t);
    free(buf);
    free(hb);
    attn_ctx_free(ctx);
    return ok ? 0 : -1;
}

int main(int argc, char **argv) {
    int quick = 0, runs = 5, nt = 0, only_bwd = -1, only_causal = -1;
    int64_t only_t = 0, only_d = 0;
    int only_bf16 = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--T") == 0 && i + 1 < argc)
            only_t = atoll(argv[++i]);
        else if (strcmp(argv[i], "--D") == 0 && i + 1 < argc)
            only_d = atoll(argv[++i]);
        else if (strcmp(argv[i], "--bwd") == 0 && i + 1 < argc)
            only_bwd = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dtype") == 0 && i + 1 < argc) {
            i++;
            only_bf16 = strcmp(argv[i], "bf16") == 0 ? 1 : strcmp(argv[i], "f32") == 0 ? 0 : -1;
        } else if (strcmp(argv[i], "--causal") == 0 && i + 1 < argc)
            only_causal = atoi(argv[++i]);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            nt = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--quick] [--runs N] [--threads N] [--T N] [--D N] "
                            "[--causal 0|1] [--bwd 0|1] [--dtype f32|bf16]\n", argv[0]);
            return 2;
        }
    }
    if (runs < 1) runs = 1;
#if defined(_OPENMP)
    if (nt < 1) nt = omp_get_max_threads();
#endif
    if (nt < 1) nt = 1;
    const double peak = measure_peak(nt, 10000000L, 3);
    printf("bench_flash: fp32 FMA peak measured %.1f GFLOP/s on %d thread(s)\n", peak, nt);
    static const int64_t Ts[4] = {256, 1024, 4096, 16384};
    static const int64_t Ds[2] = {64, 128};
    static const int Bs[2] = {1, 4};
    const int nb = quick ? 1 : 2, ntt = quick && !only_t ? 2 : 4, nd = quick && !only_d ? 1 : 2;
    int rc = 0;
    for (int bi = 0; bi < nb; bi++)
        for (int ti = 0; ti < ntt; ti++)
            for (int di = 0; di < nd; di++)
                for (int causal = 0; causal < 2; causal++)
                    for (int kind = 0; kind < 4; kind++) {
                        /* f32 forward, f32 forward + backward, bf16 forward, bf16
                         * forward + backward (f32 inputs under bf16 precision) */
                        const int bwd = kind == 1 || kind == 3, bf16 = kind >= 2;
                        if ((only_t && Ts[ti] != only_t) || (only_d && Ds[di] != only_d) ||
                            (only_bwd >= 0 && bwd != only_bwd) ||
                            (only_causal >= 0 && causal != only_causal) ||
                            (only_bf16 >= 0 && bf16 != only_bf16))
                            continue;
                        rc |= run_case(Bs[bi], 12, Ts[ti], Ds[di], causal, kind, runs, nt, peak);
                    }
    return rc ? 1 : 0;
}
