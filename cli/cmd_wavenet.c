/* cmd_wavenet.c: `attn wavenet train|eval|sample`: the WaveNet-style causal
 * dilated convolution language model (include/attn/wavenet.h) over bytes
 * (vocabulary 256), on the data of `attn lm`: a directory of train.txt,
 * valid.txt and test.txt, e.g. data/wiki (scripts/get_wiki_data.sh),
 * data/kjv or data/fortunes. Training runs on the shared driver
 * (cli/train_driver.h). docs/wavenet.md and docs/cli.md are the manual.
 *
 * A training row is the receptive field minus one bytes of context followed
 * by --window scored bytes: every scored byte sees its whole receptive field
 * (the WaveNet way; the context positions are computed but not scored). The
 * evaluation walks the text in the same chunks, so every byte but the first
 * is scored once, each with min(its offset, RF - 1) bytes of context.
 *
 * A model directory holds model.safetensors (parameters, AdamW state, the
 * configuration (wavenet.*) and the run's settings (run.*) in its metadata),
 * train.jsonl and loss.svg. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "commands.h"
#include "train_driver.h"

#define CMD "wavenet"
#define CLIP_NORM 1.0f
#define WN_VOCAB 256

static double now_s(void) { return attn_monotonic_s(); }

/* ---- the run's settings (checkpoint metadata run.*) ------------------------------------ */

typedef struct wn_info {
    char data[1024];
    long long batch, window, total_steps, warmup, seed;
    double lr, min_lr, weight_decay, train_seconds;
} wn_info;

#define WN_RUN_META 11
static const char *const wn_keys[WN_RUN_META] = {
    "run.model", "run.data", "run.batch", "run.window", "run.steps", "run.warmup",
    "run.seed",  "run.lr",   "run.min_lr", "run.weight_decay", "run.train_seconds"};

typedef struct wn_meta {
    attn_kv kv[ATTN_WAVENET_META + WN_RUN_META];
    char mbuf[ATTN_WAVENET_META * 32];
    char vbuf[WN_RUN_META][1100];
    int n;
} wn_meta;

static void wn_meta_build(wn_meta *mm, const attn_wavenet *m, const wn_info *r) {
    attn_wavenet_config_meta(&m->cfg, mm->kv, mm->mbuf);
    mm->n = ATTN_WAVENET_META;
    snprintf(mm->vbuf[0], 1100, "attn-wavenet");
    snprintf(mm->vbuf[1], 1100, "%s", r->data);
    const long long ll[5] = {r->batch, r->window, r->total_steps, r->warmup, r->seed};
    for (int i = 0; i < 5; i++) snprintf(mm->vbuf[2 + i], 1100, "%lld", ll[i]);
    const double rr[4] = {r->lr, r->min_lr, r->weight_decay, r->train_seconds};
    for (int i = 0; i < 4; i++) snprintf(mm->vbuf[7 + i], 1100, "%.9g", rr[i]);
    for (int i = 0; i < WN_RUN_META; i++) {
        mm->kv[mm->n].key = wn_keys[i];
        mm->kv[mm->n].value = mm->vbuf[i];
        mm->n++;
    }
}

/* Reads run.* of a checkpoint of attn wavenet train, every number range-checked. */
static int wn_info_read(const char *path, wn_info *r) {
    attn_safetensors *f = NULL;
    if (attn_safetensors_open(&f, path) != ATTN_OK) return cli_fail(CMD, "cannot open the checkpoint");
    if (cli_check_family("attn wavenet", f, path, "run.model", "attn-wavenet", "attn wavenet train")) {
        attn_safetensors_close(f);
        return 1;
    }
    meta_reader m = {f, path, {0}};
    snprintf(r->data, sizeof r->data, "%s", meta_str(&m, "run.data"));
    r->batch = meta_ll(&m, "run.batch", 1, 1 << 20);
    r->window = meta_ll(&m, "run.window", 1, 1 << 20);
    r->total_steps = meta_ll(&m, "run.steps", 1, 1ll << 40);
    r->warmup = meta_ll(&m, "run.warmup", 0, 1ll << 40);
    r->seed = meta_ll(&m, "run.seed", 0, 1ll << 62);
    r->lr = meta_real(&m, "run.lr", 0.0, 10.0);
    r->min_lr = meta_real(&m, "run.min_lr", 0.0, 10.0);
    r->weight_decay = meta_real(&m, "run.weight_decay", 0.0, 10.0);
    r->train_seconds = meta_real(&m, "run.train_seconds", 0.0, 1e12);
    attn_safetensors_close(f);
    if (m.err[0]) {
        fprintf(stderr, "attn wavenet: %s\n", m.err);
        return 1;
    }
    return 0;
}

/* The model of DIR/model.safetensors (run.* into *r). 0 or 1 (printed). */
static int wn_load(const char *dir, wn_info *r, attn_params **ps, attn_wavenet **m) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    *ps = NULL;
    *m = NULL;
    if (wn_info_read(path, r)) return 1;
    if (attn_params_new(ps) != ATTN_OK) return cli_fail(CMD, "cannot create the parameters");
    if (attn_wavenet_load(path, *ps, m) != ATTN_OK) {
        const int rc = cli_fail(CMD, "cannot load the model");
        attn_params_free(*ps);
        *ps = NULL;
        return rc;
    }
    if ((*m)->cfg.vocab != WN_VOCAB) {
        fprintf(stderr, "attn wavenet: %s: a vocabulary of %lld, not the 256 bytes\n", path,
                (long long)(*m)->cfg.vocab);
        attn_wavenet_free(*m);
        attn_params_free(*ps);
        *m = NULL;
        *ps = NULL;
        return 1;
    }
    return 0;
}

/* ---- held-out evaluation -------------------------------------------------------------- */

typedef struct wn_eval_result {
    double bpb;
    int64_t bytes;
    double seconds;
} wn_eval_result;

/* Bits per byte of ids[0 .. n): targets 1 .. n-1, each scored once. The
 * first forward reads ids[0 .. T) (T = RF - 1 + N, or n - 1 if shorter)
 * and scores all its T targets (the early ones with a shorter context,
 * as the causal padding gives); then chunks of N targets, each row the
 * RF - 1 bytes before the chunk and the chunk's inputs, scoring its last N
 * positions (the last chunk moved back to end at n - 1, scoring only what is
 * new). B rows per forward; gradients off. */
static int wn_eval(attn_ctx *ctx, const attn_wavenet *m, const int32_t *ids, int64_t n, int64_t N,
                   int64_t B, wn_eval_result *out) {
    memset(out, 0, sizeof *out);
    if (n < 2) {
        fprintf(stderr, "attn wavenet: evaluation: %lld bytes (< 2)\n", (long long)n);
        return 1;
    }
    const double t0 = now_s();
    const int64_t P = attn_wavenet_receptive_field(&m->cfg) - 1;
    const int64_t T0 = P + N < n - 1 ? P + N : n - 1;
    int32_t *in = malloc((size_t)(B * (P + N) + T0) * sizeof *in);
    int64_t *lo = malloc((size_t)B * sizeof *lo), *j0s = malloc((size_t)B * sizeof *j0s);
    if (!in || !lo || !j0s) {
        free(in);
        free(lo);
        free(j0s);
        fprintf(stderr, "attn wavenet: evaluation: out of memory\n");
        return 1;
    }
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    int st = 0;
    double nll = 0.0;
    int64_t count = 0;
    /* the first forward: all its positions */
    attn_ctx_reset(ctx);
    attn_tensor *lg = attn_wavenet_logits(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, T0}, ids), T0);
    if (!lg) {
        fprintf(stderr, "attn wavenet: evaluation: %s\n", attn_ctx_error(ctx));
        st = 1;
    } else {
        for (int64_t t = 0; t < T0; t++) nll += cli_row_nll(attn_f32(lg) + t * WN_VOCAB, WN_VOCAB, ids[t + 1]);
        count += T0;
    }
    int64_t scored = T0; /* targets 1 .. scored done */
    while (st == 0 && scored < n - 1) {
        int64_t rows = 0;
        while (rows < B && scored < n - 1) {
            int64_t j0 = scored + 1; /* first target of the chunk */
            if (j0 + N - 1 > n - 1) j0 = n - N;
            const int64_t a = j0 - 1 - P; /* >= N - 1 >= 0: the first forward took T0 = P + N */
            j0s[rows] = j0;
            lo[rows] = scored;
            memcpy(in + rows * (P + N), ids + a, (size_t)(P + N) * sizeof *in);
            scored = j0 + N - 1;
            rows++;
        }
        attn_ctx_reset(ctx);
        lg = attn_wavenet_logits(ctx, m,
                                 attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){rows, P + N}, in), N);
        if (!lg) {
            fprintf(stderr, "attn wavenet: evaluation: %s\n", attn_ctx_error(ctx));
            st = 1;
            break;
        }
        for (int64_t r = 0; r < rows; r++)
            for (int64_t t = 0; t < N; t++) {
                const int64_t j = j0s[r] + t;
                if (j <= lo[r]) continue;
                nll += cli_row_nll(attn_f32(lg) + (r * N + t) * WN_VOCAB, WN_VOCAB, ids[j]);
                count++;
            }
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    free(in);
    free(lo);
    free(j0s);
    out->bytes = count;
    out->bpb = count ? nll / log(2.0) / (double)count : NAN;
    out->seconds = now_s() - t0;
    return st;
}

/* ---- train: the WaveNet family of the training driver ------------------------------- */

static void train_usage(FILE *f) {
    fprintf(f,
        "usage: attn wavenet train --out DIR [options]\n\n"
        "Trains a WaveNet-style causal dilated convolution language model on the bytes of\n"
        "train.txt of --data and reports the bits per byte of valid.txt. Each training row\n"
        "is RF - 1 bytes of context (RF the receptive field) and --window scored bytes.\n\n"
        "data (fixed by the checkpoint: refused with --resume)\n"
        "  --data DIR            train.txt, valid.txt (and test.txt for eval) (default data/wiki)\n"
        "model (fixed by the checkpoint)\n"
        "  --res-channels N      residual channels R (default 64)\n"
        "  --gate-channels N     gated-unit channels D (default: R)\n"
        "  --skip-channels N     skip channels S (default: R)\n"
        "  --head-channels N     output head channels H (default: S)\n"
        "  --kernel K            kernel size (default 2)\n"
        "  --layers N            layers per block: dilations 1, 2, ..., 2^(N-1) (default 6)\n"
        "  --blocks N            the block repeated (default 1)\n"
        "                        receptive field 1 + (K - 1) blocks (2^layers - 1): 64 by default\n"
        "  --window N            scored bytes per training row (default 64; fixed)\n"
        "schedule (with --resume: applied and printed)\n"
        "  --batch N             rows per step (default 8)\n"
        "  --steps N             optimizer steps (default 1000)\n"
        "  --epochs E            instead of --steps: E passes over the training bytes\n"
        "  --time-budget S       stop after S seconds of training\n"
        "  --lr X                peak learning rate of AdamW (default 1e-3)\n"
        "  --min-lr X            final learning rate of the cosine (default lr / 10)\n"
        "  --warmup N            linear warmup steps (default 100)\n"
        "  --weight-decay X      AdamW's decoupled weight decay (default 0.01, as attn lm)\n"
        "  --seed N              initialisation and batches (default 1; fixed)\n"
        "run\n"
        "  --eval-every N        validation every N steps and a checkpoint (default 500; 0: end only)\n"
        "  --eval-n N            bytes of valid.txt for the periodic evaluations (default 16384)\n"
        "  --final-eval-n N      bytes of valid.txt for the final evaluation (default 0: all)\n"
        "  --log-every N         a JSONL line every N steps (default 50)\n"
        "  --threads N           threads for the ops (default: all)\n"
        "  --arena-mb N          context arena in MiB (default 1024)\n"
        "  --resume | --force | --quiet   (docs/cli.md)\n\n"
        "Ctrl-C (SIGINT) or SIGTERM finishes the step, writes a checkpoint and exits 130.\n");
}

typedef struct wn_train {
    wn_info r;
    attn_wavenet *m;
    int32_t *tr, *va;
    int64_t n_tr, n_va;
    int32_t *bin, *btg;
    int64_t B, N, P; /* rows, scored bytes per row, context bytes per row */
    int64_t eval_n, final_eval_n;
    wn_meta meta;
} wn_train;

static attn_tensor *wn_step_loss(void *self, train_run *run, int64_t step, train_counts *c) {
    wn_train *g = self;
    const int64_t T = g->P + g->N;
    for (int64_t r = 0; r < g->B; r++) {
        /* the window ids[s .. s + T] lies in the stream (lm_data.h's sampler) */
        const int64_t s = attn_lm_window_start((uint64_t)g->r.seed, step, r, g->B, g->n_tr, T);
        memcpy(g->bin + r * T, g->tr + s, (size_t)T * sizeof *g->bin);
        memcpy(g->btg + r * g->N, g->tr + s + g->P + 1, (size_t)g->N * sizeof *g->btg);
    }
    attn_tensor *ti = attn_tensor_from(run->ctx, ATTN_I32, 2, (int64_t[]){g->B, T}, g->bin);
    attn_tensor *tt = attn_tensor_from(run->ctx, ATTN_I32, 2, (int64_t[]){g->B, g->N}, g->btg);
    c->items = c->tokens = (double)(g->B * g->N);
    return attn_wavenet_loss(run->ctx, g->m, ti, tt, -1);
}

static int wn_evaluate(void *self, train_run *run, int last, double *seconds) {
    wn_train *g = self;
    const int64_t want = last ? g->final_eval_n : g->eval_n; /* 0: all */
    const int64_t n = want <= 0 || want >= g->n_va ? g->n_va : want;
    wn_eval_result ev;
    if (wn_eval(run->ctx, g->m, g->va, n, g->N, g->B, &ev)) return 1;
    *seconds = ev.seconds;
    const attn_json_field f[] = {
        attn_json_str("event", "eval"),          attn_json_int("step", run->step),
        attn_json_num("valid_loss", ev.bpb * log(2.0)), attn_json_num("valid_bpb", ev.bpb),
        attn_json_int("bytes", ev.bytes),        attn_json_bool("full", n == g->n_va),
        attn_json_num("seconds", ev.seconds),
    };
    if (train_log(run, f, (int)(sizeof f / sizeof f[0]))) return 1;
    if (!run->quiet || last) {
        if (run->progress.tty && !run->quiet) fputc('\n', stderr);
        fprintf(last ? stdout : stderr, "step %lld: valid %.4f bits/byte (%lld bytes%s, %.1f s)\n",
                (long long)run->step, ev.bpb, (long long)ev.bytes, n == g->n_va ? ", all" : "", ev.seconds);
    }
    return 0;
}

static void wn_meta_fn(void *self, train_run *run, double train_seconds_, const attn_kv **kv, int *n) {
    wn_train *g = self;
    g->r.total_steps = run->total_steps;
    g->r.train_seconds = train_seconds_;
    wn_meta_build(&g->meta, g->m, &g->r);
    *kv = g->meta.kv;
    *n = g->meta.n;
}

static int wn_finish(void *self, train_run *run, double train_s, double train_cpu) {
    wn_train *g = self;
    const int64_t steps = run->step - run->start;
    const double ntok = (double)(steps * g->B * g->N);
    const double tps = ntok / (train_s > 1e-9 ? train_s : 1e-9);
    const double step_ms = steps > 0 ? 1000.0 * train_s / (double)steps : 0.0;
    printf("trained %lld steps in %.1f s: %.1f ms/step, %.0f scored bytes/s (evaluation %.1f s apart)%s\n",
           (long long)steps, train_s, step_ms, tps, run->eval_seconds,
           !strcmp(run->stopped, "time_budget") ? "; stopped by the time budget" : "");
    const attn_json_field f[] = {attn_json_str("event", "end"),       attn_json_int("step", run->step),
                                 attn_json_str("stopped", run->stopped), attn_json_num("train_seconds", train_s),
                                 attn_json_num("step_ms", step_ms),     attn_json_num("tokens_per_s", tps),
                                 attn_json_num("train_cpu_seconds", train_cpu)};
    return train_log(run, f, (int)(sizeof f / sizeof f[0]));
}

static const train_family wn_family = {
    "byte", NULL, NULL, "loss (nats per byte)", "valid", NULL, "train.jsonl, loss.svg",
    wn_step_loss, NULL, wn_evaluate, wn_meta_fn, wn_finish, NULL, NULL, NULL,
};

static int cmd_wavenet_train(int argc, char **argv) {
    const char *prog = "attn wavenet train", *sub = "train", *data = "data/wiki";
    long long res = 64, gate = 0, skip = 0, head = 0, kernel = 2, layers = 6, blocks = 1, window = 64;
    long long final_eval_n = 0;
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
        i++;
        if (!strcmp(a, "--final-eval-n")) {
            rc = cli_opt_int(CMD, sub, a, v, 0, 1ll << 40, &final_eval_n);
            continue;
        }
        train_fixed(&o, a); /* every other option fixes the model or the data */
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--res-channels")) rc = cli_opt_int(CMD, sub, a, v, 1, 65536, &res);
        else if (!strcmp(a, "--gate-channels")) rc = cli_opt_int(CMD, sub, a, v, 1, 65536, &gate);
        else if (!strcmp(a, "--skip-channels")) rc = cli_opt_int(CMD, sub, a, v, 1, 65536, &skip);
        else if (!strcmp(a, "--head-channels")) rc = cli_opt_int(CMD, sub, a, v, 1, 65536, &head);
        else if (!strcmp(a, "--kernel")) rc = cli_opt_int(CMD, sub, a, v, 2, 16, &kernel);
        else if (!strcmp(a, "--layers")) rc = cli_opt_int(CMD, sub, a, v, 1, 20, &layers);
        else if (!strcmp(a, "--blocks")) rc = cli_opt_int(CMD, sub, a, v, 1, 64, &blocks);
        else if (!strcmp(a, "--window")) rc = cli_opt_int(CMD, sub, a, v, 1, 1 << 20, &window);
        else {
            fprintf(stderr, "attn wavenet train: unknown option '%s' (try 'attn wavenet train --help')\n", a);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "attn wavenet train: %s needs a value\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if ((rc = train_opts_check(prog, &o))) return rc;
    const char *out = o.out;
    const int resume = o.resume;
    if ((rc = train_dir_check(prog, &o))) return rc;

    wn_train g;
    memset(&g, 0, sizeof g);
    g.eval_n = o.eval_n > 0 ? o.eval_n : 16384;
    g.final_eval_n = final_eval_n;
    wn_info *rp = &g.r;
    attn_params *ps = NULL;
    attn_optim *opt = NULL;
    attn_ctx *ctx = NULL;
    train_run run;
    memset(&run, 0, sizeof run);
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s/model.safetensors", out);
    rc = 1;
    if (resume) {
        if (wn_load(out, rp, &ps, &g.m)) goto done;
        train_resume_ll("--steps", o.steps, &rp->total_steps);
        train_resume_ll("--batch", o.batch, &rp->batch);
        train_resume_ll("--warmup", o.warmup, &rp->warmup);
        train_resume_real("--lr", o.lr, &rp->lr);
        train_resume_real("--min-lr", o.min_lr, &rp->min_lr);
        train_resume_real("--weight-decay", o.weight_decay, &rp->weight_decay);
    } else {
        snprintf(rp->data, sizeof rp->data, "%s", data);
        rp->batch = o.batch > 0 ? o.batch : 8;
        rp->window = window;
        rp->total_steps = o.steps > 0 ? o.steps : 1000;
        rp->warmup = o.warmup >= 0 ? o.warmup : 100;
        rp->seed = o.seed >= 0 ? o.seed : 1;
        rp->lr = o.lr >= 0 ? o.lr : 1e-3;
        rp->min_lr = o.min_lr >= 0 ? o.min_lr : rp->lr / 10.0;
        rp->weight_decay = o.weight_decay >= 0 ? o.weight_decay : 0.01;
        attn_wavenet_config c;
        memset(&c, 0, sizeof c);
        c.vocab = WN_VOCAB;
        c.res_channels = res;
        c.gate_channels = gate > 0 ? gate : res;
        c.skip_channels = skip > 0 ? skip : res;
        c.head_channels = head;
        c.kernel = (int)kernel;
        c.layers_per_block = (int)layers;
        c.n_blocks = (int)blocks;
        attn_rng rng;
        attn_rng_init(&rng, (uint64_t)rp->seed);
        if (attn_params_new(&ps) != ATTN_OK || attn_wavenet_new(&g.m, ps, &c, &rng) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot create the model");
            goto done;
        }
    }
    if (cli_load_bytes("wavenet", rp->data, "train.txt", &g.tr, &g.n_tr) || cli_load_bytes("wavenet", rp->data, "valid.txt", &g.va, &g.n_va))
        goto done;
    g.B = rp->batch;
    g.N = rp->window;
    g.P = attn_wavenet_receptive_field(&g.m->cfg) - 1;
    const int64_t T = g.P + g.N;
    if (g.n_tr <= T) {
        fprintf(stderr, "%s: the training text (%lld bytes) is not longer than a row of %lld (receptive "
                        "field %lld - 1 + window %lld)\n",
                prog, (long long)g.n_tr, (long long)T, (long long)(g.P + 1), (long long)g.N);
        goto done;
    }
    if (g.n_va < 2) {
        fprintf(stderr, "%s: valid.txt has %lld bytes (< 2)\n", prog, (long long)g.n_va);
        goto done;
    }
    if (o.epochs > 0) {
        const long long per_epoch = (long long)((g.n_tr + g.B * g.N - 1) / (g.B * g.N));
        if (resume)
            train_resume_ll("--steps (from --epochs)", o.epochs * per_epoch, &rp->total_steps);
        else
            rp->total_steps = o.epochs * per_epoch;
    }
    if (!resume && cli_make_dir(out) != 0) {
        fprintf(stderr, "%s: cannot create the directory %s: %s\n", prog, out, strerror(errno));
        goto done;
    }
    {
        const train_setup su = {CMD, &wn_family, &g, ps, ckpt, 0.9f, 0.95f, rp->lr, rp->min_lr,
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
    g.bin = malloc((size_t)(g.B * T) * sizeof *g.bin);
    g.btg = malloc((size_t)(g.B * g.N) * sizeof *g.btg);
    if (!g.bin || !g.btg) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto done;
    }
    const attn_wavenet_config *c = &g.m->cfg;
    char desc[512];
    snprintf(desc, sizeof desc,
             "WaveNet: %d x %d layers (dilations 1 .. %lld), kernel %d, channels residual %lld, gate %lld, "
             "skip %lld, head %lld; receptive field %lld bytes; %lld parameters",
             c->n_blocks, c->layers_per_block, (long long)1 << (c->layers_per_block - 1), c->kernel,
             (long long)c->res_channels, (long long)c->gate_channels, (long long)c->skip_channels,
             (long long)c->head_channels, (long long)(g.P + 1), (long long)attn_params_numel(ps));
    printf("%s\n", desc);
    printf("data: %s: train %lld bytes, valid %lld bytes\n", rp->data, (long long)g.n_tr, (long long)g.n_va);
    printf("schedule: %lld steps of %lld rows x (%lld context + %lld scored) bytes, AdamW lr %g -> %g "
           "(warmup %lld, cosine), wd %g; threads %d\n",
           rp->total_steps, (long long)g.B, (long long)g.P, (long long)g.N, rp->lr, rp->min_lr, rp->warmup,
           rp->weight_decay, attn_ctx_threads(ctx));
    if (resume) printf("resuming %s at step %lld\n", out, (long long)step);
    fflush(stdout);
    {
        const attn_json_field f[] = {
            attn_json_str("event", resume ? "resume" : "start"), attn_json_int("step", step),
            attn_json_str("data", rp->data), attn_json_int("parameters", attn_params_numel(ps)),
            attn_json_int("receptive_field", g.P + 1), attn_json_int("total_steps", rp->total_steps),
            attn_json_int("batch", g.B), attn_json_int("window", g.N),
            attn_json_int("threads", attn_ctx_threads(ctx)), attn_json_str("description", desc),
        };
        if (train_log(&run, f, (int)(sizeof f / sizeof f[0]))) goto done;
    }
    rc = train_loop(&run);
done:
    if (run.log) attn_jsonl_close(run.log);
    free(g.bin);
    free(g.btg);
    free(g.tr);
    free(g.va);
    attn_ctx_free(ctx);
    attn_optim_free(opt);
    attn_wavenet_free(g.m);
    attn_params_free(ps);
    return rc;
}

/* ---- eval ---------------------------------------------------------------------------------- */

static int cmd_wavenet_eval(int argc, char **argv) {
    const char *sub = "eval", *model = NULL, *split = "test", *data = NULL;
    long long bytes = 0, batch = 8, threads = 0, window = 0;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn wavenet eval --model DIR [options]\n\n"
                   "Bits per byte of a trained model on a split of its data (every byte but the\n"
                   "first scored once, each with up to RF - 1 bytes of context), and the speed.\n\n"
                   "  --split NAME       test or valid (default test)\n"
                   "  --data DIR         another corpus directory (default: the model's)\n"
                   "  --bytes N          the first N bytes only (default 0: all)\n"
                   "  --window N         scored bytes per row (default: the training window)\n"
                   "  --batch N          rows per forward (default 8)\n"
                   "  --threads N        threads for the ops (default: all)\n");
            return 0;
        }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--split")) split = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--bytes")) rc = cli_opt_int(CMD, sub, a, v, 0, 1ll << 40, &bytes);
        else if (!strcmp(a, "--window")) rc = cli_opt_int(CMD, sub, a, v, 0, 1 << 20, &window);
        else if (!strcmp(a, "--batch")) rc = cli_opt_int(CMD, sub, a, v, 1, 1 << 16, &batch);
        else if (!strcmp(a, "--threads")) rc = cli_opt_int(CMD, sub, a, v, 0, cli_max_threads(), &threads);
        else {
            fprintf(stderr, "attn wavenet eval: unknown option '%s' (try 'attn wavenet eval --help')\n", a);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "attn wavenet eval: %s needs a value\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!model) {
        fprintf(stderr, "attn wavenet eval: --model DIR is required\n");
        return 2;
    }
    if (strcmp(split, "test") && strcmp(split, "valid")) {
        fprintf(stderr, "attn wavenet eval: --split '%s': expected test or valid\n", split);
        return 2;
    }
    wn_info r;
    attn_params *ps = NULL;
    attn_wavenet *m = NULL;
    attn_ctx *ctx = NULL;
    int32_t *ids = NULL;
    int64_t n = 0;
    rc = 1;
    if (wn_load(model, &r, &ps, &m)) goto done;
    char name[32];
    snprintf(name, sizeof name, "%s.txt", split);
    if (cli_load_bytes("wavenet", data ? data : r.data, name, &ids, &n)) goto done;
    if (bytes > 0 && bytes < n) n = bytes;
    attn_ctx_config cc = {0};
    cc.n_threads = (int)threads;
    cc.arena_bytes = (size_t)1024 << 20;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    wn_eval_result ev;
    const int64_t N = window > 0 ? window : r.window;
    if (wn_eval(ctx, m, ids, n, N, batch, &ev)) goto done;
    printf("%s/%s: %.4f bits/byte over %lld bytes (receptive field %lld, %lld parameters); %.1f s, %.0f bytes/s\n",
           data ? data : r.data, name, ev.bpb, (long long)ev.bytes,
           (long long)attn_wavenet_receptive_field(&m->cfg), (long long)attn_params_numel(ps), ev.seconds,
           ev.seconds > 0 ? (double)ev.bytes / ev.seconds : 0.0);
    rc = 0;
done:
    free(ids);
    attn_ctx_free(ctx);
    attn_wavenet_free(m);
    attn_params_free(ps);
    return rc;
}

/* ---- sample -------------------------------------------------------------------------------- */

static volatile sig_atomic_t sample_signal = 0;

static void on_sample_signal(int sig) { sample_signal = sig; }

/* when the first byte was drawn (after the prompt was read): the speed
 * printed is that of the generation alone */
static double first_byte_s;

static int print_byte(void *user, int32_t tok, int64_t i) {
    (void)user;
    if (i == 0) first_byte_s = now_s();
    putchar(tok);
    fflush(stdout);
    return sample_signal != 0;
}

/* Generation without the queues: for every byte, one full forward over the
 * last RF bytes (batch 1, the head on the last position only), the same
 * draws as attn_wavenet_generate (draw i from attn_rng_uniform(seed, 0, i)).
 * The reference the incremental form saves work against; with greedy
 * decoding both print the same bytes. */
static attn_status generate_full(attn_ctx *ctx, const attn_wavenet *m, const int32_t *prompt, int64_t np,
                                 int64_t n_new, const attn_sample_opts *so, int32_t *out, int64_t *n_done) {
    const int64_t RF = attn_wavenet_receptive_field(&m->cfg);
    int32_t *seq = malloc((size_t)(np + n_new) * sizeof *seq);
    void *work = malloc(WN_VOCAB * 8);
    *n_done = 0;
    if (!seq || !work) {
        free(seq);
        free(work);
        return ATTN_ERR_OOM;
    }
    memcpy(seq, prompt, (size_t)np * sizeof *seq);
    int64_t n = np;
    attn_status st = ATTN_OK;
    attn_ctx_set_grad_enabled(ctx, 0);
    for (int64_t i = 0; i < n_new; i++) {
        const int64_t T = n < RF ? n : RF;
        attn_ctx_reset(ctx);
        attn_tensor *lg = attn_wavenet_logits(
            ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, T}, seq + n - T), 1);
        if (!lg) {
            st = attn_ctx_status(ctx);
            break;
        }
        const int32_t tok = attn_sample_token(attn_f32(lg), WN_VOCAB, so, attn_rng_uniform(so->seed, 0, (uint64_t)i), work);
        out[i] = seq[n++] = tok;
        *n_done = i + 1;
        if (print_byte(NULL, tok, i)) break;
    }
    free(seq);
    free(work);
    return st;
}

static int cmd_wavenet_sample(int argc, char **argv) {
    const char *sub = "sample", *model = NULL, *prompt = "The ";
    long long tokens = 300, top_k = 0, seed = 1;
    double temp = 0.8, top_p = 0.95;
    int rc = 0, no_queues = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-queues")) {
            no_queues = 1;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn wavenet sample --model DIR [options]\n\n"
                   "Prints bytes generated by a model of 'attn wavenet train' with the incremental\n"
                   "form (per-layer queues: one step costs the same at any length); Ctrl-C stops\n"
                   "after the current byte (exit status 130).\n\n"
                   "  --prompt TEXT        the beginning (default \"The \")\n"
                   "  --tokens N           bytes to generate (default 300)\n"
                   "  --temperature T      0: greedy (default 0.8)\n"
                   "  --top-k K            only the K most probable bytes (default 0: all)\n"
                   "  --top-p P            nucleus sampling (default 0.95; 1: off)\n"
                   "  --seed N             (default 1)\n"
                   "  --no-queues          one full forward over the receptive field per byte instead\n"
                   "                       (the cost the queues save; the same bytes when greedy)\n");
            return 0;
        }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--tokens")) rc = cli_opt_int(CMD, sub, a, v, 0, 1 << 24, &tokens);
        else if (!strcmp(a, "--top-k")) rc = cli_opt_int(CMD, sub, a, v, 0, 256, &top_k);
        else if (!strcmp(a, "--seed")) rc = cli_opt_int(CMD, sub, a, v, 0, 1ll << 62, &seed);
        else if (!strcmp(a, "--temperature")) rc = cli_opt_real(CMD, sub, a, v, 0.0, 100.0, &temp);
        else if (!strcmp(a, "--top-p")) rc = cli_opt_real(CMD, sub, a, v, 0.0, 1.0, &top_p);
        else {
            fprintf(stderr, "attn wavenet sample: unknown option '%s' (try 'attn wavenet sample --help')\n", a);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "attn wavenet sample: %s needs a value\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!model) {
        fprintf(stderr, "attn wavenet sample: --model DIR is required\n");
        return 2;
    }
    const size_t np = strlen(prompt);
    if (np == 0) {
        fprintf(stderr, "attn wavenet sample: the prompt must have at least one byte\n");
        return 2;
    }
    wn_info r;
    attn_params *ps = NULL;
    attn_wavenet *m = NULL;
    int32_t *ids = NULL, *outi = NULL;
    rc = 1;
    if (wn_load(model, &r, &ps, &m)) goto done;
    ids = malloc(np * sizeof *ids);
    outi = malloc((size_t)(tokens > 0 ? tokens : 1) * sizeof *outi);
    if (!ids || !outi) {
        fprintf(stderr, "attn wavenet sample: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < np; i++) ids[i] = (unsigned char)prompt[i];
    attn_sample_opts so = {(float)temp, (int)top_k, (float)top_p, (uint64_t)seed, 0};
    fputs(prompt, stdout);
    fflush(stdout);
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sample_signal;
    sigemptyset(&sa.sa_mask);
    sample_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int64_t done_n = 0;
    const double t0 = now_s();
    first_byte_s = t0;
    attn_ctx *ctx = NULL;
    attn_status gst = ATTN_OK;
    if (no_queues) {
        attn_ctx_config cc = {0};
        cc.n_threads = 1;
        cc.arena_bytes = (size_t)256 << 20;
        gst = attn_ctx_new(&ctx, &cc);
        if (gst == ATTN_OK) gst = generate_full(ctx, m, ids, (int64_t)np, tokens, &so, outi, &done_n);
        if (gst != ATTN_OK && ctx && attn_ctx_status(ctx) != ATTN_OK)
            fprintf(stderr, "attn wavenet sample: %s\n", attn_ctx_error(ctx));
        attn_ctx_free(ctx);
    } else {
        gst = attn_wavenet_generate(m, ids, (int64_t)np, tokens, &so, outi, NULL, print_byte, NULL, &done_n);
    }
    const double dt = now_s() - t0;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    printf("\n");
    fflush(stdout);
    if (gst != ATTN_OK) {
        rc = cli_fail(CMD, "generation failed");
        goto done;
    }
    /* bytes 2 .. n after the first: the prompt's reading apart */
    const double gen_s = now_s() - first_byte_s;
    fprintf(stderr, "(%lld bytes in %.2f s with the prompt; %.0f bytes/s after the first, %s; temperature %g, "
                    "top-k %lld, top-p %g, seed %lld)\n",
            (long long)done_n, dt, done_n > 1 && gen_s > 0 ? (double)(done_n - 1) / gen_s : 0.0,
            no_queues ? "a full forward per byte" : "incremental queues", temp, top_k, top_p, seed);
    if (sample_signal) {
        fprintf(stderr, "attn wavenet sample: interrupted after %lld of %lld bytes\n", (long long)done_n,
                tokens);
        rc = 130;
        goto done;
    }
    rc = 0;
done:
    free(ids);
    free(outi);
    attn_wavenet_free(m);
    attn_params_free(ps);
    return rc;
}

int cmd_wavenet(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: attn wavenet train|eval|sample [options]   (attn wavenet train --help, ...)\n\n"
                   "  train    train a causal dilated convolution LM on bytes (default data/wiki)\n"
                   "  eval     bits per byte of a trained model on test.txt or valid.txt\n"
                   "  sample   generate bytes with the incremental form\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_wavenet_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval")) return cmd_wavenet_eval(argc - 1, argv + 1);
    if (!strcmp(argv[1], "sample")) return cmd_wavenet_sample(argc - 1, argv + 1);
    fprintf(stderr, "attn wavenet: unknown subcommand '%s' (train, eval or sample)\n", argv[1]);
    return 2;
}
