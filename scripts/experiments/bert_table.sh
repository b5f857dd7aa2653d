#!/usr/bin/env bash
# bert_table.sh [STEPS]: does masked-LM pretraining help the fortune-file
# classifier when labels are few? Pretrains the 2-layer encoder once (the
# recipe of docs/bert.md, unless $PRE already holds a finished run), then
# fine-tunes it and a randomly initialised encoder of the same shape on the
# first N labelled fortunes of each class (N in $NS), with the fine-tuning
# seeds $SEEDS, the same schedule for both (STEPS steps, default 400, batch
# 32, lr $LR, dropout 0.1, 1 thread), $JOBS runs at a time. Prints a
# Markdown table of test accuracy (mean +- sample standard deviation over
# the seeds, and each seed's) and the majority-class baseline. Runs go to
# runs/bert-table/<arm>-n<N>-s<seed> (a finished run is not redone).
#
# Environment: PRE (default runs/bert-pre-2l), PRE_STEPS (1600), NS
# ("25 100 250"), SEEDS ("1 2 3"), ARMS ("pre scratch"), LR (1e-3), JOBS (2),
# OUT (runs/bert-table).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-400}"
PRE="${PRE:-runs/bert-pre-2l}"
PRE_STEPS="${PRE_STEPS:-1600}"
NS="${NS:-25 100 250}"
SEEDS="${SEEDS:-1 2 3}"
ARMS="${ARMS:-pre scratch}"
LR="${LR:-1e-3}"
JOBS="${JOBS:-2}"
OUT="${OUT:-runs/bert-table}"
make -s all
mkdir -p "$OUT"
if [[ " $ARMS " == *" pre "* ]] && ! grep -qs '"event":"end"' "$PRE/train.jsonl"; then
    echo "pretraining $PRE ($PRE_STEPS steps)..." >&2
    rm -rf "$PRE"
    build/attn bert pretrain --out "$PRE" --layers 2 --steps "$PRE_STEPS" --eval-every 400 --threads 1 \
        --quiet >"$PRE.txt" 2>&1
fi

finetune() { # arm N seed
    local dir="$OUT/$1-n$2-s$3"
    grep -qs '^test accuracy' "$dir.txt" && return 0
    rm -rf "$dir"
    local enc=(--layers 2)
    [[ $1 == pre ]] && enc=(--init "$PRE")
    build/attn bert finetune --out "$dir" "${enc[@]}" --train-per-class "$2" --seed "$3" --lr "$LR" \
        --steps "$STEPS" --eval-every 0 --threads 1 --quiet >"$dir.txt" 2>&1 ||
        echo "$dir failed: $(tail -n 1 "$dir.txt")" >&2
}
export -f finetune
export OUT PRE LR STEPS
for n in $NS; do for s in $SEEDS; do for a in $ARMS; do echo "$a $n $s"; done; done; done |
    xargs -P "$JOBS" -L 1 bash -c 'finetune "$@"' _

# The test accuracies (in %) of arm $1 with N = $2, one a line, seed by seed.
accs() {
    for s in $SEEDS; do
        grep -h '^test accuracy' "$OUT/$1-n$2-s$s.txt" 2>/dev/null | awk '{ print 100 * $3 }'
    done
}
# "mean +- std (a, b, c)" of the numbers on stdin.
stats() {
    awk '{ x[n++] = $1; s += $1 }
        END { if (!n) { print "n/a"; exit } m = s / n; for (i = 0; i < n; i++) v += (x[i] - m) ^ 2
              printf "%.1f +- %.1f (", m, (n > 1 ? sqrt(v / (n - 1)) : 0)
              for (i = 0; i < n; i++) printf "%s%.1f", i ? ", " : "", x[i]; printf ")" }'
}

echo "| labelled per class | pretrained encoder | from scratch | pretrained - scratch, same seed |"
echo "|---|---|---|---|"
for n in $NS; do
    d=$(paste <(accs pre "$n") <(accs scratch "$n") | awk 'NF == 2 { printf "%.4f\n", $1 - $2 }' | stats |
        sed -E 's/^([0-9])/+\1/; s/([(] *|, )([0-9])/\1+\2/g')
    echo "| $n | $(accs pre "$n" | stats) | $(accs scratch "$n" | stats) | $d |"
done
base=$(grep -h '^test accuracy' "$OUT"/*.txt 2>/dev/null | head -n 1 | sed -E 's/.*baseline ([0-9.]+).*/\1/')
echo
echo "Test accuracy in % on 606 fortunes, mean +- sample standard deviation over the fine-tuning seeds"
echo "($SEEDS); $STEPS fine-tuning steps of 32, lr $LR; majority-class baseline" \
    "$(awk -v b="${base:-nan}" 'BEGIN { printf "%.1f%%", 100 * b }') (chance 16.7%)."
