#!/usr/bin/env bash
# graph_table.sh: node classification on Debian's package graph (issue 19,
# docs/graph_attention.md "Node classification"): a package's Section from
# the words of its one-line description, without (layers 0: the words alone)
# and with graph self-attention over the packages it depends on and that
# depend on it (1 and 2 layers). Same budget for every row: STEPS full-graph
# steps, AdamW lr 3e-3 (warmup 20, cosine to 3e-4), hidden 64, 4 heads,
# 16 words x 32 dimensions, dropout 0.1, THREADS threads, seeds SEEDS.
# Reports the test accuracy (10% of the packages, by a hash of the name) per
# seed and its mean, parameters and ms/step; writes runs/graph/table.md.
# Environment: STEPS (150), THREADS (1), SEEDS ("1 2 3"), REUSE=1 (keep the
# runs whose log has a test accuracy: a later call adds seeds), SMOKE=1 (3 steps
# on the first 3,000 packages of the index: a check of the script).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${STEPS:-150}"
THREADS="${THREADS:-1}"
SEEDS="${SEEDS:-1 2 3}"
OUT="${OUT:-runs/graph}"
make -s build/attn
[ -f data/debgraph/Packages ] || bash scripts/get_debian_graph.sh
DATA=data/debgraph/Packages
if [ "${SMOKE:-0}" = 1 ]; then
    STEPS=3; SEEDS=1; OUT="${OUT}-smoke"
    mkdir -p "$OUT"
    awk 'BEGIN { RS = ""; ORS = "\n\n" } NR <= 3000' "$DATA" >"$OUT/Packages"
    DATA="$OUT/Packages"
fi
mkdir -p "$OUT"
declare -A ACC MS PARAMS
t_start=$(date +%s)
for layers in 0 1 2; do
    for seed in $SEEDS; do
        dir="$OUT/layers$layers-seed$seed"
        echo "== layers $layers seed $seed" >&2
        if [ "${REUSE:-0}" = 1 ] && grep -q "; test accuracy" "$dir.log" 2>/dev/null; then
            echo "   reusing $dir.log" >&2
        elif ! build/attn graph train --data "$DATA" --out "$dir" --layers "$layers" --steps "$STEPS" --seed "$seed" \
            --threads "$THREADS" --eval-every 0 --quiet --force >"$dir.log" 2>&1; then
            echo "layers $layers seed $seed: failed: $(tail -n 2 "$dir.log")" >&2
            continue
        fi
        ACC[$layers-$seed]=$(sed -n 's/.*; test accuracy \([0-9.]*\) .*/\1/p' "$dir.log")
        MS[$layers-$seed]=$(sed -n 's/.*: \([0-9.]*\) ms\/step.*/\1/p' "$dir.log")
        PARAMS[$layers]=$(sed -n 's/.*; \([0-9]*\) parameters$/\1/p' "$dir.log")
        echo "   test accuracy ${ACC[$layers-$seed]}, ${MS[$layers-$seed]} ms/step" >&2
    done
done
t_total=$(( $(date +%s) - t_start ))
table="$OUT/table.md"
{
    echo "# Debian package sections from descriptions, with and without graph attention (issue 19)"
    echo
    echo "$(grep -c '^Package: ' "$DATA") packages of $(cat data/debgraph/SOURCE 2>/dev/null || echo "$DATA");"
    echo "$STEPS full-graph steps, threads $THREADS; the script took $t_total s on $(nproc) CPU(s)."
    echo
    echo "| model | parameters | test accuracy per seed ($SEEDS) | mean | ms/step (seed 1) |"
    echo "|---|---|---|---|---|"
    for layers in 0 1 2; do
        accs=""; sum=0; n=0
        for seed in $SEEDS; do
            a=${ACC[$layers-$seed]:-}
            accs="$accs ${a:-failed}"
            [ -n "$a" ] && { sum=$(awk -v s="$sum" -v a="$a" 'BEGIN { print s + a }'); n=$((n + 1)); }
        done
        mean=$(awk -v s="$sum" -v n="$n" 'BEGIN { if (n) printf "%.4f", s / n; else print "-" }')
        name=$([ "$layers" = 0 ] && echo "words only (no attention)" || echo "$layers graph attention layer(s)")
        first=${SEEDS%% *}
        echo "| $name | ${PARAMS[$layers]:-} |$accs | $mean | ${MS[$layers-$first]:-} |"
    done
} >"$table"
cat "$table"
