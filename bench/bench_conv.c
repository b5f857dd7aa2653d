/* bench_conv.c: speed of the convolution ops (include/attn/conv.h) on a fixed
 * list of layer shapes: those of the issue-13 models (a Fashion-MNIST CNN,
 * SAGAN's 1x1 projections and generator upsampling, a WaveNet-style causal
 * conv1d). For each shape: forward alone (no gradient) and forward +
 * backward (every input requires a gradient; the upstream gradient is all
 * ones), median of the timed runs after one warm-up, on 1 thread and on all
 * threads, with GFLOP/s = 2 N O P K / time (forward; x3 for forward +
 * backward). bench/conv_torch.py times torch.nn.functional on the same
 * shapes (1 thread) for the comparison.
 *
 * Usage: bench_conv [--quick] [--runs N] [--cpu-time] [--layer I] [--no-peak]
 *   --quick     the first three shapes, 3 runs (a smoke test)
 *   --cpu-time  time with the process CPU clock instead of the wall clock,
 *               on 1 thread only: a fairer comparison (with conv_torch.py
 *               --cpu-time) on a machine whose cores other work shares
 * Build: make bench.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/attn.h"
#include "bench_common.h"

typedef enum { K_CONV2D, K_CONV1D, K_CONVT2D } kind;

static int use_cpu_clock;

static double clock_s(void) {
    if (!use_cpu_clock) return now_s();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct layer {
    kind k;
    int64_t N, C, H, W, O, KH, KW, S, P, D, G;
    int causal;
    const char *note;
} layer;

static const layer LAYERS[] = {
    {K_CONV2D, 64, 1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 0, "CNN conv1 (Fashion-MNIST 28x28)"},
    {K_CONV2D, 64, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 0, "CNN conv2 (14x14)"},
    {K_CONV2D, 64, 64, 7, 7, 128, 3, 3, 1, 1, 1, 1, 0, "CNN conv3 (7x7)"},
    {K_CONV2D, 64, 64, 14, 14, 8, 1, 1, 1, 0, 1, 1, 0, "SAGAN query/key 1x1 (C/8)"},
    {K_CONV2D, 64, 64, 14, 14, 64, 1, 1, 1, 0, 1, 1, 0, "SAGAN value 1x1"},
    {K_CONV2D, 64, 64, 28, 28, 64, 4, 4, 2, 1, 1, 1, 0, "discriminator 4x4 stride 2"},
    {K_CONVT2D, 64, 128, 7, 7, 64, 4, 4, 2, 1, 1, 1, 0, "generator up 7->14 (transposed)"},
    {K_CONVT2D, 64, 64, 14, 14, 1, 4, 4, 2, 1, 1, 1, 0, "generator up 14->28 (transposed)"},
    {K_CONV2D, 64, 64, 14, 14, 64, 3, 3, 1, 1, 1, 64, 0, "depthwise 3x3"},
    {K_CONV1D, 16, 64, 1, 256, 64, 1, 2, 1, 0, 4, 1, 1, "WaveNet causal conv1d K=2 dilation 4"},
};

static void fill(attn_tensor *t, unsigned seed) {
    float *p = attn_f32(t);
    int64_t n = attn_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
}

/* The output of the layer's op on x, w, b (NULL on error). */
static attn_tensor *run_op(attn_ctx *ctx, const layer *L, attn_tensor *x, attn_tensor *w,
                           attn_tensor *b) {
    if (L->k == K_CONV1D) {
        attn_conv1d_opts o = {L->S, L->P, L->D, L->G, L->causal};
        return attn_conv1d(ctx, x, w, b, &o);
    }
    attn_conv2d_opts o;
    memset(&o, 0, sizeof o);
    o.stride[0] = o.stride[1] = L->S;
    o.padding[0] = o.padding[1] = L->P;
    o.dilation[0] = o.dilation[1] = L->D;
    o.groups = L->G;
    return L->k == K_CONV2D ? attn_conv2d(ctx, x, w, b, &o) : attn_conv_transpose2d(ctx, x, w, b, &o);
}

/* Median seconds of `runs` forwards (backward too when `bwd`); *flops gets
 * the forward's 2 N O P K. Negative on error. */
static double time_layer(const layer *L, int nt, int runs, int bwd, double *flops) {
    attn_ctx *ctx = NULL;
    attn_ctx_config cfg = {0};
    cfg.n_threads = nt;
    cfg.arena_bytes = (size_t)1 << 30;
    if (attn_ctx_new(&ctx, &cfg) != ATTN_OK) return -1.0;
    const int conv1d = L->k == K_CONV1D, convt = L->k == K_CONVT2D;
    int64_t xs[4] = {L->N, L->C, L->H, L->W}, x1[3] = {L->N, L->C, L->W};
    int64_t ws[4] = {convt ? L->C : L->O, convt ? L->O / L->G : L->C / L->G, L->KH, L->KW};
    int64_t w1[3] = {L->O, L->C / L->G, L->KW};
    int64_t bs = L->O;
    double t[64];
    if (runs > 64) runs = 64;
    double med = -1.0;
    float *g = NULL; /* the upstream gradient (ones), made at the warm-up */
    for (int r = -1; r < runs; r++) {
        attn_ctx_reset(ctx);
        attn_ctx_set_grad_enabled(ctx, bwd);
        attn_tensor *x = conv1d ? attn_tensor_new(ctx, ATTN_F32, 3, x1)
                                : attn_tensor_new(ctx, ATTN_F32, 4, xs);
        attn_tensor *w = conv1d ? attn_tensor_new(ctx, ATTN_F32, 3, w1)
                                : attn_tensor_new(ctx, ATTN_F32, 4, ws);
        attn_tensor *b = attn_tensor_new(ctx, ATTN_F32, 1, &bs);
        if (!x || !w || !b) break;
        fill(x, 1), fill(w, 2), fill(b, 3);
        x->requires_grad = w->requires_grad = b->requires_grad = bwd;
        const double t0 = clock_s();
        attn_tensor *y = run_op(ctx, L, x, w, b);
        if (y && bwd) {
            if (!g) {
                const int64_t ny = attn_tensor_numel(y);
                if (!(g = malloc(sizeof(float) * (size_t)ny))) break;
                for (int64_t i = 0; i < ny; i++) g[i] = 1.0f;
            }
            if (attn_backward_from(ctx, y, g) != ATTN_OK) y = NULL;
        }
        const double dt = clock_s() - t0;
        if (!y) {
            fprintf(stderr, "bench_conv: %s: %s\n", L->note, attn_ctx_error(ctx));
            break;
        }
        if (r < 0) {
            /* forward FLOPs: 2 per multiply-add of the convolution */
            const int64_t P = attn_tensor_numel(y) / (L->N * L->O);
            const double KK = (double)(L->KH * L->KW);
            *flops = convt ? 2.0 * (double)L->N * (double)L->C * (double)(L->H * L->W) *
                                 (double)(L->O / L->G) * KK
                           : 2.0 * (double)L->N * (double)L->O * (double)P *
                                 (double)(L->C / L->G) * KK;
        } else {
            t[r] = dt;
        }
        if (r == runs - 1) {
            qsort(t, (size_t)runs, sizeof(double), cmp_double);
            med = t[runs / 2];
        }
    }
    free(g);
    attn_ctx_free(ctx);
    return med;
}

int main(int argc, char **argv) {
    int runs = 7, quick = 0, only = -1, peak = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1, runs = 3;
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cpu-time")) use_cpu_clock = 1;
        else if (!strcmp(argv[i], "--layer") && i + 1 < argc) only = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-peak")) peak = 0;
        else {
            fprintf(stderr, "usage: %s [--quick] [--runs N] [--cpu-time] [--layer I] [--no-peak]\n", argv[0]);
            return 2;
        }
    }
    if (runs < 1) runs = 1;
    attn_ctx *probe = NULL;
    if (attn_ctx_new(&probe, NULL) != ATTN_OK) return 1;
    const int all = use_cpu_clock ? 1 : attn_ctx_threads(probe);
    attn_ctx_free(probe);
    const int n_layers = quick ? 3 : (int)(sizeof LAYERS / sizeof LAYERS[0]);
    if (peak) printf("f32 FMA peak, 1 thread: %.1f GFLOP/s (measured)\n", measure_peak(1, 20000000L, 3));
    printf("%-40s %7s %10s %8s %10s %8s\n", "layer", "threads", "fwd ms", "GFLOP/s", "fwd+bwd ms",
           "GFLOP/s");
    for (int i = 0; i < n_layers; i++) {
        if (only >= 0 && i != only) continue;
        const layer *L = &LAYERS[i];
        for (int nt = 1; nt <= all; nt = nt == all ? all + 1 : all) {
            double fl = 0.0, fb = 0.0;
            double tf = time_layer(L, nt, runs, 0, &fl);
            double tb = time_layer(L, nt, runs, 1, &fb);
            if (tf < 0 || tb < 0) return 1;
            printf("%-40s %7d %10.3f %8.1f %10.3f %8.1f\n", L->note, nt, tf * 1e3, fl / tf * 1e-9,
                   tb * 1e3, 3.0 * fl / tb * 1e-9);
            fflush(stdout);
        }
    }
    return 0;
}
