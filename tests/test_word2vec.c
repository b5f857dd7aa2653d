/* test_word2vec.c: word2vec (include/attn/word2vec.h); suite "word2vec".
 *
 *   (a) PyTorch parity (tests/fixtures/word2vec.atfx,
 *       tools/make_word2vec_fixtures.py): one update, skip-gram and CBOW,
 *       equals the SGD step of the log-sigmoid loss computed by autograd
 *       (exact sigmoid); the loss too;
 *   (b) finite differences (central) of that loss against the update's
 *       step, for the input vector(s) and the output vectors;
 *   (c) the vocabulary (counts, order, min_count), subsampling's keep
 *       probability, the negative table's shares;
 *   (d) single-thread training is bitwise deterministic; a synthetic corpus
 *       of two word groups is learned (within-group cosine above
 *       across-group), skip-gram and CBOW, 1 and 2 threads;
 *   (e) save/load round trips (text and safetensors), malformed files;
 *   (f) queries and evaluations (3CosAdd, Spearman with ties, coverage);
 *   (g) errors: empty text, NaN and hostile options, NUL bytes, long words.
 *
 * Tolerances: the update against the fixture 1e-6 + 1e-5 |ref| (float32
 * dot products of <= 33 terms against float64); the loss 1e-5 + 1e-5 |ref|;
 * finite differences (h 1e-3 on float32 inputs, loss summed in double from
 * float32 dots) |fd - analytic| <= 2e-3 + 1e-2 |analytic|. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "test.h"

#define SCRIPT "tools/make_word2vec_fixtures.py"

/* A model of V words "w0".."w<V-1>" (count 1 each) and D dimensions. */
static attn_w2v *model_of(int64_t V, int D, int exact) {
    attn_w2v_config cfg;
    attn_w2v_config_default(&cfg);
    cfg.dim = D;
    cfg.min_count = 1;
    cfg.exact_sigmoid = exact;
    cfg.table_size = 1000;
    char *text = malloc((size_t)V * 16 + 1);
    size_t n = 0;
    for (int64_t i = 0; i < V; i++) n += (size_t)sprintf(text + n, "w%lld ", (long long)i);
    attn_w2v *m = NULL;
    CHECK_OK(attn_w2v_build(&m, &cfg, text, n));
    free(text);
    if (m) CHECK(m->V == V, "model_of: %lld words, expected %lld", (long long)m->V, (long long)V);
    return m;
}

static void test_fixture(void) {
    atfx_file *fx = NULL;
    char err[256], path[512];
    snprintf(path, sizeof path, "%s/word2vec.atfx", test_fixture_dir());
    TEST_BEGIN("word2vec/fixture_update_vs_torch");
    if (atfx_load(path, &fx, err, sizeof err)) {
        CHECK(0, "%s (regenerate with %s)", err, SCRIPT);
        TEST_END();
        return;
    }
    const atfx_tensor *nc = test_fx_need(fx, "n_cases", ATTN_I32, 1, SCRIPT);
    const int n_cases = nc ? atfx_i32(nc)[0] : 0;
    CHECK(n_cases == 4, "%d cases (expected 4)", n_cases);
    for (int k = 0; k < n_cases; k++) {
        char nm[64], tag[64];
        snprintf(nm, sizeof nm, "c%d.in", k);
        const atfx_tensor *tin = test_fx_need(fx, nm, ATTN_F32, -1, SCRIPT);
        snprintf(nm, sizeof nm, "c%d.inputs", k);
        const atfx_tensor *tinp = test_fx_need(fx, nm, ATTN_I32, -1, SCRIPT);
        snprintf(nm, sizeof nm, "c%d.targets", k);
        const atfx_tensor *ttg = test_fx_need(fx, nm, ATTN_I32, -1, SCRIPT);
        snprintf(nm, sizeof nm, "c%d.alpha", k);
        const atfx_tensor *tal = test_fx_need(fx, nm, ATTN_F32, 1, SCRIPT);
        snprintf(nm, sizeof nm, "c%d.loss", k);
        const atfx_tensor *tl = test_fx_need(fx, nm, ATTN_F32, 1, SCRIPT);
        if (!tin || !tinp || !ttg || !tal || !tl || tin->ndim != 2) continue;
        const int64_t V = tin->shape[0];
        const int D = (int)tin->shape[1];
        snprintf(nm, sizeof nm, "c%d.out", k);
        const atfx_tensor *tout = test_fx_need(fx, nm, ATTN_F32, V * D, SCRIPT);
        attn_w2v *m = model_of(V, D, 1);
        if (!m || !tout) {
            attn_w2v_free(m);
            continue;
        }
        memcpy(m->in, atfx_f32(tin), (size_t)(V * D) * sizeof(float));
        memcpy(m->out, atfx_f32(tout), (size_t)(V * D) * sizeof(float));
        int64_t inputs[16], targets[16];
        for (int i = 0; i < tinp->numel; i++) inputs[i] = atfx_i32(tinp)[i];
        for (int i = 0; i < ttg->numel; i++) targets[i] = atfx_i32(ttg)[i];
        double loss = NAN;
        CHECK_OK(attn_w2v_update(m, inputs, (int)tinp->numel, targets, (int)ttg->numel, atfx_f32(tal)[0], &loss));
        snprintf(tag, sizeof tag, "case %d (%s, V %lld, D %d)", k, tinp->numel > 1 ? "CBOW" : "skip-gram",
                 (long long)V, D);
        const float lf = (float)loss;
        snprintf(nm, sizeof nm, "c%d.loss", k);
        test_fx_close(tag, "loss", &lf, fx, nm, 1, 1e-5f, 1e-5f, SCRIPT);
        snprintf(nm, sizeof nm, "c%d.new_in", k);
        test_fx_close(tag, "in after the update", m->in, fx, nm, V * D, 1e-6f, 1e-5f, SCRIPT);
        snprintf(nm, sizeof nm, "c%d.new_out", k);
        test_fx_close(tag, "out after the update", m->out, fx, nm, V * D, 1e-6f, 1e-5f, SCRIPT);
        attn_w2v_free(m);
    }
    atfx_free(fx);
    TEST_END();
}

/* The loss at the current vectors (alpha 0 leaves them unchanged). */
static double loss_at(attn_w2v *m, const int64_t *in, int ni, const int64_t *tg, int nt) {
    double l = NAN;
    attn_w2v_update(m, in, ni, tg, nt, 0.0f, &l);
    return l;
}

static void test_finite_differences(void) {
    TEST_BEGIN("word2vec/finite_differences");
    attn_rng rng;
    attn_rng_init(&rng, 11);
    for (int cbow = 0; cbow <= 1; cbow++) {
        const int64_t V = 10;
        const int D = 13;
        attn_w2v *m = model_of(V, D, 1);
        if (!m) break;
        test_fill_normal(m->in, V * D, &rng);
        test_fill_normal(m->out, V * D, &rng);
        for (int64_t i = 0; i < V * D; i++) {
            m->in[i] *= 0.4f;
            m->out[i] *= 0.4f;
        }
        const int64_t in_sg[1] = {4}, in_cb[3] = {1, 4, 7}, tg[4] = {2, 8, 0, 5};
        const int64_t *inp = cbow ? in_cb : in_sg;
        const int ni = cbow ? 3 : 1;
        float *in0 = malloc((size_t)(V * D) * sizeof(float)), *out0 = malloc((size_t)(V * D) * sizeof(float));
        memcpy(in0, m->in, (size_t)(V * D) * sizeof(float));
        memcpy(out0, m->out, (size_t)(V * D) * sizeof(float));
        /* The analytic step with alpha 1: delta = -(the gradient the update applies). */
        CHECK_OK(attn_w2v_update(m, inp, ni, tg, 4, 1.0f, NULL));
        float *gin = malloc((size_t)(V * D) * sizeof(float)), *gout = malloc((size_t)(V * D) * sizeof(float));
        for (int64_t i = 0; i < V * D; i++) {
            gin[i] = in0[i] - m->in[i];
            gout[i] = out0[i] - m->out[i];
        }
        memcpy(m->in, in0, (size_t)(V * D) * sizeof(float));
        memcpy(m->out, out0, (size_t)(V * D) * sizeof(float));
        const float h = 1e-3f;
        double worst = 0;
        int bad = 0;
        for (int which = 0; which < 2; which++) {
            float *w = which ? m->out : m->in;
            const float *g = which ? gout : gin;
            for (int64_t i = 0; i < V * D; i++) {
                const float keep = w[i];
                w[i] = keep + h;
                const double lp = loss_at(m, inp, ni, tg, 4);
                w[i] = keep - h;
                const double lm = loss_at(m, inp, ni, tg, 4);
                w[i] = keep;
                double fd = (lp - lm) / (2.0 * h);
                /* CBOW: the reference adds dL/dx to every context vector, cw times dL/din_k. */
                if (!which && cbow) fd *= ni;
                const double err = fabs(fd - g[i]);
                if (err > 2e-3 + 1e-2 * fabs(g[i])) bad++;
                if (err > worst) worst = err;
            }
        }
        CHECK(bad == 0, "%s: %d gradient entries off (worst |fd - analytic| %.3g)", cbow ? "CBOW" : "skip-gram", bad,
              worst);
        /* Some gradient is not zero (the check can fail). */
        double gsum = 0;
        for (int64_t i = 0; i < V * D; i++) gsum += fabs(gin[i]) + fabs(gout[i]);
        CHECK(gsum > 0.1, "the gradient is almost zero (%g)", gsum);
        free(in0);
        free(out0);
        free(gin);
        free(gout);
        attn_w2v_free(m);
    }
    TEST_END();
}

static void test_update_details(void) {
    TEST_BEGIN("word2vec/update_repeated_positive_table_sigmoid_saturation");
    attn_w2v *a = model_of(6, 9, 1), *b = model_of(6, 9, 1), *c = model_of(6, 9, 0);
    if (a && b && c) {
        attn_rng rng;
        attn_rng_init(&rng, 5);
        test_fill_normal(a->in, 54, &rng);
        test_fill_normal(a->out, 54, &rng);
        for (attn_w2v *x = b; x; x = x == b ? c : NULL) {
            memcpy(x->in, a->in, 54 * sizeof(float));
            memcpy(x->out, a->out, 54 * sizeof(float));
        }
        const int64_t in[1] = {1}, t_rep[4] = {3, 3, 5, 3}, t_one[2] = {3, 5};
        CHECK_OK(attn_w2v_update(a, in, 1, t_rep, 4, 0.1f, NULL));
        CHECK_OK(attn_w2v_update(b, in, 1, t_one, 2, 0.1f, NULL));
        CHECK(memcmp(a->in, b->in, 54 * sizeof(float)) == 0 && memcmp(a->out, b->out, 54 * sizeof(float)) == 0,
              "a negative equal to the positive target was not skipped");
        /* The table's sigma is within 0.02 of the exact one: the step differs by at most 0.02 alpha |o|. */
        CHECK_OK(attn_w2v_update(c, in, 1, t_one, 2, 0.1f, NULL));
        double worst = 0;
        for (int i = 0; i < 54; i++) worst = fmax(worst, fabs(c->in[i] - b->in[i]));
        CHECK(worst < 0.1 * 0.02 * 4 * 2, "table sigmoid step off by %g", worst);
    }
    attn_w2v_free(a);
    attn_w2v_free(b);
    attn_w2v_free(c);
    /* A negative with x . out = 8: the reference's rule updates with sigma = 1 (g = -alpha);
     * gensim's (skip_saturated) leaves it alone; a target inside (-6, 6) is updated by both. */
    for (int skip = 0; skip <= 1; skip++) {
        attn_w2v *m = model_of(4, 2, 0);
        if (!m) break;
        m->cfg.skip_saturated = skip;
        const float in0[8] = {2, 2, 0, 0, 0, 0, 0, 0}, out0[8] = {0, 0, 0.5f, 0, 2, 2, 0, 0};
        memcpy(m->in, in0, sizeof in0);
        memcpy(m->out, out0, sizeof out0);
        const int64_t in[1] = {0}, tg[2] = {1, 2};
        CHECK_OK(attn_w2v_update(m, in, 1, tg, 2, 0.5f, NULL));
        const int sat_moved = m->out[4] != 2.0f, pos_moved = m->out[2] != 0.5f;
        CHECK(pos_moved && sat_moved == !skip, "skip_saturated %d: the saturated negative %s, the positive %s", skip,
              sat_moved ? "moved" : "stayed", pos_moved ? "moved" : "stayed");
        if (!skip) CHECK(fabsf(m->out[4] - (2.0f - 0.5f * 2.0f)) < 1e-6f, "saturated negative: g = -alpha");
        attn_w2v_free(m);
    }
    TEST_END();
}

static void test_vocabulary(void) {
    TEST_BEGIN("word2vec/vocabulary_subsampling_table");
    const char *text = "the cat sat on the mat\nthe dog sat\n  on the log the end\tcat";
    attn_w2v_config cfg;
    attn_w2v_config_default(&cfg);
    cfg.min_count = 2;
    cfg.dim = 4;
    cfg.table_size = 100000;
    cfg.sample = 0.1;
    attn_w2v *m = NULL;
    CHECK_OK(attn_w2v_build(&m, &cfg, text, strlen(text)));
    if (m) {
        /* the x5, cat x2, on x2, sat x2 (ties by bytes); dog, mat, log, end dropped */
        CHECK(m->V == 4, "V %lld (expected 4)", (long long)m->V);
        const char *want[4] = {"the", "cat", "on", "sat"};
        const int64_t cnt[4] = {5, 2, 2, 2};
        for (int i = 0; i < 4 && i < m->V; i++)
            CHECK(!strcmp(m->words[i], want[i]) && m->counts[i] == cnt[i], "word %d is '%s' x%lld (expected '%s' x%lld)",
                  i, m->words[i], (long long)m->counts[i], want[i], (long long)cnt[i]);
        CHECK(m->train_words == 11, "train_words %lld (expected 11)", (long long)m->train_words);
        CHECK(attn_w2v_find(m, "sat") == 3 && attn_w2v_find(m, "dog") == -1 && attn_w2v_find(m, "th") == -1,
              "attn_w2v_find");
        /* keep = (sqrt(c / (t N)) + 1) t N / c, t N = 1.1 */
        const double tn = 0.1 * 11;
        const double k0 = (sqrt(5 / tn) + 1) * tn / 5;
        CHECK(fabs(attn_w2v_keep_prob(m, 0) - k0) < 1e-12, "keep(the) %.15g, expected %.15g",
              attn_w2v_keep_prob(m, 0), k0);
        CHECK(attn_w2v_keep_prob(m, 1) == 1.0, "keep(cat) %g: the formula exceeds 1 and must be clamped",
              attn_w2v_keep_prob(m, 1));
        /* the table: shares count^0.75 / Z, entries non-decreasing */
        CHECK(m->table_entries == 100000, "table_entries %lld", (long long)m->table_entries);
        int64_t hits[4] = {0, 0, 0, 0};
        int mono = 1;
        for (int64_t a = 0; a < m->table_entries; a++) {
            if (m->table[a] < 0 || m->table[a] >= 4) {
                mono = 0;
                break;
            }
            hits[m->table[a]]++;
            if (a && m->table[a] < m->table[a - 1]) mono = 0;
        }
        CHECK(mono, "the table is not a non-decreasing list of word indices");
        const double z = pow(5, 0.75) + 3 * pow(2, 0.75);
        for (int i = 0; i < 4; i++) {
            const double share = (double)hits[i] / (double)m->table_entries, want_s = pow((double)cnt[i], 0.75) / z;
            CHECK(fabs(share - want_s) < 2e-4, "word %d: table share %.5f, expected %.5f", i, share, want_s);
        }
    }
    attn_w2v_free(m);
    /* sample 0: everything kept; the automatic table size */
    cfg.sample = 0;
    cfg.table_size = 0;
    CHECK_OK(attn_w2v_build(&m, &cfg, text, strlen(text)));
    if (m) {
        CHECK(attn_w2v_keep_prob(m, 0) == 1.0, "sample 0 keeps every word");
        float lo = 1, hi = -1;
        for (int64_t i = 0; i < m->V * m->D; i++) {
            lo = fminf(lo, m->in[i]);
            hi = fmaxf(hi, m->in[i]);
        }
        CHECK(lo >= -0.5f / 4 && hi < 0.5f / 4 && hi - lo > 0.05f, "init range [%g, %g] (expected inside [-1/8, 1/8))",
              lo, hi);
        CHECK(m->table_entries == 1000000, "automatic table size %lld (expected 10^6 for 4 words)",
              (long long)m->table_entries);
    }
    attn_w2v_free(m);
    TEST_END();
}

/* The synthetic corpus: sentences of 12 words, all from group A (a0..a7) or
 * all from group B (b0..b7), alternating at random. */
static char *two_groups(int sentences, size_t *len) {
    char *t = malloc((size_t)sentences * 12 * 4 + 1);
    size_t n = 0;
    attn_rng rng;
    attn_rng_init(&rng, 99);
    for (int s = 0; s < sentences; s++) {
        const char g = attn_rng_next_below(&rng, 2) ? 'a' : 'b';
        for (int w = 0; w < 12; w++) {
            t[n++] = g;
            t[n++] = (char)('0' + attn_rng_next_below(&rng, 8));
            t[n++] = w == 11 ? '\n' : ' ';
        }
    }
    t[n] = '\0';
    *len = n;
    return t;
}

static void group_cosines(const attn_w2v *m, double *within, double *across) {
    char a[3] = "a0", b[3] = "b0";
    double w = 0, x = 0;
    int nw = 0, nx = 0;
    for (int i = 0; i < 16; i++)
        for (int j = i + 1; j < 16; j++) {
            a[0] = i < 8 ? 'a' : 'b';
            a[1] = (char)('0' + i % 8);
            b[0] = j < 8 ? 'a' : 'b';
            b[1] = (char)('0' + j % 8);
            double c = 0;
            attn_w2v_cosine(m, a, b, &c);
            if ((i < 8) == (j < 8)) {
                w += c;
                nw++;
            } else {
                x += c;
                nx++;
            }
        }
    *within = w / nw;
    *across = x / nx;
}

static void test_training(void) {
    size_t len;
    char *text = two_groups(1500, &len);
    attn_w2v_config cfg;
    attn_w2v_config_default(&cfg);
    cfg.dim = 12;
    cfg.min_count = 1;
    cfg.epochs = 3;
    cfg.sample = 0;
    cfg.table_size = 10000;

    TEST_BEGIN("word2vec/single_thread_deterministic");
    attn_w2v *m1 = NULL, *m2 = NULL, *m3 = NULL;
    CHECK_OK(attn_w2v_build(&m1, &cfg, text, len));
    CHECK_OK(attn_w2v_build(&m2, &cfg, text, len));
    cfg.seed = 2;
    CHECK_OK(attn_w2v_build(&m3, &cfg, text, len));
    cfg.seed = 1;
    if (m1 && m2 && m3) {
        CHECK_OK(attn_w2v_train(m1, text, len, NULL, NULL, NULL));
        CHECK_OK(attn_w2v_train(m2, text, len, NULL, NULL, NULL));
        CHECK_OK(attn_w2v_train(m3, text, len, NULL, NULL, NULL));
        const size_t nb = (size_t)(m1->V * m1->D) * sizeof(float);
        CHECK(memcmp(m1->in, m2->in, nb) == 0 && memcmp(m1->out, m2->out, nb) == 0,
              "two single-thread runs differ");
        CHECK(memcmp(m1->in, m3->in, nb) != 0, "another seed gave the same vectors");
    }
    attn_w2v_free(m1);
    attn_w2v_free(m2);
    attn_w2v_free(m3);
    TEST_END();

    static const char *const names[4] = {"skip-gram, 1 thread", "skip-gram, 2 threads", "CBOW, 1 thread",
                                         "CBOW, 2 threads"};
    TEST_BEGIN("word2vec/learns_two_groups");
    for (int v = 0; v < 4; v++) {
        cfg.cbow = v >= 2;
        cfg.alpha = cfg.cbow ? 0.05 : 0.025;
        cfg.n_threads = v % 2 ? 2 : 1;
        attn_w2v *m = NULL;
        CHECK_OK(attn_w2v_build(&m, &cfg, text, len));
        if (!m) continue;
        double w0, x0, w1, x1;
        group_cosines(m, &w0, &x0);
        CHECK_OK(attn_w2v_train(m, text, len, NULL, NULL, NULL));
        group_cosines(m, &w1, &x1);
        CHECK(w1 > x1 + 0.5, "%s: within-group cosine %.3f, across %.3f (before training %.3f, %.3f)", names[v], w1, x1,
              w0, x0);
        attn_w2v_free(m);
    }
    TEST_END();
    free(text);
}

static int stop_at_first(void *user, const attn_w2v_progress *p) {
    int *calls = user;
    (*calls)++;
    return p->words_done > 0;
}

static void test_progress_stop(void) {
    TEST_BEGIN("word2vec/progress_callback_stops");
    size_t len;
    char *text = two_groups(3000, &len);
    attn_w2v_config cfg;
    attn_w2v_config_default(&cfg);
    cfg.dim = 8;
    cfg.min_count = 1;
    cfg.epochs = 50;
    cfg.table_size = 1000;
    attn_w2v *m = NULL;
    CHECK_OK(attn_w2v_build(&m, &cfg, text, len));
    if (m) {
        int calls = 0, stopped = 0;
        CHECK_OK(attn_w2v_train(m, text, len, stop_at_first, &calls, &stopped));
        CHECK(stopped == 1 && calls == 1, "stopped %d after %d calls (expected 1 and 1)", stopped, calls);
    }
    attn_w2v_free(m);
    free(text);
    TEST_END();
}

static void test_files(void) {
    TEST_BEGIN("word2vec/save_load_round_trips");
    char p_txt[128], p_st[128];
    snprintf(p_txt, sizeof p_txt, "/tmp/attn_test_w2v_%d.txt", (int)getpid());
    snprintf(p_st, sizeof p_st, "/tmp/attn_test_w2v_%d.safetensors", (int)getpid());
    attn_w2v *m = model_of(23, 7, 0), *t = NULL, *s = NULL;
    if (m) {
        attn_rng rng;
        attn_rng_init(&rng, 3);
        test_fill_normal(m->in, 23 * 7, &rng);
        m->in[5] = 1e-30f; /* a tiny value, a negative zero, a large one */
        m->in[6] = -0.0f;
        m->in[7] = 3.4e38f;
        CHECK_OK(attn_w2v_save(m, p_txt, ATTN_W2V_TEXT));
        CHECK_OK(attn_w2v_save(m, p_st, ATTN_W2V_SAFETENSORS));
        CHECK_OK(attn_w2v_load(&t, p_txt));
        CHECK_OK(attn_w2v_load(&s, p_st));
        for (int f = 0; f < 2; f++) {
            attn_w2v *x = f ? s : t;
            const char *nm = f ? "safetensors" : "text";
            if (!x) continue;
            CHECK(x->V == m->V && x->D == m->D, "%s: %lld x %d (expected %lld x %d)", nm, (long long)x->V, x->D,
                  (long long)m->V, m->D);
            if (x->V != m->V || x->D != m->D) continue;
            CHECK(memcmp(x->in, m->in, (size_t)(m->V * m->D) * sizeof(float)) == 0, "%s: vectors differ", nm);
            int same = 1;
            for (int64_t i = 0; i < m->V; i++) same &= !strcmp(x->words[i], m->words[i]);
            CHECK(same, "%s: words differ", nm);
            CHECK(attn_w2v_find(x, m->words[9]) == 9, "%s: the index of a loaded model", nm);
            CHECK(x->out == NULL, "%s: a loaded model has no output vectors", nm);
        }
        if (s) CHECK(s->counts[0] == m->counts[0] && s->train_words == m->train_words, "safetensors: counts");
        /* a loaded model cannot be trained */
        if (t) {
            CHECK(attn_w2v_train(t, "w1 w2", 5, NULL, NULL, NULL) == ATTN_ERR_STATE, "training a loaded model");
            CHECK(strstr(attn_last_error(), "loaded") != NULL, "message: %s", attn_last_error());
        }
    }
    attn_w2v_free(m);
    attn_w2v_free(t);
    attn_w2v_free(s);
    TEST_END();

    TEST_BEGIN("word2vec/malformed_files");
    static const struct {
        const char *text, *needle;
    } bad[] = {
        {"", "empty"},
        {"2 3\nabcdef 1.000 2.000 3.000\n", "ends after 1 of 2"},
        {"x 3\n", "header"},
        {"1 3 extra\na 1 2 3\n", "header"},
        {"1 3\na 1 2\n", "has 2 values"},
        {"1 3\na 1 2 3 4\n", "more than 3"},
        {"1 3\na 1 nan 3\n", "finite"},
        {"1 3\na 1 2 x3\n", "finite"},
        {"2 1\na 1\na 2\n", "twice"},
        {"1 1\na 1\nb 2\n", "data after"},
        {"100000000 100\na 1\n", "more than"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *fp = fopen(p_txt, "wb");
        if (!fp) break;
        fputs(bad[i].text, fp);
        fclose(fp);
        attn_w2v *x = NULL;
        attn_status st = attn_w2v_load(&x, p_txt);
        CHECK(st == ATTN_ERR_FORMAT && x == NULL && strstr(attn_last_error(), bad[i].needle),
              "file %zu: status %s, message '%s' (expected format error with '%s')", i, attn_status_str(st),
              attn_last_error(), bad[i].needle);
        attn_w2v_free(x);
    }
    attn_w2v *x = NULL;
    CHECK(attn_w2v_load(&x, "/nonexistent/vectors.txt") == ATTN_ERR_IO, "a missing file");
    remove(p_txt);
    remove(p_st);
    TEST_END();
}

static void test_queries(void) {
    TEST_BEGIN("word2vec/analogy_similar_spearman");
    /* king - man + woman = queen exactly; decoys placed around */
    const char *text = "king queen man woman apple pear";
    attn_w2v_config cfg;
    attn_w2v_config_default(&cfg);
    cfg.dim = 3;
    cfg.min_count = 1;
    cfg.table_size = 1000;
    attn_w2v *m = NULL;
    CHECK_OK(attn_w2v_build(&m, &cfg, text, strlen(text)));
    if (m) {
        const struct {
            const char *w;
            float v[3];
        } vec[] = {{"king", {1, 1, 0}},  {"queen", {1, 0, 1}}, {"man", {0, 1, 0}},
                   {"woman", {0, 0, 1}}, {"apple", {0, 0, -1}}, {"pear", {-1, 0.1f, 0}}};
        for (int i = 0; i < 6; i++) memcpy(m->in + attn_w2v_find(m, vec[i].w) * 3, vec[i].v, sizeof vec[i].v);
        int64_t idx[10];
        float sim[10];
        int found = 0;
        CHECK_OK(attn_w2v_analogy(m, "man", "king", "woman", 0, 3, idx, sim, &found));
        CHECK(found == 3 && !strcmp(m->words[idx[0]], "queen"), "man:king::woman:? gave '%s'",
              found ? m->words[idx[0]] : "");
        CHECK_OK(attn_w2v_similar(m, "king", 10, idx, sim, &found));
        CHECK(found == 5, "similar: %d found (expected the 5 other words)", found);
        CHECK(attn_w2v_similar(m, "prince", 3, idx, sim, &found) == ATTN_ERR_INVALID_ARG &&
                  strstr(attn_last_error(), "'prince' is not in the vocabulary"),
              "an unknown word: %s", attn_last_error());
        double c;
        CHECK_OK(attn_w2v_cosine(m, "king", "queen", &c));
        CHECK(fabs(c - 0.5) < 1e-6, "cos(king, queen) %g (expected 0.5)", c);
        /* the evaluations on small files */
        char p[128];
        snprintf(p, sizeof p, "/tmp/attn_test_w2v_eval_%d.txt", (int)getpid());
        FILE *fp = fopen(p, "w");
        if (fp) {
            fputs(": family\nMan King Woman Queen\nman king woman pear\nman king boy girl\n", fp);
            fclose(fp);
            attn_w2v_analogy_result r;
            CHECK_OK(attn_w2v_eval_analogies(m, p, 0, &r));
            CHECK(r.questions == 3 && r.covered == 2 && r.correct == 1,
                  "analogies: %lld questions, %lld covered, %lld correct (expected 3, 2, 1)",
                  (long long)r.questions, (long long)r.covered, (long long)r.correct);
        }
        fp = fopen(p, "w");
        if (fp) {
            fputs("# comment\nWord 1\tWord 2\tHuman (mean)\nking\tqueen\t8\nman\twoman\t3\napple\tpear\t1\n"
                  "king\tprince\t9\n", fp);
            fclose(fp);
            attn_w2v_similarity_result r;
            CHECK_OK(attn_w2v_eval_similarity(m, p, &r));
            /* cosines 0.5, 0, -0.0... (apple.pear = 0): scores 8, 3, 1 -> ranks agree except the tie order */
            CHECK(r.pairs == 4 && r.covered == 3, "similarity: %lld pairs, %lld covered (expected 4, 3)",
                  (long long)r.pairs, (long long)r.covered);
            CHECK(isfinite(r.spearman) && r.spearman > 0.4, "similarity: Spearman %g", r.spearman);
        }
        fp = fopen(p, "w");
        if (fp) {
            fputs("a b c\n", fp);
            fclose(fp);
            attn_w2v_analogy_result r;
            CHECK(attn_w2v_eval_analogies(m, p, 0, &r) == ATTN_ERR_FORMAT, "an analogy line of 3 words");
            attn_w2v_similarity_result s;
            fp = fopen(p, "w");
            fputs("a b 1\nc d x\n", fp);
            fclose(fp);
            CHECK(attn_w2v_eval_similarity(m, p, &s) == ATTN_ERR_FORMAT, "a score that is not a number");
        }
        remove(p);
    }
    attn_w2v_free(m);
    /* Spearman: scipy.stats.spearmanr([1,2,2,3,5,0.5], [1,3,2,4,4,7]) = 0.08823529411764706 */
    const double x[6] = {1, 2, 2, 3, 5, 0.5}, y[6] = {1, 3, 2, 4, 4, 7}, z[6] = {6, 5, 4, 3, 2, 1};
    const double u[6] = {1, 2, 3, 4, 5, 6};
    CHECK(fabs(attn_spearman(x, y, 6) - 0.08823529411764706) < 1e-12, "Spearman with ties %.17g",
          attn_spearman(x, y, 6));
    CHECK(fabs(attn_spearman(u, z, 6) + 1) < 1e-12, "Spearman of reversed ranks %g", attn_spearman(u, z, 6));
    CHECK(isnan(attn_spearman(u, u, 1)), "Spearman of one pair is NaN");
    TEST_END();
}

static void test_errors(void) {
    TEST_BEGIN("word2vec/bad_input");
    attn_w2v_config cfg;
    attn_w2v_config_default(&cfg);
    attn_w2v *m = (attn_w2v *)1;
    CHECK(attn_w2v_build(&m, &cfg, "", 0) == ATTN_ERR_SHAPE && m == NULL &&
              strstr(attn_last_error(), "empty vocabulary"),
          "empty text: %s", attn_last_error());
    CHECK(attn_w2v_build(&m, &cfg, " \n\t ", 4) == ATTN_ERR_SHAPE, "blank text");
    CHECK(attn_w2v_build(&m, &cfg, "a b a b", 7) == ATTN_ERR_SHAPE && strstr(attn_last_error(), "min_count = 5"),
          "no word reaches min_count: %s", attn_last_error());
    static const char *const fields[] = {"alpha NaN", "sample NaN", "window huge", "dim 0", "negative 0",
                                         "min_count 0", "epochs 0", "table_size 5", "threads 0", "alpha inf",
                                         "min_alpha_ratio 2", "cbow 2", "init_scale NaN"};
    for (int k = 0; k < 13; k++) {
        attn_w2v_config c = cfg;
        switch (k) {
        case 0: c.alpha = NAN; break;
        case 1: c.sample = NAN; break;
        case 2: c.window = 1 << 30; break;
        case 3: c.dim = 0; break;
        case 4: c.negative = 0; break;
        case 5: c.min_count = 0; break;
        case 6: c.epochs = 0; break;
        case 7: c.table_size = 5; break;
        case 8: c.n_threads = 0; break;
        case 9: c.alpha = INFINITY; break;
        case 10: c.min_alpha_ratio = 2; break;
        case 11: c.cbow = 2; break;
        default: c.init_scale = NAN; break;
        }
        const char *field = fields[k];
        char word[32];
        sscanf(field, "%31s", word);
        if (!strcmp(word, "threads")) snprintf(word, sizeof word, "n_threads");
        attn_status st = attn_w2v_build(&m, &c, "a a a a a", 9);
        CHECK(st == ATTN_ERR_INVALID_ARG && strstr(attn_last_error(), word), "%s: status %s, message '%s'", field,
              attn_status_str(st), attn_last_error());
    }
    CHECK(attn_w2v_build(&m, &cfg, "a a\0a a a", 9) == ATTN_ERR_FORMAT && strstr(attn_last_error(), "NUL"),
          "a NUL byte: %s", attn_last_error());
    char longw[300];
    memset(longw, 'x', sizeof longw - 1);
    longw[sizeof longw - 1] = '\0';
    CHECK(attn_w2v_build(&m, &cfg, longw, strlen(longw)) == ATTN_ERR_FORMAT && strstr(attn_last_error(), "299 bytes"),
          "a long word: %s", attn_last_error());
    /* training on a text none of whose words are known; a NaN rate in the update */
    cfg.min_count = 1;
    cfg.table_size = 1000;
    CHECK_OK(attn_w2v_build(&m, &cfg, "a b c", 5));
    if (m) {
        CHECK(attn_w2v_train(m, "x y z", 5, NULL, NULL, NULL) == ATTN_ERR_SHAPE, "no known word: %s",
              attn_last_error());
        const int64_t i1[1] = {0}, t1[2] = {1, 7};
        CHECK(attn_w2v_update(m, i1, 1, t1, 2, 0.1f, NULL) == ATTN_ERR_INVALID_ARG &&
                  strstr(attn_last_error(), "target 1 is 7"), "a target out of range: %s", attn_last_error());
        CHECK(attn_w2v_update(m, i1, 1, t1, 1, NAN, NULL) == ATTN_ERR_INVALID_ARG, "a NaN rate");
        m->cfg.alpha = NAN;
        CHECK(attn_w2v_train(m, "a b c", 5, NULL, NULL, NULL) == ATTN_ERR_INVALID_ARG, "a NaN alpha set after build");
        m->cfg.alpha = 0.025;
        m->cfg.dim = 7;
        CHECK(attn_w2v_train(m, "a b c", 5, NULL, NULL, NULL) == ATTN_ERR_INVALID_ARG, "dim changed after build");
        attn_w2v_free(m);
    }
    TEST_END();
}

void suite_word2vec(void) {
    test_fixture();
    test_finite_differences();
    test_update_details();
    test_vocabulary();
    test_training();
    test_progress_stop();
    test_files();
    test_queries();
    test_errors();
}
