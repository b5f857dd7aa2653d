/* s2s_translate.c: `attn seq2seq|transformer translate` (beam search or
 * greedy decoding of the user's sentences, with the alignment as SVG or
 * HTML) and `eval` (BLEU and exact match of a held-out split), for both
 * encoder-decoder families (cli/s2s.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "s2s.h"

#define CMD s2s_cmd
#define PROG s2s_prog

/* ---- translate ------------------------------------------------------------------------------ */

void s2s_translate_usage(const s2s_family *fam, FILE *f) {
    fprintf(f,
        "usage: %s translate --model DIR [--beam K] [--alpha A] [--svg FILE]\n"
        "                              [--html FILE [--weights FILE]] [--threads N] [TEXT ...]\n\n"
        "Translates each TEXT (or, without TEXT, each line of standard input) with the\n"
        "model in DIR and prints one output per line.\n\n"
        "  --beam K      beam search of width K (default 1: greedy)\n"
        "  --alpha A     length normalisation of beam scores, log p / len^A (default 0.6)\n"
        "  --max-len N   output tokens at most (default 3 * source tokens + 10)\n"
        "  --svg FILE    write the alignment map (output tokens down, source tokens across,\n"
        "                the attention weights of each output step) as SVG; with several\n"
        "                inputs FILE-1.svg, FILE-2.svg, ... (FILE's extension kept)\n"
        "  --html FILE   write the alignment as an interactive page (the attention\n"
        "                explorer, docs/explorer.md: each decoding step's weights over the\n"
        "                source, the map with exact weights on hover); several inputs as\n"
        "                --svg\n"
        "  --weights FILE  with --html: the alignment's weights as text at full precision\n"
        "  --threads N   threads for the ops (default: all)\n"
        "  --arena-mb N  memory for one input's decoding in MiB (default 256); an input\n"
        "                that does not fit is reported, its output line left empty, and\n"
        "                the others are translated (exit status 1)\n"
        "Characters outside the source vocabulary are read as <unk>, with a warning\n"
        "naming them. The folder of --svg FILE is created when missing.\n"
        "An empty TEXT argument (\"\") is refused as an empty sentence (exit status 2);\n"
        "an empty line of standard input prints an empty output line. A line of\n"
        "standard input holding a NUL byte is reported (its number and the byte), its\n"
        "output line left empty, and the others are translated (exit status 1).\n", PROG);
    if (fam->align_help) fputs(fam->align_help, f);
}

int s2s_cmd_translate(const s2s_family *fam, int argc, char **argv) {
    const char *sub = "translate", *dir = NULL, *svg = NULL, *html = NULL, *weights = NULL;
    long long beam = 1, threads = 0, max_len = 0, align_layer = -2, arena_mb = 256;
    double alpha = 0.6;
    char **texts = calloc((size_t)argc + 1, sizeof *texts);
    if (!texts) return 1;
    int64_t n_texts = 0;
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !strcmp(a, "-")) {
            texts[n_texts++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--")) {
            while (++i < argc) texts[n_texts++] = argv[i];
            break;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (!strcmp(a, "--model")) rc = opt_str(sub, a, v, &dir);
        else if (!strcmp(a, "--svg")) rc = opt_str(sub, a, v, &svg);
        else if (!strcmp(a, "--html")) rc = opt_str(sub, a, v, &html);
        else if (!strcmp(a, "--weights")) rc = opt_str(sub, a, v, &weights);
        else if (!strcmp(a, "--beam")) rc = opt_int(sub, a, v, 1, 256, &beam);
        else if (!strcmp(a, "--alpha")) rc = opt_real(sub, a, v, 0.0, 10.0, &alpha);
        else if (!strcmp(a, "--max-len")) rc = opt_int(sub, a, v, 1, 100000, &max_len);
        else if (!strcmp(a, "--threads")) rc = opt_int(sub, a, v, 0, cli_max_threads(), &threads);
        else if (!strcmp(a, "--arena-mb")) rc = opt_int(sub, a, v, 1, 1 << 20, &arena_mb);
        else if (fam->align_help && !strcmp(a, "--align-layer")) rc = opt_int(sub, a, v, -1, 63, &align_layer);
        else rc = usage_error(sub, "unknown option '%s'", a);
    }
    if (!rc && !dir) rc = usage_error(sub, "--model DIR is required");
    for (int64_t k = 0; k < n_texts && !rc; k++)
        if (!texts[k][0])
            rc = usage_error(sub, "TEXT %lld is an empty sentence: give the text to translate", (long long)k + 1);
    if (!rc && weights && !html) rc = usage_error(sub, "--weights goes with --html FILE");
    if (!rc && svg && make_parent_dirs(svg) != 0) {
        fprintf(stderr, "%s translate: cannot create the folder of %s: %s\n", PROG, svg, strerror(errno));
        rc = 1;
    }
    if (rc) {
        free(texts);
        return rc;
    }
    char **lines = NULL;
    int64_t n_lines = 0, *nul_at = NULL;
    const int from_stdin = n_texts == 0;
    if (from_stdin && read_lines(&lines, &nul_at, &n_lines)) {
        for (int64_t i = 0; i < n_lines; i++) free(lines[i]);
        free(lines);
        free(nul_at);
        free(texts);
        return 1;
    }
    char **inputs = from_stdin ? lines : texts;
    const int64_t n_in = from_stdin ? n_lines : n_texts;

    bundle b;
    attn_ctx *ctx = NULL;
    attn_s2s_data d;
    attn_s2s_data_init(&d);
    id_buf ib = {0};
    text_buf tb = {0};
    int32_t *out_ids = NULL, out_len = 0;
    float *align = NULL;
    size_t out_cap = 0, align_cap = 0;
    rc = 1;
    if (bundle_load(fam, sub, dir, &b, NULL, 0.0f, 0.0f, 0)) goto done_nomodel;
    if (set_align_layer(sub, &b, align_layer)) goto done;
    attn_ctx_config cc = {0};
    cc.n_threads = (int)threads;
    cc.arena_bytes = (size_t)arena_mb << 20;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    d.pad_id = b.cfg.pad_id;
    d.bos_id = b.cfg.bos_id;
    d.eos_id = b.cfg.eos_id;
    const int want_align = (svg || html) && b.fam->has_attention(&b);
    if ((svg || html) && !want_align)
        fprintf(stderr, "%s translate: this model has no attention (--attention none): "
                        "no alignment map is written\n", PROG);
    int64_t failed = 0; /* lines that could not be translated: an empty output line each */
    for (int64_t i = 0; i < n_in; i++) {
        if (from_stdin && nul_at[i] >= 0) { /* not text: refused, not cut short at the NUL */
            fprintf(stderr, "%s translate: line %lld of standard input holds a NUL byte (byte %lld): "
                            "not translated\n", PROG, (long long)i + 1, (long long)nul_at[i] + 1);
            printf("\n");
            fflush(stdout);
            failed++;
            continue;
        }
        if (!inputs[i][0]) { /* an empty line of standard input translates to an empty line */
            printf("\n");
            continue;
        }
        attn_s2s_data_truncate(&d, 0);
        int cut = 0;
        if (add_source(&d, &b, inputs[i], &ib, &cut) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot encode the input");
            goto done;
        }
        if (cut)
            fprintf(stderr, "%s translate: input %lld cut to %lld tokens (%s)\n", PROG,
                    (long long)i + 1, (long long)b.fam->source_cap(&b), b.fam->cap_reason);
        warn_unknown(b.sv, inputs[i], i + 1);
        const int64_t S = d.src_len[0];
        const int L = b.fam->decode_cap(&b, max_len > 0 ? (int)max_len : max_out_len(S));
        if ((size_t)L > out_cap) {
            int32_t *p = realloc(out_ids, (size_t)L * sizeof *p);
            if (!p) goto oom;
            out_ids = p;
            out_cap = (size_t)L;
        }
        if (want_align && (size_t)L * (size_t)S > align_cap) {
            float *p = realloc(align, (size_t)L * (size_t)S * sizeof *p);
            if (!p) goto oom;
            align = p;
            align_cap = (size_t)L * (size_t)S;
        }
        attn_ctx_reset(ctx);
        attn_s2s_batch batch;
        const int64_t zero = 0;
        attn_decode_config dc = {(int)beam, (float)alpha, L};
        if (attn_s2s_batch_make(ctx, &d, &zero, 1, &batch, NULL) != ATTN_OK ||
            b.fam->decode(ctx, &b, &batch, &dc, out_ids, &out_len, want_align ? align : NULL) != ATTN_OK) {
            /* This line only: say why, keep its place in the output, go on. */
            const char *e = attn_ctx_error(ctx);
            fprintf(stderr, "%s translate: input %lld (%lld tokens): %s\n", PROG, (long long)i + 1, (long long)S,
                    e && e[0] ? e : attn_last_error());
            if (attn_ctx_status(ctx) == ATTN_ERR_OOM)
                fprintf(stderr, "hint: raise --arena-mb (now %lld)\n", arena_mb);
            printf("\n");
            fflush(stdout);
            failed++;
            continue;
        }
        if (decode_text(b.tv, out_ids, out_len, &tb) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot decode the output");
            goto done;
        }
        printf("%s\n", tb.p);
        fflush(stdout);
        if (want_align && svg) {
            char path[4096];
            svg_name(path, sizeof path, svg, (int)i + 1, n_in > 1);
            if (write_svg(path, &b, inputs[i], tb.p, d.ids + d.src_off[0], S, out_ids, out_len, L, align))
                goto done;
            fprintf(stderr, "alignment map written to %s\n", path);
        }
        if (want_align && html) {
            char path[4096], wpath[4096];
            svg_name(path, sizeof path, html, (int)i + 1, n_in > 1);
            if (weights) svg_name(wpath, sizeof wpath, weights, (int)i + 1, n_in > 1);
            fflush(stdout);
            if (write_html(path, weights ? wpath : NULL, &b, inputs[i], tb.p, d.ids + d.src_off[0], S,
                           out_ids, out_len, L, align))
                goto done;
        }
    }
    if (failed) fprintf(stderr, "%s translate: %lld of %lld inputs not translated\n", PROG, (long long)failed,
                        (long long)n_in);
    rc = failed ? 1 : 0;
    goto done;
oom:
    fprintf(stderr, "%s translate: out of memory\n", PROG);
done:
    bundle_free(&b);
done_nomodel:
    attn_ctx_free(ctx);
    attn_s2s_data_free(&d);
    free(ib.ids);
    free(tb.p);
    free(out_ids);
    free(align);
    for (int64_t i = 0; i < n_lines; i++) free(lines[i]);
    free(lines);
    free(nul_at);
    free(texts);
    return rc;
}

/* ---- eval ------------------------------------------------------------------------------------ */

void s2s_eval_usage(const s2s_family *fam, FILE *f) {
    fprintf(f,
        "usage: %s eval --model DIR [--split valid|test] [--beam K] [--alpha A]\n"
        "                         [--limit N] [--json] [--min-exact X] [--min-align Y]\n"
        "                         [--show N] [--threads N] [--data DIR]\n\n"
        "Decodes a held-out split of the model's task and prints exact match, corpus BLEU\n"
        "(sacrebleu's 13a tokenisation), the character error rate and the decoding speed;\n"
        "for the date task with attention also the alignment accuracy: the fraction of\n"
        "output digits whose largest attention weight falls on the source characters of\n"
        "their date field.\n\n"
        "  --split S       valid or test (default test)\n"
        "  --beam K        beam width (default 1: greedy); --alpha A its length\n"
        "                  normalisation log p / len^A (default 0.6)\n"
        "  --limit N       the first N examples only\n"
        "  --json          one JSON object on standard output instead of text\n"
        "  --min-exact X   exit 1 when the exact match (0 to 1) is below X\n"
        "  --min-align Y   exit 1 when the alignment accuracy (0 to 1) is below Y\n"
        "                  (or when the model has none to measure)\n"
        "  --show N        print the first N examples with their outputs\n"
        "  --threads N     threads for the ops (default: all)\n"
        "  --data DIR      gettext data root (default data/gettext)\n", PROG);
    if (fam->align_help) fputs(fam->align_help, f);
}

int s2s_cmd_eval(const s2s_family *fam, int argc, char **argv) {
    const char *sub = "eval", *dir = NULL, *split_name = "test";
    const char *data_dir = getenv("ATTN_GETTEXT_DIR") && getenv("ATTN_GETTEXT_DIR")[0]
                               ? getenv("ATTN_GETTEXT_DIR")
                               : "data/gettext";
    long long beam = 1, limit = 0, threads = 0, show = 0, align_layer = -2;
    double alpha = 0.6, min_exact = -1.0, min_align = -1.0;
    int json = 0, rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (!strcmp(a, "--model")) rc = opt_str(sub, a, v, &dir);
        else if (!strcmp(a, "--split")) rc = opt_str(sub, a, v, &split_name);
        else if (!strcmp(a, "--data")) rc = opt_str(sub, a, v, &data_dir);
        else if (!strcmp(a, "--beam")) rc = opt_int(sub, a, v, 1, 256, &beam);
        else if (!strcmp(a, "--alpha")) rc = opt_real(sub, a, v, 0.0, 10.0, &alpha);
        else if (!strcmp(a, "--limit")) rc = opt_int(sub, a, v, 1, 1LL << 40, &limit);
        else if (!strcmp(a, "--show")) rc = opt_int(sub, a, v, 0, 1LL << 40, &show);
        else if (!strcmp(a, "--threads")) rc = opt_int(sub, a, v, 0, cli_max_threads(), &threads);
        else if (!strcmp(a, "--min-exact")) rc = opt_real(sub, a, v, 0.0, 1.0, &min_exact);
        else if (!strcmp(a, "--min-align")) rc = opt_real(sub, a, v, 0.0, 1.0, &min_align);
        else if (fam->align_help && !strcmp(a, "--align-layer")) rc = opt_int(sub, a, v, -1, 63, &align_layer);
        else rc = usage_error(sub, "unknown option '%s'", a);
    }
    if (rc) return rc;
    if (!dir) return usage_error(sub, "--model DIR is required");
    attn_data_split split;
    if (!strcmp(split_name, "valid")) split = ATTN_SPLIT_VALID;
    else if (!strcmp(split_name, "test")) split = ATTN_SPLIT_TEST;
    else return usage_error(sub, "--split '%s': expected valid or test", split_name);

    bundle b;
    if (bundle_load(fam, sub, dir, &b, NULL, 0.0f, 0.0f, 0)) return 1;
    eval_set es = {0};
    attn_ctx *ctx = NULL;
    rc = 1;
    if (set_align_layer(sub, &b, align_layer)) goto done;
    if (eval_set_load(sub, &b.info, data_dir, split, &es)) goto done;
    attn_ctx_config cc = {0};
    cc.n_threads = (int)threads;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    eval_out ev;
    if (evaluate(sub, ctx, &b, &es, limit, (int)beam, (float)alpha, (int)show, json ? NULL : stdout, &ev))
        goto done;
    attn_bleu_score bs;
    attn_eval_bleu(&ev.ev, &bs);
    const double em = attn_eval_exact_match(&ev.ev), al = eval_align(&ev);
    const double tps = ev.seconds > 0 ? (double)ev.out_tokens / ev.seconds : 0.0;
    const char *task = b.info.dates ? "dates" : "gettext";
    if (json) {
        const attn_json_field f[] = {
            attn_json_str("model", dir),
            attn_json_str("task", task),
            attn_json_str("lang", b.info.lang),
            attn_json_str("attention", b.fam->kind(&b)),
            attn_json_str("split", split_name),
            attn_json_int("n", ev.ev.n),
            attn_json_int("beam", beam),
            attn_json_num("exact_match", em),
            attn_json_num("bleu", bs.score),
            attn_json_num("cer", attn_eval_cer(&ev.ev)),
            attn_json_num("align_acc", al),
            attn_json_int("align_digits", ev.digits),
            attn_json_num("decode_tokens_per_s", tps),
            attn_json_num("decode_seconds", ev.seconds),
            attn_json_int("threads", attn_ctx_threads(ctx)),
            attn_json_int("step", b.info.step),
        };
        char *line = NULL;
        if (attn_json_record(f, (int)(sizeof f / sizeof f[0]), &line) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot format the result");
            goto done;
        }
        printf("%s\n", line);
        free(line);
    } else {
        printf("%s %s (%s, step %lld): %lld examples\n", task, split_name,
               b.fam->kind(&b), (long long)b.info.step, (long long)ev.ev.n);
        printf("exact match      %.2f%% (%lld of %lld)\n", 100.0 * em, (long long)ev.ev.exact,
               (long long)ev.ev.n);
        printf("BLEU             %.2f (1-4 gram precisions %.1f/%.1f/%.1f/%.1f, brevity %.3f)\n",
               bs.score, bs.precision[0], bs.precision[1], bs.precision[2], bs.precision[3], bs.bp);
        printf("CER              %.2f%%\n", 100.0 * attn_eval_cer(&ev.ev));
        if (isfinite(al))
            printf("alignment        %.2f%% of %lld output digits attend most to their date field\n",
                   100.0 * al, (long long)ev.digits);
        if (ev.cut) printf("note: %lld sources were cut to %lld tokens (%s)\n",
                           (long long)ev.cut, (long long)b.fam->source_cap(&b), b.fam->cap_reason);
        printf("decoding         %.0f tokens/s (%s, threads: %d, %.2f s)\n", tps,
               beam > 1 ? "beam search" : "greedy", attn_ctx_threads(ctx), ev.seconds);
    }
    rc = 0;
    if (min_exact >= 0 && em < min_exact) {
        fprintf(stderr, "%s eval: exact match %.4f is below --min-exact %.4f\n", PROG, em, min_exact);
        rc = 1;
    }
    if (min_align >= 0 && !(al >= min_align)) {
        if (isfinite(al))
            fprintf(stderr, "%s eval: alignment accuracy %.4f is below --min-align %.4f\n", PROG,
                    al, min_align);
        else
            fprintf(stderr, "%s eval: --min-align: no alignment accuracy for this model "
                            "(it needs the date task and an attention other than none)\n", PROG);
        rc = 1;
    }
done:
    attn_ctx_free(ctx);
    eval_set_free(&es);
    bundle_free(&b);
    return rc;
}
