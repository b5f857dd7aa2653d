/* test_explorer.c: the attention explorer page writer (include/attn/explorer.h).
 *
 * The page is read back: every marker of the template replaced, the title
 * escaped for HTML, the data a JSON object whose strings cannot close the
 * <script> element (hostile token labels), the quantised weights decoded from
 * base64 equal to round(w * 10^decimals) for every weight, masks as given,
 * the automatic precision, and each invalid input refused with a message that
 * names it. What the page does with the data is tested in a browser
 * (tests/explorer_test.sh). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

static char ex_dir[512];

static char *ex_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)(n > 0 ? n : 0) + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[n] = 0;
        if (len) *len = (size_t)n;
    }
    return p;
}

static int count_str(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* Decodes base64 from s up to the closing quote into out (cap bytes);
 * returns the byte count, or -1 on a character outside the alphabet. */
static long b64_decode(const char *s, unsigned char *out, size_t cap) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned v = 0;
    int bits = 0;
    size_t n = 0;
    for (; *s && *s != '"'; s++) {
        if (*s == '=') continue;
        const char *p = strchr(tab, *s);
        if (!p || !*s) return -1;
        v = v << 6 | (unsigned)(p - tab);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n < cap) out[n] = (unsigned char)(v >> bits & 0xFF);
            n++;
        }
    }
    return (long)n;
}

/* The value of key (e.g. "\"w\":\"") in the k-th map's JSON: the text right after it. */
static const char *nth_after(const char *s, const char *key, int k) {
    const char *p = s;
    for (int i = 0; i <= k; i++) {
        p = strstr(p, key);
        if (!p) return NULL;
        p += strlen(key);
    }
    return p;
}

static void fill_weights(float *w, int L, int H, int R, int C, unsigned seed) {
    /* softmax rows of pseudo-random scores: each row sums to 1 */
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++)
            for (int r = 0; r < R; r++) {
                float *row = w + (((size_t)l * H + h) * R + r) * C;
                double sum = 0;
                for (int c = 0; c < C; c++) {
                    seed = seed * 1103515245u + 12345u;
                    row[c] = (float)exp((double)(seed >> 16 & 0x7FFF) / 32768.0 * 4.0);
                    sum += row[c];
                }
                for (int c = 0; c < C; c++) row[c] = (float)(row[c] / sum);
            }
}

static void test_page_contents(void) {
    TEST_BEGIN("explorer/page_contents_and_quantised_weights");
    enum { L = 2, H = 3, R = 4, C = 5, RC = 3 };
    static float w0[L * H * R * C], w1[L * H * R * RC];
    fill_weights(w0, L, H, R, C, 7);
    fill_weights(w1, L, H, R, RC, 11);
    w0[0] = 0.0f;
    w0[1] = 1.0f;
    w0[2] = 0.0005f; /* rounds to 0 or 1 thousandth: either is within the stated precision */
    const char *rl[R] = {"</script><b>x", "\"q\"", "a\nb", "\xff\xfe"};
    const char *cl[C] = {"k0", "<!--", "\\", " sp ", "\xc3\xa9t\xc3\xa9"};
    const char *cl1[RC] = {"s0", "s1", "s2"};
    uint8_t mask[R * C];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) mask[r * C + c] = c <= r;
    attn_explorer_map maps[2] = {{0}, {0}};
    maps[0].name = "self <attention>";
    maps[0].kind = ATTN_EXPLORER_SELF;
    maps[0].layers = L;
    maps[0].heads = H;
    maps[0].rows = R;
    maps[0].cols = C;
    maps[0].weights = w0;
    maps[0].row_labels = rl;
    maps[0].col_labels = cl;
    maps[0].mask = mask;
    maps[0].mask_name = "causal";
    maps[1] = maps[0];
    maps[1].name = "cross";
    maps[1].kind = ATTN_EXPLORER_CROSS;
    maps[1].cols = RC;
    maps[1].weights = w1;
    maps[1].col_labels = cl1;
    maps[1].mask = NULL;
    attn_explorer_page page = {"A <title> & more", "sub", maps, 2, 0};
    char path[600];
    snprintf(path, sizeof path, "%s/page.html", ex_dir);
    CHECK(attn_explorer_decimals(&page) == 3, "automatic precision %d for a small page", attn_explorer_decimals(&page));
    CHECK_OK(attn_explorer_write(path, &page));
    size_t len = 0;
    char *s = ex_slurp(path, &len);
    CHECK(s != NULL, "cannot read %s back", path);
    if (!s) {
        TEST_END();
        return;
    }
    CHECK(!strncmp(s, "<!DOCTYPE html>", 15), "the page does not start with a doctype");
    const char *markers[] = {"@ATTN_TITLE@", "@ATTN_CSS@", "@ATTN_JS@", "@ATTN_DATA@"};
    for (int i = 0; i < 4; i++) CHECK(!strstr(s, markers[i]), "marker %s left in the page", markers[i]);
    CHECK(strstr(s, "<title>A &lt;title&gt; &amp; more</title>") != NULL, "title not escaped for HTML");
    /* two scripts (data, code), and nothing in the data closes one early */
    CHECK(count_str(s, "</script") == 2, "%d '</script' in the page, expected 2", count_str(s, "</script"));
    CHECK(count_str(s, "<!--") == 1, "'<!--' in the data (only the template's comment may have one)");
    CHECK(strstr(s, "window.attnExplorer") && strstr(s, "#zoom-grid"), "the JavaScript or CSS is missing");
    const char *data = strstr(s, "<script id=\"attn-data\" type=\"application/json\">");
    CHECK(data != NULL, "no data script");
    if (data) {
        CHECK(strstr(data, "\"decimals\":3") != NULL, "decimals not 3");
        CHECK(strstr(data, "\"\\u003c/script>\\u003cb>x\"") != NULL, "hostile label not escaped");
        CHECK(strstr(data, "\"a\\nb\"") && strstr(data, "\"\\ufffd\\ufffd\"") && strstr(data, "\"\\\\\""),
              "newline, invalid UTF-8 or backslash labels not escaped as JSON");
        CHECK(strstr(data, "\"maskName\":\"causal\"") && count_str(data, "\"mask\":\"") == 1,
              "the mask of map 0 only");
        CHECK(strstr(data, "\"kind\":\"self\"") && strstr(data, "\"kind\":\"cross\""), "kinds");
        /* the weights of both maps and the mask, decoded */
        static unsigned char buf[2 * L * H * R * C + 8];
        for (int k = 0; k < 2; k++) {
            const float *w = k ? w1 : w0;
            const int n = L * H * R * (k ? RC : C);
            const char *b = nth_after(data, "\"w\":\"", k);
            long got = b ? b64_decode(b, buf, sizeof buf) : -1;
            CHECK(got == 2L * n, "map %d: %ld weight bytes, expected %d", k, got, 2 * n);
            int bad = 0;
            for (int i = 0; i < n && got == 2L * n; i++) {
                const long q = buf[2 * i] | (long)buf[2 * i + 1] << 8;
                if (fabs((double)q / 1000.0 - (double)w[i]) > 0.0005 + 1e-7) {
                    if (bad++ < 3) CHECK(0, "map %d weight %d: %ld thousandths for %.7f", k, i, q, (double)w[i]);
                }
            }
            CHECK(bad == 0, "map %d: %d weights off by more than 0.0005", k, bad);
        }
        const char *mb = nth_after(data, "\"mask\":\"", 0);
        long got = mb ? b64_decode(mb, buf, sizeof buf) : -1;
        CHECK(got == R * C && !memcmp(buf, mask, R * C), "the mask did not come back (%ld bytes)", got);
    }
    free(s);
    /* two decimals: one byte a weight */
    page.decimals = 2;
    CHECK_OK(attn_explorer_write(path, &page));
    s = ex_slurp(path, &len);
    if (s) {
        static unsigned char buf[L * H * R * C + 8];
        CHECK(strstr(s, "\"decimals\":2") != NULL, "decimals not 2");
        const char *b = nth_after(s, "\"w\":\"", 0);
        long got = b ? b64_decode(b, buf, sizeof buf) : -1;
        CHECK(got == L * H * R * C, "%ld bytes for %d weights", got, L * H * R * C);
        int bad = 0;
        for (int i = 0; i < L * H * R * C && got == L * H * R * C; i++)
            if (fabs(buf[i] / 100.0 - (double)w0[i]) > 0.005 + 1e-7) bad++;
        CHECK(bad == 0, "%d weights off by more than 0.005", bad);
        free(s);
    }
    /* the weights as text */
    char tsv[600];
    snprintf(tsv, sizeof tsv, "%s/w.tsv", ex_dir);
    CHECK_OK(attn_explorer_write_weights(tsv, &page));
    s = ex_slurp(tsv, &len);
    if (s) {
        CHECK(!strncmp(s, "map\tlayer\thead\trow\tcol\tweight\n", 30), "header");
        CHECK(count_str(s, "\n") == 1 + L * H * R * (C + RC), "%d lines", count_str(s, "\n"));
        /* map 0, layer 1, head 2, row 3, column 4: the last weight of map 0 */
        char want[96];
        snprintf(want, sizeof want, "\n0\t1\t2\t3\t4\t%.9g\n", (double)w0[L * H * R * C - 1]);
        CHECK(strstr(s, want) != NULL, "line '%s' missing", want + 1);
        free(s);
    }
    TEST_END();
}

static void test_auto_precision(void) {
    TEST_BEGIN("explorer/automatic_precision");
    /* just over the 3-decimal budget: 2 decimals */
    const int L = 1, H = 1, R = 1200, C = ATTN_EXPLORER_AUTO3_WEIGHTS / 1200 + 1;
    float *w = calloc((size_t)R * C, sizeof *w);
    const char **rl = calloc((size_t)R, sizeof *rl), **cl = calloc((size_t)C, sizeof *cl);
    CHECK(w && rl && cl, "out of memory");
    if (w && rl && cl) {
        for (int i = 0; i < R; i++) rl[i] = "r";
        for (int i = 0; i < C; i++) cl[i] = "c";
        attn_explorer_map m = {0};
        m.name = "big";
        m.layers = L;
        m.heads = H;
        m.rows = R;
        m.cols = C;
        m.weights = w;
        m.row_labels = rl;
        m.col_labels = cl;
        attn_explorer_page page = {"t", NULL, &m, 1, 0};
        CHECK(attn_explorer_decimals(&page) == 2, "%d decimals for %d weights", attn_explorer_decimals(&page), R * C);
        m.cols = C - 2;
        CHECK(attn_explorer_decimals(&page) == 3, "%d decimals for %d weights", attn_explorer_decimals(&page),
              R * (C - 2));
    }
    free(w);
    free(rl);
    free(cl);
    TEST_END();
}

static void test_errors(void) {
    TEST_BEGIN("explorer/invalid_input_refused_with_a_message");
    enum { L = 2, H = 1, R = 3, C = 4 };
    float w[L * H * R * C];
    fill_weights(w, L, H, R, C, 3);
    const char *rl[R] = {"a", "b", "c"}, *cl[C] = {"w", "x", "y", "z"};
    attn_explorer_map m = {0};
    m.name = "m";
    m.layers = L;
    m.heads = H;
    m.rows = R;
    m.cols = C;
    m.weights = w;
    m.row_labels = rl;
    m.col_labels = cl;
    attn_explorer_page page = {"t", NULL, &m, 1, 0};
    char path[600];
    snprintf(path, sizeof path, "%s/err.html", ex_dir);
    /* a NaN at layer 1, row 2, column 3 */
    const float keep = w[((1 * H + 0) * R + 2) * C + 3];
    w[((1 * H + 0) * R + 2) * C + 3] = NAN;
    CHECK(attn_explorer_write(path, &page) == ATTN_ERR_INVALID_ARG, "NaN accepted");
    CHECK(strstr(attn_last_error(), "layer 1, head 0, row 2, column 3"), "message '%s'", attn_last_error());
    w[((1 * H + 0) * R + 2) * C + 3] = 1.5f;
    CHECK(attn_explorer_write(path, &page) == ATTN_ERR_INVALID_ARG && strstr(attn_last_error(), "1.5"),
          "1.5 accepted or not named: '%s'", attn_last_error());
    w[((1 * H + 0) * R + 2) * C + 3] = -0.25f;
    CHECK(attn_explorer_write(path, &page) == ATTN_ERR_INVALID_ARG, "-0.25 accepted");
    w[((1 * H + 0) * R + 2) * C + 3] = keep;
    CHECK(access(path, F_OK) != 0, "a refused page was written");
    m.rows = 0;
    CHECK(attn_explorer_write(path, &page) == ATTN_ERR_INVALID_ARG && strstr(attn_last_error(), "R 0"),
          "0 rows: '%s'", attn_last_error());
    m.rows = R;
    /* 64 x 64 x 4096 x 4096 weights are claimed: refused before any is read */
    m.layers = ATTN_EXPLORER_MAX_LAYERS;
    m.heads = ATTN_EXPLORER_MAX_HEADS;
    m.rows = m.cols = ATTN_EXPLORER_MAX_TOKENS;
    CHECK(attn_explorer_write(path, &page) == ATTN_ERR_INVALID_ARG && strstr(attn_last_error(), "fit a page"),
          "too many weights: '%s'", attn_last_error());
    m.heads = H;
    m.rows = R;
    m.cols = C;
    m.layers = ATTN_EXPLORER_MAX_LAYERS + 1;
    CHECK(attn_explorer_write(path, &page) == ATTN_ERR_INVALID_ARG, "65 layers accepted");
    m.layers = L;
    m.kind = ATTN_EXPLORER_ALIGNMENT;
    CHECK(attn_explorer_write(path, &page) == ATTN_ERR_INVALID_ARG && strstr(attn_last_error(), "alignment"),
          "an alignment of 2 layers: '%s'", attn_last_error());
    m.kind = (attn_explorer_kind)7;
    CHECK(attn_explorer_write(path, &page) == ATTN_ERR_INVALID_ARG, "kind 7 accepted");
    m.kind = ATTN_EXPLORER_SELF;
    rl[1] = NULL;
    CHECK(attn_explorer_write(path, &page) == ATTN_ERR_INVALID_ARG && strstr(attn_last_error(), "row label 1"),
          "NULL label: '%s'", attn_last_error());
    rl[1] = "b";
    page.decimals = 4;
    CHECK(attn_explorer_write(path, &page) == ATTN_ERR_INVALID_ARG && strstr(attn_last_error(), "decimals 4"),
          "decimals 4: '%s'", attn_last_error());
    page.decimals = 0;
    page.n_maps = 0;
    CHECK(attn_explorer_write(path, &page) == ATTN_ERR_INVALID_ARG, "no maps accepted");
    CHECK(attn_explorer_decimals(&page) == 0, "decimals of an invalid page");
    page.n_maps = 1;
    CHECK(attn_explorer_write(NULL, &page) == ATTN_ERR_INVALID_ARG, "NULL path accepted");
    CHECK(attn_explorer_write(path, NULL) == ATTN_ERR_INVALID_ARG, "NULL page accepted");
    page.title = NULL;
    CHECK(attn_explorer_write(path, &page) == ATTN_ERR_INVALID_ARG, "NULL title accepted");
    page.title = "t";
    char bad[700];
    snprintf(bad, sizeof bad, "%s/no/such/dir/p.html", ex_dir);
    CHECK(attn_explorer_write(bad, &page) == ATTN_ERR_IO && strstr(attn_last_error(), "attn_explorer_write"),
          "missing folder: '%s'", attn_last_error());
    CHECK_OK(attn_explorer_write(path, &page));
    TEST_END();
}

void suite_explorer(void) {
    const char *base = getenv("TMPDIR");
    if (!base || !base[0]) base = "/tmp";
    snprintf(ex_dir, sizeof ex_dir, "%s/attn_test_explorer_XXXXXX", base);
    if (!mkdtemp(ex_dir)) {
        TEST_BEGIN("explorer/tmpdir");
        CHECK(0, "cannot create a temporary directory under $TMPDIR or /tmp");
        TEST_END();
        return;
    }
    test_page_contents();
    test_auto_precision();
    test_errors();
    char p[700];
    const char *names[] = {"page.html", "w.tsv", "err.html"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", ex_dir, names[i]);
        remove(p);
    }
    rmdir(ex_dir);
}
