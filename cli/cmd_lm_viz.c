/* cmd_lm_viz.c: the pictures of `attn lm` (cli/cmd_lm.c has train, eval and
 * sample): `attn lm viz` (a Transformer-XL's memory attention and learned
 * spans, a GPT's window, the token mixers' permutations and clusters, the
 * explorer page, a pixel model's heads as PNG) and `attn lm pattern` (a
 * sparse pattern's mask as PNG and its shares). docs/cli.md is the manual. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "commands.h"
#include "lm_cmd.h"
#include "lm_pixels.h"

#define CMD "lm"

/* ---- pattern pictures ---------------------------------------------------------------------- */

/* The mask of layer l, head h of c's pattern (dense causal without one) for
 * T positions into rgb (row stride `stride` pixels): visible white, hidden
 * inside the causal triangle dark grey, above the diagonal black. */
static void mask_panel(const attn_gpt_config *c, int l, int64_t h, int64_t T, uint8_t *rgb, int64_t stride) {
    attn_sparse_pattern lp = c->sparse;
    if (c->sparse_by_layer) lp.heads = l % 2 ? ATTN_SPARSE_HEADS_B_ONLY : ATTN_SPARSE_HEADS_A_ONLY;
    for (int64_t t = 0; t < T; t++)
        for (int64_t s2 = 0; s2 < T; s2++) {
            const int vis = s2 <= t && (lp.kind == 0 || attn_sparse_visible(&lp, h, T, T, t, s2));
            const uint8_t g = vis ? 255 : s2 <= t ? 40 : 0;
            uint8_t *px = rgb + 3 * (t * stride + s2);
            px[0] = px[1] = px[2] = g;
        }
}

/* Writes the masks of every layer (rows) and head (columns) of c as one PNG,
 * panels of T x T pixels 4 apart on a blue ground. 0 or 1 printed. */
static int mask_png(const char *path, const attn_gpt_config *c, int64_t T) {
    const int64_t L = c->n_layers, H = c->n_heads, gap = 4, W = H * T + (H + 1) * gap, Hh = L * T + (L + 1) * gap;
    if (W > 16384 || Hh > 16384) {
        fprintf(stderr, "attn lm pattern: %lld x %lld pixels is too large (lower --ctx)\n", (long long)W, (long long)Hh);
        return 1;
    }
    uint8_t *rgb = malloc((size_t)(W * Hh * 3));
    if (!rgb) return cli_fail(CMD, "out of memory");
    for (int64_t i = 0; i < W * Hh; i++) rgb[3 * i] = 30, rgb[3 * i + 1] = 60, rgb[3 * i + 2] = 140;
    for (int l = 0; l < L; l++)
        for (int64_t h = 0; h < H; h++)
            mask_panel(c, l, h, T, rgb + 3 * ((gap + l * (T + gap)) * W + gap + h * (T + gap)), W);
    const attn_status st = attn_png_write(path, rgb, (int)W, (int)Hh, 3);
    free(rgb);
    if (st != ATTN_OK) return cli_fail(CMD, "cannot write the picture");
    printf("%s\n", path);
    return 0;
}

int cmd_lm_pattern(int argc, char **argv) {
    const char *pattern = NULL, *png = NULL, *model = NULL, *sub = "pattern";
    long long T = 256, heads = 4, layers = 2;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn lm pattern (--pattern P | --model DIR) --png FILE [options]\n\n"
                   "Draws the attention mask of a block-sparse pattern (as attn lm train --pattern takes\n"
                   "it, heads=layers included) or of a trained GPT's pattern, every layer (rows) and head\n"
                   "(columns), query down, key across: white visible, dark grey hidden under the causal\n"
                   "mask, black the future. Prints the share of the causal entries each layer keeps.\n\n"
                   "  --ctx T         positions (default 256; a model: its context)\n"
                   "  --heads H, --layers L   (default 4 and 2; a model: its own)\n");
            return 0;
        }
        i++;
        if (!strcmp(a, "--pattern")) pattern = v;
        else if (!strcmp(a, "--png")) png = v;
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--ctx")) rc = cli_opt_int(CMD, sub, a, v, 1, 4096, &T);
        else if (!strcmp(a, "--heads")) rc = cli_opt_int(CMD, sub, a, v, 1, 16, &heads);
        else if (!strcmp(a, "--layers")) rc = cli_opt_int(CMD, sub, a, v, 1, 16, &layers);
        else {
            fprintf(stderr, "attn lm pattern: unknown option '%s' (try 'attn lm pattern --help')\n", a);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "attn lm pattern: %s needs a value\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!png || (!pattern == !model)) {
        fprintf(stderr, "attn lm pattern: --png FILE and one of --pattern P or --model DIR are required\n");
        return 2;
    }
    attn_gpt_config c;
    memset(&c, 0, sizeof c);
    lm_info r;
    lm_model m;
    memset(&m, 0, sizeof m);
    if (model) {
        if (lm_load(model, &r, &m)) return 1;
        if (!m.g) {
            fprintf(stderr, "attn lm pattern: %s is a Transformer-XL (patterns are GPT options)\n", model);
            lm_model_free(&m);
            return 2;
        }
        c = m.g->cfg;
        T = c.ctx_len;
        lm_model_free(&m);
    } else {
        char text[256];
        snprintf(text, sizeof text, "%s", pattern);
        char *hl = strstr(text, "heads=layers");
        if (hl && (hl[12] == 0 || hl[12] == ',')) {
            memmove(hl + 7, hl + 12, strlen(hl + 12) + 1);
            hl[6] = 'a';
            c.sparse_by_layer = 1;
        }
        if (attn_sparse_parse(text, &c.sparse) != ATTN_OK) {
            fprintf(stderr, "attn lm pattern: --pattern: %s\n", attn_last_error());
            return 2;
        }
        if (c.sparse_by_layer && c.sparse.kind != ATTN_SPARSE_STRIDED && c.sparse.kind != ATTN_SPARSE_FIXED) {
            fprintf(stderr, "attn lm pattern: heads=layers is for strided and fixed patterns\n");
            return 2;
        }
        c.n_layers = (int)layers;
        c.n_heads = (int)heads;
        c.ctx_len = T;
    }
    attn_ctx *ctx = NULL;
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)64 << 20;
    cc.n_threads = 1;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) return cli_fail(CMD, "cannot create the context");
    double vis = 1.0, tiles = 1.0;
    rc = lm_pattern_share(ctx, &c, T, &vis, &tiles) ? cli_fail(CMD, "cannot compile the pattern") : 0;
    attn_ctx_free(ctx);
    if (rc) return rc;
    char pt[200];
    lm_pattern_text(&c, pt, sizeof pt);
    printf("pattern %s, %d layers x %d heads, T %lld: %.2f%% of the causal entries visible, %.2f%% of the "
           "dense kernel's 64 x 64 tiles computed\n",
           pt, c.n_layers, c.n_heads, T, 100.0 * vis, 100.0 * tiles);
    return mask_png(png, &c, T);
}

/* A trained GPT's attention as PNG pictures: PREFIX-attn.png, head `head` of
 * layer `layer` over the window (T x T; colour the square root of the weight,
 * hidden entries dark blue, the future black), and for a pixel model
 * PREFIX-query.png: the weights of every head of that layer for one query
 * pixel, drawn back on the 28 x 28 image (8x), next to the image itself. */
static int gpt_png(const char *prefix, const lm_model *m, const lm_info *r, const int32_t *ids, int64_t T,
                   const int32_t *order, int layer, int64_t head, int64_t qpix, attn_ctx *ctx) {
    const attn_gpt_config *c = &m->g->cfg;
    attn_tensor *w[64] = {0};
    attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, T}, ids);
    if (!ti || !attn_gpt_logits_ex(ctx, m->g, ti, NULL, w) || !w[layer]) return cli_fail(CMD, "forward failed");
    const attn_tensor *wl = w[layer];
    const float *base = (const float *)wl->data;
    uint8_t *rgb = malloc((size_t)(T * T * 3));
    if (!rgb) return cli_fail(CMD, "out of memory");
    attn_sparse_pattern lp = c->sparse;
    if (c->sparse_by_layer) lp.heads = layer % 2 ? ATTN_SPARSE_HEADS_B_ONLY : ATTN_SPARSE_HEADS_A_ONLY;
    for (int64_t t = 0; t < T; t++) {
        float mx = 0.0f; /* each row scaled to its largest weight */
        for (int64_t s2 = 0; s2 <= t; s2++) {
            const float x = base[head * wl->stride[1] + t * wl->stride[2] + s2 * wl->stride[3]];
            if (x > mx) mx = x;
        }
        for (int64_t s2 = 0; s2 < T; s2++) {
            uint8_t *px = rgb + 3 * (t * T + s2);
            const int vis = s2 <= t && (lp.kind == 0 || attn_sparse_visible(&lp, head, T, T, t, s2));
            if (!vis) {
                px[0] = 0, px[1] = 0, px[2] = s2 <= t ? 70 : 0;
                continue;
            }
            const float x = base[head * wl->stride[1] + t * wl->stride[2] + s2 * wl->stride[3]];
            const double u = mx > 0 ? sqrt((double)x / (double)mx) : 0.0;
            px[0] = (uint8_t)(255.0 * u);
            px[1] = (uint8_t)(255.0 * u * u);
            px[2] = (uint8_t)(40.0 * (1.0 - u));
        }
    }
    char path[4096];
    snprintf(path, sizeof path, "%s-attn.png", prefix);
    attn_status st = attn_png_write(path, rgb, (int)T, (int)T, 3);
    free(rgb);
    if (st != ATTN_OK) return cli_fail(CMD, "cannot write the picture");
    printf("%s (layer %d, head %lld)\n", path, layer, (long long)head);
    if (!r->pixels) return 0;
    /* the query pixel's weights on the image: panel 0 the image, then one per head */
    const int64_t Z = 8, side = LM_PIX_SIDE * Z, H = c->n_heads, gap = 4, W = (H + 1) * side + (H + 2) * gap,
                  Hh = side + 2 * gap;
    int32_t inv[LM_PIX_LEN]; /* pixel -> sequence position */
    for (int32_t i = 0; i < LM_PIX_LEN; i++) inv[order[i]] = i;
    const int64_t qpos = inv[qpix];
    rgb = malloc((size_t)(W * Hh * 3));
    if (!rgb) return cli_fail(CMD, "out of memory");
    memset(rgb, 255, (size_t)(W * Hh * 3));
    for (int64_t p = 0; p <= H; p++) {
        const int64_t h = p - 1;
        float mx = 0.0f;
        for (int64_t s2 = 0; h >= 0 && s2 <= qpos; s2++) {
            const float x = base[h * wl->stride[1] + qpos * wl->stride[2] + s2 * wl->stride[3]];
            if (x > mx) mx = x;
        }
        for (int64_t y = 0; y < side; y++)
            for (int64_t x = 0; x < side; x++) {
                const int64_t pix = (y / Z) * LM_PIX_SIDE + x / Z;
                const int64_t pos = inv[pix];
                uint8_t *px = rgb + 3 * ((gap + y) * W + gap + p * (side + gap) + x);
                /* the image (ids holds T + 1 symbols: the start, then all 784 pixels), the query
                 * pixel and what follows it greyed out */
                const double g = (double)ids[pos + 1] / (double)r->pixels;
                if (h < 0) {
                    const uint8_t v = (uint8_t)(255.0 * (pos < qpos ? g : 0.3 * g + 0.35));
                    px[0] = px[1] = px[2] = v;
                } else if (pos > qpos) {
                    px[0] = px[1] = px[2] = 0;
                } else {
                    const float wv = base[h * wl->stride[1] + qpos * wl->stride[2] + pos * wl->stride[3]];
                    const double u = mx > 0 ? sqrt((double)wv / (double)mx) : 0.0;
                    const int vis = lp.kind == 0 || attn_sparse_visible(&lp, h, T, T, qpos, pos);
                    px[0] = (uint8_t)(vis ? 255.0 * u : 0);
                    px[1] = (uint8_t)(vis ? 255.0 * u * u : 0);
                    px[2] = (uint8_t)(vis ? 40.0 * (1.0 - u) : 70);
                }
                if (pix == qpix) px[0] = 0, px[1] = 200, px[2] = 255;
            }
    }
    snprintf(path, sizeof path, "%s-query.png", prefix);
    st = attn_png_write(path, rgb, (int)W, (int)Hh, 3);
    free(rgb);
    if (st != ATTN_OK) return cli_fail(CMD, "cannot write the picture");
    printf("%s (layer %d, query pixel row %lld col %lld; panels: the image, then heads 0..%lld)\n", path, layer,
           (long long)(qpix / LM_PIX_SIDE), (long long)(qpix % LM_PIX_SIDE), (long long)(H - 1));
    return 0;
}

/* ---- viz -------------------------------------------------------------------------------- */

/* A byte as a short label: printable ASCII as itself, else \xNN. */
static void byte_label(char *buf, size_t cap, int32_t b) {
    if (b >= 33 && b < 127) snprintf(buf, cap, "%c", (char)b);
    else if (b == ' ') snprintf(buf, cap, "\xe2\x90\xa3"); /* U+2423 */
    else if (b == '\n') snprintf(buf, cap, "\\n");
    else snprintf(buf, cap, "\\x%02x", (unsigned)b & 0xFF);
}

/* The learned spans as a bar chart: one group per layer, one bar per head,
 * the largest span as a dashed line. */
static int span_chart(const char *path, const attn_txl *t) {
    const int L = t->cfg.n_layers, H = t->cfg.n_heads;
    const double zmax = t->cfg.span_max;
    const int bar = 18, gap = 24, left = 70, top = 50, ph = 300;
    int width = left + L * (H * bar + gap) + 40;
    if (width < 640) width = 640;
    const int height = top + ph + 70;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "attn lm viz: cannot write %s: %s\n", tmp, strerror(errno));
        return 1;
    }
    static const char *const pal[8] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2",
                                       "#59a14f", "#edc948", "#b07aa1", "#ff9da7"};
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\">\n",
            width, height);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    double mean = 0;
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) mean += zmax * attn_f32(t->layers[l].span)[h];
    mean /= (double)(L * H);
    fprintf(f, "<text x=\"%d\" y=\"20\" font-size=\"15\">learned attention span per layer and head (keys)</text>\n"
               "<text x=\"%d\" y=\"38\" font-size=\"12\">max %g, mean %.1f = %.1f%% of the max</text>\n",
            left, left, zmax, mean, 100.0 * mean / zmax);
    for (int k = 0; k <= 4; k++) { /* y axis: 0, 1/4 .. span_max */
        const double y = top + ph - ph * k / 4.0;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, y, width - 30, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%g</text>\n", left - 6, y + 4,
                zmax * k / 4.0);
    }
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#444\" stroke-dasharray=\"5,4\"/>\n", left,
            top, width - 30, top);
    for (int l = 0; l < L; l++) {
        const int x0 = left + gap / 2 + l * (H * bar + gap);
        for (int h = 0; h < H; h++) {
            const double z = zmax * attn_f32(t->layers[l].span)[h];
            const double bh = ph * (z / zmax);
            fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"%s\"><title>layer %d head %d: "
                       "%.1f</title></rect>\n", x0 + h * bar, top + ph - bh, bar - 2, bh, pal[h % 8], l, h, z);
            fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"9\" text-anchor=\"middle\">%d</text>\n",
                    x0 + h * bar + (bar - 2) / 2, top + ph + 12, h);
        }
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">layer %d</text>\n",
                x0 + (H * bar) / 2, top + ph + 30, l);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">bars: heads 0..%d of each layer; dashed: the largest "
               "span</text>\n", left, top + ph + 55, H - 1);
    fprintf(f, "</svg>\n");
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "attn lm viz: cannot write %s: %s\n", path, strerror(errno));
        remove(tmp);
        return 1;
    }
    printf("%s\n", path);
    return 0;
}

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The layers x heads grid of maps[l] [1, H, R, C] (rows: queries, columns:
 * the M memory keys, the segment's, the Np persistent vectors). Weights
 * over hundreds of keys are small: the colour scale runs from 0 to the 99th
 * percentile of the nonzero weights (stated in the title). */
static int memory_grid(const char *path, const char *title, attn_tensor *const *maps, int L, int64_t H,
                       const char *const *rl, const char *const *cl, int64_t M, int64_t Np) {
    if ((int64_t)L * H > 64) {
        fprintf(stderr, "attn lm viz: %d layers x %lld heads is more than 64 panels\n", L, (long long)H);
        return 1;
    }
    const int64_t R = maps[0]->shape[2], C = maps[0]->shape[3], P = L * H * R * C;
    attn_heatmap *hm = calloc((size_t)(L * H), sizeof *hm);
    float *buf = malloc(sizeof(float) * (size_t)P), *sorted = malloc(sizeof(float) * (size_t)P);
    char(*caps)[64] = calloc((size_t)(L * H), sizeof *caps);
    int rc = 1;
    if (!hm || !buf || !sorted || !caps) {
        fprintf(stderr, "attn lm viz: out of memory\n");
        goto out;
    }
    int64_t nz = 0;
    for (int l = 0; l < L; l++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t k = l * H + h;
            const attn_tensor *w = maps[l];
            const float *base = (const float *)w->data;
            for (int64_t r = 0; r < R; r++)
                for (int64_t c = 0; c < C; c++) {
                    const float x = base[h * w->stride[1] + r * w->stride[2] + c * w->stride[3]];
                    buf[k * R * C + r * C + c] = x;
                    if (x > 0) sorted[nz++] = x;
                }
        }
    float vmax = 1.0f;
    if (nz > 0) {
        qsort(sorted, (size_t)nz, sizeof *sorted, cmp_float);
        vmax = sorted[(int64_t)(0.99 * (double)(nz - 1))];
        if (!(vmax > 0)) vmax = 1.0f;
    }
    char xl[96];
    snprintf(xl, sizeof xl, "keys: memory 0..%lld | segment%s", (long long)M - 1, Np ? " | persistent" : "");
    for (int l = 0; l < L; l++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t k = l * H + h;
            snprintf(caps[k], sizeof caps[k], "layer %d, head %lld", l, (long long)h);
            hm[k].weights = buf + k * R * C;
            hm[k].rows = (int)R;
            hm[k].cols = (int)C;
            hm[k].row_labels = rl;
            hm[k].col_labels = cl;
            hm[k].title = caps[k];
            hm[k].x_label = xl;
            hm[k].colormap = ATTN_CMAP_VIRIDIS;
            hm[k].vmin = 0.0f;
            hm[k].vmax = vmax;
        }
    char full[512];
    snprintf(full, sizeof full, "%s (colour 0 .. %.3g: 99th pct)", title, (double)vmax);
    if (attn_svg_heatmap_grid(path, full, hm, L, (int)H) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot write the picture");
        goto out;
    }
    printf("%s\n", path);
    rc = 0;
out:
    free(hm);
    free(buf);
    free(sorted);
    free(caps);
    return rc;
}

/* A sparse-mixer GPT's picture (docs/sinkhorn.md, docs/routing.md):
 * Sinkhorn / SortCut: the soft permutation P of every layer and head, one
 * panel each (rows: query blocks 1 .., columns: the past blocks 0 .. sorted
 * into them); routing: the nearest centroid of every byte of the window for
 * every layer's routing heads (one row each, colour = cluster). */
static int mixer_picture(const char *outp, const attn_gpt *g, attn_tensor *const *w, int L,
                         const int32_t *ids, int64_t T) {
    char path[4096], title[256];
    attn_status st = ATTN_OK;
    if (g->sink) {
        const int64_t H = g->cfg.n_heads;
        if (!w[0] || L * H > 64) {
            fprintf(stderr, "attn lm viz: %s: the window has one block only, or more than 64 panels\n",
                    attn_gpt_mixer_name(g->cfg.mixer));
            return 1;
        }
        const int n = (int)w[0]->shape[2];
        attn_heatmap maps[64];
        char caps[64][48];
        static char rl[64][16], cl[64][16];
        const char *rlab[64], *clab[64];
        for (int i = 0; i < n && i < 64; i++) {
            snprintf(rl[i], sizeof rl[i], "q%d", i + 1);
            snprintf(cl[i], sizeof cl[i], "k%d", i);
            rlab[i] = rl[i];
            clab[i] = cl[i];
        }
        for (int l = 0; l < L; l++)
            for (int64_t h = 0; h < H; h++) {
                attn_heatmap *mp = &maps[l * H + h];
                memset(mp, 0, sizeof *mp);
                mp->weights = attn_f32(w[l]) + h * n * n;
                mp->rows = mp->cols = n;
                mp->row_labels = n <= 64 ? rlab : NULL;
                mp->col_labels = n <= 64 ? clab : NULL;
                snprintf(caps[l * H + h], sizeof caps[0], "layer %d, head %lld", l + 1, (long long)h + 1);
                mp->title = caps[l * H + h];
                mp->x_label = "key block (past)";
                mp->y_label = "query block";
            }
        snprintf(path, sizeof path, "%s-sinkhorn.svg", outp);
        snprintf(title, sizeof title, "%s: soft block permutation P (blocks of %lld bytes, %d Sinkhorn iterations)",
                 attn_gpt_mixer_name(g->cfg.mixer), (long long)g->sink[0].cfg.block, g->sink[0].cfg.n_iter);
        st = attn_svg_heatmap_grid(path, title, maps, L, (int)H);
    } else {
        const int64_t Hr = g->route[0].cfg.n_heads - g->route[0].cfg.local_heads, k = g->route[0].cfg.n_clusters;
        if (!w[0] || L * Hr > ATTN_VIZ_MAX_TOKENS || T > ATTN_VIZ_MAX_TOKENS) {
            fprintf(stderr, "attn lm viz: routing: nothing to draw\n");
            return 1;
        }
        const int rows = (int)(L * Hr);
        float *v = malloc(sizeof(float) * (size_t)(rows * T));
        char(*rl)[48] = calloc((size_t)rows, sizeof *rl);
        char(*cl)[24] = calloc((size_t)T, sizeof *cl);
        const char **rlab = calloc((size_t)rows, sizeof *rlab), **clab = calloc((size_t)T, sizeof *clab);
        if (!v || !rl || !cl || !rlab || !clab) {
            st = ATTN_ERR_OOM;
        } else {
            for (int l = 0; l < L; l++)
                for (int64_t h = 0; h < Hr; h++) {
                    const int r = (int)(l * Hr + h);
                    snprintf(rl[r], sizeof rl[r], "layer %d head %lld", l + 1,
                             (long long)(g->route[0].cfg.local_heads + h + 1));
                    rlab[r] = rl[r];
                    for (int64_t t = 0; t < T; t++)
                        v[r * T + t] = (float)attn_i32(w[l])[h * T + t] / (float)(k > 1 ? k - 1 : 1);
                }
            for (int64_t t = 0; t < T; t++) {
                byte_label(cl[t], sizeof cl[t], ids[t]);
                clab[t] = cl[t];
            }
            attn_heatmap mp;
            memset(&mp, 0, sizeof mp);
            mp.weights = v;
            mp.rows = rows;
            mp.cols = (int)T;
            mp.row_labels = rlab;
            mp.col_labels = clab;
            snprintf(title, sizeof title, "routing: the nearest of %lld centroids for every byte (colour = cluster 0 .. %lld)",
                     (long long)k, (long long)(k - 1));
            mp.title = title;
            mp.x_label = "byte of the window";
            mp.y_label = "routing head";
            mp.colormap = ATTN_CMAP_VIRIDIS;
            snprintf(path, sizeof path, "%s-routing.svg", outp);
            st = attn_svg_heatmap(path, &mp);
        }
        free(v);
        free(rl);
        free(cl);
        free(rlab);
        free(clab);
    }
    if (st != ATTN_OK) {
        fprintf(stderr, "attn lm viz: cannot write %s: %s\n", path, attn_last_error());
        return 1;
    }
    printf("wrote %s\n", path);
    return 0;
}

/* attn lm viz --png: a GPT's head over its whole window (gpt_png). */
static int lm_viz_png(const char *model, const char *prefix, int layer, int64_t head, int64_t image, int64_t qpix,
                      int64_t offset, int threads) {
    lm_info r;
    lm_model m;
    if (lm_load(model, &r, &m)) return 1;
    int rc = 1;
    int32_t *ids = NULL, order[LM_PIX_LEN];
    attn_ctx *ctx = NULL;
    lm_pixels px;
    memset(&px, 0, sizeof px);
    if (!m.g) {
        fprintf(stderr, "attn lm viz: --png is for a GPT (this is a Transformer-XL)\n");
        goto done;
    }
    if (layer >= m.g->cfg.n_layers || head >= m.g->cfg.n_heads) {
        fprintf(stderr, "attn lm viz: --layer %d --head %lld: the model has %d layers of %d heads\n", layer,
                (long long)head, m.g->cfg.n_layers, m.g->cfg.n_heads);
        goto done;
    }
    const int64_t T = m.g->cfg.ctx_len;
    if (T > 4096) {
        fprintf(stderr, "attn lm viz: a window of %lld is too large for a picture (at most 4096)\n", (long long)T);
        goto done;
    }
    ids = malloc((size_t)(T + 1) * sizeof *ids);
    if (!ids) goto done;
    for (int32_t i = 0; i < LM_PIX_LEN; i++) order[i] = i;
    if (r.pixels) {
        if (lm_pixels_order("attn lm viz", &m.g->cfg.sparse, order) ||
            lm_pixels_load("attn lm viz", r.data, "test", (int)r.pixels, order, &px))
            goto done;
        if (image >= px.n) {
            fprintf(stderr, "attn lm viz: --image %lld: the test split has %lld images\n", (long long)image,
                    (long long)px.n);
            goto done;
        }
        int32_t *tg = malloc((size_t)LM_PIX_LEN * sizeof *tg);
        if (!tg) goto done;
        lm_pixels_rows(&px, image, ids, tg);
        ids[LM_PIX_LEN] = tg[LM_PIX_LEN - 1]; /* the last pixel, for the picture of the image */
        free(tg);
    } else {
        int32_t *all = NULL;
        int64_t n = 0;
        if (cli_load_bytes("lm", r.data, "valid.txt", &all, &n)) goto done;
        if (offset + T > n) {
            fprintf(stderr, "attn lm viz: valid.txt has %lld bytes, fewer than --offset %lld + %lld\n",
                    (long long)n, (long long)offset, (long long)T);
            free(all);
            goto done;
        }
        memcpy(ids, all + offset, (size_t)T * sizeof *ids);
        free(all);
    }
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)1024 << 20;
    cc.n_threads = threads;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    rc = gpt_png(prefix, &m, &r, ids, T, order, layer, head, qpix, ctx);
done:
    lm_pixels_free(&px);
    free(ids);
    attn_ctx_free(ctx);
    lm_model_free(&m);
    return rc;
}

int cmd_lm_viz(int argc, char **argv) {
    const char *model = NULL, *outp = NULL, *text = NULL, *sub = "viz", *html = NULL, *weights = NULL, *png = NULL;
    long long offset = 0, mem_len = -1, segment = -1, threads = 0, layer = 0, head = 0, image = 0, qpix = 406;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn lm viz --model DIR --out PREFIX|--html FILE [options]\n\n"
                   "Draws a model's attention over one segment and its memory as a layers x heads\n"
                   "grid of heatmaps, PREFIX-memory.svg (rows: the segment's queries; columns: the\n"
                   "memory's keys, then the segment's, then the persistent vectors p0..), and with\n"
                   "an adaptive span the learned spans as a bar chart, PREFIX-spans.svg. For a GPT:\n"
                   "its window's self-attention; with --mixer sinkhorn or sortcut its soft block\n"
                   "permutations, PREFIX-sinkhorn.svg, with --mixer routing the cluster of every\n"
                   "byte in every routing head, PREFIX-routing.svg (over its whole window).\n\n"
                   "  --html FILE          the interactive attention explorer instead of the SVG files\n"
                   "                       (docs/explorer.md; both with --out and --html)\n"
                   "  --weights FILE       with --html: every weight at full precision as text\n"
                   "  --text TEXT          the input (default: valid.txt of the run's data from --offset)\n"
                   "  --offset N           (default 0)\n"
                   "  --mem-len M          txl: memory shown (default the training memory, at most 192; up to 512)\n"
                   "  --segment T          txl: segment shown (default the training one, at most 64)\n"
                   "  --threads N\n"
                   "  --png PREFIX         gpt: PNG pictures of one head over the whole window instead:\n"
                   "                       PREFIX-attn.png (query down, key across; hidden entries blue),\n"
                   "                       and for a pixel model PREFIX-query.png (one query pixel's\n"
                   "                       weights in every head of the layer, drawn on the image)\n"
                   "  --layer L, --head H  (default 0, 0)\n"
                   "  --image K            pixel model: test image K (default 0)\n"
                   "  --query-pixel P      pixel model: row * 28 + col of the query (default 406: row 14, col 14)\n");
            return 0;
        }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--out")) outp = v;
        else if (!strcmp(a, "--html")) html = v;
        else if (!strcmp(a, "--weights")) weights = v;
        else if (!strcmp(a, "--text")) text = v;
        else if (!strcmp(a, "--offset")) rc = cli_opt_int(CMD, sub, a, v, 0, 1ll << 40, &offset);
        else if (!strcmp(a, "--mem-len")) rc = cli_opt_int(CMD, sub, a, v, 0, 512, &mem_len);
        else if (!strcmp(a, "--segment")) rc = cli_opt_int(CMD, sub, a, v, 1, 256, &segment);
        else if (!strcmp(a, "--threads")) rc = cli_opt_int(CMD, sub, a, v, 0, cli_max_threads(), &threads);
        else if (!strcmp(a, "--png")) png = v;
        else if (!strcmp(a, "--layer")) rc = cli_opt_int(CMD, sub, a, v, 0, 63, &layer);
        else if (!strcmp(a, "--head")) rc = cli_opt_int(CMD, sub, a, v, 0, 1 << 14, &head);
        else if (!strcmp(a, "--image")) rc = cli_opt_int(CMD, sub, a, v, 0, 1 << 30, &image);
        else if (!strcmp(a, "--query-pixel")) rc = cli_opt_int(CMD, sub, a, v, 0, LM_PIX_LEN - 1, &qpix);
        else {
            fprintf(stderr, "attn lm viz: unknown option '%s' (try 'attn lm viz --help')\n", a);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "attn lm viz: %s needs a value\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if (model && png) return lm_viz_png(model, png, (int)layer, head, image, qpix, offset, (int)threads);
    if (!model || (!outp && !html)) {
        fprintf(stderr, "attn lm viz: --model DIR and --out PREFIX (or --html FILE) are required\n");
        return 2;
    }
    if (weights && !html) {
        fprintf(stderr, "attn lm viz: --weights goes with --html FILE\n");
        return 2;
    }
    if (outp) { /* the prefix's folder is created */
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", outp);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = 0;
            if (cli_make_dir(dir) != 0) {
                fprintf(stderr, "attn lm viz: cannot create the folder %s: %s\n", dir, strerror(errno));
                return 1;
            }
        }
    }
    lm_info r;
    lm_model m;
    if (lm_load(model, &r, &m)) return 1;
    if (m.rf) {
        fprintf(stderr, "attn lm viz: a Reformer's LSH attention has no dense map to draw (not offered)\n");
        lm_model_free(&m);
        return 2;
    }
    int32_t *ids = NULL;
    int64_t n = 0;
    attn_ctx *ctx = NULL;
    char(*labels)[24] = NULL;
    const char **lab = NULL;
    attn_txl_memory mem;
    memset(&mem, 0, sizeof mem);
    rc = 1;
    int64_t T = m.t ? (segment > 0 ? segment : r.segment) : m.g->cfg.ctx_len;
    if (T > 64 && segment <= 0 && !(m.g && m.g->cfg.mixer)) T = 64; /* a mixer's picture: the window */
    if (m.g && m.g->cfg.mixer && (html || !outp)) {
        fprintf(stderr, "attn lm viz: a %s GPT has no attention maps for --html: draw its %s with --out PREFIX\n",
                attn_gpt_mixer_name(m.g->cfg.mixer), m.g->route ? "cluster assignment" : "block permutation");
        lm_model_free(&m);
        return 2;
    }
    int64_t M = 0;
    if (m.t) {
        M = mem_len >= 0 ? mem_len : r.mem_len;
        if (mem_len < 0 && M > 192) M = 192; /* 16 panels of 64 x 256 cells: a 15 MB picture */
    }
    if (text) {
        n = (int64_t)strlen(text);
        ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
        if (!ids) goto done;
        for (int64_t i = 0; i < n; i++) ids[i] = (unsigned char)text[i];
    } else {
        if (cli_load_bytes("lm", r.data, "valid.txt", &ids, &n)) goto done;
        if (offset >= n) {
            fprintf(stderr, "attn lm viz: --offset %lld is past valid.txt (%lld bytes)\n", offset, (long long)n);
            goto done;
        }
        memmove(ids, ids + offset, (size_t)(n - offset) * sizeof *ids);
        n -= offset;
    }
    if (n < 1) {
        fprintf(stderr, "attn lm viz: the text is empty\n");
        goto done;
    }
    /* the last segment of up to T bytes, after up to M bytes of memory */
    if (n > M + T) n = M + T;
    if (T > n) T = n;
    const int64_t pre = n - T;
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)512 << 20;
    cc.n_threads = (int)threads;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    const int L = m.t ? m.t->cfg.n_layers : m.g->cfg.n_layers;
    attn_tensor *w[64] = {0};
    if (L > 64) {
        fprintf(stderr, "attn lm viz: more than 64 layers\n");
        goto done;
    }
    char title[256], path[4096];
    int64_t H, C, Np = 0;
    if (m.t) {
        m.t->cfg.span_no_trim = 1; /* every layer's whole memory: the span's mask is in the picture */
        if (attn_txl_memory_init(&mem, m.t, 1, M, 0) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot create the memory");
            goto done;
        }
        for (int64_t a = 0; a < pre; a += T) { /* the memory, segment by segment */
            const int64_t len = pre - a < T ? pre - a : T;
            attn_ctx_reset(ctx);
            attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, len}, ids + a);
            if (!ti || !attn_txl_logits(ctx, m.t, ti, &mem, NULL)) {
                rc = cli_fail(CMD, "forward failed");
                goto done;
            }
        }
        attn_ctx_reset(ctx);
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, T}, ids + pre);
        if (!ti || !attn_txl_logits(ctx, m.t, ti, &mem, w)) {
            rc = cli_fail(CMD, "forward failed");
            goto done;
        }
        H = m.t->cfg.n_heads;
        Np = m.t->cfg.n_persist;
        snprintf(title, sizeof title, "TXL: %lld queries over %lld memory + %lld segment keys%s", (long long)T,
                 (long long)pre, (long long)T, Np ? " + persistent" : "");
    } else {
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, T}, ids + pre);
        if (!ti || !attn_gpt_logits_ex(ctx, m.g, ti, NULL, w)) {
            rc = cli_fail(CMD, "forward failed");
            goto done;
        }
        H = m.g->cfg.n_heads;
        snprintf(title, sizeof title, "GPT self-attention over its window of %lld bytes", (long long)T);
        if (m.g->cfg.mixer) {
            rc = mixer_picture(outp, m.g, w, L, ids + pre, T);
            goto done;
        }
    }
    C = w[0]->shape[3];
    for (int l = 1; l < L; l++)
        if (w[l]->shape[3] != C) {
            fprintf(stderr, "attn lm viz: the layers' key counts differ\n");
            goto done;
        }
    if (C > ATTN_VIZ_MAX_TOKENS && outp) {
        fprintf(stderr, "attn lm viz: %lld keys is more than a picture takes (%d; lower --mem-len or --persistent)\n",
                (long long)C, ATTN_VIZ_MAX_TOKENS);
        goto done;
    }
    labels = calloc((size_t)C, sizeof *labels);
    lab = calloc((size_t)C, sizeof *lab);
    if (!labels || !lab) goto done;
    const int64_t S = C - Np; /* memory + segment keys */
    for (int64_t c = 0; c < C; c++) {
        if (c < S) byte_label(labels[c], sizeof labels[c], ids[n - S + c]);
        else snprintf(labels[c], sizeof labels[c], "p%lld", (long long)(c - S));
        lab[c] = labels[c];
    }
    if (html) {
        /* queries: the segment; keys: memory, segment, persistent vectors. Key c < S is
         * allowed for query r when c <= (S - T) + r; persistent vectors always. */
        cli_page page = {0};
        char subt[256];
        if (cli_page_add(&page, "lm viz", m.t ? "memory attention" : "self-attention", ATTN_EXPLORER_SELF, w, L,
                         lab + (S - T), lab, "query", "key", S - T)) {
            cli_page_free(&page);
            goto done;
        }
        for (int64_t q = 0; q < T; q++)
            for (int64_t c = S; c < C; c++) page.mask[0][q * C + c] = 1;
        page.maps[0].note = m.t ? "keys: the memory, then the segment, then the persistent vectors p0.. "
                                  "(a key after the query's position is masked)"
                                : "the GPT's window, causal";
        snprintf(subt, sizeof subt, "%s: %d layers, %lld heads; %lld queries, %lld keys", model, L,
                 (long long)H, (long long)T, (long long)C);
        if (cli_page_write(&page, "lm viz", html, weights, title, subt, 0)) goto done;
    }
    if (!outp) {
        rc = 0;
        goto done;
    }
    snprintf(path, sizeof path, "%s-memory.svg", outp);
    if (memory_grid(path, title, w, L, H, lab + (S - T), lab, S - T, Np)) goto done;
    if (m.t && m.t->cfg.span_max > 0) {
        snprintf(path, sizeof path, "%s-spans.svg", outp);
        if (span_chart(path, m.t)) goto done;
    }
    rc = 0;
done:
    free(labels);
    free(lab);
    free(ids);
    attn_txl_memory_free(&mem);
    attn_ctx_free(ctx);
    lm_model_free(&m);
    return rc;
}
