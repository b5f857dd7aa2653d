/* caption.c: the Show, Attend and Tell decoder (include/attn/caption.h,
 * docs/caption.md): soft, hard (REINFORCE) and no attention over the
 * annotation vectors of an image. Everything is composed from graph ops
 * (rnn_attention.h's additive score, the LSTM cell, linear, softmax, ...),
 * so backward is the tape's; the REINFORCE estimator enters as a surrogate
 * loss whose gradient is the estimator (docs/caption.md derives it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "model_meta.h"
#include "attn/caption.h"
#include "attn/checkpoint.h"
#include "attn/ops.h"
#include "attn/params.h"
#include "attn/rng.h"
#include "attn/rnn_attention.h"
#include "attn/rnn_cell.h"

#define LOG_EPS 1e-10f /* log(alpha + eps): a weight that underflowed to 0 gives a finite log */

void attn_caption_config_defaults(attn_caption_config *cfg) {
    if (!cfg) return;
    cfg->lambda = 0.001f;
    cfg->reinforce = 1.0f;
    cfg->entropy = 0.01f;
    cfg->baseline_decay = 0.9f;
    cfg->mix = 0.5f;
    cfg->samples = 1;
    cfg->reward_to_go = 0;
}

const char *attn_caption_mode_name(attn_caption_mode mode) {
    switch (mode) {
    case ATTN_CAPTION_SOFT: return "soft";
    case ATTN_CAPTION_HARD: return "hard";
    case ATTN_CAPTION_NONE: return "none";
    default: return "?";
    }
}

const char *attn_caption_decode_name(attn_caption_decode decode) {
    switch (decode) {
    case ATTN_CAPTION_DECODE_EXPECTED: return "expected";
    case ATTN_CAPTION_DECODE_ARGMAX: return "argmax";
    default: return "?";
    }
}

int attn_caption_decode_parse(const char *s, attn_caption_decode *out) {
    for (int i = 0; s && i < ATTN_CAPTION_DECODE_COUNT; i++)
        if (!strcmp(s, attn_caption_decode_name((attn_caption_decode)i))) {
            if (out) *out = (attn_caption_decode)i;
            return 0;
        }
    return -1;
}

int attn_caption_mode_parse(const char *s, attn_caption_mode *out) {
    for (int i = 0; s && i < ATTN_CAPTION_MODE_COUNT; i++)
        if (!strcmp(s, attn_caption_mode_name((attn_caption_mode)i))) {
            if (out) *out = (attn_caption_mode)i;
            return 0;
        }
    return -1;
}

static int finite_in(float x, float lo, float hi) { return isfinite(x) && x >= lo && x <= hi; }

static attn_status check_config(const char *fn, const attn_caption_config *c) {
    if ((int)c->mode < 0 || c->mode >= ATTN_CAPTION_MODE_COUNT)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: mode %d outside soft/hard/none", fn, (int)c->mode);
    const int64_t cap = 1 << 20;
    if (c->vocab < 4 || c->vocab > cap || c->annot_dim < 1 || c->annot_dim > cap || c->embed < 1 ||
        c->embed > cap || c->hidden < 1 || c->hidden > cap || c->attn_size < 0 || c->attn_size > cap)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: sizes vocab %lld (>= 4), annot_dim %lld, embed %lld, hidden %lld, attn_size %lld "
                           "(>= 0) must lie in [1, 2^20]",
                           fn, (long long)c->vocab, (long long)c->annot_dim, (long long)c->embed,
                           (long long)c->hidden, (long long)c->attn_size);
    if (!finite_in(c->lambda, 0.f, 1e6f) || !finite_in(c->reinforce, 0.f, 1e6f) ||
        !finite_in(c->entropy, 0.f, 1e6f) || !finite_in(c->baseline_decay, 0.f, 0.999999f) ||
        !finite_in(c->mix, 0.f, 1.f) || c->samples < 0 || c->samples > 64 || c->reward_to_go < 0 ||
        c->reward_to_go > 1)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: lambda %g, reinforce %g, entropy %g must be finite and >= 0, baseline_decay %g "
                           "in [0, 1), mix %g in [0, 1], samples %lld in [0, 64], reward_to_go %d 0 or 1",
                           fn, (double)c->lambda, (double)c->reinforce, (double)c->entropy,
                           (double)c->baseline_decay, (double)c->mix, (long long)c->samples, c->reward_to_go);
    return ATTN_OK;
}

static attn_status add(attn_params *ps, const char *name, int64_t d0, int64_t d1, float bound, attn_rng *rng,
                       attn_tensor **out) {
    const int64_t shape[2] = {d0, d1};
    attn_status st = attn_params_add(ps, name, d1 ? 2 : 1, shape, out);
    if (st == ATTN_OK && rng) attn_init_uniform(*out, bound, rng);
    return st;
}

attn_status attn_caption_init(attn_caption *m, attn_params *ps, const attn_caption_config *cfg, attn_rng *rng) {
    static const char fn[] = "attn_caption_init";
    if (m) memset(m, 0, sizeof *m);
    if (!m || !ps || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_status st = check_config(fn, cfg);
    if (st) return st;
    attn_caption_config c = *cfg;
    if (!c.attn_size) c.attn_size = c.hidden;
    const int64_t V = c.vocab, D = c.annot_dim, E = c.embed, H = c.hidden;
    const float bD = (float)(1.0 / sqrt((double)D)), bH = (float)(1.0 / sqrt((double)H)),
                bE = (float)(1.0 / sqrt((double)E));
    if ((st = add(ps, "embed.weight", V, E, 0.1f, rng, &m->embed)) ||
        (st = add(ps, "init_h.weight", H, D, bD, rng, &m->init_h_w)) ||
        (st = add(ps, "init_h.bias", H, 0, bD, rng, &m->init_h_b)) ||
        (st = add(ps, "init_c.weight", H, D, bD, rng, &m->init_c_w)) ||
        (st = add(ps, "init_c.bias", H, 0, bD, rng, &m->init_c_b)))
        goto fail;
    if (c.mode != ATTN_CAPTION_NONE) {
        attn_attention_config ac;
        memset(&ac, 0, sizeof ac);
        ac.score = ATTN_SCORE_ADDITIVE;
        ac.align = ATTN_ALIGN_GLOBAL;
        ac.query_size = H;
        ac.memory_size = D;
        ac.attn_size = c.attn_size;
        if ((st = attn_attention_init(&m->att, ps, "attn.", &ac, rng)) ||
            (st = add(ps, "f_beta.weight", 1, H, bH, rng, &m->beta_w)) ||
            (st = add(ps, "f_beta.bias", 1, 0, bH, rng, &m->beta_b)))
            goto fail;
    }
    if ((st = add(ps, "lstm.weight_ih", 4 * H, E + D, bH, rng, &m->w_ih)) ||
        (st = add(ps, "lstm.bias_ih", 4 * H, 0, bH, rng, &m->b_ih)) ||
        (st = add(ps, "lstm.weight_hh", 4 * H, H, bH, rng, &m->w_hh)) ||
        (st = add(ps, "lstm.bias_hh", 4 * H, 0, bH, rng, &m->b_hh)) ||
        (st = add(ps, "out_h.weight", E, H, bH, rng, &m->out_h_w)) ||
        (st = add(ps, "out_h.bias", E, 0, bH, rng, &m->out_h_b)) ||
        (st = add(ps, "out_z.weight", E, D, bD, rng, &m->out_z_w)) ||
        (st = add(ps, "out.weight", V, E, bE, rng, &m->out_w)) ||
        (st = add(ps, "out.bias", V, 0, bE, rng, &m->out_b)))
        goto fail;
    if (c.mode == ATTN_CAPTION_HARD) {
        if ((st = add(ps, "baseline", 1, 0, 0.f, NULL, &m->baseline))) goto fail;
        m->baseline->requires_grad = 0; /* a running average, not trained by gradients */
    }
    m->cfg = c;
    return ATTN_OK;
fail:
    memset(m, 0, sizeof *m);
    return st;
}

/* ---- metadata ------------------------------------------------------------------------ */

static const attn__meta_field meta_fields[ATTN_CAPTION_META] = {
    ATTN__META_FIELD("caption.mode", ATTN__META_INT, attn_caption_config, mode),
    ATTN__META_FIELD("caption.vocab", ATTN__META_I64, attn_caption_config, vocab),
    ATTN__META_FIELD("caption.annot_dim", ATTN__META_I64, attn_caption_config, annot_dim),
    ATTN__META_FIELD("caption.embed", ATTN__META_I64, attn_caption_config, embed),
    ATTN__META_FIELD("caption.hidden", ATTN__META_I64, attn_caption_config, hidden),
    ATTN__META_FIELD("caption.attn_size", ATTN__META_I64, attn_caption_config, attn_size),
    ATTN__META_FIELD("caption.lambda", ATTN__META_FLOAT, attn_caption_config, lambda),
    ATTN__META_FIELD("caption.reinforce", ATTN__META_FLOAT, attn_caption_config, reinforce),
    ATTN__META_FIELD("caption.entropy", ATTN__META_FLOAT, attn_caption_config, entropy),
    ATTN__META_FIELD("caption.baseline_decay", ATTN__META_FLOAT, attn_caption_config, baseline_decay),
    ATTN__META_FIELD("caption.mix", ATTN__META_FLOAT, attn_caption_config, mix),
    ATTN__META_FIELD_OPT("caption.samples", ATTN__META_I64, attn_caption_config, samples),
    ATTN__META_FIELD_OPT("caption.reward_to_go", ATTN__META_FLAG, attn_caption_config, reward_to_go),
};

void attn_caption_config_meta(const attn_caption_config *cfg, attn_kv *kv, char *buf) {
    attn__meta_write(meta_fields, ATTN_CAPTION_META, cfg, kv, buf);
}

attn_status attn_caption_config_load(const char *path, attn_caption_config *cfg) {
    static const char fn[] = "attn_caption_config_load";
    if (!path || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_caption_config c;
    memset(&c, 0, sizeof c);
    attn_status st = attn__meta_load(fn, "caption model", path, meta_fields, ATTN_CAPTION_META, &c);
    if (st) return st;
    if (check_config(fn, &c)) return attn__error(ATTN_ERR_FORMAT, "%s: %s: %s", fn, path, attn_last_error());
    *cfg = c;
    return ATTN_OK;
}

attn_status attn_caption_load(const char *path, attn_params *ps, attn_caption *m) {
    static const char fn[] = "attn_caption_load";
    if (m) memset(m, 0, sizeof *m);
    if (!path || !ps || !m) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_caption_config c;
    attn_status st = attn_caption_config_load(path, &c);
    if (st) return st;
    const int64_t H = c.hidden;
    const attn__meta_shape want[] = {{"embed.weight", c.vocab, c.embed},
                                     {"lstm.weight_ih", 4 * H, c.embed + c.annot_dim},
                                     {"out.weight", c.vocab, c.embed}};
    if ((st = attn__meta_check_shapes(fn, path, want, 3))) return st;
    if ((st = attn_caption_init(m, ps, &c, NULL))) return st;
    return attn_safetensors_load_params(path, ps, ATTN_ST_ALLOW_UNEXPECTED);
}

/* ---- the decoder ------------------------------------------------------------------------ */

typedef struct cap_run {
    const attn_caption *m;
    attn_attention_memory mem;
    attn_tensor *annot, *mean; /* [B, L, D], [B, D] */
    int64_t B, L, D;
} cap_run;

/* Checks annot and prepares the attention memory, the mean annotation and
 * the initial state h0, c0. */
static attn_status run_begin(attn_ctx *ctx, const char *fn, const attn_caption *m, attn_tensor *annot,
                             cap_run *r, attn_tensor **h0, attn_tensor **c0) {
    memset(r, 0, sizeof *r);
    if (attn_ctx_status(ctx)) return attn_ctx_status(ctx);
    if (annot->dtype != ATTN_F32) return attn__fail(ctx, ATTN_ERR_DTYPE, "%s: annot must be F32", fn);
    if (annot->ndim != 3 || annot->shape[2] != m->cfg.annot_dim || annot->shape[0] < 1 || annot->shape[1] < 1) {
        char s[96];
        return attn__fail(ctx, ATTN_ERR_SHAPE, "%s: annot %s, expected [B, L, %lld] (D = the model's annot_dim)", fn,
                          attn_shape_str(annot, s, sizeof s), (long long)m->cfg.annot_dim);
    }
    r->m = m;
    r->B = annot->shape[0];
    r->L = annot->shape[1];
    r->D = annot->shape[2];
    r->annot = attn_tensor_is_contiguous(annot) ? annot : attn_contiguous(ctx, annot);
    r->mean = attn_mean(ctx, r->annot, 1, 0);
    if (m->cfg.mode != ATTN_CAPTION_NONE) {
        attn_status st = attn_attention_memory_init(ctx, &m->att, r->annot, NULL, &r->mem);
        if (st) return st;
    }
    *h0 = attn_tanh(ctx, attn_linear(ctx, r->mean, m->init_h_w, m->init_h_b));
    *c0 = attn_tanh(ctx, attn_linear(ctx, r->mean, m->init_c_w, m->init_c_b));
    return attn_ctx_status(ctx);
}

/* The attention of one step from h [B, H]: *alpha [B, L], the soft context
 * sum_i alpha_i a_i [B, D] (returned) and the gate *beta [B, 1]. */
static attn_tensor *attend(attn_ctx *ctx, cap_run *r, attn_tensor *h, attn_tensor **alpha, attn_tensor **beta) {
    attn_tensor *soft = attn_attention_forward(ctx, &r->m->att, &r->mem, h, 0, alpha, NULL);
    *beta = attn_sigmoid(ctx, attn_linear(ctx, h, r->m->beta_w, r->m->beta_b));
    return soft;
}

/* LSTM step on [E y_{t-1}; z]. */
static attn_tensor *lstm_step(attn_ctx *ctx, const attn_caption *m, attn_tensor *emb, attn_tensor *z,
                              attn_tensor *h, attn_tensor *c, attn_tensor **c_out) {
    attn_tensor *xs[2] = {emb, z};
    attn_tensor *gx = attn_linear(ctx, attn_concat(ctx, xs, 2, 1), m->w_ih, m->b_ih);
    return attn_lstm_cell(ctx, gx, h, c, m->w_hh, m->b_hh, NULL, c_out);
}

/* The deep output L_o (E y + L_h h + L_z z) + b_o, any leading dims. */
static attn_tensor *deep_output(attn_ctx *ctx, const attn_caption *m, attn_tensor *emb, attn_tensor *h,
                                attn_tensor *z) {
    attn_tensor *o = attn_add(ctx, attn_add(ctx, emb, attn_linear(ctx, h, m->out_h_w, m->out_h_b)),
                              attn_linear(ctx, z, m->out_z_w, NULL));
    return attn_linear(ctx, o, m->out_w, m->out_b);
}

static attn_tensor *as_step(attn_ctx *ctx, attn_tensor *x) { /* [B, K] -> [B, 1, K] */
    if (!x) return NULL;
    const int64_t shape[3] = {x->shape[0], 1, x->shape[1]};
    return attn_reshape(ctx, x, 3, shape);
}

/* The first location of w[0..L) with the largest weight. */
static int32_t argmax_location(const float *w, int64_t L) {
    int64_t best = 0;
    for (int64_t i = 1; i < L; i++)
        if (w[i] > w[best]) best = i;
    return (int32_t)best;
}

/* Location drawn from the weights w[0..L) with u in [0, 1). */
static int32_t draw_location(const float *w, int64_t L, float u) {
    double total = 0.0;
    for (int64_t i = 0; i < L; i++) total += w[i];
    const double target = (double)u * total;
    double cum = 0.0;
    int64_t last = 0;
    for (int64_t i = 0; i < L; i++) {
        if (w[i] > 0.f) last = i;
        cum += w[i];
        if (cum > target && w[i] > 0.f) return (int32_t)i;
    }
    return (int32_t)last;
}

attn_status attn_caption_loss(attn_ctx *ctx, attn_caption *m, attn_tensor *annot, attn_tensor *tokens,
                              const attn_caption_draws *draws, attn_caption_loss_out *out) {
    static const char fn[] = "attn_caption_loss";
    if (out) memset(out, 0, sizeof *out);
    if (!ctx) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL context", fn);
    if (!m || !annot || !tokens || !out) return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (attn_ctx_status(ctx)) return attn_ctx_status(ctx);
    if (tokens->dtype != ATTN_I32) return attn__fail(ctx, ATTN_ERR_DTYPE, "%s: tokens must be I32", fn);
    if (tokens->ndim != 2 || tokens->shape[1] < 2 || annot->ndim != 3 || tokens->shape[0] != annot->shape[0]) {
        char s1[96], s2[96];
        return attn__fail(ctx, ATTN_ERR_SHAPE, "%s: tokens %s and annot %s: expected tokens [B, T + 1] (T >= 1) and annot [B, L, D]",
                          fn, attn_shape_str(tokens, s1, sizeof s1), attn_shape_str(annot, s2, sizeof s2));
    }
    const attn_caption_config *cf = &m->cfg;
    const int64_t B = tokens->shape[0], T = tokens->shape[1] - 1, V = cf->vocab;
    attn_tensor *tok = attn_tensor_is_contiguous(tokens) ? tokens : attn_contiguous(ctx, tokens);
    if (!tok) return attn_ctx_status(ctx);
    const int32_t *tk = attn_i32(tok);
    for (int64_t i = 0; i < B * (T + 1); i++)
        if (tk[i] < 0 || tk[i] >= V)
            return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: token %d at [%lld, %lld] outside [0, %lld)", fn, tk[i],
                              (long long)(i / (T + 1)), (long long)(i % (T + 1)), (long long)V);
    cap_run r;
    attn_tensor *h = NULL, *c = NULL;
    attn_status st = run_begin(ctx, fn, m, annot, &r, &h, &c);
    if (st) return st;
    const int64_t L = r.L, D = r.D;
    const int hard = cf->mode == ATTN_CAPTION_HARD, none = cf->mode == ATTN_CAPTION_NONE;
    if (hard && draws && ((!draws->samples && !draws->argmax) || !draws->expected))
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: draws need expected and samples (or argmax)", fn);
    const int use_argmax = hard && draws && draws->argmax;
    const int64_t K = hard && cf->samples > 1 ? cf->samples : 1; /* rows per caption (the last group may be short) */

    /* inputs, targets and the valid-token mask */
    int32_t *in = attn__alloc(ctx, (size_t)(B * T) * sizeof *in, fn);
    int32_t *tg = attn__alloc(ctx, (size_t)(B * T) * sizeof *tg, fn);
    if (!in || !tg) return attn_ctx_status(ctx);
    int64_t ntok = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            in[b * T + t] = tk[b * (T + 1) + t];
            tg[b * T + t] = tk[b * (T + 1) + t + 1];
            ntok += tg[b * T + t] != ATTN_CAPTION_PAD_ID;
        }
    /* HARD: which rows take the expected context, the drawn locations */
    uint8_t *expected = NULL;
    int32_t *samples = NULL;
    const uint64_t seed = attn_ctx_seed(ctx), off = attn_ctx_rng_offset(ctx);
    if (hard) {
        expected = attn__alloc(ctx, (size_t)B, fn);
        samples = attn__alloc(ctx, (size_t)(B * T) * sizeof *samples, fn);
        if (!expected || !samples) return attn_ctx_status(ctx);
        for (int64_t b = 0; b < B; b++)
            expected[b] = draws ? (draws->expected[b] != 0)
                                : (uint8_t)(attn_rng_uniform(seed, off, (uint64_t)(B * T + b)) < cf->mix);
        if (draws && !use_argmax)
            for (int64_t i = 0; i < B * T; i++) {
                if (draws->samples[i] < 0 || draws->samples[i] >= L)
                    return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: draw %d at %lld outside [0, %lld)", fn,
                                      draws->samples[i], (long long)i, (long long)L);
                samples[i] = draws->samples[i];
            }
    }
    attn_tensor **hs = attn__alloc(ctx, (size_t)T * 4 * sizeof *hs, fn);
    if (!hs) return attn_ctx_status(ctx);
    attn_tensor **zs = hs + T, **as = hs + 2 * T, **bs = hs + 3 * T;
    attn_tensor *keep = NULL;
    if (hard) {
        keep = attn_tensor_new(ctx, ATTN_F32, 2, (int64_t[]){B, 1});
        if (!keep) return attn_ctx_status(ctx);
        for (int64_t b = 0; b < B; b++) attn_f32(keep)[b] = expected[b] ? 1.f : 0.f;
    }
    for (int64_t t = 0; t < T; t++) {
        attn_tensor *ids = attn_tensor_new(ctx, ATTN_I32, 1, (int64_t[]){B});
        if (!ids) return attn_ctx_status(ctx);
        for (int64_t b = 0; b < B; b++) attn_i32(ids)[b] = in[b * T + t];
        attn_tensor *emb = attn_embedding(ctx, m->embed, ids);
        attn_tensor *z, *alpha = NULL, *beta = NULL;
        if (none) {
            z = r.mean;
        } else {
            attn_tensor *soft = attend(ctx, &r, h, &alpha, &beta);
            if (!soft) return attn_ctx_status(ctx);
            attn_tensor *g = soft;
            if (hard) {
                /* w = keep * alpha + (1 - keep) onehot(s): the sampled rows read a_{s_t} */
                attn_tensor *oh = attn_tensor_new(ctx, ATTN_F32, 2, (int64_t[]){B, L});
                if (!oh) return attn_ctx_status(ctx);
                for (int64_t b = 0; b < B; b++) {
                    if (expected[b]) continue;
                    if (use_argmax)
                        samples[b * T + t] = argmax_location(attn_f32(alpha) + b * L, L);
                    else if (!draws)
                        samples[b * T + t] =
                            draw_location(attn_f32(alpha) + b * L, L, attn_rng_uniform(seed, off, (uint64_t)(b * T + t)));
                    attn_f32(oh)[b * L + samples[b * T + t]] = 1.f;
                }
                attn_tensor *w = attn_add(ctx, attn_mul(ctx, alpha, keep), oh);
                g = attn_reshape(ctx, attn_bmm(ctx, as_step(ctx, w), r.annot, 0, 0), 2, (int64_t[]){B, D});
            }
            z = attn_mul(ctx, g, beta);
        }
        attn_tensor *c_next = NULL;
        h = lstm_step(ctx, m, emb, z, h, c, &c_next);
        c = c_next;
        hs[t] = as_step(ctx, h);
        zs[t] = as_step(ctx, z);
        as[t] = as_step(ctx, alpha);
        bs[t] = beta;
        if (attn_ctx_status(ctx)) return attn_ctx_status(ctx);
    }
    attn_tensor *Hs = attn_concat(ctx, hs, (int)T, 1), *Zs = attn_concat(ctx, zs, (int)T, 1);
    attn_tensor *tin = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T}, in);
    attn_tensor *ttg = attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){B * T}, tg);
    attn_tensor *logits = deep_output(ctx, m, attn_embedding(ctx, m->embed, tin), Hs, Zs);
    attn_tensor *ce = attn_cross_entropy(ctx, attn_reshape(ctx, logits, 2, (int64_t[]){B * T, V}), ttg,
                                         ATTN_CAPTION_PAD_ID, 0.f);
    if (!ce) return attn_ctx_status(ctx);
    attn_tensor *loss = ce;
    out->ce = attn_f32(ce)[0];
    out->tokens = ntok;
    out->logits = logits;
    if (!none) {
        attn_tensor *A = attn_concat(ctx, as, (int)T, 1);                   /* [B, T, L] */
        out->alphas = A;
        out->betas = attn_reshape(ctx, attn_concat(ctx, bs, (int)T, 1), 2, (int64_t[]){B, T});
        attn_tensor *vm = attn_tensor_new(ctx, ATTN_F32, 3, (int64_t[]){B, T, 1});
        attn_tensor *one = attn_tensor_new(ctx, ATTN_F32, 1, (int64_t[]){1});
        if (!vm || !one) return attn_ctx_status(ctx);
        for (int64_t i = 0; i < B * T; i++) attn_f32(vm)[i] = tg[i] != ATTN_CAPTION_PAD_ID ? 1.f : 0.f;
        attn_f32(one)[0] = 1.f;
        if (cf->lambda > 0.f) {
            /* lambda (1/B) sum_b sum_i (1 - sum_t alpha_bti)^2 over the valid steps */
            attn_tensor *S = attn_sum(ctx, attn_mul(ctx, A, vm), 1, 0); /* [B, L] */
            attn_tensor *d = attn_sub(ctx, one, S);
            attn_tensor *pen = attn_scale(ctx, attn_sum(ctx, attn_mul(ctx, d, d), ATTN_ALL_AXES, 0),
                                          cf->lambda / (float)B);
            if (!pen) return attn_ctx_status(ctx);
            out->penalty = attn_f32(pen)[0];
            loss = attn_add(ctx, loss, pen);
        }
        if (hard && ntok > 0) {
            /* R_b = (1/n_b) sum_t log p(y_bt | s_b), the mean over the row's n_b
             * target tokens: a constant of the surrogate (docs/caption.md: the
             * per-word mean keeps the captions' lengths out of the reward) */
            const float *lg = attn_f32(logits);
            double *R = attn__alloc(ctx, (size_t)B * sizeof *R, fn);
            double *G = attn__alloc(ctx, (size_t)(B * T) * sizeof *G, fn);  /* the return of step t */
            double *bl = attn__alloc(ctx, (size_t)(B * T) * sizeof *bl, fn); /* its baseline */
            if (!R || !G || !bl) return attn_ctx_status(ctx);
            double rsum = 0.0;
            int64_t nsamp = 0;
            for (int64_t b = 0; b < B; b++) {
                double rb = 0.0;
                int64_t nb = 0;
                for (int64_t t = 0; t < T; t++) {
                    const int32_t y = tg[b * T + t];
                    G[b * T + t] = 0.0;
                    if (y == ATTN_CAPTION_PAD_ID) continue;
                    nb++;
                    const float *row = lg + (b * T + t) * V;
                    double mx = row[0], s = 0.0;
                    for (int64_t v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
                    for (int64_t v = 0; v < V; v++) s += exp((double)row[v] - mx);
                    G[b * T + t] = (double)row[y] - mx - log(s); /* log p(y_bt), for now */
                    rb += G[b * T + t];
                }
                R[b] = nb ? rb / (double)nb : 0.0;
                /* G_bt: R_b at every step, or with reward_to_go (1/n_b) sum_{t' >= t} log p(y_bt');
                 * bl_bt: the moving average b, scaled to the share of the row's tokens from t on */
                double tail = 0.0;
                int64_t left = 0;
                for (int64_t t = T - 1; t >= 0; t--) {
                    if (tg[b * T + t] != ATTN_CAPTION_PAD_ID) {
                        tail += G[b * T + t];
                        left++;
                    }
                    G[b * T + t] = cf->reward_to_go ? (nb ? tail / (double)nb : 0.0) : R[b];
                    bl[b * T + t] = cf->reward_to_go && nb ? (double)left / (double)nb : 1.0; /* times b below */
                }
                if (!expected[b]) {
                    rsum += R[b]; /* the baseline tracks the reward itself (per word), not the sum */
                    nsamp++;
                }
            }
            double base = attn_f32(m->baseline)[0];
            if (!draws && base == 0.0 && nsamp) base = rsum / (double)nsamp; /* first batch: start at its mean */
            out->baseline = base;
            out->reward = nsamp ? rsum / (double)nsamp : 0.0;
            /* the baseline of each sampled row and step: leave-one-out over its group (the mean
             * return of the group's other sampled rows at that step) when K > 1 and the group has
             * another sampled row, else the moving average */
            for (int64_t g0 = 0; g0 < B; g0 += K) {
                const int64_t g1 = g0 + K < B ? g0 + K : B;
                int64_t gn = 0;
                for (int64_t b = g0; b < g1; b++) gn += !expected[b];
                for (int64_t t = 0; t < T; t++) {
                    double gs = 0.0;
                    for (int64_t b = g0; b < g1; b++)
                        if (!expected[b]) gs += G[b * T + t];
                    for (int64_t b = g0; b < g1; b++)
                        bl[b * T + t] = gn > 1 && !expected[b] ? (gs - G[b * T + t]) / (double)(gn - 1)
                                                               : base * bl[b * T + t];
                }
            }
            /* surrogate: Kr[b,t,s_bt] = -lambda_r (G_bt - bl_bt) / N on the sampled rows' valid steps */
            attn_tensor *Kr = attn_tensor_new(ctx, ATTN_F32, 3, (int64_t[]){B, T, L});
            attn_tensor *Ke = attn_tensor_new(ctx, ATTN_F32, 3, (int64_t[]){B, T, 1});
            attn_tensor *eps = attn_tensor_new(ctx, ATTN_F32, 1, (int64_t[]){1});
            if (!Kr || !Ke || !eps) return attn_ctx_status(ctx);
            attn_f32(eps)[0] = LOG_EPS;
            for (int64_t b = 0; b < B; b++)
                for (int64_t t = 0; t < T; t++) {
                    const int valid = tg[b * T + t] != ATTN_CAPTION_PAD_ID;
                    attn_f32(Ke)[b * T + t] = valid ? cf->entropy / (float)ntok : 0.f;
                    if (valid && !expected[b])
                        attn_f32(Kr)[(b * T + t) * L + samples[b * T + t]] =
                            (float)(-(double)cf->reinforce * (G[b * T + t] - bl[b * T + t]) / (double)ntok);
                }
            attn_tensor *logA = attn_log(ctx, attn_add(ctx, A, eps));
            attn_tensor *rf = attn_sum(ctx, attn_mul(ctx, logA, Kr), ATTN_ALL_AXES, 0);
            /* -lambda_e / N sum H(alpha) = lambda_e / N sum alpha log alpha */
            attn_tensor *ent = attn_sum(ctx, attn_mul(ctx, attn_mul(ctx, A, logA), Ke), ATTN_ALL_AXES, 0);
            loss = attn_add(ctx, attn_add(ctx, loss, rf), ent);
            if (!draws && attn_ctx_grad_enabled(ctx) && nsamp) {
                const double d = cf->baseline_decay;
                attn_f32(m->baseline)[0] = (float)(d * base + (1.0 - d) * (rsum / (double)nsamp));
            }
        }
    }
    if (!loss) return attn_ctx_status(ctx);
    out->loss = loss;
    return ATTN_OK;
}

attn_status attn_caption_greedy(attn_ctx *ctx, const attn_caption *m, attn_tensor *annot, int64_t max_len,
                                int32_t *ids, float *alphas, float *betas) {
    return attn_caption_greedy_decode(ctx, m, annot, max_len, ATTN_CAPTION_DECODE_EXPECTED, ids, alphas, betas);
}

attn_status attn_caption_greedy_decode(attn_ctx *ctx, const attn_caption *m, attn_tensor *annot, int64_t max_len,
                                       attn_caption_decode decode, int32_t *ids, float *alphas, float *betas) {
    static const char fn[] = "attn_caption_greedy";
    if (!ctx) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL context", fn);
    if (!m || !annot || !ids) return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if ((int)decode < 0 || decode >= ATTN_CAPTION_DECODE_COUNT)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: decode %d outside expected/argmax", fn, (int)decode);
    const int argmax = m->cfg.mode == ATTN_CAPTION_HARD && decode == ATTN_CAPTION_DECODE_ARGMAX;
    if (max_len < 1 || max_len > 256)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: max_len %lld outside [1, 256]", fn, (long long)max_len);
    const int grad = attn_ctx_grad_enabled(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    cap_run r;
    attn_tensor *h = NULL, *c = NULL;
    attn_status st = run_begin(ctx, fn, m, annot, &r, &h, &c);
    const int64_t B = r.B, L = r.L, V = m->cfg.vocab;
    uint8_t *done = st ? NULL : attn__alloc_zero(ctx, (size_t)B, fn);
    attn_tensor *ids_t = done ? attn_tensor_new(ctx, ATTN_I32, 1, (int64_t[]){B}) : NULL;
    if (!ids_t) {
        attn_ctx_set_grad_enabled(ctx, grad);
        return attn_ctx_status(ctx);
    }
    for (int64_t b = 0; b < B; b++) attn_i32(ids_t)[b] = ATTN_CAPTION_BOS_ID;
    for (int64_t i = 0; i < B * max_len; i++) ids[i] = ATTN_CAPTION_PAD_ID;
    if (alphas) memset(alphas, 0, (size_t)(B * max_len * L) * sizeof *alphas);
    if (betas) memset(betas, 0, (size_t)(B * max_len) * sizeof *betas);
    for (int64_t t = 0; t < max_len; t++) {
        attn_tensor *emb = attn_embedding(ctx, m->embed, ids_t);
        attn_tensor *z, *alpha = NULL, *beta = NULL;
        if (m->cfg.mode == ATTN_CAPTION_NONE) z = r.mean;
        else {
            attn_tensor *g = attend(ctx, &r, h, &alpha, &beta); /* sets beta: not in one expression */
            if (g && argmax) { /* HARD, argmax: beta a_l at the most probable location */
                attn_tensor *oh = attn_tensor_new(ctx, ATTN_F32, 2, (int64_t[]){B, L});
                if (!oh) break;
                for (int64_t b = 0; b < B; b++) attn_f32(oh)[b * L + argmax_location(attn_f32(alpha) + b * L, L)] = 1.f;
                g = attn_reshape(ctx, attn_bmm(ctx, as_step(ctx, oh), r.annot, 0, 0), 2, (int64_t[]){B, r.D});
            }
            z = attn_mul(ctx, g, beta);
        }
        attn_tensor *c_next = NULL;
        h = lstm_step(ctx, m, emb, z, h, c, &c_next);
        c = c_next;
        attn_tensor *logits = deep_output(ctx, m, emb, h, z);
        if (!logits) break;
        int all_done = 1;
        attn_tensor *next = attn_tensor_new(ctx, ATTN_I32, 1, (int64_t[]){B});
        if (!next) break;
        for (int64_t b = 0; b < B; b++) {
            int32_t y = ATTN_CAPTION_PAD_ID;
            if (!done[b]) {
                const float *row = attn_f32(logits) + b * V;
                int32_t best = 0;
                for (int64_t v = 1; v < V; v++)
                    if (row[v] > row[best]) best = (int32_t)v;
                y = best;
                ids[b * max_len + t] = y;
                for (int64_t i = 0; alphas && i < L; i++)
                    alphas[(b * max_len + t) * L + i] = alpha ? attn_f32(alpha)[b * L + i] : 1.f / (float)L;
                if (betas) betas[b * max_len + t] = beta ? attn_f32(beta)[b] : 1.f;
                if (y == ATTN_CAPTION_EOS_ID || y == ATTN_CAPTION_PAD_ID) done[b] = 1;
            }
            all_done &= done[b];
            attn_i32(next)[b] = y;
        }
        ids_t = next;
        if (all_done) break;
    }
    attn_ctx_set_grad_enabled(ctx, grad);
    return attn_ctx_status(ctx);
}
