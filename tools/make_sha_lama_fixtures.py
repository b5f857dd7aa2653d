#!/usr/bin/env python3
"""make_sha_lama_fixtures.py: PyTorch references for include/attn/sha_rnn.h,
include/attn/sha_lstm.h, include/attn/lama.h and include/attn/gru_classifier.h.

    /usr/bin/python3 tools/make_sha_lama_fixtures.py tests/fixtures

Writes sha_rnn.atfx and lama.atfx (the ATFX format of tests/fixture.h),
read by tests/test_sha_rnn.c and tests/test_lama.c. The modules are written
here from the papers' equations and the SHA-RNN's released code
(Smerity/sha-rnn model.py: Attention(q=True, k=False, v=False, r=False),
Overparam, Boom(shortcut=True), Block(rnn=True, residual=False), GELU
x sigmoid(1.702 x), LayerNorm eps 1e-12), independently of the C code; the
LSTM and GRU cells are torch's equations written out (gate orders i f g o
and r z n). Parameters are listed in attn's store order under attn's names.

sha_rnn.atfx, case k ("c<k>."), cfg[0] the kind:
  0 SHA attention: cfg [0, d, B, T, S, causal]; x_q [B,T,d], x_kv [B,S,d],
    grad_out, param.*, out, grad.x_q, grad.x_kv, grad.*, weights [B,1,T,S]
  1 Boom: cfg [1, d, n, B, T]; x, grad_out, param.*, out, grad.x, grad.*
  2 SHA-LSTM / LSTM model: cfg [2, arch, V, d, L, attn_layer, boom, M, B, T, M0];
    ids I32 [B,T], h0, c0 [L,B,d], mem [B,M0,d], grad_out [B,T,V], param.*,
    out (logits), grad.*, new_h, new_c [L,B,d], new_mem [B,min(M,M0+T),d]
lama.atfx:
  0 LAMA: cfg [0, d, k, r, B, n, has_c]; h [B,n,d], lengths I32 [B], c [B,d]
    (has_c), grad_out [B,k d], param.p, param.q, out, grad.h, grad.c,
    grad.p, grad.q, weights [B,k,n]
  1 BiGRU classifier: cfg [1, V, e, u, C, pool, heads, rank, B, n]; ids,
    lengths, grad_out [B,C], param.*, out, grad.*
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

F = torch.nn.functional


def f32(rng, shape, lo=-1.0, hi=1.0):
    return torch.tensor(rng.uniform(lo, hi, size=shape).astype(np.float32), dtype=torch.float64)


class Params:
    """Parameters in attn's order, drawn from the fixture's generator."""

    def __init__(self, rng):
        self.rng, self.list = rng, []

    def add(self, name, *shape, lo=-0.6, hi=0.6):
        t = f32(self.rng, shape, lo, hi).requires_grad_(True)
        self.list.append((name, t))
        return t

    def ln(self, name, d):
        return self.add(name + ".weight", d, lo=0.7, hi=1.3), self.add(name + ".bias", d, lo=-0.2, hi=0.2)


def gelu(x):
    return x * torch.sigmoid(1.702 * x)


def layer_norm(x, g, b):
    return F.layer_norm(x, (x.shape[-1],), g, b, eps=1e-12)


class SHA:
    """The released code's Attention with q=True, k=v=r=False, one head."""

    def __init__(self, P, prefix, d):
        self.qs = P.add(prefix + "qs", 1, 1, d, lo=-1.5, hi=1.5)
        self.ks = P.add(prefix + "ks", 1, 1, d, lo=-1.5, hi=1.5)
        self.vs = P.add(prefix + "vs", 1, 1, d, lo=-1.5, hi=1.5)
        self.qw, self.qb = P.add(prefix + "q.weight", d, d), P.add(prefix + "q.bias", d)
        self.lg, self.lb = P.ln(prefix + "qln", d)
        self.vw, self.vb = P.add(prefix + "vq.l1.weight", 2 * d, d), P.add(prefix + "vq.l1.bias", 2 * d)
        self.d = d

    def __call__(self, query, key, causal=True):
        d = self.d
        qs, ks, vs = torch.sigmoid(self.qs), torch.sigmoid(self.ks), torch.sigmoid(self.vs)
        c, f = F.linear(vs, self.vw, self.vb).split(d, dim=-1)      # Overparam
        vs = torch.sigmoid(f) * torch.tanh(c)
        q = layer_norm(F.linear(query, self.qw, self.qb), self.lg, self.lb)
        q, k, v = qs * q, ks * key, vs * key
        T, S = q.shape[1], k.shape[1]
        s = q @ k.transpose(1, 2) / math.sqrt(d)
        if causal:  # key j visible to query i iff j <= i + S - T
            mask = torch.ones(T, S, dtype=torch.bool).triu(S - T + 1)
            s = s.masked_fill(mask, float("-inf"))
        w = torch.softmax(s, -1)
        self.weights = w.unsqueeze(1)
        return w @ v


class Boom:
    def __init__(self, P, prefix, d, n):
        self.w, self.b = P.add(prefix + "linear1.weight", n * d, d), P.add(prefix + "linear1.bias", n * d)
        self.d, self.n = d, n

    def __call__(self, x):
        u = gelu(F.linear(x, self.w, self.b))
        return u.view(*u.shape[:-1], self.n, self.d).sum(-2)


def lstm_layer(P, prefix, d, layer=0):
    sfx = "_l%d" % layer
    return (P.add(prefix + "weight_ih" + sfx, 4 * d, d), P.add(prefix + "weight_hh" + sfx, 4 * d, d),
            P.add(prefix + "bias_ih" + sfx, 4 * d), P.add(prefix + "bias_hh" + sfx, 4 * d))


def lstm_run(w, x, h, c):
    wih, whh, bih, bhh = w
    out = []
    for t in range(x.shape[1]):
        g = F.linear(x[:, t], wih, bih) + F.linear(h, whh, bhh)
        i, f, gg, o = g.chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
        h = torch.sigmoid(o) * torch.tanh(c)
        out.append(h)
    return torch.stack(out, 1), h, c


def sha_case(fx, k, d, B, T, S, causal):
    P = Params(fx.rng)
    m = SHA(P, "", d)
    xq, xkv = f32(fx.rng, (B, T, d)).requires_grad_(True), f32(fx.rng, (B, S, d)).requires_grad_(True)
    y = m(xq, xkv, causal)
    go = f32(fx.rng, tuple(y.shape))
    (y * go).sum().backward()
    fx.put("c%d.cfg" % k, np.array([0, d, B, T, S, causal], dtype=np.int32))
    fx.put("c%d.x_q" % k, xq.detach().numpy())
    fx.put("c%d.x_kv" % k, xkv.detach().numpy())
    fx.put("c%d.grad_out" % k, go.numpy())
    put_params(fx, k, P)
    fx.put("c%d.out" % k, y.detach().numpy())
    fx.put("c%d.grad.x_q" % k, xq.grad.numpy())
    fx.put("c%d.grad.x_kv" % k, xkv.grad.numpy())
    fx.put("c%d.weights" % k, m.weights.detach().numpy())
    fx.ncases += 1


def boom_case(fx, k, d, n, B, T):
    P = Params(fx.rng)
    m = Boom(P, "", d, n)
    x = f32(fx.rng, (B, T, d)).requires_grad_(True)
    y = m(x)
    go = f32(fx.rng, tuple(y.shape))
    (y * go).sum().backward()
    fx.put("c%d.cfg" % k, np.array([1, d, n, B, T], dtype=np.int32))
    fx.put("c%d.x" % k, x.detach().numpy())
    fx.put("c%d.grad_out" % k, go.numpy())
    put_params(fx, k, P)
    fx.put("c%d.out" % k, y.detach().numpy())
    fx.put("c%d.grad.x" % k, x.grad.numpy())
    fx.ncases += 1


def put_params(fx, k, P):
    for name, t in P.list:
        fx.put("c%d.param.%s" % (k, name), t.detach().numpy())
    for name, t in P.list:
        if t.grad is not None:
            fx.put("c%d.grad.%s" % (k, name), t.grad.numpy())


def model_case(fx, k, arch, V, d, L, attn_layer, boom, M, B, T, M0):
    rng = fx.rng
    P = Params(rng)
    emb = P.add("embed.weight", V, d)
    dec_b = P.add("decoder.bias", V)
    blocks, rnn = [], []
    if arch == 1:
        rnn = [lstm_layer(P, "rnn.", d, l) for l in range(L)]
    else:
        for l in range(L):
            p = "blocks.%d." % l
            b = {"lnstart": P.ln(p + "lnstart", d), "rnn": lstm_layer(P, p + "rnn.", d)}
            if l == attn_layer:
                b["lnmem"], b["lnmid"] = P.ln(p + "lnmem", d), P.ln(p + "lnmid", d)
                b["attn"] = SHA(P, p + "attn.", d)
            b["lnff"], b["lnxff"] = P.ln(p + "lnff", d), P.ln(p + "lnxff", d)
            b["ff"] = Boom(P, p + "ff.", d, boom)
            blocks.append(b)
    ids = torch.tensor(rng.integers(0, V, size=(B, T)), dtype=torch.long)
    h0, c0 = f32(rng, (L, B, d)), f32(rng, (L, B, d))
    mem = f32(rng, (B, M0, d))
    new_h, new_c, new_mem = [], [], None
    h = emb[ids]
    if arch == 1:
        for l in range(L):
            h, hn, cn = lstm_run(rnn[l], h, h0[l], c0[l])
            new_h.append(hn)
            new_c.append(cn)
    else:
        for l, b in enumerate(blocks):
            h = layer_norm(h, *b["lnstart"])
            h, hn, cn = lstm_run(b["rnn"], h, h0[l], c0[l])
            new_h.append(hn)
            new_c.append(cn)
            if l == attn_layer:
                mh = layer_norm(h, *b["lnmem"])
                h = layer_norm(h, *b["lnmid"])
                big = torch.cat([mem, mh], 1) if M0 > 0 else mh
                h = b["attn"](h, big) + h
                new_mem = big[:, -min(M, big.shape[1]):] if M > 0 else None
            h = layer_norm(h, *b["lnff"]) + b["ff"](layer_norm(h, *b["lnxff"]))
    logits = F.linear(h, emb, dec_b)
    go = f32(rng, tuple(logits.shape))
    (logits * go).sum().backward()
    fx.put("c%d.cfg" % k, np.array([2, arch, V, d, L, attn_layer, boom, M, B, T, M0], dtype=np.int32))
    fx.put("c%d.ids" % k, ids.numpy().astype(np.int32))
    fx.put("c%d.h0" % k, h0.numpy())
    fx.put("c%d.c0" % k, c0.numpy())
    fx.put("c%d.mem" % k, mem.numpy())
    fx.put("c%d.grad_out" % k, go.numpy())
    put_params(fx, k, P)
    fx.put("c%d.out" % k, logits.detach().numpy())
    fx.put("c%d.new_h" % k, torch.stack(new_h).detach().numpy())
    fx.put("c%d.new_c" % k, torch.stack(new_c).detach().numpy())
    if new_mem is not None:
        fx.put("c%d.new_mem" % k, new_mem.detach().numpy())
    fx.ncases += 1


# ---- LAMA ----------------------------------------------------------------------------

def lama(p, q, h, lengths, c, k, r):
    B, n, d = h.shape
    valid = torch.arange(n).unsqueeze(0) < lengths.unsqueeze(1)          # [B, n]
    if c is None:
        c = (h * valid.unsqueeze(-1)).sum(1) / lengths.unsqueeze(1).to(h.dtype)
    u = F.linear(c, p).view(B, 1, k, r)                                   # P_j^T c
    v = F.linear(h, q).view(B, n, k, r)                                   # Q_j^T h_i
    score = (u * v).sum(-1).transpose(1, 2)                               # c^T P_j Q_j^T h_i
    score = score.masked_fill(~valid.unsqueeze(1), float("-inf"))
    a = torch.softmax(score, -1)                                          # [B, k, n]
    return (a @ h).reshape(B, k * d), a


def lama_case(fx, k, d, heads, r, B, n, lengths, has_c):
    rng = fx.rng
    P = Params(rng)
    p, q = P.add("p", heads * r, d), P.add("q", heads * r, d)
    h = f32(rng, (B, n, d)).requires_grad_(True)
    c = f32(rng, (B, d)).requires_grad_(True) if has_c else None
    ln = torch.tensor(lengths, dtype=torch.long)
    y, a = lama(p, q, h, ln, c, heads, r)
    go = f32(rng, tuple(y.shape))
    (y * go).sum().backward()
    fx.put("c%d.cfg" % k, np.array([0, d, heads, r, B, n, has_c], dtype=np.int32))
    fx.put("c%d.h" % k, h.detach().numpy())
    fx.put("c%d.lengths" % k, np.array(lengths, dtype=np.int32))
    if has_c:
        fx.put("c%d.c" % k, c.detach().numpy())
        fx.put("c%d.grad.c" % k, c.grad.numpy())
    fx.put("c%d.grad_out" % k, go.numpy())
    put_params(fx, k, P)
    fx.put("c%d.out" % k, y.detach().numpy())
    fx.put("c%d.grad.h" % k, h.grad.numpy())
    fx.put("c%d.weights" % k, a.detach().numpy())
    fx.ncases += 1


def gru_dir(w, x, lengths, reverse):
    wih, whh, bih, bhh = w
    B, n, _ = x.shape
    u = whh.shape[1]
    out = torch.zeros(B, n, u, dtype=x.dtype)
    for b in range(B):
        h = torch.zeros(u, dtype=x.dtype)
        steps = range(lengths[b] - 1, -1, -1) if reverse else range(lengths[b])
        for t in steps:
            gi, gh = F.linear(x[b, t], wih, bih), F.linear(h, whh, bhh)
            ir, iz, inn = gi.chunk(3)
            hr, hz, hn = gh.chunk(3)
            rr, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
            nn_ = torch.tanh(inn + rr * hn)
            h = (1 - z) * nn_ + z * h
            out = out.index_put((torch.tensor([b]), torch.tensor([t])), h.unsqueeze(0))
    return out


def classifier_case(fx, k, V, e, u, C, pool, heads, r, B, n, lengths):
    rng = fx.rng
    P = Params(rng)
    emb = P.add("embed.weight", V, e)
    fw = (P.add("gru.weight_ih_l0", 3 * u, e), P.add("gru.weight_hh_l0", 3 * u, u),
          P.add("gru.bias_ih_l0", 3 * u), P.add("gru.bias_hh_l0", 3 * u))
    bw = (P.add("gru.weight_ih_l0_reverse", 3 * u, e), P.add("gru.weight_hh_l0_reverse", 3 * u, u),
          P.add("gru.bias_ih_l0_reverse", 3 * u), P.add("gru.bias_hh_l0_reverse", 3 * u))
    d = 2 * u
    if pool == 1:
        aw, ab, av = P.add("pool.w.weight", d, d), P.add("pool.w.bias", d), P.add("pool.v.weight", 1, d)
    elif pool == 3:
        lp, lq = P.add("pool.p", heads * r, d), P.add("pool.q", heads * r, d)
    zw = heads * d if pool == 3 else d
    ow, ob = P.add("out.weight", C, zw), P.add("out.bias", C)
    ids = torch.tensor(rng.integers(0, V, size=(B, n)), dtype=torch.long)
    ln = torch.tensor(lengths, dtype=torch.long)
    x = emb[ids]
    h = torch.cat([gru_dir(fw, x, lengths, False), gru_dir(bw, x, lengths, True)], -1)
    valid = torch.arange(n).unsqueeze(0) < ln.unsqueeze(1)
    if pool == 0:
        z = (h * valid.unsqueeze(-1)).sum(1) / ln.unsqueeze(1).to(h.dtype)
    elif pool == 1:
        s = F.linear(torch.tanh(F.linear(h, aw, ab)), av).squeeze(-1)
        a = torch.softmax(s.masked_fill(~valid, float("-inf")), -1)
        z = (a.unsqueeze(-1) * h).sum(1)
    else:
        z, _ = lama(lp, lq, h, ln, None, heads, r)
    y = F.linear(z, ow, ob)
    go = f32(rng, tuple(y.shape))
    (y * go).sum().backward()
    fx.put("c%d.cfg" % k, np.array([1, V, e, u, C, pool, heads, r, B, n], dtype=np.int32))
    fx.put("c%d.ids" % k, ids.numpy().astype(np.int32))
    fx.put("c%d.lengths" % k, np.array(lengths, dtype=np.int32))
    fx.put("c%d.grad_out" % k, go.numpy())
    put_params(fx, k, P)
    fx.put("c%d.out" % k, y.detach().numpy())
    fx.ncases += 1


def write(fx, outdir, name):
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        raise SystemExit("make_sha_lama_fixtures.py: %s %d bytes, limit %d" % (name, len(data), MAX_FILE))
    with open(os.path.join(outdir, name + ".atfx"), "wb") as f:
        f.write(data)
    print("%-17s %2d cases %7d bytes" % (name, fx.ncases, len(data)))


def main(argv):
    if len(argv) != 2:
        print("usage: make_sha_lama_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    os.makedirs(argv[1], exist_ok=True)
    fx = Fixture("sha_rnn")
    sha_case(fx, 0, 6, 2, 4, 7, 1)       # memory of 3 + 4 current keys, causal
    sha_case(fx, 1, 5, 2, 3, 3, 0)       # no mask
    boom_case(fx, 2, 5, 4, 2, 3)
    #                arch V  d  L  attn boom M  B  T  M0
    model_case(fx, 3, 0, 11, 6, 2, 0, 4, 3, 2, 4, 2)
    model_case(fx, 4, 0, 9, 5, 3, 1, 2, 8, 2, 3, 0)
    model_case(fx, 5, 1, 10, 5, 2, 0, 4, 0, 2, 4, 0)
    write(fx, argv[1], "sha_rnn")
    fx = Fixture("lama")
    lama_case(fx, 0, 6, 3, 2, 3, 5, [5, 2, 1], 0)
    lama_case(fx, 1, 5, 2, 3, 2, 4, [3, 4], 1)
    classifier_case(fx, 2, 13, 4, 3, 3, 3, 4, 2, 3, 5, [5, 3, 1])
    classifier_case(fx, 3, 13, 4, 3, 3, 1, 1, 1, 3, 5, [2, 5, 4])
    classifier_case(fx, 4, 13, 4, 3, 3, 0, 1, 1, 2, 4, [4, 1])
    write(fx, argv[1], "lama")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
