/* pool.c: 2-D max and average pooling over NCHW (include/attn/conv.h), as
 * torch.nn.functional.max_pool2d / avg_pool2d with ceil_mode = False.
 *
 * Shape contract: x [N, C, H, W] f32 -> y [N, C, OH, OW],
 *   OH = (H + 2 PH - KH) / SH + 1, OW likewise.
 * Node attributes: iarg = {KH, KW, SH, SW, PH, PW, exclude_pad}.
 * Window of output (p, q): rows p SH - PH .. p SH - PH + KH - 1 (columns
 * likewise), clipped to the input.
 *   max: y = the largest element of the clipped window (padding is -inf);
 *        saved[0] = I32 [N, C, OH, OW], the flat index h W + w of that
 *        element in its plane: the first in row-major order among equal
 *        maxima, a NaN wins (torch's rule `v > max || isnan(v)`).
 *   avg: y = sum of the clipped window / d, with d = the window clipped to
 *        the padded input (KH KW here, floor mode) when padding counts
 *        (torch's default count_include_pad), else the clipped window's size.
 * Backward: max routes dy to the saved index, avg spreads dy / d over the
 * clipped window (docs/conv.md). Each task owns whole planes: no races, and
 * the same sums for any thread count.
 */
#include <math.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/conv.h"
#include "view_internal.h"

typedef struct pl_geom {
    int64_t planes, H, W, OH, OW, KH, KW, SH, SW, PH, PW;
    int exclude_pad;
} pl_geom;

static pl_geom pl_geom_of(const attn_node *node) {
    const attn_tensor *x = node->in[0], *y = node->out;
    pl_geom g;
    g.planes = x->shape[0] * x->shape[1];
    g.H = x->shape[2];
    g.W = x->shape[3];
    g.OH = y->shape[2];
    g.OW = y->shape[3];
    g.KH = node->iarg[0];
    g.KW = node->iarg[1];
    g.SH = node->iarg[2];
    g.SW = node->iarg[3];
    g.PH = node->iarg[4];
    g.PW = node->iarg[5];
    g.exclude_pad = (int)node->iarg[6];
    return g;
}

/* The clipped window of output (p, q): rows [h0, h1), columns [w0, w1);
 * *padded = the size of the window clipped to the padded input. */
static void pl_window(const pl_geom *g, int64_t p, int64_t q, int64_t *h0, int64_t *h1,
                      int64_t *w0, int64_t *w1, int64_t *padded) {
    int64_t hs = p * g->SH - g->PH, ws = q * g->SW - g->PW;
    int64_t he = hs + g->KH, we = ws + g->KW;
    if (he > g->H + g->PH) he = g->H + g->PH;
    if (we > g->W + g->PW) we = g->W + g->PW;
    *padded = (he - hs) * (we - ws);
    *h0 = hs < 0 ? 0 : hs;
    *w0 = ws < 0 ? 0 : ws;
    *h1 = he > g->H ? g->H : he;
    *w1 = we > g->W ? g->W : we;
}

/* ---- max pooling ------------------------------------------------------------------------- */

static void pl_max_plane(const pl_geom *g, const float *x, float *y, int32_t *idx) {
    for (int64_t p = 0; p < g->OH; p++)
        for (int64_t q = 0; q < g->OW; q++) {
            int64_t h0, h1, w0, w1, padded;
            pl_window(g, p, q, &h0, &h1, &w0, &w1, &padded);
            int64_t best = h0 * g->W + w0;
            float m = -INFINITY;
            for (int64_t h = h0; h < h1; h++)
                for (int64_t w = w0; w < w1; w++) {
                    const float v = x[h * g->W + w];
                    if (v > m || isnan(v)) {
                        m = v;
                        best = h * g->W + w;
                        if (isnan(v)) goto done;
                    }
                }
        done:
            y[p * g->OW + q] = m;
            idx[p * g->OW + q] = (int32_t)best;
        }
}

attn_status attn__max_pool2d_forward(attn_ctx *ctx, attn_node *node) {
    const pl_geom g = pl_geom_of(node);
    const float *x = attn_f32(node->in[0]);
    float *y = attn_f32(node->out);
    int32_t *idx = attn_i32(node->saved[0]);
    const int nt = attn__threads_for(ctx, (double)g.planes * (double)g.OH * (double)g.OW *
                                              (double)(g.KH * g.KW));
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t c = 0; c < g.planes; c++)
        pl_max_plane(&g, x + c * g.H * g.W, y + c * g.OH * g.OW, idx + c * g.OH * g.OW);
    return ATTN_OK;
}

/* The reference: the definition over the unclipped window, skipping the
 * padding (which is -inf and never the first maximum unless everything is). */
attn_status attn__max_pool2d_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const pl_geom g = pl_geom_of(node);
    const float *x = attn_f32(node->in[0]);
    float *y = attn_f32(node->out);
    int32_t *idx = attn_i32(node->saved[0]);
    for (int64_t c = 0; c < g.planes; c++)
        for (int64_t p = 0; p < g.OH; p++)
            for (int64_t q = 0; q < g.OW; q++) {
                double m = -INFINITY;
                int64_t best = -1, first = -1;
                int nan = 0;
                for (int64_t i = 0; i < g.KH && !nan; i++)
                    for (int64_t j = 0; j < g.KW && !nan; j++) {
                        const int64_t h = p * g.SH - g.PH + i, w = q * g.SW - g.PW + j;
                        if (h < 0 || h >= g.H || w < 0 || w >= g.W) continue;
                        const double v = x[c * g.H * g.W + h * g.W + w];
                        if (first < 0) first = h * g.W + w;
                        if (isnan(v)) {
                            m = v, best = h * g.W + w, nan = 1;
                        } else if (v > m) {
                            m = v, best = h * g.W + w;
                        }
                    }
                const int64_t o = (c * g.OH + p) * g.OW + q;
                y[o] = (float)m;
                idx[o] = (int32_t)(best >= 0 ? best : first);
            }
    return ATTN_OK;
}

attn_status attn__max_pool2d_backward(attn_ctx *ctx, attn_node *node) {
    if (!attn__needs_grad(node, 0)) return ATTN_OK;
    const pl_geom g = pl_geom_of(node);
    const int32_t *idx = attn_i32(node->saved[0]);
    const float *gy = node->out->grad;
    float *gx = node->in[0]->grad;
    const int nt = attn__threads_for(ctx, 4.0 * (double)g.planes * (double)(g.OH * g.OW));
    (void)nt;
    /* y[p,q] = x[idx[p,q]]  =>  dx[idx[p,q]] += dy[p,q] */
    ATTN__OMP_FOR(nt)
    for (int64_t c = 0; c < g.planes; c++) {
        float *gxc = gx + c * g.H * g.W;
        const float *gyc = gy + c * g.OH * g.OW;
        const int32_t *ic = idx + c * g.OH * g.OW;
        for (int64_t o = 0; o < g.OH * g.OW; o++) gxc[ic[o]] += gyc[o];
    }
    return ATTN_OK;
}

/* ---- average pooling --------------------------------------------------------------------- */

static int64_t pl_divisor(const pl_geom *g, int64_t h0, int64_t h1, int64_t w0, int64_t w1,
                          int64_t padded) {
    return g->exclude_pad ? (h1 - h0) * (w1 - w0) : padded;
}

attn_status attn__avg_pool2d_forward(attn_ctx *ctx, attn_node *node) {
    const pl_geom g = pl_geom_of(node);
    const float *x = attn_f32(node->in[0]);
    float *y = attn_f32(node->out);
    const int nt = attn__threads_for(ctx, (double)g.planes * (double)g.OH * (double)g.OW *
                                              (double)(g.KH * g.KW));
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t c = 0; c < g.planes; c++) {
        const float *xc = x + c * g.H * g.W;
        float *yc = y + c * g.OH * g.OW;
        for (int64_t p = 0; p < g.OH; p++)
            for (int64_t q = 0; q < g.OW; q++) {
                int64_t h0, h1, w0, w1, padded;
                pl_window(&g, p, q, &h0, &h1, &w0, &w1, &padded);
                float s = 0.0f;
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) s += xc[h * g.W + w];
                const int64_t d = pl_divisor(&g, h0, h1, w0, w1, padded);
                yc[p * g.OW + q] = d > 0 ? s / (float)d : 0.0f;
            }
    }
    return ATTN_OK;
}

attn_status attn__avg_pool2d_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const pl_geom g = pl_geom_of(node);
    const float *x = attn_f32(node->in[0]);
    float *y = attn_f32(node->out);
    for (int64_t c = 0; c < g.planes; c++)
        for (int64_t p = 0; p < g.OH; p++)
            for (int64_t q = 0; q < g.OW; q++) {
                double s = 0.0;
                int64_t inside = 0, padded = 0;
                for (int64_t i = 0; i < g.KH; i++)
                    for (int64_t j = 0; j < g.KW; j++) {
                        const int64_t h = p * g.SH - g.PH + i, w = q * g.SW - g.PW + j;
                        if (h < g.H + g.PH && w < g.W + g.PW) padded++;
                        if (h < 0 || h >= g.H || w < 0 || w >= g.W) continue;
                        s += x[c * g.H * g.W + h * g.W + w];
                        inside++;
                    }
                const int64_t d = g.exclude_pad ? inside : padded;
                y[(c * g.OH + p) * g.OW + q] = d > 0 ? (float)(s / (double)d) : 0.0f;
            }
    return ATTN_OK;
}

attn_status attn__avg_pool2d_backward(attn_ctx *ctx, attn_node *node) {
    if (!attn__needs_grad(node, 0)) return ATTN_OK;
    const pl_geom g = pl_geom_of(node);
    const float *gy = node->out->grad;
    float *gx = node->in[0]->grad;
    const int nt = attn__threads_for(ctx, (double)g.planes * (double)g.OH * (double)g.OW *
                                              (double)(g.KH * g.KW));
    (void)nt;
    /* y[p,q] = sum_{window} x / d  =>  dx[h,w] += dy[p,q] / d over the window */
    ATTN__OMP_FOR(nt)
    for (int64_t c = 0; c < g.planes; c++) {
        float *gxc = gx + c * g.H * g.W;
        const float *gyc = gy + c * g.OH * g.OW;
        for (int64_t p = 0; p < g.OH; p++)
            for (int64_t q = 0; q < g.OW; q++) {
                int64_t h0, h1, w0, w1, padded;
                pl_window(&g, p, q, &h0, &h1, &w0, &w1, &padded);
                const int64_t d = pl_divisor(&g, h0, h1, w0, w1, padded);
                if (d <= 0) continue;
                const float v = gyc[p * g.OW + q] / (float)d;
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) gxc[h * g.W + w] += v;
            }
    }
    return ATTN_OK;
}

/* ---- graph ops ----------------------------------------------------------------------------- */

static attn_node *pl_node(attn_ctx *ctx, attn_op op, const char *name, attn_tensor *x,
                          const attn_pool2d_opts *o, attn_tensor **y_out) {
    if (attn__any_null(ctx, name, 1, x)) return NULL;
    if (!o) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: options (the kernel size) are required", name);
        return NULL;
    }
    if (attn__check_dtype(ctx, name, "x", x, ATTN_F32)) return NULL;
    if (x->ndim != 4 || x->shape[0] < 1 || x->shape[1] < 1 || x->shape[2] < 1 || x->shape[3] < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x %s: expected [N, C, H, W], every dimension >= 1",
                   name, attn__shp(x));
        return NULL;
    }
    int64_t k[2], s[2], p[2], osz[2];
    for (int d = 0; d < 2; d++) {
        k[d] = o->kernel[d];
        s[d] = o->stride[d] ? o->stride[d] : k[d];
        p[d] = o->padding[d];
        if (k[d] < 1 || s[d] < 1 || p[d] < 0 || p[d] > k[d] / 2) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                       "%s: kernel %lld, stride %lld, padding %lld: expected kernel >= 1, stride "
                       ">= 0 (0: the kernel), 0 <= padding <= kernel / 2",
                       name, (long long)o->kernel[d], (long long)o->stride[d],
                       (long long)o->padding[d]);
            return NULL;
        }
        const int64_t span = x->shape[2 + d] - (k[d] - 2 * p[d]); /* 2 p <= k: no overflow */
        if (span < 0) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: x %s: kernel %lld is larger than the padded input",
                       name, attn__shp(x), (long long)k[d]);
            return NULL;
        }
        osz[d] = span / s[d] + 1;
    }
    if (!(x = attn__contig(ctx, x))) return NULL;
    const int64_t shape[4] = {x->shape[0], x->shape[1], osz[0], osz[1]};
    attn_tensor *y = attn__tensor(ctx, name, ATTN_F32, 4, shape);
    if (!y) return NULL;
    attn_node *node = attn__node(ctx, op, 1, &x, y);
    if (!node) return NULL;
    node->iarg[0] = k[0], node->iarg[1] = k[1];
    node->iarg[2] = s[0], node->iarg[3] = s[1];
    node->iarg[4] = p[0], node->iarg[5] = p[1];
    node->iarg[6] = o->exclude_pad != 0;
    *y_out = y;
    return node;
}

attn_tensor *attn_max_pool2d(attn_ctx *ctx, attn_tensor *x, const attn_pool2d_opts *opts,
                             attn_tensor **argmax) {
    attn_tensor *y;
    if (argmax) *argmax = NULL;
    attn_node *node = pl_node(ctx, ATTN_OP_MAX_POOL2D, "max_pool2d", x, opts, &y);
    if (!node) return NULL;
    if (!(node->saved[0] = attn__tensor(ctx, "max_pool2d", ATTN_I32, 4, y->shape))) return NULL;
    attn_tensor *r = attn__run(ctx, node);
    if (r && argmax) *argmax = node->saved[0];
    return r;
}

attn_tensor *attn_avg_pool2d(attn_ctx *ctx, attn_tensor *x, const attn_pool2d_opts *opts) {
    attn_tensor *y;
    attn_node *node = pl_node(ctx, ATTN_OP_AVG_POOL2D, "avg_pool2d", x, opts, &y);
    return node ? attn__run(ctx, node) : NULL;
}
