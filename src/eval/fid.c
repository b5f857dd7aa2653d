/* fid.c: the Frechet distance between Gaussians fitted to two feature sets
 * (include/attn/fid.h; the math in docs/gan.md), on a cyclic Jacobi
 * eigensolver for symmetric matrices. Double precision throughout. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/fid.h"

#define JACOBI_MAX_SWEEPS 100

/* ---- symmetric eigendecomposition ------------------------------------------------------ */

attn_status attn_sym_eig(const double *a, int64_t n, double *w, double *v) {
    static const char fn[] = "attn_sym_eig";
    if (!a || !w || n < 1) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL matrix or n %lld < 1", fn, (long long)n);
    size_t nn;
    if (attn__mul_size((size_t)n, (size_t)n, &nn) || attn__mul_size(nn, sizeof(double), &nn))
        return attn__error(ATTN_ERR_OOM, "%s: n %lld is too large", fn, (long long)n);
    double *A = malloc(nn);
    if (!A) return attn__error(ATTN_ERR_OOM, "%s: out of memory for %lld x %lld", fn, (long long)n, (long long)n);
    double total = 0.0;
    for (int64_t i = 0; i < n * n; i++) {
        if (!isfinite(a[i])) {
            free(A);
            return attn__error(ATTN_ERR_NUMERIC, "%s: entry (%lld, %lld) is not finite", fn,
                               (long long)(i / n), (long long)(i % n));
        }
        total += a[i] * a[i];
    }
    /* the symmetric part (a is symmetric up to rounding) */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) A[i * n + j] = 0.5 * (a[i * n + j] + a[j * n + i]);
    if (v) {
        memset(v, 0, nn);
        for (int64_t i = 0; i < n; i++) v[i * n + i] = 1.0;
    }
    int converged = 0;
    for (int sweep = 0; sweep < JACOBI_MAX_SWEEPS && !converged; sweep++) {
        double off = 0.0;
        for (int64_t p = 0; p < n; p++)
            for (int64_t q = p + 1; q < n; q++) off += A[p * n + q] * A[p * n + q];
        /* off-diagonal mass at rounding level of the whole matrix: done */
        if (off == 0.0 || sqrt(2.0 * off) <= 1e-14 * sqrt(total)) {
            converged = 1;
            break;
        }
        for (int64_t p = 0; p < n; p++) {
            for (int64_t q = p + 1; q < n; q++) {
                const double apq = A[p * n + q];
                if (apq == 0.0) continue;
                const double app = A[p * n + p], aqq = A[q * n + q];
                const double theta = (aqq - app) / (2.0 * apq);
                /* t = tan of the rotation angle, the smaller root of t^2 + 2 theta t - 1 = 0 */
                double t;
                if (fabs(theta) > 1e150) t = 0.5 / theta;
                else t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                const double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int64_t k = 0; k < n; k++) {
                    if (k == p || k == q) continue;
                    const double akp = A[k * n + p], akq = A[k * n + q];
                    const double np = c * akp - s * akq, nq = s * akp + c * akq;
                    A[k * n + p] = A[p * n + k] = np;
                    A[k * n + q] = A[q * n + k] = nq;
                }
                A[p * n + p] = app - t * apq;
                A[q * n + q] = aqq + t * apq;
                A[p * n + q] = A[q * n + p] = 0.0;
                if (v) {
                    for (int64_t k = 0; k < n; k++) {
                        const double vkp = v[k * n + p], vkq = v[k * n + q];
                        v[k * n + p] = c * vkp - s * vkq;
                        v[k * n + q] = s * vkp + c * vkq;
                    }
                }
            }
        }
    }
    if (!converged) {
        free(A);
        return attn__error(ATTN_ERR_NUMERIC, "%s: Jacobi did not converge in %d sweeps (n %lld)", fn,
                           JACOBI_MAX_SWEEPS, (long long)n);
    }
    for (int64_t i = 0; i < n; i++) w[i] = A[i * n + i];
    free(A);
    /* ascending order (selection sort: n is small), the vectors with them */
    for (int64_t i = 0; i < n; i++) {
        int64_t m = i;
        for (int64_t j = i + 1; j < n; j++)
            if (w[j] < w[m]) m = j;
        if (m == i) continue;
        const double tw = w[i];
        w[i] = w[m];
        w[m] = tw;
        if (v)
            for (int64_t k = 0; k < n; k++) {
                const double tv = v[k * n + i];
                v[k * n + i] = v[k * n + m];
                v[k * n + m] = tv;
            }
    }
    return ATTN_OK;
}

/* ---- Gaussian statistics ---------------------------------------------------------------- */

void attn_fid_stats_free(attn_fid_stats *s) {
    if (!s) return;
    free(s->mu);
    free(s->cov);
    memset(s, 0, sizeof *s);
}

attn_status attn_fid_stats_compute(const float *feats, int64_t n, int64_t dim, attn_fid_stats *out) {
    static const char fn[] = "attn_fid_stats_compute";
    if (out) memset(out, 0, sizeof *out);
    if (!feats || !out) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL features or output", fn);
    if (n < 2 || dim < 1 || dim > ATTN_FID_MAX_DIM)
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "%s: %lld vectors of dimension %lld, expected at least 2 vectors and a "
                           "dimension in [1, %d]", fn, (long long)n, (long long)dim, ATTN_FID_MAX_DIM);
    for (int64_t i = 0; i < n * dim; i++)
        if (!isfinite(feats[i]))
            return attn__error(ATTN_ERR_NUMERIC, "%s: feature %lld of vector %lld is not finite", fn,
                               (long long)(i % dim), (long long)(i / dim));
    double *mu = calloc((size_t)dim, sizeof *mu);
    double *cov = calloc((size_t)(dim * dim), sizeof *cov);
    double *row = malloc((size_t)dim * sizeof *row);
    if (!mu || !cov || !row) {
        free(mu);
        free(cov);
        free(row);
        return attn__error(ATTN_ERR_OOM, "%s: out of memory for dimension %lld", fn, (long long)dim);
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < dim; j++) mu[j] += feats[i * dim + j];
    for (int64_t j = 0; j < dim; j++) mu[j] /= (double)n;
    /* the upper triangle of sum (x - mu)(x - mu)^T, then mirrored */
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < dim; j++) row[j] = feats[i * dim + j] - mu[j];
        for (int64_t a = 0; a < dim; a++) {
            const double ra = row[a];
            double *c = cov + a * dim;
            for (int64_t b = a; b < dim; b++) c[b] += ra * row[b];
        }
    }
    for (int64_t a = 0; a < dim; a++)
        for (int64_t b = a; b < dim; b++) {
            cov[a * dim + b] /= (double)(n - 1);
            cov[b * dim + a] = cov[a * dim + b];
        }
    free(row);
    out->dim = dim;
    out->n = n;
    out->mu = mu;
    out->cov = cov;
    return ATTN_OK;
}

/* c [n, n] = a [n, n] b [n, n] */
static void matmul_d(const double *a, const double *b, double *c, int64_t n) {
    memset(c, 0, (size_t)(n * n) * sizeof *c);
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < n; k++) {
            const double aik = a[i * n + k];
            for (int64_t j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];
        }
}

/* d^2 with the scratch buffers w [n], V, R, T, M [n, n] given. */
static attn_status distance(const attn_fid_stats *a, const attn_fid_stats *b, double *w, double *V,
                            double *R, double *T, double *M, double *out) {
    const int64_t n = a->dim;
    /* R = S1^1/2 = V diag(sqrt(max(w, 0))) V^T */
    attn_status st = attn_sym_eig(a->cov, n, w, V);
    if (st != ATTN_OK) return st;
    for (int64_t k = 0; k < n; k++) w[k] = w[k] > 0.0 ? sqrt(w[k]) : 0.0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < n; k++) s += V[i * n + k] * w[k] * V[j * n + k];
            R[i * n + j] = s;
        }
    /* M = R S2 R (symmetric positive semi-definite); tr M^1/2 = sum sqrt(eig) */
    matmul_d(R, b->cov, T, n);
    matmul_d(T, R, M, n);
    st = attn_sym_eig(M, n, w, NULL);
    if (st != ATTN_OK) return st;
    double tr_sqrt = 0.0, tr1 = 0.0, tr2 = 0.0, dmu = 0.0;
    for (int64_t k = 0; k < n; k++) tr_sqrt += w[k] > 0.0 ? sqrt(w[k]) : 0.0;
    for (int64_t k = 0; k < n; k++) {
        tr1 += a->cov[k * n + k];
        tr2 += b->cov[k * n + k];
        const double d = a->mu[k] - b->mu[k];
        dmu += d * d;
    }
    const double d2 = dmu + tr1 + tr2 - 2.0 * tr_sqrt;
    *out = d2 > 0.0 ? d2 : 0.0;
    return ATTN_OK;
}

attn_status attn_fid_distance(const attn_fid_stats *a, const attn_fid_stats *b, double *out) {
    static const char fn[] = "attn_fid_distance";
    if (!a || !b || !out || !a->mu || !a->cov || !b->mu || !b->cov)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL or empty statistics", fn);
    if (a->dim != b->dim)
        return attn__error(ATTN_ERR_SHAPE, "%s: dimensions %lld and %lld differ", fn,
                           (long long)a->dim, (long long)b->dim);
    const int64_t n = a->dim;
    const size_t nn = (size_t)(n * n);
    double *w = calloc((size_t)n, sizeof *w), *V = calloc(nn, sizeof *V);
    double *R = calloc(nn, sizeof *R), *T = calloc(nn, sizeof *T), *M = calloc(nn, sizeof *M);
    attn_status st = (w && V && R && T && M)
                         ? distance(a, b, w, V, R, T, M, out)
                         : attn__error(ATTN_ERR_OOM, "%s: out of memory for dimension %lld", fn,
                                       (long long)n);
    free(w);
    free(V);
    free(R);
    free(T);
    free(M);
    return st;
}

attn_status attn_fid(const float *feats1, int64_t n1, const float *feats2, int64_t n2, int64_t dim,
                     double *out) {
    attn_fid_stats a, b;
    attn_status st = attn_fid_stats_compute(feats1, n1, dim, &a);
    if (st != ATTN_OK) return st;
    st = attn_fid_stats_compute(feats2, n2, dim, &b);
    if (st == ATTN_OK) st = attn_fid_distance(&a, &b, out);
    attn_fid_stats_free(&a);
    attn_fid_stats_free(&b);
    return st;
}
