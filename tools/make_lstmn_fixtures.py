#!/usr/bin/env python3
"""make_lstmn_fixtures.py: PyTorch references for include/attn/lstmn.h.

    /usr/bin/python3 tools/make_lstmn_fixtures.py tests/fixtures

Writes, in the ATFX format (tests/fixture.h; the writer is make_fixtures.py's):

  lstmn.atfx: op fixtures of the graph op LSTMN, read by the op suite
      (tests/test_ops.c) through build_lstmn of tests/op_cases.c, and by the
      lstmn suite (tests/test_lstmn.c): c<k>.gx [B,T,4H], c<k>.ax [B,T,A],
      c<k>.w_hh [4H,H], c<k>.w_mem [A,H], c<k>.v [A], optionally c<k>.h0,
      c<k>.c0 [B,H], c<k>.w_sum [A,H] and c<k>.lengths i32 [B]; then out,
      grad_out and grad.<every float input>.

The reference is lstmn_ref below: a step loop written directly from the
equations of docs/lstmn.md (Cheng, Dong and Lapata 2016, eqs. 5-9), in
float64 with torch's autograd providing every gradient. It shares no code with
the C kernels. Inputs drawn in float32, computed in float64, results rounded
once. Deterministic; needs torch and numpy.
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)


def lstmn_ref(gx, ax, h0, c0, w_hh, w_mem, v, w_sum, lengths):
    """gx [B,T,4H], ax [B,T,A], h0/c0 [B,H], w_hh [4H,H], w_mem/w_sum [A,H] (w_sum may be None),
    v [A], lengths: list of B ints. Returns [B,T,H], zeros at padded steps."""
    B, T, G = gx.shape
    H = G // 4
    rows = []
    for b in range(B):
        hs, cs = [h0[b]], [c0[b]]        # the memory tape, slot 0 = the initial state
        h_tilde = h0[b]                  # h~_0
        outs = []
        for t in range(T):
            if t >= lengths[b]:
                outs.append(torch.zeros(H, dtype=gx.dtype))
                continue
            mem_h = torch.stack(hs)      # [t+1, H]
            mem_c = torch.stack(cs)
            query = ax[b, t]
            if w_sum is not None:
                query = query + w_sum @ h_tilde
            a = torch.tanh(mem_h @ w_mem.T + query) @ v      # a_i = v . tanh(W_h h_i + ...)
            s = torch.softmax(a, dim=0)
            h_tilde = s @ mem_h
            c_tilde = s @ mem_c
            z = gx[b, t] + w_hh @ h_tilde
            i, f = torch.sigmoid(z[:H]), torch.sigmoid(z[H:2 * H])
            g, o = torch.tanh(z[2 * H:3 * H]), torch.sigmoid(z[3 * H:])
            c = f * c_tilde + i * g
            h = o * torch.tanh(c)
            hs.append(h)
            cs.append(c)
            outs.append(h)
        rows.append(torch.stack(outs))
    return torch.stack(rows)


def add_case(fx, label, B, T, H, A, h0=True, c0=True, w_sum=True, lengths=None, scale=1.0,
             views=None):
    inp = {
        "gx": fx.normal(B, T, 4 * H),
        "ax": fx.normal(B, T, A, scale=0.5),
    }
    if h0:
        inp["h0"] = fx.normal(B, H, scale=0.5)
    if c0:
        inp["c0"] = fx.normal(B, H, scale=0.5)
    inp["w_hh"] = fx.normal(4 * H, H, scale=scale / np.sqrt(H))
    inp["w_mem"] = fx.normal(A, H, scale=1.0 / np.sqrt(H))
    inp["v"] = fx.normal(A)
    if w_sum:
        inp["w_sum"] = fx.normal(A, H, scale=1.0 / np.sqrt(H))
    if lengths is not None:
        inp["lengths"] = np.array(lengths, dtype=np.int32)
    if views and "gx" in views:  # the storage is the permuted layout
        perm = views["gx"]
        inv = np.argsort(perm)
        inp["gx"] = np.ascontiguousarray(inp["gx"].transpose(*inv))

    def fn(t, a):
        z = torch.zeros(B, H, dtype=torch.float64)
        lens = [int(x) for x in t["lengths"]] if "lengths" in t else [T] * B
        return lstmn_ref(t["gx"], t["ax"], t.get("h0", z), t.get("c0", z), t["w_hh"],
                         t["w_mem"], t["v"], t.get("w_sum"), lens)

    fx.case(label, inp, fn, views=views)


def gen_lstmn(fx):
    add_case(fx, "B 2, T 5, H 3, A 4, with h~ term, h0 and c0", 2, 5, 3, 4)
    add_case(fx, "B 3, T 7, H 5, A 3, no h~ term, zero initial state, lengths 7 4 0",
             3, 7, 5, 3, h0=False, c0=False, w_sum=False, lengths=[7, 4, 0])
    add_case(fx, "B 1, T 1, H 2, A 2 (one step: the tape is the initial state only)",
             1, 1, 2, 2)
    add_case(fx, "B 2, T 6, H 4, A 5, with h~ term, lengths 3 6, gx a strided view",
             2, 6, 4, 5, lengths=[3, 6], views={"gx": (1, 0, 2)})
    add_case(fx, "B 2, T 9, H 3, A 2, large recurrent weights (peaked attention)",
             2, 9, 3, 2, scale=3.0)


def main(argv):
    if len(argv) != 2:
        print("usage: make_lstmn_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    fx = Fixture("lstmn")
    gen_lstmn(fx)
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        print("make_lstmn_fixtures.py: lstmn.atfx is %d bytes, limit %d" % (len(data), MAX_FILE),
              file=sys.stderr)
        return 1
    with open(os.path.join(outdir, "lstmn.atfx"), "wb") as f:
        f.write(data)
    print("make_lstmn_fixtures.py: wrote %s (%d bytes, %d cases)"
          % (os.path.join(outdir, "lstmn.atfx"), len(data), fx.ncases))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
