/* attn/explorer.h: the attention explorer: one self-contained HTML page
 * (inline JavaScript and CSS, no network, opens from a file) that shows the
 * attention of one input interactively: a head view (tokens in two columns,
 * lines weighted by attention, heads in colours, hover a token to filter),
 * a model view (every layer x head as a small heatmap, click one to enlarge
 * it with readable, scrollable token labels), and for alignment maps (the
 * RNN encoder-decoders) a step view (the source weights of each decoding
 * step). Masks (causal, windows, patterns) are drawn under the weights.
 * docs/explorer.md describes the page and its test hook.
 *
 * The page's code lives in viz/explorer.html, viz/explorer.js and
 * viz/explorer.css, embedded into the library at build time; the data is a
 * JSON object in the page, with the weights quantised:
 *   decimals 3: round(w * 1000) as little-endian uint16, base64 (2.7 bytes a
 *               weight); shown as "0.123", exact to +-0.0005;
 *   decimals 2: round(w * 100) as uint8, base64 (1.3 bytes a weight); exact
 *               to +-0.005.
 * The page states which. Automatic choice (decimals = 0): 3 while all maps
 * together hold at most ATTN_EXPLORER_AUTO3_WEIGHTS weights (a 6-layer,
 * 12-head model at 128 tokens, 1.2 M weights, is a 3 MB page), else 2.
 *
 * Dimension legend: L layers, H heads, R rows (queries, output steps),
 * C columns (keys, source tokens).
 *
 * Writes are atomic (a temporary file renamed over path). Errors:
 * ATTN_ERR_INVALID_ARG (NULL pointers, sizes out of range, a weight that is
 * not a number in [0, 1]: the message names map, layer, head, row, column
 * and the value), ATTN_ERR_OOM, ATTN_ERR_IO. Nothing here prints.
 */
#ifndef ATTN_EXPLORER_H
#define ATTN_EXPLORER_H

#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_EXPLORER_MAX_MAPS 8
#define ATTN_EXPLORER_MAX_LAYERS 64
#define ATTN_EXPLORER_MAX_HEADS 64
#define ATTN_EXPLORER_MAX_TOKENS 4096        /* rows or columns of one map */
#define ATTN_EXPLORER_MAX_WEIGHTS 16000000   /* all maps of a page together */
#define ATTN_EXPLORER_AUTO3_WEIGHTS 2400000  /* automatic precision: 3 decimals up to this */

typedef enum attn_explorer_kind {
    ATTN_EXPLORER_SELF = 0,  /* self-attention: rows and columns are the same sequence
                              * (or, Transformer-XL, columns are memory + segment) */
    ATTN_EXPLORER_CROSS,     /* cross-attention: output steps over source tokens */
    ATTN_EXPLORER_ALIGNMENT, /* one map of an RNN decoder (L = H = 1): the step view is added */
    ATTN_EXPLORER_KIND_COUNT
} attn_explorer_kind;

/* One set of attention maps (e.g. "encoder self-attention"). */
typedef struct attn_explorer_map {
    const char *name;              /* tab title; required */
    attn_explorer_kind kind;
    int layers, heads;             /* L, H: 1..64 each */
    int rows, cols;                /* R, C: 1..ATTN_EXPLORER_MAX_TOKENS each */
    /* [L, H, R, C] row-major: weights[((l * H + h) * R + r) * C + c], how
     * much query r attends to key c in layer l, head h; each in [0, 1] */
    const float *weights;
    const char *const *row_labels; /* R UTF-8 strings (any bytes: invalid UTF-8 becomes U+FFFD) */
    const char *const *col_labels; /* C UTF-8 strings */
    const char *row_axis;          /* e.g. "query", "output step"; NULL: "query" */
    const char *col_axis;          /* e.g. "key", "source"; NULL: "key" */
    /* [R, C]: 1 (any nonzero) where query r may attend to key c, 0 where
     * the model masks it (causal, window, padding), or NULL for no mask.
     * The page draws masked cells hatched under the weights. */
    const uint8_t *mask;
    const char *mask_name;         /* e.g. "causal"; NULL: "mask" */
    const char *note;              /* one line under the tab, or NULL */
    int col_grid;                  /* > 0: the columns are a grid of this many per row (image
                                    * regions, row-major; C a multiple of it), drawn so in the
                                    * step view; 0: a sequence */
} attn_explorer_map;

typedef struct attn_explorer_page {
    const char *title;             /* e.g. "GPT self-attention: \"the cat\""; required */
    const char *subtitle;          /* e.g. the model's shape, or NULL */
    const attn_explorer_map *maps;
    int n_maps;                    /* 1..ATTN_EXPLORER_MAX_MAPS */
    int decimals;                  /* 0 (automatic), 2 or 3 */
} attn_explorer_page;

/* Writes the page to path. */
attn_status attn_explorer_write(const char *path, const attn_explorer_page *page);

/* The precision attn_explorer_write uses for page: 2 or 3 decimals (0 and
 * the error set when page is invalid). */
int attn_explorer_decimals(const attn_explorer_page *page);

/* Writes every weight of page at full float precision as text, one line
 * per weight, tab-separated, after a header line:
 *   map<TAB>layer<TAB>head<TAB>row<TAB>col<TAB>weight
 * (map is the index into page->maps, weight printed with %.9g), for
 * analysis outside attn and for checking a page against the weights. */
attn_status attn_explorer_write_weights(const char *path, const attn_explorer_page *page);

#ifdef __cplusplus
}
#endif
#endif
