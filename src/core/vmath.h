/* vmath.h: vectorisable elementary functions shared by the fast kernels.
 * Private (attn__ prefix); header-only so that each kernel, and each
 * target_clones clone of a kernel, inlines them. */
#ifndef ATTN_VMATH_H
#define ATTN_VMATH_H

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define ATTN__VMATH_INLINE static inline __attribute__((always_inline))
#else
#define ATTN__VMATH_INLINE static inline
#endif

/* exp(x) for x already clamped to [-87, 88] (so 2^n stays a normal float):
 * Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, Cephes' degree-7
 * minimax polynomial for exp(r) (below 1 ulp on [-87, 88], measured), times
 * 2^n built in the exponent bits. n is rounded with the 1.5 * 2^23 trick and
 * read back from the bits of that sum, so the loop has no float-to-int
 * conversion. libm's expf does not vectorise; this does.
 * Callers clamp in a separate loop on purpose: fused into the same loop, GCC
 * turns the clamp into branches and then refuses to if-convert the float
 * arithmetic under -ftrapping-math, so nothing would vectorise. NaN passes
 * through the clamp and stays NaN. */
ATTN__VMATH_INLINE float attn__exp_core(float x) {
    const float t = x * 1.44269504088896341f + 12582912.0f;
    const float n = t - 12582912.0f;
    int32_t ti;
    memcpy(&ti, &t, sizeof ti);     /* the low mantissa bits of t hold n */
    float r = x - n * 0.693359375f; /* ln2 = 0.693359375 - 2.12194440e-4; n * first part exact */
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    const int32_t bits = (ti - 0x4B400000 + 127) * 8388608; /* (n + 127) << 23 */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#endif
