/* svg.c: SVG heatmaps, heatmap grids and line charts, written without any
 * dependency. Contracts: include/attn/viz.h.
 *
 * A picture is built in a memory buffer and written atomically at the end.
 * Sizes are computed from estimated text widths: token labels use a
 * monospace font (DejaVu Sans Mono, advance 0.6 em), so a label of k columns
 * is 0.6 * k * font px wide, and the margins are made to fit the longest
 * label. Numbers are formatted with snprintf under the "C" numeric locale
 * (uselocale, for the calling thread only, restored before returning), so a
 * program that set a locale with a decimal comma still gets valid SVG.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/internal.h"
#include "atomic_file_internal.h"
#include "attn/viz.h"

#define MONO "DejaVu Sans Mono,Menlo,Consolas,monospace"
#define SANS "DejaVu Sans,Helvetica,Arial,sans-serif"
#define LABEL_MAX_COLS 24 /* longer labels are cut to 23 columns and "…" */
#define MONO_ADVANCE 0.6  /* em per column of the monospace font */
#define SANS_ADVANCE 0.6 /* a generous average advance of the proportional font, em */

/* ---- text: UTF-8 validation, XML escaping, widths ------------------------------------ */

/* Display columns of a code point: 2 for East Asian wide characters and
 * emoji, 0 for combining marks, else 1. */
static int cp_cols(long c) {
    if ((c >= 0x0300 && c <= 0x036F) || (c >= 0x200B && c <= 0x200F)) return 0;
    if ((c >= 0x1100 && c <= 0x115F) || (c >= 0x2E80 && c <= 0x303E) ||
        (c >= 0x3041 && c <= 0x33FF) || (c >= 0x3400 && c <= 0x4DBF) ||
        (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xA000 && c <= 0xA4CF) ||
        (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0xF900 && c <= 0xFAFF) ||
        (c >= 0xFE30 && c <= 0xFE4F) || (c >= 0xFF00 && c <= 0xFF60) ||
        (c >= 0xFFE0 && c <= 0xFFE6) || (c >= 0x1F300 && c <= 0x1F64F) ||
        (c >= 0x1F900 && c <= 0x1F9FF) || (c >= 0x20000 && c <= 0x3FFFD))
        return 2;
    return 1;
}

/* What code point c is drawn as (see viz.h): control characters, invalid
 * bytes (-1) and the non-characters XML forbids become U+FFFD; '\n' U+21B5,
 * '\t' U+21E5. */
static long shown_cp(long c) {
    if (c == '\n') return 0x21B5;
    if (c == '\t') return 0x21E5;
    if (c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0xFFFE || c == 0xFFFF || c < 0)
        return 0xFFFD;
    return c;
}

static void put_cp(attn__strbuf *b, long c) {
    char u[4];
    switch (c) {
    case '&': attn__sb_puts(b, "&amp;"); return;
    case '<': attn__sb_puts(b, "&lt;"); return;
    case '>': attn__sb_puts(b, "&gt;"); return;
    case '"': attn__sb_puts(b, "&quot;"); return;
    case '\'': attn__sb_puts(b, "&apos;"); return;
    default: break;
    }
    if (c < 0x80) {
        u[0] = (char)c;
        attn__sb_put(b, u, 1);
    } else if (c < 0x800) {
        u[0] = (char)(0xC0 | (c >> 6));
        u[1] = (char)(0x80 | (c & 0x3F));
        attn__sb_put(b, u, 2);
    } else if (c < 0x10000) {
        u[0] = (char)(0xE0 | (c >> 12));
        u[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[2] = (char)(0x80 | (c & 0x3F));
        attn__sb_put(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | (c >> 18));
        u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[3] = (char)(0x80 | (c & 0x3F));
        attn__sb_put(b, u, 4);
    }
}

/* Writes text s escaped for XML (to b, when b is not NULL) and returns its
 * width in columns. label: leading and trailing spaces drawn as U+2423.
 * max_cols > 0: a text wider than that is cut to max_cols - 1 columns and
 * "…". */
static int sb_text(attn__strbuf *b, const char *str, int label, int max_cols) {
    const unsigned char *s = (const unsigned char *)(str ? str : "");
    size_t n = strlen((const char *)s);
    size_t lead = 0, trail = 0;
    if (label) {
        while (lead < n && s[lead] == ' ') lead++;
        while (trail < n - lead && s[n - 1 - trail] == ' ') trail++;
    }
    int total = 0;
    for (size_t i = 0; i < n;) {
        int32_t c;
        i += (size_t)attn__utf8_decode(s + i, n - i, &c);
        total += cp_cols(shown_cp(c));
    }
    int limit = (max_cols > 0 && total > max_cols) ? max_cols - 1 : total;
    int cols = 0;
    for (size_t i = 0; i < n;) {
        int32_t u;
        size_t at = i;
        i += (size_t)attn__utf8_decode(s + i, n - i, &u);
        long c = shown_cp(u);
        if (label && (at < lead || at >= n - trail)) c = 0x2423;
        int w = cp_cols(c);
        if (cols + w > limit) break;
        cols += w;
        if (b) put_cp(b, c);
    }
    if (limit < total) {
        if (b) put_cp(b, 0x2026);
        cols++;
    }
    return cols;
}

/* ---- colours ----------------------------------------------------------------------- */

static const unsigned char cmap_blues[][3] = {
    {0xff, 0xff, 0xff}, {0xde, 0xeb, 0xf7}, {0xc6, 0xdb, 0xef}, {0x9e, 0xca, 0xe1},
    {0x6b, 0xae, 0xd6}, {0x42, 0x92, 0xc6}, {0x21, 0x71, 0xb5}, {0x08, 0x51, 0x9c},
    {0x08, 0x30, 0x6b},
};
static const unsigned char cmap_viridis[][3] = {
    {0x44, 0x01, 0x54}, {0x48, 0x24, 0x75}, {0x41, 0x44, 0x87}, {0x35, 0x5f, 0x8d},
    {0x2a, 0x78, 0x8e}, {0x21, 0x91, 0x8c}, {0x22, 0xa8, 0x84}, {0x44, 0xbf, 0x70},
    {0x7a, 0xd1, 0x51}, {0xbd, 0xdf, 0x26}, {0xfd, 0xe7, 0x25},
};

static const unsigned char (*cmap_stops(attn_colormap m, int *n))[3] {
    if (m == ATTN_CMAP_VIRIDIS) {
        *n = (int)(sizeof cmap_viridis / sizeof cmap_viridis[0]);
        return cmap_viridis;
    }
    *n = (int)(sizeof cmap_blues / sizeof cmap_blues[0]);
    return cmap_blues;
}

/* The colour of t in [0, 1] (linear between the stops, in sRGB). */
static void cmap_rgb(attn_colormap m, double t, int rgb[3]) {
    int n;
    const unsigned char(*st)[3] = cmap_stops(m, &n);
    if (!(t > 0)) t = 0; /* also NaN, which callers draw grey anyway */
    if (t > 1) t = 1;
    double x = t * (n - 1);
    int i = (int)x;
    if (i >= n - 1) i = n - 2;
    double f = x - i;
    for (int k = 0; k < 3; k++) rgb[k] = (int)lround(st[i][k] + f * (st[i + 1][k] - st[i][k]));
}

/* 1 if dark text reads better than white on rgb (perceived luminance). */
static int is_light(const int rgb[3]) {
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140;
}

static void sb_gradient(attn__strbuf *b, const char *id, attn_colormap m) {
    int n;
    const unsigned char(*st)[3] = cmap_stops(m, &n);
    attn__sb_printf(b, "<linearGradient id=\"%s\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\n", id);
    for (int i = 0; i < n; i++)
        attn__sb_printf(b, "<stop offset=\"%.4f\" stop-color=\"#%02x%02x%02x\"/>\n",
                        (double)i / (n - 1), st[i][0], st[i][1], st[i][2]);
    attn__sb_puts(b, "</linearGradient>\n");
}

/* A tick label of value v for a scale whose ticks are `step` apart: %g of v,
 * with values closer to 0 than step / 1e6 written "0". */
static void fmt_tick(char *out, size_t size, double v, double step) {
    if (fabs(v) < fabs(step) * 1e-6) v = 0;
    snprintf(out, size, "%g", v);
}

/* A vertical colour bar at (x, y), w x h, for [vmin, vmax], with 5 ticks. */
static void sb_colorbar(attn__strbuf *b, const char *grad_id, double x, double y, double w,
                        double h, double vmin, double vmax) {
    attn__sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                    "fill=\"url(#%s)\" stroke=\"#555\" stroke-width=\"0.8\"/>\n<g font-family=\""
                    SANS "\" font-size=\"11\" fill=\"#333\">\n", x, y, w, h, grad_id);
    for (int k = 0; k <= 4; k++) {
        double v = vmin + (vmax - vmin) * k / 4.0, ty = y + h - h * k / 4.0;
        char lab[64];
        fmt_tick(lab, sizeof lab, v, (vmax - vmin) / 4.0);
        attn__sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" "
                        "stroke-width=\"0.8\"/>\n", x + w, ty, x + w + 4, ty);
        attn__sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", x + w + 6, ty + 4, lab);
    }
    attn__sb_puts(b, "</g>\n");
}

/* ---- atomic file output ---------------------------------------------------------------- */

/* Through the one atomic writer (atomic_file_internal.h): temporary file,
 * fsync, rename, fsync of the directory. */
static attn_status write_atomic(const char *fn, const char *path, const attn__strbuf *b) {
    if (b->oom) return attn__error(ATTN_ERR_OOM, "%s: out of memory building the SVG for %s", fn,
                                   path);
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

static void sb_open_svg(attn__strbuf *b, double w, double h) {
    attn__sb_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" "
                    "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n", w, h, w, h);
    attn__sb_printf(b, "<rect width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", w, h);
}

/* ---- heatmaps ---------------------------------------------------------------------------- */

/* The geometry of one heatmap panel, relative to the panel's top left. */
typedef struct hm_layout {
    int cell;          /* px per cell */
    double font;       /* token label size, px */
    int labels;        /* draw token labels */
    int values;        /* draw cell values */
    double title_font; /* 0 when there is no title */
    double row_w;      /* width of the row label column */
    double col_h;      /* height of the (rotated) column labels */
    double mat_x, mat_y;
    double w, h;       /* panel size */
} hm_layout;

static const char *hm_label(const char *const *labels, int i, char *num, size_t size) {
    if (labels && labels[i]) return labels[i];
    snprintf(num, size, "%d", i);
    return num;
}

/* Widest row and column label of map, in columns. */
static void hm_label_cols(const attn_heatmap *m, int *row_cols, int *col_cols) {
    char num[32];
    *row_cols = *col_cols = 0;
    for (int r = 0; r < m->rows; r++) {
        int c = sb_text(NULL, hm_label(m->row_labels, r, num, sizeof num), 1, LABEL_MAX_COLS);
        if (c > *row_cols) *row_cols = c;
    }
    for (int k = 0; k < m->cols; k++) {
        int c = sb_text(NULL, hm_label(m->col_labels, k, num, sizeof num), 1, LABEL_MAX_COLS);
        if (c > *col_cols) *col_cols = c;
    }
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Lays out panels of cell size `cell` whose widest labels have row_cols and
 * col_cols columns. */
static hm_layout hm_layout_for(int cell, int row_cols, int col_cols, int rows, int cols,
                               double title_font, int has_xcap, int has_ycap, int show_values,
                               int min_label_cell) {
    hm_layout L;
    memset(&L, 0, sizeof L);
    L.cell = cell;
    L.font = cell * 0.72;
    if (L.font > 13) L.font = 13;
    if (L.font < 5) L.font = 5;
    L.labels = cell >= min_label_cell;
    L.values = show_values && cell >= 16;
    L.title_font = title_font;
    double adv = MONO_ADVANCE * L.font;
    L.row_w = L.labels ? row_cols * adv + 6 : 0;
    L.col_h = L.labels ? col_cols * adv + 6 : 0;
    double top = (title_font > 0 ? title_font + 10 : 0) + L.col_h;
    double left = (has_ycap ? 18 : 0) + L.row_w;
    L.mat_x = left;
    L.mat_y = top;
    L.w = left + (double)cols * cell;
    L.h = top + (double)rows * cell + (has_xcap ? 22 : 0);
    return L;
}

/* Draws map at (ox, oy) with layout L; the panel's title is drawn at
 * title_font when L.title_font > 0. */
static void hm_draw(attn__strbuf *b, const attn_heatmap *m, const hm_layout *L, double ox,
                    double oy, double vmin, double vmax) {
    char num[32];
    int cell = L->cell;
    double mw = (double)m->cols * cell, mh = (double)m->rows * cell;
    attn__sb_printf(b, "<g transform=\"translate(%.1f,%.1f)\">\n", ox, oy);
    if (L->title_font > 0 && m->title) {
        /* centred over the matrix, moved left if it would pass the panel's
         * right edge, cut if wider than the panel */
        double adv = SANS_ADVANCE * L->title_font;
        int max_cols = (int)(L->w / adv);
        if (max_cols < 4) max_cols = 4;
        double tw = sb_text(NULL, m->title, 0, max_cols) * adv;
        double cx = L->mat_x + mw / 2;
        if (cx + tw / 2 > L->w) cx = L->w - tw / 2;
        if (cx - tw / 2 < 0) cx = tw / 2;
        attn__sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-family=\"" SANS "\" "
                        "font-size=\"%.0f\" font-weight=\"bold\" text-anchor=\"middle\">", cx,
                        L->title_font, L->title_font);
        sb_text(b, m->title, 0, max_cols);
        attn__sb_puts(b, "</text>\n");
    }
    /* cells: integer coordinates, so neighbours meet without seams */
    attn__sb_printf(b, "<g transform=\"translate(%.1f,%.1f)\" shape-rendering=\"crispEdges\">\n",
                    L->mat_x, L->mat_y);
    double range = vmax - vmin;
    for (int r = 0; r < m->rows; r++) {
        for (int c = 0; c < m->cols; c++) {
            double v = m->weights[(size_t)r * (size_t)m->cols + (size_t)c];
            int rgb[3] = {0xbb, 0xbb, 0xbb};
            if (!isnan(v)) cmap_rgb(m->colormap, (v - vmin) / range, rgb);
            attn__sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                            "fill=\"#%02x%02x%02x\"/>\n", c * cell, r * cell, cell, cell, rgb[0],
                            rgb[1], rgb[2]);
        }
    }
    attn__sb_printf(b, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
                    "stroke=\"#777\" stroke-width=\"1\"/>\n</g>\n", mw, mh);
    if (L->values && m->show_values) {
        double vf = cell * 0.34;
        attn__sb_printf(b, "<g font-family=\"" SANS "\" font-size=\"%.1f\" "
                        "text-anchor=\"middle\">\n", vf);
        for (int r = 0; r < m->rows; r++) {
            for (int c = 0; c < m->cols; c++) {
                double v = m->weights[(size_t)r * (size_t)m->cols + (size_t)c];
                if (isnan(v)) continue;
                int rgb[3];
                cmap_rgb(m->colormap, (v - vmin) / range, rgb);
                char t[32];
                double rv = round(v * 100) / 100;
                if (rv == 0 || rv == 1 || rv == -1) snprintf(t, sizeof t, "%.0f", rv);
                else snprintf(t, sizeof t, "%.2f", rv);
                /* "0.37" -> ".37": narrower, as in published alignment tables */
                char *p = t;
                if (p[0] == '0' && p[1] == '.') p++;
                else if (p[0] == '-' && p[1] == '0' && p[2] == '.') {
                    p[1] = '-';
                    p++;
                }
                attn__sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">%s</text>\n",
                                L->mat_x + c * cell + cell / 2.0,
                                L->mat_y + r * cell + cell / 2.0 + vf * 0.36,
                                is_light(rgb) ? "#000" : "#fff", p);
            }
        }
        attn__sb_puts(b, "</g>\n");
    }
    if (L->labels) {
        attn__sb_printf(b, "<g font-family=\"" MONO "\" font-size=\"%.1f\" fill=\"#222\">\n",
                        L->font);
        for (int r = 0; r < m->rows; r++) {
            attn__sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", L->mat_x - 4,
                            L->mat_y + r * cell + cell / 2.0 + L->font * 0.35);
            sb_text(b, hm_label(m->row_labels, r, num, sizeof num), 1, LABEL_MAX_COLS);
            attn__sb_puts(b, "</text>\n");
        }
        for (int c = 0; c < m->cols; c++) {
            /* rotated to read upwards, starting just above the matrix */
            attn__sb_printf(b, "<text transform=\"translate(%.1f,%.1f) rotate(-90)\">",
                            L->mat_x + c * cell + cell / 2.0 + L->font * 0.35, L->mat_y - 4);
            sb_text(b, hm_label(m->col_labels, c, num, sizeof num), 1, LABEL_MAX_COLS);
            attn__sb_puts(b, "</text>\n");
        }
        attn__sb_puts(b, "</g>\n");
    }
    if (m->x_label) {
        attn__sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-family=\"" SANS "\" "
                        "font-size=\"12\" text-anchor=\"middle\" fill=\"#444\">",
                        L->mat_x + mw / 2, L->mat_y + mh + 16);
        sb_text(b, m->x_label, 0, 60);
        attn__sb_puts(b, "</text>\n");
    }
    if (m->y_label) {
        attn__sb_printf(b, "<text transform=\"translate(%.1f,%.1f) rotate(-90)\" "
                        "font-family=\"" SANS "\" font-size=\"12\" text-anchor=\"middle\" "
                        "fill=\"#444\">", 12.0, L->mat_y + mh / 2);
        sb_text(b, m->y_label, 0, 60);
        attn__sb_puts(b, "</text>\n");
    }
    attn__sb_puts(b, "</g>\n");
}

/* Checks one map; returns ATTN_OK or an error naming fn and panel index k
 * (-1 for a single map). Sets *vmin, *vmax to the map's scale. */
static attn_status hm_check(const char *fn, const attn_heatmap *m, int k, double *vmin,
                            double *vmax) {
    char where[48] = "";
    if (k >= 0) snprintf(where, sizeof where, " (panel %d)", k);
    if (!m->weights)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: weights is NULL%s", fn, where);
    if (m->rows < 1 || m->cols < 1 || m->rows > ATTN_VIZ_MAX_TOKENS ||
        m->cols > ATTN_VIZ_MAX_TOKENS)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: a [%d, %d] map%s: rows and cols must be in "
                           "1..%d", fn, m->rows, m->cols, where, ATTN_VIZ_MAX_TOKENS);
    if ((unsigned)m->colormap >= ATTN_CMAP_COUNT)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: colormap %d%s is not an attn_colormap", fn,
                           (int)m->colormap, where);
    *vmin = m->vmin;
    *vmax = m->vmax;
    if (!isfinite(*vmin) || !isfinite(*vmax) || *vmin > *vmax)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: colour range [%g, %g]%s: need finite "
                           "vmin <= vmax", fn, *vmin, *vmax, where);
    if (*vmin == *vmax) {
        *vmin = 0;
        *vmax = 1;
    }
    return ATTN_OK;
}

static attn_status svg_heatmap(const char *path, const attn_heatmap *m) {
    static const char *fn = "attn_svg_heatmap";
    if (!path || !m)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %s is NULL", fn, !path ? "path" : "map");
    double vmin, vmax;
    attn_status st = hm_check(fn, m, -1, &vmin, &vmax);
    if (st) return st;
    int side = m->rows > m->cols ? m->rows : m->cols;
    int cell = clampi((int)lround(560.0 / side), 8, 32);
    int rc, cc;
    hm_label_cols(m, &rc, &cc);
    hm_layout L = hm_layout_for(cell, rc, cc, m->rows, m->cols, m->title ? 16 : 0,
                                m->x_label != NULL, m->y_label != NULL, m->show_values, 0);
    const double pad = 14, bar_gap = 18, bar_w = 14, bar_lab = 44;
    double mh = (double)m->rows * cell;
    double bar_h = mh < 120 ? 120 : mh;
    double W = pad + L.w + bar_gap + bar_w + bar_lab;
    double H = pad + L.mat_y + (bar_h > mh ? bar_h : mh) + (L.h - L.mat_y - mh) + pad;
    if (m->title) { /* a title wider than the picture widens it (up to 100 columns) */
        double tw = sb_text(NULL, m->title, 0, 100) * SANS_ADVANCE * 16 + 2 * pad;
        if (tw > W) W = tw;
    }
    double bar_x = pad + L.w + bar_gap;
    L.w = W - 2 * pad; /* the title may use the whole width */
    attn__strbuf b = {0};
    sb_open_svg(&b, ceil(W), ceil(H));
    attn__sb_puts(&b, "<defs>\n");
    sb_gradient(&b, "cbar", m->colormap);
    attn__sb_puts(&b, "</defs>\n");
    hm_draw(&b, m, &L, pad, pad, vmin, vmax);
    sb_colorbar(&b, "cbar", bar_x, pad + L.mat_y, bar_w, bar_h, vmin, vmax);
    attn__sb_puts(&b, "</svg>\n");
    st = write_atomic(fn, path, &b);
    attn__sb_free(&b);
    return st;
}

static attn_status svg_heatmap_grid(const char *path, const char *title,
                                    const attn_heatmap *maps, int grid_rows, int grid_cols) {
    static const char *fn = "attn_svg_heatmap_grid";
    if (!path || !maps)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %s is NULL", fn, !path ? "path" : "maps");
    if (grid_rows < 1 || grid_cols < 1 || grid_rows * grid_cols > 64)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: a %d x %d grid: need 1..64 panels", fn,
                           grid_rows, grid_cols);
    int n = grid_rows * grid_cols, side = 1, rc = 0, cc = 0, max_rows = 1, max_cols = 1;
    int any_title = 0, any_x = 0, any_y = 0, any_values = 0;
    double vmin = 0, vmax = 1;
    for (int k = 0; k < n; k++) {
        const attn_heatmap *m = &maps[k];
        double lo, hi;
        attn_status st = hm_check(fn, m, k, &lo, &hi);
        if (st) return st;
        if (k == 0) {
            vmin = lo;
            vmax = hi;
        } else if (lo != vmin || hi != vmax || m->colormap != maps[0].colormap) {
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: panel %d has colour scale %d [%g, %g], "
                               "panel 0 has %d [%g, %g]: the panels share one colour bar", fn, k,
                               (int)m->colormap, lo, hi, (int)maps[0].colormap, vmin, vmax);
        }
        if (m->rows > side) side = m->rows;
        if (m->cols > side) side = m->cols;
        if (m->rows > max_rows) max_rows = m->rows;
        if (m->cols > max_cols) max_cols = m->cols;
        int r1, c1;
        hm_label_cols(m, &r1, &c1);
        if (r1 > rc) rc = r1;
        if (c1 > cc) cc = c1;
        any_title |= m->title != NULL;
        any_x |= m->x_label != NULL;
        any_y |= m->y_label != NULL;
        any_values |= m->show_values;
    }
    int cell = clampi((int)lround(280.0 / side), 2, 24);
    /* Every panel gets the same box (the largest), so the grid is regular. */
    hm_layout L = hm_layout_for(cell, rc, cc, max_rows, max_cols, any_title ? 12 : 0, any_x, any_y,
                                any_values, 7);
    const double pad = 14, gap = 20, bar_gap = 18, bar_w = 14, bar_lab = 44;
    double top = pad + (title ? 30 : 0);
    double grid_w = grid_cols * L.w + (grid_cols - 1) * gap;
    double grid_h = grid_rows * L.h + (grid_rows - 1) * gap;
    double bar_h = grid_h - L.mat_y;
    if (bar_h > 240) bar_h = 240;
    if (bar_h < 120) bar_h = 120;
    double W = pad + grid_w + bar_gap + bar_w + bar_lab;
    double H = top + (grid_h > L.mat_y + bar_h ? grid_h : L.mat_y + bar_h) + pad;
    if (title) {
        double tw = sb_text(NULL, title, 0, 0) * SANS_ADVANCE * 18 + 2 * pad;
        if (tw > W) W = tw;
    }
    attn__strbuf b = {0};
    sb_open_svg(&b, ceil(W), ceil(H));
    attn__sb_puts(&b, "<defs>\n");
    sb_gradient(&b, "cbar", maps[0].colormap);
    attn__sb_puts(&b, "</defs>\n");
    if (title) {
        attn__sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-family=\"" SANS "\" font-size=\"18\" "
                        "font-weight=\"bold\" text-anchor=\"middle\">", pad + grid_w / 2, pad + 18);
        sb_text(&b, title, 0, 0);
        attn__sb_puts(&b, "</text>\n");
    }
    for (int k = 0; k < n; k++) {
        int r = k / grid_cols, c = k % grid_cols;
        hm_draw(&b, &maps[k], &L, pad + c * (L.w + gap), top + r * (L.h + gap), vmin, vmax);
    }
    sb_colorbar(&b, "cbar", pad + grid_w + bar_gap, top + L.mat_y, bar_w, bar_h, vmin, vmax);
    attn__sb_puts(&b, "</svg>\n");
    attn_status st = write_atomic(fn, path, &b);
    attn__sb_free(&b);
    return st;
}

/* ---- line charts ------------------------------------------------------------------------- */

static const char *const palette[10] = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
};

/* The "nice" number (1, 2 or 5 x 10^k) nearest above x / ~1.5. */
static double nice_step(double x) {
    double e = floor(log10(x)), f = x / pow(10, e);
    double nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return nf * pow(10, e);
}

typedef struct axis {
    double lo, hi;    /* the axis range (data coordinates; log10 of them on a log axis) */
    int log;
    int n_ticks;
    double ticks[64]; /* data values */
    double step;      /* linear: tick spacing */
} axis;

/* An axis covering [lo, hi] (finite, lo <= hi; positive when log). */
static void axis_make(axis *a, double lo, double hi, int log_scale) {
    memset(a, 0, sizeof *a);
    a->log = log_scale;
    if (log_scale) {
        double dlo = floor(log10(lo)), dhi = ceil(log10(hi));
        if (dhi <= dlo) dhi = dlo + 1;
        a->lo = dlo;
        a->hi = dhi;
        int every = (int)ceil((dhi - dlo) / 10.0); /* at most ~10 labelled decades */
        for (double d = dlo; d <= dhi && a->n_ticks < 64; d += every) {
            a->ticks[a->n_ticks++] = pow(10, d);
            if (dhi - dlo <= 2 && d < dhi) {
                a->ticks[a->n_ticks++] = 2 * pow(10, d);
                a->ticks[a->n_ticks++] = 5 * pow(10, d);
            }
        }
        return;
    }
    if (hi - lo <= fabs(hi) * 1e-12 || hi - lo <= 0) { /* one value: widen around it */
        double d = lo == 0 ? 0.5 : fabs(lo) * 0.1;
        lo -= d;
        hi += d;
    }
    double step = nice_step((hi - lo) / 5);
    a->step = step;
    a->lo = floor(lo / step) * step;
    a->hi = ceil(hi / step) * step;
    int k_max = (int)lround((a->hi - a->lo) / step);
    if (k_max > 63) k_max = 63;
    for (int k = 0; k <= k_max; k++) a->ticks[a->n_ticks++] = a->lo + k * step;
}

/* Position of data value v along the axis, 0..1. */
static double axis_frac(const axis *a, double v) {
    double t = a->log ? log10(v) : v;
    return (t - a->lo) / (a->hi - a->lo);
}

static int point_ok(const attn_series *s, int64_t i, int log_y) {
    double x = s->x ? s->x[i] : (double)i, y = s->y[i];
    return isfinite(x) && isfinite(y) && (!log_y || y > 0);
}

typedef struct plot_box {
    double x0, x1, y0, y1; /* px: left, right, top, bottom */
    axis ax, ay;
} plot_box;

static void pt_px(const plot_box *P, double x, double y, double *px, double *py) {
    *px = P->x0 + axis_frac(&P->ax, x) * (P->x1 - P->x0);
    *py = P->y1 - axis_frac(&P->ay, y) * (P->y1 - P->y0);
}

/* Draws one series: a polyline per run of drawable points; a run with more
 * than 4 points per pixel column keeps, per column, the first, lowest,
 * highest and last point in their order. */
static void draw_series(attn__strbuf *b, const plot_box *P, const attn_series *s, int k,
                        int log_y) {
    const char *color = palette[k % 10];
    const char *dash = k >= 10 ? " stroke-dasharray=\"6,3\"" : "";
    int decimate = (double)s->n > 4 * (P->x1 - P->x0);
    int64_t i = 0;
    while (i < s->n) {
        while (i < s->n && !point_ok(s, i, log_y)) i++;
        if (i >= s->n) break;
        int64_t start = i;
        while (i < s->n && point_ok(s, i, log_y)) i++;
        int64_t end = i; /* run [start, end) */
        if (end - start == 1) {
            double px, py;
            pt_px(P, s->x ? s->x[start] : (double)start, s->y[start], &px, &py);
            attn__sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.2\" fill=\"%s\"/>\n", px,
                            py, color);
            continue;
        }
        attn__sb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" "
                        "stroke-linejoin=\"round\"%s points=\"", color, dash);
        long col = 0;
        int have = 0;
        double bx[4], by[4];
        int64_t bi[4]; /* first, lowest, highest, last of the current column */
        for (int64_t j = start; j <= end; j++) {
            double px = 0, py = 0;
            if (j < end) pt_px(P, s->x ? s->x[j] : (double)j, s->y[j], &px, &py);
            if (!decimate) {
                if (j < end) attn__sb_printf(b, "%.1f,%.1f ", px, py);
                continue;
            }
            long c = (long)floor(px);
            if (have && (j == end || c != col)) { /* flush the column, in index order */
                int64_t last = -1;
                for (int rep = 0; rep < 4; rep++) {
                    int best = -1;
                    for (int q = 0; q < 4; q++)
                        if (bi[q] > last && (best < 0 || bi[q] < bi[best])) best = q;
                    if (best < 0) break;
                    last = bi[best];
                    attn__sb_printf(b, "%.1f,%.1f ", bx[best], by[best]);
                }
                have = 0;
            }
            if (j == end) break;
            if (!have) {
                col = c;
                for (int q = 0; q < 4; q++) {
                    bx[q] = px;
                    by[q] = py;
                    bi[q] = j;
                }
                have = 1;
            } else {
                if (py > by[1]) { /* lowest value = largest py */
                    bx[1] = px;
                    by[1] = py;
                    bi[1] = j;
                }
                if (py < by[2]) {
                    bx[2] = px;
                    by[2] = py;
                    bi[2] = j;
                }
                bx[3] = px;
                by[3] = py;
                bi[3] = j;
            }
        }
        attn__sb_puts(b, "\"/>\n");
    }
}

static attn_status svg_line_chart(const char *path, const attn_line_chart *ch) {
    static const char *fn = "attn_svg_line_chart";
    if (!path || !ch)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %s is NULL", fn, !path ? "path" : "chart");
    if (ch->n_series < 1 || ch->n_series > 20 || !ch->series)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %d series%s: need 1..20", fn, ch->n_series,
                           ch->series ? "" : " (series is NULL)");
    int W = ch->width ? ch->width : 800, H = ch->height ? ch->height : 480;
    if (W < 200 || W > 4000 || H < 200 || H > 4000)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: size %d x %d: width and height must be in "
                           "200..4000 (or 0 for 800 x 480)", fn, ch->width, ch->height);
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    int legend_cols = 0;
    for (int k = 0; k < ch->n_series; k++) {
        const attn_series *s = &ch->series[k];
        if (s->n < 0 || (s->n > 0 && !s->y))
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: series %d has n = %lld and y %s", fn, k,
                               (long long)s->n, s->y ? "set" : "NULL");
        for (int64_t i = 0; i < s->n; i++) {
            if (!point_ok(s, i, ch->log_y)) continue;
            double x = s->x ? s->x[i] : (double)i, y = s->y[i];
            if (x < xlo) xlo = x;
            if (x > xhi) xhi = x;
            if (y < ylo) ylo = y;
            if (y > yhi) yhi = y;
        }
        char nm[32];
        snprintf(nm, sizeof nm, "series %d", k);
        int c = sb_text(NULL, s->name ? s->name : nm, 0, 28);
        if (c > legend_cols) legend_cols = c;
    }
    if (xlo > xhi) {
        xlo = 0;
        xhi = 1;
    }
    if (ylo > yhi) {
        ylo = ch->log_y ? 0.1 : 0;
        yhi = 1;
    }
    plot_box P;
    axis_make(&P.ax, xlo, xhi, 0);
    axis_make(&P.ay, ylo, yhi, ch->log_y);
    int ytick_cols = 0;
    for (int t = 0; t < P.ay.n_ticks; t++) {
        char lab[64];
        fmt_tick(lab, sizeof lab, P.ay.ticks[t], P.ay.step);
        int c = (int)strlen(lab);
        if (c > ytick_cols) ytick_cols = c;
    }
    const double tick_font = 11, pad = 12;
    double left = pad + (ch->y_label ? 22 : 0) + ytick_cols * SANS_ADVANCE * tick_font + 8;
    double legend_w = 16 + 26 + legend_cols * 0.56 * 12 + pad; /* 12 px text, mostly lowercase */
    double top = pad + (ch->title ? 26 : 6);
    double bottom = pad + 18 + (ch->x_label ? 22 : 0);
    if (W - left - legend_w < 100) W = (int)ceil(left + legend_w + 100); /* keep a plot */
    P.x0 = left;
    P.x1 = W - legend_w;
    P.y0 = top;
    P.y1 = H - bottom;

    attn__strbuf b = {0};
    sb_open_svg(&b, W, H);
    if (ch->title) {
        attn__sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-family=\"" SANS "\" "
                        "font-size=\"16\" font-weight=\"bold\" text-anchor=\"middle\">",
                        (P.x0 + P.x1) / 2, pad + 14);
        sb_text(&b, ch->title, 0, 0);
        attn__sb_puts(&b, "</text>\n");
    }
    /* grid, ticks and tick labels */
    attn__sb_printf(&b, "<g font-family=\"" SANS "\" font-size=\"%.0f\" fill=\"#333\">\n",
                    tick_font);
    for (int t = 0; t < P.ax.n_ticks; t++) {
        double px = P.x0 + axis_frac(&P.ax, P.ax.ticks[t]) * (P.x1 - P.x0);
        char lab[64];
        fmt_tick(lab, sizeof lab, P.ax.ticks[t], P.ax.step);
        attn__sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                        "stroke=\"#e3e3e3\"/>\n", px, P.y0, px, P.y1);
        attn__sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                        "stroke=\"#333\"/>\n", px, P.y1, px, P.y1 + 4);
        attn__sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", px,
                        P.y1 + 16, lab);
    }
    for (int t = 0; t < P.ay.n_ticks; t++) {
        double py = P.y1 - axis_frac(&P.ay, P.ay.ticks[t]) * (P.y1 - P.y0);
        char lab[64];
        fmt_tick(lab, sizeof lab, P.ay.ticks[t], P.ay.step);
        attn__sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                        "stroke=\"#e3e3e3\"/>\n", P.x0, py, P.x1, py);
        attn__sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                        "stroke=\"#333\"/>\n", P.x0 - 4, py, P.x0, py);
        attn__sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", P.x0 - 6,
                        py + 4, lab);
    }
    attn__sb_puts(&b, "</g>\n");
    attn__sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                    "stroke=\"#333\"/>\n", P.x0, P.y0, P.x1 - P.x0, P.y1 - P.y0);
    if (ch->x_label) {
        attn__sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-family=\"" SANS "\" font-size=\"13\" "
                        "text-anchor=\"middle\">", (P.x0 + P.x1) / 2, P.y1 + 38);
        sb_text(&b, ch->x_label, 0, 80);
        attn__sb_puts(&b, "</text>\n");
    }
    if (ch->y_label) {
        attn__sb_printf(&b, "<text transform=\"translate(%.1f,%.1f) rotate(-90)\" "
                        "font-family=\"" SANS "\" font-size=\"13\" text-anchor=\"middle\">",
                        pad + 10, (P.y0 + P.y1) / 2);
        sb_text(&b, ch->y_label, 0, 60);
        attn__sb_puts(&b, "</text>\n");
    }
    /* the curves, clipped to the plot box */
    attn__sb_printf(&b, "<defs><clipPath id=\"plot\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                    "height=\"%.1f\"/></clipPath></defs>\n<g clip-path=\"url(#plot)\">\n", P.x0 - 3,
                    P.y0 - 3, P.x1 - P.x0 + 6, P.y1 - P.y0 + 6);
    for (int k = 0; k < ch->n_series; k++) draw_series(&b, &P, &ch->series[k], k, ch->log_y);
    attn__sb_puts(&b, "</g>\n");
    /* legend */
    attn__sb_printf(&b, "<g font-family=\"" SANS "\" font-size=\"12\" fill=\"#222\">\n");
    for (int k = 0; k < ch->n_series; k++) {
        double lx = P.x1 + 16, ly = P.y0 + 12 + 20 * k;
        attn__sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                        "stroke-width=\"2.5\"%s/>\n", lx, ly, lx + 20, ly, palette[k % 10],
                        k >= 10 ? " stroke-dasharray=\"6,3\"" : "");
        attn__sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\">", lx + 26, ly + 4);
        char nm[32];
        snprintf(nm, sizeof nm, "series %d", k);
        sb_text(&b, ch->series[k].name ? ch->series[k].name : nm, 0, 28);
        attn__sb_puts(&b, "</text>\n");
    }
    attn__sb_puts(&b, "</g>\n</svg>\n");
    attn_status st = write_atomic(fn, path, &b);
    attn__sb_free(&b);
    return st;
}

/* ---- the public entry points: the builders under the "C" numeric locale ---------- */

attn_status attn_svg_heatmap(const char *path, const attn_heatmap *map) {
    attn__c_locale l = attn__c_locale_begin();
    attn_status st = svg_heatmap(path, map);
    attn__c_locale_end(l);
    return st;
}

attn_status attn_svg_heatmap_grid(const char *path, const char *title, const attn_heatmap *maps,
                                  int grid_rows, int grid_cols) {
    attn__c_locale l = attn__c_locale_begin();
    attn_status st = svg_heatmap_grid(path, title, maps, grid_rows, grid_cols);
    attn__c_locale_end(l);
    return st;
}

attn_status attn_svg_line_chart(const char *path, const attn_line_chart *chart) {
    attn__c_locale l = attn__c_locale_begin();
    attn_status st = svg_line_chart(path, chart);
    attn__c_locale_end(l);
    return st;
}
