#!/usr/bin/env python3
"""make_long_context_fixtures.py: PyTorch references for include/attn/long_context.h.

    /usr/bin/python3 tools/make_long_context_fixtures.py tests/fixtures

Writes, in the ATFX format (tests/fixture.h; the writer is make_fixtures.py's):

  txl_attention.atfx: op fixtures of the graph op TXL_ATTENTION, read by the
      op suite (tests/test_ops.c) through build_txl_attention of
      tests/op_cases.c, with make_fixtures.py's case conventions (c<k>.<input>,
      c<k>.attr.<name>, c<k>.view.<input>, out, grad_out, grad.<input>).

The reference (tools/long_context_torch.py) follows the papers' equations
and the published code's conventions: the relative shift of Transformer-XL's
code for the position term (the C op indexes distances directly), the span
mask applied after the softmax and renormalised by (sum + eps), persistent
vectors inside the one softmax with the span covering the context only.

Finite differences probe every input (tests/test_ops.c (d), step 1e-2): the
span values have fractional parts in [0.2, 0.6] with the ramp 2.25, so no
probe crosses a kink of the clamp (kinks at z = x and z = x - R, x integer).

Oracle precision as make_fixtures.py: inputs drawn in float32, everything
in float64, results rounded once. Deterministic; needs torch and numpy.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)
from long_context_torch import txl_attention_ref  # noqa: E402

TXL_CASES = [
    # (label, B, H, T, M, L extra rows, D, Dv, scale, span, N, strided q, eps)
    ("no memory, T = S = 4", 2, 2, 4, 0, 0, 4, 5, 0.0, False, 0, False, 0.0),
    ("memory M 5, T 3, L = S + 2, scale 0.4", 1, 2, 3, 5, 2, 6, 4, 0.4, False, 0, False, 0.0),
    ("strided q ([B,T,H,D] permuted), M 2, T 5", 2, 3, 5, 2, 0, 4, 4, 0.0, False, 0, True, 0.0),
    ("T 1 decoding step, M 6, D 9, Dv 11 (tail loops)", 1, 2, 1, 6, 1, 9, 11, 0.0, False, 0,
     False, 0.0),
    ("adaptive span, R 2.25, eps 1e-8, M 5, T 4", 2, 2, 4, 5, 0, 4, 3, 0.0, True, 0, False, 1e-8),
    ("adaptive span, eps 0, M 3, T 6 (some rows cut to a few keys)", 1, 3, 6, 3, 0, 5, 4, 0.0,
     True, 0, False, 0.0),
    ("persistent vectors N 3, M 2, T 4", 2, 2, 4, 2, 0, 4, 5, 0.0, False, 3, False, 0.0),
    ("persistent N 2 + adaptive span (joint renormalisation), M 4, T 3", 1, 2, 3, 4, 1, 6, 4, 0.0,
     True, 2, False, 1e-8),
]


def gen_txl_attention(fx):
    for (label, b, h, t, m, lx, d, dv, scale, span, n, strided, eps) in TXL_CASES:
        s = m + t
        ins = {"q": fx.normal(b, t, h, d) if strided else fx.normal(b, h, t, d),
               "k": fx.normal(b, h, s, d), "v": fx.normal(b, h, s, dv),
               "rk": fx.normal(h, s + lx, d), "u": fx.normal(h, d, scale=0.5),
               "vb": fx.normal(h, d, scale=0.5)}
        attrs = {"scale": np.float32(scale)}
        ramp = 2.25
        if span:
            whole = fx.ints(0, max(2, s - 1), h).astype(np.float32)
            ins["span"] = (whole + fx.uniform(0.2, 0.6, h)).astype(np.float32)
            attrs["ramp"] = np.float32(ramp)
            attrs["span_eps"] = np.float32(eps)
        if n:
            ins["pers_k"] = fx.normal(h, n, d)
            ins["pers_v"] = fx.normal(h, n, dv)

        def f(tt, a, span=span, n=n, scale=scale, ramp=ramp, eps=eps):
            out, _ = txl_attention_ref(
                tt["q"], tt["k"], tt["v"], tt["rk"], tt["u"], tt["vb"],
                scale=None if scale == 0.0 else float(np.float32(scale)),
                span=tt["span"] if span else None, ramp=ramp, eps=float(np.float32(eps)),
                pers_k=tt["pers_k"] if n else None, pers_v=tt["pers_v"] if n else None)
            return out
        fx.case("txl_attention " + label, ins, f, attrs,
                views={"q": (0, 2, 1, 3)} if strided else None)


def write(outdir, name, fx):
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        raise SystemExit("%s: %d bytes, over the %d limit" % (name, len(data), MAX_FILE))
    path = os.path.join(outdir, name)
    with open(path, "wb") as f:
        f.write(data)
    print("wrote %s (%d bytes)" % (path, len(data)))


def main(argv):
    if len(argv) != 2:
        print("usage: make_long_context_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    import torch
    torch.set_default_dtype(torch.float64)
    os.makedirs(argv[1], exist_ok=True)
    fx = Fixture("txl_attention")
    gen_txl_attention(fx)
    write(argv[1], "txl_attention.atfx", fx)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
