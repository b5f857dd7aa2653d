/* test_runner.c: the runner's self-test, hidden suites that run only when
 * named (`attn_tests --suite NAME`, tests/suites.h TEST_HIDDEN_SUITES).
 *
 *   runner_ok            one passing test and one counted skip: exit 0,
 *                        "1 passed, 0 failed, 1 skipped";
 *   broken_before_block  a check fails in the suite's setup, before its first
 *                        TEST_BEGIN (the old runner printed "1 passed, 0
 *                        failed" for this one);
 *   broken_empty_block   a test block that checks nothing;
 *   broken_unclosed      a TEST_BEGIN never closed with TEST_END;
 *   broken_numeric       a numeric comparison that fails (its report must
 *                        name this file and the line of the call);
 *   broken_no_test       a suite that runs no test at all.
 *
 * Every other broken_* suite also has one passing test, so that only the broken
 * part can make the runner exit non-zero. tests/check_runner.sh (run by
 * `make test`) runs each one and asserts the exit status and the report.
 */
#include "test.h"

static void passing_test(void) {
    TEST_BEGIN("runner/a passing test");
    CHECK(1 + 1 == 2, "arithmetic");
    TEST_END();
}

void suite_runner_ok(void) {
    passing_test();
    test_skip("runner/a skipped test", "the reason is named here");
}

void suite_broken_before_block(void) {
    /* like a suite whose context cannot be made: a failed check, then an
     * early return before any test block */
    attn_ctx *ctx = test_ctx_new((size_t)1 << 20, 1, -1); /* guard_bytes -1: refused */
    passing_test();
    if (!ctx) return;
    attn_ctx_free(ctx);
}

void suite_broken_empty_block(void) {
    passing_test();
    TEST_BEGIN("runner/an empty test block");
    TEST_END();
}

void suite_broken_unclosed(void) {
    passing_test();
    TEST_BEGIN("runner/a test block left open");
    CHECK(1, "a passing check");
}

void suite_broken_numeric(void) {
    passing_test();
    TEST_BEGIN("runner/a numeric failure");
    const float got[3] = {1.0f, 2.0f, 3.5f}, want[3] = {1.0f, 2.0f, 3.0f};
    test_allclose("three floats", got, want, 3, 1e-6f, 1e-6f); /* RUNNER_NUMERIC_LINE */
    TEST_END();
}

void suite_broken_no_test(void) {
    /* like a suite whose every test sits behind a condition that is false */
}
