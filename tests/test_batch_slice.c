/* test_batch_slice.c: attn_ctx_set_batch_slice (include/attn/context.h),
 * which lets each rank of a data-parallel run draw the dropout masks of its
 * rows of the single-process batch. For dropout (rows of 15 elements, so a
 * slice may start inside a Philox block) and for both attention kernels'
 * dropout on the weights: the output and the input gradient of every slice
 * equal, bit for bit, the rows of the whole batch's, and the stream ends
 * where the whole batch's ends. Then the argument checks, and "off". */
#include <stdint.h>
#include <string.h>

#include "test.h"

#define NB 4 /* the global batch */

static void fill(float *x, int64_t n, uint32_t salt) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)((i * 37 + salt) % 23) / 11.0f - 1.0f;
}

/* Runs f on rows [row0, row0 + rows) of the inputs in[k] (each NB x per[k]
 * floats), with the stream (9, 100) and the slice, sum of the output as the
 * loss; copies the output (rows x out_per) and the gradient of input 0. */
typedef attn_tensor *(*slice_fn)(attn_ctx *ctx, attn_tensor **in);

static uint64_t run_slice(attn_ctx *ctx, slice_fn f, int n_in, const float *const *in, const int64_t *per,
                          int ndim, const int64_t *shape, int64_t row0, int64_t rows, int slice, float *out,
                          int64_t out_per, float *grad0) {
    attn_ctx_reset(ctx);
    attn_ctx_set_rng(ctx, 9, 100);
    CHECK(attn_ctx_set_batch_slice(ctx, slice ? row0 : 0, slice ? rows : 0, NB) == ATTN_OK, "set_batch_slice");
    attn_tensor *t[3];
    int64_t sh[8];
    memcpy(sh, shape, (size_t)ndim * sizeof *sh);
    sh[0] = rows;
    for (int k = 0; k < n_in; k++) {
        t[k] = attn_tensor_new(ctx, ATTN_F32, ndim, sh);
        memcpy(attn_f32(t[k]), in[k] + row0 * per[k], (size_t)(rows * per[k]) * sizeof(float));
        t[k]->requires_grad = 1;
    }
    attn_tensor *y = f(ctx, t);
    CHECK(y != NULL, "forward: %s", attn_ctx_error(ctx));
    if (!y) return 0;
    const uint64_t end = attn_ctx_rng_offset(ctx);
    memcpy(out, attn_f32(y), (size_t)(rows * out_per) * sizeof(float));
    attn_tensor *loss = attn_sum(ctx, y, ATTN_ALL_AXES, 0);
    CHECK(loss && attn_backward(ctx, loss) == ATTN_OK, "backward: %s", attn_last_error());
    if (t[0]->grad) memcpy(grad0, t[0]->grad, (size_t)(rows * per[0]) * sizeof(float));
    attn_ctx_set_batch_slice(ctx, 0, 0, 0);
    return end;
}

/* The whole batch, then slices {0..1}, {1..3}, {3..4} (and {0..4} as a
 * slice): outputs and gradients equal the whole batch's rows bit for bit. */
static void check_slices(attn_ctx *ctx, const char *what, slice_fn f, int n_in, const float *const *in,
                         const int64_t *per, int ndim, const int64_t *shape, int64_t out_per) {
    static float out_all[NB * 4096], g_all[NB * 4096], out_s[NB * 4096], g_s[NB * 4096];
    const uint64_t end_all =
        run_slice(ctx, f, n_in, in, per, ndim, shape, 0, NB, 0, out_all, out_per, g_all);
    int zeros = 0;
    for (int64_t i = 0; i < NB * out_per; i++) zeros += out_all[i] == 0.0f;
    CHECK(zeros > 0 && zeros < NB * out_per, "%s: dropout dropped %d of %lld: not a mask", what, zeros,
          (long long)(NB * out_per));
    const int64_t cuts[][2] = {{0, 1}, {1, 2}, {3, 1}, {0, NB}};
    for (int c = 0; c < 4; c++) {
        const int64_t r0 = cuts[c][0], nr = cuts[c][1];
        const uint64_t end = run_slice(ctx, f, n_in, in, per, ndim, shape, r0, nr, 1, out_s, out_per, g_s);
        CHECK(end == end_all, "%s rows [%lld, %lld): the stream ends at %llu, the whole batch's at %llu", what,
              (long long)r0, (long long)(r0 + nr), (unsigned long long)end, (unsigned long long)end_all);
        CHECK(memcmp(out_s, out_all + r0 * out_per, (size_t)(nr * out_per) * sizeof(float)) == 0,
              "%s rows [%lld, %lld): the output differs from the whole batch's rows", what, (long long)r0,
              (long long)(r0 + nr));
        CHECK(memcmp(g_s, g_all + r0 * per[0], (size_t)(nr * per[0]) * sizeof(float)) == 0,
              "%s rows [%lld, %lld): the input gradient differs from the whole batch's rows", what, (long long)r0,
              (long long)(r0 + nr));
    }
}

static attn_tensor *f_dropout(attn_ctx *ctx, attn_tensor **in) { return attn_dropout(ctx, in[0], 0.4f); }

static attn_tensor *f_sdpa(attn_ctx *ctx, attn_tensor **in) {
    attn_sdpa_opts o;
    memset(&o, 0, sizeof o);
    o.causal = 1;
    o.dropout = 0.3f;
    return attn_sdpa(ctx, in[0], in[1], in[2], &o, NULL);
}

static attn_tensor *f_flash(attn_ctx *ctx, attn_tensor **in) {
    attn_sdpa_opts o;
    memset(&o, 0, sizeof o);
    o.causal = 1;
    o.dropout = 0.3f;
    return attn_flash_sdpa(ctx, in[0], in[1], in[2], &o, NULL);
}

static void test_masks(void) {
    TEST_BEGIN("batch slice: dropout and attention-dropout masks of a slice are the whole batch's rows");
    attn_ctx *ctx = NULL;
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)8 << 20;
    cc.n_threads = 1;
    CHECK(attn_ctx_new(&ctx, &cc) == ATTN_OK, "context");
    if (ctx) {
        attn_ctx_set_training(ctx, 1);
        /* dropout on [4, 3, 5]: 15 elements a row, so rows 1 and 3 start inside a block */
        static float x[NB * 15];
        fill(x, NB * 15, 3);
        const float *in1[1] = {x};
        check_slices(ctx, "dropout", f_dropout, 1, in1, (int64_t[]){15}, 3, (int64_t[]){NB, 3, 5}, 15);
        /* attention [B, H 2, T 4, D 3]: 32 weights a row */
        static float q[NB * 24], k[NB * 24], v[NB * 24];
        fill(q, NB * 24, 1);
        fill(k, NB * 24, 5);
        fill(v, NB * 24, 9);
        const float *in3[3] = {q, k, v};
        const int64_t per[3] = {24, 24, 24};
        check_slices(ctx, "sdpa", f_sdpa, 3, in3, per, 4, (int64_t[]){NB, 2, 4, 3}, 24);
        check_slices(ctx, "flash_sdpa", f_flash, 3, in3, per, 4, (int64_t[]){NB, 2, 4, 3}, 24);
    }
    attn_ctx_free(ctx);
    TEST_END();
}

static void test_args(void) {
    TEST_BEGIN("batch slice: bad arguments refused, rows 0 turns it off");
    attn_ctx *ctx = NULL;
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)1 << 20;
    cc.n_threads = 1;
    CHECK(attn_ctx_new(&ctx, &cc) == ATTN_OK, "context");
    if (ctx) {
        CHECK(attn_ctx_set_batch_slice(ctx, 3, 2, 4) == ATTN_ERR_INVALID_ARG, "rows [3, 5) of 4 accepted");
        CHECK(attn_ctx_set_batch_slice(ctx, -1, 1, 4) == ATTN_ERR_INVALID_ARG, "row0 -1 accepted");
        CHECK(attn_ctx_set_batch_slice(NULL, 0, 1, 4) == ATTN_ERR_INVALID_ARG, "NULL context accepted");
        attn_ctx_free(ctx);
        ctx = NULL;
        CHECK(attn_ctx_new(&ctx, &cc) == ATTN_OK, "context");
    }
    if (ctx) {
        /* off: a tensor of 6 takes ceil(6 / 4) = 2 counters; a slice of 2 rows of 4 takes 3 */
        attn_ctx_set_training(ctx, 1);
        CHECK(attn_ctx_set_batch_slice(ctx, 0, 0, 0) == ATTN_OK, "off");
        attn_ctx_set_rng(ctx, 1, 0);
        attn_tensor *x = attn_tensor_new(ctx, ATTN_F32, 2, (int64_t[]){2, 3});
        fill(attn_f32(x), 6, 0);
        CHECK(attn_dropout(ctx, x, 0.5f) && attn_ctx_rng_offset(ctx) == 2, "off: offset %llu, expected 2",
              (unsigned long long)attn_ctx_rng_offset(ctx));
        CHECK(attn_ctx_set_batch_slice(ctx, 1, 2, 4) == ATTN_OK, "slice");
        attn_ctx_set_rng(ctx, 1, 0);
        CHECK(attn_dropout(ctx, x, 0.5f) && attn_ctx_rng_offset(ctx) == 3, "slice: offset %llu, expected 3",
              (unsigned long long)attn_ctx_rng_offset(ctx));
        /* 5 elements are not rows of 2: the whole-tensor mask, 2 counters */
        attn_tensor *odd = attn_tensor_new(ctx, ATTN_F32, 1, (int64_t[]){5});
        fill(attn_f32(odd), 5, 0);
        attn_ctx_set_rng(ctx, 1, 0);
        CHECK(attn_dropout(ctx, odd, 0.5f) && attn_ctx_rng_offset(ctx) == 2, "no batch dim: offset %llu, expected 2",
              (unsigned long long)attn_ctx_rng_offset(ctx));
    }
    attn_ctx_free(ctx);
    TEST_END();
}

void suite_batch_slice(void) {
    test_masks();
    test_args();
}
