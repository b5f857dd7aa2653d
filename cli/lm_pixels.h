/* lm_pixels.h: Fashion-MNIST (or MNIST) images as pixel sequences for
 * `attn lm train --pixels L` (docs/sparse.md, "Images as sequences"): each
 * 28 x 28 image is a sequence of 784 symbols, its pixels quantised to L
 * levels (q = floor(byte L / 256)) in raster order, or in the block raster
 * order of a local 2-D pattern. The model reads [L, x_0 .. x_782] (L: the
 * start symbol) and predicts x_0 .. x_783; vocabulary L + 1.
 * Splits: train = the first 55,000 images of train-images-idx3-ubyte,
 * valid = its last 5,000 (in general the last N / 12 of its N images),
 * test = t10k-images-idx3-ubyte (Fashion-MNIST's test split). Private to
 * the CLI. */
#ifndef ATTN_CLI_LM_PIXELS_H
#define ATTN_CLI_LM_PIXELS_H

#include <stdint.h>

#include "attn/attn.h"

#define LM_PIX_SIDE 28
#define LM_PIX_LEN (LM_PIX_SIDE * LM_PIX_SIDE)

typedef struct lm_pixels {
    int levels;
    int64_t n;        /* images */
    uint8_t *seq;     /* [n, 784] quantised symbols in sequence order */
} lm_pixels;

/* The sequence order of a pattern: order[i] = row * 28 + col of the pixel
 * at position i (raster unless p is LOCAL_2D). 0, or 1 with the reason
 * printed (a local 2-D pattern whose width is not 28 or whose blocks do not
 * tile the image). */
int lm_pixels_order(const char *prog, const attn_sparse_pattern *p, int32_t order[LM_PIX_LEN]);

/* Loads split "train", "valid" or "test" of the IDX files in dir,
 * quantised to levels in [2, 256], in the given order. 0, or 1 printed. */
int lm_pixels_load(const char *prog, const char *dir, const char *split, int levels,
                   const int32_t order[LM_PIX_LEN], lm_pixels *out);
void lm_pixels_free(lm_pixels *px);

/* The model's input and targets of image k: in = [levels, x_0 .. x_782],
 * tg = [x_0 .. x_783]. */
void lm_pixels_rows(const lm_pixels *px, int64_t k, int32_t *in, int32_t *tg);

#endif
