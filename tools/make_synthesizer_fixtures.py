#!/usr/bin/env python3
"""make_synthesizer_fixtures.py: PyTorch references for include/attn/synthesizer.h
(Tay et al. 2020) and include/attn/linformer.h (Wang et al. 2020).

    /usr/bin/python3 tools/make_synthesizer_fixtures.py tests/fixtures

Writes synthesizer.atfx (the ATFX format of tests/fixture.h; the writer is
make_fixtures.py's), read by tests/test_synthesizer.c. Per case k:
  c<k>.cfg      i32 [10]: block (0 Synthesizer, 1 Linformer), d_model,
                n_heads, max_len, components (Synthesizer) or sharing
                (Linformer), hidden, factor_a, rank or k, fixed_random, causal
  c<k>.x        f32 [B, T, E];  c<k>.grad_out [B, T, E]
  c<k>.param.<name>  the block's parameters under attn's names, in attn's order
  c<k>.out, c<k>.grad.x, c<k>.grad.<name> (trained parameters only)
  c<k>.weights  the attention weights [B, H, T, S]

The modules below are written from the papers' equations, with explicit
[T, T] logit matrices, a softmax and a product with the values (no
scaled_dot_product_attention, which torch 1.13 lacks), independently of the
C code, which routes everything through the attention op:
  Synthesizer: dense B = W2 relu(W1 x + b1) + b2 per token (H l logits),
  random R [H, l, l], factorized dense a_t[j mod a] * b_t[j div a],
  factorized random R1 R2^T, dot-product Q K^T / sqrt(D); a mixture weights
  the components by softmax(mix); the top-left T x T block is used.
  Linformer: K'_h = E_h[:, :T] K_h, V'_h = F_h[:, :T] V_h, shared per head,
  across heads or between keys and values.
Inputs drawn in float32, everything computed in float64 from those values,
results rounded once to float32. Deterministic; needs torch (1.13 tested)
and numpy, never at run time.
"""

import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)

DENSE, RANDOM, FDENSE, FRANDOM, DOT = 1, 2, 4, 8, 16


def f32(rng, shape, lo=-1.0, hi=1.0):
    return torch.tensor(rng.uniform(lo, hi, size=shape).astype(np.float32), dtype=torch.float64)


class Synthesizer(torch.nn.Module):
    def __init__(self, E, H, l, comps, hidden, a, rank, fixed, causal):
        super().__init__()
        self.E, self.H, self.l, self.comps, self.causal = E, H, l, comps, causal
        self.a, self.b = a, l // a
        P = torch.nn.Parameter
        self.params = []  # (attn name, tensor), attn's order

        def add(name, *shape, trained=True):
            t = P(torch.zeros(*shape), requires_grad=trained)
            self.params.append((name, t))
            return t

        if comps & DENSE:
            self.w1, self.b1 = add("dense.0.weight", hidden, E), add("dense.0.bias", hidden)
            self.w2, self.b2 = add("dense.1.weight", H * l, hidden), add("dense.1.bias", H * l)
        if comps & RANDOM:
            self.r = add("random.weight", H, l, l, trained=not fixed)
        if comps & FDENSE:
            self.wa, self.ba = add("fdense.a.weight", H * self.a, E), add("fdense.a.bias", H * self.a)
            self.wb, self.bb = add("fdense.b.weight", H * self.b, E), add("fdense.b.bias", H * self.b)
        if comps & FRANDOM:
            self.r1 = add("frandom.r1", H, l, rank, trained=not fixed)
            self.r2 = add("frandom.r2", H, l, rank, trained=not fixed)
        if comps & DOT:
            self.wq, self.bq = add("q.weight", E, E), add("q.bias", E)
            self.wk, self.bk = add("k.weight", E, E), add("k.bias", E)
        self.wv, self.bv = add("v.weight", E, E), add("v.bias", E)
        self.wo, self.bo = add("out.weight", E, E), add("out.bias", E)
        n = bin(comps).count("1")
        self.mix = add("mix", n) if n > 1 else None

    def forward(self, x):
        Bn, T, E = x.shape
        H, D, l = self.H, E // self.H, self.l
        lin = torch.nn.functional.linear
        parts = []  # (component bit, logits broadcastable to [B, H, T, T])
        for bit in (DENSE, RANDOM, FDENSE, FRANDOM, DOT):
            if not self.comps & bit:
                continue
            if bit == DENSE:
                g = lin(torch.relu(lin(x, self.w1, self.b1)), self.w2, self.b2)
                s = g.view(Bn, T, H, l)[..., :T].permute(0, 2, 1, 3)
            elif bit == RANDOM:
                s = self.r[:, :T, :T].unsqueeze(0)
            elif bit == FDENSE:
                fa = lin(x, self.wa, self.ba).view(Bn, T, H, self.a)
                fb = lin(x, self.wb, self.bb).view(Bn, T, H, self.b)
                j = torch.arange(l)
                ha = fa[..., j % self.a]   # A tiled b times
                hb = fb[..., j // self.a]  # each entry of B repeated a times
                s = (ha * hb)[..., :T].permute(0, 2, 1, 3)
            elif bit == FRANDOM:
                s = (self.r1[:, :T] @ self.r2[:, :T].transpose(1, 2)).unsqueeze(0)
            else:
                q = lin(x, self.wq, self.bq).view(Bn, T, H, D).transpose(1, 2)
                k = lin(x, self.wk, self.bk).view(Bn, T, H, D).transpose(1, 2)
                s = q @ k.transpose(2, 3) / math.sqrt(D)
            parts.append(s)
        if self.mix is not None:
            alpha = torch.softmax(self.mix, 0)
            S = sum(alpha[i] * s for i, s in enumerate(parts))
        else:
            S = parts[0]
        S = S.expand(Bn, H, T, T)
        if self.causal:
            S = S.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        w = torch.softmax(S, -1)
        self.weights = w
        v = lin(x, self.wv, self.bv).view(Bn, T, H, D).transpose(1, 2)
        y = (w @ v).transpose(1, 2).reshape(Bn, T, E)
        return lin(y, self.wo, self.bo)


class Linformer(torch.nn.Module):
    def __init__(self, E, H, n, k, sharing):
        super().__init__()
        self.E, self.H, self.sharing = E, H, sharing
        P = torch.nn.Parameter
        self.params = []

        def add(name, *shape):
            t = P(torch.zeros(*shape))
            self.params.append((name, t))
            return t

        self.wq, self.bq = add("q.weight", E, E), add("q.bias", E)
        self.wk, self.bk = add("k.weight", E, E), add("k.bias", E)
        self.wv, self.bv = add("v.weight", E, E), add("v.bias", E)
        self.wo, self.bo = add("out.weight", E, E), add("out.bias", E)
        G = H if sharing == 0 else 1
        self.pk = add("proj_k", G, k, n)
        self.pv = self.pk if sharing == 2 else add("proj_v", G, k, n)

    def forward(self, x):
        Bn, T, E = x.shape
        H, D = self.H, E // self.H
        lin = torch.nn.functional.linear
        q = lin(x, self.wq, self.bq).view(Bn, T, H, D).transpose(1, 2)
        k = lin(x, self.wk, self.bk).view(Bn, T, H, D).transpose(1, 2)
        v = lin(x, self.wv, self.bv).view(Bn, T, H, D).transpose(1, 2)
        E_ = self.pk[:, :, :T].unsqueeze(0)  # [1, G, k, T], G broadcasts over heads
        F_ = self.pv[:, :, :T].unsqueeze(0)
        kp, vp = E_ @ k, F_ @ v                # [B, H, k, D]
        w = torch.softmax(q @ kp.transpose(2, 3) / math.sqrt(D), -1)
        self.weights = w
        y = (w @ vp).transpose(1, 2).reshape(Bn, T, E)
        return lin(y, self.wo, self.bo)


def add_case(fx, k, cfg, module, x):
    rng = fx.rng
    with torch.no_grad():
        for name, p in module.params:
            if name == "mix":
                p.copy_(f32(rng, tuple(p.shape), -0.8, 0.8))
            else:
                p.copy_(f32(rng, tuple(p.shape), -0.6, 0.6))
    xx = x.clone().requires_grad_(True)
    y = module(xx)
    go = f32(rng, tuple(y.shape))
    (y * go).sum().backward()
    fx.put("c%d.cfg" % k, np.array(cfg, dtype=np.int32))
    fx.put("c%d.x" % k, x.numpy())
    fx.put("c%d.grad_out" % k, go.numpy())
    for name, p in module.params:
        fx.put("c%d.param.%s" % (k, name), p.detach().numpy())
    fx.put("c%d.out" % k, y.detach().numpy())
    fx.put("c%d.grad.x" % k, xx.grad.numpy())
    for name, p in module.params:
        if p.requires_grad:
            fx.put("c%d.grad.%s" % (k, name), p.grad.numpy())
    fx.put("c%d.weights" % k, module.weights.detach().numpy())
    fx.ncases += 1


def gen(fx):
    torch.manual_seed(0)
    rng = fx.rng
    k = 0
    # Synthesizer: (E, H, l, components, hidden, a, rank, fixed, causal, B, T)
    synth = [
        (8, 2, 7, DENSE, 6, 1, 8, 0, 1, 2, 5),
        (8, 2, 6, RANDOM, 8, 2, 8, 0, 0, 2, 6),
        (8, 2, 6, FDENSE, 8, 2, 8, 0, 0, 2, 5),
        (8, 2, 6, FRANDOM, 8, 2, 3, 0, 1, 2, 4),
        (8, 2, 6, DENSE | RANDOM | DOT, 5, 2, 8, 0, 1, 2, 6),
        (12, 3, 6, DENSE | RANDOM | FDENSE | FRANDOM | DOT, 7, 3, 2, 1, 0, 2, 5),
    ]
    for E, H, l, comps, hidden, a, rank, fixed, causal, B, T in synth:
        m = Synthesizer(E, H, l, comps, hidden, a, rank, fixed, causal)
        add_case(fx, k, [0, E, H, l, comps, hidden, a, rank, fixed, causal], m, f32(rng, (B, T, E)))
        k += 1
    # Linformer: (E, H, n, k, sharing, B, T)
    for E, H, n, kk, sharing, B, T in [(8, 2, 9, 4, 0, 2, 7), (8, 2, 8, 3, 1, 2, 8),
                                       (12, 3, 8, 4, 2, 2, 5)]:
        m = Linformer(E, H, n, kk, sharing)
        add_case(fx, k, [1, E, H, n, sharing, 0, 0, kk, 0, 0], m, f32(rng, (B, T, E)))
        k += 1


def main(argv):
    if len(argv) != 2:
        print("usage: make_synthesizer_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float64)
    os.makedirs(argv[1], exist_ok=True)
    fx = Fixture("synthesizer")
    gen(fx)
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        print("make_synthesizer_fixtures.py: %d bytes, limit %d" % (len(data), MAX_FILE),
              file=sys.stderr)
        return 1
    with open(os.path.join(argv[1], "synthesizer.atfx"), "wb") as f:
        f.write(data)
    print("%-17s %2d cases %7d bytes" % ("synthesizer", fx.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
