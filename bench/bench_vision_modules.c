/* bench_vision_modules.c: speed of the attention modules of
 * include/attn/vision_modules.h at the place the Fashion-MNIST CNN puts
 * them (x [64, 32, 14, 14], the CNN's settings of cnn.h), forward and
 * forward + backward (upstream gradient all ones), training mode, 1 thread,
 * median of the timed runs after one warm-up, in process CPU time (the
 * machine may be shared: wall time would count the other work).
 *
 * Usage: bench_vision_modules [--runs N] [--batch B]
 * Build: make bench.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/attn.h"
#include "bench_common.h"

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    int runs = 5;
    long long B = 64;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_vision_modules [--runs N] [--batch B]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 100 || B < 2 || B > 1024) {
        fprintf(stderr, "bench_vision_modules: --runs 1 to 100, --batch 2 to 1024\n");
        return 2;
    }
    const int64_t C = 32, H = 14, W = 14, n = B * C * H * W;
    attn_ctx_config cc = {0};
    cc.n_threads = 1;
    cc.arena_bytes = (size_t)2048 << 20;
    attn_ctx *ctx = NULL;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        fprintf(stderr, "bench_vision_modules: %s\n", attn_last_error());
        return 1;
    }
    float *x = malloc(sizeof(float) * (size_t)n), *g = malloc(sizeof(float) * (size_t)n);
    double *t = malloc(sizeof(double) * (size_t)runs);
    if (!x || !g || !t) return 1;
    attn_rng rng;
    attn_rng_init(&rng, 1);
    for (int64_t i = 0; i < n; i++) {
        x[i] = (float)attn_rng_next_u32(&rng) / 4294967296.0f - 0.25f;
        g[i] = 1.0f;
    }
    printf("module   parameters  forward ms  forward+backward ms   (x [%lld, 32, 14, 14], 1 thread, CPU time, median of %d)\n",
           B, runs);
    for (int k = 0; k < ATTN_VM_COUNT; k++) {
        attn_vision_module_config vc;
        memset(&vc, 0, sizeof vc);
        vc.kind = (attn_vision_module_kind)k;
        vc.channels = C;
        vc.reduction = k == ATTN_VM_SOFT ? 1 : k == ATTN_VM_PSA ? 4 : 16;
        vc.spatial_bn = 1;
        vc.height = H, vc.width = W;
        attn_params *ps = NULL;
        attn_vision_module m;
        if (attn_params_new(&ps) != ATTN_OK || attn_vision_module_init(&m, ps, "", &vc, &rng) != ATTN_OK) {
            fprintf(stderr, "bench_vision_modules: %s\n", attn_last_error());
            return 1;
        }
        double ms[2];
        for (int bwd = 0; bwd < 2; bwd++) {
            for (int r = -1; r < runs; r++) {
                attn_ctx_reset(ctx);
                attn_ctx_set_grad_enabled(ctx, bwd);
                attn_params_zero_grad(ps);
                const double t0 = cpu_s();
                attn_tensor *xt = attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){B, C, H, W}, x);
                if (xt) xt->requires_grad = bwd;
                attn_tensor *y = attn_vision_module_forward(ctx, &m, xt, NULL);
                if (!y || (bwd && attn_backward_from(ctx, y, g) != ATTN_OK)) {
                    fprintf(stderr, "bench_vision_modules: %s: %s\n", attn_vision_module_name(vc.kind),
                            attn_ctx_error(ctx));
                    return 1;
                }
                if (r >= 0) t[r] = cpu_s() - t0;
            }
            qsort(t, (size_t)runs, sizeof *t, cmp_double);
            ms[bwd] = 1e3 * t[runs / 2];
        }
        printf("%-8s %10lld  %10.2f  %19.2f\n", attn_vision_module_name(vc.kind),
               (long long)attn_params_numel(ps), ms[0], ms[1]);
        attn_params_free(ps);
    }
    free(x);
    free(g);
    free(t);
    attn_ctx_free(ctx);
    return 0;
}
