/* cmd_lm_eval.c: `attn lm eval` (held-out bits per byte of a trained
 * model: the TXL with its memory cache and any memory length, the GPT and
 * the Reformer with a sliding window; bits per dimension of images; the
 * duplication task's accuracy) and `attn lm sample` (bytes drawn from a
 * model, the TXL with its memory cache). docs/cli.md is the manual. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "commands.h"
#include "lm_cmd.h"
#include "lm_pixels.h"

#define CMD "lm"

/* ---- eval -------------------------------------------------------------------------------- */

int cmd_lm_eval(int argc, char **argv) {
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
    if (m.g && stride > m.g->cfg.ctx_len) { /* the bytes between windows would go unscored */
        fprintf(stderr, "attn lm eval: --stride %lld exceeds the model's context %lld (every byte must be "
                        "predicted once: use at most %lld)\n",
                (long long)stride, (long long)m.g->cfg.ctx_len, (long long)m.g->cfg.ctx_len);
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

int cmd_lm_sample(int argc, char **argv) {
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
    const double t0 = attn_monotonic_s();
    const attn_reformer_lm_run rr = {(int)r.eval_rounds, LM_EVAL_ROT_SEED};
    const attn_status st = m.t    ? attn_txl_generate(ctx, m.t, ids, np, nbytes, mem, &so, outi)
                           : m.rf ? attn_reformer_lm_generate(ctx, m.rf, ids, np, nbytes, &so, &rr, outi)
                                  : attn_gpt_generate(ctx, m.g, ids, np, nbytes, &so, outi, NULL);
    const double dt = attn_monotonic_s() - t0;
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
