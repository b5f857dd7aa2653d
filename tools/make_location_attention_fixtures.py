#!/usr/bin/env python3
"""make_location_attention_fixtures.py: PyTorch references for the two stepped
attention scores of include/attn/rnn_attention.h, location-sensitive attention
(Chorowski et al. 2015, Tacotron 2's form) and Deep Voice 3's attention block
(Ping et al. 2017), run for a few decoder steps (tests/test_location_attention.c).

    /usr/bin/python3 tools/make_location_attention_fixtures.py tests/fixtures

Writes tests/fixtures/location_attention.atfx (ATFX, tests/fixture.h). Per
case k, names starting with "c<k>.":

    label          text
    cfg            i32 [7]: score (6 location-sensitive, 7 dv3), Dq, Dh, A,
                   K (filters), R (kernel width), W (dv3 window width, 0: none)
    key_rate       f32 [1] (dv3)
    q              f32 [T, B, Dq]: the query of each step
    h              f32 [B, S, Dh]: the encoder states; len i32 [B]
    win            i32 [T, B] (dv3 with W > 0): each step's window start
    gc, ga         f32 [T, B, Dh] and [T, B, S]: the loss is
                   sum_t sum(c_t * gc_t) + sum(a_t * ga_t)
    param.<name>   the module's parameters in rnn_attention.h's order
    c, a           f32 [T, B, Dh] and [T, B, S]: contexts and weights
    grad.q, grad.h, grad.param.<name>: the loss's gradients

The modules are LocationSensitive and DV3Attention of make_seq2seq_fixtures.py,
written from the header's equations (not from rnn_attention.c). Precision as
make_fixtures.py: values drawn in float32, computed in float64, rounded once.
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402
from make_seq2seq_fixtures import DV3Attention, LocationSensitive  # noqa: E402

# (label, score, T, B, S, Dq, Dh, A, K, R, W, key_rate, lengths)
CASES = [
    ("location-sensitive, 4 steps, K 3, R 3", 6, 4, 2, 5, 3, 4, 3, 3, 3, 0, 0.0, [5, 3]),
    ("location-sensitive, 3 steps, K 2, R 5 (wider than a sentence), lengths 6/2/0", 6, 3, 3, 6,
     4, 3, 5, 2, 5, 0, 0.0, [6, 2, 0]),
    ("dv3, 3 steps, key rate 0.7, no window", 7, 3, 2, 5, 3, 4, 3, 0, 0, 0, 0.7, [5, 3]),
    ("dv3, 4 steps, Dq = Dh, key rate 1.3, window 2", 7, 4, 3, 6, 4, 4, 3, 0, 0, 2, 1.3,
     [6, 4, 1]),
]


def t64(a):
    return torch.tensor(np.asarray(a).astype(np.float64))


def run_case(fx, label, score, T, B, S, dq, dh, A, K, R, W, key_rate, lens):
    p = "c%d." % fx.ncases
    fx.text(p + "label", label)
    fx.put(p + "cfg", np.array([score, dq, dh, A, K, R, W], np.int32))
    fx.put(p + "key_rate", np.array([key_rate], np.float32))
    if score == 6:
        mod = LocationSensitive(dq, dh, A, K, R)
    else:
        mod = DV3Attention(dq, dh, A, key_rate)
    with torch.no_grad():
        for name, prm in mod.named_parameters():
            fan = prm.shape[1] * prm.shape[2] if prm.dim() == 3 else (
                prm.shape[1] if prm.dim() == 2 else
                dict(mod.named_parameters())[name[:-4] + "weight"].shape[1])
            bound = 1.0 / np.sqrt(fan)
            v = fx.uniform(-bound, bound, *prm.shape)
            fx.put(p + "param." + name, v)
            prm.copy_(t64(v))
    q = t64(fx.normal(T, B, dq)).requires_grad_(True)
    h = t64(fx.normal(B, S, dh)).requires_grad_(True)
    fx.put(p + "q", q.detach().numpy().astype(np.float32))
    fx.put(p + "h", h.detach().numpy().astype(np.float32))
    ln = torch.tensor(lens, dtype=torch.int64)
    fx.put(p + "len", np.array(lens, np.int32))
    win = None
    if score == 7 and W > 0:
        win = np.zeros((T, B), np.int32)
        for t in range(1, T):  # a monotone walk, clipped to [0, S]
            win[t] = np.minimum(win[t - 1] + fx.ints(0, 2, B), S)
        fx.put(p + "win", win)
    gc = fx.normal(T, B, dh)
    ga = fx.normal(T, B, S)
    fx.put(p + "gc", gc)
    fx.put(p + "ga", ga)
    cs, as_ = [], []
    prev = torch.zeros(B, S)
    cum = torch.zeros(B, S)
    for t in range(T):
        if score == 6:
            c, a = mod(q[t], h, ln, prev, cum)
            prev, cum = a, cum + a
        else:
            c, a = mod(q[t], h, ln, t, None if win is None else torch.tensor(win[t],
                                                                               dtype=torch.int64),
                       W)
        cs.append(c)
        as_.append(a)
    c = torch.stack(cs)
    a = torch.stack(as_)
    loss = (c * t64(gc)).sum() + (a * t64(ga)).sum()
    fx.put(p + "c", c.detach().numpy())
    fx.put(p + "a", a.detach().numpy())
    names = [n for n, _ in mod.named_parameters()]
    grads = torch.autograd.grad(loss, [q, h] + [w for _, w in mod.named_parameters()])
    fx.put(p + "grad.q", grads[0].numpy())
    fx.put(p + "grad.h", grads[1].numpy())
    for name, g in zip(names, grads[2:]):
        fx.put(p + "grad.param." + name, g.numpy())
    fx.ncases += 1


def main(argv):
    if len(argv) != 2:
        print("usage: make_location_attention_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float64)
    os.makedirs(argv[1], exist_ok=True)
    name = "location_attention"
    fx = Fixture(name)
    for case in CASES:
        run_case(fx, *case)
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        print("%s: %d bytes, limit %d" % (name, len(data), MAX_FILE), file=sys.stderr)
        return 1
    with open(os.path.join(argv[1], name + ".atfx"), "wb") as f:
        f.write(data)
    print("%-19s %2d cases %7d bytes" % (name, fx.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
