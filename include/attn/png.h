/* attn/png.h: PNG images in and out, without any dependency (src/io/png.c).
 *
 * attn writes pictures that a person looks at (image grids, attention maps
 * laid over an image) and reads a user's own image (`attn caption describe
 * IMAGE.png`). PNG (ISO/IEC 15948) is the format every viewer opens.
 *
 * Writing: 8-bit grey (channels 1) or 8-bit RGB (channels 3), no filter,
 * the zlib stream in stored (uncompressed) deflate blocks: bigger files than
 * a compressing encoder would make, exact and short code. The file is
 * replaced atomically (a crash leaves the old file or the new one).
 *
 * Reading: every non-interlaced PNG of the standard's colour types (grey,
 * RGB, palette, grey + alpha, RGB + alpha) at every bit depth they allow
 * (1, 2, 4, 8, 16), with the five row filters and a full inflater (stored,
 * fixed and dynamic Huffman blocks). The result is 8 bits per channel:
 * grey stays grey (channels 1), everything else becomes RGB (channels 3);
 * 16-bit samples keep their high byte; sub-byte grey is scaled to 0-255; an
 * alpha channel is composited over black (attn's images are bright items on
 * a black ground, as Fashion-MNIST's). Interlaced (Adam7) images are
 * refused with ATTN_ERR_UNSUPPORTED, and so are images over
 * ATTN_PNG_MAX_SIDE pixels a side or ATTN_PNG_MAX_PIXELS pixels.
 *
 * The reader trusts nothing in the file: chunk lengths, CRCs, the zlib
 * header and Adler-32, Huffman tables, back-references and the inflated size
 * (which must be exactly what the header implies) are all checked, and a
 * file that fails a check is refused with ATTN_ERR_FORMAT naming the path
 * and what was wrong.
 */
#ifndef ATTN_PNG_H
#define ATTN_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_PNG_MAX_SIDE 16384
#define ATTN_PNG_MAX_PIXELS (1 << 26)

/* Writes pixels [height][width][channels] (rows top to bottom) to path as
 * an 8-bit PNG. channels: 1 (grey) or 3 (RGB). Errors: ATTN_ERR_INVALID_ARG
 * (NULL path or pixels, a side < 1 or over ATTN_PNG_MAX_SIDE, more than
 * ATTN_PNG_MAX_PIXELS pixels, another channel count), ATTN_ERR_OOM,
 * ATTN_ERR_IO. */
attn_status attn_png_write(const char *path, const uint8_t *pixels, int width, int height,
                           int channels);

/* Reads the PNG at path: *pixels (malloc'ed, [height][width][channels],
 * released by the caller with free), *width, *height, *channels (1 or 3).
 * On error the outputs are zero / NULL and there is nothing to free.
 * Errors: ATTN_ERR_INVALID_ARG (a NULL argument), ATTN_ERR_IO (cannot open
 * or read), ATTN_ERR_FORMAT (not a PNG, or a malformed one: the message says
 * what), ATTN_ERR_UNSUPPORTED (interlaced, or too large), ATTN_ERR_OOM. */
attn_status attn_png_read(const char *path, uint8_t **pixels, int *width, int *height,
                          int *channels);

/* The same, from a PNG held in memory (name is used in messages). */
attn_status attn_png_decode(const uint8_t *data, size_t size, const char *name, uint8_t **pixels,
                            int *width, int *height, int *channels);

#ifdef __cplusplus
}
#endif
#endif
