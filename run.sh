#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing (Debian packages
# and data sets, see scripts/setup.sh), build attn, show what it found on this
# machine, and run the demo: an RNN encoder-decoder with Bahdanau attention
# learns to normalise human-written dates to ISO (about a minute on 2 cores),
# translates a few inputs, and writes an alignment map of one of them.
# Usage: ./run.sh [extra options for `attn seq2seq train`]
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
make -j"$(nproc 2>/dev/null || echo 2)" all
echo
build/attn info
echo
echo "== demo: seq2seq with Bahdanau attention on the date task (docs/seq2seq.md)"
mkdir -p runs
build/attn seq2seq train --task dates --attention bahdanau --steps 600 --out runs/demo-dates --force "$@"
echo
echo "== translations (greedy) and an alignment map"
build/attn seq2seq translate --model runs/demo-dates --svg runs/demo-dates/alignment.svg \
    "the 3rd of March, 1997" "Tuesday, July 4 2000" "12/25/99"
echo
echo "alignment maps: runs/demo-dates/alignment-*.svg (output characters vs source characters)"
echo "training log:   runs/demo-dates/train.jsonl"
echo "the MLP example of the core engine: build/examples/mlp_fashion (examples/mlp_fashion.c)"
