#!/usr/bin/env bash
# vision_masks_table.sh [STEPS]: the spatial attention-guided mask of
# CenterMask in its own setting (docs/vision_modules.md, "The SAG mask in
# its own setting"): the mask network of include/attn/mask_head.h trained to
# predict per-pixel item masks of the captioning scenes, with the SAG map
# multiplying the mask head's features (sag 1) and without it (sag 0), for
# the seeds $SEEDS, STEPS steps (default 800) of 16 scenes, AdamW lr $LR,
# 1 thread, one run at a time. Writes $OUT/table.md (and prints it): mean
# item IoU on the 1,000 test scenes (class-aware and class-agnostic, mean
# +- sample standard deviation over the seeds and each seed's), trainable
# parameters, time per step; then draws six test scenes with the first
# seed's models ($OUT/pictures-sag<0|1>.png). Runs go to
# $OUT/sag<0|1>-s<seed> (a finished run is not redone).
#
# Environment: SEEDS ("1 2 3"), ARMS ("1 0": the sag values), LR (1e-2),
# FLAGS (extra flags of attn vision masks train), OUT (runs/vision-masks),
# NO_TRAIN (1: only the table and pictures of the runs that finished).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-800}"
SEEDS="${SEEDS:-1 2 3}"
ARMS="${ARMS:-1 0}"
LR="${LR:-1e-2}"
FLAGS="${FLAGS:-}"
OUT="${OUT:-runs/vision-masks}"
make -s build/attn
mkdir -p "$OUT"

run() { # sag seed
    local dir="$OUT/sag$1-s$2"
    grep -qs '^step .*test item IoU' "$dir.txt" && return 0
    rm -rf "$dir"
    echo "$(date -u +%H:%M:%S) training $dir" >&2
    # shellcheck disable=SC2086
    build/attn vision masks train --out "$dir" --sag "$1" --seed "$2" --steps "$STEPS" --lr "$LR" \
        --eval-every 0 --threads 1 --quiet $FLAGS >"$dir.txt" 2>&1 ||
        echo "$dir failed: $(tail -n 1 "$dir.txt")" >&2
}
# NO_TRAIN=1: the table of the runs that finished, nothing trained
[[ -n ${NO_TRAIN:-} ]] || for s in $SEEDS; do for a in $ARMS; do run "$a" "$s"; done; done

# Field $2 of the "$3" record of run $1's log.
field() {
    grep -h "\"event\":\"$3\"" "$OUT/$1/train.jsonl" 2>/dev/null | tail -n 1 |
        sed -nE "s/.*\"$2\":([-0-9.e]+).*/\1/p"
}
# The test IoU (key $2: test_iou or test_iou_fg, in %) of arm $1, seed by seed.
ious() {
    for s in $SEEDS; do
        local v
        v="$(field "sag$1-s$s" "$2" eval)"
        [[ -n $v ]] && awk -v v="$v" 'BEGIN { print 100 * v }'
    done
    return 0
}
stats() {
    awk '{ x[n++] = $1; s += $1 }
        END { if (!n) { print "n/a"; exit } m = s / n; for (i = 0; i < n; i++) v += (x[i] - m) ^ 2
              if (n == 1) { printf "%.2f (one seed)", m; exit }
              printf "%.2f +- %.2f (", m, sqrt(v / (n - 1))
              for (i = 0; i < n; i++) printf "%s%.2f", i ? ", " : "", x[i]; printf ")" }'
}
per_step() {
    local t=""
    for s in $SEEDS; do
        local w c
        w="$(field "sag$1-s$s" ms_per_step end)"
        c="$(field "sag$1-s$s" train_cpu_seconds end)"
        [[ -z $w ]] && continue
        t="$t${t:+, }$(awk -v w="$w" -v c="${c:-0}" -v n="$STEPS" 'BEGIN { printf "%.0f / %.0f", w, 1000 * c / n }')"
    done
    echo "$t"
}

{
    echo "| mask network | trainable parameters | test item IoU %, class-aware (seeds $SEEDS) | class-agnostic | ms per step, wall / CPU (each seed) |"
    echo "|---|---|---|---|---|"
    for a in $ARMS; do
        name="without the SAG map"
        [[ $a == 1 ]] && name="with the SAG map (CenterMask)"
        echo "| $name | $(field "sag$a-s${SEEDS%% *}" parameters end) | $(ious "$a" test_iou | stats) | $(ious "$a" test_iou_fg | stats) | $(per_step "$a") |"
    done
    echo
    echo "1,000 test scenes (items from the Fashion-MNIST test file), IoU inside each item's cell, mean over"
    echo "the items; $STEPS steps of 16 scenes from 20,000 training scenes (AdamW lr $LR, warmup 50, cosine),"
    echo "1 thread. Command: SEEDS=\"$SEEDS\" ARMS=\"$ARMS\" scripts/experiments/vision_masks_table.sh $STEPS"
    if [[ -n $FLAGS ]]; then echo "Extra flags: $FLAGS"; fi
} | tee "$OUT/table.md"

first="${SEEDS%% *}"
for a in $ARMS; do
    if [[ -f "$OUT/sag$a-s$first/model.safetensors" ]]; then
        build/attn vision masks pictures --model "$OUT/sag$a-s$first" --out "$OUT/pictures-sag$a.png" \
            --scenes 6 --threads 1 >&2 || true
    fi
done
