/* vocab.c: the vocabulary shared by the character and BPE tokenisers:
 * alphabet, pieces, encode/decode, save/load (include/attn/text.h). The BPE
 * learner and chunk encoder are in bpe.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "../io/atomic_file_internal.h"
#include "text_internal.h"
#include "attn/text.h"

static const char *const special_pieces[ATTN_TOKEN_SPECIALS] = {"<pad>", "<bos>", "<eos>", "<unk>"};

void attn_vocab_free(attn_vocab *v) {
    if (!v) return;
    free(v->alpha);
    free(v->merges);
    free(v->piece_text);
    free(v->piece_off);
    attn__map_free(&v->ranks);
    free(v);
}

attn_vocab_kind attn_vocab_kind_of(const attn_vocab *v) { return v ? v->kind : ATTN_VOCAB_CHAR; }
int attn_vocab_size(const attn_vocab *v) { return v ? v->size : 0; }
int attn_vocab_alphabet_size(const attn_vocab *v) { return v ? v->n_alpha : 0; }
int attn_bpe_merge_count(const attn_vocab *v) { return v ? v->n_merges : 0; }

attn_status attn_bpe_merge(const attn_vocab *v, int rank, int32_t *left, int32_t *right) {
    if (!v || !left || !right)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_bpe_merge: NULL argument");
    if (v->kind != ATTN_VOCAB_BPE || rank < 0 || rank >= v->n_merges)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_bpe_merge: rank %d outside the %d merges of this vocabulary", rank,
                           v->n_merges);
    *left = v->merges[2 * rank];
    *right = v->merges[2 * rank + 1];
    return ATTN_OK;
}

const char *attn_vocab_piece(const attn_vocab *v, int32_t id) {
    if (!v || id < 0 || id >= v->size) return NULL;
    return v->piece_text + v->piece_off[id];
}

int32_t attn_vocab_find(const attn_vocab *v, const char *piece) {
    if (!v || !piece) return -1;
    for (int32_t i = 0; i < v->size; i++)
        if (strcmp(v->piece_text + v->piece_off[i], piece) == 0) return i;
    return -1;
}

int32_t attn__vocab_char_id(const attn_vocab *v, int32_t cp) {
    int lo = 0, hi = v->n_alpha;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (v->alpha[mid] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < v->n_alpha && v->alpha[lo] == cp) return ATTN_TOKEN_SPECIALS + lo;
    return ATTN_TOKEN_UNK;
}

/* Limits on what a vocabulary file can make attn build: merges can double a
 * piece's length each time (merge k joining token k - 1 with itself), so 40
 * merges in 255 bytes would ask for 2^41 bytes. Real vocabularies stay far
 * below: GPT-2's 50,000 merges make pieces of at most 128 bytes and 400 KB
 * in all. */
#define VOCAB_PIECE_MAX 1024                   /* bytes of one piece */
#define VOCAB_TEXT_MAX ((size_t)64 << 20)      /* bytes of all pieces */

/* "vocab: FILE: line N: " for merge r of a vocabulary read from path (line 1
 * is the header, then one line a character, then one a merge), "vocab: " for
 * one built in memory. */
static void merge_where(char *buf, size_t cap, const attn_vocab *v, const char *path, int r) {
    if (path)
        snprintf(buf, cap, "vocab: %s: line %ld: ", path, 2L + v->n_alpha + r);
    else
        snprintf(buf, cap, "vocab: ");
}

attn_status attn__vocab_finish(attn_vocab *v, const char *path) {
    v->size = ATTN_TOKEN_SPECIALS + v->n_alpha + v->n_merges;
    v->piece_off = malloc((size_t)v->size * sizeof *v->piece_off);
    attn__strbuf text = {0};
    if (!v->piece_off)
        return attn__error(ATTN_ERR_OOM, "vocab: out of memory for %d pieces", v->size);
    int bad = 0;
    for (int i = 0; i < ATTN_TOKEN_SPECIALS && !bad; i++) {
        v->piece_off[i] = text.len;
        bad = attn__sb_put(&text, special_pieces[i], strlen(special_pieces[i]) + 1);
    }
    for (int i = 0; i < v->n_alpha && !bad; i++) {
        char u[5];
        int k = attn__utf8_encode(v->alpha[i], u);
        u[k] = '\0';
        v->piece_off[ATTN_TOKEN_SPECIALS + i] = text.len;
        bad = attn__sb_put(&text, u, (size_t)k + 1);
    }
    for (int r = 0; r < v->n_merges && !bad; r++) {
        const int id = ATTN_TOKEN_SPECIALS + v->n_alpha + r;
        const int32_t left = v->merges[2 * r], right = v->merges[2 * r + 1];
        /* The buffer may move while it grows: reserve first, copy by offset. */
        const size_t a = v->piece_off[left], b = v->piece_off[right];
        const size_t la = strlen(text.p + a), lb = strlen(text.p + b);
        if (la + lb > VOCAB_PIECE_MAX || text.len + la + lb + 1 > VOCAB_TEXT_MAX) {
            const size_t so_far = text.len; /* read before the buffer is freed */
            char where[512];
            merge_where(where, sizeof where, v, path, r);
            attn__sb_free(&text);
            return attn__error(ATTN_ERR_FORMAT,
                               "%smerge %d (%d %d) makes a piece of %zu bytes (%zu bytes of "
                               "pieces so far); the limits are %d bytes a piece and %zu in all",
                               where, r + 1, left, right, la + lb, so_far, VOCAB_PIECE_MAX,
                               VOCAB_TEXT_MAX);
        }
        if (attn__sb_reserve(&text, la + lb + 1) != 0) {
            bad = 1;
            break;
        }
        v->piece_off[id] = text.len;
        memcpy(text.p + text.len, text.p + a, la);
        memcpy(text.p + text.len + la, text.p + b, lb);
        text.len += la + lb;
        text.p[text.len++] = '\0';
        text.p[text.len] = '\0'; /* the buffer's NUL after len (reserved above) */
        const uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
        if (attn__map_get(&v->ranks, key)) {
            char where[512];
            merge_where(where, sizeof where, v, path, r);
            attn__sb_free(&text);
            return attn__error(ATTN_ERR_FORMAT, "%smerge %d (%d %d) repeats an earlier merge", where,
                               r + 1, left, right);
        }
        int64_t *slot = attn__map_put(&v->ranks, key);
        if (!slot) {
            bad = 1;
            break;
        }
        *slot = r;
    }
    if (bad) {
        attn__sb_free(&text);
        return attn__error(ATTN_ERR_OOM, "vocab: out of memory for the pieces of %d tokens",
                           v->size);
    }
    v->piece_text = text.p;
    return ATTN_OK;
}

attn_status attn__count_chars(const char *const *texts, int64_t n_texts, attn__map *counts,
                              const char *who) {
    for (int64_t t = 0; t < n_texts; t++) {
        if (!texts[t])
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: text %lld is NULL", who, (long long)t);
        const unsigned char *p = (const unsigned char *)texts[t];
        size_t n = strlen(texts[t]);
        for (size_t i = 0; i < n;) {
            int32_t cp;
            i += (size_t)attn__utf8_decode(p + i, n - i, &cp);
            if (cp < 0) continue;
            int64_t *c = attn__map_put(counts, (uint64_t)cp);
            if (!c) return attn__error(ATTN_ERR_OOM, "%s: out of memory counting characters", who);
            (*c)++;
        }
    }
    return ATTN_OK;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

attn_status attn__alphabet(const attn__map *counts, int min_count, int32_t **alpha, int *n,
                           const char *who) {
    if (min_count < 1) min_count = 1;
    int32_t *a = malloc((counts->n ? counts->n : 1) * sizeof *a);
    if (!a) return attn__error(ATTN_ERR_OOM, "%s: out of memory for the alphabet", who);
    int k = 0;
    for (size_t i = 0; i < counts->cap; i++)
        if (counts->used[i] && counts->vals[i] >= min_count) a[k++] = (int32_t)counts->keys[i];
    qsort(a, (size_t)k, sizeof *a, cmp_i32);
    *alpha = a;
    *n = k;
    return ATTN_OK;
}

attn_status attn_vocab_build_chars(const char *const *texts, int64_t n_texts, int min_count,
                                   attn_vocab **out) {
    if (out) *out = NULL;
    if (!texts || !out || n_texts < 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_vocab_build_chars: NULL texts or out");
    attn__map counts = {0};
    attn_status st = attn__count_chars(texts, n_texts, &counts, "attn_vocab_build_chars");
    attn_vocab *v = NULL;
    if (st == ATTN_OK) {
        v = calloc(1, sizeof *v);
        if (!v) st = attn__error(ATTN_ERR_OOM, "attn_vocab_build_chars: out of memory");
    }
    if (st == ATTN_OK) {
        v->kind = ATTN_VOCAB_CHAR;
        st = attn__alphabet(&counts, min_count, &v->alpha, &v->n_alpha, "attn_vocab_build_chars");
    }
    if (st == ATTN_OK) st = attn__vocab_finish(v, NULL);
    attn__map_free(&counts);
    if (st != ATTN_OK) {
        attn_vocab_free(v);
        return st;
    }
    *out = v;
    return ATTN_OK;
}

/* ---- encode / decode ---------------------------------------------------- */

typedef struct {
    int32_t *ids;
    size_t cap, n;
} id_sink;

static void sink_emit(int32_t id, void *user) {
    id_sink *s = user;
    if (s->ids && s->n < s->cap) s->ids[s->n] = id;
    s->n++;
}

attn_status attn_vocab_encode(const attn_vocab *v, const char *text, size_t len, int32_t *ids,
                              size_t cap, size_t *n_ids) {
    if (n_ids) *n_ids = 0;
    if (!v || !text || !n_ids || (!ids && cap > 0))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_vocab_encode: NULL vocab, text or n_ids, or NULL ids with cap %zu",
                           cap);
    id_sink sink = {ids, cap, 0};
    if (v->kind == ATTN_VOCAB_BPE) {
        attn_status st = attn__bpe_encode(v, text, len, sink_emit, &sink);
        if (st != ATTN_OK) return st;
    } else {
        const unsigned char *p = (const unsigned char *)text;
        for (size_t i = 0; i < len;) {
            int32_t cp;
            i += (size_t)attn__utf8_decode(p + i, len - i, &cp);
            sink_emit(cp < 0 ? ATTN_TOKEN_UNK : attn__vocab_char_id(v, cp), &sink);
        }
    }
    *n_ids = sink.n;
    if (ids && sink.n > cap)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_vocab_encode: the text has %zu tokens, the buffer holds %zu",
                           sink.n, cap);
    return ATTN_OK;
}

attn_status attn_vocab_decode(const attn_vocab *v, const int32_t *ids, size_t n, char *text,
                              size_t cap, size_t *len) {
    if (len) *len = 0;
    if (!v || !len || (!ids && n > 0) || (!text && cap > 0))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_vocab_decode: NULL vocab or len, NULL ids with n %zu, or NULL "
                           "text with cap %zu",
                           n, cap);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const int32_t id = ids[i];
        if (id < 0 || id >= v->size) {
            if (text && cap) text[total < cap ? total : cap - 1] = '\0';
            return attn__error(ATTN_ERR_INVALID_ARG,
                               "attn_vocab_decode: id %d at position %zu outside [0, %d)", id, i,
                               v->size);
        }
        if (id == ATTN_TOKEN_PAD || id == ATTN_TOKEN_BOS || id == ATTN_TOKEN_EOS) continue;
        const char *piece = v->piece_text + v->piece_off[id];
        const size_t k = strlen(piece);
        if (text && total < cap) {
            const size_t room = cap - 1 - total; /* cap > total >= 0: room >= 0 */
            memcpy(text + total, piece, k < room ? k : room);
        }
        total += k;
    }
    *len = total;
    if (text && cap) text[total < cap ? total : cap - 1] = '\0';
    if (text && total + 1 > cap)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_vocab_decode: the text has %zu bytes and its NUL, the buffer "
                           "holds %zu",
                           total, cap);
    return ATTN_OK;
}

/* ---- save / load -------------------------------------------------------- */

/* Written through the one atomic writer (io/atomic_file_internal.h): on a
 * full disk or a crash the previous file under path stays whole. */
attn_status attn_vocab_save(const attn_vocab *v, const char *path) {
    if (!v || !path) return attn__error(ATTN_ERR_INVALID_ARG, "attn_vocab_save: NULL argument");
    attn__atomic_file af;
    attn_status st = attn__atomic_open(&af, "attn_vocab_save", path);
    if (st != ATTN_OK) return st;
    FILE *f = af.fp;
    fprintf(f, "attn-vocab 1 %s %d %d\n", v->kind == ATTN_VOCAB_BPE ? "bpe" : "char", v->n_alpha,
            v->n_merges);
    for (int i = 0; i < v->n_alpha; i++) {
        const int32_t cp = v->alpha[i];
        /* The character itself after a tab, for a reader; the loader reads
         * only the hex value. Controls, space and DEL stay hex only. */
        if (cp > 0x20 && cp != 0x7F && !(cp >= 0x80 && cp <= 0x9F))
            fprintf(f, "%X\t%s\n", (unsigned)cp,
                    v->piece_text + v->piece_off[ATTN_TOKEN_SPECIALS + i]);
        else
            fprintf(f, "%X\n", (unsigned)cp);
    }
    for (int r = 0; r < v->n_merges; r++)
        fprintf(f, "%d %d\n", v->merges[2 * r], v->merges[2 * r + 1]);
    return attn__atomic_commit(&af);
}

/* Reads one line (without its newline) into buf; 0 at end of file, -1 when
 * the line does not fit. */
static int read_line(FILE *f, char *buf, size_t cap) {
    if (!fgets(buf, (int)cap, f)) return 0;
    size_t n = strlen(buf);
    if (n && buf[n - 1] == '\n')
        buf[--n] = '\0';
    else if (!feof(f))
        return -1;
    return 1;
}

attn_status attn_vocab_load(const char *path, attn_vocab **out) {
    if (out) *out = NULL;
    if (!path || !out) return attn__error(ATTN_ERR_INVALID_ARG, "attn_vocab_load: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f) return attn__error(ATTN_ERR_IO, "vocab: cannot open %s: %s", path, strerror(errno));
    attn_vocab *v = calloc(1, sizeof *v);
    attn_status st = ATTN_OK;
    char line[256], kind[16];
    int n_alpha = -1, n_merges = -1, version = 0, end = 0;
    long lineno = 1;
    if (!v) {
        st = attn__error(ATTN_ERR_OOM, "vocab: out of memory loading %s", path);
        goto done;
    }
    if (read_line(f, line, sizeof line) != 1 ||
        sscanf(line, "attn-vocab %d %15s %d %d%n", &version, kind, &n_alpha, &n_merges, &end) !=
            4 ||
        line[end] != '\0' || version != 1 || (strcmp(kind, "char") && strcmp(kind, "bpe")) ||
        n_alpha < 0 || n_alpha > 0x110000 || n_merges < 0 || n_merges > 1000000 ||
        (!strcmp(kind, "char") && n_merges != 0)) {
        st = attn__error(ATTN_ERR_FORMAT,
                         "vocab: %s: line 1 is not \"attn-vocab 1 char|bpe ALPHABET MERGES\" "
                         "(a char vocabulary has 0 merges)",
                         path);
        goto done;
    }
    v->kind = strcmp(kind, "bpe") == 0 ? ATTN_VOCAB_BPE : ATTN_VOCAB_CHAR;
    v->alpha = malloc(((size_t)n_alpha + 1) * sizeof *v->alpha);
    v->merges = malloc(((size_t)n_merges + 1) * 2 * sizeof *v->merges);
    if (!v->alpha || !v->merges) {
        st = attn__error(ATTN_ERR_OOM, "vocab: out of memory loading %s", path);
        goto done;
    }
    for (int i = 0; i < n_alpha; i++) {
        lineno++;
        unsigned long cp = 0;
        int rl = read_line(f, line, sizeof line);
        /* Plain hex digits only, as attn_vocab_save writes them: strtoul
         * would also take "0x61", " 61", "+61" and "-61". */
        size_t nd = 0;
        if (rl == 1) nd = strspn(line, "0123456789abcdefABCDEF");
        if (rl == 1 && (nd == 0 || (line[nd] != '\0' && line[nd] != '\t'))) {
            const size_t show = strcspn(line, "\t");
            st = attn__error(ATTN_ERR_FORMAT,
                             "vocab: %s: line %ld: '%.*s' is not plain hex digits (character %d "
                             "of %d is written as its code point in hex, like 61 for 'a', no "
                             "0x, sign or spaces)",
                             path, lineno, (int)(show > 40 ? 40 : show), line, i + 1, n_alpha);
            goto done;
        }
        if (rl == 1 && nd <= 8) cp = strtoul(line, NULL, 16);
        if (rl != 1 || nd > 8 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
            (i > 0 && (int32_t)cp <= v->alpha[i - 1])) {
            st = attn__error(ATTN_ERR_FORMAT,
                             "vocab: %s: line %ld: expected the hex code point of character %d "
                             "of %d, increasing, a Unicode scalar value",
                             path, lineno, i + 1, n_alpha);
            goto done;
        }
        v->alpha[i] = (int32_t)cp;
    }
    v->n_alpha = n_alpha;
    for (int r = 0; r < n_merges; r++) {
        lineno++;
        int a = -1, b = -1;
        end = 0;
        const int limit = ATTN_TOKEN_SPECIALS + n_alpha + r; /* ids defined before this merge */
        if (read_line(f, line, sizeof line) != 1 || sscanf(line, "%d %d%n", &a, &b, &end) != 2 ||
            line[end] != '\0' || a < ATTN_TOKEN_SPECIALS || b < ATTN_TOKEN_SPECIALS || a >= limit ||
            b >= limit) {
            st = attn__error(ATTN_ERR_FORMAT,
                             "vocab: %s: line %ld: expected merge %d as two token ids in [%d, %d)",
                             path, lineno, r + 1, ATTN_TOKEN_SPECIALS, limit);
            goto done;
        }
        v->merges[2 * r] = a;
        v->merges[2 * r + 1] = b;
    }
    v->n_merges = n_merges;
    if (read_line(f, line, sizeof line) != 0) {
        st =
            attn__error(ATTN_ERR_FORMAT, "vocab: %s: line %ld: unexpected text after the %d merges",
                        path, lineno + 1, n_merges);
        goto done;
    }
    st = attn__vocab_finish(v, path);
done:
    fclose(f);
    if (st != ATTN_OK) {
        attn_vocab_free(v);
        return st;
    }
    *out = v;
    return ATTN_OK;
}
