#!/usr/bin/env python3
"""gpt_torch.py: the GPT of `attn gpt train` trained in PyTorch, for the
comparison of docs/gpt.md (validation bits per character within 2%, and the
throughput ratio).

    /opt/torch2/bin/python bench/gpt_torch.py --steps 2000 --threads 1 [options]
    (or /usr/bin/python3 with torch 1.13)

The same as attn's run with the same options:
  - model: tools/gpt_torch_model.py (torch.nn.TransformerEncoderLayer blocks,
    pre-LN, GELU, learned positions, tied head, GPT-2 initialisation drawn
    from torch's generator: the same distribution, not the same numbers);
  - data: data/fortunes/{train,valid}.txt, the character vocabulary of
    include/attn/text.h (ids 0-3 the specials, then the code points of
    train.txt in increasing order), so the token streams are attn's;
  - batches: the window rule of include/attn/lm_data.h (SplitMix64 of
    (seed, step, row)), so both runs read the same windows in the same order;
  - optimizer: AdamW (betas 0.9, 0.95, eps 1e-8, decoupled weight decay on
    every parameter), gradient clipping at norm 1, linear warmup then cosine
    to min_lr (attn_lr_warmup_cosine's formula);
  - evaluation: consecutive windows of ctx tokens over the whole validation
    stream; loss in nats per token, bits per character.
Prints one JSON object. Tokens per second count training steps only (wall
clock, and per CPU second of the process, which is the fairer figure on a
shared machine when both runs use one thread).
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from gpt_torch_model import GPT, window_starts  # noqa: E402

SPECIALS = 4


def lr_at(step, warmup, total, lr_max, lr_min):
    if step < warmup:
        return lr_max * step / warmup
    if step >= total:
        return lr_min
    q = (step - warmup) / (total - warmup)
    return lr_min + (lr_max - lr_min) * 0.5 * (1.0 + math.cos(math.pi * q))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data/fortunes")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--d-ff", type=int, default=0)
    ap.add_argument("--ctx", type=int, default=64)
    ap.add_argument("--untied", action="store_true")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=-1.0)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-eval", action="store_true",
                    help="skip the validation pass (speed runs: bench/bench_gpt.sh)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    min_lr = a.min_lr if a.min_lr >= 0 else a.lr / 10

    train = open(os.path.join(a.data, "train.txt"), encoding="utf-8").read()
    valid = open(os.path.join(a.data, "valid.txt"), encoding="utf-8").read()
    alphabet = sorted(set(train))
    ids = {c: SPECIALS + i for i, c in enumerate(alphabet)}
    V = SPECIALS + len(alphabet)
    tr = np.array([ids[c] for c in train], dtype=np.int64)
    va = np.array([ids.get(c, 3) for c in valid], dtype=np.int64)
    T, B = a.ctx, a.batch

    model = GPT(V, T, a.layers, a.heads, a.d_model, a.d_ff or 4 * a.d_model, tied=not a.untied)
    gen = torch.Generator().manual_seed(a.seed)
    model.init_gpt2(gen)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=a.weight_decay)
    offs = np.arange(T + 1)
    model.train()
    train_s = train_cpu = 0.0
    for step in range(a.steps):
        starts = window_starts(a.seed, step, B, len(tr), T)
        win = torch.from_numpy(tr[starts[:, None] + offs[None, :]])
        t0, c0 = time.perf_counter(), time.process_time()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.warmup, a.steps, a.lr, min_lr)
        opt.zero_grad(set_to_none=True)
        _, loss = model(win[:, :T], win[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        train_s += time.perf_counter() - t0
        train_cpu += time.process_time() - c0

    model.eval()
    nw = (len(va) - 1) // T
    nats, n = 0.0, 0
    t0 = time.perf_counter()
    with torch.no_grad():
        for w in range(0, 0 if a.no_eval else nw, B):
            rows = min(B, nw - w)
            x = torch.from_numpy(np.stack([va[(w + r) * T:(w + r) * T + T + 1] for r in range(rows)]))
            logits, _ = model(x[:, :T])
            nats += F.cross_entropy(logits.reshape(-1, V), x[:, 1:].reshape(-1), reduction="sum").item()
            n += rows * T
    eval_s = time.perf_counter() - t0
    print(json.dumps({
        "framework": "pytorch " + torch.__version__, "threads": a.threads, "steps": a.steps,
        "parameters": sum(p.numel() for p in model.parameters()), "vocab": V,
        "valid_loss": nats / n if n else None,
        "valid_bpc": nats / n / math.log(2) if n else None, "valid_tokens": n,
        "train_seconds": train_s, "tokens_per_s": a.steps * B * T / train_s,
        "train_cpu_seconds": train_cpu, "tokens_per_cpu_s": a.steps * B * T / train_cpu,
        "eval_seconds": eval_s}))


if __name__ == "__main__":
    main()
