/* rnn.c: multi-layer, bidirectional GRU/LSTM layers on top of the fused cell
 * ops (src/ops/rnn_cell.c), with torch.nn.GRU / torch.nn.LSTM's parameter
 * names and semantics (include/attn/rnn.h).
 *
 * How a sequence runs (per layer l and direction d):
 *   1. gx = attn_linear(in, w_ih, b_ih) for all steps at once, in time-major
 *      layout [T, B, G*H], so that step t is the contiguous row block
 *      starting at element t*B*G*H; from token ids (attn__rnn_forward_ids,
 *      the seq2seq encoder), layer 0 instead projects the V rows of the
 *      embedding table once, P = table W_ih^T + b_ih [V, G*H], and the
 *      cells read their rows P[ids[b, t]] in place (attn__gru_cell_lookup):
 *      V*In*G*H multiply-adds instead of T*B*In*G*H, no [T, B, G*H] buffer
 *      or gradient, and backward adds each row's d gx into its row of dP
 *      before the two small products of dP;
 *   2. T cell steps (attn_*_cell_at), each reading its [B, G*H] block of gx
 *      in place (no view, no per-step gradient buffer), the reverse
 *      direction walking t = T-1 .. 0;
 *   3. the top layer's T states of both directions are joined with ONE
 *      concat along the rows of the [B, H] states, which is the batch-first
 *      output [B, T, D*H] as laid out (a layer below the top is joined
 *      time-major, [T, B, D*H], the next layer's input).
 * Variable lengths use the cells' row mask: at step t the rows with
 * t >= lengths[b] are frozen, which for the forward direction keeps their
 * final state at step lengths[b]-1 and for the reverse direction keeps h0
 * until the sequence's own last step, exactly what pack_padded_sequence
 * gives. The mask is passed only at steps where some row is padded. The
 * layer's output is multiplied once by a [B, T, 1] 0/1 tensor so padded
 * positions are zeros (their frozen states are not outputs).
 * Gradients flow through the recorded ops; nothing here has its own backward.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/internal.h"
#include "../ops/rnn_cell_internal.h"
#include "../ops/view_internal.h"
#include "rnn_internal.h"
#include "attn/ops.h"
#include "attn/params.h"
#include "attn/rnn.h"
#include "attn/rnn_cell.h"

/* ---- parameters -------------------------------------------------------------- */

static attn_status rnn_check_config(const attn_rnn_config *cfg, const char *fn) {
    if (!cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: config is NULL", fn);
    if (cfg->cell != ATTN_RNN_GRU && cfg->cell != ATTN_RNN_LSTM)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: cell %d, expected ATTN_RNN_GRU (0) or ATTN_RNN_LSTM (1)", fn,
                           (int)cfg->cell);
    if (cfg->input_size < 1 || cfg->hidden_size < 1)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: input_size %lld and hidden_size %lld must be >= 1", fn,
                           (long long)cfg->input_size, (long long)cfg->hidden_size);
    if (cfg->num_layers < 1 || cfg->num_layers > ATTN_RNN_MAX_LAYERS)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: num_layers %d, expected 1 to %d", fn,
                           cfg->num_layers, ATTN_RNN_MAX_LAYERS);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: dropout %g, expected a value in [0, 1)", fn,
                           (double)cfg->dropout);
    return ATTN_OK;
}

static int64_t rnn_gates(const attn_rnn_config *cfg) { return cfg->cell == ATTN_RNN_LSTM ? 4 : 3; }

attn_status attn_rnn_init(attn_rnn *rnn, attn_params *ps, const char *prefix,
                          const attn_rnn_config *cfg, attn_rng *rng) {
    if (!rnn || !ps)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_rnn_init: rnn or params store is NULL");
    memset(rnn, 0, sizeof *rnn);
    attn_status st = rnn_check_config(cfg, "attn_rnn_init");
    if (st) return st;
    if (!prefix) prefix = "";
    const int64_t H = cfg->hidden_size, GH = rnn_gates(cfg) * H;
    const int D = cfg->bidirectional ? 2 : 1;
    const float bound = (float)(1.0 / sqrt((double)H));
    attn_rnn r;
    memset(&r, 0, sizeof r);
    r.cfg = *cfg;
    r.cfg.bidirectional = D == 2;
    for (int l = 0; l < cfg->num_layers; l++) {
        const int64_t in = l == 0 ? cfg->input_size : D * H;
        for (int d = 0; d < D; d++) {
            /* torch's order within a layer and direction */
            static const char *const what[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
            attn_tensor **slot[4] = {&r.w_ih[l][d], &r.w_hh[l][d], &r.b_ih[l][d], &r.b_hh[l][d]};
            for (int k = 0; k < (cfg->no_bias ? 2 : 4); k++) {
                char name[320];
                int len = snprintf(name, sizeof name, "%s%s_l%d%s", prefix, what[k], l,
                                   d ? "_reverse" : "");
                if (len < 0 || (size_t)len >= sizeof name)
                    return attn__error(ATTN_ERR_INVALID_ARG,
                                       "attn_rnn_init: prefix '%.40s...' makes a name longer "
                                       "than %zu bytes",
                                       prefix, sizeof name - 1);
                const int64_t shape[2] = {GH, k == 0 ? in : H};
                st = attn_params_add(ps, name, k < 2 ? 2 : 1, shape, slot[k]);
                if (st) return st; /* attn_params_add set the message */
                if (rng) attn_init_uniform(*slot[k], bound, rng);
            }
        }
    }
    *rnn = r;
    return ATTN_OK;
}

/* ---- helpers ----------------------------------------------------------------- */

/* A [rows, cols] view of contiguous f32 x starting at element `offset`. */
static attn_tensor *rnn_view(attn_ctx *ctx, attn_tensor *x, int64_t rows, int64_t cols,
                             int64_t offset) {
    return attn__view_rows(ctx, "rnn", x, rows, cols, offset);
}

/* Validates rnn (as attn_rnn_init leaves it) for `fn`; returns 0 or -1. */
static int rnn_check(attn_ctx *ctx, const attn_rnn *rnn, const char *fn) {
    if (!rnn) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: rnn is NULL", fn);
        return -1;
    }
    if (rnn_check_config(&rnn->cfg, fn)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s", attn_last_error());
        return -1;
    }
    const int D = rnn->cfg.bidirectional ? 2 : 1;
    for (int l = 0; l < rnn->cfg.num_layers; l++)
        for (int d = 0; d < D; d++)
            if (!rnn->w_ih[l][d] || !rnn->w_hh[l][d] ||
                (!rnn->cfg.no_bias && (!rnn->b_ih[l][d] || !rnn->b_hh[l][d]))) {
                attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                           "%s: parameters of layer %d direction %d are missing (initialise the "
                           "rnn with attn_rnn_init)",
                           fn, l, d);
                return -1;
            }
    return 0;
}

/* Checks a state tensor [n0, B, H] (n0 < 0: 2-D [B, H]) named `what`. */
static int rnn_check_state(attn_ctx *ctx, const char *fn, const char *what, const attn_tensor *t,
                           int64_t n0, int64_t B, int64_t H) {
    if (attn__check_dtype(ctx, fn, what, t, ATTN_F32)) return -1;
    int ok = n0 < 0 ? (t->ndim == 2 && t->shape[0] == B && t->shape[1] == H)
                    : (t->ndim == 3 && t->shape[0] == n0 && t->shape[1] == B && t->shape[2] == H);
    if (!ok) {
        if (n0 < 0)
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %s %s, expected [B, H] = [%lld,%lld]", fn, what,
                       attn__shp(t), (long long)B, (long long)H);
        else
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %s %s, expected [L*D, B, H] = [%lld,%lld,%lld]",
                       fn, what, attn__shp(t), (long long)n0, (long long)B, (long long)H);
        return -1;
    }
    return 0;
}

/* One cell step (GRU or LSTM) of layer l, direction d; *c is read and
 * replaced for LSTM. t < 0: gx is [B, G*H]; else gx is [T, B, G*H] and the
 * cell reads block t (no view node), or with ids (I32 [T, B]) gx is a
 * per-token table [V, G*H] and the cell reads rows ids[t, :]. */
static attn_tensor *rnn_cell(attn_ctx *ctx, const attn_rnn *rnn, int l, int d, attn_tensor *gx,
                             attn_tensor *ids, int64_t t, attn_tensor *h, attn_tensor **c,
                             attn_tensor *mask) {
    attn_tensor *w = rnn->w_hh[l][d], *b = rnn->b_hh[l][d];
    if (ids)
        return rnn->cfg.cell == ATTN_RNN_LSTM
                   ? attn__lstm_cell_lookup(ctx, gx, ids, t, NULL, h, *c, w, b, mask, c)
                   : attn__gru_cell_lookup(ctx, gx, ids, t, NULL, h, w, b, mask);
    if (rnn->cfg.cell == ATTN_RNN_LSTM)
        return t < 0 ? attn_lstm_cell(ctx, gx, h, *c, w, b, mask, c)
                     : attn_lstm_cell_at(ctx, gx, t, h, *c, w, b, mask, c);
    return t < 0 ? attn_gru_cell(ctx, gx, h, w, b, mask)
                 : attn_gru_cell_at(ctx, gx, t, h, w, b, mask);
}

/* ---- the sequence forward --------------------------------------------------------- */

/* The sequence forward of attn_rnn_forward (x given) and of
 * attn__rnn_forward_ids (x NULL: table [V, In] and ids I32 [B, T] given). */
static attn_tensor *rnn_forward(attn_ctx *ctx, const attn_rnn *rnn, attn_tensor *x,
                                attn_tensor *table, attn_tensor *ids, attn_tensor *lengths,
                                attn_tensor *h0, attn_tensor *c0, attn_tensor **h_n,
                                attn_tensor **c_n, const char *fn) {
    if (h_n) *h_n = NULL;
    if (c_n) *c_n = NULL;
    if (!ctx) return NULL;
    if ((x ? attn__any_null(ctx, fn, 1, x) : attn__any_null(ctx, fn, 2, table, ids)) ||
        rnn_check(ctx, rnn, fn))
        return NULL;
    const attn_rnn_config *cfg = &rnn->cfg;
    const int lstm = cfg->cell == ATTN_RNN_LSTM, D = cfg->bidirectional ? 2 : 1,
              L = cfg->num_layers;
    const int64_t H = cfg->hidden_size;
    if (!lstm && (c0 || c_n)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: c0 or c_n given for a GRU (LSTM only)", fn);
        return NULL;
    }
    if (x) {
        if (attn__check_dtype(ctx, fn, "x", x, ATTN_F32)) return NULL;
        if (x->ndim != 3 || x->shape[0] < 1 || x->shape[1] < 1 ||
            x->shape[2] != cfg->input_size) {
            attn__fail(ctx, ATTN_ERR_SHAPE,
                       "%s: x %s, expected [B, T, In] with B, T >= 1 and In = input_size = %lld",
                       fn, attn__shp(x), (long long)cfg->input_size);
            return NULL;
        }
    } else {
        if (attn__check_dtype(ctx, fn, "table", table, ATTN_F32) ||
            attn__check_dtype(ctx, fn, "ids", ids, ATTN_I32))
            return NULL;
        if (table->ndim != 2 || table->shape[1] != cfg->input_size || ids->ndim != 2 ||
            ids->shape[0] < 1 || ids->shape[1] < 1) {
            attn__fail(ctx, ATTN_ERR_SHAPE,
                       "%s: table %s and ids %s, expected [V, In] with In = input_size = %lld "
                       "and [B, T] with B, T >= 1",
                       fn, attn__shp(table), attn__shp(ids), (long long)cfg->input_size);
            return NULL;
        }
    }
    const int64_t B = x ? x->shape[0] : ids->shape[0], T = x ? x->shape[1] : ids->shape[1];
    if ((h0 && rnn_check_state(ctx, fn, "h0", h0, (int64_t)L * D, B, H)) ||
        (c0 && rnn_check_state(ctx, fn, "c0", c0, (int64_t)L * D, B, H)))
        return NULL;

    /* masks: m [T, B] I32 for the cells, mo [B, T, 1] F32 for the output */
    attn_tensor *m = NULL, *mo = NULL;
    int64_t full_steps = T; /* steps t < full_steps have every row valid */
    if (lengths) {
        if (attn__check_dtype(ctx, fn, "lengths", lengths, ATTN_I32)) return NULL;
        if (lengths->ndim != 1 || lengths->shape[0] != B) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: lengths %s, expected [B] = [%lld] (x is %s)", fn,
                       attn__shp(lengths), (long long)B, attn__shp(x));
            return NULL;
        }
        lengths = attn__contig(ctx, lengths);
        if (!lengths) return NULL;
        const int32_t *len = attn_i32(lengths);
        for (int64_t b = 0; b < B; b++) {
            if (len[b] < 0 || len[b] > T) {
                attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                           "%s: lengths[%lld] = %d is outside [0, T] = [0, %lld]", fn, (long long)b,
                           (int)len[b], (long long)T);
                return NULL;
            }
            if (len[b] < full_steps) full_steps = len[b];
        }
        if (full_steps < T) {
            const int64_t msh[2] = {T, B}, osh[3] = {B, T, 1};
            m = attn__tensor(ctx, fn, ATTN_I32, 2, msh);
            mo = attn__tensor(ctx, fn, ATTN_F32, 3, osh);
            if (!m || !mo) return NULL;
            for (int64_t t = 0; t < T; t++)
                for (int64_t b = 0; b < B; b++) {
                    attn_i32(m)[t * B + b] = t < len[b];
                    attn_f32(mo)[b * T + t] = t < len[b] ? 1.0f : 0.0f;
                }
        }
    }
    attn_tensor **mask_t = attn__alloc(ctx, sizeof(attn_tensor *) * (size_t)T, fn);
    /* outs[t*D + d]: the states of the layer running, time-major;
     * outs_d: one direction's T of them */
    attn_tensor **outs = attn__alloc(ctx, sizeof(attn_tensor *) * (size_t)(T * D), fn);
    attn_tensor **outs_d = attn__alloc(ctx, sizeof(attn_tensor *) * (size_t)T, fn);
    attn_tensor **fin_h = attn__alloc(ctx, sizeof(attn_tensor *) * (size_t)(L * D), fn);
    attn_tensor **fin_c = attn__alloc(ctx, sizeof(attn_tensor *) * (size_t)(L * D), fn);
    if (!mask_t || !outs || !outs_d || !fin_h || !fin_c) return NULL;
    for (int64_t t = 0; t < T; t++) {
        /* step t's mask: row t of m, [B] (integer data: no node needed) */
        const int64_t one = 1;
        mask_t[t] = NULL;
        if (m && t >= full_steps &&
            !(mask_t[t] = attn__tensor_view(ctx, fn, ATTN_I32, 1, &B, &one, attn_i32(m) + t * B)))
            return NULL;
    }
    if (h0 && !(h0 = attn__contig(ctx, h0))) return NULL;
    if (c0 && !(c0 = attn__contig(ctx, c0))) return NULL;
    attn_tensor *zeros = NULL;
    if (!h0 || (lstm && !c0)) {
        const int64_t zsh[2] = {B, H};
        if (!(zeros = attn_tensor_new(ctx, ATTN_F32, 2, zsh))) return NULL;
    }

    /* the input, time-major: x as [T, B, In], or the ids as [T, B] */
    attn_tensor *in = x, *ids_tm = NULL;
    if (!x) {
        ids = attn__contig(ctx, ids);
        const int64_t tsh[2] = {T, B};
        if (!ids || !(ids_tm = attn__tensor(ctx, fn, ATTN_I32, 2, tsh))) return NULL;
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < T; t++) attn_i32(ids_tm)[t * B + b] = attn_i32(ids)[b * T + t];
    } else if (B > 1 && T > 1) {
        in = attn_contiguous(ctx, attn_transpose(ctx, x, 0, 1));
    } else {
        in = attn_reshape(ctx, x, 3, (const int64_t[3]){T, B, cfg->input_size});
    }
    if (!in && !ids_tm) return NULL;

    attn_tensor *y = NULL;
    for (int l = 0; l < L; l++) {
        for (int d = 0; d < D; d++) {
            /* gx [T, B, G*H]; from ids, the per-token table
             * P = table W_ih^T + b_ih [V, G*H] whose rows ids[t, b] the
             * cells read (embedding then projection is projection then
             * lookup: V rows are projected instead of T*B) */
            attn_tensor *gids = l == 0 ? ids_tm : NULL;
            attn_tensor *gx = gids ? attn_linear(ctx, table, rnn->w_ih[0][d], rnn->b_ih[0][d])
                                   : attn_linear(ctx, in, rnn->w_ih[l][d], rnn->b_ih[l][d]);
            if (!gx) return NULL;
            const int64_t k = (int64_t)l * D + d;
            attn_tensor *h = h0 ? rnn_view(ctx, h0, B, H, k * B * H) : zeros;
            attn_tensor *c = lstm ? (c0 ? rnn_view(ctx, c0, B, H, k * B * H) : zeros) : NULL;
            if (!h || (lstm && !c)) return NULL;
            for (int64_t s = 0; s < T; s++) {
                const int64_t t = d ? T - 1 - s : s;
                if (!(h = rnn_cell(ctx, rnn, l, d, gx, gids, t, h, &c, mask_t[t]))) return NULL;
                outs[t * D + d] = h;
            }
            fin_h[k] = h;
            fin_c[k] = c;
        }
        if (l == L - 1) {
            /* the output, batch first, with one concat along the rows of the
             * [B, H] states: row b of the result is (h_0f, h_0r, h_1f, ...)[b],
             * which is [B, T, D*H] as it is (no transpose, no copy per
             * direction) */
            y = attn_reshape(ctx, attn_concat(ctx, outs, (int)(T * D), 1), 3,
                             (const int64_t[3]){B, T, D * H});
            break;
        }
        /* the next layer's input, time-major [T, B, D*H] */
        attn_tensor *ys[2] = {NULL, NULL};
        for (int d = 0; d < D; d++) {
            for (int64_t t = 0; t < T; t++) outs_d[t] = outs[t * D + d];
            /* [T*B, H] -> [T, B, H] */
            ys[d] = attn_reshape(ctx, attn_concat(ctx, outs_d, (int)T, 0), 3,
                                 (const int64_t[3]){T, B, H});
            if (!ys[d]) return NULL;
        }
        in = D == 2 ? attn_concat(ctx, ys, 2, 2) : ys[0];
        if (in && cfg->dropout > 0.0f) in = attn_dropout(ctx, in, cfg->dropout);
        if (!in) return NULL;
    }
    /* padded positions -> 0 */
    if (y && mo) y = attn_mul(ctx, y, mo);
    if (!y) return NULL;

    /* final states [L*D, B, H] */
    const int64_t fsh[3] = {(int64_t)L * D, B, H};
    if (h_n) {
        attn_tensor *hn = attn_reshape(ctx, attn_concat(ctx, fin_h, L * D, 0), 3, fsh);
        if (!hn) return NULL;
        *h_n = hn;
    }
    if (c_n) {
        attn_tensor *cn = attn_reshape(ctx, attn_concat(ctx, fin_c, L * D, 0), 3, fsh);
        if (!cn) {
            if (h_n) *h_n = NULL;
            return NULL;
        }
        *c_n = cn;
    }
    return y;
}

attn_tensor *attn_rnn_forward(attn_ctx *ctx, const attn_rnn *rnn, attn_tensor *x,
                              attn_tensor *lengths, attn_tensor *h0, attn_tensor *c0,
                              attn_tensor **h_n, attn_tensor **c_n) {
    return rnn_forward(ctx, rnn, x, NULL, NULL, lengths, h0, c0, h_n, c_n, "attn_rnn_forward");
}

attn_tensor *attn__rnn_forward_ids(attn_ctx *ctx, const attn_rnn *rnn, attn_tensor *table,
                                   attn_tensor *ids, attn_tensor *lengths, attn_tensor *h0,
                                   attn_tensor *c0, attn_tensor **h_n, attn_tensor **c_n) {
    return rnn_forward(ctx, rnn, NULL, table, ids, lengths, h0, c0, h_n, c_n,
                       "attn__rnn_forward_ids");
}

/* ---- one step ---------------------------------------------------------------------- */

attn_tensor *attn_rnn_step(attn_ctx *ctx, const attn_rnn *rnn, attn_tensor *x_t,
                           attn_tensor *const *h_in, attn_tensor *const *c_in, attn_tensor **h_out,
                           attn_tensor **c_out) {
    static const char fn[] = "attn_rnn_step";
    if (!ctx) return NULL;
    if (attn__any_null(ctx, fn, 1, x_t) || rnn_check(ctx, rnn, fn)) return NULL;
    const attn_rnn_config *cfg = &rnn->cfg;
    const int lstm = cfg->cell == ATTN_RNN_LSTM, L = cfg->num_layers;
    const int64_t H = cfg->hidden_size;
    if (cfg->bidirectional) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: the rnn is bidirectional; a step needs a unidirectional rnn", fn);
        return NULL;
    }
    if (!lstm && (c_in || c_out)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: c_in or c_out given for a GRU (LSTM only)", fn);
        return NULL;
    }
    if (L > 1 && (!h_out || (lstm && !c_out))) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: h_out%s must hold the %d layers' states (NULL only when num_layers = 1)",
                   fn, lstm ? " and c_out" : "", L);
        return NULL;
    }
    if (attn__check_dtype(ctx, fn, "x_t", x_t, ATTN_F32)) return NULL;
    if (x_t->ndim != 2 || x_t->shape[0] < 1 || x_t->shape[1] != cfg->input_size) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x_t %s, expected [B, In] with In = input_size = %lld",
                   fn, attn__shp(x_t), (long long)cfg->input_size);
        return NULL;
    }
    const int64_t B = x_t->shape[0];
    for (int l = 0; l < L; l++) {
        char what[32];
        if (h_in) {
            snprintf(what, sizeof what, "h_in[%d]", l);
            if (attn__any_null(ctx, fn, 1, h_in[l]) ||
                rnn_check_state(ctx, fn, what, h_in[l], -1, B, H))
                return NULL;
        }
        if (c_in) {
            snprintf(what, sizeof what, "c_in[%d]", l);
            if (attn__any_null(ctx, fn, 1, c_in[l]) ||
                rnn_check_state(ctx, fn, what, c_in[l], -1, B, H))
                return NULL;
        }
    }
    attn_tensor *zeros = NULL;
    if (!h_in || (lstm && !c_in)) {
        const int64_t zsh[2] = {B, H};
        if (!(zeros = attn_tensor_new(ctx, ATTN_F32, 2, zsh))) return NULL;
    }
    attn_tensor *in = x_t;
    for (int l = 0; l < L; l++) {
        if (l > 0 && cfg->dropout > 0.0f && !(in = attn_dropout(ctx, in, cfg->dropout)))
            return NULL;
        attn_tensor *gx = attn_linear(ctx, in, rnn->w_ih[l][0], rnn->b_ih[l][0]);
        attn_tensor *c = lstm ? (c_in ? c_in[l] : zeros) : NULL;
        attn_tensor *h =
            gx ? rnn_cell(ctx, rnn, l, 0, gx, NULL, -1, h_in ? h_in[l] : zeros, &c, NULL) : NULL;
        if (!h) return NULL;
        if (h_out) h_out[l] = h;
        if (c_out) c_out[l] = c;
        in = h;
    }
    return in;
}
