/* test_safetensors.c: the safetensors reader and writer, parameter
 * save/load, checkpoints and atomic writes.
 *
 *   round trip        save -> open (names, shapes, metadata) -> load, bitwise
 *   torch file        tests/fixtures/torch_params.safetensors, written by
 *                     tools/make_optim_fixtures.py as the reference writer
 *                     lays files out: F32, BF16, F16 (converted), I64, scalar
 *   malformed         one hand-made file per rule of the format: each gives
 *                     ATTN_ERR_FORMAT with a message
 *   fuzz              every truncation and 3000 random byte flips of a valid
 *                     file: ATTN_OK or ATTN_ERR_FORMAT, never a crash (run
 *                     under `make sanitize` to catch memory errors)
 *   strict load       missing / unexpected tensors, shapes, dtypes; the store
 *                     is unchanged after a failed load
 *   checkpoints       params + AdamW (and SGD momentum) state restored give
 *                     a bitwise identical next step; error cases
 *   atomicity         failed saves leave the previous file byte-identical and
 *                     no temporary file behind
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

/* ---- helpers ------------------------------------------------------------------ */

static char tmp_dir[64];

/* A fresh directory under /tmp for this suite's files. */
static int make_tmp_dir(void) {
    strcpy(tmp_dir, "/tmp/attn_st_XXXXXX");
    if (mkdtemp(tmp_dir)) return 0;
    TEST_BEGIN("safetensors.tmp_dir");
    CHECK(0, "mkdtemp %s: %s", tmp_dir, strerror(errno));
    TEST_END();
    return -1;
}

static void tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", tmp_dir, name);
}

/* Whole file into memory (NULL if it cannot be read). */
static unsigned char *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *b = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            unsigned char *nb = realloc(b, cap);
            if (!nb) break;
            b = nb;
        }
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    *size = n;
    return b;
}

static int spit(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(b, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* Files in tmp_dir whose name contains ".tmp." (temporaries left behind). */
static int count_temporaries(void) {
    DIR *d = opendir(tmp_dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

/* A deterministic value stream (xorshift). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}
static float rndf(void) { return (float)rnd() / 4294967296.0f * 4.0f - 2.0f; }

typedef struct pspec {
    const char *name;
    int ndim;
    int64_t shape[4];
} pspec;

static attn_params *make_store(const pspec *spec, int n, int fill) {
    attn_params *ps = NULL;
    CHECK_OK(attn_params_new(&ps));
    for (int i = 0; ps && i < n; i++) {
        attn_tensor *t = NULL;
        CHECK_OK(attn_params_add(ps, spec[i].name, spec[i].ndim, spec[i].shape, &t));
        if (!t) {
            attn_params_free(ps);
            return NULL;
        }
        for (int64_t j = 0; fill && j < attn_tensor_numel(t); j++) attn_f32(t)[j] = rndf();
    }
    return ps;
}

static int same_values(const attn_params *a, const attn_params *b) {
    if (attn_params_count(a) != attn_params_count(b)) return 0;
    for (int i = 0; i < attn_params_count(a); i++) {
        const attn_tensor *x = attn_params_at(a, i), *y = attn_params_at(b, i);
        if (attn_tensor_numel(x) != attn_tensor_numel(y) ||
            memcmp(x->data, y->data, sizeof(float) * (size_t)attn_tensor_numel(x)) != 0)
            return 0;
    }
    return 1;
}

static const pspec SPEC[] = {
    {"encoder.layers.0.self_attn.in_proj_weight", 2, {6, 5}},
    {"encoder.layers.0.self_attn.in_proj_bias", 1, {6}},
    {"scale", 0, {0}},
    {"blocks.\xce\xb1.w", 4, {2, 1, 3, 2}}, /* a non-ASCII name */
    {"quote\"back\\slash", 1, {3}},        /* characters JSON escapes */
};
#define NSPEC ((int)(sizeof SPEC / sizeof SPEC[0]))

/* ---- round trip ------------------------------------------------------------------ */

static void test_round_trip(void) {
    TEST_BEGIN("safetensors.round_trip");
    char path[128];
    tmp_path(path, sizeof path, "round.safetensors");
    attn_params *a = make_store(SPEC, NSPEC, 1), *b = make_store(SPEC, NSPEC, 0);
    attn_safetensors *f = NULL;
    if (!a || !b) goto out;
    /* special values survive bit for bit */
    float *w = attn_f32(attn_params_at(a, 0));
    w[0] = -0.0f;
    w[1] = INFINITY;
    w[2] = NAN;
    w[3] = 1e-45f; /* the smallest subnormal */
    w[4] = -3.4028235e38f;
    attn_kv meta[3] = {{"epoch", "7"},
                       {"note", "caf\xc3\xa9 \"q\" \\ tab\there\nnewline"},
                       {"empty", ""}};
    CHECK_OK(attn_safetensors_save_params(path, a, meta, 3));
    CHECK_OK(attn_safetensors_open(&f, path));
    if (f) {
        CHECK(attn_safetensors_count(f) == NSPEC, "%d tensors", attn_safetensors_count(f));
        for (int i = 0; i < NSPEC; i++) {
            const attn_st_tensor *t = attn_safetensors_find(f, SPEC[i].name);
            CHECK(t != NULL, "tensor '%s' not found", SPEC[i].name);
            if (!t) continue;
            int same = t->dtype == ATTN_ST_F32 && t->ndim == SPEC[i].ndim;
            for (int k = 0; same && k < t->ndim; k++) same = t->shape[k] == SPEC[i].shape[k];
            CHECK(same, "tensor '%s': dtype %s, %d dims", t->name, attn_st_dtype_name(t->dtype),
                  t->ndim);
            CHECK(t->offset % 4 == 0, "'%s' data at offset %llu: not aligned", t->name,
                  (unsigned long long)t->offset);
        }
        /* tensors listed in buffer order; the first starts after a header
         * padded to a multiple of 8 */
        const attn_st_tensor *first = attn_safetensors_at(f, 0);
        CHECK(first && first->offset % 8 == 0, "buffer starts at %llu",
              first ? (unsigned long long)first->offset : 0ull);
        CHECK(attn_safetensors_at(f, NSPEC) == NULL && attn_safetensors_at(f, -1) == NULL,
              "out-of-range index");
        CHECK(attn_safetensors_find(f, "absent") == NULL, "found an absent tensor");
        CHECK(attn_safetensors_metadata_count(f) == 3, "%d metadata entries",
              attn_safetensors_metadata_count(f));
        for (int i = 0; i < 3; i++) {
            const char *v = attn_safetensors_metadata(f, meta[i].key);
            CHECK(v && strcmp(v, meta[i].value) == 0, "metadata '%s' = '%s'", meta[i].key,
                  v ? v : "(absent)");
            const char *k2, *v2;
            CHECK(attn_safetensors_metadata_at(f, i, &k2, &v2) == 0 && strcmp(k2, meta[i].key) == 0,
                  "metadata order");
        }
        CHECK(attn_safetensors_metadata_at(f, 3, NULL, NULL) == -1, "metadata index 3");
    }
    /* the store holds an Inf and a NaN on purpose (the format keeps every
     * bit), which a strict load refuses: allowed here */
    CHECK(attn_safetensors_load_params(path, b, 0) == ATTN_ERR_NUMERIC,
          "a strict load took the Inf and NaN: %s", attn_last_error());
    CHECK_OK(attn_safetensors_load_params(path, b, ATTN_ST_ALLOW_NONFINITE));
    CHECK(same_values(a, b), "loaded values differ from the saved ones");
    /* the same bytes through open_memory */
    size_t n = 0;
    unsigned char *bytes = slurp(path, &n);
    attn_safetensors *g = NULL;
    CHECK(bytes != NULL, "cannot read %s back", path);
    if (bytes) CHECK_OK(attn_safetensors_open_memory(&g, bytes, n));
    CHECK(!g || attn_safetensors_count(g) == NSPEC, "open_memory");
    attn_safetensors_close(g);
    free(bytes);
    /* no metadata at all, and an empty store */
    attn_params *empty = make_store(NULL, 0, 0);
    if (empty) {
        CHECK_OK(attn_safetensors_save_params(path, empty, NULL, 0));
        attn_safetensors *e = NULL;
        CHECK_OK(attn_safetensors_open(&e, path));
        CHECK(!e || (attn_safetensors_count(e) == 0 && attn_safetensors_metadata_count(e) == 0),
              "empty file not empty");
        attn_safetensors_close(e);
    }
    attn_params_free(empty);
out:
    attn_safetensors_close(f);
    attn_params_free(a);
    attn_params_free(b);
    TEST_END();
}

/* ---- a file written like the reference implementation ------------------------------- */

static void test_torch_file(void) {
    TEST_BEGIN("safetensors.torch_file");
    char path[512];
    snprintf(path, sizeof path, "%s/torch_params.safetensors", test_fixture_dir());
    attn_safetensors *f = NULL;
    attn_params *ps = NULL;
    CHECK_OK(attn_safetensors_open(&f, path));
    if (!f) goto out;
    CHECK(attn_safetensors_count(f) == 6, "%d tensors, expected 6", attn_safetensors_count(f));
    const char *fmt = attn_safetensors_metadata(f, "format");
    const char *note = attn_safetensors_metadata(f, "note");
    CHECK(fmt && strcmp(fmt, "pt") == 0, "metadata format '%s'", fmt ? fmt : "(absent)");
    CHECK(note && strcmp(note, "caf\xc3\xa9 \xe2\x9c\x93 \"quoted\"") == 0, "metadata note '%s'",
          note ? note : "(absent)");
    const attn_st_tensor *pos = attn_safetensors_find(f, "position_ids");
    CHECK(pos && pos->dtype == ATTN_ST_I64 && pos->ndim == 2 && pos->shape[0] == 1 &&
              pos->shape[1] == 6 && pos->nbytes == 48,
          "position_ids entry");
    if (pos) {
        int ok = 1;
        for (int i = 0; i < 6; i++) {
            int64_t v;
            memcpy(&v, (const unsigned char *)pos->data + 8 * i, 8); /* little-endian host */
            ok &= v == i;
        }
        CHECK(ok, "position_ids values");
        float dummy[6];
        CHECK(attn_safetensors_read_f32(pos, dummy) == ATTN_ERR_DTYPE, "I64 read as float");
    }
    const attn_st_tensor *sc = attn_safetensors_find(f, "scale");
    CHECK(sc && sc->ndim == 0 && sc->numel == 1, "scalar entry");

    const pspec spec[] = {{"layer.weight", 2, {3, 5}}, {"layer.bias", 1, {5}}, {"scale", 0, {0}},
                          {"emb.weight", 2, {4, 3}},   {"head.weight", 2, {2, 3}}};
    ps = make_store(spec, 5, 0);
    if (!ps) goto out;
    attn_status st = attn_safetensors_load_params(path, ps, 0);
    CHECK(st == ATTN_ERR_FORMAT && strstr(attn_last_error(), "position_ids"),
          "strict load with an extra I64 tensor gave %s: %s", attn_status_str(st),
          attn_last_error());
    CHECK_OK(attn_safetensors_load_params(path, ps, ATTN_ST_ALLOW_UNEXPECTED));
    /* the closed forms of tools/make_optim_fixtures.py, safetensors_fixture */
    float lw[15], lb[5], emb[12];
    for (int i = 0; i < 15; i++) lw[i] = (float)(i - 7) / 4.0f;
    for (int i = 0; i < 5; i++) lb[i] = (float)i / 8.0f + 100.0f;
    for (int i = 0; i < 12; i++) emb[i] = (float)((i - 6) * ldexp(1.0, i - 6));
    const float head[6] = {1.5f, -0.0f, 65504.0f, 5.9604644775390625e-08f /* 2^-24 */,
                           -6.103515625e-05f /* -2^-14 */, 0.25f};
    test_allclose("layer.weight", attn_f32(attn_params_find(ps, "layer.weight")), lw, 15, 0, 0);
    test_allclose("layer.bias", attn_f32(attn_params_find(ps, "layer.bias")), lb, 5, 0, 0);
    CHECK(attn_f32(attn_params_find(ps, "scale"))[0] == 0.5f, "scale");
    test_allclose("emb.weight (BF16)", attn_f32(attn_params_find(ps, "emb.weight")), emb, 12, 0, 0);
    const float *h = attn_f32(attn_params_find(ps, "head.weight"));
    test_allclose("head.weight (F16)", h, head, 6, 0, 0);
    CHECK(signbit(h[1]), "F16 -0.0 lost its sign");
out:
    attn_params_free(ps);
    attn_safetensors_close(f);
    TEST_END();
}

/* ---- malformed files ------------------------------------------------------------------ */

/* size field + header + buffer, in memory; header_len overrides the size
 * field when not ~0. */
static attn_status open_crafted(const char *header, const void *buf, size_t buf_n,
                                uint64_t header_len) {
    size_t hn = strlen(header);
    unsigned char *b = malloc(8 + hn + buf_n + 1);
    if (!b) return ATTN_ERR_OOM;
    uint64_t len = header_len != ~0ull ? header_len : hn;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(len >> (8 * i));
    memcpy(b + 8, header, hn);
    if (buf_n) memcpy(b + 8 + hn, buf, buf_n);
    attn_safetensors *f = NULL;
    attn_status st = attn_safetensors_open_memory(&f, b, 8 + hn + buf_n);
    attn_safetensors_close(f);
    free(b);
    return st;
}

static void test_malformed(void) {
    TEST_BEGIN("safetensors.malformed");
    static const unsigned char buf[64];
    const char *ok_hdr = "{\"__metadata__\":{\"a\":\"b\"},\"x\":{\"dtype\":\"F32\",\"shape\":[2],"
                         "\"data_offsets\":[0,8]}}";
    CHECK_OK(open_crafted(ok_hdr, buf, 8, ~0ull));
    CHECK_OK(open_crafted("{}", buf, 0, ~0ull));
    CHECK_OK(open_crafted("{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}   ",
                          buf, 0, ~0ull));
    CHECK(open_crafted(" {}", buf, 0, ~0ull) == ATTN_ERR_FORMAT, "a header must begin with '{'");
    struct {
        const char *what, *header;
        size_t buf_n;
        const char *msg; /* a piece the message must contain */
    } c[] = {
        {"empty header", "", 0, "'{'"},
        {"not an object", "[]", 0, "'{'"},
        {"missing colon", "{\"x\" {\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "':'"},
        {"trailing comma", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", 8, "header byte"},
        {"unterminated string", "{\"x", 0, "closing"},
        {"bad escape", "{\"x\\q\":{}}", 0, "escape"},
        {"lone surrogate", "{\"x\\ud800\":{}}", 0, "surrogate"},
        {"\\u0000 in a name", "{\"x\\u0000\":{}}", 0, "u0000"},
        {"control character", "{\"x\ty\":{}}", 0, "control"},
        {"invalid UTF-8", "{\"x\xff\":{}}", 0, "UTF-8"},
        {"overlong UTF-8", "{\"x\xc0\xaf\":{}}", 0, "UTF-8"},
        {"garbage after the object", "{} x", 0, "whitespace"},
        {"unclosed object", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, "header byte"},
        {"unknown dtype", "{\"x\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "F33"},
        {"dtype not a string", "{\"x\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype"},
        {"negative dimension", "{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "integer"},
        {"fractional dimension", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, "fraction"},
        {"exponent", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]}}", 8, "exponent"},
        {"leading zero", "{\"x\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", 8, "leading"},
        {"huge dimension", "{\"x\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", 8, "2^63"},
        {"element count overflow", "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, "overflow"},
        {"byte size overflow", "{\"x\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", 8, "overflow"},
        {"9 dimensions", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, "at most 8"},
        {"shape not an array", "{\"x\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, "shape"},
        {"one offset", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 8, "expected 2"},
        {"three offsets", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8, "at most 2"},
        {"end before begin", "{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, "outside"},
        {"past the buffer", "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "outside"},
        {"size mismatch", "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "need 12"},
        {"overlap", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "overlaps"},
        {"hole", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "hole"},
        {"trailing bytes", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "after the last"},
        {"duplicate tensor", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "repeated"},
        {"duplicate metadata key", "{\"__metadata__\":{\"a\":\"b\",\"a\":\"c\"}}", 0, "repeated"},
        {"two metadata objects", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "repeated"},
        {"metadata number", "{\"__metadata__\":{\"a\":1}}", 0, "strings"},
        {"metadata nested", "{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}", 0, "strings"},
        {"metadata null", "{\"__metadata__\":null}", 0, "__metadata__"},
        {"unknown field", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}", 8, "unknown"},
        {"repeated field", "{\"x\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "repeated"},
        {"missing field", "{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "shape"},
        {"tensor not an object", "{\"x\":[1,2]}", 0, "'{'"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        attn_clear_error();
        attn_status st = open_crafted(c[i].header, buf, c[i].buf_n, ~0ull);
        CHECK(st == ATTN_ERR_FORMAT, "%s: %s", c[i].what, attn_status_str(st));
        CHECK(strstr(attn_last_error(), c[i].msg) != NULL, "%s: message lacks \"%s\": %s",
              c[i].what, c[i].msg, attn_last_error());
    }
    /* the size field */
    CHECK(open_crafted("{}", buf, 0, 1) == ATTN_ERR_FORMAT, "header size shorter than its JSON");
    CHECK(open_crafted("{}", buf, 0, 1000) == ATTN_ERR_FORMAT &&
              strstr(attn_last_error(), "exceeds the file"),
          "header size past the end: %s", attn_last_error());
    CHECK(open_crafted("{}", buf, 0, 1ull << 40) == ATTN_ERR_FORMAT, "header size 2^40");
    CHECK(open_crafted("{}", buf, 0, ~1ull) == ATTN_ERR_FORMAT, "header size 2^64 - 2");
    attn_safetensors *f = NULL;
    CHECK(attn_safetensors_open_memory(&f, "\x02\0\0\0", 4) == ATTN_ERR_FORMAT && f == NULL,
          "4-byte file");
    CHECK(attn_safetensors_open_memory(&f, NULL, 0) == ATTN_ERR_FORMAT, "empty file");
    CHECK(attn_safetensors_open(&f, "/nonexistent/x.safetensors") == ATTN_ERR_IO, "missing file");
    CHECK(attn_safetensors_open(&f, "/tmp") == ATTN_ERR_IO, "a directory");
    CHECK(attn_safetensors_open(NULL, "x") == ATTN_ERR_INVALID_ARG, "NULL out");
    TEST_END();
}

static void test_fuzz(void) {
    TEST_BEGIN("safetensors.fuzz_truncation_and_flips");
    char path[128];
    tmp_path(path, sizeof path, "fuzz.safetensors");
    attn_params *a = make_store(SPEC, 3, 1);
    attn_kv meta[1] = {{"k", "v"}};
    unsigned char *good = NULL, *bad = NULL;
    size_t n = 0;
    if (!a) goto out;
    CHECK_OK(attn_safetensors_save_params(path, a, meta, 1));
    good = slurp(path, &n);
    bad = malloc(n ? n : 1);
    if (!good || !bad) {
        CHECK(0, "cannot read the file back");
        goto out;
    }
    int unexpected = 0;
    for (size_t len = 0; len < n; len++) { /* every proper prefix is malformed */
        attn_safetensors *f = NULL;
        attn_status st = attn_safetensors_open_memory(&f, good, len);
        attn_safetensors_close(f);
        if (st != ATTN_ERR_FORMAT && unexpected++ < 3)
            CHECK(0, "truncation to %zu of %zu bytes gave %s", len, n, attn_status_str(st));
    }
    int ok = 0, format = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(bad, good, n);
        int flips = 1 + (int)(rnd() % 3);
        for (int k = 0; k < flips; k++) {
            /* mostly the size field and the header, where structure lives */
            size_t hdr_end = n - 4 * (size_t)attn_params_numel(a);
            size_t at = rnd() % 4 ? rnd() % hdr_end : rnd() % n;
            bad[at] ^= (unsigned char)(1 + rnd() % 255);
        }
        attn_safetensors *f = NULL;
        attn_status st = attn_safetensors_open_memory(&f, bad, n);
        if (st == ATTN_OK) {
            ok++;
            /* whatever parsed must be self-consistent */
            for (int i = 0; i < attn_safetensors_count(f); i++) {
                const attn_st_tensor *t = attn_safetensors_at(f, i);
                if (t->offset + t->nbytes > n || attn_safetensors_find(f, t->name) != t) {
                    CHECK(0, "flip %d: tensor %d inconsistent", it, i);
                    break;
                }
            }
        } else if (st == ATTN_ERR_FORMAT) {
            format++;
        } else if (unexpected++ < 3) {
            CHECK(0, "flip %d gave %s: %s", it, attn_status_str(st), attn_last_error());
        }
        attn_safetensors_close(f);
    }
    CHECK(format > 1000, "only %d of 3000 corrupted files were rejected", format);
    if (test__verbose) printf("  fuzz: %d flips parsed, %d rejected\n", ok, format);
out:
    free(good);
    free(bad);
    attn_params_free(a);
    TEST_END();
}

/* ---- strict loading -------------------------------------------------------------------- */

static void test_strict_load(void) {
    TEST_BEGIN("safetensors.strict_load");
    char path[128];
    tmp_path(path, sizeof path, "strict.safetensors");
    const pspec full[] = {{"w", 2, {3, 4}}, {"b", 1, {4}}};
    attn_params *src = make_store(full, 2, 1), *dst = NULL;
    if (!src) goto out;
    CHECK_OK(attn_safetensors_save_params(path, src, NULL, 0));

    /* missing: the store has a parameter the file lacks */
    const pspec more[] = {{"w", 2, {3, 4}}, {"b", 1, {4}}, {"extra.gamma", 1, {2}}};
    dst = make_store(more, 3, 1);
    attn_params *snapshot = make_store(more, 3, 0);
    if (!dst || !snapshot) goto out2;
    for (int i = 0; i < 3; i++)
        memcpy(attn_params_at(snapshot, i)->data, attn_params_at(dst, i)->data,
               sizeof(float) * (size_t)attn_tensor_numel(attn_params_at(dst, i)));
    attn_status st = attn_safetensors_load_params(path, dst, 0);
    CHECK(st == ATTN_ERR_FORMAT && strstr(attn_last_error(), "extra.gamma"),
          "missing parameter gave %s: %s", attn_status_str(st), attn_last_error());
    CHECK(same_values(dst, snapshot), "a failed load changed the store");
    CHECK_OK(attn_safetensors_load_params(path, dst, ATTN_ST_ALLOW_MISSING));
    CHECK(memcmp(attn_params_at(dst, 2)->data, attn_params_at(snapshot, 2)->data,
                 2 * sizeof(float)) == 0 &&
              memcmp(attn_params_at(dst, 0)->data, attn_params_at(src, 0)->data,
                     12 * sizeof(float)) == 0,
          "ALLOW_MISSING: loaded or kept the wrong values");
    attn_params_free(dst);
    attn_params_free(snapshot);

    /* non-finite values (a diverged run's weights): refused by name, the
     * store unchanged; ATTN_ST_ALLOW_NONFINITE loads them; a checkpoint
     * with a NaN weight is refused too */
    {
        char bad_path[128];
        tmp_path(bad_path, sizeof bad_path, "nonfinite.safetensors");
        attn_params *nan_src = make_store(full, 2, 1);
        attn_params *into = make_store(full, 2, 0), *snap = make_store(full, 2, 0);
        if (nan_src && into && snap) {
            attn_f32(attn_params_at(nan_src, 1))[2] = NAN;
            attn_f32(attn_params_at(nan_src, 0))[5] = INFINITY;
            CHECK_OK(attn_safetensors_save_params(bad_path, nan_src, NULL, 0));
            for (int i = 0; i < 2; i++)
                memcpy(attn_params_at(snap, i)->data, attn_params_at(into, i)->data,
                       sizeof(float) * (size_t)attn_tensor_numel(attn_params_at(into, i)));
            st = attn_safetensors_load_params(bad_path, into, 0);
            CHECK(st == ATTN_ERR_NUMERIC && strstr(attn_last_error(), "'w'") &&
                      strstr(attn_last_error(), "+Inf at element 5"),
                  "an Inf weight gave %s: %s", attn_status_str(st), attn_last_error());
            CHECK(same_values(into, snap), "a refused load changed the store");
            CHECK_OK(attn_safetensors_load_params(bad_path, into, ATTN_ST_ALLOW_NONFINITE));
            CHECK(isnan(attn_f32(attn_params_at(into, 1))[2]) &&
                      isinf(attn_f32(attn_params_at(into, 0))[5]),
                  "ATTN_ST_ALLOW_NONFINITE did not load the values");
            attn_f32(attn_params_at(nan_src, 0))[5] = 0.5f;
            CHECK_OK(attn_checkpoint_save(bad_path, nan_src, NULL, 3, NULL, 0));
            st = attn_checkpoint_load(bad_path, into, NULL, NULL);
            CHECK(st == ATTN_ERR_NUMERIC && strstr(attn_last_error(), "'b'") &&
                      strstr(attn_last_error(), "NaN at element 2"),
                  "a checkpoint with a NaN weight gave %s: %s", attn_status_str(st),
                  attn_last_error());
        }
        attn_params_free(nan_src), attn_params_free(into), attn_params_free(snap);
    }

    /* unexpected: the file has a tensor the store lacks */
    const pspec less[] = {{"w", 2, {3, 4}}};
    dst = make_store(less, 1, 0);
    st = dst ? attn_safetensors_load_params(path, dst, 0) : ATTN_OK;
    CHECK(st == ATTN_ERR_FORMAT && strstr(attn_last_error(), "'b'"),
          "unexpected tensor gave %s: %s", attn_status_str(st), attn_last_error());
    if (dst) CHECK_OK(attn_safetensors_load_params(path, dst, ATTN_ST_ALLOW_UNEXPECTED));
    attn_params_free(dst);

    /* shapes: other sizes, other ranks (same numel) */
    const pspec wrong[][2] = {{{"w", 2, {4, 3}}, {"b", 1, {4}}},
                              {{"w", 1, {12}}, {"b", 1, {4}}},
                              {{"w", 2, {3, 4}}, {"b", 2, {1, 4}}}};
    for (int k = 0; k < 3; k++) {
        dst = make_store(wrong[k], 2, 1);
        st = dst ? attn_safetensors_load_params(path, dst, 0) : ATTN_OK;
        CHECK(st == ATTN_ERR_SHAPE && strstr(attn_last_error(), "shape"),
              "wrong shape %d gave %s: %s", k, attn_status_str(st), attn_last_error());
        attn_params_free(dst);
    }
    dst = NULL;

    /* dtype: an I32 tensor cannot fill a float parameter */
    {
        char p2[128];
        tmp_path(p2, sizeof p2, "i32.safetensors");
        const char *h = "{\"w\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        unsigned char fb[8 + 64 + 8] = {0};
        size_t hn = strlen(h);
        fb[0] = (unsigned char)hn;
        memcpy(fb + 8, h, hn);
        CHECK(spit(p2, fb, 8 + hn + 8) == 0, "cannot write %s", p2);
        const pspec one[] = {{"w", 1, {2}}};
        dst = make_store(one, 1, 0);
        st = dst ? attn_safetensors_load_params(p2, dst, 0) : ATTN_OK;
        CHECK(st == ATTN_ERR_DTYPE, "I32 into a float parameter gave %s", attn_status_str(st));
        attn_params_free(dst);
        dst = NULL;
    }
    CHECK(attn_safetensors_load_params(NULL, src, 0) == ATTN_ERR_INVALID_ARG, "NULL path");
    goto out;
out2:
    attn_params_free(snapshot);
out:
    attn_params_free(dst);
    attn_params_free(src);
    TEST_END();
}

/* ---- checkpoints ------------------------------------------------------------------------ */

static const pspec CK[] = {{"w", 2, {3, 5}}, {"b", 1, {7}}};

static void set_grads(attn_params *ps, int step) {
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        for (int64_t j = 0; j < attn_tensor_numel(p); j++)
            p->grad[j] = sinf((float)(step * 31 + i * 7 + (int)j)) * (1.0f + (float)step);
    }
}

/* Trains `steps` steps, checkpoints, takes one more step (the reference),
 * then restores into a fresh store and optimizer and takes the same step:
 * the two must agree bit for bit. */
static void checkpoint_case(attn_optim_config cfg, const char *file) {
    char path[128];
    tmp_path(path, sizeof path, file);
    attn_params *a = make_store(CK, 2, 1), *b = make_store(CK, 2, 0);
    attn_optim *oa = NULL, *ob = NULL;
    if (!a || !b) goto out;
    CHECK_OK(attn_optim_new(&oa, a, &cfg));
    CHECK_OK(attn_optim_new(&ob, b, &cfg));
    if (!oa || !ob) goto out;
    for (int s = 0; s < 3; s++) {
        set_grads(a, s);
        CHECK_OK(attn_optim_step(oa, cfg.lr));
    }
    attn_kv meta[1] = {{"run", "test"}};
    CHECK_OK(attn_checkpoint_save(path, a, oa, 1234, meta, 1));
    set_grads(a, 3);
    CHECK_OK(attn_optim_step(oa, cfg.lr));

    int64_t step = -1;
    CHECK_OK(attn_checkpoint_load(path, b, ob, &step));
    CHECK(step == 1234, "step %lld, expected 1234", (long long)step);
    CHECK(attn_optim_steps(ob) == 3, "optimizer steps %lld, expected 3",
          (long long)attn_optim_steps(ob));
    set_grads(b, 3);
    CHECK_OK(attn_optim_step(ob, cfg.lr));
    CHECK(same_values(a, b), "the step after restoring differs from the uninterrupted one");
    for (int i = 0; i < 2; i++) {
        float *sa[2], *sb[2];
        int na = attn_optim_state(oa, i, &sa[0], &sa[1]);
        int nb = attn_optim_state(ob, i, &sb[0], &sb[1]);
        size_t bytes = sizeof(float) * (size_t)attn_tensor_numel(attn_params_at(a, i));
        CHECK(na == nb, "state buffers %d vs %d", na, nb);
        for (int k = 0; k < na; k++)
            CHECK(memcmp(sa[k], sb[k], bytes) == 0, "state %d of parameter %d differs", k, i);
    }
out:
    attn_optim_free(oa);
    attn_optim_free(ob);
    attn_params_free(a);
    attn_params_free(b);
}

static void test_checkpoint(void) {
    TEST_BEGIN("safetensors.checkpoint_adamw_identical_next_step");
    checkpoint_case((attn_optim_config){.kind = ATTN_OPTIM_ADAMW, .lr = 1e-2f, .weight_decay = 0.1f},
                    "adamw.ckpt");
    char path[128];
    tmp_path(path, sizeof path, "adamw.ckpt");
    attn_safetensors *f = NULL;
    CHECK_OK(attn_safetensors_open(&f, path));
    if (f) {
        const char *want[][2] = {{"format", "attn-checkpoint"}, {"version", "1"},
                                 {"step", "1234"},              {"optimizer", "adamw"},
                                 {"optimizer_steps", "3"},      {"lr", "0.01"},
                                 {"betas", "0.9,0.999"},        {"eps", "1e-08"},
                                 {"weight_decay", "0.1"},       {"run", "test"}};
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            const char *v = attn_safetensors_metadata(f, want[i][0]);
            CHECK(v && strcmp(v, want[i][1]) == 0, "metadata %s = '%s', expected '%s'",
                  want[i][0], v ? v : "(absent)", want[i][1]);
        }
        const char *names[] = {"w", "b", "optimizer.state.w.exp_avg",
                               "optimizer.state.w.exp_avg_sq", "optimizer.state.b.exp_avg",
                               "optimizer.state.b.exp_avg_sq"};
        CHECK(attn_safetensors_count(f) == 6, "%d tensors", attn_safetensors_count(f));
        for (int i = 0; i < 6; i++)
            CHECK(attn_safetensors_find(f, names[i]) != NULL, "'%s' missing", names[i]);
    }
    attn_safetensors_close(f);
    TEST_END();

    TEST_BEGIN("safetensors.checkpoint_sgd_and_adam");
    checkpoint_case((attn_optim_config){.kind = ATTN_OPTIM_SGD, .lr = 0.1f, .momentum = 0.9f,
                                        .nesterov = 1, .weight_decay = 1e-3f},
                    "sgd.ckpt");
    checkpoint_case((attn_optim_config){.kind = ATTN_OPTIM_ADAM, .lr = 1e-3f, .beta1 = 0.8f,
                                        .beta2 = 0.95f},
                    "adam.ckpt");
    TEST_END();

    TEST_BEGIN("safetensors.checkpoint_errors");
    char params_only[128];
    tmp_path(params_only, sizeof params_only, "params_only.safetensors");
    attn_params *ps = make_store(CK, 2, 1);
    attn_optim *adam = NULL, *sgd = NULL, *plain = NULL;
    if (!ps) goto out;
    attn_optim_config ca = {.kind = ATTN_OPTIM_ADAM, .lr = 1e-3f};
    attn_optim_config cs = {.kind = ATTN_OPTIM_SGD, .lr = 0.1f, .momentum = 0.9f};
    attn_optim_config cp = {.kind = ATTN_OPTIM_SGD, .lr = 0.1f};
    CHECK_OK(attn_optim_new(&adam, ps, &ca));
    CHECK_OK(attn_optim_new(&sgd, ps, &cs));
    CHECK_OK(attn_optim_new(&plain, ps, &cp));
    if (!adam || !sgd || !plain) goto out;
    attn_status st = attn_checkpoint_load(path, ps, adam, NULL); /* holds AdamW state */
    CHECK(st == ATTN_ERR_FORMAT && strstr(attn_last_error(), "adamw"),
          "AdamW checkpoint into Adam gave %s: %s", attn_status_str(st), attn_last_error());
    st = attn_checkpoint_load(path, ps, plain, NULL); /* SGD without momentum: kind differs */
    CHECK(st == ATTN_ERR_FORMAT, "AdamW checkpoint into SGD gave %s", attn_status_str(st));
    int64_t step = 0;
    CHECK_OK(attn_checkpoint_load(path, ps, NULL, &step)); /* params only */
    CHECK(step == 1234, "step %lld", (long long)step);

    /* optimizer state a resume must not take (an audit found both loaded
     * with status OK, and the first step made every weight NaN): a count of
     * steps at INT64_MAX, and a negative second moment */
    {
        char bad_path[128];
        tmp_path(bad_path, sizeof bad_path, "bad_state.ckpt");
        attn_optim_set_steps(adam, INT64_MAX);
        CHECK_OK(attn_checkpoint_save(bad_path, ps, adam, 7, NULL, 0));
        st = attn_checkpoint_load(bad_path, ps, adam, NULL);
        CHECK(st == ATTN_ERR_FORMAT && strstr(attn_last_error(), "optimizer_steps"),
              "optimizer_steps INT64_MAX gave %s: %s", attn_status_str(st), attn_last_error());
        attn_optim_set_steps(adam, 3);
        float *m1 = NULL, *m2 = NULL;
        attn_optim_state(adam, 1, &m1, &m2);
        if (m2) {
            m2[2] = -1.0f;
            CHECK_OK(attn_checkpoint_save(bad_path, ps, adam, 7, NULL, 0));
            st = attn_checkpoint_load(bad_path, ps, adam, NULL);
            CHECK(st == ATTN_ERR_FORMAT && strstr(attn_last_error(), "exp_avg_sq") &&
                      strstr(attn_last_error(), "negative"),
                  "a negative exp_avg_sq gave %s: %s", attn_status_str(st), attn_last_error());
            m2[2] = 0.0f;
        }
    }
    /* a momentum-free SGD checkpoint has no state tensors; SGD with momentum
     * then finds its buffers missing */
    char sgd_path[128];
    tmp_path(sgd_path, sizeof sgd_path, "plain_sgd.ckpt");
    CHECK_OK(attn_checkpoint_save(sgd_path, ps, plain, 5, NULL, 0));
    CHECK_OK(attn_checkpoint_load(sgd_path, ps, plain, NULL));
    st = attn_checkpoint_load(sgd_path, ps, sgd, NULL);
    CHECK(st == ATTN_ERR_FORMAT && strstr(attn_last_error(), "momentum_buffer"),
          "missing momentum buffers gave %s: %s", attn_status_str(st), attn_last_error());
    /* and the other way round: unexpected state tensors */
    CHECK_OK(attn_checkpoint_save(sgd_path, ps, sgd, 5, NULL, 0));
    st = attn_checkpoint_load(sgd_path, ps, plain, NULL);
    CHECK(st == ATTN_ERR_FORMAT && strstr(attn_last_error(), "unexpected"),
          "unexpected state gave %s: %s", attn_status_str(st), attn_last_error());
    /* a plain parameter file is not a checkpoint */
    CHECK_OK(attn_safetensors_save_params(params_only, ps, NULL, 0));
    st = attn_checkpoint_load(params_only, ps, NULL, NULL);
    CHECK(st == ATTN_ERR_FORMAT && strstr(attn_last_error(), "not an attn checkpoint"),
          "parameter file as checkpoint gave %s: %s", attn_status_str(st), attn_last_error());
    /* reserved metadata keys, negative steps, reserved parameter names */
    attn_kv bad_meta[1] = {{"step", "9"}};
    CHECK(attn_checkpoint_save(sgd_path, ps, NULL, 1, bad_meta, 1) == ATTN_ERR_INVALID_ARG,
          "reserved key accepted");
    CHECK(attn_checkpoint_save(sgd_path, ps, NULL, -1, NULL, 0) == ATTN_ERR_INVALID_ARG,
          "negative step accepted");
    const pspec clash[] = {{"optimizer.state.x", 1, {1}}};
    attn_params *cl = make_store(clash, 1, 0);
    if (cl)
        CHECK(attn_checkpoint_save(sgd_path, cl, NULL, 1, NULL, 0) == ATTN_ERR_INVALID_ARG,
              "reserved parameter name accepted");
    attn_params_free(cl);
    const pspec meta_name[] = {{"__metadata__", 1, {1}}};
    cl = make_store(meta_name, 1, 0);
    if (cl)
        CHECK(attn_safetensors_save_params(sgd_path, cl, NULL, 0) == ATTN_ERR_INVALID_ARG,
              "a parameter named __metadata__ accepted");
    attn_params_free(cl);
    attn_kv dup[2] = {{"a", "1"}, {"a", "2"}};
    CHECK(attn_safetensors_save_params(sgd_path, ps, dup, 2) == ATTN_ERR_INVALID_ARG,
          "duplicate metadata keys accepted");
    attn_kv bad_utf8[1] = {{"a", "\xff"}};
    CHECK(attn_safetensors_save_params(sgd_path, ps, bad_utf8, 1) == ATTN_ERR_INVALID_ARG,
          "invalid UTF-8 metadata accepted");
out:
    attn_optim_free(adam);
    attn_optim_free(sgd);
    attn_optim_free(plain);
    attn_params_free(ps);
    TEST_END();
}

/* ---- atomicity -------------------------------------------------------------------------- */

static void test_atomic(void) {
    TEST_BEGIN("safetensors.atomic_failed_save_keeps_previous_file");
    char path[128], blocker[160], dir_path[128], ro_dir[128], ro_file[160];
    tmp_path(path, sizeof path, "model.safetensors");
    attn_params *ps = make_store(SPEC, 2, 1), *other = make_store(SPEC, 2, 1);
    unsigned char *before = NULL, *after = NULL;
    size_t nb = 0, na = 0;
    if (!ps || !other) goto out;
    CHECK_OK(attn_safetensors_save_params(path, ps, NULL, 0));
    before = slurp(path, &nb);
    CHECK(before != NULL, "cannot read %s", path);
    if (!before) goto out;

    /* 1. the temporary file cannot be created (a directory is in its way) */
    snprintf(blocker, sizeof blocker, "%s.tmp.%ld", path, (long)getpid());
    CHECK(mkdir(blocker, 0700) == 0, "mkdir %s: %s", blocker, strerror(errno));
    attn_status st = attn_safetensors_save_params(path, other, NULL, 0);
    CHECK(st == ATTN_ERR_IO && strstr(attn_last_error(), ".tmp."),
          "save with a blocked temporary gave %s: %s", attn_status_str(st), attn_last_error());
    rmdir(blocker);
    after = slurp(path, &na);
    CHECK(after && na == nb && memcmp(before, after, nb) == 0, "the previous file changed");
    free(after);
    after = NULL;

    /* 2. the rename fails after the temporary was written (the target is a
     * non-empty directory): the temporary is removed */
    tmp_path(dir_path, sizeof dir_path, "a_directory");
    CHECK(mkdir(dir_path, 0700) == 0, "mkdir: %s", strerror(errno));
    char inner[192];
    snprintf(inner, sizeof inner, "%s/keep", dir_path);
    CHECK(spit(inner, "x", 1) == 0, "cannot write %s", inner);
    st = attn_safetensors_save_params(dir_path, other, NULL, 0);
    CHECK(st == ATTN_ERR_IO && strstr(attn_last_error(), "rename"),
          "save over a directory gave %s: %s", attn_status_str(st), attn_last_error());
    CHECK(count_temporaries() == 0, "a temporary file was left behind");
    unlink(inner);
    rmdir(dir_path);

    /* 3. a directory that does not exist */
    char missing[160];
    tmp_path(missing, sizeof missing, "no/such/dir/model.safetensors");
    st = attn_safetensors_save_params(missing, other, NULL, 0);
    CHECK(st == ATTN_ERR_IO && strstr(attn_last_error(), "no/such/dir"),
          "save into a missing directory gave %s: %s", attn_status_str(st), attn_last_error());
    /* checkpoints take the same path */
    st = attn_checkpoint_save(missing, other, NULL, 1, NULL, 0);
    CHECK(st == ATTN_ERR_IO, "checkpoint into a missing directory gave %s", attn_status_str(st));

    /* 4. a read-only directory (meaningless for root, who may write anyway) */
    tmp_path(ro_dir, sizeof ro_dir, "ro");
    snprintf(ro_file, sizeof ro_file, "%s/model.safetensors", ro_dir);
    if (mkdir(ro_dir, 0700) == 0) {
        CHECK_OK(attn_safetensors_save_params(ro_file, ps, NULL, 0));
        chmod(ro_dir, 0500);
        if (geteuid() != 0) {
            st = attn_safetensors_save_params(ro_file, other, NULL, 0);
            CHECK(st == ATTN_ERR_IO, "save into a read-only directory gave %s",
                  attn_status_str(st));
            after = slurp(ro_file, &na);
            CHECK(after && na == nb && memcmp(before, after, nb) == 0,
                  "the previous file in the read-only directory changed");
            free(after);
            after = NULL;
        }
        chmod(ro_dir, 0700);
        unlink(ro_file);
        rmdir(ro_dir);
    }
    CHECK(count_temporaries() == 0, "a temporary file was left behind");

    /* and a successful save replaces the file */
    CHECK_OK(attn_safetensors_save_params(path, other, NULL, 0));
    after = slurp(path, &na);
    CHECK(after && (na != nb || memcmp(before, after, nb) != 0), "the file was not replaced");
out:
    free(before);
    free(after);
    attn_params_free(ps);
    attn_params_free(other);
    TEST_END();
}

/* Removes the files this suite made (all are directly in tmp_dir). */
static void remove_tmp_dir(void) {
    const char *names[] = {"round.safetensors", "fuzz.safetensors", "strict.safetensors",
                           "i32.safetensors",   "adamw.ckpt",       "sgd.ckpt",
                           "adam.ckpt",         "plain_sgd.ckpt",   "params_only.safetensors",
                           "model.safetensors", "bad_state.ckpt", "nonfinite.safetensors"};
    char p[160];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        tmp_path(p, sizeof p, names[i]);
        unlink(p);
    }
    if (rmdir(tmp_dir) != 0) fprintf(stderr, "note: could not remove %s\n", tmp_dir);
}

void suite_safetensors(void) {
    if (make_tmp_dir()) return;
    test_round_trip();
    test_torch_file();
    test_malformed();
    test_fuzz();
    test_strict_load();
    test_checkpoint();
    test_atomic();
    remove_tmp_dir();
}
