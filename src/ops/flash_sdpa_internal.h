/* flash_sdpa_internal.h: what the fused attention's two files share
 * (flash_sdpa.c: geometry, masks, the f32 kernels, the backward;
 * flash_sdpa_bf16.c: the bf16 kernels, forward and backward): the
 * geometry, the tile walk and row state, the AVX-512 row pass, and the
 * private helpers both call. See flash_sdpa.c for the op's contract.
 */
#ifndef ATTN_OPS_FLASH_SDPA_INTERNAL_H
#define ATTN_OPS_FLASH_SDPA_INTERNAL_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "../core/vmath.h"
#include "sdpa_common.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ATTN_NO_CLONES)
#define FL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FL_CLONES
#endif

#define QT 64 /* query rows per tile */
#define KT 64 /* keys per tile (a multiple of 64) */

#if defined(_OPENMP)
#define FL_TID() omp_get_thread_num()
#else
#define FL_TID() 0
#endif

/* the x86-64 GCC build with per-function targets (AVX-512, BF16, AMX) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ATTN_NO_CLONES)
#define FL_X86 1
#endif

typedef struct fl_geom {
    int64_t B, H, Hkv, T, S, D, Dv, G;
    float scale, p;
    int causal;
    int64_t window;
    const float *q, *k, *v; /* f32 inputs (bf16 ones: widened copies, fl_widen) */
    int64_t qs[3], ks[3], vs[3]; /* strides of (b, head, row) of q, k, v (views read in place) */
    int64_t gqs[3], gks[3], gvs[3]; /* the same of their gradients (contiguous unless packed) */
    int64_t os[3];               /* the same of out and its gradient */
    int64_t off[3];              /* element offsets of q, k, v in their inputs (packed) */
    const uint16_t *qh, *kh, *vh; /* bf16 inputs, else NULL */
    const float *bias;
    int64_t bst[4];
    const int32_t *kl;
    const float *slopes; /* NULL or the ALiBi slopes [H] */
    const attn_sparse_pattern *sp;  /* NULL or the sparse pattern (saved[1]) */
    const attn_sparse_layout *L;    /* its tile layout (QT x KT), compiled per call */
    uint64_t seed, offset;
} fl_geom;

static inline int64_t up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* Keys visible to query t of batch b: [*lo, *hi), empty when *lo >= *hi
 * (the rules of sdpa.h). */
static inline void fl_range(const fl_geom *g, int64_t b, int64_t t, int64_t *lo, int64_t *hi) {
    sdpa_visible(g->S, g->T, g->causal, g->window, g->kl, b, t, lo, hi);
}

/* The keys of batch b that may be read: key_lengths[b], or S. */
static inline int64_t fl_key_limit(const fl_geom *g, int64_t b) {
    return g->kl && g->kl[b] < g->S ? g->kl[b] : g->S;
}

static inline const float *fl_bias_row(const fl_geom *g, int64_t b, int64_t h, int64_t t) {
    return g->bias ? g->bias + b * g->bst[0] + h * g->bst[1] + t * g->bst[2] : NULL;
}

/* Keys of the staged operands: S rounded up to whole key tiles. Key tiles
 * start at multiples of KT (a row's visible range is masked inside them). */
static inline int64_t fl_sp(const fl_geom *g) { return up(g->S, KT); }

/* The first key tile of a span starting at key lo. */
static inline int64_t fl_tile_start(int64_t lo) { return lo - lo % KT; }

/* The key tiles a query tile computes: every tile of its span [lo, hi)
 * without a pattern; with one, only the tiles of its layout entry list
 * that meet the span (skipped tiles are never seen). */
typedef struct fl_walk {
    int64_t k0, end;               /* the span's first tile, its end */
    const int64_t *kt, *at;        /* the layout's entries (NULL: dense) */
    int64_t e, ne;
    const uint64_t *mask;
} fl_walk;

/* Row t of head h of batch b in q, k, v (kv head h), out (and their
 * gradients: out's shares its layout; q, k, v's are fl_gqoff, fl_gkoff,
 * fl_gvoff). */
static inline int64_t fl_qoff(const fl_geom *g, int64_t b, int64_t h, int64_t t) {
    return b * g->qs[0] + h * g->qs[1] + t * g->qs[2];
}
static inline int64_t fl_koff(const fl_geom *g, int64_t b, int64_t h, int64_t s) {
    return b * g->ks[0] + h * g->ks[1] + s * g->ks[2];
}
static inline int64_t fl_voff(const fl_geom *g, int64_t b, int64_t h, int64_t s) {
    return b * g->vs[0] + h * g->vs[1] + s * g->vs[2];
}
/* The same rows in the gradients of q, k, v. */
static inline int64_t fl_gqoff(const fl_geom *g, int64_t b, int64_t h, int64_t t) {
    return b * g->gqs[0] + h * g->gqs[1] + t * g->gqs[2];
}
static inline int64_t fl_gkoff(const fl_geom *g, int64_t b, int64_t h, int64_t s) {
    return b * g->gks[0] + h * g->gks[1] + s * g->gks[2];
}
static inline int64_t fl_gvoff(const fl_geom *g, int64_t b, int64_t h, int64_t s) {
    return b * g->gvs[0] + h * g->gvs[1] + s * g->gvs[2];
}
static inline int64_t fl_ooff(const fl_geom *g, int64_t b, int64_t h, int64_t t) {
    return b * g->os[0] + h * g->os[1] + t * g->os[2];
}

/* Block of key tile k0 (a multiple of KT) in a tile-major transposed buffer
 * of width w. */
static inline const float *fl_tile(const float *all, int64_t k0, int64_t w) { return all + k0 * w; }

/* The forward's work items (b, h, query tile) are handed out in chunks of
 * this many consecutive items, about eight per thread: few enough that a
 * thread mostly stays on one head (it restages K and V when the head
 * changes), enough that a thread on a slower CPU takes fewer of them. */
static inline int fl_fwd_chunk(int64_t items, int nt) {
    const int64_t c = (items + 8 * (int64_t)nt - 1) / (8 * (int64_t)nt);
    return c < 1 ? 1 : (int)c;
}

/* The per-row state of a query tile in the forward: each row's visible keys
 * [lo, hi), the span of the tile (the union), the running max m, sum l and
 * a NaN flag. Rows nq .. nqp - 1 (padding) see nothing and count as bad. */
typedef struct fl_rows {
    int64_t lo[QT], hi[QT], span_lo, span_hi;
    float m[QT];
    double l[QT];
    int bad[QT];
} fl_rows;

/* Row r can take part in the key tile [k0, k0 + n). */
static inline int fl_row_on(const fl_rows *R, int64_t r, int64_t k0, int64_t n) {
    return !R->bad[r] && R->hi[r] > k0 && R->lo[r] < k0 + n;
}

/* The row statistics of query row i ([B, H, T] flattened): st[0] = m,
 * st[1] = 1 / l (the layout of saved[0] above). */
static inline const float *fl_stat(const float *stats, int64_t i) { return stats + 2 * i; }

typedef struct fl_grads {
    float *dq, *dk, *dv; /* NULL when not needed */
    float *dl;           /* [B,H,T,S] dS kept for the bias gradient, or NULL */
    const float *out, *gy, *stats; /* stats: saved[0], (m, 1 / l) per row */
} fl_grads;

/* The backward's work items: units (b, kv head) of the G query heads of a
 * group, each owning dK, dV of its kv head; with fewer units than threads a
 * unit's query tiles are cut into *split chunks (each with its own dK, dV
 * buffers, summed per unit in chunk order). *items = units * split; returns
 * the thread count. */
static inline int fl_bwd_split(attn_ctx *ctx, const fl_geom *g, int64_t *split, int64_t *items) {
    const int64_t units = g->B * g->Hkv, tiles_u = g->G * ((g->T + QT - 1) / QT);
    const double work = 4.0 * (double)g->B * g->H * g->T * g->S * (double)(g->D + g->Dv);
    int nt = attn__threads_for(ctx, work);
    *split = 1;
    if (units < nt) {
        *split = (nt + units - 1) / units;
        if (*split > tiles_u) *split = tiles_u;
    }
    *items = units * *split;
    if (nt > *items) nt = (int)*items;
    return nt;
}


#if defined(FL_X86)
/* 1 when the fused op's products run in bf16: q, k, v in bf16, or f32 under
 * ATTN_PRECISION_BF16 (the inputs, dO, P and dS rounded to bf16, every sum
 * in f32), on a CPU with AVX-512 BF16 (and BW) unless the context asks for
 * the portable kernels. Elsewhere bf16 inputs are widened and f32 ones stay
 * f32. */
static inline int fl_bf16_cpu(const attn_ctx *ctx) {
    if (ctx->kernel_flags & ATTN_KERNELS_PORTABLE) return 0;
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
}
static inline int fl_bf16_kernels(const attn_ctx *ctx, const fl_geom *g) {
    return (g->qh || ctx->precision == ATTN_PRECISION_BF16) && fl_bf16_cpu(ctx);
}

/* bf16 q, k, v of g: contiguous [B, H, T, D], [B, Hkv, S, D], [B, Hkv, S, Dv]
 * copies of the f32 inputs rounded to nearest even, in dst (the node's
 * saved[3], which the backward then reads instead of rounding again) or,
 * dst NULL, in the arena; g->qh, kh, vh set (the f32 pointers and strides
 * stay, for the gradients). 0, or -1 with the context's error set. */
int attn__fl_narrow(attn_ctx *ctx, fl_geom *g, uint16_t *dst);

/* saved[3]'s data (the bf16 copies of q, k, v), or NULL */
static inline uint16_t *fl_saved_bf16(const attn_node *node) {
    return node->saved[3] ? attn_bf16(node->saved[3]) : NULL;
}

/* The bf16 backward (flash_sdpa_bf16.c): g with its bf16 copies (g->qh, kh,
 * vh), gradients and dS as the f32 backward adds them. ATTN_OK, or the
 * context's error. */
attn_status attn__fl_backward_bf16(attn_ctx *ctx, const fl_geom *g, const fl_grads *gr);
#endif

/* Defined in flash_sdpa.c (see there). */
void attn__fl_keep(const fl_geom *g, uint64_t base, int64_t n, float *z);
void attn__fl_walk_begin(const fl_geom *g, int64_t h, int64_t t0, int64_t span_lo, int64_t span_hi,
                         fl_walk *w);
int attn__fl_walk_next(fl_walk *w, int64_t *k0, const uint64_t **bits);
void attn__fl_apply_bits(float *restrict row, uint64_t bits);
void attn__fl_mask_row(const fl_geom *g, int64_t h, int64_t t, float *sc, int64_t n, int64_t k0,
                       int64_t lo, int64_t hi, const float *brow);
void attn__fl_rows_begin(const fl_geom *g, int64_t b, int64_t t0, int64_t nq, int64_t nqp,
                         fl_rows *R);
fl_geom attn__fl_geometry(const attn_node *node);
int attn__fl_layout(attn_ctx *ctx, const attn_node *node, fl_geom *g, attn_sparse_layout *L,
                    int keep);
float attn__fl_exp(float *restrict x, float m);
void attn__fl_scal(float *restrict y, float a, int64_t n);
void attn__fl_gemm(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb,
                   int64_t M, int64_t N, int64_t K, int accumulate);
void attn__fl_pad(float *restrict dst, int64_t rows, int64_t wp, const float *restrict src,
                  int64_t n, int64_t w, int64_t lds, float a);
void attn__fl_tr_tiles(float *restrict dst, const float *restrict src, int64_t n, int64_t w,
                       int64_t lds, int64_t Sp);
void attn__fl_rows_end(const fl_geom *g, int64_t bh, int64_t t0, int64_t nq, const fl_rows *R,
                       const float *acc, int64_t Dvp, float *out, float *stats);

static inline float *attn__fl_scratch(attn_ctx *ctx, int slots, int64_t n, const char *what) {
    return sdpa_scratch(ctx, "flash_sdpa", slots, n, what);
}

/* Shared by the files of the op (flash_sdpa.c unless said): the largest of
 * x[0 .. KT) (*nan = 1 when one is NaN); bf16 inputs widened to f32 copies
 * (attn__fl_widen) and, under bf16 precision, f32 inputs as the bf16 copies
 * the forward uses (attn__fl_as_forward), 0 or -1 with the error set; the
 * weights from the saved statistics (flash_sdpa_ref.c). */
float attn__fl_rowmax(const float *restrict x, int *nan);
int attn__fl_widen(attn_ctx *ctx, fl_geom *g);
int attn__fl_as_forward(attn_ctx *ctx, const attn_node *node, fl_geom *g);
int attn__fl_weights(attn_ctx *ctx, const attn_node *node, float *P);

/* The decode path (flash_sdpa_decode.c): calls of at most FL_DIRECT_T query
 * rows that need no gradient (attn__fl_direct) read K and V in place
 * (attn__fl_forward_direct); attn__fl_dot_keys: z[s] = q . K[s lds] for
 * s < n, q scaled and zero-padded to a multiple of 32, the same bits
 * whatever the grouping of the keys. */
#define FL_DIRECT_T 4
int attn__fl_direct(const attn_ctx *ctx, const attn_node *node, const fl_geom *g);
attn_status attn__fl_forward_direct(attn_ctx *ctx, const fl_geom *g, float *out, float *stats);
void attn__fl_dot_keys(float *restrict z, const float *restrict q, const float *restrict K,
                       int64_t lds, int64_t n, int64_t D);

/* The generic micro-kernels' attributes and vectors (flash_sdpa.c's fl_mk,
 * flash_sdpa_decode.c): clones with FMA contraction on x86-64 with GCC. */
#if defined(__GNUC__)
#if defined(__x86_64__) && !defined(__clang__) && !defined(ATTN_NO_CLONES)
#define FL_MK_ATTR \
    __attribute__((target_clones("avx512f", "arch=haswell", "default"), optimize("fp-contract=fast")))
#else
#define FL_MK_ATTR
#endif
typedef float fl_v16 __attribute__((vector_size(64)));
#define FL_LD(v, p) memcpy(&(v), (p), sizeof(v))
#define FL_ST(p, v) memcpy((p), &(v), sizeof(v))
#endif

#if defined(FL_X86)
#include <immintrin.h>
#define FL512 __attribute__((target("avx512f"), optimize("fp-contract=fast")))
#define FL512_INLINE __attribute__((target("avx512f"), optimize("fp-contract=fast"), always_inline)) inline

/* Rows i of the 8x32 accumulator tiles c0..c7 (columns 0-15) and d0..d7
 * (16-31) of every AVX-512 micro-kernel below, loaded from / stored to C. */
#define FL_LOADROW(i) c##i = _mm512_loadu_ps(C + i * ldc), d##i = _mm512_loadu_ps(C + i * ldc + 16)
#define FL_STROW(i) _mm512_storeu_ps(C + i * ldc, c##i), _mm512_storeu_ps(C + i * ldc + 16, d##i)
#define FL_LOAD_C() (FL_LOADROW(0), FL_LOADROW(1), FL_LOADROW(2), FL_LOADROW(3), \
                     FL_LOADROW(4), FL_LOADROW(5), FL_LOADROW(6), FL_LOADROW(7))
#define FL_STORE_C() (FL_STROW(0), FL_STROW(1), FL_STROW(2), FL_STROW(3), \
                      FL_STROW(4), FL_STROW(5), FL_STROW(6), FL_STROW(7))

/* Block helpers of the AVX-512 paths, defined in flash_sdpa.c. */
int attn__fl_block_live(const fl_rows *R, int64_t rb, int nr, int64_t k0, int64_t n,
                        const uint64_t *bits, int *on);
void attn__fl_block_mask(const fl_geom *g, int64_t b, int64_t h, int64_t t0, int64_t rb, int nr,
                         float *sb, int64_t k0, int64_t n, const fl_rows *R, const int *on,
                         const uint64_t *bits);
void attn__fl_block_dropout(const fl_geom *g, int64_t bh, int64_t t0, int64_t rb, int nr,
                            float *sb, int64_t k0, int64_t n, const int *on, const int *bad,
                            float *z);

/* The bf16 forward (flash_sdpa_bf16.c): q, k, v of g in bf16 (g->qh, kh, vh),
 * on AMX tiles or AVX-512 BF16 as the context allows; out and the row
 * statistics as the f32 forward writes them. */
attn_status attn__fl_forward_bf16(attn_ctx *ctx, const fl_geom *g, float *out, float *stats);

/* The keys of a partial tile that some live row of the 8-row block at rb
 * sees (the OR of their masks); every key when the tile is full (bits
 * NULL). */
static inline uint64_t fl_block_bits(const uint64_t *bits, int64_t rb, const int *on) {
    if (!bits) return ~(uint64_t)0;
    uint64_t lb = 0;
    for (int i = 0; i < 8; i++) lb |= on[i] ? bits[rb + i] : 0u;
    return lb;
}

/* exp(x) on the lanes of k, 0 on the others, for x in [-87, 88] on the lanes
 * of k (the others may hold anything: -inf, NaN, huge values; their result is
 * discarded, except that a NaN lane of k gives NaN). Cody-Waite reduction
 * x = n ln2 + r with n = round(x log2 e) (roundscale), |r| <= ln2 / 2 up to
 * rounding, the polynomial of attn__exp_core (vmath.h) evaluated by Horner
 * down to its constant terms, and 2^n applied by scalef, whose zero-masking
 * also does the caller's masking: 12 vector operations per 16 lanes, where
 * the shifter-and-exponent-bits form with its separate clamp and mask took
 * 17 (the row pass is about a fifth of the forward's time at D = 64). */
FL512_INLINE static __m512 fl_exp16_maskz(__mmask16 k, __m512 x) {
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(k, p, n);
}

/* The 8 horizontal reductions of v[0..7] at once, result i of v[i]: pairs of
 * vectors fold their 256-bit halves, then their 128-bit quarters, then the
 * lanes of each quarter (12 shuffles and 7 operations instead of 8 separate
 * reductions of 7 steps each). FL_RED8(name, op) defines name(v). */
#define FL_RED8(name, op)                                                                      \
    FL512_INLINE static __m256 name(const __m512 *v) {                                         \
        __m512 t[4];                                                                           \
        for (int i = 0; i < 4; i++)                                                            \
            t[i] = op(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),   \
                      _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));  \
        /* t[i]: quarters (v[2i] 0+2, v[2i] 1+3, v[2i+1] 0+2, v[2i+1] 1+3) */                  \
        const __m512 u0 = op(_mm512_shuffle_f32x4(t[0], t[1], _MM_SHUFFLE(2, 0, 2, 0)),       \
                             _mm512_shuffle_f32x4(t[0], t[1], _MM_SHUFFLE(3, 1, 3, 1)));      \
        const __m512 u1 = op(_mm512_shuffle_f32x4(t[2], t[3], _MM_SHUFFLE(2, 0, 2, 0)),       \
                             _mm512_shuffle_f32x4(t[2], t[3], _MM_SHUFFLE(3, 1, 3, 1)));      \
        /* quarter j of u0: the 4 partial results of v[j]; of u1: of v[4 + j] */              \
        const __m512 w = op(_mm512_unpacklo_ps(u0, u1), _mm512_unpackhi_ps(u0, u1));          \
        const __m512 x = op(w, _mm512_permute_ps(w, _MM_SHUFFLE(1, 0, 3, 2)));                 \
        /* lane 0 of quarter j: result j; lane 1: result 4 + j */                              \
        const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0); \
        return _mm512_castps512_ps256(_mm512_permutexvar_ps(idx, x));                          \
    }
FL_RED8(fl_red8_max, _mm512_max_ps)
FL_RED8(fl_red8_add, _mm512_add_ps)
#undef FL_RED8

/* Online-softmax update of the 8 rows of a block of logits (KT each, already
 * masked and biased; rows with live[r] == 0 are zeroed), in three passes
 * over the rows, each of independent iterations: (1) the rows' maxima
 * (reduced together, fl_red8_max); (2) per row: a NaN marks it bad (bad[r] =
 * 1, row zeroed), a row of -inf is zeroed, a larger maximum rescales the
 * running sum l[r] and accumulator row acc + r ldacc by exp(m_old - m_new);
 * (3) the row becomes exp(logit - m[r]) (0 where logit - m < -87, -inf
 * included), and the 8 rows' sums, reduced together in float (fl_red8_add),
 * are added to l in double. */
FL512_INLINE static void fl_block512(float *restrict sb, const int *live, float *m, double *l,
                                     int *bad, float *restrict acc, int64_t ldacc, int64_t Dv) {
    float mx[8];
    int go[8];
    __m512 red[8];
    __mmask16 nan[8];
    for (int r = 0; r < 8; r++) {
        const float *row = sb + r * KT;
        __mmask16 nr = 0;
        __m512 mv = _mm512_set1_ps(-INFINITY);
        for (int c = 0; c < KT; c += 64) {
            const __m512 x0 = _mm512_loadu_ps(row + c), x1 = _mm512_loadu_ps(row + c + 16);
            const __m512 x2 = _mm512_loadu_ps(row + c + 32), x3 = _mm512_loadu_ps(row + c + 48);
            nr |= _mm512_cmp_ps_mask(x0, x1, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(x2, x3, _CMP_UNORD_Q);
            mv = _mm512_max_ps(mv, _mm512_max_ps(_mm512_max_ps(x0, x1), _mm512_max_ps(x2, x3)));
        }
        red[r] = mv;
        nan[r] = nr;
    }
    _mm256_storeu_ps(mx, fl_red8_max(red));
    for (int r = 0; r < 8; r++) go[r] = live[r] ? (nan[r] ? -1 : mx[r] != -INFINITY) : 0;
    for (int r = 0; r < 8; r++) {
        if (go[r] < 0) bad[r] = 1;
        if (go[r] <= 0 || !(mx[r] > m[r])) continue;
        if (m[r] != -INFINITY) {
            const float alpha = expf(m[r] - mx[r]);
            float *a = acc + r * ldacc;
            l[r] *= (double)alpha;
            const __m512 av = _mm512_set1_ps(alpha);
            int64_t e = 0;
            for (; e + 16 <= Dv; e += 16) _mm512_storeu_ps(a + e, _mm512_mul_ps(_mm512_loadu_ps(a + e), av));
            for (; e < Dv; e++) a[e] *= alpha;
        }
        m[r] = mx[r];
    }
    const __m512 lo = _mm512_set1_ps(-87.0f), zero = _mm512_setzero_ps();
    for (int r = 0; r < 8; r++) {
        red[r] = zero;
        if (go[r] <= 0) {
            for (int c = 0; c < KT; c += 16) _mm512_storeu_ps(sb + r * KT + c, zero);
            continue;
        }
        const __m512 mv = _mm512_set1_ps(m[r]);
        __m512 sum = zero;
        for (int c = 0; c < KT; c += 64) {
        float *row = sb + r * KT + c;
        __m512 x0 = _mm512_sub_ps(_mm512_loadu_ps(row), mv), x1 = _mm512_sub_ps(_mm512_loadu_ps(row + 16), mv);
        __m512 x2 = _mm512_sub_ps(_mm512_loadu_ps(row + 32), mv), x3 = _mm512_sub_ps(_mm512_loadu_ps(row + 48), mv);
        x0 = fl_exp16_maskz(_mm512_cmp_ps_mask(x0, lo, _CMP_GE_OQ), x0);
        x1 = fl_exp16_maskz(_mm512_cmp_ps_mask(x1, lo, _CMP_GE_OQ), x1);
        x2 = fl_exp16_maskz(_mm512_cmp_ps_mask(x2, lo, _CMP_GE_OQ), x2);
        x3 = fl_exp16_maskz(_mm512_cmp_ps_mask(x3, lo, _CMP_GE_OQ), x3);
        sum = _mm512_add_ps(sum, _mm512_add_ps(_mm512_add_ps(x0, x1), _mm512_add_ps(x2, x3)));
        _mm512_storeu_ps(row, x0), _mm512_storeu_ps(row + 16, x1);
        _mm512_storeu_ps(row + 32, x2), _mm512_storeu_ps(row + 48, x3);
        }
        red[r] = sum;
    }
    /* rows that did not take part add +0.0: l unchanged */
    _mm512_storeu_pd(l, _mm512_add_pd(_mm512_loadu_pd(l), _mm512_cvtps_pd(fl_red8_add(red))));
}
/* C[8][32] (+)= A[8][K] B[K][32]: the micro-kernel of fl_mk8 with its 16
 * accumulators in named registers (no stack copies on entry and exit). */
FL512_INLINE static void fl_k8x32(float *restrict C, int64_t ldc, const float *restrict A,
                                  int64_t lda, const float *restrict B, int64_t ldb, int64_t K,
                                  int accumulate) {
    __m512 c0, c1, c2, c3, c4, c5, c6, c7, d0, d1, d2, d3, d4, d5, d6, d7;
    if (accumulate) {
        FL_LOAD_C();
    } else {
        c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = _mm512_setzero_ps();
        d0 = d1 = d2 = d3 = d4 = d5 = d6 = d7 = _mm512_setzero_ps();
    }
    const float *a0 = A, *a1 = A + lda, *a2 = A + 2 * lda, *a3 = A + 3 * lda;
    const float *a4 = A + 4 * lda, *a5 = A + 5 * lda, *a6 = A + 6 * lda, *a7 = A + 7 * lda;
    for (int64_t k = 0; k < K; k++) {
        const __m512 b0 = _mm512_loadu_ps(B + k * ldb), b1 = _mm512_loadu_ps(B + k * ldb + 16);
#define FL_FMA(i)                                      \
    do {                                               \
        const __m512 a = _mm512_set1_ps(a##i[k]);      \
        c##i = _mm512_fmadd_ps(a, b0, c##i);           \
        d##i = _mm512_fmadd_ps(a, b1, d##i);           \
    } while (0)
        FL_FMA(0); FL_FMA(1); FL_FMA(2); FL_FMA(3);
        FL_FMA(4); FL_FMA(5); FL_FMA(6); FL_FMA(7);
#undef FL_FMA
    }
    FL_STORE_C();
}

/* C[8][32] (+)= A^T B with A [K][lda] read by column: row i of the product
 * is column i of A (the backward's P^T dO and dS^T Q without transposing
 * the tiles). */
FL512_INLINE static void fl_k8x32t(float *restrict C, int64_t ldc, const float *restrict A,
                                   int64_t lda, const float *restrict B, int64_t ldb, int64_t K) {
    __m512 c0, c1, c2, c3, c4, c5, c6, c7, d0, d1, d2, d3, d4, d5, d6, d7;
    FL_LOAD_C();
    for (int64_t k = 0; k < K; k++) {
        const float *ak = A + k * lda;
        const __m512 b0 = _mm512_loadu_ps(B + k * ldb), b1 = _mm512_loadu_ps(B + k * ldb + 16);
#define FL_FMA(i)                                      \
    do {                                               \
        const __m512 a = _mm512_set1_ps(ak[i]);        \
        c##i = _mm512_fmadd_ps(a, b0, c##i);           \
        d##i = _mm512_fmadd_ps(a, b1, d##i);           \
    } while (0)
        FL_FMA(0); FL_FMA(1); FL_FMA(2); FL_FMA(3);
        FL_FMA(4); FL_FMA(5); FL_FMA(6); FL_FMA(7);
#undef FL_FMA
    }
    FL_STORE_C();
}

/* C[4][64] (+)= A[4][K] B[K][64], and with A read by column (fl_k4x64t,
 * always accumulating: row i of the product is column i of A [K][lda]). Per
 * k: 4 loads of B and 4 broadcasts of A for 16 FMAs, where fl_k8x32 needs 2
 * and 8: on the Ice Lake Xeon the 4 x 64 block runs at 94-100% of the FMA
 * peak on L1-resident operands with K = 64, the 8 x 32 one at 81-85%
 * (build/bench/bench_flash_kernels). Every element
 * of C is one FMA chain over k in order in both, so the two give the same
 * bits. */
#define FL_ROW4_DECL(i) __m512 c##i##0, c##i##1, c##i##2, c##i##3
#define FL_ROW4_LD(i) (c##i##0 = _mm512_loadu_ps(C + i * ldc), c##i##1 = _mm512_loadu_ps(C + i * ldc + 16), \
                       c##i##2 = _mm512_loadu_ps(C + i * ldc + 32), c##i##3 = _mm512_loadu_ps(C + i * ldc + 48))
#define FL_ROW4_ZERO(i) (c##i##0 = c##i##1 = c##i##2 = c##i##3 = _mm512_setzero_ps())
#define FL_ROW4_ST(i) (_mm512_storeu_ps(C + i * ldc, c##i##0), _mm512_storeu_ps(C + i * ldc + 16, c##i##1), \
                       _mm512_storeu_ps(C + i * ldc + 32, c##i##2), _mm512_storeu_ps(C + i * ldc + 48, c##i##3))
#define FL_FMA4(i, s)                                  \
    do {                                               \
        const __m512 a = _mm512_set1_ps(s);            \
        c##i##0 = _mm512_fmadd_ps(a, b0, c##i##0);     \
        c##i##1 = _mm512_fmadd_ps(a, b1, c##i##1);     \
        c##i##2 = _mm512_fmadd_ps(a, b2, c##i##2);     \
        c##i##3 = _mm512_fmadd_ps(a, b3, c##i##3);     \
    } while (0)
#define FL_LOAD_B4(p) \
    const __m512 b0 = _mm512_loadu_ps(p), b1 = _mm512_loadu_ps((p) + 16), \
                 b2 = _mm512_loadu_ps((p) + 32), b3 = _mm512_loadu_ps((p) + 48)
FL512_INLINE static void fl_k4x64(float *restrict C, int64_t ldc, const float *restrict A,
                                  int64_t lda, const float *restrict B, int64_t ldb, int64_t K,
                                  int accumulate) {
    FL_ROW4_DECL(0); FL_ROW4_DECL(1); FL_ROW4_DECL(2); FL_ROW4_DECL(3);
    if (accumulate)
        FL_ROW4_LD(0), FL_ROW4_LD(1), FL_ROW4_LD(2), FL_ROW4_LD(3);
    else
        FL_ROW4_ZERO(0), FL_ROW4_ZERO(1), FL_ROW4_ZERO(2), FL_ROW4_ZERO(3);
    const float *a0 = A, *a1 = A + lda, *a2 = A + 2 * lda, *a3 = A + 3 * lda;
    for (int64_t k = 0; k < K; k++) {
        FL_LOAD_B4(B + k * ldb);
        FL_FMA4(0, a0[k]); FL_FMA4(1, a1[k]); FL_FMA4(2, a2[k]); FL_FMA4(3, a3[k]);
    }
    FL_ROW4_ST(0), FL_ROW4_ST(1), FL_ROW4_ST(2), FL_ROW4_ST(3);
}
FL512_INLINE static void fl_k4x64t(float *restrict C, int64_t ldc, const float *restrict A,
                                   int64_t lda, const float *restrict B, int64_t ldb, int64_t K) {
    FL_ROW4_DECL(0); FL_ROW4_DECL(1); FL_ROW4_DECL(2); FL_ROW4_DECL(3);
    FL_ROW4_LD(0), FL_ROW4_LD(1), FL_ROW4_LD(2), FL_ROW4_LD(3);
    for (int64_t k = 0; k < K; k++) {
        const float *ak = A + k * lda;
        FL_LOAD_B4(B + k * ldb);
        FL_FMA4(0, ak[0]); FL_FMA4(1, ak[1]); FL_FMA4(2, ak[2]); FL_FMA4(3, ak[3]);
    }
    FL_ROW4_ST(0), FL_ROW4_ST(1), FL_ROW4_ST(2), FL_ROW4_ST(3);
}
#undef FL_ROW4_DECL
#undef FL_ROW4_LD
#undef FL_ROW4_ZERO
#undef FL_ROW4_ST
#undef FL_FMA4
#undef FL_LOAD_B4

/* C[8][N] (+)= A[8][K] B[K][N] for N a multiple of 32: 4 x 64 blocks, and
 * fl_k8x32 on a last strip of 32 columns. fl_k8xnt: the same with A read by
 * column (A^T B, accumulating). */
FL512_INLINE static void fl_k8xn(float *restrict C, int64_t ldc, const float *restrict A,
                                 int64_t lda, const float *restrict B, int64_t ldb, int64_t N,
                                 int64_t K, int accumulate) {
    int64_t j = 0;
    for (; j + 64 <= N; j += 64) {
        fl_k4x64(C + j, ldc, A, lda, B + j, ldb, K, accumulate);
        fl_k4x64(C + 4 * ldc + j, ldc, A + 4 * lda, lda, B + j, ldb, K, accumulate);
    }
    if (j < N) fl_k8x32(C + j, ldc, A, lda, B + j, ldb, K, accumulate);
}
FL512_INLINE static void fl_k8xnt(float *restrict C, int64_t ldc, const float *restrict A,
                                  int64_t lda, const float *restrict B, int64_t ldb, int64_t N,
                                  int64_t K) {
    int64_t j = 0;
    for (; j + 64 <= N; j += 64) {
        fl_k4x64t(C + j, ldc, A, lda, B + j, ldb, K);
        fl_k4x64t(C + 4 * ldc + j, ldc, A + 4, lda, B + j, ldb, K);
    }
    if (j < N) fl_k8x32t(C + j, ldc, A, lda, B + j, ldb, K);
}

/* The keys [ka, ke) of a key tile (n keys) that a block's rows can see,
 * from the OR of their pattern bits lb: the whole tile without bits. */
static inline void fl_block_range(const uint64_t *bits, uint64_t lb, int64_t n, int64_t *ka,
                                  int64_t *ke) {
    *ka = 0, *ke = n;
    if (bits) {
        *ka = __builtin_ctzll(lb);
        *ke = 64 - __builtin_clzll(lb);
        if (*ke > n) *ke = n;
    }
}

/* C[8][KT] = A[8][K] B[K][KT] (a block's logits, or the backward's dP) over
 * the halves of 32 keys that lb reaches: one 4 x 64 pass when it reaches
 * both, else 8 x 32 on the half it reaches (the other half of C is left as
 * it was: the caller masks or zeroes it). */
FL512_INLINE static void fl_block_product(float *restrict C, const float *restrict A, int64_t lda,
                                          const float *restrict B, int64_t K, uint64_t lb) {
    if ((lb & 0xFFFFFFFFu) && (lb >> 32))
        fl_k8xn(C, KT, A, lda, B, KT, KT, K, 0);
    else
        for (int64_t c = 0; c < KT; c += 32)
            if (lb >> c & 0xFFFFFFFFu) fl_k8x32(C + c, KT, A, lda, B + c, KT, K, 0);
}

/* One row of the backward on 16 lanes, with the row's statistics st = (m,
 * 1 / l): p = exp(logit - m) / l (0 where logit - m < -87, -inf included; a
 * NaN stays NaN), then with z the dropout scales (NULL: 1)
 * dS = p (dS z - drow) when want_ds, and p z. */
FL512_INLINE static void fl_bwd_row512(float *restrict pr, float *restrict dr, const float *st,
                                       float drow, const float *restrict z, int want_ds) {
    const __m512 mv = _mm512_set1_ps(st[0]), inv = _mm512_set1_ps(st[1]);
    const __m512 lo = _mm512_set1_ps(-87.0f), dv = _mm512_set1_ps(drow);
    for (int c = 0; c < KT; c += 16) {
        const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(pr + c), mv);
        const __mmask16 keep = _mm512_cmp_ps_mask(d, lo, _CMP_NLT_UQ);
        const __m512 p =
            _mm512_mul_ps(fl_exp16_maskz(keep, d), inv);
        const __m512 zz = z ? _mm512_loadu_ps(z + c) : _mm512_set1_ps(1.0f);
        if (want_ds) {
            const __m512 ds = _mm512_loadu_ps(dr + c);
            _mm512_storeu_ps(dr + c, _mm512_mul_ps(p, _mm512_fmsub_ps(ds, zz, dv)));
        }
        _mm512_storeu_ps(pr + c, _mm512_mul_ps(p, zz));
    }
}

/* Row r of a backward tile (query t = t0 + r of batch-head bh, keys
 * [k0, k0 + n)), shared by the f32 and bf16 tiles: on entry pr holds the
 * scaled logits and dr = dP (when want_ds); on exit pr = P o Z and dr = dS,
 * after the bias, ALiBi, window and key-length masks, the pattern's bits
 * (rbits when has_bits) and dropout's keep mask (built in z); the logits'
 * gradient is written when asked. A row no key of the tile reaches gets
 * zeros in both. */
FL512_INLINE static void fl_bwd_tile_row(const fl_geom *g, const fl_grads *gr, int64_t b, int64_t h,
                                         int64_t t, int64_t k0, int64_t n, int64_t lo, int64_t hi,
                                         int has_bits, uint64_t rbits, float *pr, float *dr,
                                         float *z, float drow, int want_ds) {
    const int64_t T = g->T, S = g->S, bh = b * g->H + h;
    if (hi <= k0 || lo >= k0 + n || (has_bits && !rbits)) {
        memset(pr, 0, sizeof(float) * KT);
        memset(dr, 0, sizeof(float) * KT);
        return;
    }
    const float *brow = fl_bias_row(g, b, h, t);
    if (brow || g->slopes || lo > k0 || hi < k0 + KT) attn__fl_mask_row(g, h, t, pr, n, k0, lo, hi, brow);
    if (has_bits) attn__fl_apply_bits(pr, rbits);
    const float *zr = NULL;
    if (g->p > 0.0f) {
        attn__fl_keep(g, (uint64_t)((bh * T + t) * S + k0), n, z);
        for (int64_t s = n; s < KT; s++) z[s] = 0.0f;
        zr = z;
    }
    fl_bwd_row512(pr, dr, fl_stat(gr->stats, bh * T + t), drow, zr, want_ds);
    if (gr->dl) {
        const int64_t a = lo - k0 > 0 ? lo - k0 : 0;
        const int64_t e = hi - k0 < n ? hi - k0 : n;
        float *Lr = gr->dl + (bh * T + t) * S + k0;
        for (int64_t s = a; s < e; s++) Lr[s] = dr[s];
    }
}
#endif

#endif
