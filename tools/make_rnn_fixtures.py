#!/usr/bin/env python3
"""make_rnn_fixtures.py: PyTorch references for the recurrent layers
(tests/test_rnn.c, include/attn/rnn.h).

    /usr/bin/python3 tools/make_rnn_fixtures.py tests/fixtures

Writes tests/fixtures/rnn_gru.atfx (torch.nn.GRU) and rnn_lstm.atfx
(torch.nn.LSTM) in the ATFX format (tests/fixture.h; the writer is
make_fixtures.py's). Per case k, names starting with "c<k>.":

    label            text
    cfg              i32 [6]: input_size, hidden_size, num_layers,
                     bidirectional, no_bias, has_lengths
    x                f32 [B, T, In] (batch first)
    lengths          i32 [B] (only when has_lengths)
    h0, c0           f32 [L*D, B, H] initial states (absent: zeros)
    param.<name>     every parameter under torch's own state_dict name
                     (weight_ih_l0, ..., bias_hh_l1_reverse)
    R, R2, R3        f32 weights of the loss
                     sum(out * R) + sum(h_n * R2) [+ sum(c_n * R3)]
    out              torch's output [B, T, D*H] (zeros at padded steps)
    h_n, c_n         torch's final states [L*D, B, H]
    grad.param.<n>   the loss's gradient for every parameter
    grad.x, grad.h0, grad.c0

plus "op" (text: the file's name), "n_cases".

Variable lengths go through torch.nn.utils.rnn.pack_padded_sequence(...,
batch_first=True, enforce_sorted=False) and pad_packed_sequence(...,
total_length=T): what attn_rnn_forward's `lengths` must reproduce.

Oracle precision as make_fixtures.py: inputs and weights are drawn in
float32, the module runs in float64 on those values, results are rounded
once to float32. Weights are uniform in [-1/sqrt(H), 1/sqrt(H)] like torch's
own initialisation, so the states have realistic magnitudes. Deterministic
(fixed seeds); needs torch (1.13 tested) and numpy, never at run time.
"""

import os
import sys

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)

# (label, B, T, In, H, L, bidirectional, no_bias, lengths or None, with h0)
CASES = [
    ("2 layers, bidirectional, lengths [6,3,1,5], h0 given", 4, 6, 5, 4, 2, 1, 0, [6, 3, 1, 5], 1),
    ("1 layer, unidirectional, no bias, full length, zero h0", 3, 4, 3, 5, 1, 0, 1, None, 0),
    ("2 layers, unidirectional, lengths [2,5,5], h0 given", 3, 5, 2, 3, 2, 0, 0, [2, 5, 5], 1),
    ("1 layer, bidirectional, lengths all T, zero h0", 2, 3, 4, 6, 1, 1, 0, [3, 3], 0),
]


def run_case(fx, lstm, label, b, t, n_in, hs, nl, bi, no_bias, lengths, with_h0):
    k = fx.ncases
    p = "c%d." % k
    nd = 2 if bi else 1
    fx.text(p + "label", label)
    fx.put(p + "cfg", np.array([n_in, hs, nl, bi, no_bias, lengths is not None], np.int32))
    mod_cls = torch.nn.LSTM if lstm else torch.nn.GRU
    mod = mod_cls(n_in, hs, num_layers=nl, bias=not no_bias, batch_first=True,
                  bidirectional=bool(bi)).double()
    bound = 1.0 / np.sqrt(hs)
    params = {}
    with torch.no_grad():
        for name, prm in mod.named_parameters():
            v = fx.uniform(-bound, bound, *prm.shape)
            fx.put(p + "param." + name, v)
            prm.copy_(torch.tensor(v.astype(np.float64)))
            params[name] = prm
    x32 = fx.normal(b, t, n_in)
    fx.put(p + "x", x32)
    x = torch.tensor(x32.astype(np.float64), requires_grad=True)
    leaves = dict(("param." + n, v) for n, v in params.items())
    leaves["x"] = x
    state = None
    if with_h0:
        h032 = fx.uniform(-1, 1, nl * nd, b, hs)
        fx.put(p + "h0", h032)
        h0 = torch.tensor(h032.astype(np.float64), requires_grad=True)
        leaves["h0"] = h0
        state = h0
        if lstm:
            c032 = fx.normal(nl * nd, b, hs)
            fx.put(p + "c0", c032)
            c0 = torch.tensor(c032.astype(np.float64), requires_grad=True)
            leaves["c0"] = c0
            state = (h0, c0)
    if lengths is not None:
        fx.put(p + "lengths", np.array(lengths, np.int32))
        packed = pack_padded_sequence(x, torch.tensor(lengths, dtype=torch.int64),
                                      batch_first=True, enforce_sorted=False)
        out_p, hid = mod(packed, state)
        out, _ = pad_packed_sequence(out_p, batch_first=True, total_length=t)
    else:
        out, hid = mod(x, state)
    h_n, c_n = hid if lstm else (hid, None)
    r1 = fx.normal(*out.shape)
    r2 = fx.normal(*h_n.shape)
    loss = (out * torch.tensor(r1.astype(np.float64))).sum() + \
        (h_n * torch.tensor(r2.astype(np.float64))).sum()
    fx.put(p + "R", r1)
    fx.put(p + "R2", r2)
    if lstm:
        r3 = fx.normal(*c_n.shape)
        fx.put(p + "R3", r3)
        loss = loss + (c_n * torch.tensor(r3.astype(np.float64))).sum()
    fx.put(p + "out", out.detach().numpy())
    fx.put(p + "h_n", h_n.detach().numpy())
    if lstm:
        fx.put(p + "c_n", c_n.detach().numpy())
    grads = torch.autograd.grad(loss, list(leaves.values()))
    for (name, _), g in zip(leaves.items(), grads):
        fx.put(p + "grad." + name, g.numpy())
    fx.ncases += 1


def main(argv):
    if len(argv) != 2:
        print("usage: make_rnn_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float64)
    os.makedirs(argv[1], exist_ok=True)
    for lstm in (False, True):
        name = "rnn_lstm" if lstm else "rnn_gru"
        fx = Fixture(name)
        for case in CASES:
            run_case(fx, lstm, *case)
        data = fx.to_bytes()
        if len(data) > MAX_FILE:
            print("make_rnn_fixtures.py: %s is %d bytes, limit %d" % (name, len(data), MAX_FILE),
                  file=sys.stderr)
            return 1
        with open(os.path.join(argv[1], name + ".atfx"), "wb") as f:
            f.write(data)
        print("%-9s %d cases %7d bytes" % (name, fx.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
