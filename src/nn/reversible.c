/* reversible.c: reversible residual layers and the chunked application of a
 * position-wise function (include/attn/reversible.h; docs/reformer.md).
 *
 * The backward runs each layer's recomputation on a tape of its own: the
 * tape recorded before the call is set aside (its head, size and consumed
 * flag), every layer starts from an empty tape, and the arena is rewound to
 * a mark after each layer, so only the four running buffers (Y1, Y2, dY1,
 * dY2) and one layer's temporaries are ever live.
 */
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/ops.h"
#include "attn/reversible.h"

attn_status attn_rev_stack_init(attn_rev_stack *s, int n_layers, attn_rev_fn f, attn_rev_fn g,
                                void *user) {
    if (!s || n_layers < 1 || !f || !g)
        return attn__error(ATTN_ERR_INVALID_ARG, "rev_stack_init: %d layers, f %s, g %s: expected "
                           ">= 1 layer and both functions", n_layers, f ? "given" : "NULL",
                           g ? "given" : "NULL");
    memset(s, 0, sizeof *s);
    s->offsets = calloc((size_t)n_layers * 2, sizeof(uint64_t));
    if (!s->offsets) return attn__error(ATTN_ERR_OOM, "rev_stack_init: %d layers", n_layers);
    s->n_layers = n_layers;
    s->f = f;
    s->g = g;
    s->user = user;
    return ATTN_OK;
}

void attn_rev_stack_free(attn_rev_stack *s) {
    if (!s) return;
    free(s->offsets);
    memset(s, 0, sizeof *s);
}

static int same_shape(const attn_tensor *a, const attn_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

/* fn's output as contiguous floats of x's shape, or NULL (error recorded). */
static const float *apply(attn_ctx *ctx, attn_rev_fn fn, void *user, int layer, attn_tensor *x,
                          const char *which, attn_tensor **out) {
    attn_tensor *y = fn(ctx, user, layer, x);
    if (!y) {
        if (ctx->status == ATTN_OK)
            attn__fail(ctx, ATTN_ERR_INVALID_ARG, "rev: %s of layer %d returned NULL", which, layer);
        return NULL;
    }
    if (!same_shape(x, y) || y->dtype != ATTN_F32) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "rev: %s of layer %d gave %s for input %s, expected the "
                   "input's shape (f32)", which, layer, attn__shp(y), attn__shp(x));
        return NULL;
    }
    if (!(y = attn_contiguous(ctx, y))) return NULL;
    *out = y;
    return attn_f32(y);
}

static attn_status check_args(attn_ctx *ctx, const attn_rev_stack *s, const attn_tensor *a,
                              const attn_tensor *b, const char *fn) {
    if (!ctx) return attn__error(ATTN_ERR_INVALID_ARG, "%s: context is NULL", fn);
    if (ctx->status != ATTN_OK) return ctx->status;
    if (!s || !s->offsets || s->n_layers < 1)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: stack not initialised", fn);
    if (!a || !b) return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: an input is NULL", fn);
    if (a->dtype != ATTN_F32 || b->dtype != ATTN_F32 || !same_shape(a, b))
        return attn__fail(ctx, ATTN_ERR_SHAPE, "%s: the two halves are %s and %s, expected two f32 "
                          "tensors of one shape", fn, attn__shp(a), attn__shp(b));
    return ATTN_OK;
}

/* A contiguous arena copy of t's values that does not require gradients. */
static attn_tensor *copy_of(attn_ctx *ctx, attn_tensor *t) {
    attn_tensor *c = attn_contiguous(ctx, t);
    return c ? attn_tensor_from(ctx, ATTN_F32, t->ndim, t->shape, attn_f32(c)) : NULL;
}

attn_status attn_rev_forward(attn_ctx *ctx, attn_rev_stack *s, attn_tensor *x1, attn_tensor *x2,
                             attn_tensor **y1, attn_tensor **y2) {
    attn_status st = check_args(ctx, s, x1, x2, "rev_forward");
    if (st) return st;
    if (!y1 || !y2) return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "rev_forward: y1 or y2 is NULL");
    *y1 = *y2 = NULL;
    const int grad = ctx->grad_enabled;
    ctx->grad_enabled = 0;
    attn_tensor *a = copy_of(ctx, x1), *b = a ? copy_of(ctx, x2) : NULL;
    const int64_t n = attn_tensor_numel(x1);
    for (int l = 0; b && l < s->n_layers; l++) {
        const size_t mark = attn__arena_mark(ctx);
        attn_tensor *t;
        s->offsets[2 * l] = ctx->rng_offset;
        const float *F = apply(ctx, s->f, s->user, l, b, "F", &t);
        if (!F) break;
        float *pa = attn_f32(a), *pb = attn_f32(b);
        for (int64_t i = 0; i < n; i++) pa[i] += F[i]; /* Y1 = X1 + F(X2) */
        attn__arena_rewind(ctx, mark);
        s->offsets[2 * l + 1] = ctx->rng_offset;
        const float *G = apply(ctx, s->g, s->user, l, a, "G", &t);
        if (!G) break;
        for (int64_t i = 0; i < n; i++) pb[i] += G[i]; /* Y2 = X2 + G(Y1) */
        attn__arena_rewind(ctx, mark);
    }
    ctx->grad_enabled = grad;
    if (ctx->status != ATTN_OK) return ctx->status;
    *y1 = a;
    *y2 = b;
    return ATTN_OK;
}

/* Backpropagates through fn at x (values xv) on an empty tape: returns fn(x)
 * in *val (arena) and accumulates (d fn / dx)^T dout into acc. */
static attn_status layer_pass(attn_ctx *ctx, attn_rev_stack *s, attn_rev_fn fn, int layer,
                              const char *which, const attn_tensor *like, const float *xv,
                              const float *dout, float *acc, const float **val) {
    ctx->tape_last = NULL;
    ctx->tape_size = 0;
    ctx->tape_consumed = 0;
    attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, like->ndim, like->shape, xv);
    if (!x) return ctx->status;
    x->requires_grad = 1;
    attn_tensor *y;
    const float *v = apply(ctx, fn, s->user, layer, x, which, &y);
    if (!v) return ctx->status;
    *val = v;
    if (!y->requires_grad) return ATTN_OK; /* fn does not depend on anything that learns */
    attn_status st = attn_backward_from(ctx, y, dout);
    if (st) return st;
    const int64_t n = attn_tensor_numel(like);
    if (x->grad)
        for (int64_t i = 0; i < n; i++) acc[i] += x->grad[i];
    return ATTN_OK;
}

attn_status attn_rev_backward(attn_ctx *ctx, attn_rev_stack *s, attn_tensor *y1, attn_tensor *y2,
                              const float *dy1, const float *dy2, float *dx1, float *dx2,
                              float *x1r, float *x2r) {
    attn_status st = check_args(ctx, s, y1, y2, "rev_backward");
    if (st) return st;
    if (!dy1 || !dy2) return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "rev_backward: dy1 or dy2 is NULL");
    if (!ctx->grad_enabled)
        return attn__fail(ctx, ATTN_ERR_STATE, "rev_backward: gradients are disabled");
    const int64_t n = attn_tensor_numel(y1);
    /* the running buffers: Y1, Y2 (then X1, X2) and their gradients */
    attn_tensor *a = copy_of(ctx, y1), *b = a ? copy_of(ctx, y2) : NULL;
    attn_tensor *da = b ? attn_tensor_from(ctx, ATTN_F32, y1->ndim, y1->shape, dy1) : NULL;
    attn_tensor *db = da ? attn_tensor_from(ctx, ATTN_F32, y1->ndim, y1->shape, dy2) : NULL;
    if (!db) return ctx->status;
    float *pa = attn_f32(a), *pb = attn_f32(b), *pda = attn_f32(da), *pdb = attn_f32(db);
    attn_node *tape_last = ctx->tape_last;
    const int tape_size = ctx->tape_size, tape_consumed = ctx->tape_consumed;
    const uint64_t offset = ctx->rng_offset;
    for (int l = s->n_layers - 1; l >= 0 && st == ATTN_OK; l--) {
        const size_t mark = attn__arena_mark(ctx);
        const float *v;
        /* G at Y1: dY1 += (dG/dY1)^T dY2, then X2 = Y2 - G(Y1) */
        ctx->rng_offset = s->offsets[2 * l + 1];
        st = layer_pass(ctx, s, s->g, l, "G", y1, pa, pdb, pda, &v);
        if (st) break;
        for (int64_t i = 0; i < n; i++) pb[i] -= v[i];
        attn__arena_rewind(ctx, mark);
        /* F at X2: dX2 = dY2 + (dF/dX2)^T dY1, then X1 = Y1 - F(X2) */
        ctx->rng_offset = s->offsets[2 * l];
        st = layer_pass(ctx, s, s->f, l, "F", y1, pb, pda, pdb, &v);
        if (st) break;
        for (int64_t i = 0; i < n; i++) pa[i] -= v[i];
        attn__arena_rewind(ctx, mark);
    }
    ctx->tape_last = tape_last;
    ctx->tape_size = tape_size;
    ctx->tape_consumed = tape_consumed;
    ctx->rng_offset = offset;
    if (st) return st;
    const size_t bytes = sizeof(float) * (size_t)n;
    if (dx1) memcpy(dx1, pda, bytes);
    if (dx2) memcpy(dx2, pdb, bytes);
    if (x1r) memcpy(x1r, pa, bytes);
    if (x2r) memcpy(x2r, pb, bytes);
    return ATTN_OK;
}

/* fn's result on the chunk [start, start + m) of x, contiguous, checked
 * against the output shape (`shape`, axis ax of length m); NULL on error. */
static attn_tensor *chunk_result(attn_ctx *ctx, attn_tensor *x, int ax, int64_t start, int64_t m,
                                 attn_rev_fn fn, void *user, int layer) {
    attn_tensor *y = fn(ctx, user, layer, attn_slice(ctx, x, ax, start, m));
    if (!y) return NULL;
    if (y->ndim <= ax || y->shape[ax] != m || y->dtype != ATTN_F32) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "chunked_apply: fn gave %s for a chunk of %lld positions "
                   "on axis %d, expected f32 with %lld there", attn__shp(y), (long long)m, ax,
                   (long long)m);
        return NULL;
    }
    return attn_contiguous(ctx, y);
}

/* Without gradients: each chunk's temporaries are freed once its result is
 * copied into the output, so the peak is one chunk's (the Reformer's point).
 * The first chunk is run once to learn the output's shape, then again with
 * the RNG counter put back (same dropout masks as the recorded path). */
static attn_tensor *chunked_no_grad(attn_ctx *ctx, attn_tensor *x, int ax, int64_t chunk,
                                    attn_rev_fn fn, void *user, int layer) {
    const int64_t len = x->shape[ax];
    const uint64_t offset = ctx->rng_offset;
    size_t mark = attn__arena_mark(ctx);
    attn_tensor *y = chunk_result(ctx, x, ax, 0, chunk, fn, user, layer);
    if (!y) return NULL;
    int64_t shape[ATTN_MAX_DIMS];
    const int ndim = y->ndim;
    memcpy(shape, y->shape, sizeof(int64_t) * (size_t)ndim);
    shape[ax] = len;
    attn__arena_rewind(ctx, mark);
    ctx->rng_offset = offset;
    attn_tensor *out = attn__tensor(ctx, "chunked_apply", ATTN_F32, ndim, shape);
    if (!out) return NULL;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < ax; d++) outer *= shape[d];
    for (int d = ax + 1; d < ndim; d++) inner *= shape[d];
    for (int64_t start = 0; start < len; start += chunk) {
        const int64_t m = start + chunk <= len ? chunk : len - start;
        mark = attn__arena_mark(ctx);
        y = chunk_result(ctx, x, ax, start, m, fn, user, layer);
        if (!y) return NULL;
        int same = y->ndim == ndim;
        for (int d = 0; same && d < ndim; d++) same = d == ax || y->shape[d] == shape[d];
        if (!same) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "chunked_apply: fn gave %s for the chunk at %lld, "
                       "unlike the first chunk's", attn__shp(y), (long long)start);
            return NULL;
        }
        const float *src = attn_f32(y);
        float *dst = attn_f32(out);
        for (int64_t o = 0; o < outer; o++)
            memcpy(dst + (o * len + start) * inner, src + o * m * inner, sizeof(float) * (size_t)(m * inner));
        attn__arena_rewind(ctx, mark);
    }
    return out;
}

attn_tensor *attn_chunked_apply(attn_ctx *ctx, attn_tensor *x, int axis, int64_t chunk,
                                attn_rev_fn fn, void *user, int layer) {
    if (attn__any_null(ctx, "chunked_apply", 1, x)) return NULL;
    if (!fn) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "chunked_apply: fn is NULL");
        return NULL;
    }
    const int ax = attn__axis(ctx, "chunked_apply", x, axis);
    if (ax < 0) return NULL;
    const int64_t len = x->shape[ax];
    if (chunk < 1) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "chunked_apply: chunk %lld, expected >= 1",
                   (long long)chunk);
        return NULL;
    }
    if (chunk >= len) return fn(ctx, user, layer, x);
    const int64_t nc = (len + chunk - 1) / chunk;
    if (!ctx->grad_enabled) return chunked_no_grad(ctx, x, ax, chunk, fn, user, layer);
    attn_tensor **parts = attn__alloc(ctx, sizeof(attn_tensor *) * (size_t)nc, "chunked_apply parts");
    if (!parts) return NULL;
    for (int64_t c = 0; c < nc; c++) {
        const int64_t start = c * chunk, m = start + chunk <= len ? chunk : len - start;
        parts[c] = fn(ctx, user, layer, attn_slice(ctx, x, ax, start, m));
        if (!parts[c]) return NULL;
    }
    if (nc > INT32_MAX) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "chunked_apply: %lld chunks", (long long)nc);
        return NULL;
    }
    return attn_concat(ctx, parts, (int)nc, ax);
}
