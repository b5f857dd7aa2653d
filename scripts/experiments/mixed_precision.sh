#!/usr/bin/env bash
# mixed_precision.sh: the GPT of `attn lm` trained twice with the same data,
# seed and steps, once in f32 and once with --precision bf16 (bf16 matrix
# products, f32 sums, weights and AdamW state), and the two compared:
# validation bits/byte at the end (target: within 1% of f32) and training
# CPU milliseconds per step (target: bf16 at least 1.5x faster on a CPU with
# AVX-512 BF16 / AMX). docs/mixed_precision.md has the figures.
#
#   bash scripts/experiments/mixed_precision.sh        # STEPS=300 by default
#
# Environment: STEPS (300), THREADS (1), OUT (runs/mixed_precision), SMOKE=1
# (3 steps of a tiny model: checks the script). Writes OUT/results.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${STEPS:-300}"
THREADS="${THREADS:-1}"
OUT="${OUT:-runs/mixed_precision}"
MODEL=(--arch gpt --ctx 128 --d-model 256 --heads 8 --layers 4 --batch 16)
EVAL=16384
if [ "${SMOKE:-0}" = 1 ]; then
    STEPS=3; MODEL=(--arch gpt --ctx 32 --d-model 32 --heads 2 --layers 1 --batch 2); EVAL=512
    OUT="${OUT}-smoke"
fi
make -s build/attn
[ -f data/wiki/valid.txt ] || bash scripts/get_wiki_data.sh
mkdir -p "$OUT"
for p in f32 bf16; do
    [ -f "$OUT/$p/train.jsonl" ] && grep -q '"event":"end"' "$OUT/$p/train.jsonl" && continue
    echo "$(date -u +%H:%M:%S) training $p" >&2
    build/attn lm train --data data/wiki --out "$OUT/$p" "${MODEL[@]}" --steps "$STEPS" --warmup 30 \
        --lr 1e-3 --seed 1 --threads "$THREADS" --eval-every 0 --final-eval-n "$EVAL" --quiet --force \
        --precision "$p" >"$OUT/$p.log" 2>&1
done
key() { grep "\"event\":\"$2\"" "$OUT/$1/train.jsonl" | tail -n 1 | sed -n "s/.*\"$3\":\([-0-9.e]*\).*/\1/p"; }
{
    echo "| precision | validation bits/byte | training CPU ms/step | wall ms/step |"
    echo "|---|---|---|---|"
    for p in f32 bf16; do
        bpb=$(key "$p" eval valid_bpb)
        cpu=$(key "$p" end train_cpu_seconds); ms=$(key "$p" end step_ms)
        printf '| %s | %s | %.1f | %.1f |\n' "$p" "$bpb" "$(echo "$cpu * 1000 / $STEPS" | bc -l)" "$ms"
    done
} | tee "$OUT/results.md"
