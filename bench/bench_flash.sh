#!/usr/bin/env bash
# bench_flash.sh [--install-torch] [bench_flash options]: the fused attention
# benchmark of issue 5 with PyTorch beside it. Runs build/bench/bench_flash
# (attn: time, GFLOP/s, share of the FMA peak it measures, extra memory) and
# then bench/flash_torch.py (torch.nn.functional.scaled_dot_product_attention
# on the CPU) on the same cases with the same thread count, and prints one
# table: attn ms, torch ms, speed ratio torch / attn (above 1: attn faster).
#
#   --install-torch   make /opt/torch2 (python3 -m venv; pip install torch numpy)
#                     when no PyTorch 2.x is found (a few minutes, ~5 GB)
#   PYTHON=...        the Python with torch 2.x (default /opt/torch2/bin/python,
#                     then python3)
# The other options go to both programs: --quick, --runs N, --threads N,
# --T N, --D N, --causal 0|1, --bwd 0|1, --dtype f32|bf16 (bf16 rows: the bf16
# forward on bf16 inputs and the bf16 forward + backward under bf16 precision,
# each timed interleaved with its f32 twin; "bf16 vs our f32" is the twin's
# median CPU time over the bf16 one, from the same loop).
# Without PyTorch the attn column alone is printed, and the script says so.
# Do not run it next to another benchmark: both cores are measured.
set -euo pipefail
cd "$(dirname "$0")/.."
install=0
args=()
for a in "$@"; do
    if [ "$a" = "--install-torch" ]; then install=1; else args+=("$a"); fi
done
has_sdpa() { "$1" -c 'import torch.nn.functional as F; assert hasattr(F, "scaled_dot_product_attention")' 2>/dev/null; }
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    for c in /opt/torch2/bin/python python3; do
        if command -v "$c" >/dev/null && has_sdpa "$c"; then PY="$c"; break; fi
    done
fi
if { [ -z "$PY" ] || ! has_sdpa "$PY"; } && [ "$install" = 1 ]; then
    echo "bench_flash.sh: installing PyTorch into /opt/torch2 (pip, CPU wheels)" >&2
    python3 -m venv /opt/torch2
    /opt/torch2/bin/pip install -q torch numpy
    PY=/opt/torch2/bin/python
fi
make -s bench
a_out=$(mktemp) t_out=$(mktemp)
trap 'rm -f "$a_out" "$t_out"' EXIT
build/bench/bench_flash "${args[@]}" | tee "$a_out" >&2
if [ -z "$PY" ] || ! has_sdpa "$PY"; then
    echo "bench_flash.sh: PyTorch 2.x is not installed here: no ratios (run with --install-torch," \
         "or set PYTHON to a Python with torch >= 2.0)"
    cat "$a_out"
    exit 0
fi
"$PY" bench/flash_torch.py "${args[@]}" | tee "$t_out" >&2
# join on the case: the first 8 fields (B*H, T, D, mask, pass, dtype, threads)
awk '
    FNR == NR { if ($1 == "B*H") { key = $2 FS $4 FS $6 FS $7 FS $8 FS $9 FS $10; t[key] = $12; v = $NF } next }
    /peak measured/ { print "attn " $0; next }
    $1 == "B*H" {
        key = $2 FS $4 FS $6 FS $7 FS $8 FS $9 FS $10
        if (!hdr++) {
            print "| B*H | T=S | D | mask | pass | dtype | thr | attn ms | attn CPU ms | GFLOP/s | % peak | extra MiB | work MiB | bf16 vs our f32 (CPU) | torch ms | torch / attn |"
            print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        }
        cpu = "n/a"; vs = ""
        for (i = 20; i < NF; i++) { if ($i == "cpu") cpu = $(i + 1); if ($i == "vs") vs = $(i + 2) }
        r = (key in t) ? sprintf("%.2fx", t[key] / $12) : "n/a"
        printf "| %s | %s | %s | %s | %s | %s | %s | %.2f | %s | %.1f | %s | %s | %s | %s | %s | %s |\n", $2, $4, $6, $7, $8, $9, $10, $12, cpu, $14, $16, $19, $22, vs, (key in t) ? t[key] : "n/a", r
    }
    END { print "torch " v }
' "$t_out" "$a_out"
