/* conv_winograd.c: 3x3 convolutions with stride 1 and padding 1 on maps of
 * at most 16 columns (the classifier's 14x14 and 7x7 layers) as Winograd
 * F(2x2, 3x3) products, forward and backward (conv.c calls them when
 * attn__cv_wino_ok; docs/conv.md, "Winograd").
 *
 * Each 2x2 block of outputs (a tile; TH x TW of them per map, the last row
 * and column of tiles cut by the map's edge) is
 *   Y = A^T [ sum_c (G w[o,c] G^T) .* (B^T d_c B) ] A
 * with d_c the 4x4 input patch over the tile (zero outside the image) and
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1].
 * For each of the 16 positions xi of the transformed tile the sum over c is
 * one product M_xi [O, T] = U_xi [O, C] V_xi [C, T] over the T tiles of a
 * chunk of images: 16 products of 2 O C T multiply-adds where im2col takes
 * one of 2 O (9 C) (4 T): 2.25x fewer on whole tiles.
 *   dx: the data gradient of a 3x3 pad-1 stride-1 convolution is the same
 *       convolution of dy with the kernel turned by 180 degrees and its
 *       channels swapped, w'[c,o,i,j] = w[o,c,2-i,2-j]: the same code.
 *   dw: U_xi enters linearly, so dU_xi [O, C] = sum over tiles of
 *       (A dY A^T)_xi V_xi^T (dY the 2x2 output-gradient tile, zero outside
 *       the map), and dw[o,c] += G^T dU[o,c] G.
 * The transforms run on AVX-512 registers: a row of at most 16 columns is
 * one register, each tile column's view of it one permutation, so a vector
 * holds one transformed value of the TW (<= 8) tiles of a tile row; maps of
 * at most 8x8 (the 7x7 layer: 16 tiles) hold every tile of the plane in
 * one register (the _small kernels).
 */
#include <string.h>

#include "../core/internal.h"
#include "conv_internal.h"

/* Floats of the per-chunk part of the workspace (V and M, 1 MiB: they stay
 * in a core's L2 between the transforms and the products; 4 MiB ran the
 * 3x3 layers 1.2-1.3x slower); a chunk holds as many images as fit (at
 * least one). */
#define CV_WINO_FLOATS ((int64_t)1 << 18)

int attn__cv_wino_shape(const cv_geom *g) {
    return CV_X86 && g->G == 1 && g->KH == 3 && g->KW == 3 && g->SH == 1 && g->SW == 1 &&
           g->DH == 1 && g->DW == 1 && g->PH == 1 && g->PW == 1 && g->OH == g->H &&
           g->OW == g->W && g->W <= 16 && g->C >= 16 && g->O >= 16;
}

int attn__cv_wino_ok(const cv_geom *g) { return g->vec && attn__cv_wino_shape(g); }

#if CV_X86
#include <immintrin.h>

static int64_t wino_tiles(const cv_geom *g) { return (g->H + 1) / 2 * ((g->W + 1) / 2); }

static int64_t wino_chunk(const cv_geom *g) {
    int64_t nb = CV_WINO_FLOATS / (16 * (g->C + g->O) * wino_tiles(g));
    if (nb < 1) nb = 1;
    if (nb > g->N) nb = g->N;
    return nb;
}

int64_t attn__cv_wino_ws(const cv_geom *g) {
    return 16 * (g->C + g->O) * wino_tiles(g) * wino_chunk(g) + 16 * g->O * g->C;
}

/* U_xi[r, s] = (G k G^T)[xi] for the 3x3 kernel k = w[o, c] (turned by 180
 * degrees when flip), r s = o c, or c o when swap (the data gradient). */
static void wino_filter(const float *w, int64_t O, int64_t C, int flip, int swap, float *U) {
    for (int64_t o = 0; o < O; o++)
        for (int64_t c = 0; c < C; c++) {
            const float *k = w + (o * C + c) * 9;
            float kk[9], t[4][3], u[4][4];
            for (int e = 0; e < 9; e++) kk[e] = flip ? k[8 - e] : k[e];
            for (int j = 0; j < 3; j++) { /* G k: rows of G over the kernel's rows */
                t[0][j] = kk[j];
                t[1][j] = 0.5f * (kk[j] + kk[3 + j] + kk[6 + j]);
                t[2][j] = 0.5f * (kk[j] - kk[3 + j] + kk[6 + j]);
                t[3][j] = kk[6 + j];
            }
            for (int i = 0; i < 4; i++) { /* (G k) G^T */
                u[i][0] = t[i][0];
                u[i][1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                u[i][2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                u[i][3] = t[i][2];
            }
            /* U [rows][16][cols]: rows o, cols c (or c, o when swap) */
            float *ur = swap ? U + c * 16 * O + o : U + o * 16 * C + c;
            const int64_t cols = swap ? O : C;
            for (int xi = 0; xi < 16; xi++) ur[xi * cols] = u[xi / 4][xi % 4];
        }
}

/* dw[o, c] += G^T dU[o, c] G for every o, c (dU: [O][16][C]). */
static void wino_filter_grad(const float *dU, int64_t O, int64_t C, float *dw) {
    for (int64_t o = 0; o < O; o++)
        for (int64_t c = 0; c < C; c++) {
            float d[4][4], t[3][4];
            for (int xi = 0; xi < 16; xi++) d[xi / 4][xi % 4] = dU[(o * 16 + xi) * C + c];
            for (int j = 0; j < 4; j++) { /* G^T d */
                t[0][j] = d[0][j] + 0.5f * (d[1][j] + d[2][j]);
                t[1][j] = 0.5f * (d[1][j] - d[2][j]);
                t[2][j] = 0.5f * (d[1][j] + d[2][j]) + d[3][j];
            }
            float *k = dw + (o * C + c) * 9;
            for (int i = 0; i < 3; i++) { /* (G^T d) G */
                k[i * 3 + 0] += t[i][0] + 0.5f * (t[i][1] + t[i][2]);
                k[i * 3 + 1] += 0.5f * (t[i][1] - t[i][2]);
                k[i * 3 + 2] += 0.5f * (t[i][1] + t[i][2]) + t[i][3];
            }
        }
}

/* The permutations of a row (W <= 16 columns in one register) that give,
 * in lane tx < TW, the columns 2 tx - 1 + k (k = 0..3; zero outside the
 * row): the four columns of tile column tx's input patch. */
typedef struct wino_perm {
    __m512i idx[4];
    __mmask16 m[4];
} wino_perm;

CV512 static wino_perm wino_perm_make(int64_t W, int64_t TW, int base) {
    wino_perm p;
    for (int k = 0; k < 4; k++) {
        int32_t ix[16];
        unsigned m = 0;
        for (int tx = 0; tx < 16; tx++) {
            const int64_t col = 2 * tx + base + k;
            ix[tx] = 0;
            if (tx < TW && col >= 0 && col < W) ix[tx] = (int32_t)col, m |= 1u << tx;
        }
        p.idx[k] = _mm512_loadu_si512(ix);
        p.m[k] = (__mmask16)m;
    }
    return p;
}

/* V[c][xi][t0 + ty TW + tx] = (B^T d B)[xi] of every tile of the C planes of
 * nb images (u: the first image; images `is` floats apart), t0 = b TH TW
 * for image b, T = nb TH TW columns. */
CV512 static void wino_input(const cv_geom *g, const float *u, int64_t C, int64_t is, int64_t nb,
                             float *V, int nt) {
    const int64_t H = g->H, W = g->W, TW = (W + 1) / 2, TH = (H + 1) / 2, TT = TH * TW;
    const int64_t T = nb * TT;
    const wino_perm pm = wino_perm_make(W, TW, -1);
    const __mmask16 mw = (__mmask16)((1u << W) - 1u), mt = (__mmask16)((1u << TW) - 1u);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t pl = 0; pl < nb * C; pl++) {
        const int64_t b = pl / C, c = pl % C;
        const float *up = u + b * is + c * H * W;
        /* rows -1 .. 2 TH - 1 of the plane, each as its 4 column transforms
         * (B^T applied along the row): r0 = x0 - x2, r1 = x1 + x2,
         * r2 = x2 - x1, r3 = x1 - x3 */
        __m512 R[4][4]; /* the 4 input rows of the current tile row */
        float *vp = V + c * 16 * T + b * TT;
        for (int64_t ty = 0; ty < TH; ty++) {
            for (int k = 0; k < 4; k++) {
                const int64_t h = 2 * ty - 1 + k;
                const __m512 row = h >= 0 && h < H ? _mm512_maskz_loadu_ps(mw, up + h * W)
                                                   : _mm512_setzero_ps();
                const __m512 x0 = _mm512_maskz_permutexvar_ps(pm.m[0], pm.idx[0], row);
                const __m512 x1 = _mm512_maskz_permutexvar_ps(pm.m[1], pm.idx[1], row);
                const __m512 x2 = _mm512_maskz_permutexvar_ps(pm.m[2], pm.idx[2], row);
                const __m512 x3 = _mm512_maskz_permutexvar_ps(pm.m[3], pm.idx[3], row);
                R[k][0] = _mm512_sub_ps(x0, x2);
                R[k][1] = _mm512_add_ps(x1, x2);
                R[k][2] = _mm512_sub_ps(x2, x1);
                R[k][3] = _mm512_sub_ps(x1, x3);
            }
            float *vt = vp + ty * TW;
            for (int j = 0; j < 4; j++) { /* B^T along the column */
                _mm512_mask_storeu_ps(vt + (0 * 4 + j) * T, mt, _mm512_sub_ps(R[0][j], R[2][j]));
                _mm512_mask_storeu_ps(vt + (1 * 4 + j) * T, mt, _mm512_add_ps(R[1][j], R[2][j]));
                _mm512_mask_storeu_ps(vt + (2 * 4 + j) * T, mt, _mm512_sub_ps(R[2][j], R[1][j]));
                _mm512_mask_storeu_ps(vt + (3 * 4 + j) * T, mt, _mm512_sub_ps(R[1][j], R[3][j]));
            }
        }
    }
}

/* v_b[o] (beta 0: =, 1: +=) A^T M A of every tile, + b[o] when b (M:
 * [O][16][T]; v: the first image, images `is` floats apart). */
CV512 static void wino_output(const cv_geom *g, const float *M, int64_t O, int64_t is, int64_t nb,
                              const float *bias, float *v, float beta, int nt) {
    const int64_t H = g->H, W = g->W, TW = (W + 1) / 2, TH = (H + 1) / 2, TT = TH * TW;
    const int64_t T = nb * TT;
    const __mmask16 mw = (__mmask16)((1u << W) - 1u), mt = (__mmask16)((1u << TW) - 1u);
    /* lane 2 tx takes even[tx], lane 2 tx + 1 odd[tx] */
    const __m512i ilv = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t pl = 0; pl < nb * O; pl++) {
        const int64_t b = pl / O, o = pl % O;
        float *vp = v + b * is + o * H * W;
        const float *mp = M + o * 16 * T + b * TT;
        const __m512 bv = _mm512_set1_ps(bias ? bias[o] : 0.0f);
        for (int64_t ty = 0; ty < TH; ty++) {
            __m512 y[2][4]; /* A^T along the column, for each of the 4 columns */
            for (int j = 0; j < 4; j++) {
                const float *s = mp + ty * TW + j * T;
                const __m512 m0 = _mm512_maskz_loadu_ps(mt, s);
                const __m512 m1 = _mm512_maskz_loadu_ps(mt, s + 4 * T);
                const __m512 m2 = _mm512_maskz_loadu_ps(mt, s + 8 * T);
                const __m512 m3 = _mm512_maskz_loadu_ps(mt, s + 12 * T);
                y[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                y[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
            }
            for (int r = 0; r < 2; r++) {
                const int64_t h = 2 * ty + r;
                if (h >= H) break;
                const __m512 ev = _mm512_add_ps(_mm512_add_ps(y[r][0], y[r][1]), y[r][2]);
                const __m512 od = _mm512_sub_ps(_mm512_sub_ps(y[r][1], y[r][2]), y[r][3]);
                __m512 out = _mm512_add_ps(_mm512_permutex2var_ps(ev, ilv, od), bv);
                if (beta != 0.0f) out = _mm512_add_ps(_mm512_maskz_loadu_ps(mw, vp + h * W), out);
                _mm512_mask_storeu_ps(vp + h * W, mw, out);
            }
        }
    }
}

/* Mg[o][xi][t] = (A dY A^T)[xi] of every 2x2 output-gradient tile (zero
 * outside the map) of the O planes of nb images (dv: the first image). */
CV512 static void wino_grad_tiles(const cv_geom *g, const float *dv, int64_t O, int64_t is,
                                  int64_t nb, float *Mg, int nt) {
    const int64_t H = g->H, W = g->W, TW = (W + 1) / 2, TH = (H + 1) / 2, TT = TH * TW;
    const int64_t T = nb * TT;
    const wino_perm pm = wino_perm_make(W, TW, 0); /* idx[0]: column 2 tx, idx[1]: 2 tx + 1 */
    const __mmask16 mw = (__mmask16)((1u << W) - 1u), mt = (__mmask16)((1u << TW) - 1u);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t pl = 0; pl < nb * O; pl++) {
        const int64_t b = pl / O, o = pl % O;
        const float *dp = dv + b * is + o * H * W;
        float *mp = Mg + o * 16 * T + b * TT;
        for (int64_t ty = 0; ty < TH; ty++) {
            __m512 R[2][4]; /* A along the row: (d0, d0 + d1, d0 - d1, -d1) */
            for (int k = 0; k < 2; k++) {
                const int64_t h = 2 * ty + k;
                const __m512 row = h < H ? _mm512_maskz_loadu_ps(mw, dp + h * W) : _mm512_setzero_ps();
                const __m512 d0 = _mm512_maskz_permutexvar_ps(pm.m[0], pm.idx[0], row);
                const __m512 d1 = _mm512_maskz_permutexvar_ps(pm.m[1], pm.idx[1], row);
                R[k][0] = d0;
                R[k][1] = _mm512_add_ps(d0, d1);
                R[k][2] = _mm512_sub_ps(d0, d1);
                R[k][3] = _mm512_sub_ps(_mm512_setzero_ps(), d1);
            }
            float *mt0 = mp + ty * TW;
            for (int j = 0; j < 4; j++) { /* A along the column */
                _mm512_mask_storeu_ps(mt0 + (0 * 4 + j) * T, mt, R[0][j]);
                _mm512_mask_storeu_ps(mt0 + (1 * 4 + j) * T, mt, _mm512_add_ps(R[0][j], R[1][j]));
                _mm512_mask_storeu_ps(mt0 + (2 * 4 + j) * T, mt, _mm512_sub_ps(R[0][j], R[1][j]));
                _mm512_mask_storeu_ps(mt0 + (3 * 4 + j) * T, mt,
                                      _mm512_sub_ps(_mm512_setzero_ps(), R[1][j]));
            }
        }
    }
}

/* Maps of at most 8x8 (TT = TH TW <= 16 tiles, a plane <= 64 floats in 4
 * registers): every tile of a plane in one register. Element f of the
 * plane comes to lane t through one permutation of registers 0-1 or 2-3
 * (f >= 32) and a blend; `ok` zeroes the lanes outside the plane. */
typedef struct wino_pick {
    __m512i idx;
    __mmask16 hi, ok;
} wino_pick;

/* Lane t (tile ty = t / TW, tx = t % TW) takes element (2 ty + dr, 2 tx + dc). */
CV512 static wino_pick wino_pick_make(int64_t H, int64_t W, int64_t dr, int64_t dc) {
    const int64_t TW = (W + 1) / 2, TT = (H + 1) / 2 * TW;
    int32_t ix[16];
    unsigned hi = 0, ok = 0;
    for (int64_t t = 0; t < 16; t++) {
        const int64_t row = 2 * (t / TW) + dr, col = 2 * (t % TW) + dc;
        ix[t] = 0;
        if (t < TT && row >= 0 && row < H && col >= 0 && col < W) {
            const int64_t f = row * W + col;
            ix[t] = (int32_t)(f & 31);
            ok |= 1u << t;
            if (f >= 32) hi |= 1u << t;
        }
    }
    wino_pick p;
    p.idx = _mm512_loadu_si512(ix);
    p.hi = (__mmask16)hi;
    p.ok = (__mmask16)ok;
    return p;
}

CV512_INLINE static __m512 wino_take(const __m512 *r, const wino_pick *p) {
    const __m512 lo = _mm512_permutex2var_ps(r[0], p->idx, r[1]);
    const __m512 hi = _mm512_permutex2var_ps(r[2], p->idx, r[3]);
    return _mm512_maskz_mov_ps(p->ok, _mm512_mask_blend_ps(p->hi, lo, hi));
}

/* The plane of HW <= 64 floats at p in 4 registers (zero beyond HW). */
CV512_INLINE static void wino_load_plane(const float *p, int64_t HW, __m512 *r) {
    for (int q = 0; q < 4; q++) {
        const int64_t n = HW - 16 * q;
        r[q] = n <= 0 ? _mm512_setzero_ps()
                      : _mm512_maskz_loadu_ps((__mmask16)(n >= 16 ? 0xFFFF : (1u << n) - 1u), p + 16 * q);
    }
}

/* wino_input for maps of at most 8x8. */
CV512 static void wino_input_small(const cv_geom *g, const float *u, int64_t C, int64_t is,
                                   int64_t nb, float *V, int nt) {
    const int64_t H = g->H, W = g->W, TT = wino_tiles(g), T = nb * TT, HW = H * W;
    wino_pick pk[16];
    for (int k = 0; k < 16; k++) pk[k] = wino_pick_make(H, W, k / 4 - 1, k % 4 - 1);
    const __mmask16 mt = (__mmask16)((1u << TT) - 1u);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t pl = 0; pl < nb * C; pl++) {
        const int64_t b = pl / C, c = pl % C;
        __m512 r[4], x[4][4];
        wino_load_plane(u + b * is + c * HW, HW, r);
        for (int k = 0; k < 4; k++) { /* B^T along the row of patch row k */
            const __m512 x0 = wino_take(r, &pk[k * 4 + 0]), x1 = wino_take(r, &pk[k * 4 + 1]);
            const __m512 x2 = wino_take(r, &pk[k * 4 + 2]), x3 = wino_take(r, &pk[k * 4 + 3]);
            x[k][0] = _mm512_sub_ps(x0, x2);
            x[k][1] = _mm512_add_ps(x1, x2);
            x[k][2] = _mm512_sub_ps(x2, x1);
            x[k][3] = _mm512_sub_ps(x1, x3);
        }
        float *vp = V + c * 16 * T + b * TT;
        for (int j = 0; j < 4; j++) { /* B^T along the column */
            _mm512_mask_storeu_ps(vp + (0 * 4 + j) * T, mt, _mm512_sub_ps(x[0][j], x[2][j]));
            _mm512_mask_storeu_ps(vp + (1 * 4 + j) * T, mt, _mm512_add_ps(x[1][j], x[2][j]));
            _mm512_mask_storeu_ps(vp + (2 * 4 + j) * T, mt, _mm512_sub_ps(x[2][j], x[1][j]));
            _mm512_mask_storeu_ps(vp + (3 * 4 + j) * T, mt, _mm512_sub_ps(x[1][j], x[3][j]));
        }
    }
}

/* wino_output for maps of at most 8x8: the 4 outputs of every tile as 4
 * registers over the tiles, then each 16 floats of the plane one
 * permutation of two of them and a blend (odd rows). */
CV512 static void wino_output_small(const cv_geom *g, const float *M, int64_t O, int64_t is,
                                    int64_t nb, const float *bias, float *v, float beta, int nt) {
    const int64_t H = g->H, W = g->W, TW = (W + 1) / 2, TT = wino_tiles(g), T = nb * TT;
    const int64_t HW = H * W, nq = (HW + 15) / 16;
    __m512i idx[4];
    __mmask16 odd[4], mq[4];
    for (int64_t q = 0; q < nq; q++) {
        int32_t ix[16];
        unsigned od = 0, m = 0;
        for (int64_t i = 0; i < 16; i++) {
            const int64_t f = 16 * q + i, row = f / W, col = f % W;
            ix[i] = 0;
            if (f < HW) {
                ix[i] = (int32_t)(row / 2 * TW + col / 2 + 16 * (col % 2));
                m |= 1u << i;
                if (row % 2) od |= 1u << i;
            }
        }
        idx[q] = _mm512_loadu_si512(ix);
        odd[q] = (__mmask16)od, mq[q] = (__mmask16)m;
    }
    const __mmask16 mt = (__mmask16)((1u << TT) - 1u);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t pl = 0; pl < nb * O; pl++) {
        const int64_t b = pl / O, o = pl % O;
        const float *mp = M + o * 16 * T + b * TT;
        __m512 y[2][4], Y[2][2];
        for (int j = 0; j < 4; j++) { /* A^T along the column */
            const __m512 m0 = _mm512_maskz_loadu_ps(mt, mp + (0 * 4 + j) * T);
            const __m512 m1 = _mm512_maskz_loadu_ps(mt, mp + (1 * 4 + j) * T);
            const __m512 m2 = _mm512_maskz_loadu_ps(mt, mp + (2 * 4 + j) * T);
            const __m512 m3 = _mm512_maskz_loadu_ps(mt, mp + (3 * 4 + j) * T);
            y[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
            y[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
        }
        for (int r = 0; r < 2; r++) { /* A^T along the row */
            Y[r][0] = _mm512_add_ps(_mm512_add_ps(y[r][0], y[r][1]), y[r][2]);
            Y[r][1] = _mm512_sub_ps(_mm512_sub_ps(y[r][1], y[r][2]), y[r][3]);
        }
        float *vp = v + b * is + o * HW;
        const __m512 bv = _mm512_set1_ps(bias ? bias[o] : 0.0f);
        for (int64_t q = 0; q < nq; q++) {
            const __m512 ev = _mm512_permutex2var_ps(Y[0][0], idx[q], Y[0][1]);
            const __m512 od = _mm512_permutex2var_ps(Y[1][0], idx[q], Y[1][1]);
            __m512 out = _mm512_add_ps(_mm512_mask_blend_ps(odd[q], ev, od), bv);
            if (beta != 0.0f) out = _mm512_add_ps(_mm512_maskz_loadu_ps(mq[q], vp + 16 * q), out);
            _mm512_mask_storeu_ps(vp + 16 * q, mq[q], out);
        }
    }
}

/* wino_grad_tiles for maps of at most 8x8. */
CV512 static void wino_grad_tiles_small(const cv_geom *g, const float *dv, int64_t O, int64_t is,
                                        int64_t nb, float *Mg, int nt) {
    const int64_t H = g->H, W = g->W, TT = wino_tiles(g), T = nb * TT, HW = H * W;
    wino_pick pk[4];
    for (int k = 0; k < 4; k++) pk[k] = wino_pick_make(H, W, k / 2, k % 2);
    const __mmask16 mt = (__mmask16)((1u << TT) - 1u);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t pl = 0; pl < nb * O; pl++) {
        const int64_t b = pl / O, o = pl % O;
        __m512 r[4], R[2][4];
        wino_load_plane(dv + b * is + o * HW, HW, r);
        for (int k = 0; k < 2; k++) { /* A along the row: (d0, d0 + d1, d0 - d1, -d1) */
            const __m512 d0 = wino_take(r, &pk[k * 2]), d1 = wino_take(r, &pk[k * 2 + 1]);
            R[k][0] = d0;
            R[k][1] = _mm512_add_ps(d0, d1);
            R[k][2] = _mm512_sub_ps(d0, d1);
            R[k][3] = _mm512_sub_ps(_mm512_setzero_ps(), d1);
        }
        float *mp = Mg + o * 16 * T + b * TT;
        for (int j = 0; j < 4; j++) { /* A along the column */
            _mm512_mask_storeu_ps(mp + (0 * 4 + j) * T, mt, R[0][j]);
            _mm512_mask_storeu_ps(mp + (1 * 4 + j) * T, mt, _mm512_add_ps(R[0][j], R[1][j]));
            _mm512_mask_storeu_ps(mp + (2 * 4 + j) * T, mt, _mm512_sub_ps(R[0][j], R[1][j]));
            _mm512_mask_storeu_ps(mp + (3 * 4 + j) * T, mt, _mm512_sub_ps(_mm512_setzero_ps(), R[1][j]));
        }
    }
}

/* v (beta 0: =, 1: +=) the 3x3 pad-1 convolution of u [N, Ci, H, W] with
 * the transformed kernel U [Co][16][Ci], + bias; v: [N, Co, H, W]. The
 * products read U_xi, V_xi and write M_xi as strided matrices (ld 16 Ci,
 * 16 T): each plane's 16 transformed rows lie together. */
static void wino_conv(attn_ctx *ctx, const cv_geom *g, const float *u, int64_t Ci, const float *U,
                      int64_t Co, const float *bias, float *v, float beta, float *ws) {
    const int64_t HW = g->H * g->W, TT = wino_tiles(g), nb = wino_chunk(g);
    for (int64_t n0 = 0; n0 < g->N; n0 += nb) {
        const int64_t m = g->N - n0 < nb ? g->N - n0 : nb, T = m * TT;
        float *V = ws, *M = ws + 16 * Ci * T;
        const int nt = attn__threads_for(ctx, 32.0 * (double)Co * (double)Ci * (double)T);
        const int ntt = attn__threads_for(ctx, 16.0 * (double)(Ci + Co) * (double)T);
        if (g->H <= 8 && g->W <= 8)
            wino_input_small(g, u + n0 * Ci * HW, Ci, Ci * HW, m, V, ntt);
        else
            wino_input(g, u + n0 * Ci * HW, Ci, Ci * HW, m, V, ntt);
        for (int xi = 0; xi < 16; xi++) /* M_xi [Co, T] = U_xi [Co, Ci] V_xi [Ci, T] */
            attn__sgemm(nt, 0, 0, Co, T, Ci, 1.0f, U + xi * Ci, 16 * Ci, V + xi * T, 16 * T, 0.0f,
                        M + xi * T, 16 * T);
        if (g->H <= 8 && g->W <= 8)
            wino_output_small(g, M, Co, Co * HW, m, bias, v + n0 * Co * HW, beta, ntt);
        else
            wino_output(g, M, Co, Co * HW, m, bias, v + n0 * Co * HW, beta, ntt);
    }
}

void attn__cv_wino_forward(attn_ctx *ctx, const cv_geom *g, const float *u, const float *w,
                           const float *b, float *v, float beta, float *ws) {
    float *U = ws + attn__cv_wino_ws(g) - 16 * g->O * g->C;
    wino_filter(w, g->O, g->C, 0, 0, U);
    wino_conv(ctx, g, u, g->C, U, g->O, b, v, beta, ws);
}

void attn__cv_wino_backward(attn_ctx *ctx, const cv_geom *g, const float *u, const float *dv,
                            const float *w, float *du, float *dw, float *ws) {
    const int64_t C = g->C, O = g->O, HW = g->H * g->W, TT = wino_tiles(g), nb = wino_chunk(g);
    float *U = ws + attn__cv_wino_ws(g) - 16 * O * C;
    if (du) { /* du += conv(dv, w turned, channels swapped) */
        wino_filter(w, O, C, 1, 1, U);
        wino_conv(ctx, g, dv, O, U, C, NULL, du, 1.0f, ws);
    }
    if (!dw) return;
    /* dU [O][16][C] = sum over chunks of Mg_xi V_xi^T, in U's place */
    for (int64_t n0 = 0; n0 < g->N; n0 += nb) {
        const int64_t m = g->N - n0 < nb ? g->N - n0 : nb, T = m * TT;
        float *V = ws, *Mg = ws + 16 * C * T;
        const int nt = attn__threads_for(ctx, 32.0 * (double)O * (double)C * (double)T);
        const int ntt = attn__threads_for(ctx, 16.0 * (double)(C + O) * (double)T);
        if (g->H <= 8 && g->W <= 8) {
            wino_input_small(g, u + n0 * C * HW, C, C * HW, m, V, ntt);
            wino_grad_tiles_small(g, dv + n0 * O * HW, O, O * HW, m, Mg, ntt);
        } else {
            wino_input(g, u + n0 * C * HW, C, C * HW, m, V, ntt);
            wino_grad_tiles(g, dv + n0 * O * HW, O, O * HW, m, Mg, ntt);
        }
        for (int xi = 0; xi < 16; xi++) /* dU_xi [O, C] (=, then +=) Mg_xi [O, T] V_xi^T */
            attn__sgemm(nt, 0, 1, O, C, T, 1.0f, Mg + xi * T, 16 * T, V + xi * T, 16 * T,
                        n0 ? 1.0f : 0.0f, U + xi * C, 16 * C);
    }
    wino_filter_grad(U, O, C, dw);
}
#else
int64_t attn__cv_wino_ws(const cv_geom *g) {
    (void)g;
    return 0;
}
void attn__cv_wino_forward(attn_ctx *ctx, const cv_geom *g, const float *u, const float *w,
                           const float *b, float *v, float beta, float *ws) {
    (void)ctx, (void)g, (void)u, (void)w, (void)b, (void)v, (void)beta, (void)ws;
}
void attn__cv_wino_backward(attn_ctx *ctx, const cv_geom *g, const float *u, const float *dv,
                            const float *w, float *du, float *dw, float *ws) {
    (void)ctx, (void)g, (void)u, (void)dv, (void)w, (void)du, (void)dw, (void)ws;
}
#endif
