/* test_main.c: the runner. Usage: attn_tests [--suite NAME] [--verbose]
 * Its rules are in test.h and docs/testing.md ("The runner"). Without
 * --suite it runs every suite of TEST_SUITES; the hidden suites of
 * TEST_HIDDEN_SUITES (the runner's own self-test, deliberately broken) run
 * only when named. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "test.h"

#define DECL(name) void suite_##name(void);
TEST_SUITES(DECL)
TEST_HIDDEN_SUITES(DECL)
#undef DECL

int test__failed_checks;
const char *test__name;
int test__verbose;
static int passed, failed, skipped;
static int checks;                /* checks (passed or failed) in the open test */
static int in_test;               /* a TEST_BEGIN is open */
static const char *suite_name;    /* the suite now running */
static int stray_failed;          /* failed checks outside a test block, this suite */
static char **skip_lines;         /* "name: reason" of every skipped test */
static int suite_start_count;     /* passed + failed + skipped when the suite began */

/* Closes the open test: failed if a check failed or if none ran. */
static void close_test(const char *why_open) {
    if (why_open) {
        failed++;
        printf("FAIL %s (%s)\n", test__name, why_open);
    } else if (test__failed_checks) {
        failed++;
        printf("FAIL %s (%d failed checks)\n", test__name, test__failed_checks);
    } else if (checks == 0) {
        failed++;
        printf("FAIL %s (no checks ran: a test block must check something)\n", test__name);
    } else {
        passed++;
        if (test__verbose) printf("ok   %s\n", test__name);
    }
    fflush(stdout);
    in_test = 0;
    test__failed_checks = 0;
    checks = 0;
    test__name = NULL;
}

void test__begin(const char *file, int line, const char *name) {
    if (in_test) {
        printf("  %s:%d: TEST_BEGIN(\"%s\") while \"%s\" is still open\n", file, line, name,
               test__name);
        close_test("never closed with TEST_END");
    }
    /* failures since the last test (setup code between blocks) were already
     * counted by test__fail as outside any test */
    test__name = name;
    test__failed_checks = 0;
    checks = 0;
    in_test = 1;
    attn_clear_error();
}

void test__end(const char *file, int line) {
    if (!in_test) {
        test__fail(file, line, "TEST_END() without an open TEST_BEGIN");
        return;
    }
    close_test(NULL);
}

void test__pass(void) {
    if (in_test) checks++;
}

void test__fail(const char *file, int line, const char *fmt, ...) {
    if (!in_test) {
        stray_failed++;
        printf("  %s:%d: [outside any test, suite %s] ", file, line,
               suite_name ? suite_name : "?");
    } else {
        checks++;
        test__failed_checks++;
        if (test__failed_checks > 8) return; /* enough detail for one test */
        printf("  %s:%d: [%s] ", file, line, test__name);
    }
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!in_test) test__failed_checks++; /* helpers that test it still see the failure */
}

void test_skip(const char *name, const char *fmt, ...) {
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (in_test) {
        test__fail(__FILE__, __LINE__, "test_skip(\"%s\") inside the open test", name);
        return;
    }
    size_t n = strlen(name) + strlen(reason) + 3;
    char *line = malloc(n);
    char **grown = realloc(skip_lines, sizeof *skip_lines * (size_t)(skipped + 1));
    if (!line || !grown) {
        free(line);
        if (grown) skip_lines = grown;
        test__fail(__FILE__, __LINE__, "out of memory recording the skip of %s", name);
        return;
    }
    skip_lines = grown;
    snprintf(line, n, "%s: %s", name, reason);
    skip_lines[skipped++] = line;
    printf("SKIP %s\n", line);
    fflush(stdout);
}

static void suite_begin(const char *name) {
    suite_name = name;
    suite_start_count = passed + failed + skipped;
    stray_failed = 0;
    test__failed_checks = 0;
    if (test__verbose) printf("== suite %s\n", name);
}

/* A suite ends with at least one test run or skipped, no open test and no
 * failure outside a test block; otherwise it counts a failed test of its
 * own. */
static void suite_end(void) {
    if (in_test) {
        printf("  suite %s ended inside \"%s\"\n", suite_name, test__name);
        close_test("never closed with TEST_END");
    }
    if (passed + failed + skipped == suite_start_count) {
        failed++;
        printf("FAIL %s: the suite ran no test\n", suite_name);
    }
    if (stray_failed) {
        failed++;
        printf("FAIL %s: checks outside a test (%d failed checks outside any test block)\n",
               suite_name, stray_failed);
        fflush(stdout);
    }
    test__failed_checks = 0;
    stray_failed = 0;
    suite_name = NULL;
}

int test__allclose(const char *file, int line, const char *what, const float *a,
                   const float *ref, long long n, float atol, float rtol) {
    long long worst = -1;
    double worst_excess = 0.0;
    for (long long i = 0; i < n; i++) {
        double x = a[i], r = ref[i];
        double excess;
        if (isnan(x) || isnan(r) || isinf(x) || isinf(r)) {
            if ((isnan(x) && isnan(r)) || x == r) continue;
            excess = INFINITY;
        } else {
            excess = fabs(x - r) - (atol + rtol * fabs(r));
        }
        if (excess > 0 && (worst < 0 || excess > worst_excess)) {
            worst = i;
            worst_excess = excess;
        }
    }
    if (worst < 0) {
        test__pass();
        return 1;
    }
    test__fail(file, line,
               "%s: element %lld of %lld: got %.9g, expected %.9g (|diff| %.3g > atol %.3g + "
               "rtol %.3g * |ref|)",
               what, worst, n, (double)a[worst], (double)ref[worst],
               fabs((double)a[worst] - (double)ref[worst]), (double)atol, (double)rtol);
    return 0;
}

const char *test_fixture_dir(void) {
    const char *d = getenv("ATTN_FIXTURES");
    return d && d[0] ? d : "tests/fixtures";
}

int main(int argc, char **argv) {
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--suite") == 0 && i + 1 < argc) only = argv[++i];
        else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) test__verbose = 1;
        else {
            fprintf(stderr, "usage: %s [--suite NAME] [--verbose]\n", argv[0]);
            return 2;
        }
    }
    int ran = 0;
#define RUN(name)                                                  \
    if (!only || strcmp(only, #name) == 0) {                       \
        suite_begin(#name);                                        \
        suite_##name();                                            \
        suite_end();                                               \
        ran++;                                                     \
    }
#define RUN_HIDDEN(name)                                           \
    if (only && strcmp(only, #name) == 0) {                        \
        suite_begin(#name);                                        \
        suite_##name();                                            \
        suite_end();                                               \
        ran++;                                                     \
    }
    TEST_SUITES(RUN)
    TEST_HIDDEN_SUITES(RUN_HIDDEN)
#undef RUN
#undef RUN_HIDDEN
    if (!ran) {
        fprintf(stderr, "no suite named '%s'\n", only);
        return 2;
    }
    for (int i = 0; i < skipped; i++) {
        printf("skipped: %s\n", skip_lines[i]);
        free(skip_lines[i]);
    }
    free(skip_lines);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed || passed == 0 ? 1 : 0;
}
