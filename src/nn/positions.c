/* positions.c: the constant position tables of include/attn/positions.h:
 * the sinusoidal absolute table (Vaswani et al., 2017), the ALiBi slopes and
 * bias (Press et al., 2022). The graph ops of the same header live in
 * src/ops/rope.c and src/ops/rel_pos.c. docs/positions.md has the formulas.
 *
 * Every value is computed in double and rounded once to float, so the tables
 * do not depend on the thread count or on float32 angle arithmetic.
 */
#include <math.h>

#include "../core/internal.h"
#include "attn/positions.h"

#define POS_LIMIT ((int64_t)1 << 40)

attn_tensor *attn_sinusoidal_positions(attn_ctx *ctx, int64_t T, int64_t E, int64_t pos0,
                                       float base) {
    static const char name[] = "sinusoidal_positions";
    if (!ctx) {
        attn__error(ATTN_ERR_INVALID_ARG, "%s: context is NULL", name);
        return NULL;
    }
    if (T < 1 || E < 1) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: T %lld, E %lld, expected both >= 1", name,
                   (long long)T, (long long)E);
        return NULL;
    }
    const double b = base == 0.0f ? 10000.0 : (double)base;
    if (!(b > 0.0) || !isfinite(b)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: base %g, expected a finite value > 0 (0 means 10000)",
                   name, (double)base);
        return NULL;
    }
    if (pos0 < -POS_LIMIT || pos0 > POS_LIMIT - T) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: pos0 %lld with T %lld, expected positions within +-2^40", name,
                   (long long)pos0, (long long)T);
        return NULL;
    }
    const int64_t sh[2] = {T, E};
    attn_tensor *pe = attn__tensor(ctx, name, ATTN_F32, 2, sh);
    if (!pe) return NULL;
    float *o = attn_f32(pe);
    const int nt = attn__threads_for(ctx, 40.0 * (double)T * (double)E);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t t = 0; t < T; t++) {
        const double p = (double)(pos0 + t);
        for (int64_t c = 0; c < E; c += 2) {
            /* columns 2i and 2i + 1 share the frequency base^(-2i/E) */
            const double a = p * pow(b, -(double)c / (double)E);
            o[t * E + c] = (float)sin(a);
            if (c + 1 < E) o[t * E + c + 1] = (float)cos(a);
        }
    }
    pe->requires_grad = 0;
    return pe;
}

/* The n slopes of n heads, n a power of two: 2^(-8 k / n), k = 1..n. */
static double alibi_pow2_slope(int n, int k) { return exp2(-8.0 * (double)k / (double)n); }

void attn_alibi_slopes(int H, float *slopes) {
    if (H < 1 || !slopes) return;
    int n = 1;
    while (n * 2 <= H) n *= 2; /* the largest power of two <= H */
    for (int h = 0; h < n; h++) slopes[h] = (float)alibi_pow2_slope(n, h + 1);
    /* the rest: the 1st, 3rd, 5th ... slope of 2n heads */
    for (int h = n; h < H; h++) slopes[h] = (float)alibi_pow2_slope(2 * n, 2 * (h - n) + 1);
}

attn_tensor *attn_alibi_bias(attn_ctx *ctx, int H, int64_t T, int64_t S, int causal) {
    static const char name[] = "alibi_bias";
    if (!ctx) {
        attn__error(ATTN_ERR_INVALID_ARG, "%s: context is NULL", name);
        return NULL;
    }
    if (H < 1 || T < 1 || S < 1) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: H %d, T %lld, S %lld, expected all >= 1", name,
                   H, (long long)T, (long long)S);
        return NULL;
    }
    const int64_t sh[4] = {1, H, T, S};
    attn_tensor *bias = attn__tensor(ctx, name, ATTN_F32, 4, sh);
    if (!bias) return NULL;
    float *slopes = attn__alloc(ctx, sizeof(float) * (size_t)H, "alibi_bias (slopes)");
    if (!slopes) return NULL;
    attn_alibi_slopes(H, slopes);
    float *o = attn_f32(bias);
    const int64_t rows = (int64_t)H * T;
    const int nt = attn__threads_for(ctx, 2.0 * (double)rows * (double)S);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t row = 0; row < rows; row++) {
        const int64_t h = row / T, t = row % T, q = t + (S - T);
        const double m = slopes[h];
        float *br = o + row * S;
        for (int64_t s = 0; s < S; s++) {
            const int64_t d = q - s; /* how far key s lies behind the query */
            if (causal)
                br[s] = d < 0 ? -INFINITY : (float)(-m * (double)d);
            else
                br[s] = (float)(-m * (double)(d < 0 ? -d : d));
        }
    }
    bias->requires_grad = 0;
    return bias;
}
