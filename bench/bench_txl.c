/* bench_txl.c: speed of the long-context attention (include/attn/long_context.h)
 * and of the Transformer-XL model (include/attn/txl.h).
 *
 *  1. The op TXL_ATTENTION, forward + backward (every input requires a
 *     gradient), B 8, H 4, T 64, D 32, for memories of 64, 192 and 512:
 *     the product kernels against the double-precision reference forward
 *     (use_ref; the op has one backward, the same in both columns).
 *  2. One training step (forward + backward) of a 2-layer model (E 128,
 *     H 4, D 32, F 512, vocabulary 256), B 8, T 64, memory 512: plain
 *     Transformer-XL, with an adaptive span of 32 (ramp 32) trimmed to its
 *     window, and the same spans without the trimming (span_no_trim): the
 *     step time the trimming saves.
 * Median of the timed runs after one warm-up, on the threads given.
 *
 * Usage: bench_txl [--quick] [--runs N] [--threads N]
 *   --quick   memory 64 only, 2 runs, no reference (a smoke test)
 * Build: make bench.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

/* (bench_common.h's FMA peak is not needed here) */
static double now_s(void) { return attn_monotonic_s(); }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return t[n / 2];
}

static attn_tensor *leaf(attn_ctx *ctx, int nd, const int64_t *shape, attn_rng *rng, float scale) {
    attn_tensor *t = attn_tensor_new(ctx, ATTN_F32, nd, shape);
    if (!t) return NULL;
    attn_init_normal(t, scale, rng);
    t->requires_grad = 1;
    return t;
}

/* Seconds of one forward + backward of the op (use_ref selects the kernel). */
static double op_step(attn_ctx *ctx, int64_t M, int use_ref) {
    enum { B = 8, H = 4, T = 64, D = 32 };
    const int64_t S = M + T;
    attn_rng rng;
    attn_rng_init(&rng, 3);
    attn_tensor *q = leaf(ctx, 4, (int64_t[]){B, H, T, D}, &rng, 1.0f);
    attn_tensor *k = leaf(ctx, 4, (int64_t[]){B, H, S, D}, &rng, 1.0f);
    attn_tensor *v = leaf(ctx, 4, (int64_t[]){B, H, S, D}, &rng, 1.0f);
    attn_tensor *rk = leaf(ctx, 3, (int64_t[]){H, S, D}, &rng, 1.0f);
    attn_tensor *u = leaf(ctx, 2, (int64_t[]){H, D}, &rng, 0.1f);
    attn_tensor *vb = leaf(ctx, 2, (int64_t[]){H, D}, &rng, 0.1f);
    attn_ctx_set_use_ref(ctx, use_ref);
    const double t0 = now_s();
    attn_tensor *y = attn_txl_attention(ctx, q, k, v, rk, u, vb, NULL, NULL);
    attn_tensor *loss = y ? attn_sum(ctx, y, ATTN_ALL_AXES, 0) : NULL;
    const attn_status st = loss ? attn_backward(ctx, loss) : ATTN_ERR_STATE;
    const double dt = now_s() - t0;
    attn_ctx_set_use_ref(ctx, 0);
    attn_ctx_reset(ctx);
    if (st != ATTN_OK) {
        fprintf(stderr, "bench_txl: op: %s\n", attn_last_error());
        exit(1);
    }
    return dt;
}

/* Seconds of one training step of the model (mode 0 plain, 1 span trimmed,
 * 2 span untrimmed), memory 512 (full after the warm-up). */
static double model_steps(attn_ctx *ctx, int mode, int runs, double *out) {
    enum { B = 8, T = 64 };
    attn_params *ps = NULL;
    attn_txl *m = NULL;
    attn_txl_config c;
    memset(&c, 0, sizeof c);
    c.vocab = 256, c.n_layers = 2, c.n_heads = 4, c.d_head = 32, c.d_model = 128, c.d_inner = 512;
    if (mode) {
        c.span_max = 512.0f, c.span_ramp = 32.0f, c.span_init = 32.0f, c.span_eps = 1e-8f;
        c.span_no_trim = mode == 2;
    }
    attn_rng rng;
    attn_rng_init(&rng, 1);
    attn_txl_memory mem;
    if (attn_params_new(&ps) != ATTN_OK || attn_txl_new(&m, ps, &c, &rng) != ATTN_OK ||
        attn_txl_memory_init(&mem, m, B, 512, 1) != ATTN_OK) {
        fprintf(stderr, "bench_txl: model: %s\n", attn_last_error());
        exit(1);
    }
    int32_t ids[B * T], tg[B * T];
    for (int i = 0; i < B * T; i++) ids[i] = (i * 31) % 256, tg[i] = (i * 17) % 256;
    for (int r = -1; r < runs; r++) {
        const double t0 = now_s();
        attn_tensor *l = attn_txl_loss(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T}, ids),
                                       attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T}, tg), -1,
                                       &mem, NULL);
        if (!l || attn_backward(ctx, l) != ATTN_OK) {
            fprintf(stderr, "bench_txl: step: %s\n", attn_last_error());
            exit(1);
        }
        attn_ctx_reset(ctx);
        if (r >= 0) out[r] = now_s() - t0;
    }
    attn_txl_memory_free(&mem);
    attn_txl_free(m);
    attn_params_free(ps);
    return median(out, runs);
}

int main(int argc, char **argv) {
    int quick = 0, runs = 5, threads = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            quick = 1;
            runs = 2;
        } else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_txl [--quick] [--runs N] [--threads N]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 1000 || threads < 1 || threads > 1024) {
        fprintf(stderr, "bench_txl: --runs in [1, 1000], --threads in [1, 1024]\n");
        return 2;
    }
    attn_ctx_config cfg = {(size_t)2 << 30, threads, 0, 0};
    attn_ctx *ctx = NULL;
    if (attn_ctx_new(&ctx, &cfg) != ATTN_OK) {
        fprintf(stderr, "bench_txl: %s\n", attn_last_error());
        return 1;
    }
    double *t = malloc(sizeof(double) * (size_t)runs);
    if (!t) return 1;
    printf("txl_attention forward + backward, B 8, H 4, T 64, D 32, %d thread(s), median of %d\n",
           threads, runs);
    printf("| memory | products (ms) | reference forward + the same backward (ms) |\n|---|---|---|\n");
    static const int64_t mems[3] = {64, 192, 512};
    for (int i = 0; i < (quick ? 1 : 3); i++) {
        op_step(ctx, mems[i], 0);
        for (int r = 0; r < runs; r++) t[r] = op_step(ctx, mems[i], 0);
        const double fast = median(t, runs);
        double ref = 0.0;
        if (!quick) {
            for (int r = 0; r < 1; r++) t[r] = op_step(ctx, mems[i], 1);
            ref = t[0];
        }
        printf("| %lld | %.1f | %s%.1f |\n", (long long)mems[i], 1e3 * fast, quick ? "(skipped) " : "",
               1e3 * ref);
    }
    printf("\nmodel training step (2 layers, E 128, B 8, T 64, memory 512), median of %d\n", runs);
    printf("| model | ms / step |\n|---|---|\n");
    static const char *names[3] = {"Transformer-XL", "adaptive span z 32, R 32, trimmed",
                                   "adaptive span z 32, R 32, not trimmed"};
    for (int mode = 0; mode < 3; mode++)
        printf("| %s | %.1f |\n", names[mode], 1e3 * model_steps(ctx, mode, runs, t));
    free(t);
    attn_ctx_free(ctx);
    return 0;
}
