/* conv_depthwise.c: the depthwise convolutions (G = C = O > 1) of conv.c,
 * forward, data gradient and weight gradient, run directly on the planes:
 * each group's product would have a single row. Each task owns whole
 * planes (forward, data gradient) or whole channels (weight gradient,
 * images in order): no races, the same bits for any thread count. The
 * AVX-512 kernels are in conv_avx512.c; the portable loops here. */
#include <string.h>

#include "../core/internal.h"
#include "conv_internal.h"

/* v[n,c] (beta 0: =, 1: +=) sum_{i,j} w[c,i,j] u[n,c, p SH - PH + i DH, q SW - PW + j DW] */
void attn__cv_dw_forward(attn_ctx *ctx, const cv_geom *g, const float *u, const float *w,
                         const float *b, float *v, float beta) {
    const int64_t KK = g->KH * g->KW, P = g->OH * g->OW, HW = g->H * g->W;
    const int nt = attn__threads_for(ctx, 2.0 * (double)(g->N * g->C) * (double)P * (double)KK);
#if CV_X86
    if (g->vec && cv_dw_narrow(g)) {
        attn__cv_dw_forward512_narrow(g, u, w, b, v, beta, 0, nt);
        return;
    }
    if (g->vec && g->KW <= CV_KW_MAX) {
        attn__cv_dw_forward512(g, u, w, v, beta, 0, nt);
        if (b) attn__cv_add_bias(g->N, g->O, P, b, v);
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
    if (b) attn__cv_add_bias(g->N, g->O, P, b, v);
}

/* du[n,c, ih, iw] += w[c,i,j] dv[n,c,p,q] (the forward's adjoint) */
void attn__cv_dw_bwd_data(attn_ctx *ctx, const cv_geom *g, const float *dv, const float *w,
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
            attn__cv_dw_forward512_narrow(&f, dv, w, NULL, du, 1.0f, 1, nt);
        else
            attn__cv_dw_forward512(&f, dv, w, du, 1.0f, 1, nt);
        return;
    }
    if (g->vec) {
        attn__cv_dw_bwd_data512(g, dv, w, du, nt);
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
void attn__cv_dw_bwd_weight(attn_ctx *ctx, const cv_geom *g, const float *u, const float *dv,
                            float *dw) {
    const int64_t KK = g->KH * g->KW, P = g->OH * g->OW, HW = g->H * g->W;
    const int nt = attn__threads_for(ctx, 2.0 * (double)(g->N * g->C) * (double)P * (double)KK);
#if CV_X86
    if (g->vec && cv_dw_narrow(g)) {
        attn__cv_dw_bwd_weight512_narrow(g, u, dv, dw, nt);
        return;
    }
    if (g->vec && g->KW <= CV_KW_MAX && KK <= CV_KK_MAX) {
        attn__cv_dw_bwd_weight512(g, u, dv, dw, nt);
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

int attn__cv_dw_backward(attn_ctx *ctx, const cv_geom *g, const float *u, const float *dv,
                         const float *w, float *du, float *dw, float *db) {
#if CV_X86
    if (g->vec && cv_dw_fused3(g) && (du || dw || db)) {
        const int64_t P = g->OH * g->OW;
        const int nt = attn__threads_for(ctx, 4.0 * (double)(g->N * g->C) * (double)P * 9.0);
        attn__cv_dw_backward512_3x3(g, u, dv, w, du, dw, db, nt);
        return 1;
    }
#else
    (void)db;
#endif
    if (du) attn__cv_dw_bwd_data(ctx, g, dv, w, du);
    if (dw) attn__cv_dw_bwd_weight(ctx, g, u, dv, dw);
    return 0;
}
