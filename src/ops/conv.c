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
 *                   dw += dv (im2col u)^T       (im2col + GEMM), per chunk
 *   cv_transpose_backward  conv_transpose2d's dx and dw from one im2col(dy)
 * conv2d's backward is cv_backward; conv_transpose2d's forward is
 * cv_bwd_data (cv_backward without dw). Rows move through AVX-512 masked
 * loads and stores when the CPU has them ("AVX-512 rows" below).
 *
 * Node attributes: conv2d / conv_transpose2d: iarg = {SH, SW, PH, PW, DH,
 * DW, G, has_bias}; conv1d: iarg = {S, pad_left, pad_right, D, G, -, -,
 * has_bias}. Inputs: x, w, then b when has_bias. saved[0]: the workspace
 * of a chunk of images (cv_chunk: their im2col matrices side by side and a
 * block of outputs; absent on the direct 1x1 path, cv_pointwise, and the
 * depthwise kernels, cv_depthwise), reused by the backward.
 * Derivations: docs/conv.md.
 */
#include <stdint.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/conv.h"
#include "view_internal.h"

typedef struct cv_geom {
    int64_t N, C, H, W; /* the convolution's input u */
    int64_t O, OH, OW;  /* its output v */
    int64_t G, KH, KW, SH, SW, PH, PW, DH, DW;
    int vec; /* 1: the AVX-512 row kernels (cv_vec_ok), 0: the portable loops */
} cv_geom;

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

/* Every primitive below walks rows: output row p of a plane reads, for
 * kernel column j, the input row ih at columns q SW + iw0 (iw0 = j DW - PW),
 * of which only q in [lo, hi) lie inside the image (cv_cols). The AVX-512
 * paths move such a row 16 columns q at a time with masked loads and stores
 * that touch no element outside [lo, hi): unit stride is a masked load,
 * stride 2 two loads and a permutation, other strides a gather; the scatter
 * direction (col2im, the depthwise data gradient) adds to the elements the
 * gather would read, each once, in the order of the scalar loops (the sums
 * are the same bits). g->vec selects them (cv_vec_ok). */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CV_X86 1
#define CV512 __attribute__((target("avx512f")))
#define CV512_INLINE __attribute__((target("avx512f"), always_inline)) inline
#else
#define CV_X86 0
#endif

/* The columns q of kernel column j that land inside the image:
 * 0 <= q SW + iw0 < W for q in [*lo, *hi), iw0 = j DW - PW. */
static void cv_cols(const cv_geom *g, int64_t j, int64_t *iw0, int64_t *lo, int64_t *hi) {
    *iw0 = j * g->DW - g->PW;
    *lo = *iw0 >= 0 ? 0 : (-*iw0 + g->SW - 1) / g->SW;
    *hi = g->W - *iw0 <= 0 ? 0 : (g->W - *iw0 - 1) / g->SW + 1;
    if (*hi > g->OW) *hi = g->OW;
    if (*lo > *hi) *lo = *hi;
}

/* The spans of every kernel column j < KW (cv_cols), computed once per
 * call of a kernel instead of once per row (each takes two divisions):
 * at most CV_KW_MAX columns, the rest computed on use. */
#define CV_KW_MAX 16
typedef struct cv_spans {
    int64_t iw0[CV_KW_MAX], lo[CV_KW_MAX], hi[CV_KW_MAX];
} cv_spans;

static void cv_spans_init(const cv_geom *g, cv_spans *s) {
    for (int64_t j = 0; j < g->KW && j < CV_KW_MAX; j++) cv_cols(g, j, &s->iw0[j], &s->lo[j], &s->hi[j]);
}

static inline void cv_span(const cv_geom *g, const cv_spans *s, int64_t j, int64_t *iw0,
                           int64_t *lo, int64_t *hi) {
    if (j < CV_KW_MAX) {
        *iw0 = s->iw0[j], *lo = s->lo[j], *hi = s->hi[j];
        return;
    }
    cv_cols(g, j, iw0, lo, hi);
}

/* 1 if the AVX-512 row paths may run: the CPU has AVX-512F, the context
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

#if CV_X86
/* The first n lanes (0 <= n <= 16). */
CV512_INLINE static __mmask16 cv_m16(int64_t n) { return (__mmask16)((1u << n) - 1u); }

/* How 16 columns q0 .. q0 + 15 of kernel column j meet an input row,
 * computed once per (j, q0) and used for every row: columns a .. b - 1
 * ([a, b) = [lo, hi) within the 16) read the row's elements off, off + SW,
 * ... (off = a SW + iw0, inside the row); they sit in lanes sh .. of the
 * 16 (sh = a - q0). */
typedef struct cv_rowplan {
    int64_t off, SW;
    int kind;         /* 0: no column inside; 1: SW 1; 2: SW 2; 3: another stride */
    __mmask16 m0, m1; /* the loads' lanes (m1: the second load of SW 2) */
    __mmask16 mx;     /* lanes sh .. sh + n - 1 when sh > 0 (expand / compress), else 0 */
    int n;            /* b - a */
} cv_rowplan;

CV512_INLINE static cv_rowplan cv_plan(int64_t SW, int64_t iw0, int64_t q0, int64_t lo,
                                       int64_t hi) {
    cv_rowplan r;
    const int64_t a = lo > q0 ? lo : q0, b = hi < q0 + 16 ? hi : q0 + 16;
    r.SW = SW;
    r.off = a * SW + iw0;
    r.kind = b <= a ? 0 : SW == 1 ? 1 : SW == 2 ? 2 : 3;
    r.n = b > a ? (int)(b - a) : 0;
    r.m0 = r.m1 = r.mx = 0;
    if (!r.kind) return r;
    if (r.kind == 2) {
        const int64_t span = 2 * (int64_t)r.n - 1; /* elements off .. off + 2 (n - 1) */
        r.m0 = cv_m16(span < 16 ? span : 16);
        r.m1 = span > 16 ? cv_m16(span - 16) : 0;
    } else {
        r.m0 = cv_m16(r.n);
    }
    if (a > q0) r.mx = (__mmask16)(cv_m16(r.n) << (a - q0));
    return r;
}

/* Lanes t of the result: the row's element (q0 + t) SW + iw0 for q0 + t in
 * [lo, hi), else 0 (ur: the input row). */
CV512_INLINE static __m512 cv_get(const cv_rowplan *r, const float *ur) {
    if (!r->kind) return _mm512_setzero_ps();
    const float *s = ur + r->off;
    __m512 x;
    if (r->kind == 1) {
        x = _mm512_maskz_loadu_ps(r->m0, s);
    } else if (r->kind == 2) {
        const __m512 x0 = _mm512_maskz_loadu_ps(r->m0, s);
        const __m512 x1 = r->m1 ? _mm512_maskz_loadu_ps(r->m1, s + 16) : _mm512_setzero_ps();
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                               28, 30);
        x = _mm512_permutex2var_ps(x0, even, x1);
    } else {
        const __m512i idx = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32((int)r->SW));
        x = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), r->m0, idx, s, 4);
    }
    /* lanes 0 .. n - 1 hold columns a .. b - 1: move them to lanes sh .. */
    return r->mx ? _mm512_maskz_expand_ps(r->mx, x) : x;
}

/* The adjoint of cv_get: the row's element (q0 + t) SW + iw0 += lane t of x
 * for q0 + t in [lo, hi). */
CV512_INLINE static void cv_add(const cv_rowplan *r, float *ur, __m512 x) {
    if (!r->kind) return;
    float *d = ur + r->off;
    if (r->mx) x = _mm512_maskz_compress_ps(r->mx, x);
    if (r->kind == 1) {
        _mm512_mask_storeu_ps(d, r->m0, _mm512_add_ps(_mm512_maskz_loadu_ps(r->m0, d), x));
    } else if (r->kind == 2) {
        /* lanes 0-7 of x to the even lanes of e0, lanes 8-15 to those of e1 */
        const __mmask16 m0 = (__mmask16)(0x5555 & r->m0);
        const __m512 e0 = _mm512_maskz_expand_ps(0x5555, x);
        _mm512_mask_storeu_ps(d, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, d), e0));
        if (r->m1) {
            const __mmask16 m1 = (__mmask16)(0x5555 & r->m1);
            const __m512 e1 = _mm512_maskz_expand_ps(
                0x5555, _mm512_shuffle_f32x4(x, x, _MM_SHUFFLE(3, 2, 3, 2)));
            _mm512_mask_storeu_ps(d + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, d + 16), e1));
        }
    } else {
        float t[16];
        _mm512_storeu_ps(t, x);
        for (int k = 0; k < r->n; k++) d[k * r->SW] += t[k];
    }
}
#endif

/* ---- chunks of images ------------------------------------------------------------------- */

/* The products run on chunks of nb images at once: for group gi of images
 * n0 .. n0 + nb - 1 the im2col matrices sit side by side in col [K, nb P]
 * (column j P + p is position p of image n0 + j), so one GEMM of inner or
 * outer size nb P replaces nb small ones (7x7 maps have P = 49). The
 * workspace holds col and the matching [O/G, nb P] block of outputs (or
 * output gradients), (K + O/G) P floats per image, at most CV_WS_FLOATS
 * floats (4 MiB) unless one image needs more. */
#define CV_WS_FLOATS ((int64_t)1 << 18)

static int64_t cv_chunk(const cv_geom *g) {
    const int64_t K = g->C / g->G * g->KH * g->KW, Og = g->O / g->G, P = g->OH * g->OW;
    int64_t nb = CV_WS_FLOATS / ((K + Og) * P);
    if (nb < 1) nb = 1;
    if (nb > g->N) nb = g->N;
    return nb;
}

#if CV_X86
/* cv_im2col with AVX-512 rows. */
CV512 static void cv_im2col512(const cv_geom *g, const float *u, int64_t nb, float *col, int nt) {
    const int64_t Cg = g->C / g->G, KK = g->KH * g->KW, P = g->OH * g->OW, R = Cg * KK;
    const int64_t HW = g->H * g->W, ld = nb * P, OW = g->OW;
    (void)nt;
    cv_spans sp;
    cv_spans_init(g, &sp);
    ATTN__OMP_FOR(nt)
    for (int64_t r = 0; r < R; r++) {
        const int64_t c = r / KK, i = (r % KK) / g->KW, j = r % g->KW;
        int64_t iw0, lo, hi;
        cv_span(g, &sp, j, &iw0, &lo, &hi);
        for (int64_t q0 = 0; q0 < OW; q0 += 16) {
            const cv_rowplan rp = cv_plan(g->SW, iw0, q0, lo, hi);
            const __mmask16 ms = q0 + 16 <= OW ? (__mmask16)0xFFFF : cv_m16(OW - q0);
            for (int64_t b = 0; b < nb; b++) {
                const float *up = u + b * g->C * HW + c * HW;
                float *d = col + r * ld + b * P + q0;
                for (int64_t p = 0; p < g->OH; p++, d += OW) {
                    const int64_t ih = p * g->SH - g->PH + i * g->DH;
                    const __m512 x = ih >= 0 && ih < g->H ? cv_get(&rp, up + ih * g->W)
                                                          : _mm512_setzero_ps();
                    _mm512_mask_storeu_ps(d, ms, x);
                }
            }
        }
    }
}

/* cv_col2im for rows of at most 16 columns (W, OW <= 16: the 14x14 and 7x7
 * maps): each du row is summed in a register over the taps that reach it,
 * k in order (a permutation moves tap j's column q to du's column
 * q SW + iw0, a mask keeps the columns it reaches), and stored once: the
 * scalar loop's additions in its order (the same bits), without a store
 * and reload of du per tap. */
CV512 static void cv_col2im512_narrow(const cv_geom *g, const float *col, int64_t nb, float *du,
                                      int nt) {
    const int64_t Cg = g->C / g->G, KK = g->KH * g->KW, P = g->OH * g->OW;
    const int64_t HW = g->H * g->W, ld = nb * P, OW = g->OW, W = g->W;
    __m512i idx[CV_KW_MAX];
    __mmask16 val[CV_KW_MAX];
    for (int64_t j = 0; j < g->KW; j++) {
        int64_t iw0, lo, hi;
        cv_cols(g, j, &iw0, &lo, &hi);
        /* lane x of du takes lane q = (x - iw0) / SW of the tap's row, for
         * x - iw0 a multiple of SW and q in [lo, hi) */
        int32_t ix[16];
        unsigned m = 0;
        for (int64_t x = 0; x < 16; x++) {
            const int64_t t = x - iw0;
            ix[x] = 0;
            if (x < W && t >= 0 && t % g->SW == 0 && t / g->SW >= lo && t / g->SW < hi) {
                ix[x] = (int32_t)(t / g->SW);
                m |= 1u << x;
            }
        }
        idx[j] = _mm512_loadu_si512(ix);
        val[j] = (__mmask16)m;
    }
    const __mmask16 mw = cv_m16(W), mo = cv_m16(OW);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t c = 0; c < Cg; c++)
        for (int64_t b = 0; b < nb; b++) {
            float *up = du + b * g->C * HW + c * HW;
            const float *src = col + c * KK * ld + b * P;
            for (int64_t h = 0; h < g->H; h++) {
                __m512 acc = _mm512_maskz_loadu_ps(mw, up + h * W);
                for (int64_t i = 0; i < g->KH; i++) {
                    const int64_t t = h + g->PH - i * g->DH;
                    if (t < 0 || t % g->SH) continue;
                    const int64_t p = t / g->SH;
                    if (p >= g->OH) continue;
                    const float *s = src + i * g->KW * ld + p * OW;
                    for (int64_t j = 0; j < g->KW; j++, s += ld)
                        acc = _mm512_mask_add_ps(
                            acc, val[j], acc,
                            _mm512_permutexvar_ps(idx[j], _mm512_maskz_loadu_ps(mo, s)));
                }
                _mm512_mask_storeu_ps(up + h * W, mw, acc);
            }
        }
}

/* cv_col2im with AVX-512 rows (the same sums in the same order). */
CV512 static void cv_col2im512(const cv_geom *g, const float *col, int64_t nb, float *du, int nt) {
    const int64_t Cg = g->C / g->G, KK = g->KH * g->KW, P = g->OH * g->OW;
    const int64_t HW = g->H * g->W, ld = nb * P, OW = g->OW;
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
                /* rows in order, and within a row the chunks: every element
                 * of du receives its terms in the scalar loop's order */
                if (OW <= 16) {
                    const cv_rowplan rp = cv_plan(g->SW, iw0, 0, lo, hi);
                    const __mmask16 ms = cv_m16(OW);
                    for (int64_t p = 0; p < g->OH; p++) {
                        const int64_t ih = p * g->SH - g->PH + i * g->DH;
                        if (ih < 0 || ih >= g->H) continue;
                        cv_add(&rp, up + ih * g->W, _mm512_maskz_loadu_ps(ms, src + p * OW));
                    }
                    continue;
                }
                for (int64_t p = 0; p < g->OH; p++) {
                    const int64_t ih = p * g->SH - g->PH + i * g->DH;
                    if (ih < 0 || ih >= g->H) continue;
                    float *ur = up + ih * g->W;
                    const float *s = src + p * OW;
                    for (int64_t q0 = lo / 16 * 16; q0 < hi; q0 += 16) {
                        const cv_rowplan rp = cv_plan(g->SW, iw0, q0, lo, hi);
                        const __m512 x = q0 + 16 <= OW ? _mm512_loadu_ps(s + q0)
                                                       : _mm512_maskz_loadu_ps(cv_m16(OW - q0), s + q0);
                        cv_add(&rp, ur, x);
                    }
                }
            }
        }
}
#endif

/* col [K, nb P] of the Cg planes of nb images (u: image n0's first plane of
 * the group; images C H W floats apart):
 * col[(c KH + i) KW + j, b P + p OW + q] = u_b[c, p SH - PH + i DH, q SW - PW + j DW] or 0. */
static void cv_im2col(const cv_geom *g, const float *u, int64_t nb, float *col, int nt) {
#if CV_X86
    if (g->vec) {
        cv_im2col512(g, u, nb, col, nt);
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
 * adjoint). Each task owns one channel plane of every image and walks its
 * KH KW rows in order: no race, and the same sums for any thread count. */
static void cv_col2im(const cv_geom *g, const float *col, int64_t nb, float *du, int nt) {
#if CV_X86
    if (g->vec && g->W <= 16 && g->OW <= 16 && g->KW <= CV_KW_MAX) {
        cv_col2im512_narrow(g, col, nb, du, nt);
        return;
    }
    if (g->vec) {
        cv_col2im512(g, col, nb, du, nt);
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

/* ---- depthwise: a direct kernel ------------------------------------------------------------ */

/* One input and one output channel per group (G = C = O): each group's
 * product would have a single row, so the three primitives run directly on
 * the planes instead. Each task owns whole planes (forward, data gradient)
 * or whole channels (weight gradient, images in order): no races, the same
 * bits for any thread count. */
static int cv_depthwise(const cv_geom *g) { return g->G == g->C && g->G == g->O && g->G > 1; }

static void cv_add_bias(int64_t N, int64_t O, int64_t P, const float *b, float *v);

#if CV_X86
/* cv_dw_forward with AVX-512 rows: 16 outputs of a row in a register,
 * summed over i, j in order with fused multiply-adds. flip: use the kernel
 * turned by 180 degrees, w[c, KH-1-i, KW-1-j] (the data gradient below). */
CV512 static void cv_dw_forward512(const cv_geom *g, const float *u, const float *w, float *v,
                                   float beta, int flip, int nt) {
    const int64_t KK = g->KH * g->KW, P = g->OH * g->OW, HW = g->H * g->W, OW = g->OW;
    (void)nt;
    cv_spans sp;
    cv_spans_init(g, &sp);
    ATTN__OMP_FOR(nt)
    for (int64_t pl = 0; pl < g->N * g->C; pl++) {
        const int64_t c = pl % g->C;
        const float *up = u + pl * HW, *wc = w + c * KK;
        float *vp = v + pl * P;
        for (int64_t q0 = 0; q0 < OW; q0 += 16) {
            cv_rowplan rp[CV_KW_MAX]; /* KW <= CV_KW_MAX on this path (cv_dw_forward) */
            for (int64_t j = 0; j < g->KW; j++) {
                int64_t iw0, lo, hi;
                cv_span(g, &sp, j, &iw0, &lo, &hi);
                rp[j] = cv_plan(g->SW, iw0, q0, lo, hi);
            }
            const __mmask16 m = q0 + 16 <= OW ? (__mmask16)0xFFFF : cv_m16(OW - q0);
            /* four output rows at once: four independent chains of FMAs */
            for (int64_t p0 = 0; p0 < g->OH; p0 += 4) {
                __m512 acc[4];
                for (int k = 0; k < 4; k++) acc[k] = _mm512_setzero_ps();
                for (int64_t i = 0; i < g->KH; i++) {
                    const float *ur[4];
                    for (int k = 0; k < 4; k++) {
                        const int64_t ih = (p0 + k) * g->SH - g->PH + i * g->DH;
                        ur[k] = p0 + k < g->OH && ih >= 0 && ih < g->H ? up + ih * g->W : NULL;
                    }
                    const float *wr = flip ? wc + (g->KH - 1 - i) * g->KW : wc + i * g->KW;
                    for (int64_t j = 0; j < g->KW; j++) {
                        const __m512 wij = _mm512_set1_ps(flip ? wr[g->KW - 1 - j] : wr[j]);
#pragma GCC unroll 4
                        for (int k = 0; k < 4; k++)
                            if (ur[k]) acc[k] = _mm512_fmadd_ps(wij, cv_get(&rp[j], ur[k]), acc[k]);
                    }
                }
                for (int k = 0; k < 4 && p0 + k < g->OH; k++) {
                    float *vr = vp + (p0 + k) * OW + q0;
                    __m512 a = acc[k];
                    if (beta != 0.0f) a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(m, vr));
                    _mm512_mask_storeu_ps(vr, m, a);
                }
            }
        }
    }
}

/* The permutations that take a whole input row (at most 16 columns, one
 * register) to kernel column j's view of it: lane q takes column
 * q SW + iw0 for q in [lo, hi), and 0 outside (val[j] keeps those lanes). */
CV512_INLINE static void cv_narrow_perm(const cv_geom *g, __m512i *idx, __mmask16 *val) {
    for (int64_t j = 0; j < g->KW; j++) {
        int64_t iw0, lo, hi;
        cv_cols(g, j, &iw0, &lo, &hi);
        int32_t ix[16];
        unsigned m = 0;
        for (int64_t q = 0; q < 16; q++) {
            ix[q] = 0;
            if (q >= lo && q < hi) {
                ix[q] = (int32_t)(q * g->SW + iw0);
                m |= 1u << q;
            }
        }
        idx[j] = _mm512_loadu_si512(ix);
        val[j] = (__mmask16)m;
    }
}

/* 1 if the narrow depthwise kernels apply: rows of at most 16 columns. */
static int cv_dw_narrow(const cv_geom *g) {
    return g->W <= 16 && g->OW <= 16 && g->KW <= CV_KW_MAX && g->KH * g->KW <= 64;
}

/* cv_dw_forward512 for rows of at most 16 columns: each input row is loaded
 * once into a register and each tap's view of it is one permutation. */
CV512 static void cv_dw_forward512_narrow(const cv_geom *g, const float *u, const float *w,
                                          const float *b, float *v, float beta, int flip, int nt) {
    const int64_t KK = g->KH * g->KW, P = g->OH * g->OW, HW = g->H * g->W, OW = g->OW;
    __m512i idx[CV_KW_MAX];
    __mmask16 val[CV_KW_MAX];
    cv_narrow_perm(g, idx, val);
    const __mmask16 mw = cv_m16(g->W), mo = cv_m16(OW);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t pl = 0; pl < g->N * g->C; pl++) {
        const int64_t c = pl % g->C;
        const float *up = u + pl * HW, *wc = w + c * KK;
        float *vp = v + pl * P;
        for (int64_t p0 = 0; p0 < g->OH; p0 += 4) {
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int64_t i = 0; i < g->KH; i++) {
                __m512 r[4];
                for (int k = 0; k < 4; k++) {
                    const int64_t ih = (p0 + k) * g->SH - g->PH + i * g->DH;
                    r[k] = p0 + k < g->OH && ih >= 0 && ih < g->H
                               ? _mm512_maskz_loadu_ps(mw, up + ih * g->W)
                               : _mm512_setzero_ps();
                }
                const float *wr = flip ? wc + (g->KH - 1 - i) * g->KW : wc + i * g->KW;
                for (int64_t j = 0; j < g->KW; j++) {
                    const __m512 wij = _mm512_set1_ps(flip ? wr[g->KW - 1 - j] : wr[j]);
                    a0 = _mm512_fmadd_ps(wij, _mm512_maskz_permutexvar_ps(val[j], idx[j], r[0]), a0);
                    a1 = _mm512_fmadd_ps(wij, _mm512_maskz_permutexvar_ps(val[j], idx[j], r[1]), a1);
                    a2 = _mm512_fmadd_ps(wij, _mm512_maskz_permutexvar_ps(val[j], idx[j], r[2]), a2);
                    a3 = _mm512_fmadd_ps(wij, _mm512_maskz_permutexvar_ps(val[j], idx[j], r[3]), a3);
                }
            }
            const __m512 acc[4] = {a0, a1, a2, a3};
            for (int k = 0; k < 4 && p0 + k < g->OH; k++) {
                float *vr = vp + (p0 + k) * OW;
                __m512 a = acc[k];
                if (b) a = _mm512_add_ps(a, _mm512_set1_ps(b[c]));
                if (beta != 0.0f) a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(mo, vr));
                _mm512_mask_storeu_ps(vr, mo, a);
            }
        }
    }
}

/* cv_dw_bwd_weight512 for rows of at most 16 columns: per channel, image
 * and tap, the products of the rows summed lane by lane in float in two
 * accumulators (even and odd output rows, added at the end), then lane by
 * lane over the images in order in double, and the 16 lanes in order at
 * the end; each input row is one load and one permutation. */
CV512 static void cv_dw_bwd_weight512_narrow(const cv_geom *g, const float *u, const float *dv,
                                             float *dw, int nt) {
    const int64_t KK = g->KH * g->KW, P = g->OH * g->OW, HW = g->H * g->W, OW = g->OW;
    __m512i idx[CV_KW_MAX];
    __mmask16 val[CV_KW_MAX];
    cv_narrow_perm(g, idx, val);
    const __mmask16 mw = cv_m16(g->W), mo = cv_m16(OW);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t i = 0; i < g->KH; i++) {
            /* the output rows p whose kernel row i lies inside the image */
            int64_t p0 = 0, p1 = g->OH;
            while (p0 < p1 && p0 * g->SH - g->PH + i * g->DH < 0) p0++;
            while (p1 > p0 && (p1 - 1) * g->SH - g->PH + i * g->DH >= g->H) p1--;
            for (int64_t j = 0; j < g->KW; j++) {
                __m512d d0 = _mm512_setzero_pd(), d1 = d0; /* the 16 lanes in double */
                for (int64_t n = 0; n < g->N; n++) {
                    const float *up = u + (n * g->C + c) * HW; /* row of p: p SH - PH + i DH */
                    const int64_t r0i = i * g->DH - g->PH;
                    const float *dvp = dv + (n * g->C + c) * P;
                    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
                    int64_t p = p0;
                    for (; p + 1 < p1; p += 2) {
                        const __m512 r0 = _mm512_maskz_loadu_ps(mw, up + (p * g->SH + r0i) * g->W);
                        const __m512 r1 = _mm512_maskz_loadu_ps(mw, up + ((p + 1) * g->SH + r0i) * g->W);
                        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mo, dvp + p * OW),
                                             _mm512_maskz_permutexvar_ps(val[j], idx[j], r0), s0);
                        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mo, dvp + (p + 1) * OW),
                                             _mm512_maskz_permutexvar_ps(val[j], idx[j], r1), s1);
                    }
                    if (p < p1) {
                        const __m512 r0 = _mm512_maskz_loadu_ps(mw, up + (p * g->SH + r0i) * g->W);
                        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mo, dvp + p * OW),
                                             _mm512_maskz_permutexvar_ps(val[j], idx[j], r0), s0);
                    }
                    const __m512 sf = _mm512_add_ps(s0, s1);
                    d0 = _mm512_add_pd(d0, _mm512_cvtps_pd(_mm512_castps512_ps256(sf)));
                    d1 = _mm512_add_pd(d1, _mm512_cvtps_pd(_mm256_castpd_ps(
                                               _mm512_extractf64x4_pd(_mm512_castps_pd(sf), 1))));
                }
                double f[16], acc = 0.0;
                _mm512_storeu_pd(f, d0);
                _mm512_storeu_pd(f + 8, d1);
                for (int k = 0; k < 16; k++) acc += f[k];
                dw[c * KK + i * g->KW + j] += (float)acc;
            }
        }
}

/* cv_dw_bwd_data with AVX-512 rows (the scalar loop's products and sums). */
CV512 static void cv_dw_bwd_data512(const cv_geom *g, const float *dv, const float *w, float *du,
                                    int nt) {
    const int64_t KK = g->KH * g->KW, P = g->OH * g->OW, HW = g->H * g->W, OW = g->OW;
    (void)nt;
    cv_spans sp;
    cv_spans_init(g, &sp);
    ATTN__OMP_FOR(nt)
    for (int64_t pl = 0; pl < g->N * g->C; pl++) {
        const int64_t c = pl % g->C;
        const float *dvp = dv + pl * P, *wc = w + c * KK;
        float *dup = du + pl * HW;
        for (int64_t i = 0; i < g->KH; i++)
            for (int64_t j = 0; j < g->KW; j++) {
                const __m512 wij = _mm512_set1_ps(wc[i * g->KW + j]);
                int64_t iw0, lo, hi;
                cv_span(g, &sp, j, &iw0, &lo, &hi);
                const cv_rowplan rp1 = cv_plan(g->SW, iw0, 0, lo, hi); /* OW <= 16 */
                for (int64_t p = 0; p < g->OH; p++) {
                    const int64_t ih = p * g->SH - g->PH + i * g->DH;
                    if (ih < 0 || ih >= g->H) continue;
                    float *ur = dup + ih * g->W;
                    const float *vr = dvp + p * OW;
                    for (int64_t q0 = lo / 16 * 16; q0 < hi; q0 += 16) {
                        const cv_rowplan rp = OW <= 16 ? rp1 : cv_plan(g->SW, iw0, q0, lo, hi);
                        const __m512 x = q0 + 16 <= OW ? _mm512_loadu_ps(vr + q0)
                                                       : _mm512_maskz_loadu_ps(cv_m16(OW - q0), vr + q0);
                        cv_add(&rp, ur, _mm512_mul_ps(wij, x));
                    }
                }
            }
    }
}

/* cv_dw_bwd_weight with AVX-512 rows: per channel and image, each dv row
 * is loaded once and multiplied with the input rows of all KH KW taps
 * (one accumulator per tap: independent chains); per image the products
 * are summed lane by lane in float (16-column chunks, rows in order), then
 * across lanes and images in order in double. KH KW <= CV_KK_MAX. */
#define CV_KK_MAX 64
CV512 static void cv_dw_bwd_weight512(const cv_geom *g, const float *u, const float *dv, float *dw,
                                      int nt) {
    const int64_t KK = g->KH * g->KW, P = g->OH * g->OW, HW = g->H * g->W, OW = g->OW;
    (void)nt;
    cv_spans sp;
    cv_spans_init(g, &sp);
    ATTN__OMP_FOR(nt)
    for (int64_t c = 0; c < g->C; c++) {
        double acc[CV_KK_MAX];
        for (int64_t t = 0; t < KK; t++) acc[t] = 0.0;
        for (int64_t n = 0; n < g->N; n++) {
            const float *up = u + (n * g->C + c) * HW, *dvp = dv + (n * g->C + c) * P;
            __m512 s[CV_KK_MAX];
            for (int64_t t = 0; t < KK; t++) s[t] = _mm512_setzero_ps();
            for (int64_t q0 = 0; q0 < OW; q0 += 16) {
                cv_rowplan rp[CV_KW_MAX];
                for (int64_t j = 0; j < g->KW; j++) {
                    int64_t iw0, lo, hi;
                    cv_span(g, &sp, j, &iw0, &lo, &hi);
                    rp[j] = cv_plan(g->SW, iw0, q0, lo, hi);
                }
                const __mmask16 m = q0 + 16 <= OW ? (__mmask16)0xFFFF : cv_m16(OW - q0);
                for (int64_t p = 0; p < g->OH; p++) {
                    const __m512 x = _mm512_maskz_loadu_ps(m, dvp + p * OW + q0);
                    for (int64_t i = 0; i < g->KH; i++) {
                        const int64_t ih = p * g->SH - g->PH + i * g->DH;
                        if (ih < 0 || ih >= g->H) continue;
                        const float *ur = up + ih * g->W;
                        __m512 *si = s + i * g->KW;
                        for (int64_t j = 0; j < g->KW; j++)
                            si[j] = _mm512_fmadd_ps(x, cv_get(&rp[j], ur), si[j]);
                    }
                }
            }
            for (int64_t t = 0; t < KK; t++) {
                float f[16];
                _mm512_storeu_ps(f, s[t]);
                double r = 0.0;
                for (int k = 0; k < 16; k++) r += (double)f[k];
                acc[t] += r;
            }
        }
        for (int64_t t = 0; t < KK; t++) dw[c * KK + t] += (float)acc[t];
    }
}
#endif

/* v[n,c] (beta 0: =, 1: +=) sum_{i,j} w[c,i,j] u[n,c, p SH - PH + i DH, q SW - PW + j DW] */
static void cv_dw_forward(attn_ctx *ctx, const cv_geom *g, const float *u, const float *w,
                          const float *b, float *v, float beta) {
    const int64_t KK = g->KH * g->KW, P = g->OH * g->OW, HW = g->H * g->W;
    const int nt = attn__threads_for(ctx, 2.0 * (double)(g->N * g->C) * (double)P * (double)KK);
#if CV_X86
    if (g->vec && cv_dw_narrow(g)) {
        cv_dw_forward512_narrow(g, u, w, b, v, beta, 0, nt);
        return;
    }
    if (g->vec && g->KW <= CV_KW_MAX) {
        cv_dw_forward512(g, u, w, v, beta, 0, nt);
        if (b) cv_add_bias(g->N, g->O, P, b, v);
        return;
    }
#endif
    (void)nt;
    cv_spans sp;
    cv_spans_init(g, &sp);
    ATTN__OMP_FOR(nt)
    for (int64_t pl = 0; pl < g->N * g->C; pl++) {
        const int64_t c = pl % g->C;
        const float *up = u + pl * HW, *wc = w + c * KK;
        float *vp = v + pl * P;
        if (beta == 0.0f) memset(vp, 0, sizeof(float) * (size_t)P);
        for (int64_t i = 0; i < g->KH; i++)
            for (int64_t j = 0; j < g->KW; j++) {
                const float wij = wc[i * g->KW + j];
                int64_t iw0, lo, hi;
                cv_span(g, &sp, j, &iw0, &lo, &hi);
                for (int64_t p = 0; p < g->OH; p++) {
                    const int64_t ih = p * g->SH - g->PH + i * g->DH;
                    if (ih < 0 || ih >= g->H) continue;
                    const float *restrict ur = up + ih * g->W;
                    float *restrict vr = vp + p * g->OW;
                    if (g->SW == 1)
                        for (int64_t q = lo; q < hi; q++) vr[q] += wij * ur[q + iw0];
                    else
                        for (int64_t q = lo; q < hi; q++) vr[q] += wij * ur[q * g->SW + iw0];
                }
            }
    }
    if (b) cv_add_bias(g->N, g->O, P, b, v);
}

/* du[n,c, ih, iw] += w[c,i,j] dv[n,c,p,q] (the forward's adjoint) */
static void cv_dw_bwd_data(attn_ctx *ctx, const cv_geom *g, const float *dv, const float *w,
                           float *du) {
    const int64_t KK = g->KH * g->KW, P = g->OH * g->OW, HW = g->H * g->W;
    const int nt = attn__threads_for(ctx, 2.0 * (double)(g->N * g->C) * (double)P * (double)KK);
#if CV_X86
    /* stride 1 and padding within the dilated kernel: du is the correlation
     * of dv, padded by DH (KH - 1) - PH and DW (KW - 1) - PW, with the
     * turned kernel: the forward's kernel, sums in registers */
    const int64_t fph = g->DH * (g->KH - 1) - g->PH, fpw = g->DW * (g->KW - 1) - g->PW;
    if (g->vec && g->SH == 1 && g->SW == 1 && fph >= 0 && fpw >= 0 && g->KW <= CV_KW_MAX) {
        cv_geom f = *g;
        f.H = g->OH, f.W = g->OW, f.OH = g->H, f.OW = g->W, f.PH = fph, f.PW = fpw;
        if (cv_dw_narrow(&f))
            cv_dw_forward512_narrow(&f, dv, w, NULL, du, 1.0f, 1, nt);
        else
            cv_dw_forward512(&f, dv, w, du, 1.0f, 1, nt);
        return;
    }
    if (g->vec) {
        cv_dw_bwd_data512(g, dv, w, du, nt);
        return;
    }
#endif
    (void)nt;
    cv_spans sp;
    cv_spans_init(g, &sp);
    ATTN__OMP_FOR(nt)
    for (int64_t pl = 0; pl < g->N * g->C; pl++) {
        const int64_t c = pl % g->C;
        const float *dvp = dv + pl * P, *wc = w + c * KK;
        float *dup = du + pl * HW;
        for (int64_t i = 0; i < g->KH; i++)
            for (int64_t j = 0; j < g->KW; j++) {
                const float wij = wc[i * g->KW + j];
                int64_t iw0, lo, hi;
                cv_span(g, &sp, j, &iw0, &lo, &hi);
                for (int64_t p = 0; p < g->OH; p++) {
                    const int64_t ih = p * g->SH - g->PH + i * g->DH;
                    if (ih < 0 || ih >= g->H) continue;
                    float *restrict ur = dup + ih * g->W;
                    const float *restrict vr = dvp + p * g->OW;
                    if (g->SW == 1)
                        for (int64_t q = lo; q < hi; q++) ur[q + iw0] += wij * vr[q];
                    else
                        for (int64_t q = lo; q < hi; q++) ur[q * g->SW + iw0] += wij * vr[q];
                }
            }
    }
}

/* dw[c,i,j] += sum_{n,p,q} dv[n,c,p,q] u[n,c, ih, iw]: each row's products in
 * float, rows and images in order in double. */
static void cv_dw_bwd_weight(attn_ctx *ctx, const cv_geom *g, const float *u, const float *dv,
                             float *dw) {
    const int64_t KK = g->KH * g->KW, P = g->OH * g->OW, HW = g->H * g->W;
    const int nt = attn__threads_for(ctx, 2.0 * (double)(g->N * g->C) * (double)P * (double)KK);
#if CV_X86
    if (g->vec && cv_dw_narrow(g)) {
        cv_dw_bwd_weight512_narrow(g, u, dv, dw, nt);
        return;
    }
    if (g->vec && g->KW <= CV_KW_MAX && KK <= CV_KK_MAX) {
        cv_dw_bwd_weight512(g, u, dv, dw, nt);
        return;
    }
#endif
    (void)nt;
    cv_spans sp;
    cv_spans_init(g, &sp);
    ATTN__OMP_FOR(nt)
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t i = 0; i < g->KH; i++)
            for (int64_t j = 0; j < g->KW; j++) {
                int64_t iw0, lo, hi;
                cv_span(g, &sp, j, &iw0, &lo, &hi);
                double acc = 0.0;
                for (int64_t n = 0; n < g->N; n++) {
                    const float *up = u + (n * g->C + c) * HW, *dvp = dv + (n * g->C + c) * P;
                    for (int64_t p = 0; p < g->OH; p++) {
                        const int64_t ih = p * g->SH - g->PH + i * g->DH;
                        if (ih < 0 || ih >= g->H) continue;
                        const float *ur = up + ih * g->W, *vr = dvp + p * g->OW;
                        float r = 0.0f;
                        for (int64_t q = lo; q < hi; q++) r += vr[q] * ur[q * g->SW + iw0];
                        acc += r;
                    }
                }
                dw[c * KK + i * g->KW + j] += (float)acc;
            }
}

/* ---- the primitives ------------------------------------------------------------------------ */

/* v[n, o, :] += b[o] over an [N, O, P] tensor. */
static void cv_add_bias(int64_t N, int64_t O, int64_t P, const float *b, float *v) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++) {
            float *vr = v + (n * O + o) * P;
            const float bo = b[o];
            for (int64_t p = 0; p < P; p++) vr[p] += bo;
        }
}

/* v = conv(u, w) (beta 0) or v += conv(u, w) (beta 1); bias b[O] or NULL.
 * ws: the workspace (cv_chunk images), NULL on the pointwise path. */
static attn_status cv_forward(attn_ctx *ctx, const cv_geom *g, const float *u, const float *w,
                              const float *b, float *v, float beta, float *ws) {
    const int64_t Cg = g->C / g->G, Og = g->O / g->G, K = Cg * g->KH * g->KW;
    const int64_t P = g->OH * g->OW, HW = g->H * g->W;
    if (cv_depthwise(g)) {
        cv_dw_forward(ctx, g, u, w, b, v, beta);
    } else if (cv_pointwise(g)) {
        const int nt = attn__threads_for(ctx, 2.0 * (double)Og * (double)K * (double)P);
        for (int64_t n = 0; n < g->N; n++)
            for (int64_t gi = 0; gi < g->G; gi++)
                attn__sgemm(nt, 0, 0, Og, P, K, 1.0f, w + gi * Og * K, K,
                            u + (n * g->C + gi * Cg) * HW, P, beta, v + (n * g->O + gi * Og) * P, P);
        if (b) cv_add_bias(g->N, g->O, P, b, v);
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

/* The backward of v = conv(u, w): du += conv^T(dv, w) (du NULL: not
 * wanted) and dw += dv (im2col u)^T (dw NULL: not wanted), chunks in order.
 * Per chunk and group the output gradient is gathered once into D; dw
 * takes D col^T with col = im2col(u); then col is overwritten with
 * w_g^T D, which col2im adds into du. */
static attn_status cv_backward(attn_ctx *ctx, const cv_geom *g, const float *u, const float *dv,
                               const float *w, float *du, float *dw, float *ws) {
    const int64_t Cg = g->C / g->G, Og = g->O / g->G, K = Cg * g->KH * g->KW;
    const int64_t P = g->OH * g->OW, HW = g->H * g->W;
    if (cv_depthwise(g)) {
        if (du) cv_dw_bwd_data(ctx, g, dv, w, du);
        if (dw) cv_dw_bwd_weight(ctx, g, u, dv, dw);
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
    for (int64_t n0 = 0; n0 < g->N; n0 += nb) {
        const int64_t m = g->N - n0 < nb ? g->N - n0 : nb, ld = m * P;
        float *col = ws, *D = ws + K * ld;
        const int nt = attn__threads_for(ctx, 2.0 * (double)Og * (double)K * (double)ld);
        const int nti = attn__threads_for(ctx, (double)K * (double)ld);
        for (int64_t gi = 0; gi < g->G; gi++) {
            cv_gather(g, dv + (n0 * g->O + gi * Og) * P, m, D);
            if (dw) {
                cv_im2col(g, u + (n0 * g->C + gi * Cg) * HW, m, col, nti);
                /* dw_g [Og, K] += D [Og, m P] col^T [m P, K] */
                attn__sgemm(nt, 0, 1, Og, K, ld, 1.0f, D, ld, col, ld, 1.0f, dw + gi * Og * K, K);
            }
            if (du) {
                /* dcol [K, m P] = w_g^T [K, Og] D [Og, m P] */
                attn__sgemm(nt, 1, 0, K, ld, Og, 1.0f, w + gi * Og * K, K, D, ld, 0.0f, col, ld);
                cv_col2im(g, col, m, du + (n0 * g->C + gi * Cg) * HW, nti);
            }
        }
    }
    return ATTN_OK;
}

/* du += conv^T(dv, w) alone (conv_transpose2d's forward). */
static attn_status cv_bwd_data(attn_ctx *ctx, const cv_geom *g, const float *dv, const float *w,
                               float *du, float *ws) {
    return cv_backward(ctx, g, NULL, dv, w, du, NULL, ws);
}

/* The backward of conv_transpose2d, v = conv^T(u', w) read the other way:
 * with u = the output gradient gy (the convolution's input side) and v = x,
 * dx += conv(gy, w) (dx NULL: not wanted) and dw += x (im2col gy)^T (dw
 * NULL: not wanted). Per chunk and group col = im2col(gy) is built once
 * for both products. */
static attn_status cv_transpose_backward(attn_ctx *ctx, const cv_geom *g, const float *gy,
                                         const float *x, const float *w, float *dx, float *dw,
                                         float *ws) {
    const int64_t Cg = g->C / g->G, Og = g->O / g->G, K = Cg * g->KH * g->KW;
    const int64_t P = g->OH * g->OW, HW = g->H * g->W;
    if (cv_depthwise(g) || cv_pointwise(g)) {
        attn_status st = ATTN_OK;
        if (dx) st = cv_forward(ctx, g, gy, w, NULL, dx, 1.0f, ws);
        if (st == ATTN_OK && dw) {
            if (cv_depthwise(g))
                cv_dw_bwd_weight(ctx, g, gy, x, dw);
            else
                st = cv_backward(ctx, g, gy, x, w, NULL, dw, ws);
        }
        return st;
    }
    const int64_t nb = cv_chunk(g);
    for (int64_t n0 = 0; n0 < g->N; n0 += nb) {
        const int64_t m = g->N - n0 < nb ? g->N - n0 : nb, ld = m * P;
        float *col = ws, *D = ws + K * ld;
        const int nt = attn__threads_for(ctx, 2.0 * (double)Og * (double)K * (double)ld);
        const int nti = attn__threads_for(ctx, (double)K * (double)ld);
        for (int64_t gi = 0; gi < g->G; gi++) {
            cv_im2col(g, gy + (n0 * g->C + gi * Cg) * HW, m, col, nti);
            if (dx) {
                /* D [Og, m P] = w_g [Og, K] col [K, m P], added into dx */
                attn__sgemm(nt, 0, 0, Og, ld, K, 1.0f, w + gi * Og * K, K, col, ld, 0.0f, D, ld);
                cv_scatter(g, D, m, dx + (n0 * g->O + gi * Og) * P, 1.0f, NULL);
            }
            if (dw) {
                cv_gather(g, x + (n0 * g->O + gi * Og) * P, m, D);
                /* dw_g [Og, K] += D [Og, m P] col^T [m P, K] */
                attn__sgemm(nt, 0, 1, Og, K, ld, 1.0f, D, ld, col, ld, 1.0f, dw + gi * Og * K, K);
            }
        }
    }
    return ATTN_OK;
}

/* The sum of r[0 .. P-1] in double as 16 partial sums (lane l takes the p
 * with p mod 16 = l), added in a fixed order: the AVX-512 and the portable
 * version give the same bits. */
#if CV_X86
CV512 static double cv_sum16_512(const float *r, int64_t P) {
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    int64_t p = 0;
    for (; p + 16 <= P; p += 16) {
        const __m512 x = _mm512_loadu_ps(r + p);
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(x)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1))));
    }
    if (p < P) {
        const __m512 x = _mm512_maskz_loadu_ps(cv_m16(P - p), r + p);
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(x)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1))));
    }
    double a[16];
    _mm512_storeu_pd(a, a0);
    _mm512_storeu_pd(a + 8, a1);
    double s = 0.0;
    for (int l = 0; l < 16; l++) s += a[l];
    return s;
}
#endif

static double cv_sum16(const float *r, int64_t P, int vec) {
#if CV_X86
    if (vec) return cv_sum16_512(r, P);
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
    if (dx || dw) st = cv_backward(ctx, &g, x, gy, w, dx, dw, cv_col(node));
    /* => db[o] += sum_{n,p} gy[n,o,p] */
    if (st == ATTN_OK && node->iarg[7] && attn__needs_grad(node, 2))
        cv_bias_grad(g.N, g.O, g.OH * g.OW, gy, node->in[2]->grad, g.vec);
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
    float *y = attn_f32(node->out);
    memset(y, 0, sizeof(float) * (size_t)attn_tensor_numel(node->out));
    attn_status st = cv_bwd_data(ctx, &g, attn_f32(node->in[0]), attn_f32(node->in[1]), y,
                                 cv_col(node));
    const float *b = cv_bias(node);
    if (st == ATTN_OK && b) cv_add_bias(g.N, g.C, g.H * g.W, b, y);
    return st;
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
    if (dx || dw) st = cv_transpose_backward(ctx, &g, gy, x, w, dx, dw, cv_col(node));
    /* => db[c] += sum_{n,p} gy[n,c,p] */
    if (st == ATTN_OK && node->iarg[7] && attn__needs_grad(node, 2))
        cv_bias_grad(g.N, g.C, g.H * g.W, gy, node->in[2]->grad, g.vec);
    return st;
}

/* ---- graph ops: validation and nodes --------------------------------------------------- */

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
    /* The workspace of cv_chunk images (im2col and one block of outputs),
     * allocated with the node (planned scratch: the arena's peak is its top)
     * and reused by the backward. */
    const cv_geom g = cv_geom_of(node);
    if (!cv_pointwise(&g) && !cv_depthwise(&g)) {
        const int64_t K = g.C / g.G * g.KH * g.KW, P = g.OH * g.OW;
        size_t n;
        if (attn__mul_size((size_t)(K + g.O / g.G), (size_t)P, &n) ||
            attn__mul_size(n, (size_t)cv_chunk(&g), &n) || n > (size_t)INT64_MAX / sizeof(float)) {
            attn__fail(ctx, ATTN_ERR_OOM, "%s: im2col workspace [%lld + %lld, %lld] overflows", name,
                       (long long)K, (long long)(g.O / g.G), (long long)P);
            return NULL;
        }
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
        const int64_t span = x->shape[2 + k] + 2 * p[k] - d[k] * (w->shape[2 + k] - 1) - 1;
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
    const int64_t pl = opts->causal ? d * (K - 1) : opts->padding;
    const int64_t pr = opts->causal ? 0 : opts->padding;
    const int64_t span = x->shape[2] + pl + pr - d * (K - 1) - 1;
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
        osz[k] = (x->shape[2 + k] - 1) * s[k] - 2 * p[k] + d[k] * (w->shape[2 + k] - 1) + opad[k] + 1;
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
