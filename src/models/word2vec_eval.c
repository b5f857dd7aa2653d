/* word2vec_eval.c: queries on word vectors (nearest neighbours by cosine,
 * 3CosAdd analogies) and the two evaluations of include/attn/word2vec.h
 * (analogy accuracy, Spearman correlation with human similarity scores). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "word2vec_internal.h"

/* The unit vectors of the first R words (a zero vector stays zero): R x D, malloc'd. */
static float *unit_rows(const attn_w2v *m, int64_t R) {
    const int D = m->D;
    float *u = malloc((size_t)R * (size_t)D * sizeof *u);
    if (!u) return NULL;
    for (int64_t i = 0; i < R; i++) {
        const float *v = m->in + (size_t)i * (size_t)D;
        double s = 0;
        for (int d = 0; d < D; d++) s += (double)v[d] * v[d];
        const float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (int d = 0; d < D; d++) u[(size_t)i * (size_t)D + (size_t)d] = v[d] * inv;
    }
    return u;
}

static void unit_of(const float *v, int D, float *out) {
    double s = 0;
    for (int d = 0; d < D; d++) s += (double)v[d] * v[d];
    const float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    for (int d = 0; d < D; d++) out[d] = v[d] * inv;
}

static int skipped(int64_t i, const int64_t *skip, int n_skip) {
    for (int k = 0; k < n_skip; k++)
        if (skip[k] == i) return 1;
    return 0;
}

/* Inserts (i, s) into the best-first lists idx/sim of *n (at most k) entries. */
static void topk_push(int64_t i, float s, int k, int64_t *idx, float *sim, int *n) {
    if (*n == k && !(s > sim[k - 1])) return;
    int p = *n < k ? (*n)++ : k - 1;
    while (p > 0 && sim[p - 1] < s) {
        idx[p] = idx[p - 1];
        sim[p] = sim[p - 1];
        p--;
    }
    idx[p] = i;
    sim[p] = s;
}

attn_status attn_w2v_nearest(const attn_w2v *m, const float *vec, const int64_t *skip, int n_skip,
                             int64_t restrict_to, int k, int64_t *idx, float *sim, int *found) {
    const char *fn = "attn_w2v_nearest";
    if (found) *found = 0;
    if (!m || !vec || !idx || !sim || k < 1 || n_skip < 0 || (n_skip > 0 && !skip) || restrict_to < 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument, k %d < 1, or a negative count", fn, k);
    const int D = m->D;
    const int64_t R = restrict_to > 0 && restrict_to < m->V ? restrict_to : m->V;
    float *q = malloc((size_t)D * sizeof *q);
    if (!q) return attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    unit_of(vec, D, q);
    int n = 0;
    for (int64_t i = 0; i < R; i++) {
        if (skipped(i, skip, n_skip)) continue;
        const float *v = m->in + (size_t)i * (size_t)D;
        double s = 0, dot = 0;
        for (int d = 0; d < D; d++) {
            s += (double)v[d] * v[d];
            dot += (double)v[d] * q[d];
        }
        topk_push(i, s > 0 ? (float)(dot / sqrt(s)) : 0.0f, k, idx, sim, &n);
    }
    free(q);
    if (found) *found = n;
    return ATTN_OK;
}

static attn_status lookup(const attn_w2v *m, const char *fn, const char *w, int64_t *i) {
    if (!w) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL word", fn);
    *i = attn_w2v_find(m, w);
    if (*i < 0) return attn__error(ATTN_ERR_INVALID_ARG, "%s: word '%s' is not in the vocabulary", fn, w);
    return ATTN_OK;
}

attn_status attn_w2v_similar(const attn_w2v *m, const char *word, int k, int64_t *idx, float *sim, int *found) {
    const char *fn = "attn_w2v_similar";
    if (!m) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL model", fn);
    int64_t i = -1;
    attn_status st = lookup(m, fn, word, &i);
    if (st) return st;
    return attn_w2v_nearest(m, m->in + (size_t)i * (size_t)m->D, &i, 1, 0, k, idx, sim, found);
}

attn_status attn_w2v_analogy(const attn_w2v *m, const char *a, const char *b, const char *c, int64_t restrict_to,
                             int k, int64_t *idx, float *sim, int *found) {
    const char *fn = "attn_w2v_analogy";
    if (!m) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL model", fn);
    int64_t w[3] = {-1, -1, -1};
    attn_status st;
    if ((st = lookup(m, fn, a, &w[0])) || (st = lookup(m, fn, b, &w[1])) || (st = lookup(m, fn, c, &w[2])))
        return st;
    const int D = m->D;
    float *u = malloc((size_t)D * 4 * sizeof *u);
    if (!u) return attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    float *q = u + 3 * D;
    for (int j = 0; j < 3; j++) unit_of(m->in + (size_t)w[j] * (size_t)D, D, u + j * D);
    for (int d = 0; d < D; d++) q[d] = u[D + d] - u[d] + u[2 * D + d];
    st = attn_w2v_nearest(m, q, w, 3, restrict_to, k, idx, sim, found);
    free(u);
    return st;
}

attn_status attn_w2v_cosine(const attn_w2v *m, const char *a, const char *b, double *cos) {
    const char *fn = "attn_w2v_cosine";
    if (!m || !cos) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    int64_t i = -1, j = -1;
    attn_status st;
    if ((st = lookup(m, fn, a, &i)) || (st = lookup(m, fn, b, &j))) return st;
    const float *x = m->in + (size_t)i * (size_t)m->D, *y = m->in + (size_t)j * (size_t)m->D;
    double xy = 0, xx = 0, yy = 0;
    for (int d = 0; d < m->D; d++) {
        xy += (double)x[d] * y[d];
        xx += (double)x[d] * x[d];
        yy += (double)y[d] * y[d];
    }
    *cos = xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : 0.0;
    return ATTN_OK;
}

/* ---- evaluation ------------------------------------------------------------------------------ */

typedef struct rank_item {
    double v;
    int64_t i;
} rank_item;

static int by_value(const void *pa, const void *pb) {
    const rank_item *a = pa, *b = pb;
    if (a->v != b->v) return a->v < b->v ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* Ranks 1..n of x, ties given their mean rank. */
static int ranks(const double *x, int64_t n, double *r) {
    rank_item *it = malloc((size_t)n * sizeof *it);
    if (!it) return -1;
    for (int64_t i = 0; i < n; i++) it[i] = (rank_item){x[i], i};
    qsort(it, (size_t)n, sizeof *it, by_value);
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j + 1 < n && it[j + 1].v == it[i].v) j++;
        const double mean = (double)(i + j) / 2.0 + 1.0;
        for (int64_t k = i; k <= j; k++) r[it[k].i] = mean;
        i = j + 1;
    }
    free(it);
    return 0;
}

double attn_spearman(const double *x, const double *y, int64_t n) {
    if (!x || !y || n < 2) return NAN;
    double *rx = malloc((size_t)n * 2 * sizeof *rx);
    if (!rx) return NAN;
    double *ry = rx + n;
    if (ranks(x, n, rx) || ranks(y, n, ry)) {
        free(rx);
        return NAN;
    }
    double mx = 0, my = 0;
    for (int64_t i = 0; i < n; i++) {
        mx += rx[i];
        my += ry[i];
    }
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (int64_t i = 0; i < n; i++) {
        sxy += (rx[i] - mx) * (ry[i] - my);
        sxx += (rx[i] - mx) * (rx[i] - mx);
        syy += (ry[i] - my) * (ry[i] - my);
    }
    free(rx);
    if (!(sxx > 0 && syy > 0)) return NAN;
    return sxy / sqrt(sxx * syy);
}

/* Reads a whole text file (NUL-terminated copy). */
static attn_status read_all(const char *fn, const char *path, char **out, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return attn__error(ATTN_ERR_IO, "%s: cannot open %s: %s", fn, path, strerror(errno));
    attn__strbuf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) attn__sb_put(&b, chunk, n);
    const int err = ferror(fp);
    fclose(fp);
    if (err) {
        attn__sb_free(&b);
        return attn__error(ATTN_ERR_IO, "%s: cannot read %s", fn, path);
    }
    attn__sb_put(&b, "", 0);
    if (b.oom) {
        attn__sb_free(&b);
        return attn__error(ATTN_ERR_OOM, "%s: out of memory reading %s", fn, path);
    }
    *out = b.p;
    *len = b.len;
    return ATTN_OK;
}

/* Splits line (modified in place) into at most max fields on spaces and tabs. */
static int split(char *line, char **f, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r') p++;
        if (!*p) return n;
        if (n == max) return max + 1;
        f[n++] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r') p++;
        if (*p) *p++ = '\0';
    }
}

static int64_t find_lower(const attn_w2v *m, char *w) {
    for (char *p = w; *p; p++) *p = (char)tolower((unsigned char)*p);
    return attn_w2v_find(m, w);
}

attn_status attn_w2v_eval_analogies(const attn_w2v *m, const char *path, int64_t restrict_to,
                                    attn_w2v_analogy_result *r) {
    const char *fn = "attn_w2v_eval_analogies";
    if (!m || !path || !r || restrict_to < 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument or negative restrict_to", fn);
    memset(r, 0, sizeof *r);
    char *buf;
    size_t len;
    attn_status st = read_all(fn, path, &buf, &len);
    if (st) return st;
    const int64_t R = restrict_to > 0 && restrict_to < m->V ? restrict_to : m->V;
    const int D = m->D;
    int64_t (*qs)[4] = NULL;
    size_t qcap = 0;
    int64_t nq = 0, line = 0;
    for (char *p = buf; *p;) {
        char *e = strchr(p, '\n');
        if (e) *e = '\0';
        line++;
        char *f[5];
        int n = split(p, f, 4);
        if (n > 0 && f[0][0] != ':') {
            if (n != 4) {
                st = attn__error(ATTN_ERR_FORMAT, "%s: %s:%lld: %d words (expected 4, \"a b c d\", or \": section\")",
                                 fn, path, (long long)line, n > 4 ? 5 : n);
                goto done;
            }
            r->questions++;
            int64_t w[4];
            int ok = 1;
            for (int k = 0; k < 4; k++) {
                w[k] = find_lower(m, f[k]);
                if (w[k] < 0 || w[k] >= R) ok = 0;
            }
            if (ok) {
                if (attn__grow((void **)&qs, &qcap, (size_t)nq + 1, sizeof *qs)) {
                    st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
                    goto done;
                }
                memcpy(qs[nq++], w, sizeof w);
            }
        }
        if (!e) break;
        p = e + 1;
    }
    r->covered = nq;
    if (nq > 0) {
        enum { B = 128 };
        float *u = unit_rows(m, R);
        float *q = malloc((size_t)B * (size_t)D * sizeof *q);
        float *s = malloc((size_t)B * (size_t)R * sizeof *s);
        if (!u || !q || !s) {
            free(u);
            free(q);
            free(s);
            st = attn__error(ATTN_ERR_OOM, "%s: out of memory for %lld x %d unit vectors", fn, (long long)R, D);
            goto done;
        }
        for (int64_t q0 = 0; q0 < nq; q0 += B) {
            const int nb = (int)(nq - q0 < B ? nq - q0 : B);
            for (int b = 0; b < nb; b++) {
                const int64_t *w = qs[q0 + b];
                for (int d = 0; d < D; d++)
                    q[(size_t)b * D + d] = u[(size_t)w[1] * D + d] - u[(size_t)w[0] * D + d] + u[(size_t)w[2] * D + d];
            }
            attn__sgemm(1, 0, 1, nb, R, D, 1.0f, q, D, u, D, 0.0f, s, R);
            for (int b = 0; b < nb; b++) {
                const int64_t *w = qs[q0 + b];
                int64_t best = -1;
                float bs = -INFINITY;
                for (int64_t i = 0; i < R; i++) {
                    if (i == w[0] || i == w[1] || i == w[2]) continue;
                    if (s[(size_t)b * R + i] > bs) {
                        bs = s[(size_t)b * R + i];
                        best = i;
                    }
                }
                if (best == w[3]) r->correct++;
            }
        }
        free(u);
        free(q);
        free(s);
    }
done:
    free(qs);
    free(buf);
    return st;
}

attn_status attn_w2v_eval_similarity(const attn_w2v *m, const char *path, attn_w2v_similarity_result *r) {
    const char *fn = "attn_w2v_eval_similarity";
    if (!m || !path || !r) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    memset(r, 0, sizeof *r);
    r->spearman = NAN;
    char *buf;
    size_t len;
    attn_status st = read_all(fn, path, &buf, &len);
    if (st) return st;
    double *xs = NULL;
    size_t cap = 0;
    int64_t n = 0, line = 0, data_lines = 0;
    for (char *p = buf; *p;) {
        char *e = strchr(p, '\n');
        if (e) *e = '\0';
        line++;
        char *f[4];
        int nf = p[0] == '#' ? 0 : split(p, f, 3);
        if (nf > 0) {
            char *end = NULL;
            double score = nf == 3 ? strtod(f[2], &end) : NAN;
            const int bad = nf != 3 || *end != '\0' || !isfinite(score);
            if (bad && data_lines == 0) {
                data_lines++; /* a header line */
            } else if (bad) {
                st = attn__error(ATTN_ERR_FORMAT, "%s: %s:%lld: expected \"word1 word2 score\" with a finite score", fn,
                                 path, (long long)line);
                goto done;
            } else {
                data_lines++;
                r->pairs++;
                const int64_t a = find_lower(m, f[0]), b = find_lower(m, f[1]);
                if (a >= 0 && b >= 0) {
                    double c;
                    attn_w2v_cosine(m, m->words[a], m->words[b], &c);
                    if (attn__grow((void **)&xs, &cap, 2 * (size_t)n + 2, sizeof *xs)) {
                        st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
                        goto done;
                    }
                    xs[2 * n] = score;
                    xs[2 * n + 1] = c;
                    n++;
                }
            }
        }
        if (!e) break;
        p = e + 1;
    }
    r->covered = n;
    if (n >= 2) {
        double *x = malloc((size_t)n * 2 * sizeof *x);
        if (!x) {
            st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
            goto done;
        }
        for (int64_t i = 0; i < n; i++) {
            x[i] = xs[2 * i];
            x[n + i] = xs[2 * i + 1];
        }
        r->spearman = attn_spearman(x, x + n, n);
        free(x);
    }
done:
    free(xs);
    free(buf);
    return st;
}
