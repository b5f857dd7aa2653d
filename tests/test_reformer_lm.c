/* test_reformer_lm.c: the Reformer language model (include/attn/reformer_lm.h).
 *
 * The training step (reversible forward, chunked output layer and loss,
 * reversible backward that recomputes the layers, embedding backward) must
 * give the loss and every parameter gradient of the same function recorded
 * non-reversibly on the tape (attn_reformer_lm_loss), with LSH attention (2
 * rounds), chunked feed-forward, a ragged output chunk, ignored targets and
 * dropout; its activation memory must not grow with depth while the tape's
 * does; the same with rotary query-keys (config.rope). Plus evaluation
 * determinism, generation, the rotary model's relative positions, files
 * (the rope metadata, and files written before it) and the error paths.
 */
#include <math.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "test.h"

enum { RB = 2, RT = 20, RV = 11 };

static int g_rope; /* small_config: config.rope (1: rotary alone, 2: rotary on 2 of the 4 dims of a head
                      and learned positions), theta 100 */

static attn_reformer_lm_config small_config(int layers, float dropout) {
    attn_reformer_lm_config c;
    memset(&c, 0, sizeof c);
    c.vocab = RV;
    c.ctx_len = 24;
    c.d_model = 8;
    c.d_ff = 12;
    c.n_layers = layers;
    c.n_heads = 2;
    c.n_hashes = 2;
    c.n_buckets = 4;
    c.chunk_len = 4;
    c.ff_chunk = 5;
    c.out_chunk = 7; /* 20 = 7 + 7 + 6: a ragged last chunk */
    c.dropout = dropout;
    c.rope = g_rope;
    c.rope_theta = g_rope ? 100.0f : 0.0f;
    c.rope_dims = g_rope == 2 ? 2 : 0;
    return c;
}

/* A model with weights N(0, 0.3^2) (large enough for the gradients to matter). */
static attn_reformer_lm *small_model(attn_params **ps, int layers, float dropout) {
    attn_reformer_lm *m = NULL;
    attn_reformer_lm_config c = small_config(layers, dropout);
    CHECK_OK(attn_params_new(ps));
    if (!*ps) return NULL;
    attn_rng rng;
    attn_rng_init(&rng, 11);
    CHECK_OK(attn_reformer_lm_new(&m, *ps, &c, &rng));
    for (int i = 0; m && i < attn_params_count(*ps); i++) attn_init_normal(attn_params_at(*ps, i), 0.3f, &rng);
    return m;
}

static void batch(int32_t *ids, int32_t *tg) {
    for (int i = 0; i < RB * RT; i++) {
        ids[i] = (int32_t)((i * 7 + 3) % RV);
        tg[i] = (int32_t)((i * 5 + 1) % RV);
    }
    for (int t = 0; t < 5; t++) tg[t] = -1; /* ignored targets in row 0 */
    tg[RT + 9] = -1;
}

static float *grads(attn_params *ps, int64_t *n) {
    *n = attn_params_numel(ps);
    float *g = calloc((size_t)*n, sizeof *g);
    int64_t o = 0;
    for (int i = 0; g && i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        const int64_t k = attn_tensor_numel(p);
        if (p->grad) memcpy(g + o, p->grad, sizeof(float) * (size_t)k);
        o += k;
    }
    return g;
}

/* loss and gradients, reversible (rev 1) or on the tape (rev 0); the arena peak */
static size_t run_once(int layers, float dropout, int rev, double *loss, float **g, int64_t *ng) {
    attn_params *ps = NULL;
    attn_reformer_lm *m = small_model(&ps, layers, dropout);
    attn_ctx *ctx = test_ctx_new(32u << 20, 1, 0);
    size_t peak = 0;
    *g = NULL;
    if (!m || !ctx) goto out;
    int32_t ids[RB * RT], tg[RB * RT];
    batch(ids, tg);
    const attn_reformer_lm_run run = {0, 1234};
    attn_ctx_set_rng(ctx, 5, 1000);
    attn_params_zero_grad(ps);
    if (rev) {
        int64_t count = 0;
        CHECK_OK(attn_reformer_lm_train_step(ctx, m, ids, tg, RB, RT, -1, &run, loss, &count));
        CHECK(count == RB * RT - 6, "counted %lld targets, expected %d", (long long)count, RB * RT - 6);
    } else {
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){RB, RT}, ids);
        attn_tensor *tt = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){RB, RT}, tg);
        attn_tensor *l = attn_reformer_lm_loss(ctx, m, ti, tt, -1, &run);
        CHECK(l != NULL, "plain loss: %s", attn_ctx_error(ctx));
        if (l) {
            CHECK_OK(attn_backward(ctx, l));
            *loss = attn_f32(l)[0];
        }
    }
    peak = attn_ctx_arena_peak(ctx);
    *g = grads(ps, ng);
out:
    attn_ctx_free(ctx);
    attn_reformer_lm_free(m);
    attn_params_free(ps);
    return peak;
}

static void reversible_equals_plain(void) {
    for (int d = 0; d < 4; d++) {
        const float drop = d == 1 ? 0.1f : 0.0f;
        g_rope = d < 2 ? 0 : d - 1;
        char name[200];
        snprintf(name, sizeof name,
                 "reformer_lm: training step (reversible, chunked output) = the tape, loss and every gradient "
                 "(2 layers, dropout %g%s)", (double)drop,
                 g_rope == 1 ? ", rotary query-keys" : g_rope == 2 ? ", learned positions and 2 of 4 dims rotary" : "");
        TEST_BEGIN(name);
        double lr = 0, lp = 0;
        float *gr = NULL, *gp = NULL;
        int64_t nr = 0, np = 0;
        run_once(2, drop, 1, &lr, &gr, &nr);
        run_once(2, drop, 0, &lp, &gp, &np);
        CHECK(isfinite(lr) && lr > 0.5, "loss %g", lr);
        CHECK(fabs(lr - lp) <= 1e-5 + 1e-5 * fabs(lp), "loss reversible %.9g vs tape %.9g", lr, lp);
        if (gr && gp && nr == np) {
            double norm = 0;
            for (int64_t i = 0; i < np; i++) norm += (double)gp[i] * gp[i];
            CHECK(norm > 1e-4, "the gradient is not trivially small (norm^2 %g)", norm);
            test_allclose("parameter gradients reversible vs tape", gr, gp, np, 1e-5f, 1e-4f);
        }
        free(gr);
        free(gp);
        g_rope = 0;
        TEST_END();
    }
}

/* Logits of ids under model m (2 rounds, seed 7), copied to out [n * RV]. */
static int logits_of(attn_reformer_lm *m, const int32_t *ids, int64_t n, float *out) {
    attn_ctx *ctx = test_ctx_new(16u << 20, 1, 0);
    int ok = 0;
    if (ctx) {
        const attn_reformer_lm_run r = {0, 7};
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, n}, ids);
        attn_tensor *lg = ti ? attn_reformer_lm_logits(ctx, m, ti, &r) : NULL;
        if (lg) memcpy(out, attn_f32(lg), sizeof(float) * (size_t)(n * RV));
        ok = lg != NULL;
        CHECK(ok, "logits: %s", attn_ctx_error(ctx));
    }
    attn_ctx_free(ctx);
    return ok;
}

static void rope_model(void) {
    TEST_BEGIN("reformer_lm: rotary query-keys: no position table, the rotation reaches the logits, files old and new");
    attn_params *ps = NULL;
    g_rope = 1;
    attn_reformer_lm *m = small_model(&ps, 2, 0.0f);
    g_rope = 0;
    char dir[512] = "", path[600] = "", old[600] = "";
    if (m) {
        CHECK(!m->pos_emb, "rope: no learned position table");
        CHECK(attn_params_count(ps) == 1 + 2 * ATTN_REFORMER_LM_W + 4, "%d parameters", attn_params_count(ps));
        /* the rotation enters the logits: another base changes every position from 2 on; positions 0
           and 1 see a single key (0: itself; 1: position 0, self masked), whose softmax weight is 1
           whatever its logit, so their logits cannot change */
        int32_t ids[12] = {3, 5, 7, 2, 9, 4, 1, 8, 6, 10, 0, 3};
        float a[12 * RV], b[12 * RV];
        int ok = logits_of(m, ids, 12, a);
        m->cfg.rope_theta = 3.0f;
        ok = ok && logits_of(m, ids, 12, b);
        m->cfg.rope_theta = 100.0f;
        if (ok) {
            test_allclose("positions 0 and 1 under bases 100 and 3", b, a, 2 * RV, 1e-5f, 1e-5f);
            int differ = 1;
            for (int t = 2; t < 12; t++) {
                float d = 0.0f;
                for (int k = 0; k < RV; k++) d = fmaxf(d, fabsf(a[t * RV + k] - b[t * RV + k]));
                differ &= d > 1e-4f;
            }
            CHECK(differ, "the base of the rotation changes the logits of every position t >= 2");
        }
        /* files: the configuration round-trips; a file without the rope keys reads as learned */
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/attn_test_rflm_XXXXXX", base && base[0] ? base : "/tmp");
        CHECK(mkdtemp(dir) != NULL, "mkdtemp");
        snprintf(path, sizeof path, "%s/rope.safetensors", dir);
        snprintf(old, sizeof old, "%s/old.safetensors", dir);
        attn_kv kv[ATTN_REFORMER_LM_META];
        char buf[ATTN_REFORMER_LM_META * 32];
        attn_reformer_lm_config_meta(&m->cfg, kv, buf);
        CHECK(!strcmp(kv[ATTN_REFORMER_LM_META - 3].key, "reformer.rope") &&
                  !strcmp(kv[ATTN_REFORMER_LM_META - 3].value, "1") &&
                  !strcmp(kv[ATTN_REFORMER_LM_META - 2].key, "reformer.rope_theta"),
              "the entries reformer.rope = 1, reformer.rope_theta, reformer.rope_dims");
        CHECK_OK(attn_safetensors_save_params(path, ps, kv, ATTN_REFORMER_LM_META));
        attn_params *ps2 = NULL;
        attn_reformer_lm *m2 = NULL;
        CHECK_OK(attn_params_new(&ps2));
        CHECK_OK(attn_reformer_lm_load(path, ps2, &m2));
        if (m2) {
            CHECK(m2->cfg.rope == 1 && m2->cfg.rope_theta == 100.0f && !m2->pos_emb, "rope %d theta %g",
                  m2->cfg.rope, (double)m2->cfg.rope_theta);
            float c[12 * RV];
            if (logits_of(m2, ids, 12, c)) test_allclose("loaded model's logits", c, a, 12 * RV, 0.0f, 0.0f);
        }
        attn_reformer_lm_free(m2);
        attn_params_free(ps2);
        /* a file written before the rope keys existed: a learned-positions model, 13 entries */
        attn_params *ps3 = NULL;
        attn_reformer_lm *m3 = NULL;
        attn_reformer_lm_config lc = small_config(2, 0.0f);
        CHECK_OK(attn_params_new(&ps3));
        attn_rng rng;
        attn_rng_init(&rng, 3);
        CHECK_OK(attn_reformer_lm_new(&m3, ps3, &lc, &rng));
        if (m3) {
            attn_reformer_lm_config_meta(&m3->cfg, kv, buf);
            CHECK_OK(attn_safetensors_save_params(old, ps3, kv, 13));
        }
        attn_reformer_lm_free(m3);
        attn_params_free(ps3);
        m3 = NULL;
        CHECK_OK(attn_params_new(&ps3));
        CHECK_OK(attn_reformer_lm_load(old, ps3, &m3));
        CHECK(m3 && !m3->cfg.rope && m3->pos_emb, "an older file loads as learned positions");
        attn_reformer_lm_free(m3);
        attn_params_free(ps3);
        /* a rope file whose metadata claims learned positions lacks pos_emb: refused */
        attn_reformer_lm_config_meta(&m->cfg, kv, buf);
        CHECK_OK(attn_safetensors_save_params(old, ps, kv, 13));
        m3 = NULL;
        CHECK_OK(attn_params_new(&ps3));
        CHECK(attn_reformer_lm_load(old, ps3, &m3) != ATTN_OK && !m3, "rope weights read as learned: refused");
        attn_params_free(ps3);
        remove(path);
        remove(old);
        rmdir(dir);
    }
    attn_reformer_lm_free(m);
    attn_params_free(ps);
    TEST_END();
}

static void memory_flat(void) {
    TEST_BEGIN("reformer_lm: training-step activation memory flat from 2 to 8 layers (the tape's grows)");
    double l;
    float *g = NULL;
    int64_t n;
    size_t peak[2][2];
    const int depth[2] = {2, 8};
    for (int d = 0; d < 2; d++)
        for (int rev = 0; rev < 2; rev++) {
            peak[d][rev] = run_once(depth[d], 0.0f, rev, &l, &g, &n);
            free(g);
        }
    CHECK(peak[1][1] <= peak[0][1] + 8192, "reversible: %zu bytes at 2 layers, %zu at 8", peak[0][1], peak[1][1]);
    CHECK(peak[1][0] > 2 * peak[0][0], "tape: %zu bytes at 2 layers, %zu at 8 (expected growth)", peak[0][0],
          peak[1][0]);
    TEST_END();
}

static void eval_and_generate(void) {
    TEST_BEGIN("reformer_lm: logits deterministic per seed, rounds changeable, T = 1, generation replays");
    attn_params *ps = NULL;
    attn_reformer_lm *m = small_model(&ps, 2, 0.0f);
    attn_ctx *ctx = test_ctx_new(16u << 20, 1, 0);
    if (m && ctx) {
        int32_t ids[RB * RT], tg[RB * RT];
        batch(ids, tg);
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){RB, RT}, ids);
        const attn_reformer_lm_run r2 = {0, 7}, r8 = {8, 7};
        attn_tensor *a = attn_reformer_lm_logits(ctx, m, ti, &r2), *b = attn_reformer_lm_logits(ctx, m, ti, &r2);
        attn_tensor *c = attn_reformer_lm_logits(ctx, m, ti, &r8);
        CHECK(a && b && c, "logits: %s", attn_ctx_error(ctx));
        if (a && b && c) {
            CHECK(a->ndim == 3 && a->shape[0] == RB && a->shape[1] == RT && a->shape[2] == RV, "logits shape");
            CHECK(!memcmp(attn_f32(a), attn_f32(b), sizeof(float) * RB * RT * RV), "same seed, same logits");
            /* position 0 sees only itself whatever the hashing: rounds cannot change it */
            test_allclose("position 0 with 2 and 8 rounds", attn_f32(c), attn_f32(a), RV, 1e-5f, 1e-5f);
            int differ = 0;
            for (int i = RV; i < RB * RT * RV; i++) differ |= attn_f32(a)[i] != attn_f32(c)[i];
            CHECK(differ, "8 rounds gave the logits of 2");
        }
        attn_tensor *one = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){1, 1}, ids);
        CHECK(attn_reformer_lm_logits(ctx, m, one, &r2) != NULL, "T = 1: %s", attn_ctx_error(ctx));
        attn_sample_opts so = {0.8f, 0, 0.95f, 3, 0};
        int32_t o1[30], o2[30];
        CHECK_OK(attn_reformer_lm_generate(ctx, m, ids, 3, 30, &so, &r2, o1)); /* passes ctx_len 24 */
        CHECK_OK(attn_reformer_lm_generate(ctx, m, ids, 3, 30, &so, &r2, o2));
        CHECK(!memcmp(o1, o2, sizeof o1), "same seed, same generation");
        int in_range = 1;
        for (int i = 0; i < 30; i++) in_range &= o1[i] >= 0 && o1[i] < RV;
        CHECK(in_range, "generated ids in [0, V)");
    }
    attn_ctx_free(ctx);
    attn_reformer_lm_free(m);
    attn_params_free(ps);
    TEST_END();
}

static void errors(void) {
    TEST_BEGIN("reformer_lm: errors (bad configuration, target out of range, T past ctx_len, no gradients)");
    attn_params *ps = NULL;
    CHECK_OK(attn_params_new(&ps));
    attn_reformer_lm *m = NULL;
    attn_reformer_lm_config c = small_config(2, 0.0f);
    c.n_buckets = 5;
    CHECK(attn_reformer_lm_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG && !m, "odd buckets refused");
    c = small_config(2, 0.0f);
    c.d_model = 9;
    CHECK(attn_reformer_lm_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG, "d_model not a multiple of heads");
    c = small_config(2, 0.0f);
    c.dropout = 1.0f;
    CHECK(attn_reformer_lm_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG, "dropout 1 refused");
    c = small_config(2, 0.0f);
    c.sinusoidal = 2;
    CHECK(attn_reformer_lm_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG, "sinusoidal 2 refused");
    c.sinusoidal = 1; /* fixed positions: no pos_emb parameter */
    CHECK_OK(attn_reformer_lm_new(&m, ps, &c, NULL));
    CHECK(m && !m->pos_emb, "sinusoidal: no learned position table");
    attn_reformer_lm_free(m);
    m = NULL;
    c.rope = 1; /* with sinusoidal */
    CHECK(attn_reformer_lm_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG && !m, "rope + sinusoidal refused");
    c = small_config(2, 0.0f);
    c.rope = -1;
    CHECK(attn_reformer_lm_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG, "rope -1 refused");
    c.rope = 1;
    c.rope_theta = -1.0f;
    CHECK(attn_reformer_lm_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG, "rope_theta -1 refused");
    c.rope_theta = INFINITY;
    CHECK(attn_reformer_lm_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG, "rope_theta inf refused");
    c.rope_theta = 0.0f;
    c.d_model = 6; /* 2 heads of 3 */
    CHECK(attn_reformer_lm_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG, "rope with an odd head size refused");
    CHECK(strstr(attn_last_error(), "even head size") != NULL, "message: %s", attn_last_error());
    c.rope_dims = 2; /* 2 of the 3 dims rotate: fine */
    attn_params_free(ps);
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_reformer_lm_new(&m, ps, &c, NULL));
    CHECK(m && !m->pos_emb, "rope 1: no table");
    attn_reformer_lm_free(m);
    m = NULL;
    c.rope_dims = 4;
    CHECK(attn_reformer_lm_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG, "rope_dims 4 > head size 3 refused");
    c = small_config(2, 0.0f);
    c.rope = 1;
    c.rope_dims = 3;
    CHECK(attn_reformer_lm_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG, "odd rope_dims refused");
    c.rope_dims = -2;
    CHECK(attn_reformer_lm_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG, "negative rope_dims refused");
    c.rope_dims = 0;
    c.rope = 3;
    CHECK(attn_reformer_lm_new(&m, ps, &c, NULL) == ATTN_ERR_INVALID_ARG, "rope 3 refused");
    c.rope = 2; /* rotary and the learned table */
    attn_params_free(ps);
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_reformer_lm_new(&m, ps, &c, NULL));
    CHECK(m && m->pos_emb, "rope 2: the learned table is kept");
    attn_reformer_lm_free(m);
    m = NULL;
    c.sinusoidal = 1; /* rotary and the sinusoidal table */
    attn_params_free(ps);
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_reformer_lm_new(&m, ps, &c, NULL));
    CHECK(m && !m->pos_emb, "rope 2 + sinusoidal: no learned table");
    attn_reformer_lm_free(m);
    m = NULL;
    attn_params_free(ps);
    ps = NULL;
    m = small_model(&ps, 1, 0.0f);
    attn_ctx *ctx = test_ctx_new(8u << 20, 1, 0);
    if (m && ctx) {
        int32_t ids[RB * RT], tg[RB * RT];
        batch(ids, tg);
        tg[3] = RV;
        double l;
        CHECK(attn_reformer_lm_train_step(ctx, m, ids, tg, RB, RT, -1, NULL, &l, NULL) == ATTN_ERR_INVALID_ARG,
              "target V refused");
        CHECK(strstr(attn_ctx_error(ctx), "target") != NULL, "message names the target: %s", attn_ctx_error(ctx));
        attn_ctx_reset(ctx);
        batch(ids, tg);
        int32_t big[30] = {0}, bt[30] = {0};
        CHECK(attn_reformer_lm_train_step(ctx, m, big, bt, 1, 30, -1, NULL, &l, NULL) == ATTN_ERR_INVALID_ARG,
              "T 30 > ctx_len 24 refused");
        attn_ctx_reset(ctx);
        ids[4] = 99;
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){RB, RT}, ids);
        CHECK(attn_reformer_lm_logits(ctx, m, ti, NULL) == NULL, "an id out of range refused");
        attn_ctx_reset(ctx);
        attn_ctx_set_grad_enabled(ctx, 0);
        ids[4] = 0;
        CHECK(attn_reformer_lm_train_step(ctx, m, ids, tg, RB, RT, -1, NULL, &l, NULL) != ATTN_OK,
              "no gradients: refused");
    }
    attn_ctx_free(ctx);
    attn_reformer_lm_free(m);
    attn_params_free(ps);
    TEST_END();
}

void suite_reformer_lm(void) {
    reversible_equals_plain();
    memory_flat();
    eval_and_generate();
    rope_model();
    errors();
}
