/* cmd_vision_masks.c: `attn vision masks train|eval|pictures`: per-pixel
 * item masks of the captioning scenes (scenes.h, attn_scene_mask) with the
 * mask network of include/attn/mask_head.h, with or without CenterMask's
 * spatial attention-guided mask (--sag). docs/vision_modules.md ("The SAG
 * mask in its own setting") is the manual.
 *
 *   attn vision masks train    --out DIR [--sag 0|1] [options]
 *   attn vision masks eval     --model DIR [--test-scenes N]
 *   attn vision masks pictures --model DIR --out FILE.png [--scenes N]
 *
 * Data: TRAIN scenes (items from the first 90% of the Fashion-MNIST
 * training file) train; VALID scenes (its last 10%) are the periodic
 * evaluation; TEST scenes (items from the test file, seed 2015 as attn
 * caption's) are read by the final evaluation only. The metric: the mean
 * over the items of the IoU of the predicted and the true mask inside the
 * item's cell, class-aware (the pixels predicted as the item's class) and
 * class-agnostic (the pixels predicted as any item).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "commands.h"
#include "train_driver.h"

#define CMD "vision masks"
#define CLIP_NORM 5.0f
#define TEST_SEED 2015u /* the test scenes: the same for every model (attn caption's) */
#define VALID_SEED 7u   /* the validation scenes */
#define SIDE ATTN_SCENE_SIDE
#define PIX (SIDE * SIDE)
#define MAX_SCENES 200000 /* 630 MB of canvases */

static void dir_file(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
}

/* ---- data ------------------------------------------------------------------------------- */

typedef struct mask_data {
    attn_idx train_x, train_y, test_x, test_y;
} mask_data;

static void mask_data_free(mask_data *d) {
    attn_idx_free(&d->train_x);
    attn_idx_free(&d->train_y);
    attn_idx_free(&d->test_x);
    attn_idx_free(&d->test_y);
}

static int mask_data_load(const char *dir, mask_data *d) {
    return cli_fmnist_load(CMD, dir, &d->train_x, &d->train_y, &d->test_x, &d->test_y);
}

/* n scenes of split (train/valid from the training file, test from the test file). */
static int make_scenes(const mask_data *d, attn_scene_split split, int64_t n, uint64_t seed, attn_scenes *out) {
    const int test = split == ATTN_SCENES_TEST;
    if (attn_scenes_make(test ? &d->test_x : &d->train_x, test ? &d->test_y : &d->train_y, split, n, seed, out) !=
        ATTN_OK)
        return cli_fail(CMD, "cannot make the scenes");
    return 0;
}

/* Scene i of s into img[PIX] (grey values / 255) and, when tgt is not NULL,
 * its targets tgt[PIX] (0 background, 1 + class) and mask[PIX]. */
static void load_scene(const attn_scenes *s, int64_t i, int threshold, float *img, int32_t *tgt, int8_t *mask) {
    const uint8_t *p = s->pixels + i * PIX;
    for (int j = 0; j < PIX; j++) img[j] = (float)p[j] / 255.0f;
    if (!tgt) return;
    attn_scene_mask(s, i, threshold, mask);
    for (int j = 0; j < PIX; j++) tgt[j] = mask[j] < 0 ? 0 : 1 + s->scenes[i].cls[mask[j]];
}

/* ---- evaluation ------------------------------------------------------------------------- */

typedef struct mask_eval {
    double loss, iou_cls, iou_fg, seconds;
    int64_t scenes, items;
} mask_eval;

/* Loss and item IoUs over the first n scenes of s (n <= s->n), B per
 * forward, evaluation mode. 0 or 1 (printed). */
static int evaluate(attn_ctx *ctx, const attn_mask_head *m, const attn_scenes *s, int64_t n, int threshold,
                    mask_eval *out) {
    const int64_t B = 32;
    float *img = malloc((size_t)B * PIX * sizeof *img);
    int32_t *tgt = malloc((size_t)B * PIX * sizeof *tgt);
    int8_t *mask = malloc((size_t)B * PIX);
    memset(out, 0, sizeof *out);
    if (!img || !tgt || !mask) {
        free(img);
        free(tgt);
        free(mask);
        fprintf(stderr, "attn vision masks: out of memory\n");
        return 1;
    }
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    const double t0 = attn_monotonic_s();
    double nats = 0.0, sc = 0.0, sf = 0.0;
    int64_t items = 0;
    int rc = 0;
    for (int64_t s0 = 0; s0 < n; s0 += B) {
        const int64_t b = B < n - s0 ? B : n - s0;
        for (int64_t i = 0; i < b; i++) load_scene(s, s0 + i, threshold, img + i * PIX, tgt + i * PIX, mask + i * PIX);
        attn_ctx_reset(ctx);
        attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){b, 1, SIDE, SIDE}, img);
        attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 3, (int64_t[]){b, SIDE, SIDE}, tgt);
        attn_tensor *lg = NULL;
        attn_tensor *loss = attn_mask_head_loss(ctx, m, x, t, &lg, NULL);
        if (!loss) {
            fprintf(stderr, "attn vision masks: evaluation: %s\n", attn_ctx_error(ctx));
            rc = 1;
            break;
        }
        nats += (double)attn_f32(loss)[0] * (double)b;
        const int64_t K1 = lg->shape[1];
        for (int64_t i = 0; i < b; i++) {
            double ic[ATTN_SCENE_CELLS], ifg[ATTN_SCENE_CELLS];
            attn_mask_scene_iou(attn_f32(lg) + i * K1 * PIX, K1, &s->scenes[s0 + i], mask + i * PIX, ic, ifg);
            for (int c = 0; c < ATTN_SCENE_CELLS; c++)
                if (ic[c] >= 0) {
                    sc += ic[c];
                    sf += ifg[c];
                    items++;
                }
        }
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    free(img);
    free(tgt);
    free(mask);
    out->scenes = n;
    out->items = items;
    out->loss = n ? nats / (double)n : NAN;
    out->iou_cls = items ? sc / (double)items : NAN;
    out->iou_fg = items ? sf / (double)items : NAN;
    out->seconds = attn_monotonic_s() - t0;
    return rc;
}

/* ---- the run's settings, kept in the checkpoint ---------------------------------------- */

typedef struct run_info {
    char data[1024];
    long long train_scenes, valid_scenes, test_scenes, threshold, batch, total_steps, warmup, seed, step;
    double lr, min_lr, weight_decay, train_seconds;
} run_info;

#define RUN_META 13
static const char *run_keys[RUN_META] = {"run.model", "run.data", "run.train_scenes", "run.valid_scenes",
                                         "run.test_scenes", "run.threshold", "run.batch", "run.steps",
                                         "run.warmup", "run.seed", "run.lr", "run.min_lr",
                                         "run.weight_decay"};

typedef struct run_meta {
    attn_kv kv[ATTN_MASK_HEAD_META + RUN_META + 1];
    char cbuf[ATTN_MASK_HEAD_META * 32];
    char vbuf[RUN_META + 1][1100];
    int n;
} run_meta;

static void run_meta_build(run_meta *m, const attn_mask_head *h, const run_info *r) {
    attn_mask_head_config_meta(&h->cfg, m->kv, m->cbuf);
    m->n = ATTN_MASK_HEAD_META;
    const long long ll[8] = {r->train_scenes, r->valid_scenes, r->test_scenes, r->threshold,
                             r->batch,        r->total_steps,  r->warmup,      r->seed};
    snprintf(m->vbuf[0], 1100, "attn-vision-masks");
    snprintf(m->vbuf[1], 1100, "%s", r->data);
    for (int i = 0; i < 8; i++) snprintf(m->vbuf[2 + i], 1100, "%lld", ll[i]);
    snprintf(m->vbuf[10], 1100, "%.9g", r->lr);
    snprintf(m->vbuf[11], 1100, "%.9g", r->min_lr);
    snprintf(m->vbuf[12], 1100, "%.9g", r->weight_decay);
    snprintf(m->vbuf[13], 1100, "%.3f", r->train_seconds);
    for (int i = 0; i < RUN_META; i++) {
        m->kv[m->n].key = run_keys[i];
        m->kv[m->n++].value = m->vbuf[i];
    }
    m->kv[m->n].key = "run.train_seconds";
    m->kv[m->n++].value = m->vbuf[RUN_META];
}

/* Reads run.* from a checkpoint (every number range-checked); 0 or 1. */
static int run_meta_read(const char *path, run_info *r) {
    attn_safetensors *f = NULL;
    if (attn_safetensors_open(&f, path) != ATTN_OK) return cli_fail(CMD, "cannot open the checkpoint");
    if (cli_check_family("attn vision masks", f, path, "run.model", "attn-vision-masks",
                         "attn vision masks train")) {
        attn_safetensors_close(f);
        return 1;
    }
    const char *missing = NULL;
    for (int i = 1; i < RUN_META && !missing; i++)
        if (!attn_safetensors_metadata(f, run_keys[i])) missing = run_keys[i];
    if (!missing && !attn_safetensors_metadata(f, "step")) missing = "step";
    if (!missing && !attn_safetensors_metadata(f, "run.train_seconds")) missing = "run.train_seconds";
    if (missing) {
        attn_safetensors_close(f);
        fprintf(stderr, "attn vision masks: %s: a checkpoint of attn vision masks train without its "
                        "metadata '%s'\n", path, missing);
        return 1;
    }
    meta_reader m = {f, path, {0}};
    snprintf(r->data, sizeof r->data, "%s", attn_safetensors_metadata(f, "run.data"));
    r->train_scenes = meta_ll(&m, "run.train_scenes", 1, MAX_SCENES);
    r->valid_scenes = meta_ll(&m, "run.valid_scenes", 1, MAX_SCENES);
    r->test_scenes = meta_ll(&m, "run.test_scenes", 1, MAX_SCENES);
    r->threshold = meta_ll(&m, "run.threshold", 0, 254);
    r->batch = meta_ll(&m, "run.batch", 2, 4096);
    r->total_steps = meta_ll(&m, "run.steps", 1, 1ll << 40);
    r->warmup = meta_ll(&m, "run.warmup", 0, 1ll << 40);
    r->seed = meta_ll(&m, "run.seed", 0, 1ll << 62);
    r->lr = meta_real(&m, "run.lr", 0.0, 10.0);
    r->min_lr = meta_real(&m, "run.min_lr", 0.0, 10.0);
    r->weight_decay = meta_real(&m, "run.weight_decay", 0.0, 10.0);
    r->train_seconds = meta_real(&m, "run.train_seconds", 0.0, 1e12);
    r->step = meta_ll(&m, "step", 0, 1ll << 40);
    attn_safetensors_close(f);
    if (m.err[0]) {
        fprintf(stderr, "attn vision masks: %s\n", m.err);
        return 1;
    }
    return 0;
}

/* ---- train ------------------------------------------------------------------------------ */

typedef struct masks_train {
    run_info r;
    attn_mask_head *m;
    mask_data d;
    attn_scenes tr, va, te;
    int have_te;
    float *img;
    int32_t *tgt;
    int8_t *mask;
    int64_t B;
    run_meta meta;
} masks_train;

static attn_tensor *masks_step_loss(void *self, train_run *run, int64_t step, train_counts *c) {
    masks_train *g = self;
    const int64_t B = g->B;
    attn_ctx_set_rng(run->ctx, (uint64_t)g->r.seed, (uint64_t)step << 24);
    attn_rng rng; /* the batch of step `step`: replayed on resume */
    attn_rng_init(&rng, (uint64_t)g->r.seed * 1000003u + (uint64_t)step + 1);
    for (int64_t b = 0; b < B; b++) {
        const int64_t i = (int64_t)attn_rng_next_below(&rng, (uint32_t)g->tr.n);
        load_scene(&g->tr, i, (int)g->r.threshold, g->img + b * PIX, g->tgt + b * PIX, g->mask + b * PIX);
    }
    attn_tensor *x = attn_tensor_from(run->ctx, ATTN_F32, 4, (int64_t[]){B, 1, SIDE, SIDE}, g->img);
    attn_tensor *t = attn_tensor_from(run->ctx, ATTN_I32, 3, (int64_t[]){B, SIDE, SIDE}, g->tgt);
    attn_tensor *lg = NULL;
    attn_tensor *loss = attn_mask_head_loss(run->ctx, g->m, x, t, &lg, NULL);
    c->items = c->tokens = (double)B;
    if (!loss) return NULL;
    /* the step's metric: pixel accuracy */
    const int64_t K1 = lg->shape[1];
    int64_t right = 0;
    for (int64_t b = 0; b < B; b++)
        for (int p = 0; p < PIX; p++) {
            const float *l = attn_f32(lg) + b * K1 * PIX + p;
            int64_t best = 0;
            for (int64_t k = 1; k < K1; k++)
                if (l[k * PIX] > l[best * PIX]) best = k;
            right += best == g->tgt[b * PIX + p];
        }
    c->metric = (double)right / (double)(B * PIX);
    return loss;
}

static int masks_evaluate(void *self, train_run *run, int last, double *seconds) {
    masks_train *g = self;
    mask_eval va, te;
    memset(&te, 0, sizeof te);
    if (evaluate(run->ctx, g->m, &g->va, g->va.n, (int)g->r.threshold, &va)) return 1;
    if (last && !g->have_te) {
        if (make_scenes(&g->d, ATTN_SCENES_TEST, g->r.test_scenes, TEST_SEED, &g->te)) return 1;
        g->have_te = 1;
    }
    if (last && evaluate(run->ctx, g->m, &g->te, g->te.n, (int)g->r.threshold, &te)) return 1;
    *seconds = va.seconds + te.seconds;
    attn_json_field f[12];
    int n = 0;
    f[n++] = attn_json_str("event", "eval");
    f[n++] = attn_json_int("step", run->step);
    f[n++] = attn_json_num("valid_loss", va.loss);
    f[n++] = attn_json_num("valid_iou", va.iou_cls);
    f[n++] = attn_json_num("valid_iou_fg", va.iou_fg);
    f[n++] = attn_json_int("valid_items", va.items);
    if (last) {
        f[n++] = attn_json_num("test_loss", te.loss);
        f[n++] = attn_json_num("test_iou", te.iou_cls);
        f[n++] = attn_json_num("test_iou_fg", te.iou_fg);
        f[n++] = attn_json_int("test_items", te.items);
    }
    f[n++] = attn_json_num("seconds", *seconds);
    if (train_log(run, f, n)) return 1;
    if (!run->quiet || last) {
        if (run->progress.tty && !run->quiet) fputc('\n', stderr);
        FILE *o = last ? stdout : stderr;
        fprintf(o, "step %lld: valid item IoU %.4f (class-agnostic %.4f, loss %.4f, %lld items)", (long long)run->step,
                va.iou_cls, va.iou_fg, va.loss, (long long)va.items);
        if (last)
            fprintf(o, "; test item IoU %.4f (class-agnostic %.4f, loss %.4f, %lld items of %lld scenes)", te.iou_cls,
                    te.iou_fg, te.loss, (long long)te.items, (long long)te.scenes);
        fputc('\n', o);
    }
    return 0;
}

static void masks_meta(void *self, train_run *run, double train_seconds_, const attn_kv **kv, int *n) {
    masks_train *g = self;
    g->r.total_steps = run->total_steps;
    g->r.train_seconds = train_seconds_;
    run_meta_build(&g->meta, g->m, &g->r);
    *kv = g->meta.kv;
    *n = g->meta.n;
}

static int64_t trainable_numel(const attn_params *ps) {
    int64_t n = 0;
    for (int i = 0; i < attn_params_count(ps); i++) {
        const attn_tensor *t = attn_params_at(ps, i);
        if (t->requires_grad) n += attn_tensor_numel(t);
    }
    return n;
}

static int masks_finish(void *self, train_run *run, double train_s, double train_cpu) {
    masks_train *g = self;
    const double step_ms = run->step > run->start ? 1e3 * train_s / (double)(run->step - run->start) : 0.0;
    printf("trained %lld steps in %.1f s: %.1f ms/step (evaluation %.1f s apart)%s\n",
           (long long)(run->step - run->start), train_s, step_ms, run->eval_seconds,
           !strcmp(run->stopped, "time_budget") ? "; stopped by the time budget" : "");
    const attn_json_field f[] = {attn_json_str("event", "end"), attn_json_int("step", run->step),
                                 attn_json_str("stopped", run->stopped), attn_json_num("train_seconds", train_s),
                                 attn_json_num("ms_per_step", step_ms), attn_json_num("train_cpu_seconds", train_cpu),
                                 attn_json_int("parameters", trainable_numel(g->m->params))};
    return train_log(run, f, (int)(sizeof f / sizeof f[0]));
}

static const train_family masks_family = {
    "scene", "pixel_accuracy", "scene item masks", "loss (nats per pixel)", "valid", NULL, "train.jsonl, loss.svg",
    masks_step_loss, NULL, masks_evaluate, masks_meta, masks_finish, NULL, NULL, NULL,
};

static void train_usage(FILE *f) {
    fprintf(f,
        "usage: attn vision masks train --out DIR [options]\n\n"
        "Trains the mask network of include/attn/mask_head.h to predict, for every pixel of the\n"
        "56x56 captioning scenes, the class of the Fashion-MNIST item drawn there or the\n"
        "background (a pixel belongs to its cell's item when the item's grey value is above\n"
        "the threshold). The final evaluation reports the mean item IoU on the test scenes.\n\n"
        "data and model (fixed by the checkpoint: refused with --resume)\n"
        "  --data DIR             Fashion-MNIST IDX files (default data/fashion-mnist)\n"
        "  --train-scenes N       training scenes (default 20000)\n"
        "  --valid-scenes N       validation scenes of the periodic evaluations (default 500)\n"
        "  --test-scenes N        test scenes of the final evaluation (default 1000)\n"
        "  --threshold T          grey value (0..254) above which a pixel is the item's (default %d)\n"
        "  --sag 0|1              the SAG map multiplies the mask head's features (default 1)\n"
        "  --width C              channels of the features and the head (even; default 32)\n"
        "schedule (with --resume: applied and printed)\n"
        "  --batch N              scenes per step (default 16)\n"
        "  --steps N              optimizer steps (default 800)\n"
        "  --lr X                 peak learning rate of AdamW (default 1e-2)\n"
        "  --min-lr X             final learning rate of the cosine (default lr / 100)\n"
        "  --warmup N             linear warmup steps (default 50)\n"
        "  --weight-decay X       (default 0.01)\n"
        "  --seed N               initialisation and batches (default 1; the scenes do not depend on it)\n"
        "run\n"
        "  --eval-every N         validation IoU every N steps and a checkpoint (default 500; 0: end only)\n"
        "  --log-every N          a JSONL line every N steps (default 50)\n"
        "  --threads N, --arena-mb N, --time-budget S, --resume, --force, --quiet\n\n"
        "Ctrl-C (SIGINT) or SIGTERM finishes the step, writes a checkpoint and exits 130.\n",
        ATTN_SCENE_MASK_THRESHOLD);
}

static int opt_int(const char *sub, const char *a, const char *v, long long lo, long long hi, long long *out) {
    return cli_opt_int(CMD, sub, a, v, lo, hi, out);
}

static int masks_train_cmd(int argc, char **argv) {
    const char *prog = "attn vision masks train", *sub = "train", *data = "data/fashion-mnist";
    long long n_train = 20000, n_valid = 500, n_test = 1000, threshold = ATTN_SCENE_MASK_THRESHOLD, sag = 1,
              width = 32;
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
        train_fixed(&o, a);
        i++;
        if (!v) {
            fprintf(stderr, "%s: %s needs a value\n", prog, a);
            return 2;
        }
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--train-scenes")) rc = opt_int(sub, a, v, 1, MAX_SCENES, &n_train);
        else if (!strcmp(a, "--valid-scenes")) rc = opt_int(sub, a, v, 1, MAX_SCENES, &n_valid);
        else if (!strcmp(a, "--test-scenes")) rc = opt_int(sub, a, v, 1, MAX_SCENES, &n_test);
        else if (!strcmp(a, "--threshold")) rc = opt_int(sub, a, v, 0, 254, &threshold);
        else if (!strcmp(a, "--sag")) rc = opt_int(sub, a, v, 0, 1, &sag);
        else if (!strcmp(a, "--width")) rc = opt_int(sub, a, v, 2, 512, &width);
        else {
            fprintf(stderr, "%s: unknown option '%s' (try '%s --help')\n", prog, a, prog);
            return 2;
        }
    }
    if (rc) return rc;
    if (width % 2) {
        fprintf(stderr, "%s: --width %lld: must be even (the upsampling path has C/2 channels)\n", prog, width);
        return 2;
    }
    if ((rc = train_opts_check(prog, &o))) return rc;
    if ((rc = train_dir_check(prog, &o))) return rc;
    const char *out = o.out;
    const int resume = o.resume;
    masks_train g;
    memset(&g, 0, sizeof g);
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
        attn_mask_head_config mc;
        if (attn_mask_head_config_load(ckpt, &mc) != ATTN_OK || attn_params_new(&ps) != ATTN_OK ||
            attn_mask_head_new(&g.m, ps, &mc, NULL) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot rebuild the model");
            goto done;
        }
    } else {
        snprintf(rp->data, sizeof rp->data, "%s", data);
        rp->train_scenes = n_train;
        rp->valid_scenes = n_valid;
        rp->test_scenes = n_test;
        rp->threshold = threshold;
        rp->batch = o.batch > 0 ? o.batch : 16;
        rp->total_steps = o.steps > 0 ? o.steps : 800;
        rp->warmup = o.warmup >= 0 ? o.warmup : 50;
        rp->seed = o.seed >= 0 ? o.seed : 1;
        rp->lr = o.lr >= 0 ? o.lr : 1e-2;
        rp->min_lr = o.min_lr >= 0 ? o.min_lr : rp->lr / 100.0;
        rp->weight_decay = o.weight_decay >= 0 ? o.weight_decay : 0.01;
        attn_mask_head_config mc;
        memset(&mc, 0, sizeof mc);
        mc.width = width;
        mc.sag = (int)sag;
        attn_rng rng;
        attn_rng_init(&rng, (uint64_t)rp->seed);
        if (attn_params_new(&ps) != ATTN_OK || attn_mask_head_new(&g.m, ps, &mc, &rng) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot create the model");
            goto done;
        }
    }
    if (rp->batch < 2) {
        fprintf(stderr, "%s: --batch %lld: BatchNorm needs at least 2 scenes per step\n", prog, rp->batch);
        rc = 2;
        goto done;
    }
    if (o.epochs > 0) {
        fprintf(stderr, "%s: --epochs: give --steps (batches are drawn from the scenes with replacement)\n", prog);
        rc = 2;
        goto done;
    }
    if (mask_data_load(rp->data, &g.d)) goto done;
    have_data = 1;
    /* the scenes do not depend on the run's seed: every run sees the same ones */
    if (make_scenes(&g.d, ATTN_SCENES_TRAIN, rp->train_scenes, 1, &g.tr) ||
        make_scenes(&g.d, ATTN_SCENES_VALID, rp->valid_scenes, VALID_SEED, &g.va))
        goto done;
    if (!resume && cli_make_dir(out) != 0) {
        fprintf(stderr, "%s: cannot create the directory %s: %s\n", prog, out, strerror(errno));
        goto done;
    }
    const int64_t B = rp->batch;
    g.B = B;
    {
        const train_setup su = {"vision masks", &masks_family, &g, ps, ckpt, 0.0f, 0.0f, rp->lr, rp->min_lr,
                                rp->weight_decay, CLIP_NORM, rp->train_seconds, rp->total_steps, rp->warmup,
                                (uint64_t)rp->seed, 1024, 50, 500};
        const int bad = train_run_setup(&run, prog, &o, &su);
        opt = run.opt;
        ctx = run.ctx;
        if (bad) goto done;
    }
    if (run.step >= rp->total_steps) {
        rc = train_loop(&run);
        goto done;
    }
    if (train_log_open(&run, resume)) goto done;
    g.img = malloc((size_t)B * PIX * sizeof *g.img);
    g.tgt = malloc((size_t)B * PIX * sizeof *g.tgt);
    g.mask = malloc((size_t)B * PIX);
    if (!g.img || !g.tgt || !g.mask) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto done;
    }
    char desc[512];
    snprintf(desc, sizeof desc,
             "mask network: width %lld, SAG %s; %lld trainable parameters (+%lld BatchNorm statistics)",
             (long long)g.m->cfg.width, g.m->cfg.sag ? "on" : "off", (long long)trainable_numel(ps),
             (long long)(attn_params_numel(ps) - trainable_numel(ps)));
    printf("%s\n", desc);
    printf("data: %s: %lld train scenes, %lld valid, %lld test; item pixels: grey value > %lld\n", rp->data,
           rp->train_scenes, rp->valid_scenes, rp->test_scenes, rp->threshold);
    printf("schedule: %lld steps of %lld scenes, AdamW lr %g -> %g (warmup %lld, cosine), wd %g; threads %d\n",
           rp->total_steps, (long long)B, rp->lr, rp->min_lr, rp->warmup, rp->weight_decay, attn_ctx_threads(ctx));
    if (resume) printf("resuming %s at step %lld\n", out, (long long)run.step);
    fflush(stdout);
    {
        const attn_json_field f[] = {
            attn_json_str("event", resume ? "resume" : "start"), attn_json_int("step", run.step),
            attn_json_str("data", rp->data), attn_json_int("sag", g.m->cfg.sag),
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
    free(g.tgt);
    free(g.mask);
    attn_scenes_free(&g.tr);
    attn_scenes_free(&g.va);
    attn_scenes_free(&g.te);
    if (have_data) mask_data_free(&g.d);
    attn_ctx_free(ctx);
    attn_optim_free(opt);
    attn_mask_head_free(g.m);
    attn_params_free(ps);
    return rc;
}

/* ---- eval and pictures ----------------------------------------------------------------- */

/* Loads DIR/model.safetensors and its run settings; 0 or 1 (printed). */
static int load_run(const char *dir, attn_params **ps, attn_mask_head **m, run_info *r) {
    char path[4096];
    dir_file(path, sizeof path, dir, "model.safetensors");
    if (run_meta_read(path, r)) return 1;
    if (attn_params_new(ps) != ATTN_OK || attn_mask_head_load(path, *ps, m) != ATTN_OK)
        return cli_fail(CMD, "cannot load the model");
    return 0;
}

static int new_eval_ctx(attn_ctx **ctx, long long threads) {
    attn_ctx_config cc = {0};
    cc.n_threads = (int)threads;
    cc.arena_bytes = (size_t)512 << 20;
    if (attn_ctx_new(ctx, &cc) != ATTN_OK) return cli_fail(CMD, "cannot create the context");
    attn_ctx_set_training(*ctx, 0);
    attn_ctx_set_grad_enabled(*ctx, 0);
    return 0;
}

static int masks_eval_cmd(int argc, char **argv) {
    const char *sub = "eval", *model = NULL, *data = NULL;
    long long n_test = 0, threads = 0;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn vision masks eval --model DIR [--test-scenes N] [--data DIR] [--threads N]\n\n"
                   "Mean item IoU (class-aware and class-agnostic) and pixel loss of a model of 'attn vision\n"
                   "masks train' on the test scenes (default: the run's number of them).\n");
            return 0;
        }
        i++;
        if (!v) {
            fprintf(stderr, "attn vision masks eval: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--test-scenes")) rc = opt_int(sub, a, v, 1, MAX_SCENES, &n_test);
        else if (!strcmp(a, "--threads")) rc = opt_int(sub, a, v, 0, cli_max_threads(), &threads);
        else {
            fprintf(stderr, "attn vision masks eval: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!model) {
        fprintf(stderr, "attn vision masks eval: --model DIR is required\n");
        return 2;
    }
    attn_params *ps = NULL;
    attn_mask_head *m = NULL;
    attn_ctx *ctx = NULL;
    attn_scenes te;
    memset(&te, 0, sizeof te);
    mask_data d;
    int have_data = 0;
    run_info r;
    rc = 1;
    if (load_run(model, &ps, &m, &r)) goto done;
    if (mask_data_load(data ? data : r.data, &d)) goto done;
    have_data = 1;
    if (make_scenes(&d, ATTN_SCENES_TEST, n_test > 0 ? n_test : r.test_scenes, TEST_SEED, &te)) goto done;
    if (new_eval_ctx(&ctx, threads)) goto done;
    mask_eval e;
    if (evaluate(ctx, m, &te, te.n, (int)r.threshold, &e)) goto done;
    printf("test item IoU %.4f (class-agnostic %.4f), pixel loss %.4f: %lld items of %lld scenes (%.1f s); SAG %s\n",
           e.iou_cls, e.iou_fg, e.loss, (long long)e.items, (long long)e.scenes, e.seconds, m->cfg.sag ? "on" : "off");
    rc = 0;
done:
    attn_scenes_free(&te);
    if (have_data) mask_data_free(&d);
    attn_ctx_free(ctx);
    attn_mask_head_free(m);
    attn_params_free(ps);
    return rc;
}

#define PIC_SCALE 4
#define PIC_GAP 4

/* 10 class colours (a qualitative palette), background black. */
static const uint8_t class_rgb[10][3] = {{230, 25, 75},  {60, 180, 75},  {255, 225, 25}, {0, 130, 200},
                                         {245, 130, 48}, {145, 30, 180}, {70, 240, 240}, {240, 50, 230},
                                         {210, 245, 60}, {250, 190, 212}};

static void hot(double v, uint8_t *rgb) {
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    const double r = v * 3.0, g = v * 3.0 - 1.0, b = v * 3.0 - 2.0;
    rgb[0] = (uint8_t)(255.0 * (r > 1 ? 1 : r));
    rgb[1] = (uint8_t)(255.0 * (g < 0 ? 0 : g > 1 ? 1 : g));
    rgb[2] = (uint8_t)(255.0 * (b < 0 ? 0 : b > 1 ? 1 : b));
}

/* One panel at (x0, y0): the scene in grey blended with, per pixel, the
 * class colour of lab[p] (0 background, 1 + class; NULL: the scene alone)
 * or the hot colour of heat[p] in [0, 1]. */
static void panel(uint8_t *cv, int cw, int x0, int y0, const float *img, const int32_t *lab, const double *heat) {
    const int S = SIDE * PIC_SCALE;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            const int p = (y / PIC_SCALE) * SIDE + x / PIC_SCALE;
            const double g = img[p];
            uint8_t *px = cv + ((size_t)(y0 + y) * cw + (x0 + x)) * 3;
            uint8_t c[3] = {0, 0, 0};
            if (lab && lab[p] > 0 && lab[p] <= 10) memcpy(c, class_rgb[lab[p] - 1], 3);
            else if (heat) hot(heat[p], c);
            for (int k = 0; k < 3; k++)
                px[k] = (!lab && !heat) ? (uint8_t)(255.0 * g) : (uint8_t)(0.3 * 255.0 * g + 0.7 * c[k]);
            /* the 2x2 grid in grey */
            if (x == S / 2 || y == S / 2) px[0] = px[1] = px[2] = 96;
        }
}

static const char *const class_names[10] = {"tee", "trousers", "pullover", "dress", "coat",
                                             "sandal", "shirt", "sneaker", "bag", "boot"};

static int masks_pictures_cmd(int argc, char **argv) {
    const char *sub = "pictures", *model = NULL, *out = NULL, *data = NULL;
    long long n_sc = 6, first = 0, threads = 0;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn vision masks pictures --model DIR --out FILE.png [--scenes N] [--first I]\n\n"
                   "Draws N test scenes from scene I on (default 6 from 0), one row each: the scene, the\n"
                   "true masks and the predicted ones (the class colours over the scene; background\n"
                   "dark), and with --sag models the SAG map (scaled from its smallest to its largest\n"
                   "value per scene, black-red-yellow-white). FILE.txt names the rows: the classes and\n"
                   "each item's IoU.\n");
            return 0;
        }
        i++;
        if (!v) {
            fprintf(stderr, "attn vision masks pictures: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--scenes")) rc = opt_int(sub, a, v, 1, 64, &n_sc);
        else if (!strcmp(a, "--first")) rc = opt_int(sub, a, v, 0, MAX_SCENES - 64, &first);
        else if (!strcmp(a, "--threads")) rc = opt_int(sub, a, v, 0, cli_max_threads(), &threads);
        else {
            fprintf(stderr, "attn vision masks pictures: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!model || !out) {
        fprintf(stderr, "attn vision masks pictures: --model DIR and --out FILE.png are required\n");
        return 2;
    }
    attn_params *ps = NULL;
    attn_mask_head *m = NULL;
    attn_ctx *ctx = NULL;
    attn_scenes te;
    memset(&te, 0, sizeof te);
    mask_data d;
    int have_data = 0;
    run_info r;
    float *img = NULL;
    int32_t *tgt = NULL, *pred = NULL;
    int8_t *mask = NULL;
    double *heat = NULL;
    uint8_t *cv = NULL;
    FILE *txt = NULL;
    rc = 1;
    if (load_run(model, &ps, &m, &r)) goto done;
    if (mask_data_load(data ? data : r.data, &d)) goto done;
    have_data = 1;
    if (make_scenes(&d, ATTN_SCENES_TEST, first + n_sc, TEST_SEED, &te)) goto done;
    if (new_eval_ctx(&ctx, threads)) goto done;
    const int B = (int)n_sc, S = SIDE * PIC_SCALE, pw = S + PIC_GAP, np = m->cfg.sag ? 4 : 3;
    const int cw = np * pw - PIC_GAP, ch = B * pw - PIC_GAP;
    img = malloc((size_t)B * PIX * sizeof *img);
    tgt = malloc((size_t)B * PIX * sizeof *tgt);
    pred = malloc((size_t)PIX * sizeof *pred);
    mask = malloc((size_t)B * PIX);
    heat = malloc((size_t)PIX * sizeof *heat);
    cv = malloc((size_t)cw * (size_t)ch * 3);
    if (!img || !tgt || !pred || !mask || !heat || !cv) {
        fprintf(stderr, "attn vision masks pictures: out of memory\n");
        goto done;
    }
    memset(cv, 255, (size_t)cw * (size_t)ch * 3);
    for (int b = 0; b < B; b++) load_scene(&te, first + b, (int)r.threshold, img + b * PIX, tgt + b * PIX, mask + b * PIX);
    attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, 4, (int64_t[]){B, 1, SIDE, SIDE}, img);
    attn_tensor *sm = NULL;
    attn_tensor *lg = attn_mask_head_forward(ctx, m, x, &sm);
    if (!lg) {
        fprintf(stderr, "attn vision masks pictures: %s\n", attn_ctx_error(ctx));
        goto done;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s.txt", out);
    txt = fopen(path, "w");
    if (!txt) {
        fprintf(stderr, "attn vision masks pictures: cannot write %s: %s\n", path, strerror(errno));
        goto done;
    }
    fprintf(txt, "model %s (SAG %s); panels: scene, true masks, predicted masks%s\n", model, m->cfg.sag ? "on" : "off",
            m->cfg.sag ? ", SAG map (min..max per scene)" : "");
    const int64_t K1 = lg->shape[1];
    for (int b = 0; b < B; b++) {
        const float *l = attn_f32(lg) + (size_t)b * (size_t)K1 * PIX;
        for (int p = 0; p < PIX; p++) {
            int best = 0;
            for (int k = 1; k < K1; k++)
                if (l[k * PIX + p] > l[best * PIX + p]) best = k;
            pred[p] = best;
        }
        const int y0 = b * pw;
        panel(cv, cw, 0, y0, img + b * PIX, NULL, NULL);
        panel(cv, cw, pw, y0, img + b * PIX, tgt + b * PIX, NULL);
        panel(cv, cw, 2 * pw, y0, img + b * PIX, pred, NULL);
        double ic[ATTN_SCENE_CELLS], ifg[ATTN_SCENE_CELLS];
        attn_mask_scene_iou(l, K1, &te.scenes[first + b], mask + b * PIX, ic, ifg);
        fprintf(txt, "row %d: test scene %lld:", b, first + b);
        for (int c = 0; c < ATTN_SCENE_CELLS; c++) {
            const int k = te.scenes[first + b].cls[c];
            if (k >= 0) fprintf(txt, " cell %d %s (IoU %.3f, class-agnostic %.3f);", c, class_names[k], ic[c], ifg[c]);
        }
        if (sm) {
            const int mh = (int)sm->shape[2], mw = (int)sm->shape[3];
            const float *s = attn_f32(sm) + (size_t)b * (size_t)(mh * mw);
            double lo = s[0], hi = s[0];
            for (int i = 1; i < mh * mw; i++) {
                if (s[i] < lo) lo = s[i];
                if (s[i] > hi) hi = s[i];
            }
            for (int p = 0; p < PIX; p++) {
                const double v = s[(p / SIDE) * mh / SIDE * mw + (p % SIDE) * mw / SIDE];
                heat[p] = hi > lo ? (v - lo) / (hi - lo) : 0.0;
            }
            panel(cv, cw, 3 * pw, y0, img + b * PIX, NULL, heat);
            fprintf(txt, " SAG map %.3f..%.3f", lo, hi);
        }
        fputc('\n', txt);
    }
    if (attn_png_write(out, cv, cw, ch, 3) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot write the picture");
        goto done;
    }
    printf("wrote %s (%d test scenes) and %s\n", out, B, path);
    rc = 0;
done:
    if (txt) fclose(txt);
    free(img);
    free(tgt);
    free(pred);
    free(mask);
    free(heat);
    free(cv);
    attn_scenes_free(&te);
    if (have_data) mask_data_free(&d);
    attn_ctx_free(ctx);
    attn_mask_head_free(m);
    attn_params_free(ps);
    return rc;
}

int cmd_vision_masks(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: attn vision masks train|eval|pictures [options]   (attn vision masks train --help, ...)\n\n"
                   "  train     train the mask network (with or without the SAG map) on the captioning scenes\n"
                   "  eval      mean item IoU of a trained model on the test scenes\n"
                   "  pictures  PNG of test scenes with the true and predicted masks and the SAG map\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return masks_train_cmd(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval")) return masks_eval_cmd(argc - 1, argv + 1);
    if (!strcmp(argv[1], "pictures")) return masks_pictures_cmd(argc - 1, argv + 1);
    fprintf(stderr, "attn vision masks: unknown subcommand '%s' (train, eval or pictures)\n", argv[1]);
    return 2;
}
