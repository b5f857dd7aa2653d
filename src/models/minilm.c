/* minilm.c: pretrained BERT sentence encoders in the sentence-transformers
 * layout (include/attn/minilm.h, docs/minilm.md): the configuration files,
 * the Hugging Face name map, mean pooling and L2 normalisation. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/minilm.h"
#include "attn/ops.h"
#include "attn/safetensors.h"

/* ---- the small JSON files ----------------------------------------------------------- */

/* The whole file, NUL-terminated, or NULL with *missing set when it does not
 * exist (other errors set the status). */
static char *read_text(const char *path, int *missing, attn_status *st) {
    *missing = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            *missing = 1;
        *st = attn__error(ATTN_ERR_IO, "attn_minilm_load: cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            if (cap > (1u << 24)) break; /* configuration files are small */
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
        const size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    const int bad = ferror(f) || !buf || n + 1 >= cap;
    fclose(f);
    if (bad) {
        free(buf);
        *st = attn__error(ATTN_ERR_FORMAT, "attn_minilm_load: cannot read %s (or over 16 MiB)", path);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* The value after "key": in a flat JSON object (skipping spaces), or NULL. */
static const char *json_value(const char *json, const char *key) {
    const size_t kl = strlen(key);
    for (const char *p = strchr(json, '"'); p; p = strchr(p + 1, '"')) {
        if (strncmp(p + 1, key, kl) == 0 && p[kl + 1] == '"') {
            const char *q = p + kl + 2;
            while (isspace((unsigned char)*q)) q++;
            if (*q != ':') continue;
            q++;
            while (isspace((unsigned char)*q)) q++;
            return q;
        }
    }
    return NULL;
}

static int json_int(const char *json, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    const char *v = json_value(json, key);
    if (!v) return -1;
    char *end;
    errno = 0;
    const long long x = strtoll(v, &end, 10);
    if (end == v || errno || x < lo || x > hi || *end == '.' || *end == 'e' || *end == 'E') return -2;
    *out = x;
    return 0;
}

static int json_bool(const char *json, const char *key, int *out) {
    const char *v = json_value(json, key);
    if (!v) return -1;
    if (strncmp(v, "true", 4) == 0) *out = 1;
    else if (strncmp(v, "false", 5) == 0) *out = 0;
    else return -2;
    return 0;
}

/* 1 when s is one JSON value of the kind `top` ('{' or '[') with balanced
 * brackets and terminated strings and nothing after it but spaces: not a
 * full parser (the values between are read by the key lookups above), but
 * a truncated or garbled file is caught instead of read as "no such key"
 * (a garbage sentence_bert_config.json or a "{not json" modules.json gave
 * the defaults silently). */
static int json_well_formed(const char *s, char top) {
    char stack[64];
    int depth = 0;
    while (isspace((unsigned char)*s)) s++;
    if (*s != top) return 0;
    for (; *s; s++) {
        const char c = *s;
        if (c == '"') {
            for (s++; *s && *s != '"'; s++)
                if (*s == '\\' && !*++s) return 0;
            if (!*s) return 0;
        } else if (c == '{' || c == '[') {
            if (depth == (int)sizeof stack) return 0;
            stack[depth++] = c == '{' ? '}' : ']';
        } else if (c == '}' || c == ']') {
            if (depth == 0 || stack[--depth] != c) return 0;
            if (depth == 0) {
                for (s++; isspace((unsigned char)*s); s++) {
                }
                return *s == '\0';
            }
        }
    }
    return 0;
}

/* 1 when the value of key is the string s, 0 when another string, -1 when absent. */
static int json_string_is(const char *json, const char *key, const char *s) {
    const char *v = json_value(json, key);
    if (!v) return -1;
    const size_t n = strlen(s);
    return v[0] == '"' && strncmp(v + 1, s, n) == 0 && v[n + 1] == '"';
}

/* ---- the name map ------------------------------------------------------------------- */

typedef struct hf_piece {
    const attn_st_tensor *src;
    attn_tensor *dst;
    int64_t row0;  /* first row of dst the source fills */
} hf_piece;

static const attn_st_tensor *find_hf(const attn_safetensors *f, const char *name) {
    const attn_st_tensor *t = attn_safetensors_find(f, name);
    if (!t) {
        char full[256];
        snprintf(full, sizeof full, "bert.%s", name);
        t = attn_safetensors_find(f, full);
    }
    return t;
}

attn_status attn_minilm_load_hf(const char *path, attn_bert *m) {
    static const char fn[] = "attn_minilm_load_hf";
    if (!path || !m) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (!m->type_emb || m->cfg.norm_first)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: the model must be post-LN with type embeddings (Hugging Face's BERT)", fn);
    const int L = m->cfg.n_layers;
    const int64_t E = m->cfg.d_model;
    attn_safetensors *f = NULL;
    attn_status st = attn_safetensors_open(&f, path);
    if (st != ATTN_OK) return st;
    const int n_pieces = 5 + 16 * L;
    hf_piece *pc = calloc((size_t)n_pieces, sizeof *pc);
    if (!pc) {
        attn_safetensors_close(f);
        return attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    }
    int k = 0;
#define MAP(name, dst_, row0_)                                                                   \
    do {                                                                                         \
        pc[k].src = find_hf(f, name);                                                            \
        pc[k].dst = (dst_);                                                                      \
        pc[k].row0 = (row0_);                                                                    \
        if (!pc[k].src) {                                                                        \
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s has no tensor %s (nor bert.%s)", fn, path, \
                             name, name);                                                        \
            goto done;                                                                           \
        }                                                                                        \
        k++;                                                                                     \
    } while (0)
    MAP("embeddings.word_embeddings.weight", m->tok_emb, 0);
    MAP("embeddings.position_embeddings.weight", m->pos_emb, 0);
    MAP("embeddings.token_type_embeddings.weight", m->type_emb, 0);
    MAP("embeddings.LayerNorm.weight", m->emb_norm_w, 0);
    MAP("embeddings.LayerNorm.bias", m->emb_norm_b, 0);
    for (int l = 0; l < L; l++) {
        const attn_block *b = &m->blocks[l];
        static const char *const qkv[3] = {"query", "key", "value"};
        char name[160];
        for (int j = 0; j < 3; j++) {
            snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.weight", l, qkv[j]);
            MAP(name, b->self_attn.in_proj_weight, j * E);
            snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.bias", l, qkv[j]);
            MAP(name, b->self_attn.in_proj_bias, j * E);
        }
        static const char *const hf[5] = {"attention.output.dense", "attention.output.LayerNorm",
                                          "intermediate.dense", "output.dense", "output.LayerNorm"};
        attn_tensor *const w[5] = {b->self_attn.out_proj_weight, b->norm_w[0], b->linear1_w,
                                   b->linear2_w, b->norm_w[1]};
        attn_tensor *const bi[5] = {b->self_attn.out_proj_bias, b->norm_b[0], b->linear1_b,
                                    b->linear2_b, b->norm_b[1]};
        for (int j = 0; j < 5; j++) {
            snprintf(name, sizeof name, "encoder.layer.%d.%s.weight", l, hf[j]);
            MAP(name, w[j], 0);
            snprintf(name, sizeof name, "encoder.layer.%d.%s.bias", l, hf[j]);
            MAP(name, bi[j], 0);
        }
    }
#undef MAP
    /* shapes and dtypes, all before any copy */
    for (int i = 0; i < k; i++) {
        const attn_st_tensor *s = pc[i].src;
        const attn_tensor *d = pc[i].dst;
        if (!d) {
            st = attn__error(ATTN_ERR_INVALID_ARG, "%s: the model has no parameter for %s", fn, s->name);
            goto done;
        }
        if (s->dtype != ATTN_ST_F32 && s->dtype != ATTN_ST_F16 && s->dtype != ATTN_ST_BF16) {
            st = attn__error(ATTN_ERR_DTYPE, "%s: %s is %s: expected F32, F16 or BF16", fn, s->name,
                             attn_st_dtype_name(s->dtype));
            goto done;
        }
        /* the source is rows [row0, row0 + rows) of the destination */
        int64_t rows = d->shape[0];
        if (d == m->blocks[0].self_attn.in_proj_weight || d == m->blocks[0].self_attn.in_proj_bias)
            rows = E;
        for (int l = 1; l < L; l++)
            if (d == m->blocks[l].self_attn.in_proj_weight || d == m->blocks[l].self_attn.in_proj_bias)
                rows = E;
        int ok = s->ndim == d->ndim && s->shape[0] == rows && pc[i].row0 + rows <= d->shape[0];
        for (int a = 1; ok && a < d->ndim; a++) ok = s->shape[a] == d->shape[a];
        if (!ok) {
            char want[64];
            if (d->ndim == 2)
                snprintf(want, sizeof want, "[%lld, %lld]", (long long)rows, (long long)d->shape[1]);
            else
                snprintf(want, sizeof want, "[%lld]", (long long)rows);
            st = attn__error(ATTN_ERR_SHAPE, "%s: %s has %d dims [%lld%s]: expected %s (for %s)", fn,
                             s->name, s->ndim, (long long)(s->ndim > 0 ? s->shape[0] : 0),
                             s->ndim > 1 ? ", ..." : "", want, d->name);
            goto done;
        }
    }
    for (int i = 0; i < k; i++) {
        const int64_t row = pc[i].dst->ndim == 2 ? pc[i].dst->shape[1] : 1;
        st = attn_safetensors_read_f32(pc[i].src, attn_f32(pc[i].dst) + pc[i].row0 * row);
        if (st != ATTN_OK) goto done;
    }
done:
    free(pc);
    attn_safetensors_close(f);
    return st;
}

/* ---- loading a directory ------------------------------------------------------------ */

void attn_minilm_free(attn_minilm *m) {
    if (!m) return;
    attn_bert_free(m->bert);
    attn_params_free(m->params);
    attn_wordpiece_free(m->tok);
    free(m);
}

static void join(char *out, size_t cap, const char *dir, const char *name) {
    snprintf(out, cap, "%s/%s", dir, name);
}

attn_status attn_minilm_load(const char *dir, attn_minilm **out) {
    static const char fn[] = "attn_minilm_load";
    if (out) *out = NULL;
    if (!dir || !out) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (strlen(dir) > 3000) return attn__error(ATTN_ERR_INVALID_ARG, "%s: path too long", fn);
    char path[3100];
    attn_status st = ATTN_OK;
    int missing;
    attn_minilm *m = calloc(1, sizeof *m);
    if (!m) return attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    char *cfg = NULL, *sb = NULL, *pool = NULL, *mods = NULL;
    join(path, sizeof path, dir, "config.json");
    cfg = read_text(path, &missing, &st);
    if (!cfg) goto fail;
    if (!json_well_formed(cfg, '{')) {
        st = attn__error(ATTN_ERR_FORMAT, "%s: %s is not a JSON object", fn, path);
        goto fail;
    }
    attn_bert_config bc;
    memset(&bc, 0, sizeof bc);
    {
        int64_t E = 0, L = 0, H = 0, F = 0, V = 0, P = 0, TV = 0;
        if (json_int(cfg, "hidden_size", 1, 1 << 16, &E) || json_int(cfg, "num_hidden_layers", 1, 1024, &L) ||
            json_int(cfg, "num_attention_heads", 1, 1024, &H) ||
            json_int(cfg, "intermediate_size", 1, 1 << 20, &F) ||
            json_int(cfg, "vocab_size", 2, INT32_MAX, &V) ||
            json_int(cfg, "max_position_embeddings", 2, 1 << 20, &P) ||
            json_int(cfg, "type_vocab_size", 1, 1 << 16, &TV)) {
            st = attn__error(ATTN_ERR_FORMAT,
                             "%s: %s: expected integers hidden_size, num_hidden_layers, "
                             "num_attention_heads, intermediate_size, vocab_size, "
                             "max_position_embeddings, type_vocab_size in range",
                             fn, path);
            goto fail;
        }
        if (json_string_is(cfg, "hidden_act", "gelu") != 1) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s: hidden_act must be \"gelu\" (the erf form)", fn, path);
            goto fail;
        }
        if (json_string_is(cfg, "position_embedding_type", "absolute") == 0) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s: position_embedding_type must be \"absolute\"", fn, path);
            goto fail;
        }
        double eps = 1e-12;
        const char *ev = json_value(cfg, "layer_norm_eps");
        if (ev) {
            char *end;
            eps = strtod(ev, &end);
            if (end == ev || !(eps > 0 && eps < 1)) {
                st = attn__error(ATTN_ERR_FORMAT, "%s: %s: layer_norm_eps must be in (0, 1)", fn, path);
                goto fail;
            }
        }
        bc.vocab = V;
        bc.max_len = P;
        bc.n_layers = (int)L;
        bc.n_heads = (int)H;
        bc.d_model = E;
        bc.d_ff = F;
        bc.ln_eps = (float)eps;
        bc.type_vocab = TV;
    }
    m->max_seq = 256;
    join(path, sizeof path, dir, "sentence_bert_config.json");
    sb = read_text(path, &missing, &st);
    if (sb && !json_well_formed(sb, '{')) {
        st = attn__error(ATTN_ERR_FORMAT, "%s: %s is not a JSON object", fn, path);
        goto fail;
    }
    if (sb) {
        int64_t ms = 0;
        const int r = json_int(sb, "max_seq_length", 2, bc.max_len, &ms);
        if (r == -2) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s: max_seq_length must be in [2, %lld]", fn, path,
                             (long long)bc.max_len);
            goto fail;
        }
        if (r == 0) m->max_seq = (int)ms;
        int lower = 0;
        if (json_bool(sb, "do_lower_case", &lower) == 0 && lower) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s: do_lower_case true is not supported", fn, path);
            goto fail;
        }
    } else if (!missing)
        goto fail;
    if (m->max_seq > bc.max_len) m->max_seq = (int)bc.max_len;
    join(path, sizeof path, dir, "pooling_config.json");
    pool = read_text(path, &missing, &st);
    if (pool && !json_well_formed(pool, '{')) {
        st = attn__error(ATTN_ERR_FORMAT, "%s: %s is not a JSON object", fn, path);
        goto fail;
    }
    if (pool) {
        int mean = 1, other = 0, v = 0;
        if (json_bool(pool, "pooling_mode_mean_tokens", &v) == 0) mean = v;
        static const char *const others[] = {"pooling_mode_cls_token", "pooling_mode_max_tokens",
                                             "pooling_mode_mean_sqrt_len_tokens",
                                             "pooling_mode_weightedmean_tokens",
                                             "pooling_mode_lasttoken"};
        for (int i = 0; i < 5; i++)
            if (json_bool(pool, others[i], &v) == 0 && v) other = 1;
        if (!mean || other) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s: only mean pooling (pooling_mode_mean_tokens "
                             "alone) is supported", fn, path);
            goto fail;
        }
    } else if (!missing)
        goto fail;
    m->normalize = 1;
    join(path, sizeof path, dir, "modules.json");
    mods = read_text(path, &missing, &st);
    if (mods && !json_well_formed(mods, '[')) {
        st = attn__error(ATTN_ERR_FORMAT, "%s: %s is not a JSON array", fn, path);
        goto fail;
    }
    if (mods)
        m->normalize = strstr(mods, "sentence_transformers.models.Normalize") != NULL;
    else if (!missing)
        goto fail;
    st = ATTN_OK;
    join(path, sizeof path, dir, "vocab.txt");
    st = attn_wordpiece_load(path, &m->tok);
    if (st != ATTN_OK) goto fail;
    if (attn_wordpiece_size(m->tok) != bc.vocab) {
        st = attn__error(ATTN_ERR_FORMAT, "%s: %s has %d tokens, config.json says vocab_size %lld", fn,
                         path, attn_wordpiece_size(m->tok), (long long)bc.vocab);
        goto fail;
    }
    st = attn_params_new(&m->params);
    if (st == ATTN_OK) st = attn_bert_new(&m->bert, m->params, &bc, NULL);
    if (st != ATTN_OK) goto fail;
    m->dim = bc.d_model;
    join(path, sizeof path, dir, "model.safetensors");
    st = attn_minilm_load_hf(path, m->bert);
    if (st != ATTN_OK) goto fail;
    free(cfg);
    free(sb);
    free(pool);
    free(mods);
    *out = m;
    return ATTN_OK;
fail:
    free(cfg);
    free(sb);
    free(pool);
    free(mods);
    attn_minilm_free(m);
    return st;
}

attn_status attn_minilm_set_max_seq(attn_minilm *m, int max_seq) {
    if (!m) return attn__error(ATTN_ERR_INVALID_ARG, "attn_minilm_set_max_seq: NULL model");
    if (max_seq < 2 || max_seq > m->bert->cfg.max_len)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_minilm_set_max_seq: %d tokens: expected 2 .. %lld (the model's "
                           "positions)",
                           max_seq, (long long)m->bert->cfg.max_len);
    m->max_seq = max_seq;
    return ATTN_OK;
}

/* ---- embeddings --------------------------------------------------------------------- */

attn_status attn_minilm_embed_ids(attn_ctx *ctx, const attn_minilm *m, const int32_t *ids,
                                  const int32_t *lengths, int64_t B, int64_t T, float *out) {
    static const char fn[] = "attn_minilm_embed_ids";
    if (!ctx || !m || !ids || !lengths || !out)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (B < 1 || T < 1 || B > (1 << 24) || T > m->bert->cfg.max_len)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: B %lld, T %lld: expected B >= 1, 1 <= T <= %lld",
                           fn, (long long)B, (long long)T, (long long)m->bert->cfg.max_len);
    attn_tensor *tid = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T}, ids);
    attn_tensor *tlen = attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){B}, lengths);
    attn_tensor *h = attn_bert_encode_typed(ctx, m->bert, tid, NULL, tlen, NULL);
    if (h) h = attn_contiguous(ctx, h);
    if (!h) {
        const attn_status st = attn_ctx_status(ctx);
        return attn__error(st ? st : ATTN_ERR_STATE, "%s: %s", fn, attn_ctx_error(ctx));
    }
    const int64_t E = m->dim;
    const float *hp = attn_f32(h);
    for (int64_t b = 0; b < B; b++) {
        /* mean over the real tokens (sentence-transformers: sum(h mask) / sum(mask)),
         * accumulated in double */
        const int64_t n = lengths[b];
        float *o = out + b * E;
        double ss = 0;
        for (int64_t e = 0; e < E; e++) {
            double s = 0;
            for (int64_t t = 0; t < n; t++) s += hp[(b * T + t) * E + e];
            o[e] = (float)(s / (double)n);
        }
        if (m->normalize) {
            for (int64_t e = 0; e < E; e++) ss += (double)o[e] * o[e];
            double norm = sqrt(ss);
            if (norm < 1e-12) norm = 1e-12;
            for (int64_t e = 0; e < E; e++) o[e] = (float)(o[e] / norm);
        }
    }
    return ATTN_OK;
}

typedef struct len_idx {
    int32_t len;
    int64_t idx;
} len_idx;

/* Longest first: the first batch takes the most arena memory, and the
 * later ones reuse pages already touched (ascending order touched new
 * pages at every batch: 3% of the time in page faults). */
static int cmp_len(const void *a, const void *b) {
    const len_idx *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

attn_status attn_minilm_embed(attn_ctx *ctx, const attn_minilm *m, const char *const *texts,
                              const size_t *lens, int64_t n, int batch, float *out,
                              int32_t *n_tokens, int64_t *n_truncated) {
    static const char fn[] = "attn_minilm_embed";
    if (!ctx || !m || (n > 0 && (!texts || !out)))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (n < 0 || batch < 1 || batch > (1 << 16))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: n %lld, batch %d: expected n >= 0, 1 <= batch <= 65536",
                           fn, (long long)n, batch);
    const int S = m->max_seq;
    int32_t *ids = malloc((size_t)(n > 0 ? n : 1) * (size_t)S * sizeof *ids);
    len_idx *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    int32_t *bids = malloc((size_t)batch * (size_t)S * sizeof *bids);
    int32_t *blen = malloc((size_t)batch * sizeof *blen);
    float *bout = malloc((size_t)batch * (size_t)m->dim * sizeof *bout);
    attn_status st = ATTN_OK;
    if (!ids || !order || !bids || !blen || !bout) {
        st = attn__error(ATTN_ERR_OOM, "%s: out of memory for %lld texts", fn, (long long)n);
        goto done;
    }
    int64_t cut = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!texts[i]) {
            st = attn__error(ATTN_ERR_INVALID_ARG, "%s: text %lld is NULL", fn, (long long)i);
            goto done;
        }
        int32_t k = 0;
        int64_t pieces = 0;
        st = attn_wordpiece_encode(m->tok, texts[i], lens ? lens[i] : strlen(texts[i]), S,
                                   ids + i * S, &k, &pieces);
        if (st != ATTN_OK) goto done;
        cut += pieces > S - 2;
        order[i].len = k;
        order[i].idx = i;
        if (n_tokens) n_tokens[i] = k;
    }
    qsort(order, (size_t)n, sizeof *order, cmp_len);
    /* The weights are fixed while this runs: under bf16 the products pack
     * each one into tiles once instead of at every batch (thawed below). */
    if (attn_ctx_precision(ctx) == ATTN_PRECISION_BF16)
        for (int i = 0; i < attn_params_count(m->params) && st == ATTN_OK; i++) {
            const attn_tensor *w = attn_params_at(m->params, i);
            if (w->ndim == 2) st = attn_ctx_freeze_weight(ctx, w);
        }
    for (int64_t s0 = 0; st == ATTN_OK && s0 < n; s0 += batch) {
        const int64_t B = n - s0 < batch ? n - s0 : batch;
        /* A batch too large for the context's arena runs in halves, then
         * quarters ...: a text's embedding does not depend on its batch.
         * Sorted longest first, so a part's first row is its longest. */
        int64_t part = B;
        for (int64_t p0 = 0; p0 < B;) {
            const int64_t pb = B - p0 < part ? B - p0 : part;
            const int64_t T = order[s0 + p0].len;
            for (int64_t b = 0; b < pb; b++) {
                const int64_t i = order[s0 + p0 + b].idx;
                const int32_t k = order[s0 + p0 + b].len;
                memcpy(bids + b * T, ids + i * S, (size_t)k * sizeof *bids);
                for (int64_t t = k; t < T; t++) bids[b * T + t] = attn_wordpiece_pad_id(m->tok);
                blen[b] = k;
            }
            attn_ctx_reset(ctx);
            st = attn_minilm_embed_ids(ctx, m, bids, blen, pb, T, bout);
            if (st == ATTN_ERR_OOM && pb > 1) {
                part = (pb + 1) / 2;
                continue;
            }
            if (st != ATTN_OK) goto done;
            for (int64_t b = 0; b < pb; b++)
                memcpy(out + order[s0 + p0 + b].idx * m->dim, bout + b * m->dim,
                       (size_t)m->dim * sizeof *out);
            p0 += pb;
        }
    }
    if (n_truncated) *n_truncated = cut;
done:
    attn_ctx_thaw_weights(ctx);
    free(ids);
    free(order);
    free(bids);
    free(blen);
    free(bout);
    return st;
}
