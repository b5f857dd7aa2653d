/* cmd_viz.c: `attn viz`: every layer's and head's attention of a model for
 * one input, as an interactive page (--html: the attention explorer,
 * include/attn/explorer.h; the cli_page helpers here serve every command's
 * --html) or as SVG grids: the layers x heads grid of one set of attention
 * maps; the encoder, decoder and cross-attention of an encoder-decoder
 * Transformer (attn transformer train; its model comes through the
 * Transformer's family, cli/s2s.h); the self-attention of a GPT (attn gpt
 * train) or BERT (attn bert pretrain|finetune) checkpoint; a checkpoint of
 * attn lm train goes to attn lm viz (cli/cmd_lm.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "commands.h"
#include "s2s.h"

#define CMD s2s_cmd

/* The weights of head h of a [1, H, R, C] tensor into dst [R, C]. */
static void viz_copy(const attn_tensor *w, int64_t h, float *dst) {
    const int64_t R = w->shape[2], C = w->shape[3];
    const float *base = (const float *)w->data;
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++)
            dst[r * C + c] = base[h * w->stride[1] + r * w->stride[2] + c * w->stride[3]];
}

int cli_viz_grid(const char *path, const char *title, attn_tensor *const *maps, int L, int64_t H,
                 const char *const *rl, const char *const *cl) {
    if ((int64_t)L * H > 64) {
        fprintf(stderr, "attn viz: %s: %d layers x %lld heads is more than 64 panels\n", path, L,
                (long long)H);
        return 1;
    }
    const int64_t R = maps[0]->shape[2], C = maps[0]->shape[3];
    attn_heatmap *hm = calloc((size_t)(L * H), sizeof *hm);
    float *buf = malloc(sizeof(float) * (size_t)(L * H * R * C));
    char(*caps)[48] = calloc((size_t)(L * H), sizeof *caps);
    int rc = 1;
    if (!hm || !buf || !caps) {
        fprintf(stderr, "attn viz: out of memory\n");
        goto out;
    }
    for (int l = 0; l < L; l++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t k = l * H + h;
            viz_copy(maps[l], h, buf + k * R * C);
            snprintf(caps[k], sizeof caps[k], "layer %d, head %lld", l, (long long)h);
            hm[k].weights = buf + k * R * C;
            hm[k].rows = (int)R;
            hm[k].cols = (int)C;
            hm[k].row_labels = rl;
            hm[k].col_labels = cl;
            hm[k].title = caps[k];
            hm[k].colormap = ATTN_CMAP_BLUES;
        }
    if (attn_svg_heatmap_grid(path, title, hm, L, (int)H) != ATTN_OK) {
        rc = cli_fail("viz", "cannot write the picture");
        goto out;
    }
    printf("%s\n", path);
    rc = 0;
out:
    free(hm);
    free(buf);
    free(caps);
    return rc;
}

/* ---- the explorer page (--html) ------------------------------------------------------------ */

static int page_slot(cli_page *p, const char *cmd, const char *name, int L, int64_t H, int64_t R,
                     int64_t C) {
    if (p->n >= ATTN_EXPLORER_MAX_MAPS) {
        fprintf(stderr, "attn %s: more than %d maps for one page\n", cmd, ATTN_EXPLORER_MAX_MAPS);
        return -1;
    }
    if (L < 1 || L > ATTN_EXPLORER_MAX_LAYERS || H < 1 || H > ATTN_EXPLORER_MAX_HEADS || R < 1 ||
        R > ATTN_EXPLORER_MAX_TOKENS || C < 1 || C > ATTN_EXPLORER_MAX_TOKENS) {
        fprintf(stderr, "attn %s: %s: %d layers, %lld heads, %lld x %lld tokens do not fit a page "
                        "(at most %d layers, %d heads, %d tokens a side)\n", cmd, name, L,
                (long long)H, (long long)R, (long long)C, ATTN_EXPLORER_MAX_LAYERS,
                ATTN_EXPLORER_MAX_HEADS, ATTN_EXPLORER_MAX_TOKENS);
        return -1;
    }
    const int k = p->n;
    p->w[k] = malloc(sizeof(float) * (size_t)L * (size_t)H * (size_t)R * (size_t)C);
    if (!p->w[k]) {
        fprintf(stderr, "attn %s: out of memory\n", cmd);
        return -1;
    }
    p->n++;
    return k;
}

static int page_finish(cli_page *p, const char *cmd, int k, const char *name,
                       attn_explorer_kind kind, int L, int64_t H, int64_t R, int64_t C,
                       const char *const *rl, const char *const *cl, const char *row_axis,
                       const char *col_axis, int64_t causal) {
    attn_explorer_map *m = &p->maps[k];
    memset(m, 0, sizeof *m);
    m->name = name;
    m->kind = kind;
    m->layers = L;
    m->heads = (int)H;
    m->rows = (int)R;
    m->cols = (int)C;
    m->weights = p->w[k];
    m->row_labels = rl;
    m->col_labels = cl;
    m->row_axis = row_axis;
    m->col_axis = col_axis;
    if (causal >= 0) {
        p->mask[k] = malloc((size_t)R * (size_t)C);
        if (!p->mask[k]) {
            fprintf(stderr, "attn %s: out of memory\n", cmd);
            return 1;
        }
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < C; c++) p->mask[k][r * C + c] = c <= r + causal;
        m->mask = p->mask[k];
        m->mask_name = "causal";
    }
    return 0;
}

int cli_page_add(cli_page *p, const char *cmd, const char *name, attn_explorer_kind kind,
                 attn_tensor *const *maps, int L, const char *const *rl, const char *const *cl,
                 const char *row_axis, const char *col_axis, int64_t causal) {
    const int64_t H = maps[0]->shape[1], R = maps[0]->shape[2], C = maps[0]->shape[3];
    const int k = page_slot(p, cmd, name, L, H, R, C);
    if (k < 0) return 1;
    for (int l = 0; l < L; l++)
        for (int64_t h = 0; h < H; h++) viz_copy(maps[l], h, p->w[k] + (l * H + h) * R * C);
    return page_finish(p, cmd, k, name, kind, L, H, R, C, rl, cl, row_axis, col_axis, causal);
}

int cli_page_add_floats(cli_page *p, const char *cmd, const char *name, attn_explorer_kind kind,
                        const float *w, int L, int64_t H, int64_t R, int64_t C,
                        const char *const *rl, const char *const *cl, const char *row_axis,
                        const char *col_axis, int64_t causal) {
    const int k = page_slot(p, cmd, name, L, H, R, C);
    if (k < 0) return 1;
    memcpy(p->w[k], w, sizeof(float) * (size_t)L * (size_t)H * (size_t)R * (size_t)C);
    return page_finish(p, cmd, k, name, kind, L, H, R, C, rl, cl, row_axis, col_axis, causal);
}

void cli_page_free(cli_page *p) {
    for (int k = 0; k < p->n; k++) {
        free(p->w[k]);
        free(p->mask[k]);
    }
    memset(p, 0, sizeof *p);
}

int cli_page_write(cli_page *p, const char *cmd, const char *html, const char *weights,
                   const char *title, const char *subtitle, int quiet_stdout) {
    FILE *say = quiet_stdout ? stderr : stdout;
    attn_explorer_page page = {0};
    page.title = title;
    page.subtitle = subtitle;
    page.maps = p->maps;
    page.n_maps = p->n;
    /* ATTN_EXPLORER_DECIMALS=2|3 forces the precision (default automatic:
     * docs/explorer.md); the browser test uses it to cover both encodings */
    const char *dec = getenv("ATTN_EXPLORER_DECIMALS");
    if (dec && (!strcmp(dec, "2") || !strcmp(dec, "3"))) page.decimals = dec[0] - '0';
    int rc = 0;
    if (make_parent_dirs(html) != 0) {
        fprintf(stderr, "attn %s: cannot create the folder of %s: %s\n", cmd, html, strerror(errno));
        rc = 1;
    } else if (attn_explorer_write(html, &page) != ATTN_OK) {
        rc = cli_fail(cmd, "cannot write the explorer page");
    } else {
        fprintf(say, "%s%s\n", quiet_stdout ? "explorer page written to " : "", html);
        if (weights) {
            if (make_parent_dirs(weights) != 0) {
                fprintf(stderr, "attn %s: cannot create the folder of %s: %s\n", cmd, weights,
                        strerror(errno));
                rc = 1;
            } else if (attn_explorer_write_weights(weights, &page) != ATTN_OK) {
                rc = cli_fail(cmd, "cannot write the weights");
            } else {
                fprintf(say, "%s%s\n", quiet_stdout ? "weights written to " : "", weights);
            }
        }
    }
    cli_page_free(p);
    return rc;
}

/* The first 50 bytes of s (not cutting a UTF-8 sequence), "..." when cut. */
static void clip50(char *buf, size_t cap, const char *s) {
    size_t max = 50;
    if (strlen(s) <= max) {
        snprintf(buf, cap, "%s", s);
        return;
    }
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
    snprintf(buf, cap, "%.*s...", (int)max, s);
}

int cli_viz_lm(const char *dir, const char *kind, const char *prefix, const char *text, int threads,
               const char *html, const char *weights) {
    const int gpt = !strcmp(kind, "attn-gpt");
    char path[4096];
    attn_vocab *vocab = NULL;
    attn_params *ps = NULL;
    attn_gpt *g = NULL;
    attn_bert *bm = NULL;
    attn_ctx *ctx = NULL;
    int32_t *ids = NULL;
    const char **labels = NULL;
    attn_tensor *maps[64];
    int rc = 1;
    snprintf(path, sizeof path, "%s/vocab", dir);
    if (attn_vocab_load(path, &vocab) != ATTN_OK) {
        rc = cli_fail("viz", "cannot load the vocabulary");
        goto done;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (attn_params_new(&ps) != ATTN_OK ||
        (gpt ? attn_gpt_load(path, ps, &g) : attn_bert_load(path, ps, &bm)) != ATTN_OK) {
        rc = cli_fail("viz", "cannot load the model");
        goto done;
    }
    const int L = gpt ? g->cfg.n_layers : bm->cfg.n_layers;
    const int64_t H = gpt ? g->cfg.n_heads : bm->cfg.n_heads;
    const int64_t max_T = gpt ? g->cfg.ctx_len : bm->cfg.max_len;
    if (L > 64) {
        fprintf(stderr, "attn viz: %s: %d layers x %lld heads is more than 64 panels\n", dir, L,
                (long long)H);
        goto done;
    }
    /* The tokens: TEXT's ids (GPT), or [CLS] and TEXT's ids (BERT). */
    const size_t len = strlen(text);
    size_t n = 0;
    const int64_t first = gpt ? 0 : 1;
    ids = malloc(sizeof(int32_t) * (len + 1));
    if (!ids) goto oom;
    if (attn_vocab_encode(vocab, text, len, ids + first, len, &n) != ATTN_OK) {
        rc = cli_fail("viz", "cannot encode the input");
        goto done;
    }
    if (!gpt) ids[0] = ATTN_BERT_CLS;
    const int64_t T = first + (int64_t)n;
    if (T < 1 || T > max_T || T > ATTN_VIZ_MAX_TOKENS) {
        fprintf(stderr, "attn viz: the input is %lld tokens%s; the model reads 1 to %lld\n",
                (long long)T, gpt ? "" : " with [CLS]", (long long)max_T);
        goto done;
    }
    labels = malloc(sizeof *labels * (size_t)T);
    if (!labels) goto oom;
    for (int64_t t = 0; t < T; t++)
        labels[t] = !gpt && t == 0 ? "[CLS]" : attn_vocab_piece(vocab, ids[t]);
    attn_ctx_config cc = {0};
    cc.n_threads = threads;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail("viz", "cannot create the context");
        goto done;
    }
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    attn_tensor *it = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, T}, ids);
    if (!(gpt ? attn_gpt_logits_ex(ctx, g, it, NULL, maps) : attn_bert_encode_ex(ctx, bm, it, NULL, maps))) {
        rc = cli_fail("viz", "the forward pass failed");
        goto done;
    }
    char a[160], title[512], out[4096];
    clip50(a, sizeof a, text);
    snprintf(title, sizeof title, "%s self-attention%s: \"%s\"", gpt ? "GPT" : "BERT",
             gpt ? " (causal)" : "", a);
    if (html) {
        cli_page page = {0};
        char sub[256];
        snprintf(sub, sizeof sub, "%s: %d layers, %lld heads, d_model %lld; %lld tokens", dir, L,
                 (long long)H, (long long)(gpt ? g->cfg.d_model : bm->cfg.d_model), (long long)T);
        if (cli_page_add(&page, "viz", gpt ? "decoder self-attention" : "encoder self-attention",
                         ATTN_EXPLORER_SELF, maps, L, labels, labels, "query", "key", gpt ? 0 : -1)) {
            cli_page_free(&page);
            goto done;
        }
        rc = cli_page_write(&page, "viz", html, weights, title, sub, 0);
        if (rc || !prefix) goto done;
    }
    snprintf(out, sizeof out, "%s-%s.svg", prefix, gpt ? "decoder" : "encoder");
    rc = cli_viz_grid(out, title, maps, L, H, labels, labels);
    goto done;
oom:
    fprintf(stderr, "attn viz: out of memory\n");
done:
    attn_ctx_free(ctx);
    attn_gpt_free(g);
    attn_bert_free(bm);
    attn_params_free(ps);
    attn_vocab_free(vocab);
    free(ids);
    free(labels);
    return rc;
}

/* ---- viz: every layer's and head's attention of a Transformer ------------------------------ */

static void viz_usage(FILE *f) {
    fprintf(f,
        "usage: attn viz --model DIR [--out PREFIX] [--html FILE] [--weights FILE]\n"
        "                [--target TEXT] [--beam K] [--alpha A] [--threads N] TEXT\n\n"
        "Draws the attention of every layer and head of the model in DIR for one input\n"
        "TEXT, as SVG grids (one row per layer, one column per head, tokens on both axes,\n"
        "all on the colour scale [0, 1]). The checkpoint's metadata says which model it is:\n"
        "  encoder-decoder Transformer ('attn transformer train'), three grids:\n"
        "    PREFIX-encoder.svg  encoder self-attention (source x source)\n"
        "    PREFIX-decoder.svg  decoder self-attention (output step x decoder input, causal)\n"
        "    PREFIX-cross.svg    cross-attention (output step x source)\n"
        "  The output is the model's translation of TEXT (greedy, or beam search of width\n"
        "  K), or TEXT's reference given with --target; the maps come from one teacher-\n"
        "  forced pass over it (row t is the step that emits output token t, the last row\n"
        "  the <eos> step).\n"
        "  GPT ('attn gpt train'): PREFIX-decoder.svg, the causal self-attention over\n"
        "  TEXT's tokens (query x key; the upper triangle is empty).\n"
        "  BERT ('attn bert pretrain|finetune'): PREFIX-encoder.svg, the self-attention\n"
        "  over [CLS] and TEXT's tokens.\n"
        "  Byte-level LM ('attn lm train'): as 'attn lm viz --text TEXT': PREFIX-memory.svg\n"
        "  (a Transformer-XL: the last segment's queries over its memory and segment keys)\n"
        "  and, with an adaptive span, PREFIX-spans.svg (the learned spans).\n\n"
        "  --out PREFIX   file name prefix (default attn-viz; missing folders are created)\n"
        "  --html FILE    write the interactive attention explorer instead: one self-\n"
        "                 contained page with a head view, a model view (every layer x\n"
        "                 head, click to enlarge) and the exact weights on hover, every\n"
        "                 map of the model in tabs (docs/explorer.md); the SVG grids too\n"
        "                 only when --out is given\n"
        "  --weights FILE with --html: every weight at full precision as text\n"
        "                 (map, layer, head, row, col, weight; tab-separated)\n"
        "  --target TEXT  draw the maps for this output instead of the model's (Transformer)\n"
        "  --beam K, --alpha A   decoding as 'attn transformer translate' (Transformer)\n"
        "  --threads N    threads for the ops (default: all)\n");
}

int cmd_viz(int argc, char **argv) {
    const char *sub = "viz", *dir = NULL, *prefix = NULL, *target = NULL, *text = NULL;
    const char *html = NULL, *weights = NULL;
    long long beam = 1, threads = 0;
    double alpha = 0.6;
    int rc = 0;
    s2s_cmd = "viz";
    s2s_prog = "attn";
    if (cli_wants_help(argc, argv)) {
        viz_usage(stdout);
        return 0;
    }
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            if (text) rc = usage_error(sub, "one TEXT only ('%s' and '%s')", text, a);
            text = a;
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (!strcmp(a, "--model")) rc = opt_str(sub, a, v, &dir);
        else if (!strcmp(a, "--out")) rc = opt_str(sub, a, v, &prefix);
        else if (!strcmp(a, "--html")) rc = opt_str(sub, a, v, &html);
        else if (!strcmp(a, "--weights")) rc = opt_str(sub, a, v, &weights);
        else if (!strcmp(a, "--target")) rc = opt_str(sub, a, v, &target);
        else if (!strcmp(a, "--beam")) rc = opt_int(sub, a, v, 1, 256, &beam);
        else if (!strcmp(a, "--alpha")) rc = opt_real(sub, a, v, 0.0, 10.0, &alpha);
        else if (!strcmp(a, "--threads")) rc = opt_int(sub, a, v, 0, cli_max_threads(), &threads);
        else rc = usage_error(sub, "unknown option '%s'", a);
    }
    if (!rc && !dir) rc = usage_error(sub, "--model DIR is required");
    if (!rc && (!text || !text[0])) rc = usage_error(sub, "a TEXT to draw the attention of is required");
    if (!rc && weights && !html) rc = usage_error(sub, "--weights goes with --html FILE");
    if (rc) return rc;
    if (!html && !prefix) prefix = "attn-viz";
    if (prefix && make_parent_dirs(prefix) != 0) { /* --out runs/maps/x: runs/maps is created */
        fprintf(stderr, "attn viz: cannot create the folder of %s: %s\n", prefix, strerror(errno));
        return 1;
    }
    {
        /* which model wrote the checkpoint: "model" (attn seq2seq / transformer) or
         * "run.model" (attn gpt / bert) in its metadata */
        char path[4096], kind[128] = "";
        dir_file(path, sizeof path, dir, "model.safetensors");
        attn_safetensors *f = NULL;
        if (!file_exists(path)) {
            fprintf(stderr, "attn viz: %s not found (train a model with 'attn transformer train', "
                            "'attn gpt train' or 'attn bert pretrain|finetune')\n", path);
            return 1;
        }
        if (attn_safetensors_open(&f, path) != ATTN_OK) return cli_fail(CMD, "cannot read the checkpoint");
        const char *model = attn_safetensors_metadata(f, "model");
        if (!model) model = attn_safetensors_metadata(f, "run.model");
        snprintf(kind, sizeof kind, "%s", model ? model : "");
        attn_safetensors_close(f);
        if (!strcmp(kind, "attn-seq2seq")) {
            fprintf(stderr, "attn viz: %s holds an RNN seq2seq model, which has one attention "
                            "map: draw it with 'attn seq2seq translate --model %s --svg FILE'\n",
                    dir, dir);
            return 1;
        }
        if (!strcmp(kind, "attn-gpt") || !strcmp(kind, "attn-bert-pretrain") ||
            !strcmp(kind, "attn-bert-finetune")) {
            if (target || beam != 1)
                return usage_error(sub, "--target and --beam are for encoder-decoder Transformers; "
                                        "%s holds a model of kind '%s'", dir, kind);
            return cli_viz_lm(dir, kind, prefix, text, (int)threads, html, weights);
        }
        if (!strcmp(kind, "attn-lm")) { /* attn lm train's GPT or Transformer-XL: attn lm viz */
            if (target || beam != 1)
                return usage_error(sub, "--target and --beam are for encoder-decoder Transformers; "
                                        "%s holds a model of attn lm train", dir);
            char nthreads[32];
            snprintf(nthreads, sizeof nthreads, "%lld", threads);
            char *lm_argv[16];
            int n = 0;
            lm_argv[n++] = "lm";
            lm_argv[n++] = "viz";
            lm_argv[n++] = "--model";
            lm_argv[n++] = (char *)dir;
            if (prefix) {
                lm_argv[n++] = "--out";
                lm_argv[n++] = (char *)prefix;
            }
            if (html) {
                lm_argv[n++] = "--html";
                lm_argv[n++] = (char *)html;
            }
            if (weights) {
                lm_argv[n++] = "--weights";
                lm_argv[n++] = (char *)weights;
            }
            lm_argv[n++] = "--text";
            lm_argv[n++] = (char *)text;
            lm_argv[n++] = "--threads";
            lm_argv[n++] = nthreads;
            lm_argv[n] = NULL;
            return cmd_lm(n, lm_argv);
        }
        if (strcmp(kind, "attn-transformer") != 0) {
            fprintf(stderr, "attn viz: %s: unknown model '%s' (metadata 'model' / 'run.model'); "
                            "viz draws checkpoints of attn transformer ('attn-transformer'), "
                            "attn gpt ('attn-gpt'), attn lm ('attn-lm') and attn bert ('attn-bert-pretrain', "
                            "'attn-bert-finetune')\n", path, kind[0] ? kind : "(missing)");
            return 1;
        }
    }
    bundle b;
    attn_ctx *ctx = NULL;
    attn_s2s_data d;
    attn_s2s_data_init(&d);
    id_buf ib = {0};
    int32_t *out_ids = NULL, *tgt = NULL, out_len = 0;
    const char **rl = NULL, **cl = NULL, **il = NULL;
    rc = 1;
    if (bundle_load(&s2s_t2t, sub, dir, &b, NULL, 0.0f, 0.0f, 0)) goto done_nomodel;
    attn_ctx_config cc = {0};
    cc.n_threads = (int)threads;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    d.pad_id = b.cfg.pad_id;
    d.bos_id = b.cfg.bos_id;
    d.eos_id = b.cfg.eos_id;
    int cut = 0;
    if (add_source(&d, &b, text, &ib, &cut) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot encode the input");
        goto done;
    }
    const int64_t S = d.src_len[0];
    const int L = b.fam->decode_cap(&b, max_out_len(S));
    out_ids = malloc(sizeof(int32_t) * (size_t)L);
    tgt = malloc(sizeof(int32_t) * (size_t)(L + strlen(target ? target : "") + 1));
    if (!out_ids || !tgt) goto oom;
    int64_t n_out = 0;
    if (target) {
        size_t n = 0;
        if (attn_vocab_encode(b.tv, target, strlen(target), tgt, (size_t)L + strlen(target), &n) !=
            ATTN_OK) {
            rc = cli_fail(CMD, "cannot encode the target");
            goto done;
        }
        n_out = (int64_t)n;
    } else {
        attn_ctx_reset(ctx);
        attn_s2s_batch batch;
        const int64_t zero = 0;
        attn_decode_config dc = {(int)beam, (float)alpha, L};
        if (attn_s2s_batch_make(ctx, &d, &zero, 1, &batch, NULL) != ATTN_OK ||
            b.fam->decode(ctx, &b, &batch, &dc, out_ids, &out_len, NULL) != ATTN_OK) {
            rc = cli_fail(CMD, "decoding failed");
            goto done;
        }
        memcpy(tgt, out_ids, sizeof(int32_t) * (size_t)out_len);
        n_out = out_len;
    }
    /* one teacher-forced pass over bos, y_0 .. y_{n-1}: rows emit y_0 .. y_{n-1}, eos */
    /* (ib.ids holds the encoded source: d's storage may move while adding) */
    if (attn_s2s_data_add_ids(&d, ib.ids, S, tgt, n_out) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot build the batch");
        goto done;
    }
    attn_ctx_reset(ctx);
    attn_s2s_batch batch;
    const int64_t one = 1;
    if (attn_s2s_batch_make(ctx, &d, &one, 1, &batch, NULL) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot build the batch");
        goto done;
    }
    const int Le = b.tcfg.enc_layers, Ld = b.tcfg.dec_layers;
    attn_tensor *enc[64], *dec[64], *crs[64];
    const attn_t2t_maps maps = {enc, dec, crs};
    if (Le > 64 || Ld > 64 || !attn_t2t_logits(ctx, b.t2t, &batch, &maps)) {
        rc = cli_fail(CMD, "the teacher-forced pass failed");
        goto done;
    }
    const int64_t T = n_out + 1;
    rl = malloc(sizeof *rl * (size_t)T);
    il = malloc(sizeof *il * (size_t)T);
    cl = malloc(sizeof *cl * (size_t)S);
    if (!rl || !il || !cl) goto oom;
    for (int64_t t = 0; t < T; t++) {
        rl[t] = t < n_out ? attn_vocab_piece(b.tv, tgt[t]) : "<eos>";
        il[t] = t == 0 ? "<bos>" : attn_vocab_piece(b.tv, tgt[t - 1]);
    }
    for (int64_t s = 0; s < S; s++) cl[s] = attn_vocab_piece(b.sv, d.ids[d.src_off[0] + s]);
    {
        text_buf tb = {0};
        if (decode_text(b.tv, tgt, (int32_t)n_out, &tb) != ATTN_OK) {
            free(tb.p);
            rc = cli_fail(CMD, "cannot decode the output");
            goto done;
        }
        printf("%s -> %s%s\n", text, tb.p, target ? " (given)" : "");
        char a[160], o[160], title[512], path[4096];
        clip_text(a, sizeof a, text, 50);
        clip_text(o, sizeof o, tb.p, 50);
        free(tb.p);
        const int64_t H = b.tcfg.n_heads;
        if (html) {
            cli_page page = {0};
            char subt[256];
            snprintf(title, sizeof title, "Transformer attention: \"%s\" -> \"%s\"", a, o);
            snprintf(subt, sizeof subt, "%s: %d encoder and %d decoder layers, %lld heads; %lld source "
                     "tokens, %lld output steps%s", dir, Le, Ld, (long long)H, (long long)S,
                     (long long)T, target ? " (the output given with --target)" : "");
            if (cli_page_add(&page, "viz", "encoder self-attention", ATTN_EXPLORER_SELF, enc, Le, cl,
                             cl, "source", "source", -1) ||
                cli_page_add(&page, "viz", "decoder self-attention", ATTN_EXPLORER_SELF, dec, Ld, rl,
                             il, "output step", "decoder input", 0) ||
                cli_page_add(&page, "viz", "cross-attention", ATTN_EXPLORER_CROSS, crs, Ld, rl, cl,
                             "output step", "source", -1)) {
                cli_page_free(&page);
                goto done;
            }
            page.maps[1].note = "row t is the step that emits output token t; it reads the decoder "
                                "inputs <bos>, y0 .. y(t-1) (causal)";
            if (cli_page_write(&page, "viz", html, weights, title, subt, 0)) goto done;
            if (!prefix) {
                rc = 0;
                goto done;
            }
        }
        snprintf(path, sizeof path, "%s-encoder.svg", prefix);
        snprintf(title, sizeof title, "encoder self-attention: \"%s\"", a);
        if (cli_viz_grid(path, title, enc, Le, H, cl, cl)) goto done;
        snprintf(path, sizeof path, "%s-decoder.svg", prefix);
        snprintf(title, sizeof title, "decoder self-attention (causal): \"%s\"", o);
        if (cli_viz_grid(path, title, dec, Ld, H, rl, il)) goto done;
        snprintf(path, sizeof path, "%s-cross.svg", prefix);
        snprintf(title, sizeof title, "cross-attention: \"%s\" -> \"%s\"", a, o);
        if (cli_viz_grid(path, title, crs, Ld, H, rl, cl)) goto done;
    }
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "attn viz: out of memory\n");
done:
    bundle_free(&b);
done_nomodel:
    attn_ctx_free(ctx);
    attn_s2s_data_free(&d);
    free(ib.ids);
    free(out_ids);
    free(tgt);
    free(rl);
    free(il);
    free(cl);
    return rc;
}
