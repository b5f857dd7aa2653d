/* text_util.c: UTF-8 decoding and counting as the tokenisers want it, a
 * hash map, and the split rule shared by the text data sets (include/attn/text.h, src/data/text_internal.h). */
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

size_t attn__utf8_count(const char *s, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) count++;
    return count;
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
