/* _attn.c: the CPython extension module attn._attn, a thin layer over
 * libattn (linked statically). docs/python.md explains the design.
 *
 * Arrays cross with the buffer protocol only (no numpy C API, so the module
 * builds without numpy's headers): every input must be a C-contiguous
 * buffer of float32 ('f') or int32 ('i'); the Python layer (attn/__init__.py)
 * converts with np.ascontiguousarray, which is free when the array already
 * is one, and allocates the outputs. Inputs are read in place: their
 * attn_tensor descriptors point at the caller's memory, and gradients are
 * accumulated straight into the caller's (zeroed) gradient arrays. Outputs
 * the library allocates in its arena (the attention output, weights) are
 * copied once into the caller's array.
 *
 * Each call makes its own context (the arena is reserved lazily by the OS)
 * and releases the GIL while the library computes, so Python threads may
 * call in parallel. Errors raise attn.AttnError (ValueError) with the
 * library's message, which names the op, the shapes and what was expected.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

#define NONE_REF() (Py_INCREF(Py_None), Py_None)

static PyObject *AttnError;

/* ---- buffers ------------------------------------------------------------------ */

typedef struct arg {
    Py_buffer view;
    int held;
    attn_tensor t;
} arg;

static void arg_release(arg *a) {
    if (a->held) PyBuffer_Release(&a->view);
    a->held = 0;
}

static int format_is(const char *fmt, char want) {
    if (!fmt) return want == 'B';
    if (fmt[0] == '=' || fmt[0] == '<' || fmt[0] == '@') fmt++;
    if (fmt[0] == want && fmt[1] == 0) return 1;
    /* int32 is 'l' where long has 4 bytes */
    return want == 'i' && fmt[0] == 'l' && fmt[1] == 0 && sizeof(long) == 4;
}

/* Takes a C-contiguous buffer of float32 (dtype ATTN_F32) or int32
 * (ATTN_I32) with ndim in [min_nd, max_nd]; writable when asked. None is
 * accepted (a->t.data NULL) when optional. */
static int arg_get(PyObject *obj, const char *name, attn_dtype dtype, int min_nd, int max_nd,
                   int writable, int optional, arg *a) {
    memset(a, 0, sizeof *a);
    if (obj == Py_None || obj == NULL) {
        if (optional) return 0;
        PyErr_Format(PyExc_TypeError, "%s: an array is required, got None", name);
        return -1;
    }
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &a->view, flags) != 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "%s: expected a C-contiguous %s%s array (numpy.ascontiguousarray)", name,
                     writable ? "writable " : "", dtype == ATTN_F32 ? "float32" : "int32");
        return -1;
    }
    a->held = 1;
    const char want = dtype == ATTN_F32 ? 'f' : 'i';
    if (a->view.itemsize != 4 || !format_is(a->view.format, want)) {
        PyErr_Format(PyExc_TypeError, "%s: expected %s, got buffer format '%s'", name,
                     dtype == ATTN_F32 ? "float32" : "int32",
                     a->view.format ? a->view.format : "B");
        arg_release(a);
        return -1;
    }
    if (a->view.ndim < min_nd || a->view.ndim > max_nd) {
        if (min_nd == max_nd)
            PyErr_Format(PyExc_ValueError, "%s: expected %d dimensions, got %d", name, min_nd,
                         a->view.ndim);
        else
            PyErr_Format(PyExc_ValueError, "%s: expected %d to %d dimensions, got %d", name,
                         min_nd, max_nd, a->view.ndim);
        arg_release(a);
        return -1;
    }
    attn_tensor *t = &a->t;
    t->dtype = dtype;
    t->ndim = a->view.ndim;
    int64_t stride = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->shape[i] = (int64_t)a->view.shape[i];
        t->stride[i] = stride;
        stride *= t->shape[i];
    }
    t->data = a->view.buf;
    t->node = -1;
    return 0;
}

static int same_numel(const arg *a, const arg *b, const char *an, const char *bn) {
    if (attn_tensor_numel(&a->t) != attn_tensor_numel(&b->t)) {
        PyErr_Format(PyExc_ValueError, "%s has %lld elements, %s has %lld: expected the same",
                     an, (long long)attn_tensor_numel(&a->t), bn,
                     (long long)attn_tensor_numel(&b->t));
        return 0;
    }
    return 1;
}

static int same_shape(const attn_tensor *a, const attn_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static PyObject *raise_ctx(attn_ctx *ctx, const char *fallback) {
    const char *msg = ctx ? attn_ctx_error(ctx) : attn_last_error();
    PyErr_SetString(AttnError, msg && msg[0] ? msg : fallback);
    return NULL;
}

/* A context for one call: the arena holds what the call allocates (outputs,
 * saved statistics, gradients of intermediates); `bytes` is the caller's
 * estimate, with room to spare (the OS backs only the pages touched). */
static attn_ctx *ctx_for(size_t bytes, int threads, uint64_t seed) {
    attn_ctx_config cfg = {0};
    cfg.arena_bytes = bytes < ((size_t)64 << 20) ? ((size_t)64 << 20) : bytes;
    cfg.n_threads = threads > 0 ? threads : 0;
    cfg.seed = seed;
    attn_ctx *ctx = NULL;
    if (attn_ctx_new(&ctx, &cfg) != ATTN_OK) {
        PyErr_SetString(PyExc_MemoryError, attn_last_error());
        return NULL;
    }
    return ctx;
}

/* ---- scaled dot-product attention --------------------------------------------- */

typedef struct sdpa_args {
    arg q, k, v, bias, key_lengths, alibi;
    attn_sdpa_opts opts;
    int fused, threads, use_ref;
    unsigned long long seed;
} sdpa_args;

static void sdpa_release(sdpa_args *s) {
    arg_release(&s->q);
    arg_release(&s->k);
    arg_release(&s->v);
    arg_release(&s->bias);
    arg_release(&s->key_lengths);
    arg_release(&s->alibi);
}

static int sdpa_take(sdpa_args *s, PyObject *q, PyObject *k, PyObject *v, PyObject *bias,
                     PyObject *key_lengths, PyObject *alibi, double scale, int causal,
                     long long window, double dropout) {
    if (arg_get(q, "q", ATTN_F32, 4, 4, 0, 0, &s->q) || arg_get(k, "k", ATTN_F32, 4, 4, 0, 0, &s->k) ||
        arg_get(v, "v", ATTN_F32, 4, 4, 0, 0, &s->v) ||
        arg_get(bias, "bias", ATTN_F32, 1, 4, 0, 1, &s->bias) ||
        arg_get(key_lengths, "key_lengths", ATTN_I32, 1, 1, 0, 1, &s->key_lengths) ||
        arg_get(alibi, "alibi_slopes", ATTN_F32, 1, 1, 0, 1, &s->alibi))
        return -1;
    memset(&s->opts, 0, sizeof s->opts);
    s->opts.scale = (float)scale;
    s->opts.causal = causal;
    s->opts.window = (int64_t)window;
    s->opts.dropout = (float)dropout;
    s->opts.bias = s->bias.t.data ? &s->bias.t : NULL;
    s->opts.key_lengths = s->key_lengths.t.data ? &s->key_lengths.t : NULL;
    s->opts.alibi_slopes = s->alibi.t.data ? &s->alibi.t : NULL;
    return 0;
}

static size_t sdpa_arena(const sdpa_args *s, int fused, int backward) {
    const attn_tensor *q = &s->q.t, *k = &s->k.t, *v = &s->v.t;
    double B = (double)q->shape[0], H = (double)q->shape[1], T = (double)q->shape[2];
    double S = (double)k->shape[2], Dv = (double)v->shape[3];
    double n = (double)attn_tensor_numel(q) + (double)attn_tensor_numel(k) +
               (double)attn_tensor_numel(v) + B * H * T * Dv;
    double bytes = 4.0 * n * (backward ? 4.0 : 2.0) + 4.0 * B * H * T * 2.0;
    if (!fused || s->opts.bias || s->opts.dropout > 0) bytes += 4.0 * B * H * T * S * (backward ? 4.0 : 2.0);
    bytes += (double)((size_t)32 << 20);
    if (bytes > 1e15) bytes = 1e15;
    return (size_t)bytes;
}

static attn_tensor *sdpa_run(attn_ctx *ctx, sdpa_args *s, attn_tensor **weights) {
    if (s->use_ref) attn_ctx_set_use_ref(ctx, 1);
    attn_ctx_set_training(ctx, s->opts.dropout > 0);
    return s->fused ? attn_flash_sdpa(ctx, &s->q.t, &s->k.t, &s->v.t, &s->opts, weights)
                    : attn_sdpa(ctx, &s->q.t, &s->k.t, &s->v.t, &s->opts, weights);
}

static int copy_out(const attn_tensor *src, arg *dst, const char *name) {
    if (!same_shape(src, &dst->t)) {
        char a[64], b[64];
        PyErr_Format(PyExc_ValueError, "%s: the result is %s, the array given is %s", name,
                     attn_shape_str(src, a, sizeof a), attn_shape_str(&dst->t, b, sizeof b));
        return -1;
    }
    memcpy(dst->t.data, src->data, (size_t)attn_tensor_numel(src) * 4);
    return 0;
}

static char *sdpa_kw[] = {"q", "k", "v", "out", "weights", "fused", "causal", "scale", "window",
                          "bias", "key_lengths", "alibi_slopes", "dropout", "seed", "threads",
                          "use_ref", NULL};

/* sdpa(q, k, v, out, weights=None, fused=1, causal=0, scale=0.0, window=0,
 *      bias=None, key_lengths=None, alibi_slopes=None, dropout=0.0, seed=0,
 *      threads=0, use_ref=0) -> None: writes out [B,H,T,Dv] (and weights
 *      [B,H,T,S] when given). */
static PyObject *py_sdpa(PyObject *self, PyObject *args, PyObject *kw) {
    PyObject *q, *k, *v, *out, *weights = Py_None, *bias = Py_None, *kl = Py_None, *alibi = Py_None;
    int fused = 1, causal = 0, threads = 0, use_ref = 0;
    double scale = 0.0, dropout = 0.0;
    long long window = 0;
    unsigned long long seed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|OppdLOOOdKip", sdpa_kw, &q, &k, &v, &out,
                                     &weights, &fused, &causal, &scale, &window, &bias, &kl,
                                     &alibi, &dropout, &seed, &threads, &use_ref))
        return NULL;
    sdpa_args s;
    memset(&s, 0, sizeof s);
    arg o, w;
    memset(&o, 0, sizeof o);
    memset(&w, 0, sizeof w);
    PyObject *ret = NULL;
    attn_ctx *ctx = NULL;
    if (sdpa_take(&s, q, k, v, bias, kl, alibi, scale, causal, window, dropout)) goto done;
    if (arg_get(out, "out", ATTN_F32, 4, 4, 1, 0, &o) ||
        arg_get(weights, "weights", ATTN_F32, 4, 4, 1, 1, &w))
        goto done;
    s.fused = fused;
    s.threads = threads;
    s.use_ref = use_ref;
    if (!(ctx = ctx_for(sdpa_arena(&s, fused, 0) + (w.t.data ? (size_t)attn_tensor_numel(&w.t) * 4 : 0),
                        threads, seed)))
        goto done;
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *res, *wres = NULL;
    Py_BEGIN_ALLOW_THREADS
    res = sdpa_run(ctx, &s, w.t.data ? &wres : NULL);
    Py_END_ALLOW_THREADS
    if (!res) {
        raise_ctx(ctx, "sdpa failed");
        goto done;
    }
    if (copy_out(res, &o, "out")) goto done;
    if (w.t.data && copy_out(wres, &w, "weights")) goto done;
    ret = NONE_REF();
done:
    attn_ctx_free(ctx);
    sdpa_release(&s);
    arg_release(&o);
    arg_release(&w);
    return ret;
}

static char *sdpa_bw_kw[] = {"q", "k", "v", "grad_out", "dq", "dk", "dv", "dbias", "out", "fused",
                             "causal", "scale", "window", "bias", "key_lengths", "alibi_slopes",
                             "dropout", "seed", "threads", "use_ref", NULL};

/* sdpa_backward(q, k, v, grad_out, dq, dk, dv, dbias=None, out=None, fused=1,
 *               ... the options of sdpa ...) -> None. Runs the forward
 * again (the fused kernel keeps only O(T) statistics, so this costs one
 * forward) and the backward from grad_out; ADDS the gradients into dq, dk,
 * dv (and dbias, of the bias's own shape, when given), which the caller
 * zeroes. out, when given, receives the forward's output. */
static PyObject *py_sdpa_backward(PyObject *self, PyObject *args, PyObject *kw) {
    PyObject *q, *k, *v, *go, *dq, *dk, *dv, *dbias = Py_None, *out = Py_None;
    PyObject *bias = Py_None, *kl = Py_None, *alibi = Py_None;
    int fused = 1, causal = 0, threads = 0, use_ref = 0;
    double scale = 0.0, dropout = 0.0;
    long long window = 0;
    unsigned long long seed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOO|OOppdLOOOdKip", sdpa_bw_kw, &q, &k, &v, &go,
                                     &dq, &dk, &dv, &dbias, &out, &fused, &causal, &scale, &window,
                                     &bias, &kl, &alibi, &dropout, &seed, &threads, &use_ref))
        return NULL;
    sdpa_args s;
    memset(&s, 0, sizeof s);
    arg g, gq, gk, gv, gb, o;
    memset(&g, 0, sizeof g);
    memset(&gq, 0, sizeof gq);
    memset(&gk, 0, sizeof gk);
    memset(&gv, 0, sizeof gv);
    memset(&gb, 0, sizeof gb);
    memset(&o, 0, sizeof o);
    PyObject *ret = NULL;
    attn_ctx *ctx = NULL;
    if (sdpa_take(&s, q, k, v, bias, kl, alibi, scale, causal, window, dropout)) goto done;
    if (arg_get(go, "grad_out", ATTN_F32, 4, 4, 0, 0, &g) ||
        arg_get(dq, "dq", ATTN_F32, 4, 4, 1, 0, &gq) || arg_get(dk, "dk", ATTN_F32, 4, 4, 1, 0, &gk) ||
        arg_get(dv, "dv", ATTN_F32, 4, 4, 1, 0, &gv) ||
        arg_get(dbias, "dbias", ATTN_F32, 1, 4, 1, 1, &gb) ||
        arg_get(out, "out", ATTN_F32, 4, 4, 1, 1, &o))
        goto done;
    if (!same_shape(&gq.t, &s.q.t) || !same_shape(&gk.t, &s.k.t) || !same_shape(&gv.t, &s.v.t)) {
        PyErr_SetString(PyExc_ValueError, "sdpa_backward: dq, dk, dv must have the shapes of q, k, v");
        goto done;
    }
    if (gb.t.data && (!s.bias.t.data || !same_shape(&gb.t, &s.bias.t))) {
        PyErr_SetString(PyExc_ValueError, "sdpa_backward: dbias needs a bias of the same shape");
        goto done;
    }
    s.fused = fused;
    s.threads = threads;
    s.use_ref = use_ref;
    s.q.t.requires_grad = s.k.t.requires_grad = s.v.t.requires_grad = 1;
    s.q.t.grad = (float *)gq.t.data;
    s.k.t.grad = (float *)gk.t.data;
    s.v.t.grad = (float *)gv.t.data;
    if (gb.t.data) {
        s.bias.t.requires_grad = 1;
        s.bias.t.grad = (float *)gb.t.data;
    }
    if (!(ctx = ctx_for(sdpa_arena(&s, fused, 1), threads, seed))) goto done;
    attn_tensor *res;
    attn_status st = ATTN_OK;
    int shape_ok = 1;
    Py_BEGIN_ALLOW_THREADS
    res = sdpa_run(ctx, &s, NULL);
    if (res && !same_shape(res, &g.t)) shape_ok = 0;
    if (res && shape_ok) st = attn_backward_from(ctx, res, (const float *)g.t.data);
    Py_END_ALLOW_THREADS
    if (!res || st != ATTN_OK) {
        raise_ctx(ctx, "sdpa_backward failed");
        goto done;
    }
    if (!shape_ok) {
        PyErr_SetString(PyExc_ValueError, "sdpa_backward: grad_out must have the output's shape [B,H,T,Dv]");
        goto done;
    }
    if (o.t.data && copy_out(res, &o, "out")) goto done;
    ret = NONE_REF();
done:
    attn_ctx_free(ctx);
    sdpa_release(&s);
    arg_release(&g);
    arg_release(&gq);
    arg_release(&gk);
    arg_release(&gv);
    arg_release(&gb);
    arg_release(&o);
    return ret;
}

/* ---- positions ------------------------------------------------------------------ */

/* sinusoidal(out [T,E], pos0=0, base=0.0) */
static PyObject *py_sinusoidal(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwl[] = {"out", "pos0", "base", NULL};
    PyObject *out;
    long long pos0 = 0;
    double base = 0.0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|Ld", kwl, &out, &pos0, &base)) return NULL;
    arg o;
    if (arg_get(out, "out", ATTN_F32, 2, 2, 1, 0, &o)) return NULL;
    PyObject *ret = NULL;
    attn_ctx *ctx = ctx_for((size_t)attn_tensor_numel(&o.t) * 4 + ((size_t)1 << 20), 1, 0);
    if (ctx) {
        attn_tensor *r = attn_sinusoidal_positions(ctx, o.t.shape[0], o.t.shape[1], pos0, (float)base);
        if (!r) raise_ctx(ctx, "sinusoidal_positions failed");
        else if (!copy_out(r, &o, "out")) ret = NONE_REF();
    }
    attn_ctx_free(ctx);
    arg_release(&o);
    return ret;
}

/* rope(x [B,H,T,D], out, positions=None, pos0=0, theta=0, rotary_dim=0,
 *      interleaved=False, grad=False): out = RoPE(x); with grad=True, x is
 * an upstream gradient and out receives the gradient of the input (the
 * rotation by -phi), so that one entry point serves both directions. */
static PyObject *py_rope(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwl[] = {"x", "out", "positions", "pos0", "theta", "rotary_dim", "interleaved",
                          "grad", "threads", NULL};
    PyObject *x, *out, *pos = Py_None;
    long long pos0 = 0, rdim = 0;
    double theta = 0.0;
    int inter = 0, grad = 0, threads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OLdLppi", kwl, &x, &out, &pos, &pos0, &theta,
                                     &rdim, &inter, &grad, &threads))
        return NULL;
    arg a, o, p;
    memset(&a, 0, sizeof a);
    memset(&o, 0, sizeof o);
    memset(&p, 0, sizeof p);
    PyObject *ret = NULL;
    attn_ctx *ctx = NULL;
    if (arg_get(x, "x", ATTN_F32, 4, 4, 0, 0, &a) || arg_get(out, "out", ATTN_F32, 4, 4, 1, 0, &o) ||
        arg_get(pos, "positions", ATTN_I32, 1, 2, 0, 1, &p))
        goto done;
    if (!same_numel(&a, &o, "x", "out")) goto done;
    attn_rope_opts ro = {pos0, p.t.data ? &p.t : NULL, (float)theta, rdim, inter};
    if (!(ctx = ctx_for((size_t)attn_tensor_numel(&a.t) * 16 + ((size_t)16 << 20), threads, 0))) goto done;
    attn_tensor *r;
    attn_status st = ATTN_OK;
    if (grad) {
        /* The op is linear in x: its backward does not read x, so the
         * gradient itself serves as the forward's input. */
        a.t.requires_grad = 1;
        a.t.grad = (float *)o.t.data;
        memset(o.t.data, 0, (size_t)attn_tensor_numel(&o.t) * 4);
    } else {
        attn_ctx_set_grad_enabled(ctx, 0);
    }
    Py_BEGIN_ALLOW_THREADS
    r = attn_rope(ctx, &a.t, &ro);
    if (r && grad) st = attn_backward_from(ctx, r, (const float *)a.t.data);
    Py_END_ALLOW_THREADS
    if (!r || st != ATTN_OK) {
        raise_ctx(ctx, "rope failed");
        goto done;
    }
    if (!grad && copy_out(r, &o, "out")) goto done;
    ret = NONE_REF();
done:
    attn_ctx_free(ctx);
    arg_release(&a);
    arg_release(&o);
    arg_release(&p);
    return ret;
}

/* alibi_slopes(out [H]) */
static PyObject *py_alibi_slopes(PyObject *self, PyObject *args) {
    PyObject *out;
    if (!PyArg_ParseTuple(args, "O", &out)) return NULL;
    arg o;
    if (arg_get(out, "out", ATTN_F32, 1, 1, 1, 0, &o)) return NULL;
    if (o.t.shape[0] > (1 << 20)) {
        arg_release(&o);
        PyErr_SetString(PyExc_ValueError, "alibi_slopes: more than 2^20 heads");
        return NULL;
    }
    attn_alibi_slopes((int)o.t.shape[0], (float *)o.t.data);
    arg_release(&o);
    Py_RETURN_NONE;
}

/* alibi_bias(out [1,H,T,S], causal) */
static PyObject *py_alibi_bias(PyObject *self, PyObject *args) {
    PyObject *out;
    int causal = 0;
    if (!PyArg_ParseTuple(args, "Op", &out, &causal)) return NULL;
    arg o;
    if (arg_get(out, "out", ATTN_F32, 4, 4, 1, 0, &o)) return NULL;
    PyObject *ret = NULL;
    attn_ctx *ctx = NULL;
    if (o.t.shape[0] != 1 || o.t.shape[1] > (1 << 20)) {
        PyErr_SetString(PyExc_ValueError, "alibi_bias: out must be [1, H, T, S]");
        goto done;
    }
    if (!(ctx = ctx_for((size_t)attn_tensor_numel(&o.t) * 4 + ((size_t)1 << 20), 1, 0))) goto done;
    attn_tensor *r = attn_alibi_bias(ctx, (int)o.t.shape[1], o.t.shape[2], o.t.shape[3], causal);
    if (!r) raise_ctx(ctx, "alibi_bias failed");
    else if (!copy_out(r, &o, "out")) ret = NONE_REF();
done:
    attn_ctx_free(ctx);
    arg_release(&o);
    return ret;
}

/* rel(kind, a, table, out, grad_out=None, da=None, dtable=None, S=0, offset=0):
 * Shaw et al.'s relative positions. kind 0: REL_LOGITS, a = q [B,H,T,D],
 * table = rel_k [2K+1, D], out [B,H,T,S]; kind 1: REL_VALUES, a = p
 * [B,H,T,S], table = rel_v [2K+1, Dv], out [B,H,T,Dv]. With grad_out, the
 * backward ADDS the gradients into da and dtable (zeroed by the caller). */
static PyObject *py_rel(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwl[] = {"kind", "a", "table", "out", "grad_out", "da", "dtable", "S", "offset",
                          "threads", NULL};
    PyObject *a_o, *t_o, *out_o, *go_o = Py_None, *da_o = Py_None, *dt_o = Py_None;
    int kind, threads = 0;
    long long S = 0, offset = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iOOO|OOOLLi", kwl, &kind, &a_o, &t_o, &out_o, &go_o,
                                     &da_o, &dt_o, &S, &offset, &threads))
        return NULL;
    arg a, t, o, g, da, dt;
    memset(&a, 0, sizeof a);
    memset(&t, 0, sizeof t);
    memset(&o, 0, sizeof o);
    memset(&g, 0, sizeof g);
    memset(&da, 0, sizeof da);
    memset(&dt, 0, sizeof dt);
    PyObject *ret = NULL;
    attn_ctx *ctx = NULL;
    const int bw = go_o != Py_None;
    if (arg_get(a_o, kind ? "p" : "q", ATTN_F32, 4, 4, 0, 0, &a) ||
        arg_get(t_o, kind ? "rel_v" : "rel_k", ATTN_F32, 2, 2, 0, 0, &t) ||
        arg_get(out_o, "out", ATTN_F32, 4, 4, 1, 0, &o) ||
        arg_get(go_o, "grad_out", ATTN_F32, 4, 4, 0, 1, &g) ||
        arg_get(da_o, "da", ATTN_F32, 4, 4, 1, !bw, &da) ||
        arg_get(dt_o, "dtable", ATTN_F32, 2, 2, 1, !bw, &dt))
        goto done;
    if (bw && (!same_shape(&da.t, &a.t) || !same_shape(&dt.t, &t.t) || !same_shape(&g.t, &o.t))) {
        PyErr_SetString(PyExc_ValueError, "rel backward: the gradients must have their tensors' shapes");
        goto done;
    }
    if (bw) {
        a.t.requires_grad = t.t.requires_grad = 1;
        a.t.grad = (float *)da.t.data;
        t.t.grad = (float *)dt.t.data;
    }
    double n = 4.0 * ((double)attn_tensor_numel(&a.t) + (double)attn_tensor_numel(&o.t)) * 4.0;
    if (!(ctx = ctx_for((size_t)(n < 1e15 ? n : 1e15) + ((size_t)16 << 20), threads, 0))) goto done;
    if (!bw) attn_ctx_set_grad_enabled(ctx, 0);
    attn_tensor *r;
    attn_status st = ATTN_OK;
    Py_BEGIN_ALLOW_THREADS
    r = kind ? attn_rel_values(ctx, &a.t, &t.t, offset) : attn_rel_logits(ctx, &a.t, &t.t, S, offset);
    if (r && bw && same_shape(r, &g.t)) st = attn_backward_from(ctx, r, (const float *)g.t.data);
    Py_END_ALLOW_THREADS
    if (!r || st != ATTN_OK) {
        raise_ctx(ctx, kind ? "rel_values failed" : "rel_logits failed");
        goto done;
    }
    if (copy_out(r, &o, "out")) goto done;
    ret = NONE_REF();
done:
    attn_ctx_free(ctx);
    arg_release(&a);
    arg_release(&t);
    arg_release(&o);
    arg_release(&g);
    arg_release(&da);
    arg_release(&dt);
    return ret;
}

/* ---- vocabularies ------------------------------------------------------------- */

static void vocab_del(PyObject *cap) {
    attn_vocab_free((attn_vocab *)PyCapsule_GetPointer(cap, "attn.vocab"));
}

static PyObject *py_vocab_load(PyObject *self, PyObject *args) {
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path)) return NULL;
    attn_vocab *v = NULL;
    if (attn_vocab_load(path, &v) != ATTN_OK) return raise_ctx(NULL, "cannot load the vocabulary");
    return PyCapsule_New(v, "attn.vocab", vocab_del);
}

static attn_vocab *vocab_of(PyObject *cap) {
    return (attn_vocab *)PyCapsule_GetPointer(cap, "attn.vocab");
}

static PyObject *py_vocab_size(PyObject *self, PyObject *args) {
    PyObject *cap;
    if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
    attn_vocab *v = vocab_of(cap);
    if (!v) return NULL;
    return PyLong_FromLong(attn_vocab_size(v));
}

/* vocab_encode(vocab, text) -> bytes of int32 ids */
static PyObject *py_vocab_encode(PyObject *self, PyObject *args) {
    PyObject *cap;
    const char *text;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "Os#", &cap, &text, &len)) return NULL;
    attn_vocab *v = vocab_of(cap);
    if (!v) return NULL;
    size_t n = 0;
    if (attn_vocab_encode(v, text, (size_t)len, NULL, 0, &n) != ATTN_OK)
        return raise_ctx(NULL, "vocab_encode failed");
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * 4));
    if (!b) return NULL;
    if (n && attn_vocab_encode(v, text, (size_t)len, (int32_t *)PyBytes_AS_STRING(b), n, &n) != ATTN_OK) {
        Py_DECREF(b);
        return raise_ctx(NULL, "vocab_encode failed");
    }
    return b;
}

/* vocab_decode(vocab, ids int32 [n]) -> str */
static PyObject *py_vocab_decode(PyObject *self, PyObject *args) {
    PyObject *cap, *ids;
    if (!PyArg_ParseTuple(args, "OO", &cap, &ids)) return NULL;
    attn_vocab *v = vocab_of(cap);
    if (!v) return NULL;
    arg a;
    if (arg_get(ids, "ids", ATTN_I32, 1, 1, 0, 0, &a)) return NULL;
    size_t n = (size_t)a.t.shape[0], len = 0;
    PyObject *ret = NULL;
    char *buf = NULL;
    if (attn_vocab_decode(v, (const int32_t *)a.t.data, n, NULL, 0, &len) != ATTN_OK) {
        raise_ctx(NULL, "vocab_decode failed");
        goto done;
    }
    if (!(buf = malloc(len + 1))) {
        PyErr_NoMemory();
        goto done;
    }
    if (attn_vocab_decode(v, (const int32_t *)a.t.data, n, buf, len + 1, &len) != ATTN_OK) {
        raise_ctx(NULL, "vocab_decode failed");
        goto done;
    }
    ret = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)len, "replace");
done:
    free(buf);
    arg_release(&a);
    return ret;
}

/* ---- GPT ------------------------------------------------------------------------ */

typedef struct gpt_handle {
    attn_params *ps;
    attn_gpt *m;
} gpt_handle;

static void gpt_del(PyObject *cap) {
    gpt_handle *h = (gpt_handle *)PyCapsule_GetPointer(cap, "attn.gpt");
    if (!h) return;
    attn_gpt_free(h->m);
    attn_params_free(h->ps);
    free(h);
}

static PyObject *gpt_wrap(gpt_handle *h) {
    PyObject *cap = PyCapsule_New(h, "attn.gpt", gpt_del);
    if (!cap) {
        attn_gpt_free(h->m);
        attn_params_free(h->ps);
        free(h);
    }
    return cap;
}

static PyObject *py_gpt_load(PyObject *self, PyObject *args) {
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path)) return NULL;
    gpt_handle *h = calloc(1, sizeof *h);
    if (!h) return PyErr_NoMemory();
    attn_status st;
    Py_BEGIN_ALLOW_THREADS
    st = attn_params_new(&h->ps);
    if (st == ATTN_OK) st = attn_gpt_load(path, h->ps, &h->m);
    Py_END_ALLOW_THREADS
    if (st != ATTN_OK) {
        raise_ctx(NULL, "cannot load the GPT model");
        attn_params_free(h->ps);
        free(h);
        return NULL;
    }
    return gpt_wrap(h);
}

/* gpt_new(vocab, ctx_len, n_layers, n_heads, d_model, pos, seed) ->
 * a GPT-2-initialised model (for tests and experiments). */
static PyObject *py_gpt_new(PyObject *self, PyObject *args) {
    long long V, ctx_len, E, seed;
    int L, H, pos;
    if (!PyArg_ParseTuple(args, "LLiiLiL", &V, &ctx_len, &L, &H, &E, &pos, &seed)) return NULL;
    gpt_handle *h = calloc(1, sizeof *h);
    if (!h) return PyErr_NoMemory();
    attn_gpt_config cfg = {0};
    cfg.vocab = V;
    cfg.ctx_len = ctx_len;
    cfg.n_layers = L;
    cfg.n_heads = H;
    cfg.d_model = E;
    cfg.pos = (attn_pos_kind)pos;
    cfg.tied = 1;
    attn_rng rng;
    attn_rng_init(&rng, (uint64_t)seed);
    if (attn_params_new(&h->ps) != ATTN_OK || attn_gpt_new(&h->m, h->ps, &cfg, &rng) != ATTN_OK) {
        raise_ctx(NULL, "cannot create the GPT model");
        attn_params_free(h->ps);
        free(h);
        return NULL;
    }
    return gpt_wrap(h);
}

static gpt_handle *gpt_of(PyObject *cap) {
    return (gpt_handle *)PyCapsule_GetPointer(cap, "attn.gpt");
}

static PyObject *py_gpt_save(PyObject *self, PyObject *args) {
    PyObject *cap;
    const char *path;
    if (!PyArg_ParseTuple(args, "Os", &cap, &path)) return NULL;
    gpt_handle *h = gpt_of(cap);
    if (!h) return NULL;
    if (attn_gpt_save(path, h->m, NULL, 0) != ATTN_OK) return raise_ctx(NULL, "cannot save the GPT model");
    Py_RETURN_NONE;
}

static PyObject *py_gpt_config(PyObject *self, PyObject *args) {
    PyObject *cap;
    if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
    gpt_handle *h = gpt_of(cap);
    if (!h) return NULL;
    const attn_gpt_config *c = &h->m->cfg;
    return Py_BuildValue("{s:L,s:L,s:i,s:i,s:i,s:L,s:L,s:s,s:i,s:L}", "vocab", (long long)c->vocab,
                         "ctx_len", (long long)c->ctx_len, "n_layers", c->n_layers, "n_heads",
                         c->n_heads, "n_kv_heads", c->n_kv_heads, "d_model", (long long)c->d_model,
                         "d_ff", (long long)c->d_ff, "pos", attn_pos_kind_name(c->pos), "tied",
                         c->tied, "parameters", (long long)attn_params_numel(h->ps));
}

/* gpt_logits(model, ids int32 [B,T], out float32 [B,T,V], threads=0) */
static PyObject *py_gpt_logits(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwl[] = {"model", "ids", "out", "threads", NULL};
    PyObject *cap, *ids, *out;
    int threads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|i", kwl, &cap, &ids, &out, &threads)) return NULL;
    gpt_handle *h = gpt_of(cap);
    if (!h) return NULL;
    arg a, o;
    memset(&o, 0, sizeof o);
    if (arg_get(ids, "ids", ATTN_I32, 2, 2, 0, 0, &a)) return NULL;
    PyObject *ret = NULL;
    attn_ctx *ctx = NULL;
    if (arg_get(out, "out", ATTN_F32, 3, 3, 1, 0, &o)) goto done;
    const attn_gpt_config *c = &h->m->cfg;
    double act = (double)attn_tensor_numel(&a.t) * (double)(c->d_model * 16 + c->d_ff * 2 + c->vocab * 2) * 4.0 +
                 (double)attn_tensor_numel(&a.t) * (double)a.t.shape[1] * c->n_heads * 8.0;
    if (!(ctx = ctx_for((size_t)(act < 1e15 ? act : 1e15) + ((size_t)64 << 20), threads, 0))) goto done;
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    attn_tensor *r;
    Py_BEGIN_ALLOW_THREADS
    r = attn_gpt_logits(ctx, h->m, &a.t, NULL);
    Py_END_ALLOW_THREADS
    if (!r) {
        raise_ctx(ctx, "gpt_logits failed");
        goto done;
    }
    if (copy_out(r, &o, "out")) goto done;
    ret = NONE_REF();
done:
    attn_ctx_free(ctx);
    arg_release(&a);
    arg_release(&o);
    return ret;
}

/* gpt_generate(model, prompt int32 [n], out int32 [n_new], temperature=1,
 *              top_k=0, top_p=0, seed=0, first_id=0, threads=0) */
static PyObject *py_gpt_generate(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwl[] = {"model", "prompt", "out", "temperature", "top_k", "top_p", "seed",
                          "first_id", "threads", NULL};
    PyObject *cap, *prompt, *out;
    double temp = 1.0, top_p = 0.0;
    int top_k = 0, first_id = 0, threads = 0;
    unsigned long long seed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|didKii", kwl, &cap, &prompt, &out, &temp, &top_k,
                                     &top_p, &seed, &first_id, &threads))
        return NULL;
    gpt_handle *h = gpt_of(cap);
    if (!h) return NULL;
    arg p, o;
    memset(&o, 0, sizeof o);
    if (arg_get(prompt, "prompt", ATTN_I32, 1, 1, 0, 0, &p)) return NULL;
    PyObject *ret = NULL;
    attn_ctx *ctx = NULL;
    if (arg_get(out, "out", ATTN_I32, 1, 1, 1, 0, &o)) goto done;
    if (!(ctx = ctx_for((size_t)256 << 20, threads, 0))) goto done;
    attn_sample_opts so = {(float)temp, top_k, (float)top_p, (uint64_t)seed, first_id};
    attn_status st;
    Py_BEGIN_ALLOW_THREADS
    st = attn_gpt_generate(ctx, h->m, (const int32_t *)p.t.data, p.t.shape[0], o.t.shape[0], &so,
                           (int32_t *)o.t.data, NULL);
    Py_END_ALLOW_THREADS
    if (st != ATTN_OK) {
        raise_ctx(ctx, "gpt_generate failed");
        goto done;
    }
    ret = NONE_REF();
done:
    attn_ctx_free(ctx);
    arg_release(&p);
    arg_release(&o);
    return ret;
}

/* ---- BERT ----------------------------------------------------------------------- */

typedef struct bert_handle {
    attn_params *ps;
    attn_bert *m;
} bert_handle;

static void bert_del(PyObject *cap) {
    bert_handle *h = (bert_handle *)PyCapsule_GetPointer(cap, "attn.bert");
    if (!h) return;
    attn_bert_free(h->m);
    attn_params_free(h->ps);
    free(h);
}

static PyObject *bert_wrap(bert_handle *h) {
    PyObject *cap = PyCapsule_New(h, "attn.bert", bert_del);
    if (!cap) {
        attn_bert_free(h->m);
        attn_params_free(h->ps);
        free(h);
    }
    return cap;
}

static PyObject *py_bert_load(PyObject *self, PyObject *args) {
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path)) return NULL;
    bert_handle *h = calloc(1, sizeof *h);
    if (!h) return PyErr_NoMemory();
    attn_status st;
    Py_BEGIN_ALLOW_THREADS
    st = attn_params_new(&h->ps);
    if (st == ATTN_OK) st = attn_bert_load(path, h->ps, &h->m);
    Py_END_ALLOW_THREADS
    if (st != ATTN_OK) {
        raise_ctx(NULL, "cannot load the BERT model");
        attn_params_free(h->ps);
        free(h);
        return NULL;
    }
    return bert_wrap(h);
}

/* bert_new(vocab, max_len, n_layers, n_heads, d_model, n_classes, seed) */
static PyObject *py_bert_new(PyObject *self, PyObject *args) {
    long long V, max_len, E, seed;
    int L, H, C;
    if (!PyArg_ParseTuple(args, "LLiiLiL", &V, &max_len, &L, &H, &E, &C, &seed)) return NULL;
    bert_handle *h = calloc(1, sizeof *h);
    if (!h) return PyErr_NoMemory();
    attn_bert_config cfg = {0};
    cfg.vocab = V;
    cfg.max_len = max_len;
    cfg.n_layers = L;
    cfg.n_heads = H;
    cfg.d_model = E;
    cfg.n_classes = C;
    cfg.mlm = 1;
    attn_rng rng;
    attn_rng_init(&rng, (uint64_t)seed);
    if (attn_params_new(&h->ps) != ATTN_OK || attn_bert_new(&h->m, h->ps, &cfg, &rng) != ATTN_OK) {
        raise_ctx(NULL, "cannot create the BERT model");
        attn_params_free(h->ps);
        free(h);
        return NULL;
    }
    return bert_wrap(h);
}

static bert_handle *bert_of(PyObject *cap) {
    return (bert_handle *)PyCapsule_GetPointer(cap, "attn.bert");
}

static PyObject *py_bert_save(PyObject *self, PyObject *args) {
    PyObject *cap;
    const char *path;
    if (!PyArg_ParseTuple(args, "Os", &cap, &path)) return NULL;
    bert_handle *h = bert_of(cap);
    if (!h) return NULL;
    if (attn_bert_save(path, h->m, NULL, 0) != ATTN_OK) return raise_ctx(NULL, "cannot save the BERT model");
    Py_RETURN_NONE;
}

static PyObject *py_bert_config(PyObject *self, PyObject *args) {
    PyObject *cap;
    if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
    bert_handle *h = bert_of(cap);
    if (!h) return NULL;
    const attn_bert_config *c = &h->m->cfg;
    return Py_BuildValue("{s:L,s:L,s:i,s:i,s:L,s:L,s:i,s:i,s:i,s:L}", "vocab", (long long)c->vocab,
                         "max_len", (long long)c->max_len, "n_layers", c->n_layers, "n_heads",
                         c->n_heads, "d_model", (long long)c->d_model, "d_ff", (long long)c->d_ff,
                         "norm_first", c->norm_first, "mlm", c->mlm, "n_classes", c->n_classes,
                         "parameters", (long long)attn_params_numel(h->ps));
}

/* bert_run(model, ids int32 [B,T], lengths int32 [B] or None, out, what,
 *          threads=0): what 0 writes the encoder's output [B,T,E], what 1
 * the classifier's logits [B,C]. */
static PyObject *py_bert_run(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwl[] = {"model", "ids", "lengths", "out", "what", "threads", NULL};
    PyObject *cap, *ids, *lengths, *out;
    int what = 0, threads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOi|i", kwl, &cap, &ids, &lengths, &out, &what, &threads))
        return NULL;
    bert_handle *h = bert_of(cap);
    if (!h) return NULL;
    arg a, l, o;
    memset(&l, 0, sizeof l);
    memset(&o, 0, sizeof o);
    if (arg_get(ids, "ids", ATTN_I32, 2, 2, 0, 0, &a)) return NULL;
    PyObject *ret = NULL;
    attn_ctx *ctx = NULL;
    if (arg_get(lengths, "lengths", ATTN_I32, 1, 1, 0, 1, &l) ||
        arg_get(out, "out", ATTN_F32, 2, 3, 1, 0, &o))
        goto done;
    const attn_bert_config *c = &h->m->cfg;
    double act = (double)attn_tensor_numel(&a.t) * (double)(c->d_model * 16 + c->d_ff * 2) * 4.0 +
                 (double)attn_tensor_numel(&a.t) * (double)a.t.shape[1] * c->n_heads * 8.0;
    if (!(ctx = ctx_for((size_t)(act < 1e15 ? act : 1e15) + ((size_t)64 << 20), threads, 0))) goto done;
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    attn_tensor *r;
    attn_tensor *lt = l.t.data ? &l.t : NULL;
    Py_BEGIN_ALLOW_THREADS
    r = what == 1 ? attn_bert_cls_logits(ctx, h->m, &a.t, lt) : attn_bert_encode(ctx, h->m, &a.t, lt);
    Py_END_ALLOW_THREADS
    if (!r) {
        raise_ctx(ctx, what == 1 ? "bert classify failed" : "bert encode failed");
        goto done;
    }
    if (copy_out(r, &o, "out")) goto done;
    ret = NONE_REF();
done:
    attn_ctx_free(ctx);
    arg_release(&a);
    arg_release(&l);
    arg_release(&o);
    return ret;
}

/* ---- translators (attn transformer, attn seq2seq) ------------------------------------ */

/* A model file of `attn transformer train` or `attn seq2seq train` is read as
 * the CLI reads it (cli/s2s_core.c, bundle_load; the families' meta_read in
 * cli/s2s_t2t.c and cli/s2s_rnn.c): the configuration from the checkpoint's
 * metadata, then the parameters. */

typedef struct s2s_handle {
    int rnn; /* 1: attn_seq2seq (RNN), 0: attn_t2t (Transformer) */
    attn_params *ps;
    attn_t2t *t2t;
    attn_seq2seq *s2s;
    attn_t2t_config tcfg;
    attn_seq2seq_config rcfg;
} s2s_handle;

static void s2s_handle_free(s2s_handle *h) {
    if (!h) return;
    attn_t2t_free(h->t2t);
    attn_seq2seq_free(h->s2s);
    attn_params_free(h->ps);
    free(h);
}

static void s2s_del(PyObject *cap) { s2s_handle_free((s2s_handle *)PyCapsule_GetPointer(cap, "attn.s2s")); }

typedef struct meta_in {
    attn_safetensors *f;
    const char *path;
    char err[512];
} meta_in;

/* An integer entry in [lo, hi]; a missing one is `dflt` when optional. */
static long long meta_int(meta_in *m, const char *key, long long lo, long long hi, int optional,
                          long long dflt) {
    const char *v = attn_safetensors_metadata(m->f, key);
    if (!v && optional) return dflt;
    char *end = NULL;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if ((!v || end == v || *end || x < lo || x > hi) && !m->err[0])
        snprintf(m->err, sizeof m->err, "%s: metadata '%s' = '%s': expected an integer in [%lld, %lld]",
                 m->path, key, v ? v : "(missing)", lo, hi);
    return x;
}

static double meta_num(meta_in *m, const char *key, double lo, double hi, int optional) {
    const char *v = attn_safetensors_metadata(m->f, key);
    if (!v && optional) return 0.0;
    char *end = NULL;
    double x = v ? strtod(v, &end) : 0.0;
    if ((!v || end == v || *end || !(x >= lo && x <= hi)) && !m->err[0])
        snprintf(m->err, sizeof m->err, "%s: metadata '%s' = '%s': expected a number in [%g, %g]",
                 m->path, key, v ? v : "(missing)", lo, hi);
    return x;
}

static const char *meta_text(meta_in *m, const char *key) {
    const char *v = attn_safetensors_metadata(m->f, key);
    if (!v && !m->err[0]) snprintf(m->err, sizeof m->err, "%s: metadata '%s' is missing", m->path, key);
    return v ? v : "";
}

static void meta_t2t(meta_in *m, attn_t2t_config *c) {
    c->d_model = meta_int(m, "d_model", 1, 1 << 20, 0, 0);
    c->n_heads = (int)meta_int(m, "heads", 1, 1 << 10, 0, 0);
    c->n_kv_heads = (int)meta_int(m, "kv_heads", 0, 1 << 10, 1, 0);
    c->enc_layers = (int)meta_int(m, "enc_layers", 1, 64, 0, 0);
    c->dec_layers = (int)meta_int(m, "dec_layers", 1, 64, 0, 0);
    c->d_ff = meta_int(m, "d_ff", 1, 1 << 22, 0, 0);
    c->norm_first = (int)meta_int(m, "norm_first", 0, 1, 0, 0);
    const char *act = meta_text(m, "activation");
    if (!m->err[0] && strcmp(act, "gelu") != 0 && strcmp(act, "relu") != 0)
        snprintf(m->err, sizeof m->err, "%s: metadata activation = '%s': expected relu or gelu", m->path, act);
    c->activation = strcmp(act, "gelu") == 0 ? ATTN_ACT_GELU : ATTN_ACT_RELU;
    const char *pos = meta_text(m, "pos");
    int found = 0;
    for (int k = 0; k < ATTN_POS_COUNT; k++)
        if (strcmp(pos, attn_pos_kind_name((attn_pos_kind)k)) == 0) {
            c->pos = (attn_pos_kind)k;
            found = 1;
        }
    if (!found && !m->err[0]) snprintf(m->err, sizeof m->err, "%s: metadata pos = '%s' is unknown", m->path, pos);
    c->shaw_clip = (int)meta_int(m, "shaw_clip", 0, 1 << 20, 1, 0);
    c->rope_theta = (float)meta_num(m, "rope_theta", 0.0, 1e12, 1);
    c->max_len = meta_int(m, "max_pos", 0, 1 << 30, 1, 0);
    c->tie_output = (int)meta_int(m, "tie_output", 0, 1, 0, 0);
}

static void meta_rnn(meta_in *m, attn_seq2seq_config *c) {
    c->cell = strcmp(meta_text(m, "cell"), "lstm") == 0 ? ATTN_RNN_LSTM : ATTN_RNN_GRU;
    const char *att = meta_text(m, "attention");
    if (attn_s2s_attention_parse(att, &c->attention) != 0 && !m->err[0])
        snprintf(m->err, sizeof m->err, "%s: metadata attention = '%s' is unknown", m->path, att);
    c->emb_dim = meta_int(m, "emb_dim", 1, 1 << 20, 0, 0);
    c->hidden = meta_int(m, "hidden", 1, 1 << 20, 0, 0);
    c->enc_layers = (int)meta_int(m, "enc_layers", 1, 64, 0, 0);
    c->dec_layers = (int)meta_int(m, "dec_layers", 1, 64, 0, 0);
    c->bidirectional = (int)meta_int(m, "bidirectional", 0, 1, 0, 0);
    c->attn_dim = meta_int(m, "attn_dim", 0, 1 << 20, 0, 0);
    c->combine_dim = meta_int(m, "combine_dim", 0, 1 << 20, 1, 0);
    c->no_input_feed = !meta_int(m, "input_feed", 0, 1, 1, 1);
    c->local_window = (int)meta_int(m, "local_window", 0, 1 << 20, 0, 0);
    /* the LSTMN encoder-decoder (cell lstmn); absent from older checkpoints: none */
    const char *fusion = attn_safetensors_metadata(m->f, "fusion");
    if (fusion && attn_s2s_fusion_parse(fusion, &c->fusion) != 0 && !m->err[0])
        snprintf(m->err, sizeof m->err, "%s: metadata fusion = '%s' is unknown", m->path, fusion);
}

static PyObject *py_s2s_load(PyObject *self, PyObject *args) {
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path)) return NULL;
    meta_in m;
    memset(&m, 0, sizeof m);
    m.path = path;
    if (attn_safetensors_open(&m.f, path) != ATTN_OK) return raise_ctx(NULL, "cannot read the model file");
    s2s_handle *h = calloc(1, sizeof *h);
    if (!h) {
        attn_safetensors_close(m.f);
        return PyErr_NoMemory();
    }
    const char *model = meta_text(&m, "model");
    if (!m.err[0] && strcmp(model, "attn-transformer") != 0 && strcmp(model, "attn-seq2seq") != 0)
        snprintf(m.err, sizeof m.err,
                 "%s: metadata model = '%s': not a translator of 'attn transformer train' or 'attn "
                 "seq2seq train' (expected 'attn-transformer' or 'attn-seq2seq')", path, model);
    h->rnn = strcmp(model, "attn-seq2seq") == 0;
    /* the entries every translator has (bundle_load) */
    attn_seq2seq_config *r = &h->rcfg;
    r->src_vocab = meta_int(&m, "src_vocab", 4, 1 << 30, 0, 0);
    r->tgt_vocab = meta_int(&m, "tgt_vocab", 4, 1 << 30, 0, 0);
    r->max_src_len = meta_int(&m, "max_src_len", 0, 1 << 30, 0, 0);
    r->dropout = (float)meta_num(&m, "dropout", 0.0, 1.0, 0);
    r->pad_id = (int32_t)meta_int(&m, "pad_id", 0, 1 << 30, 0, 0);
    r->bos_id = (int32_t)meta_int(&m, "bos_id", 0, 1 << 30, 0, 0);
    r->eos_id = (int32_t)meta_int(&m, "eos_id", 0, 1 << 30, 0, 0);
    if (h->rnn) {
        meta_rnn(&m, r);
    } else {
        attn_t2t_config *c = &h->tcfg;
        c->src_vocab = r->src_vocab;
        c->tgt_vocab = r->tgt_vocab;
        c->dropout = r->dropout;
        c->pad_id = r->pad_id;
        c->bos_id = r->bos_id;
        c->eos_id = r->eos_id;
        meta_t2t(&m, c);
    }
    attn_safetensors_close(m.f);
    if (m.err[0]) {
        s2s_handle_free(h);
        PyErr_SetString(AttnError, m.err);
        return NULL;
    }
    attn_status st;
    int64_t step = 0;
    Py_BEGIN_ALLOW_THREADS
    st = attn_params_new(&h->ps);
    if (st == ATTN_OK)
        st = h->rnn ? attn_seq2seq_new(&h->s2s, h->ps, &h->rcfg, NULL) : attn_t2t_new(&h->t2t, h->ps, &h->tcfg, NULL);
    if (st == ATTN_OK) st = attn_checkpoint_load(path, h->ps, NULL, &step);
    Py_END_ALLOW_THREADS
    if (st != ATTN_OK) {
        raise_ctx(NULL, "cannot load the translator");
        s2s_handle_free(h);
        return NULL;
    }
    PyObject *cap = PyCapsule_New(h, "attn.s2s", s2s_del);
    if (!cap) s2s_handle_free(h);
    return cap;
}

static s2s_handle *s2s_of(PyObject *cap) {
    return (s2s_handle *)PyCapsule_GetPointer(cap, "attn.s2s");
}

static PyObject *py_s2s_config(PyObject *self, PyObject *args) {
    PyObject *cap;
    if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
    s2s_handle *h = s2s_of(cap);
    if (!h) return NULL;
    if (h->rnn) {
        const attn_seq2seq_config *c = attn_seq2seq_get_config(h->s2s);
        return Py_BuildValue("{s:s,s:L,s:L,s:s,s:s,s:L,s:L,s:i,s:i,s:i,s:L,s:i,s:i,s:i,s:L}", "family",
                             "seq2seq", "src_vocab", (long long)c->src_vocab, "tgt_vocab",
                             (long long)c->tgt_vocab, "cell", c->cell == ATTN_RNN_LSTM ? "lstm" : "gru",
                             "attention", attn_s2s_attention_name(c->attention), "emb_dim",
                             (long long)c->emb_dim, "hidden", (long long)c->hidden, "enc_layers",
                             c->enc_layers, "dec_layers", c->dec_layers, "bidirectional",
                             c->bidirectional, "max_src_len", (long long)c->max_src_len, "pad_id",
                             c->pad_id, "bos_id", c->bos_id, "eos_id", c->eos_id, "parameters",
                             (long long)attn_params_numel(h->ps));
    }
    const attn_t2t_config *c = attn_t2t_get_config(h->t2t);
    return Py_BuildValue("{s:s,s:L,s:L,s:L,s:i,s:i,s:i,s:i,s:L,s:i,s:s,s:L,s:i,s:i,s:i,s:i,s:L}", "family",
                         "transformer", "src_vocab", (long long)c->src_vocab, "tgt_vocab",
                         (long long)c->tgt_vocab, "d_model", (long long)c->d_model, "n_heads", c->n_heads,
                         "n_kv_heads", c->n_kv_heads, "enc_layers", c->enc_layers, "dec_layers",
                         c->dec_layers, "d_ff", (long long)c->d_ff, "norm_first", c->norm_first, "pos",
                         attn_pos_kind_name(c->pos), "max_len", (long long)c->max_len, "tie_output",
                         c->tie_output, "pad_id", c->pad_id, "bos_id", c->bos_id, "eos_id", c->eos_id,
                         "parameters", (long long)attn_params_numel(h->ps));
}

/* s2s_translate(model, src int32 [n], out int32 [L], beam=1, alpha=0.6,
 *               threads=0) -> the number of output ids (eos excluded) */
static PyObject *py_s2s_translate(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwl[] = {"model", "src", "out", "beam", "alpha", "threads", NULL};
    PyObject *cap, *src, *out;
    int beam = 1, threads = 0;
    double alpha = 0.6;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|idi", kwl, &cap, &src, &out, &beam, &alpha, &threads))
        return NULL;
    s2s_handle *h = s2s_of(cap);
    if (!h) return NULL;
    arg a, o;
    memset(&o, 0, sizeof o);
    if (arg_get(src, "src", ATTN_I32, 1, 1, 0, 0, &a)) return NULL;
    PyObject *ret = NULL;
    attn_ctx *ctx = NULL;
    attn_s2s_data d;
    attn_s2s_data_init(&d);
    if (arg_get(out, "out", ATTN_I32, 1, 1, 1, 0, &o)) goto done;
    if (a.t.shape[0] < 1 || o.t.shape[0] < 1 || o.t.shape[0] > (1 << 24)) {
        PyErr_SetString(PyExc_ValueError, "s2s_translate: a source of at least one id and 1 to 2^24 output slots");
        goto done;
    }
    d.pad_id = h->rcfg.pad_id;
    d.bos_id = h->rcfg.bos_id;
    d.eos_id = h->rcfg.eos_id;
    if (attn_s2s_data_add_ids(&d, (const int32_t *)a.t.data, a.t.shape[0], NULL, 0) != ATTN_OK) {
        raise_ctx(NULL, "s2s_translate: cannot take the source");
        goto done;
    }
    if (!(ctx = ctx_for((size_t)256 << 20, threads, 0))) goto done;
    attn_ctx_set_grad_enabled(ctx, 0);
    attn_ctx_set_training(ctx, 0);
    attn_decode_config dc = {beam, (float)alpha, (int)o.t.shape[0]};
    const int64_t zero = 0;
    int32_t out_len = 0;
    attn_status st;
    attn_s2s_batch batch;
    Py_BEGIN_ALLOW_THREADS
    st = attn_s2s_batch_make(ctx, &d, &zero, 1, &batch, NULL);
    if (st == ATTN_OK)
        st = h->rnn ? attn_seq2seq_decode(ctx, h->s2s, &batch, &dc, (int32_t *)o.t.data, &out_len, NULL)
                    : attn_t2t_decode(ctx, h->t2t, &batch, &dc, NULL, (int32_t *)o.t.data, &out_len, NULL, NULL);
    Py_END_ALLOW_THREADS
    if (st != ATTN_OK) {
        raise_ctx(ctx, "s2s_translate failed");
        goto done;
    }
    ret = PyLong_FromLong(out_len);
done:
    attn_s2s_data_free(&d);
    attn_ctx_free(ctx);
    arg_release(&a);
    arg_release(&o);
    return ret;
}

/* ---- module ----------------------------------------------------------------------- */

static PyObject *py_info(PyObject *self, PyObject *noargs) {
    attn_info_t i;
    attn_info(&i);
    return Py_BuildValue("{s:s,s:i,s:s,s:s,s:s,s:i,s:i}", "version", i.version, "abi", i.abi, "simd",
                         i.simd, "blas", i.blas, "blas_policy", i.blas_policy, "openmp", i.openmp,
                         "max_threads", i.max_threads);
}

static PyMethodDef methods[] = {
    {"info", py_info, METH_NOARGS, "The library's version, ABI, SIMD level, matrix library, threads."},
    {"sdpa", (PyCFunction)(void (*)(void))py_sdpa, METH_VARARGS | METH_KEYWORDS,
     "Scaled dot-product attention forward into out (reference or fused)."},
    {"sdpa_backward", (PyCFunction)(void (*)(void))py_sdpa_backward, METH_VARARGS | METH_KEYWORDS,
     "Scaled dot-product attention backward: adds the gradients into dq, dk, dv (dbias)."},
    {"sinusoidal", (PyCFunction)(void (*)(void))py_sinusoidal, METH_VARARGS | METH_KEYWORDS,
     "The sinusoidal position table into out [T, E]."},
    {"rope", (PyCFunction)(void (*)(void))py_rope, METH_VARARGS | METH_KEYWORDS,
     "Rotary position embedding of x (or its backward with grad=True) into out."},
    {"alibi_slopes", py_alibi_slopes, METH_VARARGS, "The ALiBi slopes into out [H]."},
    {"alibi_bias", py_alibi_bias, METH_VARARGS, "The ALiBi bias into out [1, H, T, S]."},
    {"rel", (PyCFunction)(void (*)(void))py_rel, METH_VARARGS | METH_KEYWORDS,
     "Shaw et al.'s relative-position logits (kind 0) or values (kind 1), forward or backward."},
    {"vocab_load", py_vocab_load, METH_VARARGS, "Loads an attn vocabulary file."},
    {"vocab_size", py_vocab_size, METH_VARARGS, "The number of ids of a vocabulary."},
    {"vocab_encode", py_vocab_encode, METH_VARARGS, "Text (str) to int32 ids (bytes)."},
    {"vocab_decode", py_vocab_decode, METH_VARARGS, "int32 ids to text."},
    {"gpt_load", py_gpt_load, METH_VARARGS, "Loads a GPT model file."},
    {"gpt_new", py_gpt_new, METH_VARARGS, "A new GPT-2-initialised model."},
    {"gpt_save", py_gpt_save, METH_VARARGS, "Saves a GPT model."},
    {"gpt_config", py_gpt_config, METH_VARARGS, "A GPT model's configuration."},
    {"gpt_logits", (PyCFunction)(void (*)(void))py_gpt_logits, METH_VARARGS | METH_KEYWORDS,
     "Logits of every position into out [B, T, V]."},
    {"gpt_generate", (PyCFunction)(void (*)(void))py_gpt_generate, METH_VARARGS | METH_KEYWORDS,
     "Generates len(out) tokens after the prompt (KV cache)."},
    {"bert_load", py_bert_load, METH_VARARGS, "Loads a BERT model file."},
    {"bert_new", py_bert_new, METH_VARARGS, "A new BERT-initialised model."},
    {"bert_save", py_bert_save, METH_VARARGS, "Saves a BERT model."},
    {"bert_config", py_bert_config, METH_VARARGS, "A BERT model's configuration."},
    {"bert_run", (PyCFunction)(void (*)(void))py_bert_run, METH_VARARGS | METH_KEYWORDS,
     "The encoder's output [B, T, E] (what 0) or the classifier's logits [B, C] (what 1)."},
    {"s2s_load", py_s2s_load, METH_VARARGS,
     "Loads a translator of 'attn transformer train' or 'attn seq2seq train'."},
    {"s2s_config", py_s2s_config, METH_VARARGS, "The translator's configuration."},
    {"s2s_translate", (PyCFunction)(void (*)(void))py_s2s_translate, METH_VARARGS | METH_KEYWORDS,
     "Decodes one source (greedy or beam search) into out; returns the output length."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "attn._attn",
                                    "The C layer of the attn package (see attn/__init__.py).", -1,
                                    methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__attn(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    AttnError = PyErr_NewException("attn.AttnError", PyExc_ValueError, NULL);
    if (!AttnError || PyModule_AddObject(m, "AttnError", AttnError) < 0) {
        Py_XDECREF(AttnError);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(AttnError);
    PyModule_AddIntConstant(m, "ABI_VERSION", ATTN_ABI_VERSION);
    PyModule_AddStringConstant(m, "VERSION", ATTN_VERSION_STRING);
    return m;
}
