#!/usr/bin/env bash
# transformer_table.sh [STEPS] [THREADS] [TASKS]: trains the encoder-decoder
# Transformer (attn transformer train: d_model 64 for dates, 128 for gettext,
# 4 heads, 2+2 pre-LN layers, seed 1) under the budgets of the RNN tables, so
# its rows go into the same tables:
#   dates    STEPS steps (default 1000) of 64 fresh dates, like dates_table.sh;
#            held-out exact match and the alignment accuracy of the
#            cross-attention (mean over layers and heads), greedy, 2000 test dates
#   gettext  STEPS steps of 64 en->de pairs (BPE), like gettext_table.sh;
#            test BLEU and exact match, greedy
# one run after the other, and prints a Markdown table. TASKS is "dates",
# "gettext" or "dates gettext" (default). POS="sinusoidal learned rope alibi
# shaw" adds a row per position kind (default: sinusoidal only). Runs go to
# runs/transformer/<task>-<pos>.
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-1000}"
THREADS="${2:-1}"
TASKS="${3:-dates gettext}"
POS="${POS:-sinusoidal}"
make -s all
out="runs/transformer"
mkdir -p "$out"
echo "| task | model | steps | exact match | alignment | test BLEU | train s | tokens/s |"
echo "|---|---|---|---|---|---|---|---|"
for task in $TASKS; do
    extra=()
    if [ "$task" = gettext ]; then
        [ -f data/gettext/en-de/train.tsv ] || bash scripts/get_gettext_data.sh
        extra=(--lang de)
    fi
    for pos in $POS; do
        dir="$out/$task-$pos"
        rm -rf "$dir"
        start=$(date +%s.%N)
        build/attn transformer train --task "$task" "${extra[@]}" --pos "$pos" --steps "$STEPS" \
            --threads "$THREADS" --seed 1 --quiet --eval-every 0 --out "$dir" >"$dir.txt" 2>&1 ||
            { echo "| $task | transformer ($pos) | failed: $(tail -n 1 "$dir.txt") | | | | | |"; continue; }
        secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }')
        end=$(grep '"event":"end"' "$dir/train.jsonl" | tail -n 1)
        exact=$(grep -o '"exact_match":[0-9.e+-]*' <<<"$end" | cut -d: -f2 | awk '{ printf "%.2f%%", 100 * $1 }')
        bleu=$(grep -o '"bleu":[0-9.e+-]*' <<<"$end" | cut -d: -f2 | awk '{ printf "%.2f", $1 }')
        align=$(grep -o '"align_acc":[0-9.e+-]*' <<<"$end" | cut -d: -f2 | awk '{ printf "%.2f%%", 100 * $1 }' || true)
        tps=$(grep '"event":"train"' "$dir/train.jsonl" | grep -o '"tokens_per_s":[0-9.e+]*' |
            cut -d: -f2 | awk '{ s += $1; n++ } END { if (n) printf "%.0f", s / n }')
        [ "$task" = dates ] && bleu="n/a" || align="n/a"
        echo "| $task | transformer ($pos) | $STEPS | $exact | ${align:-n/a} | $bleu | $secs | ${tps:-?} |"
    done
done
