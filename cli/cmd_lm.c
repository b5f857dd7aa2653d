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
 * metadata), train.jsonl and loss.svg.
 *
 * The files of the command: this one (the options of train, and the
 * dispatch), lm_train_task.c (the training task), lm_model.c (the model
 * directory), lm_heldout.c (held-out scores), cmd_lm_eval.c (eval,
 * sample), cmd_lm_viz.c (viz, pattern). */
#include <errno.h>
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
#define CLIP_NORM 1.0f


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
        "  --chunk N             reformer: LSH chunk length, 1..4096 (default 64)\n"
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
        else if (!strcmp(a, "--chunk")) rc = opt_int(a, v, 1, 4096, &chunk); /* the LSH op's limit */
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
