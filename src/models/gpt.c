/* gpt.c: the decoder-only Transformer language model (include/attn/gpt.h),
 * composed from graph ops and the pre-LN blocks of transformer.h; nothing
 * here has a backward of its own.
 *
 * The graph of one batch (B rows, T positions):
 *   x = embedding(tok_emb, ids)                         [B, T, E]
 *   x = x + slice(pos_emb, 0, p0, T)  (LEARNED; broadcast over B)
 *     | x + sinusoidal(T, E, p0)      (SINUSOIDAL)
 *   x = dropout(x)
 *   x = block_l(x, causal, cache layer l)   l = 0 .. L-1
 *   logits = linear(layernorm(x, norm_f), head)          [B, T, V]
 * p0 is 0, or the cache's length when decoding with a KV cache. A tied head
 * is tok_emb itself, so its gradient sums the embedding's and the head's.
 *
 * Generation reads the prompt in one forward, then one token per forward
 * through the cache, rewinding the arena to a mark between forwards (no tape:
 * gradients are off).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "model_meta.h"
#include "attn/checkpoint.h"
#include "attn/gpt.h"
#include "attn/ops.h"
#include "attn/params.h"
#include "attn/positions.h"
#include "attn/safetensors.h"
#include "attn/synthesizer.h"
#include "attn/transformer.h"

static attn_status gpt_check_config(const attn_gpt_config *c) {
    static const char fn[] = "attn_gpt_new";
    if (c->vocab < 2 || c->ctx_len < 1 || c->n_layers < 1 || c->n_heads < 1 || c->d_model < 1 ||
        c->d_ff < 0 || c->n_kv_heads < 0)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: vocab %lld (>= 2), ctx_len %lld, n_layers %d, n_heads %d, d_model "
                           "%lld (>= 1), d_ff %lld, n_kv_heads %d (>= 0)",
                           fn, (long long)c->vocab, (long long)c->ctx_len, c->n_layers,
                           c->n_heads, (long long)c->d_model, (long long)c->d_ff, c->n_kv_heads);
    if (c->vocab > INT32_MAX || c->ctx_len > (1ll << 31))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: vocab %lld or ctx_len %lld too large", fn,
                           (long long)c->vocab, (long long)c->ctx_len);
    if (c->d_model % c->n_heads != 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: d_model %lld is not a multiple of n_heads %d",
                           fn, (long long)c->d_model, c->n_heads);
    if (c->n_kv_heads > 0 && c->n_heads % c->n_kv_heads != 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: n_heads %d is not a multiple of n_kv_heads %d",
                           fn, c->n_heads, c->n_kv_heads);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: dropout %g outside [0, 1)", fn,
                           (double)c->dropout);
    if (c->pos != ATTN_POS_NONE && c->pos != ATTN_POS_LEARNED && c->pos != ATTN_POS_SINUSOIDAL &&
        c->pos != ATTN_POS_ROPE && c->pos != ATTN_POS_ALIBI)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: position kind %d (%s): expected none, learned, sinusoidal, rope "
                           "or alibi",
                           fn, (int)c->pos, attn_pos_kind_name(c->pos));
    if (c->pos == ATTN_POS_ROPE && (c->d_model / c->n_heads) % 2 != 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: rope needs an even head size, not %lld", fn,
                           (long long)(c->d_model / c->n_heads));
    if (!(c->rope_theta >= 0.0f) || isinf(c->rope_theta))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: rope_theta %g", fn, (double)c->rope_theta);
    if (c->synth & ~(unsigned)ATTN_SYNTH_ALL)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: synth 0x%x: expected ATTN_SYNTH_* bits", fn,
                           c->synth);
    if (c->synth && (c->pos == ATTN_POS_ROPE || c->pos == ATTN_POS_ALIBI ||
                     (c->n_kv_heads > 0 && c->n_kv_heads != c->n_heads)))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: a synthesizer mixer takes positions from the embedding (none, "
                           "learned or sinusoidal) and has no key-value heads (n_kv_heads 0 or n_heads)", fn);
    if (c->mixer < ATTN_GPT_MIXER_ATTENTION || c->mixer > ATTN_GPT_MIXER_ROUTING ||
        c->mixer_block < 0 || c->mixer_block > c->ctx_len || c->mixer_n < 0 ||
        c->mixer_n > 1024 || (c->mixer && c->synth))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: mixer %d, mixer_block %lld, mixer_n %d: expected a mixer in [0, 3] "
                           "(not with synth), mixer_block in [0, ctx_len %lld], mixer_n in [0, 1024]",
                           fn, c->mixer, (long long)c->mixer_block, c->mixer_n, (long long)c->ctx_len);
    if (c->mixer && (c->pos == ATTN_POS_ROPE || c->pos == ATTN_POS_ALIBI ||
                     (c->n_kv_heads > 0 && c->n_kv_heads != c->n_heads)))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: a %s mixer takes positions from the embedding (none, learned or "
                           "sinusoidal) and has no key-value heads (n_kv_heads 0 or n_heads)", fn,
                           attn_gpt_mixer_name(c->mixer));
    if ((c->mixer == ATTN_GPT_MIXER_SINKHORN || c->mixer == ATTN_GPT_MIXER_SORTCUT) &&
        c->ctx_len % (c->mixer_block ? c->mixer_block : 16) != 0)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: a %s mixer needs ctx_len %lld to be a multiple of its block %lld", fn,
                           attn_gpt_mixer_name(c->mixer), (long long)c->ctx_len,
                           (long long)(c->mixer_block ? c->mixer_block : 16));
    if (c->sparse.kind != 0) {
        if (c->synth || c->mixer)
            return attn__error(ATTN_ERR_INVALID_ARG,
                               "%s: a sparse pattern needs dot-product attention (synth 0, mixer 0)", fn);
        if (attn_sparse_check(NULL, &c->sparse) != ATTN_OK) {
            char why[200];
            snprintf(why, sizeof why, "%s", attn_last_error());
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: %s", fn, why);
        }
    }
    if (c->sparse_by_layer && c->sparse.kind != ATTN_SPARSE_STRIDED && c->sparse.kind != ATTN_SPARSE_FIXED)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: sparse_by_layer needs a strided or fixed pattern (kind %d)", fn,
                           c->sparse.kind);
    return ATTN_OK;
}

const char *attn_gpt_mixer_name(int mixer) {
    static const char *const names[4] = {"attention", "sinkhorn", "sortcut", "routing"};
    return mixer >= 0 && mixer < 4 ? names[mixer] : "unknown";
}

int attn_gpt_mixer_parse(const char *s) {
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, attn_gpt_mixer_name(i))) return i;
    return -1;
}

static attn_sinkhorn_config sink_config(const attn_gpt_config *c) {
    attn_sinkhorn_config sc;
    memset(&sc, 0, sizeof sc);
    sc.d_model = c->d_model;
    sc.n_heads = c->n_heads;
    sc.max_len = c->ctx_len;
    sc.block = c->mixer_block ? c->mixer_block : 16;
    sc.n_sortcut = c->mixer == ATTN_GPT_MIXER_SORTCUT ? (c->mixer_n ? c->mixer_n : 2) : 0;
    sc.causal = 1;
    return sc;
}

static attn_routing_config route_config(const attn_gpt_config *c) {
    attn_routing_config rc;
    memset(&rc, 0, sizeof rc);
    rc.d_model = c->d_model;
    rc.n_heads = c->n_heads;
    rc.local_heads = c->n_heads / 2;
    rc.n_clusters = c->mixer_n ? c->mixer_n : 4;
    rc.window = c->mixer_block ? c->mixer_block : (c->ctx_len + rc.n_clusters - 1) / rc.n_clusters;
    rc.local_window = rc.window;
    rc.causal = 1;
    rc.update = 1;
    rc.balance = ATTN_ROUTING_NEAREST; /* strictly causal (routing.h) */
    return rc;
}

/* The synthesizer config of a synth GPT's layers. */
static attn_synthesizer_config synth_config(const attn_gpt_config *c) {
    attn_synthesizer_config sc;
    memset(&sc, 0, sizeof sc);
    sc.d_model = c->d_model;
    sc.n_heads = c->n_heads;
    sc.max_len = c->ctx_len;
    sc.components = c->synth;
    sc.fixed_random = c->synth_fixed;
    sc.causal = 1;
    sc.dropout = c->dropout;
    sc.kernel = c->kernel;
    return sc;
}

/* GPT-2's initialisation for a synthesizer: its linear maps N(0, std) (the
 * output projection std_res), biases 0, R N(0, 1), R1 and R2 with standard
 * deviation k^-1/4, the mixture weights 0 (synthesizer.h). */
static void synth_init(attn_synthesizer *s, float std, float std_res, attn_rng *rng) {
    attn_tensor *lin[7] = {s->w1, s->w2, s->wa, s->wb, s->wq, s->wk, s->wv};
    for (int i = 0; i < 7; i++)
        if (lin[i]) attn_init_normal(lin[i], std, rng);
    attn_init_normal(s->wo, std_res, rng);
    if (s->r) attn_init_normal(s->r, 1.0f, rng);
    const float sr = (float)pow((double)s->cfg.rank, -0.25);
    if (s->r1) attn_init_normal(s->r1, sr, rng);
    if (s->r2) attn_init_normal(s->r2, sr, rng);
}

void attn_gpt_free(attn_gpt *m) {
    if (!m) return;
    free(m->blocks);
    free(m->synth);
    free(m->sink);
    free(m->route);
    free(m);
}

attn_status attn_gpt_new(attn_gpt **out, attn_params *ps, const attn_gpt_config *cfg,
                         attn_rng *rng) {
    if (out) *out = NULL;
    if (!out || !ps || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "attn_gpt_new: NULL argument");
    attn_gpt_config c = *cfg;
    if (c.d_ff == 0) c.d_ff = 4 * c.d_model;
    attn_status st = gpt_check_config(&c);
    if (st != ATTN_OK) return st;
    if (c.n_kv_heads == 0) c.n_kv_heads = c.n_heads;
    attn_gpt *m = calloc(1, sizeof *m);
    if (m) m->blocks = calloc((size_t)c.n_layers, sizeof *m->blocks);
    if (m && c.synth) m->synth = calloc((size_t)c.n_layers, sizeof *m->synth);
    const int sinkm = c.mixer == ATTN_GPT_MIXER_SINKHORN || c.mixer == ATTN_GPT_MIXER_SORTCUT;
    if (m && sinkm) m->sink = calloc((size_t)c.n_layers, sizeof *m->sink);
    if (m && c.mixer == ATTN_GPT_MIXER_ROUTING) m->route = calloc((size_t)c.n_layers, sizeof *m->route);
    if (!m || !m->blocks || (c.synth && !m->synth) || (sinkm && !m->sink) ||
        (c.mixer == ATTN_GPT_MIXER_ROUTING && !m->route)) {
        attn_gpt_free(m);
        return attn__error(ATTN_ERR_OOM, "attn_gpt_new: out of memory");
    }
    m->cfg = c;
    m->params = ps;
    const int64_t V = c.vocab, E = c.d_model;
    st = attn_params_add(ps, "tok_emb.weight", 2, (int64_t[]){V, E}, &m->tok_emb);
    if (st == ATTN_OK && c.pos == ATTN_POS_LEARNED)
        st = attn_params_add(ps, "pos_emb.weight", 2, (int64_t[]){c.ctx_len, E}, &m->pos_emb);
    for (int l = 0; l < c.n_layers && st == ATTN_OK; l++) {
        attn_block_config bc;
        memset(&bc, 0, sizeof bc);
        bc.d_model = E;
        bc.n_heads = c.n_heads;
        bc.n_kv_heads = c.n_kv_heads;
        bc.d_ff = c.d_ff;
        bc.norm_first = 1;
        bc.activation = ATTN_ACT_GELU;
        bc.kernel = c.kernel;
        bc.dropout = c.dropout;
        bc.pos = (c.pos == ATTN_POS_ROPE || c.pos == ATTN_POS_ALIBI) ? c.pos : ATTN_POS_NONE;
        bc.rope_theta = c.rope_theta;
        bc.external_mixer = c.synth != 0 || c.mixer != 0;
        char prefix[48];
        if (c.synth) {
            const attn_synthesizer_config sc = synth_config(&c);
            snprintf(prefix, sizeof prefix, "layers.%d.self_attn.", l);
            st = attn_synthesizer_init(&m->synth[l], ps, prefix, &sc, NULL);
            if (st != ATTN_OK) break;
        }
        if (m->sink || m->route) {
            snprintf(prefix, sizeof prefix, "layers.%d.self_attn.", l);
            if (m->sink) {
                const attn_sinkhorn_config sc = sink_config(&c);
                st = attn_sinkhorn_init(&m->sink[l], ps, prefix, &sc, NULL);
            } else {
                const attn_routing_config rc = route_config(&c);
                st = attn_routing_init(&m->route[l], ps, prefix, &rc, NULL);
            }
            if (st != ATTN_OK) break;
        }
        snprintf(prefix, sizeof prefix, "layers.%d.", l);
        st = attn_block_init(&m->blocks[l], ps, prefix, &bc, NULL);
    }
    if (st == ATTN_OK) st = attn_params_add(ps, "norm_f.weight", 1, (int64_t[]){E}, &m->norm_f_w);
    if (st == ATTN_OK) st = attn_params_add(ps, "norm_f.bias", 1, (int64_t[]){E}, &m->norm_f_b);
    if (st == ATTN_OK) {
        if (c.tied)
            m->head = m->tok_emb;
        else
            st = attn_params_add(ps, "head.weight", 2, (int64_t[]){V, E}, &m->head);
    }
    if (st != ATTN_OK) {
        attn_gpt_free(m);
        return st;
    }
    attn_init_constant(m->norm_f_w, 1.0f);
    if (rng) {
        /* GPT-2: N(0, 0.02) everywhere, the residual projections scaled by
         * 1/sqrt(2 L) (each block adds two branches to the residual stream),
         * biases 0, LayerNorm weights 1. */
        const float std = 0.02f, std_res = 0.02f / sqrtf(2.0f * (float)c.n_layers);
        attn_init_normal(m->tok_emb, std, rng);
        if (m->pos_emb) attn_init_normal(m->pos_emb, std, rng);
        for (int l = 0; l < c.n_layers; l++) {
            attn_block *b = &m->blocks[l];
            if (m->synth) {
                synth_init(&m->synth[l], std, std_res, rng);
            } else if (m->sink) {
                /* GPT-2's: linear maps N(0, std), the output std_res, biases 0 */
                attn_sinkhorn *sk = &m->sink[l];
                attn_tensor *lin[5] = {sk->wq, sk->wk, sk->wv, sk->w1, sk->w2};
                for (int i = 0; i < 5; i++) attn_init_normal(lin[i], std, rng);
                attn_init_normal(sk->wo, std_res, rng);
            } else if (m->route) {
                attn_routing *rt = &m->route[l];
                attn_init_normal(rt->wqk, std, rng);
                attn_init_normal(rt->wv, std, rng);
                attn_init_normal(rt->wo, std_res, rng);
                if (rt->centroids) { /* unit vectors (routing.h) */
                    attn_init_normal(rt->centroids, 1.0f, rng);
                    float *p = attn_f32(rt->centroids);
                    const int64_t D = rt->head_dim, n = attn_tensor_numel(rt->centroids) / D;
                    for (int64_t i = 0; i < n; i++) {
                        double ss = 0.0;
                        for (int64_t d = 0; d < D; d++) ss += (double)p[i * D + d] * p[i * D + d];
                        for (int64_t d = 0; d < D; d++) p[i * D + d] = (float)(p[i * D + d] / sqrt(ss));
                    }
                }
            } else {
                attn_tensor *w_in = b->self_attn.in_proj_weight ? b->self_attn.in_proj_weight
                                                                : b->self_attn.q_proj_weight;
                attn_init_normal(w_in, std, rng);
                if (!b->self_attn.in_proj_weight) {
                    attn_init_normal(b->self_attn.k_proj_weight, std, rng);
                    attn_init_normal(b->self_attn.v_proj_weight, std, rng);
                }
                attn_init_normal(b->self_attn.out_proj_weight, std_res, rng);
            }
            attn_init_normal(b->linear1_w, std, rng);
            attn_init_normal(b->linear2_w, std_res, rng);
        }
        if (!c.tied) attn_init_normal(m->head, std, rng);
    }
    /* LayerNorm weights are 1 whether or not the rest is drawn (a model to
     * be loaded gets them from its file anyway). */
    for (int l = 0; l < c.n_layers; l++)
        for (int k = 0; k < 3; k++)
            if (m->blocks[l].norm_w[k]) attn_init_constant(m->blocks[l].norm_w[k], 1.0f);
    *out = m;
    return ATTN_OK;
}

attn_status attn_gpt_cache_init(const attn_gpt *m, int64_t B, attn_kv_cache *cache) {
    if (!m || !cache) return attn__error(ATTN_ERR_INVALID_ARG, "attn_gpt_cache_init: NULL argument");
    return attn_kv_cache_init(cache, m->cfg.n_layers, B, m->cfg.n_kv_heads, m->cfg.ctx_len,
                              m->cfg.d_model / m->cfg.n_heads);
}

/* A synthesizer layer as a block's token mixer (attn_block_mixer_fn). */
typedef struct gpt_mixer {
    const attn_synthesizer *s;
    attn_tensor **weights; /* NULL, or receives the layer's weights */
} gpt_mixer;

static attn_tensor *synth_mix(attn_ctx *ctx, const void *state, attn_tensor *h) {
    const gpt_mixer *g = state;
    return attn_synthesizer_forward(ctx, g->s, h, g->weights);
}

/* A Sinkhorn / SortCut or routing layer as a block's token mixer; weights
 * receives its picture: the soft permutation P, or the nearest centroids. */
typedef struct gpt_sparse_mixer {
    const attn_sinkhorn *sk;
    const attn_routing *rt;
    attn_tensor **weights;
} gpt_sparse_mixer;

static attn_tensor *sparse_mix(attn_ctx *ctx, const void *state, attn_tensor *h) {
    const gpt_sparse_mixer *g = state;
    return g->sk ? attn_sinkhorn_forward(ctx, g->sk, h, g->weights)
                 : attn_routing_forward(ctx, g->rt, h, g->weights, NULL);
}

attn_tensor *attn_gpt_logits(attn_ctx *ctx, const attn_gpt *m, attn_tensor *ids,
                             attn_kv_cache *cache) {
    return attn_gpt_logits_ex(ctx, m, ids, cache, NULL);
}

attn_tensor *attn_gpt_logits_ex(attn_ctx *ctx, const attn_gpt *m, attn_tensor *ids,
                                attn_kv_cache *cache, attn_tensor **self_weights) {
    static const char op[] = "gpt";
    if (self_weights && m)
        for (int l = 0; l < m->cfg.n_layers; l++) self_weights[l] = NULL;
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
    const attn_gpt_config *c = &m->cfg;
    const int64_t T = ids->shape[1];
    int64_t p0 = 0;
    if (cache && (m->sink || m->route)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: a %s GPT has no KV cache (its mixer reads the whole window): call it "
                   "without one", op, attn_gpt_mixer_name(m->cfg.mixer));
        return NULL;
    }
    if (cache && m->synth) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: a synthesizer GPT has no KV cache (its dense and random logits are "
                   "rows of the whole window): call it without one", op);
        return NULL;
    }
    if (cache) {
        if (cache->n_layers != c->n_layers || !cache->layers) {
            attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: a cache of %d layers for a model of %d", op,
                       cache->n_layers, c->n_layers);
            return NULL;
        }
        p0 = cache->layers[0].len;
    }
    if (p0 + T > c->ctx_len) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: ids %s at position %lld: positions up to %lld, past ctx_len %lld", op,
                   attn__shp(ids), (long long)p0, (long long)(p0 + T), (long long)c->ctx_len);
        return NULL;
    }
    attn_tensor *x = attn_embedding(ctx, m->tok_emb, ids);
    if (c->pos == ATTN_POS_LEARNED)
        x = attn_add(ctx, x, attn_slice(ctx, m->pos_emb, 0, p0, T));
    else if (c->pos == ATTN_POS_SINUSOIDAL)
        x = attn_add(ctx, x, attn_sinusoidal_positions(ctx, T, c->d_model, p0, 0.0f));
    x = attn_dropout(ctx, x, c->dropout);
    for (int l = 0; l < c->n_layers; l++) {
        attn_mha_call call;
        memset(&call, 0, sizeof call);
        call.causal = 1;
        call.cache = cache ? &cache->layers[l] : NULL;
        attn_sparse_pattern lp = c->sparse; /* this layer's pattern */
        if (c->sparse_by_layer) lp.heads = l % 2 ? ATTN_SPARSE_HEADS_B_ONLY : ATTN_SPARSE_HEADS_A_ONLY;
        if (lp.kind != 0) call.sparse = &lp;
        if (m->sink || m->route) {
            const gpt_sparse_mixer mix = {m->sink ? &m->sink[l] : NULL, m->route ? &m->route[l] : NULL,
                                          self_weights ? &self_weights[l] : NULL};
            x = attn_block_forward_mixer(ctx, &m->blocks[l], x, sparse_mix, &mix);
        } else if (m->synth) {
            const gpt_mixer mix = {&m->synth[l], self_weights ? &self_weights[l] : NULL};
            x = attn_block_forward_mixer(ctx, &m->blocks[l], x, synth_mix, &mix);
        } else {
            x = attn_block_forward(ctx, &m->blocks[l], x, NULL, &call, NULL,
                                   self_weights ? &self_weights[l] : NULL);
        }
    }
    x = attn_layernorm(ctx, x, m->norm_f_w, m->norm_f_b, 1e-5f);
    return attn_linear(ctx, x, m->head, NULL);
}

attn_tensor *attn_gpt_loss(attn_ctx *ctx, const attn_gpt *m, attn_tensor *ids,
                           attn_tensor *targets, int32_t ignore_index) {
    static const char op[] = "gpt_loss";
    if (!ctx || attn_ctx_status(ctx) != ATTN_OK) return NULL;
    if (attn__any_null(ctx, op, 2, ids, targets)) return NULL;
    if (targets->ndim != 2 || ids->ndim != 2 || targets->shape[0] != ids->shape[0] ||
        targets->shape[1] != ids->shape[1]) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: ids %s and targets %s: expected the same [B, T]", op,
                   attn__shp(ids), attn__shp(targets));
        return NULL;
    }
    attn_tensor *logits = attn_gpt_logits(ctx, m, ids, NULL);
    if (!logits) return NULL;
    const int64_t N = ids->shape[0] * ids->shape[1];
    attn_tensor *flat = attn_reshape(ctx, logits, 2, (int64_t[]){N, m->cfg.vocab});
    attn_tensor *tflat = attn_reshape(ctx, targets, 1, (int64_t[]){N});
    return attn_cross_entropy(ctx, flat, tflat, ignore_index, 0.0f);
}

/* ---- sampling ------------------------------------------------------------------------ */

/* A candidate token: its unnormalised probability and its id. */
typedef struct cand {
    float p;
    int32_t id;
} cand;

/* Order of candidates: higher probability first, then the smaller id. */
static int by_prob(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->p > y->p) return -1;
    if (x->p < y->p) return 1;
    return (x->id > y->id) - (x->id < y->id);
}

int32_t attn_sample_token(const float *logits, int64_t V, const attn_sample_opts *opts, float u,
                          void *work) {
    if (!logits || V < 1) return -1;
    const attn_sample_opts def = {1.0f, 0, 0.0f, 0, 0};
    const attn_sample_opts *o = opts ? opts : &def;
    const int64_t first = o->first_id > 0 && o->first_id < V ? o->first_id : 0;
    /* Greedy: the arg max, first on ties. */
    int32_t best = (int32_t)first;
    float bv = -INFINITY;
    for (int64_t i = first; i < V; i++)
        if (isfinite(logits[i]) && logits[i] > bv) {
            bv = logits[i];
            best = (int32_t)i;
        }
    if (!(o->temperature > 0.0f) || o->top_k == 1 || bv == -INFINITY) return best;
    cand *c = work ? work : malloc((size_t)V * sizeof *c);
    if (!c) return -1;
    /* p_i = exp((l_i - max) / temperature); sums in double. */
    for (int64_t i = 0; i < V; i++) {
        c[i].p = i >= first && isfinite(logits[i])
                     ? (float)exp(((double)logits[i] - bv) / o->temperature)
                     : 0.0f;
        c[i].id = (int32_t)i;
    }
    /* O(V log V) per token: fine for the vocabularies here. */
    qsort(c, (size_t)V, sizeof *c, by_prob);
    int64_t n = V;
    if (o->top_k > 0 && o->top_k < n) n = o->top_k;
    double sum = 0.0;
    for (int64_t r = 0; r < n; r++) sum += c[r].p;
    if (o->top_p > 0.0f && o->top_p < 1.0f) {
        double cum = 0.0;
        int64_t keep = n;
        for (int64_t r = 0; r < n; r++) {
            cum += c[r].p;
            if (cum >= o->top_p * sum) {
                keep = r + 1;
                break;
            }
        }
        n = keep;
        sum = 0.0;
        for (int64_t r = 0; r < n; r++) sum += c[r].p;
    }
    const double target = (double)u * sum;
    double cum = 0.0;
    int32_t tok = c[n - 1].id;
    for (int64_t r = 0; r < n; r++) {
        cum += c[r].p;
        if (cum > target) {
            tok = c[r].id;
            break;
        }
    }
    if (!work) free(c);
    return tok;
}

/* The logits of the last position of a forward over ids[0 .. n-1] through
 * the cache, copied to row (V floats). */
static attn_status forward_last(attn_ctx *ctx, const attn_gpt *m, const int32_t *ids, int64_t n,
                                attn_kv_cache *cache, float *row) {
    attn_tensor *t = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, n}, ids);
    attn_tensor *logits = attn_gpt_logits(ctx, m, t, cache);
    if (!logits) return attn_ctx_status(ctx) != ATTN_OK ? attn_ctx_status(ctx) : ATTN_ERR_INVALID_ARG;
    const int64_t V = m->cfg.vocab;
    memcpy(row, (const float *)logits->data + (n - 1) * V, (size_t)V * sizeof *row);
    return ATTN_OK;
}

attn_status attn_gpt_generate(attn_ctx *ctx, const attn_gpt *m, const int32_t *prompt,
                              int64_t n_prompt, int64_t n_new, const attn_sample_opts *opts,
                              int32_t *out, float *step_logits) {
    return attn_gpt_generate_stream(ctx, m, prompt, n_prompt, n_new, opts, out, step_logits, NULL, NULL,
                                    NULL);
}

attn_status attn_gpt_generate_stream(attn_ctx *ctx, const attn_gpt *m, const int32_t *prompt,
                                     int64_t n_prompt, int64_t n_new, const attn_sample_opts *opts,
                                     int32_t *out, float *step_logits, attn_gpt_token_fn on_token,
                                     void *user, int64_t *n_done) {
    static const char fn[] = "attn_gpt_generate";
    if (n_done) *n_done = 0;
    if (!ctx || !m || !prompt || (!out && n_new > 0))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (n_prompt < 1 || n_new < 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: n_prompt %lld (>= 1), n_new %lld (>= 0)", fn,
                           (long long)n_prompt, (long long)n_new);
    const int64_t V = m->cfg.vocab, L = m->cfg.ctx_len;
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V)
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: prompt id %d at %lld outside [0, %lld)",
                               fn, prompt[i], (long long)i, (long long)V);
    if (n_new == 0) return ATTN_OK;
    const attn_sample_opts def = {1.0f, 0, 0.0f, 0, 0};
    const attn_sample_opts *o = opts ? opts : &def;
    /* The sequence so far (for refilling the cache) and scratch. */
    const int64_t keep = L / 2 > 0 ? L / 2 : 1;
    int32_t *seq = malloc((size_t)(n_prompt + n_new) * sizeof *seq);
    float *row = malloc((size_t)V * sizeof *row);
    void *work = malloc((size_t)V * (sizeof(float) + sizeof(int32_t))); /* V candidates */
    attn_kv_cache cache;
    memset(&cache, 0, sizeof cache);
    attn_status st = !(seq && row && work) ? attn__error(ATTN_ERR_OOM, "%s: out of memory", fn)
                     : (m->synth || m->sink || m->route) ? ATTN_OK /* no cache: the window is recomputed */
                                             : attn_gpt_cache_init(m, 1, &cache);
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    const size_t mark = attn__arena_mark(ctx);
    if (st == ATTN_OK) {
        memcpy(seq, prompt, (size_t)n_prompt * sizeof *seq);
        int64_t n = n_prompt;
        /* The prompt: its last ctx_len tokens. */
        const int64_t first = n > L ? L : n;
        const int recompute = m->synth || m->sink || m->route;
        st = forward_last(ctx, m, seq + n - first, first, recompute ? NULL : &cache, row);
        for (int64_t i = 0; i < n_new && st == ATTN_OK; i++) {
            if (step_logits) memcpy(step_logits + i * V, row, (size_t)V * sizeof *row);
            const int32_t tok = attn_sample_token(row, V, o, attn_rng_uniform(o->seed, 0, (uint64_t)i), work);
            out[i] = tok;
            seq[n++] = tok;
            if (n_done) *n_done = i + 1;
            if (on_token && on_token(user, tok, i)) break; /* stopped by the caller */
            if (i + 1 == n_new) break;
            attn__arena_rewind(ctx, mark);
            if (recompute) {
                /* the last ctx_len tokens again, at positions 0 .. */
                const int64_t k = n < L ? n : L;
                st = forward_last(ctx, m, seq + n - k, k, NULL, row);
            } else if (cache.layers[0].len >= L) {
                /* Full: restart from the last `keep` tokens at position 0. */
                attn_kv_cache_reset(&cache);
                const int64_t k = keep < n ? keep : n;
                st = forward_last(ctx, m, seq + n - k, k, &cache, row);
            } else {
                st = forward_last(ctx, m, &tok, 1, &cache, row);
            }
        }
        if (st != ATTN_OK && attn_ctx_status(ctx) != ATTN_OK)
            attn__error(st, "%s", attn_ctx_error(ctx));
    }
    attn__arena_rewind(ctx, mark);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    attn_kv_cache_free(&cache);
    free(seq);
    free(row);
    free(work);
    return st;
}

/* ---- files ------------------------------------------------------------------------------ */

static const attn__meta_field meta_fields[ATTN_GPT_META] = {
    ATTN__META_FIELD("gpt.vocab", ATTN__META_I64, attn_gpt_config, vocab),
    ATTN__META_FIELD("gpt.ctx_len", ATTN__META_I64, attn_gpt_config, ctx_len),
    ATTN__META_FIELD("gpt.n_layers", ATTN__META_INT, attn_gpt_config, n_layers),
    ATTN__META_FIELD("gpt.n_heads", ATTN__META_INT, attn_gpt_config, n_heads),
    ATTN__META_FIELD("gpt.n_kv_heads", ATTN__META_INT, attn_gpt_config, n_kv_heads),
    ATTN__META_FIELD("gpt.d_model", ATTN__META_I64, attn_gpt_config, d_model),
    ATTN__META_FIELD("gpt.d_ff", ATTN__META_I64, attn_gpt_config, d_ff),
    ATTN__META_FIELD("gpt.dropout", ATTN__META_FLOAT, attn_gpt_config, dropout),
    ATTN__META_FIELD("gpt.pos", ATTN__META_POS, attn_gpt_config, pos),
    ATTN__META_FIELD("gpt.tied", ATTN__META_FLAG, attn_gpt_config, tied),
    ATTN__META_FIELD("gpt.rope_theta", ATTN__META_FLOAT, attn_gpt_config, rope_theta),
    ATTN__META_FIELD_OPT("gpt.synth", ATTN__META_INT, attn_gpt_config, synth),
    ATTN__META_FIELD_OPT("gpt.synth_fixed", ATTN__META_FLAG, attn_gpt_config, synth_fixed),
    ATTN__META_FIELD_OPT("gpt.mixer", ATTN__META_INT, attn_gpt_config, mixer),
    ATTN__META_FIELD_OPT("gpt.mixer_block", ATTN__META_I64, attn_gpt_config, mixer_block),
    ATTN__META_FIELD_OPT("gpt.mixer_n", ATTN__META_INT, attn_gpt_config, mixer_n),
    ATTN__META_FIELD_OPT("gpt.sparse.kind", ATTN__META_INT, attn_gpt_config, sparse.kind),
    ATTN__META_FIELD_OPT("gpt.sparse.causal", ATTN__META_FLAG, attn_gpt_config, sparse.causal),
    ATTN__META_FIELD_OPT("gpt.sparse.heads", ATTN__META_INT, attn_gpt_config, sparse.heads),
    ATTN__META_FIELD_OPT("gpt.sparse.head_offsets", ATTN__META_FLAG, attn_gpt_config, sparse.head_offsets),
    ATTN__META_FIELD_OPT("gpt.sparse.block", ATTN__META_I64, attn_gpt_config, sparse.block),
    ATTN__META_FIELD_OPT("gpt.sparse.summary", ATTN__META_I64, attn_gpt_config, sparse.summary),
    ATTN__META_FIELD_OPT("gpt.sparse.window", ATTN__META_I64, attn_gpt_config, sparse.window),
    ATTN__META_FIELD_OPT("gpt.sparse.dilation", ATTN__META_I64, attn_gpt_config, sparse.dilation),
    ATTN__META_FIELD_OPT("gpt.sparse.globals", ATTN__META_I64, attn_gpt_config, sparse.globals),
    ATTN__META_FIELD_OPT("gpt.sparse.width", ATTN__META_I64, attn_gpt_config, sparse.width),
    ATTN__META_FIELD_OPT("gpt.sparse.block_h", ATTN__META_I64, attn_gpt_config, sparse.block_h),
    ATTN__META_FIELD_OPT("gpt.sparse.block_w", ATTN__META_I64, attn_gpt_config, sparse.block_w),
    ATTN__META_FIELD_OPT("gpt.sparse.margin_h", ATTN__META_I64, attn_gpt_config, sparse.margin_h),
    ATTN__META_FIELD_OPT("gpt.sparse.margin_w", ATTN__META_I64, attn_gpt_config, sparse.margin_w),
    ATTN__META_FIELD_OPT("gpt.sparse_by_layer", ATTN__META_FLAG, attn_gpt_config, sparse_by_layer),
};

void attn_gpt_config_meta(const attn_gpt_config *c, attn_kv *kv, char *buf) {
    attn__meta_write(meta_fields, ATTN_GPT_META, c, kv, buf);
}

attn_status attn_gpt_config_load(const char *path, attn_gpt_config *cfg) {
    static const char fn[] = "attn_gpt_config_load";
    if (!path || !cfg) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    attn_gpt_config c;
    memset(&c, 0, sizeof c);
    const attn_status st =
        attn__meta_load(fn, "GPT", path, meta_fields, ATTN_GPT_META, &c);
    if (st == ATTN_OK) *cfg = c;
    return st;
}

attn_status attn_gpt_save(const char *path, const attn_gpt *m, const attn_kv *meta, int n_meta) {
    if (!path || !m || (n_meta > 0 && !meta) || n_meta < 0 || n_meta > 64)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_gpt_save: NULL argument or n_meta %d", n_meta);
    attn_kv kv[ATTN_GPT_META + 64];
    char buf[ATTN_GPT_META * 32];
    attn_gpt_config_meta(&m->cfg, kv, buf);
    return attn__meta_save(path, m->params, kv, ATTN_GPT_META, meta, n_meta);
}

attn_status attn_gpt_load(const char *path, attn_params *ps, attn_gpt **out) {
    if (out) *out = NULL;
    if (!path || !ps || !out) return attn__error(ATTN_ERR_INVALID_ARG, "attn_gpt_load: NULL argument");
    attn_gpt_config c;
    attn_status st = attn_gpt_config_load(path, &c);
    if (st != ATTN_OK) return st;
    /* the file must hold what the metadata claims before anything is built:
     * the token embedding [vocab, d_model] and d_model^2 per layer at least */
    st = attn__meta_check_size("attn_gpt_load", path, c.n_layers,
                               attn__meta_mul_add(c.d_model,
                                                  attn__meta_mul_add(c.d_model, c.n_layers, c.vocab),
                                                  0));
    if (st != ATTN_OK) return st;
    /* The file's tensors must match the sizes of its metadata before a model
     * of that size is built (a crafted vocabulary or layer count cannot make
     * attn allocate more than the file holds). */
    if (c.n_layers >= 1 && c.d_model >= 1) {
        const int64_t E = c.d_model, F = c.d_ff > 0 ? c.d_ff : 4 * c.d_model;
        char last[48];
        snprintf(last, sizeof last, "layers.%d.linear1.weight", c.n_layers - 1);
        const attn__meta_shape want[] = {
            {"tok_emb.weight", c.vocab, E}, {last, F, E}, {"pos_emb.weight", c.ctx_len, E}};
        st = attn__meta_check_shapes("attn_gpt_load", path, want, c.pos == ATTN_POS_LEARNED ? 3 : 2);
        if (st != ATTN_OK) return st;
    }
    attn_gpt *m = NULL;
    st = attn_gpt_new(&m, ps, &c, NULL);
    if (st != ATTN_OK) return st;
    st = attn_safetensors_load_params(path, ps, ATTN_ST_ALLOW_UNEXPECTED);
    if (st != ATTN_OK) {
        attn_gpt_free(m);
        return st;
    }
    *out = m;
    return ATTN_OK;
}
