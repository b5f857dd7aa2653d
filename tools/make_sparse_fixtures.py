#!/usr/bin/env python3
"""make_sparse_fixtures.py: PyTorch references for the block-sparse attention
patterns of include/attn/sparse.h (docs/sparse.md).

    /usr/bin/python3 tools/make_sparse_fixtures.py tests/fixtures

Writes sparse.atfx (the ATFX format of tests/fixture.h; the writer is
make_fixtures.py's), read by tests/test_sparse.c. Per case k:
  c<k>.cfg       i32 [22]: B, H, Hkv, T, S, D, Dv, the options' causal, then the
                 pattern: kind, causal, heads, head_offsets, block, summary,
                 window, dilation, globals, width, block_h, block_w, margin_h,
                 margin_w
  c<k>.mask      i32 [H, T, S]: 1 where key s is visible to query t of head h
  c<k>.q [B,H,T,D], c<k>.k [B,Hkv,S,D], c<k>.v [B,Hkv,S,Dv], c<k>.grad_out
  c<k>.out, c<k>.grad.q, c<k>.grad.k, c<k>.grad.v

The mask is built here from the definitions of docs/sparse.md, written again
in Python independently of the C code, and the oracle is plain dense
attention under that boolean mask (masked logits -inf, a row with no visible
key gives zeros), softmax over keys, grouped heads by repeating k and v.
Inputs drawn in float32, everything computed in float64, results rounded
once to float32. Deterministic; needs torch (1.13 tested) and numpy, never
at run time.
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)

LOCAL_1D, LOCAL_2D, STRIDED, FIXED, SLIDING, DILATED, GLOBAL = 1, 2, 3, 4, 5, 6, 7
UNION, ALTERNATE, A_ONLY, B_ONLY = 0, 1, 2, 3

FIELDS = ["kind", "causal", "heads", "head_offsets", "block", "summary", "window", "dilation",
          "globals", "width", "block_h", "block_w", "margin_h", "margin_w"]


def pixel(p, i):
    """LOCAL_2D: the (row, col) of position i in the block raster order."""
    bh, bw = p["block_h"], p["block_w"]
    nbc = -(-p["width"] // bw)
    blk, inner = divmod(i, bh * bw)
    return (blk // nbc) * bh + inner // bw, (blk % nbc) * bw + inner % bw


def parts(p, h):
    """(sees A, sees B, summary offset) of head h for STRIDED and FIXED."""
    heads = p["heads"]
    nk = p["block"] // p["summary"] if p["kind"] == FIXED and p["head_offsets"] else 1
    if heads == ALTERNATE:
        a, b, k = h % 2 == 0, h % 2 == 1, (h // 2) % nk
    elif heads == A_ONLY:
        a, b, k = True, False, 0
    elif heads == B_ONLY:
        a, b, k = False, True, h % nk
    else:
        a, b, k = True, True, h % nk
    return a, b, k * p.get("summary", 0)


def visible(p, h, i, j):
    if p["causal"] and j > i:
        return False
    kind, dist = p["kind"], abs(i - j)
    if kind == LOCAL_1D:
        l = p["block"]
        return j // l in (i // l, i // l - 1)
    if kind == LOCAL_2D:
        ri, ci = pixel(p, i)
        rj, cj = pixel(p, j)
        top = (ri // p["block_h"]) * p["block_h"]
        left = (ci // p["block_w"]) * p["block_w"]
        return (cj < p["width"] and top - p["margin_h"] <= rj < top + p["block_h"]
                and left - p["margin_w"] <= cj < left + p["block_w"] + p["margin_w"])
    if kind == STRIDED:
        a, b, _ = parts(p, h)
        return (a and dist < p["block"]) or (b and dist % p["block"] == 0)
    if kind == FIXED:
        a, b, o = parts(p, h)
        l, c = p["block"], p["summary"]
        return (a and i // l == j // l) or (b and l - c - o <= j % l < l - o)
    if kind == SLIDING:
        return dist < p["window"]
    if kind == DILATED:
        return dist < p["window"] and dist % p["dilation"] == 0
    if kind == GLOBAL:
        return i < p["globals"] or j < p["globals"] or dist < p["window"]
    raise ValueError(kind)


def mask_of(p, H, T, S, opts_causal):
    m = np.zeros((H, T, S), dtype=bool)
    for h in range(H):
        for t in range(T):
            i = t + S - T
            for s in range(S):
                m[h, t, s] = visible(p, h, i, s) and not (opts_causal and s > i)
    return m


def f32(rng, shape):
    return torch.tensor(rng.standard_normal(size=shape).astype(np.float32), dtype=torch.float64)


def add_case(fx, B, H, Hkv, T, S, D, Dv, opts_causal, **pattern):
    p = {f: 0 for f in FIELDS}
    p.update(pattern)
    rng = fx.rng
    q, k, v = f32(rng, (B, H, T, D)), f32(rng, (B, Hkv, S, D)), f32(rng, (B, Hkv, S, Dv))
    go = f32(rng, (B, H, T, Dv))
    mask = mask_of(p, H, T, S, opts_causal)
    qq, kk, vv = (x.clone().requires_grad_(True) for x in (q, k, v))
    G = H // Hkv
    kr, vr = kk.repeat_interleave(G, dim=1), vv.repeat_interleave(G, dim=1)
    logits = torch.matmul(qq, kr.transpose(-1, -2)) / np.sqrt(D)
    m = torch.tensor(mask).unsqueeze(0)
    live = m.any(dim=-1, keepdim=True)
    logits = logits.masked_fill(~m, float("-inf"))
    logits = torch.where(live, logits, torch.zeros_like(logits))  # no NaN from empty rows
    prob = torch.softmax(logits, dim=-1) * live
    out = torch.matmul(prob, vr)
    (out * go).sum().backward()
    kk_ = fx.ncases
    cfg = [B, H, Hkv, T, S, D, Dv, int(opts_causal)] + [int(p[f]) for f in FIELDS]
    fx.put("c%d.cfg" % kk_, np.array(cfg, dtype=np.int32))
    fx.put("c%d.mask" % kk_, mask.astype(np.int32))
    fx.put("c%d.q" % kk_, q.numpy())
    fx.put("c%d.k" % kk_, k.numpy())
    fx.put("c%d.v" % kk_, v.numpy())
    fx.put("c%d.grad_out" % kk_, go.numpy())
    fx.put("c%d.out" % kk_, out.detach().numpy())
    fx.put("c%d.grad.q" % kk_, qq.grad.numpy())
    fx.put("c%d.grad.k" % kk_, kk.grad.numpy())
    fx.put("c%d.grad.v" % kk_, vv.grad.numpy())
    fx.ncases += 1


def gen(fx):
    add_case(fx, 1, 2, 1, 20, 20, 6, 5, False, kind=LOCAL_1D, causal=1, block=5)
    # W 5 with 2 x 3 blocks: padded to width 6, column 5 is padding
    add_case(fx, 1, 2, 1, 24, 24, 6, 5, False, kind=LOCAL_2D, causal=1, width=5, block_h=2,
             block_w=3, margin_h=2, margin_w=1)
    add_case(fx, 1, 4, 2, 20, 20, 6, 5, True, kind=STRIDED, heads=ALTERNATE, block=4)
    # B heads with distinct sub-blocks; their first rows see no key
    add_case(fx, 1, 4, 2, 20, 20, 6, 5, False, kind=FIXED, causal=1, heads=ALTERNATE,
             head_offsets=1, block=8, summary=2)
    add_case(fx, 1, 2, 1, 12, 20, 6, 5, False, kind=FIXED, heads=UNION, block=6, summary=2)
    add_case(fx, 1, 2, 1, 20, 20, 6, 5, False, kind=SLIDING, window=4)
    add_case(fx, 1, 2, 1, 16, 20, 6, 5, False, kind=DILATED, causal=1, window=9, dilation=3)
    add_case(fx, 1, 2, 1, 20, 20, 6, 5, False, kind=GLOBAL, globals=2, window=3)
    add_case(fx, 1, 2, 1, 20, 20, 6, 5, False, kind=STRIDED, heads=B_ONLY, block=3)


def main(argv):
    if len(argv) != 2:
        print("usage: make_sparse_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float64)
    os.makedirs(argv[1], exist_ok=True)
    fx = Fixture("sparse")
    gen(fx)
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        print("make_sparse_fixtures.py: %d bytes, limit %d" % (len(data), MAX_FILE),
              file=sys.stderr)
        return 1
    with open(os.path.join(argv[1], "sparse.atfx"), "wb") as f:
        f.write(data)
    print("%-17s %2d cases %7d bytes" % ("sparse", fx.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
