/* test_seq2seq_lstmn.c: the LSTMN encoder-decoder of include/attn/seq2seq.h,
 * fusion shallow and deep (suite "seq2seq_lstmn"; docs/lstmn.md, "The
 * encoder-decoder").
 *
 *   - parity with a PyTorch step loop written from the equations
 *     (tests/fixtures/seq2seq_lstmn.atfx from
 *     tools/make_seq2seq_lstmn_fixtures.py): both fusions, padded sources and
 *     targets, S = 1, A > H, label smoothing: the loss, Bahdanau's attention
 *     weights and the gradient of every parameter, fast and reference
 *     kernels;
 *   - central finite differences of the loss at sampled elements of every
 *     parameter, both fusions (and deep with dropout, masks replayed);
 *   - decoding: greedy output is the argmax path of teacher forcing, and the
 *     alignment rows of greedy and of beam 3 equal the attention weights of
 *     teacher forcing the output sentence alone (the tapes were gathered by
 *     the right parents, row by row, slot by slot); a batch decodes as each
 *     sentence alone;
 *   - configuration errors (the LSTMN needs Bahdanau, one layer, a
 *     unidirectional encoder; an unknown fusion) and the fusion names.
 *
 * Tolerances (|a - b| <= atol + rtol |ref|): PARITY_* float32 attn against
 * float64 torch rounded once; everything passed at 1/10 of them. FD_* as
 * test_seq2seq.c (central differences of the float32 loss, step 1e-2). TF
 * 2e-5: the same log p or weight from another batch shape.
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
#define ARENA_BYTES ((size_t)64 << 20)
#define GUARD_BYTES 16

enum { PAD = 0, BOS = 1, EOS = 2 };

static attn_seq2seq_config lstmn_cfg(attn_s2s_fusion fusion, int64_t V, int64_t E, int64_t H,
                                     int64_t A) {
    attn_seq2seq_config c;
    memset(&c, 0, sizeof c);
    c.fusion = fusion;
    c.src_vocab = c.tgt_vocab = V;
    c.emb_dim = E;
    c.hidden = H;
    c.enc_layers = c.dec_layers = 1;
    c.attention = ATTN_S2S_BAHDANAU;
    c.attn_dim = A;
    c.pad_id = PAD, c.bos_id = BOS, c.eos_id = EOS;
    return c;
}

static attn_seq2seq *new_model(const attn_seq2seq_config *c, attn_params **ps, uint64_t seed) {
    attn_rng rng;
    attn_rng_init(&rng, seed);
    attn_seq2seq *m = NULL;
    *ps = NULL;
    CHECK_OK(attn_params_new(ps));
    if (!*ps) return NULL;
    CHECK_OK(attn_seq2seq_new(&m, *ps, c, &rng));
    return m;
}

/* ==== host-side batches ========================================================== */

typedef struct hbatch {
    int64_t B, S, T;
    int32_t src[64], len[8], tin[64], tout[64];
} hbatch;

static attn_s2s_batch hb_tensors(attn_ctx *ctx, hbatch *h) {
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

/* B random sources (ids in [3, V), lengths in [1, S], row 0 of length S) and
 * targets of lengths in [1, T - 1] (then eos). */
static void hb_random(hbatch *h, int64_t B, int64_t S, int64_t T, int32_t V, attn_rng *rng) {
    memset(h, 0, sizeof *h);
    h->B = B, h->S = S, h->T = T;
    for (int64_t b = 0; b < B; b++) {
        h->len[b] = b == 0 ? (int32_t)S : 1 + (int32_t)attn_rng_next_below(rng, (uint32_t)S);
        for (int64_t s = 0; s < h->len[b]; s++)
            h->src[b * S + s] = 3 + (int32_t)attn_rng_next_below(rng, (uint32_t)(V - 3));
        if (!T) continue;
        const int64_t n = 1 + (int64_t)attn_rng_next_below(rng, (uint32_t)(T - 1));
        h->tin[b * T] = BOS;
        for (int64_t t = 0; t < n; t++) {
            const int32_t y = 3 + (int32_t)attn_rng_next_below(rng, (uint32_t)(V - 3));
            h->tout[b * T + t] = y;
            h->tin[b * T + t + 1] = y;
        }
        h->tout[b * T + n] = EOS;
    }
}

/* The loss (gradients as the context has them); NAN on error. */
static double eval_loss(attn_ctx *ctx, const attn_seq2seq *m, hbatch *h, attn_tensor **w) {
    attn_ctx_reset(ctx);
    attn_s2s_batch b = hb_tensors(ctx, h);
    attn_tensor *loss = attn_seq2seq_loss(ctx, m, &b, 0.0f, w);
    return loss ? (double)attn_f32(loss)[0] : NAN;
}

/* ==== parity with PyTorch ============================================================ */

static void parity_case(const atfx_file *fx, int k, int use_ref) {
    char label[160], tname[256], tag[64], what[256];
    atfx_text(atfx_findf(fx, "c%d.label", k), label, sizeof label);
    snprintf(tname, sizeof tname, "seq2seq_lstmn/parity case %d (%s) [%s]", k, label,
             use_ref ? "ref" : "fast");
    snprintf(tag, sizeof tag, "case %d [%s]", k, use_ref ? "ref" : "fast");
    TEST_BEGIN(tname);
    attn_params *ps = NULL;
    attn_seq2seq *m = NULL;
    attn_ctx *ctx = NULL;
    static const char script[] = "tools/make_seq2seq_lstmn_fixtures.py";
    char n[64];
#define NEED(name, dt, numel) \
    (snprintf(n, sizeof n, "c%d." name, k), test_fx_need(fx, n, dt, numel, script))
    const atfx_tensor *ct = NEED("cfg", ATTN_I32, 8), *src = NEED("src", ATTN_I32, -1);
    const atfx_tensor *len = NEED("src_len", ATTN_I32, -1), *tin = NEED("tgt_in", ATTN_I32, -1);
    const atfx_tensor *tout = NEED("tgt_out", ATTN_I32, -1), *lt = NEED("loss", ATTN_F32, 1);
    const atfx_tensor *wt = NEED("weights", ATTN_F32, -1);
#undef NEED
    if (!ct || !src || !len || !tin || !tout || !lt || !wt) goto out;
    const int32_t *cv = atfx_i32(ct);
    attn_seq2seq_config cfg = lstmn_cfg((attn_s2s_fusion)cv[0], cv[1], cv[3], cv[4], cv[5]);
    cfg.tgt_vocab = cv[2];
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
    attn_tensor *loss = attn_seq2seq_loss(ctx, m, &b, (float)cv[7] / 1000.0f, &w);
    CHECK(loss != NULL, "%s: loss failed: %s", tag, attn_ctx_error(ctx));
    if (!loss) goto out;
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s: forward: %s", tag, attn_last_error());
    snprintf(what, sizeof what, "%s: loss vs torch", tag);
    test_allclose(what, attn_f32(loss), atfx_f32(lt), 1, PARITY_ATOL, PARITY_RTOL);
    CHECK(w && attn_tensor_numel(w) == wt->numel, "%s: weights, torch has %lld values", tag,
          (long long)wt->numel);
    if (w && attn_tensor_numel(w) == wt->numel) {
        snprintf(what, sizeof what, "%s: attention weights vs torch", tag);
        test_allclose(what, attn_f32(w), atfx_f32(wt), wt->numel, PARITY_ATOL, PARITY_RTOL);
    }
    CHECK_OK(attn_backward(ctx, loss));
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s: backward: %s", tag, attn_last_error());
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        const atfx_tensor *g = atfx_findf(fx, "c%d.grad.param.%s", k, p->name);
        CHECK(g && g->numel == attn_tensor_numel(p), "%s: no torch gradient for %s", tag, p->name);
        if (!g || g->numel != attn_tensor_numel(p)) continue;
        snprintf(what, sizeof what, "%s: gradient of %s vs torch", tag, p->name);
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
    snprintf(path, sizeof path, "%s/seq2seq_lstmn.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    TEST_BEGIN("seq2seq_lstmn/parity fixture");
    attn_status st = atfx_load(path, &fx, err, sizeof err);
    CHECK(st == ATTN_OK, "cannot load %s: %s (run tools/make_seq2seq_lstmn_fixtures.py)", path,
          err);
    const atfx_tensor *nc = fx ? atfx_find(fx, "n_cases") : NULL;
    const int n = nc && nc->dtype == ATTN_I32 && nc->numel == 1 ? atfx_i32(nc)[0] : 0;
    CHECK(n >= 4, "%s: %d cases, expected at least 4", path, n);
    int seen[ATTN_S2S_FUSION_COUNT] = {0};
    for (int k = 0; k < n; k++) {
        const atfx_tensor *ct = atfx_findf(fx, "c%d.cfg", k);
        if (ct && ct->dtype == ATTN_I32 && (unsigned)atfx_i32(ct)[0] < ATTN_S2S_FUSION_COUNT)
            seen[atfx_i32(ct)[0]] = 1;
    }
    CHECK(seen[ATTN_S2S_FUSION_SHALLOW] && seen[ATTN_S2S_FUSION_DEEP],
          "%s: needs a shallow and a deep case", path);
    TEST_END();
    for (int k = 0; k < n; k++)
        for (int ref = 0; ref < 2; ref++) parity_case(fx, k, ref);
    atfx_free(fx);
}

/* ==== finite differences ================================================================ */

static void fd_case(attn_s2s_fusion fusion, float dropout, uint64_t seed) {
    char tname[128];
    snprintf(tname, sizeof tname, "seq2seq_lstmn/finite differences %s%s",
             attn_s2s_fusion_name(fusion), dropout > 0.0f ? " dropout" : "");
    TEST_BEGIN(tname);
    attn_seq2seq_config c = lstmn_cfg(fusion, 7, 3, 4, 3);
    c.dropout = dropout;
    attn_params *ps = NULL;
    attn_seq2seq *m = new_model(&c, &ps, seed);
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, 0);
    attn_rng rng;
    attn_rng_init(&rng, seed + 1);
    hbatch h;
    hb_random(&h, 2, 5, 4, 7, &rng);
    if (!m || !ctx) goto out;
    attn_params_zero_grad(ps);
    if (dropout > 0.0f) attn_ctx_set_rng(ctx, 99, 0);
    attn_ctx_reset(ctx);
    attn_s2s_batch b = hb_tensors(ctx, &h);
    attn_tensor *loss = attn_seq2seq_loss(ctx, m, &b, 0.0f, NULL);
    CHECK(loss != NULL, "loss: %s", attn_ctx_error(ctx));
    if (!loss) goto out;
    CHECK_OK(attn_backward(ctx, loss));
    attn_ctx_set_grad_enabled(ctx, 0);
    int probes = 0, big = 0;
    double worst = 0.0;
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        const int64_t n = attn_tensor_numel(p);
        int64_t idx[3] = {0, n - 1, (int64_t)attn_rng_next_below(&rng, (uint32_t)n)};
        if (strstr(p->name, "embedding")) { /* rows of tokens in the batch */
            const int64_t E = p->shape[1];
            const int32_t *ids = strstr(p->name, "encoder") ? h.src : h.tin;
            idx[0] = (int64_t)ids[0] * E;
            idx[1] = (int64_t)ids[1] * E + E - 1;
            idx[2] = (int64_t)ids[2] * E + 1;
        }
        for (int j = 0; j < 3; j++) {
            float *v = attn_f32(p) + idx[j];
            const float v0 = *v, vp = v0 + FD_STEP, vm = v0 - FD_STEP;
            *v = vp;
            if (dropout > 0.0f) attn_ctx_set_rng(ctx, 99, 0);
            const double lp = eval_loss(ctx, m, &h, NULL);
            *v = vm;
            if (dropout > 0.0f) attn_ctx_set_rng(ctx, 99, 0);
            const double lm = eval_loss(ctx, m, &h, NULL);
            *v = v0;
            const double fd = (lp - lm) / ((double)vp - (double)vm), g = p->grad[idx[j]];
            const double err = fabs(fd - g);
            probes++;
            big += fabs(fd) > 1e-3;
            if (err > worst) worst = err;
            CHECK(err <= FD_ATOL + FD_RTOL * fabs(fd),
                  "%s[%lld]: analytic %.7g, finite difference %.7g (error %.3g)", p->name,
                  (long long)idx[j], g, fd, err);
        }
    }
    CHECK(probes >= 40 && big >= 10, "%d probes, %d with |g| > 1e-3 (too few to test)", probes, big);
    if (test__verbose) printf("    %d probes (%d large), worst error %.3g\n", probes, big, worst);
out:
    attn_ctx_free(ctx);
    attn_seq2seq_free(m);
    attn_params_free(ps);
    TEST_END();
}

/* ==== decoding ============================================================================ */

/* Sentence b of h alone with targets y (n tokens; tgt_out = y). */
static void hb_single(hbatch *o, const hbatch *h, int64_t b, const int32_t *y, int64_t n) {
    memset(o, 0, sizeof *o);
    o->B = 1, o->S = h->len[b], o->T = n;
    memcpy(o->src, h->src + b * h->S, sizeof(int32_t) * (size_t)o->S);
    o->len[0] = h->len[b];
    o->tin[0] = BOS;
    for (int64_t t = 0; t < n; t++) {
        o->tout[t] = y[t];
        if (t + 1 < n) o->tin[t + 1] = y[t];
    }
}

static void decode_case(attn_s2s_fusion fusion, uint64_t seed) {
    char tname[128];
    snprintf(tname, sizeof tname, "seq2seq_lstmn/decoding %s (greedy = teacher forcing's argmax, "
             "beam 3's alignment = teacher forcing's)", attn_s2s_fusion_name(fusion));
    TEST_BEGIN(tname);
    enum { V = 9, MAXT = 6, B = 4, S = 5 };
    attn_seq2seq_config c = lstmn_cfg(fusion, V, 5, 6, 4);
    attn_params *ps = NULL;
    attn_seq2seq *m = new_model(&c, &ps, seed);
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    attn_rng rng;
    attn_rng_init(&rng, seed + 3);
    hbatch h;
    hb_random(&h, B, S, 0, V, &rng);
    if (!m || !ctx) goto out;
    /* peaked output distributions that depend on the state, as a trained model's */
    attn_tensor *ow = attn_params_find(ps, "decoder.out.weight");
    for (int64_t i = 0; i < attn_tensor_numel(ow); i++) attn_f32(ow)[i] *= 4.0f;
    attn_ctx_set_grad_enabled(ctx, 0);
    for (int beam = 1; beam <= 3; beam += 2) {
        int32_t ids[B * MAXT], lens[B];
        float align[B * MAXT * S];
        attn_ctx_reset(ctx);
        attn_s2s_batch bt = hb_tensors(ctx, &h);
        attn_decode_config dc = {.beam = beam, .length_alpha = 0.0f, .max_len = MAXT};
        CHECK_OK(attn_seq2seq_decode(ctx, m, &bt, &dc, ids, lens, align));
        CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "guards: %s", attn_last_error());
        if (test__failed_checks) goto out;
        for (int64_t b = 0; b < B; b++) {
            int32_t y[MAXT + 1];
            int64_t n = lens[b];
            for (int64_t t = 0; t < n; t++) y[t] = ids[b * MAXT + t];
            if (n < MAXT) y[n++] = EOS;
            /* teacher forcing the output alone: its attention weights are the
             * alignment rows the decoder reported */
            hbatch o;
            hb_single(&o, &h, b, y, n);
            attn_tensor *w = NULL;
            const double l = eval_loss(ctx, m, &o, &w);
            CHECK(isfinite(l) && w, "teacher forcing: %s", attn_ctx_error(ctx));
            if (!w) goto out;
            for (int64_t t = 0; t < n; t++)
                for (int64_t s = 0; s < S; s++) {
                    const float got = align[(b * MAXT + t) * S + s];
                    const float ref = s < h.len[b] ? attn_f32(w)[t * h.len[b] + s] : 0.0f;
                    CHECK(fabsf(got - ref) <= TF_ATOL,
                          "beam %d sentence %lld: align[%lld][%lld] = %.7g, teacher forcing's "
                          "%.7g",
                          beam, (long long)b, (long long)t, (long long)s, (double)got,
                          (double)ref);
                }
            if (beam != 1) continue;
            /* greedy: each token is the argmax of teacher forcing's log p at
             * its position (bos and pad excluded) */
            for (int64_t t = 0; t < n; t++) {
                double best = -INFINITY, mine = NAN;
                for (int32_t v = 0; v < V; v++) {
                    if (v == PAD || v == BOS) continue;
                    int32_t yy[MAXT + 1];
                    memcpy(yy, y, sizeof yy);
                    yy[t] = v;
                    hb_single(&o, &h, b, yy, t + 1);
                    for (int64_t i = 0; i < t; i++) o.tout[i] = PAD; /* only position t */
                    const double lp = -eval_loss(ctx, m, &o, NULL);
                    if (lp > best) best = lp;
                    if (v == y[t]) mine = lp;
                }
                CHECK(mine >= best - TF_ATOL,
                      "sentence %lld step %lld: decoded %d (log p %.7g), best %.7g",
                      (long long)b, (long long)t, y[t], mine, best);
            }
        }
        /* the batch decodes as each sentence alone */
        for (int64_t b = 0; b < B; b++) {
            hbatch o;
            hb_single(&o, &h, b, NULL, 0);
            int32_t ids1[MAXT], len1;
            attn_ctx_reset(ctx);
            attn_s2s_batch b1 = hb_tensors(ctx, &o);
            CHECK_OK(attn_seq2seq_decode(ctx, m, &b1, &dc, ids1, &len1, NULL));
            CHECK(len1 == lens[b] && !memcmp(ids1, ids + b * MAXT, sizeof(int32_t) * (size_t)len1),
                  "beam %d sentence %lld: alone %d tokens, in the batch %d", beam, (long long)b,
                  len1, lens[b]);
        }
    }
out:
    attn_ctx_free(ctx);
    attn_seq2seq_free(m);
    attn_params_free(ps);
    TEST_END();
}

/* ==== configuration ========================================================================== */

static void test_config(void) {
    TEST_BEGIN("seq2seq_lstmn/configuration errors and names");
    static const struct {
        int field;
        const char *what;
    } bad[] = {{0, "attention general"}, {1, "2 encoder layers"}, {2, "2 decoder layers"},
               {3, "bidirectional"}, {4, "fusion 7"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        attn_seq2seq_config c = lstmn_cfg(ATTN_S2S_FUSION_DEEP, 8, 3, 4, 3);
        switch (bad[i].field) {
        case 0: c.attention = ATTN_S2S_GENERAL; break;
        case 1: c.enc_layers = 2; break;
        case 2: c.dec_layers = 2; break;
        case 3: c.bidirectional = 1; break;
        default: c.fusion = (attn_s2s_fusion)7; break;
        }
        attn_params *ps = NULL;
        attn_seq2seq *m = NULL;
        CHECK_OK(attn_params_new(&ps));
        const attn_status st = attn_seq2seq_new(&m, ps, &c, NULL);
        CHECK(st == ATTN_ERR_INVALID_ARG && m == NULL && strstr(attn_last_error(), "fusion"),
              "%s: status %d, message '%s'", bad[i].what, (int)st, attn_last_error());
        attn_seq2seq_free(m);
        attn_params_free(ps);
    }
    attn_s2s_fusion f = ATTN_S2S_FUSION_NONE;
    CHECK(attn_s2s_fusion_parse("deep", &f) == 0 && f == ATTN_S2S_FUSION_DEEP &&
              attn_s2s_fusion_parse("shallow", &f) == 0 && f == ATTN_S2S_FUSION_SHALLOW &&
              attn_s2s_fusion_parse("Deep", &f) == -1 && attn_s2s_fusion_parse(NULL, &f) == -1,
          "fusion names");
    CHECK(!strcmp(attn_s2s_fusion_name(ATTN_S2S_FUSION_NONE), "none") &&
              !strcmp(attn_s2s_fusion_name((attn_s2s_fusion)9), "?"),
          "fusion name of none / out of range");
    /* the parameters: deep adds decoder.fusion.* and widens the input projection */
    attn_seq2seq_config c = lstmn_cfg(ATTN_S2S_FUSION_SHALLOW, 8, 3, 4, 5);
    attn_params *ps = NULL, *pd = NULL;
    attn_seq2seq *ms = new_model(&c, &ps, 1);
    c.fusion = ATTN_S2S_FUSION_DEEP;
    attn_seq2seq *md = new_model(&c, &pd, 1);
    if (ms && md) {
        CHECK(attn_params_find(ps, "decoder.fusion.weight_r") == NULL &&
                  attn_params_find(pd, "decoder.fusion.weight_r") != NULL &&
                  attn_params_find(ps, "encoder.rnn.weight_ih_l0") == NULL,
              "parameter names");
        attn_tensor *ws = attn_params_find(ps, "decoder.lstmn.weight_in");
        attn_tensor *wd = attn_params_find(pd, "decoder.lstmn.weight_in");
        CHECK(ws && wd && ws->shape[0] == 4 * 4 + 5 && wd->shape[0] == 4 * 4 + 5 + 5 + 4 &&
                  ws->shape[1] == 3 + 4,
              "decoder.lstmn.weight_in shapes");
        /* deep - shallow = the fusion's A*H + A*H + A + H*H and the wider W_in [A + H, E + H] */
        const int64_t extra = 5 * 4 + 5 * 4 + 5 + 4 * 4 + (5 + 4) * (3 + 4) + (5 + 4);
        CHECK(attn_params_numel(pd) - attn_params_numel(ps) == extra,
              "deep has %lld parameters more than shallow, expected %lld",
              (long long)(attn_params_numel(pd) - attn_params_numel(ps)), (long long)extra);
    }
    attn_seq2seq_free(ms);
    attn_seq2seq_free(md);
    attn_params_free(ps);
    attn_params_free(pd);
    TEST_END();
}

void suite_seq2seq_lstmn(void) {
    test_parity();
    fd_case(ATTN_S2S_FUSION_SHALLOW, 0.0f, 11);
    fd_case(ATTN_S2S_FUSION_DEEP, 0.0f, 12);
    fd_case(ATTN_S2S_FUSION_DEEP, 0.3f, 13);
    decode_case(ATTN_S2S_FUSION_SHALLOW, 21);
    decode_case(ATTN_S2S_FUSION_DEEP, 22);
    test_config();
}
