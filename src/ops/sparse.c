/* sparse.c: block-sparse attention patterns (include/attn/sparse.h,
 * docs/sparse.md): the checks, the element rule of each kind, and the
 * compiler of a pattern to a tile layout.
 *
 * Two descriptions of one pattern live here and are tested against each
 * other: the element predicate (vis_variant, what the reference op masks
 * with) and the spans of a query row (row_spans, what the compiler marks):
 * every row's visible keys are a union of at most a few arithmetic runs
 * {a + k step + u : k >= 0, 0 <= u < width} inside an interval [lo, hi).
 * The compiler walks the runs, so its work grows with the visible entries
 * and the key tiles they touch, never with T S.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "sdpa_common.h"
#include "attn/sparse.h"

#define SP_MAX ((int64_t)1 << 30)

static const char NAME[] = "sparse pattern";

/* ---- checks ---------------------------------------------------------------- */

static int in_range(attn_ctx *ctx, const char *field, int64_t v, int64_t lo) {
    if (v >= lo && v <= SP_MAX) return 0;
    attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: %s = %lld is outside [%lld, 2^30]", NAME, field,
               (long long)v, (long long)lo);
    return -1;
}

attn_status attn_sparse_check(attn_ctx *ctx, const attn_sparse_pattern *p) {
    if (!p) return ATTN_OK;
    if (p->heads < ATTN_SPARSE_HEADS_UNION || p->heads > ATTN_SPARSE_HEADS_B_ONLY)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                          "%s: heads = %d, expected 0 (union), 1 (alternate), 2 (A only) or 3 "
                          "(B only)",
                          NAME, p->heads);
    switch (p->kind) {
    case ATTN_SPARSE_LOCAL_1D:
    case ATTN_SPARSE_STRIDED:
        if (in_range(ctx, "block", p->block, 1)) return ATTN_ERR_INVALID_ARG;
        break;
    case ATTN_SPARSE_FIXED:
        if (in_range(ctx, "block", p->block, 1) || in_range(ctx, "summary", p->summary, 1))
            return ATTN_ERR_INVALID_ARG;
        if (p->summary > p->block)
            return attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                              "%s: fixed: summary %lld exceeds block %lld", NAME,
                              (long long)p->summary, (long long)p->block);
        break;
    case ATTN_SPARSE_LOCAL_2D:
        if (in_range(ctx, "width", p->width, 1) || in_range(ctx, "block_h", p->block_h, 1) ||
            in_range(ctx, "block_w", p->block_w, 1) || in_range(ctx, "margin_h", p->margin_h, 0) ||
            in_range(ctx, "margin_w", p->margin_w, 0))
            return ATTN_ERR_INVALID_ARG;
        break;
    case ATTN_SPARSE_SLIDING:
        if (in_range(ctx, "window", p->window, 1)) return ATTN_ERR_INVALID_ARG;
        break;
    case ATTN_SPARSE_DILATED:
        if (in_range(ctx, "window", p->window, 1) || in_range(ctx, "dilation", p->dilation, 1))
            return ATTN_ERR_INVALID_ARG;
        break;
    case ATTN_SPARSE_GLOBAL_SLIDING:
        if (in_range(ctx, "window", p->window, 1) || in_range(ctx, "globals", p->globals, 0))
            return ATTN_ERR_INVALID_ARG;
        break;
    default:
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                          "%s: kind = %d, expected 1 (local 1-D) .. 7 (global + sliding)", NAME,
                          p->kind);
    }
    return ATTN_OK;
}

/* ---- head variants ------------------------------------------------------------- */

/* The summary offset indices of FIXED: l / c with head_offsets, else 1. */
static int64_t fixed_offsets(const attn_sparse_pattern *p) {
    return p->head_offsets ? p->block / p->summary : 1;
}

int64_t attn_sparse_head_variant(const attn_sparse_pattern *p, int64_t h) {
    if (p->kind == ATTN_SPARSE_STRIDED)
        return p->heads == ATTN_SPARSE_HEADS_ALTERNATE ? h % 2 : 0;
    if (p->kind != ATTN_SPARSE_FIXED) return 0;
    const int64_t nk = fixed_offsets(p);
    switch (p->heads) {
    case ATTN_SPARSE_HEADS_ALTERNATE: return h % 2 == 0 ? 0 : 1 + (h / 2) % nk;
    case ATTN_SPARSE_HEADS_A_ONLY: return 0;
    default: return h % nk; /* union, B only */
    }
}

int64_t attn_sparse_variants(const attn_sparse_pattern *p, int64_t H) {
    int64_t nv = 1;
    /* variants repeat with a period of at most 2 nk heads */
    const int64_t nk = p->kind == ATTN_SPARSE_FIXED ? fixed_offsets(p) : 1;
    const int64_t n = H < 2 * nk + 2 ? H : 2 * nk + 2;
    for (int64_t h = 0; h < n; h++) {
        const int64_t v = attn_sparse_head_variant(p, h);
        if (v + 1 > nv) nv = v + 1;
    }
    return nv;
}

/* The components of variant v: A and/or B, and (FIXED) the summary offset
 * o = c k. */
static void variant_parts(const attn_sparse_pattern *p, int64_t v, int *a, int *b, int64_t *o) {
    *a = *b = 1;
    *o = 0;
    if (p->kind == ATTN_SPARSE_STRIDED) {
        if (p->heads == ATTN_SPARSE_HEADS_ALTERNATE) *a = v == 0, *b = v == 1;
        if (p->heads == ATTN_SPARSE_HEADS_A_ONLY) *b = 0;
        if (p->heads == ATTN_SPARSE_HEADS_B_ONLY) *a = 0;
    } else if (p->kind == ATTN_SPARSE_FIXED) {
        int64_t k = v;
        switch (p->heads) {
        case ATTN_SPARSE_HEADS_ALTERNATE:
            *a = v == 0, *b = v != 0;
            k = v > 0 ? v - 1 : 0;
            break;
        case ATTN_SPARSE_HEADS_A_ONLY: *b = 0, k = 0; break;
        case ATTN_SPARSE_HEADS_B_ONLY: *a = 0; break;
        default: break;
        }
        *o = p->summary * k;
    }
}

/* ---- LOCAL_2D geometry ------------------------------------------------------------ */

/* floor(a / b) and a - b floor(a / b) for b > 0: a query position i is
 * negative when T > S (queries before the first key), and blocks must
 * still be floors there (such a query then sees no key of the local
 * kinds' blocks, which all lie at positions >= 0) */
static int64_t fdiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static int64_t fmod_(int64_t a, int64_t b) { return a - b * fdiv(a, b); }

static int64_t blocks_per_row(const attn_sparse_pattern *p) {
    return (p->width + p->block_w - 1) / p->block_w;
}

void attn_sparse_local2d_pixel(const attn_sparse_pattern *p, int64_t i, int64_t *row,
                               int64_t *col) {
    const int64_t bpb = p->block_h * p->block_w, nbc = blocks_per_row(p);
    const int64_t blk = fdiv(i, bpb), in = fmod_(i, bpb);
    *row = fdiv(blk, nbc) * p->block_h + in / p->block_w;
    *col = fmod_(blk, nbc) * p->block_w + in % p->block_w;
}

/* the position of pixel (r, c) (c < the padded width) */
static int64_t local2d_pos(const attn_sparse_pattern *p, int64_t r, int64_t c) {
    const int64_t bh = p->block_h, bw = p->block_w;
    return ((r / bh) * blocks_per_row(p) + c / bw) * (bh * bw) + (r % bh) * bw + c % bw;
}

/* the memory region of query position i: rows [*r0, *r1), columns [*c0, *c1) */
static void local2d_region(const attn_sparse_pattern *p, int64_t i, int64_t *r0, int64_t *r1,
                           int64_t *c0, int64_t *c1) {
    int64_t r, c;
    attn_sparse_local2d_pixel(p, i, &r, &c);
    const int64_t br = fdiv(r, p->block_h) * p->block_h, bc = c / p->block_w * p->block_w;
    *r0 = br - p->margin_h;
    *r1 = br + p->block_h;
    *c0 = bc - p->margin_w;
    *c1 = bc + p->block_w + p->margin_w;
    if (*r0 < 0) *r0 = 0;
    if (*c0 < 0) *c0 = 0;
    if (*c1 > p->width) *c1 = p->width;
}

/* ---- the element rule ---------------------------------------------------------------- */

static int64_t iabs(int64_t x) { return x < 0 ? -x : x; }

static int vis_variant(const attn_sparse_pattern *p, int64_t v, int64_t i, int64_t j) {
    if (p->causal && j > i) return 0;
    const int64_t dist = iabs(i - j);
    int a, b;
    int64_t o;
    switch (p->kind) {
    case ATTN_SPARSE_LOCAL_1D: {
        const int64_t qb = fdiv(i, p->block), kb = j / p->block;
        return kb == qb || kb == qb - 1;
    }
    case ATTN_SPARSE_LOCAL_2D: {
        int64_t r0, r1, c0, c1, rj, cj;
        local2d_region(p, i, &r0, &r1, &c0, &c1);
        attn_sparse_local2d_pixel(p, j, &rj, &cj);
        return rj >= r0 && rj < r1 && cj >= c0 && cj < c1;
    }
    case ATTN_SPARSE_STRIDED:
        variant_parts(p, v, &a, &b, &o);
        return (a && dist < p->block) || (b && dist % p->block == 0);
    case ATTN_SPARSE_FIXED: {
        variant_parts(p, v, &a, &b, &o);
        const int64_t l = p->block, m = j % l;
        return (a && fdiv(i, l) == j / l) || (b && m >= l - p->summary - o && m < l - o);
    }
    case ATTN_SPARSE_SLIDING: return dist < p->window;
    case ATTN_SPARSE_DILATED: return dist < p->window && dist % p->dilation == 0;
    case ATTN_SPARSE_GLOBAL_SLIDING: return i < p->globals || j < p->globals || dist < p->window;
    default: return 0;
    }
}

int attn_sparse_visible(const attn_sparse_pattern *p, int64_t h, int64_t T, int64_t S, int64_t t,
                        int64_t s) {
    return vis_variant(p, attn_sparse_head_variant(p, h), t + (S - T), s);
}

/* ---- the spans of a row ---------------------------------------------------------------- */

/* Keys {a + k step + u : k >= 0, 0 <= u < width} in [lo, hi); step 0: the
 * whole interval [lo, hi). */
typedef struct sp_run {
    int64_t a, step, width, lo, hi;
} sp_run;

typedef void (*sp_emit)(void *arg, const sp_run *run);

static void emit(sp_emit fn, void *arg, int64_t a, int64_t step, int64_t width, int64_t lo,
                 int64_t hi, int64_t clo, int64_t chi) {
    if (lo < clo) lo = clo;
    if (hi > chi) hi = chi;
    if (lo >= hi) return;
    const sp_run r = {a, step, width, lo, hi};
    fn(arg, &r);
}

/* The runs of variant v for query position i, clipped to [clo, chi) (the
 * interval of the other rules, p's causal flag included). */
static void row_spans(const attn_sparse_pattern *p, int64_t v, int64_t i, int64_t clo,
                      int64_t chi, sp_emit fn, void *arg) {
    if (p->causal && chi > i + 1) chi = i + 1;
    if (clo >= chi) return;
    int a, b;
    int64_t o;
    switch (p->kind) {
    case ATTN_SPARSE_LOCAL_1D: {
        const int64_t qb = fdiv(i, p->block);
        emit(fn, arg, 0, 0, 0, (qb - 1) * p->block, (qb + 1) * p->block, clo, chi);
        return;
    }
    case ATTN_SPARSE_LOCAL_2D: {
        /* block by block in the sequence order: a block whose columns are
         * all in the region gives one run for its rows in the region, a
         * cut block one run per pixel row; adjacent runs are merged (whole
         * blocks side by side are one run). A block at or after chi ends
         * the walk: every later block comes later still. */
        int64_t r0, r1, c0, c1;
        local2d_region(p, i, &r0, &r1, &c0, &c1);
        const int64_t bh = p->block_h, bw = p->block_w;
        int64_t plo = 0, phi = 0; /* the pending run [plo, phi) */
        for (int64_t br = r0 / bh; br * bh < r1; br++) {
            const int64_t ra = r0 > br * bh ? r0 : br * bh, rb = r1 < br * bh + bh ? r1 : br * bh + bh;
            for (int64_t bc = c0 / bw; bc * bw < c1; bc++) {
                const int64_t ca = c0 > bc * bw ? c0 : bc * bw, cb = c1 < bc * bw + bw ? c1 : bc * bw + bw;
                const int64_t base = local2d_pos(p, br * bh, bc * bw);
                if (base >= chi) {
                    br = r1; /* ends both loops */
                    break;
                }
                const int full = ca == bc * bw && cb == bc * bw + bw;
                for (int64_t r = ra; r < rb; r++) {
                    const int64_t x = base + (r - br * bh) * bw + (ca - bc * bw);
                    const int64_t y = full ? base + (rb - br * bh) * bw : x + (cb - ca);
                    if (x == phi) {
                        phi = y;
                    } else {
                        emit(fn, arg, 0, 0, 0, plo, phi, clo, chi);
                        plo = x, phi = y;
                    }
                    if (full) break;
                }
            }
        }
        emit(fn, arg, 0, 0, 0, plo, phi, clo, chi);
        return;
    }
    case ATTN_SPARSE_STRIDED:
        variant_parts(p, v, &a, &b, &o);
        if (a) emit(fn, arg, 0, 0, 0, i - p->block + 1, i + p->block, clo, chi);
        if (b) emit(fn, arg, i % p->block, p->block, 1, 0, chi, clo, chi);
        return;
    case ATTN_SPARSE_FIXED: {
        variant_parts(p, v, &a, &b, &o);
        const int64_t l = p->block;
        if (a) emit(fn, arg, 0, 0, 0, fdiv(i, l) * l, fdiv(i, l) * l + l, clo, chi);
        if (b) emit(fn, arg, l - p->summary - o, l, p->summary, 0, chi, clo, chi);
        return;
    }
    case ATTN_SPARSE_SLIDING:
        emit(fn, arg, 0, 0, 0, i - p->window + 1, i + p->window, clo, chi);
        return;
    case ATTN_SPARSE_DILATED:
        emit(fn, arg, i % p->dilation, p->dilation, 1, i - p->window + 1, i + p->window, clo,
             chi);
        return;
    case ATTN_SPARSE_GLOBAL_SLIDING:
        if (i < p->globals) {
            emit(fn, arg, 0, 0, 0, clo, chi, clo, chi);
            return;
        }
        emit(fn, arg, 0, 0, 0, 0, p->globals, clo, chi);
        emit(fn, arg, 0, 0, 0, i - p->window + 1, i + p->window, clo, chi);
        return;
    default: return;
    }
}

/* ---- the compiler ---------------------------------------------------------------- */

typedef struct sp_buf { /* a growing heap array */
    void *p;
    int64_t n, cap;
    size_t elem;
} sp_buf;

static int buf_push(sp_buf *b, const void *x, int64_t count) {
    if (b->n + count > b->cap) {
        int64_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + count) cap *= 2;
        void *q = realloc(b->p, (size_t)cap * b->elem);
        if (!q) return -1;
        b->p = q, b->cap = cap;
    }
    memcpy((char *)b->p + (size_t)b->n * b->elem, x, (size_t)count * b->elem);
    b->n += count;
    return 0;
}

/* The state of one query tile while its rows' runs are marked. */
typedef struct sp_tile {
    int64_t tk, words, tq;
    int64_t row;        /* the row being marked */
    int64_t *slot;      /* [nk]: the key tile's slot in pool, or -1 */
    int64_t *touched;   /* key tiles with a slot, in the order touched */
    int64_t ntouched;
    uint64_t *pool;     /* [nk][tq][words] */
} sp_tile;

/* The mask words of row st->row in key tile kt (a slot taken and zeroed on
 * first use). */
static uint64_t *row_words(sp_tile *st, int64_t kt) {
    int64_t sl = st->slot[kt];
    if (sl < 0) {
        sl = st->slot[kt] = st->ntouched;
        st->touched[st->ntouched++] = kt;
        memset(st->pool + sl * st->tq * st->words, 0, sizeof(uint64_t) * (size_t)(st->tq * st->words));
    }
    return st->pool + (sl * st->tq + st->row) * st->words;
}

/* keys [x, y) of row st->row marked visible */
static void mark_range(sp_tile *st, int64_t x, int64_t y) {
    const int64_t tk = st->tk;
    for (int64_t kt = x / tk; kt * tk < y; kt++) {
        uint64_t *w = row_words(st, kt);
        const int64_t a = (x > kt * tk ? x : kt * tk) - kt * tk;
        const int64_t e = (y < kt * tk + tk ? y : kt * tk + tk) - kt * tk;
        for (int64_t s = a; s < e;) {
            const int64_t wi = s / 64, bit = s % 64;
            const int64_t n = e - s < 64 - bit ? e - s : 64 - bit;
            w[wi] |= (n == 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1)) << bit;
            s += n;
        }
    }
}

/* the first key >= x of the run a + k step (k >= 0) */
static int64_t first_at(int64_t a, int64_t step, int64_t x) {
    return x <= a ? a : a + (x - a + step - 1) / step * step;
}

static void mark_run(void *arg, const sp_run *r) {
    sp_tile *st = arg;
    if (r->step == 0 || r->width >= r->step) { /* one interval */
        mark_range(st, r->lo, r->hi);
        return;
    }
    const int64_t tk = st->tk;
    if (r->width == 1) { /* single keys: bit by bit (no interval bookkeeping per key) */
        int64_t kt = -1;
        uint64_t *w = NULL;
        for (int64_t x = first_at(r->a, r->step, r->lo); x < r->hi; x += r->step) {
            if (x / tk != kt) kt = x / tk, w = row_words(st, kt);
            w[(x - kt * tk) / 64] |= (uint64_t)1 << ((x - kt * tk) % 64);
        }
        return;
    }
    /* runs of `width` keys, period by period */
    int64_t p0 = r->a;
    if (r->lo > r->a) p0 = r->a + (r->lo - r->a) / r->step * r->step;
    for (int64_t q = p0; q < r->hi; q += r->step) {
        const int64_t x = q > r->lo ? q : r->lo, y = q + r->width < r->hi ? q + r->width : r->hi;
        if (x < y) mark_range(st, x, y);
    }
}

static int cmp_i64(const void *a, const void *b) {
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int popcount64(uint64_t x) {
#if defined(__GNUC__)
    return __builtin_popcountll(x);
#else
    int n = 0;
    while (x) x &= x - 1, n++;
    return n;
#endif
}

attn_status attn_sparse_compile(attn_ctx *ctx, const attn_sparse_pattern *p, int causal,
                                int64_t window, int64_t H, int64_t T, int64_t S, int64_t tq,
                                int64_t tk, attn_sparse_layout *out) {
    if (!ctx) return attn__error(ATTN_ERR_INVALID_ARG, "%s: compile: the context is NULL", NAME);
    if (!out) return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: compile: out is NULL", NAME);
    memset(out, 0, sizeof *out);
    if (!p) return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: compile: pattern is NULL", NAME);
    if (attn_sparse_check(ctx, p)) return ctx->status;
    if (H < 1 || T < 1 || S < 1 || tq < 1 || tk < 1 || window < 0 || tq > SP_MAX || tk > SP_MAX)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                          "%s: compile: H %lld, T %lld, S %lld, tiles %lld x %lld, window %lld: "
                          "expected sizes >= 1 (tiles <= 2^30) and a window >= 0",
                          NAME, (long long)H, (long long)T, (long long)S, (long long)tq,
                          (long long)tk, (long long)window);
    if (window > S + T + 1) window = S + T + 1;
    const int64_t nq = (T + tq - 1) / tq, nk = (S + tk - 1) / tk, words = (tk + 63) / 64;
    const int64_t nv = attn_sparse_variants(p, H);
    sp_tile st = {tk, words, tq, 0, NULL, NULL, 0, NULL};
    sp_buf kt_b = {NULL, 0, 0, sizeof(int64_t)}, at_b = {NULL, 0, 0, sizeof(int64_t)};
    sp_buf mk_b = {NULL, 0, 0, sizeof(uint64_t)};
    int64_t *start = NULL;
    int64_t visible = 0, partial = 0;
    int fail = 0;
    size_t pool_bytes;
    if (attn__mul_size((size_t)nk * (size_t)tq, (size_t)words * sizeof(uint64_t), &pool_bytes)) {
        return attn__fail(ctx, ATTN_ERR_OOM, "%s: compile: tile masks of %lld key tiles overflow",
                          NAME, (long long)nk);
    }
    st.slot = malloc(sizeof(int64_t) * (size_t)nk);
    st.touched = malloc(sizeof(int64_t) * (size_t)nk);
    st.pool = malloc(pool_bytes);
    start = malloc(sizeof(int64_t) * (size_t)(nv * nq + 1));
    fail = !st.slot || !st.touched || !st.pool || !start;
    for (int64_t k = 0; !fail && k < nk; k++) st.slot[k] = -1;
    for (int64_t v = 0; !fail && v < nv; v++)
        for (int64_t qt = 0; !fail && qt < nq; qt++) {
            start[v * nq + qt] = kt_b.n;
            const int64_t t0 = qt * tq, nr = T - t0 < tq ? T - t0 : tq;
            st.ntouched = 0;
            for (int64_t r = 0; r < nr; r++) {
                int64_t lo, hi;
                sdpa_visible(S, T, causal, window, NULL, 0, t0 + r, &lo, &hi);
                st.row = r;
                row_spans(p, v, t0 + r + (S - T), lo, hi, mark_run, &st);
            }
            qsort(st.touched, (size_t)st.ntouched, sizeof(int64_t), cmp_i64);
            for (int64_t x = 0; !fail && x < st.ntouched; x++) {
                const int64_t k = st.touched[x], sl = st.slot[k];
                const uint64_t *m = st.pool + sl * tq * words;
                const int64_t nc = S - k * tk < tk ? S - k * tk : tk;
                int64_t cnt = 0;
                for (int64_t i = 0; i < nr * words; i++) cnt += popcount64(m[i]);
                st.slot[k] = -1;
                if (!cnt) continue;
                visible += cnt;
                int64_t at = -1;
                if (cnt != nr * nc) {
                    at = mk_b.n;
                    fail |= buf_push(&mk_b, m, tq * words);
                    partial++;
                }
                fail |= buf_push(&kt_b, &k, 1) || buf_push(&at_b, &at, 1);
            }
            for (int64_t x = 0; x < st.ntouched; x++) st.slot[st.touched[x]] = -1;
        }
    attn_status rc = ATTN_OK;
    if (fail) {
        rc = attn__fail(ctx, ATTN_ERR_OOM, "%s: compile: out of heap memory (T %lld, S %lld)",
                        NAME, (long long)T, (long long)S);
    } else {
        start[nv * nq] = kt_b.n;
        const int64_t ne = kt_b.n;
        int64_t *a_start = attn__alloc(ctx, sizeof(int64_t) * (size_t)(nv * nq + 1 + 2 * ne),
                                       "sparse layout (tile lists)");
        uint64_t *a_mask = a_start ? attn__alloc(ctx, sizeof(uint64_t) * (size_t)(mk_b.n + 1),
                                                 "sparse layout (tile masks)")
                                   : NULL;
        if (!a_mask) {
            rc = ctx->status;
        } else {
            memcpy(a_start, start, sizeof(int64_t) * (size_t)(nv * nq + 1));
            if (ne) {
                memcpy(a_start + nv * nq + 1, kt_b.p, sizeof(int64_t) * (size_t)ne);
                memcpy(a_start + nv * nq + 1 + ne, at_b.p, sizeof(int64_t) * (size_t)ne);
            }
            if (mk_b.n) memcpy(a_mask, mk_b.p, sizeof(uint64_t) * (size_t)mk_b.n);
            out->T = T, out->S = S, out->tq = tq, out->tk = tk;
            out->nq = nq, out->nk = nk, out->variants = nv, out->words = words;
            out->start = a_start;
            out->ktile = a_start + nv * nq + 1;
            out->mask_at = a_start + nv * nq + 1 + ne;
            out->mask = a_mask;
            out->entries = ne;
            out->partial = partial;
            out->visible = visible;
        }
    }
    free(st.slot);
    free(st.touched);
    free(st.pool);
    free(start);
    free(kt_b.p);
    free(at_b.p);
    free(mk_b.p);
    return rc;
}

/* ---- text form ----------------------------------------------------------------------- */

static const char *const kind_names[8] = {"",      "local1d", "local2d", "strided",
                                          "fixed", "sliding", "dilated", "global"};
static const char *const heads_names[4] = {"union", "alternate", "a", "b"};

/* The field of p named `key`, or NULL. */
static int64_t *field_of(attn_sparse_pattern *p, const char *key) {
    static const struct {
        const char *name;
        size_t off;
    } f[] = {{"block", offsetof(attn_sparse_pattern, block)},
             {"summary", offsetof(attn_sparse_pattern, summary)},
             {"window", offsetof(attn_sparse_pattern, window)},
             {"dilation", offsetof(attn_sparse_pattern, dilation)},
             {"globals", offsetof(attn_sparse_pattern, globals)},
             {"width", offsetof(attn_sparse_pattern, width)},
             {"bh", offsetof(attn_sparse_pattern, block_h)},
             {"bw", offsetof(attn_sparse_pattern, block_w)},
             {"mh", offsetof(attn_sparse_pattern, margin_h)},
             {"mw", offsetof(attn_sparse_pattern, margin_w)}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (!strcmp(key, f[i].name)) return (int64_t *)(void *)((char *)p + f[i].off);
    return NULL;
}

attn_status attn_sparse_parse(const char *text, attn_sparse_pattern *out) {
    static const char fn[] = "attn_sparse_parse";
    if (!text || !out) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_sparse_pattern p;
    memset(&p, 0, sizeof p);
    char buf[256];
    if (strlen(text) >= sizeof buf)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: '%.40s...' is longer than %zu characters", fn,
                           text, sizeof buf - 1);
    memcpy(buf, text, strlen(text) + 1);
    char *rest = strchr(buf, ':');
    if (rest) *rest++ = 0;
    for (int k = 1; k < 8; k++)
        if (!strcmp(buf, kind_names[k])) p.kind = k;
    if (!p.kind)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: '%s': unknown kind '%s' (local1d, local2d, strided, fixed, sliding, "
                           "dilated or global)",
                           fn, text, buf);
    while (rest && *rest) {
        char *item = rest, *comma = strchr(rest, ',');
        if (comma) *comma = 0;
        rest = comma ? comma + 1 : NULL;
        char *eq = strchr(item, '=');
        if (!eq || eq == item || !eq[1])
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: '%s': '%s' is not key=value", fn, text,
                               item);
        *eq = 0;
        const char *val = eq + 1;
        if (!strcmp(item, "heads")) {
            int found = -1;
            for (int h = 0; h < 4; h++)
                if (!strcmp(val, heads_names[h])) found = h;
            if (found < 0)
                return attn__error(ATTN_ERR_INVALID_ARG,
                                   "%s: '%s': heads=%s (union, alternate, a or b)", fn, text, val);
            p.heads = found;
            continue;
        }
        char *end = NULL;
        errno = 0;
        const long long v = strtoll(val, &end, 10);
        if (errno || end == val || *end || v < 0 || v > SP_MAX)
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: '%s': %s=%s is not an integer in [0, 2^30]",
                               fn, text, item, val);
        if (!strcmp(item, "causal")) p.causal = v != 0;
        else if (!strcmp(item, "offsets")) p.head_offsets = v != 0;
        else {
            int64_t *f = field_of(&p, item);
            if (!f)
                return attn__error(ATTN_ERR_INVALID_ARG,
                                   "%s: '%s': unknown key '%s' (block, summary, window, dilation, "
                                   "globals, width, bh, bw, mh, mw, heads, offsets, causal)",
                                   fn, text, item);
            *f = v;
        }
    }
    const attn_status st = attn_sparse_check(NULL, &p);
    if (st != ATTN_OK) {
        char why[200];
        snprintf(why, sizeof why, "%s", attn_last_error());
        return attn__error(st, "%s: '%s': %s", fn, text, why);
    }
    *out = p;
    return ATTN_OK;
}

int attn_sparse_format(const attn_sparse_pattern *p, char *buf, size_t cap) {
    if (!p || !buf || cap == 0 || p->kind < 1 || p->kind > 7) {
        if (buf && cap) buf[0] = 0;
        return -1;
    }
    size_t o = (size_t)snprintf(buf, cap, "%s", kind_names[p->kind]);
    char sep = ':';
#define SP_PUT(cond, ...)                                                                          \
    do {                                                                                           \
        if ((cond) && o < cap) {                                                                   \
            o += (size_t)snprintf(buf + o, cap - o, "%c", sep);                                    \
            if (o < cap) o += (size_t)snprintf(buf + o, cap - o, __VA_ARGS__);                     \
            sep = ',';                                                                             \
        }                                                                                          \
    } while (0)
    const int k = p->kind;
    SP_PUT(k == ATTN_SPARSE_LOCAL_1D || k == ATTN_SPARSE_STRIDED || k == ATTN_SPARSE_FIXED,
           "block=%lld", (long long)p->block);
    SP_PUT(k == ATTN_SPARSE_FIXED, "summary=%lld", (long long)p->summary);
    SP_PUT(k >= ATTN_SPARSE_SLIDING, "window=%lld", (long long)p->window);
    SP_PUT(k == ATTN_SPARSE_DILATED, "dilation=%lld", (long long)p->dilation);
    SP_PUT(k == ATTN_SPARSE_GLOBAL_SLIDING, "globals=%lld", (long long)p->globals);
    SP_PUT(k == ATTN_SPARSE_LOCAL_2D, "width=%lld,bh=%lld,bw=%lld,mh=%lld,mw=%lld",
           (long long)p->width, (long long)p->block_h, (long long)p->block_w,
           (long long)p->margin_h, (long long)p->margin_w);
    SP_PUT(k == ATTN_SPARSE_STRIDED || k == ATTN_SPARSE_FIXED, "heads=%s",
           heads_names[p->heads >= 0 && p->heads < 4 ? p->heads : 0]);
    SP_PUT(k == ATTN_SPARSE_FIXED && p->head_offsets, "offsets=1");
    SP_PUT(p->causal, "causal=1");
#undef SP_PUT
    return o < cap ? 0 : -1;
}
