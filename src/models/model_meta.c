/* model_meta.c: configuration metadata of the single-stack models; see
 * model_meta.h. */
#include <stdint.h>
#include <stdlib.h>

#include "model_meta.h"

void attn__meta_slots(attn_kv *kv, char *buf, char **v, const char *const *keys, int n) {
    for (int i = 0; i < n; i++) {
        v[i] = buf + 32 * i;
        kv[i].key = keys[i];
        kv[i].value = v[i];
    }
}

attn_status attn__meta_load(const char *fn, const char *what, const char *path,
                            const char *const *keys, int n, attn__meta_parse_fn parse, void *cfg) {
    attn_safetensors *f = NULL;
    attn_status st = attn_safetensors_open(&f, path);
    if (st != ATTN_OK) return st;
    const attn__c_locale loc = attn__c_locale_begin();
    for (int i = 0; i < n && st == ATTN_OK; i++) {
        const char *s = attn_safetensors_metadata(f, keys[i]);
        if (!s) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s has no metadata entry %s (not a %s file)", fn,
                             path, keys[i], what);
            break;
        }
        const int bad = parse(cfg, i, s);
        if (bad == 1)
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s: %s = '%s' is not a number", fn, path,
                             keys[i], s);
        else if (bad)
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s: %s = '%s'", fn, path, keys[i], s);
    }
    attn__c_locale_end(loc);
    attn_safetensors_close(f);
    return st;
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

int attn__meta_int(const char *s, long long *x) {
    char *end = NULL;
    *x = strtoll(s, &end, 10);
    return end == s || *end || *x < 0 || *x > INT32_MAX;
}

int attn__meta_float(const char *s, float *x) {
    char *end = NULL;
    *x = strtof(s, &end);
    return end == s || *end;
}

attn_status attn__meta_save(const char *path, const attn_params *ps, attn_kv *kv, int n_cfg,
                            const attn_kv *meta, int n_meta) {
    for (int i = 0; i < n_meta; i++) kv[n_cfg + i] = meta[i];
    return attn_safetensors_save_params(path, ps, kv, n_cfg + n_meta);
}
