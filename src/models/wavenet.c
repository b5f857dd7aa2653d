/* wavenet.c: the causal dilated convolution language model
 * (include/attn/wavenet.h), composed from graph ops (embedding, conv1d with
 * causal padding, tanh, sigmoid, relu, cross-entropy): nothing here has a
 * backward of its own, the gradient is the ops'.
 *
 * The graph of one batch (B rows, T positions, the last N scored):
 *   x = transpose(embedding(embed, ids), 1, 2)           [B, R, T]
 *   per layer: f, g = conv1d(x, W_f|W_g, causal, d)      [B, D, T]
 *              h = tanh(f) * sigmoid(g)
 *              s = s + conv1d(h, W_skip)                  [B, S, T]
 *              x = x + conv1d(h, W_res)                   (not the last layer)
 *   s = slice(s, axis 2, T - N, N); y = conv1d(relu(conv1d(relu(s), W_1)), W_2)
 *   logits = transpose(y, 1, 2)                           [B, N, V]
 *
 * The incremental step (attn_wavenet_step) computes the same numbers for one
 * new position with plain loops over the parameters: the causal conv's
 * output at t is b + sum_k W[:, :, k] x_{t - (K - 1 - k) d}, and the inputs
 * x_{t - d}, ..., x_{t - (K - 1) d} are the last (K - 1) d entries of the
 * layer's queue.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "model_meta.h"
#include "attn/checkpoint.h"
#include "attn/conv.h"
#include "attn/gpt.h"
#include "attn/ops.h"
#include "attn/params.h"
#include "attn/safetensors.h"
#include "attn/wavenet.h"

#define WN_MAX_CHANNELS 65536

static attn_status wn_check_config(const attn_wavenet_config *c) {
    static const char fn[] = "attn_wavenet_new";
    if (c->vocab < 2 || c->vocab > INT32_MAX)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: vocab %lld: expected 2 .. 2^31 - 1", fn,
                           (long long)c->vocab);
    if (c->res_channels < 1 || c->res_channels > WN_MAX_CHANNELS || c->gate_channels < 1 ||
        c->gate_channels > WN_MAX_CHANNELS || c->skip_channels < 1 ||
        c->skip_channels > WN_MAX_CHANNELS || c->head_channels < 0 ||
        c->head_channels > WN_MAX_CHANNELS)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: channels residual %lld, gate %lld, skip %lld (1 .. %d), head %lld "
                           "(0 .. %d)",
                           fn, (long long)c->res_channels, (long long)c->gate_channels,
                           (long long)c->skip_channels, WN_MAX_CHANNELS,
                           (long long)c->head_channels, WN_MAX_CHANNELS);
    if (c->kernel < 2 || c->kernel > 16 || c->layers_per_block < 1 || c->layers_per_block > 20 ||
        c->n_blocks < 1 || c->n_blocks > 64)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: kernel %d (2 .. 16), layers_per_block %d (1 .. 20), n_blocks %d "
                           "(1 .. 64)",
                           fn, c->kernel, c->layers_per_block, c->n_blocks);
    return ATTN_OK;
}

int64_t attn_wavenet_receptive_field(const attn_wavenet_config *c) {
    if (!c || c->layers_per_block < 1 || c->layers_per_block > 40 || c->n_blocks < 1 ||
        c->kernel < 1)
        return 0;
    return 1 + (int64_t)(c->kernel - 1) * c->n_blocks * (((int64_t)1 << c->layers_per_block) - 1);
}

void attn_wavenet_free(attn_wavenet *m) {
    if (!m) return;
    free(m->layers);
    free(m);
}

/* Adds "layers.<l>.<what>.weight|bias". */
static attn_status add_conv(attn_params *ps, int l, const char *what, int64_t cout, int64_t cin,
                            int64_t k, attn_tensor **w, attn_tensor **b) {
    char name[64];
    snprintf(name, sizeof name, "layers.%d.%s.weight", l, what);
    attn_status st = attn_params_add(ps, name, 3, (int64_t[]){cout, cin, k}, w);
    snprintf(name, sizeof name, "layers.%d.%s.bias", l, what);
    if (st == ATTN_OK) st = attn_params_add(ps, name, 1, (int64_t[]){cout}, b);
    return st;
}

attn_status attn_wavenet_new(attn_wavenet **out, attn_params *ps, const attn_wavenet_config *cfg,
                             attn_rng *rng) {
    if (out) *out = NULL;
    if (!out || !ps || !cfg)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_wavenet_new: NULL argument");
    attn_wavenet_config c = *cfg;
    attn_status st = wn_check_config(&c);
    if (st != ATTN_OK) return st;
    if (c.head_channels == 0) c.head_channels = c.skip_channels;
    const int L = c.layers_per_block * c.n_blocks;
    attn_wavenet *m = calloc(1, sizeof *m);
    if (m) m->layers = calloc((size_t)L, sizeof *m->layers);
    if (!m || !m->layers) {
        attn_wavenet_free(m);
        return attn__error(ATTN_ERR_OOM, "attn_wavenet_new: out of memory");
    }
    m->cfg = c;
    m->params = ps;
    m->n_layers = L;
    const int64_t V = c.vocab, R = c.res_channels, D = c.gate_channels, S = c.skip_channels,
                  H = c.head_channels, K = c.kernel;
    st = attn_params_add(ps, "embed.weight", 2, (int64_t[]){V, R}, &m->embed);
    for (int l = 0; l < L && st == ATTN_OK; l++) {
        attn_wavenet_layer *ly = &m->layers[l];
        ly->dilation = (int64_t)1 << (l % c.layers_per_block);
        st = add_conv(ps, l, "filter", D, R, K, &ly->filter_w, &ly->filter_b);
        if (st == ATTN_OK) st = add_conv(ps, l, "gate", D, R, K, &ly->gate_w, &ly->gate_b);
        if (st == ATTN_OK) st = add_conv(ps, l, "skip", S, D, 1, &ly->skip_w, &ly->skip_b);
        if (st == ATTN_OK && l + 1 < L)
            st = add_conv(ps, l, "residual", R, D, 1, &ly->res_w, &ly->res_b);
    }
    if (st == ATTN_OK) st = attn_params_add(ps, "head1.weight", 3, (int64_t[]){H, S, 1}, &m->head1_w);
    if (st == ATTN_OK) st = attn_params_add(ps, "head1.bias", 1, (int64_t[]){H}, &m->head1_b);
    if (st == ATTN_OK) st = attn_params_add(ps, "head2.weight", 3, (int64_t[]){V, H, 1}, &m->head2_w);
    if (st == ATTN_OK) st = attn_params_add(ps, "head2.bias", 1, (int64_t[]){V}, &m->head2_b);
    if (st != ATTN_OK) {
        attn_wavenet_free(m);
        return st;
    }
    if (rng) {
        attn_init_normal(m->embed, 1.0f, rng);
        for (int l = 0; l < L; l++) {
            attn_wavenet_layer *ly = &m->layers[l];
            attn_init_normal(ly->filter_w, 1.0f / sqrtf((float)(R * K)), rng);
            attn_init_normal(ly->gate_w, 1.0f / sqrtf((float)(R * K)), rng);
            attn_init_normal(ly->skip_w, 1.0f / sqrtf((float)D), rng);
            if (ly->res_w) attn_init_normal(ly->res_w, 1.0f / sqrtf((float)D), rng);
        }
        attn_init_normal(m->head1_w, sqrtf(2.0f / (float)S), rng);
        attn_init_normal(m->head2_w, 1.0f / sqrtf((float)H), rng);
    }
    *out = m;
    return ATTN_OK;
}

/* ---- the full forward --------------------------------------------------------------------- */

attn_tensor *attn_wavenet_logits(attn_ctx *ctx, const attn_wavenet *m, attn_tensor *ids,
                                 int64_t n_last) {
    static const char op[] = "wavenet";
    if (!ctx) return NULL;
    if (attn_ctx_status(ctx) != ATTN_OK) return NULL;
    if (!m) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: model is NULL", op);
        return NULL;
    }
    if (attn__any_null(ctx, op, 1, ids)) return NULL;
    if (ids->dtype != ATTN_I32 || ids->ndim != 2) {
        attn__fail(ctx, ids->dtype != ATTN_I32 ? ATTN_ERR_DTYPE : ATTN_ERR_SHAPE,
                   "%s: ids %s: expected i32 [B, T]", op, attn__shp(ids));
        return NULL;
    }
    const int64_t T = ids->shape[1];
    if (n_last < 1 || n_last > T) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: ids %s: %lld last positions asked, expected 1 .. %lld",
                   op, attn__shp(ids), (long long)n_last, (long long)T);
        return NULL;
    }
    /* x = embed[ids], channels first for the convolutions: [B, R, T] */
    attn_tensor *x = attn_transpose(ctx, attn_embedding(ctx, m->embed, ids), 1, 2);
    attn_tensor *skip = NULL;
    for (int l = 0; l < m->n_layers; l++) {
        const attn_wavenet_layer *ly = &m->layers[l];
        attn_conv1d_opts co = {0};
        co.causal = 1;
        co.dilation = ly->dilation;
        /* h = tanh(W_f *_d x + b_f) * sigmoid(W_g *_d x + b_g) */
        attn_tensor *f = attn_conv1d(ctx, x, ly->filter_w, ly->filter_b, &co);
        attn_tensor *g = attn_conv1d(ctx, x, ly->gate_w, ly->gate_b, &co);
        attn_tensor *h = attn_mul(ctx, attn_tanh(ctx, f), attn_sigmoid(ctx, g));
        /* s += W_skip h + b_skip;  x += W_res h + b_res */
        attn_tensor *sk = attn_conv1d(ctx, h, ly->skip_w, ly->skip_b, NULL);
        skip = skip ? attn_add(ctx, skip, sk) : sk;
        if (ly->res_w) x = attn_add(ctx, x, attn_conv1d(ctx, h, ly->res_w, ly->res_b, NULL));
    }
    if (n_last < T) skip = attn_slice(ctx, skip, 2, T - n_last, n_last);
    attn_tensor *y = attn_conv1d(ctx, attn_relu(ctx, skip), m->head1_w, m->head1_b, NULL);
    y = attn_conv1d(ctx, attn_relu(ctx, y), m->head2_w, m->head2_b, NULL); /* [B, V, N] */
    return attn_contiguous(ctx, attn_transpose(ctx, y, 1, 2));
}

attn_tensor *attn_wavenet_loss(attn_ctx *ctx, const attn_wavenet *m, attn_tensor *ids,
                               attn_tensor *targets, int32_t ignore_index) {
    static const char op[] = "wavenet_loss";
    if (!ctx || attn_ctx_status(ctx) != ATTN_OK) return NULL;
    if (attn__any_null(ctx, op, 2, ids, targets)) return NULL;
    if (targets->ndim != 2 || ids->ndim != 2 || targets->shape[0] != ids->shape[0] ||
        targets->shape[1] > ids->shape[1] || targets->shape[1] < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: ids %s and targets %s: expected ids [B, T] and targets [B, N], 1 <= N <= T",
                   op, attn__shp(ids), attn__shp(targets));
        return NULL;
    }
    if (!m) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: model is NULL", op);
        return NULL;
    }
    const int64_t N = targets->shape[1];
    attn_tensor *logits = attn_wavenet_logits(ctx, m, ids, N);
    if (!logits) return NULL;
    const int64_t BN = ids->shape[0] * N;
    attn_tensor *flat = attn_reshape(ctx, logits, 2, (int64_t[]){BN, m->cfg.vocab});
    attn_tensor *tflat = attn_reshape(ctx, targets, 1, (int64_t[]){BN});
    return attn_cross_entropy(ctx, flat, tflat, ignore_index, 0.0f);
}

/* ---- incremental generation -------------------------------------------------------------------- */

void attn_wavenet_state_free(attn_wavenet_state *s) {
    if (!s) return;
    if (s->queue)
        for (int l = 0; l < s->n_layers; l++) free(s->queue[l]);
    free(s->queue);
    free(s->qlen);
    free(s->work);
    memset(s, 0, sizeof *s);
}

/* Scratch of the step: x [R], f [D], g [D] (h reuses f), skip [S], head [H]. */
static int64_t wn_work_floats(const attn_wavenet_config *c) {
    return c->res_channels + 2 * c->gate_channels + c->skip_channels + c->head_channels;
}

attn_status attn_wavenet_state_init(const attn_wavenet *m, attn_wavenet_state *s) {
    static const char fn[] = "attn_wavenet_state_init";
    if (!m || !s) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    memset(s, 0, sizeof *s);
    const int64_t R = m->cfg.res_channels, K = m->cfg.kernel;
    s->n_layers = m->n_layers;
    s->width = R;
    s->qlen = calloc((size_t)m->n_layers, sizeof *s->qlen);
    s->queue = calloc((size_t)m->n_layers, sizeof *s->queue);
    s->work = malloc((size_t)wn_work_floats(&m->cfg) * sizeof *s->work);
    int ok = s->qlen && s->queue && s->work;
    for (int l = 0; l < m->n_layers && ok; l++) {
        s->qlen[l] = (K - 1) * m->layers[l].dilation;
        s->queue[l] = calloc((size_t)(s->qlen[l] * R), sizeof(float));
        ok = s->queue[l] != NULL;
    }
    if (!ok) {
        attn_wavenet_state_free(s);
        return attn__error(ATTN_ERR_OOM, "%s: out of memory (queues of %d layers, %lld channels)",
                           fn, m->n_layers, (long long)R);
    }
    return ATTN_OK;
}

void attn_wavenet_state_reset(attn_wavenet_state *s) {
    if (!s || !s->queue) return;
    for (int l = 0; l < s->n_layers; l++)
        memset(s->queue[l], 0, (size_t)(s->qlen[l] * s->width) * sizeof(float));
    s->pos = 0;
}

/* y[o] = b[o] + sum_i W[o, i, k] x[i] over one tap k of a [O, I, K] weight,
 * accumulated into y (b NULL: no bias). */
static void tap(float *y, const float *W, const float *b, const float *x, int64_t O, int64_t I,
                int64_t K, int64_t k) {
    for (int64_t o = 0; o < O; o++) {
        const float *w = W + o * I * K + k;
        float acc = b ? b[o] : 0.0f;
        for (int64_t i = 0; i < I; i++) acc += w[i * K] * x[i];
        y[o] += acc;
    }
}

attn_status attn_wavenet_step(const attn_wavenet *m, attn_wavenet_state *s, int32_t tok,
                              float *logits) {
    static const char fn[] = "attn_wavenet_step";
    if (!m || !s || !logits || !s->queue)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument or an uninitialised state", fn);
    const attn_wavenet_config *c = &m->cfg;
    if (s->n_layers != m->n_layers || s->width != c->res_channels)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: a state of %d layers of %lld channels for a model of %d of %lld", fn,
                           s->n_layers, (long long)s->width, m->n_layers, (long long)c->res_channels);
    if (tok < 0 || tok >= c->vocab)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: token %d outside [0, %lld)", fn, tok,
                           (long long)c->vocab);
    const int64_t R = c->res_channels, D = c->gate_channels, S = c->skip_channels,
                  H = c->head_channels, V = c->vocab, K = c->kernel;
    float *x = s->work, *f = x + R, *g = f + D, *skip = g + D, *hd = skip + S;
    memcpy(x, attn_f32(m->embed) + (int64_t)tok * R, (size_t)R * sizeof *x);
    memset(skip, 0, (size_t)S * sizeof *skip);
    for (int l = 0; l < m->n_layers; l++) {
        const attn_wavenet_layer *ly = &m->layers[l];
        const int64_t d = ly->dilation, Q = s->qlen[l];
        float *q = s->queue[l];
        memset(f, 0, (size_t)D * sizeof *f);
        memset(g, 0, (size_t)D * sizeof *g);
        /* tap k reads x_{t - (K - 1 - k) d}: the current input for k = K - 1,
         * else the queue entry (K - 1 - k) d positions back (zeros before
         * the sequence, as the causal padding) */
        for (int64_t k = 0; k < K; k++) {
            const int64_t back = (K - 1 - k) * d;
            const float *in = x;
            if (back > 0) in = q + ((s->pos - back) % Q + Q) % Q * R;
            tap(f, attn_f32(ly->filter_w), k == 0 ? attn_f32(ly->filter_b) : NULL, in, D, R, K, k);
            tap(g, attn_f32(ly->gate_w), k == 0 ? attn_f32(ly->gate_b) : NULL, in, D, R, K, k);
        }
        /* push the current input: the oldest entry (Q back) is no longer needed */
        memcpy(q + (s->pos % Q) * R, x, (size_t)R * sizeof *x);
        for (int64_t i = 0; i < D; i++) f[i] = tanhf(f[i]) * (1.0f / (1.0f + expf(-g[i])));
        tap(skip, attn_f32(ly->skip_w), attn_f32(ly->skip_b), f, S, D, 1, 0);
        if (ly->res_w) tap(x, attn_f32(ly->res_w), attn_f32(ly->res_b), f, R, D, 1, 0);
    }
    for (int64_t i = 0; i < S; i++) skip[i] = skip[i] > 0.0f ? skip[i] : 0.0f;
    memset(hd, 0, (size_t)H * sizeof *hd);
    tap(hd, attn_f32(m->head1_w), attn_f32(m->head1_b), skip, H, S, 1, 0);
    for (int64_t i = 0; i < H; i++) hd[i] = hd[i] > 0.0f ? hd[i] : 0.0f;
    memset(logits, 0, (size_t)V * sizeof *logits);
    tap(logits, attn_f32(m->head2_w), attn_f32(m->head2_b), hd, V, H, 1, 0);
    s->pos++;
    return ATTN_OK;
}

attn_status attn_wavenet_generate(const attn_wavenet *m, const int32_t *prompt, int64_t n_prompt,
                                  int64_t n_new, const attn_sample_opts *opts, int32_t *out,
                                  float *step_logits, attn_gpt_token_fn on_token, void *user,
                                  int64_t *n_done) {
    static const char fn[] = "attn_wavenet_generate";
    if (n_done) *n_done = 0;
    if (!m || !prompt || (!out && n_new > 0))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (n_prompt < 1 || n_new < 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: n_prompt %lld (>= 1), n_new %lld (>= 0)", fn,
                           (long long)n_prompt, (long long)n_new);
    const int64_t V = m->cfg.vocab;
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V)
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: prompt id %d at %lld outside [0, %lld)",
                               fn, prompt[i], (long long)i, (long long)V);
    if (n_new == 0) return ATTN_OK;
    const attn_sample_opts def = {1.0f, 0, 0.0f, 0, 0};
    const attn_sample_opts *o = opts ? opts : &def;
    float *row = malloc((size_t)V * sizeof *row);
    void *work = malloc((size_t)V * (sizeof(float) + sizeof(int32_t)));
    attn_wavenet_state s;
    memset(&s, 0, sizeof s);
    attn_status st = (row && work) ? attn_wavenet_state_init(m, &s)
                                   : attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    /* the prompt: only the last receptive field's worth can reach the next
     * logits, but the queues fill the same way from any start */
    for (int64_t i = 0; i < n_prompt && st == ATTN_OK; i++) st = attn_wavenet_step(m, &s, prompt[i], row);
    for (int64_t i = 0; i < n_new && st == ATTN_OK; i++) {
        if (step_logits) memcpy(step_logits + i * V, row, (size_t)V * sizeof *row);
        const int32_t tok =
            attn_sample_token(row, V, o, attn_rng_uniform(o->seed, 0, (uint64_t)i), work);
        if (tok < 0) {
            st = attn__error(ATTN_ERR_OOM, "%s: sampling failed", fn);
            break;
        }
        out[i] = tok;
        if (n_done) *n_done = i + 1;
        if (on_token && on_token(user, tok, i)) break;
        if (i + 1 == n_new) break;
        st = attn_wavenet_step(m, &s, tok, row);
    }
    attn_wavenet_state_free(&s);
    free(row);
    free(work);
    return st;
}

/* ---- files ------------------------------------------------------------------------------------ */

static const attn__meta_field meta_fields[ATTN_WAVENET_META] = {
    ATTN__META_FIELD("wavenet.vocab", ATTN__META_I64, attn_wavenet_config, vocab),
    ATTN__META_FIELD("wavenet.res_channels", ATTN__META_I64, attn_wavenet_config, res_channels),
    ATTN__META_FIELD("wavenet.gate_channels", ATTN__META_I64, attn_wavenet_config, gate_channels),
    ATTN__META_FIELD("wavenet.skip_channels", ATTN__META_I64, attn_wavenet_config, skip_channels),
    ATTN__META_FIELD("wavenet.head_channels", ATTN__META_I64, attn_wavenet_config, head_channels),
    ATTN__META_FIELD("wavenet.kernel", ATTN__META_INT, attn_wavenet_config, kernel),
    ATTN__META_FIELD("wavenet.layers_per_block", ATTN__META_INT, attn_wavenet_config,
                     layers_per_block),
    ATTN__META_FIELD("wavenet.n_blocks", ATTN__META_INT, attn_wavenet_config, n_blocks),
};

void attn_wavenet_config_meta(const attn_wavenet_config *c, attn_kv *kv, char *buf) {
    attn__meta_write(meta_fields, ATTN_WAVENET_META, c, kv, buf);
}

attn_status attn_wavenet_config_load(const char *path, attn_wavenet_config *cfg) {
    static const char fn[] = "attn_wavenet_config_load";
    if (!path || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_wavenet_config c;
    memset(&c, 0, sizeof c);
    const attn_status st =
        attn__meta_load(fn, "WaveNet", path, meta_fields, ATTN_WAVENET_META, &c);
    if (st == ATTN_OK) *cfg = c;
    return st;
}

attn_status attn_wavenet_save(const char *path, const attn_wavenet *m, const attn_kv *meta,
                              int n_meta) {
    if (!path || !m || (n_meta > 0 && !meta) || n_meta < 0 || n_meta > 64)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_wavenet_save: NULL argument or n_meta %d",
                           n_meta);
    attn_kv kv[ATTN_WAVENET_META + 64];
    char buf[ATTN_WAVENET_META * 32];
    attn_wavenet_config_meta(&m->cfg, kv, buf);
    return attn__meta_save(path, m->params, kv, ATTN_WAVENET_META, meta, n_meta);
}

attn_status attn_wavenet_load(const char *path, attn_params *ps, attn_wavenet **out) {
    static const char fn[] = "attn_wavenet_load";
    if (out) *out = NULL;
    if (!path || !ps || !out) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_wavenet_config c;
    attn_status st = attn_wavenet_config_load(path, &c);
    if (st != ATTN_OK) return st;
    st = wn_check_config(&c);
    if (st != ATTN_OK) return st;
    /* Before a model of that size is built, the file must hold what the
     * metadata claims: four tensors per layer at least, and the embedding
     * plus the filter and gate weights of every layer; the embedding must
     * have exactly [vocab, res_channels]. */
    const int64_t L = (int64_t)c.layers_per_block * c.n_blocks;
    const int64_t per_layer = 2 * c.gate_channels * c.res_channels * c.kernel;
    st = attn__meta_check_size(fn, path, 4 * L,
                               attn__meta_mul_add(per_layer, L, c.vocab * c.res_channels));
    if (st != ATTN_OK) return st;
    const attn__meta_shape want[] = {{"embed.weight", c.vocab, c.res_channels}};
    st = attn__meta_check_shapes(fn, path, want, 1);
    if (st != ATTN_OK) return st;
    attn_wavenet *m = NULL;
    st = attn_wavenet_new(&m, ps, &c, NULL);
    if (st != ATTN_OK) return st;
    st = attn_safetensors_load_params(path, ps, ATTN_ST_ALLOW_UNEXPECTED);
    if (st != ATTN_OK) {
        attn_wavenet_free(m);
        return st;
    }
    *out = m;
    return ATTN_OK;
}
