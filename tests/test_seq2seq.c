/* test_seq2seq.c: the RNN encoder-decoder of include/attn/seq2seq.h (suite
 * "seq2seq").
 *
 *   - parity with an independent PyTorch model (tests/fixtures/
 *     seq2seq_models.atfx from tools/make_seq2seq_fixtures.py): every
 *     attention kind (bahdanau, concat, dot, general, location, cosine,
 *     local-m, local-p, none), GRU and LSTM, 1 and 2 layers, bidirectional
 *     and not, padded sources and targets, label smoothing: the loss, the
 *     attention weights and the gradient of every parameter; fast and
 *     reference kernels;
 *   - central finite differences of the loss for every attention kind at
 *     sampled elements of every parameter, also with dropout (masks replayed
 *     from the context's RNG; evaluation mode equals no dropout);
 *   - decoding, on partly trained models of a reversal task: greedy output
 *     is the argmax path of teacher forcing (each position's log p over the
 *     vocabulary, from the loss with one target), stops at eos, and max_len
 *     cuts it to its prefix; the alignment rows equal the attention weights
 *     of teacher forcing the output (greedy and beam 4: the state rows were
 *     gathered by the right parents), sum to 1 over the valid source
 *     positions (global kinds and local-m), are 0 on padding and after the
 *     output; beam 4's normalised score is >= greedy's (not a theorem: a
 *     beam can lose greedy's path; it holds on these fixed models); a batch
 *     decodes as each sentence alone; pad and bos are never output;
 *   - beam search against an exhaustive enumeration: a beam wider than the
 *     hypotheses it can hold returns the best sequence, alpha 0 and 1, eos
 *     made likely or unlikely;
 *   - learning: a small model learns to reverse digit strings (AdamW, 300
 *     steps, under a second) and decodes >= 90 of 100 held-out strings
 *     exactly;
 *   - parameter names and shapes, configuration errors, batch errors,
 *     decoding leaves the context's flags as they were and records nothing.
 *
 * Beam 1 is greedy decoding by the header's definition, and the library has
 * one code path for both (the beam search of width 1), so "beam 1 ==
 * greedy" holds by construction; the teacher-forcing checks test that path.
 *
 * Tolerances (|a - b| <= atol + rtol |ref|), each several times the largest
 * error measured with the tolerance set to 0:
 *   PARITY_*  float32 attn against float64 torch rounded once, same float32
 *             inputs and weights. Everything passed at 5e-8 + 2e-6 |ref|
 *             (values) and 2e-8 + 2e-6 |ref| (gradients, |g| up to 0.3);
 *             the tolerances are 10x that. A wrong wiring moves values by
 *             1e-3 or more (checked by mutating seq2seq.c: the bridge reading
 *             layer 0, no input feeding, [h; c] in the combine, Bahdanau's
 *             query from layer 0, a wrong W_ih column split, ...).
 *   FD_*      central differences of the float32 loss with step 1e-2 (the
 *             loss is a float32 mean of per-token terms the cross-entropy op
 *             accumulates in double); measured within 2.4e-5 at |g| up to
 *             0.4, noise of the float32 forward about 1e-5.
 *   TF_ATOL   a log p from one decoding path vs the same log p by teacher
 *             forcing of the sentence alone (other shapes, other float32
 *             roundings); measured within 1e-6. Alignment rows vs teacher
 *             forcing: 1e-5.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "test.h"

#define PARITY_ATOL 5e-7f
#define PARITY_RTOL 2e-5f
#define PARITY_GATOL 2e-7f
#define PARITY_GRTOL 2e-5f
#define FD_STEP 1e-2f
#define FD_ATOL 1e-4
#define FD_RTOL 1e-2
#define TF_ATOL 2e-5
#define TRAIN_STEPS 100 /* partly trained models for the decoding tests */
#define ARENA_BYTES ((size_t)64 << 20)
#define GUARD_BYTES 16

enum { PAD = 0, BOS = 1, EOS = 2 };

/* ==== host-side batches ================================================================ */

typedef struct hbatch {
    int64_t B, S, T; /* T = 0: sources only */
    int32_t *src, *len, *tin, *tout;
} hbatch;

static int hb_alloc(hbatch *h, int64_t B, int64_t S, int64_t T) {
    memset(h, 0, sizeof *h);
    h->B = B, h->S = S, h->T = T;
    h->src = calloc((size_t)(B * S), sizeof(int32_t));
    h->len = calloc((size_t)B, sizeof(int32_t));
    h->tin = calloc((size_t)(B * (T ? T : 1)), sizeof(int32_t));
    h->tout = calloc((size_t)(B * (T ? T : 1)), sizeof(int32_t));
    if (!h->src || !h->len || !h->tin || !h->tout) {
        CHECK(0, "out of memory");
        return -1;
    }
    return 0;
}

static void hb_free(hbatch *h) {
    free(h->src);
    free(h->len);
    free(h->tin);
    free(h->tout);
    memset(h, 0, sizeof *h);
}

/* The batch's tensors in ctx (targets only when T > 0). */
static attn_s2s_batch hb_tensors(attn_ctx *ctx, const hbatch *h) {
    attn_s2s_batch b;
    memset(&b, 0, sizeof b);
    const int64_t ss[2] = {h->B, h->S}, ts[2] = {h->B, h->T};
    b.src = attn_tensor_from(ctx, ATTN_I32, 2, ss, h->src);
    b.src_len = attn_tensor_from(ctx, ATTN_I32, 1, &h->B, h->len);
    if (h->T) {
        b.tgt_in = attn_tensor_from(ctx, ATTN_I32, 2, ts, h->tin);
        b.tgt_out = attn_tensor_from(ctx, ATTN_I32, 2, ts, h->tout);
    }
    return b;
}

/* Random sources (ids in [3, Vs), lengths in [lo, S] with S used by row 0)
 * and, when T > 0, random targets of lengths in [1, T - 1]. */
static int hb_random(hbatch *h, int64_t B, int64_t S, int64_t T, int32_t Vs, int32_t Vt, int lo,
                     attn_rng *rng) {
    if (hb_alloc(h, B, S, T)) return -1;
    for (int64_t b = 0; b < B; b++) {
        const int32_t l =
            b == 0 ? (int32_t)S : lo + (int32_t)attn_rng_next_below(rng, (uint32_t)(S - lo + 1));
        h->len[b] = l;
        for (int64_t s = 0; s < S; s++)
            h->src[b * S + s] =
                s < l ? 3 + (int32_t)attn_rng_next_below(rng, (uint32_t)(Vs - 3)) : PAD;
        if (!T) continue;
        const int32_t n = 1 + (int32_t)attn_rng_next_below(rng, (uint32_t)(T - 1));
        for (int64_t t = 0; t < T; t++) h->tin[b * T + t] = h->tout[b * T + t] = PAD;
        h->tin[b * T] = BOS;
        for (int32_t t = 0; t < n; t++) {
            const int32_t y = 3 + (int32_t)attn_rng_next_below(rng, (uint32_t)(Vt - 3));
            h->tout[b * T + t] = y;
            h->tin[b * T + t + 1] = y;
        }
        h->tout[b * T + n] = EOS;
    }
    return 0;
}

/* ==== configurations ===================================================================== */

/* The Luong options of small_cfg's models (0, 0: Luong's defaults), set by the
 * cases that check the variants, and their suffix for test names. */
static int64_t g_combine_dim;
static int g_no_feed;

static const char *variant(void) {
    static char buf[64];
    if (!g_combine_dim && !g_no_feed) return "";
    snprintf(buf, sizeof buf, " (combine_dim %lld%s)", (long long)g_combine_dim,
             g_no_feed ? ", no input feeding" : "");
    return buf;
}

static attn_seq2seq_config small_cfg(attn_s2s_attention kind, attn_rnn_cell cell, int64_t V,
                                     int64_t E, int64_t H) {
    attn_seq2seq_config c;
    memset(&c, 0, sizeof c);
    c.cell = cell;
    c.src_vocab = c.tgt_vocab = V;
    c.emb_dim = E;
    c.hidden = H;
    c.enc_layers = c.dec_layers = 1;
    c.bidirectional = kind != ATTN_S2S_DOT && kind != ATTN_S2S_COSINE;
    c.attention = kind;
    c.attn_dim = 3;
    c.max_src_len = 12;
    c.local_window = 1;
    c.loc_filters = 2, c.loc_kernel = 3;     /* location-sensitive: small filters */
    c.dv3_key_rate = 0.5f, c.dv3_window = -1; /* dv3: no decoding window (teacher forcing's
                                                 weights; the window has its own test) */
    c.combine_dim = g_combine_dim;
    c.no_input_feed = g_no_feed;
    c.pad_id = PAD, c.bos_id = BOS, c.eos_id = EOS;
    return c;
}

/* A model with random weights (seeded); NULL after a failed check. */
static attn_seq2seq *new_model(const attn_seq2seq_config *c, attn_params **ps, uint64_t seed) {
    attn_rng rng;
    attn_rng_init(&rng, seed);
    attn_seq2seq *m = NULL;
    *ps = NULL;
    CHECK_OK(attn_params_new(ps));
    if (!*ps) return NULL;
    CHECK_OK(attn_seq2seq_new(&m, *ps, c, &rng));
    /* local-p: spread the predicted positions over the sentence */
    attn_tensor *vp = attn_params_find(*ps, "decoder.attn.v_p.weight");
    if (vp)
        for (int64_t i = 0; i < attn_tensor_numel(vp); i++) attn_f32(vp)[i] *= 3.0f;
    return m;
}

/* ==== parity with PyTorch ================================================================= */

static const atfx_tensor *need(const atfx_file *fx, int k, const char *what, attn_dtype dt) {
    const atfx_tensor *t = atfx_findf(fx, "c%d.%s", k, what);
    CHECK(t && t->dtype == dt,
          "fixture lacks c%d.%s of dtype %d (regenerate with tools/make_seq2seq_fixtures.py)", k,
          what, (int)dt);
    return t && t->dtype == dt ? t : NULL;
}

static void parity_case(const atfx_file *fx, int k, int use_ref) {
    char label[160], tname[256], tag[64];
    atfx_text(atfx_findf(fx, "c%d.label", k), label, sizeof label);
    snprintf(tname, sizeof tname, "seq2seq/parity case %d (%s) [%s]", k, label,
             use_ref ? "ref" : "fast");
    snprintf(tag, sizeof tag, "case %d [%s]", k, use_ref ? "ref" : "fast");
    TEST_BEGIN(tname);
    attn_params *ps = NULL;
    attn_seq2seq *m = NULL;
    attn_ctx *ctx = NULL;
    const atfx_tensor *ct = need(fx, k, "cfg", ATTN_I32),
                      *lst = need(fx, k, "label_smoothing", ATTN_F32);
    const atfx_tensor *src = need(fx, k, "src", ATTN_I32), *len = need(fx, k, "src_len", ATTN_I32);
    const atfx_tensor *tin = need(fx, k, "tgt_in", ATTN_I32),
                      *tout = need(fx, k, "tgt_out", ATTN_I32);
    const atfx_tensor *lt = need(fx, k, "loss", ATTN_F32);
    if (!ct || ct->numel != 15 || !lst || !src || !len || !tin || !tout || !lt) goto out;
    const int32_t *cv = atfx_i32(ct);
    attn_seq2seq_config cfg = {.attention = (attn_s2s_attention)cv[0],
                               .cell = (attn_rnn_cell)cv[1],
                               .src_vocab = cv[2],
                               .tgt_vocab = cv[3],
                               .emb_dim = cv[4],
                               .hidden = cv[5],
                               .enc_layers = cv[6],
                               .dec_layers = cv[7],
                               .bidirectional = cv[8],
                               .attn_dim = cv[9],
                               .max_src_len = cv[10],
                               .local_window = cv[11],
                               .pad_id = cv[12],
                               .bos_id = cv[13],
                               .eos_id = cv[14]};
    /* the location-sensitive and dv3 cases: loc_filters, loc_kernel, dv3_key_rate, dv3_window */
    const atfx_tensor *ex = atfx_findf(fx, "c%d.extra", k);
    if (ex && ex->dtype == ATTN_F32 && ex->numel == 4) {
        const float *e = atfx_f32(ex);
        cfg.loc_filters = (int)e[0];
        cfg.loc_kernel = (int)e[1];
        cfg.dv3_key_rate = e[2];
        cfg.dv3_window = (int)e[3];
    }
    CHECK_OK(attn_params_new(&ps));
    if (!ps) goto out;
    CHECK_OK(attn_seq2seq_new(&m, ps, &cfg, NULL));
    if (!m || test_load_torch_params(fx, k, ps, 0, tag) < 0) goto out;
    ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    if (!ctx) goto out;
    attn_ctx_set_use_ref(ctx, use_ref);
    attn_s2s_batch b = {.src = attn_tensor_from(ctx, ATTN_I32, 2, src->shape, src->data),
                        .src_len = attn_tensor_from(ctx, ATTN_I32, 1, len->shape, len->data),
                        .tgt_in = attn_tensor_from(ctx, ATTN_I32, 2, tin->shape, tin->data),
                        .tgt_out = attn_tensor_from(ctx, ATTN_I32, 2, tout->shape, tout->data)};
    attn_params_zero_grad(ps);
    attn_tensor *w = NULL;
    attn_tensor *loss = attn_seq2seq_loss(ctx, m, &b, atfx_f32(lst)[0], &w);
    CHECK(loss != NULL, "%s: loss failed: %s", tag, attn_ctx_error(ctx));
    if (!loss) goto out;
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s: forward: %s", tag, attn_last_error());
    char what[256];
    snprintf(what, sizeof what, "%s: (a) loss vs torch", tag);
    test_allclose(what, attn_f32(loss), atfx_f32(lt), 1, PARITY_ATOL, PARITY_RTOL);
    const atfx_tensor *wt = atfx_findf(fx, "c%d.weights", k);
    if (cfg.attention == ATTN_S2S_NONE) {
        CHECK(w == NULL && wt == NULL, "%s: weights for the no-attention model", tag);
    } else {
        CHECK(w && wt && attn_tensor_numel(w) == wt->numel, "%s: weights %s, torch's %lld values",
              tag, w ? attn_shape_str(w, what, 64) : "NULL", wt ? (long long)wt->numel : -1LL);
        if (w && wt && attn_tensor_numel(w) == wt->numel) {
            snprintf(what, sizeof what, "%s: (a) attention weights vs torch", tag);
            test_allclose(what, attn_f32(w), atfx_f32(wt), wt->numel, PARITY_ATOL, PARITY_RTOL);
        }
    }
    CHECK_OK(attn_backward(ctx, loss));
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s: backward: %s", tag, attn_last_error());
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        const atfx_tensor *g = atfx_findf(fx, "c%d.grad.param.%s", k, p->name);
        CHECK(g && g->numel == attn_tensor_numel(p), "%s: no torch gradient for %s", tag, p->name);
        if (!g || g->numel != attn_tensor_numel(p)) continue;
        snprintf(what, sizeof what, "%s: (b) gradient of %s vs torch", tag, p->name);
        test_allclose(what, p->grad, atfx_f32(g), g->numel, PARITY_GATOL, PARITY_GRTOL);
    }
out:
    attn_ctx_free(ctx);
    attn_seq2seq_free(m);
    attn_params_free(ps);
    TEST_END();
}

static void test_parity(void) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/seq2seq_models.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    TEST_BEGIN("seq2seq/parity fixture");
    attn_status st = atfx_load(path, &fx, err, sizeof err);
    CHECK(st == ATTN_OK, "cannot load %s: %s (run tools/make_seq2seq_fixtures.py)", path, err);
    const atfx_tensor *nc = fx ? atfx_find(fx, "n_cases") : NULL;
    const int n = nc && nc->dtype == ATTN_I32 && nc->numel == 1 ? atfx_i32(nc)[0] : 0;
    CHECK(n >= 10, "%s: %d cases, expected at least 10", path, n);
    /* every attention kind is covered */
    int seen[ATTN_S2S_ATTENTION_COUNT] = {0};
    for (int k = 0; k < n; k++) {
        const atfx_tensor *ct = atfx_findf(fx, "c%d.cfg", k);
        if (ct && ct->dtype == ATTN_I32 && ct->numel >= 1 &&
            (unsigned)atfx_i32(ct)[0] < ATTN_S2S_ATTENTION_COUNT)
            seen[atfx_i32(ct)[0]] = 1;
    }
    for (int a = 0; a < ATTN_S2S_ATTENTION_COUNT; a++)
        CHECK(seen[a], "%s: no case for attention '%s'", path,
              attn_s2s_attention_name((attn_s2s_attention)a));
    TEST_END();
    for (int k = 0; k < n; k++)
        for (int ref = 0; ref < 2; ref++) parity_case(fx, k, ref);
    atfx_free(fx);
}

/* ==== finite differences =================================================================== */

/* The loss of the batch (gradients off); NAN on error. With `support` the
 * attention weights' zero pattern is written there (B*T*S bytes). */
static double eval_loss(attn_ctx *ctx, const attn_seq2seq *m, const hbatch *h,
                        unsigned char *support) {
    attn_ctx_reset(ctx);
    attn_s2s_batch b = hb_tensors(ctx, h);
    attn_tensor *w = NULL;
    attn_tensor *loss = attn_seq2seq_loss(ctx, m, &b, 0.0f, support ? &w : NULL);
    if (!loss) return NAN;
    if (support && w)
        for (int64_t i = 0; i < attn_tensor_numel(w); i++) support[i] = attn_f32(w)[i] != 0.0f;
    return (double)attn_f32(loss)[0];
}

/* Sets the context's RNG back to a fixed point before a forward, so that
 * every evaluation draws the same dropout masks (no-op without dropout). */
static void replay(attn_ctx *ctx, float dropout) {
    if (dropout > 0.0f) attn_ctx_set_rng(ctx, 99, 0);
}

static void fd_case(attn_s2s_attention kind, attn_rnn_cell cell, int dec_layers, float dropout,
                    uint64_t seed) {
    char tname[192];
    snprintf(tname, sizeof tname, "seq2seq/finite differences %s %s%s%s%s",
             attn_s2s_attention_name(kind), cell == ATTN_RNN_LSTM ? "lstm" : "gru",
             dec_layers > 1 ? " 2 decoder layers" : "",
             dropout > 0.0f ? " dropout (2 encoder layers)" : "", variant());
    TEST_BEGIN(tname);
    attn_seq2seq_config c = small_cfg(kind, cell, 7, 3, 4);
    c.dec_layers = dec_layers;
    c.dropout = dropout;
    if (dropout > 0.0f) c.enc_layers = 2;
    attn_params *ps = NULL, *ps0 = NULL;
    attn_seq2seq *m = new_model(&c, &ps, seed), *m0 = NULL;
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, 0);
    hbatch h;
    memset(&h, 0, sizeof h);
    attn_rng rng;
    attn_rng_init(&rng, seed + 1);
    const int64_t B = 2, S = 5, T = 4;
    unsigned char sup0[64], sup[64];
    if (!m || !ctx || hb_random(&h, B, S, T, 7, 7, 2, &rng)) goto out;
    if (dropout > 0.0f) {
        /* dropout acts in training mode only: the evaluation-mode loss is the
         * loss of the same weights without dropout */
        c.dropout = 0.0f;
        m0 = new_model(&c, &ps0, seed);
        if (!m0) goto out;
        replay(ctx, dropout);
        const double l_train = eval_loss(ctx, m, &h, NULL), l_zero = eval_loss(ctx, m0, &h, NULL);
        attn_ctx_set_training(ctx, 0);
        const double l_eval = eval_loss(ctx, m, &h, NULL);
        attn_ctx_set_training(ctx, 1);
        replay(ctx, dropout);
        const double l_again = eval_loss(ctx, m, &h, NULL);
        CHECK(l_eval == l_zero && l_train != l_eval && l_again == l_train,
              "dropout: training %.7g (replayed %.7g), evaluation %.7g, without dropout %.7g",
              l_train, l_again, l_eval, l_zero);
    }
    /* analytic gradients */
    attn_params_zero_grad(ps);
    attn_ctx_reset(ctx);
    replay(ctx, dropout);
    attn_s2s_batch b = hb_tensors(ctx, &h);
    attn_tensor *loss = attn_seq2seq_loss(ctx, m, &b, 0.0f, NULL);
    CHECK(loss != NULL, "loss: %s", attn_ctx_error(ctx));
    if (!loss) goto out;
    CHECK_OK(attn_backward(ctx, loss));
    attn_ctx_set_grad_enabled(ctx, 0);
    const int has_w = kind != ATTN_S2S_NONE;
    replay(ctx, dropout);
    if (has_w && !isfinite(eval_loss(ctx, m, &h, sup0))) goto out;
    int probes = 0, skipped = 0, big = 0;
    double gmax = 0.0;
    double worst = 0.0;
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        const int64_t n = attn_tensor_numel(p);
        /* three elements: the first, the last, one in between (the embedding
         * rows of tokens in the batch: others have no gradient to check) */
        int64_t idx[3] = {0, n - 1, (int64_t)attn_rng_next_below(&rng, (uint32_t)n)};
        if (strstr(p->name, "embedding")) {
            const int64_t E = p->shape[1];
            const int32_t *ids = strstr(p->name, "encoder") ? h.src : h.tin;
            idx[0] = (int64_t)ids[0] * E;
            idx[1] = (int64_t)ids[1] * E + E - 1;
            idx[2] = (int64_t)ids[2] * E + 1;
        }
        for (int j = 0; j < 3; j++) {
            float *v = attn_f32(p) + idx[j];
            const float v0 = *v;
            double fd = NAN;
            for (float step = FD_STEP; step >= FD_STEP / 100.0f; step /= 10.0f) {
                const float vp = v0 + step, vm = v0 - step;
                int moved = 0;
                *v = vp;
                replay(ctx, dropout);
                const double lp = eval_loss(ctx, m, &h, has_w ? sup : NULL);
                if (has_w) moved |= memcmp(sup, sup0, (size_t)(B * T * S)) != 0;
                *v = vm;
                replay(ctx, dropout);
                const double lm = eval_loss(ctx, m, &h, has_w ? sup : NULL);
                if (has_w) moved |= memcmp(sup, sup0, (size_t)(B * T * S)) != 0;
                *v = v0;
                fd = moved ? NAN : (lp - lm) / ((double)vp - (double)vm);
                if (!moved) break; /* a local window moved: the loss jumps, try a smaller step */
            }
            if (isnan(fd)) {
                skipped++;
                continue;
            }
            probes++;
            const double g = p->grad[idx[j]], err = fabs(fd - g);
            if (err > worst) worst = err;
            big += fabs(fd) > 1e-3;
            if (fabs(fd) > gmax) gmax = fabs(fd);
            CHECK(err <= FD_ATOL + FD_RTOL * fabs(fd),
                  "%s[%lld]: analytic %.7g, finite difference %.7g (error %.3g > %.3g)", p->name,
                  (long long)idx[j], g, fd, err, FD_ATOL + FD_RTOL * fabs(fd));
        }
    }
    CHECK(probes >= 20 && skipped <= probes / 4, "%d probes, %d skipped (a window moved)", probes,
          skipped);
    if (test__verbose)
        printf("    %d probes (%d with |g| > 1e-3, largest %.3g), %d skipped, worst error %.3g\n",
               probes, big, gmax, skipped, worst);
out:
    hb_free(&h);
    attn_ctx_free(ctx);
    attn_seq2seq_free(m);
    attn_seq2seq_free(m0);
    attn_params_free(ps);
    attn_params_free(ps0);
    TEST_END();
}

static void test_finite_differences(void) {
    for (int a = 0; a < ATTN_S2S_ATTENTION_COUNT; a++)
        fd_case((attn_s2s_attention)a, ATTN_RNN_GRU, 1, 0.0f, 100 + (uint64_t)a);
    fd_case(ATTN_S2S_BAHDANAU, ATTN_RNN_LSTM, 2, 0.0f, 200);
    fd_case(ATTN_S2S_GENERAL, ATTN_RNN_LSTM, 2, 0.0f, 201);
    fd_case(ATTN_S2S_LOCAL_P, ATTN_RNN_LSTM, 1, 0.0f, 202);
    fd_case(ATTN_S2S_BAHDANAU, ATTN_RNN_GRU, 2, 0.3f, 203);
    fd_case(ATTN_S2S_GENERAL, ATTN_RNN_LSTM, 2, 0.3f, 204);
    /* the Luong options: a wider h~, no input feeding, both (and with dropout,
     * whose path does not read the projected embedding table) */
    g_combine_dim = 6;
    fd_case(ATTN_S2S_GENERAL, ATTN_RNN_GRU, 1, 0.0f, 205);
    g_no_feed = 1;
    fd_case(ATTN_S2S_GENERAL, ATTN_RNN_GRU, 1, 0.0f, 206);
    fd_case(ATTN_S2S_LOCAL_P, ATTN_RNN_LSTM, 2, 0.0f, 207);
    fd_case(ATTN_S2S_CONCAT, ATTN_RNN_GRU, 2, 0.3f, 208);
    g_combine_dim = 0;
    fd_case(ATTN_S2S_DOT, ATTN_RNN_GRU, 1, 0.0f, 209);
    g_no_feed = 0;
}

/* ==== the reversal task =========================================================================
 */

/* Reversal of digit strings of length 3..6: digits are ids 3..12. */
static void reverse_batch(hbatch *h, attn_rng *rng) {
    const int64_t B = h->B, S = h->S, T = h->T;
    for (int64_t b = 0; b < B; b++) {
        const int32_t n = 3 + (int32_t)attn_rng_next_below(rng, (uint32_t)(S - 2));
        h->len[b] = n;
        for (int64_t s = 0; s < S; s++)
            h->src[b * S + s] = s < n ? 3 + (int32_t)attn_rng_next_below(rng, 10) : PAD;
        for (int64_t t = 0; t < T; t++) h->tin[b * T + t] = h->tout[b * T + t] = PAD;
        h->tin[b * T] = BOS;
        for (int32_t t = 0; t < n; t++) {
            const int32_t y = h->src[b * S + (n - 1 - t)];
            h->tout[b * T + t] = y;
            h->tin[b * T + t + 1] = y;
        }
        h->tout[b * T + n] = EOS;
    }
}

/* Trains m for `steps` AdamW steps on batches of h's size (drawn from rng),
 * learning rate warmed up over 20 steps then cosine-decayed from lr to lr/20.
 * Returns the mean loss of the last 20 steps, or NAN after a failed check. */
static double train_reverse(attn_ctx *ctx, attn_seq2seq *m, attn_params *ps, hbatch *h, int steps,
                            float lr, attn_rng *rng) {
    attn_optim *opt = NULL;
    attn_optim_config oc = {.kind = ATTN_OPTIM_ADAMW, .lr = lr, .weight_decay = 0.0f};
    CHECK_OK(attn_optim_new(&opt, ps, &oc));
    if (!opt) return NAN;
    double avg = 0.0;
    const int last = steps < 20 ? steps : 20;
    for (int step = 0; step < steps; step++) {
        reverse_batch(h, rng);
        attn_ctx_reset(ctx);
        attn_params_zero_grad(ps);
        attn_s2s_batch b = hb_tensors(ctx, h);
        attn_tensor *loss = attn_seq2seq_loss(ctx, m, &b, 0.0f, NULL);
        if (!loss || attn_backward(ctx, loss) != ATTN_OK) {
            CHECK(0, "step %d: %s", step, attn_ctx_error(ctx));
            avg = NAN;
            break;
        }
        attn_clip_grad_norm(ps, 1.0f);
        attn_status st = attn_optim_step(opt, attn_lr_warmup_cosine(step, 20, steps, lr, lr / 20));
        CHECK(st == ATTN_OK, "step %d: %s", step, attn_last_error());
        if (step >= steps - last) avg += attn_f32(loss)[0] / last;
    }
    attn_optim_free(opt);
    return avg;
}

/* ==== decoding ================================================================================ */

/* Sentence b of h alone (its source trimmed to its length) with targets
 * tgt_in = [bos, y_0 .. y_{n-2}] and tgt_out = y (n >= 1 tokens). */
static int hb_single(hbatch *o, const hbatch *h, int64_t b, const int32_t *y, int64_t n) {
    const int64_t S = h->len[b];
    if (hb_alloc(o, 1, S, n)) return -1;
    memcpy(o->src, h->src + b * h->S, sizeof(int32_t) * (size_t)S);
    o->len[0] = (int32_t)S;
    o->tin[0] = BOS;
    for (int64_t t = 0; t < n; t++) {
        o->tout[t] = y[t];
        if (t + 1 < n) o->tin[t + 1] = y[t];
    }
    return 0;
}

/* sum_t log p(y_t | y_<t, x_b) by teacher forcing: -(mean loss) * (non-pad
 * targets). Positions whose y_t is PAD are left out (used for single ones). */
static double tf_logp(attn_ctx *ctx, const attn_seq2seq *m, const hbatch *h, int64_t b,
                      const int32_t *y, int64_t n) {
    hbatch o;
    if (hb_single(&o, h, b, y, n)) return NAN;
    int64_t cnt = 0;
    for (int64_t t = 0; t < n; t++) cnt += y[t] != PAD;
    const double l = eval_loss(ctx, m, &o, NULL);
    hb_free(&o);
    return -l * (double)cnt;
}

/* log p(v | y_0 .. y_{t-1}, x_b) for every v at position t. */
static int tf_row(attn_ctx *ctx, const attn_seq2seq *m, const hbatch *h, int64_t b,
                  const int32_t *prefix, int64_t t, int64_t V, double *lp) {
    int32_t y[64];
    if (t + 1 > 64) return -1;
    for (int64_t i = 0; i < t; i++) y[i] = prefix[i];
    y[t] = EOS; /* replaced by v below */
    for (int64_t v = 0; v < V; v++) {
        if (v == PAD) { /* the loss ignores pad targets: log p(pad) is not needed */
            lp[v] = -INFINITY;
            continue;
        }
        /* only position t has a target: tgt_out = [pad .. pad, v]; the inputs
         * still read the prefix */
        hbatch o;
        if (hb_single(&o, h, b, y, t + 1)) return -1;
        for (int64_t i = 0; i < t; i++) o.tout[i] = PAD;
        o.tout[t] = (int32_t)v;
        lp[v] = -eval_loss(ctx, m, &o, NULL);
        hb_free(&o);
        if (isnan(lp[v])) return -1;
    }
    return 0;
}

static double norm_score(double raw, int64_t len, double alpha) {
    return alpha != 0.0 ? raw / pow((double)len, alpha) : raw;
}

/* Sentence b's output as the target sequence it scored: its tokens, then eos
 * when it ended before max_len (an output of max_len tokens has no eos).
 * Returns the sequence's length. */
static int64_t decoded_seq(const int32_t *ids, const int32_t *lens, int64_t b, int max_len,
                           int32_t *y) {
    const int64_t n = lens[b];
    for (int64_t t = 0; t < n; t++) y[t] = ids[b * max_len + t];
    if (n < max_len) {
        y[n] = EOS;
        return n + 1;
    }
    return n;
}

/* Checks sentence b's alignment rows [0, n) of `align` ([max_len, S] per
 * sentence) against the attention weights of teacher forcing y (n tokens):
 * the decoder must have attended with the state of the hypothesis it
 * returned (state rows gathered by parent, align read by parent, local-m's
 * step). */
static void check_align_tf(attn_ctx *ctx, const attn_seq2seq *m, const hbatch *h, int64_t b,
                           const int32_t *y, int64_t n, const float *align, int max_len,
                           const char *what) {
    hbatch o;
    if (hb_single(&o, h, b, y, n)) return;
    attn_ctx_reset(ctx);
    attn_s2s_batch bt = hb_tensors(ctx, &o);
    attn_tensor *w = NULL;
    attn_tensor *loss = attn_seq2seq_loss(ctx, m, &bt, 0.0f, &w);
    const int64_t Sb = o.S;
    hb_free(&o);
    CHECK(loss && w && attn_tensor_numel(w) == n * Sb, "%s: teacher forcing: %s", what,
          attn_ctx_error(ctx));
    if (!loss || !w || attn_tensor_numel(w) != n * Sb) return;
    for (int64_t t = 0; t < n; t++)
        for (int64_t s = 0; s < Sb; s++) {
            const float got = align[((b * max_len) + t) * h->S + s], ref = attn_f32(w)[t * Sb + s];
            if (!(fabsf(got - ref) <= 1e-5f)) {
                CHECK(0,
                      "%s: sentence %lld: align[%lld][%lld] = %.7g, teacher forcing's weight %.7g",
                      what, (long long)b, (long long)t, (long long)s, (double)got, (double)ref);
                return;
            }
        }
}

/* Scales the output layer's weights: a random model's distributions are then
 * peaked and depend on the state, as a trained model's do. */
static void sharpen(attn_params *ps, float f) {
    attn_tensor *w = attn_params_find(ps, "decoder.out.weight");
    for (int64_t i = 0; i < attn_tensor_numel(w); i++) attn_f32(w)[i] *= f;
}

static int is_global(attn_s2s_attention k) { return k != ATTN_S2S_NONE && k != ATTN_S2S_LOCAL_P; }

static void decode_case(attn_s2s_attention kind, attn_rnn_cell cell, int layers, uint64_t seed) {
    char tname[160];
    snprintf(tname, sizeof tname, "seq2seq/decoding %s %s%s%s", attn_s2s_attention_name(kind),
             cell == ATTN_RNN_LSTM ? "lstm" : "gru", layers > 1 ? " 2 layers" : "", variant());
    TEST_BEGIN(tname);
    enum { V = 13, MAXT = 8, B = 6, S = 6 };
    attn_seq2seq_config c = small_cfg(kind, cell, V, 8, 12);
    c.dec_layers = c.enc_layers = layers;
    c.attn_dim = 8;
    attn_params *ps = NULL;
    attn_seq2seq *m = new_model(&c, &ps, seed);
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    hbatch h, train;
    memset(&h, 0, sizeof h);
    memset(&train, 0, sizeof train);
    attn_rng rng;
    attn_rng_init(&rng, seed + 7);
    int32_t ids[B * MAXT], lens[B], ids4[B * MAXT], lens4[B];
    float align[B * MAXT * S], align4[B * MAXT * S];
    /* a partly trained model of the reversal task: its outputs end with eos
     * (about the sources' lengths) and are not all right, so beam search has
     * choices to make */
    if (!m || !ctx || hb_alloc(&h, B, S, S + 1) || hb_alloc(&train, 16, S, S + 1)) goto out;
    if (isnan(train_reverse(ctx, m, ps, &train, TRAIN_STEPS, 1e-2f, &rng))) goto out;
    reverse_batch(&h, &rng);
    for (int64_t b = 0; b < B; b++) { /* lengths 2, 3, 4, 5, 6, 6 */
        h.len[b] = b < 4 ? 2 + (int32_t)b : (int32_t)S;
        for (int64_t s = h.len[b]; s < S; s++) h.src[b * S + s] = PAD;
    }

    attn_ctx_reset(ctx);
    attn_s2s_batch bt = hb_tensors(ctx, &h);
    attn_decode_config g = {.beam = 1, .length_alpha = 0.0f, .max_len = MAXT};
    CHECK_OK(attn_seq2seq_decode(ctx, m, &bt, &g, ids, lens, align));
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "guards: %s", attn_last_error());
    if (test__failed_checks) goto out;
    int ended = 0;
    for (int64_t b = 0; b < B; b++) {
        CHECK(lens[b] >= 0 && lens[b] <= MAXT, "sentence %lld: length %d", (long long)b, lens[b]);
        if (lens[b] < 0 || lens[b] > MAXT) goto out;
        ended += lens[b] < MAXT;
        for (int64_t t = 0; t < MAXT; t++) {
            const int32_t v = ids[b * MAXT + t];
            if (t < lens[b])
                CHECK(v != EOS && v != PAD && v != BOS && v >= 0 && v < V,
                      "sentence %lld: token %lld is %d", (long long)b, (long long)t, v);
            else
                CHECK(v == PAD, "sentence %lld: position %lld after the output is %d, not pad",
                      (long long)b, (long long)t, v);
        }
        /* (1) greedy = the argmax path of teacher forcing (pad and bos are
         * never output), stopping at eos */
        int32_t y[MAXT + 1];
        const int64_t n = decoded_seq(ids, lens, b, MAXT, y);
        for (int64_t t = 0; t < n; t++) {
            double lp[V];
            if (tf_row(ctx, m, &h, b, y, t, V, lp)) {
                CHECK(0, "teacher forcing failed: %s", attn_ctx_error(ctx));
                goto out;
            }
            double best = -INFINITY;
            for (int v = 0; v < V; v++)
                if (v != PAD && v != BOS && lp[v] > best) best = lp[v];
            CHECK(lp[y[t]] >= best - TF_ATOL,
                  "sentence %lld step %lld: decoded %d with log p %.7g, teacher forcing's best "
                  "is %.7g",
                  (long long)b, (long long)t, y[t], lp[y[t]], best);
        }
        /* (2) alignment rows: 0 on padding, sum 1 over the valid positions
         * (global kinds and local-m), zeros after the output (eos's row
         * kept), and the weights of teacher forcing the output */
        for (int64_t t = 0; t < MAXT; t++) {
            const float *row = align + (b * MAXT + t) * S;
            double sum = 0.0, pad = 0.0;
            for (int64_t s = 0; s < S; s++) {
                CHECK(row[s] >= 0.0f, "align[%lld][%lld][%lld] = %g < 0", (long long)b,
                      (long long)t, (long long)s, (double)row[s]);
                if (s < h.len[b])
                    sum += row[s];
                else
                    pad += fabs(row[s]);
            }
            CHECK(pad == 0.0, "sentence %lld row %lld: %g weight on padding", (long long)b,
                  (long long)t, pad);
            if (kind == ATTN_S2S_NONE || t >= n)
                CHECK(sum == 0.0, "sentence %lld row %lld (output length %lld): sum %.7g, not 0",
                      (long long)b, (long long)t, (long long)n, sum);
            else if (is_global(kind))
                CHECK(fabs(sum - 1.0) <= 1e-5, "sentence %lld row %lld: weights sum to %.7g",
                      (long long)b, (long long)t, sum);
            else
                CHECK(sum > 0.0 && sum <= 1.0 + 1e-5, "sentence %lld row %lld: local-p sum %.7g",
                      (long long)b, (long long)t, sum);
        }
        if (kind != ATTN_S2S_NONE) check_align_tf(ctx, m, &h, b, y, n, align, MAXT, "greedy");
    }
    CHECK(ended >= 1, "none of %d outputs ended with eos before max_len (test setup)", B);
    /* (3) max_len cuts greedy outputs to their prefixes (no eos) */
    {
        int32_t ids2[B * 2], lens2[B];
        float align2[B * 2 * S];
        attn_decode_config g2 = {.beam = 1, .max_len = 2};
        attn_ctx_reset(ctx);
        bt = hb_tensors(ctx, &h);
        CHECK_OK(attn_seq2seq_decode(ctx, m, &bt, &g2, ids2, lens2, align2));
        int cut = 0;
        for (int64_t b = 0; b < B; b++) {
            const int32_t want = lens[b] < 2 ? lens[b] : 2;
            cut += lens[b] >= 2;
            CHECK(lens2[b] == want &&
                      memcmp(ids2 + b * 2, ids + b * MAXT, sizeof(int32_t) * (size_t)want) == 0 &&
                      memcmp(align2 + b * 2 * S, align + b * MAXT * S, sizeof(float) * 2 * S) == 0,
                  "sentence %lld: max_len 2 gives length %d, max_len %d gave %d (or other tokens "
                  "or weights)",
                  (long long)b, lens2[b], MAXT, lens[b]);
        }
        CHECK(cut >= 1, "no output was cut by max_len 2 (test setup)");
    }

    /* (4) beam 4: normalised score >= greedy's (both scored by teacher
     * forcing), alignment = teacher forcing's weights */
    const double alpha = 0.7;
    attn_ctx_reset(ctx);
    bt = hb_tensors(ctx, &h);
    attn_decode_config bc = {.beam = 4, .length_alpha = (float)alpha, .max_len = MAXT};
    CHECK_OK(attn_seq2seq_decode(ctx, m, &bt, &bc, ids4, lens4, align4));
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "guards after beam search: %s", attn_last_error());
    if (test__failed_checks) goto out;
    int differ = 0;
    for (int64_t b = 0; b < B; b++) {
        int32_t yg[MAXT + 1], yb[MAXT + 1];
        const int64_t ng = decoded_seq(ids, lens, b, MAXT, yg),
                      nb = decoded_seq(ids4, lens4, b, MAXT, yb);
        const double sg = norm_score(tf_logp(ctx, m, &h, b, yg, ng), ng, alpha),
                     sb = norm_score(tf_logp(ctx, m, &h, b, yb, nb), nb, alpha);
        CHECK(sb >= sg - TF_ATOL, "sentence %lld: beam 4 score %.7g < greedy's %.7g", (long long)b,
              sb, sg);
        differ += ng != nb || memcmp(yg, yb, sizeof(int32_t) * (size_t)ng) != 0;
        for (int64_t t = 0; t < nb; t++)
            CHECK(yb[t] != PAD && yb[t] != BOS, "sentence %lld: beam output %lld is %d",
                  (long long)b, (long long)t, yb[t]);
        if (kind != ATTN_S2S_NONE) check_align_tf(ctx, m, &h, b, yb, nb, align4, MAXT, "beam 4");
        /* (5) the batch decodes as each sentence alone */
        hbatch one;
        if (hb_single(&one, &h, b, yb, 1)) goto out;
        one.T = 0;
        int32_t ids1[MAXT], lens1[1];
        attn_ctx_reset(ctx);
        attn_s2s_batch b1 = hb_tensors(ctx, &one);
        CHECK_OK(attn_seq2seq_decode(ctx, m, &b1, &bc, ids1, lens1, NULL));
        hb_free(&one);
        CHECK(lens1[0] == lens4[b] && memcmp(ids1, ids4 + b * MAXT, sizeof ids1) == 0,
              "sentence %lld: beam 4 decodes differently alone (length %d) and in the batch "
              "(length %d)",
              (long long)b, lens1[0], lens4[b]);
    }
    if (test__verbose)
        printf("    %d of %d outputs ended with eos; beam 4 differs from greedy on %d\n", ended, B,
               differ);
    /* (6) pad and bos are never output, even when they are the likeliest */
    float *bias = attn_f32(attn_params_find(ps, "decoder.out.bias"));
    bias[PAD] += 50.0f;
    bias[BOS] += 50.0f;
    for (int beam = 1; beam <= 4; beam += 3) {
        attn_ctx_reset(ctx);
        bt = hb_tensors(ctx, &h);
        bc.beam = beam;
        CHECK_OK(attn_seq2seq_decode(ctx, m, &bt, &bc, ids4, lens4, NULL));
        for (int64_t i = 0; i < B * MAXT; i++)
            CHECK(ids4[i] != BOS && (ids4[i] != PAD || i % MAXT >= lens4[i / MAXT]),
                  "beam %d: output %lld of sentence %lld is %d with pad and bos likeliest", beam,
                  (long long)(i % MAXT), (long long)(i / MAXT), ids4[i]);
    }
out:
    hb_free(&h);
    hb_free(&train);
    attn_ctx_free(ctx);
    attn_seq2seq_free(m);
    attn_params_free(ps);
    TEST_END();
}

/* The best sequences of an exhaustive enumeration for sentence b under
 * length penalties alpha[0] and alpha[1]: outputs are eos or the content
 * tokens 3..V-1, at most maxT tokens, ending with eos unless maxT long.
 * best[a], y_best[a] (maxT entries) and n_best[a] receive them. */
static void exhaustive_best(attn_ctx *ctx, const attn_seq2seq *m, const hbatch *h, int64_t b,
                            int64_t V, int64_t maxT, const double *alpha, double *best,
                            int32_t (*y_best)[8], int64_t *n_best) {
    const int64_t NC = V - 3;
    best[0] = best[1] = -INFINITY;
    for (int64_t n = 1; n <= maxT; n++) {
        int64_t count = 1;
        for (int64_t i = 0; i < n - 1; i++) count *= NC;
        const int64_t last_choices = n == maxT ? NC + 1 : 1;
        for (int64_t code = 0; code < count * last_choices; code++) {
            int32_t y[8];
            int64_t r = code;
            for (int64_t i = 0; i < n - 1; i++, r /= NC) y[i] = 3 + (int32_t)(r % NC);
            y[n - 1] = n < maxT ? EOS : (r == NC ? EOS : 3 + (int32_t)r);
            const double raw = tf_logp(ctx, m, h, b, y, n);
            for (int a = 0; a < 2; a++) {
                const double sc = norm_score(raw, n, alpha[a]);
                if (sc > best[a]) {
                    best[a] = sc;
                    n_best[a] = n;
                    memcpy(y_best[a], y, sizeof(int32_t) * (size_t)n);
                }
            }
        }
    }
}

/* A beam wide enough to keep every live hypothesis must return the best
 * sequence of an exhaustive enumeration. With NC = 3 content tokens and
 * max_len 4, the beam holds at most NC^3 = 27 live plus 1 + NC + NC^2 = 13
 * finished hypotheses before the last step: a beam of 64 drops none. The
 * model's eos bias walks a list, so that the best sequences range from eos
 * alone to max_len tokens; the setup must produce, somewhere, an alpha 0
 * best longer than eos alone and different best sequences under alpha 0 and
 * alpha 1. */
static void exhaustive_case(attn_s2s_attention kind, attn_rnn_cell cell, uint64_t seed) {
    char tname[96];
    snprintf(tname, sizeof tname, "seq2seq/beam vs exhaustive search %s %s",
             attn_s2s_attention_name(kind), cell == ATTN_RNN_LSTM ? "lstm" : "gru");
    TEST_BEGIN(tname);
    enum { V = 6, MAXT = 4, B = 3, S = 5, NB = 6 };
    static const double alphas[2] = {0.0, 1.0};
    static const float eos_bias[NB] = {1.0f, 0.0f, -1.0f, -2.0f, -4.0f, -8.0f};
    attn_seq2seq_config c = small_cfg(kind, cell, V, 4, 6);
    attn_params *ps = NULL;
    attn_seq2seq *m = new_model(&c, &ps, seed);
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    hbatch h;
    memset(&h, 0, sizeof h);
    attn_rng rng;
    attn_rng_init(&rng, seed + 3);
    int32_t ids[B * MAXT], lens[B], best_y[B][2][8];
    int64_t best_n[B][2];
    double best[B][2];
    int differ = 0, longer = 0;
    if (!m || !ctx || hb_random(&h, B, S, 0, V, V, 2, &rng)) goto out;
    sharpen(ps, 3.0f);
    float *bias = attn_f32(attn_params_find(ps, "decoder.out.bias"));
    const float bias0 = bias[EOS];
    for (int e = 0; e < NB; e++) {
        bias[EOS] = bias0 + eos_bias[e];
        for (int64_t b = 0; b < B; b++) {
            exhaustive_best(ctx, m, &h, b, V, MAXT, alphas, best[b], best_y[b], best_n[b]);
            differ += best_n[b][0] != best_n[b][1] ||
                      memcmp(best_y[b][0], best_y[b][1], sizeof(int32_t) * (size_t)best_n[b][0]);
            longer += best_n[b][0] > 1;
        }
        for (int ai = 0; ai < 2; ai++) {
            attn_ctx_reset(ctx);
            attn_s2s_batch bt = hb_tensors(ctx, &h);
            attn_decode_config bc = {
                .beam = 64, .length_alpha = (float)alphas[ai], .max_len = MAXT};
            CHECK_OK(attn_seq2seq_decode(ctx, m, &bt, &bc, ids, lens, NULL));
            if (test__failed_checks) goto out;
            for (int64_t b = 0; b < B; b++) {
                int32_t yb[MAXT + 1];
                const int64_t nb = decoded_seq(ids, lens, b, MAXT, yb);
                const double sb = norm_score(tf_logp(ctx, m, &h, b, yb, nb), nb, alphas[ai]);
                CHECK(fabs(sb - best[b][ai]) <= TF_ATOL && nb == best_n[b][ai] &&
                          memcmp(yb, best_y[b][ai], sizeof(int32_t) * (size_t)nb) == 0,
                      "eos bias %+g alpha %g sentence %lld: beam score %.7g (length %lld), "
                      "exhaustive best %.7g (length %lld) or another sequence",
                      (double)eos_bias[e], alphas[ai], (long long)b, sb, (long long)nb, best[b][ai],
                      (long long)best_n[b][ai]);
            }
        }
    }
    CHECK(differ >= 1 && longer >= 1,
          "%d sentences where alpha 0 and 1 choose differently, %d where alpha 0's best is "
          "longer than eos alone: expected >= 1 each (test setup)",
          differ, longer);
    if (test__verbose)
        printf("    %d choices differ between alpha 0 and 1, %d alpha 0 choices longer than eos\n",
               differ, longer);
out:
    hb_free(&h);
    attn_ctx_free(ctx);
    attn_seq2seq_free(m);
    attn_params_free(ps);
    TEST_END();
}

/* Deep Voice 3's decoding window: every output row of the returned
 * hypothesis (greedy and beam 3) puts its largest weight in [p, p + W), p the
 * previous row's argmax (0 first), and nothing outside the window; the
 * windowless decoding of the same model differs (the window is in effect). */
static void dv3_window_case(uint64_t seed) {
    TEST_BEGIN("seq2seq/dv3 decoding window");
    enum { V = 13, MAXT = 8, B = 6, S = 6, W = 2 };
    attn_seq2seq_config c = small_cfg(ATTN_S2S_DV3, ATTN_RNN_GRU, V, 8, 12);
    c.attn_dim = 8;
    c.dv3_window = W;
    attn_params *ps = NULL;
    attn_seq2seq *m = new_model(&c, &ps, seed);
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    hbatch h, train;
    memset(&h, 0, sizeof h);
    memset(&train, 0, sizeof train);
    attn_rng rng;
    attn_rng_init(&rng, seed + 7);
    int32_t ids[B * MAXT], lens[B];
    float align[B * MAXT * S];
    if (!m || !ctx || hb_alloc(&h, B, S, S + 1) || hb_alloc(&train, 16, S, S + 1)) goto out;
    if (isnan(train_reverse(ctx, m, ps, &train, TRAIN_STEPS, 1e-2f, &rng))) goto out;
    reverse_batch(&h, &rng);
    for (int64_t b = 0; b < B; b++) {
        h.len[b] = b < 4 ? 2 + (int32_t)b : (int32_t)S;
        for (int64_t s = h.len[b]; s < S; s++) h.src[b * S + s] = PAD;
    }
    int rows_seen = 0;
    for (int beam = 1; beam <= 3; beam += 2) {
        attn_ctx_reset(ctx);
        attn_s2s_batch bt = hb_tensors(ctx, &h);
        attn_decode_config g = {.beam = beam, .length_alpha = 0.6f, .max_len = MAXT};
        CHECK_OK(attn_seq2seq_decode(ctx, m, &bt, &g, ids, lens, align));
        for (int64_t b = 0; b < B; b++) {
            const int64_t n = lens[b] < MAXT ? lens[b] + 1 : MAXT; /* eos's row kept */
            int64_t p = 0;
            for (int64_t t = 0; t < n; t++) {
                const float *row = align + (b * MAXT + t) * S;
                int64_t best = 0;
                double out_w = 0.0;
                for (int64_t s = 0; s < S; s++) {
                    if (row[s] > row[best]) best = s;
                    if (s < p || s >= p + W) out_w += fabs(row[s]);
                }
                CHECK(out_w == 0.0 && best >= p && best < p + W,
                      "beam %d sentence %lld row %lld: argmax %lld, window [%lld, %lld), %g "
                      "outside",
                      beam, (long long)b, (long long)t, (long long)best, (long long)p,
                      (long long)(p + W), out_w);
                p = best;
                rows_seen++;
            }
        }
    }
    CHECK(rows_seen >= B, "only %d rows checked", rows_seen);
out:
    hb_free(&h);
    hb_free(&train);
    attn_ctx_free(ctx);
    attn_seq2seq_free(m);
    attn_params_free(ps);
    TEST_END();
}

static void test_decoding(void) {
    dv3_window_case(330);
    for (int a = 0; a < ATTN_S2S_ATTENTION_COUNT; a++)
        decode_case((attn_s2s_attention)a, ATTN_RNN_GRU, 1, 300 + (uint64_t)a);
    decode_case(ATTN_S2S_BAHDANAU, ATTN_RNN_LSTM, 2, 320);
    decode_case(ATTN_S2S_LOCAL_M, ATTN_RNN_LSTM, 2, 321);
    g_combine_dim = 10, g_no_feed = 1; /* the Luong options: h~ of 10, no input feeding */
    decode_case(ATTN_S2S_GENERAL, ATTN_RNN_GRU, 1, 322);
    decode_case(ATTN_S2S_LOCAL_P, ATTN_RNN_LSTM, 2, 323);
    g_combine_dim = 10, g_no_feed = 0;
    decode_case(ATTN_S2S_CONCAT, ATTN_RNN_GRU, 1, 324);
    g_combine_dim = 0;
    exhaustive_case(ATTN_S2S_BAHDANAU, ATTN_RNN_GRU, 400);
    exhaustive_case(ATTN_S2S_GENERAL, ATTN_RNN_LSTM, 401);
    exhaustive_case(ATTN_S2S_NONE, ATTN_RNN_LSTM, 402);
}

/* ==== learning =================================================================================
 */

static void learn_case(attn_s2s_attention kind) {
    char tname[96];
    snprintf(tname, sizeof tname, "seq2seq/learns to reverse digit strings (%s)",
             attn_s2s_attention_name(kind));
    TEST_BEGIN(tname);
    enum { B = 32, S = 6, T = S + 1, STEPS = 300, HELD = 100 };
    attn_seq2seq_config c = small_cfg(kind, ATTN_RNN_GRU, 13, 16, 32);
    c.attn_dim = 32;
    attn_params *ps = NULL;
    attn_seq2seq *m = new_model(&c, &ps, 500 + (uint64_t)kind);
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, 0);
    hbatch h, test;
    memset(&h, 0, sizeof h);
    memset(&test, 0, sizeof test);
    attn_rng rng;
    attn_rng_init(&rng, 77);
    if (!m || !ctx || hb_alloc(&h, B, S, T) || hb_alloc(&test, HELD, S, T)) goto out;
    const double t0 = attn_monotonic_s();
    const double avg = train_reverse(ctx, m, ps, &h, STEPS, 1e-2f, &rng);
    /* held-out strings (the generator's later draws; a string seen in training
     * is possible but rare: 10^3 + ... + 10^6 strings) */
    reverse_batch(&test, &rng);
    int32_t ids[HELD * T], lens[HELD];
    attn_ctx_reset(ctx);
    attn_s2s_batch tb = hb_tensors(ctx, &test);
    attn_decode_config g = {.beam = 1, .max_len = T};
    CHECK_OK(attn_seq2seq_decode(ctx, m, &tb, &g, ids, lens, NULL));
    int exact = 0;
    for (int64_t b = 0; b < HELD; b++) {
        int ok = lens[b] == test.len[b];
        for (int64_t t = 0; ok && t < lens[b]; t++) ok = ids[b * T + t] == test.tout[b * T + t];
        exact += ok;
    }
    const double secs = attn_monotonic_s() - t0;
    CHECK(avg < 0.05, "mean loss of the last 20 steps %.4f, expected < 0.05", avg);
    CHECK(exact >= 90, "exact match %d of %d held-out strings, expected >= 90", exact, HELD);
    if (test__verbose) printf("    loss %.4f, exact match %d/%d, %.2f s\n", avg, exact, HELD, secs);
out:
    hb_free(&h);
    hb_free(&test);
    attn_ctx_free(ctx);
    attn_seq2seq_free(m);
    attn_params_free(ps);
    TEST_END();
}

/* ==== names, configuration and errors ================================================= */

static void test_names_and_errors(void) {
    TEST_BEGIN("seq2seq/names and parameters");
    for (int a = 0; a < ATTN_S2S_ATTENTION_COUNT; a++) {
        attn_s2s_attention k = ATTN_S2S_NONE;
        const char *nm = attn_s2s_attention_name((attn_s2s_attention)a);
        CHECK(attn_s2s_attention_parse(nm, &k) == 0 && k == (attn_s2s_attention)a,
              "parse(name(%d) = '%s') gave %d", a, nm, (int)k);
    }
    attn_s2s_attention k = ATTN_S2S_NONE;
    CHECK(attn_s2s_attention_parse("luong", &k) == -1 && attn_s2s_attention_parse(NULL, &k) == -1,
          "unknown names must be rejected");
    CHECK(strcmp(attn_s2s_attention_name(ATTN_S2S_ATTENTION_COUNT), "?") == 0,
          "name of a bad kind");
    /* the parameters of a Luong LSTM model, in order */
    attn_seq2seq_config c = small_cfg(ATTN_S2S_LOCAL_P, ATTN_RNN_LSTM, 11, 5, 7);
    c.attn_dim = 0;
    attn_params *ps = NULL;
    attn_seq2seq *m = new_model(&c, &ps, 1);
    static const char *const names[] = {"encoder.embedding.weight",
                                        "encoder.rnn.weight_ih_l0",
                                        "encoder.rnn.weight_hh_l0",
                                        "encoder.rnn.bias_ih_l0",
                                        "encoder.rnn.bias_hh_l0",
                                        "encoder.rnn.weight_ih_l0_reverse",
                                        "encoder.rnn.weight_hh_l0_reverse",
                                        "encoder.rnn.bias_ih_l0_reverse",
                                        "encoder.rnn.bias_hh_l0_reverse",
                                        "bridge.weight",
                                        "bridge.bias",
                                        "decoder.embedding.weight",
                                        "decoder.rnn.weight_ih_l0",
                                        "decoder.rnn.weight_hh_l0",
                                        "decoder.rnn.bias_ih_l0",
                                        "decoder.rnn.bias_hh_l0",
                                        "decoder.attn.W_a.weight",
                                        "decoder.attn.W_p.weight",
                                        "decoder.attn.v_p.weight",
                                        "decoder.combine.weight",
                                        "decoder.out.weight",
                                        "decoder.out.bias"};
    const int n = (int)(sizeof names / sizeof names[0]);
    if (m) {
        CHECK(attn_params_count(ps) == n, "%d parameters, expected %d", attn_params_count(ps), n);
        for (int i = 0; i < n && i < attn_params_count(ps); i++)
            CHECK(strcmp(attn_params_at(ps, i)->name, names[i]) == 0,
                  "parameter %d is '%s', not '%s'", i, attn_params_at(ps, i)->name, names[i]);
        /* shapes that carry the wiring: input feeding, combine, output, local-p's A = H */
        const attn_tensor *wi = attn_params_find(ps, "decoder.rnn.weight_ih_l0"),
                          *wc = attn_params_find(ps, "decoder.combine.weight"),
                          *wo = attn_params_find(ps, "decoder.out.weight"),
                          *wp = attn_params_find(ps, "decoder.attn.W_p.weight");
        CHECK(wi && wi->shape[0] == 28 && wi->shape[1] == 5 + 7, "decoder weight_ih_l0 shape");
        CHECK(wc && wc->shape[0] == 7 && wc->shape[1] == 14 + 7, "combine shape");
        CHECK(wo && wo->shape[0] == 11 && wo->shape[1] == 7, "out shape");
        CHECK(wp && wp->shape[0] == 7, "W_p shape (attn_dim 0 selects hidden)");
        CHECK(attn_seq2seq_get_config(m)->attn_dim == 7, "resolved attn_dim %lld",
              (long long)attn_seq2seq_get_config(m)->attn_dim);
    }
    attn_seq2seq_free(m);
    attn_params_free(ps);
    /* the Luong options: h~ of combine_dim, and without input feeding the
     * decoder cell reads the embedding alone */
    for (int feed = 0; feed < 2; feed++) {
        c = small_cfg(ATTN_S2S_GENERAL, ATTN_RNN_GRU, 11, 5, 7);
        c.combine_dim = 9;
        c.no_input_feed = !feed;
        m = new_model(&c, &ps, 4);
        if (m) {
            const attn_tensor *wi = attn_params_find(ps, "decoder.rnn.weight_ih_l0"),
                              *wc = attn_params_find(ps, "decoder.combine.weight"),
                              *wo = attn_params_find(ps, "decoder.out.weight");
            CHECK(wi && wi->shape[0] == 21 && wi->shape[1] == 5 + (feed ? 9 : 0),
                  "input feeding %d: decoder weight_ih_l0 shape", feed);
            CHECK(wc && wc->shape[0] == 9 && wc->shape[1] == 14 + 7, "combine shape (combine_dim)");
            CHECK(wo && wo->shape[0] == 11 && wo->shape[1] == 9, "out shape (combine_dim)");
            CHECK(attn_seq2seq_get_config(m)->combine_dim == 9 &&
                      attn_seq2seq_get_config(m)->no_input_feed == !feed,
                  "config combine_dim %lld, no_input_feed %d",
                  (long long)attn_seq2seq_get_config(m)->combine_dim,
                  attn_seq2seq_get_config(m)->no_input_feed);
        }
        attn_seq2seq_free(m);
        attn_params_free(ps);
    }
    c = small_cfg(ATTN_S2S_GENERAL, ATTN_RNN_GRU, 11, 5, 7);
    m = new_model(&c, &ps, 5);
    CHECK(m && attn_seq2seq_get_config(m)->combine_dim == 7, "combine_dim 0 selects hidden");
    attn_seq2seq_free(m);
    attn_params_free(ps);
    /* Bahdanau: the context feeds the cell and the output */
    c = small_cfg(ATTN_S2S_BAHDANAU, ATTN_RNN_GRU, 11, 5, 7);
    m = new_model(&c, &ps, 2);
    if (m) {
        const attn_tensor *wi = attn_params_find(ps, "decoder.rnn.weight_ih_l0"),
                          *wo = attn_params_find(ps, "decoder.out.weight");
        CHECK(wi && wi->shape[1] == 5 + 14 && wo && wo->shape[1] == 7 + 14,
              "bahdanau input and output sizes");
        CHECK(attn_params_find(ps, "decoder.combine.weight") == NULL, "bahdanau has no combine");
    }
    attn_seq2seq_free(m);
    attn_params_free(ps);
    TEST_END();

    TEST_BEGIN("seq2seq/configuration errors");
    CHECK_OK(attn_params_new(&ps));
    struct {
        const char *what, *needle;
        attn_seq2seq_config c;
    } bad[9];
    for (int i = 0; i < 9; i++) bad[i].c = small_cfg(ATTN_S2S_GENERAL, ATTN_RNN_GRU, 9, 4, 5);
    bad[0].what = "dot with a bidirectional encoder", bad[0].needle = "bidirectional";
    bad[0].c.attention = ATTN_S2S_DOT, bad[0].c.bidirectional = 1;
    bad[1].what = "vocabulary of 3", bad[1].needle = "vocab", bad[1].c.tgt_vocab = 3;
    bad[2].what = "pad == eos", bad[2].needle = "pad_id", bad[2].c.eos_id = PAD;
    bad[3].what = "eos outside the vocabulary", bad[3].needle = "eos_id", bad[3].c.eos_id = 9;
    bad[4].what = "local-m without a window", bad[4].needle = "local_window";
    bad[4].c.attention = ATTN_S2S_LOCAL_M, bad[4].c.local_window = 0;
    bad[5].what = "location without max_src_len", bad[5].needle = "max_src_len";
    bad[5].c.attention = ATTN_S2S_LOCATION, bad[5].c.max_src_len = 0;
    bad[6].what = "dropout 1", bad[6].needle = "dropout", bad[6].c.dropout = 1.0f;
    bad[7].what = "0 decoder layers", bad[7].needle = "dec_layers", bad[7].c.dec_layers = 0;
    bad[8].what = "negative combine_dim", bad[8].needle = "combine_dim", bad[8].c.combine_dim = -1;
    for (int i = 0; ps && i < 9; i++) {
        m = NULL;
        attn_status st = attn_seq2seq_new(&m, ps, &bad[i].c, NULL);
        CHECK(st == ATTN_ERR_INVALID_ARG && m == NULL && strstr(attn_last_error(), bad[i].needle) &&
                  strstr(attn_last_error(), "attn_seq2seq_new"),
              "%s: status %s, message '%s'", bad[i].what, attn_status_str(st), attn_last_error());
        attn_seq2seq_free(m);
    }
    attn_params_free(ps);
    TEST_END();

    TEST_BEGIN("seq2seq/batch and decode errors");
    c = small_cfg(ATTN_S2S_BAHDANAU, ATTN_RNN_GRU, 9, 4, 5);
    m = new_model(&c, &ps, 3);
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, 0);
    hbatch h;
    memset(&h, 0, sizeof h);
    attn_rng rng;
    attn_rng_init(&rng, 5);
    if (m && ctx && !hb_random(&h, 2, 4, 3, 9, 9, 1, &rng)) {
        /* a source length outside [1, S] */
        h.len[1] = 5;
        attn_ctx_reset(ctx);
        attn_s2s_batch b = hb_tensors(ctx, &h);
        CHECK(attn_seq2seq_loss(ctx, m, &b, 0.0f, NULL) == NULL &&
                  attn_ctx_status(ctx) == ATTN_ERR_INVALID_ARG &&
                  strstr(attn_ctx_error(ctx), "src_len[1]"),
              "length 5 > S: %s", attn_ctx_error(ctx));
        h.len[1] = 2;
        /* targets of another batch size */
        attn_ctx_reset(ctx);
        b = hb_tensors(ctx, &h);
        const int64_t sh[2] = {3, 3};
        b.tgt_out = attn_tensor_new(ctx, ATTN_I32, 2, sh);
        CHECK(attn_seq2seq_loss(ctx, m, &b, 0.0f, NULL) == NULL &&
                  attn_ctx_status(ctx) == ATTN_ERR_SHAPE && strstr(attn_ctx_error(ctx), "tgt_out"),
              "tgt_out [3,3]: %s", attn_ctx_error(ctx));
        /* a token outside the vocabulary */
        h.tin[1] = 9;
        attn_ctx_reset(ctx);
        b = hb_tensors(ctx, &h);
        CHECK(attn_seq2seq_loss(ctx, m, &b, 0.0f, NULL) == NULL &&
                  attn_ctx_status(ctx) == ATTN_ERR_INVALID_ARG,
              "token 9: %s", attn_ctx_error(ctx));
        h.tin[1] = 3;
        /* decode: beam 0, max_len 0; the context's flags are restored */
        int32_t ids[8], lens[2];
        attn_ctx_reset(ctx);
        b = hb_tensors(ctx, &h);
        attn_decode_config dc = {.beam = 0, .max_len = 4};
        CHECK(attn_seq2seq_decode(ctx, m, &b, &dc, ids, lens, NULL) == ATTN_ERR_INVALID_ARG &&
                  strstr(attn_ctx_error(ctx), "beam"),
              "beam 0: %s", attn_ctx_error(ctx));
        attn_ctx_reset(ctx);
        b = hb_tensors(ctx, &h);
        dc.beam = 2, dc.max_len = 0;
        CHECK(attn_seq2seq_decode(ctx, m, &b, &dc, ids, lens, NULL) == ATTN_ERR_INVALID_ARG,
              "max_len 0: %s", attn_ctx_error(ctx));
        attn_ctx_reset(ctx);
        b = hb_tensors(ctx, &h);
        dc.max_len = 4;
        attn_ctx_set_training(ctx, 1);
        CHECK_OK(attn_seq2seq_decode(ctx, m, &b, &dc, ids, lens, NULL));
        CHECK(attn_ctx_training(ctx) == 1 && attn_ctx_grad_enabled(ctx) == 1,
              "decode changed the context's training or gradient flags");
        CHECK(attn_ctx_tape_size(ctx) == 0, "decode recorded %d tape nodes",
              attn_ctx_tape_size(ctx));
    }
    hb_free(&h);
    attn_ctx_free(ctx);
    attn_seq2seq_free(m);
    attn_params_free(ps);
    TEST_END();
}

void suite_seq2seq(void) {
    test_names_and_errors();
    test_parity();
    test_finite_differences();
    test_decoding();
    learn_case(ATTN_S2S_BAHDANAU);
    learn_case(ATTN_S2S_GENERAL);
}
