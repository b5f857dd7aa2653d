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
 * one register; the transform along the columns combines whole rows, and
 * one two-source permutation brings a tile column's view of two tile rows
 * into one vector, which holds one transformed value of the 2 TW (<= 16)
 * tiles of a pair of tile rows (the 14x14 layer: 14 of 16 lanes). Maps of
 * at most 8x8 (the 7x7 layer: 16 tiles) hold every tile of the plane in
 * one register (the _small kernels). The filter transforms take 16
 * channels at a time (gathers of the kernels' taps).
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

/* Floats from one plane's 16 transformed rows (T columns each) of V, M or
 * Mg to the next: 16 more than 16 T, so that the rows of a product's
 * operand V_xi or M_xi (one per plane) do not fall on few L1 sets (16 T
 * floats is a multiple of 1 KiB for T = 80, conv3's chunk). */
static int64_t wino_ld(int64_t T) { return 16 * T + 16; }

int64_t attn__cv_wino_ws(const cv_geom *g) {
    return (g->C + g->O) * wino_ld(wino_tiles(g) * wino_chunk(g)) + 16 * g->O * g->C;
}

/* The lanes s0 .. s0 + 15 that exist of a row of S (a mask; S > s0). */
CV512_INLINE static __mmask16 wino_tail(int64_t S, int64_t s0) {
    return S - s0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (S - s0)) - 1u);
}

/* U_xi[r, s] = (G k G^T)[xi] for the 3x3 kernel k = w[o, c] (turned by 180
 * degrees when flip), r s = o c, or c o when swap (the data gradient);
 * U: [16][rows][cols] (each U_xi one dense matrix: rows 16 cols floats
 * apart put every row of a 16 x 64 U_xi in the same L1 set). Sixteen consecutive columns at once: their kernels
 * lie 9 floats apart in w (columns c) or 9 C (columns o, swap), gathered
 * tap by tap. */
CV512 static void wino_filter(const float *w, int64_t O, int64_t C, int flip, int swap, float *U) {
    const int64_t R = swap ? C : O, S = swap ? O : C;
    const int64_t rstep = swap ? 9 : 9 * C, sstep = swap ? 9 * C : 9;
    const __m512i gi = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int32_t)sstep));
    const __m512 half = _mm512_set1_ps(0.5f);
    for (int64_t r = 0; r < R; r++)
        for (int64_t s0 = 0; s0 < S; s0 += 16) {
            const __mmask16 m = wino_tail(S, s0);
            const float *k = w + r * rstep + s0 * sstep;
            __m512 kk[9], t[4][3];
            for (int e = 0; e < 9; e++)
                kk[e] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, gi, k + (flip ? 8 - e : e), 4);
            for (int j = 0; j < 3; j++) { /* G k: rows of G over the kernel's rows */
                t[0][j] = kk[j];
                t[1][j] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(kk[j], kk[3 + j]), kk[6 + j]));
                t[2][j] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(kk[j], kk[3 + j]), kk[6 + j]));
                t[3][j] = kk[6 + j];
            }
            float *ur = U + r * S + s0;
            for (int i = 0; i < 4; i++) { /* (G k) G^T */
                const __m512 u1 =
                    _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(t[i][0], t[i][1]), t[i][2]));
                const __m512 u2 =
                    _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(t[i][0], t[i][1]), t[i][2]));
                _mm512_mask_storeu_ps(ur + (i * 4 + 0) * R * S, m, t[i][0]);
                _mm512_mask_storeu_ps(ur + (i * 4 + 1) * R * S, m, u1);
                _mm512_mask_storeu_ps(ur + (i * 4 + 2) * R * S, m, u2);
                _mm512_mask_storeu_ps(ur + (i * 4 + 3) * R * S, m, t[i][2]);
            }
        }
}

/* dw[o, c] += G^T dU[o, c] G for every o, c (dU: [16][O][C]), sixteen c at
 * once (their kernels 9 floats apart in dw: gathered, summed, scattered). */
CV512 static void wino_filter_grad(const float *dU, int64_t O, int64_t C, float *dw) {
    const __m512i gi = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(9));
    const __m512 half = _mm512_set1_ps(0.5f);
    for (int64_t o = 0; o < O; o++)
        for (int64_t c0 = 0; c0 < C; c0 += 16) {
            const __mmask16 m = wino_tail(C, c0);
            __m512 d[4][4], t[3][4];
            for (int xi = 0; xi < 16; xi++)
                d[xi / 4][xi % 4] = _mm512_maskz_loadu_ps(m, dU + (xi * O + o) * C + c0);
            for (int j = 0; j < 4; j++) { /* G^T d */
                const __m512 s12 = _mm512_mul_ps(half, _mm512_add_ps(d[1][j], d[2][j]));
                t[0][j] = _mm512_add_ps(d[0][j], s12);
                t[1][j] = _mm512_mul_ps(half, _mm512_sub_ps(d[1][j], d[2][j]));
                t[2][j] = _mm512_add_ps(s12, d[3][j]);
            }
            float *k = dw + (o * C + c0) * 9;
            for (int i = 0; i < 3; i++) { /* (G^T d) G */
                const __m512 s12 = _mm512_mul_ps(half, _mm512_add_ps(t[i][1], t[i][2]));
                const __m512 v[3] = {_mm512_add_ps(t[i][0], s12),
                                     _mm512_mul_ps(half, _mm512_sub_ps(t[i][1], t[i][2])),
                                     _mm512_add_ps(s12, t[i][3])};
                for (int j = 0; j < 3; j++) {
                    float *kp = k + i * 3 + j;
                    const __m512 old = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, gi, kp, 4);
                    _mm512_mask_i32scatter_ps(kp, m, gi, _mm512_add_ps(old, v[j]), 4);
                }
            }
        }
}

/* Two tile rows per register: lanes 0 .. TW - 1 hold tile row ty, lanes
 * TW .. 2 TW - 1 (TW <= 8) tile row ty + 1, the 2 TW consecutive columns
 * of V, M and Mg of the two. The permutations of two rows a and b (at most
 * 16 columns, one register each) that give, in lane tx < TW, column
 * 2 tx + base + k of a and, in lane TW + tx, the same column of b (k =
 * 0..3; zero outside the row). */
typedef struct wino_perm {
    __m512i idx[4];
    __mmask16 m[4];
} wino_perm;

CV512 static wino_perm wino_perm_make(int64_t W, int64_t TW, int base) {
    wino_perm p;
    for (int k = 0; k < 4; k++) {
        int32_t ix[16];
        unsigned m = 0;
        for (int l = 0; l < 16; l++) {
            const int64_t tx = l < TW ? l : l - TW, col = 2 * tx + base + k;
            ix[l] = 0;
            if (l < 2 * TW && col >= 0 && col < W)
                ix[l] = (int32_t)(col + (l < TW ? 0 : 16)), m |= 1u << l;
        }
        p.idx[k] = _mm512_loadu_si512(ix);
        p.m[k] = (__mmask16)m;
    }
    return p;
}

/* Row h of a plane of H x W (W <= 16; zero outside the plane). */
CV512_INLINE static __m512 wino_row(const float *p, int64_t H, int64_t W, __mmask16 mw, int64_t h) {
    return h >= 0 && h < H ? _mm512_maskz_loadu_ps(mw, p + h * W) : _mm512_setzero_ps();
}

/* The store mask of the tile-row pair starting at ty: 2 TW lanes, TW for
 * the last tile row of an odd TH. */
CV512_INLINE static __mmask16 wino_pair_mask(int64_t TH, int64_t TW, int64_t ty) {
    return (__mmask16)((1u << (ty + 1 < TH ? 2 * TW : TW)) - 1u);
}

/* Brings the 16 rows of TT floats of a plane of V or Mg (p: its first row,
 * rows T floats apart) into L1 for the stores of the transforms: they
 * write 16 rows far apart, an L1 miss on nearly every store, and the
 * prefetches of the next plane overlap the stores of this one (conv2
 * 1.06x with the 14x14 pair kernels; no gain for the 7x7 whole-plane
 * kernels, nor for the loads of M by the output transform). */
CV512_INLINE static void wino_prefetch(const float *p, int64_t T, int64_t TT) {
    for (int xi = 0; xi < 16; xi++)
        for (int64_t f = 0; f < TT + 15; f += 16)
            _mm_prefetch((const char *)(p + xi * T + f), _MM_HINT_ET0);
}

/* V[c][xi][t0 + ty TW + tx] = (B^T d B)[xi] of every tile of the C planes of
 * nb images (u: the first image; images `is` floats apart), t0 = b TH TW
 * for image b, T = nb TH TW columns. Per pair of tile rows: B^T along the
 * columns on whole rows (rows 2 ty - 1 .. 2 ty + 2 of tile row ty, then
 * the same of ty + 1), then each of the 4 results' tile columns brought
 * into the pair's lanes by 4 permutations and B^T applied along the row. */
CV512 static void wino_input(const cv_geom *g, const float *u, int64_t C, int64_t is, int64_t nb,
                             float *V, int nt) {
    const int64_t H = g->H, W = g->W, TW = (W + 1) / 2, TH = (H + 1) / 2, TT = TH * TW;
    const int64_t T = nb * TT;
    const wino_perm pm = wino_perm_make(W, TW, -1);
    const __mmask16 mw = (__mmask16)((1u << W) - 1u);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t pl = 0; pl < nb * C; pl++) {
        const int64_t b = pl / C, c = pl % C;
        const float *up = u + b * is + c * H * W;
        float *vp = V + c * wino_ld(T) + b * TT;
        if (pl + 1 < nb * C) wino_prefetch(V + (pl + 1) % C * wino_ld(T) + (pl + 1) / C * TT, T, TT);
        for (int64_t ty = 0; ty < TH; ty += 2) {
            __m512 r[6], ca[4], cb[4];
            for (int k = 0; k < 6; k++) r[k] = wino_row(up, H, W, mw, 2 * ty - 1 + k);
            /* B^T along the column: d0 - d2, d1 + d2, d2 - d1, d1 - d3 */
            ca[0] = _mm512_sub_ps(r[0], r[2]), cb[0] = _mm512_sub_ps(r[2], r[4]);
            ca[1] = _mm512_add_ps(r[1], r[2]), cb[1] = _mm512_add_ps(r[3], r[4]);
            ca[2] = _mm512_sub_ps(r[2], r[1]), cb[2] = _mm512_sub_ps(r[4], r[3]);
            ca[3] = _mm512_sub_ps(r[1], r[3]), cb[3] = _mm512_sub_ps(r[3], r[5]);
            const __mmask16 ms = wino_pair_mask(TH, TW, ty);
            float *vt = vp + ty * TW;
            for (int i = 0; i < 4; i++) { /* B^T along the row */
                const __m512 x0 = _mm512_maskz_permutex2var_ps(pm.m[0], ca[i], pm.idx[0], cb[i]);
                const __m512 x1 = _mm512_maskz_permutex2var_ps(pm.m[1], ca[i], pm.idx[1], cb[i]);
                const __m512 x2 = _mm512_maskz_permutex2var_ps(pm.m[2], ca[i], pm.idx[2], cb[i]);
                const __m512 x3 = _mm512_maskz_permutex2var_ps(pm.m[3], ca[i], pm.idx[3], cb[i]);
                _mm512_mask_storeu_ps(vt + (i * 4 + 0) * T, ms, _mm512_sub_ps(x0, x2));
                _mm512_mask_storeu_ps(vt + (i * 4 + 1) * T, ms, _mm512_add_ps(x1, x2));
                _mm512_mask_storeu_ps(vt + (i * 4 + 2) * T, ms, _mm512_sub_ps(x2, x1));
                _mm512_mask_storeu_ps(vt + (i * 4 + 3) * T, ms, _mm512_sub_ps(x1, x3));
            }
        }
    }
}

/* v_b[o] (beta 0: =, 1: +=) A^T M A of every tile, + b[o] when b (M:
 * [O][16][T]; v: the first image, images `is` floats apart). Per pair of
 * tile rows: A^T along the column, then along the row, giving the even and
 * odd output columns of the 4 output rows; one permutation interleaves
 * them into each row. */
CV512 static void wino_output(const cv_geom *g, const float *M, int64_t O, int64_t is, int64_t nb,
                              const float *bias, float *v, float beta, int nt) {
    const int64_t H = g->H, W = g->W, TW = (W + 1) / 2, TH = (H + 1) / 2, TT = TH * TW;
    const int64_t T = nb * TT;
    const __mmask16 mw = (__mmask16)((1u << W) - 1u);
    /* lane 2 tx takes even[tx], lane 2 tx + 1 odd[tx]: tile row ty; the
     * second of a pair reads lanes TW + tx */
    __m512i ilv[2];
    {
        int32_t ix[2][16];
        for (int l = 0; l < 16; l++) {
            ix[0][l] = l / 2 + 16 * (l % 2);
            ix[1][l] = l / 2 + (int32_t)TW + 16 * (l % 2); /* <= 7 + 8 */
        }
        ilv[0] = _mm512_loadu_si512(ix[0]);
        ilv[1] = _mm512_loadu_si512(ix[1]);
    }
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t pl = 0; pl < nb * O; pl++) {
        const int64_t b = pl / O, o = pl % O;
        float *vp = v + b * is + o * H * W;
        const float *mp = M + o * wino_ld(T) + b * TT;
        const __m512 bv = _mm512_set1_ps(bias ? bias[o] : 0.0f);
        for (int64_t ty = 0; ty < TH; ty += 2) {
            const __mmask16 ms = wino_pair_mask(TH, TW, ty);
            __m512 y[2][4]; /* A^T along the column, for each of the 4 columns */
            for (int j = 0; j < 4; j++) {
                const float *s = mp + ty * TW + j * T;
                const __m512 m0 = _mm512_maskz_loadu_ps(ms, s);
                const __m512 m1 = _mm512_maskz_loadu_ps(ms, s + 4 * T);
                const __m512 m2 = _mm512_maskz_loadu_ps(ms, s + 8 * T);
                const __m512 m3 = _mm512_maskz_loadu_ps(ms, s + 12 * T);
                y[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                y[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
            }
            for (int r = 0; r < 2; r++) {
                const __m512 ev = _mm512_add_ps(_mm512_add_ps(y[r][0], y[r][1]), y[r][2]);
                const __m512 od = _mm512_sub_ps(_mm512_sub_ps(y[r][1], y[r][2]), y[r][3]);
                for (int q = 0; q < 2; q++) {
                    const int64_t h = 2 * (ty + q) + r;
                    if (h >= H) continue;
                    __m512 out = _mm512_add_ps(_mm512_permutex2var_ps(ev, ilv[q], od), bv);
                    if (beta != 0.0f)
                        out = _mm512_add_ps(_mm512_maskz_loadu_ps(mw, vp + h * W), out);
                    _mm512_mask_storeu_ps(vp + h * W, mw, out);
                }
            }
        }
    }
}

/* Mg[o][xi][t] = (A dY A^T)[xi] of every 2x2 output-gradient tile (zero
 * outside the map) of the O planes of nb images (dv: the first image).
 * Per pair of tile rows: A along the column on whole rows, then along the
 * row on the pair's lanes. */
CV512 static void wino_grad_tiles(const cv_geom *g, const float *dv, int64_t O, int64_t is,
                                  int64_t nb, float *Mg, int nt) {
    const int64_t H = g->H, W = g->W, TW = (W + 1) / 2, TH = (H + 1) / 2, TT = TH * TW;
    const int64_t T = nb * TT;
    const wino_perm pm = wino_perm_make(W, TW, 0); /* idx[0]: column 2 tx, idx[1]: 2 tx + 1 */
    const __mmask16 mw = (__mmask16)((1u << W) - 1u);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t pl = 0; pl < nb * O; pl++) {
        const int64_t b = pl / O, o = pl % O;
        const float *dp = dv + b * is + o * H * W;
        float *mp = Mg + o * wino_ld(T) + b * TT;
        if (pl + 1 < nb * O) wino_prefetch(Mg + (pl + 1) % O * wino_ld(T) + (pl + 1) / O * TT, T, TT);
        for (int64_t ty = 0; ty < TH; ty += 2) {
            __m512 r[4], ca[4], cb[4];
            for (int k = 0; k < 4; k++) r[k] = wino_row(dp, H, W, mw, 2 * ty + k);
            /* A along the column: (d0, d0 + d1, d0 - d1, -d1) */
            ca[0] = r[0], cb[0] = r[2];
            ca[1] = _mm512_add_ps(r[0], r[1]), cb[1] = _mm512_add_ps(r[2], r[3]);
            ca[2] = _mm512_sub_ps(r[0], r[1]), cb[2] = _mm512_sub_ps(r[2], r[3]);
            ca[3] = _mm512_sub_ps(_mm512_setzero_ps(), r[1]);
            cb[3] = _mm512_sub_ps(_mm512_setzero_ps(), r[3]);
            const __mmask16 ms = wino_pair_mask(TH, TW, ty);
            float *mt0 = mp + ty * TW;
            for (int i = 0; i < 4; i++) { /* A along the row */
                const __m512 d0 = _mm512_maskz_permutex2var_ps(pm.m[0], ca[i], pm.idx[0], cb[i]);
                const __m512 d1 = _mm512_maskz_permutex2var_ps(pm.m[1], ca[i], pm.idx[1], cb[i]);
                _mm512_mask_storeu_ps(mt0 + (i * 4 + 0) * T, ms, d0);
                _mm512_mask_storeu_ps(mt0 + (i * 4 + 1) * T, ms, _mm512_add_ps(d0, d1));
                _mm512_mask_storeu_ps(mt0 + (i * 4 + 2) * T, ms, _mm512_sub_ps(d0, d1));
                _mm512_mask_storeu_ps(mt0 + (i * 4 + 3) * T, ms, _mm512_sub_ps(_mm512_setzero_ps(), d1));
            }
        }
    }
}

/* Maps of at most 8x8 (TT = TH TW <= 16 tiles, a plane <= 64 floats in 4
 * registers): every tile of a plane in one register. Element f of the
 * plane comes to lane t through one permutation of registers 0-1 (the
 * lanes of `lo`, which zeroes the others) or 2-3 (f >= 32: the lanes of
 * `hi`) and a blend; lanes outside the plane are in neither. */
typedef struct wino_pick {
    __m512i idx;
    __mmask16 lo, hi;
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
    p.lo = (__mmask16)(ok & ~hi);
    return p;
}

CV512_INLINE static __m512 wino_take(const __m512 *r, const wino_pick *p) {
    const __m512 lo = _mm512_maskz_permutex2var_ps(p->lo, r[0], p->idx, r[1]);
    return _mm512_mask_blend_ps(p->hi, lo, _mm512_permutex2var_ps(r[2], p->idx, r[3]));
}

/* The whole-plane kernels fetch the plane WINO_AHEAD planes ahead (of HW
 * floats at p) into L1: the loads of the planes (NCHW input or output
 * gradient, read once, from beyond L2) took a third of the input
 * transform's time. */
#define WINO_AHEAD 8
CV512_INLINE static void wino_prefetch_plane(const float *p, int64_t HW) {
    for (int64_t f = 0; f < HW + 15; f += 16) _mm_prefetch((const char *)(p + f), _MM_HINT_T0);
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
        if (pl + WINO_AHEAD < nb * C)
            wino_prefetch_plane(u + (pl + WINO_AHEAD) / C * is + (pl + WINO_AHEAD) % C * HW, HW);
        wino_load_plane(u + b * is + c * HW, HW, r);
        for (int k = 0; k < 4; k++) { /* B^T along the row of patch row k */
            const __m512 x0 = wino_take(r, &pk[k * 4 + 0]), x1 = wino_take(r, &pk[k * 4 + 1]);
            const __m512 x2 = wino_take(r, &pk[k * 4 + 2]), x3 = wino_take(r, &pk[k * 4 + 3]);
            x[k][0] = _mm512_sub_ps(x0, x2);
            x[k][1] = _mm512_add_ps(x1, x2);
            x[k][2] = _mm512_sub_ps(x2, x1);
            x[k][3] = _mm512_sub_ps(x1, x3);
        }
        float *vp = V + c * wino_ld(T) + b * TT;
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
        const float *mp = M + o * wino_ld(T) + b * TT;
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
        if (pl + WINO_AHEAD < nb * O)
            wino_prefetch_plane(dv + (pl + WINO_AHEAD) / O * is + (pl + WINO_AHEAD) % O * HW, HW);
        wino_load_plane(dv + b * is + o * HW, HW, r);
        for (int k = 0; k < 2; k++) { /* A along the row: (d0, d0 + d1, d0 - d1, -d1) */
            const __m512 d0 = wino_take(r, &pk[k * 2]), d1 = wino_take(r, &pk[k * 2 + 1]);
            R[k][0] = d0;
            R[k][1] = _mm512_add_ps(d0, d1);
            R[k][2] = _mm512_sub_ps(d0, d1);
            R[k][3] = _mm512_sub_ps(_mm512_setzero_ps(), d1);
        }
        float *mp = Mg + o * wino_ld(T) + b * TT;
        for (int j = 0; j < 4; j++) { /* A along the column */
            _mm512_mask_storeu_ps(mp + (0 * 4 + j) * T, mt, R[0][j]);
            _mm512_mask_storeu_ps(mp + (1 * 4 + j) * T, mt, _mm512_add_ps(R[0][j], R[1][j]));
            _mm512_mask_storeu_ps(mp + (2 * 4 + j) * T, mt, _mm512_sub_ps(R[0][j], R[1][j]));
            _mm512_mask_storeu_ps(mp + (3 * 4 + j) * T, mt, _mm512_sub_ps(_mm512_setzero_ps(), R[1][j]));
        }
    }
}

/* v (beta 0: =, 1: +=) the 3x3 pad-1 convolution of u [N, Ci, H, W] with
 * the transformed kernel U [16][Co][Ci], + bias; v: [N, Co, H, W]. The
 * products read V_xi and write M_xi as strided matrices (ld 16 T: each
 * plane's 16 transformed rows lie together), U_xi as a dense one. */
static void wino_conv(attn_ctx *ctx, const cv_geom *g, const float *u, int64_t Ci, const float *U,
                      int64_t Co, const float *bias, float *v, float beta, float *ws) {
    const int64_t HW = g->H * g->W, TT = wino_tiles(g), nb = wino_chunk(g);
    for (int64_t n0 = 0; n0 < g->N; n0 += nb) {
        const int64_t m = g->N - n0 < nb ? g->N - n0 : nb, T = m * TT;
        float *V = ws, *M = ws + Ci * wino_ld(T);
        const int nt = attn__threads_for(ctx, 32.0 * (double)Co * (double)Ci * (double)T);
        const int ntt = attn__threads_for(ctx, 16.0 * (double)(Ci + Co) * (double)T);
        if (g->H <= 8 && g->W <= 8)
            wino_input_small(g, u + n0 * Ci * HW, Ci, Ci * HW, m, V, ntt);
        else
            wino_input(g, u + n0 * Ci * HW, Ci, Ci * HW, m, V, ntt);
        for (int xi = 0; xi < 16; xi++) /* M_xi [Co, T] = U_xi [Co, Ci] V_xi [Ci, T] */
            attn__sgemm(nt, 0, 0, Co, T, Ci, 1.0f, U + xi * Co * Ci, Ci, V + xi * T, wino_ld(T), 0.0f,
                        M + xi * T, wino_ld(T));
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
    /* dU [16][O][C] = sum over chunks of Mg_xi V_xi^T, in U's place */
    for (int64_t n0 = 0; n0 < g->N; n0 += nb) {
        const int64_t m = g->N - n0 < nb ? g->N - n0 : nb, T = m * TT;
        float *V = ws, *Mg = ws + C * wino_ld(T);
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
            attn__sgemm(nt, 0, 1, O, C, T, 1.0f, Mg + xi * T, wino_ld(T), V + xi * T, wino_ld(T),
                        n0 ? 1.0f : 0.0f, U + xi * O * C, C);
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
