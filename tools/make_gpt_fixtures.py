#!/usr/bin/env python3
"""make_gpt_fixtures.py: the model-level PyTorch reference of the GPT of
include/attn/gpt.h (tests/test_gpt.c), in the manner of llm.c's reference
state: weights, a batch, logits, loss, every parameter gradient and the loss
trajectory of 10 AdamW steps.

    /usr/bin/python3 tools/make_gpt_fixtures.py tests/fixtures

Writes, per case k (k = 0, 1; one file each, to stay under the fixture size
limit):

  tests/fixtures/gpt_c<k>.safetensors   the initial weights under attn's names
                                        (the file attn_gpt_load reads)
  tests/fixtures/gpt_c<k>.atfx          (tests/fixture.h), one case, names "c0.":
      label         text
      cfg           i32 [10]: vocab, ctx, layers, heads, d_model, d_ff,
                    tied (1: the head is tok_emb.weight), B, T, steps
      optim         f32 [5]: AdamW lr, beta1, beta2, eps, weight_decay
      inputs        i32 [B, T]   token ids
      targets       i32 [B, T]   the next tokens
      logits        f32 [B, T, V]
      loss          f32 scalar   mean cross-entropy over the B T targets
      grad.<name>   the loss's gradient of every parameter
      losses        f32 [steps]  loss before each of `steps` AdamW steps on
                                 the same batch (losses[0] == loss)

The cases: 0: V 60, ctx 16, 2 layers, 4 heads, d_model 32, d_ff 64, a tied
head, B 4, T = ctx = 16; 1: the same with 2 heads, d_model 24, d_ff 48, an
untied head, B 3, T = 11 < ctx (so only the first 11 rows of pos_emb get a
gradient).
Weights follow GPT-2's initialisation (gpt_torch_model.py) with a larger
std (0.2 instead of 0.02, biases and LayerNorm affine drawn too), so that
logits and gradients are far from zero and from uniform: a wrong term cannot
hide under the tolerance.

Oracle precision as make_fixtures.py: weights and data drawn in float32, the
model and the optimizer run in float64 on those values, results rounded once
to float32. Dropout 0. Deterministic; needs torch (1.13 tested) and numpy,
never at run time.
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)
from gpt_torch_model import GPT, save_safetensors  # noqa: E402

CASES = [
    # label, V, ctx, L, H, E, F, tied, B, T
    ("tied head, 4 heads, T = ctx", 60, 16, 2, 4, 32, 64, 1, 4, 16),
    ("untied head, 2 heads, T < ctx", 60, 16, 2, 2, 24, 48, 0, 3, 11),
]
STEPS = 10
OPTIM = dict(lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)


def gen_case(fx, out_dir, k, label, V, ctx, L, H, E, Fd, tied, B, T):
    p = "c0."
    torch.manual_seed(1000 + k)
    model = GPT(V, ctx, L, H, E, Fd, tied=bool(tied))
    named = []
    for name, prm in model.named_parameters():
        if "norm" in name and name.endswith("weight"):
            v = 1.0 + fx.normal(*prm.shape, scale=0.1)
        else:
            v = fx.normal(*prm.shape, scale=0.2)
        named.append((name, v))
        with torch.no_grad():
            prm.copy_(torch.from_numpy(v))
    save_safetensors(os.path.join(out_dir, "gpt_c%d.safetensors" % k), named,
                     {"format": "attn-gpt-fixture", "case": str(k)})
    model = model.double()
    ids = fx.ints(ATTN_SPECIALS, V, B, T + 1)
    inputs, targets = ids[:, :T], ids[:, 1:]
    fx.text(p + "label", label)
    fx.put(p + "cfg", np.array([V, ctx, L, H, E, Fd, tied, B, T, STEPS], np.int32))
    fx.put(p + "optim", np.array([OPTIM["lr"], OPTIM["betas"][0], OPTIM["betas"][1],
                                  OPTIM["eps"], OPTIM["weight_decay"]], np.float32))
    fx.put(p + "inputs", inputs)
    fx.put(p + "targets", targets)

    x = torch.from_numpy(inputs.astype(np.int64))
    y = torch.from_numpy(targets.astype(np.int64))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), **OPTIM)
    losses = []
    for step in range(STEPS):
        opt.zero_grad()
        logits, loss = model(x, y)
        loss.backward()
        if step == 0:
            fx.put(p + "logits", logits.detach().numpy())
            fx.put(p + "loss", np.array(loss.item(), np.float32))
            for name, prm in model.named_parameters():
                fx.put(p + "grad." + name, prm.grad.numpy())
        losses.append(loss.item())
        opt.step()
    fx.put(p + "losses", np.array(losses, np.float32))
    fx.ncases += 1
    print("  case %d %-32s loss %.6f -> %.6f" % (k, label, losses[0], losses[-1]))


ATTN_SPECIALS = 4  # ids 0-3 are <pad> <bos> <eos> <unk> in attn's vocabularies


def main(argv):
    out_dir = argv[1] if len(argv) > 1 else "tests/fixtures"
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    for k, c in enumerate(CASES):
        name = "gpt_c%d" % k
        fx = Fixture(name)
        gen_case(fx, out_dir, k, *c)
        data = fx.to_bytes()
        if len(data) > MAX_FILE:
            raise SystemExit("%s: %d bytes exceeds %d" % (name, len(data), MAX_FILE))
        with open(os.path.join(out_dir, name + ".atfx"), "wb") as f:
            f.write(data)
        print("%-17s %2d cases %7d bytes" % (name, fx.ncases, len(data)))


if __name__ == "__main__":
    main(sys.argv)
