/* test_viz.c: the SVG writer (include/attn/viz.h) and the progress line and
 * JSONL logger (include/attn/progress.h).
 *
 * Every SVG written is read back and run through a small strict XML checker
 * (xml_check below): a prolog, one root element, properly nested and closed
 * tags, well-formed names, quoted and unique attributes, no raw '<' or '&'
 * outside markup except in entities (&amp; &lt; &gt; &quot; &apos; &#N;
 * &#xN;), valid UTF-8 without the control characters XML forbids. It also
 * returns the text content with entities decoded, so tests can check that a
 * hostile label comes out as the same visible text.
 */
#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

static char tmp_dir[512];

static int tmp_open(void) {
    const char *base = getenv("TMPDIR");
    if (!base || !base[0]) base = "/tmp";
    snprintf(tmp_dir, sizeof tmp_dir, "%s/attn_test_viz_XXXXXX", base);
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static void tmp_path(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", tmp_dir, name);
}

/* The whole file (NUL-terminated, malloc'ed) or NULL. */
static char *slurp(const char *path, size_t *len) {
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

/* Number of directory entries of tmp_dir whose name contains ".tmp." (left
 * over temporary files of an atomic write). */
static int leftover_tmp_files(void) {
    DIR *d = opendir(tmp_dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

/* ---- a strict XML well-formedness checker ------------------------------------------ */

typedef struct xml_info {
    char err[256];   /* "" when well-formed */
    char *text;      /* decoded character data, each text node followed by '\n' */
    size_t text_len;
    int n_elements;
    char root[32];
} xml_info;

static void text_add(xml_info *x, const char *s, size_t n) {
    char *p = realloc(x->text, x->text_len + n + 2);
    if (!p) return;
    x->text = p;
    memcpy(x->text + x->text_len, s, n);
    x->text_len += n;
    x->text[x->text_len] = 0;
}

static int name_start(unsigned char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':'; }
static int name_char(unsigned char c) {
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* Valid UTF-8 without C0 controls other than \t \n \r: returns the offset of
 * the first bad byte, or -1. */
static long utf8_bad(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
                   : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        if (!len || i + len > n) return (long)i;
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return (long)i;
        if (c == 0x7F) return (long)i;
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
        for (size_t j = 1; j < len; j++) {
            unsigned d = s[i + j];
            if (d < (j == 1 ? lo : 0x80u) || d > (j == 1 ? hi : 0xBFu)) return (long)i;
        }
        if (len == 2 && c == 0xC2 && s[i + 1] <= 0x9F) return (long)i; /* C1 controls */
        if (len == 3 && c == 0xEF && s[i + 1] == 0xBF && s[i + 2] >= 0xBE) return (long)i;
        i += len;
    }
    return -1;
}

/* Decodes an entity at s (s[0] == '&'); returns its length and appends its
 * text to out (UTF-8), or 0 if it is not a valid entity. */
static size_t entity(const char *s, char *out, size_t *out_len) {
    static const struct {
        const char *name, *text;
    } ents[] = {{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}};
    for (size_t i = 0; i < sizeof ents / sizeof ents[0]; i++) {
        size_t n = strlen(ents[i].name);
        if (strncmp(s, ents[i].name, n) == 0) {
            *out_len = strlen(ents[i].text);
            memcpy(out, ents[i].text, *out_len);
            return n;
        }
    }
    if (s[1] == '#') {
        int hex = s[2] == 'x';
        const char *p = s + 2 + hex;
        char *end;
        long v = strtol(p, &end, hex ? 16 : 10);
        if (end == p || *end != ';' || v <= 0 || v > 0x10FFFF) return 0;
        *out_len = 0; /* numeric references: validated, not decoded (we write none) */
        return (size_t)(end - s) + 1;
    }
    return 0;
}

static void xml_check(const char *doc, size_t n, xml_info *x) {
    memset(x, 0, sizeof *x);
    long bad = utf8_bad((const unsigned char *)doc, n);
    if (bad >= 0) {
        snprintf(x->err, sizeof x->err, "invalid UTF-8 or forbidden character at byte %ld", bad);
        return;
    }
    const char *p = doc, *end = doc + n;
    if (strncmp(p, "<?xml ", 6) == 0) {
        const char *q = strstr(p, "?>");
        if (!q) {
            snprintf(x->err, sizeof x->err, "unterminated prolog");
            return;
        }
        p = q + 2;
    }
    char stack[64][32];
    int depth = 0, roots = 0;
    while (p < end) {
        if (*p == '<') {
            if (p[1] == '/') { /* end tag */
                const char *q = p + 2;
                size_t k = 0;
                char name[32];
                while (q < end && name_char((unsigned char)*q) && k < 31) name[k++] = *q++;
                name[k] = 0;
                while (q < end && (*q == ' ' || *q == '\n')) q++;
                if (q >= end || *q != '>') {
                    snprintf(x->err, sizeof x->err, "bad end tag at byte %ld", (long)(p - doc));
                    return;
                }
                if (depth == 0 || strcmp(stack[depth - 1], name) != 0) {
                    snprintf(x->err, sizeof x->err, "end tag </%s> at byte %ld does not close <%s>",
                             name, (long)(p - doc), depth ? stack[depth - 1] : "(nothing)");
                    return;
                }
                depth--;
                p = q + 1;
                continue;
            }
            /* start or empty-element tag */
            const char *q = p + 1;
            if (q >= end || !name_start((unsigned char)*q)) {
                snprintf(x->err, sizeof x->err, "bad tag name at byte %ld", (long)(p - doc));
                return;
            }
            char name[32];
            size_t k = 0;
            while (q < end && name_char((unsigned char)*q)) {
                if (k < 31) name[k++] = *q;
                q++;
            }
            name[k] = 0;
            char attrs[32][32];
            int n_attrs = 0;
            for (;;) {
                int space = 0;
                while (q < end && (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r')) {
                    q++;
                    space = 1;
                }
                if (q >= end) {
                    snprintf(x->err, sizeof x->err, "unterminated tag <%s>", name);
                    return;
                }
                if (*q == '>' || (q[0] == '/' && q + 1 < end && q[1] == '>')) break;
                if (!space || !name_start((unsigned char)*q)) {
                    snprintf(x->err, sizeof x->err, "bad attribute in <%s> at byte %ld", name,
                             (long)(q - doc));
                    return;
                }
                char an[32];
                size_t ak = 0;
                while (q < end && name_char((unsigned char)*q)) {
                    if (ak < 31) an[ak++] = *q;
                    q++;
                }
                an[ak] = 0;
                for (int i = 0; i < n_attrs; i++)
                    if (strcmp(attrs[i], an) == 0) {
                        snprintf(x->err, sizeof x->err, "duplicate attribute %s in <%s>", an, name);
                        return;
                    }
                if (n_attrs < 32) strcpy(attrs[n_attrs++], an);
                if (q + 1 >= end || q[0] != '=' || (q[1] != '"' && q[1] != '\'')) {
                    snprintf(x->err, sizeof x->err, "attribute %s of <%s> is not quoted", an, name);
                    return;
                }
                char quote = q[1];
                q += 2;
                while (q < end && *q != quote) {
                    if (*q == '<') {
                        snprintf(x->err, sizeof x->err, "raw '<' in attribute %s of <%s>", an, name);
                        return;
                    }
                    if (*q == '&') {
                        char tmp[8];
                        size_t tl;
                        size_t el = entity(q, tmp, &tl);
                        if (!el) {
                            snprintf(x->err, sizeof x->err, "bad entity in attribute %s", an);
                            return;
                        }
                        q += el;
                        continue;
                    }
                    q++;
                }
                if (q >= end) {
                    snprintf(x->err, sizeof x->err, "unterminated attribute %s", an);
                    return;
                }
                q++;
            }
            x->n_elements++;
            if (depth == 0) {
                if (roots++) {
                    snprintf(x->err, sizeof x->err, "second root element <%s>", name);
                    return;
                }
                snprintf(x->root, sizeof x->root, "%s", name);
            }
            if (*q == '/') {
                p = q + 2;
            } else {
                if (depth == 64) {
                    snprintf(x->err, sizeof x->err, "nesting too deep");
                    return;
                }
                strcpy(stack[depth++], name);
                p = q + 1;
            }
            continue;
        }
        /* character data */
        if (depth == 0) {
            if (*p != ' ' && *p != '\n' && *p != '\t' && *p != '\r') {
                snprintf(x->err, sizeof x->err, "text outside the root at byte %ld",
                         (long)(p - doc));
                return;
            }
            p++;
            continue;
        }
        const char *q = p;
        int any = 0;
        while (q < end && *q != '<') {
            if (*q == '&') {
                char tmp[8];
                size_t tl = 0;
                size_t el = entity(q, tmp, &tl);
                if (!el) {
                    snprintf(x->err, sizeof x->err, "raw '&' in text at byte %ld", (long)(q - doc));
                    return;
                }
                text_add(x, tmp, tl);
                any = 1;
                q += el;
            } else if (*q == '>' && q - doc >= 2 && q[-1] == ']' && q[-2] == ']') {
                snprintf(x->err, sizeof x->err, "']]>' in text");
                return;
            } else {
                if (*q != '\n') {
                    text_add(x, q, 1);
                    any = 1;
                }
                q++;
            }
        }
        if (any) text_add(x, "\n", 1);
        p = q;
    }
    if (depth) snprintf(x->err, sizeof x->err, "unclosed <%s>", stack[depth - 1]);
    else if (!roots) snprintf(x->err, sizeof x->err, "no root element");
}

/* Reads and checks an SVG; returns its text (caller frees) and fills info. */
static char *check_svg(const char *path, xml_info *info, size_t *len) {
    size_t n = 0;
    char *doc = slurp(path, &n);
    if (!doc) {
        memset(info, 0, sizeof *info);
        snprintf(info->err, sizeof info->err, "cannot read %s", path);
        return NULL;
    }
    xml_check(doc, n, info);
    if (!info->err[0] && strcmp(info->root, "svg") != 0)
        snprintf(info->err, sizeof info->err, "root element is <%s>, not <svg>", info->root);
    if (len) *len = n;
    return doc;
}

/* The numeric value of attribute `name` of the first element <tag ...>. */
static double attr_of(const char *doc, const char *tag, const char *name) {
    char open[40], key[40];
    snprintf(open, sizeof open, "<%s ", tag);
    snprintf(key, sizeof key, " %s=\"", name);
    const char *p = strstr(doc, open);
    if (!p) return -1;
    const char *gt = strchr(p, '>');
    const char *a = strstr(p, key);
    if (!a || (gt && a > gt)) return -1;
    return atof(a + strlen(key));
}

static int count_of(const char *doc, const char *needle) {
    int n = 0;
    for (const char *p = doc; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* ---- the checker checks itself ------------------------------------------------------- */

static void test_xml_checker(void) {
    TEST_BEGIN("viz/xml_checker_rejects_malformed");
    static const struct {
        const char *doc;
        int ok;
    } cases[] = {
        {"<svg a=\"1\"><t>x &amp; y</t></svg>", 1},
        {"<svg><t>x & y</t></svg>", 0},
        {"<svg><t>a < b</t></svg>", 0},
        {"<svg><t></svg>", 0},
        {"<svg a=\"1\" a=\"2\"/>", 0},
        {"<svg a=1/>", 0},
        {"<svg a=\"<\"/>", 0},
        {"<svg/><svg/>", 0},
        {"<svg>\x01</svg>", 0},
        {"<svg>\xff</svg>", 0},
        {"<svg><t>&#x41;&#65;</t></svg>", 1},
        {"<svg><t>&bogus;</t></svg>", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        xml_info x;
        xml_check(cases[i].doc, strlen(cases[i].doc), &x);
        CHECK((x.err[0] == 0) == cases[i].ok, "case %zu '%s': checker says '%s', expected %s", i,
              cases[i].doc, x.err, cases[i].ok ? "well-formed" : "an error");
        free(x.text);
    }
    TEST_END();
}

/* ---- heatmaps ------------------------------------------------------------------------- */

static void test_heatmap_hostile_labels(void) {
    TEST_BEGIN("viz/heatmap_escaping_hostile_labels");
    const char *rows[] = {"<script>x()</script>", "a&b", "\"q'", "日本語", "\x01\xff\xc3", "  ",
                          "Ω&amp;", "a\nb"};
    const char *cols[] = {"]]>", "<!--", "</svg>", "x", "supercalifragilisticexpialidocious"};
    float w[8 * 5];
    for (int i = 0; i < 40; i++) w[i] = (float)(i % 7) / 6.0f;
    w[3] = NAN;
    w[4] = 2.0f;  /* clamped */
    w[5] = -1.0f; /* clamped */
    attn_heatmap m = {0};
    m.weights = w;
    m.rows = 8;
    m.cols = 5;
    m.row_labels = rows;
    m.col_labels = cols;
    m.title = "T<i>tle & \"quotes\"";
    m.x_label = "source <src>";
    m.y_label = "output & more";
    m.show_values = 1;
    char path[600];
    tmp_path(path, sizeof path, "hostile.svg");
    CHECK_OK(attn_svg_heatmap(path, &m));
    xml_info x;
    size_t len = 0;
    char *doc = check_svg(path, &x, &len);
    CHECK(doc && x.err[0] == 0, "not well-formed: %s", x.err);
    if (doc && x.text) {
        /* The visible text is the labels themselves, decoded. */
        const char *want[] = {"<script>x()</script>\n", "a&b\n", "\"q'\n", "日本語\n",
                              "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\n", /* 3 x U+FFFD */
                              "\xe2\x90\xa3\xe2\x90\xa3\n",             /* two U+2423 */
                              "Ω&amp;\n", "a\xe2\x86\xb5" "b\n",      /* \n as U+21B5 */
                              "]]>\n", "<!--\n", "</svg>\n",
                              "supercalifragilisticexp\xe2\x80\xa6\n", /* 23 columns + … */
                              "T<i>tle & \"quotes\"\n", "source <src>\n", "output & more\n"};
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
            CHECK(strstr(x.text, want[i]) != NULL, "visible text lacks '%.*s'",
                  (int)strlen(want[i]) - 1, want[i]);
        /* Every weight is a cell: 40 cells + the frame + the colour bar. */
        CHECK(count_of(doc, "<rect x=") == 40 + 2, "%d rects, expected 42 (40 cells, frame, "
              "colour bar)", count_of(doc, "<rect x="));
        CHECK(strstr(doc, "fill=\"#bbbbbb\"") != NULL, "the NaN cell is not grey");
        CHECK(strstr(doc, "fill=\"#08306b\"") != NULL, "the clamped 2.0 is not the darkest blue");
        CHECK(strstr(doc, "<text") && strstr(doc, ">.33<"), "cell values not drawn");
    }
    CHECK(leftover_tmp_files() == 0, "temporary files left behind");
    free(doc);
    free(x.text);
    TEST_END();
}

static void test_heatmap_sizes(void) {
    TEST_BEGIN("viz/heatmap_sizes_1_to_200_tokens");
    static const int sides[] = {1, 2, 10, 50, 200};
    for (size_t s = 0; s < sizeof sides / sizeof sides[0]; s++) {
        int n = sides[s];
        float *w = malloc(sizeof(float) * (size_t)n * (size_t)n);
        char **lab = malloc(sizeof(char *) * (size_t)n);
        for (int i = 0; i < n; i++) {
            lab[i] = malloc(16);
            snprintf(lab[i], 16, "tok%d", i);
            for (int j = 0; j < n; j++) w[i * n + j] = i == j ? 1.0f : 0.0f;
        }
        attn_heatmap m = {0};
        m.weights = w;
        m.rows = n;
        m.cols = n;
        m.row_labels = (const char *const *)lab;
        m.col_labels = (const char *const *)lab;
        m.title = "sizes";
        m.show_values = 1;
        char path[600];
        tmp_path(path, sizeof path, "size.svg");
        CHECK_OK(attn_svg_heatmap(path, &m));
        xml_info x;
        char *doc = check_svg(path, &x, NULL);
        CHECK(doc && x.err[0] == 0, "%d tokens: not well-formed: %s", n, x.err);
        if (doc) {
            double W = attr_of(doc, "svg", "width"), H = attr_of(doc, "svg", "height");
            /* cell = clamp(560 / n, 8, 32) px */
            int cell = n <= 17 ? 32 : n >= 70 ? 8 : (int)(560.0 / n + 0.5);
            CHECK(W >= n * cell + 60 && W <= n * cell + 400 && H >= n * cell + 40 &&
                      H <= n * cell + 400,
                  "%d tokens: picture %gx%g for a %d px matrix", n, W, H, n * cell);
            char cellattr[64];
            snprintf(cellattr, sizeof cellattr, "width=\"%d\" height=\"%d\"", cell, cell);
            CHECK(count_of(doc, cellattr) >= n * n, "%d tokens: fewer than %d cells of %d px", n,
                  n * n, cell);
            CHECK(count_of(doc, "rotate(-90)") == n, "%d tokens: %d rotated column labels", n,
                  count_of(doc, "rotate(-90)"));
            /* values only in cells of at least 16 px */
            int has_values = strstr(doc, "fill=\"#fff\">1</text>") != NULL; /* on a dark cell */
            CHECK(has_values == (cell >= 16), "%d tokens: values %s with %d px cells", n,
                  has_values ? "drawn" : "missing", cell);
        }
        free(doc);
        free(x.text);
        for (int i = 0; i < n; i++) free(lab[i]);
        free(lab);
        free(w);
    }
    /* NULL labels: indices are drawn. */
    float one = 0.5f;
    attn_heatmap m = {0};
    m.weights = &one;
    m.rows = 1;
    m.cols = 1;
    char path[600];
    tmp_path(path, sizeof path, "one.svg");
    CHECK_OK(attn_svg_heatmap(path, &m));
    xml_info x;
    char *doc = check_svg(path, &x, NULL);
    CHECK(doc && x.err[0] == 0 && x.text && strstr(x.text, "0\n"), "1x1 without labels: %s",
          x.err);
    free(doc);
    free(x.text);
    TEST_END();
}

static void test_heatmap_errors(void) {
    TEST_BEGIN("viz/heatmap_errors_and_atomicity");
    char path[600];
    tmp_path(path, sizeof path, "keep.svg");
    FILE *f = fopen(path, "wb");
    fputs("old", f);
    fclose(f);
    float w[4] = {0, 1, 1, 0};
    attn_heatmap m = {0};
    m.weights = w;
    m.rows = 2;
    m.cols = 2;
    attn_heatmap bad = m;
    bad.rows = 0;
    CHECK(attn_svg_heatmap(path, &bad) == ATTN_ERR_INVALID_ARG, "rows 0 accepted");
    CHECK(strstr(attn_last_error(), "attn_svg_heatmap") && strstr(attn_last_error(), "[0, 2]"),
          "message '%s'", attn_last_error());
    bad = m;
    bad.cols = ATTN_VIZ_MAX_TOKENS + 1;
    CHECK(attn_svg_heatmap(path, &bad) == ATTN_ERR_INVALID_ARG, "too many cols accepted");
    bad = m;
    bad.weights = NULL;
    CHECK(attn_svg_heatmap(path, &bad) == ATTN_ERR_INVALID_ARG, "NULL weights accepted");
    bad = m;
    bad.vmin = 1;
    bad.vmax = 0;
    CHECK(attn_svg_heatmap(path, &bad) == ATTN_ERR_INVALID_ARG, "vmin > vmax accepted");
    bad = m;
    bad.colormap = (attn_colormap)7;
    CHECK(attn_svg_heatmap(path, &bad) == ATTN_ERR_INVALID_ARG, "colormap 7 accepted");
    char *old = slurp(path, NULL);
    CHECK(old && strcmp(old, "old") == 0, "a failed call changed the existing file");
    free(old);
    char nodir[700];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/x.svg", tmp_dir);
    CHECK(attn_svg_heatmap(nodir, &m) == ATTN_ERR_IO, "unwritable path accepted");
    CHECK(strstr(attn_last_error(), "attn_svg_heatmap") != NULL, "message '%s'",
          attn_last_error());
    /* a successful write replaces the file */
    CHECK_OK(attn_svg_heatmap(path, &m));
    old = slurp(path, NULL);
    CHECK(old && strncmp(old, "<?xml", 5) == 0, "file not replaced");
    free(old);
    CHECK(leftover_tmp_files() == 0, "temporary files left behind");
    TEST_END();
}

static void test_heatmap_grid(void) {
    TEST_BEGIN("viz/heatmap_grid_layers_x_heads");
    const char *toks[] = {"<s>", "le", "chat", "&", "</s>"};
    float w[25];
    for (int i = 0; i < 25; i++) w[i] = (float)((i * 7) % 5) / 4.0f;
    attn_heatmap maps[6];
    char titles[6][32];
    for (int k = 0; k < 6; k++) {
        memset(&maps[k], 0, sizeof maps[k]);
        maps[k].weights = w;
        maps[k].rows = 5;
        maps[k].cols = 5;
        maps[k].row_labels = toks;
        maps[k].col_labels = toks;
        snprintf(titles[k], sizeof titles[k], "layer %d, head %d", k / 3, k % 3);
        maps[k].title = titles[k];
        maps[k].colormap = ATTN_CMAP_VIRIDIS;
    }
    char path[600];
    tmp_path(path, sizeof path, "grid.svg");
    CHECK_OK(attn_svg_heatmap_grid(path, "Self-attention <2 x 3>", maps, 2, 3));
    xml_info x;
    char *doc = check_svg(path, &x, NULL);
    CHECK(doc && x.err[0] == 0, "not well-formed: %s", x.err);
    if (doc && x.text) {
        CHECK(strstr(x.text, "layer 1, head 2\n") && strstr(x.text, "Self-attention <2 x 3>\n"),
              "titles missing");
        CHECK(count_of(x.text, "</s>\n") == 12, "%d '</s>' labels, expected 12 (6 panels x 2)",
              count_of(x.text, "</s>\n"));
        CHECK(count_of(doc, "<rect x=") == 6 * 25 + 6 + 1, "%d rects, expected %d",
              count_of(doc, "<rect x="), 6 * 25 + 6 + 1);
        CHECK(count_of(doc, "<linearGradient") == 1, "one shared colour bar expected");
    }
    free(doc);
    free(x.text);
    maps[4].vmax = 0.5f;
    CHECK(attn_svg_heatmap_grid(path, NULL, maps, 2, 3) == ATTN_ERR_INVALID_ARG,
          "panels with different colour scales accepted");
    CHECK(strstr(attn_last_error(), "panel 4") != NULL, "message '%s'", attn_last_error());
    CHECK(attn_svg_heatmap_grid(path, NULL, maps, 0, 3) == ATTN_ERR_INVALID_ARG, "0 rows accepted");
    CHECK(attn_svg_heatmap_grid(path, NULL, maps, 9, 9) == ATTN_ERR_INVALID_ARG,
          "81 panels accepted");
    TEST_END();
}

/* ---- line charts ---------------------------------------------------------------------- */

static void test_line_chart(void) {
    TEST_BEGIN("viz/line_chart");
    enum { N = 300 };
    double x[N], a[N], b[N];
    for (int i = 0; i < N; i++) {
        x[i] = 10.0 * i;
        a[i] = 3.0 * exp(-i / 60.0) + 0.2;
        b[i] = 3.5 * exp(-i / 80.0) + 0.4;
    }
    a[100] = NAN; /* breaks the line in two */
    b[200] = INFINITY;
    attn_series s[3] = {{"train <bahdanau> & co", x, a, N}, {NULL, x, b, N}, {"empty", NULL, NULL, 0}};
    attn_line_chart ch = {0};
    ch.title = "Loss \"curves\"";
    ch.x_label = "step";
    ch.y_label = "loss";
    ch.series = s;
    ch.n_series = 3;
    char path[600];
    tmp_path(path, sizeof path, "chart.svg");
    CHECK_OK(attn_svg_line_chart(path, &ch));
    xml_info xi;
    char *doc = check_svg(path, &xi, NULL);
    CHECK(doc && xi.err[0] == 0, "not well-formed: %s", xi.err);
    if (doc && xi.text) {
        CHECK(strstr(xi.text, "train <bahdanau> & co\n") && strstr(xi.text, "series 1\n") &&
                  strstr(xi.text, "empty\n") && strstr(xi.text, "Loss \"curves\"\n"),
              "legend or title text missing");
        /* two runs per series with a gap, none for the empty one */
        CHECK(count_of(doc, "<polyline") == 4, "%d polylines, expected 4",
              count_of(doc, "<polyline"));
        /* x ticks 0..3000 every 500, y ticks 0..4 every 0.5 or 1 */
        CHECK(strstr(xi.text, "\n3000\n") && strstr(xi.text, "\n0\n"), "x tick labels missing");
        CHECK(attr_of(doc, "svg", "width") == 800 && attr_of(doc, "svg", "height") == 480,
              "default size not 800x480");
    }
    free(doc);
    free(xi.text);

    /* log axis: decades, non-positive values left out */
    a[5] = 0;
    a[6] = -1;
    ch.log_y = 1;
    ch.n_series = 1;
    CHECK_OK(attn_svg_line_chart(path, &ch));
    doc = check_svg(path, &xi, NULL);
    CHECK(doc && xi.err[0] == 0, "log axis: not well-formed: %s", xi.err);
    if (doc && xi.text) {
        CHECK(strstr(xi.text, "\n0.1\n") && strstr(xi.text, "\n1\n") && strstr(xi.text, "\n10\n"),
              "log axis: decade labels missing");
        CHECK(count_of(doc, "<polyline") == 3, "log axis: %d polylines, expected 3 (gaps at 5-6 "
              "and 100)", count_of(doc, "<polyline"));
    }
    free(doc);
    free(xi.text);

    /* many points are reduced to a few per pixel column */
    int64_t big = 200000;
    double *y = malloc(sizeof(double) * (size_t)big);
    for (int64_t i = 0; i < big; i++) y[i] = sin(i * 0.001) + (double)(i % 7) * 0.01;
    attn_series one = {"long", NULL, y, big};
    attn_line_chart c2 = {0};
    c2.series = &one;
    c2.n_series = 1;
    c2.width = 640;
    c2.height = 360;
    CHECK_OK(attn_svg_line_chart(path, &c2));
    size_t len = 0;
    doc = check_svg(path, &xi, &len);
    CHECK(doc && xi.err[0] == 0, "200k points: not well-formed: %s", xi.err);
    CHECK(len < 150000, "200k points gave %zu bytes (expected < 150 kB after reduction)", len);
    CHECK(doc && attr_of(doc, "svg", "width") == 640, "width not 640");
    free(doc);
    free(xi.text);
    free(y);

    /* no drawable point: axes [0, 1] */
    double nan1 = NAN;
    attn_series none = {"nothing", NULL, &nan1, 1};
    c2.series = &none;
    CHECK_OK(attn_svg_line_chart(path, &c2));
    doc = check_svg(path, &xi, NULL);
    CHECK(doc && xi.err[0] == 0 && count_of(doc, "<polyline") == 0, "all-NaN series: %s", xi.err);
    free(doc);
    free(xi.text);

    c2.n_series = 0;
    CHECK(attn_svg_line_chart(path, &c2) == ATTN_ERR_INVALID_ARG, "0 series accepted");
    c2.n_series = 1;
    c2.width = 100;
    CHECK(attn_svg_line_chart(path, &c2) == ATTN_ERR_INVALID_ARG, "width 100 accepted");
    CHECK(strstr(attn_last_error(), "attn_svg_line_chart") != NULL, "message '%s'",
          attn_last_error());
    CHECK(leftover_tmp_files() == 0, "temporary files left behind");
    TEST_END();
}

/* Under a decimal-comma locale the numbers must still use '.'. Runs where
 * such a locale is installed (de_DE, fr_FR); elsewhere it checks the C
 * locale only. */
static void test_locale(void) {
    TEST_BEGIN("viz/numbers_independent_of_locale");
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8"};
    char *saved = setlocale(LC_NUMERIC, NULL);
    char keep[64];
    snprintf(keep, sizeof keep, "%s", saved ? saved : "C");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (setlocale(LC_NUMERIC, names[i])) break;
    float w[2] = {0.25f, 0.75f};
    attn_heatmap m = {0};
    m.weights = w;
    m.rows = 1;
    m.cols = 2;
    m.show_values = 1;
    char path[600];
    tmp_path(path, sizeof path, "locale.svg");
    CHECK_OK(attn_svg_heatmap(path, &m));
    char *doc = slurp(path, NULL);
    CHECK(doc && strstr(doc, "offset=\"0.5000\"") && !strstr(doc, "offset=\"0,"),
          "gradient offsets not written with '.' under LC_NUMERIC=%s",
          setlocale(LC_NUMERIC, NULL));
    free(doc);
    setlocale(LC_NUMERIC, keep);
    TEST_END();
}

/* ---- the progress line ------------------------------------------------------------------ */

/* The lines written to a file by the updates (each ended by '\n'). */
static char *progress_run(attn_progress *p, const char *name, int tty) {
    char path[600];
    tmp_path(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    attn_progress_init(p, f, 1000, "train");
    CHECK(p->tty == 0, "a regular file was taken for a terminal");
    p->tty = tty;
    p->unit = "tok";
    attn_progress_update_at(p, 10, 2.5, 1000, 1.0);  /* first update: drawn */
    attn_progress_update_at(p, 20, 2.0, 1000, 5.0);  /* within the interval: not drawn */
    attn_progress_update_at(p, 120, 1.5, 1000, 12.0); /* 11 s after the first: drawn */
    attn_progress_finish_at(p, 20.0);
    fclose(f);
    return slurp(path, NULL);
}

static void test_progress(void) {
    TEST_BEGIN("viz/progress_line_format");
    attn_progress p;
    char *text = progress_run(&p, "progress.txt", 0);
    /* loss: the bias-corrected average with beta 0.98 of 2.5, 2.0, 1.5 is
     * 2.5, 2.24747..., 1.99327...; rates 1000/1 s, 3000/12 s, 3000/20 s;
     * eta = elapsed / step * (total - step). */
    const char *want =
        "train 10/1000 1.0% | loss 2.5000 (last 2.5000) | 1000 tok/s | 0:01 elapsed, eta 1:39\n"
        "train 120/1000 12.0% | loss 1.9933 (last 1.5000) | 250 tok/s | 0:12 elapsed, eta 1:28\n"
        "train 120/1000 12.0% | loss 1.9933 (last 1.5000) | 150 tok/s | 0:20 elapsed, eta 2:26\n";
    CHECK(text && strcmp(text, want) == 0, "non-tty output:\n%s\nexpected:\n%s", text ? text : "",
          want);
    CHECK(p.lines == 3, "%lld lines written, expected 3", (long long)p.lines);
    free(text);

    /* tty: every update redrawn in place (they are >= 0.1 s apart), blanks
     * over the rest of a longer previous line, a newline at the end */
    text = progress_run(&p, "progress_tty.txt", 1);
    CHECK(text && count_of(text, "\r") == 4 && count_of(text, "\n") == 1 &&
              text[strlen(text) - 1] == '\n' && strncmp(text, "\rtrain 10/1000", 14) == 0 &&
              strstr(text, "eta 4:05 \rtrain 120/1000"),
          "tty output '%s'", text ? text : "");
    free(text);
    /* tty redraws are throttled to 10 a second, except at the last step */
    char tpath[600];
    tmp_path(tpath, sizeof tpath, "throttle.txt");
    FILE *tf = fopen(tpath, "wb");
    attn_progress t;
    attn_progress_init(&t, tf, 3, NULL);
    t.tty = 1;
    attn_progress_update_at(&t, 1, 1.0, 0, 0.0);
    attn_progress_update_at(&t, 2, 1.0, 0, 0.05);
    attn_progress_update_at(&t, 3, 1.0, 0, 0.07);
    CHECK(t.lines == 2, "%lld tty draws, expected 2 (0.05 s skipped, last step drawn)",
          (long long)t.lines);
    if (tf) fclose(tf);

    char line[256];
    /* a resumed run: the global step, and the ETA from this run's steps only
     * (50 steps in 25 s, 100 left: 50 s) */
    attn_progress r;
    attn_progress_init(&r, NULL, 200, "train");
    r.first = 50;
    attn_progress_update_at(&r, 100, NAN, 0, 25.0);
    attn_progress_format(&r, 25.0, line, sizeof line);
    CHECK(strcmp(line, "train 100/200 50.0% | 0:25 elapsed, eta 0:50") == 0, "resumed: got '%s'", line);
    /* unknown total, no loss, no items; and a shorter buffer truncates */
    attn_progress q;
    attn_progress_init(&q, NULL, 0, NULL);
    attn_progress_update_at(&q, 5, NAN, 0, 3.0);
    attn_progress_format(&q, 3.0, line, sizeof line);
    CHECK(strcmp(line, "step 5 | 0:03 elapsed") == 0, "got '%s'", line);
    CHECK(q.lines == 0, "a silent reporter wrote");
    /* hours; a NaN loss after finite ones is shown, the average keeps its value */
    attn_progress_update_at(&q, 6, 4.0, 0, 3725.0);
    attn_progress_update_at(&q, 7, NAN, 8.0, 3725.0);
    attn_progress_format(&q, 3725.0, line, sizeof line);
    CHECK(strcmp(line, "step 7 | loss 4.0000 (last nan) | 0.00 items/s | 1:02:05 elapsed") == 0,
          "got '%s'", line);
    int n = attn_progress_format(&q, 3725.0, line, 8);
    CHECK(n == 7 && strcmp(line, "step 7 ") == 0, "truncated to %d: '%s'", n, line);
    TEST_END();
}

/* ---- the JSONL logger --------------------------------------------------------------------- */

static void test_jsonl(void) {
    TEST_BEGIN("viz/jsonl_escaping_and_null");
    char path[600];
    tmp_path(path, sizeof path, "log.jsonl");
    attn_jsonl *log = NULL;
    CHECK_OK(attn_jsonl_open(&log, path, 0));
    attn_json_field rec[] = {
        attn_json_int("step", 1),
        attn_json_num("loss", 2.5),
        attn_json_num("lr", 1e-3),
        attn_json_str("name", "a\"b\\c\n\t\x01\x7f\xc3\xa9\xff/"),
        attn_json_num("nan", NAN),
        attn_json_num("inf", -INFINITY),
        attn_json_bool("ok", 7),
        {"nothing", ATTN_JSON_NULL, 0, 0, NULL},
        attn_json_str("s", NULL),
        attn_json_num("third", 1.0 / 3.0),
        attn_json_num("big", 1e300),
        attn_json_int("neg", -9007199254740993LL),
        attn_json_str("k\"ey", ""),
    };
    int n = (int)(sizeof rec / sizeof rec[0]);
    if (log) {
        CHECK_OK(attn_jsonl_write(log, rec, n));
        CHECK_OK(attn_jsonl_write(log, rec, 2));
        CHECK_OK(attn_jsonl_write(log, NULL, 0));
        /* errors leave the file as it was */
        attn_json_field dup[2] = {attn_json_int("a", 1), attn_json_num("a", 2)};
        CHECK(attn_jsonl_write(log, dup, 2) == ATTN_ERR_INVALID_ARG, "duplicate key accepted");
        CHECK(strstr(attn_last_error(), "'a' appears twice"), "message '%s'", attn_last_error());
        dup[1].key = NULL;
        CHECK(attn_jsonl_write(log, dup, 2) == ATTN_ERR_INVALID_ARG, "NULL key accepted");
        CHECK_OK(attn_jsonl_close(log));
    }
    log = NULL;
    CHECK_OK(attn_jsonl_open(&log, path, 1)); /* append */
    if (log) {
        attn_json_field last = attn_json_str("event", "resumed");
        CHECK_OK(attn_jsonl_write(log, &last, 1));
        CHECK_OK(attn_jsonl_close(log));
    }
    char *text = slurp(path, NULL);
    const char *want =
        "{\"step\":1,\"loss\":2.5,\"lr\":0.001,"
        "\"name\":\"a\\\"b\\\\c\\n\\t\\u0001\x7f\xc3\xa9\\ufffd/\",\"nan\":null,\"inf\":null,"
        "\"ok\":true,\"nothing\":null,\"s\":null,\"third\":0.3333333333333333,\"big\":1e+300,"
        "\"neg\":-9007199254740993,\"k\\\"ey\":\"\"}\n"
        "{\"step\":1,\"loss\":2.5}\n"
        "{}\n"
        "{\"event\":\"resumed\"}\n";
    CHECK(text && strcmp(text, want) == 0, "file:\n%s\nexpected:\n%s", text ? text : "", want);
    free(text);

    char *one = NULL;
    attn_json_field z = attn_json_num("z", -0.0);
    CHECK_OK(attn_json_record(&z, 1, &one));
    CHECK(one && strcmp(one, "{\"z\":-0}") == 0, "got '%s'", one ? one : "(null)");
    free(one);
    char bad[700];
    snprintf(bad, sizeof bad, "%s/no/such/dir/log.jsonl", tmp_dir);
    CHECK(attn_jsonl_open(&log, bad, 0) == ATTN_ERR_IO && log == NULL, "bad path accepted");
    CHECK(strstr(attn_last_error(), "attn_jsonl_open") && strstr(attn_last_error(), bad),
          "message '%s'", attn_last_error());
    CHECK(attn_jsonl_close(NULL) == ATTN_OK, "close(NULL) failed");
    TEST_END();
}

void suite_viz(void) {
    if (tmp_open() != 0) {
        TEST_BEGIN("viz/tmpdir");
        CHECK(0, "cannot create a temporary directory under $TMPDIR or /tmp");
        TEST_END();
        return;
    }
    test_xml_checker();
    test_heatmap_hostile_labels();
    test_heatmap_sizes();
    test_heatmap_errors();
    test_heatmap_grid();
    test_line_chart();
    test_locale();
    test_progress();
    test_jsonl();
    /* remove what the tests wrote */
    DIR *d = opendir(tmp_dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", tmp_dir, e->d_name);
            remove(path);
        }
        closedir(d);
    }
    rmdir(tmp_dir);
}
