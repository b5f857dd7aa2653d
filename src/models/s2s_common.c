/* s2s_common.c: what the encoder-decoder models share (s2s_common.h):
 * batch checks and the beam search bookkeeping. */
#include "s2s_common.h"
#include "../ops/view_internal.h"
#include "attn/s2s_types.h"

#include <math.h>
#include <string.h>

/* ---- batch checks ------------------------------------------------------------------- */

/* Validates the source half of a batch (and the target half when `targets`);
 * sets B, S, T (T = 0 without targets). 0 or -1 (recorded). */
int attn__s2s_check_batch(attn_ctx *ctx, const void *m, const attn_s2s_batch *batch,
                           int targets, const char *fn, int64_t *B, int64_t *S, int64_t *T) {
    if (!m || !batch) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: model or batch is NULL", fn);
        return -1;
    }
    if (attn__any_null(ctx, fn, 2, batch->src, batch->src_len)) return -1;
    if (targets && attn__any_null(ctx, fn, 2, batch->tgt_in, batch->tgt_out)) return -1;
    if (attn__check_dtype(ctx, fn, "src", batch->src, ATTN_I32) ||
        attn__check_dtype(ctx, fn, "src_len", batch->src_len, ATTN_I32))
        return -1;
    const attn_tensor *src = batch->src, *len = batch->src_len;
    if (src->ndim != 2 || src->shape[0] < 1 || src->shape[1] < 1 || len->ndim != 1 ||
        len->shape[0] != src->shape[0]) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: src %s and src_len %s, expected [B, S] and [B] with B, S >= 1", fn,
                   attn__shp(src), attn__shp(len));
        return -1;
    }
    *B = src->shape[0];
    *S = src->shape[1];
    *T = 0;
    if (!targets) return 0;
    const attn_tensor *ti = batch->tgt_in, *to = batch->tgt_out;
    if (attn__check_dtype(ctx, fn, "tgt_in", ti, ATTN_I32) ||
        attn__check_dtype(ctx, fn, "tgt_out", to, ATTN_I32))
        return -1;
    if (ti->ndim != 2 || to->ndim != 2 || ti->shape[0] != *B || to->shape[0] != *B ||
        ti->shape[1] < 1 || to->shape[1] != ti->shape[1]) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: tgt_in %s and tgt_out %s, expected both [B, T] with B = %lld (src is %s) "
                   "and T >= 1",
                   fn, attn__shp(ti), attn__shp(to), (long long)*B, attn__shp(src));
        return -1;
    }
    *T = ti->shape[1];
    return 0;
}

/* src_len's values as a contiguous array, each checked to be in [1, S]. */
const int32_t *attn__s2s_lengths(attn_ctx *ctx, attn_tensor *len, int64_t S, const char *fn) {
    attn_tensor *c = attn__contig(ctx, len);
    if (!c) return NULL;
    const int32_t *l = attn_i32(c);
    for (int64_t b = 0; b < c->shape[0]; b++)
        if (l[b] < 1 || l[b] > S) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                       "%s: src_len[%lld] = %d is outside [1, S] = [1, %lld]", fn, (long long)b,
                       (int)l[b], (long long)S);
            return NULL;
        }
    return l;
}


int attn__beam_init(attn_ctx *ctx, attn__beam *bm, int64_t B, int k, int64_t max_len, int64_t W,
                    double alpha, int32_t pad_id, int32_t bos_id, int32_t eos_id, const char *fn) {
    memset(bm, 0, sizeof *bm);
    const int64_t N = B * k;
    bm->B = B;
    bm->N = N;
    bm->k = k;
    bm->max_len = max_len;
    bm->W = W;
    bm->alpha = alpha;
    bm->pad_id = pad_id;
    bm->bos_id = bos_id;
    bm->eos_id = eos_id;
    size_t nb_steps, nb_hist = 0;
    if (attn__mul_size((size_t)max_len, (size_t)N, &nb_steps) ||
        (W > 0 && attn__mul_size(nb_steps, (size_t)W * sizeof(float), &nb_hist))) {
        attn__fail(ctx, ATTN_ERR_OOM, "%s: max_len %lld x %lld rows overflows a size", fn,
                   (long long)max_len, (long long)N);
        return -1;
    }
    bm->tok = attn__alloc(ctx, nb_steps * sizeof(int32_t), fn);
    bm->par = attn__alloc(ctx, nb_steps * sizeof(int32_t), fn);
    bm->hist = W > 0 ? attn__alloc(ctx, nb_hist, fn) : NULL;
    bm->hyp = attn__alloc_zero(ctx, sizeof(attn__beam_hyp) * (size_t)N, fn);
    bm->top = attn__alloc(ctx, sizeof(attn__beam_cand) * (size_t)k, fn);
    bm->done = attn__alloc_zero(ctx, (size_t)B, fn);
    bm->parent = attn__alloc(ctx, sizeof(int32_t) * (size_t)N, fn);
    bm->next = attn__alloc(ctx, sizeof(int32_t) * (size_t)N, fn);
    if (!bm->tok || !bm->par || (W > 0 && !bm->hist) || !bm->hyp || !bm->top || !bm->done ||
        !bm->parent || !bm->next)
        return -1;
    for (int64_t i = 0; i < N; i++) {
        bm->next[i] = bos_id;
        bm->parent[i] = (int32_t)i;
        bm->hyp[i].dead = (i % k) != 0; /* the k rows of a sentence start identical: keep one */
    }
    return 0;
}

/* Inserts c into the best-first list top[0..*n) of capacity k; a candidate
 * displaces another only when strictly better, so ties keep the earlier one
 * (lower parent, then lower token: the order candidates are offered in). */
static void offer(attn__beam_cand *top, int *n, int k, const attn__beam_cand *c) {
    if (*n == k && !(c->norm > top[k - 1].norm)) return;
    int i = *n < k ? (*n)++ : k - 1;
    while (i > 0 && c->norm > top[i - 1].norm) {
        top[i] = top[i - 1];
        i--;
    }
    top[i] = *c;
}

int attn__beam_step(attn__beam *bm, int64_t t, const float *lp, int64_t V, const float *rows) {
    const int k = bm->k;
    const int64_t N = bm->N;
    if (bm->W > 0 && rows)
        memcpy(bm->hist + (size_t)t * (size_t)(N * bm->W), rows,
               sizeof(float) * (size_t)(N * bm->W));
    int32_t *tk = bm->tok + t * N, *pr = bm->par + t * N;
    attn__beam_cand *top = bm->top;
    int all_done = 1;
    const double denom = bm->alpha != 0.0 ? pow((double)(t + 1), bm->alpha) : 1.0;
    for (int64_t b = 0; b < bm->B; b++) {
        attn__beam_hyp *hb = bm->hyp + b * k;
        int n = 0;
        if (!bm->done[b]) {
            for (int j = 0; j < k; j++) {
                if (hb[j].dead) continue;
                const int32_t pj = (int32_t)(b * k + j);
                if (hb[j].fin) {
                    const attn__beam_cand cd = {hb[j].norm, hb[j].raw, pj, -1, hb[j].len, 1};
                    offer(top, &n, k, &cd);
                    continue;
                }
                const float *row = lp + (int64_t)pj * V;
                for (int64_t v = 0; v < V; v++) {
                    if (v == bm->pad_id || (v == bm->bos_id && v != bm->eos_id)) continue;
                    const double raw = hb[j].raw + (double)row[v];
                    const attn__beam_cand cd = {.norm = raw / denom,
                                                .raw = raw,
                                                .parent = pj,
                                                .token = (int32_t)v,
                                                .len = (int32_t)(t + 1),
                                                .fin = v == bm->eos_id};
                    offer(top, &n, k, &cd);
                }
            }
        }
        int fin_all = 1;
        for (int j = 0; j < k; j++) {
            const int64_t i = b * k + j;
            if (bm->done[b] || j >= n) { /* a stopped sentence keeps its rows as they are */
                pr[i] = bm->parent[i] = (int32_t)i;
                tk[i] = -1;
                if (!bm->done[b]) hb[j].dead = 1;
                continue;
            }
            pr[i] = bm->parent[i] = top[j].parent;
            tk[i] = top[j].token;
        }
        /* new bookkeeping after all parents are read (a row may be its own parent) */
        if (!bm->done[b]) {
            for (int j = 0; j < n; j++) {
                hb[j].raw = top[j].raw;
                hb[j].norm = top[j].norm;
                hb[j].len = top[j].len;
                hb[j].fin = top[j].fin;
                hb[j].dead = 0;
                fin_all &= top[j].fin;
            }
            if (fin_all) bm->done[b] = 1;
        }
        all_done &= bm->done[b];
    }
    bm->steps = t + 1;
    for (int64_t i = 0; i < N; i++) bm->next[i] = tk[i] >= 0 ? tk[i] : bm->eos_id;
    return all_done || t + 1 == bm->max_len;
}

void attn__beam_finish(const attn__beam *bm, int32_t *out_ids, int32_t *out_len, float *rows) {
    const int k = bm->k;
    const int64_t N = bm->N, maxT = bm->max_len, W = bm->W;
    for (int64_t i = 0; i < bm->B * maxT; i++) out_ids[i] = bm->pad_id;
    if (rows && W > 0) memset(rows, 0, sizeof(float) * (size_t)(bm->B * maxT * W));
    const attn__beam_hyp *hyp = bm->hyp;
    for (int64_t b = 0; b < bm->B; b++) {
        int64_t best = b * k;
        if (k > 1)
            for (int64_t i = b * k; i < (b + 1) * k; i++)
                if (!hyp[i].dead && (hyp[best].dead || hyp[i].norm > hyp[best].norm)) best = i;
        const int32_t n_tok = hyp[best].len; /* eos included when fin */
        int64_t row = best, pos = n_tok;
        for (int64_t t = bm->steps - 1; t >= 0 && pos > 0; t--) {
            const int32_t v = bm->tok[t * N + row], p = bm->par[t * N + row];
            if (v >= 0) {
                pos--;
                if (pos < n_tok - hyp[best].fin) out_ids[b * maxT + pos] = v;
                if (rows && W > 0)
                    memcpy(rows + (size_t)(b * maxT + pos) * (size_t)W,
                           bm->hist + ((size_t)t * (size_t)N + (size_t)p) * (size_t)W,
                           sizeof(float) * (size_t)W);
            }
            row = p;
        }
        out_len[b] = n_tok - hyp[best].fin;
    }
}
