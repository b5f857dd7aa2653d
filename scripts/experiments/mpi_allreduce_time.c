/* mpi_allreduce_time.c: the time of one MPI_Allreduce (MPI_SUM, float) of
 * BYTES bytes, in buckets of BUCKET_MB MiB as cli/train_dist.c sends them,
 * with a barrier before each repetition so that the figure is the transfer
 * and not the wait for a late rank (docs/distributed.md). Built and run by
 * scripts/experiments/mpi_allreduce_time.sh:
 *   mpirun -np N mpi_allreduce_time BYTES [REPS] [BUCKET_MB]
 * Rank 0 prints the median and the minimum over REPS (default 50), in ms. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const long long bytes = argc > 1 ? atoll(argv[1]) : 4 << 20;
    const int reps = argc > 2 ? atoi(argv[2]) : 50;
    const double mb = argc > 3 ? atof(argv[3]) : 4.0;
    const long long n = bytes / 4, cap = (long long)(mb * 1048576.0 / 4.0);
    float *g = malloc((size_t)n * sizeof *g);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!g || !t || reps < 1 || n < 1 || cap < 1) MPI_Abort(MPI_COMM_WORLD, 1);
    for (long long i = 0; i < n; i++) g[i] = (float)(i % 7) * 1e-3f;
    for (int r = 0; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = MPI_Wtime();
        for (long long off = 0; off < n; off += cap) {
            const long long k = n - off < cap ? n - off : cap;
            MPI_Allreduce(MPI_IN_PLACE, g + off, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        }
        t[r] = MPI_Wtime() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    if (rank == 0)
        printf("ranks %d, %lld bytes in buckets of %g MiB: median %.3f ms, min %.3f ms (%d repetitions)\n", size,
               bytes, mb, 1e3 * t[reps / 2], 1e3 * t[0], reps);
    free(g);
    free(t);
    MPI_Finalize();
    return 0;
}
