#!/usr/bin/env bash
# mpi_scaling.sh [STEPS]: training throughput of data-parallel ranks against
# threads on this machine (docs/distributed.md). The same small GPT (4
# layers, d_model 128, ctx 64, global batch 16, character tokens of the
# first MiB of the King James Bible, data/kjv) trains STEPS steps (default
# 30) as
#   1x1  one process, 1 thread
#   1x2  one process, 2 threads
#   2x1  mpirun -np 2, 1 thread each (each rank 8 of the 16 windows)
#   2x1y the same with OMPI_MCA_mpi_yield_when_idle=1: a rank waiting in the
#        allreduce yields its core instead of spinning (on a busy machine the
#        spinning rank takes CPU from the rank it waits for)
# REPS times each (default 3), interleaved (1x1, 1x2, 2x1, 2x1y, 1x1, ...) so a
# change in the machine's load hits every arm alike; the table gives each
# arm's median and all values of tokens/s (the "end" record's tokens_per_s:
# training time, evaluation apart), and for 2x1 the time the ranks spent in
# the gradient allreduce (the log's allreduce_s) as a share of training.
# Writes runs/mpi-scaling/table.md and prints it.
#
# Environment: REPS (3), OUT (runs/mpi-scaling), BUILD (build), KJV
# (data/kjv: scripts/get_kjv_data.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-30}"
REPS="${REPS:-3}"
OUT="${OUT:-runs/mpi-scaling}"
BUILD="${BUILD:-build}"
KJV="${KJV:-data/kjv}"
ATTN="$BUILD/attn"
make -s BUILD="$BUILD" "$BUILD/attn"
if ! "$ATTN" info | grep -q '^mpi: *yes'; then
    echo "mpi_scaling.sh: $ATTN was built without MPI (bash scripts/setup.sh --mpi; make)" >&2
    exit 1
fi
if [ ! -f "$KJV/train.txt" ]; then
    echo "mpi_scaling.sh: $KJV/train.txt is missing (scripts/get_kjv_data.sh)" >&2
    exit 1
fi
mkdir -p "$OUT/data"
head -c 1048576 "$KJV/train.txt" >"$OUT/data/train.txt"
head -c 16384 "$KJV/valid.txt" >"$OUT/data/valid.txt"
export OMPI_MCA_btl_vader_single_copy_mechanism=none
GPT=(gpt train --data "$OUT/data" --layers 4 --heads 4 --d-model 128 --ctx 64 --batch 16 --steps "$STEPS"
     --warmup 5 --eval-every 0 --eval-n 8 --log-every "$STEPS" --quiet --force)

run() { # arm rep
    local dir="$OUT/$1-$2"
    case "$1" in
    1x1) "$ATTN" "${GPT[@]}" --threads 1 --out "$dir" >"$dir.txt" 2>&1 ;;
    1x2) "$ATTN" "${GPT[@]}" --threads 2 --out "$dir" >"$dir.txt" 2>&1 ;;
    2x1) mpirun --oversubscribe --allow-run-as-root -np 2 "$ATTN" "${GPT[@]}" --threads 1 --out "$dir" \
             >"$dir.txt" 2>&1 ;;
    2x1y) OMPI_MCA_mpi_yield_when_idle=1 mpirun --oversubscribe --allow-run-as-root -np 2 "$ATTN" "${GPT[@]}" \
             --threads 1 --out "$dir" >"$dir.txt" 2>&1 ;;
    esac
    sed -n 's/.*"event":"end".*"train_seconds":\([^,]*\),"tokens_per_s":\([^,]*\),.*/\2 \1/p' \
        "$dir/train.jsonl"
}

declare -A TPS SECS
for rep in $(seq 1 "$REPS"); do
    for arm in 1x1 1x2 2x1 2x1y; do
        read -r tps secs <<<"$(run "$arm" "$rep")"
        TPS[$arm]+="${tps%.*} "
        SECS[$arm]+="$secs "
        echo "$arm rep $rep: ${tps%.*} tokens/s" >&2
    done
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
allreduce() { # arm
    for rep in $(seq 1 "$REPS"); do
        ar="$(sed -n 's/.*"event":"train".*"allreduce_s":\([^,}]*\).*/\1/p' "$OUT/$1-$rep/train.jsonl" | tail -n 1)"
        tr="$(sed -n 's/.*"event":"end".*"train_seconds":\([^,]*\),.*/\1/p' "$OUT/$1-$rep/train.jsonl")"
        awk -v a="$ar" -v t="$tr" 'BEGIN { printf "%.1f%% ", 100 * a / t }'
    done
}
params="$(sed -n 's/.*"parameters":\([0-9]*\).*/\1/p' "$OUT/1x1-1/train.jsonl")"
m11="$(echo "${TPS[1x1]}" | median)"
{
    echo "GPT, $params parameters, 4 layers, d_model 128, ctx 64, global batch 16 x 64 tokens, $STEPS steps;"
    echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $(date -u +%Y-%m-%d)."
    echo
    echo "| arm | processes x threads | tokens/s (median) | vs 1x1 | all runs |"
    echo "|---|---|---|---|---|"
    for arm in 1x1 1x2 2x1 2x1y; do
        m="$(echo "${TPS[$arm]}" | median)"
        label="${arm/x/ x }"
        [ "$arm" = 2x1y ] && label="2 x 1, yield when idle"
        echo "| $arm | $label | $m | $(awk -v a="$m" -v b="$m11" 'BEGIN { printf "%.2fx", a / b }') | ${TPS[$arm]}|"
    done
    echo
    echo "Time in the gradient allreduce (waiting for the other rank included), share of training time, per run:"
    echo "2x1: $(allreduce 2x1); 2x1y: $(allreduce 2x1y)"
} | tee "$OUT/table.md"
