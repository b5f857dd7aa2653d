/* fuzz_png: attn_png_decode on arbitrary bytes; a decoded image must have
 * consistent outputs (sides within the limits, 1 or 3 channels), a refused
 * one empty outputs and a message. Each input is decoded twice: as it is,
 * and with every chunk's CRC rewritten to match, so that mutations reach
 * the inflater and the row filters instead of stopping at the CRC check. */
#include "fuzz_common.h"

static uint32_t crc32_of(const uint8_t *p, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void decode_one(const uint8_t *data, size_t size) {
    uint8_t *pix = NULL;
    int w = -1, h = -1, c = -1;
    attn_status st = attn_png_decode(data, size, "fuzz.png", &pix, &w, &h, &c);
    if (st != ATTN_OK) {
        if (pix || w || h || c) fz_fail("outputs not empty after an error");
        if (!attn_last_error()[0]) fz_fail("an error without a message");
        return;
    }
    if (!pix || w < 1 || h < 1 || w > ATTN_PNG_MAX_SIDE || h > ATTN_PNG_MAX_SIDE ||
        (c != 1 && c != 3))
        fz_fail("inconsistent decoded image");
    /* touch every byte: ASan catches a short allocation */
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)w * (size_t)h * (size_t)c; i++) sum += pix[i];
    (void)sum;
    free(pix);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    decode_one(data, size);
    uint8_t *fixed = malloc(size ? size : 1);
    if (!fixed) return 0;
    memcpy(fixed, data, size);
    size_t pos = 8;
    while (size >= 8 && size - pos >= 12) {
        size_t len = ((size_t)fixed[pos] << 24) | ((size_t)fixed[pos + 1] << 16) |
                     ((size_t)fixed[pos + 2] << 8) | fixed[pos + 3];
        if (len > size - pos - 12) break;
        uint32_t crc = crc32_of(fixed + pos + 4, len + 4);
        uint8_t *c = fixed + pos + 8 + len;
        c[0] = (uint8_t)(crc >> 24);
        c[1] = (uint8_t)(crc >> 16);
        c[2] = (uint8_t)(crc >> 8);
        c[3] = (uint8_t)crc;
        pos += 12 + len;
    }
    decode_one(fixed, size);
    free(fixed);
    return 0;
}
