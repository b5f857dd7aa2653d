/* test_transformer.c: multi-head attention and the Transformer blocks of
 * include/attn/transformer.h.
 *
 *   - parity (tests/fixtures/transformer_mha.atfx from
 *     tools/make_transformer_fixtures.py): torch.nn.MultiheadAttention
 *     (batch_first; packed and separate weights; kdim/vdim with separate key
 *     and value inputs; key_padding_mask; causal and float attn_mask; no bias)
 *     and, where torch has no module, the script's float64 reference (checked
 *     there against torch on every torch case): grouped-query and multi-query
 *     heads, RoPE, ALiBi, Shaw. Outputs, the per-head weights [B, H, T, S]
 *     (need_weights, average_attn_weights=False), and the gradients of every
 *     parameter and input of sum(out * R); fast and reference kernels;
 *   - parity with torch.nn.TransformerEncoderLayer / TransformerDecoderLayer
 *     (transformer_block.atfx): post-LN and pre-LN, relu and gelu, causal
 *     and padding masks, outputs and all gradients;
 *   - central finite differences through a tiny pre-LN decoder block;
 *   - properties: permutation equivariance of MHA and of an encoder block
 *     without positions (and its failure under RoPE); under the causal mask
 *     the gradient of output t with respect to every later input is exactly
 *     0.0f through a whole pre-LN block; the KV cache (tokens one at a time,
 *     or a prompt then single tokens) reproduces the full causal forward for
 *     every position kind and grouped heads, and a decoder block with a
 *     cached cross-attention; eval-mode dropout is the identity;
 *   - torch's parameter names and initial ranges, and the error paths.
 *
 * Tolerances (|a - b| <= atol + rtol |ref|):
 *   PARITY_*  float64 references rounded once to float32 of the same float32
 *             inputs; attn runs in float32 (products of length <= 16, softmax,
 *             layernorm). Measured with the tolerances at 0: outputs and
 *             weights within 4.8e-7, gradients within 1.5e-6. Outputs get
 *             2e-6 + 2e-5 |ref|, gradients 1e-5 + 5e-5 |ref|. A wrong head
 *             split, mask or scale moves values by 1e-2 or more.
 *   FD_*      central differences of the float32 forward with h = 1e-2;
 *             the truncation h^2/6 |f'''| dominates: 2e-4 + 1e-2 |fd|.
 *   CACHE_*   incremental vs full forward: 1e-5 + 1e-5 |ref| (measured: equal
 *             bit for bit on one thread, every row goes through the same
 *             kernels in the same order).
 *   PERM_*    permuted rows through the same kernels: measured within 2.4e-7;
 *             1e-6 + 1e-6 |ref|.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "../src/core/internal.h" /* the tape: which attention op ran */
#include "test.h"

#define PARITY_ATOL 2e-6f
#define PARITY_RTOL 2e-5f
#define PARITY_GATOL 1e-5f
#define PARITY_GRTOL 5e-5f
#define FD_STEP 1e-2f
#define FD_ATOL 2e-4
#define FD_RTOL 1e-2
#define CACHE_ATOL 1e-5f
#define CACHE_RTOL 1e-5f
#define PERM_ATOL 1e-6f
#define PERM_RTOL 1e-6f
#define ARENA_BYTES ((size_t)64 << 20)
#define GUARD_BYTES 16

/* Test hook of src/nn/transformer.c: nonzero routes every attention through
 * the composed bmm/softmax path instead of attn_sdpa; returns the old value. */
int attn__mha_force_composed(int on);

static void fill_uniform(float *x, int64_t n, float lo, float hi, attn_rng *rng) {
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * attn_rng_next_uniform(rng);
}

/* ==== fixture helpers ======================================================== */

static const atfx_tensor *need(const atfx_file *fx, const char *name, attn_dtype dt,
                               int64_t numel) {
    return test_fx_need(fx, name, dt, numel, "tools/make_transformer_fixtures.py");
}

static void cmp_fx(const char *tag, const char *what, const float *got, const atfx_file *fx,
                   const char *name, int64_t n, float atol, float rtol) {
    test_fx_close(tag, what, got, fx, name, n, atol, rtol, "tools/make_transformer_fixtures.py");
}

static atfx_file *load_fixture(const char *name) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/%s.atfx", test_fixture_dir(), name);
    atfx_file *fx = NULL;
    if (atfx_load(path, &fx, err, sizeof err) != ATTN_OK) {
        CHECK(0, "cannot load %s: %s (run tools/make_transformer_fixtures.py)", path, err);
        return NULL;
    }
    return fx;
}

static int fx_cases(const atfx_file *fx) {
    const atfx_tensor *nc = atfx_find(fx, "n_cases");
    return nc && nc->dtype == ATTN_I32 && nc->numel == 1 ? atfx_i32(nc)[0] : 0;
}

/* Compares every parameter's gradient with "c<k>.grad.param.<name>"
 * (the store's names after `skip` characters). */
static void cmp_param_grads(const char *tag, const atfx_file *fx, int k, attn_params *ps,
                            size_t skip) {
    for (int i = 0; i < attn_params_count(ps); i++) {
        attn_tensor *p = attn_params_at(ps, i);
        char what[160], fxname[224];
        snprintf(what, sizeof what, "gradient of %s", p->name);
        snprintf(fxname, sizeof fxname, "c%d.grad.param.%s", k, p->name + skip);
        cmp_fx(tag, what, p->grad, fx, fxname, attn_tensor_numel(p), PARITY_GATOL, PARITY_GRTOL);
    }
}

/* ==== MHA parity =================================================================== */

/* The attention op the last forward recorded: 1 FLASH_SDPA, 2 SDPA, 0 neither. */
static int attention_op_used(const attn_ctx *ctx) {
    int found = 0;
    for (const attn_node *nd = ctx->tape_last; nd; nd = nd->prev) {
        if (nd->op == ATTN_OP_FLASH_SDPA) found |= 1;
        if (nd->op == ATTN_OP_SDPA) found |= 2;
    }
    return found;
}

static void mha_parity_case(const atfx_file *fx, int k, int use_ref, int composed,
                            attn_attention_kernel kernel) {
    char label[200], tname[320], tag[96], nm[96];
    const char *kn = kernel == ATTN_KERNEL_FUSED ? "fused" : kernel == ATTN_KERNEL_AUTO ? "auto" : "reference op";
    atfx_text(atfx_findf(fx, "c%d.label", k), label, sizeof label);
    snprintf(tname, sizeof tname, "transformer/mha parity case %d (%s) [%s%s, %s]", k, label,
             use_ref ? "ref" : "fast", composed ? ", composed" : "", kn);
    snprintf(tag, sizeof tag, "mha case %d [%s%s, %s]", k, use_ref ? "ref" : "fast",
             composed ? ", composed" : "", kn);
    TEST_BEGIN(tname);
    attn_params *ps = NULL;
    attn_ctx *ctx = NULL;
    const int old = attn__mha_force_composed(composed);
    snprintf(nm, sizeof nm, "c%d.cfg", k);
    const atfx_tensor *ct = need(fx, nm, ATTN_I32, 12);
    if (!ct) goto out;
    const int32_t *cv = atfx_i32(ct);
    attn_mha_config cfg = {.embed_dim = cv[0],
                           .n_heads = cv[1],
                           .n_kv_heads = cv[2],
                           .kdim = cv[3],
                           .vdim = cv[4],
                           .packed = cv[5],
                           .no_bias = cv[6],
                           .pos = (attn_pos_kind)cv[10],
                           .shaw_clip = cv[11],
                           .kernel = kernel};
    const int mode = cv[7], causal = cv[8], has_kl = cv[9];
    const atfx_tensor *th = atfx_findf(fx, "c%d.rope_theta", k);
    if (th) cfg.rope_theta = atfx_f32(th)[0];
    attn_mha mha;
    CHECK_OK(attn_params_new(&ps));
    if (!ps) goto out;
    CHECK_OK(attn_mha_init(&mha, ps, "m.", &cfg, NULL));
    if (test__failed_checks) goto out;
    if (test_load_torch_params(fx, k, ps, 2, tag) < 0) goto out;
    ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    if (!ctx) goto out;
    attn_ctx_set_use_ref(ctx, use_ref);
    const atfx_tensor *xqt = need(fx, (snprintf(nm, sizeof nm, "c%d.xq", k), nm), ATTN_F32, -1);
    if (!xqt) goto out;
    const int64_t B = xqt->shape[0], T = xqt->shape[1], E = cfg.embed_dim, H = cfg.n_heads;
    attn_tensor *xq = test_leaf(ctx, 3, xqt->shape, atfx_f32(xqt)), *xk = NULL, *xv = NULL;
    if (mode >= 1) {
        const atfx_tensor *t = need(fx, (snprintf(nm, sizeof nm, "c%d.xk", k), nm), ATTN_F32, -1);
        if (!t) goto out;
        xk = test_leaf(ctx, 3, t->shape, atfx_f32(t));
    }
    if (mode == 2) {
        const atfx_tensor *t = need(fx, (snprintf(nm, sizeof nm, "c%d.xv", k), nm), ATTN_F32, -1);
        if (!t) goto out;
        xv = test_leaf(ctx, 3, t->shape, atfx_f32(t));
    }
    const int64_t S = mode ? xk->shape[1] : T;
    attn_mha_call call = {.causal = causal};
    if (has_kl) {
        const atfx_tensor *t =
            need(fx, (snprintf(nm, sizeof nm, "c%d.key_lengths", k), nm), ATTN_I32, B);
        if (!t) goto out;
        call.key_lengths = attn_tensor_from(ctx, ATTN_I32, 1, &B, t->data);
    }
    const atfx_tensor *bt = atfx_findf(fx, "c%d.bias", k);
    if (bt) call.bias = attn_tensor_from(ctx, ATTN_F32, 2, bt->shape, bt->data);
    const atfx_tensor *p0 = atfx_findf(fx, "c%d.pos0", k);
    if (p0) call.pos0 = atfx_i32(p0)[0];
    attn_tensor *w = NULL;
    attn_tensor *out = mode == 2 ? attn_mha_forward_kv(ctx, &mha, xq, xk, xv, &call, &w)
                                 : attn_mha_forward(ctx, &mha, xq, xk, &call, &w);
    CHECK(out && w, "%s: forward failed: %s", tag, attn_ctx_error(ctx));
    if (!out || !w) goto out;
    CHECK(out->ndim == 3 && out->shape[0] == B && out->shape[1] == T && out->shape[2] == E,
          "%s: output shape %s", tag, attn_shape_str(out, nm, sizeof nm));
    CHECK(w->ndim == 4 && w->shape[0] == B && w->shape[1] == H && w->shape[2] == T &&
              w->shape[3] == S,
          "%s: weights shape %s", tag, attn_shape_str(w, nm, sizeof nm));
    CHECK(!w->requires_grad, "%s: the weights carry a gradient", tag);
    {
        /* the op the config chose: the composed path (Shaw, or forced) has neither */
        const int fused = kernel == ATTN_KERNEL_FUSED ||
                          (kernel == ATTN_KERNEL_AUTO && S >= ATTN_FUSED_MIN_KEYS);
        const int want = composed || cfg.pos == ATTN_POS_SHAW ? 0 : fused ? 1 : 2;
        const int used = attention_op_used(ctx);
        CHECK(used == want, "%s: attention ops on the tape %d (1 flash_sdpa, 2 sdpa), expected %d",
              tag, used, want);
    }
    cmp_fx(tag, "output", attn_f32(out), fx, (snprintf(nm, sizeof nm, "c%d.out", k), nm),
           B * T * E, PARITY_ATOL, PARITY_RTOL);
    cmp_fx(tag, "weights", attn_f32(w), fx, (snprintf(nm, sizeof nm, "c%d.weights", k), nm),
           B * H * T * S, PARITY_ATOL, PARITY_RTOL);
    const atfx_tensor *r = need(fx, (snprintf(nm, sizeof nm, "c%d.R", k), nm), ATTN_F32, B * T * E);
    if (!r) goto out;
    attn_params_zero_grad(ps);
    CHECK_OK(attn_backward(ctx, test_dot_loss(ctx, out, atfx_f32(r))));
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s: %s", tag, attn_last_error());
    cmp_param_grads(tag, fx, k, ps, 2);
    cmp_fx(tag, "gradient of xq", xq->grad, fx, (snprintf(nm, sizeof nm, "c%d.grad.xq", k), nm),
           attn_tensor_numel(xq), PARITY_GATOL, PARITY_GRTOL);
    if (xk)
        cmp_fx(tag, "gradient of xk", xk->grad, fx,
               (snprintf(nm, sizeof nm, "c%d.grad.xk", k), nm), attn_tensor_numel(xk),
               PARITY_GATOL, PARITY_GRTOL);
    if (xv)
        cmp_fx(tag, "gradient of xv", xv->grad, fx,
               (snprintf(nm, sizeof nm, "c%d.grad.xv", k), nm), attn_tensor_numel(xv),
               PARITY_GATOL, PARITY_GRTOL);
out:
    attn__mha_force_composed(old);
    attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

static void test_mha_parity(void) {
    TEST_BEGIN("transformer/mha fixture");
    atfx_file *fx = load_fixture("transformer_mha");
    const int n = fx ? fx_cases(fx) : 0;
    CHECK(!fx || n >= 15, "transformer_mha: %d cases, expected at least 15", n);
    TEST_END();
    for (int k = 0; k < n; k++) {
        mha_parity_case(fx, k, 0, 0, ATTN_KERNEL_FUSED);
        mha_parity_case(fx, k, 1, 0, ATTN_KERNEL_FUSED);
        mha_parity_case(fx, k, 0, 0, ATTN_KERNEL_REFERENCE);
        mha_parity_case(fx, k, 0, 0, ATTN_KERNEL_AUTO); /* short: the reference op */
        mha_parity_case(fx, k, 0, 1, ATTN_KERNEL_FUSED);
    }
    atfx_free(fx);
}

/* ==== block parity ================================================================= */

static void block_parity_case(const atfx_file *fx, int k, int use_ref,
                              attn_attention_kernel kernel) {
    char label[200], tname[320], tag[96], nm[96];
    const char *kn = kernel == ATTN_KERNEL_FUSED ? "fused" : kernel == ATTN_KERNEL_AUTO ? "auto" : "reference op";
    atfx_text(atfx_findf(fx, "c%d.label", k), label, sizeof label);
    snprintf(tname, sizeof tname, "transformer/block parity case %d (%s) [%s, %s]", k, label,
             use_ref ? "ref" : "fast", kn);
    snprintf(tag, sizeof tag, "block case %d [%s, %s]", k, use_ref ? "ref" : "fast", kn);
    TEST_BEGIN(tname);
    attn_params *ps = NULL;
    attn_ctx *ctx = NULL;
    const atfx_tensor *ct = need(fx, (snprintf(nm, sizeof nm, "c%d.cfg", k), nm), ATTN_I32, 9);
    if (!ct) goto out;
    const int32_t *cv = atfx_i32(ct);
    attn_block_config cfg = {.d_model = cv[0],
                             .n_heads = cv[1],
                             .d_ff = cv[2],
                             .norm_first = cv[3],
                             .activation = cv[4] ? ATTN_ACT_GELU : ATTN_ACT_RELU,
                             .cross = cv[5],
                             .kernel = kernel};
    const int causal = cv[6], has_kl = cv[7], has_ml = cv[8];
    attn_block blk;
    CHECK_OK(attn_params_new(&ps));
    if (!ps) goto out;
    CHECK_OK(attn_block_init(&blk, ps, "layers.0.", &cfg, NULL));
    if (test__failed_checks) goto out;
    if (test_load_torch_params(fx, k, ps, 9, tag) < 0) goto out;
    ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    if (!ctx) goto out;
    attn_ctx_set_use_ref(ctx, use_ref);
    const atfx_tensor *xt = need(fx, (snprintf(nm, sizeof nm, "c%d.x", k), nm), ATTN_F32, -1);
    if (!xt) goto out;
    const int64_t B = xt->shape[0], T = xt->shape[1], E = cfg.d_model;
    attn_tensor *x = test_leaf(ctx, 3, xt->shape, atfx_f32(xt)), *mem = NULL;
    if (cfg.cross) {
        const atfx_tensor *t =
            need(fx, (snprintf(nm, sizeof nm, "c%d.memory", k), nm), ATTN_F32, -1);
        if (!t) goto out;
        mem = test_leaf(ctx, 3, t->shape, atfx_f32(t));
    }
    attn_mha_call sc = {.causal = causal}, cc = {0};
    if (has_kl) {
        const atfx_tensor *t =
            need(fx, (snprintf(nm, sizeof nm, "c%d.key_lengths", k), nm), ATTN_I32, B);
        if (!t) goto out;
        sc.key_lengths = attn_tensor_from(ctx, ATTN_I32, 1, &B, t->data);
    }
    if (has_ml) {
        const atfx_tensor *t =
            need(fx, (snprintf(nm, sizeof nm, "c%d.memory_lengths", k), nm), ATTN_I32, B);
        if (!t) goto out;
        cc.key_lengths = attn_tensor_from(ctx, ATTN_I32, 1, &B, t->data);
    }
    attn_tensor *out = attn_block_forward(ctx, &blk, x, mem, &sc, &cc, NULL);
    CHECK(out != NULL, "%s: forward failed: %s", tag, attn_ctx_error(ctx));
    if (!out) goto out;
    cmp_fx(tag, "output", attn_f32(out), fx, (snprintf(nm, sizeof nm, "c%d.out", k), nm),
           B * T * E, PARITY_ATOL, PARITY_RTOL);
    const atfx_tensor *r = need(fx, (snprintf(nm, sizeof nm, "c%d.R", k), nm), ATTN_F32, B * T * E);
    if (!r) goto out;
    attn_params_zero_grad(ps);
    CHECK_OK(attn_backward(ctx, test_dot_loss(ctx, out, atfx_f32(r))));
    CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s: %s", tag, attn_last_error());
    cmp_param_grads(tag, fx, k, ps, 9);
    cmp_fx(tag, "gradient of x", x->grad, fx, (snprintf(nm, sizeof nm, "c%d.grad.x", k), nm),
           attn_tensor_numel(x), PARITY_GATOL, PARITY_GRTOL);
    if (mem)
        cmp_fx(tag, "gradient of memory", mem->grad, fx,
               (snprintf(nm, sizeof nm, "c%d.grad.memory", k), nm), attn_tensor_numel(mem),
               PARITY_GATOL, PARITY_GRTOL);
out:
    attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

static void test_block_parity(void) {
    TEST_BEGIN("transformer/block fixture");
    atfx_file *fx = load_fixture("transformer_block");
    const int n = fx ? fx_cases(fx) : 0;
    CHECK(!fx || n >= 5, "transformer_block: %d cases, expected at least 5", n);
    TEST_END();
    for (int k = 0; k < n; k++)
        for (int ref = 0; ref < 2; ref++) block_parity_case(fx, k, ref, ATTN_KERNEL_FUSED);
    for (int k = 0; k < n; k++) block_parity_case(fx, k, 0, ATTN_KERNEL_REFERENCE);
    for (int k = 0; k < n; k++) block_parity_case(fx, k, 0, ATTN_KERNEL_AUTO);
    atfx_free(fx);
}

/* ==== finite differences =========================================================== */

/* A tiny pre-LN decoder block: E 4, H 2 (Hkv 1), F 6, B 2, T 3, S 2, gelu,
 * causal self-attention, memory lengths [2, 1]. */
#define FD_B 2
#define FD_T 3
#define FD_S 2
#define FD_E 4
typedef struct fd_problem {
    attn_params *ps;
    attn_block blk;
    float x[FD_B * FD_T * FD_E], mem[FD_B * FD_S * FD_E], r[FD_B * FD_T * FD_E];
} fd_problem;

static double fd_eval(attn_ctx *ctx, fd_problem *p, int grad, float *gx, float *gm) {
    static const int64_t xs[3] = {FD_B, FD_T, FD_E}, ms[3] = {FD_B, FD_S, FD_E};
    static const int32_t mlen[FD_B] = {2, 1};
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, grad);
    attn_tensor *x = test_leaf(ctx, 3, xs, p->x), *m = test_leaf(ctx, 3, ms, p->mem);
    const int64_t b = FD_B;
    attn_mha_call sc = {.causal = 1},
                  cc = {.key_lengths = attn_tensor_from(ctx, ATTN_I32, 1, &b, mlen)};
    attn_tensor *out = attn_block_forward(ctx, &p->blk, x, m, &sc, &cc, NULL);
    attn_ctx_set_grad_enabled(ctx, 1);
    if (!out) {
        CHECK(0, "fd forward failed: %s", attn_ctx_error(ctx));
        return NAN;
    }
    const double l = test_dot_d(out, p->r);
    if (grad) {
        attn_params_zero_grad(p->ps);
        if (attn_backward(ctx, test_dot_loss(ctx, out, p->r)) != ATTN_OK) {
            CHECK(0, "fd backward failed: %s", attn_ctx_error(ctx));
            return NAN;
        }
        memcpy(gx, x->grad, sizeof p->x);
        memcpy(gm, m->grad, sizeof p->mem);
    }
    return l;
}

static void fd_check(attn_ctx *ctx, fd_problem *p, const char *what, float *vals,
                     const float *grad, int64_t n) {
    int64_t bad = 0, worst = -1;
    double worst_ex = 0.0, worst_fd = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float v0 = vals[i], vp = v0 + FD_STEP, vm = v0 - FD_STEP;
        vals[i] = vp;
        const double lp = fd_eval(ctx, p, 0, NULL, NULL);
        vals[i] = vm;
        const double lm = fd_eval(ctx, p, 0, NULL, NULL);
        vals[i] = v0;
        const double fd = (lp - lm) / ((double)vp - (double)vm), an = grad[i];
        double ex = fabs(an - fd) - (FD_ATOL + FD_RTOL * fabs(fd));
        if (!isfinite(fd) || !isfinite(an)) ex = INFINITY;
        if (ex > 0) {
            bad++;
            if (worst < 0 || ex > worst_ex) worst = i, worst_ex = ex, worst_fd = fd;
        }
    }
    CHECK(worst < 0,
          "%s: element %lld: analytic %.9g, central difference %.9g; %lld of %lld elements out "
          "of tolerance",
          what, (long long)worst, worst >= 0 ? (double)grad[worst] : 0.0, worst_fd,
          (long long)bad, (long long)n);
}

static void test_finite_differences(void) {
    TEST_BEGIN("transformer/finite differences (pre-LN decoder block, E 4, H 2, Hkv 1, gelu)");
    fd_problem p;
    memset(&p, 0, sizeof p);
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    attn_rng rng;
    attn_rng_init(&rng, 0xFD7);
    attn_block_config cfg = {.d_model = FD_E,
                             .n_heads = 2,
                             .n_kv_heads = 1,
                             .d_ff = 6,
                             .norm_first = 1,
                             .activation = ATTN_ACT_GELU,
                             .cross = 1};
    CHECK_OK(attn_params_new(&p.ps));
    if (ctx && p.ps) {
        CHECK_OK(attn_block_init(&p.blk, p.ps, NULL, &cfg, &rng));
        /* non-trivial norms and biases (init leaves them 1 and 0) */
        for (int i = 0; i < attn_params_count(p.ps); i++) {
            attn_tensor *t = attn_params_at(p.ps, i);
            if (t->ndim == 1) fill_uniform(attn_f32(t), attn_tensor_numel(t), -0.5f, 0.5f, &rng);
            if (strstr(t->name, "norm") && strstr(t->name, "weight"))
                for (int64_t j = 0; j < attn_tensor_numel(t); j++) attn_f32(t)[j] += 1.0f;
        }
        fill_uniform(p.x, sizeof p.x / sizeof *p.x, -1, 1, &rng);
        fill_uniform(p.mem, sizeof p.mem / sizeof *p.mem, -1, 1, &rng);
        fill_uniform(p.r, sizeof p.r / sizeof *p.r, -1, 1, &rng);
        float gx[sizeof p.x / sizeof *p.x], gm[sizeof p.mem / sizeof *p.mem];
        const double l = fd_eval(ctx, &p, 1, gx, gm);
        CHECK(isfinite(l), "loss %g", l);
        const int np = attn_params_count(p.ps);
        for (int i = 0; i < np; i++) {
            attn_tensor *t = attn_params_at(p.ps, i);
            const int64_t n = attn_tensor_numel(t);
            float *g = malloc(sizeof(float) * (size_t)n);
            if (!g) continue;
            memcpy(g, t->grad, sizeof(float) * (size_t)n);
            fd_check(ctx, &p, t->name, attn_f32(t), g, n);
            free(g);
        }
        fd_check(ctx, &p, "x", p.x, gx, sizeof p.x / sizeof *p.x);
        fd_check(ctx, &p, "memory", p.mem, gm, sizeof p.mem / sizeof *p.mem);
        /* memory row 1, position 1 is padding: exactly no gradient */
        int nz = 0;
        for (int j = 0; j < FD_E; j++) nz += gm[(1 * FD_S + 1) * FD_E + j] != 0.0f;
        CHECK(nz == 0, "%d gradient values at a padded memory position", nz);
    }
    attn_params_free(p.ps);
    attn_ctx_free(ctx);
    TEST_END();
}

/* ==== properties ==================================================================== */

/* A module or block with random weights (rng), for the property tests. */
static int make_mha(attn_params **ps, attn_mha *m, int64_t E, int H, int Hkv, attn_pos_kind pos,
                    uint64_t seed) {
    attn_rng rng;
    attn_rng_init(&rng, seed);
    attn_mha_config cfg = {.embed_dim = E, .n_heads = H, .n_kv_heads = Hkv, .packed = 1,
                           .pos = pos, .shaw_clip = 2};
    if (attn_params_new(ps) != ATTN_OK) return -1;
    if (attn_mha_init(m, *ps, "a.", &cfg, &rng) != ATTN_OK) return -1;
    /* non-zero biases */
    for (int i = 0; i < attn_params_count(*ps); i++) {
        attn_tensor *t = attn_params_at(*ps, i);
        if (t->ndim == 1) fill_uniform(attn_f32(t), attn_tensor_numel(t), -0.3f, 0.3f, &rng);
    }
    return 0;
}

static void test_permutation_equivariance(void) {
    TEST_BEGIN("transformer/self-attention is permutation equivariant (MHA and encoder block); "
               "RoPE breaks it");
    enum { B = 2, T = 7, E = 8 };
    static const int perm[T] = {3, 0, 6, 1, 5, 2, 4};
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    attn_params *ps = NULL, *ps2 = NULL;
    attn_rng rng;
    attn_rng_init(&rng, 77);
    static float x[B * T * E], xp[B * T * E], yp[B * T * E];
    fill_uniform(x, B * T * E, -1, 1, &rng);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            memcpy(&xp[(b * T + t) * E], &x[(b * T + perm[t]) * E], sizeof(float) * E);
    const int64_t xs[3] = {B, T, E};
    for (int variant = 0; variant < 3 && ctx; variant++) {
        /* 0: MHA with GQA, 1: encoder block (post-LN), 2: MHA with RoPE (not equivariant) */
        attn_mha m;
        attn_block blk;
        if (variant != 1) {
            CHECK(make_mha(&ps, &m, E, 4, 2, variant == 2 ? ATTN_POS_ROPE : ATTN_POS_NONE,
                           5) == 0,
                  "init: %s", attn_last_error());
        } else {
            attn_block_config bc = {.d_model = E, .n_heads = 2, .d_ff = 12};
            CHECK_OK(attn_params_new(&ps2));
            CHECK_OK(attn_block_init(&blk, ps2, NULL, &bc, &rng));
        }
        attn_ctx_reset(ctx);
        attn_tensor *a = attn_tensor_from(ctx, ATTN_F32, 3, xs, x);
        attn_tensor *ap = attn_tensor_from(ctx, ATTN_F32, 3, xs, xp);
        attn_tensor *y, *y2;
        if (variant != 1) {
            y = attn_mha_forward(ctx, &m, a, NULL, NULL, NULL);
            y2 = attn_mha_forward(ctx, &m, ap, NULL, NULL, NULL);
        } else {
            y = attn_block_forward(ctx, &blk, a, NULL, NULL, NULL, NULL);
            y2 = attn_block_forward(ctx, &blk, ap, NULL, NULL, NULL, NULL);
        }
        CHECK(y && y2, "forward: %s", attn_ctx_error(ctx));
        if (y && y2) {
            for (int b = 0; b < B; b++)
                for (int t = 0; t < T; t++)
                    memcpy(&yp[(b * T + t) * E], &attn_f32(y)[(b * T + perm[t]) * E],
                           sizeof(float) * E);
            if (variant < 2) {
                test_allclose(variant ? "block: f(Px) vs P f(x)" : "mha: f(Px) vs P f(x)",
                              attn_f32(y2), yp, B * T * E, PERM_ATOL, PERM_RTOL);
            } else {
                double dmax = 0;
                for (int i = 0; i < B * T * E; i++)
                    dmax = fmax(dmax, fabs((double)attn_f32(y2)[i] - yp[i]));
                CHECK(dmax > 1e-3, "RoPE: f(Px) equals P f(x) (max difference %g)", dmax);
            }
        }
        attn_params_free(ps);
        attn_params_free(ps2);
        ps = ps2 = NULL;
    }
    attn_ctx_free(ctx);
    TEST_END();
}

static void test_causal_gradient(void) {
    TEST_BEGIN("transformer/causal: d out[t] / d x[t'] is exactly 0 for t' > t through a pre-LN "
               "block (every position kind)");
    enum { B = 2, T = 6, E = 8 };
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    attn_rng rng;
    attn_rng_init(&rng, 99);
    static float x[B * T * E], go[B * T * E];
    fill_uniform(x, B * T * E, -1, 1, &rng);
    const int64_t xs[3] = {B, T, E};
    static const attn_pos_kind kinds[4] = {ATTN_POS_NONE, ATTN_POS_ROPE, ATTN_POS_ALIBI,
                                           ATTN_POS_SHAW};
    for (int kk = 0; kk < 4 && ctx; kk++) {
        attn_params *ps = NULL;
        attn_block blk;
        attn_block_config bc = {.d_model = E, .n_heads = 4, .n_kv_heads = 2, .d_ff = 16,
                                .norm_first = 1, .activation = ATTN_ACT_GELU, .pos = kinds[kk],
                                .shaw_clip = 2};
        CHECK_OK(attn_params_new(&ps));
        CHECK_OK(attn_block_init(&blk, ps, NULL, &bc, &rng));
        int64_t nonzero_later = 0, zero_earlier = 0;
        for (int t = 0; t < T; t++) {
            attn_ctx_reset(ctx);
            attn_tensor *a = test_leaf(ctx, 3, xs, x);
            const attn_mha_call sc = {.causal = 1};
            attn_tensor *y = attn_block_forward(ctx, &blk, a, NULL, &sc, NULL, NULL);
            if (!y) {
                CHECK(0, "%s: forward: %s", attn_pos_kind_name(kinds[kk]), attn_ctx_error(ctx));
                break;
            }
            memset(go, 0, sizeof go);
            for (int b = 0; b < B; b++)
                for (int j = 0; j < E; j++) go[(b * T + t) * E + j] = 1.0f + 0.1f * (float)j;
            CHECK_OK(attn_backward_from(ctx, y, go));
            if (!a->grad) continue;
            for (int b = 0; b < B; b++)
                for (int t2 = 0; t2 < T; t2++) {
                    int nz = 0;
                    for (int j = 0; j < E; j++) nz |= a->grad[(b * T + t2) * E + j] != 0.0f;
                    if (t2 > t) nonzero_later += nz;
                    if (t2 <= t) zero_earlier += !nz;
                }
        }
        CHECK(nonzero_later == 0, "%s: %lld later rows with a nonzero gradient",
              attn_pos_kind_name(kinds[kk]), (long long)nonzero_later);
        /* and the test can see gradients at all: earlier rows have them */
        CHECK(zero_earlier == 0, "%s: %lld rows t' <= t with no gradient",
              attn_pos_kind_name(kinds[kk]), (long long)zero_earlier);
        attn_params_free(ps);
    }
    attn_ctx_free(ctx);
    TEST_END();
}

/* Incremental decoding through the cache reproduces the full causal forward:
 * chunk sizes `steps` (summing to T). */
static void cache_case(attn_pos_kind pos, int Hkv, const int *steps, int nsteps, const char *what) {
    enum { B = 2, T = 7, E = 8, H = 4 };
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    attn_params *ps = NULL;
    attn_mha m;
    attn_kv_cache cache;
    memset(&cache, 0, sizeof cache);
    attn_rng rng;
    attn_rng_init(&rng, 1234);
    static float x[B * T * E], full[B * T * E], inc[B * T * E], chunk[B * T * E];
    fill_uniform(x, B * T * E, -1, 1, &rng);
    if (!ctx || make_mha(&ps, &m, E, H, Hkv, pos, 31) != 0) {
        CHECK(0, "%s: setup: %s", what, attn_last_error());
        goto out;
    }
    const int64_t xs[3] = {B, T, E};
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *a = attn_tensor_from(ctx, ATTN_F32, 3, xs, x);
    const attn_mha_call fc = {.causal = 1};
    attn_tensor *y = attn_mha_forward(ctx, &m, a, NULL, &fc, NULL);
    CHECK(y != NULL, "%s: full forward: %s", what, attn_ctx_error(ctx));
    if (!y) goto out;
    memcpy(full, attn_f32(y), sizeof full);
    CHECK_OK(attn_kv_cache_init(&cache, 1, B, Hkv, T, E / H));
    int t0 = 0;
    for (int i = 0; i < nsteps; i++) {
        const int n = steps[i];
        attn_ctx_reset(ctx);
        attn_ctx_set_grad_enabled(ctx, 0);
        for (int b = 0; b < B; b++)
            memcpy(&chunk[b * n * E], &x[(b * T + t0) * E], sizeof(float) * (size_t)(n * E));
        const int64_t cs[3] = {B, n, E};
        attn_mha_call cc = {.causal = 1, .cache = &cache.layers[0]};
        attn_tensor *yc = attn_mha_forward(ctx, &m, attn_tensor_from(ctx, ATTN_F32, 3, cs, chunk),
                                           NULL, &cc, NULL);
        CHECK(yc != NULL, "%s: step %d: %s", what, i, attn_ctx_error(ctx));
        if (!yc) goto out;
        for (int b = 0; b < B; b++)
            memcpy(&inc[(b * T + t0) * E], &attn_f32(yc)[b * n * E],
                   sizeof(float) * (size_t)(n * E));
        t0 += n;
        CHECK(cache.layers[0].len == t0, "%s: cache len %lld after %d tokens", what,
              (long long)cache.layers[0].len, t0);
    }
    test_allclose(what, inc, full, B * T * E, CACHE_ATOL, CACHE_RTOL);
out:
    attn_kv_cache_free(&cache);
    attn_params_free(ps);
    attn_ctx_free(ctx);
}

static void test_kv_cache(void) {
    TEST_BEGIN("transformer/KV cache: one token at a time = full causal forward (all position "
               "kinds, MHA/GQA/MQA)");
    static const int ones[7] = {1, 1, 1, 1, 1, 1, 1}, mixed[4] = {3, 1, 2, 1};
    static const attn_pos_kind kinds[4] = {ATTN_POS_NONE, ATTN_POS_ROPE, ATTN_POS_ALIBI,
                                           ATTN_POS_SHAW};
    static const int hkv[3] = {4, 2, 1};
    for (int kk = 0; kk < 4; kk++)
        for (int h = 0; h < 3; h++) {
            char what[128];
            snprintf(what, sizeof what, "%s, Hkv %d, single tokens", attn_pos_kind_name(kinds[kk]),
                     hkv[h]);
            cache_case(kinds[kk], hkv[h], ones, 7, what);
            snprintf(what, sizeof what, "%s, Hkv %d, prompt 3 then 1, 2, 1",
                     attn_pos_kind_name(kinds[kk]), hkv[h]);
            cache_case(kinds[kk], hkv[h], mixed, 4, what);
        }
    TEST_END();
}

static void test_kv_cache_decoder_block(void) {
    TEST_BEGIN("transformer/KV cache: pre-LN decoder block with cached self- and "
               "cross-attention = full forward");
    enum { B = 2, T = 5, S = 4, E = 8, H = 2 };
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    attn_params *ps = NULL;
    attn_block blk;
    attn_kv_cache self_c, cross_c;
    memset(&self_c, 0, sizeof self_c);
    memset(&cross_c, 0, sizeof cross_c);
    attn_rng rng;
    attn_rng_init(&rng, 4321);
    static float x[B * T * E], mem[B * S * E], full[B * T * E], inc[B * T * E], one[B * E];
    fill_uniform(x, B * T * E, -1, 1, &rng);
    fill_uniform(mem, B * S * E, -1, 1, &rng);
    static const int32_t mlen[B] = {4, 2};
    attn_block_config bc = {.d_model = E, .n_heads = H, .d_ff = 12, .norm_first = 1,
                            .cross = 1, .pos = ATTN_POS_ROPE};
    CHECK_OK(attn_params_new(&ps));
    if (!ctx || !ps) goto out;
    CHECK_OK(attn_block_init(&blk, ps, NULL, &bc, &rng));
    CHECK_OK(attn_kv_cache_init(&self_c, 1, B, H, T, E / H));
    CHECK_OK(attn_kv_cache_init(&cross_c, 1, B, H, S, E / H));
    if (test__failed_checks) goto out;
    const int64_t xs[3] = {B, T, E}, ms[3] = {B, S, E}, bb = B;
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_mha_call sc = {.causal = 1},
                  cc = {.key_lengths = attn_tensor_from(ctx, ATTN_I32, 1, &bb, mlen)};
    attn_tensor *y = attn_block_forward(ctx, &blk, attn_tensor_from(ctx, ATTN_F32, 3, xs, x),
                                        attn_tensor_from(ctx, ATTN_F32, 3, ms, mem), &sc, &cc,
                                        NULL);
    CHECK(y != NULL, "full: %s", attn_ctx_error(ctx));
    if (!y) goto out;
    memcpy(full, attn_f32(y), sizeof full);
    for (int t = 0; t < T; t++) {
        attn_ctx_reset(ctx);
        attn_ctx_set_grad_enabled(ctx, 0);
        for (int b = 0; b < B; b++) memcpy(&one[b * E], &x[(b * T + t) * E], sizeof(float) * E);
        const int64_t os[3] = {B, 1, E};
        sc = (attn_mha_call){.causal = 1, .cache = &self_c.layers[0]};
        cc = (attn_mha_call){.key_lengths = attn_tensor_from(ctx, ATTN_I32, 1, &bb, mlen),
                             .cache = &cross_c.layers[0]};
        /* after the first step the memory is no longer read: pass zeros */
        attn_tensor *m = t == 0 ? attn_tensor_from(ctx, ATTN_F32, 3, ms, mem)
                                : attn_tensor_new(ctx, ATTN_F32, 3, ms);
        attn_tensor *yt = attn_block_forward(ctx, &blk, attn_tensor_from(ctx, ATTN_F32, 3, os, one),
                                             m, &sc, &cc, NULL);
        CHECK(yt != NULL, "step %d: %s", t, attn_ctx_error(ctx));
        if (!yt) goto out;
        for (int b = 0; b < B; b++)
            memcpy(&inc[(b * T + t) * E], &attn_f32(yt)[b * E], sizeof(float) * E);
    }
    CHECK(cross_c.layers[0].len == S && self_c.layers[0].len == T, "cache lengths %lld, %lld",
          (long long)cross_c.layers[0].len, (long long)self_c.layers[0].len);
    test_allclose("decoder block, cached", inc, full, B * T * E, CACHE_ATOL, CACHE_RTOL);
    attn_kv_cache_reset(&self_c);
    CHECK(self_c.layers[0].len == 0, "reset leaves len %lld", (long long)self_c.layers[0].len);
out:
    attn_kv_cache_free(&self_c);
    attn_kv_cache_free(&cross_c);
    attn_params_free(ps);
    attn_ctx_free(ctx);
    TEST_END();
}

static void test_dropout_modes(void) {
    TEST_BEGIN("transformer/dropout: identity in eval mode, active in training mode");
    enum { B = 2, T = 5, E = 8 };
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    attn_params *ps = NULL;
    attn_block blk, blk0;
    attn_rng rng;
    attn_rng_init(&rng, 5);
    static float x[B * T * E], y0[B * T * E];
    fill_uniform(x, B * T * E, -1, 1, &rng);
    attn_block_config bc = {.d_model = E, .n_heads = 2, .d_ff = 12, .dropout = 0.5f};
    CHECK_OK(attn_params_new(&ps));
    if (!ctx || !ps) goto out;
    CHECK_OK(attn_block_init(&blk, ps, NULL, &bc, &rng));
    blk0 = blk;
    blk0.cfg.dropout = 0.0f;
    blk0.self_attn.cfg.dropout = 0.0f;
    const int64_t xs[3] = {B, T, E};
    attn_tensor *a = attn_tensor_from(ctx, ATTN_F32, 3, xs, x);
    attn_tensor *r0 = attn_block_forward(ctx, &blk0, a, NULL, NULL, NULL, NULL);
    if (r0) memcpy(y0, attn_f32(r0), sizeof y0);
    attn_ctx_set_training(ctx, 0);
    attn_tensor *re = attn_block_forward(ctx, &blk, a, NULL, NULL, NULL, NULL);
    attn_ctx_set_training(ctx, 1);
    attn_tensor *rt = attn_block_forward(ctx, &blk, a, NULL, NULL, NULL, NULL);
    CHECK(r0 && re && rt, "forward: %s", attn_ctx_error(ctx));
    if (r0 && re && rt) {
        CHECK(memcmp(attn_f32(re), y0, sizeof y0) == 0, "eval mode differs from dropout 0");
        CHECK(memcmp(attn_f32(rt), y0, sizeof y0) != 0, "training mode equals dropout 0");
    }
out:
    attn_params_free(ps);
    attn_ctx_free(ctx);
    TEST_END();
}

/* ==== names, init, errors ============================================================ */

static void test_names_and_init(void) {
    TEST_BEGIN("transformer/torch's names, order and initial ranges");
    attn_params *ps = NULL;
    CHECK_OK(attn_params_new(&ps));
    if (!ps) goto out;
    attn_rng rng;
    attn_rng_init(&rng, 9);
    attn_block blk;
    attn_block_config bc = {.d_model = 8, .n_heads = 2, .d_ff = 32, .cross = 1};
    CHECK_OK(attn_block_init(&blk, ps, "decoder.layers.1.", &bc, &rng));
    static const char *const want[] = {
        "self_attn.in_proj_weight",      "self_attn.in_proj_bias",
        "self_attn.out_proj.weight",     "self_attn.out_proj.bias",
        "multihead_attn.in_proj_weight", "multihead_attn.in_proj_bias",
        "multihead_attn.out_proj.weight", "multihead_attn.out_proj.bias",
        "linear1.weight",                "linear1.bias",
        "linear2.weight",                "linear2.bias",
        "norm1.weight",                  "norm1.bias",
        "norm2.weight",                  "norm2.bias",
        "norm3.weight",                  "norm3.bias"};
    const int nw = (int)(sizeof want / sizeof *want);
    CHECK(attn_params_count(ps) == nw, "%d parameters, expected %d", attn_params_count(ps), nw);
    for (int i = 0; i < nw && i < attn_params_count(ps); i++) {
        char full[128];
        snprintf(full, sizeof full, "decoder.layers.1.%s", want[i]);
        CHECK(strcmp(attn_params_at(ps, i)->name, full) == 0, "parameter %d is %s, expected %s",
              i, attn_params_at(ps, i)->name, full);
    }
    /* ranges: xavier bound sqrt(6 / (24 + 8)) for in_proj, 1/sqrt(in) for linears */
    struct {
        const char *name;
        double bound;
        int zero;
    } r[] = {{"decoder.layers.1.self_attn.in_proj_weight", sqrt(6.0 / 32.0), 0},
             {"decoder.layers.1.self_attn.in_proj_bias", 0, 1},
             {"decoder.layers.1.self_attn.out_proj.weight", 1 / sqrt(8.0), 0},
             {"decoder.layers.1.self_attn.out_proj.bias", 0, 1},
             {"decoder.layers.1.linear1.weight", 1 / sqrt(8.0), 0},
             {"decoder.layers.1.linear1.bias", 1 / sqrt(8.0), 0},
             {"decoder.layers.1.linear2.weight", 1 / sqrt(32.0), 0},
             {"decoder.layers.1.norm3.bias", 0, 1}};
    for (size_t i = 0; i < sizeof r / sizeof *r; i++) {
        attn_tensor *t = attn_params_find(ps, r[i].name);
        CHECK(t != NULL, "%s missing", r[i].name);
        if (!t) continue;
        double mx = 0;
        for (int64_t j = 0; j < attn_tensor_numel(t); j++)
            mx = fmax(mx, fabs((double)attn_f32(t)[j]));
        if (r[i].zero)
            CHECK(mx == 0, "%s: max |v| %g, expected zeros", r[i].name, mx);
        else
            CHECK(mx <= r[i].bound && mx > 0.8 * r[i].bound, "%s: max |v| %g, bound %g",
                  r[i].name, mx, r[i].bound);
    }
    attn_tensor *n1 = attn_params_find(ps, "decoder.layers.1.norm1.weight");
    CHECK(n1 && attn_f32(n1)[0] == 1.0f && attn_f32(n1)[7] == 1.0f, "norm1.weight is not ones");
    /* separate projections, GQA and Shaw names */
    attn_mha m;
    attn_mha_config mc = {.embed_dim = 8, .n_heads = 4, .n_kv_heads = 2, .kdim = 5, .vdim = 3,
                          .packed = 1, .pos = ATTN_POS_SHAW, .shaw_clip = 3};
    CHECK_OK(attn_mha_init(&m, ps, "x.", &mc, &rng));
    CHECK(m.q_proj_weight && m.q_proj_weight->shape[0] == 8 && m.q_proj_weight->shape[1] == 8 &&
              m.k_proj_weight && m.k_proj_weight->shape[0] == 4 &&
              m.k_proj_weight->shape[1] == 5 && m.v_proj_weight &&
              m.v_proj_weight->shape[1] == 3 && !m.in_proj_weight && m.in_proj_bias &&
              m.in_proj_bias->shape[0] == 16 && m.rel_k && m.rel_k->shape[0] == 7 &&
              m.rel_k->shape[1] == 2,
          "separate/GQA/Shaw shapes");
    CHECK(attn_params_find(ps, "x.q_proj_weight") && attn_params_find(ps, "x.rel_v"),
          "separate/Shaw names");
out:
    attn_params_free(ps);
    TEST_END();
}

static void test_errors(void) {
    TEST_BEGIN("transformer/error paths");
    attn_params *ps = NULL;
    attn_ctx *ctx = test_ctx_new(ARENA_BYTES, 1, GUARD_BYTES);
    attn_kv_cache cache;
    memset(&cache, 0, sizeof cache);
    CHECK_OK(attn_params_new(&ps));
    if (!ps || !ctx) goto out;
    attn_mha m, bad;
    const attn_mha_config good = {.embed_dim = 8, .n_heads = 2, .packed = 1};
    attn_mha_config c = good;
    c.n_heads = 3;
    CHECK(attn_mha_init(&bad, ps, "e.", &c, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "divisible"),
          "E 8 H 3: %s", attn_last_error());
    c = good, c.n_kv_heads = 3;
    CHECK(attn_mha_init(&bad, ps, "e.", &c, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "n_kv_heads 3"),
          "Hkv 3: %s", attn_last_error());
    c = good, c.dropout = 1.0f;
    CHECK(attn_mha_init(&bad, ps, "e.", &c, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "dropout"),
          "dropout 1: %s", attn_last_error());
    c = good, c.pos = ATTN_POS_SHAW;
    CHECK(attn_mha_init(&bad, ps, "e.", &c, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "shaw_clip"),
          "shaw clip 0: %s", attn_last_error());
    c = good, c.embed_dim = 6, c.n_heads = 2, c.pos = ATTN_POS_ROPE;
    CHECK(attn_mha_init(&bad, ps, "e.", &c, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "even head size"),
          "rope D 3: %s", attn_last_error());
    c = good, c.pos = (attn_pos_kind)9;
    CHECK(attn_mha_init(&bad, ps, "e.", &c, NULL) == ATTN_ERR_INVALID_ARG, "pos 9");
    CHECK(attn_params_count(ps) == 0, "failed inits added %d parameters", attn_params_count(ps));
    attn_block_config bcfg = {.d_model = 8, .n_heads = 2, .d_ff = 0};
    attn_block blk;
    CHECK(attn_block_init(&blk, ps, NULL, &bcfg, NULL) == ATTN_ERR_INVALID_ARG &&
              strstr(attn_last_error(), "d_ff 0"),
          "d_ff 0: %s", attn_last_error());
    bcfg.d_ff = 16;
    CHECK_OK(attn_block_init(&blk, ps, "b.", &bcfg, NULL));
    CHECK_OK(attn_mha_init(&m, ps, "m.", &good, NULL));
    CHECK(attn_mha_init(&bad, ps, "m.", &good, NULL) == ATTN_ERR_INVALID_ARG,
          "duplicate names accepted");

    const int64_t xs[3] = {2, 5, 8};
    attn_tensor *w = (attn_tensor *)1;
    test_expect_fail(ctx,
           !attn_mha_forward(ctx, &m, attn_tensor_new(ctx, ATTN_F32, 3, (const int64_t[3]){2, 5, 6}),
                             NULL, NULL, &w),
           ATTN_ERR_SHAPE, "attn_mha_forward: query [2,5,6]", "query width 6");
    CHECK(w == NULL, "weights set after an error");
    test_expect_fail(ctx, !attn_mha_forward(ctx, &m, attn_tensor_new(ctx, ATTN_I32, 3, xs), NULL, NULL, NULL),
           ATTN_ERR_DTYPE, "query", "i32 query");
    test_expect_fail(ctx,
           !attn_mha_forward(ctx, &m, attn_tensor_new(ctx, ATTN_F32, 3, xs),
                             attn_tensor_new(ctx, ATTN_F32, 3, (const int64_t[3]){3, 4, 8}), NULL,
                             NULL),
           ATTN_ERR_SHAPE, "key [3,4,8]", "memory batch 3");
    test_expect_fail(ctx, !attn_mha_forward(ctx, &m, NULL, NULL, NULL, NULL), ATTN_ERR_INVALID_ARG,
           "is NULL", "NULL query");
    const int32_t kl[2] = {5, 6};
    attn_mha_call call = {.key_lengths = attn_tensor_from(ctx, ATTN_I32, 1,
                                                          (const int64_t[1]){2}, kl)};
    test_expect_fail(ctx, !attn_mha_forward(ctx, &m, attn_tensor_new(ctx, ATTN_F32, 3, xs), NULL, &call, NULL),
           ATTN_ERR_INVALID_ARG, "key_lengths[1] = 6", "key length 6 > S 5");
    call.key_lengths = attn_tensor_new(ctx, ATTN_I32, 1, (const int64_t[1]){3});
    test_expect_fail(ctx, !attn_mha_forward(ctx, &m, attn_tensor_new(ctx, ATTN_F32, 3, xs), NULL, &call, NULL),
           ATTN_ERR_SHAPE, "key_lengths [3]", "key_lengths [3]");
    /* a bias that does not broadcast, a bad pattern: messages name the function */
    call = (attn_mha_call){.bias = attn_tensor_new(ctx, ATTN_F32, 2, (const int64_t[2]){3, 3})};
    test_expect_fail(ctx, !attn_mha_forward(ctx, &m, attn_tensor_new(ctx, ATTN_F32, 3, xs), NULL, &call, NULL),
           ATTN_ERR_SHAPE, "attn_mha_forward: bias [3,3]", "bias [3,3]");
    const attn_sparse_pattern bad_sp = {.kind = ATTN_SPARSE_LOCAL_1D};
    call = (attn_mha_call){.sparse = &bad_sp};
    test_expect_fail(ctx, !attn_mha_forward(ctx, &m, attn_tensor_new(ctx, ATTN_F32, 3, xs), NULL, &call, NULL),
           ATTN_ERR_INVALID_ARG, "attn_mha_forward: sparse pattern", "sparse block 0");
    attn_mha zero;
    memset(&zero, 0, sizeof zero);
    test_expect_fail(ctx,
           !attn_mha_forward(ctx, &zero, attn_tensor_new(ctx, ATTN_F32, 3, xs), NULL, NULL, NULL),
           ATTN_ERR_INVALID_ARG, "attn_mha_forward", "uninitialised module");
    /* the cache */
    CHECK(attn_kv_cache_init(&cache, 1, 2, 2, 0, 4) == ATTN_ERR_INVALID_ARG, "max_len 0");
    CHECK_OK(attn_kv_cache_init(&cache, 1, 2, 2, 6, 4));
    call = (attn_mha_call){.causal = 1, .cache = &cache.layers[0]};
    test_expect_fail(ctx, !attn_mha_forward(ctx, &m, attn_tensor_new(ctx, ATTN_F32, 3, xs), NULL, &call, NULL),
           ATTN_ERR_STATE, "disable gradients", "cache with gradients on");
    attn_ctx_set_grad_enabled(ctx, 0);
    CHECK(attn_mha_forward(ctx, &m, attn_tensor_new(ctx, ATTN_F32, 3, xs), NULL, &call, NULL),
          "5 of 6: %s", attn_ctx_error(ctx));
    attn_ctx_reset(ctx);
    attn_ctx_set_grad_enabled(ctx, 0);
    test_expect_fail(ctx, !attn_mha_forward(ctx, &m, attn_tensor_new(ctx, ATTN_F32, 3, xs), NULL, &call, NULL),
           ATTN_ERR_INVALID_ARG, "room for 10 positions", "cache overflow");
    CHECK(cache.layers[0].len == 5, "a failed call moved len to %lld",
          (long long)cache.layers[0].len);
    attn_ctx_set_grad_enabled(ctx, 1);
    /* blocks */
    test_expect_fail(ctx,
           !attn_block_forward(ctx, &blk, attn_tensor_new(ctx, ATTN_F32, 3, xs),
                               attn_tensor_new(ctx, ATTN_F32, 3, xs), NULL, NULL, NULL),
           ATTN_ERR_INVALID_ARG, "encoder block takes no memory", "memory to an encoder");
out:
    attn_kv_cache_free(&cache);
    attn_params_free(ps);
    attn_ctx_free(ctx);
    TEST_END();
}

/* The AUTO kernel: the reference op below ATTN_FUSED_MIN_KEYS keys, the
 * fused one from there; the fused module's output and input gradient match
 * the reference module's (same parameters) within the fused op's tolerance
 * (tests/test_flash.c: 2e-5 + 1e-4 |ref|). */
static void test_auto_kernel(void) {
    TEST_BEGIN("transformer/auto kernel: reference below 512 keys, fused from 512");
    const int64_t E = 32;
    attn_params *ps = NULL;
    attn_ctx *ctx = test_ctx_new((size_t)256 << 20, 1, GUARD_BYTES);
    CHECK_OK(attn_params_new(&ps));
    attn_rng rng;
    attn_rng_init(&rng, 11);
    attn_mha ma, mr;
    attn_mha_config cfg = {.embed_dim = E, .n_heads = 2, .packed = 1};
    if (ps && ctx) {
        CHECK_OK(attn_mha_init(&ma, ps, "a.", &cfg, &rng));
        cfg.kernel = ATTN_KERNEL_REFERENCE;
        mr = ma;
        mr.cfg.kernel = ATTN_KERNEL_REFERENCE; /* the same parameters */
        for (int64_t T = ATTN_FUSED_MIN_KEYS - 1; T <= ATTN_FUSED_MIN_KEYS && !test__failed_checks;
             T++) {
            const int64_t sh[3] = {1, T, E};
            float *x = malloc(sizeof(float) * (size_t)(T * E));
            float *y0 = NULL, *g0 = NULL;
            if (!x) break;
            test_fill_normal(x, T * E, &rng);
            for (int pass = 0; pass < 2; pass++) {
                attn_ctx_reset(ctx);
                attn_tensor *xt = test_leaf(ctx, 3, sh, x);
                attn_mha_call call = {.causal = 1};
                attn_tensor *y = attn_mha_forward(ctx, pass ? &mr : &ma, xt, NULL, &call, NULL);
                CHECK(y != NULL, "T %lld: %s", (long long)T, attn_ctx_error(ctx));
                if (!y) break;
                const int want = pass ? 2 : T >= ATTN_FUSED_MIN_KEYS ? 1 : 2;
                CHECK(attention_op_used(ctx) == want, "T %lld %s: op %d, expected %d",
                      (long long)T, pass ? "reference" : "auto", attention_op_used(ctx), want);
                CHECK_OK(attn_backward(ctx, attn_sum(ctx, attn_mul(ctx, y, y), ATTN_ALL_AXES, 0)));
                if (!xt->grad) break;
                if (!pass) {
                    y0 = malloc(sizeof(float) * (size_t)(T * E));
                    g0 = malloc(sizeof(float) * (size_t)(T * E));
                    if (y0 && g0) {
                        memcpy(y0, attn_f32(y), sizeof(float) * (size_t)(T * E));
                        memcpy(g0, xt->grad, sizeof(float) * (size_t)(T * E));
                    }
                } else if (y0 && g0) {
                    test_allclose("auto vs reference: output", y0, attn_f32(y), T * E, 2e-5f, 1e-4f);
                    test_allclose("auto vs reference: gradient", g0, xt->grad, T * E, 2e-5f, 1e-4f);
                }
            }
            free(x), free(y0), free(g0);
        }
    }
    attn_ctx_free(ctx);
    attn_params_free(ps);
    TEST_END();
}

void suite_transformer(void) {
    test_auto_kernel();
    test_mha_parity();
    test_block_parity();
    test_finite_differences();
    test_permutation_equivariance();
    test_causal_gradient();
    test_kv_cache();
    test_kv_cache_decoder_block();
    test_dropout_modes();
    test_names_and_init();
    test_errors();
}
