#!/usr/bin/env bash
# dates_table.sh [STEPS] [THREADS]: trains the date-normalisation seq2seq with
# every attention kind (and the no-attention baseline) under the same budget
# (STEPS optimizer steps, default 1000, batch 64, GRU, same seed), one after
# the other, and prints a Markdown table of held-out exact match and
# alignment accuracy (greedy, 2000 test dates). Runs go to runs/dates/<kind>.
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-1000}"
THREADS="${2:-1}"
make -s all
mkdir -p runs/dates
echo "| attention | exact match | alignment | train s | tokens/s |"
echo "|---|---|---|---|---|"
KINDS="${KINDS:-none bahdanau dot general concat location cosine local-m local-p}"
for kind in $KINDS; do
    dir="runs/dates/$kind"
    rm -rf "$dir"
    start=$(date +%s.%N)
    build/attn seq2seq train --task dates --attention "$kind" --steps "$STEPS" \
        --threads "$THREADS" --seed 1 --quiet --eval-every 0 --out "$dir" >"$dir.txt" 2>&1 ||
        { echo "| $kind | failed: $(tail -n 1 "$dir.txt") | | | |"; continue; }
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }')
    line=$(grep -E '^test: ' "$dir.txt" | tail -n 1)
    exact=$(sed -E 's/.*exact match ([0-9.]+%).*/\1/' <<<"$line")
    align=$(grep -Eo 'alignment accuracy [0-9.]+%' <<<"$line" | awk '{print $3}' || true)
    tps=$(grep '"event":"train"' "$dir/train.jsonl" | grep -o '"tokens_per_s":[0-9.e+]*' |
        cut -d: -f2 | awk '{ s += $1; n++ } END { if (n) printf "%.0f", s / n }')
    echo "| $kind | $exact | ${align:-n/a} | $secs | ${tps:-?} |"
done
