/* caption_scenes.c: the data side of `attn caption` (cli/cmd_caption.c):
 * the frozen CNN encoder and the annotation vectors of its feature map,
 * the scene sets (made from Fashion-MNIST, annotated once and cached on
 * disk), the batches of a step, and the held-out metrics (BLEU-4, exact
 * match, attention accuracy, loss; on all and on the novel scenes). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attn/attn.h"
#include "attn/cnn.h"
#include "caption_cmd.h"
#include "commands.h"

#define CMD "caption"

/* ---- the encoder and the annotations ------------------------------------------------ */

void cap_encoder_free(cap_encoder *e) {
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
int cap_encoder_load(const char *prog, const char *path, int stage, cap_encoder *e) {
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
        cap_encoder_free(e);
        return 1;
    }
    for (int i = 0; i < attn_params_count(e->ps); i++) attn_params_at(e->ps, i)->requires_grad = 0;
    const attn_cnn_config *c = &e->cnn->cfg;
    if (c->in_channels != 1) {
        fprintf(stderr, "%s: the encoder %s takes %lld input channels; scenes are grey (1)\n", prog, e->path,
                (long long)c->in_channels);
        cap_encoder_free(e);
        return 1;
    }
    if (stage < 0)
        for (int s = 0; s < c->n_stages && stage < 0; s++)
            if (stage_side(c, s) == 14) stage = s;
    if (stage < 0 || stage >= c->n_stages || stage_side(c, stage) < 2 || stage_side(c, stage) % 2) {
        fprintf(stderr, "%s: the encoder %s has no stage with an even map of at least 2x2 for 56x56 canvases "
                        "(stage %d; give --encoder-stage)\n", prog, e->path, stage);
        cap_encoder_free(e);
        return 1;
    }
    e->stage = stage;
    return 0;
}

/* The coordinates run over (-POS_SCALE, POS_SCALE): the score must turn them
 * into a step at the cells' boundary (x = 0), which takes a large weight
 * from an initial 1/sqrt(D); the scale lets Adam's bounded steps get there
 * about POS_SCALE times sooner. */
#define POS_SCALE 4.f

/* Annotations of scenes: out [n, L, D] floats (malloc'ed), D = C + 2. */
int cap_annotate(const char *prog, attn_ctx *ctx, const cap_encoder *e, const uint8_t *pixels, int64_t n,
                 float **out, int64_t *L_out, int64_t *D_out) {
    const int side = stage_side(&e->cnn->cfg, e->stage);
    const int64_t L = (int64_t)side * side, C = e->cnn->cfg.widths[e->stage], D = C + CAP_POS_CHANNELS,
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

void cap_scenes_free(cap_scenes *s) {
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

static void cache_name(char *buf, size_t cap, const char *dir, const cap_encoder *e, const char *data,
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

static int cache_read(const char *path, int64_t n, cap_scenes *out) {
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

static void cache_write(const char *prog, const char *path, const cap_scenes *s) {
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
int cap_make_scenes(const char *prog, attn_ctx *ctx, const cap_encoder *e, const char *data, attn_scene_split split,
                    int64_t n, uint64_t seed, const char *cache_dir, cap_scenes *out) {
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
    if (cap_annotate(prog, ctx, e, out->s.pixels, n, &out->annot, &out->L, &out->D)) {
        cap_scenes_free(out);
        return 1;
    }
    if (cache_dir) {
        if (cli_make_dir(cache_dir) == 0) cache_write(prog, cpath, out);
        else fprintf(stderr, "%s: warning: cannot create the cache directory %s\n", prog, cache_dir);
    }
    return 0;
}

/* Tokens of scenes idx[0..B): [B, T + 1] (BOS words EOS PAD..); returns T + 1. */
int64_t cap_batch_tokens(const cap_scenes *s, const int64_t *idx, int64_t B, int32_t *tok) {
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

attn_tensor *cap_batch_annot(attn_ctx *ctx, const cap_scenes *s, const int64_t *idx, int64_t B) {
    attn_tensor *a = attn_tensor_new(ctx, ATTN_F32, 3, (int64_t[]){B, s->L, s->D});
    if (!a) return NULL;
    const size_t one = (size_t)(s->L * s->D);
    for (int64_t b = 0; b < B; b++) memcpy(attn_f32(a) + b * (int64_t)one, s->annot + idx[b] * (int64_t)one, one * sizeof(float));
    return a;
}

/* ---- evaluation ------------------------------------------------------------------------- */

/* The cell of location l on a side x side grid. */
static int loc_cell(int64_t l, int side) {
    const int r = (int)(l / side), c = (int)(l % side);
    return (r * 2 / side) * 2 + c * 2 / side;
}

/* BLEU-4 and exact match of greedy captions; attention accuracy and loss
 * teacher-forced on the reference captions; the same on the novel scenes.
 * max_n > 0 evaluates the first max_n scenes only. */
int cap_eval_scenes(const char *prog, attn_ctx *ctx, attn_caption *m, const cap_scenes *s, int64_t max_n,
                    attn_caption_decode decode, cap_eval_out *o) {
    memset(o, 0, sizeof *o);
    const double t0 = attn_monotonic_s();
    const int64_t n = max_n > 0 && max_n < s->s.n ? max_n : s->s.n, B = 50, L = s->L;
    const int side = (int)lround(sqrt((double)L));
    const int grad = attn_ctx_grad_enabled(ctx);
    attn_eval all, nov;
    attn_eval_init(&all);
    attn_eval_init(&nov);
    int64_t idx[50], hits = 0, hits_novel = 0;
    int32_t ids[50 * CAP_MAX_LEN], tok[50 * (ATTN_SCENE_MAX_WORDS + 2)];
    double nats = 0.0;
    int64_t ntok = 0;
    int rc = 0;
    for (int64_t s0 = 0; s0 < n && !rc; s0 += B) {
        const int64_t b = n - s0 < B ? n - s0 : B;
        for (int64_t i = 0; i < b; i++) idx[i] = s0 + i;
        attn_ctx_reset(ctx);
        attn_ctx_set_grad_enabled(ctx, 0);
        attn_tensor *a = cap_batch_annot(ctx, s, idx, b);
        if (!a || attn_caption_greedy_decode(ctx, m, a, CAP_MAX_LEN, decode, ids, NULL, NULL) != ATTN_OK) {
            rc = 1;
            break;
        }
        for (int64_t i = 0; i < b; i++) {
            char hyp[512], ref[512];
            int32_t w[ATTN_SCENE_MAX_WORDS];
            const int nw = attn_scene_caption(&s->s.scenes[s0 + i], w, NULL);
            attn_caption_text(ids + i * CAP_MAX_LEN, CAP_MAX_LEN, hyp, sizeof hyp);
            attn_caption_text(w, nw, ref, sizeof ref);
            if (attn_eval_add(&all, hyp, ref) != ATTN_OK) rc = 1;
            if (attn_scene_is_novel(&s->s.scenes[s0 + i]) && attn_eval_add(&nov, hyp, ref) != ATTN_OK) rc = 1;
        }
        /* teacher-forced: loss, and the attention of every reference class word */
        attn_ctx_reset(ctx);
        a = cap_batch_annot(ctx, s, idx, b);
        const int64_t T1 = cap_batch_tokens(s, idx, b, tok);
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
    o->seconds = attn_monotonic_s() - t0;
    return 0;
}

