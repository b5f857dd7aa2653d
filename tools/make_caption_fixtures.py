#!/usr/bin/env python3
"""make_caption_fixtures.py: PyTorch references for include/attn/caption.h
(the Show, Attend and Tell decoder).

    /usr/bin/python3 tools/make_caption_fixtures.py tests/fixtures

Writes caption.atfx (the ATFX format of tests/fixture.h; the writer is
make_fixtures.py's), read by tests/test_caption.c. Per case k:
  c<k>.cfg      i32 [6]: mode (0 soft, 1 hard, 2 none), V, D, E, H, A
  c<k>.hyper    f32 [5]: lambda, reinforce, entropy, baseline_decay, mix
  c<k>.annot    f32 [B, L, D];  c<k>.tokens i32 [B, T + 1]
  c<k>.samples  i32 [B, T], c<k>.expected i32 [B]  (HARD's fixed draws)
  c<k>.param.<name>  the parameters under attn's names, in attn's order
  c<k>.loss, c<k>.ce, c<k>.penalty (scalars), c<k>.logits [B, T, V],
  c<k>.alphas [B, T, L], c<k>.betas [B, T] (not for NONE),
  c<k>.grad.<name>   d loss / d parameter (autograd of the loss)
  HARD only: c<k>.formula.<name>: the same gradient assembled term by term
  from the REINFORCE formula,
     d(CE + penalty) - (lambda_r / N) sum_b (R_b - b) d sum_t log alpha_{b,t,s_bt}
                     - (lambda_e / N) d sum_{b,t} H(alpha_bt),
  with R_b = (1/n_b) sum_t log p(y_bt | s_b) (per-token mean) computed
  separately; the script checks
  that it equals c<k>.grad (so the surrogate's gradient is the estimator).

The decoder is written here from the paper's equations (not from the C
code): additive score, softmax, the gate, the LSTM of torch.nn.LSTMCell,
the deep output. Inputs drawn in float32, everything computed in float64,
results rounded once to float32. Deterministic; needs torch (1.13 tested)
and numpy, never at run time.
"""

import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture  # noqa: E402  (the ATFX writer)

LOG_EPS = 1e-10
SOFT, HARD, NONE = 0, 1, 2


def param_shapes(mode, V, D, E, H, A):
    s = [("embed.weight", (V, E)), ("init_h.weight", (H, D)), ("init_h.bias", (H,)),
         ("init_c.weight", (H, D)), ("init_c.bias", (H,))]
    if mode != NONE:
        s += [("attn.W_q.weight", (A, H)), ("attn.W_h.weight", (A, D)), ("attn.v.weight", (1, A)),
              ("f_beta.weight", (1, H)), ("f_beta.bias", (1,))]
    s += [("lstm.weight_ih", (4 * H, E + D)), ("lstm.bias_ih", (4 * H,)),
          ("lstm.weight_hh", (4 * H, H)), ("lstm.bias_hh", (4 * H,)),
          ("out_h.weight", (E, H)), ("out_h.bias", (E,)), ("out_z.weight", (E, D)),
          ("out.weight", (V, E)), ("out.bias", (V,))]
    if mode == HARD:
        s += [("baseline", (1,))]
    return s


def decode(P, mode, annot, tokens, samples, expected):
    """Teacher-forced pass: logits [B, T, V], alphas [B, T, L], betas [B, T]."""
    B, L, D = annot.shape
    T = tokens.shape[1] - 1
    mean = annot.mean(1)
    h = torch.tanh(mean @ P["init_h.weight"].T + P["init_h.bias"])
    c = torch.tanh(mean @ P["init_c.weight"].T + P["init_c.bias"])
    Hs, Zs, As, Bs = [], [], [], []
    for t in range(T):
        emb = P["embed.weight"][tokens[:, t]]
        if mode == NONE:
            z = mean
        else:
            q = h @ P["attn.W_q.weight"].T                       # W_h h_{t-1}
            k = annot @ P["attn.W_h.weight"].T                   # W_a a_i
            e = torch.tanh(q[:, None, :] + k) @ P["attn.v.weight"][0]   # [B, L]
            alpha = torch.softmax(e, dim=1)
            beta = torch.sigmoid(h @ P["f_beta.weight"].T + P["f_beta.bias"])  # [B, 1]
            w = alpha
            if mode == HARD:
                onehot = F.one_hot(samples[:, t].long(), L).double()
                keep = expected.double()[:, None]
                w = keep * alpha + (1 - keep) * onehot
            z = beta * (w[:, :, None] * annot).sum(1)
            As.append(alpha)
            Bs.append(beta[:, 0])
        x = torch.cat([emb, z], 1)
        g = x @ P["lstm.weight_ih"].T + P["lstm.bias_ih"] + h @ P["lstm.weight_hh"].T + P["lstm.bias_hh"]
        gi, gf, gg, go = g.chunk(4, 1)
        c = torch.sigmoid(gf) * c + torch.sigmoid(gi) * torch.tanh(gg)
        h = torch.sigmoid(go) * torch.tanh(c)
        Hs.append(h)
        Zs.append(z)
    Hs, Zs = torch.stack(Hs, 1), torch.stack(Zs, 1)
    o = P["embed.weight"][tokens[:, :T]] + Hs @ P["out_h.weight"].T + P["out_h.bias"] + Zs @ P["out_z.weight"].T
    logits = o @ P["out.weight"].T + P["out.bias"]
    alphas = torch.stack(As, 1) if As else None
    betas = torch.stack(Bs, 1) if Bs else None
    return logits, alphas, betas


def case(fx, mode, B, L, D, E, H, A, V, T, hyper, baseline=0.0):
    rng = fx.rng
    k = fx.ncases
    lam, lam_r, lam_e, decay, mix = hyper
    P = {}
    for name, shape in param_shapes(mode, V, D, E, H, A):
        arr = (rng.standard_normal(shape) * 0.5).astype(np.float32)
        if name == "baseline":
            arr = np.array([baseline], dtype=np.float32)
        P[name] = torch.tensor(arr, dtype=torch.float64, requires_grad=name != "baseline")
    annot = torch.tensor(rng.standard_normal((B, L, D)).astype(np.float32), dtype=torch.float64)
    tokens = np.zeros((B, T + 1), dtype=np.int64)
    for b in range(B):
        n = T if b == 0 else max(1, T - b)  # row b has n targets; the rest PAD
        tokens[b, 0] = 1
        tokens[b, 1:n] = rng.integers(3, V, n - 1)
        tokens[b, n] = 2
    tokens = torch.tensor(tokens)
    samples = torch.tensor(rng.integers(0, L, (B, T)))
    expected = torch.tensor([1 if b == 0 else 0 for b in range(B)])
    logits, alphas, betas = decode(P, mode, annot, tokens, samples, expected)
    tg = tokens[:, 1:]
    ce = F.cross_entropy(logits.reshape(-1, V), tg.reshape(-1), ignore_index=0)
    vm = (tg != 0).double()
    N = vm.sum()
    loss = ce
    pen = torch.zeros((), dtype=torch.float64)
    if mode != NONE:
        S = (alphas * vm[:, :, None]).sum(1)
        pen = lam / B * ((1 - S) ** 2).sum()
        loss = loss + pen
    names = [n for n, _ in param_shapes(mode, V, D, E, H, A) if n != "baseline"]
    formula = None
    if mode == HARD:
        logp = torch.log_softmax(logits, -1).gather(2, tg[:, :, None])[:, :, 0] * vm
        R = (logp.sum(1) / vm.sum(1)).detach()                    # R_b: mean log p per token, a constant
        sampled = (1 - expected).double()
        logA = torch.log(alphas + LOG_EPS)
        logp_s = (logA.gather(2, samples[:, :, None])[:, :, 0] * vm).sum(1)   # sum_t log alpha_{s}
        ent = -(alphas * logA).sum(2) * vm                        # H(alpha_bt)
        coef = lam_r * (R - baseline) * sampled / N
        surrogate = -(coef * logp_s).sum() - lam_e / N * ent.sum()
        loss = loss + surrogate
        # the formula, term by term
        g_main = torch.autograd.grad(ce + pen, [P[n] for n in names], retain_graph=True, allow_unused=True)
        g_logp = [torch.autograd.grad(logp_s[b], [P[n] for n in names], retain_graph=True, allow_unused=True)
                  for b in range(B)]
        g_ent = torch.autograd.grad(ent.sum(), [P[n] for n in names], retain_graph=True, allow_unused=True)
        formula = []
        for i, n in enumerate(names):
            z = torch.zeros_like(P[n])
            f = (g_main[i] if g_main[i] is not None else z).clone()
            for b in range(B):
                if sampled[b] > 0 and g_logp[b][i] is not None:
                    f -= lam_r / N * (R[b] - baseline) * g_logp[b][i]
            if g_ent[i] is not None:
                f -= lam_e / N * g_ent[i]
            formula.append(f)
    grads = torch.autograd.grad(loss, [P[n] for n in names], allow_unused=True)
    fx.put("c%d.cfg" % k, np.array([mode, V, D, E, H, A], dtype=np.int32))
    fx.put("c%d.hyper" % k, np.array(hyper, dtype=np.float32))
    fx.put("c%d.annot" % k, annot.numpy().astype(np.float32))
    fx.put("c%d.tokens" % k, tokens.numpy().astype(np.int32))
    fx.put("c%d.samples" % k, samples.numpy().astype(np.int32))
    fx.put("c%d.expected" % k, expected.numpy().astype(np.int32))
    for name, _ in param_shapes(mode, V, D, E, H, A):
        fx.put("c%d.param.%s" % (k, name), P[name].detach().numpy())
    fx.put("c%d.loss" % k, np.array([loss.item()]))
    fx.put("c%d.ce" % k, np.array([ce.item()]))
    fx.put("c%d.penalty" % k, np.array([pen.item()]))
    fx.put("c%d.logits" % k, logits.detach().numpy())
    if alphas is not None:
        fx.put("c%d.alphas" % k, alphas.detach().numpy())
        fx.put("c%d.betas" % k, betas.detach().numpy())
    for i, n in enumerate(names):
        g = grads[i] if grads[i] is not None else torch.zeros_like(P[n])
        fx.put("c%d.grad.%s" % (k, n), g.numpy())
        if formula is not None:
            err = (formula[i] - g).abs().max().item()
            if err > 1e-10:
                raise SystemExit("REINFORCE formula and autograd differ for %s by %g" % (n, err))
            fx.put("c%d.formula.%s" % (k, n), formula[i].numpy())
    fx.ncases += 1


def main(argv):
    outdir = argv[1] if len(argv) > 1 else "tests/fixtures"
    torch.manual_seed(0)
    fx = Fixture("caption")
    # c0: SOFT, a short sequence with PAD in rows 1 and 2
    case(fx, SOFT, B=3, L=6, D=5, E=4, H=7, A=3, V=9, T=4, hyper=(0.3, 1.0, 0.01, 0.9, 0.5))
    # c1: SOFT, one decoder step
    case(fx, SOFT, B=2, L=5, D=3, E=4, H=6, A=5, V=8, T=1, hyper=(0.5, 1.0, 0.01, 0.9, 0.5))
    # c2: NONE (the mean annotation)
    case(fx, NONE, B=3, L=4, D=5, E=3, H=6, A=6, V=7, T=3, hyper=(0.0, 1.0, 0.01, 0.9, 0.5))
    # c3: HARD with fixed draws: row 0 expected, rows 1-3 sampled
    case(fx, HARD, B=4, L=6, D=4, E=3, H=5, A=4, V=8, T=4, hyper=(0.2, 0.7, 0.05, 0.9, 0.5), baseline=-9.0)
    data = fx.to_bytes()
    with open(os.path.join(outdir, "caption.atfx"), "wb") as f:
        f.write(data)
    print("%-17s %2d cases %7d bytes" % ("caption", fx.ncases, len(data)))


if __name__ == "__main__":
    main(sys.argv)
