/* node_classifier.c: bag-of-words node features and graph self-attention
 * layers (include/attn/node_classifier.h), composed from graph ops; the
 * attention is the GRAPH_ATTENTION op. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/internal.h"
#include "model_meta.h"
#include "attn/node_classifier.h"
#include "attn/ops.h"

static attn_status add(attn_params *ps, const char *name, int ndim, const int64_t *shape,
                       float bound, attn_rng *rng, attn_tensor **out) {
    attn_status st = attn_params_add(ps, name, ndim, shape, out);
    if (st == ATTN_OK && rng && bound > 0) attn_init_uniform(*out, bound, rng);
    return st;
}

attn_status attn_node_classifier_init(attn_node_classifier *m, attn_params *ps,
                                      const attn_node_classifier_config *cfg, attn_rng *rng) {
    static const char fn[] = "attn_node_classifier_init";
    if (!m || !ps || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    memset(m, 0, sizeof *m);
    const attn_node_classifier_config c = *cfg;
    if (c.vocab < 1 || c.vocab > (1 << 24) || c.max_words < 1 || c.max_words > 1024 ||
        c.emb_dim < 1 || c.hidden < 1 || c.n_classes < 2 || c.n_classes > (1 << 20) ||
        c.n_layers < 0 || c.n_layers > ATTN_NODE_CLASSIFIER_MAX_LAYERS || c.n_heads < 1 ||
        c.hidden % c.n_heads != 0 || !(c.dropout >= 0.0f && c.dropout < 1.0f))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: vocab %lld, max_words %lld, emb_dim %lld, hidden %lld, classes %lld, "
                           "layers %d, heads %d, dropout %g: expected sizes >= 1 (classes >= 2, "
                           "layers 0 .. %d, heads dividing hidden, dropout in [0, 1))",
                           fn, (long long)c.vocab, (long long)c.max_words, (long long)c.emb_dim,
                           (long long)c.hidden, (long long)c.n_classes, c.n_layers, c.n_heads,
                           (double)c.dropout, ATTN_NODE_CLASSIFIER_MAX_LAYERS);
    m->cfg = c;
    const int64_t E = c.hidden;
    const float be = (float)(1.0 / sqrt((double)E)), bd = (float)(1.0 / sqrt((double)c.emb_dim));
    attn_status st = add(ps, "emb.weight", 2, (int64_t[]){c.vocab + 1, c.emb_dim}, 0.0f, rng, &m->emb);
    if (st == ATTN_OK && rng) attn_init_normal(m->emb, 1.0f, rng);
    if (st == ATTN_OK) st = add(ps, "in.weight", 2, (int64_t[]){E, c.emb_dim}, bd, rng, &m->w_in);
    if (st == ATTN_OK) st = add(ps, "in.bias", 1, (int64_t[]){E}, bd, rng, &m->b_in);
    static const char *const names[4] = {"q", "k", "v", "out"};
    for (int l = 0; l < c.n_layers && st == ATTN_OK; l++) {
        char nm[64];
        snprintf(nm, sizeof nm, "layers.%d.norm.weight", l);
        st = add(ps, nm, 1, (int64_t[]){E}, 0.0f, NULL, &m->norm_w[l]);
        if (st == ATTN_OK) attn_init_constant(m->norm_w[l], 1.0f);
        snprintf(nm, sizeof nm, "layers.%d.norm.bias", l);
        if (st == ATTN_OK) st = add(ps, nm, 1, (int64_t[]){E}, 0.0f, NULL, &m->norm_b[l]);
        for (int j = 0; j < 4 && st == ATTN_OK; j++) {
            snprintf(nm, sizeof nm, "layers.%d.%s.weight", l, names[j]);
            st = add(ps, nm, 2, (int64_t[]){E, E}, be, rng, &m->w[l][j]);
            snprintf(nm, sizeof nm, "layers.%d.%s.bias", l, names[j]);
            if (st == ATTN_OK) st = add(ps, nm, 1, (int64_t[]){E}, be, rng, &m->b[l][j]);
        }
    }
    if (st == ATTN_OK) st = add(ps, "norm_f.weight", 1, (int64_t[]){E}, 0.0f, NULL, &m->norm_f_w);
    if (st == ATTN_OK) attn_init_constant(m->norm_f_w, 1.0f);
    if (st == ATTN_OK) st = add(ps, "norm_f.bias", 1, (int64_t[]){E}, 0.0f, NULL, &m->norm_f_b);
    if (st == ATTN_OK) st = add(ps, "head.weight", 2, (int64_t[]){c.n_classes, E}, be, rng, &m->w_c);
    if (st == ATTN_OK) st = add(ps, "head.bias", 1, (int64_t[]){c.n_classes}, be, rng, &m->b_c);
    return st;
}

attn_tensor *attn_node_classifier_logits(attn_ctx *ctx, const attn_node_classifier *m,
                                         attn_tensor *feat, const attn_graph *g,
                                         attn_tensor **attention) {
    static const char fn[] = "node_classifier";
    if (attention) *attention = NULL;
    if (!ctx || attn_ctx_status(ctx) != ATTN_OK) return NULL;
    if (!m || !g) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: model or graph is NULL", fn);
        return NULL;
    }
    if (attn__any_null(ctx, fn, 1, feat)) return NULL;
    const attn_node_classifier_config *c = &m->cfg;
    if (feat->dtype != ATTN_I32 || feat->ndim != 2 || feat->shape[1] != c->max_words ||
        feat->shape[0] != g->n_nodes) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: feat %s: expected i32 [%lld nodes, %lld words]", fn,
                   attn__shp(feat), (long long)g->n_nodes, (long long)c->max_words);
        return NULL;
    }
    const int64_t N = feat->shape[0], L = c->max_words, E = c->hidden, H = c->n_heads;
    /* the mean over a node's words: a constant [N, L, 1] of 1 / count at its
     * words, 0 at padding */
    attn_tensor *wgt = attn_tensor_new(ctx, ATTN_F32, 3, (int64_t[]){N, L, 1});
    if (!wgt) return NULL;
    const int32_t *f = attn_i32(feat);
    for (int64_t i = 0; i < N; i++) {
        int cnt = 0;
        for (int64_t w = 0; w < L; w++) {
            if (f[i * L + w] < 0 || f[i * L + w] > c->vocab) {
                attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: word id %d of node %lld outside [0, %lld]",
                           fn, f[i * L + w], (long long)i, (long long)c->vocab);
                return NULL;
            }
            cnt += f[i * L + w] > 0;
        }
        for (int64_t w = 0; w < L; w++)
            attn_f32(wgt)[i * L + w] = f[i * L + w] > 0 ? 1.0f / (float)cnt : 0.0f;
    }
    attn_tensor *x = attn_sum(ctx, attn_mul(ctx, attn_embedding(ctx, m->emb, feat), wgt), 1, 0);
    attn_tensor *h = attn_relu(ctx, attn_linear(ctx, x, m->w_in, m->b_in));
    static const int perm[4] = {0, 2, 1, 3};
    for (int l = 0; l < c->n_layers && h; l++) {
        attn_tensor *hn = attn_layernorm(ctx, h, m->norm_w[l], m->norm_b[l], 1e-5f);
        attn_tensor *qkv[3];
        for (int j = 0; j < 3; j++) {
            attn_tensor *p = attn_linear(ctx, hn, m->w[l][j], m->b[l][j]);
            qkv[j] = attn_permute(ctx, attn_reshape(ctx, p, 4, (int64_t[]){1, N, H, E / H}), perm);
        }
        attn_tensor *wts = NULL;
        attn_tensor *a = attn_graph_attention(ctx, qkv[0], qkv[1], qkv[2], g, NULL,
                                              attention && l == c->n_layers - 1 ? &wts : NULL);
        a = attn_reshape(ctx, attn_contiguous(ctx, attn_permute(ctx, a, perm)), 2, (int64_t[]){N, E});
        h = attn_add(ctx, h, attn_dropout(ctx, attn_linear(ctx, a, m->w[l][3], m->b[l][3]), c->dropout));
        if (attention && wts) *attention = wts;
    }
    h = attn_layernorm(ctx, h, m->norm_f_w, m->norm_f_b, 1e-5f);
    return attn_linear(ctx, h, m->w_c, m->b_c);
}

static const attn__meta_field meta_fields[ATTN_NODE_CLASSIFIER_META] = {
    ATTN__META_FIELD("node.vocab", ATTN__META_I64, attn_node_classifier_config, vocab),
    ATTN__META_FIELD("node.max_words", ATTN__META_I64, attn_node_classifier_config, max_words),
    ATTN__META_FIELD("node.emb_dim", ATTN__META_I64, attn_node_classifier_config, emb_dim),
    ATTN__META_FIELD("node.hidden", ATTN__META_I64, attn_node_classifier_config, hidden),
    ATTN__META_FIELD("node.n_classes", ATTN__META_I64, attn_node_classifier_config, n_classes),
    ATTN__META_FIELD("node.n_layers", ATTN__META_INT, attn_node_classifier_config, n_layers),
    ATTN__META_FIELD("node.n_heads", ATTN__META_INT, attn_node_classifier_config, n_heads),
    ATTN__META_FIELD("node.dropout", ATTN__META_FLOAT, attn_node_classifier_config, dropout),
};

void attn_node_classifier_config_meta(const attn_node_classifier_config *c, attn_kv *kv,
                                      char *buf) {
    attn__meta_write(meta_fields, ATTN_NODE_CLASSIFIER_META, c, kv, buf);
}

attn_status attn_node_classifier_config_load(const char *path, attn_node_classifier_config *c) {
    static const char fn[] = "attn_node_classifier_config_load";
    if (!path || !c) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_node_classifier_config r;
    memset(&r, 0, sizeof r);
    const attn_status st = attn__meta_load(fn, "node classifier", path, meta_fields,
                                           ATTN_NODE_CLASSIFIER_META, &r);
    if (st == ATTN_OK) *c = r;
    return st;
}
