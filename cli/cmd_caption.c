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
 *
 * The files of the command: this one (the run's settings, train, eval,
 * describe), caption_scenes.c (encoder, scenes, metrics) and
 * caption_picture.c (the attention pictures); caption_cmd.h between them. */
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
#include "caption_cmd.h"
#include "commands.h"
#include "train_dist.h"
#include "train_driver.h"

#define CMD "caption"
#define CLIP_NORM 5.0f
#define TEST_SEED 2015u  /* the test scenes: the same for every model */
#define VALID_SEED 7u    /* the validation scenes */


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
    if (cli_check_family("attn caption", f, path, "run.model", "attn-caption", "attn caption train")) {
        attn_safetensors_close(f);
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
    cap_scenes tr, va;
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
    attn_tensor *a = cap_batch_annot(run->ctx, &g->tr, g->idx, g->B);
    const int64_t T1 = cap_batch_tokens(&g->tr, g->idx, g->B, g->tok);
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
    cap_eval_out ev;
    if (cap_eval_scenes(run->prog, run->ctx, &g->m, &g->va, last ? 0 : g->eval_n, ATTN_CAPTION_DECODE_EXPECTED, &ev))
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
    cap_encoder e;
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
    if (cap_encoder_load(prog, rp->encoder, resume ? (int)rp->encoder_stage : (int)enc_stage, &e)) goto done;
    rp->encoder_stage = e.stage;
    const double t_prep = attn_monotonic_s();
    if (cap_make_scenes(prog, ctx, &e, rp->data, ATTN_SCENES_TRAIN, rp->train_scenes, (uint64_t)rp->scene_seed, cache, &g.tr) ||
        cap_make_scenes(prog, ctx, &e, rp->data, ATTN_SCENES_VALID, rp->valid_scenes, (uint64_t)rp->scene_seed + VALID_SEED,
                 cache, &g.va))
        goto done;
    const double prep_s = attn_monotonic_s() - t_prep;
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
    cap_scenes_free(&g.tr);
    cap_scenes_free(&g.va);
    attn_ctx_free(ctx);
    attn_optim_free(opt);
    attn_params_free(ps);
    cap_encoder_free(&e);
    return rc;
}

/* ---- eval and describe -------------------------------------------------------------------- */

typedef struct loaded {
    run_info r;
    attn_params *ps;
    attn_caption m;
    cap_encoder e;
    attn_ctx *ctx;
} loaded;

static void loaded_free(loaded *l) {
    attn_ctx_free(l->ctx);
    attn_params_free(l->ps);
    cap_encoder_free(&l->e);
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
    if (cap_encoder_load(prog, enc ? enc : l->r.encoder, (int)l->r.encoder_stage, &l->e)) {
        loaded_free(l);
        return 1;
    }
    if (l->e.cnn->cfg.widths[l->e.stage] + CAP_POS_CHANNELS != l->m.cfg.annot_dim) {
        fprintf(stderr, "%s: the encoder gives %lld-dimensional annotations, the model reads %lld\n", prog,
                (long long)(l->e.cnn->cfg.widths[l->e.stage] + CAP_POS_CHANNELS), (long long)l->m.cfg.annot_dim);
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
    cap_scenes ts;
    rc = 1;
    const int valid = !strcmp(split, "valid");
    if (cap_make_scenes(prog, l.ctx, &l.e, data ? data : l.r.data, valid ? ATTN_SCENES_VALID : ATTN_SCENES_TEST,
                 valid ? l.r.valid_scenes : n, valid ? (uint64_t)l.r.scene_seed + VALID_SEED : TEST_SEED, cache, &ts))
        goto done_l;
    cap_eval_out ev;
    if (cap_eval_scenes(prog, l.ctx, &l.m, &ts, 0, decode, &ev)) goto done;
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
        int32_t ids[CAP_MAX_LEN];
        float *al = malloc((size_t)(CAP_MAX_LEN * ts.L) * sizeof *al);
        if (!al) goto done;
        for (long long p = 0; p < pics; p++) {
            const int64_t one = p;
            attn_ctx_reset(l.ctx);
            attn_tensor *a = cap_batch_annot(l.ctx, &ts, &one, 1);
            if (!a || attn_caption_greedy_decode(l.ctx, &l.m, a, CAP_MAX_LEN, decode, ids, al, NULL) != ATTN_OK) {
                free(al);
                rc = cli_fail(CMD, "decoding failed");
                goto done;
            }
            int32_t w[ATTN_SCENE_MAX_WORDS];
            char ref[512], path[4096];
            attn_caption_text(w, attn_scene_caption(&ts.s.scenes[p], w, NULL), ref, sizeof ref);
            snprintf(path, sizeof path, "%s/attention-%s%lld.png", pdir ? pdir : model, split, p);
            if (cap_write_picture(prog, path, ts.s.pixels + p * ATTN_SCENE_SIDE * ATTN_SCENE_SIDE, ids, al, ts.L, ref)) {
                free(al);
                goto done;
            }
        }
        free(al);
    }
    rc = 0;
done:
    cap_scenes_free(&ts);
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
    int nw = 0; /* the words and the end, as cap_write_picture */
    while (nw < CAP_MAX_LEN && ids[nw] != ATTN_CAPTION_PAD_ID) {
        nw++;
        if (ids[nw - 1] == ATTN_CAPTION_EOS_ID) break;
    }
    if (nw < 1) {
        fprintf(stderr, "attn caption describe: no word was generated: no page\n");
        return 1;
    }
    const char *rl[CAP_MAX_LEN];
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
    if (cap_annotate(prog, l.ctx, &l.e, grey, 1, &annot, &L, &D)) goto done;
    cap_scenes one;
    memset(&one, 0, sizeof one);
    one.annot = annot;
    one.L = L;
    one.D = D;
    const int64_t i0 = 0;
    int32_t ids[CAP_MAX_LEN];
    al = malloc((size_t)(CAP_MAX_LEN * L) * sizeof *al);
    attn_ctx_reset(l.ctx);
    attn_tensor *a = al ? cap_batch_annot(l.ctx, &one, &i0, 1) : NULL;
    if (!a || attn_caption_greedy(l.ctx, &l.m, a, CAP_MAX_LEN, ids, al, NULL) != ATTN_OK) {
        rc = cli_fail(CMD, "decoding failed");
        goto done;
    }
    char text[512];
    attn_caption_text(ids, CAP_MAX_LEN, text, sizeof text);
    printf("%s\n", text);
    if (pic && cap_write_picture(prog, pic, grey, ids, al, L, NULL)) goto done;
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
