/* lm_train_task.c: `attn lm train`'s task on the shared training driver
 * (cli/train_driver.h): the batches (B windows of the text, the TXL's
 * streams of consecutive segments with the memory carried across steps,
 * images as pixel sequences, the duplication task), the loss of a step,
 * the Reformer's own step, the spans' log, the periodic and final
 * evaluations, the checkpoint's metadata and the closing summary.
 * cli/cmd_lm.c turns the options into an lm_train and runs it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "commands.h"
#include "lm_cmd.h"
#include "lm_pixels.h"
#include "lm_train.h"
#include "train_dist.h"
#include "train_driver.h"

#define CMD "lm"


/* txl: where stream b of run j starts: with --run-segments R > 0, a
 * position drawn from (seed, j, b) with room for R segments; with R = 0,
 * b / B of the text (one run through it). */
static int64_t txl_start(const lm_train *g, int64_t j, int64_t b) {
    const int64_t R = g->r.run_segments;
    if (R == 0) return b * g->stream_len;
    const int64_t room = g->n_tr - R * g->T - 1; /* >= 1, checked at the start */
    const int64_t a = (int64_t)((double)attn_rng_uniform((uint64_t)g->r.seed ^ 0x74786c72756e73ull, (uint64_t)j,
                                                         (uint64_t)b) * (double)room);
    return a < 0 ? 0 : a >= room ? room - 1 : a;
}

/* txl: the batch of segment k of run j of every stream. */
static void txl_segment(const lm_train *g, int64_t j, int64_t k, int32_t *in, int32_t *tg) {
    for (int64_t b = 0; b < g->B; b++) {
        const int64_t a = txl_start(g, j, b) + k * g->T;
        memcpy(in + b * g->T, g->tr + a, (size_t)g->T * sizeof *in);
        memcpy(tg + b * g->T, g->tr + a + 1, (size_t)g->T * sizeof *tg);
    }
}

/* The batch of step `step` of a window-based model (GPT, Reformer) or of
 * the duplication task: B windows of the training text at positions drawn
 * from (seed, step, row), or B fresh duplication sequences. */
static void window_batch(lm_train *g, int64_t step) {
    for (int64_t b = 0; b < g->B; b++) {
        if (g->dup) {
            dup_sequence((uint64_t)g->r.seed ^ DUP_TRAIN_SALT, (uint64_t)step, (uint64_t)b, g->T, g->r.dup_vocab,
                         g->bin + b * g->T, g->btg + b * g->T);
            continue;
        }
        const int64_t a = (int64_t)(attn_rng_uniform((uint64_t)g->r.seed, (uint64_t)step, (uint64_t)b) *
                                    (float)(g->n_tr - g->T - 1));
        const int64_t s = a < 0 ? 0 : a > g->n_tr - g->T - 1 ? g->n_tr - g->T - 1 : a;
        memcpy(g->bin + b * g->T, g->tr + s, (size_t)g->T * sizeof *g->bin);
        memcpy(g->btg + b * g->T, g->tr + s + 1, (size_t)g->T * sizeof *g->btg);
    }
}

static attn_tensor *lm_step_loss(void *self, train_run *run, int64_t step, train_counts *c) {
    lm_train *g = self;
    attn_ctx *ctx = run->ctx;
    attn_ctx_set_rng(ctx, (uint64_t)g->r.seed, (uint64_t)step << 24);
    c->items = c->tokens = (double)(g->B * g->T);
    if (g->r.pixels) { /* B images drawn from (seed, step, b) */
        for (int64_t b = 0; b < g->B; b++) {
            int64_t k = (int64_t)(attn_rng_uniform((uint64_t)g->r.seed, (uint64_t)step, (uint64_t)b) *
                                  (float)g->ptr.n);
            if (k < 0) k = 0;
            if (k >= g->ptr.n) k = g->ptr.n - 1;
            lm_pixels_rows(&g->ptr, k, g->bin + b * g->T, g->btg + b * g->T);
        }
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){g->B, g->T}, g->bin);
        attn_tensor *tt = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){g->B, g->T}, g->btg);
        return attn_gpt_loss(ctx, g->m.g, ti, tt, -1);
    }
    if (g->dup && g->m.t) { /* every sequence on its own: an empty memory */
        window_batch(g, step);
        attn_txl_memory_reset(&g->mem, 0);
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){g->B, g->T}, g->bin);
        attn_tensor *tt = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){g->B, g->T}, g->btg);
        return attn_txl_loss(ctx, g->m.t, ti, tt, -1, &g->mem, NULL);
    }
    if (!g->m.t) {
        window_batch(g, step);
        /* Several ranks: each its rows of the same global batch (every row
         * T tokens, all counted); the Transformer-XL below, whose memory
         * follows every row, runs the whole batch on every rank. */
        int64_t lo = 0, hi = g->B;
        if (train_dist_size() > 1) {
            train_shard(g->B, &lo, &hi);
            attn_ctx_set_batch_slice(ctx, lo, hi - lo, g->B); /* the single process's masks of these rows */
            c->items = c->tokens = c->weight = (double)((hi - lo) * g->T);
            c->sharded = 1;
        }
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){hi - lo, g->T}, g->bin + lo * g->T);
        attn_tensor *tt = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){hi - lo, g->T}, g->btg + lo * g->T);
        return attn_gpt_loss(ctx, g->m.g, ti, tt, -1);
    }
    /* txl: step s reads segment k = s mod R of run j = s / R of each stream
     * (R = --run-segments; with R = 0, segment s mod n_seg of the one run);
     * the memory is the previous segments' (empty at a run's start). A
     * resumed run (or one whose memory does not follow the previous step)
     * rebuilds it from the segments before, without gradients. */
    const int64_t R = g->r.run_segments;
    const int64_t j = R > 0 ? step / R : 0, k = R > 0 ? step % R : step % g->n_seg;
    if (k == 0) {
        attn_txl_memory_reset(&g->mem, 0);
    } else if (g->mem_step != step - 1) {
        attn_txl_memory_reset(&g->mem, 0);
        int64_t first = k - (g->r.mem_len + g->T - 1) / g->T;
        if (first < 0) first = 0;
        const int grad = attn_ctx_grad_enabled(ctx);
        attn_ctx_set_grad_enabled(ctx, 0);
        for (int64_t kk = first; kk < k; kk++) {
            attn_ctx_reset(ctx);
            txl_segment(g, j, kk, g->bin, g->btg);
            attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){g->B, g->T}, g->bin);
            if (!ti || !attn_txl_logits(ctx, g->m.t, ti, &g->mem, NULL)) {
                attn_ctx_set_grad_enabled(ctx, grad);
                return NULL;
            }
        }
        attn_ctx_set_grad_enabled(ctx, grad);
        attn_ctx_reset(ctx);
    }
    txl_segment(g, j, k, g->bin, g->btg);
    attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){g->B, g->T}, g->bin);
    attn_tensor *tt = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){g->B, g->T}, g->btg);
    attn_tensor *loss = attn_txl_loss(ctx, g->m.t, ti, tt, -1, &g->mem, NULL);
    if (!loss) {
        g->mem_step = -1;
        return NULL;
    }
    g->mem_step = step;
    if (g->m.t->cfg.span_max > 0 && g->r.span_penalty > 0) {
        attn_tensor *pen = attn_txl_span_penalty(ctx, g->m.t, (float)g->r.span_penalty);
        loss = pen ? attn_add(ctx, loss, pen) : NULL;
    }
    return loss;
}

/* The Reformer's step (train_family.step): its loss and gradients come from
 * attn_reformer_lm_train_step (the reversible backward, not the tape), then
 * the driver's usual clipping, finite check, schedule and AdamW update.
 * The LSH rotations are drawn afresh each step from (seed, step). */
static int rf_step(void *self, train_run *run, int64_t step, double elapsed, train_step_out *r) {
    (void)elapsed;
    lm_train *g = self;
    attn_ctx *ctx = run->ctx;
    attn_ctx_reset(ctx);
    attn_ctx_set_rng(ctx, (uint64_t)g->r.seed, (uint64_t)step << 24);
    window_batch(g, step);
    attn_params_zero_grad(run->ps);
    const attn_reformer_lm_run rr = {0, ((uint64_t)g->r.seed << 32) ^ (uint64_t)step ^ 0x726f74ull};
    double loss = 0.0;
    if (attn_reformer_lm_train_step(ctx, g->m.rf, g->bin, g->btg, g->B, g->T, -1, &rr, &loss, NULL) != ATTN_OK) {
        const char *e = attn_ctx_error(ctx);
        if (run->progress.tty && !run->quiet) fputc('\n', stderr);
        fprintf(stderr, "%s: step %lld: %s\n", run->prog, (long long)step, e && e[0] ? e : attn_last_error());
        if (attn_ctx_status(ctx) == ATTN_ERR_OOM)
            fprintf(stderr, "hint: raise --arena-mb (now %lld) or lower --batch\n", run->arena_mb);
        return 1;
    }
    const float norm = attn_clip_grad_norm(run->ps, (float)run->clip);
    if (!isfinite(norm) || !isfinite(loss)) {
        fprintf(stderr, "%s: step %lld: loss %g, gradient norm %g: not finite; lower --lr\n", run->prog,
                (long long)step, loss, (double)norm);
        return 1;
    }
    const float lrs = attn_lr_warmup_cosine(step, run->warmup, run->total_steps, (float)run->lr, (float)run->min_lr);
    if (attn_optim_step(run->opt, lrs) != ATTN_OK) {
        fprintf(stderr, "%s: optimizer step failed: %s\n", run->prog, attn_last_error());
        return 1;
    }
    r->loss = loss;
    r->grad_norm = norm;
    r->lr = lrs;
    r->c.items = r->c.tokens = (double)(g->B * g->T);
    return 0;
}

/* Mean learned span (keys) over every layer and head; spans as JSON text. */
static double txl_spans(const attn_txl *t, char *buf, size_t cap) {
    double sum = 0.0;
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    const int H = t->cfg.n_heads;
    for (int l = 0; l < t->cfg.n_layers; l++) {
        const float *p = attn_f32(t->layers[l].span);
        o += (size_t)snprintf(buf + o, o < cap ? cap - o : 0, "%s[", l ? "," : "");
        for (int h = 0; h < H && o < cap; h++) {
            const double z = (double)t->cfg.span_max * (double)p[h];
            sum += z;
            o += (size_t)snprintf(buf + o, o < cap ? cap - o : 0, "%s%.1f", h ? "," : "", z);
        }
        if (o < cap) o += (size_t)snprintf(buf + o, cap - o, "]");
    }
    if (o < cap) snprintf(buf + o, cap - o, "]");
    return sum / (double)(t->cfg.n_layers * H);
}

static int lm_after_step(void *self, train_run *run) {
    lm_train *g = self;
    if (!g->m.t || g->m.t->cfg.span_max <= 0) return 0;
    attn_txl_clamp_spans(g->m.t);
    if (run->step % g->log_every != 0 && run->step != run->total_steps) return 0;
    char buf[8192];
    const double mean = txl_spans(g->m.t, buf, sizeof buf);
    int64_t win = 0;
    for (int l = 0; l < g->m.t->cfg.n_layers; l++) {
        const int64_t w = attn_txl_span_window(g->m.t, l);
        if (w > win) win = w;
    }
    const attn_json_field f[] = {attn_json_str("event", "spans"), attn_json_int("step", run->step),
                                 attn_json_num("mean_span", mean), attn_json_int("max_window", win),
                                 attn_json_str("spans", buf)};
    return train_log(run, f, (int)(sizeof f / sizeof f[0]));
}

static int lm_evaluate(void *self, train_run *run, int last, double *seconds) {
    lm_train *g = self;
    if (g->dup) {
        dup_result d;
        if (dup_eval(run->ctx, &g->m, &g->r, g->r.dup_eval, g->B < 64 ? 64 : g->B, g->r.eval_rounds, &d)) return 1;
        *seconds = d.seconds;
        const attn_json_field f[] = {
            attn_json_str("event", "eval"),         attn_json_int("step", run->step),
            attn_json_num("valid_loss", d.loss),    attn_json_num("valid_acc", d.acc),
            attn_json_int("sequences", d.sequences), attn_json_int("symbols", d.symbols),
            attn_json_int("eval_rounds", g->r.eval_rounds), attn_json_num("seconds", d.seconds),
        };
        if (train_log(run, f, (int)(sizeof f / sizeof f[0]))) return 1;
        if (!run->quiet || last) {
            if (run->progress.tty && !run->quiet) fputc('\n', stderr);
            fprintf(last ? stdout : stderr,
                    "step %lld: held-out duplication accuracy %.2f%% (second halves of %lld sequences), loss %.4f "
                    "nats/symbol (%.1f s)\n", (long long)run->step, 100.0 * d.acc, (long long)d.sequences, d.loss,
                    d.seconds);
        }
        return 0;
    }
    const int64_t want = last ? g->final_eval_n : g->eval_n; /* 0: all */
    const int64_t all = g->r.pixels ? g->pva.n : g->n_va;
    const int64_t n = want <= 0 || want >= all ? all : want;
    lm_eval_result ev;
    if (g->r.pixels) {
        if (pixel_eval(run->ctx, g->m.g, &g->pva, n, g->B, &ev)) return 1;
        *seconds = ev.seconds;
        const attn_json_field f[] = {
            attn_json_str("event", "eval"), attn_json_int("step", run->step),
            attn_json_num("valid_loss", ev.bpb * log(2.0)), attn_json_num("valid_bits_per_dim", ev.bpb),
            attn_json_int("images", n), attn_json_bool("full", n == all), attn_json_num("seconds", ev.seconds),
        };
        if (train_log(run, f, (int)(sizeof f / sizeof f[0]))) return 1;
        if (!run->quiet || last) {
            if (run->progress.tty && !run->quiet) fputc('\n', stderr);
            fprintf(last ? stdout : stderr, "step %lld: valid %.4f bits/dim (%lld images%s, %.1f s)\n",
                    (long long)run->step, ev.bpb, (long long)n, n == all ? ", all" : "", ev.seconds);
        }
        return 0;
    }
    if (lm_eval(run->ctx, &g->m, g->r.eval_rounds, g->va, n, g->T, g->r.eval_mem_len, g->eval_stride, g->B, &ev))
        return 1;
    *seconds = ev.seconds;
    const attn_json_field f[] = {
        attn_json_str("event", "eval"),          attn_json_int("step", run->step),
        attn_json_num("valid_loss", ev.bpb * log(2.0)), attn_json_num("valid_bpb", ev.bpb),
        attn_json_int("bytes", ev.bytes),        attn_json_bool("full", n == g->n_va),
        attn_json_num("seconds", ev.seconds),
    };
    if (train_log(run, f, (int)(sizeof f / sizeof f[0]))) return 1;
    if (!run->quiet || last) {
        if (run->progress.tty && !run->quiet) fputc('\n', stderr);
        fprintf(last ? stdout : stderr, "step %lld: valid %.4f bits/byte (%lld bytes%s, %.1f s)\n",
                (long long)run->step, ev.bpb, (long long)ev.bytes, n == g->n_va ? ", all" : "", ev.seconds);
    }
    return 0;
}

static void lm_meta_fn(void *self, train_run *run, double train_seconds_, const attn_kv **kv, int *n) {
    lm_train *g = self;
    g->r.total_steps = run->total_steps;
    g->r.train_seconds = train_seconds_;
    lm_meta_build(&g->meta, &g->m, &g->r);
    *kv = g->meta.kv;
    *n = g->meta.n;
}

static int lm_finish(void *self, train_run *run, double train_s, double train_cpu) {
    lm_train *g = self;
    const int64_t steps = run->step - run->start;
    const double ntok = (double)(steps * g->B * g->T);
    const double tps = ntok / (train_s > 1e-9 ? train_s : 1e-9);
    const double step_ms = steps > 0 ? 1000.0 * train_s / (double)steps : 0.0;
    printf("trained %lld steps in %.1f s: %.1f ms/step, %.0f bytes/s (evaluation %.1f s apart)%s\n",
           (long long)steps, train_s, step_ms, tps, run->eval_seconds,
           !strcmp(run->stopped, "time_budget") ? "; stopped by the time budget" : "");
    double mean_span = NAN;
    if (g->m.t && g->m.t->cfg.span_max > 0) {
        char buf[8192];
        mean_span = txl_spans(g->m.t, buf, sizeof buf);
        printf("learned spans (keys, per layer and head): %s; mean %.1f of %g\n", buf, mean_span,
               (double)g->m.t->cfg.span_max);
    }
    const attn_json_field f[] = {attn_json_str("event", "end"),       attn_json_int("step", run->step),
                                 attn_json_str("stopped", run->stopped), attn_json_num("train_seconds", train_s),
                                 attn_json_num("step_ms", step_ms),     attn_json_num("tokens_per_s", tps),
                                 attn_json_num("train_cpu_seconds", train_cpu), attn_json_num("mean_span", mean_span)};
    return train_log(run, f, (int)(sizeof f / sizeof f[0]));
}

const train_family lm_family = {
    "byte", NULL, NULL, "loss (nats per byte)", "valid", NULL, "train.jsonl, loss.svg",
    lm_step_loss, NULL, lm_evaluate, lm_meta_fn, lm_finish, lm_after_step, NULL, NULL,
};

/* The Reformer: the same, with its own step (the reversible backward). */
const train_family reformer_family = {
    "byte", NULL, NULL, "loss (nats per byte)", "valid", NULL, "train.jsonl, loss.svg",
    NULL, NULL, lm_evaluate, lm_meta_fn, lm_finish, NULL, rf_step, NULL,
};
