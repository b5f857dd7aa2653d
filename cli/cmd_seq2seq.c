/* cmd_seq2seq.c: `attn seq2seq train|translate|eval`: the RNN encoder-decoder
 * with attention (include/attn/seq2seq.h), and `attn transformer
 * train|translate|eval`: the encoder-decoder Transformer
 * (include/attn/transformer_s2s.h), on the date task and on the gettext
 * translation pairs (include/attn/text.h). docs/seq2seq.md and
 * docs/transformer_s2s.md are the manuals.
 *
 *   attn seq2seq train     --task dates|gettext [--lang de|fr] --out DIR [options]
 *   attn seq2seq translate --model DIR [--beam K] [--alpha A] [--svg FILE] [--html FILE] [TEXT ...]
 *   attn seq2seq eval      --model DIR [--split valid|test] [--beam K] [--limit N] [--json]
 *   attn transformer ...   the same commands and files for the Transformer
 *
 * translate and eval are in cli/s2s_translate.c.
 *
 * The two families share everything but the model (cli/s2s.h); what is the
 * model's own is its family's table (cli/s2s_rnn.c, cli/s2s_t2t.c), which
 * the entry points below hand to the subcommands. Training runs on the one
 * training driver (cli/train_driver.c).
 *
 * A model directory holds model.safetensors (an attn checkpoint: parameters,
 * AdamW state, and in its metadata the model configuration, the tokeniser,
 * the data settings and the training schedule), src.vocab and tgt.vocab,
 * train.jsonl (the log) and loss.svg. Everything needed to resume, translate
 * or evaluate is read back from there.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "s2s.h"
#include "train_dist.h"
#include "train_driver.h"

#define CMD s2s_cmd
#define PROG s2s_prog

/* ---- train --------------------------------------------------------------------------------- */

static void train_usage(const s2s_family *fam, FILE *f) {
    fputs(fam->train_intro, f);
    fprintf(f,
        "data:\n"
        "  --task dates|gettext   date normalisation (generated) or gettext en->LANG pairs\n"
        "  --lang de|fr           gettext language (default de)\n"
        "  --data DIR             gettext data root (default data/gettext, built by\n"
        "                         bash scripts/get_gettext_data.sh)\n"
        "  --n-train N            dates: N generated training examples; 0 (default) draws\n"
        "                         fresh examples for every batch (the generator is infinite)\n"
        "  --max-len N            gettext: skip training pairs with a side longer than N\n"
        "                         tokens (default 60 bpe / 150 char; 0: keep all)\n"
        "  --tokenizer char|bpe   tokeniser of both sides (default: dates char, gettext bpe;\n"
        "                         alias --tok)\n"
        "  --bpe-merges N         BPE merges per side, learned on the training split\n"
        "                         (default: dates 100, gettext 2000)\n");
    fputs(fam->model_help, f);
    fprintf(f,
        "training:\n"
        "  --batch B              examples per step (default 64)\n"
        "  --pool K               length bucketing: sort pools of K batches by length\n"
        "                         (default 8; 1: plain shuffling)\n"
        "  --steps N | --epochs E steps to train (default: dates 1000, gettext 4000, unless\n"
        "                         a time budget is given); --epochs needs a finite training set\n"
        "  --time-budget SECONDS  stop when training has run this long (all runs of the\n"
        "                         directory together, evaluations apart); without --steps the\n"
        "                         cosine decay is spread over the budget\n"
        "  --lr LR                peak learning rate (default 3e-3)\n"
        "  --warmup N             linear warmup steps (default 100)\n"
        "  --weight-decay WD      AdamW's decoupled weight decay (default 0.01)\n"
        "  --label-smoothing E    (default 0)\n"
        "  --seed S               initialisation, shuffling and dates stream (default 1)\n"
        "  --threads N            threads for the ops (default: all)\n"
        "  --arena-mb M           per-step activation arena (default 1024)\n"
        "output:\n"
        "  --out DIR              writes DIR/model.safetensors, DIR/src.vocab, DIR/tgt.vocab,\n"
        "                         DIR/train.jsonl, DIR/loss.svg\n"
        "  --resume               continue DIR's run: same step, optimizer state, data order\n"
        "                         (the model, data, batch and seed options come from DIR and\n"
        "                         are refused; --steps, --time-budget, --lr, --warmup,\n"
        "                         --weight-decay, --label-smoothing are applied and printed)\n"
        "  --force                overwrite the run DIR holds (refused without it)\n"
        "  --eval-every N         every N steps: greedy valid metrics on --eval-n examples,\n"
        "                         logged, and a checkpoint (default 500; 0: only at the end)\n"
        "  --eval-n N             valid examples per evaluation (default 500)\n"
        "  --log-every N          steps per JSONL record (default 50)\n"
        "  --quiet                no progress line\n\n"
        "Options take '--opt V' or '--opt=V'. Ctrl-C (SIGINT) or SIGTERM finishes the step,\n"
        "writes a checkpoint and exits 130; --resume continues from it.\n");
}

static int train_parse(const s2s_family *fam, int argc, char **argv, s2s_opts *o) {
    memset(o, 0, sizeof *o);
    o->lang = "de";
    o->data_dir = getenv("ATTN_GETTEXT_DIR") && getenv("ATTN_GETTEXT_DIR")[0]
                      ? getenv("ATTN_GETTEXT_DIR")
                      : "data/gettext";
    o->attention = "bahdanau";
    o->cell = "gru";
    o->bpe_merges = o->emb = o->hidden = o->max_len = -1;
    o->layers = fam->default_layers;
    o->bidir = -1;
    o->pos = "sinusoidal";
    o->activation = "relu";
    o->d_model = o->d_ff = o->enc_layers = o->dec_layers = -1;
    o->dropout = -1.0;
    o->heads = 4;
    o->pre_ln = 1;
    o->shaw_clip = 8;
    o->align_layer = -1;
    o->window = 5;
    o->dv3_window = 3;
    o->input_feed = 1;
    o->pool = 8;
    train_opts *t = &o->t;
    train_opts_init(t);
    const char *sub = "train";
    char prog[64];
    snprintf(prog, sizeof prog, "%s train", PROG);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        const int k = train_opt(prog, a, v, t, &rc);
        if (k) {
            if (rc) return rc;
            i += k - 1;
            continue;
        }
        if (strcmp(a, "--data")) train_fixed(t, a); /* the model's and the data's; --data may move */
        if (fam->parse_opt(o, argv, argc, &i, &rc)) {
            if (rc) return rc;
            continue;
        }
        i++;
        if (!strcmp(a, "--task")) rc = opt_str(sub, a, v, &o->task);
        else if (!strcmp(a, "--lang")) rc = opt_str(sub, a, v, &o->lang);
        else if (!strcmp(a, "--data")) rc = opt_str(sub, a, v, &o->data_dir);
        else if (!strcmp(a, "--tokenizer") || !strcmp(a, "--tok")) rc = opt_str(sub, a, v, &o->tok);
        else if (!strcmp(a, "--bpe-merges")) rc = opt_int(sub, a, v, 0, 1000000, &o->bpe_merges);
        else if (!strcmp(a, "--layers")) rc = opt_int(sub, a, v, 1, 16, &o->layers);
        else if (!strcmp(a, "--dropout")) rc = opt_real(sub, a, v, 0.0, 0.95, &o->dropout);
        else if (!strcmp(a, "--n-train")) rc = opt_int(sub, a, v, 0, 1LL << 31, &o->n_train);
        else if (!strcmp(a, "--max-len")) rc = opt_int(sub, a, v, 0, 1 << 20, &o->max_len);
        else if (!strcmp(a, "--pool")) rc = opt_int(sub, a, v, 1, 1 << 20, &o->pool);
        else if (!strcmp(a, "--label-smoothing"))
            rc = opt_real(sub, a, v, 0.0, 0.999, &o->label_smoothing), o->given_ls = 1;
        else return usage_error(sub, "unknown option '%s'", a);
        if (rc) return rc;
    }
    /* The common options, with this command's defaults. The batch fixes the
     * sampler's batches: the checkpoint keeps it. */
    if (t->batch > 0) train_fixed(t, "--batch");
    if (t->min_lr >= 0)
        return usage_error(sub, "--min-lr: the cosine of %s decays to 0", PROG);
    int rc = train_opts_check(prog, t);
    if (rc) return rc;
    o->out = t->out;
    o->resume = t->resume;
    o->quiet = t->quiet;
    o->batch = t->batch > 0 ? t->batch : 64;
    o->steps = t->steps;
    o->epochs = t->epochs;
    o->time_budget = t->time_budget > 0 ? t->time_budget : 0.0;
    o->warmup = t->warmup >= 0 ? t->warmup : 100;
    o->given_warmup = t->warmup >= 0;
    o->seed = t->seed >= 0 ? t->seed : 1;
    o->threads = t->threads >= 0 ? t->threads : 0;
    o->arena_mb = t->arena_mb > 0 ? t->arena_mb : 1024;
    o->lr = t->lr >= 0 ? t->lr : 3e-3;
    o->given_lr = t->lr >= 0;
    o->weight_decay = t->weight_decay >= 0 ? t->weight_decay : 0.01;
    o->given_wd = t->weight_decay >= 0;
    o->eval_every = t->eval_every >= 0 ? t->eval_every : 500;
    o->eval_n = t->eval_n > 0 ? t->eval_n : 500;
    o->log_every = t->log_every > 0 ? t->log_every : 50;
    if (o->resume) return 0; /* the rest comes from the checkpoint (train_dir_check refuses it given) */
    if (!o->task) return usage_error(sub, "--task dates|gettext is required");
    if (strcmp(o->task, "dates") && strcmp(o->task, "gettext"))
        return usage_error(sub, "--task '%s': expected dates or gettext", o->task);
    if (strcmp(o->lang, "de") && strcmp(o->lang, "fr"))
        return usage_error(sub, "--lang '%s': expected de or fr", o->lang);
    const int dates = !strcmp(o->task, "dates");
    if (!o->tok) o->tok = dates ? "char" : "bpe";
    if (strcmp(o->tok, "char") && strcmp(o->tok, "bpe"))
        return usage_error(sub, "--tokenizer '%s': expected char or bpe", o->tok);
    if (o->epochs > 0 && dates && o->n_train == 0)
        return usage_error(sub, "--epochs needs a finite training set: give --n-train N");
    if (o->bpe_merges < 0) o->bpe_merges = dates ? 100 : 2000;
    if (o->max_len < 0) o->max_len = dates ? 0 : (!strcmp(o->tok, "bpe") ? 60 : 150);
    if ((rc = fam->check_opts(o, dates))) return rc;
    if (o->dropout < 0) o->dropout = 0.0;
    return 0;
}

/* The model configuration from the options and the data: the data side
 * here, the rest the family's. */
static void config_from_opts(const s2s_opts *o, bundle *b, int64_t max_src_len) {
    attn_seq2seq_config *c = &b->cfg;
    memset(c, 0, sizeof *c);
    c->src_vocab = attn_vocab_size(b->sv);
    c->tgt_vocab = attn_vocab_size(b->tv);
    c->max_src_len = max_src_len;
    c->dropout = (float)o->dropout;
    c->pad_id = ATTN_TOKEN_PAD;
    c->bos_id = ATTN_TOKEN_BOS;
    c->eos_id = ATTN_TOKEN_EOS;
    b->fam->config(o, b);
}

/* ---- train: the encoder-decoder families of the training driver ------------------------- */

typedef struct s2s_train {
    bundle *b;
    train_data *td;
    eval_set *valid, *test;
    attn_s2s_sampler *sampler;
    int64_t *iota;       /* fresh batches are examples 0 .. B-1 of the refilled set */
    long long eval_n;
    meta_list meta;
    eval_out test_ev;    /* the final evaluation on the test split */
} s2s_train;

static attn_tensor *s2s_step_loss(void *self, train_run *run, int64_t step, train_counts *c) {
    s2s_train *s = self;
    bundle *b = s->b;
    run_info *r = &b->info;
    /* The sampler and the fresh stream are positioned at the run's step; the
     * dropout masks of step k come from counters k << 24 on, whatever ran
     * before, so a run resumed at any step (a SIGINT checkpoint included)
     * draws the masks the uninterrupted run drew. (Setting the stream once
     * per run, at the resumed step, did not: the uninterrupted run's
     * counters had advanced by the draws of the steps before.) */
    attn_ctx_set_rng(run->ctx, (uint64_t)r->seed, (uint64_t)step << 24);
    /* One step's batch: only the arena is used (the fresh batch reuses its storage). */
    attn_s2s_batch batch;
    attn_s2s_batch_info info;
    attn_status st;
    /* Several ranks: every rank draws the same examples (the sampler and the
     * fresh stream advance alike) and makes the batch of its rows [lo, hi);
     * the loss is a mean over the non-pad target tokens, the driver's
     * weight. A batch with fewer examples than ranks (an epoch's last, at
     * most) is computed whole on every rank. */
    const int64_t *idx = s->iota;
    int64_t bsz = r->batch;
    st = ATTN_OK;
    if (s->td->fresh) /* the fresh set holds exactly this batch, in order */
        st = fresh_batch(b, s->td, r->batch);
    else
        attn_s2s_sampler_next(s->sampler, &idx, &bsz);
    int64_t lo = 0, hi = bsz;
    const int split = train_dist_size() > 1 && bsz >= train_dist_size();
    if (split) {
        train_shard(bsz, &lo, &hi);
        /* dropout: rows of the global batch's masks where the padded
         * width of the slice is the batch's, else the slice's own part of
         * the stream (docs/distributed.md) */
        attn_ctx_set_batch_slice(run->ctx, lo, hi - lo, bsz);
    }
    if (st == ATTN_OK) st = attn_s2s_batch_make(run->ctx, &s->td->train, idx + lo, hi - lo, &batch, &info);
    if (st != ATTN_OK) return NULL;
    c->items = c->tokens = c->weight = (double)info.tgt_tokens;
    c->tokens2 = (double)info.src_tokens;
    c->sharded = split;
    return b->fam->loss(run->ctx, b, &batch, (float)r->label_smoothing);
}

/* Learning rate at `step` (0-based): warmup then cosine to 0 over the run's
 * total steps; with only a time budget, over the estimated total, the steps
 * done divided by the fraction of the budget used. */
static float s2s_lr_at(void *self, train_run *run, int64_t step, double elapsed) {
    const run_info *r = &((s2s_train *)self)->b->info;
    int64_t total = run->total_steps;
    if (total <= 0) {
        const double frac = r->time_budget > 0 ? elapsed / r->time_budget : 0.0;
        total = frac > 1e-9 ? (int64_t)((double)step / frac) : INT64_MAX / 2;
        if (total <= step) total = step + 1;
    }
    const int64_t warmup = r->warmup < total ? r->warmup : total / 10;
    return attn_lr_warmup_cosine(step, warmup, total, (float)r->lr, 0.0f);
}

/* Periodic: greedy valid metrics on --eval-n examples. Last: the test split,
 * four examples printed. */
static int s2s_evaluate(void *self, train_run *run, int last, double *seconds) {
    s2s_train *s = self;
    const run_info *r = &s->b->info;
    eval_out ev;
    const double t0 = now_s();
    if (last) {
        printf("test examples (greedy):\n");
        if (evaluate("train", run->ctx, s->b, s->test, 0, 1, 0.0f, 4, stdout, &s->test_ev)) return 1;
        ev = s->test_ev;
        const double em = attn_eval_exact_match(&ev.ev), bleu = eval_bleu(&ev), al = eval_align(&ev);
        printf("test: exact match %.2f%% (%lld/%lld)", 100.0 * em, (long long)ev.ev.exact, (long long)ev.ev.n);
        if (!r->dates) printf(", BLEU %.2f", bleu);
        if (isfinite(al)) printf(", alignment accuracy %.2f%% of %lld output digits", 100.0 * al, (long long)ev.digits);
        printf(", greedy, %.0f tok/s decoding\n", ev.seconds > 0 ? (double)ev.out_tokens / ev.seconds : 0.0);
        *seconds = now_s() - t0;
        return 0;
    }
    if (evaluate("train", run->ctx, s->b, s->valid, s->eval_n, 1, 0.0f, 0, NULL, &ev)) return 1;
    *seconds = now_s() - t0;
    const double em = attn_eval_exact_match(&ev.ev), bleu = eval_bleu(&ev), al = eval_align(&ev);
    const attn_json_field f[] = {
        attn_json_str("event", "eval"),     attn_json_int("step", run->step),
        attn_json_str("split", "valid"),    attn_json_int("n", ev.ev.n),
        attn_json_num("exact_match", em),   attn_json_num("bleu", bleu),
        attn_json_num("align_acc", al),     attn_json_num("elapsed", train_seconds(run)),
    };
    if (train_log(run, f, (int)(sizeof f / sizeof f[0]))) return 1;
    if (!run->quiet) {
        if (run->progress.tty) fputc('\n', stderr);
        fprintf(stderr, "step %lld: valid exact match %.2f%% (%lld examples)", (long long)run->step, 100.0 * em,
                (long long)ev.ev.n);
        if (!r->dates) fprintf(stderr, ", BLEU %.2f", bleu);
        if (isfinite(al)) fprintf(stderr, ", alignment %.1f%%", 100.0 * al);
        fprintf(stderr, "\n");
    }
    return 0;
}

static void s2s_meta(void *self, train_run *run, double train_seconds_, const attn_kv **kv, int *n) {
    s2s_train *s = self;
    run_info *r = &s->b->info;
    r->step = run->step;
    r->data_cursor = (long long)s->td->cursor;
    r->train_seconds = train_seconds_;
    r->total_steps = run->total_steps > 0 ? run->total_steps : 0;
    meta_build(&s->meta, s->b);
    *kv = s->meta.kv;
    *n = s->meta.n;
}

static int s2s_finish(void *self, train_run *run, double train_s, double train_cpu) {
    s2s_train *s = self;
    const run_info *r = &s->b->info;
    const eval_out *ev = &s->test_ev;
    (void)train_cpu;
    printf("trained %lld steps in %.1f s (%.1f s in all, evaluations apart); stopped by %s\n",
           (long long)(run->step - run->start), train_s, train_seconds(run),
           !strcmp(run->stopped, "steps") ? "the step count" : "the time budget");
    if (r->time_budget > 0) printf("time budget %.1f s, %lld steps reached\n", r->time_budget, (long long)run->step);
    const double em = attn_eval_exact_match(&ev->ev), bleu = eval_bleu(ev), al = eval_align(ev);
    const attn_json_field f[] = {
        attn_json_str("event", "end"),
        attn_json_int("step", run->step),
        attn_json_str("stopped", run->stopped),
        attn_json_num("time_budget", r->time_budget),
        attn_json_num("elapsed", train_seconds(run)),
        attn_json_str("split", "test"),
        attn_json_int("n", ev->ev.n),
        attn_json_num("exact_match", em),
        attn_json_num("bleu", bleu),
        attn_json_num("align_acc", al),
        attn_json_num("decode_tokens_per_s", ev->seconds > 0 ? (double)ev->out_tokens / ev->seconds : 0.0),
    };
    return train_log(run, f, (int)(sizeof f / sizeof f[0]));
}

static const train_family s2s_train_family = {
    "tok", NULL, "encoder-decoder training", "loss (nats per target token)", "valid",
    "src_tokens_per_s", "src.vocab, tgt.vocab, train.jsonl, loss.svg",
    s2s_step_loss, s2s_lr_at, s2s_evaluate, s2s_meta, s2s_finish, NULL, NULL, NULL,
};

/* A new model: vocabularies from the training split, the configuration
 * from the options. */
static int new_model(const s2s_opts *o, bundle *b, train_data *td) {
    run_info *r = &b->info;
    r->dates = !strcmp(o->task, "dates");
    snprintf(r->lang, sizeof r->lang, "%s", r->dates ? "" : o->lang);
    r->tok = !strcmp(o->tok, "bpe") ? ATTN_VOCAB_BPE : ATTN_VOCAB_CHAR;
    r->bpe_merges = o->bpe_merges;
    r->data_seed = o->seed;
    r->n_train = r->dates ? o->n_train : 0;
    r->max_len = o->max_len;
    r->batch = o->batch;
    r->pool = o->pool;
    r->warmup = o->warmup;
    r->seed = o->seed;
    r->lr = o->lr;
    r->weight_decay = o->weight_decay;
    r->label_smoothing = o->label_smoothing;
    r->time_budget = o->time_budget;
    if (train_data_load(o->data_dir, r, td)) return 1;
    /* Vocabularies from the training split only. */
    const char **vs = NULL, **vt = NULL;
    int64_t vn = 0;
    attn_date_example *tmp = NULL;
    if (vocab_texts(r, td, &vs, &vt, &vn, &tmp)) {
        fprintf(stderr, "%s train: out of memory\n", PROG);
        if (r->dates) {
            free(vs);
            free(vt);
        }
        free(tmp);
        return 1;
    }
    attn_status st;
    if (r->tok == ATTN_VOCAB_BPE) {
        st = attn_bpe_learn(vs, vn, (int)o->bpe_merges, 1, &b->sv);
        if (st == ATTN_OK) st = attn_bpe_learn(vt, vn, (int)o->bpe_merges, 1, &b->tv);
    } else {
        st = attn_vocab_build_chars(vs, vn, 1, &b->sv);
        if (st == ATTN_OK) st = attn_vocab_build_chars(vt, vn, 1, &b->tv);
    }
    if (r->dates) {
        free(vs);
        free(vt);
    }
    free(tmp);
    if (st != ATTN_OK) return cli_fail(CMD, "cannot build the vocabularies");
    config_from_opts(o, b, r->dates ? ATTN_DATE_SOURCE_MAX : 0);
    return train_data_encode(b, td);
}

/* Deep Voice 3's key position rate: mean target length / mean source length
 * in tokens, over the training pairs (the validation pairs when training
 * draws fresh examples); 1 when neither has any token. */
static float length_ratio(const bundle *b, const eval_set *valid, const train_data *td) {
    double src = (double)td->train.src_tokens, tgt = (double)td->train.tgt_tokens;
    if (td->train.n == 0 || src <= 0.0) {
        src = tgt = 0.0;
        for (int64_t i = 0; i < valid->n; i++) {
            size_t ns = 0, nt = 0;
            if (attn_vocab_encode(b->sv, valid->src[i], strlen(valid->src[i]), NULL, 0, &ns) ==
                    ATTN_OK &&
                attn_vocab_encode(b->tv, valid->ref[i], strlen(valid->ref[i]), NULL, 0, &nt) ==
                    ATTN_OK) {
                src += (double)ns;
                tgt += (double)nt;
            }
        }
    }
    const double r = src > 0.0 && tgt > 0.0 ? tgt / src : 1.0;
    return (float)(r < 1e-3 ? 1e-3 : r > 1e3 ? 1e3 : r);
}

/* Writes a new model's vocabularies and creates its parameters and optimizer. */
static int new_model_files(const s2s_opts *o, bundle *b, const eval_set *valid, const eval_set *test,
                           train_data *td, attn_optim **opt) {
    char path[4096];
    const eval_set sets[2] = {*valid, *test};
    b->cfg.max_src_len = longest_source(b, sets, 2, td) + 1;
    if (b->cfg.attention == ATTN_S2S_DV3 && b->cfg.dv3_key_rate == 0.0f)
        b->cfg.dv3_key_rate = length_ratio(b, valid, td);
    /* learned positions: room for the longest source and for decoding it */
    b->fam->fit_sources(b);
    if (make_dirs(o->out) != 0) {
        fprintf(stderr, "%s train: cannot create the directory %s: %s\n", PROG, o->out, strerror(errno));
        return 1;
    }
    const int writer = train_dist_rank() == 0; /* under mpirun, rank 0 alone writes */
    dir_file(path, sizeof path, o->out, "src.vocab");
    if (writer && attn_vocab_save(b->sv, path) != ATTN_OK) return cli_fail(CMD, "cannot save the source vocabulary");
    dir_file(path, sizeof path, o->out, "tgt.vocab");
    if (writer && attn_vocab_save(b->tv, path) != ATTN_OK) return cli_fail(CMD, "cannot save the target vocabulary");
    attn_rng rng;
    attn_rng_init(&rng, (uint64_t)o->seed);
    if (attn_params_new(&b->ps) != ATTN_OK || b->fam->create(b, &rng) != ATTN_OK)
        return cli_fail(CMD, "cannot create the model");
    attn_optim_config oc = {0};
    oc.kind = ATTN_OPTIM_ADAMW;
    oc.lr = (float)o->lr;
    oc.weight_decay = (float)o->weight_decay;
    if (attn_optim_new(opt, b->ps, &oc) != ATTN_OK) return cli_fail(CMD, "cannot create the optimizer");
    run_info *r = &b->info;
    if (o->epochs > 0) r->total_steps = o->epochs * ((td->train.n + r->batch - 1) / r->batch);
    else if (o->steps > 0) r->total_steps = o->steps;
    else if (o->time_budget > 0) r->total_steps = 0;
    else r->total_steps = r->dates ? 1000 : 4000;
    return 0;
}


static int cmd_train(const s2s_family *fam, int argc, char **argv) {
    s2s_opts o;
    int rc = train_parse(fam, argc, argv, &o);
    if (rc) return rc;
    char prog[64];
    snprintf(prog, sizeof prog, "%s train", PROG);
    if ((rc = train_dir_check(prog, &o.t))) return rc;
    bundle b;
    memset(&b, 0, sizeof b);
    b.fam = fam;
    train_data td;
    memset(&td, 0, sizeof td);
    attn_s2s_data_init(&td.train);
    eval_set valid = {0}, test = {0};
    attn_optim *opt = NULL;
    attn_ctx *ctx = NULL;
    attn_s2s_sampler sampler;
    memset(&sampler, 0, sizeof sampler);
    s2s_train st;
    memset(&st, 0, sizeof st);
    train_run run;
    memset(&run, 0, sizeof run);
    rc = 1;

    if (o.resume) {
        if (bundle_load(fam, "train", o.out, &b, &opt, (float)o.lr, (float)o.weight_decay, o.given_wd))
            goto done;
        run_info *r = &b.info;
        /* A new length of the run: --steps (or --epochs, below) replaces the
         * schedule's total, --time-budget the budget; the other is kept. */
        train_resume_real("--lr", o.t.lr, &r->lr);
        train_resume_real("--weight-decay", o.t.weight_decay, &r->weight_decay);
        train_resume_real("--label-smoothing", o.given_ls ? o.label_smoothing : -1.0, &r->label_smoothing);
        train_resume_ll("--warmup", o.t.warmup, &r->warmup);
        train_resume_ll("--steps", o.steps, &r->total_steps);
        train_resume_real("--time-budget", o.t.time_budget, &r->time_budget);
        if (train_data_load(o.data_dir, r, &td) || train_data_encode(&b, &td)) goto done;
        if (o.epochs > 0) {
            if (td.fresh) {
                fprintf(stderr, "%s train: --epochs needs a finite training set; this "
                                "run draws fresh dates (use --steps)\n", PROG);
                rc = 2;
                goto done;
            }
            train_resume_ll("--steps (from --epochs)", o.epochs * ((td.train.n + r->batch - 1) / r->batch),
                            &r->total_steps);
        }
    } else if (new_model(&o, &b, &td)) {
        goto done;
    }
    run_info *r = &b.info;
    if (eval_set_load("train", r, o.data_dir, ATTN_SPLIT_VALID, &valid) ||
        eval_set_load("train", r, o.data_dir, ATTN_SPLIT_TEST, &test))
        goto done;
    if (!o.resume && new_model_files(&o, &b, &valid, &test, &td, &opt)) goto done;

    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)o.arena_mb << 20;
    cc.n_threads = (int)o.threads;
    cc.seed = (uint64_t)r->seed;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    /* (Dropout masks: each step sets its own counters, s2s_step_loss.) */
    attn_ctx_set_rng(ctx, (uint64_t)r->seed, (uint64_t)r->step << 24);
    if (!td.fresh) {
        if (attn_s2s_sampler_init(&sampler, &td.train, r->batch, r->pool, (uint64_t)r->seed ^ 0x5a3c0ffeeULL) !=
            ATTN_OK) {
            rc = cli_fail(CMD, "cannot create the sampler");
            goto done;
        }
        attn_s2s_sampler_seek(&sampler, r->step);
    }
    st.b = &b;
    st.td = &td;
    st.valid = &valid;
    st.test = &test;
    st.sampler = &sampler;
    st.eval_n = o.eval_n;
    st.iota = malloc((size_t)r->batch * sizeof *st.iota);
    if (!st.iota) {
        fprintf(stderr, "%s train: out of memory\n", PROG);
        goto done;
    }
    for (int64_t k = 0; k < r->batch; k++) st.iota[k] = k;
    run.prog = prog;
    run.out = o.out;
    run.fam = &s2s_train_family;
    run.self = &st;
    run.ctx = ctx;
    run.ps = b.ps;
    run.opt = opt;
    run.step = r->step;
    run.total_steps = r->total_steps;
    run.warmup = r->warmup;
    run.log_every = o.log_every;
    run.eval_every = o.eval_every;
    run.lr = r->lr;
    run.min_lr = 0.0;
    run.clip = CLIP_NORM;
    run.time_budget = r->time_budget;
    run.seconds_before = r->train_seconds;
    run.arena_mb = o.arena_mb;
    run.quiet = o.quiet;
    if ((r->total_steps > 0 && r->step >= r->total_steps) ||
        (r->time_budget > 0 && r->train_seconds >= r->time_budget)) {
        rc = train_loop(&run); /* says the run is complete */
        goto done;
    }
    if (train_log_open(&run, o.resume)) goto done;
    {
        char desc[512];
        b.fam->describe(&b, desc, sizeof desc);
        printf("%s\n", desc);
        if (td.fresh)
            printf("training data: fresh dates drawn for every batch (stream %lld)\n", r->data_seed);
        else
            printf("training data: %lld pairs (%lld longer than %lld tokens skipped), %lld + %lld "
                   "tokens; batch %lld, %lld batches per epoch\n",
                   (long long)td.train.n, (long long)td.skipped, r->max_len,
                   (long long)td.train.src_tokens, (long long)td.train.tgt_tokens, r->batch,
                   (long long)sampler.n_batches);
        printf("schedule: AdamW lr %g, warmup %lld, cosine over %s; threads: %d\n", r->lr,
               r->warmup, r->total_steps > 0 ? "the steps" : "the time budget",
               attn_ctx_threads(ctx));
        if (o.resume)
            printf("resuming %s at step %lld (%.1f s trained)\n", o.out, (long long)r->step, r->train_seconds);
        fflush(stdout);
        const attn_json_field f[] = {
            attn_json_str("event", o.resume ? "resume" : "start"),
            attn_json_int("step", r->step),
            attn_json_str("task", r->dates ? "dates" : "gettext"),
            attn_json_str("lang", r->lang),
            attn_json_str("attention", b.fam->kind(&b)),
            attn_json_str("cell", b.fam->cell_name(&b)),
            attn_json_str("tokenizer", tok_name(r->tok)),
            attn_json_int("parameters", attn_params_numel(b.ps)),
            attn_json_int("train_examples", td.fresh ? -1 : td.train.n),
            attn_json_int("total_steps", r->total_steps),
            attn_json_num("time_budget", r->time_budget),
            attn_json_int("threads", attn_ctx_threads(ctx)),
            attn_json_str("description", desc),
        };
        if (train_log(&run, f, (int)(sizeof f / sizeof f[0]))) goto done;
    }
    rc = train_loop(&run);
done:
    if (run.log) attn_jsonl_close(run.log);
    attn_s2s_sampler_free(&sampler);
    free(st.iota);
    attn_ctx_free(ctx);
    attn_optim_free(opt);
    eval_set_free(&valid);
    eval_set_free(&test);
    train_data_free(&td);
    bundle_free(&b);
    return rc;
}

/* ---- the commands ------------------------------------------------------------------------------ */

int s2s_run_command(const s2s_family *fam, int argc, char **argv) {
    s2s_cmd = fam->cmd;
    s2s_prog = fam->prog;
    if (argc < 2) {
        fputs(fam->usage, stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        fputs(fam->usage, stdout);
        return 0;
    }
    struct {
        const char *name;
        int (*fn)(const s2s_family *, int, char **);
        void (*usage)(const s2s_family *, FILE *);
    } subs[] = {{"train", cmd_train, train_usage},
                {"translate", s2s_cmd_translate, s2s_translate_usage},
                {"eval", s2s_cmd_eval, s2s_eval_usage}};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(sub, subs[i].name) != 0) continue;
        if (cli_wants_help(argc - 1, argv + 1)) {
            subs[i].usage(fam, stdout);
            return 0;
        }
        return subs[i].fn(fam, argc - 1, argv + 1);
    }
    fprintf(stderr, "%s: unknown command '%s'\n\n", PROG, sub);
    fputs(fam->usage, stderr);
    return 2;
}

int cmd_seq2seq(int argc, char **argv) { return s2s_run_command(&s2s_rnn, argc, argv); }

int cmd_transformer(int argc, char **argv) { return s2s_run_command(&s2s_t2t, argc, argv); }
