/* alloc_fail.c (its own folder: not one of the suites of attn_tests): allocation-failure injection, SQLite's discipline (`make
 * alloc-fail`, run by .ci/run). The binary is linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc, so
 * every heap allocation of the library (and of this file) goes through the
 * wrappers below, which can make the N-th one fail. Each scenario is first
 * run with counting only (K allocations), then once for every N in 1..K with
 * the N-th allocation failing. A scenario must then end through the normal
 * error path: a status other than ATTN_OK with a message, never a crash; the
 * checkpoint and model files it replaces must still load afterwards (no
 * half-written file under the final name); and nothing may leak (the binary
 * is built with AddressSanitizer, whose LeakSanitizer checks at exit).
 *
 * Scenarios: a GPT (store, model, AdamW, context, one training step,
 * checkpoint save over a previous one, checkpoint load, model save and
 * load), a BERT (the same with its MLM loss), the RNN encoder-decoder and
 * the encoder-decoder Transformer (one step, a checkpoint saved and loaded
 * into a fresh model), a BPE vocabulary (learn, save over a previous one,
 * load, encode), a WordPiece tokenizer (from memory and from a file, encode),
 * word2vec (vocabulary, one epoch of training, both vector
 * files saved over previous ones and loaded, a query, the evaluations).
 *
 * Prints one line per scenario and "alloc_fail: N passed, N failed". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn/attn.h"

/* ---- the wrappers ------------------------------------------------------------------------ */

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);

static long long g_count;         /* allocations since the counter was reset */
static long long g_fail_at = -1;  /* the allocation (1-based) that fails; -1: none */
static int g_failed;              /* the injected failure happened */

static int inject(void) {
    g_count++;
    if (g_count == g_fail_at) {
        g_failed = 1;
        return 1;
    }
    return 0;
}
void *__wrap_malloc(size_t n) { return inject() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t k, size_t n) { return inject() ? NULL : __real_calloc(k, n); }
void *__wrap_realloc(void *p, size_t n) { return inject() ? NULL : __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t a, size_t n) { return inject() ? NULL : __real_aligned_alloc(a, n); }

/* ---- scenarios ---------------------------------------------------------------------------- */

static char g_dir[256];

static void path_of(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_dir, name); }

/* A GPT of 2 layers: one training step, checkpoint and model files. */
static attn_status scenario_gpt(void) {
    attn_status st = ATTN_OK;
    attn_params *ps = NULL, *ps2 = NULL, *ps3 = NULL;
    attn_gpt *m = NULL, *m2 = NULL, *m3 = NULL;
    attn_optim *opt = NULL, *opt2 = NULL;
    attn_ctx *ctx = NULL;
    char ck[300], mp[300];
    path_of(ck, sizeof ck, "gpt.ckpt.safetensors");
    path_of(mp, sizeof mp, "gpt.model.safetensors");
    attn_gpt_config c = {.vocab = 11, .ctx_len = 8, .n_layers = 2, .n_heads = 2, .d_model = 8,
                         .dropout = 0.1f, .pos = ATTN_POS_LEARNED, .tied = 1};
    attn_optim_config oc = {.kind = ATTN_OPTIM_ADAMW, .lr = 1e-3f, .weight_decay = 0.01f};
    attn_rng rng;
    attn_rng_init(&rng, 3);
    attn_ctx_config cc = {.arena_bytes = (size_t)8 << 20, .n_threads = 1};
    if ((st = attn_params_new(&ps)) || (st = attn_gpt_new(&m, ps, &c, &rng)) ||
        (st = attn_optim_new(&opt, ps, &oc)) || (st = attn_ctx_new(&ctx, &cc)))
        goto out;
    int32_t ids[16], tg[16];
    for (int i = 0; i < 16; i++) ids[i] = i % 11, tg[i] = (i + 1) % 11;
    const int64_t sh[2] = {2, 8};
    attn_tensor *loss = attn_gpt_loss(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, sh, ids),
                                      attn_tensor_from(ctx, ATTN_I32, 2, sh, tg), -1);
    if (!loss) {
        st = attn_ctx_status(ctx);
        goto out;
    }
    if ((st = attn_backward(ctx, loss)) || (st = attn_optim_step(opt, 1e-3f))) goto out;
    if ((st = attn_checkpoint_save(ck, ps, opt, 1, NULL, 0))) goto out;
    if ((st = attn_params_new(&ps2)) || (st = attn_gpt_new(&m2, ps2, &c, NULL)) ||
        (st = attn_optim_new(&opt2, ps2, &oc)) || (st = attn_checkpoint_load(ck, ps2, opt2, NULL)))
        goto out;
    if ((st = attn_gpt_save(mp, m, NULL, 0))) goto out;
    if ((st = attn_params_new(&ps3)) || (st = attn_gpt_load(mp, ps3, &m3))) goto out;
out:
    attn_gpt_free(m), attn_gpt_free(m2), attn_gpt_free(m3);
    attn_optim_free(opt), attn_optim_free(opt2);
    attn_params_free(ps), attn_params_free(ps2), attn_params_free(ps3);
    attn_ctx_free(ctx);
    return st;
}

static attn_status scenario_bert(void) {
    attn_status st = ATTN_OK;
    attn_params *ps = NULL, *ps2 = NULL;
    attn_bert *m = NULL, *m2 = NULL;
    attn_optim *opt = NULL;
    attn_ctx *ctx = NULL;
    char mp[300];
    path_of(mp, sizeof mp, "bert.model.safetensors");
    attn_bert_config c = {.vocab = 13, .max_len = 8, .n_layers = 1, .n_heads = 2, .d_model = 8,
                          .dropout = 0.1f, .mlm = 1, .n_classes = 3};
    attn_optim_config oc = {.kind = ATTN_OPTIM_ADAM, .lr = 1e-3f};
    attn_rng rng;
    attn_rng_init(&rng, 4);
    attn_ctx_config cc = {.arena_bytes = (size_t)8 << 20, .n_threads = 1};
    if ((st = attn_params_new(&ps)) || (st = attn_bert_new(&m, ps, &c, &rng)) ||
        (st = attn_optim_new(&opt, ps, &oc)) || (st = attn_ctx_new(&ctx, &cc)))
        goto out;
    int32_t ids[16], lab[16], len[2] = {8, 5};
    for (int i = 0; i < 16; i++) ids[i] = 4 + i % 9, lab[i] = i % 3 || i % 8 >= len[i / 8] ? -1 : 4 + (i * 7) % 9;
    const int64_t sh[2] = {2, 8}, b = 2;
    int64_t correct = 0, count = 0;
    attn_tensor *loss = attn_bert_mlm_loss(ctx, m, attn_tensor_from(ctx, ATTN_I32, 2, sh, ids),
                                           attn_tensor_from(ctx, ATTN_I32, 1, &b, len),
                                           attn_tensor_from(ctx, ATTN_I32, 2, sh, lab), &correct,
                                           &count);
    if (!loss) {
        st = attn_ctx_status(ctx);
        goto out;
    }
    if ((st = attn_backward(ctx, loss)) || (st = attn_optim_step(opt, 1e-3f))) goto out;
    if ((st = attn_bert_save(mp, m, NULL, 0))) goto out;
    if ((st = attn_params_new(&ps2)) || (st = attn_bert_load(mp, ps2, &m2))) goto out;
out:
    attn_bert_free(m), attn_bert_free(m2);
    attn_optim_free(opt);
    attn_params_free(ps), attn_params_free(ps2);
    attn_ctx_free(ctx);
    return st;
}

/* The two encoder-decoders: one teacher-forced step on a tiny batch, a
 * checkpoint saved over a previous one and loaded into a fresh model. */
static attn_status s2s_step(attn_params *ps, attn_optim *opt, attn_ctx *ctx, const void *m, int t2t,
                            const char *ck, attn_params *ps2, attn_optim *opt2) {
    int32_t src[8] = {4, 5, 6, 2, 7, 8, 2, 0}, len[2] = {4, 3};
    int32_t tin[8] = {1, 4, 5, 6, 1, 7, 8, 0}, tout[8] = {4, 5, 6, 2, 7, 8, 2, 0};
    const int64_t sh[2] = {2, 4}, b = 2;
    attn_s2s_batch batch = {attn_tensor_from(ctx, ATTN_I32, 2, sh, src),
                            attn_tensor_from(ctx, ATTN_I32, 1, &b, len),
                            attn_tensor_from(ctx, ATTN_I32, 2, sh, tin),
                            attn_tensor_from(ctx, ATTN_I32, 2, sh, tout)};
    attn_tensor *loss = !batch.src || !batch.src_len || !batch.tgt_in || !batch.tgt_out ? NULL
                        : t2t ? attn_t2t_loss(ctx, (const attn_t2t *)m, &batch, 0.1f, NULL)
                              : attn_seq2seq_loss(ctx, (const attn_seq2seq *)m, &batch, 0.1f, NULL);
    if (!loss) return attn_ctx_status(ctx) ? attn_ctx_status(ctx) : ATTN_ERR_OOM;
    attn_status st = attn_backward(ctx, loss);
    if (!st) st = attn_optim_step(opt, 1e-3f);
    if (!st) st = attn_checkpoint_save(ck, ps, opt, 1, NULL, 0);
    if (!st) st = attn_checkpoint_load(ck, ps2, opt2, NULL);
    return st;
}

static attn_status scenario_s2s(int t2t) {
    attn_status st = ATTN_OK;
    attn_params *ps = NULL, *ps2 = NULL;
    void *m = NULL, *m2 = NULL;
    attn_optim *opt = NULL, *opt2 = NULL;
    attn_ctx *ctx = NULL;
    char ck[300];
    path_of(ck, sizeof ck, t2t ? "t2t.ckpt.safetensors" : "rnn.ckpt.safetensors");
    attn_seq2seq_config rc = {.cell = ATTN_RNN_GRU, .src_vocab = 9, .tgt_vocab = 9, .emb_dim = 8,
                              .hidden = 8, .enc_layers = 1, .dec_layers = 1, .bidirectional = 1,
                              .attention = ATTN_S2S_BAHDANAU, .dropout = 0.1f,
                              .pad_id = 0, .bos_id = 1, .eos_id = 2};
    attn_t2t_config tc = {.src_vocab = 9, .tgt_vocab = 9, .d_model = 8, .n_heads = 2,
                          .enc_layers = 1, .dec_layers = 1, .d_ff = 16, .dropout = 0.1f,
                          .pos = ATTN_POS_SINUSOIDAL, .pad_id = 0, .bos_id = 1, .eos_id = 2};
    attn_optim_config oc = {.kind = ATTN_OPTIM_ADAMW, .lr = 1e-3f};
    attn_rng rng;
    attn_rng_init(&rng, 5);
    attn_ctx_config cc = {.arena_bytes = (size_t)8 << 20, .n_threads = 1};
    if ((st = attn_params_new(&ps)) || (st = attn_params_new(&ps2))) goto out;
    st = t2t ? attn_t2t_new((attn_t2t **)&m, ps, &tc, &rng)
             : attn_seq2seq_new((attn_seq2seq **)&m, ps, &rc, &rng);
    if (!st) st = t2t ? attn_t2t_new((attn_t2t **)&m2, ps2, &tc, NULL)
                      : attn_seq2seq_new((attn_seq2seq **)&m2, ps2, &rc, NULL);
    if (st || (st = attn_optim_new(&opt, ps, &oc)) || (st = attn_optim_new(&opt2, ps2, &oc)) ||
        (st = attn_ctx_new(&ctx, &cc)))
        goto out;
    st = s2s_step(ps, opt, ctx, m, t2t, ck, ps2, opt2);
out:
    if (t2t) {
        attn_t2t_free(m), attn_t2t_free(m2);
    } else {
        attn_seq2seq_free(m), attn_seq2seq_free(m2);
    }
    attn_optim_free(opt), attn_optim_free(opt2);
    attn_params_free(ps), attn_params_free(ps2);
    attn_ctx_free(ctx);
    return st;
}
static attn_status scenario_rnn(void) { return scenario_s2s(0); }
static attn_status scenario_t2t(void) { return scenario_s2s(1); }

static attn_status scenario_vocab(void) {
    static const char *texts[3] = {"the cat sat on the mat", "a dog ran in the fog",
                                   "the cat and the dog"};
    attn_vocab *v = NULL, *w = NULL;
    char vp[300];
    path_of(vp, sizeof vp, "bpe.vocab");
    attn_status st = attn_bpe_learn(texts, 3, 20, 1, &v);
    if (!st) st = attn_vocab_save(v, vp);
    if (!st) st = attn_vocab_load(vp, &w);
    int32_t ids[64];
    size_t n = 0;
    if (!st) st = attn_vocab_encode(w, texts[2], strlen(texts[2]), ids, 64, &n);
    attn_vocab_free(v), attn_vocab_free(w);
    return st;
}

/* The WordPiece tokenizer: a vocabulary from memory and from a file, an
 * encoding with CJK, accents, a special token and a continuation. */
static attn_status scenario_wordpiece(void) {
    static const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncafe\n##s\n\xe4\xb8\xad\n,\n";
    const char *text = "The caf\xc3\xa9s, [MASK] \xe4\xb8\xad x";
    attn_wordpiece *a = NULL, *b = NULL;
    char vp[300];
    path_of(vp, sizeof vp, "wordpiece_vocab.txt");
    attn_status st = attn_wordpiece_from_text(vocab, sizeof vocab - 1, &a);
    int32_t ids[32], n = 0;
    if (!st) st = attn_wordpiece_encode(a, text, strlen(text), 32, ids, &n, NULL);
    FILE *f = st ? NULL : fopen(vp, "wb");
    if (f) {
        fwrite(vocab, 1, sizeof vocab - 1, f);
        fclose(f);
        st = attn_wordpiece_load(vp, &b);
    }
    if (!st) st = attn_wordpiece_encode(b, text, strlen(text), 4, ids, &n, NULL);
    attn_wordpiece_free(a), attn_wordpiece_free(b);
    return st;
}

static attn_status scenario_word2vec(void) {
    static const char text[] = "the cat sat on the mat\nthe dog sat on the log\nthe cat and the dog\n";
    attn_w2v_config cfg;
    attn_w2v_config_default(&cfg);
    cfg.dim = 9;
    cfg.min_count = 1;
    cfg.epochs = 1;
    cfg.table_size = 1000;
    attn_w2v *m = NULL, *t = NULL, *s = NULL;
    char pt[300], ps[300], pq[300];
    path_of(pt, sizeof pt, "w2v.txt");
    path_of(ps, sizeof ps, "w2v.safetensors");
    path_of(pq, sizeof pq, "w2v.questions");
    FILE *fp = fopen(pq, "r");
    if (!fp) { /* the evaluation file, written once (by the counting run) */
        fp = fopen(pq, "w");
        if (fp) fputs(": x\ncat dog mat log\nthe cat the dog\n", fp), fclose(fp);
    } else {
        fclose(fp);
    }
    attn_status st = attn_w2v_build(&m, &cfg, text, sizeof text - 1);
    if (!st) st = attn_w2v_train(m, text, sizeof text - 1, NULL, NULL, NULL);
    if (!st) st = attn_w2v_save(m, pt, ATTN_W2V_TEXT);
    if (!st) st = attn_w2v_save(m, ps, ATTN_W2V_SAFETENSORS);
    if (!st) st = attn_w2v_load(&t, pt);
    if (!st) st = attn_w2v_load(&s, ps);
    int64_t idx[3];
    float sim[3];
    attn_w2v_analogy_result r;
    if (!st) st = attn_w2v_analogy(s, "cat", "dog", "mat", 0, 3, idx, sim, NULL);
    if (!st) st = attn_w2v_eval_analogies(t, pq, 0, &r);
    attn_w2v_free(m), attn_w2v_free(t), attn_w2v_free(s);
    return st;
}

/* The files a scenario replaces must load after any failure. */
static int files_ok(const char *which) {
    char p[300];
    if (!strcmp(which, "gpt")) {
        attn_params *ps = NULL;
        attn_gpt *m = NULL;
        path_of(p, sizeof p, "gpt.model.safetensors");
        int ok = attn_params_new(&ps) == ATTN_OK && attn_gpt_load(p, ps, &m) == ATTN_OK;
        attn_gpt_free(m), attn_params_free(ps);
        attn_safetensors *f = NULL;
        path_of(p, sizeof p, "gpt.ckpt.safetensors");
        ok = ok && attn_safetensors_open(&f, p) == ATTN_OK;
        attn_safetensors_close(f);
        return ok;
    }
    if (!strcmp(which, "rnn") || !strcmp(which, "t2t")) {
        attn_safetensors *f = NULL;
        path_of(p, sizeof p, !strcmp(which, "rnn") ? "rnn.ckpt.safetensors" : "t2t.ckpt.safetensors");
        const int ok = attn_safetensors_open(&f, p) == ATTN_OK;
        attn_safetensors_close(f);
        return ok;
    }
    if (!strcmp(which, "bert")) {
        attn_params *ps = NULL;
        attn_bert *m = NULL;
        path_of(p, sizeof p, "bert.model.safetensors");
        int ok = attn_params_new(&ps) == ATTN_OK && attn_bert_load(p, ps, &m) == ATTN_OK;
        attn_bert_free(m), attn_params_free(ps);
        return ok;
    }
    if (!strcmp(which, "wordpiece")) return 1; /* it replaces no file */
    if (!strcmp(which, "word2vec")) {
        attn_w2v *a = NULL, *b = NULL;
        path_of(p, sizeof p, "w2v.txt");
        int ok = attn_w2v_load(&a, p) == ATTN_OK;
        path_of(p, sizeof p, "w2v.safetensors");
        ok = ok && attn_w2v_load(&b, p) == ATTN_OK;
        attn_w2v_free(a), attn_w2v_free(b);
        return ok;
    }
    attn_vocab *v = NULL;
    path_of(p, sizeof p, "bpe.vocab");
    const int ok = attn_vocab_load(p, &v) == ATTN_OK;
    attn_vocab_free(v);
    return ok;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* the lines before LeakSanitizer's report */
    const char *base = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/attn_alloc_fail_XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    static const struct {
        const char *name;
        attn_status (*run)(void);
    } sc[6] = {{"gpt", scenario_gpt}, {"bert", scenario_bert}, {"rnn", scenario_rnn},
               {"t2t", scenario_t2t}, {"vocab", scenario_vocab}, {"wordpiece", scenario_wordpiece},
               {"word2vec", scenario_word2vec}};
    int passed = 0, failed = 0;
    for (int s = 0; s < 6; s++) {
        g_fail_at = -1;
        g_count = 0;
        const attn_status st0 = sc[s].run(); /* counting, and the files to replace */
        const long long total = g_count;
        if (st0 != ATTN_OK || total < 1) {
            printf("FAIL %s: the scenario fails without injection: %s\n", sc[s].name, attn_last_error());
            failed++;
            continue;
        }
        long long errors = 0, tolerated = 0, unreached = 0, bad = 0;
        for (long long n = 1; n <= total; n++) {
            g_count = 0;
            g_fail_at = n;
            g_failed = 0;
            const attn_status st = sc[s].run();
            g_fail_at = -1;
            if (st != ATTN_OK) {
                errors++;
                if (!attn_last_error()[0]) {
                    bad++;
                    printf("FAIL %s: allocation %lld failed: status %s without a message\n",
                           sc[s].name, n, attn_status_str(st));
                }
            } else if (g_failed) {
                tolerated++; /* a failure the library recovered from (a cache, an optional buffer) */
            } else {
                unreached++; /* this run made fewer allocations than the counting run */
            }
            if (!files_ok(sc[s].name)) {
                bad++;
                printf("FAIL %s: after allocation %lld failed, a file under its final name does not load\n",
                       sc[s].name, n);
            }
        }
        if (bad) {
            failed++;
        } else {
            passed++;
            printf("ok   %s: each of its %lld allocations failed in turn: %lld errors through the "
                   "normal path, %lld recovered, %lld runs made fewer allocations; no crash, every "
                   "file loads\n",
                   sc[s].name, total, errors, tolerated, unreached);
        }
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", g_dir);
    printf("alloc_fail: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
