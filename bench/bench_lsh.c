/* bench_lsh.c: the Reformer's LSH attention (include/attn/reformer.h)
 * against dense causal fused attention (attn_flash_sdpa), forward and
 * forward + backward, and the arena bytes each uses.
 *
 * Shapes: B 1, H 2, D 64 (queries = keys for LSH, the shared projection;
 * dense gets q = k too), causal, one thread by default; T in {1024, 4096,
 * 16384} (--T N for one). LSH: R rounds (--rounds, default 4), chunk L 64,
 * NB = 2 T / L buckets (the paper's choice: about one chunk per bucket),
 * seeded rotations (the hashing and the sort are inside the timed call).
 * Per row: the fastest of the timed runs after one warm-up (--median:
 * their median), process CPU time (--wall: wall-clock), and the extra
 * arena bytes of one forward + backward (the op's saved tensors and
 * scratch, inputs excluded). Dense and LSH are timed in alternation so
 * that both see the same load.
 *
 * Usage: bench_lsh [--runs N] [--threads N] [--T N] [--rounds R] [--wall] [--median]
 * Build: make bench.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/attn.h"
#include "bench_common.h"

#define H_ 2
#define D_ 64
#define CHUNK 64

static int use_wall, use_median, rounds = 4;

static double clock_s(void) {
    if (use_wall) return now_s();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float *x, size_t n, unsigned s) {
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }
}

/* One call (lsh nonzero: LSH attention, else dense fused); seconds, or -1. */
static double one_run(attn_ctx *ctx, int lsh, int64_t T, int bwd, const float *buf, size_t *bytes) {
    const int64_t sh[4] = {1, H_, T, D_};
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, bwd);
    attn_tensor *q = attn_tensor_from(ctx, ATTN_F32, 4, sh, buf);
    attn_tensor *v = attn_tensor_from(ctx, ATTN_F32, 4, sh, buf + 1);
    if (!q || !v) return -1.0;
    q->requires_grad = v->requires_grad = bwd;
    const size_t before = attn_ctx_arena_used(ctx);
    const double t0 = clock_s();
    attn_tensor *y;
    if (lsh) {
        attn_lsh_opts o;
        memset(&o, 0, sizeof o);
        o.n_hashes = rounds;
        o.n_buckets = (int)(2 * T / CHUNK);
        o.chunk_len = CHUNK;
        o.causal = 1;
        o.seed = 1;
        y = attn_lsh_attention(ctx, q, v, &o);
    } else {
        attn_sdpa_opts o = {0};
        o.causal = 1;
        y = attn_flash_sdpa(ctx, q, q, v, &o, NULL);
    }
    if (!y || (bwd && attn_backward_from(ctx, y, buf) != ATTN_OK)) {
        fprintf(stderr, "bench_lsh: %s\n", attn_ctx_error(ctx));
        return -1.0;
    }
    const double dt = clock_s() - t0;
    if (bytes) *bytes = attn_ctx_arena_used(ctx) - before;
    return dt;
}

int main(int argc, char **argv) {
    int runs = 3, nt = 1;
    int64_t only_t = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            nt = atoi(argv[++i]);
        else if (strcmp(argv[i], "--T") == 0 && i + 1 < argc)
            only_t = atoll(argv[++i]);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--wall") == 0)
            use_wall = 1;
        else if (strcmp(argv[i], "--median") == 0)
            use_median = 1;
        else {
            fprintf(stderr, "usage: %s [--runs N] [--threads N] [--T N] [--rounds R] [--wall] "
                    "[--median]\n", argv[0]);
            return 2;
        }
    }
    if (runs < 1) runs = 1;
    if (nt < 1) nt = 1;
    if (rounds < 1 || rounds > 64) rounds = 4;
    if (only_t && (only_t < 2 * CHUNK || only_t > (1 << 20))) {
        fprintf(stderr, "bench_lsh: --T %lld, expected %d .. %d\n", (long long)only_t, 2 * CHUNK, 1 << 20);
        return 2;
    }
    (void)measure_peak;
    static const int64_t Ts[3] = {1024, 4096, 16384};
    printf("bench_lsh: B 1, H %d, D %d, causal, LSH %d rounds chunk %d, %d thread(s), %s of %d "
           "runs, %s time\n", H_, D_, rounds, CHUNK, nt, use_median ? "median" : "fastest", runs,
           use_wall ? "wall" : "CPU");
    printf("%-6s %-8s %11s %13s %14s\n", "T", "op", "fwd ms", "fwd+bwd ms", "fwd+bwd MiB");
    int rc = 0;
    for (int ti = 0; ti < 3; ti++) {
        const int64_t T = only_t ? only_t : Ts[ti];
        if (only_t && ti > 0) break;
        const size_t n = (size_t)H_ * (size_t)T * D_ + 1;
        float *buf = malloc(sizeof(float) * n);
        double *t = malloc(sizeof(double) * (size_t)(4 * (runs + 1)));
        attn_ctx *ctx = NULL;
        attn_ctx_config cfg = {0};
        cfg.arena_bytes = sizeof(float) * n * 16 + (size_t)rounds * (size_t)T * H_ * (2 * CHUNK + D_ + 1) * 8 +
                          ((size_t)64 << 20);
        cfg.n_threads = nt;
        if (!buf || !t || attn_ctx_new(&ctx, &cfg) != ATTN_OK) {
            free(buf);
            free(t);
            return 1;
        }
        fill(buf, n, 7u);
        size_t bytes[2] = {0, 0};
        /* t[(op * 2 + bwd) * (runs + 1) + r] */
        for (int r = 0; r <= runs && rc == 0; r++)
            for (int bwd = 0; bwd < 2; bwd++)
                for (int op = 0; op < 2; op++) {
                    const double s = one_run(ctx, op, T, bwd, buf, bwd ? &bytes[op] : NULL);
                    if (s < 0) rc = 1;
                    t[(op * 2 + bwd) * (runs + 1) + r] = s;
                }
        if (rc == 0) {
            for (int op = 0; op < 2; op++) {
                double best[2];
                for (int bwd = 0; bwd < 2; bwd++) {
                    double *a = t + (op * 2 + bwd) * (runs + 1) + 1;
                    qsort(a, (size_t)runs, sizeof(double), cmp_double);
                    best[bwd] = use_median ? a[runs / 2] : a[0];
                }
                printf("%-6lld %-8s %11.2f %13.2f %14.2f\n", (long long)T, op ? "lsh" : "dense",
                       best[0] * 1e3, best[1] * 1e3, (double)bytes[op] / (1024.0 * 1024.0));
            }
            fflush(stdout);
        }
        attn_ctx_free(ctx);
        free(buf);
        free(t);
    }
    return rc;
}
