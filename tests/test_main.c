/* test_main.c: the runner. Usage: attn_tests [--suite NAME] [--verbose] */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "test.h"

#define DECL(name) void suite_##name(void);
TEST_SUITES(DECL)
#undef DECL

int test__failed_checks;
const char *test__name;
int test__verbose;
static int passed, failed;

void test__begin(const char *name) {
    test__name = name;
    test__failed_checks = 0;
    attn_clear_error();
}

void test__end(void) {
    if (test__failed_checks) {
        failed++;
        printf("FAIL %s (%d failed checks)\n", test__name, test__failed_checks);
    } else {
        passed++;
        if (test__verbose) printf("ok   %s\n", test__name);
    }
    fflush(stdout);
}

void test__fail(const char *file, int line, const char *fmt, ...) {
    test__failed_checks++;
    if (test__failed_checks > 8) return; /* enough detail for one test */
    printf("  %s:%d: [%s] ", file, line, test__name ? test__name : "?");
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

int test_allclose(const char *what, const float *a, const float *ref, long long n, float atol,
                  float rtol) {
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
    if (worst < 0) return 1;
    test__fail(__FILE__, __LINE__,
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
        if (test__verbose) printf("== suite %s\n", #name);         \
        suite_##name();                                            \
        ran++;                                                     \
    }
    TEST_SUITES(RUN)
#undef RUN
    if (!ran) {
        fprintf(stderr, "no suite named '%s'\n", only);
        return 2;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed || passed == 0 ? 1 : 0;
}
