/* cmd_embed.c: `attn embed` (sentences in, vectors out) and `attn similar`
 * (rank the lines of a file by cosine similarity to a query) with a
 * pretrained sentence encoder (include/attn/minilm.h, docs/minilm.md). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/attn.h"
#include "commands.h"

typedef struct embed_opts {
    const char *model;   /* --model DIR */
    const char *input;   /* FILE or "-" */
    const char *out;     /* --out PATH, NULL: stdout (JSONL only) */
    const char *format;  /* jsonl | safetensors */
    const char *query;   /* similar */
    long long batch, threads, max_seq, top;
    int precision; /* ATTN_PRECISION_* */
} embed_opts;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The lines of a file ("-": standard input): trailing LF / CRLF removed,
 * a last line without LF kept, every other line kept (empty ones too). */
static int read_lines(const char *cmd, const char *path, char **buf_out, char ***lines_out,
                      size_t **lens_out, int64_t *n_out) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "attn %s: cannot open %s: %s\n", cmd, path, strerror(errno));
        return 1;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            if (cap >= ((size_t)1 << 31)) {
                free(buf);
                buf = NULL;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        const size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    const int err = f != stdin ? (ferror(f) | (fclose(f) != 0)) : ferror(f);
    if (!buf || err) {
        free(buf);
        fprintf(stderr, "attn %s: cannot read %s (or it is over 2 GiB)\n", cmd, path);
        return 1;
    }
    buf[n] = '\0';
    int64_t count = 0;
    for (size_t i = 0; i < n; i++) count += buf[i] == '\n';
    if (n > 0 && buf[n - 1] != '\n') count++;
    char **lines = malloc((size_t)(count > 0 ? count : 1) * sizeof *lines);
    size_t *lens = malloc((size_t)(count > 0 ? count : 1) * sizeof *lens);
    if (!lines || !lens) {
        free(buf);
        free(lines);
        free(lens);
        fprintf(stderr, "attn %s: out of memory for %lld lines\n", cmd, (long long)count);
        return 1;
    }
    size_t pos = 0;
    for (int64_t k = 0; k < count; k++) {
        size_t e = pos;
        while (e < n && buf[e] != '\n') e++;
        size_t l = e - pos;
        if (l > 0 && buf[pos + l - 1] == '\r') l--;
        buf[pos + l] = '\0';
        lines[k] = buf + pos;
        lens[k] = l;
        pos = e + 1;
    }
    *buf_out = buf;
    *lines_out = lines;
    *lens_out = lens;
    *n_out = count;
    return 0;
}

static void usage(FILE *f, int similar) {
    if (similar)
        fprintf(f,
                "usage: attn similar QUERY FILE [options]\n\n"
                "Ranks the lines of FILE (\"-\": standard input) by the cosine similarity of\n"
                "their sentence embeddings to QUERY's; prints rank, score, line number and\n"
                "line, best first.\n\n");
    else
        fprintf(f,
                "usage: attn embed [FILE] [options]\n\n"
                "Embeds each line of FILE (default or \"-\": standard input; empty lines\n"
                "too) with a pretrained sentence encoder: one JSON object per line\n"
                "{\"line\": i, \"tokens\": n, \"embedding\": [...]} or, with --format\n"
                "safetensors, one tensor \"embeddings\" f32 [lines, dim] in --out.\n\n");
    fprintf(f,
            "options:\n"
            "  --model DIR        the model directory (default data/minilm: bash scripts/get_minilm.sh)\n"
            "  --batch N          texts per batch, sorted by length (default 32)\n"
            "  --threads N        threads (default 1; 0: all)\n"
            "  --precision P      f32 (default) or bf16: the matrix products with bf16\n"
            "                     operands and f32 sums (AMX where the CPU has it;\n"
            "                     docs/mixed_precision.md)\n"
            "  --max-seq N        tokens per text incl. [CLS] and [SEP], 2 .. 512 (default: the\n"
            "                     model's max_seq_length, 256 for all-MiniLM-L6-v2)\n");
    if (similar)
        fprintf(f, "  --top K            lines to print (default 10; 0: all)\n");
    else
        fprintf(f,
                "  --out PATH         output file (default: standard output, JSONL only)\n"
                "  --format F         jsonl (default) or safetensors\n");
}

static int parse(int argc, char **argv, int similar, embed_opts *o) {
    const char *cmd = similar ? "similar" : "embed";
    memset(o, 0, sizeof *o);
    o->model = "data/minilm";
    o->format = "jsonl";
    o->batch = 32;
    o->threads = 1;
    o->top = 10;
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r = -1;
        if (strcmp(a, "--model") == 0 && v) o->model = v, r = 0;
        else if (strcmp(a, "--out") == 0 && v && !similar) o->out = v, r = 0;
        else if (strcmp(a, "--format") == 0 && v && !similar) o->format = v, r = 0;
        else if (strcmp(a, "--batch") == 0) r = cli_opt_int(cmd, "", a, v, 1, 4096, &o->batch);
        else if (strcmp(a, "--threads") == 0) r = cli_opt_int(cmd, "", a, v, 0, cli_max_threads(), &o->threads);
        else if (strcmp(a, "--max-seq") == 0) r = cli_opt_int(cmd, "", a, v, 2, 512, &o->max_seq);
        else if (strcmp(a, "--precision") == 0 && v) {
            if (strcmp(v, "f32") == 0) o->precision = ATTN_PRECISION_F32;
            else if (strcmp(v, "bf16") == 0) o->precision = ATTN_PRECISION_BF16;
            else {
                fprintf(stderr, "attn %s: --precision %s: expected f32 or bf16\n", cmd, v);
                return 2;
            }
            r = 0;
        }
        else if (strcmp(a, "--top") == 0 && similar) r = cli_opt_int(cmd, "", a, v, 0, 1ll << 40, &o->top);
        else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "attn %s: unknown option or missing value '%s' (try 'attn %s --help')\n", cmd,
                    a, cmd);
            return 2;
        } else {
            if (similar && npos == 0) o->query = a;
            else if ((similar && npos == 1) || (!similar && npos == 0)) o->input = a;
            else {
                fprintf(stderr, "attn %s: unexpected argument '%s' (try 'attn %s --help')\n", cmd, a, cmd);
                return 2;
            }
            npos++;
            continue;
        }
        if (r) return r;
        i++;
    }
    if (similar && (!o->query || !o->input)) {
        fprintf(stderr, "attn similar: expected QUERY and FILE (try 'attn similar --help')\n");
        return 2;
    }
    if (!o->input) o->input = "-";
    if (strcmp(o->format, "jsonl") != 0 && strcmp(o->format, "safetensors") != 0) {
        fprintf(stderr, "attn embed: --format '%s': expected jsonl or safetensors\n", o->format);
        return 2;
    }
    if (strcmp(o->format, "safetensors") == 0 && !o->out) {
        fprintf(stderr, "attn embed: --format safetensors needs --out PATH\n");
        return 2;
    }
    return 0;
}

/* Loads the model and embeds n texts into *out (n x dim floats); o->threads
 * becomes the threads the context runs (--threads 0: all of them, so the
 * summary reports the number used, not 0). */
static int embed_all(const char *cmd, embed_opts *o, attn_minilm **mp, const char *const *texts,
                     const size_t *lens, int64_t n, float **out, int32_t **ntok, double *secs,
                     double *cpu, int64_t *cut) {
    attn_minilm *m = NULL;
    if (attn_minilm_load(o->model, &m) != ATTN_OK) {
        cli_fail(cmd, "cannot load the model (bash scripts/get_minilm.sh fetches all-MiniLM-L6-v2 "
                      "into data/minilm)");
        return 1;
    }
    *mp = m;
    if (o->max_seq && attn_minilm_set_max_seq(m, (int)o->max_seq) != ATTN_OK)
        return cli_fail(cmd, "--max-seq");
    *out = malloc((size_t)(n > 0 ? n : 1) * (size_t)m->dim * sizeof **out);
    *ntok = malloc((size_t)(n > 0 ? n : 1) * sizeof **ntok);
    if (!*out || !*ntok) {
        fprintf(stderr, "attn %s: out of memory for %lld embeddings\n", cmd, (long long)n);
        return 1;
    }
    attn_ctx *ctx = NULL;
    attn_ctx_config cc = {.arena_bytes = (size_t)1 << 30, .n_threads = (int)o->threads};
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) return cli_fail(cmd, "cannot create the context");
    o->threads = attn_ctx_threads(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    attn_ctx_set_precision(ctx, o->precision);
    const double t0 = now_s();
    const clock_t c0 = clock();
    const attn_status st = attn_minilm_embed(ctx, m, texts, lens, n, (int)o->batch, *out, *ntok, cut);
    *secs = now_s() - t0;
    *cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
    attn_ctx_free(ctx);
    if (st != ATTN_OK) return cli_fail(cmd, "embedding failed");
    return 0;
}

int cmd_embed(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout, 0);
        return 0;
    }
    embed_opts o;
    int rc = parse(argc, argv, 0, &o);
    if (rc) return rc;
    char *buf = NULL, **lines = NULL;
    size_t *lens = NULL;
    int64_t n = 0;
    if (read_lines("embed", o.input, &buf, &lines, &lens, &n)) return 1;
    attn_minilm *m = NULL;
    float *e = NULL;
    int32_t *ntok = NULL;
    double secs = 0, cpu = 0;
    int64_t cut = 0;
    rc = embed_all("embed", &o, &m, (const char *const *)lines, lens, n, &e, &ntok, &secs, &cpu, &cut);
    if (rc == 0 && strcmp(o.format, "jsonl") == 0) {
        FILE *f = o.out ? fopen(o.out, "wb") : stdout;
        if (!f) {
            fprintf(stderr, "attn embed: cannot create %s: %s\n", o.out, strerror(errno));
            rc = 1;
        }
        for (int64_t i = 0; f && i < n; i++) {
            fprintf(f, "{\"line\": %lld, \"tokens\": %d, \"embedding\": [", (long long)i, ntok[i]);
            for (int64_t k = 0; k < m->dim; k++)
                fprintf(f, "%s%.9g", k ? ", " : "", (double)e[i * m->dim + k]);
            fprintf(f, "]}\n");
        }
        if (f && (ferror(f) || (f != stdout ? fclose(f) : fflush(f)) != 0)) {
            fprintf(stderr, "attn embed: error writing %s\n", o.out ? o.out : "standard output");
            rc = 1;
        }
    } else if (rc == 0) {
        attn_params *ps = NULL;
        attn_tensor *t = NULL;
        attn_status st = attn_params_new(&ps);
        if (st == ATTN_OK)
            st = attn_params_add(ps, "embeddings", 2, (int64_t[]){n, m->dim}, &t);
        if (st == ATTN_OK) {
            memcpy(attn_f32(t), e, (size_t)(n * m->dim) * sizeof *e);
            char count[32];
            snprintf(count, sizeof count, "%lld", (long long)n);
            attn_kv kv[3] = {{"model", o.model}, {"pooling", m->normalize ? "mean, L2-normalised" : "mean"},
                             {"lines", count}};
            st = attn_safetensors_save_params(o.out, ps, kv, 3);
        }
        attn_params_free(ps);
        if (st != ATTN_OK) rc = cli_fail("embed", "cannot write the embeddings");
    }
    if (rc == 0)
        fprintf(stderr,
                "attn embed: %lld lines (%lld truncated to %d tokens) in %.3f s: %.1f sentences/s, "
                "%lld thread%s (process CPU time %.3f s: %.1f sentences per CPU second)\n",
                (long long)n, (long long)cut, m->max_seq, secs, secs > 0 ? (double)n / secs : 0.0,
                o.threads, o.threads == 1 ? "" : "s", cpu, cpu > 0 ? (double)n / cpu : 0.0);
    attn_minilm_free(m);
    free(e);
    free(ntok);
    free(buf);
    free(lines);
    free(lens);
    return rc;
}

typedef struct scored {
    double score;
    int64_t line;
} scored;

static int cmp_score(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

int cmd_similar(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout, 1);
        return 0;
    }
    embed_opts o;
    int rc = parse(argc, argv, 1, &o);
    if (rc) return rc;
    char *buf = NULL, **lines = NULL;
    size_t *lens = NULL;
    int64_t n = 0;
    if (read_lines("similar", o.input, &buf, &lines, &lens, &n)) return 1;
    /* the query is text 0, the lines follow */
    const char **texts = malloc((size_t)(n + 1) * sizeof *texts);
    size_t *tl = malloc((size_t)(n + 1) * sizeof *tl);
    scored *s = malloc((size_t)(n > 0 ? n : 1) * sizeof *s);
    attn_minilm *m = NULL;
    float *e = NULL;
    int32_t *ntok = NULL;
    double secs = 0, cpu = 0;
    int64_t cut = 0;
    if (!texts || !tl || !s) {
        fprintf(stderr, "attn similar: out of memory\n");
        rc = 1;
    } else {
        texts[0] = o.query;
        tl[0] = strlen(o.query);
        for (int64_t i = 0; i < n; i++) {
            texts[i + 1] = lines[i];
            tl[i + 1] = lens[i];
        }
        rc = embed_all("similar", &o, &m, texts, tl, n + 1, &e, &ntok, &secs, &cpu, &cut);
    }
    if (rc == 0) {
        const int64_t E = m->dim;
        for (int64_t i = 0; i < n; i++) {
            double ab = 0, aa = 0, bb = 0;
            for (int64_t k = 0; k < E; k++) {
                const double a = e[k], b = e[(i + 1) * E + k];
                ab += a * b;
                aa += a * a;
                bb += b * b;
            }
            s[i].score = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
            s[i].line = i;
        }
        qsort(s, (size_t)n, sizeof *s, cmp_score);
        const int64_t top = o.top == 0 || o.top > n ? n : o.top;
        for (int64_t r = 0; r < top; r++)
            printf("%lld\t%.6f\t%lld\t%s\n", (long long)(r + 1), s[r].score, (long long)(s[r].line + 1),
                   lines[s[r].line]);
        if (fflush(stdout) != 0) rc = 1;
    }
    attn_minilm_free(m);
    free(e);
    free(ntok);
    free(texts);
    free(tl);
    free(s);
    free(buf);
    free(lines);
    free(lens);
    return rc;
}
