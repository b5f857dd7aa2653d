/* cli_util.c: small helpers shared by the model commands (attn bert, attn
 * gpt): the wall clock, option values and output folders. See commands.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "commands.h"

int cli_opt_int(const char *cmd, const char *sub, const char *a, const char *v, long long lo,
                long long hi, long long *out) {
    char *end = NULL;
    errno = 0;
    long long x = v && *v ? strtoll(v, &end, 10) : 0;
    if (v && *v && !errno && !*end && x >= lo && x <= hi) {
        *out = x;
        return 0;
    }
    fprintf(stderr, "attn %s %s: %s '%s': expected an integer in [%lld, %lld] (try 'attn %s %s --help')\n",
            cmd, sub, a, v ? v : "(missing)", lo, hi, cmd, sub);
    return 2;
}

int cli_opt_real(const char *cmd, const char *sub, const char *a, const char *v, double lo,
                 double hi, double *out) {
    char *end = NULL;
    errno = 0;
    double x = v && *v ? strtod(v, &end) : 0.0;
    if (v && *v && !errno && !*end && x >= lo && x <= hi) {
        *out = x;
        return 0;
    }
    fprintf(stderr, "attn %s %s: %s '%s': expected a number in [%g, %g] (try 'attn %s %s --help')\n",
            cmd, sub, a, v ? v : "(missing)", lo, hi, cmd, sub);
    return 2;
}

int cli_make_dir(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}
