#!/usr/bin/env bash
# bench_gpt.sh: training tokens per CPU second of `attn gpt train` against
# the same GPT in PyTorch (bench/gpt_torch.py: same model, same character
# vocabulary, same windows in the same order, same AdamW, clipping and
# schedule; docs/gpt.md), one thread each, default settings on both sides
# (attn: float32, ATTN_BLAS=auto; torch: float32, its own BLAS).
#
# The rows are issue 11's (fixed list):
#   d64      4 layers, 4 heads, d_model 64, ctx 64, batch 16     (target >= 2x)
#   d256     4 layers, 8 heads, d_model 256, ctx 128, batch 16   (target >= 1.75x)
#   ctx1024  4 layers, 4 heads, d_model 256, ctx 1024, batch 2   (the fused
#            attention kernel's regime: attn runs it from 512 keys)
# Each row is run ROUNDS times, interleaved (attn, torch, attn, torch, ...);
# the table gives the medians and the median of the per-round ratios. Tokens
# per CPU second of the process count training steps only; on a machine
# shared with other jobs the wall clock mostly measures the others, so the
# CPU figure is the comparable one (the wall figure is printed too).
#
# Not part of the tests: without torch 2.x only attn is measured.
#
# Usage: bash bench/bench_gpt.sh [--rounds N] [--rows "d64 d256 ctx1024"] [--threads N]
#   env TORCH_PYTHON (default /opt/torch2/bin/python), DATA (default data/fortunes)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS=3
ROWS="d64 d256 ctx1024"
THREADS=1
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) ROUNDS="$2"; shift ;;
    --rows) ROWS="$2"; shift ;;
    --threads) THREADS="$2"; shift ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_gpt.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done
TORCH_PYTHON="${TORCH_PYTHON:-/opt/torch2/bin/python}"
DATA="${DATA:-$ROOT/data/fortunes}"
OUT="$ROOT/runs/gpt_bench"
mkdir -p "$OUT"
[ -x "$ROOT/build/attn" ] || make -C "$ROOT" -j2 >/dev/null
[ -f "$DATA/train.txt" ] || bash "$ROOT/scripts/get_fortunes_data.sh" >/dev/null 2>&1 || true
if [ ! -f "$DATA/train.txt" ]; then
    echo "bench_gpt.sh: no $DATA/train.txt (the fortunes corpus: scripts/get_fortunes_data.sh)" >&2
    exit 2
fi
have_torch=0
if "$TORCH_PYTHON" -c 'import torch, sys; sys.exit(0 if int(torch.__version__.split(".")[0]) >= 2 else 1)' 2>/dev/null; then
    have_torch=1
fi

# row -> model options and steps (enough steps for a few seconds of CPU each)
row_args() {
    case "$1" in
    d64) echo "--layers 4 --heads 4 --d-model 64 --ctx 64 --batch 16" ;;
    d256) echo "--layers 4 --heads 8 --d-model 256 --ctx 128 --batch 16" ;;
    ctx1024) echo "--layers 4 --heads 4 --d-model 256 --ctx 1024 --batch 2" ;;
    *) echo "bench_gpt.sh: unknown row '$1' (d64, d256, ctx1024)" >&2; return 2 ;;
    esac
}
row_steps() { case "$1" in d64) echo 300 ;; d256) echo 40 ;; ctx1024) echo 12 ;; esac; }
row_target() { case "$1" in d64) echo "2x" ;; d256) echo "1.75x" ;; ctx1024) echo "-" ;; esac; }

export OMP_NUM_THREADS="$THREADS" OMP_WAIT_POLICY=passive
RES="$OUT/results.tsv"
: >"$RES"
for row in $ROWS; do
    args=$(row_args "$row")
    steps=$(row_steps "$row")
    for r in $(seq 1 "$ROUNDS"); do
        # shellcheck disable=SC2086
        line=$("$ROOT/build/attn" gpt train --data "$DATA" --out "$OUT/attn-$row" --force \
            --steps "$steps" --warmup 2 $args --threads "$THREADS" --eval-every 0 2>&1 |
            grep '^trained' || true)
        a_wall=$(echo "$line" | sed -n 's/.*: \([0-9.]*\) tokens\/s.*/\1/p')
        a_cpu=$(echo "$line" | sed -n 's/.*, \([0-9.]*\) tokens per CPU second.*/\1/p')
        if [ -z "$a_cpu" ]; then
            echo "bench_gpt.sh: attn gpt train failed on row $row" >&2
            exit 1
        fi
        t_wall=""; t_cpu=""
        if [ "$have_torch" = 1 ]; then
            # shellcheck disable=SC2086
            js=$(cd "$ROOT" && "$TORCH_PYTHON" bench/gpt_torch.py --data "$DATA" --steps "$steps" \
                --warmup 2 $args --threads "$THREADS" --no-eval)
            t_wall=$(echo "$js" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])')
            t_cpu=$(echo "$js" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_cpu_s"])')
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$row" "$r" "$a_cpu" "$a_wall" "$t_cpu" "$t_wall" >>"$RES"
        echo "  $row round $r: attn $a_cpu tokens/CPU s, torch ${t_cpu:-n/a}" >&2
    done
done

python3 - "$RES" "$THREADS" "$ROUNDS" <<'PYEOF'
import statistics, sys
path, threads, rounds = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {}
for line in open(path):
    row, r, acpu, awall, tcpu, twall = line.rstrip("\n").split("\t")
    rows.setdefault(row, []).append((float(acpu), float(awall),
                                     float(tcpu) if tcpu else None, float(twall) if twall else None))
targets = {"d64": "2x", "d256": "1.75x", "ctx1024": "-"}
info = open("/proc/cpuinfo").read()
cpu = info.split("model name")[1].split("\n")[0].strip(": \t")
flags = info.split("flags")[1].split("\n")[0].split()
cpu += " (" + ", ".join(f"{name}: {'yes' if flag in flags else 'no'}"
                        for name, flag in (("AVX-512", "avx512f"), ("AVX-512 BF16", "avx512_bf16"),
                                           ("AMX", "amx_tile"))) + ")"
print(f"GPT training, {threads} thread(s), medians of {rounds} interleaved rounds; {cpu}")
print()
print("| row | attn tokens/CPU s | torch tokens/CPU s | attn / torch (CPU) | wall: attn / torch | target |")
print("|---|---|---|---|---|---|")
for row, v in rows.items():
    a = statistics.median(x[0] for x in v)
    if v[0][2] is None:
        print(f"| {row} | {a:,.0f} | n/a | n/a | n/a | {targets.get(row, '-')} |")
        continue
    t = statistics.median(x[2] for x in v)
    ratio = statistics.median(x[0] / x[2] for x in v)
    wall = statistics.median(x[1] / x[3] for x in v)
    print(f"| {row} | {a:,.0f} | {t:,.0f} | **{ratio:.2f}x** | {wall:.2f}x | {targets.get(row, '-')} |")
PYEOF
