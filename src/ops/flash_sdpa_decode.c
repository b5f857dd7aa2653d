/* flash_sdpa_decode.c: the fused attention's decode path (docs/transformer.md,
 * "Decode path"): calls of at most FL_DIRECT_T query rows that need no
 * gradient (a generated token over a KV cache) read K and V where they are
 * instead of staging a transposed copy of every kv head. The dot products
 * and the P V accumulation of those rows (attn__fl_dot_keys, also the
 * logits of the reference and the weights on that path), the rule that
 * picks the path (attn__fl_direct) and its forward. */
#include "flash_sdpa_internal.h"

/* z[s] = q . K[s * lds], s < n (q scaled and zero-padded, K rows of D
 * floats read where they are). Sixteen keys at a time: each key's 16-lane
 * products over d in its own vector, then the 16 vectors reduced together
 * into one vector of 16 logits by four levels of two-vector shuffles and
 * adds (about 3 operations per key instead of a store and a 16-step scalar
 * sum); the D % 16 tail and keys beyond the last whole 16 in order. */
#if defined(__GNUC__)
#if !defined(__clang__) /* __builtin_shuffle is GCC's; clang takes the single-key loop */
typedef int fl_i16 __attribute__((vector_size(64)));
#define FL_PAIR(a, b, lo, hi) (__builtin_shuffle((a), (b), (lo)) + __builtin_shuffle((a), (b), (hi)))
#define FL_GROUPED_DOTS 1
#endif
/* c = the 16-lane products q[d] k[d] over d < D16, summed lane by lane in
 * order (one key's chain, kept in a register) */
#define FL_DOT16(c, q, k, D16)                                  \
    do {                                                        \
        (c) = (fl_v16){0};                                      \
        for (int64_t d_ = 0; d_ < (D16); d_ += 16) {            \
            fl_v16 qv_, kv_;                                    \
            FL_LD(qv_, (q) + d_);                               \
            FL_LD(kv_, (k) + d_);                               \
            (c) += qv_ * kv_;                                   \
        }                                                       \
    } while (0)
FL_MK_ATTR static float fl_dot1(const float *restrict q, const float *restrict k, int64_t D) {
    const int64_t D16 = D & ~(int64_t)15;
    fl_v16 acc;
    FL_DOT16(acc, q, k, D16);
    float lane[16];
    FL_ST(lane, acc);
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) lane[i] += lane[i + w];
    float x = lane[0];
    for (int64_t d = D16; d < D; d++) x += q[d] * k[d];
    return x;
}
FL_MK_ATTR void attn__fl_dot_keys(float *restrict z, const float *restrict q,
                                   const float *restrict K, int64_t lds, int64_t n, int64_t D) {
    int64_t s0 = 0;
#if defined(FL_GROUPED_DOTS)
    const int64_t D16 = D & ~(int64_t)15;
    static const fl_i16 l1 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
                        h1 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31},
                        l2 = {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27},
                        h2 = {4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31},
                        l3 = {0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29},
                        h3 = {2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31},
                        l4 = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30},
                        h4 = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
    for (; s0 + 16 <= n; s0 += 16) {
        fl_v16 a[16];
        for (int j = 0; j < 16; j++) { /* key by key: the chain stays in a register */
            fl_v16 c;
            FL_DOT16(c, q, K + (s0 + j) * lds, D16);
            a[j] = c;
        }
        fl_v16 r[8], t[4], u[2], w;
        for (int i = 0; i < 8; i++) r[i] = FL_PAIR(a[2 * i], a[2 * i + 1], l1, h1);
        for (int i = 0; i < 4; i++) t[i] = FL_PAIR(r[2 * i], r[2 * i + 1], l2, h2);
        for (int i = 0; i < 2; i++) u[i] = FL_PAIR(t[2 * i], t[2 * i + 1], l3, h3);
        w = FL_PAIR(u[0], u[1], l4, h4);
        FL_ST(z + s0, w);
        for (int64_t d = D16; d < D; d++)
            for (int j = 0; j < 16; j++) z[s0 + j] += q[d] * K[(s0 + j) * lds + d];
    }
#endif
    for (; s0 < n; s0++) z[s0] = fl_dot1(q, K + s0 * lds, D);
}

/* acc[e] += sum_s p[s] V[s * lds + e], e < Dv, s < n in order (V rows read
 * where they are; a zero weight still multiplies its row, as the tile
 * products do, so a NaN in V reaches the same rows). Columns in blocks of
 * 64 whose accumulators stay in registers over the keys. */
FL_MK_ATTR static void fl_axpy_keys(float *restrict acc, const float *restrict p,
                                    const float *restrict V, int64_t lds, int64_t n, int64_t Dv) {
    int64_t e = 0;
    for (; e + 64 <= Dv; e += 64) {
        fl_v16 c0, c1, c2, c3;
        FL_LD(c0, acc + e), FL_LD(c1, acc + e + 16), FL_LD(c2, acc + e + 32), FL_LD(c3, acc + e + 48);
        for (int64_t s = 0; s < n; s++) {
            const float *v = V + s * lds + e;
            const float w = p[s];
            fl_v16 b0, b1, b2, b3;
            FL_LD(b0, v), FL_LD(b1, v + 16), FL_LD(b2, v + 32), FL_LD(b3, v + 48);
            c0 += w * b0, c1 += w * b1, c2 += w * b2, c3 += w * b3;
        }
        FL_ST(acc + e, c0), FL_ST(acc + e + 16, c1), FL_ST(acc + e + 32, c2), FL_ST(acc + e + 48, c3);
    }
    for (; e + 16 <= Dv; e += 16) {
        fl_v16 c;
        FL_LD(c, acc + e);
        for (int64_t s = 0; s < n; s++) {
            fl_v16 b;
            FL_LD(b, V + s * lds + e);
            c += p[s] * b;
        }
        FL_ST(acc + e, c);
    }
    for (; e < Dv; e++)
        for (int64_t s = 0; s < n; s++) acc[e] += p[s] * V[s * lds + e];
}
#else
void attn__fl_dot_keys(float *restrict z, const float *restrict q, const float *restrict K,
                        int64_t lds, int64_t n, int64_t D) {
    for (int64_t s = 0; s < n; s++) {
        float x = 0.0f;
        for (int64_t d = 0; d < D; d++) x += q[d] * K[s * lds + d];
        z[s] = x;
    }
}
static void fl_axpy_keys(float *restrict acc, const float *restrict p, const float *restrict V,
                         int64_t lds, int64_t n, int64_t Dv) {
    for (int64_t s = 0; s < n; s++)
        for (int64_t e = 0; e < Dv; e++) acc[e] += p[s] * V[s * lds + e];
}
#endif

/* Whether a call takes the decode path (fwd_tile_direct, and the same
 * logits in fl_weights): at most FL_DIRECT_T query rows, f32, no sparse
 * pattern and no gradient to compute. Staging K^T and V costs about what a
 * query tile of a few rows computes, so for one generated token it was two
 * thirds of the op's time; the backward recomputes the logits with the tile
 * products, so a call that needs gradients keeps the tile path (its saved
 * statistics then come from the same products). */
int attn__fl_direct(const attn_ctx *ctx, const attn_node *node, const fl_geom *g) {
    if (g->T > FL_DIRECT_T || g->sp || g->qh) return 0;
    for (int i = 0; ctx->grad_enabled && i < node->n_in; i++)
        if (attn__needs_grad(node, i)) return 0;
    return 1;
}

/* Per-thread scratch of the decode path: q rows, accumulators, a dropout
 * row, and each row's logits over the whole key range. */
static int64_t direct_scratch(const fl_geom *g) {
    return FL_DIRECT_T * (up(g->D, 32) + up(g->Dv, 32) + fl_sp(g)) + KT;
}

/* The decode path (fl_direct) for the nq <= FL_DIRECT_T query rows of
 * (b, h): per row, in three passes over the key tiles of the rows' span,
 * (1) the logits from K in place (fl_dot_keys; masks and bias per tile
 * as in fwd_tile), (2) the row's maximum m and l = sum e^(x - m) (in
 * double), (3) acc += P V from V in place in one pass (fl_axpy_keys). Each
 * of K and V is streamed once per row, with no online rescaling; the
 * statistics, the NaN rules and the rows V reaches are fwd_tile's. */
static void fwd_tile_direct(const fl_geom *g, int64_t b, int64_t h, int64_t nq, float *ws,
                            float *out, float *stats) {
    const int64_t T = g->T, S = g->S, D = g->D, Dv = g->Dv, bh = b * g->H + h, kh = h / g->G;
    const int64_t Dp = up(D, 32), Dvp = up(Dv, 32), Sp = fl_sp(g);
    const float *Q = g->q + fl_qoff(g, b, h, 0);
    const float *K = g->k + fl_koff(g, b, kh, 0), *V = g->v + fl_voff(g, b, kh, 0);
    float *qs = ws, *acc = qs + FL_DIRECT_T * Dp, *z = acc + FL_DIRECT_T * Dvp, *lg = z + KT;
    fl_rows R;
    attn__fl_rows_begin(g, b, 0, nq, nq, &R);
    attn__fl_pad(qs, nq, Dp, Q, nq, D, g->qs[2], g->scale);
    memset(acc, 0, sizeof(float) * (size_t)(nq * Dvp));
    if (R.span_lo >= R.span_hi) { /* no row sees a key */
        attn__fl_rows_end(g, bh, 0, nq, &R, acc, Dvp, out, stats);
        return;
    }
    const int64_t first = fl_tile_start(R.span_lo), last = R.span_hi;
    for (int64_t r = 0; r < nq; r++) {
        float *row = lg + r * Sp;
        int on = 0;
        /* 1. logits, masked per tile; tiles the row does not see are -inf */
        for (int64_t k0 = first; k0 < last; k0 += KT) {
            const int64_t n = last - k0 < KT ? last - k0 : KT;
            if (!fl_row_on(&R, r, k0, n)) {
                for (int64_t s = 0; s < KT; s++) row[k0 + s] = -INFINITY;
                continue;
            }
            on = 1;
            attn__fl_dot_keys(row + k0, qs + r * Dp, K + k0 * g->ks[2], g->ks[2], n, D);
            attn__fl_mask_row(g, h, r, row + k0, n, k0, R.lo[r], R.hi[r], fl_bias_row(g, b, h, r));
        }
        /* 2. m and l */
        float mx = -INFINITY;
        int nan = 0;
        for (int64_t k0 = first; on && k0 < last; k0 += KT) {
            int tn;
            const float tm = attn__fl_rowmax(row + k0, &tn);
            nan |= tn;
            if (tm > mx) mx = tm;
        }
        if (!on || nan || mx == -INFINITY) {
            R.bad[r] |= nan;
            memset(row + first, 0, sizeof(float) * (size_t)(last - first));
        } else {
            double l = 0.0;
            for (int64_t k0 = first; k0 < last; k0 += KT) {
                l += (double)attn__fl_exp(row + k0, mx);
                if (g->p > 0.0f) {
                    const int64_t n = last - k0 < KT ? last - k0 : KT;
                    attn__fl_keep(g, (uint64_t)((bh * T + r) * S + k0), n, z);
                    for (int64_t s = 0; s < n; s++) row[k0 + s] *= z[s];
                }
            }
            R.m[r] = mx;
            R.l[r] = l;
        }
        /* 3. acc += P V over the span (a zero weight still multiplies its
         * row, as in the tile products) */
        fl_axpy_keys(acc + r * Dvp, row + first, V + first * g->vs[2], g->vs[2], last - first, Dv);
    }
    attn__fl_rows_end(g, bh, 0, nq, &R, acc, Dvp, out, stats);
}

/* The forward of a call that takes the decode path: items (b, h), handed
 * out to whichever thread is free. */
attn_status attn__fl_forward_direct(attn_ctx *ctx, const fl_geom *gp, float *out, float *stats) {
    const fl_geom g = *gp;
    const int64_t items = g.B * g.H;
    const double work = 2.0 * (double)g.B * g.H * g.T * g.S * (double)(g.D + g.Dv);
    int nt = attn__threads_for(ctx, work);
    if (nt > items) nt = (int)items;
    const int64_t per = direct_scratch(&g);
    float *ws = attn__fl_scratch(ctx, nt, per, "flash_sdpa forward (decode rows)");
    if (!ws) return ctx->status;
    ATTN__OMP_FOR_DYNAMIC(nt, 1)
    for (int64_t it = 0; it < items; it++)
        fwd_tile_direct(&g, it / g.H, it % g.H, g.T, ws + FL_TID() * per, out, stats);
    return ATTN_OK;
}
