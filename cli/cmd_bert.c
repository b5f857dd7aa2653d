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
    int bad = 0;
    for (int i = 0; i < RUN_META; i++) v[i] = attn_safetensors_metadata(f, run_keys[i]);
    for (int i = 0; i < RUN_META_REQUIRED && !bad; i++) bad = !v[i];
    const char *st = attn_safetensors_metadata(f, "step");
    const char *want = finetune ? "attn-bert-finetune" : "attn-bert-pretrain";
    if (bad || !st || strcmp(v[0], want) != 0) {
        attn_safetensors_close(f);
        fprintf(stderr, "attn bert: %s is not a checkpoint of attn bert %s (run.* metadata)\n", path,
                finetune ? "finetune" : "pretrain");
        return 1;
    }
    r->finetune = finetune;
    snprintf(r->text, sizeof r->text, "%s", v[1]);
    snprintf(r->valid, sizeof r->valid, "%s", v[2]);
    snprintf(r->data, sizeof r->data, "%s", v[3]);
    snprintf(r->init, sizeof r->init, "%s", v[4]);
    r->tok = !strcmp(v[5], "bpe") ? ATTN_VOCAB_BPE : ATTN_VOCAB_CHAR;
    r->bpe_merges = atoll(v[6]);
    r->batch = atoll(v[7]);
    r->total_steps = atoll(v[8]);
    r->warmup = atoll(v[9]);
    r->seed = atoll(v[10]);
    r->lr = atof(v[11]);
    r->min_lr = atof(v[12]);
    r->weight_decay = atof(v[13]);
    r->mask_prob = atof(v[14]);
    r->train_seconds = atof(v[15]);
    r->train_per_class = v[16] ? atoll(v[16]) : 0;
    *step = atoll(st);
    attn_safetensors_close(f);
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

/* ---- the loss chart, from the log ------------------------------------------------------ */

static int json_num(const char *line, const char *key, double *out) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p) return -1;
    char *end = NULL;
    *out = strtod(p + strlen(pat), &end);
    return end == p + strlen(pat) ? -1 : 0;
}

static void write_chart(const char *dir, const char *title) {
    char path[4096], line[8192];
    dir_file(path, sizeof path, dir, "train.jsonl");
    FILE *f = fopen(path, "r");
    if (!f) return;
    enum { CAP = 2048 };
    static double tx[CAP], ty[CAP], vx[CAP], vy[CAP];
    int64_t nt = 0, nv = 0;
    while (fgets(line, sizeof line, f)) {
        double s, l;
        const int is_train = strstr(line, "\"event\":\"train\"") != NULL;
        const int is_eval = strstr(line, "\"event\":\"eval\"") != NULL;
        if (!is_train && !is_eval) continue;
        if (json_num(line, "step", &s) || json_num(line, is_train ? "loss" : "valid_loss", &l)) continue;
        if (is_train && nt < CAP) {
            tx[nt] = s;
            ty[nt++] = l;
        } else if (is_eval && nv < CAP) {
            vx[nv] = s;
            vy[nv++] = l;
        }
    }
    fclose(f);
    if (nt == 0) return;
    attn_series ser[2] = {{"train (window mean)", tx, ty, nt}, {"held out", vx, vy, nv}};
    attn_line_chart ch = {title, "step", "loss (nats)", ser, nv > 0 ? 2 : 1, 0, 0, 0};
    dir_file(path, sizeof path, dir, "loss.svg");
    if (attn_svg_line_chart(path, &ch) != ATTN_OK)
        fprintf(stderr, "attn bert: cannot write %s: %s\n", path, attn_last_error());
}

/* ---- the shared command ------------------------------------------------------------------ */

static void usage(FILE *f, int finetune) {
    if (!finetune)
        fprintf(f,
            "usage: attn bert pretrain --out DIR [options]\n\n"
            "Pretrains a BERT-style encoder as a masked language model (15%% of the tokens\n"
            "selected; 80%% [MASK], 10%% random, 10%% kept) and reports the held-out MLM loss\n"
            "and masked-token accuracy.\n\n"
            "data\n"
            "  --text FILE            fortunes to pretrain on (default data/fortunes/labels/pretrain.txt)\n"
            "  --valid FILE           held-out fortunes (default data/fortunes/valid.txt)\n"
            "  --tokenizer char|bpe   tokens (default bpe)\n"
            "  --bpe-merges N         BPE merges learned on --text (default 1000)\n"
            "  --mask-prob P          selection probability (default 0.15)\n");
    else
        fprintf(f,
            "usage: attn bert finetune --out DIR [--init PRETRAIN_DIR] [options]\n\n"
            "Fine-tunes a classifier on the [CLS] position (pooler and linear head) and\n"
            "reports the held-out test accuracy. With --init the encoder (and its vocabulary\n"
            "and shape) comes from a run of 'attn bert pretrain'; without it the encoder\n"
            "starts from random weights, with the same vocabulary (learned on --text).\n\n"
            "data\n"
            "  --data DIR             classes, {train,valid,test}.{txt,labels} (default data/fortunes/labels)\n"
            "  --init DIR             a pretrained run (default: none)\n"
            "  --train-per-class N    train on the first N labelled examples of each class only\n"
            "                         (in the order of train.txt; default 0: all)\n"
            "  --text FILE            BPE training text without --init (default DIR/pretrain.txt)\n"
            "  --tokenizer char|bpe   without --init (default bpe)\n"
            "  --bpe-merges N         without --init (default 1000)\n");
    fprintf(f,
        "model (ignored by finetune --init: the pretrained shape is kept)\n"
        "  --layers N             blocks (default 4)\n"
        "  --heads N              attention heads (default 4)\n"
        "  --d-model N            width (default 128)\n"
        "  --d-ff N               feed-forward width (0: 4 d-model)\n"
        "  --max-len N            tokens per sequence, [CLS] included (default 64)\n"
        "  --pre-ln               pre-LN blocks with a final LayerNorm (default post-LN, as BERT)\n"
        "  --dropout P            dropout (default %s)\n"
        "schedule\n"
        "  --batch N              sequences per step (default 32)\n"
        "  --steps N              optimizer steps (default %s; with --resume: the new total)\n"
        "  --lr X                 peak learning rate of AdamW (default %s)\n"
        "  --min-lr X             final learning rate of the cosine (default lr / 10)\n"
        "  --warmup N             linear warmup steps (default %s)\n"
        "  --weight-decay X       AdamW's decoupled weight decay (default 0.01)\n"
        "  --seed N               initialisation, batches, masks, dropout (default 1)\n"
        "run\n"
        "  --eval-every N         held-out evaluation and a checkpoint every N steps (default %s; 0: end only)\n"
        "  --log-every N          a JSONL line every N steps (default 50)\n"
        "  --threads N            threads for the ops (default: all)\n"
        "  --arena-mb N           context arena in MiB (default 512)\n"
        "  --resume               continue DIR's run: same model, optimizer state, batches and masks\n"
        "  --quiet                no progress line\n",
        finetune ? "0.1" : "0", finetune ? "600" : "2000", finetune ? "3e-4" : "1e-3",
        finetune ? "60" : "100", finetune ? "100" : "500");
}

static int cmd_bert_run(int argc, char **argv, int finetune) {
    const char *sub = finetune ? "finetune" : "pretrain";
    const char *out = NULL, *text = NULL, *valid = "data/fortunes/valid.txt";
    const char *data = "data/fortunes/labels", *init = NULL, *tok = "bpe";
    long long bpe_merges = 1000, layers = 4, heads = 4, d_model = 128, d_ff = 0, max_len = 64;
    long long train_per_class = 0;
    long long batch = 32, steps = 0, warmup = finetune ? 60 : 100, seed = 1;
    long long eval_every = finetune ? 100 : 500, log_every = 50, threads = 0, arena_mb = 512;
    double lr = finetune ? 3e-4 : 1e-3, min_lr = -1.0, wd = 0.01, dropout = finetune ? 0.1 : 0.0;
    double mask_prob = 0.15;
    int pre_ln = 0, resume = 0, quiet = 0, rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, finetune);
            return 0;
        }
        if (!strcmp(a, "--pre-ln")) { pre_ln = 1; continue; }
        if (!strcmp(a, "--resume")) { resume = 1; continue; }
        if (!strcmp(a, "--quiet")) { quiet = 1; continue; }
        i++;
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--text")) text = v;
        else if (!strcmp(a, "--valid") && !finetune) valid = v;
        else if (!strcmp(a, "--data") && finetune) data = v;
        else if (!strcmp(a, "--init") && finetune) init = v;
        else if (!strcmp(a, "--train-per-class") && finetune)
            rc = opt_int(sub, a, v, 0, 1ll << 40, &train_per_class);
        else if (!strcmp(a, "--tokenizer")) tok = v;
        else if (!strcmp(a, "--bpe-merges")) rc = opt_int(sub, a, v, 0, 100000, &bpe_merges);
        else if (!strcmp(a, "--mask-prob") && !finetune) rc = opt_real(sub, a, v, 0.01, 1.0, &mask_prob);
        else if (!strcmp(a, "--layers")) rc = opt_int(sub, a, v, 1, 256, &layers);
        else if (!strcmp(a, "--heads")) rc = opt_int(sub, a, v, 1, 1024, &heads);
        else if (!strcmp(a, "--d-model")) rc = opt_int(sub, a, v, 1, 65536, &d_model);
        else if (!strcmp(a, "--d-ff")) rc = opt_int(sub, a, v, 0, 1 << 20, &d_ff);
        else if (!strcmp(a, "--max-len")) rc = opt_int(sub, a, v, 2, 1 << 16, &max_len);
        else if (!strcmp(a, "--dropout")) rc = opt_real(sub, a, v, 0.0, 0.99, &dropout);
        else if (!strcmp(a, "--batch")) rc = opt_int(sub, a, v, 1, 1 << 20, &batch);
        else if (!strcmp(a, "--steps")) rc = opt_int(sub, a, v, 1, 1ll << 40, &steps);
        else if (!strcmp(a, "--lr")) rc = opt_real(sub, a, v, 0.0, 10.0, &lr);
        else if (!strcmp(a, "--min-lr")) rc = opt_real(sub, a, v, 0.0, 10.0, &min_lr);
        else if (!strcmp(a, "--warmup")) rc = opt_int(sub, a, v, 0, 1ll << 40, &warmup);
        else if (!strcmp(a, "--weight-decay")) rc = opt_real(sub, a, v, 0.0, 10.0, &wd);
        else if (!strcmp(a, "--seed")) rc = opt_int(sub, a, v, 0, 1ll << 62, &seed);
        else if (!strcmp(a, "--eval-every")) rc = opt_int(sub, a, v, 0, 1ll << 40, &eval_every);
        else if (!strcmp(a, "--log-every")) rc = opt_int(sub, a, v, 1, 1ll << 40, &log_every);
        else if (!strcmp(a, "--threads")) rc = opt_int(sub, a, v, 0, 1024, &threads);
        else if (!strcmp(a, "--arena-mb")) rc = opt_int(sub, a, v, 16, 1 << 20, &arena_mb);
        else {
            fprintf(stderr, "attn bert %s: unknown option '%s' (try 'attn bert %s --help')\n", sub, a, sub);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "attn bert %s: %s needs a value\n", sub, a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!out) {
        fprintf(stderr, "attn bert %s: --out DIR is required (try 'attn bert %s --help')\n", sub, sub);
        return 2;
    }
    if (strcmp(tok, "char") && strcmp(tok, "bpe")) {
        fprintf(stderr, "attn bert %s: --tokenizer '%s': expected char or bpe\n", sub, tok);
        return 2;
    }

    run_info r;
    memset(&r, 0, sizeof r);
    attn_params *ps = NULL;
    attn_bert *m = NULL;
    attn_vocab *vocab = NULL;
    attn_optim *opt = NULL;
    attn_ctx *ctx = NULL;
    attn_jsonl *log = NULL;
    attn_bert_corpus tr = {0}, va = {0}, te = {0};
    int32_t *bids = NULL, *bin = NULL, *blab = NULL, *blens = NULL;
    int64_t *brows = NULL;
    char path[4096], ckpt[4096], vpath[4096], classes[64][64];
    int n_classes = 0;
    long long step = 0;
    rc = 1;
    dir_file(ckpt, sizeof ckpt, out, "model.safetensors");
    dir_file(vpath, sizeof vpath, out, "vocab");
    if (resume) {
        if (run_meta_read(ckpt, finetune, &r, &step)) goto done;
        if (steps > 0) r.total_steps = steps;
    } else {
        r.finetune = finetune;
        char deftext[1100];
        snprintf(deftext, sizeof deftext, "%s/pretrain.txt", finetune ? data : "data/fortunes/labels");
        snprintf(r.text, sizeof r.text, "%.1000s", text ? text : deftext);
        snprintf(r.valid, sizeof r.valid, "%s", finetune ? "" : valid);
        snprintf(r.data, sizeof r.data, "%s", finetune ? data : "");
        snprintf(r.init, sizeof r.init, "%s", init ? init : "");
        r.tok = !strcmp(tok, "bpe") ? ATTN_VOCAB_BPE : ATTN_VOCAB_CHAR;
        r.bpe_merges = bpe_merges;
        r.batch = batch;
        r.total_steps = steps > 0 ? steps : (finetune ? 600 : 2000);
        r.warmup = warmup;
        r.seed = seed;
        r.lr = lr;
        r.min_lr = min_lr >= 0 ? min_lr : lr / 10.0;
        r.weight_decay = wd;
        r.mask_prob = mask_prob;
        r.train_per_class = train_per_class;
    }
    const double t_prep = now_s();
    /* The vocabulary: the run's own (resume), the pretrained run's, or learned on the text. */
    if (resume) {
        if (attn_vocab_load(vpath, &vocab) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot load the vocabulary");
            goto done;
        }
    } else if (r.init[0]) {
        dir_file(path, sizeof path, r.init, "vocab");
        if (attn_vocab_load(path, &vocab) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot load the pretrained run's vocabulary");
            goto done;
        }
    } else {
        char *t = NULL;
        size_t tl = 0;
        if (attn_lm_text_load(r.text, &t, &tl) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot read the text (run scripts/get_fortunes_data.sh, then scripts/get_fortunes_labels.sh)");
            goto done;
        }
        const attn_status st = attn_lm_vocab_learn(t, tl, r.tok, (int)r.bpe_merges, 1, &vocab);
        free(t);
        if (st != ATTN_OK) {
            rc = cli_fail(CMD, "cannot build the vocabulary");
            goto done;
        }
    }
    const int32_t V_tok = attn_vocab_size(vocab), mask_id = V_tok;
    /* The model. */
    attn_bert_config bc;
    memset(&bc, 0, sizeof bc);
    if (resume) {
        if (attn_bert_config_load(ckpt, &bc) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot read the model configuration");
            goto done;
        }
    } else if (r.init[0]) {
        dir_file(path, sizeof path, r.init, "model.safetensors");
        if (attn_bert_config_load(path, &bc) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot read the pretrained model's configuration");
            goto done;
        }
        bc.dropout = (float)dropout;
    } else {
        bc.vocab = V_tok + 1;
        bc.max_len = max_len;
        bc.n_layers = (int)layers;
        bc.n_heads = (int)heads;
        bc.d_model = d_model;
        bc.d_ff = d_ff;
        bc.dropout = (float)dropout;
        bc.norm_first = pre_ln;
    }
    if (bc.vocab != V_tok + 1) {
        fprintf(stderr, "attn bert %s: the model has %lld tokens, the vocabulary %d (+ [MASK])\n", sub,
                (long long)bc.vocab, V_tok);
        goto done;
    }
    const int64_t T = bc.max_len, B = r.batch;
    /* The data. */
    if (!finetune) {
        if (attn_bert_corpus_load(vocab, r.text, NULL, 0, T - 1, 1, &tr) != ATTN_OK ||
            attn_bert_corpus_load(vocab, r.valid, NULL, 0, T - 1, 1, &va) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot read the pretraining texts");
            goto done;
        }
    } else {
        dir_file(path, sizeof path, r.data, "classes");
        FILE *cf = fopen(path, "r");
        if (!cf) {
            fprintf(stderr, "attn bert finetune: cannot open %s (run scripts/get_fortunes_labels.sh)\n", path);
            goto done;
        }
        char line[256];
        while (n_classes < 64 && fgets(line, sizeof line, cf)) {
            line[strcspn(line, "\r\n")] = '\0';
            if (line[0]) snprintf(classes[n_classes++], sizeof classes[0], "%.63s", line);
        }
        fclose(cf);
        if (n_classes < 2) {
            fprintf(stderr, "attn bert finetune: %s names %d classes (2 or more needed)\n", path, n_classes);
            goto done;
        }
        attn_bert_corpus *cs[3] = {&tr, &va, &te};
        const char *names[3] = {"train", "valid", "test"};
        for (int k = 0; k < 3; k++) {
            char tp[1200], lp[1200];
            snprintf(tp, sizeof tp, "%s/%s.txt", r.data, names[k]);
            snprintf(lp, sizeof lp, "%s/%s.labels", r.data, names[k]);
            if (attn_bert_corpus_load(vocab, tp, lp, n_classes, T - 1, 0, cs[k]) != ATTN_OK) {
                rc = cli_fail(CMD, "cannot read the labelled data");
                goto done;
            }
        }
        if (r.train_per_class > 0 && attn_bert_corpus_per_class(&tr, n_classes, r.train_per_class) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot select the training examples");
            goto done;
        }
        if (!resume) {
            bc.mlm = 0;
            bc.n_classes = n_classes;
        } else if (bc.n_classes != n_classes) {
            fprintf(stderr, "attn bert finetune: the checkpoint has %d classes, %s has %d\n", bc.n_classes,
                    r.data, n_classes);
            goto done;
        }
    }
    if (!finetune && !resume) {
        bc.mlm = 1;
        bc.n_classes = 0;
    }
    const double prep_s = now_s() - t_prep;
    {
        attn_rng rng;
        attn_rng_init(&rng, (uint64_t)r.seed);
        if (attn_params_new(&ps) != ATTN_OK || attn_bert_new(&m, ps, &bc, resume ? NULL : &rng) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot create the model");
            goto done;
        }
    }
    if (!resume && r.init[0]) {
        dir_file(path, sizeof path, r.init, "model.safetensors");
        if (attn_bert_load_encoder(path, m) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot load the pretrained encoder");
            goto done;
        }
    }
    if (!resume) {
        if (make_dir(out) != 0) {
            fprintf(stderr, "attn bert %s: cannot create the directory %s: %s\n", sub, out, strerror(errno));
            goto done;
        }
        if (attn_vocab_save(vocab, vpath) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot save the vocabulary");
            goto done;
        }
    }
    attn_optim_config oc = {0};
    oc.kind = ATTN_OPTIM_ADAMW;
    oc.lr = (float)r.lr;
    oc.beta1 = 0.9f;
    oc.beta2 = 0.999f;
    oc.weight_decay = (float)r.weight_decay;
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
        if (step >= r.total_steps) {
            fprintf(stderr, "attn bert %s: %s is already at step %lld of %lld (give --steps N with a larger N)\n",
                    sub, out, step, r.total_steps);
            goto done;
        }
    }
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)arena_mb << 20;
    cc.n_threads = (int)threads;
    cc.seed = (uint64_t)r.seed;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    dir_file(path, sizeof path, out, "train.jsonl");
    if (attn_jsonl_open(&log, path, resume) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot open the log");
        goto done;
    }
    bids = malloc((size_t)(B * T) * sizeof *bids);
    bin = malloc((size_t)(B * T) * sizeof *bin);
    blab = malloc((size_t)(B * T) * sizeof *blab);
    blens = malloc((size_t)B * sizeof *blens);
    brows = malloc((size_t)B * sizeof *brows);
    if (!bids || !bin || !blab || !blens || !brows) {
        fprintf(stderr, "attn bert %s: out of memory\n", sub);
        goto done;
    }
    const attn_bert_mask_opts mo = {(float)r.mask_prob, mask_id, ATTN_TOKEN_SPECIALS, ATTN_TOKEN_SPECIALS, V_tok};
    /* The majority-class baselines of the test set: the most frequent class of
     * the training labels, and the best constant guess on the test set. */
    double base_train = 0.0, base_best = 0.0;
    if (finetune) {
        int64_t ctr[64] = {0}, cte[64] = {0};
        for (int64_t i = 0; i < tr.n; i++) ctr[tr.labels[i]]++;
        for (int64_t i = 0; i < te.n; i++) cte[te.labels[i]]++;
        int maj = 0;
        int64_t best = 0;
        for (int k = 0; k < n_classes; k++) {
            if (ctr[k] > ctr[maj]) maj = k;
            if (cte[k] > best) best = cte[k];
        }
        base_train = (double)cte[maj] / (double)te.n;
        base_best = (double)best / (double)te.n;
    }
    const attn_bert_config *g = &m->cfg;
    char desc[1024];
    snprintf(desc, sizeof desc,
             "BERT %s: %d layers, %d heads, d_model %lld, d_ff %lld, max_len %lld, %s, dropout %g; %s vocabulary "
             "of %d tokens + [MASK]; %lld parameters%s%.300s",
             finetune ? "classifier" : "MLM", g->n_layers, g->n_heads, (long long)g->d_model, (long long)g->d_ff,
             (long long)g->max_len, g->norm_first ? "pre-LN" : "post-LN", (double)g->dropout,
             attn_vocab_kind_of(vocab) == ATTN_VOCAB_BPE ? "BPE" : "character", V_tok,
             (long long)attn_params_numel(ps), r.init[0] ? "; encoder from " : (finetune ? "; random encoder" : ""),
             r.init);
    printf("%s\n", desc);
    if (!finetune)
        printf("data: %s: %lld sequences (%lld fortunes); held out %s: %lld sequences; prepared in %.1f s\n",
               r.text, (long long)tr.n, (long long)tr.texts, r.valid, (long long)va.n, prep_s);
    else
        printf("data: %s: %d classes; train %lld%s, valid %lld, test %lld fortunes; majority-class baseline on "
               "test %.4f (best constant %.4f); prepared in %.1f s\n",
               r.data, n_classes, (long long)tr.n, r.train_per_class > 0 ? " (first N per class)" : "",
               (long long)va.n, (long long)te.n, base_train, base_best, prep_s);
    printf("schedule: %lld steps of %lld sequences, AdamW lr %g -> %g (warmup %lld, cosine), wd %g; threads %d\n",
           r.total_steps, (long long)B, r.lr, r.min_lr, r.warmup, r.weight_decay, attn_ctx_threads(ctx));
    if (resume) printf("resuming %s at step %lld\n", out, step);
    fflush(stdout);
    {
        const attn_json_field f[] = {
            attn_json_str("event", resume ? "resume" : "start"), attn_json_int("step", step),
            attn_json_str("mode", sub), attn_json_str("init", r.init),
            attn_json_int("vocab", V_tok + 1), attn_json_int("parameters", attn_params_numel(ps)),
            attn_json_int("total_steps", r.total_steps), attn_json_int("batch", B),
            attn_json_int("train_sequences", tr.n), attn_json_int("train_per_class", r.train_per_class),
            attn_json_int("max_len", T), attn_json_int("threads", attn_ctx_threads(ctx)),
            attn_json_str("description", desc),
        };
        if (attn_jsonl_write(log, f, (int)(sizeof f / sizeof f[0])) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot write the log");
            goto done;
        }
    }

    attn_progress prog;
    attn_progress_init(&prog, quiet ? NULL : stderr, r.total_steps - step, sub);
    prog.unit = "seq";
    const long long start = step;
    const double t_run = now_s(), seconds_before = r.train_seconds;
    double win_loss = 0.0, win_t = t_run, eval_seconds = 0.0, win_acc = 0.0;
    int64_t win_steps = 0, win_tokens = 0;
    eval_result last_ev = {NAN, NAN, 0, 0, 0.0}, test_ev = {NAN, NAN, 0, 0, 0.0};
    run_meta meta;
    while (step < r.total_steps) {
        attn_ctx_reset(ctx);
        attn_ctx_set_rng(ctx, (uint64_t)r.seed, (uint64_t)step << 24);
        attn_bert_sample_rows((uint64_t)r.seed, step, B, tr.n, brows);
        int64_t Tb = 0, ok = 0, n = 0;
        make_batch(&tr, brows, B, T, bids, blens, finetune ? blab : NULL, &Tb);
        attn_tensor *ti = NULL, *loss = NULL;
        attn_tensor *tl = attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){B}, blens);
        if (!finetune) {
            attn_bert_mask(&mo, (uint64_t)r.seed, (uint64_t)step, bids, blens, B, Tb, bin, blab, &n);
            ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, Tb}, bin);
            loss = attn_bert_mlm_loss(ctx, m, ti, tl, attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, Tb}, blab),
                                      &ok, &n);
        } else {
            ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, Tb}, bids);
            loss = attn_bert_cls_loss(ctx, m, ti, tl, attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){B}, blab), &ok);
            n = B;
        }
        if (!loss) {
            fprintf(stderr, "attn bert %s: step %lld: %s\n", sub, step, attn_ctx_error(ctx));
            if (attn_ctx_status(ctx) == ATTN_ERR_OOM)
                fprintf(stderr, "hint: raise --arena-mb (now %lld) or lower --batch\n", arena_mb);
            goto done;
        }
        attn_params_zero_grad(ps);
        if (attn_backward(ctx, loss) != ATTN_OK) {
            fprintf(stderr, "attn bert %s: step %lld: backward: %s\n", sub, step, attn_last_error());
            goto done;
        }
        const float norm = attn_clip_grad_norm(ps, CLIP_NORM);
        const double l = attn_f32(loss)[0];
        if (!isfinite(norm) || !isfinite(l)) {
            fprintf(stderr, "attn bert %s: step %lld: loss %g, gradient norm %g: not finite; lower --lr\n", sub,
                    step, l, (double)norm);
            goto done;
        }
        const float lrs = attn_lr_warmup_cosine(step, r.warmup, r.total_steps, (float)r.lr, (float)r.min_lr);
        if (attn_optim_step(opt, lrs) != ATTN_OK) {
            rc = cli_fail(CMD, "optimizer step failed");
            goto done;
        }
        step++;
        win_loss += l;
        win_acc += n ? (double)ok / (double)n : 0.0;
        win_steps++;
        for (int64_t b = 0; b < B; b++) win_tokens += blens[b];
        attn_progress_update(&prog, step - start, l, (double)B);
        const int last = step >= r.total_steps;
        if (step % log_every == 0 || last) {
            const double t = now_s(), dt = t - win_t > 1e-9 ? t - win_t : 1e-9;
            const attn_json_field f[] = {
                attn_json_str("event", "train"), attn_json_int("step", step),
                attn_json_num("loss", win_loss / (double)win_steps),
                attn_json_num(finetune ? "accuracy" : "masked_accuracy", win_acc / (double)win_steps),
                attn_json_num("lr", lrs), attn_json_num("grad_norm", norm),
                attn_json_num("tokens_per_s", (double)win_tokens / dt),
                attn_json_num("elapsed", seconds_before + (t - t_run)),
            };
            if (attn_jsonl_write(log, f, (int)(sizeof f / sizeof f[0])) != ATTN_OK) {
                rc = cli_fail(CMD, "cannot write the log");
                goto done;
            }
            win_loss = win_acc = 0.0;
            win_steps = win_tokens = 0;
            win_t = now_s();
        }
        if ((eval_every > 0 && step % eval_every == 0) || last) {
            eval_result ev;
            if (!finetune ? eval_mlm(ctx, m, &va, &mo, B, &ev) : eval_cls(ctx, m, &va, B, &ev)) goto done;
            double secs = ev.seconds;
            if (last && finetune) {
                if (eval_cls(ctx, m, &te, B, &test_ev)) goto done;
                secs += test_ev.seconds;
            }
            eval_seconds += secs;
            win_t += secs;
            last_ev = ev;
            const attn_json_field f[] = {
                attn_json_str("event", "eval"), attn_json_int("step", step),
                attn_json_num("valid_loss", ev.loss),
                attn_json_num(finetune ? "valid_accuracy" : "valid_masked_accuracy", ev.acc),
                attn_json_int(finetune ? "valid_examples" : "masked_tokens", ev.count),
                attn_json_num("test_accuracy", last && finetune ? test_ev.acc : NAN),
                attn_json_int("test_correct", last && finetune ? test_ev.correct : 0),
                attn_json_int("test_examples", last && finetune ? test_ev.count : 0),
                attn_json_num("seconds", secs),
            };
            if (attn_jsonl_write(log, f, (int)(sizeof f / sizeof f[0])) != ATTN_OK) {
                rc = cli_fail(CMD, "cannot write the log");
                goto done;
            }
            if (!quiet || last) {
                if (prog.tty && !quiet) fputc('\n', stderr);
                if (!finetune)
                    fprintf(last ? stdout : stderr,
                            "step %lld: held-out MLM loss %.4f nats/token, masked-token accuracy %.4f (%lld masked tokens)\n",
                            step, ev.loss, ev.acc, (long long)ev.count);
                else
                    fprintf(last ? stdout : stderr, "step %lld: valid loss %.4f, valid accuracy %.4f (%lld/%lld)\n",
                            step, ev.loss, ev.acc, (long long)ev.correct, (long long)ev.count);
            }
            r.train_seconds = seconds_before + (now_s() - t_run) - eval_seconds;
            run_meta_build(&meta, m, &r);
            if (attn_checkpoint_save(ckpt, ps, opt, step, meta.kv, meta.n) != ATTN_OK) {
                rc = cli_fail(CMD, "cannot save the checkpoint");
                goto done;
            }
        }
    }
    attn_progress_finish(&prog);
    {
        const double train_s = now_s() - t_run - eval_seconds;
        printf("trained %lld steps in %.1f s (%.1f sequences/s; evaluation %.1f s apart)\n", step - start, train_s,
               (double)((step - start) * B) / (train_s > 1e-9 ? train_s : 1e-9), eval_seconds);
        if (finetune)
            printf("test accuracy %.4f (%lld/%lld); majority-class baseline %.4f; encoder %s\n", test_ev.acc,
                   (long long)test_ev.correct, (long long)test_ev.count, base_train,
                   r.init[0] ? "pretrained" : "from scratch");
        const attn_json_field f[] = {
            attn_json_str("event", "end"), attn_json_int("step", step), attn_json_num("train_seconds", train_s),
            attn_json_num(finetune ? "valid_accuracy" : "valid_masked_accuracy", last_ev.acc),
            attn_json_num("valid_loss", last_ev.loss),
            attn_json_num("test_accuracy", finetune ? test_ev.acc : NAN),
            attn_json_num("majority_baseline", finetune ? base_train : NAN),
        };
        if (attn_jsonl_write(log, f, (int)(sizeof f / sizeof f[0])) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot write the log");
            goto done;
        }
    }
    if (attn_jsonl_close(log) != ATTN_OK) {
        log = NULL;
        rc = cli_fail(CMD, "cannot close the log");
        goto done;
    }
    log = NULL;
    write_chart(out, finetune ? "BERT fine-tuning (fortune file classification)" : "BERT masked-LM pretraining");
    printf("model written to %s/model.safetensors (vocab, train.jsonl, loss.svg)\n", out);
    rc = 0;
done:
    if (log) attn_jsonl_close(log);
    free(bids);
    free(bin);
    free(blab);
    free(blens);
    free(brows);
    attn_bert_corpus_free(&tr);
    attn_bert_corpus_free(&va);
    attn_bert_corpus_free(&te);
    attn_ctx_free(ctx);
    attn_optim_free(opt);
    attn_bert_free(m);
    attn_params_free(ps);
    attn_vocab_free(vocab);
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
