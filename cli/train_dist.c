/* train_dist.c: data-parallel training across processes with MPI (the
 * contract is in train_dist.h; docs/distributed.md is the manual). The only
 * file of attn that includes <mpi.h>: it is compiled with ATTN_HAVE_MPI
 * when the Makefile found Open MPI (MPI=auto|1), else as the one-process
 * stub below. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_dist.h"

#ifdef ATTN_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1, g_agreed = 0;

int train_dist_built(void) {
#ifdef ATTN_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int train_dist_rank(void) { return g_rank; }
int train_dist_size(void) { return g_size; }
void train_dist_agreed(void) { g_agreed = 1; }

/* The world size a launcher announced in the environment, or 0 when the
 * process was not started by one. */
static int launcher_size(void) {
    const char *keys[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(keys[i]);
        if (v && *v) {
            const long n = strtol(v, NULL, 10);
            return n > 0 && n < (1 << 24) ? (int)n : 1;
        }
    }
    return getenv("PMIX_RANK") || getenv("PMI_RANK") ? 1 : 0;
}

void train_shard(int64_t n, int64_t *lo, int64_t *hi) {
    const int64_t q = n / g_size, r = n % g_size, k = g_rank;
    *lo = k * q + (k < r ? k : r);
    *hi = *lo + q + (k < r ? 1 : 0);
}

int train_shard_check(const char *prog, int64_t n) {
    if (n >= g_size) return 0;
    train_dist_agreed(); /* every rank finds the same */
    fprintf(stderr, "%s: --batch %lld is smaller than the %d ranks: each rank computes a slice of the global "
                    "batch; give --batch %d or more, or fewer ranks\n",
            prog, (long long)n, g_size, g_size);
    return 2;
}

#ifdef ATTN_HAVE_MPI

static int g_mpi = 0; /* MPI_Init done, MPI_Finalize not yet */

static int mpi_fail(const char *what, int err) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", err);
    fprintf(stderr, "attn: rank %d of %d: %s failed: %s\n", g_rank, g_size, what, s);
    return 1;
}

int train_dist_init(int *argc, char ***argv) {
    if (launcher_size() == 0) return 0;
    int provided = 0;
    int err = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (err != MPI_SUCCESS) return mpi_fail("MPI_Init", err);
    g_mpi = 1;
    /* errors come back as codes (and are reported with the step), rather
     * than the default handler's abort without a word of attn's */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (g_rank != 0 && !freopen("/dev/null", "w", stdout)) {
        fprintf(stderr, "attn: rank %d: cannot silence stdout\n", g_rank);
        return 1;
    }
    return 0;
}

int train_dist_exit(int rc) {
    if (!g_mpi) return rc;
    if (rc != 0 && !g_agreed && g_size > 1) {
        fprintf(stderr, "attn: rank %d of %d failed (exit code %d, the message above): ending the job\n", g_rank,
                g_size, rc);
        fflush(NULL);
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    fflush(NULL);
    MPI_Finalize();
    g_mpi = 0;
    return rc;
}

int train_dist_bcast_int(int *v, int n) {
    if (g_size == 1) return 0;
    const int err = MPI_Bcast(v, n, MPI_INT, 0, MPI_COMM_WORLD);
    return err == MPI_SUCCESS ? 0 : mpi_fail("MPI_Bcast", err);
}

int train_dist_bcast_params(attn_params *ps) {
    if (g_size == 1 || !ps) return 0;
    const int n = attn_params_count(ps);
    for (int i = 0; i < n; i++) {
        attn_tensor *p = attn_params_at(ps, i);
        float *d = attn_f32(p);
        /* in pieces of at most 2^30 elements: MPI counts are int */
        for (int64_t off = 0, total = attn_tensor_numel(p); off < total;) {
            const int64_t k = total - off < (1 << 30) ? total - off : (1 << 30);
            const int err = MPI_Bcast(d + off, (int)k, MPI_FLOAT, 0, MPI_COMM_WORLD);
            if (err != MPI_SUCCESS) return mpi_fail("MPI_Bcast of the parameters", err);
            off += k;
        }
    }
    return 0;
}

int train_dist_sum(double *v, int n) {
    if (g_size == 1) return 0;
    const int err = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return err == MPI_SUCCESS ? 0 : mpi_fail("MPI_Allreduce", err);
}

int train_dist_max_int(int *v, int n) {
    if (g_size == 1) return 0;
    const int err = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return err == MPI_SUCCESS ? 0 : mpi_fail("MPI_Allreduce", err);
}

/* FNV-1a over the bytes of every parameter's data, in the store's order. */
static uint64_t params_hash(attn_params *ps) {
    uint64_t h = 0xcbf29ce484222325ull;
    const int n = attn_params_count(ps);
    for (int i = 0; i < n; i++) {
        const attn_tensor *p = attn_params_at(ps, i);
        const unsigned char *b = (const unsigned char *)attn_f32(p);
        const int64_t nb = attn_tensor_numel(p) * (int64_t)sizeof(float);
        for (int64_t j = 0; j < nb; j++) h = (h ^ b[j]) * 0x100000001b3ull;
    }
    return h;
}

int train_dist_same_params(attn_params *ps, int *same) {
    *same = 1;
    if (g_size == 1 || !ps) return 0;
    unsigned long long lo = params_hash(ps), hi = lo;
    int err = MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    if (err == MPI_SUCCESS) err = MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    if (err != MPI_SUCCESS) return mpi_fail("MPI_Allreduce of the parameters' hash", err);
    *same = lo == hi;
    return 0;
}

/* Bucket size in floats: ATTN_DIST_BUCKET_MB (0.001 to 1024 MiB), default 4 MiB. */
static int64_t bucket_floats(void) {
    double mb = 4.0;
    const char *e = getenv("ATTN_DIST_BUCKET_MB");
    if (e && *e) {
        char *end = NULL;
        const double v = strtod(e, &end);
        if (end != e && !*end && v >= 0.001 && v <= 1024.0) mb = v;
    }
    const int64_t n = (int64_t)(mb * 1048576.0 / sizeof(float));
    return n > 0 ? n : 1;
}

static float *g_bucket = NULL;
static int64_t g_bucket_cap = 0;

static int has_grad(const attn_tensor *p) { return p->requires_grad && p->grad; }

/* Reduces the bucket's fill floats, then copies them back into the
 * gradients, starting at parameter `first`, element first_off. */
static int flush_bucket(attn_params *ps, int first, int64_t first_off, int64_t fill) {
    const int err = MPI_Allreduce(MPI_IN_PLACE, g_bucket, (int)fill, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    if (err != MPI_SUCCESS) return mpi_fail("MPI_Allreduce of the gradients", err);
    for (int64_t pos = 0; pos < fill; first++, first_off = 0) {
        attn_tensor *q = attn_params_at(ps, first);
        if (!has_grad(q)) continue;
        const int64_t left = attn_tensor_numel(q) - first_off;
        const int64_t k = left < fill - pos ? left : fill - pos;
        memcpy(q->grad + first_off, g_bucket + pos, (size_t)k * sizeof(float));
        pos += k;
    }
    return 0;
}

int train_dist_reduce_grads(attn_params *ps, float scale, double *bytes) {
    if (bytes) *bytes = 0.0;
    if (g_size == 1 || !ps) return 0;
    const int64_t cap = bucket_floats();
    if (g_bucket_cap != cap) {
        free(g_bucket);
        g_bucket = malloc((size_t)cap * sizeof *g_bucket);
        g_bucket_cap = g_bucket ? cap : 0;
        if (!g_bucket) {
            fprintf(stderr, "attn: rank %d: out of memory for a gradient bucket of %lld floats\n", g_rank,
                    (long long)cap);
            return 1;
        }
    }
    /* The gradients in the store's order, flattened into buckets (a
     * parameter may straddle two), each scaled, reduced and copied back. */
    const int np = attn_params_count(ps);
    int first = 0;
    int64_t first_off = 0, fill = 0;
    double total = 0.0;
    for (int i = 0; i < np; i++) {
        const attn_tensor *p = attn_params_at(ps, i);
        if (!has_grad(p)) continue;
        const int64_t n = attn_tensor_numel(p);
        for (int64_t off = 0; off < n;) {
            if (fill == 0) {
                first = i;
                first_off = off;
            }
            const int64_t k = n - off < cap - fill ? n - off : cap - fill;
            const float *g = p->grad + off;
            for (int64_t j = 0; j < k; j++) g_bucket[fill + j] = scale * g[j];
            fill += k;
            off += k;
            if (fill == cap) {
                if (flush_bucket(ps, first, first_off, fill)) return 1;
                total += (double)fill * sizeof(float);
                fill = 0;
            }
        }
    }
    if (fill > 0) {
        if (flush_bucket(ps, first, first_off, fill)) return 1;
        total += (double)fill * sizeof(float);
    }
    if (bytes) *bytes = total;
    return 0;
}

#else /* the one-process stub */

int train_dist_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const int n = launcher_size();
    if (n > 1) {
        fprintf(stderr, "attn: started by an MPI launcher with %d processes, but this attn was built without MPI "
                        "(each process would train alone): install Open MPI (bash scripts/setup.sh --mpi) and "
                        "rebuild with make MPI=1\n", n);
        return 1;
    }
    return 0;
}

int train_dist_exit(int rc) { return rc; }
int train_dist_bcast_int(int *v, int n) { (void)v; (void)n; return 0; }
int train_dist_bcast_params(attn_params *ps) { (void)ps; return 0; }
int train_dist_sum(double *v, int n) { (void)v; (void)n; return 0; }
int train_dist_same_params(attn_params *ps, int *same) { (void)ps; *same = 1; return 0; }
int train_dist_max_int(int *v, int n) { (void)v; (void)n; return 0; }

int train_dist_reduce_grads(attn_params *ps, float scale, double *bytes) {
    (void)ps;
    (void)scale;
    if (bytes) *bytes = 0.0;
    return 0;
}

#endif
