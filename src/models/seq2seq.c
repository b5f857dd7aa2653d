/* seq2seq.c: the RNN encoder-decoder with attention (include/attn/seq2seq.h),
 * composed from the recurrent layers and cells (rnn.h), the attention
 * modules (rnn_attention.h) and the graph ops (ops.h). Nothing here has its own
 * backward: every step is recorded on the context's tape.
 *
 * The graph of one teacher-forced batch (B sentences, S source positions, T
 * target steps, G = 3 (GRU) or 4 (LSTM) gate blocks, X the width of the
 * decoder input besides the embedding: He for Bahdanau and none, Hc (the
 * width of h~, combine_dim, default H) for the Luong kinds, 0 for the Luong
 * kinds without input feeding):
 *   encoder   h = rnn_forward(dropout(embedding(src)), src_len)     [B, S, He]
 *             last = [h_fwd(S_b - 1); h_bwd(0)] of the top layer      [B, He]
 *             s0 = tanh(bridge(last))                                 [B, H]
 *   memory    attn_attention_memory_init(h, src_len): keys and mask, once
 *   hoisted   layer 0's input projection splits as
 *             W_ih [emb; x] = W_e emb + W_x x, so the embedding part of all T
 *             steps is ONE product, time-major:
 *               base = dropout(embedding(tgt_in^T)) W_e^T + b_ih    [T, B, GH]
 *             and without dropout the cheaper way round, a lookup in the
 *             projected table (Vt rows projected instead of T*B):
 *               base = embedding(dec_emb W_e^T + b_ih, tgt_in^T)
 *             which (but for none) is not even gathered: layer 0's cells
 *             read their rows of the table by id and add the context part
 *             themselves (attn__gru_cell_lookup with x2, no add node)
 *             (the encoder's layer 0 does the same, attn__rnn_forward_ids)
 *             (none: base += c W_x^T once, c = last, fixed for all steps)
 *   step t    bahdanau: c_t = attend(s_{t-1}); g = base[t] + c_t W_x^T
 *             luong:    g = base[t] + h~_{t-1} W_x^T (t > 0; base[t] at t = 0;
 *                       base[t] at every t with no_input_feed)
 *             none:     g = base[t]
 *             layer 0: cell(g, state); layers above: cell(linear(dropout(.)))
 *             luong:    c_t = attend(h_t); h~_t = tanh(W_c [c_t; h_t])
 *   output    the per-step states are joined once ([T*B, *], time-major) and
 *             go through ONE output projection and ONE cross-entropy:
 *               logits = [s; c] W_out^T + b_out (bahdanau, none)
 *                      = h~ W_out^T + b_out (luong; h~ is [T*B, Hc])  [T*B, Vt]
 * Per step this leaves the attention, one small product for the context
 * part of the gates, the cells, and (luong) the combine layer.
 *
 * Decoding (no gradients) runs the same step function on N = B*k rows: the
 * encoder once, its states expanded to k rows per sentence and the memory
 * prepared once, then per step the embedding part of the gates for the N
 * previous tokens, one step, the output projection and a log-softmax.
 * Greedy decoding is the beam search of width 1 (one code path: with k = 1
 * the best candidate is the argmax, first on ties, and a sentence stops at
 * its eos). Everything a step allocates is released before the next step
 * (the arena is rewound to a mark, see attn__arena_rewind): the state that survives
 * a step is copied by row, gathered by the chosen parents, into tensors
 * allocated before the mark. Beam search itself is described in
 * docs/ops.md, "The encoder-decoder".
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "s2s_common.h"
#include "seq2seq_lstmn.h"
#include "../nn/rnn_internal.h"
#include "../ops/rnn_cell_internal.h"
#include "../ops/view_internal.h"
#include "attn/ops.h"
#include "attn/params.h"
#include "attn/rnn.h"
#include "attn/rnn_attention.h"
#include "attn/rnn_cell.h"
#include "attn/s2s_types.h"
#include "attn/seq2seq.h"

struct attn_seq2seq {
    attn_seq2seq_config cfg; /* as given, attn_dim and combine_dim resolved (0 -> hidden) */
    int64_t He;              /* encoder state size D * hidden */
    int64_t X;               /* layer 0's input besides the embedding: He, Hc, or 0 without
                                input feeding (Hc = combine_dim) */
    int64_t out_in;          /* the output layer's input size: H + He or Hc */
    int luong;               /* 1 for the Luong kinds (input feeding, combine) */
    attn_tensor *enc_emb, *dec_emb, *bridge_w, *bridge_b, *combine_w, *out_w, *out_b;
    attn_rnn enc, dec;
    attn_attention att; /* unused for ATTN_S2S_NONE */
    attn__s2s_lstmn lstmn; /* fusion SHALLOW or DEEP: the LSTMN wiring (enc, dec unused) */
};

/* ---- names ------------------------------------------------------------------------- */

static const char *const S2S_NAMES[ATTN_S2S_ATTENTION_COUNT] = {
    "none",    "bahdanau", "dot",   "general", "concat", "location", "cosine", "local-m",
    "local-p", "location-sensitive", "dv3"};

const char *attn_s2s_attention_name(attn_s2s_attention kind) {
    return (unsigned)kind < ATTN_S2S_ATTENTION_COUNT ? S2S_NAMES[kind] : "?";
}

int attn_s2s_attention_parse(const char *name, attn_s2s_attention *out) {
    if (!name) return -1;
    for (int k = 0; k < ATTN_S2S_ATTENTION_COUNT; k++)
        if (strcmp(name, S2S_NAMES[k]) == 0) {
            if (out) *out = (attn_s2s_attention)k;
            return 0;
        }
    return -1;
}

static const char *const FUSION_NAMES[ATTN_S2S_FUSION_COUNT] = {"none", "shallow", "deep"};

const char *attn_s2s_fusion_name(attn_s2s_fusion fusion) {
    return (unsigned)fusion < ATTN_S2S_FUSION_COUNT ? FUSION_NAMES[fusion] : "?";
}

int attn_s2s_fusion_parse(const char *name, attn_s2s_fusion *out) {
    if (!name) return -1;
    for (int k = 0; k < ATTN_S2S_FUSION_COUNT; k++)
        if (strcmp(name, FUSION_NAMES[k]) == 0) {
            if (out) *out = (attn_s2s_fusion)k;
            return 0;
        }
    return -1;
}

/* ---- construction ------------------------------------------------------------------ */

static int s2s_is_luong(attn_s2s_attention k) {
    return k >= ATTN_S2S_DOT && k <= ATTN_S2S_LOCAL_P;
}

/* The kinds whose attention reads s_{i-1} before the cell (Bahdanau's wiring). */
static int s2s_attends_first(attn_s2s_attention k) {
    return k == ATTN_S2S_BAHDANAU || k == ATTN_S2S_LOCATION_SENSITIVE || k == ATTN_S2S_DV3;
}

/* The attention module of each kind: Bahdanau's and Luong's concat are the
 * additive score; local-m and local-p use the general score (Luong et al.
 * report their best local-p model with it). */
static attn_attention_config s2s_att_config(const attn_seq2seq_config *c, int64_t He) {
    attn_attention_config a;
    memset(&a, 0, sizeof a);
    a.align = ATTN_ALIGN_GLOBAL;
    a.query_size = c->hidden;
    a.memory_size = He;
    a.attn_size = c->attn_dim;
    switch (c->attention) {
    case ATTN_S2S_BAHDANAU:
    case ATTN_S2S_CONCAT: a.score = ATTN_SCORE_ADDITIVE; break;
    case ATTN_S2S_DOT: a.score = ATTN_SCORE_DOT; break;
    case ATTN_S2S_LOCATION:
        a.score = ATTN_SCORE_LOCATION;
        a.max_source_len = c->max_src_len;
        break;
    case ATTN_S2S_COSINE: a.score = ATTN_SCORE_COSINE; break; /* beta 0: the default 10, learned */
    case ATTN_S2S_LOCATION_SENSITIVE:
        a.score = ATTN_SCORE_LOCATION_SENSITIVE;
        a.loc_filters = c->loc_filters;
        a.loc_kernel = c->loc_kernel;
        break;
    case ATTN_S2S_DV3:
        a.score = ATTN_SCORE_DV3;
        a.key_rate = c->dv3_key_rate;
        a.window = c->dv3_window > 0 ? c->dv3_window : 0; /* 0: the default 3 */
        a.dropout = c->dropout;
        break;
    case ATTN_S2S_LOCAL_M:
        a.score = ATTN_SCORE_GENERAL;
        a.align = ATTN_ALIGN_LOCAL_M;
        a.window = c->local_window;
        break;
    case ATTN_S2S_LOCAL_P:
        a.score = ATTN_SCORE_GENERAL;
        a.align = ATTN_ALIGN_LOCAL_P;
        a.window = c->local_window;
        break;
    default: a.score = ATTN_SCORE_GENERAL; break; /* ATTN_S2S_GENERAL */
    }
    return a;
}

static attn_status s2s_check_config(const attn_seq2seq_config *c) {
    static const char fn[] = "attn_seq2seq_new";
    if (!c) return attn__error(ATTN_ERR_INVALID_ARG, "%s: config is NULL", fn);
    if ((unsigned)c->fusion >= ATTN_S2S_FUSION_COUNT)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: fusion %d, expected ATTN_S2S_FUSION_NONE (0), _SHALLOW (1) or "
                           "_DEEP (2)",
                           fn, (int)c->fusion);
    if (c->fusion != ATTN_S2S_FUSION_NONE &&
        (c->attention != ATTN_S2S_BAHDANAU || c->enc_layers != 1 || c->dec_layers != 1 ||
         c->bidirectional))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: the LSTMN encoder-decoder (fusion %s) needs attention bahdanau, "
                           "one layer on each side and a unidirectional encoder; got attention "
                           "%s, enc_layers %d, dec_layers %d, bidirectional %d",
                           fn, attn_s2s_fusion_name(c->fusion),
                           attn_s2s_attention_name(c->attention), c->enc_layers, c->dec_layers,
                           c->bidirectional);
    if (c->fusion == ATTN_S2S_FUSION_NONE && c->cell != ATTN_RNN_GRU && c->cell != ATTN_RNN_LSTM)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: cell %d, expected ATTN_RNN_GRU (0) or ATTN_RNN_LSTM (1)", fn,
                           (int)c->cell);
    if (c->src_vocab < 4 || c->tgt_vocab < 4)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: src_vocab %lld and tgt_vocab %lld must be >= 4", fn,
                           (long long)c->src_vocab, (long long)c->tgt_vocab);
    if (c->src_vocab > INT32_MAX || c->tgt_vocab > INT32_MAX)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: src_vocab %lld or tgt_vocab %lld does not fit int32 ids", fn,
                           (long long)c->src_vocab, (long long)c->tgt_vocab);
    if (c->emb_dim < 1 || c->hidden < 1)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: emb_dim %lld and hidden %lld must be >= 1",
                           fn, (long long)c->emb_dim, (long long)c->hidden);
    if (c->enc_layers < 1 || c->enc_layers > ATTN_RNN_MAX_LAYERS || c->dec_layers < 1 ||
        c->dec_layers > ATTN_RNN_MAX_LAYERS)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: enc_layers %d and dec_layers %d, expected 1 to %d", fn,
                           c->enc_layers, c->dec_layers, ATTN_RNN_MAX_LAYERS);
    if ((unsigned)c->attention >= ATTN_S2S_ATTENTION_COUNT)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: attention %d, expected 0 to %d", fn,
                           (int)c->attention, ATTN_S2S_ATTENTION_COUNT - 1);
    const int64_t He = (c->bidirectional ? 2 : 1) * c->hidden;
    if ((c->attention == ATTN_S2S_DOT || c->attention == ATTN_S2S_COSINE) && He != c->hidden)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: the %s score compares the decoder state (hidden %lld) with the "
                           "encoder states (%lld with a bidirectional encoder): it needs "
                           "bidirectional = 0",
                           fn, attn_s2s_attention_name(c->attention), (long long)c->hidden,
                           (long long)He);
    if (c->attn_dim < 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: attn_dim %lld, expected >= 0 (0: hidden)", fn,
                           (long long)c->attn_dim);
    if (c->combine_dim < 0)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: combine_dim %lld, expected >= 0 (0: hidden)", fn,
                           (long long)c->combine_dim);
    if (c->attention == ATTN_S2S_LOCATION && c->max_src_len < 1)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: location attention needs max_src_len >= 1 (the longest source "
                           "+ 1), got %lld",
                           fn, (long long)c->max_src_len);
    if ((c->attention == ATTN_S2S_LOCAL_M || c->attention == ATTN_S2S_LOCAL_P) &&
        c->local_window < 1)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %s attention needs local_window >= 1, got %d",
                           fn, attn_s2s_attention_name(c->attention), c->local_window);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: dropout %g, expected a value in [0, 1)", fn,
                           (double)c->dropout);
    const int64_t vmin = c->src_vocab < c->tgt_vocab ? c->src_vocab : c->tgt_vocab;
    if (c->pad_id < 0 || c->pad_id >= vmin || c->bos_id < 0 || c->bos_id >= c->tgt_vocab ||
        c->eos_id < 0 || c->eos_id >= c->tgt_vocab)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: pad_id %d must be in [0, %lld) (both vocabularies), bos_id %d and "
                           "eos_id %d in [0, tgt_vocab = %lld)",
                           fn, (int)c->pad_id, (long long)vmin, (int)c->bos_id, (int)c->eos_id,
                           (long long)c->tgt_vocab);
    if (c->pad_id == c->bos_id || c->pad_id == c->eos_id)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: pad_id %d equals bos_id %d or eos_id %d (targets equal to pad_id "
                           "are ignored by the loss)",
                           fn, (int)c->pad_id, (int)c->bos_id, (int)c->eos_id);
    return ATTN_OK;
}

/* Adds name [d0, d1] (1-D when d1 == 0). With rng: embeddings (emb) N(0, 1)
 * as torch.nn.Embedding, the rest uniform in [-1/sqrt(in), 1/sqrt(in)] as
 * torch.nn.Linear (in = d1 for a weight, `in` for a bias). */
static attn_status s2s_param(attn_params *ps, const char *name, int64_t d0, int64_t d1, int64_t in,
                             int emb, attn_rng *rng, attn_tensor **out) {
    const int64_t shape[2] = {d0, d1};
    attn_status st = attn_params_add(ps, name, d1 ? 2 : 1, shape, out);
    if (st || !rng) return st;
    if (emb)
        attn_init_normal(*out, 1.0f, rng);
    else
        attn_init_uniform(*out, (float)(1.0 / sqrt((double)(d1 ? d1 : in))), rng);
    return ATTN_OK;
}

attn_status attn_seq2seq_new(attn_seq2seq **out, attn_params *ps, const attn_seq2seq_config *cfg,
                             attn_rng *rng) {
    if (!out || !ps)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_seq2seq_new: out or params store is NULL");
    *out = NULL;
    attn_status st = s2s_check_config(cfg);
    if (st) return st;
    attn_seq2seq *m = calloc(1, sizeof *m);
    if (!m)
        return attn__error(ATTN_ERR_OOM, "attn_seq2seq_new: needed %zu bytes for the model",
                           sizeof *m);
    m->cfg = *cfg;
    m->cfg.bidirectional = cfg->bidirectional != 0;
    if (m->cfg.attn_dim == 0) m->cfg.attn_dim = cfg->hidden;
    if (m->cfg.combine_dim == 0) m->cfg.combine_dim = cfg->hidden;
    m->cfg.no_input_feed = cfg->no_input_feed != 0;
    const attn_seq2seq_config *c = &m->cfg;
    const int64_t H = c->hidden, E = c->emb_dim;
    m->He = (c->bidirectional ? 2 : 1) * H;
    m->luong = s2s_is_luong(c->attention);
    const int64_t Hc = c->combine_dim;
    m->X = m->luong ? (c->no_input_feed ? 0 : Hc) : m->He;
    m->out_in = m->luong ? Hc : H + m->He;

    attn_rnn_config ec = {.cell = c->cell,
                          .input_size = E,
                          .hidden_size = H,
                          .num_layers = c->enc_layers,
                          .bidirectional = c->bidirectional,
                          .dropout = c->dropout};
    attn_rnn_config dc = ec;
    dc.input_size = E + m->X;
    dc.num_layers = c->dec_layers;
    dc.bidirectional = 0;
    const int lstmn = c->fusion != ATTN_S2S_FUSION_NONE;
    st = s2s_param(ps, "encoder.embedding.weight", c->src_vocab, E, 0, 1, rng, &m->enc_emb);
    if (!st && !lstmn) st = attn_rnn_init(&m->enc, ps, "encoder.rnn.", &ec, rng);
    if (!st && lstmn) st = attn__s2s_lstmn_init(&m->lstmn, ps, c, 0, rng);
    if (!st) st = s2s_param(ps, "bridge.weight", H, m->He, 0, 0, rng, &m->bridge_w);
    if (!st) st = s2s_param(ps, "bridge.bias", H, 0, m->He, 0, rng, &m->bridge_b);
    if (!st)
        st = s2s_param(ps, "decoder.embedding.weight", c->tgt_vocab, E, 0, 1, rng, &m->dec_emb);
    if (!st && !lstmn) st = attn_rnn_init(&m->dec, ps, "decoder.rnn.", &dc, rng);
    if (!st && lstmn) st = attn__s2s_lstmn_init(&m->lstmn, ps, c, 1, rng);
    if (!st && c->attention != ATTN_S2S_NONE) {
        const attn_attention_config ac = s2s_att_config(c, m->He);
        st = attn_attention_init(&m->att, ps, "decoder.attn.", &ac, rng);
    }
    if (!st && m->luong)
        st = s2s_param(ps, "decoder.combine.weight", Hc, m->He + H, 0, 0, rng, &m->combine_w);
    if (!st)
        st = s2s_param(ps, "decoder.out.weight", c->tgt_vocab, m->out_in, 0, 0, rng, &m->out_w);
    if (!st) st = s2s_param(ps, "decoder.out.bias", c->tgt_vocab, 0, m->out_in, 0, rng, &m->out_b);
    if (st) {
        free(m); /* the parameters added so far stay in the store (its names say whose) */
        return st;
    }
    if (lstmn) {
        attn__s2s_lstmn *l = &m->lstmn;
        l->enc_emb = m->enc_emb;
        l->dec_emb = m->dec_emb;
        l->bridge_w = m->bridge_w;
        l->bridge_b = m->bridge_b;
        l->out_w = m->out_w;
        l->out_b = m->out_b;
        l->att = &m->att;
    }
    *out = m;
    return ATTN_OK;
}

void attn_seq2seq_free(attn_seq2seq *m) { free(m); }

const attn_seq2seq_config *attn_seq2seq_get_config(const attn_seq2seq *m) {
    return m ? &m->cfg : NULL;
}

/* ---- small graph helpers ------------------------------------------------------------ */

/* A [rows, cols] view of contiguous f32 x at element `offset`. */
static attn_tensor *s2s_view(attn_ctx *ctx, attn_tensor *x, int64_t rows, int64_t cols,
                             int64_t offset) {
    return attn__view_rows(ctx, "attn_seq2seq", x, rows, cols, offset);
}

static attn_tensor *s2s_cell(attn_ctx *ctx, const attn_rnn *rnn, int l, attn_tensor *gx, int64_t t,
                             attn_tensor *h, attn_tensor **c) {
    attn_tensor *w = rnn->w_hh[l][0], *b = rnn->b_hh[l][0];
    if (rnn->cfg.cell == ATTN_RNN_LSTM)
        return t < 0 ? attn_lstm_cell(ctx, gx, h, *c, w, b, NULL, c)
                     : attn_lstm_cell_at(ctx, gx, t, h, *c, w, b, NULL, c);
    return t < 0 ? attn_gru_cell(ctx, gx, h, w, b, NULL)
                 : attn_gru_cell_at(ctx, gx, t, h, w, b, NULL);
}

/* ---- encoder ------------------------------------------------------------------------ */

typedef struct s2s_enc {
    attn_tensor *out;  /* [B, S, He] */
    attn_tensor *last; /* [B, He]: [h_fwd(S_b - 1); h_bwd(0)] of the top layer */
    attn_tensor *s0;   /* [B, H]: tanh(bridge(last)), every decoder layer's h0 */
} s2s_enc;

static int s2s_encode(attn_ctx *ctx, const attn_seq2seq *m, attn_tensor *src, attn_tensor *src_len,
                      s2s_enc *e) {
    const attn_seq2seq_config *c = &m->cfg;
    const int64_t B = src->shape[0], H = c->hidden;
    const int L = c->enc_layers, D = c->bidirectional ? 2 : 1;
    attn_tensor *hn = NULL;
    if (c->dropout > 0.0f) {
        attn_tensor *x = attn_dropout(ctx, attn_embedding(ctx, m->enc_emb, src), c->dropout);
        e->out = x ? attn_rnn_forward(ctx, &m->enc, x, src_len, NULL, NULL, &hn, NULL) : NULL;
    } else { /* layer 0 projects the embedding table, not every position (rnn.c) */
        e->out = attn__rnn_forward_ids(ctx, &m->enc, m->enc_emb, src, src_len, NULL, NULL, &hn,
                                       NULL);
    }
    if (!e->out) return -1;
    /* h_n [L*D, B, H]: the top layer's directions are rows (L-1)*D .. L*D-1 */
    attn_tensor *dirs[2] = {NULL, NULL};
    for (int d = 0; d < D; d++)
        if (!(dirs[d] = s2s_view(ctx, hn, B, H, ((int64_t)(L - 1) * D + d) * B * H))) return -1;
    e->last = D == 2 ? attn_concat(ctx, dirs, 2, 1) : dirs[0];
    e->s0 = e->last ? attn_tanh(ctx, attn_linear(ctx, e->last, m->bridge_w, m->bridge_b)) : NULL;
    return e->s0 ? 0 : -1;
}

/* ---- the decoder step --------------------------------------------------------------- */

typedef struct s2s_dec {
    attn_tensor *w_e, *w_x;    /* layer 0's W_ih split: [GH, E] and [GH, X] (contiguous;
                                  w_x NULL when X = 0) */
    attn_tensor *p_tab;        /* training without dropout: dec_emb W_e^T + b_ih [Vt, GH] */
    attn_tensor *ids_tm;       /* with p_tab: tgt_in time-major [T, B]; layer 0 reads rows */
    attn_attention_memory mem; /* not used for ATTN_S2S_NONE */
    attn_tensor *c_fixed;      /* none: the fixed context [N, He] */
} s2s_dec;

/* The decoder state between steps (arrays of dec_layers entries). */
typedef struct s2s_state {
    attn_tensor *h[ATTN_RNN_MAX_LAYERS], *c[ATTN_RNN_MAX_LAYERS];
    attn_tensor *feed; /* luong: h~_{t-1}; NULL at t = 0 (h~_0 = 0) */
    attn_attention_state as; /* location-sensitive: a_{t-1}, cumulative; dv3: the window */
} s2s_state;

/* What one step produces. */
typedef struct s2s_out {
    attn_tensor *s;  /* top layer's new state [N, H] */
    attn_tensor *ct; /* context [N, He] (none: the fixed one) */
    attn_tensor *a;  /* attention weights [N, S]; NULL for none */
    attn_tensor *ht; /* luong: h~_t [N, H] */
} s2s_out;

static int s2s_prepare(attn_ctx *ctx, const attn_seq2seq *m, s2s_dec *d) {
    const int64_t E = m->cfg.emb_dim;
    attn_tensor *w = m->dec.w_ih[0][0];
    if (m->X == 0) { /* no input feeding: W_ih is the embedding part alone */
        d->w_e = w;
        d->w_x = NULL;
        return 0;
    }
    d->w_e = attn_contiguous(ctx, attn_slice(ctx, w, 1, 0, E));
    d->w_x = attn_contiguous(ctx, attn_slice(ctx, w, 1, E, m->X));
    return d->w_e && d->w_x ? 0 : -1;
}

/* Layer 0's cell reading its embedding part from d->p_tab by the ids of step
 * t (plus x2, the context part, when not NULL). */
static attn_tensor *s2s_cell_lookup(attn_ctx *ctx, const attn_rnn *rnn, const s2s_dec *d,
                                    int64_t t, attn_tensor *x2, attn_tensor *h, attn_tensor **c) {
    attn_tensor *w = rnn->w_hh[0][0], *b = rnn->b_hh[0][0];
    if (rnn->cfg.cell == ATTN_RNN_LSTM)
        return attn__lstm_cell_lookup(ctx, d->p_tab, d->ids_tm, t, x2, h, *c, w, b, NULL, c);
    return attn__gru_cell_lookup(ctx, d->p_tab, d->ids_tm, t, x2, h, w, b, NULL);
}

/* One decoder step at decoder position `step`. Layer 0's gate inputs are
 * block bt of base [*, N, GH] (the embedding part with b_ih) plus the context
 * part, or with base NULL row ids_tm[bt, :] of d->p_tab plus the context
 * part (read by the cell, no add node); st is replaced by the new state. 0 or
 * -1 (recorded). */
static int s2s_step(attn_ctx *ctx, const attn_seq2seq *m, const s2s_dec *d, s2s_state *st,
                    attn_tensor *base, int64_t bt, int64_t step, s2s_out *o) {
    const attn_seq2seq_config *c = &m->cfg;
    const int L = c->dec_layers, lstm = c->cell == ATTN_RNN_LSTM;
    const int64_t N = base ? base->shape[1] : 0, GH = base ? base->shape[2] : 0;
    memset(o, 0, sizeof *o);
    attn_tensor *x = NULL;
    if (s2s_attends_first(c->attention)) {
        /* Bahdanau: the scores read the previous state s_{t-1} */
        o->ct = attn_attention_step(ctx, &m->att, &d->mem, st->h[L - 1], step, &st->as, &o->a);
        if (!(x = o->ct)) return -1;
    } else if (m->luong) {
        x = m->X ? st->feed : NULL; /* input feeding; NULL at t = 0 (and without feeding) */
    } else {
        o->ct = d->c_fixed; /* none: c W_x^T is already in base */
    }
    attn_tensor *h;
    if (!base) {
        attn_tensor *xw = x ? attn_linear(ctx, x, d->w_x, NULL) : NULL;
        h = !x || xw ? s2s_cell_lookup(ctx, &m->dec, d, bt, xw, st->h[0], lstm ? &st->c[0] : NULL)
                     : NULL;
    } else if (x) {
        attn_tensor *g = attn_add(ctx, s2s_view(ctx, base, N, GH, bt * N * GH),
                                  attn_linear(ctx, x, d->w_x, NULL));
        h = g ? s2s_cell(ctx, &m->dec, 0, g, -1, st->h[0], lstm ? &st->c[0] : NULL) : NULL;
    } else {
        h = s2s_cell(ctx, &m->dec, 0, base, bt, st->h[0], lstm ? &st->c[0] : NULL);
    }
    if (!h) return -1;
    st->h[0] = h;
    for (int l = 1; l < L; l++) {
        attn_tensor *in = h;
        if (c->dropout > 0.0f) in = attn_dropout(ctx, in, c->dropout);
        attn_tensor *g = attn_linear(ctx, in, m->dec.w_ih[l][0], m->dec.b_ih[l][0]);
        h = g ? s2s_cell(ctx, &m->dec, l, g, -1, st->h[l], lstm ? &st->c[l] : NULL) : NULL;
        if (!h) return -1;
        st->h[l] = h;
    }
    o->s = h;
    if (m->luong) {
        /* Luong: c_t = attend(h_t); h~_t = tanh(W_c [c_t; h_t]) */
        o->ct = attn_attention_forward(ctx, &m->att, &d->mem, h, step, &o->a, NULL);
        attn_tensor *cat[2] = {o->ct, h};
        o->ht = o->ct ? attn_tanh(ctx,
                                  attn_linear(ctx, attn_concat(ctx, cat, 2, 1), m->combine_w, NULL))
                      : NULL;
        if (!o->ht) return -1;
        st->feed = o->ht;
    }
    return 0;
}

/* The initial decoder state for N rows from s0 [N, H]. */
static int s2s_init_state(attn_ctx *ctx, const attn_seq2seq *m, attn_tensor *s0, s2s_state *st) {
    memset(st, 0, sizeof *st);
    attn_tensor *zeros = NULL;
    if (m->cfg.cell == ATTN_RNN_LSTM && !(zeros = attn_tensor_new(ctx, ATTN_F32, 2, s0->shape)))
        return -1;
    for (int l = 0; l < m->cfg.dec_layers; l++) {
        st->h[l] = s0;
        st->c[l] = zeros; /* LSTM: c0 = 0 */
    }
    return 0;
}

/* Time-major copy [T, B] of an I32 [B, T] tensor (ids carry no gradient). */
static attn_tensor *s2s_time_major(attn_ctx *ctx, attn_tensor *ids, const char *fn) {
    attn_tensor *c = attn__contig(ctx, ids);
    if (!c) return NULL;
    const int64_t B = c->shape[0], T = c->shape[1], sh[2] = {T, B};
    attn_tensor *y = attn__tensor(ctx, fn, ATTN_I32, 2, sh);
    if (!y) return NULL;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) attn_i32(y)[t * B + b] = attn_i32(c)[b * T + t];
    return y;
}

/* ---- the teacher-forced loss --------------------------------------------------------- */

attn_tensor *attn_seq2seq_loss(attn_ctx *ctx, const attn_seq2seq *m, const attn_s2s_batch *batch,
                               float label_smoothing, attn_tensor **weights_out) {
    static const char fn[] = "attn_seq2seq_loss";
    if (weights_out) *weights_out = NULL;
    if (!ctx) return NULL;
    if (ctx->status) return NULL; /* an earlier op failed: keep its message */
    int64_t B, S, T;
    if (attn__s2s_check_batch(ctx, m, batch, 1, fn, &B, &S, &T)) return NULL;
    if (!attn__s2s_lengths(ctx, batch->src_len, S, fn)) return NULL;
    const attn_seq2seq_config *c = &m->cfg;
    if (c->fusion != ATTN_S2S_FUSION_NONE)
        return attn__s2s_lstmn_loss(ctx, &m->lstmn, batch, label_smoothing, weights_out);

    s2s_enc e;
    s2s_dec d;
    memset(&d, 0, sizeof d);
    if (s2s_encode(ctx, m, batch->src, batch->src_len, &e) || s2s_prepare(ctx, m, &d)) return NULL;
    if (c->attention != ATTN_S2S_NONE &&
        attn_attention_memory_init(ctx, &m->att, e.out, batch->src_len, &d.mem))
        return NULL;

    /* the embedding part of layer 0's gates for all T steps, time-major */
    attn_tensor *tin = s2s_time_major(ctx, batch->tgt_in, fn);
    attn_tensor *base = NULL; /* [T, B, GH] */
    if (!tin) return NULL;
    if (c->dropout > 0.0f) {
        attn_tensor *emb = attn_embedding(ctx, m->dec_emb, tin); /* [T, B, E] */
        base = attn_linear(ctx, attn_dropout(ctx, emb, c->dropout), d.w_e, m->dec.b_ih[0][0]);
    } else { /* the table's Vt rows projected once, then looked up */
        attn_tensor *p = attn_linear(ctx, m->dec_emb, d.w_e, m->dec.b_ih[0][0]);
        if (c->attention == ATTN_S2S_NONE) {
            base = attn_embedding(ctx, p, tin);
        } else { /* layer 0's cells read the rows themselves */
            if (!(d.p_tab = p)) return NULL;
            d.ids_tm = tin;
        }
    }
    if (base && c->attention == ATTN_S2S_NONE) {
        d.c_fixed = e.last;
        base = attn_add(ctx, base, attn_linear(ctx, e.last, d.w_x, NULL));
    }
    if (!base && !d.p_tab) return NULL;

    s2s_state st;
    if (s2s_init_state(ctx, m, e.s0, &st)) return NULL;
    attn_tensor **hs = attn__alloc(ctx, sizeof(attn_tensor *) * (size_t)T, fn);
    attn_tensor **cs = attn__alloc(ctx, sizeof(attn_tensor *) * (size_t)T, fn);
    attn_tensor **as = attn__alloc(ctx, sizeof(attn_tensor *) * (size_t)T, fn);
    if (!hs || !cs || !as) return NULL;
    for (int64_t t = 0; t < T; t++) {
        s2s_out o;
        if (s2s_step(ctx, m, &d, &st, base, t, t, &o)) return NULL;
        hs[t] = m->luong ? o.ht : o.s;
        cs[t] = o.ct;
        as[t] = o.a;
    }
    /* one output projection and one cross-entropy over all steps, time-major */
    attn_tensor *out_in = attn_concat(ctx, hs, (int)T, 0); /* [T*B, H or Hc] */
    if (out_in && !m->luong) {
        attn_tensor *two[2] = {out_in, attn_concat(ctx, cs, (int)T, 0)};
        out_in = attn_concat(ctx, two, 2, 1); /* [T*B, H + He] */
    }
    attn_tensor *logits = out_in ? attn_linear(ctx, out_in, m->out_w, m->out_b) : NULL;
    attn_tensor *tout = logits ? s2s_time_major(ctx, batch->tgt_out, fn) : NULL;
    const int64_t n = T * B;
    attn_tensor *tflat = tout ? attn_reshape(ctx, tout, 1, &n) : NULL;
    attn_tensor *loss =
        tflat ? attn_cross_entropy(ctx, logits, tflat, c->pad_id, label_smoothing) : NULL;
    if (!loss) return NULL;
    if (weights_out && c->attention != ATTN_S2S_NONE) {
        const int64_t sh[3] = {T, B, S};
        attn_tensor *w = attn_reshape(ctx, attn_concat(ctx, as, (int)T, 0), 3, sh);
        w = attn_contiguous(ctx, attn_transpose(ctx, w, 0, 1)); /* [B, T, S] */
        if (!w) return NULL;
        *weights_out = w;
    }
    return loss;
}

/* ---- decoding ----------------------------------------------------------------------- */

/* Everything a decoding step allocates lies above the mark taken before the
 * loop; with gradients off nothing on the tape refers to it, so the step's
 * memory is released by moving the arena's top back to the mark (the
 * allocation headers of the guard mode stay consistent: the arena below the
 * mark is untouched). This keeps decoding's memory at the encoder's plus one
 * step's, whatever max_len is. */

/* Rows [N, C] of src gathered by parent (dst[i] = src[parent[i]]); dst and
 * src are distinct contiguous f32 tensors. */
static void s2s_gather(attn_tensor *dst, const attn_tensor *src, const int32_t *parent, int64_t N) {
    const int64_t C = dst->shape[dst->ndim - 1];
    for (int64_t i = 0; i < N; i++)
        memcpy(attn_f32(dst) + i * C, attn_f32(src) + (int64_t)parent[i] * C,
               sizeof(float) * (size_t)C);
}

/* A copy of x [B, ...] (contiguous) with every row repeated k times
 * ([B*k, ...], row b*k + j = row b); x itself when k == 1. No gradient. */
static attn_tensor *s2s_repeat_rows(attn_ctx *ctx, attn_tensor *x, int64_t k, const char *fn) {
    if (k == 1) return x;
    int64_t sh[ATTN_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) sh[i] = x->shape[i];
    const int64_t B = sh[0], row = attn_tensor_numel(x) / B;
    sh[0] = B * k;
    attn_tensor *y = attn__tensor(ctx, fn, x->dtype, x->ndim, sh);
    if (!y) return NULL;
    const size_t bytes = attn_dtype_size(x->dtype) * (size_t)row;
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < k; j++)
            memcpy((char *)y->data + (size_t)(b * k + j) * bytes,
                   (const char *)x->data + (size_t)b * bytes, bytes);
    return y;
}

static int s2s_decode_run(attn_ctx *ctx, const attn_seq2seq *m, const attn_s2s_batch *batch,
                          const attn_decode_config *dc, int32_t *out_ids, int32_t *out_len,
                          float *align) {
    static const char fn[] = "attn_seq2seq_decode";
    const attn_seq2seq_config *c = &m->cfg;
    int64_t B, S, T0;
    if (attn__s2s_check_batch(ctx, m, batch, 0, fn, &B, &S, &T0)) return -1;
    if (!attn__s2s_lengths(ctx, batch->src_len, S, fn)) return -1;
    if (c->fusion != ATTN_S2S_FUSION_NONE)
        return attn__s2s_lstmn_decode(ctx, &m->lstmn, c, batch, dc, out_ids, out_len, align);
    const int k = dc->beam, L = c->dec_layers, lstm = c->cell == ATTN_RNN_LSTM;
    const int64_t N = B * k, H = c->hidden, Vt = c->tgt_vocab, maxT = dc->max_len;
    const int want_align = align && c->attention != ATTN_S2S_NONE;

    s2s_enc e;
    s2s_dec d;
    memset(&d, 0, sizeof d);
    if (s2s_encode(ctx, m, batch->src, batch->src_len, &e) || s2s_prepare(ctx, m, &d)) return -1;
    attn_tensor *len_c = attn__contig(ctx, batch->src_len);
    attn_tensor *mem_h = s2s_repeat_rows(ctx, e.out, k, fn);
    attn_tensor *mem_len = len_c ? s2s_repeat_rows(ctx, len_c, k, fn) : NULL;
    attn_tensor *s0 = s2s_repeat_rows(ctx, e.s0, k, fn);
    if (!mem_h || !mem_len || !s0) return -1;
    attn_tensor *gx_fixed = NULL;
    if (c->attention == ATTN_S2S_NONE) {
        d.c_fixed = s2s_repeat_rows(ctx, e.last, k, fn);
        gx_fixed = d.c_fixed ? attn_linear(ctx, d.c_fixed, d.w_x, NULL) : NULL;
        if (!gx_fixed) return -1;
    } else if (attn_attention_memory_init(ctx, &m->att, mem_h, mem_len, &d.mem)) {
        return -1;
    }

    /* the state that survives a step, below the mark */
    const int64_t nh[2] = {N, H}, ish[2] = {1, N};
    s2s_state keep;
    memset(&keep, 0, sizeof keep);
    for (int l = 0; l < L; l++) {
        if (!(keep.h[l] = attn__tensor(ctx, fn, ATTN_F32, 2, nh))) return -1;
        memcpy(keep.h[l]->data, s0->data, sizeof(float) * (size_t)(N * H));
        if (lstm && !(keep.c[l] = attn_tensor_new(ctx, ATTN_F32, 2, nh))) return -1;
    }
    const int64_t nf[2] = {N, c->combine_dim};
    attn_tensor *feed = m->luong ? attn__tensor(ctx, fn, ATTN_F32, 2, nf) : NULL;
    attn_tensor *ids = attn__tensor(ctx, fn, ATTN_I32, 2, ish); /* the previous tokens [1, N] */
    if ((m->luong && !feed) || !ids) return -1;
    /* location-sensitive: a_{t-1} and the cumulative alignment of every row;
     * dv3: each row's window start (the previous step's argmax) */
    const int loc = c->attention == ATTN_S2S_LOCATION_SENSITIVE;
    const int dv3 = c->attention == ATTN_S2S_DV3 && c->dv3_window >= 0;
    const int64_t ns[2] = {N, S};
    attn_tensor *keep_prev = loc ? attn_tensor_new(ctx, ATTN_F32, 2, ns) : NULL;
    attn_tensor *keep_cum = loc ? attn_tensor_new(ctx, ATTN_F32, 2, ns) : NULL;
    int32_t *win = dv3 ? attn__alloc(ctx, sizeof(int32_t) * (size_t)N * 2, fn) : NULL;
    if ((loc && (!keep_prev || !keep_cum)) || (dv3 && !win)) return -1;
    if (dv3) memset(win, 0, sizeof(int32_t) * (size_t)N * 2);
    attn__beam bm;
    if (attn__beam_init(ctx, &bm, B, k, maxT, want_align ? S : 0, (double)dc->length_alpha,
                        c->pad_id, c->bos_id, c->eos_id, fn))
        return -1;
    memcpy(ids->data, bm.next, sizeof(int32_t) * (size_t)N);

    const size_t mark = attn__arena_mark(ctx);
    for (int64_t t = 0; t < maxT; t++) {
        /* one step for all N rows */
        attn_tensor *emb = attn_embedding(ctx, m->dec_emb, ids); /* [1, N, E] */
        attn_tensor *base = emb ? attn_linear(ctx, emb, d.w_e, m->dec.b_ih[0][0]) : NULL;
        if (base && gx_fixed) base = attn_add(ctx, base, gx_fixed);
        if (!base) return -1;
        s2s_state st = keep;
        st.feed = t > 0 ? feed : NULL;
        st.as.prev = loc && t > 0 ? keep_prev : NULL;
        st.as.cum = loc && t > 0 ? keep_cum : NULL;
        st.as.window_from = dv3 ? win : NULL;
        s2s_out o;
        if (s2s_step(ctx, m, &d, &st, base, 0, t, &o)) return -1;
        attn_tensor *out_in = o.ht;
        if (!m->luong) {
            attn_tensor *two[2] = {o.s, o.ct};
            out_in = attn_concat(ctx, two, 2, 1);
        }
        attn_tensor *lp =
            out_in ? attn_log_softmax(ctx, attn_linear(ctx, out_in, m->out_w, m->out_b), NULL)
                   : NULL; /* [N, Vt] */
        if (!lp) return -1;
        /* choose: every row's token and the row it extends */
        if (attn__beam_step(&bm, t, attn_f32(lp), Vt, want_align ? attn_f32(o.a) : NULL)) break;

        /* the surviving state, gathered by parent, then release the step */
        for (int l = 0; l < L; l++) {
            s2s_gather(keep.h[l], st.h[l], bm.parent, N);
            if (lstm) s2s_gather(keep.c[l], st.c[l], bm.parent, N);
        }
        if (m->luong) s2s_gather(feed, o.ht, bm.parent, N);
        if (loc) {
            attn_tensor *pc = attn__contig(ctx, st.as.prev), *cc = attn__contig(ctx, st.as.cum);
            if (!pc || !cc) return -1;
            s2s_gather(keep_prev, pc, bm.parent, N);
            s2s_gather(keep_cum, cc, bm.parent, N);
        }
        if (dv3) { /* the argmax of the row each hypothesis extends (first on ties) */
            int32_t *arg = win + N;
            for (int64_t i = 0; i < N; i++) {
                const float *row = attn_f32(o.a) + i * S;
                int64_t best = 0;
                for (int64_t s = 1; s < S; s++)
                    if (row[s] > row[best]) best = s;
                arg[i] = (int32_t)best;
            }
            for (int64_t i = 0; i < N; i++) win[i] = arg[bm.parent[i]];
        }
        memcpy(ids->data, bm.next, sizeof(int32_t) * (size_t)N);
        attn__arena_rewind(ctx, mark);
    }
    attn__arena_rewind(ctx, mark);

    /* outputs: the best hypothesis of every sentence, read back through the parents */
    attn__beam_finish(&bm, out_ids, out_len, want_align ? align : NULL);
    if (align && !want_align) memset(align, 0, sizeof(float) * (size_t)(B * maxT * S));
    return 0;
}

attn_status attn_seq2seq_decode(attn_ctx *ctx, const attn_seq2seq *m, const attn_s2s_batch *batch,
                                const attn_decode_config *dc, int32_t *out_ids, int32_t *out_len,
                                float *align) {
    static const char fn[] = "attn_seq2seq_decode";
    if (!ctx) return attn__error(ATTN_ERR_INVALID_ARG, "%s: context is NULL", fn);
    if (ctx->status) return ctx->status;
    if (!m || !batch || !dc || !out_ids || !out_len)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                          "%s: model, batch, decode config, out_ids or out_len is NULL", fn);
    if (dc->beam < 1 || dc->max_len < 1 || !(dc->length_alpha >= 0.0f) ||
        !isfinite(dc->length_alpha))
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                          "%s: beam %d and max_len %d must be >= 1, length_alpha %g finite and "
                          ">= 0",
                          fn, dc->beam, dc->max_len, (double)dc->length_alpha);
    const int grad = ctx->grad_enabled, training = ctx->training;
    ctx->grad_enabled = 0;
    ctx->training = 0;
    const int rc = s2s_decode_run(ctx, m, batch, dc, out_ids, out_len, align);
    ctx->grad_enabled = grad;
    ctx->training = training;
    if (rc) return ctx->status ? ctx->status : ATTN_ERR_STATE;
    return ATTN_OK;
}
