/* test_text.c: the text data sets and tokenisers (include/attn/text.h).
 *
 * Everything is generated here: the date examples, small .mo catalogs
 * written byte by byte (both byte orders, plurals, contexts, every malformed
 * case the reader must reject), a small tree of catalogs for the builder,
 * and the corpora of the tokenisers. When the real gettext data set has
 * been built (scripts/get_gettext_data.sh; $ATTN_GETTEXT_DIR overrides
 * data/gettext), its files are checked against the split and cleaning rules
 * too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

static char tmp_dir[512];

static int tmp_open(void) {
    const char *base = getenv("TMPDIR");
    if (!base || !base[0]) base = "/tmp";
    snprintf(tmp_dir, sizeof tmp_dir, "%s/attn_test_text_XXXXXX", base);
    return mkdtemp(tmp_dir) ? 0 : -1;
}

/* Writes n bytes to `path`, creating its parent directories. 0 on success. */
static int write_file(const char *path, const void *bytes, size_t n) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(dir, 0777);
        *p = '/';
    }
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(bytes, 1, n, f) : 0;
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

/* Reads a whole file (NUL-terminated, malloc'd); NULL on failure. */
static char *read_file(const char *path, size_t *n_out) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            char *b2 = realloc(buf, cap * 2);
            if (!b2) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b2;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (n_out) *n_out = n;
    return buf;
}

/* ---- splits ------------------------------------------------------------------ */

static void test_split_rule(void) {
    TEST_BEGIN("text/split_rule");
    /* Published FNV-1a 64 test vectors. */
    CHECK(attn_fnv1a64("", 0) == 0xcbf29ce484222325ULL, "fnv1a64('')");
    CHECK(attn_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cULL, "fnv1a64('a') = %016llx",
          (unsigned long long)attn_fnv1a64("a", 1));
    CHECK(attn_fnv1a64("foobar", 6) == 0x85944171f73967e8ULL, "fnv1a64('foobar') = %016llx",
          (unsigned long long)attn_fnv1a64("foobar", 6));
    /* The rule itself, recomputed: bucket of the high half. */
    const char *keys[] = {"Open the file", "Close the window", "x", "", "Datei öffnen"};
    for (int i = 0; i < 5; i++) {
        unsigned b = (unsigned)((attn_fnv1a64(keys[i], strlen(keys[i])) >> 32) % 100);
        attn_data_split want = b < 90   ? ATTN_SPLIT_TRAIN
                               : b < 95 ? ATTN_SPLIT_VALID
                                        : ATTN_SPLIT_TEST;
        CHECK(attn_data_split_of(keys[i], strlen(keys[i])) == want, "split of '%s'", keys[i]);
    }
    /* Proportions over 200,000 keys: 90/5/5 within 0.5 points. */
    long counts[3] = {0, 0, 0};
    char key[32];
    for (int i = 0; i < 200000; i++) {
        int n = snprintf(key, sizeof key, "sentence %d", i);
        counts[attn_data_split_of(key, (size_t)n)]++;
    }
    CHECK(counts[0] > 179000 && counts[0] < 181000 && counts[1] > 9000 && counts[1] < 11000 &&
              counts[2] > 9000 && counts[2] < 11000,
          "split proportions %ld / %ld / %ld of 200000", counts[0], counts[1], counts[2]);
    CHECK(!strcmp(attn_data_split_name(ATTN_SPLIT_TRAIN), "train") &&
              !strcmp(attn_data_split_name(ATTN_SPLIT_VALID), "valid") &&
              !strcmp(attn_data_split_name(ATTN_SPLIT_TEST), "test") &&
              !strcmp(attn_data_split_name(ATTN_SPLIT_COUNT), "?"),
          "split names");
    TEST_END();
}

/* ---- dates --------------------------------------------------------------- */

static const char *const months[12] = {"january",   "february", "march",    "april",
                                       "may",       "june",     "july",     "august",
                                       "september", "october",  "november", "december"};

/* Weekday by Zeller's congruence (independent of the library): 0 = Monday. */
static int zeller_weekday(int y, int m, int d) {
    if (m < 3) {
        m += 12;
        y -= 1;
    }
    int k = y % 100, j = y / 100;
    int h = (d + 13 * (m + 1) / 5 + k + k / 4 + j / 4 + 5 * j) % 7; /* 0 = Saturday */
    return (h + 5) % 7;
}

static int is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* Reads a field back from its source span; -1 when it does not parse. */
static int field_value(const attn_date_example *ex, int field, int b, int e) {
    char s[32];
    int n = e - b;
    if (b < 0 || e > ex->source_len || n <= 0 || n >= (int)sizeof s) return -1;
    for (int i = 0; i < n; i++) {
        char c = ex->source[b + i];
        s[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    s[n] = '\0';
    if (field == ATTN_DATE_MONTH && s[0] >= 'a' && s[0] <= 'z') {
        for (int m = 0; m < 12; m++)
            if (!strcmp(s, months[m]) || (n == 3 && !strncmp(s, months[m], 3))) return m + 1;
        return -1;
    }
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (field == ATTN_DATE_YEAR && n == 2) v += v >= 50 ? 1900 : 2000;
    if (field == ATTN_DATE_YEAR && n != 2 && n != 4) return -1;
    if (field != ATTN_DATE_YEAR && n > 2) return -1;
    return v;
}

/* Checks one example thoroughly; returns the number of problems. */
static int check_date_example(const attn_date_example *ex, const char *where) {
    int bad = 0;
    int y = 0, m = 0, d = 0;
    char tail = 0;
    /* The ISO target parses back to the date the example claims. */
    if (strlen(ex->target) != 10 || sscanf(ex->target, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 ||
        ex->target[4] != '-' || ex->target[7] != '-' || y != ex->year || m != ex->month ||
        d != ex->day) {
        CHECK(0, "%s: target '%s' vs date %d-%d-%d", where, ex->target, ex->year, ex->month,
              ex->day);
        return 1;
    }
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const int dim = dm[m - 1] + (m == 2 && is_leap(y));
    if (y < ATTN_DATE_YEAR_MIN || y > ATTN_DATE_YEAR_MAX || m < 1 || m > 12 || d < 1 || d > dim) {
        CHECK(0, "%s: '%s' is not a date in range", where, ex->target);
        return 1;
    }
    if (ex->weekday != zeller_weekday(y, m, d)) {
        CHECK(0, "%s: weekday %d of %s, Zeller says %d", where, ex->weekday, ex->target,
              zeller_weekday(y, m, d));
        bad++;
    }
    if ((int)strlen(ex->source) != ex->source_len || ex->source_len <= 0 ||
        ex->source_len >= ATTN_DATE_SOURCE_MAX) {
        CHECK(0, "%s: source length %d", where, ex->source_len);
        return bad + 1;
    }
    /* Rendering the same date again gives the same source: the example is
     * a function of (date, format, casing). */
    attn_date_example again;
    if (attn_date_render(y, m, d, ex->format, ex->casing, &again) != ATTN_OK ||
        strcmp(again.source, ex->source) != 0) {
        CHECK(0, "%s: render(%s, %d, %d) = '%s', example has '%s'", where, ex->target, ex->format,
              ex->casing, again.source, ex->source);
        bad++;
    }
    /* Every target digit's span holds its field, and reading the fields
     * back from the source gives the target. */
    const int want_field[10] = {1, 1, 1, 1, 0, 2, 2, 0, 3, 3};
    const int value[4] = {0, y, m, d};
    for (int i = 0; i < 10; i++) {
        const int f = ex->field[i], b = ex->span_begin[i], e = ex->span_end[i];
        if (f != want_field[i]) {
            CHECK(0, "%s: target char %d has field %d, expected %d", where, i, f, want_field[i]);
            bad++;
            continue;
        }
        if (f == ATTN_DATE_SEP) {
            if (b != -1 || e != -1) {
                CHECK(0, "%s: '-' at %d has span [%d, %d)", where, i, b, e);
                bad++;
            }
            continue;
        }
        const int v = field_value(ex, f, b, e);
        if (v != value[f]) {
            CHECK(0, "%s: '%s': span [%d, %d) of target char %d ('%c') reads %d, expected %d",
                  where, ex->source, b, e, i, ex->target[i], v, value[f]);
            bad++;
        }
        /* Spans of different fields do not overlap. */
        for (int j = 0; j < 10; j++) {
            if (ex->field[j] == ATTN_DATE_SEP || (int)ex->field[j] == f) continue;
            if (ex->span_begin[j] < e && b < ex->span_end[j]) {
                CHECK(0, "%s: '%s': spans of fields %d and %d overlap", where, ex->source, f,
                      ex->field[j]);
                bad++;
            }
        }
    }
    /* Casing: lower has no capital, upper no small letter. */
    for (int i = 0; i < ex->source_len; i++) {
        const char c = ex->source[i];
        if ((ex->casing == 1 && c >= 'A' && c <= 'Z') ||
            (ex->casing == 2 && c >= 'a' && c <= 'z')) {
            CHECK(0, "%s: '%s' is not in casing %d", where, ex->source, ex->casing);
            bad++;
            break;
        }
    }
    if (ex->split != attn_date_split(y, m, d, ex->format)) {
        CHECK(0, "%s: split %d, attn_date_split says %d", where, ex->split,
              attn_date_split(y, m, d, ex->format));
        bad++;
    }
    return bad;
}

static void test_dates_known(void) {
    TEST_BEGIN("text/dates_known");
    static const struct {
        int y, m, d, format, casing;
        const char *source;
    } cases[] = {
        {2000, 7, 4, 6, 0, "Tuesday, July 4 2000"},
        {1997, 3, 3, 0, 0, "3 March 1997"},
        {1997, 3, 3, 1, 0, "March 3, 1997"},
        {1997, 3, 3, 2, 0, "03/03/97"},
        {1997, 3, 3, 3, 0, "Mon 3 Mar 1997"},
        {1997, 3, 3, 4, 0, "1997.03.03"},
        {1997, 3, 3, 5, 1, "3rd of march 1997"},
        {1997, 3, 3, 12, 2, "THE 3RD OF MARCH, 1997"},
        {2011, 12, 11, 5, 0, "11th of December 2011"},
        {2012, 1, 12, 19, 0, "12th January 12"},
        {2013, 2, 13, 16, 0, "Feb. 13th, 2013"},
        {2021, 9, 21, 16, 0, "Sep. 21st, 2021"},
        {2022, 8, 22, 5, 0, "22nd of August 2022"},
        {2023, 5, 23, 5, 0, "23rd of May 2023"},
        {1950, 1, 1, 8, 0, "1 Jan 50"},
        {2049, 12, 31, 15, 0, "20491231"},
        {2000, 2, 29, 18, 0, "Tue, 29 Feb 2000"},
        {1969, 7, 20, 17, 0, "7/20/1969"},
        {1969, 7, 20, 13, 0, "Sunday, 20 July 1969"},
        {1969, 7, 20, 14, 2, "20-JUL-1969"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        attn_date_example ex;
        CHECK_OK(attn_date_render(cases[i].y, cases[i].m, cases[i].d, cases[i].format,
                                  cases[i].casing, &ex));
        CHECK(!strcmp(ex.source, cases[i].source), "case %zu: '%s', expected '%s'", i, ex.source,
              cases[i].source);
        check_date_example(&ex, "known");
    }
    /* The span of "3rd of March 1997": year "1997" at 13, month "March" at
     * 7, day "3" at 0 (not its suffix). */
    attn_date_example ex;
    CHECK_OK(attn_date_render(1997, 3, 3, 5, 0, &ex));
    CHECK(ex.span_begin[0] == 13 && ex.span_end[0] == 17 && ex.span_begin[5] == 7 &&
              ex.span_end[5] == 12 && ex.span_begin[9] == 0 && ex.span_end[9] == 1 &&
              ex.span_begin[4] == -1,
          "spans of '%s': year [%d,%d) month [%d,%d) day [%d,%d)", ex.source, ex.span_begin[0],
          ex.span_end[0], ex.span_begin[5], ex.span_end[5], ex.span_begin[9], ex.span_end[9]);
    /* Invalid requests. */
    CHECK(attn_date_render(1997, 2, 29, 0, 0, &ex) == ATTN_ERR_INVALID_ARG, "1997-02-29");
    CHECK(attn_date_render(1949, 12, 31, 0, 0, &ex) == ATTN_ERR_INVALID_ARG, "1949");
    CHECK(attn_date_render(2050, 1, 1, 0, 0, &ex) == ATTN_ERR_INVALID_ARG, "2050");
    CHECK(attn_date_render(2000, 13, 1, 0, 0, &ex) == ATTN_ERR_INVALID_ARG, "month 13");
    CHECK(attn_date_render(2000, 1, 1, ATTN_DATE_FORMATS, 0, &ex) == ATTN_ERR_INVALID_ARG,
          "format out of range");
    CHECK(strstr(attn_last_error(), "format") != NULL, "message: %s", attn_last_error());
    CHECK(attn_date_render(2000, 1, 1, 0, 3, &ex) == ATTN_ERR_INVALID_ARG, "casing 3");
    CHECK(attn_date_render(2000, 1, 1, 0, 0, NULL) == ATTN_ERR_INVALID_ARG, "NULL ex");
    CHECK(attn_date_format_name(-1) == NULL && attn_date_format_name(ATTN_DATE_FORMATS) == NULL &&
              attn_date_format_name(0) != NULL,
          "format names");
    TEST_END();
}

static void test_dates_stream(void) {
    TEST_BEGIN("text/dates_stream");
    /* Pinned examples: the stream is the same on every machine. */
    attn_date_example ex, ex2;
    attn_date_example_at(1, 0, &ex);
    CHECK(!strcmp(ex.source, "Tue, 14 Jul 2026") && !strcmp(ex.target, "2026-07-14"),
          "seed 1 index 0: '%s' -> '%s'", ex.source, ex.target);
    attn_date_example_at(1, 2, &ex);
    CHECK(!strcmp(ex.source, "THE 2ND OF JULY, 2011") && !strcmp(ex.target, "2011-07-02"),
          "seed 1 index 2: '%s' -> '%s'", ex.source, ex.target);
    /* Determinism, and seeds that differ. */
    int differ = 0;
    for (uint64_t i = 0; i < 100; i++) {
        attn_date_example_at(7, i, &ex);
        attn_date_example_at(7, i, &ex2);
        CHECK(memcmp(&ex, &ex2, sizeof ex) == 0, "index %llu differs between two calls",
              (unsigned long long)i);
        attn_date_example_at(8, i, &ex2);
        differ += strcmp(ex.source, ex2.source) != 0;
    }
    CHECK(differ > 90, "seeds 7 and 8 give the same source in %d of 100 examples", 100 - differ);

    /* 30,000 examples over 3 seeds: all correct; every format and casing,
     * both ends of the year range; the split proportions. */
    int formats[ATTN_DATE_FORMATS] = {0}, casings[ATTN_DATE_CASINGS] = {0};
    long splits[3] = {0, 0, 0};
    int min_year = 9999, max_year = 0, bad = 0;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        for (uint64_t i = 0; i < 10000 && bad < 5; i++) {
            attn_date_example_at(seed * 1000003u, i, &ex);
            bad += check_date_example(&ex, "stream") > 0;
            formats[ex.format]++;
            casings[ex.casing]++;
            splits[ex.split]++;
            if (ex.year < min_year) min_year = ex.year;
            if (ex.year > max_year) max_year = ex.year;
        }
    }
    for (int f = 0; f < ATTN_DATE_FORMATS; f++)
        CHECK(formats[f] > 1200 && formats[f] < 1800, "format %d drawn %d times of 30000", f,
              formats[f]);
    CHECK(casings[0] > 17000 && casings[0] < 19000 && casings[1] > 5400 && casings[1] < 6600 &&
              casings[2] > 5400 && casings[2] < 6600,
          "casings %d / %d / %d, expected about 60/20/20 %%", casings[0], casings[1], casings[2]);
    CHECK(min_year <= 1951 && max_year >= 2048, "years drawn from %d to %d", min_year, max_year);
    CHECK(splits[0] > 26500 && splits[0] < 27500, "train examples %ld of 30000", splits[0]);
    TEST_END();
}

static void test_dates_splits(void) {
    TEST_BEGIN("text/dates_splits");
    /* attn_date_next walks one split, in index order, and its keys never
     * occur in another split. */
    uint64_t cursor = 0, last = 0;
    attn_date_example ex;
    char(*test_keys)[16] = malloc(2000 * sizeof *test_keys);
    int n_test = 0;
    for (int i = 0; i < 2000 && test_keys; i++) {
        attn_date_next(5, ATTN_SPLIT_TEST, &cursor, &ex);
        CHECK(ex.split == ATTN_SPLIT_TEST, "attn_date_next gave split %d", ex.split);
        CHECK(cursor > last, "cursor did not advance");
        last = cursor;
        attn_date_example again;
        attn_date_example_at(5, cursor - 1, &again);
        CHECK(!strcmp(again.source, ex.source), "cursor - 1 is not the index used");
        snprintf(test_keys[n_test++], 16, "%s/%d", ex.target, ex.format);
    }
    CHECK(cursor > 2000 * 12 && cursor < 2000 * 30, "2000 test examples took %llu draws",
          (unsigned long long)cursor);
    /* Train examples of the same seed: none shares (date, format) with the
     * test examples above; casing is not part of the key. */
    cursor = 0;
    int clashes = 0;
    for (int i = 0; i < 5000 && test_keys; i++) {
        attn_date_next(5, ATTN_SPLIT_TRAIN, &cursor, &ex);
        char key[16];
        snprintf(key, sizeof key, "%s/%d", ex.target, ex.format);
        for (int j = 0; j < n_test; j++) clashes += strcmp(key, test_keys[j]) == 0;
        attn_date_example other;
        for (int c = 0; c < ATTN_DATE_CASINGS; c++) {
            attn_date_render(ex.year, ex.month, ex.day, ex.format, c, &other);
            CHECK(other.split == ATTN_SPLIT_TRAIN, "casing %d moved %s to split %d", c, ex.source,
                  other.split);
        }
    }
    CHECK(clashes == 0, "%d train examples share (date, format) with test examples", clashes);
    free(test_keys);
    TEST_END();
}

/* ---- .mo catalogs -------------------------------------------------------- */

typedef struct {
    const char *id; /* raw msgid bytes (may contain 0x04 and NUL) */
    size_t id_len;
    const char *str;
    size_t str_len;
} mo_msg;

static void put32(unsigned char *p, uint32_t v, int be) {
    for (int i = 0; i < 4; i++) p[be ? 3 - i : i] = (unsigned char)(v >> (8 * i));
}

/* Writes a .mo image of n messages into buf (cap bytes); returns its size.
 * Layout: header, msgid table, msgstr table, then the strings with NULs. */
static size_t mo_image(unsigned char *buf, size_t cap, const mo_msg *msgs, int n, int be) {
    size_t pos = 28 + 16 * (size_t)n;
    memset(buf, 0, cap);
    put32(buf, 0x950412de, be);
    put32(buf + 4, 0, be);
    put32(buf + 8, (uint32_t)n, be);
    put32(buf + 12, 28, be);
    put32(buf + 16, 28 + 8 * (uint32_t)n, be);
    put32(buf + 20, 0, be);
    put32(buf + 24, (uint32_t)pos, be);
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < n; i++) {
            const char *s = t ? msgs[i].str : msgs[i].id;
            const size_t len = t ? msgs[i].str_len : msgs[i].id_len;
            unsigned char *entry = buf + 28 + 8 * (size_t)n * (size_t)t + 8 * (size_t)i;
            put32(entry, (uint32_t)len, be);
            put32(entry + 4, (uint32_t)pos, be);
            memcpy(buf + pos, s, len);
            buf[pos + len] = 0;
            pos += len + 1;
        }
    }
    return pos;
}

#define MSG(id, str)                                                                               \
    { id, sizeof(id) - 1, str, sizeof(str) - 1 }

static const mo_msg sample_msgs[] = {
    MSG("", "Content-Type: text/plain; charset=UTF-8\nLanguage: de\n"),
    MSG("Open the file", "Die Datei öffnen"),
    MSG("menu\x04"
        "Close the window",
        "Das Fenster schließen"),
    MSG("One file was deleted\0Many files were deleted",
        "Eine Datei wurde gelöscht\0Viele Dateien wurden gelöscht"),
    MSG("ctx\x04"
        "a file\0files",
        "eine Datei\0Dateien\0Dateien (3)"),
};

static void test_mo_parse(void) {
    TEST_BEGIN("text/mo_parse");
    static unsigned char buf[4096];
    attn_mo lists[2];
    for (int be = 0; be < 2; be++) {
        size_t n = mo_image(buf, sizeof buf, sample_msgs, 5, be);
        attn_mo *mo = &lists[be];
        CHECK_OK(attn_mo_parse(buf, n, be ? "be.mo" : "le.mo", mo));
        CHECK(mo->n == 4 && mo->big_endian == be && mo->revision == 0, "[%s] n %lld big_endian %d",
              be ? "BE" : "LE", (long long)mo->n, mo->big_endian);
        CHECK(strstr(mo->header, "Language: de") != NULL && !strcmp(mo->charset, "UTF-8"),
              "[%s] header '%s', charset '%s'", be ? "BE" : "LE", mo->header, mo->charset);
        if (mo->n != 4) continue;
        const attn_mo_entry *e = mo->entries;
        CHECK(!strcmp(e[0].msgid, "Open the file") && !strcmp(e[0].msgstr, "Die Datei öffnen") &&
                  e[0].context == NULL && e[0].msgid_plural == NULL && e[0].n_forms == 1,
              "entry 0: '%s' -> '%s'", e[0].msgid, e[0].msgstr);
        CHECK(e[1].context && !strcmp(e[1].context, "menu") &&
                  !strcmp(e[1].msgid, "Close the window") &&
                  !strcmp(e[1].msgstr, "Das Fenster schließen"),
              "entry 1 (context): ctx '%s' id '%s'", e[1].context ? e[1].context : "(null)",
              e[1].msgid);
        CHECK(!strcmp(e[2].msgid, "One file was deleted") && e[2].msgid_plural &&
                  !strcmp(e[2].msgid_plural, "Many files were deleted") &&
                  !strcmp(e[2].msgstr, "Eine Datei wurde gelöscht") && e[2].n_forms == 2,
              "entry 2 (plural): '%s' / '%s' -> '%s', %d forms", e[2].msgid,
              e[2].msgid_plural ? e[2].msgid_plural : "(null)", e[2].msgstr, e[2].n_forms);
        CHECK(e[3].context && !strcmp(e[3].context, "ctx") && !strcmp(e[3].msgid, "a file") &&
                  e[3].msgid_plural && !strcmp(e[3].msgid_plural, "files") &&
                  !strcmp(e[3].msgstr, "eine Datei") && e[3].n_forms == 3,
              "entry 3 (context + plural): '%s' -> '%s', %d forms", e[3].msgid, e[3].msgstr,
              e[3].n_forms);
    }
    attn_mo_free(&lists[0]);
    attn_mo_free(&lists[1]);
    CHECK(lists[0].entries == NULL && lists[0].n == 0, "attn_mo_free empties");
    attn_mo_free(&lists[0]);
    attn_mo_free(NULL);

    /* No header; a Latin-1 charset is reported as such. */
    const mo_msg latin[] = {MSG("", "Content-Type: text/plain; charset=ISO-8859-1\n"),
                            MSG("Open", "\xd6"
                                        "ffnen")};
    attn_mo mo;
    size_t n = mo_image(buf, sizeof buf, latin, 2, 0);
    CHECK_OK(attn_mo_parse(buf, n, "latin.mo", &mo));
    CHECK(!strcmp(mo.charset, "ISO-8859-1"), "charset '%s'", mo.charset);
    attn_mo_free(&mo);
    n = mo_image(buf, sizeof buf, latin + 1, 1, 0);
    CHECK_OK(attn_mo_parse(buf, n, "noheader.mo", &mo));
    CHECK(mo.n == 1 && !strcmp(mo.header, "") && !strcmp(mo.charset, "UTF-8"),
          "no header: n %lld header '%s'", (long long)mo.n, mo.header);
    attn_mo_free(&mo);
    n = mo_image(buf, sizeof buf, NULL, 0, 1);
    CHECK_OK(attn_mo_parse(buf, n, "empty.mo", &mo));
    CHECK(mo.n == 0, "empty catalog has %lld messages", (long long)mo.n);
    attn_mo_free(&mo);

    /* From a file, and a missing file. */
    char path[700];
    snprintf(path, sizeof path, "%s/sample.mo", tmp_dir);
    n = mo_image(buf, sizeof buf, sample_msgs, 5, 0);
    CHECK(write_file(path, buf, n) == 0, "cannot write %s", path);
    CHECK_OK(attn_mo_load(path, &mo));
    CHECK(mo.n == 4, "loaded %lld messages", (long long)mo.n);
    attn_mo_free(&mo);
    snprintf(path, sizeof path, "%s/missing.mo", tmp_dir);
    CHECK(attn_mo_load(path, &mo) == ATTN_ERR_IO, "a missing file must be ATTN_ERR_IO");
    CHECK(attn_mo_load(tmp_dir, &mo) == ATTN_ERR_IO, "a directory must be ATTN_ERR_IO");
    CHECK(attn_mo_parse(NULL, 0, "x", &mo) == ATTN_ERR_INVALID_ARG, "NULL bytes");
    TEST_END();
}

/* Parses a mutated image and checks ATTN_ERR_FORMAT with `phrase`. */
static void expect_bad_mo(const char *what, const unsigned char *bytes, size_t n,
                          const char *phrase) {
    attn_mo mo;
    attn_status st = attn_mo_parse(bytes, n, "bad.mo", &mo);
    CHECK(st == ATTN_ERR_FORMAT, "%s: status %s, expected format error", what, attn_status_str(st));
    CHECK(strstr(attn_last_error(), phrase) != NULL && strstr(attn_last_error(), "bad.mo") != NULL,
          "%s: message '%s' should name the file and say '%s'", what, attn_last_error(), phrase);
    CHECK(mo.entries == NULL && mo.n == 0 && mo.storage_ == NULL, "%s: *out not left empty", what);
    attn_mo_free(&mo);
}

static void test_mo_malformed(void) {
    TEST_BEGIN("text/mo_malformed");
    static unsigned char good[4096], buf[4096];
    const size_t n = mo_image(good, sizeof good, sample_msgs, 5, 0);
    expect_bad_mo("27 bytes", good, 27, "shorter than the 28-byte header");
    memcpy(buf, good, n);
    buf[0] = 0x12;
    expect_bad_mo("bad magic", buf, n, "bad magic");
    memcpy(buf, good, n);
    put32(buf + 4, 2u << 16, 0);
    expect_bad_mo("revision 2.0", buf, n, "revision 2.0");
    memcpy(buf, good, n);
    put32(buf + 8, 1000000, 0);
    expect_bad_mo("N too large", buf, n, "msgid table");
    memcpy(buf, good, n);
    put32(buf + 16, (uint32_t)n - 8, 0);
    expect_bad_mo("msgstr table past the end", buf, n, "msgstr table");
    memcpy(buf, good, n);
    put32(buf + 28 + 8, 5000, 0); /* msgid 1's length */
    expect_bad_mo("string past the end", buf, n, "past the end");
    memcpy(buf, good, n);
    {
        /* msgid 1 ("Open the file"): overwrite its NUL. */
        uint32_t len = 13, off = (uint32_t)buf[28 + 12] | (uint32_t)buf[28 + 13] << 8 |
                                 (uint32_t)buf[28 + 14] << 16 | (uint32_t)buf[28 + 15] << 24;
        buf[off + len] = 'x';
        expect_bad_mo("missing NUL", buf, n, "not followed by a NUL");
    }
    expect_bad_mo("truncated strings", good, n - 3, "past the end");

    const mo_msg two_nuls[] = {MSG("a\0b\0c", "x\0y")};
    size_t m = mo_image(buf, sizeof buf, two_nuls, 1, 0);
    expect_bad_mo("two NULs in a msgid", buf, m, "more than one NUL");
    const mo_msg two_ctx[] = {MSG("a\x04"
                                  "b\x04"
                                  "c",
                                  "x")};
    m = mo_image(buf, sizeof buf, two_ctx, 1, 1);
    expect_bad_mo("two context marks", buf, m, "more than one context");
    const mo_msg ctx_in_plural[] = {MSG("a\0b\x04"
                                        "c",
                                        "x")};
    m = mo_image(buf, sizeof buf, ctx_in_plural, 1, 0);
    expect_bad_mo("context mark in the plural", buf, m, "inside the plural");
    const mo_msg late_header[] = {MSG("Open", "Öffnen"), MSG("", "header")};
    m = mo_image(buf, sizeof buf, late_header, 2, 0);
    expect_bad_mo("empty msgid at 1", buf, m, "only entry 0");

    /* Big-endian images are checked the same way. */
    m = mo_image(buf, sizeof buf, sample_msgs, 5, 1);
    put32(buf + 12, (uint32_t)m, 1);
    expect_bad_mo("BE msgid table offset past the end", buf, m, "msgid table");
    TEST_END();
}

/* ---- cleaning ------------------------------------------------------------- */

static void expect_clean(const char *src, const char *tgt, attn_clean_reason want,
                         const char *want_src, const char *want_tgt) {
    char a[512], b[512];
    attn_clean_reason r = attn_clean_pair(src, tgt, a, b, sizeof a);
    CHECK(r == want, "'%s' | '%s': %s, expected %s", src, tgt, attn_clean_reason_name(r),
          attn_clean_reason_name(want));
    if (r == ATTN_CLEAN_OK && want == ATTN_CLEAN_OK) {
        CHECK(!want_src || !strcmp(a, want_src), "'%s' normalised to '%s', expected '%s'", src, a,
              want_src);
        CHECK(!want_tgt || !strcmp(b, want_tgt), "'%s' normalised to '%s', expected '%s'", tgt, b,
              want_tgt);
        /* Cleaning is idempotent: a clean pair stays as it is. */
        char c[512], d[512];
        CHECK(attn_clean_pair(a, b, c, d, sizeof c) == ATTN_CLEAN_OK && !strcmp(a, c) &&
                  !strcmp(b, d),
              "cleaning '%s' | '%s' again changed it", a, b);
    }
}

static void test_clean_rules(void) {
    TEST_BEGIN("text/clean_rules");
    const attn_clean_reason OK = ATTN_CLEAN_OK;
    expect_clean("Open the file", "Die Datei öffnen", OK, "Open the file", "Die Datei öffnen");
    /* empty (untranslated) */
    expect_clean("Open the file", "", ATTN_CLEAN_EMPTY, NULL, NULL);
    expect_clean("   ", "Die Datei öffnen", ATTN_CLEAN_EMPTY, NULL, NULL);
    /* encoding */
    expect_clean("Open the \xff file", "Die Datei öffnen", ATTN_CLEAN_ENCODING, NULL, NULL);
    expect_clean("Open the file", "Die Datei \xc3", ATTN_CLEAN_ENCODING, NULL, NULL);
    expect_clean("Open \x01 the file", "Die Datei öffnen", ATTN_CLEAN_ENCODING, NULL, NULL);
    expect_clean("Open the file", "Die Datei \xc2\x85 öffnen", ATTN_CLEAN_ENCODING, NULL, NULL);
    /* newline, carriage return, tab */
    expect_clean("Open the\nfile now", "Die Datei öffnen", ATTN_CLEAN_NEWLINE, NULL, NULL);
    expect_clean("Open the file", "Die Datei\r\n öffnen", ATTN_CLEAN_NEWLINE, NULL, NULL);
    expect_clean("Open\tthe file", "Die Datei öffnen", ATTN_CLEAN_NEWLINE, NULL, NULL);
    /* placeholders */
    expect_clean("%d files were deleted", "%d Dateien wurden gelöscht", ATTN_CLEAN_PLACEHOLDER,
                 NULL, NULL);
    expect_clean("{count} files were deleted", "{count} Dateien gelöscht", ATTN_CLEAN_PLACEHOLDER,
                 NULL, NULL);
    expect_clean("Kalenin went west", "$name ging nach Westen", ATTN_CLEAN_PLACEHOLDER, NULL, NULL);
    /* markup */
    expect_clean("<b>Open</b> the file", "Die Datei öffnen", ATTN_CLEAN_MARKUP, NULL, NULL);
    expect_clean("Tom &amp; Jerry show", "Tom und Jerry Show", ATTN_CLEAN_MARKUP, NULL, NULL);
    expect_clean("Tom &#38; Jerry show", "Tom und Jerry Show", ATTN_CLEAN_MARKUP, NULL, NULL);
    /* URLs and e-mail addresses */
    expect_clean("See https://example.org for more", "Siehe die Webseite", ATTN_CLEAN_URL, NULL,
                 NULL);
    expect_clean("Visit WWW.example.org for more", "Besuchen Sie die Seite", ATTN_CLEAN_URL, NULL,
                 NULL);
    expect_clean("Write to bugs@example.org please", "Schreiben Sie uns bitte", ATTN_CLEAN_URL,
                 NULL, NULL);
    /* command options */
    expect_clean("Use --help for more", "Mehr mit --help", ATTN_CLEAN_OPTION, NULL, NULL);
    expect_clean("Run it with -v to see", "Mit -v ausführen", ATTN_CLEAN_OPTION, NULL, NULL);
    expect_clean("Red - green - blue", "Rot - grün - blau", OK, NULL, NULL);
    /* accelerators: one removed, two or a stray one rejected */
    expect_clean("~Close the window", "Fenster ~schließen jetzt", OK, "Close the window",
                 "Fenster schließen jetzt");
    expect_clean("Save _As new file", "Speichern _unter neuer Datei", OK, "Save As new file",
                 "Speichern unter neuer Datei");
    expect_clean("E_xit the program", "Programm _Öffnen und beenden", OK, "Exit the program",
                 "Programm Öffnen und beenden");
    expect_clean("&Close the window", "Fenster &schließen bitte", OK, "Close the window",
                 "Fenster schließen bitte");
    expect_clean("Black & White photos", "Schwarz & Weiß Fotos", OK, "Black & White photos",
                 "Schwarz & Weiß Fotos");
    expect_clean("Generate AT&T-style stubs now", "AT&T-artige Stubs erzeugen", OK,
                 "Generate AT&T-style stubs now", "AT&T-artige Stubs erzeugen");
    expect_clean("_Open _Recent files", "Zuletzt geöffnete Dateien", ATTN_CLEAN_ACCEL, NULL, NULL);
    expect_clean("the variable file_name is bad", "Die Variable ist schlecht", OK, NULL, NULL);
    expect_clean("set file_name and dir_name now", "Setzen Sie beide jetzt", ATTN_CLEAN_ACCEL, NULL,
                 NULL);
    expect_clean("Automatic _underline_ here", "Automatisch unterstreichen hier", ATTN_CLEAN_ACCEL,
                 NULL, NULL);
    expect_clean("Go to ~/home folder", "Gehe zum Ordner", ATTN_CLEAN_ACCEL, NULL, NULL);
    /* token counts: 3 to 60 */
    expect_clean("Open file", "Datei öffnen", ATTN_CLEAN_TOKENS, NULL, NULL);
    expect_clean("Open the file", "Öffnen", ATTN_CLEAN_TOKENS, NULL, NULL);
    {
        char sixty[400] = "", sixty_one[410];
        for (int i = 0; i < 60; i++) strcat(sixty, i ? " ab" : "ab");
        snprintf(sixty_one, sizeof sixty_one, "%s ab", sixty);
        expect_clean(sixty, sixty, ATTN_CLEAN_SAME, NULL, NULL); /* 60 tokens pass the count */
        char sixty_t[400];
        snprintf(sixty_t, sizeof sixty_t, "%s", sixty);
        sixty_t[0] = 'X';
        expect_clean(sixty, sixty_t, OK, NULL, NULL);
        expect_clean(sixty_one, sixty_t, ATTN_CLEAN_TOKENS, NULL, NULL);
    }
    /* length ratio target / source in code points: 0.4 and 2.5 themselves pass */
    expect_clean("aaaa bbbb cc", "a b c", OK, NULL, NULL);                           /* 5 / 12 */
    expect_clean("aaaa bbbb cccc", "a b c", ATTN_CLEAN_RATIO, NULL, NULL);           /* 5 / 14 */
    expect_clean("aaaaa bbbbb ccccc dd", "aa b c d", OK, NULL, NULL);                /* 8 / 20 */
    expect_clean("aaaaa bbbbb ccccc ddd", "aa b c d", ATTN_CLEAN_RATIO, NULL, NULL); /* 8 / 21 */
    expect_clean("aa b c d", "aaaaa bbbbb ccccc dd", OK, NULL, NULL);                /* 20 / 8 */
    expect_clean("aa b c d", "aaaaa bbbbb ccccc ddd", ATTN_CLEAN_RATIO, NULL, NULL); /* 21 / 8 */
    expect_clean("aa b c d", "ääääa bbbbb ccccc dd", OK, NULL, NULL); /* 20 code points, 24 bytes */
    /* source == target */
    expect_clean("Open the file", "Open the file", ATTN_CLEAN_SAME, NULL, NULL);
    expect_clean("Open  the file ", " Open the  file", ATTN_CLEAN_SAME, NULL, NULL);
    /* spaces: no-break, narrow no-break and thin spaces become ' ', runs
     * collapse, ends are trimmed */
    expect_clean("  Open   the file? ", "Ouvrir le fichier\xc2\xa0?", OK, "Open the file?",
                 "Ouvrir le fichier ?");
    expect_clean("Save the file now!", "Enregistrer\xe2\x80\xaf le fichier\xe2\x80\x89!", OK,
                 "Save the file now!", "Enregistrer le fichier !");
    /* the first rule broken wins, whichever side breaks it */
    expect_clean("%s\nfile here now", "Datei öffnen jetzt", ATTN_CLEAN_NEWLINE, NULL, NULL);
    expect_clean("Open it", "<b>Die Datei öffnen</b>", ATTN_CLEAN_MARKUP, NULL, NULL);
    /* arguments */
    char a[8], b[8];
    CHECK(attn_clean_pair("Open the file", "Die Datei öffnen", a, b, sizeof a) == ATTN_CLEAN_EMPTY,
          "a cap too small must be rejected");
    CHECK(attn_clean_pair(NULL, "x", a, b, sizeof a) == ATTN_CLEAN_EMPTY, "NULL source");
    CHECK(!strcmp(attn_clean_reason_name(ATTN_CLEAN_ACCEL), "accel") &&
              !strcmp(attn_clean_reason_name(ATTN_CLEAN_REASON_COUNT), "?"),
          "reason names");
    TEST_END();
}

/* ---- the gettext builder --------------------------------------------------- */

static int write_mo(const char *rel, const mo_msg *msgs, int n, int be) {
    static unsigned char buf[8192];
    char path[800];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, rel);
    size_t size = mo_image(buf, sizeof buf, msgs, n, be);
    return write_file(path, buf, size);
}

static void test_gettext_build(void) {
    TEST_BEGIN("text/gettext_build");
    const mo_msg app[] = {
        MSG("", "Content-Type: text/plain; charset=UTF-8\n"),
        MSG("Open the file", "Die Datei öffnen"),
        MSG("~Close the window", "Das Fenster ~schließen"),
        MSG("One file was deleted\0Many files were deleted",
            "Eine Datei wurde gelöscht\0Viele Dateien wurden gelöscht"),
        MSG("menu\x04Save the document now", "Das Dokument jetzt speichern"),
        MSG("%d files were deleted", "%d Dateien gelöscht"), /* placeholder */
        MSG("Quit", "Beenden"),                              /* tokens */
        MSG("Print the page now", "Die Seite jetzt drucken"),
        MSG("Copy the text here", ""), /* untranslated */
    };
    const mo_msg other[] = {
        MSG("", "Content-Type: text/plain; charset=UTF-8\n"),
        MSG("Print the page now", "Seite jetzt drucken"), /* second target: 1 vote */
        MSG("Open the file", "Die Datei öffnen"),         /* same pair: duplicate */
        MSG("Open the file", "Datei öffnen bitte"),       /* a third target */
        MSG("Paste the text here", "Den Text hier einfügen"),
    };
    const mo_msg third[] = {
        MSG("", "Content-Type: text/plain; charset=UTF-8\n"),
        MSG("Print the page now", "Seite jetzt drucken"), /* now 2 votes: wins */
    };
    const mo_msg latin[] = {
        MSG("", "Content-Type: text/plain; charset=ISO-8859-1\n"),
        MSG("Close all open files", "Alle offenen Dateien schlie\xdf"
                                    "en"),
    };
    const mo_msg koi8[] = {
        MSG("", "Content-Type: text/plain; charset=KOI8-R\n"),
        MSG("Close all windows now", "x y z"),
    };
    const mo_msg iso[] = {
        MSG("", "Content-Type: text/plain; charset=UTF-8\n"),
        MSG("Federal Republic of Germany", "Bundesrepublik Deutschland"),
    };
    const mo_msg fr[] = {MSG("Open the file", "Ouvrir le fichier")};
    CHECK(write_mo("a/usr/share/locale/de/LC_MESSAGES/app.mo", app, 9, 0) == 0 &&
              write_mo("b/x/de/LC_MESSAGES/other.mo", other, 5, 1) == 0 &&
              write_mo("b/x/de/LC_MESSAGES/third.mo", third, 2, 0) == 0 &&
              write_mo("b/y/de/LC_MESSAGES/latin.mo", latin, 2, 0) == 0 &&
              write_mo("b/y/de/LC_MESSAGES/koi8.mo", koi8, 2, 0) == 0 &&
              write_mo("a/usr/share/locale/de/LC_MESSAGES/iso_3166-1.mo", iso, 2, 0) == 0 &&
              write_mo("a/usr/share/locale/de_CH/LC_MESSAGES/app.mo", iso, 2, 0) == 0 &&
              write_mo("a/usr/share/locale/fr/LC_MESSAGES/app.mo", fr, 1, 0) == 0 &&
              write_mo("a/de/notmessages/app.mo", iso, 2, 0) == 0,
          "cannot write the catalog tree under %s", tmp_dir);
    char bad_path[800];
    snprintf(bad_path, sizeof bad_path, "%s/b/y/de/LC_MESSAGES/broken.mo", tmp_dir);
    CHECK(write_file(bad_path, "\xde\x12\x04\x95 too short", 14) == 0, "cannot write broken.mo");

    char dir_a[700], dir_b[700], out1[700], out2[700];
    snprintf(dir_a, sizeof dir_a, "%s/a", tmp_dir);
    snprintf(dir_b, sizeof dir_b, "%s/b", tmp_dir);
    snprintf(out1, sizeof out1, "%s/out1", tmp_dir);
    snprintf(out2, sizeof out2, "%s/out2/nested", tmp_dir);
    const char *dirs_ab[2] = {dir_a, dir_b}, *dirs_ba[2] = {dir_b, dir_a};
    attn_gettext_stats s;
    CHECK_OK(attn_gettext_build(dirs_ab, 2, "de", out1, &s));
    CHECK(s.catalogs == 4 && s.catalogs_skipped == 3,
          "catalogs read %lld, skipped %lld (expected "
          "4 and 3: iso_*, KOI8-R, broken)",
          (long long)s.catalogs, (long long)s.catalogs_skipped);
    CHECK(s.entries == 8 + 4 + 1 + 1 + 0, "messages %lld, expected 14", (long long)s.entries);
    CHECK(s.cleaned[ATTN_CLEAN_OK] == 11 && s.cleaned[ATTN_CLEAN_PLACEHOLDER] == 1 &&
              s.cleaned[ATTN_CLEAN_TOKENS] == 1 && s.cleaned[ATTN_CLEAN_EMPTY] == 1,
          "clean %lld placeholder %lld tokens %lld empty %lld", (long long)s.cleaned[0],
          (long long)s.cleaned[ATTN_CLEAN_PLACEHOLDER], (long long)s.cleaned[ATTN_CLEAN_TOKENS],
          (long long)s.cleaned[ATTN_CLEAN_EMPTY]);
    CHECK(s.duplicates == 4, "duplicates %lld, expected 4", (long long)s.duplicates);
    const int64_t total = s.pairs[0] + s.pairs[1] + s.pairs[2];
    CHECK(total == 7, "pairs written %lld, expected 7", (long long)total);

    /* Read the splits back: the expected pairs, each in its hash split. */
    static const char *const want[7][2] = {
        {"Open the file", "Die Datei öffnen"},
        {"Close the window", "Das Fenster schließen"},
        {"One file was deleted", "Eine Datei wurde gelöscht"},
        {"Save the document now", "Das Dokument jetzt speichern"},
        {"Print the page now", "Seite jetzt drucken"},
        {"Paste the text here", "Den Text hier einfügen"},
        {"Close all open files", "Alle offenen Dateien schließen"},
    };
    int found[7] = {0};
    for (int sp = 0; sp < ATTN_SPLIT_COUNT; sp++) {
        char path[800];
        snprintf(path, sizeof path, "%s/en-de/%s.tsv", out1,
                 attn_data_split_name((attn_data_split)sp));
        attn_pairs p;
        CHECK_OK(attn_pairs_load(path, &p));
        CHECK(p.n == s.pairs[sp], "%s has %lld pairs, stats say %lld", path, (long long)p.n,
              (long long)s.pairs[sp]);
        uint64_t last_hash = 0;
        for (int64_t i = 0; i < p.n; i++) {
            CHECK(attn_data_split_of(p.src[i], strlen(p.src[i])) == (attn_data_split)sp,
                  "'%s' is in %s but hashes elsewhere", p.src[i], path);
            const uint64_t h = attn_fnv1a64(p.src[i], strlen(p.src[i]));
            CHECK(i == 0 || h >= last_hash, "%s is not ordered by hash", path);
            last_hash = h;
            int k = 0;
            while (k < 7 && strcmp(want[k][0], p.src[i]) != 0) k++;
            CHECK(k < 7, "unexpected pair '%s' -> '%s'", p.src[i], p.tgt[i]);
            if (k < 7) {
                found[k]++;
                CHECK(!strcmp(want[k][1], p.tgt[i]), "'%s' -> '%s', expected '%s'", p.src[i],
                      p.tgt[i], want[k][1]);
            }
        }
        attn_pairs_free(&p);
    }
    for (int k = 0; k < 7; k++) CHECK(found[k] == 1, "'%s' found %d times", want[k][0], found[k]);

    /* The catalog list: every catalog of "de" with its status. */
    char path[800];
    snprintf(path, sizeof path, "%s/en-de/catalogs.tsv", out1);
    char *cat = read_file(path, NULL);
    CHECK(cat != NULL, "cannot read %s", path);
    if (cat) {
        int lines = 0;
        for (char *c = cat; *c; c++) lines += *c == '\n';
        CHECK(lines == 7, "catalogs.tsv has %d lines, expected 7", lines);
        CHECK(strstr(cat, "iso_3166-1\tskipped: iso_* domain\t") != NULL, "iso row:\n%s", cat);
        CHECK(strstr(cat, "koi8\tskipped: charset KOI8-R\t") != NULL, "charset row:\n%s", cat);
        CHECK(strstr(cat, "broken\tskipped: ") != NULL && strstr(cat, "header") != NULL,
              "malformed row:\n%s", cat);
        CHECK(strstr(cat, "app\tok\t8\t5\n") != NULL, "app row (8 messages, 5 clean):\n%s", cat);
        CHECK(strstr(cat, "de_CH") == NULL && strstr(cat, "/fr/") == NULL &&
                  strstr(cat, "notmessages") == NULL,
              "catalogs of other languages listed:\n%s", cat);
        free(cat);
    }

    /* The same files whatever the order of the directories. */
    CHECK_OK(attn_gettext_build(dirs_ba, 2, "de", out2, NULL));
    for (int sp = 0; sp < ATTN_SPLIT_COUNT; sp++) {
        char p1[800], p2[800];
        snprintf(p1, sizeof p1, "%s/en-de/%s.tsv", out1, attn_data_split_name((attn_data_split)sp));
        snprintf(p2, sizeof p2, "%s/en-de/%s.tsv", out2, attn_data_split_name((attn_data_split)sp));
        size_t n1 = 0, n2 = 0;
        char *f1 = read_file(p1, &n1), *f2 = read_file(p2, &n2);
        CHECK(f1 && f2 && n1 == n2 && memcmp(f1, f2, n1) == 0, "%s differs from %s", p1, p2);
        free(f1);
        free(f2);
    }

    /* French: only the fr catalog; errors. */
    CHECK_OK(attn_gettext_build(dirs_ab, 2, "fr", out1, &s));
    CHECK(s.catalogs == 1 && s.pairs[0] + s.pairs[1] + s.pairs[2] == 1,
          "fr: %lld catalogs, %lld pairs", (long long)s.catalogs,
          (long long)(s.pairs[0] + s.pairs[1] + s.pairs[2]));
    CHECK(attn_gettext_build(dirs_ab, 2, "it", out1, &s) == ATTN_ERR_FORMAT, "no catalog of 'it'");
    CHECK(strstr(attn_last_error(), "no catalog") != NULL, "message: %s", attn_last_error());
    CHECK(attn_gettext_build(dirs_ab, 2, "../de", out1, &s) == ATTN_ERR_INVALID_ARG, "lang with /");
    const char *missing[1] = {"/nonexistent/attn/dir"};
    CHECK(attn_gettext_build(missing, 1, "de", out1, &s) == ATTN_ERR_IO, "missing directory");
    CHECK(attn_gettext_build(NULL, 0, "de", out1, &s) == ATTN_ERR_INVALID_ARG, "no directories");
    TEST_END();
}

static void test_pairs_load(void) {
    TEST_BEGIN("text/pairs_load");
    char path[800];
    snprintf(path, sizeof path, "%s/pairs.tsv", tmp_dir);
    const char good[] = "Open the file\tDie Datei öffnen\nClose it now\tJetzt schließen";
    CHECK(write_file(path, good, sizeof good - 1) == 0, "cannot write %s", path);
    attn_pairs p;
    CHECK_OK(attn_pairs_load(path, &p));
    CHECK(p.n == 2 && !strcmp(p.src[1], "Close it now") && !strcmp(p.tgt[1], "Jetzt schließen") &&
              !strcmp(p.tgt[0], "Die Datei öffnen"),
          "read %lld pairs", (long long)p.n);
    attn_pairs_free(&p);
    attn_pairs_free(&p);
    CHECK(write_file(path, "", 0) == 0, "cannot write");
    CHECK_OK(attn_pairs_load(path, &p));
    CHECK(p.n == 0, "an empty file has %lld pairs", (long long)p.n);
    attn_pairs_free(&p);
    static const struct {
        const char *text, *phrase;
    } bad[] = {
        {"a b c\tx y z\nno tab here\n", "line 2 has no tab"},
        {"a\tb\tc\n", "more than one tab"},
        {"\tx y z\n", "an empty side"},
        {"a b c\t\n", "an empty side"},
        {"a b c\tx y z\r\n", "carriage return"},
        {"a b \xff\tx y z\n", "invalid UTF-8"},
        {"a b c\tx y z\n\n", "line 2 has no tab"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(write_file(path, bad[i].text, strlen(bad[i].text)) == 0, "cannot write");
        attn_status st = attn_pairs_load(path, &p);
        CHECK(st == ATTN_ERR_FORMAT && strstr(attn_last_error(), bad[i].phrase) != NULL &&
                  p.n == 0 && p.src == NULL,
              "case %zu: %s '%s', expected a format error with '%s'", i, attn_status_str(st),
              attn_last_error(), bad[i].phrase);
    }
    CHECK(attn_pairs_load("/nonexistent/attn.tsv", &p) == ATTN_ERR_IO, "missing file");
    TEST_END();
}

/* ---- tokenisers -------------------------------------------------------------- */

/* encode then decode; returns 1 when the text comes back exactly. */
static int round_trip(const attn_vocab *v, const char *text, size_t *n_tokens) {
    const size_t len = strlen(text);
    int32_t ids[1024];
    char back[4096];
    size_t n = 0, m = 0;
    if (attn_vocab_encode(v, text, len, ids, 1024, &n) != ATTN_OK) return 0;
    if (n_tokens) *n_tokens = n;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= attn_vocab_size(v)) return 0;
    if (attn_vocab_decode(v, ids, n, back, sizeof back, &m) != ATTN_OK) return 0;
    return m == len && strcmp(back, text) == 0;
}

static void test_vocab_chars(void) {
    TEST_BEGIN("text/vocab_chars");
    const char *texts[] = {"Die Datei öffnen", "Ouvrir le fichier «test»", "zz"};
    attn_vocab *v = NULL;
    CHECK_OK(attn_vocab_build_chars(texts, 3, 1, &v));
    if (!v) {
        TEST_END();
        return;
    }
    CHECK(attn_vocab_kind_of(v) == ATTN_VOCAB_CHAR && attn_bpe_merge_count(v) == 0,
          "kind and merges");
    /* Distinct code points: ' ' D O a c e f h i l n r s t u v z « » ö. */
    CHECK(attn_vocab_alphabet_size(v) == 20 && attn_vocab_size(v) == 24,
          "alphabet %d, size %d; expected 20 and 24", attn_vocab_alphabet_size(v),
          attn_vocab_size(v));
    CHECK(!strcmp(attn_vocab_piece(v, ATTN_TOKEN_PAD), "<pad>") &&
              !strcmp(attn_vocab_piece(v, ATTN_TOKEN_BOS), "<bos>") &&
              !strcmp(attn_vocab_piece(v, ATTN_TOKEN_EOS), "<eos>") &&
              !strcmp(attn_vocab_piece(v, ATTN_TOKEN_UNK), "<unk>") &&
              attn_vocab_piece(v, -1) == NULL && attn_vocab_piece(v, 24) == NULL,
          "special pieces");
    /* Alphabet in code point order: ' ' first, 'ö' (U+00F6) last. */
    CHECK(!strcmp(attn_vocab_piece(v, 4), " ") && !strcmp(attn_vocab_piece(v, 23), "ö") &&
              attn_vocab_find(v, "«") == 21 && attn_vocab_find(v, "<unk>") == 3 &&
              attn_vocab_find(v, "q") == -1,
          "pieces: 4 '%s', 23 '%s', « at %d", attn_vocab_piece(v, 4), attn_vocab_piece(v, 23),
          attn_vocab_find(v, "«"));
    size_t n = 0;
    CHECK(round_trip(v, "Die Datei öffnen", &n) && n == 16, "round trip (%zu tokens)", n);
    CHECK(round_trip(v, "", &n) && n == 0, "empty text");
    /* Unknown characters and invalid bytes: <unk>, decoded as "<unk>". */
    int32_t ids[64];
    CHECK_OK(attn_vocab_encode(v, "zäz\xff", 5, ids, 64, &n));
    CHECK(n == 4 && ids[1] == ATTN_TOKEN_UNK && ids[3] == ATTN_TOKEN_UNK && ids[0] == ids[2],
          "'zäz\\xff' -> %zu ids", n);
    char back[64];
    size_t m = 0;
    CHECK_OK(attn_vocab_decode(v, ids, n, back, sizeof back, &m));
    CHECK(!strcmp(back, "z<unk>z<unk>") && m == 12, "decoded '%s'", back);
    /* Specials are skipped by decode; a length query; small buffers. */
    const int32_t with_specials[5] = {ATTN_TOKEN_BOS, ids[0], ATTN_TOKEN_PAD, ids[0],
                                      ATTN_TOKEN_EOS};
    CHECK_OK(attn_vocab_decode(v, with_specials, 5, NULL, 0, &m));
    CHECK(m == 2, "length query: %zu", m);
    CHECK_OK(attn_vocab_decode(v, with_specials, 5, back, 3, &m));
    CHECK(!strcmp(back, "zz"), "'%s'", back);
    CHECK(attn_vocab_decode(v, with_specials, 5, back, 2, &m) == ATTN_ERR_INVALID_ARG &&
              !strcmp(back, "z") && m == 2,
          "a buffer of 2 bytes must fail, holding 'z' (got '%s')", back);
    const int32_t bad_id[1] = {24};
    CHECK(attn_vocab_decode(v, bad_id, 1, back, sizeof back, &m) == ATTN_ERR_INVALID_ARG,
          "id 24 of 24");
    CHECK_OK(attn_vocab_encode(v, "zz", 2, NULL, 0, &n));
    CHECK(n == 2, "length query: %zu", n);
    CHECK(attn_vocab_encode(v, "zzz", 3, ids, 2, &n) == ATTN_ERR_INVALID_ARG && n == 3,
          "cap 2 for 3 tokens");
    /* min_count drops rare characters. */
    attn_vocab *v2 = NULL;
    CHECK_OK(attn_vocab_build_chars(texts, 3, 3, &v2));
    CHECK(v2 && attn_vocab_alphabet_size(v2) == 6, "min_count 3: alphabet %d (' ', e, f, i, r, t)",
          attn_vocab_alphabet_size(v2));
    attn_vocab_free(v2);
    /* Save and load. */
    char path[800];
    snprintf(path, sizeof path, "%s/chars.vocab", tmp_dir);
    CHECK_OK(attn_vocab_save(v, path));
    attn_vocab *w = NULL;
    CHECK_OK(attn_vocab_load(path, &w));
    CHECK(w && attn_vocab_size(w) == attn_vocab_size(v) && attn_vocab_kind_of(w) == ATTN_VOCAB_CHAR,
          "loaded vocabulary");
    for (int i = 0; w && i < attn_vocab_size(v); i++)
        CHECK(!strcmp(attn_vocab_piece(v, i), attn_vocab_piece(w, i)), "piece %d differs", i);
    attn_vocab_free(w);
    attn_vocab_free(v);
    attn_vocab_free(NULL);
    TEST_END();
}

static void expect_merges(const char *what, const char *const *texts, int n_texts, int n_merges,
                          const int32_t (*want)[2], int n_want) {
    attn_vocab *v = NULL;
    CHECK_OK(attn_bpe_learn(texts, n_texts, n_merges, 1, &v));
    if (!v) return;
    CHECK(attn_bpe_merge_count(v) == n_want, "%s: %d merges, expected %d", what,
          attn_bpe_merge_count(v), n_want);
    for (int r = 0; r < n_want && r < attn_bpe_merge_count(v); r++) {
        int32_t a = -1, b = -1;
        CHECK_OK(attn_bpe_merge(v, r, &a, &b));
        CHECK(a == want[r][0] && b == want[r][1],
              "%s: merge %d is (%d, %d) '%s'+'%s', expected (%d, %d)", what, r, a, b,
              attn_vocab_piece(v, a), attn_vocab_piece(v, b), want[r][0], want[r][1]);
    }
    attn_vocab_free(v);
}

static void test_bpe_known(void) {
    TEST_BEGIN("text/bpe_known");
    /* Chunks "ab", " ab" x2, "abc"; alphabet ' ' a b c = ids 4 5 6 7.
     * (a, b) occurs 4 times -> 8 "ab"; then (' ', ab) twice -> 9 " ab";
     * then (ab, c) occurs once: learning stops. */
    const char *t1[] = {"ab ab ab", "abc"};
    const int32_t m1[2][2] = {{5, 6}, {4, 8}};
    expect_merges("ab ab ab / abc", t1, 2, 10, m1, 2);
    attn_vocab *v = NULL;
    CHECK_OK(attn_bpe_learn(t1, 2, 10, 1, &v));
    if (v) {
        int32_t ids[16];
        size_t n = 0;
        CHECK_OK(attn_vocab_encode(v, "ab ab", 5, ids, 16, &n));
        CHECK(n == 2 && ids[0] == 8 && ids[1] == 9, "'ab ab' -> %zu ids [%d, %d], expected [8, 9]",
              n, n > 0 ? ids[0] : -1, n > 1 ? ids[1] : -1);
        CHECK(!strcmp(attn_vocab_piece(v, 9), " ab"), "piece 9 '%s'", attn_vocab_piece(v, 9));
        /* Two spaces: the first is a chunk of its own. */
        CHECK_OK(attn_vocab_encode(v, "ab  abc", 7, ids, 16, &n));
        CHECK(n == 4 && ids[0] == 8 && ids[1] == 4 && ids[2] == 9 && ids[3] == 7,
              "'ab  abc' -> %zu ids", n);
        CHECK(round_trip(v, "  ab  ab c ", NULL), "spaces round trip");
        attn_vocab_free(v);
    }
    /* Ties: chunks "xy", " yx" x2, " xy"; ids ' ' 4, x 5, y 6. Counts:
     * (x,y) 2, (' ',y) 2, (y,x) 2, (' ',x) 1. The tie goes to the smallest
     * (left, right): (4, 6) -> 7 " y". Then (x,y) 2 and (" y",x) 2 tie:
     * (5, 6) -> 8. Then (7, 5) -> 9 " yx"; (' ', xy) occurs once. */
    const char *t2[] = {"xy yx xy yx"};
    const int32_t m2[3][2] = {{4, 6}, {5, 6}, {7, 5}};
    expect_merges("ties", t2, 1, 10, m2, 3);
    /* Overlaps: "aaa" merges left to right: (a,a) counted twice per chunk. */
    const char *t3[] = {"aaa aaa"};
    const int32_t m3[2][2] = {{5, 5}, {6, 5}}; /* ' ' 4, a 5; "aa" 6; "aaa" 7 */
    expect_merges("overlaps", t3, 1, 10, m3, 2);
    CHECK_OK(attn_bpe_learn(t3, 1, 10, 1, &v));
    if (v) {
        int32_t ids[16];
        size_t n = 0;
        CHECK_OK(attn_vocab_encode(v, "aaaa", 4, ids, 16, &n));
        CHECK(n == 2 && ids[0] == 6 && ids[1] == 6, "'aaaa' -> %zu ids (expected aa aa)", n);
        CHECK_OK(attn_vocab_encode(v, "aaaaa", 5, ids, 16, &n));
        CHECK(n == 2 && ids[0] == 6 && ids[1] == 7, "'aaaaa' -> %zu ids (expected aa aaa)", n);
        attn_vocab_free(v);
    }
    /* n_merges caps the merges; 0 gives the alphabet only. */
    expect_merges("one merge", t1, 2, 1, m1, 1);
    expect_merges("no merge", t1, 2, 0, m1, 0);
    /* Merges stay inside chunks: letters, digits and punctuation apart. */
    const char *t4[] = {"a1a1a1.a1"};
    const int32_t m4[1][2] = {{0, 0}};
    expect_merges("classes", t4, 1, 10, m4, 0);
    CHECK(attn_bpe_learn(t1, 2, -1, 1, &v) == ATTN_ERR_INVALID_ARG && v == NULL, "n_merges -1");
    CHECK(attn_bpe_learn(NULL, 2, 1, 1, &v) == ATTN_ERR_INVALID_ARG, "NULL texts");
    TEST_END();
}

/* A pseudo-random sentence from a small alphabet with odd spacing. */
static void random_text(attn_rng *rng, char *out, size_t cap) {
    static const char *const pieces[] = {"the", "file", "Datei", "öffnen", "chat", "élan",
                                         "«",   "»",    ".",     ",",      "42",   "7",
                                         "…",   "’s",   "x",     "-"};
    size_t o = 0;
    const int words = 1 + (int)attn_rng_next_below(rng, 12);
    for (int w = 0; w < words; w++) {
        int spaces = (int)attn_rng_next_below(rng, 4) == 0 ? 2 : (int)attn_rng_next_below(rng, 2);
        for (int s = 0; s < spaces && o + 1 < cap; s++) out[o++] = ' ';
        const char *p = pieces[attn_rng_next_below(rng, 16)];
        size_t k = strlen(p);
        if (o + k + 1 >= cap) break;
        memcpy(out + o, p, k);
        o += k;
    }
    out[o] = '\0';
}

static void test_bpe_round_trip(void) {
    TEST_BEGIN("text/bpe_round_trip");
    enum { N = 2000 };
    static char corpus[N][160];
    const char *texts[N], *reversed[N];
    attn_rng rng;
    attn_rng_init(&rng, 11);
    for (int i = 0; i < N; i++) {
        random_text(&rng, corpus[i], sizeof corpus[i]);
        texts[i] = corpus[i];
        reversed[N - 1 - i] = corpus[i];
    }
    attn_vocab *v = NULL, *r = NULL, *w = NULL;
    CHECK_OK(attn_bpe_learn(texts, N, 200, 1, &v));
    CHECK_OK(attn_bpe_learn(reversed, N, 200, 1, &r));
    if (!v || !r) {
        attn_vocab_free(v);
        attn_vocab_free(r);
        TEST_END();
        return;
    }
    CHECK(attn_bpe_merge_count(v) > 20, "only %d merges learned", attn_bpe_merge_count(v));
    /* The order of the texts does not matter. */
    CHECK(attn_bpe_merge_count(v) == attn_bpe_merge_count(r), "merges %d vs %d reversed",
          attn_bpe_merge_count(v), attn_bpe_merge_count(r));
    for (int k = 0; k < attn_bpe_merge_count(v) && k < attn_bpe_merge_count(r); k++) {
        int32_t a, b, c, d;
        attn_bpe_merge(v, k, &a, &b);
        attn_bpe_merge(r, k, &c, &d);
        if (a != c || b != d) {
            CHECK(0, "merge %d differs when the texts are reversed", k);
            break;
        }
    }
    /* Whole words became tokens: " file" and " Datei" are frequent. */
    CHECK(attn_vocab_find(v, " file") >= 0 && attn_vocab_find(v, " öffnen") >= 0,
          "' file' or ' öffnen' not learned");
    /* Exact round trips, on the corpus and on new texts of its alphabet;
     * fewer tokens than characters. */
    size_t tokens = 0, chars = 0;
    int failures = 0;
    for (int i = 0; i < N + 500; i++) {
        char fresh[160];
        const char *t = texts[i % N];
        if (i >= N) {
            random_text(&rng, fresh, sizeof fresh);
            t = fresh;
        }
        size_t n = 0;
        if (!round_trip(v, t, &n)) {
            if (failures++ < 3) CHECK(0, "'%s' does not round-trip", t);
        }
        tokens += n;
        chars += strlen(t);
    }
    CHECK(failures == 0, "%d texts do not round-trip", failures);
    CHECK(tokens * 2 < chars, "%zu tokens for %zu bytes: BPE should compress", tokens, chars);
    /* Save, load: the same merges and the same encodings. */
    char path[800];
    snprintf(path, sizeof path, "%s/bpe.vocab", tmp_dir);
    CHECK_OK(attn_vocab_save(v, path));
    CHECK_OK(attn_vocab_load(path, &w));
    if (w) {
        CHECK(attn_vocab_kind_of(w) == ATTN_VOCAB_BPE && attn_vocab_size(w) == attn_vocab_size(v),
              "loaded: kind %d size %d", attn_vocab_kind_of(w), attn_vocab_size(w));
        for (int i = 0; i < 200; i++) {
            int32_t a[256], b[256];
            size_t na = 0, nb = 0;
            attn_vocab_encode(v, texts[i], strlen(texts[i]), a, 256, &na);
            attn_vocab_encode(w, texts[i], strlen(texts[i]), b, 256, &nb);
            if (na != nb || memcmp(a, b, na * sizeof a[0]) != 0) {
                CHECK(0, "'%s' encodes differently after save and load", texts[i]);
                break;
            }
        }
        for (int i = 0; i < attn_vocab_size(v); i++)
            if (strcmp(attn_vocab_piece(v, i), attn_vocab_piece(w, i)) != 0) {
                CHECK(0, "piece %d differs after load", i);
                break;
            }
    }
    attn_vocab_free(w);
    attn_vocab_free(r);
    attn_vocab_free(v);
    TEST_END();
}

/* Writes code point cp (< 0x800) as UTF-8 at out; returns its length. */
static int attn__test_utf8(int cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

static void expect_bad_vocab(const char *what, const char *text, const char *phrase) {
    char path[800];
    snprintf(path, sizeof path, "%s/bad.vocab", tmp_dir);
    if (write_file(path, text, strlen(text)) != 0) {
        CHECK(0, "cannot write %s", path);
        return;
    }
    attn_vocab *v = (attn_vocab *)path; /* must be reset to NULL */
    attn_status st = attn_vocab_load(path, &v);
    CHECK(st == ATTN_ERR_FORMAT && v == NULL && strstr(attn_last_error(), phrase) != NULL,
          "%s: %s '%s', expected a format error with '%s'", what, attn_status_str(st),
          attn_last_error(), phrase);
}

static void test_vocab_files(void) {
    TEST_BEGIN("text/vocab_files");
    expect_bad_vocab("not a vocabulary", "hello\n", "line 1");
    expect_bad_vocab("version 2", "attn-vocab 2 char 1 0\n61\n", "line 1");
    expect_bad_vocab("char with merges", "attn-vocab 1 char 2 1\n61\n62\n4 5\n", "line 1");
    expect_bad_vocab("missing alphabet", "attn-vocab 1 char 2 0\n61\n", "line 3");
    expect_bad_vocab("not increasing", "attn-vocab 1 char 2 0\n62\n61\n", "line 3");
    expect_bad_vocab("surrogate", "attn-vocab 1 char 1 0\nD800\n", "line 2");
    expect_bad_vocab("not hex", "attn-vocab 1 char 1 0\nzz\n", "line 2");
    /* plain hex digits only: strtoul would take 0x, a sign or spaces */
    expect_bad_vocab("0x prefix", "attn-vocab 1 char 2 0\n60\n0x61\n",
                     "line 3: '0x61' is not plain hex digits");
    expect_bad_vocab("leading space", "attn-vocab 1 char 1 0\n 61\n", "line 2: ' 61' is not plain hex");
    expect_bad_vocab("sign", "attn-vocab 1 char 1 0\n+61\n", "line 2: '+61' is not plain hex");
    expect_bad_vocab("hex digits then text", "attn-vocab 1 char 1 0\n61 a\n", "line 2: '61 a'");
    expect_bad_vocab("a code point over 32 bits", "attn-vocab 1 char 1 0\n100000061\n", "line 2");
    expect_bad_vocab("merge of a special", "attn-vocab 1 bpe 2 1\n61\n62\n3 4\n", "line 4");
    expect_bad_vocab("merge of a later token", "attn-vocab 1 bpe 2 1\n61\n62\n4 6\n", "line 4");
    expect_bad_vocab("repeated merge", "attn-vocab 1 bpe 2 2\n61\n62\n4 5\n4 5\n",
                     "bad.vocab: line 5: merge 2 (4 5) repeats");
    expect_bad_vocab("trailing text", "attn-vocab 1 bpe 2 1\n61\n62\n4 5\nextra\n", "after");
    { /* a memory bomb: merge k joins token k - 1 with itself, doubling the
       * piece each time (40 merges would ask for 2^41 bytes): refused at
       * the first piece over 1024 bytes, merge 11 */
        char bomb[1024];
        int n = snprintf(bomb, sizeof bomb, "attn-vocab 1 bpe 1 40\n61\n");
        for (int k = 0; k < 40; k++) n += snprintf(bomb + n, sizeof bomb - (size_t)n, "%d %d\n", 4 + k, 4 + k);
        /* the file and the merge's line named (header, 1 character, then
         * merge 11 on line 13); the bytes so far counted before the
         * buffer is freed: 4 specials 24, 'a' 2, pieces of 2..1024 bytes
         * with their NULs 2046 + 10 */
        expect_bad_vocab("doubling merges", bomb,
                         "bad.vocab: line 13: merge 11 (14 14) makes a piece of 2048 bytes "
                         "(2082 bytes of pieces so far)");
    }
    /* A valid hand-written file: 'a' 'b', merge (a, b). */
    char path[800];
    snprintf(path, sizeof path, "%s/good.vocab", tmp_dir);
    const char good[] = "attn-vocab 1 bpe 2 1\n61\ta\n62\n4 5\n";
    CHECK(write_file(path, good, sizeof good - 1) == 0, "cannot write");
    attn_vocab *v = NULL;
    CHECK_OK(attn_vocab_load(path, &v));
    if (v) {
        CHECK(attn_vocab_size(v) == 7 && !strcmp(attn_vocab_piece(v, 6), "ab"),
              "size %d piece 6 '%s'", attn_vocab_size(v), attn_vocab_piece(v, 6));
        int32_t ids[8];
        size_t n = 0;
        CHECK_OK(attn_vocab_encode(v, "abab", 4, ids, 8, &n));
        CHECK(n == 2 && ids[0] == 6 && ids[1] == 6, "'abab' -> %zu ids", n);
        attn_vocab_free(v);
    }
    CHECK(attn_vocab_load("/nonexistent/attn.vocab", &v) == ATTN_ERR_IO, "missing file");
    TEST_END();

    /* saving is atomic: a save that fails part-way (a file-size limit, as
     * on a full disk) leaves the previous file whole and no temporary */
    TEST_BEGIN("text/vocab_save is atomic (the previous file survives a failed save)");
    {
        char big_text[4096];
        int n = 0;
        for (int cp = 0x100; cp < 0x100 + 600 && n < (int)sizeof big_text - 4; cp++)
            n += attn__test_utf8(cp, big_text + n);
        big_text[n] = 0;
        const char *texts[1] = {big_text};
        attn_vocab *big = NULL, *small = NULL, *back = NULL;
        CHECK_OK(attn_vocab_build_chars(texts, 1, 1, &big));
        CHECK_OK(attn_vocab_load(path, &small)); /* good.vocab: 'a' 'b', merge (a, b) */
        char dst[800];
        snprintf(dst, sizeof dst, "%s/atomic.vocab", tmp_dir);
        if (big && small && attn_vocab_save(small, dst) == ATTN_OK) {
            struct rlimit old_lim, lim;
            void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
            CHECK(getrlimit(RLIMIT_FSIZE, &old_lim) == 0, "getrlimit");
            lim = old_lim;
            lim.rlim_cur = 512; /* the big vocabulary takes about 6 KB */
            CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
            const attn_status st = attn_vocab_save(big, dst);
            setrlimit(RLIMIT_FSIZE, &old_lim);
            signal(SIGXFSZ, old_sig);
            CHECK(st == ATTN_ERR_IO, "a save past the file-size limit: %s (%s)",
                  attn_status_str(st), attn_last_error());
            CHECK_OK(attn_vocab_load(dst, &back));
            CHECK(back && attn_vocab_size(back) == attn_vocab_size(small),
                  "the previous file did not survive: size %d, expected %d",
                  back ? attn_vocab_size(back) : -1, attn_vocab_size(small));
            char tmp[840];
            snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dst, (long)getpid());
            CHECK(access(tmp, F_OK) != 0, "temporary file %s left behind", tmp);
        } else {
            CHECK(0, "setting up: %s", attn_last_error());
        }
        attn_vocab_free(big), attn_vocab_free(small), attn_vocab_free(back);
    }
    TEST_END();
}

/* ---- the real data set, when it has been built ----------------------------- */

static void test_gettext_real(void) {
    const char *dir = getenv("ATTN_GETTEXT_DIR");
    if (!dir || !dir[0]) dir = "data/gettext";
    char path[800];
    snprintf(path, sizeof path, "%s/en-de/train.tsv", dir);
    if (access(path, R_OK) != 0) {
        test_skip("text/gettext_real", "%s missing (scripts/get_gettext_data.sh builds it)", path);
        return;
    }
    TEST_BEGIN("text/gettext_real");
    static const char *const langs[2] = {"de", "fr"};
    for (int l = 0; l < 2; l++) {
        int64_t counts[3] = {0, 0, 0};
        for (int sp = 0; sp < ATTN_SPLIT_COUNT; sp++) {
            snprintf(path, sizeof path, "%s/en-%s/%s.tsv", dir, langs[l],
                     attn_data_split_name((attn_data_split)sp));
            attn_pairs p;
            if (attn_pairs_load(path, &p) != ATTN_OK) {
                CHECK(0, "cannot read %s: %s", path, attn_last_error());
                continue;
            }
            counts[sp] = p.n;
            int bad = 0;
            for (int64_t i = 0; i < p.n && bad < 3; i++) {
                const size_t ls = strlen(p.src[i]), lt = strlen(p.tgt[i]);
                if (attn_data_split_of(p.src[i], ls) != (attn_data_split)sp) {
                    CHECK(0, "%s: '%s' belongs to another split", path, p.src[i]);
                    bad++;
                }
                char *a = malloc(ls + lt + 2), *b = malloc(ls + lt + 2);
                if (a && b &&
                    (attn_clean_pair(p.src[i], p.tgt[i], a, b, ls + lt + 2) != ATTN_CLEAN_OK ||
                     strcmp(a, p.src[i]) || strcmp(b, p.tgt[i]))) {
                    CHECK(0, "%s: '%s' -> '%s' is not clean", path, p.src[i], p.tgt[i]);
                    bad++;
                }
                free(a);
                free(b);
                if (i > 0 && strcmp(p.src[i], p.src[i - 1]) == 0) {
                    CHECK(0, "%s: '%s' appears twice", path, p.src[i]);
                    bad++;
                }
            }
            attn_pairs_free(&p);
        }
        const int64_t total = counts[0] + counts[1] + counts[2];
        CHECK(total >= 5000, "en-%s has only %lld pairs", langs[l], (long long)total);
        CHECK(counts[0] > 0.88 * (double)total && counts[1] > 0.04 * (double)total &&
                  counts[2] > 0.04 * (double)total,
              "en-%s splits %lld / %lld / %lld", langs[l], (long long)counts[0],
              (long long)counts[1], (long long)counts[2]);
    }
    TEST_END();
}

static void rm_tree(const char *path) {
    char cmd[800];
    /* The directory was made by mkdtemp above: remove what the tests wrote. */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (strstr(path, "attn_test_text_") && !strchr(path, '\'')) {
        int rc = system(cmd);
        (void)rc;
    }
}

void suite_text(void) {
    if (tmp_open() != 0) {
        TEST_BEGIN("text/tmp");
        CHECK(0, "cannot create a temporary directory under $TMPDIR or /tmp");
        TEST_END();
        return;
    }
    test_split_rule();
    test_dates_known();
    test_dates_stream();
    test_dates_splits();
    test_mo_parse();
    test_mo_malformed();
    test_clean_rules();
    test_gettext_build();
    test_pairs_load();
    test_vocab_chars();
    test_bpe_known();
    test_bpe_round_trip();
    test_vocab_files();
    test_gettext_real();
    rm_tree(tmp_dir);
}
