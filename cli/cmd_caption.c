/* cmd_caption.c: `attn caption train|eval|describe`: Show, Attend and Tell
 * (include/attn/caption.h) on captioned Fashion-MNIST scenes
 * (include/attn/scenes.h), with a frozen CNN (include/attn/cnn.h) as the
 * encoder. docs/caption.md is the manual.
 *
 *   attn caption train    --out DIR --encoder CNN [--attention soft|hard|none] [options]
 *   attn caption eval     --model DIR [--test-scenes N] [--split test|valid] [--decode expected|argmax]
 *                         [--pictures N] [--pictures-dir DIR]
 *   attn caption describe --model DIR IMAGE.png [--picture OUT.png]
 *
 * The encoder runs once per scene set (gradients off, evaluation mode): the
 * feature map of its 14x14 stage becomes the L = 196 annotation vectors,
 * held in memory, so a training step costs only the decoder.
 *
 * A model directory holds model.safetensors (an attn checkpoint: the
 * decoder's parameters, Adam's state, and in its metadata the decoder's
 * configuration (caption.*) and the run's settings (run.*: the encoder's
 * path and stage, the data, the scene counts and seeds)), train.jsonl and
 * loss.svg.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attn/attn.h"
#include "attn/cnn.h"
#include "attn/png.h"
#include "commands.h"
#include "train_dist.h"
#include "train_driver.h"

#define CMD "caption"
#define CLIP_NORM 5.0f
#define TEST_SEED 2015u  /* the test scenes: the same for every model */
#define VALID_SEED 7u    /* the validation scenes */
#define MAX_LEN (ATTN_SCENE_MAX_WORDS + 1)

static double now_s(void) { return attn_monotonic_s(); }

/* ---- the encoder and the annotations ------------------------------------------------ */

typedef struct encoder {
    attn_params *ps;
    attn_cnn *cnn;
    int stage;
    char path[1024];
} encoder;

static void encoder_free(encoder *e) {
    attn_cnn_free(e->cnn);
    attn_params_free(e->ps);
    memset(e, 0, sizeof *e);
}

/* The side of the map after `stage` for a 56x56 canvas. */
static int stage_side(const attn_cnn_config *c, int stage) {
    int s = ATTN_SCENE_SIDE;
    for (int i = 0; i <= stage && i < c->n_stages - 1; i++) s /= 2;
    return s;
}

/* Loads the CNN (a file, or a directory holding model.safetensors) frozen;
 * stage < 0 picks the first stage whose map is 14x14. 0 or 1 (printed). */
static int encoder_load(const char *prog, const char *path, int stage, encoder *e) {
    memset(e, 0, sizeof *e);
    snprintf(e->path, sizeof e->path, "%s", path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(e->path, sizeof e->path, "%s/model.safetensors", path);
        f = fopen(e->path, "rb");
    }
    if (!f) {
        fprintf(stderr, "%s: cannot open the encoder %s (a CNN of attn vision train: its model.safetensors "
                        "or its directory): %s\n", prog, path, strerror(errno));
        return 1;
    }
    fclose(f);
    if (attn_params_new(&e->ps) != ATTN_OK || attn_cnn_load(e->path, e->ps, &e->cnn) != ATTN_OK) {
        fprintf(stderr, "%s: cannot load the encoder %s: %s\n", prog, e->path, attn_last_error());
        encoder_free(e);
        return 1;
    }
    for (int i = 0; i < attn_params_count(e->ps); i++) attn_params_at(e->ps, i)->requires_grad = 0;
    const attn_cnn_config *c = &e->cnn->cfg;
    if (c->in_channels != 1) {
        fprintf(stderr, "%s: the encoder %s takes %lld input channels; scenes are grey (1)\n", prog, e->path,
                (long long)c->in_channels);
        encoder_free(e);
        return 1;
    }
    if (stage < 0)
        for (int s = 0; s < c->n_stages && stage < 0; s++)
            if (stage_side(c, s) == 14) stage = s;
    if (stage < 0 || stage >= c->n_stages || stage_side(c, stage) < 2 || stage_side(c, stage) % 2) {
        fprintf(stderr, "%s: the encoder %s has no stage with an even map of at least 2x2 for 56x56 canvases "
                        "(stage %d; give --encoder-stage)\n", prog, e->path, stage);
        encoder_free(e);
        return 1;
    }
    e->stage = stage;
    return 0;
}

/* The CNN's features say what is at a location, not where it is (a
 * convolution is translation-equivariant), and the captions name positions:
 * each annotation vector gets the location's coordinates x, y in (-1, 1)
 * as two more channels (as CoordConv does). docs/caption.md, "Decisions". */
#define POS_CHANNELS 2
/* The coordinates run over (-POS_SCALE, POS_SCALE): the score must turn them
 * into a step at the cells' boundary (x = 0), which takes a large weight
 * from an initial 1/sqrt(D); the scale lets Adam's bounded steps get there
 * about POS_SCALE times sooner. */
#define POS_SCALE 4.f

/* Annotations of scenes: out [n, L, D] floats (malloc'ed), D = C + 2. */
static int annotate(const char *prog, attn_ctx *ctx, const encoder *e, const uint8_t *pixels, int64_t n,
                    float **out, int64_t *L_out, int64_t *D_out) {
    const int side = stage_side(&e->cnn->cfg, e->stage);
    const int64_t L = (int64_t)side * side, C = e->cnn->cfg.widths[e->stage], D = C + POS_CHANNELS,
                  P = ATTN_SCENE_SIDE * ATTN_SCENE_SIDE;
    float *a = malloc((size_t)(n * L * D) * sizeof *a);
    float *x = malloc((size_t)(64 * P) * sizeof *x);
    if (!a || !x) {
        free(a);
        free(x);
        fprintf(stderr, "%s: out of memory for %lld annotation sets of %lld x %lld\n", prog, (long long)n,
                (long long)L, (long long)D);
        return 1;
    }
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    int rc = 0;
    for (int64_t s = 0; s < n && !rc; s += 64) {
        const int64_t b = n - s < 64 ? n - s : 64;
        for (int64_t i = 0; i < b * P; i++) x[i] = (float)pixels[s * P + i] / 255.f;
        attn_ctx_reset(ctx);
        attn_tensor *xt = attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){b, 1, ATTN_SCENE_SIDE, ATTN_SCENE_SIDE}, x);
        attn_tensor *fm = attn_cnn_features(ctx, e->cnn, xt, e->stage, NULL);
        if (!fm || fm->shape[1] != C || fm->shape[2] * fm->shape[3] != L) {
            fprintf(stderr, "%s: the encoder failed: %s\n", prog, attn_ctx_error(ctx));
            rc = 1;
            break;
        }
        attn_tensor *fc = attn_contiguous(ctx, fm);
        const float *f = attn_f32(fc);
        for (int64_t i = 0; i < b; i++) { /* [C, L] -> [L, C], then the location's (x, y) */
            for (int64_t c = 0; c < C; c++)
                for (int64_t l = 0; l < L; l++) a[((s + i) * L + l) * D + c] = f[(i * C + c) * L + l];
            for (int64_t l = 0; l < L; l++) {
                a[((s + i) * L + l) * D + C] = POS_SCALE * ((float)(2 * (l % side) + 1) / (float)side - 1.f);
                a[((s + i) * L + l) * D + C + 1] = POS_SCALE * ((float)(2 * (l / side) + 1) / (float)side - 1.f);
            }
        }
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    free(x);
    if (rc) {
        free(a);
        return 1;
    }
    *out = a;
    *L_out = L;
    *D_out = D;
    return 0;
}

/* ---- scenes --------------------------------------------------------------------------- */

typedef struct scene_set {
    attn_scenes s;
    float *annot; /* [n, L, D] */
    int64_t L, D;
} scene_set;

static void scene_set_free(scene_set *s) {
    attn_scenes_free(&s->s);
    free(s->annot);
    memset(s, 0, sizeof *s);
}

static int load_split(const char *prog, const char *dir, int test, attn_idx *im, attn_idx *lb) {
    char p1[4096], p2[4096];
    snprintf(p1, sizeof p1, "%s/%s-images-idx3-ubyte", dir, test ? "t10k" : "train");
    snprintf(p2, sizeof p2, "%s/%s-labels-idx1-ubyte", dir, test ? "t10k" : "train");
    if (attn_idx_load(p1, im) != ATTN_OK || attn_idx_load(p2, lb) != ATTN_OK) {
        fprintf(stderr, "%s: cannot read Fashion-MNIST: %s (bash scripts/setup.sh installs it)\n", prog,
                attn_last_error());
        attn_idx_free(im);
        return 1;
    }
    return 0;
}

/* The annotation cache (--cache DIR): the annotations of a scene set in a
 * file named by a hash of the encoder file (path, size, modification time),
 * its stage, the data directory, the split, the count, the seed and the
 * position channels, so that runs over the same scenes and encoder encode
 * them once. Format: "ATNC", u32 version 1, i64 n, L, D, then n L D floats
 * (host order); anything else is ignored and rewritten. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static void cache_name(char *buf, size_t cap, const char *dir, const encoder *e, const char *data,
                       attn_scene_split split, int64_t n, uint64_t seed) {
    struct stat sb;
    memset(&sb, 0, sizeof sb);
    stat(e->path, &sb);
    uint64_t h = 1469598103934665603ull;
    const long long v[6] = {(long long)sb.st_size, (long long)sb.st_mtime, e->stage, (long long)split, n,
                            (long long)seed};
    h = fnv(h, e->path, strlen(e->path));
    h = fnv(h, data, strlen(data));
    h = fnv(h, v, sizeof v);
    const float ps = POS_SCALE;
    h = fnv(h, &ps, sizeof ps);
    snprintf(buf, cap, "%s/annot-%016llx.bin", dir, (unsigned long long)h);
}

static int cache_read(const char *path, int64_t n, scene_set *out) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char magic[4];
    uint32_t ver = 0;
    int64_t hdr[3];
    int rc = -1;
    if (fread(magic, 1, 4, f) == 4 && !memcmp(magic, "ATNC", 4) && fread(&ver, 4, 1, f) == 1 && ver == 1 &&
        fread(hdr, 8, 3, f) == 3 && hdr[0] == n && hdr[1] >= 1 && hdr[1] <= 4096 && hdr[2] >= 1 && hdr[2] <= 8192) {
        const size_t cnt = (size_t)(hdr[0] * hdr[1] * hdr[2]);
        float *a = malloc(cnt * sizeof *a);
        if (a && fread(a, sizeof *a, cnt, f) == cnt && fgetc(f) == EOF) {
            out->annot = a;
            out->L = hdr[1];
            out->D = hdr[2];
            rc = 0;
        } else {
            free(a);
        }
    }
    fclose(f);
    return rc;
}

static void cache_write(const char *prog, const char *path, const scene_set *s) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    const int64_t hdr[3] = {s->s.n, s->L, s->D};
    const uint32_t ver = 1;
    const size_t cnt = (size_t)(s->s.n * s->L * s->D);
    int ok = f && fwrite("ATNC", 1, 4, f) == 4 && fwrite(&ver, 4, 1, f) == 1 && fwrite(hdr, 8, 3, f) == 3 &&
             fwrite(s->annot, sizeof(float), cnt, f) == cnt;
    if (f && fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) == 0) return;
    remove(tmp);
    fprintf(stderr, "%s: warning: cannot write the annotation cache %s\n", prog, path);
}

/* Makes n scenes of a split and their annotations (from the cache when
 * cache_dir holds them). */
static int make_set(const char *prog, attn_ctx *ctx, const encoder *e, const char *data, attn_scene_split split,
                    int64_t n, uint64_t seed, const char *cache_dir, scene_set *out) {
    memset(out, 0, sizeof *out);
    attn_idx im, lb;
    if (load_split(prog, data, split == ATTN_SCENES_TEST, &im, &lb)) return 1;
    const attn_status st = attn_scenes_make(&im, &lb, split, n, seed, &out->s);
    attn_idx_free(&im);
    attn_idx_free(&lb);
    if (st != ATTN_OK) {
        fprintf(stderr, "%s: cannot make the scenes: %s\n", prog, attn_last_error());
        return 1;
    }
    char cpath[4096];
    if (cache_dir) {
        cache_name(cpath, sizeof cpath, cache_dir, e, data, split, n, seed);
        if (cache_read(cpath, n, out) == 0) return 0;
    }
    if (annotate(prog, ctx, e, out->s.pixels, n, &out->annot, &out->L, &out->D)) {
        scene_set_free(out);
        return 1;
    }
    if (cache_dir) {
        if (cli_make_dir(cache_dir) == 0) cache_write(prog, cpath, out);
        else fprintf(stderr, "%s: warning: cannot create the cache directory %s\n", prog, cache_dir);
    }
    return 0;
}

/* Tokens of scenes idx[0..B): [B, T + 1] (BOS words EOS PAD..); returns T + 1. */
static int64_t batch_tokens(const scene_set *s, const int64_t *idx, int64_t B, int32_t *tok) {
    int32_t w[ATTN_SCENE_MAX_WORDS];
    int64_t T1 = 0;
    for (int64_t b = 0; b < B; b++) {
        const int n = attn_scene_caption(&s->s.scenes[idx[b]], w, NULL);
        T1 = n + 2 > T1 ? n + 2 : T1;
    }
    for (int64_t b = 0; b < B; b++) {
        const int n = attn_scene_caption(&s->s.scenes[idx[b]], w, NULL);
        int32_t *row = tok + b * T1;
        row[0] = ATTN_CAPTION_BOS_ID;
        for (int i = 0; i < n; i++) row[1 + i] = w[i];
        row[n + 1] = ATTN_CAPTION_EOS_ID;
        for (int64_t i = n + 2; i < T1; i++) row[i] = ATTN_CAPTION_PAD_ID;
    }
    return T1;
}

static attn_tensor *batch_annot(attn_ctx *ctx, const scene_set *s, const int64_t *idx, int64_t B) {
    attn_tensor *a = attn_tensor_new(ctx, ATTN_F32, 3, (int64_t[]){B, s->L, s->D});
    if (!a) return NULL;
    const size_t one = (size_t)(s->L * s->D);
    for (int64_t b = 0; b < B; b++) memcpy(attn_f32(a) + b * (int64_t)one, s->annot + idx[b] * (int64_t)one, one * sizeof(float));
    return a;
}

/* ---- evaluation ------------------------------------------------------------------------- */

typedef struct eval_out {
    double bleu, exact, att_acc, loss;
    double bleu_novel, exact_novel, att_acc_novel;
    int64_t n, n_novel, att_words, att_words_novel;
    double seconds;
} eval_out;

/* The cell of location l on a side x side grid. */
static int loc_cell(int64_t l, int side) {
    const int r = (int)(l / side), c = (int)(l % side);
    return (r * 2 / side) * 2 + c * 2 / side;
}

/* BLEU-4 and exact match of greedy captions; attention accuracy and loss
 * teacher-forced on the reference captions; the same on the novel scenes.
 * max_n > 0 evaluates the first max_n scenes only. */
static int evaluate(const char *prog, attn_ctx *ctx, attn_caption *m, const scene_set *s, int64_t max_n,
                    attn_caption_decode decode, eval_out *o) {
    memset(o, 0, sizeof *o);
    const double t0 = now_s();
    const int64_t n = max_n > 0 && max_n < s->s.n ? max_n : s->s.n, B = 50, L = s->L;
    const int side = (int)lround(sqrt((double)L));
    const int grad = attn_ctx_grad_enabled(ctx);
    attn_eval all, nov;
    attn_eval_init(&all);
    attn_eval_init(&nov);
    int64_t idx[50], hits = 0, hits_novel = 0;
    int32_t ids[50 * MAX_LEN], tok[50 * (ATTN_SCENE_MAX_WORDS + 2)];
    double nats = 0.0;
    int64_t ntok = 0;
    int rc = 0;
    for (int64_t s0 = 0; s0 < n && !rc; s0 += B) {
        const int64_t b = n - s0 < B ? n - s0 : B;
        for (int64_t i = 0; i < b; i++) idx[i] = s0 + i;
        attn_ctx_reset(ctx);
        attn_ctx_set_grad_enabled(ctx, 0);
        attn_tensor *a = batch_annot(ctx, s, idx, b);
        if (!a || attn_caption_greedy_decode(ctx, m, a, MAX_LEN, decode, ids, NULL, NULL) != ATTN_OK) {
            rc = 1;
            break;
        }
        for (int64_t i = 0; i < b; i++) {
            char hyp[512], ref[512];
            int32_t w[ATTN_SCENE_MAX_WORDS];
            const int nw = attn_scene_caption(&s->s.scenes[s0 + i], w, NULL);
            attn_caption_text(ids + i * MAX_LEN, MAX_LEN, hyp, sizeof hyp);
            attn_caption_text(w, nw, ref, sizeof ref);
            if (attn_eval_add(&all, hyp, ref) != ATTN_OK) rc = 1;
            if (attn_scene_is_novel(&s->s.scenes[s0 + i]) && attn_eval_add(&nov, hyp, ref) != ATTN_OK) rc = 1;
        }
        /* teacher-forced: loss, and the attention of every reference class word */
        attn_ctx_reset(ctx);
        a = batch_annot(ctx, s, idx, b);
        const int64_t T1 = batch_tokens(s, idx, b, tok);
        attn_tensor *tt = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){b, T1}, tok);
        attn_caption_loss_out lo;
        /* HARD: the context of the decoding: expected (every row flagged) or argmax */
        uint8_t expected[50];
        int32_t *zeros = calloc((size_t)(b * T1), sizeof *zeros);
        const int argmax = decode == ATTN_CAPTION_DECODE_ARGMAX;
        for (int64_t i = 0; i < b; i++) expected[i] = !argmax;
        const attn_caption_draws d = {zeros, expected, argmax};
        const attn_status st = attn_caption_loss(ctx, m, a, tt, m->cfg.mode == ATTN_CAPTION_HARD ? &d : NULL, &lo);
        free(zeros);
        if (st != ATTN_OK || !a) {
            rc = 1;
            break;
        }
        nats += lo.ce * (double)lo.tokens;
        ntok += lo.tokens;
        if (lo.alphas) {
            const float *al = attn_f32(lo.alphas);
            const int64_t T = T1 - 1;
            for (int64_t i = 0; i < b; i++) {
                int32_t w[ATTN_SCENE_MAX_WORDS];
                int cell_of[ATTN_SCENE_MAX_WORDS];
                const attn_scene *sc = &s->s.scenes[s0 + i];
                const int nw = attn_scene_caption(sc, w, cell_of);
                const int novel = attn_scene_is_novel(sc);
                for (int t = 0; t < nw; t++) {
                    if (cell_of[t] < 0) continue;
                    const float *row = al + (i * T + t) * L; /* step t predicts word t */
                    int64_t best = 0;
                    for (int64_t l = 1; l < L; l++)
                        if (row[l] > row[best]) best = l;
                    const int ok = loc_cell(best, side) == cell_of[t];
                    hits += ok;
                    o->att_words++;
                    if (novel) {
                        hits_novel += ok;
                        o->att_words_novel++;
                    }
                }
            }
        }
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    if (rc) {
        fprintf(stderr, "%s: evaluation failed: %s\n", prog, attn_ctx_status(ctx) ? attn_ctx_error(ctx) : attn_last_error());
        return 1;
    }
    attn_bleu_score bs;
    attn_eval_bleu(&all, &bs);
    o->bleu = bs.score;
    o->exact = attn_eval_exact_match(&all);
    attn_eval_bleu(&nov, &bs);
    o->bleu_novel = nov.n ? bs.score : NAN;
    o->exact_novel = nov.n ? attn_eval_exact_match(&nov) : NAN;
    o->n = all.n;
    o->n_novel = nov.n;
    o->att_acc = o->att_words ? (double)hits / (double)o->att_words : NAN;
    o->att_acc_novel = o->att_words_novel ? (double)hits_novel / (double)o->att_words_novel : NAN;
    o->loss = ntok ? nats / (double)ntok : NAN;
    o->seconds = now_s() - t0;
    return 0;
}

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
static int write_picture(const char *prog, const char *path, const uint8_t *img, const int32_t *ids, const float *alphas,
                         int64_t L, const char *ref) {
    const int side = (int)lround(sqrt((double)L));
    int nw = 0;
    while (nw < MAX_LEN && ids[nw] != ATTN_CAPTION_PAD_ID) {
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
    attn_caption_text(ids, MAX_LEN, hyp, sizeof hyp);
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

/* ---- the run's settings ------------------------------------------------------------------ */

typedef struct run_info {
    char encoder[1024], data[1024];
    long long encoder_stage, train_scenes, valid_scenes, scene_seed, batch, total_steps, warmup, seed, step;
    double lr, min_lr, weight_decay, train_seconds;
    double mix_from; /* hard: the mix at step 0, annealed linearly to the model's mix (caption.mix) at
                        the last step; < 0: no schedule (the model's mix throughout) */
} run_info;

#define RUN_META 16
typedef struct run_meta {
    attn_kv kv[ATTN_CAPTION_META + RUN_META];
    char cbuf[ATTN_CAPTION_META * 32];
    char vbuf[RUN_META][1100];
    int n;
} run_meta;

static const char *const run_keys[RUN_META] = {
    "run.model", "run.encoder", "run.encoder_stage", "run.data", "run.train_scenes", "run.valid_scenes",
    "run.scene_seed", "run.batch", "run.steps", "run.warmup", "run.seed", "run.lr", "run.min_lr",
    "run.weight_decay", "run.train_seconds", "run.mix_from"};

static void run_meta_build(run_meta *m, const attn_caption *cm, const run_info *r) {
    attn_caption_config_meta(&cm->cfg, m->kv, m->cbuf);
    m->n = ATTN_CAPTION_META;
    snprintf(m->vbuf[0], 1100, "attn-caption");
    snprintf(m->vbuf[1], 1100, "%s", r->encoder);
    snprintf(m->vbuf[2], 1100, "%lld", r->encoder_stage);
    snprintf(m->vbuf[3], 1100, "%s", r->data);
    snprintf(m->vbuf[4], 1100, "%lld", r->train_scenes);
    snprintf(m->vbuf[5], 1100, "%lld", r->valid_scenes);
    snprintf(m->vbuf[6], 1100, "%lld", r->scene_seed);
    snprintf(m->vbuf[7], 1100, "%lld", r->batch);
    snprintf(m->vbuf[8], 1100, "%lld", r->total_steps);
    snprintf(m->vbuf[9], 1100, "%lld", r->warmup);
    snprintf(m->vbuf[10], 1100, "%lld", r->seed);
    snprintf(m->vbuf[11], 1100, "%.9g", r->lr);
    snprintf(m->vbuf[12], 1100, "%.9g", r->min_lr);
    snprintf(m->vbuf[13], 1100, "%.9g", r->weight_decay);
    snprintf(m->vbuf[14], 1100, "%.3f", r->train_seconds);
    snprintf(m->vbuf[15], 1100, "%.9g", r->mix_from); /* -1: no schedule */
    for (int i = 0; i < RUN_META; i++) {
        m->kv[m->n].key = run_keys[i];
        m->kv[m->n].value = m->vbuf[i];
        m->n++;
    }
}

static int run_meta_read(const char *path, run_info *r) {
    attn_safetensors *f = NULL;
    if (attn_safetensors_open(&f, path) != ATTN_OK) return cli_fail(CMD, "cannot open the model");
    const char *model = attn_safetensors_metadata(f, "run.model");
    if (!model || strcmp(model, "attn-caption") != 0) {
        attn_safetensors_close(f);
        fprintf(stderr, "attn caption: %s is not a model of attn caption train (run.model missing)\n", path);
        return 1;
    }
    meta_reader m = {f, path, {0}};
    snprintf(r->encoder, sizeof r->encoder, "%s", meta_str(&m, "run.encoder"));
    snprintf(r->data, sizeof r->data, "%s", meta_str(&m, "run.data"));
    r->encoder_stage = meta_ll(&m, "run.encoder_stage", 0, ATTN_CNN_MAX_STAGES - 1);
    r->train_scenes = meta_ll(&m, "run.train_scenes", 1, 1 << 24);
    r->valid_scenes = meta_ll(&m, "run.valid_scenes", 1, 1 << 24);
    r->scene_seed = meta_ll(&m, "run.scene_seed", 0, 1ll << 62);
    r->batch = meta_ll(&m, "run.batch", 1, 1 << 16);
    r->total_steps = meta_ll(&m, "run.steps", 1, 1ll << 40);
    r->warmup = meta_ll(&m, "run.warmup", 0, 1ll << 40);
    r->seed = meta_ll(&m, "run.seed", 0, 1ll << 62);
    r->lr = meta_real(&m, "run.lr", 0.0, 10.0);
    r->min_lr = meta_real(&m, "run.min_lr", 0.0, 10.0);
    r->weight_decay = meta_real(&m, "run.weight_decay", 0.0, 10.0);
    r->train_seconds = meta_real(&m, "run.train_seconds", 0.0, 1e12);
    /* a model written before the mix schedule existed has none */
    r->mix_from = meta_has(&m, "run.mix_from") ? meta_real(&m, "run.mix_from", -1.0, 1.0) : -1.0;
    if (r->mix_from < 0.0) r->mix_from = -1.0;
    r->step = meta_has(&m, "step") ? meta_ll(&m, "step", 0, 1ll << 40) : 0;
    attn_safetensors_close(f);
    if (m.err[0]) {
        fprintf(stderr, "attn caption: %s\n", m.err);
        return 1;
    }
    return 0;
}

/* ---- train ------------------------------------------------------------------------------- */

static void train_usage(FILE *f) {
    fprintf(f,
        "usage: attn caption train --out DIR --encoder CNN [options]\n\n"
        "Trains a Show, Attend and Tell decoder to caption 56x56 scenes of Fashion-MNIST\n"
        "items (docs/caption.md), on the annotation vectors of a frozen CNN, and reports\n"
        "BLEU-4, exact match and attention accuracy on validation scenes.\n\n"
        "data and encoder (fixed by the checkpoint: refused with --resume)\n"
        "  --encoder PATH         the CNN of attn vision train (model.safetensors or its directory);\n"
        "                         'random': an untrained CNN (random frozen features, saved as\n"
        "                         DIR/encoder.safetensors): for tests and as a floor\n"
        "  --encoder-stage S      its stage whose map gives the annotations (default: the 14x14 one)\n"
        "  --data DIR             Fashion-MNIST IDX files (default data/fashion-mnist)\n"
        "  --train-scenes N       training scenes (default 6000)\n"
        "  --valid-scenes N       validation scenes (default 500)\n"
        "  --scene-seed N         the scenes' seed (default 1)\n"
        "  --init MODEL           start the decoder from another run's parameters (its directory or\n"
        "                         .safetensors file; soft or hard, same sizes and encoder): a warm\n"
        "                         start, e.g. hard attention from a soft model\n"
        "  --cache DIR            keep the scenes' annotations in DIR and reuse them (same encoder\n"
        "                         file, data, scenes): later runs skip the encoding\n"
        "model (fixed by the checkpoint)\n"
        "  --attention KIND       soft|hard|none (default soft)\n"
        "  --embed N              word embedding size (default 64)\n"
        "  --hidden N             LSTM size (default 128)\n"
        "  --attn-size N          additive score's hidden size (default 64)\n"
        "  --lambda X             doubly stochastic penalty (default 0.001)\n"
        "  --entropy X            hard: entropy bonus (default 0.01)\n"
        "  --reinforce X          hard: weight of the REINFORCE term (default 1)\n"
        "  --mix P                hard: probability of the expected context per caption (default 0.5)\n"
        "  --mix-from P           hard: a schedule: the mix is P at the first step and moves linearly\n"
        "                         to --mix at the last (e.g. --mix-from 1 --mix 0.5: soft attention\n"
        "                         first, then more and more sampled captions; default: no schedule)\n"
        "  --samples K            hard: K draws per caption (a step decodes batch x K rows), each\n"
        "                         row's baseline the mean reward of the caption's other sampled\n"
        "                         rows (default 1: the moving average only)\n"
        "  --reward-to-go 0|1     hard: credit the draw of step t with the caption's log-likelihood\n"
        "                         from t on, not the whole caption's (default 0: the paper's)\n"
        "schedule (with --resume: applied and printed)\n"
        "  --batch N              captions per step (default 32)\n"
        "  --steps N              optimizer steps (default 3000)\n"
        "  --epochs E             instead of --steps: E passes over the training scenes\n"
        "  --time-budget S        stop after S seconds of training\n"
        "  --lr X                 Adam's peak learning rate (default 3e-3)\n"
        "  --min-lr X             final learning rate of the cosine (default lr / 10)\n"
        "  --warmup N             linear warmup steps (default 50)\n"
        "  --weight-decay X       (default 0)\n"
        "  --seed N               initialisation, batches, draws (default 1)\n"
        "run\n"
        "  --eval-every N         validation every N steps and a checkpoint (default 500; 0: end only)\n"
        "  --eval-n N             scenes of the periodic validations (default 200; the final one: all)\n"
        "  --log-every N          a JSONL line every N steps (default 50)\n"
        "  --threads N            threads (default: all)\n"
        "  --arena-mb N           context arena in MiB (default 512)\n"
        "  --resume, --force, --quiet\n\n"
        "Ctrl-C (SIGINT) or SIGTERM finishes the step, writes a checkpoint and exits 130.\n");
}

typedef struct cap_train {
    run_info r;
    attn_caption m;
    scene_set tr, va;
    int64_t B;
    long long eval_n;
    run_meta meta;
    int32_t *tok;
    int64_t *idx;
    float mix_end; /* hard: the model's mix, the schedule's end (r.mix_from its start) */
} cap_train;

/* The mix of step `step` of `total`: r.mix_from at step 0, linearly to the model's mix at the last
 * step (docs/caption.md, "From scratch"); the model's mix without a schedule. */
static float cap_mix_at(const cap_train *g, int64_t step, int64_t total) {
    if (g->r.mix_from < 0.0) return g->mix_end;
    const double f = total > 1 ? (double)step / (double)(total - 1) : 1.0;
    const double x = g->r.mix_from + (f < 0.0 ? 0.0 : f > 1.0 ? 1.0 : f) * ((double)g->mix_end - g->r.mix_from);
    return (float)(x < 0.0 ? 0.0 : x > 1.0 ? 1.0 : x);
}

static attn_tensor *cap_step_loss(void *self, train_run *run, int64_t step, train_counts *c) {
    cap_train *g = self;
    const uint64_t seed = (uint64_t)g->r.seed;
    /* rows b*K .. b*K+K-1 are caption b (hard attention with --samples K: K draws per caption) */
    const int64_t K = g->m.cfg.mode == ATTN_CAPTION_HARD && g->m.cfg.samples > 1 ? g->m.cfg.samples : 1;
    for (int64_t b = 0; b < g->B; b++)
        g->idx[b] = (int64_t)(attn_rng_u32(seed, (uint64_t)step, (uint64_t)(b / K)) % (uint64_t)g->tr.s.n);
    attn_ctx_set_rng(run->ctx, seed, (uint64_t)step << 20); /* hard attention's draws: replayed on resume */
    attn_tensor *a = batch_annot(run->ctx, &g->tr, g->idx, g->B);
    const int64_t T1 = batch_tokens(&g->tr, g->idx, g->B, g->tok);
    attn_tensor *t = attn_tensor_from(run->ctx, ATTN_I32, 2, (int64_t[]){g->B, T1}, g->tok);
    if (!a || !t) return NULL;
    attn_caption_loss_out lo;
    g->m.cfg.mix = cap_mix_at(g, step, run->total_steps); /* the schedule's; the model keeps mix_end */
    const attn_status st = attn_caption_loss(run->ctx, &g->m, a, t, NULL, &lo);
    const double mix = g->m.cfg.mix;
    g->m.cfg.mix = g->mix_end;
    if (st != ATTN_OK) return NULL;
    if (g->m.cfg.mode == ATTN_CAPTION_HARD && run->log_every > 0 && step % run->log_every == 0) {
        /* REINFORCE over training: the sampled captions' mean reward (nats per word) and the baseline */
        const attn_json_field f[] = {attn_json_str("event", "reinforce"), attn_json_int("step", step),
                                     attn_json_num("reward", lo.reward), attn_json_num("baseline", lo.baseline),
                                     attn_json_num("ce", (double)lo.ce), attn_json_num("mix", mix)};
        if (train_log(run, f, 6)) return NULL;
    }
    c->items = (double)(g->B / K);
    c->tokens = (double)lo.tokens;
    return lo.loss;
}

static int cap_evaluate(void *self, train_run *run, int last, double *seconds) {
    cap_train *g = self;
    eval_out ev;
    if (evaluate(run->prog, run->ctx, &g->m, &g->va, last ? 0 : g->eval_n, ATTN_CAPTION_DECODE_EXPECTED, &ev))
        return 1;
    *seconds = ev.seconds;
    const attn_json_field f[] = {
        attn_json_str("event", "eval"), attn_json_int("step", run->step), attn_json_num("valid_loss", ev.loss),
        attn_json_num("bleu4", ev.bleu), attn_json_num("exact", ev.exact),
        attn_json_num("attention_accuracy", isnan(ev.att_acc) ? -1.0 : ev.att_acc), attn_json_int("scenes", ev.n),
        attn_json_bool("full", last), attn_json_num("seconds", ev.seconds),
    };
    if (train_log(run, f, (int)(sizeof f / sizeof f[0]))) return 1;
    if (!run->quiet || last) {
        if (run->progress.tty && !run->quiet) fputc('\n', stderr);
        char acc[32] = "-";
        if (!isnan(ev.att_acc)) snprintf(acc, sizeof acc, "%.1f%%", 100.0 * ev.att_acc);
        fprintf(last ? stdout : stderr,
                "step %lld: valid loss %.4f, BLEU-4 %.2f, exact %.1f%%, attention accuracy %s (%lld scenes%s)\n",
                (long long)run->step, ev.loss, ev.bleu, 100.0 * ev.exact, acc, (long long)ev.n, last ? ", all" : "");
    }
    return 0;
}

static void cap_meta(void *self, train_run *run, double train_seconds_, const attn_kv **kv, int *n) {
    cap_train *g = self;
    g->r.total_steps = run->total_steps;
    g->r.train_seconds = train_seconds_;
    run_meta_build(&g->meta, &g->m, &g->r);
    *kv = g->meta.kv;
    *n = g->meta.n;
}

static int cap_finish(void *self, train_run *run, double train_s, double train_cpu) {
    cap_train *g = self;
    const double n = (double)((run->step - run->start) * g->B);
    const double sps = n / (train_s > 1e-9 ? train_s : 1e-9);
    printf("trained %lld steps in %.1f s: %.0f captions/s (evaluation %.1f s apart)%s\n",
           (long long)(run->step - run->start), train_s, sps, run->eval_seconds,
           !strcmp(run->stopped, "time_budget") ? "; stopped by the time budget" : "");
    const attn_json_field f[] = {attn_json_str("event", "end"), attn_json_int("step", run->step),
                                 attn_json_str("stopped", run->stopped), attn_json_num("train_seconds", train_s),
                                 attn_json_num("captions_per_s", sps), attn_json_num("train_cpu_seconds", train_cpu)};
    return train_log(run, f, (int)(sizeof f / sizeof f[0]));
}

static const train_family cap_family = {
    "cap", NULL, "Show, Attend and Tell", "loss (nats per word)", "valid", NULL, "train.jsonl, loss.svg",
    cap_step_loss, NULL, cap_evaluate, cap_meta, cap_finish, NULL, NULL, NULL,
};

static int cmd_caption_train(int argc, char **argv) {
    const char *prog = "attn caption train", *sub = "train", *data = "data/fashion-mnist", *enc = NULL;
    const char *att = "soft", *cache = NULL, *init = NULL;
    long long train_scenes = 6000, valid_scenes = 500, scene_seed = 1, embed = 64, hidden = 128, attn_size = 64,
              enc_stage = -1;
    double lambda = 0.001, entropy = 0.01, reinforce = 1.0, mix = 0.5, mix_from = -1.0;
    long long samples = 1, rtg = 0;
    int rc = 0;
    train_opts o;
    train_opts_init(&o);
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage(stdout);
            return 0;
        }
        const int k = train_opt(prog, a, v, &o, &rc);
        if (k) {
            i += k - 1;
            continue;
        }
        if (strcmp(a, "--cache")) train_fixed(&o, a); /* a run-time choice */
        i++;
        if (!strcmp(a, "--cache")) cache = v;
        else if (!strcmp(a, "--init")) init = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--encoder")) enc = v;
        else if (!strcmp(a, "--attention")) att = v;
        else if (!strcmp(a, "--encoder-stage")) rc = cli_opt_int(CMD, sub, a, v, 0, ATTN_CNN_MAX_STAGES - 1, &enc_stage);
        else if (!strcmp(a, "--train-scenes")) rc = cli_opt_int(CMD, sub, a, v, 1, 1 << 20, &train_scenes);
        else if (!strcmp(a, "--valid-scenes")) rc = cli_opt_int(CMD, sub, a, v, 1, 1 << 20, &valid_scenes);
        else if (!strcmp(a, "--scene-seed")) rc = cli_opt_int(CMD, sub, a, v, 0, 1ll << 62, &scene_seed);
        else if (!strcmp(a, "--embed")) rc = cli_opt_int(CMD, sub, a, v, 1, 4096, &embed);
        else if (!strcmp(a, "--hidden")) rc = cli_opt_int(CMD, sub, a, v, 1, 4096, &hidden);
        else if (!strcmp(a, "--attn-size")) rc = cli_opt_int(CMD, sub, a, v, 1, 4096, &attn_size);
        else if (!strcmp(a, "--lambda")) rc = cli_opt_real(CMD, sub, a, v, 0.0, 1e6, &lambda);
        else if (!strcmp(a, "--entropy")) rc = cli_opt_real(CMD, sub, a, v, 0.0, 1e6, &entropy);
        else if (!strcmp(a, "--reinforce")) rc = cli_opt_real(CMD, sub, a, v, 0.0, 1e6, &reinforce);
        else if (!strcmp(a, "--mix")) rc = cli_opt_real(CMD, sub, a, v, 0.0, 1.0, &mix);
        else if (!strcmp(a, "--mix-from")) rc = cli_opt_real(CMD, sub, a, v, 0.0, 1.0, &mix_from);
        else if (!strcmp(a, "--samples")) rc = cli_opt_int(CMD, sub, a, v, 1, 64, &samples);
        else if (!strcmp(a, "--reward-to-go")) rc = cli_opt_int(CMD, sub, a, v, 0, 1, &rtg);
        else {
            fprintf(stderr, "attn caption train: unknown option '%s' (try 'attn caption train --help')\n", a);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "attn caption train: %s needs a value\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if ((rc = train_opts_check(prog, &o))) return rc;
    attn_caption_mode mode;
    if (attn_caption_mode_parse(att, &mode)) {
        fprintf(stderr, "attn caption train: --attention '%s': expected soft, hard or none\n", att);
        return 2;
    }
    if (mix_from >= 0.0 && mode != ATTN_CAPTION_HARD) {
        fprintf(stderr, "attn caption train: --mix-from is a schedule of hard attention's mix (--attention hard)\n");
        return 2;
    }
    if (!o.resume && !enc) {
        fprintf(stderr, "attn caption train: --encoder PATH (a CNN of attn vision train) is required\n");
        return 2;
    }
    const char *out = o.out;
    const int resume = o.resume;
    if ((rc = train_dir_check(prog, &o))) return rc;

    cap_train g;
    memset(&g, 0, sizeof g);
    g.eval_n = o.eval_n > 0 ? o.eval_n : 200;
    run_info *rp = &g.r;
    attn_params *ps = NULL;
    attn_optim *opt = NULL;
    attn_ctx *ctx = NULL;
    encoder e;
    memset(&e, 0, sizeof e);
    train_run run;
    memset(&run, 0, sizeof run);
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s/model.safetensors", out);
    rc = 1;
    attn_caption_config cc;
    memset(&cc, 0, sizeof cc);
    if (resume) {
        if (run_meta_read(ckpt, rp)) goto done;
        train_resume_ll("--steps", o.steps, &rp->total_steps);
        train_resume_ll("--batch", o.batch, &rp->batch);
        train_resume_ll("--warmup", o.warmup, &rp->warmup);
        train_resume_real("--lr", o.lr, &rp->lr);
        train_resume_real("--min-lr", o.min_lr, &rp->min_lr);
        train_resume_real("--weight-decay", o.weight_decay, &rp->weight_decay);
        if (attn_caption_config_load(ckpt, &cc) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot read the model's configuration");
            goto done;
        }
    } else {
        snprintf(rp->encoder, sizeof rp->encoder, "%s", enc);
        snprintf(rp->data, sizeof rp->data, "%s", data);
        rp->train_scenes = train_scenes;
        rp->valid_scenes = valid_scenes;
        rp->scene_seed = scene_seed;
        rp->batch = o.batch > 0 ? o.batch : 32;
        rp->total_steps = o.steps > 0 ? o.steps : 3000;
        rp->warmup = o.warmup >= 0 ? o.warmup : 50;
        rp->seed = o.seed >= 0 ? o.seed : 1;
        rp->lr = o.lr >= 0 ? o.lr : 3e-3;
        rp->min_lr = o.min_lr >= 0 ? o.min_lr : rp->lr / 10.0;
        rp->weight_decay = o.weight_decay >= 0 ? o.weight_decay : 0.0;
        rp->mix_from = mix_from;
    }
    attn_ctx_config xc = {0};
    xc.arena_bytes = (size_t)(o.arena_mb > 0 ? o.arena_mb : 512) << 20;
    xc.n_threads = (int)(o.threads > 0 ? o.threads : 0);
    xc.seed = (uint64_t)rp->seed;
    if (attn_ctx_new(&ctx, &xc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    if (!resume && !strcmp(rp->encoder, "random")) {
        /* an untrained CNN (frozen random features): for tests, and as a floor
         * for the trained encoder; saved with the model so eval finds it */
        if (cli_make_dir(out) != 0) {
            fprintf(stderr, "%s: cannot create the directory %s: %s\n", prog, out, strerror(errno));
            goto done;
        }
        attn_cnn_config rc_cfg = attn_cnn_config_default();
        rc_cfg.widths[0] = 16;
        rc_cfg.widths[1] = 32;
        rc_cfg.widths[2] = 32;
        rc_cfg.convs_per_stage = 1;
        attn_rng erng;
        attn_rng_init(&erng, (uint64_t)rp->seed + 99u);
        attn_params *eps = NULL;
        attn_cnn *ecnn = NULL;
        snprintf(rp->encoder, sizeof rp->encoder, "%s/encoder.safetensors", out);
        /* under mpirun rank 0 writes it, and the others wait for its word
         * (the broadcast) before they read it */
        int bad = train_dist_rank() == 0 &&
                  (attn_params_new(&eps) != ATTN_OK || attn_cnn_new(&ecnn, eps, &rc_cfg, &erng) != ATTN_OK ||
                   attn_cnn_save(rp->encoder, ecnn, NULL, 0) != ATTN_OK);
        attn_cnn_free(ecnn);
        attn_params_free(eps);
        if (train_dist_bcast_int(&bad, 1)) bad = 1;
        if (bad) {
            rc = cli_fail(CMD, "cannot make the random encoder");
            goto done;
        }
    }
    if (encoder_load(prog, rp->encoder, resume ? (int)rp->encoder_stage : (int)enc_stage, &e)) goto done;
    rp->encoder_stage = e.stage;
    const double t_prep = now_s();
    if (make_set(prog, ctx, &e, rp->data, ATTN_SCENES_TRAIN, rp->train_scenes, (uint64_t)rp->scene_seed, cache, &g.tr) ||
        make_set(prog, ctx, &e, rp->data, ATTN_SCENES_VALID, rp->valid_scenes, (uint64_t)rp->scene_seed + VALID_SEED,
                 cache, &g.va))
        goto done;
    const double prep_s = now_s() - t_prep;
    if (!resume) {
        attn_caption_config_defaults(&cc);
        cc.mode = mode;
        cc.vocab = ATTN_CAPTION_VOCAB;
        cc.annot_dim = g.tr.D;
        cc.embed = embed;
        cc.hidden = hidden;
        cc.attn_size = attn_size;
        cc.lambda = (float)lambda;
        cc.entropy = (float)entropy;
        cc.reinforce = (float)reinforce;
        cc.mix = (float)mix;
        cc.samples = samples;
        cc.reward_to_go = (int)rtg;
    } else if (cc.annot_dim != g.tr.D) {
        fprintf(stderr, "%s: the encoder gives %lld-dimensional annotations, the model was built for %lld\n", prog,
                (long long)g.tr.D, (long long)cc.annot_dim);
        goto done;
    }
    attn_rng rng;
    attn_rng_init(&rng, (uint64_t)rp->seed);
    if (attn_params_new(&ps) != ATTN_OK || attn_caption_init(&g.m, ps, &cc, resume ? NULL : &rng) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the model");
        goto done;
    }
    if (!resume && init) {
        /* a warm start: the decoder's parameters from another run (e.g. soft attention for hard) */
        char ipath[4096];
        const size_t n = strlen(init);
        if (n >= 12 && !strcmp(init + n - 12, ".safetensors")) snprintf(ipath, sizeof ipath, "%s", init);
        else snprintf(ipath, sizeof ipath, "%s/model.safetensors", init);
        attn_caption_config ic;
        if (attn_caption_config_load(ipath, &ic) != ATTN_OK) {
            rc = cli_fail(CMD, "--init: cannot read the model's configuration");
            goto done;
        }
        if (ic.mode == ATTN_CAPTION_NONE || cc.mode == ATTN_CAPTION_NONE || ic.vocab != cc.vocab ||
            ic.annot_dim != cc.annot_dim || ic.embed != cc.embed || ic.hidden != cc.hidden ||
            ic.attn_size != g.m.cfg.attn_size) {
            fprintf(stderr, "%s: --init %s: a %s decoder (embedding %lld, LSTM %lld, score %lld, annotations %lld) "
                            "cannot start this %s one (%lld, %lld, %lld, %lld)\n",
                    prog, ipath, attn_caption_mode_name(ic.mode), (long long)ic.embed, (long long)ic.hidden,
                    (long long)ic.attn_size, (long long)ic.annot_dim, attn_caption_mode_name(cc.mode),
                    (long long)cc.embed, (long long)cc.hidden, (long long)g.m.cfg.attn_size, (long long)cc.annot_dim);
            rc = 2;
            goto done;
        }
        /* a soft model has no baseline: it stays 0 and starts at the first batch's mean reward */
        if (attn_safetensors_load_params(ipath, ps, ATTN_ST_ALLOW_UNEXPECTED | ATTN_ST_ALLOW_MISSING) != ATTN_OK) {
            rc = cli_fail(CMD, "--init: cannot load the parameters");
            goto done;
        }
        if (g.m.baseline) attn_f32(g.m.baseline)[0] = 0.f;
        printf("initialised from %s (%s attention)\n", ipath, attn_caption_mode_name(ic.mode));
    }
    if (!resume && cli_make_dir(out) != 0) {
        fprintf(stderr, "%s: cannot create the directory %s: %s\n", prog, out, strerror(errno));
        goto done;
    }
    g.mix_end = g.m.cfg.mix;
    const int64_t B = rp->batch;
    /* the rows of a step: every caption K times with hard attention's --samples K */
    g.B = B * (cc.mode == ATTN_CAPTION_HARD && cc.samples > 1 ? cc.samples : 1);
    if (o.epochs > 0) {
        const long long per_epoch = (rp->train_scenes + B - 1) / B;
        if (resume) train_resume_ll("--steps (from --epochs)", o.epochs * per_epoch, &rp->total_steps);
        else rp->total_steps = o.epochs * per_epoch;
    }
    attn_optim_config oc = {0};
    oc.kind = ATTN_OPTIM_ADAMW;
    oc.lr = (float)rp->lr;
    oc.beta1 = 0.9f;
    oc.beta2 = 0.999f;
    oc.weight_decay = (float)rp->weight_decay;
    if (attn_optim_new(&opt, ps, &oc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the optimizer");
        goto done;
    }
    int64_t step = 0;
    if (resume && attn_checkpoint_load(ckpt, ps, opt, &step) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot load the checkpoint");
        goto done;
    }
    run.prog = prog;
    run.out = out;
    run.fam = &cap_family;
    run.self = &g;
    run.ctx = ctx;
    run.ps = ps;
    run.opt = opt;
    run.step = step;
    run.total_steps = rp->total_steps;
    run.warmup = rp->warmup;
    run.log_every = o.log_every > 0 ? o.log_every : 50;
    run.eval_every = o.eval_every >= 0 ? o.eval_every : 500;
    run.lr = rp->lr;
    run.min_lr = rp->min_lr;
    run.clip = CLIP_NORM;
    run.time_budget = o.time_budget > 0 ? o.time_budget : 0.0;
    run.seconds_before = rp->train_seconds;
    run.arena_mb = (long long)(xc.arena_bytes >> 20);
    run.quiet = o.quiet;
    if (step >= rp->total_steps) {
        rc = train_loop(&run);
        goto done;
    }
    if (train_log_open(&run, resume)) goto done;
    g.tok = malloc((size_t)(g.B * (ATTN_SCENE_MAX_WORDS + 2)) * sizeof *g.tok);
    g.idx = malloc((size_t)g.B * sizeof *g.idx);
    if (!g.tok || !g.idx) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto done;
    }
    char desc[1600];
    snprintf(desc, sizeof desc,
             "Show, Attend and Tell: %s attention, LSTM %lld, embedding %lld, score %lld, lambda %g%s; "
             "annotations %lld x %lld from stage %d of %s (frozen); %lld parameters",
             attn_caption_mode_name(cc.mode), (long long)cc.hidden, (long long)cc.embed, (long long)g.m.cfg.attn_size,
             (double)cc.lambda, cc.mode == ATTN_CAPTION_HARD ? " (REINFORCE, moving-average baseline, entropy bonus)" : "",
             (long long)g.tr.L, (long long)g.tr.D, e.stage, e.path, (long long)attn_params_numel(ps));
    printf("%s\n", desc);
    printf("data: %lld train scenes, %lld valid scenes (seed %lld); encoded in %.1f s\n", rp->train_scenes,
           rp->valid_scenes, rp->scene_seed, prep_s);
    printf("schedule: %lld steps of %lld captions, Adam lr %g -> %g (warmup %lld, cosine); threads %d\n",
           rp->total_steps, (long long)B, rp->lr, rp->min_lr, rp->warmup, attn_ctx_threads(ctx));
    if (resume) printf("resuming %s at step %lld\n", out, (long long)step);
    fflush(stdout);
    {
        const attn_json_field f[] = {
            attn_json_str("event", resume ? "resume" : "start"), attn_json_int("step", step),
            attn_json_str("attention", attn_caption_mode_name(cc.mode)), attn_json_int("parameters", attn_params_numel(ps)),
            attn_json_int("total_steps", rp->total_steps), attn_json_int("batch", B),
            attn_json_int("threads", attn_ctx_threads(ctx)), attn_json_str("description", desc),
        };
        if (train_log(&run, f, (int)(sizeof f / sizeof f[0]))) goto done;
    }
    rc = train_loop(&run);
done:
    if (run.log) attn_jsonl_close(run.log);
    free(g.tok);
    free(g.idx);
    scene_set_free(&g.tr);
    scene_set_free(&g.va);
    attn_ctx_free(ctx);
    attn_optim_free(opt);
    attn_params_free(ps);
    encoder_free(&e);
    return rc;
}

/* ---- eval and describe -------------------------------------------------------------------- */

typedef struct loaded {
    run_info r;
    attn_params *ps;
    attn_caption m;
    encoder e;
    attn_ctx *ctx;
} loaded;

static void loaded_free(loaded *l) {
    attn_ctx_free(l->ctx);
    attn_params_free(l->ps);
    encoder_free(&l->e);
    memset(l, 0, sizeof *l);
}

static int load_model(const char *prog, const char *dir, const char *enc, long long threads, loaded *l) {
    memset(l, 0, sizeof *l);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (run_meta_read(path, &l->r)) return 1;
    if (attn_params_new(&l->ps) != ATTN_OK || attn_caption_load(path, l->ps, &l->m) != ATTN_OK) {
        fprintf(stderr, "%s: cannot load the model %s: %s\n", prog, path, attn_last_error());
        loaded_free(l);
        return 1;
    }
    if (encoder_load(prog, enc ? enc : l->r.encoder, (int)l->r.encoder_stage, &l->e)) {
        loaded_free(l);
        return 1;
    }
    if (l->e.cnn->cfg.widths[l->e.stage] + POS_CHANNELS != l->m.cfg.annot_dim) {
        fprintf(stderr, "%s: the encoder gives %lld-dimensional annotations, the model reads %lld\n", prog,
                (long long)(l->e.cnn->cfg.widths[l->e.stage] + POS_CHANNELS), (long long)l->m.cfg.annot_dim);
        loaded_free(l);
        return 1;
    }
    attn_ctx_config xc = {0};
    xc.arena_bytes = (size_t)256 << 20;
    xc.n_threads = (int)threads;
    if (attn_ctx_new(&l->ctx, &xc) != ATTN_OK) {
        loaded_free(l);
        return cli_fail(CMD, "cannot create the context");
    }
    return 0;
}

static void eval_usage(FILE *f) {
    fprintf(f,
        "usage: attn caption eval --model DIR [options]\n\n"
        "Captions the held-out test scenes (drawn from the Fashion-MNIST test images, with\n"
        "(class, cell) pairs never seen in training) and prints BLEU-4, exact caption match\n"
        "and attention accuracy (the share of item words whose attention peak lies in the\n"
        "item's cell, teacher-forced on the reference caption), overall and on the novel\n"
        "scenes; draws the attention of the first scenes' words (PNG).\n\n"
        "  --test-scenes N      test scenes (default 1000; seed fixed: the same for every model)\n"
        "  --split test|valid   valid: the model's own validation scenes instead (its scene seed\n"
        "                       and --valid-scenes), to choose settings without the test scenes\n"
        "  --decode expected|argmax  hard attention: the context of each step when decoding and in\n"
        "                       the teacher-forced pass, the expectation (default) or the\n"
        "                       location of alpha's maximum (docs/caption.md)\n"
        "  --pictures N         pictures of the first N test scenes (default 4; 0: none)\n"
        "  --pictures-dir DIR   where (default: the model directory)\n"
        "  --encoder PATH       another copy of the model's encoder\n"
        "  --data DIR           Fashion-MNIST (default: the model's)\n"
        "  --json FILE          also write the results as JSON\n"
        "  --cache DIR          annotation cache (as attn caption train's)\n"
        "  --threads N          threads (default: all)\n");
}

static int cmd_caption_eval(int argc, char **argv) {
    const char *prog = "attn caption eval", *sub = "eval", *model = NULL, *pdir = NULL, *enc = NULL, *data = NULL,
               *json = NULL, *cache = NULL, *split = "test";
    long long n = 1000, pics = 4, threads = 0;
    int rc = 0;
    attn_caption_decode decode = ATTN_CAPTION_DECODE_EXPECTED;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            eval_usage(stdout);
            return 0;
        }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--pictures-dir")) pdir = v;
        else if (!strcmp(a, "--encoder")) enc = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--json")) json = v;
        else if (!strcmp(a, "--cache")) cache = v;
        else if (!strcmp(a, "--split")) {
            split = v;
            if (v && strcmp(v, "test") && strcmp(v, "valid")) {
                fprintf(stderr, "%s: --split '%s': expected test or valid\n", prog, v);
                return 2;
            }
        } else if (!strcmp(a, "--decode")) {
            if (v && attn_caption_decode_parse(v, &decode)) {
                fprintf(stderr, "%s: --decode '%s': the rules are expected and argmax\n", prog, v);
                return 2;
            }
        } else if (!strcmp(a, "--test-scenes")) rc = cli_opt_int(CMD, sub, a, v, 1, 1 << 20, &n);
        else if (!strcmp(a, "--pictures")) rc = cli_opt_int(CMD, sub, a, v, 0, 1000, &pics);
        else if (!strcmp(a, "--threads")) rc = cli_opt_int(CMD, sub, a, v, 0, 1024, &threads);
        else {
            fprintf(stderr, "%s: unknown option '%s' (try '%s --help')\n", prog, a, prog);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "%s: %s needs a value\n", prog, a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!model) {
        fprintf(stderr, "%s: --model DIR is required (try '%s --help')\n", prog, prog);
        return 2;
    }
    loaded l;
    if (load_model(prog, model, enc, threads, &l)) return 1;
    scene_set ts;
    rc = 1;
    const int valid = !strcmp(split, "valid");
    if (make_set(prog, l.ctx, &l.e, data ? data : l.r.data, valid ? ATTN_SCENES_VALID : ATTN_SCENES_TEST,
                 valid ? l.r.valid_scenes : n, valid ? (uint64_t)l.r.scene_seed + VALID_SEED : TEST_SEED, cache, &ts))
        goto done_l;
    eval_out ev;
    if (evaluate(prog, l.ctx, &l.m, &ts, 0, decode, &ev)) goto done;
    char acc[32] = "-", accn[32] = "-";
    const int hard_argmax = l.m.cfg.mode == ATTN_CAPTION_HARD && decode == ATTN_CAPTION_DECODE_ARGMAX;
    if (!isnan(ev.att_acc)) snprintf(acc, sizeof acc, "%.1f%%", 100.0 * ev.att_acc);
    if (!isnan(ev.att_acc_novel)) snprintf(accn, sizeof accn, "%.1f%%", 100.0 * ev.att_acc_novel);
    printf("%s attention%s%s, %lld %s scenes: BLEU-4 %.2f, exact %.1f%%, attention accuracy %s (%lld item words), "
           "loss %.4f\n",
           attn_caption_mode_name(l.m.cfg.mode), hard_argmax ? ", decoded with " : "",
           hard_argmax ? attn_caption_decode_name(decode) : "", (long long)ev.n, split, ev.bleu,
           100.0 * ev.exact, acc, (long long)ev.att_words, ev.loss);
    if (ev.n_novel)
        printf("novel scenes (a held-out class/cell pair), %lld: BLEU-4 %.2f, exact %.1f%%, attention accuracy %s\n",
               (long long)ev.n_novel, ev.bleu_novel, 100.0 * ev.exact_novel, accn);
    else
        printf("novel scenes (a held-out class/cell pair): none among these scenes\n");
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            fprintf(stderr, "%s: cannot write %s: %s\n", prog, json, strerror(errno));
            goto done;
        }
        fprintf(f, "{\"model\": \"%s\", \"attention\": \"%s\", \"split\": \"%s\", \"decode\": \"%s\", "
                   "\"scenes\": %lld, \"bleu4\": %.4f, \"exact\": %.6f, "
                   "\"attention_accuracy\": %.6f, \"loss\": %.6f, \"novel_scenes\": %lld, \"novel_bleu4\": %.4f, "
                   "\"novel_exact\": %.6f, \"novel_attention_accuracy\": %.6f}\n",
                model, attn_caption_mode_name(l.m.cfg.mode), split, attn_caption_decode_name(decode), (long long)ev.n,
                ev.bleu, ev.exact,
                isnan(ev.att_acc) ? -1.0 : ev.att_acc, ev.loss, (long long)ev.n_novel,
                isnan(ev.bleu_novel) ? -1.0 : ev.bleu_novel, isnan(ev.exact_novel) ? -1.0 : ev.exact_novel,
                isnan(ev.att_acc_novel) ? -1.0 : ev.att_acc_novel);
        fclose(f);
    }
    if (pics > ts.s.n) pics = ts.s.n;
    if (pics > 0) {
        int32_t ids[MAX_LEN];
        float *al = malloc((size_t)(MAX_LEN * ts.L) * sizeof *al);
        if (!al) goto done;
        for (long long p = 0; p < pics; p++) {
            const int64_t one = p;
            attn_ctx_reset(l.ctx);
            attn_tensor *a = batch_annot(l.ctx, &ts, &one, 1);
            if (!a || attn_caption_greedy_decode(l.ctx, &l.m, a, MAX_LEN, decode, ids, al, NULL) != ATTN_OK) {
                free(al);
                rc = cli_fail(CMD, "decoding failed");
                goto done;
            }
            int32_t w[ATTN_SCENE_MAX_WORDS];
            char ref[512], path[4096];
            attn_caption_text(w, attn_scene_caption(&ts.s.scenes[p], w, NULL), ref, sizeof ref);
            snprintf(path, sizeof path, "%s/attention-%s%lld.png", pdir ? pdir : model, split, p);
            if (write_picture(prog, path, ts.s.pixels + p * ATTN_SCENE_SIDE * ATTN_SCENE_SIDE, ids, al, ts.L, ref)) {
                free(al);
                goto done;
            }
        }
        free(al);
    }
    rc = 0;
done:
    scene_set_free(&ts);
done_l:
    loaded_free(&l);
    return rc;
}

static void describe_usage(FILE *f) {
    fprintf(f,
        "usage: attn caption describe --model DIR IMAGE.png [--picture OUT.png] [--html FILE]\n\n"
        "Captions your own 56x56 grey PNG (a 2x2 grid of 28x28 cells, light items on black,\n"
        "as Fashion-MNIST) and, with --picture, draws each word's attention over it.\n\n"
        "  --picture OUT.png    the attention picture\n"
        "  --html FILE          each word's attention over the image regions (row,col of\n"
        "                       the encoder's grid) as an attention explorer page\n"
        "  --weights FILE       with --html: the weights at full precision as text\n"
        "  --encoder PATH       another copy of the model's encoder\n"
        "  --threads N          threads (default: all)\n");
}

/* --html: the words down, the encoder's L = side x side regions across
 * (labelled "row,col"), one alignment map; the step view shows each word's
 * weights over the regions. */
static int describe_page(const char *html, const char *weights, const char *image, const char *text,
                         const int32_t *ids, const float *al, int64_t L) {
    const int side = (int)lround(sqrt((double)L));
    int nw = 0; /* the words and the end, as write_picture */
    while (nw < MAX_LEN && ids[nw] != ATTN_CAPTION_PAD_ID) {
        nw++;
        if (ids[nw - 1] == ATTN_CAPTION_EOS_ID) break;
    }
    if (nw < 1) {
        fprintf(stderr, "attn caption describe: no word was generated: no page\n");
        return 1;
    }
    const char *rl[MAX_LEN];
    char(*names)[24] = calloc((size_t)L, sizeof *names);
    const char **cl = calloc((size_t)L, sizeof *cl);
    if (!names || !cl) {
        free(names);
        free(cl);
        fprintf(stderr, "attn caption describe: out of memory\n");
        return 1;
    }
    for (int t = 0; t < nw; t++) rl[t] = attn_caption_word(ids[t]);
    for (int64_t k = 0; k < L; k++) {
        if (side * side == L) snprintf(names[k], sizeof names[k], "%d,%d", (int)(k / side), (int)(k % side));
        else snprintf(names[k], sizeof names[k], "%lld", (long long)k);
        cl[k] = names[k];
    }
    char title[700], subt[256];
    snprintf(title, sizeof title, "Show, Attend and Tell: \"%s\"", text);
    snprintf(subt, sizeof subt, "%s: %d words over %lld image regions (row,col of the encoder's %dx%d grid)", image,
             nw, (long long)L, side, side);
    cli_page page = {0};
    int rc = cli_page_add_floats(&page, "caption", "word attention", ATTN_EXPLORER_ALIGNMENT, al, 1, 1, nw, L, rl,
                                 cl, "word", "region", -1);
    if (!rc && side * side == L) page.maps[0].col_grid = side;
    if (!rc) rc = cli_page_write(&page, "caption", html, weights, title, subt, 1);
    else cli_page_free(&page);
    free(names);
    free(cl);
    return rc;
}

static int cmd_caption_describe(int argc, char **argv) {
    const char *prog = "attn caption describe", *model = NULL, *image = NULL, *pic = NULL, *enc = NULL;
    const char *html = NULL, *weights = NULL;
    long long threads = 0;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            describe_usage(stdout);
            return 0;
        }
        if (a[0] != '-' || !a[1]) {
            if (image) {
                fprintf(stderr, "%s: one image at a time ('%s' and '%s')\n", prog, image, a);
                return 2;
            }
            image = a;
            continue;
        }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--picture")) pic = v;
        else if (!strcmp(a, "--html")) html = v;
        else if (!strcmp(a, "--weights")) weights = v;
        else if (!strcmp(a, "--encoder")) enc = v;
        else if (!strcmp(a, "--threads")) rc = cli_opt_int(CMD, "describe", a, v, 0, 1024, &threads);
        else {
            fprintf(stderr, "%s: unknown option '%s' (try '%s --help')\n", prog, a, prog);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "%s: %s needs a value\n", prog, a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!model || !image) {
        fprintf(stderr, "%s: --model DIR and an IMAGE.png are required (try '%s --help')\n", prog, prog);
        return 2;
    }
    if (weights && !html) {
        fprintf(stderr, "%s: --weights goes with --html FILE\n", prog);
        return 2;
    }
    uint8_t *px = NULL;
    int w = 0, h = 0, ch = 0;
    if (attn_png_read(image, &px, &w, &h, &ch) != ATTN_OK) {
        fprintf(stderr, "%s: cannot read %s: %s\n", prog, image, attn_last_error());
        return 1;
    }
    if (w != ATTN_SCENE_SIDE || h != ATTN_SCENE_SIDE) {
        fprintf(stderr, "%s: %s is %dx%d pixels; the model reads 56x56 scenes (a 2x2 grid of 28x28 cells)\n", prog,
                image, w, h);
        free(px);
        return 1;
    }
    uint8_t grey[ATTN_SCENE_SIDE * ATTN_SCENE_SIDE];
    for (int i = 0; i < w * h; i++) { /* RGB is averaged to grey */
        int s = 0;
        for (int c = 0; c < ch; c++) s += px[i * ch + c];
        grey[i] = (uint8_t)(s / ch);
    }
    free(px);
    loaded l;
    if (load_model(prog, model, enc, threads, &l)) return 1;
    rc = 1;
    float *annot = NULL, *al = NULL;
    int64_t L = 0, D = 0;
    if (annotate(prog, l.ctx, &l.e, grey, 1, &annot, &L, &D)) goto done;
    scene_set one;
    memset(&one, 0, sizeof one);
    one.annot = annot;
    one.L = L;
    one.D = D;
    const int64_t i0 = 0;
    int32_t ids[MAX_LEN];
    al = malloc((size_t)(MAX_LEN * L) * sizeof *al);
    attn_ctx_reset(l.ctx);
    attn_tensor *a = al ? batch_annot(l.ctx, &one, &i0, 1) : NULL;
    if (!a || attn_caption_greedy(l.ctx, &l.m, a, MAX_LEN, ids, al, NULL) != ATTN_OK) {
        rc = cli_fail(CMD, "decoding failed");
        goto done;
    }
    char text[512];
    attn_caption_text(ids, MAX_LEN, text, sizeof text);
    printf("%s\n", text);
    if (pic && write_picture(prog, pic, grey, ids, al, L, NULL)) goto done;
    if (html && describe_page(html, weights, image, text, ids, al, L)) goto done;
    rc = 0;
done:
    free(annot);
    free(al);
    loaded_free(&l);
    return rc;
}

int cmd_caption(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: attn caption train|eval|describe [options]   (attn caption train --help, ...)\n\n"
                   "  train     train a Show, Attend and Tell decoder (soft, hard or no attention)\n"
                   "            on Fashion-MNIST scenes, over a frozen CNN's annotation vectors\n"
                   "  eval      BLEU-4, exact match and attention accuracy on held-out test scenes; pictures\n"
                   "  describe  caption your own 56x56 grey PNG\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_caption_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval")) return cmd_caption_eval(argc - 1, argv + 1);
    if (!strcmp(argv[1], "describe")) return cmd_caption_describe(argc - 1, argv + 1);
    fprintf(stderr, "attn caption: unknown subcommand '%s' (train, eval or describe)\n", argv[1]);
    return 2;
}
