/* test_util.c: helpers shared by the suites (declared in tests/test.h). */
#include <stdio.h>
#include <string.h>

#include "fixture.h"
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

int test_load_torch_params(const atfx_file *fx, int case_index, attn_params *ps,
                           size_t store_prefix_len, const char *tag) {
    char pre[32];
    int npre = snprintf(pre, sizeof pre, "c%d.param.", case_index), nfx = 0;
    for (int i = 0; i < fx->n; i++) {
        const atfx_tensor *t = &fx->tensors[i];
        if (strncmp(t->name, pre, (size_t)npre) != 0) continue;
        attn_tensor *p = attn_params_at(ps, nfx++);
        if (!p || strlen(p->name) < store_prefix_len ||
            strcmp(p->name + store_prefix_len, t->name + npre) != 0 ||
            attn_tensor_numel(p) != t->numel) {
            CHECK(0, "%s: parameter %d is '%s' (%lld elements), torch's is '%s' (%lld)", tag,
                  nfx - 1, p ? p->name : "(none)", p ? (long long)attn_tensor_numel(p) : -1LL,
                  t->name + npre, (long long)t->numel);
            return -1;
        }
        memcpy(p->data, t->data, sizeof(float) * (size_t)t->numel);
    }
    CHECK(nfx == attn_params_count(ps), "%s: torch has %d parameters, attn %d", tag, nfx,
          attn_params_count(ps));
    return nfx;
}

const atfx_tensor *test_fx_need(const atfx_file *fx, const char *name, attn_dtype dt,
                                int64_t numel, const char *script) {
    const atfx_tensor *t = atfx_find(fx, name);
    CHECK(t != NULL, "fixture lacks tensor '%s' (regenerate with %s)", name, script);
    if (t && (t->dtype != dt || (numel >= 0 && t->numel != numel))) {
        CHECK(0, "fixture tensor '%s' has %lld elements of dtype %d, expected %lld of %d", name,
              (long long)t->numel, (int)t->dtype, (long long)numel, (int)dt);
        return NULL;
    }
    return t;
}

void test_fx_close(const char *tag, const char *what, const float *got, const atfx_file *fx,
                   const char *name, int64_t n, float atol, float rtol, const char *script) {
    const atfx_tensor *t = test_fx_need(fx, name, ATTN_F32, n, script);
    if (!t || !got) {
        CHECK(got != NULL, "%s: %s: no value to compare", tag, what);
        return;
    }
    char w[256];
    snprintf(w, sizeof w, "%s: %s", tag, what);
    test_allclose(w, got, atfx_f32(t), n, atol, rtol);
}

void test_expect_fail(attn_ctx *ctx, int failed, attn_status want, const char *needle,
                      const char *what) {
    CHECK(failed && attn_ctx_status(ctx) == want && strstr(attn_ctx_error(ctx), needle),
          "%s: expected failure '%s' naming '%s', got %s, status '%s': %s", what,
          attn_status_str(want), needle, failed ? "NULL" : "a result",
          attn_status_str(attn_ctx_status(ctx)), attn_ctx_error(ctx));
    attn_ctx_reset(ctx);
}
