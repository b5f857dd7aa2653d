#!/usr/bin/env bash
# bench_conv.sh [--rounds R] [--runs N] [--quick]: the convolution layers of
# bench/bench_conv.c against torch.nn.functional (bench/conv_torch.py) on the
# same shapes, 1 thread, process CPU time (--cpu-time on both sides: the
# machine is shared). Per round (R, default 5) and layer the programs run
# one after the other, each reporting the median of N timed runs (default 5)
# after a warm-up; the table gives per layer the median over the rounds of
# each side and the ratio torch ms / attn ms (above 1: attn faster), forward
# alone and forward + backward.
#   BENCH_BIN=...  the attn benchmark binary (default build/bench/bench_conv)
#   BASE_BIN=...   a second attn build (e.g. a copy of bench_conv from before a
#                change), run in the same rounds: the table gains its columns
#                and the ratio before / after
#   PYTHON=...   the Python with torch (default /opt/torch2/bin/python, the
#                torch 2.x venv, then /usr/bin/python3)
# Prints a markdown table; the raw runs stay in $OUT (default a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=5 runs=5 quick=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --quick) quick=(--quick); shift ;;
        *) echo "usage: $0 [--rounds R] [--runs N] [--quick]" >&2; exit 2 ;;
    esac
done
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    for c in /opt/torch2/bin/python /usr/bin/python3; do
        if [ -x "$c" ] && "$c" -c 'import torch' 2>/dev/null; then PY="$c"; break; fi
    done
fi
[ -n "$PY" ] || { echo "bench_conv.sh: no Python with torch (set PYTHON)" >&2; exit 1; }
make -s bench
bin="${BENCH_BIN:-build/bench/bench_conv}"
out="${OUT:-$(mktemp -d)}"
# an older bench_conv (before --no-peak) measures the peak first: harmless
base_np=
if [ -n "${BASE_BIN:-}" ] && "$BASE_BIN" --no-such-option 2>&1 | grep -q no-peak; then base_np=--no-peak; fi
mkdir -p "$out"
# per round and layer the programs run one after the other (attn, the base
# build, torch): a change of the machine's load hits all three alike
nl=10
[ ${#quick[@]} -gt 0 ] && nl=3
for r in $(seq 1 "$rounds"); do
    : >"$out/attn.$r"; : >"$out/torch.$r"
    [ -n "${BASE_BIN:-}" ] && : >"$out/base.$r"
    for l in $(seq 0 $((nl - 1))); do
        "$bin" --cpu-time --no-peak --runs "$runs" --layer "$l" | tail -n 1 >>"$out/attn.$r"
        if [ -n "${BASE_BIN:-}" ]; then
            "$BASE_BIN" --cpu-time $base_np --runs "$runs" --layer "$l" | tail -n 1 >>"$out/base.$r"
        fi
        "$PY" bench/conv_torch.py --cpu-time --runs "$runs" --layer "$l" >"$out/torch.tmp"
        tail -n 1 "$out/torch.tmp" >>"$out/torch.$r"
        [ "$r" = 1 ] && [ "$l" = 0 ] && head -n 1 "$out/torch.tmp" >"$out/torch.header"
    done
    echo "bench_conv.sh: round $r of $rounds done" >&2
done
/usr/bin/python3 - "$out" "$rounds" "${BASE_BIN:+1}" <<'PY'
import glob, statistics, sys
out, rounds, has_base = sys.argv[1], int(sys.argv[2]), len(sys.argv) > 3 and sys.argv[3] == "1"
def rows(path, ms_cols):
    # layer name (may hold spaces), then "1", then the columns
    res = {}
    for line in open(path):
        parts = line.rstrip("\n").split()
        if len(parts) < 4 or parts[0] in ("layer", "f32"):
            continue
        # the thread column "1" follows the name
        k = next(i for i in range(len(parts)) if parts[i] == "1" and i > 0)
        name = " ".join(parts[:k])
        res[name] = [float(parts[k + 1 + c]) for c in ms_cols]
    return res
a = [rows(f"{out}/attn.{r}", (0, 2)) for r in range(1, rounds + 1)]
t = [rows(f"{out}/torch.{r}", (0, 1)) for r in range(1, rounds + 1)]
ver = open(f"{out}/torch.header").read().split("(torch")[-1].strip(" )\n")
print(f"1 thread, process CPU time, median of {rounds} interleaved rounds (each the median of its runs); torch {ver}")
med = lambda runs, name, c: statistics.median(x[name][c] for x in runs)
if has_base:
    b = [rows(f"{out}/base.{r}", (0, 2)) for r in range(1, rounds + 1)]
    print("| layer | before fwd+bwd ms | attn fwd ms | torch fwd ms | fwd torch/attn | attn fwd+bwd ms | torch fwd+bwd ms | fwd+bwd torch/before | fwd+bwd torch/attn | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in a[0]:
        af, ab, tf, tb = med(a, name, 0), med(a, name, 1), med(t, name, 0), med(t, name, 1)
        bb = med(b, name, 1)
        print(f"| {name} | {bb:.2f} | {af:.2f} | {tf:.2f} | {tf/af:.2f} | {ab:.2f} | {tb:.2f} | {tb/bb:.2f} | {tb/ab:.2f} | {bb/ab:.2f} |")
else:
    print("| layer | attn fwd ms | torch fwd ms | fwd torch/attn | attn fwd+bwd ms | torch fwd+bwd ms | fwd+bwd torch/attn |")
    print("|---|---|---|---|---|---|---|")
    for name in a[0]:
        af, ab, tf, tb = med(a, name, 0), med(a, name, 1), med(t, name, 0), med(t, name, 1)
        print(f"| {name} | {af:.2f} | {tf:.2f} | {tf/af:.2f} | {ab:.2f} | {tb:.2f} | {tb/ab:.2f} |")
PY
echo "raw runs: $out" >&2
