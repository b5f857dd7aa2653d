/* s2s_rnn.c: the RNN encoder-decoder's family of `attn seq2seq`
 * (include/attn/seq2seq.h): its options, checkpoint metadata, creation,
 * loss, decoder and description. The contract is s2s_family in cli/s2s.h;
 * docs/seq2seq.md is the manual. */
#include <stdio.h>
#include <string.h>

#include "s2s.h"

static int parse_opt(s2s_opts *o, char **argv, int argc, int *i, int *rc) {
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL, *sub = "train";
    if (!strcmp(a, "--attention")) *rc = opt_str(sub, a, v, &o->attention);
    else if (!strcmp(a, "--cell")) *rc = opt_str(sub, a, v, &o->cell);
    else if (!strcmp(a, "--fusion")) *rc = opt_str(sub, a, v, &o->fusion);
    else if (!strcmp(a, "--emb")) *rc = opt_int(sub, a, v, 1, 65536, &o->emb);
    else if (!strcmp(a, "--hidden")) *rc = opt_int(sub, a, v, 1, 65536, &o->hidden);
    else if (!strcmp(a, "--bidir")) *rc = opt_int(sub, a, v, 0, 1, &o->bidir);
    else if (!strcmp(a, "--attn-dim")) *rc = opt_int(sub, a, v, 0, 65536, &o->attn_dim);
    else if (!strcmp(a, "--combine-dim")) *rc = opt_int(sub, a, v, 0, 65536, &o->combine_dim);
    else if (!strcmp(a, "--input-feed")) *rc = opt_int(sub, a, v, 0, 1, &o->input_feed);
    else if (!strcmp(a, "--window")) *rc = opt_int(sub, a, v, 0, 1000, &o->window);
    else if (!strcmp(a, "--loc-filters")) *rc = opt_int(sub, a, v, 1, 4096, &o->loc_filters);
    else if (!strcmp(a, "--loc-kernel")) *rc = opt_int(sub, a, v, 1, 4095, &o->loc_kernel);
    else if (!strcmp(a, "--dv3-window")) *rc = opt_int(sub, a, v, 0, 1000, &o->dv3_window);
    else if (!strcmp(a, "--dv3-key-rate")) *rc = opt_real(sub, a, v, 0.0, 1000.0, &o->dv3_key_rate);
    else return 0;
    (*i)++;
    return 1;
}

static int check_opts(s2s_opts *o, int dates) {
    attn_s2s_attention kind;
    if (attn_s2s_attention_parse(o->attention, &kind) != 0)
        return usage_error("train", "--attention '%s': expected none, bahdanau, dot, general, concat, "
                                    "location, cosine, local-m, local-p, location-sensitive or dv3",
                           o->attention);
    if (o->loc_kernel > 0 && o->loc_kernel % 2 == 0)
        return usage_error("train", "--loc-kernel %lld: expected an odd width (the convolution is "
                                    "centred on each source position)", o->loc_kernel);
    if (strcmp(o->cell, "gru") && strcmp(o->cell, "lstm") && strcmp(o->cell, "lstmn"))
        return usage_error("train", "--cell '%s': expected gru, lstm or lstmn", o->cell);
    if (strcmp(o->cell, "lstmn") == 0) {
        attn_s2s_fusion f;
        if (!o->fusion) o->fusion = "shallow";
        if (attn_s2s_fusion_parse(o->fusion, &f) != 0 || f == ATTN_S2S_FUSION_NONE)
            return usage_error("train", "--fusion '%s': expected shallow or deep", o->fusion);
        if (kind != ATTN_S2S_BAHDANAU)
            return usage_error("train",
                               "--cell lstmn: the LSTMN encoder-decoder uses Bahdanau's "
                               "inter-attention; --attention %s is not supported with it",
                               o->attention);
        if (o->bidir > 0)
            return usage_error("train", "--cell lstmn: the LSTMN encoder reads left to right "
                                        "(--bidir 0, the default with this cell)");
        if (o->layers != 1)
            return usage_error("train", "--cell lstmn: one LSTMN layer on each side (--layers 1), "
                                        "got --layers %lld", o->layers);
        o->bidir = 0;
    } else if (o->fusion) {
        return usage_error("train", "--fusion %s needs --cell lstmn (got --cell %s)", o->fusion,
                           o->cell);
    }
    /* The dot and cosine scores compare the decoder state with the encoder
     * states directly, so both must have H entries: one direction. */
    if (o->bidir < 0) o->bidir = kind == ATTN_S2S_DOT || kind == ATTN_S2S_COSINE ? 0 : 1;
    if (o->emb < 0) o->emb = dates ? 64 : 128;
    if (o->hidden < 0) o->hidden = dates ? 128 : 256;
    return 0;
}

static void config(const s2s_opts *o, bundle *b) {
    attn_seq2seq_config *c = &b->cfg;
    c->cell = strcmp(o->cell, "gru") == 0 ? ATTN_RNN_GRU : ATTN_RNN_LSTM;
    c->fusion = ATTN_S2S_FUSION_NONE;
    if (o->fusion) attn_s2s_fusion_parse(o->fusion, &c->fusion);
    c->emb_dim = o->emb;
    c->hidden = o->hidden;
    c->enc_layers = c->dec_layers = (int)o->layers;
    c->bidirectional = (int)o->bidir;
    attn_s2s_attention_parse(o->attention, &c->attention);
    c->attn_dim = o->attn_dim;
    c->combine_dim = o->combine_dim;
    c->no_input_feed = !o->input_feed;
    c->local_window = (int)o->window;
    c->loc_filters = c->attention == ATTN_S2S_LOCATION_SENSITIVE ? (int)(o->loc_filters ? o->loc_filters : 32) : 0;
    c->loc_kernel = c->attention == ATTN_S2S_LOCATION_SENSITIVE ? (int)(o->loc_kernel ? o->loc_kernel : 31) : 0;
    /* --dv3-window 0 turns the decoding window off (-1 in the model's config) */
    c->dv3_window = c->attention == ATTN_S2S_DV3 ? (int)(o->dv3_window ? o->dv3_window : -1) : 0;
    c->dv3_key_rate = (float)o->dv3_key_rate; /* 0: cmd_seq2seq.c sets it from the data */
}

static void fit_sources(bundle *b) { (void)b; }

static attn_status create(bundle *b, attn_rng *rng) { return attn_seq2seq_new(&b->model, b->ps, &b->cfg, rng); }

static attn_tensor *loss(attn_ctx *ctx, const bundle *b, const attn_s2s_batch *batch, float label_smoothing) {
    return attn_seq2seq_loss(ctx, b->model, batch, label_smoothing, NULL);
}

static attn_status decode(attn_ctx *ctx, const bundle *b, const attn_s2s_batch *batch,
                          const attn_decode_config *dc, int32_t *out_ids, int32_t *out_len, float *align) {
    return attn_seq2seq_decode(ctx, b->model, batch, dc, out_ids, out_len, align);
}

static const char *kind(const bundle *b) { return attn_s2s_attention_name(b->cfg.attention); }

static const char *cell_name(const bundle *b) {
    if (b->cfg.fusion != ATTN_S2S_FUSION_NONE) return "lstmn";
    return b->cfg.cell == ATTN_RNN_LSTM ? "lstm" : "gru";
}

static void meta_write(meta_list *m, const bundle *b) {
    const attn_seq2seq_config *c = &b->cfg;
    meta_put(m, "cell", "%s", cell_name(b));
    meta_put(m, "fusion", "%s", attn_s2s_fusion_name(c->fusion));
    meta_put(m, "attention", "%s", attn_s2s_attention_name(c->attention));
    meta_put(m, "emb_dim", "%lld", (long long)c->emb_dim);
    meta_put(m, "hidden", "%lld", (long long)c->hidden);
    meta_put(m, "enc_layers", "%d", c->enc_layers);
    meta_put(m, "dec_layers", "%d", c->dec_layers);
    meta_put(m, "bidirectional", "%d", c->bidirectional);
    meta_put(m, "attn_dim", "%lld", (long long)c->attn_dim);
    meta_put(m, "combine_dim", "%lld", (long long)c->combine_dim);
    meta_put(m, "input_feed", "%d", !c->no_input_feed);
    meta_put(m, "local_window", "%d", c->local_window);
    meta_put(m, "loc_filters", "%d", c->loc_filters);
    meta_put(m, "loc_kernel", "%d", c->loc_kernel);
    meta_put(m, "dv3_window", "%d", c->dv3_window);
    meta_put(m, "dv3_key_rate", "%.9g", (double)c->dv3_key_rate);
}

static void meta_read(meta_reader *m, bundle *b) {
    attn_seq2seq_config *c = &b->cfg;
    const char *cell = meta_str(m, "cell");
    c->cell = strcmp(cell, "gru") == 0 ? ATTN_RNN_GRU : ATTN_RNN_LSTM;
    if (strcmp(cell, "gru") && strcmp(cell, "lstm") && strcmp(cell, "lstmn") && !m->err[0])
        snprintf(m->err, sizeof m->err, "%s: metadata cell = '%s' is unknown", m->path, cell);
    /* absent from checkpoints written before the LSTMN cell: none */
    const char *fusion = meta_has(m, "fusion") ? meta_str(m, "fusion") : "none";
    if (attn_s2s_fusion_parse(fusion, &c->fusion) != 0 && !m->err[0])
        snprintf(m->err, sizeof m->err, "%s: metadata fusion = '%s' is unknown", m->path, fusion);
    if ((c->fusion != ATTN_S2S_FUSION_NONE) != (strcmp(cell, "lstmn") == 0) && !m->err[0])
        snprintf(m->err, sizeof m->err,
                 "%s: metadata cell = '%s' and fusion = '%s' disagree (fusion shallow or deep "
                 "goes with cell lstmn)", m->path, cell, fusion);
    const char *att = meta_str(m, "attention");
    if (attn_s2s_attention_parse(att, &c->attention) != 0 && !m->err[0])
        snprintf(m->err, sizeof m->err, "%s: metadata attention = '%s' is unknown", m->path, att);
    c->emb_dim = meta_ll(m, "emb_dim", 1, 1 << 20);
    c->hidden = meta_ll(m, "hidden", 1, 1 << 20);
    c->enc_layers = (int)meta_ll(m, "enc_layers", 1, 64);
    c->dec_layers = (int)meta_ll(m, "dec_layers", 1, 64);
    c->bidirectional = (int)meta_ll(m, "bidirectional", 0, 1);
    c->attn_dim = meta_ll(m, "attn_dim", 0, 1 << 20);
    /* absent from checkpoints written before these options: Luong's defaults */
    c->combine_dim = meta_has(m, "combine_dim") ? meta_ll(m, "combine_dim", 0, 1 << 20) : 0;
    c->no_input_feed = meta_has(m, "input_feed") ? !meta_ll(m, "input_feed", 0, 1) : 0;
    c->local_window = (int)meta_ll(m, "local_window", 0, 1 << 20);
    /* absent from checkpoints written before these kinds: their defaults */
    c->loc_filters = meta_has(m, "loc_filters") ? (int)meta_ll(m, "loc_filters", 0, 4096) : 0;
    c->loc_kernel = meta_has(m, "loc_kernel") ? (int)meta_ll(m, "loc_kernel", 0, 4095) : 0;
    c->dv3_window = meta_has(m, "dv3_window") ? (int)meta_ll(m, "dv3_window", -1, 1000) : 0;
    c->dv3_key_rate = meta_has(m, "dv3_key_rate") ? (float)meta_real(m, "dv3_key_rate", 0.0, 1000.0) : 0.0f;
}

static void describe(const bundle *b, char *desc, size_t n) {
    const run_info *r = &b->info;
    char luong_desc[96] = "", cell_desc[32];
    if (b->cfg.fusion != ATTN_S2S_FUSION_NONE)
        snprintf(cell_desc, sizeof cell_desc, "LSTMN (%s fusion)", attn_s2s_fusion_name(b->cfg.fusion));
    else
        snprintf(cell_desc, sizeof cell_desc, "%s", b->cfg.cell == ATTN_RNN_LSTM ? "LSTM" : "GRU");
    if (b->cfg.attention >= ATTN_S2S_DOT && b->cfg.attention <= ATTN_S2S_LOCAL_P)
        snprintf(luong_desc, sizeof luong_desc, ", h~ width %lld, input feeding %s",
                 (long long)(b->cfg.combine_dim ? b->cfg.combine_dim : b->cfg.hidden),
                 b->cfg.no_input_feed ? "off" : "on");
    snprintf(desc, n,
             "%s%s: %s seq2seq, attention %s, emb %lld, hidden %lld, layers %d, %s encoder%s; "
             "%s vocabularies %d -> %d tokens; %lld parameters",
             r->dates ? "dates" : "gettext en-", r->dates ? "" : r->lang,
             cell_desc, attn_s2s_attention_name(b->cfg.attention),
             (long long)b->cfg.emb_dim, (long long)b->cfg.hidden, b->cfg.enc_layers,
             b->cfg.bidirectional ? "bidirectional" : "unidirectional", luong_desc, tok_name(r->tok),
             attn_vocab_size(b->sv), attn_vocab_size(b->tv), (long long)attn_params_numel(b->ps));
}

static void map_title(const bundle *b, char *buf, size_t n) { snprintf(buf, n, "%s attention", kind(b)); }

/* LOCATION attention scores a fixed number of source positions (max_src_len - 1). */
static int64_t source_cap(const bundle *b) {
    return b->cfg.attention == ATTN_S2S_LOCATION && b->cfg.max_src_len > 1 ? b->cfg.max_src_len - 1 : 0;
}

static int decode_cap(const bundle *b, int L) {
    (void)b;
    return L;
}

static int has_attention(const bundle *b) { return b->cfg.attention != ATTN_S2S_NONE; }

static int align_layers(const bundle *b) {
    (void)b;
    return 0;
}

const s2s_family s2s_rnn = {
    .cmd = "seq2seq",
    .prog = "attn seq2seq",
    .meta_model = "attn-seq2seq",
    .usage = "usage: attn seq2seq <train|translate|eval> [options]\n\n"
             "  train       train an encoder-decoder with attention on dates or gettext pairs\n"
             "  translate   translate texts with a trained model, optionally drawing its\n"
             "              alignment map (SVG)\n"
             "  eval        exact match, BLEU, alignment accuracy and speed on a held-out split\n\n"
             "'attn seq2seq <command> --help' describes each; docs/seq2seq.md has the details.\n",
    .train_intro = "usage: attn seq2seq train --task dates|gettext [--lang de|fr] --out DIR [options]\n\n"
                   "Trains an RNN encoder-decoder with attention (teacher forcing, AdamW with linear\n"
                   "warmup and cosine decay, gradients clipped to norm 1), then prints the greedy\n"
                   "exact match (and BLEU for gettext, alignment accuracy for dates) on the test split.\n\n",
    .model_help = "model:\n"
                  "  --attention KIND       none|bahdanau|dot|general|concat|location|cosine|local-m|\n"
                  "                         local-p|location-sensitive|dv3 (default bahdanau)\n"
                  "  --cell gru|lstm|lstmn  recurrent cell (default gru); lstmn: LSTMN encoder and\n"
                  "                         decoder (Cheng et al. 2016; Bahdanau attention, one\n"
                  "                         layer, unidirectional encoder; docs/lstmn.md)\n"
                  "  --fusion shallow|deep  --cell lstmn: Bahdanau's attention on top (shallow,\n"
                  "                         the default) or also the encoder's memory gated into\n"
                  "                         the decoder's cell (deep)\n"
                  "  --emb E                embedding size (default 64; gettext 128)\n"
                  "  --hidden H             hidden size (default 128; gettext 256)\n"
                  "  --layers L             encoder and decoder layers (default 1)\n"
                  "  --bidir 0|1            bidirectional encoder (default 1; 0 for dot and cosine,\n"
                  "                         whose scores need encoder states of size H)\n"
                  "  --attn-dim A           additive/concat/local-p score size (default 0: H)\n"
                  "  --combine-dim W        Luong kinds: width of the attentional state\n"
                  "                         h~ = tanh(W_c [c; h]) that the output layer reads\n"
                  "                         (default 0: H, as Luong et al.)\n"
                  "  --input-feed 0|1       Luong kinds: feed h~_{t-1} to the decoder cell\n"
                  "                         (default 1, as Luong et al.)\n"
                  "  --window D             local-m/local-p half window (default 5)\n"
                  "  --loc-filters K        location-sensitive: filters over the previous and\n"
                  "                         cumulative alignment (default 32, as Tacotron 2)\n"
                  "  --loc-kernel R         location-sensitive: odd filter width (default 31)\n"
                  "  --dv3-key-rate R       dv3: the keys' positional-encoding rate (queries: 1;\n"
                  "                         default 0: mean target / mean source length of the\n"
                  "                         training data, as Deep Voice 3)\n"
                  "  --dv3-window W         dv3: decoding attends to source positions [p, p+W),\n"
                  "                         p the previous step's argmax (default 3; 0: off)\n"
                  "  --dropout P            dropout on embeddings and between layers (default 0)\n",
    .align_help = NULL,
    .cap_reason = "location attention",
    .default_layers = 1,
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
