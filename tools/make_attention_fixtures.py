#!/usr/bin/env python3
"""make_attention_fixtures.py: PyTorch references for the attention modules of
include/attn/rnn_attention.h (tests/test_attention.c).

    /usr/bin/python3 tools/make_attention_fixtures.py tests/fixtures

Writes tests/fixtures/attention_global.atfx (every score function with global
attention) and attention_local.atfx (Luong's local-m and local-p over several
score functions) in the ATFX format (tests/fixture.h; the writer is
make_fixtures.py's). Per case k, names starting with "c<k>.":

    label            text
    cfg              i32 [10]: score, align (the attn_score / attn_align
                     values), Dq, Dh, A, S_max, D, step, beta_fixed, has_lengths
    beta             f32 [1]: the configured beta (cosine only)
    q                f32 [B, T, Dq]
    h                f32 [B, S, Dh]
    lengths          i32 [B] (only when has_lengths)
    param.<name>     every parameter under the module's state_dict name
                     (W_a.weight, W_q.weight, W_h.weight, v.weight, beta,
                     W_p.weight, v_p.weight), in that order
    R, R2            f32 weights of the loss sum(context * R) + sum(weights * R2)
    context          [B, T, Dh]
    weights          [B, T, S]
    positions        [B, T] (local aligns only)
    grad.q, grad.h   the loss's gradients
    grad.param.<n>   for every parameter that requires a gradient (a fixed
                     beta has none)

plus "op" (text: the file's name) and "n_cases".

The module below is an independent PyTorch implementation of the header's
definitions (einsum and masked_fill where attn composes bmm and an additive
mask), not a transcription of attention.c. Local-p's window centre
floor(p + 1/2) is computed from p's value (torch.floor has a zero gradient),
so the gradient reaches p only through the Gaussian, as in attn.

Oracle precision as make_fixtures.py: inputs and weights are drawn in float32,
the module runs in float64 on those values, results are rounded once to
float32. Deterministic (fixed seeds); needs torch (1.13 tested) and numpy,
never at run time.
"""

import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)

SCORES = {"dot": 0, "scaled_dot": 1, "general": 2, "additive": 3, "cosine": 4, "location": 5}
ALIGNS = {"global": 0, "local-m": 1, "local-p": 2}
COS_EPS = 1e-8


class Attention(nn.Module):
    """The attention module of include/attn/rnn_attention.h, in PyTorch."""

    def __init__(self, score, align, dq, dh, a, smax, d, beta, beta_fixed):
        super().__init__()
        self.score, self.align, self.dh, self.d = score, align, dh, d
        if score == "general":
            self.W_a = nn.Linear(dh, dq, bias=False)      # [Dq, Dh]: q^T W_a h
        if score == "location":
            self.W_a = nn.Linear(dq, smax, bias=False)    # [S_max, Dq]
        if score == "additive":
            self.W_q = nn.Linear(dq, a, bias=False)
            self.W_h = nn.Linear(dh, a, bias=False)
            self.v = nn.Linear(a, 1, bias=False)
        if score == "cosine":
            self.beta = nn.Parameter(torch.tensor([beta]), requires_grad=not beta_fixed)
        if align == "local-p":
            self.W_p = nn.Linear(dq, a, bias=False)
            self.v_p = nn.Linear(a, 1, bias=False)

    def scores(self, q, h):
        s = h.shape[1]
        if self.score == "dot":
            return torch.einsum("btd,bsd->bts", q, h)
        if self.score == "scaled_dot":
            return torch.einsum("btd,bsd->bts", q, h) / np.sqrt(self.dh)
        if self.score == "general":
            return torch.einsum("bti,ij,bsj->bts", q, self.W_a.weight, h)
        if self.score == "additive":
            e = torch.tanh(self.W_q(q)[:, :, None, :] + self.W_h(h)[:, None, :, :])
            return self.v(e).squeeze(-1)
        if self.score == "cosine":
            nq = torch.sqrt((q * q).sum(-1) + COS_EPS)
            nh = torch.sqrt((h * h).sum(-1) + COS_EPS)
            cos = torch.einsum("btd,bsd->bts", q, h) / (nq[:, :, None] * nh[:, None, :])
            return self.beta * cos
        if self.score == "location":
            return self.W_a(q)[:, :, :s]
        raise ValueError(self.score)

    def forward(self, q, h, lengths, step):
        b, t, s = q.shape[0], q.shape[1], h.shape[1]
        e = self.scores(q, h)
        srcpos = torch.arange(s, dtype=torch.float64)[None, None, :]        # [1, 1, S]
        slen = lengths.to(torch.float64)[:, None, None]                     # [B, 1, 1]
        allowed = srcpos < slen                                             # padding
        p = None
        if self.align == "local-m":
            tpos = torch.arange(t, dtype=torch.float64)[None, :] + step       # [1, T]
            p = torch.minimum(tpos, slen[:, :, 0] - 1).clamp(min=0)         # [B, T]
            allowed = allowed & ((srcpos - p[:, :, None]).abs() <= self.d)
        elif self.align == "local-p":
            z = self.v_p(torch.tanh(self.W_p(q))).squeeze(-1)               # [B, T]
            p = slen[:, :, 0] * torch.sigmoid(z)
            centre = torch.floor(p.detach() + 0.5)
            allowed = allowed & ((srcpos - centre[:, :, None]).abs() <= self.d)
        a = torch.softmax(e.masked_fill(~allowed, float("-inf")), dim=-1)
        if self.align == "local-p":
            sigma = self.d / 2.0
            a = a * torch.exp(-(srcpos - p[:, :, None]) ** 2 / (2.0 * sigma * sigma))
        return torch.bmm(a, h), a, p


# (label, score, align, B, T, S, Dq, Dh, A, S_max, D, step, lengths or None, beta, beta_fixed)
GLOBAL = [
    ("dot, T 4, lengths [7,3,5]", "dot", "global", 3, 4, 7, 6, 6, 0, 0, 0, 0, [7, 3, 5], 0, 0),
    ("dot, T 1, no lengths", "dot", "global", 2, 1, 5, 4, 4, 0, 0, 0, 0, None, 0, 0),
    ("scaled_dot, T 1, lengths [2,7,4]", "scaled_dot", "global", 3, 1, 7, 6, 6, 0, 0, 0, 0,
     [2, 7, 4], 0, 0),
    ("scaled_dot, T 3, Dh 9, lengths [5,1]", "scaled_dot", "global", 2, 3, 5, 9, 9, 0, 0, 0, 0,
     [5, 1], 0, 0),
    ("general, T 4, Dq 5, Dh 6, lengths [7,1,4]", "general", "global", 3, 4, 7, 5, 6, 0, 0, 0, 0,
     [7, 1, 4], 0, 0),
    ("general, T 1, Dq 7, Dh 3, no lengths", "general", "global", 2, 1, 4, 7, 3, 0, 0, 0, 0, None,
     0, 0),
    ("additive, T 4, Dq 5, Dh 6, A 4, lengths [5,7,2]", "additive", "global", 3, 4, 7, 5, 6, 4, 0,
     0, 0, [5, 7, 2], 0, 0),
    ("additive, T 1, Dq 3, Dh 5, A 7, lengths [6,3]", "additive", "global", 2, 1, 6, 3, 5, 7, 0, 0,
     0, [6, 3], 0, 0),
    ("cosine, learned beta 3, T 4, lengths [7,4,6]", "cosine", "global", 3, 4, 7, 6, 6, 0, 0, 0,
     0, [7, 4, 6], 3.0, 0),
    ("cosine, fixed beta 5, T 3, lengths [5,2]", "cosine", "global", 2, 3, 5, 4, 4, 0, 0, 0, 0,
     [5, 2], 5.0, 1),
    ("location, S_max 9 > S 7, T 4, lengths [7,3,6]", "location", "global", 3, 4, 7, 5, 6, 0, 9,
     0, 0, [7, 3, 6], 0, 0),
    ("location, S_max = S = 5, T 1, no lengths", "location", "global", 2, 1, 5, 3, 4, 0, 5, 0, 0,
     None, 0, 0),
]
LOCAL = [
    ("local-m general, T 4, step 3, D 2, lengths [7,3,5] (clipped p)", "general", "local-m", 3, 4,
     7, 5, 6, 0, 0, 2, 3, [7, 3, 5], 0, 0),
    ("local-m dot, T 1, step 5, D 1, lengths [7,4,6]", "dot", "local-m", 3, 1, 7, 6, 6, 0, 0, 1,
     5, [7, 4, 6], 0, 0),
    ("local-m additive, T 5, step 0, D 2, no lengths", "additive", "local-m", 2, 5, 6, 4, 5, 3, 0,
     2, 0, None, 0, 0),
    ("local-p general, T 4, D 2, A 5, lengths [9,4,6]", "general", "local-p", 3, 4, 9, 5, 6, 5, 0,
     2, 0, [9, 4, 6], 0, 0),
    ("local-p additive, T 1, D 3, A 4, lengths [8,5]", "additive", "local-p", 2, 1, 8, 4, 5, 4, 0,
     3, 0, [8, 5], 0, 0),
    ("local-p dot, T 4, D 1, A 3, lengths [6,6,3]", "dot", "local-p", 3, 4, 6, 4, 4, 3, 0, 1, 0,
     [6, 6, 3], 0, 0),
    ("local-p cosine, T 3, D 2, A 4, no lengths", "cosine", "local-p", 2, 3, 7, 5, 5, 4, 0, 2, 0,
     None, 2.0, 0),
    ("local-p location, T 2, D 2, A 3, lengths [5,3]", "location", "local-p", 2, 2, 5, 4, 3, 3, 6,
     2, 0, [5, 3], 0, 0),
]


def t64(a):
    return torch.tensor(np.asarray(a).astype(np.float64))


def run_case(fx, label, score, align, b, t, s, dq, dh, a, smax, d, step, lengths, beta,
             beta_fixed):
    k = fx.ncases
    p = "c%d." % k
    a_res = a if a else dq
    fx.text(p + "label", label)
    fx.put(p + "cfg", np.array([SCORES[score], ALIGNS[align], dq, dh, a, smax, d, step,
                                beta_fixed, lengths is not None], np.int32))
    if score == "cosine":
        fx.put(p + "beta", np.array([beta], np.float32))
    mod = Attention(score, align, dq, dh, a_res, smax, d, float(np.float32(beta)), beta_fixed)
    params = {}
    with torch.no_grad():
        for name, prm in mod.named_parameters():
            if name == "beta":
                v = np.array([beta], np.float32)
            else:
                bound = 1.0 / np.sqrt(prm.shape[1])
                if name == "v_p.weight":
                    bound *= 3.0  # spread the predicted positions over the sentence
                v = fx.uniform(-bound, bound, *prm.shape)
            fx.put(p + "param." + name, v)
            prm.copy_(t64(v))
            params[name] = prm
    q32 = fx.normal(b, t, dq)
    h32 = fx.normal(b, s, dh)
    fx.put(p + "q", q32)
    fx.put(p + "h", h32)
    q = t64(q32).requires_grad_(True)
    h = t64(h32).requires_grad_(True)
    lens = lengths if lengths is not None else [s] * b
    if lengths is not None:
        fx.put(p + "lengths", np.array(lengths, np.int32))
    ctx, w, pos = mod(q, h, torch.tensor(lens, dtype=torch.int64), step)
    if score == "cosine":  # the formula agrees with torch's own cosine away from zero vectors
        ref = F.cosine_similarity(q[:, :, None, :], h[:, None, :, :], dim=-1)
        got = mod.scores(q, h) / mod.beta
        assert torch.allclose(got, ref, rtol=1e-7, atol=1e-7), label
    if align == "local-p":  # far from the window's jumps, so float32 rounding cannot move one
        frac = (pos.detach().numpy() + 0.5) % 1.0
        assert np.all(np.minimum(frac, 1.0 - frac) > 1e-3), (label, pos)
    r1 = fx.normal(*ctx.shape)
    r2 = fx.normal(*w.shape)
    loss = (ctx * t64(r1)).sum() + (w * t64(r2)).sum()
    fx.put(p + "R", r1)
    fx.put(p + "R2", r2)
    fx.put(p + "context", ctx.detach().numpy())
    fx.put(p + "weights", w.detach().numpy())
    if pos is not None:
        fx.put(p + "positions", pos.detach().numpy())
    leaves = {"q": q, "h": h}
    for name, prm in params.items():
        if prm.requires_grad:
            leaves["param." + name] = prm
    grads = torch.autograd.grad(loss, list(leaves.values()))
    for name, g in zip(leaves, grads):
        fx.put(p + "grad." + name, g.numpy())
    fx.ncases += 1


def main(argv):
    if len(argv) != 2:
        print("usage: make_attention_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float64)
    os.makedirs(argv[1], exist_ok=True)
    for name, cases in (("attention_global", GLOBAL), ("attention_local", LOCAL)):
        fx = Fixture(name)
        for case in cases:
            run_case(fx, *case)
        data = fx.to_bytes()
        if len(data) > MAX_FILE:
            print("make_attention_fixtures.py: %s is %d bytes, limit %d"
                  % (name, len(data), MAX_FILE), file=sys.stderr)
            return 1
        with open(os.path.join(argv[1], name + ".atfx"), "wb") as f:
            f.write(data)
        print("%-17s %2d cases %7d bytes" % (name, fx.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
