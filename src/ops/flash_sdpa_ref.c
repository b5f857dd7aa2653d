/* flash_sdpa_ref.c: the fused attention's scalar reference kernel (graph op
 * FLASH_SDPA under use_ref) and the weights recovered from the saved row
 * statistics; both take their f32 logits from fl_logit_rows, the products the
 * forward and the backward use. */
#include <math.h>

#include "flash_sdpa_internal.h"

/* The logits of query rows [t0, t0 + nq) of head h (batch b) against every
 * key, as the forward computes them: the decode path's fl_dot_keys when
 * `direct` (fl_direct), else the tile products on K^T staged in kt
 * (attn__fl_tr_tiles of the kv head, by the caller) and the scaled q rows
 * (attn__fl_pad). lg [nq][Sp]; keys at or beyond the key length hold 0.
 * Scratch: qs [QT][Dp], sc [QT][KT]; wide: the AVX-512 kernels run
 * (fl_wide). The scalar reference and the weights
 * take their logits from here, so that the statistics the reference saves
 * fit what the weights and the backward recompute with the same products,
 * in every build and on every CPU (the tile products' bits depend on the
 * clone and on FMA contraction, which the optimiser applies only from -O2:
 * a reference with its own dot product, in double or as an FMA chain,
 * disagreed with them by 1e-3 at logits near 1e4, enough for weights of
 * 1.004). */
static void fl_logit_rows(const fl_geom *g, int direct, int wide, int64_t b, int64_t h,
                          int64_t t0, int64_t nq, const float *kt, float *qs, float *sc,
                          float *lg) {
    /* the rows in the blocks the backward recomputes them in: 8 on the
     * AVX-512 kernels, 4 on the others (attn__fl_gemm takes a block of 4
     * through fl_mk, whose contraction into FMA the optimiser decides) */
    const int64_t S = g->S, D = g->D, Dp = up(D, 32), Sp = fl_sp(g), nqp = up(nq, wide ? 8 : 4);
    const int64_t lim = fl_key_limit(g, b);
    attn__fl_pad(qs, nqp, Dp, g->q + fl_qoff(g, b, h, t0), nq, D, g->qs[2], g->scale);
    for (int64_t k0 = 0; k0 < S; k0 += KT) {
        const int64_t n = S - k0 < KT ? S - k0 : KT;
        if (direct) {
            const int64_t nd = lim - k0 < 0 ? 0 : lim - k0 < n ? lim - k0 : n;
            for (int64_t r = 0; r < nq; r++) {
                float *row = lg + r * Sp + k0;
                attn__fl_dot_keys(row, qs + r * Dp, g->k + fl_koff(g, b, h / g->G, k0), g->ks[2], nd, D);
                for (int64_t s = nd; s < n; s++) row[s] = 0.0f;
            }
        } else {
            attn__fl_gemm(sc, KT, qs, Dp, fl_tile(kt, k0, D), KT, nqp, KT, D, 0);
            for (int64_t r = 0; r < nq; r++)
                memcpy(lg + r * Sp + k0, sc + r * KT, sizeof(float) * (size_t)n);
        }
    }
}

/* Whether the fused op runs its AVX-512 kernels (the forward's rule). */
static int fl_wide(const attn_ctx *ctx) {
#if defined(FL_X86)
    return __builtin_cpu_supports("avx512f") && !(ctx->kernel_flags & ATTN_KERNELS_PORTABLE);
#else
    (void)ctx;
    return 0;
#endif
}

/* ---- forward (reference) --------------------------------------------------------------------- */

/* The scalar reference: each logit is the f32 value the kernels produce,
 * (scale q) . k as one chain over d in order compiled like the tile kernels
 * (fl_ref_logit), then + bias in f32; everything after it (max, exp, sums,
 * weights, P V) in double. */
attn_status attn__flash_sdpa_ref(attn_ctx *ctx, attn_node *node) {
    fl_geom g = attn__fl_geometry(node);
    if (attn__fl_as_forward(ctx, node, &g) || attn__fl_widen(ctx, &g)) return ctx->status;
    float *out = attn_f32(node->out), *stats = attn_f32(node->saved[0]);
    const int64_t T = g.T, S = g.S, D = g.D, Dv = g.Dv, Dp = up(D, 32), Sp = fl_sp(&g);
    const int direct = attn__fl_direct(ctx, node, &g), wide = fl_wide(ctx);
    double *z = attn__alloc(ctx, sizeof(double) * (size_t)S, "flash_sdpa reference (row)");
    float *kt = z ? attn__alloc(ctx, sizeof(float) * (size_t)(Sp * D + QT * Dp + QT * KT + QT * Sp),
                                "flash_sdpa reference (k tiles, q rows, logits)")
                  : NULL;
    if (!kt) return ctx->status;
    float *qs = kt + Sp * D, *sc = qs + QT * Dp, *lg = sc + QT * KT;
    for (int64_t b = 0; b < g.B; b++)
        for (int64_t h = 0; h < g.H; h++) {
            const int64_t kh = h / g.G, bh = b * g.H + h;
            const float *V = g.v + fl_voff(&g, b, kh, 0);
            const int64_t lv = g.vs[2];
            if (h % g.G == 0 && !direct)
                attn__fl_tr_tiles(kt, g.k + fl_koff(&g, b, kh, 0), fl_key_limit(&g, b), D, g.ks[2], Sp);
            for (int64_t t = 0; t < T; t++) {
                if (t % QT == 0)
                    fl_logit_rows(&g, direct, wide, b, h, t, T - t < QT ? T - t : QT, kt, qs, sc, lg);
                const float *lrow = lg + (t % QT) * Sp;
                const float *br = fl_bias_row(&g, b, h, t);
                float *orow = out + fl_ooff(&g, b, h, t);
                int64_t lo, hi;
                fl_range(&g, b, t, &lo, &hi);
                double mx = -INFINITY;
                int nan = 0;
                for (int64_t s = lo; s < hi; s++) {
                    if (g.sp && !attn_sparse_visible(g.sp, h, T, S, t, s)) {
                        z[s] = -INFINITY; /* hidden by the pattern: weight 0 */
                        continue;
                    }
                    /* the forward's f32 logit (fl_logit_rows), then the bias */
                    float logit = lrow[s];
                    if (g.slopes)
                        logit += br ? sdpa_alibi(g.slopes[h], t + S - T, s) + br[s * g.bst[3]]
                                    : sdpa_alibi(g.slopes[h], t + S - T, s);
                    else if (br)
                        logit += br[s * g.bst[3]];
                    z[s] = (double)logit;
                    if (isnan(z[s]))
                        nan = 1;
                    else if (z[s] > mx)
                        mx = z[s];
                }
                float *st = stats + 2 * (bh * T + t);
                if (nan) {
                    for (int64_t e = 0; e < Dv; e++) orow[e] = NAN;
                    st[0] = st[1] = NAN;
                    continue;
                }
                if (mx == -INFINITY) {
                    for (int64_t e = 0; e < Dv; e++) orow[e] = 0.0f;
                    st[0] = -INFINITY;
                    st[1] = 0.0f;
                    continue;
                }
                double sum = 0.0;
                for (int64_t s = lo; s < hi; s++) sum += (z[s] = exp(z[s] - mx));
                st[0] = (float)mx;
                st[1] = (float)(1.0 / sum);
                for (int64_t e = 0; e < Dv; e++) {
                    double acc = 0.0;
                    for (int64_t s = lo; s < hi; s++) {
                        double w = z[s] / sum;
                        if (g.p > 0.0f) {
                            const uint64_t i = (uint64_t)((bh * T + t) * S + s);
                            w = attn_rng_uniform(g.seed, g.offset, i) >= g.p
                                    ? w / (1.0 - (double)g.p)
                                    : 0.0;
                        }
                        acc += w * (double)V[s * lv + e];
                    }
                    orow[e] = (float)acc;
                }
            }
        }
    return ATTN_OK;
}

/* ---- weights from the saved statistics ---------------------------------------------------------- */

/* P [B,H,T,S] = exp(logit - m) / l at visible keys, 0 elsewhere (a zero row
 * for a query with no visible key, a NaN row for a NaN one). The logits come
 * from the forward's own tile products (attn__fl_gemm on the same staged K^T tiles
 * and scaled q rows), so they are the forward's f32 values bit for bit on
 * the f32 path and m is one of them: P is exact to f32 rounding even where
 * |logit| is huge (a -1e9 mask bias on a whole row gives 1 / S). */
int attn__fl_weights(attn_ctx *ctx, const attn_node *node, float *P) {
    fl_geom g = attn__fl_geometry(node);
    if (attn__fl_as_forward(ctx, node, &g) || attn__fl_widen(ctx, &g)) return -1;
    const float *stats = attn_f32(node->saved[0]);
    const int64_t T = g.T, S = g.S, D = g.D, Dp = up(D, 32), Sp = fl_sp(&g);
    const size_t mark = attn__arena_mark(ctx);
    float *kt = attn__alloc(ctx, sizeof(float) * (size_t)(Sp * D + QT * Dp + QT * KT + QT * Sp),
                            "flash_sdpa weights (k tiles, q rows, logits)");
    if (!kt) return -1;
    float *qs = kt + Sp * D, *sc = qs + QT * Dp, *lg = sc + QT * KT;
    const int direct = attn__fl_direct(ctx, node, &g), wide = fl_wide(ctx);
    for (int64_t b = 0; b < g.B; b++)
        for (int64_t h = 0; h < g.H; h++) {
            const int64_t bh = b * g.H + h;
            if (h % g.G == 0 && !direct)
                attn__fl_tr_tiles(kt, g.k + fl_koff(&g, b, h / g.G, 0), fl_key_limit(&g, b), D, g.ks[2],
                                  Sp);
            for (int64_t t0 = 0; t0 < T; t0 += QT) {
                const int64_t nq = T - t0 < QT ? T - t0 : QT;
                fl_logit_rows(&g, direct, wide, b, h, t0, nq, kt, qs, sc, lg);
                for (int64_t r = 0; r < nq; r++) {
                    const int64_t t = t0 + r;
                    const float *st = fl_stat(stats, bh * T + t);
                    const float *br = fl_bias_row(&g, b, h, t);
                    float *pr = P + (bh * T + t) * S;
                    int64_t lo, hi;
                    fl_range(&g, b, t, &lo, &hi);
                    for (int64_t key = 0; key < S; key++) {
                        if (key < lo || key >= hi || st[0] == -INFINITY ||
                            (g.sp && !attn_sparse_visible(g.sp, h, T, S, t, key))) {
                            pr[key] = 0.0f;
                            continue;
                        }
                        float x = lg[r * Sp + key];
                        if (g.slopes)
                            x += br ? sdpa_alibi(g.slopes[h], t + S - T, key) + br[key * g.bst[3]]
                                    : sdpa_alibi(g.slopes[h], t + S - T, key);
                        else if (br)
                            x += br[key * g.bst[3]];
                        pr[key] = (float)(exp((double)(x - st[0])) * (double)st[1]);
                    }
                }
            }
        }
    attn__arena_rewind(ctx, mark);
    return 0;
}

