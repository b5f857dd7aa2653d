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
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "attn/attn.h"
#include "commands.h"

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

/* CPU time of the process (all threads), for throughput on a shared machine. */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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
    const char *model = attn_safetensors_metadata(f, "run.model");
    const char *v[RUN_META - 1];
    const char *keys[RUN_META - 1] = {"run.data",  "run.tokenizer", "run.bpe_merges", "run.batch",
                                      "run.steps", "run.warmup",    "run.seed",       "run.lr",
                                      "run.min_lr", "run.weight_decay", "run.train_seconds"};
    int bad = !model || strcmp(model, "attn-gpt") != 0;
    for (int i = 0; i < RUN_META - 1 && !bad; i++) bad = !(v[i] = attn_safetensors_metadata(f, keys[i]));
    const char *step = attn_safetensors_metadata(f, "step");
    if (bad || !step) {
        attn_safetensors_close(f);
        fprintf(stderr, "attn gpt: %s is not a checkpoint of attn gpt train (run.* metadata missing)\n", path);
        return 1;
    }
    snprintf(r->data, sizeof r->data, "%s", v[0]);
    r->tok = !strcmp(v[1], "bpe") ? ATTN_VOCAB_BPE : ATTN_VOCAB_CHAR;
    r->bpe_merges = atoll(v[2]);
    r->batch = atoll(v[3]);
    r->total_steps = atoll(v[4]);
    r->warmup = atoll(v[5]);
    r->seed = atoll(v[6]);
    r->lr = atof(v[7]);
    r->min_lr = atof(v[8]);
    r->weight_decay = atof(v[9]);
    r->train_seconds = atof(v[10]);
    r->step = atoll(step);
    attn_safetensors_close(f);
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

/* ---- the loss chart, from the log ---------------------------------------------------------- */

static int json_num(const char *line, const char *key, double *out) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p) return -1;
    char *end = NULL;
    *out = strtod(p + strlen(pat), &end);
    return end == p + strlen(pat) ? -1 : 0;
}

/* loss.svg: the training loss (per log window) and the validation loss
 * against the step, read back from train.jsonl (so a resumed run draws the
 * whole history). */
static void write_chart(const char *dir, int bpe) {
    char path[4096], line[4096];
    dir_file(path, sizeof path, dir, "train.jsonl");
    FILE *f = fopen(path, "r");
    if (!f) return;
    int64_t cap = 1024, nt = 0, nv = 0;
    double *tx = malloc((size_t)cap * sizeof *tx), *ty = malloc((size_t)cap * sizeof *ty);
    double *vx = malloc((size_t)cap * sizeof *vx), *vy = malloc((size_t)cap * sizeof *vy);
    while (tx && ty && vx && vy && fgets(line, sizeof line, f)) {
        double s, l;
        const int is_train = strstr(line, "\"event\":\"train\"") != NULL;
        const int is_eval = strstr(line, "\"event\":\"eval\"") != NULL;
        if (!is_train && !is_eval) continue;
        if (json_num(line, "step", &s) || json_num(line, is_train ? "loss" : "valid_loss", &l)) continue;
        if ((is_train ? nt : nv) == cap) break; /* enough points for a chart */
        if (is_train) {
            tx[nt] = s;
            ty[nt++] = l;
        } else {
            vx[nv] = s;
            vy[nv++] = l;
        }
    }
    fclose(f);
    if (tx && ty && vx && vy && nt > 0) {
        attn_series ser[2] = {{"train (window mean)", tx, ty, nt}, {"valid", vx, vy, nv}};
        attn_line_chart ch = {bpe ? "GPT on fortunes (BPE)" : "GPT on fortunes (characters)", "step",
                              "loss (nats per token)", ser, nv > 0 ? 2 : 1, 0, 0, 0};
        dir_file(path, sizeof path, dir, "loss.svg");
        if (attn_svg_line_chart(path, &ch) != ATTN_OK)
            fprintf(stderr, "attn gpt: cannot write %s: %s\n", path, attn_last_error());
    }
    free(tx);
    free(ty);
    free(vx);
    free(vy);
}

/* ---- train ----------------------------------------------------------------------------------- */

static void train_usage(FILE *f) {
    fprintf(f,
        "usage: attn gpt train --out DIR [options]\n\n"
        "Trains a decoder-only Transformer language model on DIR/../train.txt of a corpus\n"
        "and reports the validation loss and bits per character.\n\n"
        "data\n"
        "  --data DIR             corpus with train.txt and valid.txt (default data/fortunes)\n"
        "  --tokenizer char|bpe   tokens (default char)\n"
        "  --bpe-merges N         BPE merges learned on train.txt (default 1000)\n"
        "model\n"
        "  --layers N             blocks (default 4)\n"
        "  --heads N              attention heads (default 4)\n"
        "  --kv-heads N           key/value heads (0: --heads; fewer: grouped-query)\n"
        "  --d-model N            width (default 128)\n"
        "  --d-ff N               feed-forward width (0: 4 d-model)\n"
        "  --ctx N                context length, the training window T (default 64)\n"
        "  --pos KIND             learned|sinusoidal|rope|alibi|none (default learned)\n"
        "  --untied               a separate output head (default: tied to the embedding)\n"
        "  --dropout P            dropout (default 0)\n"
        "  --attention-kernel K   auto|fused|reference: the attention op (default auto: the\n"
        "                         fused one from 512 keys; docs/transformer.md)\n"
        "schedule\n"
        "  --batch N              windows per step (default 16)\n"
        "  --steps N              optimizer steps (default 2000; with --resume: the new total)\n"
        "  --lr X                 peak learning rate of AdamW (default 1e-3)\n"
        "  --min-lr X             final learning rate of the cosine (default lr / 10)\n"
        "  --warmup N             linear warmup steps (default 100)\n"
        "  --weight-decay X       AdamW's decoupled weight decay (default 0.1)\n"
        "  --seed N               initialisation, batches, dropout (default 1)\n"
        "run\n"
        "  --eval-every N         validation loss every N steps and a checkpoint (default 500; 0: end only)\n"
        "  --eval-windows N       windows of the periodic evaluations (default 256; the final one uses all)\n"
        "  --log-every N          a JSONL line every N steps (default 50)\n"
        "  --threads N            threads for the ops (default: all)\n"
        "  --arena-mb N           context arena in MiB (default 1024)\n"
        "  --resume               continue DIR's run: same model, optimizer state and batches\n"
        "  --quiet                no progress line\n");
}

static int cmd_gpt_train(int argc, char **argv) {
    const char *sub = "train", *out = NULL, *data = "data/fortunes", *tok = "char", *pos = "learned";
    long long bpe_merges = 1000, layers = 4, heads = 4, kv_heads = 0, d_model = 128, d_ff = 0, ctxlen = 64;
    long long batch = 16, steps = 0, warmup = 100, seed = 1, eval_every = 500, eval_windows = 256;
    long long log_every = 50, threads = 0, arena_mb = 1024;
    double lr = 1e-3, min_lr = -1.0, wd = 0.1, dropout = 0.0;
    int untied = 0, resume = 0, quiet = 0, rc = 0;
    const char *akern = "auto";
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--untied")) { untied = 1; continue; }
        if (!strcmp(a, "--resume")) { resume = 1; continue; }
        if (!strcmp(a, "--quiet")) { quiet = 1; continue; }
        i++;
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--tokenizer")) tok = v;
        else if (!strcmp(a, "--pos")) pos = v;
        else if (!strcmp(a, "--attention-kernel")) akern = v;
        else if (!strcmp(a, "--bpe-merges")) rc = opt_int(sub, a, v, 0, 100000, &bpe_merges);
        else if (!strcmp(a, "--layers")) rc = opt_int(sub, a, v, 1, 256, &layers);
        else if (!strcmp(a, "--heads")) rc = opt_int(sub, a, v, 1, 1024, &heads);
        else if (!strcmp(a, "--kv-heads")) rc = opt_int(sub, a, v, 0, 1024, &kv_heads);
        else if (!strcmp(a, "--d-model")) rc = opt_int(sub, a, v, 1, 65536, &d_model);
        else if (!strcmp(a, "--d-ff")) rc = opt_int(sub, a, v, 0, 1 << 20, &d_ff);
        else if (!strcmp(a, "--ctx")) rc = opt_int(sub, a, v, 1, 1 << 20, &ctxlen);
        else if (!strcmp(a, "--dropout")) rc = opt_real(sub, a, v, 0.0, 0.99, &dropout);
        else if (!strcmp(a, "--batch")) rc = opt_int(sub, a, v, 1, 1 << 20, &batch);
        else if (!strcmp(a, "--steps")) rc = opt_int(sub, a, v, 1, 1ll << 40, &steps);
        else if (!strcmp(a, "--lr")) rc = opt_real(sub, a, v, 0.0, 10.0, &lr);
        else if (!strcmp(a, "--min-lr")) rc = opt_real(sub, a, v, 0.0, 10.0, &min_lr);
        else if (!strcmp(a, "--warmup")) rc = opt_int(sub, a, v, 0, 1ll << 40, &warmup);
        else if (!strcmp(a, "--weight-decay")) rc = opt_real(sub, a, v, 0.0, 10.0, &wd);
        else if (!strcmp(a, "--seed")) rc = opt_int(sub, a, v, 0, 1ll << 62, &seed);
        else if (!strcmp(a, "--eval-every")) rc = opt_int(sub, a, v, 0, 1ll << 40, &eval_every);
        else if (!strcmp(a, "--eval-windows")) rc = opt_int(sub, a, v, 1, 1ll << 40, &eval_windows);
        else if (!strcmp(a, "--log-every")) rc = opt_int(sub, a, v, 1, 1ll << 40, &log_every);
        else if (!strcmp(a, "--threads")) rc = opt_int(sub, a, v, 0, 1024, &threads);
        else if (!strcmp(a, "--arena-mb")) rc = opt_int(sub, a, v, 16, 1 << 20, &arena_mb);
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
    if (!out) {
        fprintf(stderr, "attn gpt train: --out DIR is required (try 'attn gpt train --help')\n");
        return 2;
    }
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

    run_info r;
    memset(&r, 0, sizeof r);
    attn_params *ps = NULL;
    attn_gpt *m = NULL;
    attn_vocab *vocab = NULL;
    attn_optim *opt = NULL;
    attn_ctx *ctx = NULL;
    attn_jsonl *log = NULL;
    char *train_text = NULL, *valid_text = NULL;
    size_t train_len = 0, valid_len = 0;
    attn_lm_tokens tr = {0}, va = {0};
    int32_t *bin = NULL, *btg = NULL;
    char path[4096];
    rc = 1;

    char ckpt[4096], vpath[4096];
    dir_file(ckpt, sizeof ckpt, out, "model.safetensors");
    dir_file(vpath, sizeof vpath, out, "vocab");
    if (resume) {
        if (run_meta_read(ckpt, &r)) goto done;
        if (steps > 0) r.total_steps = steps;
        if (attn_vocab_load(vpath, &vocab) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot load the vocabulary");
            goto done;
        }
        attn_gpt_config gc;
        const attn_status lst = attn_gpt_config_load(ckpt, &gc);
        gc.kernel = kernel; /* a run-time choice, not stored with the model */
        if (lst != ATTN_OK || attn_params_new(&ps) != ATTN_OK ||
            attn_gpt_new(&m, ps, &gc, NULL) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot rebuild the model");
            goto done;
        }
    } else {
        snprintf(r.data, sizeof r.data, "%s", data);
        r.tok = !strcmp(tok, "bpe") ? ATTN_VOCAB_BPE : ATTN_VOCAB_CHAR;
        r.bpe_merges = bpe_merges;
        r.batch = batch;
        r.total_steps = steps > 0 ? steps : 2000;
        r.warmup = warmup;
        r.seed = seed;
        r.lr = lr;
        r.min_lr = min_lr >= 0 ? min_lr : lr / 10.0;
        r.weight_decay = wd;
    }
    dir_file(path, sizeof path, r.data, "train.txt");
    if (attn_lm_text_load(path, &train_text, &train_len) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot read the training text (run scripts/get_fortunes_data.sh)");
        goto done;
    }
    dir_file(path, sizeof path, r.data, "valid.txt");
    if (attn_lm_text_load(path, &valid_text, &valid_len) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot read the validation text");
        goto done;
    }
    const double t_prep = now_s();
    if (!vocab && attn_lm_vocab_learn(train_text, train_len, r.tok, (int)r.bpe_merges, 1, &vocab) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot build the vocabulary");
        goto done;
    }
    if (attn_lm_tokenize(vocab, train_text, train_len, &tr) != ATTN_OK ||
        attn_lm_tokenize(vocab, valid_text, valid_len, &va) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot tokenise the corpus");
        goto done;
    }
    const double prep_s = now_s() - t_prep;
    if (!resume) {
        attn_gpt_config gc;
        memset(&gc, 0, sizeof gc);
        gc.vocab = attn_vocab_size(vocab);
        gc.ctx_len = ctxlen;
        gc.n_layers = (int)layers;
        gc.n_heads = (int)heads;
        gc.n_kv_heads = (int)kv_heads;
        gc.d_model = d_model;
        gc.d_ff = d_ff;
        gc.dropout = (float)dropout;
        gc.pos = pk;
        gc.tied = !untied;
        gc.kernel = kernel;
        attn_rng rng;
        attn_rng_init(&rng, (uint64_t)seed);
        if (attn_params_new(&ps) != ATTN_OK || attn_gpt_new(&m, ps, &gc, &rng) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot create the model");
            goto done;
        }
        if (make_dir(out) != 0) {
            fprintf(stderr, "attn gpt train: cannot create the directory %s: %s\n", out, strerror(errno));
            goto done;
        }
        if (attn_vocab_save(vocab, vpath) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot save the vocabulary");
            goto done;
        }
    }
    const int64_t T = m->cfg.ctx_len, B = r.batch;
    if (tr.n <= T || va.n <= T) {
        fprintf(stderr, "attn gpt train: the corpus is shorter than one window of %lld tokens\n", (long long)T + 1);
        goto done;
    }
    attn_optim_config oc = {0};
    oc.kind = ATTN_OPTIM_ADAMW;
    oc.lr = (float)r.lr;
    oc.beta1 = 0.9f;
    oc.beta2 = 0.95f;
    oc.weight_decay = (float)r.weight_decay;
    if (attn_optim_new(&opt, ps, &oc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the optimizer");
        goto done;
    }
    int64_t step = 0;
    if (resume) {
        if (attn_checkpoint_load(ckpt, ps, opt, &step) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot load the checkpoint");
            goto done;
        }
        if (step >= r.total_steps) {
            fprintf(stderr, "attn gpt train: %s is already at step %lld of %lld (give --steps N with a larger N)\n",
                    out, (long long)step, r.total_steps);
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
    bin = malloc((size_t)(B * T) * sizeof *bin);
    btg = malloc((size_t)(B * T) * sizeof *btg);
    if (!bin || !btg) {
        fprintf(stderr, "attn gpt train: out of memory\n");
        goto done;
    }
    const attn_gpt_config *g = &m->cfg;
    char desc[512];
    snprintf(desc, sizeof desc,
             "GPT: %d layers, %d heads (%d kv), d_model %lld, d_ff %lld, ctx %lld, %s positions, %s head, "
             "dropout %g; %s vocabulary of %d tokens; %lld parameters",
             g->n_layers, g->n_heads, g->n_kv_heads, (long long)g->d_model, (long long)g->d_ff,
             (long long)g->ctx_len, attn_pos_kind_name(g->pos), g->tied ? "tied" : "untied",
             (double)g->dropout, r.tok == ATTN_VOCAB_BPE ? "BPE" : "character", attn_vocab_size(vocab),
             (long long)attn_params_numel(ps));
    printf("%s\n", desc);
    printf("data: %s: train %lld tokens (%lld chars), valid %lld tokens (%lld chars); tokenised in %.1f s\n",
           r.data, (long long)tr.n, (long long)tr.chars, (long long)va.n, (long long)va.chars, prep_s);
    printf("schedule: %lld steps of %lld x %lld tokens, AdamW lr %g -> %g (warmup %lld, cosine), wd %g; "
           "threads %d\n",
           r.total_steps, (long long)B, (long long)T, r.lr, r.min_lr, r.warmup, r.weight_decay,
           attn_ctx_threads(ctx));
    if (resume) printf("resuming %s at step %lld\n", out, (long long)step);
    fflush(stdout);
    {
        const attn_json_field f[] = {
            attn_json_str("event", resume ? "resume" : "start"), attn_json_int("step", step),
            attn_json_str("data", r.data), attn_json_str("tokenizer", r.tok == ATTN_VOCAB_BPE ? "bpe" : "char"),
            attn_json_int("vocab", attn_vocab_size(vocab)), attn_json_int("parameters", attn_params_numel(ps)),
            attn_json_int("total_steps", r.total_steps), attn_json_int("batch", B), attn_json_int("ctx", T),
            attn_json_int("threads", attn_ctx_threads(ctx)), attn_json_str("description", desc),
        };
        if (attn_jsonl_write(log, f, (int)(sizeof f / sizeof f[0])) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot write the log");
            goto done;
        }
    }

    attn_progress prog;
    attn_progress_init(&prog, quiet ? NULL : stderr, r.total_steps - step, "train");
    prog.unit = "tok";
    const int64_t start = step;
    const double t_run = now_s(), c_run = cpu_s(), seconds_before = r.train_seconds;
    double win_loss = 0.0, win_t = t_run, eval_seconds = 0.0, eval_cpu = 0.0;
    int64_t win_steps = 0;
    run_meta meta;
    while (step < r.total_steps) {
        attn_ctx_reset(ctx);
        /* Dropout masks are a function of (seed, step): a resumed run replays them. */
        attn_ctx_set_rng(ctx, (uint64_t)r.seed, (uint64_t)step << 24);
        attn_lm_batch(&tr, (uint64_t)r.seed, step, B, T, bin, btg);
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T}, bin);
        attn_tensor *tt = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T}, btg);
        attn_tensor *loss = attn_gpt_loss(ctx, m, ti, tt, -1);
        if (!loss) {
            fprintf(stderr, "attn gpt train: step %lld: %s\n", (long long)step, attn_ctx_error(ctx));
            if (attn_ctx_status(ctx) == ATTN_ERR_OOM)
                fprintf(stderr, "hint: raise --arena-mb (now %lld) or lower --batch\n", arena_mb);
            goto done;
        }
        attn_params_zero_grad(ps);
        if (attn_backward(ctx, loss) != ATTN_OK) {
            fprintf(stderr, "attn gpt train: step %lld: backward: %s\n", (long long)step, attn_last_error());
            goto done;
        }
        const float norm = attn_clip_grad_norm(ps, CLIP_NORM);
        const double l = attn_f32(loss)[0];
        if (!isfinite(norm) || !isfinite(l)) {
            fprintf(stderr, "attn gpt train: step %lld: loss %g, gradient norm %g: not finite; lower --lr\n",
                    (long long)step, l, (double)norm);
            goto done;
        }
        const float lrs = attn_lr_warmup_cosine(step, r.warmup, r.total_steps, (float)r.lr, (float)r.min_lr);
        if (attn_optim_step(opt, lrs) != ATTN_OK) {
            rc = cli_fail(CMD, "optimizer step failed");
            goto done;
        }
        step++;
        win_loss += l;
        win_steps++;
        attn_progress_update(&prog, step - start, l, (double)(B * T));
        const int last = step >= r.total_steps;
        if (step % log_every == 0 || last) {
            const double t = now_s(), dt = t - win_t > 1e-9 ? t - win_t : 1e-9;
            const attn_json_field f[] = {
                attn_json_str("event", "train"), attn_json_int("step", step),
                attn_json_num("loss", win_loss / (double)win_steps), attn_json_num("lr", lrs),
                attn_json_num("grad_norm", norm),
                attn_json_num("tokens_per_s", (double)(win_steps * B * T) / dt),
                attn_json_num("elapsed", seconds_before + (t - t_run)),
            };
            if (attn_jsonl_write(log, f, (int)(sizeof f / sizeof f[0])) != ATTN_OK) {
                rc = cli_fail(CMD, "cannot write the log");
                goto done;
            }
            win_loss = 0.0;
            win_steps = 0;
            win_t = now_s();
        }
        if ((eval_every > 0 && step % eval_every == 0) || last) {
            eval_result ev;
            const double c0 = cpu_s();
            if (evaluate(ctx, m, vocab, &va, B, last ? 0 : eval_windows, &ev)) goto done;
            eval_cpu += cpu_s() - c0;
            eval_seconds += ev.seconds;
            win_t += ev.seconds; /* the evaluation is not training time */
            const attn_json_field f[] = {
                attn_json_str("event", "eval"), attn_json_int("step", step),
                attn_json_num("valid_loss", ev.loss), attn_json_num("valid_bpc", ev.bpc),
                attn_json_int("tokens", ev.tokens), attn_json_int("chars", ev.chars),
                attn_json_bool("full", last), attn_json_num("seconds", ev.seconds),
            };
            if (attn_jsonl_write(log, f, (int)(sizeof f / sizeof f[0])) != ATTN_OK) {
                rc = cli_fail(CMD, "cannot write the log");
                goto done;
            }
            if (!quiet || last) {
                if (prog.tty && !quiet) fputc('\n', stderr);
                fprintf(last ? stdout : stderr,
                        "step %lld: valid loss %.4f nats/token, %.4f bits/char (%lld tokens%s)\n",
                        (long long)step, ev.loss, ev.bpc, (long long)ev.tokens, last ? ", all" : "");
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
        const double train_s = now_s() - t_run - eval_seconds, train_cpu = cpu_s() - c_run - eval_cpu;
        const double ntok = (double)((step - start) * B * T);
        const double tps = ntok / (train_s > 1e-9 ? train_s : 1e-9);
        const double cpu_tps = ntok / (train_cpu > 1e-9 ? train_cpu : 1e-9);
        printf("trained %lld steps in %.1f s: %.0f tokens/s, %.0f tokens per CPU second (evaluation %.1f s "
               "apart)\n",
               (long long)(step - start), train_s, tps, cpu_tps, eval_seconds);
        const attn_json_field f[] = {attn_json_str("event", "end"), attn_json_int("step", step),
                                     attn_json_num("train_seconds", train_s), attn_json_num("tokens_per_s", tps),
                                     attn_json_num("train_cpu_seconds", train_cpu),
                                     attn_json_num("tokens_per_cpu_s", cpu_tps)};
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
    write_chart(out, r.tok == ATTN_VOCAB_BPE);
    printf("model written to %s/model.safetensors (vocab, train.jsonl, loss.svg)\n", out);
    rc = 0;
done:
    if (log) attn_jsonl_close(log);
    free(bin);
    free(btg);
    attn_lm_tokens_free(&tr);
    attn_lm_tokens_free(&va);
    free(train_text);
    free(valid_text);
    attn_ctx_free(ctx);
    attn_optim_free(opt);
    attn_gpt_free(m);
    attn_params_free(ps);
    attn_vocab_free(vocab);
    return rc;
}

/* ---- sample ------------------------------------------------------------------------------------ */

static void sample_usage(FILE *f) {
    fprintf(f,
        "usage: attn gpt sample --model DIR [options]\n\n"
        "Prints text generated by a model of 'attn gpt train' (with a KV cache).\n\n"
        "  --prompt TEXT        the beginning (default: a new fortune, i.e. \"%%\\n\")\n"
        "  --tokens N           tokens to generate (default 300)\n"
        "  --temperature T      0: greedy (default 0.8)\n"
        "  --top-k K            only the K most probable tokens (default 0: all)\n"
        "  --top-p P            nucleus sampling (default 0.95; 1: off)\n"
        "  --seed N             (default 1)\n"
        "  --threads N          threads for the ops (default: all)\n");
}

static int cmd_gpt_sample(int argc, char **argv) {
    const char *sub = "sample", *model = NULL, *prompt = "%\n";
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
        else if (!strcmp(a, "--tokens")) rc = opt_int(sub, a, v, 0, 1 << 24, &tokens);
        else if (!strcmp(a, "--top-k")) rc = opt_int(sub, a, v, 0, 1 << 24, &top_k);
        else if (!strcmp(a, "--seed")) rc = opt_int(sub, a, v, 0, 1ll << 62, &seed);
        else if (!strcmp(a, "--threads")) rc = opt_int(sub, a, v, 0, 1024, &threads);
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
    const double t0 = now_s();
    if (attn_gpt_generate(ctx, m, ids, (int64_t)n, tokens, &so, outi, NULL) != ATTN_OK) {
        rc = cli_fail(CMD, "generation failed");
        goto done;
    }
    const double dt = now_s() - t0;
    size_t len = 0;
    attn_vocab_decode(vocab, outi, (size_t)tokens, NULL, 0, &len);
    text = malloc(len + 1);
    if (!text || attn_vocab_decode(vocab, outi, (size_t)tokens, text, len + 1, &len) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot decode");
        goto done;
    }
    printf("%s%s\n", prompt, text);
    fprintf(stderr, "(%lld tokens in %.2f s, %.0f tokens/s, KV cache; temperature %g, top-k %lld, top-p %g, seed %lld)\n",
            tokens, dt, dt > 0 ? (double)tokens / dt : 0.0, temp, top_k, top_p, seed);
    rc = 0;
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
