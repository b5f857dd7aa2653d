/* cmd_vision_maps.c: `attn vision maps`: PNG pictures (and an optional page)
 * of where query pixels of a trained CNN's attention block attend, for a few
 * Fashion-MNIST test images (docs/cnn.md). Dispatched by cmd_vision.c, whose
 * data and model loading it shares through vision_cmd.h.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "commands.h"
#include "vision_cmd.h"

#define CMD "vision"

/* ---- maps ------------------------------------------------------------------------------- */

#define MAP_SCALE 8   /* screen pixels per image pixel */
#define MAP_GAP 4
#define MAP_QUERIES 4

static const char *const class_names[10] = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                             "sandal", "shirt", "sneaker", "bag", "ankle-boot"};

/* A "hot" colour map: 0 black, then red, yellow, white. */
static void hot(double v, uint8_t *rgb) {
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    const double r = v * 3.0, g = v * 3.0 - 1.0, b = v * 3.0 - 2.0;
    rgb[0] = (uint8_t)(255.0 * (r > 1 ? 1 : r));
    rgb[1] = (uint8_t)(255.0 * (g < 0 ? 0 : g > 1 ? 1 : g));
    rgb[2] = (uint8_t)(255.0 * (b < 0 ? 0 : b > 1 ? 1 : b));
}

/* Draws one panel at (x0, y0) of the RGB canvas (width cw): the 28x28 image
 * in grey, with, when map is not NULL, the mh x mw map (values in [0, 1])
 * blended over it in the hot colours and the query cell (qr, qc) of the
 * qh x qw query grid outlined in green. */
static void draw_panel(uint8_t *canvas, int cw, int x0, int y0, const float *img,
                       const double *map, int mh, int mw, int qh, int qw, int qr, int qc) {
    const int S = 28 * MAP_SCALE;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            const double g = img[(y / MAP_SCALE) * 28 + x / MAP_SCALE];
            uint8_t *px = canvas + ((size_t)(y0 + y) * cw + (x0 + x)) * 3;
            if (!map) {
                px[0] = px[1] = px[2] = (uint8_t)(255.0 * g);
                continue;
            }
            uint8_t c[3];
            hot(map[(y * mh / S) * mw + x * mw / S], c);
            for (int k = 0; k < 3; k++) px[k] = (uint8_t)(0.35 * 255.0 * g + 0.65 * c[k]);
        }
    if (!map || qh == 0) return;
    const int cy0 = qr * S / qh, cy1 = (qr + 1) * S / qh - 1, cx0 = qc * S / qw, cx1 = (qc + 1) * S / qw - 1;
    for (int t = 0; t < 2; t++)
        for (int y = cy0 - t; y <= cy1 + t; y++)
            for (int x = cx0 - t; x <= cx1 + t; x++) {
                if (y < 0 || x < 0 || y >= S || x >= S) continue;
                if (y != cy0 - t && y != cy1 + t && x != cx0 - t && x != cx1 + t) continue;
                uint8_t *px = canvas + ((size_t)(y0 + y) * cw + (x0 + x)) * 3;
                px[0] = 0, px[1] = 255, px[2] = 0;
            }
}

/* --html: the SAGAN weights of image 0 of w [B, 1, N, Nk] (queries: the
 * qh x qw positions; keys: the kh x kw ones, max-pooled for sagan-code). */
static int vision_page(const char *html, const char *weights, const attn_tensor *w, int qh, int qw, int kh,
                       int kw, long long image, const char *label, const char *model) {
    const int N = qh * qw, Nk = kh * kw;
    char(*names)[16] = calloc((size_t)(N + Nk), sizeof *names);
    const char **rl = calloc((size_t)N, sizeof *rl), **cl = calloc((size_t)Nk, sizeof *cl);
    int rc = 1;
    if (!names || !rl || !cl) {
        fprintf(stderr, "attn vision maps: out of memory\n");
        goto out;
    }
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "%d,%d", i / qw % 1000, i % qw % 1000);
        rl[i] = names[i];
    }
    for (int i = 0; i < Nk; i++) {
        snprintf(names[N + i], sizeof names[N + i], "%d,%d", i / kw % 1000, i % kw % 1000);
        cl[i] = names[N + i];
    }
    char title[256], subt[256];
    snprintf(title, sizeof title, "SAGAN attention of test image %lld (%s)", image, label);
    snprintf(subt, sizeof subt, "%s: queries the %dx%d positions of the block's feature map, keys the %dx%d "
             "positions%s", model, qh, qw, kh, kw, kh != qh ? " (max-pooled)" : "");
    cli_page page = {0};
    if (cli_page_add_floats(&page, "vision maps", "feature-map attention", ATTN_EXPLORER_CROSS, attn_f32(w), 1, 1, N,
                            Nk, rl, cl, "query position", "key position", -1)) {
        cli_page_free(&page);
        goto out;
    }
    page.maps[0].col_grid = kw;
    rc = cli_page_write(&page, "vision maps", html, weights, title, subt, 0);
out:
    free(names);
    free(rl);
    free(cl);
    return rc;
}

int cmd_vision_maps(int argc, char **argv) {
    const char *sub = "maps", *model = NULL, *out = NULL, *data = "data/fashion-mnist", *html = NULL;
    const char *weights = NULL;
    long long n_img = 4, first = 0, threads = 0;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn vision maps --model DIR --out DIR [--images N] [--first I] [--data DIR]\n\n"
                   "Draws, for N test images from test image I on (default 4 from 0), where %d query\n"
                   "positions of the attention block's map attend (DIR/maps.png, one row per image:\n"
                   "the image, then one panel per query, the query cell outlined in green, the\n"
                   "weights in black-red-yellow-white). SAGAN: the softmax weights of the query over\n"
                   "the key positions. Simple SA has no softmax: the panel shows |x_i^T W x_j|, the\n"
                   "magnitude of the coefficient of position i in the output at j, scaled to its\n"
                   "largest value. The modules of docs/vision_modules.md: spatial, cbam, sag and gc\n"
                   "have one map per image (one panel, scaled from its smallest to its largest\n"
                   "value); psa (|collect weights|) and aaconv (the first head) are drawn per query.\n"
                   "DIR/maps.txt names the rows (label, prediction, queries).\n"
                   "  --html FILE      also the SAGAN weights of every query position of the first\n"
                   "                   image as an attention explorer page (positions \"row,col\")\n"
                   "  --weights FILE   with --html: the weights at full precision as text\n",
                   MAP_QUERIES);
            return 0;
        }
        i++;
        if (!v) {
            fprintf(stderr, "attn vision maps: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--html")) html = v;
        else if (!strcmp(a, "--weights")) weights = v;
        else if (!strcmp(a, "--images")) rc = cli_opt_int(CMD, sub, a, v, 1, 64, &n_img);
        else if (!strcmp(a, "--first")) rc = cli_opt_int(CMD, sub, a, v, 0, 1 << 30, &first);
        else if (!strcmp(a, "--threads")) rc = cli_opt_int(CMD, sub, a, v, 0, 1024, &threads);
        else {
            fprintf(stderr, "attn vision maps: unknown option '%s' (try 'attn vision maps --help')\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!model || !out) {
        fprintf(stderr, "attn vision maps: --model DIR and --out DIR are required\n");
        return 2;
    }
    if (weights && !html) {
        fprintf(stderr, "attn vision maps: --weights goes with --html FILE\n");
        return 2;
    }
    attn_params *ps = NULL;
    attn_cnn *m = NULL;
    attn_ctx *ctx = NULL;
    fmnist d;
    int have_data = 0;
    float *img = NULL;
    uint8_t *canvas = NULL;
    double *map = NULL;
    FILE *txt = NULL;
    rc = 1;
    if (vision_load_model(model, &ps, &m)) goto done;
    if (m->cfg.attention == ATTN_CNN_ATT_NONE) {
        fprintf(stderr, "attn vision maps: the model in %s has no attention block (train it with "
                        "--attention sagan|sagan-code|simple|spatial|cbam|gc|sag|psa|aaconv)\n", model);
        goto done;
    }
    const attn_cnn_attention kind = m->cfg.attention;
    /* modules with one spatial map per image (drawn whole), and the two
     * whose map is per query position (drawn as SAGAN's) */
    const int spatial_map = kind == ATTN_CNN_ATT_SPATIAL || kind == ATTN_CNN_ATT_CBAM ||
                            kind == ATTN_CNN_ATT_GC || kind == ATTN_CNN_ATT_SAG;
    const int point_map = kind == ATTN_CNN_ATT_PSA || kind == ATTN_CNN_ATT_AACONV;
    if (kind == ATTN_CNN_ATT_CHANNEL || kind == ATTN_CNN_ATT_SOFT) {
        fprintf(stderr, "attn vision maps: the %s module of %s weighs channels, it has no spatial "
                        "map to draw\n", attn_cnn_attention_name(kind), model);
        rc = 2;
        goto done;
    }
    if (html && kind != ATTN_CNN_ATT_SAGAN && kind != ATTN_CNN_ATT_SAGAN_CODE) {
        /* the page shows softmax weights of query positions over key
         * positions: the SAGAN blocks' (the modules draw maps.png only) */
        fprintf(stderr, "attn vision maps: --html shows SAGAN attention weights; the %s module of %s "
                        "has %s (maps.png draws it)\n", attn_cnn_attention_name(kind), model,
                spatial_map ? "one spatial map per image" : point_map ? "no softmax weights per query over keys in the page's form"
                                                                    : "no softmax weights");
        rc = 2;
        goto done;
    }
    if (vision_fmnist_load(data, &d)) goto done;
    have_data = 1;
    if (first + n_img > d.test_x.dims[0]) {
        fprintf(stderr, "attn vision maps: images %lld .. %lld: the test set has %lld\n", first,
                first + n_img - 1, (long long)d.test_x.dims[0]);
        rc = 2;
        goto done;
    }
    if (cli_make_dir(out) != 0) {
        fprintf(stderr, "attn vision maps: cannot create the directory %s: %s\n", out, strerror(errno));
        goto done;
    }
    attn_ctx_config cc = {0};
    cc.n_threads = (int)threads;
    cc.arena_bytes = (size_t)256 << 20;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    attn_ctx_set_training(ctx, 0);
    attn_ctx_set_grad_enabled(ctx, 0);
    const int B = (int)n_img, S = 28 * MAP_SCALE, pw = S + MAP_GAP;
    const int cw = (spatial_map ? 2 : 1 + MAP_QUERIES) * pw - MAP_GAP, ch = B * pw - MAP_GAP;
    img = malloc((size_t)B * 784 * sizeof *img);
    canvas = calloc((size_t)cw * (size_t)ch * 3, 1);
    if (!img || !canvas) {
        fprintf(stderr, "attn vision maps: out of memory\n");
        goto done;
    }
    memset(canvas, 255, (size_t)cw * (size_t)ch * 3);
    for (int b = 0; b < B; b++) vision_load_image(&d.test_x, first + b, img + b * 784, 0, 0, 0);
    attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){B, 1, 28, 28}, img);
    attn_tensor *w = NULL;
    attn_tensor *logits = attn_cnn_forward(ctx, m, x, NULL, &w);
    /* the block's input: the same network without the block, up to its stage */
    attn_cnn bare = *m;
    bare.cfg.attention = ATTN_CNN_ATT_NONE;
    attn_tensor *fin = attn_cnn_features(ctx, &bare, x, m->cfg.attention_stage, NULL);
    if (!logits || !fin) {
        fprintf(stderr, "attn vision maps: %s\n", attn_ctx_error(ctx));
        goto done;
    }
    const int qh = (int)fin->shape[2], qw = (int)fin->shape[3], N = qh * qw;
    const int64_t C = fin->shape[1];
    const int simple = m->cfg.attention == ATTN_CNN_ATT_SIMPLE;
    const int full = simple || spatial_map || point_map || m->cfg.attention == ATTN_CNN_ATT_SAGAN;
    const int kh = full ? qh : qh / 2;
    const int kw = full ? qw : qw / 2;
    const int Nk = kh * kw;
    /* a module's map: [B, 1, H, W] (spatial) or [B, N, N] (per query),
     * read as SAGAN's [B, 1, N, Nk] with N = 1 for the spatial ones */
    if (spatial_map && w && w->ndim == 4 && w->shape[1] == 1 && w->shape[2] == qh && w->shape[3] == qw) {
        const int64_t s4[4] = {B, 1, 1, N};
        w = attn_reshape(ctx, w, 4, s4);
    } else if (point_map && w && w->ndim == 3 && w->shape[1] == N && w->shape[2] == N) {
        const int64_t s4[4] = {B, 1, N, N};
        w = attn_reshape(ctx, w, 4, s4);
    }
    const int n_rows = spatial_map ? 1 : N;
    if (!simple && (!w || w->shape[2] != n_rows || w->shape[3] != Nk)) {
        fprintf(stderr, "attn vision maps: the attention map has an unexpected shape\n");
        goto done;
    }
    /* queries: top, centre and bottom of the middle column, and a corner */
    const int qpos[MAP_QUERIES][2] = {{qh / 4, qw / 2}, {qh / 2, qw / 2}, {(3 * qh) / 4, qw / 2}, {0, 0}};
    map = malloc((size_t)Nk * sizeof *map);
    /* Simple SA: W x once per image ([C, N]); W symmetrised as the block does */
    float *wx = simple ? malloc((size_t)C * (size_t)N * sizeof *wx) : NULL;
    if (!map || (simple && !wx)) {
        free(wx);
        fprintf(stderr, "attn vision maps: out of memory\n");
        goto done;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out, "maps.txt");
    txt = fopen(path, "w");
    if (!txt) {
        free(wx);
        fprintf(stderr, "attn vision maps: cannot write %s: %s\n", path, strerror(errno));
        goto done;
    }
    fprintf(txt, "model %s, attention %s after stage %d (%dx%d map)", model,
            attn_cnn_attention_name(m->cfg.attention), m->cfg.attention_stage, qh, qw);
    if (vision_has_gamma(m)) fprintf(txt, ", gamma %.4f", (double)attn_cnn_gamma(m));
    if (spatial_map) {
        fprintf(txt, "\npanels: image, then the module's %dx%d map", qh, qw);
    } else {
        fprintf(txt, "\npanels: image, then queries (row, col) of the %dx%d map:", qh, qw);
        for (int q = 0; q < MAP_QUERIES; q++) fprintf(txt, " (%d, %d)", qpos[q][0], qpos[q][1]);
    }
    if (spatial_map)
        fprintf(txt, "\n%s\n", kind == ATTN_CNN_ATT_GC
                                   ? "one panel: the softmax over positions, scaled from its smallest to its largest"
                                   : "one panel: the sigmoid map, scaled from its smallest to its largest");
    else
        fprintf(txt, "\n%s\n", simple ? "weights: |x_i^T W x_j| scaled to the row's largest (no softmax)"
                                 : kind == ATTN_CNN_ATT_PSA
                                     ? "weights: |collect weights of the query over the positions|, scaled to the row's largest"
                                     : "weights: softmax over the key positions, scaled to the row's largest");
    const float *W = simple ? attn_f32(m->att.w) : NULL;
    for (int b = 0; b < B; b++) {
        const int64_t K = logits->shape[1];
        const float *lg = attn_f32(logits) + b * K;
        int pred = 0;
        for (int k = 1; k < K && k < 10; k++)
            if (lg[k] > lg[pred]) pred = k;
        const int label = d.test_y.data[first + b];
        fprintf(txt, "row %d: test image %lld, label %s, predicted %s\n", b, (long long)(first + b),
                class_names[label], class_names[pred]);
        const int y0 = b * pw;
        draw_panel(canvas, cw, 0, y0, img + b * 784, NULL, 0, 0, 0, 0, 0, 0);
        const float *xf = attn_f32(fin) + (size_t)b * (size_t)C * (size_t)N;
        if (simple)
            for (int64_t c = 0; c < C; c++)
                for (int n = 0; n < N; n++) {
                    double s = 0.0;
                    for (int64_t e = 0; e < C; e++) {
                        const double wce = m->cfg.sym ? 0.5 * ((double)W[c * C + e] + W[e * C + c]) : W[c * C + e];
                        s += wce * xf[e * N + n];
                    }
                    wx[c * N + n] = (float)s;
                }
        if (spatial_map) {
            const float *sm = attn_f32(w) + (size_t)b * (size_t)Nk;
            double lo = sm[0], hi = sm[0];
            for (int i = 1; i < Nk; i++) {
                if (sm[i] < lo) lo = sm[i];
                if (sm[i] > hi) hi = sm[i];
            }
            for (int i = 0; i < Nk; i++) map[i] = hi > lo ? (sm[i] - lo) / (hi - lo) : 0.0;
            fprintf(txt, "row %d: map from %.4g to %.4g\n", b, lo, hi);
            draw_panel(canvas, cw, pw, y0, img + b * 784, map, kh, kw, 0, 0, 0, 0);
            continue;
        }
        for (int q = 0; q < MAP_QUERIES; q++) {
            const int j = qpos[q][0] * qw + qpos[q][1];
            double mx = 0.0;
            for (int i = 0; i < Nk; i++) {
                double v;
                if (simple) {
                    v = 0.0; /* x_i . (W x)_j */
                    for (int64_t c = 0; c < C; c++) v += (double)xf[c * N + i] * wx[c * N + j];
                    v = fabs(v);
                } else {
                    v = attn_f32(w)[((size_t)b * N + j) * Nk + i];
                    if (kind == ATTN_CNN_ATT_PSA) v = fabs(v);
                }
                map[i] = v;
                if (v > mx) mx = v;
            }
            for (int i = 0; i < Nk; i++) map[i] = mx > 0 ? map[i] / mx : 0.0;
            draw_panel(canvas, cw, (1 + q) * pw, y0, img + b * 784, map, kh, kw, qh, qw, qpos[q][0], qpos[q][1]);
        }
    }
    free(wx);
    if (html && vision_page(html, weights, w, qh, qw, kh, kw, first, class_names[d.test_y.data[first]], model))
        goto done;
    snprintf(path, sizeof path, "%s/%s", out, "maps.png");
    if (attn_png_write(path, canvas, cw, ch, 3) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot write the picture");
        goto done;
    }
    if (spatial_map)
        printf("wrote %s (%d images, the %s module's map) and %s/maps.txt\n", path, B,
               attn_cnn_attention_name(m->cfg.attention), out);
    else
        printf("wrote %s (%d images x %d queries, %s) and %s/maps.txt\n", path, B, MAP_QUERIES,
               attn_cnn_attention_name(m->cfg.attention), out);
    rc = 0;
done:
    if (txt) fclose(txt);
    free(map);
    free(img);
    free(canvas);
    if (have_data) vision_fmnist_free(&d);
    attn_ctx_free(ctx);
    attn_cnn_free(m);
    attn_params_free(ps);
    return rc;
}
