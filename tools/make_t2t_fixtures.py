#!/usr/bin/env python3
"""make_t2t_fixtures.py: references for the encoder-decoder Transformer
(include/attn/transformer_s2s.h, tests/test_t2t.c).

    /usr/bin/python3 tools/make_t2t_fixtures.py tests/fixtures

The reference model is written with torch.nn: nn.Embedding for both sides
(scaled by sqrt(E)), the sinusoidal table or a learned nn.Embedding of
positions, nn.TransformerEncoder / nn.TransformerDecoder of
nn.TransformerEncoderLayer / nn.TransformerDecoderLayer (batch_first,
dropout 0; pre-LN stacks end with their `norm`, post-LN stacks have none),
and an output nn.Linear (or the target embedding, tied). Its state_dict()
names are attn's, so each case's weights go to
tests/fixtures/t2t_c<k>.safetensors exactly as torch names them, and the C
test loads that file into the model by name (attn_safetensors_load_params).

tests/fixtures/t2t.atfx, per case k (names "c<k>."):
    label         text
    cfg           i32 [12]: Vs, Vt, E, H, enc_layers, dec_layers, F, norm_first,
                  gelu, pos (attn_pos_kind: 0 none, 1 sinusoidal, 2 learned),
                  max_len, tie_output
    label_smoothing  f32 scalar
    src [B, S], src_len [B], tgt_in [B, T], tgt_out [B, T]   i32 (the layout
                  of attn_s2s_batch_make: pad 0 after each source, bos 1, eos 2)
    logits        f32 [B, T, Vt]
    loss          f32 scalar: F.cross_entropy(ignore_index=pad, label_smoothing)
    grad.<name>   the gradient of the loss for every parameter (torch's names)

Oracle precision as make_fixtures.py: the weights and inputs are float32
values, everything runs in float64 on them, results are rounded once to
float32. Deterministic; needs torch (1.13 tested) and numpy, never at run
time.
"""

import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)
from make_optim_fixtures import safetensors_bytes  # noqa: E402

PAD, BOS, EOS = 0, 1, 2
POS_NONE, POS_SIN, POS_LEARNED = 0, 1, 2


def sinusoidal(T, E):
    """PE[p, 2i] = sin(p / 10000^(2i/E)), PE[p, 2i+1] = cos(the same)."""
    pe = torch.zeros(T, E, dtype=torch.float64)
    for p in range(T):
        for c in range(E):
            i2 = c - (c % 2)
            ang = p / (10000.0 ** (i2 / E))
            pe[p, c] = math.sin(ang) if c % 2 == 0 else math.cos(ang)
    return pe


class T2T(nn.Module):
    def __init__(self, vs, vt, e, h, le, ld, f, norm_first, gelu, pos, max_len, tie):
        super().__init__()
        self.e, self.pos, self.tie = e, pos, tie
        self.src_embedding = nn.Embedding(vs, e)
        self.tgt_embedding = nn.Embedding(vt, e)
        if pos == POS_LEARNED:
            self.src_pos_embedding = nn.Embedding(max_len, e)
            self.tgt_pos_embedding = nn.Embedding(max_len, e)
        act = "gelu" if gelu else "relu"
        el = nn.TransformerEncoderLayer(e, h, dim_feedforward=f, dropout=0.0, activation=act,
                                        layer_norm_eps=1e-5, batch_first=True,
                                        norm_first=bool(norm_first))
        dl = nn.TransformerDecoderLayer(e, h, dim_feedforward=f, dropout=0.0, activation=act,
                                        layer_norm_eps=1e-5, batch_first=True,
                                        norm_first=bool(norm_first))
        self.encoder = nn.TransformerEncoder(el, le, norm=nn.LayerNorm(e) if norm_first else None,
                                             enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(dl, ld, norm=nn.LayerNorm(e) if norm_first else None)
        if tie:
            self.output = nn.Module()
            self.output.bias = nn.Parameter(torch.zeros(vt))
        else:
            self.output = nn.Linear(e, vt)

    def embed(self, table, pos_table, ids):
        x = table(ids) * math.sqrt(self.e)
        T = ids.shape[1]
        if self.pos == POS_SIN:
            x = x + sinusoidal(T, self.e)
        elif self.pos == POS_LEARNED:
            x = x + pos_table(torch.arange(T))
        return x

    def forward(self, src, src_len, tgt_in):
        S, T = src.shape[1], tgt_in.shape[1]
        kpm = torch.arange(S)[None, :] >= src_len[:, None]          # True: padding
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        x = self.embed(self.src_embedding, getattr(self, "src_pos_embedding", None), src)
        mem = self.encoder(x, src_key_padding_mask=kpm)
        y = self.embed(self.tgt_embedding, getattr(self, "tgt_pos_embedding", None), tgt_in)
        y = self.decoder(y, mem, tgt_mask=causal, memory_key_padding_mask=kpm)
        if self.tie:
            return y @ self.tgt_embedding.weight.t() + self.output.bias
        return self.output(y)


def make_batch(rng, vs, vt, src_lens, tgt_lens):
    """The layout of attn_s2s_batch_make (s2s_data.h)."""
    B, S, T = len(src_lens), max(src_lens), max(tgt_lens) + 1
    src = np.zeros((B, S), np.int64)
    tin = np.zeros((B, T), np.int64)
    tout = np.zeros((B, T), np.int64)
    for b in range(B):
        src[b, :src_lens[b]] = rng.integers(3, vs, src_lens[b])
        y = rng.integers(3, vt, tgt_lens[b])
        tin[b, 0] = BOS
        tin[b, 1:tgt_lens[b] + 1] = y
        tout[b, :tgt_lens[b]] = y
        tout[b, tgt_lens[b]] = EOS
    return src, np.array(src_lens, np.int64), tin, tout


# label, Vs, Vt, E, H, enc_layers, dec_layers, F, norm_first, gelu, pos, max_len, tie,
# label_smoothing, src_lens, tgt_lens
CASES = [
    ("post-LN sinusoidal relu, 2+2 layers, padded sources", 13, 11, 16, 4, 2, 2, 32, 0, 0,
     POS_SIN, 0, 0, 0.0, [5, 3, 7], [4, 6, 2]),
    ("pre-LN learned positions gelu, tied output, label smoothing 0.1", 12, 10, 16, 2, 1, 2, 24,
     1, 1, POS_LEARNED, 12, 1, 0.1, [4, 6], [5, 3]),
    ("post-LN no positions, 1+1 layers, one head", 9, 9, 8, 1, 1, 1, 16, 0, 0, POS_NONE, 0, 0,
     0.0, [2, 1, 4, 3], [1, 3, 2, 0]),
]


def main(argv):
    if len(argv) != 2:
        print("usage: make_t2t_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    fx = Fixture("t2t")
    for (label, vs, vt, e, h, le, ld, f, nf, gelu, pos, max_len, tie, ls, sl, tl) in CASES:
        k = fx.ncases
        p = "c%d." % k
        fx.text(p + "label", label)
        fx.put(p + "cfg", np.array([vs, vt, e, h, le, ld, f, nf, gelu, pos, max_len, tie],
                                   np.int32))
        fx.put(p + "label_smoothing", np.float32(ls))
        model = T2T(vs, vt, e, h, le, ld, f, nf, gelu, pos, max_len, tie).double()
        weights = {}
        with torch.no_grad():
            for name, prm in model.named_parameters():
                if "norm" in name:
                    v = fx.uniform(0.5, 1.5, *prm.shape) if name.endswith("weight") else \
                        fx.uniform(-0.3, 0.3, *prm.shape)
                elif "embedding" in name:
                    v = fx.normal(*prm.shape) * np.float32(1.0 / math.sqrt(e))
                else:
                    bound = 1.0 / math.sqrt(prm.shape[-1]) if prm.dim() == 2 else 0.3
                    v = fx.uniform(-bound, bound, *prm.shape)
                v = np.asarray(v, np.float32)
                prm.copy_(torch.tensor(v.astype(np.float64)))
                weights[name] = torch.tensor(v)
        with open(os.path.join(outdir, "t2t_c%d.safetensors" % k), "wb") as fh:
            fh.write(safetensors_bytes(weights, {"source": "attn tools/make_t2t_fixtures.py",
                                                 "case": label}))
        src, src_len, tin, tout = make_batch(fx.rng, vs, vt, sl, tl)
        for name, a in (("src", src), ("src_len", src_len), ("tgt_in", tin), ("tgt_out", tout)):
            fx.put(p + name, a.astype(np.int32))
        model.train()  # dropout 0; the plain (not the fused inference) path
        logits = model(torch.tensor(src), torch.tensor(src_len), torch.tensor(tin))
        loss = F.cross_entropy(logits.reshape(-1, vt), torch.tensor(tout).reshape(-1),
                               ignore_index=PAD, label_smoothing=ls)
        fx.put(p + "logits", logits.detach().numpy())
        fx.put(p + "loss", np.float32(loss.item()))
        names = [n for n, _ in model.named_parameters()]
        grads = torch.autograd.grad(loss, [q for _, q in model.named_parameters()])
        for n, g in zip(names, grads):
            fx.put(p + "grad." + n, g.numpy())
        fx.ncases += 1
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        print("make_t2t_fixtures.py: t2t is %d bytes, limit %d" % (len(data), MAX_FILE),
              file=sys.stderr)
        return 1
    with open(os.path.join(outdir, "t2t.atfx"), "wb") as fh:
        fh.write(data)
    print("t2t               %2d cases %7d bytes" % (fx.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
