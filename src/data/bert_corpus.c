/* bert_corpus.c: the BERT's corpus: texts in the fortune format, encoded,
 * optionally labelled, cut to length or into pieces, as padded [CLS] batches
 * and a seeded row sampler (include/attn/bert_corpus.h).
 */
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/bert_corpus.h"
#include "attn/lm_data.h"
#include "attn/text.h"

void attn_bert_corpus_free(attn_bert_corpus *c) {
    if (!c) return;
    free(c->offsets);
    free(c->ids);
    free(c->labels);
    memset(c, 0, sizeof *c);
}

attn_status attn_bert_corpus_per_class(attn_bert_corpus *c, int n_classes, int64_t per_class) {
    static const char fn[] = "attn_bert_corpus_per_class";
    if (!c || !c->labels || !c->offsets || n_classes < 1 || per_class < 1)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL or unlabelled corpus, n_classes %d or per_class %lld < 1",
                           fn, n_classes, (long long)per_class);
    for (int64_t i = 0; i < c->n; i++)
        if (c->labels[i] < 0 || c->labels[i] >= n_classes)
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: label %d of sequence %lld outside [0, %d)", fn,
                               c->labels[i], (long long)i, n_classes);
    int64_t *count = calloc((size_t)n_classes, sizeof *count);
    if (!count) return attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    /* Compact in order: sequence i moves to slot k <= i, so its ids move
     * down (memmove) and never overwrite a sequence not yet read. */
    int64_t k = 0, at = 0;
    for (int64_t i = 0; i < c->n; i++) {
        const int32_t y = c->labels[i];
        if (count[y] >= per_class) continue;
        count[y]++;
        const int64_t a = c->offsets[i], len = c->offsets[i + 1] - a;
        if (at != a) memmove(c->ids + at, c->ids + a, (size_t)len * sizeof *c->ids);
        c->labels[k] = y;
        c->offsets[k] = at;
        at += len;
        k++;
    }
    c->offsets[k] = at;
    free(count);
    if (c->texts == c->n) c->texts = k;
    c->n = k;
    return ATTN_OK;
}

/* Reads the labels file: one integer per line. */
static attn_status read_labels(const char *path, int n_classes, int32_t **out, int64_t *n_out) {
    static const char fn[] = "attn_bert_corpus_load";
    char *text = NULL;
    size_t len = 0;
    attn_status st = attn_lm_text_load(path, &text, &len);
    if (st != ATTN_OK) return st;
    int64_t cap = 1024, n = 0;
    int32_t *lab = malloc((size_t)cap * sizeof *lab);
    char *p = text;
    while (lab && *p) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        char *end = NULL;
        const long v = strtol(p, &end, 10);
        if (end == p || *end || v < 0 || v >= n_classes) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s line %lld: '%.40s' is not a label in [0, %d)", fn,
                             path, (long long)n + 1, p, n_classes);
            break;
        }
        if (n == cap) {
            int32_t *q = realloc(lab, (size_t)(cap *= 2) * sizeof *lab);
            if (!q) {
                st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
                break;
            }
            lab = q;
        }
        lab[n++] = (int32_t)v;
        if (!nl) break;
        p = nl + 1;
    }
    free(text);
    if (st == ATTN_OK && !lab) st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    if (st != ATTN_OK) {
        free(lab);
        return st;
    }
    *out = lab;
    *n_out = n;
    return ATTN_OK;
}

attn_status attn_bert_corpus_load(const attn_vocab *vocab, const char *path,
                                  const char *labels_path, int n_classes, int64_t max_tokens,
                                  int chunk, attn_bert_corpus *out) {
    static const char fn[] = "attn_bert_corpus_load";
    if (out) memset(out, 0, sizeof *out);
    if (!vocab || !path || !out || max_tokens < 1)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument or max_tokens %lld < 1", fn,
                           (long long)max_tokens);
    char *text = NULL;
    size_t len = 0;
    attn_status st = attn_lm_text_load(path, &text, &len);
    if (st != ATTN_OK) return st;
    int32_t *file_labels = NULL;
    int64_t n_labels = 0;
    if (labels_path) {
        st = read_labels(labels_path, n_classes, &file_labels, &n_labels);
        if (st != ATTN_OK) {
            free(text);
            return st;
        }
    }
    /* Token ids never outnumber the bytes. */
    int64_t cap_seq = 1024;
    int64_t *offsets = malloc((size_t)(cap_seq + 1) * sizeof *offsets);
    int32_t *labels = labels_path ? malloc((size_t)cap_seq * sizeof *labels) : NULL;
    int32_t *ids = malloc((len + 1) * sizeof *ids);
    int64_t n = 0, texts = 0, used = 0;
    if (!offsets || !ids || (labels_path && !labels)) st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    if (offsets) offsets[0] = 0;
    /* Texts end at lines that are exactly "%". */
    size_t start = 0, i = 0;
    while (st == ATTN_OK && i < len) {
        size_t eol = i;
        while (eol < len && text[eol] != '\n') eol++;
        const int sep = eol - i == 1 && text[i] == '%';
        if (sep) {
            /* The text is text[start .. i-1] without its last newline. */
            size_t tl = i > start ? i - 1 - start : 0;
            if (tl > 0) {
                if (labels_path && texts >= n_labels) {
                    st = attn__error(ATTN_ERR_FORMAT, "%s: %s has more texts than %s has labels (%lld)",
                                     fn, path, labels_path, (long long)n_labels);
                    break;
                }
                size_t k = 0;
                st = attn_vocab_encode(vocab, text + start, tl, ids + used, len + 1 - (size_t)used, &k);
                if (st != ATTN_OK) break;
                int64_t kept = chunk ? (int64_t)k : ((int64_t)k < max_tokens ? (int64_t)k : max_tokens);
                /* Pieces of at most max_tokens ids (one piece without chunking). */
                for (int64_t a = 0; a < kept; a += max_tokens) {
                    if (n == cap_seq) {
                        cap_seq *= 2;
                        int64_t *o2 = realloc(offsets, (size_t)(cap_seq + 1) * sizeof *offsets);
                        if (o2) offsets = o2;
                        int32_t *l2 = labels ? realloc(labels, (size_t)cap_seq * sizeof *labels) : NULL;
                        if (l2) labels = l2;
                        if (!o2 || (labels_path && !l2)) {
                            st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
                            break;
                        }
                    }
                    const int64_t piece = kept - a < max_tokens ? kept - a : max_tokens;
                    offsets[n + 1] = offsets[n] + piece;
                    if (labels) labels[n] = file_labels[texts];
                    n++;
                }
                used += kept;
                texts++;
            }
            start = eol + 1;
        }
        i = eol + 1;
    }
    if (st == ATTN_OK && start < len) {
        /* Text after the last '%' line. */
        int blank = 1;
        for (size_t j = start; j < len; j++) blank &= text[j] == '\n';
        if (!blank)
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s does not end with a '%%' line", fn, path);
    }
    if (st == ATTN_OK && n == 0) st = attn__error(ATTN_ERR_FORMAT, "%s: %s holds no text", fn, path);
    if (st == ATTN_OK && labels_path && texts != n_labels)
        st = attn__error(ATTN_ERR_FORMAT, "%s: %s has %lld texts, %s has %lld labels", fn, path,
                         (long long)texts, labels_path, (long long)n_labels);
    free(text);
    free(file_labels);
    if (st != ATTN_OK) {
        free(offsets);
        free(ids);
        free(labels);
        return st;
    }
    out->n = n;
    out->offsets = offsets;
    out->ids = ids;
    out->labels = labels;
    out->texts = texts;
    return ATTN_OK;
}

attn_status attn_bert_batch(const attn_bert_corpus *c, const int64_t *rows, int64_t B, int64_t T,
                            int32_t *ids, int32_t *lengths, int32_t *labels) {
    static const char fn[] = "attn_bert_batch";
    if (!c || !rows || !ids || !lengths || B < 1 || T < 2)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument, B %lld (>= 1) or T %lld (>= 2)",
                           fn, (long long)B, (long long)T);
    if (labels && !c->labels)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: labels asked of an unlabelled corpus", fn);
    for (int64_t r = 0; r < B; r++)
        if (rows[r] < 0 || rows[r] >= c->n)
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: rows[%lld] = %lld outside [0, %lld)", fn,
                               (long long)r, (long long)rows[r], (long long)c->n);
    for (int64_t r = 0; r < B; r++) {
        const int64_t a = c->offsets[rows[r]], len = c->offsets[rows[r] + 1] - a;
        const int64_t k = len < T - 1 ? len : T - 1;
        int32_t *row = ids + r * T;
        row[0] = ATTN_BERT_CLS;
        memcpy(row + 1, c->ids + a, (size_t)k * sizeof *row);
        for (int64_t t = 1 + k; t < T; t++) row[t] = ATTN_TOKEN_PAD;
        lengths[r] = (int32_t)(1 + k);
        if (labels) labels[r] = c->labels[rows[r]];
    }
    return ATTN_OK;
}

void attn_bert_sample_rows(uint64_t seed, int64_t step, int64_t B, int64_t n, int64_t *rows) {
    if (!rows || n < 1 || B < 1 || step < 0) return;
    for (int64_t r = 0; r < B; r++) {
        uint64_t z = seed + ((uint64_t)step * (uint64_t)B + (uint64_t)r + 1) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z = z ^ (z >> 31);
        rows[r] = (int64_t)(z % (uint64_t)n);
    }
}
