#!/usr/bin/env python3
"""make_vision_attention_fixtures.py: PyTorch references for
include/attn/vision_attention.h.

    /usr/bin/python3 tools/make_vision_attention_fixtures.py tests/fixtures

Writes vision_attention.atfx (the ATFX format of tests/fixture.h; the writer
is make_fixtures.py's), read by tests/test_vision_attention.c. Per case k:
  c<k>.cfg      i32 [5]: form (0 SAGAN paper, 1 SAGAN code, 2 Simple SA),
                channels, bias, sym, 0
  c<k>.gamma0   f32 [1]: the block's gamma
  c<k>.x        f32 [B, C, H, W];  c<k>.grad_out [B, C, H, W]
  c<k>.param.<name>  the block's parameters under attn's names, in order
  c<k>.out, c<k>.grad.x, c<k>.grad.<name>
  c<k>.weights  (SAGAN) the attention map [B, 1, N, Nk]

The modules are written from their sources, independently of the C code:
  - case 0 is seed 001's SelfAttention code literally (Conv1d query/key/value
    with bias, beta = softmax(f^T g, dim=1), o = gamma h beta + x), its
    weights exported under attn's names with the transposition the header
    states: attn's query is the seed's `key` conv, attn's key the seed's
    `query` conv;
  - case 1 is the BigGAN code's attention (theta at full resolution, phi
    and g max-pooled 2x2, softmax over the pooled keys, o conv back to C,
    no biases);
  - cases 2 and 3 are seed 001's SimpleSelfAttention (ks = 1), without and
    with the symmetric weight of the original repository.
Inputs drawn in float32, everything computed in float64 from those values,
results rounded once to float32. Deterministic; needs torch (1.13 tested)
and numpy, never at run time.
"""

import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)


class SeedSelfAttention(torch.nn.Module):
    """Seed 001's SAGAN code (Conv1d layers, notation of the paper)."""

    def __init__(self, n):
        super().__init__()
        self.query = torch.nn.Conv1d(n, n // 8, 1)
        self.key = torch.nn.Conv1d(n, n // 8, 1)
        self.value = torch.nn.Conv1d(n, n, 1)
        self.gamma = torch.nn.Parameter(torch.tensor([0.0]))

    def forward(self, x):
        size = x.size()
        x = x.view(*size[:2], -1)
        f, g, h = self.query(x), self.key(x), self.value(x)
        beta = F.softmax(torch.bmm(f.permute(0, 2, 1).contiguous(), g), dim=1)
        o = self.gamma * torch.bmm(h, beta) + x
        self.beta = beta
        return o.view(*size).contiguous()


class BigGANAttention(torch.nn.Module):
    """The attention block of the BigGAN code (no biases, pooled keys/values)."""

    def __init__(self, ch):
        super().__init__()
        self.theta = torch.nn.Conv2d(ch, ch // 8, 1, bias=False)
        self.phi = torch.nn.Conv2d(ch, ch // 8, 1, bias=False)
        self.g = torch.nn.Conv2d(ch, ch // 2, 1, bias=False)
        self.o = torch.nn.Conv2d(ch // 2, ch, 1, bias=False)
        self.gamma = torch.nn.Parameter(torch.tensor([0.0]))

    def forward(self, x):
        b, ch, h, w = x.shape
        theta = self.theta(x)
        phi = F.max_pool2d(self.phi(x), [2, 2])
        g = F.max_pool2d(self.g(x), [2, 2])
        theta = theta.view(-1, ch // 8, h * w)
        phi = phi.view(-1, ch // 8, h * w // 4)
        g = g.view(-1, ch // 2, h * w // 4)
        beta = F.softmax(torch.bmm(theta.transpose(1, 2), phi), -1)
        o = self.o(torch.bmm(g, beta.transpose(1, 2)).view(-1, ch // 2, h, w))
        self.beta = beta
        return self.gamma * o + x


class SeedSimpleSelfAttention(torch.nn.Module):
    """Seed 001's SimpleSelfAttention (ks = 1), with the repository's sym option."""

    def __init__(self, n_in, sym):
        super().__init__()
        self.conv = torch.nn.Conv1d(n_in, n_in, 1, padding=0, bias=False)
        self.gamma = torch.nn.Parameter(torch.tensor([0.0]))
        self.sym = sym
        self.n_in = n_in

    def forward(self, x):
        size = x.size()
        x = x.view(*size[:2], -1)
        if self.sym:
            c = self.conv.weight.view(self.n_in, self.n_in)
            c = (c + c.t()) / 2
            convx = F.conv1d(x, c.view(self.n_in, self.n_in, 1))
        else:
            convx = self.conv(x)
        xxT = torch.bmm(x, x.permute(0, 2, 1).contiguous())
        o = torch.bmm(xxT, convx)
        o = self.gamma * o + x
        return o.view(*size).contiguous()


def f32(rng, shape, lo=-1.0, hi=1.0):
    return torch.tensor(rng.uniform(lo, hi, size=shape).astype(np.float32), dtype=torch.float64)


def add_case(fx, k, form, module, names, x, gamma, bias, sym):
    """names: (attn name, torch parameter, transform to attn's layout)."""
    rng = fx.rng
    C = x.shape[1]
    with torch.no_grad():
        module.gamma.fill_(gamma)
        for _, p, _ in names:
            if p is not module.gamma:
                p.copy_(f32(rng, tuple(p.shape), -0.6, 0.6))
    module = module.double()
    xx = x.clone().requires_grad_(True)
    y = module(xx)
    go = f32(rng, tuple(y.shape))
    (y * go).sum().backward()
    fx.put("c%d.cfg" % k, np.array([form, C, bias, sym, 0], dtype=np.int32))
    fx.put("c%d.gamma0" % k, np.array([gamma], dtype=np.float32))
    fx.put("c%d.x" % k, x.numpy())
    fx.put("c%d.grad_out" % k, go.numpy())
    for name, p, tr in names:
        fx.put("c%d.param.%s" % (k, name), tr(p.detach()).numpy())
    fx.put("c%d.out" % k, y.detach().numpy())
    fx.put("c%d.grad.x" % k, xx.grad.numpy())
    for name, p, tr in names:
        fx.put("c%d.grad.%s" % (k, name), tr(p.grad).numpy())
    if form != 2:
        beta = module.beta.detach()
        # seed code: beta[i, j] over keys i for query j -> attn's [B, 1, j, i]
        w = beta.transpose(1, 2) if form == 0 else beta
        fx.put("c%d.weights" % k, w.unsqueeze(1).numpy())
    fx.ncases += 1


def gen(fx):
    torch.manual_seed(0)
    rng = fx.rng
    ident = lambda t: t  # noqa: E731
    conv2d = lambda t: t.unsqueeze(-1) if t.dim() == 3 else t  # noqa: E731  Conv1d -> [o, i, 1, 1]
    # case 0: the seed's SAGAN code; attn query = seed key, attn key = seed query
    m = SeedSelfAttention(16)
    names = [("query.weight", m.key.weight, conv2d), ("query.bias", m.key.bias, ident),
             ("key.weight", m.query.weight, conv2d), ("key.bias", m.query.bias, ident),
             ("value.weight", m.value.weight, conv2d), ("value.bias", m.value.bias, ident),
             ("gamma", m.gamma, ident)]
    add_case(fx, 0, 0, m, names, f32(rng, (2, 16, 5, 3)), 0.7, 1, 0)
    # case 1: the BigGAN code's block
    m = BigGANAttention(16)
    names = [("query.weight", m.theta.weight, ident), ("key.weight", m.phi.weight, ident),
             ("value.weight", m.g.weight, ident), ("out.weight", m.o.weight, ident),
             ("gamma", m.gamma, ident)]
    add_case(fx, 1, 1, m, names, f32(rng, (2, 16, 6, 4)), 0.7, 0, 0)
    # cases 2, 3: Simple Self-Attention
    for k, sym in ((2, 0), (3, 1)):
        m = SeedSimpleSelfAttention(6, sym)
        names = [("conv.weight", m.conv.weight, ident), ("gamma", m.gamma, ident)]
        add_case(fx, k, 2, m, names, f32(rng, (2, 6, 4, 5)), 0.7, 0, sym)


def main(argv):
    if len(argv) != 2:
        print("usage: make_vision_attention_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float64)
    os.makedirs(argv[1], exist_ok=True)
    fx = Fixture("vision_attention")
    gen(fx)
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        print("make_vision_attention_fixtures.py: %d bytes, limit %d" % (len(data), MAX_FILE),
              file=sys.stderr)
        return 1
    with open(os.path.join(argv[1], "vision_attention.atfx"), "wb") as f:
        f.write(data)
    print("%-17s %2d cases %7d bytes" % ("vision_attention", fx.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
