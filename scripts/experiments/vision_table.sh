#!/usr/bin/env bash
# vision_table.sh [STEPS]: does a self-attention block help the Fashion-MNIST
# CNN at an equal budget? Trains the CNN of docs/cnn.md without attention,
# with a SAGAN block (paper form) and with a Simple Self-Attention block
# after stage 0 (14x14 maps), each with the seeds $SEEDS, the same schedule
# for all (STEPS steps, default 3000, of 64 images, AdamW lr $LR, cosine,
# 1 thread), one run at a time. Writes $OUT/table.md (and prints it): test
# accuracy (mean +- sample standard deviation over the seeds, and each
# seed's), trainable parameters, gamma at the end (each seed's), training
# time per run; then draws the attention maps of seed 1's SAGAN and Simple SA
# models ($OUT/maps-<arm>/maps.png). Runs go to $OUT/<arm>-s<seed> (a
# finished run is not redone).
#
# Environment: SEEDS ("1 2 3"), ARMS ("none sagan simple"), LR (3e-3),
# FLAGS (extra flags of attn vision train for every run), OUT
# (runs/vision-table).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-3000}"
SEEDS="${SEEDS:-1 2 3}"
ARMS="${ARMS:-none sagan simple}"
LR="${LR:-3e-3}"
FLAGS="${FLAGS:-}"
OUT="${OUT:-runs/vision-table}"
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
for s in $SEEDS; do for a in $ARMS; do run "$a" "$s"; done; done

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
              printf "%.2f +- %.2f (", m, (n > 1 ? sqrt(v / (n - 1)) : 0)
              for (i = 0; i < n; i++) printf "%s%.2f", i ? ", " : "", x[i]; printf ")" }'
}
# A number of the "end" or "start" record of a run's log: field $2 of run $1.
field() {
    grep -h "\"event\":\"$3\"" "$OUT/$1/train.jsonl" 2>/dev/null | tail -n 1 |
        sed -nE "s/.*\"$2\":([-0-9.e]+).*/\1/p"
}

{
    echo "| model | trainable parameters | test accuracy % (seeds $SEEDS) | gamma at the end | seconds per run |"
    echo "|---|---|---|---|---|"
    for a in $ARMS; do
        g=""
        t=""
        for s in $SEEDS; do
            g="$g${g:+, }$(field "$a-s$s" gamma end | awk '{ printf "%.3f", $1 }')"
            t="$t${t:+, }$(field "$a-s$s" train_seconds end | awk '{ printf "%.0f", $1 }')"
        done
        [[ $a == none ]] && g="-"
        echo "| CNN + $a | $(field "$a-s${SEEDS%% *}" parameters start) | $(accs "$a" | stats) | $g | $t |"
    done
    echo
    echo "Fashion-MNIST test set (10,000 images), mean +- sample standard deviation over the seeds;"
    echo "$STEPS steps of 64 images (AdamW lr $LR, warmup 100, cosine to lr/100, weight decay 0.01),"
    echo "1 thread, the attention block after stage 0 (14x14). Command: scripts/experiments/vision_table.sh $STEPS"
    if [[ -n $FLAGS ]]; then echo "Extra flags: $FLAGS"; fi
} | tee "$OUT/table.md"

first="${SEEDS%% *}"
for a in $ARMS; do
    if [[ $a != none && -f "$OUT/$a-s$first/model.safetensors" ]]; then
        build/attn vision maps --model "$OUT/$a-s$first" --out "$OUT/maps-$a" --images 6 --threads 1 >&2 || true
    fi
done
