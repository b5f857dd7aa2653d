#!/usr/bin/env bash
# allatt_lr_sweep.sh: the learning-rate sweep of issue 14's all-attention
# comparison (docs/long_context.md, "All-attention: the learning rate").
#
# Two rows at the same parameter count (about 890k) and the same budget of
# the 5,000-step table (STEPS steps of 8 x 64 bytes, 1 thread, seed 1, AdamW,
# cosine to lr / 10, memory 64, d_model 128, 4 heads of 32):
#   txl-m64    the standard block: 4 layers, FFN 512
#   allatt-l9  all-attention: 9 layers, no FFN, 50 persistent vectors per head
# each trained with every schedule of SCHEDULES ("LR:WARMUP ..."). The
# schedule of each row is chosen on the WHOLE valid.txt (the final
# evaluation of `attn lm train --final-eval-n 0`); test.txt (whole, `attn lm
# eval --split test`) is read for the table only. Prints a markdown table and
# the gap between the rows' chosen schedules, and writes it to OUT/table.md.
#
# Environment: ATTN (default build/attn, built first), OUT (default
# runs/allatt_sweep), STEPS (5000), SCHEDULES (default "1e-3:100 2e-3:500
# 3e-3:500"), ROWS (default "txl-m64 allatt-l9"), JOBS (runs at a time,
# default 1; 2 on an idle 2-core machine: each run is 1 thread), EVAL_EVERY
# (0: no validation before the end; N: 16 KiB of valid.txt and a checkpoint
# every N steps, for long runs; the training is the same), REUSE=1
# (keep a finished run), SMOKE=1 (a seconds-long check of the script: tiny
# models, 3 steps; its numbers mean nothing).
#
# The command of the docs' table (about 25 minutes of one core for each
# allatt-l9 run and 13 for each txl-m64 run on the 2026-12-06 Xeon):
#   JOBS=2 REUSE=1 bash scripts/experiments/allatt_lr_sweep.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ATTN="${ATTN:-build/attn}"
OUT="${OUT:-runs/allatt_sweep}"
STEPS="${STEPS:-5000}"
SCHEDULES="${SCHEDULES:-1e-3:100 2e-3:500 3e-3:500}"
ROWS="${ROWS:-txl-m64 allatt-l9}"
JOBS="${JOBS:-1}"
EVAL_EVERY="${EVAL_EVERY:-0}"
REUSE="${REUSE:-0}"
MODEL=(--d-model 128 --heads 4)
declare -A ARGS=(
    [txl-m64]="--layers 4 --d-inner 512"
    [allatt-l9]="--layers 9 --no-ffn --persistent 50"
)
EVAL=()
if [ "${SMOKE:-0}" = 1 ]; then
    STEPS=3
    MODEL=(--d-model 32 --heads 2)
    ARGS=([txl-m64]="--layers 1 --d-inner 64" [allatt-l9]="--layers 2 --no-ffn --persistent 4")
    EVAL=(--bytes 2048)
    OUT="${OUT}-smoke"
fi
[ "$ATTN" = build/attn ] && make -s build/attn
[ -f data/wiki/test.txt ] || bash scripts/get_wiki_data.sh
mkdir -p "$OUT"

# one ROW LR WARMUP: trains OUT/ROW-lrLR-wWARMUP and evaluates it on test.txt
one() {
    local row="$1" lr="$2" wu="$3" dir="$OUT/$1-lr$2-w$3"
    local warm=(--warmup "$wu")
    [ "$STEPS" -le "$wu" ] && warm=(--warmup 0)
    if ! { [ "$REUSE" = 1 ] && [ -s "$dir.test" ] && grep -q "^test:" "$dir.test"; }; then
        # shellcheck disable=SC2086
        "$ATTN" lm train --data data/wiki --out "$dir" --force --quiet --batch 8 --steps "$STEPS" \
            --seed 1 --threads 1 --eval-every "$EVAL_EVERY" --final-eval-n "${EVAL[1]:-0}" "${MODEL[@]}" \
            --arch txl --segment 64 --mem-len 64 --lr "$lr" "${warm[@]}" ${ARGS[$row]} >"$dir.log" 2>&1 ||
            { echo "$row lr $lr: training failed: $(tail -n 2 "$dir.log")" >&2; return 1; }
        "$ATTN" lm eval --model "$dir" --split test --threads 1 "${EVAL[@]}" >"$dir.test" 2>&1 ||
            { echo "$row lr $lr: evaluation failed: $(tail -n 2 "$dir.test")" >&2; return 1; }
    fi
}

pids=()
for row in $ROWS; do
    for s in $SCHEDULES; do
        one "$row" "${s%%:*}" "${s##*:}" &
        pids+=($!)
        while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    done
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
[ "$fail" = 0 ] || { echo "allatt_lr_sweep.sh: a run failed" >&2; exit 1; }

{
    echo "| row | lr | warmup | parameters | valid bits/byte (all) | test bits/byte (all) | train CPU s |"
    echo "|---|---|---|---|---|---|---|"
    for row in $ROWS; do
        for s in $SCHEDULES; do
            dir="$OUT/$row-lr${s%%:*}-w${s##*:}"
            valid=$(sed -n 's/.*: valid \([0-9.]*\) bits\/byte.*/\1/p' "$dir.log" | tail -n 1)
            test=$(sed -n 's/^test: \([0-9.]*\) bits\/byte.*/\1/p' "$dir.test")
            params=$(sed -n 's/.*; \([0-9]*\) parameters.*/\1/p' "$dir.log" | head -n 1)
            cpu=$(grep -o '"train_cpu_seconds":[0-9.]*' "$dir/train.jsonl" | tail -n 1 | cut -d: -f2 | cut -d. -f1)
            echo "| $row | ${s%%:*} | ${s##*:} | $params | $valid | $test | ${cpu:-} |"
        done
    done
} >"$OUT/table.md"
cat "$OUT/table.md"
# the schedule of each row with the lowest valid bits/byte, and the test gap
awk -F'|' 'NR > 2 { r = $2; gsub(/ /, "", r); v = $6 + 0; t = $7 + 0
                     if (!(r in best) || v < best[r]) { best[r] = v; test[r] = t; lr[r] = $3; gsub(/ /, "", lr[r]) } }
           END { n = split("txl-m64 allatt-l9", order, " ")
                 for (i = 1; i <= n; i++) if (order[i] in best)
                     printf "- %s: lr %s chosen on valid (%.4f), test %.4f\n", order[i], lr[order[i]], best[order[i]], test[order[i]]
                 if (("allatt-l9" in test) && ("txl-m64" in test))
                     printf "- all-attention vs the standard block, each at its chosen schedule: %+.4f test bits/byte (target within 0.03)\n", test["allatt-l9"] - test["txl-m64"] }' \
    "$OUT/table.md" | tee -a "$OUT/table.md"
