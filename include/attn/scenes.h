/* attn/scenes.h: captioned scenes made from Fashion-MNIST images, the data
 * of the Show, Attend and Tell decoder (caption.h). docs/caption.md states
 * the grammar and the splits.
 *
 * A scene is a 56x56 grey canvas cut into a 2x2 grid of 28x28 cells
 * (cell 0 top left, 1 top right, 2 bottom left, 3 bottom right) holding one
 * to four Fashion-MNIST items, one per occupied cell. Its caption names
 * the occupied cells in that fixed order:
 *
 *   caption := item ( "and" item )*
 *   item    := "a" CLASS POSITION
 *   CLASS   := tee | trousers | pullover | dress | coat | sandal | shirt |
 *              sneaker | bag | boot          (Fashion-MNIST labels 0..9)
 *   POSITION:= "top left" | "top right" | "bottom left" | "bottom right"
 *
 * e.g. "a bag top left and a sneaker bottom right".
 *
 * Splits: TRAIN scenes take their items from the first 90% of the
 * Fashion-MNIST training file, VALID scenes from its last 10% (held out of
 * training), TEST scenes from the test file. Held-out combinations: the
 * (class, cell) pairs of attn_scene_pair_held_out never occur in TRAIN or
 * VALID scenes (a drawn class that would make one is drawn again); TEST
 * scenes are drawn without that rule, so about a third of them hold at
 * least one pair the model never saw (attn_scene_is_novel).
 *
 * Everything is deterministic: the same (images, split, n, seed) give the
 * same scenes, bit for bit.
 */
#ifndef ATTN_SCENES_H
#define ATTN_SCENES_H

#include <stddef.h>
#include <stdint.h>

#include "idx.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_SCENE_SIDE 56  /* canvas side in pixels */
#define ATTN_SCENE_CELL 28  /* cell side in pixels */
#define ATTN_SCENE_CELLS 4  /* 2x2 grid */
#define ATTN_SCENE_CLASSES 10
/* Longest caption: 4 items of 4 words and 3 "and"s. */
#define ATTN_SCENE_MAX_WORDS 19

/* The caption vocabulary: ids 0..ATTN_CAPTION_VOCAB-1. */
enum {
    ATTN_CAPTION_PAD = 0,
    ATTN_CAPTION_BOS = 1,
    ATTN_CAPTION_EOS = 2,
    ATTN_CAPTION_A = 3,
    ATTN_CAPTION_AND = 4,
    ATTN_CAPTION_TOP = 5,
    ATTN_CAPTION_BOTTOM = 6,
    ATTN_CAPTION_LEFT = 7,
    ATTN_CAPTION_RIGHT = 8,
    ATTN_CAPTION_CLASS0 = 9, /* class k is word ATTN_CAPTION_CLASS0 + k */
    ATTN_CAPTION_VOCAB = 19
};

typedef enum attn_scene_split {
    ATTN_SCENES_TRAIN = 0,
    ATTN_SCENES_VALID = 1,
    ATTN_SCENES_TEST = 2
} attn_scene_split;

/* One scene: the class (0..9) in each cell, or -1 for an empty cell, and
 * the index of the item's image in its IDX file (-1 when empty). */
typedef struct attn_scene {
    int8_t cls[ATTN_SCENE_CELLS];
    int32_t src[ATTN_SCENE_CELLS];
} attn_scene;

/* A set of scenes with their canvases: pixels holds n * 56 * 56 bytes,
 * scene i at pixels + i * 56 * 56, rows top to bottom. Owned; free with
 * attn_scenes_free. */
typedef struct attn_scenes {
    int64_t n;
    attn_scene *scenes;
    uint8_t *pixels;
} attn_scenes;

/* Draws n >= 1 scenes of `split` from images (IDX [N, 28, 28]) and labels
 * (IDX [N], values 0..9) with the seed. TRAIN and VALID read the training
 * file (N >= 20: TRAIN takes items [0, N - N/10), VALID [N - N/10, N)); TEST
 * reads the test file (all N). Each scene: k ~ uniform{1..4} items in k
 * distinct cells drawn uniformly, classes uniform over the 10 (redrawn for
 * TRAIN/VALID while the pair is held out), each item a uniformly drawn image
 * of its class from the split's range.
 * Errors: ATTN_ERR_INVALID_ARG (NULL argument, n < 1 or > 2^24, split
 * outside the enum), ATTN_ERR_SHAPE (images not [N, 28, 28], labels not [N],
 * too few images, a class with no image in the range), ATTN_ERR_FORMAT (a
 * label above 9), ATTN_ERR_OOM. On error *out is zeroed. */
attn_status attn_scenes_make(const attn_idx *images, const attn_idx *labels, attn_scene_split split,
                             int64_t n, uint64_t seed, attn_scenes *out);
void attn_scenes_free(attn_scenes *s);

/* 1 if (cls, cell) is a held-out pair: never in TRAIN or VALID scenes. */
int attn_scene_pair_held_out(int cls, int cell);
/* 1 if the scene holds at least one held-out pair. */
int attn_scene_is_novel(const attn_scene *s);

/* The words of one scene's caption (without BOS/EOS) into ids[0..n) (room
 * for ATTN_SCENE_MAX_WORDS); cell_of[i] (when not NULL) receives the cell
 * of word i when it is a class word, -1 for every other word. Returns the
 * number of words (0 for a scene without items). */
int attn_scene_caption(const attn_scene *s, int32_t *ids, int *cell_of);

/* The text of word id ("a", "bag", "<eos>", ...); "?" outside the vocabulary. */
const char *attn_caption_word(int32_t id);

/* Writes the words of ids[0..n), separated by single spaces and stopping at
 * the first EOS or PAD (BOS is skipped), into buf (NUL-terminated, cut to
 * cap - 1 bytes). Returns the length the full text would have. */
size_t attn_caption_text(const int32_t *ids, int64_t n, char *buf, size_t cap);

/* Parses a caption of the grammar above back into the class of each cell
 * (-1 empty); returns 0 on success, -1 if text is not a caption of the
 * grammar (items out of order, a cell twice, an unknown word). */
int attn_caption_parse(const char *text, int8_t cls[ATTN_SCENE_CELLS]);

/* The item masks of scene i of s (docs/vision_modules.md, "The SAG mask in
 * its own setting"): out[56 * 56] receives, for each canvas pixel (rows top
 * to bottom), the cell (0..3) of the item drawn there, or -1 for the
 * background. A pixel belongs to the item of its cell when the cell is
 * occupied and the item image's grey value there (the canvas byte, copied
 * from the Fashion-MNIST image) is above threshold (0..254); empty cells and
 * darker pixels are background. Returns the number of item pixels, or -1
 * for a NULL argument, i outside [0, s->n) or a threshold outside 0..254
 * (out untouched). */
int attn_scene_mask(const attn_scenes *s, int64_t i, int threshold, int8_t *out);

/* The grey-value threshold of the item masks used by attn vision masks: 25
 * (about 10% of full scale). */
#define ATTN_SCENE_MASK_THRESHOLD 25

#ifdef __cplusplus
}
#endif
#endif
