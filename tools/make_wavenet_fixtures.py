#!/usr/bin/env python3
"""make_wavenet_fixtures.py: a PyTorch reference of the WaveNet-style
language model of include/attn/wavenet.h.

    /usr/bin/python3 tools/make_wavenet_fixtures.py tests/fixtures

Writes wavenet.atfx (the ATFX format of tests/fixture.h; the writer is
make_fixtures.py's), read by tests/test_wavenet.c. One case per configuration:
  c<k>.cfg          i32 [7]: vocab, res, gate, skip, head channels, kernel,
                    layers_per_block * 1000 + n_blocks
  c<k>.ids          i32 [B, T];  c<k>.targets i32 [B, N] (the last N positions)
  c<k>.param.<name> every parameter under attn's names, in attn's order
  c<k>.logits       [B, T, V] (all positions)
  c<k>.loss         [] the mean cross-entropy of the last N positions
  c<k>.grad.<name>  d loss / d parameter, for every parameter

The module is written here from the equations of docs/wavenet.md with torch's
own layers (nn.Embedding, nn.Conv1d with dilation after F.pad on the left,
tanh, sigmoid, 1x1 Conv1d, relu), independently of the C code. Parameters are
drawn in float32, everything computed in float64 from those values, results
rounded once to float32. Deterministic; needs torch (1.13 tested) and numpy,
never at run time.
"""

import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)


class WaveNetLM(torch.nn.Module):
    def __init__(self, V, R, D, S, H, K, per_block, blocks):
        super().__init__()
        self.K = K
        self.embed = torch.nn.Embedding(V, R)
        self.layers = torch.nn.ModuleList()
        L = per_block * blocks
        self.dil = [2 ** (l % per_block) for l in range(L)]
        for l in range(L):
            m = torch.nn.Module()
            m.filter = torch.nn.Conv1d(R, D, K, dilation=self.dil[l])
            m.gate = torch.nn.Conv1d(R, D, K, dilation=self.dil[l])
            m.skip = torch.nn.Conv1d(D, S, 1)
            if l + 1 < L:
                m.residual = torch.nn.Conv1d(D, R, 1)
            self.layers.append(m)
        self.head1 = torch.nn.Conv1d(S, H, 1)
        self.head2 = torch.nn.Conv1d(H, V, 1)

    def attn_params(self):
        """(name, tensor) in attn_wavenet_new's order."""
        out = [("embed.weight", self.embed.weight)]
        for l, m in enumerate(self.layers):
            for what in ("filter", "gate", "skip", "residual"):
                if hasattr(m, what):
                    c = getattr(m, what)
                    out.append(("layers.%d.%s.weight" % (l, what), c.weight))
                    out.append(("layers.%d.%s.bias" % (l, what), c.bias))
        for what in ("head1", "head2"):
            c = getattr(self, what)
            out.append((what + ".weight", c.weight))
            out.append((what + ".bias", c.bias))
        return out

    def forward(self, ids):
        x = self.embed(ids).transpose(1, 2)  # [B, R, T]
        skip = 0
        for l, m in enumerate(self.layers):
            xp = F.pad(x, ((self.K - 1) * self.dil[l], 0))  # causal: left only
            h = torch.tanh(m.filter(xp)) * torch.sigmoid(m.gate(xp))
            skip = skip + m.skip(h)
            if hasattr(m, "residual"):
                x = x + m.residual(h)
        y = self.head2(F.relu(self.head1(F.relu(skip))))
        return y.transpose(1, 2)  # [B, T, V]


def case(fx, V, R, D, S, H, K, per_block, blocks, B, T, N):
    k = fx.ncases
    fx.ncases += 1
    model = WaveNetLM(V, R, D, S, H, K, per_block, blocks)
    rng = fx.rng
    with torch.no_grad():
        for name, p in model.attn_params():
            # float32 draws, large enough that every term matters
            p.copy_(torch.from_numpy(rng.normal(0.0, 0.5, p.shape).astype(np.float32)))
    ids = rng.integers(0, V, size=(B, T))
    targets = rng.integers(0, V, size=(B, N))
    logits = model(torch.from_numpy(ids))
    loss = F.cross_entropy(logits[:, T - N:, :].reshape(B * N, V),
                           torch.from_numpy(targets).reshape(-1))
    loss.backward()
    fx.put("c%d.cfg" % k, np.array([V, R, D, S, H, K, per_block * 1000 + blocks]))
    fx.put("c%d.ids" % k, ids)
    fx.put("c%d.targets" % k, targets)
    for name, p in model.attn_params():
        fx.put("c%d.param.%s" % (k, name), p.detach().numpy())
    fx.put("c%d.logits" % k, logits.detach().numpy())
    fx.put("c%d.loss" % k, np.array(loss.item()))
    for name, p in model.attn_params():
        fx.put("c%d.grad.%s" % (k, name), p.grad.numpy())


def main(argv):
    if len(argv) != 2:
        print("usage: make_wavenet_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    os.makedirs(argv[1], exist_ok=True)
    fx = Fixture("wavenet")
    # kernel 2, dilations 1 2 4, the whole sequence scored; ragged channel counts
    case(fx, V=11, R=5, D=6, S=7, H=9, K=2, per_block=3, blocks=1, B=2, T=13, N=13)
    # kernel 3, dilations 1 2 | 1 2 (two blocks), only the last 5 positions scored
    case(fx, V=7, R=4, D=3, S=5, H=6, K=3, per_block=2, blocks=2, B=3, T=17, N=5)
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        print("make_wavenet_fixtures.py: %d bytes, limit %d" % (len(data), MAX_FILE),
              file=sys.stderr)
        return 1
    with open(os.path.join(argv[1], "wavenet.atfx"), "wb") as f:
        f.write(data)
    print("%-17s %2d cases %7d bytes" % ("wavenet", fx.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
