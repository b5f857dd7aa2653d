/* model_meta.c: configuration metadata of the single-stack models; see
 * model_meta.h. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "model_meta.h"
#include "attn/checkpoint.h"
#include "attn/params.h"
#include "attn/safetensors.h"
#include "attn/transformer.h"

void attn__meta_write(const attn__meta_field *fields, int n, const void *cfg, attn_kv *kv,
                      char *buf) {
    if (!fields || !cfg || !kv || !buf) return; /* the *_config_meta functions: nothing to write */
    const attn__c_locale loc = attn__c_locale_begin();
    for (int i = 0; i < n; i++) {
        const attn__meta_field *f = &fields[i];
        const char *p = (const char *)cfg + f->offset;
        char *v = buf + 32 * i;
        kv[i].key = f->key;
        kv[i].value = v;
        switch (f->type) {
        case ATTN__META_I64: snprintf(v, 32, "%lld", (long long)*(const int64_t *)p); break;
        case ATTN__META_INT: snprintf(v, 32, "%d", *(const int *)p); break;
        case ATTN__META_FLAG: snprintf(v, 32, "%d", *(const int *)p ? 1 : 0); break;
        case ATTN__META_FLOAT: snprintf(v, 32, "%.9g", (double)*(const float *)p); break;
        case ATTN__META_POS:
            snprintf(v, 32, "%s", attn_pos_kind_name(*(const attn_pos_kind *)p));
            break;
        }
    }
    attn__c_locale_end(loc);
}

/* Integer value: 0 with *x when s is all a number in [0, INT32_MAX], else 1. */
static int meta_int(const char *s, long long *x) {
    char *end = NULL;
    *x = strtoll(s, &end, 10);
    return end == s || *end || *x < 0 || *x > INT32_MAX;
}

/* Float value: 0 with *x when s is all a number, else 1. */
static int meta_float(const char *s, float *x) {
    char *end = NULL;
    *x = strtof(s, &end);
    return end == s || *end;
}

/* Reads s into the field: 0 when done, 1 when s is not a number, 2 when s
 * is no known value. */
static int meta_parse(const attn__meta_field *f, void *cfg, const char *s) {
    char *p = (char *)cfg + f->offset;
    if (f->type == ATTN__META_FLOAT) return meta_float(s, (float *)p);
    if (f->type == ATTN__META_POS) return attn_pos_kind_parse(s, (attn_pos_kind *)p) == 0 ? 0 : 2;
    long long x;
    const int bad = meta_int(s, &x);
    /* a flag is 0 or 1: any other number would read as "on" here and as
     * something else where the flag is compared (attn_bert_load_encoder) */
    if (f->type == ATTN__META_FLAG && !bad && x > 1) return 2;
    if (f->type == ATTN__META_I64) *(int64_t *)p = x;
    else *(int *)p = (int)x;
    return bad;
}

attn_status attn__meta_load(const char *fn, const char *what, const char *path,
                            const attn__meta_field *fields, int n, void *cfg) {
    attn_safetensors *f = NULL;
    attn_status st = attn_safetensors_open(&f, path);
    if (st != ATTN_OK) return st;
    const attn__c_locale loc = attn__c_locale_begin();
    for (int i = 0; i < n && st == ATTN_OK; i++) {
        const char *key = fields[i].key;
        const char *s = attn_safetensors_metadata(f, key);
        if (!s && fields[i].optional) continue; /* the caller's zero stays */
        if (!s) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s has no metadata entry %s (not a %s file)", fn,
                             path, key, what);
            break;
        }
        const int bad = meta_parse(&fields[i], cfg, s);
        if (bad == 1)
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s: %s = '%s' is not a number", fn, path, key, s);
        else if (bad)
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s: %s = '%s' (%s)", fn, path, key, s,
                             fields[i].type == ATTN__META_FLAG ? "a flag is 0 or 1"
                                                               : "not a known value");
    }
    attn__c_locale_end(loc);
    attn_safetensors_close(f);
    return st;
}

int64_t attn__meta_mul_add(int64_t a, int64_t b, int64_t c) {
    int64_t p, s;
    if (a < 0 || b < 0 || c < 0 || __builtin_mul_overflow(a, b, &p) || __builtin_add_overflow(p, c, &s))
        return -1;
    return s;
}

attn_status attn__meta_check_shapes(const char *fn, const char *path, const attn__meta_shape *want,
                                    int n) {
    attn_safetensors *f = NULL;
    attn_status st = attn_safetensors_open(&f, path);
    if (st != ATTN_OK) return st;
    for (int i = 0; i < n && st == ATTN_OK; i++) {
        const attn_st_tensor *t = attn_safetensors_find(f, want[i].name);
        if (!t)
            st = attn__error(ATTN_ERR_FORMAT,
                             "%s: %s has no tensor %s, which its configuration implies ([%lld, %lld])",
                             fn, path, want[i].name, (long long)want[i].d0, (long long)want[i].d1);
        else if (t->ndim != 2 || t->shape[0] != want[i].d0 || t->shape[1] != want[i].d1)
            st = attn__error(ATTN_ERR_SHAPE,
                             "%s: %s: tensor %s has %d dimensions [%lld, ...], its configuration "
                             "implies [%lld, %lld]",
                             fn, path, want[i].name, t->ndim, t->ndim > 0 ? (long long)t->shape[0] : 0ll,
                             (long long)want[i].d0, (long long)want[i].d1);
    }
    attn_safetensors_close(f);
    return st;
}


attn_status attn__meta_check_size(const char *fn, const char *path, int64_t n_layers,
                                  int64_t min_elems) {
    attn_safetensors *f = NULL;
    attn_status st = attn_safetensors_open(&f, path);
    if (st != ATTN_OK) return st;
    const int n = attn_safetensors_count(f);
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const int64_t k = attn_safetensors_at(f, i)->numel;
        total = total > INT64_MAX - k ? INT64_MAX : total + k;
    }
    attn_safetensors_close(f);
    if (n_layers > n)
        return attn__error(ATTN_ERR_FORMAT, "%s: %s: the metadata claims %lld layers, the file "
                           "holds %d tensors", fn, path, (long long)n_layers, n);
    if (min_elems < 0 || min_elems > total)
        return attn__error(ATTN_ERR_FORMAT, "%s: %s: the metadata's configuration needs at least "
                           "%s values, the file holds %lld", fn, path,
                           min_elems < 0 ? "more than 2^63" : "more", (long long)total);
    return ATTN_OK;
}

attn_status attn__meta_save(const char *path, const attn_params *ps, attn_kv *kv, int n_cfg,
                            const attn_kv *meta, int n_meta) {
    for (int i = 0; i < n_meta; i++) kv[n_cfg + i] = meta[i];
    return attn_safetensors_save_params(path, ps, kv, n_cfg + n_meta);
}
