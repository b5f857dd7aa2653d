/* cmd_lstmn.c: `attn lstmn train|eval`: word-level language models with one
 * recurrent layer, the LSTMN (include/attn/lstmn.h, Cheng et al. 2016) or an
 * LSTM baseline (--cell lstm), include/attn/lstmn_lm.h.
 *
 * The data is a directory of train.txt, valid.txt and test.txt in the format
 * of data/kjv (scripts/get_kjv_data.sh: a line per verse "  V text",
 * headings at the start of a line): verses are read as words (lstmn_word_split
 * in lstmn_vocab.c), the vocabulary is the --vocab most frequent words of train.txt,
 * every other word becomes <unk>, and each verse ends with <eos>. The
 * vocabulary is saved with the model (DIR/vocab.txt, one word per line in id
 * order). Training runs on the shared driver (cli/train_driver.h) on random
 * windows of --ctx words, each from a zero state; the evaluation walks the
 * split in consecutive windows of --ctx words, each from a zero state, and
 * reports nats per word and perplexity. `attn lstmn viz` draws an LSTMN's
 * intra-attention over a text. docs/cli.md and docs/lstmn.md are the
 * manual. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/lm_data.h"
#include "attn/lstmn_lm.h"
#include "commands.h"
#include "lstmn_vocab.h"
#include "train_driver.h"

#define CMD "lstmn"
#define CLIP_NORM 1.0f


/* ---- the run's settings (checkpoint metadata run.*) --------------------------------- */

typedef struct run_info {
    char data[1024];
    int cell, summary;
    long long vocab, embed, hidden, attn, ctx_len, batch, total_steps, warmup, seed;
    double dropout, lr, min_lr, weight_decay, train_seconds;
} run_info;

#define RUN_META 19
typedef struct run_meta {
    attn_kv kv[RUN_META];
    char buf[RUN_META][1100];
} run_meta;

static void run_meta_build(run_meta *m, const run_info *r) {
    static const char *const keys[RUN_META] = {
        "run.model", "run.cell",  "run.data",   "run.vocab",  "run.embed",        "run.hidden",
        "run.attn",  "run.summary", "run.dropout", "run.ctx", "run.batch",        "run.steps",
        "run.warmup", "run.seed", "run.lr",     "run.min_lr", "run.weight_decay", "run.train_seconds",
        "run.format"};
    snprintf(m->buf[0], 1100, "attn-lstmn-lm");
    snprintf(m->buf[1], 1100, "%s", r->cell == ATTN_LM_CELL_LSTM ? "lstm" : "lstmn");
    snprintf(m->buf[2], 1100, "%s", r->data);
    const long long ll[5] = {r->vocab, r->embed, r->hidden, r->attn, r->summary};
    for (int i = 0; i < 5; i++) snprintf(m->buf[3 + i], 1100, "%lld", ll[i]);
    snprintf(m->buf[8], 1100, "%.9g", r->dropout);
    const long long l2[5] = {r->ctx_len, r->batch, r->total_steps, r->warmup, r->seed};
    for (int i = 0; i < 5; i++) snprintf(m->buf[9 + i], 1100, "%lld", l2[i]);
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

static int run_meta_read(const char *path, run_info *r, long long *step) {
    attn_safetensors *f = NULL;
    if (attn_safetensors_open(&f, path) != ATTN_OK) return cli_fail(CMD, "cannot open the checkpoint");
    if (cli_check_family("attn lstmn", f, path, "run.model", "attn-lstmn-lm", "attn lstmn train")) {
        attn_safetensors_close(f);
        return 1;
    }
    meta_reader m = {f, path, {0}};
    const char *cell = meta_str(&m, "run.cell");
    r->cell = !strcmp(cell, "lstm") ? ATTN_LM_CELL_LSTM : ATTN_LM_CELL_LSTMN;
    if (strcmp(cell, "lstm") && strcmp(cell, "lstmn") && !m.err[0])
        snprintf(m.err, sizeof m.err, "%s: run.cell '%s', expected lstm or lstmn", path, cell);
    snprintf(r->data, sizeof r->data, "%s", meta_str(&m, "run.data"));
    r->vocab = meta_ll(&m, "run.vocab", 2, 1 << 24);
    r->embed = meta_ll(&m, "run.embed", 1, 65536);
    r->hidden = meta_ll(&m, "run.hidden", 1, 65536);
    r->attn = meta_ll(&m, "run.attn", 0, 65536);
    r->summary = (int)meta_ll(&m, "run.summary", 0, 1);
    r->dropout = meta_real(&m, "run.dropout", 0.0, 0.99);
    r->ctx_len = meta_ll(&m, "run.ctx", 1, 1 << 16);
    r->batch = meta_ll(&m, "run.batch", 1, 1 << 20);
    r->total_steps = meta_ll(&m, "run.steps", 1, 1ll << 40);
    r->warmup = meta_ll(&m, "run.warmup", 0, 1ll << 40);
    r->seed = meta_ll(&m, "run.seed", 0, 1ll << 62);
    r->lr = meta_real(&m, "run.lr", 0.0, 10.0);
    r->min_lr = meta_real(&m, "run.min_lr", 0.0, 10.0);
    r->weight_decay = meta_real(&m, "run.weight_decay", 0.0, 10.0);
    r->train_seconds = meta_real(&m, "run.train_seconds", 0.0, 1e12);
    if (step) *step = meta_ll(&m, "step", 0, 1ll << 40);
    attn_safetensors_close(f);
    if (m.err[0]) {
        fprintf(stderr, "attn lstmn: %s\n", m.err);
        return 1;
    }
    return 0;
}

static attn_lstmn_lm_config model_config(const run_info *r) {
    attn_lstmn_lm_config c;
    memset(&c, 0, sizeof c);
    c.cell = (attn_lstmn_lm_cell)r->cell;
    c.vocab = r->vocab;
    c.embed = r->embed;
    c.hidden = r->hidden;
    c.attn = r->attn;
    c.summary_term = r->summary;
    c.dropout = (float)r->dropout;
    return c;
}

/* ---- evaluation ---------------------------------------------------------------------- */

typedef struct eval_result {
    double loss; /* nats per word */
    int64_t words;
    double seconds;
} eval_result;

/* Mean loss over the first max_windows windows (0: all) of a stream. */
static int evaluate(attn_ctx *ctx, const attn_lstmn_lm *m, const attn_lm_tokens *s, int64_t B,
                    int64_t T, int64_t max_windows, eval_result *out) {
    int64_t nw = attn_lm_eval_windows(s, T);
    if (max_windows > 0 && nw > max_windows) nw = max_windows;
    if (nw < 1) {
        fprintf(stderr, "attn lstmn: the evaluation text is shorter than one window of %lld words\n",
                (long long)T + 1);
        return 1;
    }
    int32_t *in = malloc(sizeof *in * (size_t)(B * T)), *tg = malloc(sizeof *tg * (size_t)(B * T));
    if (!in || !tg) {
        free(in);
        free(tg);
        fprintf(stderr, "attn lstmn: out of memory\n");
        return 1;
    }
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    double nats = 0.0;
    int64_t words = 0;
    const double t0 = attn_monotonic_s();
    int rc = 0;
    for (int64_t w = 0; w < nw; w += B) {
        int64_t rows = 0;
        attn_lm_eval_batch(s, T, w, B < nw - w ? B : nw - w, in, tg, &rows);
        attn_ctx_reset(ctx);
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){rows, T}, in);
        attn_tensor *tt = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){rows, T}, tg);
        attn_tensor *loss = attn_lstmn_lm_loss(ctx, m, ti, tt);
        if (!loss) {
            fprintf(stderr, "attn lstmn: evaluation: %s\n", attn_ctx_error(ctx));
            rc = 1;
            break;
        }
        nats += (double)attn_f32(loss)[0] * (double)(rows * T);
        words += rows * T;
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    free(in);
    free(tg);
    out->words = words;
    out->loss = words ? nats / (double)words : NAN;
    out->seconds = attn_monotonic_s() - t0;
    return rc;
}

/* ---- train: the family of the training driver ------------------------------------------ */

static void train_usage(FILE *f) {
    fprintf(f,
        "usage: attn lstmn train --out DIR [options]\n\n"
        "Trains a word-level language model with one LSTMN layer (or an LSTM, --cell lstm)\n"
        "on DIR/train.txt of a corpus in data/kjv's format and reports the validation\n"
        "perplexity. Options take '--opt V' or '--opt=V'.\n\n"
        "data and model (fixed by the checkpoint: refused with --resume)\n"
        "  --data DIR           train.txt, valid.txt, test.txt (default data/kjv)\n"
        "  --vocab N            the N - 2 most frequent training words, <unk>, <eos> (default 5000)\n"
        "  --cell lstmn|lstm    the recurrent layer (default lstmn)\n"
        "  --embed N            word embedding size (default 128)\n"
        "  --hidden N           hidden size (default 128)\n"
        "  --attn N             LSTMN attention size (default: --hidden)\n"
        "  --summary 0|1        LSTMN: the score's h~_{t-1} term (default 1; docs/lstmn.md)\n"
        "  --dropout P          on embeddings and outputs (default 0)\n"
        "  --ctx N              words per window, each from a zero state (default 35)\n"
        "schedule (with --resume: applied and printed)\n"
        "  --batch N            windows per step (default 32)\n"
        "  --steps N            optimizer steps (default 2000)\n"
        "  --epochs E           instead of --steps: E passes over the training words\n"
        "  --time-budget S      stop after S seconds of training (final evaluation and checkpoint)\n"
        "  --lr X               peak learning rate of AdamW (default 3e-3)\n"
        "  --min-lr X           final learning rate of the cosine (default lr / 10)\n"
        "  --warmup N           linear warmup steps (default 100)\n"
        "  --weight-decay X     AdamW's decoupled weight decay (default 0.01)\n"
        "  --seed N             initialisation, batches, dropout (default 1)\n"
        "run\n"
        "  --eval-every N       validation every N steps and a checkpoint (default 500; 0: end only)\n"
        "  --eval-n N           windows of the periodic evaluations (default 200; the final one: all)\n"
        "  --log-every N        a JSONL line every N steps (default 50)\n"
        "  --threads N          threads for the ops (default: all)\n"
        "  --arena-mb N         context arena in MiB (default 1024)\n"
        "  --resume             continue DIR's run\n"
        "  --force              overwrite the run DIR holds\n"
        "  --quiet              no progress line\n\n"
        "Ctrl-C (SIGINT) or SIGTERM finishes the step, writes a checkpoint and exits 130.\n");
}

typedef struct lstmn_train {
    run_info r;
    attn_lstmn_lm *m;
    attn_lm_tokens tr, va;
    int32_t *bin, *btg;
    int64_t B, T;
    long long eval_windows;
    run_meta meta;
} lstmn_train;

static attn_tensor *lt_loss(void *self, train_run *run, int64_t step, train_counts *c) {
    lstmn_train *g = self;
    attn_ctx_set_rng(run->ctx, (uint64_t)g->r.seed, (uint64_t)step << 24);
    attn_lm_batch(&g->tr, (uint64_t)g->r.seed, step, g->B, g->T, g->bin, g->btg);
    attn_tensor *ti = attn_tensor_from(run->ctx, ATTN_I32, 2, (int64_t[]){g->B, g->T}, g->bin);
    attn_tensor *tt = attn_tensor_from(run->ctx, ATTN_I32, 2, (int64_t[]){g->B, g->T}, g->btg);
    c->items = c->tokens = (double)(g->B * g->T);
    return attn_lstmn_lm_loss(run->ctx, g->m, ti, tt);
}

static int lt_evaluate(void *self, train_run *run, int last, double *seconds) {
    lstmn_train *g = self;
    eval_result ev;
    if (evaluate(run->ctx, g->m, &g->va, g->B, g->T, last ? 0 : g->eval_windows, &ev)) return 1;
    *seconds = ev.seconds;
    const attn_json_field f[] = {
        attn_json_str("event", "eval"),       attn_json_int("step", run->step),
        attn_json_num("valid_loss", ev.loss), attn_json_num("valid_ppl", exp(ev.loss)),
        attn_json_int("words", ev.words),     attn_json_bool("full", last),
        attn_json_num("seconds", ev.seconds),
    };
    if (train_log(run, f, (int)(sizeof f / sizeof f[0]))) return 1;
    if (!run->quiet || last) {
        if (run->progress.tty && !run->quiet) fputc('\n', stderr);
        fprintf(last ? stdout : stderr, "step %lld: valid loss %.4f nats/word, perplexity %.2f (%lld words%s)\n",
                (long long)run->step, ev.loss, exp(ev.loss), (long long)ev.words, last ? ", all" : "");
    }
    return 0;
}

static void lt_meta(void *self, train_run *run, double train_seconds_, const attn_kv **kv, int *n) {
    lstmn_train *g = self;
    g->r.total_steps = run->total_steps;
    g->r.train_seconds = train_seconds_;
    run_meta_build(&g->meta, &g->r);
    *kv = g->meta.kv;
    *n = RUN_META;
}

static int lt_finish(void *self, train_run *run, double train_s, double train_cpu) {
    lstmn_train *g = self;
    const double ntok = (double)((run->step - run->start) * g->B * g->T);
    const double tps = ntok / (train_s > 1e-9 ? train_s : 1e-9);
    printf("trained %lld steps in %.1f s: %.0f words/s (evaluation %.1f s apart)%s\n",
           (long long)(run->step - run->start), train_s, tps, run->eval_seconds,
           !strcmp(run->stopped, "time_budget") ? "; stopped by the time budget" : "");
    const attn_json_field f[] = {attn_json_str("event", "end"), attn_json_int("step", run->step),
                                 attn_json_str("stopped", run->stopped),
                                 attn_json_num("train_seconds", train_s),
                                 attn_json_num("tokens_per_s", tps),
                                 attn_json_num("train_cpu_seconds", train_cpu)};
    return train_log(run, f, (int)(sizeof f / sizeof f[0]));
}

static const train_family lstmn_family = {
    "word", NULL, NULL, "loss (nats per word)", "valid", NULL, NULL,
    lt_loss, NULL, lt_evaluate, lt_meta, lt_finish, NULL, NULL, NULL,
};

static void dir_file(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
}

static int cmd_lstmn_train(int argc, char **argv) {
    const char *prog = "attn lstmn train", *sub = "train", *data = "data/kjv", *cell = "lstmn";
    long long vocab = 5000, embed = 128, hidden = 128, attn = 0, ctxlen = 35;
    double dropout = 0.0;
    int summary = 1, rc = 0;
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
        if (!strcmp(a, "--summary")) {
            if ((rc = train_opt_bool(prog, argv, argc, &i, &summary))) return rc;
            train_fixed(&o, a);
            continue;
        }
        train_fixed(&o, a);
        i++;
        if (!strcmp(a, "--data")) data = v, rc = train_path_value(prog, a, v, "a directory");
        else if (!strcmp(a, "--cell")) cell = v;
        else if (!strcmp(a, "--vocab")) rc = cli_opt_int(CMD, sub, a, v, 3, 1 << 24, &vocab);
        else if (!strcmp(a, "--embed")) rc = cli_opt_int(CMD, sub, a, v, 1, 65536, &embed);
        else if (!strcmp(a, "--hidden")) rc = cli_opt_int(CMD, sub, a, v, 1, 65536, &hidden);
        else if (!strcmp(a, "--attn")) rc = cli_opt_int(CMD, sub, a, v, 0, 65536, &attn);
        else if (!strcmp(a, "--ctx")) rc = cli_opt_int(CMD, sub, a, v, 1, 4096, &ctxlen);
        else if (!strcmp(a, "--dropout")) rc = cli_opt_real(CMD, sub, a, v, 0.0, 0.99, &dropout);
        else {
            fprintf(stderr, "attn lstmn train: unknown option '%s' (try 'attn lstmn train --help')\n", a);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "attn lstmn train: %s needs a value\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if ((rc = train_opts_check(prog, &o))) return rc;
    if (strcmp(cell, "lstmn") && strcmp(cell, "lstm")) {
        fprintf(stderr, "attn lstmn train: --cell '%s': expected lstmn or lstm\n", cell);
        return 2;
    }
    const char *out = o.out;
    const int resume = o.resume;
    if ((rc = train_dir_check(prog, &o))) return rc;

    lstmn_train g;
    memset(&g, 0, sizeof g);
    g.eval_windows = o.eval_n > 0 ? o.eval_n : 200;
    run_info *rp = &g.r;
    attn_params *ps = NULL;
    attn_optim *opt = NULL;
    attn_ctx *ctx = NULL;
    train_run run;
    memset(&run, 0, sizeof run);
    lstmn_vocab voc;
    memset(&voc, 0, sizeof voc);
    char ckpt[4096], vpath[4096], path[4096];
    long long step = 0;
    rc = 1;
    dir_file(ckpt, sizeof ckpt, out, "model.safetensors");
    dir_file(vpath, sizeof vpath, out, "vocab.txt");
    if (resume) {
        if (run_meta_read(ckpt, rp, NULL)) goto done;
        train_resume_ll("--steps", o.steps, &rp->total_steps);
        train_resume_ll("--batch", o.batch, &rp->batch);
        train_resume_ll("--warmup", o.warmup, &rp->warmup);
        train_resume_real("--lr", o.lr, &rp->lr);
        train_resume_real("--min-lr", o.min_lr, &rp->min_lr);
        train_resume_real("--weight-decay", o.weight_decay, &rp->weight_decay);
        if (lstmn_vocab_load(vpath, &voc)) goto done;
        if (voc.n != rp->vocab) {
            fprintf(stderr, "attn lstmn: %s has %lld words, the model was built for %lld\n", vpath,
                    (long long)voc.n, rp->vocab);
            goto done;
        }
    } else {
        snprintf(rp->data, sizeof rp->data, "%s", data);
        rp->cell = !strcmp(cell, "lstm") ? ATTN_LM_CELL_LSTM : ATTN_LM_CELL_LSTMN;
        rp->summary = rp->cell == ATTN_LM_CELL_LSTMN ? summary : 0;
        rp->embed = embed;
        rp->hidden = hidden;
        rp->attn = rp->cell == ATTN_LM_CELL_LSTMN ? (attn > 0 ? attn : hidden) : 0;
        rp->dropout = dropout;
        rp->ctx_len = ctxlen;
        rp->batch = o.batch > 0 ? o.batch : 32;
        rp->total_steps = o.steps > 0 ? o.steps : 2000;
        rp->warmup = o.warmup >= 0 ? o.warmup : 100;
        rp->seed = o.seed >= 0 ? o.seed : 1;
        rp->lr = o.lr >= 0 ? o.lr : 3e-3;
        rp->min_lr = o.min_lr >= 0 ? o.min_lr : rp->lr / 10.0;
        rp->weight_decay = o.weight_decay >= 0 ? o.weight_decay : 0.01;
        dir_file(path, sizeof path, rp->data, "train.txt");
        char *text = NULL;
        size_t len = 0;
        if (attn_lm_text_load(path, &text, &len) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot read the training text (scripts/get_kjv_data.sh makes data/kjv)");
            goto done;
        }
        const int bad = lstmn_vocab_learn(text, len, vocab, &voc);
        free(text);
        if (bad) goto done;
        rp->vocab = voc.n;
    }
    int64_t unk_tr = 0, unk_va = 0;
    if (lstmn_encode_file(rp->data, "train.txt", &voc, &g.tr, &unk_tr) ||
        lstmn_encode_file(rp->data, "valid.txt", &voc, &g.va, &unk_va))
        goto done;
    const int64_t T = rp->ctx_len, B = rp->batch;
    g.T = T;
    g.B = B;
    if (g.tr.n <= T || g.va.n <= T) {
        fprintf(stderr, "attn lstmn train: %s: a split has fewer than %lld words (train %lld, valid %lld)\n",
                rp->data, (long long)T + 1, (long long)g.tr.n, (long long)g.va.n);
        goto done;
    }
    const attn_lstmn_lm_config mc = model_config(rp);
    attn_rng rng;
    attn_rng_init(&rng, (uint64_t)rp->seed);
    if (attn_params_new(&ps) != ATTN_OK || attn_lstmn_lm_new(&g.m, ps, &mc, resume ? NULL : &rng) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the model");
        goto done;
    }
    if (!resume) {
        if (cli_make_dir(out) != 0) {
            fprintf(stderr, "attn lstmn train: cannot create the directory %s: %s\n", out, strerror(errno));
            goto done;
        }
        if (lstmn_vocab_save(&voc, vpath)) goto done;
    }
    if (o.epochs > 0) {
        const long long per_epoch = (long long)((g.tr.n + B * T - 1) / (B * T));
        if (resume)
            train_resume_ll("--steps (from --epochs)", o.epochs * per_epoch, &rp->total_steps);
        else
            rp->total_steps = o.epochs * per_epoch;
    }
    {
        const train_setup su = {CMD, &lstmn_family, &g, ps, ckpt, 0.9f, 0.999f, rp->lr, rp->min_lr,
                                 rp->weight_decay, CLIP_NORM, rp->train_seconds, rp->total_steps,
                                 rp->warmup, (uint64_t)rp->seed, 1024, 50, 500};
        const int bad = train_run_setup(&run, prog, &o, &su);
        opt = run.opt; /* freed at done, also after an error */
        ctx = run.ctx;
        if (bad) goto done;
    }
    step = run.step;
    if (step >= rp->total_steps) {
        rc = train_loop(&run);
        goto done;
    }
    if (train_log_open(&run, resume)) goto done;
    g.bin = malloc(sizeof *g.bin * (size_t)(B * T));
    g.btg = malloc(sizeof *g.btg * (size_t)(B * T));
    if (!g.bin || !g.btg) {
        fprintf(stderr, "attn lstmn train: out of memory\n");
        goto done;
    }
    char desc[512];
    if (rp->cell == ATTN_LM_CELL_LSTM)
        snprintf(desc, sizeof desc, "LSTM LM: embed %lld, hidden %lld, dropout %g; vocabulary %lld; %lld parameters",
                 rp->embed, rp->hidden, rp->dropout, rp->vocab, (long long)attn_params_numel(ps));
    else
        snprintf(desc, sizeof desc,
                 "LSTMN LM: embed %lld, hidden %lld, attention %lld, h~ term %s, dropout %g; vocabulary %lld; "
                 "%lld parameters",
                 rp->embed, rp->hidden, rp->attn, rp->summary ? "on" : "off", rp->dropout, rp->vocab,
                 (long long)attn_params_numel(ps));
    printf("%s\n", desc);
    printf("data: %s: train %lld words (%.2f%% <unk>), valid %lld words (%.2f%% <unk>)\n", rp->data,
           (long long)g.tr.n, 100.0 * (double)unk_tr / (double)g.tr.n, (long long)g.va.n,
           100.0 * (double)unk_va / (double)g.va.n);
    printf("schedule: %lld steps of %lld x %lld words, AdamW lr %g -> %g (warmup %lld, cosine), wd %g; threads %d\n",
           rp->total_steps, (long long)B, (long long)T, rp->lr, rp->min_lr, rp->warmup, rp->weight_decay,
           attn_ctx_threads(ctx));
    if (resume) printf("resuming %s at step %lld\n", out, step);
    fflush(stdout);
    {
        const attn_json_field f[] = {
            attn_json_str("event", resume ? "resume" : "start"), attn_json_int("step", step),
            attn_json_str("data", rp->data), attn_json_str("cell", rp->cell == ATTN_LM_CELL_LSTM ? "lstm" : "lstmn"),
            attn_json_int("vocab", rp->vocab), attn_json_int("parameters", attn_params_numel(ps)),
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
    attn_ctx_free(ctx);
    attn_optim_free(opt);
    attn_lstmn_lm_free(g.m);
    attn_params_free(ps);
    lstmn_vocab_free(&voc);
    return rc;
}

/* ---- eval ------------------------------------------------------------------------------ */

static void eval_usage(FILE *f) {
    fprintf(f,
        "usage: attn lstmn eval --model DIR [options]\n\n"
        "Perplexity of a model of 'attn lstmn train' on a split of its corpus: consecutive\n"
        "windows of the training --ctx, each from a zero state. Prints one JSON line.\n\n"
        "  --split test|valid|train  (default test)\n"
        "  --data DIR           the corpus (default: the model's)\n"
        "  --batch N            windows per forward (default 64)\n"
        "  --threads N          threads for the ops (default: all)\n");
}

static int cmd_lstmn_eval(int argc, char **argv) {
    const char *model = NULL, *split = "test", *data = NULL;
    long long batch = 64, threads = 0;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            eval_usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "attn lstmn eval: %s needs a value (try --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--split")) split = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--batch")) rc = cli_opt_int(CMD, "eval", a, v, 1, 1 << 16, &batch);
        else if (!strcmp(a, "--threads")) rc = cli_opt_int(CMD, "eval", a, v, 1, cli_max_threads(), &threads);
        else {
            fprintf(stderr, "attn lstmn eval: unknown option '%s' (try --help)\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!model) {
        fprintf(stderr, "attn lstmn eval: --model DIR is required\n");
        return 2;
    }
    if (strcmp(split, "test") && strcmp(split, "valid") && strcmp(split, "train")) {
        fprintf(stderr, "attn lstmn eval: --split '%s': expected test, valid or train\n", split);
        return 2;
    }
    char ckpt[4096], vpath[4096], fname[64];
    dir_file(ckpt, sizeof ckpt, model, "model.safetensors");
    dir_file(vpath, sizeof vpath, model, "vocab.txt");
    snprintf(fname, sizeof fname, "%s.txt", split);
    run_info r;
    memset(&r, 0, sizeof r);
    lstmn_vocab voc;
    memset(&voc, 0, sizeof voc);
    attn_lm_tokens toks;
    memset(&toks, 0, sizeof toks);
    attn_params *ps = NULL;
    attn_lstmn_lm *m = NULL;
    attn_ctx *ctx = NULL;
    rc = 1;
    if (run_meta_read(ckpt, &r, NULL) || lstmn_vocab_load(vpath, &voc)) goto done;
    if (voc.n != r.vocab) {
        fprintf(stderr, "attn lstmn eval: %s has %lld words, the model %lld\n", vpath, (long long)voc.n, r.vocab);
        goto done;
    }
    int64_t unk = 0;
    if (lstmn_encode_file(data ? data : r.data, fname, &voc, &toks, &unk)) goto done;
    const attn_lstmn_lm_config mc = model_config(&r);
    if (attn_params_new(&ps) != ATTN_OK || attn_lstmn_lm_new(&m, ps, &mc, NULL) != ATTN_OK ||
        attn_checkpoint_load(ckpt, ps, NULL, NULL) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot load the model");
        goto done;
    }
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)1024 << 20;
    cc.n_threads = (int)threads;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    eval_result ev;
    if (evaluate(ctx, m, &toks, batch, r.ctx_len, 0, &ev)) goto done;
    printf("{\"model\": \"%s\", \"cell\": \"%s\", \"split\": \"%s\", \"parameters\": %lld, \"words\": %lld, "
           "\"unk_rate\": %.5f, \"loss\": %.6f, \"perplexity\": %.3f, \"seconds\": %.2f}\n",
           model, r.cell == ATTN_LM_CELL_LSTM ? "lstm" : "lstmn", split, (long long)attn_params_numel(ps),
           (long long)ev.words, (double)unk / (double)(toks.n ? toks.n : 1), ev.loss, exp(ev.loss), ev.seconds);
    rc = 0;
done:
    attn_ctx_free(ctx);
    attn_lstmn_lm_free(m);
    attn_params_free(ps);
    attn_lm_tokens_free(&toks);
    lstmn_vocab_free(&voc);
    return rc;
}

/* ---- viz ------------------------------------------------------------------------------- */

static void viz_usage(FILE *f) {
    fprintf(f,
        "usage: attn lstmn viz --model DIR --text TEXT (--out FILE.svg | --html FILE.html)\n\n"
        "Draws the intra-attention of an LSTMN model of 'attn lstmn train' reading TEXT (split\n"
        "into words as the corpus is, at most 200): row t is the step that reads word t, its\n"
        "cells the weights over the memory tape (the initial state, then the state after each\n"
        "earlier word), as Figure 4 of Cheng et al. (2016).\n\n"
        "  --html FILE      also (or, without --out, only) an interactive attention explorer\n"
        "                   page of the same weights (docs/explorer.md)\n"
        "  --weights FILE   with --html: every weight at full precision as text\n");
}

typedef struct viz_words {
    lstmn_vocab *v;
    int32_t ids[200];
    char *label[200];
    int n, unk;
} viz_words;

static int viz_word(const char *w, size_t len, void *user) {
    viz_words *z = user;
    if (z->n >= 200) return 0;
    int64_t id = lstmn_vocab_find(z->v, w, len, 0);
    z->ids[z->n] = (int32_t)(id < 0 ? LSTMN_UNK : id);
    z->unk += id < 0;
    char *l = malloc(len + 1);
    if (!l) return 1;
    memcpy(l, w, len);
    l[len] = 0;
    z->label[z->n++] = l;
    return 0;
}

static int cmd_lstmn_viz(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *outp = NULL, *html = NULL, *weights = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            viz_usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "attn lstmn viz: %s needs a value (try --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--text")) text = v;
        else if (!strcmp(a, "--out")) outp = v;
        else if (!strcmp(a, "--html")) html = v;
        else if (!strcmp(a, "--weights")) weights = v;
        else {
            fprintf(stderr, "attn lstmn viz: unknown option '%s' (try --help)\n", a);
            return 2;
        }
    }
    if (!model || !text || (!outp && !html)) {
        fprintf(stderr, "attn lstmn viz: --model, --text and --out (or --html) are required\n");
        return 2;
    }
    if (weights && !html) {
        fprintf(stderr, "attn lstmn viz: --weights goes with --html FILE\n");
        return 2;
    }
    char ckpt[4096], vpath[4096];
    dir_file(ckpt, sizeof ckpt, model, "model.safetensors");
    dir_file(vpath, sizeof vpath, model, "vocab.txt");
    run_info r;
    memset(&r, 0, sizeof r);
    lstmn_vocab voc;
    memset(&voc, 0, sizeof voc);
    viz_words z;
    memset(&z, 0, sizeof z);
    attn_params *ps = NULL;
    attn_lstmn_lm *m = NULL;
    attn_ctx *ctx = NULL;
    float *w = NULL;
    char *line = NULL, **cols = NULL;
    int rc = 1;
    if (run_meta_read(ckpt, &r, NULL) || lstmn_vocab_load(vpath, &voc)) goto done;
    if (r.cell != ATTN_LM_CELL_LSTMN) {
        fprintf(stderr, "attn lstmn viz: %s is an LSTM model: it has no attention to draw\n", model);
        goto done;
    }
    z.v = &voc;
    const size_t tl = strlen(text);
    line = malloc(tl + 3);
    if (!line) goto done;
    line[0] = ' ', line[1] = ' '; /* one verse line */
    memcpy(line + 2, text, tl + 1);
    if (lstmn_word_split(line, tl + 2, viz_word, &z)) goto done;
    if (z.n > 0 && z.ids[z.n - 1] == LSTMN_EOS) free(z.label[--z.n]); /* the verse's end marker */
    if (z.n < 1) {
        fprintf(stderr, "attn lstmn viz: --text holds no word\n");
        goto done;
    }
    const attn_lstmn_lm_config mc = model_config(&r);
    if (attn_params_new(&ps) != ATTN_OK || attn_lstmn_lm_new(&m, ps, &mc, NULL) != ATTN_OK ||
        attn_checkpoint_load(ckpt, ps, NULL, NULL) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot load the model");
        goto done;
    }
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)256 << 20;
    cc.n_threads = 1;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    const int T = z.n;
    w = malloc(sizeof *w * (size_t)(T * (T + 1)));
    cols = calloc((size_t)T + 1, sizeof *cols);
    if (!w || !cols) goto done;
    attn_tensor *ids = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, T}, z.ids);
    if (!ids || attn_lstmn_lm_attention(ctx, m, ids, w) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot compute the attention");
        goto done;
    }
    /* slot T (the state after the last word) is read by no step: T columns */
    for (int t = 0; t < T; t++) memmove(w + t * T, w + t * (T + 1), sizeof *w * (size_t)T);
    cols[0] = "<init>";
    for (int i = 1; i < T; i++) cols[i] = z.label[i - 1];
    attn_heatmap hm;
    memset(&hm, 0, sizeof hm);
    hm.weights = w;
    hm.rows = T;
    hm.cols = T;
    hm.row_labels = (const char *const *)z.label;
    hm.col_labels = (const char *const *)cols;
    hm.title = "LSTMN intra-attention: each step's weights over the memory tape";
    hm.x_label = "memory slot (the state after reading that word)";
    hm.y_label = "word being read";
    hm.show_values = 1;
    if (outp && attn_svg_heatmap(outp, &hm) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot write the picture");
        goto done;
    }
    if (html) {
        /* the explorer page (docs/explorer.md): one map, step t reads the
         * slots 0 .. t (the causal rule with offset 0) */
        cli_page page = {0};
        char sub[160];
        snprintf(sub, sizeof sub, "LSTMN word LM: %d words, %d of them <unk>", T, z.unk);
        if (cli_page_add_floats(&page, "lstmn viz", "LSTMN intra-attention", ATTN_EXPLORER_SELF, w, 1, 1,
                                T, T, (const char *const *)z.label, (const char *const *)cols,
                                "word being read", "memory slot", 0) ||
            cli_page_write(&page, "lstmn viz", html, weights,
                           "LSTMN intra-attention: each step's weights over the memory tape", sub, 0))
            goto done;
    }
    printf("%s: %d words, %d of them <unk>\n", outp ? outp : html, T, z.unk);
    rc = 0;
done:
    for (int i = 0; i < z.n; i++) free(z.label[i]);
    free(cols);
    free(w);
    free(line);
    attn_ctx_free(ctx);
    attn_lstmn_lm_free(m);
    attn_params_free(ps);
    lstmn_vocab_free(&voc);
    return rc;
}

int cmd_lstmn(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: attn lstmn train|eval|viz [options]   (attn lstmn SUB --help)\n"
                   "Word-level LSTMN (Cheng et al. 2016) and LSTM language models.\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_lstmn_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval")) return cmd_lstmn_eval(argc - 1, argv + 1);
    if (!strcmp(argv[1], "viz")) return cmd_lstmn_viz(argc - 1, argv + 1);
    fprintf(stderr, "attn lstmn: unknown subcommand '%s' (train, eval or viz)\n", argv[1]);
    return 2;
}
