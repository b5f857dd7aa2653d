/* attn/rng.h: a counter-based random number generator (Philox4x32-10).
 *
 * Philox (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
 * SC 2011) maps (key, counter) to four independent 32-bit words. Being a
 * pure function of its inputs, it lets any element's random number be
 * recomputed on demand: dropout masks are regenerated in backward, and
 * threads need no shared state. Element i of a stream (seed, offset) uses
 * counter offset + i/4, word i%4.
 */
#ifndef ATTN_RNG_H
#define ATTN_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One Philox4x32-10 block: out[0..3] from the 128-bit counter ctr[0..3]
 * and the 64-bit key key[0..1]. */
void attn_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* The 32-bit word number `index` of the stream (seed, offset):
 * counter = (offset + index/4) as a 64-bit value in ctr[0..1], ctr[2..3] = 0,
 * key = seed (low word first), word index % 4. */
uint32_t attn_rng_u32(uint64_t seed, uint64_t offset, uint64_t index);

/* Uniform float in [0, 1) with 24 random bits: (u32 >> 8) * 2^-24. */
float attn_rng_uniform(uint64_t seed, uint64_t offset, uint64_t index);

/* A sequential generator on top of the stream, for initialisation and data
 * shuffling: each draw consumes one word. */
typedef struct attn_rng {
    uint64_t seed;
    uint64_t offset; /* counters consumed so far are in [offset0, offset) */
    uint32_t buf[4];
    int used;        /* words of buf already returned (4 = empty) */
} attn_rng;

void attn_rng_init(attn_rng *rng, uint64_t seed);
uint32_t attn_rng_next_u32(attn_rng *rng);
float attn_rng_next_uniform(attn_rng *rng);      /* [0, 1) */
float attn_rng_next_normal(attn_rng *rng);       /* N(0, 1), Box-Muller */
uint32_t attn_rng_next_below(attn_rng *rng, uint32_t n); /* [0, n), unbiased */

#ifdef __cplusplus
}
#endif
#endif
