/* word2vec_internal.h: what the word2vec modules share (word2vec.c: the
 * vocabulary and training; word2vec_io.c: files; word2vec_eval.c: queries
 * and evaluation). */
#ifndef ATTN_WORD2VEC_INTERNAL_H
#define ATTN_WORD2VEC_INTERNAL_H

#include "../core/internal.h"
#include "attn/word2vec.h"

/* The word -> index table of a model: open addressing over m->words, a
 * power-of-two number of slots (at least twice V), -1 for an empty slot. */
typedef struct attn__w2v_hash {
    int64_t *slot;
    uint64_t mask;
} attn__w2v_hash;

uint64_t attn__w2v_hash_bytes(const char *s, size_t n);

/* Builds m->hash from m->words[0 .. V). Errors: ATTN_ERR_OOM, and
 * ATTN_ERR_FORMAT "fn: word 'x' appears twice" (a repeated word). */
attn_status attn__w2v_index(attn_w2v *m, const char *fn);

/* V x D floats, 64-byte aligned (free with free()), or NULL. */
float *attn__w2v_rows(int64_t V, int D);

/* An empty model of V words and D dimensions: words, counts (zeros) and in
 * (uninitialised) allocated, out and table NULL. */
attn_status attn__w2v_alloc(attn_w2v **out, int64_t V, int D, const char *fn);

#endif
