/* unary.c: elementwise ops of one input: scale, exp, log, tanh, sigmoid,
 * relu, gelu. Shape contract: x [...] -> y [...] (same shape).
 * Derivations: docs/ops.md, "Elementwise". */
#include <math.h>
#include <string.h>

#include "../core/internal.h"
#include "../core/vmath.h"
#include "gelu_internal.h"
#include "view_internal.h"
#include "attn/ops.h"

/* The exact GELU's loops are compiled three times on x86-64 with GCC, for
 * the baseline (SSE2), AVX2 and AVX-512, chosen at load time (ifunc); ISO C
 * mode contracts no FMA and the loops are elementwise, so every clone gives
 * the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ATTN_NO_CLONES)
#define UNARY_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define UNARY_CLONES
#endif

#define ATTN__SQRT1_2 0.70710678118654752440
#define ATTN__SQRT2_PI 0.79788456080286535588 /* sqrt(2/pi) */
#define ATTN__INV_SQRT_2PI 0.39894228040143267794

static attn_tensor *unary_build(attn_ctx *ctx, attn_op op, attn_tensor *x) {
    const char *name = attn__ops[op].name;
    if (attn__any_null(ctx, name, 1, x)) return NULL;
    if (attn__check_dtype(ctx, name, "x", x, ATTN_F32)) return NULL;
    x = attn__contig(ctx, x);
    if (!x) return NULL;
    attn_tensor *y = attn__tensor_like(ctx, name, x);
    if (!y) return NULL;
    return attn__run(ctx, attn__node(ctx, op, 1, &x, y)) ? y : NULL;
}

/* The loops below are plain and branch-free where possible so that the
 * compiler vectorises them; the _ref kernels evaluate the same formula in
 * double and round once. */
#define UNARY_LOOP(ctx, node, EXPR_F, EXPR_D, is_ref)                                  \
    do {                                                                               \
        const float *x_ = attn_f32((node)->in[0]);                                     \
        float *y_ = attn_f32((node)->out);                                             \
        int64_t n_ = attn_tensor_numel((node)->out);                                   \
        if (is_ref) {                                                                  \
            for (int64_t i = 0; i < n_; i++) {                                         \
                double v = x_[i];                                                      \
                y_[i] = (float)(EXPR_D);                                               \
            }                                                                          \
        } else {                                                                       \
            int nt_ = attn__threads_for(ctx, 8.0 * (double)n_);                        \
            (void)nt_;                                                                 \
            ATTN__OMP_FOR(nt_)                                                         \
            for (int64_t i = 0; i < n_; i++) {                                         \
                float v = x_[i];                                                       \
                y_[i] = (EXPR_F);                                                      \
            }                                                                          \
        }                                                                              \
    } while (0)

/* Backward: gx += gy * f'(x, y). */
#define UNARY_BACKWARD(node, DERIV)                                                    \
    do {                                                                               \
        const float *x_ = attn_f32((node)->in[0]);                                     \
        const float *y_ = attn_f32((node)->out);                                       \
        const float *gy_ = (node)->out->grad;                                          \
        float *gx_ = (node)->in[0]->grad;                                              \
        int64_t n_ = attn_tensor_numel((node)->out);                                   \
        (void)x_;                                                                      \
        (void)y_;                                                                      \
        for (int64_t i = 0; i < n_; i++) {                                             \
            float v = x_[i], out = y_[i];                                              \
            (void)v;                                                                   \
            (void)out;                                                                 \
            gx_[i] += gy_[i] * (DERIV);                                                \
        }                                                                              \
    } while (0)

/* ---- scale: y = s * x (farg[0] = s) ---- */
attn_tensor *attn_scale(attn_ctx *ctx, attn_tensor *x, float s) {
    if (attn__any_null(ctx, "scale", 1, x)) return NULL;
    if (attn__check_dtype(ctx, "scale", "x", x, ATTN_F32)) return NULL;
    x = attn__contig(ctx, x);
    if (!x) return NULL;
    attn_tensor *y = attn__tensor_like(ctx, "scale", x);
    if (!y) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_SCALE, 1, &x, y);
    if (!node) return NULL;
    node->farg[0] = s;
    return attn__run(ctx, node);
}
attn_status attn__scale_forward(attn_ctx *ctx, attn_node *node) {
    const float s = node->farg[0];
    UNARY_LOOP(ctx, node, s * v, (double)s * v, 0);
    return ATTN_OK;
}
attn_status attn__scale_ref(attn_ctx *ctx, attn_node *node) {
    const float s = node->farg[0];
    UNARY_LOOP(ctx, node, s * v, (double)s * v, 1);
    return ATTN_OK;
}
attn_status attn__scale_backward(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const float s = node->farg[0];
    /* y = s * x  =>  dx += s * dy */
    UNARY_BACKWARD(node, s);
    return ATTN_OK;
}

/* ---- exp ---- */
attn_tensor *attn_exp(attn_ctx *ctx, attn_tensor *x) { return unary_build(ctx, ATTN_OP_EXP, x); }
attn_status attn__exp_forward(attn_ctx *ctx, attn_node *node) {
    UNARY_LOOP(ctx, node, expf(v), exp(v), 0);
    return ATTN_OK;
}
attn_status attn__exp_ref(attn_ctx *ctx, attn_node *node) {
    UNARY_LOOP(ctx, node, expf(v), exp(v), 1);
    return ATTN_OK;
}
attn_status attn__exp_backward(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    UNARY_BACKWARD(node, out); /* y = exp(x) => dx += dy * y */
    return ATTN_OK;
}

/* ---- log ---- */
attn_tensor *attn_log(attn_ctx *ctx, attn_tensor *x) { return unary_build(ctx, ATTN_OP_LOG, x); }
attn_status attn__log_forward(attn_ctx *ctx, attn_node *node) {
    UNARY_LOOP(ctx, node, logf(v), log(v), 0);
    return ATTN_OK;
}
attn_status attn__log_ref(attn_ctx *ctx, attn_node *node) {
    UNARY_LOOP(ctx, node, logf(v), log(v), 1);
    return ATTN_OK;
}
attn_status attn__log_backward(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    UNARY_BACKWARD(node, 1.0f / v); /* y = log(x) => dx += dy / x */
    return ATTN_OK;
}

/* ---- tanh ---- */
attn_tensor *attn_tanh(attn_ctx *ctx, attn_tensor *x) { return unary_build(ctx, ATTN_OP_TANH, x); }
attn_status attn__tanh_forward(attn_ctx *ctx, attn_node *node) {
    UNARY_LOOP(ctx, node, tanhf(v), tanh(v), 0);
    return ATTN_OK;
}
attn_status attn__tanh_ref(attn_ctx *ctx, attn_node *node) {
    UNARY_LOOP(ctx, node, tanhf(v), tanh(v), 1);
    return ATTN_OK;
}
attn_status attn__tanh_backward(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    UNARY_BACKWARD(node, 1.0f - out * out); /* y = tanh(x) => dx += dy (1 - y^2) */
    return ATTN_OK;
}

/* ---- sigmoid: y = 1 / (1 + exp(-x)), written to stay finite for large |x| ---- */
static inline float sigmoidf_stable(float v) {
    if (v >= 0.0f) return 1.0f / (1.0f + expf(-v));
    float e = expf(v);
    return e / (1.0f + e);
}
attn_tensor *attn_sigmoid(attn_ctx *ctx, attn_tensor *x) {
    return unary_build(ctx, ATTN_OP_SIGMOID, x);
}
attn_status attn__sigmoid_forward(attn_ctx *ctx, attn_node *node) {
    UNARY_LOOP(ctx, node, sigmoidf_stable(v), 1.0 / (1.0 + exp(-v)), 0);
    return ATTN_OK;
}
attn_status attn__sigmoid_ref(attn_ctx *ctx, attn_node *node) {
    UNARY_LOOP(ctx, node, sigmoidf_stable(v), 1.0 / (1.0 + exp(-v)), 1);
    return ATTN_OK;
}
attn_status attn__sigmoid_backward(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    UNARY_BACKWARD(node, out * (1.0f - out)); /* dx += dy y (1 - y) */
    return ATTN_OK;
}

/* ---- relu ---- */
attn_tensor *attn_relu(attn_ctx *ctx, attn_tensor *x) { return unary_build(ctx, ATTN_OP_RELU, x); }
attn_status attn__relu_forward(attn_ctx *ctx, attn_node *node) {
    UNARY_LOOP(ctx, node, v > 0.0f || v != v ? v : 0.0f, v > 0.0 || v != v ? v : 0.0, 0); /* NaN stays NaN, as PyTorch */
    return ATTN_OK;
}
attn_status attn__relu_ref(attn_ctx *ctx, attn_node *node) {
    UNARY_LOOP(ctx, node, v > 0.0f || v != v ? v : 0.0f, v > 0.0 || v != v ? v : 0.0, 1);
    return ATTN_OK;
}
attn_status attn__relu_backward(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    /* subgradient 0 at x = 0; a NaN input passes the gradient (PyTorch's
     * threshold_backward: 0 only where x <= 0) */
    UNARY_BACKWARD(node, v <= 0.0f ? 0.0f : 1.0f);
    return ATTN_OK;
}

/* ---- gelu (iarg[0] = 1 for the tanh approximation) ---- */
attn_tensor *attn_gelu(attn_ctx *ctx, attn_tensor *x, int tanh_approx) {
    if (attn__any_null(ctx, "gelu", 1, x)) return NULL;
    if (attn__check_dtype(ctx, "gelu", "x", x, ATTN_F32)) return NULL;
    if (tanh_approx != 0 && tanh_approx != 1) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "gelu: tanh_approx %d on %s: expected 0 (erf) or 1 (tanh approximation)",
                   tanh_approx, attn__shp(x));
        return NULL;
    }
    x = attn__contig(ctx, x);
    if (!x) return NULL;
    attn_tensor *y = attn__tensor_like(ctx, "gelu", x);
    if (!y) return NULL;
    attn_node *node = attn__node(ctx, ATTN_OP_GELU, 1, &x, y);
    if (!node) return NULL;
    node->iarg[0] = tanh_approx != 0;
    return attn__run(ctx, node);
}
static inline float gelu_erf(float v) { return 0.5f * v * (1.0f + erff(v * (float)ATTN__SQRT1_2)); }
static inline float gelu_tanh(float v) {
    return 0.5f * v * (1.0f + tanhf((float)ATTN__SQRT2_PI * (v + 0.044715f * v * v * v)));
}
/* The exact form with attn__erf_core_e (src/core/vmath.h) instead of libm's
 * erff: attn__gelu_erf_span, attn__gelu_dgelu_erf_span and
 * attn__dgelu_erf_span_add, also called by the fused linear + GELU
 * (matmul.c, gemm_bf16.c), so both give the same bits. */
#define GELU_CHUNK ATTN__GELU_CHUNK

/* y[i] = x[i] Phi(x[i]) for i < n (in place when y == x). */
UNARY_CLONES static void gelu_erf_block(float *y, const float *x, int64_t n) {
    attn__gelu_erf_span(y, x, n);
}

/* y[i] = GELU(x[i]) and d[i] = GELU'(x[i]) for i < n (d may equal x). */
UNARY_CLONES static void gelu_dgelu_erf_block(float *restrict y, float *d, const float *x,
                                              int64_t n) {
    attn__gelu_dgelu_erf_span(y, d, x, n);
}

/* gx[i] += gy[i] (Phi(x[i]) + x[i] phi(x[i])) for i < n. */
UNARY_CLONES static void dgelu_erf_block(float *restrict gx, const float *restrict gy,
                                         const float *restrict x, int64_t n) {
    attn__dgelu_erf_span_add(gx, gy, x, n);
}

/* Elementwise work split into nt static pieces of whole chunks. */
#define GELU_PIECES(n, nt, BODY)                                                       \
    do {                                                                               \
        const int64_t chunks_ = ((n) + GELU_CHUNK - 1) / GELU_CHUNK;                   \
        const int64_t per_ = (chunks_ + (nt) - 1) / (nt);                              \
        ATTN__OMP_FOR(nt)                                                              \
        for (int p_ = 0; p_ < (nt); p_++) {                                            \
            const int64_t lo = (int64_t)p_ * per_ * GELU_CHUNK;                        \
            int64_t len = per_ * GELU_CHUNK;                                           \
            if (lo >= (n)) continue;                                                   \
            if (len > (n) - lo) len = (n) - lo;                                        \
            BODY;                                                                      \
        }                                                                              \
    } while (0)

void attn__gelu_erf_apply(attn_ctx *ctx, float *y, const float *x, int64_t n) {
    const int nt = attn__threads_for(ctx, 30.0 * (double)n);
    GELU_PIECES(n, nt, gelu_erf_block(y + lo, x + lo, len));
}
void attn__dgelu_erf_apply_add(attn_ctx *ctx, float *gx, const float *gy, const float *x,
                               int64_t n) {
    const int nt = attn__threads_for(ctx, 40.0 * (double)n);
    GELU_PIECES(n, nt, dgelu_erf_block(gx + lo, gy + lo, x + lo, len));
}
void attn__gelu_dgelu_erf_apply(attn_ctx *ctx, float *y, float *d, const float *x, int64_t n) {
    const int nt = attn__threads_for(ctx, 35.0 * (double)n);
    GELU_PIECES(n, nt, gelu_dgelu_erf_block(y + lo, d + lo, x + lo, len));
}

attn_status attn__gelu_forward(attn_ctx *ctx, attn_node *node) {
    if (node->iarg[0]) {
        UNARY_LOOP(ctx, node, gelu_tanh(v), 0.5 * v * (1.0 + tanh(ATTN__SQRT2_PI * (v + 0.044715 * v * v * v))), 0);
        return ATTN_OK;
    }
    attn__gelu_erf_apply(ctx, attn_f32(node->out), attn_f32(node->in[0]),
                         attn_tensor_numel(node->out));
    return ATTN_OK;
}
attn_status attn__gelu_ref(attn_ctx *ctx, attn_node *node) {
    if (node->iarg[0])
        UNARY_LOOP(ctx, node, gelu_tanh(v), 0.5 * v * (1.0 + tanh(ATTN__SQRT2_PI * (v + 0.044715 * v * v * v))), 1);
    else
        UNARY_LOOP(ctx, node, gelu_erf(v), 0.5 * v * (1.0 + erf(v * ATTN__SQRT1_2)), 1);
    return ATTN_OK;
}
static inline float dgelu_tanh(float v) {
    /* y = 0.5 x (1 + tanh(u)), u = c (x + a x^3):
     * dy/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) c (1 + 3 a x^2) */
    const float c = (float)ATTN__SQRT2_PI, a = 0.044715f;
    float t = tanhf(c * (v + a * v * v * v));
    return 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * c * (1.0f + 3.0f * a * v * v);
}
attn_status attn__gelu_backward(attn_ctx *ctx, attn_node *node) {
    if (node->iarg[0]) {
        UNARY_BACKWARD(node, dgelu_tanh(v));
        return ATTN_OK;
    }
    attn__dgelu_erf_apply_add(ctx, node->in[0]->grad, node->out->grad, attn_f32(node->in[0]),
                              attn_tensor_numel(node->out));
    return ATTN_OK;
}
