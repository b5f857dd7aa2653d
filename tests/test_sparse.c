/* test_sparse.c: block-sparse attention patterns (include/attn/sparse.h,
 * docs/sparse.md; suite "sparse").
 *
 *   - definitions: the element rule of every kind against hand-drawn
 *     pictures (the ones of docs/sparse.md), per head where heads differ,
 *     and LOCAL_2D's padding pixels never visible;
 *   - the compiler: layouts of random patterns (every kind, heads mode,
 *     causal or not, with and without attn_sdpa_opts' causal and window,
 *     sizes from 1 to 2^30) at random tile sizes give exactly the element
 *     rule: tiles absent iff nothing visible, "full" iff everything, the
 *     partial masks bit for bit, the visible count, increasing key tiles;
 *   - work: at T = S = 4096 a sliding window of 128 keys compiles to at
 *     most 3 key tiles per query tile, the fixed pattern's count of visible
 *     entries is the closed form;
 *   - the fused op against the reference op on ragged sizes (T, S not
 *     multiples of 64, T != S), every kind, causal on and off, GQA,
 *     forward (output, weights) and backward (dq, dk, dv), on each kernel
 *     variant (the CPU's, ATTN_KERNELS_PORTABLE, ATTN_KERNELS_NO_AMX), with
 *     key_lengths and a bias on top in some cases;
 *   - rows with no visible key (fixed B head, causal): zero output and zero
 *     gradients on both ops;
 *   - 1 and 2 threads: the same bits (fused op, output and gradients);
 *   - central finite differences of sum(out R) (the reference kernels in
 *     use_ref mode) against the analytic gradients of both ops, tiny sizes;
 *   - PyTorch parity (tests/fixtures/sparse.atfx, tools/make_sparse_fixtures.py):
 *     the boolean mask of each case equals attn_sparse_visible, and both ops
 *     equal dense torch attention under that mask, outputs and gradients;
 *   - multi-head attention: attn_mha_call.sparse on the fused kernel, the
 *     reference kernel and the composed path (SHAW) equals the module with
 *     the pattern as an explicit -inf bias, output and dx;
 *   - errors: every bad field is refused by both ops with its name.
 * The property suite of test_flash.c draws random patterns too
 * (test_sparse_draw) with every other option and kernel variant.
 *
 * Tolerances: fused vs reference 2e-5 + 1e-4 |ref| (the flash suite's);
 * against PyTorch (float64, rounded once) 1e-5 + 1e-4 |ref|; finite
 * differences (step 1e-2, float32 inputs, double loss) 3e-4 + 3e-3 |fd|.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "test.h"

#define FL_ATOL 2e-5f
#define FL_RTOL 1e-4f
#define W_ATOL 1e-6f
#define W_RTOL 1e-4f
#define PT_ATOL 1e-5f
#define PT_RTOL 1e-4f
#define FD_STEP 1e-2f
#define FD_ATOL 3e-4
#define FD_RTOL 3e-3
#define SCRIPT "tools/make_sparse_fixtures.py"

/* the rules of attn_sdpa_opts other than the pattern (no key_lengths) */
static int opts_rule(int64_t T, int64_t S, int causal, int64_t window, int64_t t, int64_t s) {
    const int64_t d = t + S - T;
    if (causal && s > d) return 0;
    if (window > 0 && s <= d - window) return 0;
    if (window > 0 && !causal && s >= d + window) return 0;
    return 1;
}

/* ---- definitions ---------------------------------------------------------------- */

typedef struct picture {
    const char *label;
    attn_sparse_pattern p;
    int64_t h, n;          /* head, T = S = n */
    const char *rows[16];  /* row t: '1' visible, '.' not */
} picture;

static const picture pictures[] = {
    {"local 1-D l 3 causal", {ATTN_SPARSE_LOCAL_1D, 1, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0, 8,
     {"1.......", "11......", "111.....", "1111....", "11111...", "111111..", "...1111.",
      "...11111"}},
    {"local 1-D l 3", {ATTN_SPARSE_LOCAL_1D, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0, 8,
     {"111.....", "111.....", "111.....", "111111..", "111111..", "111111..", "...11111",
      "...11111"}},
    {"strided l 3 causal, head 0 (local)",
     {ATTN_SPARSE_STRIDED, 1, ATTN_SPARSE_HEADS_ALTERNATE, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0, 8,
     {"1.......", "11......", "111.....", ".111....", "..111...", "...111..", "....111.",
      ".....111"}},
    {"strided l 3 causal, head 1 (strided)",
     {ATTN_SPARSE_STRIDED, 1, ATTN_SPARSE_HEADS_ALTERNATE, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 1, 8,
     {"1.......", ".1......", "..1.....", "1..1....", ".1..1...", "..1..1..", "1..1..1.",
      ".1..1..1"}},
    {"strided l 3 causal, union",
     {ATTN_SPARSE_STRIDED, 1, ATTN_SPARSE_HEADS_UNION, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 5, 8,
     {"1.......", "11......", "111.....", "1111....", ".1111...", "..1111..", "1..1111.",
      ".1..1111"}},
    {"fixed l 4 c 1 causal, head 0 (block)",
     {ATTN_SPARSE_FIXED, 1, ATTN_SPARSE_HEADS_ALTERNATE, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0}, 0, 8,
     {"1.......", "11......", "111.....", "1111....", "....1...", "....11..", "....111.",
      "....1111"}},
    {"fixed l 4 c 1 causal, head 1 (summary; rows 0-2 see nothing)",
     {ATTN_SPARSE_FIXED, 1, ATTN_SPARSE_HEADS_ALTERNATE, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0}, 1, 8,
     {"........", "........", "........", "...1....", "...1....", "...1....", "...1....",
      "...1...1"}},
    {"fixed l 4 c 2, B only, head offsets, head 0",
     {ATTN_SPARSE_FIXED, 0, ATTN_SPARSE_HEADS_B_ONLY, 1, 4, 2, 0, 0, 0, 0, 0, 0, 0, 0}, 0, 8,
     {"..11..11", "..11..11", "..11..11", "..11..11", "..11..11", "..11..11", "..11..11",
      "..11..11"}},
    {"fixed l 4 c 2, B only, head offsets, head 1",
     {ATTN_SPARSE_FIXED, 0, ATTN_SPARSE_HEADS_B_ONLY, 1, 4, 2, 0, 0, 0, 0, 0, 0, 0, 0}, 1, 8,
     {"11..11..", "11..11..", "11..11..", "11..11..", "11..11..", "11..11..", "11..11..",
      "11..11.."}},
    {"sliding w 2", {ATTN_SPARSE_SLIDING, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}, 0, 8,
     {"11......", "111.....", ".111....", "..111...", "...111..", "....111.", ".....111",
      "......11"}},
    {"dilated w 5 d 2 causal", {ATTN_SPARSE_DILATED, 1, 0, 0, 0, 0, 5, 2, 0, 0, 0, 0, 0, 0}, 0, 8,
     {"1.......", ".1......", "1.1.....", ".1.1....", "1.1.1...", ".1.1.1..", "..1.1.1.",
      "...1.1.1"}},
    {"global g 1 + sliding w 2", {ATTN_SPARSE_GLOBAL_SLIDING, 0, 0, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0, 0},
     0, 8,
     {"11111111", "111.....", "1111....", "1.111...", "1..111..", "1...111.", "1....111",
      "1.....11"}},
    {"local 2-D W 4, blocks 2x2, margin 2 rows above, 1 column each side, causal",
     {ATTN_SPARSE_LOCAL_2D, 1, 0, 0, 0, 0, 0, 0, 0, 4, 2, 2, 2, 1}, 0, 16,
     {"1...............", "11..............", "111.............", "1111............",
      ".1.11...........", ".1.111..........", ".1.1111.........", ".1.11111........",
      "11111.1.1.......", "11111.1.11......", "11111.1.111.....", "11111.1.1111....",
      ".1.11111.1.11...", ".1.11111.1.111..", ".1.11111.1.1111.", ".1.11111.1.11111"}},
};

static void test_definitions(void) {
    TEST_BEGIN("sparse/definitions: every kind against its picture (docs/sparse.md)");
    for (size_t i = 0; i < sizeof pictures / sizeof pictures[0]; i++) {
        const picture *pc = &pictures[i];
        int64_t bad = 0, bt = -1, bs = -1;
        for (int64_t t = 0; t < pc->n; t++)
            for (int64_t s = 0; s < pc->n; s++) {
                const int want = pc->rows[t][s] == '1';
                if (attn_sparse_visible(&pc->p, pc->h, pc->n, pc->n, t, s) != want) {
                    if (!bad) bt = t, bs = s;
                    bad++;
                }
            }
        CHECK(bad == 0, "%s: %lld entries differ from the picture (first: query %lld, key %lld)",
              pc->label, (long long)bad, (long long)bt, (long long)bs);
    }
    /* LOCAL_2D with a partial last block column: W 3, blocks 2x2 (padded
     * width 4): pixels of column 3 are never visible, whatever the query */
    attn_sparse_pattern p = {0};
    p.kind = ATTN_SPARSE_LOCAL_2D, p.width = 3, p.block_h = 2, p.block_w = 2;
    p.margin_h = 3, p.margin_w = 3;
    int64_t seen_pad = 0, seen = 0;
    for (int64_t t = 0; t < 24; t++)
        for (int64_t s = 0; s < 24; s++) {
            int64_t r, c;
            attn_sparse_local2d_pixel(&p, s, &r, &c);
            const int v = attn_sparse_visible(&p, 0, 24, 24, t, s);
            seen_pad += v && c >= 3;
            seen += v;
        }
    CHECK(seen_pad == 0 && seen > 0, "local 2-D W 3: %lld visible padding entries (of %lld)",
          (long long)seen_pad, (long long)seen);
    int64_t r, c;
    attn_sparse_local2d_pixel(&p, 13, &r, &c); /* block (1, 0): positions 8..11, (1, 1): 12..15 */
    CHECK(r == 2 && c == 3, "local 2-D W 3: position 13 is pixel (%lld, %lld), expected (2, 3)",
          (long long)r, (long long)c);
    TEST_END();
}

/* ---- the compiler ---------------------------------------------------------------- */

/* 0 when the layout L of p (H heads, opts causal and window) is the element
 * rule exactly; else a failed CHECK naming the first difference. */
static int check_layout(const attn_sparse_layout *L, const attn_sparse_pattern *p, int causal,
                        int64_t window, int64_t H, const char *label) {
    const int64_t T = L->T, S = L->S, tq = L->tq, tk = L->tk;
    int64_t visible = 0;
    int64_t *seen_v = calloc((size_t)L->variants, sizeof(int64_t));
    if (!seen_v) return -1;
    for (int64_t h = 0; h < H; h++) {
        const int64_t v = attn_sparse_head_variant(p, h);
        if (v < 0 || v >= L->variants) {
            CHECK(0, "%s: head %lld has variant %lld of %lld", label, (long long)h, (long long)v,
                  (long long)L->variants);
            free(seen_v);
            return -1;
        }
        const int first = !seen_v[v];
        seen_v[v] = 1;
        for (int64_t qt = 0; qt < L->nq; qt++) {
            const int64_t e0 = L->start[v * L->nq + qt], e1 = L->start[v * L->nq + qt + 1];
            int64_t e = e0;
            for (int64_t kt = 0; kt < L->nk; kt++) {
                const int has = e < e1 && L->ktile[e] == kt;
                if (e < e1 && L->ktile[e] < kt) {
                    CHECK(0, "%s: query tile %lld: key tiles not increasing", label,
                          (long long)qt);
                    free(seen_v);
                    return -1;
                }
                int64_t nvis = 0, ntot = 0;
                for (int64_t t = qt * tq; t < T && t < qt * tq + tq; t++)
                    for (int64_t s = kt * tk; s < S && s < kt * tk + tk; s++) {
                        const int want = attn_sparse_visible(p, h, T, S, t, s) &&
                                         opts_rule(T, S, causal, window, t, s);
                        int got = 0;
                        if (has) {
                            const int64_t at = L->mask_at[e];
                            if (at < 0) {
                                got = 1;
                            } else {
                                const int64_t r = t - qt * tq, col = s - kt * tk;
                                got = (int)(L->mask[at + r * L->words + col / 64] >> (col % 64) & 1u);
                            }
                        }
                        if (got != want) {
                            CHECK(0, "%s: head %lld, query %lld, key %lld: layout says %d, rule %d "
                                  "(tile %lld, %lld; %s)", label, (long long)h, (long long)t,
                                  (long long)s, got, want, (long long)qt, (long long)kt,
                                  has ? (L->mask_at[e] < 0 ? "full" : "partial") : "skipped");
                            free(seen_v);
                            return -1;
                        }
                        nvis += want;
                        ntot++;
                    }
                if (has && (nvis == 0 || (L->mask_at[e] >= 0 && nvis == ntot))) {
                    CHECK(0, "%s: tile (%lld, %lld) listed as %s with %lld of %lld visible", label,
                          (long long)qt, (long long)kt, L->mask_at[e] < 0 ? "full" : "partial",
                          (long long)nvis, (long long)ntot);
                    free(seen_v);
                    return -1;
                }
                if (first) visible += nvis;
                e += has;
            }
        }
    }
    free(seen_v);
    CHECK(visible == L->visible, "%s: layout counts %lld visible entries, the rule %lld", label,
          (long long)L->visible, (long long)visible);
    return 0;
}

static void test_compiler(void) {
    TEST_BEGIN("sparse/compiler: layouts of random patterns = the element rule, bit for bit");
    attn_ctx *ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    attn_rng rng;
    attn_rng_init(&rng, 0x5A55E);
    static const int64_t tiles[] = {1, 3, 8, 64, 65, 100};
    int failed = 0;
    for (int i = 0; ctx && i < 400 && failed < 3; i++) {
        const int64_t T = 1 + attn_rng_next_below(&rng, 150), S = 1 + attn_rng_next_below(&rng, 150);
        const int64_t H = 1 + attn_rng_next_below(&rng, 6);
        const int64_t tq = tiles[attn_rng_next_below(&rng, 6)], tk = tiles[attn_rng_next_below(&rng, 6)];
        const int causal = attn_rng_next_below(&rng, 3) == 0;
        const int64_t window = attn_rng_next_below(&rng, 4) == 0 ? 1 + attn_rng_next_below(&rng, 40) : 0;
        attn_sparse_pattern p;
        test_sparse_draw(&rng, T, S, &p);
        char label[400], pl[300];
        test_sparse_label(&p, pl, sizeof pl);
        snprintf(label, sizeof label, "case %d: %s, T %lld S %lld H %lld tiles %lldx%lld causal %d window %lld",
                 i, pl, (long long)T, (long long)S, (long long)H, (long long)tq, (long long)tk,
                 causal, (long long)window);
        attn_ctx_reset(ctx);
        attn_sparse_layout L;
        const attn_status st = attn_sparse_compile(ctx, &p, causal, window, H, T, S, tq, tk, &L);
        CHECK(st == ATTN_OK, "%s: compile: %s", label, attn_last_error());
        const int before = test__failed_checks;
        if (st == ATTN_OK) check_layout(&L, &p, causal, window, H, label);
        failed += test__failed_checks > before;
    }
    if (ctx) attn_ctx_free(ctx);
    TEST_END();

    TEST_BEGIN("sparse/compiler: work and memory grow with the visible entries");
    ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    if (ctx) {
        const int64_t T = 4096;
        attn_sparse_pattern p = {0};
        p.kind = ATTN_SPARSE_SLIDING, p.window = 128, p.causal = 1;
        attn_sparse_layout L;
        CHECK_OK(attn_sparse_compile(ctx, &p, 0, 0, 1, T, T, 64, 64, &L));
        /* query tile q sees key tiles q - 2 .. q: at most 3, 2 of them partial */
        CHECK(L.entries <= 3 * L.nq && L.partial <= 2 * L.nq,
              "sliding 128, T 4096: %lld entries, %lld partial for %lld query tiles",
              (long long)L.entries, (long long)L.partial, (long long)L.nq);
        const int64_t want = 128 * T - 128 * 127 / 2; /* sum_t min(t + 1, 128) */
        CHECK(L.visible == want, "sliding 128: %lld visible, expected %lld", (long long)L.visible,
              (long long)want);
        attn_ctx_reset(ctx);
        attn_sparse_pattern f = {0};
        f.kind = ATTN_SPARSE_FIXED, f.block = 128, f.summary = 16, f.causal = 1;
        f.heads = ATTN_SPARSE_HEADS_UNION;
        CHECK_OK(attn_sparse_compile(ctx, &f, 0, 0, 1, T, T, 64, 64, &L));
        /* per query: its block up to itself, plus the summaries of earlier blocks
         * (and of its own block's summary positions before it) */
        int64_t count = 0;
        for (int64_t t = 0; t < T; t++) {
            const int64_t blk = t / 128, in = t % 128;
            count += in + 1 + blk * 16; /* the summaries in its own block are in [0, t] already */
        }
        CHECK(L.visible == count, "fixed 128/16 causal: %lld visible, expected %lld",
              (long long)L.visible, (long long)count);
        CHECK(L.entries * 64 * 64 < T * T / 2,
              "fixed 128/16 causal: %lld tiles of 64 x 64 computed, dense causal computes %lld",
              (long long)L.entries, (long long)(T / 64) * (T / 64 + 1) / 2);
        attn_ctx_free(ctx);
    }
    TEST_END();
}

/* ---- fused vs reference ---------------------------------------------------------------- */

typedef struct scase {
    int64_t B, H, Hkv, T, S, D, Dv;
    int causal, has_kl, bias;
    int32_t kl[2];
    attn_sparse_pattern p;
} scase;

typedef struct sres {
    float *out, *w, *g[3];
    int64_t n_out, n_w, n[3];
} sres;

static void sres_free(sres *r) {
    free(r->out), free(r->w);
    for (int i = 0; i < 3; i++) free(r->g[i]);
    memset(r, 0, sizeof *r);
}

static float *copy_of(const float *x, int64_t n) {
    float *y = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (y) memcpy(y, x, sizeof(float) * (size_t)n);
    return y;
}

/* q, k, v (and the bias [1, H, T, S] when c->bias) of case c, from seed */
typedef struct sdata {
    float *x[4], *gy;
    int64_t sh[4][4], n[4], n_out;
} sdata;

static void sdata_free(sdata *d) {
    for (int i = 0; i < 4; i++) free(d->x[i]);
    free(d->gy);
}

static int sdata_make(const scase *c, uint64_t seed, sdata *d) {
    memset(d, 0, sizeof *d);
    attn_rng rng;
    attn_rng_init(&rng, seed);
    const int64_t sh[4][4] = {{c->B, c->H, c->T, c->D},
                              {c->B, c->Hkv, c->S, c->D},
                              {c->B, c->Hkv, c->S, c->Dv},
                              {1, c->H, c->T, c->S}};
    for (int i = 0; i < 4; i++) {
        if (i == 3 && !c->bias) break;
        memcpy(d->sh[i], sh[i], sizeof sh[i]);
        d->n[i] = sh[i][0] * sh[i][1] * sh[i][2] * sh[i][3];
        if (!(d->x[i] = malloc(sizeof(float) * (size_t)d->n[i]))) return -1;
        test_fill_normal(d->x[i], d->n[i], &rng);
    }
    d->n_out = c->B * c->H * c->T * c->Dv;
    if (!(d->gy = malloc(sizeof(float) * (size_t)d->n_out))) return -1;
    test_fill_normal(d->gy, d->n_out, &rng);
    return 0;
}

static attn_tensor *run_case(attn_ctx *ctx, const scase *c, const sdata *d, int flash,
                             attn_tensor **leaf, attn_tensor **w) {
    for (int i = 0; i < 4; i++) {
        leaf[i] = NULL;
        if (!d->x[i]) continue;
        if (!(leaf[i] = test_leaf(ctx, 4, d->sh[i], d->x[i]))) return NULL;
    }
    attn_sdpa_opts o = {0};
    o.causal = c->causal;
    o.bias = leaf[3];
    o.sparse = &c->p;
    if (c->has_kl) o.key_lengths = attn_tensor_from(ctx, ATTN_I32, 1, &c->B, c->kl);
    return flash ? attn_flash_sdpa(ctx, leaf[0], leaf[1], leaf[2], &o, w)
                 : attn_sdpa(ctx, leaf[0], leaf[1], leaf[2], &o, w);
}

static int forward_backward(attn_ctx *ctx, const scase *c, const sdata *d, int flash, sres *r,
                            const char *label) {
    memset(r, 0, sizeof *r);
    attn_ctx_reset(ctx);
    attn_tensor *leaf[4], *w = NULL;
    attn_tensor *y = run_case(ctx, c, d, flash, leaf, &w);
    CHECK(y && w, "%s: %s: %s", label, flash ? "flash_sdpa" : "sdpa", attn_last_error());
    if (!y || !w) return -1;
    r->n_out = attn_tensor_numel(y), r->n_w = attn_tensor_numel(w);
    r->out = copy_of(attn_f32(y), r->n_out);
    r->w = copy_of(attn_f32(w), r->n_w);
    const attn_status st = attn_backward_from(ctx, y, d->gy);
    CHECK(st == ATTN_OK, "%s: backward: %s", label, attn_last_error());
    if (st != ATTN_OK) return -1;
    for (int i = 0; i < 3; i++) r->n[i] = d->n[i], r->g[i] = copy_of(leaf[i]->grad, d->n[i]);
    return 0;
}

/* A pattern of each kind at the sizes of the ragged cases (blocks that
 * straddle the 64-key tiles). */
static attn_sparse_pattern kind_pattern(int kind, int causal, int alt) {
    attn_sparse_pattern p = {0};
    p.kind = kind;
    p.causal = causal;
    switch (kind) {
    case ATTN_SPARSE_LOCAL_1D: p.block = alt ? 5 : 40; break;
    case ATTN_SPARSE_LOCAL_2D:
        p.width = alt ? 11 : 12, p.block_h = alt ? 2 : 3, p.block_w = alt ? 3 : 4;
        p.margin_h = 2, p.margin_w = alt ? 1 : 4;
        break;
    case ATTN_SPARSE_STRIDED:
        p.block = alt ? 7 : 24;
        p.heads = alt ? ATTN_SPARSE_HEADS_UNION : ATTN_SPARSE_HEADS_ALTERNATE;
        break;
    case ATTN_SPARSE_FIXED:
        p.block = alt ? 16 : 32, p.summary = alt ? 4 : 8, p.head_offsets = alt;
        p.heads = alt ? ATTN_SPARSE_HEADS_UNION : ATTN_SPARSE_HEADS_ALTERNATE;
        break;
    case ATTN_SPARSE_SLIDING: p.window = alt ? 3 : 70; break;
    case ATTN_SPARSE_DILATED: p.window = alt ? 9 : 90, p.dilation = alt ? 2 : 5; break;
    default: p.window = alt ? 4 : 30, p.globals = alt ? 2 : 3; break;
    }
    return p;
}

static const struct {
    int flags;
    const char *name;
} variants[3] = {{0, "the CPU's kernels"},
                 {ATTN_KERNELS_PORTABLE, "portable kernels"},
                 {ATTN_KERNELS_NO_AMX, "no AMX"}};

static void compare_ops(attn_ctx *ctx, const scase *c, const char *label, uint64_t seed) {
    sdata d;
    sres a, b;
    memset(&a, 0, sizeof a), memset(&b, 0, sizeof b);
    if (sdata_make(c, seed, &d) == 0 && forward_backward(ctx, c, &d, 1, &a, label) == 0 &&
        forward_backward(ctx, c, &d, 0, &b, label) == 0) {
        char what[480];
        static const char *gn[3] = {"dq", "dk", "dv"};
        snprintf(what, sizeof what, "%s: out", label);
        test_allclose(what, a.out, b.out, a.n_out, FL_ATOL, FL_RTOL);
        snprintf(what, sizeof what, "%s: weights", label);
        test_allclose(what, a.w, b.w, a.n_w, W_ATOL, W_RTOL);
        for (int i = 0; i < 3; i++) {
            snprintf(what, sizeof what, "%s: %s", label, gn[i]);
            if (a.g[i] && b.g[i]) test_allclose(what, a.g[i], b.g[i], a.n[i], FL_ATOL, FL_RTOL);
        }
    }
    sres_free(&a), sres_free(&b);
    sdata_free(&d);
}

static void test_fused_vs_reference(void) {
    static const int64_t sizes[][2] = {{77, 77}, {50, 130}, {130, 70}, {200, 200}};
    for (int v = 0; v < 3; v++) {
        char tname[512];
        snprintf(tname, sizeof tname,
                 "sparse/fused vs reference (%s): every kind, causal on/off, ragged T, S",
                 variants[v].name);
        TEST_BEGIN(tname);
        attn_ctx *ctx = test_ctx_new((size_t)128 << 20, 1, 0);
        if (ctx) attn_ctx_set_kernel_flags(ctx, attn_ctx_kernel_flags(ctx) | variants[v].flags);
        for (int kind = 1; ctx && kind <= 7; kind++)
            for (int causal = 0; causal < 2; causal++)
                for (int alt = 0; alt < 2; alt++) {
                    const int sz = (kind + causal + 2 * alt + v) % 4;
                    scase c = {1 + alt, 4, 2, sizes[sz][0], sizes[sz][1], alt ? 24 : 16, alt ? 16 : 24,
                               0, 0, 0, {0, 0}, kind_pattern(kind, causal, alt)};
                    /* causal from the options in half the cases, the pattern's own in the rest */
                    if (causal && alt) c.p.causal = 0, c.causal = 1;
                    if (alt && kind % 2) c.has_kl = 1, c.kl[0] = (int32_t)(c.S - 5), c.kl[1] = (int32_t)(c.S / 2);
                    if (!alt && kind % 3 == 0) c.bias = 1;
                    char label[400], pl[300];
                    test_sparse_label(&c.p, pl, sizeof pl);
                    snprintf(label, sizeof label, "%s; B%lld T%lld S%lld opts causal %d kl %d bias %d",
                             pl, (long long)c.B, (long long)c.T, (long long)c.S, c.causal, c.has_kl,
                             c.bias);
                    compare_ops(ctx, &c, label, 77 + (uint64_t)kind * 10 + (uint64_t)causal);
                }
        if (ctx) attn_ctx_free(ctx);
        TEST_END();
    }
}

/* Rows with no visible key (fixed, B head, causal: queries before the first
 * summary position): zero output and zero gradients on both ops. */
static void test_empty_rows(void) {
    TEST_BEGIN("sparse/rows with no visible key: zero output, no gradient (both ops)");
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    scase c = {1, 2, 2, 70, 70, 8, 8, 0, 0, 0, {0, 0},
               {ATTN_SPARSE_FIXED, 1, ATTN_SPARSE_HEADS_ALTERNATE, 0, 32, 4, 0, 0, 0, 0, 0, 0, 0, 0}};
    sdata d;
    for (int flash = 0; ctx && flash < 2; flash++) {
        sres r;
        if (sdata_make(&c, 5, &d) == 0 && forward_backward(ctx, &c, &d, flash, &r, "fixed B head") == 0) {
            /* head 1, queries 0 .. 27 see nothing (summaries are 28 .. 31) */
            int bad = 0;
            for (int64_t t = 0; t < 28; t++)
                for (int64_t e = 0; e < 8; e++) bad += r.out[(1 * 70 + t) * 8 + e] != 0.0f;
            for (int64_t t = 0; t < 28; t++)
                for (int64_t e = 0; e < 8; e++) bad += r.g[0][(1 * 70 + t) * 8 + e] != 0.0f;
            int live = 0;
            for (int64_t e = 0; e < 8; e++) live += r.out[(1 * 70 + 28) * 8 + e] != 0.0f;
            CHECK(bad == 0 && live > 0, "%s: %d nonzero output/dq values in empty rows, %d live",
                  flash ? "flash_sdpa" : "sdpa", bad, live);
            sres_free(&r);
        }
        sdata_free(&d);
    }
    if (ctx) attn_ctx_free(ctx);
    TEST_END();
}

/* 1 vs 2 threads: with B Hkv = 4 units the forward and the backward split
 * whole work items, so everything is bitwise the same (the fused op's
 * contract, sdpa.h), patterns included. */
static void test_threads(void) {
    TEST_BEGIN("sparse/threads: 1 and 2 threads give the same bits (fused op)");
    attn_ctx *c1 = test_ctx_new((size_t)64 << 20, 1, 0), *c2 = test_ctx_new((size_t)64 << 20, 2, 0);
    for (int kind = 1; c1 && c2 && kind <= 7; kind++) {
        scase c = {2, 4, 2, 150, 150, 16, 16, 1, 0, 0, {0, 0}, kind_pattern(kind, 0, kind % 2)};
        sdata d;
        sres a, b;
        memset(&a, 0, sizeof a), memset(&b, 0, sizeof b);
        char pl[300];
        test_sparse_label(&c.p, pl, sizeof pl);
        if (sdata_make(&c, 31, &d) == 0 && forward_backward(c1, &c, &d, 1, &a, pl) == 0 &&
            forward_backward(c2, &c, &d, 1, &b, pl) == 0) {
            int same = memcmp(a.out, b.out, sizeof(float) * (size_t)a.n_out) == 0;
            for (int i = 0; i < 3; i++)
                same &= memcmp(a.g[i], b.g[i], sizeof(float) * (size_t)a.n[i]) == 0;
            CHECK(same, "%s: 1 and 2 threads differ", pl);
        }
        sres_free(&a), sres_free(&b);
        sdata_free(&d);
    }
    if (c1) attn_ctx_free(c1);
    if (c2) attn_ctx_free(c2);
    TEST_END();
}

/* ---- finite differences ---------------------------------------------------------------- */

static double loss_ref(attn_ctx *ctx, const scase *c, const sdata *d, int flash) {
    attn_ctx_reset(ctx);
    attn_ctx_set_use_ref(ctx, 1);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *leaf[4];
    attn_tensor *y = run_case(ctx, c, d, flash, leaf, NULL);
    attn_ctx_set_grad_enabled(ctx, 1);
    attn_ctx_set_use_ref(ctx, 0);
    return y ? test_dot_d(y, d->gy) : NAN;
}

static void test_finite_differences(void) {
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    for (int kind = 1; ctx && kind <= 7; kind++)
        for (int flash = 0; flash < 2; flash++) {
            char tname[512];
            scase c = {1, 2, 1, 9, 11, 4, 3, kind % 2, 0, 0, {0, 0}, kind_pattern(kind, kind % 3 == 0, 1)};
            char pl[300];
            test_sparse_label(&c.p, pl, sizeof pl);
            snprintf(tname, sizeof tname, "sparse/finite differences (%s): %s",
                     flash ? "flash_sdpa" : "sdpa", pl);
            TEST_BEGIN(tname);
            sdata d;
            sres an;
            memset(&an, 0, sizeof an);
            if (sdata_make(&c, 900 + (uint64_t)kind, &d) == 0 &&
                forward_backward(ctx, &c, &d, flash, &an, tname) == 0) {
                static const char *gn[3] = {"q", "k", "v"};
                for (int i = 0; i < 3; i++) {
                    int64_t bad = 0, worst = -1;
                    double worst_fd = 0, worst_ex = 0;
                    for (int64_t e = 0; e < d.n[i]; e++) {
                        const float x0 = d.x[i][e];
                        d.x[i][e] = x0 + FD_STEP;
                        const double lp = loss_ref(ctx, &c, &d, flash);
                        d.x[i][e] = x0 - FD_STEP;
                        const double lm = loss_ref(ctx, &c, &d, flash);
                        d.x[i][e] = x0;
                        const double fd = (lp - lm) / ((double)(x0 + FD_STEP) - (double)(x0 - FD_STEP));
                        const double ex = fabs(an.g[i][e] - fd) - (FD_ATOL + FD_RTOL * fabs(fd));
                        if (!(ex <= 0)) {
                            if (worst < 0 || ex > worst_ex) worst = e, worst_ex = ex, worst_fd = fd;
                            bad++;
                        }
                    }
                    CHECK(bad == 0, "%s: d%s[%lld]: analytic %.9g, central difference %.9g; %lld bad",
                          pl, gn[i], (long long)worst, worst >= 0 ? (double)an.g[i][worst] : 0.0,
                          worst_fd, (long long)bad);
                }
            }
            sres_free(&an);
            sdata_free(&d);
            TEST_END();
        }
    if (ctx) attn_ctx_free(ctx);
}

/* ---- PyTorch parity ---------------------------------------------------------------- */

static void test_fixtures(void) {
    char path[512], err[300];
    snprintf(path, sizeof path, "%s/sparse.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        TEST_BEGIN("sparse/fixture");
        CHECK(0, "%s (run %s)", err, SCRIPT);
        TEST_END();
        return;
    }
    const atfx_tensor *nc = atfx_find(fx, "n_cases");
    const int n = nc ? atfx_i32(nc)[0] : 0;
    TEST_BEGIN("sparse/fixture has a case of every kind");
    CHECK(n >= 7, "sparse.atfx has %d cases, expected >= 7", n);
    TEST_END();
    attn_ctx *ctx = test_ctx_new((size_t)32 << 20, 1, 0);
    for (int k = 0; ctx && k < n; k++) {
        char nm[64], tname[512];
        snprintf(nm, sizeof nm, "c%d.cfg", k);
        const atfx_tensor *ct = test_fx_need(fx, nm, ATTN_I32, 22, SCRIPT);
        if (!ct) continue;
        const int32_t *cv = atfx_i32(ct);
        scase c;
        memset(&c, 0, sizeof c);
        c.B = cv[0], c.H = cv[1], c.Hkv = cv[2], c.T = cv[3], c.S = cv[4], c.D = cv[5], c.Dv = cv[6];
        c.causal = cv[7];
        c.p.kind = cv[8], c.p.causal = cv[9], c.p.heads = cv[10], c.p.head_offsets = cv[11];
        c.p.block = cv[12], c.p.summary = cv[13], c.p.window = cv[14], c.p.dilation = cv[15];
        c.p.globals = cv[16], c.p.width = cv[17];
        c.p.block_h = cv[18], c.p.block_w = cv[19], c.p.margin_h = cv[20], c.p.margin_w = cv[21];
        char pl[300];
        test_sparse_label(&c.p, pl, sizeof pl);
        snprintf(tname, sizeof tname, "sparse/PyTorch case %d: %s, T%lld S%lld", k, pl,
                 (long long)c.T, (long long)c.S);
        TEST_BEGIN(tname);
        /* the mask torch used [H, T, S] = the element rule with the options' causal */
        snprintf(nm, sizeof nm, "c%d.mask", k);
        const atfx_tensor *mt = test_fx_need(fx, nm, ATTN_I32, c.H * c.T * c.S, SCRIPT);
        int64_t diff = 0;
        for (int64_t h = 0; mt && h < c.H; h++)
            for (int64_t t = 0; t < c.T; t++)
                for (int64_t s = 0; s < c.S; s++) {
                    const int want = atfx_i32(mt)[(h * c.T + t) * c.S + s] != 0;
                    diff += want != (attn_sparse_visible(&c.p, h, c.T, c.S, t, s) &&
                                     opts_rule(c.T, c.S, c.causal, 0, t, s));
                }
        CHECK(diff == 0, "%s: %lld mask entries differ from PyTorch's", pl, (long long)diff);
        sdata d;
        memset(&d, 0, sizeof d);
        static const char *xn[3] = {"q", "k", "v"};
        int ok = 1;
        for (int i = 0; i < 3 && ok; i++) {
            snprintf(nm, sizeof nm, "c%d.%s", k, xn[i]);
            const int64_t sh[3][4] = {{c.B, c.H, c.T, c.D}, {c.B, c.Hkv, c.S, c.D}, {c.B, c.Hkv, c.S, c.Dv}};
            memcpy(d.sh[i], sh[i], sizeof sh[i]);
            d.n[i] = sh[i][0] * sh[i][1] * sh[i][2] * sh[i][3];
            const atfx_tensor *xt = test_fx_need(fx, nm, ATTN_F32, d.n[i], SCRIPT);
            ok = xt && (d.x[i] = copy_of(atfx_f32(xt), d.n[i]));
        }
        d.n_out = c.B * c.H * c.T * c.Dv;
        snprintf(nm, sizeof nm, "c%d.grad_out", k);
        const atfx_tensor *gt = ok ? test_fx_need(fx, nm, ATTN_F32, d.n_out, SCRIPT) : NULL;
        if (gt && (d.gy = copy_of(atfx_f32(gt), d.n_out)))
            for (int flash = 0; flash < 2; flash++) {
                sres r;
                if (forward_backward(ctx, &c, &d, flash, &r, tname)) continue;
                const char *op = flash ? "flash_sdpa" : "sdpa";
                snprintf(nm, sizeof nm, "c%d.out", k);
                test_fx_close(op, "output", r.out, fx, nm, r.n_out, PT_ATOL, PT_RTOL, SCRIPT);
                for (int i = 0; i < 3; i++) {
                    char what[32];
                    snprintf(nm, sizeof nm, "c%d.grad.%s", k, xn[i]);
                    snprintf(what, sizeof what, "gradient of %s", xn[i]);
                    test_fx_close(op, what, r.g[i], fx, nm, r.n[i], PT_ATOL, PT_RTOL, SCRIPT);
                }
                sres_free(&r);
            }
        sdata_free(&d);
        TEST_END();
    }
    if (ctx) attn_ctx_free(ctx);
    atfx_free(fx);
}

/* ---- multi-head attention ---------------------------------------------------------- */

/* y = mha(x) under call; out receives y and dx (x's gradient for the seed
 * r of y's size) */
static int mha_run(attn_ctx *ctx, const attn_mha *m, const float *x, const int64_t *xs,
                   const attn_mha_call *call, const float *r, float *y, float *dx) {
    attn_ctx_reset(ctx);
    attn_tensor *xt = test_leaf(ctx, 3, xs, x);
    attn_tensor *out = xt ? attn_mha_forward(ctx, m, xt, NULL, call, NULL) : NULL;
    CHECK(out != NULL, "mha forward: %s", attn_last_error());
    if (!out) return -1;
    const int64_t n = attn_tensor_numel(out);
    memcpy(y, attn_f32(out), sizeof(float) * (size_t)n);
    CHECK_OK(attn_backward_from(ctx, out, r));
    memcpy(dx, xt->grad, sizeof(float) * (size_t)attn_tensor_numel(xt));
    return 0;
}

/* The pattern through attn_mha_call.sparse, on the fused and the reference
 * kernel and on the composed path (SHAW positions), equals the same module
 * with the pattern given as an explicit [1, H, T, S] -inf bias. */
static void test_mha(void) {
    TEST_BEGIN("sparse/multi-head attention: attn_mha_call.sparse = an explicit -inf bias");
    enum { B = 2, T = 37, E = 16, H = 4 };
    const int64_t xs[3] = {B, T, E}, bs[4] = {1, H, T, T};
    float *x = malloc(sizeof(float) * B * T * E), *r = malloc(sizeof(float) * B * T * E);
    float *y[2], *dx[2];
    for (int i = 0; i < 2; i++) {
        y[i] = malloc(sizeof(float) * B * T * E);
        dx[i] = malloc(sizeof(float) * B * T * E);
    }
    float *mask = malloc(sizeof(float) * H * T * T);
    attn_ctx *ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    attn_rng rng;
    attn_rng_init(&rng, 4242);
    static const struct {
        attn_attention_kernel kernel;
        attn_pos_kind pos;
        const char *name;
    } ways[3] = {{ATTN_KERNEL_FUSED, ATTN_POS_NONE, "fused kernel"},
                 {ATTN_KERNEL_REFERENCE, ATTN_POS_NONE, "reference kernel"},
                 {ATTN_KERNEL_AUTO, ATTN_POS_SHAW, "composed path (SHAW)"}};
    for (int wi = 0; ctx && x && r && mask && y[0] && y[1] && dx[0] && dx[1] && wi < 3; wi++)
        for (int kind = 1; kind <= 7; kind++) {
            attn_params *ps = NULL;
            CHECK_OK(attn_params_new(&ps));
            if (!ps) break;
            attn_mha_config cfg = {0};
            cfg.embed_dim = E, cfg.n_heads = H, cfg.n_kv_heads = 2, cfg.packed = 1;
            cfg.kernel = ways[wi].kernel, cfg.pos = ways[wi].pos, cfg.shaw_clip = 3;
            attn_mha m;
            CHECK_OK(attn_mha_init(&m, ps, "m.", &cfg, &rng));
            test_fill_normal(x, B * T * E, &rng);
            test_fill_normal(r, B * T * E, &rng);
            const attn_sparse_pattern p = kind_pattern(kind, 0, 1);
            for (int64_t h = 0; h < H; h++)
                for (int64_t t = 0; t < T; t++)
                    for (int64_t s2 = 0; s2 < T; s2++)
                        mask[(h * T + t) * T + s2] =
                            attn_sparse_visible(&p, h, T, T, t, s2) ? 0.0f : -INFINITY;
            attn_mha_call c1 = {0}, c2 = {0};
            c1.causal = c2.causal = 1;
            c1.sparse = &p;
            int ok = mha_run(ctx, &m, x, xs, &c1, r, y[0], dx[0]) == 0;
            if (ok) {
                attn_ctx_reset(ctx);
                c2.bias = attn_tensor_from(ctx, ATTN_F32, 4, bs, mask);
                attn_tensor *xt = test_leaf(ctx, 3, xs, x);
                attn_tensor *out = xt && c2.bias ? attn_mha_forward(ctx, &m, xt, NULL, &c2, NULL) : NULL;
                CHECK(out != NULL, "mha forward with the bias: %s", attn_last_error());
                ok = out && attn_backward_from(ctx, out, r) == ATTN_OK;
                if (ok) {
                    memcpy(y[1], attn_f32(out), sizeof(float) * B * T * E);
                    memcpy(dx[1], xt->grad, sizeof(float) * B * T * E);
                }
            }
            if (ok) {
                char what[200];
                snprintf(what, sizeof what, "%s, kind %d: output", ways[wi].name, kind);
                test_allclose(what, y[0], y[1], B * T * E, FL_ATOL, FL_RTOL);
                snprintf(what, sizeof what, "%s, kind %d: dx", ways[wi].name, kind);
                test_allclose(what, dx[0], dx[1], B * T * E, FL_ATOL, FL_RTOL);
            }
            attn_params_free(ps);
        }
    if (ctx) attn_ctx_free(ctx);
    free(x), free(r), free(mask);
    for (int i = 0; i < 2; i++) free(y[i]), free(dx[i]);
    TEST_END();
}

/* ---- errors ---------------------------------------------------------------- */

static void test_errors(void) {
    TEST_BEGIN("sparse/errors: bad patterns are refused by both ops, naming the field");
    attn_ctx *ctx = test_ctx_new((size_t)8 << 20, 1, 0);
    static const struct {
        attn_sparse_pattern p;
        const char *needle;
    } bad[] = {
        {{0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "kind"},
        {{99, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "kind"},
        {{ATTN_SPARSE_LOCAL_1D, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "block"},
        {{ATTN_SPARSE_STRIDED, 0, 7, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "heads"},
        {{ATTN_SPARSE_FIXED, 0, 0, 0, 4, 5, 0, 0, 0, 0, 0, 0, 0, 0}, "summary"},
        {{ATTN_SPARSE_FIXED, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "summary"},
        {{ATTN_SPARSE_SLIDING, 0, 0, 0, 0, 0, -3, 0, 0, 0, 0, 0, 0, 0}, "window"},
        {{ATTN_SPARSE_DILATED, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0}, "dilation"},
        {{ATTN_SPARSE_GLOBAL_SLIDING, 0, 0, 0, 0, 0, 4, 0, -1, 0, 0, 0, 0, 0}, "globals"},
        {{ATTN_SPARSE_LOCAL_2D, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 0, 0}, "width"},
        {{ATTN_SPARSE_LOCAL_2D, 0, 0, 0, 0, 0, 0, 0, 0, 8, 2, 2, -1, 0}, "margin_h"},
        {{ATTN_SPARSE_LOCAL_2D, 0, 0, 0, 0, 0, 0, 0, 0, 8, 2, (int64_t)1 << 40, 0, 0}, "block_w"},
        {{ATTN_SPARSE_SLIDING, 0, 0, 0, 0, 0, INT64_MAX, 0, 0, 0, 0, 0, 0, 0}, "window"},
    };
    float buf[2 * 5 * 4] = {0};
    const int64_t sh[4] = {1, 2, 5, 4};
    for (size_t i = 0; ctx && i < sizeof bad / sizeof bad[0]; i++)
        for (int flash = 0; flash < 2; flash++) {
            attn_ctx_reset(ctx);
            attn_tensor *q = attn_tensor_from(ctx, ATTN_F32, 4, sh, buf);
            attn_sdpa_opts o = {0};
            o.sparse = &bad[i].p;
            attn_tensor *y = flash ? attn_flash_sdpa(ctx, q, q, q, &o, NULL)
                                   : attn_sdpa(ctx, q, q, q, &o, NULL);
            char what[80];
            snprintf(what, sizeof what, "%s, bad pattern %zu", flash ? "flash_sdpa" : "sdpa", i);
            /* the context's own message names the op and the shape too */
            char msg[256];
            snprintf(msg, sizeof msg, "%s", attn_ctx_error(ctx));
            const char *op = flash ? "flash_sdpa: sparse pattern" : "sdpa: sparse pattern";
            test_expect_fail(ctx, y == NULL, ATTN_ERR_INVALID_ARG, bad[i].needle, what);
            CHECK(strncmp(msg, op, strlen(op)) == 0 && strstr(msg, "[1,2,5,4]") != NULL,
                  "%s: the context's message '%s' does not start with '%s' and name q's shape",
                  what, msg, op);
        }
    if (ctx) {
        attn_sparse_layout L;
        attn_sparse_pattern p = {0};
        p.kind = ATTN_SPARSE_SLIDING, p.window = 4;
        test_expect_fail(ctx, attn_sparse_compile(ctx, &p, 0, 0, 1, 0, 5, 64, 64, &L) != ATTN_OK,
                         ATTN_ERR_INVALID_ARG, "T 0", "compile with T 0");
        test_expect_fail(ctx, attn_sparse_compile(ctx, NULL, 0, 0, 1, 4, 5, 64, 64, &L) != ATTN_OK,
                         ATTN_ERR_INVALID_ARG, "NULL", "compile without a pattern");
        attn_ctx_free(ctx);
    }
    TEST_END();
}

void suite_sparse(void) {
    test_definitions();
    test_compiler();
    test_errors();
    test_empty_rows();
    test_fused_vs_reference();
    test_threads();
    test_finite_differences();
    test_fixtures();
    test_mha();
}
