#!/usr/bin/env bash
# python_table.sh: what the Python package costs over the C library, and
# attn's fused attention inside PyTorch against PyTorch's own. Builds the
# extension in place (setup.py build_ext --inplace), then times, at B 1,
# H 8, T = S 1024, D 64, causal, float32, $THREADS threads (default 1),
# the median of $REPS (default 7) interleaved runs of each of:
#   attn.flash_sdpa (forward), attn.flash_sdpa_backward (the call: forward
#   again + backward), attn.sdpa and attn.sdpa_backward (reference op),
#   a call on a 4-element problem (the per-call overhead);
# and, when $TORCH_PYTHON (default /opt/torch2/bin/python) imports torch,
# forward and forward + backward of attn.torch.scaled_dot_product_attention
# against torch.nn.functional.scaled_dot_product_attention in the same
# process, same threads. Prints Markdown tables and writes them to
# runs/python-table.md. docs/python.md quotes its numbers.
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS="${THREADS:-1}"
REPS="${REPS:-7}"
PY="${PYTHON:-/usr/bin/python3}"
TORCH_PYTHON="${TORCH_PYTHON:-/opt/torch2/bin/python}"
mkdir -p runs
"$PY" setup.py -q build_ext --inplace >/dev/null
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}" THREADS REPS OMP_NUM_THREADS="$THREADS"
BENCH='
import os, statistics, time
import numpy as np
import attn
T_ = int(os.environ["THREADS"]); R = int(os.environ["REPS"])
B, H, T, D = 1, 8, 1024, 64
r = np.random.default_rng(0)
q, k, v, g = (r.standard_normal((B, H, T, D), dtype=np.float32) for _ in range(4))
tiny = q[:, :1, :4, :1].copy()
cases = {
    "attn.flash_sdpa (forward)": lambda: attn.flash_sdpa(q, k, v, causal=True, threads=T_),
    "attn.flash_sdpa_backward (forward again + backward)": lambda: attn.flash_sdpa_backward(q, k, v, g, causal=True, threads=T_),
    "attn.sdpa (reference forward)": lambda: attn.sdpa(q, k, v, causal=True, threads=T_),
    "attn.sdpa_backward (reference, forward again + backward)": lambda: attn.sdpa_backward(q, k, v, g, causal=True, threads=T_),
    "a 4-element flash_sdpa call (overhead)": lambda: attn.flash_sdpa(tiny, tiny, tiny, threads=T_),
}
times = {n: [] for n in cases}
for _ in range(R):
    for n, f in cases.items():
        t0 = time.perf_counter(); f(); times[n].append(time.perf_counter() - t0)
print(f"numpy API, B {B} H {H} T {T} D {D}, causal, {T_} thread(s), median of {R}\n")
print("| call | ms |\n|---|---|")
for n, ts in times.items():
    print(f"| {n} | {statistics.median(ts) * 1e3:.3f} |")
'
TORCH_BENCH='
import os, statistics, time
import torch, torch.nn.functional as F
import attn.torch as at
T_ = int(os.environ["THREADS"]); R = int(os.environ["REPS"])
torch.set_num_threads(T_)
B, H, T, D = 1, 8, 1024, 64
gen = torch.Generator().manual_seed(0)
q, k, v, g = (torch.randn(B, H, T, D, generator=gen) for _ in range(4))
def fwd(fn): return lambda: fn(q, k, v, is_causal=True)
def fwdbwd(fn):
    def run():
        a, b, c = (x.clone().requires_grad_() for x in (q, k, v))
        fn(a, b, c, is_causal=True).backward(g)
    return run
cases = {"forward: attn.torch": fwd(at.scaled_dot_product_attention),
         "forward: F.scaled_dot_product_attention": fwd(F.scaled_dot_product_attention),
         "forward + backward: attn.torch": fwdbwd(at.scaled_dot_product_attention),
         "forward + backward: F.scaled_dot_product_attention": fwdbwd(F.scaled_dot_product_attention)}
times = {n: [] for n in cases}
for _ in range(R):
    for n, f in cases.items():
        t0 = time.perf_counter(); f(); times[n].append(time.perf_counter() - t0)
print(f"\nPyTorch {torch.__version__}, same shapes, {T_} thread(s), median of {R}\n")
print("| call | ms |\n|---|---|")
for n, ts in times.items():
    print(f"| {n} | {statistics.median(ts) * 1e3:.3f} |")
'
{
    "$PY" -c "$BENCH"
    if "$TORCH_PYTHON" -c 'import torch; torch.nn.functional.scaled_dot_product_attention' 2>/dev/null; then
        "$TORCH_PYTHON" -c "$TORCH_BENCH"
    else
        echo
        echo "($TORCH_PYTHON has no torch with scaled_dot_product_attention: the PyTorch table is skipped)"
    fi
    echo
    echo "($(date -u +%Y-%m-%dT%H:%MZ), $(getconf _NPROCESSORS_ONLN) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
} | tee runs/python-table.md
