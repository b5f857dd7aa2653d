/* bench_sparse.c: the fused attention op under block-sparse patterns
 * (include/attn/sparse.h) against dense fused attention, forward and
 * forward + backward.
 *
 * Shapes: B 1, H 2 (so that the per-head patterns have both heads), D 64,
 * T = S in {1024, 4096} (--T N for one), causal, one thread by default.
 * Patterns (docs/sparse.md; the choices for T ~ 4k): local 1-D
 * l 128; local 2-D on an image 64 pixels wide, blocks 8 x 16, margin 8 rows
 * above and 16 columns each side; strided l 128 (head 0 local, head 1
 * strided); fixed l 128, c 16 (head 0 block, head 1 summary); sliding 256;
 * dilated w 512 d 4 (128 keys); global 16 + sliding 256. Per pattern: the
 * share of the T S H entries that are visible ("visible") and the share that
 * the tile walk computes ("computed": the listed 64 x 64 tiles, partial ones
 * included; the AVX-512 kernels skip the 32-key halves of a partial tile
 * that no row of an 8-row block sees, so they compute less), the fastest of
 * the timed runs after one warm-up (--median: their median; on a machine
 * shared with other jobs the fastest is the least disturbed), and the
 * speed-up over dense causal fused attention of the same shape, timed in
 * alternation with the pattern's runs so that both see the same load, and the
 * time of one attn_sparse_compile (inside every timed call: each forward and
 * each backward compiles its layout). Times are
 * the process's CPU time (CLOCK_PROCESS_CPUTIME_ID: with one thread, the
 * work itself, which a machine shared with other jobs does not inflate the
 * way it inflates wall time); --wall for wall-clock time.
 *
 * Usage: bench_sparse [--runs N] [--threads N] [--T N] [--wall] [--median]
 *
 * Scaling (--scaling [--quick | --smoke] [--svg FILE] [--json FILE]): forward +
 * backward time and the extra arena bytes of one call (what the op and its
 * backward allocate, inputs excluded: bench_lsh's measure) against T, for
 * dense fused attention, each pattern above and the Reformer's LSH attention
 * (attn_lsh_attention, 4 rounds, chunk 64, 2 T / 64 buckets, as bench_lsh),
 * T = 1k, 2k, .. 64k (dense to 16k; --quick: dense to 8k, strided, fixed and
 * dilated to 32k, one timed run after a warm-up below 16k and none above;
 * --smoke: T 256 and 512, for the tests). Per row the least-squares slope of
 * log time and of log bytes against log T, and at T = 4096 the speed ratio
 * of each row over dense; --svg draws both on log-log axes.
 * Build: make bench.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/attn.h"
#include "bench_common.h"

#define H_ 2
#define D_ 64
#define TILE 64

static void fill(float *x, size_t n, unsigned s) {
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }
}

static int use_wall, use_median;

static double clock_s(void) {
    if (use_wall) return now_s();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* visible and computed entries of p (NULL: dense causal) over the H heads */
static int fractions(attn_ctx *ctx, const attn_sparse_pattern *p, int64_t T, double *vis,
                     double *comp, double *compile_s) {
    const double all = (double)H_ * (double)T * (double)T;
    if (!p) {
        const int64_t nt = (T + TILE - 1) / TILE;
        *vis = (double)H_ * (double)T * (double)(T + 1) / 2.0 / all;
        *comp = (double)H_ * (double)(nt * (nt + 1) / 2) * TILE * TILE / all;
        *compile_s = 0.0;
        return 0;
    }
    attn_sparse_layout L;
    const double t0 = clock_s();
    if (attn_sparse_compile(ctx, p, 1, 0, H_, T, T, TILE, TILE, &L) != ATTN_OK) return -1;
    *compile_s = clock_s() - t0;
    double v = 0.0, c = 0.0;
    for (int64_t h = 0; h < H_; h++) {
        const int64_t var = attn_sparse_head_variant(p, h);
        for (int64_t qt = 0; qt < L.nq; qt++)
            for (int64_t e = L.start[var * L.nq + qt]; e < L.start[var * L.nq + qt + 1]; e++) {
                c += TILE * TILE;
                if (L.mask_at[e] < 0) {
                    v += TILE * TILE; /* T is a multiple of the tile here */
                    continue;
                }
                const uint64_t *m = L.mask + L.mask_at[e];
                for (int64_t r = 0; r < TILE; r++) v += (double)__builtin_popcountll(m[r]);
            }
    }
    *vis = v / all;
    *comp = c / all;
    return 0;
}

/* seconds of one forward (bwd 0) or forward + backward (bwd 1) under p
 * (NULL: dense causal); < 0 on error */
static double one_run(attn_ctx *ctx, const attn_sparse_pattern *p, int64_t T, int bwd,
                      const float *buf) {
    const int64_t sh[4] = {1, H_, T, D_};
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, bwd);
    attn_tensor *q = attn_tensor_from(ctx, ATTN_F32, 4, sh, buf);
    attn_tensor *k = attn_tensor_from(ctx, ATTN_F32, 4, sh, buf + 1);
    attn_tensor *v = attn_tensor_from(ctx, ATTN_F32, 4, sh, buf + 2);
    if (!q || !k || !v) return -1.0;
    q->requires_grad = k->requires_grad = v->requires_grad = bwd;
    attn_sdpa_opts o = {0};
    o.causal = 1;
    o.sparse = p;
    const double t0 = clock_s();
    attn_tensor *y = attn_flash_sdpa(ctx, q, k, v, &o, NULL);
    if (!y || (bwd && attn_backward_from(ctx, y, buf) != ATTN_OK)) {
        fprintf(stderr, "bench_sparse: %s\n", attn_last_error());
        return -1.0;
    }
    return clock_s() - t0;
}

/* Dense and p timed in alternation (so that both see the same load), one
 * warm-up each; *td, *tp: the fastest of the timed runs (--median: their
 * median). 0, or -1 on error. */
static int time_pair(attn_ctx *ctx, const attn_sparse_pattern *p, int64_t T, int bwd, int runs,
                     const float *buf, double *td, double *tp) {
    double *a = malloc(sizeof(double) * (size_t)(2 * runs + 2)), *b = a + runs + 1;
    if (!a) return -1;
    int ok = 1;
    for (int r = 0; ok && r <= runs; r++) {
        a[r] = one_run(ctx, NULL, T, bwd, buf);
        b[r] = one_run(ctx, p, T, bwd, buf);
        ok = a[r] >= 0 && b[r] >= 0;
    }
    if (ok) {
        qsort(a + 1, (size_t)runs, sizeof(double), cmp_double);
        qsort(b + 1, (size_t)runs, sizeof(double), cmp_double);
        *td = use_median ? a[1 + runs / 2] : a[1];
        *tp = use_median ? b[1 + runs / 2] : b[1];
    }
    free(a);
    return ok ? 0 : -1;
}

/* ---- scaling -------------------------------------------------------------------- */

#define SC_ROWS 9 /* dense, the 7 patterns, LSH */
#define SC_MAXT 7

/* One forward + backward of row r (0 dense, 1..7 pats[r-1], 8 LSH): seconds
 * and the extra arena bytes; < 0 on error. */
static double sc_run(attn_ctx *ctx, const attn_sparse_pattern *pats, int r, int64_t T, const float *buf,
                     size_t *bytes) {
    const int64_t sh[4] = {1, H_, T, D_};
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 1);
    attn_tensor *q = attn_tensor_from(ctx, ATTN_F32, 4, sh, buf);
    attn_tensor *k = attn_tensor_from(ctx, ATTN_F32, 4, sh, buf + 1);
    attn_tensor *v = attn_tensor_from(ctx, ATTN_F32, 4, sh, buf + 2);
    if (!q || !k || !v) return -1.0;
    q->requires_grad = k->requires_grad = v->requires_grad = 1;
    const size_t before = attn_ctx_arena_used(ctx);
    const double t0 = clock_s();
    attn_tensor *y;
    if (r == SC_ROWS - 1) {
        attn_lsh_opts o;
        memset(&o, 0, sizeof o);
        o.n_hashes = 4;
        o.n_buckets = (int)(2 * T / 64);
        o.chunk_len = 64;
        o.causal = 1;
        o.seed = 1;
        y = attn_lsh_attention(ctx, q, v, &o);
    } else {
        attn_sdpa_opts o = {0};
        o.causal = 1;
        o.sparse = r == 0 ? NULL : &pats[r - 1];
        y = attn_flash_sdpa(ctx, q, k, v, &o, NULL);
    }
    if (!y || attn_backward_from(ctx, y, buf) != ATTN_OK) {
        fprintf(stderr, "bench_sparse: %s\n", attn_ctx_error(ctx));
        return -1.0;
    }
    const double dt = clock_s() - t0;
    *bytes = attn_ctx_arena_used(ctx) - before;
    return dt;
}

/* least-squares slope of log y against log x over the n > 1 points with y > 0 */
static double sc_slope(const double *x, const double *y, int n) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (!(y[i] > 0)) continue;
        const double a = log(x[i]), b = log(y[i]);
        sx += a, sy += b, sxx += a * a, sxy += a * b, m++;
    }
    if (m < 2) return NAN;
    return (m * sxy - sx * sy) / (m * sxx - sx * sx);
}

static int scaling(const attn_sparse_pattern *pats, const char *const *names, int quick, int smoke, int runs,
                   int nt, const char *svg, const char *json) {
    static const int64_t full_T[SC_MAXT] = {1024, 2048, 4096, 8192, 16384, 32768, 65536};
    static const int64_t smoke_T[2] = {256, 512};
    const int nT = smoke ? 2 : SC_MAXT;
    const int64_t *Ts = smoke ? smoke_T : full_T;
    static double sec[SC_ROWS][SC_MAXT], mib[SC_ROWS][SC_MAXT], xs[SC_ROWS][SC_MAXT];
    int np[SC_ROWS] = {0};
    printf("bench_sparse --scaling: B 1, H %d, D %d, causal, %d thread(s), forward + backward, %s time, "
           "%s\n", H_, D_, nt, use_wall ? "wall" : "CPU", quick ? "quick list" : smoke ? "smoke" : "full list");
    printf("%-6s %-20s %13s %12s\n", "T", "row", "fwd+bwd ms", "extra MiB");
    int rc = 0;
    for (int ti = 0; ti < nT && rc == 0; ti++) {
        const int64_t T = Ts[ti];
        const size_t n = (size_t)H_ * (size_t)T * D_ + 2;
        float *buf = malloc(sizeof(float) * n);
        attn_ctx *ctx = NULL;
        attn_ctx_config cfg = {0};
        cfg.arena_bytes = sizeof(float) * n * 48 + ((size_t)64 << 20);
        cfg.n_threads = nt;
        if (!buf || attn_ctx_new(&ctx, &cfg) != ATTN_OK) {
            free(buf);
            return 1;
        }
        fill(buf, n, 7u);
        for (int r = 0; r < SC_ROWS; r++) {
            const int64_t cap = r == 0 ? (quick ? 8192 : 16384)
                                : (quick && (r == 3 || r == 4 || r == 6)) ? 32768 : 65536;
            if (!smoke && T > cap) continue;
            const int reps = T >= 16384 && !smoke ? 1 : runs;
            double best = -1.0;
            size_t bytes = 0;
            for (int k = 0; k <= reps && rc == 0; k++) {
                if (k == 0 && T >= 16384 && !smoke) continue; /* no warm-up for the long ones */
                const double t = sc_run(ctx, pats, r, T, buf, &bytes);
                if (t < 0) rc = 1;
                else if (k > 0 && (best < 0 || t < best)) best = t;
            }
            if (rc) break;
            sec[r][np[r]] = best;
            mib[r][np[r]] = (double)bytes / 1048576.0;
            xs[r][np[r]] = (double)T;
            np[r]++;
            printf("%-6lld %-20s %13.2f %12.2f\n", (long long)T, names[r], best * 1e3, (double)bytes / 1048576.0);
            fflush(stdout);
        }
        attn_ctx_free(ctx);
        free(buf);
    }
    if (rc) return rc;
    printf("\n%-20s %11s %12s %16s\n", "row", "time slope", "memory slope", "speed-up @4096");
    double t4096_dense = -1.0;
    for (int i = 0; i < np[0]; i++)
        if (xs[0][i] == 4096) t4096_dense = sec[0][i];
    char labels[SC_ROWS][64], mlabels[SC_ROWS][64];
    double lx[SC_ROWS][SC_MAXT];
    attn_series st[SC_ROWS], sm[SC_ROWS];
    for (int r = 0; r < SC_ROWS; r++) {
        const double a = sc_slope(xs[r], sec[r], np[r]), b = sc_slope(xs[r], mib[r], np[r]);
        double sp = NAN;
        for (int i = 0; i < np[r]; i++)
            if (xs[r][i] == 4096 && t4096_dense > 0) sp = t4096_dense / sec[r][i];
        printf("%-20s %11.2f %12.2f %15.2fx\n", names[r], a, b, sp);
        snprintf(labels[r], sizeof labels[r], "%s: %.2f", names[r], a);
        snprintf(mlabels[r], sizeof mlabels[r], "%s: %.2f", names[r], b);
        for (int i = 0; i < np[r]; i++) lx[r][i] = log2(xs[r][i]);
        st[r] = (attn_series){labels[r], lx[r], sec[r], np[r]};
        sm[r] = (attn_series){mlabels[r], lx[r], mib[r], np[r]};
    }
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            fprintf(stderr, "bench_sparse: cannot write %s\n", json);
            return 1;
        }
        fprintf(f, "{\"H\": %d, \"D\": %d, \"threads\": %d, \"rows\": [", H_, D_, nt);
        for (int r = 0; r < SC_ROWS; r++) {
            fprintf(f, "%s\n  {\"row\": \"%s\", \"time_slope\": %.4f, \"memory_slope\": %.4f, \"points\": [", r ? "," : "",
                    names[r], sc_slope(xs[r], sec[r], np[r]), sc_slope(xs[r], mib[r], np[r]));
            for (int i = 0; i < np[r]; i++)
                fprintf(f, "%s{\"T\": %.0f, \"seconds\": %.6g, \"extra_mib\": %.6g}", i ? ", " : "", xs[r][i],
                        sec[r][i], mib[r][i]);
            fprintf(f, "]}");
        }
        fprintf(f, "\n]}\n");
        fclose(f);
    }
    if (svg) {
        char path[1024];
        attn_line_chart c;
        memset(&c, 0, sizeof c);
        c.title = "forward + backward time against T, 1 thread (legend: fitted log-log slope)";
        c.x_label = "log2 T (T = 1024 .. 65536)";
        c.y_label = "seconds (log scale)";
        c.series = st;
        c.n_series = SC_ROWS;
        c.log_y = 1;
        c.width = 900;
        c.height = 520;
        if (attn_svg_line_chart(svg, &c) != ATTN_OK) {
            fprintf(stderr, "bench_sparse: %s\n", attn_last_error());
            return 1;
        }
        snprintf(path, sizeof path, "%.*s-memory.svg", (int)(strlen(svg) > 4 ? strlen(svg) - 4 : strlen(svg)), svg);
        c.title = "extra memory of forward + backward against T (legend: fitted log-log slope)";
        c.y_label = "MiB (log scale)";
        c.series = sm;
        if (attn_svg_line_chart(path, &c) != ATTN_OK) {
            fprintf(stderr, "bench_sparse: %s\n", attn_last_error());
            return 1;
        }
        printf("\n%s\n%s\n", svg, path);
    }
    return 0;
}

int main(int argc, char **argv) {
    int runs = 3, nt = 1, do_scaling = 0, quick = 0, smoke = 0;
    const char *svg = NULL, *json = NULL;
    int64_t only_t = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            nt = atoi(argv[++i]);
        else if (strcmp(argv[i], "--T") == 0 && i + 1 < argc)
            only_t = atoll(argv[++i]);
        else if (strcmp(argv[i], "--wall") == 0)
            use_wall = 1;
        else if (strcmp(argv[i], "--median") == 0)
            use_median = 1;
        else if (strcmp(argv[i], "--scaling") == 0)
            do_scaling = 1;
        else if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--smoke") == 0)
            smoke = 1;
        else if (strcmp(argv[i], "--svg") == 0 && i + 1 < argc)
            svg = argv[++i];
        else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
            json = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--runs N] [--threads N] [--T N] [--wall] [--median]\n"
                            "       %s --scaling [--quick | --smoke] [--svg FILE] [--json FILE] [--runs N]\n",
                    argv[0], argv[0]);
            return 2;
        }
    }
    if (runs < 1) runs = 1;
    if (nt < 1) nt = 1;
    (void)measure_peak; /* bench_common.h's; times here are compared with dense, not a peak */
    static const int64_t Ts[2] = {1024, 4096};
    attn_sparse_pattern pats[7];
    memset(pats, 0, sizeof pats);
    pats[0].kind = ATTN_SPARSE_LOCAL_1D, pats[0].block = 128;
    pats[1].kind = ATTN_SPARSE_LOCAL_2D, pats[1].width = 64, pats[1].block_h = 8;
    pats[1].block_w = 16, pats[1].margin_h = 8, pats[1].margin_w = 16;
    pats[2].kind = ATTN_SPARSE_STRIDED, pats[2].block = 128, pats[2].heads = ATTN_SPARSE_HEADS_ALTERNATE;
    pats[3].kind = ATTN_SPARSE_FIXED, pats[3].block = 128, pats[3].summary = 16;
    pats[3].heads = ATTN_SPARSE_HEADS_ALTERNATE;
    pats[4].kind = ATTN_SPARSE_SLIDING, pats[4].window = 256;
    pats[5].kind = ATTN_SPARSE_DILATED, pats[5].window = 512, pats[5].dilation = 4;
    pats[6].kind = ATTN_SPARSE_GLOBAL_SLIDING, pats[6].globals = 16, pats[6].window = 256;
    static const char *names[9] = {"dense (causal)", "local 1-D l128", "local 2-D 8x16 W64",
                                   "strided l128 (alt)", "fixed l128 c16 (alt)", "sliding 256",
                                   "dilated 512/4", "global 16 + sl 256", "LSH 4 rounds c64"};
    if (do_scaling) return scaling(pats, names, quick, smoke, runs < 1 ? 1 : runs, nt, svg, json);
    printf("bench_sparse: B 1, H %d, D %d, causal, %d thread(s), %s of %d runs, %s time\n", H_,
           D_, nt, use_median ? "median" : "fastest", runs, use_wall ? "wall" : "CPU");
    printf("%-6s %-20s %8s %9s %11s %8s %13s %8s %11s\n", "T", "pattern", "visible", "computed",
           "fwd ms", "speedup", "fwd+bwd ms", "speedup", "layout ms");
    int rc = 0;
    for (int ti = 0; ti < 2; ti++) {
        const int64_t T = Ts[ti];
        if (only_t && T != only_t) continue;
        const size_t n = (size_t)H_ * (size_t)T * D_ + 2;
        float *buf = malloc(sizeof(float) * n);
        attn_ctx *ctx = NULL;
        attn_ctx_config cfg = {0};
        cfg.arena_bytes = sizeof(float) * n * 12 + ((size_t)64 << 20);
        cfg.n_threads = nt;
        if (!buf || attn_ctx_new(&ctx, &cfg) != ATTN_OK) {
            free(buf);
            return 1;
        }
        fill(buf, n, 7u);
        for (int pi = -1; pi < 7; pi++) {
            const attn_sparse_pattern *p = pi < 0 ? NULL : &pats[pi];
            double vis = 0, comp = 0, tc = 0, df = 0, tf = 0, db = 0, tb = 0;
            attn_ctx_reset(ctx);
            if (fractions(ctx, p, T, &vis, &comp, &tc) ||
                time_pair(ctx, p, T, 0, runs, buf, &df, &tf) ||
                time_pair(ctx, p, T, 1, runs, buf, &db, &tb)) {
                fprintf(stderr, "bench_sparse: %s\n", attn_last_error());
                rc = 1;
                continue;
            }
            printf("%-6lld %-20s %7.1f%% %8.1f%% %11.2f %7.2fx %13.2f %7.2fx %11.3f\n",
                   (long long)T, names[pi + 1], 100.0 * vis, 100.0 * comp, tf * 1e3, df / tf,
                   tb * 1e3, db / tb, tc * 1e3);
            fflush(stdout);
        }
        attn_ctx_free(ctx);
        free(buf);
    }
    return rc;
}
