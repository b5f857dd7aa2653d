#!/usr/bin/env bash
# sinkroute_table.sh: the Sinkhorn, SortCut and routing rows of issue 19's
# language-model table (docs/sinkhorn.md, docs/routing.md): attn's GPT with
# its token mixer replaced, byte-level, on the Wikipedia splits (data/wiki),
# with exactly the model and budget of synthesizer_table.sh (whose dot and
# synthesizer rows these extend): STEPS optimizer steps of BATCH x 128 bytes,
# THREADS threads, seed SEED (1), AdamW lr 1e-3 (warmup 100, cosine to 1e-4),
# 4 pre-LN layers, d_model 128, 4 heads, d_ff 512, context 128, learned
# positions, tied head:
#
#   sinkhorn   causal Sparse Sinkhorn attention, blocks of 16 (8 blocks),
#              5 Sinkhorn iterations, temperature 0.75
#   sortcut    causal SortCut: the first 2 sorted blocks + the local block
#   routing    causal routing attention: 2 heads of 4-cluster routing (online
#              k-means, decay 0.99, nearest-centroid clusters) + 2 local heads
#              (window 32)
#   dot        dot-product attention (only with ROWS="dot ..."; the
#              synthesizer table has it)
#
# Reported per row: parameters, ms/step, training seconds, held-out TEST
# bits/byte. Writes runs/sinkroute/table.md. Environment: STEPS (500), BATCH
# (8), THREADS (1), SEED (1), EVAL_BYTES (0: all), ROWS, SMOKE=1 (seconds;
# numbers mean nothing).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${STEPS:-500}"
BATCH="${BATCH:-8}"
THREADS="${THREADS:-1}"
EVAL_BYTES="${EVAL_BYTES:-0}"
SEED="${SEED:-1}"
OUT="${OUT:-runs/sinkroute}"
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
COMMON=(--arch gpt --batch "$BATCH" --steps "$STEPS" --warmup 100 --lr 1e-3 --seed "$SEED" --threads "$THREADS"
        --eval-every 0 --final-eval-n 16384 --quiet --force "${MODEL[@]}")
[ "$STEPS" -le 100 ] && COMMON+=(--warmup 0)
read -r -a ROWS <<<"${ROWS:-sinkhorn sortcut routing}"
declare -A ARGS=(
    [dot]=""
    [sinkhorn]="--mixer sinkhorn --mixer-block 16"
    [sortcut]="--mixer sortcut --mixer-block 16 --mixer-n 2"
    [routing]="--mixer routing --mixer-n 4"
)
[ "${SMOKE:-0}" = 1 ] && ARGS[sinkhorn]="--mixer sinkhorn --mixer-block 4" &&
    ARGS[sortcut]="--mixer sortcut --mixer-block 4 --mixer-n 2"
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
    echo "# Sinkhorn, SortCut and routing attention in a byte-level language model (issue 19)"
    echo
    echo "Held-out test bits/byte of data/wiki ($([ "$EVAL_BYTES" != 0 ] && echo "the first $EVAL_BYTES bytes of test.txt" || echo "the whole test.txt"), windows of"
    echo "the context moved by the context). Same budget for every row: $STEPS steps of $BATCH x the context,"
    echo "threads $THREADS, seed $SEED, AdamW 1e-3 (cosine), ${MODEL[*]}; the script took $t_total s on"
    echo "$(nproc) CPU(s) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))."
    echo
    echo "| mixer | options | parameters | test bits/byte | vs dot | train s | ms/step |"
    echo "|---|---|---|---|---|---|---|"
    for row in "${ROWS[@]}"; do
        d=$(awk -v a="${BPB[$row]:-nan}" -v b="${BPB[dot]:-${DOT_BPB:-3.9421}}" 'BEGIN { printf "%+.4f", a - b }')
        echo "| $row | ${ARGS[$row]:-} | ${PARAMS[$row]:-} | ${BPB[$row]:-failed} | $d | ${TRAIN[$row]:-} | ${MS[$row]:-} |"
    done
} >"$table"
cat "$table"
