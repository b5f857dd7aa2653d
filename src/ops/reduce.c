/* reduce.c: sum and mean over one axis, or over all axes.
 *
 * Shape contract (as torch.sum(x, dim, keepdim) / torch.sum(x)):
 *   x [d0, .., d_axis, .., dk] -> y with d_axis removed, or kept as 1 when
 *   keepdim; axis may be negative (counted from the end).
 *   axis = ATTN_ALL_AXES reduces everything: y is a 0-dim scalar, or, with
 *   keepdim, a tensor of x's rank with every dimension 1.
 *   A 0-dim x accepts axis 0 or -1 (as PyTorch does), which reduce
 *   everything, i.e. its one element.
 *   Sum over an empty axis gives 0; mean over an empty axis is an
 *   ATTN_ERR_SHAPE (PyTorch gives NaN; attn reports the mistake instead).
 *
 * Node attributes: iarg[0] = the normalised axis, or ATTN_ALL_AXES;
 * iarg[1] = keepdim (0 or 1).
 *
 * Geometry: x is read as [outer, n, inner] with n the reduced length
 * (all axes: [1, numel, 1]); y is [outer, inner].
 *
 * Summation order. Every sum is accumulated in double. The fast kernel fixes
 * the order from the shape alone:
 *   - inner == 1 (the reduced elements are contiguous): the row is cut into
 *     blocks whose size depends only on n; each block is summed with eight
 *     interleaved double accumulators combined pairwise, and the block sums
 *     are added in order. Rows are spread over threads; a single long row
 *     (e.g. all axes) has its blocks spread instead.
 *   - inner > 1: each output column is summed over k = 0..n-1 in order, in a
 *     block of at most RED_COLS double accumulators that runs along the
 *     contiguous inner dimension (vectorisable).
 * So the result is identical for every thread count. The reference sums each
 * output in plain index order in double. Backward broadcasts g back over the
 * reduced axis (divided by n for mean).
 * Derivations: docs/ops.md, "Reductions".
 */
#include "../core/internal.h"
#include "view_internal.h"
#include "attn/ops.h"

#define RED_LANES 8        /* interleaved accumulators of one contiguous block */
#define RED_BLOCK 32768    /* minimum block of a contiguous row */
#define RED_MAX_BLOCKS 1024 /* a row has at most this many blocks */
#define RED_COLS 256       /* columns per task when inner > 1 */

/* ---- geometry ------------------------------------------------------------ */

static void reduce_geom(const attn_node *node, int64_t *outer, int64_t *n, int64_t *inner) {
    const attn_tensor *x = node->in[0];
    const int64_t ax = node->iarg[0];
    if (ax == ATTN_ALL_AXES) {
        *outer = 1;
        *n = attn_tensor_numel(x);
        *inner = 1;
        return;
    }
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < ax; d++) *outer *= x->shape[d];
    for (int d = (int)ax + 1; d < x->ndim; d++) *inner *= x->shape[d];
    *n = x->shape[ax];
}

/* ---- builder ------------------------------------------------------------- */

static attn_tensor *reduce_build(attn_ctx *ctx, attn_op op, attn_tensor *x, int axis,
                                 int keepdim) {
    const char *name = attn__ops[op].name;
    if (attn__any_null(ctx, name, 1, x)) return NULL;
    if (attn__check_dtype(ctx, name, "x", x, ATTN_F32)) return NULL;
    int a;
    if (axis == ATTN_ALL_AXES || (x->ndim == 0 && (axis == 0 || axis == -1))) {
        a = ATTN_ALL_AXES;
    } else if (axis < -x->ndim || axis >= x->ndim) {
        if (x->ndim == 0)
            attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                       "%s: axis %d out of range for the scalar x %s (expected 0, -1 or "
                       "ATTN_ALL_AXES)",
                       name, axis, attn__shp(x));
        else
            attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                       "%s: axis %d out of range for x %s (expected %d to %d, or ATTN_ALL_AXES)",
                       name, axis, attn__shp(x), -x->ndim, x->ndim - 1);
        return NULL;
    } else {
        a = axis < 0 ? axis + x->ndim : axis;
    }
    int64_t n = a == ATTN_ALL_AXES ? attn_tensor_numel(x) : x->shape[a];
    if (op == ATTN_OP_MEAN && n == 0) {
        if (a == ATTN_ALL_AXES)
            attn__fail(ctx, ATTN_ERR_SHAPE,
                       "mean: x %s has no elements; expected at least one (the mean of nothing "
                       "is undefined)",
                       attn__shp(x));
        else
            attn__fail(ctx, ATTN_ERR_SHAPE,
                       "mean: axis %d of x %s is empty; expected at least one element to average",
                       a, attn__shp(x));
        return NULL;
    }
    int nd = 0;
    int64_t sh[ATTN_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) {
        if (a == ATTN_ALL_AXES || d == a) {
            if (keepdim) sh[nd++] = 1;
        } else {
            sh[nd++] = x->shape[d];
        }
    }
    x = attn__contig(ctx, x);
    if (!x) return NULL;
    attn_tensor *y = attn__tensor(ctx, name, ATTN_F32, nd, sh);
    if (!y) return NULL;
    attn_node *node = attn__node(ctx, op, 1, &x, y);
    if (!node) return NULL;
    node->iarg[0] = a;
    node->iarg[1] = keepdim != 0;
    return attn__run(ctx, node);
}

attn_tensor *attn_sum(attn_ctx *ctx, attn_tensor *x, int axis, int keepdim) {
    return reduce_build(ctx, ATTN_OP_SUM, x, axis, keepdim);
}
attn_tensor *attn_mean(attn_ctx *ctx, attn_tensor *x, int axis, int keepdim) {
    return reduce_build(ctx, ATTN_OP_MEAN, x, axis, keepdim);
}

/* ---- forward ------------------------------------------------------------- */

/* Sum of one contiguous block: RED_LANES interleaved double accumulators,
 * then the tail into lane 0.. in order, then a fixed pairwise combination. */
static double block_sum(const float *restrict p, int64_t len) {
    double s[RED_LANES] = {0};
    int64_t i = 0;
    for (; i + RED_LANES <= len; i += RED_LANES)
        for (int j = 0; j < RED_LANES; j++) s[j] += (double)p[i + j];
    for (int j = 0; i < len; i++, j++) s[j] += (double)p[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* Block size of a contiguous row of n elements: a multiple of RED_LANES, at
 * least RED_BLOCK, and such that there are at most RED_MAX_BLOCKS blocks.
 * It depends on n only, which fixes the summation order. */
static int64_t row_block(int64_t n) {
    int64_t bs = (n + RED_MAX_BLOCKS - 1) / RED_MAX_BLOCKS;
    if (bs < RED_BLOCK) bs = RED_BLOCK;
    return (bs + RED_LANES - 1) / RED_LANES * RED_LANES;
}

static double row_sum(const float *p, int64_t n) {
    const int64_t bs = row_block(n);
    double s = 0.0;
    for (int64_t i = 0; i < n; i += bs) s += block_sum(p + i, n - i < bs ? n - i : bs);
    return s;
}

static void reduce_forward(attn_ctx *ctx, attn_node *node, int mean) {
    int64_t outer, n, inner;
    reduce_geom(node, &outer, &n, &inner);
    const float *x = attn_f32(node->in[0]);
    float *y = attn_f32(node->out);
    const double dn = (double)n;
    int nt = attn__threads_for(ctx, (double)outer * (double)n * (double)inner);
    (void)nt;
    if (inner == 1 && outer == 1) {
        /* one long row: its blocks over threads, then added in order (the
         * same order as row_sum) */
        const int64_t bs = row_block(n), nblk = (n + bs - 1) / bs;
        double part[RED_MAX_BLOCKS];
        ATTN__OMP_FOR(nt)
        for (int64_t k = 0; k < nblk; k++) {
            const int64_t i = k * bs;
            part[k] = block_sum(x + i, n - i < bs ? n - i : bs);
        }
        double s = 0.0;
        for (int64_t k = 0; k < nblk; k++) s += part[k];
        y[0] = (float)(mean ? s / dn : s);
    } else if (inner == 1) {
        ATTN__OMP_FOR(nt)
        for (int64_t o = 0; o < outer; o++) {
            double s = row_sum(x + o * n, n);
            y[o] = (float)(mean ? s / dn : s);
        }
    } else {
        const int64_t ncb = (inner + RED_COLS - 1) / RED_COLS, ntask = outer * ncb;
        ATTN__OMP_FOR(nt)
        for (int64_t t = 0; t < ntask; t++) {
            const int64_t o = t / ncb, c0 = (t % ncb) * RED_COLS;
            const int64_t w = inner - c0 < RED_COLS ? inner - c0 : RED_COLS;
            double acc[RED_COLS];
            for (int64_t c = 0; c < w; c++) acc[c] = 0.0;
            const float *xo = x + o * n * inner + c0;
            for (int64_t k = 0; k < n; k++) {
                const float *xr = xo + k * inner;
                for (int64_t c = 0; c < w; c++) acc[c] += (double)xr[c];
            }
            float *yo = y + o * inner + c0;
            for (int64_t c = 0; c < w; c++) yo[c] = (float)(mean ? acc[c] / dn : acc[c]);
        }
    }
}

/* The reference: each output summed over k in index order, in double. */
static void reduce_ref(attn_node *node, int mean) {
    int64_t outer, n, inner;
    reduce_geom(node, &outer, &n, &inner);
    const float *x = attn_f32(node->in[0]);
    float *y = attn_f32(node->out);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double s = 0.0;
            for (int64_t k = 0; k < n; k++) s += (double)x[(o * n + k) * inner + i];
            y[o * inner + i] = (float)(mean ? s / (double)n : s);
        }
}

/* ---- backward ------------------------------------------------------------ */

/* y[o, i] = sum_k x[o, k, i] (times 1/n for mean)
 *   =>  gx[o, k, i] += g[o, i] (divided by n for mean).
 * Each gradient element is written once, so any thread split is exact. */
static void reduce_backward(attn_ctx *ctx, attn_node *node, int mean) {
    if (!attn__needs_grad(node, 0)) return;
    int64_t outer, n, inner;
    reduce_geom(node, &outer, &n, &inner);
    const float *g = node->out->grad;
    float *gx = node->in[0]->grad;
    const float fn = (float)n;
    int nt = attn__threads_for(ctx, (double)outer * (double)n * (double)inner);
    (void)nt;
    if (inner == 1 && outer == 1) {
        const float gv = mean ? g[0] / fn : g[0];
        ATTN__OMP_FOR(nt)
        for (int64_t k = 0; k < n; k++) gx[k] += gv;
    } else if (inner == 1) {
        ATTN__OMP_FOR(nt)
        for (int64_t o = 0; o < outer; o++) {
            const float gv = mean ? g[o] / fn : g[o];
            float *gr = gx + o * n;
            for (int64_t k = 0; k < n; k++) gr[k] += gv;
        }
    } else {
        const int64_t rows = outer * n;
        ATTN__OMP_FOR(nt)
        for (int64_t t = 0; t < rows; t++) {
            const float *go = g + (t / n) * inner;
            float *gr = gx + t * inner;
            if (mean)
                for (int64_t i = 0; i < inner; i++) gr[i] += go[i] / fn;
            else
                for (int64_t i = 0; i < inner; i++) gr[i] += go[i];
        }
    }
}

attn_status attn__sum_forward(attn_ctx *ctx, attn_node *node) {
    reduce_forward(ctx, node, 0);
    return ATTN_OK;
}
attn_status attn__sum_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    reduce_ref(node, 0);
    return ATTN_OK;
}
attn_status attn__sum_backward(attn_ctx *ctx, attn_node *node) {
    reduce_backward(ctx, node, 0);
    return ATTN_OK;
}

attn_status attn__mean_forward(attn_ctx *ctx, attn_node *node) {
    reduce_forward(ctx, node, 1);
    return ATTN_OK;
}
attn_status attn__mean_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    reduce_ref(node, 1);
    return ATTN_OK;
}
attn_status attn__mean_backward(attn_ctx *ctx, attn_node *node) {
    reduce_backward(ctx, node, 1);
    return ATTN_OK;
}
