/* rnn_attention.c: score functions, global and local (Luong) attention for
 * recurrent encoder-decoders (include/attn/rnn_attention.h), composed from the
 * graph ops; nothing here has its own backward.
 *
 * The graph of one call (shapes for q [B, T, Dq], memory [B, S, Dh]):
 *   scores e [B, T, S]:
 *     DOT, SCALED_DOT, GENERAL  bmm(q, keys^T)          keys from the memory
 *     COSINE                    bmm(q / |q|, keys^T) * beta
 *     ADDITIVE                  additive_score(W_q q, keys = W_h h, v): the fused
 *                               op (src/ops/additive_score.c), no [B,T,S,A] tensor
 *     LOCATION                  linear(q, W_a)[..., :S]
 *   mask m: the memory's padding mask [B, 1, S] (GLOBAL), or a [B, T, S]
 *     window-and-padding mask built from the positions (local aligns); both
 *     are constants (0 or -inf) handed to softmax as its additive mask, so
 *     masked positions get exactly e^-inf = 0.
 *   a = softmax(e + m); LOCAL_P: a *= exp(-2 (s - p)^2 / D^2), the Gaussian
 *     with sigma = D/2, through sub/mul/scale/exp so that the gradient
 *     reaches p = S_b sigmoid(linear(tanh(linear(q, W_p)), v_p)).
 *   c = bmm(a, h).
 * Everything but ADDITIVE_SCORE is an existing op. The window mask reads p's
 * forward values (floor(p + 1/2)); it is data, not a node, which is exactly
 * "the window's boundaries are constants".
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/internal.h"
#include "../ops/view_internal.h"
#include "attn/conv.h"
#include "attn/ops.h"
#include "attn/params.h"
#include "attn/rnn_attention.h"

#define ATT_COS_EPS 1e-8f /* inside cosine's square roots: a zero vector scores 0 */
#define ATT_DEFAULT_BETA 10.0f
#define ATT_DEFAULT_LOC_FILTERS 32 /* Tacotron 2's location features */
#define ATT_DEFAULT_LOC_KERNEL 31
#define ATT_DEFAULT_DV3_WINDOW 3 /* Deep Voice 3's inference window [p, p + 3) */

static int att_stepped(attn_score s) {
    return s == ATTN_SCORE_LOCATION_SENSITIVE || s == ATTN_SCORE_DV3;
}

const char *attn_score_name(attn_score score) {
    static const char *const names[ATTN_SCORE_COUNT] = {
        "dot", "scaled_dot", "general", "additive", "cosine", "location", "location-sensitive",
        "dv3"};
    return (unsigned)score < ATTN_SCORE_COUNT ? names[score] : "?";
}

const char *attn_align_name(attn_align align) {
    static const char *const names[ATTN_ALIGN_COUNT] = {"global", "local-m", "local-p"};
    return (unsigned)align < ATTN_ALIGN_COUNT ? names[align] : "?";
}

/* ---- configuration and parameters -------------------------------------------- */

static int att_same_dims(attn_score s) {
    return s == ATTN_SCORE_DOT || s == ATTN_SCORE_SCALED_DOT || s == ATTN_SCORE_COSINE;
}

/* Validates cfg for `fn` (message in attn_last_error) and writes the resolved
 * configuration (defaults filled in) to *res. */
static attn_status att_check_config(const attn_attention_config *cfg, const char *fn,
                                    attn_attention_config *res) {
    if (!cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: config is NULL", fn);
    if ((unsigned)cfg->score >= ATTN_SCORE_COUNT)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: score %d, expected 0 to %d (attn_score)", fn,
                           (int)cfg->score, ATTN_SCORE_COUNT - 1);
    if ((unsigned)cfg->align >= ATTN_ALIGN_COUNT)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: align %d, expected 0 to %d (attn_align)", fn,
                           (int)cfg->align, ATTN_ALIGN_COUNT - 1);
    if (cfg->query_size < 1 || cfg->memory_size < 1)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: query_size %lld and memory_size %lld must be >= 1", fn,
                           (long long)cfg->query_size, (long long)cfg->memory_size);
    if (att_same_dims(cfg->score) && cfg->query_size != cfg->memory_size)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: the %s score needs query_size == memory_size, got %lld and %lld",
                           fn, attn_score_name(cfg->score), (long long)cfg->query_size,
                           (long long)cfg->memory_size);
    if (cfg->attn_size < 0)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: attn_size %lld, expected >= 0 (0: query_size)", fn,
                           (long long)cfg->attn_size);
    if (cfg->score == ATTN_SCORE_LOCATION && cfg->max_source_len < 1)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: the location score needs max_source_len >= 1, got %lld", fn,
                           (long long)cfg->max_source_len);
    if (cfg->align != ATTN_ALIGN_GLOBAL && cfg->window < 1)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %s attention needs window D >= 1, got %d", fn,
                           attn_align_name(cfg->align), cfg->window);
    if (cfg->score == ATTN_SCORE_COSINE && !isfinite(cfg->beta))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: beta %g is not finite", fn,
                           (double)cfg->beta);
    if (att_stepped(cfg->score) && cfg->align != ATTN_ALIGN_GLOBAL)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: the %s score needs the global align, got %s",
                           fn, attn_score_name(cfg->score), attn_align_name(cfg->align));
    if (cfg->score == ATTN_SCORE_LOCATION_SENSITIVE &&
        (cfg->loc_filters < 0 || cfg->loc_filters > 4096 || cfg->loc_kernel < 0 ||
         cfg->loc_kernel > 4095 || (cfg->loc_kernel && cfg->loc_kernel % 2 == 0)))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: location-sensitive attention needs loc_filters in [0, 4096] and an "
                           "odd loc_kernel in [1, 4095] (0 selects the defaults %d and %d), got "
                           "%d and %d",
                           fn, ATT_DEFAULT_LOC_FILTERS, ATT_DEFAULT_LOC_KERNEL, cfg->loc_filters,
                           cfg->loc_kernel);
    if (cfg->score == ATTN_SCORE_DV3 &&
        (!(cfg->key_rate >= 0.0f) || !isfinite(cfg->key_rate) || !(cfg->dropout >= 0.0f) ||
         !(cfg->dropout < 1.0f) || cfg->window < 0))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: dv3 attention needs a finite key_rate >= 0, dropout in [0, 1) and "
                           "window >= 0, got %g, %g and %d",
                           fn, (double)cfg->key_rate, (double)cfg->dropout, cfg->window);
    *res = *cfg;
    if (res->attn_size == 0) res->attn_size = res->query_size;
    if (res->score == ATTN_SCORE_LOCATION_SENSITIVE) {
        if (res->loc_filters == 0) res->loc_filters = ATT_DEFAULT_LOC_FILTERS;
        if (res->loc_kernel == 0) res->loc_kernel = ATT_DEFAULT_LOC_KERNEL;
    }
    if (res->score == ATTN_SCORE_DV3) {
        if (res->key_rate == 0.0f) res->key_rate = 1.0f;
        if (res->window == 0) res->window = ATT_DEFAULT_DV3_WINDOW;
    }
    if (res->score == ATTN_SCORE_COSINE && res->beta == 0.0f) res->beta = ATT_DEFAULT_BETA;
    return ATTN_OK;
}

/* Adds prefix+name [d0, d1] (ndim 1 when d1 == 0); uniform init when rng. */
static attn_status att_param(attn_params *ps, const char *prefix, const char *name, int64_t d0,
                             int64_t d1, attn_rng *rng, attn_tensor **out) {
    char full[320];
    int len = snprintf(full, sizeof full, "%s%s", prefix, name);
    if (len < 0 || (size_t)len >= sizeof full)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_attention_init: prefix '%.40s...' makes a name longer than %zu "
                           "bytes",
                           prefix, sizeof full - 1);
    const int64_t shape[2] = {d0, d1};
    attn_status st = attn_params_add(ps, full, d1 ? 2 : 1, shape, out);
    if (st) return st; /* attn_params_add set the message */
    if (rng && d1) attn_init_uniform(*out, (float)(1.0 / sqrt((double)d1)), rng);
    return ATTN_OK;
}

/* Adds prefix+name [d0, d1, d2] (the convolution's filters), uniform in
 * [-1/sqrt(d1 d2), 1/sqrt(d1 d2)] (torch.nn.Conv1d's range) when rng. */
static attn_status att_param3(attn_params *ps, const char *prefix, const char *name, int64_t d0,
                              int64_t d1, int64_t d2, attn_rng *rng, attn_tensor **out) {
    char full[320];
    int len = snprintf(full, sizeof full, "%s%s", prefix, name);
    if (len < 0 || (size_t)len >= sizeof full)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_attention_init: prefix '%.40s...' makes a name longer than %zu "
                           "bytes",
                           prefix, sizeof full - 1);
    const int64_t shape[3] = {d0, d1, d2};
    attn_status st = attn_params_add(ps, full, 3, shape, out);
    if (st) return st;
    if (rng) attn_init_uniform(*out, (float)(1.0 / sqrt((double)(d1 * d2))), rng);
    return ATTN_OK;
}

/* A bias [d0] uniform in [-1/sqrt(in), 1/sqrt(in)] (torch.nn.Linear's) when rng. */
static attn_status att_bias(attn_params *ps, const char *prefix, const char *name, int64_t d0,
                            int64_t in, attn_rng *rng, attn_tensor **out) {
    attn_status st = att_param(ps, prefix, name, d0, 0, NULL, out);
    if (!st && rng) attn_init_uniform(*out, (float)(1.0 / sqrt((double)in)), rng);
    return st;
}

attn_status attn_attention_init(attn_attention *att, attn_params *ps, const char *prefix,
                                const attn_attention_config *cfg, attn_rng *rng) {
    if (!att || !ps)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_attention_init: module or params store is NULL");
    memset(att, 0, sizeof *att);
    attn_attention a;
    memset(&a, 0, sizeof a);
    attn_status st = att_check_config(cfg, "attn_attention_init", &a.cfg);
    if (st) return st;
    if (!prefix) prefix = "";
    const int64_t Dq = a.cfg.query_size, Dh = a.cfg.memory_size, A = a.cfg.attn_size;
    switch (a.cfg.score) {
    case ATTN_SCORE_GENERAL: st = att_param(ps, prefix, "W_a.weight", Dq, Dh, rng, &a.w_a); break;
    case ATTN_SCORE_LOCATION:
        st = att_param(ps, prefix, "W_a.weight", a.cfg.max_source_len, Dq, rng, &a.w_a);
        break;
    case ATTN_SCORE_ADDITIVE:
        st = att_param(ps, prefix, "W_q.weight", A, Dq, rng, &a.w_q);
        if (!st) st = att_param(ps, prefix, "W_h.weight", A, Dh, rng, &a.w_h);
        if (!st) st = att_param(ps, prefix, "v.weight", 1, A, rng, &a.v);
        break;
    case ATTN_SCORE_COSINE:
        st = att_param(ps, prefix, "beta", 1, 0, rng, &a.beta);
        if (!st) {
            attn_init_constant(a.beta, a.cfg.beta);
            a.beta->requires_grad = !a.cfg.beta_fixed;
        }
        break;
    case ATTN_SCORE_LOCATION_SENSITIVE: {
        const int64_t K = a.cfg.loc_filters, R = a.cfg.loc_kernel;
        st = att_param(ps, prefix, "W_q.weight", A, Dq, rng, &a.w_q);
        if (!st) st = att_param(ps, prefix, "W_h.weight", A, Dh, rng, &a.w_h);
        if (!st) st = att_param(ps, prefix, "v.weight", 1, A, rng, &a.v);
        if (!st) st = att_param3(ps, prefix, "F.weight", K, 2, R, rng, &a.f);
        if (!st) st = att_param(ps, prefix, "U.weight", A, K, rng, &a.u);
        if (!st) st = att_bias(ps, prefix, "U.bias", A, K, rng, &a.u_b);
        break;
    }
    case ATTN_SCORE_DV3:
        st = att_param(ps, prefix, "W_q.weight", A, Dq, rng, &a.w_q);
        if (!st) st = att_bias(ps, prefix, "W_q.bias", A, Dq, rng, &a.b_q);
        if (!st) st = att_param(ps, prefix, "W_k.weight", A, Dh, rng, &a.w_k);
        if (!st) st = att_bias(ps, prefix, "W_k.bias", A, Dh, rng, &a.b_k);
        if (!st) st = att_param(ps, prefix, "W_v.weight", A, Dh, rng, &a.w_v);
        if (!st) st = att_bias(ps, prefix, "W_v.bias", A, Dh, rng, &a.b_v);
        if (!st) st = att_param(ps, prefix, "W_o.weight", Dh, A, rng, &a.w_o);
        if (!st) st = att_bias(ps, prefix, "W_o.bias", Dh, A, rng, &a.b_o);
        if (!st && rng && Dq == Dh) { /* the paper's identical query and key projections */
            memcpy(a.w_k->data, a.w_q->data, sizeof(float) * (size_t)(A * Dq));
            memcpy(a.b_k->data, a.b_q->data, sizeof(float) * (size_t)A);
        }
        break;
    default: break;
    }
    if (!st && a.cfg.align == ATTN_ALIGN_LOCAL_P) {
        st = att_param(ps, prefix, "W_p.weight", A, Dq, rng, &a.w_p);
        if (!st) st = att_param(ps, prefix, "v_p.weight", 1, A, rng, &a.v_p);
    }
    if (st) return st;
    *att = a;
    return ATTN_OK;
}

/* Validates a module as attn_attention_init leaves it; 0 or -1 (recorded). */
static int att_check(attn_ctx *ctx, const attn_attention *att, const char *fn) {
    attn_attention_config res;
    if (!att) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: attention module is NULL", fn);
        return -1;
    }
    if (att_check_config(&att->cfg, fn, &res)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s", attn_last_error());
        return -1;
    }
    const attn_score s = att->cfg.score;
    int ok = 1;
    if (s == ATTN_SCORE_GENERAL || s == ATTN_SCORE_LOCATION) ok = att->w_a != NULL;
    if (s == ATTN_SCORE_ADDITIVE) ok = att->w_q && att->w_h && att->v;
    if (s == ATTN_SCORE_COSINE) ok = att->beta != NULL;
    if (s == ATTN_SCORE_LOCATION_SENSITIVE)
        ok = att->w_q && att->w_h && att->v && att->f && att->u && att->u_b;
    if (s == ATTN_SCORE_DV3)
        ok = att->w_q && att->b_q && att->w_k && att->b_k && att->w_v && att->b_v && att->w_o &&
             att->b_o;
    if (att->cfg.align == ATTN_ALIGN_LOCAL_P) ok = ok && att->w_p && att->v_p;
    if (!ok || att->cfg.attn_size < 1) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: the %s/%s module's parameters are missing (initialise it with "
                   "attn_attention_init)",
                   fn, attn_score_name(s), attn_align_name(att->cfg.align));
        return -1;
    }
    return 0;
}

/* ---- small graph helpers ----------------------------------------------------------- */

/* x / sqrt(sum(x^2, last axis) + eps) for x [..., D]: rsqrt as exp(-ln(.)/2),
 * ops that exist, on a [..., 1] tensor (cheap next to the products). */
static attn_tensor *att_normalise(attn_ctx *ctx, attn_tensor *x) {
    const float eps = ATT_COS_EPS;
    attn_tensor *e = attn_tensor_from(ctx, ATTN_F32, 0, NULL, &eps);
    if (!e) return NULL;
    attn_tensor *ss = attn_add(ctx, attn_sum(ctx, attn_mul(ctx, x, x), -1, 1), e);
    attn_tensor *rs = attn_exp(ctx, attn_scale(ctx, attn_log(ctx, ss), -0.5f));
    return attn_mul(ctx, x, rs);
}

static attn_tensor *att_reshape3(attn_ctx *ctx, attn_tensor *x, int64_t a, int64_t b, int64_t c) {
    const int64_t sh[3] = {a, b, c};
    return attn_reshape(ctx, x, 3, sh);
}

/* DV3's sinusoidal encodings of positions first .. first + n - 1 at rate r,
 * [n, D] (a constant): P(p; r)_{2j} = sin(r p / 10000^(2j/D)), P_{2j+1} =
 * cos of the same angle. */
static attn_tensor *att_positions(attn_ctx *ctx, int64_t first, int64_t n, int64_t D, double r,
                                  const char *fn) {
    const int64_t sh[2] = {n, D};
    attn_tensor *pe = attn__tensor(ctx, fn, ATTN_F32, 2, sh);
    if (!pe) return NULL;
    for (int64_t p = 0; p < n; p++)
        for (int64_t i = 0; i < D; i++) {
            const double ang =
                r * (double)(first + p) / pow(10000.0, (double)(2 * (i / 2)) / (double)D);
            attn_f32(pe)[p * D + i] = (float)(i % 2 == 0 ? sin(ang) : cos(ang));
        }
    return pe;
}

/* ---- the memory ------------------------------------------------------------------------ */

attn_status attn_attention_memory_init(attn_ctx *ctx, const attn_attention *att, attn_tensor *h,
                                       attn_tensor *lengths, attn_attention_memory *out) {
    static const char fn[] = "attn_attention_memory_init";
    if (!ctx) return attn__error(ATTN_ERR_INVALID_ARG, "%s: context is NULL", fn);
    if (!out) return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: out is NULL", fn);
    memset(out, 0, sizeof *out);
    if (ctx->status) return ctx->status; /* an earlier op failed: keep its message */
    if (attn__any_null(ctx, fn, 1, h) || att_check(ctx, att, fn)) return ctx->status;
    const attn_attention_config *cfg = &att->cfg;
    if (attn__check_dtype(ctx, fn, "h", h, ATTN_F32)) return ctx->status;
    if (h->ndim != 3 || h->shape[0] < 1 || h->shape[1] < 1 || h->shape[2] != cfg->memory_size)
        return attn__fail(ctx, ATTN_ERR_SHAPE,
                          "%s: h %s, expected [B, S, Dh] with B, S >= 1 and Dh = memory_size = "
                          "%lld",
                          fn, attn__shp(h), (long long)cfg->memory_size);
    const int64_t B = h->shape[0], S = h->shape[1], Dh = cfg->memory_size;
    if (cfg->score == ATTN_SCORE_LOCATION && S > cfg->max_source_len)
        return attn__fail(ctx, ATTN_ERR_SHAPE,
                          "%s: h %s has S = %lld source positions, more than the location "
                          "score's max_source_len %lld",
                          fn, attn__shp(h), (long long)S, (long long)cfg->max_source_len);
    int32_t *len = attn__alloc(ctx, sizeof(int32_t) * (size_t)B, fn);
    if (!len) return ctx->status;
    int padded = 0;
    if (lengths) {
        if (attn__check_dtype(ctx, fn, "lengths", lengths, ATTN_I32)) return ctx->status;
        if (lengths->ndim != 1 || lengths->shape[0] != B)
            return attn__fail(ctx, ATTN_ERR_SHAPE,
                              "%s: lengths %s, expected [B] = [%lld] (h is %s)", fn,
                              attn__shp(lengths), (long long)B, attn__shp(h));
        if (!(lengths = attn__contig(ctx, lengths))) return ctx->status;
        for (int64_t b = 0; b < B; b++) {
            const int32_t l = attn_i32(lengths)[b];
            if (l < 0 || l > S)
                return attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                                  "%s: lengths[%lld] = %d is outside [0, S] = [0, %lld]", fn,
                                  (long long)b, (int)l, (long long)S);
            len[b] = l;
            padded |= l < S;
        }
    } else {
        for (int64_t b = 0; b < B; b++) len[b] = (int32_t)S;
    }
    attn_tensor *mask = NULL;
    if (padded) {
        const int64_t msh[3] = {B, 1, S};
        if (!(mask = attn__tensor(ctx, fn, ATTN_F32, 3, msh))) return ctx->status;
        for (int64_t b = 0; b < B; b++)
            for (int64_t s = 0; s < S; s++)
                attn_f32(mask)[b * S + s] = s < len[b] ? 0.0f : -INFINITY;
    }
    attn_tensor *values = attn__contig(ctx, h), *keys = NULL;
    if (!values) return ctx->status;
    switch (cfg->score) {
    case ATTN_SCORE_DOT: keys = values; break;
    case ATTN_SCORE_SCALED_DOT:
        keys = attn_scale(ctx, values, (float)(1.0 / sqrt((double)Dh)));
        break;
    case ATTN_SCORE_GENERAL: keys = attn_linear(ctx, values, att->w_a, NULL); break;
    case ATTN_SCORE_COSINE: keys = att_normalise(ctx, values); break;
    case ATTN_SCORE_ADDITIVE:
    case ATTN_SCORE_LOCATION_SENSITIVE: keys = attn_linear(ctx, values, att->w_h, NULL); break;
    case ATTN_SCORE_DV3: {
        /* K = W_k (h + P(s; rk)) + b_k, V = W_v h + b_v, and sqrt(S_b) per sentence */
        attn_tensor *pe = att_positions(ctx, 0, S, Dh, (double)cfg->key_rate, fn);
        const int64_t ssh[3] = {B, 1, 1};
        attn_tensor *scale = attn__tensor(ctx, fn, ATTN_F32, 3, ssh);
        if (!pe || !scale) return ctx->status;
        for (int64_t b = 0; b < B; b++) attn_f32(scale)[b] = (float)sqrt((double)len[b]);
        keys = attn_linear(ctx, attn_add(ctx, values, pe), att->w_k, att->b_k);
        out->proj_values = attn_linear(ctx, values, att->w_v, att->b_v);
        out->value_scale = scale;
        if (!out->proj_values) return ctx->status;
        break;
    }
    default: break; /* LOCATION reads no keys */
    }
    if (cfg->score != ATTN_SCORE_LOCATION && !keys) return ctx->status;
    out->values = values;
    out->keys = keys;
    out->mask = mask;
    out->lengths = len;
    out->batch = B;
    out->source_len = S;
    return ATTN_OK;
}

/* 0 if mem looks like what attn_attention_memory_init made for att. */
static int att_check_memory(attn_ctx *ctx, const attn_attention *att,
                            const attn_attention_memory *mem, const char *fn) {
    if (!mem) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: memory is NULL", fn);
        return -1;
    }
    const attn_attention_config *cfg = &att->cfg;
    const attn_tensor *v = mem->values, *k = mem->keys;
    int64_t kdim = cfg->memory_size;
    if (cfg->score == ATTN_SCORE_GENERAL) kdim = cfg->query_size;
    if (cfg->score == ATTN_SCORE_ADDITIVE || att_stepped(cfg->score)) kdim = cfg->attn_size;
    int ok = v && mem->lengths && v->ndim == 3 && v->shape[0] == mem->batch &&
             v->shape[1] == mem->source_len && v->shape[2] == cfg->memory_size;
    if (ok && cfg->score == ATTN_SCORE_LOCATION)
        ok = k == NULL && mem->source_len <= cfg->max_source_len;
    else if (ok)
        ok = k && k->ndim == 3 && k->shape[0] == mem->batch && k->shape[1] == mem->source_len &&
             k->shape[2] == kdim;
    if (ok && cfg->score == ATTN_SCORE_DV3)
        ok = mem->proj_values && mem->value_scale && mem->proj_values->ndim == 3 &&
             mem->proj_values->shape[0] == mem->batch &&
             mem->proj_values->shape[1] == mem->source_len &&
             mem->proj_values->shape[2] == cfg->attn_size;
    if (!ok) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: the memory (values %s, keys %s) was not made by "
                   "attn_attention_memory_init for this %s module (Dh %lld)",
                   fn, v ? attn__shp(v) : "NULL", k ? attn__shp(k) : "NULL",
                   attn_score_name(cfg->score), (long long)cfg->memory_size);
        return -1;
    }
    return 0;
}

/* ---- scores ------------------------------------------------------------------------------ */

/* e [B, T, S] for q [B, T, Dq]. */
static attn_tensor *att_scores(attn_ctx *ctx, const attn_attention *att,
                               const attn_attention_memory *mem, attn_tensor *q) {
    const attn_attention_config *cfg = &att->cfg;
    const int64_t S = mem->source_len;
    switch (cfg->score) {
    case ATTN_SCORE_DOT:
    case ATTN_SCORE_SCALED_DOT:
    case ATTN_SCORE_GENERAL: return attn_bmm(ctx, q, mem->keys, 0, 1);
    case ATTN_SCORE_COSINE:
        return attn_mul(ctx, attn_bmm(ctx, att_normalise(ctx, q), mem->keys, 0, 1), att->beta);
    case ATTN_SCORE_ADDITIVE:
        return attn_additive_score(ctx, attn_linear(ctx, q, att->w_q, NULL), mem->keys, att->v);
    case ATTN_SCORE_LOCATION: {
        attn_tensor *e = attn_linear(ctx, q, att->w_a, NULL); /* [B, T, S_max] */
        return S < cfg->max_source_len ? attn_slice(ctx, e, 2, 0, S) : e;
    }
    default: return NULL; /* unreachable: att_check validated the enum */
    }
}

/* ---- local windows ------------------------------------------------------------------------- */

/* The [B, T, S] window-and-padding mask around positions p (B*T floats): 0 for
 * |s - c| <= D and s < S_b, -inf elsewhere, with c = p (LOCAL_M, integer) or
 * floor(p + 1/2) (LOCAL_P). */
static attn_tensor *att_window_mask(attn_ctx *ctx, const attn_attention_memory *mem, const float *p,
                                    int64_t T, int64_t D, const char *fn) {
    const int64_t B = mem->batch, S = mem->source_len, sh[3] = {B, T, S};
    attn_tensor *m = attn__tensor(ctx, fn, ATTN_F32, 3, sh);
    if (!m) return NULL;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            const int64_t c = (int64_t)floor((double)p[b * T + t] + 0.5);
            float *row = attn_f32(m) + (b * T + t) * S;
            for (int64_t s = 0; s < S; s++)
                row[s] = (s < mem->lengths[b] && s >= c - D && s <= c + D) ? 0.0f : -INFINITY;
        }
    return m;
}

/* LOCAL_P's p = S_b sigmoid(v_p^T tanh(W_p q)), [B, T, 1]. */
static attn_tensor *att_predict_position(attn_ctx *ctx, const attn_attention *att,
                                         const attn_attention_memory *mem, attn_tensor *q,
                                         const char *fn) {
    const int64_t B = mem->batch, sb_shape[3] = {B, 1, 1};
    attn_tensor *sb = attn__tensor(ctx, fn, ATTN_F32, 3, sb_shape);
    if (!sb) return NULL;
    for (int64_t b = 0; b < B; b++) attn_f32(sb)[b] = (float)mem->lengths[b];
    attn_tensor *z =
        attn_linear(ctx, attn_tanh(ctx, attn_linear(ctx, q, att->w_p, NULL)), att->v_p, NULL);
    return attn_mul(ctx, attn_sigmoid(ctx, z), sb);
}

/* ---- forward ----------------------------------------------------------------------------------
 */

attn_tensor *attn_attention_forward(attn_ctx *ctx, const attn_attention *att,
                                    const attn_attention_memory *mem, attn_tensor *q, int64_t step,
                                    attn_tensor **weights, attn_tensor **positions) {
    static const char fn[] = "attn_attention_forward";
    if (weights) *weights = NULL;
    if (positions) *positions = NULL;
    if (!ctx) return NULL;
    if (attn__any_null(ctx, fn, 1, q) || att_check(ctx, att, fn) ||
        att_check_memory(ctx, att, mem, fn))
        return NULL;
    const attn_attention_config *cfg = &att->cfg;
    const int64_t B = mem->batch, S = mem->source_len, Dh = cfg->memory_size, D = cfg->window;
    if (att_stepped(cfg->score)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: the %s score reads its own past: run it one step at a time with "
                   "attn_attention_step",
                   fn, attn_score_name(cfg->score));
        return NULL;
    }
    if (attn__check_dtype(ctx, fn, "q", q, ATTN_F32)) return NULL;
    if ((q->ndim != 2 && q->ndim != 3) || q->shape[0] != B ||
        q->shape[q->ndim - 1] != cfg->query_size || (q->ndim == 3 && q->shape[1] < 1)) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: q %s, expected [B, T, Dq] or [B, Dq] with B = %lld (the memory's batch), "
                   "T >= 1 and Dq = query_size = %lld",
                   fn, attn__shp(q), (long long)B, (long long)cfg->query_size);
        return NULL;
    }
    if (step < 0) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: step %lld, expected >= 0", fn, (long long)step);
        return NULL;
    }
    const int one_step = q->ndim == 2;
    const int64_t T = one_step ? 1 : q->shape[1];
    attn_tensor *q3 = one_step ? att_reshape3(ctx, q, B, 1, cfg->query_size) : q;
    attn_tensor *e = q3 ? att_scores(ctx, att, mem, q3) : NULL;
    if (!e) return NULL;

    attn_tensor *mask = mem->mask, *p = NULL, *a = NULL;
    if (cfg->align == ATTN_ALIGN_GLOBAL) {
        a = attn_softmax(ctx, e, mask);
    } else {
        const int64_t psh[2] = {B, T};
        if (cfg->align == ATTN_ALIGN_LOCAL_M) {
            /* p_t = min(step + i, S_b - 1), 0 for an empty sentence: constants */
            if (!(p = attn__tensor(ctx, fn, ATTN_F32, 2, psh))) return NULL;
            for (int64_t b = 0; b < B; b++)
                for (int64_t t = 0; t < T; t++) {
                    int64_t pt = step + t, last = (int64_t)mem->lengths[b] - 1;
                    if (pt > last) pt = last;
                    attn_f32(p)[b * T + t] = (float)(pt < 0 ? 0 : pt);
                }
        } else {
            attn_tensor *p3 = att_predict_position(ctx, att, mem, q3, fn); /* [B, T, 1] */
            p = p3 ? attn_reshape(ctx, p3, 2, psh) : NULL;
            if (!p) return NULL;
        }
        if (!(mask = att_window_mask(ctx, mem, attn_f32(p), T, D, fn))) return NULL;
        a = attn_softmax(ctx, e, mask);
        if (a && cfg->align == ATTN_ALIGN_LOCAL_P) {
            /* a *= exp(-(s - p)^2 / (2 sigma^2)), sigma = D/2: exponent -2 (s - p)^2 / D^2 */
            attn_tensor *pos = attn__tensor(ctx, fn, ATTN_F32, 1, &S);
            if (!pos) return NULL;
            for (int64_t s = 0; s < S; s++) attn_f32(pos)[s] = (float)s;
            attn_tensor *d = attn_sub(ctx, pos, att_reshape3(ctx, p, B, T, 1)); /* [B, T, S] */
            attn_tensor *g = attn_exp(
                ctx, attn_scale(ctx, attn_mul(ctx, d, d), (float)(-2.0 / ((double)D * (double)D))));
            a = attn_mul(ctx, a, g);
        }
    }
    attn_tensor *c = a ? attn_bmm(ctx, a, mem->values, 0, 0) : NULL; /* [B, T, Dh] */
    if (c && one_step) {
        c = attn_reshape(ctx, c, 2, (const int64_t[2]){B, Dh});
        a = c ? attn_reshape(ctx, a, 2, (const int64_t[2]){B, S}) : NULL;
        if (p) p = a ? attn_reshape(ctx, p, 1, &B) : NULL;
    }
    if (!c || !a || (cfg->align != ATTN_ALIGN_GLOBAL && !p)) return NULL;
    if (weights) *weights = a;
    if (positions) *positions = p;
    return c;
}

/* ---- the stepped scores: location-sensitive and Deep Voice 3 --------------------------------
 *
 * One decoder step, q [B, Dq]:
 *   LOCATION_SENSITIVE
 *     x = [prev; cum]                                   [B, 2, S] (zeros at the first step)
 *     f = conv1d(x, F, padding (R-1)/2)                 [B, K, S]
 *     keys_i = W_h h + (f^T U^T + b)                    [B, S, A]
 *     e = additive_score(W_q q, keys_i, v)              [B, 1, S]
 *     a = softmax(e + padding mask); c = a h
 *     state: prev <- a, cum <- cum + a (graph tensors: the gradient of a later
 *     step's loss reaches a_i through f, and through a_i every earlier step)
 *   DV3
 *     Q = W_q (q + P(step; 1)) + b_q                    [B, 1, A]
 *     e = Q K^T; a = softmax(e + mask) (mask: padding, and at inference the
 *     window [p_b, p_b + W)); c = W_o (sqrt(S_b) dropout(a) V) + b_o  [B, 1, Dh]
 * Both are existing graph ops; nothing here has its own backward. */

static attn_tensor *att_zeros_bs(attn_ctx *ctx, int64_t B, int64_t S) {
    const int64_t sh[2] = {B, S};
    return attn_tensor_new(ctx, ATTN_F32, 2, sh);
}

static int att_check_state_tensor(attn_ctx *ctx, const attn_tensor *x, const char *name,
                                  int64_t B, int64_t S, const char *fn) {
    if (!x) return 0;
    if (x->dtype != ATTN_F32 || x->ndim != 2 || x->shape[0] != B || x->shape[1] != S) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: state %s %s, expected f32 [B, S] = [%lld, %lld]", fn,
                   name, attn__shp(x), (long long)B, (long long)S);
        return -1;
    }
    return 0;
}

static attn_tensor *att_location_sensitive(attn_ctx *ctx, const attn_attention *att,
                                           const attn_attention_memory *mem, attn_tensor *q3,
                                           attn_attention_state *st, attn_tensor **a_out,
                                           const char *fn) {
    const int64_t B = mem->batch, S = mem->source_len;
    attn_tensor *prev = st->prev ? st->prev : att_zeros_bs(ctx, B, S);
    attn_tensor *cum = st->cum ? st->cum : att_zeros_bs(ctx, B, S);
    if (!prev || !cum) return NULL;
    attn_tensor *two[2] = {att_reshape3(ctx, prev, B, 1, S), att_reshape3(ctx, cum, B, 1, S)};
    if (!two[0] || !two[1]) return NULL;
    attn_tensor *x = attn_concat(ctx, two, 2, 1); /* [B, 2, S] */
    const attn_conv1d_opts co = {
        .stride = 1, .padding = (att->cfg.loc_kernel - 1) / 2, .dilation = 1, .groups = 1};
    attn_tensor *f = x ? attn_conv1d(ctx, x, att->f, NULL, &co) : NULL; /* [B, K, S] */
    attn_tensor *ft = f ? attn_contiguous(ctx, attn_transpose(ctx, f, 1, 2)) : NULL;
    attn_tensor *loc = ft ? attn_linear(ctx, ft, att->u, att->u_b) : NULL; /* [B, S, A] */
    attn_tensor *keys = loc ? attn_add(ctx, mem->keys, loc) : NULL;
    attn_tensor *e =
        keys ? attn_additive_score(ctx, attn_linear(ctx, q3, att->w_q, NULL), keys, att->v) : NULL;
    attn_tensor *a = e ? attn_softmax(ctx, e, mem->mask) : NULL; /* [B, 1, S] */
    attn_tensor *c = a ? attn_bmm(ctx, a, mem->values, 0, 0) : NULL;
    attn_tensor *a2 = c ? attn_reshape(ctx, a, 2, (const int64_t[2]){B, S}) : NULL;
    attn_tensor *cum2 = a2 ? attn_add(ctx, cum, a2) : NULL;
    if (!cum2) return NULL;
    st->prev = a2;
    st->cum = cum2;
    *a_out = a2;
    return c;
}

static attn_tensor *att_dv3(attn_ctx *ctx, const attn_attention *att,
                            const attn_attention_memory *mem, attn_tensor *q3, int64_t step,
                            const attn_attention_state *st, attn_tensor **a_out, const char *fn) {
    const attn_attention_config *cfg = &att->cfg;
    const int64_t B = mem->batch, S = mem->source_len;
    attn_tensor *mask = mem->mask;
    if (st && st->window_from) {
        const int64_t msh[3] = {B, 1, S}, W = cfg->window;
        if (!(mask = attn__tensor(ctx, fn, ATTN_F32, 3, msh))) return NULL;
        for (int64_t b = 0; b < B; b++) {
            const int64_t p = st->window_from[b];
            if (p < 0 || p > S) {
                attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                           "%s: window_from[%lld] = %lld is outside [0, S] = [0, %lld]", fn,
                           (long long)b, (long long)p, (long long)S);
                return NULL;
            }
            for (int64_t s = 0; s < S; s++)
                attn_f32(mask)[b * S + s] =
                    (s >= p && s < p + W && s < mem->lengths[b]) ? 0.0f : -INFINITY;
        }
    }
    attn_tensor *pe = att_positions(ctx, step, 1, cfg->query_size, 1.0, fn); /* [1, Dq] */
    attn_tensor *Q = pe ? attn_linear(ctx, attn_add(ctx, q3, pe), att->w_q, att->b_q) : NULL;
    attn_tensor *e = Q ? attn_bmm(ctx, Q, mem->keys, 0, 1) : NULL; /* [B, 1, S] */
    attn_tensor *a = e ? attn_softmax(ctx, e, mask) : NULL;
    attn_tensor *ad = a && cfg->dropout > 0.0f ? attn_dropout(ctx, a, cfg->dropout) : a;
    attn_tensor *ctxv = ad ? attn_bmm(ctx, ad, mem->proj_values, 0, 0) : NULL; /* [B, 1, A] */
    attn_tensor *c = ctxv ? attn_linear(ctx, attn_mul(ctx, ctxv, mem->value_scale), att->w_o,
                                        att->b_o)
                          : NULL; /* [B, 1, Dh] */
    attn_tensor *a2 = c ? attn_reshape(ctx, a, 2, (const int64_t[2]){B, S}) : NULL;
    if (!a2) return NULL;
    *a_out = a2;
    return c;
}

attn_tensor *attn_attention_step(attn_ctx *ctx, const attn_attention *att,
                                 const attn_attention_memory *mem, attn_tensor *q, int64_t step,
                                 attn_attention_state *st, attn_tensor **weights) {
    static const char fn[] = "attn_attention_step";
    if (weights) *weights = NULL;
    if (!ctx) return NULL;
    if (ctx->status) return NULL;
    if (attn__any_null(ctx, fn, 1, q) || att_check(ctx, att, fn)) return NULL;
    const attn_attention_config *cfg = &att->cfg;
    if (!att_stepped(cfg->score)) {
        if (q->ndim != 2) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: q %s, expected one step [B, Dq]", fn,
                       attn__shp(q));
            return NULL;
        }
        return attn_attention_forward(ctx, att, mem, q, step, weights, NULL);
    }
    if (att_check_memory(ctx, att, mem, fn)) return NULL;
    const int64_t B = mem->batch, S = mem->source_len, Dh = cfg->memory_size;
    if (attn__check_dtype(ctx, fn, "q", q, ATTN_F32)) return NULL;
    if (q->ndim != 2 || q->shape[0] != B || q->shape[1] != cfg->query_size) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: q %s, expected one step [B, Dq] with B = %lld (the memory's batch) and "
                   "Dq = query_size = %lld",
                   fn, attn__shp(q), (long long)B, (long long)cfg->query_size);
        return NULL;
    }
    if (step < 0) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: step %lld, expected >= 0", fn, (long long)step);
        return NULL;
    }
    if (!st && cfg->score == ATTN_SCORE_LOCATION_SENSITIVE) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: the location-sensitive score needs a state (attn_attention_state, "
                   "zeroed before the first step)",
                   fn);
        return NULL;
    }
    if (st && (att_check_state_tensor(ctx, st->prev, "prev", B, S, fn) ||
               att_check_state_tensor(ctx, st->cum, "cum", B, S, fn)))
        return NULL;
    attn_tensor *q3 = att_reshape3(ctx, q, B, 1, cfg->query_size), *a = NULL, *c = NULL;
    if (!q3) return NULL;
    if (cfg->score == ATTN_SCORE_LOCATION_SENSITIVE)
        c = att_location_sensitive(ctx, att, mem, q3, st, &a, fn);
    else
        c = att_dv3(ctx, att, mem, q3, step, st, &a, fn);
    c = c ? attn_reshape(ctx, c, 2, (const int64_t[2]){B, Dh}) : NULL;
    if (!c) return NULL;
    if (weights) *weights = a;
    return c;
}
