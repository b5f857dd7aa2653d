#!/usr/bin/env python3
"""make_sdpa_fixtures.py: PyTorch references for the SDPA graph op
(include/attn/sdpa.h, src/ops/sdpa.c).

    /usr/bin/python3 tools/make_sdpa_fixtures.py tests/fixtures   (or: make fixtures)

Writes tests/fixtures/sdpa.atfx in the op-fixture layout of make_fixtures.py
(whose writer and Philox it imports), read by the generic op suite through
build_sdpa in tests/op_cases.c, and the same cases as flash_sdpa.atfx for the
fused op (FLASH_SDPA, build_flash_sdpa), which computes the same function. Per case k, names starting with "c<k>.":

    q, k, v            f32 [B,H,T,D], [B,Hkv,S,D], [B,Hkv,S,Dv] (storage layout)
    view.q             optional i32 permutation (q stored as [B,T,H,D], the
                       layout of heads split from a projection)
    bias               optional f32, broadcastable to [B,H,T,S] (-inf allowed)
    key_lengths        optional i32 [B]
    attr.scale         f32 (0: 1/sqrt(D)); attr.causal, attr.window i32;
    attr.dropout       f32; attr.seed, attr.offset (u64 as two i32 words, low
                       first) and attr.training, when dropout > 0
    out, grad_out, grad.<input>   as make_fixtures.py

The attention is written out with torch ops in float64 (torch 1.13 has no
F.scaled_dot_product_attention): logits scale q k^T + bias, the masks of
sdpa.h (causal diagonal aligned bottom-right: key s visible to query t iff
s <= t + S - T; the sliding window; key_lengths), softmax, a query row with
no visible key defined as zeros, inverted dropout with the mask of
include/attn/rng.h over P's row-major elements, then P v; grouped-query
attention by repeating each k/v head H / Hkv times. Gradients come from
torch autograd. Inputs are float32, the computation float64 on those
values, results rounded once to float32 (make_fixtures.py's oracle).

When run by a torch 2.x with F.scaled_dot_product_attention (e.g.
/opt/torch2/bin/python), every case without dropout is also checked against
it (boolean mask built bottom-right, heads repeated for GQA; rows with no
visible key, NaN in torch, are left out), outputs and gradients to 1e-12.
The fixtures themselves are the same whichever torch runs the script.
Deterministic (fixed seeds); never needed at run time.
"""

import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import MASK32, MAX_FILE, Fixture, check_philox, rng_uniform  # noqa: E402


def words(v):
    """a u64 as two i32 words, low word first (the bits, not the value)"""
    return np.array([v & MASK32, (v >> 32) & MASK32], dtype=np.uint32).view(np.int32)


def u64(w):
    return int(w[0]) & MASK32 | (int(w[1]) & MASK32) << 32


def visible(b, t, s, causal, window, key_lengths):
    """bool [B or 1, 1, T, S]: key s visible to query t (sdpa.h)."""
    ti = torch.arange(t)[:, None]
    si = torch.arange(s)[None, :]
    d = ti + (s - t)                      # the query's position on the key axis
    ok = torch.ones(t, s, dtype=torch.bool)
    if causal:
        ok = ok & (si <= d)
    if window > 0:
        ok = ok & ((si > d - window) if causal else ((si - d).abs() < window))
    ok = ok[None, None]
    if key_lengths is not None:
        ok = ok & (si[None, None] < key_lengths[:, None, None, None])
    return ok


def sdpa(tn, a):
    """The op of sdpa.h in float64 torch ops. tn: name -> tensor, a: attrs."""
    q, k, v = tn["q"], tn["k"], tn["v"]
    B, H, T, D = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    scale = float(np.float32(a.get("scale", 0.0))) or 1.0 / np.sqrt(D)
    kk = k.repeat_interleave(H // Hkv, dim=1)
    vv = v.repeat_interleave(H // Hkv, dim=1)
    logits = scale * (q @ kk.transpose(-1, -2))
    if "bias" in tn:
        logits = logits + tn["bias"]
    ok = visible(B, T, S, int(a.get("causal", 0)), int(a.get("window", 0)), tn.get("key_lengths"))
    logits = logits.masked_fill(~ok, float("-inf"))
    dead = torch.isneginf(logits).all(dim=-1, keepdim=True)
    p = torch.softmax(torch.where(dead, torch.zeros_like(logits), logits), dim=-1)
    p = torch.where(dead, torch.zeros_like(p), p)
    pd = float(np.float32(a.get("dropout", 0.0)))
    if pd > 0.0 and int(a.get("training", 1)):
        u = rng_uniform(u64(a["seed"]), u64(a["offset"]), p.numel()).reshape(tuple(p.shape))
        keep = torch.tensor(u >= pd, dtype=torch.float64)
        p = p * keep / (1.0 - pd)
    return p @ vv


def check_torch2(fx, k):
    """Compares case k with torch 2's F.scaled_dot_product_attention."""
    pre = "c%d." % k
    get = {name[len(pre):]: arr for name, _, _, arr in fx.arrays if name.startswith(pre)}
    a = {n[5:]: get[n] for n in get if n.startswith("attr.")}
    if float(a.get("dropout", 0.0)) > 0.0:
        return
    tn = {}
    for n in ("q", "k", "v", "bias"):
        if n in get:
            tn[n] = torch.tensor(get[n].astype(np.float64), requires_grad=True)
    leaves = dict(tn)
    if "view.q" in get:
        tn["q"] = tn["q"].permute(*get["view.q"].tolist())
    if "key_lengths" in get:
        tn["key_lengths"] = torch.tensor(get["key_lengths"].astype(np.int64))
    mine = sdpa(tn, a)
    q, kt, vt = tn["q"], tn["k"], tn["v"]
    B, H, T, D = q.shape
    Hkv, S = kt.shape[1], kt.shape[2]
    ok = visible(B, T, S, int(a.get("causal", 0)), int(a.get("window", 0)), tn.get("key_lengths"))
    mask = torch.zeros(ok.shape, dtype=torch.float64).masked_fill(~ok, float("-inf"))
    if "bias" in tn:
        mask = mask + tn["bias"]
    scale = float(np.float32(a.get("scale", 0.0))) or None
    theirs = F.scaled_dot_product_attention(q, kt.repeat_interleave(H // Hkv, 1),
                                            vt.repeat_interleave(H // Hkv, 1),
                                            attn_mask=mask, scale=scale)
    plain = not int(a.get("window", 0)) and "bias" not in tn and "key_lengths" not in tn
    if plain and int(a.get("causal", 0)):
        # torch's own causal masks, independent of visible(): is_causal (top-left,
        # the same diagonal when T == S) and causal_lower_right (bottom-right)
        if T == S:
            theirs = F.scaled_dot_product_attention(q, kt.repeat_interleave(H // Hkv, 1),
                                                    vt.repeat_interleave(H // Hkv, 1),
                                                    is_causal=True, scale=scale)
            assert torch.allclose(mine, theirs, rtol=1e-12, atol=1e-12), k
        else:
            import warnings
            from torch.nn.attention.bias import causal_lower_right
            warnings.filterwarnings("ignore", message="Lower right causal bias")
            cm = causal_lower_right(T, S)
            mask = torch.zeros(T, S, dtype=torch.float64).masked_fill(
                ~cm._materialize(), float("-inf"))[None, None]
            theirs = F.scaled_dot_product_attention(q, kt.repeat_interleave(H // Hkv, 1),
                                                    vt.repeat_interleave(H // Hkv, 1),
                                                    attn_mask=mask, scale=scale)
    live = ~torch.isneginf(mask.expand(B, H, T, S)).all(-1)        # [B,H,T]
    g = torch.tensor(np.random.default_rng(k).standard_normal(tuple(mine.shape)))
    g = g * live[..., None]
    assert torch.allclose(mine[live], theirs[live], rtol=1e-12, atol=1e-12), k
    ga = torch.autograd.grad((mine * g).sum(), list(leaves.values()))
    gb = torch.autograd.grad((theirs * g).nan_to_num().sum(), list(leaves.values()))
    for n, x, y in zip(leaves, ga, gb):
        assert torch.allclose(x, y.nan_to_num(), rtol=1e-10, atol=1e-12), (k, n)


class SdpaFixture(Fixture):
    """Fixture that also keeps the arrays (for the torch 2 check)."""

    def __init__(self, op):
        self.arrays = []
        super().__init__(op)

    def put(self, name, arr):
        super().put(name, arr)
        self.arrays.append((name, None, None, np.asarray(arr)))


def gen(fx):
    n = fx.normal
    inf = np.float32(-np.inf)

    def case(label, B, H, Hkv, T, S, D, Dv, attrs=None, bias=None, kl=None, strided_q=False):
        ins = {"q": n(B, T, H, D) if strided_q else n(B, H, T, D),
               "k": n(B, Hkv, S, D), "v": n(B, Hkv, S, Dv)}
        if bias is not None:
            ins["bias"] = bias
        if kl is not None:
            ins["key_lengths"] = np.array(kl, np.int32)
        fx.case(label, ins, sdpa, attrs, views={"q": (0, 2, 1, 3)} if strided_q else None)

    case("MHA B2 H2 T5 S7 D8 Dv6, no mask", 2, 2, 2, 5, 7, 8, 6)
    case("T1 S1 D3", 1, 1, 1, 1, 1, 3, 3)
    case("causal, T4 < S7 (KV cache: bottom-right diagonal)", 2, 2, 2, 4, 7, 8, 8, {"causal": 1})
    case("causal, T5 > S3 (first two queries see no key)", 1, 2, 2, 5, 3, 4, 5, {"causal": 1})
    case("causal T=S 7 with window 3", 2, 1, 1, 7, 7, 6, 6, {"causal": 1, "window": 3})
    case("window 2 without causal (symmetric), T6 S9", 1, 2, 2, 6, 9, 5, 4, {"window": 2})
    case("key_lengths [5, 0] (batch 1 fully masked: zeros)", 2, 2, 2, 3, 7, 8, 6, kl=[5, 0])
    case("key_lengths [3, 6] with causal, T4 S6", 2, 2, 1, 4, 6, 8, 8, {"causal": 1}, kl=[3, 6])
    b1 = n(1, 2, 4, 6)
    b1[0, 1, 2, 1:4] = inf
    case("bias [1,H,T,S] with -inf entries", 2, 2, 2, 4, 6, 5, 5, bias=b1)
    b2 = n(2, 1, 1, 6)
    b2[1, 0, 0, :] = inf                  # batch 1: every key masked by the bias
    case("bias [B,1,1,S] (batch 1 all -inf), causal", 2, 2, 2, 6, 6, 4, 4, {"causal": 1}, bias=b2)
    case("bias [T,S] (learned relative bias), window 2", 2, 3, 3, 5, 5, 4, 3, {"window": 2},
         bias=n(5, 5))
    case("GQA H4 Hkv2, causal T5 S8, bias [H,T,S]", 2, 4, 2, 5, 8, 6, 7, {"causal": 1},
         bias=n(4, 5, 8))
    case("MQA H4 Hkv1, key_lengths [6, 2]", 2, 4, 1, 3, 6, 8, 5, kl=[6, 2])
    case("explicit scale 0.5, strided q ([B,T,H,D] permuted)", 2, 3, 3, 4, 5, 6, 6,
         {"scale": np.float32(0.5)}, strided_q=True)
    case("dropout 0.25 seed 0x1234 offset 77, GQA H4 Hkv2, causal", 2, 4, 2, 5, 6, 4, 4,
         {"causal": 1, "dropout": np.float32(0.25), "seed": words(0x1234),
          "offset": words(77), "training": 1})
    case("dropout 0.5 seed 2^40+3 offset 2^32+5, key_lengths [4, 0]", 2, 2, 2, 3, 5, 4, 3,
         {"dropout": np.float32(0.5), "seed": words((1 << 40) + 3),
          "offset": words((1 << 32) + 5), "training": 1}, kl=[4, 0])
    case("dropout 0.5 in eval mode (no dropout)", 1, 2, 2, 3, 4, 4, 4,
         {"dropout": np.float32(0.5), "seed": words(9), "offset": words(0), "training": 0})
    case("ragged B1 H2 T65 S65 D16 Dv16 causal", 1, 2, 2, 65, 65, 16, 16, {"causal": 1})


def main(argv):
    if len(argv) != 2:
        print("usage: make_sdpa_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    check_philox()
    torch.set_default_dtype(torch.float64)
    fx = SdpaFixture("sdpa")
    gen(fx)
    if hasattr(F, "scaled_dot_product_attention"):
        for k in range(fx.ncases):
            check_torch2(fx, k)
        print("sdpa: agrees with torch %s F.scaled_dot_product_attention" % torch.__version__)
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        print("make_sdpa_fixtures.py: sdpa is %d bytes, limit %d" % (len(data), MAX_FILE),
              file=sys.stderr)
        return 1
    os.makedirs(argv[1], exist_ok=True)
    with open(os.path.join(argv[1], "sdpa.atfx"), "wb") as f:
        f.write(data)
    print("%-14s %3d cases %7d bytes" % ("sdpa", fx.ncases, len(data)))
    # the fused op (FLASH_SDPA) computes the same function: the same cases
    # under its own op name
    fl = SdpaFixture("flash_sdpa")
    gen(fl)
    data = fl.to_bytes()
    with open(os.path.join(argv[1], "flash_sdpa.atfx"), "wb") as f:
        f.write(data)
    print("%-14s %3d cases %7d bytes" % ("flash_sdpa", fl.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
