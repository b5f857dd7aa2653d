/* test.h: the tiny test harness shared by every suite.
 *
 * A suite is a function `void suite_<name>(void)` listed in tests/suites.h.
 * Inside it, each test is a block opened with TEST_BEGIN("name") and closed
 * with TEST_END(); CHECK(cond, fmt, ...) records a failure (file, line and
 * the formatted message) without stopping the test. The runner's rules
 * (docs/testing.md, "The runner"):
 *   - a test passes when it ran at least one check and none failed; a test
 *     block with no check at all FAILS ("no checks ran");
 *   - a check that fails outside any test block (e.g. a suite's setup before
 *     its first TEST_BEGIN) fails the suite: it is reported with its file and
 *     line and counted as one failed test "<suite>: checks outside a test";
 *     so is a TEST_BEGIN left open at the end of the suite or by the next
 *     TEST_BEGIN;
 *   - test_skip(name, reason) records a test that could not run (missing
 *     data): counted and named, never a pass;
 *   - the closing line is exactly "N passed, N failed, N skipped", preceded
 *     by one "skipped: <name>: <reason>" line per skipped test; the exit
 *     status is non-zero if anything failed or nothing passed.
 * Every numeric helper below is a macro that passes the caller's __FILE__
 * and __LINE__, so a failure names the line of the test that asked.
 */
#ifndef ATTN_TEST_H
#define ATTN_TEST_H

#include <math.h>
#include <stdio.h>

#include "attn/attn.h"

extern int test__failed_checks; /* failed checks in the current test (or outside one) */
extern const char *test__name;
extern int test__verbose;
void test__begin(const char *file, int line, const char *name);
void test__end(const char *file, int line);
/* One check that passed / failed. test__fail prints file:line, the test's
 * name (or "outside any test") and the message. */
void test__pass(void);
void test__fail(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* A test that did not run: counted as skipped and named with its reason in
 * the summary. Call it outside a test block, instead of TEST_BEGIN. */
void test_skip(const char *name, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#define TEST_BEGIN(name) test__begin(__FILE__, __LINE__, name)
#define TEST_END() test__end(__FILE__, __LINE__)
#define CHECK(cond, ...)                                               \
    do {                                                               \
        if (!(cond)) test__fail(__FILE__, __LINE__, __VA_ARGS__);      \
        else test__pass();                                             \
    } while (0)
/* CHECK reported at a given file and line (for helpers that check on behalf
 * of their caller). */
#define CHECK_AT(file, line, cond, ...)                                \
    do {                                                               \
        if (!(cond)) test__fail(file, line, __VA_ARGS__);              \
        else test__pass();                                             \
    } while (0)
/* Checks an attn call returned ATTN_OK, printing the library's message. */
#define CHECK_OK(expr)                                                          \
    do {                                                                        \
        attn_status st__ = (expr);                                              \
        if (st__ != ATTN_OK)                                                    \
            test__fail(__FILE__, __LINE__, "%s returned %s: %s", #expr,          \
                       attn_status_str(st__), attn_last_error());               \
        else test__pass();                                                      \
    } while (0)

/* |a - b| <= atol + rtol * |ref| elementwise over n floats; on failure
 * reports the worst element (index, values, excess) at the caller's file and
 * line. One check. Returns 1 if close. NaN or Inf anywhere in a is a failure
 * (unless ref has the same value). */
int test__allclose(const char *file, int line, const char *what, const float *a,
                   const float *ref, long long n, float atol, float rtol);
#define test_allclose(...) test__allclose(__FILE__, __LINE__, __VA_ARGS__)

/* The directory of the committed fixtures (tests/fixtures, or
 * $ATTN_FIXTURES). */
const char *test_fixture_dir(void);

/* A call that must have failed (failed nonzero) with status want and a
 * message containing needle; what names it in the report. Resets the
 * context afterwards. */
void test__expect_fail(const char *file, int line, attn_ctx *ctx, int failed, attn_status want,
                       const char *needle, const char *what);
#define test_expect_fail(...) test__expect_fail(__FILE__, __LINE__, __VA_ARGS__)

/* A context with arena_bytes of arena, n_threads threads and guard_bytes
 * guard bytes after every allocation (seed 0). On failure records a check
 * failure and returns NULL; the caller frees it with attn_ctx_free. */
attn_ctx *test__ctx_new(const char *file, int line, size_t arena_bytes, int n_threads,
                        int guard_bytes);
#define test_ctx_new(...) test__ctx_new(__FILE__, __LINE__, __VA_ARGS__)

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

/* A random sparse pattern (sparse.h) for T queries and S keys: every kind,
 * causal or not, every heads mode, head offsets, sizes mostly in [1, S + 2]
 * and now and then far beyond (up to 2^30); it passes attn_sparse_check. */
void test_sparse_draw(attn_rng *rng, int64_t T, int64_t S, attn_sparse_pattern *p);
/* A one-line description of p into buf (n bytes). */
void test_sparse_label(const attn_sparse_pattern *p, char *buf, size_t n);

/* Copies the parameters of fixture case k ("c<k>.param.<name>", torch's
 * named_parameters() in order) into the store, whose names after the first
 * store_prefix_len characters must be exactly those, in that order, with the
 * same sizes. Returns the number copied, or -1 after a failed CHECK. */
struct atfx_file;
int test__load_torch_params(const char *file, int line, const struct atfx_file *fx,
                            int case_index, attn_params *ps, size_t store_prefix_len,
                            const char *tag);
#define test_load_torch_params(...) test__load_torch_params(__FILE__, __LINE__, __VA_ARGS__)

/* The fixture tensor `name` of dtype dt with numel elements (numel < 0: any
 * size), or NULL after a failed CHECK that names the tensor and the script
 * that writes it. */
struct atfx_tensor;
const struct atfx_tensor *test__fx_need(const char *file, int line, const struct atfx_file *fx,
                                        const char *name, attn_dtype dt, int64_t numel,
                                        const char *script);
#define test_fx_need(...) test__fx_need(__FILE__, __LINE__, __VA_ARGS__)

/* Compares n floats of got with the f32 fixture tensor `name` (test_allclose,
 * reported as "tag: what"). */
void test__fx_close(const char *file, int line, const char *tag, const char *what,
                    const float *got, const struct atfx_file *fx, const char *name, int64_t n,
                    float atol, float rtol, const char *script);
#define test_fx_close(...) test__fx_close(__FILE__, __LINE__, __VA_ARGS__)

#endif
