/* bench_seq2seq.c: training speed of attn's seq2seq model (seq2seq.h), the
 * attn side of bench/bench_seq2seq.sh (its PyTorch twin is
 * bench/seq2seq_torch.py).
 *
 * One training step is what `attn seq2seq train` runs: reset the context,
 * teacher-forced loss (attn_seq2seq_loss, no label smoothing), backward,
 * attn_clip_grad_norm(1.0), AdamW (lr 1e-3, weight decay 0.01), zero the
 * gradients. The batches are synthetic, with the date task's shapes, from the
 * formula seq2seq_torch.py uses (same lengths, same ids): source lengths
 * src_min + (7 b + 13 k) mod (src_max - src_min + 1) for row b of batch k,
 * row 0 at src_max, so every batch is padded to S = src_max; targets of
 * tgt_len tokens plus eos. A pool of batches is built before timing.
 *
 * Uses only the public API. After --warmup untimed steps, --steps timed
 * steps, each timed alone; prints one JSON line:
 *   {"impl": "attn", "attn": version, "threads": N, "attention": ..., "cell": ...,
 *    "tokens_per_s": the median over the timed steps of target tokens (eos
 *    included, pads excluded) per second of the step, "ms_per_step": the mean
 *    step time, "tokens_per_s_mean": all tokens / all time, ...sizes...}
 * The median resists a shared machine: a step slowed by another process
 * moves the mean, not the median.
 * Exit status 0, or 1 with a message on stderr (bad option, a library error).
 *
 * Usage: bench_seq2seq [--attention bahdanau] [--cell gru|lstm] [--threads N]
 *   [--batch 64] [--src-min 12] [--src-max 30] [--tgt-len 10] [--src-vocab 60]
 *   [--tgt-vocab 14] [--emb 64] [--hidden 128] [--attn-dim 0] [--enc-layers 1]
 *   [--dec-layers 1] [--no-bidirectional] [--dropout 0] [--window 3]
 *   [--warmup 3] [--steps 20] [--pool 4] [--seed 1]
 * Build: make bench.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/attn.h"

enum { PAD = 0, BOS = 1, EOS = 2 }; /* text.h's token ids; real ids start at 4 */

typedef struct options {
    const char *attention, *cell;
    int threads, batch, src_min, src_max, tgt_len, src_vocab, tgt_vocab, emb, hidden, attn_dim;
    int enc_layers, dec_layers, bidirectional, window, warmup, steps, pool;
    double dropout;
    unsigned long seed;
} options;

typedef struct batch_data {
    int32_t *src, *src_len, *tgt_in, *tgt_out;
    int64_t tokens; /* non-pad entries of tgt_out */
} batch_data;

/* n ids in [4, vocab) from a 32-bit LCG (Numerical Recipes constants); the
 * same sequence as lcg_ids in seq2seq_torch.py. */
static void lcg_ids(uint32_t seed, int64_t n, int vocab, int32_t *out) {
    uint32_t x = seed;
    for (int64_t i = 0; i < n; i++) {
        x = 1664525u * x + 1013904223u;
        out[i] = 4 + (int32_t)((x >> 8) % (uint32_t)(vocab - 4));
    }
}

/* Batch number k, as make_batch in seq2seq_torch.py. Returns 0, or -1 when
 * out of memory. */
static int make_batch(int k, const options *o, batch_data *bd) {
    const int B = o->batch, S = o->src_max, T = o->tgt_len + 1, span = o->src_max - o->src_min + 1;
    int32_t *ids = malloc(sizeof *ids * (size_t)B * (size_t)(S + o->tgt_len));
    int32_t *tids = malloc(sizeof *tids * (size_t)B * (size_t)o->tgt_len);
    bd->src = calloc((size_t)B * (size_t)S, sizeof *bd->src);
    bd->src_len = calloc((size_t)B, sizeof *bd->src_len);
    bd->tgt_in = calloc((size_t)B * (size_t)T, sizeof *bd->tgt_in);
    bd->tgt_out = calloc((size_t)B * (size_t)T, sizeof *bd->tgt_out);
    if (!ids || !tids || !bd->src || !bd->src_len || !bd->tgt_in || !bd->tgt_out) {
        free(ids);
        free(tids);
        return -1;
    }
    lcg_ids(1000u + (uint32_t)k, (int64_t)B * (S + o->tgt_len), o->src_vocab, ids);
    lcg_ids(5000u + (uint32_t)k, (int64_t)B * o->tgt_len, o->tgt_vocab, tids);
    bd->tokens = 0;
    for (int b = 0; b < B; b++) {
        int len = b == 0 ? o->src_max : o->src_min + (7 * b + 13 * k) % span;
        bd->src_len[b] = len;
        for (int s = 0; s < len; s++) bd->src[b * S + s] = ids[b * S + s]; /* PAD after */
        bd->tgt_in[b * T] = BOS;
        for (int t = 0; t < o->tgt_len; t++) {
            bd->tgt_in[b * T + t + 1] = tids[b * o->tgt_len + t];
            bd->tgt_out[b * T + t] = tids[b * o->tgt_len + t];
        }
        bd->tgt_out[b * T + o->tgt_len] = EOS;
        bd->tokens += T;
    }
    free(ids);
    free(tids);
    return 0;
}

static void free_batch(batch_data *bd) {
    free(bd->src);
    free(bd->src_len);
    free(bd->tgt_in);
    free(bd->tgt_out);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int usage(const char *msg, const char *arg) {
    fprintf(stderr, "bench_seq2seq: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    fprintf(stderr,
            "usage: bench_seq2seq [--attention NAME] [--cell gru|lstm] [--threads N] [--batch B]\n"
            "  [--src-min N] [--src-max N] [--tgt-len N] [--src-vocab V] [--tgt-vocab V] [--emb E]\n"
            "  [--hidden H] [--attn-dim A] [--enc-layers L] [--dec-layers L] [--no-bidirectional]\n"
            "  [--dropout P] [--window D] [--warmup N] [--steps N] [--pool N] [--seed N]\n");
    return 1;
}

/* Parses an integer option value; returns 0 on success. */
static int int_arg(const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < -1000000000L || v > 1000000000L) return -1;
    *out = (int)v;
    return 0;
}

static int parse(int argc, char **argv, options *o) {
    static const struct {
        const char *name;
        size_t offset;
    } INTS[] = {
        {"--threads", offsetof(options, threads)},       {"--batch", offsetof(options, batch)},
        {"--src-min", offsetof(options, src_min)},       {"--src-max", offsetof(options, src_max)},
        {"--tgt-len", offsetof(options, tgt_len)},       {"--src-vocab", offsetof(options, src_vocab)},
        {"--tgt-vocab", offsetof(options, tgt_vocab)},   {"--emb", offsetof(options, emb)},
        {"--hidden", offsetof(options, hidden)},         {"--attn-dim", offsetof(options, attn_dim)},
        {"--enc-layers", offsetof(options, enc_layers)}, {"--dec-layers", offsetof(options, dec_layers)},
        {"--window", offsetof(options, window)},         {"--warmup", offsetof(options, warmup)},
        {"--steps", offsetof(options, steps)},           {"--pool", offsetof(options, pool)},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--no-bidirectional") == 0) {
            o->bidirectional = 0;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) return usage("help", NULL);
        if (i + 1 >= argc) return usage("unknown option or missing value", a);
        const char *v = argv[++i];
        int done = 0;
        for (size_t k = 0; k < sizeof INTS / sizeof INTS[0]; k++) {
            if (strcmp(a, INTS[k].name) != 0) continue;
            if (int_arg(v, (int *)((char *)o + INTS[k].offset)) != 0)
                return usage("not an integer", v);
            done = 1;
        }
        if (done) continue;
        if (strcmp(a, "--attention") == 0) {
            o->attention = v;
        } else if (strcmp(a, "--cell") == 0) {
            o->cell = v;
        } else if (strcmp(a, "--dropout") == 0) {
            o->dropout = atof(v);
        } else if (strcmp(a, "--seed") == 0) {
            o->seed = strtoul(v, NULL, 10);
        } else {
            return usage("unknown option", a);
        }
    }
    if (o->src_min < 1 || o->src_min > o->src_max || o->batch < 1 || o->tgt_len < 1 ||
        o->steps < 1 || o->warmup < 0 || o->pool < 1 || o->threads < 1 || o->src_vocab < 5 ||
        o->tgt_vocab < 5)
        return usage("sizes must be positive, src-min <= src-max, vocabularies >= 5", NULL);
    return 0;
}

/* One training step on batch bd; *loss receives the loss. Returns the
 * status (the context's message names the failure). */
static attn_status train_step(attn_ctx *ctx, attn_seq2seq *m, attn_params *ps, attn_optim *opt,
                              const options *o, const batch_data *bd, float *loss) {
    const int64_t B = o->batch, S = o->src_max, T = o->tgt_len + 1;
    attn_ctx_reset(ctx);
    attn_s2s_batch batch = {
        .src = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, S}, bd->src),
        .src_len = attn_tensor_from(ctx, ATTN_I32, 1, (int64_t[]){B}, bd->src_len),
        .tgt_in = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T}, bd->tgt_in),
        .tgt_out = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){B, T}, bd->tgt_out),
    };
    attn_tensor *l = attn_seq2seq_loss(ctx, m, &batch, 0.0f, NULL);
    if (!l) return attn_ctx_status(ctx);
    attn_status st = attn_backward(ctx, l);
    if (st != ATTN_OK) return st;
    *loss = attn_f32(l)[0];
    attn_clip_grad_norm(ps, 1.0f);
    st = attn_optim_step(opt, 1e-3f);
    attn_params_zero_grad(ps);
    return st;
}

int main(int argc, char **argv) {
    options o = {.attention = "bahdanau", .cell = "gru", .threads = 1, .batch = 64, .src_min = 12,
                 .src_max = 30, .tgt_len = 10, .src_vocab = 60, .tgt_vocab = 14, .emb = 64,
                 .hidden = 128, .attn_dim = 0, .enc_layers = 1, .dec_layers = 1,
                 .bidirectional = 1, .window = 3, .warmup = 3, .steps = 20, .pool = 4,
                 .dropout = 0.0, .seed = 1};
    if (parse(argc, argv, &o) != 0) return 1;

    attn_seq2seq_config cfg = {
        .src_vocab = o.src_vocab, .tgt_vocab = o.tgt_vocab, .emb_dim = o.emb, .hidden = o.hidden,
        .enc_layers = o.enc_layers, .dec_layers = o.dec_layers, .bidirectional = o.bidirectional,
        .attn_dim = o.attn_dim, .max_src_len = o.src_max + 1, .local_window = o.window,
        .dropout = (float)o.dropout, .pad_id = PAD, .bos_id = BOS, .eos_id = EOS};
    if (attn_s2s_attention_parse(o.attention, &cfg.attention) != 0)
        return usage("unknown attention", o.attention);
    if (strcmp(o.cell, "gru") == 0)
        cfg.cell = ATTN_RNN_GRU;
    else if (strcmp(o.cell, "lstm") == 0)
        cfg.cell = ATTN_RNN_LSTM;
    else
        return usage("--cell must be gru or lstm", o.cell);

    int rc = 1;
    attn_params *ps = NULL;
    attn_seq2seq *m = NULL;
    attn_optim *opt = NULL;
    attn_ctx *ctx = NULL;
    double *rates = NULL;
    batch_data *pool = calloc((size_t)o.pool, sizeof *pool);
    if (!pool) {
        fprintf(stderr, "bench_seq2seq: out of memory\n");
        return 1;
    }
    attn_rng rng;
    attn_rng_init(&rng, o.seed);
    attn_ctx_config cc = {.n_threads = o.threads, .seed = o.seed};
    attn_optim_config oc = {.kind = ATTN_OPTIM_ADAMW, .lr = 1e-3f, .weight_decay = 0.01f};
    attn_status st;
    if ((st = attn_params_new(&ps)) != ATTN_OK || (st = attn_seq2seq_new(&m, ps, &cfg, &rng)) != ATTN_OK ||
        (st = attn_optim_new(&opt, ps, &oc)) != ATTN_OK || (st = attn_ctx_new(&ctx, &cc)) != ATTN_OK) {
        fprintf(stderr, "bench_seq2seq: %s: %s\n", attn_status_str(st), attn_last_error());
        goto done;
    }
    for (int k = 0; k < o.pool; k++) {
        if (make_batch(k, &o, &pool[k]) != 0) {
            fprintf(stderr, "bench_seq2seq: out of memory\n");
            goto done;
        }
    }

    /* Warm-up steps (k < warmup), then the timed ones. */
    rates = malloc(sizeof *rates * (size_t)o.steps);
    if (!rates) {
        fprintf(stderr, "bench_seq2seq: out of memory\n");
        goto done;
    }
    float loss = 0.0f;
    int64_t tokens = 0;
    double total = 0.0;
    for (int k = 0; k < o.warmup + o.steps; k++) {
        const batch_data *bd = &pool[k % o.pool];
        double t0 = attn_monotonic_s();
        st = train_step(ctx, m, ps, opt, &o, bd, &loss);
        double dt = attn_monotonic_s() - t0;
        if (st != ATTN_OK) {
            fprintf(stderr, "bench_seq2seq: step %d: %s: %s\n", k, attn_status_str(st),
                    attn_ctx_status(ctx) != ATTN_OK ? attn_ctx_error(ctx) : attn_last_error());
            goto done;
        }
        if (k < o.warmup) continue;
        rates[k - o.warmup] = (double)bd->tokens / dt;
        tokens += bd->tokens;
        total += dt;
    }
    qsort(rates, (size_t)o.steps, sizeof *rates, cmp_double);
    const int n = o.steps;
    double median = n % 2 ? rates[n / 2] : 0.5 * (rates[n / 2 - 1] + rates[n / 2]);
    attn_info_t info;
    attn_info(&info);
    printf("{\"impl\": \"attn\", \"attn\": \"%s\", \"threads\": %d, \"attention\": \"%s\", "
           "\"cell\": \"%s\", \"tokens_per_s\": %.1f, \"ms_per_step\": %.3f, "
           "\"tokens_per_s_mean\": %.1f, \"batch\": %d, \"src_len\": [%d, %d], "
           "\"tgt_len\": %d, \"emb\": %d, \"hidden\": %d, \"steps\": %d, \"params\": %lld, "
           "\"loss\": %.4f, \"blas\": \"%s\"}\n",
           info.version, attn_ctx_threads(ctx), attn_s2s_attention_name(cfg.attention), o.cell,
           median, 1e3 * total / o.steps, (double)tokens / total, o.batch, o.src_min, o.src_max,
           o.tgt_len + 1, o.emb, o.hidden, o.steps, (long long)attn_params_numel(ps), (double)loss,
           info.blas);
    rc = 0;
done:
    for (int k = 0; k < o.pool; k++) free_batch(&pool[k]);
    free(pool);
    free(rates);
    attn_ctx_free(ctx);
    attn_optim_free(opt);
    attn_seq2seq_free(m);
    attn_params_free(ps);
    return rc;
}
