/* flash_sdpa_bf16.c: the bf16 kernels of the fused attention (graph op
 * FLASH_SDPA, contract and algorithm in flash_sdpa.c and docs/transformer.md,
 * "bf16 inputs" and "bf16 backward"): the forward and the backward on AVX-512
 * BF16 (VDPBF16PS) and on AMX tiles.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* syscall(), for the AMX permission */
#endif
#include "flash_sdpa_internal.h"

#if defined(FL_X86)
/* ---- forward, bf16 inputs on AVX-512 BF16 ------------------------------------------------- */

/* With bf16 q, k, v the products run on VDPBF16PS: each 32-bit lane holds a
 * pair of bf16 (the first in the low half) and the instruction adds
 * a.lo b.lo + a.hi b.hi to a float lane. Products of two bf16 are exact in
 * float, sums are float, so the logits are as accurate as float ones of the
 * same (bf16) inputs. P is rounded to bf16 (nearest even) for P V, as other
 * fused kernels do; l, m, the accumulators and the output stay float.
 * Operands, in 32-bit words (pairs):
 *   q rows  [QT][D2] (D2 = ceil(D / 2), the pairs of d, zero-padded),
 *   K tile  [D2][KT]: word (p, s) = pair p of key k0 + s (fl_stage_bf16),
 *   P rows  [8][KT / 2]: the bf16 row as it lies in memory,
 *   V       [Sp / 2][Dvp]: word (j, e) = (V[2j][e], V[2j + 1][e]).
 * With an odd number n of keys in a tile, the last pair reaches the key after
 * the span (weight 0), and AMX reads keys in chunks of 32: staging zeroes
 * every key at or beyond the batch's key length, so keys the contract says
 * are never read (key_lengths) cannot reach a row, whatever they hold. A NaN
 * in a key inside the span that one row cannot see (causal) reaches that row
 * on every path, as in the reference op (0 times NaN). */
#define FLBF __attribute__((target("avx512f,avx512bf16"), optimize("fp-contract=fast")))
#define FLBF_INLINE \
    __attribute__((target("avx512f,avx512bf16"), optimize("fp-contract=fast"), always_inline)) inline

typedef uint32_t fl_w2; /* a pair of bf16 */

FLBF_INLINE static void fl_kbf8x32(float *restrict C, int64_t ldc, const fl_w2 *restrict A,
                                   int64_t lda, const fl_w2 *restrict B, int64_t ldb, int64_t K2,
                                   int accumulate) {
    __m512 c0, c1, c2, c3, c4, c5, c6, c7, d0, d1, d2, d3, d4, d5, d6, d7;
    if (accumulate) {
        FL_LOAD_C();
    } else {
        c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = _mm512_setzero_ps();
        d0 = d1 = d2 = d3 = d4 = d5 = d6 = d7 = _mm512_setzero_ps();
    }
    const fl_w2 *a0 = A, *a1 = A + lda, *a2 = A + 2 * lda, *a3 = A + 3 * lda;
    const fl_w2 *a4 = A + 4 * lda, *a5 = A + 5 * lda, *a6 = A + 6 * lda, *a7 = A + 7 * lda;
    for (int64_t k = 0; k < K2; k++) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(B + k * ldb);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(B + k * ldb + 16);
#define FL_DP(i)                                                      \
    do {                                                              \
        const __m512bh a = (__m512bh)_mm512_set1_epi32((int)a##i[k]); \
        c##i = _mm512_dpbf16_ps(c##i, a, b0);                         \
        d##i = _mm512_dpbf16_ps(d##i, a, b1);                         \
    } while (0)
        FL_DP(0); FL_DP(1); FL_DP(2); FL_DP(3);
        FL_DP(4); FL_DP(5); FL_DP(6); FL_DP(7);
#undef FL_DP
    }
    FL_STORE_C();
}

/* n floats of src rounded to bf16 into dst, as attn_bf16_from_f32 (nearest
 * even; NaN keeps its sign and becomes quiet), 16 at a time. */
FLBF static void fl_round_bf16(uint16_t *restrict dst, const float *restrict src, int64_t n) {
    const __m512i lsb = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7FFF);
    const __m512i absm = _mm512_set1_epi32(0x7FFFFFFF), inf = _mm512_set1_epi32(0x7F800000);
    const __m512i quiet = _mm512_set1_epi32(0x40);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i u = _mm512_loadu_si512(src + i), hi = _mm512_srli_epi32(u, 16);
        const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absm), inf);
        __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, bias), _mm512_and_si512(hi, lsb));
        r = _mm512_mask_mov_epi32(_mm512_srli_epi32(r, 16), nan, _mm512_or_si512(hi, quiet));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(r));
    }
    if (i < n) attn_bf16_from_f32(dst + i, src + i, n - i);
}

int attn__fl_narrow(attn_ctx *ctx, fl_geom *g, uint16_t *dst) {
    const int64_t nq = g->B * g->H * g->T * g->D, nk = g->B * g->Hkv * g->S * g->D;
    const int64_t nv = g->B * g->Hkv * g->S * g->Dv;
    uint16_t *w = dst ? dst
                      : attn__alloc(ctx, sizeof(uint16_t) * (size_t)(nq + nk + nv),
                                    "flash_sdpa (f32 inputs rounded to bf16)");
    if (!w) return -1;
    for (int64_t b = 0; b < g->B; b++) {
        for (int64_t h = 0; h < g->H; h++)
            for (int64_t t = 0; t < g->T; t++)
                fl_round_bf16(w + ((b * g->H + h) * g->T + t) * g->D, g->q + fl_qoff(g, b, h, t),
                                   g->D);
        for (int64_t h = 0; h < g->Hkv; h++)
            for (int64_t s = 0; s < g->S; s++) {
                const int64_t i = (b * g->Hkv + h) * g->S + s;
                fl_round_bf16(w + nq + i * g->D, g->k + fl_koff(g, b, h, s), g->D);
                fl_round_bf16(w + nq + nk + i * g->Dv, g->v + fl_voff(g, b, h, s), g->Dv);
            }
    }
    g->qh = w, g->kh = w + nq, g->vh = w + nq + nk;
    return 0;
}

static inline int64_t fl_d2(const fl_geom *g) { return (g->D + 1) / 2; }

/* Per-thread scratch of the bf16 forward, in 4-byte words: q pairs, the
 * logits of a block, P in bf16, the accumulators, the dropout row; then the
 * staged K tiles [Sp / KT][D2][KT] and V pairs [Sp / 2][Dvp]. */
static int64_t fwd_bf16_tiles(const fl_geom *g) {
    return QT * fl_d2(g) + 8 * KT + 8 * KT / 2 + QT * up(g->Dv, 32) + KT;
}
static int64_t fwd_bf16_scratch(const fl_geom *g) {
    const int64_t Sp = fl_sp(g);
    return fwd_bf16_tiles(g) + Sp * fl_d2(g) + Sp / 2 * up(g->Dv, 32);
}

/* pair p of row x (bf16, w elements): x[2p] low, x[2p + 1] high (0 past w) */
static inline fl_w2 fl_pair(const uint16_t *x, int64_t p, int64_t w) {
    const uint32_t lo = x[2 * p], hi = 2 * p + 1 < w ? x[2 * p + 1] : 0u;
    return lo | hi << 16;
}

/* Rows [0, n) of the bf16 block X (rows of w elements) as key tiles
 * [Sp / KT][d2p][KT] of pairs along the row: word (p, s) of tile j holds
 * elements 2p, 2p + 1 of row j + s; zero for pairs p >= ceil(w / 2) and
 * rows >= n (K^T for the logits, V^T for dO V^T). */
static void fl_stage_tiles_bf16(const uint16_t *X, int64_t w, int64_t n, int64_t Sp, int64_t d2p,
                                fl_w2 *dst) {
    const int64_t w2 = (w + 1) / 2;
    for (int64_t j = 0; j < Sp; j += KT) {
        fl_w2 *blk = dst + j * d2p;
        for (int64_t s = 0; s < KT; s++)
            for (int64_t p = 0; p < d2p; p++)
                blk[p * KT + s] = j + s < n && p < w2 ? fl_pair(X + (j + s) * w, p, w) : 0u;
    }
}

/* Rows [0, n) of X (rows of w elements) as pairs of rows [Sp / 2][wp]: word
 * (i, e) holds X[2i][e] (low) and X[2i + 1][e] (high); zero beyond n rows
 * and w columns (V for P V, K for dS K). */
static void fl_stage_pairs_bf16(const uint16_t *X, int64_t w, int64_t n, int64_t Sp, int64_t wp,
                                fl_w2 *dst) {
    for (int64_t i = 0; i < Sp / 2; i++)
        for (int64_t e = 0; e < wp; e++) {
            const uint32_t lo = 2 * i < n && e < w ? X[2 * i * w + e] : 0u;
            const uint32_t hi = 2 * i + 1 < n && e < w ? X[(2 * i + 1) * w + e] : 0u;
            dst[i * wp + e] = lo | hi << 16;
        }
}

/* K tiles [Sp / KT][d2p][KT] (pairs p >= ceil(D / 2) zero) and V pairs
 * [Sp / 2][Dvp] of kv head (b, kh); keys at or beyond the batch's key length
 * are staged as zeros (never read from the inputs). */
static void fl_stage_bf16(const fl_geom *g, int64_t b, int64_t kh, int64_t d2p, fl_w2 *kt,
                          fl_w2 *vp) {
    const int64_t D = g->D, Dv = g->Dv, Sp = fl_sp(g), S = fl_key_limit(g, b);
    fl_stage_tiles_bf16(g->kh + (b * g->Hkv + kh) * g->S * D, D, S, Sp, d2p, kt);
    fl_stage_pairs_bf16(g->vh + (b * g->Hkv + kh) * g->S * Dv, Dv, S, Sp, up(Dv, 32), vp);
}

/* nr rows of KT floats (sb) rounded to bf16 pairs (pb, KT / 2 words a row) */
FLBF_INLINE static void fl_rows_to_bf16(const float *restrict sb, fl_w2 *restrict pb, int nr) {
    for (int64_t i = 0; i < nr * KT; i += 32) {
        const __m512bh w = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(sb + i + 16), _mm512_loadu_ps(sb + i));
        _mm512_storeu_si512(pb + i / 2, (__m512i)w);
    }
}

/* fwd_tile512 for bf16 inputs (see above). */
FLBF static void fwd_tile_bf16(const fl_geom *g, int64_t b, int64_t h, int64_t t0, int64_t nq,
                               float *ws, const fl_w2 *ktall, const fl_w2 *vall, float *out,
                               float *stats) {
    const int64_t T = g->T, D = g->D, Dv = g->Dv, bh = b * g->H + h;
    const int64_t D2 = fl_d2(g), Dvp = up(Dv, 32), nqp = up(nq, 8);
    const uint16_t *Q = g->qh + (bh * T + t0) * D;
    fl_w2 *qp = (fl_w2 *)ws;
    float *sb = ws + QT * D2;
    fl_w2 *pb = (fl_w2 *)(sb + 8 * KT);
    float *acc = (float *)(pb + 8 * KT / 2), *z = acc + QT * Dvp;
    fl_rows R;
    attn__fl_rows_begin(g, b, t0, nq, nqp, &R);
    for (int64_t r = 0; r < nqp; r++)
        for (int64_t p = 0; p < D2; p++) qp[r * D2 + p] = r < nq ? fl_pair(Q + r * D, p, D) : 0u;
    memset(acc, 0, sizeof(float) * (size_t)(nqp * Dvp));
    const __m512 sv = _mm512_set1_ps(g->scale);
    fl_walk w;
    attn__fl_walk_begin(g, h, t0, R.span_lo, R.span_hi, &w);
    int64_t k0;
    const uint64_t *bits;
    while (attn__fl_walk_next(&w, &k0, &bits)) {
        const int64_t n = R.span_hi - k0 < KT ? R.span_hi - k0 : KT;
        const fl_w2 *kb = ktall + k0 * D2, *vb = vall + k0 / 2 * Dvp;
        for (int64_t rb = 0; rb < nqp; rb += 8) {
            int on[8];
            if (!attn__fl_block_live(&R, rb, 8, k0, n, bits, on)) continue;
            for (int64_t c = 0; c < KT; c += 32)
                fl_kbf8x32(sb + c, KT, qp + rb * D2, D2, kb + c, KT, D2, 0);
            for (int64_t i = 0; i < 8 * KT; i += 16)
                _mm512_storeu_ps(sb + i, _mm512_mul_ps(_mm512_loadu_ps(sb + i), sv));
            attn__fl_block_mask(g, b, h, t0, rb, 8, sb, k0, n, &R, on, bits);
            fl_block512(sb, on, R.m + rb, R.l + rb, R.bad + rb, acc + rb * Dvp, Dvp, Dv);
            attn__fl_block_dropout(g, bh, t0, rb, 8, sb, k0, n, on, R.bad + rb, z);
            fl_rows_to_bf16(sb, pb, 8);
            for (int64_t c = 0; c < Dvp; c += 32)
                fl_kbf8x32(acc + rb * Dvp + c, Dvp, pb, KT / 2, vb + c, Dvp, (n + 1) / 2, 1);
        }
    }
    attn__fl_rows_end(g, bh, t0, nq, &R, acc, Dvp, out, stats);
}


/* ---- forward, bf16 inputs on AMX ------------------------------------------------------------ */

/* On CPUs with AMX-BF16 (and the kernel's permission to use the tile state,
 * asked for once with arch_prctl) the products of the bf16 forward run on
 * tiles: TDPBF16PS adds A [16 rows][16 pairs] times B [16 pairs][16 columns]
 * (pairs of bf16, the layout of the operands above) to a 16 x 16 float tile.
 * A block is 16 query rows; its logits are 4 tiles (KT = 64 keys) over the
 * pair chunks of d (D2 padded to whole chunks of 16 pairs), its P V adds
 * to 4 tiles of accumulators at a time. The softmax between them is
 * fl_block512 on each half of the block. Same numbers as the AVX-512 BF16
 * path up to the order of the float sums. */
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FLAMX __attribute__((target("avx512f,avx512bf16,amx-tile,amx-bf16"), optimize("fp-contract=fast")))

typedef struct fl_tilecfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} fl_tilecfg;

static inline int64_t fl_d2a(const fl_geom *g) { return up(fl_d2(g), 16); }

static int64_t fwd_amx_tiles(const fl_geom *g) {
    return QT * fl_d2a(g) + 16 * KT + 16 * KT / 2 + QT * up(g->Dv, 32) + KT;
}
static int64_t fwd_amx_scratch(const fl_geom *g) {
    const int64_t Sp = fl_sp(g);
    return fwd_amx_tiles(g) + Sp * fl_d2a(g) + Sp / 2 * up(g->Dv, 32);
}

FLAMX static void fwd_tile_amx(const fl_geom *g, int64_t b, int64_t h, int64_t t0, int64_t nq,
                               float *ws, const fl_w2 *ktall, const fl_w2 *vall, float *out,
                               float *stats) {
    const int64_t T = g->T, D = g->D, Dv = g->Dv, bh = b * g->H + h;
    const int64_t D2 = fl_d2(g), D2a = fl_d2a(g), Dvp = up(Dv, 32), nqp = up(nq, 16);
    const uint16_t *Q = g->qh + (bh * T + t0) * D;
    fl_w2 *qp = (fl_w2 *)ws;
    float *sb = ws + QT * D2a;
    fl_w2 *pb = (fl_w2 *)(sb + 16 * KT);
    float *acc = (float *)(pb + 16 * KT / 2), *z = acc + QT * Dvp;
    fl_rows R;
    fl_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) cfg.colsb[i] = 64, cfg.rows[i] = 16;
    _tile_loadconfig(&cfg);
    attn__fl_rows_begin(g, b, t0, nq, nqp, &R);
    for (int64_t r = 0; r < nqp; r++)
        for (int64_t p = 0; p < D2a; p++)
            qp[r * D2a + p] = r < nq && p < D2 ? fl_pair(Q + r * D, p, D) : 0u;
    memset(acc, 0, sizeof(float) * (size_t)(nqp * Dvp));
    const __m512 sv = _mm512_set1_ps(g->scale);
    fl_walk w;
    attn__fl_walk_begin(g, h, t0, R.span_lo, R.span_hi, &w);
    int64_t k0;
    const uint64_t *bits;
    while (attn__fl_walk_next(&w, &k0, &bits)) {
        const int64_t n = R.span_hi - k0 < KT ? R.span_hi - k0 : KT, chunks = (n + 31) / 32;
        const fl_w2 *kb = ktall + k0 * D2a, *vb = vall + k0 / 2 * Dvp;
        for (int64_t rb = 0; rb < nqp; rb += 16) {
            int on[16];
            if (!attn__fl_block_live(&R, rb, 16, k0, n, bits, on)) continue;
            /* logits: tiles 0-3 = 16 rows x keys [16 j, 16 j + 16) */
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int64_t c = 0; c < D2a; c += 16) {
                _tile_loadd(4, qp + rb * D2a + c, D2a * 4);
                _tile_loadd(5, kb + c * KT, KT * 4);
                _tile_dpbf16ps(0, 4, 5);
                _tile_loadd(5, kb + c * KT + 16, KT * 4);
                _tile_dpbf16ps(1, 4, 5);
                _tile_loadd(5, kb + c * KT + 32, KT * 4);
                _tile_dpbf16ps(2, 4, 5);
                _tile_loadd(5, kb + c * KT + 48, KT * 4);
                _tile_dpbf16ps(3, 4, 5);
            }
            _tile_stored(0, sb, KT * 4);
            _tile_stored(1, sb + 16, KT * 4);
            _tile_stored(2, sb + 32, KT * 4);
            _tile_stored(3, sb + 48, KT * 4);
            for (int64_t i = 0; i < 16 * KT; i += 16)
                _mm512_storeu_ps(sb + i, _mm512_mul_ps(_mm512_loadu_ps(sb + i), sv));
            attn__fl_block_mask(g, b, h, t0, rb, 16, sb, k0, n, &R, on, bits);
            fl_block512(sb, on, R.m + rb, R.l + rb, R.bad + rb, acc + rb * Dvp, Dvp, Dv);
            fl_block512(sb + 8 * KT, on + 8, R.m + rb + 8, R.l + rb + 8, R.bad + rb + 8,
                        acc + (rb + 8) * Dvp, Dvp, Dv);
            attn__fl_block_dropout(g, bh, t0, rb, 16, sb, k0, n, on, R.bad + rb, z);
            fl_rows_to_bf16(sb, pb, 16);
            /* acc [16 rows][e0, e0 + 64) += P V, in tiles 0-3, chunks of 32 keys */
            float *ar = acc + rb * Dvp;
            for (int64_t e0 = 0; e0 < Dvp; e0 += 64) {
                const int nj = Dvp - e0 >= 64 ? 4 : 2; /* Dvp is a multiple of 32 */
                _tile_loadd(0, ar + e0, Dvp * 4);
                _tile_loadd(1, ar + e0 + 16, Dvp * 4);
                if (nj == 4) {
                    _tile_loadd(2, ar + e0 + 32, Dvp * 4);
                    _tile_loadd(3, ar + e0 + 48, Dvp * 4);
                }
                for (int64_t c = 0; c < chunks; c++) {
                    const fl_w2 *vc = vb + c * 16 * Dvp + e0;
                    _tile_loadd(4, pb + c * 16, KT / 2 * 4);
                    _tile_loadd(5, vc, Dvp * 4);
                    _tile_dpbf16ps(0, 4, 5);
                    _tile_loadd(6, vc + 16, Dvp * 4);
                    _tile_dpbf16ps(1, 4, 6);
                    if (nj == 4) {
                        _tile_loadd(5, vc + 32, Dvp * 4);
                        _tile_dpbf16ps(2, 4, 5);
                        _tile_loadd(6, vc + 48, Dvp * 4);
                        _tile_dpbf16ps(3, 4, 6);
                    }
                }
                _tile_stored(0, ar + e0, Dvp * 4);
                _tile_stored(1, ar + e0 + 16, Dvp * 4);
                if (nj == 4) {
                    _tile_stored(2, ar + e0 + 32, Dvp * 4);
                    _tile_stored(3, ar + e0 + 48, Dvp * 4);
                }
            }
        }
    }
    _tile_release();
    attn__fl_rows_end(g, bh, t0, nq, &R, acc, Dvp, out, stats);
}

/* The bf16 forward: fwd_tile_amx (AMX) or fwd_tile_bf16 (AVX-512 BF16) over
 * the items of attn__flash_sdpa_forward. */
attn_status attn__fl_forward_bf16(attn_ctx *ctx, const fl_geom *g, float *out, float *stats) {
    const int64_t ntile = (g->T + QT - 1) / QT, items = g->B * g->H * ntile;
    const double work = 2.0 * (double)g->B * g->H * g->T * g->S * (double)(g->D + g->Dv);
    int nt = attn__threads_for(ctx, work);
    if (nt > items) nt = (int)items;
    const int amx = attn__amx_usable() && !(ctx->kernel_flags & ATTN_KERNELS_NO_AMX);
    const int64_t per = amx ? fwd_amx_scratch(g) : fwd_bf16_scratch(g), Sp = fl_sp(g);
    const int64_t d2p = amx ? fl_d2a(g) : fl_d2(g), tiles = amx ? fwd_amx_tiles(g) : fwd_bf16_tiles(g);
    float *ws = attn__fl_scratch(ctx, nt, per, "flash_sdpa forward (bf16 tiles, k, v)");
    int64_t *staged = ws ? attn__alloc(ctx, sizeof(int64_t) * (size_t)nt, "flash_sdpa forward")
                         : NULL;
    if (!staged) return ctx->status;
    for (int i = 0; i < nt; i++) staged[i] = -1;
    ATTN__OMP_FOR_DYNAMIC(nt, fl_fwd_chunk(items, nt))
    for (int64_t it = 0; it < items; it++) {
        const int tid = FL_TID();
        const int64_t bh = it / ntile, t0 = (it % ntile) * QT, b = bh / g->H, h = bh % g->H;
        const int64_t nq = g->T - t0 < QT ? g->T - t0 : QT, u = b * g->Hkv + h / g->G;
        float *w = ws + tid * per;
        fl_w2 *kt = (fl_w2 *)(w + tiles), *vp = kt + Sp * d2p;
        if (staged[tid] != u) {
            fl_stage_bf16(g, b, h / g->G, d2p, kt, vp);
            staged[tid] = u;
        }
        if (amx)
            fwd_tile_amx(g, b, h, t0, nq, w, kt, vp, out, stats);
        else
            fwd_tile_bf16(g, b, h, t0, nq, w, kt, vp, out, stats);
    }
    return ATTN_OK;
}

/* ---- backward, bf16 products ------------------------------------------------------------------ */

/* The backward of bwd_tile512 with its five products in bf16 (AMX tiles, or
 * VDPBF16PS in the 8x32 micro-kernel), every sum in f32; the softmax
 * recomputation, D_t and dS in f32 (docs/transformer.md, "bf16 backward").
 * Per query tile (64 rows, padded with zero rows) and key tile (64 keys):
 *   logits  = Q K^T          A: q pairs [64][d2p]    B: K^T tile [d2p][64]
 *            (the forward's operands, kernel and order: the same f32 bits,
 *             so logit - m is exactly what the forward exponentiated)
 *   dP      = dO V^T         A: dO pairs [64][Dv2]   B: V^T tile [Dv2][64]
 *   dV^T   += dO^T (P o Z)   A: dO^T [Dvp][32]       B: P pairs of rows [32][64]
 *   dK^T   += Q^T dS         A: Q^T [Dp][32]         B: dS pairs of rows [32][64]
 *   dQ     += dS K           A: dS [64][32]          B: K pairs of keys [Sp / 2][Dp]
 * (A row-major with pairs along the sum, B [pairs][columns], as TDPBF16PS and
 * fl_kbf8x32 take them). dK and dV accumulate transposed ([Dp][Sp],
 * [Dvp][Sp]) and are added once per unit (alpha applied there; dQ gets it
 * when its query tile is added). The functions below are compiled for AMX
 * too; with amx = 0 (the AVX-512 BF16 path) they run no tile instruction. */
#define FLBW                                                                         \
    __attribute__((target("avx512f,avx512bw,avx512bf16,amx-tile,amx-bf16"),       \
                   optimize("fp-contract=fast")))

/* C [M][N] (+)= A [M][K2 pairs] B [K2][N] in f32. AMX: M, N multiples of 16,
 * K2 of 16, the tile configuration of bwd_tile_bf16 loaded; else M a multiple
 * of 8 and N of 32. Per element the pairs are summed in ascending order of
 * 16-pair chunks (AMX) or pairs, as in the forward's logits. */
FLBW static void fl_bprod(float *C, int64_t ldc, const fl_w2 *A, int64_t lda, const fl_w2 *B,
                          int64_t ldb, int64_t M, int64_t N, int64_t K2, int accumulate, int amx) {
    if (!amx) {
        for (int64_t i = 0; i < M; i += 8)
            for (int64_t j = 0; j < N; j += 32)
                fl_kbf8x32(C + i * ldc + j, ldc, A + i * lda, lda, B + j, ldb, K2, accumulate);
        return;
    }
    const int64_t sc = ldc * 4, sa = lda * 4, sb = ldb * 4;
    for (int64_t i = 0; i < M; i += 16)
        for (int64_t j = 0; j < N; j += 64) {
            const int nj = N - j >= 64 ? 4 : (int)((N - j) / 16);
            float *c = C + i * ldc + j;
            if (accumulate) {
                _tile_loadd(0, c, sc);
                if (nj > 1) _tile_loadd(1, c + 16, sc);
                if (nj > 2) _tile_loadd(2, c + 32, sc);
                if (nj > 3) _tile_loadd(3, c + 48, sc);
            } else {
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
            }
            for (int64_t k = 0; k < K2; k += 16) {
                const fl_w2 *b = B + k * ldb + j;
                _tile_loadd(4, A + i * lda + k, sa);
                _tile_loadd(5, b, sb);
                _tile_dpbf16ps(0, 4, 5);
                if (nj > 1) {
                    _tile_loadd(6, b + 16, sb);
                    _tile_dpbf16ps(1, 4, 6);
                }
                if (nj > 2) {
                    _tile_loadd(5, b + 32, sb);
                    _tile_dpbf16ps(2, 4, 5);
                }
                if (nj > 3) {
                    _tile_loadd(6, b + 48, sb);
                    _tile_dpbf16ps(3, 4, 6);
                }
            }
            _tile_stored(0, c, sc);
            if (nj > 1) _tile_stored(1, c + 16, sc);
            if (nj > 2) _tile_stored(2, c + 32, sc);
            if (nj > 3) _tile_stored(3, c + 48, sc);
        }
}

/* Rows 2 t2 and 2 t2 + 1 of X [64][ld] (f32, KT columns) rounded to bf16 and
 * interleaved: out [32][KT], word (t2, s) = (X[2 t2][s], X[2 t2 + 1][s]). */
FLBW static void fl_row_pairs(const float *restrict X, fl_w2 *restrict out) {
    static const uint16_t order[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                       8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i idx = _mm512_loadu_si512(order);
    for (int64_t t2 = 0; t2 < QT / 2; t2++)
        for (int64_t s = 0; s < KT; s += 16) {
            const __m512bh w = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(X + (2 * t2 + 1) * KT + s),
                                                   _mm512_loadu_ps(X + 2 * t2 * KT + s));
            _mm512_storeu_si512(out + t2 * KT + s, _mm512_permutexvar_epi16(idx, (__m512i)w));
        }
}

/* The per-thread buffers of the bf16 backward (in 4-byte words). */
typedef struct fl_bbuf {
    int64_t d2p, dv2;            /* pairs of d (the forward's staging) and of e (x16) */
    fl_w2 *qp, *dop, *qT, *doT;  /* [64][d2p], [64][dv2], [Dp][32], [Dvp][32] */
    fl_w2 *pb, *dsb, *dsa;       /* [32][KT], [32][KT], [64][KT / 2] */
    uint16_t *dh;                /* dO of the tile in bf16 [64][Dv] */
    float *P, *dS, *dq, *drow, *z; /* [64][KT] x 2, [64][Dp], [64], [KT] */
    fl_w2 *kt, *vt, *kp;         /* staged: K^T, V^T tiles, K pairs [Sp / 2][Dp] */
    float *dkT, *dvT;            /* accumulators [Dp][Sp], [Dvp][Sp] */
} fl_bbuf;

static int64_t fl_dv2(const fl_geom *g) { return up((g->Dv + 1) / 2, 16); }

/* Words of fl_bbuf's tiles, staged operands, accumulators. */
static int64_t bwd_bf16_tiles(const fl_geom *g, int64_t d2p) {
    const int64_t Dp = up(g->D, 32), Dvp = up(g->Dv, 32), dv2 = fl_dv2(g);
    return QT * d2p + QT * dv2 + (Dp + Dvp) * QT / 2 + 3 * QT * KT / 2 + (QT * g->Dv + 1) / 2 +
           2 * QT * KT + QT * Dp + QT + KT;
}
static int64_t bwd_bf16_staged(const fl_geom *g, int64_t d2p) {
    const int64_t Sp = fl_sp(g);
    return Sp * d2p + Sp * fl_dv2(g) + Sp / 2 * up(g->D, 32);
}
static int64_t bwd_bf16_acc(const fl_geom *g) { return fl_sp(g) * (up(g->D, 32) + up(g->Dv, 32)); }

static void fl_bbuf_set(const fl_geom *g, int64_t d2p, float *w, float *acc, fl_bbuf *B) {
    const int64_t Dp = up(g->D, 32), Dvp = up(g->Dv, 32), Sp = fl_sp(g);
    fl_w2 *p = (fl_w2 *)w;
    B->d2p = d2p, B->dv2 = fl_dv2(g);
    B->qp = p, p += QT * d2p;
    B->dop = p, p += QT * B->dv2;
    B->qT = p, p += Dp * QT / 2;
    B->doT = p, p += Dvp * QT / 2;
    B->pb = p, p += QT / 2 * KT;
    B->dsb = p, p += QT / 2 * KT;
    B->dsa = p, p += QT * KT / 2;
    B->dh = (uint16_t *)p, p += (QT * g->Dv + 1) / 2;
    B->P = (float *)p, p += QT * KT;
    B->dS = (float *)p, p += QT * KT;
    B->dq = (float *)p, p += QT * Dp;
    B->drow = (float *)p, p += QT;
    B->z = (float *)p, p += KT;
    B->kt = p, p += Sp * d2p;
    B->vt = p, p += Sp * B->dv2;
    B->kp = p, p += Sp / 2 * Dp;
    B->dkT = acc ? acc : (float *)p;
    B->dvT = B->dkT + Dp * Sp;
}

/* The operands of a query tile: the rows' visible keys (lo, hi: empty for a
 * row that saw no key and the padding rows), their span, dO rounded to bf16
 * (dh), D_t = dO~_t . O_t in double (drow), and Q, dO in both pair layouts. */
static void fl_bbwd_begin(const fl_geom *g, const fl_grads *gr, int64_t b, int64_t h, int64_t t0,
                          int64_t nq, fl_bbuf *B, int64_t *lo, int64_t *hi, int64_t *span_lo,
                          int64_t *span_hi) {
    const int64_t T = g->T, D = g->D, Dv = g->Dv, bh = b * g->H + h, ld = g->os[2];
    const int64_t Dp = up(D, 32), Dvp = up(Dv, 32), D2 = fl_d2(g), Dv2 = (Dv + 1) / 2;
    const float *dO = gr->gy + fl_ooff(g, b, h, t0), *O = gr->out + fl_ooff(g, b, h, t0);
    const uint16_t *Q = g->qh + (bh * T + t0) * D, *dh = B->dh;
    *span_lo = g->S;
    *span_hi = 0;
    for (int64_t r = 0; r < QT; r++) {
        lo[r] = hi[r] = 0;
        B->drow[r] = 0.0f;
        if (r >= nq) continue;
        fl_range(g, b, t0 + r, &lo[r], &hi[r]);
        if (lo[r] < hi[r] && fl_stat(gr->stats, bh * T + t0 + r)[0] != -INFINITY) {
            if (lo[r] < *span_lo) *span_lo = lo[r];
            if (hi[r] > *span_hi) *span_hi = hi[r];
        } else {
            hi[r] = lo[r] = 0;
        }
        fl_round_bf16(B->dh + r * Dv, dO + r * ld, Dv);
        double acc = 0.0;
        for (int64_t e = 0; e < Dv; e++) {
            const uint32_t bits = (uint32_t)dh[r * Dv + e] << 16; /* widening is exact */
            float x;
            memcpy(&x, &bits, sizeof x);
            acc += (double)x * (double)O[r * ld + e];
        }
        B->drow[r] = (float)acc;
    }
    for (int64_t r = 0; r < QT; r++) {
        for (int64_t p = 0; p < B->d2p; p++)
            B->qp[r * B->d2p + p] = r < nq && p < D2 ? fl_pair(Q + r * D, p, D) : 0u;
        for (int64_t p = 0; p < B->dv2; p++)
            B->dop[r * B->dv2 + p] = r < nq && p < Dv2 ? fl_pair(dh + r * Dv, p, Dv) : 0u;
    }
    for (int64_t t2 = 0; t2 < QT / 2; t2++) {
        const int64_t r0 = 2 * t2, r1 = 2 * t2 + 1;
        for (int64_t d = 0; d < Dp; d++) {
            const uint32_t a = r0 < nq && d < D ? Q[r0 * D + d] : 0u;
            const uint32_t c = r1 < nq && d < D ? Q[r1 * D + d] : 0u;
            B->qT[d * (QT / 2) + t2] = a | c << 16;
        }
        for (int64_t e = 0; e < Dvp; e++) {
            const uint32_t a = r0 < nq && e < Dv ? dh[r0 * Dv + e] : 0u;
            const uint32_t c = r1 < nq && e < Dv ? dh[r1 * Dv + e] : 0u;
            B->doT[e * (QT / 2) + t2] = a | c << 16;
        }
    }
    memset(B->dq, 0, sizeof(float) * (size_t)(QT * Dp));
}

/* One query tile of the bf16 backward (see above). */
FLBW static void bwd_tile_bf16(const fl_geom *g, const fl_grads *gr, int64_t b, int64_t h,
                               int64_t t0, int64_t nq, fl_bbuf *B, int amx) {
    const int64_t Sp = fl_sp(g);
    const int64_t Dp = up(g->D, 32), Dvp = up(g->Dv, 32), d2p = B->d2p, dv2 = B->dv2;
    const int want_ds = gr->dq || gr->dk || gr->dl;
    float *P = B->P, *dS = B->dS;
    int64_t lo[QT], hi[QT], span_lo, span_hi;
    fl_bbwd_begin(g, gr, b, h, t0, nq, B, lo, hi, &span_lo, &span_hi);
    if (amx) {
        fl_tilecfg cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.palette = 1;
        for (int i = 0; i < 8; i++) cfg.colsb[i] = 64, cfg.rows[i] = 16;
        _tile_loadconfig(&cfg);
    }
    const __m512 sv = _mm512_set1_ps(g->scale);
    fl_walk w;
    attn__fl_walk_begin(g, h, t0, span_lo, span_hi, &w);
    int64_t k0;
    const uint64_t *bits;
    while (attn__fl_walk_next(&w, &k0, &bits)) {
        const int64_t n = span_hi - k0 < KT ? span_hi - k0 : KT;
        /* logits = scale (Q K^T), as the forward forms them */
        fl_bprod(P, KT, B->qp, d2p, B->kt + k0 * d2p, KT, QT, KT, d2p, 0, amx);
        for (int64_t i = 0; i < QT * KT; i += 16)
            _mm512_storeu_ps(P + i, _mm512_mul_ps(_mm512_loadu_ps(P + i), sv));
        if (want_ds) /* dP = dO V^T */
            fl_bprod(dS, KT, B->dop, dv2, B->vt + k0 * dv2, KT, QT, KT, dv2, 0, amx);
        for (int64_t r = 0; r < QT; r++) {
            if (!want_ds) memset(dS + r * KT, 0, sizeof(float) * KT);
            fl_bwd_tile_row(g, gr, b, h, t0 + r, k0, n, lo[r], hi[r], bits != NULL,
                            bits ? bits[r] : 0, P + r * KT, dS + r * KT, B->z, B->drow[r], want_ds);
        }
        if (gr->dv) { /* dV^T += dO^T (P o Z) */
            fl_row_pairs(P, B->pb);
            fl_bprod(B->dvT + k0, Sp, B->doT, QT / 2, B->pb, KT, Dvp, KT, QT / 2, 1, amx);
        }
        if (gr->dk) { /* dK^T += Q^T dS (alpha at the end) */
            fl_row_pairs(dS, B->dsb);
            fl_bprod(B->dkT + k0, Sp, B->qT, QT / 2, B->dsb, KT, Dp, KT, QT / 2, 1, amx);
        }
        if (gr->dq) { /* dQ += dS K (alpha at the end) */
            fl_rows_to_bf16(dS, B->dsa, QT);
            fl_bprod(B->dq, Dp, B->dsa, KT / 2, B->kp + k0 / 2 * Dp, Dp, QT, Dp, KT / 2, 1, amx);
        }
    }
    if (amx) {
        _tile_release();
        _mm256_zeroupper(); /* no AVX-SSE transition penalty for later SSE code */
    }
    if (gr->dq) {
        const int64_t D = g->D, ld = g->gqs[2];
        float *gq = gr->dq + fl_gqoff(g, b, h, t0);
        for (int64_t r = 0; r < nq; r++)
            for (int64_t d = 0; d < D; d++) gq[r * ld + d] += g->scale * B->dq[r * Dp + d];
    }
}

/* dK, dV of kv head (b, kh) += alpha dK^T, dV^T (transposed accumulators). */
static void fl_add_kv_bf16(const fl_geom *g, const fl_grads *gr, int64_t b, int64_t kh,
                           const float *dkT, const float *dvT) {
    const int64_t Sp = fl_sp(g);
    for (int64_t s = 0; s < g->S; s++) {
        if (gr->dk) {
            float *dk = gr->dk + fl_gkoff(g, b, kh, s);
            for (int64_t d = 0; d < g->D; d++) dk[d] += g->scale * dkT[d * Sp + s];
        }
        if (gr->dv) {
            float *dv = gr->dv + fl_gvoff(g, b, kh, s);
            for (int64_t e = 0; e < g->Dv; e++) dv[e] += dvT[e * Sp + s];
        }
    }
}

attn_status attn__fl_backward_bf16(attn_ctx *ctx, const fl_geom *g, const fl_grads *gr) {
    const int64_t ntile = (g->T + QT - 1) / QT, tiles_u = g->G * ntile, Sp = fl_sp(g);
    int64_t split, items;
    const int nt = fl_bwd_split(ctx, g, &split, &items);
    const int amx = attn__amx_usable() && !(ctx->kernel_flags & ATTN_KERNELS_NO_AMX);
    const int64_t d2p = amx ? fl_d2a(g) : fl_d2(g), accsz = bwd_bf16_acc(g);
    const int64_t tiles = bwd_bf16_tiles(g, d2p);
    const int64_t per = tiles + bwd_bf16_staged(g, d2p) + (split > 1 ? 0 : accsz);
    float *ws = attn__fl_scratch(ctx, nt, per, "flash_sdpa backward (bf16 tiles, k, v)");
    if (!ws) return ctx->status;
    float *accs = NULL;
    if (split > 1 && !(accs = attn__fl_scratch(ctx, (int)items, accsz,
                                               "flash_sdpa backward (dK, dV per query chunk)")))
        return ctx->status;
    ATTN__OMP_FOR_DYNAMIC(nt, 1)
    for (int64_t it = 0; it < items; it++) {
        const int64_t u = it / split, c = it % split, b = u / g->Hkv, kh = u % g->Hkv;
        fl_bbuf B;
        fl_bbuf_set(g, d2p, ws + FL_TID() * per, split > 1 ? accs + it * accsz : NULL, &B);
        const int64_t n = fl_key_limit(g, b);
        const uint16_t *K = g->kh + (b * g->Hkv + kh) * g->S * g->D;
        const uint16_t *V = g->vh + (b * g->Hkv + kh) * g->S * g->Dv;
        fl_stage_tiles_bf16(K, g->D, n, Sp, d2p, B.kt);
        fl_stage_tiles_bf16(V, g->Dv, n, Sp, B.dv2, B.vt);
        fl_stage_pairs_bf16(K, g->D, n, Sp, up(g->D, 32), B.kp);
        memset(B.dkT, 0, sizeof(float) * (size_t)accsz);
        for (int64_t j = c * tiles_u / split; j < (c + 1) * tiles_u / split; j++) {
            const int64_t h = kh * g->G + j / ntile, t0 = (j % ntile) * QT;
            bwd_tile_bf16(g, gr, b, h, t0, g->T - t0 < QT ? g->T - t0 : QT, &B, amx);
        }
        if (split == 1) fl_add_kv_bf16(g, gr, b, kh, B.dkT, B.dvT);
    }
    for (int64_t it = 0; split > 1 && it < items; it++) {
        const float *dkT = accs + it * accsz;
        fl_add_kv_bf16(g, gr, it / split / g->Hkv, it / split % g->Hkv, dkT,
                       dkT + up(g->D, 32) * Sp);
    }
    return ATTN_OK;
}
#endif
