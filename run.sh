#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing (Debian packages
# and data sets, see scripts/setup.sh), build attn, show what it found on this
# machine, and run the demo. Usage: ./run.sh [demo options]
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
make -j"$(nproc 2>/dev/null || echo 2)" all
echo
build/attn info
echo
echo "== demo: MLP on Fashion-MNIST (examples/mlp_fashion.c)"
mkdir -p runs
build/examples/mlp_fashion --epochs 3 --log runs/mlp_fashion.jsonl "$@"
