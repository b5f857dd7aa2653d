/* lm_model.c: the model directory of `attn lm` (cli/cmd_lm.c): the run's
 * settings as checkpoint metadata (run.*) next to the model's configuration
 * (gpt.*, txl.* or reformer.*), and loading DIR/model.safetensors back into
 * an lm_info and an lm_model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "commands.h"
#include "lm_cmd.h"

#define CMD "lm"


/* ---- the run's settings (checkpoint metadata run.*) ------------------------------------ */


static const char *const lm_keys[LM_RUN_META] = {
    "run.model", "run.arch",   "run.data",         "run.batch",        "run.steps",
    "run.warmup", "run.seed",  "run.segment",      "run.mem_len",      "run.eval_mem_len",
    "run.lr",    "run.min_lr", "run.weight_decay", "run.span_penalty", "run.train_seconds",
    "run.run_segments", "run.pixels"};

/* keys added with the duplication task and the Reformer (optional when read) */
static const char *const lm_extra_keys[LM_RUN_EXTRA] = {"run.dup_len", "run.dup_vocab", "run.dup_eval",
                                                        "run.eval_rounds"};



void lm_model_free(lm_model *m) {
    attn_gpt_free(m->g);
    attn_txl_free(m->t);
    attn_reformer_lm_free(m->rf);
    attn_params_free(m->ps);
    memset(m, 0, sizeof *m);
}

void lm_meta_build(lm_meta *mm, const lm_model *m, const lm_info *r) {
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
    if (cli_check_family("attn lm", f, path, "run.model", "attn-lm", "attn lm train")) {
        attn_safetensors_close(f);
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
