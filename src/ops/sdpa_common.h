/* sdpa_common.h: private helpers shared by the two scaled dot-product
 * attention ops, SDPA (sdpa.c) and FLASH_SDPA (flash_sdpa.c): the checks of
 * q, k, v and of attn_sdpa_opts, and the visibility rule of a query. Every
 * message starts with the op name the caller passes, so each op reports
 * under its own name. Not installed; include after internal.h. */
#ifndef ATTN_OPS_SDPA_COMMON_H
#define ATTN_OPS_SDPA_COMMON_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/sdpa.h"
#include "view_internal.h" /* attn__contig, for both ops */

/* q [B,H,T,D], k [B,Hkv,S,D], v [B,Hkv,S,Dv]: non-NULL, f32, 4-D, the same
 * B, Hkv, S and D, every size >= 1, H a multiple of Hkv. 0, or -1 with the
 * error set. */
static inline int sdpa_check_qkv(attn_ctx *ctx, const char *name, const attn_tensor *q,
                                 const attn_tensor *k, const attn_tensor *v, int allow_bf16) {
    if (attn__any_null(ctx, name, 3, q, k, v)) return -1;
    /* f32, or (allow_bf16) all three bf16 */
    const attn_dtype dt = allow_bf16 && q->dtype == ATTN_BF16 ? ATTN_BF16 : ATTN_F32;
    if (attn__check_dtype(ctx, name, "q", q, dt) || attn__check_dtype(ctx, name, "k", k, dt) ||
        attn__check_dtype(ctx, name, "v", v, dt))
        return -1;
    if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: q %s, k %s, v %s: expected 4-D [B,H,T,D], [B,Hkv,S,D], [B,Hkv,S,Dv]", name,
                   attn__shp(q), attn__shp(k), attn__shp(v));
        return -1;
    }
    const int64_t B = q->shape[0], H = q->shape[1], T = q->shape[2], D = q->shape[3];
    const int64_t Hkv = k->shape[1], S = k->shape[2], Dv = v->shape[3];
    if (k->shape[0] != B || v->shape[0] != B || k->shape[3] != D || v->shape[1] != Hkv ||
        v->shape[2] != S || B < 1 || H < 1 || T < 1 || D < 1 || Hkv < 1 || S < 1 || Dv < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: q %s, k %s, v %s: expected [B,H,T,D], [B,Hkv,S,D], [B,Hkv,S,Dv] with the "
                   "same B, Hkv, S and D, every size >= 1",
                   name, attn__shp(q), attn__shp(k), attn__shp(v));
        return -1;
    }
    if (H % Hkv) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: q %s has H = %lld heads, k %s has Hkv = %lld: H must be a multiple of Hkv",
                   name, attn__shp(q), (long long)H, attn__shp(k), (long long)Hkv);
        return -1;
    }
    return 0;
}

/* Copies *opts (zeros when NULL) to *o and checks it against the geometry
 * sh = [B, H, T, S]: scale finite and >= 0, dropout in [0, 1), window >= 0,
 * bias f32 and broadcastable to sh, key_lengths i32 [B] with values in
 * [0, S]. q and k are only named in the messages. 0, or -1 with the error
 * set. */
static inline int sdpa_check_opts(attn_ctx *ctx, const char *name, const attn_tensor *q,
                                  const attn_tensor *k, const int64_t *sh,
                                  const attn_sdpa_opts *opts, attn_sdpa_opts *o) {
    const attn_sdpa_opts zero = {0};
    *o = opts ? *opts : zero;
    if (!isfinite(o->scale) || o->scale < 0.0f) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                   "%s: scale %g must be finite and >= 0 (0: 1/sqrt(D)) (q %s)", name,
                   (double)o->scale, attn__shp(q));
        return -1;
    }
    if (!(o->dropout >= 0.0f && o->dropout < 1.0f)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: dropout %g is outside [0, 1) (q %s)", name,
                   (double)o->dropout, attn__shp(q));
        return -1;
    }
    if (o->window < 0) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: window %lld is negative (0: no window) (q %s)",
                   name, (long long)o->window, attn__shp(q));
        return -1;
    }
    attn_status sst;
    if (o->sparse && (sst = attn_sparse_check(NULL, o->sparse)) != ATTN_OK) {
        /* checked without the context (the message goes to attn_last_error
         * only), so that the context keeps it under the op's name */
        char msg[256];
        snprintf(msg, sizeof msg, "%s", attn_last_error());
        attn__fail(ctx, sst, "%s: %s (q %s)", name, msg, attn__shp(q));
        return -1;
    }
    const attn_tensor *bias = o->bias, *kl = o->key_lengths;
    if (bias) {
        if (attn__check_dtype(ctx, name, "bias", bias, ATTN_F32)) return -1;
        int ok = bias->ndim <= 4;
        for (int i = 0; ok && i < bias->ndim; i++) {
            const int64_t n = bias->shape[bias->ndim - 1 - i], want = sh[3 - i];
            ok = n == want || n == 1;
        }
        if (!ok) {
            attn__fail(ctx, ATTN_ERR_SHAPE,
                       "%s: bias %s does not broadcast to [B,H,T,S] = [%lld,%lld,%lld,%lld] (each "
                       "dim, aligned right, must be 1 or equal)",
                       name, attn__shp(bias), (long long)sh[0], (long long)sh[1],
                       (long long)sh[2], (long long)sh[3]);
            return -1;
        }
    }
    if (o->alibi_slopes) {
        const attn_tensor *al = o->alibi_slopes;
        if (attn__check_dtype(ctx, name, "alibi_slopes", al, ATTN_F32)) return -1;
        if (al->ndim != 1 || al->shape[0] != sh[1]) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: alibi_slopes %s, expected [H] = [%lld] (q %s)",
                       name, attn__shp(al), (long long)sh[1], attn__shp(q));
            return -1;
        }
        for (int64_t h = 0; h < sh[1]; h++) {
            const float m = attn_f32(al)[h * al->stride[0]];
            if (!isfinite(m)) {
                attn__fail(ctx, ATTN_ERR_INVALID_ARG,
                           "%s: alibi_slopes[%lld] = %g, expected a finite value (q %s)", name,
                           (long long)h, (double)m, attn__shp(q));
                return -1;
            }
        }
    }
    if (kl) {
        const int64_t B = sh[0], S = sh[3];
        if (attn__check_dtype(ctx, name, "key_lengths", kl, ATTN_I32)) return -1;
        if (kl->ndim != 1 || kl->shape[0] != B) {
            attn__fail(ctx, ATTN_ERR_SHAPE, "%s: key_lengths %s, expected [B] = [%lld] (q %s)",
                       name, attn__shp(kl), (long long)B, attn__shp(q));
            return -1;
        }
        for (int64_t b = 0; b < B; b++) {
            const int32_t n = attn_i32(kl)[b * kl->stride[0]];
            if (n < 0 || n > S) {
                attn__fail(ctx, ATTN_ERR_SHAPE,
                           "%s: key_lengths[%lld] = %d is outside [0, S] = [0, %lld] (k %s)", name,
                           (long long)b, (int)n, (long long)S, attn__shp(k));
                return -1;
            }
        }
    }
    return 0;
}


/* An input of either op as its node reads it: x itself when it is f32 with
 * unit stride along the last dimension, rows at least one row apart and no
 * negative stride (heads split by permute, a KV cache's prefix: read in
 * place through the strides, as a GEMM's leading dimension), else a
 * contiguous copy (bf16 inputs are always made contiguous). */
static inline attn_tensor *sdpa_in_place(attn_ctx *ctx, attn_tensor *x) {
    if (x->dtype == ATTN_F32 && x->stride[3] == 1 && x->stride[2] >= x->shape[3] &&
        x->stride[1] >= 0 && x->stride[0] >= 0)
        return x;
    return attn__contig(ctx, x);
}
/* The packed layout's input (attn__sdpa_packed, attn__flash_sdpa_packed):
 * qkv f32 [B, T, (H + 2 Hkv) D] with every size >= 1 and H a multiple of
 * Hkv. Returns qkv made contiguous, or NULL with the error set. */
static inline attn_tensor *sdpa_check_packed(attn_ctx *ctx, const char *name, attn_tensor *qkv,
                                             int64_t H, int64_t Hkv) {
    if (attn__any_null(ctx, name, 1, qkv)) return NULL;
    if (attn__check_dtype(ctx, name, "qkv", qkv, ATTN_F32)) return NULL;
    if (H < 1 || Hkv < 1 || H % Hkv || qkv->ndim != 3 || qkv->shape[0] < 1 ||
        qkv->shape[1] < 1 || qkv->shape[2] < 1 || qkv->shape[2] % (H + 2 * Hkv)) {
        attn__fail(ctx, ATTN_ERR_SHAPE,
                   "%s: qkv %s with H %lld, Hkv %lld: expected [B, T, (H + 2 Hkv) D] with every "
                   "size >= 1 and H a multiple of Hkv",
                   name, attn__shp(qkv), (long long)H, (long long)Hkv);
        return NULL;
    }
    return attn__contig(ctx, qkv);
}

/* The keys visible to query t of batch b form one interval [*lo, *hi) (empty
 * when *lo >= *hi); the rules of sdpa.h. kl: NULL or key_lengths [B]. */
static inline void sdpa_visible(int64_t S, int64_t T, int causal, int64_t window,
                                const int32_t *kl, int64_t b, int64_t t, int64_t *lo,
                                int64_t *hi) {
    const int64_t d = t + (S - T); /* the query's position on the key axis */
    int64_t l = 0, h = S;
    if (causal) h = d + 1;
    if (window > 0) {
        l = d - window + 1;
        if (!causal) h = d + window;
    }
    if (kl && kl[b] < h) h = kl[b];
    if (l < 0) l = 0;
    if (h > S) h = S;
    *lo = l;
    *hi = h > l ? h : l;
}


/* splitmix64 of (seed, g): the seed of a slice's own dropout stream. */
static inline uint64_t sdpa_seed_mix(uint64_t seed, uint64_t g) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (g + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The attributes both attention ops share (iarg[0..4], farg[0..1], seed; the
 * layout of sdpa.c's comment), from the checked options o, the head size D
 * and the number of weights n = B H T S: dropout, when active, takes
 * ceil(n / 4) counters of the context's stream (one Philox block per 4). */
static inline void sdpa_node_attrs(attn_ctx *ctx, attn_node *node, const attn_sdpa_opts *o,
                                   int64_t D, uint64_t n) {
    node->iarg[0] = o->causal != 0;
    node->iarg[1] = o->window;
    node->iarg[2] = o->bias != NULL;
    node->iarg[3] = o->key_lengths != NULL;
    node->farg[0] = o->scale > 0.0f ? o->scale : (float)(1.0 / sqrt((double)D));
    node->farg[1] = ctx->training ? o->dropout : 0.0f;
    if (node->farg[1] > 0.0f) {
        /* under a batch slice (attn_ctx_set_batch_slice) the weights are
         * rows of the global batch's: their mask is the global one's when
         * they start a Philox block (g0 % 4 == 0: B H T S weights with H T S
         * a multiple of 4 on all but odd sizes); otherwise a stream of this
         * slice's own (the seed mixed with g0), independent but not the
         * single process's */
        uint64_t seed = 0, g0 = 0;
        const uint64_t base = attn__rng_take(ctx, n, &seed, &g0);
        if (g0 % 4 == 0) {
            node->seed = seed;
            node->iarg[4] = (int64_t)(base + g0 / 4);
        } else {
            node->seed = sdpa_seed_mix(seed, g0);
            node->iarg[4] = (int64_t)base;
        }
    }
}

/* The node's optional inputs and dropout stream (the layout both ops share:
 * in[3] bias when iarg[2], then key_lengths when iarg[3], then the ALiBi
 * slopes when there is one more input; iarg[4] the RNG offset): *bias (NULL
 * or contiguous f32) with its broadcast strides bst over sh = [B, H, T, S]
 * (zeros without bias), *kl (NULL or [B]), *slopes (NULL or contiguous
 * [H]), *seed, *offset. */
static inline void sdpa_node_inputs(const attn_node *node, const int64_t *sh, const float **bias,
                                    int64_t *bst, const int32_t **kl, const float **slopes,
                                    uint64_t *seed, uint64_t *offset) {
    int i = 3;
    *bias = NULL;
    memset(bst, 0, 4 * sizeof *bst);
    if (node->iarg[2]) {
        *bias = attn_f32(node->in[i]);
        attn__broadcast_strides(node->in[i], 4, sh, bst);
        i++;
    }
    *kl = node->iarg[3] ? attn_i32(node->in[i++]) : NULL;
    *slopes = node->n_in > i ? attn_f32(node->in[i]) : NULL;
    *seed = node->seed;
    *offset = (uint64_t)node->iarg[4];
}

/* The ALiBi term of query position qpos (t + S - T) and key s under slope m:
 * -m |qpos - s| in double, rounded once to f32 (attn_alibi_bias's values). */
static inline float sdpa_alibi(float m, int64_t qpos, int64_t s) {
    const int64_t d = qpos > s ? qpos - s : s - qpos;
    return (float)(-(double)m * (double)d);
}

/* The node's optional inputs after q, k, v, in node order: bias, key_lengths
 * and the ALiBi slopes of the checked options o (each made contiguous) are
 * appended to in[*n_in ...]. 0, or -1 with the error set. */
static inline int sdpa_opt_inputs(attn_ctx *ctx, const attn_sdpa_opts *o, attn_tensor **in,
                                  int *n_in) {
    if (o->bias && !(in[(*n_in)++] = attn__contig(ctx, o->bias))) return -1;
    if (o->key_lengths && !(in[(*n_in)++] = attn__contig(ctx, o->key_lengths))) return -1;
    if (o->alibi_slopes && !(in[(*n_in)++] = attn__contig(ctx, o->alibi_slopes))) return -1;
    return 0;
}

/* The sparse pattern of the checked options o kept with the node: its
 * bytes in an i32 tensor in saved[1] (NULL without a pattern), so that the
 * caller's struct may go away before backward. 0, or -1 with the error set. */
static inline int sdpa_save_sparse(attn_ctx *ctx, const char *name, attn_node *node,
                                   const attn_sparse_pattern *sp) {
    node->saved[1] = NULL;
    if (!sp) return 0;
    const int64_t n = (int64_t)((sizeof *sp + 3) / 4);
    attn_tensor *t = attn__tensor(ctx, name, ATTN_I32, 1, &n);
    if (!t) return -1;
    memcpy(t->data, sp, sizeof *sp);
    node->saved[1] = t;
    return 0;
}

/* The node's sparse pattern (sdpa_save_sparse), or NULL. */
static inline const attn_sparse_pattern *sdpa_node_sparse(const attn_node *node) {
    return node->saved[1] ? (const attn_sparse_pattern *)node->saved[1]->data : NULL;
}

/* Scratch of n floats for each of `slots` threads; NULL (error recorded
 * under the op name) on overflow or a full arena. */
static inline float *sdpa_scratch(attn_ctx *ctx, const char *name, int slots, int64_t n,
                                  const char *what) {
    size_t bytes;
    if (attn__mul_size((size_t)slots * (size_t)n, sizeof(float), &bytes)) {
        attn__fail(ctx, ATTN_ERR_OOM, "%s: %s of %d x %lld floats overflows", name, what, slots,
                   (long long)n);
        return NULL;
    }
    return attn__alloc(ctx, bytes ? bytes : 1, what);
}

#endif
