/* flash_sdpa.c: fused, tiled scaled dot-product attention (graph op
 * FLASH_SDPA, include/attn/sdpa.h): the same function as the SDPA op, but the
 * [T, S] matrix of weights is never stored. The algorithm and its backward are
 * derived in docs/transformer.md, "Fused attention". The op's files:
 * flash_sdpa.c (geometry, masks, the f32 forward, the builder),
 * flash_sdpa_decode.c (the decode path: a few query rows read K and V in
 * place), flash_sdpa_ref.c (the scalar reference and the weights),
 * flash_sdpa_backward.c (the f32 backward and the backward's dispatch),
 * flash_sdpa_bf16.c (bf16 forward and backward, AVX-512 BF16 and AMX),
 * flash_sdpa_internal.h (what they share).
 *
 * Shape contract:
 *   in[0] q [B, H, T, D], in[1] k [B, Hkv, S, D], in[2] v [B, Hkv, S, Dv]
 *   (contiguous), then optionally bias (contiguous f32, broadcastable to
 *   [B, H, T, S]), key_lengths (i32 [B]) and the ALiBi slopes (f32 [H]), in
 *   that order.
 *   -> out [B, H, T, Dv].
 *   Packed (iarg[5] = 1, attn__flash_sdpa_packed): in[0..2] are one f32
 *   qkv [B, T, (H + 2 Hkv) D] with H = iarg[6], Hkv = iarg[7] heads, read in
 *   place by strides (fl_geom's qs, ks, vs), S = T, Dv = D, and
 *   -> out [B, T, H D]; the gradients are added in place into qkv's.
 *   iarg[0] causal, iarg[1] window (0: none), iarg[2] has bias,
 *   iarg[3] has key_lengths, iarg[4] the RNG offset of the dropout mask;
 *   farg[0] scale, farg[1] dropout p (0 when not training); node->seed.
 *   saved[0] = the row statistics [B, H, T, 2]: per query t, m = max_s logit[t, s]
 *   and 1 / l with l = sum_s exp(logit[t, s] - m), over the visible keys
 *   (m = -inf and 0 for a query with no visible key, NaN for a NaN row).
 *   The logits are the f32 values the kernels compute: (scale q) . k summed
 *   in f32, then + bias in f32.
 *   saved[1] = the sparse pattern of attn_sdpa_opts.sparse (its bytes, i32;
 *   NULL without one), saved[2] = its tile layout, compiled by the forward
 *   and reused by the backward (NULL without a pattern).
 *   saved[3] = with f32 inputs under bf16 precision on the bf16 kernels, the
 *   bf16 copies of q, k, v ([B,H,T,D], [B,Hkv,S,D], [B,Hkv,S,Dv] one after
 *   the other) the forward makes (fast or reference kernel); the backward
 *   runs its bf16 products on them exactly when they exist; else NULL.
 *
 * Sparse patterns (include/attn/sparse.h, docs/sparse.md): a query tile
 * walks only the key tiles of its layout entry list (fl_walk) instead of
 * every tile of its span, so skipped tiles cost nothing, forward and
 * backward; a fully visible tile runs exactly as without a pattern, a
 * partial one also sets the logits of its hidden keys to -inf from the
 * tile's bit mask (attn__fl_apply_bits) before the softmax update, and rows whose
 * mask is empty take no part in the tile.
 *
 * Why m and 1 / l and not one log-sum-exp m + log l: in f32 the sum rounds
 * log l away when |m| is large (a finite mask bias of -1e9 on a whole row
 * gives lse = -1e9 and P = 1 instead of 1 / S; logits in the thousands lose
 * 1e-4 of every weight). m is one of the logits, so logit - m is what the
 * forward computed, and P = exp(logit - m) / l is exact to f32 rounding for
 * every finite input (docs/transformer.md, "Fused attention").
 *
 * Forward: items (b, h, query tile of QT rows) are split statically over the
 * threads; a thread stages the item's kv head (K transposed [D, Sp], V padded
 * [Sp, Dvp]) in its own buffer when it differs from the last one. For a
 * tile, the keys any of its rows can see form one span, walked in key tiles
 * of KT keys: the logits tile (scale Q) K^T and the product P V go through
 * the register-blocked micro-kernel (fl_mk, fl_mk8). Each row keeps a running
 * max m, a running sum l (double) and an accumulator acc[Dv]; a key tile
 * whose max exceeds m rescales l and acc by exp(m_old - m_new). At the end
 * out = acc / l; the row statistics keep m and 1 / l.
 *
 * Backward: work units are (b, kv head g) with the H / Hkv query heads of the
 * group, split statically; a unit stages K^T, V^T and K padded, owns dK_g and
 * dV_g (accumulated in padded buffers, added once), and the dQ rows of a
 * query tile are summed in a tile buffer and added once. Per row t:
 * Dt = dO_t . O_t; per key s in the row's span the weight is recomputed from
 * the saved statistics, P = exp(logit - m) / l (the logits recomputed by
 * the forward's own products, bit for bit), then with Z the dropout scale (1
 * without dropout):
 *   dV_s += P Z dO_t,  dP = Z (dO_t . V_s),  dS = P (dP - Dt),
 *   dQ_t += scale dS K_s,  dK_s += scale dS Q_t,  dbias[t, s] += dS.
 * (Dt = sum_s P Z (dO_t . V_s) = dO_t . O_t, which is why no row of P is
 * needed.) The bias gradient, when wanted, keeps dS in a [B, H, T, S]
 * buffer that is reduced over the broadcast dims after the parallel part, in
 * index order (O(B H T S) memory, as in the SDPA op).
 *
 * Every result depends only on the work item, never on the thread that runs
 * it, so outputs and gradients are bitwise the same for any thread count.
 *
 * Keys are read only inside a query tile's span: a NaN or inf in v at a key
 * that no row of the tile can see does not reach the tile (the SDPA op, which
 * multiplies by the full row of weights, lets it reach every live row).
 * Keys at or beyond key_lengths[b] are never read on any path: staging
 * copies only the keys below the batch's key length (fl_key_limit) and zeroes
 * the rest, so their gradients are exactly 0 whatever the padding holds.
 */
#include "flash_sdpa_internal.h"

static void fl_set3(int64_t *st, int64_t a, int64_t b, int64_t c) {
    st[0] = a, st[1] = b, st[2] = c;
}

fl_geom attn__fl_geometry(const attn_node *node) {
    fl_geom g;
    const attn_tensor *q = node->in[0], *k = node->in[1], *v = node->in[2];
    int64_t *off = g.off;
    fl_set3(off, 0, 0, 0);
    if (node->iarg[5]) { /* packed: q = k = v = qkv [B, T, (H + 2 Hkv) D] (f32) */
        g.B = q->shape[0];
        g.T = g.S = q->shape[1];
        g.H = node->iarg[6];
        g.Hkv = node->iarg[7];
        g.D = g.Dv = q->shape[2] / (g.H + 2 * g.Hkv);
        const int64_t W = q->shape[2];
        fl_set3(g.qs, g.T * W, g.D, W);
        fl_set3(g.ks, g.T * W, g.D, W);
        fl_set3(g.vs, g.T * W, g.D, W);
        fl_set3(g.os, g.T * g.H * g.D, g.D, g.H * g.D);
        fl_set3(off, 0, g.H * g.D, (g.H + g.Hkv) * g.D);
        memcpy(g.gqs, g.qs, sizeof g.qs), memcpy(g.gks, g.ks, sizeof g.ks);
        memcpy(g.gvs, g.vs, sizeof g.vs);
    } else {
        g.B = q->shape[0];
        g.H = q->shape[1];
        g.T = q->shape[2];
        g.D = q->shape[3];
        g.Hkv = k->shape[1];
        g.S = k->shape[2];
        g.Dv = v->shape[3];
        /* q, k, v may be views with unit stride along D (attn_flash_sdpa
         * reads them in place); their gradients are contiguous */
        fl_set3(g.qs, q->stride[0], q->stride[1], q->stride[2]);
        fl_set3(g.ks, k->stride[0], k->stride[1], k->stride[2]);
        fl_set3(g.vs, v->stride[0], v->stride[1], v->stride[2]);
        fl_set3(g.gqs, g.H * g.T * g.D, g.T * g.D, g.D);
        fl_set3(g.gks, g.Hkv * g.S * g.D, g.S * g.D, g.D);
        fl_set3(g.gvs, g.Hkv * g.S * g.Dv, g.S * g.Dv, g.Dv);
        fl_set3(g.os, g.H * g.T * g.Dv, g.T * g.Dv, g.Dv);
    }
    g.G = g.H / g.Hkv;
    g.causal = (int)node->iarg[0];
    g.window = node->iarg[1];
    if (g.window > g.S + g.T + 1) g.window = g.S + g.T + 1;
    g.scale = node->farg[0];
    g.p = node->farg[1];
    const int bf16 = q->dtype == ATTN_BF16;
    g.q = bf16 ? NULL : attn_f32(node->in[0]) + off[0];
    g.k = bf16 ? NULL : attn_f32(node->in[1]) + off[1];
    g.v = bf16 ? NULL : attn_f32(node->in[2]) + off[2];
    g.qh = bf16 ? attn_bf16(node->in[0]) : NULL;
    g.kh = bf16 ? attn_bf16(node->in[1]) : NULL;
    g.vh = bf16 ? attn_bf16(node->in[2]) : NULL;
    const int64_t shape[4] = {g.B, g.H, g.T, g.S};
    sdpa_node_inputs(node, shape, &g.bias, g.bst, &g.kl, &g.slopes, &g.seed, &g.offset);
    g.sp = sdpa_node_sparse(node);
    g.L = NULL;
    return g;
}

/* With a sparse pattern: its tile layout for this geometry, g->L set. The
 * forward compiles it (arrays in the arena, where they stay with the node's
 * other tensors) and keeps the struct in saved[2]; the backward of the same
 * node reuses it, and compiles its own only when saved[2] holds none (*L,
 * arena). 0, or -1 with the error set. */
int attn__fl_layout(attn_ctx *ctx, const attn_node *node, fl_geom *g, attn_sparse_layout *L,
                     int keep) {
    if (!g->sp) return 0;
    attn_sparse_layout *kept = node->saved[2] ? (attn_sparse_layout *)node->saved[2]->data : NULL;
    if (kept && kept->T == g->T && kept->S == g->S && kept->start) {
        g->L = kept;
        return 0;
    }
    if (attn_sparse_compile(ctx, g->sp, g->causal, g->window, g->H, g->T, g->S, QT, KT, L))
        return -1;
    if (kept && keep) *kept = *L;
    g->L = L;
    return 0;
}

/* bf16 inputs widened to f32 copies in the arena (exact), for the paths that
 * compute in f32: the reference, the weights, and the forward where the CPU
 * has no AVX-512 BF16. 0, or -1 with the context's error set. */
int attn__fl_widen(attn_ctx *ctx, fl_geom *g) {
    if (!g->qh) return 0;
    const int64_t nq = g->B * g->H * g->T * g->D, nk = g->B * g->Hkv * g->S * g->D;
    const int64_t nv = g->B * g->Hkv * g->S * g->Dv;
    float *w = attn__alloc(ctx, sizeof(float) * (size_t)(nq + nk + nv),
                           "flash_sdpa (bf16 inputs widened to f32)");
    if (!w) return -1;
    attn_f32_from_bf16(w, g->qh, nq);
    attn_f32_from_bf16(w + nq, g->kh, nk);
    attn_f32_from_bf16(w + nq + nk, g->vh, nv);
    g->q = w, g->k = w + nq, g->v = w + nq + nk;
    return 0;
}


/* Where the fast forward rounds f32 q, k, v to bf16 (bf16 precision,
 * fl_bf16_kernels), the f32 paths that recompute its logits (the reference
 * kernel, the weights) take the same rounded values: bf16 copies (g->qh, kh,
 * vh, contiguous, so the strides of q, k, v become the contiguous ones; out
 * keeps its own) for fl_widen. 0, or -1 with the context's error set. */
int attn__fl_as_forward(attn_ctx *ctx, const attn_node *node, fl_geom *g) {
#if defined(FL_X86)
    if (!g->qh && fl_bf16_kernels(ctx, g)) {
        if (attn__fl_narrow(ctx, g, fl_saved_bf16(node))) return -1;
        fl_set3(g->qs, g->H * g->T * g->D, g->T * g->D, g->D);
        fl_set3(g->ks, g->Hkv * g->S * g->D, g->S * g->D, g->D);
        fl_set3(g->vs, g->Hkv * g->S * g->Dv, g->S * g->Dv, g->Dv);
    }
#else
    (void)ctx, (void)node, (void)g;
#endif
    return 0;
}

/* z[j] = dropout scale of element base + j of P (row-major [B,H,T,S]):
 * 1 / (1 - p) when kept (attn_rng_uniform >= p), else 0; n elements. */
void attn__fl_keep(const fl_geom *g, uint64_t base, int64_t n, float *z) {
    const uint32_t key[2] = {(uint32_t)g->seed, (uint32_t)(g->seed >> 32)};
    const float inv = 1.0f / (1.0f - g->p);
    const uint64_t end = base + (uint64_t)n;
    uint64_t i = base;
    while (i < end) {
        const uint64_t c = g->offset + (i >> 2);
        const uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), 0, 0};
        uint32_t w[4];
        attn_philox4x32(ctr, key, w);
        for (int j = (int)(i & 3); j < 4 && i < end; j++, i++) {
            const float u = (float)(w[j] >> 8) * 0x1.0p-24f;
            z[i - base] = u >= g->p ? inv : 0.0f;
        }
    }
}

/* ---- vectorised pieces ----------------------------------------------------------------- */


/* x[j] <- exp(x[j] - m) for j < KT, 0 where x - m < -87 (-inf included).
 * Returns the sum of the new x: 16 lane sums in a fixed order, combined
 * pairwise. */
FL_CLONES float attn__fl_exp(float *restrict x, float m) {
    float c[KT];
    for (int j = 0; j < KT; j++) {
        const float d = x[j] - m;
        c[j] = d < -87.0f ? -87.0f : d;
    }
    for (int j = 0; j < KT; j++) {
        const float e = attn__exp_core(c[j]);
        uint32_t eb;
        memcpy(&eb, &e, sizeof eb);
        eb &= (uint32_t)((x[j] - m < -87.0f) ? 0u : 0xFFFFFFFFu);
        memcpy(&x[j], &eb, sizeof eb);
    }
    float lane[16] = {0};
    for (int j = 0; j < KT; j += 16)
        for (int k = 0; k < 16; k++) lane[k] += x[j + k];
    for (int w = 8; w >= 1; w /= 2)
        for (int k = 0; k < w; k++) lane[k] += lane[k + w];
    return lane[0];
}

/* The largest of x[0 .. KT) (-inf if none); *nan = 1 when one is NaN. */
FL_CLONES float attn__fl_rowmax(const float *restrict x, int *nan) {
    float m[16];
    int bad[16];
    for (int k = 0; k < 16; k++) m[k] = -INFINITY, bad[k] = 0;
    for (int64_t j = 0; j < KT; j += 16)
        for (int k = 0; k < 16; k++) {
            const float v = x[j + k];
            bad[k] |= v != v;
            m[k] = v > m[k] ? v : m[k];
        }
    float mx = -INFINITY;
    int any = 0;
    for (int k = 0; k < 16; k++) {
        any |= bad[k];
        mx = m[k] > mx ? m[k] : mx;
    }
    *nan = any;
    return mx;
}


/* y[e] *= a, e < n */
FL_CLONES void attn__fl_scal(float *restrict y, float a, int64_t n) {
    for (int64_t e = 0; e < n; e++) y[e] *= a;
}

/* The micro-kernel of every tile product: C[4][32] (+)= A[4][K] B[K][32]
 * (C, A, B row-major with leading dimensions ldc, lda, ldb; accumulate 0
 * starts from zero). The 8 accumulators are GCC vectors of 16 floats, held in
 * registers on AVX-512 (16 vectors of 8 on AVX2, where some spill; SSE pairs
 * on the baseline). Products and sums are contracted to FMA where the clone
 * has it, so the bits depend on the clone the CPU picks (never on the thread
 * count). */
#if defined(__GNUC__)
FL_MK_ATTR static void fl_mk(float *restrict C, int64_t ldc, const float *restrict A, int64_t lda,
                             const float *restrict B, int64_t ldb, int64_t K, int accumulate) {
    fl_v16 c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0}, d0 = {0}, d1 = {0}, d2 = {0}, d3 = {0};
    if (accumulate) {
        FL_LD(c0, C), FL_LD(d0, C + 16);
        FL_LD(c1, C + ldc), FL_LD(d1, C + ldc + 16);
        FL_LD(c2, C + 2 * ldc), FL_LD(d2, C + 2 * ldc + 16);
        FL_LD(c3, C + 3 * ldc), FL_LD(d3, C + 3 * ldc + 16);
    }
    for (int64_t k = 0; k < K; k++) {
        fl_v16 b0, b1;
        FL_LD(b0, B + k * ldb);
        FL_LD(b1, B + k * ldb + 16);
        const float a0 = A[k], a1 = A[lda + k], a2 = A[2 * lda + k], a3 = A[3 * lda + k];
        c0 += a0 * b0, d0 += a0 * b1;
        c1 += a1 * b0, d1 += a1 * b1;
        c2 += a2 * b0, d2 += a2 * b1;
        c3 += a3 * b0, d3 += a3 * b1;
    }
    FL_ST(C, c0), FL_ST(C + 16, d0);
    FL_ST(C + ldc, c1), FL_ST(C + ldc + 16, d1);
    FL_ST(C + 2 * ldc, c2), FL_ST(C + 2 * ldc + 16, d2);
    FL_ST(C + 3 * ldc, c3), FL_ST(C + 3 * ldc + 16, d3);
}
#if defined(FL_X86)
#define FL_HAVE_MK8 1


/* The same on 8 rows and N columns (a multiple of 32), for AVX-512 only (32
 * registers): 4 x 64 blocks and an 8 x 32 strip (fl_k8xn), the same bits as
 * 8 x 32 blocks throughout. */
FL512 static void fl_mk8(float *restrict C, int64_t ldc, const float *restrict A, int64_t lda,
                         const float *restrict B, int64_t ldb, int64_t N, int64_t K,
                         int accumulate) {
    fl_k8xn(C, ldc, A, lda, B, ldb, N, K, accumulate);
}
#endif
#else
static void fl_mk(float *restrict C, int64_t ldc, const float *restrict A, int64_t lda,
                  const float *restrict B, int64_t ldb, int64_t K, int accumulate) {
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 32; j++) {
            float acc = accumulate ? C[i * ldc + j] : 0.0f;
            for (int64_t k = 0; k < K; k++) acc += A[i * lda + k] * B[k * ldb + j];
            C[i * ldc + j] = acc;
        }
}
#endif
#include "flash_sdpa_internal.h"

/* C[M][N] (+)= A[M][K] B[K][N] for M a multiple of 4 and N of 32. */
void attn__fl_gemm(float *C, int64_t ldc, const float *A, int64_t lda, const float *B,
                    int64_t ldb, int64_t M, int64_t N, int64_t K, int accumulate) {
    int64_t i = 0;
#if defined(FL_HAVE_MK8)
    if (__builtin_cpu_supports("avx512f"))
        for (; i + 8 <= M; i += 8) fl_mk8(C + i * ldc, ldc, A + i * lda, lda, B, ldb, N, K, accumulate);
#endif
    for (; i < M; i += 4)
        for (int64_t j = 0; j < N; j += 32)
            fl_mk(C + i * ldc + j, ldc, A + i * lda, lda, B + j, ldb, K, accumulate);
}


/* rows [0, n) of the [n, w] block src (leading dimension lds) copied into
 * dst [rows, wp] (leading dimension wp) times a, zero elsewhere */
void attn__fl_pad(float *restrict dst, int64_t rows, int64_t wp, const float *restrict src,
                   int64_t n, int64_t w, int64_t lds, float a) {
    for (int64_t r = 0; r < rows; r++) { /* two plain loops per row, which vectorise */
        float *d = dst + r * wp;
        int64_t c = 0;
        if (r < n)
            for (const float *s = src + r * lds; c < w; c++) d[c] = a * s[c];
        for (; c < wp; c++) d[c] = 0.0f;
    }
}

/* ---- forward (fast) ------------------------------------------------------------------------ */

/* Per-thread scratch of the forward, in floats. */
static int64_t fwd_scratch(const fl_geom *g) {
    const int64_t Dp = up(g->D, 32), Dvp = up(g->Dv, 32);
    return QT * Dp + QT * KT + QT * Dvp + KT;
}


void attn__fl_walk_begin(const fl_geom *g, int64_t h, int64_t t0, int64_t span_lo,
                          int64_t span_hi, fl_walk *w) {
    w->k0 = fl_tile_start(span_lo);
    w->end = span_hi;
    w->kt = w->at = NULL;
    w->e = w->ne = 0;
    w->mask = NULL;
    if (!g->L) return;
    const attn_sparse_layout *L = g->L;
    const int64_t i = attn_sparse_head_variant(g->sp, h) * L->nq + t0 / QT;
    w->kt = L->ktile + L->start[i];
    w->at = L->mask_at + L->start[i];
    w->ne = L->start[i + 1] - L->start[i];
    w->mask = L->mask;
}

/* The next key tile: 1 with *k0 and *bits (NULL: every key of the tile is
 * visible under the pattern; else QT words, bit s of word r set iff key
 * k0 + s is visible to row r), 0 at the end. */
int attn__fl_walk_next(fl_walk *w, int64_t *k0, const uint64_t **bits) {
    if (!w->kt) {
        if (w->k0 >= w->end) return 0;
        *k0 = w->k0;
        *bits = NULL;
        w->k0 += KT;
        return 1;
    }
    while (w->e < w->ne) {
        const int64_t k = w->kt[w->e] * KT, at = w->at[w->e];
        w->e++;
        if (k < w->k0) continue; /* before the span */
        if (k >= w->end) break;
        *k0 = k;
        *bits = at < 0 ? NULL : w->mask + at;
        return 1;
    }
    w->e = w->ne;
    return 0;
}

/* The keys of a logits row the pattern hides (bit s clear) become -inf
 * (branch free, 16 lanes at a time where the clone has them). */
FL_CLONES void attn__fl_apply_bits(float *restrict row, uint64_t bits) {
    for (int c = 0; c < KT; c += 16) {
        const uint32_t b = (uint32_t)(bits >> c);
        for (int s = 0; s < 16; s++) {
            uint32_t x;
            const uint32_t keep = 0u - (b >> s & 1u), ninf = 0xFF800000u; /* -inf */
            memcpy(&x, &row[c + s], sizeof x);
            x = (x & keep) | (ninf & ~keep);
            memcpy(&row[c + s], &x, sizeof x);
        }
    }
}

/* [n, w] src (rows lds floats apart) transposed tile by tile into dst: key
 * tile j is the contiguous block dst + j w KT of [w, KT] (row d holds
 * element d of the tile's keys), zero beyond n; Sp / KT tiles. A tile's
 * block is the B operand (leading dimension KT) of its products, so a
 * product walks one contiguous 16 KiB block (D = 64) instead of w rows Sp
 * floats apart. */
void attn__fl_tr_tiles(float *restrict dst, const float *restrict src, int64_t n, int64_t w,
                        int64_t lds, int64_t Sp) {
    for (int64_t j = 0; j < Sp; j += KT) {
        float *blk = dst + j * w;
        for (int64_t d = 0; d < w; d++)
            for (int64_t s = 0; s < KT; s++)
                blk[d * KT + s] = j + s < n ? src[(j + s) * lds + d] : 0.0f;
    }
}


/* K of kv head (b, kh) transposed tile by tile into kt (attn__fl_tr_tiles) and V
 * padded into vp [Sp, Dvp], zero beyond S and Dv: the operands of every tile
 * product of the head's query tiles. */
static void fl_stage_kv(const fl_geom *g, int64_t b, int64_t kh, float *kt, float *vp) {
    const int64_t D = g->D, Dv = g->Dv, Sp = fl_sp(g), Dvp = up(Dv, 32);
    const float *K = g->k + fl_koff(g, b, kh, 0), *V = g->v + fl_voff(g, b, kh, 0);
    const int64_t n = fl_key_limit(g, b); /* zeros beyond the key length */
    attn__fl_tr_tiles(kt, K, n, D, g->ks[2], Sp);
    attn__fl_pad(vp, Sp, Dvp, V, n, Dv, g->vs[2], 1.0f);
}

/* Row t of head h in a score tile after the product: masked outside
 * [lo, hi) - k0 (and beyond n keys) with -inf; the ALiBi term (with slopes)
 * and the bias row brow added, in that order (sdpa.c's softmax_row). */
void attn__fl_mask_row(const fl_geom *g, int64_t h, int64_t t, float *sc, int64_t n, int64_t k0,
                        int64_t lo, int64_t hi, const float *brow) {
    const int64_t a = lo - k0 > 0 ? lo - k0 : 0, e = hi - k0 < n ? hi - k0 : n;
    for (int64_t s = 0; s < a; s++) sc[s] = -INFINITY;
    for (int64_t s = e; s < KT; s++) sc[s] = -INFINITY;
    if (g->slopes) {
        const float m = g->slopes[h];
        const int64_t qpos = t + (g->S - g->T);
        for (int64_t s = a; s < e; s++)
            sc[s] += brow ? sdpa_alibi(m, qpos, k0 + s) + brow[(k0 + s) * g->bst[3]]
                          : sdpa_alibi(m, qpos, k0 + s);
    } else if (brow) {
        for (int64_t s = a; s < e; s++) sc[s] += brow[(k0 + s) * g->bst[3]];
    }
}


void attn__fl_rows_begin(const fl_geom *g, int64_t b, int64_t t0, int64_t nq, int64_t nqp,
                          fl_rows *R) {
    R->span_lo = g->S;
    R->span_hi = 0;
    for (int64_t r = 0; r < nqp; r++) {
        R->m[r] = -INFINITY;
        R->l[r] = 0.0;
        R->bad[r] = r >= nq;
        R->lo[r] = R->hi[r] = 0;
        if (r >= nq) continue;
        fl_range(g, b, t0 + r, &R->lo[r], &R->hi[r]);
        if (R->lo[r] < R->hi[r]) {
            if (R->lo[r] < R->span_lo) R->span_lo = R->lo[r];
            if (R->hi[r] > R->span_hi) R->span_hi = R->hi[r];
        }
    }
}


/* The tile's rows of out and of the statistics: acc / l, m and 1 / l; NaN
 * for a bad row, zeros and (-inf, 0) for a row that saw no key. */
void attn__fl_rows_end(const fl_geom *g, int64_t bh, int64_t t0, int64_t nq, const fl_rows *R,
                        const float *acc, int64_t Dvp, float *out, float *stats) {
    const int64_t Dv = g->Dv;
    for (int64_t r = 0; r < nq; r++) {
        float *orow = out + fl_ooff(g, bh / g->H, bh % g->H, t0 + r);
        float *st = stats + 2 * (bh * g->T + t0 + r);
        if (R->bad[r]) {
            for (int64_t e = 0; e < Dv; e++) orow[e] = NAN;
            st[0] = st[1] = NAN;
        } else if (R->m[r] == -INFINITY) {
            memset(orow, 0, sizeof(float) * (size_t)Dv);
            st[0] = -INFINITY;
            st[1] = 0.0f;
        } else {
            const float inv = (float)(1.0 / R->l[r]);
            for (int64_t e = 0; e < Dv; e++) orow[e] = acc[r * Dvp + e] * inv;
            st[0] = R->m[r];
            st[1] = inv;
        }
    }
}

#if defined(FL_X86) /* the block helpers of the AVX-512 paths */
/* For the nr rows of a block starting at row rb of the tile (logits in sb,
 * KT per row), against key tile [k0, k0 + n): on[i] = row rb + i takes
 * part; its invisible keys are masked and its bias added (rows that see the
 * whole tile without bias are left alone). Returns whether any row is on. */
int attn__fl_block_live(const fl_rows *R, int64_t rb, int nr, int64_t k0, int64_t n,
                         const uint64_t *bits, int *on) {
    int live = 0;
    for (int i = 0; i < nr; i++)
        live |= on[i] = fl_row_on(R, rb + i, k0, n) && (!bits || bits[rb + i]);
    return live;
}
void attn__fl_block_mask(const fl_geom *g, int64_t b, int64_t h, int64_t t0, int64_t rb, int nr,
                          float *sb, int64_t k0, int64_t n, const fl_rows *R, const int *on,
                          const uint64_t *bits) {
    for (int i = 0; i < nr; i++) {
        const int64_t r = rb + i;
        if (!on[i]) continue;
        const float *brow = fl_bias_row(g, b, h, t0 + r);
        if (brow || g->slopes || R->lo[r] > k0 || R->hi[r] < k0 + KT)
            attn__fl_mask_row(g, h, t0 + r, sb + i * KT, n, k0, R->lo[r], R->hi[r], brow);
        if (bits) attn__fl_apply_bits(sb + i * KT, bits[r]);
    }
}


/* Dropout of the block's live rows after the softmax update: row i times the
 * keep scales of its n keys (z: KT floats of scratch). */
void attn__fl_block_dropout(const fl_geom *g, int64_t bh, int64_t t0, int64_t rb, int nr,
                             float *sb, int64_t k0, int64_t n, const int *on, const int *bad,
                             float *z) {
    if (!(g->p > 0.0f)) return;
    for (int i = 0; i < nr; i++) {
        if (!on[i] || bad[i]) continue;
        float *row = sb + i * KT;
        attn__fl_keep(g, (uint64_t)((bh * g->T + t0 + rb + i) * g->S + k0), n, z);
        for (int64_t s = 0; s < n; s++) row[s] *= z[s];
    }
}
#endif

/* One work item: batch b, head h, query rows [t0, t0 + nq). */
static void fwd_tile(const fl_geom *g, int64_t b, int64_t h, int64_t t0, int64_t nq, float *ws,
                     const float *ktall, const float *vall, float *out, float *stats) {
    const int64_t T = g->T, S = g->S, D = g->D, Dv = g->Dv, bh = b * g->H + h;
    const int64_t Dp = up(D, 32), Dvp = up(Dv, 32), nqp = up(nq, 4);
    const float *Q = g->q + fl_qoff(g, b, h, t0);
    float *qs = ws, *sc = qs + QT * Dp, *acc = sc + QT * KT, *z = acc + QT * Dvp;
    fl_rows R;
    attn__fl_rows_begin(g, b, t0, nq, nqp, &R);
    attn__fl_pad(qs, nqp, Dp, Q, nq, D, g->qs[2], g->scale); /* scale q once: logits = (scale q) . k */
    memset(acc, 0, sizeof(float) * (size_t)(nqp * Dvp));
    fl_walk w;
    attn__fl_walk_begin(g, h, t0, R.span_lo, R.span_hi, &w);
    int64_t k0;
    const uint64_t *bits;
    while (attn__fl_walk_next(&w, &k0, &bits)) {
        const int64_t n = R.span_hi - k0 < KT ? R.span_hi - k0 : KT;
        attn__fl_gemm(sc, KT, qs, Dp, fl_tile(ktall, k0, D), KT, nqp, KT, D, 0);
        for (int64_t r = 0; r < nqp; r++) {
            float *row = sc + r * KT;
            if (!fl_row_on(&R, r, k0, n) || (bits && !bits[r])) {
                memset(row, 0, sizeof(float) * KT);
                continue;
            }
            const int64_t t = t0 + r;
            attn__fl_mask_row(g, h, t, row, n, k0, R.lo[r], R.hi[r], fl_bias_row(g, b, h, t));
            if (bits) attn__fl_apply_bits(row, bits[r]);
            int nan;
            const float mx = attn__fl_rowmax(row, &nan);
            if (nan || mx == -INFINITY) {
                R.bad[r] |= nan;
                memset(row, 0, sizeof(float) * KT);
                continue;
            }
            if (mx > R.m[r]) {
                if (R.m[r] != -INFINITY) {
                    const float alpha = expf(R.m[r] - mx);
                    R.l[r] *= (double)alpha;
                    attn__fl_scal(acc + r * Dvp, alpha, Dv);
                }
                R.m[r] = mx;
            }
            R.l[r] += (double)attn__fl_exp(row, R.m[r]);
            if (g->p > 0.0f) {
                attn__fl_keep(g, (uint64_t)((bh * T + t) * S + k0), n, z);
                for (int64_t s = 0; s < n; s++) row[s] *= z[s];
            }
        }
        attn__fl_gemm(acc, Dvp, sc, KT, vall + k0 * Dvp, Dvp, nqp, Dvp, n, 1);
    }
    attn__fl_rows_end(g, bh, t0, nq, &R, acc, Dvp, out, stats);
}

/* ---- forward, AVX-512 --------------------------------------------------------------------- */

#if defined(FL_X86)

/* fwd_tile on AVX-512: for each key tile, three passes over the blocks of 8
 * query rows: the logits (4 x 64 register blocks), the online-softmax
 * updates (fl_block512), then acc += P V. */
FL512 static void fwd_tile512(const fl_geom *g, int64_t b, int64_t h, int64_t t0, int64_t nq,
                              float *ws, const float *ktall, const float *vall, float *out,
                              float *stats) {
    const int64_t D = g->D, Dv = g->Dv, bh = b * g->H + h;
    const int64_t Dp = up(D, 32), Dvp = up(Dv, 32), nqp = up(nq, 8);
    const float *Q = g->q + fl_qoff(g, b, h, t0);
    float *qs = ws, *sc = qs + QT * Dp, *acc = sc + QT * KT, *z = acc + QT * Dvp;
    fl_rows R;
    attn__fl_rows_begin(g, b, t0, nq, nqp, &R);
    attn__fl_pad(qs, nqp, Dp, Q, nq, D, g->qs[2], g->scale);
    memset(acc, 0, sizeof(float) * (size_t)(nqp * Dvp));
    /* the keys every row of the tile sees, [lo_all, hi_all): a key tile
     * inside it, without pattern bits, bias or ALiBi, needs no masking */
    int64_t lo_all = 0, hi_all = g->S;
    for (int64_t r = 0; r < nq; r++) {
        if (R.lo[r] > lo_all) lo_all = R.lo[r];
        if (R.hi[r] < hi_all) hi_all = R.hi[r];
    }
    const int plain = !g->bias && !g->slopes;
    fl_walk w;
    attn__fl_walk_begin(g, h, t0, R.span_lo, R.span_hi, &w);
    int64_t k0;
    const uint64_t *bits;
    while (attn__fl_walk_next(&w, &k0, &bits)) {
        const int64_t n = R.span_hi - k0 < KT ? R.span_hi - k0 : KT;
        const float *kb = fl_tile(ktall, k0, D), *vb = vall + k0 * Dvp;
        const int whole = plain && !bits && k0 >= lo_all && k0 + KT <= hi_all;
        int on[QT / 8][8], live[QT / 8];
        int64_t ka[QT / 8] = {0}, ke[QT / 8] = {0};
        /* three passes over the tile's blocks of 8 rows, so that each
         * pass keeps one operand in L1 (the key tile's K^T, then the
         * rows' logits and statistics, then its V): at D = 128 the two
         * 32 KiB tiles do not both fit beside a block's rows, and the
         * block-by-block order was 8-12% slower there (the same at
         * D = 64) on the Ice Lake Xeon
         * 1. the logits of each live block */
        for (int64_t rb = 0; rb < nqp; rb += 8) {
            const int i = (int)(rb / 8);
            if (whole) { /* every row that is not bad sees every key */
                live[i] = 0;
                for (int j = 0; j < 8; j++) live[i] |= on[i][j] = !R.bad[rb + j];
            } else
                live[i] = attn__fl_block_live(&R, rb, 8, k0, n, bits, on[i]);
            if (!live[i]) continue;
            float *sb = sc + rb * KT;
            /* a partial tile: the keys any row of the block sees; a half
             * of 32 keys that none sees is not computed (its stale
             * logits become -inf in attn__fl_block_mask), and P V runs
             * over [ka, ke) only (the weights outside are exact zeros) */
            const uint64_t lb = fl_block_bits(bits, rb, on[i]);
            fl_block_range(bits, lb, n, &ka[i], &ke[i]);
            fl_block_product(sb, qs + rb * Dp, Dp, kb, D, lb);
            if (!whole) attn__fl_block_mask(g, b, h, t0, rb, 8, sb, k0, n, &R, on[i], bits);
        }
        /* 2. the blocks' online-softmax updates */
        for (int64_t rb = 0; rb < nqp; rb += 8) {
            const int i = (int)(rb / 8);
            if (!live[i]) continue;
            float *sb = sc + rb * KT;
            fl_block512(sb, on[i], R.m + rb, R.l + rb, R.bad + rb, acc + rb * Dvp, Dvp, Dv);
            if (g->p > 0.0f)
                attn__fl_block_dropout(g, bh, t0, rb, 8, sb, k0, n, on[i], R.bad + rb, z);
        }
        /* 3. acc += P V */
        for (int64_t rb = 0; rb < nqp; rb += 8) {
            const int i = (int)(rb / 8);
            if (!live[i]) continue;
            fl_k8xn(acc + rb * Dvp, Dvp, sc + rb * KT + ka[i], KT, vb + ka[i] * Dvp,
                    Dvp, Dvp, ke[i] - ka[i], 1);
        }
    }
    attn__fl_rows_end(g, bh, t0, nq, &R, acc, Dvp, out, stats);
}
#endif




attn_status attn__flash_sdpa_forward(attn_ctx *ctx, attn_node *node) {
    fl_geom g = attn__fl_geometry(node);
    float *out = attn_f32(node->out), *stats = attn_f32(node->saved[0]);
    attn_sparse_layout layout;
    if (attn__fl_layout(ctx, node, &g, &layout, 1)) return ctx->status;
#if defined(FL_X86)
    if (fl_bf16_kernels(ctx, &g)) { /* bf16 inputs, or f32 under bf16 precision */
        if (!g.qh && attn__fl_narrow(ctx, &g, fl_saved_bf16(node))) return ctx->status;
        return attn__fl_forward_bf16(ctx, &g, out, stats);
    }
#endif
    if (attn__fl_widen(ctx, &g)) return ctx->status; /* bf16 elsewhere: computed in f32 */
    if (attn__fl_direct(ctx, node, &g)) /* decode: nothing staged (flash_sdpa_decode.c) */
        return attn__fl_forward_direct(ctx, &g, out, stats);
    /* items (b, h, query tile) handed out in runs; a thread stages K^T and
     * V of an item's kv head into its own buffer when it changes (heads of a
     * group are adjacent, so each thread stages about B Hkv / nt + 1 times) */
    const int64_t ntile = (g.T + QT - 1) / QT, items = g.B * g.H * ntile;
    const double work = 2.0 * (double)g.B * g.H * g.T * g.S * (double)(g.D + g.Dv);
    int nt = attn__threads_for(ctx, work);
    if (nt > items) nt = (int)items;
    const int64_t Sp = fl_sp(&g), per = fwd_scratch(&g) + Sp * (g.D + up(g.Dv, 32));
    /* the scratch stays allocated (the op suite sizes an arena by the
     * forward's use); the backward's is released */
    float *ws = attn__fl_scratch(ctx, nt, per, "flash_sdpa forward (tiles, k, v)");
    int64_t *staged = ws ? attn__alloc(ctx, sizeof(int64_t) * (size_t)nt, "flash_sdpa forward")
                         : NULL;
    if (!staged) return ctx->status;
    for (int i = 0; i < nt; i++) staged[i] = -1;
#if defined(FL_X86)
    const int avx512 = __builtin_cpu_supports("avx512f") && !(ctx->kernel_flags & ATTN_KERNELS_PORTABLE);
#endif
    ATTN__OMP_FOR_DYNAMIC(nt, fl_fwd_chunk(items, nt))
    for (int64_t it = 0; it < items; it++) {
        const int tid = FL_TID();
        const int64_t bh = it / ntile, t0 = (it % ntile) * QT, b = bh / g.H, h = bh % g.H;
        const int64_t nq = g.T - t0 < QT ? g.T - t0 : QT, u = b * g.Hkv + h / g.G;
        float *w = ws + tid * per, *kt = w + fwd_scratch(&g), *vp = kt + Sp * g.D;
        if (staged[tid] != u) {
            fl_stage_kv(&g, b, h / g.G, kt, vp);
            staged[tid] = u;
        }
#if defined(FL_X86)
        if (avx512) {
            fwd_tile512(&g, b, h, t0, nq, w, kt, vp, out, stats);
            continue;
        }
#endif
        fwd_tile(&g, b, h, t0, nq, w, kt, vp, out, stats);
    }
    return ATTN_OK;
}

/* ---- builder ----------------------------------------------------------------------------------- */

/* Checks the options against [B, H, T, S], builds the FLASH_SDPA node over
 * qkv3 (and the optional inputs) with an output of shape ysh and the row
 * statistics [B, H, T, 2], runs it and recovers the weights on request.
 * packed: qkv3 holds the packed projection three times (iarg[5..7], the
 * layout of sdpa.c). */
static attn_tensor *flash_build(attn_ctx *ctx, const char *name, attn_tensor *const *qkv3,
                                const int64_t *ysh, int yndim, int64_t B, int64_t H, int64_t Hkv,
                                int64_t T, int64_t S, int64_t D, int packed,
                                const attn_sdpa_opts *opts, attn_tensor **weights) {
    const int64_t osh[4] = {B, H, T, S};
    attn_sdpa_opts o;
    if (sdpa_check_opts(ctx, name, qkv3[0], qkv3[1], osh, opts, &o)) return NULL;
    attn_tensor *in[6] = {qkv3[0], qkv3[1], qkv3[2], NULL, NULL, NULL};
    int n_in = 3;
    if (sdpa_opt_inputs(ctx, &o, in, &n_in)) return NULL;
    const int64_t ssh[4] = {B, H, T, 2};
    attn_tensor *out = attn__tensor(ctx, name, ATTN_F32, yndim, ysh);
    attn_tensor *stats = out ? attn__tensor(ctx, name, ATTN_F32, 4, ssh) : NULL;
    if (!stats) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_FLASH_SDPA, n_in, in, out);
    if (!node) return NULL;
    /* the SDPA op's attributes and dropout counters */
    sdpa_node_attrs(ctx, node, &o, D, (uint64_t)B * (uint64_t)H * (uint64_t)T * (uint64_t)S);
    node->iarg[5] = packed != 0;
    node->iarg[6] = H;
    node->iarg[7] = Hkv;
    node->saved[0] = stats;
    if (sdpa_save_sparse(ctx, name, node, o.sparse)) return NULL;
#if defined(FL_X86)
    /* f32 q, k, v under bf16 precision on the bf16 kernels: their bf16
     * copies, made by the forward, kept for the backward */
    if (qkv3[0]->dtype == ATTN_F32 && ctx->precision == ATTN_PRECISION_BF16 && fl_bf16_cpu(ctx)) {
        const int64_t nb = B * H * T * D + B * Hkv * S * (D + (packed ? D : qkv3[2]->shape[3]));
        if (!(node->saved[3] = attn__tensor(ctx, name, ATTN_BF16, 1, &nb))) return NULL;
    }
#endif
    if (o.sparse) { /* the forward's tile layout, for the backward (attn__fl_layout) */
        const int64_t nl = (int64_t)((sizeof(attn_sparse_layout) + 3) / 4);
        if (!(node->saved[2] = attn__tensor(ctx, name, ATTN_I32, 1, &nl))) return NULL;
        memset(node->saved[2]->data, 0, sizeof(attn_sparse_layout));
    }
    attn_tensor *y = attn__run(ctx, node);
    if (y && weights) {
        attn_tensor *w = attn__tensor(ctx, name, ATTN_F32, 4, osh);
        if (!w) return NULL;
        if (attn__fl_weights(ctx, node, attn_f32(w))) return NULL;
        *weights = w;
    }
    return y;
}

attn_tensor *attn_flash_sdpa(attn_ctx *ctx, attn_tensor *q, attn_tensor *k, attn_tensor *v,
                             const attn_sdpa_opts *opts, attn_tensor **weights) {
    static const char name[] = "flash_sdpa";
    if (weights) *weights = NULL;
    if (sdpa_check_qkv(ctx, name, q, k, v, 1)) return NULL;
    if (q->dtype == ATTN_BF16 && ctx->grad_enabled &&
        (q->requires_grad || k->requires_grad || v->requires_grad)) {
        attn__fail(ctx, ATTN_ERR_DTYPE,
                   "flash_sdpa: q %s, k %s, v %s are bf16 and need gradients: the bf16 path is "
                   "forward only (inference); pass f32 tensors to train",
                   attn__shp(q), attn__shp(k), attn__shp(v));
        return NULL;
    }
    const int64_t B = q->shape[0], H = q->shape[1], T = q->shape[2], D = q->shape[3];
    const int64_t Hkv = k->shape[1], S = k->shape[2], Dv = v->shape[3];
    /* f32 views (heads split by permute, a KV cache's prefix) are read in
     * place by their strides (sdpa_in_place) */
    attn_tensor *in[3] = {sdpa_in_place(ctx, q), sdpa_in_place(ctx, k), sdpa_in_place(ctx, v)};
    if (!in[0] || !in[1] || !in[2]) return NULL;
    const int64_t ysh[4] = {B, H, T, Dv};
    return flash_build(ctx, name, in, ysh, 4, B, H, Hkv, T, S, D, 0, opts, weights);
}

attn_tensor *attn__flash_sdpa_packed(attn_ctx *ctx, attn_tensor *qkv, int64_t H, int64_t Hkv,
                                     const attn_sdpa_opts *opts, attn_tensor **weights) {
    static const char name[] = "flash_sdpa (packed)";
    if (weights) *weights = NULL;
    if (!(qkv = sdpa_check_packed(ctx, name, qkv, H, Hkv))) return NULL;
    const int64_t B = qkv->shape[0], T = qkv->shape[1], D = qkv->shape[2] / (H + 2 * Hkv);
    attn_tensor *in[3] = {qkv, qkv, qkv};
    const int64_t ysh[3] = {B, T, H * D};
    return flash_build(ctx, name, in, ysh, 3, B, H, Hkv, T, T, D, 1, opts, weights);
}

