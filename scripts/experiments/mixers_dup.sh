#!/usr/bin/env bash
# mixers_dup.sh: the Reformer paper's duplication task (0 w 0 w, loss and
# accuracy on the second w; `attn lm train --data dup`) for the token mixers
# of issue 19 in the same small GPT: dot-product attention (learned and
# rotary positions), the dense and random synthesizers, Sinkhorn, SortCut
# and routing. Length 64 (w of 31 symbols from 1..127), 2 layers, d_model
# 64, 4 heads, batch 16, 500 steps, lr 3e-3, seed 1, 1 thread: the budget of
# the Reformer's length-64 rows (reformer_table.sh). Prints a Markdown table
# of held-out accuracy over 256 sequences and training CPU seconds.
#
#   bash scripts/experiments/mixers_dup.sh      # ATTN=build/attn OUT=runs/mixers_dup LEN=64 STEPS=500
set -euo pipefail
cd "$(dirname "$0")/../.."
ATTN="${ATTN:-build/attn}"
OUT="${OUT:-runs/mixers_dup}"
STEPS="${STEPS:-500}"
LEN="${LEN:-64}"   # LEN=256: the paper's length (mixer blocks of 16 divide it)
[ "$ATTN" = build/attn ] && make -s build/attn
mkdir -p "$OUT"
S=(--data dup --dup-len "$LEN" --dup-vocab 128 --dup-eval 256 --batch 16 --steps "$STEPS" --lr 3e-3 --warmup 50
   --layers 2 --heads 4 --d-model 64 --seed 1 --threads 1 --eval-every 0 --arch gpt)
declare -A ARGS=(
    [dot-learned]=""
    [dot-rope]="--pos rope"
    [dense]="--synth dense"
    [random]="--synth random"
    [dense+dot]="--synth dense+dot"
    [sinkhorn]="--mixer sinkhorn --mixer-block 16"
    [sortcut]="--mixer sortcut --mixer-block 16"
    [routing]="--mixer routing"
)
ROWS="${ROWS:-dot-learned dot-rope dense random dense+dot sinkhorn sortcut routing}"
for r in $ROWS; do
    d="$OUT/$r"
    grep -qs '"event":"end"' "$d/train.jsonl" && continue
    echo "$(date -u +%H:%M:%S) training $r" >&2
    # shellcheck disable=SC2086
    "$ATTN" lm train --out "$d" --force --quiet "${S[@]}" ${ARGS[$r]} >"$d.log" 2>&1 ||
        echo "$r failed: $(tail -n 2 "$d.log")" >&2
done
echo "| mixer | held-out accuracy | training CPU s |"
echo "|---|---|---|"
for r in $ROWS; do
    d="$OUT/$r"
    [ -f "$d/model.safetensors" ] || continue
    acc=$("$ATTN" lm eval --model "$d" --sequences 256 --threads 1 2>&1 | sed -n 's/^dup: held-out accuracy \([0-9.]*\)%.*/\1/p')
    cpu=$(sed -n 's/.*"event":"end".*"train_cpu_seconds":\([0-9.e+-]*\).*/\1/p' "$d/train.jsonl" | tail -1)
    printf '| %s | %s%% | %.0f |\n' "$r" "$acc" "${cpu:-0}"
done
