/* graph_attention.c: attention over the neighbours of a graph, graph op
 * GRAPH_ATTENTION (include/attn/graph_attention.h; docs/graph_attention.md).
 *
 * Node layout:
 *   in[0] q [B,H,N,D], in[1] k [B,H,N,D], in[2] v [B,H,N,Dv] (contiguous).
 *   iarg[0] E (edges), farg[0] scale.
 *   -> out [B,H,N,Dv];
 *   saved[0] P [B,H,max(E,1)]: the weight of every edge (row order of the CSR);
 *   saved[1] row_ptr [N+1] (i32), saved[2] col [max(E,1)] (i32): the graph,
 *            copied at the call.
 * Work units are (b, h): a unit owns its rows of out, dq, dk and dv, so the
 * units run in parallel without sharing a gradient row and every result is
 * the same for any thread count. The fast kernels accumulate in float; the
 * reference in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "view_internal.h"
#include "attn/graph_attention.h"

typedef struct ga_geom {
    int64_t B, H, N, D, Dv, E;
    float scale;
    const float *q, *k, *v;
    const int32_t *rp, *col;
} ga_geom;

static ga_geom ga_geometry(const attn_node *node) {
    ga_geom g;
    g.B = node->in[0]->shape[0];
    g.H = node->in[0]->shape[1];
    g.N = node->in[0]->shape[2];
    g.D = node->in[0]->shape[3];
    g.Dv = node->in[2]->shape[3];
    g.E = node->iarg[0];
    g.scale = node->farg[0];
    g.q = attn_f32(node->in[0]);
    g.k = attn_f32(node->in[1]);
    g.v = attn_f32(node->in[2]);
    g.rp = attn_i32(node->saved[1]);
    g.col = attn_i32(node->saved[2]);
    return g;
}

static int ga_threads(const attn_ctx *ctx, const ga_geom *g) {
    const double work = 2.0 * (double)g->B * (double)g->H * (double)(g->E + g->N) *
                        (double)(g->D + g->Dv);
    const int nt = attn__threads_for(ctx, work);
    return nt > 1 && g->B * g->H >= nt ? nt : 1;
}

static void forward_unit(const ga_geom *g, int64_t u, float *P, float *out) {
    const int64_t D = g->D, Dv = g->Dv, N = g->N;
    const float *q = g->q + u * N * D, *k = g->k + u * N * D, *v = g->v + u * N * Dv;
    float *pu = P + u * (g->E > 0 ? g->E : 1), *o = out + u * N * Dv;
    for (int64_t i = 0; i < N; i++) {
        const int64_t e0 = g->rp[i], e1 = g->rp[i + 1];
        float *oi = o + i * Dv;
        for (int64_t d = 0; d < Dv; d++) oi[d] = 0.0f;
        if (e0 == e1) continue;
        const float *qi = q + i * D;
        float mx = -INFINITY;
        for (int64_t e = e0; e < e1; e++) {
            const float *kj = k + (int64_t)g->col[e] * D;
            float s = 0.0f;
            for (int64_t d = 0; d < D; d++) s += qi[d] * kj[d];
            pu[e] = g->scale * s;
            if (pu[e] > mx) mx = pu[e];
        }
        float l = 0.0f;
        for (int64_t e = e0; e < e1; e++) {
            pu[e] = expf(pu[e] - mx);
            l += pu[e];
        }
        const float inv = 1.0f / l;
        for (int64_t e = e0; e < e1; e++) {
            pu[e] *= inv;
            const float *vj = v + (int64_t)g->col[e] * Dv;
            for (int64_t d = 0; d < Dv; d++) oi[d] += pu[e] * vj[d];
        }
    }
}

attn_status attn__graph_attention_forward(attn_ctx *ctx, attn_node *node) {
    const ga_geom g = ga_geometry(node);
    float *P = attn_f32(node->saved[0]), *out = attn_f32(node->out);
    const int nt = ga_threads(ctx, &g);
    (void)nt; /* unused without OpenMP */
    ATTN__OMP_FOR(nt)
    for (int64_t u = 0; u < g.B * g.H; u++) forward_unit(&g, u, P, out);
    return ATTN_OK;
}

/* The plain reference: every sum in double, one thread; it fills P too. */
attn_status attn__graph_attention_ref(attn_ctx *ctx, attn_node *node) {
    (void)ctx;
    const ga_geom g = ga_geometry(node);
    const int64_t D = g.D, Dv = g.Dv, N = g.N, En = g.E > 0 ? g.E : 1;
    float *Pall = attn_f32(node->saved[0]), *out = attn_f32(node->out);
    for (int64_t u = 0; u < g.B * g.H; u++) {
        const float *q = g.q + u * N * D, *k = g.k + u * N * D, *v = g.v + u * N * Dv;
        float *P = Pall + u * En, *o = out + u * N * Dv;
        for (int64_t i = 0; i < N; i++) {
            const int64_t e0 = g.rp[i], e1 = g.rp[i + 1];
            double mx = -INFINITY, l = 0.0;
            for (int64_t e = e0; e < e1; e++) {
                double s = 0.0;
                for (int64_t d = 0; d < D; d++) s += (double)q[i * D + d] * (double)k[(int64_t)g.col[e] * D + d];
                s *= (double)g.scale;
                if (s > mx) mx = s;
            }
            for (int64_t e = e0; e < e1; e++) {
                double s = 0.0;
                for (int64_t d = 0; d < D; d++) s += (double)q[i * D + d] * (double)k[(int64_t)g.col[e] * D + d];
                l += exp(s * (double)g.scale - mx);
            }
            for (int64_t d = 0; d < Dv; d++) {
                double acc = 0.0;
                for (int64_t e = e0; e < e1; e++) {
                    double s = 0.0;
                    for (int64_t c = 0; c < D; c++) s += (double)q[i * D + c] * (double)k[(int64_t)g.col[e] * D + c];
                    acc += exp(s * (double)g.scale - mx) / l * (double)v[(int64_t)g.col[e] * Dv + d];
                }
                o[i * Dv + d] = (float)acc;
            }
            for (int64_t e = e0; e < e1; e++) {
                double s = 0.0;
                for (int64_t d = 0; d < D; d++) s += (double)q[i * D + d] * (double)k[(int64_t)g.col[e] * D + d];
                P[e] = (float)(exp(s * (double)g.scale - mx) / l);
            }
        }
    }
    return ATTN_OK;
}

static void backward_unit(const ga_geom *g, int64_t u, const float *Pall, const float *go,
                          float *gq, float *gk, float *gv) {
    const int64_t D = g->D, Dv = g->Dv, N = g->N, En = g->E > 0 ? g->E : 1;
    const float *q = g->q + u * N * D, *k = g->k + u * N * D, *v = g->v + u * N * Dv;
    const float *P = Pall + u * En, *dO = go + u * N * Dv;
    for (int64_t i = 0; i < N; i++) {
        const int64_t e0 = g->rp[i], e1 = g->rp[i + 1];
        const float *doi = dO + i * Dv;
        /* sum_j P_ij dP_ij = dO_i . out_i, recomputed from the edges */
        float dsum = 0.0f;
        for (int64_t e = e0; e < e1; e++) {
            const float *vj = v + (int64_t)g->col[e] * Dv;
            float dp = 0.0f;
            for (int64_t d = 0; d < Dv; d++) dp += doi[d] * vj[d];
            dsum += P[e] * dp;
        }
        for (int64_t e = e0; e < e1; e++) {
            const int64_t j = g->col[e];
            const float *vj = v + j * Dv;
            float dp = 0.0f;
            for (int64_t d = 0; d < Dv; d++) dp += doi[d] * vj[d];
            const float ds = P[e] * (dp - dsum) * g->scale;
            if (gv)
                for (int64_t d = 0; d < Dv; d++) gv[u * N * Dv + j * Dv + d] += P[e] * doi[d];
            if (gq)
                for (int64_t d = 0; d < D; d++) gq[u * N * D + i * D + d] += ds * k[j * D + d];
            if (gk)
                for (int64_t d = 0; d < D; d++) gk[u * N * D + j * D + d] += ds * q[i * D + d];
        }
    }
}

attn_status attn__graph_attention_backward(attn_ctx *ctx, attn_node *node) {
    const ga_geom g = ga_geometry(node);
    float *gq = attn__needs_grad(node, 0) ? node->in[0]->grad : NULL;
    float *gk = attn__needs_grad(node, 1) ? node->in[1]->grad : NULL;
    float *gv = attn__needs_grad(node, 2) ? node->in[2]->grad : NULL;
    const float *P = attn_f32(node->saved[0]), *go = node->out->grad;
    const int nt = ga_threads(ctx, &g);
    (void)nt; /* unused without OpenMP */
    ATTN__OMP_FOR(nt)
    for (int64_t u = 0; u < g.B * g.H; u++) backward_unit(&g, u, P, go, gq, gk, gv);
    return ATTN_OK;
}

/* ---- the builder ------------------------------------------------------------------------ */

attn_status attn_graph_check(const attn_graph *graph) {
    static const char fn[] = "graph_attention";
    if (!graph || !graph->row_ptr || (graph->n_nodes > 0 && graph->row_ptr[graph->n_nodes] > 0 && !graph->col))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: graph, row_ptr or col is NULL", fn);
    const int64_t N = graph->n_nodes;
    if (N < 1 || N > INT32_MAX)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: %lld nodes, expected 1 .. 2^31 - 1", fn,
                           (long long)N);
    if (graph->row_ptr[0] != 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: row_ptr[0] = %lld, expected 0", fn,
                           (long long)graph->row_ptr[0]);
    for (int64_t i = 0; i < N; i++) {
        const int64_t e0 = graph->row_ptr[i], e1 = graph->row_ptr[i + 1];
        if (e1 < e0 || e1 > INT32_MAX)
            return attn__error(ATTN_ERR_INVALID_ARG,
                               "%s: row_ptr[%lld] = %lld after %lld: expected non-decreasing and "
                               "at most 2^31 - 1 edges", fn, (long long)(i + 1), (long long)e1,
                               (long long)e0);
        for (int64_t e = e0; e < e1; e++) {
            const int32_t j = graph->col[e];
            if (j < 0 || j >= N)
                return attn__error(ATTN_ERR_INVALID_ARG,
                                   "%s: col[%lld] = %d (an edge of node %lld) outside [0, %lld)",
                                   fn, (long long)e, j, (long long)i, (long long)N);
            if (e > e0 && j <= graph->col[e - 1])
                return attn__error(ATTN_ERR_INVALID_ARG,
                                   "%s: the neighbours of node %lld are not strictly increasing "
                                   "(col[%lld] = %d after %d): sort them and drop duplicates",
                                   fn, (long long)i, (long long)e, j, graph->col[e - 1]);
        }
    }
    return ATTN_OK;
}

attn_tensor *attn_graph_attention(attn_ctx *ctx, attn_tensor *q, attn_tensor *k, attn_tensor *v,
                                  const attn_graph *graph, const attn_graph_attention_opts *opts,
                                  attn_tensor **weights) {
    static const char name[] = "graph_attention";
    if (weights) *weights = NULL;
    if (attn__any_null(ctx, name, 3, q, k, v)) return NULL;
    if (attn__check_dtype(ctx, name, "q", q, ATTN_F32) || attn__check_dtype(ctx, name, "k", k, ATTN_F32) ||
        attn__check_dtype(ctx, name, "v", v, ATTN_F32))
        return NULL;
    if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4 || q->shape[0] < 1 || q->shape[1] < 1 ||
        q->shape[2] < 1 || q->shape[3] < 1 || k->shape[0] != q->shape[0] ||
        k->shape[1] != q->shape[1] || k->shape[2] != q->shape[2] || k->shape[3] != q->shape[3] ||
        v->shape[0] != q->shape[0] || v->shape[1] != q->shape[1] || v->shape[2] != q->shape[2] ||
        v->shape[3] < 1) {
        attn__fail(ctx, ATTN_ERR_SHAPE, "%s: q %s, k %s, v %s: expected q and k [B, H, N, D], v "
                   "[B, H, N, Dv], every size >= 1", name, attn__shp(q), attn__shp(k), attn__shp(v));
        return NULL;
    }
    const int64_t B = q->shape[0], H = q->shape[1], N = q->shape[2], Dv = v->shape[3];
    if (!graph || graph->n_nodes != N) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: a graph of %lld nodes for q %s (N = %lld)", name,
                   graph ? (long long)graph->n_nodes : -1LL, attn__shp(q), (long long)N);
        return NULL;
    }
    if (attn_graph_check(graph) != ATTN_OK) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s", attn_last_error());
        return NULL;
    }
    const float scale = opts && opts->scale != 0.0f ? opts->scale : (float)(1.0 / sqrt((double)q->shape[3]));
    if (!isfinite(scale)) {
        attn__fail(ctx, ATTN_ERR_INVALID_ARG, "%s: scale %g is not finite", name, (double)scale);
        return NULL;
    }
    const int64_t E = graph->row_ptr[N], En = E > 0 ? E : 1;
    attn_tensor *in[3] = {attn__contig(ctx, q), NULL, NULL};
    in[1] = in[0] ? attn__contig(ctx, k) : NULL;
    in[2] = in[1] ? attn__contig(ctx, v) : NULL;
    if (!in[2]) return NULL;
    const int64_t ysh[4] = {B, H, N, Dv}, psh[3] = {B, H, En}, rsh[1] = {N + 1}, csh[1] = {En};
    attn_tensor *out = attn__tensor(ctx, name, ATTN_F32, 4, ysh);
    attn_tensor *P = out ? attn__tensor(ctx, name, ATTN_F32, 3, psh) : NULL;
    attn_tensor *rp = P ? attn__tensor(ctx, name, ATTN_I32, 1, rsh) : NULL;
    attn_tensor *col = rp ? attn__tensor(ctx, name, ATTN_I32, 1, csh) : NULL;
    if (!col) return NULL;
    for (int64_t i = 0; i <= N; i++) attn_i32(rp)[i] = (int32_t)graph->row_ptr[i];
    if (E > 0) memcpy(attn_i32(col), graph->col, sizeof(int32_t) * (size_t)E);
    else attn_i32(col)[0] = 0;
    memset(attn_f32(P), 0, sizeof(float) * (size_t)(B * H * En));
    attn_node *node = attn__node(ctx, ATTN_OP_GRAPH_ATTENTION, 3, in, out);
    if (!node) return NULL;
    node->iarg[0] = E;
    node->farg[0] = scale;
    node->saved[0] = P;
    node->saved[1] = rp;
    node->saved[2] = col;
    attn_tensor *y = attn__run(ctx, node);
    if (y && weights) *weights = P;
    return y;
}

/* ---- the BP-Transformer graph ------------------------------------------------------------ */

typedef struct edge_list {
    int64_t *dst, *src; /* dst attends to src */
    int64_t n, cap;
} edge_list;

static int edge_add(edge_list *e, int64_t dst, int64_t src) {
    if (e->n == e->cap) {
        const int64_t cap = e->cap ? 2 * e->cap : 1024;
        int64_t *d = realloc(e->dst, sizeof(int64_t) * (size_t)cap);
        if (d) e->dst = d;
        int64_t *s = d ? realloc(e->src, sizeof(int64_t) * (size_t)cap) : NULL;
        if (!s) return -1;
        e->src = s;
        e->cap = cap;
    }
    e->dst[e->n] = dst;
    e->src[e->n] = src;
    e->n++;
    return 0;
}

attn_status attn_bpt_graph(int64_t n, int step, int causal, int64_t *n_nodes, int64_t **row_ptr,
                           int32_t **col) {
    static const char fn[] = "attn_bpt_graph";
    if (!n_nodes || !row_ptr || !col) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL argument", fn);
    *row_ptr = NULL;
    *col = NULL;
    *n_nodes = 0;
    if (n < 1 || n > (1 << 26) || step < 1 || step > 1024)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: n %lld (1 .. 2^26), step %d (1 .. 1024)", fn,
                           (long long)n, step);
    /* levels: sizes and the id of each level's first node */
    int64_t size[64], shift[65];
    int levels = 0;
    shift[0] = 0;
    for (int64_t m = n; m >= 2; m = (m + 1) >> 1) {
        size[levels] = m;
        shift[levels + 1] = shift[levels] + m;
        levels++;
    }
    size[levels] = 1; /* the root */
    shift[levels + 1] = shift[levels] + 1;
    levels++;
    const int64_t N = shift[levels];
    edge_list e = {0};
    int oom = 0;
    for (int64_t i = 0; i < n && !oom; i++) {
        int64_t v = i, l_ptr = i - 1, r_ptr = i + 1;
        int l_over = 0, r_over = 0;
        for (int j = 0; j < levels && !oom; j++) {
            for (int k = 0; k < step && !oom; k++) {
                if (!causal && r_ptr < size[j]) {
                    const int64_t src = r_over ? shift[j - 1] + 2 * r_ptr + 1 : shift[j] + r_ptr;
                    oom |= edge_add(&e, i, src);
                    r_over = 0;
                }
                r_ptr++;
                if (l_ptr >= 0) {
                    const int64_t src = l_over ? shift[j - 1] + 2 * l_ptr : shift[j] + l_ptr;
                    oom |= edge_add(&e, i, src);
                    l_over = 0;
                }
                l_ptr--;
            }
            /* the builder's parity test on the raw pointers, then an
             * arithmetic shift (floor division: -1 stays -1) */
            if ((l_ptr & 1) == 0) l_over = 1;
            if ((r_ptr & 1) == 1) r_over = 1;
            r_ptr >>= 1;
            l_ptr = l_ptr >= 0 ? l_ptr >> 1 : -1;
            /* bottom-up: the level-j node covering token i attends to it */
            oom |= edge_add(&e, shift[j] + v, i);
            v >>= 1;
        }
    }
    if (oom || e.n > INT32_MAX) {
        free(e.dst);
        free(e.src);
        return oom ? attn__error(ATTN_ERR_OOM, "%s: out of memory (%lld edges)", fn, (long long)e.n)
                   : attn__error(ATTN_ERR_INVALID_ARG, "%s: %lld edges (over 2^31 - 1)", fn,
                                 (long long)e.n);
    }
    /* CSR by destination, each row sorted with duplicates dropped */
    int64_t *rp = calloc((size_t)N + 1, sizeof *rp);
    int32_t *c = malloc(sizeof *c * (size_t)(e.n > 0 ? e.n : 1));
    int64_t *fill = calloc((size_t)N + 1, sizeof *fill);
    if (!rp || !c || !fill) {
        free(rp);
        free(c);
        free(fill);
        free(e.dst);
        free(e.src);
        return attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    }
    for (int64_t x = 0; x < e.n; x++) rp[e.dst[x] + 1]++;
    for (int64_t x = 0; x < N; x++) rp[x + 1] += rp[x];
    for (int64_t x = 0; x < e.n; x++) c[rp[e.dst[x]] + fill[e.dst[x]]++] = (int32_t)e.src[x];
    int64_t w = 0;
    for (int64_t x = 0; x < N; x++) {
        const int64_t a = rp[x], b = rp[x + 1];
        /* insertion sort: rows are short (about 2 step levels + a span) */
        for (int64_t p = a + 1; p < b; p++) {
            const int32_t key = c[p];
            int64_t q = p - 1;
            while (q >= a && c[q] > key) {
                c[q + 1] = c[q];
                q--;
            }
            c[q + 1] = key;
        }
        rp[x] = w;
        for (int64_t p = a; p < b; p++)
            if (p == a || c[p] != c[p - 1]) c[w++] = c[p];
    }
    rp[N] = w;
    free(fill);
    free(e.dst);
    free(e.src);
    *n_nodes = N;
    *row_ptr = rp;
    *col = c;
    return ATTN_OK;
}
