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
    uint32_t ti;
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
    /* (n + 127) << 23, in unsigned arithmetic: for a NaN argument the bits
     * are garbage (the product stays NaN) and must not overflow a signed int */
    const uint32_t bits = (ti - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* erf(x) for x already clamped to [-4, 4] (beyond 3.92 erf rounds to +-1 in
 * float, and 4 keeps e^-x^2 far inside exp_core's range; clamp so that NaN
 * passes: `x > 4 ? 4 : x`, `x < -4 ? -4 : x`). Two pieces, both evaluated and
 * one selected, so a loop over it has no branch and vectorises:
 *   |x| <  0.875:  x P(x^2), P of degree 6 (erf is odd and erf(x)/x smooth),
 *                  summed as x + x (P - 1) so that the leading term carries
 *                  no rounding;
 *   |x| >= 0.875:  sign(x) (1 - e^-x^2 R(u)), u = 1/|x| - 0.6964 (the middle
 *                  of 1/|x| on [0.875, 4]): e^x^2 erfc(x) behaves like
 *                  1 / (x sqrt(pi)) times a series in 1/x^2, so a polynomial
 *                  of degree 8 in 1/|x| fits it closely; centring u keeps the
 *                  terms small so that Horner's rule loses little.
 * The coefficients are our own least-squares fits, iteratively reweighted
 * towards the smallest largest relative error of erf (fit error below 3e-10
 * on both pieces). Evaluated in float, the error is at most 1.2 ulp, 8.7e-8
 * relative (measured over a dense grid; tests/test_ops.c checks it against
 * double erf). libm's erff does not vectorise; this does. */
ATTN__VMATH_INLINE float attn__erf_core_e(float x, float e);
ATTN__VMATH_INLINE float attn__erf_core(float x) {
    return attn__erf_core_e(x, attn__exp_core(-(x * x)));
}

/* attn__erf_core with the Gaussian factor e = e^-x^2 of the large piece
 * given by the caller (the GELU's derivative has e^-v^2/2 at hand for the
 * density, with x = v / sqrt 2: one exponential instead of two). e is only
 * read for |x| >= 0.875, where it must be within a few ulp of e^-x^2 (any
 * value below 2^-23 rounds the result to +-1 at the clamp). */
ATTN__VMATH_INLINE float attn__erf_core_e(float x, float e) {
    uint32_t xb, sign;
    memcpy(&xb, &x, sizeof xb);
    sign = xb & 0x80000000u;
    const uint32_t ab = xb ^ sign; /* the bits of |x| */
    const float z = x * x;
    float p = 8.675386150e-05f;
    p = p * z - 8.211102649e-04f;
    p = p * z + 5.206747316e-03f;
    p = p * z - 2.686158466e-02f;
    p = p * z + 1.128373300e-01f;
    p = p * z - 3.761263607e-01f;
    p = p * z + 1.283791669e-01f;
    const float small = x + x * p;
    /* a >= 0 (or NaN): its bits order as it does, so the comparisons with
     * 0.875 (0x3F600000) are on integers, which GCC if-converts freely */
    const int is_small = ab < 0x3F600000u;
    const uint32_t cb = is_small ? 0x3F600000u : ab;
    float ac;
    memcpy(&ac, &cb, sizeof ac); /* max(|x|, 0.875) */
    const float u = 1.0f / ac - 0.696428571f;
    float r = 6.943218408e-03f;
    r = r * u - 2.039438794e-02f;
    r = r * u + 3.138444106e-02f;
    r = r * u - 3.116135449e-02f;
    r = r * u + 9.539886553e-03f;
    r = r * u + 4.832857710e-02f;
    r = r * u - 1.624571996e-01f;
    r = r * u + 3.583542177e-01f;
    r = r * u + 3.323958865e-01f;
    const float m = 1.0f - e * r;
    /* the sign of x on m, and the choice, as bit operations: as conditional
     * expressions GCC sinks each piece into a branch of its own and then
     * cannot vectorise the loop (see attn__exp_core) */
    uint32_t mb, sb, lb;
    memcpy(&mb, &m, sizeof mb);
    memcpy(&sb, &small, sizeof sb);
    lb = mb | sign; /* m >= 0 */
    const uint32_t keep = 0u - (uint32_t)is_small;
    const uint32_t rb = (sb & keep) | (lb & ~keep);
    float res;
    memcpy(&res, &rb, sizeof res);
    return res;
}

/* The exact GELU, x Phi(x), and its derivative Phi(x) + x phi(x), over
 * blocks of 512. A first loop per block reads x and forms z = x / sqrt 2
 * clamped to [-4, 4] (erf is 1 to float precision beyond) and c = x clamped
 * to [-10, 10] (beyond, x phi(x) is below 8e-22; the clamp keeps the
 * exponent inside exp_core's range); a second the one exponential
 * e = e^(-c^2/2), which is both the density's factor (phi(x) = e / sqrt(2 pi))
 * and the e^(-z^2) of erf's large piece (attn__erf_core_e; beyond
 * |x| = 4 sqrt 2, where z is clamped, e is below 2^-23 and erf rounds to +-1
 * either way); a third the values. Separate loops so that each vectorises.
 *   y = 0.5 x (1 + erf(z)),   y' = 0.5 (1 + erf(z)) + c phi(c).
 * Every caller (the gelu op, the fused linear + GELU of matmul.c and the bf16
 * products' epilogue of gemm_bf16.c) goes through these spans, so a fused
 * linear + GELU equals the two ops bit for bit (C11 mode: no contraction
 * into FMAs). */
#define ATTN__GELU_CHUNK 512
#define ATTN__GELU_PREP(x, i0, m, xc, z, c, e)                                       \
    do {                                                                               \
        for (int64_t j_ = 0; j_ < (m); j_++) {                                         \
            const float v_ = (x)[(i0) + j_];                                           \
            const float a_ = v_ * 0.70710678118654752440f;                             \
            const float b_ = a_ > 4.0f ? 4.0f : a_;                                    \
            const float w_ = v_ > 10.0f ? 10.0f : v_;                                  \
            (xc)[j_] = v_;                                                             \
            (z)[j_] = b_ < -4.0f ? -4.0f : b_;                                         \
            (c)[j_] = w_ < -10.0f ? -10.0f : w_;                                       \
        }                                                                              \
        for (int64_t j_ = 0; j_ < (m); j_++) (e)[j_] = attn__exp_core(-0.5f * (c)[j_] * (c)[j_]); \
    } while (0)

/* y[i] = GELU(x[i]) for i < n (y may equal x: each block of x is read
 * before the block of y is written). */
ATTN__VMATH_INLINE void attn__gelu_erf_span(float *y, const float *x, int64_t n) {
    float xc[ATTN__GELU_CHUNK], z[ATTN__GELU_CHUNK], c[ATTN__GELU_CHUNK], e[ATTN__GELU_CHUNK];
    for (int64_t i0 = 0; i0 < n; i0 += ATTN__GELU_CHUNK) {
        const int64_t m = n - i0 < ATTN__GELU_CHUNK ? n - i0 : ATTN__GELU_CHUNK;
        ATTN__GELU_PREP(x, i0, m, xc, z, c, e);
        for (int64_t j = 0; j < m; j++)
            y[i0 + j] = 0.5f * xc[j] * (1.0f + attn__erf_core_e(z[j], e[j]));
    }
}

/* y[i] = GELU(x[i]) and d[i] = GELU'(x[i]) in one pass (the training
 * forward of linear_gelu keeps d for its backward instead of x); d may equal
 * x, y must not overlap d. */
ATTN__VMATH_INLINE void attn__gelu_dgelu_erf_span(float *restrict y, float *d, const float *x,
                                                  int64_t n) {
    float xc[ATTN__GELU_CHUNK], z[ATTN__GELU_CHUNK], c[ATTN__GELU_CHUNK], e[ATTN__GELU_CHUNK];
    for (int64_t i0 = 0; i0 < n; i0 += ATTN__GELU_CHUNK) {
        const int64_t m = n - i0 < ATTN__GELU_CHUNK ? n - i0 : ATTN__GELU_CHUNK;
        ATTN__GELU_PREP(x, i0, m, xc, z, c, e);
        for (int64_t j = 0; j < m; j++) {
            const float f = 1.0f + attn__erf_core_e(z[j], e[j]);
            y[i0 + j] = 0.5f * xc[j] * f;
            d[i0 + j] = 0.5f * f + c[j] * (0.39894228040143267794f * e[j]);
        }
    }
}

/* gx[i] += gy[i] GELU'(x[i]) for i < n (the gelu op's backward). */
ATTN__VMATH_INLINE void attn__dgelu_erf_span_add(float *restrict gx, const float *restrict gy,
                                                 const float *restrict x, int64_t n) {
    float xc[ATTN__GELU_CHUNK], z[ATTN__GELU_CHUNK], c[ATTN__GELU_CHUNK], e[ATTN__GELU_CHUNK];
    for (int64_t i0 = 0; i0 < n; i0 += ATTN__GELU_CHUNK) {
        const int64_t m = n - i0 < ATTN__GELU_CHUNK ? n - i0 : ATTN__GELU_CHUNK;
        ATTN__GELU_PREP(x, i0, m, xc, z, c, e);
        (void)xc; /* only the forward reads x again */
        for (int64_t j = 0; j < m; j++) {
            const float f = 1.0f + attn__erf_core_e(z[j], e[j]);
            gx[i0 + j] += gy[i0 + j] * (0.5f * f + c[j] * (0.39894228040143267794f * e[j]));
        }
    }
}

#endif
