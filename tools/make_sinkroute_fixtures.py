#!/usr/bin/env python3
"""make_sinkroute_fixtures.py: PyTorch references for include/attn/sinkhorn.h
(Sparse Sinkhorn and SortCut attention, Tay et al. 2020) and
include/attn/routing.h (routing attention, Roy et al. 2020).

    /usr/bin/python3 tools/make_sinkroute_fixtures.py tests/fixtures

Writes sinkroute.atfx (the ATFX format of tests/fixture.h; the writer is
make_fixtures.py's), read by tests/test_sinkroute.c. Per case k:
  c<k>.cfg      i32 [10]: kind 0 (Sinkhorn) d_model, n_heads, max_len, block,
                hidden, n_iter, n_sortcut, causal, 1000 tau;
                kind 1 (routing) d_model, n_heads, local_heads, n_clusters,
                window, local_window, causal, balance, 1000 decay
  c<k>.x        f32 [B, T, E];  c<k>.grad_out [B, T, E]
  c<k>.param.<name>  the parameters under attn's names, in attn's order (the
                routing centroids included: the k-means state)
  c<k>.out, c<k>.grad.x, c<k>.grad.<name> (trained parameters only)
  c<k>.perm     Sinkhorn: the soft permutation P (sinkhorn.h's shape)
  c<k>.members  routing: i32 [B, H_r, k, w], the clusters' positions (-1 pads)
  c<k>.centroids_after  routing: the centroids after one training-mode pass

The modules are written from the equations of docs/sinkhorn.md and
docs/routing.md with explicit per-block / per-cluster loops and logit
matrices, independently of the C code (which gathers with the embedding op
and batches blocks and clusters as heads of one attention call). Inputs drawn
in float32, computed in float64, results rounded once to float32.
Deterministic; needs torch (1.13 tested) and numpy, never at run time.
"""

import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)

NEG = float("-inf")


def f32(rng, shape, lo=-1.0, hi=1.0):
    return torch.tensor(rng.uniform(lo, hi, size=shape).astype(np.float32), dtype=torch.float64)


def lin(x, w, b):
    return x @ w.t() + b


def attend(q, k, v, mask):
    """q [n, D], k/v [m, D], mask [n, m] bool (True = hidden)."""
    s = (q @ k.t()) / math.sqrt(q.shape[-1])
    s = s.masked_fill(mask, NEG)
    p = torch.softmax(s, dim=-1)
    p = torch.nan_to_num(p, nan=0.0)
    return p @ v


class Params(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.params = []

    def add(self, name, *shape, trained=True):
        t = torch.nn.Parameter(torch.zeros(*shape), requires_grad=trained)
        self.params.append((name, t))
        return t


class Sinkhorn(Params):
    def __init__(self, E, H, l, b, hidden, n_iter, tau, ncut, causal):
        super().__init__()
        self.E, self.H, self.D, self.b = E, H, E // H, b
        self.nbmax, self.n_iter, self.tau, self.ncut, self.causal = l // b, n_iter, tau, ncut, causal
        self.w = {}
        for nm, o, i in [("q", E, E), ("k", E, E), ("v", E, E), ("out", E, E),
                         ("sort.0", hidden, E), ("sort.1", H * self.nbmax, hidden)]:
            self.w[nm] = (self.add(nm + ".weight", o, i), self.add(nm + ".bias", o))

    def forward(self, x):
        B, T, E = x.shape
        H, D, b = self.H, self.D, self.b
        nb = -(-T // b)
        Tp = nb * b
        if Tp > T:
            x = torch.cat([x, torch.zeros(B, Tp - T, E)], dim=1)
        A = torch.zeros(nb, Tp)
        for i in range(nb):
            if self.causal:
                A[i, : i * b + 1] = 1.0 / (i * b + 1)
            else:
                A[i, i * b:(i + 1) * b] = 1.0 / b
        s = A @ x  # [B, nb, E]
        h = torch.relu(lin(s, *self.w["sort.0"]))
        R = lin(h, *self.w["sort.1"]).view(B, nb, H, self.nbmax)[..., :nb].permute(0, 2, 1, 3)
        R = R / self.tau

        def heads(t):
            return t.view(B, Tp, H, D).permute(0, 2, 1, 3)
        q, k, v = (heads(lin(x, *self.w[n])) for n in ("q", "k", "v"))
        kb, vb = k.reshape(B, H, nb, b, D), v.reshape(B, H, nb, b, D)
        ks = vs = None
        self.perm = None
        if not self.causal:
            L = R
            for _ in range(self.n_iter):
                L = L - torch.logsumexp(L, dim=-1, keepdim=True)
                L = L - torch.logsumexp(L, dim=-2, keepdim=True)
            P = torch.exp(L)
            ks = torch.einsum("bhij,bhjtd->bhitd", P, kb)
            vs = torch.einsum("bhij,bhjtd->bhitd", P, vb)
            self.perm = P
        elif nb > 1:
            n = nb - 1
            L = R[:, :, 1:, :n].masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), NEG)
            # causal balancing: the row normalisation over the past blocks only
            P = torch.softmax(L, dim=-1)
            z = torch.zeros(B, H, 1, b, D)
            ks = torch.cat([z, torch.einsum("bhij,bhjtd->bhitd", P, kb[:, :, :n])], dim=2)
            vs = torch.cat([z, torch.einsum("bhij,bhjtd->bhitd", P, vb[:, :, :n])], dim=2)
            self.perm = P
        qb = q.reshape(B, H, nb, b, D)
        out = torch.zeros(B, H, nb, b, D)
        tri = torch.triu(torch.ones(b, b, dtype=torch.bool), 1)  # local key after the query
        for bi in range(B):
            for hh in range(H):
                for i in range(nb):
                    keys, vals, masks = [], [], []
                    if ks is not None:
                        if self.ncut == 0:
                            keys.append(ks[bi, hh, i])
                            vals.append(vs[bi, hh, i])
                            masks.append(torch.full((b, b), self.causal and i == 0))
                        else:
                            c0 = 1 if self.causal else 0
                            ns = min(self.ncut, nb - c0)
                            for j in range(c0, c0 + ns):
                                keys.append(ks[bi, hh, j])
                                vals.append(vs[bi, hh, j])
                                masks.append(torch.full((b, b), bool(self.causal and j > i)))
                    keys.append(kb[bi, hh, i])
                    vals.append(vb[bi, hh, i])
                    masks.append(tri if self.causal else torch.zeros(b, b, dtype=torch.bool))
                    out[bi, hh, i] = attend(qb[bi, hh, i], torch.cat(keys), torch.cat(vals),
                                            torch.cat(masks, dim=1))
        y = out.reshape(B, H, Tp, D).permute(0, 2, 1, 3).reshape(B, Tp, E)[:, :T]
        return lin(y, *self.w["out"])


class Routing(Params):
    def __init__(self, E, H, Hl, k, w, lw, causal, balance, decay):
        super().__init__()
        self.E, self.H, self.D, self.Hl, self.k = E, H, E // H, Hl, k
        self.w, self.lw, self.causal, self.balance, self.decay = w, lw, causal, balance, decay
        self.wt = {}
        for nm in ("qk", "v", "out"):
            self.wt[nm] = (self.add(nm + ".weight", E, E), self.add(nm + ".bias", E))
        self.mu = self.add("centroids", H - Hl, k, self.D, trained=False)

    def forward(self, x):
        B, T, E = x.shape
        H, D, Hl, k = self.H, self.D, self.Hl, self.k
        Hr = H - Hl
        u = torch.nn.functional.layer_norm(lin(x, *self.wt["qk"]).view(B, T, H, D), (D,), eps=1e-5)
        u = u.permute(0, 2, 1, 3)
        v = lin(x, *self.wt["v"]).view(B, T, H, D).permute(0, 2, 1, 3)
        out = torch.zeros(B, H, T, D)
        pos = torch.arange(T)
        if self.causal:
            lmask = (pos[None, :] > pos[:, None]) | (pos[None, :] <= pos[:, None] - self.lw)
        else:
            lmask = (pos[None, :] - pos[:, None]).abs() >= self.lw
        for bi in range(B):
            for hh in range(Hl):
                out[bi, hh] = attend(u[bi, hh], u[bi, hh], v[bi, hh], lmask)
        w = self.w if self.w > 0 else -(-T // k)
        w = min(w, T)
        mu = self.mu.detach()
        muh = mu / mu.norm(dim=-1, keepdim=True)
        near_all = torch.zeros(B, Hr, T, dtype=torch.long)
        lists = []
        for bi in range(B):
            for h in range(Hr):
                uu = u[bi, Hl + h].detach()
                cs = (uu / uu.norm(dim=-1, keepdim=True)) @ muh[h].t()  # [T, k]
                near = torch.argmax(cs, dim=-1)
                near_all[bi, h] = near
                cl = []
                for c in range(k):
                    if self.balance == 0:
                        order = sorted(range(T), key=lambda t: (-float(cs[t, c]), t))[:w]
                        cl.append(sorted(order))
                    else:
                        cl.append([t for t in range(T) if int(near[t]) == c])
                lists.append(cl)
        wm = w if self.balance == 0 else max(max(len(m) for m in cl) for cl in lists)
        members = -np.ones((B, Hr, k, wm), dtype=np.int32)
        for bi in range(B):
            for h in range(Hr):
                cl = lists[bi * Hr + h]
                acc = [[] for _ in range(T)]
                for c in range(k):
                    m = cl[c]
                    members[bi, h, c, :len(m)] = m
                    if not m:
                        continue
                    idx = torch.tensor(m)
                    uq, vq = u[bi, Hl + h, idx], v[bi, Hl + h, idx]
                    pm = idx.view(-1, 1) < idx.view(1, -1) if self.causal else \
                        torch.zeros(len(m), len(m), dtype=torch.bool)
                    o = attend(uq, uq, vq, pm)
                    for j, t in enumerate(m):
                        acc[t].append(o[j])
                rows = [torch.stack(a).mean(dim=0) if a else torch.zeros(D) for a in acc]
                out[bi, Hl + h] = torch.stack(rows)
        self.members = members
        # one training-mode k-means step
        after = mu.clone()
        for h in range(Hr):
            for c in range(k):
                sel = []
                for bi in range(B):
                    uu = u[bi, Hl + h].detach()
                    un = uu / uu.norm(dim=-1, keepdim=True)
                    sel += [un[t] for t in range(T) if int(near_all[bi, h, t]) == c]
                if sel:
                    after[h, c] = self.decay * mu[h, c] + (1 - self.decay) * torch.stack(sel).mean(0)
        self.after = after
        y = out.permute(0, 2, 1, 3).reshape(B, T, E)
        return lin(y, *self.wt["out"])


def add_case(fx, k, cfg, module, x):
    rng = fx.rng
    with torch.no_grad():
        for name, p in module.params:
            if name == "centroids":
                p.copy_(f32(rng, tuple(p.shape)))
                p.div_(p.norm(dim=-1, keepdim=True))
                p.copy_(p.float().double())
            elif name.startswith("sort."):
                p.copy_(f32(rng, tuple(p.shape), -1.5, 1.5))
            else:
                p.copy_(f32(rng, tuple(p.shape), -0.6, 0.6))
    xx = x.clone().requires_grad_(True)
    y = module(xx)
    go = f32(rng, tuple(y.shape))
    (y * go).sum().backward()
    fx.put("c%d.cfg" % k, np.array(cfg, dtype=np.int32))
    fx.put("c%d.x" % k, x.numpy())
    fx.put("c%d.grad_out" % k, go.numpy())
    for name, p in module.params:
        fx.put("c%d.param.%s" % (k, name), p.detach().numpy())
    fx.put("c%d.out" % k, y.detach().numpy())
    fx.put("c%d.grad.x" % k, xx.grad.numpy())
    for name, p in module.params:
        if p.requires_grad:
            fx.put("c%d.grad.%s" % (k, name), p.grad.numpy())
    if cfg[0] == 0 and module.perm is not None:
        fx.put("c%d.perm" % k, module.perm.detach().numpy())
    if cfg[0] == 1:
        fx.put("c%d.members" % k, module.members)
        fx.put("c%d.centroids_after" % k, module.after.numpy())
    fx.ncases += 1


def gen(fx):
    torch.manual_seed(0)
    rng = fx.rng
    k = 0
    # Sinkhorn: (E, H, l, b, hidden, n_iter, tau, ncut, causal, B, T)
    for E, H, l, b, hid, it, tau, ncut, causal, B, T in [
        (8, 2, 12, 3, 6, 5, 0.75, 0, 0, 2, 12),   # Sinkhorn, 4 blocks
        (8, 2, 16, 4, 5, 4, 0.5, 0, 1, 2, 14),    # causal, padded
        (8, 2, 12, 2, 6, 3, 1.0, 2, 0, 1, 10),    # SortCut 2 of 5 blocks
        (8, 2, 16, 4, 6, 5, 0.75, 2, 1, 2, 16),   # SortCut causal
        (6, 1, 9, 3, 4, 1, 0.75, 0, 1, 1, 9),     # one iteration, one head
    ]:
        m = Sinkhorn(E, H, l, b, hid, it, tau, ncut, causal)
        add_case(fx, k, [0, E, H, l, b, hid, it, ncut, causal, round(tau * 1000)], m,
                 f32(rng, (B, T, E)))
        k += 1
    # routing: (E, H, Hl, k, w, lw, causal, balance, decay, B, T)
    for E, H, Hl, kk, w, lw, causal, bal, dec, B, T in [
        (8, 2, 1, 3, 4, 3, 1, 0, 0.9, 2, 9),    # top-w, causal, one local head
        (8, 2, 0, 2, 0, 4, 0, 0, 0.5, 1, 7),    # top-w, w = ceil(T/k), not causal
        (12, 3, 1, 3, 0, 2, 1, 1, 0.99, 2, 8),  # nearest (strictly causal)
    ]:
        m = Routing(E, H, Hl, kk, w, lw, causal, bal, dec)
        add_case(fx, k, [1, E, H, Hl, kk, w, lw, causal, bal, round(dec * 1000)], m,
                 f32(rng, (B, T, E)))
        k += 1


def main(argv):
    if len(argv) != 2:
        print("usage: make_sinkroute_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float64)
    os.makedirs(argv[1], exist_ok=True)
    fx = Fixture("sinkroute")
    gen(fx)
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        print("make_sinkroute_fixtures.py: %d bytes, limit %d" % (len(data), MAX_FILE),
              file=sys.stderr)
        return 1
    with open(os.path.join(argv[1], "sinkroute.atfx"), "wb") as f:
        f.write(data)
    print("%-17s %2d cases %7d bytes" % ("sinkroute", fx.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
