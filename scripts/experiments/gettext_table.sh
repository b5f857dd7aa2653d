#!/usr/bin/env bash
# gettext_table.sh [STEPS] [THREADS] [LANG]: trains en->LANG (default de)
# translators on the Debian gettext pairs (bash scripts/get_gettext_data.sh
# builds them) with no attention, Bahdanau, Luong general and Luong local-p
# under the same budget (STEPS steps, default 3000, batch 64, BPE, GRU, same
# seed), one after the other, and prints a Markdown table of test BLEU and
# exact match (greedy). Runs go to runs/gettext-LANG/<kind>.
# KINDS="..." chooses the kinds; LUONG_OPTS="..." adds options to the Luong
# kinds (every kind but none and bahdanau), e.g.
# LUONG_OPTS="--combine-dim 768 --input-feed 0" (docs/seq2seq.md); SEED=N
# (default 1) the seed of every run (runs then go to runs/gettext-LANG-sN).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-3000}"
THREADS="${2:-2}"
LANG_="${3:-de}"
[ -f "data/gettext/en-$LANG_/train.tsv" ] || bash scripts/get_gettext_data.sh
make -s all
SEED="${SEED:-1}"
out="runs/gettext-$LANG_"
[ "$SEED" = 1 ] || out="$out-s$SEED"
mkdir -p "$out"
echo "| attention | test BLEU | exact match | train s | tokens/s |"
echo "|---|---|---|---|---|"
KINDS="${KINDS:-none bahdanau general local-p}"
for kind in $KINDS; do
    dir="$out/$kind"
    rm -rf "$dir"
    start=$(date +%s.%N)
    extra=""
    case "$kind" in none | bahdanau) ;; *) extra="${LUONG_OPTS:-}" ;; esac
    # shellcheck disable=SC2086 # $extra is a list of options
    build/attn seq2seq train --task gettext --lang "$LANG_" --attention "$kind" --steps "$STEPS" \
        --threads "$THREADS" --seed "$SEED" --quiet --eval-every 0 --out "$dir" $extra >"$dir.txt" 2>&1 ||
        { echo "| $kind | failed: $(tail -n 1 "$dir.txt") | | | |"; continue; }
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }')
    end=$(grep '"event":"end"' "$dir/train.jsonl" | tail -n 1)
    bleu=$(grep -o '"bleu":[0-9.e+-]*' <<<"$end" | cut -d: -f2 | awk '{ printf "%.2f", $1 }')
    exact=$(grep -o '"exact_match":[0-9.e+-]*' <<<"$end" | cut -d: -f2 | awk '{ printf "%.2f%%", 100 * $1 }')
    tps=$(grep '"event":"train"' "$dir/train.jsonl" | grep -o '"tokens_per_s":[0-9.e+]*' |
        cut -d: -f2 | awk '{ s += $1; n++ } END { if (n) printf "%.0f", s / n }')
    echo "| $kind | $bleu | $exact | $secs | ${tps:-?} |"
done
