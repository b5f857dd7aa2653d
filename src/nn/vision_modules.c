/* vision_modules.c: the configuration, parameters and dispatch of the vision
 * attention modules (include/attn/vision_modules.h), and the graph helpers
 * they share (global and channel pooling, BatchNorm, square convolutions).
 * The modules' forwards live in cbam.c, soft_attention.c, global_context.c,
 * psa.c and aaconv.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/conv.h"
#include "attn/ops.h"
#include "vision_modules_internal.h"

#define VM_MAX_CHANNELS 4096
#define VM_MAX_MAP 64

static const char *const vm_names[ATTN_VM_COUNT] = {"channel", "spatial", "cbam", "soft",
                                                    "gc",      "sag",     "psa",  "aaconv"};

const char *attn_vision_module_name(attn_vision_module_kind k) {
    return (int)k >= 0 && (int)k < ATTN_VM_COUNT ? vm_names[k] : "?";
}

int attn_vision_module_parse(const char *s, attn_vision_module_kind *out) {
    if (!s || !out) return -1;
    for (int i = 0; i < ATTN_VM_COUNT; i++)
        if (!strcmp(s, vm_names[i])) {
            *out = (attn_vision_module_kind)i;
            return 0;
        }
    return -1;
}

/* Fills the zeros that read as defaults (only where the kind reads them). */
static void resolve(attn_vision_module_config *c) {
    if (c->reduction == 0) c->reduction = 16;
    if (c->kernel == 0) c->kernel = c->kind == ATTN_VM_SAG ? 3 : 7;
    if (c->branches == 0) c->branches = 2;
    if (c->bn_momentum == 0.0f) c->bn_momentum = 0.1f;
    if (c->bn_eps == 0.0f) c->bn_eps = 1e-5f;
    if (c->kind == ATTN_VM_AACONV) {
        if (c->heads == 0) c->heads = 2;
        if (c->heads > 0) {
            int64_t d = c->channels / 4 / c->heads * c->heads;
            if (d < c->heads) d = c->heads;
            if (c->key_channels == 0) c->key_channels = d;
            if (c->value_channels == 0) c->value_channels = d;
        }
    }
}

static attn_status check(const char *fn, const attn_vision_module_config *c) {
    if ((int)c->kind < 0 || (int)c->kind >= ATTN_VM_COUNT)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: kind %d is not a module of vision_modules.h",
                           fn, (int)c->kind);
    const char *nm = vm_names[c->kind];
    if (c->channels < 1 || c->channels > VM_MAX_CHANNELS || c->reduction < 1)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: %s: channels %lld (1 to %d), reduction %lld (>= 1)", fn, nm,
                           (long long)c->channels, VM_MAX_CHANNELS, (long long)c->reduction);
    if (c->kernel < 1 || c->kernel > 15 || c->kernel % 2 == 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %s: kernel %lld, expected odd in [1, 15]", fn,
                           nm, (long long)c->kernel);
    if (c->spatial_bn != 0 && c->spatial_bn != 1)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %s: spatial_bn %d, expected 0 or 1", fn, nm,
                           c->spatial_bn);
    if (c->kind == ATTN_VM_SOFT && (c->branches < 2 || c->branches > 4))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: soft: branches %lld, expected 2 to 4", fn,
                           (long long)c->branches);
    if (!(c->bn_momentum >= 0.0f && c->bn_momentum <= 1.0f) || !(c->bn_eps > 0.0f) ||
        !isfinite(c->bn_eps))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %s: bn_momentum %g (in [0, 1]), bn_eps %g (> 0)",
                           fn, nm, (double)c->bn_momentum, (double)c->bn_eps);
    if (c->kind == ATTN_VM_PSA || c->kind == ATTN_VM_AACONV) {
        if (c->height < 1 || c->height > VM_MAX_MAP || c->width < 1 || c->width > VM_MAX_MAP)
            return attn__error(ATTN_ERR_INVALID_ARG,
                               "%s: %s: map %lldx%lld, expected height and width in [1, %d] (the "
                               "relative maps have (2H-1)(2W-1) entries)",
                               fn, nm, (long long)c->height, (long long)c->width, VM_MAX_MAP);
    }
    if (c->kind == ATTN_VM_AACONV) {
        const int64_t h = c->heads, dk = c->key_channels, dv = c->value_channels;
        if (h < 1 || h > 64 || dk < h || dv < h || dk % h != 0 || dv % h != 0 || dv >= c->channels)
            return attn__error(ATTN_ERR_INVALID_ARG,
                               "%s: aaconv: heads %lld, key_channels %lld, value_channels %lld, "
                               "channels %lld: expected 1 to 64 heads dividing dk and dv, and dv < C "
                               "(the convolution keeps C - dv channels)",
                               fn, (long long)h, (long long)dk, (long long)dv,
                               (long long)c->channels);
    }
    return ATTN_OK;
}

/* ---- parameters ---------------------------------------------------------------------------- */

typedef struct vm_init {
    attn_params *ps;
    const char *prefix;
    attn_rng *rng;
    attn_status st;
} vm_init;

/* Adds prefix + name, uniform in +-bound (rng given) or constant `fill`
 * (bound < 0, or no rng: the load case, where only 1-valued tensors matter). */
static attn_tensor *param(vm_init *vi, const char *name, int ndim, const int64_t *shape,
                          float bound, float fill) {
    if (vi->st != ATTN_OK) return NULL;
    char full[256];
    snprintf(full, sizeof full, "%s%s", vi->prefix ? vi->prefix : "", name);
    attn_tensor *t = NULL;
    vi->st = attn_params_add(vi->ps, full, ndim, shape, &t);
    if (vi->st != ATTN_OK) return NULL;
    if (vi->rng && bound > 0.0f) attn_init_uniform(t, bound, vi->rng);
    else attn_init_constant(t, fill);
    return t;
}

static float fan_bound(int64_t fan_in) { return (float)(1.0 / sqrt((double)fan_in)); }

/* A weight [cout, cin, k, k] (a linear's [cout, cin] when k = 0) and, with
 * bias, its bias [cout]: torch's default bounds. */
static void conv_param(vm_init *vi, const char *name, int64_t cout, int64_t cin, int64_t k,
                       int bias, attn_tensor **w, attn_tensor **b) {
    char nm[128];
    const int64_t fan = cin * (k ? k * k : 1);
    const int64_t ws[4] = {cout, cin, k, k}, bs[1] = {cout};
    snprintf(nm, sizeof nm, "%s.weight", name);
    *w = param(vi, nm, k ? 4 : 2, ws, fan_bound(fan), 0.0f);
    if (bias) {
        snprintf(nm, sizeof nm, "%s.bias", name);
        *b = param(vi, nm, 1, bs, fan_bound(fan), 0.0f);
    }
}
/* A BatchNorm over c channels: weight 1, bias 0, running mean 0, variance 1. */
static void bn_param(vm_init *vi, const char *name, int64_t c, attn_vm_bn *bn) {
    char nm[128];
    const int64_t s[1] = {c};
    snprintf(nm, sizeof nm, "%s.weight", name);
    bn->w = param(vi, nm, 1, s, -1.0f, 1.0f);
    snprintf(nm, sizeof nm, "%s.bias", name);
    bn->b = param(vi, nm, 1, s, -1.0f, 0.0f);
    snprintf(nm, sizeof nm, "%s.running_mean", name);
    bn->mean = param(vi, nm, 1, s, -1.0f, 0.0f);
    snprintf(nm, sizeof nm, "%s.running_var", name);
    bn->var = param(vi, nm, 1, s, -1.0f, 1.0f);
    if (vi->st == ATTN_OK) bn->mean->requires_grad = bn->var->requires_grad = 0;
}

attn_status attn_vision_module_init(attn_vision_module *m, attn_params *ps, const char *prefix,
                                    const attn_vision_module_config *cfg, attn_rng *rng) {
    static const char fn[] = "attn_vision_module_init";
    if (!m || !ps || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    memset(m, 0, sizeof *m);
    attn_vision_module_config c = *cfg;
    resolve(&c);
    attn_status st = check(fn, &c);
    if (st != ATTN_OK) return st;
    m->cfg = c;
    const int64_t C = c.channels, Ch = C / c.reduction > 0 ? C / c.reduction : 1;
    m->hidden = Ch;
    vm_init vi = {ps, prefix, rng, ATTN_OK};
    const attn_vision_module_kind k = c.kind;
    if (k == ATTN_VM_CHANNEL || k == ATTN_VM_CBAM) {
        conv_param(&vi, "channel.fc1", Ch, C, 0, 1, &m->fc1_w, &m->fc1_b);
        conv_param(&vi, "channel.fc2", C, Ch, 0, 1, &m->fc2_w, &m->fc2_b);
    }
    if (k == ATTN_VM_SPATIAL || k == ATTN_VM_CBAM) {
        conv_param(&vi, "spatial.conv", 1, 2, c.kernel, !c.spatial_bn, &m->sp_w, &m->sp_b);
        if (c.spatial_bn) bn_param(&vi, "spatial.bn", 1, &m->sp_bn);
    }
    if (k == ATTN_VM_SAG) conv_param(&vi, "conv", 1, 2, c.kernel, 0, &m->sp_w, &m->sp_b);
    if (k == ATTN_VM_SOFT) {
        char nm[64];
        for (int64_t b = 0; b < c.branches; b++) {
            attn_tensor *unused = NULL;
            snprintf(nm, sizeof nm, "branch%lld.conv", (long long)b);
            conv_param(&vi, nm, C, C, 3, 0, &m->br_w[b], &unused);
            snprintf(nm, sizeof nm, "branch%lld.bn", (long long)b);
            bn_param(&vi, nm, C, &m->br_bn[b]);
        }
        conv_param(&vi, "fc1", Ch, C, 0, 1, &m->fc1_w, &m->fc1_b);
        bn_param(&vi, "bn", Ch, &m->fuse_bn);
        conv_param(&vi, "fc2", c.branches * C, Ch, 0, 1, &m->fc2_w, &m->fc2_b);
    }
    if (k == ATTN_VM_GC) {
        const int64_t s[1] = {Ch}, ws[2] = {C, Ch}, bs[1] = {C};
        conv_param(&vi, "mask", 1, C, 1, 1, &m->mask_w, &m->mask_b);
        conv_param(&vi, "fc1", Ch, C, 0, 1, &m->fc1_w, &m->fc1_b);
        m->ln_w = param(&vi, "ln.weight", 1, s, -1.0f, 1.0f);
        m->ln_b = param(&vi, "ln.bias", 1, s, -1.0f, 0.0f);
        /* the last convolution starts at zero: the block starts as the identity */
        m->fc2_w = param(&vi, "fc2.weight", 2, ws, -1.0f, 0.0f);
        m->fc2_b = param(&vi, "fc2.bias", 1, bs, -1.0f, 0.0f);
    }
    if (k == ATTN_VM_PSA) {
        static const char *const br[2] = {"collect", "distribute"};
        const int64_t R = (2 * c.height - 1) * (2 * c.width - 1);
        char nm[64];
        for (int b = 0; b < 2; b++) {
            attn_tensor *unused = NULL;
            snprintf(nm, sizeof nm, "%s.reduce", br[b]);
            conv_param(&vi, nm, Ch, C, 1, 0, &m->psa_reduce_w[b], &unused);
            snprintf(nm, sizeof nm, "%s.reduce_bn", br[b]);
            bn_param(&vi, nm, Ch, &m->psa_reduce_bn[b]);
            snprintf(nm, sizeof nm, "%s.att", br[b]);
            conv_param(&vi, nm, Ch, Ch, 1, 0, &m->psa_att_w[b], &unused);
            snprintf(nm, sizeof nm, "%s.att_bn", br[b]);
            bn_param(&vi, nm, Ch, &m->psa_att_bn[b]);
            snprintf(nm, sizeof nm, "%s.map", br[b]);
            conv_param(&vi, nm, R, Ch, 1, 1, &m->psa_map_w[b], &m->psa_map_b[b]);
        }
        attn_tensor *unused = NULL;
        conv_param(&vi, "proj", C, 2 * Ch, 1, 0, &m->proj_w, &unused);
        bn_param(&vi, "proj_bn", C, &m->fuse_bn);
    }
    if (k == ATTN_VM_AACONV) {
        const int64_t dk = c.key_channels, dv = c.value_channels, dkh = dk / c.heads;
        conv_param(&vi, "conv", C - dv, C, 3, 1, &m->conv_w, &m->conv_b);
        conv_param(&vi, "qkv", 2 * dk + dv, C, 1, 1, &m->qkv_w, &m->qkv_b);
        conv_param(&vi, "out", dv, dv, 1, 1, &m->out_w, &m->out_b);
        const int64_t rw[2] = {2 * c.width - 1, dkh}, rh[2] = {2 * c.height - 1, dkh};
        m->rel_w = param(&vi, "rel_w", 2, rw, -1.0f, 0.0f);
        m->rel_h = param(&vi, "rel_h", 2, rh, -1.0f, 0.0f);
        if (vi.st == ATTN_OK && rng) {
            attn_init_normal(m->rel_w, (float)(1.0 / sqrt((double)dkh)), rng);
            attn_init_normal(m->rel_h, (float)(1.0 / sqrt((double)dkh)), rng);
        }
    }
    return vi.st;
}

int64_t attn_vision_module_numel(const attn_vision_module_config *cfg) {
    if (!cfg) return -1;
    attn_params *ps = NULL;
    if (attn_params_new(&ps) != ATTN_OK) return -1;
    attn_vision_module m;
    const int64_t n = attn_vision_module_init(&m, ps, "", cfg, NULL) == ATTN_OK
                          ? attn_params_numel(ps) : -1;
    attn_params_free(ps);
    return n;
}

/* ---- shared graph helpers ------------------------------------------------------------------ */

attn_tensor *attn__vm_avgpool(attn_ctx *ctx, attn_tensor *x) {
    if (!x) return NULL;
    const int64_t s3[3] = {x->shape[0], x->shape[1], x->shape[2] * x->shape[3]};
    return attn_mean(ctx, attn_reshape(ctx, x, 3, s3), -1, 0);
}

attn_tensor *attn__vm_maxpool(attn_ctx *ctx, attn_tensor *x) {
    if (!x) return NULL;
    attn_pool2d_opts po;
    memset(&po, 0, sizeof po);
    po.kernel[0] = x->shape[2];
    po.kernel[1] = x->shape[3];
    const int64_t s2[2] = {x->shape[0], x->shape[1]};
    return attn_reshape(ctx, attn_max_pool2d(ctx, x, &po, NULL), 2, s2);
}

attn_tensor *attn__vm_channel_mean(attn_ctx *ctx, attn_tensor *x) {
    return x ? attn_mean(ctx, x, 1, 1) : NULL;
}

attn_tensor *attn__vm_channel_max(attn_ctx *ctx, attn_tensor *x) {
    if (!x) return NULL;
    /* [B, C, H, W] viewed [B, 1, C, N]: a C x 1 max pool leaves [B, 1, 1, N] */
    const int64_t B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t s4[4] = {B, 1, C, H * W}, o4[4] = {B, 1, H, W};
    attn_pool2d_opts po;
    memset(&po, 0, sizeof po);
    po.kernel[0] = C;
    po.kernel[1] = 1;
    return attn_reshape(ctx, attn_max_pool2d(ctx, attn_reshape(ctx, x, 4, s4), &po, NULL), 4, o4);
}

attn_tensor *attn__vm_bn(attn_ctx *ctx, const attn_vision_module *m, attn_tensor *x,
                         const attn_vm_bn *bn) {
    return attn_batchnorm(ctx, x, bn->w, bn->b, bn->mean, bn->var, m->cfg.bn_momentum,
                          m->cfg.bn_eps);
}

attn_tensor *attn__vm_conv(attn_ctx *ctx, attn_tensor *x, attn_tensor *w, attn_tensor *b,
                           int64_t k, int64_t d) {
    attn_conv2d_opts co;
    memset(&co, 0, sizeof co);
    co.padding[0] = co.padding[1] = d * (k / 2);
    co.dilation[0] = co.dilation[1] = d;
    return attn_conv2d(ctx, x, w, b, &co);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

attn_tensor *attn_vision_module_forward(attn_ctx *ctx, const attn_vision_module *m,
                                        attn_tensor *x, attn_tensor **map) {
    static const char fn[] = "attn_vision_module_forward";
    if (map) *map = NULL;
    if (!ctx) {
        attn__error(ATTN_ERR_INVALID_ARG, "%s: context is NULL", fn);
        return NULL;
    }
    if (!m) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: module is NULL", fn);
        return NULL;
    }
    if (attn__any_null(ctx, fn, 1, x)) return NULL;
    const attn_vision_module_config *c = &m->cfg;
    const int fixed = c->kind == ATTN_VM_PSA || c->kind == ATTN_VM_AACONV;
    if (x->dtype != ATTN_F32 || x->ndim != 4 || x->shape[0] < 1 || x->shape[1] != c->channels ||
        x->shape[2] < 1 || x->shape[3] < 1 ||
        (fixed && (x->shape[2] != c->height || x->shape[3] != c->width))) {
        if (fixed)
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %s: x %s (%s), expected f32 [B, %lld, %lld, %lld]",
                       fn, vm_names[c->kind], attn__shp(x), attn_dtype_name(x->dtype),
                       (long long)c->channels, (long long)c->height, (long long)c->width);
        else
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %s: x %s (%s), expected f32 [B, %lld, H, W]", fn,
                       vm_names[c->kind], attn__shp(x), attn_dtype_name(x->dtype),
                       (long long)c->channels);
        return NULL;
    }
    x = attn_contiguous(ctx, x);
    attn_tensor *y = NULL;
    switch (c->kind) {
    case ATTN_VM_CHANNEL: y = attn__vm_channel(ctx, m, x, map); break;
    case ATTN_VM_SPATIAL: y = attn__vm_spatial(ctx, m, x, map); break;
    case ATTN_VM_CBAM: y = attn__vm_spatial(ctx, m, attn__vm_channel(ctx, m, x, NULL), map); break;
    case ATTN_VM_SOFT: y = attn__vm_soft(ctx, m, x, map); break;
    case ATTN_VM_GC: y = attn__vm_gc(ctx, m, x, map); break;
    case ATTN_VM_SAG: y = attn__vm_sag(ctx, m, x, map); break;
    case ATTN_VM_PSA: y = attn__vm_psa(ctx, m, x, map); break;
    case ATTN_VM_AACONV: y = attn__vm_aaconv(ctx, m, x, map); break;
    default: break;
    }
    if (!y && map) *map = NULL;
    return y;
}
