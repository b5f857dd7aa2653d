#!/usr/bin/env python3
"""decode_torch.py: torch.nn.functional.scaled_dot_product_attention on the
cases of bench/bench_decode.c: one query row per head (B 1, H 12, T 1)
against the first S positions of a KV cache of S + 64 positions (a strided
view, as a cached model reads it), S in {512, 1024, 4096, 16384}, D in
{64, 128}, no gradient, fp32, on the CPU.

    /opt/torch2/bin/python bench/decode_torch.py [--runs N] [--threads N] [--S N] [--D N]

Each case: one warm-up run, then the median over the timed runs of the time
per call (each run times a batch of calls, about 20 ms), and the bytes of K
and V read per call over it. Prints one line per case in the layout of
bench_decode, with the torch version.
"""

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--S", type=int, default=0)
    ap.add_argument("--D", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(max(1, a.threads))
    H = 12
    for S in (512, 1024, 4096, 16384):
        for D in (64, 128):
            if (a.S and S != a.S) or (a.D and D != a.D):
                continue
            g = torch.Generator().manual_seed(11)
            q = torch.rand(1, H, 1, D, generator=g) * 2 - 1
            ck = torch.rand(1, H, S + 64, D, generator=g) * 2 - 1
            cv = torch.rand(1, H, S + 64, D, generator=g) * 2 - 1
            calls = max(1, int(2e6 / (H * S * D / 64)))
            times = []
            with torch.no_grad():
                for r in range(max(1, a.runs) + 1):
                    t0 = time.perf_counter()
                    for _ in range(calls):
                        F.scaled_dot_product_attention(q, ck[:, :, :S], cv[:, :, :S])
                    t = (time.perf_counter() - t0) / calls
                    if r:
                        times.append(t)
            med = statistics.median(times)
            gbs = 2.0 * H * S * D * 4 / med * 1e-9
            print("decode  H %2d  T 1  S %5d  D %3d  %-9s  %2d thr  %9.2f us  %6.1f GB/s  torch %s"
                  % (H, S, D, "torch", torch.get_num_threads(), med * 1e6, gbs, torch.__version__))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
