/* bpe.c: byte-pair encoding over code points: chunking, learning, encoding
 * (include/attn/text.h states the rules; vocab.c holds the shared parts).
 *
 * Learning keeps, for every adjacent pair of tokens, its count over the
 * distinct training chunks (weighted by their frequency) and the list of
 * chunks where it may occur, and a max-heap of (count, pair) with lazy
 * deletion: an entry whose count is no longer the pair's count is skipped
 * when it reaches the top. A merge rewrites only the chunks on its pair's
 * list and re-pushes only the pairs whose count changed, so learning costs
 * about the total number of merge sites rather than merges x corpus. */
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "text_internal.h"
#include "attn/text.h"

#define BPE_MAX_MERGES 1000000

/* ---- chunking ------------------------------------------------------------ */

enum { CLS_SPACE, CLS_LETTER, CLS_DIGIT, CLS_OTHER };

static int char_class(int32_t cp) {
    if (cp == ' ') return CLS_SPACE;
    if (cp >= '0' && cp <= '9') return CLS_DIGIT;
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CLS_LETTER;
    if (cp < 0x80) return CLS_OTHER; /* ASCII punctuation and controls; also invalid bytes (-1) */
    if ((cp >= 0xA0 && cp <= 0xBF) || cp == 0xD7 || cp == 0xF7) return CLS_OTHER;
    if (cp >= 0x2000 && cp <= 0x206F) return CLS_OTHER;
    return CLS_LETTER;
}

/* The length in bytes of the chunk starting at text[i] (i < n). */
static size_t chunk_len(const unsigned char *text, size_t n, size_t i) {
    size_t j = i;
    int32_t cp;
    int k = attn__utf8_decode(text + j, n - j, &cp);
    int cls = char_class(cp);
    if (cls == CLS_SPACE) {
        j += (size_t)k;
        if (j >= n) return j - i;
        k = attn__utf8_decode(text + j, n - j, &cp);
        cls = char_class(cp);
        if (cls == CLS_SPACE) return j - i; /* a space before a space: alone */
    }
    /* A run of one class. */
    for (;;) {
        j += (size_t)k;
        if (j >= n) break;
        k = attn__utf8_decode(text + j, n - j, &cp);
        if (char_class(cp) != cls) break;
    }
    return j - i;
}

/* ---- learning ------------------------------------------------------------ */

typedef struct {
    int32_t *ids; /* the chunk's tokens (into the word arena) */
    int len;
    int64_t freq;
} word;

typedef struct {
    uint64_t key;   /* left << 32 | right */
    int64_t count;  /* sum of freq over all positions */
    int64_t before; /* count at the start of the current merge step */
    int stamp;      /* the merge step that last touched the pair (+1) */
    int32_t *words; /* chunks where the pair may occur (may repeat, may be stale) */
    int n_words, cap_words;
} pair_stat;

typedef struct {
    int64_t count;
    uint64_t key;
} heap_item;

typedef struct {
    attn__map index; /* key -> position in stats */
    pair_stat *stats;
    size_t n, cap;
    heap_item *heap;
    size_t heap_n, heap_cap;
    int *touched; /* positions of the pairs touched in this step */
    size_t n_touched, cap_touched;
} learner;

/* Heap order: larger count first, then the smaller key (left, then right). */
static int heap_before(const heap_item *a, const heap_item *b) {
    if (a->count != b->count) return a->count > b->count;
    return a->key < b->key;
}

static int heap_push(learner *L, int64_t count, uint64_t key) {
    void *h = L->heap;
    if (attn__grow(&h, &L->heap_cap, L->heap_n + 1, sizeof(heap_item)) != 0) return -1;
    L->heap = h;
    size_t i = L->heap_n++;
    heap_item it = {count, key};
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_before(&it, &L->heap[parent])) break;
        L->heap[i] = L->heap[parent];
        i = parent;
    }
    L->heap[i] = it;
    return 0;
}

static heap_item heap_pop(learner *L) {
    heap_item top = L->heap[0];
    heap_item last = L->heap[--L->heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= L->heap_n) break;
        if (c + 1 < L->heap_n && heap_before(&L->heap[c + 1], &L->heap[c])) c++;
        if (!heap_before(&L->heap[c], &last)) break;
        L->heap[i] = L->heap[c];
        i = c;
    }
    if (L->heap_n) L->heap[i] = last;
    return top;
}

/* The stats of a pair, created when absent; NULL when out of memory. */
static pair_stat *pair_of(learner *L, uint64_t key) {
    int64_t *slot = attn__map_get(&L->index, key);
    if (slot) return &L->stats[*slot];
    void *s = L->stats;
    if (attn__grow(&s, &L->cap, L->n + 1, sizeof(pair_stat)) != 0) return NULL;
    L->stats = s;
    slot = attn__map_put(&L->index, key);
    if (!slot) return NULL;
    *slot = (int64_t)L->n;
    pair_stat *p = &L->stats[L->n++];
    memset(p, 0, sizeof *p);
    p->key = key;
    return p;
}

static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

/* Adds `delta` to the count of pair (a, b) seen in word w; when `listed`,
 * records w on the pair's list. Returns 0 or -1 (memory). */
static int pair_add(learner *L, int32_t a, int32_t b, int64_t delta, int32_t w, int listed,
                    int step) {
    if (a < ATTN_TOKEN_SPECIALS || b < ATTN_TOKEN_SPECIALS) return 0; /* <unk> never merges */
    pair_stat *p = pair_of(L, pair_key(a, b));
    if (!p) return -1;
    if (p->stamp != step + 1) {
        p->stamp = step + 1;
        p->before = p->count;
        void *t = L->touched;
        if (attn__grow(&t, &L->cap_touched, L->n_touched + 1, sizeof(int)) != 0) return -1;
        L->touched = t;
        L->touched[L->n_touched++] = (int)(p - L->stats);
    }
    p->count += delta;
    if (listed && (p->n_words == 0 || p->words[p->n_words - 1] != w)) {
        size_t cap = (size_t)p->cap_words;
        void *ws = p->words;
        if (attn__grow(&ws, &cap, (size_t)p->n_words + 1, sizeof(int32_t)) != 0) return -1;
        p->words = ws;
        p->cap_words = (int)cap;
        p->words[p->n_words++] = w;
    }
    return 0;
}

/* Pushes the pairs whose count changed in this step. */
static int flush_touched(learner *L) {
    for (size_t i = 0; i < L->n_touched; i++) {
        pair_stat *p = &L->stats[L->touched[i]];
        if (p->count != p->before && p->count > 0 && heap_push(L, p->count, p->key) != 0) return -1;
    }
    L->n_touched = 0;
    return 0;
}

/* Rebuilds the heap from the live pairs when stale entries dominate it. */
static int heap_compact(learner *L) {
    L->heap_n = 0;
    for (size_t i = 0; i < L->n; i++)
        if (L->stats[i].count > 0 && heap_push(L, L->stats[i].count, L->stats[i].key) != 0)
            return -1;
    return 0;
}

static void learner_free(learner *L) {
    for (size_t i = 0; i < L->n; i++) free(L->stats[i].words);
    free(L->stats);
    free(L->heap);
    free(L->touched);
    attn__map_free(&L->index);
}

attn_status attn_bpe_learn(const char *const *texts, int64_t n_texts, int n_merges, int min_count,
                           attn_vocab **out) {
    static const char who[] = "attn_bpe_learn";
    if (out) *out = NULL;
    if (!texts || !out || n_texts < 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL texts or out", who);
    if (n_merges < 0 || n_merges > BPE_MAX_MERGES)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: n_merges %d outside [0, %d]", who, n_merges,
                           BPE_MAX_MERGES);
    attn__map counts = {0}, chunk_index = {0};
    attn__strbuf chunk_text = {0};
    size_t *chunk_off = NULL, n_chunks = 0, cap_chunks = 0;
    int64_t *chunk_freq = NULL;
    word *words = NULL;
    int32_t *arena = NULL;
    learner L;
    memset(&L, 0, sizeof L);
    int32_t *merges = NULL;
    attn_vocab *v = calloc(1, sizeof *v);
    attn_status st = v ? ATTN_OK : attn__error(ATTN_ERR_OOM, "%s: out of memory", who);
    if (st == ATTN_OK) st = attn__count_chars(texts, n_texts, &counts, who);
    if (st == ATTN_OK) st = attn__alphabet(&counts, min_count, &v->alpha, &v->n_alpha, who);
    if (st != ATTN_OK) goto done;
    v->kind = ATTN_VOCAB_BPE;

    /* Distinct chunks with their frequencies. The map's key is the chunk's
     * FNV-1a hash; equal hashes of different chunks are told apart by
     * probing to the next key (hash + 1, ...) until the bytes match. */
    for (int64_t t = 0; t < n_texts; t++) {
        const unsigned char *p = (const unsigned char *)texts[t];
        const size_t n = strlen(texts[t]);
        for (size_t i = 0; i < n;) {
            const size_t k = chunk_len(p, n, i);
            uint64_t h = attn_fnv1a64(p + i, k);
            for (;;) {
                int64_t *slot = attn__map_get(&chunk_index, h);
                if (!slot) {
                    slot = attn__map_put(&chunk_index, h);
                    /* each grown buffer is kept at once: when the second
                     * grow fails, the first one's new block is freed at done
                     * (it leaked before) */
                    void *co = chunk_off;
                    size_t cap1 = cap_chunks, cap2 = cap_chunks;
                    void *cf = chunk_freq;
                    const int bad1 = !slot || attn__grow(&co, &cap1, n_chunks + 1, sizeof(size_t)) != 0;
                    chunk_off = co;
                    const int bad2 = bad1 || attn__grow(&cf, &cap2, n_chunks + 1, sizeof(int64_t)) != 0;
                    chunk_freq = cf;
                    if (bad1 || bad2) {
                        st = attn__error(ATTN_ERR_OOM, "%s: out of memory counting chunks", who);
                        goto done;
                    }
                    cap_chunks = cap1 < cap2 ? cap1 : cap2;
                    *slot = (int64_t)n_chunks;
                    chunk_off[n_chunks] = chunk_text.len;
                    chunk_freq[n_chunks] = 1;
                    n_chunks++;
                    if (attn__sb_put(&chunk_text, p + i, k) != 0 ||
                        attn__sb_put(&chunk_text, "", 1) != 0) {
                        st = attn__error(ATTN_ERR_OOM, "%s: out of memory counting chunks", who);
                        goto done;
                    }
                    break;
                }
                const char *c = chunk_text.p + chunk_off[*slot];
                if (strlen(c) == k && memcmp(c, p + i, k) == 0) {
                    chunk_freq[*slot]++;
                    break;
                }
                h++;
            }
            i += k;
        }
    }

    /* Each chunk as tokens of the alphabet; the pair statistics. */
    size_t total = 0;
    for (size_t c = 0; c < n_chunks; c++) total += strlen(chunk_text.p + chunk_off[c]);
    words = calloc(n_chunks ? n_chunks : 1, sizeof *words);
    arena = malloc((total ? total : 1) * sizeof *arena);
    merges = malloc(((size_t)n_merges + 1) * 2 * sizeof *merges);
    if (!words || !arena || !merges) {
        st = attn__error(ATTN_ERR_OOM, "%s: out of memory for %zu chunks", who, n_chunks);
        goto done;
    }
    size_t used = 0;
    for (size_t c = 0; c < n_chunks; c++) {
        const unsigned char *p = (const unsigned char *)chunk_text.p + chunk_off[c];
        const size_t n = strlen((const char *)p);
        words[c].ids = arena + used;
        words[c].freq = chunk_freq[c];
        for (size_t i = 0; i < n;) {
            int32_t cp;
            i += (size_t)attn__utf8_decode(p + i, n - i, &cp);
            words[c].ids[words[c].len++] = cp < 0 ? ATTN_TOKEN_UNK : attn__vocab_char_id(v, cp);
        }
        used += (size_t)words[c].len;
        for (int i = 0; i + 1 < words[c].len; i++) {
            if (pair_add(&L, words[c].ids[i], words[c].ids[i + 1], words[c].freq, (int32_t)c, 1,
                         -1) != 0) {
                st = attn__error(ATTN_ERR_OOM, "%s: out of memory counting pairs", who);
                goto done;
            }
        }
    }
    L.n_touched = 0;
    if (heap_compact(&L) != 0) {
        st = attn__error(ATTN_ERR_OOM, "%s: out of memory for the pair heap", who);
        goto done;
    }

    int n_done = 0;
    while (n_done < n_merges && L.heap_n > 0) {
        heap_item top = heap_pop(&L);
        int64_t *slot = attn__map_get(&L.index, top.key);
        pair_stat *best = &L.stats[*slot];
        if (best->count != top.count) continue; /* stale entry */
        if (top.count < 2) break;
        const int32_t a = (int32_t)(top.key >> 32), b = (int32_t)(uint32_t)top.key;
        const int32_t z = ATTN_TOKEN_SPECIALS + v->n_alpha + n_done;
        merges[2 * n_done] = a;
        merges[2 * n_done + 1] = b;
        /* The list may grow while we walk it (pairs with z are added to
         * other lists, never to this one: z is new), so walk by index over
         * a stable copy of the count. */
        const int n_list = best->n_words;
        const size_t best_pos = (size_t)(best - L.stats);
        for (int li = 0; li < n_list; li++) {
            const int32_t w = L.stats[best_pos].words[li];
            word *wd = &words[w];
            int has = 0;
            for (int i = 0; i + 1 < wd->len; i++)
                if (wd->ids[i] == a && wd->ids[i + 1] == b) has = 1;
            if (!has) continue; /* stale, or a repeat already rewritten */
            int fail = 0;
            for (int i = 0; i + 1 < wd->len; i++)
                fail |= pair_add(&L, wd->ids[i], wd->ids[i + 1], -wd->freq, w, 0, n_done);
            int o = 0;
            for (int i = 0; i < wd->len;) {
                if (i + 1 < wd->len && wd->ids[i] == a && wd->ids[i + 1] == b) {
                    wd->ids[o++] = z;
                    i += 2;
                } else {
                    wd->ids[o++] = wd->ids[i++];
                }
            }
            wd->len = o;
            for (int i = 0; i + 1 < wd->len; i++)
                fail |= pair_add(&L, wd->ids[i], wd->ids[i + 1], wd->freq, w,
                                 wd->ids[i] == z || wd->ids[i + 1] == z, n_done);
            if (fail) {
                st = attn__error(ATTN_ERR_OOM, "%s: out of memory updating pairs", who);
                goto done;
            }
        }
        n_done++;
        /* The merged pair is gone everywhere it was listed. */
        pair_stat *gone = &L.stats[best_pos];
        free(gone->words);
        gone->words = NULL;
        gone->n_words = gone->cap_words = 0;
        if (flush_touched(&L) != 0 || (L.heap_n > 4 * L.n + 1024 && heap_compact(&L) != 0)) {
            st = attn__error(ATTN_ERR_OOM, "%s: out of memory for the pair heap", who);
            goto done;
        }
    }
    v->merges = merges;
    merges = NULL;
    v->n_merges = n_done;
    st = attn__vocab_finish(v, NULL);

done:
    learner_free(&L);
    attn__map_free(&counts);
    attn__map_free(&chunk_index);
    attn__sb_free(&chunk_text);
    free(chunk_off);
    free(chunk_freq);
    free(words);
    free(arena);
    free(merges);
    if (st != ATTN_OK) {
        attn_vocab_free(v);
        return st;
    }
    *out = v;
    return ATTN_OK;
}

/* ---- encoding ------------------------------------------------------------- */

attn_status attn__bpe_encode(const attn_vocab *v, const char *text, size_t len,
                             void (*emit)(int32_t id, void *user), void *user) {
    const unsigned char *p = (const unsigned char *)text;
    int32_t small[64];
    int32_t *ids = small;
    size_t cap = sizeof small / sizeof small[0];
    for (size_t i = 0; i < len;) {
        const size_t k = chunk_len(p, len, i);
        if (k > cap) { /* a chunk has at most k code points */
            if (ids != small) free(ids);
            ids = malloc(k * sizeof *ids);
            if (!ids)
                return attn__error(ATTN_ERR_OOM,
                                   "attn_vocab_encode: out of memory for a "
                                   "chunk of %zu bytes",
                                   k);
            cap = k;
        }
        size_t n = 0;
        for (size_t j = i; j < i + k;) {
            int32_t cp;
            j += (size_t)attn__utf8_decode(p + j, i + k - j, &cp);
            ids[n++] = cp < 0 ? ATTN_TOKEN_UNK : attn__vocab_char_id(v, cp);
        }
        /* Merge the lowest-ranked pair present, all its occurrences left to
         * right, until no pair of the chunk is a merge. */
        while (n > 1 && v->n_merges > 0) {
            int64_t best = -1;
            for (size_t j = 0; j + 1 < n; j++) {
                const int64_t *r = attn__map_get(&v->ranks, pair_key(ids[j], ids[j + 1]));
                if (r && (best < 0 || *r < best)) best = *r;
            }
            if (best < 0) break;
            const int32_t a = v->merges[2 * best], b = v->merges[2 * best + 1];
            const int32_t z = ATTN_TOKEN_SPECIALS + v->n_alpha + (int32_t)best;
            size_t o = 0;
            for (size_t j = 0; j < n;) {
                if (j + 1 < n && ids[j] == a && ids[j + 1] == b) {
                    ids[o++] = z;
                    j += 2;
                } else {
                    ids[o++] = ids[j++];
                }
            }
            n = o;
        }
        for (size_t j = 0; j < n; j++) emit(ids[j], user);
        i += k;
    }
    if (ids != small) free(ids);
    return ATTN_OK;
}
