#!/usr/bin/env python3
"""make_vision_modules_fixtures.py: PyTorch references for
include/attn/vision_modules.h.

    /usr/bin/python3 tools/make_vision_modules_fixtures.py tests/fixtures

Writes vision_modules.atfx (the ATFX format of tests/fixture.h; the writer is
make_fixtures.py's), read by tests/test_vision_modules.c. Per case k:
  c<k>.cfg       i32 [11]: kind (vision_modules.h's order), channels,
                 reduction, kernel, spatial_bn, branches, height, width,
                 heads, key_channels, value_channels
  c<k>.x         f32 [B, C, H, W];  c<k>.grad_out  like the output
  c<k>.param.<name>  every parameter and BatchNorm buffer, attn's names, in
                 the order attn's store holds them
  c<k>.out, c<k>.map (the module's attention map, as the header states),
  c<k>.grad.x, c<k>.grad.<name> (trainable parameters),
  c<k>.after.<name> (BatchNorm running statistics after the training-mode
                 forward)

The modules are written here from the papers, independently of the C code
(docs/vision_modules.md names the conventions each follows):
  - CBAM (Woo et al. 2018) in the layout of the authors' code
    (Jongchan/attention-module): a shared two-layer MLP with biases on the
    average- and max-pooled descriptors; channel-pooled maps concatenated as
    (max, mean), a bias-free kxk convolution, BatchNorm, sigmoid;
  - channel-wise soft attention as ResNeSt's split attention with one
    cardinal group (radix = branches), the branches being SKNet's dilated
    3x3 convolutions with BN and ReLU, and a residual add;
  - the GC block as the paper's Figure 4 (1x1 conv to one channel, softmax
    over positions, conv-LN-ReLU-conv transform, broadcast add), the 1x1
    convolutions on the pooled vector written as Linear layers;
  - CenterMask's SAG mask: (mean, max) maps, a bias-free 3x3 conv, sigmoid;
  - PSANet's collect and distribute maps, cut from the over-complete map by
    an explicit loop over the positions (the paper's definition);
  - attention-augmented convolution with the relative logits computed by
    indexing the embedding tables with each key's offset (einsum), not the
    C code's pad-and-gather.
Training mode (batch statistics) throughout. Inputs drawn in float32,
everything computed in float64 from those values, rounded once to float32.
Deterministic; needs torch (1.13 tested) and numpy, never at run time.
"""

import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)

KINDS = ["channel", "spatial", "cbam", "soft", "gc", "sag", "psa", "aaconv"]


class ChannelGate(nn.Module):
    def __init__(self, C, Ch):
        super().__init__()
        self.fc1 = nn.Linear(C, Ch)
        self.fc2 = nn.Linear(Ch, C)

    def forward(self, x):
        avg = F.avg_pool2d(x, x.shape[2:]).flatten(1)
        mx = F.max_pool2d(x, x.shape[2:]).flatten(1)
        att = self.fc2(F.relu(self.fc1(avg))) + self.fc2(F.relu(self.fc1(mx)))
        self.map = torch.sigmoid(att)[:, :, None, None]
        return x * self.map


class SpatialGate(nn.Module):
    def __init__(self, k, bn):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, k, padding=k // 2, bias=not bn)
        self.bn = nn.BatchNorm2d(1) if bn else None

    def forward(self, x):
        s = self.conv(torch.cat([x.max(1, keepdim=True)[0], x.mean(1, keepdim=True)], 1))
        if self.bn is not None:
            s = self.bn(s)
        self.map = torch.sigmoid(s)
        return x * self.map


class CBAM(nn.Module):
    def __init__(self, C, Ch, k, bn, channel=True, spatial=True):
        super().__init__()
        self.channel = ChannelGate(C, Ch) if channel else None
        self.spatial = SpatialGate(k, bn) if spatial else None

    def forward(self, x):
        if self.channel is not None:
            x = self.channel(x)
            self.map = self.channel.map
        if self.spatial is not None:
            x = self.spatial(x)
            self.map = self.spatial.map
        return x


class Branch(nn.Module):
    def __init__(self, C, d):
        super().__init__()
        self.conv = nn.Conv2d(C, C, 3, padding=d, dilation=d, bias=False)
        self.bn = nn.BatchNorm2d(C)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class SoftAttention(nn.Module):
    def __init__(self, C, Ch, K):
        super().__init__()
        for k in range(K):
            setattr(self, "branch%d" % k, Branch(C, k + 1))
        self.K = K
        self.fc1 = nn.Linear(C, Ch)
        self.bn = nn.BatchNorm1d(Ch)
        self.fc2 = nn.Linear(Ch, K * C)

    def forward(self, x):
        B, C = x.shape[:2]
        u = [getattr(self, "branch%d" % k)(x) for k in range(self.K)]
        s = sum(u).mean((2, 3))
        z = F.relu(self.bn(self.fc1(s)))
        a = F.softmax(self.fc2(z).view(B, self.K, C), dim=1)  # ResNeSt's rSoftMax, radix first
        self.map = a
        return x + sum(a[:, k, :, None, None] * u[k] for k in range(self.K))


class GlobalContext(nn.Module):
    def __init__(self, C, Ch):
        super().__init__()
        self.mask = nn.Conv2d(C, 1, 1)
        self.fc1 = nn.Linear(C, Ch)
        self.ln = nn.LayerNorm(Ch)
        self.fc2 = nn.Linear(Ch, C)

    def forward(self, x):
        B, C, H, W = x.shape
        p = F.softmax(self.mask(x).view(B, 1, H * W), dim=-1)
        ctx = torch.bmm(x.view(B, C, H * W), p.transpose(1, 2)).view(B, C)
        t = self.fc2(F.relu(self.ln(self.fc1(ctx))))
        self.map = p.view(B, 1, H, W)
        return x + t[:, :, None, None]


class SAG(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, k, padding=k // 2, bias=False)

    def forward(self, x):
        self.map = torch.sigmoid(
            self.conv(torch.cat([x.mean(1, keepdim=True), x.max(1, keepdim=True)[0]], 1)))
        return x * self.map


class PSABranch(nn.Module):
    def __init__(self, C, Ch, H, W):
        super().__init__()
        self.reduce = nn.Conv2d(C, Ch, 1, bias=False)
        self.reduce_bn = nn.BatchNorm2d(Ch)
        self.att = nn.Conv2d(Ch, Ch, 1, bias=False)
        self.att_bn = nn.BatchNorm2d(Ch)
        self.map = nn.Conv2d(Ch, (2 * H - 1) * (2 * W - 1), 1)


class PSA(nn.Module):
    def __init__(self, C, Ch, H, W):
        super().__init__()
        self.collect = PSABranch(C, Ch, H, W)
        self.distribute = PSABranch(C, Ch, H, W)
        self.proj = nn.Conv2d(2 * Ch, C, 1, bias=False)
        self.proj_bn = nn.BatchNorm2d(C)

    @staticmethod
    def weights(over, H, W, distribute):
        """a[b, i, j]: collect: position i's map at j's offset from i;
        distribute: position j's map at i's offset from j."""
        B, N = over.shape[0], H * W
        a = over.new_zeros(B, N, N)
        for i in range(N):
            hi, wi = divmod(i, W)
            for j in range(N):
                hj, wj = divmod(j, W)
                if distribute:
                    a[:, i, j] = over[:, (hi - hj + H - 1) * (2 * W - 1) + (wi - wj + W - 1), hj, wj]
                else:
                    a[:, i, j] = over[:, (hj - hi + H - 1) * (2 * W - 1) + (wj - wi + W - 1), hi, wi]
        return a

    def forward(self, x):
        B, C, H, W = x.shape
        zs = []
        for d, br in enumerate((self.collect, self.distribute)):
            r = F.relu(br.reduce_bn(br.reduce(x)))
            over = br.map(F.relu(br.att_bn(br.att(r))))
            a = self.weights(over, H, W, d)  # [B, i, j]
            if d == 0:
                self.map = a
            z = torch.einsum("bij,bcj->bci", a, r.flatten(2)) / (H * W)
            zs.append(z.view(B, -1, H, W))
        return x + F.relu(self.proj_bn(self.proj(torch.cat(zs, 1))))


class AAConv(nn.Module):
    def __init__(self, C, H, W, heads, dk, dv):
        super().__init__()
        self.conv = nn.Conv2d(C, C - dv, 3, padding=1)
        self.qkv = nn.Conv2d(C, 2 * dk + dv, 1)
        self.out = nn.Conv2d(dv, dv, 1)
        dkh = dk // heads
        self.rel_w = nn.Parameter(torch.randn(2 * W - 1, dkh))
        self.rel_h = nn.Parameter(torch.randn(2 * H - 1, dkh))
        self.heads, self.dk, self.dv = heads, dk, dv

    def forward(self, x):
        B, C, H, W = x.shape
        Nh, dk, dv = self.heads, self.dk, self.dv
        dkh, dvh = dk // Nh, dv // Nh
        q, k, v = torch.split(self.qkv(x), [dk, dk, dv], 1)
        q = q.reshape(B, Nh, dkh, H, W) * dkh ** -0.5
        k = k.reshape(B, Nh, dkh, H, W)
        v = v.reshape(B, Nh, dvh, H * W)
        logits = torch.einsum("bndhw,bndxy->bnhwxy", q, k)
        iw = torch.arange(W)[None, :] - torch.arange(W)[:, None] + W - 1  # [w, y]
        ih = torch.arange(H)[None, :] - torch.arange(H)[:, None] + H - 1  # [h, x]
        relw = torch.einsum("bndhw,wyd->bnhwy", q, self.rel_w[iw])
        relh = torch.einsum("bndhw,hxd->bnhwx", q, self.rel_h[ih])
        logits = logits + relw[:, :, :, :, None, :] + relh[:, :, :, :, :, None]
        p = F.softmax(logits.reshape(B, Nh, H * W, H * W), dim=-1)
        self.map = p[:, 0]
        o = torch.einsum("bnij,bndj->bndi", p, v).reshape(B, dv, H, W)
        return torch.cat([self.conv(x), self.out(o)], 1)


def f32(rng, shape, lo=-1.0, hi=1.0):
    return torch.tensor(rng.uniform(lo, hi, size=shape).astype(np.float32), dtype=torch.float64)


def attn_order(names):
    """The store's order: aaconv's tables come after its convolutions."""
    return sorted(names, key=lambda n: n.startswith("rel_"))


def add_case(fx, k, cfg, module, xshape):
    rng = fx.rng
    module = module.double().train()
    sd = module.state_dict()
    names = attn_order([n for n in sd if not n.endswith("num_batches_tracked")])
    with torch.no_grad():
        for n in names:
            t = sd[n]
            if n.endswith("running_mean"):
                t.copy_(f32(rng, tuple(t.shape), -0.2, 0.2))
            elif n.endswith("running_var"):
                t.copy_(f32(rng, tuple(t.shape), 0.5, 1.5))
            elif (".bn." in n or "_bn." in n or n.startswith("bn.") or n.startswith("ln.")) \
                    and n.endswith("weight"):
                t.copy_(f32(rng, tuple(t.shape), 0.5, 1.5))
            else:
                t.copy_(f32(rng, tuple(t.shape), -0.6, 0.6))
    before = {n: sd[n].clone() for n in names}
    x = f32(rng, xshape).requires_grad_(True)
    y = module(x)
    go = f32(rng, tuple(y.shape))
    (y * go).sum().backward()
    fx.put("c%d.cfg" % k, np.array(cfg, dtype=np.int32))
    fx.put("c%d.x" % k, x.detach().numpy())
    fx.put("c%d.grad_out" % k, go.numpy())
    for n in names:
        fx.put("c%d.param.%s" % (k, n), before[n].numpy())
    fx.put("c%d.out" % k, y.detach().numpy())
    fx.put("c%d.map" % k, module.map.detach().numpy())
    fx.put("c%d.grad.x" % k, x.grad.numpy())
    params = dict(module.named_parameters())
    for n in names:
        if n in params:
            fx.put("c%d.grad.%s" % (k, n), params[n].grad.numpy())
        else:
            fx.put("c%d.after.%s" % (k, n), sd[n].numpy())
    fx.ncases += 1


def cfg(kind, C, reduction=0, kernel=0, bn=0, branches=0, H=0, W=0, heads=0, dk=0, dv=0):
    return [KINDS.index(kind), C, reduction, kernel, bn, branches, H, W, heads, dk, dv]


def gen(fx):
    torch.manual_seed(0)
    hid = lambda C, r: max(1, C // r)  # noqa: E731
    add_case(fx, 0, cfg("channel", 8, 4), CBAM(8, hid(8, 4), 7, 1, spatial=False), (3, 8, 5, 4))
    add_case(fx, 1, cfg("spatial", 6, kernel=7, bn=1), CBAM(6, 1, 7, 1, channel=False), (3, 6, 5, 6))
    add_case(fx, 2, cfg("spatial", 6, kernel=3, bn=0), CBAM(6, 1, 3, 0, channel=False), (2, 6, 4, 7))
    add_case(fx, 3, cfg("cbam", 8, 2, 7, 1), CBAM(8, hid(8, 2), 7, 1), (2, 8, 6, 5))
    add_case(fx, 4, cfg("soft", 6, 2, branches=2), SoftAttention(6, hid(6, 2), 2), (3, 6, 5, 5))
    add_case(fx, 5, cfg("soft", 4, 1, branches=3), SoftAttention(4, 4, 3), (4, 4, 7, 3))
    add_case(fx, 6, cfg("gc", 8, 4), GlobalContext(8, hid(8, 4)), (2, 8, 5, 6))
    add_case(fx, 7, cfg("sag", 5, kernel=3), SAG(3), (2, 5, 6, 4))
    add_case(fx, 8, cfg("psa", 6, 2, H=4, W=5), PSA(6, hid(6, 2), 4, 5), (3, 6, 4, 5))
    add_case(fx, 9, cfg("aaconv", 8, H=3, W=5, heads=2, dk=4, dv=4), AAConv(8, 3, 5, 2, 4, 4),
             (2, 8, 3, 5))


def main(argv):
    if len(argv) != 2:
        print("usage: make_vision_modules_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float64)
    os.makedirs(argv[1], exist_ok=True)
    fx = Fixture("vision_modules")
    gen(fx)
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        print("make_vision_modules_fixtures.py: %d bytes, limit %d" % (len(data), MAX_FILE),
              file=sys.stderr)
        return 1
    with open(os.path.join(argv[1], "vision_modules.atfx"), "wb") as f:
        f.write(data)
    print("%-17s %2d cases %7d bytes" % ("vision_modules", fx.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
