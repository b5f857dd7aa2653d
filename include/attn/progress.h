/* attn/progress.h: a progress line for long jobs, and a JSONL logger.
 *
 * The library never prints on its own: the progress reporter writes only to
 * the stream its caller hands it (stderr, stdout, a file), and a NULL stream
 * makes it silent. Write errors on that stream are ignored (a progress
 * display must not stop a training run); the logger reports its own.
 *
 * Numbers are written under the "C" numeric locale (a '.' decimal point,
 * whatever setlocale the program made), for the calling thread only.
 */
#ifndef ATTN_PROGRESS_H
#define ATTN_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the progress line ------------------------------------------------------------ */

/* A progress reporter. The line reads
 *
 *   train 120/1000 12.0% | loss 2.3456 (last 2.4012) | 1234 tok/s | 0:12 elapsed, eta 1:30
 *
 * step/total and the percentage; the loss smoothed by an exponential moving
 * average (with bias correction, as Adam's: the first values are not pulled
 * towards 0) and the last loss; items per second over the whole run;
 * elapsed time and the estimated time left (remaining steps at the run's
 * mean time per step; the steps counted are those since `first`), as M:SS
 * or H:MM:SS. Parts without data are left out
 * (no loss yet, no items, total unknown when total <= 0).
 *
 * On a terminal (tty) the line is rewritten in place with '\r' (at most 10
 * times a second, and always at the last step); otherwise a full line is
 * written at the first update and then every interval_s seconds, so logs
 * stay short. attn_progress_finish writes the final state and ends the line.
 *
 * A plain value with no resources: no free needed. */
typedef struct attn_progress {
    /* Settings: attn_progress_init fills them; change them before the first
     * update if wanted. */
    FILE *out;         /* the stream, or NULL for silence */
    int tty;           /* 1: rewrite one line with '\r' (init: isatty(fileno(out))) */
    double interval_s; /* not a tty: seconds between lines (init: 10) */
    double ema_beta;   /* weight of the past in the loss average, 0..1 (init: 0.98) */
    const char *label; /* first word of the line, or NULL (not copied: keep it alive) */
    const char *unit;  /* what items are, e.g. "tok" (init: "items"; not copied) */
    int64_t first;     /* steps already done when the reporter started (a resumed
                        * run shows the global step "101/600"; the ETA uses the
                        * time per step since then) (init: 0) */

    /* State, read-only for callers. */
    int64_t total;     /* total steps (<= 0: unknown) */
    int64_t step;      /* steps done, as last reported */
    double loss_last;  /* the last finite loss */
    double ema_sum;    /* the uncorrected average; the shown value is
                        * ema_sum / (1 - ema_beta^n_loss) */
    int64_t n_loss;    /* finite losses seen */
    double items;      /* items processed so far */
    double elapsed;    /* seconds since init, as of the last update */
    double t0;         /* the monotonic clock at init, seconds */
    double last_draw;  /* elapsed at the last line written (-1: none yet) */
    int last_len;      /* length of the last tty line (to blank what is left of it) */
    int64_t lines;     /* lines (or tty redraws) written */
} attn_progress;

/* The monotonic clock (CLOCK_MONOTONIC) in seconds, what the reporter
 * measures with: the one clock for timing steps and runs (CLI, benches). */
double attn_monotonic_s(void);

/* Starts a reporter of `total` steps writing to out (NULL: silent). */
void attn_progress_init(attn_progress *p, FILE *out, int64_t total, const char *label);

/* Changes the expected total (e.g. a time-budgeted run's estimate); takes
 * effect at the next update. total <= 0: unknown. */
void attn_progress_set_total(attn_progress *p, int64_t total);

/* Reports progress: `step` steps are done (a count, not an increment; it may
 * exceed total), `loss` is this update's loss (pass NAN when there is none:
 * until a finite loss arrives the loss part is left out; after that a NaN or
 * Inf is shown as the last loss, so a diverging run is visible, and kept out
 * of the average), and
 * `items` is how many items (tokens, examples) were processed since the
 * previous update (0 if not counted). Draws the line when due. */
void attn_progress_update(attn_progress *p, int64_t step, double loss, double items);

/* The same with the time given: elapsed_s seconds since init (for tests and
 * replays). The plain call reads the monotonic clock. */
void attn_progress_update_at(attn_progress *p, int64_t step, double loss, double items,
                             double elapsed_s);

/* Writes the final line (the state of the last update) and, on a tty, the
 * newline that ends it. */
void attn_progress_finish(attn_progress *p);
void attn_progress_finish_at(attn_progress *p, double elapsed_s);

/* The text of the line as of elapsed_s (no '\r', no newline) into buf of
 * size bytes (truncated, always NUL-terminated). Returns its length. */
int attn_progress_format(const attn_progress *p, double elapsed_s, char *buf, size_t size);

/* ---- the JSONL logger --------------------------------------------------------------- */

/* One key/value pair of a record. Build them with the helpers below. */
typedef enum attn_json_type {
    ATTN_JSON_NUMBER = 0, /* num; non-finite values are written as null */
    ATTN_JSON_INT,        /* i, written exactly */
    ATTN_JSON_STRING,     /* str (UTF-8); NULL is written as null */
    ATTN_JSON_BOOL,       /* i != 0 */
    ATTN_JSON_NULL
} attn_json_type;

typedef struct attn_json_field {
    const char *key;
    attn_json_type type;
    double num;
    int64_t i;
    const char *str;
} attn_json_field;

static inline attn_json_field attn_json_num(const char *key, double v) {
    attn_json_field f = {key, ATTN_JSON_NUMBER, v, 0, 0};
    return f;
}
static inline attn_json_field attn_json_int(const char *key, int64_t v) {
    attn_json_field f = {key, ATTN_JSON_INT, 0.0, v, 0};
    return f;
}
static inline attn_json_field attn_json_str(const char *key, const char *s) {
    attn_json_field f = {key, ATTN_JSON_STRING, 0.0, 0, s};
    return f;
}
static inline attn_json_field attn_json_bool(const char *key, int v) {
    attn_json_field f = {key, ATTN_JSON_BOOL, 0.0, v != 0, 0};
    return f;
}

/* Formats one record as a JSON object on one line, without the newline:
 * {"step":120,"loss":2.3456,"split":"train"}. Numbers are the shortest
 * decimal that reads back as the same double (%.15g, %.16g or %.17g);
 * strings and keys are escaped (\" \\ \b \f \n \r \t, other control
 * characters as \u00XX, invalid UTF-8 as \ufffd), so any input gives valid
 * JSON in valid UTF-8. *out is malloc'ed; the caller frees it.
 * Errors: ATTN_ERR_INVALID_ARG (NULL out, fields NULL with n > 0, n < 0, a
 * NULL or repeated key, an unknown type), ATTN_ERR_OOM. */
attn_status attn_json_record(const attn_json_field *fields, int n, char **out);

/* An open log file: one JSON record per line (JSON Lines), each line written
 * with one fwrite and flushed, so a reader (tail -f, a plotting script) sees
 * whole records, and a crash loses at most the line being written. */
typedef struct attn_jsonl attn_jsonl;

/* Opens path for writing: append = 1 adds to an existing file (resuming a
 * run), 0 truncates it. Errors: ATTN_ERR_INVALID_ARG, ATTN_ERR_IO (the
 * message names the path and the system's reason), ATTN_ERR_OOM. */
attn_status attn_jsonl_open(attn_jsonl **out, const char *path, int append);

/* Writes one record (see attn_json_record) and a newline, then flushes.
 * Errors: those of attn_json_record, ATTN_ERR_IO. */
attn_status attn_jsonl_write(attn_jsonl *log, const attn_json_field *fields, int n);

/* Closes the file (NULL is a no-op). Errors: ATTN_ERR_IO when the final
 * flush or close fails; the handle is freed in every case. */
attn_status attn_jsonl_close(attn_jsonl *log);

#ifdef __cplusplus
}
#endif
#endif
