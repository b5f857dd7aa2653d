/* reformer_lm.c: the Reformer language model (include/attn/reformer_lm.h):
 * LSH attention F and chunked feed-forward G in reversible layers, a
 * chunked output layer and loss. docs/reformer.md section 4 has the math.
 *
 * The training step records only the embedding on the tape. The stack runs
 * through attn_rev_forward (nothing recorded, F keeps its buckets), the
 * output layer and loss chunk by chunk, each chunk on an empty tape of its
 * own with (Y1, Y2)'s rows as leaves and backpropagated at once (the arena
 * rewound after it), then attn_rev_backward recomputes the layers from the
 * top (F reuses the kept buckets) and hands back dX1 + dX2, which the
 * embedding's backward takes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "model_meta.h"
#include "attn/checkpoint.h"
#include "attn/ops.h"
#include "attn/params.h"
#include "attn/positions.h"
#include "attn/reformer.h"
#include "attn/reformer_lm.h"
#include "attn/reversible.h"

enum { W_LN1_W, W_LN1_B, W_QK, W_V, W_O, W_LN2_W, W_LN2_B, W_1, W_B1, W_2, W_B2 };

static const char *const w_names[ATTN_REFORMER_LM_W] = {
    "attn_norm.weight", "attn_norm.bias", "qk.weight",      "v.weight",       "out.weight",  "ffn_norm.weight",
    "ffn_norm.bias",    "linear1.weight", "linear1.bias",   "linear2.weight", "linear2.bias"};

#define LN_EPS 1e-5f

static attn_status check_config(const attn_reformer_lm_config *c) {
    static const char fn[] = "attn_reformer_lm_new";
    if (c->vocab < 2 || c->vocab > INT32_MAX || c->ctx_len < 1 || c->ctx_len > (1 << 24) || c->d_model < 1 ||
        c->d_ff < 0 || c->n_layers < 1 || c->n_layers > 1024 || c->n_heads < 1 || c->n_hashes < 1 ||
        c->n_hashes > 64 || c->n_buckets < 2 || c->n_buckets > (1 << 20) || c->n_buckets % 2 || c->chunk_len < 1 ||
        c->ff_chunk < 1 || c->out_chunk < 1)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: vocab %lld (2 .. 2^31), ctx_len %lld (1 .. 2^24), d_model %lld, d_ff %lld, "
                           "layers %d (1 .. 1024), heads %d, hashes %d (1 .. 64), buckets %d (even, 2 .. 2^20), "
                           "chunk %lld, ff_chunk %lld, out_chunk %lld (>= 1)",
                           fn, (long long)c->vocab, (long long)c->ctx_len, (long long)c->d_model,
                           (long long)c->d_ff, c->n_layers, c->n_heads, c->n_hashes, c->n_buckets,
                           (long long)c->chunk_len, (long long)c->ff_chunk, (long long)c->out_chunk);
    if (c->d_model % c->n_heads)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: d_model %lld is not a multiple of %d heads", fn,
                           (long long)c->d_model, c->n_heads);
    if (c->sinusoidal != 0 && c->sinusoidal != 1)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: sinusoidal %d, expected 0 or 1", fn, c->sinusoidal);
    if (c->rope < 0 || c->rope > 2)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: rope %d, expected 0 (none), 1 (rotary only) or 2 (rotary and "
                           "the absolute table)", fn, c->rope);
    if (c->rope == 1 && c->sinusoidal)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: rope 1 (no absolute positions) excludes sinusoidal ones "
                           "(rope 2 adds them)", fn);
    if (c->rope_dims < 0 || c->rope_dims % 2 || c->rope_dims > c->d_model / c->n_heads)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: rope_dims %lld, expected even in [0, head size %lld]", fn,
                           (long long)c->rope_dims, (long long)(c->d_model / c->n_heads));
    if (c->rope && !c->rope_dims && (c->d_model / c->n_heads) % 2)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: rope needs an even head size, not %lld (d_model %lld, %d heads)",
                           fn, (long long)(c->d_model / c->n_heads), (long long)c->d_model, c->n_heads);
    if (!(c->rope_theta >= 0.0f) || isinf(c->rope_theta))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: rope_theta %g, expected finite and >= 0 (0: 10000)", fn,
                           (double)c->rope_theta);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: dropout %g outside [0, 1)", fn, (double)c->dropout);
    return ATTN_OK;
}

void attn_reformer_lm_free(attn_reformer_lm *m) {
    if (!m) return;
    attn_rev_stack_free(&m->stack);
    free(m->w);
    free(m->buckets);
    free(m);
}

static attn_tensor *f_attention(attn_ctx *ctx, void *user, int l, attn_tensor *x);
static attn_tensor *g_feedforward(attn_ctx *ctx, void *user, int l, attn_tensor *x);

attn_status attn_reformer_lm_new(attn_reformer_lm **out, attn_params *ps, const attn_reformer_lm_config *cfg,
                                 attn_rng *rng) {
    if (out) *out = NULL;
    if (!out || !ps || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "attn_reformer_lm_new: NULL argument");
    attn_reformer_lm_config c = *cfg;
    if (c.d_ff == 0) c.d_ff = 4 * c.d_model;
    attn_status st = check_config(&c);
    if (st != ATTN_OK) return st;
    attn_reformer_lm *m = calloc(1, sizeof *m);
    if (m) m->w = calloc((size_t)c.n_layers * ATTN_REFORMER_LM_W, sizeof *m->w);
    if (!m || !m->w) {
        attn_reformer_lm_free(m);
        return attn__error(ATTN_ERR_OOM, "attn_reformer_lm_new: out of memory");
    }
    m->cfg = c;
    m->params = ps;
    st = attn_rev_stack_init(&m->stack, c.n_layers, f_attention, g_feedforward, m);
    const int64_t V = c.vocab, E = c.d_model, F = c.d_ff;
    if (st == ATTN_OK) st = attn_params_add(ps, "tok_emb.weight", 2, (int64_t[]){V, E}, &m->tok_emb);
    if (st == ATTN_OK && !c.sinusoidal && c.rope != 1)
        st = attn_params_add(ps, "pos_emb.weight", 2, (int64_t[]){c.ctx_len, E}, &m->pos_emb);
    for (int l = 0; l < c.n_layers && st == ATTN_OK; l++) {
        const int64_t shapes[ATTN_REFORMER_LM_W][2] = {{E, 0}, {E, 0}, {E, E}, {E, E}, {E, E}, {E, 0},
                                                       {E, 0}, {F, E}, {F, 0}, {E, F}, {E, 0}};
        for (int j = 0; j < ATTN_REFORMER_LM_W && st == ATTN_OK; j++) {
            char name[64];
            snprintf(name, sizeof name, "layers.%d.%s", l, w_names[j]);
            st = attn_params_add(ps, name, shapes[j][1] ? 2 : 1, shapes[j], &m->w[l * ATTN_REFORMER_LM_W + j]);
        }
    }
    if (st == ATTN_OK) st = attn_params_add(ps, "norm_f.weight", 1, (int64_t[]){2 * E}, &m->norm_w);
    if (st == ATTN_OK) st = attn_params_add(ps, "norm_f.bias", 1, (int64_t[]){2 * E}, &m->norm_b);
    if (st == ATTN_OK) st = attn_params_add(ps, "head.weight", 2, (int64_t[]){V, 2 * E}, &m->head_w);
    if (st == ATTN_OK) st = attn_params_add(ps, "head.bias", 1, (int64_t[]){V}, &m->head_b);
    if (st != ATTN_OK) {
        attn_reformer_lm_free(m);
        return st;
    }
    attn_init_constant(m->norm_w, 1.0f);
    attn_init_constant(m->norm_b, 0.0f);
    attn_init_constant(m->head_b, 0.0f);
    for (int l = 0; l < c.n_layers; l++) {
        attn_tensor **w = m->w + l * ATTN_REFORMER_LM_W;
        attn_init_constant(w[W_LN1_W], 1.0f);
        attn_init_constant(w[W_LN2_W], 1.0f);
        attn_init_constant(w[W_LN1_B], 0.0f);
        attn_init_constant(w[W_LN2_B], 0.0f);
        attn_init_constant(w[W_B1], 0.0f);
        attn_init_constant(w[W_B2], 0.0f);
    }
    if (rng) {
        const float std = 0.02f, std_res = 0.02f / sqrtf(2.0f * (float)c.n_layers);
        attn_init_normal(m->tok_emb, std, rng);
        if (m->pos_emb) attn_init_normal(m->pos_emb, std, rng);
        for (int l = 0; l < c.n_layers; l++) {
            attn_tensor **w = m->w + l * ATTN_REFORMER_LM_W;
            attn_init_normal(w[W_QK], std, rng);
            attn_init_normal(w[W_V], std, rng);
            attn_init_normal(w[W_O], std_res, rng);
            attn_init_normal(w[W_1], std, rng);
            attn_init_normal(w[W_2], std_res, rng);
        }
        attn_init_normal(m->head_w, std, rng);
    }
    *out = m;
    return ATTN_OK;
}

/* ---- the layers ------------------------------------------------------------------------- */

/* x [B, T, E] -> [B, H, T, D] through the no-bias projection w [E, E]. */
static attn_tensor *split_heads(attn_ctx *ctx, const attn_reformer_lm *m, attn_tensor *x, attn_tensor *w) {
    const int64_t B = x->shape[0], T = x->shape[1], H = m->cfg.n_heads, D = m->cfg.d_model / H;
    attn_tensor *y = attn_reshape(ctx, attn_linear(ctx, x, w, NULL), 4, (int64_t[]){B, T, H, D});
    return attn_contiguous(ctx, attn_permute(ctx, y, (int[]){0, 2, 1, 3}));
}

static uint64_t layer_seed(uint64_t seed, int l) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (uint64_t)(l + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* F_l: dropout(out(LSH(LN(x) W_qk, LN(x) W_v))). In a training step the
 * forward (gradients off) keeps its buckets and the recompute (gradients
 * on) reuses them, so a rounding difference of the reconstructed input can
 * never move a position to another bucket. */
static attn_tensor *f_attention(attn_ctx *ctx, void *user, int l, attn_tensor *x) {
    attn_reformer_lm *m = user;
    attn_tensor **w = m->w + l * ATTN_REFORMER_LM_W;
    const int64_t B = x->shape[0], T = x->shape[1], E = m->cfg.d_model;
    attn_tensor *h = attn_layernorm(ctx, x, w[W_LN1_W], w[W_LN1_B], LN_EPS);
    attn_tensor *qk = split_heads(ctx, m, h, w[W_QK]), *v = split_heads(ctx, m, h, w[W_V]);
    if (m->cfg.rope) {
        /* rotated before the op: it hashes, normalises and multiplies the rotated vectors */
        attn_rope_opts ro;
        memset(&ro, 0, sizeof ro);
        ro.theta = m->cfg.rope_theta;
        ro.rotary_dim = m->cfg.rope_dims;
        qk = attn_rope(ctx, qk, &ro);
    }
    attn_lsh_opts o;
    memset(&o, 0, sizeof o);
    o.n_hashes = m->run_hashes;
    o.n_buckets = m->cfg.n_buckets;
    o.chunk_len = m->cfg.chunk_len;
    o.causal = 1;
    o.seed = layer_seed(m->run_seed, l);
    if (m->bucket_mode && m->buckets) {
        int32_t *b = m->buckets + (size_t)l * (size_t)(m->run_B * m->cfg.n_heads * m->run_hashes * m->run_T);
        if (m->bucket_mode == 1 && !attn_ctx_grad_enabled(ctx)) o.buckets_out = b;
        else o.buckets_in = b;
    }
    attn_tensor *a = attn_lsh_attention(ctx, qk, v, &o);
    a = attn_reshape(ctx, attn_contiguous(ctx, attn_permute(ctx, a, (int[]){0, 2, 1, 3})), 3,
                     (int64_t[]){B, T, E});
    return attn_dropout(ctx, attn_linear(ctx, a, w[W_O], NULL), m->cfg.dropout);
}

static attn_tensor *ff_chunk_fn(attn_ctx *ctx, void *user, int l, attn_tensor *y) {
    attn_reformer_lm *m = user;
    attn_tensor **w = m->w + l * ATTN_REFORMER_LM_W;
    attn_tensor *h = attn_layernorm(ctx, y, w[W_LN2_W], w[W_LN2_B], LN_EPS);
    h = attn_gelu(ctx, attn_linear(ctx, h, w[W_1], w[W_B1]), 0);
    return attn_dropout(ctx, attn_linear(ctx, h, w[W_2], w[W_B2]), m->cfg.dropout);
}

/* G_l: the feed-forward on chunks of ff_chunk positions. */
static attn_tensor *g_feedforward(attn_ctx *ctx, void *user, int l, attn_tensor *x) {
    attn_reformer_lm *m = user;
    return attn_chunked_apply(ctx, x, 1, m->cfg.ff_chunk, ff_chunk_fn, user, l);
}

/* Sets the call's rounds, seed and bucket cache (mode 1: keep and reuse). */
static attn_status begin_run(attn_reformer_lm *m, const attn_reformer_lm_run *run, int64_t B, int64_t T,
                             int mode) {
    m->run_hashes = run && run->n_hashes > 0 ? run->n_hashes : m->cfg.n_hashes;
    m->run_seed = run ? run->seed : 0;
    m->run_B = B;
    m->run_T = T;
    m->bucket_mode = mode;
    if (mode == 0) return ATTN_OK;
    size_t need = 0;
    if (attn__mul_size((size_t)B * (size_t)T, (size_t)m->cfg.n_heads * (size_t)m->run_hashes, &need) ||
        attn__mul_size(need, (size_t)m->cfg.n_layers, &need) || attn__mul_size(need, sizeof(int32_t), &need))
        return attn__error(ATTN_ERR_INVALID_ARG, "reformer_lm: the bucket cache of B %lld T %lld overflows",
                           (long long)B, (long long)T);
    if (need > m->buckets_cap) {
        int32_t *b = realloc(m->buckets, need);
        if (!b) return attn__error(ATTN_ERR_OOM, "reformer_lm: bucket cache of %zu bytes", need);
        m->buckets = b;
        m->buckets_cap = need;
    }
    return ATTN_OK;
}

static int check_ids(attn_ctx *ctx, const attn_reformer_lm *m, attn_tensor *ids, const char *fn) {
    if (attn__any_null(ctx, fn, 1, ids)) return 1;
    if (ids->dtype != ATTN_I32 || ids->ndim != 2 || ids->shape[0] < 1 || ids->shape[1] < 1 ||
        ids->shape[1] > m->cfg.ctx_len) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: ids %s, expected I32 [B, T] with 1 <= T <= ctx_len %lld", fn,
                   attn__shp(ids), (long long)m->cfg.ctx_len);
        return 1;
    }
    return 0;
}

/* X = dropout(tok_emb[ids] + pos_emb[0 .. T)), contiguous. */
static attn_tensor *embed(attn_ctx *ctx, const attn_reformer_lm *m, attn_tensor *ids) {
    const int64_t T = ids->shape[1];
    attn_tensor *x = attn_embedding(ctx, m->tok_emb, ids);
    if (m->cfg.rope != 1)
        x = attn_add(ctx, x,
                     m->pos_emb ? attn_slice(ctx, m->pos_emb, 0, 0, T)
                                : attn_sinusoidal_positions(ctx, T, m->cfg.d_model, 0, 0.0f));
    return attn_contiguous(ctx, attn_dropout(ctx, x, m->cfg.dropout));
}

/* logits = head(LN([y1 ; y2])) of rows [B, t, E] each. */
static attn_tensor *head(attn_ctx *ctx, const attn_reformer_lm *m, attn_tensor *y1, attn_tensor *y2) {
    attn_tensor *parts[2] = {y1, y2};
    attn_tensor *h = attn_layernorm(ctx, attn_concat(ctx, parts, 2, 2), m->norm_w, m->norm_b, LN_EPS);
    return attn_linear(ctx, h, m->head_w, m->head_b);
}

/* ---- training --------------------------------------------------------------------------- */

attn_status attn_reformer_lm_train_step(attn_ctx *ctx, attn_reformer_lm *m, const int32_t *ids,
                                        const int32_t *targets, int64_t B, int64_t T, int32_t ignore,
                                        const attn_reformer_lm_run *run, double *loss, int64_t *count) {
    static const char fn[] = "reformer_lm_train_step";
    if (loss) *loss = 0.0;
    if (count) *count = 0;
    if (!ctx) return attn__error(ATTN_ERR_INVALID_ARG, "%s: context is NULL", fn);
    if (ctx->status != ATTN_OK) return ctx->status;
    if (!m || !ids || !targets)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: a NULL model, ids or targets", fn);
    if (B < 1 || T < 1 || T > m->cfg.ctx_len)
        return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: B %lld, T %lld: expected B >= 1 and T in 1 .. "
                          "ctx_len %lld", fn, (long long)B, (long long)T, (long long)m->cfg.ctx_len);
    if (!ctx->grad_enabled) return attn__fail(ctx, ATTN_ERR_STATE, "%s: gradients are disabled", fn);
    const int64_t E = m->cfg.d_model, V = m->cfg.vocab, n = B * T;
    int64_t n_valid = 0;
    for (int64_t i = 0; i < n; i++) {
        if (targets[i] == ignore) continue;
        if (targets[i] < 0 || targets[i] >= V)
            return attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: target %d at %lld outside [0, %lld)", fn, targets[i],
                              (long long)i, (long long)V);
        n_valid++;
    }
    attn_status st = begin_run(m, run, B, T, 1);
    if (st) return attn__fail(ctx, st, "%s: %s", fn, attn_last_error());
    attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T}, ids);
    if (!ti || check_ids(ctx, m, ti, fn)) return ctx->status;
    attn_tensor *x = embed(ctx, m, ti);
    if (!x) return ctx->status;
    attn_tensor *y1 = NULL, *y2 = NULL;
    if ((st = attn_rev_forward(ctx, &m->stack, x, x, &y1, &y2))) return st;
    const size_t bytes = sizeof(float) * (size_t)(n * E);
    float *dy1 = attn__alloc_zero(ctx, bytes, fn), *dy2 = dy1 ? attn__alloc_zero(ctx, bytes, fn) : NULL;
    float *dx1 = dy2 ? attn__alloc(ctx, bytes, fn) : NULL, *dx2 = dx1 ? attn__alloc(ctx, bytes, fn) : NULL;
    int32_t *tg = dx2 ? attn__alloc(ctx, sizeof(int32_t) * (size_t)n, fn) : NULL;
    if (!tg) return ctx->status;
    /* the output layer and loss, chunk by chunk, each on an empty tape */
    double total = 0.0;
    attn_node *tape_last = ctx->tape_last;
    const int tape_size = ctx->tape_size, tape_consumed = ctx->tape_consumed;
    const int64_t C = m->cfg.out_chunk;
    for (int64_t s = 0; s < T && n_valid > 0 && st == ATTN_OK; s += C) {
        const int64_t len = s + C <= T ? C : T - s;
        int64_t nc = 0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < len; t++) {
                tg[b * len + t] = targets[b * T + s + t];
                nc += tg[b * len + t] != ignore;
            }
        if (nc == 0) continue;
        const size_t mark = attn__arena_mark(ctx);
        ctx->tape_last = NULL;
        ctx->tape_size = 0;
        ctx->tape_consumed = 0;
        attn_tensor *a = attn_contiguous(ctx, attn_slice(ctx, y1, 1, s, len));
        attn_tensor *b = attn_contiguous(ctx, attn_slice(ctx, y2, 1, s, len));
        attn_tensor *tt = attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){B * len}, tg);
        if (!a || !b || !tt) {
            st = ctx->status;
            break;
        }
        a->requires_grad = b->requires_grad = 1;
        attn_tensor *lg = attn_reshape(ctx, head(ctx, m, a, b), 2, (int64_t[]){B * len, V});
        attn_tensor *lc = attn_scale(ctx, attn_cross_entropy(ctx, lg, tt, ignore, 0.0f), (float)nc / (float)n_valid);
        if (!lc || (st = attn_backward(ctx, lc)) != ATTN_OK) {
            st = ctx->status ? ctx->status : st;
            break;
        }
        total += (double)attn_f32(lc)[0];
        for (int64_t r = 0; r < B; r++) {
            const size_t off = (size_t)((r * T + s) * E), m_ = sizeof(float) * (size_t)(len * E);
            if (a->grad) memcpy(dy1 + off, a->grad + r * len * E, m_);
            if (b->grad) memcpy(dy2 + off, b->grad + r * len * E, m_);
        }
        attn__arena_rewind(ctx, mark);
    }
    ctx->tape_last = tape_last;
    ctx->tape_size = tape_size;
    ctx->tape_consumed = tape_consumed;
    if (st) return st;
    if (n_valid > 0) {
        if ((st = attn_rev_backward(ctx, &m->stack, y1, y2, dy1, dy2, dx1, dx2, NULL, NULL))) return st;
        for (int64_t i = 0; i < n * E; i++) dx1[i] += dx2[i];
        if ((st = attn_backward_from(ctx, x, dx1))) return st;
    }
    if (loss) *loss = total;
    if (count) *count = n_valid;
    return ATTN_OK;
}

attn_tensor *attn_reformer_lm_loss(attn_ctx *ctx, attn_reformer_lm *m, attn_tensor *ids, attn_tensor *targets,
                                   int32_t ignore, const attn_reformer_lm_run *run) {
    static const char fn[] = "reformer_lm_loss";
    if (attn__any_null(ctx, fn, 1, targets) || !m || check_ids(ctx, m, ids, fn)) return NULL;
    const int64_t B = ids->shape[0], T = ids->shape[1];
    if (begin_run(m, run, B, T, 0) != ATTN_OK) {
        attn__fail(ctx, ATTN_ERR_OOM, "%s: %s", fn, attn_last_error());
        return NULL;
    }
    attn_tensor *x = embed(ctx, m, ids), *y1 = x, *y2 = x;
    for (int l = 0; l < m->cfg.n_layers && y2; l++) {
        y1 = attn_add(ctx, y1, f_attention(ctx, m, l, y2));
        y2 = attn_add(ctx, y2, g_feedforward(ctx, m, l, y1));
    }
    attn_tensor *lg = attn_reshape(ctx, head(ctx, m, y1, y2), 2, (int64_t[]){B * T, m->cfg.vocab});
    attn_tensor *tt = attn_reshape(ctx, targets, 1, (int64_t[]){B * T});
    return attn_cross_entropy(ctx, lg, tt, ignore, 0.0f);
}

attn_tensor *attn_reformer_lm_logits(attn_ctx *ctx, attn_reformer_lm *m, attn_tensor *ids,
                                     const attn_reformer_lm_run *run) {
    static const char fn[] = "reformer_lm_logits";
    if (!m || check_ids(ctx, m, ids, fn)) return NULL;
    if (begin_run(m, run, ids->shape[0], ids->shape[1], 0) != ATTN_OK) {
        attn__fail(ctx, ATTN_ERR_OOM, "%s: %s", fn, attn_last_error());
        return NULL;
    }
    const int grad = ctx->grad_enabled;
    ctx->grad_enabled = 0;
    attn_tensor *x = embed(ctx, m, ids), *y1 = NULL, *y2 = NULL, *lg = NULL;
    if (x && attn_rev_forward(ctx, &m->stack, x, x, &y1, &y2) == ATTN_OK) lg = head(ctx, m, y1, y2);
    ctx->grad_enabled = grad;
    return lg;
}

attn_status attn_reformer_lm_generate(attn_ctx *ctx, attn_reformer_lm *m, const int32_t *prompt,
                                      int64_t n_prompt, int64_t n_new, const attn_sample_opts *opts,
                                      const attn_reformer_lm_run *run, int32_t *out) {
    static const char fn[] = "attn_reformer_lm_generate";
    if (!ctx || !m || !prompt || !opts || (n_new > 0 && !out) || n_prompt < 1 || n_new < 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument, n_prompt %lld (>= 1) or n_new %lld (>= 0)",
                           fn, (long long)n_prompt, (long long)n_new);
    const int64_t V = m->cfg.vocab, C = m->cfg.ctx_len;
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V)
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: prompt id %d at %lld outside [0, %lld)", fn, prompt[i],
                               (long long)i, (long long)V);
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)(n_prompt + n_new));
    void *work = malloc((size_t)V * 8);
    if (!seq || !work) {
        free(seq);
        free(work);
        return attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    }
    memcpy(seq, prompt, sizeof(int32_t) * (size_t)n_prompt);
    const int grad = attn_ctx_grad_enabled(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_status st = ATTN_OK;
    for (int64_t i = 0; i < n_new; i++) {
        const int64_t len = n_prompt + i, T = len < C ? len : C;
        attn_ctx_reset(ctx);
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, T}, seq + len - T);
        attn_tensor *lg = ti ? attn_reformer_lm_logits(ctx, m, ti, run) : NULL;
        if (!lg) {
            st = attn_ctx_status(ctx) ? attn_ctx_status(ctx) : ATTN_ERR_INVALID_ARG;
            break;
        }
        const int32_t tok = attn_sample_token(attn_f32(lg) + (T - 1) * V, V, opts,
                                              attn_rng_uniform(opts->seed, 0, (uint64_t)i), work);
        if (tok < 0) {
            st = attn__error(ATTN_ERR_OOM, "%s: sampling failed", fn);
            break;
        }
        seq[len] = out[i] = tok;
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    free(seq);
    free(work);
    return st;
}

/* ---- files -------------------------------------------------------------------------------- */

static const attn__meta_field meta_fields[ATTN_REFORMER_LM_META] = {
    ATTN__META_FIELD("reformer.vocab", ATTN__META_I64, attn_reformer_lm_config, vocab),
    ATTN__META_FIELD("reformer.ctx_len", ATTN__META_I64, attn_reformer_lm_config, ctx_len),
    ATTN__META_FIELD("reformer.d_model", ATTN__META_I64, attn_reformer_lm_config, d_model),
    ATTN__META_FIELD("reformer.d_ff", ATTN__META_I64, attn_reformer_lm_config, d_ff),
    ATTN__META_FIELD("reformer.n_layers", ATTN__META_INT, attn_reformer_lm_config, n_layers),
    ATTN__META_FIELD("reformer.n_heads", ATTN__META_INT, attn_reformer_lm_config, n_heads),
    ATTN__META_FIELD("reformer.n_hashes", ATTN__META_INT, attn_reformer_lm_config, n_hashes),
    ATTN__META_FIELD("reformer.n_buckets", ATTN__META_INT, attn_reformer_lm_config, n_buckets),
    ATTN__META_FIELD("reformer.chunk_len", ATTN__META_I64, attn_reformer_lm_config, chunk_len),
    ATTN__META_FIELD("reformer.ff_chunk", ATTN__META_I64, attn_reformer_lm_config, ff_chunk),
    ATTN__META_FIELD("reformer.out_chunk", ATTN__META_I64, attn_reformer_lm_config, out_chunk),
    ATTN__META_FIELD("reformer.dropout", ATTN__META_FLOAT, attn_reformer_lm_config, dropout),
    ATTN__META_FIELD_OPT("reformer.sinusoidal", ATTN__META_FLAG, attn_reformer_lm_config, sinusoidal),
    ATTN__META_FIELD_OPT("reformer.rope", ATTN__META_INT, attn_reformer_lm_config, rope),
    ATTN__META_FIELD_OPT("reformer.rope_theta", ATTN__META_FLOAT, attn_reformer_lm_config, rope_theta),
    ATTN__META_FIELD_OPT("reformer.rope_dims", ATTN__META_I64, attn_reformer_lm_config, rope_dims),
};

void attn_reformer_lm_config_meta(const attn_reformer_lm_config *c, attn_kv *kv, char *buf) {
    attn__meta_write(meta_fields, ATTN_REFORMER_LM_META, c, kv, buf);
}

attn_status attn_reformer_lm_load(const char *path, attn_params *ps, attn_reformer_lm **out) {
    static const char fn[] = "attn_reformer_lm_load";
    if (out) *out = NULL;
    if (!path || !ps || !out) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_reformer_lm_config c;
    memset(&c, 0, sizeof c);
    attn_status st = attn__meta_load(fn, "Reformer", path, meta_fields, ATTN_REFORMER_LM_META, &c);
    if (st != ATTN_OK) return st;
    if ((st = check_config(&c)) != ATTN_OK) return st;
    st = attn__meta_check_size(fn, path, c.n_layers,
                               attn__meta_mul_add(c.d_model, attn__meta_mul_add(c.d_model, c.n_layers, c.vocab), 0));
    if (st != ATTN_OK) return st;
    char last[64];
    snprintf(last, sizeof last, "layers.%d.linear1.weight", c.n_layers - 1);
    const attn__meta_shape want[] = {{"tok_emb.weight", c.vocab, c.d_model},
                                     {last, c.d_ff > 0 ? c.d_ff : 4 * c.d_model, c.d_model},
                                     {"head.weight", c.vocab, 2 * c.d_model},
                                     {"pos_emb.weight", c.ctx_len, c.d_model}};
    if ((st = attn__meta_check_shapes(fn, path, want, c.sinusoidal || c.rope == 1 ? 3 : 4)) != ATTN_OK) return st;
    attn_reformer_lm *m = NULL;
    if ((st = attn_reformer_lm_new(&m, ps, &c, NULL)) != ATTN_OK) return st;
    if ((st = attn_safetensors_load_params(path, ps, ATTN_ST_ALLOW_UNEXPECTED)) != ATTN_OK) {
        attn_reformer_lm_free(m);
        return st;
    }
    *out = m;
    return ATTN_OK;
}
