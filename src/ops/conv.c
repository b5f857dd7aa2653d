/* conv.c: conv2d, conv1d and transposed conv2d (include/attn/conv.h).
 *
 * One geometry serves the three ops. A convolution in the forward sense
 * reads an input u [N, C, H, W] and writes v [N, O, OH, OW] with a weight
 * w [O, C/G, KH, KW]:
 *   v[n,o,p,q] = sum_{c,i,j} w[o,c,i,j] u[n, g C/G + c, p SH - PH + i DH, q SW - PW + j DW]
 * (g = o / (O/G), zero outside u; PH, PW are the top and left padding).
 *   conv2d:            u = x, v = y.
 *   conv1d:            the same with H = KH = 1, W = T; causal padding is
 *                      PW = dilation (K - 1) on the left only (the output
 *                      length comes from the output tensor).
 *   conv_transpose2d:  u = y, v = x, w as given ([Cin, Cout/G, KH, KW] is
 *                      [O, C/G, KH, KW] with O = Cin, C = Cout): y is the
 *                      gradient of a convolution with respect to its input.
 * Primitives on the geometry do all the work:
 *   cv_forward      v = conv(u, w) (+ b)        (im2col + GEMM + copy to NCHW)
 *   cv_backward     du += conv^T(dv, w)         (GEMM + col2im)
 *                   dw += dv (im2col u)^T       (im2col + GEMM, transposed
 *                                                when K > O/G), per chunk
 *                   db += sum of dv's rows      (during the gather of dv)
 *   cv_transpose_backward  conv_transpose2d's dx and dw from one im2col(dy)
 * conv2d's backward is cv_backward; conv_transpose2d's forward is
 * cv_transpose_forward (cv_backward's data gradient into an output it
 * zeroes chunk by chunk, with the bias). 3x3 stride-1 pad-1 layers with
 * enough channels on small maps run as Winograd F(2x2, 3x3) products
 * instead (conv_winograd.c, attn__cv_wino_ok), depthwise ones directly on
 * the planes (conv_depthwise.c). Rows move through AVX-512 masked
 * loads and stores when the CPU has them: those kernels and the depthwise
 * ones are in conv_avx512.c, and conv_internal.h is what the files share.
 *
 * Node attributes: conv2d / conv_transpose2d: iarg = {SH, SW, PH, PW, DH,
 * DW, G, has_bias}; conv1d: iarg = {S, pad_left, pad_right, D, G, -, -,
 * has_bias}. Inputs: x, w, then b when has_bias. saved[0]: the workspace
 * of a chunk of images (cv_chunk: their im2col matrices side by side and a
 * block of outputs, then the transposed weight gradient, cv_dw_transposed;
 * absent on the direct 1x1 path, cv_pointwise, and the depthwise kernels,
 * cv_depthwise), reused by the backward.
 * Derivations: docs/conv.md.
 */
#include <stdint.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/conv.h"
#include "conv_internal.h"
#include "view_internal.h"

/* ---- geometry of a node ---------------------------------------------------------------- */

static cv_geom cv_geom_of(const attn_node *node) {
    cv_geom g;
    const attn_tensor *x = node->in[0], *w = node->in[1], *y = node->out;
    if (node->op == ATTN_OP_CONV1D) {
        g.N = x->shape[0];
        g.C = x->shape[1];
        g.H = 1;
        g.W = x->shape[2];
        g.O = y->shape[1];
        g.OH = 1;
        g.OW = y->shape[2];
        g.KH = 1;
        g.KW = w->shape[2];
        g.SH = 1;
        g.SW = node->iarg[0];
        g.PH = 0;
        g.PW = node->iarg[1];
        g.DH = 1;
        g.DW = node->iarg[3];
        g.G = node->iarg[4];
        g.vec = 0;
        return g;
    }
    const attn_tensor *u = x, *v = y;
    if (node->op == ATTN_OP_CONV_TRANSPOSE2D) u = y, v = x;
    g.N = u->shape[0];
    g.C = u->shape[1];
    g.H = u->shape[2];
    g.W = u->shape[3];
    g.O = v->shape[1];
    g.OH = v->shape[2];
    g.OW = v->shape[3];
    g.KH = w->shape[2];
    g.KW = w->shape[3];
    g.SH = node->iarg[0];
    g.SW = node->iarg[1];
    g.PH = node->iarg[2];
    g.PW = node->iarg[3];
    g.DH = node->iarg[4];
    g.DW = node->iarg[5];
    g.G = node->iarg[6];
    g.vec = 0;
    return g;
}

/* 1x1 kernel, stride 1, no padding, and maps of at least CV_DIRECT_P
 * positions: the im2col matrix of an image is the image itself ([C/G, H W]
 * per group) and one product per image is large enough. Smaller 1x1 maps
 * (SAGAN's 14x14 projections) take the chunked path, whose im2col is then a
 * copy that lets one product serve many images. */
#define CV_DIRECT_P 1024

static int cv_pointwise(const cv_geom *g) {
    return g->KH == 1 && g->KW == 1 && g->SH == 1 && g->SW == 1 && g->PH == 0 && g->PW == 0 &&
           g->OH == g->H && g->OW == g->W && g->OH * g->OW >= CV_DIRECT_P;
}

/* ---- AVX-512 rows ------------------------------------------------------------------------- */

/* The row kernels (conv_avx512.c) move 16 columns of a row at a time with
 * masked loads and stores, the same sums in the same order as the portable
 * loops here. g->vec selects them.
 *
 * 1 if the AVX-512 row paths may run: the CPU has AVX-512F, the context
 * does not ask for portable kernels, and a gather's offsets (15 SW) fit
 * int32. */
static int cv_vec_ok(const attn_ctx *ctx, const cv_geom *g) {
#if CV_X86
    return __builtin_cpu_supports("avx512f") && !(ctx->kernel_flags & ATTN_KERNELS_PORTABLE) &&
           g->SW <= ((int64_t)1 << 24);
#else
    (void)ctx, (void)g;
    return 0;
#endif
}

/* ---- chunks of images ------------------------------------------------------------------- */

/* The products run on chunks of nb images at once: for group gi of images
 * n0 .. n0 + nb - 1 the im2col matrices sit side by side in col [K, nb P]
 * (column j P + p is position p of image n0 + j), so one GEMM of inner or
 * outer size nb P replaces nb small ones (7x7 maps have P = 49). The
 * workspace holds col and the matching [O/G, nb P] block of outputs (or
 * output gradients), (K + O/G) P floats per image, at most CV_WS_FLOATS
 * floats (1 MiB) unless one image needs more. */
#define CV_WS_FLOATS ((int64_t)1 << 18)

static int64_t cv_chunk(const cv_geom *g) {
    const int64_t K = g->C / g->G * g->KH * g->KW, Og = g->O / g->G, P = g->OH * g->OW;
    int64_t nb = CV_WS_FLOATS / ((K + Og) * P);
    if (nb < 1) nb = 1;
    if (nb > g->N) nb = g->N;
    return nb;
}

/* The weight gradient's product of the chunked path, dw_g [Og, K] +=
 * D [Og, m P] col^T, runs as its transpose dwT_g [K, Og] += col D^T when K
 * > Og: OpenBLAS (SkylakeX kernels, 1 thread) ran it 1.17-1.4x faster that
 * way round (the 3x3 layer 32->64 on 14x14: 64x288x784 at 105 GFLOP/s, as
 * 288x64x784 at 120-125; the 4x4 layer 64->64: 1.17x; 1x1 64->8: 1.4x; as
 * fast at K = Og). dwT sums every chunk of the call in the workspace
 * (after col and D: G K Og floats, cv_ws_floats) and is added into dw
 * transposed at the end. */
static int cv_dw_transposed(const cv_geom *g) { return g->C / g->G * g->KH * g->KW > g->O / g->G; }

/* The workspace of the chunked path in floats: col and D of cv_chunk
 * images, then dwT when cv_dw_transposed (the size of w). */
static int64_t cv_ws_base(const cv_geom *g) {
    const int64_t K = g->C / g->G * g->KH * g->KW, Og = g->O / g->G;
    return (K + Og) * (g->OH * g->OW) * cv_chunk(g);
}

/* dw_g[o, k] += dwT_g[k, o] for every group. */
static void cv_dw_add_transposed(const cv_geom *g, const float *dwt, float *dw) {
    const int64_t K = g->C / g->G * g->KH * g->KW, Og = g->O / g->G;
    for (int64_t gi = 0; gi < g->G; gi++)
        for (int64_t o = 0; o < Og; o++)
            for (int64_t k = 0; k < K; k++) dw[(gi * Og + o) * K + k] += dwt[(gi * K + k) * Og + o];
}


/* col [K, nb P] of the Cg planes of nb images (u: image n0's first plane of
 * the group; images C H W floats apart):
 * col[(c KH + i) KW + j, b P + p OW + q] = u_b[c, p SH - PH + i DH, q SW - PW + j DW] or 0. */
static void cv_im2col(const cv_geom *g, const float *u, int64_t nb, float *col, int nt) {
#if CV_X86
    const int64_t nv = (g->OH * g->OW + 15) / 16;
    if (g->vec && g->SH == 1 && g->SW == 1 && g->OW == g->W && g->KH * g->KW * nv <= CV_FLAT_MASKS) {
        attn__cv_im2col512_flat(g, u, nb, col, nt);
        return;
    }
    if (g->vec && g->W <= 16 && g->OW <= 8 && g->KW <= CV_KW_MAX) {
        attn__cv_im2col512_pairs(g, u, nb, col, nt);
        return;
    }
    if (g->vec) {
        attn__cv_im2col512(g, u, nb, col, nt);
        return;
    }
#endif
    const int64_t Cg = g->C / g->G, KK = g->KH * g->KW, P = g->OH * g->OW, R = Cg * KK;
    const int64_t HW = g->H * g->W, ld = nb * P;
    (void)nt;
    cv_spans sp;
    cv_spans_init(g, &sp);
    ATTN__OMP_FOR(nt)
    for (int64_t r = 0; r < R; r++) {
        const int64_t c = r / KK, i = (r % KK) / g->KW, j = r % g->KW;
        int64_t iw0, lo, hi;
        cv_span(g, &sp, j, &iw0, &lo, &hi);
        for (int64_t b = 0; b < nb; b++) {
            const float *up = u + b * g->C * HW + c * HW;
            float *dst = col + r * ld + b * P;
            for (int64_t p = 0; p < g->OH; p++) {
                const int64_t ih = p * g->SH - g->PH + i * g->DH;
                float *d = dst + p * g->OW;
                if (ih < 0 || ih >= g->H) {
                    memset(d, 0, sizeof(float) * (size_t)g->OW);
                    continue;
                }
                const float *ur = up + ih * g->W; /* column q reads ur[q SW + iw0] */
                for (int64_t q = 0; q < lo; q++) d[q] = 0.0f;
                if (g->SW == 1 && hi > lo)
                    memcpy(d + lo, ur + lo + iw0, sizeof(float) * (size_t)(hi - lo));
                else if (g->SW != 1)
                    for (int64_t q = lo; q < hi; q++) d[q] = ur[q * g->SW + iw0];
                for (int64_t q = hi; q < g->OW; q++) d[q] = 0.0f;
            }
        }
    }
}

/* du_b[c, ...] += the entries of col that im2col read from there (its
 * adjoint); with `zero`, du_b's Cg planes are zeroed first (the narrow
 * kernel starts its rows at 0 instead of loading them: no memset, the same
 * bits). Each task owns one channel plane of every image and walks its
 * KH KW rows in order: no race, and the same sums for any thread count. */
static void cv_col2im(const cv_geom *g, const float *col, int64_t nb, float *du, int nt,
                      int zero) {
#if CV_X86
    if (g->vec && g->W <= 16 && g->OW <= 16 && g->KW <= CV_KW_MAX) {
        attn__cv_col2im512_narrow(g, col, nb, du, zero, nt);
        return;
    }
#endif
    if (zero)
        for (int64_t b = 0; b < nb; b++)
            memset(du + b * g->C * g->H * g->W, 0, sizeof(float) * (size_t)(g->C / g->G * g->H * g->W));
#if CV_X86
    if (g->vec) {
        attn__cv_col2im512(g, col, nb, du, nt);
        return;
    }
#endif
    const int64_t Cg = g->C / g->G, KK = g->KH * g->KW, P = g->OH * g->OW;
    const int64_t HW = g->H * g->W, ld = nb * P;
    (void)nt;
    cv_spans sp;
    cv_spans_init(g, &sp);
    ATTN__OMP_FOR(nt)
    for (int64_t c = 0; c < Cg; c++)
        for (int64_t b = 0; b < nb; b++) {
            float *up = du + b * g->C * HW + c * HW;
            for (int64_t k = 0; k < KK; k++) {
                const int64_t i = k / g->KW, j = k % g->KW;
                const float *src = col + (c * KK + k) * ld + b * P;
                int64_t iw0, lo, hi;
                cv_span(g, &sp, j, &iw0, &lo, &hi);
                for (int64_t p = 0; p < g->OH; p++) {
                    const int64_t ih = p * g->SH - g->PH + i * g->DH;
                    if (ih < 0 || ih >= g->H) continue;
                    float *ur = up + ih * g->W;
                    const float *s = src + p * g->OW;
                    if (g->SW == 1)
                        for (int64_t q = lo; q < hi; q++) ur[q + iw0] += s[q];
                    else
                        for (int64_t q = lo; q < hi; q++) ur[q * g->SW + iw0] += s[q];
                }
            }
        }
}

/* D[o, b P + p] = v_b[o, p] for the Og channels of a group in nb images (v:
 * image n0's first channel of the group; images O P floats apart). */
static void cv_gather(const cv_geom *g, const float *v, int64_t nb, float *D) {
    const int64_t Og = g->O / g->G, P = g->OH * g->OW;
    for (int64_t o = 0; o < Og; o++)
        for (int64_t b = 0; b < nb; b++)
            memcpy(D + o * nb * P + b * P, v + b * g->O * P + o * P, sizeof(float) * (size_t)P);
}

/* The inverse with the bias of the group's channels folded in (b: NULL or
 * b[Og]): v_b[o, p] = D[o, b P + p] + b[o] (beta 0) or += (beta 1). */
static void cv_scatter(const cv_geom *g, const float *D, int64_t nb, float *v, float beta,
                       const float *b) {
    const int64_t Og = g->O / g->G, P = g->OH * g->OW;
    for (int64_t o = 0; o < Og; o++) {
        const float bo = b ? b[o] : 0.0f;
        for (int64_t n = 0; n < nb; n++) {
            const float *restrict src = D + o * nb * P + n * P;
            float *restrict dst = v + n * g->O * P + o * P;
            if (beta == 0.0f && !b)
                memcpy(dst, src, sizeof(float) * (size_t)P);
            else if (beta == 0.0f)
                for (int64_t p = 0; p < P; p++) dst[p] = src[p] + bo;
            else if (!b)
                for (int64_t p = 0; p < P; p++) dst[p] += src[p];
            else
                for (int64_t p = 0; p < P; p++) dst[p] += src[p] + bo;
        }
    }
}

/* ---- the primitives ------------------------------------------------------------------------ */

/* v = conv(u, w) (beta 0) or v += conv(u, w) (beta 1); bias b[O] or NULL.
 * ws: the workspace (cv_chunk images), NULL on the pointwise path. */
static attn_status cv_forward(attn_ctx *ctx, const cv_geom *g, const float *u, const float *w,
                              const float *b, float *v, float beta, float *ws) {
    const int64_t Cg = g->C / g->G, Og = g->O / g->G, K = Cg * g->KH * g->KW;
    const int64_t P = g->OH * g->OW, HW = g->H * g->W;
    if (cv_depthwise(g)) {
        attn__cv_dw_forward(ctx, g, u, w, b, v, beta);
    } else if (attn__cv_wino_ok(g)) {
        attn__cv_wino_forward(ctx, g, u, w, b, v, beta, ws);
    } else if (cv_pointwise(g)) {
        const int nt = attn__threads_for(ctx, 2.0 * (double)Og * (double)K * (double)P);
        for (int64_t n = 0; n < g->N; n++)
            for (int64_t gi = 0; gi < g->G; gi++)
                attn__sgemm(nt, 0, 0, Og, P, K, 1.0f, w + gi * Og * K, K,
                            u + (n * g->C + gi * Cg) * HW, P, beta, v + (n * g->O + gi * Og) * P, P);
        if (b) attn__cv_add_bias(g->N, g->O, P, b, v);
    } else {
        const int64_t nb = cv_chunk(g);
        for (int64_t n0 = 0; n0 < g->N; n0 += nb) {
            const int64_t m = g->N - n0 < nb ? g->N - n0 : nb, ld = m * P;
            float *col = ws, *out = ws + K * ld;
            const int nt = attn__threads_for(ctx, 2.0 * (double)Og * (double)K * (double)ld);
            const int nti = attn__threads_for(ctx, (double)K * (double)ld);
            for (int64_t gi = 0; gi < g->G; gi++) {
                cv_im2col(g, u + (n0 * g->C + gi * Cg) * HW, m, col, nti);
                /* out [Og, m P] = w_g [Og, K] col [K, m P] */
                attn__sgemm(nt, 0, 0, Og, ld, K, 1.0f, w + gi * Og * K, K, col, ld, 0.0f, out, ld);
                cv_scatter(g, out, m, v + (n0 * g->O + gi * Og) * P, beta, b ? b + gi * Og : NULL);
            }
        }
    }
    return ATTN_OK;
}

static void cv_bias_grad(int64_t N, int64_t O, int64_t P, const float *dv, float *db, int vec);
static double cv_sum16(const float *r, int64_t P, int vec);

/* The bias gradient is summed during the gather of the chunked path for
 * at most this many channels (a stack array of doubles). */
#define CV_DB_FUSED 1024

/* The backward of v = conv(u, w): du += conv^T(dv, w) (du NULL: not
 * wanted), dw += dv (im2col u)^T (dw NULL: not wanted) and db[o] += sum
 * dv[:, o, :] (db NULL: not wanted), chunks in order. Per chunk and group
 * the output gradient is gathered once into D; db sums its rows there (in
 * cv_bias_grad's order: the same bits); dw takes D col^T with col =
 * im2col(u); then col is overwritten with w_g^T D, which col2im adds into
 * du. */
static attn_status cv_backward(attn_ctx *ctx, const cv_geom *g, const float *u, const float *dv,
                               const float *w, float *du, float *dw, float *db, float *ws) {
    const int64_t Cg = g->C / g->G, Og = g->O / g->G, K = Cg * g->KH * g->KW;
    const int64_t P = g->OH * g->OW, HW = g->H * g->W;
    if (cv_depthwise(g)) {
        /* db in cv_bias_grad's sums and order, in the fused pass or here */
        if (!attn__cv_dw_backward(ctx, g, u, dv, w, du, dw, db) && db)
            cv_bias_grad(g->N, g->O, P, dv, db, g->vec);
        return ATTN_OK;
    }
    if (db && (cv_pointwise(g) || attn__cv_wino_ok(g) || (!du && !dw) || g->O > CV_DB_FUSED)) {
        cv_bias_grad(g->N, g->O, P, dv, db, g->vec);
        db = NULL;
    }
    if (!du && !dw) return ATTN_OK;
    if (attn__cv_wino_ok(g)) {
        attn__cv_wino_backward(ctx, g, u, dv, w, du, dw, ws);
        return ATTN_OK;
    }
    if (cv_pointwise(g)) {
        const int nt = attn__threads_for(ctx, 2.0 * (double)Og * (double)K * (double)P);
        for (int64_t n = 0; n < g->N; n++)
            for (int64_t gi = 0; gi < g->G; gi++) {
                const float *dvg = dv + (n * g->O + gi * Og) * P;
                if (du)
                    attn__sgemm(nt, 1, 0, K, P, Og, 1.0f, w + gi * Og * K, K, dvg, P, 1.0f,
                                du + (n * g->C + gi * Cg) * HW, P);
                if (dw)
                    attn__sgemm(nt, 0, 1, Og, K, P, 1.0f, dvg, P, u + (n * g->C + gi * Cg) * HW, P,
                                1.0f, dw + gi * Og * K, K);
            }
        return ATTN_OK;
    }
    const int64_t nb = cv_chunk(g);
    float *dwt = dw && cv_dw_transposed(g) ? ws + cv_ws_base(g) : NULL;
    double dbs[CV_DB_FUSED];
    if (db)
        for (int64_t o = 0; o < g->O; o++) dbs[o] = 0.0;
    for (int64_t n0 = 0; n0 < g->N; n0 += nb) {
        const int64_t m = g->N - n0 < nb ? g->N - n0 : nb, ld = m * P;
        float *col = ws, *D = ws + K * ld;
        const int nt = attn__threads_for(ctx, 2.0 * (double)Og * (double)K * (double)ld);
        const int nti = attn__threads_for(ctx, (double)K * (double)ld);
        for (int64_t gi = 0; gi < g->G; gi++) {
            cv_gather(g, dv + (n0 * g->O + gi * Og) * P, m, D);
            if (db) /* images in order, as cv_bias_grad */
                for (int64_t o = 0; o < Og; o++)
                    for (int64_t b = 0; b < m; b++)
                        dbs[gi * Og + o] += cv_sum16(D + o * ld + b * P, P, g->vec);
            if (dw) {
                cv_im2col(g, u + (n0 * g->C + gi * Cg) * HW, m, col, nti);
                /* dw_g [Og, K] += D [Og, m P] col^T [m P, K], or its
                 * transpose dwT_g [K, Og] (=, then +=) col [K, m P] D^T */
                if (dwt)
                    attn__sgemm(nt, 0, 1, K, Og, ld, 1.0f, col, ld, D, ld, n0 ? 1.0f : 0.0f,
                                dwt + gi * K * Og, Og);
                else
                    attn__sgemm(nt, 0, 1, Og, K, ld, 1.0f, D, ld, col, ld, 1.0f, dw + gi * Og * K, K);
            }
            if (du) {
                /* dcol [K, m P] = w_g^T [K, Og] D [Og, m P] */
                attn__sgemm(nt, 1, 0, K, ld, Og, 1.0f, w + gi * Og * K, K, D, ld, 0.0f, col, ld);
                cv_col2im(g, col, m, du + (n0 * g->C + gi * Cg) * HW, nti, 0);
            }
        }
    }
    if (dwt) cv_dw_add_transposed(g, dwt, dw);
    if (db)
        for (int64_t o = 0; o < g->O; o++) db[o] += (float)dbs[o];
    return ATTN_OK;
}

/* du = conv^T(dv, w) + b (b[C] or NULL), conv_transpose2d's forward. On
 * the chunked path each chunk's images of du are zeroed just before their
 * col2im and take the bias right after it, while they are in cache (a
 * memset of the whole output first, then col2im and the bias each reading
 * it back from memory, was three passes over it); the same sums as
 * cv_backward's du into a zeroed du followed by attn__cv_add_bias. */
static attn_status cv_transpose_forward(attn_ctx *ctx, const cv_geom *g, const float *dv,
                                        const float *w, const float *b, float *du, float *ws) {
    const int64_t Cg = g->C / g->G, Og = g->O / g->G, K = Cg * g->KH * g->KW;
    const int64_t P = g->OH * g->OW, HW = g->H * g->W;
    if (cv_depthwise(g) || cv_pointwise(g) || attn__cv_wino_ok(g)) {
        memset(du, 0, sizeof(float) * (size_t)(g->N * g->C * HW));
        attn_status st = cv_backward(ctx, g, NULL, dv, w, du, NULL, NULL, ws);
        if (st == ATTN_OK && b) attn__cv_add_bias(g->N, g->C, HW, b, du);
        return st;
    }
    const int64_t nb = cv_chunk(g);
    for (int64_t n0 = 0; n0 < g->N; n0 += nb) {
        const int64_t m = g->N - n0 < nb ? g->N - n0 : nb, ld = m * P;
        float *col = ws, *D = ws + K * ld;
        const int nt = attn__threads_for(ctx, 2.0 * (double)Og * (double)K * (double)ld);
        const int nti = attn__threads_for(ctx, (double)K * (double)ld);
        for (int64_t gi = 0; gi < g->G; gi++) {
            cv_gather(g, dv + (n0 * g->O + gi * Og) * P, m, D);
            /* col [K, m P] = w_g^T [K, Og] D [Og, m P] */
            attn__sgemm(nt, 1, 0, K, ld, Og, 1.0f, w + gi * Og * K, K, D, ld, 0.0f, col, ld);
            cv_col2im(g, col, m, du + (n0 * g->C + gi * Cg) * HW, nti, 1);
        }
        if (b) attn__cv_add_bias(m, g->C, HW, b, du + n0 * g->C * HW);
    }
    return ATTN_OK;
}

/* The backward of conv_transpose2d, v = conv^T(u', w) read the other way:
 * with u = the output gradient gy (the convolution's input side) and v = x,
 * dx += conv(gy, w) (dx NULL: not wanted) and dw += x (im2col gy)^T (dw
 * NULL: not wanted), and db[c] += sum gy[:, c, :] (db NULL: not wanted).
 * Per chunk and group col = im2col(gy) is built once for both products,
 * and db sums the chunk's planes of gy right after (cv_bias_grad's sums in
 * its order: the same bits). */
static attn_status cv_transpose_backward(attn_ctx *ctx, const cv_geom *g, const float *gy,
                                         const float *x, const float *w, float *dx, float *dw,
                                         float *db, float *ws) {
    const int64_t Cg = g->C / g->G, Og = g->O / g->G, K = Cg * g->KH * g->KW;
    const int64_t P = g->OH * g->OW, HW = g->H * g->W;
    if (db && (cv_depthwise(g) || cv_pointwise(g) || (!dx && !dw) || g->C > CV_DB_FUSED)) {
        cv_bias_grad(g->N, g->C, HW, gy, db, g->vec);
        db = NULL;
    }
    if (!dx && !dw) return ATTN_OK;
    if (cv_depthwise(g) || cv_pointwise(g)) {
        attn_status st = ATTN_OK;
        if (dx) st = cv_forward(ctx, g, gy, w, NULL, dx, 1.0f, ws);
        if (st == ATTN_OK && dw) {
            if (cv_depthwise(g))
                attn__cv_dw_bwd_weight(ctx, g, gy, x, dw);
            else
                st = cv_backward(ctx, g, gy, x, w, NULL, dw, NULL, ws);
        }
        return st;
    }
    const int64_t nb = cv_chunk(g);
    float *dwt = dw && cv_dw_transposed(g) ? ws + cv_ws_base(g) : NULL;
    double dbs[CV_DB_FUSED];
    if (db)
        for (int64_t c = 0; c < g->C; c++) dbs[c] = 0.0;
    for (int64_t n0 = 0; n0 < g->N; n0 += nb) {
        const int64_t m = g->N - n0 < nb ? g->N - n0 : nb, ld = m * P;
        float *col = ws, *D = ws + K * ld;
        const int nt = attn__threads_for(ctx, 2.0 * (double)Og * (double)K * (double)ld);
        const int nti = attn__threads_for(ctx, (double)K * (double)ld);
        for (int64_t gi = 0; gi < g->G; gi++) {
            cv_im2col(g, gy + (n0 * g->C + gi * Cg) * HW, m, col, nti);
            if (db) /* the chunk's planes of gy, in cache: cv_bias_grad's sums, images in order */
                for (int64_t c = gi * Cg; c < (gi + 1) * Cg; c++)
                    for (int64_t b = 0; b < m; b++)
                        dbs[c] += cv_sum16(gy + ((n0 + b) * g->C + c) * HW, HW, g->vec);
            if (dx) {
                /* D [Og, m P] = w_g [Og, K] col [K, m P], added into dx */
                attn__sgemm(nt, 0, 0, Og, ld, K, 1.0f, w + gi * Og * K, K, col, ld, 0.0f, D, ld);
                cv_scatter(g, D, m, dx + (n0 * g->O + gi * Og) * P, 1.0f, NULL);
            }
            if (dw) {
                cv_gather(g, x + (n0 * g->O + gi * Og) * P, m, D);
                /* dw_g [Og, K] += D [Og, m P] col^T [m P, K] (or its
                 * transpose, as in cv_backward) */
                if (dwt)
                    attn__sgemm(nt, 0, 1, K, Og, ld, 1.0f, col, ld, D, ld, n0 ? 1.0f : 0.0f,
                                dwt + gi * K * Og, Og);
                else
                    attn__sgemm(nt, 0, 1, Og, K, ld, 1.0f, D, ld, col, ld, 1.0f, dw + gi * Og * K, K);
            }
        }
    }
    if (dwt) cv_dw_add_transposed(g, dwt, dw);
    if (db)
        for (int64_t c = 0; c < g->C; c++) db[c] += (float)dbs[c];
    return ATTN_OK;
}


static double cv_sum16(const float *r, int64_t P, int vec) {
#if CV_X86
    if (vec) return attn__cv_sum16_512(r, P);
#endif
    (void)vec;
    double a[16] = {0};
    for (int64_t p = 0; p < P; p++) a[p % 16] += (double)r[p];
    double s = 0.0;
    for (int l = 0; l < 16; l++) s += a[l];
    return s;
}

/* db[o] += sum_{n,p} dv[n,o,p] over an [N, O, P] gradient (conv_transpose2d
 * passes dy with O = Cout, its output's channels). In double: per row
 * cv_sum16, images in order. */
static void cv_bias_grad(int64_t N, int64_t O, int64_t P, const float *dv, float *db, int vec) {
    for (int64_t o = 0; o < O; o++) {
        double s = 0.0;
        for (int64_t n = 0; n < N; n++) s += cv_sum16(dv + (n * O + o) * P, P, vec);
        db[o] += (float)s;
    }
}


/* ---- the scalar references: direct sums in double -------------------------------------- */

/* v = conv(u, w) + b, the 7-loop definition. */
static void cv_direct_ref(const cv_geom *g, const float *u, const float *w, const float *b,
                          float *v) {
    const int64_t Cg = g->C / g->G, Og = g->O / g->G;
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t o = 0; o < g->O; o++) {
            const int64_t gi = o / Og;
            for (int64_t p = 0; p < g->OH; p++)
                for (int64_t q = 0; q < g->OW; q++) {
                    double acc = b ? (double)b[o] : 0.0;
                    for (int64_t c = 0; c < Cg; c++)
                        for (int64_t i = 0; i < g->KH; i++) {
                            const int64_t ih = p * g->SH - g->PH + i * g->DH;
                            if (ih < 0 || ih >= g->H) continue;
                            for (int64_t j = 0; j < g->KW; j++) {
                                const int64_t iw = q * g->SW - g->PW + j * g->DW;
                                if (iw < 0 || iw >= g->W) continue;
                                acc += (double)w[((o * Cg + c) * g->KH + i) * g->KW + j] *
                                       (double)u[((n * g->C + gi * Cg + c) * g->H + ih) * g->W + iw];
                            }
                        }
                    v[((n * g->O + o) * g->OH + p) * g->OW + q] = (float)acc;
                }
        }
}

/* u = conv^T(v, w) + b (b over u's C channels), as a gather: u[n,c,h,x]
 * sums w[o,c',i,j] v[n,o,p,q] over the (p, q) with p SH - PH + i DH = h and
 * q SW - PW + j DW = x. */
static void cv_transpose_ref(const cv_geom *g, const float *v, const float *w, const float *b,
                             float *u) {
    const int64_t Cg = g->C / g->G, Og = g->O / g->G;
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t cc = 0; cc < g->C; cc++) {
            const int64_t gi = cc / Cg, c = cc % Cg;
            for (int64_t h = 0; h < g->H; h++)
                for (int64_t x = 0; x < g->W; x++) {
                    double acc = b ? (double)b[cc] : 0.0;
                    for (int64_t oo = 0; oo < Og; oo++) {
                        const int64_t o = gi * Og + oo;
                        for (int64_t i = 0; i < g->KH; i++) {
                            const int64_t th = h + g->PH - i * g->DH;
                            if (th < 0 || th % g->SH) continue;
                            const int64_t p = th / g->SH;
                            if (p >= g->OH) continue;
                            for (int64_t j = 0; j < g->KW; j++) {
                                const int64_t tw = x + g->PW - j * g->DW;
                                if (tw < 0 || tw % g->SW) continue;
                                const int64_t q = tw / g->SW;
                                if (q >= g->OW) continue;
                                acc += (double)w[((o * Cg + c) * g->KH + i) * g->KW + j] *
                                       (double)v[((n * g->O + o) * g->OH + p) * g->OW + q];
                            }
                        }
                    }
                    u[((n * g->C + cc) * g->H + h) * g->W + x] = (float)acc;
                }
        }
}

/* ---- kernels of the table ------------------------------------------------------------------ */

/* The node's workspace (saved[0]; NULL on the pointwise path). */
static float *cv_col(const attn_node *node) {
    return node->saved[0] ? attn_f32(node->saved[0]) : NULL;
}

static const float *cv_bias(const attn_node *node) {
    return node->iarg[7] ? attn_f32(node->in[2]) : NULL;
}

/* The node's geometry with the context's kernel choice. */
static cv_geom cv_geom_ctx(const attn_ctx *ctx, const attn_node *node) {
    cv_geom g = cv_geom_of(node);
    g.vec = cv_vec_ok(ctx, &g);
    return g;
}

/* conv2d and conv1d: y = conv(x, w) + b. */
static attn_status cv_conv_forward(attn_ctx *ctx, attn_node *node) {
    const cv_geom g = cv_geom_ctx(ctx, node);
    return cv_forward(ctx, &g, attn_f32(node->in[0]), attn_f32(node->in[1]), cv_bias(node),
                      attn_f32(node->out), 0.0f, cv_col(node));
}

static attn_status cv_conv_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const cv_geom g = cv_geom_of(node);
    cv_direct_ref(&g, attn_f32(node->in[0]), attn_f32(node->in[1]), cv_bias(node),
                  attn_f32(node->out));
    return ATTN_OK;
}

static attn_status cv_conv_backward(attn_ctx *ctx, attn_node *node) {
    const cv_geom g = cv_geom_ctx(ctx, node);
    const float *x = attn_f32(node->in[0]), *w = attn_f32(node->in[1]), *gy = node->out->grad;
    /* y[n,o,p] = sum_k w[o,k] col_n[k,p] + b[o]  =>  dcol_n = w^T gy_n, and
     * dx is col2im(dcol_n) (im2col is a gather, col2im its adjoint
     * scatter); dw += gy_n col_n^T */
    attn_status st = ATTN_OK;
    float *dx = attn__needs_grad(node, 0) ? node->in[0]->grad : NULL;
    float *dw = attn__needs_grad(node, 1) ? node->in[1]->grad : NULL;
    /* => db[o] += sum_{n,p} gy[n,o,p]: summed by cv_backward on the chunked
     * path as it gathers gy (the same sums in the same order), else here */
    float *db = node->iarg[7] && attn__needs_grad(node, 2) ? node->in[2]->grad : NULL;
    if (dx || dw || db) st = cv_backward(ctx, &g, x, gy, w, dx, dw, db, cv_col(node));
    return st;
}

attn_status attn__conv2d_forward(attn_ctx *ctx, attn_node *node) {
    return cv_conv_forward(ctx, node);
}
attn_status attn__conv2d_ref(attn_ctx *ctx, attn_node *node) { return cv_conv_ref(ctx, node); }
attn_status attn__conv2d_backward(attn_ctx *ctx, attn_node *node) {
    return cv_conv_backward(ctx, node);
}

attn_status attn__conv1d_forward(attn_ctx *ctx, attn_node *node) {
    return cv_conv_forward(ctx, node);
}
attn_status attn__conv1d_ref(attn_ctx *ctx, attn_node *node) { return cv_conv_ref(ctx, node); }
attn_status attn__conv1d_backward(attn_ctx *ctx, attn_node *node) {
    return cv_conv_backward(ctx, node);
}

/* conv_transpose2d: y = conv^T(x, w) + b, the data gradient of the
 * convolution whose input is y and output x. */
attn_status attn__conv_transpose2d_forward(attn_ctx *ctx, attn_node *node) {
    const cv_geom g = cv_geom_ctx(ctx, node);
    return cv_transpose_forward(ctx, &g, attn_f32(node->in[0]), attn_f32(node->in[1]),
                                cv_bias(node), attn_f32(node->out), cv_col(node));
}

attn_status attn__conv_transpose2d_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const cv_geom g = cv_geom_of(node);
    cv_transpose_ref(&g, attn_f32(node->in[0]), attn_f32(node->in[1]), cv_bias(node),
                     attn_f32(node->out));
    return ATTN_OK;
}

attn_status attn__conv_transpose2d_backward(attn_ctx *ctx, attn_node *node) {
    const cv_geom g = cv_geom_ctx(ctx, node);
    const float *x = attn_f32(node->in[0]), *w = attn_f32(node->in[1]), *gy = node->out->grad;
    /* y = conv^T(x, w) is linear in x with adjoint conv: dx += conv(gy, w);
     * y = col2im(w_g^T x_n)  =>  dw_g += x_n (im2col gy_n)^T */
    attn_status st = ATTN_OK;
    float *dx = attn__needs_grad(node, 0) ? node->in[0]->grad : NULL;
    float *dw = attn__needs_grad(node, 1) ? node->in[1]->grad : NULL;
    /* => db[c] += sum_{n,p} gy[n,c,p]: summed by cv_transpose_backward on
     * the chunked path after each chunk's im2col of gy, else there first */
    float *db = node->iarg[7] && attn__needs_grad(node, 2) ? node->in[2]->grad : NULL;
    if (dx || dw || db) st = cv_transpose_backward(ctx, &g, gy, x, w, dx, dw, db, cv_col(node));
    return st;
}

/* ---- graph ops: validation and nodes --------------------------------------------------- */

/* r = a * b + c for a, b >= 0 and c >= 0; 1 (r untouched) when it does not
 * fit in int64 (a stride or dilation near 2^62 must not wrap the output
 * size into a plausible one). */
static int cv_mad(int64_t a, int64_t b, int64_t c, int64_t *r) {
    if (b != 0 && a > (INT64_MAX - c) / b) return 1;
    *r = a * b + c;
    return 0;
}

/* The size error of the attribute arithmetic (cv_mad failed). */
static void cv_too_big(attn_ctx *ctx, const char *name, const attn_tensor *x, const attn_tensor *w) {
    attn__fail(ctx, ATTN_ERR_INVALID_ARG,
               "%s: x %s, w %s: stride, padding or dilation so large that the sizes overflow "
               "int64", name, attn__shp(x), attn__shp(w));
}

/* A 0 in stride/dilation/groups means 1; negatives are errors. */
static int cv_default(attn_ctx *ctx, const char *name, const char *what, int64_t v, int64_t *out) {
    if (v < 0) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: %s %lld must be >= 0 (0 reads as 1)", name, what,
                   (long long)v);
        return -1;
    }
    *out = v ? v : 1;
    return 0;
}

/* Common checks of x, w, b: dtypes, ranks, channels against groups.
 * `wdims` is the rank of w (4 or 3); `transposed` selects the weight layout
 * [Cin, Cout/G, ...] instead of [Cout, Cin/G, ...]. Returns Cout, or -1. */
static int64_t cv_check(attn_ctx *ctx, const char *name, const attn_tensor *x,
                        const attn_tensor *w, const attn_tensor *b, int ndim, int64_t G,
                        int transposed) {
    if (attn__check_dtype(ctx, name, "x", x, ATTN_F32) ||
        attn__check_dtype(ctx, name, "w", w, ATTN_F32) ||
        (b && attn__check_dtype(ctx, name, "b", b, ATTN_F32)))
        return -1;
    const char *xs = ndim == 4 ? "[N, C, H, W]" : "[N, C, T]";
    if (x->ndim != ndim || w->ndim != ndim) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x %s and w %s: expected x %s and a weight of rank %d",
                   name, attn__shp(x), attn__shp(w), xs, ndim);
        return -1;
    }
    for (int d = 0; d < ndim; d++)
        if (x->shape[d] < 1 || w->shape[d] < 1) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x %s and w %s: every dimension must be >= 1",
                       name, attn__shp(x), attn__shp(w));
            return -1;
        }
    const int64_t Cin = x->shape[1];
    if (Cin % G) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: x %s: %lld input channels not divisible by groups %lld",
                   name, attn__shp(x), (long long)Cin, (long long)G);
        return -1;
    }
    int64_t Cout;
    if (!transposed) {
        Cout = w->shape[0];
        if (w->shape[1] != Cin / G) {
            attn__fail(ctx, ATTN_ERR_SHAPE,
                       "%s: w %s for x %s with groups %lld: expected w[1] = Cin / groups = %lld",
                       name, attn__shp(w), attn__shp(x), (long long)G, (long long)(Cin / G));
            return -1;
        }
    } else {
        if (w->shape[0] != Cin) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: w %s for x %s: expected w[0] = Cin = %lld", name,
                       attn__shp(w), attn__shp(x), (long long)Cin);
            return -1;
        }
        Cout = w->shape[1] * G;
    }
    if (Cout % G) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: w %s: %lld output channels not divisible by groups %lld",
                   name, attn__shp(w), (long long)Cout, (long long)G);
        return -1;
    }
    if (b && (b->ndim != 1 || b->shape[0] != Cout)) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: b %s for w %s: expected [%lld]", name, attn__shp(b),
                   attn__shp(w), (long long)Cout);
        return -1;
    }
    return Cout;
}

/* Makes x, w, b contiguous, allocates y and runs the node. */
static attn_tensor *cv_run(attn_ctx *ctx, attn_op op, const char *name, attn_tensor *x,
                           attn_tensor *w, attn_tensor *b, int ndim, const int64_t *yshape,
                           const int64_t *iarg) {
    attn_tensor *in[3];
    int n_in = 0;
    if (!(in[n_in++] = attn__contig(ctx, x))) return NULL;
    if (!(in[n_in++] = attn__contig(ctx, w))) return NULL;
    if (b && !(in[n_in++] = attn__contig(ctx, b))) return NULL;
    attn_tensor *y = attn__tensor(ctx, name, ATTN_F32, ndim, yshape);
    if (!y) return NULL;
    attn_node *node = attn__node(ctx, op, n_in, in, y);
    if (!node) return NULL;
    for (int k = 0; k < 7; k++) node->iarg[k] = iarg[k];
    node->iarg[7] = b != NULL;
    /* The workspace of cv_chunk images (im2col and one block of outputs,
     * then the transposed weight gradient when cv_dw_transposed), allocated
     * with the node (planned scratch: the arena's peak is its top) and
     * reused by the backward. */
    const cv_geom g = cv_geom_of(node);
    if (!cv_pointwise(&g) && !cv_depthwise(&g)) {
        const int64_t K = g.C / g.G * g.KH * g.KW, P = g.OH * g.OW;
        size_t n, nw = 0;
        if (attn__mul_size((size_t)(K + g.O / g.G), (size_t)P, &n) ||
            attn__mul_size(n, (size_t)cv_chunk(&g), &n) ||
            (cv_dw_transposed(&g) && attn__mul_size((size_t)K, (size_t)g.O, &nw)) ||
            n > (size_t)INT64_MAX / sizeof(float) - nw || (n += nw) > (size_t)INT64_MAX / sizeof(float)) {
            attn__fail(ctx, ATTN_ERR_OOM, "%s: im2col workspace [%lld + %lld, %lld] overflows", name,
                       (long long)K, (long long)(g.O / g.G), (long long)P);
            return NULL;
        }
        /* the Winograd path's (it may take the products, attn__cv_wino_ok) */
        if (attn__cv_wino_shape(&g) && (size_t)attn__cv_wino_ws(&g) > n)
            n = (size_t)attn__cv_wino_ws(&g);
        const int64_t len = (int64_t)n;
        if (!(node->saved[0] = attn__tensor(ctx, name, ATTN_F32, 1, &len))) return NULL;
    }
    return attn__run(ctx, node);
}

/* The 2-D attributes with defaults; -1 on error. */
static int cv_opts2(attn_ctx *ctx, const char *name, const attn_conv2d_opts *o, int64_t *s,
                    int64_t *p, int64_t *d, int64_t *G, int64_t *op) {
    static const attn_conv2d_opts zero = {{0, 0}, {0, 0}, {0, 0}, 0, {0, 0}};
    if (!o) o = &zero;
    for (int k = 0; k < 2; k++) {
        if (cv_default(ctx, name, "stride", o->stride[k], &s[k]) ||
            cv_default(ctx, name, "dilation", o->dilation[k], &d[k]))
            return -1;
        if (o->padding[k] < 0 || o->output_padding[k] < 0) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: padding %lld and output_padding %lld must be >= 0",
                       name, (long long)o->padding[k], (long long)o->output_padding[k]);
            return -1;
        }
        p[k] = o->padding[k];
        op[k] = o->output_padding[k];
    }
    return cv_default(ctx, name, "groups", o->groups, G);
}

attn_tensor *attn_conv2d(attn_ctx *ctx, attn_tensor *x, attn_tensor *w, attn_tensor *b,
                         const attn_conv2d_opts *opts) {
    const char *name = "conv2d";
    if (attn__any_null(ctx, name, 2, x, w)) return NULL;
    int64_t s[2], p[2], d[2], G, opad[2];
    if (cv_opts2(ctx, name, opts, s, p, d, &G, opad)) return NULL;
    if (opad[0] || opad[1]) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: output_padding is for conv_transpose2d only", name);
        return NULL;
    }
    const int64_t Cout = cv_check(ctx, name, x, w, b, 4, G, 0);
    if (Cout < 0) return NULL;
    int64_t osz[2];
    for (int k = 0; k < 2; k++) {
        int64_t reach, padded; /* d (K - 1) + 1 and H + 2 p, checked */
        if (cv_mad(d[k], w->shape[2 + k] - 1, 1, &reach) || cv_mad(p[k], 2, x->shape[2 + k], &padded)) {
            cv_too_big(ctx, name, x, w);
            return NULL;
        }
        const int64_t span = padded - reach;
        if (span < 0) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                       "%s: x %s, w %s, padding %lld, dilation %lld: the kernel is larger than the "
                       "padded input (output size < 1)",
                       name, attn__shp(x), attn__shp(w), (long long)p[k], (long long)d[k]);
            return NULL;
        }
        osz[k] = span / s[k] + 1;
    }
    const int64_t yshape[4] = {x->shape[0], Cout, osz[0], osz[1]};
    const int64_t iarg[7] = {s[0], s[1], p[0], p[1], d[0], d[1], G};
    return cv_run(ctx, ATTN_OP_CONV2D, name, x, w, b, 4, yshape, iarg);
}

attn_tensor *attn_conv1d(attn_ctx *ctx, attn_tensor *x, attn_tensor *w, attn_tensor *b,
                         const attn_conv1d_opts *opts) {
    const char *name = "conv1d";
    if (attn__any_null(ctx, name, 2, x, w)) return NULL;
    static const attn_conv1d_opts zero = {0, 0, 0, 0, 0};
    if (!opts) opts = &zero;
    int64_t s, d, G;
    if (cv_default(ctx, name, "stride", opts->stride, &s) ||
        cv_default(ctx, name, "dilation", opts->dilation, &d) ||
        cv_default(ctx, name, "groups", opts->groups, &G))
        return NULL;
    if (opts->padding < 0 || (opts->causal && opts->padding)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: padding %lld must be >= 0, and 0 when causal (the left padding is then "
                   "dilation (K - 1))",
                   name, (long long)opts->padding);
        return NULL;
    }
    const int64_t Cout = cv_check(ctx, name, x, w, b, 3, G, 0);
    if (Cout < 0) return NULL;
    const int64_t K = w->shape[2];
    int64_t reach, padded; /* d (K - 1) + 1 and L + pl + pr, checked */
    if (cv_mad(d, K - 1, 1, &reach) ||
        cv_mad(opts->causal ? d : opts->padding, opts->causal ? K - 1 : 2, x->shape[2], &padded)) {
        cv_too_big(ctx, name, x, w);
        return NULL;
    }
    const int64_t pl = opts->causal ? reach - 1 : opts->padding;
    const int64_t pr = opts->causal ? 0 : opts->padding;
    const int64_t span = padded - reach;
    if (span < 0) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: x %s, w %s, padding %lld, dilation %lld: the kernel is larger than the "
                   "padded input (output length < 1)",
                   name, attn__shp(x), attn__shp(w), (long long)opts->padding, (long long)d);
        return NULL;
    }
    const int64_t yshape[3] = {x->shape[0], Cout, span / s + 1};
    const int64_t iarg[7] = {s, pl, pr, d, G, 0, 0};
    return cv_run(ctx, ATTN_OP_CONV1D, name, x, w, b, 3, yshape, iarg);
}

attn_tensor *attn_conv_transpose2d(attn_ctx *ctx, attn_tensor *x, attn_tensor *w, attn_tensor *b,
                                   const attn_conv2d_opts *opts) {
    const char *name = "conv_transpose2d";
    if (attn__any_null(ctx, name, 2, x, w)) return NULL;
    int64_t s[2], p[2], d[2], G, opad[2];
    if (cv_opts2(ctx, name, opts, s, p, d, &G, opad)) return NULL;
    const int64_t Cout = cv_check(ctx, name, x, w, b, 4, G, 1);
    if (Cout < 0) return NULL;
    int64_t osz[2];
    for (int k = 0; k < 2; k++) {
        if (opad[k] >= s[k] && opad[k] >= d[k]) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                       "%s: output_padding %lld must be smaller than the stride %lld or the "
                       "dilation %lld",
                       name, (long long)opad[k], (long long)s[k], (long long)d[k]);
            return NULL;
        }
        int64_t a, full; /* (H - 1) s + d (K - 1) + output_padding + 1, checked */
        if (cv_mad(d[k], w->shape[2 + k] - 1, opad[k] + 1, &a) ||
            cv_mad(x->shape[2 + k] - 1, s[k], a, &full) || p[k] > INT64_MAX / 2) {
            cv_too_big(ctx, name, x, w);
            return NULL;
        }
        osz[k] = full - 2 * p[k];
        if (osz[k] < 1) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                       "%s: x %s, w %s, padding %lld: output size %lld < 1", name, attn__shp(x),
                       attn__shp(w), (long long)p[k], (long long)osz[k]);
            return NULL;
        }
    }
    const int64_t yshape[4] = {x->shape[0], Cout, osz[0], osz[1]};
    const int64_t iarg[7] = {s[0], s[1], p[0], p[1], d[0], d[1], G};
    return cv_run(ctx, ATTN_OP_CONV_TRANSPOSE2D, name, x, w, b, 4, yshape, iarg);
}
