#!/usr/bin/env python3
"""make_cnn_fixtures.py: PyTorch references for the CNN classifier of
include/attn/cnn.h.

    /usr/bin/python3 tools/make_cnn_fixtures.py tests/fixtures

Writes cnn.atfx (the ATFX format of tests/fixture.h; the writer is
make_fixtures.py's), read by tests/test_cnn.c. Per case k:
  c<k>.cfg        i32 [10]: in_channels, n_classes, n_stages, width0, width1,
                  convs_per_stage, attention (0 none, 1 sagan, 2 sagan-code,
                  3 simple), attention_stage, sym, 0
  c<k>.fcfg       f32 [4]: dropout (0), input_mean, input_std, label_smoothing
  c<k>.x          f32 [B, Cin, H, W];  c<k>.y  i32 [B]
  c<k>.param.<name>  every tensor of attn's store in its order (parameters and
                  the BatchNorm running statistics before the step)
  c<k>.logits [B, K], c<k>.loss [1], c<k>.pooled [B, C_last]
  c<k>.grad.<name>  the gradient of the loss for every parameter
  c<k>.after.<stats>  the running statistics after the training-mode forward
  c<k>.eval_logits [B, K]  logits in evaluation mode with the updated statistics

The network is written here from the header's description with torch's
functional ops (conv2d, batch_norm, relu, max_pool2d, mean, linear,
cross_entropy) and the attention blocks of make_vision_attention_fixtures.py
(seed 001's SAGAN code with attn's names mapped as vision_attention.h states,
the BigGAN code's block, seed 001's SimpleSelfAttention), independently of
the C code. Inputs drawn in float32, everything computed in float64, results
rounded once to float32. Deterministic; needs torch (1.13 tested) and numpy,
never at run time.
"""

import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)
from make_vision_attention_fixtures import (  # noqa: E402
    BigGANAttention, SeedSelfAttention, SeedSimpleSelfAttention)

MOMENTUM = 0.1
EPS = 1e-5


def f32(rng, shape, lo=-1.0, hi=1.0):
    return torch.tensor(rng.uniform(lo, hi, size=shape).astype(np.float32), dtype=torch.float64)


def build(rng, cin, K, widths, convs, att, att_stage, sym):
    """attn's store, in order: list of (name, tensor, is_param), and the
    attention module with the names mapped to its tensors."""
    store = []
    prev = cin
    module = None
    for s, w in enumerate(widths):
        for j in range(convs):
            p = "stages.%d.%d." % (s, j)
            store.append((p + "conv.weight", f32(rng, (w, prev, 3, 3), -0.5, 0.5), True))
            store.append((p + "bn.weight", f32(rng, (w,), 0.5, 1.5), True))
            store.append((p + "bn.bias", f32(rng, (w,), -0.3, 0.3), True))
            store.append((p + "bn.running_mean", f32(rng, (w,), -0.2, 0.2), False))
            store.append((p + "bn.running_var", f32(rng, (w,), 0.5, 1.5), False))
            prev = w
        if att and s == att_stage:
            C = w
            if att == 1:
                module = SeedSelfAttention(C).double()
                names = [("query.weight", module.key.weight), ("query.bias", module.key.bias),
                         ("key.weight", module.query.weight), ("key.bias", module.query.bias),
                         ("value.weight", module.value.weight), ("value.bias", module.value.bias)]
            elif att == 2:
                module = BigGANAttention(C).double()
                names = [("query.weight", module.theta.weight), ("key.weight", module.phi.weight),
                         ("value.weight", module.g.weight), ("out.weight", module.o.weight)]
            else:
                module = SeedSimpleSelfAttention(C, sym).double()
                names = [("conv.weight", module.conv.weight)]
            with torch.no_grad():
                for name, t in names:
                    v = f32(rng, tuple(t.shape), -0.4, 0.4)
                    t.copy_(v)
                    shape = list(t.shape)
                    if att == 1 and name.endswith("weight"):
                        shape = shape + [1]  # Conv1d [o, i, 1] -> attn's [o, i, 1, 1]
                    store.append(("attention." + name, (t, shape), True))
                module.gamma.fill_(0.7)
            store.append(("attention.gamma", (module.gamma, [1]), True))
    store.append(("head.weight", f32(rng, (K, prev), -0.5, 0.5), True))
    store.append(("head.bias", f32(rng, (K,), -0.1, 0.1), True))
    return store, module


def tensor_of(entry):
    return entry[0] if isinstance(entry, tuple) else entry


def export(entry):
    t = tensor_of(entry).detach()
    shape = entry[1] if isinstance(entry, tuple) else list(t.shape)
    return t.reshape(shape).numpy()


def export_grad(entry):
    t = tensor_of(entry)
    shape = entry[1] if isinstance(entry, tuple) else list(t.shape)
    return t.grad.reshape(shape).numpy()


def forward(store, module, x, widths, convs, att, att_stage, mean, std, training):
    d = {name: tensor_of(t) for name, t, _ in store}
    h = (x - mean) / std
    S = len(widths)
    for s in range(S):
        for j in range(convs):
            p = "stages.%d.%d." % (s, j)
            h = F.conv2d(h, d[p + "conv.weight"], None, padding=1)
            h = F.batch_norm(h, d[p + "bn.running_mean"], d[p + "bn.running_var"],
                             d[p + "bn.weight"], d[p + "bn.bias"], training, MOMENTUM, EPS)
            h = F.relu(h)
        if s < S - 1:
            h = F.max_pool2d(h, 2)
        if att and s == att_stage:
            h = module(h)
    pooled = h.mean(dim=(2, 3))
    logits = F.linear(pooled, d["head.weight"], d["head.bias"])
    return logits, pooled


def add_case(fx, k, B, cin, H, W, K, widths, convs, att, att_stage, sym, mean, std, smoothing):
    rng = fx.rng
    store, module = build(rng, cin, K, widths, convs, att, att_stage, sym)
    x = f32(rng, (B, cin, H, W), 0.0, 1.0)
    y = rng.integers(0, K, size=B).astype(np.int64)
    fx.put("c%d.cfg" % k, np.array([cin, K, len(widths), widths[0], widths[1] if len(widths) > 1 else 0,
                                    convs, att, att_stage, sym, 0], dtype=np.int32))
    fx.put("c%d.fcfg" % k, np.array([0.0, mean, std, smoothing], dtype=np.float32))
    fx.put("c%d.x" % k, x.numpy())
    fx.put("c%d.y" % k, y.astype(np.int32))
    for name, t, _ in store:
        fx.put("c%d.param.%s" % (k, name), export(t))
    for name, t, is_param in store:
        if is_param:
            tensor_of(t).requires_grad_(True)
    logits, pooled = forward(store, module, x, widths, convs, att, att_stage, mean, std, True)
    loss = F.cross_entropy(logits, torch.tensor(y), label_smoothing=smoothing)
    loss.backward()
    fx.put("c%d.logits" % k, logits.detach().numpy())
    fx.put("c%d.pooled" % k, pooled.detach().numpy())
    fx.put("c%d.loss" % k, np.array([loss.item()]))
    for name, t, is_param in store:
        if is_param:
            fx.put("c%d.grad.%s" % (k, name), export_grad(t))
        else:
            fx.put("c%d.after.%s" % (k, name), export(t))
    with torch.no_grad():
        ev, _ = forward(store, module, x, widths, convs, att, att_stage, mean, std, False)
    fx.put("c%d.eval_logits" % k, ev.numpy())
    fx.ncases += 1


def gen(fx):
    torch.manual_seed(0)
    # 0: plain, two stages, two convs per stage, label smoothing
    add_case(fx, 0, B=3, cin=1, H=8, W=6, K=5, widths=[4, 6], convs=2, att=0, att_stage=0, sym=0,
             mean=0.3, std=0.4, smoothing=0.1)
    # 1: SAGAN (paper form, seed code) after stage 0, two input channels
    add_case(fx, 1, B=2, cin=2, H=8, W=8, K=4, widths=[8, 8], convs=1, att=1, att_stage=0, sym=0,
             mean=0.0, std=1.0, smoothing=0.0)
    # 2: SAGAN (BigGAN code form) after stage 0
    add_case(fx, 2, B=2, cin=1, H=8, W=8, K=3, widths=[8, 4], convs=1, att=2, att_stage=0, sym=0,
             mean=0.5, std=0.5, smoothing=0.0)
    # 3: Simple SA (symmetric W) after the last stage (no pooling after it)
    add_case(fx, 3, B=3, cin=1, H=6, W=6, K=4, widths=[4, 6], convs=1, att=3, att_stage=1, sym=1,
             mean=0.2, std=0.3, smoothing=0.0)


def main(argv):
    if len(argv) != 2:
        print("usage: make_cnn_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float64)
    os.makedirs(argv[1], exist_ok=True)
    fx = Fixture("cnn")
    gen(fx)
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        print("make_cnn_fixtures.py: %d bytes, limit %d" % (len(data), MAX_FILE), file=sys.stderr)
        return 1
    with open(os.path.join(argv[1], "cnn.atfx"), "wb") as f:
        f.write(data)
    print("%-17s %2d cases %7d bytes" % ("cnn", fx.ncases, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
