/* test_util.c: helpers shared by the suites (declared in tests/test.h). */
#include <stdio.h>
#include <string.h>

#include "fixture.h"
#include "test.h"

/* Every helper that checks takes its caller's file and line (the macros of
 * test.h pass them), so a failure names the test's own line. */

attn_ctx *test__ctx_new(const char *file, int line, size_t arena_bytes, int n_threads,
                        int guard_bytes) {
    attn_ctx_config cfg = {
        .arena_bytes = arena_bytes, .n_threads = n_threads, .guard_bytes = guard_bytes};
    attn_ctx *ctx = NULL;
    attn_status st = attn_ctx_new(&ctx, &cfg);
    CHECK_AT(file, line, st == ATTN_OK, "attn_ctx_new (arena %zu bytes, %d threads) returned %s: %s",
             arena_bytes, n_threads, attn_status_str(st), attn_last_error());
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

/* a size: mostly in [1, max(S + 2, 3)], sometimes in [1, 8], now and then huge */
static int64_t sparse_size(attn_rng *rng, int64_t S) {
    const uint32_t r = attn_rng_next_below(rng, 10);
    if (r == 0) return attn_rng_next_below(rng, 2) ? (int64_t)1 << 30 : 1 + (int64_t)attn_rng_next_below(rng, 1u << 30);
    if (r <= 3) return 1 + (int64_t)attn_rng_next_below(rng, 8);
    const int64_t hi = S + 2 > 3 ? S + 2 : 3;
    return 1 + (int64_t)attn_rng_next_below(rng, (uint32_t)(hi > 100000 ? 100000 : hi));
}

void test_sparse_draw(attn_rng *rng, int64_t T, int64_t S, attn_sparse_pattern *p) {
    (void)T;
    memset(p, 0, sizeof *p);
    p->kind = 1 + (int)attn_rng_next_below(rng, 7);
    p->causal = attn_rng_next_below(rng, 2) == 0;
    p->heads = (int)attn_rng_next_below(rng, 4);
    p->head_offsets = attn_rng_next_below(rng, 2) == 0;
    switch (p->kind) {
    case ATTN_SPARSE_LOCAL_1D:
    case ATTN_SPARSE_STRIDED: p->block = sparse_size(rng, S); break;
    case ATTN_SPARSE_FIXED:
        p->block = sparse_size(rng, S);
        p->summary = attn_rng_next_below(rng, 4) == 0
                         ? p->block
                         : 1 + (int64_t)attn_rng_next_below(
                                   rng, (uint32_t)(p->block < 16 ? p->block : 16));
        break;
    case ATTN_SPARSE_LOCAL_2D:
        p->width = attn_rng_next_below(rng, 8) ? 1 + (int64_t)attn_rng_next_below(rng, 24)
                                               : sparse_size(rng, S);
        p->block_h = 1 + (int64_t)attn_rng_next_below(rng, 5);
        p->block_w = attn_rng_next_below(rng, 8) ? 1 + (int64_t)attn_rng_next_below(rng, 9)
                                                 : sparse_size(rng, S);
        p->margin_h = attn_rng_next_below(rng, 8) ? (int64_t)attn_rng_next_below(rng, 7)
                                                  : sparse_size(rng, S);
        p->margin_w = attn_rng_next_below(rng, 8) ? (int64_t)attn_rng_next_below(rng, 7)
                                                  : sparse_size(rng, S);
        break;
    case ATTN_SPARSE_SLIDING: p->window = sparse_size(rng, S); break;
    case ATTN_SPARSE_DILATED:
        p->window = sparse_size(rng, S);
        p->dilation = attn_rng_next_below(rng, 6) ? 1 + (int64_t)attn_rng_next_below(rng, 6)
                                                  : sparse_size(rng, S);
        break;
    default: /* global + sliding */
        p->window = sparse_size(rng, S);
        p->globals = attn_rng_next_below(rng, 6) ? (int64_t)attn_rng_next_below(rng, 5)
                                                 : sparse_size(rng, S);
        break;
    }
}

void test_sparse_label(const attn_sparse_pattern *p, char *buf, size_t n) {
    static const char *kinds[8] = {"?",       "local1d", "local2d", "strided",
                                   "fixed",   "sliding", "dilated", "global+sliding"};
    snprintf(buf, n,
             "%s causal %d heads %d offsets %d l %lld c %lld w %lld d %lld g %lld W %lld "
             "blk %lldx%lld margin %lldx%lld",
             kinds[p->kind >= 1 && p->kind <= 7 ? p->kind : 0], p->causal, p->heads,
             p->head_offsets, (long long)p->block, (long long)p->summary, (long long)p->window,
             (long long)p->dilation, (long long)p->globals, (long long)p->width,
             (long long)p->block_h, (long long)p->block_w, (long long)p->margin_h,
             (long long)p->margin_w);
}

int test__load_torch_params(const char *file, int line, const atfx_file *fx, int case_index,
                            attn_params *ps, size_t store_prefix_len, const char *tag) {
    char pre[32];
    int npre = snprintf(pre, sizeof pre, "c%d.param.", case_index), nfx = 0;
    for (int i = 0; i < fx->n; i++) {
        const atfx_tensor *t = &fx->tensors[i];
        if (strncmp(t->name, pre, (size_t)npre) != 0) continue;
        attn_tensor *p = attn_params_at(ps, nfx++);
        if (!p || strlen(p->name) < store_prefix_len ||
            strcmp(p->name + store_prefix_len, t->name + npre) != 0 ||
            attn_tensor_numel(p) != t->numel) {
            CHECK_AT(file, line, 0, "%s: parameter %d is '%s' (%lld elements), torch's is '%s' (%lld)", tag,
                  nfx - 1, p ? p->name : "(none)", p ? (long long)attn_tensor_numel(p) : -1LL,
                  t->name + npre, (long long)t->numel);
            return -1;
        }
        memcpy(p->data, t->data, sizeof(float) * (size_t)t->numel);
    }
    CHECK_AT(file, line, nfx == attn_params_count(ps), "%s: torch has %d parameters, attn %d", tag,
             nfx, attn_params_count(ps));
    return nfx;
}

const atfx_tensor *test__fx_need(const char *file, int line, const atfx_file *fx,
                                 const char *name, attn_dtype dt, int64_t numel,
                                 const char *script) {
    const atfx_tensor *t = atfx_find(fx, name);
    CHECK_AT(file, line, t != NULL, "fixture lacks tensor '%s' (regenerate with %s)", name, script);
    if (t && (t->dtype != dt || (numel >= 0 && t->numel != numel))) {
        CHECK_AT(file, line, 0, "fixture tensor '%s' has %lld elements of dtype %d, expected %lld of %d", name,
              (long long)t->numel, (int)t->dtype, (long long)numel, (int)dt);
        return NULL;
    }
    return t;
}

void test__fx_close(const char *file, int line, const char *tag, const char *what,
                    const float *got, const atfx_file *fx, const char *name, int64_t n, float atol,
                    float rtol, const char *script) {
    const atfx_tensor *t = test__fx_need(file, line, fx, name, ATTN_F32, n, script);
    if (!t || !got) {
        CHECK_AT(file, line, got != NULL, "%s: %s: no value to compare", tag, what);
        return;
    }
    char w[256];
    snprintf(w, sizeof w, "%s: %s", tag, what);
    test__allclose(file, line, w, got, atfx_f32(t), n, atol, rtol);
}

void test__expect_fail(const char *file, int line, attn_ctx *ctx, int failed, attn_status want,
                       const char *needle, const char *what) {
    CHECK_AT(file, line, failed && attn_ctx_status(ctx) == want && strstr(attn_ctx_error(ctx), needle),
          "%s: expected failure '%s' naming '%s', got %s, status '%s': %s", what,
          attn_status_str(want), needle, failed ? "NULL" : "a result",
          attn_status_str(attn_ctx_status(ctx)), attn_ctx_error(ctx));
    attn_ctx_reset(ctx);
}
