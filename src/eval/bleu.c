/* bleu.c: sacrebleu-compatible BLEU (13a tokenisation, "exp" smoothing),
 * exact match and character error rate. Contracts: include/attn/eval.h.
 *
 * The 13a tokenizer is sacrebleu's Tokenizer13a followed by its
 * TokenizerRegexp, rewritten as byte passes over UTF-8. Each regular
 * expression of sacrebleu has a fixed width and is applied by re.sub, which
 * scans left to right and resumes after each match; the passes below do the
 * same, so overlapping cases ("a..b", "1.-2") come out identical. Working on
 * bytes instead of code points gives the same result for valid UTF-8: every
 * pattern byte is ASCII, and an ASCII byte is never part of a multi-byte
 * character.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/eval.h"

/* ---- whitespace as Python's str.split() sees it ---------------------------------- */

/* The byte length of the whitespace character that starts at s[i] (0 if
 * none). The set is str.isspace(): ASCII \t..\r, \x1c..\x1f, space, and the
 * Unicode spaces listed in eval.h, in their UTF-8 encodings. */
static size_t ws_at(const unsigned char *s, size_t n, size_t i) {
    unsigned c = s[i];
    if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20)) return 1;
    if (c == 0xC2 && i + 1 < n && (s[i + 1] == 0x85 || s[i + 1] == 0xA0)) return 2;
    if (i + 2 >= n) return 0;
    unsigned c1 = s[i + 1], c2 = s[i + 2];
    if (c == 0xE1 && c1 == 0x9A && c2 == 0x80) return 3; /* U+1680 */
    if (c == 0xE2 && c1 == 0x80 &&
        (c2 <= 0x8A || c2 == 0xA8 || c2 == 0xA9 || c2 == 0xAF) && c2 >= 0x80)
        return 3; /* U+2000..U+200A, U+2028, U+2029, U+202F */
    if (c == 0xE2 && c1 == 0x81 && c2 == 0x9F) return 3; /* U+205F */
    if (c == 0xE3 && c1 == 0x80 && c2 == 0x80) return 3; /* U+3000 */
    return 0;
}

/* The byte length of the whitespace character that ends s[0..n) (0 if none),
 * for str.rstrip(). */
static size_t ws_before(const unsigned char *s, size_t n) {
    for (size_t k = 1; k <= 3 && k <= n; k++)
        if (ws_at(s, n, n - k) == k) return k;
    return 0;
}

/* ---- the 13a tokenizer --------------------------------------------------------------- */

/* out = in with every non-overlapping occurrence of pat replaced by rep,
 * scanning left to right (Python's str.replace). */
static void replace_all(attn__strbuf *out, const char *in, size_t n, const char *pat,
                        const char *rep) {
    size_t pn = strlen(pat), rn = strlen(rep);
    out->len = 0;
    attn__sb_reserve(out, n);
    size_t i = 0;
    while (i < n) {
        if (i + pn <= n && memcmp(in + i, pat, pn) == 0) {
            attn__sb_put(out, rep, rn);
            i += pn;
        } else {
            attn__sb_putc(out, in[i]);
            i++;
        }
    }
}

/* The class of sacrebleu's first regex, [\{-\~\[-\` -\&\(-\+\:-\@\/]: the
 * ASCII punctuation it surrounds with spaces (not ' - . , or digits). */
static int tok_punct(unsigned char c) {
    return (c >= 0x7B && c <= 0x7E) || (c >= 0x5B && c <= 0x60) || (c >= 0x20 && c <= 0x26) ||
           (c >= 0x28 && c <= 0x2B) || (c >= 0x3A && c <= 0x40) || c == '/';
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_dot_comma(unsigned char c) { return c == '.' || c == ','; }

/* Runs the tokenizer; the result (tokens joined by single spaces) is left in
 * *res. Returns 0, or -1 when out of memory. */
static int tokenize(const char *line, attn__strbuf *res) {
    attn__strbuf a = {0}, b = {0};
    size_t n = strlen(line);
    while (n > 0) { /* sent.rstrip() */
        size_t k = ws_before((const unsigned char *)line, n);
        if (!k) break;
        n -= k;
    }
    /* Tokenizer13a: the language-independent part, in sacrebleu's order. */
    static const char *const subs[][2] = {
        {"<skipped>", ""}, {"-\n", ""},   {"\n", " "},  {"&quot;", "\""},
        {"&amp;", "&"},    {"&lt;", "<"}, {"&gt;", ">"},
    };
    replace_all(&a, line, n, subs[0][0], subs[0][1]);
    for (size_t k = 1; k < sizeof subs / sizeof subs[0]; k++) {
        replace_all(&b, a.p, a.len, subs[k][0], subs[k][1]);
        attn__strbuf t = a;
        a = b;
        b = t;
    }
    /* f' {line} ', then regex 1: ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> ' \1 ' */
    b.len = 0;
    attn__sb_putc(&b, ' ');
    for (size_t i = 0; i < a.len; i++) {
        unsigned char c = (unsigned char)a.p[i];
        if (tok_punct(c)) {
            char r[3] = {' ', (char)c, ' '};
            attn__sb_put(&b, r, 3);
        } else {
            attn__sb_putc(&b, (char)c);
        }
    }
    attn__sb_putc(&b, ' ');
    /* regex 2: ([^0-9])([\.,]) -> '\1 \2 ' (period and comma unless preceded
     * by a digit) */
    a.len = 0;
    for (size_t i = 0; i < b.len;) {
        unsigned char c = (unsigned char)b.p[i];
        if (i + 1 < b.len && !is_digit(c) && is_dot_comma((unsigned char)b.p[i + 1])) {
            char r[4] = {(char)c, ' ', b.p[i + 1], ' '};
            attn__sb_put(&a, r, 4);
            i += 2;
        } else {
            attn__sb_putc(&a, (char)c);
            i++;
        }
    }
    /* regex 3: ([\.,])([^0-9]) -> ' \1 \2' (unless followed by a digit) */
    b.len = 0;
    for (size_t i = 0; i < a.len;) {
        unsigned char c = (unsigned char)a.p[i];
        if (i + 1 < a.len && is_dot_comma(c) && !is_digit((unsigned char)a.p[i + 1])) {
            char r[4] = {' ', (char)c, ' ', a.p[i + 1]};
            attn__sb_put(&b, r, 4);
            i += 2;
        } else {
            attn__sb_putc(&b, (char)c);
            i++;
        }
    }
    /* regex 4: ([0-9])(-) -> '\1 \2 ' (a dash after a digit) */
    a.len = 0;
    for (size_t i = 0; i < b.len;) {
        unsigned char c = (unsigned char)b.p[i];
        if (i + 1 < b.len && is_digit(c) && b.p[i + 1] == '-') {
            char r[4] = {(char)c, ' ', '-', ' '};
            attn__sb_put(&a, r, 4);
            i += 2;
        } else {
            attn__sb_putc(&a, (char)c);
            i++;
        }
    }
    /* ' '.join(line.split()) */
    res->len = 0;
    attn__sb_put(res, "", 0);
    const unsigned char *s = (const unsigned char *)a.p;
    for (size_t i = 0; i < a.len;) {
        size_t w = ws_at(s, a.len, i);
        if (w) {
            i += w;
            continue;
        }
        size_t j = i;
        while (j < a.len && !ws_at(s, a.len, j)) j++;
        if (res->len) attn__sb_putc(res, ' ');
        attn__sb_put(res, a.p + i, j - i);
        i = j;
    }
    int oom = a.oom || b.oom || res->oom;
    attn__sb_free(&a);
    attn__sb_free(&b);
    return oom ? -1 : 0;
}

attn_status attn_tokenize_13a(const char *line, char **out) {
    if (!line || !out)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_tokenize_13a: %s is NULL",
                           !line ? "line" : "out");
    attn__strbuf r = {0};
    if (tokenize(line, &r) != 0) {
        free(r.p);
        return attn__error(ATTN_ERR_OOM, "attn_tokenize_13a: out of memory tokenizing a line "
                           "of %zu bytes", strlen(line));
    }
    *out = r.p;
    return ATTN_OK;
}

/* ---- n-gram statistics ---------------------------------------------------------- */

typedef struct tok {
    const char *p;
    size_t len;
} tok;

/* Splits a tokenised line (single spaces) into tokens; returns the count, or
 * -1 when out of memory. *toks is malloc'ed (NULL when there are none). */
static int64_t split_tokens(const attn__strbuf *line, tok **toks) {
    *toks = NULL;
    if (line->len == 0) return 0;
    int64_t n = 1;
    for (size_t i = 0; i < line->len; i++) n += line->p[i] == ' ';
    tok *t = malloc((size_t)n * sizeof *t);
    if (!t) return -1;
    int64_t k = 0;
    size_t start = 0;
    for (size_t i = 0; i <= line->len; i++) {
        if (i == line->len || line->p[i] == ' ') {
            t[k].p = line->p + start;
            t[k].len = i - start;
            k++;
            start = i + 1;
        }
    }
    *toks = t;
    return n;
}

typedef struct slot {
    const tok *first; /* the n-gram's first token (in hyp or ref), NULL if empty */
    uint64_t hash;
    int64_t ref_count, hyp_count;
} slot;

static uint64_t ngram_hash(const tok *t, int n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (int k = 0; k < n; k++) {
        for (size_t i = 0; i < t[k].len; i++) {
            h ^= (unsigned char)t[k].p[i];
            h *= 1099511628211ull;
        }
        h ^= 0xFF; /* separator: never a byte of valid UTF-8 */
        h *= 1099511628211ull;
    }
    return h;
}

static int ngram_eq(const tok *a, const tok *b, int n) {
    for (int k = 0; k < n; k++)
        if (a[k].len != b[k].len || memcmp(a[k].p, b[k].p, a[k].len) != 0) return 0;
    return 1;
}

/* The slot of the n-gram starting at t (found or newly claimed). The table
 * never fills: its size is at least twice the number of n-grams inserted. */
static slot *ngram_slot(slot *tab, size_t mask, const tok *t, int n) {
    uint64_t h = ngram_hash(t, n);
    size_t i = (size_t)(h ^ (h >> 29)) & mask;
    for (;;) {
        slot *s = &tab[i];
        if (!s->first) {
            s->first = t;
            s->hash = h;
            return s;
        }
        if (s->hash == h && ngram_eq(s->first, t, n)) return s;
        i = (i + 1) & mask;
    }
}

attn_status attn_bleu_stats_add(attn_bleu_stats *stats, const char *hyp, const char *ref) {
    static const char *fn = "attn_bleu_stats_add";
    if (!stats || !hyp || !ref)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %s is NULL", fn,
                           !stats ? "stats" : !hyp ? "hyp" : "ref");
    attn__strbuf th = {0}, tr = {0};
    tok *h = NULL, *r = NULL;
    slot *tab = NULL;
    attn_status st = ATTN_OK;
    int64_t nh = 0, nr = 0;
    if (tokenize(hyp, &th) != 0 || tokenize(ref, &tr) != 0 || (nh = split_tokens(&th, &h)) < 0 ||
        (nr = split_tokens(&tr, &r)) < 0) {
        st = attn__error(ATTN_ERR_OOM, "%s: out of memory tokenizing a pair of %zu and %zu "
                         "bytes", fn, strlen(hyp), strlen(ref));
        goto done;
    }
    attn_bleu_stats add = {0};
    add.sys_len = nh;
    add.ref_len = nr; /* one reference: the closest reference length is its length */
    size_t cap = 16;
    while (cap < 2 * (size_t)(nh + nr)) cap *= 2;
    tab = malloc(cap * sizeof *tab);
    if (!tab) {
        st = attn__error(ATTN_ERR_OOM, "%s: out of memory counting n-grams (%lld and %lld "
                         "tokens)", fn, (long long)nh, (long long)nr);
        goto done;
    }
    for (int n = 1; n <= ATTN_BLEU_ORDER; n++) {
        memset(tab, 0, cap * sizeof *tab);
        for (int64_t i = 0; i + n <= nr; i++) ngram_slot(tab, cap - 1, r + i, n)->ref_count++;
        for (int64_t i = 0; i + n <= nh; i++) ngram_slot(tab, cap - 1, h + i, n)->hyp_count++;
        for (size_t i = 0; i < cap; i++) {
            const slot *s = &tab[i];
            if (!s->first || !s->hyp_count) continue;
            add.total[n - 1] += s->hyp_count;
            add.correct[n - 1] += s->hyp_count < s->ref_count ? s->hyp_count : s->ref_count;
        }
    }
    stats->sys_len += add.sys_len;
    stats->ref_len += add.ref_len;
    for (int k = 0; k < ATTN_BLEU_ORDER; k++) {
        stats->correct[k] += add.correct[k];
        stats->total[k] += add.total[k];
    }
done:
    free(tab);
    free(h);
    free(r);
    attn__sb_free(&th);
    attn__sb_free(&tr);
    return st;
}

attn_status attn_bleu_compute(const attn_bleu_stats *stats, int effective_order,
                              attn_bleu_score *out) {
    if (!out) return attn__error(ATTN_ERR_INVALID_ARG, "attn_bleu_compute: out is NULL");
    memset(out, 0, sizeof *out);
    if (!stats) return attn__error(ATTN_ERR_INVALID_ARG, "attn_bleu_compute: stats is NULL");
    int bad = stats->sys_len < 0 || stats->ref_len < 0;
    for (int k = 0; k < ATTN_BLEU_ORDER; k++)
        bad |= stats->correct[k] < 0 || stats->total[k] < stats->correct[k];
    if (bad)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_bleu_compute: inconsistent statistics "
                           "(sys_len %lld, ref_len %lld, correct[0] %lld, total[0] %lld): "
                           "counts must be >= 0 and correct <= total",
                           (long long)stats->sys_len, (long long)stats->ref_len,
                           (long long)stats->correct[0], (long long)stats->total[0]);
    out->stats = *stats;
    double sys = (double)stats->sys_len, ref = (double)stats->ref_len;
    out->ratio = stats->ref_len ? sys / ref : 0.0;
    /* The operations below are sacrebleu's BLEU.compute_bleu, in its order,
     * so the double results agree to the last bits. */
    out->bp = 1.0;
    if (stats->sys_len < stats->ref_len) out->bp = stats->sys_len > 0 ? exp(1.0 - ref / sys) : 0.0;
    int any = 0;
    for (int k = 0; k < ATTN_BLEU_ORDER; k++) any |= stats->correct[k] != 0;
    if (!any) return ATTN_OK; /* no match at all: 0 */
    double smooth = 1.0;
    int eff = ATTN_BLEU_ORDER;
    for (int n = 1; n <= ATTN_BLEU_ORDER; n++) {
        int64_t c = stats->correct[n - 1], t = stats->total[n - 1];
        if (t == 0) break;
        if (effective_order) eff = n;
        if (c == 0) {
            smooth *= 2; /* "exp" smoothing */
            out->precision[n - 1] = 100.0 / (smooth * (double)t);
        } else {
            out->precision[n - 1] = 100.0 * (double)c / (double)t;
        }
    }
    double sum = 0.0;
    for (int k = 0; k < eff; k++) /* sacrebleu's my_log: log(0) taken as -9999999999 */
        sum += out->precision[k] > 0 ? log(out->precision[k]) : -9999999999.0;
    out->score = out->bp * exp(sum / eff);
    return ATTN_OK;
}

attn_status attn_sentence_bleu(const char *hyp, const char *ref, attn_bleu_score *out) {
    if (!out) return attn__error(ATTN_ERR_INVALID_ARG, "attn_sentence_bleu: out is NULL");
    memset(out, 0, sizeof *out);
    attn_bleu_stats s = {0};
    attn_status st = attn_bleu_stats_add(&s, hyp, ref);
    if (st) return st;
    return attn_bleu_compute(&s, 1, out);
}

/* ---- character edit distance ------------------------------------------------------ */

/* Decodes strict UTF-8 (no overlongs, surrogates or values above U+10FFFF)
 * into code points; an invalid byte becomes 0x110000 + byte, distinct from
 * every character. Returns the count, or -1 when out of memory. */
static int64_t decode_utf8(const char *str, uint32_t **out) {
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    uint32_t *cp = malloc((n ? n : 1) * sizeof *cp);
    if (!cp) return -1;
    int64_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t v;
        int len = attn__utf8_next(s, n, i, &v);
        if (len) {
            cp[k++] = v;
            i += (size_t)len;
        } else {
            cp[k++] = 0x110000u + s[i];
            i++;
        }
    }
    *out = cp;
    return k;
}

attn_status attn_char_edit_distance(const char *a, const char *b, int64_t *dist,
                                    int64_t *n_ref_chars) {
    static const char *fn = "attn_char_edit_distance";
    if (!a || !b || !dist)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %s is NULL", fn,
                           !a ? "a" : !b ? "b" : "dist");
    uint32_t *x = NULL, *y = NULL;
    int64_t *row = NULL;
    int64_t nx = decode_utf8(a, &x), ny = nx < 0 ? -1 : decode_utf8(b, &y);
    if (nx < 0 || ny < 0) goto oom;
    if (n_ref_chars) *n_ref_chars = ny;
    /* Rows run over the shorter string: memory O(min(nx, ny)). Distance is
     * symmetric, so swapping the roles changes nothing. */
    const uint32_t *s = x, *t = y; /* t indexes the row */
    int64_t ns = nx, nt = ny;
    if (nt > ns) {
        s = y;
        t = x;
        ns = ny;
        nt = nx;
    }
    row = malloc((size_t)(nt + 1) * sizeof *row);
    if (!row) goto oom;
    for (int64_t j = 0; j <= nt; j++) row[j] = j;
    for (int64_t i = 1; i <= ns; i++) {
        int64_t diag = row[0]; /* D[i-1][j-1] */
        row[0] = i;
        for (int64_t j = 1; j <= nt; j++) {
            int64_t up = row[j]; /* D[i-1][j] */
            int64_t best = diag + (s[i - 1] != t[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    *dist = row[nt];
    free(row);
    free(x);
    free(y);
    return ATTN_OK;
oom:
    free(row);
    free(x);
    free(y);
    return attn__error(ATTN_ERR_OOM, "%s: out of memory for strings of %zu and %zu bytes", fn,
                       strlen(a), strlen(b));
}

/* ---- the accumulator --------------------------------------------------------------- */

void attn_eval_init(attn_eval *ev) {
    if (ev) memset(ev, 0, sizeof *ev);
}

attn_status attn_eval_add(attn_eval *ev, const char *hyp, const char *ref) {
    if (!ev || !hyp || !ref)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_eval_add: %s is NULL",
                           !ev ? "ev" : !hyp ? "hyp" : "ref");
    attn_bleu_stats s = ev->bleu;
    attn_status st = attn_bleu_stats_add(&s, hyp, ref);
    if (st) return st;
    int64_t d = 0, nref = 0;
    st = attn_char_edit_distance(hyp, ref, &d, &nref);
    if (st) return st;
    ev->bleu = s;
    ev->n++;
    ev->exact += strcmp(hyp, ref) == 0;
    ev->char_edits += d;
    ev->ref_chars += nref;
    return ATTN_OK;
}

void attn_eval_merge(attn_eval *dst, const attn_eval *src) {
    if (!dst || !src) return;
    dst->n += src->n;
    dst->exact += src->exact;
    dst->char_edits += src->char_edits;
    dst->ref_chars += src->ref_chars;
    dst->bleu.sys_len += src->bleu.sys_len;
    dst->bleu.ref_len += src->bleu.ref_len;
    for (int k = 0; k < ATTN_BLEU_ORDER; k++) {
        dst->bleu.correct[k] += src->bleu.correct[k];
        dst->bleu.total[k] += src->bleu.total[k];
    }
}

attn_status attn_eval_bleu(const attn_eval *ev, attn_bleu_score *out) {
    if (!ev) {
        if (out) memset(out, 0, sizeof *out);
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_eval_bleu: ev is NULL");
    }
    return attn_bleu_compute(&ev->bleu, 0, out);
}

double attn_eval_exact_match(const attn_eval *ev) {
    if (!ev || ev->n <= 0) return 0.0;
    return (double)ev->exact / (double)ev->n;
}

double attn_eval_cer(const attn_eval *ev) {
    if (!ev) return 0.0;
    return (double)ev->char_edits / (double)(ev->ref_chars > 0 ? ev->ref_chars : 1);
}
