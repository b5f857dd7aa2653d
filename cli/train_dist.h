/* train_dist.h: data-parallel training across processes with MPI, for the
 * training driver (cli/train_driver.c). docs/distributed.md is the manual.
 *
 * Under `mpirun -np N attn gpt train ...` each of the N processes (ranks)
 * builds the same model from the same seed, draws the same global batch of
 * each step and computes the loss and gradients of its own slice of it
 * (train_shard). The driver then sums the gradients, each rank's scaled by
 * its share of the global batch (train_dist_reduce_grads, bucketed
 * MPI_Allreduce), so every rank holds the gradient of the mean loss over the
 * global batch and takes the same optimizer step. Rank 0 alone writes the
 * log, the pictures and the checkpoints; the other ranks print nothing on
 * stdout and no progress line.
 *
 * MPI lives here only: the library (libattn) never links it. Built without
 * MPI (make MPI=0, or no Open MPI found), every function is the one-process
 * case: rank 0 of 1, reductions are no-ops. Built with MPI, MPI_Init runs
 * only when a launcher started the process (mpirun's environment), so a
 * plain `attn gpt train` never touches MPI and its path is unchanged.
 *
 * Errors: a failure on one rank while the others wait in a collective would
 * hang the job, so train_dist_exit ends the whole job (MPI_Abort) when a
 * command fails on a rank unless the exit code was agreed by every rank
 * (train_dist_agreed: a refused run directory, an interruption). */
#ifndef ATTN_CLI_TRAIN_DIST_H
#define ATTN_CLI_TRAIN_DIST_H

#include <stdint.h>

#include "attn/attn.h"

/* Joins the job when a launcher started the process (OMPI_COMM_WORLD_SIZE,
 * PMIX_RANK or PMI_RANK set): MPI_Init, rank and size; ranks other than 0
 * send stdout to /dev/null. Without a launcher (or size 1) nothing happens.
 * Returns 0, or 1 with a message (launched with several ranks by a build
 * without MPI: each process would train alone). Call once, from main. */
int train_dist_init(int *argc, char ***argv);

/* Leaves the job with exit code rc: MPI_Finalize when rc is 0 or agreed,
 * else MPI_Abort (the other ranks may wait in a collective). Returns rc. */
int train_dist_exit(int rc);

/* Notes that every rank returns the same exit code (it came from a
 * collective decision), so train_dist_exit may finalize rather than abort. */
void train_dist_agreed(void);

/* 1 when built with MPI. */
int train_dist_built(void);
int train_dist_rank(void);
int train_dist_size(void);

/* The rows [*lo, *hi) of a global batch of n rows that this rank computes:
 * contiguous, the first n % size ranks one row more. n >= size (a rank
 * without rows has no loss): check with train_shard_check. */
void train_shard(int64_t n, int64_t *lo, int64_t *hi);

/* 0 when a global batch of n rows covers every rank, else 2 with the
 * message "PROG: --batch N is smaller than the K ranks". */
int train_shard_check(const char *prog, int64_t n);

/* Collectives over every rank (no-ops for one process). 0, or 1 with a
 * message on stderr naming the MPI error. */
int train_dist_bcast_int(int *v, int n);           /* from rank 0 */
int train_dist_bcast_params(attn_params *ps);      /* every parameter's data, from rank 0 */
int train_dist_sum(double *v, int n);              /* elementwise sum, in place */
int train_dist_max_int(int *v, int n);             /* elementwise max, in place */

/* *same <- 1 when every rank holds the same parameter bytes (a 64-bit
 * FNV-1a hash of every parameter's data, its minimum and maximum over the
 * ranks compared), else 0. 1 on one process. 0 or 1 (message). */
int train_dist_same_params(attn_params *ps, int *same);

/* g <- sum over ranks of (scale_r * g_r) for every gradient of a parameter
 * with requires_grad, in buckets of about 4 MiB (ATTN_DIST_BUCKET_MB
 * overrides) flattened in the store's order, one MPI_Allreduce each.
 * *bytes (or NULL) gets the bytes reduced per rank. 0 or 1 (message). */
int train_dist_reduce_grads(attn_params *ps, float scale, double *bytes);

#endif
