/* gan.c: the small SAGAN of include/attn/gan.h (docs/gan.md): a generator
 * and a discriminator with spectral normalisation on every weight and the
 * SAGAN self-attention block at 14 x 14, and the hinge losses. Every piece
 * is a composition of graph ops (linear, conv2d, conv_transpose2d,
 * batchnorm, spectral_norm, the attention block, relu, tanh), so the
 * backward is theirs. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/conv.h"
#include "attn/gan.h"
#include "attn/ops.h"

#define SN_EPS 1e-12f   /* torch's default eps of spectral_norm */
#define SN_INIT_ITERS 15 /* torch's power iterations at registration */
#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f
#define LRELU_SLOPE 0.1f

void attn_gan_config_default(attn_gan_config *cfg) {
    if (!cfg) return;
    cfg->z_dim = 64;
    cfg->g_ch = 32;
    cfg->d_ch = 32;
    cfg->attention = 1;
}

void attn_gan_config_meta(const attn_gan_config *cfg, attn_kv *kv, char buf[ATTN_GAN_META][32]) {
    if (!cfg || !kv || !buf) return;
    static const char *const keys[ATTN_GAN_META] = {"gan.z_dim", "gan.g_ch", "gan.d_ch",
                                                     "gan.attention"};
    const long long vals[ATTN_GAN_META] = {(long long)cfg->z_dim, (long long)cfg->g_ch,
                                           (long long)cfg->d_ch, (long long)cfg->attention};
    for (int i = 0; i < ATTN_GAN_META; i++) {
        snprintf(buf[i], 32, "%lld", vals[i]);
        kv[i].key = keys[i];
        kv[i].value = buf[i];
    }
}

/* ---- building ------------------------------------------------------------------------ */

static attn_status add(attn_params *ps, const char *name, int ndim, const int64_t *shape,
                       attn_tensor **out) {
    return attn_params_add(ps, name, ndim, shape, out);
}

/* a / max(|a|, eps), in place (torch's F.normalize). */
static void normalize(float *a, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * a[i];
    double norm = sqrt(s);
    if (norm < SN_EPS) norm = SN_EPS;
    for (int64_t i = 0; i < n; i++) a[i] = (float)(a[i] / norm);
}

/* Element (o, k) of the weight read as the matrix W [O, K] of the spectral
 * norm (conv.h): dim 0 is the plain reshape; dim 1 swaps the first two
 * dimensions of w [A, B, rest...] first. */
static float sn_at(const attn_gan_sn *s, int64_t o, int64_t k) {
    const attn_tensor *w = s->w;
    const float *d = attn_f32(w);
    if (s->dim == 0) return d[o * (attn_tensor_numel(w) / w->shape[0]) + k];
    const int64_t A = w->shape[0], B = w->shape[1], rest = attn_tensor_numel(w) / (A * B);
    (void)B;
    const int64_t a = k / rest, r = k % rest; /* column k = (a, r), row o = b */
    return d[(a * w->shape[1] + o) * rest + r];
}

/* torch's registration: u, v normal, normalised, then n power iterations
 * u = normalize(W v), v = normalize(W^T u). */
static void sn_power_init(attn_gan_sn *s, attn_rng *rng, int iters) {
    const int64_t O = s->u->shape[0], K = s->v->shape[0];
    float *u = attn_f32(s->u), *v = attn_f32(s->v);
    for (int64_t i = 0; i < O; i++) u[i] = attn_rng_next_normal(rng);
    for (int64_t i = 0; i < K; i++) v[i] = attn_rng_next_normal(rng);
    normalize(u, O);
    normalize(v, K);
    for (int it = 0; it < iters; it++) {
        for (int64_t o = 0; o < O; o++) {
            double acc = 0.0;
            for (int64_t k = 0; k < K; k++) acc += (double)sn_at(s, o, k) * v[k];
            u[o] = (float)acc;
        }
        normalize(u, O);
        for (int64_t k = 0; k < K; k++) {
            double acc = 0.0;
            for (int64_t o = 0; o < O; o++) acc += (double)sn_at(s, o, k) * u[o];
            v[k] = (float)acc;
        }
        normalize(v, K);
    }
}

/* A spectrally normalised weight `layer` of the given shape, uniform in
 * +-1/sqrt(fan_in), with its vectors (no gradient), and its bias [nb] (when
 * b is not NULL) with the same bound. */
static attn_status add_sn(attn_params *ps, const char *layer, int ndim, const int64_t *shape,
                          int dim, int64_t fan_in, int64_t nb, attn_rng *rng, attn_gan_sn *s,
                          attn_tensor **b) {
    char name[256];
    const float bound = (float)(1.0 / sqrt((double)fan_in));
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= shape[i];
    const int64_t O = shape[dim], K = numel / O;
    s->dim = dim;
    snprintf(name, sizeof name, "%s.parametrizations.weight.original", layer);
    attn_status st = add(ps, name, ndim, shape, &s->w);
    if (st != ATTN_OK) return st;
    attn_init_uniform(s->w, bound, rng);
    if (b) {
        const int64_t bs[1] = {nb};
        snprintf(name, sizeof name, "%s.bias", layer);
        st = add(ps, name, 1, bs, b);
        if (st != ATTN_OK) return st;
        attn_init_uniform(*b, bound, rng);
    }
    const int64_t us[1] = {O}, vs[1] = {K};
    snprintf(name, sizeof name, "%s.parametrizations.weight.0._u", layer);
    st = add(ps, name, 1, us, &s->u);
    if (st != ATTN_OK) return st;
    snprintf(name, sizeof name, "%s.parametrizations.weight.0._v", layer);
    st = add(ps, name, 1, vs, &s->v);
    if (st != ATTN_OK) return st;
    s->u->requires_grad = s->v->requires_grad = 0;
    sn_power_init(s, rng, SN_INIT_ITERS);
    return ATTN_OK;
}

/* The SAGAN block (paper form, biases) with spectrally normalised 1x1
 * convolutions under `prefix` ("attn."). */
static attn_status add_block(attn_params *ps, const char *prefix, int64_t C, attn_rng *rng,
                             attn_map_attention *m, attn_gan_sn *q, attn_gan_sn *k,
                             attn_gan_sn *v) {
    char name[256];
    memset(m, 0, sizeof *m);
    m->cfg.channels = C;
    m->cfg.form = ATTN_SAGAN_PAPER;
    m->cfg.bias = 1;
    m->cfg.gamma_init = 0.0f;
    m->cfg.kernel = ATTN_KERNEL_AUTO;
    const int64_t qs[4] = {C / 8, C, 1, 1}, vs[4] = {C, C, 1, 1};
    snprintf(name, sizeof name, "%squery", prefix);
    attn_status st = add_sn(ps, name, 4, qs, 0, C, C / 8, rng, q, &m->bq);
    snprintf(name, sizeof name, "%skey", prefix);
    if (st == ATTN_OK) st = add_sn(ps, name, 4, qs, 0, C, C / 8, rng, k, &m->bk);
    snprintf(name, sizeof name, "%svalue", prefix);
    if (st == ATTN_OK) st = add_sn(ps, name, 4, vs, 0, C, C, rng, v, &m->bv);
    const int64_t one[1] = {1};
    snprintf(name, sizeof name, "%sgamma", prefix);
    if (st == ATTN_OK) st = add(ps, name, 1, one, &m->gamma);
    if (st == ATTN_OK) attn_init_constant(m->gamma, 0.0f);
    return st;
}

static attn_status add_bn(attn_params *ps, int i, int64_t C, attn_gan *g) {
    char name[64];
    const int64_t s[1] = {C};
    const char *parts[4] = {"weight", "bias", "running_mean", "running_var"};
    attn_tensor **dst[4] = {&g->bn_w[i], &g->bn_b[i], &g->bn_mean[i], &g->bn_var[i]};
    for (int p = 0; p < 4; p++) {
        snprintf(name, sizeof name, "bn%d.%s", i + 1, parts[p]);
        attn_status st = add(ps, name, 1, s, dst[p]);
        if (st != ATTN_OK) return st;
    }
    attn_init_constant(g->bn_w[i], 1.0f);
    attn_init_constant(g->bn_var[i], 1.0f);
    g->bn_mean[i]->requires_grad = g->bn_var[i]->requires_grad = 0;
    return ATTN_OK;
}

static attn_status build_generator(attn_gan *g, attn_rng *rng) {
    const int64_t Z = g->cfg.z_dim, c = g->cfg.g_ch;
    attn_params *ps = g->gps;
    const int64_t fc[2] = {2 * c * 49, Z};
    const int64_t up1[4] = {2 * c, c, 4, 4}, up2[4] = {c, c / 2, 4, 4}, out[4] = {1, c / 2, 3, 3};
    /* torch's fan_in of a transposed-conv weight [Cin, Cout, k, k] is Cout k k */
    attn_status st = add_sn(ps, "fc", 2, fc, 0, Z, 2 * c * 49, rng, &g->g_fc, &g->g_fc_b);
    if (st == ATTN_OK) st = add_bn(ps, 0, 2 * c, g);
    if (st == ATTN_OK) st = add_sn(ps, "up1", 4, up1, 1, c * 16, c, rng, &g->g_up1, &g->g_up1_b);
    if (st == ATTN_OK) st = add_bn(ps, 1, c, g);
    if (st == ATTN_OK && g->cfg.attention)
        st = add_block(ps, "attn.", c, rng, &g->g_attn, &g->g_q, &g->g_k, &g->g_v);
    if (st == ATTN_OK) st = add_sn(ps, "up2", 4, up2, 1, (c / 2) * 16, c / 2, rng, &g->g_up2, &g->g_up2_b);
    if (st == ATTN_OK) st = add_bn(ps, 2, c / 2, g);
    if (st == ATTN_OK) st = add_sn(ps, "out", 4, out, 0, (c / 2) * 9, 1, rng, &g->g_out, &g->g_out_b);
    return st;
}

static attn_status build_discriminator(attn_gan *g, attn_rng *rng) {
    const int64_t d = g->cfg.d_ch;
    attn_params *ps = g->dps;
    const int64_t c1[4] = {d, 1, 4, 4}, c2[4] = {2 * d, d, 4, 4}, fc[2] = {1, 2 * d * 49};
    attn_status st = add_sn(ps, "conv1", 4, c1, 0, 16, d, rng, &g->d_c1, &g->d_c1_b);
    if (st == ATTN_OK && g->cfg.attention)
        st = add_block(ps, "attn.", d, rng, &g->d_attn, &g->d_q, &g->d_k, &g->d_v);
    if (st == ATTN_OK) st = add_sn(ps, "conv2", 4, c2, 0, d * 16, 2 * d, rng, &g->d_c2, &g->d_c2_b);
    if (st == ATTN_OK) st = add_sn(ps, "fc", 2, fc, 0, 2 * d * 49, 1, rng, &g->d_fc, &g->d_fc_b);
    return st;
}

attn_status attn_gan_init(attn_gan *g, const attn_gan_config *cfg, attn_rng *rng) {
    static const char fn[] = "attn_gan_init";
    if (!g || !cfg || !rng) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    memset(g, 0, sizeof *g);
    if (cfg->z_dim < 1 || cfg->z_dim > 4096 || cfg->g_ch < 8 || cfg->g_ch > 4096 ||
        cfg->g_ch % 2 != 0 || cfg->d_ch < 8 || cfg->d_ch > 4096 ||
        (cfg->attention != 0 && cfg->attention != 1) ||
        (cfg->attention && (cfg->g_ch % 8 != 0 || cfg->d_ch % 8 != 0)))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: z_dim %lld, g_ch %lld, d_ch %lld, attention %d: expected z_dim in "
                           "[1, 4096], g_ch even and d_ch in [8, 4096], attention 0 or 1, and with "
                           "attention g_ch and d_ch multiples of 8 (C/8 query channels)",
                           fn, (long long)cfg->z_dim, (long long)cfg->g_ch, (long long)cfg->d_ch,
                           cfg->attention);
    g->cfg = *cfg;
    attn_status st = attn_params_new(&g->gps);
    if (st == ATTN_OK) st = attn_params_new(&g->dps);
    if (st == ATTN_OK) st = build_generator(g, rng);
    if (st == ATTN_OK) st = build_discriminator(g, rng);
    if (st != ATTN_OK) attn_gan_free(g);
    return st;
}

void attn_gan_free(attn_gan *g) {
    if (!g) return;
    attn_params_free(g->gps);
    attn_params_free(g->dps);
    memset(g, 0, sizeof *g);
}

/* ---- forward ------------------------------------------------------------------------- */

static attn_tensor *sn(attn_ctx *ctx, const attn_gan_sn *s) {
    return attn_spectral_norm(ctx, s->w, s->u, s->v, s->dim, SN_EPS);
}

/* The attention block with its query, key and value weights replaced by
 * their spectrally normalised values (a copy of the block, graph tensors in
 * place of the parameters). */
static attn_tensor *block(attn_ctx *ctx, const attn_map_attention *m, const attn_gan_sn *q,
                          const attn_gan_sn *k, const attn_gan_sn *v, attn_tensor *x,
                          attn_tensor **map) {
    attn_map_attention b = *m;
    b.wq = sn(ctx, q);
    b.wk = sn(ctx, k);
    b.wv = sn(ctx, v);
    if (!x || !b.wq || !b.wk || !b.wv) return NULL;
    return attn_map_attention_forward(ctx, &b, x, map);
}

static attn_tensor *bn_relu(attn_ctx *ctx, const attn_gan *g, int i, attn_tensor *x) {
    return attn_relu(ctx, attn_batchnorm(ctx, x, g->bn_w[i], g->bn_b[i], g->bn_mean[i],
                                         g->bn_var[i], BN_MOMENTUM, BN_EPS));
}

/* LeakyReLU(x) = max(x, 0.1 x) = 0.9 relu(x) + 0.1 x. */
static attn_tensor *lrelu(attn_ctx *ctx, attn_tensor *x) {
    return attn_add(ctx, attn_scale(ctx, attn_relu(ctx, x), 1.0f - LRELU_SLOPE),
                    attn_scale(ctx, x, LRELU_SLOPE));
}

attn_tensor *attn_gan_generate(attn_ctx *ctx, const attn_gan *g, attn_tensor *z,
                               attn_tensor **attn_map) {
    static const char op[] = "attn_gan_generate";
    if (attn_map) *attn_map = NULL;
    if (!g) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: NULL model", op);
        return NULL;
    }
    if (attn__any_null(ctx, op, 1, z)) return NULL;
    const int64_t Z = g->cfg.z_dim, c = g->cfg.g_ch;
    if (z->ndim != 2 || z->shape[1] != Z) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: z %s, expected [B, %lld]", op, attn__shp(z), (long long)Z);
        return NULL;
    }
    const int64_t B = z->shape[0];
    attn_conv2d_opts up;
    memset(&up, 0, sizeof up);
    up.stride[0] = up.stride[1] = 2;
    up.padding[0] = up.padding[1] = 1;
    attn_conv2d_opts same;
    memset(&same, 0, sizeof same);
    same.padding[0] = same.padding[1] = 1;
    const int64_t s7[4] = {B, 2 * c, 7, 7};
    attn_tensor *h = attn_linear(ctx, z, sn(ctx, &g->g_fc), g->g_fc_b);
    h = bn_relu(ctx, g, 0, attn_reshape(ctx, h, 4, s7));
    h = bn_relu(ctx, g, 1, attn_conv_transpose2d(ctx, h, sn(ctx, &g->g_up1), g->g_up1_b, &up));
    if (g->cfg.attention) h = block(ctx, &g->g_attn, &g->g_q, &g->g_k, &g->g_v, h, attn_map);
    h = bn_relu(ctx, g, 2, attn_conv_transpose2d(ctx, h, sn(ctx, &g->g_up2), g->g_up2_b, &up));
    return attn_tanh(ctx, attn_conv2d(ctx, h, sn(ctx, &g->g_out), g->g_out_b, &same));
}

attn_tensor *attn_gan_discriminate(attn_ctx *ctx, const attn_gan *g, attn_tensor *x) {
    static const char op[] = "attn_gan_discriminate";
    if (!g) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: NULL model", op);
        return NULL;
    }
    if (attn__any_null(ctx, op, 1, x)) return NULL;
    if (x->ndim != 4 || x->shape[1] != 1 || x->shape[2] != ATTN_GAN_SIZE ||
        x->shape[3] != ATTN_GAN_SIZE) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x %s, expected [B, 1, 28, 28]", op, attn__shp(x));
        return NULL;
    }
    const int64_t B = x->shape[0], d = g->cfg.d_ch;
    attn_conv2d_opts down;
    memset(&down, 0, sizeof down);
    down.stride[0] = down.stride[1] = 2;
    down.padding[0] = down.padding[1] = 1;
    attn_tensor *h = lrelu(ctx, attn_conv2d(ctx, x, sn(ctx, &g->d_c1), g->d_c1_b, &down));
    if (g->cfg.attention) h = block(ctx, &g->d_attn, &g->d_q, &g->d_k, &g->d_v, h, NULL);
    h = lrelu(ctx, attn_conv2d(ctx, h, sn(ctx, &g->d_c2), g->d_c2_b, &down));
    const int64_t flat[2] = {B, 2 * d * 49}, out[1] = {B};
    h = attn_linear(ctx, attn_reshape(ctx, h, 2, flat), sn(ctx, &g->d_fc), g->d_fc_b);
    return attn_reshape(ctx, h, 1, out);
}

/* ---- losses ---------------------------------------------------------------------------- */

/* mean(relu(1 + sign * s)) */
static attn_tensor *hinge(attn_ctx *ctx, attn_tensor *s, float sign) {
    const float one = 1.0f;
    const int64_t shape[1] = {1};
    attn_tensor *c = attn_tensor_from(ctx, ATTN_F32, 1, shape, &one);
    return attn_mean(ctx, attn_relu(ctx, attn_add(ctx, attn_scale(ctx, s, sign), c)), ATTN_ALL_AXES, 0);
}

static int is_scores(attn_ctx *ctx, const char *op, const char *what, const attn_tensor *s) {
    if (s->ndim == 1 && s->shape[0] >= 1) return 1;
    attn__fail(ctx, ATTN_ERR_SHAPE, "%s: %s %s, expected [B] scores", op, what, attn__shp(s));
    return 0;
}

attn_tensor *attn_gan_d_hinge_loss(attn_ctx *ctx, attn_tensor *d_real, attn_tensor *d_fake) {
    static const char op[] = "attn_gan_d_hinge_loss";
    if (attn__any_null(ctx, op, 2, d_real, d_fake)) return NULL;
    if (!is_scores(ctx, op, "d_real", d_real) || !is_scores(ctx, op, "d_fake", d_fake)) return NULL;
    return attn_add(ctx, hinge(ctx, d_real, -1.0f), hinge(ctx, d_fake, 1.0f));
}

attn_tensor *attn_gan_g_hinge_loss(attn_ctx *ctx, attn_tensor *d_fake) {
    static const char op[] = "attn_gan_g_hinge_loss";
    if (attn__any_null(ctx, op, 1, d_fake)) return NULL;
    if (!is_scores(ctx, op, "d_fake", d_fake)) return NULL;
    return attn_scale(ctx, attn_mean(ctx, d_fake, ATTN_ALL_AXES, 0), -1.0f);
}
