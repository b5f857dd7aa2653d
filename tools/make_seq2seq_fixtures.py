#!/usr/bin/env python3
"""make_seq2seq_fixtures.py: PyTorch references for the encoder-decoder of
include/attn/seq2seq.h (tests/test_seq2seq.c).

    /usr/bin/python3 tools/make_seq2seq_fixtures.py tests/fixtures

Writes tests/fixtures/seq2seq_models.atfx in the ATFX format (tests/fixture.h;
the writer is make_fixtures.py's). Per case k, names starting with "c<k>.":

    label            text
    cfg              i32 [15]: attention (the attn_s2s_attention value), cell
                     (0 GRU, 1 LSTM), Vs, Vt, E, H, enc_layers, dec_layers,
                     bidirectional, attn_dim, max_src_len, local_window,
                     pad_id, bos_id, eos_id
    label_smoothing  f32 [1]
    src              i32 [B, S] (pad_id after each length)
    src_len          i32 [B]
    tgt_in, tgt_out  i32 [B, T] (bos + target, target + eos, pad_id after)
    param.<name>     every parameter under the header's names, in
                     named_parameters() order (the order attn_seq2seq_new adds
                     them)
    loss             f32 scalar: mean cross-entropy over the non-pad targets
    weights          f32 [B, T, S]: the attention weights (not for "none")
    grad.param.<n>   the loss's gradient of every parameter

plus "op" (text) and "n_cases".

The model is an independent PyTorch implementation of the header's
definitions: torch.nn.GRU / LSTM with pack_padded_sequence for the encoder,
GRUCell / LSTMCell sharing the decoder layer's parameters for a decoder that
runs one step at a time on the concatenated input [emb(y_{t-1}); x] (attn
splits that product and hoists the embedding part: this checks the split),
the attention module of make_attention_fixtures.py (its own formulas, not
attention.c's), per-step outputs and torch's cross_entropy with ignore_index
and label_smoothing.

Oracle precision as make_fixtures.py: inputs and weights are drawn in float32,
the model runs in float64 on those values, results are rounded once to
float32. Deterministic (fixed seeds); needs torch (1.13 tested) and numpy,
never at run time.
"""

import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)
from make_attention_fixtures import Attention  # noqa: E402  (the attention oracle)

KINDS = ["none", "bahdanau", "dot", "general", "concat", "location", "cosine", "local-m",
         "local-p", "location-sensitive", "dv3"]
# the kinds whose attention reads s_{t-1} before the cell (Bahdanau's wiring)
FIRST = ("bahdanau", "location-sensitive", "dv3")
# the score and align of each kind's attention module (seq2seq.c's mapping)
ATT = {"bahdanau": ("additive", "global"), "concat": ("additive", "global"),
       "dot": ("dot", "global"), "general": ("general", "global"),
       "location": ("location", "global"), "cosine": ("cosine", "global"),
       "local-m": ("general", "local-m"), "local-p": ("general", "local-p")}
PAD, BOS, EOS = 0, 1, 2
COSINE_BETA = 10.0  # rnn_attention.h's default when the config's beta is 0


class LocationSensitive(nn.Module):
    """Chorowski et al. 2015 in Tacotron 2's form, from the equations of
    rnn_attention.h (ATTN_SCORE_LOCATION_SENSITIVE), one decoder step at a time:
    e_i(s) = v^T tanh(W_q q + W_h h_s + U f_i(s) + b), f_i = F * [a_{i-1}; cum]."""

    def __init__(self, dq, dh, a, k, r):
        super().__init__()
        self.W_q = nn.Linear(dq, a, bias=False)
        self.W_h = nn.Linear(dh, a, bias=False)
        self.v = nn.Linear(a, 1, bias=False)
        self.F = nn.Conv1d(2, k, r, padding=(r - 1) // 2, bias=False)
        self.U = nn.Linear(k, a)

    def forward(self, q, mem, src_len, prev, cum):
        # q [B, Dq], mem [B, S, Dh], prev/cum [B, S] -> c [B, Dh], a [B, S]
        s = mem.shape[1]
        f = self.F(torch.stack([prev, cum], 1))                     # [B, K, S]
        loc = self.U(f.transpose(1, 2))                             # [B, S, A]
        e = self.v(torch.tanh(self.W_q(q)[:, None, :] + self.W_h(mem) + loc))[..., 0]
        valid = torch.arange(s)[None, :] < src_len[:, None]
        e = e.masked_fill(~valid, float("-inf"))
        a = torch.softmax(e, -1)
        a = torch.where(valid, a, torch.zeros_like(a))
        return torch.einsum("bs,bsd->bd", a, mem), a


def sinusoid(pos, d, rate):
    """P(p; r) of rnn_attention.h: [len(pos), d], sin at even, cos at odd."""
    i = torch.arange(d)
    ang = rate * pos[:, None].double() / torch.pow(10000.0, (2 * (i // 2)).double() / d)[None, :]
    return torch.where(i[None, :] % 2 == 0, torch.sin(ang), torch.cos(ang))


class DV3Attention(nn.Module):
    """Deep Voice 3's attention block (Ping et al. 2017) as rnn_attention.h
    defines it (ATTN_SCORE_DV3): positional encodings at rate 1 (queries) and
    key_rate (keys), projections with biases, dot-product softmax, values
    averaged and scaled by sqrt(S_b), output projection. No dropout here."""

    def __init__(self, dq, dh, a, key_rate):
        super().__init__()
        self.W_q = nn.Linear(dq, a)
        self.W_k = nn.Linear(dh, a)
        self.W_v = nn.Linear(dh, a)
        self.W_o = nn.Linear(a, dh)
        self.key_rate, self.dq, self.dh = key_rate, dq, dh

    def forward(self, q, mem, src_len, t, win=None, width=3):
        """win: None, or [B] window starts (the inference window [p, p + width))."""
        s = mem.shape[1]
        qp = self.W_q(q + sinusoid(torch.tensor([t]), self.dq, 1.0))            # [B, A]
        k = self.W_k(mem + sinusoid(torch.arange(s), self.dh, self.key_rate)[None])
        e = torch.einsum("ba,bsa->bs", qp, k)
        valid = torch.arange(s)[None, :] < src_len[:, None]
        if win is not None:
            pos = torch.arange(s)[None, :]
            valid = valid & (pos >= win[:, None]) & (pos < win[:, None] + width)
        a = torch.softmax(e.masked_fill(~valid, float("-inf")), -1)
        a = torch.where(valid, a, torch.zeros_like(a))  # a row without keys: zeros
        c = torch.einsum("bs,bsa->ba", a, self.W_v(mem)) * torch.sqrt(src_len.double())[:, None]
        return self.W_o(c), a


class Seq2Seq(nn.Module):
    """include/attn/seq2seq.h in PyTorch (modules created in the header's
    parameter order, so named_parameters() lists them as attn adds them)."""

    def __init__(self, kind, cell, vs, vt, e, h, le, ld, bi, a, smax, d, extra=None):
        super().__init__()
        self.kind, self.lstm, self.bi, self.h = kind, cell == "lstm", bi, h
        self.luong = kind not in ("none",) + FIRST
        he = (2 if bi else 1) * h
        rnn = nn.LSTM if self.lstm else nn.GRU
        self.encoder = nn.Module()
        self.encoder.embedding = nn.Embedding(vs, e)
        self.encoder.rnn = rnn(e, h, le, batch_first=True, bidirectional=bool(bi))
        self.bridge = nn.Linear(he, h)
        self.decoder = nn.Module()
        self.decoder.embedding = nn.Embedding(vt, e)
        x = h if self.luong else he
        self.decoder.rnn = rnn(e + x, h, ld)  # its parameters; the loop below runs cells
        if kind == "location-sensitive":
            self.decoder.attn = LocationSensitive(h, he, a, int(extra[0]), int(extra[1]))
        elif kind == "dv3":
            self.decoder.attn = DV3Attention(h, he, a, extra[2])
        elif kind != "none":
            score, align = ATT[kind]
            self.decoder.attn = Attention(score, align, h, he, a, smax, d, COSINE_BETA, 0)
        if self.luong:
            self.decoder.combine = nn.Linear(he + h, h, bias=False)
        self.decoder.out = nn.Linear(h if self.luong else h + he, vt)
        # one cell per decoder layer sharing that layer's parameters (a plain
        # list: not submodules, so named_parameters() is unchanged)
        self.cells = []
        cell_t = nn.LSTMCell if self.lstm else nn.GRUCell
        for l in range(ld):
            c = cell_t(e + x if l == 0 else h, h)
            for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                setattr(c, w, getattr(self.decoder.rnn, "%s_l%d" % (w, l)))
            self.cells.append(c)

    def forward(self, src, src_len, tgt_in):
        b, s = src.shape
        t_len = tgt_in.shape[1]
        x = self.encoder.embedding(src)
        packed = pack_padded_sequence(x, src_len, batch_first=True, enforce_sorted=False)
        out, hn = self.encoder.rnn(packed)
        mem, _ = pad_packed_sequence(out, batch_first=True, total_length=s)   # [B, S, He]
        if self.lstm:
            hn = hn[0]
        last = torch.cat([hn[-2], hn[-1]], -1) if self.bi else hn[-1]          # [B, He]
        s0 = torch.tanh(self.bridge(last))
        emb = self.decoder.embedding(tgt_in)
        hs = [s0] * len(self.cells)
        cs = [torch.zeros_like(s0)] * len(self.cells)
        feed = torch.zeros_like(s0)
        outs, ws, ps = [], [], []
        prev = torch.zeros(b, s)
        cum = torch.zeros(b, s)
        for t in range(t_len):
            if self.kind == "location-sensitive":
                c_t, a = self.decoder.attn(hs[-1], mem, src_len, prev, cum)
                prev, cum = a, cum + a
                ws.append(a)
                inp = torch.cat([emb[:, t], c_t], -1)
            elif self.kind == "dv3":
                c_t, a = self.decoder.attn(hs[-1], mem, src_len, t)
                ws.append(a)
                inp = torch.cat([emb[:, t], c_t], -1)
            elif self.kind == "bahdanau":
                c_t, a, _ = self.decoder.attn(hs[-1][:, None, :], mem, src_len, t)
                c_t = c_t[:, 0]
                ws.append(a[:, 0])
                inp = torch.cat([emb[:, t], c_t], -1)
            elif self.luong:
                inp = torch.cat([emb[:, t], feed], -1)
            else:
                c_t = last
                inp = torch.cat([emb[:, t], last], -1)
            for l, cell in enumerate(self.cells):
                if self.lstm:
                    hs[l], cs[l] = cell(inp, (hs[l], cs[l]))
                else:
                    hs[l] = cell(inp, hs[l])
                inp = hs[l]
            st = hs[-1]
            if self.luong:
                c_t, a, p = self.decoder.attn(st[:, None, :], mem, src_len, t)
                c_t = c_t[:, 0]
                ws.append(a[:, 0])
                if p is not None:
                    ps.append(p[:, 0])
                feed = torch.tanh(self.decoder.combine(torch.cat([c_t, st], -1)))
                outs.append(feed)
            else:
                outs.append(torch.cat([st, c_t], -1))
        logits = self.decoder.out(torch.stack(outs, 1))                          # [B, T, Vt]
        weights = torch.stack(ws, 1) if ws else None
        positions = torch.stack(ps, 1) if ps else None
        return logits, weights, positions


# (label, kind, cell, B, S, T, Vs, Vt, E, H, enc_layers, dec_layers, bi, A, window,
#  src lengths, target lengths, label_smoothing)
CASES = [
    ("bahdanau gru, bidirectional", "bahdanau", "gru", 3, 6, 5, 9, 10, 4, 5, 1, 1, 1, 4, 0,
     [6, 3, 5], [4, 2, 3], 0.0),
    ("general lstm (luong, input feeding), 2+2 layers", "general", "lstm", 3, 6, 5, 9, 10, 4, 5,
     2, 2, 1, 0, 0, [4, 6, 2], [3, 4, 2], 0.0),
    ("local-p gru, window 1, A 4", "local-p", "gru", 3, 7, 5, 9, 10, 4, 5, 1, 1, 1, 4, 1,
     [7, 4, 6], [4, 3, 2], 0.0),
    ("none gru, bidirectional", "none", "gru", 3, 6, 5, 9, 10, 4, 5, 1, 1, 1, 0, 0, [5, 6, 2],
     [2, 4, 3], 0.0),
    ("dot gru, unidirectional, 2 decoder layers", "dot", "gru", 3, 6, 4, 9, 10, 4, 5, 1, 2, 0,
     0, 0, [6, 2, 4], [3, 1, 2], 0.0),
    ("concat lstm, bidirectional, A 3", "concat", "lstm", 2, 5, 4, 8, 9, 3, 4, 1, 1, 1, 3, 0,
     [5, 3], [3, 2], 0.0),
    ("location gru, bidirectional, S_max S + 1", "location", "gru", 3, 6, 4, 9, 10, 4, 5, 1, 1,
     1, 0, 0, [6, 4, 3], [3, 3, 1], 0.0),
    ("cosine lstm, unidirectional", "cosine", "lstm", 2, 5, 4, 8, 9, 3, 4, 1, 1, 0, 0, 0,
     [5, 2], [3, 2], 0.0),
    ("local-m gru, window 1", "local-m", "gru", 3, 7, 6, 9, 10, 4, 5, 1, 1, 1, 0, 1,
     [7, 3, 5], [5, 2, 3], 0.0),
    ("bahdanau lstm, 2 decoder layers, label smoothing 0.1", "bahdanau", "lstm", 3, 6, 5, 9, 10,
     4, 5, 1, 2, 1, 4, 0, [3, 6, 4], [4, 3, 2], 0.1),
]


# the new kinds' extra configuration (loc_filters, loc_kernel, dv3_key_rate,
# dv3_window), written as "c<k>.extra" f32 [4] after the cases above
CASES_EXTRA = [
    ("location-sensitive gru, bidirectional, K 3, R 3", "location-sensitive", "gru", 3, 6, 5, 9,
     10, 4, 5, 1, 1, 1, 4, 0, [6, 3, 5], [4, 2, 3], 0.0, (3, 3, 0.0, 0)),
    ("location-sensitive lstm, 2 decoder layers, K 2, R 5, padded", "location-sensitive", "lstm",
     3, 7, 5, 9, 10, 4, 5, 1, 2, 1, 3, 0, [4, 7, 2], [4, 3, 2], 0.0, (2, 5, 0.0, 0)),
    ("dv3 gru, bidirectional, key rate 0.6", "dv3", "gru", 3, 6, 5, 9, 10, 4, 5, 1, 1, 1, 4, 0,
     [6, 3, 5], [4, 2, 3], 0.0, (0, 0, 0.6, 3)),
    ("dv3 lstm, unidirectional (Dq = Dh), key rate 1.5, label smoothing 0.1", "dv3", "lstm", 2, 5,
     4, 8, 9, 3, 4, 1, 1, 0, 3, 0, [5, 2], [3, 2], 0.1, (0, 0, 1.5, 3)),
]


def t64(a):
    return torch.tensor(np.asarray(a).astype(np.float64))


def run_case(fx, label, kind, cell, b, s, t, vs, vt, e, h, le, ld, bi, a, window, src_lens,
             tgt_lens, ls, extra=None):
    k = fx.ncases
    p = "c%d." % k
    smax = s + 1 if kind == "location" else 0
    fx.text(p + "label", label)
    fx.put(p + "cfg", np.array([KINDS.index(kind), cell == "lstm", vs, vt, e, h, le, ld, bi, a,
                                smax, window, PAD, BOS, EOS], np.int32))
    fx.put(p + "label_smoothing", np.array([ls], np.float32))
    if extra is not None:
        fx.put(p + "extra", np.array(extra, np.float32))
    model = Seq2Seq(kind, cell, vs, vt, e, h, le, ld, bi, a if a else h, smax, window, extra)
    with torch.no_grad():
        for name, prm in model.named_parameters():
            if name.endswith("embedding.weight"):
                v = fx.normal(*prm.shape)
            elif name == "decoder.attn.beta":
                v = np.array([COSINE_BETA], np.float32)
            else:
                # torch.nn.Linear / RNN ranges: 1/sqrt(fan_in) (the hidden size for RNNs)
                fan = h if ".rnn." in name else (prm.shape[1] if prm.dim() == 2 else None)
                if prm.dim() == 3:  # the convolution's filters [K, 2, R]
                    fan = prm.shape[1] * prm.shape[2]
                if fan is None:  # a Linear's bias: its weight's fan-in
                    fan = dict(model.named_parameters())[name[:-4] + "weight"].shape[1]
                bound = 1.0 / np.sqrt(fan)
                if name == "decoder.attn.v_p.weight":
                    bound *= 3.0  # spread the predicted positions over the sentence
                v = fx.uniform(-bound, bound, *prm.shape)
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
    fx.put(p + "src", src)
    fx.put(p + "src_len", np.array(src_lens, np.int32))
    fx.put(p + "tgt_in", tgt_in)
    fx.put(p + "tgt_out", tgt_out)
    logits, w, pos = model(torch.tensor(src, dtype=torch.int64),
                           torch.tensor(src_lens, dtype=torch.int64),
                           torch.tensor(tgt_in, dtype=torch.int64))
    if pos is not None and kind == "local-p":  # far from the windows' jumps
        frac = (pos.detach().numpy() + 0.5) % 1.0
        assert np.all(np.minimum(frac, 1.0 - frac) > 1e-3), (label, pos)
    loss = F.cross_entropy(logits.reshape(-1, vt), torch.tensor(tgt_out.reshape(-1),
                                                                dtype=torch.int64),
                           ignore_index=PAD, label_smoothing=ls)
    fx.put(p + "loss", np.array(loss.item(), np.float32))
    if w is not None:
        fx.put(p + "weights", w.detach().numpy())
    names = [n for n, _ in model.named_parameters()]
    grads = torch.autograd.grad(loss, [q for _, q in model.named_parameters()])
    for name, g in zip(names, grads):
        fx.put(p + "grad.param." + name, g.numpy())
    fx.ncases += 1


def main(argv):
    if len(argv) != 2:
        print("usage: make_seq2seq_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float64)
    os.makedirs(argv[1], exist_ok=True)
    name = "seq2seq_models"
    fx = Fixture(name)
    for case in CASES + CASES_EXTRA:
        run_case(fx, *case)
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        print("make_seq2seq_fixtures.py: %s is %d bytes, limit %d" % (name, len(data), MAX_FILE),
              file=sys.stderr)
        return 1
    with open(os.path.join(argv[1], name + ".atfx"), "wb") as f:
        f.write(data)
    print("%-17s %2d cases %7d bytes" % (name, fx.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
