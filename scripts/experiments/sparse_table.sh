#!/usr/bin/env bash
# sparse_table.sh: the block-sparse pattern experiments of issue 15, part 3
# (docs/sparse.md, "Experiments"). Stages (arguments, default all):
#
#   fmnist   Fashion-MNIST generated pixel by pixel: attn lm train --pixels 16
#            (784 symbols of 16 levels per image, raster order; block raster
#            order for local 2-D; FM_ONLY=NAME runs one row), a GPT of FM_LAYERS layers, d_model FM_D,
#            4 heads, FM_STEPS steps of FM_BATCH images, AdamW lr 2e-3, seed
#            1, THREADS threads; rows: full attention, local 1-D, local 2-D,
#            strided and fixed (factorised over heads: heads=alternate).
#            Reported: test bits/dim over the first FM_TEST test images, and
#            the share of the causal attention entries each pattern leaves
#            visible (and of the fused kernel's 64 x 64 tiles it computes).
#   wiki     data/wiki bytes at context 4096, the common budget of the issue:
#            --d-model 64 --layers 2 --heads 4 --ctx 4096 --batch 1 --steps
#            WIKI_STEPS (300) --lr 2e-3 --threads 1 --seed 1; rows full,
#            fixed, sliding + global; test bits/byte over the whole test.txt
#            (windows of 4096, no overlap).
#   scaling  build/bench/bench_sparse --scaling --quick: forward + backward time
#            and extra memory against T (1k .. 64k) of dense fused attention
#            and each pattern, a log-log SVG with the fitted slopes.
#   pictures the mask of each Fashion-MNIST pattern (attn lm pattern, 784
#            positions, one panel per head variant) and, for each trained
#            Fashion-MNIST model, layer 1 head 1 over the first test image and
#            the weights of its middle pixel in every head (attn lm viz --png),
#            PNG files under $OUT/img.
#   table    runs/sparse/table.md from what the stages left.
#
# Each run is skipped when its result exists (delete its folder to redo).
# The machine this was measured on was loaded (2 cores, many jobs): the
# seconds in the table are CPU seconds of one thread, comparable only as
# ratios within one table. SMOKE=1: a seconds-long check of the script (tiny
# models, 2 steps; numbers mean nothing).
set -euo pipefail
cd "$(dirname "$0")/../.."
ATTN="${ATTN:-build/attn}"
OUT="${OUT:-runs/sparse}"
THREADS="${THREADS:-1}"
FM_STEPS="${FM_STEPS:-200}" FM_BATCH="${FM_BATCH:-8}" FM_D="${FM_D:-64}" FM_LAYERS="${FM_LAYERS:-2}"
FM_TEST="${FM_TEST:-1000}" FM_LEVELS="${FM_LEVELS:-16}"
WIKI_STEPS="${WIKI_STEPS:-300}" WIKI_CTX="${WIKI_CTX:-4096}" WIKI_EVAL="${WIKI_EVAL:-0}"
if [ "${SMOKE:-0}" = 1 ]; then
    OUT="$OUT-smoke"; FM_STEPS=2; FM_BATCH=2; FM_D=16; FM_TEST=4; WIKI_STEPS=2; WIKI_CTX=256; WIKI_EVAL=2048
fi
STAGES=("$@")
[ ${#STAGES[@]} -eq 0 ] && STAGES=(fmnist wiki scaling pictures table)
mkdir -p "$OUT"

# name and pattern of each Fashion-MNIST row (empty: full attention)
FM_ROWS=(
    "full|"
    "local1d|local1d:block=84"
    "local2d|local2d:width=28,bh=4,bw=14,mh=4,mw=4"
    "strided|strided:block=28,heads=alternate"
    "fixed|fixed:block=56,summary=8,heads=alternate"
)
# the long-text rows
WIKI_ROWS=(
    "full|"
    "fixed|fixed:block=128,summary=16,heads=alternate"
    "sliding_global|global:globals=16,window=256"
)

fmnist() {
    for row in "${FM_ROWS[@]}"; do
        local name="${row%%|*}" pat="${row#*|}" dir="$OUT/fmnist/${row%%|*}"
        [ -s "$dir/test.txt" ] && continue
        [ -n "${FM_ONLY:-}" ] && [ "$name" != "$FM_ONLY" ] && continue
        local popt=()
        [ -n "$pat" ] && popt=(--pattern "$pat")
        echo "== fmnist $name ${pat:-(full attention)}"
        mkdir -p "$OUT/fmnist"
        "$ATTN" lm train --arch gpt --pixels "$FM_LEVELS" --data data/fashion-mnist --out "$dir" --force \
            --layers "$FM_LAYERS" --heads 4 --d-model "$FM_D" --batch "$FM_BATCH" --steps "$FM_STEPS" \
            --lr 2e-3 --warmup 20 --seed 1 --threads "$THREADS" --eval-every 0 --final-eval-n 200 \
            --log-every 10 --quiet "${popt[@]}" > "$dir.log" 2>&1 || { echo "fmnist $name failed: $dir.log"; return 1; }
        "$ATTN" lm eval --model "$dir" --split test --images "$FM_TEST" --batch 8 --threads "$THREADS" \
            > "$dir/test.tmp" && mv "$dir/test.tmp" "$dir/test.txt"
        cat "$dir/test.txt"
    done
}

wiki() {
    for row in "${WIKI_ROWS[@]}"; do
        local name="${row%%|*}" pat="${row#*|}" dir="$OUT/wiki/${row%%|*}"
        [ -s "$dir/test.txt" ] && continue
        local popt=()
        [ -n "$pat" ] && popt=(--pattern "$pat")
        echo "== wiki $name ${pat:-(full attention)}"
        mkdir -p "$OUT/wiki"
        if [ ! -s "$dir/model.safetensors" ] || ! grep -q '"event":"end"' "$dir/train.jsonl" 2>/dev/null; then
            "$ATTN" lm train --arch gpt --data data/wiki --out "$dir" --force \
                --d-model 64 --layers 2 --heads 4 --ctx "$WIKI_CTX" --batch 1 --steps "$WIKI_STEPS" --lr 2e-3 \
                --threads "$THREADS" --seed 1 --eval-every 0 --final-eval-n 16384 --log-every 10 --quiet \
                "${popt[@]}" > "$dir.log" 2>&1 || { echo "wiki $name failed: $dir.log"; return 1; }
        fi
        "$ATTN" lm eval --model "$dir" --split test --bytes "$WIKI_EVAL" --batch 1 --threads "$THREADS" \
            > "$dir/test.tmp" && mv "$dir/test.tmp" "$dir/test.txt"
        cat "$dir/test.txt"
    done
}

pictures() {
    mkdir -p "$OUT/img"
    for row in "${FM_ROWS[@]}"; do
        local name="${row%%|*}" pat="${row#*|}" dir="$OUT/fmnist/${row%%|*}" heads=1
        case "$pat" in *heads=alternate*) heads=2 ;; esac
        [ -n "$pat" ] && "$ATTN" lm pattern --pattern "$pat" --ctx 784 --heads "$heads" --layers 1 \
            --png "$OUT/img/mask_fmnist_$name.png"
        [ -s "$dir/model.safetensors" ] && "$ATTN" lm viz --model "$dir" --png "$OUT/img/fmnist_$name" \
            --layer 1 --head 1 --image 0 --query-pixel 406 --threads "$THREADS"
    done
}

scaling() {
    make -s build/bench/bench_sparse
    local quick=(--quick)
    [ "${SMOKE:-0}" = 1 ] && quick=(--smoke)
    "${BENCH:-build/bench/bench_sparse}" --scaling "${quick[@]}" --svg "$OUT/scaling.svg" --json "$OUT/scaling.json" \
        | tee "$OUT/scaling.txt"
}

# one row of the table from a run folder: share columns from train.jsonl's
# start record, CPU seconds from its end record, the metric from test.txt
row() {
    python3 - "$@" <<'PY'
import json, re, sys
dirn, name, unit = sys.argv[1:4]
start = end = None
try:
    for line in open(dirn + "/train.jsonl"):
        r = json.loads(line)
        if r.get("event") in ("start", "resume") and start is None: start = r
        if r.get("event") == "end": end = r
except OSError:
    pass
try:
    t = open(dirn + "/test.txt").read()
    m = re.search(r"([0-9.]+) " + unit, t)
    metric = m.group(1) if m else "?"
except OSError:
    metric = "(not run)"
vis = 100 * start.get("visible_share", 1.0) if start else float("nan")
til = 100 * start.get("tile_share", 1.0) if start else float("nan")
cpu = end.get("train_cpu_seconds", float("nan")) if end else float("nan")
ms = end.get("step_ms", float("nan")) if end else float("nan")
pat = ""
if start:
    d = start.get("description", "")
    m = re.search(r"pattern (\S+)", d)
    pat = m.group(1) if m else "full (causal)"
print(f"| {name} | `{pat}` | {metric} | {vis:.1f}% | {til:.1f}% | {cpu:.0f} | {ms:.0f} |")
PY
}

table() {
    local t="$OUT/table.md"
    {
        echo "# Block-sparse patterns (scripts/experiments/sparse_table.sh)"
        echo
        echo "## Fashion-MNIST pixel by pixel ($FM_LEVELS levels, 784 positions)"
        echo
        echo "GPT: $FM_LAYERS layers, d_model $FM_D, 4 heads, $FM_STEPS steps of $FM_BATCH images, lr 2e-3, seed 1,"
        echo "threads $THREADS. Test bits/dim over the first $FM_TEST test images. Visible: the share of the"
        echo "causal attention entries the pattern keeps; tiles: the share of the dense causal kernel's 64 x 64"
        echo "tiles the fused kernel computes. CPU s: training seconds of CPU (loaded machine)."
        echo
        echo "| row | pattern | test bits/dim | visible | tiles | train CPU s | ms/step (wall) |"
        echo "|---|---|---|---|---|---|---|"
        for r in "${FM_ROWS[@]}"; do row "$OUT/fmnist/${r%%|*}" "${r%%|*}" "bits/dim"; done
        echo
        echo "## Wikipedia bytes at context $WIKI_CTX"
        echo
        echo "GPT: --d-model 64 --layers 2 --heads 4 --ctx $WIKI_CTX --batch 1 --steps $WIKI_STEPS --lr 2e-3"
        if [ "$WIKI_EVAL" = 0 ]; then ev="the whole test.txt"; else ev="the first $WIKI_EVAL bytes of test.txt"; fi
        echo "--threads $THREADS --seed 1. Test bits/byte over $ev (windows of $WIKI_CTX, no overlap)."
        echo
        echo "| row | pattern | test bits/byte | visible | tiles | train CPU s | ms/step (wall) |"
        echo "|---|---|---|---|---|---|---|"
        for r in "${WIKI_ROWS[@]}"; do row "$OUT/wiki/${r%%|*}" "${r%%|*}" "bits/byte"; done
        if [ -s "$OUT/scaling.txt" ]; then
            echo
            echo "## Scaling (bench_sparse --scaling, 1 thread; $OUT/scaling.svg)"
            echo
            echo '```'
            cat "$OUT/scaling.txt"
            echo '```'
        fi
    } > "$t"
    cat "$t"
}

for s in "${STAGES[@]}"; do
    case "$s" in
    fmnist | wiki | scaling | pictures | table) "$s" ;;
    *) echo "sparse_table.sh: unknown stage '$s' (fmnist, wiki, scaling, pictures, table)" >&2; exit 2 ;;
    esac
done
