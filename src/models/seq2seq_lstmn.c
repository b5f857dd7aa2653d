/* seq2seq_lstmn.c: the LSTMN encoder-decoder (include/attn/seq2seq.h, fusion
 * SHALLOW and DEEP; private interface seq2seq_lstmn.h; the math and its
 * backward in docs/lstmn.md, "The encoder-decoder").
 *
 * Everything is composed from graph ops (linear, additive_score, softmax,
 * bmm, concat, the activations), so the backward is the tape's: no kernel of
 * its own. One step of either side, on N rows, with the tape of n slots
 * (h [N, n, H], c [N, n, H], the keys W_h h [N, n, A]) and the input
 * projection z = W_in x_t + b_in [N, P]:
 *   q      = z[4H : 4H+A] (+ W_h~ h~_{t-1})                [N, A]
 *   s      = softmax(v . tanh(keys + q))                   [N, n]   (attn_additive_score)
 *   h~, c~ = s h, s c                                      [N, H]   (attn_bmm)
 *   i f g o = sigma, sigma, tanh, sigma (z[0 : 4H] + W_hh h~)
 *   c_t    = f c~ + i g  (+ r alpha~, deep)
 *   h_t    = o tanh(c_t)
 * and (h_t, c_t, W_h h_t) become slot n. Deep fusion adds, before the cell:
 *   q'     = z[4H+A : 4H+2A] (+ W_gamma~ gamma~_{t-1})
 *   p      = softmax(u . tanh(W_gamma gamma_j + q') + mask)     over the source
 *   gamma~, alpha~ = p gamma, p alpha  (the encoder's hidden and memory tapes)
 *   r      = sigma(z[4H+2A : P] + W_r gamma~)
 * The tape grows by one concat per step (O(T^2) copies; T is a sentence).
 *
 * Decoding keeps the tapes in flat buffers below the arena mark (two of
 * each, swapped every step): after the beam step row i's tape is row
 * parent[i]'s, the new slot appended, written into the other buffer; a step
 * reads a [N, n, *] view of the current one.
 */
#include "seq2seq_lstmn.h"

#include <math.h>
#include <string.h>

#include "../core/internal.h"
#include "../ops/view_internal.h"
#include "s2s_common.h"
#include "attn/params.h"
#include "attn/ops.h"

/* ---- parameters -------------------------------------------------------------------- */

static attn_status lstmn_param(attn_params *ps, const char *name, int64_t d0, int64_t d1,
                               int64_t in, attn_rng *rng, attn_tensor **out) {
    const int64_t shape[2] = {d0, d1};
    attn_status st = attn_params_add(ps, name, d1 ? 2 : 1, shape, out);
    if (st || !rng) return st;
    attn_init_uniform(*out, (float)(1.0 / sqrt((double)(d1 ? d1 : in))), rng);
    return ATTN_OK;
}

attn_status attn__s2s_lstmn_init(attn__s2s_lstmn *p, attn_params *ps, const attn_seq2seq_config *c,
                                 int part, attn_rng *rng) {
    const int64_t H = c->hidden, A = c->attn_dim ? c->attn_dim : c->hidden, E = c->emb_dim;
    if (part == 0) {
        memset(p, 0, sizeof *p);
        p->deep = c->fusion == ATTN_S2S_FUSION_DEEP;
        p->H = H;
        p->A = A;
        p->E = E;
        p->P = 4 * H + A + (p->deep ? A + H : 0);
        p->dropout = c->dropout;
        p->pad_id = c->pad_id;
        attn_status st = lstmn_param(ps, "encoder.lstmn.weight_in", 4 * H + A, E, 0, rng, &p->e_in_w);
        if (!st) st = lstmn_param(ps, "encoder.lstmn.bias_in", 4 * H + A, 0, E, rng, &p->e_in_b);
        if (!st) st = lstmn_param(ps, "encoder.lstmn.weight_hh", 4 * H, H, 0, rng, &p->e_hh);
        if (!st) st = lstmn_param(ps, "encoder.lstmn.weight_mem", A, H, 0, rng, &p->e_mem);
        if (!st) st = lstmn_param(ps, "encoder.lstmn.v", A, 0, A, rng, &p->e_v);
        return st;
    }
    const int64_t In = E + H;
    attn_status st = lstmn_param(ps, "decoder.lstmn.weight_in", p->P, In, 0, rng, &p->d_in_w);
    if (!st) st = lstmn_param(ps, "decoder.lstmn.bias_in", p->P, 0, In, rng, &p->d_in_b);
    if (!st) st = lstmn_param(ps, "decoder.lstmn.weight_hh", 4 * H, H, 0, rng, &p->d_hh);
    if (!st) st = lstmn_param(ps, "decoder.lstmn.weight_mem", A, H, 0, rng, &p->d_mem);
    if (!st) st = lstmn_param(ps, "decoder.lstmn.v", A, 0, A, rng, &p->d_v);
    if (!st) st = lstmn_param(ps, "decoder.lstmn.weight_sum", A, H, 0, rng, &p->d_sum);
    if (!st && p->deep) {
        st = lstmn_param(ps, "decoder.fusion.weight_enc", A, H, 0, rng, &p->f_enc);
        if (!st) st = lstmn_param(ps, "decoder.fusion.weight_sum", A, H, 0, rng, &p->f_sum);
        if (!st) st = lstmn_param(ps, "decoder.fusion.u", A, 0, A, rng, &p->f_v);
        if (!st) st = lstmn_param(ps, "decoder.fusion.weight_r", H, H, 0, rng, &p->f_r);
    }
    return st;
}

/* ---- one step ----------------------------------------------------------------------- */

/* The tape of one side and what the next step's scores read. */
typedef struct lstmn_tape {
    attn_tensor *h, *c, *k; /* [N, n, H], [N, n, H], [N, n, A] */
    attn_tensor *hsum;      /* h~_{t-1} [N, H] (h_0 at t = 0), read by W_h~ */
    attn_tensor *gsum;      /* deep: gamma~_{t-1} [N, H]; NULL at t = 0 (zeros) */
} lstmn_tape;

/* The encoder's tapes as the deep fusion reads them. */
typedef struct lstmn_enc_mem {
    attn_tensor *key;  /* W_gamma gamma [N, S, A] */
    attn_tensor *h, *c; /* gamma, alpha [N, S, H] */
    attn_tensor *mask; /* [N, 1, S] additive, or NULL */
} lstmn_enc_mem;

/* The weights of one side's cell. */
typedef struct lstmn_cell_w {
    attn_tensor *hh, *mem, *v, *sum; /* sum NULL: no h~ term */
} lstmn_cell_w;

typedef struct lstmn_step_out {
    attn_tensor *h, *c, *k; /* the new slot: [N, H], [N, H], [N, A] */
    attn_tensor *hsum;      /* h~_t */
    attn_tensor *gsum;      /* deep: gamma~_t */
} lstmn_step_out;

static attn_tensor *rows3(attn_ctx *ctx, attn_tensor *x, int64_t N, int64_t n, int64_t C) {
    const int64_t sh[3] = {N, n, C};
    return attn_reshape(ctx, x, 3, sh);
}

static attn_tensor *rows2(attn_ctx *ctx, attn_tensor *x, int64_t N, int64_t C) {
    const int64_t sh[2] = {N, C};
    return attn_reshape(ctx, x, 2, sh);
}

/* An attention read: q [N, A] (made contiguous) against keys [N, n, A] with
 * score vector v, softmax (+ mask), then the weighted sums of va and vb
 * [N, n, H] into *ra, *rb [N, H]. 0 or -1. */
static int lstmn_read(attn_ctx *ctx, attn_tensor *q, attn_tensor *keys, attn_tensor *v,
                      attn_tensor *mask, attn_tensor *va, attn_tensor *vb, attn_tensor **ra,
                      attn_tensor **rb) {
    const int64_t N = keys->shape[0], A = keys->shape[2], H = va->shape[2];
    attn_tensor *q3 = rows3(ctx, attn_contiguous(ctx, q), N, 1, A);
    attn_tensor *s = q3 ? attn_softmax(ctx, attn_additive_score(ctx, q3, keys, v), mask) : NULL;
    if (!s) return -1;
    *ra = rows2(ctx, attn_bmm(ctx, s, va, 0, 0), N, H);
    *rb = rows2(ctx, attn_bmm(ctx, s, vb, 0, 0), N, H);
    return *ra && *rb ? 0 : -1;
}

/* One LSTMN step on z = W_in x_t + b_in [N, P] (P >= 4H + A; the deep part
 * when em is not NULL). 0 or -1 (recorded). */
static int lstmn_step(attn_ctx *ctx, const attn__s2s_lstmn *p, const lstmn_cell_w *w,
                      attn_tensor *z, const lstmn_tape *tp, const lstmn_enc_mem *em,
                      lstmn_step_out *o) {
    const int64_t H = p->H, A = p->A, N = z->shape[0];
    memset(o, 0, sizeof *o);
    /* intra-attention over the own tape */
    attn_tensor *q = attn_slice(ctx, z, 1, 4 * H, A);
    if (w->sum && q) q = attn_add(ctx, q, attn_linear(ctx, tp->hsum, w->sum, NULL));
    attn_tensor *ht, *ct;
    if (!q || lstmn_read(ctx, q, tp->k, w->v, NULL, tp->h, tp->c, &ht, &ct)) return -1;
    attn_tensor *g = attn_add(ctx, attn_slice(ctx, z, 1, 0, 4 * H), attn_linear(ctx, ht, w->hh, NULL));
    attn_tensor *gates[4];
    const int64_t sizes[4] = {H, H, H, H};
    if (!g || attn_split(ctx, g, 1, 4, sizes, gates)) return -1;
    attn_tensor *ig = attn_sigmoid(ctx, gates[0]), *fg = attn_sigmoid(ctx, gates[1]);
    attn_tensor *gg = attn_tanh(ctx, gates[2]), *og = attn_sigmoid(ctx, gates[3]);
    attn_tensor *c = attn_add(ctx, attn_mul(ctx, fg, ct), attn_mul(ctx, ig, gg));
    if (!c) return -1;
    if (em) { /* deep fusion: inter-attention over the encoder's tapes, gated into c */
        attn_tensor *q2 = attn_slice(ctx, z, 1, 4 * H + A, A);
        if (tp->gsum && q2) q2 = attn_add(ctx, q2, attn_linear(ctx, tp->gsum, p->f_sum, NULL));
        attn_tensor *gt, *at;
        if (!q2 || lstmn_read(ctx, q2, em->key, p->f_v, em->mask, em->h, em->c, &gt, &at))
            return -1;
        attn_tensor *r = attn_sigmoid(
            ctx, attn_add(ctx, attn_slice(ctx, z, 1, 4 * H + 2 * A, H), attn_linear(ctx, gt, p->f_r, NULL)));
        c = attn_add(ctx, c, attn_mul(ctx, r, at));
        o->gsum = gt;
    }
    o->c = c;
    o->h = attn_mul(ctx, og, attn_tanh(ctx, c));
    o->k = o->h ? attn_linear(ctx, o->h, w->mem, NULL) : NULL;
    o->hsum = ht;
    (void)N;
    return o->k ? 0 : -1;
}

/* Appends the step's slot to a tape recorded on the graph (training). */
static int lstmn_append(attn_ctx *ctx, lstmn_tape *tp, const lstmn_step_out *o) {
    const int64_t N = o->h->shape[0], H = o->h->shape[1], A = o->k->shape[1];
    attn_tensor *hh[2] = {tp->h, rows3(ctx, o->h, N, 1, H)};
    attn_tensor *cc[2] = {tp->c, rows3(ctx, o->c, N, 1, H)};
    attn_tensor *kk[2] = {tp->k, rows3(ctx, o->k, N, 1, A)};
    if (!hh[1] || !cc[1] || !kk[1]) return -1;
    tp->h = attn_concat(ctx, hh, 2, 1);
    tp->c = attn_concat(ctx, cc, 2, 1);
    tp->k = attn_concat(ctx, kk, 2, 1);
    tp->hsum = o->hsum;
    tp->gsum = o->gsum;
    return tp->h && tp->c && tp->k ? 0 : -1;
}

/* ---- encoder ------------------------------------------------------------------------ */

typedef struct lstmn_enc {
    attn_tensor *h, *c; /* the states after each position [B, S, H] (slot 0 left out) */
    attn_tensor *s0;    /* tanh(bridge(h at the last valid position)) [B, H] */
} lstmn_enc;

static int lstmn_encode(attn_ctx *ctx, const attn__s2s_lstmn *p, attn_tensor *src,
                        attn_tensor *src_len, lstmn_enc *e, const char *fn) {
    const int64_t B = src->shape[0], S = src->shape[1], H = p->H, A = p->A;
    attn_tensor *x = attn_embedding(ctx, p->enc_emb, src); /* [B, S, E] */
    if (p->dropout > 0.0f) x = attn_dropout(ctx, x, p->dropout);
    attn_tensor *zall = x ? attn_linear(ctx, x, p->e_in_w, p->e_in_b) : NULL; /* [B, S, 4H+A] */
    const int64_t bh[3] = {B, 1, H}, ba[3] = {B, 1, A};
    lstmn_tape tp = {attn_tensor_new(ctx, ATTN_F32, 3, bh), attn_tensor_new(ctx, ATTN_F32, 3, bh),
                     attn_tensor_new(ctx, ATTN_F32, 3, ba), NULL, NULL}; /* slot 0: zeros */
    if (!zall || !tp.h || !tp.c || !tp.k) return -1;
    const lstmn_cell_w w = {p->e_hh, p->e_mem, p->e_v, NULL}; /* no h~ term: the encoder form */
    for (int64_t t = 0; t < S; t++) {
        attn_tensor *z = rows2(ctx, attn_slice(ctx, zall, 1, t, 1), B, 4 * H + A);
        lstmn_step_out o;
        if (!z || lstmn_step(ctx, p, &w, z, &tp, NULL, &o) || lstmn_append(ctx, &tp, &o))
            return -1;
    }
    e->h = attn_contiguous(ctx, attn_slice(ctx, tp.h, 1, 1, S));
    e->c = attn_contiguous(ctx, attn_slice(ctx, tp.c, 1, 1, S));
    /* the state at the last valid position: a one-hot row read by bmm */
    const int64_t sh[3] = {B, 1, S};
    attn_tensor *pick = attn__tensor(ctx, fn, ATTN_F32, 3, sh);
    attn_tensor *len = attn__contig(ctx, src_len);
    if (!e->h || !e->c || !pick || !len) return -1;
    memset(pick->data, 0, sizeof(float) * (size_t)(B * S));
    for (int64_t b = 0; b < B; b++) attn_f32(pick)[b * S + attn_i32(len)[b] - 1] = 1.0f;
    attn_tensor *last = rows2(ctx, attn_bmm(ctx, pick, e->h, 0, 0), B, H);
    e->s0 = last ? attn_tanh(ctx, attn_linear(ctx, last, p->bridge_w, p->bridge_b)) : NULL;
    return e->s0 ? 0 : -1;
}

/* The decoder's tape for N rows from s0 [N, H]: slot 0 = (s0, 0). */
static int lstmn_dec_tape(attn_ctx *ctx, const attn__s2s_lstmn *p, attn_tensor *s0,
                          lstmn_tape *tp) {
    const int64_t N = s0->shape[0], H = p->H, A = p->A, nh[3] = {N, 1, H};
    memset(tp, 0, sizeof *tp);
    tp->h = rows3(ctx, s0, N, 1, H);
    tp->c = attn_tensor_new(ctx, ATTN_F32, 3, nh);
    tp->k = rows3(ctx, attn_linear(ctx, s0, p->d_mem, NULL), N, 1, A);
    tp->hsum = s0;
    return tp->h && tp->c && tp->k ? 0 : -1;
}

/* Decoder step t: Bahdanau's context from the previous state `prev`, the
 * input x_t = [emb; c_t], the LSTMN step. ctx_out, a_out: the context
 * [N, H] and weights [N, S]. */
static int lstmn_dec_step(attn_ctx *ctx, const attn__s2s_lstmn *p,
                          const attn_attention_memory *mem, const lstmn_enc_mem *em,
                          attn_tensor *emb, attn_tensor *prev, const lstmn_tape *tp, int64_t t,
                          lstmn_step_out *o, attn_tensor **ctx_out, attn_tensor **a_out) {
    attn_tensor *ct = attn_attention_forward(ctx, p->att, mem, prev, t, a_out, NULL);
    if (!ct) return -1;
    attn_tensor *xs[2] = {emb, ct};
    attn_tensor *z = attn_linear(ctx, attn_concat(ctx, xs, 2, 1), p->d_in_w, p->d_in_b);
    const lstmn_cell_w w = {p->d_hh, p->d_mem, p->d_v, p->d_sum};
    if (!z || lstmn_step(ctx, p, &w, z, tp, p->deep ? em : NULL, o)) return -1;
    *ctx_out = ct;
    return 0;
}

/* ---- the teacher-forced loss -------------------------------------------------------- */

static attn_tensor *lstmn_time_major(attn_ctx *ctx, attn_tensor *ids, const char *fn) {
    attn_tensor *c = attn__contig(ctx, ids);
    if (!c) return NULL;
    const int64_t B = c->shape[0], T = c->shape[1], sh[2] = {T, B};
    attn_tensor *y = attn__tensor(ctx, fn, ATTN_I32, 2, sh);
    if (!y) return NULL;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) attn_i32(y)[t * B + b] = attn_i32(c)[b * T + t];
    return y;
}

attn_tensor *attn__s2s_lstmn_loss(attn_ctx *ctx, const attn__s2s_lstmn *p,
                                  const attn_s2s_batch *batch, float label_smoothing,
                                  attn_tensor **weights_out) {
    static const char fn[] = "attn_seq2seq_loss";
    const int64_t B = batch->src->shape[0], S = batch->src->shape[1], T = batch->tgt_in->shape[1];
    const int64_t H = p->H, E = p->E;
    lstmn_enc e;
    if (lstmn_encode(ctx, p, batch->src, batch->src_len, &e, fn)) return NULL;
    attn_attention_memory mem;
    if (attn_attention_memory_init(ctx, p->att, e.h, batch->src_len, &mem)) return NULL;
    lstmn_enc_mem em = {NULL, e.h, e.c, mem.mask};
    if (p->deep && !(em.key = attn_linear(ctx, e.h, p->f_enc, NULL))) return NULL;

    attn_tensor *tin = lstmn_time_major(ctx, batch->tgt_in, fn);
    attn_tensor *emb = tin ? attn_embedding(ctx, p->dec_emb, tin) : NULL; /* [T, B, E] */
    if (emb && p->dropout > 0.0f) emb = attn_dropout(ctx, emb, p->dropout);
    emb = emb ? attn_reshape(ctx, emb, 2, (const int64_t[2]){T * B, E}) : NULL;
    lstmn_tape tp;
    if (!emb || lstmn_dec_tape(ctx, p, e.s0, &tp)) return NULL;
    attn_tensor **hs = attn__alloc(ctx, sizeof(attn_tensor *) * (size_t)T, fn);
    attn_tensor **cs = attn__alloc(ctx, sizeof(attn_tensor *) * (size_t)T, fn);
    attn_tensor **as = attn__alloc(ctx, sizeof(attn_tensor *) * (size_t)T, fn);
    if (!hs || !cs || !as) return NULL;
    attn_tensor *prev = e.s0;
    for (int64_t t = 0; t < T; t++) {
        lstmn_step_out o;
        attn_tensor *et = attn_slice(ctx, emb, 0, t * B, B);
        if (!et || lstmn_dec_step(ctx, p, &mem, &em, et, prev, &tp, t, &o, &cs[t], &as[t]) ||
            lstmn_append(ctx, &tp, &o))
            return NULL;
        hs[t] = prev = o.h;
    }
    attn_tensor *two[2] = {attn_concat(ctx, hs, (int)T, 0), attn_concat(ctx, cs, (int)T, 0)};
    attn_tensor *out_in = two[0] && two[1] ? attn_concat(ctx, two, 2, 1) : NULL; /* [T*B, 2H] */
    attn_tensor *logits = out_in ? attn_linear(ctx, out_in, p->out_w, p->out_b) : NULL;
    attn_tensor *tout = logits ? lstmn_time_major(ctx, batch->tgt_out, fn) : NULL;
    const int64_t n = T * B;
    attn_tensor *tflat = tout ? attn_reshape(ctx, tout, 1, &n) : NULL;
    attn_tensor *loss =
        tflat ? attn_cross_entropy(ctx, logits, tflat, p->pad_id, label_smoothing) : NULL;
    if (!loss) return NULL;
    if (weights_out) {
        const int64_t sh[3] = {T, B, S};
        attn_tensor *w = attn_reshape(ctx, attn_concat(ctx, as, (int)T, 0), 3, sh);
        w = attn_contiguous(ctx, attn_transpose(ctx, w, 0, 1)); /* [B, T, S] */
        if (!w) return NULL;
        *weights_out = w;
    }
    (void)H;
    return loss;
}

/* ---- decoding ----------------------------------------------------------------------- */

/* x [B, ...] (contiguous) with every row repeated k times; x itself when k == 1. */
static attn_tensor *lstmn_repeat_rows(attn_ctx *ctx, attn_tensor *x, int64_t k, const char *fn) {
    if (k == 1 || !x) return x;
    x = attn__contig(ctx, x);
    if (!x) return NULL;
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

/* Row i of dst [N, n+1, C] (packed) = row parent[i] of src [N, n, C] and
 * then row parent[i] of add [N, C]. */
static void lstmn_tape_gather(float *dst, const float *src, const float *add, const int32_t *parent,
                              int64_t N, int64_t n, int64_t C) {
    for (int64_t i = 0; i < N; i++) {
        const int64_t pi = parent[i];
        memcpy(dst + i * (n + 1) * C, src + pi * n * C, sizeof(float) * (size_t)(n * C));
        memcpy(dst + (i * (n + 1) + n) * C, add + pi * C, sizeof(float) * (size_t)C);
    }
}

static void lstmn_rows_gather(float *dst, const float *src, const int32_t *parent, int64_t N,
                              int64_t C) {
    for (int64_t i = 0; i < N; i++)
        memcpy(dst + i * C, src + (int64_t)parent[i] * C, sizeof(float) * (size_t)C);
}

int attn__s2s_lstmn_decode(attn_ctx *ctx, const attn__s2s_lstmn *p, const attn_seq2seq_config *c,
                           const attn_s2s_batch *batch, const attn_decode_config *dc,
                           int32_t *out_ids, int32_t *out_len, float *align) {
    static const char fn[] = "attn_seq2seq_decode";
    const int64_t B = batch->src->shape[0], S = batch->src->shape[1];
    const int k = dc->beam;
    const int64_t N = B * k, H = p->H, A = p->A, Vt = c->tgt_vocab, maxT = dc->max_len;
    lstmn_enc e;
    if (lstmn_encode(ctx, p, batch->src, batch->src_len, &e, fn)) return -1;
    attn_tensor *mem_h = lstmn_repeat_rows(ctx, e.h, k, fn);
    attn_tensor *mem_c = p->deep ? lstmn_repeat_rows(ctx, e.c, k, fn) : NULL;
    attn_tensor *len_c = attn__contig(ctx, batch->src_len);
    attn_tensor *mem_len = len_c ? lstmn_repeat_rows(ctx, len_c, k, fn) : NULL;
    attn_tensor *s0 = lstmn_repeat_rows(ctx, e.s0, k, fn);
    attn_attention_memory mem;
    if (!mem_h || !mem_len || !s0 || (p->deep && !mem_c) ||
        attn_attention_memory_init(ctx, p->att, mem_h, mem_len, &mem))
        return -1;
    lstmn_enc_mem em = {NULL, mem_h, mem_c, mem.mask};
    if (p->deep && !(em.key = attn_linear(ctx, mem_h, p->f_enc, NULL))) return -1;

    /* what survives a step, below the mark: two buffers per tape */
    const int64_t slots = maxT + 1;
    const int64_t th[1] = {N * slots * H}, ta[1] = {N * slots * A}, nh[2] = {N, H}, ish[2] = {1, N};
    attn_tensor *bh[2], *bc[2], *bk[2];
    for (int j = 0; j < 2; j++) {
        bh[j] = attn__tensor(ctx, fn, ATTN_F32, 1, th);
        bc[j] = attn__tensor(ctx, fn, ATTN_F32, 1, th);
        bk[j] = attn__tensor(ctx, fn, ATTN_F32, 1, ta);
        if (!bh[j] || !bc[j] || !bk[j]) return -1;
    }
    attn_tensor *prev = attn__tensor(ctx, fn, ATTN_F32, 2, nh);
    attn_tensor *hsum = attn__tensor(ctx, fn, ATTN_F32, 2, nh);
    attn_tensor *gsum = p->deep ? attn__tensor(ctx, fn, ATTN_F32, 2, nh) : NULL;
    attn_tensor *ids = attn__tensor(ctx, fn, ATTN_I32, 2, ish);
    attn_tensor *k0 = attn_linear(ctx, s0, p->d_mem, NULL);
    if (!prev || !hsum || (p->deep && !gsum) || !ids || !k0) return -1;
    /* slot 0 = (s0, 0, W_h s0) */
    memcpy(attn_f32(bh[0]), attn_f32(s0), sizeof(float) * (size_t)(N * H));
    memset(attn_f32(bc[0]), 0, sizeof(float) * (size_t)(N * H));
    memcpy(attn_f32(bk[0]), attn_f32(k0), sizeof(float) * (size_t)(N * A));
    memcpy(attn_f32(prev), attn_f32(s0), sizeof(float) * (size_t)(N * H));
    memcpy(attn_f32(hsum), attn_f32(s0), sizeof(float) * (size_t)(N * H));
    const int want_align = align != NULL;
    attn__beam bm;
    if (attn__beam_init(ctx, &bm, B, k, maxT, want_align ? S : 0, (double)dc->length_alpha,
                        c->pad_id, c->bos_id, c->eos_id, fn))
        return -1;
    memcpy(ids->data, bm.next, sizeof(int32_t) * (size_t)N);

    int cur = 0;
    const size_t mark = attn__arena_mark(ctx);
    for (int64_t t = 0; t < maxT; t++) {
        const int64_t n = t + 1;
        lstmn_tape tp = {rows3(ctx, attn__view_rows(ctx, fn, bh[cur], N * n, H, 0), N, n, H),
                         rows3(ctx, attn__view_rows(ctx, fn, bc[cur], N * n, H, 0), N, n, H),
                         rows3(ctx, attn__view_rows(ctx, fn, bk[cur], N * n, A, 0), N, n, A),
                         hsum, t > 0 ? gsum : NULL};
        attn_tensor *emb = rows2(ctx, attn_embedding(ctx, p->dec_emb, ids), N, p->E);
        lstmn_step_out o;
        attn_tensor *ct, *a = NULL;
        if (!tp.h || !tp.c || !tp.k || !emb ||
            lstmn_dec_step(ctx, p, &mem, &em, emb, prev, &tp, t, &o, &ct, &a))
            return -1;
        attn_tensor *two[2] = {o.h, ct};
        attn_tensor *lp = attn_log_softmax(
            ctx, attn_linear(ctx, attn_concat(ctx, two, 2, 1), p->out_w, p->out_b), NULL);
        if (!lp) return -1;
        if (attn__beam_step(&bm, t, attn_f32(lp), Vt, want_align ? attn_f32(a) : NULL)) break;
        const int nx = 1 - cur;
        lstmn_tape_gather(attn_f32(bh[nx]), attn_f32(bh[cur]), attn_f32(o.h), bm.parent, N, n, H);
        lstmn_tape_gather(attn_f32(bc[nx]), attn_f32(bc[cur]), attn_f32(o.c), bm.parent, N, n, H);
        lstmn_tape_gather(attn_f32(bk[nx]), attn_f32(bk[cur]), attn_f32(o.k), bm.parent, N, n, A);
        lstmn_rows_gather(attn_f32(prev), attn_f32(o.h), bm.parent, N, H);
        lstmn_rows_gather(attn_f32(hsum), attn_f32(o.hsum), bm.parent, N, H);
        if (p->deep) lstmn_rows_gather(attn_f32(gsum), attn_f32(o.gsum), bm.parent, N, H);
        cur = nx;
        memcpy(ids->data, bm.next, sizeof(int32_t) * (size_t)N);
        attn__arena_rewind(ctx, mark);
    }
    attn__arena_rewind(ctx, mark);
    attn__beam_finish(&bm, out_ids, out_len, want_align ? align : NULL);
    return 0;
}
