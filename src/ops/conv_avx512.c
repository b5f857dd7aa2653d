/* conv_avx512.c: the AVX-512 kernels of the convolutions (conv.c): the
 * rows of im2col and col2im, the depthwise kernels, and the bias
 * gradient's sums. Declared in conv_internal.h; conv.c calls them when
 * g->vec (cv_vec_ok) and runs its portable loops otherwise.
 *
 * AVX-512 rows. Every primitive walks rows: output row p of a plane reads,
 * for kernel column j, the input row ih at columns q SW + iw0 (iw0 = j DW -
 * PW), of which only q in [lo, hi) lie inside the image (cv_cols). These
 * kernels move such a row 16 columns q at a time with masked loads and
 * stores that touch no element outside [lo, hi): unit stride is a masked
 * load, stride 2 two loads and a permutation, other strides a gather; the
 * scatter direction (col2im, the depthwise data gradient) adds to the
 * elements the gather would read, each once, in the order of the scalar
 * loops (the sums are the same bits). */
#include "conv_internal.h"

#if CV_X86
#include <immintrin.h>

#include <string.h>

#include "../core/internal.h"

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

/* cv_im2col for stride 1 and OW == W (maps that keep their width, the 3x3
 * pad-1 layers): position t = p OW + q of a tap's row reads element
 * t + ih0 W + iw0 of the plane (ih0 = i DH - PH, iw0 = j DW - PW) when its
 * row p + ih0 and column q + iw0 lie inside. A tap's whole row of P
 * positions is then ceil(P / 16) masked loads from one shifted pointer
 * (the masked lanes read nothing) and as many stores: 4 on a 7x7 map where
 * the row kernel takes 7. The masks of every tap are made once per call
 * (mk: KK ceil(P / 16) of them, CV_FLAT_MASKS at most; cv_im2col checks). */
CV512 void attn__cv_im2col512_flat(const cv_geom *g, const float *u, int64_t nb, float *col,
                                   int nt) {
    const int64_t Cg = g->C / g->G, KK = g->KH * g->KW, P = g->OH * g->OW, R = Cg * KK;
    const int64_t HW = g->H * g->W, ld = nb * P, OW = g->OW, nv = (P + 15) / 16;
    __mmask16 mk[CV_FLAT_MASKS];
    for (int64_t k = 0; k < KK; k++) {
        const int64_t ih0 = k / g->KW * g->DH - g->PH, iw0 = k % g->KW * g->DW - g->PW;
        __mmask16 *m = mk + k * nv;
        for (int64_t v = 0; v < nv; v++) m[v] = 0;
        for (int64_t p = 0, t = 0; p < g->OH; p++, t += OW) {
            if (p + ih0 < 0 || p + ih0 >= g->H) continue;
            for (int64_t q = 0; q < OW; q++)
                if (q + iw0 >= 0 && q + iw0 < g->W) m[(t + q) >> 4] |= (__mmask16)(1u << ((t + q) & 15));
        }
    }
    const __mmask16 mlast = cv_m16(P - (nv - 1) * 16);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t r = 0; r < R; r++) {
        const int64_t c = r / KK, k = r % KK;
        const int64_t off = (k / g->KW * g->DH - g->PH) * g->W + k % g->KW * g->DW - g->PW;
        const __mmask16 *m = mk + k * nv;
        for (int64_t b = 0; b < nb; b++) {
            /* the plane's address plus the shift, as an integer offset: the
             * lanes that would fall outside the plane are masked off */
            const float *up = u + b * g->C * HW + c * HW;
            float *d = col + r * ld + b * P;
            int64_t v = 0;
            for (; v + 1 < nv; v++)
                _mm512_storeu_ps(d + v * 16, _mm512_maskz_loadu_ps(m[v], up + (off + v * 16)));
            _mm512_mask_storeu_ps(d + v * 16, mlast, _mm512_maskz_loadu_ps(m[v], up + (off + v * 16)));
        }
    }
}

/* cv_im2col with AVX-512 rows. */
/* cv_im2col for input rows of at most 16 columns and output rows of at
 * most 8 (the 4x4 stride-2 layers' 7-column maps): two output rows of a tap
 * at once, one two-source permutation of the two input rows they read
 * (lanes 0 .. OW - 1 from the first, OW .. 2 OW - 1 from the second, 0
 * outside the kernel column's span) and one masked store of 2 OW
 * consecutive entries: half the stores of attn__cv_im2col512, the same
 * values. */
CV512 void attn__cv_im2col512_pairs(const cv_geom *g, const float *u, int64_t nb, float *col,
                                     int nt) {
    const int64_t Cg = g->C / g->G, KK = g->KH * g->KW, P = g->OH * g->OW, R = Cg * KK;
    const int64_t HW = g->H * g->W, ld = nb * P, OW = g->OW;
    __m512i idx[CV_KW_MAX];
    __mmask16 val[CV_KW_MAX];
    for (int64_t j = 0; j < g->KW; j++) {
        int64_t iw0, lo, hi;
        cv_cols(g, j, &iw0, &lo, &hi);
        int32_t ix[16] = {0};
        unsigned m = 0;
        for (int64_t q = lo; q < hi; q++) {
            ix[q] = (int32_t)(q * g->SW + iw0);
            ix[OW + q] = 16 + ix[q];
            m |= (1u << q) | (1u << (OW + q));
        }
        idx[j] = _mm512_loadu_si512(ix);
        val[j] = (__mmask16)m;
    }
    const __mmask16 mw = cv_m16(g->W), m2 = cv_m16(2 * OW), m1 = cv_m16(OW);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t r = 0; r < R; r++) {
        const int64_t c = r / KK, i = (r % KK) / g->KW, j = r % g->KW;
        for (int64_t b = 0; b < nb; b++) {
            const float *up = u + b * g->C * HW + c * HW;
            float *d = col + r * ld + b * P;
            for (int64_t p = 0; p < g->OH; p += 2, d += 2 * OW) {
                const int64_t ia = p * g->SH - g->PH + i * g->DH, ib = ia + g->SH;
                const __m512 xa = ia >= 0 && ia < g->H ? _mm512_maskz_loadu_ps(mw, up + ia * g->W)
                                                       : _mm512_setzero_ps();
                const __m512 xb = p + 1 < g->OH && ib >= 0 && ib < g->H
                                      ? _mm512_maskz_loadu_ps(mw, up + ib * g->W)
                                      : _mm512_setzero_ps();
                _mm512_mask_storeu_ps(d, p + 1 < g->OH ? m2 : m1,
                                      _mm512_maskz_permutex2var_ps(val[j], xa, idx[j], xb));
            }
        }
    }
}

CV512 void attn__cv_im2col512(const cv_geom *g, const float *u, int64_t nb, float *col, int nt) {
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
 * and reload of du per tap; with `zero` the rows start at 0 (du =). */
CV512 void attn__cv_col2im512_narrow(const cv_geom *g, const float *col, int64_t nb, float *du,
                                      int zero, int nt) {
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
                __m512 acc = zero ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mw, up + h * W);
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
CV512 void attn__cv_col2im512(const cv_geom *g, const float *col, int64_t nb, float *du, int nt) {
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

/* cv_dw_forward with AVX-512 rows: 16 outputs of a row in a register,
 * summed over i, j in order with fused multiply-adds. flip: use the kernel
 * turned by 180 degrees, w[c, KH-1-i, KW-1-j] (the data gradient below). */
CV512 void attn__cv_dw_forward512(const cv_geom *g, const float *u, const float *w, float *v,
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

/* attn__cv_dw_forward512 for rows of at most 16 columns: each input row is loaded
 * once into a register and each tap's view of it is one permutation. */
CV512 void attn__cv_dw_forward512_narrow(const cv_geom *g, const float *u, const float *w,
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

/* attn__cv_dw_bwd_weight512 for rows of at most 16 columns: per channel, image
 * and tap, the products of the rows summed lane by lane in float in two
 * accumulators (even and odd output rows, added at the end), then lane by
 * lane over the images in order in double, and the 16 lanes in order at
 * the end; each input row is one load and one permutation. */
CV512 void attn__cv_dw_bwd_weight512_narrow(const cv_geom *g, const float *u, const float *dv,
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
CV512 void attn__cv_dw_bwd_data512(const cv_geom *g, const float *dv, const float *w, float *du,
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
 * across lanes and images in order in double. KH KW <= CV_KK_MAX
 * (conv_internal.h). */
CV512 void attn__cv_dw_bwd_weight512(const cv_geom *g, const float *u, const float *dv, float *dw,
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

/* The sum of r[0 .. P-1] in double as 16 partial sums (lane l takes the p
 * with p mod 16 = l), added in a fixed order: the AVX-512 and the portable
 * version give the same bits. */
CV512 double attn__cv_sum16_512(const float *r, int64_t P) {
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

#if CV_X86
/* The depthwise 3x3 backward at stride 1 on rows of at most 16 columns,
 * data and weight gradient in one pass over each plane pair (u, dv): for
 * each output-gradient row p and kernel column j the row shifted to the
 * input's columns, D_j[s] = dv[p, s + PW - j DW] (0 outside), is one
 * permutation shared by both gradients:
 *   du[p - PH + i DH, :] += sum_j w[i, j] D_j          (the data gradient)
 *   dw[i, j] += sum_s u[p - PH + i DH, s] D_j[s]        (the weight gradient)
 * (each du row takes its up to three sums as they come: the plane stays in
 * L1); the weight gradient per image lane by lane in float,
 * over the images in order in double, and the 16 lanes in order at the end;
 * the bias gradient as conv.c's cv_bias_grad (the same bits). Each task owns a block of CV_DW_BLOCK channels and runs through it image
 * by image (the block's planes of an image are contiguous: the loads
 * stream): the same bits for any thread count. */
#define CV_DW_BLOCK 16
CV512 void attn__cv_dw_backward512_3x3(const cv_geom *g, const float *u, const float *dv,
                                        const float *w, float *du, float *dw, float *db, int nt) {
    const int64_t P = g->OH * g->OW, HW = g->H * g->W, OW = g->OW, W = g->W;
    __m512i idx[3];
    __mmask16 val[3];
    for (int j = 0; j < 3; j++) {
        int32_t ix[16];
        unsigned m = 0;
        for (int64_t s = 0; s < 16; s++) {
            const int64_t src = s + g->PW - j * g->DW;
            ix[s] = 0;
            if (s < W && src >= 0 && src < OW) {
                ix[s] = (int32_t)src;
                m |= 1u << s;
            }
        }
        idx[j] = _mm512_loadu_si512(ix);
        val[j] = (__mmask16)m;
    }
    const __mmask16 mw = cv_m16(W), mo = cv_m16(OW);
    (void)nt;
    const int64_t nblk = (g->C + CV_DW_BLOCK - 1) / CV_DW_BLOCK;
    ATTN__OMP_FOR(nt)
    for (int64_t cb = 0; cb < nblk; cb++) {
        const int64_t c0 = cb * CV_DW_BLOCK;
        const int64_t c1 = c0 + CV_DW_BLOCK < g->C ? c0 + CV_DW_BLOCK : g->C;
        double dacc[CV_DW_BLOCK][9][16], dbs[CV_DW_BLOCK] = {0};
        if (dw) memset(dacc, 0, sizeof dacc);
        for (int64_t n = 0; n < g->N; n++)
            for (int64_t c = c0; c < c1; c++) {
                const float *wc = w + c * 9;
                const float *up = u + (n * g->C + c) * HW, *dvp = dv + (n * g->C + c) * P;
                float *dup = du ? du + (n * g->C + c) * HW : NULL;
                if (db) dbs[c - c0] += attn__cv_sum16_512(dvp, P);
                __m512 a[9];
                for (int t = 0; t < 9; t++) a[t] = _mm512_setzero_ps();
                for (int64_t p = 0; p < g->OH; p++) {
                    const __m512 r = _mm512_maskz_loadu_ps(mo, dvp + p * OW);
                    const __m512 d0 = _mm512_maskz_permutexvar_ps(val[0], idx[0], r);
                    const __m512 d1 = _mm512_maskz_permutexvar_ps(val[1], idx[1], r);
                    const __m512 d2 = _mm512_maskz_permutexvar_ps(val[2], idx[2], r);
                    for (int i = 0; i < 3; i++) {
                        const int64_t ih = p - g->PH + i * g->DH;
                        if (ih < 0 || ih >= g->H) continue;
                        if (dw) {
                            const __m512 x = _mm512_maskz_loadu_ps(mw, up + ih * W);
                            a[3 * i] = _mm512_fmadd_ps(x, d0, a[3 * i]);
                            a[3 * i + 1] = _mm512_fmadd_ps(x, d1, a[3 * i + 1]);
                            a[3 * i + 2] = _mm512_fmadd_ps(x, d2, a[3 * i + 2]);
                        }
                        if (dup) {
                            __m512 s = _mm512_mul_ps(_mm512_set1_ps(wc[3 * i]), d0);
                            s = _mm512_fmadd_ps(_mm512_set1_ps(wc[3 * i + 1]), d1, s);
                            s = _mm512_fmadd_ps(_mm512_set1_ps(wc[3 * i + 2]), d2, s);
                            float *dr = dup + ih * W;
                            _mm512_mask_storeu_ps(dr, mw,
                                                  _mm512_add_ps(_mm512_maskz_loadu_ps(mw, dr), s));
                        }
                    }
                }
                if (dw)
                    for (int t = 0; t < 9; t++) {
                        double *da = dacc[c - c0][t];
                        const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(a[t]));
                        const __m512d hi = _mm512_cvtps_pd(
                            _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a[t]), 1)));
                        _mm512_storeu_pd(da, _mm512_add_pd(_mm512_loadu_pd(da), lo));
                        _mm512_storeu_pd(da + 8, _mm512_add_pd(_mm512_loadu_pd(da + 8), hi));
                    }
            }
        if (dw)
            for (int64_t c = c0; c < c1; c++)
                for (int t = 0; t < 9; t++) {
                    double s = 0.0;
                    for (int k = 0; k < 16; k++) s += dacc[c - c0][t][k];
                    dw[c * 9 + t] += (float)s;
                }
        if (db)
            for (int64_t c = c0; c < c1; c++) db[c] += (float)dbs[c - c0];
    }
}
#endif
