/* test_util.c: helpers shared by the suites (declared in tests/test.h). */
#include "test.h"

attn_ctx *test_ctx_new(size_t arena_bytes, int n_threads, int guard_bytes) {
    attn_ctx_config cfg = {
        .arena_bytes = arena_bytes, .n_threads = n_threads, .guard_bytes = guard_bytes};
    attn_ctx *ctx = NULL;
    CHECK_OK(attn_ctx_new(&ctx, &cfg));
    return ctx;
}

attn_tensor *test_leaf(attn_ctx *ctx, int ndim, const int64_t *shape, const float *data) {
    attn_tensor *t = attn_tensor_from(ctx, ATTN_F32, ndim, shape, data);
    if (t) t->requires_grad = 1;
    return t;
}

attn_tensor *test_dot_loss(attn_ctx *ctx, attn_tensor *a, const float *r) {
    if (!a) return NULL;
    attn_tensor *rt = attn_tensor_from(ctx, ATTN_F32, a->ndim, a->shape, r);
    return attn_sum(ctx, attn_mul(ctx, a, rt), ATTN_ALL_AXES, 0);
}

double test_dot_d(const attn_tensor *a, const float *r) {
    double s = 0.0;
    int64_t n = attn_tensor_numel(a);
    for (int64_t i = 0; i < n; i++) s += (double)attn_f32(a)[i] * (double)r[i];
    return s;
}

void test_fill_normal(float *x, int64_t n, attn_rng *rng) {
    for (int64_t i = 0; i < n; i++) x[i] = attn_rng_next_normal(rng);
}
