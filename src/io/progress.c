/* progress.c: the progress line and the JSONL logger. Contracts:
 * include/attn/progress.h. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/internal.h"
#include "attn/progress.h"

/* ---- the progress line ---------------------------------------------------------------- */

double attn_monotonic_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void attn_progress_set_total(attn_progress *p, int64_t total) {
    if (p) p->total = total;
}

void attn_progress_init(attn_progress *p, FILE *out, int64_t total, const char *label) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->out = out;
    p->tty = out ? isatty(fileno(out)) : 0;
    p->interval_s = 10.0;
    p->ema_beta = 0.98;
    p->label = label;
    p->unit = "items";
    p->total = total;
    p->loss_last = NAN;
    p->t0 = attn_monotonic_s();
    p->last_draw = -1;
}

/* "M:SS" or "H:MM:SS" (seconds rounded down); "?" when not finite. */
static void fmt_duration(char *buf, size_t size, double s) {
    if (!isfinite(s) || s < 0 || s > 1e9) {
        snprintf(buf, size, "?");
        return;
    }
    long long t = (long long)s;
    if (t >= 3600) snprintf(buf, size, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, size, "%lld:%02lld", t / 60, t % 60);
}

/* Appends to buf (of size) at *len, keeping it NUL-terminated. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static void cat(char *buf, size_t size, size_t *len, const char *fmt, ...) {
    if (*len + 1 >= size) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    *len += (size_t)n;
    if (*len >= size) *len = size - 1;
}

static int progress_format(const attn_progress *p, double el, char *buf, size_t size) {
    if (!buf || size == 0) return 0;
    buf[0] = 0;
    if (!p) return 0;
    size_t len = 0;
    if (p->label && p->label[0]) cat(buf, size, &len, "%s ", p->label);
    if (p->total > 0)
        cat(buf, size, &len, "%lld/%lld %.1f%%", (long long)p->step, (long long)p->total,
            100.0 * (double)p->step / (double)p->total);
    else
        cat(buf, size, &len, "step %lld", (long long)p->step);
    if (p->n_loss > 0 || !isnan(p->loss_last)) {
        cat(buf, size, &len, " | loss ");
        if (p->n_loss > 0) {
            double corr = 1.0 - pow(p->ema_beta, (double)p->n_loss);
            cat(buf, size, &len, "%.4f ", corr > 0 ? p->ema_sum / corr : p->loss_last);
        }
        cat(buf, size, &len, "(last %.4f)", p->loss_last);
    }
    if (p->items > 0 && el > 0) {
        double r = p->items / el;
        cat(buf, size, &len, r >= 100 ? " | %.0f %s/s" : r >= 10 ? " | %.1f %s/s" : " | %.2f %s/s",
            r, p->unit ? p->unit : "items");
    }
    char e[32], eta[32];
    fmt_duration(e, sizeof e, el);
    cat(buf, size, &len, " | %s elapsed", e);
    const int64_t done = p->step - p->first; /* steps of this run */
    if (p->total > 0 && done > 0 && p->step < p->total) {
        fmt_duration(eta, sizeof eta, el / (double)done * (double)(p->total - p->step));
        cat(buf, size, &len, ", eta %s", eta);
    }
    return (int)len;
}

int attn_progress_format(const attn_progress *p, double elapsed_s, char *buf, size_t size) {
    attn__c_locale l = attn__c_locale_begin();
    int n = progress_format(p, elapsed_s, buf, size);
    attn__c_locale_end(l);
    return n;
}

/* Writes the line: in place on a tty, as a full line otherwise. */
static void draw(attn_progress *p, double el) {
    char line[512];
    int n = attn_progress_format(p, el, line, sizeof line);
    if (p->tty) {
        /* blank whatever a longer previous line left on the terminal */
        int pad = p->last_len > n ? p->last_len - n : 0;
        fprintf(p->out, "\r%s%*s", line, pad, "");
        p->last_len = n;
    } else {
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
    p->last_draw = el;
    p->lines++;
}

void attn_progress_update_at(attn_progress *p, int64_t step, double loss, double items,
                             double elapsed_s) {
    if (!p) return;
    p->step = step;
    p->elapsed = elapsed_s;
    if (isfinite(items) && items > 0) p->items += items;
    p->loss_last = loss; /* shown even when not finite: a diverging run must be visible */
    if (isfinite(loss)) {
        p->ema_sum = p->ema_beta * p->ema_sum + (1.0 - p->ema_beta) * loss;
        p->n_loss++;
    }
    if (!p->out) return;
    int due;
    if (p->tty)
        due = p->last_draw < 0 || elapsed_s - p->last_draw >= 0.1 ||
              (p->total > 0 && step >= p->total);
    else
        due = p->last_draw < 0 || elapsed_s - p->last_draw >= p->interval_s;
    if (due) draw(p, elapsed_s);
}

void attn_progress_update(attn_progress *p, int64_t step, double loss, double items) {
    if (!p) return;
    attn_progress_update_at(p, step, loss, items, attn_monotonic_s() - p->t0);
}

void attn_progress_finish_at(attn_progress *p, double elapsed_s) {
    if (!p) return;
    p->elapsed = elapsed_s;
    if (!p->out) return;
    draw(p, elapsed_s);
    if (p->tty) {
        fputc('\n', p->out);
        fflush(p->out);
        p->last_len = 0;
    }
}

void attn_progress_finish(attn_progress *p) {
    if (!p) return;
    attn_progress_finish_at(p, attn_monotonic_s() - p->t0);
}

/* ---- JSON records ------------------------------------------------------------------------- */

/* The shortest of %.15g, %.16g, %.17g that reads back as v (finite v). */
static void json_number(attn__strbuf *b, double v) {
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    attn__sb_puts(b, tmp);
}

static attn_status json_record(const attn_json_field *f, int n, attn__strbuf *b, const char *fn) {
    if (n < 0 || (n > 0 && !f))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %d fields at %p: need n >= 0 and fields "
                           "when n > 0", fn, n, (const void *)f);
    for (int k = 0; k < n; k++) {
        if (!f[k].key) return attn__error(ATTN_ERR_INVALID_ARG, "%s: field %d has a NULL key", fn, k);
        if ((unsigned)f[k].type > ATTN_JSON_NULL)
            return attn__error(ATTN_ERR_INVALID_ARG, "%s: field %d ('%s') has type %d, not an "
                               "attn_json_type", fn, k, f[k].key, (int)f[k].type);
        for (int j = 0; j < k; j++)
            if (strcmp(f[j].key, f[k].key) == 0)
                return attn__error(ATTN_ERR_INVALID_ARG, "%s: key '%s' appears twice (fields %d "
                                   "and %d)", fn, f[k].key, j, k);
    }
    attn__sb_put(b, "{", 1);
    for (int k = 0; k < n; k++) {
        if (k) attn__sb_put(b, ",", 1);
        attn__sb_json_string(b, f[k].key);
        attn__sb_put(b, ":", 1);
        switch (f[k].type) {
        case ATTN_JSON_NUMBER:
            if (isfinite(f[k].num)) json_number(b, f[k].num);
            else attn__sb_puts(b, "null");
            break;
        case ATTN_JSON_INT: attn__sb_printf(b, "%lld", (long long)f[k].i); break;
        case ATTN_JSON_STRING:
            if (f[k].str) attn__sb_json_string(b, f[k].str);
            else attn__sb_puts(b, "null");
            break;
        case ATTN_JSON_BOOL: attn__sb_puts(b, f[k].i ? "true" : "false"); break;
        case ATTN_JSON_NULL: attn__sb_puts(b, "null"); break;
        }
    }
    attn__sb_put(b, "}", 1);
    if (b->oom) return attn__error(ATTN_ERR_OOM, "%s: out of memory formatting %d fields", fn, n);
    return ATTN_OK;
}

attn_status attn_json_record(const attn_json_field *fields, int n, char **out) {
    static const char *fn = "attn_json_record";
    if (!out) return attn__error(ATTN_ERR_INVALID_ARG, "%s: out is NULL", fn);
    *out = NULL;
    attn__strbuf b = {0};
    attn__c_locale l = attn__c_locale_begin();
    attn_status st = json_record(fields, n, &b, fn);
    attn__c_locale_end(l);
    if (st) {
        attn__sb_free(&b);
        return st;
    }
    *out = b.p;
    return ATTN_OK;
}

/* ---- the JSONL file ------------------------------------------------------------------------- */

struct attn_jsonl {
    FILE *fp;
    char *path;
};

attn_status attn_jsonl_open(attn_jsonl **out, const char *path, int append) {
    static const char *fn = "attn_jsonl_open";
    if (!out || !path)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %s is NULL", fn, !out ? "out" : "path");
    *out = NULL;
    attn_jsonl *log = calloc(1, sizeof *log);
    char *p = malloc(strlen(path) + 1);
    if (!log || !p) {
        free(log);
        free(p);
        return attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    }
    strcpy(p, path);
    log->path = p;
    log->fp = fopen(path, append ? "ab" : "wb");
    if (!log->fp) {
        attn_status st = attn__error(ATTN_ERR_IO, "%s: cannot open %s for %s: %s", fn, path,
                                     append ? "appending" : "writing", strerror(errno));
        free(p);
        free(log);
        return st;
    }
    *out = log;
    return ATTN_OK;
}

attn_status attn_jsonl_write(attn_jsonl *log, const attn_json_field *fields, int n) {
    static const char *fn = "attn_jsonl_write";
    if (!log) return attn__error(ATTN_ERR_INVALID_ARG, "%s: log is NULL", fn);
    attn__strbuf b = {0};
    attn__c_locale l = attn__c_locale_begin();
    attn_status st = json_record(fields, n, &b, fn);
    attn__c_locale_end(l);
    if (!st) {
        attn__sb_put(&b, "\n", 1);
        if (b.oom) st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    }
    if (!st && (fwrite(b.p, 1, b.len, log->fp) != b.len || fflush(log->fp) != 0))
        st = attn__error(ATTN_ERR_IO, "%s: cannot write to %s: %s", fn, log->path,
                         strerror(errno));
    attn__sb_free(&b);
    return st;
}

attn_status attn_jsonl_close(attn_jsonl *log) {
    if (!log) return ATTN_OK;
    attn_status st = ATTN_OK;
    if (fclose(log->fp) != 0)
        st = attn__error(ATTN_ERR_IO, "attn_jsonl_close: closing %s failed: %s", log->path,
                         strerror(errno));
    free(log->path);
    free(log);
    return st;
}
