/* cmd_word2vec.c: attn word2vec train|similar|analogy|eval
 * (include/attn/word2vec.h, docs/word2vec.md).
 *
 * train does not run on the step-based training driver (cli/train_driver.h):
 * word2vec has no optimizer, no batches and no checkpoint to resume (the
 * reference trains Hogwild threads through whole epochs, and its learning
 * rate is a function of the words done). It keeps the driver's behaviours
 * that make sense here: a run directory that already holds a run is refused
 * without --force, a progress line (words/s, ETA), a train.jsonl log, and
 * SIGINT / SIGTERM stop training and save the vectors trained so far (exit
 * code 130). docs/cli.md says the same. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attn/attn.h"
#include "commands.h"

static volatile sig_atomic_t w2v_signal = 0;

static void on_signal(int sig) {
    if (w2v_signal) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    w2v_signal = sig;
}

static int read_file(const char *prog, const char *path, char **buf, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "%s: cannot open %s: %s\n", prog, path, strerror(errno));
        return 1;
    }
    size_t cap = 1 << 20, n = 0, got;
    char *b = malloc(cap);
    while (b && (got = fread(b + n, 1, cap - n, fp)) > 0) {
        n += got;
        if (n == cap) {
            char *t = realloc(b, cap *= 2);
            if (!t) {
                free(b);
                b = NULL;
            }
            b = t;
        }
    }
    const int err = ferror(fp);
    fclose(fp);
    if (!b || err) {
        free(b);
        fprintf(stderr, "%s: cannot read %s: %s\n", prog, path, b ? "read error" : "out of memory");
        return 1;
    }
    *buf = b;
    *len = n;
    return 0;
}

static int exists(const char *dir, const char *name) {
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

/* ---- train ------------------------------------------------------------------------------------ */

typedef struct w2v_cli {
    FILE *tty;
    int quiet, is_tty;
    double t0, last;
    attn_jsonl *log;
    double words_per_s;
} w2v_cli;

static void fmt_eta(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e7) snprintf(buf, n, "?");
    else if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60) snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, n, "%.0fs", s);
}

static int progress_cb(void *user, const attn_w2v_progress *p) {
    w2v_cli *c = user;
    if (w2v_signal) return 1;
    const double now = attn_monotonic_s(), el = now - c->t0;
    const double rate = el > 0 ? (double)p->words_done / el : 0;
    c->words_per_s = rate;
    if (now - c->last < (c->is_tty && !c->quiet ? 0.25 : 10.0)) return 0;
    c->last = now;
    if (c->log) {
        attn_json_field f[] = {attn_json_str("type", "progress"), attn_json_int("words", p->words_done),
                               attn_json_num("alpha", p->alpha), attn_json_num("words_per_s", rate),
                               attn_json_num("elapsed_s", el)};
        attn_jsonl_write(c->log, f, 5);
    }
    if (c->quiet) return 0;
    char eta[32];
    fmt_eta(rate > 0 ? (double)(p->words_total - p->words_done) / rate : -1, eta, sizeof eta);
    fprintf(stderr, "%sword2vec: %5.1f%%  epoch %d  alpha %.6f  %.1fk words/s  ETA %s%s",
            c->is_tty ? "\r" : "", 100.0 * (double)p->words_done / (double)p->words_total, p->epoch + 1, p->alpha,
            rate / 1000, eta, c->is_tty ? "   " : "\n");
    fflush(stderr);
    return 0;
}

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: attn word2vec train --text FILE --out DIR [options]\n\n"
            "Trains word vectors (skip-gram or CBOW, negative sampling) on FILE (words separated by\n"
            "whitespace, one sentence per line; scripts/get_word2vec_data.sh makes data/word2vec/train.txt)\n"
            "and writes DIR/vectors.safetensors, DIR/vectors.txt (the classic text format) and DIR/train.jsonl.\n\n"
            "  --cbow              CBOW (mean of the context) instead of skip-gram\n"
            "  --dim N             vector size (100)\n"
            "  --window N          largest window radius, shrunk at random per word (5)\n"
            "  --negative N        negatives per positive (5)\n"
            "  --min-count N       drop words seen fewer times (5)\n"
            "  --epochs N          passes over the text (5)\n"
            "  --lr X              starting learning rate alpha (0.025; 0.05 with --cbow), falls linearly\n"
            "  --min-lr-ratio X    the rate's floor as a fraction of --lr (0.0001)\n"
            "  --sample X          subsampling threshold (0.001; 0: off)\n"
            "  --table-size N      entries of the negative-sampling table (0: 100 per word, in [10^6, 10^8])\n"
            "  --exact-sigmoid     exact sigma instead of the reference's 1,000-entry table\n"
            "  --init-scale X      vectors start uniform in [-X/dim, X/dim) (0.5, the reference; gensim: 1)\n"
            "  --skip-saturated    gensim's rule: no update from a target with |x.out| >= 6 (the\n"
            "                      reference updates with sigma taken as 0 or 1)\n"
            "  --threads N         Hogwild threads (1: deterministic; more: faster, varies run to run)\n"
            "  --seed N            random seed (1)\n"
            "  --eval-dir DIR      after training, evaluate on DIR/questions-words.txt, wordsim353.tsv,\n"
            "                      simlex999.txt (those present) and log the results\n"
            "  --force             overwrite a run already in DIR\n"
            "  --quiet             no progress line\n\n"
            "SIGINT / SIGTERM stop training and save the vectors trained so far (exit code 130).\n");
}

static int run_eval(const char *prog, const attn_w2v *m, const char *dir, attn_jsonl *log, FILE *out);

static int cmd_w2v_train(int argc, char **argv) {
    const char *prog = "attn word2vec train", *sub = "train", *text = NULL, *out = NULL, *eval_dir = NULL;
    attn_w2v_config cfg;
    attn_w2v_config_default(&cfg);
    long long v;
    double x, lr = -1;
    int rc = 0, force = 0, quiet = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--cbow")) { cfg.cbow = 1; continue; }
        if (!strcmp(a, "--force")) { force = 1; continue; }
        if (!strcmp(a, "--quiet")) { quiet = 1; continue; }
        if (!strcmp(a, "--exact-sigmoid")) { cfg.exact_sigmoid = 1; continue; }
        if (!strcmp(a, "--skip-saturated")) { cfg.skip_saturated = 1; continue; }
        i++;
        if (!strcmp(a, "--text")) text = val;
        else if (!strcmp(a, "--out")) out = val;
        else if (!strcmp(a, "--eval-dir")) eval_dir = val;
        else if (!strcmp(a, "--dim")) { if (!(rc = cli_opt_int("word2vec", sub, a, val, 1, ATTN_W2V_MAX_DIM, &v))) cfg.dim = (int)v; }
        else if (!strcmp(a, "--window")) { if (!(rc = cli_opt_int("word2vec", sub, a, val, 1, ATTN_W2V_MAX_WINDOW, &v))) cfg.window = (int)v; }
        else if (!strcmp(a, "--negative")) { if (!(rc = cli_opt_int("word2vec", sub, a, val, 1, ATTN_W2V_MAX_NEGATIVE, &v))) cfg.negative = (int)v; }
        else if (!strcmp(a, "--min-count")) { if (!(rc = cli_opt_int("word2vec", sub, a, val, 1, 1ll << 62, &v))) cfg.min_count = v; }
        else if (!strcmp(a, "--epochs")) { if (!(rc = cli_opt_int("word2vec", sub, a, val, 1, 10000, &v))) cfg.epochs = (int)v; }
        else if (!strcmp(a, "--table-size")) { if (!(rc = cli_opt_int("word2vec", sub, a, val, 0, 1ll << 30, &v))) cfg.table_size = v; }
        else if (!strcmp(a, "--threads")) { if (!(rc = cli_opt_int("word2vec", sub, a, val, 1, cli_max_threads(), &v))) cfg.n_threads = (int)v; }
        else if (!strcmp(a, "--seed")) { if (!(rc = cli_opt_int("word2vec", sub, a, val, 0, 1ll << 62, &v))) cfg.seed = (uint64_t)v; }
        else if (!strcmp(a, "--lr")) { if (!(rc = cli_opt_real("word2vec", sub, a, val, 1e-9, 10, &x))) lr = x; }
        else if (!strcmp(a, "--min-lr-ratio")) { if (!(rc = cli_opt_real("word2vec", sub, a, val, 0, 1, &x))) cfg.min_alpha_ratio = x; }
        else if (!strcmp(a, "--init-scale")) { if (!(rc = cli_opt_real("word2vec", sub, a, val, 1e-6, 100, &x))) cfg.init_scale = x; }
        else if (!strcmp(a, "--sample")) { if (!(rc = cli_opt_real("word2vec", sub, a, val, 0, 1, &x))) cfg.sample = x; }
        else {
            fprintf(stderr, "%s: unknown option '%s' (try '%s --help')\n", prog, a, prog);
            return 2;
        }
        if (!val && rc == 0) {
            fprintf(stderr, "%s: %s needs a value (try '%s --help')\n", prog, a, prog);
            return 2;
        }
    }
    if (rc) return rc;
    if (!text || !out) {
        fprintf(stderr, "%s: --text FILE and --out DIR are required (try '%s --help')\n", prog, prog);
        return 2;
    }
    cfg.alpha = lr > 0 ? lr : cfg.cbow ? 0.05 : 0.025;
    if (!force && (exists(out, "vectors.safetensors") || exists(out, "train.jsonl"))) {
        fprintf(stderr, "%s: %s already holds a run (vectors.safetensors or train.jsonl); give --force to overwrite "
                        "it, or another --out\n", prog, out);
        return 1;
    }
    if (cli_make_dir(out)) {
        fprintf(stderr, "%s: cannot create the folder %s\n", prog, out);
        return 1;
    }
    char *buf;
    size_t len;
    if (read_file(prog, text, &buf, &len)) return 1;
    attn_w2v *m = NULL;
    const double tb = attn_monotonic_s();
    if (attn_w2v_build(&m, &cfg, buf, len)) {
        free(buf);
        return cli_fail("word2vec train", "vocabulary");
    }
    const double build_s = attn_monotonic_s() - tb;
    char path[4096];
    snprintf(path, sizeof path, "%s/train.jsonl", out);
    w2v_cli c = {0};
    c.quiet = quiet;
    c.is_tty = isatty(fileno(stderr));
    if (attn_jsonl_open(&c.log, path, 0)) {
        attn_w2v_free(m);
        free(buf);
        return cli_fail("word2vec train", "log");
    }
    {
        attn_json_field f[] = {
            attn_json_str("type", "start"), attn_json_str("text", text), attn_json_str("model", cfg.cbow ? "cbow" : "skipgram"),
            attn_json_int("dim", cfg.dim), attn_json_int("window", cfg.window), attn_json_int("negative", cfg.negative),
            attn_json_int("min_count", cfg.min_count), attn_json_int("epochs", cfg.epochs), attn_json_num("alpha", cfg.alpha),
            attn_json_num("sample", cfg.sample), attn_json_int("skip_saturated", cfg.skip_saturated), attn_json_num("init_scale", cfg.init_scale), attn_json_int("threads", cfg.n_threads), attn_json_int("seed", (int64_t)cfg.seed),
            attn_json_int("vocab", m->V), attn_json_int("train_words", m->train_words), attn_json_num("vocab_s", build_s)};
        attn_jsonl_write(c.log, f, (int)(sizeof f / sizeof f[0]));
    }
    if (!quiet)
        fprintf(stderr, "word2vec: %lld words in the vocabulary (min count %lld), %lld words of text, %s, dim %d, "
                        "%d thread%s\n", (long long)m->V, (long long)cfg.min_count, (long long)m->train_words,
                cfg.cbow ? "CBOW" : "skip-gram", cfg.dim, cfg.n_threads, cfg.n_threads > 1 ? "s" : "");
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    w2v_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    c.t0 = c.last = attn_monotonic_s();
    int stopped = 0;
    const clock_t cpu0 = clock();
    attn_status st = attn_w2v_train(m, buf, len, progress_cb, &c, &stopped);
    const double train_s = attn_monotonic_s() - c.t0, cpu_s = (double)(clock() - cpu0) / CLOCKS_PER_SEC;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free(buf);
    if (!quiet && c.is_tty) fputc('\n', stderr);
    if (st) {
        attn_jsonl_close(c.log);
        attn_w2v_free(m);
        return cli_fail("word2vec train", "training");
    }
    const double words = (double)m->train_words * cfg.epochs;
    const double wps = stopped ? c.words_per_s : words / (train_s > 0 ? train_s : 1e-9);
    snprintf(path, sizeof path, "%s/vectors.safetensors", out);
    int bad = attn_w2v_save(m, path, ATTN_W2V_SAFETENSORS) != ATTN_OK;
    if (!bad) {
        snprintf(path, sizeof path, "%s/vectors.txt", out);
        bad = attn_w2v_save(m, path, ATTN_W2V_TEXT) != ATTN_OK;
    }
    if (bad) {
        attn_jsonl_close(c.log);
        attn_w2v_free(m);
        return cli_fail("word2vec train", "saving the vectors");
    }
    const char *why = stopped ? (w2v_signal == SIGTERM ? "SIGTERM" : "SIGINT") : "epochs";
    {
        attn_json_field f[] = {attn_json_str("type", "end"), attn_json_str("stopped", why),
                               attn_json_num("train_s", train_s), attn_json_num("cpu_s", cpu_s),
                               attn_json_num("words_per_s", wps)};
        attn_jsonl_write(c.log, f, 5);
    }
    printf("word2vec: %s in %.1f s, %.0f words/s (%d thread%s); vectors in %s/vectors.safetensors and "
           "%s/vectors.txt\n", stopped ? "stopped" : "trained", train_s, wps, cfg.n_threads,
           cfg.n_threads > 1 ? "s" : "", out, out);
    rc = 0;
    if (eval_dir && !stopped) rc = run_eval(prog, m, eval_dir, c.log, stdout);
    if (attn_jsonl_close(c.log)) rc = cli_fail("word2vec train", "log");
    attn_w2v_free(m);
    if (stopped) {
        fprintf(stderr, "%s: stopped by %s; the vectors trained so far are saved in %s\n", prog, why, out);
        return 130;
    }
    return rc;
}

/* ---- eval ------------------------------------------------------------------------------------------ */

static int run_eval(const char *prog, const attn_w2v *m, const char *dir, attn_jsonl *log, FILE *out) {
    static const char *const sims[] = {"wordsim353.tsv", "simlex999.txt"};
    char path[4096];
    int any = 0;
    snprintf(path, sizeof path, "%s/questions-words.txt", dir);
    if (access(path, R_OK) == 0) {
        attn_w2v_analogy_result r;
        if (attn_w2v_eval_analogies(m, path, 300000, &r)) return cli_fail("word2vec eval", "analogies");
        const double acc = r.covered ? 100.0 * (double)r.correct / (double)r.covered : NAN;
        fprintf(out, "analogies %s: %.2f%% correct (%lld of %lld questions covered by the vocabulary, %lld right)\n",
                path, acc, (long long)r.covered, (long long)r.questions, (long long)r.correct);
        if (log) {
            attn_json_field f[] = {attn_json_str("type", "eval"), attn_json_str("set", "questions-words"),
                                   attn_json_num("accuracy", acc), attn_json_int("covered", r.covered),
                                   attn_json_int("questions", r.questions), attn_json_int("correct", r.correct)};
            attn_jsonl_write(log, f, 6);
        }
        any = 1;
    }
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, sims[k]);
        if (access(path, R_OK) != 0) continue;
        attn_w2v_similarity_result r;
        if (attn_w2v_eval_similarity(m, path, &r)) return cli_fail("word2vec eval", "similarity");
        fprintf(out, "similarity %s: Spearman %.4f (%lld of %lld pairs covered)\n", path, r.spearman,
                (long long)r.covered, (long long)r.pairs);
        if (log) {
            attn_json_field f[] = {attn_json_str("type", "eval"), attn_json_str("set", sims[k]),
                                   attn_json_num("spearman", r.spearman), attn_json_int("covered", r.covered),
                                   attn_json_int("pairs", r.pairs)};
            attn_jsonl_write(log, f, 5);
        }
        any = 1;
    }
    if (!any) {
        fprintf(stderr, "%s: %s holds none of questions-words.txt, wordsim353.tsv, simlex999.txt (run "
                        "scripts/get_word2vec_data.sh)\n", prog, dir);
        return 1;
    }
    return 0;
}

static int load(const char *prog, const char *path, attn_w2v **m) {
    if (!path) {
        fprintf(stderr, "%s: --vectors FILE is required (a vectors.safetensors or vectors.txt of attn word2vec "
                        "train)\n", prog);
        return 2;
    }
    if (attn_w2v_load(m, path)) {
        fprintf(stderr, "%s: cannot load the vectors: %s\n", prog, attn_last_error());
        return 1;
    }
    return 0;
}

static int cmd_w2v_eval(int argc, char **argv) {
    const char *prog = "attn word2vec eval", *vec = NULL, *dir = "data/word2vec";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn word2vec eval --vectors FILE [--eval-dir DIR]\n\n"
                   "Analogy accuracy (DIR/questions-words.txt, 3CosAdd over the 300,000 most frequent words) and\n"
                   "Spearman correlations (DIR/wordsim353.tsv, DIR/simlex999.txt), on the questions and pairs whose\n"
                   "words the vocabulary holds (counts printed). DIR defaults to data/word2vec.\n");
            return 0;
        }
        if (!val) {
            fprintf(stderr, "%s: %s needs a value\n", prog, a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--vectors")) vec = val;
        else if (!strcmp(a, "--eval-dir")) dir = val;
        else {
            fprintf(stderr, "%s: unknown option '%s' (try '%s --help')\n", prog, a, prog);
            return 2;
        }
    }
    attn_w2v *m;
    int rc = load(prog, vec, &m);
    if (rc) return rc;
    rc = run_eval(prog, m, dir, NULL, stdout);
    attn_w2v_free(m);
    return rc;
}

/* similar WORD / analogy A B C */
static int cmd_w2v_query(int argc, char **argv, int analogy) {
    const char *prog = analogy ? "attn word2vec analogy" : "attn word2vec similar", *vec = NULL;
    const char *words[3];
    int nw = 0, need = analogy ? 3 : 1;
    long long k = analogy ? 5 : 10;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            if (analogy)
                printf("usage: attn word2vec analogy --vectors FILE A B C [-k N]\n\n"
                       "A is to B as C is to ?: the N words (5) nearest by cosine to unit(B) - unit(A) + unit(C),\n"
                       "A, B and C excluded (3CosAdd).\n");
            else
                printf("usage: attn word2vec similar --vectors FILE WORD [-k N]\n\n"
                       "The N words (10) nearest to WORD by cosine.\n");
            return 0;
        }
        if (!strcmp(a, "--vectors") || !strcmp(a, "-k")) {
            if (!val) {
                fprintf(stderr, "%s: %s needs a value\n", prog, a);
                return 2;
            }
            i++;
            if (!strcmp(a, "--vectors")) vec = val;
            else if (cli_opt_int("word2vec", analogy ? "analogy" : "similar", a, val, 1, 100000, &k)) return 2;
            continue;
        }
        if (a[0] == '-' && a[1]) {
            fprintf(stderr, "%s: unknown option '%s' (try '%s --help')\n", prog, a, prog);
            return 2;
        }
        if (nw == need) {
            fprintf(stderr, "%s: expected %d word%s, got more ('%s')\n", prog, need, need > 1 ? "s" : "", a);
            return 2;
        }
        words[nw++] = a;
    }
    if (nw != need) {
        fprintf(stderr, "%s: expected %s (try '%s --help')\n", prog, analogy ? "three words A B C" : "a word", prog);
        return 2;
    }
    attn_w2v *m;
    int rc = load(prog, vec, &m);
    if (rc) return rc;
    int64_t *idx = malloc((size_t)k * sizeof *idx);
    float *sim = malloc((size_t)k * sizeof *sim);
    int found = 0;
    attn_status st = ATTN_ERR_OOM;
    if (idx && sim)
        st = analogy ? attn_w2v_analogy(m, words[0], words[1], words[2], 0, (int)k, idx, sim, &found)
                     : attn_w2v_similar(m, words[0], (int)k, idx, sim, &found);
    if (st == ATTN_OK)
        for (int i = 0; i < found; i++) printf("%-24s %.4f\n", m->words[idx[i]], (double)sim[i]);
    else
        rc = cli_fail(analogy ? "word2vec analogy" : "word2vec similar", "query");
    free(idx);
    free(sim);
    attn_w2v_free(m);
    return rc;
}

int cmd_word2vec(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: attn word2vec train|similar|analogy|eval [options]   (attn word2vec train --help, ...)\n\n"
                   "  train     train skip-gram or CBOW vectors with negative sampling on a text\n"
                   "  similar   the nearest words of a word, by cosine\n"
                   "  analogy   a : b :: c : ? (3CosAdd)\n"
                   "  eval      analogy accuracy and WordSim-353 / SimLex-999 Spearman correlations\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_w2v_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "similar")) return cmd_w2v_query(argc - 1, argv + 1, 0);
    if (!strcmp(argv[1], "analogy")) return cmd_w2v_query(argc - 1, argv + 1, 1);
    if (!strcmp(argv[1], "eval")) return cmd_w2v_eval(argc - 1, argv + 1);
    fprintf(stderr, "attn word2vec: unknown subcommand '%s' (train, similar, analogy or eval)\n", argv[1]);
    return 2;
}
