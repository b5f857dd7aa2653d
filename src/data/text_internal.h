/* text_internal.h: helpers shared by the text modules of src/data/ (UTF-8,
 * growable buffers, an integer hash map, the vocabulary's layout).
 * Private: not part of the API. */
#ifndef ATTN_TEXT_INTERNAL_H
#define ATTN_TEXT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "attn/text.h"

/* Number of code points of valid UTF-8 s[0 .. n-1]. */
size_t attn__utf8_count(const char *s, size_t n);

/* An open-addressing map from uint64 keys to int64 values. */
typedef struct attn__map {
    uint64_t *keys;
    int64_t *vals;
    unsigned char *used;
    size_t cap, n; /* cap is 0 or a power of two */
} attn__map;

/* The value of key, or NULL when absent. */
int64_t *attn__map_get(const attn__map *m, uint64_t key);
/* The value of key, inserted as 0 when absent; NULL when out of memory. */
int64_t *attn__map_put(attn__map *m, uint64_t key);
void attn__map_free(attn__map *m);

/* The vocabulary (include/attn/text.h). Token ids: the specials, then the
 * alphabet (alpha[i] has id ATTN_TOKEN_SPECIALS + i), then the merges. */
struct attn_vocab {
    attn_vocab_kind kind;
    int n_alpha;
    int32_t *alpha; /* increasing code points */
    int n_merges;
    int32_t *merges;   /* 2 * n_merges: left, right of each merge, in rank order */
    int size;          /* ATTN_TOKEN_SPECIALS + n_alpha + n_merges */
    char *piece_text;  /* every piece, NUL-terminated, back to back */
    size_t *piece_off; /* size offsets into piece_text */
    attn__map ranks;   /* BPE: (left << 32 | right) -> rank */
};

/* The id of a code point (binary search), ATTN_TOKEN_UNK when absent. */
int32_t attn__vocab_char_id(const attn_vocab *v, int32_t cp);

/* Fills pieces and ranks of a vocabulary whose kind, alphabet and merges are
 * set. Returns ATTN_OK, ATTN_ERR_FORMAT (a merge making a piece over the
 * limits, or repeating an earlier merge) or ATTN_ERR_OOM (message recorded).
 * path: the file the vocabulary was read from (its format messages then name
 * the file and the merge's line), or NULL for one built in memory. */
attn_status attn__vocab_finish(attn_vocab *v, const char *path);

/* Counts the code points of the texts into *counts (code point -> count);
 * invalid bytes are not counted. Returns ATTN_OK or an error. */
attn_status attn__count_chars(const char *const *texts, int64_t n_texts, attn__map *counts,
                              const char *who);

/* The sorted alphabet of the code points counted at least min_count times
 * (malloc'd into *alpha, its size into *n). */
attn_status attn__alphabet(const attn__map *counts, int min_count, int32_t **alpha, int *n,
                           const char *who);

/* BPE encoding of text[0 .. len-1] (bpe.c): calls emit(id, user) per token. */
attn_status attn__bpe_encode(const attn_vocab *v, const char *text, size_t len,
                             void (*emit)(int32_t id, void *user), void *user);

#endif
