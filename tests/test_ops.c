/* test_ops.c: the generic op suite. For every op of src/core/op_table.h
 * (the table is iterated: an op without a fixture file FAILS) and every case
 * of tests/fixtures/<op>.atfx:
 *   (a) forward against PyTorch's output, tolerance atol/rtol of the table;
 *   (b) backward (attn_backward_from with the fixture's grad_out) against
 *       PyTorch's gradient of every float input, same tolerance;
 *   (c) the reference kernels (use_ref = 1) against the fast ones; (a) and
 *       (b) are also run in reference mode;
 *   (d) central finite differences of loss = sum(out * grad_out), summed in
 *       double, against the analytic gradient, grad_atol/grad_rtol;
 *   (e) guard bytes after every arena allocation (contexts made with
 *       guard_bytes = 64) and no NaN/Inf where PyTorch is finite.
 * Then generic checks: on large ragged sizes, fast vs reference forward,
 * and the output and every gradient of both runs against a double-precision
 * oracle written here (big_oracle) and against finite differences; 1 vs 2
 * threads bitwise, every op's error paths, arena exhaustion in forward and
 * backward, autograd rules, and the fixture reader itself.
 * Every failure names the op, the case, the mode, the input and the element.
 * docs/testing.md explains the oracles and the tolerances.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/internal.h"
#include "../src/core/vmath.h"
#include "fixture.h"
#include "op_cases.h"
#include "test.h"

#define ARENA_BYTES ((size_t)128 << 20)
#define GUARD 64
#define FD_MAX_SAMPLES 64

static attn_ctx *new_ctx(size_t arena, int n_threads) {
    attn_ctx_config cfg = {arena, n_threads, 0, GUARD};
    attn_ctx *ctx = NULL;
    attn_status st = attn_ctx_new(&ctx, &cfg);
    CHECK(st == ATTN_OK, "attn_ctx_new(%zu bytes): %s", arena, attn_last_error());
    return ctx;
}

/* A deterministic generator for test data (splitmix64). */
static uint64_t mix_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double mix_uniform(uint64_t *s) { return (double)(mix_next(s) >> 11) * 0x1.0p-53; }

/* ---- tensors as flat float arrays -------------------------------------------- */

/* Copies the f32 tensor t (any strides) into dst in logical row-major order. */
static void gather(const attn_tensor *t, float *dst) {
    int64_t sh[4] = {1, 1, 1, 1}, st[4] = {0, 0, 0, 0};
    int pad = 4 - t->ndim;
    for (int d = 0; d < t->ndim; d++) {
        sh[pad + d] = t->shape[d];
        st[pad + d] = t->stride[d];
    }
    const float *src = attn_f32(t);
    int64_t lin = 0;
    for (int64_t a = 0; a < sh[0]; a++)
        for (int64_t b = 0; b < sh[1]; b++)
            for (int64_t c = 0; c < sh[2]; c++)
                for (int64_t d = 0; d < sh[3]; d++)
                    dst[lin++] = src[a * st[0] + b * st[1] + c * st[2] + d * st[3]];
}

/* "[i,j,k]" of linear index lin in a row-major tensor of the given shape. */
static const char *index_str(int ndim, const int64_t *shape, int64_t lin, char *buf, size_t n) {
    int64_t idx[ATFX_MAX_DIMS];
    for (int d = ndim - 1; d >= 0; d--) {
        idx[d] = shape[d] ? lin % shape[d] : 0;
        lin = shape[d] ? lin / shape[d] : 0;
    }
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? ",%lld" : "%lld", (long long)idx[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

/* |got - ref| <= atol + rtol |ref| elementwise. On failure reports the worst
 * element (tag names op, case, mode; what names the check and the tensor)
 * and how many elements failed; a non-finite value where ref is finite is
 * reported first, as its own failure. Returns 1 if all close. */
static int compare_at(const char *file, int line, const char *tag, const char *what,
                      const float *got, const float *ref, int ndim, const int64_t *shape,
                      int64_t n, float atol, float rtol) {
    char ib[96];
    for (int64_t i = 0; i < n; i++)
        if (isfinite(ref[i]) && !isfinite(got[i])) {
            test__fail(file, line, "%s: %s: element %lld %s is %g where the reference is %.9g "
                       "(non-finite output)", tag, what, (long long)i,
                       index_str(ndim, shape, i, ib, sizeof ib), (double)got[i], (double)ref[i]);
            return 0;
        }
    int64_t worst = -1, bad = 0;
    double worst_excess = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i], excess;
        if (!isfinite(r) || !isfinite(g)) {
            if (g == r || (isnan(g) && isnan(r))) continue;
            excess = INFINITY;
        } else {
            excess = fabs(g - r) - ((double)atol + (double)rtol * fabs(r));
        }
        if (excess > 0) {
            bad++;
            if (worst < 0 || excess > worst_excess) {
                worst = i;
                worst_excess = excess;
            }
        }
    }
    if (worst < 0) {
        test__pass();
        return 1;
    }
    test__fail(file, line,
               "%s: %s: element %lld %s of %lld: got %.9g, expected %.9g (|diff| %.3g > atol %.3g + "
               "rtol %.3g * |ref|); %lld element(s) out of tolerance",
               tag, what, (long long)worst, index_str(ndim, shape, worst, ib, sizeof ib), (long long)n,
               (double)got[worst], (double)ref[worst], fabs((double)got[worst] - (double)ref[worst]),
               (double)atol, (double)rtol, (long long)bad);
    return 0;
}

/* reported at the caller's line */
#define compare(...) compare_at(__FILE__, __LINE__, __VA_ARGS__)

/* ---- running one case ------------------------------------------------------------ */

typedef struct result {
    int ndim;
    int64_t shape[ATTN_MAX_DIMS];
    int64_t n_out;
    float *out;
    float *grad_out; /* the upstream gradient used (fixture's, or generated) */
    int n_in;
    char names[OPC_MAX_INPUTS][32];
    int ndims[OPC_MAX_INPUTS];
    int64_t shapes[OPC_MAX_INPUTS][ATTN_MAX_DIMS];
    int64_t numel[OPC_MAX_INPUTS];
    float *grad[OPC_MAX_INPUTS]; /* NULL for integer inputs */
} result;

static void result_free(result *r) {
    free(r->out);
    free(r->grad_out);
    for (int i = 0; i < OPC_MAX_INPUTS; i++) free(r->grad[i]);
    memset(r, 0, sizeof *r);
}

static op_case case_init(const atfx_file *fx, int k, attn_ctx *ctx) {
    op_case c;
    memset(&c, 0, sizeof c);
    c.fx = fx;
    c.k = k;
    c.ctx = ctx;
    c.pert_input = -1;
    return c;
}

/* Builds case k in ctx (fast or reference kernels), runs backward from the
 * fixture's "c<k>.grad_out" (or a generated one when absent) and collects the
 * output and the gradient of every float input. Guard bytes are checked after
 * the forward and after the backward. Returns 0, or -1 after reporting. */
static int execute(attn_ctx *ctx, const op_case_entry *e, const atfx_file *fx, int k, int use_ref,
                   const char *tag, result *r) {
    memset(r, 0, sizeof *r);
    attn_ctx_reset(ctx);
    attn_ctx_set_use_ref(ctx, use_ref);
    attn_ctx_set_grad_enabled(ctx, 1);
    op_case c = case_init(fx, k, ctx);
    if (e->build(&c) < 0) {
        test__fail(__FILE__, __LINE__, "%s: malformed fixture: %s", tag, c.err);
        return -1;
    }
    if (!c.out) {
        test__fail(__FILE__, __LINE__, "%s: the op failed: %s: %s", tag,
                   attn_status_str(attn_ctx_status(ctx)), attn_ctx_error(ctx));
        return -1;
    }
    if (attn_ctx_check_guards(ctx) != ATTN_OK) {
        test__fail(__FILE__, __LINE__, "%s: forward: %s", tag, attn_last_error());
        return -1;
    }
    if (c.out->dtype != ATTN_F32) {
        test__fail(__FILE__, __LINE__, "%s: output dtype %s, expected f32", tag,
                   attn_dtype_name(c.out->dtype));
        return -1;
    }
    r->ndim = c.out->ndim;
    memcpy(r->shape, c.out->shape, sizeof r->shape);
    r->n_out = attn_tensor_numel(c.out);
    r->out = malloc(sizeof(float) * (size_t)(r->n_out ? r->n_out : 1));
    r->grad_out = malloc(sizeof(float) * (size_t)(r->n_out ? r->n_out : 1));
    if (!r->out || !r->grad_out) {
        test__fail(__FILE__, __LINE__, "%s: out of memory in the test", tag);
        return -1;
    }
    gather(c.out, r->out);
    const atfx_tensor *go = atfx_findf(fx, "c%d.grad_out", k);
    if (go && (go->dtype != ATTN_F32 || go->numel != r->n_out)) {
        test__fail(__FILE__, __LINE__, "%s: grad_out has %lld elements, the output %lld", tag,
                   (long long)go->numel, (long long)r->n_out);
        return -1;
    }
    uint64_t s = 0x5EEDull + (uint64_t)k;
    for (int64_t i = 0; i < r->n_out; i++)
        r->grad_out[i] = go ? atfx_f32(go)[i] : (float)(2.0 * mix_uniform(&s) - 1.0);

    r->n_in = c.n_inputs;
    int identity = -1; /* the op returned one of its inputs unchanged (dropout p = 0) */
    for (int i = 0; i < c.n_inputs; i++) {
        snprintf(r->names[i], sizeof r->names[i], "%s", c.names[i]);
        r->ndims[i] = c.leaves[i]->ndim;
        memcpy(r->shapes[i], c.leaves[i]->shape, sizeof r->shapes[i]);
        r->numel[i] = attn_tensor_numel(c.leaves[i]);
        if (c.out == c.leaves[i]) identity = i;
    }
    if (c.out->node < 0 && identity < 0) {
        test__fail(__FILE__, __LINE__, "%s: the output was not recorded on the tape", tag);
        return -1;
    }
    if (identity < 0) {
        attn_status st = attn_backward_from(ctx, c.out, r->grad_out);
        if (st != ATTN_OK) {
            test__fail(__FILE__, __LINE__, "%s: backward failed: %s: %s", tag, attn_status_str(st),
                       attn_ctx_error(ctx));
            return -1;
        }
        if (attn_ctx_check_guards(ctx) != ATTN_OK) {
            test__fail(__FILE__, __LINE__, "%s: backward: %s", tag, attn_last_error());
            return -1;
        }
    }
    for (int i = 0; i < c.n_inputs; i++) {
        if (c.leaves[i]->dtype != ATTN_F32) {
            if (c.leaves[i]->grad)
                test__fail(__FILE__, __LINE__, "%s: integer input '%s' received a gradient", tag,
                           c.names[i]);
            continue;
        }
        r->grad[i] = calloc((size_t)(r->numel[i] ? r->numel[i] : 1), sizeof(float));
        if (!r->grad[i]) return -1;
        /* a gradient never reached (NULL) is zero */
        if (i == identity)
            memcpy(r->grad[i], r->grad_out, sizeof(float) * (size_t)r->n_out);
        else if (c.leaves[i]->grad)
            memcpy(r->grad[i], c.leaves[i]->grad, sizeof(float) * (size_t)r->numel[i]);
    }
    return 0;
}

/* loss = sum(out * g) in double, with input `input` element `elem` set to
 * `value`; gradients off, fast kernels. Returns 0, or -1 after reporting. */
static int eval_loss(attn_ctx *ctx, const op_case_entry *e, const atfx_file *fx, int k, int input,
                     int64_t elem, float value, const float *g, int64_t n_out, const char *tag,
                     double *loss) {
    attn_ctx_reset(ctx);
    attn_ctx_set_use_ref(ctx, 0);
    attn_ctx_set_grad_enabled(ctx, 0);
    op_case c = case_init(fx, k, ctx);
    c.pert_input = input;
    c.pert_elem = elem;
    c.pert_value = value;
    int rc = e->build(&c);
    attn_ctx_set_grad_enabled(ctx, 1);
    if (rc < 0 || !c.out || attn_tensor_numel(c.out) != n_out) {
        test__fail(__FILE__, __LINE__, "%s: finite differences: rebuilding failed: %s",
                   tag, c.err[0] ? c.err : attn_ctx_error(ctx));
        return -1;
    }
    float *o = malloc(sizeof(float) * (size_t)(n_out ? n_out : 1));
    if (!o) return -1;
    gather(c.out, o);
    double acc = 0.0;
    for (int64_t i = 0; i < n_out; i++)
        if (g[i] != 0.0f) acc += (double)o[i] * (double)g[i];
    free(o);
    *loss = acc;
    return 0;
}

/* The finite-difference step of each op. Ops linear in each input (their
 * truncation error is zero) take a large step, which shrinks the float32
 * rounding term ~ eps |out| / h; smooth nonlinear ops take 1e-2: truncation
 * h^2/6 |f'''| stays below 1e-3 of |f'| over the fixture's input ranges (exp
 * on [-3,3], log on [0.5,4], divisors |b| >= 0.5), while rounding stays near
 * 1e-5. relu fixtures keep |x| >= 0.05 so no probe crosses the kink. */
static float fd_step(const char *op) {
    static const char *linear[] = {"view", "contiguous", "concat", "matmul", "bmm", "linear",
                                   "add", "sub", "mul", "scale", "bias_add", "sum", "mean",
                                   "embedding", "dropout", "conv2d", "conv1d",
                                   "conv_transpose2d", "avg_pool2d"};
    for (size_t i = 0; i < sizeof linear / sizeof linear[0]; i++)
        if (strcmp(op, linear[i]) == 0) return 0.1f;
    return 1e-2f;
}

/* (d): probes up to FD_MAX_SAMPLES elements of every float input (all of
 * them for small inputs, else a fixed pseudo-random sample that includes the
 * first and the last), and reports the worst mismatch of each input. */
static void finite_diff(attn_ctx *ctx, const op_case_entry *e, const atfx_file *fx, int k,
                        const char *tag, const result *r, float ga, float gr) {
    const float h = fd_step(e->name);
    for (int i = 0; i < r->n_in; i++) {
        if (!r->grad[i]) continue;
        const atfx_tensor *src = atfx_findf(fx, "c%d.%s", k, r->names[i]);
        if (!src) continue;
        int64_t n = r->numel[i];
        int64_t idx[FD_MAX_SAMPLES];
        int m = 0;
        if (n <= FD_MAX_SAMPLES) {
            for (int64_t j = 0; j < n; j++) idx[m++] = j;
        } else {
            uint64_t s = 0xFDull * 1000003u + (uint64_t)k * 131u + (uint64_t)i;
            idx[m++] = 0;
            idx[m++] = n - 1;
            while (m < FD_MAX_SAMPLES) idx[m++] = (int64_t)(mix_next(&s) % (uint64_t)n);
        }
        int64_t worst = -1, bad = 0;
        double worst_excess = 0, worst_fd = 0;
        for (int j = 0; j < m; j++) {
            float x0 = atfx_f32(src)[idx[j]];
            if (!isfinite(x0)) continue; /* e.g. a -inf mask entry: no difference quotient */
            float xp = x0 + h, xm = x0 - h;
            double lp, lm;
            if (eval_loss(ctx, e, fx, k, i, idx[j], xp, r->grad_out, r->n_out, tag, &lp) ||
                eval_loss(ctx, e, fx, k, i, idx[j], xm, r->grad_out, r->n_out, tag, &lm))
                return;
            double fd = (lp - lm) / ((double)xp - (double)xm);
            double an = r->grad[i][idx[j]];
            double excess = fabs(an - fd) - ((double)ga + (double)gr * fabs(fd));
            if (!isfinite(fd) || !isfinite(an)) excess = INFINITY;
            if (excess > 0) {
                bad++;
                if (worst < 0 || excess > worst_excess) {
                    worst = idx[j];
                    worst_excess = excess;
                    worst_fd = fd;
                }
            }
        }
        if (worst >= 0) {
            char ib[96];
            test__fail(__FILE__, __LINE__,
                       "%s: (d) finite differences: input '%s' element %lld %s: analytic %.9g, "
                       "central difference (h %g) %.9g (> grad_atol %g + grad_rtol %g * |fd|); "
                       "%lld of %d probed elements out of tolerance",
                       tag, r->names[i], (long long)worst,
                       index_str(r->ndims[i], r->shapes[i], worst, ib, sizeof ib),
                       (double)r->grad[i][worst], (double)h, worst_fd, (double)ga, (double)gr,
                       (long long)bad, m);
        } else {
            test__pass();
        }
    }
}

/* (a) and (b) of one run against the fixture. */
static void check_against_torch(const char *tag, const atfx_file *fx, int k, const result *r,
                                float atol, float rtol) {
    char what[128], sa[96], sb[96];
    const atfx_tensor *out = atfx_findf(fx, "c%d.out", k);
    if (!out) {
        test__fail(__FILE__, __LINE__, "%s: fixture has no c%d.out", tag, k);
        return;
    }
    int same = out->ndim == r->ndim && out->dtype == ATTN_F32;
    for (int d = 0; same && d < r->ndim; d++) same = out->shape[d] == r->shape[d];
    if (!same) {
        attn_tensor tmp = {.ndim = r->ndim};
        memcpy(tmp.shape, r->shape, sizeof tmp.shape);
        test__fail(__FILE__, __LINE__, "%s: (a) forward: output shape %s, PyTorch's %s", tag,
                   attn_shape_str(&tmp, sa, sizeof sa), atfx_shape_str(out, sb, sizeof sb));
        return;
    }
    compare(tag, "(a) forward vs PyTorch", r->out, atfx_f32(out), r->ndim, r->shape, r->n_out, atol,
            rtol);
    for (int i = 0; i < r->n_in; i++) {
        if (!r->grad[i]) continue;
        const atfx_tensor *g = atfx_findf(fx, "c%d.grad.%s", k, r->names[i]);
        if (!g || g->numel != r->numel[i]) {
            test__fail(__FILE__, __LINE__, "%s: fixture has no gradient c%d.grad.%s of %lld elements",
                       tag, k, r->names[i], (long long)r->numel[i]);
            continue;
        }
        snprintf(what, sizeof what, "(b) backward vs PyTorch: gradient of input '%s'", r->names[i]);
        compare(tag, what, r->grad[i], atfx_f32(g), r->ndims[i], r->shapes[i], r->numel[i], atol,
                rtol);
    }
}

static void run_fixture_case(attn_ctx *ctx, int op, const op_case_entry *e, const atfx_file *fx,
                             int k) {
    const attn__op_info *info = &attn__ops[op];
    char label[160], tname[256], tag[320];
    atfx_text(atfx_findf(fx, "c%d.label", k), label, sizeof label);
    snprintf(tname, sizeof tname, "ops/%s case %d (%s)", e->name, k, label);
    TEST_BEGIN(tname);
    result rf, rr;
    snprintf(tag, sizeof tag, "op %s case %d '%s' [fast]", e->name, k, label);
    int okf = execute(ctx, e, fx, k, 0, tag, &rf) == 0;
    if (okf) check_against_torch(tag, fx, k, &rf, info->atol, info->rtol);
    snprintf(tag, sizeof tag, "op %s case %d '%s' [ref]", e->name, k, label);
    int okr = execute(ctx, e, fx, k, 1, tag, &rr) == 0;
    if (okr) check_against_torch(tag, fx, k, &rr, info->atol, info->rtol);
    if (okf && okr && rf.n_out == rr.n_out) {
        snprintf(tag, sizeof tag, "op %s case %d '%s'", e->name, k, label);
        compare(tag, "(c) fast vs reference kernel output", rf.out, rr.out, rf.ndim, rf.shape,
                rf.n_out, info->atol, info->rtol);
    }
    if (okf) {
        snprintf(tag, sizeof tag, "op %s case %d '%s'", e->name, k, label);
        finite_diff(ctx, e, fx, k, tag, &rf, info->grad_atol, info->grad_rtol);
    }
    result_free(&rf);
    result_free(&rr);
    attn_ctx_set_use_ref(ctx, 0);
    TEST_END();
}

/* Arena exhaustion with case 0 of the op: an arena that holds the inputs
 * but not the op's first allocation must give ATTN_ERR_OOM with "needed" in
 * the message; then one that holds the forward but not the backward. */
static void run_oom(const op_case_entry *e, const atfx_file *fx) {
    char tname[96];
    snprintf(tname, sizeof tname, "ops/%s arena exhaustion", e->name);
    TEST_BEGIN(tname);
    attn_ctx *big = new_ctx(ARENA_BYTES, 0);
    if (!big) {
        TEST_END();
        return;
    }
    op_case c = case_init(fx, 0, big);
    if (e->build(&c) == 0 && c.out) {
        size_t inputs = c.arena_after_inputs, fwd = attn_ctx_arena_used(big);
        int identity = c.out->node < 0;
        attn_ctx *small = new_ctx(inputs + 64, 0);
        if (small) {
            op_case s = case_init(fx, 0, small);
            int rc = e->build(&s);
            CHECK(rc == 0 && s.out == NULL && attn_ctx_status(small) == ATTN_ERR_OOM &&
                      strstr(attn_ctx_error(small), "needed"),
                  "op %s case 0 in an arena of %zu bytes (inputs use %zu): expected NULL and "
                  "ATTN_ERR_OOM with \"needed\" in the message, got %s, status '%s': %s",
                  e->name, inputs + 64, inputs, s.out ? "a tensor" : "NULL",
                  attn_status_str(attn_ctx_status(small)), attn_ctx_error(small));
            attn_ctx_free(small);
        }
        small = identity ? NULL : new_ctx(fwd + 64, 0);
        if (small) {
            op_case s = case_init(fx, 0, small);
            int rc = e->build(&s);
            const atfx_tensor *go = atfx_find(fx, "c0.grad_out");
            CHECK(rc == 0 && s.out && go, "op %s case 0: forward failed in an arena of %zu bytes "
                  "(it used %zu before): %s", e->name, fwd + 64, fwd, attn_ctx_error(small));
            if (rc == 0 && s.out && go) {
                attn_status st = attn_backward_from(small, s.out, atfx_f32(go));
                CHECK(st == ATTN_ERR_OOM && strstr(attn_ctx_error(small), "needed"),
                      "op %s case 0: backward in a full arena: expected ATTN_ERR_OOM with "
                      "\"needed\", got '%s': %s", e->name, attn_status_str(st),
                      attn_ctx_error(small));
            }
            attn_ctx_free(small);
        }
    } else {
        CHECK(0, "op %s case 0 failed: %s %s", e->name, c.err, attn_ctx_error(big));
    }
    attn_ctx_free(big);
    TEST_END();
}

static void run_fixtures(void) {
    attn_ctx *ctx = new_ctx(ARENA_BYTES, 0);
    if (!ctx) return;
    TEST_BEGIN("ops/the case table matches the op table");
    CHECK(op_cases_count == ATTN_OP_COUNT, "op_cases has %d rows, the op table %d", op_cases_count,
          (int)ATTN_OP_COUNT);
    for (int i = 0; i < op_cases_count && i < ATTN_OP_COUNT; i++)
        CHECK(strcmp(op_cases[i].name, attn__ops[i].name) == 0, "row %d: case '%s', op '%s'", i,
              op_cases[i].name, attn__ops[i].name);
    TEST_END();
    for (int op = 0; op < ATTN_OP_COUNT && op < op_cases_count; op++) {
        const op_case_entry *e = &op_cases[op];
        char path[1024], err[512], tname[96];
        snprintf(path, sizeof path, "%s/%s.atfx", test_fixture_dir(), e->name);
        atfx_file *fx = NULL;
        attn_status st = atfx_load(path, &fx, err, sizeof err);
        snprintf(tname, sizeof tname, "ops/%s fixture", e->name);
        TEST_BEGIN(tname);
        int n_cases = 0;
        if (st != ATTN_OK) {
            CHECK(0, "op %s: no usable fixture (run `make fixtures`): %s", e->name, err);
        } else {
            char opname[64];
            const atfx_tensor *nc = atfx_find(fx, "n_cases");
            atfx_text(atfx_find(fx, "op"), opname, sizeof opname);
            CHECK(strcmp(opname, e->name) == 0, "%s: fixture is for op '%s'", path, opname);
            if (nc && nc->dtype == ATTN_I32 && nc->numel == 1) n_cases = atfx_i32(nc)[0];
            CHECK(n_cases >= 1, "%s: no cases (n_cases missing or < 1)", path);
        }
        TEST_END();
        for (int k = 0; k < n_cases; k++) run_fixture_case(ctx, op, e, fx, k);
        if (n_cases) run_oom(e, fx);
        atfx_free(fx);
    }
    attn_ctx_free(ctx);
}

/* ---- error paths ------------------------------------------------------------------- */

static void run_errors(void) {
    attn_ctx *ctx = new_ctx((size_t)1 << 20, 0);
    if (!ctx) return;
    for (int op = 0; op < op_cases_count; op++) {
        char tname[96];
        snprintf(tname, sizeof tname, "ops/%s error paths", op_cases[op].name);
        TEST_BEGIN(tname);
        attn_ctx_reset(ctx);
        op_cases[op].errors(ctx);
        CHECK(attn_ctx_check_guards(ctx) == ATTN_OK, "%s", attn_last_error());
        TEST_END();
    }
    attn_ctx_free(ctx);
}

/* ---- synthetic large cases: fast vs reference, 1 vs 2 threads ------------------------ */

/* An in-memory fixture with one case (k = 0) of random inputs, read by the
 * same builders as the PyTorch fixtures. */
static atfx_tensor *syn_add(atfx_file *fx, const char *name, attn_dtype dt, int ndim,
                            const int64_t *shape) {
    atfx_tensor *nt = realloc(fx->tensors, sizeof *nt * (size_t)(fx->n + 1));
    if (!nt) return NULL;
    fx->tensors = nt;
    atfx_tensor *t = &nt[fx->n];
    memset(t, 0, sizeof *t);
    t->numel = 1;
    for (int d = 0; d < ndim; d++) t->numel *= shape[d];
    t->name = malloc(strlen(name) + 1);
    t->data = calloc((size_t)(t->numel ? t->numel : 1), 4);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return NULL;
    }
    fx->n++;
    strcpy(t->name, name);
    t->dtype = dt;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    return t;
}

typedef struct syn {
    atfx_file fx;
    uint64_t s;
} syn;

static float *syn_f32(syn *y, const char *name, int ndim, const int64_t *shape, double lo,
                      double hi) {
    char full[96];
    snprintf(full, sizeof full, "c0.%s", name);
    atfx_tensor *t = syn_add(&y->fx, full, ATTN_F32, ndim, shape);
    if (!t) return NULL;
    float *d = t->data;
    for (int64_t i = 0; i < t->numel; i++) d[i] = (float)(lo + (hi - lo) * mix_uniform(&y->s));
    return d;
}
static int32_t *syn_i32(syn *y, const char *name, int ndim, const int64_t *shape, int32_t lo,
                        int32_t hi) {
    char full[96];
    snprintf(full, sizeof full, "c0.%s", name);
    atfx_tensor *t = syn_add(&y->fx, full, ATTN_I32, ndim, shape);
    if (!t) return NULL;
    int32_t *d = t->data;
    for (int64_t i = 0; i < t->numel; i++)
        d[i] = lo + (int32_t)(mix_next(&y->s) % (uint64_t)(hi - lo));
    return d;
}
static void syn_attr_i(syn *y, const char *name, int32_t v) {
    char full[64];
    snprintf(full, sizeof full, "attr.%s", name);
    int32_t *d = syn_i32(y, full, 0, NULL, 0, 1);
    if (d) d[0] = v;
}
static void syn_attr_f(syn *y, const char *name, float v) {
    char full[64];
    snprintf(full, sizeof full, "attr.%s", name);
    float *d = syn_f32(y, full, 0, NULL, 0, 0);
    if (d) d[0] = v;
}
static void syn_free(syn *y) {
    for (int i = 0; i < y->fx.n; i++) {
        free(y->fx.tensors[i].name);
        free(y->fx.tensors[i].data);
    }
    free(y->fx.tensors);
    memset(y, 0, sizeof *y);
}

#define SH(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]) { __VA_ARGS__ }

/* Fills a synthetic case for op `name` at a large ragged size. `variant`
 * selects the axis of sum/mean (0: 1, 1: 0, 2: all) and the GELU form
 * (1: tanh); variant 9 is the thread test's size (256 rows instead of 65).
 * Returns -1 if the op has no large case. */
static int make_big(syn *y, const char *name, int variant) {
    memset(y, 0, sizeof *y);
    y->fx.version = ATFX_VERSION;
    y->s = 0xB16ull + (uint64_t)variant;
    const int64_t R = variant == 9 ? 256 : 65, C = 1000;
    if (!strcmp(name, "matmul")) {
        syn_f32(y, "a", SH(65, 300), -1, 1);
        syn_f32(y, "b", SH(300, 129), -1, 1);
    } else if (!strcmp(name, "bmm")) {
        syn_f32(y, "a", SH(2, 3, 65, 33), -1, 1);
        syn_f32(y, "b", SH(2, 3, 47, 33), -1, 1);
        syn_attr_i(y, "trans_a", 0);
        syn_attr_i(y, "trans_b", 1);
    } else if (!strcmp(name, "linear")) {
        syn_f32(y, "x", SH(65, 300), -1, 1);
        syn_f32(y, "w", SH(129, 300), -1, 1);
        syn_f32(y, "b", SH(129), -1, 1);
    } else if (!strcmp(name, "add") || !strcmp(name, "sub") || !strcmp(name, "mul")) {
        syn_f32(y, "a", SH(R, C), -1, 1);
        syn_f32(y, "b", SH(C), -1, 1);
    } else if (!strcmp(name, "div")) {
        syn_f32(y, "a", SH(R, C), -1, 1);
        syn_f32(y, "b", SH(R, 1), 0.5, 2);
    } else if (!strcmp(name, "scale")) {
        syn_f32(y, "x", SH(R, C), -1, 1);
        syn_attr_f(y, "s", -1.75f);
    } else if (!strcmp(name, "bias_add")) {
        syn_f32(y, "x", SH(R, C), -1, 1);
        syn_f32(y, "b", SH(C), -1, 1);
    } else if (!strcmp(name, "sum") || !strcmp(name, "mean")) {
        syn_f32(y, "x", SH(R, C), -1, 1);
        syn_attr_i(y, "axis", variant == 1 ? 0 : variant == 2 ? ATTN_ALL_AXES : 1);
        syn_attr_i(y, "keepdim", 0);
    } else if (!strcmp(name, "exp") || !strcmp(name, "tanh") || !strcmp(name, "sigmoid") ||
               !strcmp(name, "relu")) {
        syn_f32(y, "x", SH(R, C + 7), -3, 3);
    } else if (!strcmp(name, "log")) {
        syn_f32(y, "x", SH(R, C + 7), 0.5, 4);
    } else if (!strcmp(name, "gelu")) {
        syn_f32(y, "x", SH(R, C + 7), -4, 4);
        syn_attr_i(y, "tanh_approx", variant == 1);
    } else if (!strcmp(name, "softmax") || !strcmp(name, "log_softmax")) {
        syn_f32(y, "x", SH(R, C), -4, 4);
        float *m = syn_f32(y, "mask", SH(C), -1, 1);
        if (m && !strcmp(name, "softmax"))
            for (int j = 0; j < C; j += 3) m[j] = -INFINITY;
    } else if (!strcmp(name, "cross_entropy")) {
        syn_f32(y, "logits", SH(65, C), -4, 4);
        int32_t *t = syn_i32(y, "targets", SH(65), 0, (int32_t)C);
        if (t) t[5] = 7;
        syn_attr_i(y, "ignore_index", 7);
        syn_attr_f(y, "label_smoothing", 0.1f);
    } else if (!strcmp(name, "layernorm")) {
        syn_f32(y, "x", SH(R, C), -2, 3);
        syn_f32(y, "gamma", SH(C), 0.5, 1.5);
        syn_f32(y, "beta", SH(C), -1, 1);
        syn_attr_f(y, "eps", 1e-5f);
    } else if (!strcmp(name, "embedding")) {
        syn_f32(y, "weight", SH(C, 65), -1, 1);
        syn_i32(y, "ids", SH(3, 101), 0, (int32_t)C);
        /* an upstream gradient of multiples of 1/64, as in the fixtures: the
         * backward's sums over repeated ids are then exact in float32, as
         * the tolerance 0 of embedding requires */
        float *g = syn_f32(y, "grad_out", SH(3, 101, 65), -1, 1);
        for (int64_t i = 0; g && i < 3 * 101 * 65; i++) g[i] = roundf(g[i] * 64.0f) / 64.0f;
    } else if (!strcmp(name, "dropout")) {
        syn_f32(y, "x", SH(R, C), -1, 1);
        syn_attr_f(y, "p", 0.3f);
        int32_t *s = syn_i32(y, "attr.seed", SH(2), 0, 1 << 30);
        int32_t *o = syn_i32(y, "attr.offset", SH(2), 0, 1 << 20);
        if (o) o[1] = 0;
        (void)s;
    } else if (!strcmp(name, "conv2d") && variant == 0) {
        /* im2col + GEMM against the direct sum: odd sizes, stride 2, padding 2 */
        syn_f32(y, "x", SH(2, 7, 33, 31), -1, 1);
        syn_f32(y, "w", SH(13, 7, 3, 5), -1, 1);
        syn_f32(y, "b", SH(13), -1, 1);
        syn_attr_i(y, "stride", 2);
        syn_attr_i(y, "padding", 2);
    } else if (!strcmp(name, "conv2d") && variant == 1) {
        /* 5 images in chunks of 3 + 2 (src/ops/conv.c, cv_chunk:
         * (K + O/G) P = 146 * 576 floats per image, 2^18 per chunk) */
        syn_f32(y, "x", SH(5, 16, 24, 24), 0, 1); /* positive: see case 2 */
        syn_f32(y, "grad_out", SH(5, 2, 24, 24), 0, 1);
        syn_f32(y, "w", SH(2, 16, 3, 3), -1, 1);
        syn_attr_i(y, "padding", 1);
    } else if (!strcmp(name, "conv2d") && variant == 3) {
        /* 1x1 on a map of >= 1024 positions: the direct (no im2col) path */
        syn_f32(y, "x", SH(2, 9, 33, 35), -1, 1);
        syn_f32(y, "w", SH(7, 9, 1, 1), -1, 1);
        syn_f32(y, "b", SH(7), -1, 1);
    } else if (!strcmp(name, "conv2d") && variant == 4) {
        /* depthwise (the direct kernel), 5x3 kernel, stride 2, padding 2 */
        syn_f32(y, "x", SH(3, 17, 33, 31), -1, 1);
        syn_f32(y, "w", SH(17, 1, 5, 3), -1, 1);
        syn_f32(y, "b", SH(17), -1, 1);
        syn_attr_i(y, "stride", 2);
        syn_attr_i(y, "padding", 2);
        syn_attr_i(y, "groups", 17);
    } else if (!strcmp(name, "conv2d") && variant == 2) {
        /* groups 2, 9 images in chunks of 2 (19 * 6162 floats per image), the last alone.
         * x and the upstream gradient are positive: dw sums 55,000 products,
         * which with random signs cancel to 1e-5 of their magnitude and
         * leave float32's rounding of the sum above rtol |dw| (both kernels
         * agree bit for bit; the oracle is exact) */
        syn_f32(y, "x", SH(9, 4, 78, 79), 0, 1);
        syn_f32(y, "grad_out", SH(9, 2, 78, 79), 0, 1);
        syn_f32(y, "w", SH(2, 2, 3, 3), -1, 1);
        syn_f32(y, "b", SH(2), -1, 1);
        syn_attr_i(y, "padding", 1);
        syn_attr_i(y, "groups", 2);
    } else if (!strcmp(name, "conv1d")) {
        syn_f32(y, "x", SH(3, 17, 301), -1, 1);
        syn_f32(y, "w", SH(19, 17, 3), -1, 1);
        syn_attr_i(y, "dilation", 4);
        syn_attr_i(y, "causal", 1);
    } else if (!strcmp(name, "conv_transpose2d") && variant == 1) {
        /* 12 images in chunks of 2 (18 * 6162 floats per image) */
        syn_f32(y, "x", SH(12, 2, 78, 79), 0, 1); /* positive: see conv2d's case 2 */
        syn_f32(y, "grad_out", SH(12, 1, 156, 158), 0, 1);
        syn_f32(y, "w", SH(2, 1, 4, 4), -1, 1);
        syn_attr_i(y, "stride", 2);
        syn_attr_i(y, "padding", 1);
    } else if (!strcmp(name, "conv_transpose2d")) {
        syn_f32(y, "x", SH(2, 9, 17, 15), -1, 1);
        syn_f32(y, "w", SH(9, 5, 4, 4), -1, 1);
        syn_f32(y, "b", SH(5), -1, 1);
        syn_attr_i(y, "stride", 2);
        syn_attr_i(y, "padding", 1);
    } else if (!strcmp(name, "max_pool2d") || !strcmp(name, "avg_pool2d")) {
        float *x = syn_f32(y, "x", SH(3, 5, 37, 41), -1, 1);
        /* max: distinct values 0.025 apart (a permutation), so no finite-
         * difference probe (step 0.01) changes which element is the maximum */
        const int64_t n = 3 * 5 * 37 * 41;
        for (int64_t i = 0; x && !strcmp(name, "max_pool2d") && i < n; i++)
            x[i] = (float)((i * 7919) % n) * 0.025f - 200.0f;
        syn_attr_i(y, "kernel", 3);
        syn_attr_i(y, "stride", 2);
        syn_attr_i(y, "padding", 1);
    } else if (!strcmp(name, "batchnorm")) {
        syn_f32(y, "x", SH(5, 13, 17, 19), -2, 3);
        syn_f32(y, "gamma", SH(13), 0.5, 1.5);
        syn_f32(y, "beta", SH(13), -1, 1);
        syn_attr_f(y, "eps", 1e-5f);
        syn_attr_f(y, "momentum", 0.1f);
    } else if (!strcmp(name, "concat")) {
        syn_f32(y, "x0", SH(R, 333), -1, 1);
        syn_f32(y, "x1", SH(R, 667), -1, 1);
        syn_attr_i(y, "axis", 1);
    } else {
        return -1;
    }
    syn_i32(y, "n_cases", SH(1), 1, 2);
    return 0;
}

/* ---- the large cases' oracle: outputs and gradients in double -------------------- */

/* The large cases are judged against a plain double-precision computation of
 * the output and of every input gradient written here, from the definitions
 * of include/attn/ops.h: code that shares nothing with the library's
 * forward, reference or backward kernels (the op table has one backward per
 * op, used by both the fast and the reference runs). Results are rounded once
 * to float32 and compared with the op's atol/rtol, the rule of the PyTorch
 * fixtures. */

static const float *big_f(const atfx_file *fx, const char *name) {
    const atfx_tensor *t = atfx_findf(fx, "c0.%s", name);
    return t && t->dtype == ATTN_F32 ? atfx_f32(t) : NULL;
}
static int64_t big_dim(const atfx_file *fx, const char *name, int d) {
    const atfx_tensor *t = atfx_findf(fx, "c0.%s", name);
    return t && d < t->ndim ? t->shape[d] : 0;
}
static int64_t big_numel(const atfx_file *fx, const char *name) {
    const atfx_tensor *t = atfx_findf(fx, "c0.%s", name);
    return t ? t->numel : 0;
}
static double big_attr(const atfx_file *fx, const char *name) {
    const atfx_tensor *t = atfx_findf(fx, "c0.attr.%s", name);
    if (!t) return 0.0;
    return t->dtype == ATTN_I32 ? (double)atfx_i32(t)[0] : (double)atfx_f32(t)[0];
}
static uint64_t big_u64(const atfx_file *fx, const char *name) {
    const atfx_tensor *t = atfx_findf(fx, "c0.attr.%s", name);
    if (!t || t->dtype != ATTN_I32 || t->numel != 2) return 0;
    return (uint64_t)(uint32_t)atfx_i32(t)[0] | (uint64_t)(uint32_t)atfx_i32(t)[1] << 32;
}
/* The oracle's gradient buffer of the input called `name` (NULL if it has
 * none). */
static double *big_g(const result *r, double **grad, const char *name) {
    for (int i = 0; i < r->n_in; i++)
        if (!strcmp(r->names[i], name)) return grad[i];
    return NULL;
}

static double gelu_d(double x, int tanh_approx, double *dy) {
    if (tanh_approx) {
        const double c = sqrt(2.0 / 3.14159265358979323846), u = c * (x + 0.044715 * x * x * x);
        const double t = tanh(u);
        *dy = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x);
        return 0.5 * x * (1.0 + t);
    }
    const double cdf = 0.5 * (1.0 + erf(x / sqrt(2.0)));
    *dy = cdf + x * exp(-0.5 * x * x) / sqrt(2.0 * 3.14159265358979323846);
    return x * cdf;
}

/* Fills out[n_out] and grad[i][numel_i] (zeroed by the caller) for the large
 * case of op `name`, with g the upstream gradient. Returns -1 if the op has
 * no oracle here (every op of make_big has one; the suite checks it). */
static int big_oracle(const char *name, const atfx_file *fx, const result *r, const float *g,
                      double *out, double **grad) {
    if (!strcmp(name, "matmul") || !strcmp(name, "bmm") || !strcmp(name, "linear")) {
        const int lin = !strcmp(name, "linear"), bm = !strcmp(name, "bmm");
        const char *an = lin ? "x" : "a", *bn = lin ? "w" : "b";
        const float *a = big_f(fx, an), *b = big_f(fx, bn), *bias = lin ? big_f(fx, "b") : NULL;
        double *ga = big_g(r, grad, an), *gb = big_g(r, grad, bn);
        double *gbias = lin ? big_g(r, grad, "b") : NULL;
        const int ta = bm ? (int)big_attr(fx, "trans_a") : 0;
        const int tb = lin ? 1 : bm ? (int)big_attr(fx, "trans_b") : 0;
        const int na = bm ? 4 : 2;
        int64_t batch = 1;
        for (int d = 0; d < na - 2; d++) batch *= big_dim(fx, an, d);
        const int64_t ar = big_dim(fx, an, na - 2), ac = big_dim(fx, an, na - 1);
        const int64_t br = big_dim(fx, bn, na - 2), bc = big_dim(fx, bn, na - 1);
        const int64_t M = ta ? ac : ar, K = ta ? ar : ac, N = tb ? br : bc;
        for (int64_t p = 0; p < batch; p++) {
            const float *A = a + p * ar * ac, *B = b + p * br * bc;
            double *GA = ga ? ga + p * ar * ac : NULL, *GB = gb ? gb + p * br * bc : NULL;
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                    double s = bias ? bias[j] : 0.0;
                    const double gij = g[(p * M + i) * N + j];
                    for (int64_t k = 0; k < K; k++) {
                        const int64_t ia = ta ? k * ac + i : i * ac + k;
                        const int64_t ib = tb ? j * bc + k : k * bc + j;
                        s += (double)A[ia] * B[ib];
                        if (GA) GA[ia] += gij * B[ib];
                        if (GB) GB[ib] += gij * A[ia];
                    }
                    out[(p * M + i) * N + j] = s;
                    if (gbias) gbias[j] += gij;
                }
        }
        return 0;
    }
    if (!strcmp(name, "add") || !strcmp(name, "sub") || !strcmp(name, "mul") ||
        !strcmp(name, "div") || !strcmp(name, "bias_add")) {
        /* a [R, C] with b [C] (add, sub, mul, bias_add) or b [R, 1] (div) */
        const int ba = !strcmp(name, "bias_add"), dv = !strcmp(name, "div");
        const char *an = ba ? "x" : "a";
        const float *a = big_f(fx, an), *b = big_f(fx, "b");
        double *ga = big_g(r, grad, an), *gb = big_g(r, grad, "b");
        const int64_t R = big_dim(fx, an, 0), C = big_dim(fx, an, 1);
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++) {
                const int64_t o = i * C + j, ib = dv ? i : j;
                const double x = a[o], y = b[ib], gg = g[o];
                if (ba || !strcmp(name, "add")) {
                    out[o] = x + y;
                    ga[o] += gg;
                    gb[ib] += gg;
                } else if (!strcmp(name, "sub")) {
                    out[o] = x - y;
                    ga[o] += gg;
                    gb[ib] -= gg;
                } else if (!strcmp(name, "mul")) {
                    out[o] = x * y;
                    ga[o] += gg * y;
                    gb[ib] += gg * x;
                } else {
                    out[o] = x / y;
                    ga[o] += gg / y;
                    gb[ib] -= gg * x / (y * y);
                }
            }
        return 0;
    }
    if (!strcmp(name, "scale")) {
        const float *x = big_f(fx, "x");
        const double s = (float)big_attr(fx, "s");
        double *gx = big_g(r, grad, "x");
        for (int64_t i = 0; i < r->n_out; i++) {
            out[i] = s * x[i];
            gx[i] = s * g[i];
        }
        return 0;
    }
    if (!strcmp(name, "sum") || !strcmp(name, "mean")) {
        const float *x = big_f(fx, "x");
        double *gx = big_g(r, grad, "x");
        const int64_t R = big_dim(fx, "x", 0), C = big_dim(fx, "x", 1);
        const int axis = (int)big_attr(fx, "axis"), mean = !strcmp(name, "mean");
        const double n = axis == 1 ? (double)C : axis == 0 ? (double)R : (double)(R * C);
        for (int64_t i = 0; i < r->n_out; i++) out[i] = 0.0;
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++) {
                const int64_t o = axis == 1 ? i : axis == 0 ? j : 0;
                out[o] += x[i * C + j];
                gx[i * C + j] = mean ? g[o] / n : g[o];
            }
        if (mean)
            for (int64_t i = 0; i < r->n_out; i++) out[i] /= n;
        return 0;
    }
    if (!strcmp(name, "exp") || !strcmp(name, "log") || !strcmp(name, "tanh") ||
        !strcmp(name, "sigmoid") || !strcmp(name, "relu") || !strcmp(name, "gelu")) {
        const float *x = big_f(fx, "x");
        double *gx = big_g(r, grad, "x");
        const int approx = (int)big_attr(fx, "tanh_approx");
        for (int64_t i = 0; i < r->n_out; i++) {
            const double v = x[i];
            double y, dy;
            if (!strcmp(name, "exp")) y = dy = exp(v);
            else if (!strcmp(name, "log")) y = log(v), dy = 1.0 / v;
            else if (!strcmp(name, "tanh")) y = tanh(v), dy = 1.0 - y * y;
            else if (!strcmp(name, "sigmoid")) y = 1.0 / (1.0 + exp(-v)), dy = y * (1.0 - y);
            else if (!strcmp(name, "relu")) y = v > 0 ? v : 0.0, dy = v > 0 ? 1.0 : 0.0;
            else y = gelu_d(v, approx, &dy);
            out[i] = y;
            gx[i] = g[i] * dy;
        }
        return 0;
    }
    if (!strcmp(name, "softmax") || !strcmp(name, "log_softmax")) {
        /* rows of x [R, C] + mask [C] (-inf entries: probability 0) */
        const float *x = big_f(fx, "x"), *m = big_f(fx, "mask");
        double *gx = big_g(r, grad, "x"), *gm = big_g(r, grad, "mask");
        const int64_t R = big_dim(fx, "x", 0), C = big_dim(fx, "x", 1);
        const int lsm = !strcmp(name, "log_softmax");
        double *p = malloc(sizeof(double) * (size_t)C);
        if (!p) return -1;
        for (int64_t i = 0; i < R; i++) {
            const float *xr = x + i * C;
            const float *gr = g + i * C;
            double mx = -INFINITY, z = 0.0, dot = 0.0, gs = 0.0;
            for (int64_t j = 0; j < C; j++) {
                const double v = (double)xr[j] + m[j];
                if (v > mx) mx = v;
            }
            for (int64_t j = 0; j < C; j++) z += exp((double)xr[j] + m[j] - mx);
            for (int64_t j = 0; j < C; j++) {
                p[j] = exp((double)xr[j] + m[j] - mx) / z;
                out[i * C + j] = lsm ? (double)xr[j] + m[j] - mx - log(z) : p[j];
                dot += gr[j] * p[j];
                gs += gr[j];
            }
            for (int64_t j = 0; j < C; j++) {
                /* softmax: p (g - sum g p); log_softmax: g - p sum g */
                const double d = lsm ? gr[j] - p[j] * gs : p[j] * (gr[j] - dot);
                gx[i * C + j] = d;
                if (gm) gm[j] += d;
            }
        }
        free(p);
        return 0;
    }
    if (!strcmp(name, "cross_entropy")) {
        const float *x = big_f(fx, "logits");
        const atfx_tensor *tt = atfx_findf(fx, "c0.targets");
        double *gx = big_g(r, grad, "logits");
        const int64_t N = big_dim(fx, "logits", 0), V = big_dim(fx, "logits", 1);
        const int ignore = (int)big_attr(fx, "ignore_index");
        const double e = (float)big_attr(fx, "label_smoothing");
        int64_t valid = 0;
        for (int64_t i = 0; i < N; i++) valid += atfx_i32(tt)[i] != ignore;
        double loss = 0.0;
        for (int64_t i = 0; i < N && valid; i++) {
            const int t = atfx_i32(tt)[i];
            if (t == ignore) continue;
            const float *xr = x + i * V;
            double mx = -INFINITY, z = 0.0;
            for (int64_t j = 0; j < V; j++) mx = xr[j] > mx ? xr[j] : mx;
            for (int64_t j = 0; j < V; j++) z += exp(xr[j] - mx);
            const double lse = mx + log(z);
            for (int64_t j = 0; j < V; j++) {
                const double q = (j == t ? 1.0 - e : 0.0) + e / (double)V;
                loss += q * (lse - xr[j]);
                gx[i * V + j] = g[0] * (exp(xr[j] - lse) - q) / (double)valid;
            }
        }
        out[0] = valid ? loss / (double)valid : 0.0;
        return 0;
    }
    if (!strcmp(name, "layernorm")) {
        const float *x = big_f(fx, "x"), *ga = big_f(fx, "gamma"), *be = big_f(fx, "beta");
        double *gx = big_g(r, grad, "x"), *gg = big_g(r, grad, "gamma"), *gbe = big_g(r, grad, "beta");
        const int64_t R = big_dim(fx, "x", 0), C = big_dim(fx, "x", 1);
        const double eps = (float)big_attr(fx, "eps");
        double *xh = malloc(sizeof(double) * (size_t)C);
        if (!xh) return -1;
        for (int64_t i = 0; i < R; i++) {
            const float *xr = x + i * C, *gr = g + i * C;
            double mu = 0.0, var = 0.0, s1 = 0.0, s2 = 0.0;
            for (int64_t j = 0; j < C; j++) mu += xr[j];
            mu /= (double)C;
            for (int64_t j = 0; j < C; j++) var += (xr[j] - mu) * (xr[j] - mu);
            const double rstd = 1.0 / sqrt(var / (double)C + eps);
            for (int64_t j = 0; j < C; j++) {
                xh[j] = (xr[j] - mu) * rstd;
                out[i * C + j] = xh[j] * ga[j] + be[j];
                const double dxh = (double)gr[j] * ga[j];
                s1 += dxh;
                s2 += dxh * xh[j];
                gg[j] += (double)gr[j] * xh[j];
                gbe[j] += gr[j];
            }
            /* dx = rstd (dxh - mean(dxh) - xh mean(dxh xh)) */
            for (int64_t j = 0; j < C; j++)
                gx[i * C + j] = rstd * ((double)gr[j] * ga[j] - s1 / (double)C -
                                        xh[j] * s2 / (double)C);
        }
        free(xh);
        return 0;
    }
    if (!strcmp(name, "embedding")) {
        const float *w = big_f(fx, "weight");
        const atfx_tensor *ids = atfx_findf(fx, "c0.ids");
        double *gw = big_g(r, grad, "weight");
        const int64_t D = big_dim(fx, "weight", 1);
        for (int64_t i = 0; i < ids->numel; i++) {
            const int64_t id = atfx_i32(ids)[i];
            for (int64_t j = 0; j < D; j++) {
                out[i * D + j] = w[id * D + j];
                gw[id * D + j] += g[i * D + j];
            }
        }
        return 0;
    }
    if (!strcmp(name, "dropout")) {
        /* element i kept iff attn_rng_uniform(seed, offset, i) >= p (rng.h) */
        const float *x = big_f(fx, "x");
        double *gx = big_g(r, grad, "x");
        const double p = (float)big_attr(fx, "p");
        const uint64_t seed = big_u64(fx, "seed"), offset = big_u64(fx, "offset");
        for (int64_t i = 0; i < r->n_out; i++) {
            const double keep = attn_rng_uniform(seed, offset, (uint64_t)i) >= (float)p ? 1.0 : 0.0;
            out[i] = (double)x[i] * keep / (1.0 - p);
            gx[i] = (double)g[i] * keep / (1.0 - p);
        }
        return 0;
    }
    if (!strcmp(name, "concat")) {
        /* x0 [R, C0], x1 [R, C1] along axis 1 */
        const float *x0 = big_f(fx, "x0"), *x1 = big_f(fx, "x1");
        double *g0 = big_g(r, grad, "x0"), *g1 = big_g(r, grad, "x1");
        const int64_t R = big_dim(fx, "x0", 0), C0 = big_dim(fx, "x0", 1),
                      C1 = big_dim(fx, "x1", 1);
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C0 + C1; j++) {
                const int64_t o = i * (C0 + C1) + j;
                out[o] = j < C0 ? x0[i * C0 + j] : x1[i * C1 + j - C0];
                if (j < C0) g0[i * C0 + j] = g[o];
                else g1[i * C1 + j - C0] = g[o];
            }
        return 0;
    }
    if (!strcmp(name, "conv2d") || !strcmp(name, "conv1d") || !strcmp(name, "conv_transpose2d")) {
        /* 2-D cross-correlation (conv1d: H = KH = 1), from the definitions of
         * conv.h: y[n,o,i,j] = b[o] + sum_{c,u,v} x[n, g Cg + c, i s - p + u d,
         * j s - p + v d] w[o, c, u, v]; transposed: x[n, ci, i, j] w[ci, co,
         * u, v] is added to y[n, g COg + co, i s - p + u d, j s - p + v d]. */
        const int one = !strcmp(name, "conv1d"), tr = !strcmp(name, "conv_transpose2d");
        const float *x = big_f(fx, "x"), *w = big_f(fx, "w"), *b = big_f(fx, "b");
        double *gx = big_g(r, grad, "x"), *gw = big_g(r, grad, "w"), *gb = big_g(r, grad, "b");
        const int64_t N = big_dim(fx, "x", 0), C = big_dim(fx, "x", 1);
        const int64_t H = one ? 1 : big_dim(fx, "x", 2), W = big_dim(fx, "x", one ? 2 : 3);
        const int64_t w0 = big_dim(fx, "w", 0), w1 = big_dim(fx, "w", 1);
        const int64_t KH = one ? 1 : big_dim(fx, "w", 2), KW = big_dim(fx, "w", one ? 2 : 3);
        const int64_t G = big_attr(fx, "groups") > 0 ? (int64_t)big_attr(fx, "groups") : 1;
        const int64_t s = big_attr(fx, "stride") > 0 ? (int64_t)big_attr(fx, "stride") : 1;
        const int64_t d = big_attr(fx, "dilation") > 0 ? (int64_t)big_attr(fx, "dilation") : 1;
        const int causal = one && big_attr(fx, "causal") != 0;
        const int64_t pw = causal ? d * (KW - 1) : (int64_t)big_attr(fx, "padding");
        const int64_t ph = one ? 0 : (int64_t)big_attr(fx, "padding");
        const int64_t O = tr ? w1 * G : w0;   /* output channels */
        const int64_t Cg = C / G, Og = O / G; /* per group */
        const int64_t OH = one ? 1 : (int64_t)r->shape[2], OW = (int64_t)r->shape[one ? 2 : 3];
        for (int64_t n = 0; n < N; n++)
            for (int64_t o = 0; o < O && b; o++)
                for (int64_t i = 0; i < OH * OW; i++) out[(n * O + o) * OH * OW + i] = b[o];
        for (int64_t n = 0; n < N; n++)
            for (int64_t gi = 0; gi < G; gi++)
                for (int64_t co = 0; co < Og; co++)
                    for (int64_t ci = 0; ci < Cg; ci++)
                        for (int64_t u = 0; u < KH; u++)
                            for (int64_t v = 0; v < KW; v++) {
                                const int64_t oc = gi * Og + co, ic = gi * Cg + ci;
                                const int64_t wi = tr ? ((ic * Og + co) * KH + u) * KW + v
                                                      : ((oc * Cg + ci) * KH + u) * KW + v;
                                const double wv = w[wi];
                                /* (a, c2) index the strided side: y for conv, x for transposed */
                                const int64_t A = tr ? H : OH, B2 = tr ? W : OW;
                                for (int64_t a = 0; a < A; a++) {
                                    const int64_t hh = a * s - ph + u * d;
                                    if (hh < 0 || hh >= (tr ? OH : H)) continue;
                                    for (int64_t c2 = 0; c2 < B2; c2++) {
                                        const int64_t ww = c2 * s - pw + v * d;
                                        if (ww < 0 || ww >= (tr ? OW : W)) continue;
                                        const int64_t xi = tr ? ((n * C + ic) * H + a) * W + c2
                                                              : ((n * C + ic) * H + hh) * W + ww;
                                        const int64_t yi = tr ? ((n * O + oc) * OH + hh) * OW + ww
                                                              : ((n * O + oc) * OH + a) * OW + c2;
                                        out[yi] += (double)x[xi] * wv;
                                        if (gx) gx[xi] += (double)g[yi] * wv;
                                        if (gw) gw[wi] += (double)g[yi] * (double)x[xi];
                                    }
                                }
                            }
        for (int64_t n = 0; n < N && gb; n++)
            for (int64_t o = 0; o < O; o++)
                for (int64_t i = 0; i < OH * OW; i++) gb[o] += g[(n * O + o) * OH * OW + i];
        return 0;
    }
    if (!strcmp(name, "max_pool2d") || !strcmp(name, "avg_pool2d")) {
        /* windows of k x k at stride s over the input padded by p (-inf for
         * max, zeros counted in the divisor k k for avg, torch's default);
         * max: the first largest element in row-major window order */
        const int mx = !strcmp(name, "max_pool2d");
        const float *x = big_f(fx, "x");
        double *gx = big_g(r, grad, "x");
        const int64_t NC = big_dim(fx, "x", 0) * big_dim(fx, "x", 1);
        const int64_t H = big_dim(fx, "x", 2), W = big_dim(fx, "x", 3);
        const int64_t k = (int64_t)big_attr(fx, "kernel"), p = (int64_t)big_attr(fx, "padding");
        const int64_t s = big_attr(fx, "stride") > 0 ? (int64_t)big_attr(fx, "stride") : k;
        const int64_t OH = (int64_t)r->shape[2], OW = (int64_t)r->shape[3];
        for (int64_t c = 0; c < NC; c++)
            for (int64_t i = 0; i < OH; i++)
                for (int64_t j = 0; j < OW; j++) {
                    const int64_t yi = (c * OH + i) * OW + j;
                    double acc = mx ? -INFINITY : 0.0;
                    int64_t arg = -1;
                    for (int64_t u = 0; u < k; u++)
                        for (int64_t v = 0; v < k; v++) {
                            const int64_t hh = i * s - p + u, ww = j * s - p + v;
                            if (hh < 0 || hh >= H || ww < 0 || ww >= W) continue;
                            const int64_t xi = (c * H + hh) * W + ww;
                            if (!mx) {
                                acc += x[xi];
                                gx[xi] += (double)g[yi] / (double)(k * k);
                            } else if (arg < 0 || (double)x[xi] > acc) {
                                acc = x[xi];
                                arg = xi;
                            }
                        }
                    out[yi] = mx ? acc : acc / (double)(k * k);
                    if (mx && arg >= 0) gx[arg] += g[yi];
                }
        return 0;
    }
    if (!strcmp(name, "batchnorm")) {
        /* training mode: per channel, the batch mean and biased variance over
         * (N, H, W); y = gamma (x - mean) / sqrt(var + eps) + beta;
         * dx = gamma rstd (g - mean(g) - xhat mean(g xhat)) */
        const float *x = big_f(fx, "x"), *ga = big_f(fx, "gamma"), *be = big_f(fx, "beta");
        double *gx = big_g(r, grad, "x"), *gg = big_g(r, grad, "gamma"), *gbt = big_g(r, grad, "beta");
        const int64_t N = big_dim(fx, "x", 0), C = big_dim(fx, "x", 1);
        const int64_t HW = big_numel(fx, "x") / (N * C), M = N * HW;
        const double eps = (float)big_attr(fx, "eps");
        for (int64_t c = 0; c < C; c++) {
            double mean = 0.0, var = 0.0, sg = 0.0, sgx = 0.0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < HW; i++) mean += x[(n * C + c) * HW + i];
            mean /= (double)M;
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < HW; i++) {
                    const double e = x[(n * C + c) * HW + i] - mean;
                    var += e * e;
                }
            var /= (double)M;
            const double rstd = 1.0 / sqrt(var + eps), gam = ga ? ga[c] : 1.0, bet = be ? be[c] : 0.0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < HW; i++) {
                    const int64_t j = (n * C + c) * HW + i;
                    const double xh = (x[j] - mean) * rstd;
                    out[j] = gam * xh + bet;
                    sg += g[j];
                    sgx += g[j] * xh;
                }
            if (gg) gg[c] = sgx;
            if (gbt) gbt[c] = sg;
            for (int64_t n = 0; n < N && gx; n++)
                for (int64_t i = 0; i < HW; i++) {
                    const int64_t j = (n * C + c) * HW + i;
                    const double xh = (x[j] - mean) * rstd;
                    gx[j] = gam * rstd * (g[j] - sg / (double)M - xh * sgx / (double)M);
                }
        }
        return 0;
    }
    return -1;
}

/* (e) of the large cases: the fast and the reference run's output and every
 * input gradient against big_oracle, rounded once to float32, with the op's
 * atol/rtol. */
static void check_big_oracle(const char *name, const atfx_file *fx, const char *tag,
                             const result *rf, const result *rr, float atol, float rtol) {
    double *out = calloc((size_t)(rf->n_out ? rf->n_out : 1), sizeof(double));
    double *grad[OPC_MAX_INPUTS] = {0};
    float *tmp = NULL;
    int ok = out != NULL;
    int64_t most = rf->n_out;
    for (int i = 0; i < rf->n_in && ok; i++) {
        if (!rf->grad[i]) continue;
        grad[i] = calloc((size_t)(rf->numel[i] ? rf->numel[i] : 1), sizeof(double));
        ok = grad[i] != NULL;
        if (rf->numel[i] > most) most = rf->numel[i];
    }
    tmp = ok ? malloc(sizeof(float) * (size_t)(most ? most : 1)) : NULL;
    if (!tmp) {
        test__fail(__FILE__, __LINE__, "%s: out of memory in the test", tag);
    } else if (big_oracle(name, fx, rf, rf->grad_out, out, grad) != 0) {
        test__fail(__FILE__, __LINE__, "%s: the large case has no double-precision oracle in "
                   "tests/test_ops.c (big_oracle)", tag);
    } else {
        char what[128];
        for (int64_t j = 0; j < rf->n_out; j++) tmp[j] = (float)out[j];
        compare(tag, "(e) fast output vs double-precision oracle", rf->out, tmp, rf->ndim,
                rf->shape, rf->n_out, atol, rtol);
        compare(tag, "(e) reference output vs double-precision oracle", rr->out, tmp, rr->ndim,
                rr->shape, rr->n_out, atol, rtol);
        for (int i = 0; i < rf->n_in; i++) {
            if (!grad[i]) continue;
            for (int64_t j = 0; j < rf->numel[i]; j++) tmp[j] = (float)grad[i][j];
            snprintf(what, sizeof what, "(e) fast-run gradient of '%s' vs double-precision oracle",
                     rf->names[i]);
            compare(tag, what, rf->grad[i], tmp, rf->ndims[i], rf->shapes[i], rf->numel[i], atol,
                    rtol);
            snprintf(what, sizeof what, "(e) reference-run gradient of '%s' vs double-precision "
                     "oracle", rf->names[i]);
            compare(tag, what, rr->grad[i], tmp, rr->ndims[i], rr->shapes[i], rr->numel[i], atol,
                    rtol);
        }
    }
    free(tmp);
    free(out);
    for (int i = 0; i < OPC_MAX_INPUTS; i++) free(grad[i]);
}

/* Large ragged sizes. (c) fast vs reference forward kernels, the op's
 * atol/rtol. The op table has one backward per op, so the two runs'
 * gradients come from the same backward function (fed by each forward's
 * saved tensors): comparing them is no independent check of the backward.
 * The gradients are therefore also judged by (d), central finite differences
 * of the forward on this same large case (finite_diff: 64 probed elements of
 * every float input, the op's grad_atol/grad_rtol), code that shares nothing
 * with the backward. */
static void run_big_ref(void) {
    attn_ctx *ctx = new_ctx(ARENA_BYTES, 0);
    if (!ctx) return;
    for (int op = 0; op < op_cases_count; op++) {
        const op_case_entry *e = &op_cases[op];
        const attn__op_info *info = &attn__ops[op];
        int variants = !strcmp(e->name, "conv2d") ? 5
                       : !strcmp(e->name, "sum") || !strcmp(e->name, "mean") ? 3
                       : !strcmp(e->name, "gelu") || !strcmp(e->name, "conv_transpose2d") ? 2
                                                                                           : 1;
        for (int v = 0; v < variants; v++) {
            syn y;
            if (make_big(&y, e->name, v)) break;
            char tname[96], tag[128], what[96];
            snprintf(tname, sizeof tname,
                     "ops/%s large case %d: fast vs reference, finite differences", e->name, v);
            snprintf(tag, sizeof tag, "op %s large case %d", e->name, v);
            TEST_BEGIN(tname);
            result rf, rr;
            int okf = execute(ctx, e, &y.fx, 0, 0, tag, &rf) == 0;
            int okr = okf && execute(ctx, e, &y.fx, 0, 1, tag, &rr) == 0;
            if (okr) {
                compare(tag, "(c) fast vs reference output", rf.out, rr.out, rf.ndim, rf.shape,
                        rf.n_out, info->atol, info->rtol);
                for (int i = 0; i < rf.n_in; i++) {
                    if (!rf.grad[i]) continue;
                    snprintf(what, sizeof what,
                             "(c) gradient of '%s' after the fast vs the reference forward",
                             rf.names[i]);
                    compare(tag, what, rf.grad[i], rr.grad[i], rf.ndims[i], rf.shapes[i],
                            rf.numel[i], info->atol, info->rtol);
                }
            }
            if (okr) check_big_oracle(e->name, &y.fx, tag, &rf, &rr, info->atol, info->rtol);
            if (okf) finite_diff(ctx, e, &y.fx, 0, tag, &rf, info->grad_atol, info->grad_rtol);
            if (okf) result_free(&rf);
            if (okr) result_free(&rr);
            TEST_END();
            syn_free(&y);
        }
    }
    attn_ctx_set_use_ref(ctx, 0);
    attn_ctx_free(ctx);
}

/* 1 vs 2 threads on [256, 1000]: bitwise identical outputs and input
 * gradients for the row-local ops (elementwise, softmax, layernorm, dropout).
 * Parameter-like reductions (gamma/beta, a broadcast b) are not compared:
 * their reduction order may follow the thread split (see context.h). */
static void run_threads(void) {
    static const char *ops[] = {"exp",     "tanh",        "sigmoid",   "relu",   "gelu",
                                "scale",   "add",         "mul",       "div",    "bias_add",
                                "softmax", "log_softmax", "layernorm", "dropout"};
    attn_ctx *ctx = new_ctx(ARENA_BYTES, 2);
    if (!ctx) return;
    for (size_t j = 0; j < sizeof ops / sizeof ops[0]; j++) {
        int op = -1;
        for (int i = 0; i < op_cases_count; i++)
            if (!strcmp(op_cases[i].name, ops[j])) op = i;
        if (op < 0) continue;
        const op_case_entry *e = &op_cases[op];
        syn y;
        if (make_big(&y, e->name, 9)) continue;
        char tname[96], tag[128];
        snprintf(tname, sizeof tname, "ops/%s 1 vs 2 threads bitwise", e->name);
        TEST_BEGIN(tname);
        result r1, r2;
        attn_ctx_set_threads(ctx, 1);
        snprintf(tag, sizeof tag, "op %s [256,1000] 1 thread", e->name);
        int ok1 = execute(ctx, e, &y.fx, 0, 0, tag, &r1) == 0;
        attn_ctx_set_threads(ctx, 2);
        snprintf(tag, sizeof tag, "op %s [256,1000] 2 threads", e->name);
        int ok2 = ok1 && execute(ctx, e, &y.fx, 0, 0, tag, &r2) == 0;
        if (ok2) {
            int64_t first = -1;
            for (int64_t i = 0; i < r1.n_out && first < 0; i++)
                if (memcmp(&r1.out[i], &r2.out[i], sizeof(float))) first = i;
            CHECK(first < 0, "op %s: output element %lld differs between 1 and 2 threads (%.9g vs "
                  "%.9g)", e->name, (long long)first, first < 0 ? 0.0 : (double)r1.out[first],
                  first < 0 ? 0.0 : (double)r2.out[first]);
            /* the input a row-local op is computed from: input 0 */
            if (r1.grad[0]) {
                first = -1;
                for (int64_t i = 0; i < r1.numel[0] && first < 0; i++)
                    if (memcmp(&r1.grad[0][i], &r2.grad[0][i], sizeof(float))) first = i;
                CHECK(first < 0, "op %s: gradient of '%s' element %lld differs between 1 and 2 "
                      "threads", e->name, r1.names[0], (long long)first);
            }
        }
        if (ok1) result_free(&r1);
        if (ok2) result_free(&r2);
        TEST_END();
        syn_free(&y);
    }
    attn_ctx_free(ctx);
}

/* ---- autograd rules --------------------------------------------------------------- */

static void run_autograd(void) {
    attn_ctx *ctx = new_ctx((size_t)4 << 20, 0);
    if (!ctx) return;
    const float xv[5] = {0.5f, -1.25f, 2.0f, 3.5f, -0.75f};
    const float gv[10] = {1.0f, -2.0f, 0.5f, 0.25f, 3.0f, -1.0f, 1.5f, 2.0f, -0.5f, 0.125f};
    const int64_t n5[1] = {5};

    TEST_BEGIN("ops/autograd: gradient accumulates over two uses of x (x*x)");
    {
        attn_ctx_reset(ctx);
        attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, 1, n5, xv);
        if (x) x->requires_grad = 1;
        attn_tensor *y = attn_mul(ctx, x, x);
        CHECK(y, "mul(x, x): %s", attn_ctx_error(ctx));
        if (y) {
            CHECK_OK(attn_backward_from(ctx, y, gv));
            for (int i = 0; i < 5 && x->grad; i++)
                CHECK(x->grad[i] == 2.0f * xv[i] * gv[i], "d(x*x)/dx element %d: got %g, want %g",
                      i, (double)x->grad[i], 2.0 * xv[i] * gv[i]);
            CHECK(x->grad != NULL, "x has no gradient");
        }
    }
    TEST_END();

    TEST_BEGIN("ops/autograd: gradient accumulates over concat([x, x])");
    {
        attn_ctx_reset(ctx);
        attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, 1, n5, xv);
        if (x) x->requires_grad = 1;
        attn_tensor *xs[2] = {x, x};
        attn_tensor *y = attn_concat(ctx, xs, 2, 0);
        attn_tensor *z = attn_exp(ctx, y);
        CHECK(z, "concat/exp: %s", attn_ctx_error(ctx));
        if (z) {
            CHECK_OK(attn_backward_from(ctx, z, gv));
            for (int i = 0; i < 5 && x->grad; i++) {
                float want = gv[i] * attn_f32(z)[i] + gv[i + 5] * attn_f32(z)[i + 5];
                CHECK(fabsf(x->grad[i] - want) <= 1e-6f * (1 + fabsf(want)),
                      "element %d: got %g, want %g", i, (double)x->grad[i], (double)want);
            }
            CHECK(x->grad != NULL, "x has no gradient");
        }
    }
    TEST_END();

    TEST_BEGIN("ops/autograd: no-grad mode records nothing");
    {
        attn_ctx_reset(ctx);
        attn_ctx_set_grad_enabled(ctx, 0);
        attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, 1, n5, xv);
        if (x) x->requires_grad = 1;
        attn_tensor *y = attn_tanh(ctx, attn_exp(ctx, x));
        CHECK(y && attn_ctx_tape_size(ctx) == 0 && !y->requires_grad && y->node < 0,
              "no-grad: tape has %d nodes, output requires_grad %d", attn_ctx_tape_size(ctx),
              y ? y->requires_grad : -1);
        attn_status st = attn_backward_from(ctx, y, gv);
        CHECK(st == ATTN_ERR_STATE, "backward after a no-grad forward: '%s', expected '%s'",
              attn_status_str(st), attn_status_str(ATTN_ERR_STATE));
        attn_ctx_set_grad_enabled(ctx, 1);
        /* with x not requiring gradients nothing is recorded either */
        attn_ctx_reset(ctx);
        x = attn_tensor_from(ctx, ATTN_F32, 1, n5, xv);
        y = attn_exp(ctx, x);
        CHECK(y && attn_ctx_tape_size(ctx) == 0 && !y->requires_grad,
              "constant input: tape has %d nodes", attn_ctx_tape_size(ctx));
    }
    TEST_END();

    TEST_BEGIN("ops/autograd: backward twice is ATTN_ERR_STATE");
    {
        attn_ctx_reset(ctx);
        attn_tensor *x = attn_tensor_from(ctx, ATTN_F32, 1, n5, xv);
        if (x) x->requires_grad = 1;
        attn_tensor *y = attn_sigmoid(ctx, x);
        if (y) {
            CHECK_OK(attn_backward_from(ctx, y, gv));
            attn_status st = attn_backward_from(ctx, y, gv);
            CHECK(st == ATTN_ERR_STATE && strstr(attn_ctx_error(ctx), "backward"),
                  "second backward: '%s' (%s), expected '%s'", attn_status_str(st),
                  attn_ctx_error(ctx), attn_status_str(ATTN_ERR_STATE));
        }
        CHECK(y != NULL, "sigmoid: %s", attn_ctx_error(ctx));
        /* attn_backward needs a scalar */
        attn_ctx_reset(ctx);
        x = attn_tensor_from(ctx, ATTN_F32, 1, n5, xv);
        if (x) x->requires_grad = 1;
        y = attn_exp(ctx, x);
        attn_status st = attn_backward(ctx, y);
        CHECK(st == ATTN_ERR_SHAPE, "attn_backward of a [5] tensor: '%s', expected '%s'",
              attn_status_str(st), attn_status_str(ATTN_ERR_SHAPE));
    }
    TEST_END();

    TEST_BEGIN("ops/autograd: integer inputs receive no gradient");
    {
        attn_ctx_reset(ctx);
        const int64_t ws[2] = {4, 3}, is[1] = {5};
        const float w[12] = {0};
        const int32_t ids[5] = {0, 3, 3, 1, 2};
        attn_tensor *wt = attn_tensor_from(ctx, ATTN_F32, 2, ws, w);
        attn_tensor *it = attn_tensor_from(ctx, ATTN_I32, 1, is, ids);
        if (wt) wt->requires_grad = 1;
        if (it) it->requires_grad = 1; /* ignored for I32 */
        attn_tensor *y = attn_embedding(ctx, wt, it);
        float g[15];
        for (int i = 0; i < 15; i++) g[i] = 1.0f;
        if (y) {
            CHECK_OK(attn_backward_from(ctx, y, g));
            CHECK(it->grad == NULL, "the i32 ids received a gradient");
            CHECK(wt->grad && wt->grad[3 * 3] == 2.0f, "row 3 (used twice) gradient %g, want 2",
                  wt->grad ? (double)wt->grad[9] : -1.0);
        }
        CHECK(y != NULL, "embedding: %s", attn_ctx_error(ctx));
    }
    TEST_END();
    attn_ctx_free(ctx);
}

/* ---- the fixture reader ----------------------------------------------------------- */

/* A valid two-tensor file: "a" f32 [2] = {1, 2}, "bb" i32 [] = {7}. */
static size_t tiny_fixture(unsigned char *b) {
    size_t n = 0;
#define PUT32(v)                                                            \
    do {                                                                    \
        uint32_t v_ = (uint32_t)(v);                                        \
        for (int i_ = 0; i_ < 4; i_++) b[n++] = (unsigned char)(v_ >> (8 * i_)); \
    } while (0)
#define PUT64(v)                          \
    do {                                  \
        uint64_t w_ = (uint64_t)(v);      \
        PUT32(w_ & 0xFFFFFFFFu);          \
        PUT32(w_ >> 32);                  \
    } while (0)
    memcpy(b, "ATFX", 4);
    n = 4;
    PUT32(1);
    PUT32(2);
    PUT64(0x1122334455667788ull);
    PUT32(1);
    b[n++] = 'a';
    PUT32(0);
    PUT32(1);
    PUT64(2);
    float f[2] = {1.0f, 2.0f};
    uint32_t u;
    memcpy(&u, &f[0], 4);
    PUT32(u);
    memcpy(&u, &f[1], 4);
    PUT32(u);
    PUT32(2);
    b[n++] = 'b';
    b[n++] = 'b';
    PUT32(2);
    PUT32(0);
    PUT32(7);
#undef PUT32
#undef PUT64
    return n;
}

static void expect_format_error(const unsigned char *b, size_t n, const char *what,
                                const char *needle) {
    atfx_file *fx = (atfx_file *)1;
    char err[256];
    attn_status st = atfx_parse(b, n, "mem", &fx, err, sizeof err);
    CHECK(st == ATTN_ERR_FORMAT && fx == NULL && (!needle || strstr(err, needle)),
          "%s: status '%s', message '%s' (expected a format error naming \"%s\")", what,
          attn_status_str(st), err, needle ? needle : "");
    if (st == ATTN_OK) atfx_free(fx);
}

static void run_reader(void) {
    unsigned char good[128], bad[128];
    size_t n = tiny_fixture(good);

    TEST_BEGIN("ops/fixture reader: valid file");
    {
        atfx_file *fx = NULL;
        char err[256];
        attn_status st = atfx_parse(good, n, "mem", &fx, err, sizeof err);
        CHECK(st == ATTN_OK, "parse: %s", err);
        if (fx) {
            const atfx_tensor *a = atfx_find(fx, "a"), *bb = atfx_findf(fx, "%s", "bb");
            CHECK(fx->n == 2 && fx->seed == 0x1122334455667788ull && fx->version == 1,
                  "header: n %d seed %llx", fx->n, (unsigned long long)fx->seed);
            CHECK(a && a->dtype == ATTN_F32 && a->ndim == 1 && a->shape[0] == 2 &&
                      atfx_f32(a)[1] == 2.0f,
                  "tensor a wrong");
            CHECK(bb && bb->dtype == ATTN_I32 && bb->ndim == 0 && bb->numel == 1 &&
                      atfx_i32(bb)[0] == 7,
                  "tensor bb wrong");
            CHECK(atfx_find(fx, "c") == NULL, "found a tensor that does not exist");
            atfx_free(fx);
        }
    }
    TEST_END();

    TEST_BEGIN("ops/fixture reader: malformed input is an error, never a crash");
    {
        memcpy(bad, good, n);
        bad[0] = 'X';
        expect_format_error(bad, n, "bad magic", "magic");
        memcpy(bad, good, n);
        bad[4] = 2;
        expect_format_error(bad, n, "version 2", "version");
        for (size_t len = 0; len < n; len++) {
            char what[64];
            snprintf(what, sizeof what, "truncated to %zu of %zu bytes", len, n);
            expect_format_error(good, len, what, "truncated");
        }
        memcpy(bad, good, n);
        bad[n] = 0;
        expect_format_error(bad, n + 1, "trailing byte", "trailing");
        memcpy(bad, good, n);
        /* tensor "a" starts at byte 20: name_len 20, name 24, dtype 25, ndim 29,
         * shape 33..40, data 41..48; tensor "bb" follows at 49 */
        bad[25] = 1; /* dtype 1 (bf16): not a fixture dtype */
        expect_format_error(bad, n, "dtype 1", "dtype");
        memcpy(bad, good, n);
        bad[29] = 9; /* ndim of "a" */
        expect_format_error(bad, n, "9 dimensions", "dimensions");
        memcpy(bad, good, n);
        bad[20] = 0; /* name_len of "a" = 0 */
        expect_format_error(bad, n, "empty name", "name length");
        memcpy(bad, good, n);
        bad[40] = 0x80; /* shape[0] of "a": the sign bit of the i64 */
        expect_format_error(bad, n, "negative dimension", "negative");
        memcpy(bad, good, n);
        bad[37] = 0x10; /* shape[0] of "a" = 2^36 + 2 elements */
        expect_format_error(bad, n, "huge dimension", "truncated");
        memcpy(bad, good, n);
        bad[8] = 0xFF, bad[9] = 0xFF, bad[10] = 0xFF, bad[11] = 0x7F; /* n_tensors */
        expect_format_error(bad, n, "huge tensor count", "truncated");
        {
            /* two copies of tensor "a" */
            unsigned char dup[128];
            size_t ta = 49 - 20; /* bytes of tensor "a": 4 + 1 + 4 + 4 + 8 + 8 */
            memcpy(dup, good, 20);
            memcpy(dup + 20, good + 20, ta);
            memcpy(dup + 20 + ta, good + 20, ta);
            expect_format_error(dup, 20 + 2 * ta, "duplicate name", "twice");
        }
        atfx_file *fx = (atfx_file *)1;
        char err[256];
        attn_status st = atfx_load("/nonexistent/dir/x.atfx", &fx, err, sizeof err);
        CHECK(st == ATTN_ERR_IO && fx == NULL && strstr(err, "/nonexistent/dir/x.atfx"),
              "missing file: '%s' %s", attn_status_str(st), err);
    }
    TEST_END();
}

/* ---- vectorised elementary functions (src/core/vmath.h) ---------------------- */

/* attn__erf_core against double erf on a dense grid of [-4.5, 4.5] (clamped
 * as its contract says), tiny arguments and the two pieces' seam; then the
 * exact GELU (forward and backward, which use it) against double formulas
 * over a grid that reaches the tails, infinities and NaN. */
static void run_vmath(void) {
    TEST_BEGIN("ops/vmath: erf within 1.5e-7 relative of double erf (dense grid, tails)");
    {
        double worst = 0.0, at = 0.0;
        const long n = 3000000;
        for (long i = 0; i <= n + 4000; i++) {
            float x;
            if (i <= n)
                x = (float)(-4.5 + 9.0 * (double)i / (double)n);
            else if (i <= n + 2000) /* both sides of the seam at 0.875, float by float */
                x = nextafterf(0.875f, 0.0f) + (float)(i - n - 1000) * 0x1.0p-24f;
            else /* tiny and subnormal arguments */
                x = ldexpf(1.2345f, -(int)(i - n - 2000) / 16);
            for (int sgn = 0; sgn < 2; sgn++, x = -x) {
                float c = x > 4.0f ? 4.0f : x;
                c = c < -4.0f ? -4.0f : c;
                const double ref = erf((double)x);
                if (ref == 0.0) continue;
                const double rel = fabs((double)attn__erf_core(c) - ref) / fabs(ref);
                if (!(rel <= worst)) {
                    worst = rel;
                    at = x;
                }
            }
        }
        CHECK(worst <= 1.5e-7, "largest relative error %.3g at x = %.9g", worst, at);
        CHECK(isnan(attn__erf_core(NAN)), "erf(NaN) = %g, expected NaN",
              (double)attn__erf_core(NAN));
        CHECK(attn__erf_core(0.0f) == 0.0f && attn__erf_core(4.0f) == 1.0f &&
                  attn__erf_core(-4.0f) == -1.0f,
              "erf(0), erf(4), erf(-4) = %g, %g, %g", (double)attn__erf_core(0.0f),
              (double)attn__erf_core(4.0f), (double)attn__erf_core(-4.0f));
    }
    TEST_END();

    TEST_BEGIN("ops/vmath: exact GELU and its derivative against double (grid with tails)");
    {
        enum { N = 24009 };
        float *x = malloc(sizeof(float) * N);
        attn_ctx *ctx = test_ctx_new((size_t)16 << 20, 1, 0);
        CHECK(x && ctx, "allocation");
        if (x && ctx) {
            for (int i = 0; i < 24000; i++) x[i] = -12.0f + 24.0f * (float)i / 24000.0f;
            const float extra[9] = {1e30f, -1e30f, 3e38f, -3e38f, INFINITY, -INFINITY, NAN,
                                    1e-30f, -1e-30f};
            for (int i = 0; i < 9; i++) x[24000 + i] = extra[i];
            const int64_t sh[1] = {N};
            attn_tensor *xt = test_leaf(ctx, 1, sh, x);
            attn_tensor *y = attn_gelu(ctx, xt, 0);
            float *ones = malloc(sizeof(float) * N);
            for (int i = 0; ones && i < N; i++) ones[i] = 1.0f;
            CHECK(y && ones, "gelu: %s", attn_ctx_error(ctx));
            if (y && ones) {
                CHECK_OK(attn_backward_from(ctx, y, ones));
                const float *yv = attn_f32(y), *g = xt->grad;
                double wf = 0.0, wb = 0.0, af = 0.0, ab = 0.0;
                int bad = 0;
                for (int i = 0; i < N && g; i++) {
                    const double v = x[i];
                    const double cdf = 0.5 * (1.0 + erf(v / sqrt(2.0)));
                    const double fy = v * cdf;
                    const double dy = cdf + v * exp(-0.5 * v * v) * 0.39894228040143267794; /* 1/sqrt(2 pi) */
                    if (isnan(v) || isinf(v)) {
                        /* PyTorch's values: gelu(inf) = inf, gelu(-inf) = NaN (-inf * 0),
                         * NaN propagates; the derivative is 1 at inf, 0 at -inf (here x phi(x) at the
                         * clamp, -8e-22) */
                        const int ok = isnan(v) ? isnan(yv[i]) && isnan(g[i])
                                       : v > 0   ? yv[i] == INFINITY && g[i] == 1.0f
                                                 : isnan(yv[i]) && fabsf(g[i]) < 1e-20f;
                        if (!ok) bad = 1;
                        CHECK(ok, "x = %g: gelu %g, derivative %g", v, (double)yv[i], (double)g[i]);
                        continue;
                    }
                    /* 1 + erf cancels for negative x: there the error is
                     * |x| times an ulp of 1 (the same with libm's erff) */
                    const double ef = fabs(yv[i] - fy) / (2e-7 * fabs(fy) + 6e-8 * fabs(v) + 1e-37);
                    const double eb = fabs(g[i] - dy) / (2e-7 * fabs(dy) + 6e-8);
                    if (ef > wf) wf = ef, af = v;
                    if (eb > wb) wb = eb, ab = v;
                }
                CHECK(!bad, "non-finite inputs");
                CHECK(wf <= 1.0, "gelu: error %.3g x the bound 2e-7 |y| + 6e-8 |x| at x = %.9g",
                      wf, af);
                CHECK(wb <= 1.0, "gelu derivative: error %.3g x the bound 2e-7 |y'| + 6e-8 at x = %.9g",
                      wb, ab);
            }
            free(ones);
        }
        free(x);
        attn_ctx_free(ctx);
    }
    TEST_END();
}

/* 1 if the n floats of a and b have the same bits, else 0 after a CHECK
 * naming what and the first difference. */
static int same_bits(const char *what, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(a + i, b + i, sizeof(float)) != 0) {
            CHECK(0, "%s: element %lld of %lld differs: %.9g vs %.9g", what, (long long)i,
                  (long long)n, (double)a[i], (double)b[i]);
            return 0;
        }
    return 1;
}

/* The training path of linear_gelu (f32, gradients on): its forward keeps
 * GELU'(z) and its backward multiplies by it, where linear then gelu
 * evaluates the derivative in the gelu op's backward. Both must give the
 * same bits (y and the gradients of x, w and b), on ragged sizes (vector
 * tails of every length), with and without bias, on 1 and 2 threads, with
 * wide pre-activations (the GELU's tails and middle). */
static void run_linear_gelu_train(void) {
    TEST_BEGIN("ops/linear_gelu: training forward and backward equal linear + gelu bit for bit");
    static const int64_t sizes[][3] = {{1, 1, 1},   {1, 5, 7},   {3, 17, 33},
                                       {15, 31, 9}, {33, 47, 65}, {64, 96, 40}};
    attn_rng rng;
    attn_rng_init(&rng, 77);
    for (int nt = 1; nt <= 2; nt++)
        for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++)
            for (int with_b = 0; with_b < 2; with_b++) {
                const int64_t R = sizes[c][0], Out = sizes[c][1], In = sizes[c][2];
                const int64_t sx[2] = {R, In}, sw[2] = {Out, In}, sb[1] = {Out};
                float *x = malloc(sizeof(float) * (size_t)(R * In));
                float *w = malloc(sizeof(float) * (size_t)(Out * In));
                float *b = malloc(sizeof(float) * (size_t)Out);
                float *r = malloc(sizeof(float) * (size_t)(R * Out));
                attn_ctx *ctx[2] = {test_ctx_new((size_t)8 << 20, nt, 0),
                                    test_ctx_new((size_t)8 << 20, nt, 0)};
                if (!x || !w || !b || !r || !ctx[0] || !ctx[1]) {
                    CHECK(0, "allocation");
                } else {
                    test_fill_normal(x, R * In, &rng);
                    test_fill_normal(w, Out * In, &rng);
                    test_fill_normal(b, Out, &rng);
                    test_fill_normal(r, R * Out, &rng);
                    for (int64_t i = 0; i < R * In; i++) x[i] *= 2.0f;
                    attn_tensor *xt[2], *wt[2], *bt[2], *y[2];
                    for (int k = 0; k < 2; k++) {
                        xt[k] = test_leaf(ctx[k], 2, sx, x);
                        wt[k] = test_leaf(ctx[k], 2, sw, w);
                        bt[k] = with_b ? test_leaf(ctx[k], 1, sb, b) : NULL;
                        y[k] = k == 0 ? attn_linear_gelu(ctx[k], xt[k], wt[k], bt[k])
                                      : attn_gelu(ctx[k], attn_linear(ctx[k], xt[k], wt[k], bt[k]), 0);
                        CHECK(y[k] && attn_backward_from(ctx[k], y[k], r) == ATTN_OK, "%s: %s",
                              k ? "linear + gelu" : "linear_gelu", attn_ctx_error(ctx[k]));
                    }
                    if (y[0] && y[1] && xt[0]->grad && xt[1]->grad) {
                        char what[96];
                        snprintf(what, sizeof what, "R %lld Out %lld In %lld bias %d threads %d",
                                 (long long)R, (long long)Out, (long long)In, with_b, nt);
                        int ok = same_bits("y", attn_f32(y[0]), attn_f32(y[1]), R * Out) &&
                                 same_bits("dx", xt[0]->grad, xt[1]->grad, R * In) &&
                                 same_bits("dw", wt[0]->grad, wt[1]->grad, Out * In) &&
                                 (!with_b || same_bits("db", bt[0]->grad, bt[1]->grad, Out));
                        CHECK(ok, "%s", what);
                    }
                }
                attn_ctx_free(ctx[0]);
                attn_ctx_free(ctx[1]);
                free(x), free(w), free(b), free(r);
            }
    TEST_END();
}

/* cross_entropy's vectorised exponentials (chunks of 256 vocabulary
 * entries) on ragged vocabulary sizes, against the loss and gradient in
 * double: wide logits, a -inf logit off the target in some rows (its
 * gradient exactly 0), label smoothing off and on, 1 and 2 threads. */
static void run_cross_entropy_ragged(void) {
    TEST_BEGIN("ops/cross_entropy: ragged vocabularies against double (loss, gradient, -inf)");
    static const int64_t vocab[] = {1, 2, 7, 16, 255, 256, 257, 600};
    attn_rng rng;
    attn_rng_init(&rng, 5);
    for (int nt = 1; nt <= 2; nt++)
        for (size_t c = 0; c < sizeof vocab / sizeof vocab[0]; c++)
            for (int sm = 0; sm < 2; sm++) {
                const int64_t N = 9, V = vocab[c];
                const float e = sm ? 0.1f : 0.0f;
                float *x = malloc(sizeof(float) * (size_t)(N * V));
                int32_t tg[9];
                attn_ctx *ctx = test_ctx_new((size_t)4 << 20, nt, 0);
                if (!x || !ctx) {
                    CHECK(0, "allocation");
                    free(x);
                    attn_ctx_free(ctx);
                    continue;
                }
                test_fill_normal(x, N * V, &rng);
                for (int64_t i = 0; i < N * V; i++) x[i] *= 6.0f;
                for (int64_t i = 0; i < N; i++) {
                    tg[i] = (int32_t)(attn_rng_next_u32(&rng) % (uint32_t)V);
                    /* a -inf logit off the target (not with smoothing: its loss is inf) */
                    if (!sm && V > 1 && i % 3 == 1) x[i * V + (tg[i] + 1) % V] = -INFINITY;
                }
                const int64_t sx[2] = {N, V}, st[1] = {N};
                attn_tensor *xt = test_leaf(ctx, 2, sx, x);
                attn_tensor *tt = attn_tensor_from(ctx, ATTN_I32, 1, st, tg);
                attn_tensor *loss = xt && tt ? attn_cross_entropy(ctx, xt, tt, -100, e) : NULL;
                CHECK(loss && attn_backward(ctx, loss) == ATTN_OK && xt->grad, "V %lld: %s",
                      (long long)V, attn_ctx_error(ctx));
                if (loss && xt->grad) {
                    double total = 0.0, worst = 0.0;
                    int zero_ok = 1;
                    for (int64_t i = 0; i < N; i++) {
                        const float *xi = x + i * V;
                        double mx = -INFINITY, s = 0.0, sx_ = 0.0;
                        for (int64_t v = 0; v < V; v++) mx = xi[v] > mx ? xi[v] : mx;
                        for (int64_t v = 0; v < V; v++) s += exp((double)xi[v] - mx), sx_ += xi[v];
                        const double lse = mx + log(s);
                        total += (1.0 - e) * (lse - xi[tg[i]]) + (sm ? e * (lse - sx_ / (double)V) : 0.0);
                        for (int64_t v = 0; v < V; v++) {
                            /* p carries the rounding of the float lse and of x - lse: a few
                             * ulp of the logits' size relative to p */
                            const double pv = exp((double)xi[v] - lse);
                            const double g = (pv - (v == tg[i] ? 1.0 - e : 0.0) - e / (double)V) /
                                             (double)N;
                            const double tol = (4e-7 * (fabs(lse) + fabs(xi[v]) + 1.0) * pv) /
                                                   (double)N + 2e-6 * fabs(g) + 1e-8;
                            const double err = fabs(xt->grad[i * V + v] - g) / tol;
                            if (err > worst) worst = err;
                            if (xi[v] == -INFINITY && xt->grad[i * V + v] != 0.0f) zero_ok = 0;
                        }
                    }
                    total /= (double)N;
                    const double lerr = fabs(attn_f32(loss)[0] - total) / (1e-6 * fabs(total) + 1e-7);
                    CHECK(lerr <= 1.0 && worst <= 1.0 && zero_ok,
                          "V %lld smoothing %g threads %d: loss %.9g vs %.9g (%.3g x bound), "
                          "gradient %.3g x bound, -inf logits' gradient 0: %d",
                          (long long)V, (double)e, nt, (double)attn_f32(loss)[0], total, lerr, worst,
                          zero_ok);
                }
                attn_ctx_free(ctx);
                free(x);
            }
    TEST_END();
}

/* cross_entropy on logits of every finite size: rows that sit at an offset
 * of +-10^k (k up to 37) with spreads of 0 to 3 around it, against the loss
 * and gradient in double from the same float logits, smoothing off and on.
 * Until 2026-12-07 the op kept one float lse_i = m_i + log s_i per row,
 * which rounds log s_i away once |m_i| is large: logits [1e30, 1e30] gave a
 * loss of 0 and a gradient [0, 1] instead of log 2 and [-0.5, 0.5], and
 * rows near 1e4 drifted by 5e-4 in the gradient. */
static void run_cross_entropy_extreme(void) {
    TEST_BEGIN("ops/cross_entropy: logits at offsets up to 1e37 against double (loss, gradient)");
    static const double offs[] = {0.0, 1e2, 1e4, 1e6, 1e8, 1e12, 1e20, 1e30, 1e37};
    static const float spreads[] = {0.0f, 0.5f, 3.0f};
    static const int64_t vocab[] = {1, 2, 3, 4, 7, 64, 257};
    attn_rng rng;
    attn_rng_init(&rng, 77);
    attn_ctx *ctx = test_ctx_new((size_t)4 << 20, 1, 0);
    int bad_cases = 0;
    for (int c = 0; ctx && c < 120; c++) {
        const int64_t N = 6, V = vocab[c % 7];
        const float e = c % 2 ? 0.1f : 0.0f;
        float x[6 * 257];
        int32_t tg[6];
        for (int64_t i = 0; i < N; i++) {
            const double off = offs[attn_rng_next_below(&rng, 9)] * (attn_rng_next_below(&rng, 2) ? -1 : 1);
            const float sp = spreads[attn_rng_next_below(&rng, 3)];
            for (int64_t v = 0; v < V; v++)
                x[i * V + v] = (float)(off + (double)sp * attn_rng_next_normal(&rng));
            tg[i] = (int32_t)attn_rng_next_below(&rng, (uint32_t)V);
        }
        attn_ctx_reset(ctx);
        const int64_t sx[2] = {N, V}, st[1] = {N};
        attn_tensor *xt = test_leaf(ctx, 2, sx, x);
        attn_tensor *tt = attn_tensor_from(ctx, ATTN_I32, 1, st, tg);
        attn_tensor *loss = xt && tt ? attn_cross_entropy(ctx, xt, tt, -100, e) : NULL;
        CHECK(loss && attn_backward(ctx, loss) == ATTN_OK && xt->grad, "case %d: %s", c,
              attn_ctx_error(ctx));
        if (!loss || !xt->grad) continue;
        double total = 0.0, worst = 0.0;
        int64_t wi = 0;
        for (int64_t i = 0; i < N; i++) {
            const float *xi = x + i * V;
            double mx = -INFINITY, s = 0.0, sxv = 0.0;
            for (int64_t v = 0; v < V; v++) mx = xi[v] > mx ? xi[v] : mx;
            for (int64_t v = 0; v < V; v++) s += exp((double)xi[v] - mx), sxv += xi[v];
            total += (1.0 - e) * ((mx - xi[tg[i]]) + log(s)) + e * ((mx - sxv / (double)V) + log(s));
            for (int64_t v = 0; v < V; v++) {
                const double pv = exp((double)xi[v] - mx) / s;
                const double g = (pv - (v == tg[i] ? 1.0 - e : 0.0) - e / (double)V) / (double)N;
                const double err = fabs(xt->grad[i * V + v] - g) / (1e-6 / (double)N + 2e-6 * fabs(g));
                if (err > worst) worst = err, wi = i * V + v;
            }
        }
        total /= (double)N;
        /* the smoothing term's mean of the logits is summed in float lanes:
         * its rounding is relative to the logits' size */
        double lsum = 0.0;
        for (int64_t j = 0; j < N * V; j++) lsum += fabs((double)x[j]);
        const double ltol = 1e-6 * fabs(total) + 1e-7 + (e > 0.0f ? 4e-7 * e * lsum / (double)(N * V) : 0.0);
        const double lerr = fabs(attn_f32(loss)[0] - total) / ltol;
        const int ok = lerr <= 1.0 && worst <= 1.0;
        CHECK(ok, "case %d (V %lld, smoothing %g): loss %.9g vs %.9g (%.3g x tolerance), worst "
              "gradient [%lld] %.9g vs bound x %.3g", c, (long long)V, (double)e,
              (double)attn_f32(loss)[0], total, lerr, (long long)wi, (double)xt->grad[wi], worst);
        bad_cases += !ok;
    }
    if (test__verbose) printf("     cross_entropy extreme: %d of 120 cases failed\n", bad_cases);
    attn_ctx_free(ctx);
    TEST_END();
}

/* Edges an audit of the ops found on 2026-12-07, each of which failed
 * before its fix: relu of NaN is NaN with the gradient passed (as
 * torch.relu; it gave 0 and 0), gelu refuses a tanh_approx other than 0/1,
 * slice refuses a start near INT64_MAX (start + len wrapped and a view
 * outside the tensor came back), convolution attributes whose sizes
 * overflow int64 are refused (a dilation or stride of 2^62 gave plausible
 * output sizes), pooling with a kernel near INT64_MAX sizes its output
 * without overflowing,
 * and batch norm in training mode refuses one value per channel (as torch). */
static void run_audit_edges(void) {
    TEST_BEGIN("ops/edges: relu NaN, gelu flag, slice/conv/pool overflow, batchnorm M = 1");
    attn_ctx *ctx = new_ctx((size_t)1 << 20, 1);
    if (ctx) {
        const int64_t s1[1] = {3};
        const float xv[3] = {NAN, -1.0f, 2.0f}, gy[3] = {1.0f, 1.0f, 1.0f};
        attn_tensor *x = test_leaf(ctx, 1, s1, xv);
        attn_tensor *y = x ? attn_relu(ctx, x) : NULL;
        CHECK(y && attn_backward_from(ctx, y, gy) == ATTN_OK, "relu: %s", attn_last_error());
        if (y && x->grad)
            CHECK(isnan(attn_f32(y)[0]) && attn_f32(y)[1] == 0.0f && attn_f32(y)[2] == 2.0f &&
                      x->grad[0] == 1.0f && x->grad[1] == 0.0f && x->grad[2] == 1.0f,
                  "relu([NaN, -1, 2]) = [%g %g %g], gradient [%g %g %g]; expected [NaN 0 2], [1 0 1]",
                  attn_f32(y)[0], attn_f32(y)[1], attn_f32(y)[2], x->grad[0], x->grad[1], x->grad[2]);
        /* test_expect_fail resets the context: every call makes its inputs */
        attn_ctx_reset(ctx);
#define T_(nd, sh) attn_tensor_from(ctx, ATTN_F32, nd, sh, zero)
        static const float zero[32] = {0};
        const int64_t s3[3] = {2, 3, 4}, xs[4] = {1, 1, 5, 5}, w5[4] = {1, 1, 5, 1},
                      w3[4] = {1, 1, 3, 1}, x1s[3] = {1, 1, 5}, bs[3] = {1, 3, 1};
        test_expect_fail(ctx, attn_gelu(ctx, T_(1, s1), 2) == NULL, ATTN_ERR_INVALID_ARG,
                         "tanh_approx", "gelu flag 2");
        test_expect_fail(ctx, attn_gelu(ctx, T_(1, s1), -1) == NULL, ATTN_ERR_INVALID_ARG,
                         "tanh_approx", "gelu flag -1");
        test_expect_fail(ctx, attn_slice(ctx, T_(3, s3), 1, INT64_MAX, 2) == NULL,
                         ATTN_ERR_INVALID_ARG, "slice", "slice start INT64_MAX");
        test_expect_fail(ctx, attn_slice(ctx, T_(3, s3), 1, 1, INT64_MAX) == NULL,
                         ATTN_ERR_INVALID_ARG, "slice", "slice length INT64_MAX");
        const attn_conv2d_opts o = {{0, 0}, {0, 0}, {(int64_t)1 << 62, 1}, 0, {0, 0}};
        test_expect_fail(ctx, attn_conv2d(ctx, T_(4, xs), T_(4, w5), NULL, &o) == NULL,
                         ATTN_ERR_INVALID_ARG, "overflow", "conv2d dilation 2^62");
        const attn_conv2d_opts op = {{0, 0}, {(int64_t)1 << 62, 0}, {0, 0}, 0, {0, 0}};
        test_expect_fail(ctx, attn_conv2d(ctx, T_(4, xs), T_(4, w3), NULL, &op) == NULL,
                         ATTN_ERR_INVALID_ARG, "overflow", "conv2d padding 2^62");
        const attn_conv2d_opts ot = {{(int64_t)1 << 62, 1}, {0, 0}, {0, 0}, 0, {0, 0}};
        test_expect_fail(ctx, attn_conv_transpose2d(ctx, T_(4, xs), T_(4, w3), NULL, &ot) == NULL,
                         ATTN_ERR_INVALID_ARG, "overflow", "conv_transpose2d stride 2^62");
        test_expect_fail(ctx, attn_conv_transpose2d(ctx, T_(4, xs), T_(4, w5), NULL, &o) == NULL,
                         ATTN_ERR_INVALID_ARG, "overflow", "conv_transpose2d dilation 2^62");
        const attn_conv1d_opts oc = {0, 0, (int64_t)1 << 62, 0, 1};
        test_expect_fail(ctx, attn_conv1d(ctx, T_(3, x1s), T_(3, x1s), NULL, &oc) == NULL,
                         ATTN_ERR_INVALID_ARG, "overflow", "causal conv1d dilation 2^62");
        /* H + 2 p - k = 5 + (2^63 - 2) - (2^63 - 1) = 4: a valid (absurd) pool,
         * whose H + 2 p overflowed on the way */
        const attn_pool2d_opts pp = {{INT64_MAX, 1}, {1, 1}, {INT64_MAX / 2, 0}, 0};
        attn_tensor *pm = attn_max_pool2d(ctx, T_(4, xs), &pp, NULL);
        CHECK(pm && pm->shape[2] == 5 && pm->shape[3] == 5,
              "max_pool2d kernel INT64_MAX, padding INT64_MAX / 2: %s",
              pm ? "wrong output size" : attn_last_error());
        attn_ctx_reset(ctx);
        attn_ctx_set_training(ctx, 1);
        test_expect_fail(ctx, attn_batchnorm(ctx, T_(3, bs), NULL, NULL, NULL, NULL, 0.1f, 1e-5f) == NULL,
                         ATTN_ERR_INVALID_ARG, "more than one value", "batchnorm training, M = 1");
#undef T_
        attn_ctx_free(ctx);
    }
    TEST_END();
}

void suite_ops(void) {
    run_vmath();
    run_linear_gelu_train();
    run_cross_entropy_ragged();
    run_cross_entropy_extreme();
    run_audit_edges();
    run_reader();
    run_fixtures();
    run_errors();
    run_autograd();
    run_big_ref();
    run_threads();
}
