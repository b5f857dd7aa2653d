#!/usr/bin/env bash
# vision_modules_table.sh [STEPS]: the attention modules of docs/vision_modules.md
# in the Fashion-MNIST CNN of docs/cnn.md, at the budget of vision_table.sh
# (STEPS steps, default 860 = one epoch, of 64 images, AdamW lr $LR, warmup
# 100, cosine, 1 thread, one run at a time), each module after stage 0 (14x14
# maps, where vision_table.sh puts the SAGAN block), with the seeds $SEEDS.
# Writes $OUT/table.md (and prints it): test accuracy (mean +- sample
# standard deviation over the seeds, and each seed's), trainable parameters,
# training time per step (wall clock and CPU: the machine may be shared),
# then draws the attention maps of the first seed's models with a spatial
# map ($OUT/maps-<arm>/maps.png: CBAM's and SAG's sigmoid maps, GC's softmax
# over positions, PSA's collect weights and the first AA head's attention of
# four query positions) and, side by side for the same test images,
# CBAM's, SAG's and GC's maps with PSA's and SAGAN's weights of the centre
# position ($OUT/maps-compare.png, vision_modules_maps.py). Runs go to
# $OUT/<arm>-s<seed> (a finished run is not redone).
#
# Environment: SEEDS ("1 2 3"), ARMS ("none sagan cbam soft gc sag psa
# aaconv"; also channel, spatial, sagan-code, simple), LR (3e-3), FLAGS
# (extra flags of attn vision train), OUT (runs/vision-modules), NO_TRAIN
# (1: only the table and maps of the runs that finished; the seeds a row
# has are listed in it).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-860}"
SEEDS="${SEEDS:-1 2 3}"
ARMS="${ARMS:-none sagan cbam soft gc sag psa aaconv}"
LR="${LR:-3e-3}"
FLAGS="${FLAGS:-}"
OUT="${OUT:-runs/vision-modules}"
make -s build/attn
mkdir -p "$OUT"

run() { # arm seed
    local dir="$OUT/$1-s$2"
    grep -qs '^step .*test accuracy' "$dir.txt" && return 0
    rm -rf "$dir"
    echo "$(date -u +%H:%M:%S) training $dir" >&2
    # shellcheck disable=SC2086
    build/attn vision train --out "$dir" --attention "$1" --seed "$2" --steps "$STEPS" --lr "$LR" \
        --eval-every 0 --threads 1 --quiet $FLAGS >"$dir.txt" 2>&1 ||
        echo "$dir failed: $(tail -n 1 "$dir.txt")" >&2
}
# NO_TRAIN=1: the table of the runs that finished, nothing trained
[[ -n ${NO_TRAIN:-} ]] || for s in $SEEDS; do for a in $ARMS; do run "$a" "$s"; done; done

# The test accuracies (in %) of arm $1, one a line, seed by seed.
accs() {
    for s in $SEEDS; do
        sed -nE 's/^step .*test accuracy ([0-9.]+).*/\1/p' "$OUT/$1-s$s.txt" 2>/dev/null | awk '{ print 100 * $1 }'
    done
}
# "mean +- std (a, b, c)" of the numbers on stdin.
stats() {
    awk '{ x[n++] = $1; s += $1 }
        END { if (!n) { print "n/a"; exit } m = s / n; for (i = 0; i < n; i++) v += (x[i] - m) ^ 2
              if (n == 1) { printf "%.2f (one seed)", m; exit }
              printf "%.2f +- %.2f (", m, sqrt(v / (n - 1))
              for (i = 0; i < n; i++) printf "%s%.2f", i ? ", " : "", x[i]; printf ")" }'
}
# Field $2 of the "$3" record of run $1's log.
field() {
    grep -h "\"event\":\"$3\"" "$OUT/$1/train.jsonl" 2>/dev/null | tail -n 1 |
        sed -nE "s/.*\"$2\":([-0-9.e]+).*/\1/p"
}
# "wall / cpu" milliseconds per step of arm $1, each seed's, comma-separated.
per_step() {
    local t=""
    for s in $SEEDS; do
        local w c
        w="$(field "$1-s$s" ms_per_step end)"
        c="$(field "$1-s$s" train_cpu_seconds end)"
        [[ -z $w ]] && continue
        t="$t${t:+, }$(awk -v w="$w" -v c="${c:-0}" -v n="$STEPS" 'BEGIN { printf "%.0f / %.0f", w, 1000 * c / n }')"
    done
    echo "$t"
}

{
    echo "| model | trainable parameters | test accuracy % (seeds $SEEDS) | ms per step, wall / CPU (each seed) |"
    echo "|---|---|---|---|"
    for a in $ARMS; do
        echo "| CNN + $a | $(field "$a-s${SEEDS%% *}" parameters start) | $(accs "$a" | stats) | $(per_step "$a") |"
    done
    echo
    echo "Fashion-MNIST test set (10,000 images), mean +- sample standard deviation over the seeds;"
    echo "$STEPS steps of 64 images (AdamW lr $LR, warmup 100, cosine to lr/100, weight decay 0.01),"
    echo "1 thread, the block after stage 0 (14x14). Command: SEEDS=\"$SEEDS\" ARMS=\"$ARMS\" scripts/experiments/vision_modules_table.sh $STEPS"
    if [[ -n $FLAGS ]]; then echo "Extra flags: $FLAGS"; fi
} | tee "$OUT/table.md"

first="${SEEDS%% *}"
for a in $ARMS; do
    case $a in
    spatial | cbam | gc | sag | psa | aaconv | sagan | sagan-code | simple)
        if [[ -f "$OUT/$a-s$first/model.safetensors" ]]; then
            build/attn vision maps --model "$OUT/$a-s$first" --out "$OUT/maps-$a" --images 6 --threads 1 >&2 || true
        fi
        ;;
    esac
done
# the maps side by side for the same test images: CBAM's and SAG's spatial
# maps, GC's softmax, PSA's and SAGAN's weights of the centre position
arms=""
for a in cbam sag gc psa sagan; do [[ -f $OUT/maps-$a/maps.png ]] && arms="$arms $a"; done
# shellcheck disable=SC2086
[[ -z $arms ]] || python3 scripts/experiments/vision_modules_maps.py --runs "$OUT" --query 1 $arms >&2 || true
