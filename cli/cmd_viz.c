/* cmd_viz.c: the pictures of `attn viz` (the command itself, its options and
 * the encoder-decoder Transformer's maps are in cmd_seq2seq.c): the layers x
 * heads grid of one set of attention maps, and the self-attention of a GPT
 * (attn gpt train) or BERT (attn bert pretrain|finetune) checkpoint for one
 * input text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "commands.h"

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

int cli_viz_lm(const char *dir, const char *kind, const char *prefix, const char *text, int threads) {
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
    snprintf(out, sizeof out, "%s-%s.svg", prefix, gpt ? "decoder" : "encoder");
    snprintf(title, sizeof title, "%s self-attention%s: \"%s\"", gpt ? "GPT" : "BERT",
             gpt ? " (causal)" : "", a);
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
