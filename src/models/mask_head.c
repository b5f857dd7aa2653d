/* mask_head.c: the per-pixel mask predictor with the SAG map of CenterMask
 * (include/attn/mask_head.h, docs/vision_modules.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/checkpoint.h"
#include "attn/conv.h"
#include "attn/mask_head.h"
#include "attn/ops.h"
#include "model_meta.h"

static void resolve(attn_mask_head_config *c) {
    if (c->width == 0) c->width = 32;
    if (c->n_classes == 0) c->n_classes = 10;
    if (c->bn_momentum == 0.0f) c->bn_momentum = 0.1f;
    if (c->bn_eps == 0.0f) c->bn_eps = 1e-5f;
}

static attn_status check_config(const char *fn, const attn_mask_head_config *c) {
    if (c->width < 2 || c->width > 512 || c->width % 2)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: width %lld, expected an even number in [2, 512]", fn,
                           (long long)c->width);
    if (c->n_classes < 1 || c->n_classes > 1000)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: n_classes %lld, expected 1..1000", fn,
                           (long long)c->n_classes);
    if (c->sag != 0 && c->sag != 1)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: sag %d, expected 0 or 1", fn, c->sag);
    if (!(c->bn_momentum >= 0.0f && c->bn_momentum <= 1.0f) || !(c->bn_eps > 0.0f && c->bn_eps < 1.0f))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: bn_momentum %g (0..1) or bn_eps %g (0..1) out of range",
                           fn, (double)c->bn_momentum, (double)c->bn_eps);
    return ATTN_OK;
}

int64_t attn_mask_head_numel(const attn_mask_head_config *cfg) {
    if (!cfg) return -1;
    attn_mask_head_config c = *cfg;
    resolve(&c);
    if (check_config("attn_mask_head_numel", &c) != ATTN_OK) return -1;
    const int64_t C = c.width, h = C / 2, K1 = c.n_classes + 1;
    int64_t n = h * 9 + 4 * h;                   /* backbone 0 */
    n += C * h * 9 + 4 * C;                      /* backbone 1 */
    n += C * C * 9 + 4 * C;                      /* backbone 2 */
    n += 2 * (C * C * 9 + 4 * C);                /* head */
    n += c.sag ? 18 : 0;                         /* SAG */
    n += C * h * 4 + 4 * h + h * h * 4 + 4 * h;  /* up */
    n += K1 * h + K1;                            /* out */
    return n;
}

static attn_status add(attn_params *ps, const char *name, int ndim, const int64_t *shape, attn_tensor **t,
                       attn_rng *rng, double fan_in) {
    attn_status st = attn_params_add(ps, name, ndim, shape, t);
    if (st == ATTN_OK && rng && fan_in > 0) attn_init_uniform(*t, (float)(1.0 / sqrt(fan_in)), rng);
    return st;
}

static attn_status add_bn(attn_params *ps, const char prefix[96], int64_t C, attn_vm_bn *bn) {
    char name[160];
    const int64_t s[1] = {C};
    attn_tensor **t[4] = {&bn->w, &bn->b, &bn->mean, &bn->var};
    static const char *const part[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.%s", prefix, part[i]);
        attn_status st = attn_params_add(ps, name, 1, s, t[i]);
        if (st != ATTN_OK) return st;
    }
    attn_init_constant(bn->w, 1.0f);
    attn_init_constant(bn->var, 1.0f);
    bn->mean->requires_grad = 0;
    bn->var->requires_grad = 0;
    return ATTN_OK;
}

attn_status attn_mask_head_new(attn_mask_head **out, attn_params *ps, const attn_mask_head_config *cfg,
                               attn_rng *rng) {
    static const char fn[] = "attn_mask_head_new";
    if (out) *out = NULL;
    if (!out || !ps || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_mask_head_config c = *cfg;
    resolve(&c);
    attn_status st = check_config(fn, &c);
    if (st != ATTN_OK) return st;
    attn_mask_head *m = calloc(1, sizeof *m);
    if (!m) return attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    m->cfg = c;
    m->params = ps;
    const int64_t C = c.width, h = C / 2, K1 = c.n_classes + 1;
    const int64_t bin[3] = {1, h, C}, bout[3] = {h, C, C};
    char name[96];
    for (int i = 0; i < 3 && st == ATTN_OK; i++) {
        const int64_t s[4] = {bout[i], bin[i], 3, 3};
        snprintf(name, sizeof name, "backbone.%d.conv.weight", i);
        st = add(ps, name, 4, s, &m->bb_w[i], rng, (double)(bin[i] * 9));
        snprintf(name, sizeof name, "backbone.%d.bn", i);
        if (st == ATTN_OK) st = add_bn(ps, name, bout[i], &m->bb_bn[i]);
    }
    for (int i = 0; i < 2 && st == ATTN_OK; i++) {
        const int64_t s[4] = {C, C, 3, 3};
        snprintf(name, sizeof name, "head.%d.conv.weight", i);
        st = add(ps, name, 4, s, &m->head_w[i], rng, (double)(C * 9));
        snprintf(name, sizeof name, "head.%d.bn", i);
        if (st == ATTN_OK) st = add_bn(ps, name, C, &m->head_bn[i]);
    }
    if (st == ATTN_OK && c.sag) {
        attn_vision_module_config v;
        memset(&v, 0, sizeof v);
        v.kind = ATTN_VM_SAG;
        v.channels = C;
        v.kernel = 3;
        st = attn_vision_module_init(&m->sag, ps, "sag.", &v, rng);
    }
    const int64_t uin[2] = {C, h};
    for (int i = 0; i < 2 && st == ATTN_OK; i++) {
        /* torch's ConvTranspose2d: weight [Cin, Cout, kh, kw], fan_in from
         * dim 1 (Cout * kh * kw) */
        const int64_t s[4] = {uin[i], h, 2, 2};
        snprintf(name, sizeof name, "up.%d.conv.weight", i);
        st = add(ps, name, 4, s, &m->up_w[i], rng, (double)(h * 4));
        snprintf(name, sizeof name, "up.%d.bn", i);
        if (st == ATTN_OK) st = add_bn(ps, name, h, &m->up_bn[i]);
    }
    if (st == ATTN_OK) {
        const int64_t s[4] = {K1, h, 1, 1}, sb[1] = {K1};
        st = add(ps, "out.weight", 4, s, &m->out_w, rng, (double)h);
        if (st == ATTN_OK) st = add(ps, "out.bias", 1, sb, &m->out_b, rng, (double)h);
    }
    if (st != ATTN_OK) {
        free(m);
        return st;
    }
    *out = m;
    return ATTN_OK;
}

void attn_mask_head_free(attn_mask_head *m) { free(m); }

attn_tensor *attn_mask_head_forward(attn_ctx *ctx, const attn_mask_head *m, attn_tensor *x,
                                    attn_tensor **sag_map) {
    static const char fn[] = "attn_mask_head_forward";
    if (sag_map) *sag_map = NULL;
    if (!ctx) return NULL;
    if (!m || !x) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: NULL model or input", fn);
        return NULL;
    }
    if (x->dtype != ATTN_F32 || x->ndim != 4 || x->shape[1] != 1 || x->shape[2] < 4 || x->shape[3] < 4 ||
        x->shape[2] % 4 || x->shape[3] % 4) {
        char b[64];
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x %s %s, expected f32 [B, 1, H, W] with H and W multiples of 4",
                   fn, attn_dtype_name(x->dtype), attn_shape_str(x, b, sizeof b));
        return NULL;
    }
    const attn_mask_head_config *c = &m->cfg;
    attn_conv2d_opts p1, up;
    memset(&p1, 0, sizeof p1);
    p1.padding[0] = p1.padding[1] = 1;
    memset(&up, 0, sizeof up);
    up.stride[0] = up.stride[1] = 2;
    attn_pool2d_opts po;
    memset(&po, 0, sizeof po);
    po.kernel[0] = po.kernel[1] = 2;
    attn_tensor *h = x;
    for (int i = 0; i < 3 && h; i++) {
        const attn_vm_bn *bn = &m->bb_bn[i];
        h = attn_conv2d(ctx, h, m->bb_w[i], NULL, &p1);
        h = attn_relu(ctx, attn_batchnorm(ctx, h, bn->w, bn->b, bn->mean, bn->var, c->bn_momentum, c->bn_eps));
        if (h && i < 2) h = attn_max_pool2d(ctx, h, &po, NULL);
    }
    for (int i = 0; i < 2 && h; i++) {
        const attn_vm_bn *bn = &m->head_bn[i];
        h = attn_conv2d(ctx, h, m->head_w[i], NULL, &p1);
        h = attn_relu(ctx, attn_batchnorm(ctx, h, bn->w, bn->b, bn->mean, bn->var, c->bn_momentum, c->bn_eps));
    }
    if (h && c->sag) h = attn_vision_module_forward(ctx, &m->sag, h, sag_map);
    for (int i = 0; i < 2 && h; i++) {
        const attn_vm_bn *bn = &m->up_bn[i];
        h = attn_conv_transpose2d(ctx, h, m->up_w[i], NULL, &up);
        h = attn_relu(ctx, attn_batchnorm(ctx, h, bn->w, bn->b, bn->mean, bn->var, c->bn_momentum, c->bn_eps));
    }
    return h ? attn_conv2d(ctx, h, m->out_w, m->out_b, NULL) : NULL;
}

attn_tensor *attn_mask_head_loss(attn_ctx *ctx, const attn_mask_head *m, attn_tensor *x,
                                 attn_tensor *targets, attn_tensor **logits, attn_tensor **sag_map) {
    static const char fn[] = "attn_mask_head_loss";
    if (logits) *logits = NULL;
    attn_tensor *lg = attn_mask_head_forward(ctx, m, x, sag_map);
    if (!lg) return NULL;
    if (logits) *logits = lg;
    const int64_t B = lg->shape[0], K1 = lg->shape[1], H = lg->shape[2], W = lg->shape[3];
    if (!targets || targets->dtype != ATTN_I32 || targets->ndim != 3 || targets->shape[0] != B ||
        targets->shape[1] != H || targets->shape[2] != W) {
        char b[64] = "NULL";
        if (targets) attn_shape_str(targets, b, sizeof b);
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: targets %s, expected i32 [%lld, %lld, %lld]", fn, b, (long long)B,
                   (long long)H, (long long)W);
        return NULL;
    }
    const int perm[4] = {0, 2, 3, 1};
    const int64_t s2[2] = {B * H * W, K1}, s1[1] = {B * H * W};
    attn_tensor *rows = attn_reshape(ctx, attn_contiguous(ctx, attn_permute(ctx, lg, perm)), 2, s2);
    return attn_cross_entropy(ctx, rows, attn_reshape(ctx, targets, 1, s1), -1, 0.0f);
}

int attn_mask_scene_iou(const float *logits, int64_t k1, const attn_scene *sc, const int8_t *mask,
                        double iou_cls[ATTN_SCENE_CELLS], double iou_fg[ATTN_SCENE_CELLS]) {
    if (!logits || !sc || !mask || !iou_cls || !iou_fg || k1 < 2) return -1;
    const int S = ATTN_SCENE_SIDE, L = ATTN_SCENE_CELL;
    const int64_t plane = (int64_t)S * S;
    int items = 0;
    for (int c = 0; c < ATTN_SCENE_CELLS; c++) {
        iou_cls[c] = iou_fg[c] = -1.0;
        const int k = sc->cls[c];
        if (k < 0) continue;
        items++;
        int64_t ic = 0, uc = 0, ifg = 0, ufg = 0;
        for (int r = (c / 2) * L; r < (c / 2 + 1) * L; r++)
            for (int q = (c % 2) * L; q < (c % 2 + 1) * L; q++) {
                const int64_t p = (int64_t)r * S + q;
                int64_t best = 0;
                for (int64_t j = 1; j < k1; j++)
                    if (logits[j * plane + p] > logits[best * plane + p]) best = j;
                const int t = mask[p] == c, pc = best == 1 + k, pf = best != 0;
                ic += t && pc;
                uc += t || pc;
                ifg += t && pf;
                ufg += t || pf;
            }
        iou_cls[c] = uc ? (double)ic / (double)uc : 1.0;
        iou_fg[c] = ufg ? (double)ifg / (double)ufg : 1.0;
    }
    return items;
}

/* ---- files ------------------------------------------------------------------------------ */

static const attn__meta_field meta_fields[ATTN_MASK_HEAD_META - 1] = {
    ATTN__META_FIELD("mask.width", ATTN__META_I64, attn_mask_head_config, width),
    ATTN__META_FIELD("mask.n_classes", ATTN__META_I64, attn_mask_head_config, n_classes),
    ATTN__META_FIELD("mask.sag", ATTN__META_FLAG, attn_mask_head_config, sag),
    ATTN__META_FIELD("mask.bn_momentum", ATTN__META_FLOAT, attn_mask_head_config, bn_momentum),
    ATTN__META_FIELD("mask.bn_eps", ATTN__META_FLOAT, attn_mask_head_config, bn_eps),
};

void attn_mask_head_config_meta(const attn_mask_head_config *c, attn_kv *kv, char *buf) {
    if (!c || !kv || !buf) return;
    attn__meta_write(meta_fields, ATTN_MASK_HEAD_META - 1, c, kv, buf);
    kv[ATTN_MASK_HEAD_META - 1].key = "mask.model";
    snprintf(buf + 32 * (ATTN_MASK_HEAD_META - 1), 32, "attn-mask-head");
    kv[ATTN_MASK_HEAD_META - 1].value = buf + 32 * (ATTN_MASK_HEAD_META - 1);
}

attn_status attn_mask_head_config_load(const char *path, attn_mask_head_config *cfg) {
    static const char fn[] = "attn_mask_head_config_load";
    if (!path || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_mask_head_config c;
    memset(&c, 0, sizeof c);
    attn_status st = attn__meta_load(fn, "mask head", path, meta_fields, ATTN_MASK_HEAD_META - 1, &c);
    if (st != ATTN_OK) return st;
    attn_mask_head_config r = c;
    resolve(&r);
    if (check_config(fn, &r) != ATTN_OK)
        return attn__error(ATTN_ERR_FORMAT, "%s: %s: the metadata's configuration is invalid: %s", fn, path,
                           attn_last_error());
    *cfg = c;
    return ATTN_OK;
}

attn_status attn_mask_head_load(const char *path, attn_params *ps, attn_mask_head **out) {
    static const char fn[] = "attn_mask_head_load";
    if (out) *out = NULL;
    if (!path || !ps || !out) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_mask_head_config c;
    attn_status st = attn_mask_head_config_load(path, &c);
    if (st != ATTN_OK) return st;
    st = attn__meta_check_size(fn, path, 0, attn_mask_head_numel(&c));
    if (st != ATTN_OK) return st;
    attn_mask_head *m = NULL;
    st = attn_mask_head_new(&m, ps, &c, NULL);
    if (st != ATTN_OK) return st;
    st = attn_safetensors_load_params(path, ps, ATTN_ST_ALLOW_UNEXPECTED);
    if (st != ATTN_OK) {
        attn_mask_head_free(m);
        return st;
    }
    *out = m;
    return ATTN_OK;
}
