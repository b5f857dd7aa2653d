/* wordpiece.c: BERT's uncased WordPiece tokenizer (include/attn/wordpiece.h,
 * docs/minilm.md). The Unicode tables are in wordpiece_unicode.c, generated
 * by tools/make_wordpiece_unicode.py.
 *
 * One pass over the text decodes UTF-8, normalises each character (drop,
 * space, a CJK word, or its NFD-without-marks lower-cased form, from the
 * tables) and cuts words at spaces and around punctuation; each finished
 * word goes to a callback (the basic tokenizer's output, or WordPiece).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "wordpiece_internal.h"
#include "attn/wordpiece.h"

struct attn_wordpiece {
    int32_t size;
    char *text;        /* the tokens, each NUL-terminated */
    uint32_t *off;     /* [size]: token i at text + off[i] */
    uint32_t *len;     /* [size]: its length in bytes */
    int32_t *slots;    /* open addressing: token ids or -1, n_slots a power of 2 */
    uint32_t n_slots;
    int32_t pad, unk, cls, sep;
    int n_special;     /* the special tokens found in the text as they are */
    int32_t special[5];
};

/* Hugging Face's added tokens of BERT: matched in the raw text, exact case,
 * anywhere (not normalised, no word boundary needed), before the basic
 * tokenizer. */
static const char *const special_names[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

const char *attn_wordpiece_unicode_version(void) { return attn__wp_unicode_version; }

/* ---- the vocabulary ----------------------------------------------------------------- */

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int32_t lookup(const attn_wordpiece *wp, const char *s, size_t n) {
    uint32_t mask = wp->n_slots - 1, i = hash_bytes(s, n) & mask;
    for (;;) {
        const int32_t id = wp->slots[i];
        if (id < 0) return -1;
        if (wp->len[id] == n && memcmp(wp->text + wp->off[id], s, n) == 0) return id;
        i = (i + 1) & mask;
    }
}

void attn_wordpiece_free(attn_wordpiece *wp) {
    if (!wp) return;
    free(wp->text);
    free(wp->off);
    free(wp->len);
    free(wp->slots);
    free(wp);
}

attn_status attn_wordpiece_from_text(const char *src, size_t n, attn_wordpiece **out) {
    static const char fn[] = "attn_wordpiece_from_text";
    if (out) *out = NULL;
    if (!src || !out) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (n > ((size_t)1 << 30))
        return attn__error(ATTN_ERR_FORMAT, "%s: %zu bytes: a vocabulary is at most 2^30", fn, n);
    if (memchr(src, 0, n))
        return attn__error(ATTN_ERR_FORMAT, "%s: the vocabulary holds a NUL byte", fn);
    int64_t lines = 0;
    for (size_t i = 0; i < n; i++) lines += src[i] == '\n';
    if (n > 0 && src[n - 1] != '\n') lines++;
    if (lines < 4 || lines > (1 << 24))
        return attn__error(ATTN_ERR_FORMAT, "%s: %lld lines: expected 4 .. 2^24 tokens", fn,
                           (long long)lines);
    attn_wordpiece *wp = calloc(1, sizeof *wp);
    if (!wp) return attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    uint32_t slots = 1;
    while (slots < 2 * (uint32_t)lines) slots <<= 1;
    wp->n_slots = slots;
    wp->text = malloc(n + 1);
    wp->off = malloc((size_t)lines * sizeof *wp->off);
    wp->len = malloc((size_t)lines * sizeof *wp->len);
    wp->slots = malloc((size_t)slots * sizeof *wp->slots);
    if (!wp->text || !wp->off || !wp->len || !wp->slots) {
        attn_wordpiece_free(wp);
        return attn__error(ATTN_ERR_OOM, "%s: out of memory for %lld tokens", fn, (long long)lines);
    }
    memset(wp->slots, 0xff, (size_t)slots * sizeof *wp->slots);
    memcpy(wp->text, src, n);
    wp->text[n] = '\0';
    size_t pos = 0;
    int32_t id = 0;
    while (pos < n) {
        size_t e = pos;
        while (e < n && wp->text[e] != '\n') e++;
        size_t l = e - pos;
        if (l > 0 && wp->text[pos + l - 1] == '\r') l--;
        wp->text[pos + l] = '\0';
        if (l == 0) {
            attn_wordpiece_free(wp);
            return attn__error(ATTN_ERR_FORMAT, "%s: line %d is empty: expected one token a line",
                               fn, id + 1);
        }
        wp->off[id] = (uint32_t)pos;
        wp->len[id] = (uint32_t)l;
        if (lookup(wp, wp->text + pos, l) < 0) { /* a repeated token keeps its first id */
            uint32_t i = hash_bytes(wp->text + pos, l) & (slots - 1);
            while (wp->slots[i] >= 0) i = (i + 1) & (slots - 1);
            wp->slots[i] = id;
        }
        id++;
        pos = e + 1;
    }
    wp->size = id;
    wp->pad = lookup(wp, "[PAD]", 5);
    wp->unk = lookup(wp, "[UNK]", 5);
    wp->cls = lookup(wp, "[CLS]", 5);
    wp->sep = lookup(wp, "[SEP]", 5);
    for (int k = 0; k < 5; k++) {
        const int32_t sp = lookup(wp, special_names[k], strlen(special_names[k]));
        if (sp >= 0) wp->special[wp->n_special++] = sp;
    }
    if (wp->pad < 0 || wp->unk < 0 || wp->cls < 0 || wp->sep < 0) {
        attn_wordpiece_free(wp);
        return attn__error(ATTN_ERR_FORMAT,
                           "%s: the vocabulary lacks one of [PAD], [UNK], [CLS], [SEP]", fn);
    }
    *out = wp;
    return ATTN_OK;
}

attn_status attn_wordpiece_load(const char *path, attn_wordpiece **out) {
    static const char fn[] = "attn_wordpiece_load";
    if (out) *out = NULL;
    if (!path || !out) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    FILE *f = fopen(path, "rb");
    if (!f) return attn__error(ATTN_ERR_IO, "%s: cannot open %s: %s", fn, path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    attn_status st = ATTN_OK;
    while (buf) {
        if (n == cap) {
            if (cap >= ((size_t)1 << 30)) {
                st = attn__error(ATTN_ERR_FORMAT, "%s: %s is over 1 GiB", fn, path);
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (!buf) st = attn__error(ATTN_ERR_OOM, "%s: out of memory reading %s", fn, path);
    else if (st == ATTN_OK && ferror(f))
        st = attn__error(ATTN_ERR_IO, "%s: error reading %s", fn, path);
    fclose(f);
    if (st == ATTN_OK) {
        st = attn_wordpiece_from_text(buf, n, out);
        if (st != ATTN_OK)
            st = attn__error(st, "%s: %s: %s", fn, path, attn_last_error());
    }
    free(buf);
    return st;
}

int32_t attn_wordpiece_size(const attn_wordpiece *wp) { return wp ? wp->size : 0; }
int32_t attn_wordpiece_pad_id(const attn_wordpiece *wp) { return wp ? wp->pad : -1; }
int32_t attn_wordpiece_unk_id(const attn_wordpiece *wp) { return wp ? wp->unk : -1; }
int32_t attn_wordpiece_cls_id(const attn_wordpiece *wp) { return wp ? wp->cls : -1; }
int32_t attn_wordpiece_sep_id(const attn_wordpiece *wp) { return wp ? wp->sep : -1; }

int32_t attn_wordpiece_id(const attn_wordpiece *wp, const char *token) {
    if (!wp || !token) return -1;
    return lookup(wp, token, strlen(token));
}

const char *attn_wordpiece_token(const attn_wordpiece *wp, int32_t id) {
    if (!wp || id < 0 || id >= wp->size) return NULL;
    return wp->text + wp->off[id];
}

/* ---- the basic tokenizer ------------------------------------------------------------ */

static uint32_t char_class(uint32_t cp) {
    int lo = 0, hi = attn__wp_n_class - 1;
    while (lo <= hi) {
        const int mid = lo + (hi - lo) / 2;
        if (cp < attn__wp_class[mid].lo)
            hi = mid - 1;
        else if (cp > attn__wp_class[mid].hi)
            lo = mid + 1;
        else
            return attn__wp_class[mid].cls;
    }
    return ATTN__WP_KEEP;
}

/* The normalised form of a KEEP, PUNCT or CJK code point: up to 3 code points in
 * out, their count returned. */
static int normalise(uint32_t cp, uint32_t out[3]) {
    if (cp >= 0xAC00 && cp <= 0xD7A3) { /* Hangul syllable: L V (T), algorithmically */
        const uint32_t s = cp - 0xAC00;
        out[0] = 0x1100 + s / 588;
        out[1] = 0x1161 + (s % 588) / 28;
        if (s % 28 == 0) return 2;
        out[2] = 0x11A7 + s % 28;
        return 3;
    }
    int lo = 0, hi = attn__wp_n_map - 1;
    while (lo <= hi) {
        const int mid = lo + (hi - lo) / 2;
        if (cp < attn__wp_map[mid].cp)
            hi = mid - 1;
        else if (cp > attn__wp_map[mid].cp)
            lo = mid + 1;
        else {
            const attn__wp_mapping *m = &attn__wp_map[mid];
            for (uint32_t k = 0; k < m->len; k++) out[k] = attn__wp_pool[m->off + k];
            return (int)m->len;
        }
    }
    out[0] = cp;
    return 1;
}

/* One UTF-8 code point from s[*i ..] (n bytes); invalid or truncated
 * sequences, overlongs, surrogates and values past U+10FFFF give U+FFFD and
 * consume one byte. */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *i) {
    const unsigned char c = s[*i];
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    int len = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
    if (len == 0 || *i + (size_t)len > n) {
        (*i)++;
        return 0xFFFD;
    }
    uint32_t cp = c & (0x3F >> (len - 1));
    for (int k = 1; k < len; k++) {
        if ((s[*i + k] & 0xC0) != 0x80) {
            (*i)++;
            return 0xFFFD;
        }
        cp = (cp << 6) | (s[*i + k] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
        (*i)++;
        return 0xFFFD;
    }
    *i += (size_t)len;
    return cp;
}

static int utf8_put(uint32_t cp, char *o) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A word: its UTF-8 bytes in word[0 .. n), chars characters; or, with
 * special >= 0, a special token of the text (word NULL). Returns 0, or -1 to
 * stop (the callback has set the error). */
typedef int (*word_fn)(const char *word, size_t n, int64_t chars, int32_t special, void *user);

/* The word buffer of the basic tokenizer for n bytes of text: each input
 * byte gives at most 3 code points of at most 4 bytes. */
static size_t basic_buffer_size(size_t n) { return 12 * n + 16; }

/* The special token of wp (NULL: none) that starts s[0 .. n), its id in
 * *id and its length returned; 0 when none does. */
static size_t special_at(const attn_wordpiece *wp, const char *s, size_t n, int32_t *id) {
    if (!wp || s[0] != '[') return 0;
    for (int k = 0; k < wp->n_special; k++) {
        const char *t = wp->text + wp->off[wp->special[k]];
        const size_t l = wp->len[wp->special[k]];
        if (l <= n && memcmp(s, t, l) == 0) {
            *id = wp->special[k];
            return l;
        }
    }
    return 0;
}

/* Runs the basic tokenizer over text, calling fn for each word and each
 * special token of wp (NULL: none) in the text; buf has
 * basic_buffer_size(n) bytes. */
static int basic_run(const attn_wordpiece *wp, const char *text, size_t n, char *buf, word_fn fn,
                     void *user) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, w = 0; /* w: bytes of the current word in buf */
    int64_t chars = 0;
#define FLUSH()                                                  \
    do {                                                         \
        if (w > 0 && fn(buf, w, chars, -1, user)) return -1;     \
        w = 0;                                                   \
        chars = 0;                                               \
    } while (0)
    while (i < n) {
        int32_t sid;
        const size_t sl = special_at(wp, text + i, n - i, &sid);
        if (sl > 0) {
            FLUSH();
            if (fn(NULL, 0, 0, sid, user)) return -1;
            i += sl;
            continue;
        }
        const uint32_t cp = utf8_next(s, n, &i);
        const uint32_t k = char_class(cp);
        if (k == ATTN__WP_DROP) continue;
        if (k == ATTN__WP_SPACE) {
            FLUSH();
            continue;
        }
        uint32_t nf[3];
        const int m = normalise(cp, nf);
        if (k == ATTN__WP_CJK) {
            FLUSH();
            for (int j = 0; j < m; j++) {
                w += (size_t)utf8_put(nf[j], buf + w);
                chars++;
            }
            FLUSH();
            continue;
        }
        for (int j = 0; j < m; j++) {
            if (char_class(nf[j]) == ATTN__WP_PUNCT) {
                FLUSH();
                w = (size_t)utf8_put(nf[j], buf);
                chars = 1;
                FLUSH();
            } else {
                w += (size_t)utf8_put(nf[j], buf + w);
                chars++;
            }
        }
    }
    FLUSH();
#undef FLUSH
    return 0;
}

typedef struct basic_out {
    char *out;
    size_t cap, used;
    int64_t words;
} basic_out;

static int basic_collect(const char *word, size_t n, int64_t chars, int32_t special, void *user) {
    basic_out *b = user;
    if (b->used + n + 1 <= b->cap) {
        memcpy(b->out + b->used, word, n);
        b->out[b->used + n] = '\0';
    }
    b->used += n + 1;
    b->words++;
    return 0;
}

attn_status attn_wordpiece_basic(const char *text, size_t n, char *out, size_t cap,
                                 int64_t *n_words, size_t *n_bytes) {
    static const char fn[] = "attn_wordpiece_basic";
    if (!text || (!out && cap > 0) || !n_words || !n_bytes)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (n > ((size_t)1 << 30))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %zu bytes: at most 2^30", fn, n);
    char *buf = malloc(basic_buffer_size(n));
    if (!buf) return attn__error(ATTN_ERR_OOM, "%s: out of memory for %zu bytes", fn, n);
    basic_out b = {out, cap, 0, 0};
    basic_run(NULL, text, n, buf, basic_collect, &b);
    free(buf);
    *n_words = b.words;
    *n_bytes = b.used;
    if (b.used > cap)
        return attn__error(ATTN_ERR_SHAPE, "%s: the words need %zu bytes, the buffer has %zu", fn,
                           b.used, cap);
    return ATTN_OK;
}

/* ---- WordPiece ---------------------------------------------------------------------- */

typedef struct wp_state {
    const attn_wordpiece *wp;
    int32_t *ids;
    int32_t room;     /* pieces that fit (max_len - 2) */
    int32_t kept;     /* pieces stored */
    int64_t pieces;   /* pieces produced */
    char *scratch;    /* "##" + a word */
} wp_state;

static void emit(wp_state *st, int32_t id) {
    if (st->kept < st->room) st->ids[1 + st->kept++] = id;
    st->pieces++;
}

static int wordpiece_word(const char *word, size_t n, int64_t chars, int32_t special, void *user) {
    wp_state *st = user;
    const attn_wordpiece *wp = st->wp;
    if (special >= 0) {
        emit(st, special);
        return 0;
    }
    if (chars > ATTN_WORDPIECE_MAX_WORD_CHARS) {
        emit(st, wp->unk);
        return 0;
    }
    /* Greedy longest match; candidate ends stop at UTF-8 character
     * boundaries. The pieces go to a small buffer first: an unmatched
     * position makes the whole word [UNK]. */
    int32_t found[4 * ATTN_WORDPIECE_MAX_WORD_CHARS + 4];
    int nf = 0;
    size_t start = 0;
    memcpy(st->scratch, "##", 2);
    while (start < n) {
        int32_t id = -1;
        size_t end = n;
        while (end > start) {
            if (start == 0)
                id = lookup(wp, word, end);
            else {
                memcpy(st->scratch + 2, word + start, end - start);
                id = lookup(wp, st->scratch, end - start + 2);
            }
            if (id >= 0) break;
            do end--;
            while (end > start && ((unsigned char)word[end] & 0xC0) == 0x80);
        }
        if (id < 0) {
            emit(st, wp->unk);
            return 0;
        }
        found[nf++] = id;
        start = end;
    }
    for (int k = 0; k < nf; k++) emit(st, found[k]);
    return 0;
}

attn_status attn_wordpiece_encode(const attn_wordpiece *wp, const char *text, size_t n,
                                  int32_t max_len, int32_t *ids, int32_t *n_ids,
                                  int64_t *n_pieces) {
    static const char fn[] = "attn_wordpiece_encode";
    if (!wp || !text || !ids || !n_ids)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (max_len < 2)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: max_len %d: expected >= 2 ([CLS] and [SEP])",
                           fn, max_len);
    if (n > ((size_t)1 << 30))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %zu bytes: at most 2^30", fn, n);
    char *buf = malloc(2 * basic_buffer_size(n) + 8);
    if (!buf) return attn__error(ATTN_ERR_OOM, "%s: out of memory for %zu bytes", fn, n);
    wp_state st = {wp, ids, max_len - 2, 0, 0, buf + basic_buffer_size(n) + 4};
    ids[0] = wp->cls;
    basic_run(wp, text, n, buf, wordpiece_word, &st);
    free(buf);
    ids[1 + st.kept] = wp->sep;
    *n_ids = st.kept + 2;
    if (n_pieces) *n_pieces = st.pieces;
    return ATTN_OK;
}
