/* binary.c: elementwise ops of two inputs with NumPy/PyTorch broadcasting
 * (add, sub, mul, div) and the bias add.
 *
 * Shape contracts:
 *   add/sub/mul/div: a [...], b [...] -> y [broadcast of a and b]; shapes are
 *     aligned on the right and a dimension of 1 (or a missing one) stretches.
 *   bias_add: x [..., C], b [C] -> y [..., C].
 *
 * How the broadcasting kernels walk the data. Both inputs are contiguous
 * (the builders make them so), so each one is read through "broadcast
 * strides": its contiguous strides, with 0 on every dimension where it has
 * size 1 or is missing. The output shape is then simplified once per call
 * (bgeom_init): dimensions of size 1 are dropped, and adjacent dimensions
 * are merged wherever both inputs step through them as one (for example
 * [N, C] op [N, C] becomes one flat dimension, [B, T, C] op [C] becomes
 * [B*T, C], [N, C] op [N, 1] stays [N, C]). What is left is a set of rows
 * (all dimensions but the last) and an innermost run. Because the inputs
 * are contiguous, each input's stride along that innermost run is 1 (it
 * varies there) or 0 (it is broadcast there), so the inner loop is one of
 * three unit-stride, vectorisable shapes:
 *   (1, 1)  identical shapes, or b repeated along leading dims ([N,C] op [C])
 *   (1, 0)  b constant along the run (a column vector, [N,C] op [N,1])
 *   (0, 1)  a constant along the run
 * The general 4-D case is the same loop with a per-row offset computed from
 * the remaining (at most three) row dimensions. Rows are cut into chunks of
 * at most BIN_CHUNK elements so that one long flat run still splits over
 * threads; the split is static and every output element is written once, so
 * results do not depend on the thread count.
 *
 * Backward reduces the upstream gradient over the broadcast dimensions of
 * each input: an input read with stride 0 along some output dimension
 * receives the sum over that dimension. An input of the output's full size
 * is updated element by element in parallel; a broadcast input is updated by
 * one thread in row order, so its sums are deterministic.
 * Derivations: docs/ops.md, "Elementwise".
 */
#include "../core/internal.h"
#include "view_internal.h"
#include "attn/ops.h"

#define BIN_CHUNK 16384 /* elements of one task of the broadcasting loops */
#define BIAS_BLK 256    /* columns per task of the bias gradient */

/* ---- broadcast geometry -------------------------------------------------- */

typedef struct bgeom {
    int nd;                          /* simplified dims, >= 1; shape[nd-1] is the inner run */
    int64_t shape[ATTN_MAX_DIMS];
    int64_t st[2][ATTN_MAX_DIMS];    /* element strides of a (0) and b (1); 0 = broadcast */
    int64_t inner, rows;             /* shape[nd-1] and the product of the other dims */
} bgeom;

/* Simplifies the broadcast of contiguous a and b to y's shape as described
 * at the top of the file. */
static void bgeom_init(bgeom *g, const attn_tensor *a, const attn_tensor *b,
                       const attn_tensor *y) {
    int64_t sa[ATTN_MAX_DIMS], sb[ATTN_MAX_DIMS], sh[ATTN_MAX_DIMS];
    attn__broadcast_strides(a, y->ndim, y->shape, sa);
    attn__broadcast_strides(b, y->ndim, y->shape, sb);
    int pad = ATTN_MAX_DIMS - y->ndim;
    for (int d = 0; d < ATTN_MAX_DIMS; d++) sh[d] = d < pad ? 1 : y->shape[d - pad];
    g->nd = 0;
    for (int d = 0; d < ATTN_MAX_DIMS; d++) {
        if (sh[d] == 1) continue; /* a size-1 dim moves no index */
        int k = g->nd - 1;
        if (k >= 0 && g->st[0][k] == sa[d] * sh[d] && g->st[1][k] == sb[d] * sh[d]) {
            /* the previous dim steps over exactly one run of this one in
             * both inputs: fold this dim into it */
            g->shape[k] *= sh[d];
            g->st[0][k] = sa[d];
            g->st[1][k] = sb[d];
            continue;
        }
        g->shape[g->nd] = sh[d];
        g->st[0][g->nd] = sa[d];
        g->st[1][g->nd] = sb[d];
        g->nd++;
    }
    if (g->nd == 0) { /* every dim is 1: one element */
        g->nd = 1;
        g->shape[0] = 1;
        g->st[0][0] = g->st[1][0] = 0;
    }
    g->inner = g->shape[g->nd - 1];
    g->rows = 1;
    for (int d = 0; d < g->nd - 1; d++) g->rows *= g->shape[d];
}

/* Element offsets of a (off[0]) and b (off[1]) at the start of row r. */
static inline void bgeom_row(const bgeom *g, int64_t r, int64_t off[2]) {
    off[0] = off[1] = 0;
    for (int d = g->nd - 2; d >= 0; d--) {
        int64_t i = r % g->shape[d];
        r /= g->shape[d];
        off[0] += i * g->st[0][d];
        off[1] += i * g->st[1][d];
    }
}

/* ---- builders ------------------------------------------------------------ */

static attn_tensor *binary_build(attn_ctx *ctx, attn_op op, attn_tensor *a, attn_tensor *b) {
    const char *name = attn__ops[op].name;
    if (attn__any_null(ctx, name, 2, a, b)) return NULL;
    if (attn__check_dtype(ctx, name, "a", a, ATTN_F32)) return NULL;
    if (attn__check_dtype(ctx, name, "b", b, ATTN_F32)) return NULL;
    int nd;
    int64_t sh[ATTN_MAX_DIMS];
    if (attn__broadcast_shape(ctx, name, a, b, &nd, sh)) return NULL;
    a = attn__contig(ctx, a);
    if (!a) return NULL;
    b = attn__contig(ctx, b);
    if (!b) return NULL;
    attn_tensor *y = attn__tensor(ctx, name, ATTN_F32, nd, sh);
    if (!y) return NULL;
    attn_tensor *in[2] = {a, b};
    return attn__run(ctx, attn__node(ctx, op, 2, in, y));
}

attn_tensor *attn_add(attn_ctx *ctx, attn_tensor *a, attn_tensor *b) {
    return binary_build(ctx, ATTN_OP_ADD, a, b);
}
attn_tensor *attn_sub(attn_ctx *ctx, attn_tensor *a, attn_tensor *b) {
    return binary_build(ctx, ATTN_OP_SUB, a, b);
}
attn_tensor *attn_mul(attn_ctx *ctx, attn_tensor *a, attn_tensor *b) {
    return binary_build(ctx, ATTN_OP_MUL, a, b);
}
attn_tensor *attn_div(attn_ctx *ctx, attn_tensor *a, attn_tensor *b) {
    return binary_build(ctx, ATTN_OP_DIV, a, b);
}

/* ---- forward ------------------------------------------------------------- */

/* One inner run of `len` outputs; ia / ib say whether a / b advance (1) or
 * stay (0) along it. EXPR combines u (from a) and v (from b). */
#define FWD_LOOPS(EXPR)                                                                \
    do {                                                                               \
        if (ia && ib) {                                                                \
            for (int64_t i = 0; i < len; i++) {                                        \
                const float u = pa[i], v = pb[i];                                      \
                py[i] = (EXPR);                                                        \
            }                                                                          \
        } else if (ia) {                                                               \
            const float v = pb[0];                                                     \
            for (int64_t i = 0; i < len; i++) {                                        \
                const float u = pa[i];                                                 \
                py[i] = (EXPR);                                                        \
            }                                                                          \
        } else {                                                                       \
            const float u = pa[0];                                                     \
            for (int64_t i = 0; i < len; i++) {                                        \
                const float v = pb[i];                                                 \
                py[i] = (EXPR);                                                        \
            }                                                                          \
        }                                                                              \
    } while (0)

static void fwd_inner(attn_op op, int ia, int ib, const float *restrict pa,
                      const float *restrict pb, float *restrict py, int64_t len) {
    switch (op) {
    case ATTN_OP_ADD: FWD_LOOPS(u + v); break;
    case ATTN_OP_SUB: FWD_LOOPS(u - v); break;
    case ATTN_OP_MUL: FWD_LOOPS(u * v); break;
    case ATTN_OP_DIV: FWD_LOOPS(u / v); break;
    default: break;
    }
}

static attn_status binary_forward(attn_ctx *ctx, attn_node *node) {
    const attn_tensor *ta = node->in[0], *tb = node->in[1];
    attn_tensor *ty = node->out;
    int64_t n = attn_tensor_numel(ty);
    if (n == 0) return ATTN_OK;
    bgeom g;
    bgeom_init(&g, ta, tb, ty);
    const float *a = attn_f32(ta), *b = attn_f32(tb);
    float *y = attn_f32(ty);
    const int ia = g.st[0][g.nd - 1] != 0, ib = g.st[1][g.nd - 1] != 0;
    const int64_t inner = g.inner, nchunk = (inner + BIN_CHUNK - 1) / BIN_CHUNK;
    const int64_t ntask = g.rows * nchunk;
    const attn_op op = node->op;
    int nt = attn__threads_for(ctx, (double)n);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t t = 0; t < ntask; t++) {
        int64_t r = t / nchunk, c0 = (t % nchunk) * BIN_CHUNK;
        int64_t len = inner - c0 < BIN_CHUNK ? inner - c0 : BIN_CHUNK;
        int64_t off[2];
        bgeom_row(&g, r, off);
        fwd_inner(op, ia, ib, a + off[0] + c0 * ia, b + off[1] + c0 * ib, y + r * inner + c0, len);
    }
    return ATTN_OK;
}

/* The reference: a plain 4-D loop over the output through the broadcast
 * strides, each value computed in double and rounded once (for one
 * operation on two floats this equals the float result). */
static attn_status binary_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const attn_tensor *ta = node->in[0], *tb = node->in[1];
    attn_tensor *ty = node->out;
    int64_t sa[ATTN_MAX_DIMS], sb[ATTN_MAX_DIMS], sh[ATTN_MAX_DIMS];
    attn__broadcast_strides(ta, ty->ndim, ty->shape, sa);
    attn__broadcast_strides(tb, ty->ndim, ty->shape, sb);
    int pad = ATTN_MAX_DIMS - ty->ndim;
    for (int d = 0; d < ATTN_MAX_DIMS; d++) sh[d] = d < pad ? 1 : ty->shape[d - pad];
    const float *a = attn_f32(ta), *b = attn_f32(tb);
    float *y = attn_f32(ty);
    int64_t lin = 0;
    for (int64_t i0 = 0; i0 < sh[0]; i0++)
        for (int64_t i1 = 0; i1 < sh[1]; i1++)
            for (int64_t i2 = 0; i2 < sh[2]; i2++)
                for (int64_t i3 = 0; i3 < sh[3]; i3++, lin++) {
                    double u = a[i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + i3 * sa[3]];
                    double v = b[i0 * sb[0] + i1 * sb[1] + i2 * sb[2] + i3 * sb[3]];
                    double r;
                    switch (node->op) {
                    case ATTN_OP_ADD: r = u + v; break;
                    case ATTN_OP_SUB: r = u - v; break;
                    case ATTN_OP_MUL: r = u * v; break;
                    default: r = u / v; break;
                    }
                    y[lin] = (float)r;
                }
    return ATTN_OK;
}

/* ---- backward ------------------------------------------------------------ */

/* The gradient contribution of one output element to input x, from the
 * upstream gradient G, x's own value X and the other input's value O. */
#define G_ID(G, X, O) (G)                         /* add: y = a + b; sub: y = a - b, for a */
#define G_NEG(G, X, O) (-(G))                     /* sub: y = a - b, for b */
#define G_MUL(G, X, O) ((G) * (O))                /* mul: y = a * b */
#define G_DIV_A(G, X, O) ((G) / (O))              /* div: y = a / b, for a: dy/da = 1/b */
#define G_DIV_B(G, X, O) (-((G) * (O)) / ((X) * (X))) /* div, for b: dy/db = -a/b^2 */

/* One inner run: gx[...] += F(g, x, o); sx / so say whether x / the other
 * input advance along the run. When x stays (sx = 0) the run is a sum over
 * a broadcast dimension, accumulated in double in order. */
#define BWD_LOOPS(F)                                                                   \
    do {                                                                               \
        if (sx && so) {                                                                \
            for (int64_t i = 0; i < len; i++) pgx[i] += F(pg[i], px[i], po[i]);        \
        } else if (sx) {                                                               \
            const float ov = po[0];                                                    \
            (void)ov;                                                                  \
            for (int64_t i = 0; i < len; i++) pgx[i] += F(pg[i], px[i], ov);           \
        } else {                                                                       \
            const float xv = px[0];                                                    \
            (void)xv;                                                                  \
            double acc = 0.0;                                                          \
            for (int64_t i = 0; i < len; i++) acc += F(pg[i], xv, po[i]);              \
            pgx[0] = (float)((double)pgx[0] + acc);                                    \
        }                                                                              \
    } while (0)

static void bwd_inner(attn_op op, int k, int sx, int so, const float *restrict pg,
                      const float *restrict px, const float *restrict po, float *restrict pgx,
                      int64_t len) {
    switch (op) {
    case ATTN_OP_ADD: BWD_LOOPS(G_ID); break;
    case ATTN_OP_SUB:
        if (k == 0) BWD_LOOPS(G_ID);
        else BWD_LOOPS(G_NEG);
        break;
    case ATTN_OP_MUL: BWD_LOOPS(G_MUL); break;
    case ATTN_OP_DIV:
        if (k == 0) BWD_LOOPS(G_DIV_A);
        else BWD_LOOPS(G_DIV_B);
        break;
    default: break;
    }
}

/* Accumulates the gradient of input k (0 = a, 1 = b) of a binary node. */
static void binary_grad_input(attn_ctx *ctx, const attn_node *node, const bgeom *g, int k) {
    const attn_tensor *ty = node->out;
    const int64_t n = attn_tensor_numel(ty);
    const float *x = attn_f32(node->in[k]), *o = attn_f32(node->in[1 - k]);
    const float *gy = ty->grad;
    float *gx = node->in[k]->grad;
    const int sx = g->st[k][g->nd - 1] != 0, so = g->st[1 - k][g->nd - 1] != 0;
    /* An input of the output's size is not broadcast anywhere: each output
     * element updates its own gradient element, so threads may share the
     * work. A broadcast input is reduced by one thread, in row order. */
    const int full = attn_tensor_numel(node->in[k]) == n;
    int nt = full ? attn__threads_for(ctx, 2.0 * (double)n) : 1;
    (void)nt;
    const int64_t inner = g->inner, nchunk = (inner + BIN_CHUNK - 1) / BIN_CHUNK;
    const int64_t ntask = g->rows * nchunk;
    const attn_op op = node->op;
    ATTN__OMP_FOR(nt)
    for (int64_t t = 0; t < ntask; t++) {
        int64_t r = t / nchunk, c0 = (t % nchunk) * BIN_CHUNK;
        int64_t len = inner - c0 < BIN_CHUNK ? inner - c0 : BIN_CHUNK;
        int64_t off[2];
        bgeom_row(g, r, off);
        int64_t ox = off[k] + c0 * sx, oo = off[1 - k] + c0 * so;
        bwd_inner(op, k, sx, so, gy + r * inner + c0, x + ox, o + oo, gx + ox, len);
    }
}

static attn_status binary_backward(attn_ctx *ctx, attn_node *node) {
    if (attn_tensor_numel(node->out) == 0) return ATTN_OK;
    bgeom g;
    bgeom_init(&g, node->in[0], node->in[1], node->out);
    for (int k = 0; k < 2; k++)
        if (attn__needs_grad(node, k)) binary_grad_input(ctx, node, &g, k);
    return ATTN_OK;
}

/* y = a + b  =>  ga += g, gb += g (each summed over its broadcast dims) */
attn_status attn__add_forward(attn_ctx *ctx, attn_node *node) { return binary_forward(ctx, node); }
attn_status attn__add_ref(attn_ctx *ctx, attn_node *node) { return binary_ref(ctx, node); }
attn_status attn__add_backward(attn_ctx *ctx, attn_node *node) { return binary_backward(ctx, node); }

/* y = a - b  =>  ga += g, gb -= g */
attn_status attn__sub_forward(attn_ctx *ctx, attn_node *node) { return binary_forward(ctx, node); }
attn_status attn__sub_ref(attn_ctx *ctx, attn_node *node) { return binary_ref(ctx, node); }
attn_status attn__sub_backward(attn_ctx *ctx, attn_node *node) { return binary_backward(ctx, node); }

/* y = a * b  =>  ga += g * b, gb += g * a */
attn_status attn__mul_forward(attn_ctx *ctx, attn_node *node) { return binary_forward(ctx, node); }
attn_status attn__mul_ref(attn_ctx *ctx, attn_node *node) { return binary_ref(ctx, node); }
attn_status attn__mul_backward(attn_ctx *ctx, attn_node *node) { return binary_backward(ctx, node); }

/* y = a / b  =>  ga += g / b, gb -= g * a / b^2 */
attn_status attn__div_forward(attn_ctx *ctx, attn_node *node) { return binary_forward(ctx, node); }
attn_status attn__div_ref(attn_ctx *ctx, attn_node *node) { return binary_ref(ctx, node); }
attn_status attn__div_backward(attn_ctx *ctx, attn_node *node) { return binary_backward(ctx, node); }

/* ---- bias_add: x [..., C] + b [C] ------------------------------------------ */

attn_tensor *attn_bias_add(attn_ctx *ctx, attn_tensor *x, attn_tensor *b) {
    if (attn__any_null(ctx, "bias_add", 2, x, b)) return NULL;
    if (attn__check_dtype(ctx, "bias_add", "x", x, ATTN_F32)) return NULL;
    if (attn__check_dtype(ctx, "bias_add", "b", b, ATTN_F32)) return NULL;
    if (x->ndim < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "bias_add: x %s is a scalar, expected x [..., C] with at least one dimension",
                   attn__shp(x));
        return NULL;
    }
    int64_t C = x->shape[x->ndim - 1];
    if (b->ndim != 1 || b->shape[0] != C) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "bias_add: x %s and b %s: expected b 1-D [C] with C = %lld, the last "
                   "dimension of x",
                   attn__shp(x), attn__shp(b), (long long)C);
        return NULL;
    }
    x = attn__contig(ctx, x);
    if (!x) return NULL;
    b = attn__contig(ctx, b);
    if (!b) return NULL;
    attn_tensor *y = attn__tensor_like(ctx, "bias_add", x);
    if (!y) return NULL;
    attn_tensor *in[2] = {x, b};
    return attn__run(ctx, attn__node(ctx, ATTN_OP_BIAS_ADD, 2, in, y));
}

/* y[r, c] = x[r, c] + b[c] over N = numel / C rows. */
attn_status attn__bias_add_forward(attn_ctx *ctx, attn_node *node) {
    const attn_tensor *tx = node->in[0];
    const int64_t C = tx->shape[tx->ndim - 1];
    const int64_t N = C ? attn_tensor_numel(tx) / C : 0;
    const float *x = attn_f32(tx), *b = attn_f32(node->in[1]);
    float *y = attn_f32(node->out);
    int nt = attn__threads_for(ctx, (double)N * (double)C);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t r = 0; r < N; r++) {
        const float *restrict xr = x + r * C;
        float *restrict yr = y + r * C;
        for (int64_t c = 0; c < C; c++) yr[c] = xr[c] + b[c];
    }
    return ATTN_OK;
}

attn_status attn__bias_add_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const attn_tensor *tx = node->in[0];
    const int64_t C = tx->shape[tx->ndim - 1];
    const int64_t N = C ? attn_tensor_numel(tx) / C : 0;
    const float *x = attn_f32(tx), *b = attn_f32(node->in[1]);
    float *y = attn_f32(node->out);
    for (int64_t r = 0; r < N; r++)
        for (int64_t c = 0; c < C; c++) y[r * C + c] = (float)((double)x[r * C + c] + (double)b[c]);
    return ATTN_OK;
}

attn_status attn__bias_add_backward(attn_ctx *ctx, attn_node *node) {
    const attn_tensor *tx = node->in[0];
    const int64_t C = tx->shape[tx->ndim - 1];
    const int64_t N = C ? attn_tensor_numel(tx) / C : 0;
    const float *gy = node->out->grad;
    int nt = attn__threads_for(ctx, (double)N * (double)C);
    (void)nt;
    if (attn__needs_grad(node, 0)) {
        /* y = x + b  =>  gx += g */
        float *gx = node->in[0]->grad;
        const int64_t n = N * C;
        ATTN__OMP_FOR(nt)
        for (int64_t i = 0; i < n; i++) gx[i] += gy[i];
    }
    if (attn__needs_grad(node, 1)) {
        /* y[r, c] = x[r, c] + b[c]  =>  gb[c] += sum over r of g[r, c].
         * Columns are cut into blocks; each block is summed over all rows in
         * row order in double by one thread, so the result does not depend
         * on the thread count. */
        float *gb = node->in[1]->grad;
        const int64_t nblk = (C + BIAS_BLK - 1) / BIAS_BLK;
        ATTN__OMP_FOR(nt)
        for (int64_t k = 0; k < nblk; k++) {
            double acc[BIAS_BLK];
            const int64_t c0 = k * BIAS_BLK;
            const int64_t w = C - c0 < BIAS_BLK ? C - c0 : BIAS_BLK;
            for (int64_t c = 0; c < w; c++) acc[c] = 0.0;
            for (int64_t r = 0; r < N; r++) {
                const float *gr = gy + r * C + c0;
                for (int64_t c = 0; c < w; c++) acc[c] += gr[c];
            }
            for (int64_t c = 0; c < w; c++) gb[c0 + c] = (float)((double)gb[c0 + c] + acc[c]);
        }
    }
    return ATTN_OK;
}
