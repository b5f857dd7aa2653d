/* cmd_data.c: `attn data`: build and inspect the text data sets
 * (include/attn/text.h, docs/data.md).
 *
 *   attn data dates   [--n N] [--seed S] [--split train|valid|test|all] [--tsv] [--spans]
 *   attn data gettext --lang LANG --mo-dir DIR [--mo-dir DIR ...] --out DIR
 *   attn data bpe     --tsv FILE --merges N --out FILE [--side source|target|both]
 *                     [--min-count K]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/attn.h"
#include "commands.h"

static void data_usage(FILE *f) {
    fprintf(f, "usage: attn data <set> [options]\n\n"
               "  dates     print examples of the date-normalisation task\n"
               "  gettext   build the English -> LANG pairs from gettext catalogs (.mo)\n"
               "  bpe       learn a BPE vocabulary on one side of a TSV split\n\n"
               "'attn data <set> --help' describes each. docs/data.md has the details.\n");
}

/* Parses a non-negative integer option value; -1 when malformed. */
static long long parse_count(const char *s) {
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 0) return -1;
    return v;
}

static int bad_value(const char *cmd, const char *opt, const char *value, const char *expected) {
    fprintf(stderr, "attn data %s: %s '%s': expected %s (try 'attn data %s --help')\n", cmd, opt,
            value ? value : "(missing)", expected, cmd);
    return 2;
}

static int unknown_option(const char *cmd, const char *arg) {
    fprintf(stderr, "attn data %s: unknown argument '%s' (try 'attn data %s --help')\n", cmd, arg,
            cmd);
    return 2;
}

/* ---- dates --------------------------------------------------------------- */

static int data_dates(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: attn data dates [--n N] [--seed S] [--split train|valid|test|all]\n"
               "                       [--tsv] [--spans]\n\n"
               "Prints N (default 10) examples of the date-normalisation task: a human date in\n"
               "one of %d formats and 3 casings, and its ISO form yyyy-mm-dd. Example i of\n"
               "seed S is the same on every machine. --split keeps the examples of one split\n"
               "(disjoint by date and format; default all). --tsv prints \"source<TAB>target\";\n"
               "--spans adds a line marking the source characters of the year (Y), month (M)\n"
               "and day (D) that the target's digits align with.\n\nformats:\n",
               ATTN_DATE_FORMATS);
        for (int f = 0; f < ATTN_DATE_FORMATS; f++) {
            attn_date_example ex;
            attn_date_render(2000, 7, 4, f, 0, &ex);
            printf("  %2d  %-24s %s\n", f, attn_date_format_name(f), ex.source);
        }
        return 0;
    }
    long long n = 10, seed = 1;
    int split = -1, tsv = 0, spans = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--n") || !strcmp(a, "--seed") || !strcmp(a, "--split")) {
            const char *v = i + 1 < argc ? argv[++i] : NULL;
            if (!strcmp(a, "--split")) {
                if (v && !strcmp(v, "all"))
                    split = -1;
                else if (v && !strcmp(v, "train"))
                    split = ATTN_SPLIT_TRAIN;
                else if (v && !strcmp(v, "valid"))
                    split = ATTN_SPLIT_VALID;
                else if (v && !strcmp(v, "test"))
                    split = ATTN_SPLIT_TEST;
                else
                    return bad_value("dates", a, v, "train, valid, test or all");
                continue;
            }
            long long x = parse_count(v);
            if (x < 0) return bad_value("dates", a, v, "a non-negative integer");
            if (!strcmp(a, "--n"))
                n = x;
            else
                seed = x;
        } else if (!strcmp(a, "--tsv")) {
            tsv = 1;
        } else if (!strcmp(a, "--spans")) {
            spans = 1;
        } else {
            return unknown_option("dates", a);
        }
    }
    uint64_t cursor = 0;
    for (long long i = 0; i < n; i++) {
        attn_date_example ex;
        if (split < 0)
            attn_date_example_at((uint64_t)seed, (uint64_t)i, &ex);
        else
            attn_date_next((uint64_t)seed, (attn_data_split)split, &cursor, &ex);
        if (tsv) {
            printf("%s\t%s\n", ex.source, ex.target);
        } else {
            printf("%-34s -> %s   (%s, %s)\n", ex.source, ex.target,
                   attn_date_format_name(ex.format), attn_data_split_name(ex.split));
        }
        if (spans) {
            char mark[ATTN_DATE_SOURCE_MAX];
            memset(mark, ' ', sizeof mark);
            for (int t = 0; t < ATTN_DATE_TARGET_LEN; t++) {
                static const char letter[4] = {' ', 'Y', 'M', 'D'};
                for (int k = ex.span_begin[t]; k >= 0 && k < ex.span_end[t]; k++)
                    mark[k] = letter[ex.field[t]];
            }
            int end = ex.source_len;
            while (end > 0 && mark[end - 1] == ' ') end--;
            mark[end] = '\0';
            printf("%s\n", mark);
        }
    }
    return 0;
}

/* ---- gettext --------------------------------------------------------------- */

static int data_gettext(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: attn data gettext --lang LANG --mo-dir DIR [--mo-dir DIR ...] --out DIR\n\n"
               "Builds the English -> LANG parallel data set from the gettext catalogs\n"
               "DIR/**/LANG/LC_MESSAGES/*.mo: cleans every message pair, drops iso_*\n"
               "domains, deduplicates, splits by a hash of the English sentence (90/5/5) and\n"
               "writes OUT/en-LANG/{train,valid,test}.tsv (\"source<TAB>target\" lines) and\n"
               "OUT/en-LANG/catalogs.tsv (one line per catalog). Prints the counts.\n"
               "scripts/get_gettext_data.sh fetches the catalogs from named Debian packages\n"
               "and runs this. docs/data.md lists the cleaning rules.\n");
        return 0;
    }
    const char *lang = NULL, *out = NULL;
    const char **dirs = calloc((size_t)argc + 1, sizeof *dirs);
    if (!dirs) {
        fprintf(stderr, "attn data gettext: out of memory\n");
        return 1;
    }
    int n_dirs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--lang") || !strcmp(a, "--mo-dir") || !strcmp(a, "--out")) {
            const char *v = i + 1 < argc ? argv[++i] : NULL;
            if (!v || !v[0]) {
                free(dirs);
                return bad_value("gettext", a, v, "a value");
            }
            if (!strcmp(a, "--lang"))
                lang = v;
            else if (!strcmp(a, "--out"))
                out = v;
            else
                dirs[n_dirs++] = v;
        } else {
            free(dirs);
            return unknown_option("gettext", a);
        }
    }
    if (!lang || !out || n_dirs == 0) {
        free(dirs);
        fprintf(stderr, "attn data gettext: --lang, --out and at least one --mo-dir are required "
                        "(try 'attn data gettext --help')\n");
        return 2;
    }
    attn_gettext_stats s;
    clock_t t0 = clock();
    attn_status st = attn_gettext_build(dirs, n_dirs, lang, out, &s);
    free(dirs);
    if (st != ATTN_OK) return cli_fail("data gettext", "cannot build the data set");
    printf("en-%s: %lld catalogs read, %lld skipped; %lld messages\n", lang, (long long)s.catalogs,
           (long long)s.catalogs_skipped, (long long)s.entries);
    printf("rejected by rule:");
    for (int r = 1; r < ATTN_CLEAN_REASON_COUNT; r++)
        printf(" %s %lld", attn_clean_reason_name((attn_clean_reason)r), (long long)s.cleaned[r]);
    printf("\nclean %lld, duplicates %lld, pairs %lld: train %lld, valid %lld, test %lld\n",
           (long long)s.cleaned[ATTN_CLEAN_OK], (long long)s.duplicates,
           (long long)(s.pairs[0] + s.pairs[1] + s.pairs[2]), (long long)s.pairs[0],
           (long long)s.pairs[1], (long long)s.pairs[2]);
    printf("written to %s/en-%s/ in %.1f s of CPU\n", out, lang,
           (double)(clock() - t0) / CLOCKS_PER_SEC);
    if (s.pairs[0] == 0 || s.pairs[1] == 0 || s.pairs[2] == 0) { /* nothing a run could use */
        fprintf(stderr, "attn data gettext: a split is empty (train %lld, valid %lld, test %lld pairs): "
                        "the catalogs gave too few clean pairs for en-%s\n",
                (long long)s.pairs[0], (long long)s.pairs[1], (long long)s.pairs[2], lang);
        return 1;
    }
    return 0;
}

/* ---- bpe ------------------------------------------------------------------ */

static int data_bpe(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: attn data bpe --tsv FILE --merges N --out FILE\n"
               "                     [--side source|target|both] [--min-count K]\n\n"
               "Learns a BPE vocabulary with at most N merges on one side (default both) of a\n"
               "TSV split (a train.tsv of 'attn data gettext'), over the characters seen at\n"
               "least K times (default 1), saves it to FILE, and checks that every line of the\n"
               "file decodes back to itself. Prints the size and tokens per sentence.\n");
        return 0;
    }
    const char *tsv = NULL, *out = NULL, *side = "both";
    long long merges = -1, min_count = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--tsv"))
            tsv = v;
        else if (!strcmp(a, "--out"))
            out = v;
        else if (!strcmp(a, "--side"))
            side = v;
        else if (!strcmp(a, "--merges")) {
            if ((merges = parse_count(v)) < 0)
                return bad_value("bpe", a, v, "a non-negative integer");
        } else if (!strcmp(a, "--min-count")) {
            if ((min_count = parse_count(v)) < 0)
                return bad_value("bpe", a, v, "a non-negative integer");
        } else {
            return unknown_option("bpe", a);
        }
        i++;
    }
    if (!tsv || !out || merges < 0) {
        fprintf(stderr, "attn data bpe: --tsv, --out and --merges N are required (try 'attn data bpe "
                        "--help')\n");
        return 2;
    }
    if (merges > 1000000 || min_count > 1000000000) {
        fprintf(stderr, "attn data bpe: --merges %lld (at most 1000000) or --min-count %lld (at most "
                        "1000000000) out of range\n", merges, min_count);
        return 2;
    }
    if (!side || (strcmp(side, "source") && strcmp(side, "target") && strcmp(side, "both")))
        return bad_value("bpe", "--side", side, "source, target or both");
    attn_pairs pairs;
    if (attn_pairs_load(tsv, &pairs) != ATTN_OK)
        return cli_fail("data bpe", "cannot read the pairs");
    if (pairs.n == 0) { /* a vocabulary learned from nothing */
        attn_pairs_free(&pairs);
        fprintf(stderr, "attn data bpe: %s holds no pair to learn from\n", tsv);
        return 1;
    }
    const int both = !strcmp(side, "both"), tgt = !strcmp(side, "target");
    const int64_t n = pairs.n * (both ? 2 : 1);
    const char **texts = malloc((size_t)(n ? n : 1) * sizeof *texts);
    if (!texts) {
        attn_pairs_free(&pairs);
        fprintf(stderr, "attn data bpe: out of memory\n");
        return 1;
    }
    for (int64_t i = 0, k = 0; i < pairs.n; i++) {
        if (both || !tgt) texts[k++] = pairs.src[i];
        if (both || tgt) texts[k++] = pairs.tgt[i];
    }
    clock_t t0 = clock();
    attn_vocab *v = NULL;
    int rc = 0;
    if (attn_bpe_learn(texts, n, (int)merges, (int)min_count, &v) != ATTN_OK) {
        rc = cli_fail("data bpe", "cannot learn the vocabulary");
        goto done;
    }
    const double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    if (attn_vocab_save(v, out) != ATTN_OK) {
        rc = cli_fail("data bpe", "cannot save the vocabulary");
        goto done;
    }
    long long tokens = 0, chars = 0, mismatched = 0;
    int32_t *ids = NULL;
    char *back = NULL;
    size_t ids_cap = 0, back_cap = 0;
    for (int64_t i = 0; i < n; i++) {
        const size_t len = strlen(texts[i]);
        size_t n_ids = 0, n_back = 0;
        if (len + 1 > ids_cap) {
            ids_cap = back_cap = 2 * len + 64;
            free(ids);
            free(back);
            ids = malloc(ids_cap * sizeof *ids);
            back = malloc(back_cap);
            if (!ids || !back) {
                free(ids);
                free(back);
                fprintf(stderr, "attn data bpe: out of memory\n");
                rc = 1;
                goto done;
            }
        }
        if (attn_vocab_encode(v, texts[i], len, ids, ids_cap, &n_ids) != ATTN_OK ||
            attn_vocab_decode(v, ids, n_ids, back, back_cap, &n_back) != ATTN_OK) {
            free(ids);
            free(back);
            rc = cli_fail("data bpe", "cannot encode a sentence");
            goto done;
        }
        tokens += (long long)n_ids;
        chars += (long long)len;
        mismatched += n_back != len || memcmp(back, texts[i], len) != 0;
    }
    free(ids);
    free(back);
    printf("%s: %d tokens (%d characters, %d merges) learned in %.1f s of CPU on %lld sentences\n",
           out, attn_vocab_size(v), attn_vocab_alphabet_size(v), attn_bpe_merge_count(v), secs,
           (long long)n);
    printf("%.1f tokens and %.1f bytes per sentence; %lld sentences do not round-trip%s\n",
           n ? (double)tokens / (double)n : 0.0, n ? (double)chars / (double)n : 0.0, mismatched,
           min_count > 1 && mismatched ? " (characters seen fewer than --min-count times are <unk>)"
                                       : "");
    /* With every character in the alphabet, decoding must be exact. */
    if (mismatched && min_count <= 1) rc = 1;
done:
    attn_vocab_free(v);
    free(texts);
    attn_pairs_free(&pairs);
    return rc;
}

int cmd_data(int argc, char **argv) {
    if (argc < 2) {
        data_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        data_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "dates")) return data_dates(argc - 1, argv + 1);
    if (!strcmp(argv[1], "gettext")) return data_gettext(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bpe")) return data_bpe(argc - 1, argv + 1);
    fprintf(stderr, "attn data: unknown data set '%s'\n\n", argv[1]);
    data_usage(stderr);
    return 2;
}
