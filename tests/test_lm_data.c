/* test_lm_data.c: language-model data (include/attn/lm_data.h): loading a
 * text file, character and BPE token streams, the seeded window sampler (its
 * rule pinned by values computed independently in Python, so that
 * bench/gpt_torch.py draws the same windows), and the evaluation walk. The
 * text is a tiny fortune file written here. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

static const char tiny_text[] =
    "A bird in the hand is worth two in the bush.\n"
    "%\n"
    "The early bird catches the worm, but the second mouse gets the cheese.\n"
    "                -- Steven Wright\n"
    "%\n"
    "Caf\xc3\xa9 au lait: the best thing since sliced bread.\n"
    "%\n"
    "Never put off till tomorrow what you can do the day after tomorrow.\n"
    "                -- Mark Twain\n"
    "%\n";

static int write_file(const char *path, const void *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    const size_t w = fwrite(bytes, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

static void test_text_load(void) {
    TEST_BEGIN("lm_data/text_load");
    char dir[512];
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/attn_test_lm_XXXXXX", base && base[0] ? base : "/tmp");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp failed");
    char path[600];
    snprintf(path, sizeof path, "%s/tiny.txt", dir);
    CHECK(write_file(path, tiny_text, sizeof tiny_text - 1) == 0, "cannot write %s", path);
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(attn_lm_text_load(path, &text, &len));
    CHECK(text && len == sizeof tiny_text - 1 && memcmp(text, tiny_text, len) == 0 &&
              text[len] == '\0',
          "loaded %zu bytes, expected %zu", len, sizeof tiny_text - 1);
    free(text);

    /* Errors: missing file, invalid UTF-8, a NUL byte, an empty file. */
    snprintf(path, sizeof path, "%s/missing.txt", dir);
    CHECK(attn_lm_text_load(path, &text, &len) == ATTN_ERR_IO && text == NULL, "missing file");
    snprintf(path, sizeof path, "%s/bad.txt", dir);
    CHECK(write_file(path, "ab\xc3(cd", 6) == 0, "write");
    CHECK(attn_lm_text_load(path, &text, &len) == ATTN_ERR_FORMAT && text == NULL,
          "invalid UTF-8 accepted");
    CHECK(strstr(attn_last_error(), "byte 2") != NULL, "message '%s' lacks the offset",
          attn_last_error());
    CHECK(write_file(path, "ab\0cd", 5) == 0, "write");
    CHECK(attn_lm_text_load(path, &text, &len) == ATTN_ERR_FORMAT, "a NUL byte accepted");
    CHECK(write_file(path, "", 0) == 0, "write");
    CHECK(attn_lm_text_load(path, &text, &len) == ATTN_ERR_FORMAT, "an empty file accepted");
    CHECK(attn_lm_text_load(dir, &text, &len) == ATTN_ERR_IO, "a directory accepted");
    CHECK(attn_lm_text_load(NULL, &text, &len) == ATTN_ERR_INVALID_ARG, "NULL path accepted");
    unlink(path);
    rmdir(dir);
    TEST_END();
}

/* Tokenises the tiny text with vocab and checks the stream decodes back to
 * the text and its character counts. */
static void check_stream(const attn_vocab *v, const char *what, int64_t *n_out) {
    const size_t len = sizeof tiny_text - 1;
    attn_lm_tokens tok;
    CHECK_OK(attn_lm_tokenize(v, tiny_text, len, &tok));
    *n_out = tok.n;
    const int64_t chars = 304; /* code points of tiny_text: bytes minus the one extra of "é" */
    CHECK(tok.chars == chars && (int64_t)len == chars + 1, "%s: %lld chars, expected %lld", what,
          (long long)tok.chars, (long long)chars);
    CHECK(attn_lm_token_chars(v, tok.ids, tok.n) == chars, "%s: token chars %lld, expected %lld",
          what, (long long)attn_lm_token_chars(v, tok.ids, tok.n), (long long)chars);
    char *back = malloc(len + 1);
    size_t blen = 0;
    if (back) {
        CHECK_OK(attn_vocab_decode(v, tok.ids, (size_t)tok.n, back, len + 1, &blen));
        CHECK(blen == len && memcmp(back, tiny_text, len) == 0, "%s: decode(encode(text)) differs",
              what);
    }
    for (int64_t i = 0; i < tok.n; i++)
        CHECK(tok.ids[i] >= ATTN_TOKEN_SPECIALS && tok.ids[i] < attn_vocab_size(v),
              "%s: id %d at %lld", what, tok.ids[i], (long long)i);
    free(back);
    attn_lm_tokens_free(&tok);
    attn_lm_tokens_free(&tok); /* twice is harmless */
}

static void test_vocab_streams(void) {
    TEST_BEGIN("lm_data/vocab_streams");
    const size_t len = sizeof tiny_text - 1;
    attn_vocab *vc = NULL, *vb = NULL;
    CHECK_OK(attn_lm_vocab_learn(tiny_text, len, ATTN_VOCAB_CHAR, 0, 1, &vc));
    CHECK_OK(attn_lm_vocab_learn(tiny_text, len, ATTN_VOCAB_BPE, 40, 1, &vb));
    int64_t nc = 0, nb = 0;
    if (vc) check_stream(vc, "char", &nc);
    if (vb) check_stream(vb, "bpe", &nb);
    CHECK(nc == 304, "char stream of %lld ids, expected one per character", (long long)nc);
    /* Learning stops at 40 merges or when no pair occurs twice (37 here). */
    const int nm = vb ? attn_bpe_merge_count(vb) : -1;
    CHECK(nm >= 30 && nm <= 40 && nb > 0 && nb <= nc - nm,
          "bpe: %d merges, %lld ids (char: %lld)", nm,
          (long long)nb, (long long)nc);
    /* The alphabet has every character of the text, ' ', '\n' and '%' included. */
    CHECK(vc && attn_vocab_find(vc, "%") >= 0 && attn_vocab_find(vc, "\n") >= 0 &&
              attn_vocab_find(vc, "\xc3\xa9") >= 0,
          "character vocabulary lacks '%%', newline or e-acute");
    attn_lm_tokens tok;
    CHECK(attn_lm_tokenize(NULL, tiny_text, len, &tok) == ATTN_ERR_INVALID_ARG && tok.ids == NULL,
          "NULL vocab accepted");
    attn_vocab_free(vc);
    attn_vocab_free(vb);
    TEST_END();
}

static void test_window_rule(void) {
    TEST_BEGIN("lm_data/window_rule");
    /* Values of the rule computed in Python (arbitrary-precision integers
     * masked to 64 bits), independent of this C code. */
    const int64_t want[8] = {232600, 42599, 690640, 258453, 399828, 362101, 687173, 433601};
    for (int k = 0; k < 8; k++) {
        const int64_t step = k < 4 ? 0 : 7, row = k % 4;
        const int64_t got = attn_lm_window_start(1234, step, row, 4, 1000003, 64);
        CHECK(got == want[k], "seed 1234 step %lld row %lld: %lld, expected %lld",
              (long long)step, (long long)row, (long long)got, (long long)want[k]);
    }
    CHECK(attn_lm_window_start(UINT64_MAX, 123456789, 3, 8, 2575267, 256) == 1554773,
          "wrapping arithmetic: %lld, expected 1554773",
          (long long)attn_lm_window_start(UINT64_MAX, 123456789, 3, 8, 2575267, 256));
    CHECK(attn_lm_window_start(1, 0, 0, 1, 10, 10) == -1 && attn_lm_window_start(1, 0, 4, 4, 100, 5) == -1 &&
              attn_lm_window_start(1, -1, 0, 4, 100, 5) == -1 && attn_lm_window_start(1, 0, 0, 4, 100, 0) == -1,
          "invalid arguments must give -1");
    /* Every start of a short stream is drawn, none outside [0, n - T). */
    int hits[12] = {0};
    int outside = 0;
    for (int64_t s = 0; s < 600; s++) {
        const int64_t st = attn_lm_window_start(99, s, 0, 1, 16, 4);
        if (st < 0 || st >= 12) outside++;
        else hits[st]++;
    }
    int lo = 1000, hi = 0;
    for (int i = 0; i < 12; i++) {
        lo = hits[i] < lo ? hits[i] : lo;
        hi = hits[i] > hi ? hits[i] : hi;
    }
    CHECK(outside == 0 && lo >= 25 && hi <= 80, "600 draws over 12 starts: %d outside, counts %d..%d",
          outside, lo, hi);
    TEST_END();
}

static void test_batches(void) {
    TEST_BEGIN("lm_data/batches");
    attn_lm_tokens tok = {0};
    tok.n = 101;
    tok.ids = malloc((size_t)tok.n * sizeof *tok.ids);
    if (!tok.ids) {
        CHECK(0, "out of memory");
        TEST_END();
        return;
    }
    for (int64_t i = 0; i < tok.n; i++) tok.ids[i] = (int32_t)(1000 + i);
    enum { B = 3, T = 8 };
    int32_t in[B * T], tg[B * T], in2[B * T], tg2[B * T];
    CHECK_OK(attn_lm_batch(&tok, 5, 11, B, T, in, tg));
    for (int r = 0; r < B; r++) {
        const int64_t s = attn_lm_window_start(5, 11, r, B, tok.n, T);
        for (int t = 0; t < T; t++)
            CHECK(in[r * T + t] == 1000 + s + t && tg[r * T + t] == 1000 + s + t + 1,
                  "row %d t %d: %d -> %d (start %lld)", r, t, in[r * T + t], tg[r * T + t],
                  (long long)s);
    }
    CHECK_OK(attn_lm_batch(&tok, 5, 11, B, T, in2, tg2));
    CHECK(memcmp(in, in2, sizeof in) == 0 && memcmp(tg, tg2, sizeof tg) == 0,
          "the same (seed, step) gave another batch");
    CHECK_OK(attn_lm_batch(&tok, 5, 12, B, T, in2, tg2));
    CHECK(memcmp(in, in2, sizeof in) != 0, "steps 11 and 12 gave the same batch");
    CHECK(attn_lm_batch(&tok, 5, 0, 0, T, in, tg) == ATTN_ERR_INVALID_ARG, "B = 0 accepted");
    CHECK(attn_lm_batch(&tok, 5, 0, B, 101, in, tg) == ATTN_ERR_INVALID_ARG,
          "T = n accepted (no window of T + 1)");
    CHECK(attn_lm_batch(&tok, 5, -1, B, T, in, tg) == ATTN_ERR_INVALID_ARG, "step -1 accepted");

    /* The evaluation walk: windows of T predict every id but the first once. */
    CHECK(attn_lm_eval_windows(&tok, T) == 12, "%lld windows of 8 in 101 ids, expected 12",
          (long long)attn_lm_eval_windows(&tok, T));
    CHECK(attn_lm_eval_windows(&tok, 100) == 1 && attn_lm_eval_windows(&tok, 101) == 0,
          "window counts at the edge");
    int seen[101] = {0};
    int64_t rows = 0, total = 0;
    for (int64_t first = 0; first < 12; first += B) {
        CHECK_OK(attn_lm_eval_batch(&tok, T, first, B, in, tg, &rows));
        for (int64_t r = 0; r < rows; r++)
            for (int t = 0; t < T; t++) {
                const int64_t pos = (first + r) * T + t;
                CHECK(in[r * T + t] == 1000 + pos && tg[r * T + t] == 1000 + pos + 1,
                      "eval window %lld t %d", (long long)(first + r), t);
                if (tg[r * T + t] - 1000 >= 0 && tg[r * T + t] - 1000 < 101) seen[tg[r * T + t] - 1000]++;
            }
        total += rows;
    }
    int once = 1;
    for (int i = 1; i < 97; i++) once &= seen[i] == 1;
    CHECK(total == 12 && once && seen[0] == 0, "eval walk: %lld windows, coverage %s",
          (long long)total, once ? "ok" : "wrong");
    CHECK_OK(attn_lm_eval_batch(&tok, T, 11, B, in, tg, &rows));
    CHECK(rows == 1, "last batch has %lld rows, expected 1", (long long)rows);
    CHECK_OK(attn_lm_eval_batch(&tok, T, 12, B, in, tg, &rows));
    CHECK(rows == 0, "past the end: %lld rows", (long long)rows);
    CHECK(attn_lm_eval_batch(&tok, T, -1, B, in, tg, &rows) == ATTN_ERR_INVALID_ARG,
          "first -1 accepted");
    attn_lm_tokens_free(&tok);
    TEST_END();
}

void suite_lm_data(void) {
    test_text_load();
    test_vocab_streams();
    test_window_rule();
    test_batches();
}
