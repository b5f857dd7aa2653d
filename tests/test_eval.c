/* test_eval.c: BLEU, exact match and character error rate
 * (include/attn/eval.h).
 *
 * The expected numbers are sacrebleu 2.6.0's (Python 3.11), written here as
 * literals so that CI needs no Python. They were produced by this script
 * (`pip install --target /tmp/sb sacrebleu`, then
 * `PYTHONPATH=/tmp/sb python3 gen.py`):
 *
 *   import sacrebleu
 *   from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
 *   S = {
 *    "news": (["The cat sat on the mat.", "It's 3.5 km to the station, isn't it?",
 *              "He said \"hello\" to me (twice).", "Prices rose 4-5% in 2019-2020.",
 *              "A quick brown fox jumps over the lazy dog"],
 *             ["The cat is sitting on the mat.", "It is 3.5 km to the station, isn't it?",
 *              "He said \"hello\" to me twice.", "Prices rose by 4-5% in 2019-2020.",
 *              "The quick brown fox jumped over the lazy dog."]),
 *    "german": (["Die Datei „foo“ wurde nicht gefunden.", "Größe &amp; Farbe &lt;rot&gt;",
 *                "Fehler: %s kann nicht geöffnet werden"],
 *               ["Die Datei „foo“ konnte nicht gefunden werden.", "Größe & Farbe <rot>",
 *                "Fehler: %s konnte nicht geöffnet werden"]),
 *    "shorter": (["the cat sat on", "on the red mat"], ["the cat sat on the mat today", "on the red mat today , said he"]),
 *    "longer": (["the cat sat on the mat on the mat", "a dog a dog a dog"],
 *               ["the cat sat on the mat", "a dog"]),
 *    "no4gram": (["a b c x d e f", "g h y i j"], ["a b c d e f", "g h i j"]),
 *    "nomatch": (["x y z w"], ["a b c d"]),
 *    "empty_hyp": (["", ""], ["a b c", "d e"]),
 *    "short3": (["a b c", "d e"], ["a b c", "d e f"]),
 *   }
 *   for k, (h, r) in S.items():
 *       print(k, repr(sacrebleu.corpus_bleu(h, [r]).score))
 *   P = [("The cat sat on the mat.", "The cat is sitting on the mat."),
 *        ("a b", "a b c d"), ("x", "y"), ("", "a"), ("2024-01-05", "2024-01-05"),
 *        ("a b c x d e f", "a b c d e f")]
 *   for h, r in P:
 *       print(repr(h), repr(sacrebleu.sentence_bleu(h, [r]).score))
 *   T = Tokenizer13a()
 *   for l in ["Hello, world!", "a.b,c 1.5 1,000 x. y,", "(a)[b]{c}<d>\"e\"&f", "2019-2020 a-b",
 *             "&amp;lt; &quot;q&quot; <skipped>x", "ab-\ncd\nef", "Grüße — „Zitat“.", "end .  \t\u00a0"]:
 *       print(repr(l), repr(T(l.rstrip())))
 *   for k in ["news", "longer", "shorter"]:
 *       b = sacrebleu.corpus_bleu(*[S[k][0], [S[k][1]]])
 *       print(k, b.sys_len, b.ref_len, b.counts, b.totals, repr(b.bp))
 *
 * During development the tokenizer was also compared with sacrebleu's on
 * 20000 random lines drawn from punctuation, digits, entities, "<skipped>",
 * "-\n" and Unicode spaces (no difference), and sentence and corpus BLEU on
 * 3000 random pairs (largest difference 0).
 *
 * Tolerance: 1e-9 on the 0..100 scale. attn performs sacrebleu's double
 * operations in the same order, so on this machine the results agree to the
 * last bit; the margin is for another libm's log and exp.
 */
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define BLEU_TOL 1e-9

static const struct {
    const char *in, *expected;
} tok_cases[] = {
    {"Hello, world!", "Hello , world !"},
    {"a.b,c 1.5 1,000 x. y,", "a . b , c 1.5 1,000 x . y ,"},
    {"(a)[b]{c}<d>\"e\"&f", "( a ) [ b ] { c } < d > \" e \" & f"},
    {"2019-2020 a-b", "2019 - 2020 a-b"},
    {"&amp;lt; &quot;q&quot; <skipped>x", "< \" q \" x"},
    {"ab-\ncd\nef", "abcd ef"},
    {"Grüße — „Zitat“.", "Grüße — „Zitat“ ."},
    {"end .  \t\xc2\xa0", "end ."}, /* trailing U+00A0 is whitespace to rstrip */
};

#define MAXS 5
static const struct {
    const char *name;
    int n;
    const char *hyp[MAXS], *ref[MAXS];
    double expected;
} corpus_sets[] = {
    {"news",
     5,
     {"The cat sat on the mat.", "It's 3.5 km to the station, isn't it?",
      "He said \"hello\" to me (twice).", "Prices rose 4-5% in 2019-2020.",
      "A quick brown fox jumps over the lazy dog"},
     {"The cat is sitting on the mat.", "It is 3.5 km to the station, isn't it?",
      "He said \"hello\" to me twice.", "Prices rose by 4-5% in 2019-2020.",
      "The quick brown fox jumped over the lazy dog."},
     66.01206872006745},
    {"german",
     3,
     {"Die Datei „foo“ wurde nicht gefunden.", "Größe &amp; Farbe &lt;rot&gt;",
      "Fehler: %s kann nicht geöffnet werden"},
     {"Die Datei „foo“ konnte nicht gefunden werden.", "Größe & Farbe <rot>",
      "Fehler: %s konnte nicht geöffnet werden"},
     55.6659938193761},
    {"shorter",
     2,
     {"the cat sat on", "on the red mat"},
     {"the cat sat on the mat today", "on the red mat today , said he"},
     41.686201967850856},
    {"longer",
     2,
     {"the cat sat on the mat on the mat", "a dog a dog a dog"},
     {"the cat sat on the mat", "a dog"},
     41.56120869693424},
    {"no4gram", 2, {"a b c x d e f", "g h y i j"}, {"a b c d e f", "g h i j"}, 31.94715521231361},
    {"nomatch", 1, {"x y z w"}, {"a b c d"}, 0.0},
    {"empty_hyp", 2, {"", ""}, {"a b c", "d e"}, 0.0},
    {"short3", 2, {"a b c", "d e"}, {"a b c", "d e f"}, 0.0},
};

static const struct {
    const char *hyp, *ref;
    double expected;
} sentence_cases[] = {
    {"The cat sat on the mat.", "The cat is sitting on the mat.", 42.38365628278778},
    {"a b", "a b c d", 36.78794411714425},
    {"x", "y", 0.0},
    {"", "a", 0.0},
    {"2024-01-05", "2024-01-05", 100.00000000000004},
    {"a b c x d e f", "a b c d e f", 41.11336169005196},
};

static int find_set(const char *name) {
    for (size_t i = 0; i < sizeof corpus_sets / sizeof corpus_sets[0]; i++)
        if (strcmp(corpus_sets[i].name, name) == 0) return (int)i;
    return -1;
}

static void eval_set(int k, attn_eval *ev) {
    attn_eval_init(ev);
    for (int i = 0; i < corpus_sets[k].n; i++)
        CHECK_OK(attn_eval_add(ev, corpus_sets[k].hyp[i], corpus_sets[k].ref[i]));
}

static void test_tokenize(void) {
    TEST_BEGIN("eval/tokenize_13a_vs_sacrebleu");
    for (size_t i = 0; i < sizeof tok_cases / sizeof tok_cases[0]; i++) {
        char *out = NULL;
        CHECK_OK(attn_tokenize_13a(tok_cases[i].in, &out));
        CHECK(out && strcmp(out, tok_cases[i].expected) == 0,
              "case %zu: tokenized to '%s', sacrebleu gives '%s'", i, out ? out : "(null)",
              tok_cases[i].expected);
        free(out);
    }
    char *out = NULL;
    CHECK_OK(attn_tokenize_13a("  \t\n", &out));
    CHECK(out && out[0] == 0, "whitespace only must give \"\", got '%s'", out ? out : "(null)");
    free(out);
    CHECK(attn_tokenize_13a(NULL, &out) == ATTN_ERR_INVALID_ARG, "NULL line accepted");
    CHECK(strstr(attn_last_error(), "attn_tokenize_13a") != NULL, "message '%s'",
          attn_last_error());
    TEST_END();
}

static void test_corpus(void) {
    TEST_BEGIN("eval/corpus_bleu_vs_sacrebleu");
    for (size_t k = 0; k < sizeof corpus_sets / sizeof corpus_sets[0]; k++) {
        attn_eval ev;
        eval_set((int)k, &ev);
        attn_bleu_score s;
        CHECK_OK(attn_eval_bleu(&ev, &s));
        CHECK(fabs(s.score - corpus_sets[k].expected) <= BLEU_TOL,
              "set '%s': BLEU %.17g, sacrebleu %.17g", corpus_sets[k].name, s.score,
              corpus_sets[k].expected);
        CHECK(s.score >= 0 && s.score <= 100 + BLEU_TOL, "set '%s': %g outside 0..100",
              corpus_sets[k].name, s.score);
    }
    /* The statistics themselves (sacrebleu's sys_len, ref_len, counts, totals, bp). */
    static const struct {
        const char *name;
        int64_t sys, ref, correct[4], total[4];
        double bp;
    } st[] = {
        {"news", 48, 50, {42, 32, 24, 18}, {48, 43, 38, 33}, 0.9591894571091382},
        {"longer", 15, 8, {8, 6, 4, 3}, {15, 13, 11, 9}, 1.0},
        {"shorter", 8, 15, {8, 6, 4, 2}, {8, 6, 4, 2}, 0.4168620196785084},
    };
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        attn_eval ev;
        eval_set(find_set(st[i].name), &ev);
        attn_bleu_score s;
        CHECK_OK(attn_eval_bleu(&ev, &s));
        CHECK(s.stats.sys_len == st[i].sys && s.stats.ref_len == st[i].ref,
              "%s: lengths %lld/%lld, expected %lld/%lld", st[i].name,
              (long long)s.stats.sys_len, (long long)s.stats.ref_len, (long long)st[i].sys,
              (long long)st[i].ref);
        for (int n = 0; n < 4; n++)
            CHECK(s.stats.correct[n] == st[i].correct[n] && s.stats.total[n] == st[i].total[n],
                  "%s: order %d: %lld/%lld matches, expected %lld/%lld", st[i].name, n + 1,
                  (long long)s.stats.correct[n], (long long)s.stats.total[n],
                  (long long)st[i].correct[n], (long long)st[i].total[n]);
        CHECK(fabs(s.bp - st[i].bp) <= 1e-15, "%s: bp %.17g, expected %.17g", st[i].name, s.bp,
              st[i].bp);
    }
    TEST_END();
}

static void test_sentence(void) {
    TEST_BEGIN("eval/sentence_bleu_vs_sacrebleu");
    for (size_t i = 0; i < sizeof sentence_cases / sizeof sentence_cases[0]; i++) {
        attn_bleu_score s;
        CHECK_OK(attn_sentence_bleu(sentence_cases[i].hyp, sentence_cases[i].ref, &s));
        CHECK(fabs(s.score - sentence_cases[i].expected) <= BLEU_TOL,
              "'%s' vs '%s': %.17g, sacrebleu %.17g", sentence_cases[i].hyp,
              sentence_cases[i].ref, s.score, sentence_cases[i].expected);
    }
    TEST_END();
}

static void test_bleu_edges(void) {
    TEST_BEGIN("eval/bleu_edge_cases");
    attn_bleu_score s;
    /* Empty hypothesis: no tokens, BP 0, score 0, no division by zero. */
    CHECK_OK(attn_sentence_bleu("", "a b c", &s));
    CHECK(s.score == 0 && s.bp == 0 && s.stats.sys_len == 0 && s.stats.ref_len == 3,
          "empty hyp: score %g bp %g lens %lld/%lld", s.score, s.bp, (long long)s.stats.sys_len,
          (long long)s.stats.ref_len);
    /* Empty reference and hypothesis: 0, not NaN. */
    CHECK_OK(attn_sentence_bleu("", "", &s));
    CHECK(s.score == 0 && isfinite(s.bp), "both empty: score %g bp %g", s.score, s.bp);
    /* Identical: 100 (sacrebleu gives 100.00000000000004). */
    CHECK_OK(attn_sentence_bleu("one two three four five", "one two three four five", &s));
    CHECK(fabs(s.score - 100.0) <= 1e-9 && s.bp == 1.0, "identical: %.17g", s.score);
    /* Clipping: "the the the the" against "the cat": 1 of 4 unigrams. */
    CHECK_OK(attn_sentence_bleu("the the the the", "the cat", &s));
    CHECK(s.stats.correct[0] == 1 && s.stats.total[0] == 4, "clipping: %lld/%lld",
          (long long)s.stats.correct[0], (long long)s.stats.total[0]);
    /* Longer hypothesis: BP 1; shorter: BP exp(1 - r/c). */
    CHECK_OK(attn_sentence_bleu("a b c d e f", "a b c d", &s));
    CHECK(s.bp == 1.0 && fabs(s.ratio - 1.5) < 1e-15, "longer: bp %g ratio %g", s.bp, s.ratio);
    CHECK_OK(attn_sentence_bleu("a b c d", "a b c d e f g h", &s));
    CHECK(fabs(s.bp - exp(1.0 - 8.0 / 4.0)) <= 1e-15, "shorter: bp %.17g", s.bp);
    /* exp smoothing: the k-th order without matches gets 100 / (2^k total). */
    CHECK_OK(attn_sentence_bleu("a b x c", "a b c", &s));
    CHECK(fabs(s.precision[2] - 100.0 / (2 * 2)) < 1e-12 &&
              fabs(s.precision[3] - 100.0 / (4 * 1)) < 1e-12,
          "smoothing: p3 %g (expected 25), p4 %g (expected 25)", s.precision[2], s.precision[3]);
    /* Corpus vs sentence on short output: corpus order 4 has no n-grams -> 0. */
    attn_bleu_stats st = {0};
    CHECK_OK(attn_bleu_stats_add(&st, "a b c", "a b c"));
    attn_bleu_score corpus, sent;
    CHECK_OK(attn_bleu_compute(&st, 0, &corpus));
    CHECK_OK(attn_bleu_compute(&st, 1, &sent));
    CHECK(corpus.score == 0 && fabs(sent.score - 100.0) < 1e-9,
          "3 tokens: corpus %g (expected 0), sentence %g (expected 100)", corpus.score,
          sent.score);
    /* Merging accumulators equals one accumulator over everything. */
    int k = find_set("news");
    attn_eval all, a, b;
    eval_set(k, &all);
    attn_eval_init(&a);
    attn_eval_init(&b);
    for (int i = 0; i < corpus_sets[k].n; i++)
        CHECK_OK(attn_eval_add(i < 2 ? &a : &b, corpus_sets[k].hyp[i], corpus_sets[k].ref[i]));
    attn_eval_merge(&a, &b);
    CHECK(memcmp(&a, &all, sizeof a) == 0, "merged accumulator differs from the whole");
    /* Errors. */
    CHECK(attn_sentence_bleu(NULL, "a", &s) == ATTN_ERR_INVALID_ARG, "NULL hyp accepted");
    CHECK(strstr(attn_last_error(), "attn_bleu_stats_add") != NULL, "message '%s'",
          attn_last_error());
    attn_bleu_stats bad = {0};
    bad.correct[0] = 3;
    bad.total[0] = 2;
    CHECK(attn_bleu_compute(&bad, 0, &s) == ATTN_ERR_INVALID_ARG && s.score == 0,
          "correct > total accepted");
    CHECK(attn_eval_add(&a, "x", NULL) == ATTN_ERR_INVALID_ARG, "NULL ref accepted");
    CHECK(memcmp(&a.bleu, &all.bleu, sizeof a.bleu) == 0 && a.n == all.n,
          "failed add changed the accumulator");
    TEST_END();
}

static void test_exact_cer(void) {
    TEST_BEGIN("eval/exact_match_and_cer");
    static const struct {
        const char *a, *b;
        int64_t dist, nref;
    } ed[] = {
        {"kitten", "sitting", 3, 7},
        {"Grüße", "Grüsse", 2, 6}, /* code points: ß -> s, insert s (bytes would differ) */
        {"", "abc", 3, 3},
        {"abc", "", 3, 0},
        {"日本語", "日本", 1, 2},
        {"2024-01-05", "2024-01-05", 0, 10},
        {"\xff\xfe", "\xff", 1, 1}, /* invalid bytes count as one character each */
    };
    for (size_t i = 0; i < sizeof ed / sizeof ed[0]; i++) {
        int64_t d = -1, n = -1;
        CHECK_OK(attn_char_edit_distance(ed[i].a, ed[i].b, &d, &n));
        CHECK(d == ed[i].dist && n == ed[i].nref, "case %zu: distance %lld, %lld ref chars; "
              "expected %lld, %lld", i, (long long)d, (long long)n, (long long)ed[i].dist,
              (long long)ed[i].nref);
        int64_t d2 = -1;
        CHECK_OK(attn_char_edit_distance(ed[i].b, ed[i].a, &d2, NULL));
        CHECK(d2 == d, "case %zu: not symmetric (%lld vs %lld)", i, (long long)d2, (long long)d);
    }
    attn_eval ev;
    attn_eval_init(&ev);
    CHECK(attn_eval_exact_match(&ev) == 0 && attn_eval_cer(&ev) == 0, "empty accumulator");
    CHECK_OK(attn_eval_add(&ev, "2024-01-05", "2024-01-05"));
    CHECK_OK(attn_eval_add(&ev, "2024-01-06", "2024-01-05"));
    CHECK_OK(attn_eval_add(&ev, "2024-01-05 ", "2024-01-05")); /* byte for byte: no match */
    CHECK_OK(attn_eval_add(&ev, "", "1999-12-31"));
    CHECK(ev.n == 4 && ev.exact == 1, "exact %lld of %lld, expected 1 of 4", (long long)ev.exact,
          (long long)ev.n);
    CHECK(fabs(attn_eval_exact_match(&ev) - 0.25) < 1e-15, "exact match %g",
          attn_eval_exact_match(&ev));
    /* edits 0 + 1 + 1 + 10 = 12 over 40 reference characters. */
    CHECK(fabs(attn_eval_cer(&ev) - 12.0 / 40.0) < 1e-15, "CER %.17g, expected 0.3",
          attn_eval_cer(&ev));
    attn_eval_init(&ev);
    CHECK_OK(attn_eval_add(&ev, "ab", ""));
    CHECK(attn_eval_cer(&ev) == 2.0, "CER with empty references %g, expected 2", attn_eval_cer(&ev));
    TEST_END();
}

void suite_eval(void) {
    test_tokenize();
    test_corpus();
    test_sentence();
    test_bleu_edges();
    test_exact_cer();
}
