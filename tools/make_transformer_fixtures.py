#!/usr/bin/env python3
"""make_transformer_fixtures.py: references for multi-head attention and the
Transformer blocks (tests/test_transformer.c, include/attn/transformer.h).

    /usr/bin/python3 tools/make_transformer_fixtures.py tests/fixtures

Writes, in the ATFX format (tests/fixture.h; the writer is make_fixtures.py's):

tests/fixtures/transformer_mha.atfx, per case k (names "c<k>."):
    label            text
    cfg              i32 [12]: E, H, Hkv, kdim, vdim, packed, no_bias, mode,
                     causal, has_key_lengths, pos, shaw_clip
                     mode 0 self-attention (query = key = value),
                          1 cross-attention over one memory (key = value),
                          2 separate key and value inputs
                     pos  attn_pos_kind (0 none, 3 shaw, 4 rope, 5 alibi)
    oracle           i32 scalar: 1 torch.nn.MultiheadAttention, 0 the float64
                     reference below (grouped-query heads, positions)
    xq, xk, xv       f32 [B, T, E], [B, S, kdim], [B, S, vdim] (xk, xv absent
                     in mode 0; xv absent in mode 1)
    key_lengths      i32 [B] (has_key_lengths; torch: key_padding_mask True
                     at s >= key_lengths[b])
    bias             f32 [T, S] additive mask (torch's float attn_mask), optional
    rope_theta, pos0 f32 / i32 scalars (pos 4)
    param.<name>     every parameter in attn_mha_init's order and names (torch's
                     named_parameters() for torch cases)
    R                f32 [B, T, E]: the loss is sum(out * R)
    out              the output [B, T, E]
    weights          the attention probabilities [B, H, T, S]
                     (need_weights=True, average_attn_weights=False)
    grad.param.<n>, grad.xq, grad.xk, grad.xv

tests/fixtures/transformer_block.atfx, per case k:
    label, cfg i32 [9]: E, H, F, norm_first, gelu, decoder, causal,
                        has_key_lengths (self), has_memory_lengths
    x [B, T, E], memory [B, S, E] (decoder), key_lengths i32 [B],
    memory_lengths i32 [B], param.<name> (torch's names and order), R, out,
    grad.param.<name>, grad.x, grad.memory
  from torch.nn.TransformerEncoderLayer / TransformerDecoderLayer
  (batch_first=True, dropout 0, layer_norm_eps 1e-5).

The float64 reference (ref_mha) is checked against torch.nn.MultiheadAttention
on every torch case before it is used for the others. Its grouped-query heads
repeat each key/value head H / Hkv times (repeat_interleave); RoPE rotates
pairs (i, i + D/2) by p theta^(-2i/D) at positions pos0 + t; ALiBi adds
-m_h |q - s| (with the causal mask on top when causal), slopes as
attn_alibi_slopes; Shaw adds q . rel_k[j] to the logits before the 1/sqrt(D)
scale and sum_s P rel_v[j] to the output, j = clip(s - t - (S - T), -K, K) + K.

Oracle precision as make_fixtures.py: inputs and weights are drawn in
float32, everything runs in float64 on those values, results are rounded once
to float32. Deterministic; needs torch (1.13 tested) and numpy, never at run
time.
"""

import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)

POS_NONE, POS_SHAW, POS_ROPE, POS_ALIBI = 0, 3, 4, 5


def t64(a):
    return torch.tensor(np.asarray(a).astype(np.float64))


# ---------------------------------------------------------------------------
# the float64 reference


def alibi_slopes(h):
    def pow2(n):
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]
    if h & (h - 1) == 0:
        return pow2(h)
    n = 1 << (h.bit_length() - 1)
    return pow2(n) + pow2(2 * n)[0::2][:h - n]


def rope(x, pos, theta):
    """x [B, H, L, D], rotate-half pairs (i, i + D/2), positions pos [L]."""
    d = x.shape[-1]
    half = d // 2
    inv = torch.tensor([theta ** (-2.0 * i / d) for i in range(half)], dtype=torch.float64)
    ang = torch.tensor(pos, dtype=torch.float64)[:, None] * inv[None, :]
    c, s = torch.cos(ang), torch.sin(ang)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * c - b * s, b * c + a * s], dim=-1)


def ref_mha(prm, cfg, xq, xk, xv, causal, key_lengths, bias, pos0=0, theta=10000.0,
            clip=0):
    """prm: name -> float64 tensor (our names). Returns (out, P)."""
    e, h, hkv, pos = cfg["E"], cfg["H"], cfg["Hkv"], cfg["pos"]
    d = e // h
    g = h // hkv
    if "in_proj_weight" in prm:
        w = prm["in_proj_weight"]
        wq, wk, wv = w[:h * d], w[h * d:(h + hkv) * d], w[(h + hkv) * d:]
    else:
        wq, wk, wv = prm["q_proj_weight"], prm["k_proj_weight"], prm["v_proj_weight"]
    bq = bk = bv = None
    if "in_proj_bias" in prm:
        bb = prm["in_proj_bias"]
        bq, bk, bv = bb[:h * d], bb[h * d:(h + hkv) * d], bb[(h + hkv) * d:]
    bsz, t = xq.shape[0], xq.shape[1]
    s = xk.shape[1]

    def proj(x, w_, b_, n):
        y = x @ w_.T
        if b_ is not None:
            y = y + b_
        return y.reshape(bsz, x.shape[1], n, d).transpose(1, 2)
    q, k, v = proj(xq, wq, bq, h), proj(xk, wk, bk, hkv), proj(xv, wv, bv, hkv)
    if pos == POS_ROPE:
        q = rope(q, [pos0 + i for i in range(t)], theta)
        k = rope(k, [pos0 + i for i in range(s)], theta)
    k = k.repeat_interleave(g, dim=1)
    v = v.repeat_interleave(g, dim=1)
    logits = q @ k.transpose(-1, -2)
    off = s - t
    jidx = None
    if pos == POS_SHAW:
        jidx = torch.tensor([[min(max(ss - tt - off, -clip), clip) + clip for ss in range(s)]
                             for tt in range(t)])
        relk = prm["rel_k"][jidx]                       # [T, S, D]
        logits = logits + torch.einsum("bhtd,tsd->bhts", q, relk)
    logits = logits / math.sqrt(d)
    if pos == POS_ALIBI:
        m = torch.tensor(alibi_slopes(h), dtype=torch.float64)
        dist = torch.tensor([[abs(tt + off - ss) for ss in range(s)] for tt in range(t)],
                            dtype=torch.float64)
        logits = logits - m[:, None, None] * dist[None]
    if bias is not None:
        logits = logits + bias
    mask = torch.zeros(bsz, 1, t, s, dtype=torch.bool)
    if causal:
        mask |= torch.tensor([[ss > tt + off for ss in range(s)] for tt in range(t)])
    if key_lengths is not None:
        for bi, ln in enumerate(key_lengths):
            mask[bi, :, :, ln:] = True
    logits = logits.masked_fill(mask, float("-inf"))
    p = torch.softmax(logits, dim=-1)
    o = p @ v
    if pos == POS_SHAW:
        o = o + torch.einsum("bhts,tsd->bhtd", p, prm["rel_v"][jidx])
    o = o.transpose(1, 2).reshape(bsz, t, h * d) @ prm["out_proj.weight"].T
    if "out_proj.bias" in prm:
        o = o + prm["out_proj.bias"]
    return o, p


# ---------------------------------------------------------------------------
# MHA cases

# (label, B, T, S, E, H, Hkv, kdim, vdim, packed, no_bias, mode, causal, key_lengths,
#  float bias, pos, shaw_clip, pos0)
MHA_CASES = [
    ("self, packed, E 8 H 2", 2, 5, 5, 8, 2, 2, 0, 0, 1, 0, 0, 0, None, 0, 0, 0, 0),
    ("self, packed, causal, key_lengths [4,2,5]", 3, 5, 5, 12, 3, 3, 0, 0, 1, 0, 0, 1,
     [4, 2, 5], 0, 0, 0, 0),
    ("cross, packed, one memory, key_lengths [3,6], T 4 S 6", 2, 4, 6, 8, 4, 4, 0, 0, 1, 0, 1, 0,
     [3, 6], 0, 0, 0, 0),
    ("kdim 5 vdim 3, separate key and value, H 2", 2, 3, 4, 6, 2, 2, 5, 3, 1, 0, 2, 0, [4, 1],
     0, 0, 0, 0),
    ("self, separate weights (packed 0), no bias, float attn_mask", 2, 4, 4, 8, 2, 2, 0, 0, 0, 1,
     0, 0, None, 1, 0, 0, 0),
    ("self, H 1, D 7, causal", 1, 6, 6, 7, 1, 1, 0, 0, 1, 0, 0, 1, None, 0, 0, 0, 0),
    ("GQA: H 4, Hkv 2, self, causal", 2, 5, 5, 16, 4, 2, 0, 0, 1, 0, 0, 1, None, 0, 0, 0, 0),
    ("MQA: H 4, Hkv 1, cross, key_lengths [2,5]", 2, 3, 5, 8, 4, 1, 0, 0, 1, 0, 1, 0, [2, 5], 0,
     0, 0, 0),
    ("GQA: H 6 Hkv 2, kdim 5 vdim 3 separate key and value", 2, 3, 4, 12, 6, 2, 5, 3, 1, 0, 2, 0,
     None, 0, 0, 0, 0),
    ("RoPE, self, causal, H 2 D 4, pos0 3", 2, 5, 5, 8, 2, 2, 0, 0, 1, 0, 0, 1, None, 0,
     POS_ROPE, 0, 3),
    ("RoPE, GQA H 4 Hkv 2, key_lengths [5,3]", 2, 5, 5, 16, 4, 2, 0, 0, 1, 0, 0, 0, [5, 3], 0,
     POS_ROPE, 0, 0),
    ("ALiBi, self, causal, H 4", 2, 5, 5, 8, 4, 4, 0, 0, 1, 0, 0, 1, None, 0, POS_ALIBI, 0, 0),
    ("ALiBi, self, bidirectional, H 6 (not a power of two), key_lengths [4,6]", 2, 6, 6, 12, 6,
     6, 0, 0, 1, 0, 0, 0, [4, 6], 0, POS_ALIBI, 0, 0),
    ("Shaw k 2, self, causal, H 2", 2, 6, 6, 8, 2, 2, 0, 0, 1, 0, 0, 1, None, 0, POS_SHAW, 2, 0),
    ("Shaw k 3, self, GQA H 4 Hkv 2, key_lengths [5,3]", 2, 5, 5, 16, 4, 2, 0, 0, 1, 0, 0, 0,
     [5, 3], 0, POS_SHAW, 3, 0),
]


def mha_case(fx, label, b, t, s, e, h, hkv, kdim, vdim, packed, no_bias, mode, causal, klen,
             has_bias, pos, clip, pos0):
    k = fx.ncases
    p = "c%d." % k
    kd, vd = kdim or e, vdim or e
    use_torch = hkv == h and pos == POS_NONE
    fx.text(p + "label", label)
    fx.put(p + "cfg", np.array([e, h, hkv, kdim, vdim, packed, no_bias, mode, causal,
                                klen is not None, pos, clip], np.int32))
    fx.put(p + "oracle", np.array(1 if use_torch else 0, np.int32))
    d = e // h
    is_packed = packed and kd == e and vd == e
    # parameters, in attn_mha_init's order
    names = []
    if is_packed:
        names.append(("in_proj_weight", ((h + 2 * hkv) * d, e)))
    else:
        names += [("q_proj_weight", (h * d, e)), ("k_proj_weight", (hkv * d, kd)),
                  ("v_proj_weight", (hkv * d, vd))]
    if not no_bias:
        names.append(("in_proj_bias", ((h + 2 * hkv) * d,)))
    names.append(("out_proj.weight", (e, h * d)))
    if not no_bias:
        names.append(("out_proj.bias", (e,)))
    if pos == POS_SHAW:
        names += [("rel_k", (2 * clip + 1, d)), ("rel_v", (2 * clip + 1, d))]
    prm = {}
    for name, shape in names:
        bound = 1.0 / math.sqrt(shape[-1]) if len(shape) == 2 else 0.5
        v = fx.uniform(-bound, bound, *shape)
        fx.put(p + "param." + name, v)
        prm[name] = t64(v).requires_grad_(True)
    xq32 = fx.normal(b, t, e)
    fx.put(p + "xq", xq32)
    xq = t64(xq32).requires_grad_(True)
    leaves = [("param." + n, prm[n]) for n, _ in names] + [("xq", xq)]
    if mode == 0:
        xk = xv = xq
    else:
        xk32 = fx.normal(b, s, kd)
        fx.put(p + "xk", xk32)
        xk = t64(xk32).requires_grad_(True)
        leaves.append(("xk", xk))
        if mode == 1:
            xv = xk
        else:
            xv32 = fx.normal(b, s, vd)
            fx.put(p + "xv", xv32)
            xv = t64(xv32).requires_grad_(True)
            leaves.append(("xv", xv))
    if klen is not None:
        fx.put(p + "key_lengths", np.array(klen, np.int32))
    bias = None
    if has_bias:
        b32 = fx.normal(t, s)
        fx.put(p + "bias", b32)
        bias = t64(b32)
    theta = 10000.0
    if pos == POS_ROPE:
        theta = 500.0 if pos0 else 10000.0
        fx.put(p + "rope_theta", np.array(theta, np.float32))
        fx.put(p + "pos0", np.array(pos0, np.int32))
    cfg = {"E": e, "H": h, "Hkv": hkv, "pos": pos}
    out, pw = ref_mha(prm, cfg, xq, xk, xv, causal, klen, bias, pos0, theta, clip)
    if use_torch:
        mod = torch.nn.MultiheadAttention(e, h, bias=not no_bias, batch_first=True,
                                          kdim=kdim or None, vdim=vdim or None).double()
        assert mod._qkv_same_embed_dim == is_packed or not packed, label
        if not packed and mod._qkv_same_embed_dim:
            # torch packs whenever it can; split its packed weight for our layout
            w = torch.cat([prm["q_proj_weight"], prm["k_proj_weight"], prm["v_proj_weight"]])
            tp = {"in_proj_weight": w}
        else:
            tp = {n: prm[n] for n, _ in names}
        with torch.no_grad():
            for name, prm_t in mod.named_parameters():
                prm_t.copy_(tp[name] if name in tp else prm[name])
        am = None
        if causal:
            am = torch.triu(torch.ones(t, s, dtype=torch.bool), diagonal=1 + (s - t))
        if bias is not None:
            am = bias
        kpm = None
        if klen is not None:
            kpm = torch.tensor([[ss >= ln for ss in range(s)] for ln in klen])
        tout, tw = mod(xq.detach(), xk.detach(), xv.detach(), key_padding_mask=kpm,
                       need_weights=True, attn_mask=am, average_attn_weights=False)
        assert torch.allclose(tout, out.detach(), atol=1e-12, rtol=1e-10), label
        assert torch.allclose(tw, pw.detach(), atol=1e-12, rtol=1e-10), label
    r = fx.normal(b, t, e)
    fx.put(p + "R", r)
    loss = (out * t64(r)).sum()
    fx.put(p + "out", out.detach().numpy())
    fx.put(p + "weights", pw.detach().numpy())
    grads = torch.autograd.grad(loss, [v for _, v in leaves])
    for (name, _), g in zip(leaves, grads):
        fx.put(p + "grad." + name, g.numpy())
    fx.ncases += 1


# ---------------------------------------------------------------------------
# block cases

# (label, B, T, S, E, H, F, norm_first, gelu, decoder, causal, key_lengths, memory_lengths)
BLOCK_CASES = [
    ("encoder, post-LN, relu", 2, 5, 0, 8, 2, 16, 0, 0, 0, 0, None, None),
    ("encoder, pre-LN, gelu, causal, key_lengths [5,3]", 2, 5, 0, 8, 2, 12, 1, 1, 0, 1, [5, 3],
     None),
    ("encoder, post-LN, gelu, key_lengths [2,4,4]", 3, 4, 0, 12, 3, 8, 0, 1, 0, 0, [2, 4, 4],
     None),
    ("decoder, post-LN, relu, causal, memory_lengths [6,2]", 2, 4, 6, 8, 2, 16, 0, 0, 1, 1, None,
     [6, 2]),
    ("decoder, pre-LN, gelu, causal, both lengths", 2, 5, 3, 8, 4, 10, 1, 1, 1, 1, [5, 4],
     [3, 1]),
]


def block_case(fx, label, b, t, s, e, h, f, norm_first, gelu, decoder, causal, klen, mlen):
    k = fx.ncases
    p = "c%d." % k
    fx.text(p + "label", label)
    fx.put(p + "cfg", np.array([e, h, f, norm_first, gelu, decoder, causal, klen is not None,
                                mlen is not None], np.int32))
    cls = torch.nn.TransformerDecoderLayer if decoder else torch.nn.TransformerEncoderLayer
    mod = cls(e, h, dim_feedforward=f, dropout=0.0, activation="gelu" if gelu else "relu",
              layer_norm_eps=1e-5, batch_first=True, norm_first=bool(norm_first)).double()
    leaves = []
    with torch.no_grad():
        for name, prm in mod.named_parameters():
            if name.startswith("norm"):
                v = fx.uniform(0.5, 1.5, *prm.shape) if name.endswith("weight") else \
                    fx.uniform(-0.5, 0.5, *prm.shape)
            else:
                bound = 1.0 / math.sqrt(prm.shape[-1]) if prm.dim() == 2 else 0.3
                v = fx.uniform(-bound, bound, *prm.shape)
            fx.put(p + "param." + name, v)
            prm.copy_(t64(v))
            leaves.append(("param." + name, prm))
    x32 = fx.normal(b, t, e)
    fx.put(p + "x", x32)
    x = t64(x32).requires_grad_(True)
    leaves.append(("x", x))
    mem = None
    if decoder:
        m32 = fx.normal(b, s, e)
        fx.put(p + "memory", m32)
        mem = t64(m32).requires_grad_(True)
        leaves.append(("memory", mem))
    mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1) if causal else None
    kpm = None
    if klen is not None:
        fx.put(p + "key_lengths", np.array(klen, np.int32))
        kpm = torch.tensor([[ss >= ln for ss in range(t)] for ln in klen])
    mpm = None
    if mlen is not None:
        fx.put(p + "memory_lengths", np.array(mlen, np.int32))
        mpm = torch.tensor([[ss >= ln for ss in range(s)] for ln in mlen])
    mod.train()
    if decoder:
        out = mod(x, mem, tgt_mask=mask, tgt_key_padding_mask=kpm, memory_key_padding_mask=mpm)
    else:
        out = mod(x, src_mask=mask, src_key_padding_mask=kpm)
    r = fx.normal(b, t, e)
    fx.put(p + "R", r)
    loss = (out * t64(r)).sum()
    fx.put(p + "out", out.detach().numpy())
    grads = torch.autograd.grad(loss, [v for _, v in leaves])
    for (name, _), g in zip(leaves, grads):
        fx.put(p + "grad." + name, g.numpy())
    fx.ncases += 1


def main(argv):
    if len(argv) != 2:
        print("usage: make_transformer_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float64)
    os.makedirs(argv[1], exist_ok=True)
    for name, cases, fn in (("transformer_mha", MHA_CASES, mha_case),
                            ("transformer_block", BLOCK_CASES, block_case)):
        fx = Fixture(name)
        for case in cases:
            fn(fx, *case)
        data = fx.to_bytes()
        if len(data) > MAX_FILE:
            print("make_transformer_fixtures.py: %s is %d bytes, limit %d"
                  % (name, len(data), MAX_FILE), file=sys.stderr)
            return 1
        with open(os.path.join(argv[1], name + ".atfx"), "wb") as f:
            f.write(data)
        print("%-17s %2d cases %7d bytes" % (name, fx.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
