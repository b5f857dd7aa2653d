#!/usr/bin/env python3
"""make_fixtures.py: writes the PyTorch reference fixtures of the op tests.

    python3 tools/make_fixtures.py tests/fixtures      (or: make fixtures)
    python3 tools/make_fixtures.py tests/fixtures --only conv2d,conv1d
                                                       (only those ops' files)

One file per op of src/core/op_table.h, tests/fixtures/<op>.atfx, in the ATFX
format (tests/fixture.h, docs/testing.md). Each file holds several cases; case
k stores, under names starting with "c<k>.":

    label              text (i32 vector of UTF-8 bytes) describing the case
    <input>            every input, float32 or int32, in its storage layout
    view.<input>       optional i32 permutation: the op receives
                       permute(<input>, perm), a strided view (tests the
                       contiguous-copy path of every op)
    attr.<name>        attributes (axis, keepdim, eps, p ...), 0-d or 1-d
    out                torch's output (float32)
    grad_out           a random upstream gradient of the output's shape
    grad.<input>       torch's gradient of sum(out * grad_out) with respect to
                       every float input (in the input's storage shape)

plus "op" (text), "n_cases" (i32 scalar). The file header carries the seed.

Oracle: inputs are drawn in float32; torch computes in float64 from those
float32 values and the results are rounded once to float32. This is the most
accurate reference available: the C kernels (float32, some accumulating in
double) are then judged against the exact result of their own inputs, so the
tolerances of op_table.h measure our error only, not torch's.

Semantics where torch and attn differ on purpose (documented in ops.h) are
written here explicitly: a softmax row that is masked out entirely gives zeros
and a zero gradient (torch: NaN); a cross entropy whose rows are all ignored
is 0 with a zero gradient (torch: NaN).

Dropout: torch's generator is not ours, so the mask comes from a Python
Philox4x32-10 that follows include/attn/rng.h exactly (checked against the
Random123 known-answer vectors at start-up); torch then computes
x * mask / (1 - p) and its gradient.

Everything is deterministic: the seed of each op's generator is SEED + a
CRC32 of the op's name, so adding cases to one op leaves the others' bytes
unchanged. Needs torch (1.13 tested) and numpy; never needed at run time.
"""

import os
import re
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

SEED = 20240611
VERSION = 1
DT_F32, DT_I32 = 0, 2
ALL_AXES = 127            # ATTN_ALL_AXES of include/attn/ops.h
MAX_FILE = 200 * 1024     # bytes per fixture file
MAX_TOTAL = 2 * 1024 * 1024

# ---------------------------------------------------------------------------
# Philox4x32-10, as include/attn/rng.h


M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = 0xFFFFFFFF


def philox4x32(ctr, key):
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for r in range(10):
        if r:
            k0, k1 = (k0 + W0) & MASK32, (k1 + W1) & MASK32
        p0, p1 = M0 * c0, M1 * c2
        hi0, lo0 = p0 >> 32, p0 & MASK32
        hi1, lo1 = p1 >> 32, p1 & MASK32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return (c0, c1, c2, c3)


def rng_uniform(seed, offset, n):
    """attn_rng_uniform(seed, offset, i) for i in [0, n): element i uses the
    counter offset + i/4 (64 bits in ctr[0..1], ctr[2..3] = 0), key = seed
    (low word first), word i % 4; uniform = (u32 >> 8) * 2^-24."""
    key = (seed & MASK32, (seed >> 32) & MASK32)
    out = np.empty(n, dtype=np.float64)
    for blk in range((n + 3) // 4):
        c = offset + blk
        words = philox4x32((c & MASK32, (c >> 32) & MASK32, 0, 0), key)
        for j in range(4):
            i = blk * 4 + j
            if i < n:
                out[i] = (words[j] >> 8) * 2.0 ** -24
    return out


def check_philox():
    kat = [((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
           ((MASK32,) * 4, (MASK32,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
           ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]
    for ctr, key, want in kat:
        got = philox4x32(ctr, key)
        if got != want:
            raise SystemExit("philox4x32 known-answer test failed: %r != %r" % (got, want))

# ---------------------------------------------------------------------------
# ATFX writer


class Fixture:
    def __init__(self, op):
        self.op = op
        self.seed = (SEED + zlib.crc32(op.encode())) & 0xFFFFFFFFFFFFFFFF
        self.rng = np.random.default_rng(self.seed)
        self.tensors = []          # (name, dtype, shape, bytes)
        self.names = set()
        self.ncases = 0
        self.text("op", op)

    # -- raw tensors --
    def put(self, name, arr):
        if name in self.names:
            raise ValueError("%s: duplicate tensor %s" % (self.op, name))
        self.names.add(name)
        arr = np.asarray(arr)
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr) | np.isneginf(arr)):
                raise ValueError("%s: %s has NaN or +inf" % (self.op, name))
            arr, dt = arr.astype("<f4"), DT_F32
        elif arr.dtype.kind in "iub":
            if arr.size and (arr.min() < -2 ** 31 or arr.max() >= 2 ** 31):
                raise ValueError("%s: %s does not fit int32" % (self.op, name))
            arr, dt = arr.astype("<i4"), DT_I32
        else:
            raise TypeError("%s: %s has dtype %s" % (self.op, name, arr.dtype))
        self.tensors.append((name, dt, arr.shape, np.ascontiguousarray(arr).tobytes()))

    def text(self, name, s):
        self.put(name, np.frombuffer(s.encode(), dtype=np.uint8).astype(np.int32))

    def to_bytes(self):
        self.put("n_cases", np.array(self.ncases, dtype=np.int32))
        out = [b"ATFX", struct.pack("<IIQ", VERSION, len(self.tensors), self.seed)]
        for name, dt, shape, data in self.tensors:
            nb = name.encode()
            out.append(struct.pack("<I", len(nb)) + nb)
            out.append(struct.pack("<II", dt, len(shape)))
            out.append(struct.pack("<%dq" % len(shape), *shape))
            out.append(data)
        return b"".join(out)

    # -- random inputs (float32) --
    def normal(self, *shape, scale=1.0):
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def uniform(self, lo, hi, *shape):
        return self.rng.uniform(lo, hi, shape).astype(np.float32)

    def away_from_zero(self, lo, hi, *shape):
        """|x| in [lo, hi] with a random sign (for relu and divisors)."""
        mag = self.rng.uniform(lo, hi, shape)
        sign = np.where(self.rng.random(shape) < 0.5, -1.0, 1.0)
        return (mag * sign).astype(np.float32)

    def ints(self, lo, hi, *shape):
        return self.rng.integers(lo, hi, shape).astype(np.int32)

    # -- one case --
    def case(self, label, inputs, fn, attrs=None, views=None, dyadic_grad=False):
        """inputs: name -> float32 or int32 array (storage layout).
        fn(t, a): t maps name -> torch tensor (float64 with requires_grad for
        float inputs, int64 for int inputs; permuted when views has a perm
        for it), a is attrs; returns the float64 output.
        dyadic_grad: grad_out values are multiples of 1/64 in [-2, 2], so
        that sums of a few of them are exact in float32 (for ops whose
        tolerance is 0 and whose backward adds, e.g. embedding)."""
        attrs = attrs or {}
        views = views or {}
        k = self.ncases
        p = "c%d." % k
        self.text(p + "label", label)
        t = {}
        leaves = {}
        for name, arr in inputs.items():
            self.put(p + name, arr)
            if arr.dtype.kind == "f":
                leaf = torch.tensor(arr.astype(np.float64), dtype=torch.float64, requires_grad=True)
                leaves[name] = leaf
            else:
                leaf = torch.tensor(arr.astype(np.int64))
            if name in views:
                self.put(p + "view." + name, np.array(views[name], dtype=np.int32))
                leaf = leaf.permute(*views[name])
            t[name] = leaf
        for name, v in attrs.items():
            self.put(p + "attr." + name, np.asarray(v))
        out = fn(t, attrs)
        o32 = out.detach().numpy().astype(np.float32)
        if dyadic_grad:
            g = (self.rng.integers(-128, 129, o32.shape) / 64.0).astype(np.float32)
        else:
            g = self.normal(*o32.shape)
        if leaves:
            grads = torch.autograd.grad(out, list(leaves.values()),
                                        grad_outputs=torch.tensor(g.astype(np.float64)),
                                        allow_unused=True)
        else:
            grads = []
        self.put(p + "out", o32)
        self.put(p + "grad_out", g)
        for (name, leaf), gr in zip(leaves.items(), grads):
            gv = np.zeros(leaf.shape) if gr is None else gr.numpy()
            if not np.all(np.isfinite(gv)):
                raise ValueError("%s case %d (%s): gradient of %s is not finite"
                                 % (self.op, k, label, name))
            self.put(p + "grad." + name, gv.astype(np.float32))
        self.ncases += 1

# ---------------------------------------------------------------------------
# the ops


def gen_view(fx):
    def reshape(shape):
        return lambda t, a: t["x"].reshape(tuple(shape))
    for shp, new in [((2, 3, 4), (6, 4)), ((7,), (7, 1)), ((65,), (5, 13)), ((3, 5, 7), (-1, 7)),
                     ((1,), ())]:
        fx.case("reshape %s -> %s" % (shp, new), {"x": fx.normal(*shp)}, reshape(new),
                {"kind": 0, "shape": np.array(new, dtype=np.int32)})
    fx.case("reshape of a strided (permuted) input [5,3]^T -> [15]", {"x": fx.normal(5, 3)},
            lambda t, a: t["x"].reshape(15), {"kind": 0, "shape": np.array([15], dtype=np.int32)},
            views={"x": (1, 0)})
    for shp, perm in [((2, 3, 5, 7), (3, 1, 0, 2)), ((7, 1, 65), (2, 0, 1))]:
        fx.case("permute %s by %s" % (shp, perm), {"x": fx.normal(*shp)},
                lambda t, a, perm=perm: t["x"].permute(*perm),
                {"kind": 1, "perm": np.array(perm, dtype=np.int32)})
    for shp, d0, d1 in [((3, 7), 0, 1), ((2, 5, 7, 3), -1, 1)]:
        fx.case("transpose %s dims %d,%d" % (shp, d0, d1), {"x": fx.normal(*shp)},
                lambda t, a, d0=d0, d1=d1: t["x"].transpose(d0, d1),
                {"kind": 2, "dim0": d0, "dim1": d1})
    for shp, ax, st, ln in [((7, 65), 1, 3, 33), ((7, 65), 0, 6, 1), ((2, 3, 5), -1, 0, 5)]:
        fx.case("slice %s axis %d [%d, %d)" % (shp, ax, st, st + ln), {"x": fx.normal(*shp)},
                lambda t, a, ax=ax, st=st, ln=ln: t["x"].narrow(ax, st, ln),
                {"kind": 3, "axis": ax, "start": st, "len": ln})
    for shp, ax, sizes, part in [((7, 10), 1, (3, 7), 1), ((9, 4), 0, (1, 3, 5), 2),
                                 ((9, 4), 0, (1, 3, 5), 0)]:
        fx.case("split %s axis %d into %s, part %d" % (shp, ax, sizes, part),
                {"x": fx.normal(*shp)},
                lambda t, a, ax=ax, sizes=sizes, part=part: torch.split(t["x"], list(sizes), ax)[part],
                {"kind": 4, "axis": ax, "sizes": np.array(sizes, dtype=np.int32), "part": part})


def gen_contiguous(fx):
    fx.case("contiguous of transpose [5,3]^T", {"x": fx.normal(5, 3)},
            lambda t, a: t["x"].permute(1, 0).contiguous(), {"perm": np.array([1, 0], np.int32)})
    fx.case("contiguous of permute [2,3,7,5] by (2,0,3,1)", {"x": fx.normal(2, 3, 7, 5)},
            lambda t, a: t["x"].permute(2, 0, 3, 1).contiguous(),
            {"perm": np.array([2, 0, 3, 1], np.int32)})
    fx.case("contiguous of slice [7,65] axis 1 [1, 34)", {"x": fx.normal(7, 65)},
            lambda t, a: t["x"].narrow(1, 1, 33).contiguous(),
            {"slice": np.array([1, 1, 33], np.int32)})
    fx.case("contiguous of permute [1,7,1] by (2,1,0)", {"x": fx.normal(1, 7, 1)},
            lambda t, a: t["x"].permute(2, 1, 0).contiguous(),
            {"perm": np.array([2, 1, 0], np.int32)})


def gen_concat(fx):
    for shapes, ax in [([(3, 5), (4, 5)], 0), ([(2, 1, 7), (2, 7, 7), (2, 3, 7)], 1),
                       ([(7, 1), (7, 65)], -1), ([(5, 3)], 0),
                       ([(2, 3, 1, 5), (2, 3, 4, 5)], 2)]:
        ins = {"x%d" % i: fx.normal(*s) for i, s in enumerate(shapes)}
        fx.case("concat %d inputs %s axis %d" % (len(shapes), shapes, ax), ins,
                lambda t, a, n=len(shapes), ax=ax: torch.cat([t["x%d" % i] for i in range(n)], ax),
                {"axis": ax})
    fx.case("concat of strided inputs [5,3]^T and [3,3]", {"x0": fx.normal(5, 3), "x1": fx.normal(3, 3)},
            lambda t, a: torch.cat([t["x0"], t["x1"]], 1), {"axis": 1}, views={"x0": (1, 0)})


def gen_matmul(fx):
    for sa, sb in [((1, 1), (1, 1)), ((7, 5), (5, 3)), ((2, 7, 65), (65, 9)),
                   ((2, 3, 7, 5), (5, 1)), ((65, 1), (1, 7)), ((1, 33), (33, 65))]:
        fx.case("matmul %s @ %s" % (sa, sb), {"a": fx.normal(*sa), "b": fx.normal(*sb)},
                lambda t, a: torch.matmul(t["a"], t["b"]))
    fx.case("matmul strided a ([5,7]^T) @ strided b ([3,5]^T)",
            {"a": fx.normal(5, 7), "b": fx.normal(3, 5)},
            lambda t, a: torch.matmul(t["a"], t["b"]), views={"a": (1, 0), "b": (1, 0)})


def gen_bmm(fx):
    def bmm(t, a):
        x, y = t["a"], t["b"]
        if int(a["trans_a"]):
            x = x.transpose(-1, -2)
        if int(a["trans_b"]):
            y = y.transpose(-1, -2)
        return torch.matmul(x, y)
    for bt, m, k, n in [((3,), 7, 5, 4), ((2, 3), 7, 5, 9), ((1,), 1, 65, 1), ((2,), 65, 3, 7),
                        ((2, 2), 1, 1, 1)]:
        for ta in (0, 1):
            for tb in (0, 1):
                if (bt, m) == ((1,), 1) and (ta or tb):
                    continue
                if bt == (2, 2) and ta != tb:
                    continue
                sa = bt + ((k, m) if ta else (m, k))
                sb = bt + ((n, k) if tb else (k, n))
                fx.case("bmm %s @ %s trans_a=%d trans_b=%d" % (sa, sb, ta, tb),
                        {"a": fx.normal(*sa), "b": fx.normal(*sb)}, bmm,
                        {"trans_a": ta, "trans_b": tb})


def gen_linear(fx):
    for sx, o, bias in [((7, 5), 3, True), ((7, 5), 3, False), ((2, 7, 65), 9, True),
                        ((5,), 7, True), ((1, 1), 1, True), ((2, 3, 1, 4), 65, False)]:
        ins = {"x": fx.normal(*sx), "w": fx.normal(o, sx[-1], scale=0.5)}
        if bias:
            ins["b"] = fx.normal(o)
        fx.case("linear x %s w [%d,%d] %s" % (sx, o, sx[-1], "with bias" if bias else "no bias"),
                ins, lambda t, a: F.linear(t["x"], t["w"], t.get("b")))


def gen_linear_gelu(fx):
    for sx, o, bias in [((7, 5), 3, True), ((7, 5), 3, False), ((2, 7, 65), 9, True),
                        ((5,), 7, True), ((2, 3, 1, 4), 65, False), ((33, 40), 37, True)]:
        ins = {"x": fx.normal(*sx), "w": fx.normal(o, sx[-1], scale=0.5)}
        if bias:
            ins["b"] = fx.normal(o)
        fx.case("linear_gelu x %s w [%d,%d] %s" % (sx, o, sx[-1], "with bias" if bias else "no bias"),
                ins, lambda t, a: F.gelu(F.linear(t["x"], t["w"], t.get("b"))))


BINARY_SHAPES = [((7, 5), (7, 5)), ((65,), (1,)), ((2, 3, 7), (7,)), ((4, 1, 3), (5, 1)),
                 ((2, 1, 7, 1), (3, 1, 5)), ((7, 5), ()), ((1, 5), (7, 5)), ((1,), (1,))]


def gen_binary(fx, fn, divisor=False):
    for sa, sb in BINARY_SHAPES:
        b = fx.away_from_zero(0.5, 2.0, *sb) if divisor else fx.normal(*sb)
        fx.case("%s %s, %s" % (fx.op, sa, sb), {"a": fx.normal(*sa), "b": b},
                lambda t, a: fn(t["a"], t["b"]))
    b = fx.away_from_zero(0.5, 2.0, 5) if divisor else fx.normal(5)
    fx.case("%s strided a ([5,7]^T), b [5]" % fx.op, {"a": fx.normal(5, 7), "b": b},
            lambda t, a: fn(t["a"], t["b"]), views={"a": (1, 0)})


def gen_scale(fx):
    for shp, s in [((7,), 2.5), ((3, 65), -0.5), ((1,), 0.0), ((2, 3, 5, 7), 1e-3)]:
        fx.case("scale %s by %g" % (shp, s), {"x": fx.normal(*shp)},
                lambda t, a, s=s: t["x"] * float(np.float32(s)), {"s": np.float32(s)})


def gen_bias_add(fx):
    for sx in [(7, 5), (2, 3, 65), (1,), (4, 1)]:
        fx.case("bias_add x %s b [%d]" % (sx, sx[-1]), {"x": fx.normal(*sx), "b": fx.normal(sx[-1])},
                lambda t, a: t["x"] + t["b"])
    fx.case("bias_add strided x ([5,7]^T)", {"x": fx.normal(5, 7), "b": fx.normal(5)},
            lambda t, a: t["x"] + t["b"], views={"x": (1, 0)})


def gen_reduce(fx, mean):
    def red(t, a):
        x, ax, kd = t["x"], int(a["axis"]), bool(int(a["keepdim"]))
        f = torch.mean if mean else torch.sum
        if ax == ALL_AXES:
            return f(x)
        return f(x, dim=ax, keepdim=kd)
    x3 = (3, 7, 5)
    for shp, ax, kd in [(x3, 0, 0), (x3, 1, 0), (x3, 2, 0), (x3, -1, 0), (x3, 1, 1), (x3, -3, 1),
                        (x3, ALL_AXES, 0), ((65,), 0, 0), ((1,), ALL_AXES, 0),
                        ((2, 3, 1, 5), 2, 1), ((2, 3, 4, 65), 3, 0)]:
        fx.case("%s %s axis %s keepdim %d" % (fx.op, shp, "all" if ax == ALL_AXES else ax, kd),
                {"x": fx.normal(*shp)}, red, {"axis": ax, "keepdim": kd})
    fx.case("%s strided x ([5,7]^T) axis 1" % fx.op, {"x": fx.normal(5, 7)}, red,
            {"axis": 1, "keepdim": 0}, views={"x": (1, 0)})


UNARY_SHAPES = [(1,), (7,), (65,), (3, 7, 5), (2, 3, 5, 7)]


def gen_unary(fx, fn, gen, attrs=None, label=""):
    for shp in UNARY_SHAPES:
        fx.case("%s%s %s" % (fx.op, label, shp), {"x": gen(*shp)}, fn, attrs)
    fx.case("%s%s strided x ([5,7]^T)" % (fx.op, label), {"x": gen(5, 7)}, fn, attrs,
            views={"x": (1, 0)})


def soft_fn(log):
    """softmax / log_softmax over the last axis of x + mask, with attn's rule
    for fully masked rows (zeros, zero gradient)."""
    def f(t, a):
        z = t["x"] + t["mask"] if "mask" in t else t["x"]
        dead = torch.isneginf(z).all(dim=-1, keepdim=True)
        zs = torch.where(dead, torch.zeros_like(z), z)
        y = F.log_softmax(zs, -1) if log else F.softmax(zs, -1)
        return torch.where(dead, torch.zeros_like(y), y)
    return f


def causal(t, s):
    m = np.zeros((t, s), np.float32)
    m[np.triu_indices(t, 1, s)] = -np.inf
    return m


def gen_softmax(fx):
    f = soft_fn(False)
    for shp in [(1, 1), (7,), (3, 65), (4, 1)]:
        fx.case("softmax %s no mask" % (shp,), {"x": fx.normal(*shp)}, f)
    fx.case("softmax [2,3,7,7] causal mask [7,7] (-inf) broadcast over [B,H,T,S]",
            {"x": fx.normal(2, 3, 7, 7), "mask": causal(7, 7)}, f)
    pad = np.zeros((2, 1, 1, 9), np.float32)
    pad[0, 0, 0, 6:] = -np.inf
    pad[1, 0, 0, 2:] = -np.inf
    fx.case("softmax [2,3,5,9] padding mask [2,1,1,9]", {"x": fx.normal(2, 3, 5, 9), "mask": pad}, f)
    m = causal(5, 6)
    m[2, :] = -np.inf
    fx.case("softmax [2,5,6] mask [5,6] with row 2 fully masked (zeros, no NaN)",
            {"x": fx.normal(2, 5, 6), "mask": m}, f)
    fx.case("softmax [2,3,7,7] finite bias mask [3,7,7]",
            {"x": fx.normal(2, 3, 7, 7), "mask": fx.normal(3, 7, 7)}, f)
    fx.case("softmax [3,65] large logits (x 40)", {"x": fx.normal(3, 65, scale=40.0)}, f)
    fx.case("softmax strided x ([9,4]^T)", {"x": fx.normal(9, 4)}, f, views={"x": (1, 0)})


def gen_log_softmax(fx):
    f = soft_fn(True)
    for shp in [(1, 1), (7,), (3, 65), (2, 3, 7)]:
        fx.case("log_softmax %s no mask" % (shp,), {"x": fx.normal(*shp)}, f)
    fx.case("log_softmax [2,5,7] finite mask [5,7]", {"x": fx.normal(2, 5, 7),
                                                      "mask": fx.normal(5, 7, scale=3.0)}, f)
    fx.case("log_softmax [4,9] finite mask [4,1]", {"x": fx.normal(4, 9), "mask": fx.normal(4, 1)}, f)
    fx.case("log_softmax [3,65] large logits (x 40)", {"x": fx.normal(3, 65, scale=40.0)}, f)
    fx.case("log_softmax strided x ([9,4]^T)", {"x": fx.normal(9, 4)}, f, views={"x": (1, 0)})


def gen_cross_entropy(fx):
    def ce(t, a):
        ii, ls = int(a["ignore_index"]), float(a["label_smoothing"])
        x, y = t["logits"], t["targets"]
        if bool((y == ii).all()):
            return (x * 0.0).sum()  # attn: all rows ignored -> 0, zero gradient
        loss = F.cross_entropy(x, y, ignore_index=ii, label_smoothing=ls)
        # the contract of ops.h, written out: mean over kept rows of
        # -sum_j q_j log p_j with q = (1 - e) one_hot + e / V
        with torch.no_grad():
            keep = y != ii
            lp = F.log_softmax(x[keep], -1)
            v = x.shape[1]
            q = torch.full_like(lp, ls / v)
            q[torch.arange(lp.shape[0]), y[keep]] += 1.0 - ls
            mine = -(q * lp).sum(-1).mean()
            assert abs(float(mine) - float(loss)) < 1e-12, (float(mine), float(loss))
        return loss
    for n, v, ii, ls in [(7, 5, -100, 0.0), (1, 65, -100, 0.0), (9, 7, 2, 0.0), (9, 7, -100, 0.1),
                         (13, 65, 3, 0.2), (3, 1, -100, 0.0)]:
        tg = fx.ints(0, v, n)
        if ii >= 0:
            tg[::3] = ii
        fx.case("cross_entropy logits [%d,%d] ignore_index %d label_smoothing %g" % (n, v, ii, ls),
                {"logits": fx.normal(n, v, scale=2.0), "targets": tg}, ce,
                {"ignore_index": ii, "label_smoothing": np.float32(ls)})
    fx.case("cross_entropy all rows ignored (loss 0)",
            {"logits": fx.normal(4, 5), "targets": np.full(4, -1, np.int32)}, ce,
            {"ignore_index": -1, "label_smoothing": np.float32(0.0)})


def gen_layernorm(fx):
    def ln(t, a):
        c = t["x"].shape[-1]
        return F.layer_norm(t["x"], (c,), t.get("gamma"), t.get("beta"), float(a["eps"]))
    for shp, g, b, eps in [((7, 5), 1, 1, 1e-5), ((3, 65), 1, 0, 1e-5), ((2, 3, 7), 0, 1, 1e-5),
                           ((4, 9), 0, 0, 1e-3), ((4, 1), 1, 1, 1e-5), ((1, 130), 1, 1, 1e-5),
                           ((2, 2, 3, 33), 1, 1, 1e-6)]:
        c = shp[-1]
        ins = {"x": fx.normal(*shp, scale=2.0) + 0.5}
        if g:
            ins["gamma"] = fx.normal(c) * 0.5 + 1.0
        if b:
            ins["beta"] = fx.normal(c)
        fx.case("layernorm %s %s %s eps %g" % (shp, "gamma" if g else "no gamma",
                                              "beta" if b else "no beta", eps),
                ins, ln, {"eps": np.float32(eps)})
    fx.case("layernorm strided x ([7,4]^T) gamma beta",
            {"x": fx.normal(7, 4), "gamma": fx.normal(7), "beta": fx.normal(7)}, ln,
            {"eps": np.float32(1e-5)}, views={"x": (1, 0)})


def gen_embedding(fx):
    for v, c, ids in [(7, 5, [3, 0, 6]), (65, 3, None), (1, 1, [0, 0, 0, 0]), (9, 65, [8, 8, 1])]:
        if ids is None:
            ids = fx.ints(0, 9, 2, 7)   # small range: repeated ids accumulate
        ids = np.asarray(ids, np.int32)
        fx.case("embedding weight [%d,%d] ids %s" % (v, c, list(ids.shape)),
                {"weight": fx.normal(v, c), "ids": ids},
                lambda t, a: F.embedding(t["ids"], t["weight"]), dyadic_grad=True)


def gen_dropout(fx):
    def drop(t, a):
        p, x = float(a["p"]), t["x"]
        if not int(a["training"]) or p == 0.0:
            return x * 1.0
        seed = int(a["seed"][0]) & MASK32 | (int(a["seed"][1]) & MASK32) << 32
        off = int(a["offset"][0]) & MASK32 | (int(a["offset"][1]) & MASK32) << 32
        u = rng_uniform(seed, off, x.numel()).reshape(tuple(x.shape))
        keep = torch.tensor(u >= float(np.float32(p)), dtype=torch.float64)
        return x * keep / (1.0 - float(np.float32(p)))

    def words(v):
        """a u64 as two i32 words, low word first (the bits, not the value)"""
        return np.array([v & MASK32, (v >> 32) & MASK32], dtype=np.uint32).view(np.int32)

    for shp, p, seed, off, train in [((7,), 0.1, 1, 0, 1), ((3, 65), 0.5, 42, 0, 1),
                                     ((2, 3, 5, 7), 0.25, 0x123456789ABCDEF0, 1000, 1),
                                     ((65,), 0.9, 7, (1 << 32) + 5, 1), ((7,), 0.0, 3, 0, 1),
                                     ((3, 7), 0.5, 3, 0, 0)]:
        fx.case("dropout %s p %g seed %#x offset %d %s" % (shp, p, seed, off,
                                                        "training" if train else "eval"),
                {"x": fx.normal(*shp)}, drop,
                {"p": np.float32(p), "seed": words(seed), "offset": words(off), "training": train})


def cell_fn(lstm):
    """GRU_CELL / LSTM_CELL (include/attn/rnn.h): the formula written out,
    asserted equal to torch's own cell (torch._VF.gru_cell / lstm_cell, what
    torch.nn.GRUCell / LSTMCell call) fed x = gx through W_ih = I, b_ih = 0.
    Rows with mask 0 keep their state. The LSTM output is cat([h', c'], 0)."""
    def f(t, a):
        gx, h, w, b = t["gx"], t["h"], t["w_hh"], t.get("b_hh")
        hs = h.shape[1]
        p = h @ w.t() + (b if b is not None else 0.0)
        s = [slice(k * hs, (k + 1) * hs) for k in range(4)]
        if lstm:
            c = t["c"]
            i, fg = torch.sigmoid(gx[:, s[0]] + p[:, s[0]]), torch.sigmoid(gx[:, s[1]] + p[:, s[1]])
            g, o = torch.tanh(gx[:, s[2]] + p[:, s[2]]), torch.sigmoid(gx[:, s[3]] + p[:, s[3]])
            c2 = fg * c + i * g
            h2 = o * torch.tanh(c2)
        else:
            r, z = torch.sigmoid(gx[:, s[0]] + p[:, s[0]]), torch.sigmoid(gx[:, s[1]] + p[:, s[1]])
            n = torch.tanh(gx[:, s[2]] + r * p[:, s[2]])
            h2 = (1.0 - z) * n + z * h
        with torch.no_grad():
            eye = torch.eye(gx.shape[1])
            if lstm:
                th, tc = torch._VF.lstm_cell(gx, (h, t["c"]), eye, w, None, b)
                assert float((th - h2).abs().max()) < 1e-12 and float((tc - c2).abs().max()) < 1e-12
            else:
                th = torch._VF.gru_cell(gx, h, eye, w, None, b)
                assert float((th - h2).abs().max()) < 1e-12
        if "mask" in t:
            m = (t["mask"] != 0).to(torch.float64).unsqueeze(1)
            h2 = m * h2 + (1.0 - m) * h
            if lstm:
                c2 = m * c2 + (1.0 - m) * c
        return torch.cat([h2, c2], 0) if lstm else h2
    return f


def gen_cell(fx, lstm):
    gates = 4 if lstm else 3
    name = "lstm_cell" if lstm else "gru_cell"
    f = cell_fn(lstm)
    for b, hs, bias, mask, strided in [(3, 5, 1, None, 0), (1, 1, 1, None, 0), (4, 7, 0, None, 0),
                                       (5, 6, 1, [1, 0, 1, 1, 0], 0), (3, 4, 1, [0, 0, 0], 0),
                                       (2, 33, 1, None, 0), (2, 5, 1, [1, 0], 1)]:
        ins = {"gx": fx.normal(gates * hs, b) if strided else fx.normal(b, gates * hs),
               "h": fx.uniform(-1, 1, b, hs)}
        if lstm:
            ins["c"] = fx.normal(b, hs)
        ins["w_hh"] = fx.normal(gates * hs, hs, scale=0.5)
        if bias:
            ins["b_hh"] = fx.normal(gates * hs, scale=0.5)
        if mask is not None:
            ins["mask"] = np.array(mask, np.int32)
        label = "%s B %d H %d %s%s%s" % (
            name, b, hs, "bias" if bias else "no bias",
            " mask %s" % mask if mask is not None else "",
            " strided gx ([%d,%d]^T)" % (gates * hs, b) if strided else "")
        fx.case(label, ins, f, views={"gx": (1, 0)} if strided else None)

def gen_additive_score(fx):
    """ADDITIVE_SCORE (include/attn/rnn_attention.h): e[b,t,s] =
    sum_a v_a tanh(wq[b,t,a] + wk[b,s,a]). A 300 crosses the kernel's
    256-wide chunks; v as [A] and as [1, A]; one strided wk."""
    def f(t, a):
        return (t["v"].reshape(-1) * torch.tanh(t["wq"][:, :, None, :] + t["wk"][:, None, :, :])).sum(-1)
    for b, tq, s_, a_, v2, strided in [(2, 3, 4, 5, 0, 0), (1, 1, 1, 1, 0, 0), (3, 1, 7, 33, 1, 0),
                                       (2, 4, 5, 300, 0, 0), (2, 3, 6, 9, 1, 1)]:
        ins = {"wq": fx.normal(b, tq, a_),
               "wk": fx.normal(s_, b, a_) if strided else fx.normal(b, s_, a_),
               "v": fx.normal(1, a_, scale=0.5) if v2 else fx.normal(a_, scale=0.5)}
        label = "additive_score B %d T %d S %d A %d v %s%s" % (
            b, tq, s_, a_, "[1,A]" if v2 else "[A]",
            " strided wk ([%d,%d,%d] permuted)" % (s_, b, a_) if strided else "")
        fx.case(label, ins, f, views={"wk": (1, 0, 2)} if strided else None)


# ---------------------------------------------------------------------------
# convolutions and pooling (include/attn/conv.h, docs/conv.md)


def pair(v):
    return np.array(v if isinstance(v, (tuple, list)) else (v, v), dtype=np.int32)


def gen_conv2d(fx):
    def conv(t, a):
        return F.conv2d(t["x"], t["w"], t.get("b"), stride=tuple(int(v) for v in a["stride"]),
                        padding=tuple(int(v) for v in a["padding"]),
                        dilation=tuple(int(v) for v in a["dilation"]), groups=int(a["groups"]))
    # (x shape, Cout, kernel, stride, padding, dilation, groups, bias, label)
    for xs, co, k, st, pd, dl, g, bias, what in [
            ((2, 3, 7, 6), 5, (3, 3), 1, 1, 1, 1, 1, "3x3 same padding"),
            ((2, 5, 4, 3), 7, (1, 1), 1, 0, 1, 1, 0, "1x1 (pointwise path)"),
            ((1, 3, 9, 8), 4, (3, 2), 2, (1, 0), 1, 1, 1, "stride 2"),
            ((2, 2, 9, 9), 3, (3, 3), 1, 2, 2, 1, 0, "dilation 2"),
            ((2, 4, 6, 5), 6, (3, 3), 1, 1, 1, 2, 1, "groups 2"),
            ((1, 6, 7, 7), 6, (3, 3), 2, 1, 1, 6, 1, "depthwise stride 2"),
            ((1, 3, 4, 5), 2, (3, 2), (2, 3), (3, 2), 1, 1, 1, "padding larger than kernel/2"),
            ((2, 3, 5, 5), 4, (1, 1), 2, 0, 1, 1, 1, "1x1 stride 2"),
            ((3, 5, 5, 7), 7, (2, 4), (1, 2), (1, 2), (2, 1), 1, 1, "odd channels, mixed"),
            ((1, 1, 1, 1), 1, (1, 1), 1, 0, 1, 1, 1, "1x1 image"),
            ((1, 3, 32, 33), 2, (1, 1), 1, 0, 1, 1, 1, "1x1 on >= 1024 positions (direct path)"),
            ((2, 5, 9, 8), 5, (3, 3), 1, 2, 2, 5, 1, "depthwise dilation 2 padding 2")]:
        cin = xs[1]
        ins = {"x": fx.normal(*xs), "w": fx.normal(co, cin // g, *k, scale=0.5)}
        if bias:
            ins["b"] = fx.normal(co)
        attrs = {"stride": pair(st), "padding": pair(pd), "dilation": pair(dl), "groups": g}
        fx.case("conv2d x %s w %s stride %s padding %s dilation %s groups %d %s, %s"
                % (xs, ins["w"].shape, st, pd, dl, g, "bias" if bias else "no bias", what),
                ins, conv, attrs)
    fx.case("conv2d strided x ([2,6,5,3] permuted to [2,3,6,5]) 3x3 padding 1",
            {"x": fx.normal(2, 6, 5, 3), "w": fx.normal(4, 3, 3, 3, scale=0.5), "b": fx.normal(4)},
            conv, {"stride": pair(1), "padding": pair(1), "dilation": pair(1), "groups": 1},
            views={"x": (0, 3, 1, 2)})


def gen_conv1d(fx):
    def conv(t, a):
        x = t["x"]
        k = t["w"].shape[2]
        d = int(a["dilation"])
        if int(a["causal"]):
            x = F.pad(x, (d * (k - 1), 0))
        return F.conv1d(x, t["w"], t.get("b"), stride=int(a["stride"]), padding=int(a["padding"]),
                        dilation=d, groups=int(a["groups"]))
    # (x shape, Cout, K, stride, padding, dilation, groups, causal, bias)
    for xs, co, k, st, pd, dl, g, causal, bias in [
            ((2, 3, 10), 4, 3, 1, 0, 1, 1, 1, 1), ((2, 4, 12), 4, 2, 1, 0, 4, 1, 1, 1),
            ((1, 3, 11), 5, 3, 2, 1, 1, 1, 0, 0), ((2, 6, 9), 6, 3, 1, 0, 2, 3, 1, 1),
            ((2, 5, 7), 3, 1, 1, 0, 1, 1, 0, 1), ((1, 2, 9), 3, 3, 2, 0, 1, 1, 1, 0),
            ((1, 3, 5), 2, 3, 1, 4, 2, 1, 0, 1), ((2, 1, 1), 2, 4, 1, 0, 3, 1, 1, 1),
            ((2, 4, 11), 4, 3, 1, 0, 2, 4, 1, 1)]:
        ins = {"x": fx.normal(*xs), "w": fx.normal(co, xs[1] // g, k, scale=0.5)}
        if bias:
            ins["b"] = fx.normal(co)
        fx.case("conv1d x %s w %s stride %d padding %d dilation %d groups %d%s %s"
                % (xs, ins["w"].shape, st, pd, dl, g, " causal" if causal else "",
                   "bias" if bias else "no bias"),
                ins, conv, {"stride": st, "padding": pd, "dilation": dl, "groups": g,
                            "causal": causal})


def gen_conv_transpose2d(fx):
    def convt(t, a):
        return F.conv_transpose2d(t["x"], t["w"], t.get("b"),
                                  stride=tuple(int(v) for v in a["stride"]),
                                  padding=tuple(int(v) for v in a["padding"]),
                                  output_padding=tuple(int(v) for v in a["output_padding"]),
                                  groups=int(a["groups"]),
                                  dilation=tuple(int(v) for v in a["dilation"]))
    # (x shape, Cout/groups, kernel, stride, padding, output_padding, dilation, groups, bias)
    for xs, cog, k, st, pd, op, dl, g, bias in [
            ((2, 3, 4, 5), 4, (3, 3), 2, 1, 1, 1, 1, 1), ((1, 2, 3, 3), 3, (2, 2), 1, 0, 0, 1, 1, 0),
            ((2, 4, 3, 4), 3, (3, 3), (2, 1), (1, 2), 0, 2, 2, 1),
            ((2, 5, 3, 3), 2, (1, 1), 1, 0, 0, 1, 1, 1),
            ((1, 2, 3, 3), 2, (2, 2), 1, 0, (1, 1), 2, 1, 1),
            ((1, 3, 2, 3), 1, (3, 2), 3, 0, (2, 1), 1, 3, 0),
            ((1, 3, 5, 4), 2, (4, 3), (2, 3), (2, 1), (1, 2), 1, 1, 1),
            ((1, 3, 32, 32), 2, (1, 1), 1, 0, 0, 1, 1, 1),
            ((2, 4, 3, 4), 1, (3, 3), 2, 1, 1, 1, 4, 1)]:
        ins = {"x": fx.normal(*xs), "w": fx.normal(xs[1], cog, *k, scale=0.5)}
        if bias:
            ins["b"] = fx.normal(cog * g)
        fx.case("conv_transpose2d x %s w %s stride %s padding %s output_padding %s dilation %s "
                "groups %d %s" % (xs, ins["w"].shape, st, pd, op, dl, g,
                                  "bias" if bias else "no bias"),
                ins, convt, {"stride": pair(st), "padding": pair(pd), "output_padding": pair(op),
                             "dilation": pair(dl), "groups": g})


def distinct(fx, *shape):
    """Values at least 0.1 apart (a shuffled grid plus a small jitter), so
    that no finite-difference probe (step 1e-2) changes a pooling's argmax."""
    n = int(np.prod(shape))
    v = (fx.rng.permutation(n) - n / 2) * 0.1 + fx.rng.uniform(-0.02, 0.02, n)
    return v.reshape(shape).astype(np.float32)


POOL_CASES = [  # (x shape, kernel, stride (0: kernel), padding)
    ((2, 3, 6, 6), 2, 0, 0), ((1, 2, 7, 5), 3, 2, 1), ((2, 1, 5, 7), (2, 3), (1, 2), (1, 1)),
    ((1, 3, 9, 8), 3, 1, 1), ((1, 1, 1, 1), 1, 0, 0), ((2, 2, 4, 9), (1, 4), (1, 3), (0, 2)),
    ((1, 2, 5, 5), 5, 0, 2)]


def pool_kw(a):
    k = tuple(int(v) for v in a["kernel"])
    s = tuple(int(v) for v in a["stride"])
    return dict(kernel_size=k, stride=s if s[0] else k, padding=tuple(int(v) for v in a["padding"]))


def gen_max_pool2d(fx):
    for xs, k, st, pd in POOL_CASES:
        fx.case("max_pool2d x %s kernel %s stride %s padding %s" % (xs, k, st, pd),
                {"x": distinct(fx, *xs)}, lambda t, a: F.max_pool2d(t["x"], **pool_kw(a)),
                {"kernel": pair(k), "stride": pair(st), "padding": pair(pd)})
    fx.case("max_pool2d strided x ([2,7,6,3] permuted) kernel 3 stride 2",
            {"x": distinct(fx, 2, 7, 6, 3)},
            lambda t, a: F.max_pool2d(t["x"], **pool_kw(a)),
            {"kernel": pair(3), "stride": pair(2), "padding": pair(0)}, views={"x": (0, 3, 1, 2)})


def gen_avg_pool2d(fx):
    for xs, k, st, pd in POOL_CASES:
        for ex in (0, 1) if any(np.atleast_1d(pd)) else (0,):
            fx.case("avg_pool2d x %s kernel %s stride %s padding %s count_include_pad %s"
                    % (xs, k, st, pd, "False" if ex else "True"), {"x": fx.normal(*xs)},
                    lambda t, a: F.avg_pool2d(t["x"], count_include_pad=not int(a["exclude_pad"]),
                                              **pool_kw(a)),
                    {"kernel": pair(k), "stride": pair(st), "padding": pair(pd), "exclude_pad": ex})


def gen_batchnorm(fx):
    """Training cases update the running buffers in place (as torch does);
    their new values are stored as c<k>.running_mean_after / _var_after
    (checked by tests/test_conv.c, not inputs of the op)."""
    for xs, gm, bt, run, train, mom, eps in [
            ((4, 3, 5, 6), 1, 1, 1, 1, 0.1, 1e-5), ((7, 5), 1, 1, 1, 1, 0.1, 1e-5),
            ((3, 4, 9), 0, 1, 0, 1, 0.1, 1e-5), ((2, 3, 4, 4), 1, 0, 1, 0, 0.1, 1e-5),
            ((5, 6), 1, 1, 1, 0, 0.1, 1e-3), ((2, 1, 3, 3), 0, 0, 1, 1, 0.3, 1e-5),
            ((1, 2, 1, 2), 1, 1, 1, 1, 0.1, 1e-5), ((3, 2, 1, 1), 1, 1, 1, 1, 1.0, 1e-5)]:
        c = xs[1]
        ins = {"x": fx.normal(*xs, scale=2.0) + 0.5}
        if gm:
            ins["gamma"] = fx.normal(c) * 0.5 + 1.0
        if bt:
            ins["beta"] = fx.normal(c)
        attrs = {"eps": np.float32(eps), "momentum": np.float32(mom), "training": train}
        state = {}
        if run:
            attrs["running_mean"] = fx.normal(c)
            attrs["running_var"] = fx.uniform(0.5, 2.0, c)

        def bn(t, a, state=state, train=train, run=run):
            rm = rv = None
            if run:
                rm = torch.tensor(a["running_mean"].astype(np.float64))
                rv = torch.tensor(a["running_var"].astype(np.float64))
                state["rm"], state["rv"] = rm, rv
            return F.batch_norm(t["x"], rm, rv, t.get("gamma"), t.get("beta"), bool(train),
                                float(a["momentum"]), float(a["eps"]))
        k = fx.ncases
        fx.case("batchnorm x %s %s %s %s %s momentum %g eps %g"
                % (xs, "gamma" if gm else "no gamma", "beta" if bt else "no beta",
                   "running stats" if run else "no running stats",
                   "training" if train else "eval", mom, eps), ins, bn, attrs)
        if run:
            fx.put("c%d.running_mean_after" % k, state["rm"].numpy())
            fx.put("c%d.running_var_after" % k, state["rv"].numpy())
    fx.case("batchnorm strided x ([4,5,3]^T(0,2,1)) training", {"x": fx.normal(4, 5, 3)},
            lambda t, a: F.batch_norm(t["x"], None, None, None, None, True, 0.1, 1e-5),
            {"eps": np.float32(1e-5), "momentum": np.float32(0.1), "training": 1},
            views={"x": (0, 2, 1)})


def gen_spectral_norm(fx):
    """The normalised weight of torch.nn.utils.parametrizations.spectral_norm
    (one power iteration in training mode), written out with its own formulas
    (W = w with dim moved to the front, flattened to [O, K]; u = normalize(W v),
    v = normalize(W^T u), sigma = u^T W v with u, v detached, w / sigma) and
    checked here against the parametrization of a real module (Linear, Conv1d
    or Conv2d of the weight's shape, the same dim) whose u, v and weight are
    set to the case's. u and v are attributes (updated in place;
    c<k>.u_after / v_after hold torch's)."""
    import torch.nn.utils.parametrizations as P
    for ws, train, dim in [((5, 3, 3, 3), 1, 0), ((7, 4), 1, 0), ((4, 6, 3), 0, 0),
                           ((1, 5), 1, 0), ((6, 1, 2, 2), 1, 0), ((3, 2, 3, 1), 0, 0),
                           ((9, 9), 1, 0), ((4, 3, 4, 4), 1, 1), ((3, 5), 1, 1),
                           ((2, 6, 3, 2), 0, 1), ((5, 1, 3), 1, 1)]:
        eps = 1e-12
        w0 = fx.normal(*ws, scale=0.5)
        perm = (dim,) + tuple(d for d in range(len(ws)) if d != dim)
        wm0 = np.transpose(w0.astype(np.float64), perm).reshape(ws[dim], -1)
        o, k = wm0.shape
        # u, v as torch leaves them at registration: random, normalised, then
        # 15 power iterations (so that sigma is near the top singular value)
        u = fx.normal(o).astype(np.float64)
        v = fx.normal(k).astype(np.float64)
        u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
        for _ in range(15):
            u = wm0 @ v
            u /= np.linalg.norm(u)
            v = wm0.T @ u
            v /= np.linalg.norm(v)
        u0, v0 = u.astype(np.float32), v.astype(np.float32)
        state = {}

        def sn(t, a, state=state, train=train, eps=eps, dim=dim, perm=perm, ws=ws):
            w = t["w"]
            wm = w.permute(*perm).reshape(w.shape[dim], -1)
            u = torch.tensor(a["u"].astype(np.float64))
            v = torch.tensor(a["v"].astype(np.float64))
            with torch.no_grad():
                if train:
                    u = F.normalize(torch.mv(wm, v), dim=0, eps=eps)
                    v = F.normalize(torch.mv(wm.t(), u), dim=0, eps=eps)
            state["u"], state["v"] = u.clone(), v.clone()
            y = w / torch.dot(u, torch.mv(wm, v))
            # the same through torch's parametrization of a real module
            if len(ws) == 2:
                mod = torch.nn.Linear(ws[1], ws[0], bias=False)
            elif len(ws) == 3:
                mod = torch.nn.Conv1d(ws[1], ws[0], ws[2], bias=False)
            else:
                mod = torch.nn.Conv2d(ws[1], ws[0], ws[2:], bias=False)
            mod = mod.double()
            P.spectral_norm(mod, eps=eps, dim=dim)
            par = mod.parametrizations.weight
            with torch.no_grad():
                par.original.copy_(w)
                par[0]._u.copy_(torch.tensor(a["u"].astype(np.float64)))
                par[0]._v.copy_(torch.tensor(a["v"].astype(np.float64)))
            mod.train(bool(train))
            ref = mod.weight.detach()
            assert torch.allclose(ref, y.detach(), rtol=1e-12, atol=1e-12)
            assert torch.allclose(par[0]._u, u, rtol=1e-12, atol=1e-12)
            assert torch.allclose(par[0]._v, v, rtol=1e-12, atol=1e-12)
            return y
        kc = fx.ncases
        fx.case("spectral_norm w %s dim %d %s eps %g" % (ws, dim, "training" if train else "eval",
                                                       eps),
                {"w": w0}, sn,
                {"u": u0, "v": v0, "eps": np.float32(eps), "training": train, "dim": dim})
        fx.put("c%d.u_after" % kc, state["u"].numpy())
        fx.put("c%d.v_after" % kc, state["v"].numpy())

# ---------------------------------------------------------------------------


def unary(name, fn, gen):
    return lambda fx: gen_unary(fx, lambda t, a: fn(t["x"]), gen(fx))


GENERATORS = {
    "view": gen_view,
    "contiguous": gen_contiguous,
    "concat": gen_concat,
    "matmul": gen_matmul,
    "bmm": gen_bmm,
    "linear": gen_linear,
    "linear_gelu": gen_linear_gelu,
    "add": lambda fx: gen_binary(fx, torch.add),
    "sub": lambda fx: gen_binary(fx, torch.sub),
    "mul": lambda fx: gen_binary(fx, torch.mul),
    "div": lambda fx: gen_binary(fx, torch.div, divisor=True),
    "scale": gen_scale,
    "bias_add": gen_bias_add,
    "sum": lambda fx: gen_reduce(fx, False),
    "mean": lambda fx: gen_reduce(fx, True),
    "exp": unary("exp", torch.exp, lambda fx: lambda *s: fx.uniform(-3, 3, *s)),
    "log": unary("log", torch.log, lambda fx: lambda *s: fx.uniform(0.5, 4, *s)),
    "tanh": unary("tanh", torch.tanh, lambda fx: lambda *s: fx.uniform(-3, 3, *s)),
    "sigmoid": unary("sigmoid", torch.sigmoid, lambda fx: lambda *s: fx.uniform(-8, 8, *s)),
    # |x| >= 0.05 keeps finite differences (step 1e-2) away from the kink
    "relu": unary("relu", torch.relu, lambda fx: lambda *s: fx.away_from_zero(0.05, 3, *s)),
    "gelu": lambda fx: (gen_unary(fx, lambda t, a: F.gelu(t["x"]), lambda *s: fx.uniform(-4, 4, *s),
                                  {"tanh_approx": 0}, " exact"),
                        gen_unary(fx, lambda t, a: F.gelu(t["x"], approximate="tanh"),
                                  lambda *s: fx.uniform(-4, 4, *s), {"tanh_approx": 1}, " tanh")),
    "softmax": gen_softmax,
    "log_softmax": gen_log_softmax,
    "cross_entropy": gen_cross_entropy,
    "layernorm": gen_layernorm,
    "embedding": gen_embedding,
    "dropout": gen_dropout,
    "additive_score": gen_additive_score,
    "gru_cell": lambda fx: gen_cell(fx, False),
    "lstm_cell": lambda fx: gen_cell(fx, True),
    "conv2d": gen_conv2d,
    "conv1d": gen_conv1d,
    "conv_transpose2d": gen_conv_transpose2d,
    "max_pool2d": gen_max_pool2d,
    "avg_pool2d": gen_avg_pool2d,
    "batchnorm": gen_batchnorm,
    "spectral_norm": gen_spectral_norm,
}


# Ops of the table whose fixtures another script writes (see the Makefile's
# `fixtures` target); skipped here.
ELSEWHERE = {
    "sdpa": "tools/make_sdpa_fixtures.py",
    # the fused op computes sdpa's function: the same reference math and
    # cases, written under its own name by the same script
    "flash_sdpa": "tools/make_sdpa_fixtures.py",
    "rope": "tools/make_position_fixtures.py",
    "rel_logits": "tools/make_position_fixtures.py",
    "rel_values": "tools/make_position_fixtures.py",
    "txl_attention": "tools/make_long_context_fixtures.py",
    "lsh_attention": "tools/make_reformer_fixtures.py",
    "graph_attention": "tools/make_graph_attention_fixtures.py",
    "lstmn": "tools/make_lstmn_fixtures.py",
}


def table_ops(root):
    """The op names of src/core/op_table.h, in order."""
    path = os.path.join(root, "src", "core", "op_table.h")
    with open(path) as f:
        text = f.read()
    return re.findall(r"^\s*X\(\s*[A-Z0-9_]+\s*,\s*([a-z0-9_]+)\s*,", text, re.M)


def main(argv):
    """make_fixtures.py OUTDIR [--only op1,op2,...]: --only writes those ops'
    fixtures and leaves every other file of OUTDIR alone."""
    only = None
    if len(argv) == 4 and argv[2] == "--only":
        only = [op for op in argv[3].split(",") if op]
        argv = argv[:2]
    if len(argv) != 2:
        print("usage: make_fixtures.py OUTDIR [--only op1,op2,...]", file=sys.stderr)
        return 2
    outdir = argv[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    check_philox()
    torch.set_default_dtype(torch.float64)
    ops = table_ops(root)
    missing = [op for op in ops if op not in GENERATORS and op not in ELSEWHERE]
    if only is not None:
        unknown = [op for op in only if op not in GENERATORS]
        if unknown:
            print("make_fixtures.py: --only: no generator here for %s" % ", ".join(unknown),
                  file=sys.stderr)
            return 1
        ops, missing = only, []
    if missing:
        print("make_fixtures.py: no generator for op(s) %s of op_table.h" % ", ".join(missing),
              file=sys.stderr)
        return 1
    os.makedirs(outdir, exist_ok=True)
    total = 0
    written = 0
    for op in ops:
        if op in ELSEWHERE:
            continue
        fx = Fixture(op)
        GENERATORS[op](fx)
        data = fx.to_bytes()
        if len(data) > MAX_FILE:
            print("make_fixtures.py: %s is %d bytes, limit %d" % (op, len(data), MAX_FILE),
                  file=sys.stderr)
            return 1
        total += len(data)
        written += 1
        with open(os.path.join(outdir, op + ".atfx"), "wb") as f:
            f.write(data)
        print("%-14s %3d cases %7d bytes" % (op, fx.ncases, len(data)))
    if only is None and total > MAX_TOTAL:
        print("make_fixtures.py: fixtures total %d bytes, limit %d" % (total, MAX_TOTAL),
              file=sys.stderr)
        return 1
    print("%d fixtures, %d bytes, in %s" % (written, total, outdir))
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv))
