/* test_rng.c: the Philox4x32-10 generator (include/attn/rng.h).
 *
 * Known answers come from Random123's kat_vectors (the "philox4x32 10"
 * lines: counter[4] key[2] -> output[4]); they were also recomputed with an
 * independent implementation of the published algorithm. The statistical
 * checks use enough draws that the tolerances sit at 5 to 8 standard errors
 * from the exact value while a wrong formula misses them by far more. */
#include <stdint.h>
#include <string.h>

#include "test.h"

#define N_DRAWS 200000

static void test_kat(void) {
    TEST_BEGIN("rng: Philox4x32-10 known answers (Random123 kat_vectors)");
    static const struct {
        uint32_t ctr[4], key[2], out[4];
    } kat[] = {
        {{0x00000000, 0x00000000, 0x00000000, 0x00000000},
         {0x00000000, 0x00000000},
         {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t k = 0; k < sizeof kat / sizeof kat[0]; k++) {
        uint32_t out[4];
        attn_philox4x32(kat[k].ctr, kat[k].key, out);
        for (int w = 0; w < 4; w++)
            CHECK(out[w] == kat[k].out[w], "vector %zu word %d: got 0x%08x, expected 0x%08x", k, w,
                  out[w], kat[k].out[w]);
    }
    TEST_END();
}

static void test_stream_layout(void) {
    TEST_BEGIN("rng: stream (seed, offset) element i = counter offset + i/4, word i%4");
    const uint64_t seed = 0x0123456789abcdefull;
    const uint64_t offsets[] = {0, 7, 0xfffffffeull, 0xffffffffffffffffull - 3};
    for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++) {
        for (uint64_t i = 0; i < 12; i++) {
            uint64_t c = offsets[o] + i / 4;
            uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), 0, 0};
            uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
            uint32_t blk[4];
            attn_philox4x32(ctr, key, blk);
            uint32_t got = attn_rng_u32(seed, offsets[o], i);
            CHECK(got == blk[i % 4], "offset %llu index %llu: got 0x%08x, expected 0x%08x",
                  (unsigned long long)offsets[o], (unsigned long long)i, got, blk[i % 4]);
            float u = attn_rng_uniform(seed, offsets[o], i);
            float want = (float)(blk[i % 4] >> 8) / 16777216.0f;
            CHECK(u == want, "uniform offset %llu index %llu: got %.9g, expected %.9g",
                  (unsigned long long)offsets[o], (unsigned long long)i, (double)u, (double)want);
        }
    }
    /* The sequential generator walks the stream (seed, 0). */
    attn_rng r;
    attn_rng_init(&r, seed);
    for (uint64_t i = 0; i < 41; i++) {
        uint32_t got = attn_rng_next_u32(&r), want = attn_rng_u32(seed, 0, i);
        CHECK(got == want, "sequential word %llu: 0x%08x vs stream 0x%08x", (unsigned long long)i,
              got, want);
    }
    CHECK(r.offset == 11, "after 41 words the generator holds counter 11, has %llu",
          (unsigned long long)r.offset);
    /* Different seeds and offsets give different streams. */
    CHECK(attn_rng_u32(1, 0, 0) != attn_rng_u32(2, 0, 0), "seeds 1 and 2 agree on word 0");
    CHECK(attn_rng_u32(1, 0, 0) != attn_rng_u32(1, 1, 0), "offsets 0 and 1 agree on word 0");
    TEST_END();
}

static void test_uniform(void) {
    TEST_BEGIN("rng: uniform in [0, 1), mean 1/2, variance 1/12");
    attn_rng r;
    attn_rng_init(&r, 42);
    double s = 0, s2 = 0, lo = 1, hi = 0;
    int out_of_range = 0, below_quarter = 0;
    for (int i = 0; i < N_DRAWS; i++) {
        double u = attn_rng_next_uniform(&r);
        if (!(u >= 0.0 && u < 1.0)) out_of_range++;
        if (u < 0.25) below_quarter++;
        s += u;
        s2 += u * u;
        if (u < lo) lo = u;
        if (u > hi) hi = u;
    }
    double mean = s / N_DRAWS, var = s2 / N_DRAWS - mean * mean;
    CHECK(out_of_range == 0, "%d draws outside [0, 1)", out_of_range);
    /* standard errors: mean 0.00065, variance 0.00017, fraction 0.00097 */
    CHECK(fabs(mean - 0.5) < 0.004, "mean %.6f, expected 0.5", mean);
    CHECK(fabs(var - 1.0 / 12.0) < 0.0015, "variance %.6f, expected %.6f", var, 1.0 / 12.0);
    CHECK(fabs((double)below_quarter / N_DRAWS - 0.25) < 0.006, "P(u < 1/4) = %.5f, expected 0.25",
          (double)below_quarter / N_DRAWS);
    CHECK(lo < 1e-4 && hi > 1.0 - 1e-4, "range [%.6g, %.6g] does not cover [0, 1)", lo, hi);
    /* The stream's uniform: same bounds over several offsets. */
    int bad = 0;
    for (uint64_t i = 0; i < 4096; i++) {
        float u = attn_rng_uniform(7, 1000, i);
        if (!(u >= 0.0f && u < 1.0f)) bad++;
    }
    CHECK(bad == 0, "%d stream uniforms outside [0, 1)", bad);
    TEST_END();
}

static void test_normal(void) {
    TEST_BEGIN("rng: normal mean 0, variance 1, kurtosis 3, P(|z| < 1) = 0.6827, uncorrelated");
    attn_rng r;
    attn_rng_init(&r, 2024);
    double s = 0, s2 = 0, s4 = 0, lag = 0, prev = 0;
    int inside = 0, nonfinite = 0;
    for (int i = 0; i < N_DRAWS; i++) {
        double z = attn_rng_next_normal(&r);
        lag += z * prev;
        prev = z;
        if (!isfinite(z)) nonfinite++;
        s += z;
        s2 += z * z;
        s4 += z * z * z * z;
        if (fabs(z) < 1.0) inside++;
    }
    double mean = s / N_DRAWS, var = s2 / N_DRAWS - mean * mean, kurt = (s4 / N_DRAWS) / (var * var);
    double frac = (double)inside / N_DRAWS;
    CHECK(nonfinite == 0, "%d non-finite normals", nonfinite);
    /* standard errors: mean 0.0022, variance 0.0032, kurtosis 0.011, fraction 0.001 */
    CHECK(fabs(mean) < 0.015, "mean %.5f, expected 0", mean);
    CHECK(fabs(var - 1.0) < 0.02, "variance %.5f, expected 1", var);
    CHECK(fabs(kurt - 3.0) < 0.08, "kurtosis %.4f, expected 3", kurt);
    CHECK(fabs(frac - 0.682689) < 0.006, "P(|z| < 1) = %.5f, expected 0.68269", frac);
    /* consecutive draws are uncorrelated (standard error 0.0022) */
    CHECK(fabs(lag / N_DRAWS) < 0.015, "lag-1 correlation %.5f, expected 0", lag / N_DRAWS);
    /* One normal consumes two words. */
    attn_rng a;
    attn_rng_init(&a, 5);
    (void)attn_rng_next_normal(&a);
    CHECK(attn_rng_next_u32(&a) == attn_rng_u32(5, 0, 2), "a normal did not consume two words");
    TEST_END();
}

static void test_below(void) {
    TEST_BEGIN("rng: next_below in [0, n) and unbiased");
    attn_rng r;
    attn_rng_init(&r, 99);
    int bad = 0;
    const uint32_t ns[] = {1, 2, 3, 7, 10, 1000, 0x80000001u, 0xffffffffu};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
        for (int i = 0; i < 2000; i++)
            if (attn_rng_next_below(&r, ns[k]) >= ns[k]) bad++;
    CHECK(bad == 0, "%d draws outside [0, n)", bad);
    CHECK(attn_rng_next_below(&r, 0) == 0, "next_below(0) is not 0");
    /* Counts of n = 10 over 100000 draws: chi-square with 9 dof; 40 is far
     * in the tail (p < 1e-5). */
    int cnt[10] = {0};
    for (int i = 0; i < 100000; i++) cnt[attn_rng_next_below(&r, 10)]++;
    double chi2 = 0;
    for (int v = 0; v < 10; v++) chi2 += (cnt[v] - 10000.0) * (cnt[v] - 10000.0) / 10000.0;
    CHECK(chi2 < 40.0, "chi-square %.2f for n = 10 (9 dof)", chi2);
    /* n = 3 * 2^30: plain r % n would put half of the draws below 2^30
     * instead of a third. */
    const uint32_t n = 0xC0000000u;
    int low = 0;
    const int draws = 60000;
    for (int i = 0; i < draws; i++)
        if (attn_rng_next_below(&r, n) < 0x40000000u) low++;
    CHECK(fabs((double)low / draws - 1.0 / 3.0) < 0.015, "P(r < 2^30) = %.4f for n = 3*2^30, expected 1/3",
          (double)low / draws);
    TEST_END();
}

static void test_replay(void) {
    TEST_BEGIN("rng: same seed replays the same numbers; stream is a pure function");
    attn_rng a, b;
    attn_rng_init(&a, 12345);
    attn_rng_init(&b, 12345);
    int diff = 0;
    for (int i = 0; i < 1000; i++) {
        if (attn_rng_next_u32(&a) != attn_rng_next_u32(&b)) diff++;
        if (attn_rng_next_uniform(&a) != attn_rng_next_uniform(&b)) diff++;
        if (attn_rng_next_normal(&a) != attn_rng_next_normal(&b)) diff++;
        if (attn_rng_next_below(&a, 17) != attn_rng_next_below(&b, 17)) diff++;
    }
    CHECK(diff == 0, "%d draws differ between two generators with the same seed", diff);
    attn_rng c;
    attn_rng_init(&c, 12346);
    int same = 0;
    for (int i = 0; i < 64; i++) same += attn_rng_next_u32(&a) == attn_rng_next_u32(&c);
    CHECK(same < 4, "seeds 12345 and 12346 agree on %d of 64 words", same);
    /* The stream can be read in any order. */
    float fwd[64], rev[64];
    for (int i = 0; i < 64; i++) fwd[i] = attn_rng_uniform(3, 17, (uint64_t)i);
    for (int i = 63; i >= 0; i--) rev[i] = attn_rng_uniform(3, 17, (uint64_t)i);
    CHECK(memcmp(fwd, rev, sizeof fwd) == 0, "the stream depends on the order of reads");
    /* The reinitialised generator replays. */
    attn_rng d;
    attn_rng_init(&d, 777);
    uint32_t first[9];
    for (int i = 0; i < 9; i++) first[i] = attn_rng_next_u32(&d);
    attn_rng_init(&d, 777);
    for (int i = 0; i < 9; i++)
        CHECK(attn_rng_next_u32(&d) == first[i], "word %d differs after attn_rng_init", i);
    TEST_END();
}

void suite_rng(void) {
    test_kat();
    test_stream_layout();
    test_uniform();
    test_normal();
    test_below();
    test_replay();
}
