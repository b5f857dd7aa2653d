#!/usr/bin/env python3
"""make_gan_fixtures.py: PyTorch references for include/attn/gan.h.

    /usr/bin/python3 tools/make_gan_fixtures.py tests/fixtures

Writes gan_c0.atfx (no attention) and gan_c1.atfx (SAGAN blocks), the ATFX
format of tests/fixture.h (the writer is make_fixtures.py's), read by
tests/test_gan.c. The nets are written here from the description in
include/attn/gan.h with torch.nn modules and
torch.nn.utils.parametrizations.spectral_norm (its u and v exported, so
that attn runs the same power iterations), independently of the C code.

Per file (case c0):
  c0.cfg           i32 [4]: z_dim, g_ch, d_ch, attention
  c0.z [B, Z], c0.x [B, 1, 28, 28] (a "real" batch in [-1, 1])
  c0.g.<name>, c0.d.<name>   the initial state of G and D under torch's
                   state_dict names (weights, biases, batchnorm's running
                   statistics, spectral norm's _u and _v)
  Pass A (training mode, from the initial state): fake = G(z),
    d_real = D(x), d_fake = D(fake), L_D = hinge; backward of L_D:
  c0.A.fake, c0.A.d_real, c0.A.d_fake, c0.A.loss_d
  c0.A.grad.g.<name>, c0.A.grad.d.<name>   (learned tensors only)
  c0.A.post.g.<name>, c0.A.post.d.<name>   (_u, _v and running statistics
                   after the pass: the state the forward wrote)
  Pass B (training mode, from the initial state again): fake = G(z),
    L_G = -mean(D(fake)); backward of L_G:
  c0.B.loss_g, c0.B.grad.g.<name>
  Pass E (evaluation mode, from the initial state): c0.E.fake = G(z),
    c0.E.d_real = D(x).
gan_fid.atfx: the Frechet distance of feature sets (include/attn/fid.h),
computed the usual FID way, independently of attn's symmetric route:
tr((S1 S2)^1/2) as the sum of the square roots of the eigenvalues of the
non-symmetric product S1 S2 (torch.linalg.eigvals, complex), covariances
as numpy.cov. Per case k: c<k>.a [n1, D], c<k>.b [n2, D] (float32
features), c<k>.fid_hi and c<k>.fid_lo (the float64 distance as the sum of
two float32s, so that the test can compare at 1e-12), c<k>.sym [D, D] and
c<k>.eig [D] (a symmetric matrix, float32, and its eigenvalues by
numpy.linalg.eigh, ascending, as hi and lo parts eig_hi, eig_lo).
Parameters are drawn in float32, everything is computed in float64 from
those values, results rounded once to float32. Deterministic; needs torch
(1.13 tested) and numpy, never at run time.
"""

import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)

SN = torch.nn.utils.parametrizations.spectral_norm


class Block(nn.Module):
    """SAGAN's block, paper form: 1x1 convs (with biases, spectrally
    normalised) to C/8 queries and keys and C values, softmax over the key
    positions without scaling, gamma * o + x."""

    def __init__(self, c):
        super().__init__()
        self.query = SN(nn.Conv2d(c, c // 8, 1))
        self.key = SN(nn.Conv2d(c, c // 8, 1))
        self.value = SN(nn.Conv2d(c, c, 1))
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, c, h, w = x.shape
        q = self.query(x).view(b, -1, h * w)
        k = self.key(x).view(b, -1, h * w)
        v = self.value(x).view(b, c, h * w)
        att = F.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)  # [b, query j, key i]
        o = torch.bmm(v, att.transpose(1, 2)).view(b, c, h, w)
        return self.gamma * o + x


class Generator(nn.Module):
    def __init__(self, z, c, attention):
        super().__init__()
        self.c = c
        self.fc = SN(nn.Linear(z, 2 * c * 49))
        self.bn1 = nn.BatchNorm2d(2 * c)
        self.up1 = SN(nn.ConvTranspose2d(2 * c, c, 4, 2, 1))
        self.bn2 = nn.BatchNorm2d(c)
        self.attn = Block(c) if attention else None
        self.up2 = SN(nn.ConvTranspose2d(c, c // 2, 4, 2, 1))
        self.bn3 = nn.BatchNorm2d(c // 2)
        self.out = SN(nn.Conv2d(c // 2, 1, 3, 1, 1))

    def forward(self, z):
        h = self.fc(z).view(z.shape[0], 2 * self.c, 7, 7)
        h = F.relu(self.bn1(h))
        h = F.relu(self.bn2(self.up1(h)))
        if self.attn is not None:
            h = self.attn(h)
        h = F.relu(self.bn3(self.up2(h)))
        return torch.tanh(self.out(h))


class Discriminator(nn.Module):
    def __init__(self, d, attention):
        super().__init__()
        self.d = d
        self.conv1 = SN(nn.Conv2d(1, d, 4, 2, 1))
        self.attn = Block(d) if attention else None
        self.conv2 = SN(nn.Conv2d(d, 2 * d, 4, 2, 1))
        self.fc = SN(nn.Linear(2 * d * 49, 1))

    def forward(self, x):
        h = F.leaky_relu(self.conv1(x), 0.1)
        if self.attn is not None:
            h = self.attn(h)
        h = F.leaky_relu(self.conv2(h), 0.1)
        return self.fc(h.view(x.shape[0], -1)).view(-1)


def d_hinge(d_real, d_fake):
    return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()


def g_hinge(d_fake):
    return -d_fake.mean()


def learned(module):
    return [(n, p) for n, p in module.named_parameters()]


def state(module):
    """The state_dict without num_batches_tracked."""
    return [(n, t) for n, t in module.state_dict().items() if not n.endswith("num_batches_tracked")]


def buffers(module):
    return [(n, t) for n, t in state(module) if n.endswith("._u") or n.endswith("._v") or "running_" in n]


def f32(rng, shape, lo=-1.0, hi=1.0):
    return torch.tensor(rng.uniform(lo, hi, size=shape).astype(np.float32), dtype=torch.float64)


def gen_case(fx, k, attention):
    rng = fx.rng
    torch.manual_seed(100 + k)
    Z, c, d, B = 4, 8, 8, 2
    G = Generator(Z, c, attention).double()
    D = Discriminator(d, attention).double()
    with torch.no_grad():
        for net in (G, D):
            for name, p in net.named_parameters():
                if name.endswith("gamma"):
                    p.fill_(0.5)  # a block that contributes (gamma starts at 0 in training)
                elif "bn" in name and name.endswith("weight"):
                    p.copy_(f32(rng, tuple(p.shape), 0.5, 1.5))
                else:
                    p.copy_(f32(rng, tuple(p.shape), -0.4, 0.4))
            for name, b in net.named_buffers():
                if name.endswith("running_mean"):
                    b.copy_(f32(rng, tuple(b.shape), -0.3, 0.3))
                elif name.endswith("running_var"):
                    b.copy_(f32(rng, tuple(b.shape), 0.5, 1.5))
    # the power iteration's vectors as torch registers them (15 iterations),
    # on the weights just drawn, then rounded to float32 like everything else
    with torch.no_grad():
        for net in (G, D):
            for mod in net.modules():
                if hasattr(mod, "parametrizations"):
                    sn = mod.parametrizations.weight[0]
                    sn._power_method(sn._reshape_weight_to_matrix(mod.parametrizations.weight.original), 15)
            for name, b in net.named_buffers():
                if name.endswith("._u") or name.endswith("._v"):
                    b.copy_(b.float().double())
    init = {("g", n): t.clone() for n, t in state(G)}
    init.update({("d", n): t.clone() for n, t in state(D)})

    def restore():
        with torch.no_grad():
            for (w, n), t in init.items():
                (G if w == "g" else D).state_dict()[n].copy_(t)
        for net in (G, D):
            net.zero_grad(set_to_none=True)

    z = f32(rng, (B, Z), -2.0, 2.0)
    x = f32(rng, (B, 1, 28, 28))
    p = "c0."  # one case per file
    fx.put(p + "cfg", np.array([Z, c, d, 1 if attention else 0], dtype=np.int32))
    fx.put(p + "z", z.numpy())
    fx.put(p + "x", x.numpy())
    for (w, n), t in init.items():
        fx.put(p + "%s.%s" % (w, n), t.numpy())
    # pass A
    restore()
    G.train()
    D.train()
    fake = G(z)
    dr, df = D(x), D(fake)
    ld = d_hinge(dr, df)
    ld.backward()
    fx.put(p + "A.fake", fake.detach().numpy())
    fx.put(p + "A.d_real", dr.detach().numpy())
    fx.put(p + "A.d_fake", df.detach().numpy())
    fx.put(p + "A.loss_d", np.array([ld.item()]))
    for w, net in (("g", G), ("d", D)):
        for n, t in learned(net):
            fx.put(p + "A.grad.%s.%s" % (w, n), t.grad.numpy())
        for n, t in buffers(net):
            fx.put(p + "A.post.%s.%s" % (w, n), t.numpy())
    # pass B
    restore()
    fake = G(z)
    lg = g_hinge(D(fake))
    lg.backward()
    fx.put(p + "B.loss_g", np.array([lg.item()]))
    for n, t in learned(G):
        fx.put(p + "B.grad.g.%s" % n, t.grad.numpy())
    # pass E
    restore()
    G.eval()
    D.eval()
    with torch.no_grad():
        fx.put(p + "E.fake", G(z).numpy())
        fx.put(p + "E.d_real", D(x).numpy())
    fx.ncases += 1


def split64(v):
    v = np.asarray(v, dtype=np.float64)
    hi = v.astype(np.float32)
    lo = (v - hi.astype(np.float64)).astype(np.float32)
    return hi, lo


def fid_ref(a, b):
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ev = torch.linalg.eigvals(torch.tensor(s1 @ s2)).numpy()
    tr_sqrt = np.sqrt(ev.astype(np.complex128)).real.sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)


def gen_fid(fx):
    rng = fx.rng
    cases = ((300, 200, 16), (120, 150, 7), (400, 400, 32))
    for k, (n1, n2, d) in enumerate(cases):
        ma = rng.normal(size=(d, d)) / np.sqrt(d)
        mb = rng.normal(size=(d, d)) / np.sqrt(d) + 0.5 * ma
        a = (rng.normal(size=(n1, d)) @ ma + rng.normal(size=d)).astype(np.float32)
        b = (rng.normal(size=(n2, d)) @ mb * 1.3 + rng.normal(size=d)).astype(np.float32)
        fx.put("c%d.a" % k, a)
        fx.put("c%d.b" % k, b)
        hi, lo = split64(fid_ref(a, b))
        fx.put("c%d.fid_hi" % k, hi.reshape(1))
        fx.put("c%d.fid_lo" % k, lo.reshape(1))
        m = rng.normal(size=(d, d)).astype(np.float32)
        m = (m + m.T).astype(np.float32)
        hi, lo = split64(np.linalg.eigh(m.astype(np.float64))[0])
        fx.put("c%d.sym" % k, m)
        fx.put("c%d.eig_hi" % k, hi)
        fx.put("c%d.eig_lo" % k, lo)
        fx.ncases += 1


def main(argv):
    if len(argv) != 2:
        print("usage: make_gan_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float64)
    os.makedirs(argv[1], exist_ok=True)
    for k, attention in ((0, False), (1, True)):
        fx = Fixture("gan_c%d" % k)
        gen_case(fx, k, attention)
        data = fx.to_bytes()
        if len(data) > MAX_FILE:
            print("make_gan_fixtures.py: %d bytes, limit %d" % (len(data), MAX_FILE), file=sys.stderr)
            return 1
        with open(os.path.join(argv[1], "gan_c%d.atfx" % k), "wb") as f:
            f.write(data)
        print("%-17s %2d cases %7d bytes" % ("gan_c%d" % k, fx.ncases, len(data)))
    fx = Fixture("gan_fid")
    gen_fid(fx)
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        print("make_gan_fixtures.py: %d bytes, limit %d" % (len(data), MAX_FILE), file=sys.stderr)
        return 1
    with open(os.path.join(argv[1], "gan_fid.atfx"), "wb") as f:
        f.write(data)
    print("%-17s %2d cases %7d bytes" % ("gan_fid", fx.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
