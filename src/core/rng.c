/* rng.c: the counter-based RNG (Philox4x32-10) and the sequential generator
 * built on it. Contract: include/attn/rng.h.
 *
 * Philox4x32-10 as in Random123 (Salmon, Moraes, Dror, Shaw, "Parallel random
 * numbers: as easy as 1, 2, 3", SC 2011): ten rounds of
 *   (hi0, lo0) = M0 * c0,  (hi1, lo1) = M1 * c2   (32 x 32 -> 64-bit products)
 *   c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
 * with the key bumped by the Weyl constants (W0, W1) before rounds 2..10.
 * The known-answer vectors of Random123's kat_vectors are in tests/test_rng.c.
 */
#include <math.h>

#include "internal.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void attn_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* The block of counter `counter` (64-bit, in ctr[0..1]) of stream `seed`. */
static void philox_block(uint64_t seed, uint64_t counter, uint32_t out[4]) {
    const uint32_t ctr[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), 0, 0};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    attn_philox4x32(ctr, key, out);
}

uint32_t attn_rng_u32(uint64_t seed, uint64_t offset, uint64_t index) {
    uint32_t w[4];
    philox_block(seed, offset + index / 4, w);
    return w[index % 4];
}

float attn_rng_uniform(uint64_t seed, uint64_t offset, uint64_t index) {
    /* 24 bits: every value is exactly representable, and 1.0 is never hit. */
    return (float)(attn_rng_u32(seed, offset, index) >> 8) * 0x1.0p-24f;
}

/* ---- the sequential generator ------------------------------------------
 * Word k of a generator seeded with s is attn_rng_u32(s, 0, k): the
 * generator walks the stream (s, 0) one block of four words at a time. */

void attn_rng_init(attn_rng *rng, uint64_t seed) {
    rng->seed = seed;
    rng->offset = 0;
    rng->buf[0] = rng->buf[1] = rng->buf[2] = rng->buf[3] = 0;
    rng->used = 4;
}

uint32_t attn_rng_next_u32(attn_rng *rng) {
    if (rng->used >= 4) {
        philox_block(rng->seed, rng->offset, rng->buf);
        rng->offset++;
        rng->used = 0;
    }
    return rng->buf[rng->used++];
}

float attn_rng_next_uniform(attn_rng *rng) {
    return (float)(attn_rng_next_u32(rng) >> 8) * 0x1.0p-24f;
}

/* Box-Muller on two words (cosine branch only, so one draw always consumes
 * exactly two words and a replay needs no cached state):
 *   u1 = (w1 + 1) 2^-32 in (0, 1]  (never 0: the log stays finite),
 *   u2 = w2 2^-32 in [0, 1),
 *   z  = sqrt(-2 ln u1) cos(2 pi u2).
 * Computed in double from 32-bit words, the tail reaches |z| = 6.66. */
float attn_rng_next_normal(attn_rng *rng) {
    const double two_pi = 6.28318530717958647692;
    double u1 = ((double)attn_rng_next_u32(rng) + 1.0) * 0x1.0p-32;
    double u2 = (double)attn_rng_next_u32(rng) * 0x1.0p-32;
    return (float)(sqrt(-2.0 * log(u1)) * cos(two_pi * u2));
}

/* Unbiased by rejection: words below 2^32 mod n are redrawn, so the accepted
 * range holds a whole number of copies of [0, n) and r % n is uniform.
 * The rejection probability is below 1/2 for every n. n = 0 returns 0
 * without consuming a word. */
uint32_t attn_rng_next_below(attn_rng *rng, uint32_t n) {
    if (n == 0) return 0;
    const uint32_t threshold = (uint32_t)(0u - n) % n; /* 2^32 mod n */
    for (;;) {
        uint32_t r = attn_rng_next_u32(rng);
        if (r >= threshold) return r % n;
    }
}
