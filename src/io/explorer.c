/* explorer.c: the attention explorer page (include/attn/explorer.h): the
 * embedded template (viz/explorer.html) with the CSS, the JavaScript and the
 * data put in place of its @ATTN_...@ markers, written atomically. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/explorer.h"
#include "../core/internal.h"
#include "atomic_file_internal.h"
#include "explorer_assets.h"

static const char *const kind_names[ATTN_EXPLORER_KIND_COUNT] = {"self", "cross", "alignment"};

/* ---- checks ---------------------------------------------------------------------------- */

static attn_status check_map(const char *fn, const attn_explorer_map *m, int k, size_t *total) {
    if (!m->name || !m->weights || !m->row_labels || !m->col_labels)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: map %d: %s is NULL", fn, k,
                           !m->name ? "name" : !m->weights ? "weights"
                           : !m->row_labels ? "row_labels" : "col_labels");
    if ((int)m->kind < 0 || m->kind >= ATTN_EXPLORER_KIND_COUNT)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: map %d (%s): kind %d is not an attn_explorer_kind",
                           fn, k, m->name, (int)m->kind);
    if (m->layers < 1 || m->layers > ATTN_EXPLORER_MAX_LAYERS || m->heads < 1 ||
        m->heads > ATTN_EXPLORER_MAX_HEADS || m->rows < 1 || m->rows > ATTN_EXPLORER_MAX_TOKENS ||
        m->cols < 1 || m->cols > ATTN_EXPLORER_MAX_TOKENS)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: map %d (%s): [L %d, H %d, R %d, C %d]: need 1..%d layers, 1..%d heads, "
                           "1..%d rows and columns", fn, k, m->name, m->layers, m->heads, m->rows,
                           m->cols, ATTN_EXPLORER_MAX_LAYERS, ATTN_EXPLORER_MAX_HEADS,
                           ATTN_EXPLORER_MAX_TOKENS);
    if (m->kind == ATTN_EXPLORER_ALIGNMENT && (m->layers != 1 || m->heads != 1))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: map %d (%s): an alignment map has 1 layer and "
                           "1 head, not %d and %d", fn, k, m->name, m->layers, m->heads);
    const size_t n = (size_t)m->layers * (size_t)m->heads * (size_t)m->rows * (size_t)m->cols;
    if (n > (size_t)ATTN_EXPLORER_MAX_WEIGHTS - *total) /* before reading anything */
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: map %d (%s): %zu weights, %zu before it: at most %d "
                           "fit a page", fn, k, m->name, n, *total, ATTN_EXPLORER_MAX_WEIGHTS);
    if (m->col_grid < 0 || (m->col_grid > 0 && m->cols % m->col_grid != 0))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: map %d (%s): col_grid %d does not divide %d columns",
                           fn, k, m->name, m->col_grid, m->cols);
    for (int r = 0; r < m->rows; r++)
        if (!m->row_labels[r]) return attn__error(ATTN_ERR_INVALID_ARG, "%s: map %d (%s): row label %d is NULL", fn, k, m->name, r);
    for (int c = 0; c < m->cols; c++)
        if (!m->col_labels[c]) return attn__error(ATTN_ERR_INVALID_ARG, "%s: map %d (%s): column label %d is NULL", fn, k, m->name, c);
    for (size_t i = 0; i < n; i++) {
        const float w = m->weights[i];
        if (!(w >= 0.0f && w <= 1.0f)) { /* NaN fails too */
            const size_t c = i % (size_t)m->cols, r = i / (size_t)m->cols % (size_t)m->rows;
            const size_t h = i / ((size_t)m->cols * (size_t)m->rows) % (size_t)m->heads;
            const size_t l = i / ((size_t)m->cols * (size_t)m->rows * (size_t)m->heads);
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: map %d (%s): layer %zu, head %zu, row %zu, "
                               "column %zu: weight %g is not in [0, 1]", fn, k, m->name, l, h, r, c,
                               (double)w);
        }
    }
    *total += n;
    return ATTN_OK;
}

static attn_status check_page(const char *fn, const attn_explorer_page *p, size_t *total) {
    if (!p) return attn__error(ATTN_ERR_INVALID_ARG, "%s: page is NULL", fn);
    if (!p->title || !p->maps)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %s is NULL", fn, !p->title ? "title" : "maps");
    if (p->n_maps < 1 || p->n_maps > ATTN_EXPLORER_MAX_MAPS)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %d maps: need 1..%d", fn, p->n_maps,
                           ATTN_EXPLORER_MAX_MAPS);
    if (p->decimals != 0 && p->decimals != 2 && p->decimals != 3)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: decimals %d: need 0 (automatic), 2 or 3", fn,
                           p->decimals);
    *total = 0;
    for (int k = 0; k < p->n_maps; k++) {
        attn_status st = check_map(fn, &p->maps[k], k, total);
        if (st != ATTN_OK) return st;
    }
    return ATTN_OK;
}

static int decimals_for(const attn_explorer_page *p, size_t total) {
    if (p->decimals) return p->decimals;
    return total <= ATTN_EXPLORER_AUTO3_WEIGHTS ? 3 : 2;
}

int attn_explorer_decimals(const attn_explorer_page *page) {
    size_t total = 0;
    if (check_page("attn_explorer_decimals", page, &total) != ATTN_OK) return 0;
    return decimals_for(page, total);
}

/* ---- writing --------------------------------------------------------------------------- */

/* A JSON string that may sit inside <script>: every '<' written as \u003c,
 * so no "</script>" or "<!--" can appear in the data. */
static void put_json_string(attn__strbuf *b, const char *s) {
    attn__strbuf t = {0};
    attn__sb_json_string(&t, s);
    if (t.oom) {
        b->oom = 1;
        return;
    }
    for (size_t i = 0; i < t.len; i++) {
        if (t.p[i] == '<') attn__sb_puts(b, "\\u003c");
        else attn__sb_putc(b, t.p[i]);
    }
    attn__sb_free(&t);
}

static void put_labels(attn__strbuf *b, const char *const *labels, int n) {
    attn__sb_putc(b, '[');
    for (int i = 0; i < n; i++) {
        if (i) attn__sb_putc(b, ',');
        put_json_string(b, labels[i]);
    }
    attn__sb_putc(b, ']');
}

/* Base64 (RFC 4648, with padding) of n bytes. */
static void put_base64(attn__strbuf *b, const unsigned char *s, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (attn__sb_reserve(b, (n + 2) / 3 * 4) != 0) return;
    char *o = b->p + b->len;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        const unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = tab[v >> 6 & 63];
        *o++ = tab[v & 63];
    }
    if (i < n) {
        const unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0u);
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    b->len = (size_t)(o - b->p);
    b->p[b->len] = 0;
}

/* The weights of one map, quantised to `decimals` and base64-encoded. */
static void put_weights(attn__strbuf *b, const attn_explorer_map *m, int decimals) {
    const size_t n = (size_t)m->layers * (size_t)m->heads * (size_t)m->rows * (size_t)m->cols;
    const size_t width = decimals == 3 ? 2 : 1;
    const double scale = decimals == 3 ? 1000.0 : 100.0;
    unsigned char *q = malloc(n * width);
    if (!q) {
        b->oom = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const unsigned v = (unsigned)lround((double)m->weights[i] * scale); /* 0..1000 */
        q[i * width] = (unsigned char)(v & 0xFF);
        if (width == 2) q[i * width + 1] = (unsigned char)(v >> 8);
    }
    put_base64(b, q, n * width);
    free(q);
}

static void put_data(attn__strbuf *b, const attn_explorer_page *p, int decimals) {
    attn__sb_printf(b, "{\"version\":1,\"decimals\":%d,\"title\":", decimals);
    put_json_string(b, p->title);
    attn__sb_puts(b, ",\"subtitle\":");
    put_json_string(b, p->subtitle ? p->subtitle : "");
    attn__sb_puts(b, ",\"maps\":[");
    for (int k = 0; k < p->n_maps; k++) {
        const attn_explorer_map *m = &p->maps[k];
        attn__sb_puts(b, k ? ",\n{\"name\":" : "\n{\"name\":");
        put_json_string(b, m->name);
        attn__sb_printf(b, ",\"kind\":\"%s\",\"layers\":%d,\"heads\":%d,\"rows\":%d,\"cols\":%d",
                        kind_names[m->kind], m->layers, m->heads, m->rows, m->cols);
        attn__sb_puts(b, ",\"rowAxis\":");
        put_json_string(b, m->row_axis ? m->row_axis : "query");
        attn__sb_puts(b, ",\"colAxis\":");
        put_json_string(b, m->col_axis ? m->col_axis : "key");
        if (m->col_grid > 0) attn__sb_printf(b, ",\"colGrid\":%d", m->col_grid);
        attn__sb_puts(b, ",\"note\":");
        put_json_string(b, m->note ? m->note : "");
        attn__sb_puts(b, ",\n\"rowLabels\":");
        put_labels(b, m->row_labels, m->rows);
        attn__sb_puts(b, ",\n\"colLabels\":");
        put_labels(b, m->col_labels, m->cols);
        if (m->mask) {
            attn__sb_puts(b, ",\n\"maskName\":");
            put_json_string(b, m->mask_name ? m->mask_name : "mask");
            attn__sb_puts(b, ",\"mask\":\"");
            put_base64(b, m->mask, (size_t)m->rows * (size_t)m->cols);
            attn__sb_putc(b, '"');
        }
        attn__sb_puts(b, ",\n\"w\":\"");
        put_weights(b, m, decimals);
        attn__sb_puts(b, "\"}");
    }
    attn__sb_puts(b, "]}");
}

/* Text for an HTML element (the <title>): & < > escaped, invalid UTF-8 as U+FFFD. */
static void put_html_text(attn__strbuf *b, const char *s) {
    const unsigned char *u = (const unsigned char *)s;
    const size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        const int len = attn__utf8_next(u, n, i, &cp);
        if (len == 0) {
            attn__sb_puts(b, "\xEF\xBF\xBD");
            i++;
            continue;
        }
        if (cp == '&') attn__sb_puts(b, "&amp;");
        else if (cp == '<') attn__sb_puts(b, "&lt;");
        else if (cp == '>') attn__sb_puts(b, "&gt;");
        else if (cp < 0x20) attn__sb_putc(b, ' ');
        else attn__sb_put(b, s + i, (size_t)len);
        i += (size_t)len;
    }
}

/* The template with its markers replaced: @ATTN_TITLE@, @ATTN_CSS@,
 * @ATTN_JS@, @ATTN_DATA@. */
static void put_page(attn__strbuf *b, const attn_explorer_page *p, int decimals) {
    const char *t = (const char *)attn__explorer_html;
    const char *end = t + attn__explorer_html_len;
    while (t < end) {
        const char *at = strstr(t, "@ATTN_");
        if (!at) {
            attn__sb_put(b, t, (size_t)(end - t));
            break;
        }
        attn__sb_put(b, t, (size_t)(at - t));
        if (!strncmp(at, "@ATTN_TITLE@", 12)) {
            put_html_text(b, p->title);
            t = at + 12;
        } else if (!strncmp(at, "@ATTN_CSS@", 10)) {
            attn__sb_put(b, attn__explorer_css, attn__explorer_css_len);
            t = at + 10;
        } else if (!strncmp(at, "@ATTN_JS@", 9)) {
            attn__sb_put(b, attn__explorer_js, attn__explorer_js_len);
            t = at + 9;
        } else if (!strncmp(at, "@ATTN_DATA@", 11)) {
            put_data(b, p, decimals);
            t = at + 11;
        } else { /* not a marker: copy the '@' and go on */
            attn__sb_putc(b, '@');
            t = at + 1;
        }
    }
}

static attn_status write_buffer(const char *fn, const char *path, const attn__strbuf *b) {
    if (b->oom) return attn__error(ATTN_ERR_OOM, "%s: out of memory building %s", fn, path);
    attn__atomic_file af;
    attn_status st = attn__atomic_open(&af, fn, path);
    if (st != ATTN_OK) return st;
    if (b->len && fwrite(b->p, 1, b->len, af.fp) != b->len) {
        st = attn__error(ATTN_ERR_IO, "%s: cannot write %s (%zu bytes): %s", fn, af.tmp, b->len,
                         strerror(errno));
        attn__atomic_abort(&af);
        return st;
    }
    return attn__atomic_commit(&af);
}

attn_status attn_explorer_write(const char *path, const attn_explorer_page *page) {
    const char *fn = "attn_explorer_write";
    if (!path) return attn__error(ATTN_ERR_INVALID_ARG, "%s: path is NULL", fn);
    size_t total = 0;
    attn_status st = check_page(fn, page, &total);
    if (st != ATTN_OK) return st;
    attn__strbuf b = {0};
    put_page(&b, page, decimals_for(page, total));
    st = write_buffer(fn, path, &b);
    attn__sb_free(&b);
    return st;
}

attn_status attn_explorer_write_weights(const char *path, const attn_explorer_page *page) {
    const char *fn = "attn_explorer_write_weights";
    if (!path) return attn__error(ATTN_ERR_INVALID_ARG, "%s: path is NULL", fn);
    size_t total = 0;
    attn_status st = check_page(fn, page, &total);
    if (st != ATTN_OK) return st;
    attn__strbuf b = {0};
    const attn__c_locale loc = attn__c_locale_begin(); /* %g with a decimal point */
    attn__sb_puts(&b, "map\tlayer\thead\trow\tcol\tweight\n");
    for (int k = 0; k < page->n_maps && !b.oom; k++) {
        const attn_explorer_map *m = &page->maps[k];
        size_t i = 0;
        for (int l = 0; l < m->layers; l++)
            for (int h = 0; h < m->heads; h++)
                for (int r = 0; r < m->rows; r++)
                    for (int c = 0; c < m->cols; c++, i++)
                        attn__sb_printf(&b, "%d\t%d\t%d\t%d\t%d\t%.9g\n", k, l, h, r, c,
                                        (double)m->weights[i]);
    }
    attn__c_locale_end(loc);
    st = write_buffer(fn, path, &b);
    attn__sb_free(&b);
    return st;
}
