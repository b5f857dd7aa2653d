#!/usr/bin/env python3
"""make_optim_fixtures.py: PyTorch references for the optimizer and the
safetensors tests.

    /usr/bin/python3 tools/make_optim_fixtures.py tests/fixtures

Writes, in the ATFX format of tests/fixture.h:

  optim_sgd.atfx           SGD, momentum 0.9, weight decay, nesterov off
  optim_sgd_nesterov.atfx  the same with nesterov on
  optim_adam.atfx          Adam with (L2) weight decay
  optim_adamw.atfx         AdamW (decoupled weight decay), a different lr
                           at every step (the schedule path of
                           attn_optim_step's lr argument)
  optim_clip.atfx          torch.nn.utils.clip_grad_norm_ on two gradients

and, by hand following the safetensors specification (the `safetensors`
package is not needed), torch_params.safetensors: F32, BF16, F16 and I64
tensors and string metadata, laid out as the reference writer does it
(checked against safetensors 0.8.0's safetensors.torch.save: the same bytes
except the order of the metadata keys, which that writer takes from a hash
map).

Optimizer files hold two parameters of ragged shapes ([3, 5] and [7]):
  hp.<name>        f32 scalars: lr, momentum, nesterov, weight_decay, beta1,
                   beta2, eps (those that apply), steps
  hp.lr_steps      f32 [steps]: the lr of each step
  p<i>.init        the initial value
  p<i>.grad        f32 [steps, *shape]: the gradient fed at each step
  p<i>.traj        f32 [steps, *shape]: the parameter after each step
  p<i>.<state>     the state after the last step (momentum_buffer, or
                   exp_avg and exp_avg_sq)
Clip file, per case k: c<k>.g0, c<k>.g1, c<k>.max_norm, c<k>.norm (torch's
returned total norm), c<k>.out.g0, c<k>.out.g1 (the clipped gradients);
n_cases.

Every hyperparameter is a float32 value (rounded here first), so that
Python's double arithmetic on them (1 - beta, beta ** t, 1 - lr * wd) sees
exactly the floats the C optimizer holds; what remains between the two is
float32 rounding order only. torch runs the single-tensor (foreach=False)
code paths in float32. Deterministic (fixed seeds); needs torch (1.13 tested)
and numpy, never at run time.
"""

import json
import os
import struct
import sys
import zlib

import numpy as np
import torch

SEED = 20240611
VERSION = 1
DT_F32, DT_I32 = 0, 2
STEPS = 10
SHAPES = [(3, 5), (7,)]


def f32(x):
    """The float32 value nearest x, as a Python float."""
    return float(np.float32(x))


class Atfx:
    def __init__(self, name):
        self.seed = (SEED + zlib.crc32(name.encode())) & 0xFFFFFFFFFFFFFFFF
        self.rng = np.random.default_rng(self.seed)
        self.tensors = []
        self.names = set()

    def put(self, name, arr):
        assert name not in self.names, name
        self.names.add(name)
        arr = np.asarray(arr)
        if arr.dtype.kind == "f":
            assert np.all(np.isfinite(arr)), name
            arr, dt = arr.astype("<f4"), DT_F32
        else:
            arr, dt = arr.astype("<i4"), DT_I32
        self.tensors.append((name, dt, arr.shape, np.ascontiguousarray(arr).tobytes()))

    def to_bytes(self):
        out = [b"ATFX", struct.pack("<IIQ", VERSION, len(self.tensors), self.seed)]
        for name, dt, shape, data in self.tensors:
            nb = name.encode()
            out.append(struct.pack("<I", len(nb)) + nb)
            out.append(struct.pack("<II", dt, len(shape)))
            out.append(struct.pack("<%dq" % len(shape), *shape))
            out.append(data)
        return b"".join(out)


def optim_case(name, kind, hp, lr_steps=None):
    fx = Atfx(name)
    torch.manual_seed(fx.seed & 0x7FFFFFFF)
    lr_steps = lr_steps or [hp["lr"]] * STEPS
    lr_steps = [f32(v) for v in lr_steps]
    for k, v in hp.items():
        fx.put("hp." + k, np.float32(v))
    fx.put("hp.steps", np.float32(STEPS))
    fx.put("hp.lr_steps", np.array(lr_steps, dtype=np.float32))

    params = []
    for i, shape in enumerate(SHAPES):
        init = fx.rng.standard_normal(shape).astype(np.float32)
        fx.put("p%d.init" % i, init)
        params.append(torch.nn.Parameter(torch.from_numpy(init.copy())))
    # Gradients of varying scale per step, some exact zeros (a dead unit).
    grads = []
    for i, shape in enumerate(SHAPES):
        scale = np.array([0.5, 2.0, 1.0, 0.1, 3.0, 1.0, 0.7, 1.5, 0.05, 1.0][:STEPS],
                         dtype=np.float32).reshape((STEPS,) + (1,) * len(shape))
        g = (fx.rng.standard_normal((STEPS,) + shape) * scale).astype(np.float32)
        g.reshape(STEPS, -1)[:, 0] = 0.0
        fx.put("p%d.grad" % i, g)
        grads.append(g)

    if kind == "sgd":
        opt = torch.optim.SGD(params, lr=hp["lr"], momentum=hp["momentum"],
                              weight_decay=hp["weight_decay"], nesterov=bool(hp["nesterov"]),
                              foreach=False)
    elif kind == "adam":
        opt = torch.optim.Adam(params, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]),
                               eps=hp["eps"], weight_decay=hp["weight_decay"], foreach=False)
    else:
        opt = torch.optim.AdamW(params, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]),
                                eps=hp["eps"], weight_decay=hp["weight_decay"], foreach=False)
    traj = [np.zeros((STEPS,) + s, dtype=np.float32) for s in SHAPES]
    for t in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = lr_steps[t]
        for i, p in enumerate(params):
            p.grad = torch.from_numpy(grads[i][t].copy())
        opt.step()
        for i, p in enumerate(params):
            traj[i][t] = p.detach().numpy()
    for i, p in enumerate(params):
        fx.put("p%d.traj" % i, traj[i])
        for key, val in opt.state[p].items():
            if key != "step" and val is not None:
                fx.put("p%d.%s" % (i, key), val.detach().numpy())
    return fx


def clip_cases():
    fx = Atfx("optim_clip")
    cases = [(1.0, 1.0), (5.0, 100.0), (0.25, 0.5)]  # (max_norm, gradient scale)
    for k, (max_norm, scale) in enumerate(cases):
        g0 = (fx.rng.standard_normal((4, 6)) * scale).astype(np.float32)
        g1 = (fx.rng.standard_normal((5,)) * scale).astype(np.float32)
        ps = [torch.nn.Parameter(torch.zeros(4, 6)), torch.nn.Parameter(torch.zeros(5))]
        ps[0].grad = torch.from_numpy(g0.copy())
        ps[1].grad = torch.from_numpy(g1.copy())
        norm = torch.nn.utils.clip_grad_norm_(ps, f32(max_norm))
        fx.put("c%d.g0" % k, g0)
        fx.put("c%d.g1" % k, g1)
        fx.put("c%d.max_norm" % k, np.float32(max_norm))
        fx.put("c%d.norm" % k, np.float32(norm.item()))
        fx.put("c%d.out.g0" % k, ps[0].grad.numpy())
        fx.put("c%d.out.g1" % k, ps[1].grad.numpy())
    fx.put("n_cases", np.array(len(cases), dtype=np.int32))
    return fx


# ---------------------------------------------------------------------------
# safetensors, by hand (https://github.com/huggingface/safetensors, "Format")

ST_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16",
             torch.int64: "I64"}


def safetensors_bytes(tensors, metadata):
    """The layout of safetensors.torch.save_file(tensors, metadata=metadata):
    tensors sorted by dtype (here: by element size, largest first, which
    orders these dtypes as the reference does) then name, data back to back
    in that order, a compact JSON header with __metadata__ first (keys in
    insertion order), padded with spaces to a multiple of 8."""
    order = sorted(tensors, key=lambda n: (-tensors[n].element_size(), n))
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in order:
        t = tensors[name].contiguous()
        raw = t.view(torch.uint8).numpy().tobytes() if t.dim() else \
            t.reshape(1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def safetensors_fixture():
    """Values are exact in their dtype, so the C test knows them in closed
    form (tests/test_safetensors.c, test_torch_file): element i of
      layer.weight  F32  [3, 5]  (i - 7) / 4
      layer.bias    F32  [5]     i / 8 + 100
      scale         F32  []      0.5
      emb.weight    BF16 [4, 3]  (i - 6) * 2^(i - 6)
      head.weight   F16  [2, 3]  1.5, -0.0, 65504, 2^-24 (subnormal), -2^-14, 0.25
      position_ids  I64  [1, 6]  i"""
    i15 = torch.arange(15, dtype=torch.float32)
    i12 = torch.arange(12, dtype=torch.float64)
    tensors = {
        "layer.weight": ((i15 - 7) / 4).reshape(3, 5),
        "layer.bias": torch.arange(5, dtype=torch.float32) / 8 + 100,
        "scale": torch.tensor(0.5, dtype=torch.float32),
        "emb.weight": ((i12 - 6) * torch.pow(2.0, i12 - 6)).to(torch.bfloat16).reshape(4, 3),
        "head.weight": torch.tensor([1.5, -0.0, 65504.0, 2.0 ** -24, -(2.0 ** -14), 0.25],
                                    dtype=torch.float16).reshape(2, 3),
        "position_ids": torch.arange(6, dtype=torch.int64).reshape(1, 6),
    }
    assert float(tensors["emb.weight"].float()[3, 2]) == 5 * 2.0 ** 5
    metadata = {"format": "pt", "source": "attn tools/make_optim_fixtures.py",
                "note": "caf\u00e9 \u2713 \"quoted\""}
    return safetensors_bytes(tensors, metadata)


def main(argv):
    if len(argv) != 2:
        print("usage: make_optim_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_default_dtype(torch.float32)
    wd = f32(0.01)
    fixtures = {
        "optim_sgd": optim_case("optim_sgd", "sgd", {
            "lr": f32(0.05), "momentum": f32(0.9), "nesterov": 0, "weight_decay": wd}),
        "optim_sgd_nesterov": optim_case("optim_sgd_nesterov", "sgd", {
            "lr": f32(0.05), "momentum": f32(0.9), "nesterov": 1, "weight_decay": wd}),
        "optim_adam": optim_case("optim_adam", "adam", {
            "lr": f32(0.01), "beta1": f32(0.9), "beta2": f32(0.999), "eps": f32(1e-8),
            "weight_decay": f32(0.1)}),
        "optim_adamw": optim_case("optim_adamw", "adamw", {
            "lr": f32(0.01), "beta1": f32(0.8), "beta2": f32(0.99), "eps": f32(1e-6),
            "weight_decay": f32(0.1)},
            lr_steps=[0.002, 0.004, 0.006, 0.008, 0.01, 0.009, 0.007, 0.005, 0.003, 0.001]),
        "optim_clip": clip_cases(),
    }
    for name, fx in fixtures.items():
        data = fx.to_bytes()
        with open(os.path.join(outdir, name + ".atfx"), "wb") as f:
            f.write(data)
        print("%-20s %6d bytes" % (name + ".atfx", len(data)))
    data = safetensors_fixture()
    with open(os.path.join(outdir, "torch_params.safetensors"), "wb") as f:
        f.write(data)
    print("%-20s %6d bytes" % ("torch_params.safetensors", len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
