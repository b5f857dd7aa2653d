/* sparse.h: block-sparse attention patterns (docs/sparse.md): the Image
 * Transformer's local 1-D and 2-D blocks, the Sparse Transformer's strided
 * and fixed factorised patterns, and sliding, dilated sliding and
 * global + sliding windows. A pattern is a small value (attn_sparse_pattern)
 * that both attention ops accept through attn_sdpa_opts.sparse: the
 * reference op (attn_sdpa) applies it as an element mask, the fused op
 * (attn_flash_sdpa) compiles it to a tile layout (attn_sparse_compile) and
 * computes only the key tiles its query tiles can see, forward and backward.
 *
 * Positions. A query t of T and a key s of S are compared at their
 * positions on the key axis: i = t + (S - T) for the query (the causal
 * diagonal of sdpa.h, bottom-right aligned) and j = s for the key. With
 * T == S, i = t. Every rule below is a predicate on (i, j) and, for the
 * patterns with per-head variation, the head h.
 *
 * Kinds (l = block, c = summary, w = window, d = dilation, g = globals):
 *   LOCAL_1D        floor(j / l) is floor(i / l) or floor(i / l) - 1: the
 *                   query's block and the block before it (Image
 *                   Transformer 1-D; with causal, the own block causally).
 *   LOCAL_2D        the sequence is an image of `width` pixels per row cut
 *                   into query blocks of block_h x block_w pixels, in the
 *                   block raster order (blocks left to right, top to
 *                   bottom; pixels of a block row by row); the image is
 *                   padded on the right to whole blocks and padding pixels
 *                   (column >= width) are never visible. Key pixel (rj, cj)
 *                   is visible to a query of block (br, bc) iff
 *                   br bh - margin_h <= rj < br bh + bh and
 *                   bc bw - margin_w <= cj < bc bw + bw + margin_w (the
 *                   query block with margin_h rows above and margin_w
 *                   columns on each side, Image Transformer 2-D);
 *                   attn_sparse_local2d_pixel maps positions to pixels.
 *   STRIDED         A (local): |i - j| < l;  B (strided): |i - j| mod l == 0.
 *   FIXED           A: floor(j / l) == floor(i / l);  B (summary): j mod l in
 *                   [l - c - o, l - o), o = c k for the head's offset index
 *                   k (0 unless head_offsets).
 *   SLIDING         |i - j| < w.
 *   DILATED         |i - j| < w and |i - j| mod d == 0.
 *   GLOBAL_SLIDING  i < g or j < g or |i - j| < w (the first g positions
 *                   see and are seen by all).
 * causal (here or in attn_sdpa_opts; either one) adds j <= i to every kind.
 * The rules of attn_sdpa_opts (causal, window, key_lengths, bias -inf) all
 * still apply: a key is visible iff every rule says so.
 *
 * Heads (STRIDED and FIXED, the two-component kinds; the others ignore
 * `heads`): UNION, every head sees A or B; ALTERNATE, even heads A and odd
 * heads B (the Sparse Transformer's per-head factorisation); A_ONLY,
 * B_ONLY, every head one component (alternate them by layer for the
 * interleaved factorisation). FIXED with head_offsets: the heads that use B
 * take offset indices k = 0, 1, ... in turn (modulo l / c), so that they
 * summarise distinct sub-blocks of every block.
 *
 * A query with no visible key gives a zero output row (sdpa.h).
 */
#ifndef ATTN_SPARSE_H
#define ATTN_SPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_sparse_kind {
    ATTN_SPARSE_LOCAL_1D = 1,
    ATTN_SPARSE_LOCAL_2D = 2,
    ATTN_SPARSE_STRIDED = 3,
    ATTN_SPARSE_FIXED = 4,
    ATTN_SPARSE_SLIDING = 5,
    ATTN_SPARSE_DILATED = 6,
    ATTN_SPARSE_GLOBAL_SLIDING = 7
} attn_sparse_kind;

typedef enum attn_sparse_heads {
    ATTN_SPARSE_HEADS_UNION = 0,
    ATTN_SPARSE_HEADS_ALTERNATE = 1,
    ATTN_SPARSE_HEADS_A_ONLY = 2,
    ATTN_SPARSE_HEADS_B_ONLY = 3
} attn_sparse_heads;

/* Fields a kind does not use are ignored (zero them). Limits (checked by
 * attn_sparse_check): every size used by the kind in [1, 2^30] (margins,
 * globals in [0, 2^30]), summary <= block. */
typedef struct attn_sparse_pattern {
    int kind;             /* attn_sparse_kind */
    int causal;           /* nonzero: also j <= i */
    int heads;            /* attn_sparse_heads (STRIDED, FIXED) */
    int head_offsets;     /* FIXED: distinct summary sub-blocks per head */
    int64_t block;        /* l: LOCAL_1D, STRIDED, FIXED */
    int64_t summary;      /* c: FIXED, 1 <= c <= l */
    int64_t window;       /* w: SLIDING, DILATED, GLOBAL_SLIDING */
    int64_t dilation;     /* d: DILATED */
    int64_t globals;      /* g: GLOBAL_SLIDING */
    int64_t width;        /* LOCAL_2D: image width in pixels */
    int64_t block_h, block_w;   /* LOCAL_2D: query block size */
    int64_t margin_h, margin_w; /* LOCAL_2D: memory rows above, columns each side */
} attn_sparse_pattern;

/* ATTN_OK, or ATTN_ERR_INVALID_ARG (message in ctx, naming the field) for
 * an unknown kind or heads mode or a size out of its limits. p NULL: OK.
 * ctx may be NULL (the message is then only in attn_last_error()). */
attn_status attn_sparse_check(attn_ctx *ctx, const attn_sparse_pattern *p);

/* 1 iff key s of S is visible to query t of T in head h under p alone
 * (p's own causal flag included; attn_sdpa_opts' rules are not), else 0.
 * p must pass attn_sparse_check; t in [0, T), s in [0, S). */
int attn_sparse_visible(const attn_sparse_pattern *p, int64_t h, int64_t T, int64_t S, int64_t t,
                        int64_t s);

/* The head variant of head h: heads with the same variant see the same
 * keys. In [0, attn_sparse_variants(p, H)). */
int64_t attn_sparse_head_variant(const attn_sparse_pattern *p, int64_t h);
/* The number of distinct variants of heads 0 .. H - 1 (>= 1). */
int64_t attn_sparse_variants(const attn_sparse_pattern *p, int64_t H);

/* LOCAL_2D: the pixel (row, col) of sequence position i (block raster
 * order; col >= width for a padding pixel). */
void attn_sparse_local2d_pixel(const attn_sparse_pattern *p, int64_t i, int64_t *row,
                               int64_t *col);

/* A tile layout: for each head variant v and query tile qt (rows
 * [qt tq, qt tq + tq) of T), the key tiles (keys [kt tk, kt tk + tk) of S)
 * with at least one visible entry, in increasing order: entries
 * start[v nq + qt] .. start[v nq + qt + 1] - 1 of ktile[] and mask_at[].
 * An entry is fully visible (mask_at -1: every row < T sees every key < S
 * of the tile) or partial: its element mask is the tq x words 64-bit words
 * at mask + mask_at[e], bit (s mod 64) of word (row r, s / 64) set iff key
 * kt tk + s is visible to query qt tq + r. Key tiles with no visible entry
 * are absent (skipped). Everything lives in the context's arena. */
typedef struct attn_sparse_layout {
    int64_t T, S, tq, tk;
    int64_t nq, nk;     /* query tiles ceil(T / tq), key tiles ceil(S / tk) */
    int64_t variants;   /* head variants (attn_sparse_variants) */
    int64_t words;      /* 64-bit words per mask row: ceil(tk / 64) */
    const int64_t *start;   /* [variants nq + 1] */
    const int64_t *ktile;   /* [entries] */
    const int64_t *mask_at; /* [entries]: -1 full, else the offset in mask */
    const uint64_t *mask;   /* [partial tq words] */
    int64_t entries, partial;
    int64_t visible; /* visible (t, s) pairs summed over the variants */
} attn_sparse_layout;

/* Compiles p for T queries, S keys, H heads and tiles of tq x tk, together
 * with attn_sdpa_opts' causal and window rules (key_lengths, per batch, is
 * not part of a layout). The work is proportional to the visible entries
 * plus tq times the key tiles each query tile touches. Errors: those of
 * attn_sparse_check, ATTN_ERR_INVALID_ARG for a size < 1 or a negative
 * window, ATTN_ERR_OOM. */
attn_status attn_sparse_compile(attn_ctx *ctx, const attn_sparse_pattern *p, int causal,
                                int64_t window, int64_t H, int64_t T, int64_t S, int64_t tq,
                                int64_t tk, attn_sparse_layout *out);

/* The text form of a pattern, as the CLI takes it (docs/sparse.md):
 *   KIND[:key=value,...]
 * KIND: local1d, local2d, strided, fixed, sliding, dilated, global (global +
 * sliding); keys: block (l), summary (c), window (w), dilation (d), globals
 * (g), width, bh, bw, mh, mw (local 2-D block and margins), heads (union,
 * alternate, a, b), offsets (0/1, fixed's head_offsets), causal (0/1).
 * Keys a kind does not use are accepted and ignored. E.g.
 * "fixed:block=28,summary=4,heads=alternate". *out is written only on
 * success. Errors (attn_last_error() names the text): ATTN_ERR_INVALID_ARG
 * for NULL, a text over 255 characters, an unknown kind or key, a value
 * that is not an integer in [0, 2^30], and those of attn_sparse_check. */
attn_status attn_sparse_parse(const char *text, attn_sparse_pattern *out);

/* Writes the text form of p (the fields its kind uses; parses back to the
 * same pattern) into buf of cap bytes. 0, or -1 (buf emptied or cut) for
 * NULL, an unknown kind, or a text longer than cap - 1. */
int attn_sparse_format(const attn_sparse_pattern *p, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
