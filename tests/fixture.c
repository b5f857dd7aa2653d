/* fixture.c: the strict reader of .atfx fixtures (format in fixture.h). */
#include "fixture.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A cursor over the input buffer; every read checks the remaining length. */
typedef struct reader {
    const unsigned char *p;
    size_t size, pos;
    const char *what;
    char *err;
    size_t err_size;
} reader;

static attn_status fail(reader *r, attn_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static attn_status fail(reader *r, attn_status st, const char *fmt, ...) {
    if (r->err && r->err_size) {
        int k = snprintf(r->err, r->err_size, "%s: ", r->what);
        if (k < 0) k = 0;
        if ((size_t)k < r->err_size) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(r->err + k, r->err_size - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return st;
}

static int take(reader *r, size_t n, const unsigned char **out) {
    if (n > r->size - r->pos) return -1;
    *out = r->p + r->pos;
    r->pos += n;
    return 0;
}

static int read_u32(reader *r, uint32_t *v) {
    const unsigned char *b;
    if (take(r, 4, &b)) return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

static int read_u64(reader *r, uint64_t *v) {
    uint32_t lo, hi;
    if (read_u32(r, &lo) || read_u32(r, &hi)) return -1;
    *v = (uint64_t)lo | (uint64_t)hi << 32;
    return 0;
}

void atfx_free(atfx_file *fx) {
    if (!fx) return;
    for (int i = 0; i < fx->n; i++) {
        free(fx->tensors[i].name);
        free(fx->tensors[i].data);
    }
    free(fx->tensors);
    free(fx);
}

/* Reads tensor number i; on error the message names it and the offset. */
static attn_status read_tensor(reader *r, int i, atfx_tensor *t) {
    size_t at = r->pos;
    uint32_t name_len, dtype, ndim;
    const unsigned char *b;
    if (read_u32(r, &name_len))
        return fail(r, ATTN_ERR_FORMAT, "truncated: tensor %d: name length missing at byte %zu", i,
                    at);
    if (name_len == 0 || name_len > ATFX_MAX_NAME)
        return fail(r, ATTN_ERR_FORMAT, "tensor %d: name length %u at byte %zu outside [1, %d]", i,
                    name_len, at, ATFX_MAX_NAME);
    if (take(r, name_len, &b))
        return fail(r, ATTN_ERR_FORMAT,
                    "truncated: tensor %d: name of %u bytes at byte %zu runs past the end (%zu "
                    "bytes)",
                    i, name_len, at + 4, r->size);
    if (memchr(b, 0, name_len))
        return fail(r, ATTN_ERR_FORMAT, "tensor %d: name at byte %zu contains a NUL byte", i,
                    at + 4);
    t->name = malloc((size_t)name_len + 1);
    if (!t->name) return fail(r, ATTN_ERR_OOM, "out of memory reading tensor %d", i);
    memcpy(t->name, b, name_len);
    t->name[name_len] = 0;
    if (read_u32(r, &dtype) || read_u32(r, &ndim))
        return fail(r, ATTN_ERR_FORMAT, "truncated: tensor '%s': dtype/ndim missing", t->name);
    if (dtype != ATTN_F32 && dtype != ATTN_I32)
        return fail(r, ATTN_ERR_FORMAT, "tensor '%s': dtype %u, expected 0 (f32) or 2 (i32)",
                    t->name, dtype);
    if (ndim > ATFX_MAX_DIMS)
        return fail(r, ATTN_ERR_FORMAT, "tensor '%s': %u dimensions, at most %d supported",
                    t->name, ndim, ATFX_MAX_DIMS);
    t->dtype = (attn_dtype)dtype;
    t->ndim = (int)ndim;
    uint64_t numel = 1;
    for (uint32_t d = 0; d < ndim; d++) {
        uint64_t v;
        if (read_u64(r, &v))
            return fail(r, ATTN_ERR_FORMAT, "truncated: tensor '%s': shape missing", t->name);
        if (v > (uint64_t)INT64_MAX)
            return fail(r, ATTN_ERR_FORMAT, "tensor '%s': dimension %u is negative", t->name, d);
        t->shape[d] = (int64_t)v;
        /* bounded by the bytes left, so the product cannot silently wrap */
        if (v != 0 && numel > (uint64_t)INT64_MAX / v)
            return fail(r, ATTN_ERR_FORMAT, "tensor '%s': element count overflows", t->name);
        numel *= v;
    }
    t->numel = (int64_t)numel;
    size_t left = r->size - r->pos;
    if (numel > left / 4)
        return fail(r, ATTN_ERR_FORMAT,
                    "truncated: tensor '%s' needs %llu data bytes at byte %zu, %zu left", t->name,
                    (unsigned long long)numel * 4ull, r->pos, left);
    size_t bytes = (size_t)numel * 4;
    t->data = malloc(bytes ? bytes : 1);
    if (!t->data) return fail(r, ATTN_ERR_OOM, "out of memory for tensor '%s'", t->name);
    take(r, bytes, &b);
    /* little-endian words to host order */
    uint32_t *w = t->data;
    for (size_t k = 0; k < (size_t)numel; k++, b += 4)
        w[k] = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
               (uint32_t)b[3] << 24;
    return ATTN_OK;
}

attn_status atfx_parse(const void *buf, size_t size, const char *what, atfx_file **out, char *err,
                       size_t err_size) {
    reader r = {buf, size, 0, what ? what : "fixture", err, err_size};
    if (err && err_size) err[0] = 0;
    if (!out) return fail(&r, ATTN_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (!buf && size) return fail(&r, ATTN_ERR_INVALID_ARG, "buffer is NULL");
    const unsigned char *b;
    if (take(&r, 4, &b))
        return fail(&r, ATTN_ERR_FORMAT, "truncated: %zu bytes, too short for the magic", size);
    if (memcmp(b, "ATFX", 4) != 0)
        return fail(&r, ATTN_ERR_FORMAT, "bad magic %02x %02x %02x %02x, expected \"ATFX\"", b[0],
                    b[1], b[2], b[3]);
    uint32_t version, n;
    uint64_t seed;
    if (read_u32(&r, &version))
        return fail(&r, ATTN_ERR_FORMAT, "truncated: version missing");
    if (version != ATFX_VERSION)
        return fail(&r, ATTN_ERR_FORMAT, "version %u, this reader knows version %d", version,
                    ATFX_VERSION);
    if (read_u32(&r, &n) || read_u64(&r, &seed))
        return fail(&r, ATTN_ERR_FORMAT, "truncated: header (n_tensors, seed) incomplete");
    /* each tensor takes at least 13 bytes: bounds n before allocating */
    if (n > (size - r.pos) / 13)
        return fail(&r, ATTN_ERR_FORMAT, "truncated: %u tensors announced, only %zu bytes follow",
                    n, size - r.pos);
    atfx_file *fx = calloc(1, sizeof *fx);
    if (!fx) return fail(&r, ATTN_ERR_OOM, "out of memory");
    fx->version = version;
    fx->seed = seed;
    fx->tensors = calloc(n ? n : 1, sizeof *fx->tensors);
    if (!fx->tensors) {
        free(fx);
        return fail(&r, ATTN_ERR_OOM, "out of memory");
    }
    attn_status st = ATTN_OK;
    for (uint32_t i = 0; i < n && st == ATTN_OK; i++) {
        fx->n = (int)i + 1; /* so that atfx_free releases the partial tensor */
        st = read_tensor(&r, (int)i, &fx->tensors[i]);
        for (uint32_t j = 0; j < i && st == ATTN_OK; j++)
            if (strcmp(fx->tensors[j].name, fx->tensors[i].name) == 0)
                st = fail(&r, ATTN_ERR_FORMAT, "tensor name '%s' appears twice (tensors %u and %u)",
                          fx->tensors[i].name, j, i);
    }
    if (st == ATTN_OK && r.pos != size)
        st = fail(&r, ATTN_ERR_FORMAT, "%zu trailing bytes after the last tensor (at byte %zu)",
                  size - r.pos, r.pos);
    if (st != ATTN_OK) {
        atfx_free(fx);
        return st;
    }
    *out = fx;
    return ATTN_OK;
}

attn_status atfx_load(const char *path, atfx_file **out, char *err, size_t err_size) {
    reader r = {NULL, 0, 0, path ? path : "(null)", err, err_size};
    if (err && err_size) err[0] = 0;
    if (!out || !path) return fail(&r, ATTN_ERR_INVALID_ARG, "path or out is NULL");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return fail(&r, ATTN_ERR_IO, "cannot open: %s", strerror(errno));
    unsigned char *buf = NULL;
    size_t size = 0, cap = 0;
    for (;;) {
        if (size == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            unsigned char *nb = ncap > cap ? realloc(buf, ncap) : NULL;
            if (!nb) {
                free(buf);
                fclose(f);
                return fail(&r, ATTN_ERR_OOM, "out of memory reading the file");
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + size, 1, cap - size, f);
        size += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return fail(&r, ATTN_ERR_IO, "read error");
    }
    attn_status st = atfx_parse(buf, size, path, out, err, err_size);
    free(buf);
    return st;
}

const atfx_tensor *atfx_find(const atfx_file *fx, const char *name) {
    if (!fx || !name) return NULL;
    for (int i = 0; i < fx->n; i++)
        if (strcmp(fx->tensors[i].name, name) == 0) return &fx->tensors[i];
    return NULL;
}

const atfx_tensor *atfx_findf(const atfx_file *fx, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof name) return NULL;
    return atfx_find(fx, name);
}

char *atfx_text(const atfx_tensor *t, char *buf, size_t buf_size) {
    if (!buf || !buf_size) return buf;
    buf[0] = 0;
    if (!t || t->dtype != ATTN_I32) return buf;
    size_t k = 0;
    for (int64_t i = 0; i < t->numel && k + 1 < buf_size; i++) {
        int32_t c = atfx_i32(t)[i];
        buf[k++] = (c > 0 && c < 256) ? (char)c : '?';
    }
    buf[k] = 0;
    return buf;
}

char *atfx_shape_str(const atfx_tensor *t, char *buf, size_t n) {
    if (!buf || !n) return buf;
    size_t k = 0;
    buf[0] = 0;
    k += (size_t)snprintf(buf, n, "[");
    for (int i = 0; t && i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}
