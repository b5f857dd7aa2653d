/* flash_sdpa_backward.c: the f32 backward of the fused attention (graph op
 * FLASH_SDPA; contract, algorithm and derivation in flash_sdpa.c and
 * docs/transformer.md, "Backward by recomputation"). With bf16 precision
 * the products go to flash_sdpa_bf16.c where the CPU allows.
 */
#include "flash_sdpa_internal.h"

/* ---- backward ---------------------------------------------------------------------------------- */


/* Per-thread scratch of the backward, in floats: the tiles, then the unit's
 * dK and dV accumulators [S + KT, Dp] and [S + KT, Dvp]. */
static int64_t bwd_tiles(const fl_geom *g) {
    const int64_t Dp = up(g->D, 32), Dvp = up(g->Dv, 32);
    return QT * Dp + QT * Dvp + 2 * QT * KT + 2 * KT * QT + QT * Dp + QT + KT;
}
/* ... then the staged kt [D, Sp], vt [Dv, Sp], kp [Sp, Dp] of the unit's kv
 * head, then the dK, dV accumulators [S + KT, Dp], [S + KT, Dvp] */
static int64_t bwd_scratch(const fl_geom *g) {
    const int64_t Sp = fl_sp(g), Dp = up(g->D, 32), Dvp = up(g->Dv, 32);
    return bwd_tiles(g) + Sp * (g->D + g->Dv + Dp) + (g->S + KT) * (Dp + Dvp);
}

/* The backward's operands of kv head (b, kh): kt = K^T and vt = V^T tile by
 * tile (attn__fl_tr_tiles), kp = K padded [Sp, Dp]. */
static void fl_stage_bwd(const fl_geom *g, int64_t b, int64_t kh, float *kt, float *vt,
                         float *kp) {
    const int64_t D = g->D, Dv = g->Dv, Sp = fl_sp(g);
    const float *K = g->k + fl_koff(g, b, kh, 0), *V = g->v + fl_voff(g, b, kh, 0);
    const int64_t n = fl_key_limit(g, b); /* zeros beyond the key length */
    attn__fl_tr_tiles(kt, K, n, D, g->ks[2], Sp);
    attn__fl_tr_tiles(vt, V, n, Dv, g->vs[2], Sp);
    attn__fl_pad(kp, Sp, up(D, 32), K, n, D, g->ks[2], 1.0f);
}

/* The start of a query tile's backward: each row's visible keys [lo, hi)
 * (empty for a row that saw no key: no gradient flows through it; also for
 * the padding rows nq .. nqp - 1), their span, D_t = dO_t . O_t (drow), the
 * zero-padded tiles scale Q (qs) and dO (dop), and the dQ tile zeroed. */
static void fl_bwd_begin(const fl_geom *g, const fl_grads *gr, int64_t b, int64_t h, int64_t t0,
                         int64_t nq, int64_t nqp, float *qs, float *dop, float *dq, float *drow,
                         int64_t *lo, int64_t *hi, int64_t *span_lo, int64_t *span_hi) {
    const int64_t T = g->T, D = g->D, Dv = g->Dv, bh = b * g->H + h;
    const int64_t lo_ = g->os[2]; /* row stride of out and its gradient */
    const float *dO = gr->gy + fl_ooff(g, b, h, t0), *O = gr->out + fl_ooff(g, b, h, t0);
    *span_lo = g->S;
    *span_hi = 0;
    for (int64_t r = 0; r < nqp; r++) {
        lo[r] = hi[r] = 0;
        if (r >= nq) continue;
        fl_range(g, b, t0 + r, &lo[r], &hi[r]);
        if (lo[r] < hi[r] && fl_stat(gr->stats, bh * T + t0 + r)[0] != -INFINITY) {
            if (lo[r] < *span_lo) *span_lo = lo[r];
            if (hi[r] > *span_hi) *span_hi = hi[r];
        } else {
            hi[r] = lo[r] = 0;
        }
        double acc = 0.0;
        for (int64_t e = 0; e < Dv; e++) acc += (double)dO[r * lo_ + e] * (double)O[r * lo_ + e];
        drow[r] = (float)acc;
    }
    attn__fl_pad(qs, nqp, up(D, 32), g->q + fl_qoff(g, b, h, t0), nq, D, g->qs[2], g->scale);
    attn__fl_pad(dop, nqp, up(Dv, 32), dO, nq, Dv, lo_, 1.0f);
    memset(dq, 0, sizeof(float) * (size_t)(nqp * up(D, 32)));
}

/* The end of a query tile's backward: dQ += scale dq (the tile's sums). */
static void fl_bwd_end(const fl_geom *g, const fl_grads *gr, int64_t bh, int64_t t0, int64_t nq,
                       const float *dq) {
    if (!gr->dq) return;
    const int64_t D = g->D, Dp = up(D, 32), ld = g->gqs[2];
    float *gq = gr->dq + fl_gqoff(g, bh / g->H, bh % g->H, t0);
    for (int64_t r = 0; r < nq; r++)
        for (int64_t d = 0; d < D; d++) gq[r * ld + d] += g->scale * dq[r * Dp + d];
}

/* dst [KT, QT] = src [QT, KT] transposed (rows r < nqp) */
FL_CLONES static void fl_tr_tile(float *restrict dst, const float *restrict src, int64_t nqp) {
    for (int64_t r = 0; r < nqp; r++)
        for (int64_t s = 0; s < KT; s++) dst[s * QT + r] = src[r * KT + s];
}

/* Backward of the query tile [t0, t0 + nq) of head h against its key span;
 * dK, dV of the unit accumulate in dka [S + KT, Dp], dva [S + KT, Dvp]. */
FL_CLONES static void bwd_tile(const fl_geom *g, const fl_grads *gr, int64_t b, int64_t h, int64_t t0,
                     int64_t nq, float *ws, const float *ktall, const float *vtall,
                     const float *kpall, float *dka, float *dva) {
    const int64_t T = g->T, S = g->S, D = g->D, Dv = g->Dv, kh = h / g->G, bh = b * g->H + h;
    const int64_t Dp = up(D, 32), Dvp = up(Dv, 32), nqp = up(nq, 4);
    float *qs = ws, *dop = qs + QT * Dp;
    float *P = dop + QT * Dvp, *dS = P + QT * KT, *PT = dS + QT * KT;
    (void)kh;
    float *dST = PT + KT * QT, *dq = dST + KT * QT, *drow = dq + QT * Dp, *z = drow + QT;
    const int want_ds = gr->dq || gr->dk || gr->dl;
    int64_t lo[QT], hi[QT], span_lo, span_hi;
    fl_bwd_begin(g, gr, b, h, t0, nq, nqp, qs, dop, dq, drow, lo, hi, &span_lo, &span_hi);
    fl_walk w;
    attn__fl_walk_begin(g, h, t0, span_lo, span_hi, &w);
    int64_t k0;
    const uint64_t *bits;
    while (attn__fl_walk_next(&w, &k0, &bits)) {
        const int64_t n = span_hi - k0 < KT ? span_hi - k0 : KT, n4 = up(n, 4);
        attn__fl_gemm(P, KT, qs, Dp, fl_tile(ktall, k0, D), KT, nqp, KT, D, 0); /* logits */
        if (want_ds) /* dO V^T */
            attn__fl_gemm(dS, KT, dop, Dvp, fl_tile(vtall, k0, Dv), KT, nqp, KT, Dv, 0);
        for (int64_t r = 0; r < nqp; r++) {
            float *pr = P + r * KT, *dr = dS + r * KT;
            if (r >= nq || hi[r] <= k0 || lo[r] >= k0 + n || (bits && !bits[r])) {
                memset(pr, 0, sizeof(float) * KT);
                if (want_ds) memset(dr, 0, sizeof(float) * KT);
                continue;
            }
            const int64_t t = t0 + r;
            attn__fl_mask_row(g, h, t, pr, n, k0, lo[r], hi[r], fl_bias_row(g, b, h, t));
            if (bits) attn__fl_apply_bits(pr, bits[r]);
            const float *st = fl_stat(gr->stats, bh * T + t);
            (void)attn__fl_exp(pr, st[0]); /* P = exp(logit - m) / l */
            attn__fl_scal(pr, st[1], KT);
            if (g->p > 0.0f)
                attn__fl_keep(g, (uint64_t)((bh * T + t) * S + k0), n, z);
            else
                for (int64_t s = 0; s < n; s++) z[s] = 1.0f;
            for (int64_t s = n; s < KT; s++) z[s] = 0.0f;
            if (want_ds) {
                for (int64_t s = 0; s < KT; s++) dr[s] = pr[s] * (dr[s] * z[s] - drow[r]);
                if (gr->dl) {
                    const int64_t a = lo[r] - k0 > 0 ? lo[r] - k0 : 0;
                    const int64_t e = hi[r] - k0 < n ? hi[r] - k0 : n;
                    float *L = gr->dl + (bh * T + t) * S + k0;
                    for (int64_t s = a; s < e; s++) L[s] = dr[s];
                }
            }
            for (int64_t s = 0; s < KT; s++) pr[s] *= z[s]; /* P o Z */
        }
        if (gr->dv) { /* dV += (P o Z)^T dO */
            fl_tr_tile(PT, P, nqp);
            attn__fl_gemm(dva + k0 * Dvp, Dvp, PT, QT, dop, Dvp, n4, Dvp, nqp, 1);
        }
        if (gr->dk) { /* dK += dS^T (scale Q) */
            fl_tr_tile(dST, dS, nqp);
            attn__fl_gemm(dka + k0 * Dp, Dp, dST, QT, qs, Dp, n4, Dp, nqp, 1);
        }
        if (gr->dq) { /* dQ += dS K (scaled at the end) */
            attn__fl_gemm(dq, Dp, dS, KT, kpall + k0 * Dp, Dp, nqp, Dp, n, 1);
        }
    }
    fl_bwd_end(g, gr, bh, t0, nq, dq);
}

#if defined(FL_X86)
/* bwd_tile on AVX-512: logits and dO V^T of each 8-row block through the
 * register-blocked kernel, the row pass in intrinsics, then per key tile
 * dV += (P o Z)^T dO and dK += dS^T (scale Q) read P and dS by column
 * (fl_k8x32t, no transposed copies) and dQ += dS K. */
FL512 static void bwd_tile512(const fl_geom *g, const fl_grads *gr, int64_t b, int64_t h,
                              int64_t t0, int64_t nq, float *ws, const float *ktall,
                              const float *vtall, const float *kpall, float *dka, float *dva) {
    const int64_t D = g->D, Dv = g->Dv, bh = b * g->H + h;
    const int64_t Dp = up(D, 32), Dvp = up(Dv, 32), nqp = up(nq, 8);
    float *qs = ws, *dop = qs + QT * Dp;
    float *P = dop + QT * Dvp, *dS = P + QT * KT, *PT = dS + QT * KT;
    float *dST = PT + KT * QT, *dq = dST + KT * QT, *drow = dq + QT * Dp, *z = drow + QT;
    const int want_ds = gr->dq || gr->dk || gr->dl;
    int64_t lo[QT], hi[QT], span_lo, span_hi;
    fl_bwd_begin(g, gr, b, h, t0, nq, nqp, qs, dop, dq, drow, lo, hi, &span_lo, &span_hi);
    fl_walk w;
    attn__fl_walk_begin(g, h, t0, span_lo, span_hi, &w);
    int64_t k0;
    const uint64_t *bits;
    while (attn__fl_walk_next(&w, &k0, &bits)) {
        const int64_t n = span_hi - k0 < KT ? span_hi - k0 : KT, n8 = up(n, 8);
        const float *kb = fl_tile(ktall, k0, D), *vb = fl_tile(vtall, k0, Dv);
        uint64_t lt = 0; /* a partial tile: the keys some live row sees */
        /* passes over the tile's blocks of 8 rows, each keeping one key
         * operand in L1 (K^T, then V^T, then K), as in fwd_tile512 */
        int live[QT / 8];
        uint64_t lbs[QT / 8];
        int64_t ka[QT / 8] = {0}, ke[QT / 8] = {0};
        /* 1. which rows take part; the logits (scale Q) K^T */
        for (int64_t rb = 0; rb < nqp; rb += 8) {
            const int i = (int)(rb / 8);
            int on[8];
            live[i] = 0;
            for (int64_t r = rb; r < rb + 8; r++)
                live[i] |= on[r - rb] = hi[r] > k0 && lo[r] < k0 + n && (!bits || bits[r]);
            float *pb = P + rb * KT, *db = dS + rb * KT;
            if (!live[i]) {
                memset(pb, 0, sizeof(float) * 8 * KT);
                memset(db, 0, sizeof(float) * 8 * KT);
                continue;
            }
            /* as in fwd_tile512: halves of 32 keys no live row sees are
             * not computed (P there becomes 0 through the mask, dS is
             * zeroed), dQ runs over [ka, ke) only */
            const uint64_t lb = lbs[i] = fl_block_bits(bits, rb, on);
            lt |= lb;
            fl_block_range(bits, lb, n, &ka[i], &ke[i]);
            fl_block_product(pb, qs + rb * Dp, Dp, kb, D, lb);
            for (int64_t c = 0; c < KT; c += 32) /* dS is 0 on a half no row reaches */
                if (!(lb >> c & 0xFFFFFFFFu))
                    for (int r = 0; r < 8; r++) memset(db + r * KT + c, 0, sizeof(float) * 32);
        }
        /* 2. dP = dO V^T */
        if (want_ds)
            for (int64_t rb = 0; rb < nqp; rb += 8) {
                const int i = (int)(rb / 8);
                if (!live[i]) continue;
                fl_block_product(dS + rb * KT, dop + rb * Dvp, Dvp, vb, Dv, lbs[i]);
            }
        /* 3. the rows: P, dS */
        for (int64_t rb = 0; rb < nqp; rb += 8) {
            if (!live[rb / 8]) continue;
            for (int64_t r = rb; r < rb + 8; r++)
                fl_bwd_tile_row(g, gr, b, h, t0 + r, k0, n, lo[r], hi[r], bits != NULL,
                                bits ? bits[r] : 0, P + r * KT, dS + r * KT, z, drow[r], want_ds);
        }
        /* 4. dQ += dS K (scaled at the end) */
        if (gr->dq)
            for (int64_t rb = 0; rb < nqp; rb += 8) {
                const int i = (int)(rb / 8);
                if (!live[i]) continue;
                fl_k8xn(dq + rb * Dp, Dp, dS + rb * KT + ka[i], KT, kpall + (k0 + ka[i]) * Dp, Dp,
                        Dp, ke[i] - ka[i], 1);
            }
        for (int64_t i0 = 0; i0 < n8; i0 += 8) {
            if (bits && !(lt >> i0 & 0xFFu)) continue; /* P, dS: zero columns */
            if (gr->dv) /* dV += (P o Z)^T dO */
                fl_k8xnt(dva + (k0 + i0) * Dvp, Dvp, P + i0, KT, dop, Dvp, Dvp, nqp);
            if (gr->dk) /* dK += dS^T (scale Q) */
                fl_k8xnt(dka + (k0 + i0) * Dp, Dp, dS + i0, KT, qs, Dp, Dp, nqp);
        }
    }
    fl_bwd_end(g, gr, bh, t0, nq, dq);
}
#endif

/* dK, dV of kv head (b, kh) += the padded accumulators dka [S + KT, Dp],
 * dva [S + KT, Dvp] */
static void fl_add_kv_grads(const fl_geom *g, const fl_grads *gr, int64_t b, int64_t kh,
                            const float *dka, const float *dva) {
    const int64_t Dp = up(g->D, 32), Dvp = up(g->Dv, 32);
    for (int64_t s = 0; s < g->S; s++) {
        if (gr->dk) {
            float *dk = gr->dk + fl_gkoff(g, b, kh, s);
            for (int64_t d = 0; d < g->D; d++) dk[d] += dka[s * Dp + d];
        }
        if (gr->dv) {
            float *dv = gr->dv + fl_gvoff(g, b, kh, s);
            for (int64_t e = 0; e < g->Dv; e++) dv[e] += dva[s * Dvp + e];
        }
    }
}

/* The parallel part of the f32 backward: dQ, dK, dV (and dS into gr->dl)
 * added into the gradients of g. ATTN_OK, or the context's error. */
static attn_status fl_backward_f32(attn_ctx *ctx, const fl_geom *gp, const fl_grads *grp) {
    const fl_geom g = *gp;
    const fl_grads gr = *grp;
    /* Work items: (unit, chunk). A unit (b, kv head g) with its G query heads
     * owns dK_g and dV_g. With fewer units than threads each unit's query
     * tiles are cut into `split` chunks, each accumulating dK, dV in its own
     * buffer (as many buffers as threads: the memory stays O(S D) per
     * thread), summed per unit in chunk order after the parallel part. The
     * chunking depends on the thread count, so the bits do too, in that case
     * only; for a given thread count they are always the same. */
    const int64_t ntile = (g.T + QT - 1) / QT, tiles_u = g.G * ntile;
    int64_t split, items;
    const int nt = fl_bwd_split(ctx, &g, &split, &items);
    const int64_t Dp = up(g.D, 32), Dvp = up(g.Dv, 32), Sp = fl_sp(&g);
    const int64_t accsz = (g.S + KT) * (Dp + Dvp);
    const int64_t per = bwd_scratch(&g) - (split > 1 ? accsz : 0);
    float *ws = attn__fl_scratch(ctx, nt, per, "flash_sdpa backward (tiles)");
    if (!ws) return ctx->status;
    float *accs = NULL;
    if (split > 1 && !(accs = attn__fl_scratch(ctx, (int)items, accsz,
                                         "flash_sdpa backward (dK, dV per query chunk)")))
        return ctx->status;
#if defined(FL_X86)
    const int avx512 = __builtin_cpu_supports("avx512f") && !(ctx->kernel_flags & ATTN_KERNELS_PORTABLE);
#endif
    ATTN__OMP_FOR_DYNAMIC(nt, 1) /* items: whole units or chunks */
    for (int64_t it = 0; it < items; it++) {
        const int64_t u = it / split, c = it % split, b = u / g.Hkv, kh = u % g.Hkv;
        float *w = ws + FL_TID() * per, *kt = w + bwd_tiles(&g), *vt = kt + g.D * Sp;
        float *kp = vt + g.Dv * Sp, *dka = split > 1 ? accs + it * accsz : kp + Sp * Dp;
        float *dva = dka + (g.S + KT) * Dp;
        fl_stage_bwd(&g, b, kh, kt, vt, kp);
        memset(dka, 0, sizeof(float) * (size_t)accsz);
        for (int64_t j = c * tiles_u / split; j < (c + 1) * tiles_u / split; j++) {
            const int64_t h = kh * g.G + j / ntile, t0 = (j % ntile) * QT;
            const int64_t nq = g.T - t0 < QT ? g.T - t0 : QT;
#if defined(FL_X86)
            if (avx512) {
                bwd_tile512(&g, &gr, b, h, t0, nq, w, kt, vt, kp, dka, dva);
                continue;
            }
#endif
            bwd_tile(&g, &gr, b, h, t0, nq, w, kt, vt, kp, dka, dva);
        }
        if (split == 1) fl_add_kv_grads(&g, &gr, b, kh, dka, dva);
    }
    for (int64_t it = 0; split > 1 && it < items; it++) {
        float *dka = accs + it * accsz;
        fl_add_kv_grads(&g, &gr, it / split / g.Hkv, it / split % g.Hkv, dka, dka + (g.S + KT) * Dp);
    }
    return ATTN_OK;
}

attn_status attn__flash_sdpa_backward(attn_ctx *ctx, attn_node *node) {
    fl_geom g = attn__fl_geometry(node);
    fl_grads gr;
    const int bias_i = node->iarg[2] ? 3 : -1;
    gr.dq = attn__needs_grad(node, 0) ? node->in[0]->grad + g.off[0] : NULL;
    gr.dk = attn__needs_grad(node, 1) ? node->in[1]->grad + g.off[1] : NULL;
    gr.dv = attn__needs_grad(node, 2) ? node->in[2]->grad + g.off[2] : NULL;
    float *db = bias_i >= 0 && attn__needs_grad(node, bias_i) ? node->in[bias_i]->grad : NULL;
    gr.out = attn_f32(node->out);
    gr.gy = node->out->grad;
    gr.stats = attn_f32(node->saved[0]);
    gr.dl = NULL;
    const size_t mark = attn__arena_mark(ctx); /* scratch only from here */
    attn_sparse_layout layout;
    if (attn__fl_layout(ctx, node, &g, &layout, 0)) return ctx->status;
    if (db) {
        size_t n;
        if (attn__mul_size((size_t)(g.B * g.H * g.T), (size_t)g.S * sizeof(float), &n)) {
            attn__fail(ctx, ATTN_ERR_OOM, "flash_sdpa backward: bias gradient buffer overflows");
            return ctx->status;
        }
        gr.dl = attn__alloc_zero(ctx, n, "flash_sdpa backward (logits gradient for the bias)");
        if (!gr.dl) return ctx->status;
    }
#if defined(FL_X86)
    uint16_t *kept = fl_saved_bf16(node);
    if (kept) { /* the forward ran on bf16 copies of q, k, v: bf16 products too */
        g.qh = kept, g.kh = kept + g.B * g.H * g.T * g.D;
        g.vh = g.kh + g.B * g.Hkv * g.S * g.D;
        if (attn__fl_backward_bf16(ctx, &g, &gr)) return ctx->status;
    } else
#endif
    if (fl_backward_f32(ctx, &g, &gr)) return ctx->status;
    if (db) { /* summed over the broadcast dims in index order */
        const attn_tensor *bt = node->in[bias_i];
        const int64_t nb = attn_tensor_numel(bt);
        double *acc = attn__alloc_zero(ctx, sizeof(double) * (size_t)nb,
                                       "flash_sdpa backward (bias sums)");
        if (!acc) return ctx->status;
        for (int64_t b = 0; b < g.B; b++)
            for (int64_t h = 0; h < g.H; h++)
                for (int64_t t = 0; t < g.T; t++) {
                    const int64_t o = b * g.bst[0] + h * g.bst[1] + t * g.bst[2];
                    const float *r = gr.dl + ((b * g.H + h) * g.T + t) * g.S;
                    for (int64_t s = 0; s < g.S; s++) acc[o + s * g.bst[3]] += r[s];
                }
        for (int64_t i = 0; i < nb; i++) db[i] += (float)acc[i];
    }
    attn__arena_rewind(ctx, mark);
    return ATTN_OK;
}
