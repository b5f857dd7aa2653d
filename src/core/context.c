/* context.c: the context (arena, sticky error, settings), tensor creation,
 * the tape and reverse-mode backward. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define ATTN__ALIGN 64
#define ATTN__HDR 64 /* header before each allocation when guards are on */
#define ATTN__GUARD_BYTE 0xA5

/* ---- errors ------------------------------------------------------------- */

static _Thread_local char attn__tl_msg[512];

const char *attn_last_error(void) { return attn__tl_msg; }
void attn_clear_error(void) { attn__tl_msg[0] = 0; }

const char *attn_status_str(attn_status s) {
    switch (s) {
    case ATTN_OK: return "ok";
    case ATTN_ERR_INVALID_ARG: return "invalid argument";
    case ATTN_ERR_SHAPE: return "shape mismatch";
    case ATTN_ERR_DTYPE: return "wrong dtype";
    case ATTN_ERR_OOM: return "out of memory";
    case ATTN_ERR_IO: return "i/o error";
    case ATTN_ERR_FORMAT: return "malformed file";
    case ATTN_ERR_NUMERIC: return "non-finite value";
    case ATTN_ERR_NO_GRADIENT: return "no gradient";
    case ATTN_ERR_UNSUPPORTED: return "unsupported";
    case ATTN_ERR_STATE: return "bad call order";
    default: return "unknown status";
    }
}

/* Formats into a local buffer first: an argument may be the thread-local
 * message itself (a caller passing attn_last_error() on), and vsnprintf into
 * the string it reads from is undefined. */
static void attn__vset(char *buf, size_t n, const char *fmt, va_list ap) {
    char tmp[sizeof attn__tl_msg];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    snprintf(buf, n, "%s", tmp);
}

attn_status attn__error(attn_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    attn__vset(attn__tl_msg, sizeof attn__tl_msg, fmt, ap);
    va_end(ap);
    return status;
}

attn_status attn__fail(attn_ctx *ctx, attn_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    attn__vset(attn__tl_msg, sizeof attn__tl_msg, fmt, ap);
    va_end(ap);
    if (ctx && ctx->status == ATTN_OK) {
        ctx->status = status;
        memcpy(ctx->errmsg, attn__tl_msg, sizeof ctx->errmsg);
    }
    return status;
}

/* ---- sizes ---------------------------------------------------------------- */

int attn__mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

static size_t attn__align_up(size_t n) { return (n + ATTN__ALIGN - 1) & ~(size_t)(ATTN__ALIGN - 1); }

/* ---- context ---------------------------------------------------------------- */

attn_status attn_ctx_new(attn_ctx **out, const attn_ctx_config *cfg) {
    if (!out) return attn__error(ATTN_ERR_INVALID_ARG, "attn_ctx_new: out is NULL");
    *out = NULL;
    attn_ctx_config c = {0};
    if (cfg) c = *cfg;
    if (c.arena_bytes == 0) c.arena_bytes = (size_t)256 << 20;
    if (c.guard_bytes < 0 || c.guard_bytes > 4096)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_ctx_new: guard_bytes %d outside [0, 4096]", c.guard_bytes);
    attn_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return attn__error(ATTN_ERR_OOM, "attn_ctx_new: cannot allocate the context");
    c.arena_bytes = attn__align_up(c.arena_bytes);
    ctx->arena = aligned_alloc(ATTN__ALIGN, c.arena_bytes);
    if (!ctx->arena) {
        free(ctx);
        return attn__error(ATTN_ERR_OOM, "attn_ctx_new: cannot reserve an arena of %zu bytes",
                           c.arena_bytes);
    }
    ctx->arena_cap = c.arena_bytes;
    ctx->guard_bytes = c.guard_bytes;
    ctx->grad_enabled = 1;
    ctx->training = 1;
    ctx->seed = c.seed;
    /* the environment's kernel switches, read here once (never in a kernel) */
    const char *ref = getenv("ATTN_USE_REF"), *gen = getenv("ATTN_FLASH_GENERIC");
    const char *amx = getenv("ATTN_FLASH_NO_AMX");
    ctx->use_ref = ref && ref[0] == '1';
    ctx->kernel_flags = 0;
    if (gen && gen[0] && strcmp(gen, "0") != 0) ctx->kernel_flags |= ATTN_KERNELS_PORTABLE;
    if (amx && amx[0] && strcmp(amx, "0") != 0) ctx->kernel_flags |= ATTN_KERNELS_NO_AMX;
    int nt = c.n_threads;
#if defined(_OPENMP)
    if (nt <= 0) nt = omp_get_max_threads();
#else
    nt = 1;
#endif
    ctx->n_threads = nt < 1 ? 1 : nt;
    *out = ctx;
    return ATTN_OK;
}

/* A weight the caller promised not to change (attn_ctx_freeze_weight) and
 * the packed copy of it that the bf16 tiles read, made on first use. */
typedef struct attn__frozen {
    const float *p;
    int64_t numel;
    void *packed; /* NULL until a product reads p as B */
    int trans_b;
    int64_t ldb, K, N;
} attn__frozen;

void attn_ctx_free(attn_ctx *ctx) {
    if (!ctx) return;
    attn_ctx_thaw_weights(ctx);
    free(ctx->frozen);
    free(ctx->arena);
    free(ctx);
}

attn_status attn_ctx_freeze_weight(attn_ctx *ctx, const attn_tensor *w) {
    if (!ctx || !w)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_ctx_freeze_weight: NULL %s",
                           ctx ? "tensor" : "context");
    if (w->dtype != ATTN_F32 || !attn_tensor_is_contiguous(w))
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                          "ctx_freeze_weight: the weight %s must be contiguous f32", attn__shp(w));
    const float *p = attn_f32((attn_tensor *)w);
    for (int i = 0; i < ctx->n_frozen; i++)
        if (ctx->frozen[i].p == p) return ATTN_OK;
    if (ctx->n_frozen == ctx->cap_frozen) {
        const int cap = ctx->cap_frozen ? 2 * ctx->cap_frozen : 16;
        attn__frozen *f = realloc(ctx->frozen, (size_t)cap * sizeof *f);
        if (!f)
            return attn__fail(ctx, ATTN_ERR_OOM, "ctx_freeze_weight: out of memory for %d weights",
                              cap);
        ctx->frozen = f;
        ctx->cap_frozen = cap;
    }
    ctx->frozen[ctx->n_frozen++] = (attn__frozen){.p = p, .numel = attn_tensor_numel(w)};
    return ATTN_OK;
}

void attn_ctx_thaw_weights(attn_ctx *ctx) {
    if (!ctx) return;
    for (int i = 0; i < ctx->n_frozen; i++) free(ctx->frozen[i].packed);
    ctx->n_frozen = 0;
}

const void *attn__ctx_packed_b(const attn_ctx *ctx, const float *B, int trans_b, int64_t ldb,
                               int64_t K, int64_t N) {
    if (ctx->precision != ATTN_PRECISION_BF16 || ctx->use_ref || ctx->n_frozen == 0) return NULL;
    for (int i = 0; i < ctx->n_frozen; i++) {
        attn__frozen *f = &ctx->frozen[i];
        if (f->p != B) continue;
        /* op(B) must lie inside the frozen tensor */
        const int64_t rows = trans_b ? N : K, cols = trans_b ? K : N;
        if (rows <= 0 || cols <= 0 || ldb < cols || (rows - 1) * ldb + cols > f->numel) return NULL;
        if (f->packed)
            return f->trans_b == trans_b && f->ldb == ldb && f->K == K && f->N == N ? f->packed
                                                                                       : NULL;
        f->packed = attn__bf16_pack_b(ctx->kernel_flags, trans_b, B, ldb, K, N);
        f->trans_b = trans_b, f->ldb = ldb, f->K = K, f->N = N;
        return f->packed;
    }
    return NULL;
}

void attn_ctx_reset(attn_ctx *ctx) {
    if (!ctx) return;
    ctx->arena_top = 0;
    ctx->tape_last = NULL;
    ctx->tape_size = 0;
    ctx->tape_consumed = 0;
    ctx->status = ATTN_OK;
    ctx->errmsg[0] = 0;
}

attn_status attn_ctx_status(const attn_ctx *ctx) { return ctx ? ctx->status : ATTN_ERR_INVALID_ARG; }
const char *attn_ctx_error(const attn_ctx *ctx) { return ctx ? ctx->errmsg : "no context"; }
/* The setters and getters below do nothing / return 0 on a NULL context
 * (the setters have no status to report it with). */
void attn_ctx_set_grad_enabled(attn_ctx *ctx, int e) {
    if (ctx) ctx->grad_enabled = e != 0;
}
int attn_ctx_grad_enabled(const attn_ctx *ctx) { return ctx ? ctx->grad_enabled : 0; }
void attn_ctx_set_training(attn_ctx *ctx, int t) {
    if (ctx) ctx->training = t != 0;
}
int attn_ctx_training(const attn_ctx *ctx) { return ctx ? ctx->training : 0; }
void attn_ctx_set_use_ref(attn_ctx *ctx, int u) {
    if (ctx) ctx->use_ref = u != 0;
}
int attn_ctx_use_ref(const attn_ctx *ctx) { return ctx ? ctx->use_ref : 0; }
void attn_ctx_set_kernel_flags(attn_ctx *ctx, int flags) {
    if (ctx) ctx->kernel_flags = flags & (ATTN_KERNELS_PORTABLE | ATTN_KERNELS_NO_AMX);
}
int attn_ctx_kernel_flags(const attn_ctx *ctx) { return ctx ? ctx->kernel_flags : 0; }
attn_status attn_ctx_set_precision(attn_ctx *ctx, int precision) {
    if (!ctx) return attn__error(ATTN_ERR_INVALID_ARG, "ctx_set_precision: ctx is NULL");
    if (precision != ATTN_PRECISION_F32 && precision != ATTN_PRECISION_BF16)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                          "ctx_set_precision: %d is not ATTN_PRECISION_F32 (0) or "
                          "ATTN_PRECISION_BF16 (1)",
                          precision);
    ctx->precision = precision;
    return ATTN_OK;
}
int attn_ctx_precision(const attn_ctx *ctx) { return ctx ? ctx->precision : 0; }

void attn__gemm(const attn_ctx *ctx, int n_threads, int trans_a, int trans_b, int64_t M, int64_t N,
                int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                float beta, float *C, int64_t ldc) {
    if (ctx->precision == ATTN_PRECISION_BF16)
        attn__sgemm_bf16_pre(ctx->kernel_flags, n_threads, trans_a, trans_b, M, N, K, alpha, A,
                             lda, B, ldb, beta, C, ldc,
                             attn__ctx_packed_b(ctx, B, trans_b, ldb, K, N));
    else
        attn__sgemm(n_threads, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
int attn_ctx_threads(const attn_ctx *ctx) { return ctx ? ctx->n_threads : 0; }
void attn_ctx_set_threads(attn_ctx *ctx, int n) {
    if (!ctx) return;
#if defined(_OPENMP)
    ctx->n_threads = n < 1 ? 1 : n;
#else
    (void)n;
    ctx->n_threads = 1;
#endif
}
uint64_t attn_ctx_seed(const attn_ctx *ctx) { return ctx ? ctx->seed : 0; }
uint64_t attn_ctx_rng_offset(const attn_ctx *ctx) { return ctx ? ctx->rng_offset : 0; }
void attn_ctx_set_rng(attn_ctx *ctx, uint64_t seed, uint64_t offset) {
    if (!ctx) return;
    ctx->seed = seed;
    ctx->rng_offset = offset;
}

uint64_t attn__rng_take(attn_ctx *ctx, uint64_t n, uint64_t *seed, uint64_t *g0) {
    uint64_t total = n;
    *g0 = 0;
    *seed = ctx->seed;
    if (ctx->slice_rows > 0 && n % (uint64_t)ctx->slice_rows == 0) {
        const uint64_t per_row = n / (uint64_t)ctx->slice_rows;
        *g0 = per_row * (uint64_t)ctx->slice_row0;
        total = per_row * (uint64_t)ctx->slice_total;
    }
    const uint64_t base = ctx->rng_offset;
    ctx->rng_offset += (total + 3) / 4; /* one Philox block per 4 elements */
    return base;
}

attn_status attn_ctx_set_batch_slice(attn_ctx *ctx, int64_t row0, int64_t rows, int64_t total) {
    if (!ctx) return attn__error(ATTN_ERR_INVALID_ARG, "attn_ctx_set_batch_slice: ctx is NULL");
    if (row0 < 0 || rows < 0 || total < 0 || (rows > 0 && (row0 > total || rows > total - row0)))
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                          "attn_ctx_set_batch_slice: rows [%lld, %lld + %lld) of a batch of %lld: expected "
                          "0 <= row0, 0 <= rows, row0 + rows <= total",
                          (long long)row0, (long long)row0, (long long)rows, (long long)total);
    ctx->slice_row0 = rows > 0 ? row0 : 0;
    ctx->slice_rows = rows;
    ctx->slice_total = rows > 0 ? total : 0;
    return ATTN_OK;
}
size_t attn_ctx_arena_used(const attn_ctx *ctx) { return ctx ? ctx->arena_top : 0; }
size_t attn_ctx_arena_capacity(const attn_ctx *ctx) { return ctx ? ctx->arena_cap : 0; }
size_t attn_ctx_arena_peak(const attn_ctx *ctx) { return ctx ? ctx->arena_peak : 0; }
int attn_ctx_tape_size(const attn_ctx *ctx) { return ctx ? ctx->tape_size : 0; }

/* ---- arena ------------------------------------------------------------------ */

void *attn__alloc(attn_ctx *ctx, size_t bytes, const char *what) {
    size_t hdr = ctx->guard_bytes ? ATTN__HDR : 0;
    size_t need = hdr + attn__align_up(bytes + (size_t)ctx->guard_bytes);
    if (bytes > ctx->arena_cap || need > ctx->arena_cap - ctx->arena_top) {
        attn__fail(ctx, ATTN_ERR_OOM,
                   "%s: arena full: needed %zu bytes, had %zu free of %zu (raise "
                   "attn_ctx_config.arena_bytes or reset the context each step)",
                   what, bytes, ctx->arena_cap - ctx->arena_top, ctx->arena_cap);
        return NULL;
    }
    unsigned char *p = ctx->arena + ctx->arena_top;
    if (hdr) {
        memcpy(p, &bytes, sizeof bytes);
        p += hdr;
        memset(p + bytes, ATTN__GUARD_BYTE, (size_t)ctx->guard_bytes);
    }
    ctx->arena_top += need;
    if (ctx->arena_top > ctx->arena_peak) ctx->arena_peak = ctx->arena_top;
    return p;
}

void *attn__alloc_try(attn_ctx *ctx, size_t bytes) {
    const size_t hdr = ctx->guard_bytes ? ATTN__HDR : 0;
    if (bytes > ctx->arena_cap || (size_t)ctx->guard_bytes > ctx->arena_cap - bytes ||
        hdr + attn__align_up(bytes + (size_t)ctx->guard_bytes) > ctx->arena_cap - ctx->arena_top)
        return NULL;
    return attn__alloc(ctx, bytes, "scratch");
}

size_t attn__arena_mark(const attn_ctx *ctx) { return ctx->arena_top; }

void attn__arena_rewind(attn_ctx *ctx, size_t mark) {
    if (mark <= ctx->arena_top) ctx->arena_top = mark;
}

void *attn__alloc_zero(attn_ctx *ctx, size_t bytes, const char *what) {
    void *p = attn__alloc(ctx, bytes, what);
    if (p) memset(p, 0, bytes);
    return p;
}

attn_status attn_ctx_check_guards(const attn_ctx *ctx) {
    if (!ctx) return attn__error(ATTN_ERR_INVALID_ARG, "attn_ctx_check_guards: ctx is NULL");
    if (!ctx->guard_bytes) return ATTN_OK;
    size_t off = 0, k = 0;
    while (off < ctx->arena_top) {
        size_t bytes;
        memcpy(&bytes, ctx->arena + off, sizeof bytes);
        const unsigned char *g = ctx->arena + off + ATTN__HDR + bytes;
        for (int i = 0; i < ctx->guard_bytes; i++)
            if (g[i] != ATTN__GUARD_BYTE)
                return attn__error(ATTN_ERR_STATE,
                                   "guard bytes: allocation #%zu (%zu bytes at arena offset %zu) "
                                   "was overrun at byte %d past its end",
                                   k, bytes, off + ATTN__HDR, i);
        off += ATTN__HDR + attn__align_up(bytes + (size_t)ctx->guard_bytes);
        k++;
    }
    return ATTN_OK;
}

/* ---- tensors ------------------------------------------------------------------ */

size_t attn_dtype_size(attn_dtype d) {
    switch (d) {
    case ATTN_F32: return 4;
    case ATTN_BF16: return 2;
    case ATTN_I32: return 4;
    default: return 0;
    }
}

void attn_bf16_from_f32(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], sizeof u);
        if ((u & 0x7FFFFFFFu) > 0x7F800000u)
            dst[i] = (uint16_t)((u >> 16) | 0x40u); /* NaN: keep the sign, quiet */
        else
            dst[i] = (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    }
}

void attn_f32_from_bf16(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const uint32_t u = (uint32_t)src[i] << 16;
        memcpy(&dst[i], &u, sizeof u);
    }
}

const char *attn_dtype_name(attn_dtype d) {
    switch (d) {
    case ATTN_F32: return "f32";
    case ATTN_BF16: return "bf16";
    case ATTN_I32: return "i32";
    default: return "invalid";
    }
}

int64_t attn_tensor_numel(const attn_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int attn_tensor_is_contiguous(const attn_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

char *attn_shape_str(const attn_tensor *t, char *buf, size_t n) {
    size_t k = 0;
    if (n == 0) return buf;
    buf[0] = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

const char *attn__shp(const attn_tensor *t) {
    static _Thread_local char bufs[4][96];
    static _Thread_local int next;
    char *b = bufs[next++ & 3];
    if (!t) return "(null)";
    return attn_shape_str(t, b, 96);
}

void attn__set_contiguous_strides(attn_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->stride[i] = s;
        s *= t->shape[i];
    }
}

static attn_tensor *attn__header(attn_ctx *ctx, const char *op, attn_dtype dtype, int ndim,
                                 const int64_t *shape) {
    if (ndim < 0 || ndim > ATTN_MAX_DIMS) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %d dimensions requested, attn supports 0 to %d", op,
                   ndim, ATTN_MAX_DIMS);
        return NULL;
    }
    if (attn_dtype_size(dtype) == 0) {
        attn__fail(ctx, ATTN_ERR_DTYPE, "%s: invalid dtype %d", op, (int)dtype);
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: dimension %d is %lld, expected >= 0", op, i,
                       (long long)shape[i]);
            return NULL;
        }
    /* The strides are products of dimensions (of at least 1 each): they must
     * fit in int64 even when another dimension is 0. */
    int64_t span = 1;
    for (int i = 0; i < ndim; i++) {
        int64_t d = shape[i] > 1 ? shape[i] : 1;
        if (span > INT64_MAX / d) {
            attn__fail(ctx, ATTN_ERR_OOM, "%s: a tensor with %d dims whose element count "
                       "overflows 64 bits requested", op, ndim);
            return NULL;
        }
        span *= d;
    }
    attn_tensor *t = attn__alloc(ctx, sizeof *t, op);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    attn__set_contiguous_strides(t);
    t->node = -1;
    return t;
}

static int attn__nbytes(attn_ctx *ctx, const char *op, const attn_tensor *t, size_t *bytes) {
    size_t n = attn_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++)
        if (attn__mul_size(n, (size_t)t->shape[i], &n)) {
            attn__fail(ctx, ATTN_ERR_OOM, "%s: tensor %s is too large (size overflows)", op,
                       attn__shp(t));
            return -1;
        }
    *bytes = n;
    return 0;
}

attn_tensor *attn__tensor(attn_ctx *ctx, const char *op, attn_dtype dtype, int ndim,
                          const int64_t *shape) {
    attn_tensor *t = attn__header(ctx, op, dtype, ndim, shape);
    size_t bytes;
    if (!t || attn__nbytes(ctx, op, t, &bytes)) return NULL;
    t->data = attn__alloc(ctx, bytes ? bytes : 1, op);
    return t->data ? t : NULL;
}

attn_tensor *attn__tensor_like(attn_ctx *ctx, const char *op, const attn_tensor *like) {
    return attn__tensor(ctx, op, like->dtype, like->ndim, like->shape);
}

attn_tensor *attn__tensor_view(attn_ctx *ctx, const char *op, attn_dtype dtype, int ndim,
                               const int64_t *shape, const int64_t *stride, void *data) {
    attn_tensor *t = attn__header(ctx, op, dtype, ndim, shape);
    if (!t) return NULL;
    for (int i = 0; i < ndim; i++) t->stride[i] = stride[i];
    t->data = data;
    return t;
}

attn_tensor *attn_tensor_new(attn_ctx *ctx, attn_dtype dtype, int ndim, const int64_t *shape) {
    if (!ctx) {
        attn__error(ATTN_ERR_INVALID_ARG, "attn_tensor_new: ctx is NULL");
        return NULL;
    }
    if (ndim > 0 && !shape) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "attn_tensor_new: shape is NULL for %d dims", ndim);
        return NULL;
    }
    attn_tensor *t = attn__tensor(ctx, "attn_tensor_new", dtype, ndim, shape);
    size_t bytes;
    if (!t || attn__nbytes(ctx, "attn_tensor_new", t, &bytes)) return NULL;
    memset(t->data, 0, bytes);
    return t;
}

attn_tensor *attn_tensor_from(attn_ctx *ctx, attn_dtype dtype, int ndim, const int64_t *shape,
                              const void *src) {
    if (!ctx) {
        attn__error(ATTN_ERR_INVALID_ARG, "attn_tensor_from: ctx is NULL");
        return NULL;
    }
    attn_tensor *t = attn_tensor_new(ctx, dtype, ndim, shape);
    size_t bytes;
    if (!t || attn__nbytes(ctx, "attn_tensor_from", t, &bytes)) return NULL;
    if (!src) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "attn_tensor_from: src is NULL");
        return NULL;
    }
    memcpy(t->data, src, bytes);
    return t;
}

/* ---- building ops ------------------------------------------------------------ */

int attn__any_null(attn_ctx *ctx, const char *op, int n, ...) {
    if (!ctx) {
        attn__error(ATTN_ERR_INVALID_ARG, "%s: the context is NULL", op);
        return 1;
    }
    va_list ap;
    va_start(ap, n);
    int bad = -1;
    for (int i = 0; i < n; i++) {
        const attn_tensor *t = va_arg(ap, const attn_tensor *);
        if (!t && bad < 0) bad = i;
    }
    va_end(ap);
    if (bad < 0) return 0;
    if (ctx && ctx->status == ATTN_OK)
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: input %d is NULL", op, bad);
    return 1;
}

int attn__check_dtype(attn_ctx *ctx, const char *op, const char *arg, const attn_tensor *t,
                      attn_dtype dtype) {
    if (t->dtype == dtype) return 0;
    attn__fail(ctx, ATTN_ERR_DTYPE, "%s: %s %s is %s, expected %s", op, arg, attn__shp(t),
               attn_dtype_name(t->dtype), attn_dtype_name(dtype));
    return -1;
}

int attn__axis(attn_ctx *ctx, const char *op, const attn_tensor *t, int axis) {
    int a = axis < 0 ? axis + t->ndim : axis;
    if (a < 0 || a >= t->ndim) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: axis %d out of range for a tensor %s", op, axis,
                   attn__shp(t));
        return -1;
    }
    return a;
}

attn_node *attn__node(attn_ctx *ctx, attn_op op, int n_in, attn_tensor *const *in,
                      attn_tensor *out) {
    attn_node *node = attn__alloc(ctx, sizeof *node, attn__ops[op].name);
    if (!node) return NULL;
    memset(node, 0, sizeof *node);
    node->in = attn__alloc(ctx, sizeof(attn_tensor *) * (size_t)(n_in > 0 ? n_in : 1),
                           attn__ops[op].name);
    if (!node->in) return NULL;
    for (int i = 0; i < n_in; i++) node->in[i] = in[i];
    node->op = op;
    node->n_in = n_in;
    node->out = out;
    node->index = -1;
    return node;
}

attn_tensor *attn__run(attn_ctx *ctx, attn_node *node) {
    if (!node) return NULL;
    const attn__op_info *info = &attn__ops[node->op];
    attn_status st = (ctx->use_ref ? info->ref : info->forward)(ctx, node);
    if (st != ATTN_OK) {
        if (ctx->status == ATTN_OK) attn__fail(ctx, st, "%s: forward failed", info->name);
        return NULL;
    }
    int any = 0;
    for (int i = 0; i < node->n_in; i++) any |= attn__needs_grad(node, i);
    if (ctx->grad_enabled && any) {
        node->index = ctx->tape_size++;
        node->prev = ctx->tape_last;
        ctx->tape_last = node;
        ctx->tape_consumed = 0;
        node->out->requires_grad = 1;
        node->out->node = node->index;
    }
    return node->out;
}

float *attn__grad(attn_ctx *ctx, attn_tensor *t) {
    if (t->grad) return t->grad;
    size_t bytes;
    if (attn__mul_size((size_t)attn_tensor_numel(t), sizeof(float), &bytes)) {
        attn__fail(ctx, ATTN_ERR_OOM, "backward: gradient of %s overflows", attn__shp(t));
        return NULL;
    }
    t->grad = attn__alloc_zero(ctx, bytes ? bytes : 1, "backward (gradient buffer)");
    return t->grad;
}

/* ---- backward ------------------------------------------------------------------ */

static attn_status attn__backward_walk(attn_ctx *ctx) {
    for (attn_node *node = ctx->tape_last; node; node = node->prev) {
        if (!node->out->grad) continue; /* no gradient reached this node */
        for (int i = 0; i < node->n_in; i++)
            if (attn__needs_grad(node, i) && !attn__grad(ctx, node->in[i])) return ctx->status;
        const attn__op_info *info = &attn__ops[node->op];
        attn_status st = info->backward(ctx, node);
        if (st != ATTN_OK) {
            if (ctx->status == ATTN_OK) attn__fail(ctx, st, "%s: backward failed", info->name);
            return st;
        }
    }
    ctx->tape_consumed = 1;
    return ATTN_OK;
}

static attn_status attn__backward_check(attn_ctx *ctx, attn_tensor *out, const char *fn) {
    if (!ctx) return attn__error(ATTN_ERR_INVALID_ARG, "%s: context is NULL", fn);
    if (!out) return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: output tensor is NULL", fn);
    if (ctx->tape_consumed)
        return attn__fail(ctx, ATTN_ERR_STATE,
                          "%s: the tape was already consumed by a backward pass; run the forward "
                          "again (after attn_ctx_reset) before another backward",
                          fn);
    if (out->node < 0 || !out->requires_grad)
        return attn__fail(ctx, ATTN_ERR_STATE,
                          "%s: tensor %s was not produced by a recorded op (gradients disabled, "
                          "or no input requires a gradient)",
                          fn, attn__shp(out));
    /* the node that made it must be on this context's current tape: a
     * tensor from before attn_ctx_reset, or from another context, would
     * walk (and put gradients into) a graph it does not belong to */
    const attn_node *nd = ctx->tape_last;
    while (nd && nd->index > out->node) nd = nd->prev;
    if (!nd || nd->index != out->node || nd->out != out)
        return attn__fail(ctx, ATTN_ERR_STATE,
                          "%s: tensor %s is not on this context's tape (made before the last "
                          "attn_ctx_reset, or by another context)",
                          fn, attn__shp(out));
    return ATTN_OK;
}

attn_status attn_backward(attn_ctx *ctx, attn_tensor *loss) {
    attn_status st = attn__backward_check(ctx, loss, "attn_backward");
    if (st) return st;
    if (attn_tensor_numel(loss) != 1)
        return attn__fail(ctx, ATTN_ERR_SHAPE,
                          "attn_backward: loss %s has %lld elements, expected a scalar (use "
                          "attn_backward_from for a non-scalar output)",
                          attn__shp(loss), (long long)attn_tensor_numel(loss));
    float *g = attn__grad(ctx, loss);
    if (!g) return ctx->status;
    g[0] += 1.0f;
    return attn__backward_walk(ctx);
}

attn_status attn_backward_from(attn_ctx *ctx, attn_tensor *out, const float *grad_out) {
    attn_status st = attn__backward_check(ctx, out, "attn_backward_from");
    if (st) return st;
    if (!grad_out)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "attn_backward_from: grad_out is NULL");
    float *g = attn__grad(ctx, out);
    if (!g) return ctx->status;
    int64_t n = attn_tensor_numel(out);
    for (int64_t i = 0; i < n; i++) g[i] += grad_out[i];
    return attn__backward_walk(ctx);
}

/* ---- broadcasting ------------------------------------------------------------ */

int attn__broadcast_shape(attn_ctx *ctx, const char *op, const attn_tensor *a,
                          const attn_tensor *b, int *out_ndim, int64_t *out_shape) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < nd; i++) {
        int ia = a->ndim - nd + i, ib = b->ndim - nd + i;
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            attn__fail(ctx, ATTN_ERR_SHAPE,
                       "%s: shapes %s and %s do not broadcast (dimension %d from the right: %lld "
                       "vs %lld; each must be equal or 1)",
                       op, attn__shp(a), attn__shp(b), nd - i, (long long)da, (long long)db);
            return -1;
        }
        out_shape[i] = da == 1 ? db : da;
    }
    *out_ndim = nd;
    return 0;
}

void attn__broadcast_strides(const attn_tensor *t, int out_ndim, const int64_t *out_shape,
                             int64_t *st) {
    int64_t cs[ATTN_MAX_DIMS];
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        cs[i] = s;
        s *= t->shape[i];
    }
    int pad = ATTN_MAX_DIMS - out_ndim;
    for (int i = 0; i < ATTN_MAX_DIMS; i++) st[i] = 0;
    for (int i = 0; i < out_ndim; i++) {
        int it = t->ndim - out_ndim + i;
        st[pad + i] = (it >= 0 && t->shape[it] != 1 && out_shape[i] != 1) ? cs[it] : 0;
    }
}

int attn__threads_for(const attn_ctx *ctx, double work) {
    if (ctx->n_threads <= 1 || work < 65536.0) return 1;
    return ctx->n_threads;
}
