/* cmd_graph.c: `attn graph train|eval`: node classification on Debian's
 * package graph (include/attn/deb_graph.h) with the node classifier of
 * include/attn/node_classifier.h: a package's section from the words of its
 * description, with (--layers >= 1) or without (--layers 0) graph
 * self-attention over the packages it depends on and that depend on it.
 * docs/graph_attention.md, "Node classification", is the manual.
 *
 *   attn graph train --out DIR [--data FILE] [--layers N] [--heads N] [options]
 *   attn graph eval  --model DIR [--split valid|test]
 *
 * A step is one full-graph forward and backward: the loss is the mean
 * cross-entropy over the training packages (80%, by a hash of the name);
 * the periodic evaluations read the validation packages (10%), the final
 * one the test packages too. A model directory holds model.safetensors (the
 * checkpoint: parameters, AdamW state, node.* configuration and run.*
 * settings, the data file's path among them), train.jsonl and loss.svg. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "commands.h"
#include "train_driver.h"

#define CMD "graph"
#define CLIP_NORM 5.0f
#define RUN_META 9

typedef struct graph_info {
    char data[4096];
    long long total_steps, warmup, seed, max_words, vocab_size;
    double lr, min_lr, weight_decay, train_seconds;
} graph_info;

typedef struct graph_train {
    graph_info r;
    attn_deb_graph d;
    attn_graph g;
    attn_node_classifier m;
    int32_t *target; /* [N]: the label on training packages, else -1 */
    attn_kv kv[ATTN_NODE_CLASSIFIER_META + RUN_META];
    char mbuf[ATTN_NODE_CLASSIFIER_META * 32], vbuf[RUN_META][4200];
} graph_train;

static const char *const run_keys[RUN_META] = {"run.model", "run.data", "run.steps", "run.warmup",
                                               "run.seed", "run.lr", "run.min_lr",
                                               "run.weight_decay", "run.train_seconds"};

static void meta_build(graph_train *t) {
    attn_node_classifier_config_meta(&t->m.cfg, t->kv, t->mbuf);
    int n = ATTN_NODE_CLASSIFIER_META;
    const graph_info *r = &t->r;
    snprintf(t->vbuf[0], sizeof t->vbuf[0], "attn-graph");
    snprintf(t->vbuf[1], sizeof t->vbuf[1], "%s", r->data);
    snprintf(t->vbuf[2], sizeof t->vbuf[2], "%lld", r->total_steps);
    snprintf(t->vbuf[3], sizeof t->vbuf[3], "%lld", r->warmup);
    snprintf(t->vbuf[4], sizeof t->vbuf[4], "%lld", r->seed);
    snprintf(t->vbuf[5], sizeof t->vbuf[5], "%.9g", r->lr);
    snprintf(t->vbuf[6], sizeof t->vbuf[6], "%.9g", r->min_lr);
    snprintf(t->vbuf[7], sizeof t->vbuf[7], "%.9g", r->weight_decay);
    snprintf(t->vbuf[8], sizeof t->vbuf[8], "%.3f", r->train_seconds);
    for (int i = 0; i < RUN_META; i++) {
        t->kv[n].key = run_keys[i];
        t->kv[n].value = t->vbuf[i];
        n++;
    }
}

static int info_read(const char *path, graph_info *r) {
    attn_safetensors *f = NULL;
    if (attn_safetensors_open(&f, path) != ATTN_OK) return cli_fail(CMD, "cannot open the checkpoint");
    if (cli_check_family("attn graph", f, path, "run.model", "attn-graph", "attn graph train")) {
        attn_safetensors_close(f);
        return 1;
    }
    meta_reader m = {f, path, {0}};
    snprintf(r->data, sizeof r->data, "%s", meta_str(&m, "run.data"));
    r->total_steps = meta_ll(&m, "run.steps", 1, 1ll << 40);
    r->warmup = meta_ll(&m, "run.warmup", 0, 1ll << 40);
    r->seed = meta_ll(&m, "run.seed", 0, 1ll << 62);
    r->lr = meta_real(&m, "run.lr", 0.0, 10.0);
    r->min_lr = meta_real(&m, "run.min_lr", 0.0, 10.0);
    r->weight_decay = meta_real(&m, "run.weight_decay", 0.0, 10.0);
    r->train_seconds = meta_real(&m, "run.train_seconds", 0.0, 1e12);
    attn_safetensors_close(f);
    if (m.err[0]) {
        fprintf(stderr, "attn graph: %s\n", m.err);
        return 1;
    }
    return 0;
}

/* The graph of the data file for a model of these sizes; 0 or 1 (printed). */
static int data_load(const char *path, const attn_node_classifier_config *c, attn_deb_graph *d,
                     attn_graph *g) {
    attn_deb_graph_opts o = {(int)c->max_words, (int)c->vocab};
    if (attn_deb_graph_load(path, &o, d) != ATTN_OK)
        return cli_fail(CMD, "cannot read the package index (scripts/get_debian_graph.sh makes data/debgraph/Packages)");
    if (d->vocab != c->vocab || d->n_sections != c->n_classes) {
        fprintf(stderr, "attn graph: %s gives %d words and %d sections, the model has %lld and %lld "
                        "(another index than the one it was trained on?)\n", path, d->vocab,
                d->n_sections, (long long)c->vocab, (long long)c->n_classes);
        attn_deb_graph_free(d);
        return 1;
    }
    g->n_nodes = d->n;
    g->row_ptr = d->row_ptr;
    g->col = d->col;
    return 0;
}

typedef struct split_result {
    double loss, accuracy;
    int64_t n;
} split_result;

/* Loss and accuracy of split s (0 train, 1 valid, 2 test) from logits [N, C]. */
static split_result score(const float *logits, const attn_deb_graph *d, int64_t C, int s) {
    split_result r = {0.0, 0.0, 0};
    int64_t correct = 0;
    for (int64_t i = 0; i < d->n; i++) {
        if (d->split[i] != s || d->label[i] < 0) continue;
        const float *row = logits + i * C;
        int64_t best = 0;
        double mx = row[0], z = 0.0;
        for (int64_t k = 1; k < C; k++) {
            if (row[k] > row[best]) best = k;
            if (row[k] > mx) mx = row[k];
        }
        for (int64_t k = 0; k < C; k++) z += exp((double)row[k] - mx);
        r.loss += mx + log(z) - (double)row[d->label[i]];
        correct += best == d->label[i];
        r.n++;
    }
    if (r.n) {
        r.loss /= (double)r.n;
        r.accuracy = (double)correct / (double)r.n;
    }
    return r;
}

static attn_tensor *feat_tensor(attn_ctx *ctx, const attn_deb_graph *d) {
    return attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){d->n, d->max_words}, d->feat);
}

static attn_tensor *graph_step_loss(void *self, train_run *run, int64_t step, train_counts *c) {
    graph_train *t = self;
    attn_ctx_set_rng(run->ctx, (uint64_t)t->r.seed, (uint64_t)step << 24);
    attn_tensor *lg = attn_node_classifier_logits(run->ctx, &t->m, feat_tensor(run->ctx, &t->d), &t->g, NULL);
    attn_tensor *tg = attn_tensor_from(run->ctx, ATTN_I32, 1, (int64_t[]){t->d.n}, t->target);
    attn_tensor *loss = lg && tg ? attn_cross_entropy(run->ctx, lg, tg, -1, 0.0f) : NULL;
    const split_result tr = lg ? score(attn_f32(lg), &t->d, t->m.cfg.n_classes, 0) : (split_result){0, 0, 0};
    c->items = c->tokens = (double)tr.n;
    c->metric = tr.accuracy;
    return loss;
}

/* The logits of every node without gradients; NULL (printed) on error. */
static float *all_logits(attn_ctx *ctx, const graph_train *t) {
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    attn_ctx_reset(ctx);
    attn_tensor *lg = attn_node_classifier_logits(ctx, &t->m, feat_tensor(ctx, &t->d), &t->g, NULL);
    float *copy = lg ? malloc(sizeof(float) * (size_t)attn_tensor_numel(lg)) : NULL;
    if (copy) memcpy(copy, attn_f32(lg), sizeof(float) * (size_t)attn_tensor_numel(lg));
    else fprintf(stderr, "attn graph: evaluation: %s\n", lg ? "out of memory" : attn_ctx_error(ctx));
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    return copy;
}

static int graph_evaluate(void *self, train_run *run, int last, double *seconds) {
    graph_train *t = self;
    const double t0 = attn_monotonic_s();
    float *lg = all_logits(run->ctx, t);
    if (!lg) return 1;
    const split_result va = score(lg, &t->d, t->m.cfg.n_classes, 1);
    const split_result te = last ? score(lg, &t->d, t->m.cfg.n_classes, 2) : (split_result){0, 0, 0};
    free(lg);
    *seconds = attn_monotonic_s() - t0;
    attn_json_field f[9];
    int n = 0;
    f[n++] = attn_json_str("event", "eval");
    f[n++] = attn_json_int("step", run->step);
    f[n++] = attn_json_num("valid_loss", va.loss);
    f[n++] = attn_json_num("valid_accuracy", va.accuracy);
    f[n++] = attn_json_int("valid_n", va.n);
    if (last) {
        f[n++] = attn_json_num("test_loss", te.loss);
        f[n++] = attn_json_num("test_accuracy", te.accuracy);
        f[n++] = attn_json_int("test_n", te.n);
    }
    f[n++] = attn_json_num("seconds", *seconds);
    if (train_log(run, f, n)) return 1;
    if (!run->quiet || last) {
        if (run->progress.tty && !run->quiet) fputc('\n', stderr);
        FILE *o = last ? stdout : stderr;
        fprintf(o, "step %lld: valid accuracy %.4f (loss %.4f, %lld packages)", (long long)run->step,
                va.accuracy, va.loss, (long long)va.n);
        if (last)
            fprintf(o, "; test accuracy %.4f (loss %.4f, %lld packages)", te.accuracy, te.loss, (long long)te.n);
        fputc('\n', o);
    }
    return 0;
}

static void graph_meta(void *self, train_run *run, double train_seconds_, const attn_kv **kv, int *n) {
    graph_train *t = self;
    t->r.total_steps = run->total_steps;
    t->r.train_seconds = train_seconds_;
    meta_build(t);
    *kv = t->kv;
    *n = ATTN_NODE_CLASSIFIER_META + RUN_META;
}

static int graph_finish(void *self, train_run *run, double train_s, double train_cpu) {
    (void)self;
    const double step_ms = run->step > run->start ? 1e3 * train_s / (double)(run->step - run->start) : 0.0;
    printf("trained %lld steps in %.1f s: %.1f ms/step (evaluation %.1f s apart)%s\n",
           (long long)(run->step - run->start), train_s, step_ms, run->eval_seconds,
           !strcmp(run->stopped, "time_budget") ? "; stopped by the time budget" : "");
    const attn_json_field f[] = {attn_json_str("event", "end"), attn_json_int("step", run->step),
                                 attn_json_str("stopped", run->stopped),
                                 attn_json_num("train_seconds", train_s), attn_json_num("ms_per_step", step_ms),
                                 attn_json_num("train_cpu_seconds", train_cpu)};
    return train_log(run, f, (int)(sizeof f / sizeof f[0]));
}

static const train_family graph_family = {
    "pkg", "accuracy", "Debian package sections", "loss (nats per package)", "valid", NULL,
    "train.jsonl, loss.svg", graph_step_loss, NULL, graph_evaluate, graph_meta, graph_finish,
    NULL, NULL, NULL,
};

static void train_usage(FILE *f) {
    fprintf(f,
        "usage: attn graph train --out DIR [options]\n\n"
        "Learns the Section of every Debian package from the words of its description, with\n"
        "graph self-attention over its dependency neighbours (--layers >= 1) or without\n"
        "(--layers 0). One step is the whole graph; 80%% of the packages train, 10%% validate,\n"
        "10%% test (by a hash of the name).\n\n"
        "data and model (fixed by the checkpoint: refused with --resume)\n"
        "  --data FILE           an APT Packages index (default data/debgraph/Packages)\n"
        "  --layers N            graph attention layers, 0 .. %d (default 1)\n"
        "  --heads N             (default 4)\n"
        "  --hidden N            (default 64)\n"
        "  --emb-dim N           word embedding size (default 32)\n"
        "  --words N             description words per package (default 16)\n"
        "  --vocab N             the most frequent description words kept (default 4000)\n"
        "  --dropout P           (default 0.1)\n"
        "schedule (with --resume: applied and printed)\n"
        "  --steps N (default 300), --lr X (3e-3), --min-lr X (lr / 10), --warmup N (20),\n"
        "  --weight-decay X (0.01), --seed N (1)\n"
        "run\n"
        "  --eval-every N (default 50; 0: end only), --log-every N, --threads N, --arena-mb N,\n"
        "  --resume, --force, --quiet\n", ATTN_NODE_CLASSIFIER_MAX_LAYERS);
}

static int cmd_graph_train(int argc, char **argv) {
    const char *prog = "attn graph train", *data = "data/debgraph/Packages";
    long long layers = 1, heads = 4, hidden = 64, emb_dim = 32, words = 16, vocab = 4000;
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
        if (rc) return rc;
        if (k) {
            i += k - 1;
            continue;
        }
        train_fixed(&o, a);
        i++;
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--layers")) rc = cli_opt_int(CMD, "train", a, v, 0, ATTN_NODE_CLASSIFIER_MAX_LAYERS, &layers);
        else if (!strcmp(a, "--heads")) rc = cli_opt_int(CMD, "train", a, v, 1, 64, &heads);
        else if (!strcmp(a, "--hidden")) rc = cli_opt_int(CMD, "train", a, v, 1, 4096, &hidden);
        else if (!strcmp(a, "--emb-dim")) rc = cli_opt_int(CMD, "train", a, v, 1, 4096, &emb_dim);
        else if (!strcmp(a, "--words")) rc = cli_opt_int(CMD, "train", a, v, 1, 256, &words);
        else if (!strcmp(a, "--vocab")) rc = cli_opt_int(CMD, "train", a, v, 1, 1 << 20, &vocab);
        else if (!strcmp(a, "--dropout")) rc = cli_opt_real(CMD, "train", a, v, 0.0, 0.99, &dropout);
        else {
            fprintf(stderr, "%s: unknown option '%s' (try 'attn graph train --help')\n", prog, a);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "%s: %s needs a value\n", prog, a);
            return 2;
        }
    }
    if (rc) return rc;
    if ((rc = train_opts_check(prog, &o))) return rc;
    if (o.epochs > 0 || o.batch > 0) {
        fprintf(stderr, "%s: a step is the whole graph: --epochs and --batch are not offered (give --steps)\n", prog);
        return 2;
    }
    if (hidden % heads) {
        fprintf(stderr, "%s: --heads %lld does not divide --hidden %lld\n", prog, heads, hidden);
        return 2;
    }
    if ((rc = train_dir_check(prog, &o))) return rc;
    const char *out = o.out;
    const int resume = o.resume;
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s/model.safetensors", out);
    graph_train t;
    memset(&t, 0, sizeof t);
    graph_info *rp = &t.r;
    attn_params *ps = NULL;
    attn_optim *opt = NULL;
    attn_ctx *ctx = NULL;
    train_run run;
    memset(&run, 0, sizeof run);
    attn_node_classifier_config cc;
    memset(&cc, 0, sizeof cc);
    rc = 1;
    if (resume) {
        if (info_read(ckpt, rp)) goto done;
        train_resume_ll("--steps", o.steps, &rp->total_steps);
        train_resume_ll("--warmup", o.warmup, &rp->warmup);
        train_resume_real("--lr", o.lr, &rp->lr);
        train_resume_real("--min-lr", o.min_lr, &rp->min_lr);
        train_resume_real("--weight-decay", o.weight_decay, &rp->weight_decay);
        if (attn_node_classifier_config_load(ckpt, &cc) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot read the model configuration");
            goto done;
        }
    } else {
        snprintf(rp->data, sizeof rp->data, "%s", data);
        rp->total_steps = o.steps > 0 ? o.steps : 300;
        rp->warmup = o.warmup >= 0 ? o.warmup : 20;
        rp->seed = o.seed >= 0 ? o.seed : 1;
        rp->lr = o.lr >= 0 ? o.lr : 3e-3;
        rp->min_lr = o.min_lr >= 0 ? o.min_lr : rp->lr / 10.0;
        rp->weight_decay = o.weight_decay >= 0 ? o.weight_decay : 0.01;
    }
    /* the data first: a new model takes its vocabulary and class count from it */
    if (!resume) {
        attn_deb_graph_opts dopt = {(int)words, (int)vocab};
        if (attn_deb_graph_load(rp->data, &dopt, &t.d) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot read the package index (scripts/get_debian_graph.sh makes data/debgraph/Packages)");
            goto done;
        }
        t.g = (attn_graph){t.d.n, t.d.row_ptr, t.d.col};
        cc.vocab = t.d.vocab;
        cc.max_words = words;
        cc.emb_dim = emb_dim;
        cc.hidden = hidden;
        cc.n_classes = t.d.n_sections;
        cc.n_layers = (int)layers;
        cc.n_heads = (int)heads;
        cc.dropout = (float)dropout;
    } else if (data_load(rp->data, &cc, &t.d, &t.g)) {
        goto done;
    }
    attn_rng rng;
    attn_rng_init(&rng, (uint64_t)rp->seed);
    if (attn_params_new(&ps) != ATTN_OK ||
        attn_node_classifier_init(&t.m, ps, &cc, resume ? NULL : &rng) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the model");
        goto done;
    }
    t.target = malloc(sizeof(int32_t) * (size_t)t.d.n);
    if (!t.target) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto done;
    }
    for (int64_t i = 0; i < t.d.n; i++) t.target[i] = t.d.split[i] == 0 ? t.d.label[i] : -1;
    if (!resume && cli_make_dir(out) != 0) {
        fprintf(stderr, "%s: cannot create the directory %s: %s\n", prog, out, strerror(errno));
        goto done;
    }
    {
        const train_setup su = {CMD, &graph_family, &t, ps, ckpt, 0.9f, 0.999f, rp->lr, rp->min_lr,
                                 rp->weight_decay, CLIP_NORM, rp->train_seconds, rp->total_steps,
                                 rp->warmup, (uint64_t)rp->seed, 2048, 10, 50};
        const int bad = train_run_setup(&run, prog, &o, &su);
        opt = run.opt; /* freed at done, also after an error */
        ctx = run.ctx;
        if (bad) goto done;
    }
    int64_t step = run.step;
    if (step >= rp->total_steps) {
        rc = train_loop(&run);
        goto done;
    }
    if (train_log_open(&run, resume)) goto done;
    char desc[512];
    snprintf(desc, sizeof desc,
             "node classifier: %d graph attention layer%s of %d heads, hidden %lld, words %lld x %lld, "
             "dropout %g; %lld parameters",
             cc.n_layers, cc.n_layers == 1 ? "" : "s", cc.n_heads, (long long)cc.hidden,
             (long long)cc.max_words, (long long)cc.emb_dim, (double)cc.dropout,
             (long long)attn_params_numel(ps));
    printf("%s\n", desc);
    printf("data: %s: %lld packages, %lld edges (self-loops included), %d sections, %d words\n", rp->data,
           (long long)t.d.n, (long long)t.d.n_edges, t.d.n_sections, t.d.vocab);
    printf("schedule: %lld full-graph steps, AdamW lr %g -> %g (warmup %lld, cosine), wd %g; threads %d\n",
           rp->total_steps, rp->lr, rp->min_lr, rp->warmup, rp->weight_decay, attn_ctx_threads(ctx));
    if (resume) printf("resuming %s at step %lld\n", out, (long long)step);
    fflush(stdout);
    {
        const attn_json_field f[] = {
            attn_json_str("event", resume ? "resume" : "start"), attn_json_int("step", step),
            attn_json_str("data", rp->data), attn_json_int("layers", cc.n_layers),
            attn_json_int("parameters", attn_params_numel(ps)), attn_json_int("packages", t.d.n),
            attn_json_int("edges", t.d.n_edges), attn_json_int("total_steps", rp->total_steps),
            attn_json_int("threads", attn_ctx_threads(ctx)), attn_json_int("seed", rp->seed),
            attn_json_str("description", desc),
        };
        if (train_log(&run, f, (int)(sizeof f / sizeof f[0]))) goto done;
    }
    rc = train_loop(&run);
done:
    if (run.log) attn_jsonl_close(run.log);
    free(t.target);
    attn_deb_graph_free(&t.d);
    attn_ctx_free(ctx);
    attn_optim_free(opt);
    attn_params_free(ps);
    return rc;
}

static int cmd_graph_eval(int argc, char **argv) {
    const char *dir = NULL, *split = "test";
    long long threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn graph eval --model DIR [--split valid|test] [--threads N]\n\n"
                   "Accuracy and loss of a trained node classifier on the validation or test packages\n"
                   "of the index it was trained on (its path is in the checkpoint).\n");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "attn graph eval: %s needs a value (try --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model")) dir = v;
        else if (!strcmp(a, "--split")) split = v;
        else if (!strcmp(a, "--threads")) {
            if (cli_opt_int(CMD, "eval", a, v, 1, cli_max_threads(), &threads)) return 2;
        } else {
            fprintf(stderr, "attn graph eval: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "attn graph eval: --model DIR is required\n");
        return 2;
    }
    const int s = !strcmp(split, "valid") ? 1 : !strcmp(split, "test") ? 2 : -1;
    if (s < 0) {
        fprintf(stderr, "attn graph eval: --split must be valid or test, not '%s'\n", split);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    graph_train t;
    memset(&t, 0, sizeof t);
    attn_params *ps = NULL;
    attn_ctx *ctx = NULL;
    attn_node_classifier_config cc;
    int rc = 1;
    if (info_read(path, &t.r)) return 1;
    if (attn_node_classifier_config_load(path, &cc) != ATTN_OK) return cli_fail(CMD, "cannot read the model configuration");
    if (data_load(t.r.data, &cc, &t.d, &t.g)) return 1;
    attn_ctx_config ccx = {0};
    ccx.arena_bytes = (size_t)2048 << 20;
    ccx.n_threads = (int)threads;
    if (attn_params_new(&ps) != ATTN_OK || attn_node_classifier_init(&t.m, ps, &cc, NULL) != ATTN_OK ||
        attn_safetensors_load_params(path, ps, ATTN_ST_ALLOW_UNEXPECTED) != ATTN_OK ||
        attn_ctx_new(&ctx, &ccx) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot load the model");
        goto done;
    }
    float *lg = all_logits(ctx, &t);
    if (lg) {
        const split_result r = score(lg, &t.d, cc.n_classes, s);
        printf("%s: accuracy %.4f, loss %.4f over %lld packages; %d graph attention layers; %lld parameters\n",
               split, r.accuracy, r.loss, (long long)r.n, cc.n_layers, (long long)attn_params_numel(ps));
        free(lg);
        rc = 0;
    }
done:
    attn_deb_graph_free(&t.d);
    attn_ctx_free(ctx);
    attn_params_free(ps);
    return rc;
}

/* attn graph viz: one package's attention over its neighbours in the last
 * graph attention layer, printed (the strongest neighbours per head) and,
 * with --html, as an explorer page (one row, the neighbours as columns). */
static int cmd_graph_viz(int argc, char **argv) {
    const char *dir = NULL, *name = NULL, *html = NULL, *weights = NULL;
    long long top = 5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn graph viz --model DIR --package NAME [--top K] [--html FILE [--weights FILE]]\n\n"
                   "The attention of package NAME over its neighbours (what it depends on, what\n"
                   "depends on it, itself) in the model's last graph attention layer: the K\n"
                   "strongest per head, and with --html an attention explorer page of all of them\n"
                   "(docs/explorer.md; --weights: every weight as text).\n");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "attn graph viz: %s needs a value (try --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model")) dir = v;
        else if (!strcmp(a, "--package")) name = v;
        else if (!strcmp(a, "--html")) html = v;
        else if (!strcmp(a, "--weights")) weights = v;
        else if (!strcmp(a, "--top")) {
            if (cli_opt_int(CMD, "viz", a, v, 1, 1000, &top)) return 2;
        } else {
            fprintf(stderr, "attn graph viz: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (!dir || !name) {
        fprintf(stderr, "attn graph viz: --model DIR and --package NAME are required\n");
        return 2;
    }
    if (weights && !html) {
        fprintf(stderr, "attn graph viz: --weights goes with --html FILE\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    graph_train t;
    memset(&t, 0, sizeof t);
    attn_params *ps = NULL;
    attn_ctx *ctx = NULL;
    attn_node_classifier_config cc;
    float *w = NULL;
    const char **cols = NULL;
    int rc = 1;
    if (info_read(path, &t.r)) return 1;
    if (attn_node_classifier_config_load(path, &cc) != ATTN_OK) return cli_fail(CMD, "cannot read the model configuration");
    if (cc.n_layers < 1) {
        fprintf(stderr, "attn graph viz: %s has no graph attention layer (--layers 0): nothing to show\n", dir);
        return 1;
    }
    if (data_load(t.r.data, &cc, &t.d, &t.g)) return 1;
    int64_t node = -1;
    for (int64_t i = 0; i < t.d.n && node < 0; i++)
        if (!strcmp(t.d.names[i], name)) node = i;
    if (node < 0) {
        fprintf(stderr, "attn graph viz: no package '%s' in %s\n", name, t.r.data);
        goto done;
    }
    attn_ctx_config ccx = {0};
    ccx.arena_bytes = (size_t)2048 << 20;
    if (attn_params_new(&ps) != ATTN_OK || attn_node_classifier_init(&t.m, ps, &cc, NULL) != ATTN_OK ||
        attn_safetensors_load_params(path, ps, ATTN_ST_ALLOW_UNEXPECTED) != ATTN_OK ||
        attn_ctx_new(&ctx, &ccx) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot load the model");
        goto done;
    }
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    attn_tensor *att = NULL;
    attn_tensor *lg = attn_node_classifier_logits(ctx, &t.m, feat_tensor(ctx, &t.d), &t.g, &att);
    if (!lg || !att) {
        rc = cli_fail(CMD, "cannot run the model");
        goto done;
    }
    const int64_t H = cc.n_heads, E = t.d.n_edges, e0 = t.d.row_ptr[node], deg = t.d.row_ptr[node + 1] - e0;
    const float *row = attn_f32(lg) + node * cc.n_classes;
    int64_t best = 0;
    for (int64_t k = 1; k < cc.n_classes; k++)
        if (row[k] > row[best]) best = k;
    printf("%s: section %s, predicted %s; %lld neighbours (itself included), last layer of %d\n", name,
           t.d.label[node] >= 0 ? t.d.sections[t.d.label[node]] : "(none)", t.d.sections[best],
           (long long)deg, cc.n_layers);
    w = malloc(sizeof *w * (size_t)(H * deg));
    cols = malloc(sizeof *cols * (size_t)deg);
    if (!w || !cols) goto done;
    for (int64_t e = 0; e < deg; e++) cols[e] = t.d.names[t.d.col[e0 + e]];
    for (int64_t h = 0; h < H; h++) {
        for (int64_t e = 0; e < deg; e++) w[h * deg + e] = attn_f32(att)[h * E + e0 + e];
        printf("head %lld:", (long long)h);
        /* the top strongest, by selection: a weight taken is marked by
         * storing -1 - w (negative), and restored after */
        for (long long k = 0; k < top && k < deg; k++) {
            int64_t arg = -1;
            for (int64_t e = 0; e < deg; e++)
                if (w[h * deg + e] >= 0.0f && (arg < 0 || w[h * deg + e] > w[h * deg + arg])) arg = e;
            if (arg < 0) break;
            printf(" %s %.3f", cols[arg], (double)w[h * deg + arg]);
            w[h * deg + arg] = -1.0f - w[h * deg + arg]; /* taken: restored below */
        }
        for (int64_t e = 0; e < deg; e++)
            if (w[h * deg + e] < 0.0f) w[h * deg + e] = -1.0f - w[h * deg + e];
        printf("\n");
    }
    if (html) {
        cli_page page = {0};
        char title[300], sub[300];
        snprintf(title, sizeof title, "%s: attention over its dependency neighbours", name);
        snprintf(sub, sizeof sub, "node classifier, last of %d graph attention layers, %lld heads; section %s, "
                 "predicted %s", cc.n_layers, (long long)H,
                 t.d.label[node] >= 0 ? t.d.sections[t.d.label[node]] : "(none)", t.d.sections[best]);
        const char *rl[1] = {name};
        if (cli_page_add_floats(&page, "graph viz", "graph attention", ATTN_EXPLORER_CROSS, w, 1, H, 1, deg,
                                rl, cols, "package", "neighbour", -1) ||
            cli_page_write(&page, "graph viz", html, weights, title, sub, 0))
            goto done;
    }
    rc = 0;
done:
    free(w);
    free(cols);
    attn_deb_graph_free(&t.d);
    attn_ctx_free(ctx);
    attn_params_free(ps);
    return rc;
}

int cmd_graph(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: attn graph train|eval|viz ...\n\n"
               "  train   learn Debian package sections over the dependency graph\n"
               "  eval    accuracy of a trained model on its validation or test packages\n"
               "  viz     one package's attention over its neighbours (--html: an explorer page)\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_graph_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval")) return cmd_graph_eval(argc - 1, argv + 1);
    if (!strcmp(argv[1], "viz")) return cmd_graph_viz(argc - 1, argv + 1);
    fprintf(stderr, "attn graph: unknown subcommand '%s' (train, eval or viz)\n", argv[1]);
    return 2;
}
