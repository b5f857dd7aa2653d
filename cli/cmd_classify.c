/* cmd_classify.c: `attn classify train|eval`: text classification over a
 * bidirectional GRU with a choice of pooling (issue 19): LAMA, low-rank
 * factorised multi-head attention (Mehta et al. 2019; include/attn/lama.h),
 * single-head attention pooling, multi-head self-attention, or the mean of
 * the states (include/attn/gru_classifier.h). The data is the fortune-file
 * classification task of the BERT (scripts/get_fortunes_labels.sh:
 * data/fortunes/labels with classes and {train,valid,test}.{txt,labels});
 * the BPE vocabulary is learned on DIR/pretrain.txt (no valid or test
 * fortune in it) or, without one, on train.txt. Training runs on the shared
 * driver (cli/train_driver.h). docs/cli.md and docs/lama.md are the
 * manual. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/bert_corpus.h"
#include "attn/lm_data.h"
#include "commands.h"
#include "train_driver.h"

#define CMD "classify"
#define CLIP_NORM 1.0f
#define MAX_CLASSES 64

typedef struct run_info {
    char data[1024];
    int pool;
    long long bpe_merges, vocab, embed, hidden, heads, rank, max_len, classes, batch, total_steps, warmup, seed;
    double dropout, lr, min_lr, weight_decay, train_seconds;
} run_info;

#define RUN_META 21
typedef struct run_meta {
    attn_kv kv[RUN_META];
    char buf[RUN_META][1100];
} run_meta;

static void run_meta_build(run_meta *m, const run_info *r) {
    static const char *const keys[RUN_META] = {
        "run.model", "run.pool", "run.data", "run.bpe_merges", "run.vocab", "run.embed", "run.hidden",
        "run.heads", "run.rank", "run.max_len", "run.classes", "run.batch", "run.steps", "run.warmup",
        "run.seed", "run.dropout", "run.lr", "run.min_lr", "run.weight_decay", "run.train_seconds", "run.format"};
    snprintf(m->buf[0], 1100, "attn-classify");
    snprintf(m->buf[1], 1100, "%s", attn_pool_name((attn_pool_kind)r->pool));
    snprintf(m->buf[2], 1100, "%s", r->data);
    const long long ll[12] = {r->bpe_merges, r->vocab, r->embed, r->hidden, r->heads, r->rank,
                              r->max_len, r->classes, r->batch, r->total_steps, r->warmup, r->seed};
    for (int i = 0; i < 12; i++) snprintf(m->buf[3 + i], 1100, "%lld", ll[i]);
    const double rr[4] = {r->dropout, r->lr, r->min_lr, r->weight_decay};
    for (int i = 0; i < 4; i++) snprintf(m->buf[15 + i], 1100, "%.9g", rr[i]);
    snprintf(m->buf[19], 1100, "%.3f", r->train_seconds);
    snprintf(m->buf[20], 1100, "1");
    for (int i = 0; i < RUN_META; i++) {
        m->kv[i].key = keys[i];
        m->kv[i].value = m->buf[i];
    }
}

static int run_meta_read(const char *path, run_info *r) {
    attn_safetensors *f = NULL;
    if (attn_safetensors_open(&f, path) != ATTN_OK) return cli_fail(CMD, "cannot open the checkpoint");
    if (cli_check_family("attn classify", f, path, "run.model", "attn-classify", "attn classify train")) {
        attn_safetensors_close(f);
        return 1;
    }
    meta_reader m = {f, path, {0}};
    attn_pool_kind pk = ATTN_POOL_MEAN;
    const char *pool = meta_str(&m, "run.pool");
    if (attn_pool_parse(pool, &pk) != 0 && !m.err[0])
        snprintf(m.err, sizeof m.err, "%s: run.pool '%s', expected lama, attn, mhsa or mean", path, pool);
    r->pool = (int)pk;
    snprintf(r->data, sizeof r->data, "%s", meta_str(&m, "run.data"));
    r->bpe_merges = meta_ll(&m, "run.bpe_merges", 0, 100000);
    r->vocab = meta_ll(&m, "run.vocab", 2, 1 << 24);
    r->embed = meta_ll(&m, "run.embed", 1, 65536);
    r->hidden = meta_ll(&m, "run.hidden", 1, 32768);
    r->heads = meta_ll(&m, "run.heads", 1, 1024);
    r->rank = meta_ll(&m, "run.rank", 1, 4096);
    r->max_len = meta_ll(&m, "run.max_len", 1, 1 << 16);
    r->classes = meta_ll(&m, "run.classes", 2, MAX_CLASSES);
    r->batch = meta_ll(&m, "run.batch", 1, 1 << 16);
    r->total_steps = meta_ll(&m, "run.steps", 1, 1ll << 40);
    r->warmup = meta_ll(&m, "run.warmup", 0, 1ll << 40);
    r->seed = meta_ll(&m, "run.seed", 0, 1ll << 62);
    r->dropout = meta_real(&m, "run.dropout", 0.0, 0.99);
    r->lr = meta_real(&m, "run.lr", 0.0, 10.0);
    r->min_lr = meta_real(&m, "run.min_lr", 0.0, 10.0);
    r->weight_decay = meta_real(&m, "run.weight_decay", 0.0, 10.0);
    r->train_seconds = meta_real(&m, "run.train_seconds", 0.0, 1e12);
    attn_safetensors_close(f);
    if (m.err[0]) {
        fprintf(stderr, "attn classify: %s\n", m.err);
        return 1;
    }
    return 0;
}

static attn_gru_classifier_config model_config(const run_info *r) {
    attn_gru_classifier_config c;
    memset(&c, 0, sizeof c);
    c.vocab = r->vocab;
    c.embed = r->embed;
    c.hidden = r->hidden;
    c.classes = r->classes;
    c.pool = (attn_pool_kind)r->pool;
    c.heads = r->heads;
    c.rank = r->rank;
    c.dropout = (float)r->dropout;
    return c;
}

static void dir_file(char *buf, size_t n, const char *dir, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

/* The class count of DIR/classes (names one a line). -1 (printed) on error. */
static int count_classes(const char *dir) {
    char path[4096], line[256];
    dir_file(path, sizeof path, dir, "classes");
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "attn classify: cannot open %s (run scripts/get_fortunes_labels.sh)\n", path);
        return -1;
    }
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (line[0] != '\n' && line[0] != '\r') n++;
    fclose(f);
    if (n < 2 || n > MAX_CLASSES) {
        fprintf(stderr, "attn classify: %s names %d classes, expected 2 .. %d\n", path, n, MAX_CLASSES);
        return -1;
    }
    return n;
}

/* A padded batch of rows[0 .. B): ids [B, n] (n = the longest kept, <= T),
 * lengths, labels; pad id 0 (never read past lengths by the pooling). */
static int64_t make_batch(const attn_bert_corpus *c, const int64_t *rows, int64_t B, int64_t T, int32_t *ids,
                          int32_t *lens, int32_t *labels) {
    int64_t n = 1;
    for (int64_t b = 0; b < B; b++) {
        int64_t l = c->offsets[rows[b] + 1] - c->offsets[rows[b]];
        if (l > T) l = T;
        if (l < 1) l = 1;
        lens[b] = (int32_t)l;
        if (l > n) n = l;
    }
    for (int64_t b = 0; b < B; b++) {
        const int32_t *src = c->ids + c->offsets[rows[b]];
        const int64_t have = c->offsets[rows[b] + 1] - c->offsets[rows[b]];
        for (int64_t t = 0; t < n; t++) ids[b * n + t] = t < lens[b] && t < have ? src[t] : 0;
        labels[b] = c->labels[rows[b]];
    }
    return n;
}

typedef struct eval_result {
    double loss, accuracy, seconds;
    int64_t n;
} eval_result;

static int evaluate(attn_ctx *ctx, const attn_gru_classifier *m, const attn_bert_corpus *c, int64_t B, int64_t T,
                    eval_result *out) {
    int64_t *rows = malloc(sizeof *rows * (size_t)B);
    int32_t *ids = malloc(sizeof *ids * (size_t)(B * T)), *lens = malloc(sizeof *lens * (size_t)B),
            *lab = malloc(sizeof *lab * (size_t)B);
    if (!rows || !ids || !lens || !lab) {
        free(rows), free(ids), free(lens), free(lab);
        fprintf(stderr, "attn classify: out of memory\n");
        return 1;
    }
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    const double t0 = attn_monotonic_s();
    double nll = 0.0;
    int64_t right = 0, done = 0;
    int rc = 0;
    const int64_t C = m->cfg.classes;
    for (int64_t s = 0; s < c->n; s += B) {
        const int64_t bb = c->n - s < B ? c->n - s : B;
        for (int64_t b = 0; b < bb; b++) rows[b] = s + b;
        const int64_t n = make_batch(c, rows, bb, T, ids, lens, lab);
        attn_ctx_reset(ctx);
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){bb, n}, ids);
        attn_tensor *tl = attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){bb}, lens);
        attn_tensor *lg = attn_gru_classifier_logits(ctx, m, ti, tl, NULL);
        if (!lg) {
            fprintf(stderr, "attn classify: evaluation: %s\n", attn_ctx_error(ctx));
            rc = 1;
            break;
        }
        for (int64_t b = 0; b < bb; b++) {
            const float *row = attn_f32(lg) + b * C;
            int64_t best = 0;
            for (int64_t k = 1; k < C; k++)
                if (row[k] > row[best]) best = k;
            right += best == lab[b];
            nll += cli_row_nll(row, C, lab[b]);
        }
        done += bb;
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    free(rows), free(ids), free(lens), free(lab);
    out->n = done;
    out->loss = done ? nll / (double)done : NAN;
    out->accuracy = done ? (double)right / (double)done : NAN;
    out->seconds = attn_monotonic_s() - t0;
    return rc;
}

static void train_usage(FILE *f) {
    fprintf(f,
        "usage: attn classify train --out DIR [options]\n\n"
        "Trains a BiGRU text classifier with LAMA (low-rank factorised multi-head attention,\n"
        "Mehta et al. 2019), single-head attention, multi-head self-attention or mean pooling\n"
        "on the fortune-file task and reports validation and test accuracy.\n"
        "Options take '--opt V' or '--opt=V'.\n\n"
        "data and model (fixed by the checkpoint: refused with --resume)\n"
        "  --data DIR             classes, {train,valid,test}.{txt,labels}, pretrain.txt for the\n"
        "                         vocabulary (default data/fortunes/labels)\n"
        "  --pool lama|attn|mhsa|mean  the pooling (default lama)\n"
        "  --bpe-merges N         BPE merges (default 1000)\n"
        "  --embed N              token embedding size (default 64)\n"
        "  --hidden N             GRU size per direction, states 2N wide (default 64)\n"
        "  --heads N              lama: k distributions; mhsa: heads (default 4)\n"
        "  --rank N               lama: the rank r of each P_j Q_j^T (default 8)\n"
        "  --max-len N            tokens kept per fortune (default 128)\n"
        "  --dropout P            on the embeddings and the pooled vector (default 0.1)\n"
        "schedule (with --resume: applied and printed)\n"
        "  --batch N              fortunes per step (default 32)\n"
        "  --steps N              optimizer steps (default 600)\n"
        "  --time-budget S        stop after S seconds of training\n"
        "  --lr X                 peak learning rate of AdamW (default 2e-3)\n"
        "  --min-lr X             final learning rate of the cosine (default lr / 10)\n"
        "  --warmup N             linear warmup steps (default 50)\n"
        "  --weight-decay X       AdamW's decoupled weight decay (default 0.01)\n"
        "  --seed N               initialisation, batches, dropout (default 1)\n"
        "run\n"
        "  --eval-every N         validation every N steps and a checkpoint (default 200; 0: end only)\n"
        "  --log-every N          a JSONL line every N steps (default 50)\n"
        "  --threads N            threads for the ops (default: all)\n"
        "  --arena-mb N           context arena in MiB (default 512)\n"
        "  --resume, --force, --quiet\n\n"
        "Ctrl-C (SIGINT) or SIGTERM finishes the step, writes a checkpoint and exits 130.\n");
}

typedef struct classify_train {
    run_info r;
    attn_gru_classifier *m;
    attn_bert_corpus tr, va, te;
    int64_t *rows;
    int32_t *ids, *lens, *lab;
    run_meta meta;
} classify_train;

static attn_tensor *ct_loss(void *self, train_run *run, int64_t step, train_counts *c) {
    classify_train *g = self;
    const int64_t B = g->r.batch, T = g->r.max_len;
    attn_ctx_set_rng(run->ctx, (uint64_t)g->r.seed, (uint64_t)step << 24);
    attn_bert_sample_rows((uint64_t)g->r.seed, step, B, g->tr.n, g->rows);
    const int64_t n = make_batch(&g->tr, g->rows, B, T, g->ids, g->lens, g->lab);
    attn_tensor *ti = attn_tensor_from(run->ctx, ATTN_I32, 2, (int64_t[]){B, n}, g->ids);
    attn_tensor *tl = attn_tensor_from(run->ctx, ATTN_I32, 1, (int64_t[]){B}, g->lens);
    attn_tensor *ty = attn_tensor_from(run->ctx, ATTN_I32, 1, (int64_t[]){B}, g->lab);
    attn_tensor *lg = attn_gru_classifier_logits(run->ctx, g->m, ti, tl, NULL);
    if (!lg || !ty) return NULL;
    int64_t right = 0;
    for (int64_t b = 0; b < B; b++) {
        const float *row = attn_f32(lg) + b * g->r.classes;
        int64_t best = 0;
        for (int64_t k = 1; k < g->r.classes; k++)
            if (row[k] > row[best]) best = k;
        right += best == g->lab[b];
    }
    c->items = (double)B;
    for (int64_t b = 0; b < B; b++) c->tokens += g->lens[b];
    c->metric = (double)right / (double)B;
    return attn_cross_entropy(run->ctx, lg, ty, -1, 0.0f);
}

static int ct_evaluate(void *self, train_run *run, int last, double *seconds) {
    classify_train *g = self;
    eval_result ev, te;
    memset(&te, 0, sizeof te);
    te.accuracy = te.loss = NAN;
    if (evaluate(run->ctx, g->m, &g->va, g->r.batch, g->r.max_len, &ev)) return 1;
    if (last && evaluate(run->ctx, g->m, &g->te, g->r.batch, g->r.max_len, &te)) return 1;
    *seconds = ev.seconds + te.seconds;
    const attn_json_field f[] = {
        attn_json_str("event", "eval"),          attn_json_int("step", run->step),
        attn_json_num("valid_loss", ev.loss),    attn_json_num("valid_accuracy", ev.accuracy),
        attn_json_num("test_loss", te.loss),     attn_json_num("test_accuracy", te.accuracy),
        attn_json_num("seconds", *seconds),
    };
    if (train_log(run, f, (int)(sizeof f / sizeof f[0]))) return 1;
    if (!run->quiet || last) {
        if (run->progress.tty && !run->quiet) fputc('\n', stderr);
        if (last)
            printf("step %lld: valid accuracy %.2f%% (%lld), test accuracy %.2f%% (%lld), test loss %.4f\n",
                   (long long)run->step, 100.0 * ev.accuracy, (long long)ev.n, 100.0 * te.accuracy, (long long)te.n,
                   te.loss);
        else
            fprintf(stderr, "step %lld: valid loss %.4f, accuracy %.2f%%\n", (long long)run->step, ev.loss,
                    100.0 * ev.accuracy);
    }
    return 0;
}

static void ct_meta(void *self, train_run *run, double train_seconds_, const attn_kv **kv, int *n) {
    classify_train *g = self;
    g->r.total_steps = run->total_steps;
    g->r.train_seconds = train_seconds_;
    run_meta_build(&g->meta, &g->r);
    *kv = g->meta.kv;
    *n = RUN_META;
}

static int ct_finish(void *self, train_run *run, double train_s, double train_cpu) {
    const int64_t steps = run->step - run->start;
    const double ms = steps > 0 ? 1000.0 * train_s / (double)steps : 0.0;
    printf("trained %lld steps in %.1f s: %.1f ms/step (evaluation %.1f s apart)%s\n", (long long)steps, train_s,
           ms, run->eval_seconds, !strcmp(run->stopped, "time_budget") ? "; stopped by the time budget" : "");
    const attn_json_field f[] = {attn_json_str("event", "end"), attn_json_int("step", run->step),
                                 attn_json_str("stopped", run->stopped), attn_json_num("train_seconds", train_s),
                                 attn_json_num("step_ms", ms), attn_json_num("train_cpu_seconds", train_cpu)};
    (void)self;
    return train_log(run, f, (int)(sizeof f / sizeof f[0]));
}

static const train_family classify_family = {
    "seq", "accuracy", "BiGRU classifier (fortune files)", "loss (nats)", "valid", NULL, "vocab, train.jsonl, loss.svg",
    ct_loss, NULL, ct_evaluate, ct_meta, ct_finish, NULL, NULL, NULL,
};

/* Loads the three labelled splits with vocab. 0 or 1 (printed). */
static int load_splits(const attn_vocab *v, const run_info *r, attn_bert_corpus *tr, attn_bert_corpus *va,
                       attn_bert_corpus *te) {
    attn_bert_corpus *cs[3] = {tr, va, te};
    const char *names[3] = {"train", "valid", "test"};
    for (int k = 0; k < 3; k++) {
        if (!cs[k]) continue;
        char tp[4096], lp[4096], nm[64];
        snprintf(nm, sizeof nm, "%s.txt", names[k]);
        dir_file(tp, sizeof tp, r->data, nm);
        snprintf(nm, sizeof nm, "%s.labels", names[k]);
        dir_file(lp, sizeof lp, r->data, nm);
        if (attn_bert_corpus_load(v, tp, lp, (int)r->classes, r->max_len, 0, cs[k]) != ATTN_OK)
            return cli_fail(CMD, "cannot read the labelled data (run scripts/get_fortunes_labels.sh)");
        if (cs[k]->n < 1) {
            fprintf(stderr, "attn classify: %s holds no fortune\n", tp);
            return 1;
        }
    }
    return 0;
}

static int cmd_classify_train(int argc, char **argv) {
    const char *prog = "attn classify train", *sub = "train", *data = "data/fortunes/labels", *pool = "lama";
    long long bpe = 1000, embed = 64, hidden = 64, heads = 4, rank = 8, max_len = 128;
    double dropout = 0.1;
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
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--pool")) pool = v;
        else if (!strcmp(a, "--bpe-merges")) rc = cli_opt_int(CMD, sub, a, v, 0, 100000, &bpe);
        else if (!strcmp(a, "--embed")) rc = cli_opt_int(CMD, sub, a, v, 1, 4096, &embed);
        else if (!strcmp(a, "--hidden")) rc = cli_opt_int(CMD, sub, a, v, 1, 4096, &hidden);
        else if (!strcmp(a, "--heads")) rc = cli_opt_int(CMD, sub, a, v, 1, 1024, &heads);
        else if (!strcmp(a, "--rank")) rc = cli_opt_int(CMD, sub, a, v, 1, 4096, &rank);
        else if (!strcmp(a, "--max-len")) rc = cli_opt_int(CMD, sub, a, v, 1, 4096, &max_len);
        else if (!strcmp(a, "--dropout")) rc = cli_opt_real(CMD, sub, a, v, 0.0, 0.99, &dropout);
        else {
            fprintf(stderr, "attn classify train: unknown option '%s' (try 'attn classify train --help')\n", a);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "attn classify train: %s needs a value\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if ((rc = train_opts_check(prog, &o))) return rc;
    attn_pool_kind pk;
    if (attn_pool_parse(pool, &pk) != 0) {
        fprintf(stderr, "attn classify train: --pool '%s': expected lama, attn, mhsa or mean\n", pool);
        return 2;
    }
    if (pk == ATTN_POOL_MHSA && (2 * hidden) % heads != 0) {
        fprintf(stderr, "attn classify train: --pool mhsa needs --heads (%lld) dividing 2 x --hidden (%lld)\n",
                heads, 2 * hidden);
        return 2;
    }
    if (o.epochs > 0) {
        fprintf(stderr, "attn classify train: --epochs is not supported (give --steps)\n");
        return 2;
    }
    const char *out = o.out;
    const int resume = o.resume;
    if ((rc = train_dir_check(prog, &o))) return rc;

    classify_train g;
    memset(&g, 0, sizeof g);
    run_info *rp = &g.r;
    attn_params *ps = NULL;
    attn_optim *opt = NULL;
    attn_ctx *ctx = NULL;
    attn_vocab *voc = NULL;
    train_run run;
    memset(&run, 0, sizeof run);
    char ckpt[4096], vpath[4096], path[4096];
    rc = 1;
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
        if (attn_vocab_load(vpath, &voc) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot load the vocabulary");
            goto done;
        }
    } else {
        snprintf(rp->data, sizeof rp->data, "%s", data);
        const int nc = count_classes(data);
        if (nc < 0) goto done;
        rp->classes = nc;
        rp->pool = (int)pk;
        rp->bpe_merges = bpe;
        rp->embed = embed;
        rp->hidden = hidden;
        rp->heads = heads;
        rp->rank = rank;
        rp->max_len = max_len;
        rp->dropout = dropout;
        rp->batch = o.batch > 0 ? o.batch : 32;
        rp->total_steps = o.steps > 0 ? o.steps : 600;
        rp->warmup = o.warmup >= 0 ? o.warmup : 50;
        rp->seed = o.seed >= 0 ? o.seed : 1;
        rp->lr = o.lr >= 0 ? o.lr : 2e-3;
        rp->min_lr = o.min_lr >= 0 ? o.min_lr : rp->lr / 10.0;
        rp->weight_decay = o.weight_decay >= 0 ? o.weight_decay : 0.01;
        dir_file(path, sizeof path, data, "pretrain.txt");
        FILE *pf = fopen(path, "rb");
        if (pf) fclose(pf);
        else dir_file(path, sizeof path, data, "train.txt");
        char *t = NULL;
        size_t tl = 0;
        if (attn_lm_text_load(path, &t, &tl) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot read the vocabulary's text (run scripts/get_fortunes_labels.sh)");
            goto done;
        }
        const attn_status st = attn_lm_vocab_learn(t, tl, ATTN_VOCAB_BPE, (int)bpe, 1, &voc);
        free(t);
        if (st != ATTN_OK) {
            rc = cli_fail(CMD, "cannot build the vocabulary");
            goto done;
        }
        rp->vocab = attn_vocab_size(voc);
    }
    if (attn_vocab_size(voc) != rp->vocab) {
        fprintf(stderr, "attn classify: %s has %d tokens, the model was built for %lld\n", vpath,
                attn_vocab_size(voc), rp->vocab);
        goto done;
    }
    if (load_splits(voc, rp, &g.tr, &g.va, &g.te)) goto done;
    const attn_gru_classifier_config mc = model_config(rp);
    attn_rng rng;
    attn_rng_init(&rng, (uint64_t)rp->seed);
    if (attn_params_new(&ps) != ATTN_OK || attn_gru_classifier_new(&g.m, ps, &mc, resume ? NULL : &rng) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the model");
        goto done;
    }
    if (!resume) {
        if (cli_make_dir(out) != 0) {
            fprintf(stderr, "attn classify train: cannot create the directory %s: %s\n", out, strerror(errno));
            goto done;
        }
        if (attn_vocab_save(voc, vpath) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot save the vocabulary");
            goto done;
        }
    }
    {
        const train_setup su = {CMD, &classify_family, &g, ps, ckpt, 0.9f, 0.999f, rp->lr, rp->min_lr,
                                rp->weight_decay, CLIP_NORM, rp->train_seconds, rp->total_steps,
                                rp->warmup, (uint64_t)rp->seed, 512, 50, 200};
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
    const int64_t B = rp->batch, T = rp->max_len;
    g.rows = malloc(sizeof *g.rows * (size_t)B);
    g.ids = malloc(sizeof *g.ids * (size_t)(B * T));
    g.lens = malloc(sizeof *g.lens * (size_t)B);
    g.lab = malloc(sizeof *g.lab * (size_t)B);
    if (!g.rows || !g.ids || !g.lens || !g.lab) {
        fprintf(stderr, "attn classify train: out of memory\n");
        goto done;
    }
    char desc[512];
    snprintf(desc, sizeof desc,
             "BiGRU classifier, %s pooling: embed %lld, GRU 2 x %lld, heads %lld, rank %lld, dropout %g; "
             "BPE vocabulary %lld; %lld classes; %lld parameters",
             attn_pool_name((attn_pool_kind)rp->pool), rp->embed, rp->hidden, rp->heads, rp->rank, rp->dropout,
             rp->vocab, rp->classes, (long long)attn_params_numel(ps));
    printf("%s\n", desc);
    printf("data: %s: train %lld, valid %lld, test %lld fortunes (at most %lld tokens each)\n", rp->data,
           (long long)g.tr.n, (long long)g.va.n, (long long)g.te.n, rp->max_len);
    printf("schedule: %lld steps of %lld fortunes, AdamW lr %g -> %g (warmup %lld, cosine), wd %g; threads %d\n",
           rp->total_steps, (long long)B, rp->lr, rp->min_lr, rp->warmup, rp->weight_decay, attn_ctx_threads(ctx));
    if (resume) printf("resuming %s at step %lld\n", out, (long long)run.step);
    fflush(stdout);
    {
        const attn_json_field f[] = {
            attn_json_str("event", resume ? "resume" : "start"), attn_json_int("step", run.step),
            attn_json_str("data", rp->data), attn_json_str("pool", attn_pool_name((attn_pool_kind)rp->pool)),
            attn_json_int("parameters", attn_params_numel(ps)), attn_json_int("total_steps", rp->total_steps),
            attn_json_int("batch", B), attn_json_int("threads", attn_ctx_threads(ctx)),
            attn_json_str("description", desc),
        };
        if (train_log(&run, f, (int)(sizeof f / sizeof f[0]))) goto done;
    }
    rc = train_loop(&run);
done:
    if (run.log) attn_jsonl_close(run.log);
    free(g.rows), free(g.ids), free(g.lens), free(g.lab);
    attn_bert_corpus_free(&g.tr);
    attn_bert_corpus_free(&g.va);
    attn_bert_corpus_free(&g.te);
    attn_ctx_free(ctx);
    attn_optim_free(opt);
    attn_gru_classifier_free(g.m);
    attn_params_free(ps);
    attn_vocab_free(voc);
    return rc;
}

static int cmd_classify_eval(int argc, char **argv) {
    const char *model = NULL, *split = "test", *data = NULL;
    long long threads = 0;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn classify eval --model DIR [--split test|valid|train] [--data DIR] [--threads N]\n\n"
                   "Accuracy and loss of a model of 'attn classify train' on a labelled split; one JSON line.\n");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "attn classify eval: %s needs a value (try --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--split")) split = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--threads")) rc = cli_opt_int(CMD, "eval", a, v, 1, cli_max_threads(), &threads);
        else {
            fprintf(stderr, "attn classify eval: unknown option '%s' (try --help)\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!model) {
        fprintf(stderr, "attn classify eval: --model DIR is required\n");
        return 2;
    }
    const int which = !strcmp(split, "train") ? 0 : !strcmp(split, "valid") ? 1 : !strcmp(split, "test") ? 2 : -1;
    if (which < 0) {
        fprintf(stderr, "attn classify eval: --split '%s': expected test, valid or train\n", split);
        return 2;
    }
    run_info r;
    memset(&r, 0, sizeof r);
    attn_params *ps = NULL;
    attn_gru_classifier *m = NULL;
    attn_ctx *ctx = NULL;
    attn_vocab *voc = NULL;
    attn_bert_corpus c;
    memset(&c, 0, sizeof c);
    char ckpt[4096], vpath[4096];
    dir_file(ckpt, sizeof ckpt, model, "model.safetensors");
    dir_file(vpath, sizeof vpath, model, "vocab");
    rc = 1;
    if (run_meta_read(ckpt, &r)) goto done;
    if (data) snprintf(r.data, sizeof r.data, "%s", data);
    if (attn_vocab_load(vpath, &voc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot load the vocabulary");
        goto done;
    }
    if (attn_vocab_size(voc) != r.vocab) {
        fprintf(stderr, "attn classify eval: %s has %d tokens, the model %lld\n", vpath, attn_vocab_size(voc), r.vocab);
        goto done;
    }
    if (load_splits(voc, &r, which == 0 ? &c : NULL, which == 1 ? &c : NULL, which == 2 ? &c : NULL)) goto done;
    const attn_gru_classifier_config mc = model_config(&r);
    if (attn_params_new(&ps) != ATTN_OK || attn_gru_classifier_new(&m, ps, &mc, NULL) != ATTN_OK ||
        attn_checkpoint_load(ckpt, ps, NULL, NULL) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot load the model");
        goto done;
    }
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)512 << 20;
    cc.n_threads = (int)threads;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    eval_result ev;
    if (evaluate(ctx, m, &c, r.batch, r.max_len, &ev)) goto done;
    printf("{\"model\": \"%s\", \"pool\": \"%s\", \"split\": \"%s\", \"parameters\": %lld, \"n\": %lld, "
           "\"accuracy\": %.4f, \"loss\": %.4f, \"seconds\": %.2f}\n",
           model, attn_pool_name((attn_pool_kind)r.pool), split, (long long)attn_params_numel(ps), (long long)ev.n,
           ev.accuracy, ev.loss, ev.seconds);
    rc = 0;
done:
    attn_bert_corpus_free(&c);
    attn_ctx_free(ctx);
    attn_gru_classifier_free(m);
    attn_params_free(ps);
    attn_vocab_free(voc);
    return rc;
}

/* ---- viz: the pooling's attention over one text ------------------------------------------ */

#define VIZ_MAX_TOKENS 96

static int cmd_classify_viz(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *out = NULL;
    long long threads = 1;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn classify viz --model DIR --text TEXT --out FILE.svg [--threads N]\n\n"
                   "Draws the pooling's attention of a model of 'attn classify train' over TEXT (its\n"
                   "first %d tokens): LAMA, one row per distribution (head) over the tokens; attn, one\n"
                   "row; mhsa, one token x token map per head. Prints the predicted class.\n",
                   VIZ_MAX_TOKENS);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "attn classify viz: %s needs a value (try --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--text")) text = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--threads")) rc = cli_opt_int(CMD, "viz", a, v, 1, cli_max_threads(), &threads);
        else {
            fprintf(stderr, "attn classify viz: unknown option '%s' (try --help)\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!model || !text || !out) {
        fprintf(stderr, "attn classify viz: --model DIR, --text TEXT and --out FILE.svg are required\n");
        return 2;
    }
    run_info r;
    memset(&r, 0, sizeof r);
    attn_params *ps = NULL;
    attn_gru_classifier *m = NULL;
    attn_ctx *ctx = NULL;
    attn_vocab *voc = NULL;
    char ckpt[4096], vpath[4096];
    char labels[VIZ_MAX_TOKENS][32], heads[64][32];
    const char *cl[VIZ_MAX_TOKENS], *rl[VIZ_MAX_TOKENS > 64 ? VIZ_MAX_TOKENS : 64];
    int32_t ids[VIZ_MAX_TOKENS];
    dir_file(ckpt, sizeof ckpt, model, "model.safetensors");
    dir_file(vpath, sizeof vpath, model, "vocab");
    rc = 1;
    if (run_meta_read(ckpt, &r)) goto done;
    if (r.pool == ATTN_POOL_MEAN) {
        fprintf(stderr, "attn classify viz: %s pools by the mean: it has no attention to draw\n", model);
        goto done;
    }
    if (attn_vocab_load(vpath, &voc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot load the vocabulary");
        goto done;
    }
    size_t n = 0;
    if (attn_vocab_encode(voc, text, strlen(text), NULL, 0, &n) != ATTN_OK && n == 0) {
        rc = cli_fail(CMD, "cannot encode the text");
        goto done;
    }
    if (n == 0) {
        fprintf(stderr, "attn classify viz: the text is empty\n");
        goto done;
    }
    {
        int32_t *all = malloc(sizeof *all * n);
        if (!all || attn_vocab_encode(voc, text, strlen(text), all, n, &n) != ATTN_OK) {
            free(all);
            rc = cli_fail(CMD, "cannot encode the text");
            goto done;
        }
        if (n > VIZ_MAX_TOKENS) n = VIZ_MAX_TOKENS;
        memcpy(ids, all, sizeof *ids * n);
        free(all);
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        if (attn_vocab_decode(voc, &ids[i], 1, labels[i], sizeof labels[i], &len) != ATTN_OK)
            snprintf(labels[i], sizeof labels[i], "#%d", (int)ids[i]);
        for (char *p = labels[i]; *p; p++)
            if (*p == '\n' || *p == '\t') *p = ' ';
        cl[i] = labels[i];
    }
    const attn_gru_classifier_config mc = model_config(&r);
    if (attn_params_new(&ps) != ATTN_OK || attn_gru_classifier_new(&m, ps, &mc, NULL) != ATTN_OK ||
        attn_checkpoint_load(ckpt, ps, NULL, NULL) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot load the model");
        goto done;
    }
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)256 << 20;
    cc.n_threads = (int)threads;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    const int32_t len1 = (int32_t)n;
    attn_tensor *w = NULL;
    attn_tensor *lg = attn_gru_classifier_logits(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, (int64_t)n}, ids),
                                                 attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){1}, &len1), &w);
    if (!lg || !w) {
        fprintf(stderr, "attn classify viz: %s\n", attn_ctx_error(ctx));
        goto done;
    }
    int64_t best = 0;
    for (int64_t k = 1; k < r.classes; k++)
        if (attn_f32(lg)[k] > attn_f32(lg)[best]) best = k;
    attn_tensor *map;
    int64_t H = 1;
    char title[256];
    if (r.pool == ATTN_POOL_MHSA) {
        map = w; /* [1, H, n, n] */
        H = w->shape[1];
        for (size_t i = 0; i < n; i++) rl[i] = cl[i];
        snprintf(title, sizeof title, "MHSA: %lld heads (class %lld)", (long long)H, (long long)best);
    } else {
        /* [1, k, n] -> one map [1, 1, k, n]: row j is distribution j */
        const int64_t k = w->shape[1];
        map = attn_reshape(ctx, w, 4, (int64_t[]){1, 1, k, (int64_t)n});
        for (int64_t j = 0; j < k && j < 64; j++) {
            snprintf(heads[j], sizeof heads[j], "head %lld", (long long)j + 1);
            rl[j] = heads[j];
        }
        snprintf(title, sizeof title, "%s: %lld head%s (class %lld)", r.pool == ATTN_POOL_LAMA ? "LAMA" : "attention",
                 (long long)k, k > 1 ? "s" : "", (long long)best);
    }
    if (!map || cli_viz_grid(out, title, &map, 1, H, rl, cl)) goto done;
    printf("predicted class %lld\n", (long long)best);
    rc = 0;
done:
    attn_ctx_free(ctx);
    attn_gru_classifier_free(m);
    attn_params_free(ps);
    attn_vocab_free(voc);
    return rc;
}

int cmd_classify(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: attn classify train|eval|viz [options]   (attn classify SUB --help)\n"
                   "Fortune-file classification over a BiGRU with LAMA, attention, MHSA or mean pooling.\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_classify_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval")) return cmd_classify_eval(argc - 1, argv + 1);
    if (!strcmp(argv[1], "viz")) return cmd_classify_viz(argc - 1, argv + 1);
    fprintf(stderr, "attn classify: unknown subcommand '%s' (train, eval or viz)\n", argv[1]);
    return 2;
}
