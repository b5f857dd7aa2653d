/* s2s_core.c: what the encoder-decoder commands share (cli/s2s.h): small
 * helpers, checkpoint metadata, loading a model directory, the data sets,
 * decoding and evaluation. Nothing here depends on which family a model is:
 * that comes from its bundle's table (cli/s2s_rnn.c, cli/s2s_t2t.c). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "commands.h"
#include "s2s.h"

const char *s2s_cmd = "seq2seq", *s2s_prog = "attn seq2seq";
#define CMD s2s_cmd
#define PROG s2s_prog

/* ---- small helpers ---------------------------------------------------------------- */

double now_s(void) { return attn_monotonic_s(); }

/* A usage error: prints it with the hint, returns 2. */
int usage_error(const char *sub, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s %s: ", PROG, sub);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (try '%s %s --help')\n", PROG, sub);
    va_end(ap);
    return 2;
}

/* Parses an integer in [lo, hi]; 0 on success. */
/* Option value helpers for the parsing loops: each takes the option name a,
 * its value v (NULL when missing), and returns 0 or a usage error (2). */
int opt_int(const char *sub, const char *a, const char *v, long long lo, long long hi,
                   long long *out) {
    if (parse_ll(v, lo, hi, out) == 0) return 0;
    char range[96];
    snprintf(range, sizeof range, "an integer in [%lld, %lld]", lo, hi);
    fprintf(stderr, "%s %s: %s '%s': expected %s (try '%s %s --help')\n", PROG, sub, a,
            v ? v : "(missing)", range, PROG, sub);
    return 2;
}

int opt_real(const char *sub, const char *a, const char *v, double lo, double hi,
                    double *out) {
    if (parse_real(v, lo, hi, out) == 0) return 0;
    fprintf(stderr,
            "%s %s: %s '%s': expected a number in [%g, %g] (try '%s %s --help')\n", PROG,
            sub, a, v ? v : "(missing)", lo, hi, PROG, sub);
    return 2;
}

int opt_str(const char *sub, const char *a, const char *v, const char **out) {
    if (v && v[0]) {
        *out = v;
        return 0;
    }
    return usage_error(sub, "%s: a value is required", a);
}

/* mkdir -p. 0 on success. */
int make_dirs(const char *path) { return cli_make_dir(path); }

int make_parent_dirs(const char *file) {
    const char *slash = strrchr(file, '/');
    if (!slash || slash == file) return 0;
    char dir[4096];
    if ((size_t)(slash - file) >= sizeof dir) return -1;
    memcpy(dir, file, (size_t)(slash - file));
    dir[slash - file] = '\0';
    return make_dirs(dir);
}

void warn_unknown(const attn_vocab *vocab, const char *text, int64_t line) {
    char names[512] = "";
    size_t used = 0;
    int count = 0;
    for (const char *p = text; *p;) {
        /* one code point: the lead byte says how many bytes (a stray byte alone) */
        const unsigned char c = (unsigned char)*p;
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
        for (size_t k = 1; k < n; k++)
            if (((unsigned char)p[k] & 0xC0) != 0x80) n = 1;
        int32_t ids[8];
        size_t m = 0;
        if (attn_vocab_encode(vocab, p, n, ids, 8, &m) == ATTN_OK && m == 1 && ids[0] == ATTN_TOKEN_UNK) {
            char one[8];
            snprintf(one, sizeof one, "%.*s", (int)n, p);
            if (!strstr(names, one) && used + n + 8 < sizeof names) {
                used += (size_t)snprintf(names + used, sizeof names - used, "%s'%s'", count ? ", " : "", one);
                count++;
            }
        }
        p += n;
    }
    if (count)
        fprintf(stderr, "%s translate: input %lld: %s outside the source vocabulary, read as <unk>: %s\n", PROG,
                (long long)line, count == 1 ? "a character" : "characters", names);
}

int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- the model bundle: configuration, vocabularies, parameters ----------------------- */



void bundle_free(bundle *b) {
    attn_seq2seq_free(b->model);
    attn_t2t_free(b->t2t);
    attn_params_free(b->ps);
    attn_vocab_free(b->sv);
    attn_vocab_free(b->tv);
    memset(b, 0, sizeof *b);
}

const char *tok_name(attn_vocab_kind k) { return k == ATTN_VOCAB_BPE ? "bpe" : "char"; }

/* attn_pos_kind from its name (attn_pos_kind_name); 0 or -1. */
int pos_parse(const char *name, attn_pos_kind *out) {
    for (int k = 0; k < ATTN_POS_COUNT; k++)
        if (name && strcmp(name, attn_pos_kind_name((attn_pos_kind)k)) == 0) {
            *out = (attn_pos_kind)k;
            return 0;
        }
    return -1;
}

void meta_put(meta_list *m, const char *key, const char *fmt, ...) {
    if (m->n >= META_MAX) return; /* META_MAX exceeds the keys written below */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->val[m->n], sizeof m->val[m->n], fmt, ap);
    va_end(ap);
    m->kv[m->n].key = key;
    m->kv[m->n].value = m->val[m->n];
    m->n++;
}

void meta_build(meta_list *m, const bundle *b) {
    const attn_seq2seq_config *c = &b->cfg;
    const run_info *r = &b->info;
    m->n = 0;
    meta_put(m, "model", "%s", b->fam->meta_model);
    meta_put(m, "task", "%s", r->dates ? "dates" : "gettext");
    meta_put(m, "lang", "%s", r->dates ? "" : r->lang);
    meta_put(m, "tokenizer", "%s", tok_name(r->tok));
    meta_put(m, "bpe_merges", "%lld", r->bpe_merges);
    b->fam->meta_write(m, b);
    meta_put(m, "src_vocab", "%lld", (long long)c->src_vocab);
    meta_put(m, "tgt_vocab", "%lld", (long long)c->tgt_vocab);
    meta_put(m, "max_src_len", "%lld", (long long)c->max_src_len);
    meta_put(m, "dropout", "%.9g", (double)c->dropout);
    meta_put(m, "pad_id", "%d", c->pad_id);
    meta_put(m, "bos_id", "%d", c->bos_id);
    meta_put(m, "eos_id", "%d", c->eos_id);
    meta_put(m, "data_seed", "%lld", r->data_seed);
    meta_put(m, "n_train", "%lld", r->n_train);
    meta_put(m, "max_len", "%lld", r->max_len);
    meta_put(m, "data_cursor", "%lld", r->data_cursor);
    meta_put(m, "train_batch", "%lld", r->batch);
    meta_put(m, "train_pool", "%lld", r->pool);
    meta_put(m, "train_warmup", "%lld", r->warmup);
    meta_put(m, "train_total_steps", "%lld", r->total_steps);
    meta_put(m, "train_seed", "%lld", r->seed);
    meta_put(m, "train_lr", "%.9g", r->lr);
    meta_put(m, "train_weight_decay", "%.9g", r->weight_decay);
    meta_put(m, "train_label_smoothing", "%.9g", r->label_smoothing);
    meta_put(m, "train_time_budget", "%.9g", r->time_budget);
    meta_put(m, "train_seconds", "%.3f", r->train_seconds);
}


void dir_file(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
}

/* Loads a model directory: configuration from the checkpoint's metadata,
 * the vocabularies, a model with its parameters (and, when opt_out is not
 * NULL, an AdamW optimizer restored from the checkpoint). Prints the error
 * and returns 1 on failure. */
int bundle_load(const s2s_family *fam, const char *sub, const char *dir, bundle *b, attn_optim **opt_out,
                float lr_for_optimizer, float wd_override, int use_wd_override) {
    memset(b, 0, sizeof *b);
    b->fam = fam;
    char path[4096], vpath[4096];
    dir_file(path, sizeof path, dir, "model.safetensors");
    if (!file_exists(path)) {
        fprintf(stderr, "%s %s: %s not found (train a model with '%s train --out %s')\n", PROG,
                sub, path, PROG, dir);
        return 1;
    }
    meta_reader m = {0};
    m.path = path;
    if (attn_safetensors_open(&m.f, path) != ATTN_OK)
        return cli_fail(CMD, "cannot read the checkpoint");
    {
        char prog[64], who[64];
        snprintf(prog, sizeof prog, "%s %s", PROG, sub);
        snprintf(who, sizeof who, "%s train", PROG);
        if (cli_check_family(prog, m.f, path, "model", fam->meta_model, who)) {
            attn_safetensors_close(m.f);
            return 1;
        }
    }
    attn_seq2seq_config *c = &b->cfg;
    run_info *r = &b->info;
    const char *task = meta_str(&m, "task");
    r->dates = strcmp(task, "dates") == 0;
    if (!r->dates && strcmp(task, "gettext") != 0 && !m.err[0])
        snprintf(m.err, sizeof m.err, "%s: metadata task = '%s': expected dates or gettext", path, task);
    snprintf(r->lang, sizeof r->lang, "%s", meta_str(&m, "lang"));
    const char *tok = meta_str(&m, "tokenizer");
    r->tok = strcmp(tok, "bpe") == 0 ? ATTN_VOCAB_BPE : ATTN_VOCAB_CHAR;
    r->bpe_merges = meta_ll(&m, "bpe_merges", 0, 1000000);
    c->src_vocab = meta_ll(&m, "src_vocab", 4, 1 << 30);
    c->tgt_vocab = meta_ll(&m, "tgt_vocab", 4, 1 << 30);
    c->max_src_len = meta_ll(&m, "max_src_len", 0, 1 << 30);
    c->dropout = (float)meta_real(&m, "dropout", 0.0, 1.0);
    c->pad_id = (int32_t)meta_ll(&m, "pad_id", 0, 1 << 30);
    c->bos_id = (int32_t)meta_ll(&m, "bos_id", 0, 1 << 30);
    c->eos_id = (int32_t)meta_ll(&m, "eos_id", 0, 1 << 30);
    fam->meta_read(&m, b);
    r->data_seed = meta_ll(&m, "data_seed", 0, INT64_MAX);
    r->n_train = meta_ll(&m, "n_train", 0, INT64_MAX);
    r->max_len = meta_ll(&m, "max_len", 0, 1 << 30);
    r->data_cursor = meta_ll(&m, "data_cursor", 0, INT64_MAX);
    r->batch = meta_ll(&m, "train_batch", 1, 1 << 20);
    r->pool = meta_ll(&m, "train_pool", 1, 1 << 20);
    r->warmup = meta_ll(&m, "train_warmup", 0, INT64_MAX);
    r->total_steps = meta_ll(&m, "train_total_steps", 0, INT64_MAX);
    r->seed = meta_ll(&m, "train_seed", 0, INT64_MAX);
    r->lr = meta_real(&m, "train_lr", 0.0, 10.0);
    r->weight_decay = meta_real(&m, "train_weight_decay", 0.0, 10.0);
    r->label_smoothing = meta_real(&m, "train_label_smoothing", 0.0, 0.999);
    r->time_budget = meta_real(&m, "train_time_budget", 0.0, 1e9);
    r->train_seconds = meta_real(&m, "train_seconds", 0.0, 1e12);
    r->step = meta_ll(&m, "step", 0, INT64_MAX);
    attn_safetensors_close(m.f);
    if (m.err[0]) {
        fprintf(stderr, "%s %s: %s\n", PROG, sub, m.err);
        return 1;
    }
    dir_file(vpath, sizeof vpath, dir, "src.vocab");
    if (attn_vocab_load(vpath, &b->sv) != ATTN_OK) {
        bundle_free(b);
        return cli_fail(CMD, "cannot load the source vocabulary");
    }
    dir_file(vpath, sizeof vpath, dir, "tgt.vocab");
    if (attn_vocab_load(vpath, &b->tv) != ATTN_OK) {
        bundle_free(b);
        return cli_fail(CMD, "cannot load the target vocabulary");
    }
    if (attn_vocab_size(b->sv) != c->src_vocab || attn_vocab_size(b->tv) != c->tgt_vocab) {
        fprintf(stderr, "%s %s: %s: the vocabularies have %d and %d tokens, the model "
                        "%lld and %lld\n", PROG, sub, dir, attn_vocab_size(b->sv), attn_vocab_size(b->tv),
                (long long)c->src_vocab, (long long)c->tgt_vocab);
        bundle_free(b);
        return 1;
    }
    if (attn_params_new(&b->ps) != ATTN_OK || fam->create(b, NULL) != ATTN_OK) {
        int rc = cli_fail(CMD, "cannot create the model");
        bundle_free(b);
        return rc;
    }
    attn_optim *opt = NULL;
    if (opt_out) {
        attn_optim_config oc = {0};
        oc.kind = ATTN_OPTIM_ADAMW;
        oc.lr = lr_for_optimizer;
        oc.weight_decay = use_wd_override ? wd_override : (float)r->weight_decay;
        if (attn_optim_new(&opt, b->ps, &oc) != ATTN_OK) {
            int rc = cli_fail(CMD, "cannot create the optimizer");
            bundle_free(b);
            return rc;
        }
    }
    int64_t step = 0;
    if (attn_checkpoint_load(path, b->ps, opt, &step) != ATTN_OK) {
        int rc = cli_fail(CMD, "cannot load the checkpoint");
        attn_optim_free(opt);
        bundle_free(b);
        return rc;
    }
    r->step = step;
    if (opt_out) *opt_out = opt;
    return 0;
}

/* --align-layer of translate and eval: -2 (not given) keeps the model's. */
int set_align_layer(const char *sub, bundle *b, long long layer) {
    const int layers = b->fam->align_layers(b);
    if (!layers || layer == -2) return 0;
    if (layer >= layers) {
        fprintf(stderr, "%s %s: --align-layer %lld: the decoder has %d layers (0 .. %d; -1: their "
                        "mean)\n", PROG, sub, layer, layers, layers - 1);
        return 1;
    }
    b->align_layer = (int)layer;
    return 0;
}

/* ---- data ----------------------------------------------------------------------------- */


void eval_set_free(eval_set *s) {
    free(s->src);
    free(s->ref);
    free(s->dates);
    attn_pairs_free(&s->pairs);
    memset(s, 0, sizeof *s);
}

/* The path of a gettext split; prints how to build it when it is missing.
 * Returns 0 when the file exists. */
int gettext_path(const char *sub, const char *data_dir, const char *lang, const char *split,
                        char *path, size_t n) {
    snprintf(path, n, "%s/en-%s/%s.tsv", data_dir, lang, split);
    if (file_exists(path)) return 0;
    fprintf(stderr,
            "%s %s: %s not found: build the gettext data set first with\n"
            "  bash scripts/get_gettext_data.sh\n"
            "(or pass --data DIR where DIR/en-%s/%s.tsv exists; docs/data.md)\n", PROG,
            sub, path, lang, split);
    return 1;
}

/* Loads split `split` (ATTN_SPLIT_VALID or _TEST) of the run's task. */
int eval_set_load(const char *sub, const run_info *r, const char *data_dir, attn_data_split split,
                         eval_set *s) {
    memset(s, 0, sizeof *s);
    if (r->dates) {
        const int64_t n = split == ATTN_SPLIT_VALID ? DATES_VALID_N : DATES_TEST_N;
        s->dates = malloc((size_t)n * sizeof *s->dates);
        s->src = malloc((size_t)n * sizeof *s->src);
        s->ref = malloc((size_t)n * sizeof *s->ref);
        if (!s->dates || !s->src || !s->ref) {
            eval_set_free(s);
            fprintf(stderr, "%s %s: out of memory\n", PROG, sub);
            return 1;
        }
        uint64_t cursor = 0;
        for (int64_t i = 0; i < n; i++) {
            attn_date_next(DATES_EVAL_SEED, split, &cursor, &s->dates[i]);
            s->src[i] = s->dates[i].source;
            s->ref[i] = s->dates[i].target;
        }
        s->n = n;
        return 0;
    }
    char path[4096];
    if (gettext_path(sub, data_dir, r->lang, attn_data_split_name(split), path, sizeof path))
        return 1;
    if (attn_pairs_load(path, &s->pairs) != ATTN_OK) return cli_fail(CMD, "cannot read the pairs");
    if (s->pairs.n == 0) { /* a score over no pair would read as 0% */
        fprintf(stderr, "%s %s: %s holds no pair: nothing to score (rebuild the split with 'attn data')\n",
                PROG, sub, path);
        attn_pairs_free(&s->pairs);
        return 1;
    }
    s->n = s->pairs.n;
    s->src = malloc((size_t)(s->n ? s->n : 1) * sizeof *s->src);
    s->ref = malloc((size_t)(s->n ? s->n : 1) * sizeof *s->ref);
    if (!s->src || !s->ref) {
        eval_set_free(s);
        fprintf(stderr, "%s %s: out of memory\n", PROG, sub);
        return 1;
    }
    for (int64_t i = 0; i < s->n; i++) {
        s->src[i] = s->pairs.src[i];
        s->ref[i] = s->pairs.tgt[i];
    }
    return 0;
}

/* Output tokens at most for a source of S tokens: targets of the gettext
 * pairs are at most 2.5 times their source in characters, dates are 10. */
int max_out_len(int64_t S) { return (int)(3 * S + 10); }


/* Encodes a source for the model; sources longer than source_cap are cut
 * there (and *cut set). */

attn_status add_source(attn_s2s_data *d, const bundle *b, const char *text, id_buf *buf,
                              int *cut) {
    const size_t len = strlen(text);
    if (len + 1 > buf->cap) {
        int32_t *p = realloc(buf->ids, (len + 1) * sizeof *p);
        if (!p) return attn_s2s_data_add(d, b->sv, text, NULL, NULL); /* reports OOM itself */
        buf->ids = p;
        buf->cap = len + 1;
    }
    size_t n = 0;
    attn_status st = attn_vocab_encode(b->sv, text, len, buf->ids, buf->cap, &n);
    if (st != ATTN_OK) return st;
    const int64_t cap = b->fam->source_cap(b);
    if (cap > 0 && (int64_t)n > cap) {
        n = (size_t)cap;
        if (cut) *cut = 1;
    }
    return attn_s2s_data_add_ids(d, buf->ids, (int64_t)n, NULL, 0);
}

/* ---- decoding and evaluation ------------------------------------------------------------ */


/* Byte length of a token's text in the source (<unk> stands for one
 * character: the date sources are ASCII). */
static size_t piece_bytes(const attn_vocab *v, int32_t id) {
    if (id == ATTN_TOKEN_UNK) return 1;
    const char *p = attn_vocab_piece(v, id);
    return p ? strlen(p) : 0;
}

/* The alignment score of one decoded date: each output character that is a
 * digit counts once; it is aligned right when it sits at a digit position
 * of the target (i < 10, not a '-') and the source token with the largest
 * attention weight of its output step overlaps the source bytes of that
 * position's field. */
static void align_score(const bundle *b, const int32_t *src, int64_t src_len, const attn_date_example *ex,
                        const int32_t *out, int32_t out_len, const float *align, int64_t S,
                        int64_t *digits, int64_t *hits) {
    int pos = 0;
    for (int32_t k = 0; k < out_len; k++) {
        const char *piece = attn_vocab_piece(b->tv, out[k]);
        if (!piece) continue;
        for (const char *c = piece; *c; c++, pos++) {
            if (!isdigit((unsigned char)*c)) continue;
            (*digits)++;
            if (pos >= ATTN_DATE_TARGET_LEN || ex->field[pos] == ATTN_DATE_SEP) continue;
            const float *row = align + (int64_t)k * S;
            int64_t best = 0;
            for (int64_t j = 1; j < src_len; j++)
                if (row[j] > row[best]) best = j;
            size_t begin = 0;
            for (int64_t j = 0; j < best; j++) begin += piece_bytes(b->sv, src[j]);
            const size_t end = begin + piece_bytes(b->sv, src[best]);
            if ((int)begin < ex->span_end[pos] && (int)end > ex->span_begin[pos]) (*hits)++;
        }
    }
}


attn_status decode_text(const attn_vocab *v, const int32_t *ids, int32_t n, text_buf *t) {
    size_t len = 0;
    attn_status st = attn_vocab_decode(v, ids, (size_t)n, NULL, 0, &len);
    if (st != ATTN_OK) return st;
    if (len + 1 > t->cap) {
        char *p = realloc(t->p, len + 1);
        if (!p) return attn_vocab_decode(v, ids, (size_t)n, t->p, t->cap, &len);
        t->p = p;
        t->cap = len + 1;
    }
    return attn_vocab_decode(v, ids, (size_t)n, t->p, t->cap, &len);
}

/* Decodes the first `limit` examples of the set (all when limit <= 0) and
 * scores them. n_show examples are printed to `show` with their reference.
 * Returns 0, or 1 after printing the error. */
int evaluate(const char *sub, attn_ctx *ctx, const bundle *b, const eval_set *es, int64_t limit,
                    int beam, float alpha, int n_show, FILE *show, eval_out *r) {
    memset(r, 0, sizeof *r);
    attn_eval_init(&r->ev);
    const int64_t n = limit > 0 && limit < es->n ? limit : es->n;
    attn_s2s_data d;
    attn_s2s_data_init(&d);
    d.pad_id = b->cfg.pad_id;
    d.bos_id = b->cfg.bos_id;
    d.eos_id = b->cfg.eos_id;
    id_buf ib = {0};
    text_buf tb = {0};
    int32_t *out_ids = NULL, *out_len = NULL;
    float *align = NULL;
    int rc = 1;
    for (int64_t i = 0; i < n; i++) {
        int cut = 0;
        if (add_source(&d, b, es->src[i], &ib, &cut) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot encode a source");
            goto done;
        }
        r->cut += cut;
    }
    const int want_align = es->dates && b->fam->has_attention(b);
    const int64_t S_max = d.max_src_len > 0 ? d.max_src_len : 1;
    const int L_max = max_out_len(S_max);
    out_ids = malloc((size_t)EVAL_BATCH * (size_t)L_max * sizeof *out_ids);
    out_len = malloc((size_t)EVAL_BATCH * sizeof *out_len);
    if (want_align) align = malloc((size_t)EVAL_BATCH * (size_t)L_max * (size_t)S_max * sizeof *align);
    if (!out_ids || !out_len || (want_align && !align)) {
        fprintf(stderr, "%s %s: out of memory for decoding\n", PROG, sub);
        goto done;
    }
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    int64_t idx[EVAL_BATCH];
    int shown = 0;
    for (int64_t first = 0; first < n; first += EVAL_BATCH) {
        const int64_t bsz = n - first < EVAL_BATCH ? n - first : EVAL_BATCH;
        for (int64_t k = 0; k < bsz; k++) idx[k] = first + k;
        attn_ctx_reset(ctx);
        attn_s2s_batch batch;
        attn_s2s_batch_info info;
        const double t0 = now_s();
        attn_status st = attn_s2s_batch_make(ctx, &d, idx, bsz, &batch, &info);
        attn_decode_config dc = {beam, alpha, max_out_len(info.src_width)};
        if (st == ATTN_OK)
            st = b->fam->decode(ctx, b, &batch, &dc, out_ids, out_len, want_align ? align : NULL);
        r->seconds += now_s() - t0;
        if (st != ATTN_OK) {
            attn_ctx_set_grad_enabled(ctx, grad);
            attn_ctx_set_training(ctx, training);
            rc = cli_fail(CMD, "decoding failed");
            goto done;
        }
        const int64_t S = info.src_width;
        for (int64_t k = 0; k < bsz; k++) {
            const int64_t e = first + k;
            const int32_t *ids = out_ids + k * dc.max_len;
            r->out_tokens += out_len[k] + (out_len[k] < dc.max_len);
            if (decode_text(b->tv, ids, out_len[k], &tb) != ATTN_OK ||
                attn_eval_add(&r->ev, tb.p, es->ref[e]) != ATTN_OK) {
                attn_ctx_set_grad_enabled(ctx, grad);
                attn_ctx_set_training(ctx, training);
                rc = cli_fail(CMD, "cannot score an output");
                goto done;
            }
            if (want_align)
                align_score(b, d.ids + d.src_off[e], d.src_len[e], &es->dates[e], ids, out_len[k],
                            align + k * dc.max_len * S, S, &r->digits, &r->digits_aligned);
            if (show && shown < n_show) {
                fprintf(show, "  %s -> %s   [%s %s]\n", es->src[e], tb.p,
                        strcmp(tb.p, es->ref[e]) == 0 ? "ok" : "expected", es->ref[e]);
                shown++;
            }
        }
    }
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    rc = 0;
done:
    free(out_ids);
    free(out_len);
    free(align);
    free(ib.ids);
    free(tb.p);
    attn_s2s_data_free(&d);
    return rc;
}

double eval_bleu(const eval_out *r) {
    attn_bleu_score s;
    return attn_eval_bleu(&r->ev, &s) == ATTN_OK ? s.score : NAN;
}

double eval_align(const eval_out *r) {
    return r->digits > 0 ? (double)r->digits_aligned / (double)r->digits : NAN;
}

/* The training data and the held-out sets of a run. */

void train_data_free(train_data *t) {
    attn_s2s_data_free(&t->train);
    attn_pairs_free(&t->pairs);
    free(t->dates);
    memset(t, 0, sizeof *t);
}

/* Texts of the training split the vocabularies are learned from: both
 * sides, as arrays of borrowed strings. */
int vocab_texts(const run_info *r, train_data *t, const char ***src,
                       const char ***tgt, int64_t *n, attn_date_example **tmp) {
    *tmp = NULL;
    if (r->dates) {
        const int64_t m = r->n_train > 0 ? r->n_train : DATES_VOCAB_N;
        attn_date_example *ex = r->n_train > 0 ? t->dates : malloc((size_t)m * sizeof *ex);
        *src = malloc((size_t)m * sizeof **src);
        *tgt = malloc((size_t)m * sizeof **tgt);
        if (!ex || !*src || !*tgt) return -1;
        if (r->n_train == 0) {
            *tmp = ex;
            uint64_t c = 0;
            for (int64_t i = 0; i < m; i++) attn_date_next((uint64_t)r->data_seed, ATTN_SPLIT_TRAIN, &c, &ex[i]);
        }
        for (int64_t i = 0; i < m; i++) {
            (*src)[i] = ex[i].source;
            (*tgt)[i] = ex[i].target;
        }
        *n = m;
        return 0;
    }
    *src = t->pairs.src;
    *tgt = t->pairs.tgt;
    *n = t->pairs.n;
    return 0;
}

/* Loads or generates the training split (before the vocabularies exist). */
int train_data_load(const char *data_dir, const run_info *r, train_data *t) {
    memset(t, 0, sizeof *t);
    attn_s2s_data_init(&t->train);
    if (r->dates) {
        if (r->n_train == 0) {
            t->fresh = 1;
            t->cursor = (uint64_t)r->data_cursor;
            return 0;
        }
        t->dates = malloc((size_t)r->n_train * sizeof *t->dates);
        if (!t->dates) {
            fprintf(stderr, "%s train: out of memory for %lld examples\n", PROG, r->n_train);
            return 1;
        }
        uint64_t c = 0;
        for (int64_t i = 0; i < r->n_train; i++)
            attn_date_next((uint64_t)r->data_seed, ATTN_SPLIT_TRAIN, &c, &t->dates[i]);
        return 0;
    }
    char path[4096];
    if (gettext_path("train", data_dir, r->lang, "train", path, sizeof path)) return 1;
    if (attn_pairs_load(path, &t->pairs) != ATTN_OK) return cli_fail(CMD, "cannot read the pairs");
    if (t->pairs.n == 0) {
        fprintf(stderr, "%s train: %s holds no pair (rebuild the split with 'attn data')\n", PROG, path);
        return 1;
    }
    return 0;
}

/* Encodes the finite training set with the vocabularies. */
int train_data_encode(const bundle *b, train_data *t) {
    const run_info *r = &b->info;
    t->train.pad_id = b->cfg.pad_id;
    t->train.bos_id = b->cfg.bos_id;
    t->train.eos_id = b->cfg.eos_id;
    if (t->fresh) return 0;
    const int64_t n = r->dates ? r->n_train : t->pairs.n;
    for (int64_t i = 0; i < n; i++) {
        const char *s = r->dates ? t->dates[i].source : t->pairs.src[i];
        const char *g = r->dates ? t->dates[i].target : t->pairs.tgt[i];
        if (attn_s2s_data_add(&t->train, b->sv, s, b->tv, g) != ATTN_OK)
            return cli_fail(CMD, "cannot encode the training data");
        const int64_t last = t->train.n - 1;
        const int too_long = r->max_len > 0 && (t->train.src_len[last] > r->max_len ||
                                                t->train.tgt_len[last] > r->max_len);
        /* source_cap is 0 while a new gettext model is being set up: it
         * is then taken from these very sources, so none is too long. */
        const int64_t cap = b->fam->source_cap(b);
        const int location_cut = cap > 0 && t->train.src_len[last] > cap;
        if (too_long || location_cut) {
            attn_s2s_data_truncate(&t->train, last);
            t->skipped++;
        }
    }
    if (t->train.n == 0) {
        fprintf(stderr, "%s train: no training pair is at most %lld tokens long\n", PROG, r->max_len);
        return 1;
    }
    return 0;
}

/* Fills the fresh batch with `b` new examples of the dates training stream. */
attn_status fresh_batch(const bundle *bd, train_data *t, int64_t b) {
    attn_s2s_data_truncate(&t->train, 0);
    for (int64_t i = 0; i < b; i++) {
        attn_date_example ex;
        attn_date_next((uint64_t)bd->info.data_seed, ATTN_SPLIT_TRAIN, &t->cursor, &ex);
        attn_status st = attn_s2s_data_add(&t->train, bd->sv, ex.source, bd->tv, ex.target);
        if (st != ATTN_OK) return st;
    }
    return ATTN_OK;
}

/* Learning rate at `step` (0-based): warmup then cosine to 0 over the run's
 * total steps; with only a time budget, over the estimated total, the steps
 * done divided by the fraction of the budget used. */
/* Longest source, in tokens, over the held-out sets and the training set
 * (dates: every source fits ATTN_DATE_SOURCE_MAX - 1 characters). */
int64_t longest_source(const bundle *b, const eval_set *sets, int n_sets, const train_data *t) {
    if (b->info.dates) return ATTN_DATE_SOURCE_MAX - 1;
    int64_t best = t->train.max_src_len;
    for (int s = 0; s < n_sets; s++)
        for (int64_t i = 0; i < sets[s].n; i++) {
            size_t n = 0;
            if (attn_vocab_encode(b->sv, sets[s].src[i], strlen(sets[s].src[i]), NULL, 0, &n) == ATTN_OK &&
                (int64_t)n > best)
                best = (int64_t)n;
        }
    return best;
}

/* ---- translate's files --------------------------------------------------------------------- */

/* FILE for a single input; FILE with "-k" before its extension otherwise. */
void svg_name(char *buf, size_t n, const char *file, int k, int many) {
    if (!many) {
        snprintf(buf, n, "%s", file);
        return;
    }
    const char *slash = strrchr(file, '/');
    const char *dot = strrchr(file, '.');
    if (dot && (!slash || dot > slash + 1))
        snprintf(buf, n, "%.*s-%d%s", (int)(dot - file), file, k, dot);
    else
        snprintf(buf, n, "%s-%d", file, k);
}

/* At most `max` bytes of s, cut at a UTF-8 character boundary, "..." added
 * when cut. */
void clip_text(char *buf, size_t cap, const char *s, size_t max) {
    size_t n = strlen(s);
    if (n <= max) {
        snprintf(buf, cap, "%s", s);
        return;
    }
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
    snprintf(buf, cap, "%.*s...", (int)max, s);
}

int write_svg(const char *path, const bundle *b, const char *src_text, const char *out_text,
                     const int32_t *src, int64_t S, const int32_t *out, int32_t out_len, int max_len,
                     const float *align) {
    /* One row per output token, and the <eos> step when it was produced. */
    const int rows = out_len + (out_len < max_len ? 1 : 0);
    if (rows < 1 || S < 1 || rows > ATTN_VIZ_MAX_TOKENS || S > ATTN_VIZ_MAX_TOKENS) {
        fprintf(stderr, "%s translate: %s: a %d x %lld map cannot be drawn (1 to %d "
                        "tokens per side)\n", PROG, path, rows, (long long)S, ATTN_VIZ_MAX_TOKENS);
        return 1;
    }
    const char **rl = malloc((size_t)rows * sizeof *rl), **cl = malloc((size_t)S * sizeof *cl);
    if (!rl || !cl) {
        free(rl);
        free(cl);
        fprintf(stderr, "%s translate: out of memory\n", PROG);
        return 1;
    }
    for (int k = 0; k < rows; k++) rl[k] = k < out_len ? attn_vocab_piece(b->tv, out[k]) : "<eos>";
    for (int64_t j = 0; j < S; j++) cl[j] = attn_vocab_piece(b->sv, src[j]);
    char a[160], o[160], title[512];
    clip_text(a, sizeof a, src_text, 60);
    clip_text(o, sizeof o, out_text, 60);
    char kind[96];
    b->fam->map_title(b, kind, sizeof kind);
    snprintf(title, sizeof title, "%s: \"%s\" -> \"%s\"", kind, a, o);
    attn_heatmap map = {0};
    map.weights = align;
    map.rows = rows;
    map.cols = (int)S;
    map.row_labels = rl;
    map.col_labels = cl;
    map.title = title;
    map.x_label = "source";
    map.y_label = "output";
    map.show_values = 0;
    map.colormap = ATTN_CMAP_BLUES;
    attn_status st = attn_svg_heatmap(path, &map);
    free(rl);
    free(cl);
    if (st != ATTN_OK) return cli_fail(CMD, "cannot write the alignment map");
    return 0;
}

int write_html(const char *path, const char *weights, const bundle *b, const char *src_text,
               const char *out_text, const int32_t *src, int64_t S, const int32_t *out,
               int32_t out_len, int max_len, const float *align) {
    const int rows = out_len + (out_len < max_len ? 1 : 0); /* as write_svg */
    const char **rl = malloc((size_t)(rows > 0 ? rows : 1) * sizeof *rl);
    const char **cl = malloc((size_t)(S > 0 ? S : 1) * sizeof *cl);
    if (!rl || !cl) {
        free(rl);
        free(cl);
        fprintf(stderr, "%s translate: out of memory\n", PROG);
        return 1;
    }
    for (int k = 0; k < rows; k++) rl[k] = k < out_len ? attn_vocab_piece(b->tv, out[k]) : "<eos>";
    for (int64_t j = 0; j < S; j++) cl[j] = attn_vocab_piece(b->sv, src[j]);
    char a[160], o[160], title[512], kind[96], sub[256];
    clip_text(a, sizeof a, src_text, 60);
    clip_text(o, sizeof o, out_text, 60);
    b->fam->map_title(b, kind, sizeof kind);
    snprintf(title, sizeof title, "%s: \"%s\" -> \"%s\"", kind, a, o);
    snprintf(sub, sizeof sub, "attn %s translate: %d output steps over %lld source tokens; "
             "row t is the step that emits output token t", s2s_cmd, rows, (long long)S);
    cli_page page = {0};
    /* local-m attends to the window |s - min(t, S - 1)| <= D of step t
     * (rnn_attention.h): drawn as the map's mask (the buffer the causal
     * option allocates, rewritten) */
    const int local_m = b->model && b->cfg.attention == ATTN_S2S_LOCAL_M;
    int rc = cli_page_add_floats(&page, s2s_cmd, "alignment", ATTN_EXPLORER_ALIGNMENT, align, 1, 1,
                                 rows, S, rl, cl, "output step", "source", local_m ? 0 : -1);
    if (!rc && local_m) {
        const int64_t D = b->cfg.local_window;
        for (int64_t t = 0; t < rows; t++) {
            const int64_t p = t < S - 1 ? t : S - 1;
            for (int64_t j = 0; j < S; j++) page.mask[0][t * S + j] = (j - p <= D && p - j <= D);
        }
        page.maps[0].mask_name = "local-m window";
    }
    if (!rc) rc = cli_page_write(&page, s2s_cmd, path, weights, title, sub, 1);
    else cli_page_free(&page);
    free(rl);
    free(cl);
    return rc;
}

/* Reads standard input into lines (newline and a trailing '\r' removed). */
int read_lines(char ***lines, int64_t **nul_at, int64_t *n) {
    *lines = NULL;
    *nul_at = NULL;
    *n = 0;
    size_t cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, stdin)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if ((size_t)*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(*lines, cap * sizeof *p);
            if (!p) break;
            *lines = p;
            int64_t *q = realloc(*nul_at, cap * sizeof *q);
            if (!q) break;
            *nul_at = q;
        }
        const char *nul = memchr(line, '\0', (size_t)len);
        char *copy = strdup(line); /* up to a NUL: that line is refused, not translated */
        if (!copy) break;
        (*nul_at)[*n] = nul ? (int64_t)(nul - line) : -1;
        (*lines)[(*n)++] = copy;
    }
    free(line);
    if (ferror(stdin) || !feof(stdin)) {
        fprintf(stderr, "%s translate: cannot read standard input: %s\n", PROG, strerror(errno));
        return 1;
    }
    return 0;
}
