/* cmd_rnnlm.c: `attn rnnlm train|eval|sample`: recurrent byte-level
 * language models of long text (issue 19): the SHA-LSTM of Merity 2019
 * (--arch sha-lstm: LSTM blocks, one single-headed attention with a memory
 * of earlier positions, Boom feed-forwards; include/attn/sha_lstm.h) and the
 * plain LSTM (--arch lstm). A separate command from `attn lm` (GPT / TXL)
 * because these models carry a recurrent state: training reads B streams
 * of the text segment after segment with the state (and the attention
 * memory) carried across segments, as the paper trains; evaluation reads
 * the held-out text as E parallel streams with the state carried. The data
 * is a directory of train.txt, valid.txt and test.txt read as bytes
 * (data/wiki). docs/cli.md and docs/sha_rnn.md are the manual. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/lm_data.h"
#include "commands.h"
#include "train_driver.h"

#define CMD "rnnlm"
#define CLIP_NORM 1.0f
#define VOCAB 256

/* ---- the run's settings (checkpoint metadata run.*) --------------------------------- */

typedef struct run_info {
    char data[1024];
    int arch, layers, attn_layer;
    long long d, boom, mem_len, ctx_len, run_segments, batch, total_steps, warmup, seed;
    double lr, min_lr, weight_decay, train_seconds;
} run_info;

#define RUN_META 19
typedef struct run_meta {
    attn_kv kv[RUN_META];
    char buf[RUN_META][1100];
} run_meta;

static const char *arch_name(int a) { return a == ATTN_PLAIN_LSTM ? "lstm" : "sha-lstm"; }

static void run_meta_build(run_meta *m, const run_info *r) {
    static const char *const keys[RUN_META] = {
        "run.model", "run.arch", "run.data", "run.d", "run.layers", "run.attn_layer", "run.boom",
        "run.mem_len", "run.ctx", "run.run_segments", "run.batch", "run.steps", "run.warmup", "run.seed",
        "run.lr", "run.min_lr", "run.weight_decay", "run.train_seconds", "run.format"};
    snprintf(m->buf[0], 1100, "attn-rnnlm");
    snprintf(m->buf[1], 1100, "%s", arch_name(r->arch));
    snprintf(m->buf[2], 1100, "%s", r->data);
    const long long ll[11] = {r->d, r->layers, r->attn_layer, r->boom, r->mem_len, r->ctx_len,
                              r->run_segments, r->batch, r->total_steps, r->warmup, r->seed};
    for (int i = 0; i < 11; i++) snprintf(m->buf[3 + i], 1100, "%lld", ll[i]);
    snprintf(m->buf[14], 1100, "%.9g", r->lr);
    snprintf(m->buf[15], 1100, "%.9g", r->min_lr);
    snprintf(m->buf[16], 1100, "%.9g", r->weight_decay);
    snprintf(m->buf[17], 1100, "%.3f", r->train_seconds);
    snprintf(m->buf[18], 1100, "1");
    for (int i = 0; i < RUN_META; i++) {
        m->kv[i].key = keys[i];
        m->kv[i].value = m->buf[i];
    }
}

static int run_meta_read(const char *path, run_info *r) {
    attn_safetensors *f = NULL;
    if (attn_safetensors_open(&f, path) != ATTN_OK) return cli_fail(CMD, "cannot open the checkpoint");
    if (cli_check_family("attn rnnlm", f, path, "run.model", "attn-rnnlm", "attn rnnlm train")) {
        attn_safetensors_close(f);
        return 1;
    }
    meta_reader m = {f, path, {0}};
    const char *arch = meta_str(&m, "run.arch");
    r->arch = !strcmp(arch, "lstm") ? ATTN_PLAIN_LSTM : ATTN_SHA_LSTM;
    if (strcmp(arch, "lstm") && strcmp(arch, "sha-lstm") && !m.err[0])
        snprintf(m.err, sizeof m.err, "%s: run.arch '%s', expected sha-lstm or lstm", path, arch);
    snprintf(r->data, sizeof r->data, "%s", meta_str(&m, "run.data"));
    r->d = meta_ll(&m, "run.d", 1, 65536);
    r->layers = (int)meta_ll(&m, "run.layers", 1, ATTN_SHA_LSTM_MAX_LAYERS);
    r->attn_layer = (int)meta_ll(&m, "run.attn_layer", -1, ATTN_SHA_LSTM_MAX_LAYERS - 1);
    r->boom = meta_ll(&m, "run.boom", 1, 64);
    r->mem_len = meta_ll(&m, "run.mem_len", 0, 1 << 16);
    r->ctx_len = meta_ll(&m, "run.ctx", 1, 1 << 16);
    r->run_segments = meta_ll(&m, "run.run_segments", 1, 1 << 20);
    r->batch = meta_ll(&m, "run.batch", 1, 1 << 16);
    r->total_steps = meta_ll(&m, "run.steps", 1, 1ll << 40);
    r->warmup = meta_ll(&m, "run.warmup", 0, 1ll << 40);
    r->seed = meta_ll(&m, "run.seed", 0, 1ll << 62);
    r->lr = meta_real(&m, "run.lr", 0.0, 10.0);
    r->min_lr = meta_real(&m, "run.min_lr", 0.0, 10.0);
    r->weight_decay = meta_real(&m, "run.weight_decay", 0.0, 10.0);
    r->train_seconds = meta_real(&m, "run.train_seconds", 0.0, 1e12);
    attn_safetensors_close(f);
    if (!m.err[0] && r->attn_layer >= r->layers)
        snprintf(m.err, sizeof m.err, "%s: run.attn_layer %d with %d layers", path, r->attn_layer, r->layers);
    if (m.err[0]) {
        fprintf(stderr, "attn rnnlm: %s\n", m.err);
        return 1;
    }
    return 0;
}

static attn_sha_lstm_config model_config(const run_info *r) {
    attn_sha_lstm_config c;
    memset(&c, 0, sizeof c);
    c.arch = (attn_sha_lstm_arch)r->arch;
    c.vocab = VOCAB;
    c.d = r->d;
    c.layers = r->layers;
    c.attn_layer = r->attn_layer;
    c.boom = r->boom;
    c.mem_len = r->mem_len;
    return c;
}

static void dir_file(char *buf, size_t n, const char *dir, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

/* ---- evaluation: E parallel streams, state carried -------------------------------------- */

typedef struct eval_result {
    double bits;    /* bits per byte */
    int64_t bytes;  /* scored */
    double seconds;
} eval_result;

/* Bits per byte of ids[0 .. n): the text cut into E streams of
 * floor((n - 1) / E) predicted bytes each, read in segments of T with the
 * state carried; max_seg > 0 stops each stream after max_seg segments;
 * reset_every > 0 zeroes the state (and empties the memory) before every
 * reset_every-th segment (1: each segment alone, as a window model). */
static int evaluate(attn_ctx *ctx, const attn_sha_lstm *m, const int32_t *ids, int64_t n, int64_t E, int64_t T,
                    int64_t max_seg, int64_t reset_every, eval_result *out) {
    if (E > (n - 1) / T) E = (n - 1) / T;
    if (E < 1) {
        fprintf(stderr, "attn rnnlm: the evaluation text has %lld bytes, fewer than one segment of %lld\n",
                (long long)n, (long long)T + 1);
        return 1;
    }
    const int64_t Ls = (n - 1) / E;
    attn_sha_lstm_state st;
    if (attn_sha_lstm_state_init(&st, m, E) != ATTN_OK) return cli_fail(CMD, "evaluation state");
    int32_t *in = malloc(sizeof *in * (size_t)(E * T)), *tg = malloc(sizeof *tg * (size_t)(E * T));
    if (!in || !tg) {
        free(in);
        free(tg);
        attn_sha_lstm_state_free(&st);
        fprintf(stderr, "attn rnnlm: out of memory\n");
        return 1;
    }
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    const double t0 = attn_monotonic_s();
    double nats = 0.0;
    int64_t count = 0, seg = 0;
    int rc = 0;
    for (int64_t p = 0; p < Ls && (max_seg <= 0 || seg < max_seg); p += T, seg++) {
        const int64_t t = Ls - p < T ? Ls - p : T;
        if (reset_every > 0 && seg % reset_every == 0) attn_sha_lstm_state_reset(&st);
        for (int64_t e = 0; e < E; e++)
            for (int64_t j = 0; j < t; j++) {
                in[e * t + j] = ids[e * Ls + p + j];
                tg[e * t + j] = ids[e * Ls + p + j + 1];
            }
        attn_ctx_reset(ctx);
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){E, t}, in);
        attn_tensor *lg = attn_sha_lstm_logits(ctx, m, ti, &st, NULL);
        if (!lg) {
            fprintf(stderr, "attn rnnlm: evaluation: %s\n", attn_ctx_error(ctx));
            rc = 1;
            break;
        }
        const float *L = attn_f32(lg);
        for (int64_t i = 0; i < E * t; i++) nats += cli_row_nll(L + i * VOCAB, VOCAB, tg[i]);
        count += E * t;
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    free(in);
    free(tg);
    attn_sha_lstm_state_free(&st);
    out->bytes = count;
    out->bits = count ? nats / log(2.0) / (double)count : NAN;
    out->seconds = attn_monotonic_s() - t0;
    return rc;
}

/* ---- train ------------------------------------------------------------------------------ */

static void train_usage(FILE *f) {
    fprintf(f,
        "usage: attn rnnlm train --out DIR [options]\n\n"
        "Trains a byte-level SHA-LSTM (Merity 2019) or plain LSTM language model on\n"
        "DIR/train.txt, reading B streams segment after segment with the recurrent state\n"
        "and the attention memory carried, and reports validation bits per byte.\n"
        "Options take '--opt V' or '--opt=V'.\n\n"
        "data and model (fixed by the checkpoint: refused with --resume)\n"
        "  --data DIR           train.txt, valid.txt, test.txt as bytes (default data/wiki)\n"
        "  --arch sha-lstm|lstm the model (default sha-lstm)\n"
        "  --d N                width of the embedding and every LSTM (default 128)\n"
        "  --layers N           LSTM blocks / layers (default 4)\n"
        "  --attn-layer N       sha-lstm: the block with the attention (default layers - 2, or 0;\n"
        "                       -1: no attention, the ablation)\n"
        "  --boom N             sha-lstm: Boom's hidden width n d (default 4)\n"
        "  --mem-len M          sha-lstm: earlier positions kept as keys (default --ctx)\n"
        "  --ctx T              bytes per segment (default 64)\n"
        "  --run-segments R     each stream reads R consecutive segments from a random start,\n"
        "                       then starts over from a zero state elsewhere (default 16)\n"
        "schedule (with --resume: applied and printed)\n"
        "  --batch N            streams per step (default 8)\n"
        "  --steps N            optimizer steps (default 1000)\n"
        "  --time-budget S      stop after S seconds of training (final evaluation and checkpoint)\n"
        "  --lr X               peak learning rate of AdamW (default 2e-3)\n"
        "  --min-lr X           final learning rate of the cosine (default 1e-4)\n"
        "  --warmup N           linear warmup steps (default 100)\n"
        "  --weight-decay X     AdamW's decoupled weight decay (default 0.01)\n"
        "  --seed N             initialisation and stream starts (default 1)\n"
        "run\n"
        "  --eval-every N       validation every N steps and a checkpoint (default 500; 0: end only)\n"
        "  --eval-n N           segments per evaluation stream of the periodic evaluations\n"
        "                       (default 20; the final one reads all of valid.txt)\n"
        "  --log-every N        a JSONL line every N steps (default 50)\n"
        "  --threads N          threads for the ops (default: all)\n"
        "  --arena-mb N         context arena in MiB (default 1024)\n"
        "  --resume             continue DIR's run\n"
        "  --force              overwrite the run DIR holds\n"
        "  --quiet              no progress line\n\n"
        "Ctrl-C (SIGINT) or SIGTERM finishes the step, writes a checkpoint and exits 130.\n");
}

typedef struct rnnlm_train {
    run_info r;
    attn_sha_lstm *m;
    int32_t *tr, *va;
    int64_t ntr, nva;
    int32_t *bin, *btg;
    int64_t B, T, R;
    attn_sha_lstm_state st;
    int64_t st_step; /* the step whose segment the state follows (-1: none) */
    long long eval_seg;
    run_meta meta;
} rnnlm_train;

/* The batch of segment k of run j: stream b starts at a seeded position
 * (attn_lm_window_start's rule with step j over windows of R T + 1 bytes). */
static void run_segment(const rnnlm_train *g, int64_t j, int64_t k) {
    const int64_t T = g->T;
    for (int64_t b = 0; b < g->B; b++) {
        const int64_t a = attn_lm_window_start((uint64_t)g->r.seed, j, b, g->B, g->ntr, g->R * T) + k * T;
        for (int64_t t = 0; t < T; t++) {
            g->bin[b * T + t] = g->tr[a + t];
            g->btg[b * T + t] = g->tr[a + t + 1];
        }
    }
}

static attn_tensor *rt_loss(void *self, train_run *run, int64_t step, train_counts *c) {
    rnnlm_train *g = self;
    const int64_t j = step / g->R, k = step % g->R;
    attn_ctx *ctx = run->ctx;
    if (k == 0 || g->st_step != step - 1) {
        attn_sha_lstm_state_reset(&g->st);
        /* a resumed run in the middle of a run of segments: rebuild the state */
        const int grad = attn_ctx_grad_enabled(ctx);
        attn_ctx_set_grad_enabled(ctx, 0);
        for (int64_t kk = 0; kk < k; kk++) {
            run_segment(g, j, kk);
            attn_ctx_reset(ctx);
            attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){g->B, g->T}, g->bin);
            if (!ti || !attn_sha_lstm_logits(ctx, g->m, ti, &g->st, NULL)) {
                attn_ctx_set_grad_enabled(ctx, grad);
                return NULL;
            }
        }
        attn_ctx_reset(ctx);
        attn_ctx_set_grad_enabled(ctx, grad);
    }
    run_segment(g, j, k);
    attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){g->B, g->T}, g->bin);
    attn_tensor *tt = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){g->B, g->T}, g->btg);
    c->items = c->tokens = (double)(g->B * g->T);
    attn_tensor *loss = attn_sha_lstm_loss(ctx, g->m, ti, tt, &g->st);
    g->st_step = loss ? step : -1;
    return loss;
}

static int rt_evaluate(void *self, train_run *run, int last, double *seconds) {
    rnnlm_train *g = self;
    eval_result ev;
    if (evaluate(run->ctx, g->m, g->va, g->nva, g->B, g->T, last ? 0 : g->eval_seg, 0, &ev)) return 1;
    *seconds = ev.seconds;
    const attn_json_field f[] = {
        attn_json_str("event", "eval"),         attn_json_int("step", run->step),
        attn_json_num("valid_loss", ev.bits * log(2.0)), attn_json_num("valid_bpb", ev.bits),
        attn_json_int("bytes", ev.bytes),       attn_json_bool("full", last),
        attn_json_num("seconds", ev.seconds),
    };
    if (train_log(run, f, (int)(sizeof f / sizeof f[0]))) return 1;
    if (!run->quiet || last) {
        if (run->progress.tty && !run->quiet) fputc('\n', stderr);
        fprintf(last ? stdout : stderr, "step %lld: valid %.4f bits/byte (%lld bytes%s)\n", (long long)run->step,
                ev.bits, (long long)ev.bytes, last ? ", all" : "");
    }
    return 0;
}

static void rt_meta(void *self, train_run *run, double train_seconds_, const attn_kv **kv, int *n) {
    rnnlm_train *g = self;
    g->r.total_steps = run->total_steps;
    g->r.train_seconds = train_seconds_;
    run_meta_build(&g->meta, &g->r);
    *kv = g->meta.kv;
    *n = RUN_META;
}

static int rt_finish(void *self, train_run *run, double train_s, double train_cpu) {
    rnnlm_train *g = self;
    const int64_t steps = run->step - run->start;
    const double tps = (double)(steps * g->B * g->T) / (train_s > 1e-9 ? train_s : 1e-9);
    const double ms = steps > 0 ? 1000.0 * train_s / (double)steps : 0.0;
    printf("trained %lld steps in %.1f s: %.1f ms/step, %.0f bytes/s (evaluation %.1f s apart)%s\n",
           (long long)steps, train_s, ms, tps, run->eval_seconds,
           !strcmp(run->stopped, "time_budget") ? "; stopped by the time budget" : "");
    const attn_json_field f[] = {attn_json_str("event", "end"), attn_json_int("step", run->step),
                                 attn_json_str("stopped", run->stopped), attn_json_num("train_seconds", train_s),
                                 attn_json_num("step_ms", ms), attn_json_num("tokens_per_s", tps),
                                 attn_json_num("train_cpu_seconds", train_cpu)};
    return train_log(run, f, (int)(sizeof f / sizeof f[0]));
}

static const train_family rnnlm_family = {
    "B", NULL, NULL, "loss (nats per byte)", "valid", NULL, "train.jsonl, loss.svg",
    rt_loss, NULL, rt_evaluate, rt_meta, rt_finish, NULL, NULL, NULL,
};

static int cmd_rnnlm_train(int argc, char **argv) {
    const char *prog = "attn rnnlm train", *sub = "train", *data = "data/wiki", *arch = "sha-lstm";
    long long d = 128, layers = 4, attn_layer = -1, boom = 4, mem_len = -1, ctxlen = 64, run_segments = 16;
    int rc = 0, attn_layer_given = 0;
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
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--arch")) arch = v;
        else if (!strcmp(a, "--d")) rc = cli_opt_int(CMD, sub, a, v, 1, 4096, &d);
        else if (!strcmp(a, "--layers")) rc = cli_opt_int(CMD, sub, a, v, 1, ATTN_SHA_LSTM_MAX_LAYERS, &layers);
        else if (!strcmp(a, "--attn-layer")) {
            rc = cli_opt_int(CMD, sub, a, v, -1, ATTN_SHA_LSTM_MAX_LAYERS - 1, &attn_layer);
            attn_layer_given = 1;
        }
        else if (!strcmp(a, "--boom")) rc = cli_opt_int(CMD, sub, a, v, 1, 64, &boom);
        else if (!strcmp(a, "--mem-len")) rc = cli_opt_int(CMD, sub, a, v, 0, 1 << 16, &mem_len);
        else if (!strcmp(a, "--ctx")) rc = cli_opt_int(CMD, sub, a, v, 1, 1 << 16, &ctxlen);
        else if (!strcmp(a, "--run-segments")) rc = cli_opt_int(CMD, sub, a, v, 1, 1 << 20, &run_segments);
        else {
            fprintf(stderr, "attn rnnlm train: unknown option '%s' (try 'attn rnnlm train --help')\n", a);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "attn rnnlm train: %s needs a value\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if ((rc = train_opts_check(prog, &o))) return rc;
    if (strcmp(arch, "sha-lstm") && strcmp(arch, "lstm")) {
        fprintf(stderr, "attn rnnlm train: --arch '%s': expected sha-lstm or lstm\n", arch);
        return 2;
    }
    if (attn_layer >= layers) {
        fprintf(stderr, "attn rnnlm train: --attn-layer %lld with --layers %lld: expected 0 .. %lld\n", attn_layer,
                layers, layers - 1);
        return 2;
    }
    if (o.epochs > 0) {
        fprintf(stderr, "attn rnnlm train: --epochs is not supported (give --steps)\n");
        return 2;
    }
    const char *out = o.out;
    const int resume = o.resume;
    if ((rc = train_dir_check(prog, &o))) return rc;

    rnnlm_train g;
    memset(&g, 0, sizeof g);
    g.st_step = -1;
    g.eval_seg = o.eval_n > 0 ? o.eval_n : 20;
    run_info *rp = &g.r;
    attn_params *ps = NULL;
    attn_optim *opt = NULL;
    attn_ctx *ctx = NULL;
    train_run run;
    memset(&run, 0, sizeof run);
    char ckpt[4096];
    rc = 1;
    dir_file(ckpt, sizeof ckpt, out, "model.safetensors");
    if (resume) {
        if (run_meta_read(ckpt, rp)) goto done;
        train_resume_ll("--steps", o.steps, &rp->total_steps);
        train_resume_ll("--warmup", o.warmup, &rp->warmup);
        train_resume_real("--lr", o.lr, &rp->lr);
        train_resume_real("--min-lr", o.min_lr, &rp->min_lr);
        train_resume_real("--weight-decay", o.weight_decay, &rp->weight_decay);
        if (o.batch > 0 && o.batch != rp->batch) {
            fprintf(stderr, "attn rnnlm train: --batch is fixed by the checkpoint (%lld streams)\n", rp->batch);
            goto done;
        }
    } else {
        snprintf(rp->data, sizeof rp->data, "%s", data);
        rp->arch = !strcmp(arch, "lstm") ? ATTN_PLAIN_LSTM : ATTN_SHA_LSTM;
        rp->d = d;
        rp->layers = (int)layers;
        rp->attn_layer = (int)(attn_layer_given ? attn_layer : (layers >= 2 ? layers - 2 : 0));
        rp->boom = boom;
        rp->ctx_len = ctxlen;
        rp->mem_len = rp->arch == ATTN_SHA_LSTM ? (mem_len >= 0 ? mem_len : ctxlen) : 0;
        rp->run_segments = run_segments;
        rp->batch = o.batch > 0 ? o.batch : 8;
        rp->total_steps = o.steps > 0 ? o.steps : 1000;
        rp->warmup = o.warmup >= 0 ? o.warmup : 100;
        rp->seed = o.seed >= 0 ? o.seed : 1;
        rp->lr = o.lr >= 0 ? o.lr : 2e-3;
        rp->min_lr = o.min_lr >= 0 ? o.min_lr : 1e-4;
        rp->weight_decay = o.weight_decay >= 0 ? o.weight_decay : 0.01;
    }
    if (cli_load_bytes(CMD, rp->data, "train.txt", &g.tr, &g.ntr) ||
        cli_load_bytes(CMD, rp->data, "valid.txt", &g.va, &g.nva))
        goto done;
    g.T = rp->ctx_len;
    g.B = rp->batch;
    g.R = rp->run_segments;
    if (g.ntr <= g.R * g.T + 1 || g.nva <= g.T + 1) {
        fprintf(stderr,
                "attn rnnlm train: %s: train.txt needs more than --run-segments x --ctx + 1 = %lld bytes "
                "(has %lld), valid.txt more than %lld (has %lld)\n",
                rp->data, (long long)(g.R * g.T + 1), (long long)g.ntr, (long long)g.T + 1, (long long)g.nva);
        goto done;
    }
    const attn_sha_lstm_config mc = model_config(rp);
    attn_rng rng;
    attn_rng_init(&rng, (uint64_t)rp->seed);
    if (attn_params_new(&ps) != ATTN_OK || attn_sha_lstm_new(&g.m, ps, &mc, resume ? NULL : &rng) != ATTN_OK ||
        attn_sha_lstm_state_init(&g.st, g.m, g.B) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the model");
        goto done;
    }
    if (!resume && cli_make_dir(out) != 0) {
        fprintf(stderr, "attn rnnlm train: cannot create the directory %s: %s\n", out, strerror(errno));
        goto done;
    }
    {
        const train_setup su = {CMD, &rnnlm_family, &g, ps, ckpt, 0.9f, 0.999f, rp->lr, rp->min_lr,
                                rp->weight_decay, CLIP_NORM, rp->train_seconds, rp->total_steps,
                                rp->warmup, (uint64_t)rp->seed, 1024, 50, 500};
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
    g.bin = malloc(sizeof *g.bin * (size_t)(g.B * g.T));
    g.btg = malloc(sizeof *g.btg * (size_t)(g.B * g.T));
    if (!g.bin || !g.btg) {
        fprintf(stderr, "attn rnnlm train: out of memory\n");
        goto done;
    }
    char desc[512];
    if (rp->arch == ATTN_PLAIN_LSTM)
        snprintf(desc, sizeof desc, "LSTM LM: %d layers of %lld, tied embedding; %lld parameters", rp->layers, rp->d,
                 (long long)attn_params_numel(ps));
    else
        snprintf(desc, sizeof desc,
                 "SHA-LSTM LM: %d blocks of %lld, attention in block %d%s, memory %lld, Boom x%lld, tied embedding; "
                 "%lld parameters",
                 rp->layers, rp->d, rp->attn_layer, rp->attn_layer < 0 ? " (none)" : "", rp->mem_len, rp->boom,
                 (long long)attn_params_numel(ps));
    printf("%s\n", desc);
    printf("data: %s: train %lld bytes, valid %lld bytes\n", rp->data, (long long)g.ntr, (long long)g.nva);
    printf("schedule: %lld steps of %lld streams x %lld bytes (runs of %lld segments), AdamW lr %g -> %g "
           "(warmup %lld, cosine), wd %g; threads %d\n",
           rp->total_steps, (long long)g.B, (long long)g.T, (long long)g.R, rp->lr, rp->min_lr, rp->warmup,
           rp->weight_decay, attn_ctx_threads(ctx));
    if (resume) printf("resuming %s at step %lld\n", out, (long long)run.step);
    fflush(stdout);
    {
        const attn_json_field f[] = {
            attn_json_str("event", resume ? "resume" : "start"), attn_json_int("step", run.step),
            attn_json_str("data", rp->data), attn_json_str("arch", arch_name(rp->arch)),
            attn_json_int("parameters", attn_params_numel(ps)), attn_json_int("total_steps", rp->total_steps),
            attn_json_int("batch", g.B), attn_json_int("ctx", g.T),
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
    attn_sha_lstm_state_free(&g.st);
    attn_ctx_free(ctx);
    attn_optim_free(opt);
    attn_sha_lstm_free(g.m);
    attn_params_free(ps);
    return rc;
}

/* ---- eval and sample ------------------------------------------------------------------ */

/* Loads DIR's model (rng NULL + checkpoint) and a context. 0 or 1 (printed). */
static int load_model(const char *dir, long long threads, run_info *r, attn_params **ps, attn_sha_lstm **m,
                      attn_ctx **ctx) {
    char ckpt[4096];
    dir_file(ckpt, sizeof ckpt, dir, "model.safetensors");
    if (run_meta_read(ckpt, r)) return 1;
    const attn_sha_lstm_config mc = model_config(r);
    if (attn_params_new(ps) != ATTN_OK || attn_sha_lstm_new(m, *ps, &mc, NULL) != ATTN_OK ||
        attn_checkpoint_load(ckpt, *ps, NULL, NULL) != ATTN_OK)
        return cli_fail(CMD, "cannot load the model");
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)512 << 20;
    cc.n_threads = (int)threads;
    if (attn_ctx_new(ctx, &cc) != ATTN_OK) return cli_fail(CMD, "cannot create the context");
    return 0;
}

static int cmd_rnnlm_eval(int argc, char **argv) {
    const char *model = NULL, *split = "test", *data = NULL;
    long long streams = 8, threads = 0, segment = 0, reset_every = 0;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn rnnlm eval --model DIR [--split test|valid|train] [--data DIR] [--streams E]\n"
                   "                        [--segment T] [--reset-every K] [--threads N]\n\n"
                   "Bits per byte of a held-out text read as E parallel streams (default 8), each from a\n"
                   "zero state, segment after segment (default the training --ctx) with the recurrent\n"
                   "state and the attention memory carried; --reset-every K > 0 starts from a zero state\n"
                   "again every K segments (1: every segment alone, the context a window model sees).\n"
                   "Prints one JSON line.\n");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "attn rnnlm eval: %s needs a value (try --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--split")) split = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--streams")) rc = cli_opt_int(CMD, "eval", a, v, 1, 1 << 12, &streams);
        else if (!strcmp(a, "--segment")) rc = cli_opt_int(CMD, "eval", a, v, 1, 1 << 16, &segment);
        else if (!strcmp(a, "--reset-every")) rc = cli_opt_int(CMD, "eval", a, v, 0, 1 << 30, &reset_every);
        else if (!strcmp(a, "--threads")) rc = cli_opt_int(CMD, "eval", a, v, 1, cli_max_threads(), &threads);
        else {
            fprintf(stderr, "attn rnnlm eval: unknown option '%s' (try --help)\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!model) {
        fprintf(stderr, "attn rnnlm eval: --model DIR is required\n");
        return 2;
    }
    if (strcmp(split, "test") && strcmp(split, "valid") && strcmp(split, "train")) {
        fprintf(stderr, "attn rnnlm eval: --split '%s': expected test, valid or train\n", split);
        return 2;
    }
    run_info r;
    memset(&r, 0, sizeof r);
    attn_params *ps = NULL;
    attn_sha_lstm *m = NULL;
    attn_ctx *ctx = NULL;
    int32_t *ids = NULL;
    int64_t n = 0;
    char fname[64];
    snprintf(fname, sizeof fname, "%s.txt", split);
    rc = 1;
    if (load_model(model, threads, &r, &ps, &m, &ctx)) goto done;
    if (cli_load_bytes(CMD, data ? data : r.data, fname, &ids, &n)) goto done;
    eval_result ev;
    if (evaluate(ctx, m, ids, n, streams, segment > 0 ? segment : r.ctx_len, 0, reset_every, &ev)) goto done;
    printf("{\"model\": \"%s\", \"arch\": \"%s\", \"split\": \"%s\", \"parameters\": %lld, \"bytes\": %lld, "
           "\"bits_per_byte\": %.4f, \"streams\": %lld, \"reset_every\": %lld, \"seconds\": %.2f}\n",
           model, arch_name(r.arch), split, (long long)attn_params_numel(ps), (long long)ev.bytes, ev.bits, streams,
           reset_every, ev.seconds);
    rc = 0;
done:
    free(ids);
    attn_ctx_free(ctx);
    attn_sha_lstm_free(m);
    attn_params_free(ps);
    return rc;
}

static int cmd_rnnlm_sample(int argc, char **argv) {
    const char *model = NULL, *prompt = "The ";
    long long nbytes = 200, threads = 0, seed = 1;
    double temp = 0.8;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn rnnlm sample --model DIR [--prompt TEXT] [--bytes N] [--temperature X]\n"
                   "                          [--seed N] [--threads N]\n\n"
                   "Reads the prompt (default \"The \") and generates N bytes (default 200) one at a time,\n"
                   "the recurrent state and the attention memory carried (temperature default 0.8).\n");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "attn rnnlm sample: %s needs a value (try --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--bytes")) rc = cli_opt_int(CMD, "sample", a, v, 1, 1 << 20, &nbytes);
        else if (!strcmp(a, "--seed")) rc = cli_opt_int(CMD, "sample", a, v, 0, 1ll << 62, &seed);
        else if (!strcmp(a, "--temperature")) rc = cli_opt_real(CMD, "sample", a, v, 1e-3, 100.0, &temp);
        else if (!strcmp(a, "--threads")) rc = cli_opt_int(CMD, "sample", a, v, 1, cli_max_threads(), &threads);
        else {
            fprintf(stderr, "attn rnnlm sample: unknown option '%s' (try --help)\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!model) {
        fprintf(stderr, "attn rnnlm sample: --model DIR is required\n");
        return 2;
    }
    const int64_t np = (int64_t)strlen(prompt);
    if (np < 1) {
        fprintf(stderr, "attn rnnlm sample: --prompt must not be empty\n");
        return 2;
    }
    run_info r;
    memset(&r, 0, sizeof r);
    attn_params *ps = NULL;
    attn_sha_lstm *m = NULL;
    attn_ctx *ctx = NULL;
    attn_sha_lstm_state st;
    memset(&st, 0, sizeof st);
    int32_t *pids = NULL;
    rc = 1;
    if (load_model(model, threads, &r, &ps, &m, &ctx)) goto done;
    if (attn_sha_lstm_state_init(&st, m, 1) != ATTN_OK) {
        rc = cli_fail(CMD, "sampling state");
        goto done;
    }
    pids = malloc(sizeof *pids * (size_t)np);
    if (!pids) goto done;
    for (int64_t i = 0; i < np; i++) pids[i] = (unsigned char)prompt[i];
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    attn_rng rng;
    attn_rng_init(&rng, (uint64_t)seed);
    fwrite(prompt, 1, (size_t)np, stdout);
    /* the prompt in segments of the training length, then one byte at a time */
    int64_t fed = 0;
    attn_tensor *lg = NULL;
    while (fed < np) {
        const int64_t t = np - fed < r.ctx_len ? np - fed : r.ctx_len;
        attn_ctx_reset(ctx);
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, t}, pids + fed);
        if (!(lg = attn_sha_lstm_logits(ctx, m, ti, &st, NULL))) break;
        fed += t;
    }
    const double t0 = attn_monotonic_s();
    for (long long k = 0; lg && k < nbytes; k++) {
        const int64_t t = lg->shape[1];
        const float *row = attn_f32(lg) + (t - 1) * VOCAB;
        double p[VOCAB], mx = -INFINITY, z = 0.0;
        for (int i = 0; i < VOCAB; i++) mx = row[i] / temp > mx ? row[i] / temp : mx;
        for (int i = 0; i < VOCAB; i++) z += p[i] = exp(row[i] / temp - mx);
        double u = (double)attn_rng_next_uniform(&rng) * z;
        int32_t next = VOCAB - 1;
        for (int i = 0; i < VOCAB; i++)
            if ((u -= p[i]) < 0) {
                next = i;
                break;
            }
        fputc(next, stdout);
        attn_ctx_reset(ctx);
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, 1}, &next);
        lg = attn_sha_lstm_logits(ctx, m, ti, &st, NULL);
    }
    fputc('\n', stdout);
    if (!lg) {
        fprintf(stderr, "attn rnnlm sample: %s\n", attn_ctx_error(ctx));
        goto done;
    }
    fprintf(stderr, "attn rnnlm sample: %lld bytes in %.2f s (%s, temperature %g, seed %lld)\n", nbytes,
            attn_monotonic_s() - t0, arch_name(r.arch), temp, seed);
    rc = 0;
done:
    free(pids);
    attn_sha_lstm_state_free(&st);
    attn_ctx_free(ctx);
    attn_sha_lstm_free(m);
    attn_params_free(ps);
    return rc;
}

/* ---- viz: the single-headed attention over a text ---------------------------------------- */

static int cmd_rnnlm_viz(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *out = NULL;
    long long threads = 1, T = 32;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn rnnlm viz --model DIR --text TEXT --out FILE.svg [--segment T] [--threads N]\n\n"
                   "Draws the single-headed attention of a SHA-LSTM reading TEXT: the bytes before the\n"
                   "last T (default 32) are read first, segment by segment, and fill the memory; the\n"
                   "map is the last segment's queries (rows) over the memory and the segment (columns).\n");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "attn rnnlm viz: %s needs a value (try --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--text")) text = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--segment")) rc = cli_opt_int(CMD, "viz", a, v, 1, 128, &T);
        else if (!strcmp(a, "--threads")) rc = cli_opt_int(CMD, "viz", a, v, 1, cli_max_threads(), &threads);
        else {
            fprintf(stderr, "attn rnnlm viz: unknown option '%s' (try --help)\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!model || !text || !out || !text[0]) {
        fprintf(stderr, "attn rnnlm viz: --model DIR, a non-empty --text TEXT and --out FILE.svg are required\n");
        return 2;
    }
    run_info r;
    memset(&r, 0, sizeof r);
    attn_params *ps = NULL;
    attn_sha_lstm *m = NULL;
    attn_ctx *ctx = NULL;
    attn_sha_lstm_state st;
    memset(&st, 0, sizeof st);
    int32_t *ids = NULL;
    char (*lab)[8] = NULL;
    const char **rl = NULL, **cl = NULL;
    rc = 1;
    if (load_model(model, threads, &r, &ps, &m, &ctx)) goto done;
    if (r.arch != ATTN_SHA_LSTM || r.attn_layer < 0) {
        fprintf(stderr, "attn rnnlm viz: %s has no attention to draw\n", model);
        goto done;
    }
    if (attn_sha_lstm_state_init(&st, m, 1) != ATTN_OK) {
        rc = cli_fail(CMD, "state");
        goto done;
    }
    const int64_t n = (int64_t)strlen(text), t_last = n < T ? n : T, pre = n - t_last;
    const int64_t keep = pre < r.mem_len ? pre : r.mem_len, S = keep + t_last;
    ids = malloc(sizeof *ids * (size_t)n);
    lab = calloc((size_t)S, sizeof *lab);
    rl = calloc((size_t)S, sizeof *rl);
    cl = calloc((size_t)S, sizeof *cl);
    if (!ids || !lab || !rl || !cl) goto done;
    for (int64_t i = 0; i < n; i++) ids[i] = (unsigned char)text[i];
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    for (int64_t p = 0; p < pre; p += r.ctx_len) {
        const int64_t t = pre - p < r.ctx_len ? pre - p : r.ctx_len;
        attn_ctx_reset(ctx);
        if (!attn_sha_lstm_logits(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, t}, ids + p), &st, NULL)) {
            fprintf(stderr, "attn rnnlm viz: %s\n", attn_ctx_error(ctx));
            goto done;
        }
    }
    attn_ctx_reset(ctx);
    attn_tensor *w = NULL;
    if (!attn_sha_lstm_logits(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, t_last}, ids + pre), &st, &w) ||
        !w || w->shape[3] != S) {
        fprintf(stderr, "attn rnnlm viz: %s\n", attn_ctx_error(ctx));
        goto done;
    }
    for (int64_t j = 0; j < S; j++) {
        const unsigned char ch = (unsigned char)text[n - S + j];
        if (ch == ' ') snprintf(lab[j], sizeof lab[j], "_");
        else if (ch < 32 || ch >= 127) snprintf(lab[j], sizeof lab[j], "%02x", ch);
        else snprintf(lab[j], sizeof lab[j], "%c", ch);
        cl[j] = lab[j];
    }
    for (int64_t t = 0; t < t_last; t++) rl[t] = lab[keep + t];
    char title[200];
    snprintf(title, sizeof title, "SHA: memory %lld + %lld", (long long)keep, (long long)t_last);
    if (cli_viz_grid(out, title, &w, 1, 1, rl, cl)) goto done;
    {
        /* what the map shows, in numbers: the weight on the memory, the
         * largest weight, the entropy against a uniform row's */
        double mem_mass = 0.0, wmax = 0.0, ent = 0.0, ent_u = 0.0;
        const float *W = attn_f32(w);
        for (int64_t t = 0; t < t_last; t++) {
            for (int64_t j = 0; j < S; j++) {
                const double p = W[t * S + j];
                if (j < keep) mem_mass += p;
                if (p > wmax) wmax = p;
                if (p > 0) ent -= p * log(p);
            }
            ent_u += log((double)(keep + t + 1));
        }
        printf("%lld queries over %lld memory + %lld keys: weight on the memory %.3f, largest weight %.3f, "
               "entropy %.2f nats (uniform over the visible keys %.2f)\n",
               (long long)t_last, (long long)keep, (long long)t_last, mem_mass / (double)t_last, wmax,
               ent / (double)t_last, ent_u / (double)t_last);
    }
    rc = 0;
done:
    free(ids);
    free(lab);
    free(rl);
    free(cl);
    attn_sha_lstm_state_free(&st);
    attn_ctx_free(ctx);
    attn_sha_lstm_free(m);
    attn_params_free(ps);
    return rc;
}

int cmd_rnnlm(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: attn rnnlm train|eval|sample|viz [options]   (attn rnnlm SUB --help)\n"
                   "Byte-level SHA-LSTM (Merity 2019) and LSTM language models with the state carried.\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_rnnlm_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval")) return cmd_rnnlm_eval(argc - 1, argv + 1);
    if (!strcmp(argv[1], "sample")) return cmd_rnnlm_sample(argc - 1, argv + 1);
    if (!strcmp(argv[1], "viz")) return cmd_rnnlm_viz(argc - 1, argv + 1);
    fprintf(stderr, "attn rnnlm: unknown subcommand '%s' (train, eval, sample or viz)\n", argv[1]);
    return 2;
}
