/* test.h: the tiny test harness shared by every suite.
 *
 * A suite is a function `void suite_<name>(void)` listed in tests/suites.h.
 * Inside it, each test is a block opened with TEST_BEGIN("name") and closed
 * with TEST_END(); CHECK(cond, fmt, ...) records a failure (file, line and
 * the formatted message) without stopping the test. A test passes when none
 * of its checks failed. The runner prints one line per failed test and a
 * closing line "N passed, N failed"; it exits non-zero if anything failed.
 */
#ifndef ATTN_TEST_H
#define ATTN_TEST_H

#include <math.h>
#include <stdio.h>

#include "attn/attn.h"

extern int test__failed_checks; /* failed checks in the current test */
extern const char *test__name;
extern int test__verbose;
void test__begin(const char *name);
void test__end(void);
void test__fail(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#define TEST_BEGIN(name) test__begin(name)
#define TEST_END() test__end()
#define CHECK(cond, ...)                                               \
    do {                                                               \
        if (!(cond)) test__fail(__FILE__, __LINE__, __VA_ARGS__);      \
    } while (0)
/* Checks an attn call returned ATTN_OK, printing the library's message. */
#define CHECK_OK(expr)                                                          \
    do {                                                                        \
        attn_status st__ = (expr);                                              \
        if (st__ != ATTN_OK)                                                    \
            test__fail(__FILE__, __LINE__, "%s returned %s: %s", #expr,          \
                       attn_status_str(st__), attn_last_error());               \
    } while (0)

/* |a - b| <= atol + rtol * |ref| elementwise over n floats; on failure
 * reports the worst element (index, values, excess). Returns 1 if close.
 * NaN or Inf anywhere in a is a failure (unless ref has the same value). */
int test_allclose(const char *what, const float *a, const float *ref, long long n, float atol,
                  float rtol);

/* The directory of the committed fixtures (tests/fixtures, or
 * $ATTN_FIXTURES). */
const char *test_fixture_dir(void);

/* A call that must have failed (failed nonzero) with status want and a
 * message containing needle; what names it in the report. Resets the
 * context afterwards. */
void test_expect_fail(attn_ctx *ctx, int failed, attn_status want, const char *needle,
                      const char *what);

/* A context with arena_bytes of arena, n_threads threads and guard_bytes
 * guard bytes after every allocation (seed 0). On failure records a check
 * failure and returns NULL; the caller frees it with attn_ctx_free. */
attn_ctx *test_ctx_new(size_t arena_bytes, int n_threads, int guard_bytes);

/* attn_tensor_from(ctx, ATTN_F32, ...) with requires_grad set; NULL (and the
 * context's error) on failure. */
attn_tensor *test_leaf(attn_ctx *ctx, int ndim, const int64_t *shape, const float *data);

/* sum(a * r) as a graph scalar; r a constant with a's numel, copied into the
 * arena. NULL if a is NULL (so failures propagate through a graph). */
attn_tensor *test_dot_loss(attn_ctx *ctx, attn_tensor *a, const float *r);

/* sum(a * r) accumulated in double from a's contiguous float32 data. */
double test_dot_d(const attn_tensor *a, const float *r);

/* x[0..n) = standard normal draws from rng, in order. */
void test_fill_normal(float *x, int64_t n, attn_rng *rng);

/* Copies the parameters of fixture case k ("c<k>.param.<name>", torch's
 * named_parameters() in order) into the store, whose names after the first
 * store_prefix_len characters must be exactly those, in that order, with the
 * same sizes. Returns the number copied, or -1 after a failed CHECK. */
struct atfx_file;
int test_load_torch_params(const struct atfx_file *fx, int case_index, attn_params *ps,
                           size_t store_prefix_len, const char *tag);

/* The fixture tensor `name` of dtype dt with numel elements (numel < 0: any
 * size), or NULL after a failed CHECK that names the tensor and the script
 * that writes it. */
struct atfx_tensor;
const struct atfx_tensor *test_fx_need(const struct atfx_file *fx, const char *name,
                                       attn_dtype dt, int64_t numel, const char *script);

/* Compares n floats of got with the f32 fixture tensor `name` (test_allclose,
 * reported as "tag: what"). */
void test_fx_close(const char *tag, const char *what, const float *got,
                   const struct atfx_file *fx, const char *name, int64_t n, float atol,
                   float rtol, const char *script);

#endif
