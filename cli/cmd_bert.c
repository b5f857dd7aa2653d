/* cmd_bert.c: `attn bert pretrain|finetune`: the BERT-style encoder
 * (include/attn/bert.h) pretrained as a masked language model on the
 * fortunes, then fine-tuned to tell which fortune file a fortune came from
 * (data of scripts/get_fortunes_labels.sh). docs/bert.md is the manual.
 *
 *   attn bert pretrain --out DIR [--text FILE] [--valid FILE] [model and schedule options]
 *   attn bert finetune --out DIR [--init PRETRAIN_DIR] [--data DIR] [options]
 *
 * A run directory holds model.safetensors (an attn checkpoint: parameters,
 * AdamW state, the model configuration bert.* and the run's settings run.*
 * in the metadata), vocab (the tokeniser), train.jsonl (the log) and
 * loss.svg, as `attn gpt train` and `attn seq2seq train` write them.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "attn/attn.h"
#include "commands.h"
#include "train_dist.h"
#include "train_driver.h"

#define CMD "bert"
#define CLIP_NORM 1.0f
#define EVAL_MASK_SEED 0x6d61736bull /* masks of the held-out MLM evaluation */

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

/* ---- the run's settings, kept in the checkpoint's metadata -------------------------- */

typedef struct run_info {
    int finetune;
    char text[1024];   /* pretraining text (also the BPE training text of finetune without --init) */
    char valid[1024];  /* held-out MLM text (pretrain) */
    char data[1024];   /* labelled data directory (finetune) */
    char init[1024];   /* the pretrained run (finetune), "" for none */
    attn_vocab_kind tok;
    long long bpe_merges, batch, total_steps, warmup, seed;
    long long train_per_class; /* finetune: the first N training examples of each class (0: all) */
    double lr, min_lr, weight_decay, mask_prob, train_seconds;
} run_info;

/* The first RUN_META_REQUIRED keys are in every checkpoint; the others were
 * added later and read as 0 when missing. */
#define RUN_META 17
#define RUN_META_REQUIRED 16
static const char *const run_keys[RUN_META] = {
    "run.model", "run.text",  "run.valid", "run.data",   "run.init",   "run.tokenizer",
    "run.bpe_merges", "run.batch", "run.steps", "run.warmup", "run.seed", "run.lr",
    "run.min_lr", "run.weight_decay", "run.mask_prob", "run.train_seconds", "run.train_per_class"};

typedef struct run_meta {
    attn_kv kv[ATTN_BERT_META + RUN_META];
    char bbuf[ATTN_BERT_META * 32];
    char vbuf[RUN_META][1100];
    int n;
} run_meta;

static void run_meta_build(run_meta *m, const attn_bert *b, const run_info *r) {
    attn_bert_config_meta(&b->cfg, m->kv, m->bbuf);
    m->n = ATTN_BERT_META;
    snprintf(m->vbuf[0], 1100, "%s", r->finetune ? "attn-bert-finetune" : "attn-bert-pretrain");
    snprintf(m->vbuf[1], 1100, "%s", r->text);
    snprintf(m->vbuf[2], 1100, "%s", r->valid);
    snprintf(m->vbuf[3], 1100, "%s", r->data);
    snprintf(m->vbuf[4], 1100, "%s", r->init);
    snprintf(m->vbuf[5], 1100, "%s", r->tok == ATTN_VOCAB_BPE ? "bpe" : "char");
    snprintf(m->vbuf[6], 1100, "%lld", r->bpe_merges);
    snprintf(m->vbuf[7], 1100, "%lld", r->batch);
    snprintf(m->vbuf[8], 1100, "%lld", r->total_steps);
    snprintf(m->vbuf[9], 1100, "%lld", r->warmup);
    snprintf(m->vbuf[10], 1100, "%lld", r->seed);
    snprintf(m->vbuf[11], 1100, "%.9g", r->lr);
    snprintf(m->vbuf[12], 1100, "%.9g", r->min_lr);
    snprintf(m->vbuf[13], 1100, "%.9g", r->weight_decay);
    snprintf(m->vbuf[14], 1100, "%.9g", r->mask_prob);
    snprintf(m->vbuf[15], 1100, "%.3f", r->train_seconds);
    snprintf(m->vbuf[16], 1100, "%lld", r->train_per_class);
    for (int i = 0; i < RUN_META; i++) {
        m->kv[m->n].key = run_keys[i];
        m->kv[m->n].value = m->vbuf[i];
        m->n++;
    }
}

/* Reads run.* of a checkpoint of this command (mode must match); 0 on success. */
static int run_meta_read(const char *path, int finetune, run_info *r, long long *step) {
    attn_safetensors *f = NULL;
    if (attn_safetensors_open(&f, path) != ATTN_OK) return cli_fail(CMD, "cannot open the checkpoint");
    const char *v[RUN_META];
    const char *want = finetune ? "attn-bert-finetune" : "attn-bert-pretrain";
    if (cli_check_family("attn bert", f, path, "run.model", want,
                         finetune ? "attn bert finetune" : "attn bert pretrain")) {
        attn_safetensors_close(f);
        return 1;
    }
    const char *missing = NULL;
    for (int i = 0; i < RUN_META; i++) v[i] = attn_safetensors_metadata(f, run_keys[i]);
    for (int i = 0; i < RUN_META_REQUIRED && !missing; i++)
        if (!v[i]) missing = run_keys[i];
    if (!missing && !attn_safetensors_metadata(f, "step")) missing = "step";
    if (missing) {
        attn_safetensors_close(f);
        fprintf(stderr, "attn bert: %s: a checkpoint of attn bert %s without its metadata '%s'\n", path,
                finetune ? "finetune" : "pretrain", missing);
        return 1;
    }
    r->finetune = finetune;
    snprintf(r->text, sizeof r->text, "%s", v[1]);
    snprintf(r->valid, sizeof r->valid, "%s", v[2]);
    snprintf(r->data, sizeof r->data, "%s", v[3]);
    snprintf(r->init, sizeof r->init, "%s", v[4]);
    r->tok = !strcmp(v[5], "bpe") ? ATTN_VOCAB_BPE : ATTN_VOCAB_CHAR;
    /* every number range-checked as its option is (a file is untrusted: a
     * batch of 2^59 + 1 would make the batch's size wrap) */
    meta_reader m = {f, path, {0}};
    r->bpe_merges = meta_ll(&m, "run.bpe_merges", 0, 100000);
    r->batch = meta_ll(&m, "run.batch", 1, 1 << 20);
    r->total_steps = meta_ll(&m, "run.steps", 1, 1ll << 40);
    r->warmup = meta_ll(&m, "run.warmup", 0, 1ll << 40);
    r->seed = meta_ll(&m, "run.seed", 0, 1ll << 62);
    r->lr = meta_real(&m, "run.lr", 0.0, 10.0);
    r->min_lr = meta_real(&m, "run.min_lr", 0.0, 10.0);
    r->weight_decay = meta_real(&m, "run.weight_decay", 0.0, 10.0);
    r->mask_prob = meta_real(&m, "run.mask_prob", 0.0, 1.0);
    r->train_seconds = meta_real(&m, "run.train_seconds", 0.0, 1e12);
    r->train_per_class = v[16] ? meta_ll(&m, "run.train_per_class", 0, 1ll << 40) : 0;
    *step = meta_ll(&m, "step", 0, 1ll << 40);
    attn_safetensors_close(f);
    if (m.err[0]) {
        fprintf(stderr, "attn bert: %s\n", m.err);
        return 1;
    }
    return 0;
}

/* ---- batches -------------------------------------------------------------------------- */

/* A padded batch of rows[0 .. B-1] cut to the longest row: *T_out columns
 * (<= T). ids holds B T. */
static void make_batch(const attn_bert_corpus *c, const int64_t *rows, int64_t B, int64_t T, int32_t *ids,
                       int32_t *lens, int32_t *labels, int64_t *T_out) {
    attn_bert_batch(c, rows, B, T, ids, lens, labels);
    int64_t Tb = 1;
    for (int64_t r = 0; r < B; r++)
        if (lens[r] > Tb) Tb = lens[r];
    for (int64_t r = 1; r < B; r++) memmove(ids + r * Tb, ids + r * T, (size_t)Tb * sizeof *ids);
    *T_out = Tb;
}

typedef struct eval_result {
    double loss, acc;
    int64_t count, correct;
    double seconds;
} eval_result;

/* Pretraining: the MLM loss (per masked token) and masked-token accuracy
 * over the whole held-out corpus, masked with a fixed seed so that every
 * evaluation sees the same masks. */
static int eval_mlm(attn_ctx *ctx, const attn_bert *m, const attn_bert_corpus *c,
                    const attn_bert_mask_opts *mo, int64_t B, eval_result *out) {
    const int64_t T = m->cfg.max_len;
    int32_t *ids = malloc((size_t)(B * T) * sizeof *ids), *in = malloc((size_t)(B * T) * sizeof *in);
    int32_t *lab = malloc((size_t)(B * T) * sizeof *lab), *lens = malloc((size_t)B * sizeof *lens);
    int64_t *rows = malloc((size_t)B * sizeof *rows);
    int rc = 0;
    if (!ids || !in || !lab || !lens || !rows) {
        fprintf(stderr, "attn bert: out of memory\n");
        rc = 1;
    }
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    const double t0 = now_s();
    double nats = 0.0;
    int64_t count = 0, correct = 0;
    for (int64_t a = 0; a < c->n && rc == 0; a += B) {
        const int64_t nb = B < c->n - a ? B : c->n - a;
        for (int64_t r = 0; r < nb; r++) rows[r] = a + r;
        int64_t Tb = 0, nsel = 0;
        make_batch(c, rows, nb, T, ids, lens, NULL, &Tb);
        attn_bert_mask(mo, EVAL_MASK_SEED, (uint64_t)(a / B), ids, lens, nb, Tb, in, lab, &nsel);
        if (nsel == 0) continue;
        attn_ctx_reset(ctx);
        int64_t ok = 0, n = 0;
        attn_tensor *loss = attn_bert_mlm_loss(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){nb, Tb}, in),
                                               attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){nb}, lens),
                                               attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){nb, Tb}, lab), &ok, &n);
        if (!loss) {
            fprintf(stderr, "attn bert: evaluation: %s\n", attn_ctx_error(ctx));
            rc = 1;
            break;
        }
        nats += (double)attn_f32(loss)[0] * (double)n;
        count += n;
        correct += ok;
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    free(ids);
    free(in);
    free(lab);
    free(lens);
    free(rows);
    out->count = count;
    out->correct = correct;
    out->loss = count ? nats / (double)count : NAN;
    out->acc = count ? (double)correct / (double)count : NAN;
    out->seconds = now_s() - t0;
    return rc;
}

/* Fine-tuning: the classification loss and accuracy over a labelled corpus. */
static int eval_cls(attn_ctx *ctx, const attn_bert *m, const attn_bert_corpus *c, int64_t B,
                    eval_result *out) {
    const int64_t T = m->cfg.max_len;
    int32_t *ids = malloc((size_t)(B * T) * sizeof *ids), *lab = malloc((size_t)B * sizeof *lab);
    int32_t *lens = malloc((size_t)B * sizeof *lens);
    int64_t *rows = malloc((size_t)B * sizeof *rows);
    int rc = 0;
    if (!ids || !lab || !lens || !rows) {
        fprintf(stderr, "attn bert: out of memory\n");
        rc = 1;
    }
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    const double t0 = now_s();
    double nats = 0.0;
    int64_t correct = 0;
    for (int64_t a = 0; a < c->n && rc == 0; a += B) {
        const int64_t nb = B < c->n - a ? B : c->n - a;
        for (int64_t r = 0; r < nb; r++) rows[r] = a + r;
        int64_t Tb = 0, ok = 0;
        make_batch(c, rows, nb, T, ids, lens, lab, &Tb);
        attn_ctx_reset(ctx);
        attn_tensor *loss = attn_bert_cls_loss(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){nb, Tb}, ids),
                                               attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){nb}, lens),
                                               attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){nb}, lab), &ok);
        if (!loss) {
            fprintf(stderr, "attn bert: evaluation: %s\n", attn_ctx_error(ctx));
            rc = 1;
            break;
        }
        nats += (double)attn_f32(loss)[0] * (double)nb;
        correct += ok;
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    free(ids);
    free(lab);
    free(lens);
    free(rows);
    out->count = c->n;
    out->correct = correct;
    out->loss = c->n ? nats / (double)c->n : NAN;
    out->acc = c->n ? (double)correct / (double)c->n : NAN;
    out->seconds = now_s() - t0;
    return rc;
}

/* ---- options ----------------------------------------------------------------------------- */

static void usage(FILE *f, int finetune) {
    if (!finetune)
        fprintf(f,
            "usage: attn bert pretrain --out DIR [options]\n\n"
            "Pretrains a BERT-style encoder as a masked language model (15%% of the tokens\n"
            "selected; 80%% [MASK], 10%% random, 10%% kept) and reports the held-out MLM loss\n"
            "and masked-token accuracy. Options take '--opt V' or '--opt=V'; old spellings\n"
            "are kept as aliases for one release.\n\n"
            "data (fixed by the checkpoint: refused with --resume)\n"
            "  --text FILE            fortunes to pretrain on (default data/fortunes/labels/pretrain.txt)\n"
            "  --valid FILE           held-out fortunes (default data/fortunes/valid.txt)\n"
            "  --tokenizer char|bpe   tokens (default bpe; alias --tok)\n"
            "  --bpe-merges N         BPE merges learned on --text (default 1000)\n"
            "  --mask-prob P          selection probability (default 0.15)\n");
    else
        fprintf(f,
            "usage: attn bert finetune --out DIR [--init PRETRAIN_DIR] [options]\n\n"
            "Fine-tunes a classifier on the [CLS] position (pooler and linear head) and\n"
            "reports the held-out test accuracy. With --init the encoder (and its vocabulary\n"
            "and shape) comes from a run of 'attn bert pretrain'; without it the encoder\n"
            "starts from random weights, with the same vocabulary (learned on --text).\n"
            "Options take '--opt V' or '--opt=V'; old spellings are kept as aliases.\n\n"
            "data (fixed by the checkpoint: refused with --resume)\n"
            "  --data DIR             classes, {train,valid,test}.{txt,labels} (default data/fortunes/labels)\n"
            "  --init DIR             a pretrained run (default: none)\n"
            "  --train-per-class N    train on the first N labelled examples of each class only\n"
            "                         (in the order of train.txt; default 0: all)\n"
            "  --text FILE            BPE training text without --init (default DIR/pretrain.txt)\n"
            "  --tokenizer char|bpe   without --init (default bpe; alias --tok)\n"
            "  --bpe-merges N         without --init (default 1000)\n");
    fprintf(f,
        "model (ignored by finetune --init: the pretrained shape is kept; refused with --resume)\n"
        "  --layers N             blocks (default 4)\n"
        "  --heads N              attention heads (default 4)\n"
        "  --d-model N            width (default 128)\n"
        "  --d-ff N               feed-forward width (0: 4 d-model)\n"
        "  --ctx N                tokens per sequence, [CLS] included (default 64; alias --max-len)\n"
        "  --pre-ln 0|1           1: pre-LN blocks with a final LayerNorm (default 0: post-LN, as\n"
        "                         BERT; a bare --pre-ln, the old spelling, is --pre-ln 1)\n"
        "  --dropout P            dropout (default %s)\n"
        "schedule (with --resume: applied and printed)\n"
        "  --batch N              sequences per step (default 32)\n"
        "  --steps N              optimizer steps (default %s; with --resume: the new total)\n"
        "  --epochs E             instead of --steps: E passes over the training sequences\n"
        "  --time-budget S        stop after S seconds of training (final evaluation and checkpoint)\n"
        "  --lr X                 peak learning rate of AdamW (default %s)\n"
        "  --min-lr X             final learning rate of the cosine (default lr / 10)\n"
        "  --warmup N             linear warmup steps (default %s)\n"
        "  --weight-decay X       AdamW's decoupled weight decay (default 0.01)\n"
        "  --seed N               initialisation, batches, masks, dropout (default 1; fixed by the checkpoint)\n"
        "run\n"
        "  --eval-every N         held-out evaluation and a checkpoint every N steps (default %s; 0: end only)\n"
        "  --log-every N          a JSONL line every N steps (default 50)\n"
        "  --threads N            threads for the ops (default: all)\n"
        "  --arena-mb N           context arena in MiB (default 512)\n"
        "  --resume               continue DIR's run: same model, optimizer state, batches and masks\n"
        "  --force                overwrite the run DIR holds (refused without it)\n"
        "  --quiet                no progress line\n\n"
        "Ctrl-C (SIGINT) or SIGTERM finishes the step, writes a checkpoint and exits 130.\n",
        finetune ? "0.1" : "0", finetune ? "600" : "2000", finetune ? "3e-4" : "1e-3",
        finetune ? "60" : "100", finetune ? "100" : "500");
}

/* The options of this command beyond the common ones (train_opts). */
typedef struct bert_args {
    const char *text, *valid, *data, *init, *tok;
    long long bpe_merges, layers, heads, d_model, d_ff, max_len, train_per_class;
    double dropout, mask_prob;
    int pre_ln;
} bert_args;

static int parse(int argc, char **argv, int finetune, bert_args *a, train_opts *o) {
    const char *prog = finetune ? "attn bert finetune" : "attn bert pretrain", *sub = prog + 10;
    memset(a, 0, sizeof *a);
    a->valid = "data/fortunes/valid.txt";
    a->data = "data/fortunes/labels";
    a->tok = "bpe";
    a->bpe_merges = 1000;
    a->layers = a->heads = 4;
    a->d_model = 128;
    a->max_len = 64;
    a->dropout = finetune ? 0.1 : 0.0;
    a->mask_prob = 0.15;
    train_opts_init(o);
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            usage(stdout, finetune);
            return -1;
        }
        const int k = train_opt(prog, f, v, o, &rc);
        if (k) {
            i += k - 1;
            continue;
        }
        train_fixed(o, f); /* every other option is the model's or the data's */
        if (!strcmp(f, "--pre-ln")) {
            if ((rc = train_opt_bool(prog, argv, argc, &i, &a->pre_ln))) return rc;
            continue;
        }
        i++;
        if (!strcmp(f, "--text")) a->text = v, rc = train_path_value(prog, f, v, "a file");
        else if (!strcmp(f, "--valid") && !finetune) a->valid = v, rc = train_path_value(prog, f, v, "a file");
        else if (!strcmp(f, "--data") && finetune) a->data = v, rc = train_path_value(prog, f, v, "a directory");
        else if (!strcmp(f, "--init") && finetune) a->init = v, rc = train_path_value(prog, f, v, "a directory");
        else if (!strcmp(f, "--train-per-class") && finetune)
            rc = opt_int(sub, f, v, 0, 1ll << 40, &a->train_per_class);
        else if (!strcmp(f, "--tokenizer") || !strcmp(f, "--tok")) a->tok = v;
        else if (!strcmp(f, "--bpe-merges")) rc = opt_int(sub, f, v, 0, 100000, &a->bpe_merges);
        else if (!strcmp(f, "--mask-prob") && !finetune) rc = opt_real(sub, f, v, 0.01, 1.0, &a->mask_prob);
        else if (!strcmp(f, "--layers")) rc = opt_int(sub, f, v, 1, 256, &a->layers);
        else if (!strcmp(f, "--heads")) rc = opt_int(sub, f, v, 1, 1024, &a->heads);
        else if (!strcmp(f, "--d-model")) rc = opt_int(sub, f, v, 1, 65536, &a->d_model);
        else if (!strcmp(f, "--d-ff")) rc = opt_int(sub, f, v, 0, 1 << 20, &a->d_ff);
        else if (!strcmp(f, "--ctx") || !strcmp(f, "--max-len")) rc = opt_int(sub, f, v, 2, 1 << 16, &a->max_len);
        else if (!strcmp(f, "--dropout")) rc = opt_real(sub, f, v, 0.0, 0.99, &a->dropout);
        else {
            fprintf(stderr, "%s: unknown option '%s' (try '%s --help')\n", prog, f, prog);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "%s: %s needs a value\n", prog, f);
            return 2;
        }
    }
    if (rc) return rc;
    if ((rc = train_opts_check(prog, o))) return rc;
    if (o->eval_n > 0) {
        fprintf(stderr, "%s: --eval-n: every evaluation of %s uses the whole held-out set\n", prog, prog);
        return 2;
    }
    if (strcmp(a->tok, "char") && strcmp(a->tok, "bpe")) {
        fprintf(stderr, "%s: --tokenizer '%s': expected char or bpe\n", prog, a->tok);
        return 2;
    }
    return 0;
}

/* ---- the two families of the training driver ------------------------------------------ */

typedef struct bert_train {
    int finetune;
    const char *prog, *sub;
    run_info r;
    attn_bert *m;
    attn_vocab *vocab;
    attn_bert_corpus tr, va, te;
    int32_t *bids, *bin, *blab, *blens;
    int64_t *brows;
    int64_t B, T;
    attn_bert_mask_opts mo;
    int n_classes;
    char classes[64][64];
    double base_train, base_best; /* majority-class baselines on test (fine-tuning) */
    eval_result last_ev, test_ev;
    run_meta meta;
} bert_train;

static attn_tensor *bert_step_loss(void *self, train_run *run, int64_t step, train_counts *c) {
    bert_train *b = self;
    attn_ctx *ctx = run->ctx;
    const int64_t B = b->B;
    attn_ctx_set_rng(ctx, (uint64_t)b->r.seed, (uint64_t)step << 24);
    attn_bert_sample_rows((uint64_t)b->r.seed, step, B, b->tr.n, b->brows);
    int64_t Tb = 0, ok = 0, n = 0;
    make_batch(&b->tr, b->brows, B, b->T, b->bids, b->blens, b->finetune ? b->blab : NULL, &Tb);
    attn_tensor *loss = NULL;
    /* Several ranks: each its rows [lo, hi) of the same global batch (drawn
     * and masked whole, as one process does); the loss is a mean over the
     * slice's masked positions (pretraining) or rows (fine-tuning), the
     * driver's weight. Padding to the batch's Tb changes no row's result. */
    int64_t lo = 0, hi = B;
    if (train_dist_size() > 1) {
        train_shard(B, &lo, &hi);
        attn_ctx_set_batch_slice(ctx, lo, hi - lo, B); /* the single process's masks of these rows */
    }
    const int64_t rows = hi - lo;
    attn_tensor *tl = attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){rows}, b->blens + lo);
    if (!b->finetune) {
        attn_bert_mask(&b->mo, (uint64_t)b->r.seed, (uint64_t)step, b->bids, b->blens, B, Tb, b->bin, b->blab, &n);
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){rows, Tb}, b->bin + lo * Tb);
        loss = attn_bert_mlm_loss(ctx, b->m, ti, tl,
                                  attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){rows, Tb}, b->blab + lo * Tb), &ok, &n);
    } else {
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){rows, Tb}, b->bids + lo * Tb);
        loss = attn_bert_cls_loss(ctx, b->m, ti, tl, attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){rows}, b->blab + lo),
                                  &ok);
        n = rows;
    }
    c->items = (double)rows;
    for (int64_t r = lo; r < hi; r++) c->tokens += b->blens[r];
    c->metric = n ? (double)ok / (double)n : 0.0;
    c->weight = (double)n;
    c->sharded = train_dist_size() > 1;
    return loss;
}

static int bert_evaluate(void *self, train_run *run, int last, double *seconds) {
    bert_train *b = self;
    const int ft = b->finetune;
    eval_result ev;
    if (!ft ? eval_mlm(run->ctx, b->m, &b->va, &b->mo, b->B, &ev) : eval_cls(run->ctx, b->m, &b->va, b->B, &ev))
        return 1;
    double secs = ev.seconds;
    if (last && ft) {
        if (eval_cls(run->ctx, b->m, &b->te, b->B, &b->test_ev)) return 1;
        secs += b->test_ev.seconds;
    }
    *seconds = secs;
    b->last_ev = ev;
    const attn_json_field f[] = {
        attn_json_str("event", "eval"), attn_json_int("step", run->step),
        attn_json_num("valid_loss", ev.loss),
        attn_json_num(ft ? "valid_accuracy" : "valid_masked_accuracy", ev.acc),
        attn_json_int(ft ? "valid_examples" : "masked_tokens", ev.count),
        attn_json_num("test_accuracy", last && ft ? b->test_ev.acc : NAN),
        attn_json_int("test_correct", last && ft ? b->test_ev.correct : 0),
        attn_json_int("test_examples", last && ft ? b->test_ev.count : 0),
        attn_json_num("seconds", secs),
    };
    if (train_log(run, f, (int)(sizeof f / sizeof f[0]))) return 1;
    if (run->quiet && !last) return 0;
    if (run->progress.tty && !run->quiet) fputc('\n', stderr);
    FILE *to = last ? stdout : stderr;
    if (!ft)
        fprintf(to, "step %lld: held-out MLM loss %.4f nats/token, masked-token accuracy %.4f (%lld masked tokens)\n",
                (long long)run->step, ev.loss, ev.acc, (long long)ev.count);
    else
        fprintf(to, "step %lld: valid loss %.4f, valid accuracy %.4f (%lld/%lld)\n", (long long)run->step, ev.loss,
                ev.acc, (long long)ev.correct, (long long)ev.count);
    return 0;
}

static void bert_meta(void *self, train_run *run, double train_seconds_, const attn_kv **kv, int *n) {
    bert_train *b = self;
    b->r.total_steps = run->total_steps;
    b->r.train_seconds = train_seconds_;
    run_meta_build(&b->meta, b->m, &b->r);
    *kv = b->meta.kv;
    *n = b->meta.n;
}

static int bert_finish(void *self, train_run *run, double train_s, double train_cpu) {
    bert_train *b = self;
    const int ft = b->finetune;
    (void)train_cpu;
    const long long done = (long long)(run->step - run->start);
    printf("trained %lld steps in %.1f s (%.1f sequences/s; evaluation %.1f s apart)%s\n", done, train_s,
           (double)(done * b->B) / (train_s > 1e-9 ? train_s : 1e-9), run->eval_seconds,
           !strcmp(run->stopped, "time_budget") ? "; stopped by the time budget" : "");
    if (ft)
        printf("test accuracy %.4f (%lld/%lld); majority-class baseline %.4f; encoder %s\n", b->test_ev.acc,
               (long long)b->test_ev.correct, (long long)b->test_ev.count, b->base_train,
               b->r.init[0] ? "pretrained" : "from scratch");
    const attn_json_field f[] = {
        attn_json_str("event", "end"), attn_json_int("step", run->step), attn_json_str("stopped", run->stopped),
        attn_json_num("train_seconds", train_s),
        attn_json_num(ft ? "valid_accuracy" : "valid_masked_accuracy", b->last_ev.acc),
        attn_json_num("valid_loss", b->last_ev.loss),
        attn_json_num("test_accuracy", ft ? b->test_ev.acc : NAN),
        attn_json_num("majority_baseline", ft ? b->base_train : NAN),
    };
    return train_log(run, f, (int)(sizeof f / sizeof f[0]));
}

static const train_family pretrain_family = {
    "seq", "masked_accuracy", "BERT masked-LM pretraining", "loss (nats)", "held out", NULL, NULL,
    bert_step_loss, NULL, bert_evaluate, bert_meta, bert_finish, NULL, NULL, NULL,
};
static const train_family finetune_family = {
    "seq", "accuracy", "BERT fine-tuning (fortune file classification)", "loss (nats)", "held out", NULL, NULL,
    bert_step_loss, NULL, bert_evaluate, bert_meta, bert_finish, NULL, NULL, NULL,
};

/* ---- setting up a run ------------------------------------------------------------------ */

/* The vocabulary: the run's own (resume), the pretrained run's, or learned on the text. */
static int load_vocab(bert_train *b, int resume, const char *vpath) {
    char path[4096];
    if (resume) {
        if (attn_vocab_load(vpath, &b->vocab) != ATTN_OK) return cli_fail(CMD, "cannot load the vocabulary");
    } else if (b->r.init[0]) {
        dir_file(path, sizeof path, b->r.init, "vocab");
        if (attn_vocab_load(path, &b->vocab) != ATTN_OK)
            return cli_fail(CMD, "cannot load the pretrained run's vocabulary");
    } else {
        char *t = NULL;
        size_t tl = 0;
        if (attn_lm_text_load(b->r.text, &t, &tl) != ATTN_OK)
            return cli_fail(CMD, "cannot read the text (run scripts/get_fortunes_data.sh, then "
                                 "scripts/get_fortunes_labels.sh)");
        const attn_status st = attn_lm_vocab_learn(t, tl, b->r.tok, (int)b->r.bpe_merges, 1, &b->vocab);
        free(t);
        if (st != ATTN_OK) return cli_fail(CMD, "cannot build the vocabulary");
    }
    return 0;
}

/* Fine-tuning's data: the class names, train / valid / test, the training
 * subset, and the majority-class baselines of the test set (the most
 * frequent class of the training labels, and the best constant guess). */
static int load_labelled(bert_train *b) {
    char path[4096];
    dir_file(path, sizeof path, b->r.data, "classes");
    FILE *cf = fopen(path, "r");
    if (!cf) {
        fprintf(stderr, "attn bert finetune: cannot open %s (run scripts/get_fortunes_labels.sh)\n", path);
        return 1;
    }
    char line[256];
    while (b->n_classes < 64 && fgets(line, sizeof line, cf)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0]) snprintf(b->classes[b->n_classes++], sizeof b->classes[0], "%.63s", line);
    }
    fclose(cf);
    if (b->n_classes < 2) {
        fprintf(stderr, "attn bert finetune: %s names %d classes (2 or more needed)\n", path, b->n_classes);
        return 1;
    }
    attn_bert_corpus *cs[3] = {&b->tr, &b->va, &b->te};
    const char *names[3] = {"train", "valid", "test"};
    for (int k = 0; k < 3; k++) {
        char tp[1200], lp[1200];
        snprintf(tp, sizeof tp, "%s/%s.txt", b->r.data, names[k]);
        snprintf(lp, sizeof lp, "%s/%s.labels", b->r.data, names[k]);
        if (attn_bert_corpus_load(b->vocab, tp, lp, b->n_classes, b->T - 1, 0, cs[k]) != ATTN_OK)
            return cli_fail(CMD, "cannot read the labelled data");
    }
    if (b->r.train_per_class > 0 && attn_bert_corpus_per_class(&b->tr, b->n_classes, b->r.train_per_class) != ATTN_OK)
        return cli_fail(CMD, "cannot select the training examples");
    int64_t ctr[64] = {0}, cte[64] = {0};
    for (int64_t i = 0; i < b->tr.n; i++) ctr[b->tr.labels[i]]++;
    for (int64_t i = 0; i < b->te.n; i++) cte[b->te.labels[i]]++;
    int maj = 0;
    int64_t best = 0;
    for (int k = 0; k < b->n_classes; k++) {
        if (ctr[k] > ctr[maj]) maj = k;
        if (cte[k] > best) best = cte[k];
    }
    b->base_train = (double)cte[maj] / (double)b->te.n;
    b->base_best = (double)best / (double)b->te.n;
    return 0;
}

/* The model's configuration: the checkpoint's (resume), the pretrained
 * run's (finetune --init), or the options'. */
static int model_config(bert_train *b, const bert_args *a, int resume, const char *ckpt, attn_bert_config *bc) {
    char path[4096];
    memset(bc, 0, sizeof *bc);
    if (resume) {
        if (attn_bert_config_load(ckpt, bc) != ATTN_OK) return cli_fail(CMD, "cannot read the model configuration");
        return 0;
    }
    if (b->r.init[0]) {
        dir_file(path, sizeof path, b->r.init, "model.safetensors");
        if (attn_bert_config_load(path, bc) != ATTN_OK)
            return cli_fail(CMD, "cannot read the pretrained model's configuration");
        bc->dropout = (float)a->dropout;
    } else {
        bc->vocab = attn_vocab_size(b->vocab) + 1;
        bc->max_len = a->max_len;
        bc->n_layers = (int)a->layers;
        bc->n_heads = (int)a->heads;
        bc->d_model = a->d_model;
        bc->d_ff = a->d_ff;
        bc->dropout = (float)a->dropout;
        bc->norm_first = a->pre_ln;
    }
    bc->mlm = !b->finetune;
    bc->n_classes = 0;
    return 0;
}

static int cmd_bert_run(int argc, char **argv, int finetune) {
    bert_args a;
    train_opts o;
    int rc = parse(argc, argv, finetune, &a, &o);
    if (rc) return rc < 0 ? 0 : rc;
    bert_train b;
    memset(&b, 0, sizeof b);
    b.finetune = finetune;
    b.prog = finetune ? "attn bert finetune" : "attn bert pretrain";
    b.sub = b.prog + 10;
    const char *out = o.out, *sub = b.sub;
    const int resume = o.resume;
    if ((rc = train_dir_check(b.prog, &o))) return rc;
    run_info *rp = &b.r;
    attn_params *ps = NULL;
    attn_optim *opt = NULL;
    attn_ctx *ctx = NULL;
    train_run run;
    memset(&run, 0, sizeof run);
    char ckpt[4096], vpath[4096];
    long long step = 0;
    rc = 1;
    dir_file(ckpt, sizeof ckpt, out, "model.safetensors");
    dir_file(vpath, sizeof vpath, out, "vocab");
    if (resume) {
        if (run_meta_read(ckpt, finetune, rp, &step)) goto done;
        train_resume_ll("--steps", o.steps, &rp->total_steps);
        train_resume_ll("--batch", o.batch, &rp->batch);
        train_resume_ll("--warmup", o.warmup, &rp->warmup);
        train_resume_real("--lr", o.lr, &rp->lr);
        train_resume_real("--min-lr", o.min_lr, &rp->min_lr);
        train_resume_real("--weight-decay", o.weight_decay, &rp->weight_decay);
    } else {
        rp->finetune = finetune;
        char deftext[1100];
        snprintf(deftext, sizeof deftext, "%s/pretrain.txt", finetune ? a.data : "data/fortunes/labels");
        snprintf(rp->text, sizeof rp->text, "%.1000s", a.text ? a.text : deftext);
        snprintf(rp->valid, sizeof rp->valid, "%s", finetune ? "" : a.valid);
        snprintf(rp->data, sizeof rp->data, "%s", finetune ? a.data : "");
        snprintf(rp->init, sizeof rp->init, "%s", a.init ? a.init : "");
        rp->tok = !strcmp(a.tok, "bpe") ? ATTN_VOCAB_BPE : ATTN_VOCAB_CHAR;
        rp->bpe_merges = a.bpe_merges;
        rp->batch = o.batch > 0 ? o.batch : 32;
        rp->total_steps = o.steps > 0 ? o.steps : (finetune ? 600 : 2000);
        rp->warmup = o.warmup >= 0 ? o.warmup : (finetune ? 60 : 100);
        rp->seed = o.seed >= 0 ? o.seed : 1;
        rp->lr = o.lr >= 0 ? o.lr : (finetune ? 3e-4 : 1e-3);
        rp->min_lr = o.min_lr >= 0 ? o.min_lr : rp->lr / 10.0;
        rp->weight_decay = o.weight_decay >= 0 ? o.weight_decay : 0.01;
        rp->mask_prob = a.mask_prob;
        rp->train_per_class = a.train_per_class;
    }
    const double t_prep = now_s();
    if (load_vocab(&b, resume, vpath)) goto done;
    const int32_t V_tok = attn_vocab_size(b.vocab), mask_id = V_tok;
    attn_bert_config bc;
    if (model_config(&b, &a, resume, ckpt, &bc)) goto done;
    if (bc.vocab != V_tok + 1) {
        fprintf(stderr, "attn bert %s: the model has %lld tokens, the vocabulary %d (+ [MASK])\n", sub,
                (long long)bc.vocab, V_tok);
        goto done;
    }
    const int64_t T = bc.max_len, B = rp->batch;
    b.T = T;
    b.B = B;
    if ((rc = train_shard_check(b.prog, B))) goto done;
    rc = 1;
    if (!finetune) {
        if (attn_bert_corpus_load(b.vocab, rp->text, NULL, 0, T - 1, 1, &b.tr) != ATTN_OK ||
            attn_bert_corpus_load(b.vocab, rp->valid, NULL, 0, T - 1, 1, &b.va) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot read the pretraining texts");
            goto done;
        }
    } else {
        if (load_labelled(&b)) goto done;
        if (!resume) {
            bc.n_classes = b.n_classes;
        } else if (bc.n_classes != b.n_classes) {
            fprintf(stderr, "attn bert finetune: the checkpoint has %d classes, %s has %d\n", bc.n_classes,
                    rp->data, b.n_classes);
            goto done;
        }
    }
    if (o.epochs > 0) { /* an epoch: every training sequence once, B per step */
        const long long per_epoch = (long long)((b.tr.n + B - 1) / B);
        if (resume)
            train_resume_ll("--steps (from --epochs)", o.epochs * per_epoch, &rp->total_steps);
        else
            rp->total_steps = o.epochs * per_epoch;
    }
    const double prep_s = now_s() - t_prep;
    {
        attn_rng rng;
        attn_rng_init(&rng, (uint64_t)rp->seed);
        if (attn_params_new(&ps) != ATTN_OK || attn_bert_new(&b.m, ps, &bc, resume ? NULL : &rng) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot create the model");
            goto done;
        }
    }
    if (!resume && rp->init[0]) {
        char path[4096];
        dir_file(path, sizeof path, rp->init, "model.safetensors");
        if (attn_bert_load_encoder(path, b.m) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot load the pretrained encoder");
            goto done;
        }
    }
    if (!resume) {
        if (make_dir(out) != 0) {
            fprintf(stderr, "attn bert %s: cannot create the directory %s: %s\n", sub, out, strerror(errno));
            goto done;
        }
        if (train_dist_rank() == 0 && attn_vocab_save(b.vocab, vpath) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot save the vocabulary");
            goto done;
        }
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
    if (resume) {
        int64_t s64 = 0;
        if (attn_checkpoint_load(ckpt, ps, opt, &s64) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot load the checkpoint");
            goto done;
        }
        step = s64;
    }
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)(o.arena_mb > 0 ? o.arena_mb : 512) << 20;
    cc.n_threads = (int)(o.threads > 0 ? o.threads : 0);
    cc.seed = (uint64_t)rp->seed;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    run.prog = b.prog;
    run.label = sub;
    run.out = out;
    run.fam = finetune ? &finetune_family : &pretrain_family;
    run.self = &b;
    run.ctx = ctx;
    run.ps = ps;
    run.opt = opt;
    run.step = step;
    run.total_steps = rp->total_steps;
    run.warmup = rp->warmup;
    run.log_every = o.log_every > 0 ? o.log_every : 50;
    run.eval_every = o.eval_every >= 0 ? o.eval_every : (finetune ? 100 : 500);
    run.lr = rp->lr;
    run.min_lr = rp->min_lr;
    run.clip = CLIP_NORM;
    run.time_budget = o.time_budget > 0 ? o.time_budget : 0.0;
    run.seconds_before = rp->train_seconds;
    run.arena_mb = (long long)(cc.arena_bytes >> 20);
    run.quiet = o.quiet;
    if (step >= rp->total_steps) {
        rc = train_loop(&run); /* says the run is complete */
        goto done;
    }
    if (train_log_open(&run, resume)) goto done;
    b.bids = malloc((size_t)(B * T) * sizeof *b.bids);
    b.bin = malloc((size_t)(B * T) * sizeof *b.bin);
    b.blab = malloc((size_t)(B * T) * sizeof *b.blab);
    b.blens = malloc((size_t)B * sizeof *b.blens);
    b.brows = malloc((size_t)B * sizeof *b.brows);
    if (!b.bids || !b.bin || !b.blab || !b.blens || !b.brows) {
        fprintf(stderr, "attn bert %s: out of memory\n", sub);
        goto done;
    }
    b.mo = (attn_bert_mask_opts){(float)rp->mask_prob, mask_id, ATTN_TOKEN_SPECIALS, ATTN_TOKEN_SPECIALS, V_tok};
    const attn_bert_config *g = &b.m->cfg;
    char desc[1024];
    snprintf(desc, sizeof desc,
             "BERT %s: %d layers, %d heads, d_model %lld, d_ff %lld, max_len %lld, %s, dropout %g; %s vocabulary "
             "of %d tokens + [MASK]; %lld parameters%s%.300s",
             finetune ? "classifier" : "MLM", g->n_layers, g->n_heads, (long long)g->d_model, (long long)g->d_ff,
             (long long)g->max_len, g->norm_first ? "pre-LN" : "post-LN", (double)g->dropout,
             attn_vocab_kind_of(b.vocab) == ATTN_VOCAB_BPE ? "BPE" : "character", V_tok,
             (long long)attn_params_numel(ps), rp->init[0] ? "; encoder from " : (finetune ? "; random encoder" : ""),
             rp->init);
    printf("%s\n", desc);
    if (!finetune)
        printf("data: %s: %lld sequences (%lld fortunes); held out %s: %lld sequences; prepared in %.1f s\n",
               rp->text, (long long)b.tr.n, (long long)b.tr.texts, rp->valid, (long long)b.va.n, prep_s);
    else
        printf("data: %s: %d classes; train %lld%s, valid %lld, test %lld fortunes; majority-class baseline on "
               "test %.4f (best constant %.4f); prepared in %.1f s\n",
               rp->data, b.n_classes, (long long)b.tr.n, rp->train_per_class > 0 ? " (first N per class)" : "",
               (long long)b.va.n, (long long)b.te.n, b.base_train, b.base_best, prep_s);
    printf("schedule: %lld steps of %lld sequences, AdamW lr %g -> %g (warmup %lld, cosine), wd %g; threads %d\n",
           rp->total_steps, (long long)B, rp->lr, rp->min_lr, rp->warmup, rp->weight_decay, attn_ctx_threads(ctx));
    if (resume) printf("resuming %s at step %lld\n", out, step);
    fflush(stdout);
    {
        const attn_json_field f[] = {
            attn_json_str("event", resume ? "resume" : "start"), attn_json_int("step", step),
            attn_json_str("mode", sub), attn_json_str("init", rp->init),
            attn_json_int("vocab", V_tok + 1), attn_json_int("parameters", attn_params_numel(ps)),
            attn_json_int("total_steps", rp->total_steps), attn_json_int("batch", B),
            attn_json_int("train_sequences", b.tr.n), attn_json_int("train_per_class", rp->train_per_class),
            attn_json_int("max_len", T), attn_json_int("threads", attn_ctx_threads(ctx)),
            attn_json_str("description", desc),
        };
        if (train_log(&run, f, (int)(sizeof f / sizeof f[0]))) goto done;
    }
    rc = train_loop(&run);
done:
    if (run.log) attn_jsonl_close(run.log);
    free(b.bids);
    free(b.bin);
    free(b.blab);
    free(b.blens);
    free(b.brows);
    attn_bert_corpus_free(&b.tr);
    attn_bert_corpus_free(&b.va);
    attn_bert_corpus_free(&b.te);
    attn_ctx_free(ctx);
    attn_optim_free(opt);
    attn_bert_free(b.m);
    attn_params_free(ps);
    attn_vocab_free(b.vocab);
    return rc;
}

int cmd_bert(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: attn bert pretrain|finetune [options]   (attn bert pretrain --help, attn bert finetune --help)\n\n"
                   "  pretrain   masked-language-model pretraining of a BERT-style encoder on the fortunes\n"
                   "  finetune   fortune-file classification from the [CLS] position, from a pretrained\n"
                   "             encoder (--init DIR) or from scratch\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "pretrain")) return cmd_bert_run(argc - 1, argv + 1, 0);
    if (!strcmp(argv[1], "finetune")) return cmd_bert_run(argc - 1, argv + 1, 1);
    fprintf(stderr, "attn bert: unknown subcommand '%s' (pretrain or finetune)\n", argv[1]);
    return 2;
}
