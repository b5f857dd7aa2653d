#!/usr/bin/env bash
# gan_table.sh [STEPS]: does SAGAN's self-attention lower the FID of the
# small Fashion-MNIST GAN (docs/gan.md)? Trains the GAN with the SAGAN
# blocks (--attention 1) and the same GAN without them (--attention 0), with
# the seeds $SEEDS, the same budget for both (STEPS steps, default 1500, of
# batch 32; TTUR Adam D 4e-4, G 1e-4, betas (0, 0.9); 1 thread), one run at
# a time. Then, with the classifier $CLASSIFIER (attn's own Fashion-MNIST
# CNN, NOT Inception), the FID of 5,000 samples of each generator against
# the 10,000 test images, the floor (5,000 training images against the same
# test images), an 8 x 8 sample grid per run (runs/gan-table/<arm>-s<seed>.png),
# and a Markdown table: FID mean +- sample standard deviation over the
# seeds, and each seed's, and the generator's final attention gamma.
# Finished runs and computed FIDs are not redone, so the script can be run
# again (e.g. once the classifier exists) to finish the table.
#
# Environment: SEEDS ("1 2 3"), ARMS ("sagan plain"), CLASSIFIER
# (/work/models/cnn-base), N (5000 samples), OUT (runs/gan-table), BUILD
# (build: the build directory whose attn runs everything).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-1500}"
SEEDS="${SEEDS:-1 2 3}"
ARMS="${ARMS:-sagan plain}"
CLASSIFIER="${CLASSIFIER:-/work/models/cnn-base}"
N="${N:-5000}"
OUT="${OUT:-runs/gan-table}"
BUILD="${BUILD:-build}"
make -s BUILD="$BUILD" "$BUILD/attn"
ATTN="$BUILD/attn"
mkdir -p "$OUT"

train() { # arm seed
    local dir="$OUT/$1-s$2" att=1
    [[ $1 == plain ]] && att=0
    grep -qs '"event":"end"' "$dir/train.jsonl" && return 0
    echo "training $dir ($STEPS steps)..." >&2
    "$ATTN" gan train --out "$dir" --force --attention "$att" --seed "$2" --steps "$STEPS" --batch 32 \
        --eval-every 500 --threads 1 --quiet >"$dir.txt" 2>&1 || echo "$dir failed: $(tail -n 1 "$dir.txt")" >&2
}
for s in $SEEDS; do for a in $ARMS; do train "$a" "$s"; done; done

for s in $SEEDS; do for a in $ARMS; do
    "$ATTN" gan sample --model "$OUT/$a-s$s" --out "$OUT/$a-s$s.png" --seed 1 --threads 1 >/dev/null ||
        echo "$OUT/$a-s$s: no samples" >&2
done; done

if [[ ! -f "$CLASSIFIER/model.safetensors" ]]; then
    echo "no classifier at $CLASSIFIER (set CLASSIFIER): training done, FID left out" >&2
    exit 0
fi
fid() { # dir|real
    local f="$OUT/$(basename "$1").fid"
    grep -qs '^fid ' "$f" && return 0
    if [[ $1 == real ]]; then
        "$ATTN" gan fid --real-train --classifier "$CLASSIFIER" --n "$N" --threads 1 >"$f"
    else
        "$ATTN" gan fid --model "$1" --classifier "$CLASSIFIER" --n "$N" --threads 1 >"$f"
    fi
}
fid real
for s in $SEEDS; do for a in $ARMS; do fid "$OUT/$a-s$s"; done; done

# "mean +- std (a, b, c)" of the numbers on stdin.
stats() {
    awk '{ x[n++] = $1; s += $1 }
        END { if (!n) { print "n/a"; exit } m = s / n; for (i = 0; i < n; i++) v += (x[i] - m) ^ 2
              sd = n > 1 ? sqrt(v / (n - 1)) : 0; printf "%.2f +- %.2f (", m, sd
              for (i = 0; i < n; i++) printf "%s%.2f", i ? ", " : "", x[i]; print ")" }'
}
gammas() { # arm: the generator's gamma at the last evaluation, seed by seed
    for s in $SEEDS; do
        grep '"event":"eval"' "$OUT/$1-s$s/train.jsonl" | tail -n 1 | sed 's/.*"g_gamma":\([^,]*\).*/\1/'
    done | awk '{ printf "%s%.3f", (NR > 1 ? ", " : ""), $1 } END { print "" }'
}
cpu_ms() { # arm: CPU milliseconds per training step, mean over the seeds
    for s in $SEEDS; do sed -n 's/.* \([0-9.]*\) per CPU second.*/\1/p' "$OUT/$1-s$s.txt"; done |
        awk '{ s += 1000 / $1; n++ } END { if (n) printf "%.0f", s / n; else print "n/a" }'
}
{
    echo "| arm | FID (attn classifier features, not Inception; mean +- sd over seeds $SEEDS) | G gamma at the end | CPU ms per step |"
    echo "|---|---|---|---|"
    for a in $ARMS; do
        label="SAGAN (attention at 14x14 in G and D)"
        [[ $a == plain ]] && label="same GAN without attention"
        echo "| $label | $(for s in $SEEDS; do awk '{ print $2 }' "$OUT/$a-s$s.fid"; done | stats) | $(gammas "$a") | $(cpu_ms "$a") |"
    done
    echo "| floor: $N training images vs the test set | $(awk '{ print $2 }' "$OUT/real.fid") | | |"
    echo
    echo "$STEPS steps of batch 32 per run, 1 thread; FID of $N samples vs the 10,000 test images; grids: $OUT/<arm>-s<seed>.png"
} | tee "$OUT/table.md"
