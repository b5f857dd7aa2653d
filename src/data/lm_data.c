/* lm_data.c: token streams and batches for language models
 * (include/attn/lm_data.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/internal.h"
#include "attn/lm_data.h"
#include "attn/text.h"
#include "text_internal.h"

attn_status attn_lm_text_load(const char *path, char **text, size_t *len) {
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!path || !text || !len)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_lm_text_load: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f) return attn__error(ATTN_ERR_IO, "attn_lm_text_load: cannot open %s: %s", path,
                               strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return attn__error(ATTN_ERR_IO, "attn_lm_text_load: %s is not a regular file", path);
    }
    const size_t size = (size_t)sb.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        fclose(f);
        return attn__error(ATTN_ERR_OOM, "attn_lm_text_load: out of memory for %zu bytes of %s",
                           size, path);
    }
    const size_t got = fread(buf, 1, size, f);
    const int err = ferror(f);
    fclose(f);
    if (got != size || err) {
        free(buf);
        return attn__error(ATTN_ERR_IO, "attn_lm_text_load: short read of %s (%zu of %zu bytes)",
                           path, got, size);
    }
    buf[size] = '\0';
    if (size == 0) {
        free(buf);
        return attn__error(ATTN_ERR_FORMAT, "attn_lm_text_load: %s is empty", path);
    }
    const unsigned char *p = (const unsigned char *)buf;
    for (size_t i = 0; i < size;) {
        int32_t cp;
        const int k = attn__utf8_decode(p + i, size - i, &cp);
        if (cp <= 0) {
            free(buf);
            return attn__error(ATTN_ERR_FORMAT, "attn_lm_text_load: %s: %s at byte %zu", path,
                               cp == 0 ? "a NUL byte" : "invalid UTF-8", i);
        }
        i += (size_t)k;
    }
    *text = buf;
    *len = size;
    return ATTN_OK;
}

attn_status attn_lm_vocab_learn(const char *text, size_t len, attn_vocab_kind kind, int bpe_merges,
                                int min_count, attn_vocab **out) {
    if (!text || !out) return attn__error(ATTN_ERR_INVALID_ARG, "attn_lm_vocab_learn: NULL argument");
    if (kind != ATTN_VOCAB_CHAR && kind != ATTN_VOCAB_BPE)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_lm_vocab_learn: vocabulary kind %d, expected ATTN_VOCAB_CHAR or "
                           "ATTN_VOCAB_BPE", (int)kind);
    /* The learners read NUL-terminated texts: a text with an inner NUL (or
     * not terminated at len) is copied. */
    const char *t = text;
    char *copy = NULL;
    if (strlen(text) != len) {
        copy = malloc(len + 1);
        if (!copy) return attn__error(ATTN_ERR_OOM, "attn_lm_vocab_learn: out of memory");
        memcpy(copy, text, len);
        copy[len] = '\0';
        t = copy;
    }
    attn_status st = kind == ATTN_VOCAB_BPE ? attn_bpe_learn(&t, 1, bpe_merges, min_count, out)
                                            : attn_vocab_build_chars(&t, 1, min_count, out);
    free(copy);
    return st;
}

attn_status attn_lm_tokenize(const attn_vocab *vocab, const char *text, size_t len,
                             attn_lm_tokens *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!vocab || !text || !out)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_lm_tokenize: NULL argument");
    size_t n = 0;
    attn_status st = attn_vocab_encode(vocab, text, len, NULL, 0, &n);
    if (st != ATTN_OK && st != ATTN_ERR_INVALID_ARG) return st;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return attn__error(ATTN_ERR_OOM, "attn_lm_tokenize: out of memory for %zu ids", n);
    size_t m = 0;
    st = attn_vocab_encode(vocab, text, len, ids, n, &m);
    if (st != ATTN_OK) {
        free(ids);
        return st;
    }
    out->ids = ids;
    out->n = (int64_t)m;
    out->chars = (int64_t)attn__utf8_count(text, len);
    return ATTN_OK;
}

void attn_lm_tokens_free(attn_lm_tokens *t) {
    if (!t) return;
    free(t->ids);
    memset(t, 0, sizeof *t);
}

int64_t attn_lm_token_chars(const attn_vocab *vocab, const int32_t *ids, int64_t n) {
    if (!vocab || !ids) return 0;
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) {
        const int32_t id = ids[i];
        if (id == ATTN_TOKEN_UNK) {
            c += 1;
        } else if (id >= ATTN_TOKEN_SPECIALS) {
            const char *p = attn_vocab_piece(vocab, id);
            if (p) c += (int64_t)attn__utf8_count(p, strlen(p));
        }
    }
    return c;
}

int64_t attn_lm_window_start(uint64_t seed, int64_t step, int64_t row, int64_t B, int64_t n,
                             int64_t T) {
    if (T < 1 || n <= T || B < 1 || step < 0 || row < 0 || row >= B) return -1;
    const uint64_t i = (uint64_t)step * (uint64_t)B + (uint64_t)row + 1u;
    uint64_t z = seed + i * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (int64_t)(z % (uint64_t)(n - T));
}

attn_status attn_lm_batch(const attn_lm_tokens *tok, uint64_t seed, int64_t step, int64_t B,
                          int64_t T, int32_t *inputs, int32_t *targets) {
    if (!tok || !tok->ids || !inputs || !targets)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_lm_batch: NULL argument");
    if (B < 1 || T < 1 || step < 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_lm_batch: B %lld, T %lld, step %lld (B, T >= 1, step >= 0)",
                           (long long)B, (long long)T, (long long)step);
    if (tok->n <= T)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_lm_batch: a stream of %lld ids has no window of T + 1 = %lld",
                           (long long)tok->n, (long long)(T + 1));
    for (int64_t r = 0; r < B; r++) {
        const int64_t s = attn_lm_window_start(seed, step, r, B, tok->n, T);
        memcpy(inputs + r * T, tok->ids + s, (size_t)T * sizeof *inputs);
        memcpy(targets + r * T, tok->ids + s + 1, (size_t)T * sizeof *targets);
    }
    return ATTN_OK;
}

int64_t attn_lm_eval_windows(const attn_lm_tokens *tok, int64_t T) {
    if (!tok || T < 1 || tok->n < T + 1) return 0;
    return (tok->n - 1) / T;
}

attn_status attn_lm_eval_batch(const attn_lm_tokens *tok, int64_t T, int64_t first, int64_t B,
                               int32_t *inputs, int32_t *targets, int64_t *rows) {
    if (rows) *rows = 0;
    if (!tok || !inputs || !targets || !rows || (!tok->ids && tok->n > 0))
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_lm_eval_batch: NULL argument");
    if (B < 1 || T < 1 || first < 0)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_lm_eval_batch: B %lld, T %lld, first %lld (B, T >= 1, first >= 0)",
                           (long long)B, (long long)T, (long long)first);
    const int64_t nw = attn_lm_eval_windows(tok, T);
    int64_t r = 0;
    for (; r < B && first + r < nw; r++) {
        const int64_t s = (first + r) * T;
        memcpy(inputs + r * T, tok->ids + s, (size_t)T * sizeof *inputs);
        memcpy(targets + r * T, tok->ids + s + 1, (size_t)T * sizeof *targets);
    }
    *rows = r;
    return ATTN_OK;
}
