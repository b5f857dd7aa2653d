/* cnn.c: the convolutional classifier (include/attn/cnn.h, docs/cnn.md),
 * composed from graph ops (conv2d, batchnorm, relu, max_pool2d, the blocks
 * of vision_attention.h, mean, dropout, linear, cross_entropy); nothing here
 * has a backward of its own.
 *
 * The graph of one batch:
 *   h = x * (1 / std) + (-mean / std)
 *   h = relu(batchnorm(conv2d(h, w, pad 1)))     per conv of each stage
 *   h = max_pool2d(h, 2)                          after every stage but the last
 *   h = attention(h)                              after attention_stage
 *   pooled = mean(reshape(h, [B, C, H W]), -1)
 *   logits = linear(dropout(pooled), head)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "model_meta.h"
#include "attn/checkpoint.h"
#include "attn/cnn.h"
#include "attn/conv.h"
#include "attn/ops.h"
#include "attn/params.h"
#include "attn/safetensors.h"
#include "attn/vision_attention.h"

#define CNN_MAX_WIDTH 4096
#define CNN_MAX_CLASSES 100000
#define CNN_MAX_IN 64

static const char *const att_names[ATTN_CNN_ATT_COUNT] = {
    "none", "sagan", "sagan-code", "simple", "channel", "spatial",
    "cbam", "soft",  "gc",         "sag",    "psa",     "aaconv"};

const char *attn_cnn_attention_name(attn_cnn_attention a) {
    return (int)a >= 0 && (int)a < ATTN_CNN_ATT_COUNT ? att_names[a] : "?";
}

int attn_cnn_attention_parse(const char *s, attn_cnn_attention *out) {
    if (!s || !out) return -1;
    for (int i = 0; i < ATTN_CNN_ATT_COUNT; i++)
        if (!strcmp(s, att_names[i])) {
            *out = (attn_cnn_attention)i;
            return 0;
        }
    return -1;
}

attn_cnn_config attn_cnn_config_default(void) {
    attn_cnn_config c;
    memset(&c, 0, sizeof c);
    c.in_channels = 1;
    c.n_classes = 10;
    c.n_stages = 3;
    c.widths[0] = 32;
    c.widths[1] = 64;
    c.widths[2] = 128;
    c.convs_per_stage = 2;
    c.attention = ATTN_CNN_ATT_NONE;
    c.attention_stage = 0;
    c.input_mean = 0.2860f;
    c.input_std = 0.3530f;
    c.bn_momentum = 0.1f;
    c.bn_eps = 1e-5f;
    return c;
}

/* Fills the zeros that read as defaults. */
static void resolve(attn_cnn_config *c) {
    if (c->input_std == 0.0f) c->input_std = 1.0f;
    if (c->bn_momentum == 0.0f) c->bn_momentum = 0.1f;
    if (c->bn_eps == 0.0f) c->bn_eps = 1e-5f;
    for (int s = c->n_stages > 0 && c->n_stages <= ATTN_CNN_MAX_STAGES ? c->n_stages : 0;
         s < ATTN_CNN_MAX_STAGES; s++)
        c->widths[s] = 0;
    if (c->attention == ATTN_CNN_ATT_NONE) c->attention_stage = 0;
}

static attn_status check_config(const char *fn, const attn_cnn_config *c) {
    if (c->in_channels < 1 || c->in_channels > CNN_MAX_IN || c->n_classes < 2 ||
        c->n_classes > CNN_MAX_CLASSES || c->n_stages < 1 || c->n_stages > ATTN_CNN_MAX_STAGES ||
        c->convs_per_stage < 1 || c->convs_per_stage > 4)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: in_channels %lld (1 to %d), n_classes %lld (2 to %d), n_stages %d "
                           "(1 to %d), convs_per_stage %d (1 to 4)",
                           fn, (long long)c->in_channels, CNN_MAX_IN, (long long)c->n_classes,
                           CNN_MAX_CLASSES, c->n_stages, ATTN_CNN_MAX_STAGES, c->convs_per_stage);
    for (int s = 0; s < c->n_stages; s++)
        if (c->widths[s] < 1 || c->widths[s] > CNN_MAX_WIDTH)
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: widths[%d] = %lld, expected 1 to %d", fn,
                               s, (long long)c->widths[s], CNN_MAX_WIDTH);
    if ((int)c->attention < 0 || (int)c->attention >= ATTN_CNN_ATT_COUNT)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: attention %d, expected 0 none, 1 sagan, 2 sagan-code, 3 simple, 4 "
                           "to %d a module of vision_modules.h",
                           fn, (int)c->attention, ATTN_CNN_ATT_COUNT - 1);
    if (c->attention != ATTN_CNN_ATT_NONE) {
        if (c->attention_stage < 0 || c->attention_stage >= c->n_stages)
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: attention_stage %d outside [0, %d)", fn,
                               c->attention_stage, c->n_stages);
        const int64_t C = c->widths[c->attention_stage];
        if (c->attention <= ATTN_CNN_ATT_SAGAN_CODE && C % 8 != 0)
            return attn__error(ATTN_ERR_INVALID_ARG,
                               "%s: a SAGAN block after stage %d needs a width that is a multiple "
                               "of 8, not %lld",
                               fn, c->attention_stage, (long long)C);
    }
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: dropout %g outside [0, 1)", fn,
                           (double)c->dropout);
    if (!(isfinite(c->input_mean) && c->input_std > 0.0f && isfinite(c->input_std)))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: input_mean %g, input_std %g (finite, std > 0)",
                           fn, (double)c->input_mean, (double)c->input_std);
    if (!(c->bn_momentum >= 0.0f && c->bn_momentum <= 1.0f) || !(c->bn_eps > 0.0f) ||
        !isfinite(c->bn_eps))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: bn_momentum %g (in [0, 1]), bn_eps %g (> 0)",
                           fn, (double)c->bn_momentum, (double)c->bn_eps);
    return ATTN_OK;
}

/* The map size after stage s for a ATTN_CNN_FIXED_INPUT square image. */
static int64_t fixed_map(const attn_cnn_config *c, int s) {
    int64_t h = ATTN_CNN_FIXED_INPUT;
    for (int i = 0; i <= s && i < c->n_stages - 1; i++) h /= 2;
    return h > 0 ? h : 1;
}

/* The vision_modules.h configuration of the CNN's module (attention >=
 * ATTN_CNN_ATT_CHANNEL): the papers' settings, see cnn.h. */
static attn_vision_module_config module_config(const attn_cnn_config *c) {
    attn_vision_module_config v;
    memset(&v, 0, sizeof v);
    v.kind = (attn_vision_module_kind)(c->attention - ATTN_CNN_ATT_CHANNEL);
    v.channels = c->widths[c->attention_stage];
    v.reduction = c->attention == ATTN_CNN_ATT_SOFT ? 1 : c->attention == ATTN_CNN_ATT_PSA ? 4 : 16;
    v.spatial_bn = 1;
    v.height = v.width = fixed_map(c, c->attention_stage);
    return v;
}

int64_t attn_cnn_numel(const attn_cnn_config *cfg) {
    if (!cfg) return -1;
    attn_cnn_config c = *cfg;
    resolve(&c);
    if (check_config("attn_cnn_numel", &c) != ATTN_OK) return -1;
    int64_t n = 0, cin = c.in_channels;
    for (int s = 0; s < c.n_stages; s++) {
        const int64_t w = c.widths[s];
        for (int j = 0; j < c.convs_per_stage; j++) {
            n += w * cin * 9 + 4 * w; /* bounded: 4 stages x 4 convs x 4096^2 x 9 */
            cin = w;
        }
    }
    if (c.attention != ATTN_CNN_ATT_NONE) {
        const int64_t C = c.widths[c.attention_stage];
        if (c.attention >= ATTN_CNN_ATT_CHANNEL) {
            const attn_vision_module_config v = module_config(&c);
            const int64_t k = attn_vision_module_numel(&v);
            if (k < 0) return -1;
            n += k;
        } else if (c.attention == ATTN_CNN_ATT_SIMPLE) n += C * C + 1;
        else if (c.attention == ATTN_CNN_ATT_SAGAN) n += 2 * (C / 8) * (C + 1) + C * (C + 1) + 1;
        else n += 2 * (C / 8) * C + (C / 2) * C + C * (C / 2) + 1; /* no biases */
    }
    n += c.n_classes * (cin + 1);
    return n;
}

void attn_cnn_free(attn_cnn *m) { free(m); }

static attn_status add_param(attn_params *ps, const char *name, int ndim, const int64_t *shape,
                             attn_tensor **out) {
    return attn_params_add(ps, name, ndim, shape, out);
}

attn_status attn_cnn_new(attn_cnn **out, attn_params *ps, const attn_cnn_config *cfg,
                         attn_rng *rng) {
    static const char fn[] = "attn_cnn_new";
    if (out) *out = NULL;
    if (!out || !ps || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_cnn_config c = *cfg;
    resolve(&c);
    attn_status st = check_config(fn, &c);
    if (st != ATTN_OK) return st;
    attn_cnn *m = calloc(1, sizeof *m);
    if (!m) return attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    m->cfg = c;
    m->params = ps;
    char name[128];
    int64_t cin = c.in_channels;
    for (int s = 0; s < c.n_stages && st == ATTN_OK; s++) {
        const int64_t w = c.widths[s];
        for (int j = 0; j < c.convs_per_stage && st == ATTN_OK; j++) {
            attn_cnn_layer *L = &m->layers[s][j];
            const int64_t ws[4] = {w, cin, 3, 3}, vs[1] = {w};
            snprintf(name, sizeof name, "stages.%d.%d.conv.weight", s, j);
            st = add_param(ps, name, 4, ws, &L->conv_w);
            if (st == ATTN_OK && rng) attn_init_uniform(L->conv_w, (float)(1.0 / sqrt((double)(cin * 9))), rng);
            snprintf(name, sizeof name, "stages.%d.%d.bn.weight", s, j);
            if (st == ATTN_OK) st = add_param(ps, name, 1, vs, &L->bn_w);
            if (st == ATTN_OK) attn_init_constant(L->bn_w, 1.0f);
            snprintf(name, sizeof name, "stages.%d.%d.bn.bias", s, j);
            if (st == ATTN_OK) st = add_param(ps, name, 1, vs, &L->bn_b);
            snprintf(name, sizeof name, "stages.%d.%d.bn.running_mean", s, j);
            if (st == ATTN_OK) st = add_param(ps, name, 1, vs, &L->bn_mean);
            snprintf(name, sizeof name, "stages.%d.%d.bn.running_var", s, j);
            if (st == ATTN_OK) st = add_param(ps, name, 1, vs, &L->bn_var);
            if (st == ATTN_OK) {
                attn_init_constant(L->bn_var, 1.0f);
                L->bn_mean->requires_grad = 0;
                L->bn_var->requires_grad = 0;
            }
            cin = w;
        }
        if (st == ATTN_OK && c.attention >= ATTN_CNN_ATT_CHANNEL && s == c.attention_stage) {
            const attn_vision_module_config v = module_config(&c);
            st = attn_vision_module_init(&m->vmod, ps, "attention.", &v, rng);
        } else if (st == ATTN_OK && c.attention != ATTN_CNN_ATT_NONE && s == c.attention_stage) {
            attn_map_attention_config ac;
            memset(&ac, 0, sizeof ac);
            ac.channels = w;
            ac.form = c.attention == ATTN_CNN_ATT_SAGAN        ? ATTN_SAGAN_PAPER
                      : c.attention == ATTN_CNN_ATT_SAGAN_CODE ? ATTN_SAGAN_BIGGAN
                                                               : ATTN_SIMPLE_SA;
            ac.bias = c.attention == ATTN_CNN_ATT_SAGAN; /* the BigGAN code has no biases */
            ac.sym = c.sym;
            ac.gamma_init = 0.0f;
            ac.kernel = ATTN_KERNEL_AUTO;
            st = attn_map_attention_init(&m->att, ps, "attention.", &ac, rng);
        }
    }
    if (st == ATTN_OK) {
        const int64_t hs[2] = {c.n_classes, cin}, bs[1] = {c.n_classes};
        st = add_param(ps, "head.weight", 2, hs, &m->head_w);
        if (st == ATTN_OK) st = add_param(ps, "head.bias", 1, bs, &m->head_b);
        if (st == ATTN_OK && rng) {
            const float bound = (float)(1.0 / sqrt((double)cin));
            attn_init_uniform(m->head_w, bound, rng);
            attn_init_uniform(m->head_b, bound, rng);
        }
    }
    if (st != ATTN_OK) {
        free(m);
        return st;
    }
    *out = m;
    return ATTN_OK;
}

float attn_cnn_gamma(const attn_cnn *m) {
    if (!m || m->cfg.attention == ATTN_CNN_ATT_NONE || m->cfg.attention >= ATTN_CNN_ATT_CHANNEL ||
        !m->att.gamma)
        return 0.0f;
    return attn_f32(m->att.gamma)[0];
}

/* Runs stages 0 .. last on x; att_weights as attn_cnn_features. */
static attn_tensor *run_stages(attn_ctx *ctx, const attn_cnn *m, attn_tensor *x, int last,
                               attn_tensor **att_weights) {
    static const char fn[] = "attn_cnn";
    if (att_weights) *att_weights = NULL;
    if (!ctx) return NULL;
    if (!m || !x) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: NULL model or input", fn);
        return NULL;
    }
    const attn_cnn_config *c = &m->cfg;
    if (x->dtype != ATTN_F32) {
        attn__fail(ctx, ATTN_ERR_DTYPE, "%s: x must be f32, not %s", fn,
                        attn_dtype_name(x->dtype));
        return NULL;
    }
    if (x->ndim != 4 || x->shape[1] != c->in_channels) {
        char b[64];
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x %s, expected [B, %lld, H, W]", fn,
                        attn_shape_str(x, b, sizeof b), (long long)c->in_channels);
        return NULL;
    }
    /* every pooling must leave at least 1x1 (and an even map under the
     * code-form block): checked here so the message names the model */
    int64_t H = x->shape[2], W = x->shape[3];
    for (int s = 0; s <= last; s++) {
        if (s < c->n_stages - 1) {
            if (H < 2 || W < 2) {
                attn__fail(ctx, ATTN_ERR_SHAPE,
                                "%s: x [%lld, %lld, %lld, %lld]: stage %d's 2x2 pooling needs a "
                                "map of at least 2x2, it gets %lldx%lld",
                                fn, (long long)x->shape[0], (long long)x->shape[1],
                                (long long)x->shape[2], (long long)x->shape[3], s, (long long)H,
                                (long long)W);
                return NULL;
            }
            H /= 2;
            W /= 2;
        }
        if (c->attention == ATTN_CNN_ATT_SAGAN_CODE && s == c->attention_stage &&
            (H % 2 != 0 || W % 2 != 0)) {
            attn__fail(ctx, ATTN_ERR_SHAPE,
                            "%s: the code-form SAGAN block after stage %d needs an even map, it "
                            "gets %lldx%lld (input %lldx%lld)",
                            fn, s, (long long)H, (long long)W, (long long)x->shape[2],
                            (long long)x->shape[3]);
            return NULL;
        }
    }
    attn_tensor *h = x;
    if (c->input_mean != 0.0f || c->input_std != 1.0f) {
        const float shift = -c->input_mean / c->input_std;
        attn_tensor *sh = attn_tensor_from(ctx, ATTN_F32, 1, (int64_t[]){1}, &shift);
        h = attn_add(ctx, attn_scale(ctx, h, 1.0f / c->input_std), sh);
    }
    attn_conv2d_opts co;
    memset(&co, 0, sizeof co);
    co.padding[0] = co.padding[1] = 1;
    attn_pool2d_opts po;
    memset(&po, 0, sizeof po);
    po.kernel[0] = po.kernel[1] = 2;
    for (int s = 0; s <= last && h; s++) {
        for (int j = 0; j < c->convs_per_stage && h; j++) {
            const attn_cnn_layer *L = &m->layers[s][j];
            h = attn_conv2d(ctx, h, L->conv_w, NULL, &co);
            h = attn_batchnorm(ctx, h, L->bn_w, L->bn_b, L->bn_mean, L->bn_var, c->bn_momentum,
                               c->bn_eps);
            h = attn_relu(ctx, h);
        }
        if (h && s < c->n_stages - 1) h = attn_max_pool2d(ctx, h, &po, NULL);
        if (h && c->attention >= ATTN_CNN_ATT_CHANNEL && s == c->attention_stage)
            h = attn_vision_module_forward(ctx, &m->vmod, h, att_weights);
        else if (h && c->attention != ATTN_CNN_ATT_NONE && s == c->attention_stage)
            h = attn_map_attention_forward(ctx, &m->att, h, att_weights);
    }
    return h;
}

attn_tensor *attn_cnn_features(attn_ctx *ctx, const attn_cnn *m, attn_tensor *x, int stage,
                               attn_tensor **att_weights) {
    if (att_weights) *att_weights = NULL;
    if (!ctx) return NULL;
    if (m && (stage < 0 || stage >= m->cfg.n_stages)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "attn_cnn_features: stage %d outside [0, %d)",
                        stage, m->cfg.n_stages);
        return NULL;
    }
    return run_stages(ctx, m, x, m ? stage : 0, att_weights);
}

static attn_tensor *global_pool(attn_ctx *ctx, attn_tensor *h) {
    if (!h) return NULL;
    const int64_t shape[3] = {h->shape[0], h->shape[1], h->shape[2] * h->shape[3]};
    return attn_mean(ctx, attn_reshape(ctx, h, 3, shape), -1, 0);
}

attn_tensor *attn_cnn_pooled(attn_ctx *ctx, const attn_cnn *m, attn_tensor *x) {
    if (!ctx) return NULL;
    attn_tensor *h = run_stages(ctx, m, x, m ? m->cfg.n_stages - 1 : 0, NULL);
    return global_pool(ctx, h);
}

attn_tensor *attn_cnn_forward(attn_ctx *ctx, const attn_cnn *m, attn_tensor *x,
                              attn_tensor **pooled, attn_tensor **att_weights) {
    if (pooled) *pooled = NULL;
    if (att_weights) *att_weights = NULL;
    if (!ctx) return NULL;
    attn_tensor *h = run_stages(ctx, m, x, m ? m->cfg.n_stages - 1 : 0, att_weights);
    attn_tensor *p = global_pool(ctx, h);
    if (pooled) *pooled = p;
    if (!p) return NULL;
    return attn_linear(ctx, attn_dropout(ctx, p, m->cfg.dropout), m->head_w, m->head_b);
}

attn_tensor *attn_cnn_loss(attn_ctx *ctx, const attn_cnn *m, attn_tensor *x, attn_tensor *targets,
                           float label_smoothing, attn_tensor **logits) {
    if (logits) *logits = NULL;
    attn_tensor *lg = attn_cnn_forward(ctx, m, x, NULL, NULL);
    if (logits) *logits = lg;
    if (!lg) return NULL;
    return attn_cross_entropy(ctx, lg, targets, -1, label_smoothing);
}

/* ---- files ------------------------------------------------------------------------------ */

static const attn__meta_field meta_fields[ATTN_CNN_META - 1] = {
    ATTN__META_FIELD("cnn.in_channels", ATTN__META_I64, attn_cnn_config, in_channels),
    ATTN__META_FIELD("cnn.n_classes", ATTN__META_I64, attn_cnn_config, n_classes),
    ATTN__META_FIELD("cnn.n_stages", ATTN__META_INT, attn_cnn_config, n_stages),
    ATTN__META_FIELD("cnn.width0", ATTN__META_I64, attn_cnn_config, widths[0]),
    ATTN__META_FIELD("cnn.width1", ATTN__META_I64, attn_cnn_config, widths[1]),
    ATTN__META_FIELD("cnn.width2", ATTN__META_I64, attn_cnn_config, widths[2]),
    ATTN__META_FIELD("cnn.width3", ATTN__META_I64, attn_cnn_config, widths[3]),
    ATTN__META_FIELD("cnn.convs_per_stage", ATTN__META_INT, attn_cnn_config, convs_per_stage),
    ATTN__META_FIELD("cnn.attention", ATTN__META_INT, attn_cnn_config, attention),
    ATTN__META_FIELD("cnn.attention_stage", ATTN__META_INT, attn_cnn_config, attention_stage),
    ATTN__META_FIELD("cnn.sym", ATTN__META_FLAG, attn_cnn_config, sym),
    ATTN__META_FIELD("cnn.dropout", ATTN__META_FLOAT, attn_cnn_config, dropout),
    ATTN__META_FIELD("cnn.input_mean", ATTN__META_FLOAT, attn_cnn_config, input_mean),
    ATTN__META_FIELD("cnn.input_std", ATTN__META_FLOAT, attn_cnn_config, input_std),
    ATTN__META_FIELD("cnn.bn_momentum", ATTN__META_FLOAT, attn_cnn_config, bn_momentum),
    ATTN__META_FIELD("cnn.bn_eps", ATTN__META_FLOAT, attn_cnn_config, bn_eps),
};

void attn_cnn_config_meta(const attn_cnn_config *c, attn_kv *kv, char *buf) {
    if (!c || !kv || !buf) return;
    attn__meta_write(meta_fields, ATTN_CNN_META - 1, c, kv, buf);
    /* the last entry names the model kind, so a file says what it holds */
    kv[ATTN_CNN_META - 1].key = "cnn.model";
    snprintf(buf + 32 * (ATTN_CNN_META - 1), 32, "attn-cnn");
    kv[ATTN_CNN_META - 1].value = buf + 32 * (ATTN_CNN_META - 1);
}

attn_status attn_cnn_config_load(const char *path, attn_cnn_config *cfg) {
    static const char fn[] = "attn_cnn_config_load";
    if (!path || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_cnn_config c;
    memset(&c, 0, sizeof c);
    attn_status st = attn__meta_load(fn, "CNN", path, meta_fields, ATTN_CNN_META - 1, &c);
    if (st != ATTN_OK) return st;
    /* the stored configuration is untrusted: the same checks as a caller's,
     * reported as a malformed file */
    attn_cnn_config r = c;
    resolve(&r);
    if (check_config(fn, &r) != ATTN_OK)
        return attn__error(ATTN_ERR_FORMAT, "%s: %s: the metadata's configuration is invalid: %s",
                           fn, path, attn_last_error());
    *cfg = c;
    return ATTN_OK;
}

attn_status attn_cnn_save(const char *path, const attn_cnn *m, const attn_kv *meta, int n_meta) {
    if (!path || !m || (n_meta > 0 && !meta) || n_meta < 0 || n_meta > 64)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_cnn_save: NULL argument or n_meta %d", n_meta);
    attn_kv kv[ATTN_CNN_META + 64];
    char buf[ATTN_CNN_META * 32];
    attn_cnn_config_meta(&m->cfg, kv, buf);
    return attn__meta_save(path, m->params, kv, ATTN_CNN_META, meta, n_meta);
}

attn_status attn_cnn_load(const char *path, attn_params *ps, attn_cnn **out) {
    static const char fn[] = "attn_cnn_load";
    if (out) *out = NULL;
    if (!path || !ps || !out) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_cnn_config c;
    attn_status st = attn_cnn_config_load(path, &c);
    if (st != ATTN_OK) return st;
    /* The file must hold what its metadata claims before a model of that
     * size is built: at least the configuration's number of values, and
     * the head of its exact shape. */
    const int64_t need = attn_cnn_numel(&c);
    st = attn__meta_check_size(fn, path, 0, need);
    if (st != ATTN_OK) return st;
    const attn__meta_shape want[] = {
        {"head.weight", c.n_classes, c.widths[c.n_stages - 1]}};
    st = attn__meta_check_shapes(fn, path, want, 1);
    if (st != ATTN_OK) return st;
    attn_cnn *m = NULL;
    st = attn_cnn_new(&m, ps, &c, NULL);
    if (st != ATTN_OK) return st;
    st = attn_safetensors_load_params(path, ps, ATTN_ST_ALLOW_UNEXPECTED);
    if (st != ATTN_OK) {
        attn_cnn_free(m);
        return st;
    }
    *out = m;
    return ATTN_OK;
}
