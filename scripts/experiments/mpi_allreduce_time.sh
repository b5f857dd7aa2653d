#!/usr/bin/env bash
# mpi_allreduce_time.sh [BYTES...]: the transfer time of the gradient
# allreduce alone on this machine, 2 ranks, for gradients of BYTES bytes
# (default: 3245056, the 811,264-parameter GPT of mpi_scaling.sh, and 64 MiB),
# with Open MPI's default and with OMPI_MCA_mpi_yield_when_idle=1
# (docs/distributed.md). Needs mpicc (bash scripts/setup.sh --mpi).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-runs/mpi-scaling}"
mkdir -p "$OUT"
mpicc -O2 -std=c11 -o "$OUT/mpi_allreduce_time" scripts/experiments/mpi_allreduce_time.c
export OMPI_MCA_btl_vader_single_copy_mechanism=none
[ $# -gt 0 ] || set -- 3245056 67108864
for bytes in "$@"; do
    for y in 0 1; do
        printf 'yield_when_idle=%s: ' "$y"
        OMPI_MCA_mpi_yield_when_idle=$y mpirun --oversubscribe --allow-run-as-root -np 2 \
            "$OUT/mpi_allreduce_time" "$bytes" 50
    done
done
