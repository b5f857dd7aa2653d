/* rnn_cell.c: the fused recurrent cells GRU_CELL and LSTM_CELL (one time
 * step), as torch.nn.GRUCell / torch.nn.LSTMCell with the input projection
 * taken out: the caller computes gx = x W_ih^T + b_ih for ALL time steps with
 * one large product (attn_linear) and feeds one row block per step, so only
 * the recurrent product h W_hh^T stays inside the recurrence.
 *
 * Shape contracts (G = 3 for GRU, 4 for LSTM; B rows, H hidden units):
 *   GRU_CELL   in[0] gx [B, 3H] (gates r, z, n: torch's order), in[1] h [B, H],
 *              in[2] w_hh [3H, H], then b_hh [3H] if iarg[0], then mask I32 [B]
 *              if iarg[1]  ->  out h' [B, H].
 *              saved[0] = [B, 4H]: r | z | n | hn, hn = W_hn h + b_hn.
 *   LSTM_CELL  in[0] gx [B, 4H] (gates i, f, g, o), in[1] h [B, H],
 *              in[2] c [B, H], in[3] w_hh [4H, H], then b_hh [4H] if iarg[0],
 *              then mask I32 [B] if iarg[1]  ->  out [2, B, H] = (h', c').
 *              saved[0] = [B, 5H]: i | f | g | o | tanh(c').
 * With attn_gru_cell_at / attn_lstm_cell_at, in[0] is instead a whole
 * time-major projection gx [T, B, G*H] and iarg[2] the element offset t*B*G*H
 * of the step's block: the kernels read it (and backward adds d gx) in place,
 * so a layer needs no view node, no per-step gradient buffer and no scatter.
 * With attn__gru_cell_lookup / attn__lstm_cell_lookup (internal.h), in[0] is
 * a per-token table P [V, G*H] and the last input ids I32 [T, B] (iarg[3] =
 * 1, iarg[2] = t*B): row b of the step's gates is P[ids[t, b]], read in
 * place; backward writes the rows' d gx to a [B, G*H] scratch and then adds
 * them into dP in row order on one thread (rows sharing an id meet in the
 * same dP row; the order is fixed, so the sums are the same for any thread
 * count). This is how a layer fed by an embedding skips the [T, B, G*H]
 * gather, its zero-filled gradient and the scatter back (rnn.c). A lookup
 * cell may take a dense addend x2 [B, G*H] just before ids (iarg[4] = 1):
 * the gates' input is then P[ids[t, b]] + x2[b] (summed first, as an add
 * node would), and x2 gets the rows' d gx (the seq2seq decoder's embedding
 * part plus its context part, without the add node).
 * The mask (optional) freezes rows: where mask[b] == 0 the row's state passes
 * through unchanged (h' = h, c' = c) and it sends no gradient to gx, w_hh or
 * b_hh. This is how attn_rnn_forward runs padded steps of variable-length
 * batches without extra ops per step.
 *
 * Fast path: the recurrent product through attn__sgemm, written straight into
 * the saved buffer (row stride (G + 1) H), then a few vectorised passes per
 * row for the gates (attn__exp_core, src/core/vmath.h). The reference kernels compute
 * every dot product and activation in double.
 * Derivations: docs/ops.md, "Recurrent cells".
 */
#include <math.h>
#include <string.h>

#include "../core/internal.h"
#include "../core/vmath.h"
#include "rnn_cell_internal.h"
#include "view_internal.h"
#include "attn/rnn_cell.h"

#define CELL_COL_BLOCK 64 /* columns per task in the bias gradient reduction */

/* The row kernels are compiled three times on x86-64 with GCC, for the
 * baseline (SSE2), for AVX2 and for AVX-512F, chosen at load time (ifunc);
 * the helpers they call are inlined into each clone. Element-wise arithmetic
 * only, no FMA contraction (ISO C mode): all clones give the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ATTN_NO_CLONES)
#define CELL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define CELL_INLINE static inline __attribute__((always_inline))
#else
#define CELL_CLONES
#define CELL_INLINE static inline
#endif

/* ---- activations (fast path): attn__exp_core from src/core/vmath.h, the
 * argument clamp in its own loop (see there why) ------------------------------- */

/* a[j] <- sigmoid(a[j]) = 1 / (1 + exp(-a[j])); absolute error < 1e-7. */
CELL_INLINE void cell_sigmoid(float *restrict a, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        float v = -a[j];
        v = v < -87.0f ? -87.0f : v;
        a[j] = v > 88.0f ? 88.0f : v;
    }
    for (int64_t j = 0; j < n; j++) a[j] = 1.0f / (1.0f + attn__exp_core(a[j]));
}

/* a[j] <- tanh(a[j]) = 2 sigmoid(2 a[j]) - 1; absolute error < 2e-7 (the
 * relative error grows as |a| -> 0, where the op's atol covers it). */
CELL_INLINE void cell_tanh(float *restrict a, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        float v = -2.0f * a[j];
        v = v < -87.0f ? -87.0f : v;
        a[j] = v > 88.0f ? 88.0f : v;
    }
    for (int64_t j = 0; j < n; j++) a[j] = 2.0f / (1.0f + attn__exp_core(a[j])) - 1.0f;
}

/* ---- geometry ---------------------------------------------------------------- */

typedef struct cell_geom {
    int lstm; /* 0: GRU (G = 3), 1: LSTM (G = 4) */
    int64_t B, H, G;
    const float *gx, *h, *c; /* c: LSTM only */
    const float *w, *b;      /* w_hh [G*H, H]; b_hh [G*H] or NULL */
    const int32_t *mask;     /* [B] or NULL */
    const int32_t *ids;      /* lookup mode: the step's [B] ids into gx = P [V, G*H]; or NULL */
    const float *extra;      /* lookup mode: the dense addend [B, G*H], or NULL */
    const float *gsum;       /* with extra: P[ids] + extra [B, G*H] (forward scratch) */
    int iw, ib;              /* input indices of w_hh and b_hh (ib -1: none) */
    int64_t ls;              /* row length of the saved buffer: (G + 1) H */
} cell_geom;

static cell_geom cell_geometry(const attn_node *node) {
    cell_geom g;
    g.lstm = node->op == ATTN_OP_LSTM_CELL;
    g.G = g.lstm ? 4 : 3;
    const attn_tensor *h = node->in[1];
    g.B = h->shape[0];
    g.H = h->shape[1];
    g.ids = node->iarg[3] ? attn_i32(node->in[node->n_in - 1]) + node->iarg[2] : NULL;
    g.extra = node->iarg[4] ? attn_f32(node->in[node->n_in - 2]) : NULL;
    g.gsum = NULL;
    g.gx = attn_f32(node->in[0]) + (g.ids ? 0 : node->iarg[2]);
    g.h = attn_f32(h);
    g.c = g.lstm ? attn_f32(node->in[2]) : NULL;
    g.iw = g.lstm ? 3 : 2;
    g.w = attn_f32(node->in[g.iw]);
    int k = g.iw + 1;
    g.ib = node->iarg[0] ? k++ : -1;
    g.b = g.ib >= 0 ? attn_f32(node->in[g.ib]) : NULL;
    g.mask = node->iarg[1] ? attn_i32(node->in[k]) : NULL;
    g.ls = (g.G + 1) * g.H;
    return g;
}

/* Row r's gate inputs [G*H]: row r of the block, or (lookup) row ids[r] of P,
 * or (lookup with an addend) row r of P[ids] + x2. */
static inline const float *cell_gx_row(const cell_geom *g, int64_t r) {
    if (g->gsum) return g->gsum + r * g->G * g->H;
    return g->gx + (g->ids ? (int64_t)g->ids[r] : r) * g->G * g->H;
}

/* Lookup with an addend: g->gsum = P[ids] + x2 in an arena scratch. 0 or an
 * error status. */
static attn_status cell_sum_inputs(attn_ctx *ctx, cell_geom *g) {
    if (!g->extra) return ATTN_OK;
    const int64_t GH = g->G * g->H;
    float *sum = attn__alloc(ctx, sizeof(float) * (size_t)(g->B * GH),
                             g->lstm ? "lstm_cell (inputs)" : "gru_cell (inputs)");
    if (!sum) return ctx->status;
    for (int64_t r = 0; r < g->B; r++) {
        const float *p = g->gx + (int64_t)g->ids[r] * GH, *x = g->extra + r * GH;
        float *o = sum + r * GH;
        for (int64_t j = 0; j < GH; j++) o[j] = p[j] + x[j];
    }
    g->gsum = sum;
    return ATTN_OK;
}

/* ---- builder ------------------------------------------------------------------- */

/* Checks that t is f32 of shape [d0, d1] (d1 < 0: 1-D [d0]); names `what`. */
static int cell_check(attn_ctx *ctx, const char *op, const char *what, const attn_tensor *t,
                      attn_dtype dt, int64_t d0, int64_t d1, const char *expect) {
    if (attn__check_dtype(ctx, op, what, t, dt)) return -1;
    int ok = d1 < 0 ? (t->ndim == 1 && t->shape[0] == d0)
                    : (t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1);
    if (!ok) {
        if (d1 < 0)
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %s %s, expected %s = [%lld]", op, what,
                       attn__shp(t), expect, (long long)d0);
        else
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %s %s, expected %s = [%lld,%lld]", op, what,
                       attn__shp(t), expect, (long long)d0, (long long)d1);
        return -1;
    }
    return 0;
}

/* Validates the inputs of either cell (c NULL for GRU), makes them
 * contiguous and runs the node. Returns the node's output. step < 0: gx is
 * [B, G*H]; step >= 0: gx is [T, B, G*H] and the cell reads block `step`. */
static attn_tensor *cell_build(attn_ctx *ctx, attn_op op, attn_tensor *gx, int64_t step,
                               attn_tensor *h, attn_tensor *c, attn_tensor *w_hh, attn_tensor *b_hh,
                               attn_tensor *mask, attn_tensor *ids, attn_tensor *extra) {
    const int lstm = op == ATTN_OP_LSTM_CELL;
    const char *name = attn__ops[op].name;
    const int64_t G = lstm ? 4 : 3;
    if (lstm ? attn__any_null(ctx, name, 4, gx, h, c, w_hh)
             : attn__any_null(ctx, name, 3, gx, h, w_hh))
        return NULL;
    if (attn__check_dtype(ctx, name, "h", h, ATTN_F32)) return NULL;
    if (h->ndim != 2 || h->shape[0] < 1 || h->shape[1] < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: h %s, expected [B, H] with B, H >= 1", name,
                   attn__shp(h));
        return NULL;
    }
    const int64_t B = h->shape[0], H = h->shape[1];
    if (ids) { /* lookup: gx is the table P [V, G*H], ids [T, B] */
        if (attn__check_dtype(ctx, name, "table", gx, ATTN_F32) ||
            attn__check_dtype(ctx, name, "ids", ids, ATTN_I32))
            return NULL;
        if (gx->ndim != 2 || gx->shape[1] != G * H || ids->ndim != 2 || ids->shape[1] != B) {
            attn__fail(ctx, ATTN_ERR_SHAPE,
                       "%s: table %s and ids %s, expected [V,%lld] and [T,%lld] (h is %s)", name,
                       attn__shp(gx), attn__shp(ids), (long long)(G * H), (long long)B,
                       attn__shp(h));
            return NULL;
        }
        if (step >= ids->shape[0]) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: step %lld outside [0, %lld) of ids %s", name,
                       (long long)step, (long long)ids->shape[0], attn__shp(ids));
            return NULL;
        }
        if (extra && cell_check(ctx, name, "x2", extra, ATTN_F32, B, G * H,
                                lstm ? "[B, 4H]" : "[B, 3H]"))
            return NULL;
        if (!(ids = attn__contig(ctx, ids))) return NULL;
        const int32_t *id = attn_i32(ids) + step * B;
        for (int64_t b = 0; b < B; b++)
            if (id[b] < 0 || id[b] >= gx->shape[0]) {
                attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                           "%s: ids[%lld,%lld] = %d is outside [0, %lld) (the rows of table %s)",
                           name, (long long)step, (long long)b, (int)id[b],
                           (long long)gx->shape[0], attn__shp(gx));
                return NULL;
            }
    } else if (step >= 0) {
        if (attn__check_dtype(ctx, name, "gx", gx, ATTN_F32)) return NULL;
        if (gx->ndim != 3 || gx->shape[1] != B || gx->shape[2] != G * H) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: gx %s, expected %s = [T,%lld,%lld] (h is %s)",
                       name, attn__shp(gx), lstm ? "[T, B, 4H]" : "[T, B, 3H]", (long long)B,
                       (long long)(G * H), attn__shp(h));
            return NULL;
        }
        if (step >= gx->shape[0]) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: step %lld outside [0, %lld) of gx %s", name,
                       (long long)step, (long long)gx->shape[0], attn__shp(gx));
            return NULL;
        }
    }
    if ((step < 0 &&
         cell_check(ctx, name, "gx", gx, ATTN_F32, B, G * H, lstm ? "[B, 4H]" : "[B, 3H]")) ||
        (lstm && cell_check(ctx, name, "c", c, ATTN_F32, B, H, "[B, H]")) ||
        cell_check(ctx, name, "w_hh", w_hh, ATTN_F32, G * H, H, lstm ? "[4H, H]" : "[3H, H]") ||
        (b_hh &&
         cell_check(ctx, name, "b_hh", b_hh, ATTN_F32, G * H, -1, lstm ? "[4H]" : "[3H]")) ||
        (mask && cell_check(ctx, name, "mask", mask, ATTN_I32, B, -1, "[B]")))
        return NULL;
    attn_tensor *in[8];
    int n = 0;
    if (!(in[n++] = attn__contig(ctx, gx)) || !(in[n++] = attn__contig(ctx, h))) return NULL;
    if (lstm && !(in[n++] = attn__contig(ctx, c))) return NULL;
    if (!(in[n++] = attn__contig(ctx, w_hh))) return NULL;
    if (b_hh && !(in[n++] = attn__contig(ctx, b_hh))) return NULL;
    if (mask && !(in[n++] = attn__contig(ctx, mask))) return NULL;
    if (extra && !(in[n++] = attn__contig(ctx, extra))) return NULL;
    if (ids) in[n++] = ids; /* made contiguous above */
    int64_t osh[3] = {2, B, H};
    attn_tensor *out = lstm ? attn__tensor(ctx, name, ATTN_F32, 3, osh)
                            : attn__tensor(ctx, name, ATTN_F32, 2, osh + 1);
    int64_t ssh[2] = {B, (G + 1) * H};
    attn_tensor *saved = attn__tensor(ctx, name, ATTN_F32, 2, ssh);
    if (!out || !saved) return NULL;
    attn_node *node = attn__node(ctx, op, n, in, out);
    if (!node) return NULL;
    node->iarg[0] = b_hh != NULL;
    node->iarg[1] = mask != NULL;
    node->iarg[2] = ids ? step * B : step >= 0 ? step * B * G * H : 0;
    node->iarg[3] = ids != NULL;
    node->iarg[4] = ids && extra;
    node->saved[0] = saved;
    return attn__run(ctx, node);
}

/* A VIEW node of rows [off, off + B*H) of the contiguous cell output as a
 * [B, H] tensor (what view.c's views do; the gradient scatters back). */
static attn_tensor *cell_part(attn_ctx *ctx, attn_tensor *out, int64_t part) {
    const int64_t B = out->shape[1], H = out->shape[2];
    const int64_t sh[2] = {B, H}, st[2] = {H, 1};
    attn_tensor *v =
        attn__tensor_view(ctx, "lstm_cell", ATTN_F32, 2, sh, st, attn_f32(out) + part * B * H);
    if (!v) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_VIEW, 1, &out, v);
    if (!node) return NULL;
    node->iarg[0] = part * B * H;
    return attn__run(ctx, node);
}

attn_tensor *attn_gru_cell(attn_ctx *ctx, attn_tensor *gx, attn_tensor *h, attn_tensor *w_hh,
                           attn_tensor *b_hh, attn_tensor *mask) {
    return cell_build(ctx, ATTN_OP_GRU_CELL, gx, -1, h, NULL, w_hh, b_hh, mask, NULL, NULL);
}

/* Step < 0 is reported here: cell_build treats it as "no step". */
static int cell_step_ok(attn_ctx *ctx, const char *name, int64_t step) {
    if (step >= 0) return 1;
    if (attn_ctx_status(ctx) == ATTN_OK)
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: step %lld is negative", name, (long long)step);
    return 0;
}

attn_tensor *attn_gru_cell_at(attn_ctx *ctx, attn_tensor *gx_seq, int64_t t, attn_tensor *h,
                              attn_tensor *w_hh, attn_tensor *b_hh, attn_tensor *mask) {
    if (!cell_step_ok(ctx, "gru_cell", t)) return NULL;
    return cell_build(ctx, ATTN_OP_GRU_CELL, gx_seq, t, h, NULL, w_hh, b_hh, mask, NULL, NULL);
}

static attn_tensor *lstm_cell_common(attn_ctx *ctx, attn_tensor *gx, int64_t step, attn_tensor *h,
                                     attn_tensor *c, attn_tensor *w_hh, attn_tensor *b_hh,
                                     attn_tensor *mask, attn_tensor *ids, attn_tensor *extra,
                                     attn_tensor **c_out) {
    if (c_out) *c_out = NULL;
    attn_tensor *out =
        cell_build(ctx, ATTN_OP_LSTM_CELL, gx, step, h, c, w_hh, b_hh, mask, ids, extra);
    if (!out) return NULL;
    attn_tensor *hn = cell_part(ctx, out, 0);
    if (!hn) return NULL;
    if (c_out) {
        *c_out = cell_part(ctx, out, 1);
        if (!*c_out) return NULL;
    }
    return hn;
}

attn_tensor *attn_lstm_cell(attn_ctx *ctx, attn_tensor *gx, attn_tensor *h, attn_tensor *c,
                            attn_tensor *w_hh, attn_tensor *b_hh, attn_tensor *mask,
                            attn_tensor **c_out) {
    return lstm_cell_common(ctx, gx, -1, h, c, w_hh, b_hh, mask, NULL, NULL, c_out);
}

attn_tensor *attn_lstm_cell_at(attn_ctx *ctx, attn_tensor *gx_seq, int64_t t, attn_tensor *h,
                               attn_tensor *c, attn_tensor *w_hh, attn_tensor *b_hh,
                               attn_tensor *mask, attn_tensor **c_out) {
    if (c_out) *c_out = NULL;
    if (!cell_step_ok(ctx, "lstm_cell", t)) return NULL;
    return lstm_cell_common(ctx, gx_seq, t, h, c, w_hh, b_hh, mask, NULL, NULL, c_out);
}

attn_tensor *attn__gru_cell_lookup(attn_ctx *ctx, attn_tensor *table, attn_tensor *ids, int64_t t,
                                   attn_tensor *x2, attn_tensor *h, attn_tensor *w_hh,
                                   attn_tensor *b_hh, attn_tensor *mask) {
    if (attn__any_null(ctx, "gru_cell", 1, ids) || !cell_step_ok(ctx, "gru_cell", t)) return NULL;
    return cell_build(ctx, ATTN_OP_GRU_CELL, table, t, h, NULL, w_hh, b_hh, mask, ids, x2);
}

attn_tensor *attn__lstm_cell_lookup(attn_ctx *ctx, attn_tensor *table, attn_tensor *ids, int64_t t,
                                    attn_tensor *x2, attn_tensor *h, attn_tensor *c,
                                    attn_tensor *w_hh, attn_tensor *b_hh, attn_tensor *mask,
                                    attn_tensor **c_out) {
    if (c_out) *c_out = NULL;
    if (attn__any_null(ctx, "lstm_cell", 1, ids) || !cell_step_ok(ctx, "lstm_cell", t))
        return NULL;
    return lstm_cell_common(ctx, table, t, h, c, w_hh, b_hh, mask, ids, x2, c_out);
}

/* ---- forward (fast) ---------------------------------------------------------------- */

/* s[:, 0:G*H] = h W_hh^T (row stride ls); the bias is added per row. */
static void cell_recurrent_product(const attn_ctx *ctx, const cell_geom *g, float *s) {
    const int64_t B = g->B, H = g->H, GH = g->G * g->H;
    const int nt = attn__threads_for(ctx, 2.0 * (double)B * (double)GH * (double)H);
    attn__sgemm(nt, 0, 1, B, GH, H, 1.0f, g->h, H, g->w, H, 0.0f, s, g->ls);
}

/* s[j] += gx[j] + b[j] (b NULL: no bias) for j < n. */
CELL_INLINE void cell_add_inputs(float *restrict s, const float *restrict gx,
                                 const float *restrict b, int64_t n) {
    if (b)
        for (int64_t j = 0; j < n; j++) s[j] += gx[j] + b[j];
    else
        for (int64_t j = 0; j < n; j++) s[j] += gx[j];
}

/* One GRU row. s holds W_hh h in its first 3H entries on entry and
 * r | z | n | hn on exit; b is b_hh or NULL. */
CELL_CLONES static void gru_row(const float *restrict gx, const float *restrict b,
                                const float *restrict h, float *restrict s, float *restrict y,
                                int64_t H, int valid) {
    float *sr = s, *sn = s + 2 * H, *shn = s + 3 * H;
    const float *xn = gx + 2 * H;
    cell_add_inputs(s, gx, b, 2 * H);
    cell_sigmoid(s, 2 * H); /* r = sigma(gx_r + W_hr h + b_hr), z likewise */
    if (b)
        for (int64_t j = 0; j < H; j++) shn[j] = sn[j] + b[2 * H + j]; /* hn = W_hn h + b_hn */
    else
        memcpy(shn, sn, sizeof(float) * (size_t)H);
    for (int64_t j = 0; j < H; j++) sn[j] = xn[j] + sr[j] * shn[j]; /* n = tanh(gx_n + r hn) */
    cell_tanh(sn, H);
    const float *sz = s + H;
    if (valid)
        for (int64_t j = 0; j < H; j++) y[j] = sn[j] + sz[j] * (h[j] - sn[j]); /* (1-z) n + z h */
    else
        memcpy(y, h, sizeof(float) * (size_t)H);
}

/* One LSTM row: s holds W_hh h in its first 4H entries on entry and
 * i | f | g | o | tanh(c') on exit (tanh(c) for a frozen row); b is b_hh or
 * NULL. */
CELL_CLONES static void lstm_row(const float *restrict gx, const float *restrict b,
                                 const float *restrict h, const float *restrict c,
                                 float *restrict s, float *restrict hy, float *restrict cy,
                                 int64_t H, int valid) {
    float *si = s, *sf = s + H, *sg = s + 2 * H, *so = s + 3 * H, *st = s + 4 * H;
    cell_add_inputs(s, gx, b, 4 * H);
    cell_sigmoid(si, 2 * H); /* i, f */
    cell_tanh(sg, H);        /* g */
    cell_sigmoid(so, H);     /* o */
    if (valid) {
        for (int64_t j = 0; j < H; j++) {
            const float cn = sf[j] * c[j] + si[j] * sg[j]; /* c' = f c + i g */
            cy[j] = cn;
            st[j] = cn;
        }
        cell_tanh(st, H);
        for (int64_t j = 0; j < H; j++) hy[j] = so[j] * st[j]; /* h' = o tanh(c') */
    } else {
        memcpy(st, c, sizeof(float) * (size_t)H);
        cell_tanh(st, H);
        memcpy(hy, h, sizeof(float) * (size_t)H);
        memcpy(cy, c, sizeof(float) * (size_t)H);
    }
}

static attn_status cell_forward(attn_ctx *ctx, attn_node *node) {
    cell_geom g = cell_geometry(node);
    if (cell_sum_inputs(ctx, &g)) return ctx->status;
    float *s = attn_f32(node->saved[0]), *y = attn_f32(node->out);
    cell_recurrent_product(ctx, &g, s);
    const int64_t B = g.B, H = g.H;
    const int nt = attn__threads_for(ctx, 40.0 * (double)B * (double)g.G * (double)H);
    (void)nt;
    if (g.lstm) {
        ATTN__OMP_FOR(nt)
        for (int64_t r = 0; r < B; r++)
            lstm_row(cell_gx_row(&g, r), g.b, g.h + r * H, g.c + r * H, s + r * g.ls, y + r * H,
                     y + (B + r) * H, H, !g.mask || g.mask[r]);
    } else {
        ATTN__OMP_FOR(nt)
        for (int64_t r = 0; r < B; r++)
            gru_row(cell_gx_row(&g, r), g.b, g.h + r * H, s + r * g.ls, y + r * H, H,
                    !g.mask || g.mask[r]);
    }
    return ATTN_OK;
}

attn_status attn__gru_cell_forward(attn_ctx *ctx, attn_node *node) {
    return cell_forward(ctx, node);
}
attn_status attn__lstm_cell_forward(attn_ctx *ctx, attn_node *node) {
    return cell_forward(ctx, node);
}

/* ---- reference ------------------------------------------------------------------------ */

static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* b_hh[k] + sum_j W_hh[k, j] h[j], in double. */
static double ref_pre(const cell_geom *g, int64_t row, int64_t k) {
    double acc = g->b ? (double)g->b[k] : 0.0;
    const float *w = g->w + k * g->H, *h = g->h + row * g->H;
    for (int64_t j = 0; j < g->H; j++) acc += (double)w[j] * (double)h[j];
    return acc;
}

static attn_status cell_ref(attn_ctx *ctx, attn_node *node) {
    cell_geom g = cell_geometry(node);
    if (cell_sum_inputs(ctx, &g)) return ctx->status;
    const int64_t B = g.B, H = g.H;
    float *s = attn_f32(node->saved[0]), *y = attn_f32(node->out);
    for (int64_t r = 0; r < B; r++) {
        const float *gx = cell_gx_row(&g, r), *h = g.h + r * H;
        float *sr = s + r * g.ls;
        const int valid = !g.mask || g.mask[r];
        for (int64_t j = 0; j < H; j++) {
            if (!g.lstm) {
                const double rg = ref_sigmoid((double)gx[j] + ref_pre(&g, r, j));
                const double zg = ref_sigmoid((double)gx[H + j] + ref_pre(&g, r, H + j));
                const double hn = ref_pre(&g, r, 2 * H + j);
                const double ng = tanh((double)gx[2 * H + j] + rg * hn);
                sr[j] = (float)rg;
                sr[H + j] = (float)zg;
                sr[2 * H + j] = (float)ng;
                sr[3 * H + j] = (float)hn;
                y[r * H + j] = valid ? (float)((1.0 - zg) * ng + zg * (double)h[j]) : h[j];
            } else {
                const double ig = ref_sigmoid((double)gx[j] + ref_pre(&g, r, j));
                const double fg = ref_sigmoid((double)gx[H + j] + ref_pre(&g, r, H + j));
                const double gg = tanh((double)gx[2 * H + j] + ref_pre(&g, r, 2 * H + j));
                const double og = ref_sigmoid((double)gx[3 * H + j] + ref_pre(&g, r, 3 * H + j));
                const double c = g.c[r * H + j];
                const double cn = valid ? fg * c + ig * gg : c;
                sr[j] = (float)ig;
                sr[H + j] = (float)fg;
                sr[2 * H + j] = (float)gg;
                sr[3 * H + j] = (float)og;
                sr[4 * H + j] = (float)tanh(cn);
                y[r * H + j] = valid ? (float)(og * tanh(cn)) : h[j];
                y[(B + r) * H + j] = (float)cn;
            }
        }
    }
    return ATTN_OK;
}

attn_status attn__gru_cell_ref(attn_ctx *ctx, attn_node *node) { return cell_ref(ctx, node); }
attn_status attn__lstm_cell_ref(attn_ctx *ctx, attn_node *node) { return cell_ref(ctx, node); }

/* ---- backward --------------------------------------------------------------------------- */

/* GRU row: writes the gradient of the pre-activations that meet W_hh,
 * dp = [da_r, da_z, dhn] (3H), adds the direct terms to dh (if wanted) and
 * the gate gradients to dgx (if wanted). */
CELL_CLONES static void gru_row_backward(const float *restrict s, const float *restrict h,
                                         const float *restrict gy, float *restrict dp,
                                         float *restrict dh, float *restrict dgx, int64_t H) {
    const float *sr = s, *sz = s + H, *sn = s + 2 * H, *shn = s + 3 * H;
    float *pr = dp, *pz = dp + H, *pn = dp + 2 * H;
    for (int64_t j = 0; j < H; j++) {
        const float r = sr[j], z = sz[j], n = sn[j], g = gy[j];
        /* h' = (1 - z) n + z h */
        const float dn = g * (1.0f - z), dz = g * (h[j] - n);
        /* n = tanh(a_n), a_n = gx_n + r hn */
        const float dan = dn * (1.0f - n * n);
        /* r = sigma(a_r), z = sigma(a_z) */
        pr[j] = dan * shn[j] * r * (1.0f - r);
        pz[j] = dz * z * (1.0f - z);
        pn[j] = dan * r; /* d hn */
    }
    if (dh)
        for (int64_t j = 0; j < H; j++) dh[j] += gy[j] * sz[j];
    if (dgx) {
        for (int64_t j = 0; j < 2 * H; j++) dgx[j] += dp[j]; /* d gx_r, d gx_z */
        for (int64_t j = 0; j < H; j++) {
            const float n = sn[j];
            dgx[2 * H + j] += gy[j] * (1.0f - sz[j]) * (1.0f - n * n); /* d gx_n = da_n */
        }
    }
}

/* LSTM row: dp = d(pre-activations) [4H]; adds to dh, dc and dgx. */
CELL_CLONES static void lstm_row_backward(const float *restrict s, const float *restrict c,
                                          const float *restrict gh, const float *restrict gc,
                                          float *restrict dp, float *restrict dc,
                                          float *restrict dgx, int64_t H) {
    const float *si = s, *sf = s + H, *sg = s + 2 * H, *so = s + 3 * H, *st = s + 4 * H;
    for (int64_t j = 0; j < H; j++) {
        const float i = si[j], f = sf[j], g = sg[j], o = so[j], tc = st[j];
        /* h' = o tanh(c'), c' = f c + i g */
        const float dct = gc[j] + gh[j] * o * (1.0f - tc * tc);
        dp[j] = dct * g * i * (1.0f - i);            /* i = sigma(a_i) */
        dp[H + j] = dct * c[j] * f * (1.0f - f);     /* f = sigma(a_f) */
        dp[2 * H + j] = dct * i * (1.0f - g * g);    /* g = tanh(a_g) */
        dp[3 * H + j] = gh[j] * tc * o * (1.0f - o); /* o = sigma(a_o) */
    }
    if (dc)
        for (int64_t j = 0; j < H; j++) {
            const float o = so[j], tc = st[j];
            dc[j] += (gc[j] + gh[j] * o * (1.0f - tc * tc)) * sf[j];
        }
    if (dgx)
        for (int64_t j = 0; j < 4 * H; j++) dgx[j] += dp[j];
}

/* Lookup mode: adds every unfrozen row's d gx into its table row of dP, rows
 * in order (one thread: rows that share an id add up in a fixed order). The
 * values are the row kernels' d gx: dp for LSTM; for GRU dp's r and z blocks
 * and da_n = gy (1 - z) (1 - n^2) (the same expression, the same bits). */
CELL_CLONES static void cell_scatter_rows(const cell_geom *g, const float *restrict dp,
                                          const float *restrict s, const float *restrict gy,
                                          float *restrict dtab, float *restrict dx2) {
    const int64_t H = g->H, GH = g->G * H;
    for (int64_t r = 0; r < g->B; r++) {
        if (g->mask && !g->mask[r]) continue;
        for (int k = 0; k < 2; k++) {
            float *d = k ? (dx2 ? dx2 + r * GH : NULL)
                         : (dtab ? dtab + (int64_t)g->ids[r] * GH : NULL);
            if (!d) continue;
            const float *p = dp + r * GH;
            if (g->lstm) {
                for (int64_t j = 0; j < GH; j++) d[j] += p[j];
                continue;
            }
            for (int64_t j = 0; j < 2 * H; j++) d[j] += p[j];
            const float *sz = s + r * g->ls + H, *sn = s + r * g->ls + 2 * H, *gr = gy + r * H;
            for (int64_t j = 0; j < H; j++) {
                const float n = sn[j];
                d[2 * H + j] += gr[j] * (1.0f - sz[j]) * (1.0f - n * n);
            }
        }
    }
}

static attn_status cell_backward(attn_ctx *ctx, attn_node *node) {
    const cell_geom g = cell_geometry(node);
    const int64_t B = g.B, H = g.H, GH = g.G * H;
    const int need_gx = attn__needs_grad(node, 0), need_h = attn__needs_grad(node, 1);
    const int need_c = g.lstm && attn__needs_grad(node, 2);
    const int need_w = attn__needs_grad(node, g.iw);
    const int need_b = g.ib >= 0 && attn__needs_grad(node, g.ib);
    const float *s = attn_f32(node->saved[0]), *gy = node->out->grad;
    /* dgx: the block's gradient (lookup mode: NULL here, scattered below) */
    float *dgx = need_gx && !g.ids ? node->in[0]->grad + node->iarg[2] : NULL;
    float *dh = need_h ? node->in[1]->grad : NULL;
    float *dc = need_c ? node->in[2]->grad : NULL;
    /* dp: the gradient of the G*H pre-activations that meet W_hh (rows of
     * frozen steps stay 0, so they add nothing to dh, dW, db below) */
    size_t bytes;
    if (attn__mul_size((size_t)B * (size_t)GH, sizeof(float), &bytes))
        return attn__fail(ctx, ATTN_ERR_OOM, "%s backward: scratch overflows",
                          attn__ops[node->op].name);
    float *dp = attn__alloc(
        ctx, bytes, g.lstm ? "lstm_cell backward (scratch)" : "gru_cell backward (scratch)");
    if (!dp) return ctx->status;
    const int nt = attn__threads_for(ctx, 30.0 * (double)B * (double)GH);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t r = 0; r < B; r++) {
        float *dpr = dp + r * GH;
        const float *ghr = gy + r * H, *gcr = g.lstm ? gy + (B + r) * H : NULL;
        if (g.mask && !g.mask[r]) {
            /* frozen row: h' = h (and c' = c) */
            memset(dpr, 0, sizeof(float) * (size_t)GH);
            if (dh)
                for (int64_t j = 0; j < H; j++) dh[r * H + j] += ghr[j];
            if (dc)
                for (int64_t j = 0; j < H; j++) dc[r * H + j] += gcr[j];
            continue;
        }
        if (g.lstm)
            lstm_row_backward(s + r * g.ls, g.c + r * H, ghr, gcr, dpr, dc ? dc + r * H : NULL,
                              dgx ? dgx + r * GH : NULL, H);
        else
            gru_row_backward(s + r * g.ls, g.h + r * H, ghr, dpr, dh ? dh + r * H : NULL,
                             dgx ? dgx + r * GH : NULL, H);
    }
    const int need_x2 = g.extra && attn__needs_grad(node, node->n_in - 2);
    if (g.ids && (need_gx || need_x2))
        cell_scatter_rows(&g, dp, s, gy, need_gx ? node->in[0]->grad : NULL,
                          need_x2 ? node->in[node->n_in - 2]->grad : NULL);
    const int ng = attn__threads_for(ctx, 2.0 * (double)B * (double)GH * (double)H);
    /* p = b_hh + h W_hh^T  =>  dh += dp W_hh     [B,GH] x [GH,H] */
    if (dh) attn__sgemm(ng, 0, 0, B, H, GH, 1.0f, dp, GH, g.w, H, 1.0f, dh, H);
    /*                      =>  dW_hh += dp^T h   [GH,B] x [B,H] */
    if (need_w)
        attn__sgemm(ng, 1, 0, GH, H, B, 1.0f, dp, GH, g.h, H, 1.0f, node->in[g.iw]->grad, H);
    /*                      =>  db_hh += sum over rows of dp (each task owns a
     *                          block of columns and walks the rows in order:
     *                          the same sums for any thread count) */
    if (need_b) {
        float *db = node->in[g.ib]->grad;
        const int64_t nblk = (GH + CELL_COL_BLOCK - 1) / CELL_COL_BLOCK;
        const int nb = attn__threads_for(ctx, (double)B * (double)GH);
        (void)nb;
        ATTN__OMP_FOR(nb)
        for (int64_t blk = 0; blk < nblk; blk++) {
            const int64_t j0 = blk * CELL_COL_BLOCK;
            const int64_t w = GH - j0 < CELL_COL_BLOCK ? GH - j0 : CELL_COL_BLOCK;
            double acc[CELL_COL_BLOCK];
            for (int64_t k = 0; k < w; k++) acc[k] = 0.0;
            for (int64_t r = 0; r < B; r++)
                for (int64_t k = 0; k < w; k++) acc[k] += dp[r * GH + j0 + k];
            for (int64_t k = 0; k < w; k++) db[j0 + k] += (float)acc[k];
        }
    }
    return ATTN_OK;
}

attn_status attn__gru_cell_backward(attn_ctx *ctx, attn_node *node) {
    return cell_backward(ctx, node);
}
attn_status attn__lstm_cell_backward(attn_ctx *ctx, attn_node *node) {
    return cell_backward(ctx, node);
}
