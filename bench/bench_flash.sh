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
#   --interleave N    N rounds instead of one; in each round every (mask,
#                     pass) group runs as attn then torch back to back, so
#                     that both sides of a ratio see the same state of a
#                     shared machine; the table gives the medians of both
#                     times, the median of the per-round ratios and each
#                     of them (a virtual machine's speed can drift by tens
#                     of percent within minutes, more than the whole-list
#                     runs can separate from the kernels' differences)
# Do not run it next to another benchmark: both cores are measured.
set -euo pipefail
cd "$(dirname "$0")/.."
install=0
rounds=0
args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --install-torch) install=1 ;;
    --interleave)
        rounds="${2:-}"
        case "$rounds" in '' | *[!0-9]* | 0) echo "bench_flash.sh: --interleave needs a count >= 1" >&2; exit 2 ;; esac
        shift ;;
    *) args+=("$1") ;;
    esac
    shift
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
if [ "$rounds" -gt 0 ]; then
    if [ -z "$PY" ] || ! has_sdpa "$PY"; then
        echo "bench_flash.sh: --interleave needs PyTorch 2.x (PYTHON, or --install-torch)" >&2
        exit 2
    fi
    # the (mask, pass) groups the user did not fix
    masks="0 1" passes="0 1"
    for ((i = 0; i < ${#args[@]}; i++)); do
        [ "${args[$i]}" = "--causal" ] && masks="${args[$((i + 1))]}"
        [ "${args[$i]}" = "--bwd" ] && passes="${args[$((i + 1))]}"
    done
    : >"$a_out"
    : >"$t_out"
    for r in $(seq 1 "$rounds"); do
        for c in $masks; do
            for b in $passes; do
                build/bench/bench_flash "${args[@]}" --causal "$c" --bwd "$b" | sed "s/^/R$r /" | tee -a "$a_out" >&2
                "$PY" bench/flash_torch.py "${args[@]}" --causal "$c" --bwd "$b" | sed "s/^/R$r /" | tee -a "$t_out" >&2
            done
        done
    done
    "$PY" - "$a_out" "$t_out" "$rounds" <<'PYEOF'
import statistics, sys
def rows(path):
    out = {}
    for line in open(path):
        f = line.split()
        if len(f) > 13 and f[1] == "B*H":
            key = (f[2], f[4], f[6], f[7], f[8], f[9], f[10])  # B*H, T, D, mask, pass, dtype, threads
            out.setdefault(key, {})[f[0]] = float(f[12])
    return out
a, t, n = rows(sys.argv[1]), rows(sys.argv[2]), sys.argv[3]
print(f"interleaved: {n} rounds, each (mask, pass) group attn then torch; medians, and the per-round ratios torch / attn")
print("| B*H | T=S | D | mask | pass | dtype | thr | attn ms | torch ms | torch / attn (median) | per round |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for key, ar in a.items():
    tr = t.get(key, {})
    both = [r for r in ar if r in tr]
    ratios = [tr[r] / ar[r] for r in both]
    cells = " ".join(f"{x:.2f}" for x in ratios)
    med = f"**{statistics.median(ratios):.2f}x**" if ratios else "n/a"
    tm = f"{statistics.median(tr.values()):.2f}" if tr else "n/a"
    print(f"| {' | '.join(key)} | {statistics.median(ar.values()):.2f} | {tm} | {med} | {cells} |")
PYEOF
    exit 0
fi
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
