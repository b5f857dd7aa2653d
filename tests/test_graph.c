/* test_graph.c: graph self-attention beyond the op suite's fixtures
 * (include/attn/graph_attention.h; suite "graph").
 *
 *   (a) BP-Transformer graphs: attn_bpt_graph equals the authors' builder
 *       (restated in tools/make_graph_attention_fixtures.py,
 *       tests/fixtures/graph_bpt.atfx) for 8 (n, step, causal) settings;
 *       causal graphs never let a token see a span that reaches past it;
 *       the edge count grows as n log n, not n^2;
 *   (b) the op against attn_sdpa with a -inf bias off the edges, on random
 *       graphs over wide shapes (isolated nodes included): outputs and the
 *       gradients of q, k, v (tolerance 1e-5 + 1e-4 |x|, the op's own);
 *   (c) the fast kernels against the scalar reference (bitwise is not
 *       expected: float against double sums; 1e-5 + 1e-4 |x|) and one
 *       thread against two (bitwise);
 *   (d) the Debian Packages reader on an index with the cases that matter
 *       (a repeated name, an archive area in the section, alternatives,
 *       versions and architecture qualifiers, unknown names, Pre-Depends, a
 *       missing section) and its errors;
 *   (e) the node classifier learns labels only its neighbours reveal with
 *       one attention layer (>= 95%) and not without (<= 60%). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "test.h"

#define GA_ATOL 1e-5f
#define GA_RTOL 1e-4f

static void test_bpt_fixture(void) {
    TEST_BEGIN("graph/BP-Transformer graphs = the authors' builder");
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/graph_bpt.atfx", test_fixture_dir());
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        CHECK(0, "%s (regenerate with tools/make_graph_attention_fixtures.py)", err);
        TEST_END();
        return;
    }
    const atfx_tensor *nc = atfx_find(fx, "n_cases");
    const int n = nc ? atfx_i32(nc)[0] : 0;
    CHECK(n == 8, "%d cases", n);
    for (int k = 0; k < n; k++) {
        const atfx_tensor *cfg = atfx_findf(fx, "c%d.cfg", k), *rp = atfx_findf(fx, "c%d.row_ptr", k),
                          *col = atfx_findf(fx, "c%d.col", k);
        if (!cfg || !rp || !col) {
            CHECK(0, "case %d incomplete", k);
            continue;
        }
        const int32_t *c = atfx_i32(cfg);
        int64_t nn = 0, *r = NULL;
        int32_t *cc = NULL;
        CHECK_OK(attn_bpt_graph(c[0], c[1], c[2], &nn, &r, &cc));
        int same = nn == c[3] && rp->numel == nn + 1;
        for (int64_t i = 0; same && i <= nn; i++) same = r[i] == atfx_i32(rp)[i];
        for (int64_t e = 0; same && e < r[nn]; e++) same = cc[e] == atfx_i32(col)[e];
        CHECK(same, "n %d step %d causal %d: %lld nodes, %lld edges; the builder: %d nodes, %lld edges",
              c[0], c[1], c[2], (long long)nn, r ? (long long)r[nn] : -1LL, c[3], (long long)col->numel);
        free(r);
        free(cc);
    }
    atfx_free(fx);
    TEST_END();
}

/* The token range [lo, hi] of node id x of a BPT graph over n tokens. */
static void span_of(int64_t n, int64_t x, int64_t *lo, int64_t *hi) {
    int64_t shift = 0, m = n, j = 0;
    while (m >= 2 && x >= shift + m) {
        shift += m;
        m = (m + 1) >> 1;
        j++;
    }
    if (m < 2 && x >= shift) m = 1; /* the root */
    const int64_t idx = x - shift;
    *lo = idx << j;
    *hi = ((idx + 1) << j) - 1;
    if (*hi > n - 1) *hi = n - 1;
}

static void test_bpt_properties(void) {
    TEST_BEGIN("graph/BP-Transformer: causal spans end at the token, n log n edges");
    const int64_t ns[3] = {1000, 777, 4096};
    for (int t = 0; t < 3; t++) {
        for (int causal = 0; causal < 2; causal++) {
            int64_t nn = 0, *r = NULL;
            int32_t *c = NULL;
            CHECK_OK(attn_bpt_graph(ns[t], 2, causal, &nn, &r, &c));
            if (!r) continue;
            const int64_t n = ns[t];
            int64_t lv = 0;
            while ((1ll << lv) < n) lv++;
            int bad = 0, self = 0;
            for (int64_t i = 0; i < n; i++)
                for (int64_t e = r[i]; e < r[i + 1]; e++) {
                    int64_t lo, hi;
                    span_of(n, c[e], &lo, &hi);
                    if (causal && hi > i) bad++;
                    self += c[e] == i;
                }
            CHECK(bad == 0, "n %lld causal: %d edges of tokens reach spans past the token",
                  (long long)n, bad);
            CHECK(self == n, "n %lld: %d of %lld tokens attend to themselves", (long long)n, self,
                  (long long)n);
            /* a token: at most 2 step nodes per level (step each side) and
             * itself; a span node: its tokens */
            CHECK(r[nn] <= n * (4 * (lv + 1) + 1) + n * (lv + 1),
                  "n %lld: %lld edges (more than O(n log n))", (long long)n, (long long)r[nn]);
            const attn_graph g = {nn, r, c};
            CHECK_OK(attn_graph_check(&g));
            free(r);
            free(c);
        }
    }
    int64_t nn, *r;
    int32_t *c;
    CHECK(attn_bpt_graph(0, 1, 0, &nn, &r, &c) == ATTN_ERR_INVALID_ARG, "n 0 accepted");
    CHECK(attn_bpt_graph(4, 0, 0, &nn, &r, &c) == ATTN_ERR_INVALID_ARG, "step 0 accepted");
    TEST_END();
}

/* A random graph of N nodes: each node gets each other node with
 * probability p (and itself with probability p); node 1 has no neighbours. */
static void random_graph(attn_rng *rng, int64_t N, float p, int64_t *rp, int32_t *col) {
    int64_t e = 0;
    rp[0] = 0;
    for (int64_t i = 0; i < N; i++) {
        for (int64_t j = 0; j < N; j++)
            if (i != 1 && attn_rng_next_uniform(rng) < p) col[e++] = (int32_t)j;
        rp[i + 1] = e;
    }
}

static float max_rel(const float *a, const float *b, int64_t n, float atol, float rtol) {
    float worst = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        const float d = fabsf(a[i] - b[i]) / (atol + rtol * fabsf(b[i]));
        if (!(d <= worst)) worst = d; /* NaN counts as the worst */
    }
    return worst;
}

/* out and the gradients of q, k, v of one of three paths: 0 the op, 1 the
 * op's scalar reference, 2 attn_sdpa with a -inf bias off the edges. */
static int run_path(int path, int threads, int64_t B, int64_t H, int64_t N, int64_t D, int64_t Dv,
                    const float *q, const float *k, const float *v, const float *go,
                    const attn_graph *g, float *out, float *gq, float *gk, float *gv) {
    attn_ctx *ctx = test_ctx_new((size_t)64 << 20, threads, 0);
    if (!ctx) return -1;
    attn_ctx_set_use_ref(ctx, path == 1);
    const int64_t qs[4] = {B, H, N, D}, vs[4] = {B, H, N, Dv};
    attn_tensor *tq = test_leaf(ctx, 4, qs, q), *tk = test_leaf(ctx, 4, qs, k), *tv = test_leaf(ctx, 4, vs, v);
    attn_tensor *y;
    if (path < 2) {
        y = attn_graph_attention(ctx, tq, tk, tv, g, NULL, NULL);
    } else {
        const int64_t bs[4] = {1, 1, N, N};
        attn_tensor *bias = attn_tensor_new(ctx, ATTN_F32, 4, bs);
        for (int64_t i = 0; bias && i < N * N; i++) attn_f32(bias)[i] = -INFINITY;
        for (int64_t i = 0; bias && i < N; i++)
            for (int64_t e = g->row_ptr[i]; e < g->row_ptr[i + 1]; e++) attn_f32(bias)[i * N + g->col[e]] = 0.0f;
        attn_sdpa_opts o;
        memset(&o, 0, sizeof o);
        o.bias = bias;
        y = attn_sdpa(ctx, tq, tk, tv, &o, NULL);
    }
    int rc = -1;
    if (y && attn_backward_from(ctx, y, go) == ATTN_OK) {
        memcpy(out, attn_f32(y), sizeof(float) * (size_t)(B * H * N * Dv));
        memcpy(gq, tq->grad, sizeof(float) * (size_t)(B * H * N * D));
        memcpy(gk, tk->grad, sizeof(float) * (size_t)(B * H * N * D));
        memcpy(gv, tv->grad, sizeof(float) * (size_t)(B * H * N * Dv));
        rc = 0;
    } else {
        CHECK(0, "path %d: %s", path, attn_ctx_error(ctx));
    }
    attn_ctx_free(ctx);
    return rc;
}

static void test_against_sdpa(void) {
    TEST_BEGIN("graph/the op = attn_sdpa masked off the edges, fast = reference, 1 = 2 threads");
    attn_rng rng;
    attn_rng_init(&rng, 21);
    /* B, H, N, D, Dv, edge probability */
    const struct { int64_t B, H, N, D, Dv; float p; } cs[5] = {
        {1, 1, 2, 1, 1, 0.9f}, {2, 3, 37, 8, 5, 0.2f}, {1, 4, 64, 16, 16, 0.05f},
        {3, 2, 19, 3, 7, 1.0f}, {2, 2, 130, 32, 8, 0.1f}};
    for (int t = 0; t < 5; t++) {
        const int64_t B = cs[t].B, H = cs[t].H, N = cs[t].N, D = cs[t].D, Dv = cs[t].Dv;
        const int64_t nq = B * H * N * D, nv = B * H * N * Dv;
        int64_t *rp = malloc(sizeof(int64_t) * (size_t)(N + 1));
        int32_t *col = malloc(sizeof(int32_t) * (size_t)(N * N));
        float *in = malloc(sizeof(float) * (size_t)(2 * nq + 2 * nv));
        float *res[3][4];
        int ok = rp && col && in;
        for (int p = 0; p < 3; p++) {
            res[p][0] = malloc(sizeof(float) * (size_t)nv);
            res[p][1] = malloc(sizeof(float) * (size_t)nq);
            res[p][2] = malloc(sizeof(float) * (size_t)nq);
            res[p][3] = malloc(sizeof(float) * (size_t)nv);
            ok = ok && res[p][0] && res[p][1] && res[p][2] && res[p][3];
        }
        if (ok) {
            random_graph(&rng, N, cs[t].p, rp, col);
            /* logits of a few units up to +-8 (scale 1/sqrt(D)) */
            for (int64_t i = 0; i < 2 * nq + 2 * nv; i++) in[i] = 4.0f * (attn_rng_next_uniform(&rng) - 0.5f);
            const attn_graph g = {N, rp, col};
            const float *q = in, *k = in + nq, *v = in + 2 * nq, *go = in + 2 * nq + nv;
            int r = 0;
            for (int p = 0; p < 3; p++)
                r |= run_path(p, 1, B, H, N, D, Dv, q, k, v, go, &g, res[p][0], res[p][1], res[p][2], res[p][3]);
            if (r == 0) {
                static const char *const what[4] = {"out", "dq", "dk", "dv"};
                for (int w = 0; w < 4; w++) {
                    const int64_t n = w == 0 || w == 3 ? nv : nq;
                    const float e_sdpa = max_rel(res[0][w], res[2][w], n, GA_ATOL, GA_RTOL);
                    const float e_ref = max_rel(res[0][w], res[1][w], n, GA_ATOL, GA_RTOL);
                    CHECK(e_sdpa <= 1.0f && e_ref <= 1.0f,
                          "B %lld H %lld N %lld D %lld Dv %lld p %g: %s off by %.3g (sdpa) and %.3g "
                          "(reference) of the tolerance", (long long)B, (long long)H, (long long)N,
                          (long long)D, (long long)Dv, (double)cs[t].p, what[w], (double)e_sdpa,
                          (double)e_ref);
                }
                /* two threads: the same bits */
                if (run_path(0, 2, B, H, N, D, Dv, q, k, v, go, &g, res[2][0], res[2][1], res[2][2],
                             res[2][3]) == 0) {
                    const int same = !memcmp(res[0][0], res[2][0], sizeof(float) * (size_t)nv) &&
                                     !memcmp(res[0][1], res[2][1], sizeof(float) * (size_t)nq) &&
                                     !memcmp(res[0][2], res[2][2], sizeof(float) * (size_t)nq) &&
                                     !memcmp(res[0][3], res[2][3], sizeof(float) * (size_t)nv);
                    CHECK(same, "case %d: two threads differ from one", t);
                }
            }
        }
        CHECK(ok, "out of memory");
        for (int p = 0; p < 3; p++)
            for (int w = 0; w < 4; w++) free(res[p][w]);
        free(in);
        free(col);
        free(rp);
    }
    TEST_END();
}

/* A Packages index with the cases the reader must get right. */
static const char *const packages_text =
    "Package: alpha\nVersion: 1\nDepends: libz (>= 1.2), beta | gamma, nothere, libz:any\n"
    "Description: Alpha tool, for the Alpha users\nSection: utils\nTag: role::program,\n role::x\n\n"
    "Package: beta\nPre-Depends: libz\nSection: contrib/utils\nDescription: Beta TOOL v2\n\n"
    "Package: gamma\nSection: libs\nDescription: gamma library (shared)\n\n"
    "Package: libz\nSection: libs\nDescription: compression library\n\n"
    "Package: beta\nSection: games\nDescription: a second beta, dropped\n\n"
    "Package: nosection\nDescription: tool\n";

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    const size_t n = strlen(text);
    const int ok = fwrite(text, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int64_t node_of(const attn_deb_graph *g, const char *name) {
    for (int64_t i = 0; i < g->n; i++)
        if (!strcmp(g->names[i], name)) return i;
    return -1;
}

static int has_edge(const attn_deb_graph *g, int64_t i, int64_t j) {
    for (int64_t e = g->row_ptr[i]; e < g->row_ptr[i + 1]; e++)
        if (g->col[e] == j) return 1;
    return 0;
}

static void test_deb_graph(void) {
    TEST_BEGIN("graph/Debian Packages index: nodes, sections, words, dependency edges, errors");
    char dir[512], path[600];
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/attn_test_deb_XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        TEST_END();
        return;
    }
    snprintf(path, sizeof path, "%s/Packages", dir);
    CHECK(write_text(path, packages_text) == 0, "writing %s", path);
    attn_deb_graph g;
    const attn_deb_graph_opts o = {4, 6};
    CHECK_OK(attn_deb_graph_load(path, &o, &g));
    if (g.n) {
        CHECK(g.n == 5, "%lld packages (a repeated name keeps its first stanza)", (long long)g.n);
        CHECK(g.n_sections == 2 && !strcmp(g.sections[0], "libs") && !strcmp(g.sections[1], "utils"),
              "sections: %d (%s, %s ...; the dropped stanza's games is no class)", g.n_sections, g.sections[0], g.n_sections > 1 ? g.sections[1] : "");
        const int64_t a = node_of(&g, "alpha"), b = node_of(&g, "beta"), c = node_of(&g, "gamma"),
                      z = node_of(&g, "libz"), ns = node_of(&g, "nosection");
        CHECK(a >= 0 && b >= 0 && c >= 0 && z >= 0 && ns >= 0, "names");
        if (a >= 0 && b >= 0 && c >= 0 && z >= 0 && ns >= 0) {
            CHECK(g.label[b] == 1 && g.label[a] == 1 && g.label[z] == 0 && g.label[ns] == -1,
                  "labels: contrib/utils is utils, a missing section is -1");
            /* alpha -> libz, beta, gamma (alternatives), not nothere; beta -> libz
             * (Pre-Depends); undirected; self-loops */
            CHECK(has_edge(&g, a, z) && has_edge(&g, a, b) && has_edge(&g, a, c) && has_edge(&g, z, a) &&
                      has_edge(&g, b, z) && has_edge(&g, z, b) && has_edge(&g, a, a) && has_edge(&g, ns, ns),
                  "edges");
            CHECK(g.row_ptr[ns + 1] - g.row_ptr[ns] == 1 && g.row_ptr[a + 1] - g.row_ptr[a] == 4,
                  "alpha has 4 neighbours with itself (libz once), nosection only itself");
            /* words: "tool" (3 packages), "library" (2), "alpha" (2), "beta",
             * ... the 6 most frequent; alpha's features: alpha, tool, for,
             * the (4 slots, distinct, in order) */
            int alpha_words = 0;
            for (int w = 0; w < 4; w++) alpha_words += g.feat[a * 4 + w] > 0;
            CHECK(g.vocab == 6 && !strcmp(g.words[1], "tool") && alpha_words >= 2 &&
                      !strcmp(g.words[g.feat[a * 4]], "alpha") && !strcmp(g.words[g.feat[a * 4 + 1]], "tool"),
                  "vocabulary %d: %s ...; alpha's words %d (%s %s)", g.vocab, g.words[1], alpha_words,
                  g.words[g.feat[a * 4]], g.words[g.feat[a * 4 + 1]]);
        }
        const attn_graph gg = {g.n, g.row_ptr, g.col};
        CHECK_OK(attn_graph_check(&gg));
        attn_deb_graph_free(&g);
    }
    /* errors */
    CHECK(write_text(path, "Section: libs\nDescription: no name\n\n") == 0, "write");
    CHECK(attn_deb_graph_load(path, NULL, &g) == ATTN_ERR_FORMAT && strstr(attn_last_error(), "no Package"),
          "a stanza without Package: %s", attn_last_error());
    CHECK(write_text(path, "") == 0, "write");
    CHECK(attn_deb_graph_load(path, NULL, &g) == ATTN_ERR_FORMAT && strstr(attn_last_error(), "no package"),
          "an empty index: %s", attn_last_error());
    CHECK(attn_deb_graph_load("/nonexistent/Packages", NULL, &g) == ATTN_ERR_IO, "a missing file");
    const attn_deb_graph_opts bad = {0, -3};
    CHECK(attn_deb_graph_load(path, &bad, &g) == ATTN_ERR_INVALID_ARG, "vocab_size -3 accepted");
    unlink(path);
    rmdir(dir);
    TEST_END();
}

/* The node classifier learns what only the neighbours tell: nodes of two
 * classes with the same words, each linked to 3 "marker" nodes whose words
 * name the class. Without attention (0 layers) test accuracy stays near
 * chance on the unmarked nodes; with one graph attention layer it is high. */
static double neighbour_task(int layers) {
    const int64_t P = 120, N = P + 6, L = 2;
    int64_t *rp = malloc(sizeof(int64_t) * (size_t)(N + 1));
    int32_t *col = malloc(sizeof(int32_t) * (size_t)(N * 8));
    int32_t *feat = calloc((size_t)(N * L), sizeof(int32_t));
    int32_t *target = malloc(sizeof(int32_t) * (size_t)N);
    attn_params *ps = NULL;
    attn_ctx *ctx = test_ctx_new((size_t)64 << 20, 1, 0);
    attn_optim *opt = NULL;
    double acc = -1.0;
    if (!rp || !col || !feat || !target || !ctx) goto out;
    /* nodes 0 .. P-1: class i % 2, word 1 ("thing"); markers P .. P+5:
     * class 0 (P..P+2, word 2) and class 1 (P+3..P+5, word 3) */
    int64_t e = 0;
    rp[0] = 0;
    for (int64_t i = 0; i < N; i++) {
        if (i < P) {
            feat[i * L] = 1;
            col[e++] = (int32_t)i;
            const int64_t m0 = P + 3 * (i % 2);
            for (int k = 0; k < 3; k++) col[e++] = (int32_t)(m0 + k);
            target[i] = (int32_t)(i % 2);
        } else {
            feat[i * L] = i < P + 3 ? 2 : 3;
            col[e++] = (int32_t)i;
            target[i] = i < P + 3 ? 0 : 1;
        }
        rp[i + 1] = e;
    }
    const attn_graph g = {N, rp, col};
    attn_node_classifier m;
    attn_node_classifier_config c = {.vocab = 3, .max_words = L, .emb_dim = 8, .hidden = 16,
                                     .n_classes = 2, .n_layers = layers, .n_heads = 2};
    attn_rng rng;
    attn_rng_init(&rng, 4);
    CHECK_OK(attn_params_new(&ps));
    CHECK_OK(attn_node_classifier_init(&m, ps, &c, &rng));
    attn_optim_config oc = {0};
    oc.kind = ATTN_OPTIM_ADAMW;
    oc.lr = 1e-2f;
    oc.beta1 = 0.9f;
    oc.beta2 = 0.999f;
    CHECK_OK(attn_optim_new(&opt, ps, &oc));
    if (!opt) goto out;
    const int64_t fs[2] = {N, L}, ts[1] = {N};
    for (int step = 0; step < 60; step++) {
        attn_ctx_reset(ctx);
        attn_params_zero_grad(ps);
        attn_tensor *lg = attn_node_classifier_logits(ctx, &m, attn_tensor_from(ctx, ATTN_I32, 2, fs, feat), &g, NULL);
        attn_tensor *loss = lg ? attn_cross_entropy(ctx, lg, attn_tensor_from(ctx, ATTN_I32, 1, ts, target), -1, 0.0f) : NULL;
        if (!loss || attn_backward(ctx, loss) != ATTN_OK || attn_optim_step(opt, 1e-2f) != ATTN_OK) {
            CHECK(0, "training step %d: %s", step, attn_ctx_error(ctx));
            goto out;
        }
    }
    attn_ctx_reset(ctx);
    attn_tensor *lg = attn_node_classifier_logits(ctx, &m, attn_tensor_from(ctx, ATTN_I32, 2, fs, feat), &g, NULL);
    if (!lg) goto out;
    int64_t ok = 0;
    for (int64_t i = 0; i < P; i++) ok += (attn_f32(lg)[i * 2 + 1] > attn_f32(lg)[i * 2]) == (i % 2);
    acc = (double)ok / (double)P;
out:
    attn_optim_free(opt);
    if (ctx) attn_ctx_free(ctx);
    attn_params_free(ps);
    free(rp);
    free(col);
    free(feat);
    free(target);
    return acc;
}

static void test_node_classifier(void) {
    TEST_BEGIN("graph/node classifier: attention over neighbours learns what the words cannot");
    const double without = neighbour_task(0), with = neighbour_task(1);
    CHECK(without >= 0.0 && without <= 0.6, "without attention %.3f (expected chance: the words are equal)", without);
    CHECK(with >= 0.95, "with one graph attention layer %.3f (expected >= 0.95)", with);
    TEST_END();
}

void suite_graph(void) {
    test_bpt_fixture();
    test_bpt_properties();
    test_against_sdpa();
    test_deb_graph();
    test_node_classifier();
}
