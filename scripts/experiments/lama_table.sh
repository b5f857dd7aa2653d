#!/usr/bin/env bash
# lama_table.sh: the LAMA experiment of issue 19: fortune-file
# classification (the BERT's task, scripts/get_fortunes_labels.sh: six
# classes, 250 training fortunes each, 184 valid, 606 test) with one
# BiGRU encoder (BPE 1000 merges, embedding 64, GRU 2 x 64) and four
# poolings (attn classify train --pool):
#
#   lama   LAMA (Mehta et al. 2019): k = 4 distributions from c^T P_j Q_j^T h_i
#          at rank r = 8, c the mean of the states; the 4 pooled vectors
#          concatenated (512 wide)
#   attn   single-head additive attention pooling (one distribution)
#   mhsa   4-head self-attention over the states (torch's MultiheadAttention
#          layout), then the mean of its outputs
#   mean   the mean of the states (no attention)
#
# Each at seeds 1, 2, 3: STEPS steps of 32 fortunes, AdamW lr 2e-3, warmup
# 50, cosine to 2e-4, weight decay 0.01, dropout 0.1, THREADS threads. The
# test accuracy is of the final step (no selection on valid). Writes
# $OUT/table.md: parameters (all, and those the pooling adds over mean
# pooling, its wider output layer included),
# test accuracy per seed, mean +- standard deviation (n - 1), ms/step.
#
# Budget: STEPS 400 at 1 thread is about 1-2 minutes a run on a quiet core
# (12 runs); 3-4x that on the shared machine.
#
# Environment: STEPS (400), THREADS (1), DATA (data/fortunes/labels),
# OUT (runs/lama), SEEDS ("1 2 3"), REUSE=1 (keep finished runs), SMOKE=1
# (seconds: tiny models, 5 steps; its numbers mean nothing).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${STEPS:-400}"
THREADS="${THREADS:-1}"
DATA="${DATA:-data/fortunes/labels}"
OUT="${OUT:-runs/lama}"
SEEDS="${SEEDS:-1 2 3}"
MODEL=(--embed 64 --hidden 64 --heads 4 --rank 8 --max-len 128 --bpe-merges 1000)
if [ "${SMOKE:-0}" = 1 ]; then
    STEPS=5
    MODEL=(--embed 8 --hidden 8 --heads 2 --rank 2 --max-len 32 --bpe-merges 50)
    OUT="${OUT}-smoke"
fi
make -s build/attn
[ -f "$DATA/test.labels" ] || { bash scripts/get_fortunes_data.sh --quiet && bash scripts/get_fortunes_labels.sh --quiet; }
mkdir -p "$OUT"
ATTN=build/attn
POOLS=(lama attn mhsa mean)
for s in $SEEDS; do
    for p in "${POOLS[@]}"; do
        n="$p-s$s"
        if [ "${REUSE:-0}" = 1 ] && grep -q '"event":"end"' "$OUT/$n/train.jsonl" 2>/dev/null; then continue; fi
        echo "== $n" >&2
        "$ATTN" classify train --out "$OUT/$n" --data "$DATA" --pool "$p" "${MODEL[@]}" --steps "$STEPS" --batch 32 \
            --lr 2e-3 --warmup 50 --weight-decay 0.01 --dropout 0.1 --seed "$s" --threads "$THREADS" \
            --eval-every 0 --quiet --force >"$OUT/$n.log" 2>&1 || { echo "$n failed: $(tail -n 3 "$OUT/$n.log")" >&2; exit 1; }
    done
done
python3 - "$OUT" "$SEEDS" <<'PY' >"$OUT/table.md"
import json, statistics, sys
out, seeds = sys.argv[1], sys.argv[2].split()
def last(path, event, key):
    v = None
    for line in open(path):
        r = json.loads(line)
        if r.get("event") == event and key in r: v = r[key]
    return v
print("# BiGRU fortune-file classifier: pooling compared, seeds " + ", ".join(seeds))
print()
print("| pooling | parameters | over mean pooling | test accuracy per seed | mean +- sd | ms/step |")
print("|---|---:|---:|---|---:|---:|")
base = None
rows = []
for p in ["lama", "attn", "mhsa", "mean"]:
    accs, ms = [], []
    params = None
    for s in seeds:
        j = "%s/%s-s%s/train.jsonl" % (out, p, s)
        accs.append(100.0 * last(j, "eval", "test_accuracy"))
        ms.append(last(j, "end", "step_ms"))
        params = last(j, "start", "parameters")
    rows.append((p, params, accs, ms))
    if p == "mean": base = params
for p, params, accs, ms in rows:
    sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
    print("| %s | %s | %s | %s | %.2f +- %.2f | %.0f |" % (p, "{:,}".format(params), "{:,}".format(params - base),
          " / ".join("%.2f" % a for a in accs), statistics.mean(accs), sd, statistics.mean(ms)))
PY
cat "$OUT/table.md"
