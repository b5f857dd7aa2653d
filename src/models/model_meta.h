/* model_meta.h: private helpers for the configuration metadata that the
 * single-stack models (bert.c, gpt.c) write into and read from their
 * safetensors files: the key/value slots, the read loop with its error
 * messages, and the save with the caller's extra entries. Not installed. */
#ifndef ATTN_MODELS_MODEL_META_H
#define ATTN_MODELS_MODEL_META_H

#include "../core/internal.h"
#include "attn/safetensors.h"

/* Points kv[i] at keys[i] and at a 32-byte value slot buf + 32 i, which
 * v[i] also receives, for i < n (buf holds n * 32 bytes). */
void attn__meta_slots(attn_kv *kv, char *buf, char **v, const char *const *keys, int n);

/* Parses the value s of keys[i] into cfg: 0 when done, 1 when s is not a
 * number, 2 when s is no known value. */
typedef int (*attn__meta_parse_fn)(void *cfg, int i, const char *s);

/* Opens path and parses the entries keys[0..n) with parse (in the C locale).
 * Errors, all under the name fn: ATTN_ERR_FORMAT "has no metadata entry ...
 * (not a <what> file)", "... is not a number" (parse 1), "key = 'value'"
 * (parse 2); those of attn_safetensors_open. */
attn_status attn__meta_load(const char *fn, const char *what, const char *path,
                            const char *const *keys, int n, attn__meta_parse_fn parse, void *cfg);

/* Integer value: 0 with *x when s is all a number in [0, INT32_MAX], else 1. */
int attn__meta_int(const char *s, long long *x);
/* Float value: 0 with *x when s is all a number, else 1. */
int attn__meta_float(const char *s, float *x);

/* A tensor that a configuration implies: name and 2-D shape. */
typedef struct attn__meta_shape {
    const char *name;
    int64_t d0, d1;
} attn__meta_shape;

/* Checks that the file at path holds each want[i] with exactly its shape,
 * before a model is built from the file's configuration: the sizes read from
 * the metadata (vocabulary, width, layers, ...) are then bounded by the
 * file's own tensors, and a few bytes of metadata cannot make attn allocate
 * gigabytes or build 100,000 layers only to reject the file afterwards.
 * Errors, under the name fn: ATTN_ERR_FORMAT (a tensor is missing), ATTN_ERR_SHAPE
 * (another shape), those of attn_safetensors_open. */
attn_status attn__meta_check_shapes(const char *fn, const char *path, const attn__meta_shape *want,
                                    int n);

/* Saves ps to path with the metadata kv[0..n_cfg) (room for n_cfg + n_meta
 * entries) followed by meta[0..n_meta). */
attn_status attn__meta_save(const char *path, const attn_params *ps, attn_kv *kv, int n_cfg,
                            const attn_kv *meta, int n_meta);

#endif
