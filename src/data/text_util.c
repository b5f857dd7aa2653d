/* text_util.c: UTF-8, buffers, and the split rule shared by the text data
 * sets (include/attn/text.h, src/data/text_internal.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "text_internal.h"
#include "attn/text.h"

const char *attn_data_split_name(attn_data_split split) {
    switch (split) {
    case ATTN_SPLIT_TRAIN: return "train";
    case ATTN_SPLIT_VALID: return "valid";
    case ATTN_SPLIT_TEST: return "test";
    default: return "?";
    }
}

uint64_t attn_fnv1a64(const void *bytes, size_t n) {
    const unsigned char *p = bytes;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

attn_data_split attn_data_split_of(const void *key, size_t n) {
    unsigned bucket = (unsigned)((attn_fnv1a64(key, n) >> 32) % 100u);
    if (bucket < 90) return ATTN_SPLIT_TRAIN;
    if (bucket < 95) return ATTN_SPLIT_VALID;
    return ATTN_SPLIT_TEST;
}

int attn__utf8_decode(const unsigned char *s, size_t n, int32_t *cp) {
    uint32_t v;
    int len = attn__utf8_next(s, n, 0, &v);
    *cp = len ? (int32_t)v : -1;
    return len ? len : 1;
}

int attn__utf8_encode(int32_t cp, char *out) {
    uint32_t v = (uint32_t)cp;
    if (cp < 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    if (v < 0x80) {
        out[0] = (char)v;
        return 1;
    }
    if (v < 0x800) {
        out[0] = (char)(0xC0 | v >> 6);
        out[1] = (char)(0x80 | (v & 0x3F));
        return 2;
    }
    if (v < 0x10000) {
        out[0] = (char)(0xE0 | v >> 12);
        out[1] = (char)(0x80 | (v >> 6 & 0x3F));
        out[2] = (char)(0x80 | (v & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | v >> 18);
    out[1] = (char)(0x80 | (v >> 12 & 0x3F));
    out[2] = (char)(0x80 | (v >> 6 & 0x3F));
    out[3] = (char)(0x80 | (v & 0x3F));
    return 4;
}

int attn__utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        int32_t cp;
        int k = attn__utf8_decode(p + i, n - i, &cp);
        if (cp < 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

size_t attn__utf8_count(const char *s, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) count++;
    return count;
}

int attn__grow(void **items, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2) return -1;
        c *= 2;
    }
    if (elem && c > SIZE_MAX / elem) return -1;
    void *p = realloc(*items, c * elem);
    if (!p) return -1;
    *items = p;
    *cap = c;
    return 0;
}

int attn__buf_put(attn__buf *b, const void *bytes, size_t n) {
    if (n > SIZE_MAX - b->len - 1) return -1;
    void *d = b->data;
    if (attn__grow(&d, &b->cap, b->len + n + 1, 1) != 0) return -1;
    b->data = d;
    if (n) memcpy(b->data + b->len, bytes, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

void attn__buf_free(attn__buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* splitmix64's finaliser: the low bits of the map's index must depend on
 * every bit of the key. */
static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

int64_t *attn__map_get(const attn__map *m, uint64_t key) {
    if (m->cap == 0) return NULL;
    size_t i = (size_t)mix64(key) & (m->cap - 1);
    while (m->used[i]) {
        if (m->keys[i] == key) return &m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    return NULL;
}

int64_t *attn__map_put(attn__map *m, uint64_t key) {
    if ((m->n + 1) * 2 > m->cap) { /* load factor at most 1/2 */
        size_t cap = m->cap ? m->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(uint64_t)) return NULL;
        attn__map g = {calloc(cap, sizeof(uint64_t)), calloc(cap, sizeof(int64_t)), calloc(cap, 1),
                       cap, 0};
        if (!g.keys || !g.vals || !g.used) {
            attn__map_free(&g);
            return NULL;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->used[i]) continue;
            size_t j = (size_t)mix64(m->keys[i]) & (cap - 1);
            while (g.used[j]) j = (j + 1) & (cap - 1);
            g.used[j] = 1;
            g.keys[j] = m->keys[i];
            g.vals[j] = m->vals[i];
        }
        g.n = m->n;
        attn__map_free(m);
        *m = g;
    }
    size_t i = (size_t)mix64(key) & (m->cap - 1);
    while (m->used[i]) {
        if (m->keys[i] == key) return &m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    m->used[i] = 1;
    m->keys[i] = key;
    m->vals[i] = 0;
    m->n++;
    return &m->vals[i];
}

void attn__map_free(attn__map *m) {
    free(m->keys);
    free(m->vals);
    free(m->used);
    memset(m, 0, sizeof *m);
}
