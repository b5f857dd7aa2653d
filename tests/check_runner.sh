#!/usr/bin/env bash
# check_runner.sh TESTS_BINARY: the test of the test runner (part of
# `make test`). Runs the hidden suites of tests/test_runner.c, each wrong on
# purpose, and asserts that the runner catches it: a non-zero exit, the
# "FAIL" line that names the fault, and the closing line. runner_ok must exit
# 0 and count its skip. The suites' own output is shown indented ("     | ")
# so that CI's sum of "N passed, N failed" lines does not count it. Prints
# "runner: N passed, N failed" and exits non-zero if the runner was fooled.
set -uo pipefail

TESTS="${1:-build/attn_tests}"
passed=0
failed=0
OUT="$(mktemp "${TMPDIR:-/tmp}/attn_runner.XXXXXX")"
trap 'rm -f "$OUT"' EXIT

# expect SUITE WANT_RC SUMMARY PATTERN...: runs the suite, then checks its exit
# status (0 or "nonzero"), its exact closing line and that every PATTERN
# (grep -E) occurs in its output.
expect() {
    local suite="$1" want="$2" summary="$3"
    shift 3
    "$TESTS" --suite "$suite" >"$OUT" 2>&1
    local rc=$? why=""
    sed 's/^/     | /' "$OUT"
    if [ "$want" = 0 ] && [ "$rc" != 0 ]; then why="exit $rc, expected 0"; fi
    if [ "$want" = nonzero ] && { [ "$rc" = 0 ] || [ "$rc" -gt 1 ]; }; then
        why="exit $rc, expected 1 (the runner must catch it)"
    fi
    if [ "$(tail -n 1 "$OUT")" != "$summary" ]; then
        why="$why; last line '$(tail -n 1 "$OUT")', expected '$summary'"
    fi
    local p
    for p in "$@"; do
        grep -Eq -- "$p" "$OUT" || why="$why; no line matching '$p'"
    done
    if [ -z "$why" ]; then
        passed=$((passed + 1))
        echo "ok   runner: --suite $suite exits $rc with '$summary'"
    else
        failed=$((failed + 1))
        echo "FAIL runner: --suite $suite: ${why#; }"
    fi
}

if [ ! -x "$TESTS" ]; then
    echo "FAIL runner: $TESTS is not built"
    echo "runner: 0 passed, 1 failed"
    exit 1
fi

expect runner_ok 0 "1 passed, 0 failed, 1 skipped" \
    '^SKIP runner/a skipped test: the reason is named here$' \
    '^skipped: runner/a skipped test: the reason is named here$'
expect broken_before_block nonzero "1 passed, 1 failed, 0 skipped" \
    '^  tests/test_runner.c:[0-9]+: \[outside any test, suite broken_before_block\] attn_ctx_new' \
    '^FAIL broken_before_block: checks outside a test \(1 failed checks outside any test block\)$'
expect broken_empty_block nonzero "1 passed, 1 failed, 0 skipped" \
    '^FAIL runner/an empty test block \(no checks ran'
expect broken_unclosed nonzero "1 passed, 1 failed, 0 skipped" \
    '^FAIL runner/a test block left open \(never closed with TEST_END\)$'
# the numeric failure names the line of the test_allclose call itself
line=$(grep -n 'RUNNER_NUMERIC_LINE' tests/test_runner.c | cut -d: -f1)
expect broken_numeric nonzero "1 passed, 1 failed, 0 skipped" \
    "^  tests/test_runner.c:$line: \[runner/a numeric failure\] three floats: element 2 of 3: got 3.5, expected 3" \
    '^FAIL runner/a numeric failure \(1 failed checks\)$'
expect broken_no_test nonzero "0 passed, 1 failed, 0 skipped" \
    '^FAIL broken_no_test: the suite ran no test$'

echo "runner: $passed passed, $failed failed"
[ "$failed" = 0 ]
