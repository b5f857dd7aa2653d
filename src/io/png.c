/* png.c: PNG writer and reader with its own inflater. Contracts:
 * include/attn/png.h.
 *
 * Layout of a PNG: the 8-byte signature, then chunks, each
 *   length (u32 big-endian, <= 2^31 - 1), type (4 ASCII letters), data,
 *   CRC-32 of type and data.
 * IHDR (first; width, height, bit depth, colour type, compression 0,
 * filter 0, interlace), PLTE (palette images), IDAT (one or more: their
 * concatenation is a zlib stream), IEND (last). The zlib stream holds,
 * for each row, a filter byte and the row's bytes.
 *
 * The inflater decodes canonical Huffman codes by code length (RFC 1951,
 * section 3.2.2): a code of length L is the next value after the codes of
 * length L - 1, so decoding walks the lengths and compares the code read so
 * far with the first code of each length. Every count and index it takes
 * from the file is bounded before use.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "atomic_file_internal.h"
#include "attn/png.h"

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

/* ---- checksums ---------------------------------------------------------------------- */

/* CRC-32 (polynomial 0xEDB88320, reflected), bit by bit: no table, no
 * global state; the images attn writes and reads are small. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static uint32_t adler32(const uint8_t *p, size_t n) {
    uint32_t a = 1, b = 0;
    while (n > 0) {
        size_t k = n < 5552 ? n : 5552; /* the largest run without overflow of b */
        n -= k;
        while (k--) {
            a += *p++;
            b += a;
        }
        a %= 65521u;
        b %= 65521u;
    }
    return (b << 16) | a;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* ---- writer --------------------------------------------------------------------------- */

static int write_chunk(FILE *f, const char type[4], const uint8_t *data, size_t n) {
    uint8_t head[8];
    put_be32(head, (uint32_t)n);
    memcpy(head + 4, type, 4);
    uint32_t crc = crc32_update(0, head + 4, 4);
    crc = crc32_update(crc, data, n);
    uint8_t tail[4];
    put_be32(tail, crc);
    return fwrite(head, 1, 8, f) == 8 && (n == 0 || fwrite(data, 1, n, f) == n) &&
           fwrite(tail, 1, 4, f) == 4;
}

attn_status attn_png_write(const char *path, const uint8_t *pixels, int width, int height,
                           int channels) {
    if (!path || !pixels)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_png_write: path and pixels must not be NULL");
    if (width < 1 || height < 1 || width > ATTN_PNG_MAX_SIDE || height > ATTN_PNG_MAX_SIDE ||
        (int64_t)width * height > ATTN_PNG_MAX_PIXELS)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_png_write: %s: image %d x %d, expected sides in 1..%d and at most "
                           "%d pixels",
                           path, width, height, ATTN_PNG_MAX_SIDE, ATTN_PNG_MAX_PIXELS);
    if (channels != 1 && channels != 3)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_png_write: %s: channels %d, expected 1 (grey) or 3 (RGB)", path,
                           channels);

    /* The raw stream: per row a filter byte (0, none) and the row. */
    size_t row = (size_t)width * (size_t)channels;
    size_t raw_n = (size_t)height * (row + 1);
    size_t n_blocks = (raw_n + 65534) / 65535;
    size_t z_n = 2 + raw_n + 5 * n_blocks + 4;
    uint8_t *raw = malloc(raw_n);
    uint8_t *z = malloc(z_n);
    if (!raw || !z) {
        free(raw);
        free(z);
        return attn__error(ATTN_ERR_OOM, "attn_png_write: %s: cannot allocate %zu bytes", path,
                           raw_n + z_n);
    }
    for (int y = 0; y < height; y++) {
        raw[(size_t)y * (row + 1)] = 0;
        memcpy(raw + (size_t)y * (row + 1) + 1, pixels + (size_t)y * row, row);
    }
    /* zlib: CMF 0x78 (deflate, 32 KiB window), FLG 0x01 (check bits). */
    size_t zp = 0;
    z[zp++] = 0x78;
    z[zp++] = 0x01;
    for (size_t off = 0; off < raw_n; off += 65535) {
        size_t len = raw_n - off < 65535 ? raw_n - off : 65535;
        z[zp++] = (uint8_t)(off + len == raw_n); /* BFINAL, BTYPE 00 (stored) */
        z[zp++] = (uint8_t)(len & 0xFF);
        z[zp++] = (uint8_t)(len >> 8);
        z[zp++] = (uint8_t)(~len & 0xFF);
        z[zp++] = (uint8_t)((~len >> 8) & 0xFF);
        memcpy(z + zp, raw + off, len);
        zp += len;
    }
    put_be32(z + zp, adler32(raw, raw_n));
    zp += 4;
    free(raw);

    uint8_t ihdr[13];
    put_be32(ihdr, (uint32_t)width);
    put_be32(ihdr + 4, (uint32_t)height);
    ihdr[8] = 8;                           /* bit depth */
    ihdr[9] = (uint8_t)(channels == 1 ? 0 : 2); /* colour type: grey or RGB */
    ihdr[10] = ihdr[11] = ihdr[12] = 0;    /* deflate, adaptive filters, no interlace */

    attn__atomic_file af;
    attn_status st = attn__atomic_open(&af, "attn_png_write", path);
    if (st != ATTN_OK) {
        free(z);
        return st;
    }
    int ok = fwrite(png_signature, 1, 8, af.fp) == 8 && write_chunk(af.fp, "IHDR", ihdr, 13) &&
             write_chunk(af.fp, "IDAT", z, zp) && write_chunk(af.fp, "IEND", NULL, 0);
    free(z);
    if (!ok) {
        attn__atomic_abort(&af);
        return attn__error(ATTN_ERR_IO, "attn_png_write: %s: write failed: %s", path,
                           strerror(errno));
    }
    return attn__atomic_commit(&af);
}

/* ---- inflater --------------------------------------------------------------------------- */

#define MAX_CODE_BITS 15
#define N_LITLEN 288
#define N_DIST 32

typedef struct huffman {
    short count[MAX_CODE_BITS + 1]; /* codes of each length */
    short symbol[N_LITLEN];         /* symbols ordered by code */
} huffman;

typedef struct inflater {
    const uint8_t *in;
    size_t in_n, in_pos;
    uint32_t bits;
    int n_bits;
    uint8_t *out;
    size_t out_cap, out_n;
    const char *err; /* what was wrong, for the message */
} inflater;

/* Takes `need` (<= 16) bits, least significant first; -1 at the end of
 * the input. */
static int take_bits(inflater *s, int need) {
    while (s->n_bits < need) {
        if (s->in_pos >= s->in_n) {
            s->err = "the compressed data end early";
            return -1;
        }
        s->bits |= (uint32_t)s->in[s->in_pos++] << s->n_bits;
        s->n_bits += 8;
    }
    int v = (int)(s->bits & ((1u << need) - 1u));
    s->bits >>= need;
    s->n_bits -= need;
    return v;
}

/* Builds h from n code lengths. Over-subscribed lengths are an error;
 * incomplete codes are allowed (RFC 1951 permits a one-code distance
 * table) and a code outside the table fails when it is read. */
static int huffman_build(huffman *h, const uint8_t *lengths, int n) {
    short offs[MAX_CODE_BITS + 2];
    memset(h->count, 0, sizeof h->count);
    for (int i = 0; i < n; i++) h->count[lengths[i]]++;
    int left = 1;
    for (int len = 1; len <= MAX_CODE_BITS; len++) {
        left = 2 * left - h->count[len];
        if (left < 0) return -1;
    }
    offs[1] = 0;
    for (int len = 1; len <= MAX_CODE_BITS; len++) offs[len + 1] = (short)(offs[len] + h->count[len]);
    for (int i = 0; i < n; i++)
        if (lengths[i] != 0) h->symbol[offs[lengths[i]]++] = (short)i;
    return 0;
}

static int huffman_decode(inflater *s, const huffman *h) {
    int code = 0, first = 0, index = 0;
    for (int len = 1; len <= MAX_CODE_BITS; len++) {
        int b = take_bits(s, 1);
        if (b < 0) return -1;
        code |= b;
        int count = h->count[len];
        if (code - first < count) return h->symbol[index + code - first];
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    s->err = "a Huffman code is not in its table";
    return -1;
}

static const short len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                   31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const short len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                    2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const unsigned short dist_base[30] = {
    1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
    193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const short dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                     6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static int inflate_codes(inflater *s, const huffman *lit, const huffman *dist) {
    for (;;) {
        int sym = huffman_decode(s, lit);
        if (sym < 0) return -1;
        if (sym < 256) {
            if (s->out_n >= s->out_cap) {
                s->err = "the image data are longer than the header implies";
                return -1;
            }
            s->out[s->out_n++] = (uint8_t)sym;
        } else if (sym == 256) {
            return 0;
        } else {
            sym -= 257;
            if (sym >= 29) {
                s->err = "a length code is out of range";
                return -1;
            }
            int e = take_bits(s, len_extra[sym]);
            if (e < 0) return -1;
            size_t len = (size_t)(len_base[sym] + e);
            int d = huffman_decode(s, dist);
            if (d < 0) return -1;
            if (d >= 30) {
                s->err = "a distance code is out of range";
                return -1;
            }
            e = take_bits(s, dist_extra[d]);
            if (e < 0) return -1;
            size_t back = (size_t)dist_base[d] + (size_t)e;
            if (back > s->out_n) {
                s->err = "a back-reference points before the start of the data";
                return -1;
            }
            if (len > s->out_cap - s->out_n) {
                s->err = "the image data are longer than the header implies";
                return -1;
            }
            for (size_t i = 0; i < len; i++, s->out_n++) s->out[s->out_n] = s->out[s->out_n - back];
        }
    }
}

static int inflate_stored(inflater *s) {
    s->bits = 0; /* to the byte boundary */
    s->n_bits = 0;
    if (s->in_n - s->in_pos < 4) {
        s->err = "the compressed data end early";
        return -1;
    }
    const uint8_t *p = s->in + s->in_pos;
    unsigned len = p[0] | (p[1] << 8), nlen = p[2] | (p[3] << 8);
    s->in_pos += 4;
    if ((len ^ 0xFFFFu) != nlen) {
        s->err = "a stored block's length does not match its complement";
        return -1;
    }
    if (len > s->in_n - s->in_pos) {
        s->err = "the compressed data end early";
        return -1;
    }
    if (len > s->out_cap - s->out_n) {
        s->err = "the image data are longer than the header implies";
        return -1;
    }
    memcpy(s->out + s->out_n, s->in + s->in_pos, len);
    s->out_n += len;
    s->in_pos += len;
    return 0;
}

static int inflate_fixed(inflater *s) {
    uint8_t lengths[N_LITLEN + N_DIST];
    int i = 0;
    for (; i < 144; i++) lengths[i] = 8;
    for (; i < 256; i++) lengths[i] = 9;
    for (; i < 280; i++) lengths[i] = 7;
    for (; i < N_LITLEN; i++) lengths[i] = 8;
    for (i = 0; i < 30; i++) lengths[N_LITLEN + i] = 5;
    huffman lit, dist;
    huffman_build(&lit, lengths, N_LITLEN);
    huffman_build(&dist, lengths + N_LITLEN, 30);
    return inflate_codes(s, &lit, &dist);
}

static int inflate_dynamic(inflater *s) {
    static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    int nlen = take_bits(s, 5), ndist = take_bits(s, 5), ncode = take_bits(s, 4);
    if (nlen < 0 || ndist < 0 || ncode < 0) return -1;
    nlen += 257;
    ndist += 1;
    ncode += 4;
    if (nlen > 286 || ndist > 30) {
        s->err = "a dynamic block declares too many codes";
        return -1;
    }
    uint8_t lengths[N_LITLEN + N_DIST];
    memset(lengths, 0, sizeof lengths);
    for (int i = 0; i < ncode; i++) {
        int v = take_bits(s, 3);
        if (v < 0) return -1;
        lengths[order[i]] = (uint8_t)v;
    }
    huffman lencode, lit, dist;
    if (huffman_build(&lencode, lengths, 19) != 0) {
        s->err = "the code-length code is over-subscribed";
        return -1;
    }
    int i = 0;
    while (i < nlen + ndist) {
        int sym = huffman_decode(s, &lencode);
        if (sym < 0) return -1;
        if (sym < 16) {
            lengths[i++] = (uint8_t)sym;
            continue;
        }
        int repeat, value = 0;
        if (sym == 16) {
            if (i == 0) {
                s->err = "a repeat code has no previous length";
                return -1;
            }
            value = lengths[i - 1];
            repeat = take_bits(s, 2);
            if (repeat < 0) return -1;
            repeat += 3;
        } else if (sym == 17) {
            repeat = take_bits(s, 3);
            if (repeat < 0) return -1;
            repeat += 3;
        } else {
            repeat = take_bits(s, 7);
            if (repeat < 0) return -1;
            repeat += 11;
        }
        if (i + repeat > nlen + ndist) {
            s->err = "code lengths repeat past the declared count";
            return -1;
        }
        while (repeat--) lengths[i++] = (uint8_t)value;
    }
    if (lengths[256] == 0) {
        s->err = "a dynamic block has no end-of-block code";
        return -1;
    }
    if (huffman_build(&lit, lengths, nlen) != 0 || huffman_build(&dist, lengths + nlen, ndist) != 0) {
        s->err = "a dynamic block's code is over-subscribed";
        return -1;
    }
    return inflate_codes(s, &lit, &dist);
}

/* Inflates the zlib stream in[0..n) into out, which must come out exactly
 * out_cap bytes long. NULL on success, else what was wrong. */
static const char *zlib_inflate(const uint8_t *in, size_t n, uint8_t *out, size_t out_cap) {
    if (n < 6) return "the zlib stream is too short";
    if ((in[0] & 0x0F) != 8 || (in[0] >> 4) > 7) return "the zlib stream is not deflate";
    if (((unsigned)in[0] << 8 | in[1]) % 31 != 0) return "the zlib header check fails";
    if (in[1] & 0x20) return "the zlib stream asks for a preset dictionary";
    inflater s = {in, n, 2, 0, 0, out, out_cap, 0, NULL};
    int last;
    do {
        last = take_bits(&s, 1);
        int type = take_bits(&s, 2);
        if (last < 0 || type < 0) return s.err;
        int r;
        if (type == 0)
            r = inflate_stored(&s);
        else if (type == 1)
            r = inflate_fixed(&s);
        else if (type == 2)
            r = inflate_dynamic(&s);
        else
            return "a deflate block has the reserved type 3";
        if (r != 0) return s.err;
    } while (!last);
    if (s.out_n != out_cap) return "the image data are shorter than the header implies";
    if (s.n_bits >= 8) s.in_pos -= (size_t)(s.n_bits / 8); /* bytes read ahead */
    if (s.in_n - s.in_pos < 4) return "the zlib stream has no Adler-32 checksum";
    if (get_be32(in + s.in_pos) != adler32(out, out_cap)) return "the Adler-32 checksum does not match";
    return NULL;
}

/* ---- reader ------------------------------------------------------------------------------ */

static uint8_t paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc) return (uint8_t)a;
    return (uint8_t)(pb <= pc ? b : c);
}

#define FAIL_FORMAT(...)                                     \
    do {                                                     \
        st = attn__error(ATTN_ERR_FORMAT, __VA_ARGS__);      \
        goto done;                                           \
    } while (0)

attn_status attn_png_decode(const uint8_t *data, size_t size, const char *name, uint8_t **pixels,
                            int *width, int *height, int *channels) {
    if (!pixels || !width || !height || !channels)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_png_decode: NULL output");
    *pixels = NULL;
    *width = *height = *channels = 0;
    if (!name) name = "(memory)";
    if (!data && size > 0) return attn__error(ATTN_ERR_INVALID_ARG, "attn_png_decode: NULL data");
    attn_status st = ATTN_OK;
    uint8_t *idat = NULL, *raw = NULL, *img = NULL;
    size_t idat_n = 0;
    uint8_t palette[256 * 3], alpha_pal[256];
    int n_palette = 0;
    memset(alpha_pal, 255, sizeof alpha_pal);
    uint32_t w = 0, h = 0;
    int depth = 0, ctype = -1, seen_iend = 0;

    if (size < 8 || memcmp(data, png_signature, 8) != 0)
        FAIL_FORMAT("attn_png_read: %s: not a PNG file (bad signature)", name);
    /* The IDAT data are gathered into one buffer, no larger than the file. */
    idat = malloc(size);
    if (!idat) {
        st = attn__error(ATTN_ERR_OOM, "attn_png_read: %s: cannot allocate %zu bytes", name, size);
        goto done;
    }
    size_t pos = 8;
    int n_chunks = 0;
    while (!seen_iend) {
        if (size - pos < 12) FAIL_FORMAT("attn_png_read: %s: the file ends before IEND", name);
        uint32_t len = get_be32(data + pos);
        const uint8_t *type = data + pos + 4;
        if (len > 0x7FFFFFFFu || len > size - pos - 12)
            FAIL_FORMAT("attn_png_read: %s: chunk %d declares %u bytes, past the end of the file",
                        name, n_chunks, len);
        for (int k = 0; k < 4; k++)
            if (!((type[k] >= 'A' && type[k] <= 'Z') || (type[k] >= 'a' && type[k] <= 'z')))
                FAIL_FORMAT("attn_png_read: %s: chunk %d has an invalid type", name, n_chunks);
        const uint8_t *body = data + pos + 8;
        if (crc32_update(0, type, 4 + (size_t)len) != get_be32(body + len))
            FAIL_FORMAT("attn_png_read: %s: chunk %.4s: CRC mismatch", name, (const char *)type);
        if (n_chunks == 0 && memcmp(type, "IHDR", 4) != 0)
            FAIL_FORMAT("attn_png_read: %s: the first chunk is %.4s, expected IHDR", name,
                        (const char *)type);
        if (memcmp(type, "IHDR", 4) == 0) {
            if (n_chunks != 0) FAIL_FORMAT("attn_png_read: %s: a second IHDR", name);
            if (len != 13) FAIL_FORMAT("attn_png_read: %s: IHDR of %u bytes, expected 13", name, len);
            w = get_be32(body);
            h = get_be32(body + 4);
            depth = body[8];
            ctype = body[9];
            if (w == 0 || h == 0 || w > 0x7FFFFFFFu || h > 0x7FFFFFFFu)
                FAIL_FORMAT("attn_png_read: %s: image %u x %u, expected sides >= 1", name, w, h);
            int ok_depth = (ctype == 0 && (depth == 1 || depth == 2 || depth == 4 || depth == 8 ||
                                           depth == 16)) ||
                           (ctype == 3 && (depth == 1 || depth == 2 || depth == 4 || depth == 8)) ||
                           ((ctype == 2 || ctype == 4 || ctype == 6) && (depth == 8 || depth == 16));
            if (!ok_depth)
                FAIL_FORMAT("attn_png_read: %s: colour type %d with bit depth %d is not a PNG "
                            "combination",
                            name, ctype, depth);
            if (body[10] != 0 || body[11] != 0)
                FAIL_FORMAT("attn_png_read: %s: compression %d / filter method %d, expected 0 / 0",
                            name, body[10], body[11]);
            if (body[12] > 1)
                FAIL_FORMAT("attn_png_read: %s: interlace method %d, expected 0 or 1", name, body[12]);
            if (body[12] == 1) {
                st = attn__error(ATTN_ERR_UNSUPPORTED,
                                 "attn_png_read: %s: interlaced (Adam7) PNGs are not read; save "
                                 "the image without interlacing",
                                 name);
                goto done;
            }
            if (w > ATTN_PNG_MAX_SIDE || h > ATTN_PNG_MAX_SIDE ||
                (uint64_t)w * h > (uint64_t)ATTN_PNG_MAX_PIXELS) {
                st = attn__error(ATTN_ERR_UNSUPPORTED,
                                 "attn_png_read: %s: image %u x %u is larger than attn reads (%d a "
                                 "side, %d pixels)",
                                 name, w, h, ATTN_PNG_MAX_SIDE, ATTN_PNG_MAX_PIXELS);
                goto done;
            }
        } else if (memcmp(type, "PLTE", 4) == 0) {
            if (len % 3 != 0 || len == 0 || len > 768)
                FAIL_FORMAT("attn_png_read: %s: PLTE of %u bytes, expected 3 to 768, a multiple of 3",
                            name, len);
            n_palette = (int)(len / 3);
            memcpy(palette, body, len);
        } else if (memcmp(type, "tRNS", 4) == 0) {
            if (ctype == 3) {
                if ((int)len > n_palette)
                    FAIL_FORMAT("attn_png_read: %s: tRNS has %u entries for a palette of %d", name,
                                len, n_palette);
                memcpy(alpha_pal, body, len);
            } /* grey/RGB colour keys are ignored (documented in png.h) */
        } else if (memcmp(type, "IDAT", 4) == 0) {
            memcpy(idat + idat_n, body, len);
            idat_n += len;
        } else if (memcmp(type, "IEND", 4) == 0) {
            seen_iend = 1;
        } else if (type[0] >= 'A' && type[0] <= 'Z') {
            FAIL_FORMAT("attn_png_read: %s: unknown critical chunk %.4s", name, (const char *)type);
        }
        pos += 12 + (size_t)len;
        n_chunks++;
    }
    if (idat_n == 0) FAIL_FORMAT("attn_png_read: %s: no IDAT chunk", name);
    if (ctype == 3 && n_palette == 0) FAIL_FORMAT("attn_png_read: %s: a palette image without PLTE", name);

    int in_ch = ctype == 0 ? 1 : ctype == 2 ? 3 : ctype == 3 ? 1 : ctype == 4 ? 2 : 4;
    size_t bits_px = (size_t)in_ch * (size_t)depth;
    size_t row_n = ((size_t)w * bits_px + 7) / 8;
    size_t bpp = bits_px >= 8 ? bits_px / 8 : 1; /* bytes back to the filter's "left" */
    size_t raw_n = (size_t)h * (row_n + 1);
    raw = malloc(raw_n);
    if (!raw) {
        st = attn__error(ATTN_ERR_OOM, "attn_png_read: %s: cannot allocate %zu bytes", name, raw_n);
        goto done;
    }
    const char *why = zlib_inflate(idat, idat_n, raw, raw_n);
    if (why) FAIL_FORMAT("attn_png_read: %s: %s", name, why);

    /* Undo the row filters in place: row y's bytes at raw + y (row_n + 1) + 1. */
    for (uint32_t y = 0; y < h; y++) {
        uint8_t *r = raw + (size_t)y * (row_n + 1);
        int filter = r[0];
        uint8_t *cur = r + 1;
        const uint8_t *up = y > 0 ? raw + (size_t)(y - 1) * (row_n + 1) + 1 : NULL;
        if (filter > 4) FAIL_FORMAT("attn_png_read: %s: row %u has filter type %d, expected 0-4", name, y, filter);
        for (size_t i = 0; i < row_n; i++) {
            int a = i >= bpp ? cur[i - bpp] : 0, b = up ? up[i] : 0, c = (up && i >= bpp) ? up[i - bpp] : 0;
            switch (filter) {
            case 1: cur[i] = (uint8_t)(cur[i] + a); break;
            case 2: cur[i] = (uint8_t)(cur[i] + b); break;
            case 3: cur[i] = (uint8_t)(cur[i] + ((a + b) >> 1)); break;
            case 4: cur[i] = (uint8_t)(cur[i] + paeth(a, b, c)); break;
            default: break;
            }
        }
    }

    int out_ch = (ctype == 0 || ctype == 4) ? 1 : 3;
    img = malloc((size_t)w * h * (size_t)out_ch);
    if (!img) {
        st = attn__error(ATTN_ERR_OOM, "attn_png_read: %s: cannot allocate the image", name);
        goto done;
    }
    for (uint32_t y = 0; y < h; y++) {
        const uint8_t *r = raw + (size_t)y * (row_n + 1) + 1;
        uint8_t *o = img + (size_t)y * w * (size_t)out_ch;
        for (uint32_t x = 0; x < w; x++) {
            if (depth < 8) { /* grey or palette, 1/2/4 bits, most significant first */
                size_t bit = (size_t)x * (size_t)depth;
                int v = (r[bit / 8] >> (8 - depth - (int)(bit % 8))) & ((1 << depth) - 1);
                if (ctype == 0) {
                    o[x] = (uint8_t)(v * 255 / ((1 << depth) - 1));
                } else {
                    if (v >= n_palette)
                        FAIL_FORMAT("attn_png_read: %s: pixel (%u, %u) has palette index %d of %d",
                                    name, x, y, v, n_palette);
                    for (int k = 0; k < 3; k++) o[3 * x + k] = (uint8_t)(palette[3 * v + k] * alpha_pal[v] / 255);
                }
                continue;
            }
            size_t step = (size_t)depth / 8; /* 1 or 2 bytes a sample; the high byte first */
            const uint8_t *p = r + (size_t)x * (size_t)in_ch * step;
            if (ctype == 3) {
                int v = p[0];
                if (v >= n_palette)
                    FAIL_FORMAT("attn_png_read: %s: pixel (%u, %u) has palette index %d of %d", name,
                                x, y, v, n_palette);
                for (int k = 0; k < 3; k++) o[3 * x + k] = (uint8_t)(palette[3 * v + k] * alpha_pal[v] / 255);
            } else if (ctype == 0) {
                o[x] = p[0];
            } else if (ctype == 4) {
                o[x] = (uint8_t)(p[0] * p[step] / 255);
            } else if (ctype == 2) {
                for (int k = 0; k < 3; k++) o[3 * x + k] = p[k * step];
            } else {
                int al = p[3 * step];
                for (int k = 0; k < 3; k++) o[3 * x + k] = (uint8_t)(p[k * step] * al / 255);
            }
        }
    }
    *pixels = img;
    img = NULL;
    *width = (int)w;
    *height = (int)h;
    *channels = out_ch;
done:
    free(idat);
    free(raw);
    free(img);
    return st;
}

attn_status attn_png_read(const char *path, uint8_t **pixels, int *width, int *height,
                          int *channels) {
    if (pixels) *pixels = NULL;
    if (width) *width = 0;
    if (height) *height = 0;
    if (channels) *channels = 0;
    if (!path || !pixels || !width || !height || !channels)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_png_read: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f) return attn__error(ATTN_ERR_IO, "attn_png_read: cannot open %s: %s", path, strerror(errno));
    /* The whole file, read in growing steps (a pipe or a special file has
     * no size to ask); bounded so that a huge file is refused early. */
    size_t cap = 1 << 16, n = 0;
    const size_t max_file = (size_t)1 << 30;
    uint8_t *buf = malloc(cap);
    attn_status st = ATTN_OK;
    if (!buf) {
        fclose(f);
        return attn__error(ATTN_ERR_OOM, "attn_png_read: %s: cannot allocate %zu bytes", path, cap);
    }
    for (;;) {
        if (n == cap) {
            if (cap >= max_file) {
                st = attn__error(ATTN_ERR_UNSUPPORTED, "attn_png_read: %s is over 1 GiB", path);
                break;
            }
            uint8_t *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                st = attn__error(ATTN_ERR_OOM, "attn_png_read: %s: cannot allocate %zu bytes", path,
                                 cap * 2);
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) st = attn__error(ATTN_ERR_IO, "attn_png_read: read error on %s", path);
            break;
        }
    }
    fclose(f);
    if (st == ATTN_OK) st = attn_png_decode(buf, n, path, pixels, width, height, channels);
    free(buf);
    return st;
}
