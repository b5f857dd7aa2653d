/* test_core.c: the context (arena, errors, guards), tensors and views, the
 * tape, and the parameter store. */
#include <stdlib.h>
#include <string.h>

#include "../src/core/internal.h"
#include "attn/attn.h"
#include "test.h"

static attn_ctx *new_ctx(size_t arena, int guards) {
    attn_ctx_config cfg = {.arena_bytes = arena, .n_threads = 1, .seed = 1, .guard_bytes = guards};
    attn_ctx *ctx = NULL;
    CHECK_OK(attn_ctx_new(&ctx, &cfg));
    return ctx;
}

static void test_status_strings(void) {
    TEST_BEGIN("core.status_strings");
    for (int s = 0; s < ATTN_STATUS_COUNT; s++) {
        const char *str = attn_status_str((attn_status)s);
        CHECK(str && str[0] && strcmp(str, "unknown status") != 0, "status %d has no name", s);
    }
    CHECK(strcmp(attn_status_str((attn_status)999), "unknown status") == 0, "bad status named");
    TEST_END();
}

/* A message passed on from attn_last_error() (the thread-local buffer that
 * attn__fail also writes) must survive: rnn.c and rnn_attention.c do this. */
static void test_error_passed_on(void) {
    TEST_BEGIN("core.error_passed_on");
    attn_ctx *ctx = NULL;
    CHECK(attn_ctx_new(&ctx, NULL) == ATTN_OK, "ctx");
    attn__error(ATTN_ERR_INVALID_ARG, "rnn_forward: hidden_size 0, expected >= 1");
    attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s", attn_last_error());
    CHECK(strcmp(attn_ctx_error(ctx), "rnn_forward: hidden_size 0, expected >= 1") == 0,
          "context message '%s'", attn_ctx_error(ctx));
    CHECK(strcmp(attn_last_error(), "rnn_forward: hidden_size 0, expected >= 1") == 0,
          "thread message '%s'", attn_last_error());
    attn_ctx_free(ctx);
    TEST_END();
}

static void test_arena(void) {
    TEST_BEGIN("core.arena_exhaustion");
    attn_ctx *ctx = new_ctx(4096, 0);
    int64_t shape[1] = {2048}; /* 8 KiB > 4 KiB arena */
    attn_tensor *t = attn_tensor_new(ctx, ATTN_F32, 1, shape);
    CHECK(t == NULL, "allocation larger than the arena succeeded");
    CHECK(attn_ctx_status(ctx) == ATTN_ERR_OOM, "status %s, expected out of memory",
          attn_status_str(attn_ctx_status(ctx)));
    CHECK(strstr(attn_ctx_error(ctx), "needed 8192 bytes") != NULL, "message: %s",
          attn_ctx_error(ctx));
    attn_ctx_reset(ctx);
    CHECK(attn_ctx_status(ctx) == ATTN_OK, "reset did not clear the error");
    shape[0] = 16;
    t = attn_tensor_new(ctx, ATTN_F32, 1, shape);
    CHECK(t != NULL && attn_ctx_arena_used(ctx) > 0, "small allocation failed after reset");
    for (int i = 0; t && i < 16; i++) CHECK(attn_f32(t)[i] == 0.0f, "tensor_new not zeroed");
    attn_ctx_free(ctx);
    TEST_END();
}

static void test_guards(void) {
    TEST_BEGIN("core.guard_bytes_detect_overrun");
    attn_ctx *ctx = new_ctx(1 << 20, 32);
    int64_t shape[1] = {5};
    attn_tensor *a = attn_tensor_new(ctx, ATTN_F32, 1, shape);
    attn_tensor *b = attn_tensor_new(ctx, ATTN_F32, 1, shape);
    CHECK(a && b, "allocation failed");
    CHECK_OK(attn_ctx_check_guards(ctx));
    if (a) attn_f32(a)[5] = 1.0f; /* one past the end: the guard must notice */
    CHECK(attn_ctx_check_guards(ctx) == ATTN_ERR_STATE, "overrun not detected");
    CHECK(strstr(attn_last_error(), "overrun") != NULL, "message: %s", attn_last_error());
    attn_ctx_free(ctx);
    TEST_END();
}

static void test_tensor_errors(void) {
    TEST_BEGIN("core.tensor_new_errors");
    attn_ctx *ctx = new_ctx(1 << 20, 0);
    int64_t bad[5] = {1, 2, 3, 4, 5};
    CHECK(attn_tensor_new(ctx, ATTN_F32, 5, bad) == NULL, "5 dims accepted");
    CHECK(attn_ctx_status(ctx) == ATTN_ERR_SHAPE, "5 dims: wrong status");
    attn_ctx_reset(ctx);
    int64_t neg[2] = {3, -1};
    CHECK(attn_tensor_new(ctx, ATTN_F32, 2, neg) == NULL, "negative dim accepted");
    attn_ctx_reset(ctx);
    int64_t huge[4] = {INT64_C(1) << 20, INT64_C(1) << 20, INT64_C(1) << 20, INT64_C(1) << 20};
    CHECK(attn_tensor_new(ctx, ATTN_F32, 4, huge) == NULL, "overflowing size accepted");
    CHECK(attn_ctx_status(ctx) == ATTN_ERR_OOM, "overflow: status %s",
          attn_status_str(attn_ctx_status(ctx)));
    attn_ctx_reset(ctx);
    /* a scalar has one element */
    attn_tensor *s = attn_tensor_new(ctx, ATTN_F32, 0, NULL);
    CHECK(s && attn_tensor_numel(s) == 1, "scalar numel");
    attn_ctx_free(ctx);
    TEST_END();
}

/* Views share storage; a permuted view is strided and an op on it goes
 * through a contiguous copy, with gradients mapped back. */
static void test_views(void) {
    TEST_BEGIN("core.views_share_storage_and_route_gradients");
    attn_ctx *ctx = new_ctx(1 << 20, 16);
    float v[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, 2, shape, v);
    x->requires_grad = 1;
    attn_tensor *xt = attn_transpose(ctx, x, 0, 1); /* [3,2] view */
    CHECK(xt && xt->data == x->data, "transpose copied the data");
    CHECK(xt && !attn_tensor_is_contiguous(xt), "transpose view reported contiguous");
    attn_tensor *y = attn_scale(ctx, xt, 2.0f); /* contiguous copy inside */
    CHECK(y && y->shape[0] == 3 && y->shape[1] == 2, "scale of the view has shape %s",
          y ? "wrong" : "none");
    if (y) {
        float want[6] = {2, 8, 4, 10, 6, 12};
        test_allclose("transpose then scale", attn_f32(y), want, 6, 0, 0);
        float g[6] = {1, 10, 100, 1000, 10000, 100000};
        CHECK_OK(attn_backward_from(ctx, y, g));
        /* y[i][j] = 2 x[j][i]  =>  gx[j][i] = 2 g[i][j] */
        float gx[6] = {2, 200, 20000, 20, 2000, 200000};
        if (x->grad) test_allclose("gradient through transpose", x->grad, gx, 6, 0, 0);
        else CHECK(0, "x received no gradient");
    }
    int64_t ns[1] = {-1};
    attn_tensor *flat = attn_reshape(ctx, x, 1, ns);
    CHECK(flat && flat->shape[0] == 6 && flat->data == x->data, "reshape -1 inference");
    attn_tensor *sl = attn_slice(ctx, x, 1, 1, 2); /* columns 1..2 */
    CHECK(sl && sl->shape[1] == 2 && attn_f32(sl) == attn_f32(x) + 1, "slice offset");
    CHECK(attn_slice(ctx, x, 1, 2, 2) == NULL, "out-of-range slice accepted");
    CHECK(attn_ctx_status(ctx) == ATTN_ERR_INVALID_ARG && strstr(attn_ctx_error(ctx), "slice"),
          "slice error: %s", attn_ctx_error(ctx));
    CHECK_OK(attn_ctx_check_guards(ctx));
    attn_ctx_free(ctx);
    TEST_END();
}

static void test_tape(void) {
    TEST_BEGIN("core.tape_accumulates_and_is_consumed");
    attn_ctx *ctx = new_ctx(1 << 20, 0);
    float v[3] = {0.5f, -1.0f, 2.0f};
    int64_t shape[1] = {3};
    attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, 1, shape, v);
    x->requires_grad = 1;
    /* y = exp(x) + exp(x) through two uses of x: the gradient adds up */
    attn_tensor *a = attn_exp(ctx, x);
    attn_tensor *b = attn_scale(ctx, x, 3.0f);
    CHECK(attn_ctx_tape_size(ctx) == 2, "tape has %d nodes, expected 2", attn_ctx_tape_size(ctx));
    float ones[3] = {1, 1, 1};
    CHECK_OK(attn_backward_from(ctx, a, ones));
    CHECK(attn_backward_from(ctx, b, ones) == ATTN_ERR_STATE, "second backward allowed");
    for (int i = 0; i < 3 && x->grad; i++)
        CHECK(fabsf(x->grad[i] - expf(v[i])) <= 1e-6f * expf(v[i]), "grad[%d] = %g", i,
              (double)x->grad[i]);
    /* no-grad mode records nothing */
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    x = attn_tensor_from(ctx, ATTN_F32, 1, shape, v);
    x->requires_grad = 1;
    a = attn_exp(ctx, x);
    CHECK(a && attn_ctx_tape_size(ctx) == 0 && !a->requires_grad, "no-grad mode recorded a node");
    CHECK(attn_backward_from(ctx, a, ones) == ATTN_ERR_STATE, "backward without a tape allowed");
    attn_ctx_set_grad_enabled(ctx, 1);
    /* NULL propagates and keeps the first error */
    attn_ctx_reset(ctx);
    attn_tensor *n = attn_exp(ctx, attn_tanh(ctx, NULL));
    CHECK(n == NULL && attn_ctx_status(ctx) == ATTN_ERR_INVALID_ARG, "NULL did not propagate");
    CHECK(strstr(attn_ctx_error(ctx), "tanh") != NULL, "first error lost: %s",
          attn_ctx_error(ctx));
    attn_ctx_free(ctx);
    TEST_END();
}

static void test_params(void) {
    TEST_BEGIN("core.params_store");
    attn_params *ps = NULL;
    CHECK_OK(attn_params_new(&ps));
    attn_tensor *w = NULL, *b = NULL;
    int64_t ws[2] = {3, 4}, bs[1] = {3};
    CHECK_OK(attn_params_add(ps, "fc.weight", 2, ws, &w));
    CHECK_OK(attn_params_add(ps, "fc.bias", 1, bs, &b));
    CHECK(attn_params_add(ps, "fc.bias", 1, bs, NULL) == ATTN_ERR_INVALID_ARG, "duplicate name");
    CHECK(strstr(attn_last_error(), "fc.bias") != NULL, "message: %s", attn_last_error());
    int64_t zero[1] = {0};
    CHECK(attn_params_add(ps, "z", 1, zero, NULL) == ATTN_ERR_SHAPE, "zero dim accepted");
    CHECK(attn_params_count(ps) == 2 && attn_params_numel(ps) == 15, "count/numel");
    CHECK(attn_params_find(ps, "fc.weight") == w && attn_params_find(ps, "nope") == NULL, "find");
    attn_rng rng;
    attn_rng_init(&rng, 7);
    attn_init_uniform(w, 0.5f, &rng);
    int in_range = 1;
    for (int i = 0; i < 12; i++) in_range &= fabsf(attn_f32(w)[i]) <= 0.5f;
    CHECK(in_range, "uniform init out of bounds");
    /* a parameter's gradient persists across context resets */
    attn_ctx *ctx = new_ctx(1 << 20, 0);
    attn_tensor *y = attn_sum(ctx, attn_scale(ctx, b, 2.0f), ATTN_ALL_AXES, 0);
    CHECK_OK(attn_backward(ctx, y));
    attn_ctx_reset(ctx);
    y = attn_sum(ctx, attn_scale(ctx, b, 2.0f), ATTN_ALL_AXES, 0);
    CHECK_OK(attn_backward(ctx, y));
    for (int i = 0; i < 3; i++) CHECK(b->grad[i] == 4.0f, "bias grad %g, expected 4", (double)b->grad[i]);
    attn_params_zero_grad(ps);
    CHECK(b->grad[0] == 0.0f, "zero_grad");
    attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();

    /* the name index: many names (rehashes, collisions), each found, misses
     * and duplicates answered right, order kept for attn_params_at */
    TEST_BEGIN("core.params_store name index (20,000 names)");
    CHECK_OK(attn_params_new(&ps));
    enum { N = 20000 };
    int bad_find = 0, bad_order = 0, bad_dup = 0, bad_miss = 0;
    char name[64];
    const int64_t one[1] = {1};
    for (int i = 0; ps && i < N; i++) {
        snprintf(name, sizeof name, "layers.%d.%s%d", i / 4, i % 2 ? "w" : "ln.bias", i % 4);
        attn_tensor *t = NULL;
        if (attn_params_add(ps, name, 1, one, &t) != ATTN_OK) {
            CHECK(0, "add %s: %s", name, attn_last_error());
            break;
        }
        attn_f32(t)[0] = (float)i;
    }
    for (int i = 0; ps && i < N; i++) {
        snprintf(name, sizeof name, "layers.%d.%s%d", i / 4, i % 2 ? "w" : "ln.bias", i % 4);
        const attn_tensor *t = attn_params_find(ps, name);
        bad_find += !t || attn_f32(t)[0] != (float)i;
        bad_order += attn_params_at(ps, i) != t;
        bad_dup += attn_params_add(ps, name, 1, one, NULL) != ATTN_ERR_INVALID_ARG;
        snprintf(name, sizeof name, "layers.%d.x", i);
        bad_miss += attn_params_find(ps, name) != NULL;
    }
    CHECK(attn_params_count(ps) == N, "count %d, expected %d", attn_params_count(ps), N);
    CHECK(bad_find == 0 && bad_order == 0 && bad_dup == 0 && bad_miss == 0,
          "%d names not found, %d out of order, %d duplicates accepted, %d misses found",
          bad_find, bad_order, bad_dup, bad_miss);
    CHECK(attn_params_find(ps, "") == NULL && attn_params_find(ps, NULL) == NULL, "empty name");
    attn_params_free(ps);
    TEST_END();
}

/* The private string builder behind the file writers. */
static void test_strbuf(void) {
    TEST_BEGIN("core.strbuf");
    attn__strbuf b = {0};
    attn__sb_put(&b, "", 0);
    CHECK(b.p && b.p[0] == 0 && b.len == 0, "empty put must leave a NUL-terminated buffer");
    for (int i = 0; i < 1000; i++) attn__sb_printf(&b, "%d,", i);
    CHECK(!b.oom && b.len == 3890, "length %zu after 1000 numbers, expected 3890", b.len);
    CHECK(b.p && strncmp(b.p, "0,1,2,", 6) == 0 && b.p[b.len] == 0, "content or terminator");
    attn__sb_putc(&b, 'x');
    attn__sb_puts(&b, "yz");
    CHECK(b.p && strcmp(b.p + b.len - 3, "xyz") == 0, "putc/puts");
    CHECK(attn__sb_reserve(&b, SIZE_MAX) == -1 && b.oom, "SIZE_MAX reserve must fail and set oom");
    size_t len = b.len;
    attn__sb_puts(&b, "more");
    CHECK(b.len == len, "calls after oom must do nothing");
    attn__sb_free(&b);
    CHECK(b.p == NULL && b.len == 0 && b.cap == 0, "free resets");
    TEST_END();
}

/* NULL and stale arguments at the API's edge (an audit, 2026-12-07, found
 * each of these crashing or succeeding): ops given a NULL context return
 * NULL with a message naming the op; the context's accessors take NULL
 * (setters do nothing, getters return 0, the two with a status return
 * ATTN_ERR_INVALID_ARG); a backward of a loss made before attn_ctx_reset
 * is ATTN_ERR_STATE, not a walk of another graph; attn_sparse_compile
 * with a NULL context or output, the seq2seq sampler and the model
 * metadata writers with NULL pointers, and a vocabulary kind out of range
 * are refused or ignored without touching memory. */
static void test_null_and_stale(void) {
    TEST_BEGIN("core/NULL contexts, NULL arguments and stale tensors");
    attn_ctx *ctx = test_ctx_new((size_t)1 << 20, 1, 0);
    if (ctx) {
        const int64_t sh[1] = {2};
        const float v[2] = {1.0f, 2.0f};
        attn_tensor *a = attn_tensor_from(ctx, ATTN_F32, 1, sh, v);
        CHECK(attn_add(NULL, a, a) == NULL && strstr(attn_last_error(), "add") &&
                  strstr(attn_last_error(), "NULL"),
              "add with a NULL context: %s", attn_last_error());
        CHECK(attn_relu(NULL, a) == NULL && strstr(attn_last_error(), "NULL"), "relu: %s",
              attn_last_error());
        attn_tensor *xs[2] = {a, a};
        CHECK(attn_concat(NULL, xs, 2, 0) == NULL && strstr(attn_last_error(), "concat"), "concat: %s",
              attn_last_error());
        CHECK(attn_tensor_new(NULL, ATTN_F32, 1, sh) == NULL &&
                  strstr(attn_last_error(), "attn_tensor_new: ctx is NULL"),
              "tensor_new: %s", attn_last_error());
        attn_ctx_set_training(NULL, 1);
        attn_ctx_set_grad_enabled(NULL, 1);
        attn_ctx_set_threads(NULL, 2);
        attn_ctx_set_rng(NULL, 1, 2);
        CHECK(attn_ctx_threads(NULL) == 0 && attn_ctx_training(NULL) == 0 &&
                  attn_ctx_arena_used(NULL) == 0 && attn_ctx_tape_size(NULL) == 0,
              "getters on NULL");
        CHECK(attn_ctx_set_precision(NULL, 0) == ATTN_ERR_INVALID_ARG &&
                  attn_ctx_check_guards(NULL) == ATTN_ERR_INVALID_ARG,
              "status setters on NULL");
        /* a loss from before a reset */
        attn_tensor *w = attn_tensor_from(ctx, ATTN_F32, 1, sh, v);
        if (w) w->requires_grad = 1;
        attn_tensor *loss = w ? attn_sum(ctx, attn_mul(ctx, w, w), -1, 0) : NULL;
        CHECK(loss != NULL, "forward: %s", attn_ctx_error(ctx));
        attn_ctx_reset(ctx);
        CHECK(loss && attn_backward(ctx, loss) == ATTN_ERR_STATE &&
                  strstr(attn_ctx_error(ctx), "not on this context's tape"),
              "backward of a stale loss on an empty tape: %s", attn_ctx_error(ctx));
        attn_ctx_reset(ctx);
        attn_tensor *w2 = attn_tensor_from(ctx, ATTN_F32, 1, sh, v);
        if (w2) w2->requires_grad = 1;
        attn_tensor *l2 = w2 ? attn_sum(ctx, attn_mul(ctx, w2, w2), -1, 0) : NULL;
        CHECK(l2 && loss && attn_backward(ctx, loss) == ATTN_ERR_STATE && !w2->grad,
              "backward of a stale loss beside a new graph: %s", attn_ctx_error(ctx));
        attn_ctx_reset(ctx);
        /* sparse compile, the sampler, metadata writers, vocabulary kinds */
        attn_sparse_pattern sp = {.kind = ATTN_SPARSE_LOCAL_1D, .block = 4};
        attn_sparse_layout L;
        CHECK(attn_sparse_compile(NULL, &sp, 1, 0, 1, 8, 8, 4, 4, &L) == ATTN_ERR_INVALID_ARG,
              "sparse_compile NULL ctx");
        CHECK(attn_sparse_compile(ctx, &sp, 1, 0, 1, 8, 8, 4, 4, NULL) == ATTN_ERR_INVALID_ARG,
              "sparse_compile NULL out");
        attn_ctx_reset(ctx);
        const int64_t *idx = (const int64_t *)1;
        int64_t nb = 7;
        attn_s2s_sampler zero;
        memset(&zero, 0, sizeof zero);
        CHECK(attn_s2s_sampler_next(NULL, &idx, &nb) == -1 && idx == NULL && nb == 0 &&
                  attn_s2s_sampler_next(&zero, &idx, &nb) == -1,
              "sampler_next on NULL / a zeroed sampler");
        attn_s2s_sampler_seek(NULL, 3);
        attn_kv kv[64];
        char buf[64 * 32];
        attn_gpt_config_meta(NULL, kv, buf);
        attn_gpt_config_meta(&(attn_gpt_config){0}, NULL, buf);
        attn_gan_config_default(NULL);
        attn_vocab *voc = NULL;
        CHECK(attn_lm_vocab_learn("abc", 3, (attn_vocab_kind)9999, 10, 1, &voc) == ATTN_ERR_INVALID_ARG &&
                  voc == NULL,
              "vocabulary kind 9999 accepted");
        attn_ctx_free(ctx);
    }
    TEST_END();
}

void suite_core(void) {
    test_strbuf();
    test_status_strings();
    test_error_passed_on();
    test_arena();
    test_guards();
    test_tensor_errors();
    test_views();
    test_tape();
    test_params();
    test_null_and_stale();
}
