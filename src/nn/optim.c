/* optim.c: SGD, Adam and AdamW with PyTorch's update rules, gradient
 * clipping by global norm, and the warmup + cosine learning-rate schedule.
 *
 * The updates follow torch.optim's single-tensor implementations (PyTorch
 * 1.13, foreach off) operation by operation, in float32, with the scalar
 * factors (bias corrections, step size, AdamW's decay factor) computed in
 * double and rounded once, as Python does before handing them to the float
 * kernels. The remaining difference to PyTorch is rounding only (its
 * vectorised kernels may fuse a multiply-add), a few ulps per step.
 *
 * Adam's t is the optimizer's step count, shared by all parameters.
 * PyTorch counts steps per parameter; the two agree unless a parameter is
 * frozen (requires_grad 0) for some steps and unfrozen later. State buffers
 * start at zero, so SGD's "b = g on the first step" and Adam's first moments
 * need no special case: mu * 0 + g == g exactly.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/optim.h"
#include "attn/params.h"

/* The element loops of Adam(W) and of the gradient norm are compiled for the
 * baseline (SSE2), AVX2 and AVX-512 on x86-64 with GCC, chosen at load time
 * (ifunc). The Makefile compiles this file with -fno-math-errno: v >= 0, so
 * sqrtf never sets errno here, and with errno GCC keeps a scalar libm call
 * that stops the loop from vectorising. Elementwise IEEE operations, no FMA
 * contraction (ISO C), fixed sum orders: every clone gives the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ATTN_NO_CLONES)
#define OPT_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define OPT_KERNEL
#endif
#define NORM_LANES 8

struct attn_optim {
    attn_params *ps;
    attn_optim_config cfg; /* defaults filled in */
    int n_params;          /* store size when the optimizer was made */
    int n_buf;             /* state buffers per parameter: 0, 1 or 2 */
    float **buf;           /* n_params * n_buf buffers, each numel floats */
    int64_t steps;
};

static int finite_nonneg(float x) { return isfinite(x) && x >= 0.0f; }

attn_status attn_optim_new(attn_optim **out, attn_params *ps, const attn_optim_config *cfg) {
    if (out) *out = NULL;
    if (!out || !ps || !cfg)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_optim_new: NULL out, store or config");
    attn_optim_config c = *cfg;
    if (c.kind != ATTN_OPTIM_SGD && c.kind != ATTN_OPTIM_ADAM && c.kind != ATTN_OPTIM_ADAMW)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_optim_new: unknown optimizer kind %d",
                           (int)c.kind);
    if (!finite_nonneg(c.lr))
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_optim_new: lr %g, expected finite >= 0",
                           (double)c.lr);
    if (!finite_nonneg(c.weight_decay))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_optim_new: weight_decay %g, expected finite >= 0",
                           (double)c.weight_decay);
    int n_buf;
    if (c.kind == ATTN_OPTIM_SGD) {
        if (!finite_nonneg(c.momentum))
            return attn__error(ATTN_ERR_INVALID_ARG,
                               "attn_optim_new: momentum %g, expected finite >= 0",
                               (double)c.momentum);
        /* torch.optim.SGD: "Nesterov momentum requires a momentum". */
        if (c.nesterov && c.momentum == 0.0f)
            return attn__error(ATTN_ERR_INVALID_ARG,
                               "attn_optim_new: nesterov needs momentum > 0");
        c.nesterov = c.nesterov != 0;
        n_buf = c.momentum != 0.0f ? 1 : 0;
    } else {
        if (c.beta1 == 0.0f && c.beta2 == 0.0f) {
            c.beta1 = 0.9f;
            c.beta2 = 0.999f;
        }
        if (c.eps == 0.0f) c.eps = 1e-8f;
        if (!(c.beta1 >= 0.0f && c.beta1 < 1.0f) || !(c.beta2 >= 0.0f && c.beta2 < 1.0f))
            return attn__error(ATTN_ERR_INVALID_ARG,
                               "attn_optim_new: betas (%g, %g), expected each in [0, 1)",
                               (double)c.beta1, (double)c.beta2);
        if (!(isfinite(c.eps) && c.eps > 0.0f))
            return attn__error(ATTN_ERR_INVALID_ARG, "attn_optim_new: eps %g, expected > 0",
                               (double)c.eps);
        n_buf = 2;
    }

    attn_optim *o = calloc(1, sizeof *o);
    if (!o) return attn__error(ATTN_ERR_OOM, "attn_optim_new: out of memory");
    o->ps = ps;
    o->cfg = c;
    o->n_params = attn_params_count(ps);
    o->n_buf = n_buf;
    size_t n_ptr = (size_t)o->n_params * (size_t)n_buf;
    if (n_ptr) {
        o->buf = calloc(n_ptr, sizeof *o->buf);
        if (!o->buf) {
            free(o);
            return attn__error(ATTN_ERR_OOM, "attn_optim_new: out of memory");
        }
    }
    for (int i = 0; i < o->n_params; i++) {
        attn_tensor *p = attn_params_at(ps, i);
        for (int k = 0; k < n_buf; k++) {
            /* calloc checks numel * sizeof(float) for overflow itself. */
            float *b = calloc((size_t)attn_tensor_numel(p), sizeof(float));
            if (!b) {
                attn_optim_free(o);
                return attn__error(ATTN_ERR_OOM,
                                   "attn_optim_new: cannot allocate the state of '%s' (%lld "
                                   "floats)", p->name, (long long)attn_tensor_numel(p));
            }
            o->buf[(size_t)i * (size_t)n_buf + (size_t)k] = b;
        }
    }
    *out = o;
    return ATTN_OK;
}

void attn_optim_free(attn_optim *opt) {
    if (!opt) return;
    size_t n_ptr = (size_t)opt->n_params * (size_t)opt->n_buf;
    for (size_t i = 0; opt->buf && i < n_ptr; i++) free(opt->buf[i]);
    free(opt->buf);
    free(opt);
}

/* torch.optim.SGD, one parameter (dampening 0):
 *   d_p = d_p.add(param, alpha=weight_decay)
 *   buf.mul_(momentum).add_(d_p)              (buf = clone(d_p) on step 1)
 *   d_p = d_p.add(buf, alpha=momentum) if nesterov else buf
 *   param.add_(d_p, alpha=-lr)                                           */
static void sgd_update(float *restrict p, const float *restrict g, float *restrict b, int64_t n,
                       float lr, float wd, float mu, int nesterov) {
    if (!b) {
        for (int64_t j = 0; j < n; j++) {
            float d = g[j] + wd * p[j];
            p[j] = p[j] - lr * d;
        }
    } else if (nesterov) {
        for (int64_t j = 0; j < n; j++) {
            float d = g[j] + wd * p[j];
            float bj = b[j] * mu + d;
            b[j] = bj;
            p[j] = p[j] - lr * (d + mu * bj);
        }
    } else {
        for (int64_t j = 0; j < n; j++) {
            float d = g[j] + wd * p[j];
            float bj = b[j] * mu + d;
            b[j] = bj;
            p[j] = p[j] - lr * bj;
        }
    }
}

/* torch.optim.Adam / AdamW, one parameter:
 *   param.mul_(1 - lr * weight_decay)                     (AdamW: decay)
 *   grad = grad.add(param, alpha=weight_decay)            (Adam: L2)
 *   exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
 *   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
 *   denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
 *   param.addcdiv_(exp_avg, denom, value=-step_size)
 * with decay = 1 - lr * wd (AdamW, else 1), l2 = wd (Adam, else 0). */
OPT_KERNEL static void adam_update(float *restrict p, const float *restrict g, float *restrict m,
                        float *restrict v, int64_t n, float decay, float l2, float b1, float omb1,
                        float b2, float omb2, float bc2_sqrt, float eps, float neg_step) {
    for (int64_t j = 0; j < n; j++) {
        float pj = p[j] * decay;
        float gj = g[j] + l2 * pj;
        float mj = m[j] * b1 + omb1 * gj;
        float vj = v[j] * b2 + omb2 * gj * gj;
        m[j] = mj;
        v[j] = vj;
        float denom = sqrtf(vj) / bc2_sqrt + eps;
        p[j] = pj + neg_step * mj / denom;
    }
}

attn_status attn_optim_step(attn_optim *opt, float lr) {
    if (!opt) return attn__error(ATTN_ERR_INVALID_ARG, "attn_optim_step: optimizer is NULL");
    if (!finite_nonneg(lr))
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_optim_step: lr %g, expected finite >= 0",
                           (double)lr);
    if (attn_params_count(opt->ps) != opt->n_params)
        return attn__error(ATTN_ERR_STATE,
                           "attn_optim_step: the store has %d parameters, the optimizer was "
                           "made for %d", attn_params_count(opt->ps), opt->n_params);
    /* All gradients are checked before any parameter changes, so that a
     * non-finite gradient leaves the model and the state as they were. */
    for (int i = 0; i < opt->n_params; i++) {
        attn_tensor *p = attn_params_at(opt->ps, i);
        if (!p->requires_grad) continue;
        const float *g = p->grad;
        int64_t n = attn_tensor_numel(p);
        int bad = 0;
        for (int64_t j = 0; j < n; j++) bad |= !isfinite(g[j]);
        if (bad) {
            int64_t j = 0;
            while (isfinite(g[j])) j++;
            return attn__error(ATTN_ERR_NUMERIC,
                               "attn_optim_step: gradient of '%s' %s is %g at element %lld; no "
                               "parameter was updated", p->name, attn__shp(p), (double)g[j],
                               (long long)j);
        }
    }

    const attn_optim_config *c = &opt->cfg;
    int64_t t = opt->steps + 1;
    float decay = 1.0f, l2 = 0.0f, b1 = 0, omb1 = 0, b2 = 0, omb2 = 0, bc2s = 0, neg_step = 0;
    if (c->kind != ATTN_OPTIM_SGD) {
        /* Python computes these in double and the kernels take them as
         * float: 1 - beta, 1 - lr * wd, lr / bias_correction1 and
         * sqrt(bias_correction2). */
        double bc1 = 1.0 - pow((double)c->beta1, (double)t);
        double bc2 = 1.0 - pow((double)c->beta2, (double)t);
        b1 = c->beta1;
        b2 = c->beta2;
        omb1 = (float)(1.0 - (double)c->beta1);
        omb2 = (float)(1.0 - (double)c->beta2);
        bc2s = (float)sqrt(bc2);
        neg_step = (float)(-((double)lr / bc1));
        if (c->kind == ATTN_OPTIM_ADAMW) decay = (float)(1.0 - (double)lr * c->weight_decay);
        else l2 = c->weight_decay;
    }
    for (int i = 0; i < opt->n_params; i++) {
        attn_tensor *p = attn_params_at(opt->ps, i);
        if (!p->requires_grad) continue;
        int64_t n = attn_tensor_numel(p);
        float **b = opt->buf ? opt->buf + (size_t)i * (size_t)opt->n_buf : NULL;
        if (c->kind == ATTN_OPTIM_SGD)
            sgd_update(attn_f32(p), p->grad, opt->n_buf ? b[0] : NULL, n, lr, c->weight_decay,
                       c->momentum, c->nesterov);
        else
            adam_update(attn_f32(p), p->grad, b[0], b[1], n, decay, l2, b1, omb1, b2, omb2, bc2s,
                        c->eps, neg_step);
    }
    opt->steps = t;
    return ATTN_OK;
}

int64_t attn_optim_steps(const attn_optim *opt) { return opt ? opt->steps : 0; }

const attn_optim_config *attn_optim_get_config(const attn_optim *opt) {
    return opt ? &opt->cfg : NULL;
}

int attn_optim_state(attn_optim *opt, int index, float **buf0, float **buf1) {
    if (buf0) *buf0 = NULL;
    if (buf1) *buf1 = NULL;
    if (!opt || index < 0 || index >= opt->n_params || opt->n_buf == 0) return 0;
    float **b = opt->buf + (size_t)index * (size_t)opt->n_buf;
    if (buf0) *buf0 = b[0];
    if (buf1 && opt->n_buf > 1) *buf1 = b[1];
    return opt->n_buf;
}

void attn_optim_set_steps(attn_optim *opt, int64_t steps) {
    if (opt && steps >= 0) opt->steps = steps;
}

/* torch.nn.utils.clip_grad_norm_ (norm_type 2):
 *   total_norm = norm(stack([norm(g) for g in grads]))
 *   clip_coef = max_norm / (total_norm + 1e-6)    (Tensor.__rtruediv__:
 *                                                   reciprocal() * max_norm)
 *   g.mul_(clamp(clip_coef, max=1.0))
 * The sum of squares runs in double over every gradient (one pass, fixed
 * order), then rounds to float like PyTorch's float32 total_norm. Only
 * parameters with requires_grad take part, as only they have gradients in
 * PyTorch's sense. */
/* sum_j g_j^2 in double, NORM_LANES partial sums combined in a fixed order. */
OPT_KERNEL static double sum_squares(const float *restrict g, int64_t n) {
    double acc[NORM_LANES] = {0};
    int64_t j = 0;
    for (; j + NORM_LANES <= n; j += NORM_LANES)
        for (int k = 0; k < NORM_LANES; k++) acc[k] += (double)g[j + k] * (double)g[j + k];
    for (int k = 0; j < n; j++, k++) acc[k] += (double)g[j] * (double)g[j];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

float attn_clip_grad_norm(attn_params *ps, float max_norm) {
    if (!ps) {
        attn__error(ATTN_ERR_INVALID_ARG, "attn_clip_grad_norm: store is NULL");
        return NAN;
    }
    if (!(max_norm >= 0.0f)) {
        attn__error(ATTN_ERR_INVALID_ARG, "attn_clip_grad_norm: max_norm %g, expected >= 0",
                    (double)max_norm);
        return NAN;
    }
    double ss = 0.0;
    int count = attn_params_count(ps);
    for (int i = 0; i < count; i++) {
        attn_tensor *p = attn_params_at(ps, i);
        if (!p->requires_grad) continue;
        const float *g = p->grad;
        int64_t n = attn_tensor_numel(p);
        ss += sum_squares(g, n);
    }
    float norm = (float)sqrt(ss);
    if (!isfinite(norm)) return norm;
    float coef = (1.0f / (norm + 1e-6f)) * max_norm;
    if (coef < 1.0f) {
        for (int i = 0; i < count; i++) {
            attn_tensor *p = attn_params_at(ps, i);
            if (!p->requires_grad) continue;
            float *g = p->grad;
            int64_t n = attn_tensor_numel(p);
            for (int64_t j = 0; j < n; j++) g[j] *= coef;
        }
    }
    return norm;
}

/* lr(step) = lr_max * step / warmup                          step < warmup
 *          = lr_min + (lr_max - lr_min) * (1 + cos(pi * q)) / 2,
 *            q = (step - warmup) / (total - warmup)           warmup <= step < total
 *          = lr_min                                           step >= total
 * (the shape of Hugging Face's get_cosine_schedule_with_warmup, with a floor). */
float attn_lr_warmup_cosine(int64_t step, int64_t warmup, int64_t total, float lr_max,
                            float lr_min) {
    if (step < 0) step = 0;
    if (warmup < 0) warmup = 0;
    if (step < warmup) return (float)((double)lr_max * (double)step / (double)warmup);
    if (step >= total) return lr_min;
    double q = (double)(step - warmup) / (double)(total - warmup);
    double pi = 3.14159265358979323846;
    return (float)((double)lr_min + ((double)lr_max - (double)lr_min) * 0.5 * (1.0 + cos(pi * q)));
}
