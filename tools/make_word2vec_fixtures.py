#!/usr/bin/env python3
"""make_word2vec_fixtures.py: PyTorch references for one word2vec update
(include/attn/word2vec.h, attn_w2v_update).

    /usr/bin/python3 tools/make_word2vec_fixtures.py tests/fixtures

Writes word2vec.atfx (the ATFX format of tests/fixture.h; the writer is
make_fixtures.py's), read by tests/test_word2vec.c. Per case k:
  c<k>.in, c<k>.out   f32 [V, D]: the input and output vectors before
  c<k>.inputs         i32 [n]: one index (skip-gram) or the context (CBOW)
  c<k>.targets        i32 [1 + neg]: the positive target, then the negatives
                      (distinct, so that the reference's sequential update is
                      exactly one gradient step)
  c<k>.alpha          f32 []: the learning rate
  c<k>.loss           f32 []: L = -log sigma(x . o_t0) - sum_k log sigma(-x . o_tk)
  c<k>.new_in, c<k>.new_out  f32 [V, D]: the vectors after the update

The update is computed with torch autograd from the loss, independently of
the C code: x = in[i] (skip-gram) or x = mean_k in[i_k] (CBOW) is a leaf,
out a leaf; new_out = out - alpha dL/dout; new_in[i_k] = in[i_k] - alpha dL/dx
for every context index (the reference tool adds the error of x to each
context vector undivided, i.e. cw times the exact gradient of the mean:
docs/word2vec.md). Everything in float64 from float32 inputs, rounded once.
Deterministic; needs torch (1.13 tested) and numpy, never at run time.
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)

# (V, D, inputs, targets, alpha)
CASES = [
    (7, 5, [2], [4, 1, 6, 0], 0.05),                   # skip-gram, D below the vector width
    (11, 19, [3], [3, 0, 9, 10, 5, 7], 0.2),           # skip-gram, input = target word's index, ragged D
    (9, 16, [1, 4, 8], [2, 0, 6], 0.1),                # CBOW, context of 3
    (12, 33, [0, 2, 5, 7, 11], [9, 1, 3, 4], 0.025),   # CBOW, context of 5
]


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    os.makedirs(out_dir, exist_ok=True)
    fx = Fixture("word2vec")
    for k, (V, D, inputs, targets, alpha) in enumerate(CASES):
        assert len(set(targets)) == len(targets)
        w_in = (fx.rng.standard_normal((V, D)) * 0.5).astype(np.float32)
        w_out = (fx.rng.standard_normal((V, D)) * 0.5).astype(np.float32)
        alpha32 = np.float32(alpha)
        tin = torch.tensor(w_in.astype(np.float64))
        x = tin[inputs].mean(dim=0).clone().requires_grad_(True)
        tout = torch.tensor(w_out.astype(np.float64), requires_grad=True)
        f = tout[targets] @ x
        loss = -torch.nn.functional.logsigmoid(f[0]) - torch.nn.functional.logsigmoid(-f[1:]).sum()
        loss.backward()
        new_out = (tout - float(alpha32) * tout.grad).detach().numpy()
        new_in = tin.clone().numpy()
        for i in inputs:
            new_in[i] -= float(alpha32) * x.grad.numpy()
        fx.put("c%d.in" % k, w_in)
        fx.put("c%d.out" % k, w_out)
        fx.put("c%d.inputs" % k, np.array(inputs, dtype=np.int32))
        fx.put("c%d.targets" % k, np.array(targets, dtype=np.int32))
        fx.put("c%d.alpha" % k, np.array(alpha32, dtype=np.float32))
        fx.put("c%d.loss" % k, np.array(loss.item(), dtype=np.float32))
        fx.put("c%d.new_in" % k, new_in.astype(np.float32))
        fx.put("c%d.new_out" % k, new_out.astype(np.float32))
        fx.ncases += 1
    data = fx.to_bytes()
    assert len(data) < MAX_FILE
    path = os.path.join(out_dir, "word2vec.atfx")
    with open(path, "wb") as f:
        f.write(data)
    print("wrote %s (%d cases, %d bytes)" % (path, fx.ncases, len(data)))


if __name__ == "__main__":
    main()
