/* attn/seq2seq.h: the RNN encoder-decoder with attention.
 *
 * Encoder: embedding [Vs, E] -> GRU/LSTM (enc_layers, bidirectional) ->
 * memory h [B, S, He] (He = D * hidden, D = 2 if bidirectional). The decoder's
 * initial state (every layer) is tanh(W_bridge [h_fwd(last valid); h_bwd(first)])
 * (the final states of the top encoder layer), as in Bahdanau et al.
 *
 * Decoder wirings (chosen by the attention kind):
 *   - ATTN_S2S_BAHDANAU (Bahdanau et al. 2015): scores from the previous
 *     decoder state s_{i-1} (additive score), context c_i feeds the recurrent
 *     cell: s_i = RNN([emb(y_{i-1}); c_i], s_{i-1}); output layer reads
 *     [s_i; c_i].
 *   - the Luong kinds (DOT, GENERAL, CONCAT, LOCATION, COSINE, LOCAL_M,
 *     LOCAL_P; Luong et al. 2015): h_t = RNN([emb(y_{t-1}); h~_{t-1}], h_{t-1})
 *     (input feeding; h~_0 = 0), scores from h_t, c_t = attention(h_t),
 *     attentional state h~_t = tanh(W_c [c_t; h_t]); output layer reads h~_t.
 *     Two options leave Luong's defaults: combine_dim sets the width of h~
 *     (0: hidden, Luong's choice; W_c is [combine_dim, He + H]) and
 *     no_input_feed = 1 drops input feeding, h_t = RNN(emb(y_{t-1}), h_{t-1}).
 *     With the defaults a Luong model learns a small task (gettext, 1000
 *     steps) much more slowly than the none/Bahdanau wirings, whose output
 *     layer reads [s; c] (H + He wide) directly; combine_dim = He + H with
 *     no_input_feed = 1 learns it as fast as they do (docs/seq2seq.md).
 *   - ATTN_S2S_LOCATION_SENSITIVE (Chorowski et al. 2015, Tacotron 2's form)
 *     and ATTN_S2S_DV3 (Deep Voice 3's attention block, Ping et al. 2017):
 *     Bahdanau's wiring (scores from s_{i-1}, the context feeds the cell and
 *     the output layer) with the stepped scores of rnn_attention.h. DV3's
 *     query position is the decoder step, its weights' dropout is `dropout`,
 *     and decoding (not the loss) restricts each step to the window
 *     [p, p + dv3_window) of source positions, p the previous step's argmax
 *     (0 at the first step) of that hypothesis.
 *   - ATTN_S2S_NONE, the baseline without attention: the context is the
 *     encoder's last state (forward direction at the last valid position,
 *     backward direction at position 0), fixed for the whole output; the
 *     cell reads [emb(y_{t-1}); c] and the output layer [s_t; c].
 * Logits: W_out (...) + b_out over the target vocabulary [Vt].
 *
 * Parameter names (PyTorch style): "encoder.embedding.weight",
 * "encoder.rnn.weight_ih_l0" ... (torch.nn.GRU/LSTM names),
 * "bridge.weight" "bridge.bias", "decoder.embedding.weight",
 * "decoder.rnn.*", "decoder.attn.*" (rnn_attention.h names), "decoder.combine.weight"
 * (W_c, Luong only), "decoder.out.weight" "decoder.out.bias".
 *
 * Score per kind: BAHDANAU and CONCAT the additive score; DOT, GENERAL,
 * LOCATION and COSINE their own (cosine's sharpening beta is learned, from
 * 10); LOCAL_M and LOCAL_P the general score inside their window;
 * LOCATION_SENSITIVE and DV3 their stepped scores (loc_filters, loc_kernel,
 * dv3_key_rate, dv3_window; DV3's weights dropout is `dropout`). DOT and
 * COSINE compare the decoder state with the encoder states directly, so they
 * need bidirectional = 0. LSTM cell states start at zero.
 *
 * Token conventions: ids are int32; pad_id marks padding in both src and
 * targets (targets equal to pad_id are ignored by the loss); bos_id starts
 * every decoder input; eos_id ends every target and stops decoding.
 */
#ifndef ATTN_SEQ2SEQ_H
#define ATTN_SEQ2SEQ_H

#include <stdint.h>

#include "rnn_attention.h"
#include "context.h"
#include "params.h"
#include "rnn.h"
#include "rng.h"
#include "s2s_types.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_s2s_attention {
    ATTN_S2S_NONE = 0,
    ATTN_S2S_BAHDANAU,
    ATTN_S2S_DOT,
    ATTN_S2S_GENERAL,
    ATTN_S2S_CONCAT,
    ATTN_S2S_LOCATION,
    ATTN_S2S_COSINE,
    ATTN_S2S_LOCAL_M,
    ATTN_S2S_LOCAL_P,
    ATTN_S2S_LOCATION_SENSITIVE,
    ATTN_S2S_DV3,
    ATTN_S2S_ATTENTION_COUNT
} attn_s2s_attention;

/* "none", "bahdanau", "dot", "general", "concat", "location", "cosine",
 * "local-m", "local-p", "location-sensitive", "dv3"; parse returns -1 for an
 * unknown name. */
const char *attn_s2s_attention_name(attn_s2s_attention kind);
int attn_s2s_attention_parse(const char *name, attn_s2s_attention *out);

/* LSTMN cells (Cheng, Dong and Lapata 2016; docs/lstmn.md) on both sides of
 * the encoder-decoder instead of `cell`:
 *   - NONE: the GRU or LSTM of `cell` (everything above).
 *   - SHALLOW: an LSTMN encoder and an LSTMN decoder (each reads its own
 *     tape of earlier states by intra-attention; the encoder without the
 *     score's h~ term, the decoder with it) joined by Bahdanau's
 *     inter-attention: c_i = attend(s_{i-1}) over the encoder's states feeds
 *     the decoder cell with the embedding, the output layer reads [s_i; c_i].
 *   - DEEP: SHALLOW plus, inside the decoder's cell, a second attention over
 *     the encoder's hidden and memory tapes whose attended memory is gated
 *     into the cell: c_t = r_t * alpha~_t + f_t * c~_t + i_t * g_t with
 *     r_t = sigmoid(W_r [gamma~_t; x_t] + b_r).
 * Both need attention ATTN_S2S_BAHDANAU, one layer on each side and a
 * unidirectional encoder (the LSTMN reads left to right). Parameter names:
 * "encoder.lstmn.*", "decoder.lstmn.*", "decoder.fusion.*" (deep). */
typedef enum attn_s2s_fusion {
    ATTN_S2S_FUSION_NONE = 0,
    ATTN_S2S_FUSION_SHALLOW,
    ATTN_S2S_FUSION_DEEP,
    ATTN_S2S_FUSION_COUNT
} attn_s2s_fusion;

/* "none", "shallow", "deep"; parse returns -1 for an unknown name. */
const char *attn_s2s_fusion_name(attn_s2s_fusion fusion);
int attn_s2s_fusion_parse(const char *name, attn_s2s_fusion *out);

typedef struct attn_seq2seq_config {
    attn_rnn_cell cell;           /* ATTN_RNN_GRU or ATTN_RNN_LSTM (both sides) */
    int64_t src_vocab, tgt_vocab; /* Vs, Vt >= 4 */
    int64_t emb_dim;              /* E */
    int64_t hidden;               /* decoder state size; encoder per direction */
    int enc_layers, dec_layers;   /* >= 1 */
    int bidirectional;            /* encoder */
    attn_s2s_attention attention;
    int64_t attn_dim;             /* A for additive / concat / local-p (0: hidden) */
    int64_t max_src_len;          /* S_max for LOCATION (longest source + 1) */
    int local_window;             /* D for LOCAL_M / LOCAL_P */
    int64_t combine_dim;          /* Luong kinds: width of h~ (0: hidden) */
    int no_input_feed;            /* Luong kinds: 1 turns input feeding off */
    int loc_filters, loc_kernel;  /* LOCATION_SENSITIVE: K filters of odd width R
                                     (0, 0: Tacotron 2's 32 and 31) */
    float dv3_key_rate;           /* DV3: the keys' position rate (0: 1) */
    int dv3_window;               /* DV3: the decoding window's width W (0: 3;
                                     negative: no window, decoding attends as
                                     the loss does) */
    float dropout;                /* on embeddings and between layers, training only */
    int32_t pad_id, bos_id, eos_id;
    attn_s2s_fusion fusion;       /* LSTMN cells (not NONE): `cell` is then not used */
} attn_seq2seq_config;

typedef struct attn_seq2seq attn_seq2seq;

/* Creates the model and adds its parameters to ps (initialised from rng; NULL
 * rng leaves them zero, for loading a checkpoint). Errors:
 * ATTN_ERR_INVALID_ARG naming the bad field, ATTN_ERR_OOM. */
attn_status attn_seq2seq_new(attn_seq2seq **out, attn_params *ps, const attn_seq2seq_config *cfg,
                             attn_rng *rng);
void attn_seq2seq_free(attn_seq2seq *m);
const attn_seq2seq_config *attn_seq2seq_get_config(const attn_seq2seq *m);

/* Teacher-forced mean cross-entropy over the non-pad target tokens (label
 * smoothing as attn_cross_entropy). Returns the scalar loss, or NULL with
 * the error in the context. If weights_out is not NULL it receives the
 * attention weights [B, T, S] (NULL for ATTN_S2S_NONE). */
attn_tensor *attn_seq2seq_loss(attn_ctx *ctx, const attn_seq2seq *m, const attn_s2s_batch *batch,
                               float label_smoothing, attn_tensor **weights_out);

/* Decodes every source of the batch (tgt_in/tgt_out unused) with gradients
 * off. out_ids [B * max_len] receives each output (eos excluded, padded with
 * pad_id), out_len [B] its length; align, if not NULL, receives
 * [B * max_len * S] attention weights of the chosen hypothesis (zeros for
 * ATTN_S2S_NONE): row j is the attention used to emit output token j (the
 * eos row included when it fits), later rows zero. Decoding never emits
 * pad_id or bos_id. The context is reset by the caller; decoding uses it as
 * scratch. */
attn_status attn_seq2seq_decode(attn_ctx *ctx, const attn_seq2seq *m, const attn_s2s_batch *batch,
                                const attn_decode_config *dc, int32_t *out_ids, int32_t *out_len,
                                float *align);

#ifdef __cplusplus
}
#endif
#endif
