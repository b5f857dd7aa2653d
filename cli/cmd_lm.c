/* cmd_lm.c: `attn lm train|eval|sample|viz`: byte-level language models of
 * long text (issue 14), with the architecture as an option:
 *   --arch gpt  attn's GPT (include/attn/gpt.h), a fixed context window;
 *   --arch txl  the Transformer-XL (include/attn/txl.h) with segment
 *               recurrence, and its variants: adaptive attention span
 *               (--span 1) and persistent vectors / all-attention
 *               (--persistent N, --no-ffn);
 *   --arch reformer  the Reformer (include/attn/reformer_lm.h): LSH
 *               attention in reversible layers, trained with its own step
 *               (the reversible backward; docs/reformer.md).
 * --data dup is the Reformer paper's duplication task instead of a text
 * (sequences 0 w 0 w of random symbols, scored on the second w), for every
 * architecture.
 * The data is a directory of train.txt, valid.txt and test.txt read as bytes
 * (vocabulary 256), e.g. data/wiki (scripts/get_wiki_data.sh) or data/kjv.
 * Training runs on the shared driver (cli/train_driver.h). docs/cli.md and
 * docs/long_context.md are the manual.
 *
 * A model directory holds model.safetensors (parameters, AdamW state, the
 * model configuration (gpt.* or txl.*) and the run's settings (run.*) in its
 * metadata), train.jsonl and loss.svg. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "commands.h"
#include "lm_cmd.h"
#include "lm_pixels.h"
#include "train_dist.h"
#include "train_driver.h"

#define CMD "lm"
#define CLIP_NORM 1.0f

static double now_s(void) { return attn_monotonic_s(); }

/* ---- the run's settings (checkpoint metadata run.*) ------------------------------------ */


#define LM_RUN_META 17
static const char *const lm_keys[LM_RUN_META] = {
    "run.model", "run.arch",   "run.data",         "run.batch",        "run.steps",
    "run.warmup", "run.seed",  "run.segment",      "run.mem_len",      "run.eval_mem_len",
    "run.lr",    "run.min_lr", "run.weight_decay", "run.span_penalty", "run.train_seconds",
    "run.run_segments", "run.pixels"};

/* keys added with the duplication task and the Reformer (optional when read) */
#define LM_RUN_EXTRA 4
static const char *const lm_extra_keys[LM_RUN_EXTRA] = {"run.dup_len", "run.dup_vocab", "run.dup_eval",
                                                        "run.eval_rounds"};

_Static_assert(ATTN_REFORMER_LM_META <= ATTN_TXL_META + ATTN_GPT_META, "lm_meta: room for the Reformer's entries");
typedef struct lm_meta {
    attn_kv kv[ATTN_TXL_META + ATTN_GPT_META + LM_RUN_META + LM_RUN_EXTRA];
    char mbuf[(ATTN_TXL_META + ATTN_GPT_META) * 32];
    char vbuf[LM_RUN_META + LM_RUN_EXTRA][1100];
    int n;
} lm_meta;


void lm_model_free(lm_model *m) {
    attn_gpt_free(m->g);
    attn_txl_free(m->t);
    attn_reformer_lm_free(m->rf);
    attn_params_free(m->ps);
    memset(m, 0, sizeof *m);
}

static void lm_meta_build(lm_meta *mm, const lm_model *m, const lm_info *r) {
    if (m->t) {
        attn_txl_config_meta(&m->t->cfg, mm->kv, mm->mbuf);
        mm->n = ATTN_TXL_META;
    } else if (m->rf) {
        attn_reformer_lm_config_meta(&m->rf->cfg, mm->kv, mm->mbuf);
        mm->n = ATTN_REFORMER_LM_META;
    } else {
        attn_gpt_config_meta(&m->g->cfg, mm->kv, mm->mbuf);
        mm->n = ATTN_GPT_META;
    }
    snprintf(mm->vbuf[0], 1100, "attn-lm");
    snprintf(mm->vbuf[1], 1100, "%s", r->txl ? "txl" : r->reformer ? "reformer" : "gpt");
    snprintf(mm->vbuf[2], 1100, "%s", r->data);
    const long long ll[7] = {r->batch, r->total_steps, r->warmup, r->seed, r->segment, r->mem_len, r->eval_mem_len};
    for (int i = 0; i < 7; i++) snprintf(mm->vbuf[3 + i], 1100, "%lld", ll[i]);
    const double rr[5] = {r->lr, r->min_lr, r->weight_decay, r->span_penalty, r->train_seconds};
    for (int i = 0; i < 5; i++) snprintf(mm->vbuf[10 + i], 1100, "%.9g", rr[i]);
    snprintf(mm->vbuf[15], 1100, "%lld", r->run_segments);
    snprintf(mm->vbuf[16], 1100, "%lld", r->pixels);
    for (int i = 0; i < LM_RUN_META; i++) {
        mm->kv[mm->n].key = lm_keys[i];
        mm->kv[mm->n].value = mm->vbuf[i];
        mm->n++;
    }
    const long long extra[LM_RUN_EXTRA] = {r->dup_len, r->dup_vocab, r->dup_eval, r->eval_rounds};
    for (int i = 0; i < LM_RUN_EXTRA; i++) {
        snprintf(mm->vbuf[LM_RUN_META + i], 1100, "%lld", extra[i]);
        mm->kv[mm->n].key = lm_extra_keys[i];
        mm->kv[mm->n].value = mm->vbuf[LM_RUN_META + i];
        mm->n++;
    }
}

/* Reads run.* of a checkpoint of attn lm train, every number range-checked. */
static int lm_info_read(const char *path, lm_info *r) {
    attn_safetensors *f = NULL;
    if (attn_safetensors_open(&f, path) != ATTN_OK) return cli_fail(CMD, "cannot open the checkpoint");
    const char *model = attn_safetensors_metadata(f, "run.model");
    if (!model || strcmp(model, "attn-lm") != 0) {
        attn_safetensors_close(f);
        fprintf(stderr, "attn lm: %s is not a checkpoint of attn lm train (run.model is not attn-lm)\n", path);
        return 1;
    }
    meta_reader m = {f, path, {0}};
    const char *arch = meta_str(&m, "run.arch");
    r->txl = !strcmp(arch, "txl");
    r->reformer = !strcmp(arch, "reformer");
    if (!m.err[0] && !r->txl && !r->reformer && strcmp(arch, "gpt") != 0)
        snprintf(m.err, sizeof m.err, "%s: run.arch '%s' is not gpt, txl or reformer", path, arch);
    snprintf(r->data, sizeof r->data, "%s", meta_str(&m, "run.data"));
    r->batch = meta_ll(&m, "run.batch", 1, 1 << 20);
    r->total_steps = meta_ll(&m, "run.steps", 1, 1ll << 40);
    r->warmup = meta_ll(&m, "run.warmup", 0, 1ll << 40);
    r->seed = meta_ll(&m, "run.seed", 0, 1ll << 62);
    r->segment = meta_ll(&m, "run.segment", 1, 1 << 20);
    r->mem_len = meta_ll(&m, "run.mem_len", 0, 1 << 20);
    r->eval_mem_len = meta_ll(&m, "run.eval_mem_len", 0, 1 << 20);
    r->run_segments = meta_ll(&m, "run.run_segments", 0, 1 << 30);
    r->pixels = attn_safetensors_metadata(f, "run.pixels") ? meta_ll(&m, "run.pixels", 0, 256) : 0;
    if (!m.err[0] && r->pixels == 1) snprintf(m.err, sizeof m.err, "%s: run.pixels 1 (0: bytes, else 2 .. 256 levels)", path);
    r->lr = meta_real(&m, "run.lr", 0.0, 10.0);
    r->min_lr = meta_real(&m, "run.min_lr", 0.0, 10.0);
    r->weight_decay = meta_real(&m, "run.weight_decay", 0.0, 10.0);
    r->span_penalty = meta_real(&m, "run.span_penalty", 0.0, 1e6);
    r->train_seconds = meta_real(&m, "run.train_seconds", 0.0, 1e12);
    r->dup_len = meta_has(&m, "run.dup_len") ? meta_ll(&m, "run.dup_len", 0, 1 << 20) : 0;
    r->dup_vocab = meta_has(&m, "run.dup_vocab") ? meta_ll(&m, "run.dup_vocab", 0, LM_VOCAB) : 0;
    r->dup_eval = meta_has(&m, "run.dup_eval") ? meta_ll(&m, "run.dup_eval", 0, 1 << 24) : 0;
    r->eval_rounds = meta_has(&m, "run.eval_rounds") ? meta_ll(&m, "run.eval_rounds", 0, 64) : 0;
    if (!m.err[0] && r->dup_len > 0 && (r->dup_len < 4 || r->dup_len % 2 || r->dup_vocab < 2 || r->dup_eval < 1))
        snprintf(m.err, sizeof m.err, "%s: run.dup_len %lld (even, >= 4), run.dup_vocab %lld (>= 2) or "
                 "run.dup_eval %lld (>= 1) out of range", path, r->dup_len, r->dup_vocab, r->dup_eval);
    attn_safetensors_close(f);
    if (m.err[0]) {
        fprintf(stderr, "attn lm: %s\n", m.err);
        return 1;
    }
    return 0;
}

/* The model of DIR/model.safetensors (run.* into *r). 0 or 1 (printed). */
int lm_load(const char *dir, lm_info *r, lm_model *m) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    memset(m, 0, sizeof *m);
    if (lm_info_read(path, r)) return 1;
    if (attn_params_new(&m->ps) != ATTN_OK) return cli_fail(CMD, "cannot create the parameters");
    const attn_status st = r->txl ? attn_txl_load(path, m->ps, &m->t)
                           : r->reformer ? attn_reformer_lm_load(path, m->ps, &m->rf)
                                         : attn_gpt_load(path, m->ps, &m->g);
    if (st != ATTN_OK) {
        lm_model_free(m);
        return cli_fail(CMD, "cannot load the model");
    }
    const int64_t V = r->txl ? m->t->cfg.vocab : r->reformer ? m->rf->cfg.vocab : m->g->cfg.vocab;
    if (r->pixels && (r->txl || r->reformer || m->g->cfg.ctx_len != LM_PIX_LEN || V != r->pixels + 1)) {
        fprintf(stderr, "attn lm: %s: a pixel model needs a GPT of context %d and vocabulary %lld\n", path,
                LM_PIX_LEN, r->pixels + 1);
        lm_model_free(m);
        return 1;
    }
    if (!r->pixels && V != LM_VOCAB) {
        fprintf(stderr, "attn lm: %s: a vocabulary of %lld, not the 256 bytes\n", path, (long long)V);
        lm_model_free(m);
        return 1;
    }
    return 0;
}

/* ---- held-out evaluation -------------------------------------------------------------- */

/* The rotations of the Reformer's evaluations: one fixed seed, so that an
 * evaluation is a function of the model and the number of rounds. */
#define LM_EVAL_ROT_SEED 0x5eed0f4a11ull

/* Logits [B, T, V] of a window-based model (GPT or Reformer; `rounds`
 * hashing rounds for the Reformer, 0: its training rounds). */
static attn_tensor *window_logits(attn_ctx *ctx, lm_model *m, attn_tensor *ids, int64_t rounds) {
    if (m->rf) {
        const attn_reformer_lm_run rr = {(int)rounds, LM_EVAL_ROT_SEED};
        return attn_reformer_lm_logits(ctx, m->rf, ids, &rr);
    }
    return attn_gpt_logits(ctx, m->g, ids, NULL);
}

/* The GPT (or the Reformer) over ids[0 .. n) with a sliding window of C = ctx_len positions
 * moved by `stride`: the first window scores all its targets, every later
 * one the targets past those already scored (its last `stride`), so each
 * byte but the first is predicted once, with at least C - stride bytes of
 * context (stride 1: exactly C, the window slid one byte at a time). B
 * windows per forward. */
static int gpt_eval_stream(attn_ctx *ctx, lm_model *m, int64_t rounds, const int32_t *ids, int64_t n,
                           int64_t stride, int64_t B, double *nll, int64_t *count) {
    if (n < 2 || stride < 1 || B < 1) {
        fprintf(stderr, "attn lm: evaluation: %lld bytes (< 2) or stride %lld (< 1)\n", (long long)n, (long long)stride);
        return 1;
    }
    const int64_t C0 = m->rf ? m->rf->cfg.ctx_len : m->g->cfg.ctx_len, C = C0 < n - 1 ? C0 : n - 1,
                  last_a = n - 1 - C;
    int32_t *in = malloc((size_t)(B * C) * sizeof *in);
    int64_t *lo = malloc((size_t)B * sizeof *lo), *as = malloc((size_t)B * sizeof *as);
    if (!in || !lo || !as) {
        free(in);
        free(lo);
        free(as);
        fprintf(stderr, "attn lm: evaluation: out of memory\n");
        return 1;
    }
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    int st = 0;
    int64_t scored = 0; /* targets ids[1 .. scored] done */
    for (int64_t k = 0; scored < n - 1 && st == 0;) {
        int64_t rows = 0;
        while (rows < B && scored < n - 1) {
            int64_t a = k * stride;
            if (a > last_a) a = last_a;
            k++;
            if (a + C <= scored) continue;
            as[rows] = a;
            lo[rows] = scored; /* window targets a+1 .. a+C: score those past `scored` */
            memcpy(in + rows * C, ids + a, (size_t)C * sizeof *in);
            scored = a + C;
            rows++;
        }
        attn_ctx_reset(ctx);
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){rows, C}, in);
        attn_tensor *lg = ti ? window_logits(ctx, m, ti, rounds) : NULL;
        if (!lg) {
            fprintf(stderr, "attn lm: evaluation: %s\n", attn_ctx_error(ctx));
            st = 1;
            break;
        }
        const float *L = attn_f32(lg);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t t = 0; t < C; t++) {
                const int64_t j = as[r] + t + 1; /* target index */
                if (j <= lo[r]) continue;
                *nll += cli_row_nll(L + (r * C + t) * LM_VOCAB, LM_VOCAB, ids[j]);
                (*count)++;
            }
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    free(in);
    free(lo);
    free(as);
    return st;
}

typedef struct lm_eval_result {
    double bpb, seconds;
    int64_t bytes;
} lm_eval_result;

/* Bits per byte of ids[0 .. n): TXL segment by segment with a memory of
 * mem_len, GPT and Reformer (`rounds`) with the sliding window of `stride`. */
static int lm_eval(attn_ctx *ctx, lm_model *m, int64_t rounds, const int32_t *ids, int64_t n, int64_t segment,
                   int64_t mem_len, int64_t stride, int64_t B, lm_eval_result *out) {
    double nll = 0.0;
    int64_t count = 0;
    const double t0 = now_s();
    if (m->t) {
        if (attn_txl_eval_stream(ctx, m->t, ids, n, segment, mem_len, &nll, &count) != ATTN_OK)
            return cli_fail(CMD, "evaluation failed");
    } else if (gpt_eval_stream(ctx, m, rounds, ids, n, stride, B, &nll, &count)) {
        return 1;
    }
    out->seconds = now_s() - t0;
    out->bytes = count;
    out->bpb = count ? nll / (double)count / log(2.0) : NAN;
    return 0;
}

/* Bits per dimension of images 0 .. n - 1 of px (every one of their 784
 * pixels scored), B images per forward; out->bytes counts the pixels. */
static int pixel_eval(attn_ctx *ctx, const attn_gpt *g, const lm_pixels *px, int64_t n, int64_t B,
                      lm_eval_result *out) {
    if (n > px->n) n = px->n;
    if (n < 1 || B < 1) {
        fprintf(stderr, "attn lm: evaluation: no images\n");
        return 1;
    }
    const int64_t V = px->levels + 1;
    int32_t *in = malloc((size_t)(B * LM_PIX_LEN) * sizeof *in), *tg = malloc((size_t)(B * LM_PIX_LEN) * sizeof *tg);
    if (!in || !tg) {
        free(in);
        free(tg);
        fprintf(stderr, "attn lm: evaluation: out of memory\n");
        return 1;
    }
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    const double t0 = now_s();
    double nll = 0.0;
    int st = 0;
    for (int64_t k0 = 0; k0 < n && st == 0; k0 += B) {
        const int64_t rows = n - k0 < B ? n - k0 : B;
        for (int64_t r = 0; r < rows; r++) lm_pixels_rows(px, k0 + r, in + r * LM_PIX_LEN, tg + r * LM_PIX_LEN);
        attn_ctx_reset(ctx);
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){rows, LM_PIX_LEN}, in);
        attn_tensor *lg = ti ? attn_gpt_logits(ctx, g, ti, NULL) : NULL;
        if (!lg) {
            fprintf(stderr, "attn lm: evaluation: %s\n", attn_ctx_error(ctx));
            st = 1;
            break;
        }
        const float *L = attn_f32(lg);
        for (int64_t i = 0; i < rows * LM_PIX_LEN; i++) nll += cli_row_nll(L + i * V, V, tg[i]);
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    free(in);
    free(tg);
    out->seconds = now_s() - t0;
    out->bytes = n * LM_PIX_LEN;
    out->bpb = nll / (double)out->bytes / log(2.0);
    return st;
}

/* The share of the causal attention entries (key s <= query t) that the
 * GPT's pattern leaves visible, over its layers and heads (1 without a
 * pattern), and the share of the dense causal kernel's 64 x 64 tiles that
 * the fused kernel computes under it. 0, or 1 with the context's error. */
int lm_pattern_share(attn_ctx *ctx, const attn_gpt_config *c, int64_t T, double *vis, double *tiles) {
    const int64_t H = c->n_heads, nt = (T + 63) / 64;
    *vis = *tiles = 1.0;
    if (c->sparse.kind == 0) return 0;
    double v = 0.0, e = 0.0;
    for (int l = 0; l < c->n_layers; l++) {
        attn_sparse_pattern lp = c->sparse;
        if (c->sparse_by_layer) lp.heads = l % 2 ? ATTN_SPARSE_HEADS_B_ONLY : ATTN_SPARSE_HEADS_A_ONLY;
        attn_sparse_layout L;
        attn_ctx_reset(ctx);
        if (attn_sparse_compile(ctx, &lp, 1, 0, H, T, T, 64, 64, &L) != ATTN_OK) return 1;
        for (int64_t h = 0; h < H; h++) {
            const int64_t var = attn_sparse_head_variant(&lp, h);
            for (int64_t qt = 0; qt < L.nq; qt++) {
                const int64_t rows = T - qt * 64 < 64 ? T - qt * 64 : 64;
                for (int64_t k = L.start[var * L.nq + qt]; k < L.start[var * L.nq + qt + 1]; k++) {
                    e += 1.0;
                    const int64_t cols = T - L.ktile[k] * 64 < 64 ? T - L.ktile[k] * 64 : 64;
                    if (L.mask_at[k] < 0) {
                        v += (double)(rows * cols);
                        continue;
                    }
                    const uint64_t *m = L.mask + L.mask_at[k];
                    for (int64_t r = 0; r < rows; r++) v += (double)__builtin_popcountll(m[r]);
                }
            }
        }
    }
    attn_ctx_reset(ctx);
    const double LH = (double)c->n_layers * (double)H;
    *vis = v / (LH * (double)T * (double)(T + 1) / 2.0);
    *tiles = e / (LH * (double)(nt * (nt + 1) / 2));
    return 0;
}

/* The text form of c's pattern as --pattern takes it (heads=layers for the
 * factorisation over layers); "dense" without one. */
void lm_pattern_text(const attn_gpt_config *c, char *buf, size_t cap) {
    if (c->sparse.kind == 0) {
        snprintf(buf, cap, "dense");
        return;
    }
    attn_sparse_format(&c->sparse, buf, cap);
    char *h = c->sparse_by_layer ? strstr(buf, "heads=a") : NULL;
    if (h && strlen(buf) + 6 < cap) {
        memmove(h + 12, h + 7, strlen(h + 7) + 1);
        memcpy(h, "heads=layers", 12);
    }
}

/* ---- the duplication task (--data dup) ----------------------------------------------------- */

/* The Reformer paper's task: s = 0 w 0 w, w a random string of N/2 - 1
 * symbols drawn uniformly from 1 .. V-1 (0 is the separator). The model
 * reads s[0 .. N) and position t predicts s[t + 1]; only the second w is
 * scored (t = N/2 .. N-2, targets s[N/2 + 1 .. N)), the rest is ignored
 * (target -1). Training sequences come from (seed, step, row): a resumed
 * run replays them; the held-out ones from a fixed seed of their own
 * (stream 0, index k), the same for every run. */
#define DUP_EVAL_SEED 0x6475706576616cull
#define DUP_TRAIN_SALT 0x6475707472616eull

static uint64_t dup_mix(uint64_t z) { /* splitmix64's finaliser */
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Sequence `index` of stream `stream`: the Philox key is a hash of (seed,
 * stream) and the counter walks index * N + i, so no two streams (training
 * steps) share a counter range (attn_rng_uniform's offset is a counter
 * added to the index: neighbouring offsets would overlap). */
static void dup_sequence(uint64_t seed, uint64_t stream, uint64_t index, int64_t N, int64_t V, int32_t *in,
                         int32_t *tg) {
    const int64_t h = N / 2;
    const uint64_t key = dup_mix(seed ^ dup_mix(stream));
    in[0] = in[h] = 0;
    for (int64_t i = 1; i < h; i++) {
        int64_t sym = 1 + (int64_t)(attn_rng_uniform(key, 0, index * (uint64_t)N + (uint64_t)i) * (float)(V - 1));
        if (sym > V - 1) sym = V - 1;
        in[i] = in[h + i] = (int32_t)sym;
    }
    for (int64_t t = 0; t < N; t++) tg[t] = t >= h && t <= N - 2 ? in[t + 1] : -1;
}

typedef struct dup_result {
    double loss, acc, seconds; /* nats and fraction correct per scored symbol */
    int64_t symbols, sequences;
} dup_result;

/* Held-out accuracy (arg max == target) and loss of the second halves of
 * the first n held-out sequences, B at a time; the Reformer with `rounds`
 * hashing rounds (0: its training rounds). */
static int dup_eval(attn_ctx *ctx, lm_model *m, const lm_info *r, int64_t n, int64_t B, int64_t rounds,
                    dup_result *out) {
    const int64_t N = r->dup_len;
    int32_t *in = malloc(sizeof(int32_t) * (size_t)(B * N)), *tg = malloc(sizeof(int32_t) * (size_t)(B * N));
    attn_txl_memory mem;
    memset(&mem, 0, sizeof mem);
    int st = !in || !tg;
    if (st) fprintf(stderr, "attn lm: duplication evaluation: out of memory\n");
    if (!st && m->t && attn_txl_memory_init(&mem, m->t, B, 0, 0) != ATTN_OK) st = cli_fail(CMD, "cannot create the memory");
    const int grad = attn_ctx_grad_enabled(ctx), training = attn_ctx_training(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    double nll = 0.0;
    int64_t right = 0, count = 0;
    const double t0 = now_s();
    for (int64_t k = 0; k < n && !st; k += B) {
        const int64_t rows = n - k < B ? n - k : B;
        for (int64_t b = 0; b < rows; b++)
            dup_sequence(DUP_EVAL_SEED, 0, (uint64_t)(k + b), N, r->dup_vocab, in + b * N, tg + b * N);
        attn_ctx_reset(ctx);
        attn_tensor *ti = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){rows, N}, in), *lg = NULL;
        if (ti && m->t) {
            if (rows != mem.B) {
                attn_txl_memory_free(&mem);
                if (attn_txl_memory_init(&mem, m->t, rows, 0, 0) != ATTN_OK) {
                    st = cli_fail(CMD, "cannot create the memory");
                    break;
                }
            }
            attn_txl_memory_reset(&mem, 0);
            lg = attn_txl_logits(ctx, m->t, ti, &mem, NULL);
        } else if (ti) {
            lg = window_logits(ctx, m, ti, rounds);
        }
        if (!lg || !(lg = attn_contiguous(ctx, lg))) {
            fprintf(stderr, "attn lm: duplication evaluation: %s\n", attn_ctx_error(ctx));
            st = 1;
            break;
        }
        const float *L = attn_f32(lg);
        for (int64_t i = 0; i < rows * N; i++) {
            if (tg[i] < 0) continue;
            const float *row = L + i * LM_VOCAB;
            int64_t best = 0;
            for (int64_t v = 1; v < LM_VOCAB; v++)
                if (row[v] > row[best]) best = v;
            right += best == tg[i];
            nll += cli_row_nll(row, LM_VOCAB, tg[i]);
            count++;
        }
    }
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_ctx_set_training(ctx, training);
    attn_txl_memory_free(&mem);
    free(in);
    free(tg);
    if (st) return 1;
    out->seconds = now_s() - t0;
    out->symbols = count;
    out->sequences = n;
    out->loss = count ? nll / (double)count : NAN;
    out->acc = count ? (double)right / (double)count : NAN;
    return 0;
}

/* ---- train -------------------------------------------------------------------------------- */

static void train_usage(FILE *f) {
    fprintf(f,
        "usage: attn lm train --out DIR --arch gpt|txl|reformer [options]\n\n"
        "Trains a byte-level language model on DIR/train.txt of --data and reports the\n"
        "held-out bits per byte of valid.txt (attn lm eval: test.txt).\n\n"
        "data and model (fixed by the checkpoint: refused with --resume)\n"
        "  --data DIR            train.txt, valid.txt, test.txt (default data/wiki)\n"
        "  --data dup            instead: the duplication task (sequences 0 w 0 w of random symbols;\n"
        "                        loss and accuracy on the second w; fresh sequences each step,\n"
        "                        a fixed held-out set): --dup-len N (even, default 256; the\n"
        "                        window/segment), --dup-vocab V (symbols 1..V-1, 0 the separator;\n"
        "                        default 128), --dup-eval N (held-out sequences, default 512)\n"
        "  --arch gpt|txl|reformer  attn's GPT, the Transformer-XL or the Reformer (default txl)\n"
        "  --layers N            (default 4)\n"
        "  --heads N             (default 4)\n"
        "  --d-model N           (default 128)\n"
        "  --d-head N            txl: head size (default d-model / heads)\n"
        "  --d-inner N           feed-forward width (default 4 d-model; gpt: --d-ff)\n"
        "  --dropout P           (default 0)\n"
        "  --ctx N               gpt, reformer: the context window (default 64)\n"
        "  --synth LIST          gpt: a synthesizer mixes the tokens instead of dot-product\n"
        "                        attention (docs/synthesizer.md): components dense, random,\n"
        "                        fdense, frandom, dot joined by '+' (several: a learned mixture)\n"
        "  --synth-fixed         gpt: the synthesizer's random matrices are not trained\n"
        "  --mixer NAME          gpt: the token mixer: attention (default), sinkhorn, sortcut\n"
        "                        (docs/sinkhorn.md) or routing (docs/routing.md)\n"
        "  --mixer-block N       gpt: sinkhorn/sortcut block size (default 16, divides --ctx);\n"
        "                        routing cluster window (default ctx / clusters)\n"
        "  --mixer-n N           gpt: sortcut blocks kept (default 2); routing clusters (default 4)\n"
        "  --pattern P           gpt: a block-sparse attention pattern in every block (docs/sparse.md):\n"
        "                        KIND[:key=value,...], KIND local1d, local2d, strided, fixed, sliding,\n"
        "                        dilated or global; heads=layers (strided, fixed): component A in even\n"
        "                        layers, B in odd ones; heads=alternate: A in even heads, B in odd ones\n"
        "  --pixels L            gpt: --data is a folder of Fashion-MNIST IDX files; each image is a\n"
        "                        sequence of 784 pixels quantised to L levels (2..256), raster order\n"
        "                        (block raster order under a local2d pattern); --ctx 784; reports\n"
        "                        bits/dim; --eval-n and --final-eval-n count images\n"
        "  --pos KIND            gpt: learned|sinusoidal|rope|alibi, reformer: learned|sinusoidal|rope\n"
        "                        (default learned; reformer rope: rotary shared query-keys, no table;\n"
        "                        reformer learned+rope, sinusoidal+rope: rotary and the table)\n"
        "  --rope-dims N         reformer: leading dims of a head that rotate (even; default 0: all)\n"
        "  --rounds N            reformer: LSH hashing rounds in training (default 2)\n"
        "  --buckets N           reformer: buckets, even (default 2 ctx / chunk, at least 2)\n"
        "  --chunk N             reformer: LSH chunk length (default 64)\n"
        "  --ff-chunk N          reformer: positions per feed-forward chunk (default 128)\n"
        "  --out-chunk N         reformer: positions per output-layer/loss chunk (default 128)\n"
        "  --eval-rounds N       reformer: hashing rounds of the evaluations (default --rounds)\n"
        "  --segment N           txl: segment length (default 64)\n"
        "  --mem-len N           txl: memory kept in training (default 64)\n"
        "  --eval-mem-len N      txl: memory of the evaluations (default --mem-len)\n"
        "  --run-segments R      txl: each stream reads R consecutive segments from a random\n"
        "                        position, then jumps (memory emptied); default 4 ceil(mem/segment),\n"
        "                        at least 16; 0: B contiguous streams through the whole text\n"
        "  --span 0|1            txl: adaptive attention span (default 0)\n"
        "  --span-max S          its largest span in keys (default 512; the memory must be >= S)\n"
        "  --span-ramp R         its soft ramp (default 32)\n"
        "  --span-init Z         its initial span (default 0)\n"
        "  --span-penalty C      the L1 coefficient on the spans (default 2e-6 per key)\n"
        "  --persistent N        txl: N persistent key/value vectors per head (default 0)\n"
        "  --no-ffn              txl: no feed-forward sublayer (all-attention with --persistent)\n"
        "  --pers-scaled 0|1     txl: the persistent vectors as the published code, parameters\n"
        "                        scaled by sqrt(D) (keys) and sqrt(N) (values) (default 1)\n"
        "schedule (with --resume: applied and printed)\n"
        "  --batch N             sequences (txl: streams) per step (default 16)\n"
        "  --steps N             optimizer steps (default 2000)\n"
        "  --time-budget S, --lr X (default 1e-3), --min-lr X (lr / 10), --warmup N (100),\n"
        "  --weight-decay X (0.01), --seed N (1)\n"
        "run\n"
        "  --eval-every N        validation every N steps and a checkpoint (default 500; 0: end only)\n"
        "  --eval-n N            bytes of valid.txt for the periodic evaluations (default 16384;\n"
        "                        the final one reads all of it)\n"
        "  --final-eval-n N      bytes of valid.txt for the final evaluation (default 0: all)\n"
        "  --eval-stride S       gpt: the sliding window's stride (default: --ctx, no overlap)\n"
        "  --log-every N, --threads N, --arena-mb N, --resume, --force, --quiet\n\n"
        "The TXL reads B streams of the training text, segment after segment, with the\n"
        "memory carried across steps; with a span, train.jsonl gets a \"spans\"\n"
        "record per log window. Ctrl-C finishes the step, writes a checkpoint, exits 130.\n");
}

typedef struct lm_train {
    lm_info r;
    lm_model m;
    lm_pixels ptr, pva; /* --pixels: the train and valid images */
    int32_t *tr, *va;
    int64_t n_tr, n_va, B, T;
    int64_t stream_len, n_seg; /* txl, --run-segments 0: bytes and segments per stream */
    int64_t eval_n, eval_stride, final_eval_n;
    int64_t mem_step;          /* txl: the step whose segment the memory follows (-1: none) */
    attn_txl_memory mem;
    int32_t *bin, *btg;
    int64_t log_every;
    lm_meta meta;
    int dup; /* --data dup */
} lm_train;

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

static const train_family lm_family = {
    "byte", NULL, NULL, "loss (nats per byte)", "valid", NULL, "train.jsonl, loss.svg",
    lm_step_loss, NULL, lm_evaluate, lm_meta_fn, lm_finish, lm_after_step, NULL, NULL,
};

/* The Reformer: the same, with its own step (the reversible backward). */
static const train_family reformer_family = {
    "byte", NULL, NULL, "loss (nats per byte)", "valid", NULL, "train.jsonl, loss.svg",
    NULL, NULL, lm_evaluate, lm_meta_fn, lm_finish, NULL, rf_step, NULL,
};

static int opt_int(const char *a, const char *v, long long lo, long long hi, long long *out) {
    return cli_opt_int(CMD, "train", a, v, lo, hi, out);
}
static int opt_real(const char *a, const char *v, double lo, double hi, double *out) {
    return cli_opt_real(CMD, "train", a, v, lo, hi, out);
}

static int cmd_lm_train(int argc, char **argv) {
    const char *prog = "attn lm train", *data = NULL, *arch = "txl", *pattern = NULL, *pos = "learned";
    long long layers = 4, heads = 4, d_model = 128, d_head = 0, d_inner = 0, ctxlen = 64, segment = 64,
              mem_len = 64, eval_mem_len = -1, span = 0, persistent = 0, eval_stride = 0, run_segments = -1,
              pers_scaled = 1,
              final_eval_n = 0, pixels = 0, rounds = 2, buckets = 0, chunk = 64, ff_chunk = 128, out_chunk = 128,
              eval_rounds = 0, dup_len = 256, dup_vocab = 128, dup_eval = 512, rope_dims = 0;
    int rf_rope = 0; /* the Reformer's rotary query-keys: 1 alone (--pos rope), 2 with the table (--pos KIND+rope) */
    double dropout = 0.0, span_max = 512, span_ramp = 32, span_init = 0, span_penalty = 2e-6;
    int no_ffn = 0, synth_fixed = 0, rc = 0, mixer_kind = 0;
    long long mixer_block = 0, mixer_n = 0;
    unsigned synth = 0;
    train_opts o;
    train_opts_init(&o);
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage(stdout);
            return 0;
        }
        const int t = train_opt(prog, a, v, &o, &rc);
        if (rc) return rc;
        if (t == 2) {
            i++;
            continue;
        }
        if (t == 1) continue;
        if (!strcmp(a, "--no-ffn")) {
            no_ffn = 1;
            train_fixed(&o, a);
            continue;
        }
        if (!strcmp(a, "--synth-fixed")) {
            synth_fixed = 1;
            train_fixed(&o, a);
            continue;
        }
        if (!strcmp(a, "--synth")) {
            train_fixed(&o, a);
            if (!v) {
                fprintf(stderr, "%s: --synth needs a value\n", prog);
                return 2;
            }
            if (attn_synth_parse(v, &synth) != 0) {
                fprintf(stderr, "%s: --synth: %s\n", prog, attn_last_error());
                return 2;
            }
            i++;
            continue;
        }
        if (!strcmp(a, "--mixer")) {
            train_fixed(&o, a);
            mixer_kind = attn_gpt_mixer_parse(v);
            if (mixer_kind < 0) {
                fprintf(stderr, "%s: --mixer must be attention, sinkhorn, sortcut or routing, not '%s'\n",
                        prog, v ? v : "(missing)");
                return 2;
            }
            i++;
            continue;
        }
        if (!strcmp(a, "--mixer-block") || !strcmp(a, "--mixer-n")) {
            train_fixed(&o, a);
            rc = opt_int(a, v, 1, 1 << 20, a[8] == 'b' ? &mixer_block : &mixer_n);
            i++;
            continue;
        }
        if (!strcmp(a, "--final-eval-n")) {
            rc = opt_int(a, v, 0, 1ll << 40, &final_eval_n);
            i++;
            continue;
        }
        if (!strcmp(a, "--eval-stride")) {
            rc = opt_int(a, v, 1, 1 << 20, &eval_stride);
            i++;
            continue;
        }
        if (!strcmp(a, "--eval-rounds")) { /* an evaluation setting: allowed with --resume */
            rc = opt_int(a, v, 1, 64, &eval_rounds);
            i++;
            continue;
        }
        train_fixed(&o, a);
        i++;
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--arch")) arch = v;
        else if (!strcmp(a, "--pattern")) pattern = v;
        else if (!strcmp(a, "--pixels")) rc = opt_int(a, v, 2, 256, &pixels);
        else if (!strcmp(a, "--layers")) rc = opt_int(a, v, 1, 64, &layers);
        else if (!strcmp(a, "--heads")) rc = opt_int(a, v, 1, 256, &heads);
        else if (!strcmp(a, "--d-model")) rc = opt_int(a, v, 2, 1 << 14, &d_model);
        else if (!strcmp(a, "--d-head")) rc = opt_int(a, v, 1, 1 << 14, &d_head);
        else if (!strcmp(a, "--d-inner") || !strcmp(a, "--d-ff")) rc = opt_int(a, v, 1, 1 << 16, &d_inner);
        else if (!strcmp(a, "--ctx")) rc = opt_int(a, v, 1, 1 << 14, &ctxlen);
        else if (!strcmp(a, "--segment")) rc = opt_int(a, v, 1, 1 << 14, &segment);
        else if (!strcmp(a, "--mem-len")) rc = opt_int(a, v, 0, 1 << 16, &mem_len);
        else if (!strcmp(a, "--eval-mem-len")) rc = opt_int(a, v, 0, 1 << 16, &eval_mem_len);
        else if (!strcmp(a, "--run-segments")) rc = opt_int(a, v, 0, 1 << 30, &run_segments);
        else if (!strcmp(a, "--span")) rc = opt_int(a, v, 0, 1, &span);
        else if (!strcmp(a, "--span-max")) rc = opt_real(a, v, 1, 1 << 16, &span_max);
        else if (!strcmp(a, "--span-ramp")) rc = opt_real(a, v, 1e-3, 1 << 16, &span_ramp);
        else if (!strcmp(a, "--span-init")) rc = opt_real(a, v, 0, 1 << 16, &span_init);
        else if (!strcmp(a, "--span-penalty")) rc = opt_real(a, v, 0, 1e3, &span_penalty);
        else if (!strcmp(a, "--persistent")) rc = opt_int(a, v, 0, 1 << 16, &persistent);
        else if (!strcmp(a, "--pers-scaled")) rc = opt_int(a, v, 0, 1, &pers_scaled);
        else if (!strcmp(a, "--dropout")) rc = opt_real(a, v, 0, 0.99, &dropout);
        else if (!strcmp(a, "--rounds")) rc = opt_int(a, v, 1, 64, &rounds);
        else if (!strcmp(a, "--pos")) pos = v;
        else if (!strcmp(a, "--rope-dims")) rc = opt_int(a, v, 0, 1 << 16, &rope_dims);
        else if (!strcmp(a, "--buckets")) rc = opt_int(a, v, 2, 1 << 20, &buckets);
        else if (!strcmp(a, "--chunk")) rc = opt_int(a, v, 1, 1 << 20, &chunk);
        else if (!strcmp(a, "--ff-chunk")) rc = opt_int(a, v, 1, 1 << 20, &ff_chunk);
        else if (!strcmp(a, "--out-chunk")) rc = opt_int(a, v, 1, 1 << 20, &out_chunk);
        else if (!strcmp(a, "--dup-len")) rc = opt_int(a, v, 4, 1 << 14, &dup_len);
        else if (!strcmp(a, "--dup-vocab")) rc = opt_int(a, v, 2, LM_VOCAB, &dup_vocab);
        else if (!strcmp(a, "--dup-eval")) rc = opt_int(a, v, 1, 1 << 20, &dup_eval);
        else {
            fprintf(stderr, "%s: unknown option '%s' (try 'attn lm train --help')\n", prog, a);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "%s: %s needs a value\n", prog, a);
            return 2;
        }
    }
    if (rc) return rc;
    if ((rc = train_opts_check(prog, &o))) return rc;
    if (o.epochs > 0) {
        fprintf(stderr, "%s: --epochs is not offered (give --steps)\n", prog);
        return 2;
    }
    const int txl = !strcmp(arch, "txl"), reformer = !strcmp(arch, "reformer"), dup = data && !strcmp(data, "dup");
    if (!txl && !reformer && strcmp(arch, "gpt") != 0) {
        fprintf(stderr, "%s: --arch must be gpt, txl or reformer, not '%s'\n", prog, arch);
        return 2;
    }
    attn_pos_kind pk = ATTN_POS_LEARNED;
    if (reformer && pos && (!strcmp(pos, "learned+rope") || !strcmp(pos, "sinusoidal+rope"))) {
        rf_rope = 2;
        pk = pos[0] == 's' ? ATTN_POS_SINUSOIDAL : ATTN_POS_LEARNED;
    } else if (pos && attn_pos_kind_parse(pos, &pk) != 0) {
        fprintf(stderr, "%s: --pos '%s': expected learned, sinusoidal, rope or alibi\n", prog, pos);
        return 2;
    }
    if (reformer && pk == ATTN_POS_ROPE) rf_rope = 1;
    if (!o.resume && rope_dims % 2) {
        fprintf(stderr, "%s: --rope-dims %lld: expected even (pairs of dims rotate)\n", prog, rope_dims);
        return 2;
    }
    if (!o.resume && rope_dims && !rf_rope) {
        fprintf(stderr, "%s: --rope-dims is for the Reformer with rotary query-keys (--arch reformer --pos rope, "
                        "learned+rope or sinusoidal+rope)\n", prog);
        return 2;
    }
    if (!o.resume && (txl        ? pk != ATTN_POS_LEARNED
                      : reformer ? pk != ATTN_POS_LEARNED && pk != ATTN_POS_SINUSOIDAL && pk != ATTN_POS_ROPE
                                 : pk == ATTN_POS_NONE)) {
        fprintf(stderr, "%s: --pos %s is not offered for --arch %s (gpt: learned, sinusoidal, rope, alibi; "
                        "reformer: learned, sinusoidal, rope; txl: its relative positions)\n", prog, pos, arch);
        return 2;
    }
    if (!o.resume && dup) {
        if (dup_len % 2) {
            fprintf(stderr, "%s: --dup-len %lld must be even (0 w 0 w)\n", prog, dup_len);
            return 2;
        }
        /* the window (gpt, reformer) or the segment (txl) is one sequence */
        ctxlen = dup_len;
        segment = dup_len;
    }
    if (!o.resume && reformer) {
        if (buckets == 0) {
            buckets = 2 * ((ctxlen + chunk - 1) / chunk);
            if (buckets < 2) buckets = 2;
        }
        if (buckets % 2) {
            fprintf(stderr, "%s: --buckets %lld must be even\n", prog, buckets);
            return 2;
        }
    }
    if (eval_mem_len < 0) eval_mem_len = mem_len;
    attn_sparse_pattern sp;
    memset(&sp, 0, sizeof sp);
    int by_layer = 0;
    if (!data) data = pixels ? "data/fashion-mnist" : "data/wiki";
    if (!o.resume) {
        if (txl && (pattern || pixels)) {
            fprintf(stderr, "%s: --pattern and --pixels are GPT options (--arch gpt)\n", prog);
            return 2;
        }
        if (pattern) {
            char text[256];
            snprintf(text, sizeof text, "%s", pattern);
            char *hl = strstr(text, "heads=layers");
            if (hl && (hl[12] == 0 || hl[12] == ',')) { /* the factorisation over layers */
                memcpy(hl, "heads=a     ", 12);
                for (char *q = hl + 7; *q == ' ';) memmove(q, q + 1, strlen(q));
                by_layer = 1;
            }
            if (attn_sparse_parse(text, &sp) != ATTN_OK) {
                fprintf(stderr, "%s: --pattern: %s\n", prog, attn_last_error());
                return 2;
            }
            if (by_layer && sp.kind != ATTN_SPARSE_STRIDED && sp.kind != ATTN_SPARSE_FIXED) {
                fprintf(stderr, "%s: --pattern: heads=layers is for strided and fixed patterns\n", prog);
                return 2;
            }
            if (synth) {
                fprintf(stderr, "%s: --pattern and --synth exclude each other\n", prog);
                return 2;
            }
        }
        if (pixels) {
            if (ctxlen != 64 && ctxlen != LM_PIX_LEN) {
                fprintf(stderr, "%s: --pixels: the context is the 784 pixels of an image, not --ctx %lld\n", prog,
                        ctxlen);
                return 2;
            }
            ctxlen = LM_PIX_LEN;
        }
        if (pattern && mixer_kind) {
            fprintf(stderr, "%s: --pattern and --mixer %s exclude each other\n", prog,
                    attn_gpt_mixer_name(mixer_kind));
            return 2;
        }
        if (txl && (synth || synth_fixed || mixer_kind || mixer_block || mixer_n)) {
            fprintf(stderr, "%s: --synth, --synth-fixed and --mixer* are GPT options (--arch gpt)\n", prog);
            return 2;
        }
        if (synth && mixer_kind) {
            fprintf(stderr, "%s: --synth and --mixer %s are two token mixers: choose one\n", prog,
                    attn_gpt_mixer_name(mixer_kind));
            return 2;
        }
        if ((mixer_block || mixer_n) && !mixer_kind) {
            fprintf(stderr, "%s: --mixer-block and --mixer-n need --mixer sinkhorn, sortcut or routing\n", prog);
            return 2;
        }
        if (synth_fixed && !(synth & (ATTN_SYNTH_RANDOM | ATTN_SYNTH_FACTORIZED_RANDOM))) {
            fprintf(stderr, "%s: --synth-fixed needs a random component (--synth random or frandom)\n", prog);
            return 2;
        }
        if (reformer && (synth || synth_fixed)) {
            fprintf(stderr, "%s: --synth and --synth-fixed are GPT options (--arch gpt)\n", prog);
            return 2;
        }
        if (!txl && (span || persistent || no_ffn)) {
            fprintf(stderr, "%s: --span, --persistent and --no-ffn are Transformer-XL options (--arch txl)\n", prog);
            return 2;
        }
        if (span && span_max > (double)mem_len) {
            fprintf(stderr, "%s: --span-max %g is longer than the memory (--mem-len %lld): the span could "
                            "not reach its keys\n", prog, span_max, mem_len);
            return 2;
        }
        if (span && span_init > span_max) {
            fprintf(stderr, "%s: --span-init %g is above --span-max %g\n", prog, span_init, span_max);
            return 2;
        }
        if (no_ffn && persistent == 0)
            fprintf(stderr, "%s: note: --no-ffn without --persistent: attention-only blocks\n", prog);
        if (txl && d_head == 0) {
            if (d_model % heads) {
                fprintf(stderr, "%s: --heads %lld does not divide --d-model %lld (give --d-head)\n", prog, heads, d_model);
                return 2;
            }
            d_head = d_model / heads;
        }
        if (txl && d_model % 2) {
            fprintf(stderr, "%s: --d-model must be even for the Transformer-XL\n", prog);
            return 2;
        }
        if (!txl && d_model % heads) { /* gpt and reformer */
            fprintf(stderr, "%s: --heads %lld does not divide --d-model %lld\n", prog, heads, d_model);
            return 2;
        }
    }
    if ((rc = train_dir_check(prog, &o))) return rc;
    const char *out = o.out;
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s/model.safetensors", out);

    lm_train g;
    memset(&g, 0, sizeof g);
    g.mem_step = -1;
    train_run run;
    memset(&run, 0, sizeof run);
    attn_optim *opt = NULL;
    attn_ctx *ctx = NULL;
    lm_info *rp = &g.r;
    rc = 1;
    if (o.resume) {
        if (lm_load(out, rp, &g.m)) goto done;
        train_resume_ll("--steps", o.steps, &rp->total_steps);
        train_resume_ll("--warmup", o.warmup, &rp->warmup);
        train_resume_ll("--batch", o.batch, &rp->batch);
        train_resume_real("--lr", o.lr, &rp->lr);
        train_resume_real("--min-lr", o.min_lr, &rp->min_lr);
        train_resume_real("--weight-decay", o.weight_decay, &rp->weight_decay);
    } else {
        snprintf(rp->data, sizeof rp->data, "%s", data);
        rp->txl = txl;
        rp->pixels = pixels;
        rp->reformer = reformer;
        rp->dup_len = dup ? dup_len : 0;
        rp->dup_vocab = dup ? dup_vocab : 0;
        rp->dup_eval = dup ? dup_eval : 0;
        rp->eval_rounds = reformer ? (eval_rounds > 0 ? eval_rounds : rounds) : 0;
        rp->batch = o.batch > 0 ? o.batch : 16;
        rp->total_steps = o.steps > 0 ? o.steps : 2000;
        rp->warmup = o.warmup >= 0 ? o.warmup : 100;
        rp->seed = o.seed >= 0 ? o.seed : 1;
        rp->lr = o.lr >= 0 ? o.lr : 1e-3;
        rp->min_lr = o.min_lr >= 0 ? o.min_lr : rp->lr / 10.0;
        rp->weight_decay = o.weight_decay >= 0 ? o.weight_decay : 0.01;
        rp->segment = txl ? segment : ctxlen;
        rp->mem_len = txl ? mem_len : 0;
        rp->eval_mem_len = txl ? eval_mem_len : 0;
        rp->span_penalty = span ? span_penalty : 0.0;
        /* default: runs of 4 memories' worth of segments, at least 16 */
        const long long fill = (mem_len + segment - 1) / segment;
        rp->run_segments = !txl || dup ? 0 : run_segments >= 0 ? run_segments : (4 * fill > 16 ? 4 * fill : 16);
    }
    if (o.resume && eval_rounds > 0 && rp->reformer) {
        train_resume_ll("--eval-rounds", eval_rounds, &rp->eval_rounds);
    } else if (eval_rounds > 0 && !rp->reformer) {
        fprintf(stderr, "%s: --eval-rounds is a Reformer option (--arch reformer)\n", prog);
        rc = 2;
        goto done;
    }
    g.dup = rp->dup_len > 0;
    g.B = rp->batch;
    g.T = rp->segment;
    if (rp->pixels) {
        int32_t order[LM_PIX_LEN];
        const attn_sparse_pattern *op = o.resume ? &g.m.g->cfg.sparse : &sp;
        if (lm_pixels_order(prog, op, order) || lm_pixels_load(prog, rp->data, "train", (int)rp->pixels, order, &g.ptr) ||
            lm_pixels_load(prog, rp->data, "valid", (int)rp->pixels, order, &g.pva))
            goto done;
        g.n_tr = g.ptr.n * LM_PIX_LEN;
        g.n_va = g.pva.n * LM_PIX_LEN;
    } else if (!g.dup && (cli_load_bytes("lm", rp->data, "train.txt", &g.tr, &g.n_tr) ||
               cli_load_bytes("lm", rp->data, "valid.txt", &g.va, &g.n_va))) {
        goto done;
    }
    if (!rp->txl && !rp->reformer && (rc = train_shard_check(prog, g.B))) goto done;
    rc = 1;
    g.eval_n = o.eval_n > 0 ? o.eval_n : rp->pixels ? 500 : 16384;
    g.eval_stride = eval_stride > 0 ? eval_stride : g.T;
    g.final_eval_n = final_eval_n;
    g.log_every = o.log_every > 0 ? o.log_every : 50;
    if (!g.dup && (g.n_tr < 2 * (g.T + 1) || g.n_va < 2)) {
        fprintf(stderr, "%s: %s: the training text (%lld bytes) is shorter than two windows of %lld\n", prog,
                rp->data, (long long)g.n_tr, (long long)g.T + 1);
        goto done;
    }
    if (rp->txl && !g.dup) {
        g.stream_len = (g.n_tr - 1) / g.B;
        g.n_seg = (g.stream_len - 1) / g.T;
        if (rp->run_segments > 0 && g.n_tr < (rp->run_segments + 1) * g.T + 2) {
            fprintf(stderr, "%s: the training text (%lld bytes) is shorter than a run of %lld segments of %lld "
                            "(lower --run-segments)\n", prog, (long long)g.n_tr, rp->run_segments, (long long)g.T);
            goto done;
        }
        if (rp->run_segments == 0 && g.n_seg < 1) {
            fprintf(stderr, "%s: %lld streams of the %lld training bytes are shorter than a segment of %lld "
                            "(lower --batch)\n", prog, (long long)g.B, (long long)g.n_tr, (long long)g.T);
            goto done;
        }
    }
    if (!o.resume) {
        attn_rng rng;
        attn_rng_init(&rng, (uint64_t)rp->seed);
        if (attn_params_new(&g.m.ps) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot create the parameters");
            goto done;
        }
        attn_status st;
        if (txl) {
            attn_txl_config tc;
            memset(&tc, 0, sizeof tc);
            tc.vocab = LM_VOCAB;
            tc.n_layers = (int)layers;
            tc.n_heads = (int)heads;
            tc.d_head = d_head;
            tc.d_model = d_model;
            tc.d_inner = d_inner > 0 ? d_inner : 4 * d_model;
            tc.no_ffn = no_ffn;
            tc.n_persist = persistent;
            tc.pers_scaled = persistent > 0 && pers_scaled;
            tc.span_max = span ? (float)span_max : 0.0f;
            tc.span_ramp = (float)span_ramp;
            tc.span_init = (float)span_init;
            tc.span_eps = 1e-8f;
            tc.dropout = (float)dropout;
            st = attn_txl_new(&g.m.t, g.m.ps, &tc, &rng);
        } else if (reformer) {
            attn_reformer_lm_config rc_;
            memset(&rc_, 0, sizeof rc_);
            rc_.vocab = LM_VOCAB;
            rc_.ctx_len = ctxlen;
            rc_.d_model = d_model;
            rc_.d_ff = d_inner;
            rc_.n_layers = (int)layers;
            rc_.n_heads = (int)heads;
            rc_.n_hashes = (int)rounds;
            rc_.n_buckets = (int)buckets;
            rc_.chunk_len = chunk;
            rc_.ff_chunk = ff_chunk;
            rc_.out_chunk = out_chunk;
            rc_.dropout = (float)dropout;
            rc_.sinusoidal = pk == ATTN_POS_SINUSOIDAL;
            rc_.rope = rf_rope;
            rc_.rope_dims = rope_dims;
            st = attn_reformer_lm_new(&g.m.rf, g.m.ps, &rc_, &rng);
        } else {
            attn_gpt_config gc;
            memset(&gc, 0, sizeof gc);
            gc.vocab = pixels ? pixels + 1 : LM_VOCAB;
            gc.ctx_len = ctxlen;
            gc.sparse = sp;
            gc.sparse_by_layer = by_layer;
            gc.n_layers = (int)layers;
            gc.n_heads = (int)heads;
            gc.d_model = d_model;
            gc.d_ff = d_inner;
            gc.dropout = (float)dropout;
            gc.pos = pk;
            gc.tied = 1;
            gc.synth = synth;
            gc.synth_fixed = synth_fixed;
            gc.mixer = mixer_kind;
            gc.mixer_block = mixer_block;
            gc.mixer_n = (int)mixer_n;
            st = attn_gpt_new(&g.m.g, g.m.ps, &gc, &rng);
        }
        if (st != ATTN_OK) {
            rc = cli_fail(CMD, "cannot create the model");
            goto done;
        }
        if (cli_make_dir(out) != 0) {
            fprintf(stderr, "%s: cannot create the directory %s: %s\n", prog, out, strerror(errno));
            goto done;
        }
    }
    if (g.m.t) {
        if (attn_txl_memory_init(&g.mem, g.m.t, g.B, rp->mem_len, 0) != ATTN_OK) {
            rc = cli_fail(CMD, "cannot create the memory");
            goto done;
        }
    }
    attn_optim_config oc = {0};
    oc.kind = ATTN_OPTIM_ADAMW;
    oc.lr = (float)rp->lr;
    oc.beta1 = 0.9f;
    oc.beta2 = 0.99f;
    oc.weight_decay = (float)rp->weight_decay;
    if (attn_optim_new(&opt, g.m.ps, &oc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the optimizer");
        goto done;
    }
    int64_t step = 0;
    if (o.resume && attn_checkpoint_load(ckpt, g.m.ps, opt, &step) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot load the checkpoint");
        goto done;
    }
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)(o.arena_mb > 0 ? o.arena_mb : 1024) << 20;
    cc.n_threads = (int)(o.threads > 0 ? o.threads : 0);
    cc.seed = (uint64_t)rp->seed;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    g.bin = malloc((size_t)(g.B * g.T) * sizeof *g.bin);
    g.btg = malloc((size_t)(g.B * g.T) * sizeof *g.btg);
    if (!g.bin || !g.btg) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto done;
    }
    run.prog = prog;
    run.out = out;
    run.fam = rp->reformer ? &reformer_family : &lm_family;
    run.self = &g;
    run.ctx = ctx;
    run.ps = g.m.ps;
    run.opt = opt;
    run.step = step;
    run.total_steps = rp->total_steps;
    run.warmup = rp->warmup;
    run.log_every = g.log_every;
    run.eval_every = o.eval_every >= 0 ? o.eval_every : 500;
    run.lr = rp->lr;
    run.min_lr = rp->min_lr;
    run.clip = CLIP_NORM;
    run.time_budget = o.time_budget > 0 ? o.time_budget : 0.0;
    run.seconds_before = rp->train_seconds;
    run.arena_mb = (long long)(cc.arena_bytes >> 20);
    run.quiet = o.quiet;
    if (step >= rp->total_steps) {
        rc = train_loop(&run);
        goto done;
    }
    if (train_log_open(&run, o.resume)) goto done;
    char desc[1024];
    double share_vis = 1.0, share_tiles = 1.0;
    const long long np = (long long)attn_params_numel(g.m.ps);
    if (g.m.t) {
        const attn_txl_config *c = &g.m.t->cfg;
        char span_desc[128] = "span off", runs_desc[96] = "contiguous streams";
        if (rp->run_segments > 0)
            snprintf(runs_desc, sizeof runs_desc, "runs of %lld segments", rp->run_segments);
        if (c->span_max > 0)
            snprintf(span_desc, sizeof span_desc, "adaptive span max %g (ramp %g, penalty %g)", (double)c->span_max,
                     (double)c->span_ramp, rp->span_penalty);
        snprintf(desc, sizeof desc,
                 "TXL: %d layers, %d heads of %lld, d_model %lld, %s, %lld persistent vectors, segment %lld, "
                 "memory %lld (eval %lld), %s; %s; bytes; %lld parameters",
                 c->n_layers, c->n_heads, (long long)c->d_head, (long long)c->d_model,
                 c->no_ffn ? "no FFN (all-attention)" : "FFN", (long long)c->n_persist, (long long)g.T,
                 rp->mem_len, rp->eval_mem_len, span_desc, runs_desc, np);
        if (!(c->no_ffn)) {
            char extra[64];
            snprintf(extra, sizeof extra, "; d_inner %lld", (long long)c->d_inner);
            snprintf(desc + strlen(desc), sizeof desc - strlen(desc), "%s", extra);
        }
    } else if (g.m.rf) {
        const attn_reformer_lm_config *c = &g.m.rf->cfg;
        snprintf(desc, sizeof desc,
                 "Reformer: %d reversible layers, %d heads, d_model %lld, d_ff %lld, ctx %lld, shared-QK LSH "
                 "attention (%d rounds, %d buckets, chunk %lld; evaluated with %lld rounds), feed-forward chunks of "
                 "%lld, output chunks of %lld, %s positions; bytes; %lld parameters",
                 c->n_layers, c->n_heads, (long long)c->d_model, (long long)c->d_ff, (long long)c->ctx_len,
                 c->n_hashes, c->n_buckets, (long long)c->chunk_len, rp->eval_rounds, (long long)c->ff_chunk,
                 (long long)c->out_chunk,
                 c->rope == 1 ? "rotary (query-key)"
                 : c->rope  ? (c->sinusoidal ? "sinusoidal and rotary (query-key)" : "learned and rotary (query-key)")
                 : c->sinusoidal ? "sinusoidal" : "learned", np);
    } else {
        const attn_gpt_config *c = &g.m.g->cfg;
        char mixer[320] = "dot-product attention";
        if (c->synth) {
            char names[64];
            attn_synth_name(c->synth, names, sizeof names);
            snprintf(mixer, sizeof mixer, "synthesizer %s%s", names, c->synth_fixed ? " (fixed random)" : "");
        }
        if (g.m.g->sink)
            snprintf(mixer, sizeof mixer, "sinkhorn attention (block %lld)", (long long)g.m.g->sink[0].cfg.block);
        if (g.m.g->sink && c->mixer == ATTN_GPT_MIXER_SORTCUT)
            snprintf(mixer, sizeof mixer, "sortcut attention (block %lld, %d sorted blocks)",
                     (long long)g.m.g->sink[0].cfg.block, g.m.g->sink[0].cfg.n_sortcut);
        if (g.m.g->route)
            snprintf(mixer, sizeof mixer, "routing attention (%lld clusters, nearest; %lld local heads of window %lld)",
                     (long long)g.m.g->route[0].cfg.n_clusters, (long long)g.m.g->route[0].cfg.local_heads,
                     (long long)g.m.g->route[0].cfg.local_window);
        if (c->sparse.kind) {
            char pt[200];
            double vis = 1.0, tiles = 1.0;
            lm_pattern_text(c, pt, sizeof pt);
            if (lm_pattern_share(ctx, c, c->ctx_len, &vis, &tiles)) {
                rc = cli_fail(CMD, "cannot compile the pattern");
                goto done;
            }
            snprintf(mixer, sizeof mixer, "pattern %s (%.1f%% of the causal entries, %.1f%% of its tiles)", pt,
                     100.0 * vis, 100.0 * tiles);
            share_vis = vis;
            share_tiles = tiles;
        }
        snprintf(desc, sizeof desc,
                 "GPT: %d layers, %d heads, d_model %lld, d_ff %lld, ctx %lld, %s positions, tied head, "
                 "%s; %s; %lld parameters",
                 c->n_layers, c->n_heads, (long long)c->d_model, (long long)c->d_ff, (long long)c->ctx_len,
                 attn_pos_kind_name(c->pos), mixer, rp->pixels ? "pixels" : "bytes", np);
    }
    printf("%s\n", desc);
    if (g.dup)
        printf("data: the duplication task: sequences 0 w 0 w of %lld symbols (w: %lld symbols of 1..%lld), "
               "scored on the second w; fresh ones each step; %lld held-out sequences\n",
               rp->dup_len, rp->dup_len / 2 - 1, rp->dup_vocab - 1, rp->dup_eval);
    else if (rp->pixels)
        printf("data: %s: train %lld images, valid %lld images, 784 pixels of %lld levels each%s\n", rp->data,
               (long long)g.ptr.n, (long long)g.pva.n, rp->pixels,
               g.m.g->cfg.sparse.kind == ATTN_SPARSE_LOCAL_2D ? " (block raster order)" : " (raster order)");
    else
        printf("data: %s: train %lld bytes, valid %lld bytes\n", rp->data, (long long)g.n_tr, (long long)g.n_va);
    printf("schedule: %lld steps of %lld x %lld bytes, AdamW lr %g -> %g (warmup %lld, cosine), wd %g; threads %d\n",
           rp->total_steps, (long long)g.B, (long long)g.T, rp->lr, rp->min_lr, rp->warmup, rp->weight_decay,
           attn_ctx_threads(ctx));
    if (o.resume) printf("resuming %s at step %lld\n", out, (long long)step);
    fflush(stdout);
    {
        const attn_json_field f[] = {
            attn_json_str("event", o.resume ? "resume" : "start"), attn_json_int("step", step),
            attn_json_str("data", rp->data), attn_json_str("arch", rp->txl ? "txl" : rp->reformer ? "reformer" : "gpt"),
            attn_json_int("parameters", np), attn_json_int("total_steps", rp->total_steps),
            attn_json_int("batch", g.B), attn_json_int("segment", g.T), attn_json_int("mem_len", rp->mem_len),
            attn_json_int("threads", attn_ctx_threads(ctx)), attn_json_str("description", desc),
            attn_json_int("pixels", rp->pixels), attn_json_num("visible_share", share_vis),
            attn_json_num("tile_share", share_tiles),
        };
        if (train_log(&run, f, (int)(sizeof f / sizeof f[0]))) goto done;
    }
    rc = train_loop(&run);
done:
    if (run.log) attn_jsonl_close(run.log);
    free(g.bin);
    free(g.btg);
    free(g.tr);
    free(g.va);
    lm_pixels_free(&g.ptr);
    lm_pixels_free(&g.pva);
    attn_txl_memory_free(&g.mem);
    attn_ctx_free(ctx);
    attn_optim_free(opt);
    lm_model_free(&g.m);
    return rc;
}

/* ---- eval -------------------------------------------------------------------------------- */

static int cmd_lm_eval(int argc, char **argv) {
    const char *model = NULL, *split = "test", *sub = "eval";
    long long mem_len = -1, segment = -1, stride = -1, bytes = 0, threads = 0, batch = 16, eval_rounds = 0,
              sequences = 0, clamp_len = -1;
    const char *losses = NULL; /* --losses FILE (lm_losses.c) */
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn lm eval --model DIR [options]\n\n"
                   "Bits per byte of a held-out text, read once from the start: the TXL segment by\n"
                   "segment with its memory cache, the GPT and the Reformer with a sliding window.\n"
                   "A run of --data dup: the held-out accuracy of the second halves instead.\n\n"
                   "  --split valid|test    the text of the run's --data (default test)\n"
                   "  --mem-len M           txl: the evaluation memory (default the run's --eval-mem-len)\n"
                   "  --segment T           txl: segment length (default the training one)\n"
                   "  --clamp-len C         txl: distances above C use the position row of C (the\n"
                   "                        paper's clamp_len; default the model's, 0: off)\n"
                   "  --stride S            gpt: the window's stride (default its context: no overlap;\n"
                   "                        1: every byte sees exactly the context length)\n"
                   "  --bytes N             only the first N bytes (default 0: all); a pixel model\n"
                   "                        (--pixels): the first N images (--images N)\n"
                   "  --batch N             gpt, reformer: windows per forward (default 16)\n"
                   "  --eval-rounds N       reformer: LSH hashing rounds (default the run's)\n"
                   "  --sequences N         dup: held-out sequences (default the run's --dup-eval)\n"
                   "  --threads N           (default: all)\n"
                   "  --losses FILE         txl: each predicted byte's loss (bits), one line each\n"
                   "Prints one line: bits/byte, bytes, seconds, bytes/s, parameters.\n");
            return 0;
        }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--losses")) losses = v;
        else if (!strcmp(a, "--split")) split = v;
        else if (!strcmp(a, "--mem-len")) rc = cli_opt_int(CMD, sub, a, v, 0, 1 << 16, &mem_len);
        else if (!strcmp(a, "--segment")) rc = cli_opt_int(CMD, sub, a, v, 1, 1 << 14, &segment);
        else if (!strcmp(a, "--clamp-len")) rc = cli_opt_int(CMD, sub, a, v, 0, 1 << 20, &clamp_len);
        else if (!strcmp(a, "--stride")) rc = cli_opt_int(CMD, sub, a, v, 1, 1 << 14, &stride);
        else if (!strcmp(a, "--bytes") || !strcmp(a, "--images")) rc = cli_opt_int(CMD, sub, a, v, 0, 1ll << 40, &bytes);
        else if (!strcmp(a, "--batch")) rc = cli_opt_int(CMD, sub, a, v, 1, 4096, &batch);
        else if (!strcmp(a, "--threads")) rc = cli_opt_int(CMD, sub, a, v, 0, cli_max_threads(), &threads);
        else if (!strcmp(a, "--eval-rounds")) rc = cli_opt_int(CMD, sub, a, v, 1, 64, &eval_rounds);
        else if (!strcmp(a, "--sequences")) rc = cli_opt_int(CMD, sub, a, v, 1, 1 << 20, &sequences);
        else {
            fprintf(stderr, "attn lm eval: unknown option '%s' (try 'attn lm eval --help')\n", a);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "attn lm eval: %s needs a value\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!model) {
        fprintf(stderr, "attn lm eval: --model DIR is required\n");
        return 2;
    }
    if (strcmp(split, "valid") != 0 && strcmp(split, "test") != 0) {
        fprintf(stderr, "attn lm eval: --split must be valid or test, not '%s'\n", split);
        return 2;
    }
    lm_info r;
    lm_model m;
    if (lm_load(model, &r, &m)) return 1;
    if (!r.txl && (mem_len >= 0 || segment > 0 || clamp_len >= 0)) {
        fprintf(stderr, "attn lm eval: --mem-len, --segment and --clamp-len are for a Transformer-XL (this is a "
                        "GPT; --stride)\n");
        lm_model_free(&m);
        return 2;
    }
    if (r.txl && stride > 0) {
        fprintf(stderr, "attn lm eval: --stride is for a GPT (this is a Transformer-XL; --mem-len)\n");
        lm_model_free(&m);
        return 2;
    }
    if (r.txl && clamp_len >= 0) m.t->cfg.clamp_len = clamp_len;
    if (!r.reformer && eval_rounds > 0) {
        fprintf(stderr, "attn lm eval: --eval-rounds is for a Reformer\n");
        lm_model_free(&m);
        return 2;
    }
    if (r.dup_len > 0) { /* the duplication task: held-out accuracy */
        attn_ctx *dctx = NULL;
        attn_ctx_config dc = {0};
        dc.arena_bytes = (size_t)1024 << 20;
        dc.n_threads = (int)threads;
        if (attn_ctx_new(&dctx, &dc) != ATTN_OK) {
            lm_model_free(&m);
            return cli_fail(CMD, "cannot create the context");
        }
        const int64_t rounds = eval_rounds > 0 ? eval_rounds : r.eval_rounds;
        dup_result d;
        rc = dup_eval(dctx, &m, &r, sequences > 0 ? sequences : r.dup_eval, batch, rounds, &d);
        if (rc == 0) {
            char how[64] = "";
            if (r.reformer) snprintf(how, sizeof how, "; LSH with %lld rounds", (long long)rounds);
            printf("dup: held-out accuracy %.2f%% over %lld symbols (second halves of %lld sequences of %lld), "
                   "loss %.4f nats/symbol%s; %.2f s\n", 100.0 * d.acc, (long long)d.symbols, (long long)d.sequences,
                   r.dup_len, d.loss, how, d.seconds);
        }
        attn_ctx_free(dctx);
        lm_model_free(&m);
        return rc;
    }
    int32_t *ids = NULL;
    int64_t n = 0;
    attn_ctx *ctx = NULL;
    rc = 1;
    if (r.pixels) { /* bits per dimension of the split's images */
        int32_t order[LM_PIX_LEN];
        lm_pixels px;
        memset(&px, 0, sizeof px);
        attn_ctx_config pc = {0};
        pc.arena_bytes = (size_t)1024 << 20;
        pc.n_threads = (int)threads;
        lm_eval_result ev;
        if (lm_pixels_order("attn lm eval", &m.g->cfg.sparse, order) ||
            lm_pixels_load("attn lm eval", r.data, split, (int)r.pixels, order, &px)) {
            lm_model_free(&m);
            return 1;
        }
        const int64_t ni = bytes > 0 && bytes < px.n ? bytes : px.n;
        if (attn_ctx_new(&ctx, &pc) != ATTN_OK) rc = cli_fail(CMD, "cannot create the context");
        else if (pixel_eval(ctx, m.g, &px, ni, batch, &ev) == 0) {
            printf("%s: %.4f bits/dim over %lld images (%lld pixels, %lld levels); %.2f s; %lld parameters; threads %d\n",
                   split, ev.bpb, (long long)ni, (long long)ev.bytes, r.pixels, ev.seconds,
                   (long long)attn_params_numel(m.ps), attn_ctx_threads(ctx));
            rc = 0;
        }
        lm_pixels_free(&px);
        attn_ctx_free(ctx);
        lm_model_free(&m);
        return rc;
    }
    char name[32];
    snprintf(name, sizeof name, "%s.txt", split);
    if (cli_load_bytes("lm", r.data, name, &ids, &n)) goto done;
    if (bytes > 0 && bytes < n) n = bytes;
    if (n < 2) {
        fprintf(stderr, "attn lm eval: %s/%s has fewer than 2 bytes\n", r.data, name);
        goto done;
    }
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)1024 << 20;
    cc.n_threads = (int)threads;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    const int64_t seg = segment > 0 ? segment : r.segment, mem = mem_len >= 0 ? mem_len : r.eval_mem_len;
    const int64_t str = stride > 0 ? stride : r.txl ? 0 : r.reformer ? m.rf->cfg.ctx_len : m.g->cfg.ctx_len;
    const int64_t rounds = eval_rounds > 0 ? eval_rounds : r.eval_rounds;
    lm_eval_result ev;
    if (losses ? (rc = lm_eval_losses(ctx, &m, ids, n, seg, mem, losses, &ev.bpb, &ev.seconds, &ev.bytes)) != 0
               : lm_eval(ctx, &m, rounds, ids, n, seg, mem, str, batch, &ev) != 0)
        goto done;
    char clamp_desc[48] = "";
    if (r.txl && m.t->cfg.clamp_len > 0)
        snprintf(clamp_desc, sizeof clamp_desc, " clamp %lld", (long long)m.t->cfg.clamp_len);
    if (r.txl)
        printf("%s: %.4f bits/byte over %lld bytes; txl segment %lld memory %lld%s; %.2f s, %.0f bytes/s; "
               "%lld parameters; threads %d\n",
               split, ev.bpb, (long long)ev.bytes, (long long)seg, (long long)mem, clamp_desc, ev.seconds,
               ev.seconds > 0 ? (double)ev.bytes / ev.seconds : 0.0, (long long)attn_params_numel(m.ps),
               attn_ctx_threads(ctx));
    else if (r.reformer)
        printf("%s: %.4f bits/byte over %lld bytes; reformer context %lld stride %lld, LSH %lld rounds; %.2f s, "
               "%.0f bytes/s; %lld parameters; threads %d\n",
               split, ev.bpb, (long long)ev.bytes, (long long)m.rf->cfg.ctx_len, (long long)str, (long long)rounds,
               ev.seconds, ev.seconds > 0 ? (double)ev.bytes / ev.seconds : 0.0, (long long)attn_params_numel(m.ps),
               attn_ctx_threads(ctx));
    else
        printf("%s: %.4f bits/byte over %lld bytes; gpt context %lld stride %lld; %.2f s, %.0f bytes/s; "
               "%lld parameters; threads %d\n",
               split, ev.bpb, (long long)ev.bytes, (long long)m.g->cfg.ctx_len, (long long)str, ev.seconds,
               ev.seconds > 0 ? (double)ev.bytes / ev.seconds : 0.0, (long long)attn_params_numel(m.ps),
               attn_ctx_threads(ctx));
    rc = 0;
done:
    free(ids);
    attn_ctx_free(ctx);
    lm_model_free(&m);
    return rc;
}

/* ---- sample ------------------------------------------------------------------------------ */

static int cmd_lm_sample(int argc, char **argv) {
    const char *model = NULL, *prompt = "\n", *sub = "sample";
    long long nbytes = 300, top_k = 0, seed = 1, threads = 0, mem_len = -1;
    double temp = 0.8, top_p = 0.95;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: attn lm sample --model DIR [options]\n\n"
                   "Generates bytes after a prompt: the TXL with its memory cache (each new byte sees\n"
                   "the memory and itself), the GPT with its KV cache (a sliding window).\n\n"
                   "  --prompt TEXT        (default a newline)\n"
                   "  --bytes N            bytes to generate (default 300)\n"
                   "  --mem-len M          txl: the memory (default the run's --eval-mem-len)\n"
                   "  --temperature T      0: greedy (default 0.8)\n"
                   "  --top-k K, --top-p P (default 0 and 0.95), --seed N (1), --threads N\n");
            return 0;
        }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--bytes") || !strcmp(a, "--tokens")) rc = cli_opt_int(CMD, sub, a, v, 0, 1 << 24, &nbytes);
        else if (!strcmp(a, "--mem-len")) rc = cli_opt_int(CMD, sub, a, v, 0, 1 << 16, &mem_len);
        else if (!strcmp(a, "--top-k")) rc = cli_opt_int(CMD, sub, a, v, 0, 256, &top_k);
        else if (!strcmp(a, "--seed")) rc = cli_opt_int(CMD, sub, a, v, 0, 1ll << 62, &seed);
        else if (!strcmp(a, "--threads")) rc = cli_opt_int(CMD, sub, a, v, 0, cli_max_threads(), &threads);
        else if (!strcmp(a, "--temperature")) rc = cli_opt_real(CMD, sub, a, v, 0.0, 100.0, &temp);
        else if (!strcmp(a, "--top-p")) rc = cli_opt_real(CMD, sub, a, v, 0.0, 1.0, &top_p);
        else {
            fprintf(stderr, "attn lm sample: unknown option '%s' (try 'attn lm sample --help')\n", a);
            return 2;
        }
        if (!v && rc == 0) {
            fprintf(stderr, "attn lm sample: %s needs a value\n", a);
            return 2;
        }
    }
    if (rc) return rc;
    if (!model) {
        fprintf(stderr, "attn lm sample: --model DIR is required\n");
        return 2;
    }
    const int64_t np = (int64_t)strlen(prompt);
    if (np < 1) {
        fprintf(stderr, "attn lm sample: the prompt must have at least one byte\n");
        return 2;
    }
    lm_info r;
    lm_model m;
    if (lm_load(model, &r, &m)) return 1;
    if (r.pixels) {
        fprintf(stderr, "attn lm sample: %s is a pixel model (--pixels %lld): sampling is for byte models\n", model,
                r.pixels);
        lm_model_free(&m);
        return 2;
    }
    int32_t *ids = malloc((size_t)np * sizeof *ids), *outi = malloc((size_t)(nbytes > 0 ? nbytes : 1) * sizeof *outi);
    attn_ctx *ctx = NULL;
    rc = 1;
    if (!ids || !outi) {
        fprintf(stderr, "attn lm sample: out of memory\n");
        goto done;
    }
    for (int64_t i = 0; i < np; i++) ids[i] = (unsigned char)prompt[i];
    attn_ctx_config cc = {0};
    cc.arena_bytes = (size_t)256 << 20;
    cc.n_threads = (int)threads;
    if (attn_ctx_new(&ctx, &cc) != ATTN_OK) {
        rc = cli_fail(CMD, "cannot create the context");
        goto done;
    }
    attn_sample_opts so = {(float)temp, (int)top_k, (float)top_p, (uint64_t)seed, 0};
    const int64_t mem = mem_len >= 0 ? mem_len : r.eval_mem_len;
    const double t0 = now_s();
    const attn_reformer_lm_run rr = {(int)r.eval_rounds, LM_EVAL_ROT_SEED};
    const attn_status st = m.t    ? attn_txl_generate(ctx, m.t, ids, np, nbytes, mem, &so, outi)
                           : m.rf ? attn_reformer_lm_generate(ctx, m.rf, ids, np, nbytes, &so, &rr, outi)
                                  : attn_gpt_generate(ctx, m.g, ids, np, nbytes, &so, outi, NULL);
    const double dt = now_s() - t0;
    if (st != ATTN_OK) {
        rc = cli_fail(CMD, "generation failed");
        goto done;
    }
    fputs(prompt, stdout);
    for (int64_t i = 0; i < nbytes; i++) fputc(outi[i], stdout);
    fputc('\n', stdout);
    fflush(stdout);
    fprintf(stderr, "(%lld bytes in %.2f s, %.0f bytes/s, %s; temperature %g, top-k %lld, top-p %g, seed %lld)\n",
            nbytes, dt, dt > 0 ? (double)nbytes / dt : 0.0,
            m.t ? "TXL memory cache" : m.rf ? "Reformer: the window recomputed per byte" : m.g->cfg.synth ? "synthesizer GPT: the window recomputed per byte" : m.g->cfg.mixer ? "sparse-mixer GPT: the window recomputed per byte" : "GPT KV cache", temp, top_k, top_p, seed);
    rc = 0;
done:
    free(ids);
    free(outi);
    attn_ctx_free(ctx);
    lm_model_free(&m);
    return rc;
}

int cmd_lm(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: attn lm train|eval|sample|viz|pattern [options]   (attn lm train --help, ...)\n\n"
                   "  train    train a byte-level GPT, Transformer-XL or Reformer (--arch) on long text\n"
                   "           (data/wiki), on images as pixel sequences (--pixels) or on the\n"
                   "           duplication task (--data dup)\n"
                   "  eval     held-out bits per byte (TXL: memory cache; GPT: sliding window)\n"
                   "  sample   generate bytes (TXL: with the memory cache)\n"
                   "  viz      memory attention heatmaps and the learned spans (SVG); --png: one head\n"
                   "  pattern  a block-sparse pattern's mask as a picture (PNG) and its share of entries\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_lm_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval")) return cmd_lm_eval(argc - 1, argv + 1);
    if (!strcmp(argv[1], "sample")) return cmd_lm_sample(argc - 1, argv + 1);
    if (!strcmp(argv[1], "viz")) return cmd_lm_viz(argc - 1, argv + 1);
    if (!strcmp(argv[1], "pattern")) return cmd_lm_pattern(argc - 1, argv + 1);
    fprintf(stderr, "attn lm: unknown subcommand '%s' (train, eval, sample, viz or pattern)\n", argv[1]);
    return 2;
}
