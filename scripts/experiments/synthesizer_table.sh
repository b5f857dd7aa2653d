#!/usr/bin/env bash
# synthesizer_table.sh: the Synthesizer rows of issue 19's language-model
# table (docs/synthesizer.md): attn's GPT with its token mixer replaced by
# each synthesized-attention variant, byte-level, on the Wikipedia splits
# (data/wiki, scripts/get_wiki_data.sh). Every row has the same budget and
# the same model around the mixer: STEPS optimizer steps of BATCH x 128
# bytes, THREADS threads, seed 1, AdamW lr 1e-3 (warmup 100, cosine to
# 1e-4), 4 pre-LN layers, d_model 128, 4 heads, d_ff 512, context 128
# (the synthesizer's l), learned positions, tied head:
#
#   dot            dot-product attention (attn's GPT, the baseline)
#   dense          dense synthesizer (hidden 128)
#   random         random synthesizer, trained
#   random-fixed   random synthesizer, fixed at its initial values
#   fdense         factorized dense (a 8 x b 16)
#   frandom        factorized random (rank 8)
#   dense+dot      learned mixture of dense and dot product
#   random+dot     learned mixture of random and dot product
#
# Linformer is not a row: it is not causal (include/attn/linformer.h), so a
# language model built on it would read its future.
#
# Reported per row: parameters, ms/step, training seconds, held-out TEST
# bits/byte (the whole test.txt unless EVAL_BYTES, in windows of 128 moved by
# 128). Writes runs/synthesizer/table.md (and each run's directory and log).
#
# Budget: STEPS 500, BATCH 8, THREADS 1: about 30 minutes of one core on a
# busy 2-core machine. Environment: STEPS, BATCH, THREADS, EVAL_BYTES (0:
# all), SMOKE=1 (a seconds-long check of the script: tiny models, 3 steps;
# its numbers mean nothing).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${STEPS:-500}"
BATCH="${BATCH:-8}"
THREADS="${THREADS:-1}"
EVAL_BYTES="${EVAL_BYTES:-0}"
OUT="${OUT:-runs/synthesizer}"
MODEL=(--layers 4 --heads 4 --d-model 128 --d-inner 512 --ctx 128)
if [ "${SMOKE:-0}" = 1 ]; then
    STEPS=3
    MODEL=(--layers 1 --heads 2 --d-model 16 --d-inner 32 --ctx 16)
    EVAL_BYTES=2048
    OUT="${OUT}-smoke"
fi
make -s build/attn
[ -f data/wiki/test.txt ] || bash scripts/get_wiki_data.sh
mkdir -p "$OUT"
ATTN=build/attn
COMMON=(--arch gpt --batch "$BATCH" --steps "$STEPS" --warmup 100 --lr 1e-3 --seed 1 --threads "$THREADS"
        --eval-every 0 --final-eval-n 16384 --quiet --force "${MODEL[@]}")
[ "$STEPS" -le 100 ] && COMMON+=(--warmup 0)
ROWS=(dot dense random random-fixed fdense frandom dense+dot random+dot)
declare -A ARGS=(
    [dot]=""
    [dense]="--synth dense"
    [random]="--synth random"
    [random-fixed]="--synth random --synth-fixed"
    [fdense]="--synth fdense"
    [frandom]="--synth frandom"
    [dense+dot]="--synth dense+dot"
    [random+dot]="--synth random+dot"
)
endkey() { # DIR KEY: a number of the run's "end" record
    grep '"event":"end"' "$1/train.jsonl" | tail -n 1 | sed -n "s/.*\"$2\":\([-0-9.e]*\).*/\1/p"
}
declare -A BPB PARAMS MS TRAIN
t_start=$(date +%s)
for row in "${ROWS[@]}"; do
    dir="$OUT/$row"
    echo "== $row: ${ARGS[$row]:-(dot-product attention)}" >&2
    # shellcheck disable=SC2086
    if ! "$ATTN" lm train --data data/wiki --out "$dir" ${ARGS[$row]} "${COMMON[@]}" >"$dir.log" 2>&1; then
        echo "$row: training failed: $(tail -n 2 "$dir.log")" >&2
        continue
    fi
    r=$("$ATTN" lm eval --model "$dir" --split test --bytes "$EVAL_BYTES" --threads "$THREADS" |
        sed -n 's/^test: \([0-9.]*\) bits\/byte over \([0-9]*\) bytes.*; \([0-9]*\) parameters.*/\1 \3/p')
    BPB[$row]=${r%% *}
    PARAMS[$row]=${r##* }
    MS[$row]=$(awk -v x="$(endkey "$dir" step_ms)" 'BEGIN { printf "%.1f", x }')
    TRAIN[$row]=$(awk -v x="$(endkey "$dir" train_seconds)" 'BEGIN { printf "%.0f", x }')
    echo "   test ${BPB[$row]} bits/byte, ${PARAMS[$row]} parameters, ${MS[$row]} ms/step" >&2
done
t_total=$(( $(date +%s) - t_start ))
table="$OUT/table.md"
{
    echo "# Synthesized attention in a byte-level language model (issue 19)"
    echo
    echo "Held-out test bits/byte of data/wiki ($([ "$EVAL_BYTES" != 0 ] && echo "the first $EVAL_BYTES bytes of test.txt" || echo "the whole test.txt"), windows of"
    echo "the context moved by the context). Same budget for every row: $STEPS steps of $BATCH x the context,"
    echo "threads $THREADS, seed 1, AdamW 1e-3 (cosine), ${MODEL[*]}; the script took $t_total s on"
    echo "$(nproc) CPU(s) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))."
    echo
    echo "| mixer | options | parameters | test bits/byte | vs dot | train s | ms/step |"
    echo "|---|---|---|---|---|---|---|"
    for row in "${ROWS[@]}"; do
        d=$(awk -v a="${BPB[$row]:-nan}" -v b="${BPB[dot]:-nan}" 'BEGIN { printf "%+.4f", a - b }')
        echo "| $row | ${ARGS[$row]:-} | ${PARAMS[$row]:-} | ${BPB[$row]:-failed} | $d | ${TRAIN[$row]:-} | ${MS[$row]:-} |"
    done
} >"$table"
cat "$table"
