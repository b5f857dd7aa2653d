/* conv_internal.h: what conv.c and its AVX-512 kernels (conv_avx512.c)
 * share: the geometry of a convolution, the spans of its kernel columns,
 * and the AVX-512 row and depthwise kernels. Private to src/ops. */
#ifndef ATTN_CONV_INTERNAL_H
#define ATTN_CONV_INTERNAL_H

#include <stdint.h>

typedef struct cv_geom {
    int64_t N, C, H, W; /* the convolution's input u */
    int64_t O, OH, OW;  /* its output v */
    int64_t G, KH, KW, SH, SW, PH, PW, DH, DW;
    int vec; /* 1: the AVX-512 row kernels (cv_vec_ok), 0: the portable loops */
} cv_geom;

/* The AVX-512 kernels are compiled with a target attribute (no global
 * -mavx512f) on x86-64 GCC and Clang; cv_vec_ok (conv.c) decides at run
 * time whether they run. */
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
static inline void cv_cols(const cv_geom *g, int64_t j, int64_t *iw0, int64_t *lo, int64_t *hi) {
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

static inline void cv_spans_init(const cv_geom *g, cv_spans *s) {
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

/* One input and one output channel per group (G = C = O): each group's
 * product would have a single row, so the three primitives run directly on
 * the planes instead (conv_depthwise.c). */
static inline int cv_depthwise(const cv_geom *g) { return g->G == g->C && g->G == g->O && g->G > 1; }

/* v[n, o, :] += b[o] over an [N, O, P] tensor. */
static inline void attn__cv_add_bias(int64_t N, int64_t O, int64_t P, const float *b, float *v) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++) {
            float *vr = v + (n * O + o) * P;
            const float bo = b[o];
            for (int64_t p = 0; p < P; p++) vr[p] += bo;
        }
}

/* conv_depthwise.c: v (beta 0: =, 1: +=) the depthwise convolution of u
 * (+ b when b); du += its data gradient; dw += its weight gradient. */
struct attn_ctx;
void attn__cv_dw_forward(struct attn_ctx *ctx, const cv_geom *g, const float *u, const float *w,
                         const float *b, float *v, float beta);
void attn__cv_dw_bwd_data(struct attn_ctx *ctx, const cv_geom *g, const float *dv, const float *w,
                          float *du);
void attn__cv_dw_bwd_weight(struct attn_ctx *ctx, const cv_geom *g, const float *u, const float *dv,
                            float *dw);

/* The depthwise weight gradient keeps one accumulator per tap. */
#define CV_KK_MAX 64

/* 1 if the narrow depthwise kernels apply: rows of at most 16 columns. */
static inline int cv_dw_narrow(const cv_geom *g) {
    return g->W <= 16 && g->OW <= 16 && g->KW <= CV_KW_MAX && g->KH * g->KW <= 64;
}

/* 1 if attn__cv_dw_backward512_3x3 applies: a 3x3 kernel, stride 1, rows
 * of at most 16 columns. */
static inline int cv_dw_fused3(const cv_geom *g) {
    return g->KH == 3 && g->KW == 3 && g->SH == 1 && g->SW == 1 && g->W <= 16 && g->OW <= 16;
}

/* du += the data gradient (du NULL: not wanted) and dw += the weight
 * gradient (dw NULL: not wanted) of the depthwise convolution: one pass
 * for cv_dw_fused3 with AVX-512, which also sums db += the bias gradient
 * (db NULL: not wanted; per plane cv_sum16, images in order: conv.c's
 * cv_bias_grad's bits) and returns 1; else attn__cv_dw_bwd_data and
 * attn__cv_dw_bwd_weight, and 0 (db left to the caller). */
int attn__cv_dw_backward(struct attn_ctx *ctx, const cv_geom *g, const float *u, const float *dv,
                         const float *w, float *du, float *dw, float *db);

#if CV_X86
/* conv_avx512.c. The row kernels of conv.c's cv_im2col and cv_col2im (the
 * same contracts, the same bits): */
void attn__cv_im2col512(const cv_geom *g, const float *u, int64_t nb, float *col, int nt);
/* the same for stride 1 and OW == W, a tap's row of P positions at once
 * (KK ceil(P / 16) <= CV_FLAT_MASKS): */
#define CV_FLAT_MASKS 4096
void attn__cv_im2col512_flat(const cv_geom *g, const float *u, int64_t nb, float *col, int nt);
/* the same for input rows of <= 16 columns and output rows of <= 8, two
 * output rows per store: */
void attn__cv_im2col512_pairs(const cv_geom *g, const float *u, int64_t nb, float *col, int nt);
/* (zero: du = instead of +=) */
void attn__cv_col2im512_narrow(const cv_geom *g, const float *col, int64_t nb, float *du, int zero,
                               int nt);
void attn__cv_col2im512(const cv_geom *g, const float *col, int64_t nb, float *du, int nt);
/* The depthwise kernels of cv_dw_forward, cv_dw_bwd_data and
 * cv_dw_bwd_weight (flip: the kernel turned by 180 degrees): */
void attn__cv_dw_forward512(const cv_geom *g, const float *u, const float *w, float *v, float beta,
                            int flip, int nt);
void attn__cv_dw_forward512_narrow(const cv_geom *g, const float *u, const float *w, const float *b,
                                   float *v, float beta, int flip, int nt);
void attn__cv_dw_bwd_weight512_narrow(const cv_geom *g, const float *u, const float *dv, float *dw,
                                      int nt);
void attn__cv_dw_bwd_data512(const cv_geom *g, const float *dv, const float *w, float *du, int nt);
void attn__cv_dw_bwd_weight512(const cv_geom *g, const float *u, const float *dv, float *dw, int nt);
/* The depthwise backward of a 3x3 kernel at stride 1 on rows of at most
 * 16 columns (cv_dw_fused3): du +=, dw +=, db += (each NULL: not wanted)
 * in one pass (conv_depthwise.c's attn__cv_dw_backward). */
void attn__cv_dw_backward512_3x3(const cv_geom *g, const float *u, const float *dv, const float *w,
                                 float *du, float *dw, float *db, int nt);
/* cv_sum16 (conv.c) with two vectors of 8 doubles: */
double attn__cv_sum16_512(const float *r, int64_t P);
#endif

/* conv_winograd.c: 3x3 stride-1 pad-1 convolutions of G = 1 on small maps
 * with at least 16 input and output channels, as Winograd F(2x2, 3x3)
 * products. attn__cv_wino_shape: the shape qualifies (the workspace is
 * sized for it); attn__cv_wino_ok: it does and g->vec (the transforms are
 * AVX-512). attn__cv_wino_ws: the workspace in floats. The forward: v =
 * (beta 0) or += (beta 1) conv(u, w) + b; the backward: du += (du NULL: not
 * wanted), dw += (dw NULL: not wanted). */
int attn__cv_wino_shape(const cv_geom *g);
int attn__cv_wino_ok(const cv_geom *g);
int64_t attn__cv_wino_ws(const cv_geom *g);
void attn__cv_wino_forward(struct attn_ctx *ctx, const cv_geom *g, const float *u, const float *w,
                           const float *b, float *v, float beta, float *ws);
void attn__cv_wino_backward(struct attn_ctx *ctx, const cv_geom *g, const float *u, const float *dv,
                            const float *w, float *du, float *dw, float *ws);

#endif
