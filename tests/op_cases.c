/* op_cases.c: one case builder and one error-path check per op of the table
 * (see op_cases.h). Builders read the fixture conventions written by
 * tools/make_fixtures.py: inputs "c<k>.<name>", attributes
 * "c<k>.attr.<name>" (0-d or 1-d, i32 or f32), optional strided views
 * "c<k>.view.<name>".
 */
#include "op_cases.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../src/core/op_table.h"
#include "test.h"

/* ---- inputs and attributes ------------------------------------------------ */

static attn_tensor *input(op_case *c, const char *name, int required) {
    const atfx_tensor *t = atfx_findf(c->fx, "c%d.%s", c->k, name);
    if (!t) {
        if (required && !c->err[0])
            snprintf(c->err, sizeof c->err, "case %d: input 'c%d.%s' missing", c->k, c->k, name);
        return NULL;
    }
    if (t->ndim > ATTN_MAX_DIMS || c->n_inputs == OPC_MAX_INPUTS) {
        snprintf(c->err, sizeof c->err, "case %d: input '%s' has %d dims (max %d) or too many inputs",
                 c->k, name, t->ndim, ATTN_MAX_DIMS);
        return NULL;
    }
    int idx = c->n_inputs++;
    snprintf(c->names[idx], sizeof c->names[idx], "%s", name);
    c->leaves[idx] = NULL;
    attn_tensor *x = attn_tensor_from(c->ctx, t->dtype, t->ndim, t->shape, t->data);
    if (!x) return NULL; /* the context holds the error (e.g. arena full) */
    if (c->pert_input == idx && t->dtype == ATTN_F32 && c->pert_elem >= 0 &&
        c->pert_elem < t->numel)
        attn_f32(x)[c->pert_elem] = c->pert_value;
    x->requires_grad = t->dtype == ATTN_F32;
    c->leaves[idx] = x;
    const atfx_tensor *v = atfx_findf(c->fx, "c%d.view.%s", c->k, name);
    if (v) {
        int perm[ATTN_MAX_DIMS];
        if (v->dtype != ATTN_I32 || v->numel != t->ndim) {
            snprintf(c->err, sizeof c->err, "case %d: view.%s is not an i32 permutation of %d dims",
                     c->k, name, t->ndim);
            return NULL;
        }
        for (int i = 0; i < t->ndim; i++) perm[i] = atfx_i32(v)[i];
        x = attn_permute(c->ctx, x, perm);
    }
    c->arena_after_inputs = attn_ctx_arena_used(c->ctx);
    return x;
}

attn_tensor *opc_input(op_case *c, const char *name) { return input(c, name, 1); }
attn_tensor *opc_input_opt(op_case *c, const char *name) { return input(c, name, 0); }

static const atfx_tensor *attr(op_case *c, const char *name, int required) {
    const atfx_tensor *t = atfx_findf(c->fx, "c%d.attr.%s", c->k, name);
    if (!t && required && !c->err[0])
        snprintf(c->err, sizeof c->err, "case %d: attribute 'c%d.attr.%s' missing", c->k, c->k,
                 name);
    if (t && t->numel < 1) {
        if (!c->err[0]) snprintf(c->err, sizeof c->err, "case %d: attribute %s is empty", c->k, name);
        return NULL;
    }
    return t;
}

static double attr_value(const atfx_tensor *t, int64_t i) {
    return t->dtype == ATTN_I32 ? (double)atfx_i32(t)[i] : (double)atfx_f32(t)[i];
}

static int attr_int_or(op_case *c, const char *name, int def) {
    const atfx_tensor *t = attr(c, name, 0);
    return t ? (int)attr_value(t, 0) : def;
}

static int attr_int(op_case *c, const char *name) {
    const atfx_tensor *t = attr(c, name, 1);
    return t ? (int)attr_value(t, 0) : 0;
}

static float attr_float(op_case *c, const char *name) {
    const atfx_tensor *t = attr(c, name, 1);
    return t ? (float)attr_value(t, 0) : 0.0f;
}

/* An integer vector attribute (may be empty, e.g. the shape of a scalar);
 * returns its length, or -1 (c->err set) if absent or longer than max. */
static int attr_ints(op_case *c, const char *name, int64_t *vals, int max) {
    const atfx_tensor *t = atfx_findf(c->fx, "c%d.attr.%s", c->k, name);
    if (!t || t->numel > max) {
        if (!c->err[0])
            snprintf(c->err, sizeof c->err, "case %d: attribute %s missing or longer than %d", c->k,
                     name, max);
        return -1;
    }
    for (int64_t i = 0; i < t->numel; i++) vals[i] = (int64_t)attr_value(t, i);
    return (int)t->numel;
}

/* A u64 stored as two i32 words, low word first. */
static uint64_t attr_u64(op_case *c, const char *name) {
    const atfx_tensor *t = attr(c, name, 1);
    if (!t) return 0;
    if (t->dtype != ATTN_I32 || t->numel != 2) {
        if (!c->err[0])
            snprintf(c->err, sizeof c->err, "case %d: attribute %s is not two i32 words", c->k, name);
        return 0;
    }
    return (uint64_t)(uint32_t)atfx_i32(t)[0] | (uint64_t)(uint32_t)atfx_i32(t)[1] << 32;
}

#define FIXTURE_OK(c) ((c)->err[0] ? -1 : 0)

/* ---- builders ------------------------------------------------------------------ */

/* view: attr.kind 0 reshape (shape), 1 permute (perm), 2 transpose (dim0,
 * dim1), 3 slice (axis, start, len), 4 split (axis, sizes, part). */
static int build_view(op_case *c) {
    attn_tensor *x = opc_input(c, "x");
    int kind = attr_int(c, "kind");
    int64_t v[ATTN_MAX_DIMS + 4];
    int n;
    if (c->err[0]) return -1;
    switch (kind) {
    case 0:
        n = attr_ints(c, "shape", v, ATTN_MAX_DIMS);
        if (n < 0) return -1;
        c->out = attn_reshape(c->ctx, x, n, v);
        break;
    case 1: {
        int perm[ATTN_MAX_DIMS];
        n = attr_ints(c, "perm", v, ATTN_MAX_DIMS);
        if (n < 0) return -1;
        for (int i = 0; i < n; i++) perm[i] = (int)v[i];
        c->out = attn_permute(c->ctx, x, perm);
        break;
    }
    case 2: {
        int d0 = attr_int(c, "dim0"), d1 = attr_int(c, "dim1");
        if (c->err[0]) return -1;
        c->out = attn_transpose(c->ctx, x, d0, d1);
        break;
    }
    case 3: {
        int axis = attr_int(c, "axis"), start = attr_int(c, "start"), len = attr_int(c, "len");
        if (c->err[0]) return -1;
        c->out = attn_slice(c->ctx, x, axis, start, len);
        break;
    }
    case 4: {
        attn_tensor *outs[ATTN_MAX_DIMS + 4];
        int axis = attr_int(c, "axis"), part = attr_int(c, "part");
        n = attr_ints(c, "sizes", v, ATTN_MAX_DIMS + 4);
        if (n < 0 || c->err[0]) return -1;
        if (part < 0 || part >= n) {
            snprintf(c->err, sizeof c->err, "case %d: split part %d of %d", c->k, part, n);
            return -1;
        }
        c->out = attn_split(c->ctx, x, axis, n, v, outs) == 0 ? outs[part] : NULL;
        break;
    }
    default:
        snprintf(c->err, sizeof c->err, "case %d: unknown view kind %d", c->k, kind);
        return -1;
    }
    return FIXTURE_OK(c);
}

/* contiguous of a strided view: attr.perm (a permutation) or attr.slice
 * (axis, start, len). */
static int build_contiguous(op_case *c) {
    attn_tensor *x = opc_input(c, "x");
    int64_t v[ATTN_MAX_DIMS];
    if (c->err[0]) return -1;
    attn_tensor *s;
    if (atfx_findf(c->fx, "c%d.attr.perm", c->k)) {
        int perm[ATTN_MAX_DIMS], n = attr_ints(c, "perm", v, ATTN_MAX_DIMS);
        if (n < 0) return -1;
        for (int i = 0; i < n; i++) perm[i] = (int)v[i];
        s = attn_permute(c->ctx, x, perm);
    } else {
        if (attr_ints(c, "slice", v, 3) != 3) return -1;
        s = attn_slice(c->ctx, x, (int)v[0], v[1], v[2]);
    }
    c->out = attn_contiguous(c->ctx, s);
    return 0;
}

static int build_concat(op_case *c) {
    attn_tensor *xs[OPC_MAX_INPUTS];
    int n = 0;
    char name[16];
    for (;;) {
        snprintf(name, sizeof name, "x%d", n);
        if (!atfx_findf(c->fx, "c%d.%s", c->k, name) || n == OPC_MAX_INPUTS) break;
        xs[n++] = opc_input(c, name);
    }
    int axis = attr_int(c, "axis");
    if (n == 0 && !c->err[0]) snprintf(c->err, sizeof c->err, "case %d: no input x0", c->k);
    if (c->err[0]) return -1;
    c->out = attn_concat(c->ctx, xs, n, axis);
    return 0;
}

static int build_matmul(op_case *c) {
    attn_tensor *a = opc_input(c, "a"), *b = opc_input(c, "b");
    if (c->err[0]) return -1;
    c->out = attn_matmul(c->ctx, a, b);
    return 0;
}

static int build_bmm(op_case *c) {
    attn_tensor *a = opc_input(c, "a"), *b = opc_input(c, "b");
    int ta = attr_int(c, "trans_a"), tb = attr_int(c, "trans_b");
    if (c->err[0]) return -1;
    c->out = attn_bmm(c->ctx, a, b, ta, tb);
    return 0;
}

static int build_linear(op_case *c) {
    attn_tensor *x = opc_input(c, "x"), *w = opc_input(c, "w"), *b = opc_input_opt(c, "b");
    if (c->err[0]) return -1;
    c->out = attn_linear(c->ctx, x, w, b);
    return 0;
}

static int build_linear_gelu(op_case *c) {
    attn_tensor *x = opc_input(c, "x"), *w = opc_input(c, "w"), *b = opc_input_opt(c, "b");
    if (c->err[0]) return -1;
    c->out = attn_linear_gelu(c->ctx, x, w, b);
    return 0;
}

#define BINARY_BUILDER(name)                                          \
    static int build_##name(op_case *c) {                             \
        attn_tensor *a = opc_input(c, "a"), *b = opc_input(c, "b");   \
        if (c->err[0]) return -1;                                     \
        c->out = attn_##name(c->ctx, a, b);                           \
        return 0;                                                     \
    }
BINARY_BUILDER(add)
BINARY_BUILDER(sub)
BINARY_BUILDER(mul)
BINARY_BUILDER(div)

static int build_scale(op_case *c) {
    attn_tensor *x = opc_input(c, "x");
    float s = attr_float(c, "s");
    if (c->err[0]) return -1;
    c->out = attn_scale(c->ctx, x, s);
    return 0;
}

static int build_bias_add(op_case *c) {
    attn_tensor *x = opc_input(c, "x"), *b = opc_input(c, "b");
    if (c->err[0]) return -1;
    c->out = attn_bias_add(c->ctx, x, b);
    return 0;
}

static int build_sum(op_case *c) {
    attn_tensor *x = opc_input(c, "x");
    int axis = attr_int(c, "axis"), keepdim = attr_int(c, "keepdim");
    if (c->err[0]) return -1;
    c->out = attn_sum(c->ctx, x, axis, keepdim);
    return 0;
}

static int build_mean(op_case *c) {
    attn_tensor *x = opc_input(c, "x");
    int axis = attr_int(c, "axis"), keepdim = attr_int(c, "keepdim");
    if (c->err[0]) return -1;
    c->out = attn_mean(c->ctx, x, axis, keepdim);
    return 0;
}

#define UNARY_BUILDER(name)                                  \
    static int build_##name(op_case *c) {                    \
        attn_tensor *x = opc_input(c, "x");                  \
        if (c->err[0]) return -1;                            \
        c->out = attn_##name(c->ctx, x);                     \
        return 0;                                            \
    }
UNARY_BUILDER(exp)
UNARY_BUILDER(log)
UNARY_BUILDER(tanh)
UNARY_BUILDER(sigmoid)
UNARY_BUILDER(relu)

static int build_gelu(op_case *c) {
    attn_tensor *x = opc_input(c, "x");
    int approx = attr_int(c, "tanh_approx");
    if (c->err[0]) return -1;
    c->out = attn_gelu(c->ctx, x, approx);
    return 0;
}

static int build_softmax(op_case *c) {
    attn_tensor *x = opc_input(c, "x"), *mask = opc_input_opt(c, "mask");
    if (c->err[0]) return -1;
    c->out = attn_softmax(c->ctx, x, mask);
    return 0;
}

static int build_log_softmax(op_case *c) {
    attn_tensor *x = opc_input(c, "x"), *mask = opc_input_opt(c, "mask");
    if (c->err[0]) return -1;
    c->out = attn_log_softmax(c->ctx, x, mask);
    return 0;
}

static int build_cross_entropy(op_case *c) {
    attn_tensor *logits = opc_input(c, "logits"), *targets = opc_input(c, "targets");
    int ii = attr_int(c, "ignore_index");
    float ls = attr_float(c, "label_smoothing");
    if (c->err[0]) return -1;
    c->out = attn_cross_entropy(c->ctx, logits, targets, ii, ls);
    return 0;
}

static int build_layernorm(op_case *c) {
    attn_tensor *x = opc_input(c, "x"), *g = opc_input_opt(c, "gamma"),
                *b = opc_input_opt(c, "beta");
    float eps = attr_float(c, "eps");
    if (c->err[0]) return -1;
    c->out = attn_layernorm(c->ctx, x, g, b, eps);
    return 0;
}

static int build_embedding(op_case *c) {
    attn_tensor *w = opc_input(c, "weight"), *ids = opc_input(c, "ids");
    if (c->err[0]) return -1;
    c->out = attn_embedding(c->ctx, w, ids);
    return 0;
}

/* The RNG stream is set from the fixture before the call, so every build of
 * the case (fast, reference, each finite-difference probe) draws the same
 * mask. */
static int build_dropout(op_case *c) {
    attn_tensor *x = opc_input(c, "x");
    float p = attr_float(c, "p");
    uint64_t seed = attr_u64(c, "seed"), offset = attr_u64(c, "offset");
    int training = attr_int_or(c, "training", 1);
    if (c->err[0]) return -1;
    attn_ctx_set_rng(c->ctx, seed, offset);
    attn_ctx_set_training(c->ctx, training);
    c->out = attn_dropout(c->ctx, x, p);
    attn_ctx_set_training(c->ctx, 1);
    return 0;
}

/* gru_cell / lstm_cell: b_hh and the I32 row mask are optional. The LSTM
 * case's output is concat(h', c') along rows, [2B, H] (the fixture's out). */
static int build_gru_cell(op_case *c) {
    attn_tensor *gx = opc_input(c, "gx"), *h = opc_input(c, "h"), *w = opc_input(c, "w_hh"),
                *b = opc_input_opt(c, "b_hh"), *m = opc_input_opt(c, "mask");
    if (c->err[0]) return -1;
    c->out = attn_gru_cell(c->ctx, gx, h, w, b, m);
    return 0;
}

static int build_lstm_cell(op_case *c) {
    attn_tensor *gx = opc_input(c, "gx"), *h = opc_input(c, "h"), *cc = opc_input(c, "c"),
                *w = opc_input(c, "w_hh"), *b = opc_input_opt(c, "b_hh"),
                *m = opc_input_opt(c, "mask");
    if (c->err[0]) return -1;
    attn_tensor *hc[2] = {NULL, NULL};
    hc[0] = attn_lstm_cell(c->ctx, gx, h, cc, w, b, m, &hc[1]);
    c->out = hc[0] ? attn_concat(c->ctx, hc, 2, 0) : NULL;
    return 0;
}

/* additive_score (include/attn/rnn_attention.h): wq [B,T,A], wk [B,S,A], v. */
static int build_additive_score(op_case *c) {
    attn_tensor *wq = opc_input(c, "wq"), *wk = opc_input(c, "wk"), *v = opc_input(c, "v");
    if (c->err[0]) return -1;
    c->out = attn_additive_score(c->ctx, wq, wk, v);
    return 0;
}

/* sdpa (include/attn/sdpa.h): q, k, v, optional bias and key_lengths (i32);
 * attributes scale, causal, window, dropout (all optional, default 0), and
 * for dropout seed, offset (u64 words) and training (default 1). The RNG
 * stream is set before every build, as for dropout. */
static int build_sdpa(op_case *c) {
    attn_tensor *q = opc_input(c, "q"), *k = opc_input(c, "k"), *v = opc_input(c, "v");
    attn_tensor *bias = opc_input_opt(c, "bias"), *kl = opc_input_opt(c, "key_lengths");
    attn_sdpa_opts o = {0};
    const atfx_tensor *sc = attr(c, "scale", 0), *dp = attr(c, "dropout", 0);
    o.scale = sc ? (float)attr_value(sc, 0) : 0.0f;
    o.dropout = dp ? (float)attr_value(dp, 0) : 0.0f;
    o.causal = attr_int_or(c, "causal", 0);
    o.window = attr_int_or(c, "window", 0);
    o.bias = bias;
    o.key_lengths = kl;
    int training = attr_int_or(c, "training", 1);
    uint64_t seed = 0, offset = 0;
    if (o.dropout > 0.0f) {
        seed = attr_u64(c, "seed");
        offset = attr_u64(c, "offset");
    }
    if (c->err[0]) return -1;
    attn_ctx_set_rng(c->ctx, seed, offset);
    attn_ctx_set_training(c->ctx, training);
    c->out = attn_sdpa(c->ctx, q, k, v, &o, NULL);
    attn_ctx_set_training(c->ctx, 1);
    return 0;
}

/* flash_sdpa (include/attn/sdpa.h): the inputs and attributes of sdpa. */
static int build_flash_sdpa(op_case *c) {
    attn_tensor *q = opc_input(c, "q"), *k = opc_input(c, "k"), *v = opc_input(c, "v");
    attn_tensor *bias = opc_input_opt(c, "bias"), *kl = opc_input_opt(c, "key_lengths");
    attn_sdpa_opts o = {0};
    const atfx_tensor *sc = attr(c, "scale", 0), *dp = attr(c, "dropout", 0);
    o.scale = sc ? (float)attr_value(sc, 0) : 0.0f;
    o.dropout = dp ? (float)attr_value(dp, 0) : 0.0f;
    o.causal = attr_int_or(c, "causal", 0);
    o.window = attr_int_or(c, "window", 0);
    o.bias = bias;
    o.key_lengths = kl;
    int training = attr_int_or(c, "training", 1);
    uint64_t seed = 0, offset = 0;
    if (o.dropout > 0.0f) {
        seed = attr_u64(c, "seed");
        offset = attr_u64(c, "offset");
    }
    if (c->err[0]) return -1;
    attn_ctx_set_rng(c->ctx, seed, offset);
    attn_ctx_set_training(c->ctx, training);
    c->out = attn_flash_sdpa(c->ctx, q, k, v, &o, NULL);
    attn_ctx_set_training(c->ctx, 1);
    return 0;
}

/* rope (include/attn/positions.h): x [B,H,T,D], optional i32 positions [T]
 * or [B,T]; attr pos0, theta, rotary_dim, interleaved. */
static int build_rope(op_case *c) {
    attn_tensor *x = opc_input(c, "x"), *pos = opc_input_opt(c, "positions");
    attn_rope_opts o = {0, pos, 0.0f, 0, 0};
    o.pos0 = attr_int_or(c, "pos0", 0);
    o.theta = attr_float(c, "theta");
    o.rotary_dim = attr_int_or(c, "rotary_dim", 0);
    o.interleaved = attr_int_or(c, "interleaved", 0);
    if (c->err[0]) return -1;
    c->out = attn_rope(c->ctx, x, &o);
    return 0;
}

/* rel_logits: q [B,H,T,D], rel_k [2K+1,D]; attr S, offset. */
static int build_rel_logits(op_case *c) {
    attn_tensor *q = opc_input(c, "q"), *rk = opc_input(c, "rel_k");
    int S = attr_int(c, "S"), off = attr_int(c, "offset");
    if (c->err[0]) return -1;
    c->out = attn_rel_logits(c->ctx, q, rk, S, off);
    return 0;
}

/* rel_values: p [B,H,T,S], rel_v [2K+1,Dv]; attr offset. */
static int build_rel_values(op_case *c) {
    attn_tensor *p = opc_input(c, "p"), *rv = opc_input(c, "rel_v");
    int off = attr_int(c, "offset");
    if (c->err[0]) return -1;
    c->out = attn_rel_values(c->ctx, p, rv, off);
    return 0;
}

/* ---- convolutions (include/attn/conv.h) ------------------------------------------------ */

/* A pair attribute (height, width), default `def` for both when absent. */
static void attr_pair(op_case *c, const char *name, int64_t def, int64_t *v) {
    v[0] = v[1] = def;
    const atfx_tensor *t = attr(c, name, 0);
    if (!t) return;
    v[0] = (int64_t)attr_value(t, 0);
    v[1] = (int64_t)attr_value(t, t->numel > 1 ? 1 : 0);
}

/* conv2d / conv_transpose2d: x, w, optional b; attributes stride, padding,
 * dilation, output_padding (pairs), groups. */
static attn_conv2d_opts conv2d_opts(op_case *c) {
    attn_conv2d_opts o;
    memset(&o, 0, sizeof o);
    attr_pair(c, "stride", 1, o.stride);
    attr_pair(c, "padding", 0, o.padding);
    attr_pair(c, "dilation", 1, o.dilation);
    attr_pair(c, "output_padding", 0, o.output_padding);
    o.groups = attr_int_or(c, "groups", 1);
    return o;
}

static int build_conv2d(op_case *c) {
    attn_tensor *x = opc_input(c, "x"), *w = opc_input(c, "w"), *b = opc_input_opt(c, "b");
    attn_conv2d_opts o = conv2d_opts(c);
    if (c->err[0]) return -1;
    c->out = attn_conv2d(c->ctx, x, w, b, &o);
    return 0;
}

/* conv1d: attributes stride, padding, dilation, groups, causal (scalars). */
static int build_conv1d(op_case *c) {
    attn_tensor *x = opc_input(c, "x"), *w = opc_input(c, "w"), *b = opc_input_opt(c, "b");
    attn_conv1d_opts o;
    memset(&o, 0, sizeof o);
    o.stride = attr_int_or(c, "stride", 1);
    o.padding = attr_int_or(c, "padding", 0);
    o.dilation = attr_int_or(c, "dilation", 1);
    o.groups = attr_int_or(c, "groups", 1);
    o.causal = attr_int_or(c, "causal", 0);
    if (c->err[0]) return -1;
    c->out = attn_conv1d(c->ctx, x, w, b, &o);
    return 0;
}

static int build_conv_transpose2d(op_case *c) {
    attn_tensor *x = opc_input(c, "x"), *w = opc_input(c, "w"), *b = opc_input_opt(c, "b");
    attn_conv2d_opts o = conv2d_opts(c);
    if (c->err[0]) return -1;
    c->out = attn_conv_transpose2d(c->ctx, x, w, b, &o);
    return 0;
}

/* max_pool2d / avg_pool2d: x; attributes kernel, stride (0: the kernel),
 * padding (pairs), exclude_pad (avg only, default 0). */
static attn_pool2d_opts pool2d_opts(op_case *c) {
    attn_pool2d_opts o;
    memset(&o, 0, sizeof o);
    attr_pair(c, "kernel", 1, o.kernel);
    attr_pair(c, "stride", 0, o.stride);
    attr_pair(c, "padding", 0, o.padding);
    o.exclude_pad = attr_int_or(c, "exclude_pad", 0);
    return o;
}

static int build_max_pool2d(op_case *c) {
    attn_tensor *x = opc_input(c, "x");
    attn_pool2d_opts o = pool2d_opts(c);
    if (c->err[0]) return -1;
    c->out = attn_max_pool2d(c->ctx, x, &o, NULL);
    return 0;
}

static int build_avg_pool2d(op_case *c) {
    attn_tensor *x = opc_input(c, "x");
    attn_pool2d_opts o = pool2d_opts(c);
    if (c->err[0]) return -1;
    c->out = attn_avg_pool2d(c->ctx, x, &o);
    return 0;
}

/* A tensor made from fixture tensor "c<k>.<name>" (e.g. "attr.running_mean":
 * not an input, so no gradient and no finite-difference probe), or NULL when
 * absent. Builders make these before their inputs, so that the arena use
 * after the inputs counts them (arena exhaustion test). */
static attn_tensor *fixture_tensor(op_case *c, const char *name) {
    const atfx_tensor *t = atfx_findf(c->fx, "c%d.%s", c->k, name);
    if (!t) return NULL;
    if (t->dtype != ATTN_F32) {
        if (!c->err[0]) snprintf(c->err, sizeof c->err, "case %d: %s is not f32", c->k, name);
        return NULL;
    }
    return attn_tensor_from(c->ctx, ATTN_F32, t->ndim, t->shape, t->data);
}

/* batchnorm: x, optional gamma and beta; attributes eps, momentum,
 * training (default 1), optional running_mean / running_var (caller-owned
 * buffers, updated in place; test_conv.c checks their new values). */
static int build_batchnorm(op_case *c) {
    attn_tensor *rm = fixture_tensor(c, "attr.running_mean"),
                *rv = fixture_tensor(c, "attr.running_var");
    attn_tensor *x = opc_input(c, "x"), *g = opc_input_opt(c, "gamma"),
                *b = opc_input_opt(c, "beta");
    float eps = attr_float(c, "eps"), mom = attr_float(c, "momentum");
    int training = attr_int_or(c, "training", 1);
    if (c->err[0]) return -1;
    attn_ctx_set_training(c->ctx, training);
    c->out = attn_batchnorm(c->ctx, x, g, b, rm, rv, mom, eps);
    attn_ctx_set_training(c->ctx, 1);
    return 0;
}

/* spectral_norm: w; attributes u, v (caller-owned vectors updated in place
 * in training mode; test_conv.c checks their new values), eps, training,
 * dim (default 0).
 * Finite differences: the gradient treats the iteration's u and v as
 * constants (as torch), while a probe of w in training mode would also move
 * them; so a perturbed build (c->pert_input >= 0) of a training case runs in
 * evaluation mode on torch's iterated vectors (c<k>.u_after, v_after): the
 * very function whose derivative the backward computes. */
static int build_spectral_norm(op_case *c) {
    int training = attr_int_or(c, "training", 1);
    const int probe = training && c->pert_input >= 0;
    attn_tensor *u = fixture_tensor(c, probe ? "u_after" : "attr.u"),
                *v = fixture_tensor(c, probe ? "v_after" : "attr.v");
    attn_tensor *w = opc_input(c, "w");
    float eps = attr_float(c, "eps");
    int dim = attr_int_or(c, "dim", 0);
    if (c->err[0]) return -1;
    attn_ctx_set_training(c->ctx, training && !probe);
    c->out = attn_spectral_norm(c->ctx, w, u, v, dim, eps);
    attn_ctx_set_training(c->ctx, 1);
    return 0;
}

/* txl_attention: q, k, v, rk, u, vb; optional span (with attributes ramp,
 * span_eps) and pers_k, pers_v; attribute scale (0: 1/sqrt(D)). */
static int build_txl_attention(op_case *c) {
    attn_tensor *q = opc_input(c, "q"), *k = opc_input(c, "k"), *v = opc_input(c, "v");
    attn_tensor *rk = opc_input(c, "rk"), *u = opc_input(c, "u"), *vb = opc_input(c, "vb");
    attn_txl_attention_opts o;
    memset(&o, 0, sizeof o);
    o.span = opc_input_opt(c, "span");
    o.pers_k = opc_input_opt(c, "pers_k");
    o.pers_v = opc_input_opt(c, "pers_v");
    o.scale = attr_float(c, "scale");
    if (o.span) {
        o.ramp = attr_float(c, "ramp");
        o.span_eps = attr_float(c, "span_eps");
    }
    if (c->err[0]) return -1;
    c->out = attn_txl_attention(c->ctx, q, k, v, rk, u, vb, &o, NULL);
    return 0;
}

/* lsh_attention: qk, v; attributes n_hashes, n_buckets, chunk_len, causal and
 * the fixed rotations "c<k>.rot" [H, D, R, NB/2] (a tensor of the case, not an
 * input: the hashing has no gradient). */
static int build_lsh_attention(op_case *c) {
    attn_tensor *qk = opc_input(c, "qk"), *v = opc_input(c, "v");
    attn_lsh_opts o;
    memset(&o, 0, sizeof o);
    o.n_hashes = attr_int(c, "n_hashes");
    o.n_buckets = attr_int(c, "n_buckets");
    o.chunk_len = attr_int(c, "chunk_len");
    o.causal = attr_int(c, "causal");
    const atfx_tensor *rot = atfx_findf(c->fx, "c%d.rot", c->k);
    if (!rot) snprintf(c->err, sizeof c->err, "case %d has no c%d.rot", c->k, c->k);
    if (c->err[0]) return -1;
    o.rotations = atfx_f32(rot);
    c->out = attn_lsh_attention(c->ctx, qk, v, &o);
    return 0;
}

/* graph_attention: q, k, v; the graph as case tensors "c<k>.row_ptr" [N+1]
 * and "c<k>.col" [E] (i32, no gradient); attribute scale (0: 1/sqrt(D)). */
static int build_graph_attention(op_case *c) {
    attn_tensor *q = opc_input(c, "q"), *k = opc_input(c, "k"), *v = opc_input(c, "v");
    const atfx_tensor *rp = atfx_findf(c->fx, "c%d.row_ptr", c->k);
    const atfx_tensor *col = atfx_findf(c->fx, "c%d.col", c->k);
    if (!rp || !col || rp->dtype != ATTN_I32 || col->dtype != ATTN_I32 || rp->numel < 2)
        snprintf(c->err, sizeof c->err, "case %d lacks i32 c%d.row_ptr / c%d.col", c->k, c->k, c->k);
    attn_graph_attention_opts o = {attr_float(c, "scale")};
    if (c->err[0]) return -1;
    int64_t rows[512];
    if (rp->numel > 512) {
        snprintf(c->err, sizeof c->err, "case %d: more than 511 nodes", c->k);
        return -1;
    }
    for (int64_t i = 0; i < rp->numel; i++) rows[i] = atfx_i32(rp)[i];
    const attn_graph g = {rp->numel - 1, rows, atfx_i32(col)};
    c->out = attn_graph_attention(c->ctx, q, k, v, &g, &o, NULL);
    return 0;
}

/* lstmn (include/attn/lstmn.h): gx, ax, w_hh, w_mem, v; h0, c0, w_sum and
 * the I32 lengths are optional. */
static int build_lstmn(op_case *c) {
    attn_tensor *gx = opc_input(c, "gx"), *ax = opc_input(c, "ax"), *h0 = opc_input_opt(c, "h0"),
                *c0 = opc_input_opt(c, "c0"), *whh = opc_input(c, "w_hh"),
                *wm = opc_input(c, "w_mem"), *v = opc_input(c, "v"),
                *ws = opc_input_opt(c, "w_sum"), *len = opc_input_opt(c, "lengths");
    c->out = attn_lstmn(c->ctx, gx, ax, h0, c0, whh, wm, v, ws, len);
    return 0;
}

/* ---- error paths ------------------------------------------------------------- */

static attn_tensor *mk(attn_ctx *ctx, attn_dtype dt, int ndim, const int64_t *shape) {
    return attn_tensor_new(ctx, dt, ndim, shape);
}
#define NDIM_(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define F32(ctx, ...) mk((ctx), ATTN_F32, NDIM_(__VA_ARGS__), (int64_t[]){__VA_ARGS__})
#define I32(ctx, ...) mk((ctx), ATTN_I32, NDIM_(__VA_ARGS__), (int64_t[]){__VA_ARGS__})

/* Checks that `res` is NULL, that the context's status is `want` and that its
 * message (and attn_last_error) contains `needle`; then resets the context.
 * `clean` says the context had no error before the call (inputs built). */
static void expect_fail(attn_ctx *ctx, const char *expr, int clean, const void *res,
                        attn_status want, const char *needle, const char *file, int line) {
    if (!clean)
        test__fail(file, line, "%s: setting up the inputs failed: %s", expr, attn_ctx_error(ctx));
    else if (res)
        test__fail(file, line, "%s: returned a tensor, expected NULL with status '%s'", expr,
                   attn_status_str(want));
    else if (attn_ctx_status(ctx) != want)
        test__fail(file, line, "%s: status '%s', expected '%s' (message: %s)", expr,
                   attn_status_str(attn_ctx_status(ctx)), attn_status_str(want),
                   attn_ctx_error(ctx));
    else if (!strstr(attn_ctx_error(ctx), needle) || !strstr(attn_last_error(), needle))
        test__fail(file, line, "%s: message \"%s\" does not name \"%s\"", expr, attn_ctx_error(ctx),
                   needle);
    else
        test__pass();
    attn_ctx_reset(ctx);
}
#define EXPECT_FAIL(ctx, expr, want, needle)                                               \
    do {                                                                                   \
        int clean_ = attn_ctx_status(ctx) == ATTN_OK;                                      \
        const void *res_ = (expr);                                                         \
        expect_fail((ctx), #expr, clean_, res_, (want), (needle), __FILE__, __LINE__);     \
    } while (0)

/* `expr` calls the op with NULL tensor inputs only: on a clean context it
 * must fail with ATTN_ERR_INVALID_ARG naming the op; after an earlier error it
 * must return NULL and keep that first error (status and message). */
#define EXPECT_NULL_INPUT(ctx, expr, needle)                                               \
    do {                                                                                   \
        EXPECT_FAIL(ctx, expr, ATTN_ERR_INVALID_ARG, needle);                              \
        attn_tensor_new((ctx), ATTN_F32, ATTN_MAX_DIMS + 1, (int64_t[ATTN_MAX_DIMS + 1]){0}); \
        char first_[512];                                                                  \
        attn_status st_ = attn_ctx_status(ctx);                                            \
        snprintf(first_, sizeof first_, "%s", attn_ctx_error(ctx));                        \
        const void *res_ = (expr);                                                         \
        CHECK(res_ == NULL && attn_ctx_status(ctx) == st_ && st_ != ATTN_OK &&             \
                  strcmp(first_, attn_ctx_error(ctx)) == 0,                                \
              "%s after an earlier error: expected NULL and the first error kept "         \
              "('%s'), got %s, status '%s', message '%s'",                                 \
              #expr, first_, res_ ? "a tensor" : "NULL",                                   \
              attn_status_str(attn_ctx_status(ctx)), attn_ctx_error(ctx));                 \
        attn_ctx_reset(ctx);                                                               \
    } while (0)

static attn_tensor *split_first(attn_ctx *ctx, attn_tensor *x, int axis, int n,
                                const int64_t *sizes) {
    attn_tensor *outs[8] = {0};
    return attn_split(ctx, x, axis, n, sizes, outs) == 0 ? outs[0] : NULL;
}

static void errors_view(attn_ctx *ctx) {
    attn_tensor *x;
    x = F32(ctx, 2, 3);
    EXPECT_FAIL(ctx, attn_reshape(ctx, x, 2, (int64_t[]){4, 2}), ATTN_ERR_SHAPE, "reshape");
    x = F32(ctx, 2, 3);
    EXPECT_FAIL(ctx, attn_reshape(ctx, x, 2, (int64_t[]){-1, 4}), ATTN_ERR_SHAPE, "reshape");
    x = F32(ctx, 2, 3);
    EXPECT_FAIL(ctx, attn_permute(ctx, x, (int[]){0, 0}), ATTN_ERR_INVALID_ARG, "permute");
    x = F32(ctx, 2, 3);
    EXPECT_FAIL(ctx, attn_transpose(ctx, x, 0, 2), ATTN_ERR_INVALID_ARG, "transpose");
    x = F32(ctx, 2, 3);
    EXPECT_FAIL(ctx, attn_slice(ctx, x, 1, 2, 2), ATTN_ERR_INVALID_ARG, "slice");
    x = F32(ctx, 2, 3);
    EXPECT_FAIL(ctx, split_first(ctx, x, 1, 2, (int64_t[]){1, 1}), ATTN_ERR_INVALID_ARG, "split");
    EXPECT_NULL_INPUT(ctx, attn_reshape(ctx, NULL, 1, (int64_t[]){6}), "reshape");
    EXPECT_NULL_INPUT(ctx, attn_permute(ctx, NULL, (int[]){1, 0}), "permute");
    EXPECT_NULL_INPUT(ctx, attn_slice(ctx, NULL, 0, 0, 1), "slice");
    EXPECT_NULL_INPUT(ctx, split_first(ctx, NULL, 0, 1, (int64_t[]){1}), "split");
}

static void errors_contiguous(attn_ctx *ctx) {
    EXPECT_NULL_INPUT(ctx, attn_contiguous(ctx, NULL), "contiguous");
}

static void errors_concat(attn_ctx *ctx) {
    attn_tensor *xs[2];
    xs[0] = F32(ctx, 2, 3);
    xs[1] = F32(ctx, 3, 4);
    EXPECT_FAIL(ctx, attn_concat(ctx, xs, 2, 0), ATTN_ERR_SHAPE, "concat");
    xs[0] = F32(ctx, 2, 3);
    xs[1] = F32(ctx, 2, 3, 1);
    EXPECT_FAIL(ctx, attn_concat(ctx, xs, 2, 0), ATTN_ERR_SHAPE, "concat");
    xs[0] = F32(ctx, 2, 3);
    xs[1] = I32(ctx, 2, 3);
    EXPECT_FAIL(ctx, attn_concat(ctx, xs, 2, 0), ATTN_ERR_DTYPE, "concat");
    xs[0] = F32(ctx, 2, 3);
    xs[1] = F32(ctx, 2, 3);
    EXPECT_FAIL(ctx, attn_concat(ctx, xs, 2, 2), ATTN_ERR_INVALID_ARG, "concat");
    EXPECT_FAIL(ctx, attn_concat(ctx, xs, 0, 0), ATTN_ERR_INVALID_ARG, "concat");
    xs[0] = F32(ctx, 2, 3);
    xs[1] = NULL;
    EXPECT_FAIL(ctx, attn_concat(ctx, xs, 2, 0), ATTN_ERR_INVALID_ARG, "concat");
    xs[0] = xs[1] = NULL;
    EXPECT_NULL_INPUT(ctx, attn_concat(ctx, xs, 2, 0), "concat");
}

static void errors_matmul(attn_ctx *ctx) {
    attn_tensor *a, *b;
    a = F32(ctx, 4, 3), b = F32(ctx, 5, 2);
    EXPECT_FAIL(ctx, attn_matmul(ctx, a, b), ATTN_ERR_SHAPE, "matmul");
    a = F32(ctx, 4, 3), b = F32(ctx, 2, 3, 2);
    EXPECT_FAIL(ctx, attn_matmul(ctx, a, b), ATTN_ERR_SHAPE, "matmul");
    a = F32(ctx, 3), b = F32(ctx, 3, 2);
    EXPECT_FAIL(ctx, attn_matmul(ctx, a, b), ATTN_ERR_SHAPE, "matmul");
    a = I32(ctx, 4, 3), b = F32(ctx, 3, 2);
    EXPECT_FAIL(ctx, attn_matmul(ctx, a, b), ATTN_ERR_DTYPE, "matmul");
    a = F32(ctx, 4, 3), b = I32(ctx, 3, 2);
    EXPECT_FAIL(ctx, attn_matmul(ctx, a, b), ATTN_ERR_DTYPE, "matmul");
    a = F32(ctx, 4, 3);
    EXPECT_FAIL(ctx, attn_matmul(ctx, a, NULL), ATTN_ERR_INVALID_ARG, "matmul");
    EXPECT_NULL_INPUT(ctx, attn_matmul(ctx, NULL, NULL), "matmul");
}

static void errors_bmm(attn_ctx *ctx) {
    attn_tensor *a, *b;
    a = F32(ctx, 2, 4, 3), b = F32(ctx, 3, 3, 5);
    EXPECT_FAIL(ctx, attn_bmm(ctx, a, b, 0, 0), ATTN_ERR_SHAPE, "bmm");
    a = F32(ctx, 2, 4, 3), b = F32(ctx, 2, 4, 5);
    EXPECT_FAIL(ctx, attn_bmm(ctx, a, b, 0, 0), ATTN_ERR_SHAPE, "bmm");
    a = F32(ctx, 2, 4, 3), b = F32(ctx, 2, 3, 5);
    EXPECT_FAIL(ctx, attn_bmm(ctx, a, b, 1, 0), ATTN_ERR_SHAPE, "bmm");
    a = F32(ctx, 2, 4, 3), b = F32(ctx, 2, 3, 5);
    EXPECT_FAIL(ctx, attn_bmm(ctx, a, b, 0, 1), ATTN_ERR_SHAPE, "bmm");
    a = F32(ctx, 4, 3), b = F32(ctx, 3, 5);
    EXPECT_FAIL(ctx, attn_bmm(ctx, a, b, 0, 0), ATTN_ERR_SHAPE, "bmm");
    a = F32(ctx, 2, 4, 3), b = F32(ctx, 2, 2, 3, 5);
    EXPECT_FAIL(ctx, attn_bmm(ctx, a, b, 0, 0), ATTN_ERR_SHAPE, "bmm");
    a = I32(ctx, 2, 4, 3), b = F32(ctx, 2, 3, 5);
    EXPECT_FAIL(ctx, attn_bmm(ctx, a, b, 0, 0), ATTN_ERR_DTYPE, "bmm");
    EXPECT_NULL_INPUT(ctx, attn_bmm(ctx, NULL, NULL, 0, 0), "bmm");
}

static void errors_linear(attn_ctx *ctx) {
    attn_tensor *x, *w, *b;
    x = F32(ctx, 4, 3), w = F32(ctx, 5, 2);
    EXPECT_FAIL(ctx, attn_linear(ctx, x, w, NULL), ATTN_ERR_SHAPE, "linear");
    x = F32(ctx, 4, 3), w = F32(ctx, 5, 3), b = F32(ctx, 4);
    EXPECT_FAIL(ctx, attn_linear(ctx, x, w, b), ATTN_ERR_SHAPE, "linear");
    x = F32(ctx, 4, 3), w = F32(ctx, 3), b = NULL;
    EXPECT_FAIL(ctx, attn_linear(ctx, x, w, b), ATTN_ERR_SHAPE, "linear");
    x = F32(ctx, 4, 3), w = F32(ctx, 5, 3), b = F32(ctx, 1, 5);
    EXPECT_FAIL(ctx, attn_linear(ctx, x, w, b), ATTN_ERR_SHAPE, "linear");
    x = I32(ctx, 4, 3), w = F32(ctx, 5, 3);
    EXPECT_FAIL(ctx, attn_linear(ctx, x, w, NULL), ATTN_ERR_DTYPE, "linear");
    x = F32(ctx, 4, 3), w = F32(ctx, 5, 3), b = I32(ctx, 5);
    EXPECT_FAIL(ctx, attn_linear(ctx, x, w, b), ATTN_ERR_DTYPE, "linear");
    EXPECT_NULL_INPUT(ctx, attn_linear(ctx, NULL, NULL, NULL), "linear");
}

static void errors_linear_gelu(attn_ctx *ctx) {
    attn_tensor *x, *w, *b;
    x = F32(ctx, 4, 3), w = F32(ctx, 5, 2);
    EXPECT_FAIL(ctx, attn_linear_gelu(ctx, x, w, NULL), ATTN_ERR_SHAPE, "linear_gelu");
    x = F32(ctx, 4, 3), w = F32(ctx, 5, 3), b = F32(ctx, 4);
    EXPECT_FAIL(ctx, attn_linear_gelu(ctx, x, w, b), ATTN_ERR_SHAPE, "linear_gelu");
    x = F32(ctx, 4, 3), w = F32(ctx, 3), b = NULL;
    EXPECT_FAIL(ctx, attn_linear_gelu(ctx, x, w, b), ATTN_ERR_SHAPE, "linear_gelu");
    x = I32(ctx, 4, 3), w = F32(ctx, 5, 3);
    EXPECT_FAIL(ctx, attn_linear_gelu(ctx, x, w, NULL), ATTN_ERR_DTYPE, "linear_gelu");
    x = F32(ctx, 4, 3), w = F32(ctx, 5, 3), b = I32(ctx, 5);
    EXPECT_FAIL(ctx, attn_linear_gelu(ctx, x, w, b), ATTN_ERR_DTYPE, "linear_gelu");
    EXPECT_NULL_INPUT(ctx, attn_linear_gelu(ctx, NULL, NULL, NULL), "linear_gelu");
}

#define BINARY_ERRORS(name)                                                      \
    static void errors_##name(attn_ctx *ctx) {                                   \
        attn_tensor *a, *b;                                                      \
        a = F32(ctx, 3, 4), b = F32(ctx, 5);                                     \
        EXPECT_FAIL(ctx, attn_##name(ctx, a, b), ATTN_ERR_SHAPE, #name);         \
        a = F32(ctx, 2, 3, 4), b = F32(ctx, 3, 1, 4);                            \
        EXPECT_FAIL(ctx, attn_##name(ctx, a, b), ATTN_ERR_SHAPE, #name);         \
        a = I32(ctx, 3, 4), b = F32(ctx, 3, 4);                                  \
        EXPECT_FAIL(ctx, attn_##name(ctx, a, b), ATTN_ERR_DTYPE, #name);         \
        a = F32(ctx, 3, 4), b = I32(ctx, 4);                                     \
        EXPECT_FAIL(ctx, attn_##name(ctx, a, b), ATTN_ERR_DTYPE, #name);         \
        a = F32(ctx, 3, 4);                                                      \
        EXPECT_FAIL(ctx, attn_##name(ctx, a, NULL), ATTN_ERR_INVALID_ARG, #name); \
        EXPECT_NULL_INPUT(ctx, attn_##name(ctx, NULL, NULL), #name);             \
    }
BINARY_ERRORS(add)
BINARY_ERRORS(sub)
BINARY_ERRORS(mul)
BINARY_ERRORS(div)

static void errors_scale(attn_ctx *ctx) {
    attn_tensor *x = I32(ctx, 3);
    EXPECT_FAIL(ctx, attn_scale(ctx, x, 2.0f), ATTN_ERR_DTYPE, "scale");
    EXPECT_NULL_INPUT(ctx, attn_scale(ctx, NULL, 2.0f), "scale");
}

static void errors_bias_add(attn_ctx *ctx) {
    attn_tensor *x, *b;
    x = F32(ctx, 3, 4), b = F32(ctx, 5);
    EXPECT_FAIL(ctx, attn_bias_add(ctx, x, b), ATTN_ERR_SHAPE, "bias_add");
    x = F32(ctx, 3, 4), b = F32(ctx, 1, 4);
    EXPECT_FAIL(ctx, attn_bias_add(ctx, x, b), ATTN_ERR_SHAPE, "bias_add");
    x = F32(ctx, 3, 4), b = I32(ctx, 4);
    EXPECT_FAIL(ctx, attn_bias_add(ctx, x, b), ATTN_ERR_DTYPE, "bias_add");
    x = I32(ctx, 3, 4), b = F32(ctx, 4);
    EXPECT_FAIL(ctx, attn_bias_add(ctx, x, b), ATTN_ERR_DTYPE, "bias_add");
    EXPECT_NULL_INPUT(ctx, attn_bias_add(ctx, NULL, NULL), "bias_add");
}

#define REDUCE_ERRORS(name)                                                              \
    static void errors_##name(attn_ctx *ctx) {                                           \
        attn_tensor *x;                                                                  \
        x = F32(ctx, 3, 4);                                                              \
        EXPECT_FAIL(ctx, attn_##name(ctx, x, 2, 0), ATTN_ERR_INVALID_ARG, #name);        \
        x = F32(ctx, 3, 4);                                                              \
        EXPECT_FAIL(ctx, attn_##name(ctx, x, -3, 0), ATTN_ERR_INVALID_ARG, #name);       \
        x = I32(ctx, 3, 4);                                                              \
        EXPECT_FAIL(ctx, attn_##name(ctx, x, 0, 0), ATTN_ERR_DTYPE, #name);              \
        EXPECT_NULL_INPUT(ctx, attn_##name(ctx, NULL, 0, 0), #name);                     \
    }
REDUCE_ERRORS(sum)
REDUCE_ERRORS(mean)

#define UNARY_ERRORS(name)                                                  \
    static void errors_##name(attn_ctx *ctx) {                              \
        attn_tensor *x = I32(ctx, 3, 4);                                    \
        EXPECT_FAIL(ctx, attn_##name(ctx, x), ATTN_ERR_DTYPE, #name);       \
        EXPECT_NULL_INPUT(ctx, attn_##name(ctx, NULL), #name);              \
    }
UNARY_ERRORS(exp)
UNARY_ERRORS(log)
UNARY_ERRORS(tanh)
UNARY_ERRORS(sigmoid)
UNARY_ERRORS(relu)

static void errors_gelu(attn_ctx *ctx) {
    attn_tensor *x = I32(ctx, 3, 4);
    EXPECT_FAIL(ctx, attn_gelu(ctx, x, 1), ATTN_ERR_DTYPE, "gelu");
    EXPECT_NULL_INPUT(ctx, attn_gelu(ctx, NULL, 0), "gelu");
}

#define SOFTMAX_ERRORS(name)                                                         \
    static void errors_##name(attn_ctx *ctx) {                                       \
        attn_tensor *x, *m;                                                          \
        x = F32(ctx, 3, 4), m = F32(ctx, 3, 5);                                      \
        EXPECT_FAIL(ctx, attn_##name(ctx, x, m), ATTN_ERR_SHAPE, #name);             \
        x = F32(ctx, 4), m = F32(ctx, 2, 4); /* would broadcast x itself */          \
        EXPECT_FAIL(ctx, attn_##name(ctx, x, m), ATTN_ERR_SHAPE, #name);             \
        x = I32(ctx, 3, 4);                                                          \
        EXPECT_FAIL(ctx, attn_##name(ctx, x, NULL), ATTN_ERR_DTYPE, #name);          \
        x = F32(ctx, 3, 4), m = I32(ctx, 3, 4);                                      \
        EXPECT_FAIL(ctx, attn_##name(ctx, x, m), ATTN_ERR_DTYPE, #name);             \
        EXPECT_NULL_INPUT(ctx, attn_##name(ctx, NULL, NULL), #name);                 \
    }
SOFTMAX_ERRORS(softmax)
SOFTMAX_ERRORS(log_softmax)

static void errors_cross_entropy(attn_ctx *ctx) {
    attn_tensor *x, *t;
    x = F32(ctx, 3, 4), t = I32(ctx, 2);
    EXPECT_FAIL(ctx, attn_cross_entropy(ctx, x, t, -100, 0.0f), ATTN_ERR_SHAPE, "cross_entropy");
    x = F32(ctx, 2, 3, 4), t = I32(ctx, 2);
    EXPECT_FAIL(ctx, attn_cross_entropy(ctx, x, t, -100, 0.0f), ATTN_ERR_SHAPE, "cross_entropy");
    x = F32(ctx, 3, 4), t = F32(ctx, 3);
    EXPECT_FAIL(ctx, attn_cross_entropy(ctx, x, t, -100, 0.0f), ATTN_ERR_DTYPE, "cross_entropy");
    x = I32(ctx, 3, 4), t = I32(ctx, 3);
    EXPECT_FAIL(ctx, attn_cross_entropy(ctx, x, t, -100, 0.0f), ATTN_ERR_DTYPE, "cross_entropy");
    x = F32(ctx, 3, 4), t = I32(ctx, 3);
    if (t) attn_i32(t)[1] = 4; /* out of [0, V) */
    EXPECT_FAIL(ctx, attn_cross_entropy(ctx, x, t, -100, 0.0f), ATTN_ERR_INVALID_ARG,
                "cross_entropy");
    x = F32(ctx, 3, 4), t = I32(ctx, 3);
    if (t) attn_i32(t)[2] = -1;
    EXPECT_FAIL(ctx, attn_cross_entropy(ctx, x, t, -100, 0.0f), ATTN_ERR_INVALID_ARG,
                "cross_entropy");
    x = F32(ctx, 3, 4), t = I32(ctx, 3);
    EXPECT_FAIL(ctx, attn_cross_entropy(ctx, x, t, -100, 1.0f), ATTN_ERR_INVALID_ARG,
                "cross_entropy");
    x = F32(ctx, 3, 4), t = I32(ctx, 3);
    EXPECT_FAIL(ctx, attn_cross_entropy(ctx, x, t, -100, -0.1f), ATTN_ERR_INVALID_ARG,
                "cross_entropy");
    EXPECT_NULL_INPUT(ctx, attn_cross_entropy(ctx, NULL, NULL, -100, 0.0f), "cross_entropy");
}

static void errors_layernorm(attn_ctx *ctx) {
    attn_tensor *x, *g, *b;
    x = F32(ctx, 3, 4), g = F32(ctx, 5);
    EXPECT_FAIL(ctx, attn_layernorm(ctx, x, g, NULL, 1e-5f), ATTN_ERR_SHAPE, "layernorm");
    x = F32(ctx, 3, 4), b = F32(ctx, 3);
    EXPECT_FAIL(ctx, attn_layernorm(ctx, x, NULL, b, 1e-5f), ATTN_ERR_SHAPE, "layernorm");
    x = F32(ctx, 3, 4), g = F32(ctx, 1, 4);
    EXPECT_FAIL(ctx, attn_layernorm(ctx, x, g, NULL, 1e-5f), ATTN_ERR_SHAPE, "layernorm");
    x = I32(ctx, 3, 4);
    EXPECT_FAIL(ctx, attn_layernorm(ctx, x, NULL, NULL, 1e-5f), ATTN_ERR_DTYPE, "layernorm");
    x = F32(ctx, 3, 4), g = I32(ctx, 4);
    EXPECT_FAIL(ctx, attn_layernorm(ctx, x, g, NULL, 1e-5f), ATTN_ERR_DTYPE, "layernorm");
    EXPECT_NULL_INPUT(ctx, attn_layernorm(ctx, NULL, NULL, NULL, 1e-5f), "layernorm");
}

static void errors_embedding(attn_ctx *ctx) {
    attn_tensor *w, *ids;
    w = F32(ctx, 5, 3), ids = F32(ctx, 2);
    EXPECT_FAIL(ctx, attn_embedding(ctx, w, ids), ATTN_ERR_DTYPE, "embedding");
    w = I32(ctx, 5, 3), ids = I32(ctx, 2);
    EXPECT_FAIL(ctx, attn_embedding(ctx, w, ids), ATTN_ERR_DTYPE, "embedding");
    w = F32(ctx, 5), ids = I32(ctx, 2);
    EXPECT_FAIL(ctx, attn_embedding(ctx, w, ids), ATTN_ERR_SHAPE, "embedding");
    w = F32(ctx, 5, 3), ids = I32(ctx, 2, 2);
    if (ids) attn_i32(ids)[3] = 5;
    EXPECT_FAIL(ctx, attn_embedding(ctx, w, ids), ATTN_ERR_INVALID_ARG, "embedding");
    w = F32(ctx, 5, 3), ids = I32(ctx, 2);
    if (ids) attn_i32(ids)[0] = -1;
    EXPECT_FAIL(ctx, attn_embedding(ctx, w, ids), ATTN_ERR_INVALID_ARG, "embedding");
    EXPECT_NULL_INPUT(ctx, attn_embedding(ctx, NULL, NULL), "embedding");
}

static void errors_dropout(attn_ctx *ctx) {
    attn_tensor *x;
    x = F32(ctx, 3, 4);
    EXPECT_FAIL(ctx, attn_dropout(ctx, x, 1.0f), ATTN_ERR_INVALID_ARG, "dropout");
    x = F32(ctx, 3, 4);
    EXPECT_FAIL(ctx, attn_dropout(ctx, x, -0.1f), ATTN_ERR_INVALID_ARG, "dropout");
    x = F32(ctx, 3, 4);
    EXPECT_FAIL(ctx, attn_dropout(ctx, x, NAN), ATTN_ERR_INVALID_ARG, "dropout");
    x = I32(ctx, 3, 4);
    EXPECT_FAIL(ctx, attn_dropout(ctx, x, 0.5f), ATTN_ERR_DTYPE, "dropout");
    EXPECT_NULL_INPUT(ctx, attn_dropout(ctx, NULL, 0.5f), "dropout");
}

static void errors_gru_cell(attn_ctx *ctx) {
    attn_tensor *gx, *h, *w, *b, *m;
    gx = F32(ctx, 2, 8), h = F32(ctx, 2, 3), w = F32(ctx, 9, 3);
    EXPECT_FAIL(ctx, attn_gru_cell(ctx, gx, h, w, NULL, NULL), ATTN_ERR_SHAPE, "gru_cell");
    gx = F32(ctx, 2, 9), h = F32(ctx, 3), w = F32(ctx, 9, 3);
    EXPECT_FAIL(ctx, attn_gru_cell(ctx, gx, h, w, NULL, NULL), ATTN_ERR_SHAPE, "gru_cell");
    gx = F32(ctx, 2, 9), h = F32(ctx, 2, 3), w = F32(ctx, 3, 9);
    EXPECT_FAIL(ctx, attn_gru_cell(ctx, gx, h, w, NULL, NULL), ATTN_ERR_SHAPE, "gru_cell");
    gx = F32(ctx, 2, 9), h = F32(ctx, 2, 3), w = F32(ctx, 9, 3), b = F32(ctx, 3);
    EXPECT_FAIL(ctx, attn_gru_cell(ctx, gx, h, w, b, NULL), ATTN_ERR_SHAPE, "gru_cell");
    gx = F32(ctx, 2, 9), h = F32(ctx, 2, 3), w = F32(ctx, 9, 3), m = I32(ctx, 3);
    EXPECT_FAIL(ctx, attn_gru_cell(ctx, gx, h, w, NULL, m), ATTN_ERR_SHAPE, "gru_cell");
    gx = F32(ctx, 2, 9), h = F32(ctx, 2, 3), w = F32(ctx, 9, 3), m = F32(ctx, 2);
    EXPECT_FAIL(ctx, attn_gru_cell(ctx, gx, h, w, NULL, m), ATTN_ERR_DTYPE, "gru_cell");
    gx = I32(ctx, 2, 9), h = F32(ctx, 2, 3), w = F32(ctx, 9, 3);
    EXPECT_FAIL(ctx, attn_gru_cell(ctx, gx, h, w, NULL, NULL), ATTN_ERR_DTYPE, "gru_cell");
    EXPECT_NULL_INPUT(ctx, attn_gru_cell(ctx, NULL, NULL, NULL, NULL, NULL), "gru_cell");
}

static void errors_lstm_cell(attn_ctx *ctx) {
    attn_tensor *gx, *h, *cc, *w, *b, *m, *cn = NULL;
    gx = F32(ctx, 2, 9), h = F32(ctx, 2, 3), cc = F32(ctx, 2, 3), w = F32(ctx, 12, 3);
    EXPECT_FAIL(ctx, attn_lstm_cell(ctx, gx, h, cc, w, NULL, NULL, &cn), ATTN_ERR_SHAPE,
                "lstm_cell");
    CHECK(cn == NULL, "lstm_cell: *c_out not NULL after an error");
    gx = F32(ctx, 2, 12), h = F32(ctx, 2, 3), cc = F32(ctx, 2, 4), w = F32(ctx, 12, 3);
    EXPECT_FAIL(ctx, attn_lstm_cell(ctx, gx, h, cc, w, NULL, NULL, &cn), ATTN_ERR_SHAPE,
                "lstm_cell");
    gx = F32(ctx, 2, 12), h = F32(ctx, 2, 3), cc = F32(ctx, 2, 3), w = F32(ctx, 9, 3);
    EXPECT_FAIL(ctx, attn_lstm_cell(ctx, gx, h, cc, w, NULL, NULL, &cn), ATTN_ERR_SHAPE,
                "lstm_cell");
    gx = F32(ctx, 2, 12), h = F32(ctx, 2, 3), cc = F32(ctx, 2, 3), w = F32(ctx, 12, 3);
    b = F32(ctx, 9);
    EXPECT_FAIL(ctx, attn_lstm_cell(ctx, gx, h, cc, w, b, NULL, &cn), ATTN_ERR_SHAPE,
                "lstm_cell");
    gx = F32(ctx, 2, 12), h = F32(ctx, 2, 3), cc = F32(ctx, 2, 3), w = F32(ctx, 12, 3);
    m = F32(ctx, 2);
    EXPECT_FAIL(ctx, attn_lstm_cell(ctx, gx, h, cc, w, NULL, m, &cn), ATTN_ERR_DTYPE,
                "lstm_cell");
    gx = F32(ctx, 2, 12), h = F32(ctx, 2, 3), cc = I32(ctx, 2, 3), w = F32(ctx, 12, 3);
    EXPECT_FAIL(ctx, attn_lstm_cell(ctx, gx, h, cc, w, NULL, NULL, &cn), ATTN_ERR_DTYPE,
                "lstm_cell");
    EXPECT_NULL_INPUT(ctx, attn_lstm_cell(ctx, NULL, NULL, NULL, NULL, NULL, NULL, &cn),
                      "lstm_cell");
}

static void errors_additive_score(attn_ctx *ctx) {
    attn_tensor *wq, *wk, *v;
    wq = F32(ctx, 2, 3, 4), wk = F32(ctx, 2, 5, 3), v = F32(ctx, 4);
    EXPECT_FAIL(ctx, attn_additive_score(ctx, wq, wk, v), ATTN_ERR_SHAPE, "additive_score");
    wq = F32(ctx, 2, 3, 4), wk = F32(ctx, 3, 5, 4), v = F32(ctx, 4);
    EXPECT_FAIL(ctx, attn_additive_score(ctx, wq, wk, v), ATTN_ERR_SHAPE, "additive_score");
    wq = F32(ctx, 3, 4), wk = F32(ctx, 2, 5, 4), v = F32(ctx, 4);
    EXPECT_FAIL(ctx, attn_additive_score(ctx, wq, wk, v), ATTN_ERR_SHAPE, "additive_score");
    wq = F32(ctx, 2, 3, 4), wk = F32(ctx, 2, 5, 4), v = F32(ctx, 2, 4);
    EXPECT_FAIL(ctx, attn_additive_score(ctx, wq, wk, v), ATTN_ERR_SHAPE, "additive_score");
    wq = F32(ctx, 2, 3, 4), wk = F32(ctx, 2, 5, 4), v = F32(ctx, 5);
    EXPECT_FAIL(ctx, attn_additive_score(ctx, wq, wk, v), ATTN_ERR_SHAPE, "additive_score");
    wq = F32(ctx, 2, 3, 4), wk = I32(ctx, 2, 5, 4), v = F32(ctx, 4);
    EXPECT_FAIL(ctx, attn_additive_score(ctx, wq, wk, v), ATTN_ERR_DTYPE, "additive_score");
    EXPECT_NULL_INPUT(ctx, attn_additive_score(ctx, NULL, NULL, NULL), "additive_score");
}

static void errors_sdpa(attn_ctx *ctx) {
    attn_tensor *q, *k, *v, *x;
    attn_sdpa_opts o = {0};
    /* ranks, mismatched sizes, groups */
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5);
    EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, NULL, NULL), ATTN_ERR_SHAPE, "sdpa: q [2,4,3,8]");
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 3, 2, 5, 8), v = F32(ctx, 3, 2, 5, 6);
    EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, NULL, NULL), ATTN_ERR_SHAPE, "same B, Hkv, S and D");
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 7), v = F32(ctx, 2, 2, 5, 6);
    EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, NULL, NULL), ATTN_ERR_SHAPE, "k [2,2,5,7]");
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 6, 6);
    EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, NULL, NULL), ATTN_ERR_SHAPE, "v [2,2,6,6]");
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 1, 5, 6);
    EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, NULL, NULL), ATTN_ERR_SHAPE, "sdpa");
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 3, 5, 8), v = F32(ctx, 2, 3, 5, 6);
    EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, NULL, NULL), ATTN_ERR_SHAPE, "multiple of Hkv");
    q = F32(ctx, 2, 4, 0, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
    EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, NULL, NULL), ATTN_ERR_SHAPE, ">= 1");
    /* dtypes */
    q = F32(ctx, 2, 4, 3, 8), k = I32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
    EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, NULL, NULL), ATTN_ERR_DTYPE, "sdpa");
    /* bias: not broadcastable, too many dims, wrong dtype */
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
    o.bias = F32(ctx, 3, 4);
    EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, &o, NULL), ATTN_ERR_SHAPE, "bias [3,4] does not broadcast");
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
    o.bias = F32(ctx, 2, 2, 3, 5);
    EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, &o, NULL), ATTN_ERR_SHAPE, "[B,H,T,S] = [2,4,3,5]");
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
    o.bias = I32(ctx, 3, 5);
    EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, &o, NULL), ATTN_ERR_DTYPE, "bias");
    o.bias = NULL;
    /* key_lengths: shape, dtype, range */
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
    o.key_lengths = I32(ctx, 3);
    EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, &o, NULL), ATTN_ERR_SHAPE, "key_lengths [3]");
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
    o.key_lengths = F32(ctx, 2);
    EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, &o, NULL), ATTN_ERR_DTYPE, "key_lengths");
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
    o.key_lengths = I32(ctx, 2);
    if (o.key_lengths) attn_i32(o.key_lengths)[1] = 6;
    EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, &o, NULL), ATTN_ERR_SHAPE, "key_lengths[1] = 6");
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
    o.key_lengths = I32(ctx, 2);
    if (o.key_lengths) attn_i32(o.key_lengths)[0] = -1;
    EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, &o, NULL), ATTN_ERR_SHAPE, "key_lengths[0] = -1");
    o.key_lengths = NULL;
    /* attributes */
    const float bad_p[3] = {1.0f, -0.1f, NAN};
    for (int i = 0; i < 3; i++) {
        q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
        o.dropout = bad_p[i];
        EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, &o, NULL), ATTN_ERR_INVALID_ARG, "sdpa: dropout");
    }
    o.dropout = 0.0f;
    const float bad_scale[3] = {-1.0f, INFINITY, NAN};
    for (int i = 0; i < 3; i++) {
        q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
        o.scale = bad_scale[i];
        EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, &o, NULL), ATTN_ERR_INVALID_ARG, "sdpa: scale");
    }
    o.scale = 0.0f;
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
    o.window = -2;
    EXPECT_FAIL(ctx, attn_sdpa(ctx, q, k, v, &o, NULL), ATTN_ERR_INVALID_ARG, "window -2");
    attn_tensor *w = (attn_tensor *)&o; /* any non-NULL value: must become NULL */
    EXPECT_FAIL(ctx, attn_sdpa(ctx, NULL, NULL, NULL, NULL, &w), ATTN_ERR_INVALID_ARG, "sdpa");
    CHECK(w == NULL, "sdpa: *weights not NULL after an error");
    EXPECT_NULL_INPUT(ctx, attn_sdpa(ctx, NULL, NULL, NULL, NULL, NULL), "sdpa");
    /* basic self-attention */
    x = F32(ctx, 2, 3);
    EXPECT_FAIL(ctx, attn_basic_self_attention(ctx, x, 0), ATTN_ERR_SHAPE,
                "basic_self_attention: x [2,3]");
    x = I32(ctx, 2, 3, 4);
    EXPECT_FAIL(ctx, attn_basic_self_attention(ctx, x, 0), ATTN_ERR_DTYPE, "basic_self_attention");
    EXPECT_NULL_INPUT(ctx, attn_basic_self_attention(ctx, NULL, 1), "basic_self_attention");
}

static void errors_flash_sdpa(attn_ctx *ctx) {
    attn_tensor *q, *k, *v;
    attn_sdpa_opts o = {0};
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5);
    EXPECT_FAIL(ctx, attn_flash_sdpa(ctx, q, k, v, NULL, NULL), ATTN_ERR_SHAPE,
                "flash_sdpa: q [2,4,3,8]");
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 3, 2, 5, 8), v = F32(ctx, 3, 2, 5, 6);
    EXPECT_FAIL(ctx, attn_flash_sdpa(ctx, q, k, v, NULL, NULL), ATTN_ERR_SHAPE,
                "same B, Hkv, S and D");
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 3, 5, 8), v = F32(ctx, 2, 3, 5, 6);
    EXPECT_FAIL(ctx, attn_flash_sdpa(ctx, q, k, v, NULL, NULL), ATTN_ERR_SHAPE, "multiple of Hkv");
    q = F32(ctx, 2, 4, 3, 8), k = I32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
    EXPECT_FAIL(ctx, attn_flash_sdpa(ctx, q, k, v, NULL, NULL), ATTN_ERR_DTYPE, "flash_sdpa");
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
    o.bias = F32(ctx, 3, 4);
    EXPECT_FAIL(ctx, attn_flash_sdpa(ctx, q, k, v, &o, NULL), ATTN_ERR_SHAPE,
                "bias [3,4] does not broadcast");
    o.bias = NULL;
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
    o.key_lengths = I32(ctx, 2);
    if (o.key_lengths) attn_i32(o.key_lengths)[1] = 6;
    EXPECT_FAIL(ctx, attn_flash_sdpa(ctx, q, k, v, &o, NULL), ATTN_ERR_SHAPE, "key_lengths[1] = 6");
    o.key_lengths = NULL;
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
    o.dropout = 1.0f;
    EXPECT_FAIL(ctx, attn_flash_sdpa(ctx, q, k, v, &o, NULL), ATTN_ERR_INVALID_ARG,
                "flash_sdpa: dropout");
    o.dropout = 0.0f;
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
    o.scale = NAN;
    EXPECT_FAIL(ctx, attn_flash_sdpa(ctx, q, k, v, &o, NULL), ATTN_ERR_INVALID_ARG,
                "flash_sdpa: scale");
    o.scale = 0.0f;
    q = F32(ctx, 2, 4, 3, 8), k = F32(ctx, 2, 2, 5, 8), v = F32(ctx, 2, 2, 5, 6);
    o.window = -2;
    EXPECT_FAIL(ctx, attn_flash_sdpa(ctx, q, k, v, &o, NULL), ATTN_ERR_INVALID_ARG, "window -2");
    attn_tensor *w = (attn_tensor *)&o;
    EXPECT_FAIL(ctx, attn_flash_sdpa(ctx, NULL, NULL, NULL, NULL, &w), ATTN_ERR_INVALID_ARG,
                "flash_sdpa");
    CHECK(w == NULL, "flash_sdpa: *weights not NULL after an error");
    EXPECT_NULL_INPUT(ctx, attn_flash_sdpa(ctx, NULL, NULL, NULL, NULL, NULL), "flash_sdpa");
}

static void errors_rope(attn_ctx *ctx) {
    attn_tensor *x;
    attn_rope_opts o = {0, NULL, 0.0f, 0, 0};
    x = F32(ctx, 2, 3, 5);
    EXPECT_FAIL(ctx, attn_rope(ctx, x, NULL), ATTN_ERR_SHAPE, "rope");
    x = F32(ctx, 1, 2, 3, 5); /* odd D with rotary_dim 0 (= D) */
    EXPECT_FAIL(ctx, attn_rope(ctx, x, NULL), ATTN_ERR_INVALID_ARG, "rotary_dim");
    o.rotary_dim = 3, x = F32(ctx, 1, 2, 3, 6);
    EXPECT_FAIL(ctx, attn_rope(ctx, x, &o), ATTN_ERR_INVALID_ARG, "rotary_dim");
    o.rotary_dim = 8, x = F32(ctx, 1, 2, 3, 6);
    EXPECT_FAIL(ctx, attn_rope(ctx, x, &o), ATTN_ERR_INVALID_ARG, "rotary_dim");
    o.rotary_dim = -2, x = F32(ctx, 1, 2, 3, 6);
    EXPECT_FAIL(ctx, attn_rope(ctx, x, &o), ATTN_ERR_INVALID_ARG, "rotary_dim");
    o.rotary_dim = 0, o.theta = -1.0f, x = F32(ctx, 1, 2, 3, 6);
    EXPECT_FAIL(ctx, attn_rope(ctx, x, &o), ATTN_ERR_INVALID_ARG, "theta");
    o.theta = INFINITY, x = F32(ctx, 1, 2, 3, 6);
    EXPECT_FAIL(ctx, attn_rope(ctx, x, &o), ATTN_ERR_INVALID_ARG, "theta");
    o.theta = 0.0f, o.pos0 = (int64_t)1 << 41, x = F32(ctx, 1, 2, 3, 6);
    EXPECT_FAIL(ctx, attn_rope(ctx, x, &o), ATTN_ERR_INVALID_ARG, "pos0");
    o.pos0 = 0, x = F32(ctx, 2, 2, 3, 6), o.positions = I32(ctx, 4);
    EXPECT_FAIL(ctx, attn_rope(ctx, x, &o), ATTN_ERR_SHAPE, "positions");
    x = F32(ctx, 2, 2, 3, 6), o.positions = I32(ctx, 3, 3); /* [H, T] is not [B, T] */
    EXPECT_FAIL(ctx, attn_rope(ctx, x, &o), ATTN_ERR_SHAPE, "positions");
    x = F32(ctx, 2, 2, 3, 6), o.positions = F32(ctx, 3);
    EXPECT_FAIL(ctx, attn_rope(ctx, x, &o), ATTN_ERR_DTYPE, "positions");
    x = I32(ctx, 2, 2, 3, 6), o.positions = NULL;
    EXPECT_FAIL(ctx, attn_rope(ctx, x, &o), ATTN_ERR_DTYPE, "rope");
    EXPECT_NULL_INPUT(ctx, attn_rope(ctx, NULL, NULL), "rope");
}

static void errors_rel_logits(attn_ctx *ctx) {
    attn_tensor *q, *rk;
    q = F32(ctx, 2, 3, 4), rk = F32(ctx, 5, 4);
    EXPECT_FAIL(ctx, attn_rel_logits(ctx, q, rk, 3, 0), ATTN_ERR_SHAPE, "rel_logits");
    q = F32(ctx, 1, 2, 3, 4), rk = F32(ctx, 4, 4); /* even number of rows */
    EXPECT_FAIL(ctx, attn_rel_logits(ctx, q, rk, 3, 0), ATTN_ERR_SHAPE, "rel_k");
    q = F32(ctx, 1, 2, 3, 4), rk = F32(ctx, 5, 3);
    EXPECT_FAIL(ctx, attn_rel_logits(ctx, q, rk, 3, 0), ATTN_ERR_SHAPE, "rel_k");
    q = F32(ctx, 1, 2, 3, 4), rk = F32(ctx, 5);
    EXPECT_FAIL(ctx, attn_rel_logits(ctx, q, rk, 3, 0), ATTN_ERR_SHAPE, "rel_k");
    q = F32(ctx, 1, 2, 3, 4), rk = F32(ctx, 5, 4);
    EXPECT_FAIL(ctx, attn_rel_logits(ctx, q, rk, 0, 0), ATTN_ERR_INVALID_ARG, "S 0");
    q = F32(ctx, 1, 2, 3, 4), rk = F32(ctx, 5, 4);
    EXPECT_FAIL(ctx, attn_rel_logits(ctx, q, rk, 3, (int64_t)1 << 50), ATTN_ERR_INVALID_ARG,
                "offset");
    q = F32(ctx, 1, 2, 3, 4), rk = I32(ctx, 5, 4);
    EXPECT_FAIL(ctx, attn_rel_logits(ctx, q, rk, 3, 0), ATTN_ERR_DTYPE, "rel_k");
    q = I32(ctx, 1, 2, 3, 4), rk = F32(ctx, 5, 4);
    EXPECT_FAIL(ctx, attn_rel_logits(ctx, q, rk, 3, 0), ATTN_ERR_DTYPE, "rel_logits");
    EXPECT_NULL_INPUT(ctx, attn_rel_logits(ctx, NULL, NULL, 3, 0), "rel_logits");
}

static void errors_rel_values(attn_ctx *ctx) {
    attn_tensor *p, *rv;
    p = F32(ctx, 2, 3, 4), rv = F32(ctx, 5, 4);
    EXPECT_FAIL(ctx, attn_rel_values(ctx, p, rv, 0), ATTN_ERR_SHAPE, "rel_values");
    p = F32(ctx, 1, 2, 3, 4), rv = F32(ctx, 6, 4);
    EXPECT_FAIL(ctx, attn_rel_values(ctx, p, rv, 0), ATTN_ERR_SHAPE, "rel_v");
    p = F32(ctx, 1, 2, 3, 4), rv = F32(ctx, 5, 0);
    EXPECT_FAIL(ctx, attn_rel_values(ctx, p, rv, 0), ATTN_ERR_SHAPE, "rel_v");
    p = F32(ctx, 1, 2, 3, 4), rv = F32(ctx, 1, 5, 4);
    EXPECT_FAIL(ctx, attn_rel_values(ctx, p, rv, 0), ATTN_ERR_SHAPE, "rel_v");
    p = F32(ctx, 1, 2, 3, 4), rv = F32(ctx, 5, 4);
    EXPECT_FAIL(ctx, attn_rel_values(ctx, p, rv, -((int64_t)1 << 41)), ATTN_ERR_INVALID_ARG,
                "offset");
    p = F32(ctx, 1, 2, 3, 4), rv = I32(ctx, 5, 4);
    EXPECT_FAIL(ctx, attn_rel_values(ctx, p, rv, 0), ATTN_ERR_DTYPE, "rel_v");
    p = I32(ctx, 1, 2, 3, 4), rv = F32(ctx, 5, 4);
    EXPECT_FAIL(ctx, attn_rel_values(ctx, p, rv, 0), ATTN_ERR_DTYPE, "rel_values");
    EXPECT_NULL_INPUT(ctx, attn_rel_values(ctx, NULL, NULL, 0), "rel_values");
}

static void errors_conv2d(attn_ctx *ctx) {
    attn_tensor *x, *w, *b;
    attn_conv2d_opts o = {{0, 0}, {0, 0}, {0, 0}, 0, {0, 0}};
    x = F32(ctx, 2, 3, 5, 5), w = F32(ctx, 4, 2, 3, 3);
    EXPECT_FAIL(ctx, attn_conv2d(ctx, x, w, NULL, NULL), ATTN_ERR_SHAPE, "conv2d");
    x = F32(ctx, 2, 3, 5), w = F32(ctx, 4, 3, 3);
    EXPECT_FAIL(ctx, attn_conv2d(ctx, x, w, NULL, NULL), ATTN_ERR_SHAPE, "conv2d");
    x = F32(ctx, 2, 3, 5, 5), w = F32(ctx, 4, 3, 3, 3), b = F32(ctx, 3);
    EXPECT_FAIL(ctx, attn_conv2d(ctx, x, w, b, NULL), ATTN_ERR_SHAPE, "conv2d");
    x = F32(ctx, 2, 3, 5, 5), w = F32(ctx, 4, 3, 7, 3);
    EXPECT_FAIL(ctx, attn_conv2d(ctx, x, w, NULL, NULL), ATTN_ERR_INVALID_ARG, "conv2d");
    o.groups = 2;
    x = F32(ctx, 2, 3, 5, 5), w = F32(ctx, 4, 1, 3, 3);
    EXPECT_FAIL(ctx, attn_conv2d(ctx, x, w, NULL, &o), ATTN_ERR_INVALID_ARG, "groups");
    x = F32(ctx, 2, 4, 5, 5), w = F32(ctx, 3, 2, 3, 3);
    EXPECT_FAIL(ctx, attn_conv2d(ctx, x, w, NULL, &o), ATTN_ERR_INVALID_ARG, "groups");
    o.groups = 0, o.stride[1] = -1;
    x = F32(ctx, 2, 3, 5, 5), w = F32(ctx, 4, 3, 3, 3);
    EXPECT_FAIL(ctx, attn_conv2d(ctx, x, w, NULL, &o), ATTN_ERR_INVALID_ARG, "stride");
    o.stride[1] = 0, o.padding[0] = -1;
    x = F32(ctx, 2, 3, 5, 5), w = F32(ctx, 4, 3, 3, 3);
    EXPECT_FAIL(ctx, attn_conv2d(ctx, x, w, NULL, &o), ATTN_ERR_INVALID_ARG, "padding");
    o.padding[0] = 0, o.output_padding[0] = 1;
    x = F32(ctx, 2, 3, 5, 5), w = F32(ctx, 4, 3, 3, 3);
    EXPECT_FAIL(ctx, attn_conv2d(ctx, x, w, NULL, &o), ATTN_ERR_INVALID_ARG, "output_padding");
    x = I32(ctx, 2, 3, 5, 5), w = F32(ctx, 4, 3, 3, 3);
    EXPECT_FAIL(ctx, attn_conv2d(ctx, x, w, NULL, NULL), ATTN_ERR_DTYPE, "conv2d");
    x = F32(ctx, 2, 3, 5, 5), w = F32(ctx, 4, 3, 3, 3), b = I32(ctx, 4);
    EXPECT_FAIL(ctx, attn_conv2d(ctx, x, w, b, NULL), ATTN_ERR_DTYPE, "conv2d");
    EXPECT_NULL_INPUT(ctx, attn_conv2d(ctx, NULL, NULL, NULL, NULL), "conv2d");
}

static void errors_conv1d(attn_ctx *ctx) {
    attn_tensor *x, *w, *b;
    attn_conv1d_opts o = {0, 0, 0, 0, 0};
    x = F32(ctx, 2, 3, 9), w = F32(ctx, 4, 2, 3);
    EXPECT_FAIL(ctx, attn_conv1d(ctx, x, w, NULL, NULL), ATTN_ERR_SHAPE, "conv1d");
    x = F32(ctx, 2, 3, 9, 1), w = F32(ctx, 4, 3, 3);
    EXPECT_FAIL(ctx, attn_conv1d(ctx, x, w, NULL, NULL), ATTN_ERR_SHAPE, "conv1d");
    x = F32(ctx, 2, 3, 9), w = F32(ctx, 4, 3, 3), b = F32(ctx, 5);
    EXPECT_FAIL(ctx, attn_conv1d(ctx, x, w, b, NULL), ATTN_ERR_SHAPE, "conv1d");
    x = F32(ctx, 2, 3, 4), w = F32(ctx, 4, 3, 5);
    EXPECT_FAIL(ctx, attn_conv1d(ctx, x, w, NULL, NULL), ATTN_ERR_INVALID_ARG, "conv1d");
    o.causal = 1, o.padding = 1;
    x = F32(ctx, 2, 3, 9), w = F32(ctx, 4, 3, 3);
    EXPECT_FAIL(ctx, attn_conv1d(ctx, x, w, NULL, &o), ATTN_ERR_INVALID_ARG, "causal");
    o.causal = 0, o.padding = 0, o.dilation = -2;
    x = F32(ctx, 2, 3, 9), w = F32(ctx, 4, 3, 3);
    EXPECT_FAIL(ctx, attn_conv1d(ctx, x, w, NULL, &o), ATTN_ERR_INVALID_ARG, "dilation");
    o.dilation = 0, o.groups = 2;
    x = F32(ctx, 2, 3, 9), w = F32(ctx, 4, 1, 3);
    EXPECT_FAIL(ctx, attn_conv1d(ctx, x, w, NULL, &o), ATTN_ERR_INVALID_ARG, "groups");
    x = F32(ctx, 2, 3, 9), w = I32(ctx, 4, 3, 3);
    EXPECT_FAIL(ctx, attn_conv1d(ctx, x, w, NULL, NULL), ATTN_ERR_DTYPE, "conv1d");
    EXPECT_NULL_INPUT(ctx, attn_conv1d(ctx, NULL, NULL, NULL, NULL), "conv1d");
}

static void errors_conv_transpose2d(attn_ctx *ctx) {
    attn_tensor *x, *w, *b;
    attn_conv2d_opts o = {{0, 0}, {0, 0}, {0, 0}, 0, {0, 0}};
    x = F32(ctx, 2, 3, 5, 5), w = F32(ctx, 4, 2, 3, 3);
    EXPECT_FAIL(ctx, attn_conv_transpose2d(ctx, x, w, NULL, NULL), ATTN_ERR_SHAPE,
                "conv_transpose2d");
    x = F32(ctx, 2, 3, 5, 5), w = F32(ctx, 3, 2, 3, 3), b = F32(ctx, 3);
    EXPECT_FAIL(ctx, attn_conv_transpose2d(ctx, x, w, b, NULL), ATTN_ERR_SHAPE,
                "conv_transpose2d");
    o.output_padding[0] = 1;
    x = F32(ctx, 2, 3, 5, 5), w = F32(ctx, 3, 2, 3, 3);
    EXPECT_FAIL(ctx, attn_conv_transpose2d(ctx, x, w, NULL, &o), ATTN_ERR_INVALID_ARG,
                "output_padding");
    o.output_padding[0] = 0, o.padding[0] = 3;
    x = F32(ctx, 2, 3, 1, 5), w = F32(ctx, 3, 2, 3, 3);
    EXPECT_FAIL(ctx, attn_conv_transpose2d(ctx, x, w, NULL, &o), ATTN_ERR_INVALID_ARG,
                "conv_transpose2d");
    o.padding[0] = 0, o.groups = 2;
    x = F32(ctx, 2, 3, 5, 5), w = F32(ctx, 3, 2, 3, 3);
    EXPECT_FAIL(ctx, attn_conv_transpose2d(ctx, x, w, NULL, &o), ATTN_ERR_INVALID_ARG, "groups");
    x = F32(ctx, 2, 3, 5, 5), w = I32(ctx, 3, 2, 3, 3);
    EXPECT_FAIL(ctx, attn_conv_transpose2d(ctx, x, w, NULL, NULL), ATTN_ERR_DTYPE,
                "conv_transpose2d");
    EXPECT_NULL_INPUT(ctx, attn_conv_transpose2d(ctx, NULL, NULL, NULL, NULL),
                      "conv_transpose2d");
}

/* The error paths shared by the two poolings (f = the op, name its name). */
static void errors_pool(attn_ctx *ctx, int max, const char *name) {
    attn_tensor *x;
    attn_pool2d_opts o = {{2, 2}, {0, 0}, {0, 0}, 0};
#define POOL(x_, o_) (max ? attn_max_pool2d(ctx, (x_), (o_), NULL) : attn_avg_pool2d(ctx, (x_), (o_)))
    x = F32(ctx, 2, 3, 5);
    EXPECT_FAIL(ctx, POOL(x, &o), ATTN_ERR_SHAPE, name);
    x = F32(ctx, 2, 3, 5, 5);
    EXPECT_FAIL(ctx, POOL(x, NULL), ATTN_ERR_INVALID_ARG, name);
    o.kernel[1] = 0;
    x = F32(ctx, 2, 3, 5, 5);
    EXPECT_FAIL(ctx, POOL(x, &o), ATTN_ERR_INVALID_ARG, "kernel");
    o.kernel[1] = 2, o.padding[0] = 2;
    x = F32(ctx, 2, 3, 5, 5);
    EXPECT_FAIL(ctx, POOL(x, &o), ATTN_ERR_INVALID_ARG, "padding");
    o.padding[0] = 0, o.stride[0] = -1;
    x = F32(ctx, 2, 3, 5, 5);
    EXPECT_FAIL(ctx, POOL(x, &o), ATTN_ERR_INVALID_ARG, "stride");
    o.stride[0] = 0, o.kernel[0] = 7;
    x = F32(ctx, 2, 3, 5, 5);
    EXPECT_FAIL(ctx, POOL(x, &o), ATTN_ERR_INVALID_ARG, "larger");
    o.kernel[0] = 2;
    x = I32(ctx, 2, 3, 5, 5);
    EXPECT_FAIL(ctx, POOL(x, &o), ATTN_ERR_DTYPE, name);
    EXPECT_NULL_INPUT(ctx, POOL(NULL, &o), name);
#undef POOL
}

static void errors_max_pool2d(attn_ctx *ctx) { errors_pool(ctx, 1, "max_pool2d"); }
static void errors_avg_pool2d(attn_ctx *ctx) { errors_pool(ctx, 0, "avg_pool2d"); }

static void errors_batchnorm(attn_ctx *ctx) {
    attn_tensor *x, *g, *rm, *rv;
    x = F32(ctx, 4), g = NULL;
    EXPECT_FAIL(ctx, attn_batchnorm(ctx, x, NULL, NULL, NULL, NULL, 0.1f, 1e-5f), ATTN_ERR_SHAPE,
                "batchnorm");
    x = F32(ctx, 4, 3, 2), g = F32(ctx, 2);
    EXPECT_FAIL(ctx, attn_batchnorm(ctx, x, g, NULL, NULL, NULL, 0.1f, 1e-5f), ATTN_ERR_SHAPE,
                "gamma");
    x = F32(ctx, 4, 3, 2), rm = F32(ctx, 3), rv = F32(ctx, 4);
    EXPECT_FAIL(ctx, attn_batchnorm(ctx, x, NULL, NULL, rm, rv, 0.1f, 1e-5f), ATTN_ERR_SHAPE,
                "running_var");
    x = F32(ctx, 4, 3, 2), rm = F32(ctx, 3);
    EXPECT_FAIL(ctx, attn_batchnorm(ctx, x, NULL, NULL, rm, NULL, 0.1f, 1e-5f),
                ATTN_ERR_INVALID_ARG, "together");
    x = F32(ctx, 4, 3, 2);
    EXPECT_FAIL(ctx, attn_batchnorm(ctx, x, NULL, NULL, NULL, NULL, 1.5f, 1e-5f),
                ATTN_ERR_INVALID_ARG, "momentum");
    x = F32(ctx, 4, 3, 2);
    EXPECT_FAIL(ctx, attn_batchnorm(ctx, x, NULL, NULL, NULL, NULL, 0.1f, -1.0f),
                ATTN_ERR_INVALID_ARG, "eps");
    x = F32(ctx, 1, 3), rm = F32(ctx, 3), rv = F32(ctx, 3);
    EXPECT_FAIL(ctx, attn_batchnorm(ctx, x, NULL, NULL, rm, rv, 0.1f, 1e-5f),
                ATTN_ERR_INVALID_ARG, "more than one value");
    x = I32(ctx, 4, 3);
    EXPECT_FAIL(ctx, attn_batchnorm(ctx, x, NULL, NULL, NULL, NULL, 0.1f, 1e-5f), ATTN_ERR_DTYPE,
                "batchnorm");
    x = F32(ctx, 4, 3), g = I32(ctx, 3);
    EXPECT_FAIL(ctx, attn_batchnorm(ctx, x, g, NULL, NULL, NULL, 0.1f, 1e-5f), ATTN_ERR_DTYPE,
                "gamma");
    EXPECT_NULL_INPUT(ctx, attn_batchnorm(ctx, NULL, NULL, NULL, NULL, NULL, 0.1f, 1e-5f),
                      "batchnorm");
}

static void errors_spectral_norm(attn_ctx *ctx) {
    attn_tensor *w, *u, *v;
    w = F32(ctx, 6), u = F32(ctx, 6), v = F32(ctx, 1);
    EXPECT_FAIL(ctx, attn_spectral_norm(ctx, w, u, v, 0, 1e-12f), ATTN_ERR_SHAPE, "spectral_norm");
    w = F32(ctx, 4, 3, 2), u = F32(ctx, 3), v = F32(ctx, 6);
    EXPECT_FAIL(ctx, attn_spectral_norm(ctx, w, u, v, 0, 1e-12f), ATTN_ERR_SHAPE, "u");
    w = F32(ctx, 4, 3, 2), u = F32(ctx, 4), v = F32(ctx, 3);
    EXPECT_FAIL(ctx, attn_spectral_norm(ctx, w, u, v, 0, 1e-12f), ATTN_ERR_SHAPE, "v");
    w = F32(ctx, 4, 3, 2), u = F32(ctx, 4), v = F32(ctx, 6);
    EXPECT_FAIL(ctx, attn_spectral_norm(ctx, w, u, v, 0, 0.0f), ATTN_ERR_INVALID_ARG, "eps");
    w = F32(ctx, 4, 3, 2), u = F32(ctx, 4), v = F32(ctx, 6);
    EXPECT_FAIL(ctx, attn_spectral_norm(ctx, w, u, v, 2, 1e-12f), ATTN_ERR_INVALID_ARG, "dim");
    w = F32(ctx, 4, 3, 2), u = F32(ctx, 4), v = F32(ctx, 6);
    EXPECT_FAIL(ctx, attn_spectral_norm(ctx, w, u, v, 1, 1e-12f), ATTN_ERR_SHAPE, "u");
    w = F32(ctx, 4, 3, 2), u = I32(ctx, 4), v = F32(ctx, 6);
    EXPECT_FAIL(ctx, attn_spectral_norm(ctx, w, u, v, 0, 1e-12f), ATTN_ERR_DTYPE, "u");
    w = I32(ctx, 4, 3), u = F32(ctx, 4), v = F32(ctx, 3);
    EXPECT_FAIL(ctx, attn_spectral_norm(ctx, w, u, v, 0, 1e-12f), ATTN_ERR_DTYPE, "spectral_norm");
    EXPECT_NULL_INPUT(ctx, attn_spectral_norm(ctx, NULL, NULL, NULL, 0, 1e-12f), "spectral_norm");
}

static void errors_txl_attention(attn_ctx *ctx) {
    attn_tensor *q, *k, *v, *rk, *u, *vb;
    attn_txl_attention_opts o;
    memset(&o, 0, sizeof o);
#define TXL_OK() (q = F32(ctx, 1, 2, 3, 4), k = F32(ctx, 1, 2, 5, 4), v = F32(ctx, 1, 2, 5, 6), \
                  rk = F32(ctx, 2, 5, 4), u = F32(ctx, 2, 4), vb = F32(ctx, 2, 4))
    TXL_OK(), q = F32(ctx, 2, 3, 4);
    EXPECT_FAIL(ctx, attn_txl_attention(ctx, q, k, v, rk, u, vb, NULL, NULL), ATTN_ERR_SHAPE, "q");
    TXL_OK(), k = F32(ctx, 1, 2, 2, 4); /* S < T */
    EXPECT_FAIL(ctx, attn_txl_attention(ctx, q, k, v, rk, u, vb, NULL, NULL), ATTN_ERR_SHAPE, "S >= T");
    TXL_OK(), v = F32(ctx, 1, 2, 4, 6);
    EXPECT_FAIL(ctx, attn_txl_attention(ctx, q, k, v, rk, u, vb, NULL, NULL), ATTN_ERR_SHAPE, "v");
    TXL_OK(), rk = F32(ctx, 2, 4, 4); /* L < S */
    EXPECT_FAIL(ctx, attn_txl_attention(ctx, q, k, v, rk, u, vb, NULL, NULL), ATTN_ERR_SHAPE, "rk");
    TXL_OK(), u = F32(ctx, 1, 4);
    EXPECT_FAIL(ctx, attn_txl_attention(ctx, q, k, v, rk, u, vb, NULL, NULL), ATTN_ERR_SHAPE, "u");
    TXL_OK(), vb = F32(ctx, 2, 3);
    EXPECT_FAIL(ctx, attn_txl_attention(ctx, q, k, v, rk, u, vb, NULL, NULL), ATTN_ERR_SHAPE, "vb");
    TXL_OK(), vb = I32(ctx, 2, 4);
    EXPECT_FAIL(ctx, attn_txl_attention(ctx, q, k, v, rk, u, vb, NULL, NULL), ATTN_ERR_DTYPE, "vb");
    TXL_OK(), o.scale = -1.0f;
    EXPECT_FAIL(ctx, attn_txl_attention(ctx, q, k, v, rk, u, vb, &o, NULL), ATTN_ERR_INVALID_ARG,
                "scale");
    memset(&o, 0, sizeof o);
    TXL_OK(), o.span = F32(ctx, 2), o.ramp = 0.0f;
    EXPECT_FAIL(ctx, attn_txl_attention(ctx, q, k, v, rk, u, vb, &o, NULL), ATTN_ERR_INVALID_ARG,
                "ramp");
    TXL_OK(), o.span = F32(ctx, 2), o.ramp = 2.0f, o.span_eps = -1.0f;
    EXPECT_FAIL(ctx, attn_txl_attention(ctx, q, k, v, rk, u, vb, &o, NULL), ATTN_ERR_INVALID_ARG,
                "eps");
    TXL_OK(), o.span = F32(ctx, 3), o.span_eps = 0.0f;
    EXPECT_FAIL(ctx, attn_txl_attention(ctx, q, k, v, rk, u, vb, &o, NULL), ATTN_ERR_SHAPE, "span");
    TXL_OK(), o.span = F32(ctx, 2);
    attn_f32(o.span)[0] = 0.0f, attn_f32(o.span)[1] = NAN;
    EXPECT_FAIL(ctx, attn_txl_attention(ctx, q, k, v, rk, u, vb, &o, NULL), ATTN_ERR_INVALID_ARG,
                "span[1]");
    memset(&o, 0, sizeof o);
    TXL_OK(), o.pers_k = F32(ctx, 2, 3, 4);
    EXPECT_FAIL(ctx, attn_txl_attention(ctx, q, k, v, rk, u, vb, &o, NULL), ATTN_ERR_INVALID_ARG,
                "together");
    TXL_OK(), o.pers_k = F32(ctx, 2, 3, 4), o.pers_v = F32(ctx, 2, 2, 6);
    EXPECT_FAIL(ctx, attn_txl_attention(ctx, q, k, v, rk, u, vb, &o, NULL), ATTN_ERR_SHAPE, "pers_v");
    TXL_OK(), o.pers_k = F32(ctx, 2, 3, 5), o.pers_v = F32(ctx, 2, 3, 6);
    EXPECT_FAIL(ctx, attn_txl_attention(ctx, q, k, v, rk, u, vb, &o, NULL), ATTN_ERR_SHAPE, "pers_k");
#undef TXL_OK
    EXPECT_NULL_INPUT(ctx, attn_txl_attention(ctx, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                      "txl_attention");
}

static void errors_lsh_attention(attn_ctx *ctx) {
    attn_tensor *qk, *v;
    attn_lsh_opts o;
    memset(&o, 0, sizeof o);
    o.n_hashes = 2, o.n_buckets = 4, o.chunk_len = 2;
#define LSH_OK() (qk = F32(ctx, 1, 2, 6, 4), v = F32(ctx, 1, 2, 6, 3))
    LSH_OK(), qk = F32(ctx, 2, 6, 4);
    EXPECT_FAIL(ctx, attn_lsh_attention(ctx, qk, v, &o), ATTN_ERR_SHAPE, "qk");
    LSH_OK(), v = F32(ctx, 1, 2, 5, 3);
    EXPECT_FAIL(ctx, attn_lsh_attention(ctx, qk, v, &o), ATTN_ERR_SHAPE, "v");
    LSH_OK(), v = I32(ctx, 1, 2, 6, 3);
    EXPECT_FAIL(ctx, attn_lsh_attention(ctx, qk, v, &o), ATTN_ERR_DTYPE, "v");
    LSH_OK();
    EXPECT_FAIL(ctx, attn_lsh_attention(ctx, qk, v, NULL), ATTN_ERR_INVALID_ARG, "opts");
    o.n_buckets = 3;
    EXPECT_FAIL(ctx, attn_lsh_attention(ctx, qk, v, &o), ATTN_ERR_INVALID_ARG, "buckets 3");
    o.n_buckets = 4, o.chunk_len = 0;
    EXPECT_FAIL(ctx, attn_lsh_attention(ctx, qk, v, &o), ATTN_ERR_INVALID_ARG, "chunk length 0");
    o.chunk_len = 2, o.n_hashes = 0;
    EXPECT_FAIL(ctx, attn_lsh_attention(ctx, qk, v, &o), ATTN_ERR_INVALID_ARG, "rounds 0");
    o.n_hashes = 2;
    attn_f32(qk)[5] = NAN;
    EXPECT_FAIL(ctx, attn_lsh_attention(ctx, qk, v, &o), ATTN_ERR_INVALID_ARG, "non-finite");
#undef LSH_OK
    EXPECT_NULL_INPUT(ctx, attn_lsh_attention(ctx, NULL, NULL, &o), "lsh_attention");
}

static void errors_graph_attention(attn_ctx *ctx) {
    attn_tensor *q, *k, *v;
    /* 3 nodes: 0 -> {0, 1}, 1 -> {2}, 2 -> {} */
    int64_t rp[4] = {0, 2, 3, 3};
    int32_t col[3] = {0, 1, 2};
    attn_graph g = {3, rp, col};
#define GA_OK() (q = F32(ctx, 1, 2, 3, 4), k = F32(ctx, 1, 2, 3, 4), v = F32(ctx, 1, 2, 3, 5))
    GA_OK(), q = F32(ctx, 2, 3, 4);
    EXPECT_FAIL(ctx, attn_graph_attention(ctx, q, k, v, &g, NULL, NULL), ATTN_ERR_SHAPE, "expected q and k");
    GA_OK(), k = F32(ctx, 1, 2, 3, 5);
    EXPECT_FAIL(ctx, attn_graph_attention(ctx, q, k, v, &g, NULL, NULL), ATTN_ERR_SHAPE, "k [1,2,3,5]");
    GA_OK(), v = I32(ctx, 1, 2, 3, 5);
    EXPECT_FAIL(ctx, attn_graph_attention(ctx, q, k, v, &g, NULL, NULL), ATTN_ERR_DTYPE, "v");
    GA_OK();
    EXPECT_FAIL(ctx, attn_graph_attention(ctx, q, k, v, NULL, NULL, NULL), ATTN_ERR_INVALID_ARG, "a graph of -1 nodes");
    g.n_nodes = 2;
    GA_OK();
    EXPECT_FAIL(ctx, attn_graph_attention(ctx, q, k, v, &g, NULL, NULL), ATTN_ERR_INVALID_ARG, "a graph of 2 nodes");
    g.n_nodes = 3, col[1] = 3;
    GA_OK();
    EXPECT_FAIL(ctx, attn_graph_attention(ctx, q, k, v, &g, NULL, NULL), ATTN_ERR_INVALID_ARG, "outside [0, 3)");
    col[1] = 0;
    GA_OK();
    EXPECT_FAIL(ctx, attn_graph_attention(ctx, q, k, v, &g, NULL, NULL), ATTN_ERR_INVALID_ARG, "not strictly increasing");
    col[1] = 1, rp[2] = 1;
    GA_OK();
    EXPECT_FAIL(ctx, attn_graph_attention(ctx, q, k, v, &g, NULL, NULL), ATTN_ERR_INVALID_ARG, "non-decreasing");
    rp[2] = 3, rp[0] = 1;
    GA_OK();
    EXPECT_FAIL(ctx, attn_graph_attention(ctx, q, k, v, &g, NULL, NULL), ATTN_ERR_INVALID_ARG, "row_ptr[0] = 1");
    rp[0] = 0;
    const attn_graph_attention_opts bad = {INFINITY};
    GA_OK();
    EXPECT_FAIL(ctx, attn_graph_attention(ctx, q, k, v, &g, &bad, NULL), ATTN_ERR_INVALID_ARG, "not finite");
#undef GA_OK
    EXPECT_NULL_INPUT(ctx, attn_graph_attention(ctx, NULL, NULL, NULL, &g, NULL, NULL), "graph_attention");
}

static void errors_lstmn(attn_ctx *ctx) {
    attn_tensor *gx, *ax, *h0, *whh, *wm, *v, *ws, *len;
#define LSTMN_OK()                                                                           \
    (gx = F32(ctx, 2, 5, 12), ax = F32(ctx, 2, 5, 4), h0 = F32(ctx, 2, 3), whh = F32(ctx, 12, 3), \
     wm = F32(ctx, 4, 3), v = F32(ctx, 4), ws = F32(ctx, 4, 3), len = I32(ctx, 2))
    LSTMN_OK(), gx = F32(ctx, 2, 5, 10);
    EXPECT_FAIL(ctx, attn_lstmn(ctx, gx, ax, h0, NULL, whh, wm, v, ws, len), ATTN_ERR_SHAPE,
                "gx");
    LSTMN_OK(), ax = F32(ctx, 2, 4, 4);
    EXPECT_FAIL(ctx, attn_lstmn(ctx, gx, ax, h0, NULL, whh, wm, v, ws, len), ATTN_ERR_SHAPE,
                "ax");
    LSTMN_OK(), h0 = F32(ctx, 3, 3);
    EXPECT_FAIL(ctx, attn_lstmn(ctx, gx, ax, h0, NULL, whh, wm, v, ws, len), ATTN_ERR_SHAPE,
                "h0");
    LSTMN_OK(), whh = F32(ctx, 12, 4);
    EXPECT_FAIL(ctx, attn_lstmn(ctx, gx, ax, h0, NULL, whh, wm, v, ws, len), ATTN_ERR_SHAPE,
                "w_hh");
    LSTMN_OK(), wm = F32(ctx, 3, 3);
    EXPECT_FAIL(ctx, attn_lstmn(ctx, gx, ax, h0, NULL, whh, wm, v, ws, len), ATTN_ERR_SHAPE,
                "w_mem");
    LSTMN_OK(), ws = F32(ctx, 4, 2);
    EXPECT_FAIL(ctx, attn_lstmn(ctx, gx, ax, h0, NULL, whh, wm, v, ws, len), ATTN_ERR_SHAPE,
                "w_sum");
    LSTMN_OK(), v = F32(ctx, 3);
    EXPECT_FAIL(ctx, attn_lstmn(ctx, gx, ax, h0, NULL, whh, wm, v, ws, len), ATTN_ERR_SHAPE,
                "v");
    LSTMN_OK(), len = F32(ctx, 2);
    EXPECT_FAIL(ctx, attn_lstmn(ctx, gx, ax, h0, NULL, whh, wm, v, ws, len), ATTN_ERR_DTYPE,
                "lengths");
    LSTMN_OK(), attn_i32(len)[1] = 6;
    EXPECT_FAIL(ctx, attn_lstmn(ctx, gx, ax, h0, NULL, whh, wm, v, ws, len), ATTN_ERR_INVALID_ARG,
                "lengths[1] = 6");
    LSTMN_OK(), attn_i32(len)[0] = -1;
    EXPECT_FAIL(ctx, attn_lstmn(ctx, gx, ax, h0, NULL, whh, wm, v, ws, len), ATTN_ERR_INVALID_ARG,
                "lengths[0] = -1");
    LSTMN_OK(), ax = I32(ctx, 2, 5, 4);
    EXPECT_FAIL(ctx, attn_lstmn(ctx, gx, ax, h0, NULL, whh, wm, v, ws, len), ATTN_ERR_DTYPE,
                "ax");
#undef LSTMN_OK
    EXPECT_NULL_INPUT(ctx, attn_lstmn(ctx, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                      "lstmn");
}

/* ---- the table: one row per op of ATTN_OP_LIST ------------------------------------
 * No forward declarations on purpose: an op added to op_table.h without
 * build_<name> and errors_<name> above is a compile error here. */

const op_case_entry op_cases[] = {
#define OPC_ROW(E, n, a, r, ga, gr) {#n, build_##n, errors_##n},
    ATTN_OP_LIST(OPC_ROW)
#undef OPC_ROW
};
const int op_cases_count = (int)(sizeof op_cases / sizeof op_cases[0]);
