/* test_s2s_data.c: batching for sequence-to-sequence training
 * (include/attn/s2s_data.h): tokenised storage, padded batches with
 * <bos>/<eos> in place, and the length-bucketed sampler (coverage of every
 * example exactly once per epoch, bucketing, determinism, seeking).
 * Everything is generated here. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

/* Adds n examples with pseudo-random lengths (source 1..max_src, target
 * 0..max_tgt) and token k of example i = 10 + (i + k) % 50, so no special
 * id appears. Returns 0 on success. */
static int fill_random(attn_s2s_data *d, int64_t n, int max_src, int max_tgt, uint64_t seed) {
    attn_rng rng;
    attn_rng_init(&rng, seed);
    int32_t buf[256];
    for (int64_t i = 0; i < n; i++) {
        const int ls = 1 + (int)attn_rng_next_below(&rng, (uint32_t)max_src);
        const int lt = (int)attn_rng_next_below(&rng, (uint32_t)max_tgt + 1);
        for (int k = 0; k < ls + lt; k++) buf[k] = 10 + (int32_t)((i + k) % 50);
        if (attn_s2s_data_add_ids(d, buf, ls, buf + ls, lt) != ATTN_OK) return -1;
    }
    return 0;
}

/* ---- storage ---------------------------------------------------------------- */

static void test_data_ids(void) {
    TEST_BEGIN("s2s_data/add_ids");
    attn_s2s_data d;
    attn_s2s_data_init(&d);
    CHECK(d.n == 0 && d.pad_id == ATTN_TOKEN_PAD && d.bos_id == ATTN_TOKEN_BOS &&
              d.eos_id == ATTN_TOKEN_EOS,
          "init: n %lld, specials %d %d %d", (long long)d.n, d.pad_id, d.bos_id, d.eos_id);
    const int32_t s0[3] = {5, 6, 7}, t0[2] = {8, 9}, s1[1] = {4}, s2[5] = {4, 5, 6, 7, 8};
    CHECK_OK(attn_s2s_data_add_ids(&d, s0, 3, t0, 2));
    CHECK_OK(attn_s2s_data_add_ids(&d, s1, 1, NULL, 0));
    CHECK_OK(attn_s2s_data_add_ids(&d, s2, 5, t0, 1));
    CHECK(d.n == 3, "n = %lld, expected 3", (long long)d.n);
    CHECK(d.src_len[0] == 3 && d.src_len[1] == 1 && d.src_len[2] == 5, "source lengths %d %d %d",
          d.src_len[0], d.src_len[1], d.src_len[2]);
    CHECK(d.tgt_len[0] == 2 && d.tgt_len[1] == 0 && d.tgt_len[2] == 1, "target lengths %d %d %d",
          d.tgt_len[0], d.tgt_len[1], d.tgt_len[2]);
    CHECK(d.max_src_len == 5 && d.max_tgt_len == 2, "maxima %d %d", d.max_src_len, d.max_tgt_len);
    CHECK(d.src_tokens == 9 && d.tgt_tokens == 3, "sums %lld %lld", (long long)d.src_tokens,
          (long long)d.tgt_tokens);
    CHECK(memcmp(d.ids + d.src_off[2], s2, sizeof s2) == 0 && d.ids[d.tgt_off[2]] == 8 &&
              memcmp(d.ids + d.tgt_off[0], t0, sizeof t0) == 0,
          "stored ids differ from the ids added");

    /* Errors leave the data unchanged. */
    const int32_t bad_src[2] = {5, ATTN_TOKEN_EOS}, bad_tgt[2] = {ATTN_TOKEN_BOS, 5};
    CHECK(attn_s2s_data_add_ids(&d, s0, 0, t0, 2) == ATTN_ERR_INVALID_ARG, "empty source accepted");
    CHECK(strstr(attn_last_error(), "attn_s2s_data_add_ids") != NULL, "message '%s'",
          attn_last_error());
    CHECK(attn_s2s_data_add_ids(&d, bad_src, 2, t0, 2) == ATTN_ERR_INVALID_ARG,
          "eos inside a source accepted");
    CHECK(attn_s2s_data_add_ids(&d, s0, 3, bad_tgt, 2) == ATTN_ERR_INVALID_ARG,
          "bos inside a target accepted");
    CHECK(attn_s2s_data_add_ids(&d, s0, 3, NULL, 2) == ATTN_ERR_INVALID_ARG,
          "NULL target of 2 tokens accepted");
    CHECK(attn_s2s_data_add_ids(&d, NULL, 3, t0, 2) == ATTN_ERR_INVALID_ARG, "NULL source accepted");
    CHECK(d.n == 3 && d.src_tokens == 9 && d.tgt_tokens == 3 && d.max_src_len == 5,
          "a failed add changed the data: n %lld", (long long)d.n);

    /* Truncation recomputes the statistics and keeps the storage. */
    int32_t *ids_before = d.ids;
    attn_s2s_data_truncate(&d, 1);
    CHECK(d.n == 1 && d.max_src_len == 3 && d.max_tgt_len == 2 && d.src_tokens == 3 &&
              d.tgt_tokens == 2,
          "truncate(1): n %lld maxima %d %d sums %lld %lld", (long long)d.n, d.max_src_len,
          d.max_tgt_len, (long long)d.src_tokens, (long long)d.tgt_tokens);
    attn_s2s_data_truncate(&d, 0);
    CHECK(d.n == 0 && d.max_src_len == 0 && d.src_tokens == 0, "truncate(0) left n %lld",
          (long long)d.n);
    CHECK_OK(attn_s2s_data_add_ids(&d, s2, 5, t0, 2));
    CHECK(d.ids == ids_before && d.src_off[0] == 0 && d.tgt_off[0] == 5,
          "refilling after truncate moved the storage or the offsets");
    attn_s2s_data_truncate(&d, 7); /* larger than n: nothing changes */
    CHECK(d.n == 1, "truncate past the end changed n to %lld", (long long)d.n);
    attn_s2s_data_free(&d);
    attn_s2s_data_free(&d); /* twice is fine */
    CHECK(d.n == 0 && d.ids == NULL, "free did not empty the data");

    /* Many examples: the storage grows past its first capacities. */
    attn_s2s_data_init(&d);
    CHECK(fill_random(&d, 5000, 30, 20, 3) == 0, "adding 5000 examples: %s", attn_last_error());
    int64_t sum = 0;
    for (int64_t i = 0; i < d.n; i++) sum += d.src_len[i] + d.tgt_len[i];
    CHECK(d.n == 5000 && sum == d.src_tokens + d.tgt_tokens &&
              d.tgt_off[4999] + d.tgt_len[4999] == sum,
          "5000 examples: n %lld, %lld tokens, offsets end at %lld", (long long)d.n,
          (long long)sum, (long long)(d.tgt_off[4999] + d.tgt_len[4999]));
    attn_s2s_data_free(&d);
    TEST_END();
}

static void test_data_text(void) {
    TEST_BEGIN("s2s_data/add_text");
    const char *srcs[3] = {"March 3, 1997", "03/03/97", "the 3rd of march, 1997"};
    const char *tgts[1] = {"1997-03-03"};
    attn_vocab *sv = NULL, *tv = NULL;
    CHECK_OK(attn_vocab_build_chars(srcs, 3, 1, &sv));
    CHECK_OK(attn_vocab_build_chars(tgts, 1, 1, &tv));
    attn_s2s_data d;
    attn_s2s_data_init(&d);
    if (sv && tv) {
        for (int i = 0; i < 3; i++) CHECK_OK(attn_s2s_data_add(&d, sv, srcs[i], tv, tgts[0]));
        CHECK_OK(attn_s2s_data_add(&d, sv, "Z 3", NULL, NULL)); /* no target; Z is <unk> */
        CHECK(d.n == 4, "n = %lld", (long long)d.n);
        for (int i = 0; i < 3 && d.n == 4; i++) {
            char back[64];
            size_t len = 0;
            CHECK_OK(attn_vocab_decode(sv, d.ids + d.src_off[i], (size_t)d.src_len[i], back,
                                       sizeof back, &len));
            CHECK(strcmp(back, srcs[i]) == 0 && d.src_len[i] == (int32_t)strlen(srcs[i]),
                  "source %d decodes to '%s' (%d tokens)", i, back, d.src_len[i]);
            CHECK_OK(attn_vocab_decode(tv, d.ids + d.tgt_off[i], (size_t)d.tgt_len[i], back,
                                       sizeof back, &len));
            CHECK(strcmp(back, tgts[0]) == 0, "target %d decodes to '%s'", i, back);
        }
        if (d.n == 4)
            CHECK(d.tgt_len[3] == 0 && d.src_len[3] == 3 &&
                      d.ids[d.src_off[3]] == ATTN_TOKEN_UNK,
                  "example without target: lengths %d %d, first id %d", d.src_len[3],
                  d.tgt_len[3], d.ids[d.src_off[3]]);
        CHECK(attn_s2s_data_add(&d, sv, "", tv, tgts[0]) == ATTN_ERR_INVALID_ARG,
              "an empty source text was accepted");
        CHECK(d.n == 4, "a failed add changed n to %lld", (long long)d.n);
        CHECK(attn_s2s_data_add(&d, sv, "x", NULL, "y") == ATTN_ERR_INVALID_ARG,
              "a target without a vocabulary was accepted");
    }
    attn_s2s_data_free(&d);
    attn_vocab_free(sv);
    attn_vocab_free(tv);
    TEST_END();
}

/* ---- batches ------------------------------------------------------------------- */

static void test_batch_layout(void) {
    TEST_BEGIN("s2s_data/batch_layout");
    attn_s2s_data d;
    attn_s2s_data_init(&d);
    /* Specials other than text.h's, to see that the batch uses the data's. */
    d.pad_id = 9;
    d.bos_id = 8;
    d.eos_id = 7;
    const int32_t a_src[4] = {20, 21, 22, 23}, a_tgt[2] = {30, 31};
    const int32_t b_src[1] = {24}, b_tgt[5] = {32, 33, 34, 35, 36};
    const int32_t c_src[2] = {25, 26};
    CHECK_OK(attn_s2s_data_add_ids(&d, a_src, 4, a_tgt, 2));
    CHECK_OK(attn_s2s_data_add_ids(&d, b_src, 1, b_tgt, 5));
    CHECK_OK(attn_s2s_data_add_ids(&d, c_src, 2, NULL, 0));
    CHECK(attn_s2s_data_add_ids(&d, b_tgt, 1, &d.pad_id, 1) == ATTN_ERR_INVALID_ARG,
          "the custom pad id inside a target was accepted");

    attn_ctx *ctx = test_ctx_new((size_t)1 << 20, 1, 64);
    if (!ctx) {
        attn_s2s_data_free(&d);
        TEST_END();
        return;
    }
    const int64_t idx[4] = {2, 0, 1, 0}; /* any order, repeats allowed */
    attn_s2s_batch batch;
    attn_s2s_batch_info info;
    CHECK_OK(attn_s2s_batch_make(ctx, &d, idx, 4, &batch, &info));
    CHECK_OK(attn_ctx_check_guards(ctx));
    if (batch.src) {
        const int64_t S = 4, T = 6; /* longest source 4; longest target 5, + 1 */
        CHECK(info.batch == 4 && info.src_width == S && info.tgt_width == T,
              "info: B %lld S %lld T %lld", (long long)info.batch, (long long)info.src_width,
              (long long)info.tgt_width);
        CHECK(info.src_tokens == 2 + 4 + 1 + 4 && info.tgt_tokens == 1 + 3 + 6 + 3,
              "info: %lld source and %lld target tokens", (long long)info.src_tokens,
              (long long)info.tgt_tokens);
        CHECK(batch.src->dtype == ATTN_I32 && batch.src->ndim == 2 && batch.src->shape[0] == 4 &&
                  batch.src->shape[1] == S,
              "src shape");
        CHECK(batch.src_len->ndim == 1 && batch.src_len->shape[0] == 4, "src_len shape");
        CHECK(batch.tgt_in->shape[0] == 4 && batch.tgt_in->shape[1] == T &&
                  batch.tgt_out->shape[0] == 4 && batch.tgt_out->shape[1] == T,
              "target shapes");
        CHECK(!batch.src->requires_grad && !batch.tgt_in->requires_grad, "batch requires grad");
        static const int32_t src_ref[4][4] = {
            {25, 26, 9, 9}, {20, 21, 22, 23}, {24, 9, 9, 9}, {20, 21, 22, 23}};
        static const int32_t len_ref[4] = {2, 4, 1, 4};
        static const int32_t in_ref[4][6] = {{8, 9, 9, 9, 9, 9},
                                             {8, 30, 31, 9, 9, 9},
                                             {8, 32, 33, 34, 35, 36},
                                             {8, 30, 31, 9, 9, 9}};
        static const int32_t out_ref[4][6] = {{7, 9, 9, 9, 9, 9},
                                              {30, 31, 7, 9, 9, 9},
                                              {32, 33, 34, 35, 36, 7},
                                              {30, 31, 7, 9, 9, 9}};
        const int32_t *ps = attn_i32(batch.src), *pl = attn_i32(batch.src_len),
                      *pi = attn_i32(batch.tgt_in), *po = attn_i32(batch.tgt_out);
        for (int r = 0; r < 4; r++) {
            CHECK(pl[r] == len_ref[r], "src_len[%d] = %d, expected %d", r, pl[r], len_ref[r]);
            for (int k = 0; k < S; k++)
                CHECK(ps[r * S + k] == src_ref[r][k], "src[%d,%d] = %d, expected %d", r, k,
                      ps[r * S + k], src_ref[r][k]);
            for (int k = 0; k < T; k++) {
                CHECK(pi[r * T + k] == in_ref[r][k], "tgt_in[%d,%d] = %d, expected %d", r, k,
                      pi[r * T + k], in_ref[r][k]);
                CHECK(po[r * T + k] == out_ref[r][k], "tgt_out[%d,%d] = %d, expected %d", r, k,
                      po[r * T + k], out_ref[r][k]);
            }
            /* The teacher-forcing shift: tgt_in[t + 1] == tgt_out[t] before eos. */
            for (int k = 0; k + 1 < T; k++)
                if (po[r * T + k] != 7 && po[r * T + k] != 9)
                    CHECK(pi[r * T + k + 1] == po[r * T + k], "row %d: shift broken at %d", r, k);
        }
    }
    /* A batch of one example without target: tgt [bos] / [eos]. */
    attn_ctx_reset(ctx);
    const int64_t one = 2;
    CHECK_OK(attn_s2s_batch_make(ctx, &d, &one, 1, &batch, NULL));
    if (batch.src)
        CHECK(batch.tgt_in->shape[1] == 1 && attn_i32(batch.tgt_in)[0] == 8 &&
                  attn_i32(batch.tgt_out)[0] == 7 && batch.src->shape[1] == 2,
              "single example without target: T %lld, in %d, out %d",
              (long long)batch.tgt_in->shape[1], attn_i32(batch.tgt_in)[0],
              attn_i32(batch.tgt_out)[0]);

    /* Errors: bad sizes and indices, recorded in the context too. */
    attn_ctx_reset(ctx);
    const int64_t bad[2] = {0, 3};
    CHECK(attn_s2s_batch_make(ctx, &d, bad, 2, &batch, NULL) == ATTN_ERR_INVALID_ARG,
          "index 3 of 3 examples accepted");
    CHECK(attn_ctx_status(ctx) == ATTN_ERR_INVALID_ARG && batch.src == NULL,
          "error not recorded in the context, or out not zeroed");
    CHECK(strstr(attn_ctx_error(ctx), "idx[1] = 3") != NULL, "message '%s'", attn_ctx_error(ctx));
    attn_ctx_reset(ctx);
    CHECK(attn_s2s_batch_make(ctx, &d, bad, 0, &batch, NULL) == ATTN_ERR_INVALID_ARG,
          "empty batch accepted");
    attn_ctx_free(ctx);

    /* A full arena is ATTN_ERR_OOM, not a crash. */
    ctx = test_ctx_new(256, 1, 0);
    if (ctx) {
        CHECK(attn_s2s_batch_make(ctx, &d, idx, 4, &batch, NULL) == ATTN_ERR_OOM,
              "a 256-byte arena held the batch");
        CHECK(strstr(attn_ctx_error(ctx), "needed") != NULL, "message '%s'", attn_ctx_error(ctx));
        attn_ctx_free(ctx);
    }
    attn_s2s_data_free(&d);
    TEST_END();
}

/* ---- the sampler ------------------------------------------------------------------- */

/* Draws one epoch (n_batches batches) and checks that it covers every example
 * exactly once, with the documented batch sizes. Returns the epoch number
 * the batches reported (-1 if they disagreed). */
static int64_t check_epoch(attn_s2s_sampler *s, int *seen, const char *what) {
    const int64_t n = s->n, B = s->batch_size;
    memset(seen, 0, (size_t)n * sizeof *seen);
    int64_t epoch = -2, short_batches = 0;
    for (int64_t k = 0; k < s->n_batches; k++) {
        const int64_t *idx;
        int64_t b;
        int64_t e = attn_s2s_sampler_next(s, &idx, &b);
        if (epoch == -2) epoch = e;
        if (e != epoch) epoch = -1;
        if (b != B) {
            short_batches++;
            CHECK(b == n - (s->n_batches - 1) * B, "%s: a batch of %lld (B %lld, n %lld)", what,
                  (long long)b, (long long)B, (long long)n);
        }
        for (int64_t r = 0; r < b; r++) {
            if (idx[r] < 0 || idx[r] >= n) {
                CHECK(0, "%s: index %lld out of range", what, (long long)idx[r]);
                continue;
            }
            seen[idx[r]]++;
        }
    }
    CHECK(short_batches <= 1, "%s: %lld batches shorter than B", what, (long long)short_batches);
    int64_t missing = 0, repeated = 0;
    for (int64_t i = 0; i < n; i++) {
        missing += seen[i] == 0;
        repeated += seen[i] > 1;
    }
    CHECK(missing == 0 && repeated == 0, "%s: epoch %lld: %lld examples missing, %lld repeated",
          what, (long long)epoch, (long long)missing, (long long)repeated);
    return epoch;
}

/* Mean over the batches of (longest - shortest source) in one epoch. */
static double mean_spread(attn_s2s_sampler *s) {
    double sum = 0.0;
    for (int64_t k = 0; k < s->n_batches; k++) {
        const int64_t *idx;
        int64_t b;
        attn_s2s_sampler_next(s, &idx, &b);
        int32_t lo = INT32_MAX, hi = 0;
        for (int64_t r = 0; r < b; r++) {
            const int32_t l = s->data->src_len[idx[r]];
            if (l < lo) lo = l;
            if (l > hi) hi = l;
        }
        sum += hi - lo;
    }
    return sum / (double)s->n_batches;
}

static void test_sampler_coverage(void) {
    TEST_BEGIN("s2s_data/sampler_coverage");
    attn_s2s_data d;
    attn_s2s_data_init(&d);
    const int64_t n = 1003; /* not a multiple of the batch size */
    CHECK(fill_random(&d, n, 60, 40, 11) == 0, "fill: %s", attn_last_error());
    int *seen = malloc((size_t)n * sizeof *seen);
    static const int64_t batches[3] = {32, 1, 2000};
    static const int64_t pools[3] = {8, 1, 1000000};
    for (int c = 0; c < 3 && seen; c++) {
        attn_s2s_sampler s;
        char what[64];
        snprintf(what, sizeof what, "B %lld pool %lld", (long long)batches[c], (long long)pools[c]);
        CHECK_OK(attn_s2s_sampler_init(&s, &d, batches[c], pools[c], 5));
        CHECK(s.n_batches == (n + batches[c] - 1) / batches[c], "%s: %lld batches", what,
              (long long)s.n_batches);
        for (int e = 0; e < 3; e++) {
            int64_t got = check_epoch(&s, seen, what);
            CHECK(got == e, "%s: batches of epoch %d reported epoch %lld", what, e,
                  (long long)got);
        }
        CHECK(s.position == 3 * s.n_batches, "%s: position %lld after 3 epochs", what,
              (long long)s.position);
        attn_s2s_sampler_free(&s);
        attn_s2s_sampler_free(&s);
    }

    /* Bucketing: within a pool, batches hold neighbouring lengths. With one
     * pool for the whole epoch, the batches partition the sorted order: no
     * two batches' length ranges overlap beyond a shared boundary value. */
    attn_s2s_sampler s;
    CHECK_OK(attn_s2s_sampler_init(&s, &d, 32, 1000, 5));
    if (s.order) {
        int32_t lo[64], hi[64];
        int64_t nb = s.n_batches < 64 ? s.n_batches : 64;
        for (int64_t k = 0; k < nb; k++) {
            const int64_t *idx;
            int64_t b;
            attn_s2s_sampler_next(&s, &idx, &b);
            lo[k] = INT32_MAX;
            hi[k] = 0;
            for (int64_t r = 0; r < b; r++) {
                const int32_t l = d.src_len[idx[r]];
                if (r > 0)
                    CHECK(d.src_len[idx[r - 1]] < l ||
                              (d.src_len[idx[r - 1]] == l &&
                               d.tgt_len[idx[r - 1]] <= d.tgt_len[idx[r]]),
                          "batch %lld not sorted by (source, target) length at %lld",
                          (long long)k, (long long)r);
                if (l < lo[k]) lo[k] = l;
                if (l > hi[k]) hi[k] = l;
            }
        }
        int overlaps = 0;
        for (int64_t a = 0; a < nb; a++)
            for (int64_t b2 = 0; b2 < nb; b2++)
                if (a != b2 && lo[a] < lo[b2] && hi[a] > lo[b2]) overlaps++;
        CHECK(overlaps == 0, "%d pairs of globally sorted batches overlap in length", overlaps);
        /* Batch order is shuffled: not increasing in length. */
        int increasing = 1;
        for (int64_t k = 1; k < nb; k++) increasing &= lo[k] >= lo[k - 1];
        CHECK(!increasing, "the batches came in length order: the batch order is not shuffled");
    }
    attn_s2s_sampler_free(&s);

    /* Pools of 8 batches cut the padding well below plain shuffling. */
    attn_s2s_sampler plain, bucketed;
    CHECK_OK(attn_s2s_sampler_init(&plain, &d, 32, 1, 5));
    CHECK_OK(attn_s2s_sampler_init(&bucketed, &d, 32, 8, 5));
    if (plain.order && bucketed.order) {
        const double sp = mean_spread(&plain), sb = mean_spread(&bucketed);
        /* Uniform lengths 1..60: a random batch of 32 spans about 56; a
         * batch cut from a sorted pool of 256 spans about 60 / 8 = 7.5. */
        CHECK(sp > 45.0 && sb < 15.0, "mean length spread: plain %.1f, bucketed %.1f", sp, sb);
    }
    attn_s2s_sampler_free(&plain);
    attn_s2s_sampler_free(&bucketed);

    /* Errors. */
    attn_s2s_data empty;
    attn_s2s_data_init(&empty);
    CHECK(attn_s2s_sampler_init(&s, &empty, 4, 1, 0) == ATTN_ERR_INVALID_ARG,
          "a sampler over no example was made");
    CHECK(attn_s2s_sampler_init(&s, &d, 0, 1, 0) == ATTN_ERR_INVALID_ARG, "batch size 0 accepted");
    CHECK(attn_s2s_sampler_init(&s, &d, 4, 0, 0) == ATTN_ERR_INVALID_ARG, "pool 0 accepted");
    CHECK(s.order == NULL, "a failed init left memory in the sampler");
    free(seen);
    attn_s2s_data_free(&d);
    TEST_END();
}

static void test_sampler_determinism(void) {
    TEST_BEGIN("s2s_data/sampler_determinism");
    attn_s2s_data d;
    attn_s2s_data_init(&d);
    const int64_t n = 500;
    CHECK(fill_random(&d, n, 40, 30, 17) == 0, "fill: %s", attn_last_error());
    attn_s2s_sampler a, b, c;
    CHECK_OK(attn_s2s_sampler_init(&a, &d, 16, 4, 42));
    CHECK_OK(attn_s2s_sampler_init(&b, &d, 16, 4, 42));
    CHECK_OK(attn_s2s_sampler_init(&c, &d, 16, 4, 43));
    if (a.order && b.order && c.order) {
        /* Record 2.5 epochs of a; b must give the same, c another order. */
        const int64_t steps = a.n_batches * 5 / 2;
        int64_t *log = malloc((size_t)(steps * 16) * sizeof *log);
        int64_t *sizes = malloc((size_t)steps * sizeof *sizes);
        int64_t same_b = 1, diff_c = 0, epochs_differ = 0;
        for (int64_t k = 0; log && sizes && k < steps; k++) {
            const int64_t *ia, *ib, *ic;
            int64_t na, nb, nc;
            attn_s2s_sampler_next(&a, &ia, &na);
            attn_s2s_sampler_next(&b, &ib, &nb);
            attn_s2s_sampler_next(&c, &ic, &nc);
            same_b &= na == nb && memcmp(ia, ib, (size_t)na * sizeof *ia) == 0;
            diff_c |= na != nc || memcmp(ia, ic, (size_t)na * sizeof *ia) != 0;
            sizes[k] = na;
            memcpy(log + k * 16, ia, (size_t)na * sizeof *ia);
            if (k >= a.n_batches && k < 2 * a.n_batches)
                epochs_differ |= sizes[k] != sizes[k - a.n_batches] ||
                                 memcmp(log + k * 16, log + (k - a.n_batches) * 16,
                                        (size_t)na * sizeof *ia) != 0;
        }
        CHECK(same_b, "two samplers with the same seed gave different batches");
        CHECK(diff_c, "seeds 42 and 43 gave the same batches");
        CHECK(epochs_differ, "epochs 0 and 1 gave the same batches");

        /* Seeking to any position reproduces the batch drawn there, across
         * epoch boundaries, backwards and forwards. */
        const int64_t probes[6] = {0, 1, a.n_batches - 1, a.n_batches, steps - 1, 7};
        for (int p = 0; log && sizes && p < 6; p++) {
            const int64_t *ib;
            int64_t nb;
            attn_s2s_sampler_seek(&b, probes[p]);
            attn_s2s_sampler_next(&b, &ib, &nb);
            CHECK(nb == sizes[probes[p]] &&
                      memcmp(ib, log + probes[p] * 16, (size_t)nb * sizeof *ib) == 0,
                  "seek(%lld) gave another batch than the one drawn there",
                  (long long)probes[p]);
            CHECK(b.position == probes[p] + 1, "position %lld after seek(%lld) and one draw",
                  (long long)b.position, (long long)probes[p]);
        }
        /* A fresh sampler seeked past epochs it never planned. */
        attn_s2s_sampler f;
        CHECK_OK(attn_s2s_sampler_init(&f, &d, 16, 4, 42));
        if (f.order && log && sizes) {
            const int64_t *ifr;
            int64_t nf;
            attn_s2s_sampler_seek(&f, steps - 2);
            attn_s2s_sampler_next(&f, &ifr, &nf);
            CHECK(nf == sizes[steps - 2] &&
                      memcmp(ifr, log + (steps - 2) * 16, (size_t)nf * sizeof *ifr) == 0,
                  "a fresh sampler seeked to %lld differs", (long long)(steps - 2));
        }
        attn_s2s_sampler_free(&f);
        free(log);
        free(sizes);
    }
    attn_s2s_sampler_free(&a);
    attn_s2s_sampler_free(&b);
    attn_s2s_sampler_free(&c);
    attn_s2s_data_free(&d);
    TEST_END();
}

void suite_s2s_data(void) {
    test_data_ids();
    test_data_text();
    test_batch_layout();
    test_sampler_coverage();
    test_sampler_determinism();
}
