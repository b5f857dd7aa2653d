/* word2vec.c: the vocabulary, the negative table and the training of
 * include/attn/word2vec.h (skip-gram and CBOW with negative sampling).
 *
 * The training loop follows the reference tool's (word2vec.c by Mikolov et
 * al.; the facts, not its code): per sentence, subsampling with a 16-bit
 * uniform draw, a window radius window - (r % window), negatives drawn from
 * the table with the high bits of a 64-bit linear congruential generator
 * (r = r * 25214903917 + 11, the reference's), and the learning rate
 * recomputed every 10,000 words from the words done by all threads. The
 * derivation of the update is in docs/word2vec.md.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "word2vec_internal.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ATTN_NO_CLONES)
#define W2V_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define W2V_CLONES
#endif

#define W2V_EXP_TABLE 1000
#define W2V_MAX_EXP 6
#define W2V_LCG(r) ((r) = (r) * (uint64_t)25214903917ULL + 11u)
/* A draw in [0, n) from the generator's high 32 bits by a multiply and a
 * shift (n < 2^32): no 64-bit division (the reference's `%`, some 40 cycles,
 * six times a word), and not the low bits, whose periods are short. */
#define W2V_BELOW(r, n) ((uint64_t)(uint32_t)((r) >> 32) * (uint64_t)(n) >> 32)

/* ---- configuration ------------------------------------------------------------------ */

void attn_w2v_config_default(attn_w2v_config *cfg) {
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->cbow = 0;
    cfg->dim = 100;
    cfg->window = 5;
    cfg->negative = 5;
    cfg->min_count = 5;
    cfg->epochs = 5;
    cfg->alpha = 0.025;
    cfg->min_alpha_ratio = 1e-4;
    cfg->sample = 1e-3;
    cfg->table_size = 0;
    cfg->max_sentence = 10000;
    cfg->exact_sigmoid = 0;
    cfg->init_scale = 0.5;
    cfg->n_threads = 1;
    cfg->seed = 1;
}

attn_status attn_w2v_config_check(const attn_w2v_config *c) {
    const char *fn = "word2vec config";
    if (!c) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL config", fn);
    if (c->cbow != 0 && c->cbow != 1)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: cbow %d (expected 0 skip-gram or 1 CBOW)", fn, c->cbow);
    if (c->dim < 1 || c->dim > ATTN_W2V_MAX_DIM)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: dim %d (expected 1 .. %d)", fn, c->dim, ATTN_W2V_MAX_DIM);
    if (c->window < 1 || c->window > ATTN_W2V_MAX_WINDOW)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: window %d (expected 1 .. %d)", fn, c->window,
                           ATTN_W2V_MAX_WINDOW);
    if (c->negative < 1 || c->negative > ATTN_W2V_MAX_NEGATIVE)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: negative %d (expected 1 .. %d)", fn, c->negative,
                           ATTN_W2V_MAX_NEGATIVE);
    if (c->min_count < 1)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: min_count %lld (expected >= 1)", fn, (long long)c->min_count);
    if (c->epochs < 1 || c->epochs > 10000)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: epochs %d (expected 1 .. 10000)", fn, c->epochs);
    if (!(c->alpha > 0 && c->alpha <= 10))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: alpha %g (expected a number in (0, 10])", fn, c->alpha);
    if (!(c->min_alpha_ratio >= 0 && c->min_alpha_ratio <= 1))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: min_alpha_ratio %g (expected a number in [0, 1])", fn,
                           c->min_alpha_ratio);
    if (!(c->sample >= 0 && c->sample <= 1))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: sample %g (expected a number in [0, 1])", fn, c->sample);
    if (c->table_size != 0 && (c->table_size < 1000 || c->table_size > ((int64_t)1 << 30)))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: table_size %lld (expected 0 or 1000 .. 2^30)", fn,
                           (long long)c->table_size);
    if (c->max_sentence < 1 || c->max_sentence > 1000000)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: max_sentence %d (expected 1 .. 1000000)", fn,
                           c->max_sentence);
    if (c->exact_sigmoid != 0 && c->exact_sigmoid != 1)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: exact_sigmoid %d (expected 0 or 1)", fn, c->exact_sigmoid);
    if (!(c->init_scale > 0 && c->init_scale <= 100))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: init_scale %g (expected a number in (0, 100])", fn,
                           c->init_scale);
    if (c->skip_saturated != 0 && c->skip_saturated != 1)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: skip_saturated %d (expected 0 or 1)", fn, c->skip_saturated);
    if (c->n_threads < 1 || c->n_threads > 4096)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: n_threads %d (expected 1 .. 4096)", fn, c->n_threads);
    return ATTN_OK;
}

/* ---- words and the hash ------------------------------------------------------------------ */

uint64_t attn__w2v_hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/* The next word of text from *pos: 1 (word at *w, *n bytes; *nl set when a
 * '\n' came since the previous word), 0 at the end, -1 on a bad word
 * (message set). */
static int next_word(const char *fn, const char *text, size_t len, size_t *pos, const char **w, size_t *n,
                     int *nl) {
    size_t i = *pos;
    *nl = 0;
    while (i < len && (is_space((unsigned char)text[i]) || text[i] == '\n')) {
        if (text[i] == '\n') *nl = 1;
        i++;
    }
    if (i >= len) {
        *pos = i;
        return 0;
    }
    size_t b = i;
    while (i < len && !is_space((unsigned char)text[i]) && text[i] != '\n') {
        if (text[i] == '\0') {
            attn__error(ATTN_ERR_FORMAT, "%s: a NUL byte at offset %zu of the text (expected words separated by "
                                         "whitespace)", fn, i);
            return -1;
        }
        i++;
    }
    if (i - b > ATTN_W2V_MAX_WORD) {
        attn__error(ATTN_ERR_FORMAT, "%s: a word of %zu bytes at offset %zu of the text (at most %d)", fn, i - b, b,
                    ATTN_W2V_MAX_WORD);
        return -1;
    }
    *w = text + b;
    *n = i - b;
    *pos = i;
    return 1;
}

/* The counting table of attn_w2v_build: every distinct word of the text. */
typedef struct wcount {
    char *w;
    int64_t count;
} wcount;

typedef struct counter {
    wcount *e;
    int64_t n, cap;
    int64_t *slot;
    uint64_t mask;
} counter;

static void counter_free(counter *c) {
    for (int64_t i = 0; i < c->n; i++) free(c->e[i].w);
    free(c->e);
    free(c->slot);
}

static int counter_rehash(counter *c, uint64_t nslots) {
    int64_t *s = malloc(nslots * sizeof *s);
    if (!s) return -1;
    for (uint64_t i = 0; i < nslots; i++) s[i] = -1;
    for (int64_t k = 0; k < c->n; k++) {
        uint64_t h = attn__w2v_hash_bytes(c->e[k].w, strlen(c->e[k].w)) & (nslots - 1);
        while (s[h] >= 0) h = (h + 1) & (nslots - 1);
        s[h] = k;
    }
    free(c->slot);
    c->slot = s;
    c->mask = nslots - 1;
    return 0;
}

static int counter_add(counter *c, const char *w, size_t n) {
    if (!c->slot && counter_rehash(c, 1 << 16)) return -1;
    uint64_t h = attn__w2v_hash_bytes(w, n) & c->mask;
    for (;;) {
        int64_t k = c->slot[h];
        if (k < 0) break;
        if (strncmp(c->e[k].w, w, n) == 0 && c->e[k].w[n] == '\0') {
            c->e[k].count++;
            return 0;
        }
        h = (h + 1) & c->mask;
    }
    if (c->n == c->cap) {
        int64_t cap = c->cap ? c->cap * 2 : 4096;
        wcount *e = realloc(c->e, (size_t)cap * sizeof *e);
        if (!e) return -1;
        c->e = e;
        c->cap = cap;
    }
    char *copy = malloc(n + 1);
    if (!copy) return -1;
    memcpy(copy, w, n);
    copy[n] = '\0';
    c->e[c->n].w = copy;
    c->e[c->n].count = 1;
    c->slot[h] = c->n++;
    if ((uint64_t)c->n * 2 > c->mask + 1 && counter_rehash(c, (c->mask + 1) * 2)) return -1;
    return 0;
}

static int by_count(const void *pa, const void *pb) {
    const wcount *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return strcmp(a->w, b->w);
}

attn_status attn__w2v_index(attn_w2v *m, const char *fn) {
    uint64_t nslots = 16;
    while (nslots < (uint64_t)m->V * 2 + 2) nslots *= 2;
    attn__w2v_hash *h = calloc(1, sizeof *h);
    if (h) h->slot = malloc(nslots * sizeof *h->slot);
    if (!h || !h->slot) {
        if (h) free(h);
        return attn__error(ATTN_ERR_OOM, "%s: out of memory for the index of %lld words", fn, (long long)m->V);
    }
    h->mask = nslots - 1;
    for (uint64_t i = 0; i < nslots; i++) h->slot[i] = -1;
    m->hash = h;
    for (int64_t k = 0; k < m->V; k++) {
        uint64_t s = attn__w2v_hash_bytes(m->words[k], strlen(m->words[k])) & h->mask;
        while (h->slot[s] >= 0) {
            if (strcmp(m->words[h->slot[s]], m->words[k]) == 0)
                return attn__error(ATTN_ERR_FORMAT, "%s: word '%s' appears twice (entries %lld and %lld)", fn,
                                   m->words[k], (long long)h->slot[s], (long long)k);
            s = (s + 1) & h->mask;
        }
        h->slot[s] = k;
    }
    return ATTN_OK;
}

static int64_t find_bytes(const attn_w2v *m, const char *w, size_t n) {
    const attn__w2v_hash *h = m->hash;
    if (!h) return -1;
    uint64_t s = attn__w2v_hash_bytes(w, n) & h->mask;
    for (;;) {
        int64_t k = h->slot[s];
        if (k < 0) return -1;
        if (strncmp(m->words[k], w, n) == 0 && m->words[k][n] == '\0') return k;
        s = (s + 1) & h->mask;
    }
}

int64_t attn_w2v_find(const attn_w2v *m, const char *word) {
    if (!m || !word) return -1;
    return find_bytes(m, word, strlen(word));
}

float *attn__w2v_rows(int64_t V, int D) {
    size_t bytes = (size_t)V * (size_t)D * sizeof(float);
    bytes = (bytes + 63) / 64 * 64; /* aligned_alloc wants a multiple of the alignment */
    return aligned_alloc(64, bytes);
}

attn_status attn__w2v_alloc(attn_w2v **out, int64_t V, int D, const char *fn) {
    *out = NULL;
    if (V < 1 || D < 1 || V > ((int64_t)1 << 31) - 1 || (uint64_t)V * (uint64_t)D > ((uint64_t)1 << 40))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %lld words of %d dimensions (expected 1 .. 2^31-1 words, "
                                                 "at most 2^40 values)", fn, (long long)V, D);
    attn_w2v *m = calloc(1, sizeof *m);
    if (!m) return attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    m->V = V;
    m->D = D;
    attn_w2v_config_default(&m->cfg);
    m->cfg.dim = D;
    m->words = calloc((size_t)V, sizeof *m->words);
    m->counts = calloc((size_t)V, sizeof *m->counts);
    m->in = attn__w2v_rows(V, D);
    if (!m->words || !m->counts || !m->in) {
        attn_w2v_free(m);
        return attn__error(ATTN_ERR_OOM, "%s: out of memory for %lld words of %d dimensions", fn, (long long)V, D);
    }
    *out = m;
    return ATTN_OK;
}

void attn_w2v_free(attn_w2v *m) {
    if (!m) return;
    if (m->words)
        for (int64_t i = 0; i < m->V; i++) free(m->words[i]);
    free(m->words);
    free(m->counts);
    free(m->in);
    free(m->out);
    free(m->table);
    if (m->hash) {
        attn__w2v_hash *h = m->hash;
        free(h->slot);
        free(h);
    }
    free(m);
}

/* ---- build ----------------------------------------------------------------------------- */

attn_status attn_w2v_build(attn_w2v **out, const attn_w2v_config *cfg, const char *text, size_t len) {
    const char *fn = "attn_w2v_build";
    if (!out) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL output", fn);
    *out = NULL;
    if (!cfg || (!text && len)) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL config or text", fn);
    attn_status st = attn_w2v_config_check(cfg);
    if (st) return st;
    counter c;
    memset(&c, 0, sizeof c);
    size_t pos = 0;
    const char *w;
    size_t n;
    int nl, r;
    int64_t total = 0;
    while ((r = next_word(fn, text, len, &pos, &w, &n, &nl)) == 1) {
        if (counter_add(&c, w, n)) {
            counter_free(&c);
            return attn__error(ATTN_ERR_OOM, "%s: out of memory counting the words", fn);
        }
        total++;
    }
    if (r < 0) {
        counter_free(&c);
        return ATTN_ERR_FORMAT;
    }
    if (c.n > 0) qsort(c.e, (size_t)c.n, sizeof *c.e, by_count);
    int64_t V = 0;
    while (V < c.n && c.e[V].count >= cfg->min_count) V++;
    if (V == 0) {
        counter_free(&c);
        return attn__error(ATTN_ERR_SHAPE, "%s: empty vocabulary: %lld words in the text, none seen min_count = %lld "
                                           "times", fn, (long long)total, (long long)cfg->min_count);
    }
    attn_w2v *m;
    st = attn__w2v_alloc(&m, V, cfg->dim, fn);
    if (st) {
        counter_free(&c);
        return st;
    }
    m->cfg = *cfg;
    for (int64_t i = 0; i < V; i++) {
        m->words[i] = c.e[i].w; /* moved */
        c.e[i].w = NULL;
        m->counts[i] = c.e[i].count;
        m->train_words += c.e[i].count;
    }
    counter_free(&c);
    const int D = cfg->dim;
    if (!(m->out = attn__w2v_rows(V, D))) {
        attn_w2v_free(m);
        return attn__error(ATTN_ERR_OOM, "%s: out of memory for the output vectors", fn);
    }
    memset(m->out, 0, (size_t)V * (size_t)D * sizeof(float));
    /* in: uniform in [-s/D, s/D) (s = 0.5: the reference), from one stream. */
    uint64_t rnd = cfg->seed;
    const float width = (float)(2.0 * cfg->init_scale); /* 1 by default: the line below is then the reference's */
    for (int64_t i = 0; i < V * D; i++) {
        W2V_LCG(rnd);
        m->in[i] = ((float)((rnd >> 16) & 0xFFFF) / 65536.0f - 0.5f) * width / (float)D;
    }
    if ((st = attn__w2v_index(m, fn)) || (st = attn_w2v_build_table(m))) {
        attn_w2v_free(m);
        return st;
    }
    *out = m;
    return ATTN_OK;
}

double attn_w2v_keep_prob(const attn_w2v *m, int64_t i) {
    if (!m || i < 0 || i >= m->V) return 0;
    const double t = m->cfg.sample, c = (double)m->counts[i];
    if (t <= 0 || c <= 0) return 1;
    const double tn = t * (double)m->train_words;
    const double p = (sqrt(c / tn) + 1) * tn / c;
    return p < 1 ? p : 1;
}

attn_status attn_w2v_build_table(attn_w2v *m) {
    const char *fn = "attn_w2v_build_table";
    if (!m) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL model", fn);
    int64_t size = m->cfg.table_size;
    if (size == 0) size = m->V < 10000 ? 1000000 : m->V > 1000000 ? 100000000 : 100 * m->V;
    if (size < 1000 || size > ((int64_t)1 << 30))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: table_size %lld (expected 0 or 1000 .. 2^30)", fn,
                           (long long)size);
    double z = 0;
    for (int64_t i = 0; i < m->V; i++) z += pow((double)m->counts[i], 0.75);
    if (!(z > 0)) return attn__error(ATTN_ERR_STATE, "%s: the word counts are all zero (a loaded model cannot be "
                                                     "trained)", fn);
    int *t = malloc((size_t)size * sizeof *t);
    if (!t) return attn__error(ATTN_ERR_OOM, "%s: out of memory for %lld entries", fn, (long long)size);
    /* Entry a belongs to the first word whose cumulative share exceeds a / size. */
    int64_t i = 0;
    double cum = pow((double)m->counts[0], 0.75) / z;
    for (int64_t a = 0; a < size; a++) {
        t[a] = (int)i;
        if ((double)a / (double)size > cum && i < m->V - 1) {
            i++;
            cum += pow((double)m->counts[i], 0.75) / z;
        }
    }
    free(m->table);
    m->table = t;
    m->table_entries = size;
    return ATTN_OK;
}

/* ---- the update ------------------------------------------------------------------------- */

typedef struct w2v_sig {
    float table[W2V_EXP_TABLE + 1];
    int exact, skip_sat;
} w2v_sig;

static void sig_init(w2v_sig *s, int exact, int skip_sat) {
    s->exact = exact;
    s->skip_sat = skip_sat;
    for (int i = 0; i <= W2V_EXP_TABLE; i++) {
        double x = ((double)i / W2V_EXP_TABLE * 2 - 1) * W2V_MAX_EXP;
        s->table[i] = (float)(1.0 / (1.0 + exp(-x)));
    }
}

static inline float sig_of(const w2v_sig *s, float f) {
    if (s->exact) return 1.0f / (1.0f + expf(-f));
    if (f > W2V_MAX_EXP) return 1.0f;
    if (f < -W2V_MAX_EXP) return 0.0f;
    /* The reference's index: (f + 6) * (1000 / 6 / 2) in integer arithmetic, i.e. * 83. */
    return s->table[(int)((f + W2V_MAX_EXP) * (W2V_EXP_TABLE / W2V_MAX_EXP / 2))];
}

/* Dot product in a fixed order (8 partial sums, lane j summing elements
 * j, j + 8, ...; then ((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7)) and the tail in
 * order), so every vector width (and the scalar twin) gives the same bits.
 * GCC's vector extension maps a v8 to one AVX register or two SSE ones. */
#if defined(__GNUC__) && !defined(ATTN_W2V_SCALAR)
typedef float w2v_v8 __attribute__((vector_size(32)));

/* (a macro: a function returning a vector type warns about the ABI under SSE2) */
#define W2V_LOAD(v, p) memcpy(&(v), (p), sizeof(w2v_v8))

static inline float w2v_dot(const float *restrict a, const float *restrict b, int n) {
    w2v_v8 s = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        w2v_v8 va, vb;
        W2V_LOAD(va, a + i);
        W2V_LOAD(vb, b + i);
        s += va * vb;
    }
    float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

static inline void w2v_axpy(float *restrict y, float g, const float *restrict x, int n) {
    int i = 0;
    const w2v_v8 gv = {g, g, g, g, g, g, g, g};
    for (; i + 8 <= n; i += 8) {
        w2v_v8 vy, vx;
        W2V_LOAD(vy, y + i);
        W2V_LOAD(vx, x + i);
        vy += gv * vx;
        memcpy(y + i, &vy, sizeof vy);
    }
    for (; i < n; i++) y[i] += g * x[i];
}
#else
static inline float w2v_dot(const float *restrict a, const float *restrict b, int n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

static inline void w2v_axpy(float *restrict y, float g, const float *restrict x, int n) {
    for (int i = 0; i < n; i++) y[i] += g * x[i];
}
#endif

/* Asks for the cache lines of one row (a hint: no effect on results). */
static inline void w2v_prefetch(const float *row, int D) {
#if defined(__GNUC__)
    for (int i = 0; i < D; i += 16) __builtin_prefetch(row + i);
#else
    (void)row;
    (void)D;
#endif
}

/* The shared step: x the input vector, e the error accumulator (zeroed by
 * the caller), targets[0] positive, the rest negative (a repeat of
 * targets[0] skipped). Forward: f_k = x . out[t_k], p_k = sigma(f_k);
 * backward of L = -log sigma(f_0) - sum log sigma(-f_k): dL/df_k = p_k - l_k,
 * so with g_k = alpha (l_k - p_k) the SGD step is out[t_k] += g_k x and
 * x += sum g_k out[t_k] (e, with out's values before their update). */
#if defined(__GNUC__)
/* always inlined: each target_clones copy of train_part then gets its own
 * vector width for it (perf: left out of line it ran as SSE2, 42% of a CBOW
 * epoch) */
__attribute__((always_inline))
#endif
static inline double w2v_targets(float *restrict x, float *restrict e, float *restrict outv,
                                 const int32_t *targets, int nt, float alpha, int D, const w2v_sig *sg,
                                 int want_loss) {
    double loss = 0;
    for (int k = 0; k < nt; k++) {
        const int32_t t = targets[k];
        if (k > 0 && t == targets[0]) continue;
        float *o = outv + (size_t)t * (size_t)D;
        const float f = w2v_dot(x, o, D);
        const float label = k == 0 ? 1.0f : 0.0f;
        if (want_loss) {
            const double fd = k == 0 ? -(double)f : (double)f; /* -log sigma(+-f) = log(1 + exp(-+f)) */
            loss += fd > 0 ? fd + log1p(exp(-fd)) : log1p(exp(fd));
        }
        if (sg->skip_sat && (f <= -W2V_MAX_EXP || f >= W2V_MAX_EXP)) continue; /* gensim's rule */
        const float g = (label - sig_of(sg, f)) * alpha;
        w2v_axpy(e, g, o, D);
        w2v_axpy(o, g, x, D);
    }
    return loss;
}

attn_status attn_w2v_update(attn_w2v *m, const int64_t *inputs, int n_inputs, const int64_t *targets,
                            int n_targets, float alpha, double *loss) {
    const char *fn = "attn_w2v_update";
    if (!m || !inputs || !targets || n_inputs < 1 || n_targets < 1 || n_targets > ATTN_W2V_MAX_NEGATIVE + 1 ||
        n_inputs > 2 * ATTN_W2V_MAX_WINDOW)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL model or indices, or %d inputs and %d targets "
                                                 "(expected 1 .. %d and 1 .. %d)", fn, n_inputs, n_targets,
                           2 * ATTN_W2V_MAX_WINDOW, ATTN_W2V_MAX_NEGATIVE + 1);
    if (!m->out) return attn__error(ATTN_ERR_STATE, "%s: the model has no output vectors (a loaded model)", fn);
    if (!isfinite(alpha)) return attn__error(ATTN_ERR_INVALID_ARG, "%s: alpha %g is not finite", fn, alpha);
    for (int k = 0; k < n_inputs; k++)
        if (inputs[k] < 0 || inputs[k] >= m->V)
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: input %d is %lld (expected 0 .. %lld)", fn, k,
                               (long long)inputs[k], (long long)m->V - 1);
    int32_t tg[ATTN_W2V_MAX_NEGATIVE + 1];
    for (int k = 0; k < n_targets; k++) {
        if (targets[k] < 0 || targets[k] >= m->V)
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: target %d is %lld (expected 0 .. %lld)", fn, k,
                               (long long)targets[k], (long long)m->V - 1);
        tg[k] = (int32_t)targets[k];
    }
    const int D = m->D;
    float *x = calloc((size_t)D * 2, sizeof *x);
    if (!x) return attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    float *e = x + D;
    for (int k = 0; k < n_inputs; k++) w2v_axpy(x, 1.0f, m->in + (size_t)inputs[k] * (size_t)D, D);
    if (n_inputs > 1)
        for (int i = 0; i < D; i++) x[i] /= (float)n_inputs;
    w2v_sig sg;
    sig_init(&sg, m->cfg.exact_sigmoid, m->cfg.skip_saturated);
    const double l = w2v_targets(x, e, m->out, tg, n_targets, alpha, D, &sg, 1);
    for (int k = 0; k < n_inputs; k++) w2v_axpy(m->in + (size_t)inputs[k] * (size_t)D, 1.0f, e, D);
    free(x);
    if (loss) *loss = l;
    return ATTN_OK;
}

/* ---- training ------------------------------------------------------------------------------ */

typedef struct w2v_job {
    attn_w2v *m;
    const int32_t *ids;      /* the corpus, in-vocabulary words */
    const int64_t *sent;     /* sentence starts, n_sent + 1 entries (the last = n_ids) */
    int64_t n_sent, n_ids;
    float *keep;             /* per word: keep probability */
    w2v_sig sig;
    attn_w2v_progress_fn progress;
    void *user;
    _Atomic int64_t done;    /* words processed, all threads */
    _Atomic int stop;
    int stopped;
} w2v_job;

static int64_t first_sentence_at(const w2v_job *j, int64_t word) {
    int64_t lo = 0, hi = j->n_sent; /* first s with sent[s] >= word */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (j->sent[mid] < word) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* One word's draws: the window's b, then targets[0] = word and neg
 * negatives from the table, each output row prefetched. */
static inline void w2v_draw(uint64_t *rnd, int32_t word, int window, int neg, const int *table, int64_t tsize,
                            const float *outv, int D, int *b, int32_t *targets) {
    W2V_LCG(*rnd);
    *b = (int)W2V_BELOW(*rnd, window);
    targets[0] = word;
    w2v_prefetch(outv + (size_t)word * (size_t)D, D);
    for (int d = 1; d <= neg; d++) {
        W2V_LCG(*rnd);
        targets[d] = table[W2V_BELOW(*rnd, tsize)];
        w2v_prefetch(outv + (size_t)targets[d] * (size_t)D, D);
    }
}

/* Thread `tid` of nt: sentences [s0, s1) of every epoch. scratch: D * 2
 * floats + max_sentence ints, its own. */
W2V_CLONES
static void train_part(w2v_job *j, int tid, int nt, float *neu1, float *neu1e, int32_t *sen) {
    attn_w2v *m = j->m;
    const attn_w2v_config *c = &m->cfg;
    const int D = m->D, window = c->window, neg = c->negative, cbow = c->cbow;
    const int64_t s0 = first_sentence_at(j, j->n_ids * tid / nt);
    const int64_t s1 = first_sentence_at(j, j->n_ids * (tid + 1) / nt);
    const int64_t total = (int64_t)c->epochs * j->n_ids;
    const double alpha0 = c->alpha, floor_a = c->alpha * c->min_alpha_ratio;
    const int64_t tsize = m->table_entries;
    const int *table = m->table;
    float *in = m->in, *outv = m->out;
    uint64_t rnd = c->seed * 0x9E3779B97F4A7C15ULL + (uint64_t)tid;
    int32_t qt[2][ATTN_W2V_MAX_NEGATIVE + 1];
    int qb[2] = {0, 0};
    float alpha = (float)alpha0;
    int64_t local = 0; /* words since the last report to j->done */
    for (int ep = 0; ep < c->epochs; ep++) {
        for (int64_t s = s0; s < s1; s++) {
            if (atomic_load_explicit(&j->stop, memory_order_relaxed)) return;
            const int64_t b0 = j->sent[s], b1 = j->sent[s + 1];
            int n = 0;
            for (int64_t p = b0; p < b1; p++) {
                const int32_t w = j->ids[p];
                if (j->keep[w] < 1.0f) {
                    W2V_LCG(rnd);
                    if (j->keep[w] < (float)((rnd >> 32) & 0xFFFF) / 65536.0f) continue;
                }
                sen[n++] = w;
            }
            local += b1 - b0;
            if (local >= 10000) {
                const int64_t done = atomic_fetch_add_explicit(&j->done, local, memory_order_relaxed) + local;
                local = 0;
                double a = alpha0 * (1.0 - (double)done / ((double)total + 1.0));
                alpha = (float)(a < floor_a ? floor_a : a);
                if (tid == 0 && j->progress) {
                    attn_w2v_progress pr = {done, total, ep, alpha};
                    if (j->progress(j->user, &pr)) {
                        atomic_store(&j->stop, 1);
                        return;
                    }
                }
            }
            /* CBOW draws (b, targets) of word i + 1 before it trains word i, so that the
             * rows of word i + 1's targets are on their way while word i computes: the
             * same draws in the same order as drawing each at its own word. */
            if (cbow && n > 0) w2v_draw(&rnd, sen[0], window, neg, table, tsize, outv, D, &qb[0], qt[0]);
            for (int i = 0; i < n; i++) {
                const int32_t word = sen[i];
                int b;
                int32_t *targets = qt[i & 1];
                if (cbow) {
                    b = qb[i & 1];
                    if (i + 1 < n)
                        w2v_draw(&rnd, sen[i + 1], window, neg, table, tsize, outv, D, &qb[(i + 1) & 1],
                                 qt[(i + 1) & 1]);
                } else {
                    /* the word, then neg draws from the table */
                    w2v_draw(&rnd, word, window, neg, table, tsize, outv, D, &b, targets);
                }
                const int lo = i - window + b < 0 ? 0 : i - window + b;
                const int hi = i + window - b >= n ? n - 1 : i + window - b;
                if (cbow) {
                    int cw = 0;
                    memset(neu1, 0, (size_t)D * sizeof *neu1);
                    for (int k = lo; k <= hi; k++)
                        if (k != i) {
                            w2v_axpy(neu1, 1.0f, in + (size_t)sen[k] * (size_t)D, D);
                            cw++;
                        }
                    if (!cw) continue;
                    const float inv = 1.0f / (float)cw;
                    for (int d = 0; d < D; d++) neu1[d] *= inv;
                    memset(neu1e, 0, (size_t)D * sizeof *neu1e);
                    w2v_targets(neu1, neu1e, outv, targets, neg + 1, alpha, D, &j->sig, 0);
                    for (int k = lo; k <= hi; k++)
                        if (k != i) w2v_axpy(in + (size_t)sen[k] * (size_t)D, 1.0f, neu1e, D);
                } else {
                    for (int k = lo; k <= hi; k++) {
                        if (k == i) continue;
                        float *x = in + (size_t)sen[k] * (size_t)D;
                        memset(neu1e, 0, (size_t)D * sizeof *neu1e);
                        w2v_targets(x, neu1e, outv, targets, neg + 1, alpha, D, &j->sig, 0);
                        w2v_axpy(x, 1.0f, neu1e, D);
                        /* fresh negatives for the next context word, as the reference */
                        for (int d = 1; d <= neg; d++) {
                            W2V_LCG(rnd);
                            targets[d] = table[W2V_BELOW(rnd, tsize)];
                            w2v_prefetch(outv + (size_t)targets[d] * (size_t)D, D);
                        }
                        const int nk = k + 1 == i ? k + 2 : k + 1;
                        if (nk <= hi) w2v_prefetch(in + (size_t)sen[nk] * (size_t)D, D);
                    }
                }
            }
        }
    }
    atomic_fetch_add_explicit(&j->done, local, memory_order_relaxed);
}

/* Encodes the text as in-vocabulary ids and sentence starts (pieces of at
 * most max_sentence words). */
static attn_status encode(const attn_w2v *m, const char *text, size_t len, int32_t **ids_out, int64_t *n_ids,
                          int64_t **sent_out, int64_t *n_sent) {
    const char *fn = "attn_w2v_train";
    int64_t cap = 1 << 16, scap = 1 << 12, n = 0, ns = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    int64_t *sent = malloc((size_t)scap * sizeof *sent);
    size_t pos = 0;
    const char *w;
    size_t wl;
    int nl, r, new_sent = 1;
    int64_t in_sent = 0;
    if (!ids || !sent) goto oom;
    while ((r = next_word(fn, text, len, &pos, &w, &wl, &nl)) == 1) {
        if (nl) new_sent = 1;
        const int64_t k = find_bytes(m, w, wl);
        if (k < 0) continue;
        if (new_sent || in_sent >= m->cfg.max_sentence) {
            if (ns + 2 > scap) {
                int64_t *t = realloc(sent, (size_t)(scap *= 2) * sizeof *sent);
                if (!t) goto oom;
                sent = t;
            }
            sent[ns++] = n;
            in_sent = 0;
            new_sent = 0;
        }
        if (n == cap) {
            int32_t *t = realloc(ids, (size_t)(cap *= 2) * sizeof *ids);
            if (!t) goto oom;
            ids = t;
        }
        ids[n++] = (int32_t)k;
        in_sent++;
    }
    if (r < 0) {
        free(ids);
        free(sent);
        return ATTN_ERR_FORMAT;
    }
    sent[ns] = n;
    *ids_out = ids;
    *n_ids = n;
    *sent_out = sent;
    *n_sent = ns;
    return ATTN_OK;
oom:
    free(ids);
    free(sent);
    return attn__error(ATTN_ERR_OOM, "%s: out of memory encoding the text", fn);
}

attn_status attn_w2v_train(attn_w2v *m, const char *text, size_t len, attn_w2v_progress_fn progress, void *user,
                           int *stopped) {
    const char *fn = "attn_w2v_train";
    if (stopped) *stopped = 0;
    if (!m || (!text && len)) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL model or text", fn);
    attn_status st = attn_w2v_config_check(&m->cfg);
    if (st) return st;
    if (m->cfg.dim != m->D)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: cfg.dim %d differs from the model's %d", fn, m->cfg.dim, m->D);
    if (!m->out || !m->table)
        return attn__error(ATTN_ERR_STATE, "%s: the model has no output vectors or negative table (a loaded model "
                                           "cannot be trained)", fn);
    w2v_job *j = calloc(1, sizeof *j);
    if (!j) return attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    int32_t *ids = NULL;
    int64_t *sent = NULL;
    if ((st = encode(m, text, len, &ids, &j->n_ids, &sent, &j->n_sent))) {
        free(j);
        return st;
    }
    if (j->n_ids == 0) {
        free(ids);
        free(sent);
        free(j);
        return attn__error(ATTN_ERR_SHAPE, "%s: no word of the text (%zu bytes) is in the vocabulary of %lld words",
                           fn, len, (long long)m->V);
    }
    j->m = m;
    j->ids = ids;
    j->sent = sent;
    j->progress = progress;
    j->user = user;
    atomic_init(&j->done, 0);
    atomic_init(&j->stop, 0);
    sig_init(&j->sig, m->cfg.exact_sigmoid, m->cfg.skip_saturated);
    j->keep = malloc((size_t)m->V * sizeof *j->keep);
    int nt = m->cfg.n_threads;
    if (nt > j->n_sent) nt = (int)j->n_sent;
    const size_t per = (size_t)m->D * 2 + ((size_t)m->cfg.max_sentence + 15) / 16 * 16 + 16;
    float *scratch = malloc((size_t)nt * per * sizeof(float));
    if (!j->keep || !scratch) {
        st = attn__error(ATTN_ERR_OOM, "%s: out of memory for the thread buffers", fn);
        goto done;
    }
    for (int64_t i = 0; i < m->V; i++) j->keep[i] = (float)attn_w2v_keep_prob(m, i);
#if defined(_OPENMP)
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int tid = omp_get_thread_num(), n_act = omp_get_num_threads();
        float *sc = scratch + (size_t)tid * per;
        train_part(j, tid, n_act, sc, sc + m->D, (int32_t *)(sc + 2 * (size_t)m->D));
    }
#else
    /* Without OpenMP the parts run one after another (the same split). */
    for (int tid = 0; tid < nt; tid++) {
        float *sc = scratch + (size_t)tid * per;
        train_part(j, tid, nt, sc, sc + m->D, (int32_t *)(sc + 2 * (size_t)m->D));
    }
#endif
    if (atomic_load(&j->stop) && stopped) *stopped = 1;
    for (int64_t i = 0; i < m->V * (int64_t)m->D; i++)
        if (!isfinite(m->in[i])) {
            st = attn__error(ATTN_ERR_NUMERIC, "%s: the vector of '%s' is not finite after training (alpha %g is "
                                               "too large)", fn, m->words[i / m->D], m->cfg.alpha);
            break;
        }
done:
    free(scratch);
    free(j->keep);
    free(ids);
    free(sent);
    free(j);
    return st;
}
