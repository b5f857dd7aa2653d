/* train_driver.c: the one training loop of the model commands and the
 * behaviour they share (options, run directory, resume, signals, log,
 * chart). The contract is in train_driver.h. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "train_dist.h"
#include "train_driver.h"

/* ---- options ------------------------------------------------------------------------- */

void train_opts_init(train_opts *o) {
    memset(o, 0, sizeof *o);
    o->steps = o->epochs = o->batch = o->warmup = o->seed = -1;
    o->eval_every = o->eval_n = o->log_every = o->threads = o->arena_mb = -1;
    o->lr = o->min_lr = o->weight_decay = o->time_budget = -1.0;
}

void train_fixed(train_opts *o, const char *a) {
    if (!o->fixed_flag) o->fixed_flag = a;
}

/* "attn gpt train" -> cmd "gpt", sub "train" for the shared value parsers. */
static int int_opt(const char *prog, const char *a, const char *v, long long lo, long long hi,
                   long long *out) {
    char cmd[64] = "", sub[64] = "";
    sscanf(prog, "attn %63s %63s", cmd, sub);
    return cli_opt_int(cmd, sub, a, v, lo, hi, out);
}

static int real_opt(const char *prog, const char *a, const char *v, double lo, double hi, double *out) {
    char cmd[64] = "", sub[64] = "";
    sscanf(prog, "attn %63s %63s", cmd, sub);
    return cli_opt_real(cmd, sub, a, v, lo, hi, out);
}

/* --precision of this process's training command (train_loop applies it to
 * the run's context, so every family that trains through the driver has
 * it). */
static int g_precision = ATTN_PRECISION_F32;

int train_opt(const char *prog, const char *a, const char *v, train_opts *o, int *rc) {
    if (!strcmp(a, "--resume")) { o->resume = 1; return 1; }
    if (!strcmp(a, "--force")) { o->force = 1; return 1; }
    if (!strcmp(a, "--quiet")) { o->quiet = 1; return 1; }
    int r = -1;
    if (!strcmp(a, "--out")) {
        o->out = v;
        r = train_path_value(prog, a, v, "a directory");
    } else if (!strcmp(a, "--steps")) r = int_opt(prog, a, v, 1, 1ll << 40, &o->steps);
    else if (!strcmp(a, "--epochs")) r = int_opt(prog, a, v, 1, 1 << 20, &o->epochs);
    else if (!strcmp(a, "--time-budget")) r = real_opt(prog, a, v, 1e-3, 1e9, &o->time_budget);
    else if (!strcmp(a, "--batch")) r = int_opt(prog, a, v, 1, 1 << 20, &o->batch);
    else if (!strcmp(a, "--lr")) r = real_opt(prog, a, v, 0.0, 10.0, &o->lr);
    else if (!strcmp(a, "--min-lr")) r = real_opt(prog, a, v, 0.0, 10.0, &o->min_lr);
    else if (!strcmp(a, "--warmup")) r = int_opt(prog, a, v, 0, 1ll << 40, &o->warmup);
    else if (!strcmp(a, "--weight-decay")) r = real_opt(prog, a, v, 0.0, 10.0, &o->weight_decay);
    else if (!strcmp(a, "--seed")) {
        r = int_opt(prog, a, v, 0, 1ll << 62, &o->seed);
        train_fixed(o, "--seed");
    } else if (!strcmp(a, "--eval-every")) r = int_opt(prog, a, v, 0, 1ll << 40, &o->eval_every);
    else if (!strcmp(a, "--eval-n") || !strcmp(a, "--eval-windows"))
        r = int_opt(prog, a, v, 1, 1ll << 40, &o->eval_n);
    else if (!strcmp(a, "--log-every")) r = int_opt(prog, a, v, 1, 1ll << 40, &o->log_every);
    else if (!strcmp(a, "--threads")) r = int_opt(prog, a, v, 0, cli_max_threads(), &o->threads);
    else if (!strcmp(a, "--arena-mb")) r = int_opt(prog, a, v, 16, 1 << 20, &o->arena_mb);
    else if (!strcmp(a, "--precision")) {
        r = 0;
        if (v && !strcmp(v, "f32")) g_precision = ATTN_PRECISION_F32;
        else if (v && !strcmp(v, "bf16")) g_precision = ATTN_PRECISION_BF16;
        else if (v) {
            fprintf(stderr, "%s: --precision %s: expected f32 or bf16\n", prog, v);
            r = 2;
        }
    }
    if (r < 0) return 0;
    if (!v) {
        fprintf(stderr, "%s: %s needs a value\n", prog, a);
        r = 2;
    }
    *rc = r;
    return 2;
}

int train_opt_bool(const char *prog, char **argv, int argc, int *i, int *out) {
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (v && (!strcmp(v, "0") || !strcmp(v, "1"))) {
        *out = v[0] == '1';
        (*i)++;
    } else if (v && strncmp(v, "--", 2) != 0 && strcmp(v, "-h") != 0) {
        /* not the next option: a value other than 0 or 1 (was read as the
         * bare flag, then "unknown option '2'") */
        fprintf(stderr, "%s: %s '%s': expected 0 or 1 (the bare %s means 1)\n", prog, a, v, a);
        return 2;
    } else {
        *out = 1;
    }
    return 0;
}

int train_path_value(const char *prog, const char *a, const char *v, const char *what) {
    if (v && v[0] == '-' && v[1] == '-') {
        fprintf(stderr, "%s: %s needs %s, got an option ('%s')\n", prog, a, what, v);
        return 2;
    }
    return 0;
}

int train_opts_check(const char *prog, const train_opts *o) {
    if (!o->out) {
        fprintf(stderr, "%s: --out DIR is required (try '%s --help')\n", prog, prog);
        return 2;
    }
    if (o->resume && o->force) {
        fprintf(stderr, "%s: --resume and --force exclude each other (--force starts a new run)\n", prog);
        return 2;
    }
    if (o->steps > 0 && o->epochs > 0) {
        fprintf(stderr, "%s: --steps and --epochs exclude each other\n", prog);
        return 2;
    }
    if (o->lr >= 0 && o->min_lr >= 0) return train_lr_check(prog, o->lr, o->min_lr);
    return 0;
}

int train_lr_check(const char *prog, double lr, double min_lr) {
    if (min_lr > lr) {
        fprintf(stderr, "%s: --min-lr %g is above the learning rate %g: the cosine schedule decays from "
                        "--lr down to --min-lr (give --min-lr at most --lr)\n", prog, min_lr, lr);
        return 2;
    }
    return 0;
}

static int exists(const char *dir, const char *name) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

/* Removes the temporary files that killed saves of earlier runs left in dir:
 * only the atomic writer's own pattern "<name>.tmp.<pid>" (the name without
 * a slash, the pid all digits) of a process that no longer exists. */
static void remove_orphans(const char *prog, const char *dir, int quiet) {
    DIR *d = opendir(dir);
    if (!d) return;
    const struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        const char *t = strstr(e->d_name, ".tmp.");
        if (!t || t == e->d_name) continue;
        const char *digits = t + 5;
        char *end = NULL;
        errno = 0;
        const long pid = strtol(digits, &end, 10);
        if (!*digits || *end || errno || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (remove(path) == 0) n++;
    }
    closedir(d);
    if (n && !quiet)
        fprintf(stderr, "%s: removed %d temporary file%s of interrupted saves from %s\n", prog, n,
                n == 1 ? "" : "s", dir);
}

static int dir_check(const char *prog, const train_opts *o);

/* Rank 0 looks at the directory and every rank takes its answer: a rank
 * that looked later would see the files rank 0 has begun to write. */
int train_dir_check(const char *prog, const train_opts *o) {
    if (train_dist_size() == 1) return dir_check(prog, o);
    int rc = train_dist_rank() == 0 ? dir_check(prog, o) : 0;
    if (train_dist_bcast_int(&rc, 1)) return 1;
    if (rc) train_dist_agreed();
    return rc;
}

static int dir_check(const char *prog, const train_opts *o) {
    const char *out = o->out;
    const int has_model = exists(out, "model.safetensors");
    remove_orphans(prog, out, o->quiet);
    if (o->resume) {
        if (has_model && o->fixed_flag) {
            fprintf(stderr,
                    "%s: --resume continues %s with the model, data and seed of its checkpoint; %s would change "
                    "them: drop it, or train a new model into another --out (or the same one with --force)\n",
                    prog, out, o->fixed_flag);
            return 2;
        }
        if (has_model) return 0;
        fprintf(stderr, "%s: nothing to resume in %s: it holds no checkpoint (model.safetensors)%s; "
                        "train without --resume first\n",
                prog, out, exists(out, ".") ? "" : " (the directory does not exist)");
        return 1;
    }
    if (!o->force && (has_model || exists(out, "train.jsonl"))) {
        fprintf(stderr, "%s: %s already holds a run (%s); give --resume to continue it, --force to overwrite "
                        "it, or another --out\n",
                prog, out, has_model ? "model.safetensors" : "train.jsonl");
        return 1;
    }
    if (has_model) {
        /* --force: the old checkpoint goes now, before the new run writes its
         * vocabulary and log, so that a new run that fails before its first
         * checkpoint cannot leave the old model beside a new vocabulary (a
         * directory no command could read) */
        char path[4096];
        snprintf(path, sizeof path, "%s/model.safetensors", out);
        if (unlink(path) != 0) {
            fprintf(stderr, "%s: --force: cannot remove %s: %s\n", prog, path, strerror(errno));
            return 1;
        }
        if (!o->quiet) fprintf(stderr, "%s: --force: removed the earlier run's %s\n", prog, path);
    }
    return 0;
}

void train_resume_ll(const char *flag, long long given, long long *val) {
    if (given < 0 || given == *val) return;
    printf("resume: %s %lld (was %lld)\n", flag, given, *val);
    *val = given;
}

void train_resume_real(const char *flag, double given, double *val) {
    if (given < 0 || given == *val) return;
    printf("resume: %s %g (was %g)\n", flag, given, *val);
    *val = given;
}

/* ---- log, clock, chart -------------------------------------------------------------------- */

double train_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The "step" of a log line, or -1 when it has none. */
static long long line_step(const char *line) {
    const char *p = strstr(line, "\"step\":");
    if (!p) return -1;
    char *end = NULL;
    const long long s = strtoll(p + 7, &end, 10);
    return end == p + 7 ? -1 : s;
}

int train_run_setup(train_run *run, const char *prog, const train_opts *o, const train_setup *s) {
    attn_optim_config oc = {0};
    oc.kind = ATTN_OPTIM_ADAMW;
    oc.lr = (float)s->lr;
    oc.beta1 = s->beta1;
    oc.beta2 = s->beta2;
    oc.weight_decay = (float)s->weight_decay;
    if (attn_optim_new(&run->opt, s->ps, &oc) != ATTN_OK) return cli_fail(s->cmd, "cannot create the optimizer");
    int64_t step = 0;
    if (o->resume && attn_checkpoint_load(s->ckpt, s->ps, run->opt, &step) != ATTN_OK)
        return cli_fail(s->cmd, "cannot load the checkpoint");
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)(o->arena_mb > 0 ? o->arena_mb : s->arena_mb) << 20;
    cc.n_threads = (int)(o->threads > 0 ? o->threads : 0);
    cc.seed = s->seed;
    if (attn_ctx_new(&run->ctx, &cc) != ATTN_OK) return cli_fail(s->cmd, "cannot create the context");
    run->prog = prog;
    run->out = o->out;
    run->fam = s->fam;
    run->self = s->self;
    run->ps = s->ps;
    run->step = step;
    run->total_steps = s->total_steps;
    run->warmup = s->warmup;
    run->log_every = o->log_every > 0 ? o->log_every : s->log_every;
    run->eval_every = o->eval_every >= 0 ? o->eval_every : s->eval_every;
    run->lr = s->lr;
    run->min_lr = s->min_lr;
    run->clip = s->clip;
    run->time_budget = o->time_budget > 0 ? o->time_budget : 0.0;
    run->seconds_before = s->seconds_before;
    run->arena_mb = (long long)(cc.arena_bytes >> 20);
    run->quiet = o->quiet;
    return 0;
}

/* On resume the log is cut back to the checkpoint: records of steps after
 * run->step (logged after the last checkpoint, before an interruption) are
 * dropped, so a resumed run's log has each step once. Rewritten through a
 * temporary file and a rename. 0, or -1 (printed). */
static int log_cut(const train_run *run, const char *path) {
    FILE *in = fopen(path, "r");
    if (!in) return 0; /* no log yet: nothing to cut */
    char tmp[4200], line[16384];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *out = fopen(tmp, "w");
    if (!out) {
        fclose(in);
        fprintf(stderr, "%s: cannot write %s: %s\n", run->prog, tmp, strerror(errno));
        return -1;
    }
    long long dropped = 0;
    while (fgets(line, sizeof line, in)) {
        if (line_step(line) > run->step) {
            dropped++;
            continue;
        }
        fputs(line, out);
    }
    const int bad = ferror(in) | ferror(out);
    fclose(in);
    if (fclose(out) != 0 || bad || rename(tmp, path) != 0) {
        remove(tmp);
        fprintf(stderr, "%s: cannot cut %s back to step %lld\n", run->prog, path, (long long)run->step);
        return -1;
    }
    if (dropped && !run->quiet)
        printf("resume: %s cut back to step %lld (%lld records after the checkpoint dropped)\n", path,
               (long long)run->step, dropped);
    return 0;
}

int train_log_open(train_run *run, int resume) {
    if (train_dist_rank() != 0) return 0; /* rank 0 alone writes the log */
    char path[4096];
    snprintf(path, sizeof path, "%s/train.jsonl", run->out);
    if (resume && log_cut(run, path)) return 1;
    if (attn_jsonl_open(&run->log, path, resume) == ATTN_OK) return 0;
    fprintf(stderr, "%s: cannot open the log: %s\n", run->prog, attn_last_error());
    return 1;
}

int train_log(train_run *run, const attn_json_field *f, int n) {
    if (train_dist_rank() != 0) return 0;
    if (attn_jsonl_write(run->log, f, n) == ATTN_OK) return 0;
    fprintf(stderr, "%s: cannot write the log: %s\n", run->prog, attn_last_error());
    return 1;
}

double train_seconds(const train_run *run) {
    return run->seconds_before + (attn_monotonic_s() - run->t_run) - run->eval_seconds;
}

static int json_num(const char *line, const char *key, double *out) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p) return -1;
    char *end = NULL;
    *out = strtod(p + strlen(pat), &end);
    return end == p + strlen(pat) ? -1 : 0;
}

void train_chart(const char *prog, const char *dir, const train_family *fam) {
    if (train_dist_rank() != 0) return;
    char path[4096], line[8192];
    snprintf(path, sizeof path, "%s/train.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f) return;
    enum { CAP = 4096 };
    double *tx = malloc(CAP * sizeof *tx), *ty = malloc(CAP * sizeof *ty);
    double *vx = malloc(CAP * sizeof *vx), *vy = malloc(CAP * sizeof *vy);
    int64_t nt = 0, nv = 0;
    while (tx && ty && vx && vy && fgets(line, sizeof line, f)) {
        double s, l;
        const int is_train = strstr(line, "\"event\":\"train\"") != NULL;
        const int is_eval = strstr(line, "\"event\":\"eval\"") != NULL;
        if (!is_train && !is_eval) continue;
        if (json_num(line, "step", &s) || json_num(line, is_train ? "loss" : "valid_loss", &l)) continue;
        if (is_train && nt < CAP) {
            tx[nt] = s;
            ty[nt++] = l;
        } else if (is_eval && nv < CAP) {
            vx[nv] = s;
            vy[nv++] = l;
        }
    }
    fclose(f);
    if (tx && ty && vx && vy && nt > 0) {
        attn_series ser[2] = {{"train (window mean)", tx, ty, nt}, {fam->chart_valid, vx, vy, nv}};
        attn_line_chart ch = {fam->chart_title, "step", fam->chart_ylabel, ser, nv > 0 ? 2 : 1, 0, 0, 0};
        snprintf(path, sizeof path, "%s/loss.svg", dir);
        if (attn_svg_line_chart(path, &ch) != ATTN_OK)
            fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, attn_last_error());
    }
    free(tx);
    free(ty);
    free(vx);
    free(vy);
}

/* ---- signals ------------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_signal = 0;

/* The first signal asks the loop to stop after the current step; a second
 * one (the step or an evaluation takes too long) ends the process at once,
 * as the signal's default would. */
static void on_signal(int sig) {
    if (stop_signal) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_signal = sig;
}

static const char *signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal"; }

/* ---- the loop ------------------------------------------------------------------------------ */

static int save(train_run *run) {
    char path[4096];
    const attn_kv *kv = NULL;
    int n = 0;
    run->fam->meta(run->self, run, train_seconds(run), &kv, &n);
    if (run->fam->save) return run->fam->save(run->self, run, kv, n);
    snprintf(path, sizeof path, "%s/model.safetensors", run->out);
    if (attn_checkpoint_save(path, run->ps, run->opt, run->step, kv, n) == ATTN_OK) return 0;
    fprintf(stderr, "%s: cannot save the checkpoint: %s\n", run->prog, attn_last_error());
    return 1;
}

static int close_log(train_run *run) {
    attn_jsonl *log = run->log;
    run->log = NULL;
    if (!log) return 0; /* a rank other than 0 */
    if (attn_jsonl_close(log) == ATTN_OK) return 0;
    fprintf(stderr, "%s: cannot close the log: %s\n", run->prog, attn_last_error());
    return 1;
}

static int run_steps(train_run *run);

int train_loop(train_run *run) {
    if (train_dist_rank() != 0) run->quiet = 1;
    if (run->total_steps > 0 && run->step >= run->total_steps) {
        fprintf(stderr, "%s: %s is already at step %lld of %lld (give --steps N with a larger N)\n", run->prog,
                run->out, (long long)run->step, (long long)run->total_steps);
        train_dist_agreed(); /* every rank refuses alike */
        return 1;
    }
    if (run->time_budget > 0 && run->seconds_before >= run->time_budget) {
        fprintf(stderr, "%s: %s has used its time budget (%.1f of %.1f s; give --time-budget with a larger "
                        "value)\n", run->prog, run->out, run->seconds_before, run->time_budget);
        train_dist_agreed();
        return 1;
    }
    if (attn_ctx_set_precision(run->ctx, g_precision) != ATTN_OK) {
        fprintf(stderr, "%s: %s\n", run->prog, attn_ctx_error(run->ctx));
        train_dist_agreed();
        return 1;
    }
    if (g_precision == ATTN_PRECISION_BF16 && !run->quiet)
        printf("precision: bf16 matrix products, f32 sums, weights and optimizer state (%s)\n",
               attn_ctx_kernel_flags(run->ctx) & (ATTN_KERNELS_PORTABLE | ATTN_KERNELS_NO_AMX)
                   ? "no AMX: rounded operands on the f32 kernels"
                   : "AMX tiles where the CPU has them");
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    stop_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    /* every rank starts from rank 0's parameters (the same seed or
     * checkpoint gives the same ones; this makes sure of it) */
    const int rc = train_dist_bcast_params(run->ps) ? 1 : run_steps(run);
    /* an interruption ends every rank alike (the stop is agreed); an error
     * is one rank's, and train_dist_exit ends the job for it */
    if (rc == 130) train_dist_agreed();
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (run->log) attn_jsonl_close(run->log); /* an error path: the log as far as it got */
    run->log = NULL;
    return rc;
}

/* Several ranks: the step's loss, counts and gradients become those of the
 * global batch. Each rank's share w_r of it (train_counts.weight; 1 each
 * when the family computes the whole batch on every rank) weighs its loss
 * and gradient: g = sum_r (w_r / W) g_r, loss = sum_r (w_r / W) loss_r with
 * W = sum_r w_r, which is the gradient and the loss of the mean over the
 * global batch. Every rank gets the same sums, so the clipping, the finite
 * check and the optimizer step agree. 0 or 1 (message printed). */
static int reduce_step(train_run *run, int64_t step, double *l, train_counts *c) {
    const int sharded = c->sharded;
    const double w = sharded ? c->weight : 1.0;
    double s[6] = {w, w > 0 ? w * *l : 0.0, c->items, c->tokens, c->tokens2,
                   isnan(c->metric) || !(w > 0) ? 0.0 : w * c->metric};
    const double t0 = attn_monotonic_s();
    if (train_dist_sum(s, 6)) {
        fprintf(stderr, "%s: step %lld: the reduction over the %d ranks failed\n", run->prog, (long long)step,
                train_dist_size());
        return 1;
    }
    const double W = s[0] > 0 ? s[0] : 1.0; /* no rank had anything: loss and gradient 0 */
    if (train_dist_reduce_grads(run->ps, (float)(w / W), NULL)) {
        fprintf(stderr, "%s: step %lld: the reduction over the %d ranks failed\n", run->prog, (long long)step,
                train_dist_size());
        return 1;
    }
    run->dist_seconds += attn_monotonic_s() - t0;
    *l = s[1] / W;
    if (sharded) {
        c->items = s[2];
        c->tokens = s[3];
        c->tokens2 = s[4];
    }
    if (!isnan(c->metric)) c->metric = s[5] / W;
    return 0;
}

/* Several ranks, at each evaluation: do the ranks still hold the same
 * parameters? They should (the same reduced gradient, the same step), but
 * MPI only recommends that an allreduce give every rank the same bits; if
 * they differ, rank 0's are broadcast (the optimizer states stay each
 * rank's) and a "sync" record says so. 0 or 1 (message printed). */
static int check_ranks(train_run *run) {
    int same = 1;
    if (train_dist_same_params(run->ps, &same)) return 1;
    if (!same && train_dist_bcast_params(run->ps)) return 1;
    const attn_json_field f[] = {attn_json_str("event", "sync"), attn_json_int("step", run->step),
                                 attn_json_int("ranks", train_dist_size()), attn_json_bool("identical", same)};
    if (train_log(run, f, 4)) return 1;
    if (!same && !run->quiet)
        fprintf(stderr, "%s: step %lld: the ranks' parameters differed (rounding in the allreduce): rank 0's "
                        "broadcast\n", run->prog, (long long)run->step);
    return 0;
}

/* The step of a family with one loss and one optimizer: reset, loss, zero
 * the gradients, backward, clip, finite check, learning rate, update. 0 or
 * 1 (message printed). */
static int one_step(train_run *run, int64_t step, double elapsed, train_step_out *r) {
    const train_family *fam = run->fam;
    attn_ctx_reset(run->ctx);
    train_counts *c = &r->c;
    attn_tensor *loss = fam->loss(run->self, run, step, c);
    if (!loss) {
        const char *e = attn_ctx_error(run->ctx);
        if (run->progress.tty && !run->quiet) fputc('\n', stderr);
        fprintf(stderr, "%s: step %lld: %s\n", run->prog, (long long)step, e && e[0] ? e : attn_last_error());
        if (attn_ctx_status(run->ctx) == ATTN_ERR_OOM)
            fprintf(stderr, "hint: raise --arena-mb (now %lld) or lower --batch\n", run->arena_mb);
        return 1;
    }
    attn_params_zero_grad(run->ps);
    if (attn_backward(run->ctx, loss) != ATTN_OK) {
        fprintf(stderr, "%s: step %lld: backward: %s\n", run->prog, (long long)step, attn_last_error());
        return 1;
    }
    double l = attn_f32(loss)[0];
    if (train_dist_size() > 1) {
        attn_ctx_set_batch_slice(run->ctx, 0, 0, 0); /* a family's slice ends with its step */
        if (reduce_step(run, step, &l, c)) return 1;
    }
    const float norm = attn_clip_grad_norm(run->ps, (float)run->clip);
    if (!isfinite(norm) || !isfinite(l)) {
        fprintf(stderr, "%s: step %lld: loss %g, gradient norm %g: not finite; lower --lr\n", run->prog,
                (long long)step, l, (double)norm);
        return 1;
    }
    const float lrs = fam->lr_at ? fam->lr_at(run->self, run, step, elapsed)
                                 : attn_lr_warmup_cosine(step, run->warmup, run->total_steps, (float)run->lr,
                                                         (float)run->min_lr);
    if (attn_optim_step(run->opt, lrs) != ATTN_OK) {
        fprintf(stderr, "%s: optimizer step failed: %s\n", run->prog, attn_last_error());
        return 1;
    }
    r->loss = l;
    r->grad_norm = norm;
    r->lr = lrs;
    return 0;
}

static int run_steps(train_run *run) {
    const train_family *fam = run->fam;
    attn_progress_init(&run->progress, run->quiet ? NULL : stderr, run->total_steps > 0 ? run->total_steps : 0,
                       run->label ? run->label : "train");
    run->progress.unit = fam->unit;
    run->progress.first = run->step;
    run->start = run->step;
    run->t_run = attn_monotonic_s();
    run->c_run = train_cpu_s();
    run->eval_seconds = run->eval_cpu = run->dist_seconds = 0.0;
    run->stopped = "steps";
    const int rank0 = train_dist_rank() == 0, several = train_dist_size() > 1;
    double win_loss = 0.0, win_metric = 0.0, win_tokens = 0.0, win_tokens2 = 0.0, win_t = run->t_run;
    int64_t win_steps = 0;
    int saved = 0; /* the checkpoint is of the current step */
    while (run->total_steps <= 0 || run->step < run->total_steps) {
        const int64_t step = run->step;
        const double elapsed = train_seconds(run);
        train_step_out r = {0.0, 0.0f, 0.0f, {0.0, 0.0, 0.0, NAN, 0.0, 0}};
        if (fam->step ? fam->step(run->self, run, step, elapsed, &r) : one_step(run, step, elapsed, &r))
            return 1;
        const double l = r.loss;
        const float norm = r.grad_norm, lrs = r.lr;
        const train_counts c = r.c;
        run->step = step + 1;
        saved = 0;
        if (fam->after_step && fam->after_step(run->self, run)) return 1;
        win_loss += l;
        if (!isnan(c.metric)) win_metric += c.metric;
        win_tokens += c.tokens;
        win_tokens2 += c.tokens2;
        win_steps++;
        const double trained = train_seconds(run);
        if (run->total_steps <= 0 && run->time_budget > 0) {
            /* Only a time budget: the progress line's total is the estimate
             * at this run's pace, so its ETA is the budget's end. */
            const double here = trained - run->seconds_before;
            attn_progress_set_total(&run->progress,
                                    run->step + (int64_t)((double)(run->step - run->start) *
                                                          (run->time_budget - trained) / (here > 1e-9 ? here : 1e-9)));
        }
        attn_progress_update(&run->progress, run->step, l, c.items);
        if (run->time_budget > 0 && trained >= run->time_budget) run->stopped = "time_budget";
        if (several) {
            /* every rank stops at the same step: at a signal any rank got,
             * or when rank 0's clock says the time budget is spent */
            int stop[2] = {(int)stop_signal, rank0 && !strcmp(run->stopped, "time_budget")};
            if (train_dist_max_int(stop, 2)) return 1;
            if (stop[0] && !stop_signal) stop_signal = stop[0];
            run->stopped = stop[1] ? "time_budget" : "steps";
        }
        const int last = (run->total_steps > 0 && run->step >= run->total_steps) || !strcmp(run->stopped, "time_budget");
        if (run->step % run->log_every == 0 || last) {
            const double t = attn_monotonic_s(), dt = t - win_t > 1e-9 ? t - win_t : 1e-9;
            attn_json_field f[11];
            int n = 0;
            f[n++] = attn_json_str("event", "train");
            f[n++] = attn_json_int("step", run->step);
            f[n++] = attn_json_num("loss", win_loss / (double)win_steps);
            if (fam->metric_key) f[n++] = attn_json_num(fam->metric_key, win_metric / (double)win_steps);
            f[n++] = attn_json_num("lr", lrs);
            f[n++] = attn_json_num("grad_norm", norm);
            f[n++] = attn_json_num("tokens_per_s", win_tokens / dt);
            if (fam->rate2_key) f[n++] = attn_json_num(fam->rate2_key, win_tokens2 / dt);
            f[n++] = attn_json_num("elapsed", run->seconds_before + (t - run->t_run));
            if (several) {
                f[n++] = attn_json_int("ranks", train_dist_size());
                f[n++] = attn_json_num("allreduce_s", run->dist_seconds);
            }
            if (train_log(run, f, n)) return 1;
            win_loss = win_metric = win_tokens = win_tokens2 = 0.0;
            win_steps = 0;
            win_t = attn_monotonic_s();
        }
        const int eval_now = (run->eval_every > 0 && run->step % run->eval_every == 0) || last;
        if (eval_now && several && check_ranks(run)) return 1;
        if (eval_now && rank0) {
            double secs = 0.0;
            const double c0 = train_cpu_s();
            if (fam->evaluate(run->self, run, last, &secs)) return 1;
            run->eval_cpu += train_cpu_s() - c0;
            run->eval_seconds += secs;
            win_t += secs; /* the evaluation is not training time */
            if (save(run)) return 1;
            saved = 1;
        }
        if (last) break;
        if (stop_signal) {
            if (!rank0) return 130; /* rank 0 writes the checkpoint and says so */
            if (!saved && save(run)) return 1;
            attn_progress_finish(&run->progress);
            const char *sig = signal_name(stop_signal);
            const attn_json_field f[] = {attn_json_str("event", "interrupted"), attn_json_int("step", run->step),
                                         attn_json_str("signal", sig),
                                         attn_json_num("train_seconds", train_seconds(run))};
            if (train_log(run, f, 4)) return 1;
            if (close_log(run)) return 1;
            train_chart(run->prog, run->out, fam);
            fprintf(stderr,
                    "%s: interrupted by %s after step %lld of %lld: checkpoint written to %s/model.safetensors "
                    "(continue with: %s --out %s --resume)\n",
                    run->prog, sig, (long long)run->step, (long long)run->total_steps, run->out, run->prog,
                    run->out);
            return 130;
        }
    }
    attn_progress_finish(&run->progress);
    if (!rank0) return 0;
    const double train_s = attn_monotonic_s() - run->t_run - run->eval_seconds;
    const double train_cpu = train_cpu_s() - run->c_run - run->eval_cpu;
    if (fam->finish(run->self, run, train_s, train_cpu)) return 1;
    if (close_log(run)) return 1;
    train_chart(run->prog, run->out, fam);
    printf("model written to %s/model.safetensors (%s)\n", run->out,
           fam->files ? fam->files : "vocab, train.jsonl, loss.svg");
    return 0;
}
