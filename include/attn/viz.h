/* attn/viz.h: pictures as SVG files: attention heatmaps (alignment maps),
 * grids of heatmaps (layers x heads), line charts (loss curves).
 *
 * The SVG is written by attn itself (no dependency) as UTF-8 text that any
 * browser, Inkscape or rsvg-convert displays. Every text given (titles,
 * token labels, series names) is escaped for XML: & < > " ' become entities;
 * invalid UTF-8, control characters and code points XML forbids become
 * U+FFFD, except '\n' drawn as U+21B5 and '\t' as U+21E5; leading and
 * trailing spaces of a token label are drawn as U+2423 (so a space token
 * stays visible); a label longer than 24 columns is cut to 23 and "…". So
 * any bytes give a well-formed file.
 *
 * Writes are atomic: the picture is built in memory, written to
 * "<path>.tmp.<pid>", flushed, fsync'ed and renamed over <path>; on any error
 * the temporary file is removed and an existing <path> is left as it was.
 *
 * Errors: ATTN_ERR_INVALID_ARG (NULL pointers, sizes out of range, panels of
 * a grid with different colour scales), ATTN_ERR_OOM, ATTN_ERR_IO; the
 * message (attn_last_error()) names the function and the offending value.
 * Nothing here prints.
 */
#ifndef ATTN_VIZ_H
#define ATTN_VIZ_H

#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest heatmap side (rows or columns) accepted; a 1024 x 1024 map is a
 * file of about 60 MB. */
#define ATTN_VIZ_MAX_TOKENS 1024

typedef enum attn_colormap {
    ATTN_CMAP_BLUES = 0, /* white -> dark blue (ColorBrewer "Blues"), the default */
    ATTN_CMAP_VIRIDIS,   /* dark purple -> yellow (matplotlib's viridis), perceptually uniform */
    ATTN_CMAP_COUNT
} attn_colormap;

/* One attention map: weights[r * cols + c] is how much output token r
 * attended to source token c (a row of softmax weights sums to 1). Drawn as
 * in Bahdanau et al. (2015): the source tokens across the top (rotated), the
 * output tokens down the left side, one square cell per weight coloured by
 * the colour scale, a colour bar on the right.
 *
 * Cells are 8..32 px (about 560 px for the longer side, so 1..70 tokens fill
 * a screen and 200 tokens give a 1600 px map that a viewer zooms into);
 * label text is 6..13 px, never taller than a cell, so labels never overlap. */
typedef struct attn_heatmap {
    const float *weights;          /* [rows, cols], row-major; required */
    int rows, cols;                /* 1..ATTN_VIZ_MAX_TOKENS each */
    const char *const *row_labels; /* rows UTF-8 strings (output tokens), or NULL: "0", "1", ... */
    const char *const *col_labels; /* cols UTF-8 strings (source tokens), or NULL */
    const char *title;             /* above the map; NULL for none */
    const char *x_label;           /* caption under the map (e.g. "source"); NULL for none */
    const char *y_label;           /* caption left of the map (e.g. "output"); NULL for none */
    int show_values;               /* 1: each weight printed in its cell (".37"), when cells are
                                    * at least 16 px; 0: colours only */
    attn_colormap colormap;
    float vmin, vmax;              /* the colour scale's range; vmin == vmax (e.g. both 0)
                                    * means [0, 1]. Values outside are clamped; a NaN cell is
                                    * drawn grey, without a value */
} attn_heatmap;

/* Writes one heatmap to path (see above). */
attn_status attn_svg_heatmap(const char *path, const attn_heatmap *map);

/* Writes grid_rows x grid_cols heatmaps in one picture, maps[r * grid_cols +
 * c] at row r, column c (for a Transformer: one row per layer, one column per
 * head). Each panel's title is its caption (e.g. "layer 1, head 3"); title is
 * the picture's (NULL for none). All panels share one colour scale, so they
 * must have the same colormap, vmin and vmax. Panels are smaller than a
 * single map (cells 2..24 px, about 280 px per panel); token labels are drawn
 * while cells are at least 7 px, and left out below that. At most 64 panels. */
attn_status attn_svg_heatmap_grid(const char *path, const char *title, const attn_heatmap *maps,
                                  int grid_rows, int grid_cols);

/* ---- line charts ------------------------------------------------------------------ */

/* One named curve. Points whose x or y is not finite (or y <= 0 on a
 * logarithmic axis) are left out and break the line there. */
typedef struct attn_series {
    const char *name; /* legend text; NULL: "series <k>" */
    const double *x;  /* n values (e.g. steps), or NULL for 0, 1, ..., n-1 */
    const double *y;  /* n values (e.g. losses); required when n > 0 */
    int64_t n;        /* >= 0 */
} attn_series;

/* A chart of several series against a common x axis: axes with "nice" ticks
 * (1, 2, 5 x 10^k; decades on a log axis), a light grid, the legend to the
 * right of the plot, colours from a 10-colour palette (series 11..20 repeat
 * them dashed). A series with more points than 4 per pixel column is drawn
 * from the minimum and maximum of each column, which looks the same. With no
 * drawable point at all the axes span [0, 1]. */
typedef struct attn_line_chart {
    const char *title, *x_label, *y_label; /* each NULL for none */
    const attn_series *series;
    int n_series; /* 1..20 */
    int log_y;    /* 1: logarithmic y axis */
    int width, height; /* the whole picture in px; 0 means 800 x 480; each 200..4000 */
} attn_line_chart;

/* Writes the chart to path. */
attn_status attn_svg_line_chart(const char *path, const attn_line_chart *chart);

#ifdef __cplusplus
}
#endif
#endif
