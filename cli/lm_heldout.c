/* lm_heldout.c: held-out scores of `attn lm` models, shared by training's
 * evaluations (cli/lm_train_task.c) and `attn lm eval` (cli/cmd_lm_eval.c):
 * bits per byte (the TXL's memory cache, the GPT's and the Reformer's
 * sliding window), bits per dimension of images as pixel sequences, the
 * duplication task's accuracy, and the share of attention entries a
 * sparse pattern keeps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "commands.h"
#include "lm_cmd.h"
#include "lm_pixels.h"

#define CMD "lm"

/* ---- held-out evaluation -------------------------------------------------------------- */

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

/* Bits per byte of ids[0 .. n): TXL segment by segment with a memory of
 * mem_len, GPT and Reformer (`rounds`) with the sliding window of `stride`. */
int lm_eval(attn_ctx *ctx, lm_model *m, int64_t rounds, const int32_t *ids, int64_t n, int64_t segment,
                   int64_t mem_len, int64_t stride, int64_t B, lm_eval_result *out) {
    double nll = 0.0;
    int64_t count = 0;
    const double t0 = attn_monotonic_s();
    if (m->t) {
        if (attn_txl_eval_stream(ctx, m->t, ids, n, segment, mem_len, &nll, &count) != ATTN_OK)
            return cli_fail(CMD, "evaluation failed");
    } else if (gpt_eval_stream(ctx, m, rounds, ids, n, stride, B, &nll, &count)) {
        return 1;
    }
    out->seconds = attn_monotonic_s() - t0;
    out->bytes = count;
    out->bpb = count ? nll / (double)count / log(2.0) : NAN;
    return 0;
}

/* Bits per dimension of images 0 .. n - 1 of px (every one of their 784
 * pixels scored), B images per forward; out->bytes counts the pixels. */
int pixel_eval(attn_ctx *ctx, const attn_gpt *g, const lm_pixels *px, int64_t n, int64_t B,
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
    const double t0 = attn_monotonic_s();
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
    out->seconds = attn_monotonic_s() - t0;
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

#define DUP_EVAL_SEED 0x6475706576616cull

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
void dup_sequence(uint64_t seed, uint64_t stream, uint64_t index, int64_t N, int64_t V, int32_t *in,
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

/* Held-out accuracy (arg max == target) and loss of the second halves of
 * the first n held-out sequences, B at a time; the Reformer with `rounds`
 * hashing rounds (0: its training rounds). */
int dup_eval(attn_ctx *ctx, lm_model *m, const lm_info *r, int64_t n, int64_t B, int64_t rounds,
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
    const double t0 = attn_monotonic_s();
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
    out->seconds = attn_monotonic_s() - t0;
    out->symbols = count;
    out->sequences = n;
    out->loss = count ? nll / (double)count : NAN;
    out->acc = count ? (double)right / (double)count : NAN;
    return 0;
}
