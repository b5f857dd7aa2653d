#!/usr/bin/env python3
"""conv_torch.py: torch.nn.functional on the layer shapes of bench_conv.c, on
1 thread (or --threads N): forward alone (no_grad) and forward + backward
(upstream gradient of ones), median of the timed runs after one warm-up.

    /usr/bin/python3 bench/conv_torch.py [--runs N] [--threads N] [--quick] [--cpu-time] [--layer I]

--cpu-time times with the process CPU clock (as bench_conv --cpu-time), for
a machine whose cores other work shares.
"""
import argparse
import time

import torch
import torch.nn.functional as F

# kind, N, C, H, W, O, KH, KW, stride, padding, dilation, groups, causal, note
LAYERS = [
    ("conv2d", 64, 1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 0, "CNN conv1 (Fashion-MNIST 28x28)"),
    ("conv2d", 64, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 0, "CNN conv2 (14x14)"),
    ("conv2d", 64, 64, 7, 7, 128, 3, 3, 1, 1, 1, 1, 0, "CNN conv3 (7x7)"),
    ("conv2d", 64, 64, 14, 14, 8, 1, 1, 1, 0, 1, 1, 0, "SAGAN query/key 1x1 (C/8)"),
    ("conv2d", 64, 64, 14, 14, 64, 1, 1, 1, 0, 1, 1, 0, "SAGAN value 1x1"),
    ("conv2d", 64, 64, 28, 28, 64, 4, 4, 2, 1, 1, 1, 0, "discriminator 4x4 stride 2"),
    ("convt2d", 64, 128, 7, 7, 64, 4, 4, 2, 1, 1, 1, 0, "generator up 7->14 (transposed)"),
    ("convt2d", 64, 64, 14, 14, 1, 4, 4, 2, 1, 1, 1, 0, "generator up 14->28 (transposed)"),
    ("conv2d", 64, 64, 14, 14, 64, 3, 3, 1, 1, 1, 64, 0, "depthwise 3x3"),
    ("conv1d", 16, 64, 1, 256, 64, 1, 2, 1, 0, 4, 1, 1, "WaveNet causal conv1d K=2 dilation 4"),
]


def op(L, x, w, b):
    kind, _, _, _, _, _, _, kw, s, p, d, g, causal, _ = L
    if kind == "conv1d":
        if causal:
            x = F.pad(x, (d * (kw - 1), 0))
        return F.conv1d(x, w, b, stride=s, padding=0 if causal else p, dilation=d, groups=g)
    if kind == "convt2d":
        return F.conv_transpose2d(x, w, b, stride=s, padding=p, dilation=d, groups=g)
    return F.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g)


def time_layer(L, runs, bwd, clock=time.perf_counter, warmup=1):
    kind, n, c, h, wd, o, kh, kw, s, p, d, g, causal, _ = L
    xs = (n, c, wd) if kind == "conv1d" else (n, c, h, wd)
    if kind == "conv1d":
        ws = (o, c // g, kw)
    elif kind == "convt2d":
        ws = (c, o // g, kh, kw)
    else:
        ws = (o, c // g, kh, kw)
    x = torch.rand(xs) - 0.5
    w = torch.rand(ws) - 0.5
    b = torch.rand(o) - 0.5
    ts = []
    for r in range(runs + warmup):
        xx, ww, bb = (t.clone().requires_grad_(bwd) for t in (x, w, b))
        t0 = clock()
        if bwd:
            y = op(L, xx, ww, bb)
            y.backward(torch.ones_like(y))
        else:
            with torch.no_grad():
                op(L, xx, ww, bb)
        if r >= warmup:
            ts.append(clock() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cpu-time", action="store_true")
    ap.add_argument("--layer", type=int, default=-1)
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    layers = LAYERS[:3] if a.quick else LAYERS
    if a.layer >= 0:
        # a fresh process runs its first convolutions up to 2x slower (its
        # allocations are not yet served from the heap, measured: conv2
        # 6.6-10 ms forward alone against 4.1 after another layer ran): one
        # untimed forward + backward of every shape first puts it in the
        # state of a run over the whole list
        for L in LAYERS:
            time_layer(L, 1, True)
        layers = [LAYERS[a.layer]]
    print("%-40s %7s %10s %10s  (torch %s)" % ("layer", "threads", "fwd ms", "fwd+bwd ms",
                                              torch.__version__))
    for L in layers:
        clock = time.process_time if a.cpu_time else time.perf_counter
        tf = time_layer(L, a.runs, False, clock, a.warmup)
        tb = time_layer(L, a.runs, True, clock, a.warmup)
        print("%-40s %7d %10.3f %10.3f" % (L[-1], a.threads, tf * 1e3, tb * 1e3), flush=True)


if __name__ == "__main__":
    main()
