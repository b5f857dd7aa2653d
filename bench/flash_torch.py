#!/usr/bin/env python3
"""flash_torch.py: PyTorch 2.x F.scaled_dot_product_attention on the shapes
of bench/bench_flash.c, for the comparison of issue 5 (fp32, CPU).

    /opt/torch2/bin/python bench/flash_torch.py [--quick] [--runs N] [--threads N]
        [--T N] [--D N] [--causal 0|1] [--bwd 0|1] [--dtype f32|bf16]

Same shapes (B*H in {12, 48} as B = 1 or 4 with H = 12; T = S in {256, 1024,
4096, 16384}; D in {64, 128}; causal and not; forward and forward +
backward; bf16 forward), same FLOP convention (forward 4 B H T S D, half when causal;
forward + backward 3.5 x forward), same thread count (torch.set_num_threads),
median of the timed runs after one warm-up. Prints one line per case in the
layout of bench_flash, with the backend torch chose. --quick: B*H 12, T 256
and 1024, D 64 (bench_flash --quick).
"""

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def run_case(B, H, T, D, causal, bwd, bf16, runs):
    g = torch.Generator().manual_seed(7)
    q = torch.rand(B, H, T, D, generator=g) * 2 - 1
    if bf16:
        q = q.to(torch.bfloat16)
    k = q.clone()
    v = q.clone()
    gy = q.clone()
    times = []
    for r in range(runs + 1):
        qq, kk, vv = (x.detach().requires_grad_(bool(bwd)) for x in (q, k, v))
        t0 = time.perf_counter()
        if bwd:
            y = F.scaled_dot_product_attention(qq, kk, vv, is_causal=bool(causal))
            y.backward(gy)
        else:
            with torch.no_grad():
                y = F.scaled_dot_product_attention(qq, kk, vv, is_causal=bool(causal))
        t = time.perf_counter() - t0
        if r:
            times.append(t)
    med = statistics.median(times)
    flop = 4.0 * B * H * T * T * D * (0.5 if causal else 1.0) * (3.5 if bwd else 1.0)
    print("B*H %3d  T=S %5d  D %3d  %-6s  %-7s  %-4s  %2d thr  %10.3f ms  %7.1f GFLOP/s  torch %s"
          % (B * H, T, D, "causal" if causal else "full", "fwd+bwd" if bwd else "fwd",
             "bf16" if bf16 else "f32", torch.get_num_threads(), med * 1e3, flop / med * 1e-9,
             torch.__version__))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--T", type=int, default=0)
    ap.add_argument("--D", type=int, default=0)
    ap.add_argument("--causal", type=int, default=-1)
    ap.add_argument("--bwd", type=int, default=-1)
    ap.add_argument("--dtype", default="")
    a = ap.parse_args()
    if not hasattr(F, "scaled_dot_product_attention"):
        print("flash_torch.py: this torch (%s) has no scaled_dot_product_attention; use "
              "/opt/torch2/bin/python" % torch.__version__, file=sys.stderr)
        return 1
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    Ts = [256, 1024] if a.quick and not a.T else [256, 1024, 4096, 16384]
    Ds = [64] if a.quick and not a.D else [64, 128]
    Bs = [1] if a.quick else [1, 4]
    for B in Bs:
        for T in Ts:
            for D in Ds:
                for causal in (0, 1):
                    # f32 fwd, f32 fwd+bwd, bf16 fwd, bf16 fwd+bwd (bench_flash's order)
                    for kind in (0, 1, 2, 3):
                        bwd, bf16 = kind in (1, 3), kind in (2, 3)
                        if ((a.T and T != a.T) or (a.D and D != a.D)
                                or (a.causal >= 0 and causal != a.causal)
                                or (a.bwd >= 0 and int(bwd) != a.bwd)
                                or (a.dtype and a.dtype != ("bf16" if bf16 else "f32"))):
                            continue
                        run_case(B, 12, T, D, causal, bwd, bf16, max(1, a.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
