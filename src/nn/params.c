/* params.c: the parameter store (named f32 tensors with gradients) and the
 * initialisers. Each parameter owns one allocation holding its data and its
 * gradient side by side. Names are found through a hash index (open
 * addressing, FNV-1a, at most half full), so adding n parameters and looking
 * each up costs O(n), not O(n^2): a checkpoint whose metadata claims
 * thousands of layers cannot make a load quadratic. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/params.h"

#define ATTN__NAME_MAX 255

struct attn_params {
    attn_tensor **items;
    int count, cap;
    int *slots;  /* nslots entries: index into items + 1, 0 when empty */
    int nslots;  /* a power of two, >= 2 count (0 before the first add) */
};

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The slot of name: the one holding it, or the empty one where it would go. */
static int slot_of(const attn_params *ps, const char *name) {
    const uint64_t mask = (uint64_t)ps->nslots - 1;
    uint64_t i = name_hash(name) & mask;
    while (ps->slots[i] && strcmp(ps->items[ps->slots[i] - 1]->name, name) != 0) i = (i + 1) & mask;
    return (int)i;
}

/* Makes room in the index for one more name (doubling and rehashing when it
 * would be more than half full). ATTN_OK or ATTN_ERR_OOM. */
static attn_status index_reserve(attn_params *ps) {
    if (ps->nslots >= 2 * (ps->count + 1)) return ATTN_OK;
    if (ps->count > (1 << 28)) return attn__error(ATTN_ERR_OOM, "attn_params_add: too many parameters");
    int n = ps->nslots ? ps->nslots : 32;
    while (n < 2 * (ps->count + 1)) n *= 2;
    int *slots = calloc((size_t)n, sizeof *slots);
    if (!slots) return attn__error(ATTN_ERR_OOM, "attn_params_add: out of memory (name index)");
    free(ps->slots);
    ps->slots = slots;
    ps->nslots = n;
    for (int i = 0; i < ps->count; i++) ps->slots[slot_of(ps, ps->items[i]->name)] = i + 1;
    return ATTN_OK;
}

attn_status attn_params_new(attn_params **out) {
    if (!out) return attn__error(ATTN_ERR_INVALID_ARG, "attn_params_new: out is NULL");
    *out = calloc(1, sizeof **out);
    return *out ? ATTN_OK : attn__error(ATTN_ERR_OOM, "attn_params_new: out of memory");
}

void attn_params_free(attn_params *ps) {
    if (!ps) return;
    for (int i = 0; i < ps->count; i++) {
        attn_tensor *t = ps->items[i];
        free(t->data); /* data and grad share one block */
        free((char *)t->name);
        free(t);
    }
    free(ps->items);
    free(ps->slots);
    free(ps);
}

attn_status attn_params_add(attn_params *ps, const char *name, int ndim, const int64_t *shape,
                            attn_tensor **out) {
    if (out) *out = NULL;
    if (!ps || !name || (ndim > 0 && !shape))
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_params_add: NULL store, name or shape");
    size_t len = strlen(name);
    if (len == 0 || len > ATTN__NAME_MAX)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_params_add: name of %zu bytes, expected 1 to %d", len,
                           ATTN__NAME_MAX);
    if (attn_params_find(ps, name))
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_params_add: '%s' already exists", name);
    if (ndim < 0 || ndim > ATTN_MAX_DIMS)
        return attn__error(ATTN_ERR_SHAPE, "attn_params_add: '%s' has %d dims, expected 0 to %d",
                           name, ndim, ATTN_MAX_DIMS);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1)
            return attn__error(ATTN_ERR_SHAPE, "attn_params_add: '%s' dimension %d is %lld, "
                               "expected >= 1", name, i, (long long)shape[i]);
        if (attn__mul_size(n, (size_t)shape[i], &n))
            return attn__error(ATTN_ERR_OOM, "attn_params_add: '%s' is too large", name);
    }
    size_t bytes;
    if (attn__mul_size(n, 2 * sizeof(float), &bytes))
        return attn__error(ATTN_ERR_OOM, "attn_params_add: '%s' is too large", name);
    attn_status st = index_reserve(ps);
    if (st != ATTN_OK) return st;
    if (ps->count == ps->cap) {
        int cap = ps->cap ? ps->cap * 2 : 16;
        attn_tensor **items = realloc(ps->items, sizeof *items * (size_t)cap);
        if (!items) return attn__error(ATTN_ERR_OOM, "attn_params_add: out of memory");
        ps->items = items;
        ps->cap = cap;
    }
    attn_tensor *t = calloc(1, sizeof *t);
    float *block = calloc(1, bytes);
    char *nm = malloc(len + 1);
    if (!t || !block || !nm) {
        free(t);
        free(block);
        free(nm);
        return attn__error(ATTN_ERR_OOM, "attn_params_add: '%s': cannot allocate %zu bytes", name,
                           bytes);
    }
    memcpy(nm, name, len + 1);
    t->dtype = ATTN_F32;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    attn__set_contiguous_strides(t);
    t->data = block;
    t->grad = block + n;
    t->requires_grad = 1;
    t->is_param = 1;
    t->node = -1;
    t->name = nm;
    ps->items[ps->count++] = t;
    ps->slots[slot_of(ps, nm)] = ps->count;
    if (out) *out = t;
    return ATTN_OK;
}

int attn_params_count(const attn_params *ps) { return ps ? ps->count : 0; }

attn_tensor *attn_params_at(const attn_params *ps, int i) {
    return ps && i >= 0 && i < ps->count ? ps->items[i] : NULL;
}

attn_tensor *attn_params_find(const attn_params *ps, const char *name) {
    if (!ps || !name || !ps->nslots) return NULL;
    const int i = slot_of(ps, name);
    return ps->slots[i] ? ps->items[ps->slots[i] - 1] : NULL;
}

int64_t attn_params_numel(const attn_params *ps) {
    int64_t n = 0;
    for (int i = 0; ps && i < ps->count; i++) n += attn_tensor_numel(ps->items[i]);
    return n;
}

void attn_params_zero_grad(attn_params *ps) {
    for (int i = 0; ps && i < ps->count; i++)
        memset(ps->items[i]->grad, 0, sizeof(float) * (size_t)attn_tensor_numel(ps->items[i]));
}

void attn_init_uniform(attn_tensor *t, float bound, attn_rng *rng) {
    if (!t || !rng) return; /* nothing to fill, or nothing to draw from */
    float *p = attn_f32(t);
    int64_t n = attn_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) p[i] = (2.0f * attn_rng_next_uniform(rng) - 1.0f) * bound;
}

void attn_init_normal(attn_tensor *t, float std, attn_rng *rng) {
    if (!t || !rng) return; /* nothing to fill, or nothing to draw from */
    float *p = attn_f32(t);
    int64_t n = attn_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) p[i] = attn_rng_next_normal(rng) * std;
}

void attn_init_constant(attn_tensor *t, float value) {
    if (!t) return;
    float *p = attn_f32(t);
    int64_t n = attn_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) p[i] = value;
}
