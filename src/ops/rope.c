/* rope.c: rotary position embeddings, graph op ROPE
 * (include/attn/positions.h, attn_rope; docs/positions.md).
 *
 * Shape contract:
 *   in[0] x          [B, H, T, D] f32, any strides (read in place)
 *   in[1] positions  i32 [T] or [B, T], contiguous (only when given)
 *   -> out [B, H, T, D] contiguous.
 * Attributes: iarg[0] pos0, iarg[1] r (rotary dims, even, 2 <= r <= D),
 * iarg[2] interleaved, iarg[3] position mode (0: p = pos0 + t, 1: positions
 * [T], 2: positions [B, T]); farg[0] theta (resolved, > 0).
 * Saved: saved[0] the table [P, r/2, 2] of (cos, sin) of every angle, P = T
 * (modes 0, 1) or B*T (mode 2), computed in double and rounded to float.
 *
 * With pair i = (a, b) and (c, s) = (cos, sin) of its angle:
 *   out[a] = x[a] c - x[b] s,   out[b] = x[b] c + x[a] s
 * The map is a rotation R(phi) of the plane (x[a], x[b]); its Jacobian is
 * R(phi) itself, so backward applies the transpose R(phi)^T = R(-phi):
 *   dx[a] += g[a] c + g[b] s,   dx[b] += g[b] c - g[a] s
 * and dims [r, D) pass through (dx += g).
 * Every row (b, h, t) is independent: the split over rows gives the same
 * bits for any thread count.
 */
#include <math.h>
#include <string.h>

#include "../core/internal.h"
#include "view_internal.h"
#include "attn/positions.h"

#define ROPE_POS_LIMIT ((int64_t)1 << 40)

/* ---- builder ---------------------------------------------------------------------- */

attn_tensor *attn_rope(attn_ctx *ctx, attn_tensor *x, const attn_rope_opts *opts) {
    static const char name[] = "rope";
    const attn_rope_opts def = {0, NULL, 0.0f, 0, 0};
    if (!opts) opts = &def;
    if (attn__any_null(ctx, name, 1, x)) return NULL;
    if (attn__check_dtype(ctx, name, "x", x, ATTN_F32)) return NULL;
    if (x->ndim != 4 || x->shape[0] < 1 || x->shape[1] < 1 || x->shape[2] < 1 || x->shape[3] < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x %s, expected [B, H, T, D] with every size >= 1",
                   name, attn__shp(x));
        return NULL;
    }
    const int64_t B = x->shape[0], T = x->shape[2], D = x->shape[3];
    const int64_t r = opts->rotary_dim ? opts->rotary_dim : D;
    if (r < 2 || r > D || r % 2) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: rotary_dim %lld (resolved from %lld) for x %s: expected an even number "
                   "in [2, D = %lld] (0 means D)",
                   name, (long long)r, (long long)opts->rotary_dim, attn__shp(x), (long long)D);
        return NULL;
    }
    const float theta = opts->theta == 0.0f ? 10000.0f : opts->theta;
    if (!(theta > 0.0f) || !isfinite(theta)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: theta %g, expected a finite value > 0 (0 means 10000)",
                   name, (double)opts->theta);
        return NULL;
    }
    int mode = 0;
    attn_tensor *pos = opts->positions;
    if (pos) {
        if (attn__check_dtype(ctx, name, "positions", pos, ATTN_I32)) return NULL;
        if (pos->ndim == 1 && pos->shape[0] == T)
            mode = 1;
        else if (pos->ndim == 2 && pos->shape[0] == B && pos->shape[1] == T)
            mode = 2;
        else {
            attn__fail(ctx, ATTN_ERR_SHAPE,
                       "%s: positions %s for x %s, expected [T] or [B, T] with B = %lld, T = %lld",
                       name, attn__shp(pos), attn__shp(x), (long long)B, (long long)T);
            return NULL;
        }
    } else if (opts->pos0 < -ROPE_POS_LIMIT || opts->pos0 > ROPE_POS_LIMIT - T) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: pos0 %lld with T %lld, expected positions within +-2^40", name,
                   (long long)opts->pos0, (long long)T);
        return NULL;
    }
    attn_tensor *in[2] = {x, NULL};
    if (pos && !(in[1] = attn__contig(ctx, pos))) return NULL;
    attn_tensor *out = attn__tensor(ctx, name, ATTN_F32, 4, x->shape);
    if (!out) return NULL;
    const int64_t tsh[3] = {mode == 2 ? B * T : T, r / 2, 2};
    attn_tensor *table = attn__tensor(ctx, name, ATTN_F32, 3, tsh);
    if (!table) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_ROPE, pos ? 2 : 1, in, out);
    if (!node) return NULL;
    node->iarg[0] = opts->pos0;
    node->iarg[1] = r;
    node->iarg[2] = opts->interleaved != 0;
    node->iarg[3] = mode;
    node->farg[0] = theta;
    node->saved[0] = table;
    return attn__run(ctx, node);
}

/* ---- kernels --------------------------------------------------------------------------- */

typedef struct rope_geom {
    int64_t B, H, T, D, r, half, pos0;
    int64_t st[4]; /* strides of x */
    int interleaved, mode;
    double theta;
    const float *x;
    const int32_t *pos;
} rope_geom;

static rope_geom rope_geometry(const attn_node *node) {
    const attn_tensor *x = node->in[0];
    rope_geom g;
    g.B = x->shape[0];
    g.H = x->shape[1];
    g.T = x->shape[2];
    g.D = x->shape[3];
    for (int d = 0; d < 4; d++) g.st[d] = x->stride[d];
    g.pos0 = node->iarg[0];
    g.r = node->iarg[1];
    g.half = g.r / 2;
    g.interleaved = (int)node->iarg[2];
    g.mode = (int)node->iarg[3];
    g.theta = (double)node->farg[0];
    g.x = attn_f32(x);
    g.pos = g.mode ? attn_i32(node->in[1]) : NULL;
    return g;
}

/* The position of row pi of the table (pi = t, or b*T + t in mode 2). */
static int64_t rope_position(const rope_geom *g, int64_t pi) {
    return g->mode == 0 ? g->pos0 + pi : (int64_t)g->pos[pi];
}

/* The angle of pair i at position p, in double: p * theta^(-2i/r). */
static double rope_angle(const rope_geom *g, int64_t p, int64_t i) {
    return (double)p * pow(g->theta, -2.0 * (double)i / (double)g->r);
}

/* Fills the saved table; the same code for the fast and the reference
 * forward, so both save the same bits. */
static void rope_fill_table(attn_ctx *ctx, const rope_geom *g, float *tab) {
    const int64_t P = g->mode == 2 ? g->B * g->T : g->T;
    const int nt = attn__threads_for(ctx, 40.0 * (double)P * (double)g->half);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t pi = 0; pi < P; pi++) {
        const int64_t p = rope_position(g, pi);
        float *row = tab + pi * g->half * 2;
        for (int64_t i = 0; i < g->half; i++) {
            const double a = rope_angle(g, p, i);
            row[2 * i] = (float)cos(a);
            row[2 * i + 1] = (float)sin(a);
        }
    }
}

/* Members (a, b) of pair i. */
static inline void rope_pair(const rope_geom *g, int64_t i, int64_t *a, int64_t *b) {
    if (g->interleaved) {
        *a = 2 * i;
        *b = 2 * i + 1;
    } else {
        *a = i;
        *b = i + g->half;
    }
}

/* Row r = (b, h, t) of the [B*H*T, D] output: its table row and input offset. */
static inline void rope_row(const rope_geom *g, int64_t row, int64_t *pi, int64_t *xoff) {
    const int64_t t = row % g->T, bh = row / g->T, h = bh % g->H, b = bh / g->H;
    *pi = g->mode == 2 ? b * g->T + t : t;
    *xoff = b * g->st[0] + h * g->st[1] + t * g->st[2];
}

attn_status attn__rope_forward(attn_ctx *ctx, attn_node *node) {
    const rope_geom g = rope_geometry(node);
    float *tab = attn_f32(node->saved[0]);
    float *out = attn_f32(node->out);
    rope_fill_table(ctx, &g, tab);
    const int64_t rows = g.B * g.H * g.T;
    const int nt = attn__threads_for(ctx, 4.0 * (double)rows * (double)g.D);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t row = 0; row < rows; row++) {
        int64_t pi, xo;
        rope_row(&g, row, &pi, &xo);
        const float *x = g.x + xo, *cs = tab + pi * g.half * 2;
        const int64_t s3 = g.st[3];
        float *o = out + row * g.D;
        if (g.interleaved) {
            for (int64_t i = 0; i < g.half; i++) {
                const float xa = x[2 * i * s3], xb = x[(2 * i + 1) * s3];
                const float c = cs[2 * i], s = cs[2 * i + 1];
                o[2 * i] = xa * c - xb * s;
                o[2 * i + 1] = xb * c + xa * s;
            }
        } else {
            for (int64_t i = 0; i < g.half; i++) {
                const float xa = x[i * s3], xb = x[(i + g.half) * s3];
                const float c = cs[2 * i], s = cs[2 * i + 1];
                o[i] = xa * c - xb * s;
                o[i + g.half] = xb * c + xa * s;
            }
        }
        for (int64_t d = g.r; d < g.D; d++) o[d] = x[d * s3];
    }
    return ATTN_OK;
}

/* The reference: every angle recomputed in double and the rotation done in
 * double, one thread; the table is filled as the fast forward fills it. */
attn_status attn__rope_ref(attn_ctx *ctx, attn_node *node) {
    const rope_geom g = rope_geometry(node);
    rope_fill_table(ctx, &g, attn_f32(node->saved[0]));
    float *out = attn_f32(node->out);
    const int64_t rows = g.B * g.H * g.T;
    for (int64_t row = 0; row < rows; row++) {
        int64_t pi, xo;
        rope_row(&g, row, &pi, &xo);
        const int64_t p = rope_position(&g, pi);
        for (int64_t d = 0; d < g.D; d++) out[row * g.D + d] = g.x[xo + d * g.st[3]];
        for (int64_t i = 0; i < g.half; i++) {
            int64_t a, b;
            rope_pair(&g, i, &a, &b);
            const double phi = rope_angle(&g, p, i);
            const double xa = g.x[xo + a * g.st[3]], xb = g.x[xo + b * g.st[3]];
            out[row * g.D + a] = (float)(xa * cos(phi) - xb * sin(phi));
            out[row * g.D + b] = (float)(xb * cos(phi) + xa * sin(phi));
        }
    }
    return ATTN_OK;
}

attn_status attn__rope_backward(attn_ctx *ctx, attn_node *node) {
    if (!attn__needs_grad(node, 0)) return ATTN_OK;
    const rope_geom g = rope_geometry(node);
    const float *tab = attn_f32(node->saved[0]);
    const float *gy = node->out->grad;
    float *gx = node->in[0]->grad; /* logical [B, H, T, D], contiguous */
    const int64_t rows = g.B * g.H * g.T;
    const int nt = attn__threads_for(ctx, 4.0 * (double)rows * (double)g.D);
    (void)nt;
    ATTN__OMP_FOR(nt)
    for (int64_t row = 0; row < rows; row++) {
        int64_t pi, xo;
        rope_row(&g, row, &pi, &xo);
        const float *go = gy + row * g.D, *cs = tab + pi * g.half * 2;
        float *dx = gx + row * g.D;
        /* out = R(phi) x per pair  =>  dx = R(phi)^T g = R(-phi) g */
        for (int64_t i = 0; i < g.half; i++) {
            int64_t a, b;
            rope_pair(&g, i, &a, &b);
            const float c = cs[2 * i], s = cs[2 * i + 1];
            const float ga = go[a], gb = go[b];
            dx[a] += ga * c + gb * s;
            dx[b] += gb * c - ga * s;
        }
        for (int64_t d = g.r; d < g.D; d++) dx[d] += go[d]; /* out[d] = x[d] */
    }
    return ATTN_OK;
}
