/* bench_threads.c: does the default thread count hold up when another
 * process shares a core? (issue 10, part 3)
 *
 * A "busy neighbour" is a child process that spins on the last CPU (pinned
 * there with sched_setaffinity), as a compiler or another program would.
 * With it running, each workload is timed at 1 thread and at all threads,
 * interleaved (1, N, 1, N, ...) so that a change of the machine's load hits
 * both alike; the median of the runs is reported, and the ratio
 * speed(N threads) / speed(1 thread). The target: never below 0.8 with a
 * busy neighbour (the default must not collapse), and above 1 on a quiet
 * machine where the work is large enough to share.
 *
 * Workloads (fixed):
 *   decode     a GPT (V 256, E 128, 4 layers, 4 heads, ctx 256) generating
 *              64 tokens with its KV cache: the many small ops of inference
 *   train      one training step of the same GPT on a batch of 8 x 64 tokens
 *   matmul     a 512 x 512 x 512 product (attn_matmul, no gradient)
 *
 * Usage: bench_threads [--runs N] [--no-neighbour] [--threads N]
 * Build: make bench.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attn/attn.h"
#include "bench_common.h"

static pid_t start_neighbour(void) {
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    pid_t pid = fork();
    if (pid != 0) return pid;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((int)(n_cpu > 0 ? n_cpu - 1 : 0), &set);
    sched_setaffinity(0, sizeof set, &set);
    volatile unsigned long x = 0;
    for (;;) x++;
}

typedef struct bench_model {
    attn_params *ps;
    attn_gpt *m;
    attn_ctx *ctx;
} bench_model;

static int model_new(bench_model *b) {
    attn_gpt_config cfg = {.vocab = 256, .ctx_len = 256, .n_layers = 4, .n_heads = 4,
                           .d_model = 128, .pos = ATTN_POS_LEARNED};
    attn_rng rng;
    attn_rng_init(&rng, 7);
    if (attn_params_new(&b->ps) != ATTN_OK) return -1;
    if (attn_gpt_new(&b->m, b->ps, &cfg, &rng) != ATTN_OK) return -1;
    attn_ctx_config cc = {.arena_bytes = (size_t)256 << 20};
    return attn_ctx_new(&b->ctx, &cc) == ATTN_OK ? 0 : -1;
}

static double run_decode(bench_model *b) {
    int32_t prompt[4] = {1, 2, 3, 4}, out[64];
    attn_sample_opts so = {.temperature = 0.0f};
    double t0 = now_s();
    if (attn_gpt_generate(b->ctx, b->m, prompt, 4, 64, &so, out, NULL) != ATTN_OK) return -1;
    return now_s() - t0;
}

static double run_train(bench_model *b) {
    enum { B = 8, T = 64 };
    static int32_t ids[B * T], tg[B * T];
    for (int i = 0; i < B * T; i++) {
        ids[i] = (i * 37) % 256;
        tg[i] = (i * 37 + 1) % 256;
    }
    double t0 = now_s();
    attn_ctx_reset(b->ctx);
    attn_ctx_set_grad_enabled(b->ctx, 1);
    const int64_t shape[2] = {B, T};
    attn_tensor *x = attn_tensor_from(b->ctx, ATTN_I32, 2, shape, ids);
    attn_tensor *y = attn_tensor_from(b->ctx, ATTN_I32, 2, shape, tg);
    attn_tensor *loss = attn_gpt_loss(b->ctx, b->m, x, y, -1);
    attn_params_zero_grad(b->ps);
    if (!loss || attn_backward(b->ctx, loss) != ATTN_OK) return -1;
    return now_s() - t0;
}

static double run_matmul(bench_model *b) {
    static float a[512 * 512], c[512 * 512];
    for (int i = 0; i < 512 * 512; i++) a[i] = (float)((i * 13) % 17) * 0.01f;
    attn_ctx_reset(b->ctx);
    attn_ctx_set_grad_enabled(b->ctx, 0);
    const int64_t shape[2] = {512, 512};
    attn_tensor *x = attn_tensor_from(b->ctx, ATTN_F32, 2, shape, a);
    double t0 = now_s();
    attn_tensor *y = attn_matmul(b->ctx, x, x);
    double t = now_s() - t0;
    if (!y) return -1;
    memcpy(c, attn_f32(y), sizeof c);
    return t;
}

int main(int argc, char **argv) {
    int runs = 9, neighbour = 1, nt_max = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-neighbour"))
            neighbour = 0;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            nt_max = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--runs N] [--no-neighbour] [--threads N]\n", argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > 1000) runs = 9;
    bench_model b;
    if (model_new(&b) != 0) {
        fprintf(stderr, "bench_threads: %s\n", attn_last_error());
        return 1;
    }
    if (nt_max <= 0) nt_max = attn_ctx_threads(b.ctx); /* the default: all available */
    attn_info_t info;
    attn_info(&info);
    printf("bench_threads: %d CPUs online, threads 1 vs %d, %s, blas %s, %d runs each "
           "(interleaved; median)\n",
           (int)sysconf(_SC_NPROCESSORS_ONLN), nt_max,
           neighbour ? "a busy neighbour spinning on the last CPU" : "no neighbour", info.blas, runs);
    pid_t child = neighbour ? start_neighbour() : 0;
    if (child > 0) usleep(200000);

    static const struct {
        const char *name;
        double (*fn)(bench_model *);
        double units;
        const char *unit;
    } W[] = {{"decode", run_decode, 64, "tok/s"},
             {"train", run_train, 8 * 64, "tok/s"},
             {"matmul", run_matmul, 2.0 * 512 * 512 * 512 * 1e-9, "GFLOP/s"}};
    int rc = 0;
    printf("%-8s %12s %12s %8s\n", "workload", "1 thread", "N threads", "N / 1");
    for (size_t w = 0; w < sizeof W / sizeof W[0]; w++) {
        double *t1 = calloc((size_t)runs, sizeof *t1), *tn = calloc((size_t)runs, sizeof *tn);
        attn_ctx_set_threads(b.ctx, 1);
        W[w].fn(&b); /* warm-up */
        for (int r = 0; r < runs; r++) {
            attn_ctx_set_threads(b.ctx, 1);
            t1[r] = W[w].fn(&b);
            attn_ctx_set_threads(b.ctx, nt_max);
            tn[r] = W[w].fn(&b);
            if (t1[r] < 0 || tn[r] < 0) {
                fprintf(stderr, "bench_threads: %s: %s\n", W[w].name, attn_last_error());
                rc = 1;
                break;
            }
        }
        qsort(t1, (size_t)runs, sizeof *t1, cmp_double);
        qsort(tn, (size_t)runs, sizeof *tn, cmp_double);
        double s1 = W[w].units / t1[runs / 2], sn = W[w].units / tn[runs / 2];
        printf("%-8s %12.1f %12.1f %8.2f  %s\n", W[w].name, s1, sn, sn / s1, W[w].unit);
        free(t1);
        free(tn);
    }
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    attn_ctx_free(b.ctx);
    attn_gpt_free(b.m);
    attn_params_free(b.ps);
    return rc;
}
