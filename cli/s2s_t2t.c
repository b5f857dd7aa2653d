/* s2s_t2t.c: the encoder-decoder Transformer's family of `attn transformer`
 * (include/attn/transformer_s2s.h): its options, checkpoint metadata,
 * creation, loss, decoder and description. The contract is s2s_family in
 * cli/s2s.h; docs/transformer_s2s.md is the manual. */
#include <stdio.h>
#include <string.h>

#include "s2s.h"

static int parse_opt(s2s_opts *o, char **argv, int argc, int *i, int *rc) {
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL, *sub = "train";
    /* 0|1 options; the bare form (the old spelling) is 1 */
    if (!strcmp(a, "--pre-ln") || !strcmp(a, "--tie")) {
        char prog[64];
        snprintf(prog, sizeof prog, "%s train", s2s_prog);
        *rc = train_opt_bool(prog, argv, argc, i, !strcmp(a, "--tie") ? &o->tie : &o->pre_ln);
        return 1;
    }
    if (!strcmp(a, "--d-model")) *rc = opt_int(sub, a, v, 1, 65536, &o->d_model);
    else if (!strcmp(a, "--heads")) *rc = opt_int(sub, a, v, 1, 1024, &o->heads);
    else if (!strcmp(a, "--kv-heads")) *rc = opt_int(sub, a, v, 0, 1024, &o->kv_heads);
    else if (!strcmp(a, "--enc-layers")) *rc = opt_int(sub, a, v, 1, 16, &o->enc_layers);
    else if (!strcmp(a, "--dec-layers")) *rc = opt_int(sub, a, v, 1, 16, &o->dec_layers);
    else if (!strcmp(a, "--d-ff")) *rc = opt_int(sub, a, v, 1, 1 << 20, &o->d_ff);
    else if (!strcmp(a, "--activation")) *rc = opt_str(sub, a, v, &o->activation);
    else if (!strcmp(a, "--pos")) *rc = opt_str(sub, a, v, &o->pos);
    else if (!strcmp(a, "--shaw-clip")) *rc = opt_int(sub, a, v, 1, 1 << 16, &o->shaw_clip);
    else if (!strcmp(a, "--align-layer")) *rc = opt_int(sub, a, v, -1, 15, &o->align_layer);
    else return 0;
    (*i)++;
    return 1;
}

static int check_opts(s2s_opts *o, int dates) {
    attn_pos_kind pk;
    if (pos_parse(o->pos, &pk) != 0)
        return usage_error("train", "--pos '%s': expected sinusoidal, learned, rope, alibi, shaw or none", o->pos);
    if (strcmp(o->activation, "relu") && strcmp(o->activation, "gelu"))
        return usage_error("train", "--activation '%s': expected relu or gelu", o->activation);
    if (o->d_model < 0) o->d_model = dates ? 64 : 128;
    if (o->d_ff < 0) o->d_ff = 4 * o->d_model;
    if (o->dropout < 0) o->dropout = dates ? 0.0 : 0.1;
    if (o->align_layer >= (o->dec_layers > 0 ? o->dec_layers : o->layers))
        return usage_error("train", "--align-layer %lld: the decoder has %lld layers", o->align_layer,
                           o->dec_layers > 0 ? o->dec_layers : o->layers);
    return 0;
}

static void config(const s2s_opts *o, bundle *b) {
    attn_seq2seq_config *c = &b->cfg;
    c->attention = ATTN_S2S_NONE; /* unused: the Transformer's attention is its own */
    attn_t2t_config *t = &b->tcfg;
    memset(t, 0, sizeof *t);
    t->src_vocab = c->src_vocab;
    t->tgt_vocab = c->tgt_vocab;
    t->d_model = o->d_model;
    t->n_heads = (int)o->heads;
    t->n_kv_heads = (int)o->kv_heads;
    t->enc_layers = t->dec_layers = (int)o->layers;
    if (o->enc_layers > 0) t->enc_layers = (int)o->enc_layers;
    if (o->dec_layers > 0) t->dec_layers = (int)o->dec_layers;
    t->d_ff = o->d_ff;
    t->dropout = c->dropout;
    t->norm_first = o->pre_ln;
    t->activation = strcmp(o->activation, "gelu") == 0 ? ATTN_ACT_GELU : ATTN_ACT_RELU;
    pos_parse(o->pos, &t->pos);
    t->shaw_clip = (int)o->shaw_clip;
    t->max_len = 0; /* learned positions: set from the longest source (fit_sources) */
    t->tie_output = o->tie;
    t->pad_id = c->pad_id;
    t->bos_id = c->bos_id;
    t->eos_id = c->eos_id;
    b->align_layer = (int)o->align_layer;
}

/* learned positions: room for the longest source and for decoding it */
static void fit_sources(bundle *b) {
    if (b->tcfg.pos == ATTN_POS_LEARNED) b->tcfg.max_len = max_out_len(b->cfg.max_src_len - 1);
}

static attn_status create(bundle *b, attn_rng *rng) { return attn_t2t_new(&b->t2t, b->ps, &b->tcfg, rng); }

static attn_tensor *loss(attn_ctx *ctx, const bundle *b, const attn_s2s_batch *batch, float label_smoothing) {
    return attn_t2t_loss(ctx, b->t2t, batch, label_smoothing, NULL);
}

static attn_status decode(attn_ctx *ctx, const bundle *b, const attn_s2s_batch *batch,
                          const attn_decode_config *dc, int32_t *out_ids, int32_t *out_len, float *align) {
    const attn_t2t_align how = {b->align_layer};
    return attn_t2t_decode(ctx, b->t2t, batch, dc, &how, out_ids, out_len, align, NULL);
}

static const char *kind(const bundle *b) {
    (void)b;
    return "transformer";
}

static const char *cell_name(const bundle *b) { return attn_pos_kind_name(b->tcfg.pos); }

static void meta_write(meta_list *m, const bundle *b) {
    const attn_t2t_config *t = &b->tcfg;
    meta_put(m, "d_model", "%lld", (long long)t->d_model);
    meta_put(m, "heads", "%d", t->n_heads);
    meta_put(m, "kv_heads", "%d", t->n_kv_heads);
    meta_put(m, "enc_layers", "%d", t->enc_layers);
    meta_put(m, "dec_layers", "%d", t->dec_layers);
    meta_put(m, "d_ff", "%lld", (long long)t->d_ff);
    meta_put(m, "norm_first", "%d", t->norm_first);
    meta_put(m, "activation", "%s", t->activation == ATTN_ACT_GELU ? "gelu" : "relu");
    meta_put(m, "pos", "%s", attn_pos_kind_name(t->pos));
    meta_put(m, "shaw_clip", "%d", t->shaw_clip);
    meta_put(m, "rope_theta", "%.9g", (double)t->rope_theta);
    meta_put(m, "max_pos", "%lld", (long long)t->max_len);
    meta_put(m, "tie_output", "%d", t->tie_output);
    meta_put(m, "align_layer", "%d", b->align_layer);
}

static void meta_read(meta_reader *m, bundle *b) {
    attn_seq2seq_config *c = &b->cfg;
    attn_t2t_config *t = &b->tcfg;
    t->src_vocab = c->src_vocab;
    t->tgt_vocab = c->tgt_vocab;
    t->dropout = c->dropout;
    t->pad_id = c->pad_id;
    t->bos_id = c->bos_id;
    t->eos_id = c->eos_id;
    t->d_model = meta_ll(m, "d_model", 1, 1 << 20);
    t->n_heads = (int)meta_ll(m, "heads", 1, 1 << 10);
    t->n_kv_heads = (int)meta_ll(m, "kv_heads", 0, 1 << 10);
    t->enc_layers = (int)meta_ll(m, "enc_layers", 1, 64);
    t->dec_layers = (int)meta_ll(m, "dec_layers", 1, 64);
    t->d_ff = meta_ll(m, "d_ff", 1, 1 << 22);
    t->norm_first = (int)meta_ll(m, "norm_first", 0, 1);
    t->activation = strcmp(meta_str(m, "activation"), "gelu") == 0 ? ATTN_ACT_GELU : ATTN_ACT_RELU;
    const char *pos = meta_str(m, "pos");
    if (pos_parse(pos, &t->pos) != 0 && !m->err[0])
        snprintf(m->err, sizeof m->err, "%s: metadata pos = '%s' is unknown", m->path, pos);
    t->shaw_clip = (int)meta_ll(m, "shaw_clip", 0, 1 << 20);
    t->rope_theta = (float)meta_real(m, "rope_theta", 0.0, 1e12);
    t->max_len = meta_ll(m, "max_pos", 0, 1 << 30);
    t->tie_output = (int)meta_ll(m, "tie_output", 0, 1);
    b->align_layer = (int)meta_ll(m, "align_layer", -1, 63);
    c->attention = ATTN_S2S_NONE; /* unused: the Transformer's attention is its own */
}

static void describe(const bundle *b, char *desc, size_t n) {
    const run_info *r = &b->info;
    const attn_t2t_config *tc = &b->tcfg;
    snprintf(desc, n,
             "%s%s: Transformer, d_model %lld, heads %d (kv %d), layers %d+%d, d_ff %lld, "
             "%s, %s positions, %s%s; %s vocabularies %d -> %d tokens; %lld parameters",
             r->dates ? "dates" : "gettext en-", r->dates ? "" : r->lang, (long long)tc->d_model, tc->n_heads,
             tc->n_kv_heads ? tc->n_kv_heads : tc->n_heads, tc->enc_layers, tc->dec_layers, (long long)tc->d_ff,
             tc->norm_first ? "pre-LN" : "post-LN", attn_pos_kind_name(tc->pos),
             tc->activation == ATTN_ACT_GELU ? "gelu" : "relu", tc->tie_output ? ", tied output" : "",
             tok_name(r->tok), attn_vocab_size(b->sv), attn_vocab_size(b->tv), (long long)attn_params_numel(b->ps));
}

static void map_title(const bundle *b, char *buf, size_t n) {
    if (b->align_layer < 0)
        snprintf(buf, n, "cross-attention (mean of %d layers x %d heads)", b->tcfg.dec_layers, b->tcfg.n_heads);
    else
        snprintf(buf, n, "cross-attention (layer %d, mean of %d heads)", b->align_layer, b->tcfg.n_heads);
}

/* Learned positions: a table of tcfg.max_len. */
static int64_t source_cap(const bundle *b) { return b->tcfg.pos == ATTN_POS_LEARNED ? b->tcfg.max_len : 0; }

static int decode_cap(const bundle *b, int L) {
    if (b->tcfg.pos == ATTN_POS_LEARNED && b->tcfg.max_len > 0 && L > b->tcfg.max_len) return (int)b->tcfg.max_len;
    return L;
}

static int has_attention(const bundle *b) {
    (void)b;
    return 1;
}

static int align_layers(const bundle *b) { return b->tcfg.dec_layers; }

const s2s_family s2s_t2t = {
    .cmd = "transformer",
    .prog = "attn transformer",
    .meta_model = "attn-transformer",
    .usage = "usage: attn transformer <train|translate|eval> [options]\n\n"
             "  train       train an encoder-decoder Transformer on dates or gettext pairs\n"
             "              (the data, splits and schedule of 'attn seq2seq')\n"
             "  translate   translate texts with a trained model, optionally drawing its\n"
             "              cross-attention map (SVG)\n"
             "  eval        exact match, BLEU, alignment accuracy and speed on a held-out split\n\n"
             "'attn transformer <command> --help' describes each; docs/transformer_s2s.md\n"
             "has the details. 'attn viz' draws every layer's and head's attention.\n",
    .train_intro = "usage: attn transformer train --task dates|gettext [--lang de|fr] --out DIR [options]\n\n"
                   "Trains an encoder-decoder Transformer (teacher forcing, AdamW with linear warmup\n"
                   "and cosine decay, gradients clipped to norm 1) on the data, splits and schedule of\n"
                   "'attn seq2seq train', then prints the greedy exact match (and BLEU for gettext,\n"
                   "alignment accuracy of the cross-attention for dates) on the test split.\n\n",
    .model_help = "model:\n"
                  "  --d-model E            model width (default 64; gettext 128)\n"
                  "  --heads H              attention heads (default 4)\n"
                  "  --kv-heads K           key/value heads, grouped-query attention (default: H)\n"
                  "  --layers L             encoder and decoder layers (default 2)\n"
                  "  --enc-layers L, --dec-layers L   each side on its own\n"
                  "  --d-ff F               feed-forward width (default 4 E)\n"
                  "  --pre-ln 0|1           pre-LN blocks and final norms (default 1); 0: post-LN\n"
                  "                         (a bare --pre-ln is --pre-ln 1)\n"
                  "  --activation relu|gelu feed-forward activation (default relu)\n"
                  "  --pos KIND             sinusoidal|learned|rope|alibi|shaw|none (default sinusoidal)\n"
                  "  --shaw-clip K          Shaw relative positions' clipping distance (default 8)\n"
                  "  --tie 0|1              output layer tied to the target embedding (default 0; a\n"
                  "                         bare --tie is --tie 1)\n"
                  "  --dropout P            embeddings, attention weights, residual branches and the\n"
                  "                         feed-forward hidden layer (default 0; gettext 0.1)\n"
                  "  --align-layer N        decoder layer whose cross-attention (averaged over heads)\n"
                  "                         is the alignment; -1: the mean over layers (default -1)\n",
    .align_help = "  --align-layer N  decoder layer whose cross-attention (averaged over heads)\n"
                  "                 is the alignment; -1: the mean over layers (default: the\n"
                  "                 model's, set at training). 'attn viz' draws every layer and head.\n",
    .cap_reason = "the learned position table",
    .default_layers = 2,
    .parse_opt = parse_opt,
    .check_opts = check_opts,
    .config = config,
    .fit_sources = fit_sources,
    .create = create,
    .loss = loss,
    .decode = decode,
    .kind = kind,
    .cell_name = cell_name,
    .meta_write = meta_write,
    .meta_read = meta_read,
    .describe = describe,
    .map_title = map_title,
    .source_cap = source_cap,
    .decode_cap = decode_cap,
    .has_attention = has_attention,
    .align_layers = align_layers,
};
