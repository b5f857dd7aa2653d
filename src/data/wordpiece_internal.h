/* wordpiece_internal.h: the Unicode tables of the BERT basic tokenizer,
 * generated into wordpiece_unicode.c by tools/make_wordpiece_unicode.py. */
#ifndef ATTN_WORDPIECE_INTERNAL_H
#define ATTN_WORDPIECE_INTERNAL_H

#include <stdint.h>

enum { ATTN__WP_KEEP = 0, ATTN__WP_DROP = 1, ATTN__WP_SPACE = 2, ATTN__WP_PUNCT = 3, ATTN__WP_CJK = 4 };

typedef struct attn__wp_range {
    uint32_t lo, hi; /* inclusive */
    uint32_t cls;    /* ATTN__WP_DROP, _SPACE, _CJK (of an original code point)
                        or _PUNCT (of a normalised one) */
} attn__wp_range;

typedef struct attn__wp_mapping {
    uint32_t cp;     /* the code point */
    uint32_t off;    /* its normalised form: attn__wp_pool[off .. off + len - 1] */
    uint32_t len;    /* 0 to 3 */
} attn__wp_mapping;

extern const char attn__wp_unicode_version[];
extern const int attn__wp_n_class;
extern const attn__wp_range attn__wp_class[];
extern const int attn__wp_n_map;
extern const attn__wp_mapping attn__wp_map[];
extern const uint32_t attn__wp_pool[];

#endif
