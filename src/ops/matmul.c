/* matmul.c: matrix products: matmul, bmm, linear.
 *
 * Shape contracts (see ops.h):
 *   matmul  a [..., M, K] @ b [K, N] -> [..., M, N]; the leading dims of a are
 *           flattened into rows (R = numel(a) / K), so the product is one
 *           R x K by K x N GEMM.
 *   bmm     a [Bt, M, K] (or [Bt, K, M] if trans_a), b [Bt, K, N] (or
 *           [Bt, N, K] if trans_b) -> [Bt, M, N]; Bt is 1 or 2 leading dims,
 *           equal in a and b. iarg[0] = trans_a, iarg[1] = trans_b.
 *   linear  x [..., In], w [Out, In], b [Out] or absent -> [..., Out]:
 *           y = x w^T + b, R = numel(x) / In rows.
 * Every product goes through attn__gemm (OpenBLAS or the built-in kernel, or
 * the bf16 products under ATTN_PRECISION_BF16); the reference kernels through
 * attn__sgemm_ref / attn__sgemm_bf16_ref (double accumulation).
 * Derivations: docs/ops.md, "Products".
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "../core/vmath.h"
#include "gelu_internal.h"
#include "view_internal.h"
#include "attn/ops.h"

/* The bias gradient's column sums are compiled for the baseline (SSE2), AVX2
 * and AVX-512 on x86-64 with GCC, chosen at load time (ifunc); each sum runs
 * over the rows in order in double, so every clone gives the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ATTN_NO_CLONES)
#define MATMUL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MATMUL_CLONES
#endif

/* Threads for a product of M x N x K multiply-adds. */
static int gemm_threads(const attn_ctx *ctx, int64_t M, int64_t N, int64_t K) {
    return attn__threads_for(ctx, 2.0 * (double)M * (double)N * (double)K);
}

typedef void (*gemm_fn)(const attn_ctx *ctx, int nt, int ta, int tb, int64_t M, int64_t N,
                        int64_t K, float alpha, const float *A, int64_t lda, const float *B,
                        int64_t ldb, float beta, float *C, int64_t ldc);

/* The reference product under the context's precision (f32 or bf16 operands,
 * sums in double) with the signature of attn__gemm (thread count ignored). */
static void gemm_ref(const attn_ctx *ctx, int nt, int ta, int tb, int64_t M, int64_t N, int64_t K,
                     float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                     float beta, float *C, int64_t ldc) {
    (void)nt;
    if (ctx->precision == ATTN_PRECISION_BF16)
        attn__sgemm_bf16_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        attn__sgemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ==== matmul ================================================================ */

attn_tensor *attn_matmul(attn_ctx *ctx, attn_tensor *a, attn_tensor *b) {
    if (attn__any_null(ctx, "matmul", 2, a, b)) return NULL;
    if (attn__check_dtype(ctx, "matmul", "a", a, ATTN_F32) ||
        attn__check_dtype(ctx, "matmul", "b", b, ATTN_F32))
        return NULL;
    if (b->ndim != 2) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "matmul: b %s must be 2-D [K, N] (use bmm for batches)",
                   attn__shp(b));
        return NULL;
    }
    if (a->ndim < 2) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "matmul: a %s must have at least 2 dimensions [..., M, K]",
                   attn__shp(a));
        return NULL;
    }
    if (a->shape[a->ndim - 1] != b->shape[0]) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "matmul: a %s and b %s: inner dimensions differ (%lld vs %lld)",
                   attn__shp(a), attn__shp(b), (long long)a->shape[a->ndim - 1],
                   (long long)b->shape[0]);
        return NULL;
    }
    a = attn__contig(ctx, a);
    b = attn__contig(ctx, b);
    if (!a || !b) return NULL;
    int64_t sh[ATTN_MAX_DIMS];
    for (int d = 0; d < a->ndim - 1; d++) sh[d] = a->shape[d];
    sh[a->ndim - 1] = b->shape[1];
    attn_tensor *y = attn__tensor(ctx, "matmul", ATTN_F32, a->ndim, sh);
    if (!y) return NULL;
    attn_tensor *in[2] = {a, b};
    return attn__run(ctx, attn__node(ctx, ATTN_OP_MATMUL, 2, in, y));
}

/* R (rows of a), K, N of a matmul node. */
static void matmul_dims(const attn_node *node, int64_t *R, int64_t *K, int64_t *N) {
    const attn_tensor *b = node->in[1];
    *K = b->shape[0];
    *N = b->shape[1];
    int64_t na = attn_tensor_numel(node->in[0]);
    *R = *K > 0 ? na / *K : attn_tensor_numel(node->out) / (*N > 0 ? *N : 1);
}

static attn_status matmul_fwd(attn_ctx *ctx, attn_node *node, gemm_fn gemm) {
    int64_t R, K, N;
    matmul_dims(node, &R, &K, &N);
    /* y[R,N] = a[R,K] b[K,N] */
    gemm(ctx, gemm_threads(ctx, R, N, K), 0, 0, R, N, K, 1.0f, attn_f32(node->in[0]), K,
         attn_f32(node->in[1]), N, 0.0f, attn_f32(node->out), N);
    return ATTN_OK;
}
attn_status attn__matmul_forward(attn_ctx *ctx, attn_node *node) {
    return matmul_fwd(ctx, node, attn__gemm);
}
attn_status attn__matmul_ref(attn_ctx *ctx, attn_node *node) {
    return matmul_fwd(ctx, node, gemm_ref);
}
attn_status attn__matmul_backward(attn_ctx *ctx, attn_node *node) {
    int64_t R, K, N;
    matmul_dims(node, &R, &K, &N);
    const float *a = attn_f32(node->in[0]), *b = attn_f32(node->in[1]);
    const float *gy = node->out->grad;
    int nt = gemm_threads(ctx, R, N, K);
    /* y = a b  =>  da += dy b^T   [R,N] x [N,K] */
    if (attn__needs_grad(node, 0))
        attn__gemm(ctx, nt, 0, 1, R, K, N, 1.0f, gy, N, b, N, 1.0f, node->in[0]->grad, K);
    /*          =>  db += a^T dy   [K,R] x [R,N] */
    if (attn__needs_grad(node, 1))
        attn__gemm(ctx, nt, 1, 0, K, N, R, 1.0f, a, K, gy, N, 1.0f, node->in[1]->grad, N);
    return ATTN_OK;
}

/* ==== bmm ===================================================================== */

attn_tensor *attn_bmm(attn_ctx *ctx, attn_tensor *a, attn_tensor *b, int trans_a, int trans_b) {
    if (attn__any_null(ctx, "bmm", 2, a, b)) return NULL;
    if (attn__check_dtype(ctx, "bmm", "a", a, ATTN_F32) ||
        attn__check_dtype(ctx, "bmm", "b", b, ATTN_F32))
        return NULL;
    if (a->ndim < 3 || a->ndim > 4 || b->ndim != a->ndim) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "bmm: a %s and b %s: expected both 3-D [Bt, M, K] or both 4-D [B, H, M, K]",
                   attn__shp(a), attn__shp(b));
        return NULL;
    }
    int nd = a->ndim;
    for (int d = 0; d < nd - 2; d++)
        if (a->shape[d] != b->shape[d]) {
            attn__fail(ctx, ATTN_ERR_SHAPE,
                       "bmm: a %s and b %s: batch dimensions differ (dim %d: %lld vs %lld)",
                       attn__shp(a), attn__shp(b), d, (long long)a->shape[d],
                       (long long)b->shape[d]);
            return NULL;
        }
    int64_t M = trans_a ? a->shape[nd - 1] : a->shape[nd - 2];
    int64_t Ka = trans_a ? a->shape[nd - 2] : a->shape[nd - 1];
    int64_t Kb = trans_b ? b->shape[nd - 1] : b->shape[nd - 2];
    int64_t N = trans_b ? b->shape[nd - 2] : b->shape[nd - 1];
    if (Ka != Kb) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "bmm: a %s%s and b %s%s: inner dimensions differ (%lld vs %lld)", attn__shp(a),
                   trans_a ? " (transposed)" : "", attn__shp(b), trans_b ? " (transposed)" : "",
                   (long long)Ka, (long long)Kb);
        return NULL;
    }
    a = attn__contig(ctx, a);
    b = attn__contig(ctx, b);
    if (!a || !b) return NULL;
    int64_t sh[ATTN_MAX_DIMS];
    for (int d = 0; d < nd - 2; d++) sh[d] = a->shape[d];
    sh[nd - 2] = M;
    sh[nd - 1] = N;
    attn_tensor *y = attn__tensor(ctx, "bmm", ATTN_F32, nd, sh);
    if (!y) return NULL;
    attn_tensor *in[2] = {a, b};
    attn_node *node = attn__node(ctx, ATTN_OP_BMM, 2, in, y);
    if (!node) return NULL;
    node->iarg[0] = trans_a != 0;
    node->iarg[1] = trans_b != 0;
    return attn__run(ctx, node);
}

typedef struct bmm_geom {
    int ta, tb;
    int64_t nb, M, N, K;
    int64_t lda, ldb; /* row lengths of a and b as stored */
} bmm_geom;

static bmm_geom bmm_geometry(const attn_node *node) {
    const attn_tensor *y = node->out;
    int nd = y->ndim;
    bmm_geom g;
    g.ta = (int)node->iarg[0];
    g.tb = (int)node->iarg[1];
    g.M = y->shape[nd - 2];
    g.N = y->shape[nd - 1];
    g.nb = 1;
    for (int d = 0; d < nd - 2; d++) g.nb *= y->shape[d];
    const attn_tensor *a = node->in[0];
    g.K = g.ta ? a->shape[nd - 2] : a->shape[nd - 1];
    g.lda = g.ta ? g.M : g.K;
    g.ldb = g.tb ? g.K : g.N;
    return g;
}

/* Below this many multiply-adds per batch entry, the batch is split across
 * threads (one single-threaded product each) instead of threading each
 * product: attention's per-head tiles are often this small. */
#define BMM_SMALL (128.0 * 128.0 * 128.0)

static attn_status bmm_fwd(attn_ctx *ctx, attn_node *node, gemm_fn gemm) {
    const bmm_geom g = bmm_geometry(node);
    const float *a = attn_f32(node->in[0]), *b = attn_f32(node->in[1]);
    float *y = attn_f32(node->out);
    const int64_t sa = g.M * g.K, sb = g.K * g.N, sy = g.M * g.N;
    int nt = gemm_threads(ctx, g.nb * g.M, g.N, g.K);
    if (gemm == gemm_ref || nt <= 1 || g.nb < nt ||
        (double)g.M * (double)g.N * (double)g.K >= BMM_SMALL) {
        int nt1 = gemm_threads(ctx, g.M, g.N, g.K);
        /* y[i] = op(a[i]) op(b[i]) */
        for (int64_t i = 0; i < g.nb; i++)
            gemm(ctx, nt1, g.ta, g.tb, g.M, g.N, g.K, 1.0f, a + i * sa, g.lda, b + i * sb, g.ldb, 0.0f,
                 y + i * sy, g.N);
    } else {
        ATTN__OMP_FOR(nt)
        for (int64_t i = 0; i < g.nb; i++)
            attn__gemm(ctx, 1, g.ta, g.tb, g.M, g.N, g.K, 1.0f, a + i * sa, g.lda, b + i * sb, g.ldb,
                        0.0f, y + i * sy, g.N);
    }
    return ATTN_OK;
}
attn_status attn__bmm_forward(attn_ctx *ctx, attn_node *node) {
    return bmm_fwd(ctx, node, attn__gemm);
}
attn_status attn__bmm_ref(attn_ctx *ctx, attn_node *node) { return bmm_fwd(ctx, node, gemm_ref); }

/* The two gradient products of batch entry i (nt threads each). */
static void bmm_backward_one(const attn_ctx *ctx, const attn_node *node, const bmm_geom *g, int64_t i,
                             int nt) {
    const int64_t M = g->M, N = g->N, K = g->K;
    const float *a = attn_f32(node->in[0]) + i * M * K;
    const float *b = attn_f32(node->in[1]) + i * K * N;
    const float *gy = node->out->grad + i * M * N;
    /* Forward: y = op(a) op(b), y [M,N], op(a) [M,K], op(b) [K,N]. */
    if (attn__needs_grad(node, 0)) {
        float *ga = node->in[0]->grad + i * M * K;
        if (!g->ta) /* a [M,K]:  da += dy op(b)^T */
            attn__gemm(ctx, nt, 0, !g->tb, M, K, N, 1.0f, gy, N, b, g->ldb, 1.0f, ga, K);
        else /* a [K,M] (op(a) = a^T):  da += op(b) dy^T */
            attn__gemm(ctx, nt, g->tb, 1, K, M, N, 1.0f, b, g->ldb, gy, N, 1.0f, ga, M);
    }
    if (attn__needs_grad(node, 1)) {
        float *gb = node->in[1]->grad + i * K * N;
        if (!g->tb) /* b [K,N]:  db += op(a)^T dy */
            attn__gemm(ctx, nt, !g->ta, 0, K, N, M, 1.0f, a, g->lda, gy, N, 1.0f, gb, N);
        else /* b [N,K] (op(b) = b^T):  db += dy^T op(a) */
            attn__gemm(ctx, nt, 1, g->ta, N, K, M, 1.0f, gy, N, a, g->lda, 1.0f, gb, K);
    }
}

attn_status attn__bmm_backward(attn_ctx *ctx, attn_node *node) {
    const bmm_geom g = bmm_geometry(node);
    int nt = gemm_threads(ctx, g.nb * g.M, g.N, g.K);
    if (nt <= 1 || g.nb < nt || (double)g.M * (double)g.N * (double)g.K >= BMM_SMALL) {
        int nt1 = gemm_threads(ctx, g.M, g.N, g.K);
        for (int64_t i = 0; i < g.nb; i++) bmm_backward_one(ctx, node, &g, i, nt1);
    } else {
        /* Batch entries write disjoint gradient slices. */
        ATTN__OMP_FOR(nt)
        for (int64_t i = 0; i < g.nb; i++) bmm_backward_one(ctx, node, &g, i, 1);
    }
    return ATTN_OK;
}

/* ==== linear ==================================================================== */

/* The checks and the node of linear (op LINEAR, name "linear") and
 * linear_gelu (LINEAR_GELU: saved[0] = the product before the GELU, replaced
 * by the GELU's derivative there by the forward (linear_gelu_fwd), kept
 * only when a gradient will be asked for). */
static attn_tensor *linear_build(attn_ctx *ctx, attn_op op, const char *name, attn_tensor *x,
                                 attn_tensor *w, attn_tensor *b) {
    if (attn__any_null(ctx, name, 2, x, w)) return NULL;
    if (attn__check_dtype(ctx, name, "x", x, ATTN_F32) ||
        attn__check_dtype(ctx, name, "w", w, ATTN_F32) ||
        (b && attn__check_dtype(ctx, name, "b", b, ATTN_F32)))
        return NULL;
    if (w->ndim != 2) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: w %s must be 2-D [Out, In]", name, attn__shp(w));
        return NULL;
    }
    if (x->ndim < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x %s must have at least 1 dimension [..., In]",
                   name, attn__shp(x));
        return NULL;
    }
    if (x->shape[x->ndim - 1] != w->shape[1]) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: x %s and w %s: in features differ (%lld vs %lld; w is [Out, In])",
                   name, attn__shp(x), attn__shp(w), (long long)x->shape[x->ndim - 1],
                   (long long)w->shape[1]);
        return NULL;
    }
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0])) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: b %s must be [%lld] (w %s is [Out, In])",
                   name, attn__shp(b), (long long)w->shape[0], attn__shp(w));
        return NULL;
    }
    x = attn__contig(ctx, x);
    w = attn__contig(ctx, w);
    attn_tensor *bc = b ? attn__contig(ctx, b) : NULL;
    if (!x || !w || (b && !bc)) return NULL;
    int64_t sh[ATTN_MAX_DIMS];
    for (int d = 0; d < x->ndim - 1; d++) sh[d] = x->shape[d];
    sh[x->ndim - 1] = w->shape[0];
    attn_tensor *y = attn__tensor(ctx, name, ATTN_F32, x->ndim, sh);
    if (!y) return NULL;
    attn_tensor *in[3] = {x, w, bc};
    attn_node *node = attn__node(ctx, op, bc ? 3 : 2, in, y);
    if (!node) return NULL;
    if (op == ATTN_OP_LINEAR_GELU && ctx->grad_enabled &&
        (x->requires_grad || w->requires_grad || (bc && bc->requires_grad)) &&
        !(node->saved[0] = attn__tensor(ctx, name, ATTN_F32, x->ndim, sh)))
        return NULL;
    return attn__run(ctx, node);
}

attn_tensor *attn_linear(attn_ctx *ctx, attn_tensor *x, attn_tensor *w, attn_tensor *b) {
    return linear_build(ctx, ATTN_OP_LINEAR, "linear", x, w, b);
}

static void linear_dims(const attn_node *node, int64_t *R, int64_t *In, int64_t *Out) {
    *Out = node->in[1]->shape[0];
    *In = node->in[1]->shape[1];
    *R = *Out > 0 ? attn_tensor_numel(node->out) / *Out
                  : attn_tensor_numel(node->in[0]) / (*In > 0 ? *In : 1);
}

/* t[r, :] = bias for r < R, copied inline in the clones' vectors: a memcpy
 * call per row costs more than the copy at a few hundred bytes (GCC would
 * turn the loop back into such calls: hence the optimize attribute). */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_MEMCPY_PATTERN __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NO_MEMCPY_PATTERN
#endif
MATMUL_CLONES NO_MEMCPY_PATTERN static void bias_rows(float *restrict t, const float *restrict bias,
                                                      int64_t R, int64_t Out) {
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < Out; j++) t[r * Out + j] = bias[j];
}

/* t[R, Out] = x w^T + b as linear forms it: the rows start as the bias and
 * the product adds to them. act 1 also asks for the exact GELU, which only
 * the bf16 tiles apply in the same pass (attn__sgemm_bf16_fused, which also
 * starts its tiles from the bias: the same sums): returns 1 when the GELU
 * was applied, 0 when the caller must apply it. */
static int linear_product(attn_ctx *ctx, attn_node *node, gemm_fn gemm, float *t, int act) {
    int64_t R, In, Out;
    linear_dims(node, &R, &In, &Out);
    const float *x = attn_f32(node->in[0]), *w = attn_f32(node->in[1]);
    const float *bias = node->n_in == 3 ? attn_f32(node->in[2]) : NULL;
    const int nt = gemm_threads(ctx, R, Out, In);
    if ((bias || act) && gemm != gemm_ref && ctx->precision == ATTN_PRECISION_BF16 &&
        attn__sgemm_bf16_fused(ctx->kernel_flags, nt, 0, 1, R, Out, In, x, In, w, In, t, Out, bias,
                               act, attn__ctx_packed_b(ctx, w, 1, In, In, Out)))
        return act;
    if (bias)
        bias_rows(t, bias, R, Out);
    gemm(ctx, nt, 0, 1, R, Out, In, 1.0f, x, In, w, In, bias ? 1.0f : 0.0f, t, Out);
    return 0;
}

static attn_status linear_fwd(attn_ctx *ctx, attn_node *node, gemm_fn gemm) {
    linear_product(ctx, node, gemm, attn_f32(node->out), 0);
    return ATTN_OK;
}
attn_status attn__linear_forward(attn_ctx *ctx, attn_node *node) {
    return linear_fwd(ctx, node, attn__gemm);
}
attn_status attn__linear_ref(attn_ctx *ctx, attn_node *node) {
    return linear_fwd(ctx, node, gemm_ref);
}
/* gb[j] += sum over the R rows of gy[r, j] (gy [R, Out]): double sums over
 * the rows in order, per block of 64 columns, added once. A full block keeps
 * its 64 sums in a fixed-length array (registers in the AVX-512 clone). */
MATMUL_CLONES static void bias_grad_add(float *restrict gb, const float *restrict gy, int64_t R,
                                        int64_t Out) {
    int64_t j0 = 0;
    for (; j0 + 64 <= Out; j0 += 64) {
        double s[64] = {0};
        for (int64_t r = 0; r < R; r++) {
            const float *row = gy + r * Out + j0;
            for (int j = 0; j < 64; j++) s[j] += (double)row[j];
        }
        for (int j = 0; j < 64; j++) gb[j0 + j] += (float)s[j];
    }
    if (j0 < Out) {
        const int64_t nj = Out - j0;
        double s[64] = {0};
        for (int64_t r = 0; r < R; r++) {
            const float *row = gy + r * Out + j0;
            for (int64_t j = 0; j < nj; j++) s[j] += (double)row[j];
        }
        for (int64_t j = 0; j < nj; j++) gb[j0 + j] += (float)s[j];
    }
}

/* The gradients of y = x w^T + b into the node's inputs, from gy [R, Out]. */
static void linear_bwd(attn_ctx *ctx, attn_node *node, const float *gy) {
    int64_t R, In, Out;
    linear_dims(node, &R, &In, &Out);
    const float *x = attn_f32(node->in[0]), *w = attn_f32(node->in[1]);
    int nt = gemm_threads(ctx, R, Out, In);
    /* y = x w^T + b  =>  dx += dy w     [R,Out] x [Out,In] */
    if (attn__needs_grad(node, 0))
        attn__gemm(ctx, nt, 0, 0, R, In, Out, 1.0f, gy, Out, w, In, 1.0f, node->in[0]->grad, In);
    /*                =>  dw += dy^T x   [Out,R] x [R,In] */
    if (attn__needs_grad(node, 1))
        attn__gemm(ctx, nt, 1, 0, Out, In, R, 1.0f, gy, Out, x, In, 1.0f, node->in[1]->grad, In);
    /*                =>  db += sum over rows of dy (double partial sums per
     *                    block of 64 columns, added once) */
    if (node->n_in == 3 && attn__needs_grad(node, 2)) bias_grad_add(node->in[2]->grad, gy, R, Out);
}
attn_status attn__linear_backward(attn_ctx *ctx, attn_node *node) {
    linear_bwd(ctx, node, node->out->grad);
    return ATTN_OK;
}

/* ==== linear_gelu ================================================================ */

attn_tensor *attn_linear_gelu(attn_ctx *ctx, attn_tensor *x, attn_tensor *w, attn_tensor *b) {
    return linear_build(ctx, ATTN_OP_LINEAR_GELU, "linear_gelu", x, w, b);
}

/* y = GELU(z), z = x w^T + b. Without a saved buffer (no gradient wanted)
 * the bf16 products on AMX add the bias and apply the GELU to each block of
 * the product while it is in L1 (attn__sgemm_bf16_fused); otherwise z is
 * formed as linear forms it (C filled with the bias, beta 1) and the GELU
 * runs over it: the same bits in both cases, and the same bits as linear
 * then gelu. With a gradient wanted, z is formed in saved[0] and one pass
 * writes y and replaces z by the derivative GELU'(z)
 * (attn__gelu_dgelu_erf_apply): the backward then only multiplies, instead
 * of evaluating erf and the density again. */
static attn_status linear_gelu_fwd(attn_ctx *ctx, attn_node *node, gemm_fn gemm) {
    float *y = attn_f32(node->out);
    float *z = node->saved[0] ? attn_f32(node->saved[0]) : NULL;
    float *t = z ? z : y;
    if (linear_product(ctx, node, gemm, t, z ? 0 : 1)) return ATTN_OK;
    const int64_t n = attn_tensor_numel(node->out);
    if (gemm == gemm_ref) { /* the GELU (and its derivative) in double, as the gelu op's reference */
        for (int64_t i = 0; i < n; i++) {
            const double v = t[i];
            const double cdf = 0.5 * (1.0 + erf(v * 0.70710678118654752440));
            y[i] = (float)(v * cdf);
            if (z) z[i] = (float)(cdf + v * exp(-0.5 * v * v) * 0.39894228040143267794);
        }
        return ATTN_OK;
    }
    if (z)
        attn__gelu_dgelu_erf_apply(ctx, y, z, z, n); /* z becomes GELU'(z) */
    else
        attn__gelu_erf_apply(ctx, y, t, n); /* in place */
    return ATTN_OK;
}
attn_status attn__linear_gelu_forward(attn_ctx *ctx, attn_node *node) {
    return linear_gelu_fwd(ctx, node, attn__gemm);
}
attn_status attn__linear_gelu_ref(attn_ctx *ctx, attn_node *node) {
    return linear_gelu_fwd(ctx, node, gemm_ref);
}

/* gz[i] = 0 + gy[i] d[i]: the bits of the gelu op's backward into a zeroed
 * gradient (0 + turns a -0 product into +0, as that sum does). */
MATMUL_CLONES static void mul_into(float *restrict gz, const float *restrict gy,
                                   const float *restrict d, int64_t n) {
    for (int64_t i = 0; i < n; i++) gz[i] = 0.0f + gy[i] * d[i];
}

/* dz = dy GELU'(z) (saved[0] holds GELU'(z) after the forward), then
 * linear's backward. dz is scratch: in the arena when it has room (rewound
 * after, since nothing is recorded in between: no zeroing, page faults or
 * heap call per step), else on the heap. */
attn_status attn__linear_gelu_backward(attn_ctx *ctx, attn_node *node) {
    if (!node->saved[0])
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                          "linear_gelu: backward without the saved product (built with gradients "
                          "disabled)");
    const int64_t n = attn_tensor_numel(node->out);
    const size_t bytes = sizeof(float) * (size_t)(n > 0 ? n : 1);
    const size_t mark = attn__arena_mark(ctx);
    float *gz = attn__alloc_try(ctx, bytes);
    const int in_arena = gz != NULL;
    if (!gz) gz = malloc(bytes);
    if (!gz)
        return attn__fail(ctx, ATTN_ERR_OOM, "linear_gelu: out of memory for the gradient %s",
                          attn__shp(node->out));
    const float *gy = node->out->grad, *d = attn_f32(node->saved[0]);
    const int nt = attn__threads_for(ctx, 2.0 * (double)n);
    const int64_t per = ((n + nt - 1) / nt + 15) / 16 * 16;
    (void)per;
    ATTN__OMP_FOR(nt)
    for (int p = 0; p < nt; p++) {
        const int64_t lo = (int64_t)p * per, hi = lo + per < n ? lo + per : n;
        if (lo < hi) mul_into(gz + lo, gy + lo, d + lo, hi - lo);
    }
    linear_bwd(ctx, node, gz);
    if (in_arena)
        attn__arena_rewind(ctx, mark);
    else
        free(gz);
    return ATTN_OK;
}
