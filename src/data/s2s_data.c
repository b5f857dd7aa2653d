/* s2s_data.c: tokenised (source, target) pairs, padded batches and the
 * length-bucketed sampler of sequence-to-sequence training
 * (include/attn/s2s_data.h). */
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/s2s_data.h"
#include "attn/s2s_types.h"
#include "attn/text.h"

/* Longest source or target accepted: the lengths are int32 in the batch
 * tensors, and 2^30 keeps every width and sum far from overflow. */
#define S2S_MAX_LEN ((int64_t)1 << 30)

/* ---- tokenised pairs ----------------------------------------------------------- */

void attn_s2s_data_init(attn_s2s_data *d) {
    if (!d) return;
    memset(d, 0, sizeof *d);
    d->pad_id = ATTN_TOKEN_PAD;
    d->bos_id = ATTN_TOKEN_BOS;
    d->eos_id = ATTN_TOKEN_EOS;
}

void attn_s2s_data_free(attn_s2s_data *d) {
    if (!d) return;
    free(d->ids);
    free(d->src_off);
    free(d->tgt_off);
    free(d->src_len);
    free(d->tgt_len);
    attn_s2s_data_init(d);
}

/* Makes room for one more example of up to extra_ids tokens. The per-example
 * arrays share one capacity, so they are grown one after another and the
 * capacity is raised only when all succeeded (a failure leaves some arrays
 * larger, which is harmless). */
static attn_status reserve(attn_s2s_data *d, int64_t extra_ids, const char *fn) {
    size_t cap_ids = (size_t)d->cap_ids_;
    if (attn__grow((void **)&d->ids, &cap_ids, (size_t)(d->n_ids_ + extra_ids), sizeof(int32_t)))
        return attn__error(ATTN_ERR_OOM, "%s: out of memory for %lld token ids", fn,
                           (long long)(d->n_ids_ + extra_ids));
    d->cap_ids_ = (int64_t)cap_ids;
    if (d->n + 1 > d->cap_n_) {
        size_t c = (size_t)d->cap_n_, need = (size_t)d->n + 1;
        size_t c2 = c, c3 = c, c4 = c, c5 = c;
        if (attn__grow((void **)&d->src_off, &c2, need, sizeof(int64_t)) ||
            attn__grow((void **)&d->tgt_off, &c3, need, sizeof(int64_t)) ||
            attn__grow((void **)&d->src_len, &c4, need, sizeof(int32_t)) ||
            attn__grow((void **)&d->tgt_len, &c5, need, sizeof(int32_t)))
            return attn__error(ATTN_ERR_OOM, "%s: out of memory for %lld examples", fn,
                               (long long)(d->n + 1));
        d->cap_n_ = (int64_t)c2; /* all four grew to the same doubling of c */
    }
    return ATTN_OK;
}

/* Records example n: its n_src + n_tgt tokens are already at ids[n_ids_ ..). */
static void commit(attn_s2s_data *d, int64_t n_src, int64_t n_tgt) {
    const int64_t i = d->n;
    d->src_off[i] = d->n_ids_;
    d->src_len[i] = (int32_t)n_src;
    d->tgt_off[i] = d->n_ids_ + n_src;
    d->tgt_len[i] = (int32_t)n_tgt;
    d->n_ids_ += n_src + n_tgt;
    if (n_src > d->max_src_len) d->max_src_len = (int32_t)n_src;
    if (n_tgt > d->max_tgt_len) d->max_tgt_len = (int32_t)n_tgt;
    d->src_tokens += n_src;
    d->tgt_tokens += n_tgt;
    d->n = i + 1;
}

/* The first position of ids[0 .. n) holding a special id, or -1. */
static int64_t find_special(const attn_s2s_data *d, const int32_t *ids, int64_t n) {
    for (int64_t k = 0; k < n; k++)
        if (ids[k] == d->pad_id || ids[k] == d->bos_id || ids[k] == d->eos_id) return k;
    return -1;
}

attn_status attn_s2s_data_add_ids(attn_s2s_data *d, const int32_t *src, int64_t n_src,
                                  const int32_t *tgt, int64_t n_tgt) {
    static const char fn[] = "attn_s2s_data_add_ids";
    if (!d || !src) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL %s", fn, d ? "src" : "d");
    if (n_src < 1 || n_src > S2S_MAX_LEN)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: source of %lld tokens: expected 1 to 2^30 (a source is never "
                           "empty)",
                           fn, (long long)n_src);
    if (n_tgt < 0 || n_tgt > S2S_MAX_LEN || (!tgt && n_tgt > 0))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: target of %lld tokens (%s): expected 0 to 2^30 tokens, non-NULL "
                           "when not empty",
                           fn, (long long)n_tgt, tgt ? "given" : "NULL");
    int64_t k = find_special(d, src, n_src);
    if (k >= 0)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: source token %lld is the special id %d (pad %d, bos %d, eos %d "
                           "are added by the batch, never stored)",
                           fn, (long long)k, src[k], d->pad_id, d->bos_id, d->eos_id);
    k = n_tgt > 0 ? find_special(d, tgt, n_tgt) : -1;
    if (k >= 0)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: target token %lld is the special id %d (pad %d, bos %d, eos %d "
                           "are added by the batch, never stored)",
                           fn, (long long)k, tgt[k], d->pad_id, d->bos_id, d->eos_id);
    attn_status st = reserve(d, n_src + n_tgt, fn);
    if (st != ATTN_OK) return st;
    memcpy(d->ids + d->n_ids_, src, (size_t)n_src * sizeof(int32_t));
    if (n_tgt > 0) memcpy(d->ids + d->n_ids_ + n_src, tgt, (size_t)n_tgt * sizeof(int32_t));
    commit(d, n_src, n_tgt);
    return ATTN_OK;
}

attn_status attn_s2s_data_add(attn_s2s_data *d, const attn_vocab *src_vocab, const char *src,
                              const attn_vocab *tgt_vocab, const char *tgt) {
    static const char fn[] = "attn_s2s_data_add";
    if (!d || !src_vocab || !src || (tgt && !tgt_vocab))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL %s", fn,
                           !d ? "d" : !src_vocab ? "src_vocab" : !src ? "src" : "tgt_vocab");
    const size_t ls = strlen(src), lt = tgt ? strlen(tgt) : 0;
    if (ls > (size_t)S2S_MAX_LEN || lt > (size_t)S2S_MAX_LEN)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: a text of %zu bytes: at most 2^30 accepted",
                           fn, ls > lt ? ls : lt);
    /* Both tokenisers give at most one id per byte (one per code point, or
     * one <unk> per invalid byte; BPE merges only shorten), so the texts are
     * encoded straight into the free space after the stored ids. */
    attn_status st = reserve(d, (int64_t)(ls + lt), fn);
    if (st != ATTN_OK) return st;
    int32_t *at = d->ids + d->n_ids_;
    size_t n_src = 0, n_tgt = 0;
    st = attn_vocab_encode(src_vocab, src, ls, at, ls, &n_src);
    if (st == ATTN_OK && tgt) st = attn_vocab_encode(tgt_vocab, tgt, lt, at + n_src, lt, &n_tgt);
    if (st != ATTN_OK) return st;
    if (n_src < 1)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: source \"%.40s\" encodes to no token (a source is never empty)",
                           fn, src);
    int64_t k = find_special(d, at, (int64_t)(n_src + n_tgt));
    if (k >= 0)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: the vocabulary gave the special id %d (pad %d, bos %d, eos %d): "
                           "its specials differ from the data's",
                           fn, at[k], d->pad_id, d->bos_id, d->eos_id);
    commit(d, (int64_t)n_src, (int64_t)n_tgt);
    return ATTN_OK;
}

void attn_s2s_data_truncate(attn_s2s_data *d, int64_t n) {
    if (!d || n >= d->n) return;
    if (n < 0) n = 0;
    d->n = n;
    d->n_ids_ = n > 0 ? d->tgt_off[n - 1] + d->tgt_len[n - 1] : 0;
    d->max_src_len = d->max_tgt_len = 0;
    d->src_tokens = d->tgt_tokens = 0;
    for (int64_t i = 0; i < n; i++) {
        if (d->src_len[i] > d->max_src_len) d->max_src_len = d->src_len[i];
        if (d->tgt_len[i] > d->max_tgt_len) d->max_tgt_len = d->tgt_len[i];
        d->src_tokens += d->src_len[i];
        d->tgt_tokens += d->tgt_len[i];
    }
}

/* ---- batches ------------------------------------------------------------------------ */

attn_status attn_s2s_batch_make(attn_ctx *ctx, const attn_s2s_data *d, const int64_t *idx,
                                int64_t b, attn_s2s_batch *out, attn_s2s_batch_info *info) {
    static const char fn[] = "attn_s2s_batch_make";
    if (out) memset(out, 0, sizeof *out);
    if (!ctx || !d || !idx || !out) {
        const char *what = !ctx ? "ctx" : !d ? "d" : !idx ? "idx" : "out";
        if (ctx) return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: NULL %s", fn, what);
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL %s", fn, what);
    }
    if (b < 1 || b > S2S_MAX_LEN)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: batch of %lld examples: expected 1 to 2^30",
                          fn, (long long)b);
    int64_t S = 0, T = 0, src_tokens = 0, tgt_tokens = 0;
    for (int64_t r = 0; r < b; r++) {
        if (idx[r] < 0 || idx[r] >= d->n)
            return attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                              "%s: idx[%lld] = %lld outside the %lld examples", fn, (long long)r,
                              (long long)idx[r], (long long)d->n);
        const int64_t ls = d->src_len[idx[r]], lt = d->tgt_len[idx[r]];
        if (ls > S) S = ls;
        if (lt + 1 > T) T = lt + 1;
        src_tokens += ls;
        tgt_tokens += lt + 1;
    }
    const int64_t sh_src[2] = {b, S}, sh_len[1] = {b}, sh_tgt[2] = {b, T};
    attn_tensor *src = attn_tensor_new(ctx, ATTN_I32, 2, sh_src);
    attn_tensor *len = src ? attn_tensor_new(ctx, ATTN_I32, 1, sh_len) : NULL;
    attn_tensor *tin = len ? attn_tensor_new(ctx, ATTN_I32, 2, sh_tgt) : NULL;
    attn_tensor *tout = tin ? attn_tensor_new(ctx, ATTN_I32, 2, sh_tgt) : NULL;
    if (!tout) return attn_ctx_status(ctx);
    int32_t *ps = attn_i32(src), *pl = attn_i32(len), *pi = attn_i32(tin), *po = attn_i32(tout);
    for (int64_t r = 0; r < b; r++) {
        const int64_t e = idx[r];
        const int64_t ls = d->src_len[e], lt = d->tgt_len[e];
        const int32_t *s = d->ids + d->src_off[e], *t = d->ids + d->tgt_off[e];
        int32_t *rs = ps + r * S, *ri = pi + r * T, *ro = po + r * T;
        memcpy(rs, s, (size_t)ls * sizeof(int32_t));
        for (int64_t k = ls; k < S; k++) rs[k] = d->pad_id;
        pl[r] = (int32_t)ls;
        /* tgt_in = bos, y_0 .. y_{n-1}; tgt_out = y_0 .. y_{n-1}, eos. */
        ri[0] = d->bos_id;
        if (lt > 0) {
            memcpy(ri + 1, t, (size_t)lt * sizeof(int32_t));
            memcpy(ro, t, (size_t)lt * sizeof(int32_t));
        }
        ro[lt] = d->eos_id;
        for (int64_t k = lt + 1; k < T; k++) ri[k] = ro[k] = d->pad_id;
    }
    out->src = src;
    out->src_len = len;
    out->tgt_in = tin;
    out->tgt_out = tout;
    if (info) {
        info->batch = b;
        info->src_width = S;
        info->tgt_width = T;
        info->src_tokens = src_tokens;
        info->tgt_tokens = tgt_tokens;
    }
    return ATTN_OK;
}

/* ---- the sampler ------------------------------------------------------------------------ */

void attn_s2s_sampler_free(attn_s2s_sampler *s) {
    if (!s) return;
    free(s->order);
    free(s->batch_order);
    free(s->scratch_);
    memset(s, 0, sizeof *s);
}

attn_status attn_s2s_sampler_init(attn_s2s_sampler *s, const attn_s2s_data *data,
                                  int64_t batch_size, int64_t pool_batches, uint64_t seed) {
    static const char fn[] = "attn_s2s_sampler_init";
    if (s) memset(s, 0, sizeof *s);
    if (!s || !data) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL %s", fn, s ? "data" : "s");
    /* Fisher-Yates draws below n with 32-bit words. */
    if (data->n < 1 || data->n > (int64_t)UINT32_MAX)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %lld examples: expected 1 to 2^32 - 1", fn,
                           (long long)data->n);
    if (batch_size < 1 || pool_batches < 1)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: batch_size %lld, pool_batches %lld: both must be >= 1", fn,
                           (long long)batch_size, (long long)pool_batches);
    const int64_t n = data->n;
    s->data = data;
    s->n = n;
    s->batch_size = batch_size;
    s->pool_batches = pool_batches;
    s->seed = seed;
    s->n_batches = (n + batch_size - 1) / batch_size;
    s->epoch = -1;
    s->position = 0;
    s->order = malloc((size_t)n * sizeof(int64_t));
    s->batch_order = malloc((size_t)s->n_batches * sizeof(int64_t));
    s->scratch_ = malloc((size_t)n * sizeof(int64_t));
    if (!s->order || !s->batch_order || !s->scratch_) {
        attn_s2s_sampler_free(s);
        return attn__error(ATTN_ERR_OOM, "%s: out of memory for a sampler of %lld examples", fn,
                           (long long)n);
    }
    return ATTN_OK;
}

/* 1 if example a sorts after example b: by source length, then target
 * length. */
static int longer(const attn_s2s_data *d, int64_t a, int64_t b) {
    if (d->src_len[a] != d->src_len[b]) return d->src_len[a] > d->src_len[b];
    return d->tgt_len[a] > d->tgt_len[b];
}

/* Stable bottom-up merge sort of x[0 .. n) by length, with tmp[0 .. n) as
 * the merge buffer (no allocation). */
static void sort_by_length(const attn_s2s_data *d, int64_t *x, int64_t *tmp, int64_t n) {
    int64_t *a = x, *b = tmp;
    for (int64_t width = 1; width < n; width *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * width) {
            const int64_t mid = lo + width < n ? lo + width : n;
            const int64_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            int64_t i = lo, j = mid, k = lo;
            /* Take from the right run only when strictly shorter: stable. */
            while (i < mid && j < hi) b[k++] = longer(d, a[i], a[j]) ? a[j++] : a[i++];
            while (i < mid) b[k++] = a[i++];
            while (j < hi) b[k++] = a[j++];
        }
        int64_t *t = a;
        a = b;
        b = t;
    }
    if (a != x) memcpy(x, a, (size_t)n * sizeof(int64_t));
}

static void shuffle(int64_t *x, int64_t n, attn_rng *rng) {
    for (int64_t i = n - 1; i > 0; i--) {
        const int64_t j = attn_rng_next_below(rng, (uint32_t)(i + 1));
        const int64_t t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
}

/* Plans epoch e into order and batch_order (see the header). */
static void plan_epoch(attn_s2s_sampler *s, int64_t e) {
    attn_rng rng;
    attn_rng_init(&rng, s->seed);
    rng.offset = (uint64_t)e << 32;
    const int64_t n = s->n;
    for (int64_t i = 0; i < n; i++) s->order[i] = i;
    shuffle(s->order, n, &rng);
    /* P = B * pool_batches, saturated: a pool larger than n is the epoch. */
    const int64_t pool =
        s->pool_batches >= (n + s->batch_size - 1) / s->batch_size ? n : s->batch_size * s->pool_batches;
    if (s->pool_batches > 1)
        for (int64_t lo = 0; lo < n; lo += pool)
            sort_by_length(s->data, s->order + lo, s->scratch_, lo + pool < n ? pool : n - lo);
    for (int64_t k = 0; k < s->n_batches; k++) s->batch_order[k] = k;
    shuffle(s->batch_order, s->n_batches, &rng);
    s->epoch = e;
}

int64_t attn_s2s_sampler_next(attn_s2s_sampler *s, const int64_t **idx, int64_t *b) {
    if (!s || !idx || !b || s->n_batches < 1) { /* NULL or not initialised: no batch */
        if (idx) *idx = NULL;
        if (b) *b = 0;
        return -1;
    }
    const int64_t e = s->position / s->n_batches, k = s->position % s->n_batches;
    if (e != s->epoch) plan_epoch(s, e);
    const int64_t first = s->batch_order[k] * s->batch_size;
    const int64_t end = first + s->batch_size < s->n ? first + s->batch_size : s->n;
    *idx = s->order + first;
    *b = end - first;
    s->position++;
    return e;
}

void attn_s2s_sampler_seek(attn_s2s_sampler *s, int64_t position) {
    if (!s) return;
    s->position = position > 0 ? position : 0;
}
