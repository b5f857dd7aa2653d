/* internal.h: private declarations shared by the modules of the library.
 * Names here start with attn__ (two underscores) and are not part of the API.
 */
#ifndef ATTN_INTERNAL_H
#define ATTN_INTERNAL_H

#include <locale.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "attn/attn.h"
#include "op_table.h"

#if defined(_OPENMP)
#include <omp.h>
#define ATTN__PRAGMA(x) _Pragma(#x)
/* A statically scheduled parallel loop over nt threads (nothing without
 * OpenMP): the split depends only on nt, so results are reproducible. */
#define ATTN__OMP_FOR(nt) ATTN__PRAGMA(omp parallel for num_threads(nt) schedule(static) if ((nt) > 1))
#else
#define ATTN__OMP_FOR(nt)
#endif

/* ---- the op enum, generated from the table ---------------------------- */

typedef enum attn_op {
#define ATTN__ENUM(E, n, a, r, ga, gr) ATTN_OP_##E,
    ATTN_OP_LIST(ATTN__ENUM)
#undef ATTN__ENUM
    ATTN_OP_COUNT
} attn_op;

/* ---- tape nodes ------------------------------------------------------- */

#define ATTN__NODE_MAX_SAVED 3

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
    uint64_t seed, rng_offset;

    attn_status status;
    char errmsg[512];
};

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

/* x itself if contiguous, else a recorded CONTIGUOUS copy (NULL on error). */
attn_tensor *attn__contig(attn_ctx *ctx, attn_tensor *x);

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

/* ---- recurrent cells fed by a table (src/ops/rnn_cell.c) --------------------- */

/* attn_gru_cell_at / attn_lstm_cell_at with the gate inputs of step t looked
 * up instead of stored: row b's gx is row ids[t, b] of table P [V, G*H]
 * (ids I32 [T, B], values in [0, V), 0 <= t < T), plus row b of x2 [B, G*H]
 * when x2 is not NULL. The same values as the cell on attn_embedding(P, ids)
 * row block t (+ x2 through attn_add); the gradient of each unfrozen row is
 * added into its row of P's gradient (rows in order, one thread) and into
 * x2's. Errors as the cells, plus ATTN_ERR_INVALID_ARG for an id outside
 * [0, V). */
attn_tensor *attn__gru_cell_lookup(attn_ctx *ctx, attn_tensor *table, attn_tensor *ids, int64_t t,
                                   attn_tensor *x2, attn_tensor *h, attn_tensor *w_hh,
                                   attn_tensor *b_hh, attn_tensor *mask);
attn_tensor *attn__lstm_cell_lookup(attn_ctx *ctx, attn_tensor *table, attn_tensor *ids, int64_t t,
                                    attn_tensor *x2, attn_tensor *h, attn_tensor *c,
                                    attn_tensor *w_hh, attn_tensor *b_hh, attn_tensor *mask,
                                    attn_tensor **c_out);

/* ---- recurrent layers (src/nn/rnn.c) ---------------------------------------- */

/* attn_rnn_forward on x = attn_embedding(table, ids) (table [V, In] f32, ids
 * I32 [B, T] in [0, V)), computed the cheaper way round: layer 0's input
 * projection of every step is a row of the per-token table
 * P_d = table W_ih^T + b_ih [V, G*H] (one product of V rows per direction
 * instead of T*B rows), looked up by id. The same function of the inputs
 * (the products are summed in another order, so the last bits differ). For
 * inputs that go straight from an embedding into the layer (no dropout
 * between them). Errors as attn_rnn_forward (the ids' range is checked by
 * attn_embedding). */
attn_tensor *attn__rnn_forward_ids(attn_ctx *ctx, const attn_rnn *rnn, attn_tensor *table,
                                   attn_tensor *ids, attn_tensor *lengths, attn_tensor *h0,
                                   attn_tensor *c0, attn_tensor **h_n, attn_tensor **c_n);

/* ---- string building (src/core/strbuf.c) ------------------------------------ */

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
/* Appends n bytes of s (which must not point into b). */
void attn__sb_put(attn__strbuf *b, const void *s, size_t n);
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

/* Decodes one strict UTF-8 character at s[i], i < n: no overlongs, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF. Returns its byte
 * length (1..4) and sets *cp; returns 0, leaving *cp as it was, when s[i]
 * starts no valid character or the sequence runs past n. Callers choose
 * what an invalid byte becomes (skip it, replace it, or reject the text). */
int attn__utf8_next(const unsigned char *s, size_t n, size_t i, uint32_t *cp);

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

/* ---- attention (src/ops/sdpa.c) -------------------------------------------- */

/* Self-attention read in place from a packed projection: qkv [B, T, (H + 2
 * Hkv) D] holds, per position, the H query heads, then the Hkv key heads,
 * then the Hkv value heads (D columns each); returns [B, T, H D], head h in
 * columns h D .. h D + D (what the output projection reads). The same as
 * attn_sdpa on the split heads followed by merging them, without the copies;
 * the same options (S = T) and errors, plus ATTN_ERR_SHAPE when the last
 * dimension is not a multiple of H + 2 Hkv. One SDPA node (packed layout). */
attn_tensor *attn__sdpa_packed(attn_ctx *ctx, attn_tensor *qkv, int64_t H, int64_t Hkv,
                               const attn_sdpa_opts *opts, attn_tensor **weights);

/* The same for the fused op (src/ops/flash_sdpa.c): q, k, v read in place
 * from qkv by strides, the output written as [B, T, H D], the gradients
 * added in place into qkv's; one FLASH_SDPA node (packed layout, f32). */
attn_tensor *attn__flash_sdpa_packed(attn_ctx *ctx, attn_tensor *qkv, int64_t H, int64_t Hkv,
                                     const attn_sdpa_opts *opts, attn_tensor **weights);

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
void attn__blas_describe(const char **blas, const char **core, const char **why);
/* 1 if OpenBLAS was loaded. */
int attn__blas_loaded(void);
/* Test and bench hooks: route attn__sgemm to the built-in kernel (returns the
 * previous setting); name / force the built-in micro-kernel ("avx512",
 * "avx2", "scalar", NULL for the automatic choice; -1 if the CPU lacks it). */
int attn__gemm_force_builtin(int on);
const char *attn__gemm_kernel_name(void);
int attn__gemm_force_kernel(const char *name);

/* The built-in blocked kernel (what attn__sgemm uses without a BLAS). */
void attn__sgemm_builtin(int n_threads, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                         float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                         float beta, float *C, int64_t ldc);

#endif
