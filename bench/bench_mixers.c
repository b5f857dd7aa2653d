/* bench_mixers.c: time and memory of one token-mixing block, forward +
 * backward, as the sequence grows: dot-product attention, the synthesizer
 * variants and Linformer (docs/synthesizer.md), Sparse Sinkhorn and SortCut
 * attention (docs/sinkhorn.md: blocks of 64, SortCut 2 blocks, causal) and
 * routing attention (docs/routing.md: 2 routing heads with top-w clusters of
 * w 256, k = T / 256 clusters, + 2 local heads of window 256; causal
 * within clusters), the table issue 19 asks for at T from 1k to 16k.
 *
 * Block: B 1, E 128, H 4 (D 32), one layer, f32, causal except Linformer
 * (which cannot be: include/attn/linformer.h), Linformer k 256 with
 * head-shared projections. Every mixer is the same module
 * (attn_synthesizer_forward or attn_linformer_forward) with the same q/k/v/out
 * projections where it has them; dot-product attention is the synthesizer
 * with only the DOT component, so from 512 keys it runs the fused kernel and
 * keeps O(T) extra memory.
 * Per row: the time of one forward + backward (fastest of --runs after a
 * warm-up, process CPU time with one thread), the arena's high-water mark
 * (activations and the tape) and the block's parameter bytes. A row whose
 * estimate exceeds --cap-mb (default 3072) is not run: the table says how
 * much it would need (the dense and random synthesizers hold [H, T, T]
 * logits, the random one also H l^2 parameters).
 *
 * Usage: bench_mixers [--runs N] [--cap-mb M] [--T N] [--rows A,B,..] (rows
 * whose name starts with one of the words, e.g. --rows dot,sinkhorn,sortcut,routing)
 * Build: make bench.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/attn.h"
#include "bench_common.h"

#define E_ 128
#define H_ 4
#define K_ 256

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct mixer_row {
    const char *name;
    unsigned synth; /* 0: Linformer or one of the below */
    int sparse;     /* 1 Sinkhorn, 2 SortCut, 3 routing */
} mixer_row;

#define SINK_BLOCK 64
#define ROUTE_W 256

/* A rough upper bound of the arena and parameter bytes of one forward +
 * backward (the [H, T, T] logits, weights and their gradients dominate the
 * synthesizers that build them). */
static double estimate_mb(const mixer_row *r, int64_t T) {
    const double tt = (double)H_ * (double)T * (double)T * 4.0;
    const double lin = 40.0 * (double)T * E_ * 4.0;
    double b = lin;
    if (r->sparse) return (lin + 16.0 * (double)H_ * T * 2 * 256 * 4.0) / 1048576.0;
    if (r->synth & (ATTN_SYNTH_DENSE | ATTN_SYNTH_FACTORIZED_DENSE | ATTN_SYNTH_RANDOM |
                    ATTN_SYNTH_FACTORIZED_RANDOM))
        b += 6.0 * tt;
    if (r->synth & ATTN_SYNTH_RANDOM) b += 3.0 * tt;                      /* R, its grad, Adam-free */
    if (r->synth & ATTN_SYNTH_DENSE) b += 3.0 * (double)H_ * T * E_ * T * 4.0 / T; /* W2 [H l, E] */
    return b / 1048576.0;
}

int main(int argc, char **argv) {
    int runs = 3;
    long cap_mb = 3072;
    int64_t only_t = 0;
    const char *only_rows = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cap-mb") && i + 1 < argc) cap_mb = atol(argv[++i]);
        else if (!strcmp(argv[i], "--T") && i + 1 < argc) only_t = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc) only_rows = argv[++i];
        else {
            fprintf(stderr, "usage: bench_mixers [--runs N] [--cap-mb M] [--T N] [--rows A,B,..]\n");
            return 2;
        }
    }
    if (runs < 1 || cap_mb < 64) {
        fprintf(stderr, "bench_mixers: --runs >= 1, --cap-mb >= 64\n");
        return 2;
    }
    static const mixer_row rows[] = {
        {"dot (fused from 512 keys)", ATTN_SYNTH_DOT, 0},
        {"synthesizer dense", ATTN_SYNTH_DENSE, 0},
        {"synthesizer random", ATTN_SYNTH_RANDOM, 0},
        {"synthesizer fdense", ATTN_SYNTH_FACTORIZED_DENSE, 0},
        {"synthesizer frandom", ATTN_SYNTH_FACTORIZED_RANDOM, 0},
        {"Linformer k 256 (not causal)", 0, 0},
        {"sinkhorn b 64", 0, 1},
        {"sortcut b 64, 2 blocks", 0, 2},
        {"routing w 256, k T/256", 0, 3},
    };
    const int64_t Ts[] = {1024, 2048, 4096, 8192, 16384};
    char cpu[128] = "unknown CPU";
    FILE *ci = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (ci && fgets(line, sizeof line, ci))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
            cpu[strcspn(cpu, "\n")] = 0;
            break;
        }
    if (ci) fclose(ci);
    attn_info_t info;
    attn_info(&info);
    printf("bench_mixers: one block forward + backward, B 1, E %d, H %d, f32, 1 thread; %s (%s)\n",
           E_, H_, cpu, info.simd);
    (void)cmp_double;
    printf("%-30s %6s %10s %10s %10s\n", "mixer", "T", "ms", "arena MB", "param MB");
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
        const int64_t T = Ts[ti];
        if (only_t && T != only_t) continue;
        for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
            const mixer_row *r = &rows[ri];
            if (only_rows) { /* a comma-separated list of name prefixes */
                int hit = 0;
                for (const char *p = only_rows; *p && !hit;) {
                    const size_t len = strcspn(p, ",");
                    hit = len > 0 && strncmp(r->name, p, len) == 0;
                    p += len + (p[len] == ',');
                }
                if (!hit) continue;
            }
            const double est = estimate_mb(r, T);
            if (est > (double)cap_mb) {
                printf("%-30s %6lld %10s  needs ~%.0f MB (over --cap-mb %ld)\n", r->name,
                       (long long)T, "-", est, cap_mb);
                continue;
            }
            attn_params *ps = NULL;
            attn_rng rng;
            attn_rng_init(&rng, 1);
            attn_synthesizer s;
            attn_linformer l;
            attn_sinkhorn sk;
            attn_routing rt;
            attn_status st = attn_params_new(&ps);
            if (st == ATTN_OK && (r->sparse == 1 || r->sparse == 2)) {
                attn_sinkhorn_config c = {.d_model = E_, .n_heads = H_, .max_len = T,
                                          .block = SINK_BLOCK, .n_sortcut = r->sparse == 2 ? 2 : 0,
                                          .causal = 1};
                st = attn_sinkhorn_init(&sk, ps, "", &c, &rng);
            } else if (st == ATTN_OK && r->sparse == 3) {
                attn_routing_config c = {.d_model = E_, .n_heads = H_, .local_heads = H_ / 2,
                                         .n_clusters = T / ROUTE_W, .window = ROUTE_W,
                                         .local_window = ROUTE_W, .causal = 1};
                st = attn_routing_init(&rt, ps, "", &c, &rng);
            } else if (st == ATTN_OK && r->synth) {
                attn_synthesizer_config c = {.d_model = E_, .n_heads = H_, .max_len = T,
                                             .components = r->synth, .causal = 1};
                st = attn_synthesizer_init(&s, ps, "", &c, &rng);
            } else if (st == ATTN_OK) {
                attn_linformer_config c = {.d_model = E_, .n_heads = H_, .max_len = T, .k = K_,
                                           .sharing = ATTN_LINFORMER_HEADWISE};
                st = attn_linformer_init(&l, ps, "", &c, &rng);
            }
            attn_ctx *ctx = NULL;
            attn_ctx_config cc = {0};
            cc.arena_bytes = (size_t)cap_mb << 20;
            cc.n_threads = 1;
            if (st == ATTN_OK) st = attn_ctx_new(&ctx, &cc);
            if (st != ATTN_OK) {
                printf("%-30s %6lld  failed: %s\n", r->name, (long long)T, attn_last_error());
                if (ctx) attn_ctx_free(ctx);
                attn_params_free(ps);
                continue;
            }
            const int64_t xs[3] = {1, T, E_};
            float *x = malloc(sizeof(float) * (size_t)(T * E_));
            for (int64_t i = 0; x && i < T * E_; i++) x[i] = attn_rng_next_uniform(&rng) - 0.5f;
            double best = 1e30;
            size_t peak = 0;
            int ok = x != NULL;
            for (int run = 0; ok && run <= runs; run++) {
                attn_ctx_reset(ctx);
                attn_params_zero_grad(ps);
                const double t0 = cpu_s();
                attn_tensor *xt = attn_tensor_from(ctx, ATTN_F32, 3, xs, x);
                attn_tensor *y = r->sparse == 3 ? attn_routing_forward(ctx, &rt, xt, NULL, NULL)
                                 : r->sparse     ? attn_sinkhorn_forward(ctx, &sk, xt, NULL)
                                 : r->synth      ? attn_synthesizer_forward(ctx, &s, xt, NULL)
                                                 : attn_linformer_forward(ctx, &l, xt, NULL);
                attn_tensor *loss = y ? attn_mean(ctx, y, ATTN_ALL_AXES, 0) : NULL;
                ok = loss && attn_backward(ctx, loss) == ATTN_OK;
                const double dt = cpu_s() - t0;
                if (run > 0 && dt < best) best = dt;
                if (attn_ctx_arena_peak(ctx) > peak) peak = attn_ctx_arena_peak(ctx);
            }
            if (ok)
                printf("%-30s %6lld %10.1f %10.1f %10.1f\n", r->name, (long long)T, 1e3 * best,
                       (double)peak / 1048576.0,
                       (double)attn_params_numel(ps) * 4.0 / 1048576.0);
            else
                printf("%-30s %6lld  failed: %s\n", r->name, (long long)T, attn_ctx_error(ctx));
            fflush(stdout);
            free(x);
            attn_ctx_free(ctx);
            attn_params_free(ps);
        }
    }
    return 0;
}
