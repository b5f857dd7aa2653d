/* gettext_parallel.c: cleaning rules of parallel sentence pairs, the builder of the
 * gettext English -> LANG data set, and the TSV reader
 * (include/attn/text.h; the rules and their reasons are in docs/data.md). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "../core/internal.h"
#include "../io/atomic_file_internal.h"
#include "text_internal.h"
#include "attn/text.h"

const char *attn_clean_reason_name(attn_clean_reason reason) {
    static const char *const names[ATTN_CLEAN_REASON_COUNT] = {
        "ok",  "empty",  "encoding", "newline", "placeholder", "markup",
        "url", "option", "accel",    "tokens",  "ratio",       "same"};
    if ((int)reason < 0 || reason >= ATTN_CLEAN_REASON_COUNT) return "?";
    return names[reason];
}

/* ---- cleaning ------------------------------------------------------------ */

static int is_ascii_alnum(unsigned c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int is_ascii_alpha(unsigned c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* What may follow an accelerator marker: an ASCII letter or digit, or the
 * first byte of a non-ASCII character (accented letters: "_Öffnen"). */
static int accel_target(unsigned char c) { return is_ascii_alnum(c) || c >= 0xC2; }

/* The first side rule that `in` breaks, writing its normalised form to out
 * (cap bytes) when it breaks none. */
static attn_clean_reason clean_side(const char *in, char *out, size_t cap) {
    if (!in || !out) return ATTN_CLEAN_EMPTY;
    const size_t n = strlen(in);
    if (cap < n + 1) return ATTN_CLEAN_EMPTY;
    const unsigned char *p = (const unsigned char *)in;

    /* Encoding and control characters; spaces normalised on the way. */
    int has_newline = 0;
    size_t o = 0;
    int pending_space = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int k = attn__utf8_decode(p + i, n - i, &cp);
        if (cp < 0) return ATTN_CLEAN_ENCODING;
        if (cp == '\n' || cp == '\r' || cp == '\t') {
            has_newline = 1;
            cp = ' ';
        } else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
            return ATTN_CLEAN_ENCODING;
        }
        if (cp == ' ' || cp == 0xA0 || cp == 0x202F || cp == 0x2009) {
            pending_space = o > 0;
        } else {
            if (pending_space) out[o++] = ' ';
            pending_space = 0;
            memcpy(out + o, in + i, (size_t)k);
            o += (size_t)k;
        }
        i += (size_t)k;
    }
    out[o] = '\0';
    if (o == 0) return ATTN_CLEAN_EMPTY;
    if (has_newline) return ATTN_CLEAN_NEWLINE;

    if (strpbrk(out, "%{}$")) return ATTN_CLEAN_PLACEHOLDER;

    if (strpbrk(out, "<>")) return ATTN_CLEAN_MARKUP;
    for (const char *a = strchr(out, '&'); a; a = strchr(a + 1, '&')) {
        if (a[1] == '#') return ATTN_CLEAN_MARKUP;
        size_t j = 1;
        while (is_ascii_alpha((unsigned char)a[j])) j++;
        if (j > 1 && a[j] == ';') return ATTN_CLEAN_MARKUP;
    }

    if (strstr(out, "://")) return ATTN_CLEAN_URL;
    for (size_t i = 0; i + 4 <= o; i++) {
        if ((out[i] | 0x20) == 'w' && (out[i + 1] | 0x20) == 'w' && (out[i + 2] | 0x20) == 'w' &&
            out[i + 3] == '.')
            return ATTN_CLEAN_URL;
    }
    for (const char *a = strchr(out, '@'); a; a = strchr(a + 1, '@')) {
        if (a > out && a[-1] != ' ' && a[1] && a[1] != ' ') return ATTN_CLEAN_URL;
    }

    for (size_t i = 0; i < o; i++) {
        if (i > 0 && out[i - 1] != ' ') continue; /* token starts only */
        if (out[i] != '-') continue;
        unsigned c1 = (unsigned char)out[i + 1];
        if (is_ascii_alpha(c1)) return ATTN_CLEAN_OPTION;
        if (c1 == '-' && is_ascii_alpha((unsigned char)out[i + 2])) return ATTN_CLEAN_OPTION;
    }

    /* One accelerator marker is removed; two are ambiguous (an identifier, a
     * markup convention), and a '_' or '~' left over is not natural text.
     * '_' and '~' mark a letter anywhere ("E_xit", "Ch~aracters"); '&' only
     * at the start of a word ("&Close"), since inside one it is an
     * ampersand ("AT&T", "Date&Time"). */
    size_t marker = (size_t)-1;
    int markers = 0;
    for (size_t i = 0; i + 1 < o; i++) {
        const char c = out[i];
        const int word_start = i == 0 || out[i - 1] == ' ';
        if ((c == '_' || c == '~' || (c == '&' && word_start)) &&
            accel_target((unsigned char)out[i + 1])) {
            markers++;
            marker = i;
        }
    }
    if (markers > 1) return ATTN_CLEAN_ACCEL;
    if (markers == 1) {
        memmove(out + marker, out + marker + 1, o - marker);
        o--;
    }
    if (strpbrk(out, "_~")) return ATTN_CLEAN_ACCEL;

    int tokens = 1; /* non-empty, trimmed, single spaces */
    for (size_t i = 0; i < o; i++) tokens += out[i] == ' ';
    if (tokens < ATTN_CLEAN_MIN_TOKENS || tokens > ATTN_CLEAN_MAX_TOKENS) return ATTN_CLEAN_TOKENS;
    return ATTN_CLEAN_OK;
}

attn_clean_reason attn_clean_pair(const char *src, const char *tgt, char *src_out, char *tgt_out,
                                  size_t cap) {
    attn_clean_reason a = clean_side(src, src_out, cap);
    attn_clean_reason b = clean_side(tgt, tgt_out, cap);
    if (a != ATTN_CLEAN_OK || b != ATTN_CLEAN_OK) {
        if (a == ATTN_CLEAN_OK) return b;
        if (b == ATTN_CLEAN_OK) return a;
        return a < b ? a : b;
    }
    /* lt / ls in [2/5, 5/2] (ATTN_CLEAN_MIN_RATIO, ATTN_CLEAN_MAX_RATIO),
     * compared exactly in integers so that the bounds themselves pass. */
    const size_t ls = attn__utf8_count(src_out, strlen(src_out));
    const size_t lt = attn__utf8_count(tgt_out, strlen(tgt_out));
    if (5 * lt < 2 * ls || 2 * lt > 5 * ls) return ATTN_CLEAN_RATIO;
    if (strcmp(src_out, tgt_out) == 0) return ATTN_CLEAN_SAME;
    return ATTN_CLEAN_OK;
}

/* ---- finding catalogs ---------------------------------------------------- */

typedef struct {
    char **paths;
    size_t n, cap;
} path_list;

static void path_list_free(path_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    memset(l, 0, sizeof *l);
}

/* 1 if path is ".../LANG/LC_MESSAGES/NAME.mo". */
static int is_catalog_of(const char *path, const char *lang) {
    size_t n = strlen(path), ll = strlen(lang);
    if (n < 4 || strcmp(path + n - 3, ".mo") != 0) return 0;
    const char *base = strrchr(path, '/');
    if (!base || base == path) return 0;
    static const char lcm[] = "/LC_MESSAGES";
    const size_t lcn = sizeof lcm - 1;
    if ((size_t)(base - path) < lcn + ll + 1) return 0;
    if (memcmp(base - lcn, lcm, lcn) != 0) return 0;
    const char *lang_end = base - lcn;
    const char *lang_begin = lang_end - ll;
    return memcmp(lang_begin, lang, ll) == 0 && lang_begin > path && lang_begin[-1] == '/';
}

static attn_status walk(const char *dir, const char *lang, path_list *out, int depth) {
    if (depth > 40) return ATTN_OK; /* deeper than any package tree: give up quietly */
    DIR *d = opendir(dir);
    if (!d)
        return attn__error(ATTN_ERR_IO, "gettext: cannot read directory %s: %s", dir,
                           strerror(errno));
    attn_status st = ATTN_OK;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
        size_t len = strlen(dir) + 1 + strlen(ent->d_name) + 1;
        char *path = malloc(len);
        if (!path) {
            st = attn__error(ATTN_ERR_OOM, "gettext: out of memory listing %s", dir);
            break;
        }
        snprintf(path, len, "%s/%s", dir, ent->d_name);
        struct stat lsb, sb;
        if (lstat(path, &lsb) != 0) {
            free(path);
            continue;
        }
        if (S_ISDIR(lsb.st_mode)) {
            st = walk(path, lang, out, depth + 1);
            free(path);
            if (st != ATTN_OK) break;
            continue;
        }
        /* Files may be symbolic links (Debian links shared catalogs). */
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && is_catalog_of(path, lang)) {
            void *items = out->paths;
            if (attn__grow(&items, &out->cap, out->n + 1, sizeof(char *)) != 0) {
                free(path);
                st = attn__error(ATTN_ERR_OOM, "gettext: out of memory listing %s", dir);
                break;
            }
            out->paths = items;
            out->paths[out->n++] = path;
        } else {
            free(path);
        }
    }
    closedir(d);
    return st;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- collecting pairs ---------------------------------------------------- */

/* Clean pairs live in one growing buffer of "src\0tgt\0" records. */
typedef struct {
    attn__strbuf text;
    size_t *src; /* offsets of sources in text; the target follows its NUL */
    size_t n, cap;
} pair_store;

static const char *pair_src(const pair_store *s, size_t i) { return s->text.p + s->src[i]; }
static const char *pair_tgt(const pair_store *s, size_t i) {
    const char *p = pair_src(s, i);
    return p + strlen(p) + 1;
}

static int pair_add(pair_store *s, const char *src, const char *tgt) {
    void *items = s->src;
    if (attn__grow(&items, &s->cap, s->n + 1, sizeof(size_t)) != 0) return -1;
    s->src = items;
    s->src[s->n] = s->text.len;
    if (attn__sb_put(&s->text, src, strlen(src) + 1) != 0) return -1;
    if (attn__sb_put(&s->text, tgt, strlen(tgt) + 1) != 0) return -1;
    s->n++;
    return 0;
}

/* Charsets we read: 0 UTF-8 (or ASCII), 1 ISO-8859-1, -1 other. */
static int charset_kind(const char *cs) {
    char c[32];
    size_t n = 0;
    for (; cs[n] && n + 1 < sizeof c; n++) {
        char ch = cs[n];
        c[n] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    c[n] = '\0';
    if (!strcmp(c, "utf-8") || !strcmp(c, "utf8") || !strcmp(c, "ascii") ||
        !strcmp(c, "us-ascii") || !strcmp(c, "ansi_x3.4-1968") || !strcmp(c, "charset"))
        return 0;
    if (!strcmp(c, "iso-8859-1") || !strcmp(c, "iso_8859-1") || !strcmp(c, "iso8859-1") ||
        !strcmp(c, "latin1") || !strcmp(c, "latin-1"))
        return 1;
    return -1;
}

/* ISO-8859-1 to UTF-8 into b (reset first). Returns 0 or -1 (memory). */
static int latin1_to_utf8(const char *s, attn__strbuf *b) {
    b->len = 0;
    if (attn__sb_put(b, "", 0) != 0) return -1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char two[2];
        if (*p < 0x80) {
            if (attn__sb_put(b, p, 1) != 0) return -1;
            continue;
        }
        two[0] = (char)(0xC0 | *p >> 6);
        two[1] = (char)(0x80 | (*p & 0x3F));
        if (attn__sb_put(b, two, 2) != 0) return -1;
    }
    return 0;
}

/* ---- deduplication and ordering ----------------------------------------- */

/* A pair by pointers into the store (valid once collection is over): qsort
 * has no context argument, so the strings travel with the index. */
typedef struct {
    const char *src, *tgt;
    size_t index;  /* order of collection: the last tie-break */
    uint64_t hash; /* attn_fnv1a64 of src */
} pair_ref;

static int cmp_pair(const void *a, const void *b) {
    const pair_ref *x = a, *y = b;
    int c = strcmp(x->src, y->src);
    if (c) return c;
    c = strcmp(x->tgt, y->tgt);
    if (c) return c;
    return (x->index > y->index) - (x->index < y->index);
}

static int cmp_hashed(const void *a, const void *b) {
    const pair_ref *x = a, *y = b;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    return strcmp(x->src, y->src);
}

/* ---- output ---------------------------------------------------------------- */

static attn_status make_dirs(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return attn__error(ATTN_ERR_INVALID_ARG, "gettext: output path of %zu bytes", n);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char keep = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return attn__error(ATTN_ERR_IO, "gettext: cannot create directory %s: %s", buf,
                               strerror(errno));
        buf[i] = keep;
    }
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return attn__error(ATTN_ERR_IO, "gettext: %s is not a directory", path);
    return ATTN_OK;
}

/* A path for a TSV cell: tabs and newlines replaced. */
static void put_cell(FILE *f, const char *s) {
    for (; *s; s++) fputc(*s == '\t' || *s == '\n' || *s == '\r' ? '?' : *s, f);
}

/* ---- the builder ---------------------------------------------------------- */

typedef struct {
    const char *path;
    char domain[256];
    char status[200];
    int64_t messages, clean;
} catalog_row;

attn_status attn_gettext_build(const char *const *mo_dirs, int n_dirs, const char *lang,
                               const char *out_dir, attn_gettext_stats *stats) {
    attn_gettext_stats local;
    memset(&local, 0, sizeof local);
    if (stats) memset(stats, 0, sizeof *stats);
    if (!mo_dirs || n_dirs < 1 || !lang || !lang[0] || !out_dir || !out_dir[0])
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "gettext: need at least one catalog directory, a language and an "
                           "output directory");
    if (strchr(lang, '/') || strlen(lang) > 31)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "gettext: language '%s': expected a locale name such as de or fr", lang);
    if (strlen(out_dir) > 3000)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "gettext: output directory of %zu bytes: at most 3000 are supported",
                           strlen(out_dir));
    for (int i = 0; i < n_dirs; i++)
        if (!mo_dirs[i])
            return attn__error(ATTN_ERR_INVALID_ARG, "gettext: catalog directory %d is NULL", i);

    path_list files = {0};
    pair_store store = {0};
    catalog_row *rows = NULL;
    pair_ref *order = NULL, *keep = NULL;
    attn__strbuf conv_id = {0}, conv_str = {0};
    char *sbuf = NULL, *tbuf = NULL;
    size_t bufcap = 0;
    attn_status st = ATTN_OK;

    for (int i = 0; i < n_dirs && st == ATTN_OK; i++) st = walk(mo_dirs[i], lang, &files, 0);
    if (st != ATTN_OK) goto done;
    if (files.n == 0) {
        st = attn__error(ATTN_ERR_FORMAT,
                         "gettext: no catalog of language '%s' (a file %s/LC_MESSAGES/*.mo) under "
                         "the %d director%s given, starting with %s",
                         lang, lang, n_dirs, n_dirs == 1 ? "y" : "ies", mo_dirs[0]);
        goto done;
    }
    qsort(files.paths, files.n, sizeof(char *), cmp_str_ptr);
    rows = calloc(files.n, sizeof *rows);
    if (!rows) {
        st = attn__error(ATTN_ERR_OOM, "gettext: out of memory");
        goto done;
    }

    for (size_t f = 0; f < files.n; f++) {
        catalog_row *row = &rows[f];
        row->path = files.paths[f];
        const char *base = strrchr(row->path, '/') + 1;
        snprintf(row->domain, sizeof row->domain, "%.*s", (int)(strlen(base) - 3), base);
        if (strncmp(row->domain, "iso_", 4) == 0) {
            snprintf(row->status, sizeof row->status, "skipped: iso_* domain");
            local.catalogs_skipped++;
            continue;
        }
        attn_mo mo;
        attn_status ms = attn_mo_load(row->path, &mo);
        if (ms == ATTN_ERR_OOM) {
            st = ms;
            goto done;
        }
        if (ms != ATTN_OK) {
            /* The reason without the path, which the row already names. */
            const char *why = attn_last_error();
            const char *p = strstr(why, row->path);
            if (p && p[strlen(row->path)] == ':') why = p + strlen(row->path) + 2;
            snprintf(row->status, sizeof row->status, "skipped: %s", why);
            local.catalogs_skipped++;
            continue;
        }
        const int kind = charset_kind(mo.charset);
        if (kind < 0) {
            snprintf(row->status, sizeof row->status, "skipped: charset %s", mo.charset);
            local.catalogs_skipped++;
            attn_mo_free(&mo);
            continue;
        }
        snprintf(row->status, sizeof row->status, "ok");
        local.catalogs++;
        row->messages = mo.n;
        local.entries += mo.n;
        for (int64_t e = 0; e < mo.n; e++) {
            const char *id = mo.entries[e].msgid, *str = mo.entries[e].msgstr;
            if (kind == 1) {
                if (latin1_to_utf8(id, &conv_id) != 0 || latin1_to_utf8(str, &conv_str) != 0) {
                    attn_mo_free(&mo);
                    st = attn__error(ATTN_ERR_OOM, "gettext: out of memory");
                    goto done;
                }
                id = conv_id.p;
                str = conv_str.p;
            }
            size_t need = strlen(id) + strlen(str) + 1;
            if (need > bufcap) {
                free(sbuf);
                free(tbuf);
                sbuf = malloc(need);
                tbuf = malloc(need);
                bufcap = need;
                if (!sbuf || !tbuf) {
                    bufcap = 0;
                    attn_mo_free(&mo);
                    st = attn__error(ATTN_ERR_OOM, "gettext: out of memory");
                    goto done;
                }
            }
            attn_clean_reason r = attn_clean_pair(id, str, sbuf, tbuf, bufcap);
            local.cleaned[r]++;
            if (r != ATTN_CLEAN_OK) continue;
            row->clean++;
            if (pair_add(&store, sbuf, tbuf) != 0) {
                attn_mo_free(&mo);
                st = attn__error(ATTN_ERR_OOM, "gettext: out of memory storing %zu pairs", store.n);
                goto done;
            }
        }
        attn_mo_free(&mo);
    }

    /* Deduplicate: group by source; keep the target of the most messages,
     * ties to the bytewise smallest (the first of its group in sort order). */
    order = malloc((store.n ? store.n : 1) * sizeof *order);
    keep = malloc((store.n ? store.n : 1) * sizeof *keep);
    if (!order || !keep) {
        st = attn__error(ATTN_ERR_OOM, "gettext: out of memory sorting %zu pairs", store.n);
        goto done;
    }
    for (size_t i = 0; i < store.n; i++) {
        order[i].src = pair_src(&store, i);
        order[i].tgt = pair_tgt(&store, i);
        order[i].index = i;
        order[i].hash = 0;
    }
    qsort(order, store.n, sizeof *order, cmp_pair);
    size_t n_keep = 0;
    for (size_t g = 0; g < store.n;) {
        size_t end = g + 1;
        while (end < store.n && strcmp(order[g].src, order[end].src) == 0) end++;
        size_t best = g, best_count = 0;
        for (size_t r = g; r < end;) {
            size_t run = r + 1;
            while (run < end && strcmp(order[r].tgt, order[run].tgt) == 0) run++;
            if (run - r > best_count) {
                best_count = run - r;
                best = r;
            }
            r = run;
        }
        keep[n_keep] = order[best];
        keep[n_keep].hash = attn_fnv1a64(order[best].src, strlen(order[best].src));
        n_keep++;
        local.duplicates += (int64_t)(end - g - 1);
        g = end;
    }
    qsort(keep, n_keep, sizeof *keep, cmp_hashed);

    /* Write the splits and the catalog list. */
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/en-%s", out_dir, lang);
    st = make_dirs(dir);
    if (st != ATTN_OK) goto done;
    attn__atomic_file out[ATTN_SPLIT_COUNT];
    for (int s = 0; s < ATTN_SPLIT_COUNT; s++) {
        snprintf(path, sizeof path, "%s/%s.tsv", dir, attn_data_split_name((attn_data_split)s));
        st = attn__atomic_open(&out[s], "gettext", path);
        if (st != ATTN_OK) {
            for (int k = 0; k < s; k++) attn__atomic_abort(&out[k]);
            goto done;
        }
    }
    for (size_t i = 0; i < n_keep; i++) {
        const attn_data_split sp = attn_data_split_of(keep[i].src, strlen(keep[i].src));
        fprintf(out[sp].fp, "%s\t%s\n", keep[i].src, keep[i].tgt);
        local.pairs[sp]++;
    }
    for (int s = 0; s < ATTN_SPLIT_COUNT; s++) {
        attn_status cs = attn__atomic_commit(&out[s]);
        if (st == ATTN_OK) st = cs;
    }
    if (st != ATTN_OK) goto done;

    attn__atomic_file cat;
    snprintf(path, sizeof path, "%s/catalogs.tsv", dir);
    st = attn__atomic_open(&cat, "gettext", path);
    if (st != ATTN_OK) goto done;
    FILE *cf = cat.fp;
    for (size_t f = 0; f < files.n; f++) {
        put_cell(cf, rows[f].path);
        fputc('\t', cf);
        put_cell(cf, rows[f].domain);
        fputc('\t', cf);
        put_cell(cf, rows[f].status);
        fprintf(cf, "\t%lld\t%lld\n", (long long)rows[f].messages, (long long)rows[f].clean);
    }
    st = attn__atomic_commit(&cat);

done:
    if (stats && st == ATTN_OK) *stats = local;
    path_list_free(&files);
    attn__sb_free(&store.text);
    free(store.src);
    free(rows);
    free(order);
    free(keep);
    attn__sb_free(&conv_id);
    attn__sb_free(&conv_str);
    free(sbuf);
    free(tbuf);
    return st;
}

/* ---- the TSV reader ------------------------------------------------------- */

void attn_pairs_free(attn_pairs *pairs) {
    if (!pairs) return;
    free(pairs->src);
    free(pairs->tgt);
    free(pairs->storage_);
    memset(pairs, 0, sizeof *pairs);
}

attn_status attn_pairs_load(const char *path, attn_pairs *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!path || !out) return attn__error(ATTN_ERR_INVALID_ARG, "pairs: NULL path or out");
    FILE *f = fopen(path, "rb");
    if (!f) return attn__error(ATTN_ERR_IO, "pairs: cannot open %s: %s", path, strerror(errno));
    attn__strbuf b = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (attn__sb_put(&b, chunk, got) != 0) {
            fclose(f);
            attn__sb_free(&b);
            return attn__error(ATTN_ERR_OOM, "pairs: out of memory reading %s", path);
        }
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        attn__sb_free(&b);
        return attn__error(ATTN_ERR_IO, "pairs: cannot read %s", path);
    }
    if (attn__sb_put(&b, "", 0) != 0) { /* an empty file still gets a buffer */
        return attn__error(ATTN_ERR_OOM, "pairs: out of memory reading %s", path);
    }
    size_t lines = 0;
    for (size_t i = 0; i < b.len; i++) lines += b.p[i] == '\n';
    if (b.len && b.p[b.len - 1] != '\n') lines++;
    const char **src = malloc((lines ? lines : 1) * sizeof *src);
    const char **tgt = malloc((lines ? lines : 1) * sizeof *tgt);
    if (!src || !tgt) {
        free(src);
        free(tgt);
        attn__sb_free(&b);
        return attn__error(ATTN_ERR_OOM, "pairs: out of memory for %zu lines of %s", lines, path);
    }
    attn_status st = ATTN_OK;
    size_t n = 0, pos = 0;
    while (pos < b.len) {
        char *line = b.p + pos;
        char *nl = memchr(line, '\n', b.len - pos);
        size_t len = nl ? (size_t)(nl - line) : b.len - pos;
        pos += len + (nl ? 1 : 0);
        line[len] = '\0';
        char *tab = memchr(line, '\t', len);
        const char *why = NULL;
        if (!tab)
            why = "no tab";
        else if (memchr(tab + 1, '\t', len - (size_t)(tab + 1 - line)))
            why = "more than one tab";
        else if (tab == line || tab + 1 == line + len)
            why = "an empty side";
        else if (memchr(line, '\r', len))
            why = "a carriage return";
        else if (memchr(line, '\0', len))
            why = "a NUL byte";
        else if (!attn__utf8_valid(line, len))
            why = "invalid UTF-8";
        if (why) {
            st = attn__error(ATTN_ERR_FORMAT,
                             "pairs: %s: line %zu has %s (expected \"source<TAB>target\")", path,
                             n + 1, why);
            break;
        }
        *tab = '\0';
        src[n] = line;
        tgt[n] = tab + 1;
        n++;
    }
    if (st != ATTN_OK) {
        free(src);
        free(tgt);
        attn__sb_free(&b);
        return st;
    }
    out->n = (int64_t)n;
    out->src = src;
    out->tgt = tgt;
    out->storage_ = b.p;
    return ATTN_OK;
}
