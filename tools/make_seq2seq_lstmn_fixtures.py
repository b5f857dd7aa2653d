#!/usr/bin/env python3
"""make_seq2seq_lstmn_fixtures.py: PyTorch references for the LSTMN
encoder-decoder (include/attn/seq2seq.h, fusion shallow and deep;
docs/lstmn.md, "The encoder-decoder"), for tests/test_seq2seq_lstmn.c.

    /usr/bin/python3 tools/make_seq2seq_lstmn_fixtures.py tests/fixtures

Writes tests/fixtures/seq2seq_lstmn.atfx (ATFX, the writer of
make_fixtures.py). Per case k, names starting with "c<k>.":

    label            text
    cfg              i32 [8]: fusion (1 shallow, 2 deep), Vs, Vt, E, H, A,
                     dropout 0 (always), label smoothing x 1000
    src              i32 [B, S] (pad after each length), src_len i32 [B]
    tgt_in, tgt_out  i32 [B, T]
    param.<name>     every parameter in the order attn_seq2seq_new adds them
    loss             f32 scalar
    weights          f32 [B, T, S] Bahdanau's attention weights
    grad.param.<n>   the loss's gradient of every parameter

The model is written here from the equations of docs/lstmn.md as a plain
step loop over explicit tapes (lists of states; every step reads all of
them), not from seq2seq_lstmn.c's composition of graph ops; the Bahdanau
attention is make_attention_fixtures.py's oracle. Inputs and weights are
float32 draws, the model runs in float64, results rounded once to float32.
"""

import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402
from make_attention_fixtures import Attention  # noqa: E402

PAD, BOS, EOS = 0, 1, 2


def param(mod, name, *shape):
    p = nn.Parameter(torch.zeros(*shape))
    mod.register_parameter(name, p)
    return p


class LstmnS2S(nn.Module):
    def __init__(self, deep, vs, vt, e, h, a):
        super().__init__()
        self.deep, self.h, self.a = deep, h, a
        self.encoder = nn.Module()
        self.encoder.embedding = nn.Embedding(vs, e)
        self.bridge = nn.Linear(h, h)
        self.decoder = nn.Module()
        self.decoder.embedding = nn.Embedding(vt, e)
        el = self.encoder.lstmn = nn.Module()
        param(el, "weight_in", 4 * h + a, e)
        param(el, "bias_in", 4 * h + a)
        param(el, "weight_hh", 4 * h, h)
        param(el, "weight_mem", a, h)
        param(el, "v", a)
        p = 4 * h + a + (a + h if deep else 0)
        dl = self.decoder.lstmn = nn.Module()
        param(dl, "weight_in", p, e + h)
        param(dl, "bias_in", p)
        param(dl, "weight_hh", 4 * h, h)
        param(dl, "weight_mem", a, h)
        param(dl, "v", a)
        param(dl, "weight_sum", a, h)
        if deep:
            fu = self.decoder.fusion = nn.Module()
            param(fu, "weight_enc", a, h)
            param(fu, "weight_sum", a, h)
            param(fu, "u", a)
            param(fu, "weight_r", h, h)
        self.decoder.attn = Attention("additive", "global", h, h, a, 0, 0, 0.0, 0)
        self.decoder.out = nn.Linear(2 * h, vt)

    def cell(self, w, z, hs, cs, hsum, enc=None, gsum=None, enc_mask=None):
        """One LSTMN step from the tape (lists hs, cs of [B, H]), written
        slot by slot: returns h, c, h~, gamma~."""
        H, A = self.h, self.a
        q = z[:, 4 * H:4 * H + A]
        if hasattr(w, "weight_sum"):
            q = q + hsum @ w.weight_sum.T
        scores = torch.stack([torch.tanh(hi @ w.weight_mem.T + q) @ w.v for hi in hs], 1)
        s = torch.softmax(scores, 1)                                    # [B, n]
        ht = sum(s[:, i:i + 1] * hs[i] for i in range(len(hs)))
        ct = sum(s[:, i:i + 1] * cs[i] for i in range(len(cs)))
        g = z[:, :4 * H] + ht @ w.weight_hh.T
        i, f, gg, o = g.split(H, 1)
        i, f, gg, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(gg), torch.sigmoid(o)
        c = f * ct + i * gg
        gt = None
        if enc is not None:
            fu = self.decoder.fusion
            eh, ec = enc                                                # [B, S, H] each
            q2 = z[:, 4 * H + A:4 * H + 2 * A]
            if gsum is not None:
                q2 = q2 + gsum @ fu.weight_sum.T
            b2 = torch.tanh(eh @ fu.weight_enc.T + q2[:, None, :]) @ fu.u   # [B, S]
            p = torch.softmax(b2.masked_fill(enc_mask, float("-inf")), 1)
            gt = torch.einsum("bs,bsh->bh", p, eh)
            at = torch.einsum("bs,bsh->bh", p, ec)
            r = torch.sigmoid(z[:, 4 * H + 2 * A:] + gt @ fu.weight_r.T)
            c = c + r * at
        h = o * torch.tanh(c)
        return h, c, ht, gt

    def forward(self, src, src_len, tgt_in):
        b, s = src.shape
        H = self.h
        el = self.encoder.lstmn
        z = self.encoder.embedding(src) @ el.weight_in.T + el.bias_in
        hs, cs = [torch.zeros(b, H)], [torch.zeros(b, H)]
        for t in range(s):
            h, c, _, _ = self.cell(el, z[:, t], hs, cs, None)
            hs.append(h)
            cs.append(c)
        eh, ec = torch.stack(hs[1:], 1), torch.stack(cs[1:], 1)         # [B, S, H]
        last = eh[torch.arange(b), src_len - 1]
        s0 = torch.tanh(self.bridge(last))
        mask = torch.arange(s)[None, :] >= src_len[:, None]
        dl = self.decoder.lstmn
        emb = self.decoder.embedding(tgt_in)
        hs, cs, hsum, gsum, prev = [s0], [torch.zeros(b, H)], s0, None, s0
        outs, ws = [], []
        for t in range(tgt_in.shape[1]):
            ctx, a, _ = self.decoder.attn(prev[:, None, :], eh, src_len, t)
            ctx = ctx[:, 0]
            ws.append(a[:, 0])
            z = torch.cat([emb[:, t], ctx], 1) @ dl.weight_in.T + dl.bias_in
            h, c, hsum, g = self.cell(dl, z, hs, cs, hsum, (eh, ec) if self.deep else None, gsum,
                                      mask)
            gsum = g
            hs.append(h)
            cs.append(c)
            prev = h
            outs.append(torch.cat([h, ctx], 1))
        logits = self.decoder.out(torch.stack(outs, 1))
        return logits, torch.stack(ws, 1)


# (label, fusion, B, S, T, Vs, Vt, E, H, A, src lengths, target lengths, label smoothing)
CASES = [
    ("shallow, padded sources and targets", 1, 3, 5, 4, 9, 10, 4, 5, 3, [5, 2, 4], [3, 1, 2],
     0.0),
    ("deep, padded sources and targets", 2, 3, 5, 4, 9, 10, 4, 5, 3, [3, 5, 1], [2, 3, 1], 0.0),
    ("deep, A 6 > H, label smoothing 0.1", 2, 2, 4, 5, 8, 9, 3, 4, 6, [4, 2], [4, 2], 0.1),
    ("shallow, one row, S 1", 1, 1, 1, 3, 7, 7, 3, 4, 4, [1], [2], 0.0),
]


def t64(a):
    return torch.tensor(np.asarray(a).astype(np.float64))


def run_case(fx, label, fusion, b, s, t, vs, vt, e, h, a, src_lens, tgt_lens, ls):
    p = "c%d." % fx.ncases
    fx.text(p + "label", label)
    fx.put(p + "cfg", np.array([fusion, vs, vt, e, h, a, 0, round(ls * 1000)], np.int32))
    model = LstmnS2S(fusion == 2, vs, vt, e, h, a)
    with torch.no_grad():
        for name, prm in model.named_parameters():
            if name.endswith("embedding.weight"):
                v = fx.normal(*prm.shape)
            else:
                fan = prm.shape[1] if prm.dim() == 2 else None
                if fan is None:  # biases and vectors: their layer's fan-in
                    fan = {"encoder.lstmn.bias_in": e, "decoder.lstmn.bias_in": e + h,
                           "bridge.bias": h, "decoder.out.bias": 2 * h}.get(name, a)
                v = fx.uniform(-1.0 / np.sqrt(fan), 1.0 / np.sqrt(fan), *prm.shape)
                if name.endswith("weight_mem") or name.endswith("weight_enc"):
                    v = v * np.float32(3.0)  # peakier attention than at initialisation
            fx.put(p + "param." + name, v)
            prm.copy_(t64(v))
    src = np.full((b, s), PAD, np.int32)
    tgt_in = np.full((b, t), PAD, np.int32)
    tgt_out = np.full((b, t), PAD, np.int32)
    for i in range(b):
        src[i, :src_lens[i]] = fx.ints(3, vs, src_lens[i])
        y = fx.ints(3, vt, tgt_lens[i])
        tgt_in[i, 0] = BOS
        tgt_in[i, 1:tgt_lens[i] + 1] = y
        tgt_out[i, :tgt_lens[i]] = y
        tgt_out[i, tgt_lens[i]] = EOS
    for n, v in (("src", src), ("src_len", np.array(src_lens, np.int32)), ("tgt_in", tgt_in),
                 ("tgt_out", tgt_out)):
        fx.put(p + n, v)
    logits, w = model(torch.tensor(src, dtype=torch.int64),
                      torch.tensor(src_lens, dtype=torch.int64),
                      torch.tensor(tgt_in, dtype=torch.int64))
    loss = F.cross_entropy(logits.reshape(-1, vt),
                           torch.tensor(tgt_out.reshape(-1), dtype=torch.int64),
                           ignore_index=PAD, label_smoothing=ls)
    fx.put(p + "loss", np.array(loss.item(), np.float32))
    fx.put(p + "weights", w.detach().numpy())
    names = [n for n, _ in model.named_parameters()]
    grads = torch.autograd.grad(loss, [q for _, q in model.named_parameters()])
    for name, g in zip(names, grads):
        fx.put(p + "grad.param." + name, g.numpy())
    fx.ncases += 1


def main(argv):
    if len(argv) != 2:
        print("usage: make_seq2seq_lstmn_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float64)
    os.makedirs(argv[1], exist_ok=True)
    name = "seq2seq_lstmn"
    fx = Fixture(name)
    for case in CASES:
        run_case(fx, *case)
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        print("%s: %d bytes, limit %d" % (name, len(data), MAX_FILE), file=sys.stderr)
        return 1
    with open(os.path.join(argv[1], name + ".atfx"), "wb") as f:
        f.write(data)
    print("%-17s %2d cases %7d bytes" % (name, fx.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
