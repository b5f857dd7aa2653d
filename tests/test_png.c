/* test_png.c: the PNG writer and reader (src/io/png.c).
 *
 *   - fixtures: tests/fixtures/png/ (tools/make_png_fixtures.py, Python's
 *     zlib as an independent encoder): every colour type and bit depth,
 *     random row filters, dynamic / fixed / stored deflate, split IDATs;
 *     the decoded pixels must equal the expected bytes exactly;
 *   - round trips of the writer through the reader (grey and RGB, odd
 *     sizes, an image of more than one stored block);
 *   - hostile files: every truncation of a fixture, every single-bit flip of
 *     a small one (each must fail with a message or, where the flip lands in
 *     an ignored place, decode to the same size), a deflate bomb (more data
 *     than the header implies), a bad CRC, an unknown critical chunk, an
 *     interlaced file, a huge declared size;
 *   - argument errors of both calls.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static void tmp_path(char *buf, size_t n, const char *name) {
    const char *base = getenv("TMPDIR");
    snprintf(buf, n, "%s/attn_test_png_%ld_%s", base && base[0] ? base : "/tmp", (long)getpid(), name);
}

static void test_fixtures(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/png/manifest.txt", test_fixture_dir());
    FILE *m = fopen(path, "r");
    if (!m) {
        test_skip("png fixtures", "%s missing (run tools/make_png_fixtures.py)", path);
        return;
    }
    char line[256];
    int n_files = 0;
    TEST_BEGIN("png: decode the fixtures of an independent encoder exactly");
    while (fgets(line, sizeof line, m)) {
        if (line[0] == '#') continue;
        char name[128];
        int w, h, c;
        if (sscanf(line, "%127s %d %d %d", name, &w, &h, &c) != 4) continue;
        char png[1024], out[1024];
        snprintf(png, sizeof png, "%s/png/%s.png", test_fixture_dir(), name);
        snprintf(out, sizeof out, "%s/png/%s.out", test_fixture_dir(), name);
        size_t n_expect = 0;
        uint8_t *expect = read_all(out, &n_expect);
        uint8_t *pix = NULL;
        int gw, gh, gc;
        attn_status st = attn_png_read(png, &pix, &gw, &gh, &gc);
        CHECK(st == ATTN_OK, "%s: %s", name, attn_last_error());
        if (st == ATTN_OK && expect) {
            CHECK(gw == w && gh == h && gc == c, "%s: got %d x %d x %d, expected %d x %d x %d", name,
                  gw, gh, gc, w, h, c);
            size_t n = (size_t)w * h * c;
            CHECK(n == n_expect && memcmp(pix, expect, n) == 0, "%s: pixels differ", name);
        }
        free(pix);
        free(expect);
        n_files++;
    }
    fclose(m);
    CHECK(n_files >= 17, "manifest lists %d files, expected at least 17", n_files);
    TEST_END();
}

static void test_round_trip(void) {
    TEST_BEGIN("png: write then read, grey and RGB, odd sizes, several stored blocks");
    const int sizes[][3] = {{1, 1, 1}, {13, 7, 1}, {5, 3, 3}, {300, 250, 3}, {257, 300, 1}};
    for (int k = 0; k < 5; k++) {
        int w = sizes[k][0], h = sizes[k][1], c = sizes[k][2];
        size_t n = (size_t)w * h * c;
        uint8_t *img = malloc(n);
        for (size_t i = 0; i < n; i++) img[i] = (uint8_t)((i * 2654435761u) >> 13);
        char path[512];
        tmp_path(path, sizeof path, "rt.png");
        CHECK_OK(attn_png_write(path, img, w, h, c));
        uint8_t *back = NULL;
        int gw, gh, gc;
        CHECK_OK(attn_png_read(path, &back, &gw, &gh, &gc));
        CHECK(back && gw == w && gh == h && gc == c && memcmp(back, img, n) == 0,
              "round trip %d x %d x %d", w, h, c);
        free(back);
        free(img);
        unlink(path);
    }
    TEST_END();
}

/* Decodes data; a failure must leave the outputs empty and set a message. */
static int decode_status(const uint8_t *d, size_t n, attn_status *st_out) {
    uint8_t *pix = (uint8_t *)1;
    int w = -1, h = -1, c = -1;
    attn_status st = attn_png_decode(d, n, "t.png", &pix, &w, &h, &c);
    *st_out = st;
    int ok = st == ATTN_OK ? (pix != NULL && w > 0 && h > 0 && (c == 1 || c == 3))
                           : (pix == NULL && w == 0 && h == 0 && c == 0 && attn_last_error()[0]);
    if (st == ATTN_OK) free(pix);
    return ok;
}

static void test_hostile(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/png/c3_d1_split.png", test_fixture_dir());
    size_t n = 0;
    uint8_t *d = read_all(path, &n);
    if (!d) {
        test_skip("png hostile", "%s missing", path);
        return;
    }
    TEST_BEGIN("png: every truncation is refused with a message");
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        attn_status st;
        if (!decode_status(d, k, &st) || st != ATTN_ERR_FORMAT) bad++;
    }
    CHECK(bad == 0, "%d of %zu truncations were not refused as ATTN_ERR_FORMAT", bad, n);
    TEST_END();

    TEST_BEGIN("png: every single-bit flip fails cleanly or decodes consistently");
    int inconsistent = 0, refused = 0;
    for (size_t k = 0; k < n * 8; k++) {
        d[k / 8] ^= (uint8_t)(1u << (k % 8));
        attn_status st;
        if (!decode_status(d, n, &st)) inconsistent++;
        if (st != ATTN_OK) refused++;
        d[k / 8] ^= (uint8_t)(1u << (k % 8));
    }
    CHECK(inconsistent == 0, "%d flips left inconsistent outputs", inconsistent);
    /* Every byte of a PNG is the signature or lies under a chunk's CRC (a
     * flipped length moves what the CRC covers), so every flip is refused. */
    CHECK(refused == (int)(n * 8), "%d of %zu flips were accepted", (int)(n * 8) - refused, n * 8);
    TEST_END();
    free(d);

    TEST_BEGIN("png: a deflate bomb, a bad CRC, a critical chunk, interlace, huge sizes");
    /* A valid 4x4 grey image, then edits of it. */
    uint8_t img[16];
    for (int i = 0; i < 16; i++) img[i] = (uint8_t)(i * 16);
    char p[512];
    tmp_path(p, sizeof p, "h.png");
    CHECK_OK(attn_png_write(p, img, 4, 4, 1));
    uint8_t *f = read_all(p, &n);
    unlink(p);
    attn_status st;
    CHECK(f && decode_status(f, n, &st) && st == ATTN_OK, "valid base image");
    if (f) {
        uint8_t *g = malloc(n + 64);
        /* bad CRC: flip the last byte of IHDR's CRC (offset 8 + 8 + 13 + 3) */
        memcpy(g, f, n);
        g[8 + 8 + 13 + 3] ^= 1;
        CHECK(decode_status(g, n, &st) && st == ATTN_ERR_FORMAT &&
                  strstr(attn_last_error(), "CRC"),
              "bad CRC: %s", attn_last_error());
        /* header claims 2x4: the data are longer than the header implies.
         * The IHDR CRC is recomputed by rewriting through the decoder's own
         * rules: simplest is to patch and fix the CRC here. */
        memcpy(g, f, n);
        g[8 + 8 + 3] = 2; /* width 2 */
        {
            uint32_t crc = 0xFFFFFFFFu;
            for (int i = 0; i < 17; i++) {
                crc ^= g[8 + 4 + i];
                for (int b = 0; b < 8; b++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
            }
            crc = ~crc;
            g[8 + 8 + 13] = (uint8_t)(crc >> 24);
            g[8 + 8 + 14] = (uint8_t)(crc >> 16);
            g[8 + 8 + 15] = (uint8_t)(crc >> 8);
            g[8 + 8 + 16] = (uint8_t)crc;
        }
        CHECK(decode_status(g, n, &st) && st == ATTN_ERR_FORMAT &&
                  strstr(attn_last_error(), "longer than the header"),
              "bomb: %s", attn_last_error());
        /* interlace 1, huge width, unknown critical chunk: IHDR edits */
        const struct {
            int off;
            uint8_t val;
            attn_status want;
            const char *needle;
        } edits[] = {
            {8 + 8 + 12, 1, ATTN_ERR_UNSUPPORTED, "interlaced"},
            {8 + 8 + 0, 0x7F, ATTN_ERR_UNSUPPORTED, "larger than"},
            {8 + 8 + 9, 5, ATTN_ERR_FORMAT, "colour type"},
            {8 + 8 + 8, 3, ATTN_ERR_FORMAT, "bit depth"},
            {8 + 8 + 10, 1, ATTN_ERR_FORMAT, "compression"},
            {8 + 4 + 0, 'J', ATTN_ERR_FORMAT, "IHDR"},
        };
        for (int e = 0; e < (int)(sizeof edits / sizeof edits[0]); e++) {
            memcpy(g, f, n);
            g[edits[e].off] = edits[e].val;
            uint32_t crc = 0xFFFFFFFFu;
            for (int i = 0; i < 17; i++) {
                crc ^= g[8 + 4 + i];
                for (int b = 0; b < 8; b++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
            }
            crc = ~crc;
            g[8 + 8 + 13] = (uint8_t)(crc >> 24);
            g[8 + 8 + 14] = (uint8_t)(crc >> 16);
            g[8 + 8 + 15] = (uint8_t)(crc >> 8);
            g[8 + 8 + 16] = (uint8_t)crc;
            CHECK(decode_status(g, n, &st) && st == edits[e].want &&
                      strstr(attn_last_error(), edits[e].needle),
                  "edit %d: want %s with '%s', got %s: %s", e, attn_status_str(edits[e].want),
                  edits[e].needle, attn_status_str(st), attn_last_error());
        }
        free(g);
        free(f);
    }
    CHECK(decode_status((const uint8_t *)"GIF89a", 6, &st) && st == ATTN_ERR_FORMAT &&
              strstr(attn_last_error(), "signature"),
          "not a PNG");
    TEST_END();
}

static void test_args(void) {
    TEST_BEGIN("png: argument errors");
    uint8_t px[12] = {0};
    char p[512];
    tmp_path(p, sizeof p, "a.png");
    CHECK(attn_png_write(NULL, px, 2, 2, 1) == ATTN_ERR_INVALID_ARG, "NULL path");
    CHECK(attn_png_write(p, NULL, 2, 2, 1) == ATTN_ERR_INVALID_ARG, "NULL pixels");
    CHECK(attn_png_write(p, px, 0, 2, 1) == ATTN_ERR_INVALID_ARG, "width 0");
    CHECK(attn_png_write(p, px, 2, -1, 1) == ATTN_ERR_INVALID_ARG, "height -1");
    CHECK(attn_png_write(p, px, 2, 2, 2) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "channels 2"),
          "channels 2: %s", attn_last_error());
    CHECK(attn_png_write(p, px, 20000, 1, 1) == ATTN_ERR_INVALID_ARG, "too wide");
    CHECK(access(p, F_OK) != 0, "no file left by a refused write");
    CHECK(attn_png_write("/nonexistent-dir/x.png", px, 2, 2, 1) == ATTN_ERR_IO, "unwritable");
    uint8_t *pix = NULL;
    int w, h, c;
    CHECK(attn_png_read("/nonexistent-dir/x.png", &pix, &w, &h, &c) == ATTN_ERR_IO &&
              strstr(attn_last_error(), "cannot open"),
          "missing file");
    CHECK(attn_png_read(p, NULL, &w, &h, &c) == ATTN_ERR_INVALID_ARG, "NULL pixels");
    CHECK(attn_png_read(NULL, &pix, &w, &h, &c) == ATTN_ERR_INVALID_ARG && pix == NULL, "NULL path");
    TEST_END();
}

void suite_png(void) {
    test_fixtures();
    test_round_trip();
    test_hostile();
    test_args();
}
