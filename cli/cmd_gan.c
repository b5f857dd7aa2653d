/* cmd_gan.c: `attn gan train|sample|fid`: the small SAGAN of
 * include/attn/gan.h on Fashion-MNIST (data/fashion-mnist), with or without
 * its self-attention blocks. docs/gan.md is the manual.
 *
 *   attn gan train  --out DIR [--attention 0|1] [model and schedule options]
 *   attn gan sample --model DIR --out FILE.png [--seed N] [--rows N]
 *   attn gan fid    --model DIR --classifier DIR [--n N] [--seed N]
 *
 * A model directory holds model.safetensors (an attn checkpoint of the
 * generator: parameters, spectral-norm vectors, batchnorm statistics, its
 * Adam state, and in the metadata the configuration (gan.*) and the run's
 * settings (run.*)), discriminator.safetensors (the same for the
 * discriminator), train.jsonl, loss.svg and samples.png (the generator's
 * grid at the last evaluation).
 *
 * Training runs on the shared driver (train_driver.h) with the family's own
 * step (train_family.step): each step is one discriminator update (hinge
 * loss on a real batch and a generated one, Adam at --lr-d) and one
 * generator update (hinge loss, Adam at --lr-g), as in the paper; the two
 * checkpoints are written by the family's save hook.
 *
 * The FID of `attn gan fid` is computed on the pooled features of attn's own
 * Fashion-MNIST classifier (cnn.h, --classifier DIR), NOT on Inception-v3's:
 * its values compare attn's generators with each other only.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "commands.h"
#include "train_driver.h"

#define CMD "gan"
#define CELL ATTN_GAN_SIZE
#define GAP 2

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

/* ---- data ------------------------------------------------------------------------------ */

/* Images of an IDX file as bytes [n, 28, 28]. 0 or 1 (message printed). */
static int load_images(const char *data, const char *file, attn_idx *out) {
    char path[4096];
    dir_file(path, sizeof path, data, file);
    if (attn_idx_load(path, out) != ATTN_OK) {
        fprintf(stderr, "attn gan: cannot read %s: %s (the Fashion-MNIST IDX files: "
                        "scripts/get_fashion_mnist.sh or --data DIR)\n", path, attn_last_error());
        return 1;
    }
    if (out->ndim != 3 || out->dims[1] != CELL || out->dims[2] != CELL || out->dims[0] < 2) {
        fprintf(stderr, "attn gan: %s holds %lld items of %lld bytes, expected 28 x 28 images\n", path,
                (long long)out->dims[0], (long long)out->item_size);
        attn_idx_free(out);
        return 1;
    }
    return 0;
}

/* Image i of imgs as floats in [-1, 1] (the generator's range). */
static void image_pm1(const attn_idx *imgs, int64_t i, float *dst) {
    const uint8_t *p = imgs->data + i * imgs->item_size;
    for (int64_t k = 0; k < imgs->item_size; k++) dst[k] = (float)p[k] / 127.5f - 1.0f;
}

/* A generator value in [-1, 1] as a byte (the images' own quantisation). */
static uint8_t to_byte(float x) {
    float v = (x + 1.0f) * 127.5f;
    if (!(v > 0.0f)) v = 0.0f; /* NaN too */
    if (v > 255.0f) v = 255.0f;
    return (uint8_t)lrintf(v);
}

/* The random stream of step `step` (latents, batch indices): a resumed run
 * replays it. */
static void step_rng(attn_rng *rng, long long seed, int64_t step, uint64_t salt) {
    attn_rng_init(rng, (uint64_t)seed * 0x9E3779B97F4A7C15ull + (uint64_t)step * 0xD1B54A32D192ED03ull + salt);
}

static void fill_normal(float *z, int64_t n, attn_rng *rng) {
    for (int64_t i = 0; i < n; i++) z[i] = attn_rng_next_normal(rng);
}

/* ---- pictures ------------------------------------------------------------------------- */

/* Writes the images x [n, 1, 28, 28] (values in [-1, 1]) as a grid of
 * `cols` columns, each pixel drawn scale x scale, 2-pixel grey gaps.
 * 0 or 1 (message printed). */
static int write_grid(const char *path, const float *x, int64_t n, int cols, int scale) {
    const int rows = (int)((n + cols - 1) / cols);
    const int w = (cols * (CELL + GAP) + GAP) * scale, h = (rows * (CELL + GAP) + GAP) * scale;
    uint8_t *px = malloc((size_t)w * (size_t)h);
    if (!px) {
        fprintf(stderr, "attn gan: out of memory for a %d x %d picture\n", w, h);
        return 1;
    }
    memset(px, 128, (size_t)w * (size_t)h);
    for (int64_t i = 0; i < n; i++) {
        const int r0 = (int)(i / cols) * (CELL + GAP) + GAP, c0 = (int)(i % cols) * (CELL + GAP) + GAP;
        for (int y = 0; y < CELL; y++)
            for (int xx = 0; xx < CELL; xx++) {
                const uint8_t b = to_byte(x[i * CELL * CELL + y * CELL + xx]);
                for (int dy = 0; dy < scale; dy++)
                    for (int dx = 0; dx < scale; dx++)
                        px[(size_t)((r0 + y) * scale + dy) * (size_t)w + (size_t)((c0 + xx) * scale + dx)] = b;
            }
    }
    int rc = 0;
    if (attn_png_write(path, px, w, h, 1) != ATTN_OK) rc = cli_fail(CMD, "cannot write the picture");
    free(px);
    return rc;
}

/* n generated images [n, 784] in [-1, 1] from latents of stream `seed`, in
 * evaluation mode, batch B at a time. 0 or 1 (message printed). */
static int generate(attn_ctx *ctx, const attn_gan *g, int64_t n, int64_t B, long long seed, float *out) {
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    attn_rng rng;
    attn_rng_init(&rng, (uint64_t)seed);
    int rc = 0;
    for (int64_t i = 0; i < n && rc == 0; i += B) {
        const int64_t b = B < n - i ? B : n - i, zs[2] = {b, g->cfg.z_dim};
        attn_ctx_reset(ctx);
        attn_tensor *z = attn_tensor_new(ctx, ATTN_F32, 2, zs);
        if (z) fill_normal(attn_f32(z), b * g->cfg.z_dim, &rng);
        attn_tensor *x = attn_gan_generate(ctx, g, z, NULL);
        if (!x) {
            fprintf(stderr, "attn gan: generating: %s\n", attn_ctx_error(ctx));
            rc = 1;
            break;
        }
        memcpy(out + i * CELL * CELL, attn_f32(x), (size_t)(b * CELL * CELL) * sizeof(float));
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    return rc;
}

/* ---- the run: settings kept in the checkpoints' metadata -------------------------------- */

typedef struct run_info {
    char data[1024];
    long long batch, total_steps, seed, step;
    double lr_d, lr_g, beta1, beta2, train_seconds;
} run_info;

#define RUN_META 9
typedef struct run_meta {
    attn_kv kv[ATTN_GAN_META + RUN_META];
    char gbuf[ATTN_GAN_META][32];
    char vbuf[RUN_META][1100];
    int n;
} run_meta;

static void run_meta_build(run_meta *m, const attn_gan *g, const run_info *r) {
    attn_gan_config_meta(&g->cfg, m->kv, m->gbuf);
    m->n = ATTN_GAN_META;
    static const char *const keys[RUN_META] = {"run.model", "run.data",  "run.batch", "run.steps",
                                               "run.seed",  "run.lr_d",  "run.lr_g",  "run.betas",
                                               "run.train_seconds"};
    snprintf(m->vbuf[0], 1100, "attn-gan");
    snprintf(m->vbuf[1], 1100, "%s", r->data);
    snprintf(m->vbuf[2], 1100, "%lld", r->batch);
    snprintf(m->vbuf[3], 1100, "%lld", r->total_steps);
    snprintf(m->vbuf[4], 1100, "%lld", r->seed);
    snprintf(m->vbuf[5], 1100, "%.9g", r->lr_d);
    snprintf(m->vbuf[6], 1100, "%.9g", r->lr_g);
    snprintf(m->vbuf[7], 1100, "%.9g,%.9g", r->beta1, r->beta2);
    snprintf(m->vbuf[8], 1100, "%.3f", r->train_seconds);
    for (int i = 0; i < RUN_META; i++) {
        m->kv[m->n].key = keys[i];
        m->kv[m->n].value = m->vbuf[i];
        m->n++;
    }
}

/* Reads the configuration and (r not NULL) the run's settings of a
 * checkpoint of attn gan train; 0 or 1 (message printed). */
static int meta_read(const char *path, attn_gan_config *cfg, run_info *r) {
    attn_safetensors *f = NULL;
    if (attn_safetensors_open(&f, path) != ATTN_OK) return cli_fail(CMD, "cannot open the checkpoint");
    if (cli_check_family("attn gan", f, path, "run.model", "attn-gan", "attn gan train")) {
        attn_safetensors_close(f);
        return 1;
    }
    meta_reader m = {f, path, {0}};
    cfg->z_dim = meta_ll(&m, "gan.z_dim", 1, 4096);
    cfg->g_ch = meta_ll(&m, "gan.g_ch", 8, 4096);
    cfg->d_ch = meta_ll(&m, "gan.d_ch", 8, 4096);
    cfg->attention = (int)meta_ll(&m, "gan.attention", 0, 1);
    if (r) {
        snprintf(r->data, sizeof r->data, "%s", meta_str(&m, "run.data"));
        r->batch = meta_ll(&m, "run.batch", 1, 1 << 16);
        r->total_steps = meta_ll(&m, "run.steps", 1, 1ll << 40);
        r->seed = meta_ll(&m, "run.seed", 0, 1ll << 62);
        r->lr_d = meta_real(&m, "run.lr_d", 0.0, 10.0);
        r->lr_g = meta_real(&m, "run.lr_g", 0.0, 10.0);
        const char *betas = meta_str(&m, "run.betas");
        if (!m.err[0] && (sscanf(betas, "%lf,%lf", &r->beta1, &r->beta2) != 2 || !(r->beta1 >= 0.0) ||
                          !(r->beta1 < 1.0) || !(r->beta2 >= 0.0) || !(r->beta2 < 1.0)))
            snprintf(m.err, sizeof m.err, "%s: run.betas '%s' is not two numbers in [0, 1)", path, betas);
        r->train_seconds = meta_real(&m, "run.train_seconds", 0.0, 1e12);
        r->step = meta_ll(&m, "step", 0, 1ll << 40);
    }
    attn_safetensors_close(f);
    if (m.err[0]) {
        fprintf(stderr, "attn gan: %s\n", m.err);
        return 1;
    }
    return 0;
}

/* The generator of the run in dir (model.safetensors), the discriminator
 * left as initialised. 0 or 1 (message printed). */
static int load_generator(const char *dir, attn_gan *g) {
    char path[4096];
    dir_file(path, sizeof path, dir, "model.safetensors");
    attn_gan_config cfg;
    if (meta_read(path, &cfg, NULL)) return 1;
    attn_rng rng;
    attn_rng_init(&rng, 0);
    if (attn_gan_init(g, &cfg, &rng) != ATTN_OK) return cli_fail(CMD, "cannot build the model of the checkpoint");
    if (attn_checkpoint_load(path, g->gps, NULL, NULL) != ATTN_OK) {
        attn_gan_free(g);
        return cli_fail(CMD, "cannot load the generator");
    }
    return 0;
}

/* ---- train: the GAN family of the training driver ------------------------------------- */

static void train_usage(FILE *f) {
    fprintf(f,
        "usage: attn gan train --out DIR [options]\n\n"
        "Trains a small SAGAN (spectral norm in both nets, hinge loss, Adam with two learning\n"
        "rates, one discriminator step per generator step) on Fashion-MNIST's training images.\n"
        "Each evaluation logs the discriminator's hinge loss on held-out test images and fresh\n"
        "samples and draws DIR/samples.png (8 x 8 samples of fixed latents).\n\n"
        "model and data (fixed by the checkpoint: refused with --resume)\n"
        "  --attention 0|1        the SAGAN block at 14 x 14 in both nets (default 1; 0: the baseline)\n"
        "  --z-dim N              latent size (default 64)\n"
        "  --g-ch N               generator channels at 14 x 14 (default 32)\n"
        "  --d-ch N               discriminator channels at 14 x 14 (default 32)\n"
        "  --data DIR             the Fashion-MNIST IDX files (default data/fashion-mnist)\n"
        "  --seed N               initialisation, batches, latents (default 1)\n"
        "schedule (with --resume: applied and printed)\n"
        "  --steps N              steps, each a D and a G update (default 1500)\n"
        "  --time-budget S        stop after S seconds of training (final evaluation and checkpoint)\n"
        "  --batch N              images per update (default 32)\n"
        "  --lr-d X               discriminator's Adam rate (default 4e-4, the paper's TTUR)\n"
        "  --lr-g X               generator's Adam rate (default 1e-4)\n"
        "  --beta1 X, --beta2 X   Adam's betas for both (default 0 and 0.9, the paper's)\n"
        "run\n"
        "  --eval-every N         held-out D loss, samples.png and a checkpoint every N steps\n"
        "                         (default 500; 0: end only)\n"
        "  --eval-n N             held-out images (and as many samples) per evaluation (default 500)\n"
        "  --log-every N          a JSONL line every N steps (default 50)\n"
        "  --threads N            threads for the ops (default: all)\n"
        "  --arena-mb N           context arena in MiB (default 512)\n"
        "  --resume               continue DIR's run: same nets, optimizer states and batches\n"
        "  --force                overwrite the run DIR holds (refused without it)\n"
        "  --quiet                no progress line\n\n"
        "The learning rates are constant (the paper's): --lr, --min-lr, --warmup, --weight-decay\n"
        "and --epochs are refused. Ctrl-C (SIGINT) or SIGTERM finishes the step, writes both\n"
        "checkpoints and exits 130.\n");
}

typedef struct gan_train {
    run_info r;
    attn_gan g;
    attn_optim *opt_d, *opt_g;
    attn_idx train, test;
    int64_t B, eval_n;
    float *xbuf, *zbuf;
    int *d_trainable; /* requires_grad of the discriminator's tensors */
    run_meta meta;
} gan_train;

static attn_tensor *real_batch(gan_train *t, attn_ctx *ctx, attn_rng *rng) {
    const int64_t B = t->B, xs[4] = {B, 1, CELL, CELL};
    for (int64_t i = 0; i < B; i++)
        image_pm1(&t->train, attn_rng_next_below(rng, (uint32_t)t->train.dims[0]), t->xbuf + i * CELL * CELL);
    return attn_tensor_from(ctx, ATTN_F32, 4, xs, t->xbuf);
}

static attn_tensor *latents(gan_train *t, attn_ctx *ctx, attn_rng *rng, int64_t B) {
    const int64_t zs[2] = {B, t->g.cfg.z_dim};
    fill_normal(t->zbuf, B * t->g.cfg.z_dim, rng);
    return attn_tensor_from(ctx, ATTN_F32, 2, zs, t->zbuf);
}

static int step_fail(train_run *run, int64_t step, const char *what) {
    const char *e = attn_ctx_error(run->ctx);
    if (run->progress.tty && !run->quiet) fputc('\n', stderr);
    fprintf(stderr, "%s: step %lld: %s: %s\n", run->prog, (long long)step, what, e && e[0] ? e : attn_last_error());
    if (attn_ctx_status(run->ctx) == ATTN_ERR_OOM)
        fprintf(stderr, "hint: raise --arena-mb (now %lld) or lower --batch\n", run->arena_mb);
    return 1;
}

static void set_d_trainable(gan_train *t, int on) {
    const int n = attn_params_count(t->g.dps);
    for (int i = 0; i < n; i++) attn_params_at(t->g.dps, i)->requires_grad = on ? t->d_trainable[i] : 0;
}

/* One update of the parameters of ps by opt from the loss: zero, backward,
 * the gradient norm (not clipped), finite check, step. */
static int update(train_run *run, int64_t step, attn_params *ps, attn_optim *opt, attn_tensor *loss, float lr,
                  const char *who, float *norm) {
    attn_params_zero_grad(ps);
    if (attn_backward(run->ctx, loss) != ATTN_OK) {
        fprintf(stderr, "%s: step %lld: %s backward: %s\n", run->prog, (long long)step, who, attn_last_error());
        return 1;
    }
    *norm = attn_clip_grad_norm(ps, FLT_MAX);
    const double l = attn_f32(loss)[0];
    if (!isfinite(*norm) || !isfinite(l)) {
        fprintf(stderr, "%s: step %lld: %s loss %g, gradient norm %g: not finite; lower --lr-d / --lr-g\n",
                run->prog, (long long)step, who, l, (double)*norm);
        return 1;
    }
    if (attn_optim_step(opt, lr) != ATTN_OK) {
        fprintf(stderr, "%s: step %lld: %s optimizer step failed: %s\n", run->prog, (long long)step, who,
                attn_last_error());
        return 1;
    }
    return 0;
}

/* The paper's step: one discriminator update on a real batch and a batch of
 * G's samples (generated without a tape, then detached), then one generator
 * update through the discriminator (whose parameters take no gradient). */
static int gan_step(void *self, train_run *run, int64_t step, double elapsed, train_step_out *r) {
    gan_train *t = self;
    attn_ctx *ctx = run->ctx;
    const int64_t B = t->B, xs[4] = {B, 1, CELL, CELL};
    attn_rng rng;
    step_rng(&rng, t->r.seed, step, 0);
    /* discriminator */
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *fake = attn_gan_generate(ctx, &t->g, latents(t, ctx, &rng, B), NULL);
    attn_ctx_set_grad_enabled(ctx, 1);
    attn_tensor *xf = fake ? attn_tensor_from(ctx, ATTN_F32, 4, xs, fake->data) : NULL;
    attn_tensor *ld = attn_gan_d_hinge_loss(ctx, attn_gan_discriminate(ctx, &t->g, real_batch(t, ctx, &rng)),
                                            attn_gan_discriminate(ctx, &t->g, xf));
    if (!ld) return step_fail(run, step, "discriminator");
    float norm_d = 0.0f, norm_g = 0.0f;
    const double loss_d = attn_f32(ld)[0];
    if (update(run, step, t->g.dps, t->opt_d, ld, (float)t->r.lr_d, "discriminator", &norm_d)) return 1;
    /* generator */
    attn_ctx_reset(ctx);
    set_d_trainable(t, 0);
    attn_tensor *lg = attn_gan_g_hinge_loss(
        ctx, attn_gan_discriminate(ctx, &t->g, attn_gan_generate(ctx, &t->g, latents(t, ctx, &rng, B), NULL)));
    int rc = lg ? update(run, step, t->g.gps, t->opt_g, lg, (float)t->r.lr_g, "generator", &norm_g)
                : step_fail(run, step, "generator");
    set_d_trainable(t, 1);
    if (rc) return 1;
    (void)elapsed;
    r->loss = loss_d;
    r->grad_norm = norm_d;
    r->lr = (float)t->r.lr_d;
    r->c.items = (double)B;
    r->c.tokens = (double)B;
    r->c.metric = attn_f32(lg)[0];
    return 0;
}

static float gamma_of(const attn_map_attention *m) { return m->gamma ? attn_f32(m->gamma)[0] : 0.0f; }

/* The discriminator's hinge loss on eval_n held-out test images and as
 * many fresh samples (evaluation mode), and samples.png. */
static int gan_evaluate(void *self, train_run *run, int last, double *seconds) {
    gan_train *t = self;
    attn_ctx *ctx = run->ctx;
    const double t0 = attn_monotonic_s();
    const int64_t n = t->eval_n < t->test.dims[0] ? t->eval_n : t->test.dims[0], B = 100;
    float *fake = malloc((size_t)(n > 64 ? n : 64) * CELL * CELL * sizeof *fake);
    if (!fake) {
        fprintf(stderr, "%s: out of memory\n", run->prog);
        return 1;
    }
    int rc = generate(ctx, &t->g, n, B, t->r.seed + 7777, fake);
    double sum_real = 0.0, sum_fake = 0.0, mean_real = 0.0, mean_fake = 0.0;
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    for (int64_t i = 0; i < n && rc == 0; i += B) {
        const int64_t b = B < n - i ? B : n - i, xs[4] = {b, 1, CELL, CELL};
        attn_ctx_reset(ctx);
        for (int64_t k = 0; k < b; k++) image_pm1(&t->test, i + k, t->xbuf + k * CELL * CELL);
        attn_tensor *sr = attn_gan_discriminate(ctx, &t->g, attn_tensor_from(ctx, ATTN_F32, 4, xs, t->xbuf));
        attn_tensor *sf = attn_gan_discriminate(ctx, &t->g, attn_tensor_from(ctx, ATTN_F32, 4, xs, fake + i * CELL * CELL));
        if (!sr || !sf) {
            fprintf(stderr, "%s: evaluation: %s\n", run->prog, attn_ctx_error(ctx));
            rc = 1;
            break;
        }
        for (int64_t k = 0; k < b; k++) {
            const double a = attn_f32(sr)[k], c = attn_f32(sf)[k];
            sum_real += a < 1.0 ? 1.0 - a : 0.0;
            sum_fake += c > -1.0 ? 1.0 + c : 0.0;
            mean_real += a;
            mean_fake += c;
        }
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 1);
    attn_ctx_set_training(ctx, 1);
    char path[4096];
    dir_file(path, sizeof path, run->out, "samples.png");
    if (rc == 0) rc = generate(ctx, &t->g, 64, 64, t->r.seed + 4242, fake);
    if (rc == 0) rc = write_grid(path, fake, 64, 8, 2);
    free(fake);
    if (rc) return 1;
    const double vloss = (sum_real + sum_fake) / (double)n;
    *seconds = attn_monotonic_s() - t0;
    const attn_json_field f[] = {
        attn_json_str("event", "eval"), attn_json_int("step", run->step), attn_json_num("valid_loss", vloss),
        attn_json_num("d_real", mean_real / (double)n), attn_json_num("d_fake", mean_fake / (double)n),
        attn_json_num("g_gamma", gamma_of(&t->g.g_attn)), attn_json_num("d_gamma", gamma_of(&t->g.d_attn)),
        attn_json_int("images", n), attn_json_bool("full", last), attn_json_num("seconds", *seconds),
    };
    if (train_log(run, f, (int)(sizeof f / sizeof f[0]))) return 1;
    if (!run->quiet || last) {
        if (run->progress.tty && !run->quiet) fputc('\n', stderr);
        fprintf(last ? stdout : stderr,
                "step %lld: held-out D hinge loss %.4f (mean D: real %.3f, samples %.3f; %lld images), "
                "gamma G %.4f D %.4f; %s\n",
                (long long)run->step, vloss, mean_real / (double)n, mean_fake / (double)n, (long long)n,
                (double)gamma_of(&t->g.g_attn), (double)gamma_of(&t->g.d_attn), path);
    }
    return 0;
}

static void gan_meta(void *self, train_run *run, double train_seconds_, const attn_kv **kv, int *n) {
    gan_train *t = self;
    t->r.total_steps = run->total_steps;
    t->r.train_seconds = train_seconds_;
    run_meta_build(&t->meta, &t->g, &t->r);
    *kv = t->meta.kv;
    *n = t->meta.n;
}

/* The discriminator first, then model.safetensors (the generator): a run
 * cut between the two writes has a discriminator one checkpoint ahead,
 * which --resume detects by the steps. */
static int gan_save(void *self, train_run *run, const attn_kv *kv, int n) {
    gan_train *t = self;
    char path[4096];
    dir_file(path, sizeof path, run->out, "discriminator.safetensors");
    if (attn_checkpoint_save(path, t->g.dps, t->opt_d, run->step, kv, n) != ATTN_OK) {
        fprintf(stderr, "%s: cannot save the discriminator: %s\n", run->prog, attn_last_error());
        return 1;
    }
    dir_file(path, sizeof path, run->out, "model.safetensors");
    if (attn_checkpoint_save(path, t->g.gps, t->opt_g, run->step, kv, n) != ATTN_OK) {
        fprintf(stderr, "%s: cannot save the checkpoint: %s\n", run->prog, attn_last_error());
        return 1;
    }
    return 0;
}

static int gan_finish(void *self, train_run *run, double train_s, double train_cpu) {
    gan_train *t = self;
    const double steps = (double)(run->step - run->start);
    const double sps = steps / (train_s > 1e-9 ? train_s : 1e-9);
    printf("trained %lld steps (batch %lld) in %.1f s: %.2f steps/s, %.2f per CPU second (evaluation %.1f s "
           "apart)%s\n",
           (long long)(run->step - run->start), (long long)t->B, train_s, sps,
           steps / (train_cpu > 1e-9 ? train_cpu : 1e-9), run->eval_seconds,
           !strcmp(run->stopped, "time_budget") ? "; stopped by the time budget" : "");
    const attn_json_field f[] = {attn_json_str("event", "end"), attn_json_int("step", run->step),
                                 attn_json_str("stopped", run->stopped), attn_json_num("train_seconds", train_s),
                                 attn_json_num("steps_per_s", sps), attn_json_num("train_cpu_seconds", train_cpu)};
    return train_log(run, f, (int)(sizeof f / sizeof f[0]));
}

static const train_family gan_family = {
    "img", "g_loss", "SAGAN hinge losses", "discriminator hinge loss", "valid (held-out images)", NULL,
    "discriminator.safetensors, train.jsonl, loss.svg, samples.png",
    NULL, NULL, gan_evaluate, gan_meta, gan_finish, NULL, gan_step, gan_save,
};

static int cmd_gan_train(int argc, char **argv) {
    const char *prog = "attn gan train", *sub = "train", *data = "data/fashion-mnist";
    long long z_dim = 64, g_ch = 32, d_ch = 32;
    double lr_d = -1.0, lr_g = -1.0, beta1 = -1.0, beta2 = -1.0;
    int attention = 1, rc = 0;
    train_opts o;
    train_opts_init(&o);
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--lr") || !strcmp(a, "--min-lr") || !strcmp(a, "--warmup") ||
            !strcmp(a, "--weight-decay") || !strcmp(a, "--epochs")) {
            fprintf(stderr, "%s: %s does not apply: the GAN trains at two constant learning rates "
                            "(--lr-d, --lr-g) for --steps steps\n", prog, a);
            return 2;
        }
        const int k = train_opt(prog, a, v, &o, &rc);
        if (k) {
            i += k - 1;
            continue;
        }
        if (!strcmp(a, "--attention")) {
            if (!v || (strcmp(v, "0") && strcmp(v, "1"))) {
                fprintf(stderr, "%s: --attention takes 0 or 1\n", prog);
                return 2;
            }
            attention = v[0] == '1';
            train_fixed(&o, a);
            i++;
            continue;
        }
        const int fixes = !strcmp(a, "--z-dim") || !strcmp(a, "--g-ch") || !strcmp(a, "--d-ch") ||
                          !strcmp(a, "--data");
        if (fixes) train_fixed(&o, a);
        i++;
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--z-dim")) rc = opt_int(sub, a, v, 1, 4096, &z_dim);
        else if (!strcmp(a, "--g-ch")) rc = opt_int(sub, a, v, 8, 4096, &g_ch);
        else if (!strcmp(a, "--d-ch")) rc = opt_int(sub, a, v, 8, 4096, &d_ch);
        else if (!strcmp(a, "--lr-d")) rc = opt_real(sub, a, v, 0.0, 10.0, &lr_d);
        else if (!strcmp(a, "--lr-g")) rc = opt_real(sub, a, v, 0.0, 10.0, &lr_g);
        else if (!strcmp(a, "--beta1")) rc = opt_real(sub, a, v, 0.0, 0.999999, &beta1);
        else if (!strcmp(a, "--beta2")) rc = opt_real(sub, a, v, 0.0, 0.999999, &beta2);
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
    if ((rc = train_opts_check(prog, &o))) return rc;
    if (g_ch % 2 || (attention && (g_ch % 8 || d_ch % 8))) {
        fprintf(stderr, "%s: --g-ch %lld, --d-ch %lld: the generator's channels must be even, and with "
                        "--attention 1 both must be multiples of 8 (C/8 query channels)\n", prog, g_ch, d_ch);
        return 2;
    }
    const char *out = o.out;
    const int resume = o.resume;
    if ((rc = train_dir_check(prog, &o))) return rc;

    gan_train t;
    memset(&t, 0, sizeof t);
    run_info *rp = &t.r;
    attn_ctx *ctx = NULL;
    train_run run;
    memset(&run, 0, sizeof run);
    rc = 1;
    char ckpt[4096], dpath[4096];
    dir_file(ckpt, sizeof ckpt, out, "model.safetensors");
    dir_file(dpath, sizeof dpath, out, "discriminator.safetensors");
    attn_gan_config cfg;
    if (resume) {
        if (meta_read(ckpt, &cfg, rp)) goto done;
        train_resume_ll("--steps", o.steps, &rp->total_steps);
        train_resume_ll("--batch", o.batch, &rp->batch);
        train_resume_real("--lr-d", lr_d, &rp->lr_d);
        train_resume_real("--lr-g", lr_g, &rp->lr_g);
        train_resume_real("--beta1", beta1, &rp->beta1);
        train_resume_real("--beta2", beta2, &rp->beta2);
    } else {
        attn_gan_config_default(&cfg);
        cfg.z_dim = z_dim;
        cfg.g_ch = g_ch;
        cfg.d_ch = d_ch;
        cfg.attention = attention;
        snprintf(rp->data, sizeof rp->data, "%s", data);
        rp->batch = o.batch > 0 ? o.batch : 32;
        rp->total_steps = o.steps > 0 ? o.steps : 1500;
        rp->seed = o.seed >= 0 ? o.seed : 1;
        rp->lr_d = lr_d >= 0 ? lr_d : 4e-4;
        rp->lr_g = lr_g >= 0 ? lr_g : 1e-4;
        rp->beta1 = beta1 >= 0 ? beta1 : 0.0;
        rp->beta2 = beta2 >= 0 ? beta2 : 0.9;
    }
    if (load_images(rp->data, "train-images-idx3-ubyte", &t.train) ||
        load_images(rp->data, "t10k-images-idx3-ubyte", &t.test))
        goto done;
    attn_rng rng;
    attn_rng_init(&rng, (uint64_t)rp->seed);
    if (attn_gan_init(&t.g, &cfg, &rng) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the model");
        goto done;
    }
    attn_optim_config oc = {0};
    oc.kind = ATTN_OPTIM_ADAM;
    oc.beta1 = (float)rp->beta1;
    oc.beta2 = (float)rp->beta2;
    oc.lr = (float)rp->lr_d;
    if (attn_optim_new(&t.opt_d, t.g.dps, &oc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the optimizers");
        goto done;
    }
    oc.lr = (float)rp->lr_g;
    if (attn_optim_new(&t.opt_g, t.g.gps, &oc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the optimizers");
        goto done;
    }
    int64_t step = 0;
    if (resume) {
        int64_t dstep = -1;
        if (attn_checkpoint_load(ckpt, t.g.gps, t.opt_g, &step) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot load the generator's checkpoint");
            goto done;
        }
        if (attn_checkpoint_load(dpath, t.g.dps, t.opt_d, &dstep) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot load the discriminator's checkpoint");
            goto done;
        }
        if (dstep != step) {
            fprintf(stderr, "%s: %s is at step %lld but %s at step %lld (a save was cut between the two); "
                            "the run cannot resume consistently: train anew with --force\n",
                    prog, dpath, (long long)dstep, ckpt, (long long)step);
            goto done;
        }
    } else if (cli_make_dir(out) != 0) {
        fprintf(stderr, "%s: cannot create the directory %s: %s\n", prog, out, strerror(errno));
        goto done;
    }
    const int nd = attn_params_count(t.g.dps);
    t.d_trainable = malloc((size_t)nd * sizeof *t.d_trainable);
    t.B = rp->batch;
    t.eval_n = o.eval_n > 0 ? o.eval_n : 500;
    t.xbuf = malloc((size_t)(t.B > 100 ? t.B : 100) * CELL * CELL * sizeof *t.xbuf);
    t.zbuf = malloc((size_t)(t.B * cfg.z_dim) * sizeof *t.zbuf);
    if (!t.d_trainable || !t.xbuf || !t.zbuf) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto done;
    }
    for (int i = 0; i < nd; i++) t.d_trainable[i] = attn_params_at(t.g.dps, i)->requires_grad;
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)(o.arena_mb > 0 ? o.arena_mb : 512) << 20;
    cc.n_threads = (int)(o.threads > 0 ? o.threads : 0);
    cc.seed = (uint64_t)rp->seed;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    run.prog = prog;
    run.out = out;
    run.fam = &gan_family;
    run.self = &t;
    run.ctx = ctx;
    run.ps = t.g.gps;
    run.opt = t.opt_g;
    run.step = step;
    run.total_steps = rp->total_steps;
    run.log_every = o.log_every > 0 ? o.log_every : 50;
    run.eval_every = o.eval_every >= 0 ? o.eval_every : 500;
    run.lr = rp->lr_d;
    run.time_budget = o.time_budget > 0 ? o.time_budget : 0.0;
    run.seconds_before = rp->train_seconds;
    run.arena_mb = (long long)(cc.arena_bytes >> 20);
    run.quiet = o.quiet;
    if (step >= rp->total_steps) {
        rc = train_loop(&run); /* says the run is complete */
        goto done;
    }
    if (train_log_open(&run, resume)) goto done;
    char desc[512];
    snprintf(desc, sizeof desc,
             "SAGAN%s: z %lld, G channels %lld (%lld parameters), D channels %lld (%lld parameters), spectral "
             "norm in both, hinge loss",
             cfg.attention ? "" : " without attention (baseline)", (long long)cfg.z_dim, (long long)cfg.g_ch,
             (long long)attn_params_numel(t.g.gps), (long long)cfg.d_ch, (long long)attn_params_numel(t.g.dps));
    printf("%s\n", desc);
    printf("data: %s: %lld training images, %lld test images (held out)\n", rp->data, (long long)t.train.dims[0],
           (long long)t.test.dims[0]);
    printf("schedule: %lld steps of batch %lld, each one D and one G update; Adam lr D %g, G %g, betas (%g, %g); "
           "threads %d\n",
           rp->total_steps, rp->batch, rp->lr_d, rp->lr_g, rp->beta1, rp->beta2, attn_ctx_threads(ctx));
    if (resume) printf("resuming %s at step %lld\n", out, (long long)step);
    fflush(stdout);
    {
        const attn_json_field f[] = {
            attn_json_str("event", resume ? "resume" : "start"), attn_json_int("step", step),
            attn_json_str("data", rp->data), attn_json_int("attention", cfg.attention),
            attn_json_int("g_parameters", attn_params_numel(t.g.gps)),
            attn_json_int("d_parameters", attn_params_numel(t.g.dps)), attn_json_int("total_steps", rp->total_steps),
            attn_json_int("batch", rp->batch), attn_json_num("lr_d", rp->lr_d), attn_json_num("lr_g", rp->lr_g),
            attn_json_int("threads", attn_ctx_threads(ctx)), attn_json_str("description", desc),
        };
        if (train_log(&run, f, (int)(sizeof f / sizeof f[0]))) goto done;
    }
    rc = train_loop(&run);
done:
    if (run.log) attn_jsonl_close(run.log);
    free(t.d_trainable);
    free(t.xbuf);
    free(t.zbuf);
    attn_idx_free(&t.train);
    attn_idx_free(&t.test);
    attn_ctx_free(ctx);
    attn_optim_free(t.opt_d);
    attn_optim_free(t.opt_g);
    attn_gan_free(&t.g);
    return rc;
}

/* ---- sample ------------------------------------------------------------------------------ */

/* --html: the generator's attention map [1, 1, 196, 196] of the first sample
 * of stream seed (the first latent generate() draws: the grid's first
 * image, batchnorm in evaluation mode being per sample). */
static int gan_page(attn_ctx *ctx, const attn_gan *g, long long seed, const char *html, const char *weights,
                    const char *model) {
    if (!g->cfg.attention) {
        fprintf(stderr, "attn gan sample: the model in %s has no attention block: no --html page\n", model);
        return 1;
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    attn_rng rng;
    attn_rng_init(&rng, (uint64_t)seed);
    attn_tensor *z = attn_tensor_new(ctx, ATTN_F32, 2, (int64_t[]){1, g->cfg.z_dim});
    if (z) fill_normal(attn_f32(z), g->cfg.z_dim, &rng);
    attn_tensor *map = NULL;
    if (!z || !attn_gan_generate(ctx, g, z, &map) || !map || map->ndim != 4 || map->shape[2] != map->shape[3]) {
        fprintf(stderr, "attn gan sample: the attention map: %s\n", map ? "unexpected shape" : attn_ctx_error(ctx));
        return 1;
    }
    const int64_t N = map->shape[2];
    const int side = (int)lround(sqrt((double)N));
    char(*names)[16] = calloc((size_t)N, sizeof *names);
    const char **lab = calloc((size_t)N, sizeof *lab);
    int rc = 1;
    if (!names || !lab) {
        fprintf(stderr, "attn gan sample: out of memory\n");
    } else {
        for (int64_t i = 0; i < N; i++) {
            snprintf(names[i], sizeof names[i], "%d,%d", (int)(i / side % 1000), (int)(i % side % 1000));
            lab[i] = names[i];
        }
        char title[160], subt[256];
        snprintf(title, sizeof title, "SAGAN generator attention of sample 0 (seed %lld)", seed);
        snprintf(subt, sizeof subt, "%s: each of the %dx%d positions of the generator's feature map over all of them",
                 model, side, side);
        cli_page page = {0};
        if (cli_page_add_floats(&page, "gan sample", "generator attention", ATTN_EXPLORER_CROSS, attn_f32(map), 1, 1,
                                N, N, lab, lab, "query position", "key position", -1)) {
            cli_page_free(&page);
        } else {
            if (side * side == N) page.maps[0].col_grid = side;
            rc = cli_page_write(&page, "gan sample", html, weights, title, subt, 0);
        }
    }
    free(names);
    free(lab);
    return rc;
}

static int cmd_gan_sample(int argc, char **argv) {
    const char *prog = "attn gan sample", *sub = "sample", *model = NULL, *out = NULL, *html = NULL;
    const char *weights = NULL;
    long long seed = 1, rows = 8, scale = 2, threads = 0;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn gan sample --model DIR --out FILE.png [--seed N] [--rows N] [--scale N] "
                   "[--threads N]\n\n"
                   "Draws rows x rows samples of the generator in DIR (evaluation mode: batchnorm's\n"
                   "running statistics) from latents of stream --seed (default 1) as one grey grid\n"
                   "(default 8 x 8, each pixel drawn --scale x --scale, default 2).\n"
                   "  --html FILE      also the generator's attention map of the first sample (every\n"
                   "                   14x14 position over the others) as an attention explorer page\n"
                   "  --weights FILE   with --html: the weights at full precision as text\n");
            return 0;
        }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--html")) html = v;
        else if (!strcmp(a, "--weights")) weights = v;
        else if (!strcmp(a, "--seed")) rc = opt_int(sub, a, v, 0, 1ll << 62, &seed);
        else if (!strcmp(a, "--rows")) rc = opt_int(sub, a, v, 1, 32, &rows);
        else if (!strcmp(a, "--scale")) rc = opt_int(sub, a, v, 1, 8, &scale);
        else if (!strcmp(a, "--threads")) rc = opt_int(sub, a, v, 0, 1024, &threads);
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
    if (!model || !out) {
        fprintf(stderr, "%s: --model DIR and --out FILE.png are required\n", prog);
        return 2;
    }
    if (weights && !html) {
        fprintf(stderr, "%s: --weights goes with --html FILE\n", prog);
        return 2;
    }
    attn_gan g;
    if (load_generator(model, &g)) return 1;
    attn_ctx *ctx = NULL;
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)256 << 20;
    cc.n_threads = (int)threads;
    const int64_t n = rows * rows;
    float *x = malloc((size_t)n * CELL * CELL * sizeof *x);
    rc = 1;
    if (!x) fprintf(stderr, "%s: out of memory\n", prog);
    else if (attn_ctx_new(&ctx, &cc) != ATTN_OK) rc = cli_fail(CMD, "cannot create the context");
    else if (generate(ctx, &g, n, 64, seed, x) == 0 && write_grid(out, x, n, (int)rows, (int)scale) == 0) {
        printf("%lld samples written to %s\n", (long long)n, out);
        rc = html ? gan_page(ctx, &g, seed, html, weights, model) : 0;
    }
    free(x);
    attn_ctx_free(ctx);
    attn_gan_free(&g);
    return rc;
}

/* ---- fid ---------------------------------------------------------------------------------- */

/* Classifier features [n, F] of images [n, 784] in [-1, 1], quantised to
 * bytes first (as the data set's images are), in evaluation mode. 0 or 1. */
static int features(attn_ctx *ctx, const attn_cnn *cnn, const float *x, int64_t n, float *out, int64_t F) {
    const int64_t B = 100;
    float *buf = malloc((size_t)B * CELL * CELL * sizeof *buf);
    if (!buf) {
        fprintf(stderr, "attn gan fid: out of memory\n");
        return 1;
    }
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    int rc = 0;
    for (int64_t i = 0; i < n; i += B) {
        const int64_t b = B < n - i ? B : n - i, xs[4] = {b, 1, CELL, CELL};
        for (int64_t k = 0; k < b * CELL * CELL; k++) buf[k] = (float)to_byte(x[i * CELL * CELL + k]) / 255.0f;
        attn_ctx_reset(ctx);
        attn_tensor *p = attn_cnn_pooled(ctx, cnn, attn_tensor_from(ctx, ATTN_F32, 4, xs, buf));
        if (!p || p->ndim != 2 || p->shape[1] != F) {
            fprintf(stderr, "attn gan fid: classifier features: %s\n", p ? "unexpected shape" : attn_ctx_error(ctx));
            rc = 1;
            break;
        }
        memcpy(out + i * F, attn_f32(p), (size_t)(b * F) * sizeof(float));
    }
    attn_ctx_reset(ctx);
    free(buf);
    return rc;
}

static int cmd_gan_fid(int argc, char **argv) {
    const char *prog = "attn gan fid", *sub = "fid", *model = NULL, *classifier = NULL;
    const char *data = "data/fashion-mnist";
    long long n = 5000, seed = 12345, threads = 0;
    int rc = 0, real = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn gan fid (--model DIR | --real-train) --classifier DIR [--n N] [--seed N]\n"
                   "                    [--data DIR] [--threads N]\n\n"
                   "The Frechet distance between the Gaussians of the classifier's pooled features of\n"
                   "--n samples of the generator in DIR (default 5000, latents of stream --seed) and of\n"
                   "the 10,000 Fashion-MNIST test images. With --real-train, --n training images take\n"
                   "the samples' place: the floor a perfect generator would reach at that n.\n\n"
                   "The classifier is attn's own Fashion-MNIST CNN (DIR/model.safetensors of attn's\n"
                   "classifier, cnn.h), NOT Inception-v3: the values compare attn's generators with\n"
                   "each other, not with published FIDs.\n");
            return 0;
        }
        if (!strcmp(a, "--real-train")) {
            real = 1;
            continue;
        }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--classifier")) classifier = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--n")) rc = opt_int(sub, a, v, 2, 1000000, &n);
        else if (!strcmp(a, "--seed")) rc = opt_int(sub, a, v, 0, 1ll << 62, &seed);
        else if (!strcmp(a, "--threads")) rc = opt_int(sub, a, v, 0, 1024, &threads);
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
    if (!classifier || (!model == !real)) {
        fprintf(stderr, "%s: --classifier DIR and one of --model DIR or --real-train are required\n", prog);
        return 2;
    }
    attn_gan g;
    memset(&g, 0, sizeof g);
    attn_params *cps = NULL;
    attn_cnn *cnn = NULL;
    attn_ctx *ctx = NULL;
    attn_idx test, train;
    memset(&test, 0, sizeof test);
    memset(&train, 0, sizeof train);
    float *xs = NULL, *xt = NULL, *fs = NULL, *ft = NULL;
    char cpath[4096];
    dir_file(cpath, sizeof cpath, classifier, "model.safetensors");
    rc = 1;
    if (model && load_generator(model, &g)) goto done;
    if (attn_params_new(&cps) != ATTN_OK || attn_cnn_load(cpath, cps, &cnn) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot load the classifier");
        goto done;
    }
    const int64_t F = cnn->cfg.widths[cnn->cfg.n_stages - 1];
    if (cnn->cfg.in_channels != 1 || F > ATTN_FID_MAX_DIM) {
        fprintf(stderr, "%s: %s takes %lld input channels and gives %lld features; expected a grey-image "
                        "classifier with at most %d\n", prog, cpath, (long long)cnn->cfg.in_channels,
                (long long)F, ATTN_FID_MAX_DIM);
        goto done;
    }
    if (load_images(data, "t10k-images-idx3-ubyte", &test)) goto done;
    if (real && load_images(data, "train-images-idx3-ubyte", &train)) goto done;
    if (real && n > train.dims[0]) {
        fprintf(stderr, "%s: --n %lld with --real-train: the training set holds %lld images\n", prog, n,
                (long long)train.dims[0]);
        goto done;
    }
    const int64_t nt = test.dims[0];
    xs = malloc((size_t)n * CELL * CELL * sizeof *xs);
    xt = malloc((size_t)nt * CELL * CELL * sizeof *xt);
    fs = malloc((size_t)(n * F) * sizeof *fs);
    ft = malloc((size_t)(nt * F) * sizeof *ft);
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)256 << 20;
    cc.n_threads = (int)threads;
    if (!xs || !xt || !fs || !ft) {
        fprintf(stderr, "%s: out of memory for %lld samples\n", prog, n);
        goto done;
    }
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    const double t0 = attn_monotonic_s();
    for (int64_t i = 0; i < nt; i++) image_pm1(&test, i, xt + i * CELL * CELL);
    if (real) {
        attn_rng rng; /* n distinct training images, a seeded shuffle */
        attn_rng_init(&rng, (uint64_t)seed);
        int64_t *perm = malloc((size_t)train.dims[0] * sizeof *perm);
        if (!perm) {
            fprintf(stderr, "%s: out of memory\n", prog);
            goto done;
        }
        for (int64_t i = 0; i < train.dims[0]; i++) perm[i] = i;
        for (int64_t i = 0; i < n; i++) {
            const int64_t j = i + (int64_t)attn_rng_next_below(&rng, (uint32_t)(train.dims[0] - i));
            const int64_t tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
            image_pm1(&train, perm[i], xs + i * CELL * CELL);
        }
        free(perm);
    } else if (generate(ctx, &g, n, 100, seed, xs)) {
        goto done;
    }
    if (features(ctx, cnn, xs, n, fs, F) || features(ctx, cnn, xt, nt, ft, F)) goto done;
    double fid = 0.0;
    if (attn_fid(fs, n, ft, nt, F, &fid) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot compute the FID");
        goto done;
    }
    printf("fid %.4f (%s: %lld %s vs %lld test images; features: attn's Fashion-MNIST classifier %s, %lld "
           "dims, not Inception; %.1f s)\n",
           fid, real ? "training images" : model, n, real ? "training images" : "samples", (long long)nt, classifier,
           (long long)F, attn_monotonic_s() - t0);
    rc = 0;
done:
    free(xs);
    free(xt);
    free(fs);
    free(ft);
    attn_idx_free(&test);
    attn_idx_free(&train);
    attn_ctx_free(ctx);
    attn_cnn_free(cnn);
    attn_params_free(cps);
    attn_gan_free(&g);
    return rc;
}

int cmd_gan(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: attn gan train|sample|fid [options]   (attn gan train --help, ...)\n\n"
                   "  train    train the small SAGAN (or, --attention 0, the same GAN without attention)\n"
                   "           on Fashion-MNIST\n"
                   "  sample   draw a grid of the generator's samples (PNG)\n"
                   "  fid      the FID of a generator against the test set, on the features of attn's own\n"
                   "           classifier (not Inception)\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_gan_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "sample")) return cmd_gan_sample(argc - 1, argv + 1);
    if (!strcmp(argv[1], "fid")) return cmd_gan_fid(argc - 1, argv + 1);
    fprintf(stderr, "attn gan: unknown subcommand '%s' (train, sample or fid)\n", argv[1]);
    return 2;
}
