#!/usr/bin/env bash
# bench_decode.sh [--rounds N] [bench_decode options]: the attention of one
# generated token (bench/bench_decode.c: B 1, H 12, T 1 against S cached keys
# read from a KV cache's prefix, S in {512, 1024, 4096, 16384}, D in {64,
# 128}, fp32, no gradient), attn's fused and reference ops beside torch's
# scaled_dot_product_attention on the same views (bench/decode_torch.py).
# Each round runs attn then torch for every case; the table gives the
# median time per call of each over the rounds and the median of the
# per-round ratios torch / attn fused (above 1: attn faster).
#   --rounds N   rounds (default 3)
#   PYTHON=...   the Python with torch 2.x (default /opt/torch2/bin/python)
# The other options (--runs N, --threads N, --S N, --D N) go to both.
# Do not run it next to another benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3
args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds)
        rounds="${2:-}"
        case "$rounds" in '' | *[!0-9]* | 0) echo "bench_decode.sh: --rounds needs a count >= 1" >&2; exit 2 ;; esac
        shift ;;
    *) args+=("$1") ;;
    esac
    shift
done
PY="${PYTHON:-/opt/torch2/bin/python}"
make -s build/bench/bench_decode
out=$(mktemp)
trap 'rm -f "$out"' EXIT
have_torch=1
"$PY" -c 'import torch.nn.functional as F; F.scaled_dot_product_attention' 2>/dev/null || have_torch=0
[ "$have_torch" = 1 ] || echo "bench_decode.sh: no PyTorch 2.x at $PY: attn's columns only" >&2
for r in $(seq 1 "$rounds"); do
    build/bench/bench_decode "${args[@]}" | sed "s/^/R$r /" | tee -a "$out" >&2
    if [ "$have_torch" = 1 ]; then
        "$PY" bench/decode_torch.py "${args[@]}" | sed "s/^/R$r /" | tee -a "$out" >&2
    fi
done
python3 - "$out" "$rounds" <<'PY'
import statistics, sys, collections
rows = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    f = line.split()
    r, S, D, who, us = f[0], int(f[7]), int(f[9]), f[10], float(f[13])
    rows[(S, D)].setdefault(who, {})[r] = us
print("%-7s %-4s %12s %12s %12s %10s  %s" % ("S", "D", "fused us", "reference us", "torch us",
                                           "torch/fused", "per round"))
for (S, D), w in sorted(rows.items()):
    med = {k: statistics.median(v.values()) for k, v in w.items()}
    ratios = [w["torch"][r] / w["fused"][r] for r in w.get("torch", {}) if r in w["fused"]]
    print("%-7d %-4d %12.1f %12.1f %12s %10s  %s" % (
        S, D, med["fused"], med["reference"],
        "%.1f" % med["torch"] if "torch" in med else "-",
        "%.2fx" % statistics.median(ratios) if ratios else "-",
        " ".join("%.2f" % x for x in ratios)))
PY
