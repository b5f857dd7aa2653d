/* cmd_vision.c: `attn vision train|eval|maps`: the CNN image classifier
 * (include/attn/cnn.h) on Fashion-MNIST (data/fashion-mnist, IDX files),
 * with an optional self-attention block. docs/cnn.md is the manual.
 *
 *   attn vision train --out DIR [--attention none|sagan|sagan-code|simple] [options]
 *   attn vision eval  --model DIR [--split test|valid|train]
 *   attn vision maps  --model DIR --out DIR [--images N]
 *
 * Splits: the first 55,000 training images train, the last 5,000 are the
 * validation set (for choices: the periodic evaluations), and the 10,000
 * test images are read once, by the final evaluation.
 *
 * A model directory holds model.safetensors (an attn checkpoint: the
 * parameters and running statistics, AdamW's state, and in its metadata the
 * model configuration (cnn.*) and the run's settings (run.*)), train.jsonl
 * (the log, with the attention block's gamma as "gamma" records) and
 * loss.svg. attn_cnn_load reads model.safetensors directly.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "commands.h"
#include "train_driver.h"
#include "vision_cmd.h"

#define CMD "vision"
#define CLIP_NORM 5.0f

static int opt_int(const char *sub, const char *a, const char *v, long long lo, long long hi,
                   long long *out) {
    return cli_opt_int(CMD, sub, a, v, lo, hi, out);
}

static int opt_real(const char *sub, const char *a, const char *v, double lo, double hi, double *out) {
    return cli_opt_real(CMD, sub, a, v, lo, hi, out);
}

static void dir_file(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
}

/* ---- data ------------------------------------------------------------------------------- */

void vision_fmnist_free(fmnist *d) {
    attn_idx_free(&d->train_x);
    attn_idx_free(&d->train_y);
    attn_idx_free(&d->test_x);
    attn_idx_free(&d->test_y);
}

/* Loads the four IDX files of dir; 0 or 1 (message printed). */
int vision_fmnist_load(const char *dir, fmnist *d) {
    memset(d, 0, sizeof *d);
    if (cli_fmnist_load(CMD, dir, &d->train_x, &d->train_y, &d->test_x, &d->test_y)) return 1;
    attn_idx *dst[4] = {&d->train_x, &d->train_y, &d->test_x, &d->test_y};
    for (int i = 0; i < 4; i += 2) {
        const attn_idx *x = dst[i], *y = dst[i + 1];
        if (x->ndim != 3 || y->ndim != 1 || x->dims[0] != y->dims[0] || x->dims[1] != 28 ||
            x->dims[2] != 28) {
            fprintf(stderr, "attn vision: %s: expected [N, 28, 28] images and [N] labels\n", dir);
            vision_fmnist_free(d);
            return 1;
        }
        for (int64_t j = 0; j < y->numel; j++)
            if (y->data[j] > 9) {
                fprintf(stderr, "attn vision: %s: label %d of item %lld is not a class 0..9\n", dir,
                        y->data[j], (long long)j);
                vision_fmnist_free(d);
                return 1;
            }
    }
    if (d->train_x.dims[0] <= N_VALID) {
        fprintf(stderr, "attn vision: %s: %lld training images, more than %d needed (the last %d "
                        "are the validation set)\n",
                dir, (long long)d->train_x.dims[0], N_VALID, N_VALID);
        vision_fmnist_free(d);
        return 1;
    }
    d->n_train = d->train_x.dims[0] - N_VALID;
    return 0;
}

/* Image i of x (28x28 bytes) into out[784] in [0, 1]; with aug, shifted by
 * (dy, dx) in [-2, 2] (zero fill) and mirrored left-right when flip. */
void vision_load_image(const attn_idx *x, int64_t i, float *out, int dy, int dx, int flip) {
    const uint8_t *p = x->data + i * 784;
    for (int r = 0; r < 28; r++)
        for (int c = 0; c < 28; c++) {
            const int sr = r + dy, sc0 = c + dx, sc = flip ? 27 - sc0 : sc0;
            out[r * 28 + c] = (sr >= 0 && sr < 28 && sc >= 0 && sc < 28) ? (float)p[sr * 28 + sc] / 255.0f : 0.0f;
        }
}

/* 0 when the model reads Fashion-MNIST (1 channel, 10 classes), else 1
 * (message printed). */
static int fmnist_model_check(const char *path, const attn_cnn *m) {
    if (m->cfg.in_channels == 1 && m->cfg.n_classes == 10) return 0;
    fprintf(stderr, "attn vision: the model in %s reads %lld channels into %lld classes; Fashion-MNIST "
                    "needs 1 channel and 10 classes\n",
            path, (long long)m->cfg.in_channels, (long long)m->cfg.n_classes);
    return 1;
}

/* ---- the run: settings kept in the checkpoint's metadata ---------------------------- */

typedef struct run_info {
    char data[1024];
    long long batch, total_steps, warmup, seed, step, augment;
    double lr, min_lr, weight_decay, label_smoothing, train_seconds;
} run_info;

#define RUN_META 12
typedef struct run_meta {
    attn_kv kv[ATTN_CNN_META + RUN_META];
    char cbuf[ATTN_CNN_META * 32];
    char vbuf[RUN_META][1100];
    int n;
} run_meta;

static const char *run_keys[RUN_META] = {
    "run.model", "run.data",   "run.batch",        "run.steps",           "run.warmup",
    "run.seed",  "run.augment", "run.lr",          "run.min_lr",          "run.weight_decay",
    "run.label_smoothing", "run.train_seconds"};

static void run_meta_build(run_meta *m, const attn_cnn *c, const run_info *r) {
    attn_cnn_config_meta(&c->cfg, m->kv, m->cbuf);
    m->n = ATTN_CNN_META;
    snprintf(m->vbuf[0], 1100, "attn-vision");
    snprintf(m->vbuf[1], 1100, "%s", r->data);
    snprintf(m->vbuf[2], 1100, "%lld", r->batch);
    snprintf(m->vbuf[3], 1100, "%lld", r->total_steps);
    snprintf(m->vbuf[4], 1100, "%lld", r->warmup);
    snprintf(m->vbuf[5], 1100, "%lld", r->seed);
    snprintf(m->vbuf[6], 1100, "%lld", r->augment);
    snprintf(m->vbuf[7], 1100, "%.9g", r->lr);
    snprintf(m->vbuf[8], 1100, "%.9g", r->min_lr);
    snprintf(m->vbuf[9], 1100, "%.9g", r->weight_decay);
    snprintf(m->vbuf[10], 1100, "%.9g", r->label_smoothing);
    snprintf(m->vbuf[11], 1100, "%.3f", r->train_seconds);
    for (int i = 0; i < RUN_META; i++) {
        m->kv[m->n].key = run_keys[i];
        m->kv[m->n].value = m->vbuf[i];
        m->n++;
    }
}

/* Reads run.* from a checkpoint, every number range-checked; 0 on success. */
static int run_meta_read(const char *path, run_info *r) {
    attn_safetensors *f = NULL;
    if (attn_safetensors_open(&f, path) != ATTN_OK) return cli_fail(CMD, "cannot open the checkpoint");
    if (cli_check_family("attn vision", f, path, "run.model", "attn-vision", "attn vision train")) {
        attn_safetensors_close(f);
        return 1;
    }
    const char *missing = NULL;
    for (int i = 1; i < RUN_META && !missing; i++)
        if (!attn_safetensors_metadata(f, run_keys[i])) missing = run_keys[i];
    if (!missing && !attn_safetensors_metadata(f, "step")) missing = "step";
    if (missing) {
        attn_safetensors_close(f);
        fprintf(stderr, "attn vision: %s: a checkpoint of attn vision train without its metadata '%s'\n",
                path, missing);
        return 1;
    }
    meta_reader m = {f, path, {0}};
    snprintf(r->data, sizeof r->data, "%s", attn_safetensors_metadata(f, "run.data"));
    r->batch = meta_ll(&m, "run.batch", 2, 4096);
    r->total_steps = meta_ll(&m, "run.steps", 1, 1ll << 40);
    r->warmup = meta_ll(&m, "run.warmup", 0, 1ll << 40);
    r->seed = meta_ll(&m, "run.seed", 0, 1ll << 62);
    r->augment = meta_ll(&m, "run.augment", 0, 2);
    r->lr = meta_real(&m, "run.lr", 0.0, 10.0);
    r->min_lr = meta_real(&m, "run.min_lr", 0.0, 10.0);
    r->weight_decay = meta_real(&m, "run.weight_decay", 0.0, 10.0);
    r->label_smoothing = meta_real(&m, "run.label_smoothing", 0.0, 0.99);
    r->train_seconds = meta_real(&m, "run.train_seconds", 0.0, 1e12);
    r->step = meta_ll(&m, "step", 0, 1ll << 40);
    attn_safetensors_close(f);
    if (m.err[0]) {
        fprintf(stderr, "attn vision: %s\n", m.err);
        return 1;
    }
    return 0;
}

/* ---- evaluation ------------------------------------------------------------------------- */

typedef struct eval_result {
    double loss, accuracy, seconds;
    int64_t n;
} eval_result;

/* 1 for the blocks of vision_attention.h (they have a gamma to report), 0
 * without attention and for the modules of vision_modules.h. */
int vision_has_gamma(const attn_cnn *m) {
    return m->cfg.attention != ATTN_CNN_ATT_NONE && m->cfg.attention < ATTN_CNN_ATT_CHANNEL;
}

/* Loss and accuracy on images [first, first + n) of (x, y), B per forward,
 * evaluation mode (running statistics), gradients off. 0 or 1 (printed). */
/* Accuracy and mean cross-entropy of images first .. first + n - 1 of x, y in
 * batches of B, in evaluation mode. With flip_tta, each image's class
 * probabilities are the mean of the softmax of the image and of its left-right
 * mirror (test-time augmentation), and the loss is -log of that mean. */
static int evaluate(attn_ctx *ctx, const attn_cnn *m, const attn_idx *x, const attn_idx *y,
                    int64_t first, int64_t n, int64_t B, int flip_tta, eval_result *out) {
    float *img = malloc((size_t)B * 784 * sizeof *img);
    int32_t *lab = malloc((size_t)B * sizeof *lab);
    if (!img || !lab) {
        free(img);
        free(lab);
        fprintf(stderr, "attn vision: out of memory\n");
        return 1;
    }
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    const double t0 = attn_monotonic_s();
    double nats = 0.0;
    int64_t correct = 0;
    int rc = 0;
    float *kept = NULL; /* flip_tta: the unflipped batch's logits */
    for (int64_t s = 0; s < n; s += B) {
        const int64_t b = B < n - s ? B : n - s;
        for (int64_t i = 0; i < b; i++) {
            vision_load_image(x, first + s + i, img + i * 784, 0, 0, 0);
            lab[i] = y->data[first + s + i];
        }
        attn_ctx_reset(ctx);
        attn_tensor *tx = attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){b, 1, 28, 28}, img);
        attn_tensor *ty = attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){b}, lab);
        attn_tensor *logits = NULL, *flipped = NULL;
        attn_tensor *loss = attn_cnn_loss(ctx, m, tx, ty, 0.0f, &logits);
        const int64_t K = loss ? logits->shape[1] : 0;
        const float *orig = loss ? attn_f32(logits) : NULL;
        if (loss && !flip_tta) nats += (double)attn_f32(loss)[0] * (double)b;
        if (loss && flip_tta) { /* keep the logits, free the arena, then the mirrored batch */
            if (!kept) kept = malloc((size_t)(B * K) * sizeof *kept);
            if (!kept) {
                fprintf(stderr, "attn vision: out of memory\n");
                rc = 1;
                break;
            }
            memcpy(kept, orig, (size_t)(b * K) * sizeof *kept);
            orig = kept;
            attn_ctx_reset(ctx);
            for (int64_t i = 0; i < b; i++) vision_load_image(x, first + s + i, img + i * 784, 0, 0, 1);
            attn_tensor *fx = attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){b, 1, 28, 28}, img);
            flipped = attn_cnn_forward(ctx, m, fx, NULL, NULL);
            if (!flipped) loss = NULL;
        }
        if (!loss) {
            fprintf(stderr, "attn vision: evaluation: %s\n", attn_ctx_error(ctx));
            rc = 1;
            break;
        }
        for (int64_t i = 0; i < b; i++) {
            const float *row = orig + i * K;
            int64_t best = 0;
            if (flip_tta) { /* mean of the two softmaxes, in double */
                const float *row2 = attn_f32(flipped) + i * K;
                double mx1 = row[0], mx2 = row2[0], z1 = 0.0, z2 = 0.0, pbest = -1.0;
                for (int64_t k = 1; k < K; k++) {
                    mx1 = row[k] > mx1 ? row[k] : mx1;
                    mx2 = row2[k] > mx2 ? row2[k] : mx2;
                }
                for (int64_t k = 0; k < K; k++) {
                    z1 += exp((double)row[k] - mx1);
                    z2 += exp((double)row2[k] - mx2);
                }
                for (int64_t k = 0; k < K; k++) {
                    const double pk = 0.5 * (exp((double)row[k] - mx1) / z1 + exp((double)row2[k] - mx2) / z2);
                    if (pk > pbest) {
                        pbest = pk;
                        best = k;
                    }
                    if (k == lab[i]) nats -= log(pk > 1e-300 ? pk : 1e-300);
                }
            } else {
                for (int64_t k = 1; k < K; k++)
                    if (row[k] > row[best]) best = k;
            }
            correct += best == lab[i];
        }
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    free(img);
    free(lab);
    free(kept);
    out->n = n;
    out->loss = n ? nats / (double)n : NAN;
    out->accuracy = n ? (double)correct / (double)n : NAN;
    out->seconds = attn_monotonic_s() - t0;
    return rc;
}

/* ---- train: the vision family of the training driver ------------------------------------ */

/* --widths A,B,..: 1 to ATTN_CNN_MAX_STAGES widths in [1, 4096]; 0 or 2 (printed). */
static int parse_widths(const char *v, long long *w, int *n) {
    *n = 0;
    const char *p = v;
    while (p && *p) {
        char *end = NULL;
        errno = 0;
        const long long x = strtoll(p, &end, 10);
        if (end == p || errno || x < 1 || x > 4096 || *n == ATTN_CNN_MAX_STAGES || (*end && *end != ',')) {
            fprintf(stderr, "attn vision train: --widths '%s': expected 1 to %d channel counts in [1, 4096] "
                            "separated by commas (e.g. 32,96,192)\n", v, ATTN_CNN_MAX_STAGES);
            return 2;
        }
        w[(*n)++] = x;
        p = *end ? end + 1 : end;
        if (*end && !*p) p = NULL, *n = 0; /* a trailing comma */
    }
    if (!*n) {
        fprintf(stderr, "attn vision train: --widths '%s': expected channel counts separated by commas\n",
                v ? v : "");
        return 2;
    }
    return 0;
}

static void train_usage(FILE *f) {
    fprintf(f,
        "usage: attn vision train --out DIR [options]\n\n"
        "Trains the CNN classifier (docs/cnn.md) on Fashion-MNIST: the first 55,000 training\n"
        "images train, the last 5,000 validate, and the final evaluation reports the test\n"
        "accuracy on the 10,000 test images.\n\n"
        "data (fixed by the checkpoint: refused with --resume)\n"
        "  --data DIR             the IDX files (default data/fashion-mnist)\n"
        "  --init MODEL           start from a trained model (its directory or .safetensors file):\n"
        "                         its architecture, parameters and BatchNorm statistics, with a\n"
        "                         new schedule and optimizer state (a warm restart); the model\n"
        "                         options below are then refused\n"
        "model (fixed by the checkpoint: refused with --resume)\n"
        "  --attention KIND       none|sagan|sagan-code|simple, or a module of docs/vision_modules.md:\n"
        "                         channel|spatial|cbam|soft|gc|sag|psa|aaconv (default none)\n"
        "  --attention-stage S    the stage the block follows (default 0: 14x14 maps)\n"
        "  --sym 0|1              Simple SA: symmetric W (default 0)\n"
        "  --stages N             stages (default 3; every stage but the last halves the map)\n"
        "  --width C              channels of stage 0, doubled at each stage (default 32)\n"
        "  --widths A,B,..        every stage's channels instead (e.g. 32,96,192; sets --stages)\n"
        "  --convs N              conv-BN-ReLU layers per stage (default 1)\n"
        "  --dropout P            dropout before the head (default 0)\n"
        "schedule and loss (with --resume: applied and printed)\n"
        "  --augment 0|1|2        1: random shifts by up to 2 pixels and left-right flips;\n"
        "                         2: left-right flips only (default 0: none)\n"
        "  --label-smoothing E    (default 0)\n"
        "  --batch N              images per step (default 64)\n"
        "  --steps N              optimizer steps (default 3000; with --resume: the new total)\n"
        "  --epochs E             instead of --steps: E passes over the 55,000 training images\n"
        "  --time-budget S        stop after S seconds of training (final evaluation and checkpoint)\n"
        "  --lr X                 peak learning rate of AdamW (default 2e-3)\n"
        "  --min-lr X             final learning rate of the cosine (default lr / 100)\n"
        "  --warmup N             linear warmup steps (default 100)\n"
        "  --weight-decay X       AdamW's decoupled weight decay (default 0.01)\n"
        "  --seed N               initialisation, batches, augmentation (default 1; fixed by the checkpoint)\n"
        "run\n"
        "  --eval-every N         validation accuracy every N steps and a checkpoint (default 500; 0: end only)\n"
        "  --eval-n N             validation images of the periodic evaluations (default 1000;\n"
        "                         the final one uses all 5,000 and the test set)\n"
        "  --log-every N          a JSONL line (loss, accuracy, gamma) every N steps (default 50)\n"
        "  --threads N            threads for the ops (default: all)\n"
        "  --arena-mb N           context arena in MiB (default 1024)\n"
        "  --resume               continue DIR's run: same model, optimizer state and batches\n"
        "  --force                overwrite the run DIR holds (refused without it)\n"
        "  --quiet                no progress line\n\n"
        "Ctrl-C (SIGINT) or SIGTERM finishes the step, writes a checkpoint and exits 130.\n");
}

typedef struct vision_train {
    run_info r;
    attn_cnn *m;
    fmnist d;
    float *img;
    int32_t *lab;
    int64_t *perm;      /* the training order of epoch perm_epoch */
    int64_t perm_epoch;
    int64_t B;
    long long eval_n;
    run_meta meta;
} vision_train;

/* The permutation of the training images for epoch e: a Fisher-Yates
 * shuffle seeded by (seed, e), so that a resumed run replays its batches. */
static void make_perm(vision_train *g, int64_t e) {
    attn_rng rng;
    attn_rng_init(&rng, (uint64_t)g->r.seed * 1000003u + (uint64_t)e + 1);
    const int64_t n = g->d.n_train;
    for (int64_t i = 0; i < n; i++) g->perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        const int64_t j = attn_rng_next_below(&rng, (uint32_t)(i + 1));
        const int64_t t = g->perm[i];
        g->perm[i] = g->perm[j];
        g->perm[j] = t;
    }
    g->perm_epoch = e;
}

static attn_tensor *vision_step_loss(void *self, train_run *run, int64_t step, train_counts *c) {
    vision_train *g = self;
    const int64_t B = g->B, n = g->d.n_train;
    attn_ctx_set_rng(run->ctx, (uint64_t)g->r.seed, (uint64_t)step << 24);
    attn_rng aug;
    attn_rng_init(&aug, ((uint64_t)g->r.seed << 32) ^ (uint64_t)step ^ 0x5bd1e995u);
    for (int64_t b = 0; b < B; b++) {
        const int64_t k = step * B + b, e = k / n;
        if (e != g->perm_epoch) make_perm(g, e);
        const int64_t i = g->perm[k % n];
        int dy = 0, dx = 0, flip = 0;
        if (g->r.augment == 1) {
            dy = (int)attn_rng_next_below(&aug, 5) - 2;
            dx = (int)attn_rng_next_below(&aug, 5) - 2;
        }
        if (g->r.augment) flip = (int)attn_rng_next_below(&aug, 2);
        vision_load_image(&g->d.train_x, i, g->img + b * 784, dy, dx, flip);
        g->lab[b] = g->d.train_y.data[i];
    }
    attn_tensor *tx = attn_tensor_from(run->ctx, ATTN_F32, 4, (int64_t[]){B, 1, 28, 28}, g->img);
    attn_tensor *ty = attn_tensor_from(run->ctx, ATTN_I32, 1, (int64_t[]){B}, g->lab);
    attn_tensor *logits = NULL;
    attn_tensor *loss = attn_cnn_loss(run->ctx, g->m, tx, ty, (float)g->r.label_smoothing, &logits);
    c->items = c->tokens = (double)B;
    if (!loss) return NULL;
    int64_t correct = 0;
    const int64_t K = logits->shape[1]; /* the checkpoint's class count (a file is untrusted) */
    for (int64_t b = 0; b < B; b++) {
        const float *row = attn_f32(logits) + b * K;
        int64_t best = 0;
        for (int64_t k = 1; k < K; k++)
            if (row[k] > row[best]) best = k;
        correct += best == g->lab[b];
    }
    c->metric = (double)correct / (double)B;
    /* gamma over training: the value this step starts from, once per log window */
    if (vision_has_gamma(g->m) && run->log_every > 0 && step % run->log_every == 0) {
        const attn_json_field f[] = {attn_json_str("event", "gamma"), attn_json_int("step", step),
                                     attn_json_num("gamma", (double)attn_cnn_gamma(g->m))};
        if (train_log(run, f, 3)) return NULL;
    }
    return loss;
}

static int vision_evaluate(void *self, train_run *run, int last, double *seconds) {
    vision_train *g = self;
    eval_result va, te;
    memset(&te, 0, sizeof te);
    const int64_t nv = last || g->eval_n <= 0 || g->eval_n > N_VALID ? N_VALID : g->eval_n;
    if (evaluate(run->ctx, g->m, &g->d.train_x, &g->d.train_y, g->d.n_train, nv, 256, 0, &va)) return 1;
    if (last && evaluate(run->ctx, g->m, &g->d.test_x, &g->d.test_y, 0, g->d.test_x.dims[0], 256, 0, &te))
        return 1;
    *seconds = va.seconds + te.seconds;
    const double gamma = (double)attn_cnn_gamma(g->m);
    attn_json_field f[10];
    int n = 0;
    f[n++] = attn_json_str("event", "eval");
    f[n++] = attn_json_int("step", run->step);
    f[n++] = attn_json_num("valid_loss", va.loss);
    f[n++] = attn_json_num("valid_accuracy", va.accuracy);
    f[n++] = attn_json_int("valid_n", va.n);
    if (last) {
        f[n++] = attn_json_num("test_loss", te.loss);
        f[n++] = attn_json_num("test_accuracy", te.accuracy);
        f[n++] = attn_json_int("test_n", te.n);
    }
    f[n++] = attn_json_num("gamma", gamma);
    f[n++] = attn_json_num("seconds", *seconds);
    if (train_log(run, f, n)) return 1;
    if (!run->quiet || last) {
        if (run->progress.tty && !run->quiet) fputc('\n', stderr);
        FILE *o = last ? stdout : stderr;
        fprintf(o, "step %lld: valid accuracy %.4f (loss %.4f, %lld images)", (long long)run->step,
                va.accuracy, va.loss, (long long)va.n);
        if (last)
            fprintf(o, "; test accuracy %.4f (loss %.4f, %lld images)", te.accuracy, te.loss,
                    (long long)te.n);
        if (vision_has_gamma(g->m)) fprintf(o, "; gamma %.4f", gamma);
        fputc('\n', o);
    }
    return 0;
}

static void vision_meta(void *self, train_run *run, double train_seconds_, const attn_kv **kv, int *n) {
    vision_train *g = self;
    g->r.total_steps = run->total_steps;
    g->r.train_seconds = train_seconds_;
    run_meta_build(&g->meta, g->m, &g->r);
    *kv = g->meta.kv;
    *n = g->meta.n;
}

static int vision_finish(void *self, train_run *run, double train_s, double train_cpu) {
    vision_train *g = self;
    const double nimg = (double)((run->step - run->start) * g->B);
    const double ips = nimg / (train_s > 1e-9 ? train_s : 1e-9);
    const double step_ms = run->step > run->start ? 1e3 * train_s / (double)(run->step - run->start) : 0.0;
    printf("trained %lld steps in %.1f s: %.1f ms/step, %.0f images/s (evaluation %.1f s apart)%s\n",
           (long long)(run->step - run->start), train_s, step_ms, ips, run->eval_seconds,
           !strcmp(run->stopped, "time_budget") ? "; stopped by the time budget" : "");
    const attn_json_field f[] = {attn_json_str("event", "end"), attn_json_int("step", run->step),
                                 attn_json_str("stopped", run->stopped),
                                 attn_json_num("train_seconds", train_s), attn_json_num("images_per_s", ips),
                                 attn_json_num("ms_per_step", step_ms),
                                 attn_json_num("train_cpu_seconds", train_cpu),
                                 attn_json_num("gamma", (double)attn_cnn_gamma(g->m)),
                                 attn_json_int("parameters", attn_cnn_numel(&g->m->cfg))};
    return train_log(run, f, (int)(sizeof f / sizeof f[0]));
}

static const train_family vision_family = {
    "img", "accuracy", "Fashion-MNIST CNN", "loss (nats per image)", "valid", NULL, "train.jsonl, loss.svg",
    vision_step_loss, NULL, vision_evaluate, vision_meta, vision_finish, NULL, NULL, NULL,
};

/* Trainable values: the store less the BatchNorm running statistics. */
static int64_t trainable_numel(const attn_params *ps) {
    int64_t n = 0;
    for (int i = 0; i < attn_params_count(ps); i++) {
        const attn_tensor *t = attn_params_at(ps, i);
        if (t->requires_grad) n += attn_tensor_numel(t);
    }
    return n;
}

static int cmd_vision_train(int argc, char **argv) {
    const char *prog = "attn vision train", *sub = "train", *data = "data/fashion-mnist";
    const char *att = "none", *init = NULL;
    long long att_stage = 0, stages = 3, width = 32, convs = 1, augment = 0;
    long long widths[ATTN_CNN_MAX_STAGES] = {0};
    int n_widths = 0;
    double dropout = 0.0, smoothing = 0.0;
    int sym = 0, rc = 0, stages_given = 0, smoothing_given = 0, augment_given = 0;
    const char *arch_flag = NULL;
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
        if (!strcmp(a, "--sym")) {
            if ((rc = train_opt_bool(prog, argv, argc, &i, &sym))) return rc;
            train_fixed(&o, a);
            arch_flag = a;
            continue;
        }
        /* label smoothing and augmentation shape the loss and the batches, not the model: a
         * resumed run may change them */
        if (strcmp(a, "--label-smoothing") && strcmp(a, "--augment")) train_fixed(&o, a);
        if (!strcmp(a, "--label-smoothing")) smoothing_given = 1;
        if (!strcmp(a, "--augment")) augment_given = 1;
        if (!strcmp(a, "--attention") || !strcmp(a, "--attention-stage") || !strcmp(a, "--stages") ||
            !strcmp(a, "--width") || !strcmp(a, "--widths") || !strcmp(a, "--convs") || !strcmp(a, "--dropout"))
            arch_flag = a;
        i++;
        if (!strcmp(a, "--data")) data = v, rc = train_path_value(prog, a, v, "a directory");
        else if (!strcmp(a, "--init")) init = v, rc = train_path_value(prog, a, v, "a model");
        else if (!strcmp(a, "--attention")) att = v;
        else if (!strcmp(a, "--attention-stage")) rc = opt_int(sub, a, v, 0, ATTN_CNN_MAX_STAGES - 1, &att_stage);
        else if (!strcmp(a, "--stages")) {
            rc = opt_int(sub, a, v, 1, ATTN_CNN_MAX_STAGES, &stages);
            stages_given = 1;
        }
        else if (!strcmp(a, "--width")) rc = opt_int(sub, a, v, 1, 512, &width);
        else if (!strcmp(a, "--widths")) rc = parse_widths(v, widths, &n_widths);
        else if (!strcmp(a, "--convs")) rc = opt_int(sub, a, v, 1, 4, &convs);
        else if (!strcmp(a, "--augment")) rc = opt_int(sub, a, v, 0, 2, &augment);
        else if (!strcmp(a, "--dropout")) rc = opt_real(sub, a, v, 0.0, 0.99, &dropout);
        else if (!strcmp(a, "--label-smoothing")) rc = opt_real(sub, a, v, 0.0, 0.99, &smoothing);
        else {
            fprintf(stderr, "attn vision train: unknown option '%s' (try 'attn vision train --help')\n", a);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "attn vision train: %s needs a value\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if ((rc = train_opts_check(prog, &o))) return rc;
    if (init && arch_flag) {
        fprintf(stderr, "attn vision train: %s with --init: the model's architecture is the one of %s\n",
                arch_flag, init);
        return 2;
    }
    attn_cnn_attention ak;
    if (attn_cnn_attention_parse(att, &ak)) {
        fprintf(stderr, "attn vision train: --attention '%s': expected none, sagan, sagan-code, simple, "
                        "channel, spatial, cbam, soft, gc, sag, psa or aaconv\n", att);
        return 2;
    }
    if (n_widths) {
        if (stages_given && stages != n_widths) {
            fprintf(stderr, "attn vision train: --widths names %d stages, --stages %lld\n", n_widths, stages);
            return 2;
        }
        stages = n_widths;
    }
    if (ak != ATTN_CNN_ATT_NONE && att_stage >= stages) {
        fprintf(stderr, "attn vision train: --attention-stage %lld: the model has stages 0 to %lld\n",
                att_stage, stages - 1);
        return 2;
    }
    const char *out = o.out;
    const int resume = o.resume;
    if ((rc = train_dir_check(prog, &o))) return rc;

    vision_train g;
    memset(&g, 0, sizeof g);
    g.perm_epoch = -1;
    g.eval_n = o.eval_n > 0 ? o.eval_n : 1000;
    run_info *rp = &g.r;
    attn_params *ps = NULL;
    attn_optim *opt = NULL;
    attn_ctx *ctx = NULL;
    train_run run;
    memset(&run, 0, sizeof run);
    int have_data = 0;
    rc = 1;
    char ckpt[4096];
    dir_file(ckpt, sizeof ckpt, out, "model.safetensors");
    if (resume) {
        if (run_meta_read(ckpt, rp)) goto done;
        train_resume_ll("--steps", o.steps, &rp->total_steps);
        train_resume_ll("--batch", o.batch, &rp->batch);
        train_resume_ll("--warmup", o.warmup, &rp->warmup);
        train_resume_real("--lr", o.lr, &rp->lr);
        train_resume_real("--min-lr", o.min_lr, &rp->min_lr);
        train_resume_real("--weight-decay", o.weight_decay, &rp->weight_decay);
        if (smoothing_given) rp->label_smoothing = smoothing;
        if (augment_given) rp->augment = augment;
        attn_cnn_config cc;
        if (attn_cnn_config_load(ckpt, &cc) != ATTN_OK || attn_params_new(&ps) != ATTN_OK ||
            attn_cnn_new(&g.m, ps, &cc, NULL) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot rebuild the model");
            goto done;
        }
        if (fmnist_model_check(ckpt, g.m)) goto done;
    } else {
        snprintf(rp->data, sizeof rp->data, "%s", data);
        rp->batch = o.batch > 0 ? o.batch : 64;
        rp->total_steps = o.steps > 0 ? o.steps : 3000;
        rp->warmup = o.warmup >= 0 ? o.warmup : 100;
        rp->seed = o.seed >= 0 ? o.seed : 1;
        rp->augment = augment;
        rp->lr = o.lr >= 0 ? o.lr : 2e-3;
        rp->min_lr = o.min_lr >= 0 ? o.min_lr : rp->lr / 100.0;
        rp->weight_decay = o.weight_decay >= 0 ? o.weight_decay : 0.01;
        rp->label_smoothing = smoothing;
    }
    if (rp->batch < 2) {
        fprintf(stderr, "attn vision train: --batch %lld: BatchNorm needs at least 2 images per step\n",
                rp->batch);
        rc = 2;
        goto done;
    }
    if (vision_fmnist_load(rp->data, &g.d)) goto done;
    have_data = 1;
    if (!resume && init) {
        /* a new run (schedule, optimizer state) from a trained model's parameters and statistics */
        char path[4096];
        const size_t n = strlen(init);
        if (n >= 12 && !strcmp(init + n - 12, ".safetensors")) snprintf(path, sizeof path, "%s", init);
        else dir_file(path, sizeof path, init, "model.safetensors");
        if (attn_params_new(&ps) != ATTN_OK || attn_cnn_load(path, ps, &g.m) != ATTN_OK) {
            rc = cli_fail(CMD, "--init: cannot load the model");
            goto done;
        }
        if (fmnist_model_check(path, g.m)) goto done;
        if (cli_make_dir(out) != 0) {
            fprintf(stderr, "attn vision train: cannot create the directory %s: %s\n", out, strerror(errno));
            goto done;
        }
        printf("initialised from %s\n", path);
    } else if (!resume) {
        attn_cnn_config cc = attn_cnn_config_default();
        cc.n_stages = (int)stages;
        for (int s = 0; s < ATTN_CNN_MAX_STAGES; s++)
            cc.widths[s] = s >= stages ? 0 : n_widths ? widths[s] : width << s;
        cc.convs_per_stage = (int)convs;
        cc.attention = ak;
        cc.attention_stage = (int)att_stage;
        cc.sym = sym;
        cc.dropout = (float)dropout;
        attn_rng rng;
        attn_rng_init(&rng, (uint64_t)rp->seed);
        if (attn_params_new(&ps) != ATTN_OK || attn_cnn_new(&g.m, ps, &cc, &rng) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot create the model");
            goto done;
        }
        if (cli_make_dir(out) != 0) {
            fprintf(stderr, "attn vision train: cannot create the directory %s: %s\n", out, strerror(errno));
            goto done;
        }
    }
    const int64_t B = rp->batch;
    g.B = B;
    if (o.epochs > 0) {
        const long long per_epoch = (long long)((g.d.n_train + B - 1) / B);
        if (resume) train_resume_ll("--steps (from --epochs)", o.epochs * per_epoch, &rp->total_steps);
        else rp->total_steps = o.epochs * per_epoch;
    }
    {
        const train_setup su = {CMD, &vision_family, &g, ps, ckpt, 0.0f, 0.0f, rp->lr, rp->min_lr,
                                 rp->weight_decay, CLIP_NORM, rp->train_seconds, rp->total_steps,
                                 rp->warmup, (uint64_t)rp->seed, 1024, 50, 500};
        const int bad = train_run_setup(&run, prog, &o, &su);
        opt = run.opt; /* freed at done, also after an error */
        ctx = run.ctx;
        if (bad) goto done;
    }
    int64_t step = run.step;
    if (step >= rp->total_steps) {
        rc = train_loop(&run); /* says the run is complete */
        goto done;
    }
    if (train_log_open(&run, resume)) goto done;
    g.img = malloc((size_t)B * 784 * sizeof *g.img);
    g.lab = malloc((size_t)B * sizeof *g.lab);
    g.perm = malloc((size_t)g.d.n_train * sizeof *g.perm);
    if (!g.img || !g.lab || !g.perm) {
        fprintf(stderr, "attn vision train: out of memory\n");
        goto done;
    }
    const attn_cnn_config *c = &g.m->cfg;
    char desc[512];
    snprintf(desc, sizeof desc,
             "CNN: %d stages of widths %lld %lld %lld %lld, %d conv-BN-ReLU per stage, attention %s%s%s, "
             "dropout %g; %lld trainable parameters (+%lld BatchNorm statistics)",
             c->n_stages, (long long)c->widths[0], (long long)c->widths[1], (long long)c->widths[2],
             (long long)c->widths[3], c->convs_per_stage, attn_cnn_attention_name(c->attention),
             c->attention != ATTN_CNN_ATT_NONE ? " after stage " : "",
             c->attention != ATTN_CNN_ATT_NONE ? (const char[]){(char)('0' + c->attention_stage), 0} : "",
             (double)c->dropout, (long long)trainable_numel(ps),
             (long long)(attn_params_numel(ps) - trainable_numel(ps)));
    printf("%s\n", desc);
    printf("data: %s: train %lld images, valid %d, test %lld; augmentation %s\n", rp->data,
           (long long)g.d.n_train, N_VALID, (long long)g.d.test_x.dims[0],
           rp->augment == 1 ? "shifts +-2 and flips" : rp->augment == 2 ? "left-right flips" : "none");
    printf("schedule: %lld steps of %lld images, AdamW lr %g -> %g (warmup %lld, cosine), wd %g, label "
           "smoothing %g; threads %d\n",
           rp->total_steps, (long long)B, rp->lr, rp->min_lr, rp->warmup, rp->weight_decay,
           rp->label_smoothing, attn_ctx_threads(ctx));
    if (resume) printf("resuming %s at step %lld\n", out, (long long)step);
    fflush(stdout);
    {
        const attn_json_field f[] = {
            attn_json_str("event", resume ? "resume" : "start"), attn_json_int("step", step),
            attn_json_str("data", rp->data), attn_json_str("attention", attn_cnn_attention_name(c->attention)),
            attn_json_int("parameters", trainable_numel(ps)), attn_json_int("total_steps", rp->total_steps),
            attn_json_int("batch", B), attn_json_int("threads", attn_ctx_threads(ctx)),
            attn_json_int("seed", rp->seed), attn_json_str("description", desc),
        };
        if (train_log(&run, f, (int)(sizeof f / sizeof f[0]))) goto done;
    }
    rc = train_loop(&run);
done:
    if (run.log) attn_jsonl_close(run.log);
    free(g.img);
    free(g.lab);
    free(g.perm);
    if (have_data) vision_fmnist_free(&g.d);
    attn_ctx_free(ctx);
    attn_optim_free(opt);
    attn_cnn_free(g.m);
    attn_params_free(ps);
    return rc;
}

/* ---- eval ------------------------------------------------------------------------------ */

/* Loads DIR/model.safetensors; 0 or 1 (printed). */
int vision_load_model(const char *dir, attn_params **ps, attn_cnn **m) {
    char path[4096];
    dir_file(path, sizeof path, dir, "model.safetensors");
    if (attn_params_new(ps) != ATTN_OK || attn_cnn_load(path, *ps, m) != ATTN_OK)
        return cli_fail(CMD, "cannot load the model");
    return fmnist_model_check(path, *m);
}

static int cmd_vision_eval(int argc, char **argv) {
    const char *sub = "eval", *model = NULL, *split = "test", *data = "data/fashion-mnist";
    long long threads = 0;
    int rc = 0, flip_tta = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn vision eval --model DIR [--split test|valid] [--tta none|flip] [--data DIR]\n"
                   "                        [--threads N]\n\n"
                   "Accuracy and loss of a model of 'attn vision train' on the Fashion-MNIST test set\n"
                   "(default) or on the validation set (the last 5,000 training images).\n"
                   "--tta flip: test-time augmentation, each image's class probabilities are the mean\n"
                   "of the softmax of the image and of its left-right mirror (default none).\n");
            return 0;
        }
        i++;
        if (!v) {
            fprintf(stderr, "attn vision eval: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--split")) split = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--tta")) {
            if (!strcmp(v, "flip") || !strcmp(v, "none")) flip_tta = !strcmp(v, "flip");
            else {
                fprintf(stderr, "attn vision eval: --tta '%s': expected none or flip\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--threads")) rc = opt_int(sub, a, v, 0, 1024, &threads);
        else {
            fprintf(stderr, "attn vision eval: unknown option '%s' (try 'attn vision eval --help')\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!model) {
        fprintf(stderr, "attn vision eval: --model DIR is required\n");
        return 2;
    }
    if (strcmp(split, "test") && strcmp(split, "valid")) {
        fprintf(stderr, "attn vision eval: --split '%s': expected test or valid\n", split);
        return 2;
    }
    attn_params *ps = NULL;
    attn_cnn *m = NULL;
    attn_ctx *ctx = NULL;
    fmnist d;
    int have_data = 0;
    rc = 1;
    if (vision_load_model(model, &ps, &m)) goto done;
    if (vision_fmnist_load(data, &d)) goto done;
    have_data = 1;
    attn_ctx_config cc = {0};
    cc.n_threads = (int)threads;
    cc.arena_bytes = (size_t)512 << 20;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    eval_result r;
    const int test = !strcmp(split, "test");
    if (evaluate(ctx, m, test ? &d.test_x : &d.train_x, test ? &d.test_y : &d.train_y,
                 test ? 0 : d.n_train, test ? d.test_x.dims[0] : N_VALID, 256, flip_tta, &r))
        goto done;
    printf("%s accuracy %.4f, loss %.4f (%lld images, %.1f s%s); attention %s", split, r.accuracy, r.loss,
           (long long)r.n, r.seconds, flip_tta ? ", flip TTA: mean of image and mirror" : "",
           attn_cnn_attention_name(m->cfg.attention));
    if (vision_has_gamma(m)) printf(", gamma %.4f", (double)attn_cnn_gamma(m));
    printf("\n");
    rc = 0;
done:
    if (have_data) vision_fmnist_free(&d);
    attn_ctx_free(ctx);
    attn_cnn_free(m);
    attn_params_free(ps);
    return rc;
}

int cmd_vision(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: attn vision train|eval|maps|masks [options]   (attn vision train --help, ...)\n\n"
                   "  train    train the CNN classifier (optionally with a self-attention block) on Fashion-MNIST\n"
                   "  eval     test (or validation) accuracy of a trained model\n"
                   "  maps     PNG pictures of where query pixels attend, for a few test images\n"
                   "  masks    per-pixel item masks of the captioning scenes, with or without the SAG map\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_vision_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval")) return cmd_vision_eval(argc - 1, argv + 1);
    if (!strcmp(argv[1], "maps")) return cmd_vision_maps(argc - 1, argv + 1);
    if (!strcmp(argv[1], "masks")) return cmd_vision_masks(argc - 1, argv + 1);
    fprintf(stderr, "attn vision: unknown subcommand '%s' (train, eval, maps or masks)\n", argv[1]);
    return 2;
}
