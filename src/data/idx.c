/* idx.c: the strict IDX reader (unsigned-byte arrays) and its conversions.
 * Format and contracts: include/attn/idx.h. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/internal.h"
#include "attn/idx.h"

#define IDX_UBYTE 0x08

/* The IDX element type codes, for messages about a file of another type. */
static const char *idx_type_name(unsigned code) {
    switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "not an IDX type";
    }
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Reads exactly n bytes; returns the number read (short on EOF or error). */
static size_t read_all(FILE *f, void *buf, size_t n) { return fread(buf, 1, n, f); }

attn_status attn_idx_load(const char *path, attn_idx *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!path || !out) return attn__error(ATTN_ERR_INVALID_ARG, "idx: NULL path or out");

    FILE *f = fopen(path, "rb");
    if (!f) return attn__error(ATTN_ERR_IO, "idx: cannot open %s: %s", path, strerror(errno));

    attn_status st = ATTN_OK;
    uint8_t *data = NULL;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        st = attn__error(ATTN_ERR_IO, "idx: cannot stat %s: %s", path, strerror(errno));
        goto done;
    }
    /* A directory opens fine on POSIX systems; pipes and devices have no
     * size to check the header against. */
    if (!S_ISREG(sb.st_mode)) {
        st = attn__error(ATTN_ERR_IO, "idx: %s is not a regular file", path);
        goto done;
    }
    const int64_t file_size = (int64_t)sb.st_size;

    unsigned char magic[4];
    size_t got = read_all(f, magic, 4);
    if (got != 4) {
        st = ferror(f) ? attn__error(ATTN_ERR_IO, "idx: cannot read %s", path)
                       : attn__error(ATTN_ERR_FORMAT,
                                     "idx: %s: truncated header: %zu bytes, expected at least 4",
                                     path, got);
        goto done;
    }
    if (magic[0] == 0x1f && magic[1] == 0x8b) {
        st = attn__error(ATTN_ERR_FORMAT,
                         "idx: %s is gzip-compressed: decompress it first (gunzip -k, or "
                         "scripts/setup.sh for Fashion-MNIST)", path);
        goto done;
    }
    if (magic[0] != 0 || magic[1] != 0) {
        st = attn__error(ATTN_ERR_FORMAT,
                         "idx: %s: bad magic %02x %02x %02x %02x: an IDX file starts with 00 00",
                         path, magic[0], magic[1], magic[2], magic[3]);
        goto done;
    }
    if (magic[2] != IDX_UBYTE) {
        st = attn__error(ATTN_ERR_FORMAT,
                         "idx: %s: element type 0x%02x (%s), expected 0x08 (unsigned byte)", path,
                         magic[2], idx_type_name(magic[2]));
        goto done;
    }
    const int ndim = magic[3];
    if (ndim < 1 || ndim > ATTN_IDX_MAX_DIMS) {
        st = attn__error(ATTN_ERR_FORMAT, "idx: %s: %d dimensions, expected 1 to %d", path, ndim,
                         ATTN_IDX_MAX_DIMS);
        goto done;
    }

    unsigned char raw[4 * ATTN_IDX_MAX_DIMS];
    const size_t dims_bytes = 4 * (size_t)ndim;
    got = read_all(f, raw, dims_bytes);
    if (got != dims_bytes) {
        st = ferror(f) ? attn__error(ATTN_ERR_IO, "idx: cannot read %s", path)
                       : attn__error(ATTN_ERR_FORMAT,
                                     "idx: %s: truncated header: %zu bytes of dimensions, "
                                     "expected %zu for %d dimensions",
                                     path, got, dims_bytes, ndim);
        goto done;
    }
    /* The product must fit in int64 and size_t (the allocation). */
    const uint64_t limit = (uint64_t)INT64_MAX < (uint64_t)SIZE_MAX ? (uint64_t)INT64_MAX
                                                                    : (uint64_t)SIZE_MAX;
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        const uint64_t d = be32(raw + 4 * i);
        if (d == 0) {
            st = attn__error(ATTN_ERR_FORMAT, "idx: %s: dimension %d is 0, expected >= 1", path,
                             i);
            goto done;
        }
        if (numel > limit / d) {
            st = attn__error(ATTN_ERR_FORMAT,
                             "idx: %s: the product of the dimensions overflows (dimension %d "
                             "is %llu)", path, i, (unsigned long long)d);
            goto done;
        }
        numel *= d;
        out->dims[i] = (int64_t)d;
    }
    const int64_t header = 4 + (int64_t)dims_bytes;
    if (numel > (uint64_t)(INT64_MAX - header)) {
        st = attn__error(ATTN_ERR_FORMAT, "idx: %s: the product of the dimensions overflows",
                         path);
        goto done;
    }
    const int64_t expected = header + (int64_t)numel;
    if (file_size != expected) {
        if (file_size < expected)
            st = attn__error(ATTN_ERR_FORMAT,
                             "idx: %s: truncated: the header promises %llu data bytes "
                             "(file of %lld bytes), the file has %lld",
                             path, (unsigned long long)numel, (long long)expected,
                             (long long)file_size);
        else
            st = attn__error(ATTN_ERR_FORMAT,
                             "idx: %s: %lld trailing bytes after the %llu data bytes the header "
                             "promises", path, (long long)(file_size - expected),
                             (unsigned long long)numel);
        goto done;
    }

    data = malloc((size_t)numel);
    if (!data) {
        st = attn__error(ATTN_ERR_OOM, "idx: %s: cannot allocate %llu bytes", path,
                         (unsigned long long)numel);
        goto done;
    }
    got = read_all(f, data, (size_t)numel);
    if (got != (size_t)numel) {
        /* The size matched a moment ago: the file changed or the read failed. */
        st = ferror(f) ? attn__error(ATTN_ERR_IO, "idx: cannot read %s: %s", path,
                                     strerror(errno))
                       : attn__error(ATTN_ERR_FORMAT,
                                     "idx: %s: truncated: %zu of %llu data bytes", path, got,
                                     (unsigned long long)numel);
        goto done;
    }
    if (fgetc(f) != EOF) {
        st = attn__error(ATTN_ERR_FORMAT, "idx: %s: trailing bytes after the data", path);
        goto done;
    }

    out->data = data;
    data = NULL;
    out->ndim = ndim;
    out->numel = (int64_t)numel;
    out->item_size = (int64_t)numel / out->dims[0];

done:
    fclose(f);
    free(data);
    if (st != ATTN_OK) memset(out, 0, sizeof *out);
    return st;
}

void attn_idx_free(attn_idx *idx) {
    if (!idx) return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}

/* Checks the common arguments of the conversions; returns ATTN_OK or the
 * recorded error. */
static attn_status check_range(const char *fn, const attn_idx *idx, int64_t first, int64_t count,
                               const void *out) {
    if (!idx || !idx->data || !out)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL idx, idx data or out", fn);
    const int64_t n = idx->dims[0];
    if (first < 0 || count < 0 || first > n || count > n - first)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: items [%lld, %lld + %lld) outside the %lld items of the array", fn,
                           (long long)first, (long long)first, (long long)count, (long long)n);
    return ATTN_OK;
}

attn_status attn_idx_to_f32(const attn_idx *idx, int64_t first, int64_t count, float mean,
                            float std, float *out) {
    attn_status st = check_range("attn_idx_to_f32", idx, first, count, out);
    if (st != ATTN_OK) return st;
    if (!isfinite(mean) || !isfinite(std) || !(std > 0.0f))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_idx_to_f32: mean %g and std %g: expected finite values, std > 0",
                           (double)mean, (double)std);
    /* One table of the 256 possible values, each rounded once from double,
     * so that the result is exactly the formula of idx.h. */
    float lut[256];
    for (int b = 0; b < 256; b++) lut[b] = (float)(((double)b / 255.0 - mean) / std);
    const uint8_t *src = idx->data + first * idx->item_size;
    const int64_t n = count * idx->item_size;
    for (int64_t i = 0; i < n; i++) out[i] = lut[src[i]];
    return ATTN_OK;
}

attn_status attn_idx_to_i32(const attn_idx *idx, int64_t first, int64_t count, int32_t *out) {
    attn_status st = check_range("attn_idx_to_i32", idx, first, count, out);
    if (st != ATTN_OK) return st;
    const uint8_t *src = idx->data + first * idx->item_size;
    const int64_t n = count * idx->item_size;
    for (int64_t i = 0; i < n; i++) out[i] = src[i];
    return ATTN_OK;
}
