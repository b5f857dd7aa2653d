/* test_wordpiece.c: the uncased WordPiece tokenizer (include/attn/wordpiece.h).
 *   (a) parity: the token ids of 300 texts (accents, punctuation, numbers,
 *       CJK, Hangul, emoji, control characters, every kind of whitespace,
 *       empty and over-long texts, words over 100 characters, and English
 *       prose) equal those of sentence-transformers' tokenizer
 *       (BertTokenizerFast, tokenizers 0.23.3), all of them
 *       (tests/fixtures/minilm.atfx, tools/make_minilm_fixtures.py), with
 *       all-MiniLM-L6-v2's vocab.txt (tests/fixtures/minilm_vocab.txt, a
 *       copy of the model's file: 30,522 lines, 231,508 bytes);
 *   (b) the rules one by one on hand-checked texts: lower-casing, accents,
 *       punctuation, CJK, controls, ## continuations, [UNK], truncation;
 *   (c) errors: malformed vocabularies, bad arguments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "test.h"

#define SCRIPT "tools/make_minilm_fixtures.py"

static attn_wordpiece *load_vocab(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/minilm_vocab.txt", test_fixture_dir());
    attn_wordpiece *wp = NULL;
    CHECK_OK(attn_wordpiece_load(path, &wp));
    return wp;
}

static void test_parity(const attn_wordpiece *wp) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/minilm.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    TEST_BEGIN("wordpiece/parity with sentence-transformers (300 texts)");
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        CHECK(0, "%s (regenerate with %s)", err, SCRIPT);
        TEST_END();
        return;
    }
    const atfx_tensor *texts = atfx_find(fx, "texts"), *toff = atfx_find(fx, "text_off");
    const atfx_tensor *ids = atfx_find(fx, "ids"), *ioff = atfx_find(fx, "ids_off");
    const atfx_tensor *ms = atfx_find(fx, "max_seq");
    CHECK(texts && toff && ids && ioff && ms && toff->numel == ioff->numel && toff->numel >= 301,
          "fixture tensors missing or of the wrong size");
    if (texts && toff && ids && ioff && ms && toff->numel == ioff->numel) {
        const int64_t n = toff->numel - 1;
        const int32_t max_seq = atfx_i32(ms)[0];
        CHECK(max_seq == 256, "max_seq %d", max_seq);
        int32_t *got = malloc((size_t)max_seq * sizeof *got);
        char *buf = malloc((size_t)texts->numel + 1);
        int64_t bad = 0, truncated = 0, tokens = 0;
        for (int64_t i = 0; got && buf && i < n; i++) {
            const int32_t a = atfx_i32(toff)[i], b = atfx_i32(toff)[i + 1];
            for (int32_t k = a; k < b; k++) buf[k - a] = (char)atfx_i32(texts)[k];
            int32_t n_ids = 0;
            int64_t pieces = 0;
            attn_status st = attn_wordpiece_encode(wp, buf, (size_t)(b - a), max_seq, got, &n_ids, &pieces);
            const int32_t *want = atfx_i32(ids) + atfx_i32(ioff)[i];
            const int32_t nw = atfx_i32(ioff)[i + 1] - atfx_i32(ioff)[i];
            truncated += pieces > max_seq - 2;
            tokens += n_ids;
            int same = st == ATTN_OK && n_ids == nw;
            int at = -1;
            for (int32_t k = 0; same && k < nw; k++)
                if (got[k] != want[k]) {
                    same = 0;
                    at = k;
                }
            if (!same && bad++ < 5)
                CHECK(0, "text %lld (%.60s...): %d ids, expected %d; first difference at %d: %s vs %s",
                      (long long)i, buf, n_ids, nw, at,
                      at >= 0 ? attn_wordpiece_token(wp, got[at]) : "-",
                      at >= 0 ? attn_wordpiece_token(wp, want[at]) : "-");
        }
        CHECK(bad == 0, "%lld of %lld texts differ", (long long)bad, (long long)n);
        CHECK(truncated >= 2, "only %lld texts were truncated: the fixture should test truncation",
              (long long)truncated);
        CHECK(tokens == ids->numel, "%lld tokens, the fixture has %lld", (long long)tokens,
              (long long)ids->numel);
        free(got);
        free(buf);
    }
    atfx_free(fx);
    TEST_END();
}

/* Encodes text and compares the pieces between [CLS] and [SEP] with the
 * space-separated tokens of want. */
static void expect_pieces(const char *file, int line, const attn_wordpiece *wp, const char *text,
                          const char *want) {
    int32_t ids[64], n = 0;
    int64_t pieces = 0;
    attn_status st = attn_wordpiece_encode(wp, text, strlen(text), 64, ids, &n, &pieces);
    char got[1024] = "";
    size_t used = 0;
    for (int32_t k = 1; st == ATTN_OK && k + 1 < n; k++)
        used += (size_t)snprintf(got + used, sizeof got - used, "%s%s", k > 1 ? " " : "",
                                 attn_wordpiece_token(wp, ids[k]));
    const int ok = st == ATTN_OK && n >= 2 && ids[0] == attn_wordpiece_cls_id(wp) &&
                   ids[n - 1] == attn_wordpiece_sep_id(wp) && strcmp(got, want) == 0 &&
                   pieces == n - 2;
    CHECK_AT(file, line, ok, "'%s' -> '%s', expected '%s'", text, got, want);
}
#define EXPECT(text, want) expect_pieces(__FILE__, __LINE__, wp, text, want)

static void test_rules(const attn_wordpiece *wp) {
    TEST_BEGIN("wordpiece/rules");
    CHECK(attn_wordpiece_size(wp) == 30522, "size %d", attn_wordpiece_size(wp));
    CHECK(attn_wordpiece_pad_id(wp) == 0 && attn_wordpiece_unk_id(wp) == 100 &&
              attn_wordpiece_cls_id(wp) == 101 && attn_wordpiece_sep_id(wp) == 102,
          "specials %d %d %d %d", attn_wordpiece_pad_id(wp), attn_wordpiece_unk_id(wp),
          attn_wordpiece_cls_id(wp), attn_wordpiece_sep_id(wp));
    CHECK(attn_wordpiece_id(wp, "hello") == 7592 && attn_wordpiece_id(wp, "no such token") == -1,
          "ids of tokens");
    EXPECT("", "");
    EXPECT("Hello, WORLD!", "hello , world !");
    EXPECT("Café naïve Ångström", "cafe naive ang ##strom");                  /* NFD, marks dropped */
    EXPECT("unaffordable", "una ##ff ##ord ##able");                         /* ## continuations */
    EXPECT("a\tb\nc\r\xc2\xa0" "d", "a b c d");                              /* whitespace, NBSP */
    EXPECT("x\x01y\x7f" "z\xe2\x80\x8b" "w", "x ##y ##z ##w");                           /* controls, ZWSP (Cf) dropped */
    EXPECT("\xe4\xb8\xad\xe6\x96\x87" "ab", "中 文 ab");                          /* CJK one by one */
    EXPECT("\xff\xfe" "ab\xc3", "ab");                                       /* invalid UTF-8: U+FFFD, dropped */
    EXPECT("$5+3=8", "$ 5 + 3 = 8");                                         /* ASCII punctuation */
    EXPECT("a[SEP]b [cls] [MASK]", "a [SEP] b [ cl ##s ] [MASK]");           /* special tokens, exact case */
    EXPECT("\xe2\x80\x9cquoted\xe2\x80\x9d", "\xe2\x80\x9c quoted \xe2\x80\x9d"); /* Unicode P* */
    char longw[128];
    memset(longw, 'a', 101);
    longw[101] = '\0';
    EXPECT(longw, "[UNK]");                                                  /* over 100 characters */
    longw[100] = '\0';
    int32_t ids[8], n = 0;
    int64_t pieces = 0;
    CHECK_OK(attn_wordpiece_encode(wp, longw, 100, 8, ids, &n, &pieces));
    CHECK(n == 8 && pieces > 6 && ids[1] != attn_wordpiece_unk_id(wp) && ids[7] == 102,
          "100 a's: %d ids, %lld pieces", n, (long long)pieces);       /* truncated to 6 pieces */
    CHECK_OK(attn_wordpiece_encode(wp, "a b c", 5, 2, ids, &n, &pieces));
    CHECK(n == 2 && pieces == 3 && ids[0] == 101 && ids[1] == 102, "max_len 2: %d ids", n);
    char words[64];
    int64_t nw = 0;
    size_t nb = 0;
    CHECK_OK(attn_wordpiece_basic("Don't!", 6, words, sizeof words, &nw, &nb));
    CHECK(nw == 4 && nb == 10 && memcmp(words, "don\0'\0t\0!\0", 10) == 0, "basic: %lld words", (long long)nw);
    CHECK(attn_wordpiece_basic("Don't!", 6, words, 3, &nw, &nb) == ATTN_ERR_SHAPE && nb == 10,
          "a small buffer gives the size needed");
    TEST_END();
}

static void test_errors(void) {
    TEST_BEGIN("wordpiece/errors");
    attn_wordpiece *wp = NULL;
    CHECK(attn_wordpiece_from_text("[PAD]\n[UNK]\n[CLS]\n", 18, &wp) == ATTN_ERR_FORMAT && !wp,
          "[SEP] missing");
    CHECK(attn_wordpiece_from_text("[PAD]\n\n[UNK]\n[CLS]\n[SEP]\n", 25, &wp) == ATTN_ERR_FORMAT,
          "an empty line");
    CHECK(attn_wordpiece_from_text("[PAD]\n[UN\0K]\n[CLS]\n[SEP]\n", 25, &wp) == ATTN_ERR_FORMAT,
          "a NUL byte");
    CHECK(attn_wordpiece_from_text("", 0, &wp) == ATTN_ERR_FORMAT, "empty");
    CHECK(attn_wordpiece_load("/nonexistent/vocab.txt", &wp) == ATTN_ERR_IO && !wp, "missing file");
    CHECK(attn_wordpiece_load(NULL, &wp) == ATTN_ERR_INVALID_ARG, "NULL path");
    const char *crlf = "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nab\r\n##c\r\nab";
    CHECK_OK(attn_wordpiece_from_text(crlf, strlen(crlf), &wp));
    if (wp) {
        CHECK(attn_wordpiece_size(wp) == 7 && attn_wordpiece_id(wp, "ab") == 4 &&
                  attn_wordpiece_id(wp, "##c") == 5,
              "CRLF lines, a repeated token keeps its first id");
        int32_t ids[8], n = 0;
        CHECK_OK(attn_wordpiece_encode(wp, "abc ABD", 7, 8, ids, &n, NULL));
        CHECK(n == 5 && ids[1] == 4 && ids[2] == 5 && ids[3] == 1, "abc -> ab ##c, abd -> [UNK]");
        CHECK(attn_wordpiece_encode(wp, "a", 1, 1, ids, &n, NULL) == ATTN_ERR_INVALID_ARG, "max_len 1");
        CHECK(attn_wordpiece_encode(wp, NULL, 1, 8, ids, &n, NULL) == ATTN_ERR_INVALID_ARG, "NULL text");
        CHECK(attn_wordpiece_token(wp, 7) == NULL && attn_wordpiece_token(wp, -1) == NULL, "token range");
    }
    attn_wordpiece_free(wp);
    attn_wordpiece_free(NULL);
    TEST_END();
}

void suite_wordpiece(void) {
    attn_wordpiece *wp = NULL;
    TEST_BEGIN("wordpiece/vocabulary loads");
    wp = load_vocab();
    TEST_END();
    if (wp) {
        test_parity(wp);
        test_rules(wp);
    }
    test_errors();
    attn_wordpiece_free(wp);
}
