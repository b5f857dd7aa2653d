/* internal.h: the core layer's private declarations, shared by every module
 * of the library. Names here start with attn__ (two underscores) and are not
 * part of the API. This header includes only the core's public headers: a
 * module includes the public and private headers of the layers below it that
 * it uses (docs/design.md, "Layers"; tools/check_layers.py checks it).
 */
#ifndef ATTN_INTERNAL_H
#define ATTN_INTERNAL_H

#include <locale.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "attn/context.h"
#include "attn/rng.h"
#include "attn/status.h"
#include "attn/tensor.h"
#include "op_table.h"

#if defined(_OPENMP)
#include <omp.h>
#define ATTN__PRAGMA(x) _Pragma(#x)
/* A statically scheduled parallel loop over nt threads (nothing without
 * OpenMP): the split depends only on nt, so results are reproducible. */
#define ATTN__OMP_FOR(nt) ATTN__PRAGMA(omp parallel for num_threads(nt) schedule(static) if ((nt) > 1))
/* The same loop handed out in chunks of `chunk` iterations to whichever
 * thread is free: for loops whose iterations write disjoint results (so the
 * bits do not depend on which thread ran what) and whose threads may run at
 * different speeds (a virtual CPU shared with neighbours, uneven causal
 * tiles), where a static split waits for the slowest thread. */
#define ATTN__OMP_FOR_DYNAMIC(nt, chunk) \
    ATTN__PRAGMA(omp parallel for num_threads(nt) schedule(dynamic, chunk) if ((nt) > 1))
#else
#define ATTN__OMP_FOR(nt)
#define ATTN__OMP_FOR_DYNAMIC(nt, chunk)
#endif

/* ---- the op enum, generated from the table ---------------------------- */

typedef enum attn_op {
#define ATTN__ENUM(E, n, a, r, ga, gr) ATTN_OP_##E,
    ATTN_OP_LIST(ATTN__ENUM)
#undef ATTN__ENUM
    ATTN_OP_COUNT
} attn_op;

/* ---- tape nodes ------------------------------------------------------- */

#define ATTN__NODE_MAX_SAVED 4

typedef struct attn_node {
    attn_op op;
    int n_in;
    attn_tensor **in;      /* n_in inputs (arena array) */
    attn_tensor *out;
    int64_t iarg[8];       /* integer attributes, meaning per op */
    float farg[4];         /* float attributes, meaning per op */
    attn_tensor *saved[ATTN__NODE_MAX_SAVED]; /* what backward needs (arena) */
    uint64_t seed;         /* RNG stream of the node (dropout) */
    int32_t index;         /* position on the tape, -1 if not recorded */
    struct attn_node *prev;
} attn_node;

typedef attn_status (*attn__kernel_fn)(attn_ctx *ctx, attn_node *node);

typedef struct attn__op_info {
    const char *name;
    attn__kernel_fn forward, backward, ref;
    float atol, rtol, grad_atol, grad_rtol;
} attn__op_info;

/* Indexed by attn_op; defined in op_table.c. */
extern const attn__op_info attn__ops[ATTN_OP_COUNT];

/* Kernel declarations for every op of the table. */
#define ATTN__DECL(E, n, a, r, ga, gr)                                \
    attn_status attn__##n##_forward(attn_ctx *ctx, attn_node *node);  \
    attn_status attn__##n##_backward(attn_ctx *ctx, attn_node *node); \
    attn_status attn__##n##_ref(attn_ctx *ctx, attn_node *node);
ATTN_OP_LIST(ATTN__DECL)
#undef ATTN__DECL

/* ---- the context -------------------------------------------------------- */

struct attn_ctx {
    unsigned char *arena;
    size_t arena_cap, arena_top, arena_peak;
    int guard_bytes;
    size_t last_block; /* offset of the newest allocation header (guards) */

    attn_node *tape_last;
    int tape_size;
    int tape_consumed;

    int grad_enabled, training, use_ref, n_threads;
    int kernel_flags; /* ATTN_KERNELS_* (context.h): the kernel choice, read by the ops */
    int precision;    /* ATTN_PRECISION_* (context.h): what the matrix products round to */
    uint64_t seed, rng_offset;
    int64_t slice_row0, slice_rows, slice_total; /* attn_ctx_set_batch_slice (rows 0: off) */
    struct attn__frozen *frozen; /* attn_ctx_freeze_weight: n_frozen of cap_frozen */
    int n_frozen, cap_frozen;

    attn_status status;
    char errmsg[512];
};

/* The counters of a random op over n elements (dropout masks): returns
 * the offset of the op's stream and advances the context's by ceil(N / 4),
 * N = n, or, under a batch slice (attn_ctx_set_batch_slice) with n a
 * multiple of its rows, N = the global tensor's n / rows * total and *g0 =
 * the global index of this tensor's element 0 (else 0). *seed = the
 * context's seed. */
uint64_t attn__rng_take(attn_ctx *ctx, uint64_t n, uint64_t *seed, uint64_t *g0);

/* Records an error in the context (first one wins for attn_ctx_status) and
 * in the thread's last-error message; returns `status`. */
attn_status attn__fail(attn_ctx *ctx, attn_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* The same without a context (stores only the thread's message). */
attn_status attn__error(attn_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Arena allocation, 64-byte aligned; NULL (with ATTN_ERR_OOM recorded,
 * naming `what`) when full. attn__alloc_zero zeroes the block. */
void *attn__alloc(attn_ctx *ctx, size_t bytes, const char *what);
void *attn__alloc_zero(attn_ctx *ctx, size_t bytes, const char *what);
/* attn__alloc without the error: NULL, and nothing recorded, when the arena
 * has no room (for scratch that can fall back to the heap). */
void *attn__alloc_try(attn_ctx *ctx, size_t bytes);

/* A mark of the arena's current top, and a rewind to it that frees every
 * allocation made since. Only for scratch work without a tape (gradients
 * off, or no node recorded since the mark): a rewind behind a recorded node
 * would leave the tape pointing at reused memory. */
size_t attn__arena_mark(const attn_ctx *ctx);
void attn__arena_rewind(attn_ctx *ctx, size_t mark);

/* Overflow-checked size products; return 0 and set *out on success. */
int attn__mul_size(size_t a, size_t b, size_t *out);

/* A new contiguous arena tensor (data not initialised); NULL on error
 * (error recorded with `op` in the message). */
attn_tensor *attn__tensor(attn_ctx *ctx, const char *op, attn_dtype dtype, int ndim,
                          const int64_t *shape);
/* Same shape and dtype as `like`, contiguous. */
attn_tensor *attn__tensor_like(attn_ctx *ctx, const char *op, const attn_tensor *like);
/* A tensor header that views existing memory (data not copied). */
attn_tensor *attn__tensor_view(attn_ctx *ctx, const char *op, attn_dtype dtype, int ndim,
                               const int64_t *shape, const int64_t *stride, void *data);
void attn__set_contiguous_strides(attn_tensor *t);

/* ---- building ops ------------------------------------------------------- */

/* Returns 1 (after recording ATTN_ERR_INVALID_ARG unless the context already
 * holds an error) if any of the n tensors is NULL: ops begin with
 * `if (attn__any_null(ctx, "op", 2, a, b)) return NULL;` */
int attn__any_null(attn_ctx *ctx, const char *op, int n, ...);

/* Records ATTN_ERR_DTYPE unless t has `dtype`; returns 0 if it has. */
int attn__check_dtype(attn_ctx *ctx, const char *op, const char *arg, const attn_tensor *t,
                      attn_dtype dtype);

/* A node for `op` with n inputs (copied into an arena array) and output out.
 * Attributes and saved tensors are set by the caller before attn__run. */
attn_node *attn__node(attn_ctx *ctx, attn_op op, int n_in, attn_tensor *const *in,
                      attn_tensor *out);

/* Runs the node's forward (or its reference kernel when ctx->use_ref), then
 * records it on the tape when gradients are enabled and any input requires
 * them (the output then requires gradients). Returns node->out, or NULL on
 * error. */
attn_tensor *attn__run(attn_ctx *ctx, attn_node *node);

/* Ensures t->grad exists (zeroed arena buffer for activations); returns it,
 * or NULL on OOM. Parameters already own theirs. */
float *attn__grad(attn_ctx *ctx, attn_tensor *t);

/* 1 if gradient must be accumulated into input i of the node. */
static inline int attn__needs_grad(const attn_node *node, int i) {
    return node->in[i]->requires_grad && node->in[i]->dtype != ATTN_I32;
}

/* Normalises a possibly negative axis; -1 (and an error) when out of range. */
int attn__axis(attn_ctx *ctx, const char *op, const attn_tensor *t, int axis);

/* Shape text for messages, e.g. "[2,3]"; uses a rotating static buffer per
 * thread so that up to 4 may appear in one message. */
const char *attn__shp(const attn_tensor *t);

/* ---- broadcasting ----------------------------------------------------- */

/* Broadcast of a and b (right-aligned, NumPy rules): fills out_ndim and
 * out_shape; returns 0, or -1 with an ATTN_ERR_SHAPE recorded for `op`. */
int attn__broadcast_shape(attn_ctx *ctx, const char *op, const attn_tensor *a,
                          const attn_tensor *b, int *out_ndim, int64_t *out_shape);

/* Strides (in elements, 0 on broadcast dims) that read contiguous tensor t as
 * if it had shape out_shape[out_ndim]; written to st[ATTN_MAX_DIMS],
 * left-padded to ATTN_MAX_DIMS dims. */
void attn__broadcast_strides(const attn_tensor *t, int out_ndim, const int64_t *out_shape,
                             int64_t *st);

/* ---- threads ------------------------------------------------------------- */

/* The thread count an op of `work` scalar operations should use: 1 below a
 * size where threading pays, else ctx->n_threads. */
int attn__threads_for(const attn_ctx *ctx, double work);

/* ---- strings, UTF-8, growable arrays (src/core/strbuf.c) ------------------- */

/* A growable byte string, zero-initialised ({0}) before use. Once anything
 * was put (even 0 bytes), p holds len bytes followed by a NUL. When an
 * allocation fails (or a size would overflow) oom is set and every later
 * call leaves the buffer as it is, so a writer appends freely and checks oom
 * once at the end. p belongs to the caller: free() it, or attn__sb_free. */
typedef struct attn__strbuf {
    char *p;
    size_t len, cap;
    int oom;
} attn__strbuf;

/* Makes room for `extra` more bytes and the NUL; 0, or -1 with oom set. */
int attn__sb_reserve(attn__strbuf *b, size_t extra);
/* Appends n bytes of s (which must not point into b); returns 0, or -1 when
 * oom is set (now or before). */
int attn__sb_put(attn__strbuf *b, const void *s, size_t n);
void attn__sb_putc(attn__strbuf *b, char c);
void attn__sb_puts(attn__strbuf *b, const char *s);
/* Appends printf output, whatever its length; a vsnprintf failure sets oom
 * (the text would be incomplete). */
void attn__sb_printf(attn__strbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Frees p and resets b to the empty state (oom cleared). */
void attn__sb_free(attn__strbuf *b);
/* Appends str as a JSON string (RFC 8259): quotes; '"', '\\' and the short
 * escapes \b \f \n \r \t; other control characters as \u00XX; valid UTF-8
 * copied as is; each byte that starts no valid UTF-8 character as \ufffd,
 * so the output is valid JSON and valid UTF-8 whatever str holds. */
void attn__sb_json_string(attn__strbuf *b, const char *str);

/* Grows *items (of elem bytes each) to hold at least need elements,
 * doubling from 16; returns 0, or -1 on overflow or out of memory (*items
 * and *cap unchanged then). */
int attn__grow(void **items, size_t *cap, size_t need, size_t elem);

/* Decodes one strict UTF-8 character at s[i], i < n: no overlongs, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF. Returns its byte
 * length (1..4) and sets *cp; returns 0, leaving *cp as it was, when s[i]
 * starts no valid character or the sequence runs past n. Callers choose
 * what an invalid byte becomes (skip it, replace it, or reject the text). */
int attn__utf8_next(const unsigned char *s, size_t n, size_t i, uint32_t *cp);

/* attn__utf8_next for a reader that goes on past invalid bytes: decodes one
 * character at s[0 .. n-1] (n >= 1), returns its length in bytes (1-4) and
 * sets *cp; a byte that starts no valid character returns 1 with *cp = -1. */
int attn__utf8_decode(const unsigned char *s, size_t n, int32_t *cp);

/* Byte offset of the first byte of s[0 .. n) that starts no valid character
 * (attn__utf8_next's rules), or n when all of it is valid UTF-8. */
size_t attn__utf8_check(const unsigned char *s, size_t n);
/* 1 if s[0 .. n) is valid UTF-8. */
int attn__utf8_valid(const char *s, size_t n);

/* Encodes a scalar value into out (4 bytes suffice); returns the length, 0
 * for a value that is not a Unicode scalar value (negative, a surrogate,
 * above U+10FFFF). */
int attn__utf8_encode(int32_t cp, char *out);

/* The "C" numeric locale for the calling thread only (uselocale), so that
 * numbers are written with a decimal point whatever setlocale the program
 * made; attn__c_locale_end restores the thread's previous locale. Without
 * memory for a locale object the thread's locale is kept (numbers are then
 * as that locale writes them). */
typedef struct attn__c_locale {
    locale_t c, old;
} attn__c_locale;

attn__c_locale attn__c_locale_begin(void);
void attn__c_locale_end(attn__c_locale l);

/* ---- GEMM (src/core/gemm.c) ------------------------------------------------ */

/* C = alpha * op(A) op(B) + beta * C, row-major; op(A) is M x K, op(B) is
 * K x N; lda/ldb/ldc are row strides. Uses the BLAS found at run time (see
 * attn_blas_info) or the built-in blocked kernel; n_threads as given. */
void attn__sgemm(int n_threads, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                 float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                 float *C, int64_t ldc);

/* The plain reference: the same contract, triple loop accumulating in
 * double, one thread. */
void attn__sgemm_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                     int64_t ldc);

/* The strings attn_info reports (loads the matrix library first if needed). */
void attn__blas_describe(const char **blas, const char **core, const char **why,
                         const char **policy);
/* 1 if OpenBLAS was loaded. */
int attn__blas_loaded(void);
/* Test and bench hooks: route attn__sgemm to the built-in kernel (returns the
 * previous setting); name / force the built-in micro-kernel ("avx512",
 * "avx2", "scalar", NULL for the automatic choice; -1 if the CPU lacks it). */
int attn__gemm_force_builtin(int on);
const char *attn__gemm_kernel_name(void);
int attn__gemm_force_kernel(const char *name);

/* Packing space of the calling thread, kept between products (64-byte
 * aligned, `floats` floats); *owned set when the caller must free() it
 * (large requests). NULL when out of memory. Not reentrant: one product
 * of a thread uses it at a time. */
float *attn__gemm_scratch(size_t floats, int *owned);

/* C = beta * C over M x N (beta == 0 writes zeros without reading C, as in
 * BLAS); what every path does for K == 0 or alpha == 0. */
void attn__gemm_scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc);

/* The built-in blocked kernel (src/core/gemm_builtin.c; what attn__sgemm
 * uses without a BLAS). */
void attn__sgemm_builtin(int n_threads, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                         float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                         float beta, float *C, int64_t ldc);

/* ---- small products (src/core/gemm_small.c) ---------------------------------- */

/* 1 if attn__sgemm_small takes a product of this shape (short K, op(A) of
 * at most 2^18 floats, N <= 256, not TT; the measured rule is in
 * gemm_small.c); the CPU check is attn__sgemm_small's. */
int attn__sgemm_small_fits(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K);
/* attn__sgemm's contract on one thread with the direct AVX-512 kernel (no
 * packing of op(A)); returns 0 without touching C when the size does not
 * fit, the CPU has no AVX-512 or memory for the transposed op(B) is
 * lacking, 1 when done. */
int attn__sgemm_small(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc);
/* The same kernel on any shape and transpose, whatever the rule says (the
 * bench and the tests measure and check it beyond the rule); 0 only without
 * AVX-512, for empty sizes or without memory for the transposed op(B). */
int attn__sgemm_direct(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                       float *C, int64_t ldc);

/* ---- bf16 products (src/core/gemm_bf16.c) ------------------------------------ */

/* attn__sgemm's contract with both operands rounded to bf16 (round to
 * nearest even) and the sums in f32: AMX tiles where the CPU and
 * kernel_flags (ATTN_KERNELS_*) allow, else the rounded copies through
 * attn__sgemm. */
void attn__sgemm_bf16(int kernel_flags, int n_threads, int trans_a, int trans_b, int64_t M,
                      int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                      const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* C[M, N] = act(op(A) op(B) + bias) (bias [N] or NULL; act 0: none, 1: the
 * exact GELU) on the AMX tiles, bias and GELU applied to each 32 x 32 block
 * as it is finished: the same bits as a bias-filled C with beta 1 followed by
 * the GELU op. Returns 1 when done, 0 when this CPU or shape has no fused
 * path (the caller then runs the product and the epilogue itself). */
int attn__sgemm_bf16_fused(int kernel_flags, int n_threads, int trans_a, int trans_b, int64_t M,
                           int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                           int64_t ldb, float *C, int64_t ldc, const float *bias, int act,
                           const void *bpre);
/* attn__sgemm_bf16 with op(B) already packed for the tiles (bpre from
 * attn__bf16_pack_b with the same trans_b, ldb, K, N; NULL: pack it here). */
void attn__sgemm_bf16_pre(int kernel_flags, int n_threads, int trans_a, int trans_b, int64_t M,
                          int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                          const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                          const void *bpre);
/* A packed copy of op(B) for the AMX tiles (free() it), or NULL where the
 * products would not use the tiles (no AMX, N under 16) or on OOM. */
void *attn__bf16_pack_b(int kernel_flags, int trans_b, const float *B, int64_t ldb, int64_t K,
                        int64_t N);
/* The packed copy of a frozen weight (attn_ctx_freeze_weight) that B is,
 * made on first use, under ATTN_PRECISION_BF16; NULL otherwise. */
const void *attn__ctx_packed_b(const attn_ctx *ctx, const float *B, int trans_b, int64_t ldb,
                               int64_t K, int64_t N);
/* Its reference: rounded operands, sums in double. */
void attn__sgemm_bf16_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                          const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                          float *C, int64_t ldc);
/* x rounded to the nearest bf16 (kept as a float). */
float attn__bf16_round(float x);
/* 1 when the CPU has AMX-BF16 and Linux lets this process use the tiles. */
int attn__amx_usable(void);
/* "amx" or "rounded-f32": the kernel attn__sgemm_bf16 uses under these flags
 * (for products of at least 16 x 16). */
const char *attn__gemm_bf16_kernel(int kernel_flags);

/* The product an op runs under the context's precision: attn__sgemm
 * (ATTN_PRECISION_F32) or attn__sgemm_bf16. */
void attn__gemm(const attn_ctx *ctx, int n_threads, int trans_a, int trans_b, int64_t M, int64_t N,
                int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                float beta, float *C, int64_t ldc);

#endif
