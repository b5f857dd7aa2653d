/* bench_decode.c: the attention of one generated token, as a language model
 * with a KV cache runs it: one query row per head against the S cached keys
 * and values, read from the prefix of a cache buffer (a strided view), no
 * gradient.
 *
 * Fixed cases: B = 1, H = 12, T = 1, S in {512, 1024, 4096, 16384}, D in
 * {64, 128}; the cache holds S + 64 positions (its view is not contiguous).
 * Per case and op (attn_flash_sdpa, which takes its decode path here, and
 * the reference op attn_sdpa), one warm-up then the median over the timed
 * runs of the time per call (each run times a batch of calls), and the
 * bytes of K and V read per call over that time (GB/s): the op reads 2 H S D
 * floats and does 4 H S D FLOPs, so it is bound by memory, not by the FMA
 * units. bench/decode_torch.py times torch's scaled_dot_product_attention on
 * the same views; bench/bench_decode.sh puts the two side by side.
 *
 * Usage: bench_decode [--runs N] [--threads N] [--S N] [--D N]
 * Build: make bench.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "bench_common.h"
#include "core/internal.h"

/* Median seconds per call of op (1 fused, 0 reference) over `runs` runs of
 * `calls` calls; -1 on error. */
static double time_op(attn_ctx *ctx, attn_tensor *q, attn_tensor *cache_k, attn_tensor *cache_v,
                      int64_t S, int fused, int runs, int calls) {
    double *t = malloc(sizeof(double) * (size_t)(runs + 1));
    if (!t) return -1.0;
    const size_t mark = attn__arena_mark(ctx);
    for (int r = 0; r <= runs; r++) {
        const double t0 = now_s();
        for (int c = 0; c < calls; c++) {
            attn_tensor *k = attn_slice(ctx, cache_k, 2, 0, S), *v = attn_slice(ctx, cache_v, 2, 0, S);
            attn_sdpa_opts o = {0};
            o.causal = 1; /* one query at the end: it sees every key */
            attn_tensor *y = !k || !v ? NULL
                             : fused ? attn_flash_sdpa(ctx, q, k, v, &o, NULL)
                                     : attn_sdpa(ctx, q, k, v, &o, NULL);
            if (!y) {
                fprintf(stderr, "bench_decode: %s\n", attn_last_error());
                free(t);
                return -1.0;
            }
            attn__arena_rewind(ctx, mark);
        }
        t[r] = (now_s() - t0) / calls;
    }
    qsort(t + 1, (size_t)runs, sizeof(double), cmp_double);
    const double med = t[1 + runs / 2];
    free(t);
    return med;
}

int main(int argc, char **argv) {
    int runs = 7, nt = 1;
    int64_t only_s = 0, only_d = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            nt = atoi(argv[++i]);
        else if (strcmp(argv[i], "--S") == 0 && i + 1 < argc)
            only_s = atoll(argv[++i]);
        else if (strcmp(argv[i], "--D") == 0 && i + 1 < argc)
            only_d = atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--runs N] [--threads N] [--S N] [--D N]\n", argv[0]);
            return 2;
        }
    }
    if (runs < 1) runs = 1;
    if (nt < 1) nt = 1;
    static const int64_t Ss[4] = {512, 1024, 4096, 16384}, Ds[2] = {64, 128};
    const int64_t H = 12;
    int rc = 0;
    for (int si = 0; si < 4; si++)
        for (int di = 0; di < 2; di++) {
            const int64_t S = Ss[si], D = Ds[di], cap = S + 64;
            if ((only_s && S != only_s) || (only_d && D != only_d)) continue;
            attn_ctx *ctx = NULL;
            attn_ctx_config cfg = {0};
            cfg.arena_bytes = sizeof(float) * (size_t)(2 * H * cap * D + H * D) + ((size_t)64 << 20);
            cfg.n_threads = nt;
            if (attn_ctx_new(&ctx, &cfg) != ATTN_OK) return 1;
            attn_ctx_set_grad_enabled(ctx, 0);
            const int64_t qs[4] = {1, H, 1, D}, cs[4] = {1, H, cap, D};
            attn_tensor *q = attn_tensor_new(ctx, ATTN_F32, 4, qs);
            attn_tensor *ck = attn_tensor_new(ctx, ATTN_F32, 4, cs);
            attn_tensor *cv = attn_tensor_new(ctx, ATTN_F32, 4, cs);
            if (!q || !ck || !cv) return 1;
            unsigned seed = 11u;
            attn_tensor *all[3] = {q, ck, cv};
            for (int i = 0; i < 3; i++) {
                float *p = attn_f32(all[i]);
                for (int64_t j = 0; j < attn_tensor_numel(all[i]); j++) {
                    seed = seed * 1664525u + 1013904223u;
                    p[j] = (float)((seed >> 8) & 0xFFFF) / 32768.0f - 1.0f;
                }
            }
            /* about 20 ms of calls per run */
            const int calls = (int)(2e6 / (double)(H * S * D / 64)) > 1 ? (int)(2e6 / (double)(H * S * D / 64)) : 1;
            const double bytes = 2.0 * H * (double)S * (double)D * sizeof(float);
            for (int fused = 1; fused >= 0; fused--) {
                const double sec = time_op(ctx, q, ck, cv, S, fused, runs, calls);
                if (sec < 0) {
                    rc = 1;
                    continue;
                }
                printf("decode  H %2lld  T 1  S %5lld  D %3lld  %-9s  %2d thr  %9.2f us  %6.1f GB/s\n",
                       (long long)H, (long long)S, (long long)D, fused ? "fused" : "reference", nt,
                       sec * 1e6, bytes / sec * 1e-9);
                fflush(stdout);
            }
            attn_ctx_free(ctx);
        }
    return rc;
}
