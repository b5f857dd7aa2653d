/* attn/fid.h: the Frechet distance between two sets of feature vectors
 * (src/eval/fid.c, docs/gan.md), the measure behind FID (Heusel et al.,
 * 2017).
 *
 * Each set is summarised by a Gaussian (mean mu and covariance S, the
 * unbiased (n - 1) estimate, as numpy.cov), and
 *   d^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2),
 * where tr((S1^1/2 S2 S1^1/2)^1/2) equals tr((S1 S2)^1/2) (the form
 * scipy.linalg.sqrtm computes in the usual FID code); here it is evaluated
 * with symmetric matrices only: S1^1/2 from a Jacobi eigendecomposition of
 * S1, then the eigenvalues of the symmetric M = S1^1/2 S2 S1^1/2, whose
 * square roots are summed (tiny negative eigenvalues from rounding count
 * as 0). Everything runs in double precision.
 *
 * attn's GAN reports this distance on the features of attn's OWN
 * Fashion-MNIST classifier (cnn.h), not on Inception-v3's pool features:
 * its numbers are comparable with each other, not with published FIDs.
 *
 * The cost: O(n D^2) for the covariances and O(sweeps D^3) for the two
 * eigendecompositions (Jacobi: a few seconds at D = 256; D is limited to
 * ATTN_FID_MAX_DIM).
 */
#ifndef ATTN_FID_H
#define ATTN_FID_H

#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_FID_MAX_DIM 1024

/* A Gaussian fitted to n feature vectors of dimension D. */
typedef struct attn_fid_stats {
    int64_t dim, n;
    double *mu;  /* [D] (owned, malloc) */
    double *cov; /* [D, D], unbiased (divided by n - 1) (owned) */
} attn_fid_stats;

/* Fits the mean and covariance of feats [n, D] (row-major floats).
 * Errors: ATTN_ERR_INVALID_ARG (NULL, n < 2, D < 1 or > ATTN_FID_MAX_DIM),
 * ATTN_ERR_NUMERIC (a NaN or Inf feature, its row and column named),
 * ATTN_ERR_OOM. On error *out is zeroed. */
attn_status attn_fid_stats_compute(const float *feats, int64_t n, int64_t dim,
                                   attn_fid_stats *out);
void attn_fid_stats_free(attn_fid_stats *s);

/* The squared Frechet distance d^2 between two fitted Gaussians (>= 0 up to
 * rounding; a result below 0 from rounding is returned as 0).
 * Errors: ATTN_ERR_INVALID_ARG (NULL), ATTN_ERR_SHAPE (dimensions differ),
 * ATTN_ERR_NUMERIC (the eigensolver did not converge), ATTN_ERR_OOM. */
attn_status attn_fid_distance(const attn_fid_stats *a, const attn_fid_stats *b, double *out);

/* Both steps for two feature matrices [n1, D] and [n2, D]. */
attn_status attn_fid(const float *feats1, int64_t n1, const float *feats2, int64_t n2,
                     int64_t dim, double *out);

/* The eigendecomposition of a symmetric matrix a [n, n] (row-major, read
 * only) by cyclic Jacobi rotations: eigenvalues in w [n] (ascending) and,
 * when v is not NULL, the eigenvectors as the columns of v [n, n].
 * Errors: ATTN_ERR_INVALID_ARG (NULL, n < 1), ATTN_ERR_NUMERIC (no
 * convergence in 100 sweeps, or a non-finite entry), ATTN_ERR_OOM. */
attn_status attn_sym_eig(const double *a, int64_t n, double *w, double *v);

#ifdef __cplusplus
}
#endif

#endif
