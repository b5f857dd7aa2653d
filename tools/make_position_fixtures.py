#!/usr/bin/env python3
"""make_position_fixtures.py: PyTorch references for include/attn/positions.h.

    /usr/bin/python3 tools/make_position_fixtures.py tests/fixtures

Writes, in the ATFX format (tests/fixture.h; the writer is make_fixtures.py's):

  rope.atfx, rel_logits.atfx, rel_values.atfx: op fixtures of the graph ops
      ROPE, REL_LOGITS and REL_VALUES, read by the op suite (tests/test_ops.c)
      through the builders of tests/op_cases.c, with make_fixtures.py's case
      conventions (c<k>.<input>, c<k>.attr.<name>, c<k>.view.<input>, out,
      grad_out, grad.<input>).
  positions.atfx: values for the positions suite (tests/test_positions.c):
      sin<k>.cfg   i32 [3] (T, E, pos0), sin<k>.base f32 [1], sin<k>.out [T, E]
      slopes<H>    f32 [H], the ALiBi slopes of H heads
      alibi<k>.cfg i32 [4] (H, T, S, causal), alibi<k>.out [1, H, T, S]
      plus n_sin, n_alibi (i32).

The references are written independently of the C code: RoPE's rotate-half
layout with torch.cat of the negated second half (as GPT-NeoX/Llama), the
interleaved layout as a complex multiplication (view_as_complex, as
RoFormer/Meta's Llama), Shaw's tables by fancy indexing and einsum, the
sinusoidal table by strided column assignment, the ALiBi slopes by the
recursive rule of the paper's code (written here from the paper's text).

Oracle precision as make_fixtures.py: inputs drawn in float32, everything
computed in float64 from those values (angles too), results rounded once to
float32. Deterministic (fixed seeds); needs torch (1.13 tested) and numpy,
never at run time.
"""

import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)

# ---------------------------------------------------------------------------
# RoPE


def rope_angles(pos, r, theta):
    """pos: float64 tensor of positions (any shape) -> angles [..., r/2]."""
    i = torch.arange(r // 2, dtype=torch.float64)
    inv = theta ** (-2.0 * i / r)
    return pos[..., None] * inv


def rope_ref(x, pos, r, theta, interleaved):
    """x [B, H, T, D] float64; pos [T] or [B, T] float64."""
    phi = rope_angles(pos, r, theta)          # [T, r/2] or [B, T, r/2]
    if phi.dim() == 3:
        phi = phi[:, None, :, :]              # [B, 1, T, r/2]
    xr, rest = x[..., :r], x[..., r:]
    if interleaved:
        z = torch.view_as_complex(xr.reshape(*xr.shape[:-1], r // 2, 2).contiguous())
        zr = z * torch.polar(torch.ones_like(phi), phi)
        rot = torch.view_as_real(zr).reshape(*xr.shape)
    else:
        c = torch.cat([torch.cos(phi), torch.cos(phi)], -1)
        s = torch.cat([torch.sin(phi), torch.sin(phi)], -1)
        x1, x2 = xr[..., : r // 2], xr[..., r // 2:]
        rot = xr * c + torch.cat([-x2, x1], -1) * s
    return torch.cat([rot, rest], -1)


def gen_rope(fx):
    # (label, B, H, T, D, rotary_dim attr, pos kind, pos0, theta attr, interleaved, strided)
    cases = [
        ("B 2 H 3 T 5 D 8, rotate-half, pos0 0", 2, 3, 5, 8, 0, "pos0", 0, 0.0, 0, 0),
        ("B 2 H 3 T 5 D 8, interleaved, pos0 0", 2, 3, 5, 8, 0, "pos0", 0, 0.0, 1, 0),
        ("B 1 H 2 T 7 D 10, rotary_dim 6, pos0 3, theta 500", 1, 2, 7, 10, 6, "pos0", 3, 500.0, 0, 0),
        ("B 2 H 1 T 4 D 9, interleaved, rotary_dim 4, positions [T] with negatives",
         2, 1, 4, 9, 4, "T", 0, 0.0, 1, 0),
        ("B 2 H 3 T 4 D 6, positions [B,T], strided x ([B,T,H,D] permuted)",
         2, 3, 4, 6, 0, "BT", 0, 0.0, 0, 1),
        ("B 1 H 1 T 1 D 2, pos0 1000", 1, 1, 1, 2, 0, "pos0", 1000, 0.0, 0, 0),
        ("B 1 H 2 T 3 D 66, interleaved, pos0 17, theta 1e6, strided x",
         1, 2, 3, 66, 0, "pos0", 17, 1e6, 1, 1),
        ("B 1 H 2 T 3 D 66, rotate-half, rotary_dim 34, positions [B,T]",
         1, 2, 3, 66, 34, "BT", 0, 0.0, 0, 0),
    ]
    for label, b, h, t, d, rd, kind, pos0, theta, inter, strided in cases:
        ins = {"x": fx.normal(b, t, h, d) if strided else fx.normal(b, h, t, d)}
        if kind == "T":
            ins["positions"] = fx.ints(-20, 50, t)
        elif kind == "BT":
            ins["positions"] = fx.ints(0, 300, b, t)
        attrs = {"theta": np.float32(theta), "rotary_dim": rd, "interleaved": inter}
        if kind == "pos0":
            attrs["pos0"] = pos0
        r = rd or d
        th = float(np.float32(theta)) or 10000.0

        def f(tt, a, kind=kind, t=t, pos0=pos0, r=r, th=th, inter=inter):
            if kind == "pos0":
                pos = torch.arange(t, dtype=torch.float64) + pos0
            else:
                pos = tt["positions"].to(torch.float64)
            return rope_ref(tt["x"], pos, r, th, inter)
        fx.case(label, ins, f, attrs, views={"x": (0, 2, 1, 3)} if strided else None)

# ---------------------------------------------------------------------------
# Shaw et al. relative positions


def rel_index(t, s, k, offset):
    """[T, S] int64: clip(s - (t + offset), -K, K) + K."""
    d = torch.arange(s)[None, :] - (torch.arange(t)[:, None] + offset)
    return d.clamp(-k, k) + k


REL_CASES = [
    # (label, B, H, T, S, D, K, offset, strided)
    ("T = S = 5, K 2", 2, 2, 5, 5, 4, 2, 0, 0),
    ("T 3, S 8 (KV cache, offset S-T = 5), K 2", 1, 3, 3, 8, 7, 2, 5, 0),
    ("K 0 (one bucket), T = S = 6", 2, 1, 6, 6, 5, 0, 0, 0),
    ("K 10 > S 4 (nothing clipped)", 1, 2, 4, 4, 3, 10, 0, 0),
    ("T 1 decoding step, S 9, offset 8, K 3", 1, 1, 1, 9, 9, 3, 8, 0),
    ("strided input, T 5, S 7, offset 2, K 1", 2, 3, 5, 7, 6, 1, 2, 1),
    ("negative offset -2, T 4, S 6, K 2", 1, 2, 4, 6, 5, 2, -2, 0),
    ("D 37, T 9, S 12, offset 3, K 4", 1, 2, 9, 12, 37, 4, 3, 0),
]


def gen_rel_logits(fx):
    for label, b, h, t, s, d, k, off, strided in REL_CASES:
        ins = {"q": fx.normal(b, t, h, d) if strided else fx.normal(b, h, t, d),
               "rel_k": fx.normal(2 * k + 1, d)}

        def f(tt, a, t=t, s=s, k=k, off=off):
            rk = tt["rel_k"][rel_index(t, s, k, off)]            # [T, S, D]
            return torch.einsum("bhtd,tsd->bhts", tt["q"], rk)
        fx.case("rel_logits " + label, ins, f, {"S": s, "offset": off},
                views={"q": (0, 2, 1, 3)} if strided else None)


def gen_rel_values(fx):
    for n, (label, b, h, t, s, d, k, off, strided) in enumerate(REL_CASES):
        if n % 2 == 0:  # attention-like weights (rows sum to 1), some exact zeros
            p = torch.softmax(torch.tensor(fx.normal(b, h, t, s, scale=2.0), dtype=torch.float64), -1)
            p = p.numpy().astype(np.float32)
            p[..., 0, -1] = 0.0
        else:
            p = fx.normal(b, h, t, s)
        if strided:
            p = np.ascontiguousarray(p.transpose(0, 2, 1, 3))
        ins = {"p": p, "rel_v": fx.normal(2 * k + 1, d)}

        def f(tt, a, t=t, s=s, k=k, off=off):
            rv = tt["rel_v"][rel_index(t, s, k, off)]            # [T, S, Dv]
            return torch.einsum("bhts,tsd->bhtd", tt["p"], rv)
        fx.case("rel_values " + label, ins, f, {"offset": off},
                views={"p": (0, 2, 1, 3)} if strided else None)

# ---------------------------------------------------------------------------
# the positions suite: sinusoidal table, ALiBi


def sinusoidal_ref(t, e, pos0, base):
    pos = torch.arange(t, dtype=torch.float64)[:, None] + pos0
    freq = base ** (-torch.arange(0, e, 2, dtype=torch.float64) / e)   # columns 0, 2, 4 ...
    pe = torch.zeros(t, e, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : e // 2]
    return pe


def alibi_slopes_ref(h):
    """The paper's rule: a geometric sequence from 2^(-8/n) for n a power of
    two; otherwise the slopes of the closest lower power of two, then every
    other slope of twice that many heads."""
    def pow2(n):
        first = 2.0 ** (-8.0 / n)
        return [first ** (k + 1) for k in range(n)]
    if math.log2(h).is_integer():
        return pow2(h)
    n = 2 ** int(math.floor(math.log2(h)))
    return pow2(n) + alibi_slopes_ref(2 * n)[0::2][: h - n]


def alibi_ref(h, t, s, causal):
    m = torch.tensor(alibi_slopes_ref(h), dtype=torch.float64)[:, None, None]
    q = torch.arange(t, dtype=torch.float64)[:, None] + (s - t)
    dist = q - torch.arange(s, dtype=torch.float64)[None, :]          # q - s
    if causal:
        bias = (-m * dist).masked_fill(dist[None] < 0, float("-inf"))
    else:
        bias = -m * dist.abs()
    return bias[None]


def gen_positions(fx):
    sins = [(7, 16, 0, 0.0), (5, 9, 3, 0.0), (4, 6, 100, 100.0), (3, 512, 10000, 0.0),
            (2, 1, 5, 0.0), (6, 10, -4, 2.5)]
    for k, (t, e, pos0, base) in enumerate(sins):
        fx.put("sin%d.cfg" % k, np.array([t, e, pos0], np.int32))
        fx.put("sin%d.base" % k, np.array([base], np.float32))
        fx.put("sin%d.out" % k, sinusoidal_ref(t, e, pos0, base or 10000.0).numpy())
    fx.put("n_sin", np.array(len(sins), np.int32))
    for h in (1, 2, 3, 4, 5, 6, 8, 12, 16, 20, 24, 32, 40):
        fx.put("slopes%d" % h, np.array(alibi_slopes_ref(h), np.float64))
    alis = [(4, 5, 5, 1), (3, 3, 7, 1), (6, 4, 4, 0), (2, 3, 5, 0), (2, 5, 3, 1), (12, 2, 9, 1)]
    for k, (h, t, s, causal) in enumerate(alis):
        fx.put("alibi%d.cfg" % k, np.array([h, t, s, causal], np.int32))
        fx.put("alibi%d.out" % k, alibi_ref(h, t, s, causal).numpy())
    fx.put("n_alibi", np.array(len(alis), np.int32))


def main(argv):
    if len(argv) != 2:
        print("usage: make_position_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float64)
    os.makedirs(argv[1], exist_ok=True)
    for name, gen in (("rope", gen_rope), ("rel_logits", gen_rel_logits),
                      ("rel_values", gen_rel_values), ("positions", gen_positions)):
        fx = Fixture(name)
        gen(fx)
        data = fx.to_bytes()
        if len(data) > MAX_FILE:
            print("make_position_fixtures.py: %s is %d bytes, limit %d"
                  % (name, len(data), MAX_FILE), file=sys.stderr)
            return 1
        with open(os.path.join(argv[1], name + ".atfx"), "wb") as f:
            f.write(data)
        print("%-11s %2d cases %7d bytes" % (name, fx.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
