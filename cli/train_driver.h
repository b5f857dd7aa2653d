/* train_driver.h: the one training loop of attn's model commands, and the
 * behaviour every family gets from it (cli/train_driver.c).
 *
 * A family (the GPT, BERT pretraining, BERT fine-tuning, ...) builds its
 * model, data, optimizer and context, fills a train_run and hands it to
 * train_loop with a table of its own functions (train_family): the loss of
 * one step's batch, the held-out evaluation, the checkpoint metadata and the
 * closing summary. The driver owns the rest, the same for every family:
 *
 *   - the step: reset, loss, zero the gradients, backward, clip, finite
 *     check, learning rate (linear warmup, cosine), optimizer step (or the
 *     family's own step, train_family.step, for a GAN's two updates);
 *   - the JSONL log (train.jsonl: a "train" record per log window), the
 *     periodic evaluation and checkpoint, the loss chart (loss.svg);
 *   - the progress line with the global step ("101/600" after a resume) and
 *     the time left;
 *   - SIGINT / SIGTERM: the current step finishes, a checkpoint is written,
 *     the command says where and exits 130 (a second signal ends the
 *     process at once);
 *   - --time-budget: training stops (with a final evaluation and checkpoint)
 *     once the training time reaches the budget;
 *   - the run directory: training into one that already holds a run is
 *     refused unless --resume or --force is given (train_dir_check); a
 *     --resume with nothing to resume says so;
 *   - on --resume, flags the checkpoint fixes (the model's shape, the data,
 *     the seed) are refused, flags that may change (steps, lr, schedule) are
 *     applied and printed (train_resume_ll / train_resume_real).
 *
 * Data parallelism (cli/train_dist.h, docs/distributed.md): under mpirun
 * every rank runs the same loop; train_dir_check is rank 0's decision, the
 * parameters are broadcast from rank 0 before the first step, each step's
 * gradients and counts are reduced over the ranks before the clipping (a
 * family that shards its batch says so in train_counts.weight), the stop
 * (signal, time budget) is agreed after each step, and rank 0 alone
 * evaluates, logs, draws the chart and writes checkpoints. A family's own
 * step (train_family.step) runs replicated on every rank.
 *
 * One option vocabulary: train_opt parses the options every training
 * command shares; the old spellings stay as aliases (noted in the help). */
#ifndef ATTN_CLI_TRAIN_DRIVER_H
#define ATTN_CLI_TRAIN_DRIVER_H

#include <stdint.h>
#include <stdio.h>

#include "attn/attn.h"

/* ---- options ------------------------------------------------------------------------- */

/* The options every training command shares. Integers are -1 and reals < 0
 * when not given: the family applies its default, a resumed run keeps the
 * checkpoint's value. */
typedef struct train_opts {
    const char *out;
    long long steps, epochs, batch, warmup, seed, eval_every, eval_n, log_every, threads, arena_mb;
    double lr, min_lr, weight_decay, time_budget;
    int resume, force, quiet;
    const char *fixed_flag; /* the first flag given that the checkpoint fixes (train_fixed) */
} train_opts;

void train_opts_init(train_opts *o);

/* Parses option a (value v = the next argument, or NULL) if it is one of
 * the common training options:
 *   --out DIR, --steps N, --epochs E, --time-budget S, --batch N, --lr X,
 *   --min-lr X, --warmup N, --weight-decay X, --seed N, --eval-every N,
 *   --eval-n N (alias --eval-windows), --log-every N, --threads N,
 *   --arena-mb N, --precision f32|bf16, --resume, --force, --quiet.
 * --precision is the process's: train_loop sets it on the run's context
 * (attn_ctx_set_precision), whatever the family.
 * Returns 0 if a is not one of them, 1 if it was a flag without a value, 2
 * if it took v (the caller skips it). *rc becomes 2 on a bad or missing
 * value (the message printed). prog is "attn gpt train" and the like.
 * --seed marks the run as fixed (train_fixed). */
int train_opt(const char *prog, const char *a, const char *v, train_opts *o, int *rc);

/* Notes that flag a (a model shape, data or tokenizer option) was given:
 * with --resume it is refused by train_opts_check. */
void train_fixed(train_opts *o, const char *a);

/* A boolean option "--name 0|1" whose bare form "--name" means 1 (the old
 * spelling): *i is advanced past the value when there is one. A next
 * argument that is neither 0, 1 nor an option ("--sym 2", "--sym -1") is
 * refused:
 * returns 2, the message printed; 0 otherwise. */
int train_opt_bool(const char *prog, char **argv, int argc, int *i, int *out);

/* A path-valued option a ("--out", "--data") given v: refuses a value that
 * starts with "--" ("--out --steps 1" would take "--steps" as the folder):
 * returns 2 with "PROG: --out needs WHAT, got an option ('--steps')"
 * printed, 0 otherwise (a missing v is the caller's "needs a value"). */
int train_path_value(const char *prog, const char *a, const char *v, const char *what);

/* Checks the common options after parsing: --out given, --steps with
 * --epochs refused, --resume with --force refused, --min-lr above --lr
 * refused when both are given (train_lr_check). Returns 0 or the exit code
 * (2), the message printed. */
int train_opts_check(const char *prog, const train_opts *o);

/* The schedule's rates once the family has applied its defaults (or the
 * checkpoint's, on --resume): --min-lr above the learning rate is refused
 * (exit code 2, the message printed); 0 otherwise. train_opts_check does it
 * when both are given. */
int train_lr_check(const char *prog, double lr, double min_lr);

/* The run directory o->out: 0 when training may go on. With --resume, DIR
 * must hold a checkpoint ("nothing to resume" otherwise, exit code 1) and
 * no flag the checkpoint fixes may be given (exit code 2, the flag named);
 * without it, a DIR that holds a run (model.safetensors or train.jsonl) is
 * refused unless --force (exit code 1, the message says what to give). */
int train_dir_check(const char *prog, const train_opts *o);

/* A value a resumed run may change: when given (>= 0) and different from
 * *val, prints "resume: --steps 600 (was 300)" and applies it. */
void train_resume_ll(const char *flag, long long given, long long *val);
void train_resume_real(const char *flag, double given, double *val);

/* ---- the loop --------------------------------------------------------------------------- */

typedef struct train_run train_run;

/* What one step's batch held (train_family.loss fills it). */
typedef struct train_counts {
    double items;   /* what the progress line counts (tokens, sequences) */
    double tokens;  /* tokens of the batch: the log's tokens_per_s */
    double tokens2; /* a second count logged per second under rate2_key (source tokens) */
    double metric;  /* the step's metric (metric_key), NAN when none */
    /* Data-parallel runs (cli/train_dist.h). sharded 1: this rank computed
     * its slice of the global batch (train_shard), weight is what its loss
     * is a mean over (the slice's tokens, rows or masked positions; 0 when
     * it has none, its loss then 0), and the counts above are this rank's:
     * the driver weighs each rank's loss and gradient by its share of the
     * global batch and sums the counts. sharded 0: the family computes the
     * whole global batch on every rank (replicated: correct, no speed-up)
     * and the counts are the global batch's. Ignored in a one-process run. */
    double weight;
    int sharded;
} train_counts;

/* What a family's own step (train_family.step) reports to the driver. */
typedef struct train_step_out {
    double loss;       /* the step's loss: the log's "loss", the progress line's */
    float grad_norm;   /* the log's "grad_norm" (before clipping) */
    float lr;          /* the log's "lr" */
    train_counts c;    /* as train_family.loss fills it */
} train_step_out;

typedef struct train_family {
    const char *unit;        /* what the progress line counts per step ("tok", "seq") */
    const char *metric_key;  /* a per-step metric averaged over the log window ("accuracy"), or NULL */
    const char *chart_title; /* loss.svg's title */
    const char *chart_ylabel;
    const char *chart_valid; /* the name of the held-out series in the chart */
    const char *rate2_key;   /* the train record's key of counts.tokens2 per second, or NULL */
    const char *files;       /* what the run directory holds, for the closing line */
    /* The loss of global step `step`'s batch, built on run->ctx (already
     * reset): the family draws the batch (and sets the random stream) so
     * that a resumed run replays them. Fills *c (zeroed, metric NAN, on
     * entry). NULL on error (the context's error, or the last error, is
     * printed by the driver). */
    attn_tensor *(*loss)(void *self, train_run *run, int64_t step, train_counts *c);
    /* The learning rate of step `step` (0-based) after `elapsed` seconds of
     * training; NULL: linear warmup over run->warmup steps, then a cosine
     * from run->lr to run->min_lr at run->total_steps. */
    float (*lr_at)(void *self, train_run *run, int64_t step, double elapsed);
    /* The held-out evaluation after run->step steps (last: the final one);
     * writes its "eval" record (train_log), prints its line (to stdout when
     * last, else to stderr unless quiet). *seconds: time it took. 0 on
     * success, else 1 (message printed). */
    int (*evaluate)(void *self, train_run *run, int last, double *seconds);
    /* The checkpoint's metadata (model configuration and run settings) with
     * train_seconds of training so far; *kv points at the family's storage. */
    void (*meta)(void *self, train_run *run, double train_seconds, const attn_kv **kv, int *n);
    /* The summary at the end: prints it and writes the "end" record. train_s
     * and train_cpu: training time (evaluations apart) of this run. 0 or 1. */
    int (*finish)(void *self, train_run *run, double train_s, double train_cpu);
    /* Called after each optimizer step (run->step already advanced), or NULL:
     * a family's projection of its parameters (the Transformer-XL clamps its
     * adaptive spans here) and its own log records. 0, or 1 to stop with an
     * error (message printed). */
    int (*after_step)(void *self, train_run *run);
    /* Optional (NULL for a family whose step is one loss and one optimizer):
     * the whole of step `step` (0-based) after `elapsed` seconds of
     * training, for a family that updates several parts with their own
     * losses and optimizers (the GAN: a discriminator update, then a
     * generator update). It resets run->ctx as it needs, runs its forwards,
     * backwards, finite checks and optimizer steps, and fills *r (zeroed,
     * c.metric NAN, on entry). The driver does the rest as for any step:
     * progress line, log records, evaluations, checkpoints, time budget,
     * signals. `loss` and `lr_at` are not called then. 0 on success, 1 on
     * error (message printed). */
    int (*step)(void *self, train_run *run, int64_t step, double elapsed, train_step_out *r);
    /* Optional: writes the checkpoint of the current step (metadata kv[n]
     * from `meta`) in the family's own way (the GAN: two stores, two
     * optimizers); NULL: attn_checkpoint_save(DIR/model.safetensors,
     * run->ps, run->opt). DIR/model.safetensors must be among what it
     * writes (it marks a run: train_dir_check). 0 or 1 (message printed). */
    int (*save)(void *self, train_run *run, const attn_kv *kv, int n);
} train_family;

struct train_run {
    /* Filled by the family before train_loop. */
    const char *prog;            /* "attn gpt train" */
    const char *label;           /* the progress line's first word (NULL: "train") */
    const char *out;             /* the run directory */
    const train_family *fam;
    void *self;
    attn_ctx *ctx;
    attn_params *ps;
    attn_optim *opt;
    int64_t step;                /* steps done (the checkpoint's on resume) */
    int64_t total_steps;         /* <= 0: until the time budget */
    int64_t warmup;
    int64_t log_every, eval_every; /* eval_every 0: at the end only */
    double lr, min_lr, clip;
    double time_budget;          /* seconds of training (0: none) */
    double seconds_before;       /* training seconds of the run before this one (resume) */
    long long arena_mb;          /* for the out-of-memory hint */
    int quiet;
    /* The driver's. */
    attn_jsonl *log;
    attn_progress progress;
    int64_t start;               /* the step this invocation started at */
    double t_run, c_run, eval_seconds, eval_cpu;
    const char *stopped;         /* "steps", "time_budget" or the signal's name */
    double dist_seconds;         /* time in the gradient allreduce (this invocation, several ranks) */
};

/* What a family's training command sets up the same way before train_loop:
 * the AdamW optimizer, the checkpoint of a resumed run, the context and the
 * run's fields. The family's own numbers: */
typedef struct train_setup {
    const char *cmd;           /* for messages: "gpt" */
    const train_family *fam;
    void *self;
    attn_params *ps;
    const char *ckpt;          /* read when o->resume */
    float beta1, beta2;        /* AdamW's (0: the optimizer's defaults) */
    double lr, min_lr, weight_decay, clip, seconds_before;
    int64_t total_steps, warmup;
    uint64_t seed;
    long long arena_mb;        /* the context's arena when --arena-mb is not given */
    int64_t log_every, eval_every; /* defaults of --log-every and --eval-every */
} train_setup;

/* Creates run->opt and run->ctx (the caller frees both, also after an
 * error), loads s->ckpt into the store and the optimizer on --resume
 * (run->step), and fills run->prog, out, fam, self, ps, total_steps,
 * warmup, log_every, eval_every, lr, min_lr, clip, time_budget,
 * seconds_before, arena_mb and quiet from s and o. 0, or 1 with the
 * message printed. */
int train_run_setup(train_run *run, const char *prog, const train_opts *o, const train_setup *s);

/* Opens DIR/train.jsonl (appending on resume); 0 or 1 (message printed). */
int train_log_open(train_run *run, int resume);
/* Writes one record; 0 or 1 (message printed). */
int train_log(train_run *run, const attn_json_field *f, int n);
/* Training seconds so far (evaluations apart), the earlier runs included. */
double train_seconds(const train_run *run);

/* Trains from run->step to run->total_steps (or the time budget, or a
 * signal) and closes the log. A run already at its total, or past its time
 * budget, is refused with a message (exit code 1). Returns the exit code: 0, 1 (message
 * printed) or 130 (interrupted; checkpoint written). */
int train_loop(train_run *run);

/* Writes DIR/loss.svg from DIR/train.jsonl (the whole history of a resumed
 * run): the "train" records' loss and the "eval" records' valid_loss. */
void train_chart(const char *prog, const char *dir, const train_family *fam);

/* CPU seconds of the process (all threads). */
double train_cpu_s(void);

#endif
