/* caption_picture.c: the pictures of `attn caption eval --pictures` and
 * `describe --picture`: a title with the generated and the reference
 * caption, the scene, and one panel per generated word with its attention
 * map laid over the image (PNG), as in the paper's figures. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/png.h"
#include "caption_cmd.h"
#include "commands.h"

#define CMD "caption"

/* ---- pictures ------------------------------------------------------------------------- */

/* A 5x7 font for the caption words: rows top to bottom, bit 4 the left column. */
static const uint8_t *glyph(char ch) {
    static const uint8_t lower[26][7] = {
        {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F}, {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E},
        {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E}, {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F},
        {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}, {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08},
        {0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E}, {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11},
        {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E}, {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C},
        {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}, {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E},
        {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11}, {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11},
        {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E}, {0x00, 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10},
        {0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x01}, {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10},
        {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E}, {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06},
        {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D}, {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04},
        {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A}, {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11},
        {0x00, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E}, {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F}};
    static const uint8_t lt[7] = {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02},
                         gt[7] = {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08},
                         dash[7] = {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00},
                         colon[7] = {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00},
                         blank[7] = {0}, unknown[7] = {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04};
    if (ch >= 'a' && ch <= 'z') return lower[ch - 'a'];
    if (ch >= 'A' && ch <= 'Z') return lower[ch - 'A'];
    switch (ch) {
    case '<': return lt;
    case '>': return gt;
    case '-': return dash;
    case ':': return colon;
    case ' ': return blank;
    default: return unknown;
    }
}

typedef struct canvas {
    uint8_t *px; /* RGB */
    int w, h;
} canvas;

static void put_px(canvas *c, int x, int y, uint8_t r, uint8_t g, uint8_t b) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    uint8_t *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    p[0] = r;
    p[1] = g;
    p[2] = b;
}

static void draw_text(canvas *c, int x, int y, const char *s, int scale) {
    for (; *s; s++, x += 6 * scale) {
        const uint8_t *gl = glyph(*s);
        for (int r = 0; r < 7; r++)
            for (int k = 0; k < 5; k++)
                if (gl[r] & (0x10 >> k))
                    for (int dy = 0; dy < scale; dy++)
                        for (int dx = 0; dx < scale; dx++) put_px(c, x + k * scale + dx, y + r * scale + dy, 20, 20, 20);
    }
}

#define PIC_SCALE 3
#define PANEL (ATTN_SCENE_SIDE * PIC_SCALE)
#define PANEL_GAP 6
#define LABEL_H 20

/* One panel at (x0, y0): the scene, and when alpha is given its map
 * (side x side, bilinear, scaled to its maximum) laid over it in red. */
static void draw_panel(canvas *c, int x0, int y0, const uint8_t *img, const float *alpha, int side, const char *label) {
    float mx = 0.f;
    for (int i = 0; alpha && i < side * side; i++) mx = alpha[i] > mx ? alpha[i] : mx;
    for (int y = 0; y < PANEL; y++)
        for (int x = 0; x < PANEL; x++) {
            const float g = img[(y / PIC_SCALE) * ATTN_SCENE_SIDE + x / PIC_SCALE];
            float a = 0.f;
            if (alpha && mx > 0.f) {
                const float fy = ((float)y + 0.5f) * (float)side / PANEL - 0.5f, fx = ((float)x + 0.5f) * (float)side / PANEL - 0.5f;
                int y1 = (int)floorf(fy), x1 = (int)floorf(fx);
                const float wy = fy - (float)y1, wx = fx - (float)x1;
                float v = 0.f;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) {
                        int yy = y1 + dy, xx = x1 + dx;
                        yy = yy < 0 ? 0 : yy >= side ? side - 1 : yy;
                        xx = xx < 0 ? 0 : xx >= side ? side - 1 : xx;
                        v += alpha[yy * side + xx] * (dy ? wy : 1.f - wy) * (dx ? wx : 1.f - wx);
                    }
                a = v / mx;
            }
            const float base = alpha ? 0.55f * g : g;
            float r = base + 255.f * a * 0.85f, gg = base + 40.f * a, b = base * (1.f - 0.5f * a);
            r = r > 255.f ? 255.f : r;
            gg = gg > 255.f ? 255.f : gg;
            const int grid = x == PANEL / 2 || y == PANEL / 2; /* the 2x2 cells */
            put_px(c, x0 + x, y0 + y, grid ? 60 : (uint8_t)r, grid ? 90 : (uint8_t)gg, grid ? 160 : (uint8_t)b);
        }
    draw_text(c, x0 + 2, y0 + PANEL + 3, label, 2);
}

/* The picture of one scene: a title (generated and reference captions),
 * then the scene and one panel per generated word. */
int cap_write_picture(const char *prog, const char *path, const uint8_t *img, const int32_t *ids, const float *alphas,
                      int64_t L, const char *ref) {
    const int side = (int)lround(sqrt((double)L));
    int nw = 0;
    while (nw < CAP_MAX_LEN && ids[nw] != ATTN_CAPTION_PAD_ID) {
        nw++;
        if (ids[nw - 1] == ATTN_CAPTION_EOS_ID) break;
    }
    const int per_row = 6, panels = nw + 1, rows = (panels + per_row - 1) / per_row;
    canvas c;
    c.w = per_row * (PANEL + PANEL_GAP) + PANEL_GAP;
    c.h = 40 + rows * (PANEL + LABEL_H + PANEL_GAP);
    c.px = malloc((size_t)c.w * (size_t)c.h * 3);
    if (!c.px) {
        fprintf(stderr, "%s: out of memory for a picture\n", prog);
        return 1;
    }
    memset(c.px, 255, (size_t)c.w * (size_t)c.h * 3);
    char hyp[512], title[700];
    attn_caption_text(ids, CAP_MAX_LEN, hyp, sizeof hyp);
    snprintf(title, sizeof title, "generated: %s", hyp);
    draw_text(&c, PANEL_GAP, 6, title, 1);
    if (ref) {
        snprintf(title, sizeof title, "reference: %s", ref);
        draw_text(&c, PANEL_GAP, 20, title, 1);
    }
    for (int p = 0; p < panels; p++) {
        const int x0 = PANEL_GAP + (p % per_row) * (PANEL + PANEL_GAP), y0 = 40 + (p / per_row) * (PANEL + LABEL_H + PANEL_GAP);
        draw_panel(&c, x0, y0, img, p ? alphas + (int64_t)(p - 1) * L : NULL, side,
                   p ? attn_caption_word(ids[p - 1]) : "image");
    }
    const attn_status st = attn_png_write(path, c.px, c.w, c.h, 3);
    free(c.px);
    if (st != ATTN_OK) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, attn_last_error());
        return 1;
    }
    printf("wrote %s\n", path);
    return 0;
}

