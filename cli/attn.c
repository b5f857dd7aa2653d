/* attn.c: the command-line tool. The only place in attn that prints to the
 * terminal and calls exit: library errors come back as a status, and are
 * turned here into a message on stderr and a non-zero exit code.
 *
 * Commands live in one table below: name, one-line summary, handler.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn/attn.h"
#include "commands.h"
#include "train_dist.h"

static int g_policy_set_by_attn; /* attn info says who chose the wait policy */

static const struct {
    const char *name, *summary;
    int (*fn)(int argc, char **argv);
} commands[] = {
#define CLI_ROW(name, summary) {#name, summary, cmd_##name},
    CLI_COMMANDS(CLI_ROW)
#undef CLI_ROW
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void usage(FILE *f) {
    fprintf(f,
            "attn %s: attention mechanisms with forward and backward passes, in C\n\n"
            "usage: attn <command> [options]\n\ncommands:\n",
            ATTN_VERSION_STRING);
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\nenvironment:\n"
            "  ATTN_BLAS=auto|openblas|builtin   matrix library (default auto: OpenBLAS if installed)\n"
            "  ATTN_USE_REF=1                    force the scalar reference kernels\n"
            "  OMP_NUM_THREADS=N                 threads for ops\n"
            "  OMP_WAIT_POLICY=passive|active    how idle op threads wait (attn runs with passive\n"
            "                                    when unset: see docs/design.md, \"Threads\")\n"
            "  OPENBLAS_CORETYPE=NAME            OpenBLAS kernel family (attn picks SkylakeX on\n"
            "                                    AVX-512 CPUs when unset)\n\n"
            "'attn <command> --help' describes a command. Options take '--opt V' or '--opt=V'.\n");
}

int cli_fail(const char *cmd, const char *what) {
    const char *msg = attn_last_error();
    fprintf(stderr, "attn %s: %s%s%s\n", cmd, what, msg[0] ? ": " : "", msg);
    return 1;
}

int cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    return 0;
}

static int no_args(const char *cmd, int argc, char **argv) {
    if (argc > 1) {
        fprintf(stderr, "attn %s: unexpected argument '%s' (try 'attn %s --help')\n", cmd, argv[1],
                cmd);
        return 0;
    }
    return 1;
}

int cmd_info(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: attn info\n\nPrints the version, the SIMD level of this CPU, the matrix library\n"
               "in use with its core type and who chose it, OpenMP and the thread count.\n");
        return 0;
    }
    if (!no_args("info", argc, argv)) return 2;
    attn_info_t info;
    attn_info(&info);
    printf("attn %s\n", info.version);
    printf("abi:       %d (shared library libattn.so.%d)\n", info.abi, info.abi);
    printf("simd:      %s\n", info.simd);
    printf("blas:      %s\n", info.blas);
    if (info.blas_core && info.blas_core[0])
        printf("blas core: %s (%s)\n", info.blas_core, info.blas_core_why);
    printf("blas use:  %s\n", info.blas_policy);
    printf("openmp:    %s\n", info.openmp ? "yes" : "no (built without OpenMP: ops run on one thread)");
    printf("threads:   %d\n", info.max_threads);
    if (info.openmp) {
        const char *w = getenv("OMP_WAIT_POLICY");
        printf("wait:      %s (%s)\n", w ? w : "libgomp's default (spins)",
               !w ? "OMP_WAIT_POLICY unset" : g_policy_set_by_attn ? "set by attn: idle threads sleep" : "set by the user");
    }
    printf("mpi:       %s\n", train_dist_built() ? "yes (data-parallel training under mpirun; docs/distributed.md)"
                                                      : "no (built without MPI: make MPI=1)");
    printf("ops:       %d (attn ops lists them)\n", attn_op_count());
    return 0;
}

int cmd_ops(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: attn ops\n\nLists the graph ops of the op table.\n");
        return 0;
    }
    if (!no_args("ops", argc, argv)) return 2;
    for (int i = 0; i < attn_op_count(); i++) printf("%s\n", attn_op_name(i));
    return 0;
}

int cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("attn %s\n", ATTN_VERSION_STRING);
    return 0;
}

/* "--opt=value" becomes "--opt" "value" for every command (one place, so the
 * handlers parse one form). Only arguments that begin with "--" and have a
 * name of letters, digits and '-' before the '=' are split. The new argv and
 * the option names live in one allocation, *store, which main frees at the
 * end (NULL when nothing was split). Returns argv itself when nothing is
 * split, NULL when out of memory. */
static int is_opt_eq(const char *a) {
    const char *eq = strchr(a, '=');
    return strncmp(a, "--", 2) == 0 && eq && eq != a + 2 &&
           strspn(a + 2, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == (size_t)(eq - a - 2);
}

static char **split_eq(int argc, char **argv, int *argc_out, void **store) {
    int extra = 0;
    size_t names = 0;
    for (int i = 1; i < argc; i++)
        if (is_opt_eq(argv[i])) {
            extra++;
            names += (size_t)(strchr(argv[i], '=') - argv[i]) + 1;
        }
    *argc_out = argc + extra;
    *store = NULL;
    if (!extra) return argv;
    const size_t n_ptr = (size_t)(argc + extra + 1);
    char **out = malloc(n_ptr * sizeof *out + names);
    if (!out) return NULL;
    *store = out;
    char *name = (char *)(out + n_ptr);
    int n = 0;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (i > 0 && is_opt_eq(a)) {
            const char *eq = strchr(a, '=');
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = '\0';
            out[n++] = name;
            out[n++] = (char *)eq + 1;
            name += (eq - a) + 1;
        } else {
            out[n++] = a;
        }
    }
    out[n] = NULL;
    return out;
}

static int run(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) return cmd_version(0, NULL);
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "attn: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

/* Idle OpenMP threads wait passively (asleep) unless the user says
 * otherwise. libgomp reads OMP_WAIT_POLICY once, when it is loaded, before
 * main, and by default spins at every barrier; with another process busy on
 * a core, the spinning thread holds its core while the thread it waits for
 * cannot run, and 2 threads fell to 0.06-0.12x of 1 thread (bench/
 * bench_threads.c; docs/design.md, "Threads"). So when OMP_WAIT_POLICY is
 * unset, attn sets it and starts itself again (once: the variable is then
 * set); if that exec fails, it goes on as it is. */
static void passive_wait_policy(char **argv) {
#if defined(_OPENMP) && defined(__linux__)
    const char *w = getenv("OMP_WAIT_POLICY");
    const char *by = getenv("ATTN_SET_OMP_WAIT_POLICY");
    if (w) {
        g_policy_set_by_attn = by && strcmp(by, "1") == 0 && strcmp(w, "passive") == 0;
        return;
    }
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    setenv("ATTN_SET_OMP_WAIT_POLICY", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc): carry on with libgomp's default, and say so */
    unsetenv("OMP_WAIT_POLICY");
    unsetenv("ATTN_SET_OMP_WAIT_POLICY");
#else
    (void)argv;
#endif
}

int main(int argc, char **argv) {
    passive_wait_policy(argv);
    /* under mpirun: join the job (rank, size) before anything prints */
    if (train_dist_init(&argc, &argv)) return 1;
    void *store = NULL;
    argv = split_eq(argc, argv, &argc, &store);
    if (!argv) {
        fprintf(stderr, "attn: out of memory\n");
        return train_dist_exit(1);
    }
    const int rc = run(argc, argv);
    free(store);
    return train_dist_exit(rc);
}
