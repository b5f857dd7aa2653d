/* test_data.c: the IDX reader (include/attn/idx.h).
 *
 * Small IDX files, well-formed and malformed in every way the reader must
 * reject, are written into a fresh temporary directory and read back. When
 * Fashion-MNIST has been set up (scripts/setup.sh; $ATTN_DATA_DIR overrides
 * data/fashion-mnist), the real files are checked too: shapes, labels in
 * 0..9 with balanced classes, and pixel sums against known totals.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

static char tmp_dir[512];

/* Creates the temporary directory; returns 0 on success. */
static int tmp_open(void) {
    const char *base = getenv("TMPDIR");
    if (!base || !base[0]) base = "/tmp";
    snprintf(tmp_dir, sizeof tmp_dir, "%s/attn_test_data_XXXXXX", base);
    return mkdtemp(tmp_dir) ? 0 : -1;
}

/* Writes n bytes to tmp_dir/name; the full path goes to path. Returns 0 on
 * success. */
static int put_file(const char *name, const void *bytes, size_t n, char *path, size_t path_size) {
    snprintf(path, path_size, "%s/%s", tmp_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(bytes, 1, n, f) : 0;
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

/* An IDX header: 00 00 type ndim, then the dims big-endian. Returns its
 * length (4 + 4 * ndim). */
static size_t idx_header(unsigned char *buf, unsigned type, int ndim, const uint32_t *dims) {
    buf[0] = 0;
    buf[1] = 0;
    buf[2] = (unsigned char)type;
    buf[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        buf[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        buf[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        buf[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        buf[7 + 4 * i] = (unsigned char)dims[i];
    }
    return 4 + 4 * (size_t)ndim;
}

static void test_roundtrip(void) {
    TEST_BEGIN("data/idx_roundtrip");
    unsigned char buf[256];
    const uint32_t dims[3] = {3, 2, 4};
    size_t h = idx_header(buf, 0x08, 3, dims);
    for (int i = 0; i < 24; i++) buf[h + i] = (unsigned char)(i * 37 % 256);
    buf[h + 5] = 255;
    buf[h + 6] = 0;
    char path[600];
    CHECK(put_file("images", buf, h + 24, path, sizeof path) == 0, "cannot write %s", path);
    attn_idx im;
    CHECK_OK(attn_idx_load(path, &im));
    CHECK(im.data != NULL && im.ndim == 3 && im.dims[0] == 3 && im.dims[1] == 2 &&
              im.dims[2] == 4 && im.dims[3] == 0 && im.numel == 24 && im.item_size == 8,
          "header: ndim %d dims %lld %lld %lld numel %lld item_size %lld", im.ndim,
          (long long)im.dims[0], (long long)im.dims[1], (long long)im.dims[2],
          (long long)im.numel, (long long)im.item_size);
    if (im.data) {
        CHECK(memcmp(im.data, buf + h, 24) == 0, "data bytes differ from the file");

        float f[24], ref[24];
        CHECK_OK(attn_idx_to_f32(&im, 0, 3, 0.0f, 1.0f, f));
        for (int i = 0; i < 24; i++) ref[i] = (float)(buf[h + i] / 255.0);
        test_allclose("to_f32 in [0,1]", f, ref, 24, 0.0f, 0.0f);
        CHECK(f[5] == 1.0f && f[6] == 0.0f, "255 -> %g and 0 -> %g, expected 1 and 0",
              (double)f[5], (double)f[6]);

        /* items 1 and 2 only, normalised */
        const float mean = 0.25f, std = 0.5f;
        CHECK_OK(attn_idx_to_f32(&im, 1, 2, mean, std, f));
        for (int i = 0; i < 16; i++)
            ref[i] = (float)((buf[h + 8 + i] / 255.0 - mean) / std);
        test_allclose("to_f32 normalised, items [1,3)", f, ref, 16, 0.0f, 0.0f);

        int32_t lab[24];
        CHECK_OK(attn_idx_to_i32(&im, 2, 1, lab));
        for (int i = 0; i < 8; i++)
            CHECK(lab[i] == buf[h + 16 + i], "to_i32[%d] = %d, expected %d", i, (int)lab[i],
                  (int)buf[h + 16 + i]);
        CHECK_OK(attn_idx_to_i32(&im, 3, 0, lab)); /* an empty range at the end is fine */

        /* Bad ranges and statistics. */
        CHECK(attn_idx_to_f32(&im, -1, 1, 0.0f, 1.0f, f) == ATTN_ERR_INVALID_ARG, "first -1");
        CHECK(attn_idx_to_f32(&im, 2, 2, 0.0f, 1.0f, f) == ATTN_ERR_INVALID_ARG,
              "range [2,4) of 3 items");
        CHECK(strstr(attn_last_error(), "outside the 3 items") != NULL, "message: %s",
              attn_last_error());
        CHECK(attn_idx_to_i32(&im, 0, INT64_MAX, lab) == ATTN_ERR_INVALID_ARG, "huge count");
        CHECK(attn_idx_to_f32(&im, 0, 1, 0.0f, 0.0f, f) == ATTN_ERR_INVALID_ARG, "std 0");
        CHECK(attn_idx_to_f32(&im, 0, 1, NAN, 1.0f, f) == ATTN_ERR_INVALID_ARG, "mean NaN");
        CHECK(attn_idx_to_f32(&im, 0, 1, 0.0f, 1.0f, NULL) == ATTN_ERR_INVALID_ARG, "out NULL");
    }
    attn_idx_free(&im);
    CHECK(im.data == NULL && im.ndim == 0, "attn_idx_free must empty the struct");
    attn_idx_free(&im); /* twice is harmless */
    attn_idx_free(NULL);
    CHECK(attn_idx_to_i32(&im, 0, 0, (int32_t *)buf) == ATTN_ERR_INVALID_ARG,
          "conversion of a freed array");
    unlink(path);

    /* A label file: one dimension, item_size 1. */
    const uint32_t n5[1] = {5};
    h = idx_header(buf, 0x08, 1, n5);
    const unsigned char labels[5] = {9, 0, 0, 3, 7};
    memcpy(buf + h, labels, 5);
    CHECK(put_file("labels", buf, h + 5, path, sizeof path) == 0, "cannot write %s", path);
    attn_idx lb;
    CHECK_OK(attn_idx_load(path, &lb));
    CHECK(lb.ndim == 1 && lb.dims[0] == 5 && lb.numel == 5 && lb.item_size == 1,
          "labels header: ndim %d dims[0] %lld item_size %lld", lb.ndim, (long long)lb.dims[0],
          (long long)lb.item_size);
    int32_t li[5] = {0};
    if (lb.data) CHECK_OK(attn_idx_to_i32(&lb, 0, 5, li));
    for (int i = 0; i < 5; i++)
        CHECK(li[i] == labels[i], "label %d: %d, expected %d", i, (int)li[i], (int)labels[i]);
    attn_idx_free(&lb);
    unlink(path);
    TEST_END();
}

/* Writes `bytes`, loads them, and checks the status, that the message names
 * the file and contains `phrase`, and that *out was left empty. */
static void expect_bad(const char *name, const void *bytes, size_t n, attn_status want,
                       const char *phrase) {
    char path[600];
    if (put_file(name, bytes, n, path, sizeof path) != 0) {
        CHECK(0, "%s: cannot write %s", name, path);
        return;
    }
    attn_idx out;
    memset(&out, 0x5A, sizeof out);
    attn_status st = attn_idx_load(path, &out);
    const char *msg = attn_last_error();
    CHECK(st == want, "%s: status '%s', expected '%s' (message: %s)", name, attn_status_str(st),
          attn_status_str(want), msg);
    CHECK(strstr(msg, path) != NULL, "%s: message does not name the file: %s", name, msg);
    CHECK(strstr(msg, phrase) != NULL, "%s: message lacks '%s': %s", name, phrase, msg);
    CHECK(out.data == NULL && out.ndim == 0 && out.numel == 0 && out.dims[0] == 0,
          "%s: *out not emptied on error", name);
    if (st == ATTN_OK) attn_idx_free(&out);
    unlink(path);
}

static void test_malformed(void) {
    TEST_BEGIN("data/idx_malformed");
    unsigned char buf[128];
    memset(buf, 0, sizeof buf);
    const uint32_t d10[1] = {10};
    const uint32_t d2x3[2] = {2, 3};
    size_t h;

    expect_bad("empty", buf, 0, ATTN_ERR_FORMAT, "truncated header");
    expect_bad("short_magic", buf, 3, ATTN_ERR_FORMAT, "truncated header");

    h = idx_header(buf, 0x08, 1, d10);
    buf[0] = 0x01;
    expect_bad("bad_magic", buf, h + 10, ATTN_ERR_FORMAT, "bad magic");

    const unsigned char gz[16] = {0x1f, 0x8b, 0x08, 0x08};
    expect_bad("gzip", gz, sizeof gz, ATTN_ERR_FORMAT, "gzip");

    h = idx_header(buf, 0x0D, 1, d10); /* float32 */
    expect_bad("dtype_float", buf, h + 40, ATTN_ERR_FORMAT, "element type 0x0d (float32)");
    h = idx_header(buf, 0x07, 1, d10);
    expect_bad("dtype_unknown", buf, h + 10, ATTN_ERR_FORMAT, "element type 0x07");

    h = idx_header(buf, 0x08, 0, NULL);
    expect_bad("ndim_0", buf, h + 1, ATTN_ERR_FORMAT, "0 dimensions");
    const uint32_t d5[5] = {1, 1, 1, 1, 1};
    h = idx_header(buf, 0x08, 5, d5);
    expect_bad("ndim_5", buf, h + 1, ATTN_ERR_FORMAT, "5 dimensions");

    h = idx_header(buf, 0x08, 2, d2x3);
    expect_bad("header_cut", buf, 9, ATTN_ERR_FORMAT, "truncated header");

    const uint32_t dzero[2] = {4, 0};
    h = idx_header(buf, 0x08, 2, dzero);
    expect_bad("dim_zero", buf, h, ATTN_ERR_FORMAT, "dimension 1 is 0");

    /* 0xFFFFFFFF^4 = 2^128 - ...: must be caught before any allocation. */
    const uint32_t huge[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    h = idx_header(buf, 0x08, 4, huge);
    expect_bad("dims_overflow", buf, h + 8, ATTN_ERR_FORMAT, "overflows");
    /* A product that fits but is far larger than the file (no 4 GiB malloc). */
    const uint32_t big[2] = {0xFFFFFFFFu, 0xFFFFu};
    h = idx_header(buf, 0x08, 2, big);
    expect_bad("dims_too_big", buf, h + 8, ATTN_ERR_FORMAT, "truncated");

    h = idx_header(buf, 0x08, 2, d2x3);
    expect_bad("truncated", buf, h + 5, ATTN_ERR_FORMAT, "truncated");
    expect_bad("header_only", buf, h, ATTN_ERR_FORMAT, "truncated");
    expect_bad("trailing", buf, h + 7, ATTN_ERR_FORMAT, "trailing");
    /* The control: the same bytes at the right size load. */
    char path[600];
    attn_idx ok;
    CHECK(put_file("exact", buf, h + 6, path, sizeof path) == 0, "cannot write %s", path);
    CHECK_OK(attn_idx_load(path, &ok));
    CHECK(ok.numel == 6 && ok.item_size == 3, "control: numel %lld item_size %lld",
          (long long)ok.numel, (long long)ok.item_size);
    attn_idx_free(&ok);
    unlink(path);
    TEST_END();
}

static void test_io(void) {
    TEST_BEGIN("data/idx_io");
    attn_idx out;
    char path[600];
    snprintf(path, sizeof path, "%s/does-not-exist", tmp_dir);
    attn_status st = attn_idx_load(path, &out);
    CHECK(st == ATTN_ERR_IO, "missing file: status '%s', expected '%s'", attn_status_str(st),
          attn_status_str(ATTN_ERR_IO));
    CHECK(strstr(attn_last_error(), path) != NULL, "message does not name the file: %s",
          attn_last_error());
    CHECK(out.data == NULL, "*out not emptied");
    st = attn_idx_load(tmp_dir, &out);
    CHECK(st == ATTN_ERR_IO, "directory: status '%s', expected '%s' (%s)", attn_status_str(st),
          attn_status_str(ATTN_ERR_IO), attn_last_error());
    CHECK(attn_idx_load(NULL, &out) == ATTN_ERR_INVALID_ARG, "NULL path");
    CHECK(attn_idx_load(path, NULL) == ATTN_ERR_INVALID_ARG, "NULL out");
    TEST_END();
}

/* One split of Fashion-MNIST: images [n,28,28], labels [n] in 0..9 with
 * n/10 of each class, and the sum of all pixel bytes (a checksum computed
 * once from the published files). */
static void check_split(const char *dir, const char *prefix, int64_t n, long long pixel_sum) {
    char ip[1024], lp[1024];
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte", dir, prefix);
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte", dir, prefix);
    attn_idx im, lb;
    CHECK_OK(attn_idx_load(ip, &im));
    CHECK_OK(attn_idx_load(lp, &lb));
    if (im.data) {
        CHECK(im.ndim == 3 && im.dims[0] == n && im.dims[1] == 28 && im.dims[2] == 28 &&
                  im.item_size == 784,
              "%s: dims [%lld,%lld,%lld], expected [%lld,28,28]", ip, (long long)im.dims[0],
              (long long)im.dims[1], (long long)im.dims[2], (long long)n);
        long long sum = 0;
        for (int64_t i = 0; i < im.numel; i++) sum += im.data[i];
        CHECK(sum == pixel_sum, "%s: pixel sum %lld, expected %lld", ip, sum, pixel_sum);
    }
    if (lb.data) {
        CHECK(lb.ndim == 1 && lb.dims[0] == n, "%s: dims [%lld] (ndim %d), expected [%lld]", lp,
              (long long)lb.dims[0], lb.ndim, (long long)n);
        int64_t count[10] = {0}, bad = 0;
        for (int64_t i = 0; i < lb.numel; i++) {
            if (lb.data[i] < 10) count[lb.data[i]]++;
            else bad++;
        }
        CHECK(bad == 0, "%s: %lld labels outside 0..9", lp, (long long)bad);
        for (int c = 0; c < 10; c++)
            CHECK(count[c] == n / 10, "%s: class %d has %lld examples, expected %lld", lp, c,
                  (long long)count[c], (long long)(n / 10));
        CHECK(lb.data[0] == 9, "%s: first label %d, expected 9 (ankle boot)", lp,
              (int)lb.data[0]);
    }
    attn_idx_free(&im);
    attn_idx_free(&lb);
}

static void test_fashion_mnist(void) {
    const char *dir = getenv("ATTN_DATA_DIR");
    if (!dir || !dir[0]) dir = "data/fashion-mnist";
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        test_skip("data/fashion_mnist", "no directory %s (bash scripts/setup.sh installs it)", dir);
        return;
    }
    TEST_BEGIN("data/fashion_mnist");
    check_split(dir, "train", 60000, 3431114169LL);
    check_split(dir, "t10k", 10000, 573469082LL);
    TEST_END();
}

void suite_data(void) {
    if (tmp_open() != 0) {
        TEST_BEGIN("data/tmpdir");
        CHECK(0, "mkdtemp(%s) failed", tmp_dir);
        TEST_END();
    } else {
        test_roundtrip();
        test_malformed();
        test_io();
        rmdir(tmp_dir);
    }
    test_fashion_mnist();
}
