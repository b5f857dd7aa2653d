/* cmd_gpt.c: `attn gpt train|sample`: the decoder-only GPT language model
 * (include/attn/gpt.h) on a text corpus, by default Debian's fortunes
 * (data/fortunes, scripts/get_fortunes_data.sh). docs/gpt.md is the manual.
 *
 *   attn gpt train  --out DIR [--data DIR] [--tokenizer char|bpe] [model and schedule options]
 *   attn gpt sample --model DIR [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K]
 *                   [--top-p P] [--seed S]
 *
 * A model directory holds model.safetensors (an attn checkpoint: parameters,
 * AdamW state, and in its metadata the model configuration (gpt.*) and the
 * run's settings (run.*)), vocab (the tokeniser), train.jsonl (the log) and
 * loss.svg (the loss curves). Everything needed to resume or sample is read
 * back from there.
 */
#include <errno.h>
#include <signal.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "attn/attn.h"
#include "commands.h"
#include "train_dist.h"
#include "train_driver.h"

#define CMD "gpt"
#define CLIP_NORM 1.0f

static double now_s(void) { return attn_monotonic_s(); }

static int opt_int(const char *sub, const char *a, const char *v, long long lo, long long hi,
                   long long *out) {
    return cli_opt_int(CMD, sub, a, v, lo, hi, out);
}

static int opt_real(const char *sub, const char *a, const char *v, double lo, double hi, double *out) {
    return cli_opt_real(CMD, sub, a, v, lo, hi, out);
}

static int make_dir(const char *path) { return cli_make_dir(path); }

static void dir_file(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
}

/* The position kinds the GPT takes (not Shaw's). */
static int pos_from_name(const char *s, attn_pos_kind *out) {
    attn_pos_kind k;
    if (attn_pos_kind_parse(s, &k) != 0 || k == ATTN_POS_SHAW) return -1;
    *out = k;
    return 0;
}

/* ---- the run: settings kept in the checkpoint's metadata ---------------------------- */

typedef struct run_info {
    char data[1024];      /* the corpus directory (train.txt, valid.txt) */
    attn_vocab_kind tok;
    long long bpe_merges, batch, total_steps, warmup, seed, step;
    double lr, min_lr, weight_decay, train_seconds;
} run_info;

#define RUN_META 12
typedef struct run_meta {
    attn_kv kv[ATTN_GPT_META + RUN_META];
    char gbuf[ATTN_GPT_META * 32];
    char vbuf[RUN_META][1100];
    int n;
} run_meta;

static void run_meta_build(run_meta *m, const attn_gpt *g, const run_info *r) {
    attn_gpt_config_meta(&g->cfg, m->kv, m->gbuf);
    m->n = ATTN_GPT_META;
    const char *keys[RUN_META] = {"run.model",  "run.data",   "run.tokenizer",   "run.bpe_merges",
                                  "run.batch",  "run.steps",  "run.warmup",      "run.seed",
                                  "run.lr",     "run.min_lr", "run.weight_decay", "run.train_seconds"};
    snprintf(m->vbuf[0], 1100, "attn-gpt");
    snprintf(m->vbuf[1], 1100, "%s", r->data);
    snprintf(m->vbuf[2], 1100, "%s", r->tok == ATTN_VOCAB_BPE ? "bpe" : "char");
    snprintf(m->vbuf[3], 1100, "%lld", r->bpe_merges);
    snprintf(m->vbuf[4], 1100, "%lld", r->batch);
    snprintf(m->vbuf[5], 1100, "%lld", r->total_steps);
    snprintf(m->vbuf[6], 1100, "%lld", r->warmup);
    snprintf(m->vbuf[7], 1100, "%lld", r->seed);
    snprintf(m->vbuf[8], 1100, "%.9g", r->lr);
    snprintf(m->vbuf[9], 1100, "%.9g", r->min_lr);
    snprintf(m->vbuf[10], 1100, "%.9g", r->weight_decay);
    snprintf(m->vbuf[11], 1100, "%.3f", r->train_seconds);
    for (int i = 0; i < RUN_META; i++) {
        m->kv[m->n].key = keys[i];
        m->kv[m->n].value = m->vbuf[i];
        m->n++;
    }
}

/* Reads run.* from a checkpoint; 0 on success. */
static int run_meta_read(const char *path, run_info *r) {
    attn_safetensors *f = NULL;
    if (attn_safetensors_open(&f, path) != ATTN_OK) return cli_fail(CMD, "cannot open the checkpoint");
    const char *v[RUN_META - 1];
    const char *keys[RUN_META] = {"run.data",  "run.tokenizer", "run.bpe_merges", "run.batch",
                                  "run.steps", "run.warmup",    "run.seed",       "run.lr",
                                  "run.min_lr", "run.weight_decay", "run.train_seconds", "step"};
    if (cli_check_family("attn gpt", f, path, "run.model", "attn-gpt", "attn gpt train")) {
        attn_safetensors_close(f);
        return 1;
    }
    const char *missing = NULL;
    for (int i = 0; i < RUN_META && !missing; i++) {
        const char *x = attn_safetensors_metadata(f, keys[i]);
        if (!x) missing = keys[i];
        else if (i < RUN_META - 1) v[i] = x;
    }
    if (missing) {
        attn_safetensors_close(f);
        fprintf(stderr, "attn gpt: %s: a checkpoint of attn gpt train without its metadata '%s'\n", path,
                missing);
        return 1;
    }
    /* every number range-checked as its option is (a file is untrusted: a
     * batch of 2^59 + 1 made B T wrap and the batcher overflow its buffer) */
    meta_reader m = {f, path, {0}};
    snprintf(r->data, sizeof r->data, "%s", v[0]);
    r->tok = !strcmp(v[1], "bpe") ? ATTN_VOCAB_BPE : ATTN_VOCAB_CHAR;
    r->bpe_merges = meta_ll(&m, "run.bpe_merges", 0, 100000);
    r->batch = meta_ll(&m, "run.batch", 1, 1 << 20);
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
        fprintf(stderr, "attn gpt: %s\n", m.err);
        return 1;
    }
    return 0;
}

/* ---- evaluation ------------------------------------------------------------------------- */

typedef struct eval_result {
    double loss;   /* nats per token */
    double bpc;    /* bits per character */
    int64_t tokens, chars;
    double seconds;
} eval_result;

/* Mean loss over the first max_windows evaluation windows (0: all) of a
 * stream, B windows per forward, gradients off. */
static int evaluate(attn_ctx *ctx, const attn_gpt *m, const attn_vocab *v, const attn_lm_tokens *s,
                    int64_t B, int64_t max_windows, eval_result *out) {
    const int64_t T = m->cfg.ctx_len;
    int64_t nw = attn_lm_eval_windows(s, T);
    if (max_windows > 0 && nw > max_windows) nw = max_windows;
    int32_t *in = malloc((size_t)(B * T) * sizeof *in), *tg = malloc((size_t)(B * T) * sizeof *tg);
    if (!in || !tg) {
        free(in);
        free(tg);
        fprintf(stderr, "attn gpt: out of memory\n");
        return 1;
    }
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    double nats = 0.0;
    int64_t tokens = 0, chars = 0;
    const double t0 = now_s();
    int rc = 0;
    for (int64_t w = 0; w < nw; w += B) {
        int64_t rows = 0;
        attn_lm_eval_batch(s, T, w, B < nw - w ? B : nw - w, in, tg, &rows);
        attn_ctx_reset(ctx);
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){rows, T}, in);
        attn_tensor *tt = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){rows, T}, tg);
        attn_tensor *loss = attn_gpt_loss(ctx, m, ti, tt, -1);
        if (!loss) {
            fprintf(stderr, "attn gpt: evaluation: %s\n", attn_ctx_error(ctx));
            rc = 1;
            break;
        }
        nats += (double)attn_f32(loss)[0] * (double)(rows * T);
        tokens += rows * T;
        chars += attn_lm_token_chars(v, tg, rows * T);
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    free(in);
    free(tg);
    out->tokens = tokens;
    out->chars = chars;
    out->loss = tokens ? nats / (double)tokens : NAN;
    out->bpc = chars ? nats / log(2.0) / (double)chars : NAN;
    out->seconds = now_s() - t0;
    return rc;
}

/* ---- train: the GPT family of the training driver --------------------------------------- */

static void train_usage(FILE *f) {
    fprintf(f,
        "usage: attn gpt train --out DIR [options]\n\n"
        "Trains a decoder-only Transformer language model on DIR/../train.txt of a corpus\n"
        "and reports the validation loss and bits per character. Options take '--opt V'\n"
        "or '--opt=V'; old spellings are kept as aliases for one release.\n\n"
        "data (fixed by the checkpoint: refused with --resume)\n"
        "  --data DIR             corpus with train.txt and valid.txt (default data/fortunes)\n"
        "  --tokenizer char|bpe   tokens (default char; alias --tok)\n"
        "  --bpe-merges N         BPE merges learned on train.txt (default 1000)\n"
        "model (fixed by the checkpoint: refused with --resume)\n"
        "  --layers N             blocks (default 4)\n"
        "  --heads N              attention heads (default 4)\n"
        "  --kv-heads N           key/value heads (0: --heads; fewer: grouped-query)\n"
        "  --d-model N            width (default 128)\n"
        "  --d-ff N               feed-forward width (0: 4 d-model)\n"
        "  --ctx N                context length, the training window T (default 64; alias --max-len)\n"
        "  --pos KIND             learned|sinusoidal|rope|alibi|none (default learned)\n"
        "  --tie 0|1              output head tied to the embedding (default 1; alias --untied: --tie 0)\n"
        "  --dropout P            dropout (default 0)\n"
        "  --attention-kernel K   auto|fused|reference: the attention op (default auto: the\n"
        "                         fused one from 512 keys; docs/transformer.md)\n"
        "schedule (with --resume: applied and printed)\n"
        "  --batch N              windows per step (default 16)\n"
        "  --steps N              optimizer steps (default 2000; with --resume: the new total)\n"
        "  --epochs E             instead of --steps: E passes over the training tokens\n"
        "  --time-budget S        stop after S seconds of training (final evaluation and checkpoint)\n"
        "  --lr X                 peak learning rate of AdamW (default 1e-3)\n"
        "  --min-lr X             final learning rate of the cosine (default lr / 10)\n"
        "  --warmup N             linear warmup steps (default 100)\n"
        "  --weight-decay X       AdamW's decoupled weight decay (default 0.1)\n"
        "  --seed N               initialisation, batches, dropout (default 1; fixed by the checkpoint)\n"
        "run\n"
        "  --eval-every N         validation loss every N steps and a checkpoint (default 500; 0: end only)\n"
        "  --eval-n N             windows of the periodic evaluations (default 256; the final one uses\n"
        "                         all; alias --eval-windows)\n"
        "  --log-every N          a JSONL line every N steps (default 50)\n"
        "  --threads N            threads for the ops (default: all)\n"
        "  --arena-mb N           context arena in MiB (default 1024)\n"
        "  --resume               continue DIR's run: same model, optimizer state and batches\n"
        "  --force                overwrite the run DIR holds (refused without it)\n"
        "  --quiet                no progress line\n\n"
        "Ctrl-C (SIGINT) or SIGTERM finishes the step, writes a checkpoint and exits 130.\n");
}

typedef struct gpt_train {
    run_info r;
    attn_gpt *m;
    attn_vocab *vocab;
    attn_lm_tokens tr, va;
    int32_t *bin, *btg;
    int64_t B, T;
    long long eval_windows;
    run_meta meta;
} gpt_train;

static attn_tensor *gpt_step_loss(void *self, train_run *run, int64_t step, train_counts *c) {
    gpt_train *g = self;
    /* Dropout masks are a function of (seed, step): a resumed run replays them. */
    attn_ctx_set_rng(run->ctx, (uint64_t)g->r.seed, (uint64_t)step << 24);
    attn_lm_batch(&g->tr, (uint64_t)g->r.seed, step, g->B, g->T, g->bin, g->btg);
    /* Several ranks: each takes its rows of the same global batch; every
     * row has T tokens, all counted, so the loss is a mean over rows x T. */
    int64_t lo = 0, hi = g->B;
    if (train_dist_size() > 1) {
        train_shard(g->B, &lo, &hi);
        /* the dropout masks of these rows of the single-process batch */
        attn_ctx_set_batch_slice(run->ctx, lo, hi - lo, g->B);
    }
    const int64_t rows = hi - lo;
    attn_tensor *ti = attn_tensor_from(run->ctx, ATTN_I32, 2, (int64_t[]){rows, g->T}, g->bin + lo * g->T);
    attn_tensor *tt = attn_tensor_from(run->ctx, ATTN_I32, 2, (int64_t[]){rows, g->T}, g->btg + lo * g->T);
    c->items = c->tokens = (double)(rows * g->T);
    c->weight = c->tokens;
    c->sharded = train_dist_size() > 1;
    return attn_gpt_loss(run->ctx, g->m, ti, tt, -1);
}

static int gpt_evaluate(void *self, train_run *run, int last, double *seconds) {
    gpt_train *g = self;
    eval_result ev;
    if (evaluate(run->ctx, g->m, g->vocab, &g->va, g->B, last ? 0 : g->eval_windows, &ev)) return 1;
    *seconds = ev.seconds;
    const attn_json_field f[] = {
        attn_json_str("event", "eval"), attn_json_int("step", run->step),
        attn_json_num("valid_loss", ev.loss), attn_json_num("valid_bpc", ev.bpc),
        attn_json_int("tokens", ev.tokens), attn_json_int("chars", ev.chars),
        attn_json_bool("full", last), attn_json_num("seconds", ev.seconds),
    };
    if (train_log(run, f, (int)(sizeof f / sizeof f[0]))) return 1;
    if (!run->quiet || last) {
        if (run->progress.tty && !run->quiet) fputc('\n', stderr);
        fprintf(last ? stdout : stderr, "step %lld: valid loss %.4f nats/token, %.4f bits/char (%lld tokens%s)\n",
                (long long)run->step, ev.loss, ev.bpc, (long long)ev.tokens, last ? ", all" : "");
    }
    return 0;
}

static void gpt_meta(void *self, train_run *run, double train_seconds_, const attn_kv **kv, int *n) {
    gpt_train *g = self;
    g->r.total_steps = run->total_steps;
    g->r.train_seconds = train_seconds_;
    run_meta_build(&g->meta, g->m, &g->r);
    *kv = g->meta.kv;
    *n = g->meta.n;
}

static int gpt_finish(void *self, train_run *run, double train_s, double train_cpu) {
    gpt_train *g = self;
    const double ntok = (double)((run->step - run->start) * g->B * g->T);
    const double tps = ntok / (train_s > 1e-9 ? train_s : 1e-9);
    const double cpu_tps = ntok / (train_cpu > 1e-9 ? train_cpu : 1e-9);
    printf("trained %lld steps in %.1f s: %.0f tokens/s, %.0f tokens per CPU second (evaluation %.1f s apart)%s\n",
           (long long)(run->step - run->start), train_s, tps, cpu_tps, run->eval_seconds,
           !strcmp(run->stopped, "time_budget") ? "; stopped by the time budget" : "");
    const attn_json_field f[] = {attn_json_str("event", "end"), attn_json_int("step", run->step),
                                 attn_json_str("stopped", run->stopped),
                                 attn_json_num("train_seconds", train_s), attn_json_num("tokens_per_s", tps),
                                 attn_json_num("train_cpu_seconds", train_cpu),
                                 attn_json_num("tokens_per_cpu_s", cpu_tps)};
    return train_log(run, f, (int)(sizeof f / sizeof f[0]));
}

static const train_family gpt_family = {
    "tok", NULL, NULL, "loss (nats per token)", "valid", NULL, NULL,
    gpt_step_loss, NULL, gpt_evaluate, gpt_meta, gpt_finish, NULL, NULL, NULL,
};

static int cmd_gpt_train(int argc, char **argv) {
    const char *prog = "attn gpt train", *sub = "train", *data = "data/fortunes", *tok = "char";
    const char *pos = "learned";
    long long bpe_merges = 1000, layers = 4, heads = 4, kv_heads = 0, d_model = 128, d_ff = 0, ctxlen = 64;
    double dropout = 0.0;
    int tied = 1, rc = 0;
    const char *akern = "auto";
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
        if (!strcmp(a, "--untied")) { tied = 0; train_fixed(&o, a); continue; }
        if (!strcmp(a, "--tie")) {
            if ((rc = train_opt_bool(prog, argv, argc, &i, &tied))) return rc;
            train_fixed(&o, a);
            continue;
        }
        if (strcmp(a, "--attention-kernel")) train_fixed(&o, a); /* every other option fixes the model */
        i++;
        if (!strcmp(a, "--data")) data = v, rc = train_path_value(prog, a, v, "a directory");
        else if (!strcmp(a, "--tokenizer") || !strcmp(a, "--tok")) tok = v;
        else if (!strcmp(a, "--pos")) pos = v;
        else if (!strcmp(a, "--attention-kernel")) akern = v;
        else if (!strcmp(a, "--bpe-merges")) rc = opt_int(sub, a, v, 0, 100000, &bpe_merges);
        else if (!strcmp(a, "--layers")) rc = opt_int(sub, a, v, 1, 256, &layers);
        else if (!strcmp(a, "--heads")) rc = opt_int(sub, a, v, 1, 1024, &heads);
        else if (!strcmp(a, "--kv-heads")) rc = opt_int(sub, a, v, 0, 1024, &kv_heads);
        else if (!strcmp(a, "--d-model")) rc = opt_int(sub, a, v, 1, 65536, &d_model);
        else if (!strcmp(a, "--d-ff")) rc = opt_int(sub, a, v, 0, 1 << 20, &d_ff);
        else if (!strcmp(a, "--ctx") || !strcmp(a, "--max-len")) rc = opt_int(sub, a, v, 1, 1 << 20, &ctxlen);
        else if (!strcmp(a, "--dropout")) rc = opt_real(sub, a, v, 0.0, 0.99, &dropout);
        else {
            fprintf(stderr, "attn gpt train: unknown option '%s' (try 'attn gpt train --help')\n", a);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "attn gpt train: %s needs a value\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if ((rc = train_opts_check(prog, &o))) return rc;
    attn_pos_kind pk = ATTN_POS_LEARNED;
    if (pos_from_name(pos, &pk)) {
        fprintf(stderr, "attn gpt train: --pos '%s': expected learned, sinusoidal, rope, alibi or none\n", pos);
        return 2;
    }
    if (strcmp(tok, "char") && strcmp(tok, "bpe")) {
        fprintf(stderr, "attn gpt train: --tokenizer '%s': expected char or bpe\n", tok);
        return 2;
    }
    attn_attention_kernel kernel = ATTN_KERNEL_AUTO;
    if (!strcmp(akern, "fused"))
        kernel = ATTN_KERNEL_FUSED;
    else if (!strcmp(akern, "reference"))
        kernel = ATTN_KERNEL_REFERENCE;
    else if (strcmp(akern, "auto")) {
        fprintf(stderr, "attn gpt train: --attention-kernel '%s': expected auto, fused or reference\n",
                akern);
        return 2;
    }
    const char *out = o.out;
    const int resume = o.resume;
    if ((rc = train_dir_check(prog, &o))) return rc;

    gpt_train g;
    memset(&g, 0, sizeof g);
    g.eval_windows = o.eval_n > 0 ? o.eval_n : 256;
    run_info *rp = &g.r;
    attn_params *ps = NULL;
    attn_optim *opt = NULL;
    attn_ctx *ctx = NULL;
    train_run run;
    memset(&run, 0, sizeof run);
    char *train_text = NULL, *valid_text = NULL;
    size_t train_len = 0, valid_len = 0;
    char path[4096];
    rc = 1;

    char ckpt[4096], vpath[4096];
    dir_file(ckpt, sizeof ckpt, out, "model.safetensors");
    dir_file(vpath, sizeof vpath, out, "vocab");
    if (resume) {
        if (run_meta_read(ckpt, rp)) goto done;
        train_resume_ll("--steps", o.steps, &rp->total_steps);
        train_resume_ll("--batch", o.batch, &rp->batch);
        train_resume_ll("--warmup", o.warmup, &rp->warmup);
        train_resume_real("--lr", o.lr, &rp->lr);
        train_resume_real("--min-lr", o.min_lr, &rp->min_lr);
        train_resume_real("--weight-decay", o.weight_decay, &rp->weight_decay);
        if (attn_vocab_load(vpath, &g.vocab) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot load the vocabulary");
            goto done;
        }
        attn_gpt_config gc;
        const attn_status lst = attn_gpt_config_load(ckpt, &gc);
        gc.kernel = kernel; /* a run-time choice, not stored with the model */
        if (lst != ATTN_OK || attn_params_new(&ps) != ATTN_OK ||
            attn_gpt_new(&g.m, ps, &gc, NULL) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot rebuild the model");
            goto done;
        }
        if (attn_vocab_size(g.vocab) != gc.vocab) { /* a vocabulary that is not the model's */
            fprintf(stderr, "attn gpt: %s has %d tokens, the model in %s was built for %lld: not "
                            "this run's vocabulary\n",
                    vpath, attn_vocab_size(g.vocab), ckpt, (long long)gc.vocab);
            goto done;
        }
    } else {
        snprintf(rp->data, sizeof rp->data, "%s", data);
        rp->tok = !strcmp(tok, "bpe") ? ATTN_VOCAB_BPE : ATTN_VOCAB_CHAR;
        rp->bpe_merges = bpe_merges;
        rp->batch = o.batch > 0 ? o.batch : 16;
        rp->total_steps = o.steps > 0 ? o.steps : 2000;
        rp->warmup = o.warmup >= 0 ? o.warmup : 100;
        rp->seed = o.seed >= 0 ? o.seed : 1;
        rp->lr = o.lr >= 0 ? o.lr : 1e-3;
        rp->min_lr = o.min_lr >= 0 ? o.min_lr : rp->lr / 10.0;
        rp->weight_decay = o.weight_decay >= 0 ? o.weight_decay : 0.1;
    }
    if (train_lr_check(prog, rp->lr, rp->min_lr)) { /* --min-lr alone above the default or resumed lr */
        rc = 2;
        goto done;
    }
    dir_file(path, sizeof path, rp->data, "train.txt");
    if (attn_lm_text_load(path, &train_text, &train_len) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot read the training text (run scripts/get_fortunes_data.sh)");
        goto done;
    }
    dir_file(path, sizeof path, rp->data, "valid.txt");
    if (attn_lm_text_load(path, &valid_text, &valid_len) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot read the validation text");
        goto done;
    }
    const double t_prep = now_s();
    if (!g.vocab &&
        attn_lm_vocab_learn(train_text, train_len, rp->tok, (int)rp->bpe_merges, 1, &g.vocab) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot build the vocabulary");
        goto done;
    }
    if (attn_lm_tokenize(g.vocab, train_text, train_len, &g.tr) != ATTN_OK ||
        attn_lm_tokenize(g.vocab, valid_text, valid_len, &g.va) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot tokenise the corpus");
        goto done;
    }
    const double prep_s = now_s() - t_prep;
    if (!resume) {
        attn_gpt_config gc;
        memset(&gc, 0, sizeof gc);
        gc.vocab = attn_vocab_size(g.vocab);
        gc.ctx_len = ctxlen;
        gc.n_layers = (int)layers;
        gc.n_heads = (int)heads;
        gc.n_kv_heads = (int)kv_heads;
        gc.d_model = d_model;
        gc.d_ff = d_ff;
        gc.dropout = (float)dropout;
        gc.pos = pk;
        gc.tied = tied;
        gc.kernel = kernel;
        attn_rng rng;
        attn_rng_init(&rng, (uint64_t)rp->seed);
        if (attn_params_new(&ps) != ATTN_OK || attn_gpt_new(&g.m, ps, &gc, &rng) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot create the model");
            goto done;
        }
        if (make_dir(out) != 0) {
            fprintf(stderr, "attn gpt train: cannot create the directory %s: %s\n", out, strerror(errno));
            goto done;
        }
        if (train_dist_rank() == 0 && attn_vocab_save(g.vocab, vpath) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot save the vocabulary");
            goto done;
        }
    }
    const int64_t T = g.m->cfg.ctx_len, B = rp->batch;
    g.T = T;
    g.B = B;
    if ((rc = train_shard_check(prog, B))) goto done;
    rc = 1;
    if (g.tr.n <= T || g.va.n <= T) {
        fprintf(stderr, "attn gpt train: the corpus is shorter than one window of %lld tokens\n", (long long)T + 1);
        goto done;
    }
    if (o.epochs > 0) { /* an epoch: the training tokens once, in windows of B x T */
        const long long per_epoch = (long long)((g.tr.n + B * T - 1) / (B * T));
        if (resume)
            train_resume_ll("--steps (from --epochs)", o.epochs * per_epoch, &rp->total_steps);
        else
            rp->total_steps = o.epochs * per_epoch;
    }
    {
        const train_setup su = {CMD, &gpt_family, &g, ps, ckpt, 0.9f, 0.95f, rp->lr, rp->min_lr,
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
    g.bin = malloc((size_t)(B * T) * sizeof *g.bin);
    g.btg = malloc((size_t)(B * T) * sizeof *g.btg);
    if (!g.bin || !g.btg) {
        fprintf(stderr, "attn gpt train: out of memory\n");
        goto done;
    }
    const attn_gpt_config *gcf = &g.m->cfg;
    char desc[512];
    snprintf(desc, sizeof desc,
             "GPT: %d layers, %d heads (%d kv), d_model %lld, d_ff %lld, ctx %lld, %s positions, %s head, "
             "dropout %g; %s vocabulary of %d tokens; %lld parameters",
             gcf->n_layers, gcf->n_heads, gcf->n_kv_heads, (long long)gcf->d_model, (long long)gcf->d_ff,
             (long long)gcf->ctx_len, attn_pos_kind_name(gcf->pos), gcf->tied ? "tied" : "untied",
             (double)gcf->dropout, rp->tok == ATTN_VOCAB_BPE ? "BPE" : "character", attn_vocab_size(g.vocab),
             (long long)attn_params_numel(ps));
    printf("%s\n", desc);
    printf("data: %s: train %lld tokens (%lld chars), valid %lld tokens (%lld chars); tokenised in %.1f s\n",
           rp->data, (long long)g.tr.n, (long long)g.tr.chars, (long long)g.va.n, (long long)g.va.chars, prep_s);
    printf("schedule: %lld steps of %lld x %lld tokens, AdamW lr %g -> %g (warmup %lld, cosine), wd %g; "
           "threads %d\n",
           rp->total_steps, (long long)B, (long long)T, rp->lr, rp->min_lr, rp->warmup, rp->weight_decay,
           attn_ctx_threads(ctx));
    if (resume) printf("resuming %s at step %lld\n", out, (long long)step);
    fflush(stdout);
    {
        const attn_json_field f[] = {
            attn_json_str("event", resume ? "resume" : "start"), attn_json_int("step", step),
            attn_json_str("data", rp->data), attn_json_str("tokenizer", rp->tok == ATTN_VOCAB_BPE ? "bpe" : "char"),
            attn_json_int("vocab", attn_vocab_size(g.vocab)), attn_json_int("parameters", attn_params_numel(ps)),
            attn_json_int("total_steps", rp->total_steps), attn_json_int("batch", B), attn_json_int("ctx", T),
            attn_json_int("threads", attn_ctx_threads(ctx)), attn_json_str("description", desc),
        };
        if (train_log(&run, f, (int)(sizeof f / sizeof f[0]))) goto done;
    }
    rc = train_loop(&run);
done:
    if (run.log) attn_jsonl_close(run.log);
    free(g.bin);
    free(g.btg);
    attn_lm_tokens_free(&g.tr);
    attn_lm_tokens_free(&g.va);
    free(train_text);
    free(valid_text);
    attn_ctx_free(ctx);
    attn_optim_free(opt);
    attn_gpt_free(g.m);
    attn_params_free(ps);
    attn_vocab_free(g.vocab);
    return rc;
}

/* ---- sample ------------------------------------------------------------------------------------ */

static void sample_usage(FILE *f) {
    fprintf(f,
        "usage: attn gpt sample --model DIR [options]\n\n"
        "Prints text generated by a model of 'attn gpt train' (with a KV cache), each token\n"
        "as it is drawn; Ctrl-C stops after the current token (exit status 130).\n\n"
        "  --prompt TEXT        the beginning (default: a new fortune, i.e. \"%%\\n\")\n"
        "  --tokens N           tokens to generate (default 300)\n"
        "  --temperature T      0: greedy (default 0.8)\n"
        "  --top-k K            only the K most probable tokens (default 0: all)\n"
        "  --top-p P            nucleus sampling (default 0.95; 1: off)\n"
        "  --seed N             (default 1)\n"
        "  --html FILE          then write the attention explorer of the prompt and the\n"
        "                       generated text (its last ctx tokens; docs/explorer.md)\n"
        "  --weights FILE       with --html: every weight at full precision as text\n"
        "  --threads N          threads for the ops (default: all)\n");
}

/* Streaming: each drawn token is decoded and printed at once (and flushed);
 * a signal stops the generation after the current token. */
static volatile sig_atomic_t sample_signal = 0;

static void on_sample_signal(int sig) { sample_signal = sig; }

typedef struct stream_state {
    const attn_vocab *vocab;
    char *buf; /* the decoding buffer */
    size_t cap;
} stream_state;

static int print_token(void *user, int32_t tok, int64_t i) {
    stream_state *s = user;
    (void)i;
    size_t len = 0;
    attn_vocab_decode(s->vocab, &tok, 1, NULL, 0, &len);
    if (len + 1 > s->cap) {
        char *p = realloc(s->buf, len + 1);
        if (!p) return 1;
        s->buf = p;
        s->cap = len + 1;
    }
    if (attn_vocab_decode(s->vocab, &tok, 1, s->buf, s->cap, &len) == ATTN_OK) fputs(s->buf, stdout);
    fflush(stdout);
    return sample_signal != 0;
}

/* --html: one forward pass over the prompt and the drawn tokens (the last
 * ctx_len of them), its self-attention as an explorer page. */
static int sample_page(attn_ctx *ctx, const attn_gpt *m, const attn_vocab *vocab, const int32_t *prompt,
                       int64_t n_prompt, const int32_t *drawn, int64_t n_drawn, const char *html,
                       const char *weights, const char *dir) {
    const int64_t all = n_prompt + n_drawn;
    const int64_t T = all < m->cfg.ctx_len ? all : m->cfg.ctx_len;
    const int64_t first = all - T; /* index of the first token shown */
    int32_t *seq = malloc(sizeof *seq * (size_t)T);
    const char **labels = malloc(sizeof *labels * (size_t)T);
    int rc = 1;
    if (!seq || !labels) {
        fprintf(stderr, "attn gpt sample: out of memory\n");
        goto out;
    }
    for (int64_t t = 0; t < T; t++) {
        const int64_t i = first + t;
        seq[t] = i < n_prompt ? prompt[i] : drawn[i - n_prompt];
        labels[t] = attn_vocab_piece(vocab, seq[t]);
    }
    if (m->cfg.n_layers > ATTN_EXPLORER_MAX_LAYERS) {
        fprintf(stderr, "attn gpt sample: %d layers do not fit a page\n", m->cfg.n_layers);
        goto out;
    }
    attn_tensor *maps[ATTN_EXPLORER_MAX_LAYERS];
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    attn_tensor *it = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, T}, seq);
    if (!it || !attn_gpt_logits_ex(ctx, m, it, NULL, maps)) {
        rc = cli_fail(CMD, "the forward pass for --html failed");
        goto out;
    }
    char title[160], subt[320];
    snprintf(title, sizeof title, "GPT self-attention (causal) over a sample of %s", dir);
    snprintf(subt, sizeof subt, "%lld prompt and %lld generated tokens%s; %d layers, %d heads",
             (long long)n_prompt, (long long)n_drawn, first ? " (the last ctx_len shown)" : "",
             m->cfg.n_layers, m->cfg.n_heads);
    cli_page page = {0};
    if (cli_page_add(&page, "gpt sample", "decoder self-attention", ATTN_EXPLORER_SELF, maps, m->cfg.n_layers,
                     labels, labels, "query", "key", 0)) {
        cli_page_free(&page);
        goto out;
    }
    char note[96];
    snprintf(note, sizeof note, "tokens %lld.. are generated", (long long)(n_prompt > first ? n_prompt - first : 0));
    page.maps[0].note = note;
    rc = cli_page_write(&page, "gpt sample", html, weights, title, subt, 1);
out:
    free(seq);
    free(labels);
    return rc;
}

static int cmd_gpt_sample(int argc, char **argv) {
    const char *sub = "sample", *model = NULL, *prompt = "%\n", *html = NULL, *weights = NULL;
    long long tokens = 300, top_k = 0, seed = 1, threads = 0;
    double temp = 0.8, top_p = 0.95;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            sample_usage(stdout);
            return 0;
        }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--html")) html = v;
        else if (!strcmp(a, "--weights")) weights = v;
        else if (!strcmp(a, "--tokens")) rc = opt_int(sub, a, v, 0, 1 << 24, &tokens);
        else if (!strcmp(a, "--top-k")) rc = opt_int(sub, a, v, 0, 1 << 24, &top_k);
        else if (!strcmp(a, "--seed")) rc = opt_int(sub, a, v, 0, 1ll << 62, &seed);
        else if (!strcmp(a, "--threads")) rc = opt_int(sub, a, v, 0, cli_max_threads(), &threads);
        else if (!strcmp(a, "--temperature")) rc = opt_real(sub, a, v, 0.0, 100.0, &temp);
        else if (!strcmp(a, "--top-p")) rc = opt_real(sub, a, v, 0.0, 1.0, &top_p);
        else {
            fprintf(stderr, "attn gpt sample: unknown option '%s' (try 'attn gpt sample --help')\n", a);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "attn gpt sample: %s needs a value\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!model) {
        fprintf(stderr, "attn gpt sample: --model DIR is required (try 'attn gpt sample --help')\n");
        return 2;
    }
    if (weights && !html) {
        fprintf(stderr, "attn gpt sample: --weights goes with --html FILE\n");
        return 2;
    }
    char path[4096];
    attn_vocab *vocab = NULL;
    attn_params *ps = NULL;
    attn_gpt *m = NULL;
    attn_ctx *ctx = NULL;
    int32_t *ids = NULL, *outi = NULL;
    char *text = NULL;
    rc = 1;
    dir_file(path, sizeof path, model, "vocab");
    if (attn_vocab_load(path, &vocab) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot load the vocabulary");
        goto done;
    }
    dir_file(path, sizeof path, model, "model.safetensors");
    if (attn_params_new(&ps) != ATTN_OK || attn_gpt_load(path, ps, &m) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot load the model");
        goto done;
    }
    if (attn_vocab_size(vocab) != m->cfg.vocab) { /* a vocabulary that is not the model's */
        fprintf(stderr, "attn gpt: the vocabulary of %s has %d tokens, the model was built for "
                        "%lld: not this model's vocabulary\n",
                model, attn_vocab_size(vocab), (long long)m->cfg.vocab);
        goto done;
    }
    attn_ctx_config cc = {0};
    cc.n_threads = (int)threads;
    cc.arena_bytes = (size_t)256 << 20;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    size_t n = 0;
    attn_vocab_encode(vocab, prompt, strlen(prompt), NULL, 0, &n);
    if (n == 0) {
        fprintf(stderr, "attn gpt sample: the prompt must have at least one token\n");
        goto done;
    }
    ids = malloc(n * sizeof *ids);
    outi = malloc((size_t)(tokens > 0 ? tokens : 1) * sizeof *outi);
    if (!ids || !outi || attn_vocab_encode(vocab, prompt, strlen(prompt), ids, n, &n) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot encode the prompt");
        goto done;
    }
    attn_sample_opts so = {(float)temp, (int)top_k, (float)top_p, (uint64_t)seed, ATTN_TOKEN_SPECIALS};
    /* Streamed: the prompt, then each token as it is drawn; Ctrl-C stops
     * after the current token, with what was drawn printed. */
    fputs(prompt, stdout);
    fflush(stdout);
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sample_signal;
    sigemptyset(&sa.sa_mask);
    sample_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    stream_state sst = {vocab, NULL, 0};
    int64_t done_n = 0;
    const double t0 = now_s();
    const attn_status gst =
        attn_gpt_generate_stream(ctx, m, ids, (int64_t)n, tokens, &so, outi, NULL, print_token, &sst, &done_n);
    const double dt = now_s() - t0;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    text = sst.buf;
    printf("\n");
    fflush(stdout);
    if (gst != ATTN_OK) {
        rc = cli_fail(CMD, "generation failed");
        goto done;
    }
    fprintf(stderr, "(%lld tokens in %.2f s, %.0f tokens/s, KV cache; temperature %g, top-k %lld, top-p %g, seed %lld)\n",
            (long long)done_n, dt, dt > 0 ? (double)done_n / dt : 0.0, temp, top_k, top_p, seed);
    if (sample_signal) {
        fprintf(stderr, "attn gpt sample: interrupted by %s after %lld of %lld tokens\n",
                sample_signal == SIGINT ? "SIGINT" : "SIGTERM", (long long)done_n, tokens);
        rc = 130;
        goto done;
    }
    rc = html ? sample_page(ctx, m, vocab, ids, (int64_t)n, outi, done_n, html, weights, model) : 0;
done:
    free(text);
    free(ids);
    free(outi);
    attn_ctx_free(ctx);
    attn_gpt_free(m);
    attn_params_free(ps);
    attn_vocab_free(vocab);
    return rc;
}

int cmd_gpt(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: attn gpt train|sample [options]   (attn gpt train --help, attn gpt sample --help)\n\n"
                   "  train    train a decoder-only Transformer language model (default corpus: data/fortunes)\n"
                   "  sample   generate text from a trained model\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_gpt_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "sample")) return cmd_gpt_sample(argc - 1, argv + 1);
    fprintf(stderr, "attn gpt: unknown subcommand '%s' (train or sample)\n", argv[1]);
    return 2;
}
