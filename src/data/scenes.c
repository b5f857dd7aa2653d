/* scenes.c: captioned 2x2 scenes of Fashion-MNIST items (include/attn/scenes.h,
 * docs/caption.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/idx.h"
#include "attn/rng.h"
#include "attn/scenes.h"

static const char *const word_text[ATTN_CAPTION_VOCAB] = {
    "<pad>", "<bos>", "<eos>", "a", "and", "top", "bottom", "left", "right",
    "tee", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"};

/* The held-out (class, cell) pairs: never in TRAIN or VALID scenes. Six of
 * the 40 pairs, each class at most once, every cell at least once. */
static const int held_out[][2] = {
    {8, 0}, /* bag top left */
    {7, 1}, /* sneaker top right */
    {3, 2}, /* dress bottom left */
    {4, 3}, /* coat bottom right */
    {1, 0}, /* trousers top left */
    {5, 3}, /* sandal bottom right */
};

int attn_scene_pair_held_out(int cls, int cell) {
    for (size_t i = 0; i < sizeof held_out / sizeof held_out[0]; i++)
        if (held_out[i][0] == cls && held_out[i][1] == cell) return 1;
    return 0;
}

int attn_scene_is_novel(const attn_scene *s) {
    if (!s) return 0;
    for (int c = 0; c < ATTN_SCENE_CELLS; c++)
        if (s->cls[c] >= 0 && attn_scene_pair_held_out(s->cls[c], c)) return 1;
    return 0;
}

const char *attn_caption_word(int32_t id) {
    return id >= 0 && id < ATTN_CAPTION_VOCAB ? word_text[id] : "?";
}

int attn_scene_caption(const attn_scene *s, int32_t *ids, int *cell_of) {
    int n = 0;
    if (!s || !ids) return 0;
    for (int c = 0; c < ATTN_SCENE_CELLS; c++) {
        if (s->cls[c] < 0 || s->cls[c] >= ATTN_SCENE_CLASSES) continue;
        if (n > 0) {
            if (cell_of) cell_of[n] = -1;
            ids[n++] = ATTN_CAPTION_AND;
        }
        const int32_t w[4] = {ATTN_CAPTION_A, ATTN_CAPTION_CLASS0 + s->cls[c],
                              c < 2 ? ATTN_CAPTION_TOP : ATTN_CAPTION_BOTTOM,
                              c % 2 == 0 ? ATTN_CAPTION_LEFT : ATTN_CAPTION_RIGHT};
        for (int k = 0; k < 4; k++) {
            if (cell_of) cell_of[n] = k == 1 ? c : -1;
            ids[n++] = w[k];
        }
    }
    return n;
}

size_t attn_caption_text(const int32_t *ids, int64_t n, char *buf, size_t cap) {
    size_t len = 0;
    if (buf && cap) buf[0] = '\0';
    for (int64_t i = 0; ids && i < n; i++) {
        if (ids[i] == ATTN_CAPTION_EOS || ids[i] == ATTN_CAPTION_PAD) break;
        if (ids[i] == ATTN_CAPTION_BOS) continue;
        const char *w = attn_caption_word(ids[i]);
        const size_t wl = strlen(w) + (len ? 1 : 0);
        if (buf && cap && len + wl < cap) snprintf(buf + len, cap - len, "%s%s", len ? " " : "", w);
        else if (buf && cap && len < cap - 1) { /* cut: fill what fits */
            char tmp[32];
            snprintf(tmp, sizeof tmp, "%s%s", len ? " " : "", w);
            size_t k = 0;
            while (len + k < cap - 1 && tmp[k]) { buf[len + k] = tmp[k]; k++; }
            buf[len + k] = '\0';
        }
        len += wl;
    }
    return len;
}

static int word_id(const char *w, size_t n) {
    for (int i = 0; i < ATTN_CAPTION_VOCAB; i++)
        if (strlen(word_text[i]) == n && !strncmp(word_text[i], w, n)) return i;
    return -1;
}

int attn_caption_parse(const char *text, int8_t cls[ATTN_SCENE_CELLS]) {
    int32_t w[64];
    int n = 0;
    if (!text || !cls) return -1;
    for (int c = 0; c < ATTN_SCENE_CELLS; c++) cls[c] = -1;
    const char *p = text;
    while (*p) {
        while (*p == ' ') p++;
        if (!*p) break;
        const char *q = p;
        while (*q && *q != ' ') q++;
        const int id = word_id(p, (size_t)(q - p));
        if (id < 0 || n >= 64) return -1;
        w[n++] = id;
        p = q;
    }
    int i = 0, last_cell = -1;
    while (i < n) {
        if (i > 0) {
            if (w[i] != ATTN_CAPTION_AND) return -1;
            i++;
        }
        if (i + 4 > n || w[i] != ATTN_CAPTION_A) return -1;
        const int k = w[i + 1] - ATTN_CAPTION_CLASS0;
        if (k < 0 || k >= ATTN_SCENE_CLASSES) return -1;
        const int row = w[i + 2] == ATTN_CAPTION_TOP ? 0 : w[i + 2] == ATTN_CAPTION_BOTTOM ? 1 : -1;
        const int col = w[i + 3] == ATTN_CAPTION_LEFT ? 0 : w[i + 3] == ATTN_CAPTION_RIGHT ? 1 : -1;
        if (row < 0 || col < 0) return -1;
        const int cell = 2 * row + col;
        if (cell <= last_cell) return -1; /* the fixed order, each cell once */
        cls[cell] = (int8_t)k;
        last_cell = cell;
        i += 4;
    }
    return n > 0 ? 0 : -1;
}

int attn_scene_mask(const attn_scenes *s, int64_t i, int threshold, int8_t *out) {
    if (!s || !out || !s->scenes || !s->pixels || i < 0 || i >= s->n || threshold < 0 || threshold > 254)
        return -1;
    const attn_scene *e = &s->scenes[i];
    const uint8_t *px = s->pixels + i * ATTN_SCENE_SIDE * ATTN_SCENE_SIDE;
    int n = 0;
    for (int r = 0; r < ATTN_SCENE_SIDE; r++)
        for (int c = 0; c < ATTN_SCENE_SIDE; c++) {
            const int cell = (r / ATTN_SCENE_CELL) * 2 + c / ATTN_SCENE_CELL;
            const int on = e->cls[cell] >= 0 && px[r * ATTN_SCENE_SIDE + c] > threshold;
            out[r * ATTN_SCENE_SIDE + c] = (int8_t)(on ? cell : -1);
            n += on;
        }
    return n;
}

void attn_scenes_free(attn_scenes *s) {
    if (!s) return;
    free(s->scenes);
    free(s->pixels);
    memset(s, 0, sizeof *s);
}

attn_status attn_scenes_make(const attn_idx *images, const attn_idx *labels, attn_scene_split split,
                             int64_t n, uint64_t seed, attn_scenes *out) {
    static const char fn[] = "attn_scenes_make";
    if (out) memset(out, 0, sizeof *out);
    if (!images || !labels || !out) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (n < 1 || n > (1 << 24))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: n = %lld scenes, expected 1..%d", fn, (long long)n, 1 << 24);
    if ((int)split < 0 || split > ATTN_SCENES_TEST)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: split %d outside 0..2", fn, (int)split);
    if (images->ndim != 3 || images->dims[1] != ATTN_SCENE_CELL || images->dims[2] != ATTN_SCENE_CELL)
        return attn__error(ATTN_ERR_SHAPE, "%s: images must be IDX [N, 28, 28], got %d dimensions [%lld, %lld, %lld]",
                           fn, images->ndim, (long long)images->dims[0], (long long)images->dims[1],
                           (long long)images->dims[2]);
    if (labels->ndim != 1 || labels->dims[0] != images->dims[0])
        return attn__error(ATTN_ERR_SHAPE, "%s: labels must be IDX [%lld] (one per image), got %d dimensions, first %lld",
                           fn, (long long)images->dims[0], labels->ndim, (long long)labels->dims[0]);
    const int64_t N = images->dims[0];
    int64_t lo = 0, hi = N;
    if (split != ATTN_SCENES_TEST) {
        if (N < 20) return attn__error(ATTN_ERR_SHAPE, "%s: %lld training images, need at least 20 to hold 10%% out", fn, (long long)N);
        if (split == ATTN_SCENES_TRAIN) hi = N - N / 10;
        else lo = N - N / 10;
    }
    for (int64_t i = 0; i < N; i++)
        if (labels->data[i] >= ATTN_SCENE_CLASSES)
            return attn__error(ATTN_ERR_FORMAT, "%s: label %d of image %lld is not a Fashion-MNIST class (0..9)",
                               fn, labels->data[i], (long long)i);
    /* the images of each class in [lo, hi) */
    int64_t count[ATTN_SCENE_CLASSES] = {0}, start[ATTN_SCENE_CLASSES + 1] = {0};
    for (int64_t i = lo; i < hi; i++) count[labels->data[i]]++;
    for (int k = 0; k < ATTN_SCENE_CLASSES; k++) {
        if (!count[k])
            return attn__error(ATTN_ERR_SHAPE, "%s: no image of class %d among items [%lld, %lld) of the %s split",
                               fn, k, (long long)lo, (long long)hi,
                               split == ATTN_SCENES_TRAIN ? "train" : split == ATTN_SCENES_VALID ? "valid" : "test");
        start[k + 1] = start[k] + count[k];
    }
    int32_t *by_class = malloc((size_t)(hi - lo) * sizeof *by_class);
    attn_scene *sc = malloc((size_t)n * sizeof *sc);
    uint8_t *px = calloc((size_t)n, (size_t)ATTN_SCENE_SIDE * ATTN_SCENE_SIDE);
    if (!by_class || !sc || !px) {
        free(by_class);
        free(sc);
        free(px);
        return attn__error(ATTN_ERR_OOM, "%s: cannot allocate %lld scenes", fn, (long long)n);
    }
    int64_t fill[ATTN_SCENE_CLASSES];
    memcpy(fill, start, sizeof fill);
    for (int64_t i = lo; i < hi; i++) by_class[fill[labels->data[i]]++] = (int32_t)i;

    attn_rng rng;
    attn_rng_init(&rng, seed * 3u + (uint64_t)split + 0x5ce7e5ull);
    for (int64_t s = 0; s < n; s++) {
        attn_scene *e = &sc[s];
        for (int c = 0; c < ATTN_SCENE_CELLS; c++) {
            e->cls[c] = -1;
            e->src[c] = -1;
        }
        const int k = 1 + (int)attn_rng_next_below(&rng, 4);
        int cells[4] = {0, 1, 2, 3};
        for (int i = 3; i > 0; i--) { /* Fisher-Yates; the first k cells are the occupied ones */
            const int j = (int)attn_rng_next_below(&rng, (uint32_t)(i + 1));
            const int t = cells[i];
            cells[i] = cells[j];
            cells[j] = t;
        }
        for (int i = 0; i < k; i++) {
            const int c = cells[i];
            int cls;
            do cls = (int)attn_rng_next_below(&rng, ATTN_SCENE_CLASSES);
            while (split != ATTN_SCENES_TEST && attn_scene_pair_held_out(cls, c));
            const int32_t img = by_class[start[cls] + (int64_t)attn_rng_next_below(&rng, (uint32_t)count[cls])];
            e->cls[c] = (int8_t)cls;
            e->src[c] = img;
            const uint8_t *from = images->data + (int64_t)img * images->item_size;
            uint8_t *to = px + s * ATTN_SCENE_SIDE * ATTN_SCENE_SIDE +
                          (c / 2) * ATTN_SCENE_CELL * ATTN_SCENE_SIDE + (c % 2) * ATTN_SCENE_CELL;
            for (int r = 0; r < ATTN_SCENE_CELL; r++)
                memcpy(to + r * ATTN_SCENE_SIDE, from + r * ATTN_SCENE_CELL, ATTN_SCENE_CELL);
        }
    }
    free(by_class);
    out->n = n;
    out->scenes = sc;
    out->pixels = px;
    return ATTN_OK;
}
