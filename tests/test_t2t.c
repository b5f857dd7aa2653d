/* test_t2t.c: the encoder-decoder Transformer (include/attn/transformer_s2s.h).
 *
 *   - parity with PyTorch (tests/fixtures/t2t.atfx and t2t_c<k>.safetensors
 *     from tools/make_t2t_fixtures.py): a torch.nn model of
 *     TransformerEncoder/DecoderLayers with the same names; the weights are
 *     loaded from torch's state_dict file by name (strict: every parameter,
 *     nothing else), then the teacher-forced logits, the loss and the
 *     gradient of every parameter are compared (post-LN sinusoidal, pre-LN
 *     learned positions with a tied output layer and label smoothing, no
 *     positions; padded sources, an empty target);
 *   - greedy decoding with the KV caches gives the tokens of greedy decoding
 *     by full recomputation (attn_t2t_logits over the growing prefix, argmax
 *     of the last row), and the cross-attention of each step agrees, for
 *     every position kind, grouped-query heads, pre-LN;
 *   - beam search (which reorders the self-attention caches by parent)
 *     finds the best sequence of an exhaustive search scored by teacher
 *     forcing, with and without length normalisation, and the
 *     cross-attention it kept along that sequence is the teacher-forced one;
 *     the decoder's self-attention outputs are scaled up so that its history
 *     matters: with the reorder removed the test fails (checked once by
 *     hand); beam width 1 equals greedy by recomputation;
 *   - padding invariance: each source decoded in a padded batch gives the
 *     tokens of the source decoded alone, and the same alignment rows;
 *   - a tiny model learns to reverse digit strings;
 *   - configuration and batch errors.
 *
 * Tolerances (|a - b| <= atol + rtol |ref|):
 *   PAR_*  float64 torch on the same float32 weights and inputs, rounded once;
 *          attn in float32 through 2+2 blocks. Measured with the tolerances
 *          at 0 (2026-12-03): logits within 2.9e-7, the loss equal,
 *          gradients within 6e-8. Logits and loss 2e-6 + 2e-5 |ref|,
 *          gradients 1e-6 + 1e-4 |ref|. A wrong mask, scale or layer order
 *          moves the logits by 1e-2 or more.
 *   DEC_*  cached vs full recomputation and padded vs alone: the same
 *          kernels over different sizes; alignment rows measured within
 *          6e-8; 1e-6 + 1e-5 |ref|.
 *   TF_ATOL  beam vs exhaustive scores, both recomputed by teacher forcing:
 *          1e-4 on sums of 4 log-probabilities.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixture.h"
#include "test.h"

#define PAR_ATOL 2e-6f
#define PAR_RTOL 2e-5f
#define PAR_GATOL 1e-6f
#define PAR_GRTOL 1e-4f
#define DEC_ATOL 1e-6f
#define DEC_RTOL 1e-5f
#define TF_ATOL 1e-4
#define ARENA_BYTES ((size_t)64 << 20)
#define GUARD_BYTES 16
#define PAD 0
#define BOS 1
#define EOS 2

/* ==== helpers ================================================================= */

static attn_t2t_config base_cfg(int64_t V, int64_t E, int H, attn_pos_kind pos) {
    attn_t2t_config c;
    memset(&c, 0, sizeof c);
    c.src_vocab = c.tgt_vocab = V;
    c.d_model = E;
    c.n_heads = H;
    c.enc_layers = c.dec_layers = 2;
    c.d_ff = 2 * E;
    c.pos = pos;
    c.shaw_clip = 3;
    c.max_len = 32;
    c.pad_id = PAD;
    c.bos_id = BOS;
    c.eos_id = EOS;
    return c;
}

static attn_t2t *new_model(const attn_t2t_config *c, attn_params **ps, uint64_t seed) {
    attn_rng rng;
    attn_rng_init(&rng, seed);
    attn_t2t *m = NULL;
    CHECK_OK(attn_params_new(ps));
    if (*ps) CHECK_OK(attn_t2t_new(&m, *ps, c, &rng));
    return m;
}

/* Scales every parameter by f (sharper distributions: fewer near-ties). */
static void sharpen(attn_params *ps, float f) {
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *t = attn_params_at(ps, i);
        for (int64_t j = 0; j < attn_tensor_numel(t); j++) attn_f32(t)[j] *= f;
    }
}

/* A host batch: B sources of lengths len[b] (random tokens >= 3, pad after). */
typedef struct hsrc {
    int64_t B, S;
    int32_t src[16 * 16], len[16];
} hsrc;

static void random_sources(hsrc *h, int64_t B, const int *lens, int64_t V, attn_rng *rng) {
    memset(h, 0, sizeof *h);
    h->B = B;
    for (int64_t b = 0; b < B; b++) h->S = lens[b] > h->S ? lens[b] : h->S;
    for (int64_t b = 0; b < B; b++) {
        h->len[b] = lens[b];
        for (int64_t s = 0; s < h->S; s++)
            h->src[b * h->S + s] =
                s < lens[b] ? 3 + (int32_t)(attn_rng_next_u32(rng) % (uint32_t)(V - 3)) : PAD;
    }
}

/* Source b of h alone, as a batch of one (tgt_in = tgt_out = the prefix
 * given, or a single bos). */
static attn_s2s_batch one_batch(attn_ctx *ctx, const hsrc *h, int64_t b, const int32_t *tin,
                                int64_t T) {
    attn_s2s_batch bt;
    const int64_t S = h->len[b], ss[2] = {1, S}, ls[1] = {1}, ts[2] = {1, T};
    bt.src = attn_tensor_from(ctx, ATTN_I32, 2, ss, h->src + b * h->S);
    bt.src_len = attn_tensor_from(ctx, ATTN_I32, 1, ls, h->len + b);
    bt.tgt_in = attn_tensor_from(ctx, ATTN_I32, 2, ts, tin);
    bt.tgt_out = attn_tensor_from(ctx, ATTN_I32, 2, ts, tin);
    return bt;
}

static attn_s2s_batch src_batch(attn_ctx *ctx, const hsrc *h) {
    attn_s2s_batch bt;
    memset(&bt, 0, sizeof bt);
    const int64_t ss[2] = {h->B, h->S}, ls[1] = {h->B};
    bt.src = attn_tensor_from(ctx, ATTN_I32, 2, ss, h->src);
    bt.src_len = attn_tensor_from(ctx, ATTN_I32, 1, ls, h->len);
    return bt;
}

/* Row t of teacher-forced logits [1, T, V] as log-probabilities (double). */
static void log_probs(const float *row, int64_t V, double *lp) {
    double mx = -INFINITY, z = 0.0;
    for (int64_t v = 0; v < V; v++) mx = row[v] > mx ? row[v] : mx;
    for (int64_t v = 0; v < V; v++) z += exp((double)row[v] - mx);
    for (int64_t v = 0; v < V; v++) lp[v] = (double)row[v] - mx - log(z);
}

/* ==== parity with PyTorch ====================================================== */

static const atfx_tensor *need(const atfx_file *fx, const char *name) {
    const atfx_tensor *t = atfx_find(fx, name);
    CHECK(t != NULL, "fixture lacks '%s' (regenerate with tools/make_t2t_fixtures.py)", name);
    return t;
}

static void parity_case(const atfx_file *fx, int k) {
    char name[320];
    const atfx_tensor *cfg = atfx_findf(fx, "c%d.cfg", k), *lab = atfx_findf(fx, "c%d.label", k);
    CHECK(cfg && cfg->numel == 12 && lab, "case %d: cfg or label missing", k);
    if (!cfg || cfg->numel != 12 || !lab) return;
    const int32_t *c = atfx_i32(cfg);
    attn_t2t_config mc;
    memset(&mc, 0, sizeof mc);
    mc.src_vocab = c[0];
    mc.tgt_vocab = c[1];
    mc.d_model = c[2];
    mc.n_heads = c[3];
    mc.enc_layers = c[4];
    mc.dec_layers = c[5];
    mc.d_ff = c[6];
    mc.norm_first = c[7];
    mc.activation = c[8] ? ATTN_ACT_GELU : ATTN_ACT_RELU;
    mc.pos = (attn_pos_kind)c[9];
    mc.max_len = c[10];
    mc.tie_output = c[11];
    mc.pad_id = PAD;
    mc.bos_id = BOS;
    mc.eos_id = EOS;
    attn_params *ps = NULL;
    attn_t2t *m = NULL;
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    CHECK_OK(attn_params_new(&ps));
    if (ps) CHECK_OK(attn_t2t_new(&m, ps, &mc, NULL));
    if (!m || !ctx) goto out;
    snprintf(name, sizeof name, "%s/t2t_c%d.safetensors", test_fixture_dir(), k);
    CHECK_OK(attn_safetensors_load_params(name, ps, 0)); /* strict: torch's names, all of them */
    const atfx_tensor *src = need(fx, (snprintf(name, sizeof name, "c%d.src", k), name));
    const atfx_tensor *sl = need(fx, (snprintf(name, sizeof name, "c%d.src_len", k), name));
    const atfx_tensor *ti = need(fx, (snprintf(name, sizeof name, "c%d.tgt_in", k), name));
    const atfx_tensor *to = need(fx, (snprintf(name, sizeof name, "c%d.tgt_out", k), name));
    const atfx_tensor *lg = need(fx, (snprintf(name, sizeof name, "c%d.logits", k), name));
    const atfx_tensor *ls = need(fx, (snprintf(name, sizeof name, "c%d.loss", k), name));
    const atfx_tensor *sm = need(fx, (snprintf(name, sizeof name, "c%d.label_smoothing", k), name));
    if (test__failed_checks) goto out;
    attn_s2s_batch bt;
    bt.src = attn_tensor_from(ctx, ATTN_I32, 2, src->shape, src->data);
    bt.src_len = attn_tensor_from(ctx, ATTN_I32, 1, sl->shape, sl->data);
    bt.tgt_in = attn_tensor_from(ctx, ATTN_I32, 2, ti->shape, ti->data);
    bt.tgt_out = attn_tensor_from(ctx, ATTN_I32, 2, to->shape, to->data);
    attn_tensor *logits = attn_t2t_logits(ctx, m, &bt, NULL);
    CHECK(logits != NULL, "case %d: logits: %s", k, attn_ctx_error(ctx));
    if (!logits) goto out;
    CHECK(attn_tensor_numel(logits) == lg->numel, "case %d: logits have %lld elements, torch %lld",
          k, (long long)attn_tensor_numel(logits), (long long)lg->numel);
    snprintf(name, sizeof name, "t2t case %d logits", k);
    test_allclose(name, attn_f32(logits), atfx_f32(lg), lg->numel, PAR_ATOL, PAR_RTOL);
    attn_ctx_reset(ctx);
    bt.src = attn_tensor_from(ctx, ATTN_I32, 2, src->shape, src->data);
    bt.src_len = attn_tensor_from(ctx, ATTN_I32, 1, sl->shape, sl->data);
    bt.tgt_in = attn_tensor_from(ctx, ATTN_I32, 2, ti->shape, ti->data);
    bt.tgt_out = attn_tensor_from(ctx, ATTN_I32, 2, to->shape, to->data);
    attn_tensor *loss = attn_t2t_loss(ctx, m, &bt, atfx_f32(sm)[0], NULL);
    CHECK(loss != NULL, "case %d: loss: %s", k, attn_ctx_error(ctx));
    if (!loss) goto out;
    snprintf(name, sizeof name, "t2t case %d loss", k);
    test_allclose(name, attn_f32(loss), atfx_f32(ls), 1, PAR_ATOL, PAR_RTOL);
    attn_params_zero_grad(ps);
    CHECK_OK(attn_backward(ctx, loss));
    int n_grads = 0;
    for (int i = 0; i < fx->n; i++) {
        char prefix[32];
        const int pl = snprintf(prefix, sizeof prefix, "c%d.grad.", k);
        if (strncmp(fx->tensors[i].name, prefix, (size_t)pl) != 0) continue;
        n_grads++;
        const char *pname = fx->tensors[i].name + pl;
        attn_tensor *p = attn_params_find(ps, pname);
        CHECK(p != NULL, "case %d: torch parameter '%s' is not in the model", k, pname);
        if (!p) continue;
        CHECK(p->grad != NULL, "case %d: '%s' has no gradient", k, pname);
        if (!p->grad || attn_tensor_numel(p) != fx->tensors[i].numel) continue;
        snprintf(name, sizeof name, "t2t case %d grad %s", k, pname);
        test_allclose(name, p->grad, (const float *)fx->tensors[i].data,
                      fx->tensors[i].numel, PAR_GATOL, PAR_GRTOL);
    }
    CHECK(n_grads == attn_params_count(ps), "case %d: %d torch gradients, %d attn parameters", k,
          n_grads, attn_params_count(ps));
out:
    attn_ctx_free(ctx);
    attn_t2t_free(m);
    attn_params_free(ps);
}

static void test_parity(void) {
    TEST_BEGIN("t2t/parity with torch.nn.Transformer layers (logits, loss, every gradient)");
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/t2t.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        CHECK(0, "cannot load %s: %s (run tools/make_t2t_fixtures.py)", path, err);
    } else {
        const atfx_tensor *n = atfx_find(fx, "n_cases");
        CHECK(n && atfx_i32(n)[0] == 3, "expected 3 cases");
        for (int k = 0; n && k < atfx_i32(n)[0]; k++) parity_case(fx, k);
    }
    atfx_free(fx);
    TEST_END();
}

/* ==== decoding ==================================================================== */

/* Greedy by full recomputation of source b: tokens out[0 .. n) (eos
 * excluded), and the cross-attention rows (mean over layers and heads) of
 * each step, align [maxT, S_b]. Returns n, or -1. */
static int64_t greedy_recompute(attn_ctx *ctx, const attn_t2t *m, const hsrc *h, int64_t b,
                                int64_t maxT, int32_t *out, float *align) {
    const attn_t2t_config *c = attn_t2t_get_config(m);
    const int64_t V = c->tgt_vocab, S = h->len[b], H = c->n_heads;
    const int Ld = c->dec_layers;
    int32_t prefix[64];
    prefix[0] = BOS;
    double *lp = malloc(sizeof(double) * (size_t)V);
    int64_t n = 0;
    const int grad = attn_ctx_grad_enabled(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    for (int64_t t = 0; t < maxT; t++) {
        attn_ctx_reset(ctx);
        attn_s2s_batch bt = one_batch(ctx, h, b, prefix, t + 1);
        attn_tensor *cw[8];
        const attn_t2t_maps maps = {NULL, NULL, cw};
        attn_tensor *lg = attn_t2t_logits(ctx, m, &bt, &maps);
        CHECK(lg != NULL, "recompute: %s", attn_ctx_error(ctx));
        if (!lg) {
            n = -1;
            break;
        }
        log_probs(attn_f32(lg) + t * V, V, lp);
        int64_t best = -1;
        for (int64_t v = 0; v < V; v++) {
            if (v == PAD || v == BOS) continue;
            if (best < 0 || lp[v] > lp[best]) best = v;
        }
        for (int64_t s = 0; s < S; s++) {
            double acc = 0.0;
            for (int l = 0; l < Ld; l++)
                for (int64_t hh = 0; hh < H; hh++)
                    acc += attn_f32(cw[l])[((hh * (t + 1)) + t) * S + s];
            align[t * S + s] = (float)(acc / (double)(Ld * H));
        }
        if (best == EOS) break;
        out[n++] = (int32_t)best;
        prefix[t + 1] = (int32_t)best;
    }
    attn_ctx_set_grad_enabled(ctx, grad);
    free(lp);
    return n;
}

static void cache_case(const char *label, attn_t2t_config c, uint64_t seed) {
    char tname[160];
    snprintf(tname, sizeof tname, "t2t/greedy with KV cache == greedy by recomputation (%s)",
             label);
    TEST_BEGIN(tname);
    enum { B = 3, MAXT = 7 };
    static const int lens[B] = {5, 2, 7};
    attn_params *ps = NULL;
    attn_t2t *m = new_model(&c, &ps, seed);
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    attn_rng rng;
    attn_rng_init(&rng, seed + 1);
    hsrc h;
    random_sources(&h, B, lens, c.src_vocab, &rng);
    int32_t ids[B * MAXT], olen[B], ref[MAXT];
    float *align = calloc((size_t)(B * MAXT * h.S), sizeof(float));
    float *cross = calloc((size_t)(B * MAXT * c.dec_layers * c.n_heads * h.S), sizeof(float));
    float *ralign = calloc((size_t)(MAXT * h.S), sizeof(float));
    float *avg = calloc((size_t)(B * MAXT * h.S), sizeof(float));
    if (!m || !ctx || !align || !cross || !ralign || !avg) goto out;
    sharpen(ps, 2.0f);
    attn_ctx_reset(ctx);
    attn_s2s_batch bt = src_batch(ctx, &h);
    attn_decode_config dc = {.beam = 1, .length_alpha = 0.0f, .max_len = MAXT};
    CHECK_OK(attn_t2t_decode(ctx, m, &bt, &dc, NULL, ids, olen, align, NULL));
    /* the full per-layer, per-head weights average to the same rows */
    attn_ctx_reset(ctx);
    bt = src_batch(ctx, &h);
    int32_t ids2[B * MAXT], olen2[B];
    CHECK_OK(attn_t2t_decode(ctx, m, &bt, &dc, NULL, ids2, olen2, avg, cross));
    CHECK(memcmp(ids, ids2, sizeof ids) == 0 && memcmp(olen, olen2, sizeof olen) == 0,
          "decoding with and without the full weights chose different tokens");
    test_allclose("align from the kept rows vs from the full weights", avg, align,
                  B * MAXT * h.S, 1e-6f, 1e-6f);
    int64_t total = 0;
    for (int64_t b = 0; b < B; b++) {
        const int64_t n = greedy_recompute(ctx, m, &h, b, MAXT, ref, ralign);
        if (n < 0) goto out;
        total += n;
        CHECK(n == olen[b] && memcmp(ref, ids + b * MAXT, sizeof(int32_t) * (size_t)n) == 0,
              "sentence %lld: cached greedy gives %d tokens, recomputation %lld (or others)",
              (long long)b, olen[b], (long long)n);
        const int64_t rows = n < MAXT ? n + 1 : n, S = h.len[b];
        for (int64_t t = 0; t < rows; t++) {
            char what[160];
            snprintf(what, sizeof what, "%s sentence %lld step %lld alignment", label,
                     (long long)b, (long long)t);
            test_allclose(what, align + (b * MAXT + t) * h.S, ralign + t * S, S, DEC_ATOL,
                          DEC_RTOL);
            for (int64_t s = S; s < h.S; s++)
                CHECK(align[(b * MAXT + t) * h.S + s] == 0.0f,
                      "sentence %lld step %lld: weight on padded source position %lld",
                      (long long)b, (long long)t, (long long)s);
        }
    }
    CHECK(total >= 3, "only %lld tokens decoded in all: the test checks too little", (long long)total);
out:
    free(align);
    free(cross);
    free(ralign);
    free(avg);
    attn_ctx_free(ctx);
    attn_t2t_free(m);
    attn_params_free(ps);
    TEST_END();
}

/* sum log p of y[0 .. n) (the last is eos when it ends one) by teacher forcing. */
static double tf_logp(attn_ctx *ctx, const attn_t2t *m, const hsrc *h, int64_t b, const int32_t *y,
                      int64_t n) {
    const int64_t V = attn_t2t_get_config(m)->tgt_vocab;
    int32_t tin[16];
    tin[0] = BOS;
    for (int64_t t = 0; t + 1 < n; t++) tin[t + 1] = y[t];
    attn_ctx_reset(ctx);
    attn_s2s_batch bt = one_batch(ctx, h, b, tin, n);
    attn_tensor *lg = attn_t2t_logits(ctx, m, &bt, NULL);
    if (!lg) return NAN;
    double sum = 0.0, lp[16];
    for (int64_t t = 0; t < n; t++) {
        log_probs(attn_f32(lg) + t * V, V, lp);
        sum += lp[y[t]];
    }
    return sum;
}

static void test_beam_exhaustive(void) {
    TEST_BEGIN("t2t/beam search (cache reordered by parent) vs exhaustive search; width 1 == greedy");
    enum { V = 5, MAXT = 4, B = 8 };
    static const int lens[B] = {3, 5, 1, 4, 2, 6, 3, 5};
    static const double alphas[2] = {0.0, 1.0};
    attn_t2t_config c = base_cfg(V, 8, 2, ATTN_POS_SINUSOIDAL);
    attn_params *ps = NULL;
    attn_t2t *m = new_model(&c, &ps, 41);
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    attn_rng rng;
    attn_rng_init(&rng, 42);
    hsrc h;
    random_sources(&h, B, lens, V, &rng);
    int32_t ids[B * MAXT], olen[B];
    int longer = 0;
    float *cross = calloc((size_t)(B * MAXT * c.dec_layers * c.n_heads * h.S), sizeof(float));
    if (!m || !ctx || !cross) goto out;
    /* a decoder that leans on its own history (strong self-attention
     * outputs), so that a hypothesis continued with another row's cache
     * scores differently */
    for (int l = 0; l < c.dec_layers; l++) {
        char name[96];
        snprintf(name, sizeof name, "decoder.layers.%d.self_attn.out_proj.weight", l);
        attn_tensor *w = attn_params_find(ps, name);
        for (int64_t j = 0; w && j < attn_tensor_numel(w); j++) attn_f32(w)[j] *= 6.0f;
    }
    attn_ctx_set_grad_enabled(ctx, 0);
    float *eos_bias = attn_f32(attn_params_find(ps, "output.bias")) + EOS;
    const float bias0 = *eos_bias;
    for (int e = 0; e < 3; e++)
    for (int ai = 0; ai < 2; ai++) {
        *eos_bias = bias0 - 2.0f * (float)e; /* longer best sequences */
        /* exhaustive: every sequence over {eos, 3, 4} ending at eos, or of MAXT tokens */
        double best[B];
        int32_t best_y[B][MAXT];
        int64_t best_n[B];
        for (int64_t b = 0; b < B; b++) {
            best[b] = -INFINITY;
            best_n[b] = 0;
            int32_t y[MAXT];
            for (int64_t n = 1; n <= MAXT; n++) {
                int64_t combos = 1;
                for (int64_t t = 0; t < n; t++) combos *= 3;
                for (int64_t code = 0; code < combos; code++) {
                    int64_t x = code, ok = 1;
                    for (int64_t t = 0; t < n; t++, x /= 3) y[t] = x % 3 == 0 ? EOS : (int32_t)(2 + x % 3);
                    for (int64_t t = 0; t + 1 < n; t++) ok &= y[t] != EOS;
                    if (!ok || (n < MAXT && y[n - 1] != EOS)) continue;
                    const double sc = tf_logp(ctx, m, &h, b, y, n) / pow((double)n, alphas[ai]);
                    if (sc > best[b]) {
                        best[b] = sc;
                        best_n[b] = n;
                        memcpy(best_y[b], y, sizeof(int32_t) * (size_t)n);
                    }
                }
            }
            longer += best_n[b] > 2;
        }
        attn_ctx_reset(ctx);
        attn_s2s_batch bt = src_batch(ctx, &h);
        attn_decode_config dc = {.beam = 64, .length_alpha = (float)alphas[ai], .max_len = MAXT};
        CHECK_OK(attn_t2t_decode(ctx, m, &bt, &dc, NULL, ids, olen, NULL, cross));
        if (test__failed_checks) goto out;
        for (int64_t b = 0; b < B; b++) {
            int32_t y[MAXT + 1];
            int64_t n = olen[b];
            memcpy(y, ids + b * MAXT, sizeof(int32_t) * (size_t)n);
            if (n < MAXT) y[n++] = EOS;
            /* the cross-attention kept along the chosen hypothesis is that of
             * a teacher-forced pass over it: the self-attention caches were
             * reordered with the hypotheses (a cache left in row order gives
             * the queries another history) */
            int32_t tin[MAXT];
            tin[0] = BOS;
            for (int64_t t = 0; t + 1 < n; t++) tin[t + 1] = y[t];
            attn_ctx_reset(ctx);
            attn_s2s_batch b1 = one_batch(ctx, &h, b, tin, n);
            attn_tensor *cw[2];
            const attn_t2t_maps maps = {NULL, NULL, cw};
            CHECK(attn_t2t_logits(ctx, m, &b1, &maps) != NULL, "%s", attn_ctx_error(ctx));
            if (test__failed_checks) goto out;
            const int64_t Sb = h.len[b], Hh = c.n_heads;
            for (int64_t t = 0; t < n; t++)
                for (int l = 0; l < c.dec_layers; l++)
                    for (int64_t hh = 0; hh < Hh; hh++) {
                        const float *got =
                            cross + (((b * MAXT + t) * c.dec_layers + l) * Hh + hh) * h.S;
                        const float *want = attn_f32(cw[l]) + ((hh * n) + t) * Sb;
                        char what[160];
                        snprintf(what, sizeof what, "sentence %lld step %lld layer %d head %lld",
                                 (long long)b, (long long)t, l, (long long)hh);
                        test_allclose(what, got, want, Sb, DEC_ATOL, DEC_RTOL);
                    }
            const double sc = tf_logp(ctx, m, &h, b, y, n) / pow((double)n, alphas[ai]);
            CHECK(fabs(sc - best[b]) <= TF_ATOL && n == best_n[b] &&
                      memcmp(y, best_y[b], sizeof(int32_t) * (size_t)n) == 0,
                  "eos bias %+g alpha %g sentence %lld: beam score %.7g (length %lld), "
                  "exhaustive %.7g (length %lld)",
                  -2.0 * e, alphas[ai], (long long)b, sc, (long long)n, best[b], (long long)best_n[b]);
        }
    }
    CHECK(longer >= 3, "%d best sequences longer than 2 tokens: the test checks too little",
          longer);
    if (test__verbose) printf("    %d best sequences longer than 2 tokens\n", longer);
    *eos_bias = bias0;
    {
        /* width 1 is greedy by recomputation */
        attn_ctx_reset(ctx);
        attn_s2s_batch bt = src_batch(ctx, &h);
        attn_decode_config dc = {.beam = 1, .length_alpha = 0.6f, .max_len = MAXT};
        CHECK_OK(attn_t2t_decode(ctx, m, &bt, &dc, NULL, ids, olen, NULL, NULL));
        float ralign[MAXT * 8];
        int32_t ref[MAXT];
        for (int64_t b = 0; b < B; b++) {
            const int64_t n = greedy_recompute(ctx, m, &h, b, MAXT, ref, ralign);
            CHECK(n == olen[b] && memcmp(ref, ids + b * MAXT, sizeof(int32_t) * (size_t)n) == 0,
                  "sentence %lld: beam width 1 differs from greedy recomputation", (long long)b);
        }
    }
out:
    free(cross);
    attn_ctx_free(ctx);
    attn_t2t_free(m);
    attn_params_free(ps);
    TEST_END();
}

static void test_padding_invariance(void) {
    TEST_BEGIN("t2t/padding invariance: a padded source decodes as the source alone");
    enum { B = 4, MAXT = 6 };
    static const int lens[B] = {6, 1, 3, 4};
    attn_t2t_config c = base_cfg(12, 16, 4, ATTN_POS_ROPE);
    c.norm_first = 1;
    attn_params *ps = NULL;
    attn_t2t *m = new_model(&c, &ps, 51);
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    attn_rng rng;
    attn_rng_init(&rng, 52);
    hsrc h;
    random_sources(&h, B, lens, c.src_vocab, &rng);
    int32_t ids[B * MAXT], olen[B], ids1[MAXT], olen1[1];
    float align[B * MAXT * 6], align1[MAXT * 6];
    if (!m || !ctx) goto out;
    sharpen(ps, 2.0f);
    for (int beam = 1; beam <= 3; beam += 2) {
        attn_ctx_reset(ctx);
        attn_s2s_batch bt = src_batch(ctx, &h);
        attn_decode_config dc = {.beam = beam, .length_alpha = 0.6f, .max_len = MAXT};
        CHECK_OK(attn_t2t_decode(ctx, m, &bt, &dc, NULL, ids, olen, align, NULL));
        for (int64_t b = 0; b < B; b++) {
            const int32_t t0 = BOS;
            attn_ctx_reset(ctx);
            attn_s2s_batch b1 = one_batch(ctx, &h, b, &t0, 1);
            CHECK_OK(attn_t2t_decode(ctx, m, &b1, &dc, NULL, ids1, olen1, align1, NULL));
            CHECK(olen1[0] == olen[b] &&
                      memcmp(ids1, ids + b * MAXT, sizeof(int32_t) * (size_t)olen1[0]) == 0,
                  "beam %d sentence %lld (length %d of %lld): padded and alone decode differently",
                  beam, (long long)b, lens[b], (long long)h.S);
            for (int64_t t = 0; t < MAXT; t++) {
                char what[160];
                snprintf(what, sizeof what, "beam %d sentence %lld step %lld alignment", beam,
                         (long long)b, (long long)t);
                test_allclose(what, align + (b * MAXT + t) * h.S, align1 + t * lens[b], lens[b],
                              DEC_ATOL, DEC_RTOL);
            }
        }
    }
out:
    attn_ctx_free(ctx);
    attn_t2t_free(m);
    attn_params_free(ps);
    TEST_END();
}

/* ==== learning ===================================================================== */

static void test_learns(void) {
    TEST_BEGIN("t2t/learns to reverse digit strings");
    enum { B = 32, S = 6, T = S + 1, STEPS = 400, HELD = 100, V = 13 };
    attn_t2t_config c = base_cfg(V, 32, 4, ATTN_POS_SINUSOIDAL);
    c.enc_layers = c.dec_layers = 1;
    c.d_ff = 64;
    c.norm_first = 1;
    attn_params *ps = NULL;
    attn_t2t *m = new_model(&c, &ps, 61);
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, 0);
    attn_optim *opt = NULL;
    attn_rng rng;
    attn_rng_init(&rng, 62);
    int32_t *src = malloc(sizeof(int32_t) * HELD * S), *len = malloc(sizeof(int32_t) * HELD);
    int32_t *tin = malloc(sizeof(int32_t) * HELD * T), *tout = malloc(sizeof(int32_t) * HELD * T);
    int32_t ids[HELD * T], olen[HELD];
    double tail = 0.0;
    if (!m || !ctx || !src || !len || !tin || !tout) goto out;
    attn_optim_config oc = {0};
    oc.kind = ATTN_OPTIM_ADAMW;
    oc.lr = 3e-3f;
    CHECK_OK(attn_optim_new(&opt, ps, &oc));
    if (!opt) goto out;
    for (int step = 0; step <= STEPS; step++) {
        const int nb = step == STEPS ? HELD : B;
        for (int b = 0; b < nb; b++) {
            len[b] = 1 + (int32_t)(attn_rng_next_u32(&rng) % S);
            tin[b * T] = BOS;
            for (int t = 0; t < S; t++) src[b * S + t] = PAD;
            for (int t = 0; t < T; t++) tout[b * T + t] = t ? PAD : EOS;
            for (int t = 1; t < T; t++) tin[b * T + t] = PAD;
            for (int t = 0; t < len[b]; t++) src[b * S + t] = 3 + (int32_t)(attn_rng_next_u32(&rng) % 10);
            for (int t = 0; t < len[b]; t++) {
                tout[b * T + t] = src[b * S + len[b] - 1 - t];
                tin[b * T + t + 1] = tout[b * T + t];
            }
            tout[b * T + len[b]] = EOS;
        }
        attn_ctx_reset(ctx);
        const int64_t ss[2] = {nb, S}, ls[1] = {nb}, ts[2] = {nb, T};
        attn_s2s_batch bt = {attn_tensor_from(ctx, ATTN_I32, 2, ss, src),
                             attn_tensor_from(ctx, ATTN_I32, 1, ls, len),
                             attn_tensor_from(ctx, ATTN_I32, 2, ts, tin),
                             attn_tensor_from(ctx, ATTN_I32, 2, ts, tout)};
        if (step == STEPS) {
            attn_decode_config dc = {.beam = 1, .max_len = T};
            CHECK_OK(attn_t2t_decode(ctx, m, &bt, &dc, NULL, ids, olen, NULL, NULL));
            break;
        }
        attn_tensor *loss = attn_t2t_loss(ctx, m, &bt, 0.0f, NULL);
        CHECK(loss != NULL, "step %d: %s", step, attn_ctx_error(ctx));
        if (!loss) goto out;
        attn_params_zero_grad(ps);
        CHECK_OK(attn_backward(ctx, loss));
        attn_clip_grad_norm(ps, 1.0f);
        CHECK_OK(attn_optim_step(opt, attn_lr_warmup_cosine(step, 20, STEPS, 3e-3f, 0.0f)));
        if (step >= STEPS - 20) tail += attn_f32(loss)[0] / 20.0;
    }
    int exact = 0;
    for (int b = 0; b < HELD; b++) {
        int ok = olen[b] == len[b];
        for (int t = 0; ok && t < len[b]; t++) ok = ids[b * T + t] == tout[b * T + t];
        exact += ok;
    }
    CHECK(tail < 0.1, "mean loss of the last 20 steps %.4f, expected < 0.1", tail);
    CHECK(exact >= 90, "exact match %d of %d held-out strings, expected >= 90", exact, HELD);
    if (test__verbose) printf("    loss %.4f, exact match %d/%d\n", tail, exact, HELD);
out:
    free(src);
    free(len);
    free(tin);
    free(tout);
    attn_optim_free(opt);
    attn_ctx_free(ctx);
    attn_t2t_free(m);
    attn_params_free(ps);
    TEST_END();
}

/* ==== names and errors ================================================================= */

static void test_names_and_errors(void) {
    TEST_BEGIN("t2t/parameter names, configuration and batch errors");
    attn_t2t_config c = base_cfg(10, 8, 2, ATTN_POS_LEARNED);
    c.norm_first = 1;
    c.tie_output = 1;
    c.max_len = 4;
    attn_params *ps = NULL;
    attn_t2t *m = new_model(&c, &ps, 71);
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    if (!m || !ctx) goto out;
    static const char *const names[] = {
        "src_embedding.weight", "tgt_embedding.weight", "src_pos_embedding.weight",
        "tgt_pos_embedding.weight", "encoder.layers.1.self_attn.in_proj_weight",
        "encoder.layers.0.linear2.bias", "encoder.norm.weight", "encoder.norm.bias",
        "decoder.layers.1.multihead_attn.out_proj.weight", "decoder.layers.0.norm3.weight",
        "decoder.norm.bias", "output.bias"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        CHECK(attn_params_find(ps, names[i]) != NULL, "parameter '%s' missing", names[i]);
    CHECK(attn_params_find(ps, "output.weight") == NULL, "a tied model has no output.weight");
    /* a learned table of 4 positions: 5 decoding steps do not fit */
    static const int lens[2] = {3, 2};
    attn_rng rng;
    attn_rng_init(&rng, 72);
    hsrc h;
    random_sources(&h, 2, lens, 10, &rng);
    int32_t ids[2 * 5], olen[2];
    attn_s2s_batch bt = src_batch(ctx, &h);
    attn_decode_config dc = {.beam = 1, .max_len = 5};
    CHECK(attn_t2t_decode(ctx, m, &bt, &dc, NULL, ids, olen, NULL, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_ctx_error(ctx), "learned") != NULL,
          "5 steps with 4 learned positions: %s", attn_ctx_error(ctx));
    attn_ctx_reset(ctx);
    bt = src_batch(ctx, &h);
    attn_t2t_align bad = {2};
    dc.max_len = 4;
    CHECK(attn_t2t_decode(ctx, m, &bt, &dc, &bad, ids, olen, NULL, NULL) == ATTN_ERR_INVALID_ARG,
          "alignment layer 2 of 2 accepted");
    attn_ctx_reset(ctx);
    bt = src_batch(ctx, &h);
    attn_i32(bt.src_len)[1] = 0;
    CHECK(attn_t2t_logits(ctx, m, &bt, NULL) == NULL &&
              attn_ctx_status(ctx) != ATTN_OK, "tgt_in missing / src_len 0 accepted");
    /* configurations */
    attn_params *ps2 = NULL;
    CHECK_OK(attn_params_new(&ps2));
    attn_t2t *m2 = NULL;
    attn_t2t_config b = base_cfg(10, 8, 3, ATTN_POS_NONE);
    CHECK(attn_t2t_new(&m2, ps2, &b, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "n_heads") != NULL,
          "d_model 8 with 3 heads: %s", attn_last_error());
    b = base_cfg(3, 8, 2, ATTN_POS_NONE);
    CHECK(attn_t2t_new(&m2, ps2, &b, NULL) == ATTN_ERR_INVALID_ARG, "vocabulary of 3 accepted");
    b = base_cfg(10, 8, 2, ATTN_POS_LEARNED);
    b.max_len = 0;
    CHECK(attn_t2t_new(&m2, ps2, &b, NULL) == ATTN_ERR_INVALID_ARG, "learned without max_len");
    b = base_cfg(10, 8, 2, ATTN_POS_NONE);
    b.eos_id = 10;
    CHECK(attn_t2t_new(&m2, ps2, &b, NULL) == ATTN_ERR_INVALID_ARG, "eos outside the vocabulary");
    attn_t2t_free(m2);
    attn_params_free(ps2);
out:
    attn_ctx_free(ctx);
    attn_t2t_free(m);
    attn_params_free(ps);
    TEST_END();
}

void suite_t2t(void) {
    test_parity();
    attn_t2t_config c = base_cfg(11, 16, 4, ATTN_POS_SINUSOIDAL);
    cache_case("post-LN sinusoidal", c, 11);
    c.pos = ATTN_POS_LEARNED;
    c.norm_first = 1;
    cache_case("pre-LN learned", c, 12);
    c.pos = ATTN_POS_NONE;
    c.tie_output = 1;
    cache_case("pre-LN no positions, tied output", c, 13);
    c = base_cfg(11, 16, 4, ATTN_POS_ROPE);
    cache_case("rope", c, 14);
    c.pos = ATTN_POS_ALIBI;
    cache_case("alibi", c, 15);
    c.pos = ATTN_POS_SHAW;
    cache_case("shaw", c, 16);
    c.pos = ATTN_POS_ROPE;
    c.n_kv_heads = 2;
    cache_case("rope, grouped-query heads 4/2", c, 17);
    c.n_kv_heads = 1;
    c.pos = ATTN_POS_SINUSOIDAL;
    cache_case("sinusoidal, multi-query", c, 18);
    test_beam_exhaustive();
    test_padding_invariance();
    test_learns();
    test_names_and_errors();
}
