/* model_meta.h: private helpers for the configuration metadata that the
 * single-stack models (bert.c, gpt.c) write into and read from their
 * safetensors files: a table of fields per model, written and read by the
 * same two loops (with their error messages), and the save with the caller's
 * extra entries. Not installed. */
#ifndef ATTN_MODELS_MODEL_META_H
#define ATTN_MODELS_MODEL_META_H

#include <stddef.h>

#include "../core/internal.h"
#include "attn/params.h"
#include "attn/safetensors.h"
#include "attn/transformer.h"

/* One configuration field stored as metadata: its key, how its value is
 * written and read, and where it lives in the configuration struct. A
 * model's metadata is a table of these, in file order:
 *   static const attn__meta_field gpt_meta[] = {
 *       ATTN__META_FIELD("gpt.vocab", ATTN__META_I64, attn_gpt_config, vocab), ...}; */
typedef enum attn__meta_type {
    ATTN__META_I64,   /* int64_t, "%lld"; read in [0, INT32_MAX] */
    ATTN__META_INT,   /* int, "%d"; read in [0, INT32_MAX] */
    ATTN__META_FLAG,  /* int written as 0 or 1; read as ATTN__META_INT */
    ATTN__META_FLOAT, /* float, "%.9g" (reads back to the same float) */
    ATTN__META_POS    /* attn_pos_kind, by its name (attn_pos_kind_name) */
} attn__meta_type;

typedef struct attn__meta_field {
    const char *key;
    attn__meta_type type;
    size_t offset; /* of the field in the configuration struct */
    int optional;  /* a file without the key reads as 0 (keys added later) */
} attn__meta_field;

#define ATTN__META_FIELD(key, type, T, member) {key, type, offsetof(T, member), 0}
#define ATTN__META_FIELD_OPT(key, type, T, member) {key, type, offsetof(T, member), 1}

/* Writes the n fields of cfg into kv[0 .. n), the values (in the C locale)
 * in 32-byte slots of buf (n * 32 bytes). */
void attn__meta_write(const attn__meta_field *fields, int n, const void *cfg, attn_kv *kv,
                      char *buf);

/* Opens path and reads the n fields into cfg (in the C locale). Errors, all
 * under the name fn: ATTN_ERR_FORMAT "has no metadata entry ... (not a
 * <what> file)", "key = 'value' is not a number", "key = 'value'" (no known
 * value); those of attn_safetensors_open. */
attn_status attn__meta_load(const char *fn, const char *what, const char *path,
                            const attn__meta_field *fields, int n, void *cfg);

/* Checks, before a model is built from the metadata of path, that the file
 * can hold what the metadata claims: at least n_layers tensors and at least
 * min_elems values in all (the caller's lower bound from its configuration,
 * e.g. the embedding plus d_model^2 per layer; computed without overflow,
 * a negative value means it overflowed and is refused). A crafted file of a
 * few kilobytes that claims 100,000 layers is refused in O(file) instead of
 * building the model first. Errors under fn: ATTN_ERR_FORMAT naming the
 * claim and what the file holds; those of attn_safetensors_open. */
attn_status attn__meta_check_size(const char *fn, const char *path, int64_t n_layers,
                                  int64_t min_elems);

/* Lower bound helper: a * b + c without overflow, or -1. */
int64_t attn__meta_mul_add(int64_t a, int64_t b, int64_t c);

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
