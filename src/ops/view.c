/* view.c: views (reshape, permute, transpose, slice, split), contiguous
 * copies and concatenation.
 *
 * A VIEW node's output shares its parent's storage: out->data points at
 * element iarg[0] of the (contiguous) parent and out->stride says how the
 * view walks it. Its forward does nothing; its backward scatters the view's
 * gradient (contiguous, logical shape) into the parent's gradient through the
 * same offset and strides. Views of a strided tensor are taken of a
 * contiguous copy, so strides are always relative to a contiguous parent.
 */
#include <string.h>

#include "../core/internal.h"
#include "view_internal.h"
#include "attn/ops.h"

/* Visits every logical index of a tensor of shape `shape` (ndim <= 4), in
 * row-major order, giving the linear logical index and the strided offset. */
#define FOR_EACH_INDEX(ndim, shape, stride, LIN, OFF, BODY)                              \
    do {                                                                                 \
        int64_t sh_[4] = {1, 1, 1, 1}, st_[4] = {0, 0, 0, 0};                            \
        int pad_ = 4 - (ndim);                                                           \
        for (int d_ = 0; d_ < (ndim); d_++) {                                            \
            sh_[pad_ + d_] = (shape)[d_];                                                \
            st_[pad_ + d_] = (stride)[d_];                                               \
        }                                                                                \
        int64_t LIN = 0;                                                                 \
        for (int64_t i0 = 0; i0 < sh_[0]; i0++)                                          \
            for (int64_t i1 = 0; i1 < sh_[1]; i1++)                                      \
                for (int64_t i2 = 0; i2 < sh_[2]; i2++) {                                \
                    int64_t base_ = i0 * st_[0] + i1 * st_[1] + i2 * st_[2];             \
                    for (int64_t i3 = 0; i3 < sh_[3]; i3++, LIN++) {                     \
                        int64_t OFF = base_ + i3 * st_[3];                               \
                        BODY;                                                            \
                    }                                                                    \
                }                                                                        \
    } while (0)

/* A VIEW node of x (made contiguous first) with the given shape, strides and
 * element offset. */
static attn_tensor *make_view(attn_ctx *ctx, const char *op, attn_tensor *x, int ndim,
                              const int64_t *shape, const int64_t *stride, int64_t offset) {
    size_t es = attn_dtype_size(x->dtype);
    attn_tensor *v = attn__tensor_view(ctx, op, x->dtype, ndim, shape, stride,
                                       (char *)x->data + (size_t)offset * es);
    if (!v) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_VIEW, 1, &x, v);
    if (!node) return NULL;
    node->iarg[0] = offset;
    return attn__run(ctx, node);
}

attn_tensor *attn_reshape(attn_ctx *ctx, attn_tensor *x, int ndim, const int64_t *shape) {
    if (attn__any_null(ctx, "reshape", 1, x)) return NULL;
    if (ndim < 0 || ndim > ATTN_MAX_DIMS || (ndim > 0 && !shape)) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "reshape: %d dimensions requested for %s, expected 0 to %d",
                   ndim, attn__shp(x), ATTN_MAX_DIMS);
        return NULL;
    }
    int64_t sh[ATTN_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        sh[i] = shape[i];
        if (sh[i] == -1 && infer < 0) {
            infer = i;
        } else if (sh[i] < 0) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "reshape: dimension %d is %lld (only one -1 allowed)",
                       i, (long long)sh[i]);
            return NULL;
        } else {
            known *= sh[i];
        }
    }
    int64_t n = attn_tensor_numel(x);
    if (infer >= 0) {
        if (known == 0 || n % known) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "reshape: cannot infer dimension %d: %lld elements of %s "
                       "are not a multiple of %lld", infer, (long long)n, attn__shp(x), (long long)known);
            return NULL;
        }
        sh[infer] = n / known;
        known = n;
    }
    if (known != n) {
        attn_tensor tmp = {.ndim = ndim};
        for (int i = 0; i < ndim; i++) tmp.shape[i] = sh[i];
        attn__fail(ctx, ATTN_ERR_SHAPE, "reshape: %s has %lld elements, target %s has %lld",
                   attn__shp(x), (long long)n, attn__shp(&tmp), (long long)known);
        return NULL;
    }
    x = attn__contig(ctx, x);
    if (!x) return NULL;
    int64_t st[ATTN_MAX_DIMS], s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        st[i] = s;
        s *= sh[i];
    }
    return make_view(ctx, "reshape", x, ndim, sh, st, 0);
}

attn_tensor *attn_permute(attn_ctx *ctx, attn_tensor *x, const int *perm) {
    if (attn__any_null(ctx, "permute", 1, x)) return NULL;
    int seen[ATTN_MAX_DIMS] = {0};
    for (int i = 0; i < x->ndim; i++) {
        if (!perm || perm[i] < 0 || perm[i] >= x->ndim || seen[perm[i]]++) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                       "permute: perm is not a permutation of the %d dims of %s", x->ndim,
                       attn__shp(x));
            return NULL;
        }
    }
    x = attn__contig(ctx, x);
    if (!x) return NULL;
    int64_t sh[ATTN_MAX_DIMS], st[ATTN_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) {
        sh[i] = x->shape[perm[i]];
        st[i] = x->stride[perm[i]];
    }
    return make_view(ctx, "permute", x, x->ndim, sh, st, 0);
}

attn_tensor *attn_transpose(attn_ctx *ctx, attn_tensor *x, int dim0, int dim1) {
    if (attn__any_null(ctx, "transpose", 1, x)) return NULL;
    int a = attn__axis(ctx, "transpose", x, dim0), b = attn__axis(ctx, "transpose", x, dim1);
    if (a < 0 || b < 0) return NULL;
    int perm[ATTN_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return attn_permute(ctx, x, perm);
}

attn_tensor *attn_slice(attn_ctx *ctx, attn_tensor *x, int axis, int64_t start, int64_t len) {
    if (attn__any_null(ctx, "slice", 1, x)) return NULL;
    int a = attn__axis(ctx, "slice", x, axis);
    if (a < 0) return NULL;
    if (start < 0 || len < 0 || start > x->shape[a] || len > x->shape[a] - start) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "slice: start %lld, length %lld along axis %d: outside [0, %lld) of %s",
                   (long long)start, (long long)len, a, (long long)x->shape[a], attn__shp(x));
        return NULL;
    }
    x = attn__contig(ctx, x);
    if (!x) return NULL;
    int64_t sh[ATTN_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) sh[i] = x->shape[i];
    sh[a] = len;
    return make_view(ctx, "slice", x, x->ndim, sh, x->stride, start * x->stride[a]);
}

int attn_split(attn_ctx *ctx, attn_tensor *x, int axis, int n, const int64_t *sizes,
               attn_tensor **outs) {
    if (attn__any_null(ctx, "split", 1, x)) return -1;
    int a = attn__axis(ctx, "split", x, axis);
    if (a < 0) return -1;
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += sizes ? sizes[i] : -1;
    if (n < 1 || !sizes || !outs || total != x->shape[a]) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "split: %d parts summing to %lld along axis %d, expected them to sum to %lld "
                   "(the axis of %s)",
                   n, (long long)total, a, (long long)x->shape[a], attn__shp(x));
        return -1;
    }
    x = attn__contig(ctx, x);
    if (!x) return -1;
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        outs[i] = attn_slice(ctx, x, a, start, sizes[i]);
        if (!outs[i]) return -1;
        start += sizes[i];
    }
    return 0;
}

attn_status attn__view_forward(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    (void)node; /* the output shares the parent's storage: nothing to compute */
    return ATTN_OK;
}
/* A view computes nothing (its geometry is set when it is made), so its
 * reference is the same no-op; what a view reads is judged against PyTorch
 * and its gradient by finite differences (tests/test_ops.c). */
attn_status attn__view_ref(attn_ctx *ctx, attn_node *node) { return attn__view_forward(ctx, node); }
attn_status attn__view_backward(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    /* out[idx] = parent[off + sum idx_k stride_k]  =>  gparent[...] += gout[idx] */
    const attn_tensor *v = node->out;
    const float *gv = v->grad;
    float *gp = node->in[0]->grad + node->iarg[0];
    if (attn_tensor_is_contiguous(v)) { /* reshape, or a slice along the first axis */
        int64_t n = attn_tensor_numel(v);
        for (int64_t i = 0; i < n; i++) gp[i] += gv[i];
        return ATTN_OK;
    }
    FOR_EACH_INDEX(v->ndim, v->shape, v->stride, lin, off, gp[off] += gv[lin]);
    return ATTN_OK;
}

attn_tensor *attn__view_rows(attn_ctx *ctx, const char *op, attn_tensor *x, int64_t rows,
                             int64_t cols, int64_t offset) {
    const int64_t sh[2] = {rows, cols}, st[2] = {cols, 1};
    return make_view(ctx, op, x, 2, sh, st, offset);
}

/* ---- contiguous ---- */

attn_tensor *attn__contig(attn_ctx *ctx, attn_tensor *x) {
    if (!x) return NULL;
    if (attn_tensor_is_contiguous(x)) return x;
    return attn_contiguous(ctx, x);
}

attn_tensor *attn_contiguous(attn_ctx *ctx, attn_tensor *x) {
    if (attn__any_null(ctx, "contiguous", 1, x)) return NULL;
    if (attn_tensor_is_contiguous(x)) return x;
    attn_tensor *y = attn__tensor_like(ctx, "contiguous", x);
    if (!y) return NULL;
    return attn__run(ctx, attn__node(ctx, ATTN_OP_CONTIGUOUS, 1, &x, y));
}
attn_status attn__contiguous_forward(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const attn_tensor *x = node->in[0];
    size_t es = attn_dtype_size(x->dtype);
    const char *src = x->data;
    char *dst = node->out->data;
    if (es == 4) {
        const uint32_t *s = (const uint32_t *)src;
        uint32_t *d = (uint32_t *)dst;
        FOR_EACH_INDEX(x->ndim, x->shape, x->stride, lin, off, d[lin] = s[off]);
    } else {
        FOR_EACH_INDEX(x->ndim, x->shape, x->stride, lin, off,
                       memcpy(dst + (size_t)lin * es, src + (size_t)off * es, es));
    }
    return ATTN_OK;
}
/* The reference, written independently of FOR_EACH_INDEX: each output
 * element's multi-index is recovered from its row-major position by
 * division, and its source offset recomputed from the strides. */
attn_status attn__contiguous_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const attn_tensor *x = node->in[0];
    size_t es = attn_dtype_size(x->dtype);
    const char *src = x->data;
    char *dst = node->out->data;
    int64_t n = attn_tensor_numel(x);
    for (int64_t lin = 0; lin < n; lin++) {
        int64_t rest = lin, off = 0;
        for (int d = x->ndim - 1; d >= 0; d--) {
            off += (rest % x->shape[d]) * x->stride[d];
            rest /= x->shape[d];
        }
        memcpy(dst + (size_t)lin * es, src + (size_t)off * es, es);
    }
    return ATTN_OK;
}
attn_status attn__contiguous_backward(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    /* out is x in logical order; both gradients are logical: gx += gy */
    int64_t n = attn_tensor_numel(node->out);
    const float *gy = node->out->grad;
    float *gx = node->in[0]->grad;
    for (int64_t i = 0; i < n; i++) gx[i] += gy[i];
    return ATTN_OK;
}

/* ---- concat (iarg[0] = axis) ---- */

attn_tensor *attn_concat(attn_ctx *ctx, attn_tensor *const *xs, int n, int axis) {
    if (!ctx) {
        attn__error(ATTN_ERR_INVALID_ARG, "concat: the context is NULL");
        return NULL;
    }
    if (!xs || n < 1) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "concat: %d inputs, expected at least 1", n);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!xs[i]) {
            if (ctx->status == ATTN_OK)
                attn__fail(ctx, ATTN_ERR_INVALID_ARG, "concat: input %d is NULL", i);
            return NULL;
        }
    int a = attn__axis(ctx, "concat", xs[0], axis);
    if (a < 0) return NULL;
    int64_t sh[ATTN_MAX_DIMS];
    for (int d = 0; d < xs[0]->ndim; d++) sh[d] = xs[0]->shape[d];
    sh[a] = 0;
    attn_tensor **in = attn__alloc(ctx, sizeof(attn_tensor *) * (size_t)n, "concat");
    if (!in) return NULL;
    for (int i = 0; i < n; i++) {
        const attn_tensor *t = xs[i];
        if (t->dtype != xs[0]->dtype) {
            attn__fail(ctx, ATTN_ERR_DTYPE, "concat: input %d %s is %s, input 0 %s is %s", i,
                       attn__shp(t), attn_dtype_name(t->dtype), attn__shp(xs[0]),
                       attn_dtype_name(xs[0]->dtype));
            return NULL;
        }
        int ok = t->ndim == xs[0]->ndim;
        for (int d = 0; ok && d < t->ndim; d++)
            if (d != a && t->shape[d] != xs[0]->shape[d]) ok = 0;
        if (!ok) {
            attn__fail(ctx, ATTN_ERR_SHAPE,
                       "concat: input %d %s (%s) does not match input 0 %s (%s) outside axis %d", i,
                       attn__shp(t), attn_dtype_name(t->dtype), attn__shp(xs[0]),
                       attn_dtype_name(xs[0]->dtype), a);
            return NULL;
        }
        sh[a] += t->shape[a];
        in[i] = attn__contig(ctx, xs[i]);
        if (!in[i]) return NULL;
    }
    attn_tensor *y = attn__tensor(ctx, "concat", xs[0]->dtype, xs[0]->ndim, sh);
    if (!y) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_CONCAT, n, in, y);
    if (!node) return NULL;
    node->iarg[0] = a;
    return attn__run(ctx, node);
}

/* outer = product of dims before the axis; each input contributes a block of
 * shape[axis] * inner elements per outer index. */
static void concat_geometry(const attn_node *node, int64_t *outer, int64_t *inner) {
    const attn_tensor *y = node->out;
    int a = (int)node->iarg[0];
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < a; d++) *outer *= y->shape[d];
    for (int d = a + 1; d < y->ndim; d++) *inner *= y->shape[d];
}

attn_status attn__concat_forward(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    int64_t outer, inner;
    concat_geometry(node, &outer, &inner);
    int a = (int)node->iarg[0];
    size_t es = attn_dtype_size(node->out->dtype);
    char *y = node->out->data;
    int64_t row = node->out->shape[a] * inner; /* elements of y per outer index */
    int64_t col = 0;
    for (int i = 0; i < node->n_in; i++) {
        int64_t blk = node->in[i]->shape[a] * inner;
        const char *x = node->in[i]->data;
        for (int64_t o = 0; o < outer; o++)
            memcpy(y + (size_t)(o * row + col) * es, x + (size_t)(o * blk) * es, (size_t)blk * es);
        col += blk;
    }
    return ATTN_OK;
}
/* The reference, written independently of the block copies above: each
 * output element finds its input by walking the inputs' extents along the
 * axis. */
attn_status attn__concat_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const attn_tensor *y = node->out;
    int a = (int)node->iarg[0];
    size_t es = attn_dtype_size(y->dtype);
    int64_t inner = 1;
    for (int d = a + 1; d < y->ndim; d++) inner *= y->shape[d];
    int64_t n = attn_tensor_numel(y), width = y->shape[a];
    for (int64_t lin = 0; lin < n; lin++) {
        int64_t o = lin / (width * inner), c = lin / inner % width, j = lin % inner;
        int i = 0;
        while (c >= node->in[i]->shape[a]) c -= node->in[i++]->shape[a];
        const attn_tensor *x = node->in[i];
        int64_t src = (o * x->shape[a] + c) * inner + j; /* inputs are contiguous */
        memcpy((char *)y->data + (size_t)lin * es, (const char *)x->data + (size_t)src * es, es);
    }
    return ATTN_OK;
}
attn_status attn__concat_backward(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    /* y[o, col_i + j] = x_i[o, j]  =>  gx_i[o, j] += gy[o, col_i + j] */
    int64_t outer, inner;
    concat_geometry(node, &outer, &inner);
    int a = (int)node->iarg[0];
    const float *gy = node->out->grad;
    int64_t row = node->out->shape[a] * inner, col = 0;
    for (int i = 0; i < node->n_in; i++) {
        int64_t blk = node->in[i]->shape[a] * inner;
        if (attn__needs_grad(node, i)) {
            float *gx = node->in[i]->grad;
            for (int64_t o = 0; o < outer; o++)
                for (int64_t j = 0; j < blk; j++) gx[o * blk + j] += gy[o * row + col + j];
        }
        col += blk;
    }
    return ATTN_OK;
}
