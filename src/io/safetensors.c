/* safetensors.c: the safetensors format: the reader (a strict parser of its
 * JSON header) and the atomic writer of f32 tensors. Parameter stores and
 * training checkpoints are built on it in src/train/checkpoint.c.
 *
 * The reader holds the whole file in memory; the parser knows the shape of a
 * safetensors header (an object of tensor entries and one metadata object of
 * strings) and accepts nothing else, so it needs no recursion and no general
 * JSON values. Integers in files are little-endian and are read and written
 * byte by byte, so the code is independent of the host's byte order.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/internal.h"
#include "atomic_file_internal.h"
#include "attn/safetensors.h"
#include "safetensors_internal.h"

#define ST_MAX_HEADER 100000000u /* the reference implementation's limit */

/* ---- dtypes ------------------------------------------------------------------ */

static const struct {
    const char *name;
    size_t size;
} st_dtypes[ATTN_ST_DTYPE_COUNT] = {
    [ATTN_ST_BOOL] = {"BOOL", 1},  [ATTN_ST_U8] = {"U8", 1},
    [ATTN_ST_I8] = {"I8", 1},      [ATTN_ST_F8_E4M3] = {"F8_E4M3", 1},
    [ATTN_ST_F8_E5M2] = {"F8_E5M2", 1}, [ATTN_ST_I16] = {"I16", 2},
    [ATTN_ST_U16] = {"U16", 2},    [ATTN_ST_F16] = {"F16", 2},
    [ATTN_ST_BF16] = {"BF16", 2},  [ATTN_ST_I32] = {"I32", 4},
    [ATTN_ST_U32] = {"U32", 4},    [ATTN_ST_F32] = {"F32", 4},
    [ATTN_ST_I64] = {"I64", 8},    [ATTN_ST_U64] = {"U64", 8},
    [ATTN_ST_F64] = {"F64", 8},
};

const char *attn_st_dtype_name(attn_st_dtype d) {
    return (unsigned)d < ATTN_ST_DTYPE_COUNT ? st_dtypes[d].name : "?";
}

size_t attn_st_dtype_size(attn_st_dtype d) {
    return (unsigned)d < ATTN_ST_DTYPE_COUNT ? st_dtypes[d].size : 0;
}

/* ATTN_ERR_IO "FN: cannot WHAT PATH: <the system's reason>" (from errno). */
static attn_status fail_io(const char *fn, const char *what, const char *path) {
    return attn__error(ATTN_ERR_IO, "%s: cannot %s %s: %s", fn, what, path, strerror(errno));
}

/* ---- little-endian bytes and float conversions ----------------------------------- */

static uint64_t rd_u64(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

static void wr_u64(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* IEEE binary16 -> binary32, exact (subnormals normalised, NaN payload kept). */
static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    uint32_t u;
    if (e == 0x1f) {
        u = sign | 0x7f800000u | (m << 13);
    } else if (e != 0) {
        u = sign | ((e + 112u) << 23) | (m << 13);
    } else if (m == 0) {
        u = sign;
    } else { /* subnormal: m * 2^-24; shift the leading one into the implicit bit */
        uint32_t exp = 113;
        while (!(m & 0x400u)) {
            m <<= 1;
            exp--;
        }
        u = sign | (exp << 23) | ((m & 0x3ffu) << 13);
    }
    return bits_to_f32(u);
}

attn_status attn_safetensors_read_f32(const attn_st_tensor *t, float *dst) {
    if (!t || (!dst && t->numel > 0))
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_safetensors_read_f32: NULL tensor or dst");
    const unsigned char *b = t->data;
    int64_t n = t->numel;
    switch (t->dtype) {
    case ATTN_ST_F32:
        for (int64_t i = 0; i < n; i++, b += 4)
            dst[i] = bits_to_f32((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                                 (uint32_t)b[3] << 24);
        return ATTN_OK;
    case ATTN_ST_BF16: /* the upper half of a float32 */
        for (int64_t i = 0; i < n; i++, b += 2)
            dst[i] = bits_to_f32(((uint32_t)b[0] | (uint32_t)b[1] << 8) << 16);
        return ATTN_OK;
    case ATTN_ST_F16:
        for (int64_t i = 0; i < n; i++, b += 2)
            dst[i] = f16_to_f32((uint16_t)(b[0] | b[1] << 8));
        return ATTN_OK;
    default:
        return attn__error(ATTN_ERR_DTYPE,
                           "attn_safetensors_read_f32: tensor '%s' is %s; only F32, F16 and "
                           "BF16 convert to float", t->name, attn_st_dtype_name(t->dtype));
    }
}

/* ---- the open file ------------------------------------------------------------ */

struct attn_safetensors {
    unsigned char *bytes; /* the whole file */
    size_t size;
    attn_st_tensor *tensors; /* sorted by offset */
    int n_tensors;
    size_t cap_tensors;
    const char **by_name;    /* the names, sorted (for find and the uniqueness check) */
    int *by_name_index;      /* by_name[k] is the name of tensors[by_name_index[k]] */
    char **meta;             /* 2 * n_meta strings: key, value, ... */
    int n_meta;
    size_t cap_meta;
};

void attn_safetensors_close(attn_safetensors *f) {
    if (!f) return;
    for (int i = 0; i < f->n_tensors; i++) free((char *)f->tensors[i].name);
    for (int i = 0; i < 2 * f->n_meta; i++) free(f->meta[i]);
    free(f->tensors);
    free(f->by_name);
    free(f->by_name_index);
    free(f->meta);
    free(f->bytes);
    free(f);
}

int attn_safetensors_count(const attn_safetensors *f) { return f ? f->n_tensors : 0; }

const attn_st_tensor *attn_safetensors_at(const attn_safetensors *f, int i) {
    return f && i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const attn_st_tensor *attn_safetensors_find(const attn_safetensors *f, const char *name) {
    if (!f || !name) return NULL;
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->by_name[mid]);
        if (c == 0) return &f->tensors[f->by_name_index[mid]];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

int attn_safetensors_metadata_count(const attn_safetensors *f) { return f ? f->n_meta : 0; }

int attn_safetensors_metadata_at(const attn_safetensors *f, int i, const char **key,
                                 const char **value) {
    if (!f || i < 0 || i >= f->n_meta) return -1;
    if (key) *key = f->meta[2 * i];
    if (value) *value = f->meta[2 * i + 1];
    return 0;
}

const char *attn_safetensors_metadata(const attn_safetensors *f, const char *key) {
    for (int i = 0; f && key && i < f->n_meta; i++)
        if (strcmp(f->meta[2 * i], key) == 0) return f->meta[2 * i + 1];
    return NULL;
}

/* ---- the header parser ----------------------------------------------------------- */

typedef struct jp {
    const unsigned char *s; /* the header */
    size_t n, i;
    const char *file;       /* for messages */
} jp;

static const char *jp_found(const jp *p, char *buf, size_t n) {
    if (p->i >= p->n) return "the end of the header";
    unsigned c = p->s[p->i];
    if (c >= 0x20 && c < 0x7f) snprintf(buf, n, "'%c'", (char)c);
    else snprintf(buf, n, "byte 0x%02x", c);
    return buf;
}

/* ATTN_ERR_FORMAT "safetensors: FILE: header byte I: <what>, found X". */
static attn_status jp_expected(const jp *p, const char *what) {
    char buf[16];
    return attn__error(ATTN_ERR_FORMAT, "safetensors: %s: header byte %zu: expected %s, found %s",
                       p->file, p->i, what, jp_found(p, buf, sizeof buf));
}

static void jp_ws(jp *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                           p->s[p->i] == '\r'))
        p->i++;
}

/* Consumes c (after whitespace) or fails naming `what`. */
static attn_status jp_expect(jp *p, char c, const char *what) {
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == (unsigned char)c) {
        p->i++;
        return ATTN_OK;
    }
    return jp_expected(p, what);
}

static int jp_hex4(const jp *p, size_t at, unsigned *out) {
    if (at + 4 > p->n) return -1;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned c = p->s[at + (size_t)k], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

/* A JSON string (after whitespace) into a new NUL-terminated UTF-8 string.
 * The header was checked to be UTF-8 beforehand; escapes are decoded,
 * surrogate pairs joined; control characters, lone surrogates and \u0000
 * (which a C string cannot hold) are errors. */
static attn_status jp_string(jp *p, char **out, const char *what) {
    *out = NULL;
    jp_ws(p);
    if (p->i >= p->n || p->s[p->i] != '"') return jp_expected(p, what);
    size_t start = ++p->i, end = start;
    while (end < p->n && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->n) {
        p->i = p->n;
        return jp_expected(p, "the closing '\"' of a string");
    }
    char *o = malloc(end - start + 1); /* decoding never lengthens */
    if (!o) return attn__error(ATTN_ERR_OOM, "safetensors: %s: out of memory", p->file);
    size_t k = 0;
    while (p->i < end) {
        unsigned c = p->s[p->i];
        if (c < 0x20) {
            free(o);
            return jp_expected(p, "no control character inside a string");
        }
        if (c != '\\') {
            o[k++] = (char)c;
            p->i++;
            continue;
        }
        unsigned e = p->s[p->i + 1];
        const char *simple = strchr("\"\\/bfnrt", (int)e);
        if (e && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            o[k++] = map[simple - "\"\\/bfnrt"];
            p->i += 2;
            continue;
        }
        unsigned cp, lo;
        if (e != 'u' || jp_hex4(p, p->i + 2, &cp)) {
            free(o);
            p->i++;
            return jp_expected(p, "a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
        }
        size_t esc = p->i;
        p->i += 6;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (p->i + 1 < end && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u' &&
                !jp_hex4(p, p->i + 2, &lo) && lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p->i += 6;
            } else {
                cp = 0xdc00; /* a lone high surrogate: reported below */
            }
        }
        if ((cp >= 0xdc00 && cp <= 0xdfff) || cp == 0) {
            free(o);
            p->i = esc;
            return jp_expected(p, cp ? "no lone UTF-16 surrogate in a \\u escape"
                                     : "no \\u0000 in a string");
        }
        k += (size_t)attn__utf8_encode((int32_t)cp, o + k);
    }
    o[k] = 0;
    p->i = end + 1;
    *out = o;
    return ATTN_OK;
}

/* A non-negative JSON integer that fits in int64 (no sign, fraction,
 * exponent or leading zero). */
static attn_status jp_uint(jp *p, uint64_t *out, const char *what) {
    jp_ws(p);
    size_t i = p->i;
    if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') return jp_expected(p, what);
    uint64_t v = 0;
    if (p->s[i] == '0' && i + 1 < p->n && p->s[i + 1] >= '0' && p->s[i + 1] <= '9')
        return jp_expected(p, "an integer without leading zeros");
    while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') {
        unsigned d = p->s[i] - '0';
        if (v > ((uint64_t)INT64_MAX - d) / 10) return jp_expected(p, "an integer below 2^63");
        v = v * 10 + d;
        i++;
    }
    if (i < p->n && (p->s[i] == '.' || p->s[i] == 'e' || p->s[i] == 'E')) {
        p->i = i;
        return jp_expected(p, "an integer (no fraction or exponent)");
    }
    p->i = i;
    *out = v;
    return ATTN_OK;
}

/* A JSON array of at most max non-negative integers; *count receives the
 * number read. */
static attn_status jp_uint_array(jp *p, uint64_t *v, int max, int *count, const char *what) {
    attn_status st;
    *count = 0;
    if ((st = jp_expect(p, '[', what))) return st;
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
        return ATTN_OK;
    }
    for (;;) {
        if (*count == max) {
            char buf[96];
            snprintf(buf, sizeof buf, "at most %d integers in %s", max, what);
            return jp_expected(p, buf);
        }
        if ((st = jp_uint(p, &v[*count], "a non-negative integer"))) return st;
        (*count)++;
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == ']') {
            p->i++;
            return ATTN_OK;
        }
        if ((st = jp_expect(p, ',', "',' or ']' in an array"))) return st;
    }
}

/* One tensor entry {"dtype": ..., "shape": [...], "data_offsets": [b, e]}
 * (fields in any order, each exactly once, no other field). Fills t except
 * name/data. */
static attn_status jp_tensor(jp *p, const char *name, attn_st_tensor *t, uint64_t off[2]) {
    attn_status st;
    char what[320];
    snprintf(what, sizeof what, "'{' opening the entry of tensor '%.255s'", name);
    if ((st = jp_expect(p, '{', what))) return st;
    int have_dtype = 0, have_shape = 0, have_off = 0;
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
    } else {
        for (;;) {
            char *key;
            size_t key_at;
            jp_ws(p);
            key_at = p->i;
            if ((st = jp_string(p, &key, "a field name (dtype, shape or data_offsets)"))) return st;
            int which = strcmp(key, "dtype") == 0 ? 0 : strcmp(key, "shape") == 0 ? 1
                        : strcmp(key, "data_offsets") == 0 ? 2 : -1;
            int *seen = which == 0 ? &have_dtype : which == 1 ? &have_shape : &have_off;
            if (which < 0 || *seen) {
                st = attn__error(ATTN_ERR_FORMAT,
                                 "safetensors: %s: header byte %zu: tensor '%.255s' has %s field "
                                 "\"%.64s\" (expected dtype, shape, data_offsets once each)",
                                 p->file, key_at, name, which < 0 ? "an unknown" : "a repeated",
                                 key);
                free(key);
                return st;
            }
            free(key);
            *seen = 1;
            if ((st = jp_expect(p, ':', "':' after a field name"))) return st;
            if (which == 0) {
                char *dt;
                jp_ws(p);
                size_t dt_at = p->i;
                if ((st = jp_string(p, &dt, "a dtype string"))) return st;
                int d = 0;
                while (d < ATTN_ST_DTYPE_COUNT && strcmp(dt, st_dtypes[d].name) != 0) d++;
                if (d == ATTN_ST_DTYPE_COUNT) {
                    st = attn__error(ATTN_ERR_FORMAT,
                                     "safetensors: %s: header byte %zu: tensor '%.255s' has "
                                     "unknown dtype \"%.32s\"", p->file, dt_at, name, dt);
                    free(dt);
                    return st;
                }
                free(dt);
                t->dtype = (attn_st_dtype)d;
            } else if (which == 1) {
                uint64_t dims[ATTN_ST_MAX_DIMS];
                if ((st = jp_uint_array(p, dims, ATTN_ST_MAX_DIMS, &t->ndim, "a shape")))
                    return st;
                for (int k = 0; k < t->ndim; k++) t->shape[k] = (int64_t)dims[k];
            } else {
                int cnt;
                size_t at = p->i;
                if ((st = jp_uint_array(p, off, 2, &cnt, "data_offsets"))) return st;
                if (cnt != 2)
                    return attn__error(ATTN_ERR_FORMAT,
                                       "safetensors: %s: header byte %zu: tensor '%.255s': "
                                       "data_offsets has %d integers, expected 2 [begin, end]",
                                       p->file, at, name, cnt);
            }
            jp_ws(p);
            if (p->i < p->n && p->s[p->i] == '}') {
                p->i++;
                break;
            }
            if ((st = jp_expect(p, ',', "',' or '}' in a tensor entry"))) return st;
        }
    }
    if (!have_dtype || !have_shape || !have_off)
        return attn__error(ATTN_ERR_FORMAT,
                           "safetensors: %s: header byte %zu: tensor '%.255s' lacks its %s",
                           p->file, p->i, name,
                           !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
    return ATTN_OK;
}

/* The "__metadata__" object: string keys (unique) to string values. */
static attn_status jp_metadata(jp *p, attn_safetensors *f) {
    attn_status st;
    if ((st = jp_expect(p, '{', "'{' opening __metadata__ (an object of strings)"))) return st;
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        return ATTN_OK;
    }
    for (;;) {
        char *k = NULL, *v = NULL;
        jp_ws(p);
        size_t at = p->i;
        if ((st = jp_string(p, &k, "a metadata key string"))) return st;
        if (attn_safetensors_metadata(f, k)) {
            st = attn__error(ATTN_ERR_FORMAT,
                             "safetensors: %s: header byte %zu: metadata key \"%.64s\" repeated",
                             p->file, at, k);
            free(k);
            return st;
        }
        if ((st = jp_expect(p, ':', "':' after a metadata key")) ||
            (st = jp_string(p, &v, "a metadata value (metadata values are strings)"))) {
            free(k);
            return st;
        }
        if (attn__grow((void **)&f->meta, &f->cap_meta, 2 * (size_t)f->n_meta + 2, sizeof *f->meta)) {
            free(k);
            free(v);
            return attn__error(ATTN_ERR_OOM, "safetensors: %s: out of memory", p->file);
        }
        f->meta[2 * f->n_meta] = k;
        f->meta[2 * f->n_meta + 1] = v;
        f->n_meta++;
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == '}') {
            p->i++;
            return ATTN_OK;
        }
        if ((st = jp_expect(p, ',', "',' or '}' in __metadata__"))) return st;
    }
}

static int cmp_offset(const void *a, const void *b) {
    const attn_st_tensor *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

typedef struct name_ref {
    const char *name;
    int index;
} name_ref;

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const name_ref *)a)->name, ((const name_ref *)b)->name);
}

/* Parses the header and checks every tensor against the buffer. f->bytes
 * and f->size are set; the header is f->bytes[8 .. 8 + hn). */
static attn_status st_parse(attn_safetensors *f, size_t hn, const char *file) {
    attn_status st;
    jp p = {f->bytes + 8, hn, 0, file};
    size_t bad = attn__utf8_check(p.s, hn);
    if (bad < hn)
        return attn__error(ATTN_ERR_FORMAT, "safetensors: %s: header byte %zu: invalid UTF-8",
                           file, bad);
    if (hn == 0 || p.s[0] != '{')
        return jp_expected(&p, "'{' as the first byte of the header");
    p.i = 1;
    int have_meta = 0;
    uint64_t buf_size = (uint64_t)(f->size - 8 - hn);
    jp_ws(&p);
    if (p.i < p.n && p.s[p.i] == '}') {
        p.i++;
    } else {
        for (;;) {
            char *name;
            jp_ws(&p);
            size_t at = p.i;
            if ((st = jp_string(&p, &name, "a tensor name or \"__metadata__\""))) return st;
            if ((st = jp_expect(&p, ':', "':' after a tensor name"))) {
                free(name);
                return st;
            }
            if (strcmp(name, "__metadata__") == 0) {
                free(name);
                if (have_meta)
                    return attn__error(ATTN_ERR_FORMAT,
                                       "safetensors: %s: header byte %zu: __metadata__ repeated",
                                       file, at);
                have_meta = 1;
                if ((st = jp_metadata(&p, f))) return st;
            } else {
                if (attn__grow((void **)&f->tensors, &f->cap_tensors, (size_t)f->n_tensors + 1,
                         sizeof *f->tensors)) {
                    free(name);
                    return attn__error(ATTN_ERR_OOM, "safetensors: %s: out of memory", file);
                }
                attn_st_tensor *t = &f->tensors[f->n_tensors];
                memset(t, 0, sizeof *t);
                t->name = name;
                f->n_tensors++; /* owned by f from here on, freed by close */
                uint64_t off[2] = {0, 0};
                if ((st = jp_tensor(&p, name, t, off))) return st;
                uint64_t numel = 1, nbytes;
                for (int k = 0; k < t->ndim; k++) {
                    uint64_t d = (uint64_t)t->shape[k];
                    if (d && numel > (uint64_t)INT64_MAX / d)
                        return attn__error(ATTN_ERR_FORMAT,
                                           "safetensors: %s: tensor '%.255s': the element count "
                                           "of its shape overflows", file, name);
                    numel *= d;
                }
                size_t es = st_dtypes[t->dtype].size;
                if (numel > UINT64_MAX / es)
                    return attn__error(ATTN_ERR_FORMAT,
                                       "safetensors: %s: tensor '%.255s': its size in bytes "
                                       "overflows", file, name);
                nbytes = numel * es;
                if (off[1] < off[0] || off[1] > buf_size)
                    return attn__error(ATTN_ERR_FORMAT,
                                       "safetensors: %s: tensor '%.255s': data_offsets [%llu, "
                                       "%llu] outside the data buffer of %llu bytes", file,
                                       name, (unsigned long long)off[0],
                                       (unsigned long long)off[1], (unsigned long long)buf_size);
                if (off[1] - off[0] != nbytes)
                    return attn__error(ATTN_ERR_FORMAT,
                                       "safetensors: %s: tensor '%.255s': data_offsets [%llu, "
                                       "%llu] span %llu bytes, but %s x %llu elements need %llu",
                                       file, name, (unsigned long long)off[0],
                                       (unsigned long long)off[1],
                                       (unsigned long long)(off[1] - off[0]),
                                       st_dtypes[t->dtype].name, (unsigned long long)numel,
                                       (unsigned long long)nbytes);
                t->numel = (int64_t)numel;
                t->nbytes = nbytes;
                t->offset = 8 + (uint64_t)hn + off[0];
                t->data = f->bytes + t->offset;
            }
            jp_ws(&p);
            if (p.i < p.n && p.s[p.i] == '}') {
                p.i++;
                break;
            }
            if ((st = jp_expect(&p, ',', "',' or '}' after an entry of the header"))) return st;
        }
    }
    jp_ws(&p);
    if (p.i < p.n) return jp_expected(&p, "only whitespace after the header's closing '}'");

    /* Tensors in buffer order; the buffer must be covered exactly. */
    if (f->n_tensors > 1) /* qsort's pointer must not be NULL, even for 0 elements */
        qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_offset);
    uint64_t pos = 8 + (uint64_t)hn;
    for (int k = 0; k < f->n_tensors; k++) {
        const attn_st_tensor *t = &f->tensors[k];
        if (t->offset != pos) {
            uint64_t b = t->offset - 8 - hn, at = pos - 8 - hn;
            if (t->offset > pos)
                return attn__error(ATTN_ERR_FORMAT,
                                   "safetensors: %s: bytes [%llu, %llu) of the data buffer "
                                   "belong to no tensor (a hole before '%.255s')", file,
                                   (unsigned long long)at, (unsigned long long)b, t->name);
            return attn__error(ATTN_ERR_FORMAT,
                               "safetensors: %s: tensor '%.255s' at data offset %llu overlaps "
                               "'%.255s', which ends at %llu", file, t->name,
                               (unsigned long long)b, k ? f->tensors[k - 1].name : "?",
                               (unsigned long long)at);
        }
        pos += t->nbytes;
    }
    if (pos != (uint64_t)f->size)
        return attn__error(ATTN_ERR_FORMAT,
                           "safetensors: %s: %llu bytes after the last tensor's data belong to "
                           "no tensor", file, (unsigned long long)((uint64_t)f->size - pos));
    /* Names unique; the sorted names serve attn_safetensors_find. */
    if (!f->n_tensors) return ATTN_OK;
    size_t nt = (size_t)f->n_tensors;
    name_ref *refs = malloc(sizeof *refs * nt);
    f->by_name = malloc(sizeof *f->by_name * nt);
    f->by_name_index = malloc(sizeof *f->by_name_index * nt);
    if (!refs || !f->by_name || !f->by_name_index) {
        free(refs);
        return attn__error(ATTN_ERR_OOM, "safetensors: %s: out of memory", file);
    }
    for (size_t k = 0; k < nt; k++) refs[k] = (name_ref){f->tensors[k].name, (int)k};
    qsort(refs, nt, sizeof *refs, cmp_name);
    for (size_t k = 0; k < nt; k++) {
        if (k && strcmp(refs[k].name, refs[k - 1].name) == 0) {
            st = attn__error(ATTN_ERR_FORMAT, "safetensors: %s: tensor name '%.255s' repeated",
                             file, refs[k].name);
            free(refs);
            return st;
        }
        f->by_name[k] = refs[k].name;
        f->by_name_index[k] = refs[k].index;
    }
    free(refs);
    return ATTN_OK;
}

/* Takes ownership of bytes[0..size) (freed on error too). */
static attn_status st_open_bytes(attn_safetensors **out, unsigned char *bytes, size_t size,
                                 const char *file) {
    if (size < 8) {
        free(bytes);
        return attn__error(ATTN_ERR_FORMAT,
                           "safetensors: %s: %zu bytes, too short for the 8-byte header size",
                           file, size);
    }
    uint64_t hn = rd_u64(bytes);
    if (hn > ST_MAX_HEADER || hn > (uint64_t)(size - 8)) {
        free(bytes);
        return attn__error(ATTN_ERR_FORMAT,
                           "safetensors: %s: header size %llu exceeds %s (%zu bytes follow the "
                           "size field)", file, (unsigned long long)hn,
                           hn > ST_MAX_HEADER ? "the 100 MB limit" : "the file", size - 8);
    }
    attn_safetensors *f = calloc(1, sizeof *f);
    if (!f) {
        free(bytes);
        return attn__error(ATTN_ERR_OOM, "safetensors: %s: out of memory", file);
    }
    f->bytes = bytes;
    f->size = size;
    attn_status st = st_parse(f, (size_t)hn, file);
    if (st) {
        attn_safetensors_close(f);
        return st;
    }
    *out = f;
    return ATTN_OK;
}

attn_status attn_safetensors_open_memory(attn_safetensors **out, const void *bytes, size_t size) {
    if (out) *out = NULL;
    if (!out || (!bytes && size))
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_safetensors_open_memory: NULL argument");
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy) return attn__error(ATTN_ERR_OOM, "safetensors: cannot copy %zu bytes", size);
    if (size) memcpy(copy, bytes, size);
    return st_open_bytes(out, copy, size, "<memory>");
}

attn_status attn_safetensors_open(attn_safetensors **out, const char *path) {
    if (out) *out = NULL;
    if (!out || !path)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_safetensors_open: NULL argument");
    FILE *fp = fopen(path, "rb");
    if (!fp) return attn__error(ATTN_ERR_IO, "safetensors: cannot open %s: %s", path,
                                strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0) {
        attn_status st = fail_io("safetensors", "stat", path);
        fclose(fp);
        return st;
    }
    if (!S_ISREG(sb.st_mode)) {
        fclose(fp);
        return attn__error(ATTN_ERR_IO, "safetensors: %s is not a regular file", path);
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX - 1) {
        fclose(fp);
        return attn__error(ATTN_ERR_OOM, "safetensors: %s is too large to read", path);
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *bytes = malloc(size ? size : 1);
    if (!bytes) {
        fclose(fp);
        return attn__error(ATTN_ERR_OOM, "safetensors: %s: cannot allocate %zu bytes", path, size);
    }
    size_t got = fread(bytes, 1, size, fp);
    int err = ferror(fp);
    fclose(fp);
    if (got != size || err) {
        free(bytes);
        return attn__error(ATTN_ERR_IO, "safetensors: %s: read %zu of %zu bytes", path, got,
                           size);
    }
    return st_open_bytes(out, bytes, size, path);
}

/* ---- writing ---------------------------------------------------------------- */

static int valid_utf8(const char *s) { return attn__utf8_valid(s, strlen(s)); }

/* Checks names and metadata strings (all UTF-8, no tensor called
 * "__metadata__", unique metadata keys). */
static attn_status check_out(const char *fn, const attn__st_out *t, int n, const attn_kv *meta,
                             int n_meta) {
    for (int i = 0; i < n; i++) {
        if (!valid_utf8(t[i].name))
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: tensor name '%s' is not valid UTF-8",
                               fn, t[i].name);
        if (strcmp(t[i].name, "__metadata__") == 0)
            return attn__error(ATTN_ERR_INVALID_ARG,
                               "%s: a tensor cannot be named __metadata__ (reserved)", fn);
    }
    for (int i = 0; i < n_meta; i++) {
        if (!meta[i].key || !meta[i].value)
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: metadata entry %d has a NULL string",
                               fn, i);
        if (!valid_utf8(meta[i].key) || !valid_utf8(meta[i].value))
            return attn__error(ATTN_ERR_INVALID_ARG,
                               "%s: metadata entry %d ('%s') is not valid UTF-8", fn, i,
                               meta[i].key);
        for (int j = 0; j < i; j++)
            if (strcmp(meta[i].key, meta[j].key) == 0)
                return attn__error(ATTN_ERR_INVALID_ARG, "%s: metadata key '%s' repeated", fn,
                                   meta[i].key);
    }
    return ATTN_OK;
}

/* fwrite that reports failure as ATTN_ERR_IO. */
static attn_status put(FILE *fp, const void *p, size_t n, const char *fn, const char *tmp) {
    if (n && fwrite(p, 1, n, fp) != n) return fail_io(fn, "write", tmp);
    return ATTN_OK;
}

/* The file body: size, header, data. */
static attn_status write_body(FILE *fp, const attn__strbuf *hdr, const attn__st_out *t, int n,
                              const char *fn, const char *tmp) {
    unsigned char len[8];
    wr_u64(len, (uint64_t)hdr->len);
    attn_status st;
    if ((st = put(fp, len, 8, fn, tmp)) || (st = put(fp, hdr->p, hdr->len, fn, tmp))) return st;
    enum { CHUNK = 4096 };
    unsigned char buf[4 * CHUNK];
    for (int i = 0; i < n; i++) {
        for (int64_t j0 = 0; j0 < t[i].numel; j0 += CHUNK) {
            int64_t m = t[i].numel - j0 < CHUNK ? t[i].numel - j0 : CHUNK;
            for (int64_t j = 0; j < m; j++) {
                uint32_t u;
                memcpy(&u, &t[i].data[j0 + j], 4);
                buf[4 * j] = (unsigned char)u;
                buf[4 * j + 1] = (unsigned char)(u >> 8);
                buf[4 * j + 2] = (unsigned char)(u >> 16);
                buf[4 * j + 3] = (unsigned char)(u >> 24);
            }
            if ((st = put(fp, buf, (size_t)(4 * m), fn, tmp))) return st;
        }
    }
    return ATTN_OK;
}

attn_status attn__st_write(const char *fn, const char *path, const attn__st_out *t, int n,
                           const attn_kv *meta, int n_meta) {
    attn_status st = check_out(fn, t, n, meta, n_meta);
    if (st) return st;
    attn__strbuf h = {0};
    attn__sb_put(&h, "{", 1);
    if (n_meta > 0) {
        attn__sb_puts(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) attn__sb_put(&h, ",", 1);
            attn__sb_json_string(&h, meta[i].key);
            attn__sb_put(&h, ":", 1);
            attn__sb_json_string(&h, meta[i].value);
        }
        attn__sb_put(&h, "}", 1);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (i || n_meta > 0) attn__sb_put(&h, ",", 1);
        attn__sb_json_string(&h, t[i].name);
        attn__sb_puts(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int k = 0; k < t[i].ndim; k++)
            attn__sb_printf(&h, k ? ",%lld" : "%lld", (long long)t[i].shape[k]);
        uint64_t nb = (uint64_t)t[i].numel * 4u; /* the store checked numel * 8 fits */
        attn__sb_printf(&h, "],\"data_offsets\":[%lld", (long long)off);
        attn__sb_printf(&h, ",%lld]}", (long long)(off + nb));
        off += nb;
    }
    attn__sb_put(&h, "}", 1);
    while (!h.oom && h.len % 8) attn__sb_put(&h, " ", 1); /* pad: the buffer starts 8-aligned */
    if (h.oom) {
        attn__sb_free(&h);
        return attn__error(ATTN_ERR_OOM, "%s: cannot build the header", fn);
    }

    attn__atomic_file af;
    st = attn__atomic_open(&af, fn, path);
    if (st) {
        attn__sb_free(&h);
        return st;
    }
    st = write_body(af.fp, &h, t, n, fn, af.tmp);
    attn__sb_free(&h);
    if (st) {
        attn__atomic_abort(&af);
        return st;
    }
    return attn__atomic_commit(&af);
}
