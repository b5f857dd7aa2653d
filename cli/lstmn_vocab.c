/* lstmn_vocab.c: the words of `attn lstmn` (lstmn_vocab.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "commands.h"
#include "lstmn_vocab.h"

#define CMD "lstmn"

/* ---- words ------------------------------------------------------------------------- */

/* One text's words: a verse line (optional blanks, the verse number, the
 * text) gives its words in lower case (ASCII letters, with an apostrophe
 * between two letters kept: "aaron's"), each of . , ; : ? ! ( ) as a token of
 * its own, and <eos> at its end. Lines that do not start with a blank (the
 * "Book N" headings) and blank lines give nothing. fn(word, len, user) is
 * called per token ("<eos>" for the end); it returns 0, or nonzero to stop.
 * Returns 0, or fn's nonzero value. */
int lstmn_word_split(const char *text, size_t n, int (*fn)(const char *, size_t, void *),
                     void *user) {
    size_t i = 0;
    while (i < n) {
        size_t e = i;
        while (e < n && text[e] != '\n') e++;
        if (e > i && (text[i] == ' ' || text[i] == '\t')) {
            char w[LSTMN_MAX_WORD + 1];
            size_t len = 0;
            int any = 0, rc;
            for (size_t k = i; k <= e; k++) {
                const char ch = k < e ? text[k] : ' ';
                const int letter = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
                const int apos = ch == '\'' && len > 0 && k + 1 < e &&
                                 ((text[k + 1] >= 'a' && text[k + 1] <= 'z') ||
                                  (text[k + 1] >= 'A' && text[k + 1] <= 'Z'));
                if (letter || apos) {
                    if (len < LSTMN_MAX_WORD) w[len++] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
                    continue;
                }
                if (len) {
                    if ((rc = fn(w, len, user))) return rc;
                    len = 0, any = 1;
                }
                if (strchr(".,;:?!()", ch) && ch) {
                    if ((rc = fn(&ch, 1, user))) return rc;
                    any = 1;
                }
            }
            if (any && (rc = fn("<eos>", 5, user))) return rc;
        }
        i = e + 1;
    }
    return 0;
}

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

void lstmn_vocab_free(lstmn_vocab *t) {
    for (int64_t i = 0; i < t->n; i++) free(t->words[i]);
    free(t->words);
    free(t->count);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

static int table_rehash(lstmn_vocab *t, int64_t nslot) {
    int32_t *s = malloc(sizeof *s * (size_t)nslot);
    if (!s) return -1;
    for (int64_t i = 0; i < nslot; i++) s[i] = -1;
    for (int64_t i = 0; i < t->n; i++) {
        uint64_t h = fnv(t->words[i], strlen(t->words[i])) & (uint64_t)(nslot - 1);
        while (s[h] >= 0) h = (h + 1) & (uint64_t)(nslot - 1);
        s[h] = (int32_t)i;
    }
    free(t->slot);
    t->slot = s;
    t->nslot = nslot;
    return 0;
}

/* The id of w (inserted with count 0 when add and absent), -1 if absent. */
int64_t lstmn_vocab_find(lstmn_vocab *t, const char *w, size_t len, int add) {
    if (!t->nslot && (!add || table_rehash(t, 1024))) return -1;
    uint64_t h = fnv(w, len) & (uint64_t)(t->nslot - 1);
    while (t->slot[h] >= 0) {
        const char *s = t->words[t->slot[h]];
        if (strlen(s) == len && !memcmp(s, w, len)) return t->slot[h];
        h = (h + 1) & (uint64_t)(t->nslot - 1);
    }
    if (!add) return -1;
    if (t->n == t->cap) {
        const int64_t cap = t->cap ? 2 * t->cap : 1024;
        char **nw = realloc(t->words, sizeof *nw * (size_t)cap);
        if (nw) t->words = nw;
        int64_t *nc = realloc(t->count, sizeof *nc * (size_t)cap);
        if (nc) t->count = nc;
        if (!nw || !nc) return -1;
        t->cap = cap;
    }
    char *c = malloc(len + 1);
    if (!c) return -1;
    memcpy(c, w, len);
    c[len] = 0;
    t->words[t->n] = c;
    t->count[t->n] = 0;
    t->slot[h] = (int32_t)t->n;
    t->n++;
    if (2 * t->n > t->nslot && table_rehash(t, 2 * t->nslot)) return -1;
    return t->n - 1;
}

static int count_word(const char *w, size_t len, void *user) {
    lstmn_vocab *t = user;
    const int64_t id = lstmn_vocab_find(t, w, len, 1);
    if (id < 0) return 1;
    t->count[id]++;
    return 0;
}

static const lstmn_vocab *sort_table;
static int by_count(const void *a, const void *b) {
    const int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    const int64_t ci = sort_table->count[i], cj = sort_table->count[j];
    if (ci != cj) return ci > cj ? -1 : 1;
    return strcmp(sort_table->words[i], sort_table->words[j]);
}

/* The vocabulary: <unk>, <eos>, then the max_words - 2 most frequent words
 * of text (ties by byte order). */
int lstmn_vocab_learn(const char *text, size_t n, int64_t max_words, lstmn_vocab *v) {
    lstmn_vocab all;
    memset(&all, 0, sizeof all);
    memset(v, 0, sizeof *v);
    int rc = 1;
    int64_t *order = NULL;
    if (lstmn_word_split(text, n, count_word, &all)) goto done;
    order = malloc(sizeof *order * (size_t)(all.n ? all.n : 1));
    if (!order) goto done;
    for (int64_t i = 0; i < all.n; i++) order[i] = i;
    sort_table = &all;
    qsort(order, (size_t)all.n, sizeof *order, by_count);
    if (lstmn_vocab_find(v, "<unk>", 5, 1) != LSTMN_UNK || lstmn_vocab_find(v, "<eos>", 5, 1) != LSTMN_EOS) goto done;
    for (int64_t k = 0; k < all.n && v->n < max_words; k++) {
        const char *w = all.words[order[k]];
        if (!strcmp(w, "<eos>") || !strcmp(w, "<unk>")) continue;
        if (lstmn_vocab_find(v, w, strlen(w), 1) < 0) goto done;
    }
    rc = 0;
done:
    free(order);
    lstmn_vocab_free(&all);
    if (rc) fprintf(stderr, "attn lstmn: out of memory building the vocabulary\n");
    return rc;
}

typedef struct encode_state {
    lstmn_vocab *v;
    int32_t *ids;
    int64_t n, cap, unk;
} encode_state;

static int encode_word(const char *w, size_t len, void *user) {
    encode_state *e = user;
    int64_t id = lstmn_vocab_find(e->v, w, len, 0);
    if (id < 0) id = LSTMN_UNK, e->unk++;
    if (e->n == e->cap) {
        const int64_t cap = e->cap ? 2 * e->cap : 1 << 16;
        int32_t *p = realloc(e->ids, sizeof *p * (size_t)cap);
        if (!p) return 1;
        e->ids = p;
        e->cap = cap;
    }
    e->ids[e->n++] = (int32_t)id;
    return 0;
}

/* Reads DIR/NAME and encodes it; *unk receives the out-of-vocabulary count. */
int lstmn_encode_file(const char *dir, const char *name, lstmn_vocab *v, attn_lm_tokens *out,
                      int64_t *unk) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = NULL;
    size_t len = 0;
    if (attn_lm_text_load(path, &text, &len) != ATTN_OK)
        return cli_fail(CMD, "cannot read the corpus (scripts/get_kjv_data.sh makes data/kjv)");
    encode_state e = {v, NULL, 0, 0, 0};
    const int rc = lstmn_word_split(text, len, encode_word, &e);
    free(text);
    if (rc) {
        free(e.ids);
        fprintf(stderr, "attn lstmn: out of memory encoding %s\n", path);
        return 1;
    }
    memset(out, 0, sizeof *out);
    out->ids = e.ids;
    out->n = e.n;
    out->chars = e.n;
    if (unk) *unk = e.unk;
    return 0;
}

int lstmn_vocab_save(const lstmn_vocab *v, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "attn lstmn: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    for (int64_t i = 0; i < v->n; i++) fprintf(f, "%s\n", v->words[i]);
    if (fclose(f)) {
        fprintf(stderr, "attn lstmn: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

int lstmn_vocab_load(const char *path, lstmn_vocab *v) {
    memset(v, 0, sizeof *v);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "attn lstmn: cannot read the vocabulary %s: %s\n", path, strerror(errno));
        return 1;
    }
    char line[256];
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\n");
        line[len] = 0;
        if (!len || len > LSTMN_MAX_WORD || lstmn_vocab_find(v, line, len, 0) >= 0) {
            fprintf(stderr, "attn lstmn: %s: line %lld: '%s' is not a word of a vocabulary\n", path,
                    (long long)v->n + 1, line);
            rc = 1;
            break;
        }
        if (lstmn_vocab_find(v, line, len, 1) < 0) {
            rc = 1;
            break;
        }
    }
    fclose(f);
    if (!rc && (v->n < 2 || strcmp(v->words[LSTMN_UNK], "<unk>") || strcmp(v->words[LSTMN_EOS], "<eos>"))) {
        fprintf(stderr, "attn lstmn: %s does not start with <unk> and <eos>\n", path);
        rc = 1;
    }
    if (rc) lstmn_vocab_free(v);
    return rc;
}

