#!/usr/bin/env python3
"""make_graph_attention_fixtures.py: PyTorch references for the graph op
GRAPH_ATTENTION (include/attn/graph_attention.h).

    /usr/bin/python3 tools/make_graph_attention_fixtures.py tests/fixtures

Writes graph_attention.atfx (the ATFX format of tests/fixture.h; the writer
is make_fixtures.py's), read by the op suite (tests/test_ops.c) through
build_graph_attention of tests/op_cases.c. Per case k: the inputs q, k, v,
the graph as c<k>.row_ptr [N + 1] and c<k>.col [E] (i32, not inputs), the
attribute scale, out, grad_out and the gradients of q, k and v.

The reference is the dense form of the op, independent of its per-edge
kernels: logits q k^T * scale [B, H, N, N], -inf where (i, j) is not an
edge, softmax over j, times v; a node without neighbours gives zeros (its
row of weights is set to 0 instead of softmax's NaN). Graphs: a ring with
self-loops, a random directed graph with isolated and zero-out-degree
nodes, a star (one node sees all), and a complete graph (= dense attention).
Also writes graph_bpt.atfx: BP-Transformer graphs (c<k>.cfg = n, step,
causal, node count; c<k>.row_ptr, c<k>.col) from bpt_edges below, the
authors' graph builder restated in Python, read by tests/test_graph.c.
Inputs float32, computed in float64, rounded once. Deterministic; needs
torch (1.13 tested) and numpy, never at run time.
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)


def csr(n, edges):
    """Sorted, de-duplicated CSR of the edge list [(i, j)]."""
    rows = [sorted(set(j for (a, j) in edges if a == i)) for i in range(n)]
    row_ptr = np.zeros(n + 1, dtype=np.int32)
    for i, r in enumerate(rows):
        row_ptr[i + 1] = row_ptr[i] + len(r)
    col = np.array([j for r in rows for j in r], dtype=np.int32)
    return row_ptr, col


def dense_ref(q, k, v, row_ptr, col, scale):
    n = q.shape[2]
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for e in range(row_ptr[i], row_ptr[i + 1]):
            mask[i, col[e]] = True
    s = (q @ k.transpose(-1, -2)) * scale
    s = s.masked_fill(~mask, float("-inf"))
    has = mask.any(dim=1)
    s = torch.where(has[:, None], s, torch.zeros_like(s))  # rows without edges: finite dummy
    p = torch.softmax(s, dim=-1)
    p = torch.where(has[:, None], p, torch.zeros_like(p))
    return p @ v


def gen(fx):
    rng = fx.rng
    graphs = []
    n = 7
    graphs.append(("ring with self-loops, 7 nodes", n,
                   [(i, j) for i in range(n) for j in (i - 1, i, i + 1) if 0 <= j < n]))
    n = 9
    edges = [(int(i), int(j)) for i, j in zip(rng.integers(0, n, 20), rng.integers(0, n, 20))
             if i not in (3,)]  # node 3 has no neighbours
    graphs.append(("random directed graph, 9 nodes, node 3 without neighbours", n, edges))
    n = 6
    graphs.append(("star: node 0 sees every node, the others only 0", n,
                   [(0, j) for j in range(n)] + [(i, 0) for i in range(1, n)]))
    n = 5
    graphs.append(("complete graph (dense attention), 5 nodes", n,
                   [(i, j) for i in range(n) for j in range(n)]))
    shapes = [(1, 2, 4, 3), (2, 1, 3, 5), (1, 3, 4, 4), (2, 2, 8, 2)]  # B, H, D, Dv
    scales = [0.0, 0.7, 0.0, 1.3]
    for (label, n, edges), (B, H, D, Dv), scale in zip(graphs, shapes, scales):
        row_ptr, col = csr(n, edges)
        k_ = fx.ncases
        fx.put("c%d.row_ptr" % k_, row_ptr)
        fx.put("c%d.col" % k_, col)
        eff = scale if scale != 0.0 else 1.0 / np.sqrt(D)

        def f(t, a, row_ptr=row_ptr, col=col, eff=eff):
            return dense_ref(t["q"], t["k"], t["v"], row_ptr, col, eff)
        fx.case("%s, B %d H %d D %d Dv %d, scale %s" % (label, B, H, D, Dv, scale or "1/sqrt(D)"),
                {"q": fx.normal(B, H, n, D), "k": fx.normal(B, H, n, D), "v": fx.normal(B, H, n, Dv)},
                f, {"scale": np.float32(scale)})


def bpt_edges(n, step, triu):
    """BP-Transformer's graph: the authors' builder (github.com/yzh119/BPT,
    graph_builder/builder.pyx, BinaryPartition.build_graph) restated in
    Python: returns (n_nodes, [(dst, src)]) where dst attends to src."""
    sizes, shift = [], [0]
    m = n
    while m >= 2:
        sizes.append(m)
        shift.append(shift[-1] + m)
        m = (m + 1) >> 1
    sizes.append(1)
    n_nodes = shift[-1] + 1
    edges = []
    for i in range(n):
        v, sh = i, 0
        l_ptr, r_ptr = i - 1, i + 1
        l_over = r_over = False
        for j in range(len(sizes)):
            for _ in range(step):
                if not triu and r_ptr < sizes[j]:
                    edges.append((i, shift[j - 1] + (r_ptr << 1) + 1 if r_over else shift[j] + r_ptr))
                    r_over = False
                r_ptr += 1
                if l_ptr >= 0:
                    edges.append((i, shift[j - 1] + (l_ptr << 1) if l_over else shift[j] + l_ptr))
                    l_over = False
                l_ptr -= 1
            if l_ptr & 1 == 0:
                l_over = True
            if r_ptr & 1 == 1:
                r_over = True
            r_ptr >>= 1
            l_ptr >>= 1
            edges.append((sh + v, i))
            sh += sizes[j]
            v >>= 1
    return n_nodes, edges


def gen_bpt(fx):
    for n, step, triu in [(1, 1, 0), (2, 1, 0), (8, 1, 0), (13, 1, 0), (13, 2, 0), (13, 1, 1),
                          (32, 3, 1), (100, 2, 0)]:
        n_nodes, edges = bpt_edges(n, step, triu)
        row_ptr, col = csr(n_nodes, edges)
        k = fx.ncases
        fx.put("c%d.cfg" % k, np.array([n, step, triu, n_nodes], dtype=np.int32))
        fx.put("c%d.row_ptr" % k, row_ptr)
        fx.put("c%d.col" % k, col)
        fx.ncases += 1


def main(argv):
    if len(argv) != 2:
        print("usage: make_graph_attention_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float64)
    os.makedirs(argv[1], exist_ok=True)
    fx = Fixture("graph_attention")
    gen(fx)
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        print("make_graph_attention_fixtures.py: %d bytes, limit %d" % (len(data), MAX_FILE),
              file=sys.stderr)
        return 1
    with open(os.path.join(argv[1], "graph_attention.atfx"), "wb") as f:
        f.write(data)
    print("%-17s %2d cases %7d bytes" % ("graph_attention", fx.ncases, len(data)))
    fb = Fixture("graph_bpt")
    gen_bpt(fb)
    data = fb.to_bytes()
    with open(os.path.join(argv[1], "graph_bpt.atfx"), "wb") as f:
        f.write(data)
    print("%-17s %2d cases %7d bytes" % ("graph_bpt", fb.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
