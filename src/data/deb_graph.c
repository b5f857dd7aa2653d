/* deb_graph.c: Debian's package graph from an APT Packages index
 * (include/attn/deb_graph.h). One pass over the stanzas collects names,
 * sections, description words and raw dependency names; then the
 * vocabulary, the edges between known names (made undirected, with
 * self-loops) and the CSR. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "text_internal.h"
#include "attn/deb_graph.h"

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* A growable array of strings (each malloc'ed). */
typedef struct strvec {
    char **v;
    int64_t n, cap;
} strvec;

static int sv_push(strvec *s, const char *p, size_t n) {
    if (s->n == s->cap) {
        const int64_t cap = s->cap ? 2 * s->cap : 256;
        char **v = realloc(s->v, sizeof(char *) * (size_t)cap);
        if (!v) return -1;
        s->v = v;
        s->cap = cap;
    }
    char *c = malloc(n + 1);
    if (!c) return -1;
    memcpy(c, p, n);
    c[n] = 0;
    s->v[s->n++] = c;
    return 0;
}

static void sv_free(strvec *s) {
    for (int64_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* The index of string p[0..n) in (map, names), or -1. */
static int64_t lookup(const attn__map *m, char *const *names, const char *p, size_t n) {
    const int64_t *x = attn__map_get(m, fnv1a(p, n));
    if (!x) return -1;
    const char *s = names[*x];
    return strlen(s) == n && memcmp(s, p, n) == 0 ? *x : -1;
}

/* One package while reading. */
typedef struct pkg {
    int64_t name, section;      /* indices into names / the section strings */
    int64_t desc_off, desc_len; /* the Description text in the file buffer */
    int64_t deps_off, deps_len; /* Depends, then ", " Pre-Depends: kept as two ranges */
    int64_t pre_off, pre_len;
} pkg;

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct wc {
    int64_t word, count;
} wc;

static const char *const *g_words; /* for cmp_wc: word strings */
static int cmp_wc(const void *a, const void *b) {
    const wc *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return strcmp(g_words[x->word], g_words[y->word]);
}

static int cmp_i64pair(const void *a, const void *b) {
    const int64_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

void attn_deb_graph_free(attn_deb_graph *g) {
    if (!g) return;
    for (int64_t i = 0; g->names && i < g->n; i++) free(g->names[i]);
    for (int i = 0; g->sections && i < g->n_sections; i++) free(g->sections[i]);
    for (int i = 0; g->words && i <= g->vocab; i++) free(g->words[i]);
    free(g->names);
    free(g->sections);
    free(g->words);
    free(g->label);
    free(g->split);
    free(g->feat);
    free(g->row_ptr);
    free(g->col);
    memset(g, 0, sizeof *g);
}

/* Calls fn(name, len) for every package name of a dependency field
 * text[0..n): comma-separated, alternatives by '|', "(...)" versions,
 * ":arch" qualifiers and "[...]" / "<...>" restrictions dropped. */
static int for_dep_names(const char *t, int64_t n, int (*fn)(void *, const char *, size_t),
                         void *user) {
    int64_t i = 0;
    while (i < n) {
        while (i < n && (t[i] == ' ' || t[i] == ',' || t[i] == '|' || t[i] == '\n')) i++;
        const int64_t s = i;
        while (i < n && !strchr(" ,|:(\n[<", t[i])) i++;
        if (i > s && fn(user, t + s, (size_t)(i - s))) return -1;
        /* skip the rest of this alternative */
        while (i < n && t[i] != ',' && t[i] != '|') i++;
    }
    return 0;
}

typedef struct dep_ctx {
    const attn__map *map;
    char *const *names;
    int64_t from;
    int64_t *pairs; /* 2 per edge */
    int64_t n, cap;
} dep_ctx;

static int add_dep(void *user, const char *p, size_t n) {
    dep_ctx *d = user;
    const int64_t to = lookup(d->map, d->names, p, n);
    if (to < 0 || to == d->from) return 0;
    if (d->n + 2 > d->cap) {
        const int64_t cap = d->cap ? 2 * d->cap : 1 << 16;
        int64_t *x = realloc(d->pairs, sizeof(int64_t) * 2 * (size_t)cap);
        if (!x) return -1;
        d->pairs = x;
        d->cap = cap;
    }
    int64_t *e = d->pairs + 2 * d->n;
    e[0] = d->from, e[1] = to, e[2] = to, e[3] = d->from; /* both directions */
    d->n += 2;
    return 0;
}

attn_status attn_deb_graph_load(const char *path, const attn_deb_graph_opts *opts,
                                attn_deb_graph *out) {
    static const char fn[] = "attn_deb_graph_load";
    if (!path || !out) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    memset(out, 0, sizeof *out);
    const int max_words = opts && opts->max_words ? opts->max_words : 16;
    const int vocab_size = opts && opts->vocab_size ? opts->vocab_size : 4000;
    if (max_words < 1 || max_words > 256 || vocab_size < 1 || vocab_size > 1 << 20)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: max_words %d (1 .. 256), vocab_size %d (1 .. 2^20)",
                           fn, max_words, vocab_size);
    FILE *f = fopen(path, "rb");
    if (!f) return attn__error(ATTN_ERR_IO, "%s: cannot open %s", fn, path);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 65536 + 1 > cap) {
            cap = cap ? 2 * cap : 1 << 20;
            char *b = realloc(buf, cap);
            if (!b) {
                free(buf);
                fclose(f);
                return attn__error(ATTN_ERR_OOM, "%s: out of memory reading %s", fn, path);
            }
            buf = b;
        }
        const size_t r = fread(buf + len, 1, 65536, f);
        len += r;
        if (r < 65536) break;
    }
    const int io_err = ferror(f);
    fclose(f);
    if (io_err) {
        free(buf);
        return attn__error(ATTN_ERR_IO, "%s: cannot read %s", fn, path);
    }
    buf[len] = 0;
    attn_status st = ATTN_OK;
    strvec names = {0}, secs = {0}, words = {0};
    attn__map name_map = {0}, sec_map = {0}, word_map = {0};
    pkg *pk = NULL;
    int64_t n_pk = 0, cap_pk = 0, *wcount = NULL;
    dep_ctx dep = {0};
    /* ---- stanzas: fields of interest, a blank line ends a stanza */
    pkg cur;
    memset(&cur, 0, sizeof cur);
    cur.name = cur.section = -1;
    size_t i = 0;
    int64_t line_no = 0;
    for (int done = 0; st == ATTN_OK && !done;) {
        const size_t s = i;
        while (i < len && buf[i] != '\n') i++;
        const size_t e = i;
        done = i >= len;
        if (i < len) i++;
        line_no++;
        if (e - s > (1u << 20)) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s: line %lld is over 1 MB", fn, path, (long long)line_no);
            break;
        }
        const char *ln = buf + s;
        const size_t n = e - s;
        if (n > 9 && !memcmp(ln, "Package: ", 9)) {
            const int64_t known = lookup(&name_map, names.v, ln + 9, n - 9);
            if (known >= 0) {
                cur.name = known; /* a repeated name: its stanza is dropped */
            } else {
                int64_t *slot = attn__map_put(&name_map, fnv1a(ln + 9, n - 9));
                if (!slot || sv_push(&names, ln + 9, n - 9)) {
                    st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
                    break;
                }
                *slot = names.n - 1;
                cur.name = names.n - 1;
            }
        } else if (n > 9 && !memcmp(ln, "Section: ", 9)) {
            const char *q = ln + 9, *slash = memchr(q, '/', n - 9);
            const size_t m = slash ? (size_t)(ln + n - slash - 1) : n - 9;
            if (slash) q = slash + 1;
            int64_t x = lookup(&sec_map, secs.v, q, m);
            if (x < 0) {
                int64_t *slot = attn__map_put(&sec_map, fnv1a(q, m));
                if (!slot || sv_push(&secs, q, m)) {
                    st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
                    break;
                }
                *slot = x = secs.n - 1;
            }
            cur.section = x;
        } else if (n > 13 && !memcmp(ln, "Description: ", 13)) {
            cur.desc_off = (int64_t)s + 13;
            cur.desc_len = (int64_t)n - 13;
        } else if (n > 9 && !memcmp(ln, "Depends: ", 9)) {
            cur.deps_off = (int64_t)s + 9;
            cur.deps_len = (int64_t)n - 9;
        } else if (n > 13 && !memcmp(ln, "Pre-Depends: ", 13)) {
            cur.pre_off = (int64_t)s + 13;
            cur.pre_len = (int64_t)n - 13;
        }
        if (n > 0 && !done) continue;
        /* the stanza ends: keep it when it names a new package */
        if (cur.name < 0 && (cur.section >= 0 || cur.desc_len || cur.deps_len || cur.pre_len)) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s: the stanza ending at line %lld has no Package field",
                             fn, path, (long long)line_no);
            break;
        }
        if (cur.name >= 0 && cur.name == n_pk) {
            if (n_pk == cap_pk) {
                cap_pk = cap_pk ? 2 * cap_pk : 4096;
                pkg *q = realloc(pk, sizeof(pkg) * (size_t)cap_pk);
                if (!q) {
                    st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
                    break;
                }
                pk = q;
            }
            pk[n_pk++] = cur;
        }
        memset(&cur, 0, sizeof cur);
        cur.name = cur.section = -1;
    }
    if (st == ATTN_OK && n_pk == 0)
        st = attn__error(ATTN_ERR_FORMAT, "%s: %s holds no package stanza", fn, path);
    int64_t N = n_pk;
    /* ---- description words: counts, then the vocabulary */
    for (int64_t p = 0; st == ATTN_OK && p < N; p++) {
        const char *d = buf + pk[p].desc_off;
        for (int64_t a = 0; a < pk[p].desc_len && st == ATTN_OK;) {
            while (a < pk[p].desc_len && !isalnum((unsigned char)d[a])) a++;
            int64_t b = a;
            while (b < pk[p].desc_len && isalnum((unsigned char)d[b])) b++;
            if (b > a) {
                char w[64];
                const size_t m = (size_t)(b - a < 63 ? b - a : 63);
                for (size_t c = 0; c < m; c++) w[c] = (char)tolower((unsigned char)d[a + (int64_t)c]);
                int64_t x = lookup(&word_map, words.v, w, m);
                if (x < 0) {
                    int64_t *slot = attn__map_put(&word_map, fnv1a(w, m));
                    if (!slot || sv_push(&words, w, m)) {
                        st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
                        break;
                    }
                    *slot = x = words.n - 1;
                    int64_t *wcn = realloc(wcount, sizeof(int64_t) * (size_t)words.n);
                    if (!wcn) {
                        st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
                        break;
                    }
                    wcount = wcn;
                    wcount[x] = 0;
                }
                wcount[x]++;
            }
            a = b;
        }
    }
    wc *order = NULL;
    int64_t *word_id = NULL; /* word index -> vocabulary id (0: out) */
    if (st == ATTN_OK) {
        order = malloc(sizeof(wc) * (size_t)(words.n ? words.n : 1));
        word_id = calloc((size_t)(words.n ? words.n : 1), sizeof(int64_t));
        if (!order || !word_id) st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    }
    int V = 0;
    if (st == ATTN_OK) {
        for (int64_t w = 0; w < words.n; w++) order[w] = (wc){w, wcount[w]};
        g_words = (const char *const *)words.v;
        qsort(order, (size_t)words.n, sizeof(wc), cmp_wc);
        V = (int)(words.n < vocab_size ? words.n : vocab_size);
        out->words = calloc((size_t)V + 1, sizeof(char *));
        if (!out->words) st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
        else {
            out->vocab = V;
            out->words[0] = calloc(1, 1);
            for (int v = 0; v < V && st == ATTN_OK; v++) {
                word_id[order[v].word] = v + 1;
                out->words[v + 1] = malloc(strlen(words.v[order[v].word]) + 1);
                if (!out->words[v + 1] || !out->words[0]) st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
                else strcpy(out->words[v + 1], words.v[order[v].word]);
            }
        }
    }
    /* ---- sections in name order, per-package arrays */
    int64_t *sec_rank = NULL;
    if (st == ATTN_OK) {
        out->n = N;
        out->max_words = max_words;
        out->n_sections = 0;
        out->sections = calloc((size_t)(secs.n ? secs.n : 1), sizeof(char *));
        sec_rank = malloc(sizeof(int64_t) * (size_t)(secs.n ? secs.n : 1));
        out->names = calloc((size_t)N, sizeof(char *));
        out->label = malloc(sizeof(int32_t) * (size_t)N);
        out->split = malloc(sizeof(int32_t) * (size_t)N);
        out->feat = calloc((size_t)(N * max_words), sizeof(int32_t));
        if (!out->sections || !sec_rank || !out->names || !out->label || !out->split || !out->feat)
            st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    }
    if (st == ATTN_OK) {
        /* the sections of the packages kept (a dropped repeated stanza's
         * section is not a class), in name order */
        int ns = 0;
        for (int64_t a = 0; a < secs.n; a++) sec_rank[a] = -1;
        for (int64_t p = 0; p < N; p++)
            if (pk[p].section >= 0) sec_rank[pk[p].section] = 0;
        for (int64_t a = 0; a < secs.n; a++)
            if (sec_rank[a] == 0) out->sections[ns++] = secs.v[a];
        out->n_sections = ns;
        qsort(out->sections, (size_t)ns, sizeof(char *), cmp_str);
        for (int64_t a = 0; a < secs.n; a++) {
            if (sec_rank[a] < 0) continue;
            for (int b = 0; b < ns; b++)
                if (out->sections[b] == secs.v[a]) sec_rank[a] = b;
            secs.v[a] = NULL; /* now out->sections' */
        }
        for (int64_t p = 0; p < N; p++) {
            out->names[p] = names.v[pk[p].name];
            names.v[pk[p].name] = NULL;
            out->label[p] = pk[p].section >= 0 ? (int32_t)sec_rank[pk[p].section] : -1;
            const char *nm = out->names[p];
            const uint64_t h = fnv1a(nm, strlen(nm)) % 10;
            out->split[p] = h < 8 ? 0 : h == 8 ? 1 : 2;
            /* features */
            const char *d = buf + pk[p].desc_off;
            int nf = 0;
            for (int64_t a = 0; a < pk[p].desc_len && nf < max_words;) {
                while (a < pk[p].desc_len && !isalnum((unsigned char)d[a])) a++;
                int64_t b = a;
                while (b < pk[p].desc_len && isalnum((unsigned char)d[b])) b++;
                if (b > a) {
                    char w[64];
                    const size_t m = (size_t)(b - a < 63 ? b - a : 63);
                    for (size_t c = 0; c < m; c++) w[c] = (char)tolower((unsigned char)d[a + (int64_t)c]);
                    const int64_t x = lookup(&word_map, words.v, w, m);
                    const int32_t id = x >= 0 ? (int32_t)word_id[x] : 0;
                    int seen = id == 0;
                    for (int q = 0; q < nf && !seen; q++) seen = out->feat[p * max_words + q] == id;
                    if (!seen) out->feat[p * max_words + nf++] = id;
                }
                a = b;
            }
        }
    }
    /* ---- edges: the packages' names are now out->names, in package order */
    attn__map pmap = {0};
    for (int64_t p = 0; st == ATTN_OK && p < N; p++) {
        int64_t *slot = attn__map_put(&pmap, fnv1a(out->names[p], strlen(out->names[p])));
        if (!slot) st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
        else *slot = p;
    }
    dep.map = &pmap;
    dep.names = out->names;
    for (int64_t p = 0; st == ATTN_OK && p < N; p++) {
        dep.from = p;
        if (for_dep_names(buf + pk[p].deps_off, pk[p].deps_len, add_dep, &dep) ||
            for_dep_names(buf + pk[p].pre_off, pk[p].pre_len, add_dep, &dep))
            st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
        if (st == ATTN_OK && dep.n + 1 > dep.cap) {
            const int64_t c2 = dep.cap ? 2 * dep.cap : 1 << 16;
            int64_t *x = realloc(dep.pairs, sizeof(int64_t) * 2 * (size_t)c2);
            if (!x) st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
            else dep.pairs = x, dep.cap = c2;
        }
        if (st == ATTN_OK) { /* the self-loop */
            dep.pairs[2 * dep.n] = p;
            dep.pairs[2 * dep.n + 1] = p;
            dep.n++;
        }
    }
    if (st == ATTN_OK) {
        qsort(dep.pairs, (size_t)dep.n, 2 * sizeof(int64_t), cmp_i64pair);
        out->row_ptr = calloc((size_t)N + 1, sizeof(int64_t));
        out->col = malloc(sizeof(int32_t) * (size_t)(dep.n ? dep.n : 1));
        if (!out->row_ptr || !out->col) st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    }
    if (st == ATTN_OK) {
        int64_t w = 0;
        for (int64_t x = 0; x < dep.n; x++) {
            const int64_t *e = dep.pairs + 2 * x;
            if (x > 0 && e[0] == e[-2] && e[1] == e[-1]) continue;
            out->col[w++] = (int32_t)e[1];
            out->row_ptr[e[0] + 1] = w;
        }
        for (int64_t p = 0; p < N; p++)
            if (out->row_ptr[p + 1] < out->row_ptr[p]) out->row_ptr[p + 1] = out->row_ptr[p];
        out->n_edges = w;
    }
    attn__map_free(&pmap);
    free(dep.pairs);
    free(sec_rank);
    free(order);
    free(word_id);
    free(wcount);
    free(pk);
    sv_free(&names);
    sv_free(&secs);
    sv_free(&words);
    attn__map_free(&name_map);
    attn__map_free(&sec_map);
    attn__map_free(&word_map);
    free(buf);
    if (st != ATTN_OK) attn_deb_graph_free(out);
    return st;
}
