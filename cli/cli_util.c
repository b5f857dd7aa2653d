/* cli_util.c: small helpers shared by the model commands (attn bert, attn
 * gpt): the wall clock, option values and output folders. See commands.h. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

#include "attn/attn.h"
#include "attn/safetensors.h"
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
    /* sub "" for a command without subcommands (attn embed): no stray space */
    const char *sp = sub[0] ? " " : "";
    fprintf(stderr, "attn %s%s%s: %s '%s': expected an integer in [%lld, %lld]%s (try 'attn %s%s%s --help')\n",
            cmd, sp, sub, a, v ? v : "(missing)", lo, hi,
            strcmp(a, "--threads") == 0 ? " (0: all; at most the CPUs online here)" : "", cmd, sp, sub);
    return 2;
}

long long cli_max_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? (long long)n : 1;
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
    const char *sp = sub[0] ? " " : "";
    fprintf(stderr, "attn %s%s%s: %s '%s': expected a number in [%g, %g] (try 'attn %s%s%s --help')\n",
            cmd, sp, sub, a, v ? v : "(missing)", lo, hi, cmd, sp, sub);
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

/* ---- numbers from text: options and checkpoint metadata ---------------------------- */

int parse_ll(const char *s, long long lo, long long hi, long long *out) {
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int parse_real(const char *s, double lo, double hi, double *out) {
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

int cli_check_family(const char *prog, struct attn_safetensors *f, const char *path, const char *key,
                     const char *want, const char *who) {
    const char *other = strcmp(key, "model") ? "model" : "run.model";
    const char *found_key = key, *found = attn_safetensors_metadata(f, key);
    if (found && !strcmp(found, want)) return 0;
    if (!found && (found = attn_safetensors_metadata(f, other)) != NULL) found_key = other;
    if (found)
        fprintf(stderr, "%s: %s is not a checkpoint of %s: its %s is '%s', expected %s '%s'\n", prog, path,
                who, found_key, found, key, want);
    else
        fprintf(stderr, "%s: %s is not a checkpoint of %s: it names no family (no run.model or model "
                        "metadata; expected %s '%s')\n", prog, path, who, key, want);
    return 1;
}

const char *meta_str(meta_reader *m, const char *key) {
    const char *v = attn_safetensors_metadata(m->f, key);
    if (!v && !m->err[0])
        snprintf(m->err, sizeof m->err, "%s: metadata '%s' is missing", m->path, key);
    return v ? v : "";
}

long long meta_ll(meta_reader *m, const char *key, long long lo, long long hi) {
    const char *v = attn_safetensors_metadata(m->f, key);
    long long x = 0;
    if (parse_ll(v, lo, hi, &x) != 0 && !m->err[0])
        snprintf(m->err, sizeof m->err, "%s: metadata '%s' = '%s': expected an integer in [%lld, %lld]",
                 m->path, key, v ? v : "(missing)", lo, hi);
    return x;
}

int meta_has(meta_reader *m, const char *key) {
    return attn_safetensors_metadata(m->f, key) != NULL;
}

double meta_real(meta_reader *m, const char *key, double lo, double hi) {
    const char *v = attn_safetensors_metadata(m->f, key);
    double x = 0.0;
    if (parse_real(v, lo, hi, &x) != 0 && !m->err[0])
        snprintf(m->err, sizeof m->err, "%s: metadata '%s' = '%s': expected a number in [%g, %g]",
                 m->path, key, v ? v : "(missing)", lo, hi);
    return x;
}

int cli_load_bytes(const char *cmd, const char *dir, const char *name, int32_t **ids, int64_t *n) {
    char path[4096];
    char *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (attn_lm_text_load(path, &text, &len) != ATTN_OK) {
        fprintf(stderr, "attn %s: cannot read %s: %s (scripts/get_wiki_data.sh makes data/wiki)\n", cmd,
                path, attn_last_error());
        return 1;
    }
    *ids = malloc((len ? len : 1) * sizeof **ids);
    if (!*ids) {
        free(text);
        fprintf(stderr, "attn %s: out of memory\n", cmd);
        return 1;
    }
    for (size_t i = 0; i < len; i++) (*ids)[i] = (unsigned char)text[i];
    *n = (int64_t)len;
    free(text);
    return 0;
}

double cli_row_nll(const float *row, int64_t V, int32_t y) {
    double mx = row[0];
    for (int64_t v = 1; v < V; v++)
        if (row[v] > mx) mx = row[v];
    double s = 0.0;
    for (int64_t v = 0; v < V; v++) s += exp((double)row[v] - mx);
    return mx + log(s) - (double)row[y];
}

int cli_fmnist_load(const char *cmd, const char *dir, attn_idx *train_x, attn_idx *train_y,
                    attn_idx *test_x, attn_idx *test_y) {
    static const char *names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                   "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    attn_idx *dst[4] = {train_x, train_y, test_x, test_y};
    char path[4096];
    for (int i = 0; i < 4; i++) memset(dst[i], 0, sizeof *dst[i]);
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (attn_idx_load(path, dst[i]) != ATTN_OK) {
            for (int j = 0; j < 4; j++) attn_idx_free(dst[j]);
            return cli_fail(cmd, "cannot read Fashion-MNIST (scripts/setup.sh prepares data/fashion-mnist)");
        }
    }
    return 0;
}
