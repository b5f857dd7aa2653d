/* synthesizer.c: synthesized attention (include/attn/synthesizer.h,
 * docs/synthesizer.md). The logits of every component are built from graph
 * ops, weighted and summed, and handed to the attention op as its bias; the
 * op's query and key are the DOT component's projections, or a constant
 * [B, H, T, 1] of zeros (logits 0) when there is none. The bias gets its
 * gradient from the op, so the whole block's backward is its ops'. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/ops.h"
#include "attn/sdpa.h"
#include "attn/synthesizer.h"

/* Adds parameter prefix + name; uniform in +-bound when bound > 0, normal
 * with std -bound when bound < 0 (when rng is given). */
static attn_status add_param(attn_params *ps, const char *prefix, const char *name, int ndim,
                             const int64_t *shape, float bound, attn_rng *rng, attn_tensor **out) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix ? prefix : "", name);
    attn_status st = attn_params_add(ps, full, ndim, shape, out);
    if (st == ATTN_OK && rng) {
        if (bound > 0) attn_init_uniform(*out, bound, rng);
        else attn_init_normal(*out, -bound, rng);
    }
    return st;
}

/* A linear layer [out, in] with bias [out], torch's default init. */
static attn_status add_linear(attn_params *ps, const char *prefix, const char *name, int64_t out,
                              int64_t in, attn_rng *rng, attn_tensor **w, attn_tensor **b) {
    char nm[64];
    const int64_t ws[2] = {out, in}, bs[1] = {out};
    const float bound = (float)(1.0 / sqrt((double)in));
    snprintf(nm, sizeof nm, "%s.weight", name);
    attn_status st = add_param(ps, prefix, nm, 2, ws, bound, rng, w);
    if (st == ATTN_OK) {
        snprintf(nm, sizeof nm, "%s.bias", name);
        st = add_param(ps, prefix, nm, 1, bs, bound, rng, b);
    }
    return st;
}

/* The largest divisor of l that is <= sqrt(l). */
static int64_t default_factor(int64_t l) {
    int64_t a = 1;
    for (int64_t d = 1; d * d <= l; d++)
        if (l % d == 0) a = d;
    return a;
}

static int popcount5(unsigned c) {
    int n = 0;
    for (int i = 0; i < 5; i++) n += (int)((c >> i) & 1u);
    return n;
}

attn_status attn_synthesizer_init(attn_synthesizer *m, attn_params *ps, const char *prefix,
                                  const attn_synthesizer_config *cfg, attn_rng *rng) {
    static const char fn[] = "attn_synthesizer_init";
    if (!m || !ps || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    memset(m, 0, sizeof *m);
    attn_synthesizer_config c = *cfg;
    const int64_t E = c.d_model, H = c.n_heads, l = c.max_len;
    if (E < 1 || H < 1 || E % H != 0 || l < 1 || l > (int64_t)1 << 20)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: d_model %lld, n_heads %lld, max_len %lld: expected sizes >= 1, "
                           "n_heads dividing d_model, max_len <= 2^20",
                           fn, (long long)E, (long long)H, (long long)l);
    if (c.components == 0 || (c.components & ~(unsigned)ATTN_SYNTH_ALL))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: components 0x%x: expected a non-empty set of ATTN_SYNTH_* bits",
                           fn, c.components);
    if (c.hidden == 0) c.hidden = E;
    if (c.rank == 0) c.rank = 8;
    if (c.factor_a == 0) c.factor_a = default_factor(l);
    if (c.hidden < 1 || c.rank < 1 || c.factor_a < 1 || l % c.factor_a != 0)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: hidden %lld, rank %lld, factor_a %lld: expected >= 1 and factor_a "
                           "dividing max_len %lld",
                           fn, (long long)c.hidden, (long long)c.rank, (long long)c.factor_a,
                           (long long)l);
    if (!(c.dropout >= 0.0f && c.dropout < 1.0f))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: dropout %g, expected [0, 1)", fn,
                           (double)c.dropout);
    if (c.kernel < 0 || c.kernel >= ATTN_KERNEL_COUNT)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: kernel %d", fn, (int)c.kernel);
    m->cfg = c;
    m->head_dim = E / H;
    m->factor_b = l / c.factor_a;
    m->n_components = popcount5(c.components);
    const unsigned k = c.components;
    attn_status st = ATTN_OK;
    if (k & ATTN_SYNTH_DENSE) {
        st = add_linear(ps, prefix, "dense.0", c.hidden, E, rng, &m->w1, &m->b1);
        if (st == ATTN_OK) st = add_linear(ps, prefix, "dense.1", H * l, c.hidden, rng, &m->w2, &m->b2);
    }
    if (st == ATTN_OK && (k & ATTN_SYNTH_RANDOM)) {
        const int64_t rs[3] = {H, l, l};
        st = add_param(ps, prefix, "random.weight", 3, rs, -1.0f, rng, &m->r);
        if (st == ATTN_OK && c.fixed_random) m->r->requires_grad = 0;
    }
    if (st == ATTN_OK && (k & ATTN_SYNTH_FACTORIZED_DENSE)) {
        st = add_linear(ps, prefix, "fdense.a", H * c.factor_a, E, rng, &m->wa, &m->ba);
        if (st == ATTN_OK) st = add_linear(ps, prefix, "fdense.b", H * m->factor_b, E, rng, &m->wb, &m->bb);
    }
    if (st == ATTN_OK && (k & ATTN_SYNTH_FACTORIZED_RANDOM)) {
        const int64_t rs[3] = {H, l, c.rank};
        const float sd = -(float)pow((double)c.rank, -0.25);
        st = add_param(ps, prefix, "frandom.r1", 3, rs, sd, rng, &m->r1);
        if (st == ATTN_OK) st = add_param(ps, prefix, "frandom.r2", 3, rs, sd, rng, &m->r2);
        if (st == ATTN_OK && c.fixed_random) m->r1->requires_grad = m->r2->requires_grad = 0;
    }
    if (st == ATTN_OK && (k & ATTN_SYNTH_DOT)) {
        st = add_linear(ps, prefix, "q", E, E, rng, &m->wq, &m->bq);
        if (st == ATTN_OK) st = add_linear(ps, prefix, "k", E, E, rng, &m->wk, &m->bk);
    }
    if (st == ATTN_OK) st = add_linear(ps, prefix, "v", E, E, rng, &m->wv, &m->bv);
    if (st == ATTN_OK) st = add_linear(ps, prefix, "out", E, E, rng, &m->wo, &m->bo);
    if (st == ATTN_OK && m->n_components > 1) {
        const int64_t ms[1] = {m->n_components};
        st = add_param(ps, prefix, "mix", 1, ms, 0.0f, NULL, &m->mix);
    }
    return st;
}

/* [B, T, H, n] (a projection's output viewed per head) -> [B, H, T, n]. */
static attn_tensor *heads(attn_ctx *ctx, attn_tensor *y, int64_t H) {
    if (!y) return NULL;
    static const int perm[4] = {0, 2, 1, 3};
    const int64_t s[4] = {y->shape[0], y->shape[1], H, y->shape[2] / H};
    return attn_permute(ctx, attn_reshape(ctx, y, 4, s), perm);
}

/* The logits of one component, broadcastable to [B, H, T, T] (NULL with the
 * context's error set), for the DOT component NULL and no error. */
static attn_tensor *component_logits(attn_ctx *ctx, const attn_synthesizer *m, unsigned which,
                                     attn_tensor *x) {
    const int64_t B = x->shape[0], T = x->shape[1], H = m->cfg.n_heads, l = m->cfg.max_len;
    static const int perm[4] = {0, 2, 1, 3};
    if (which == ATTN_SYNTH_DENSE) {
        attn_tensor *h = attn_relu(ctx, attn_linear(ctx, x, m->w1, m->b1));
        attn_tensor *g = attn_linear(ctx, h, m->w2, m->b2); /* [B, T, H l] */
        const int64_t s[4] = {B, T, H, l};
        attn_tensor *r = attn_slice(ctx, attn_reshape(ctx, g, 4, s), 3, 0, T);
        return attn_contiguous(ctx, attn_permute(ctx, r, perm));
    }
    if (which == ATTN_SYNTH_RANDOM) {
        attn_tensor *r = attn_slice(ctx, attn_slice(ctx, m->r, 1, 0, T), 2, 0, T);
        const int64_t s[4] = {1, H, T, T};
        return attn_reshape(ctx, attn_contiguous(ctx, r), 4, s);
    }
    if (which == ATTN_SYNTH_FACTORIZED_DENSE) {
        const int64_t a = m->cfg.factor_a, b = m->factor_b;
        const int64_t sa[4] = {B * T, H, 1, a}, sb[4] = {B * T, H, b, 1}, sl[4] = {B, T, H, l};
        attn_tensor *fa = attn_reshape(ctx, attn_linear(ctx, x, m->wa, m->ba), 4, sa);
        attn_tensor *fb = attn_reshape(ctx, attn_linear(ctx, x, m->wb, m->bb), 4, sb);
        /* [B T, H, b, a]: entry (i_b, i_a) is position j = i_b a + i_a of
         * the row, a[j mod a] b[j div a] */
        attn_tensor *c = attn_reshape(ctx, attn_mul(ctx, fb, fa), 4, sl);
        return attn_contiguous(ctx, attn_permute(ctx, attn_slice(ctx, c, 3, 0, T), perm));
    }
    if (which == ATTN_SYNTH_FACTORIZED_RANDOM) {
        attn_tensor *r1 = attn_contiguous(ctx, attn_slice(ctx, m->r1, 1, 0, T));
        attn_tensor *r2 = attn_contiguous(ctx, attn_slice(ctx, m->r2, 1, 0, T));
        const int64_t s[4] = {1, H, T, T};
        return attn_reshape(ctx, attn_bmm(ctx, r1, r2, 0, 1), 4, s);
    }
    return NULL;
}

attn_tensor *attn_synthesizer_forward(attn_ctx *ctx, const attn_synthesizer *m, attn_tensor *x,
                                      attn_tensor **weights) {
    static const char fn[] = "attn_synthesizer_forward";
    if (weights) *weights = NULL;
    if (!ctx) {
        attn__error(ATTN_ERR_INVALID_ARG, "%s: context is NULL", fn);
        return NULL;
    }
    if (!m) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: block is NULL", fn);
        return NULL;
    }
    if (attn__any_null(ctx, fn, 1, x)) return NULL;
    const int64_t E = m->cfg.d_model, H = m->cfg.n_heads, D = m->head_dim;
    if (x->dtype != ATTN_F32 || x->ndim != 3 || x->shape[0] < 1 || x->shape[1] < 1 ||
        x->shape[1] > m->cfg.max_len || x->shape[2] != E) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: x %s (%s), expected f32 [B, T, %lld] with 1 <= T <= "
                   "max_len %lld", fn, attn__shp(x), attn_dtype_name(x->dtype), (long long)E,
                   (long long)m->cfg.max_len);
        return NULL;
    }
    const int64_t B = x->shape[0], T = x->shape[1];
    const int mixed = m->n_components > 1;
    attn_tensor *alpha = mixed ? attn_softmax(ctx, m->mix, NULL) : NULL;
    if (mixed && !alpha) return NULL;
    attn_tensor *bias = NULL, *q = NULL, *k = NULL;
    int idx = 0;
    for (unsigned bit = 1; bit <= ATTN_SYNTH_DOT; bit <<= 1) {
        if (!(m->cfg.components & bit)) continue;
        attn_tensor *a = mixed ? attn_slice(ctx, alpha, 0, idx, 1) : NULL;
        idx++;
        if (bit == ATTN_SYNTH_DOT) {
            q = heads(ctx, attn_linear(ctx, x, m->wq, m->bq), H);
            k = heads(ctx, attn_linear(ctx, x, m->wk, m->bk), H);
            if (a) q = attn_mul(ctx, q, a); /* alpha (q . k) / sqrt(D) */
            if (!q || !k) return NULL;
            continue;
        }
        attn_tensor *s = component_logits(ctx, m, bit, x);
        if (a) s = attn_mul(ctx, s, a);
        bias = bias ? attn_add(ctx, bias, s) : s;
        if (!bias) return NULL;
    }
    if (!q) { /* no dot product: logits are the bias alone */
        const int64_t zs[4] = {B, H, T, 1};
        q = k = attn_tensor_new(ctx, ATTN_F32, 4, zs);
        if (!q) return NULL;
    }
    attn_tensor *v = heads(ctx, attn_linear(ctx, x, m->wv, m->bv), H);
    if (!v) return NULL;
    attn_sdpa_opts so;
    memset(&so, 0, sizeof so);
    so.scale = (m->cfg.components & ATTN_SYNTH_DOT) ? (float)(1.0 / sqrt((double)D)) : 1.0f;
    so.causal = m->cfg.causal;
    so.bias = bias;
    so.dropout = m->cfg.dropout;
    const int fused = m->cfg.kernel == ATTN_KERNEL_FUSED ||
                      (m->cfg.kernel == ATTN_KERNEL_AUTO && T >= ATTN_FUSED_MIN_KEYS);
    attn_tensor *p = NULL;
    attn_tensor *o = fused ? attn_flash_sdpa(ctx, q, k, v, &so, weights ? &p : NULL)
                           : attn_sdpa(ctx, q, k, v, &so, weights ? &p : NULL);
    if (!o) return NULL;
    static const int perm[4] = {0, 2, 1, 3};
    const int64_t s3[3] = {B, T, E};
    attn_tensor *y = attn_reshape(ctx, attn_contiguous(ctx, attn_permute(ctx, o, perm)), 3, s3);
    y = attn_linear(ctx, y, m->wo, m->bo);
    if (y && weights) *weights = p;
    return y;
}

static const char *const synth_names[5] = {"dense", "random", "fdense", "frandom", "dot"};

int attn_synth_parse(const char *s, unsigned *out) {
    if (!s || !out) {
        attn__error(ATTN_ERR_INVALID_ARG, "attn_synth_parse: NULL argument");
        return -1;
    }
    unsigned c = 0;
    const char *p = s;
    while (*p) {
        const size_t len = strcspn(p, ",+");
        int found = -1;
        for (int i = 0; i < 5; i++)
            if (strlen(synth_names[i]) == len && strncmp(p, synth_names[i], len) == 0) found = i;
        if (found < 0) {
            attn__error(ATTN_ERR_INVALID_ARG,
                        "attn_synth_parse: '%.*s' in '%s' is not dense, random, fdense, frandom or "
                        "dot", (int)(len < 40 ? len : 40), p, s);
            return -1;
        }
        c |= 1u << found;
        p += len;
        if (*p) p++;
    }
    if (!c) {
        attn__error(ATTN_ERR_INVALID_ARG, "attn_synth_parse: '%s' names no component", s);
        return -1;
    }
    *out = c;
    return 0;
}

void attn_synth_name(unsigned components, char *buf, size_t n) {
    if (!buf || n == 0) return;
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < 5; i++)
        if (components & (1u << i)) {
            const int w = snprintf(buf + used, n - used, "%s%s", used ? "+" : "", synth_names[i]);
            if (w < 0 || (size_t)w >= n - used) return;
            used += (size_t)w;
        }
}
