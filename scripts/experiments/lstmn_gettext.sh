#!/usr/bin/env bash
# lstmn_gettext.sh: the LSTMN encoder-decoder (Cheng et al. 2016; shallow and
# deep fusion, `attn seq2seq train --cell lstmn --fusion shallow|deep`) against
# the RNN + Bahdanau translator on gettext en-de (issue 16; docs/lstmn.md).
#
#   bash scripts/experiments/lstmn_gettext.sh [--steps N] [--batch B] [--emb E]
#        [--hidden H] [--seeds "1 2 3"] [--runs "gru lstm shallow deep"] [--threads N]
#
# Every run has the same data (BPE, pairs up to 60 tokens), steps, batch,
# sizes, schedule (AdamW lr 3e-3, warmup 100, cosine) and seed; the test split
# is decoded greedily at the end (BLEU, exact match). Runs:
#   gru      GRU, bidirectional encoder, Bahdanau attention (the README's
#            "RNN, Bahdanau" row: gettext_table.sh's bahdanau kind)
#   lstm     LSTM, unidirectional encoder, Bahdanau attention (the LSTMN's
#            closest control: one direction, an LSTM cell)
#   shallow  --cell lstmn --fusion shallow
#   deep     --cell lstmn --fusion deep
# Defaults: 1000 steps of 64, emb 128, hidden 256, seed 1 (the README's budget
# and sizes). The LSTMN's tapes need more arena at those sizes (--arena-mb
# 3072 is passed to every run). A run whose directory holds its test result
# is not trained again. Writes runs/lstmn_gettext/<tag>/results.md and .json
# (tag: steps, batch, sizes): test BLEU and exact match, and the mean training
# loss of the last 100 steps (a held-out figure while training is under one
# epoch: every batch is new to the model when it is scored).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
STEPS=1000 BATCH=64 EMB=128 HIDDEN=256 SEEDS="1" RUNS="gru shallow deep" THREADS=1
while [ $# -gt 0 ]; do
    case "$1" in
    --steps) STEPS="$2"; shift ;;
    --batch) BATCH="$2"; shift ;;
    --emb) EMB="$2"; shift ;;
    --hidden) HIDDEN="$2"; shift ;;
    --seeds) SEEDS="$2"; shift ;;
    --runs) RUNS="$2"; shift ;;
    --threads) THREADS="$2"; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "lstmn_gettext.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done
ATTN="$ROOT/build/attn"
[ -x "$ATTN" ] || make -j2 >/dev/null
[ -f data/gettext/en-de/train.tsv ] || bash scripts/get_gettext_data.sh --langs de
OUT="runs/lstmn_gettext/s${STEPS}-b${BATCH}-e${EMB}-h${HIDDEN}"
mkdir -p "$OUT"
for seed in $SEEDS; do
    for run in $RUNS; do
        case "$run" in
        gru) model=(--cell gru --bidir 1) ;;
        lstm) model=(--cell lstm --bidir 0) ;;
        shallow) model=(--cell lstmn --fusion shallow) ;;
        deep) model=(--cell lstmn --fusion deep) ;;
        *) echo "lstmn_gettext.sh: unknown run '$run'" >&2; exit 2 ;;
        esac
        dir="$OUT/$run-s$seed"
        if grep -qs '"event":"end".*"bleu"' "$dir/train.jsonl"; then
            echo "== $run seed $seed: done before"
            continue
        fi
        echo "== $run seed $seed (${model[*]}) $(date -u +%H:%M:%S)"
        "$ATTN" seq2seq train --task gettext --lang de --attention bahdanau "${model[@]}" \
            --emb "$EMB" --hidden "$HIDDEN" --batch "$BATCH" --steps "$STEPS" --seed "$seed" \
            --threads "$THREADS" --arena-mb 3072 --eval-every 0 --quiet --force --out "$dir" \
            >"$dir.log" 2>&1 || { echo "$run seed $seed failed: $(tail -n 1 "$dir.log")"; continue; }
        tail -n 2 "$dir.log"
    done
done
python3 - "$OUT" "$STEPS" "$RUNS" $SEEDS <<'PY'
import json, os, statistics, sys
out, steps, runs, seeds = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]
names = {"gru": "GRU (bidirectional) + Bahdanau", "lstm": "LSTM (unidirectional) + Bahdanau",
         "shallow": "LSTMN, shallow fusion", "deep": "LSTMN, deep fusion"}
rows, res = [], {}
for run in runs:
    bleu, em, params, tps, late = [], [], None, [], []
    for s in seeds:
        path = os.path.join(out, "%s-s%s" % (run, s), "train.jsonl")
        if not os.path.exists(path):
            continue
        for line in open(path):
            r = json.loads(line)
            if r.get("event") == "start":
                params = r.get("parameters")
            if r.get("event") == "train" and "tokens_per_s" in r:
                tps.append(r["tokens_per_s"])
                if r["step"] > steps - 100:  # the last 100 steps (logged every 50)
                    late.append(r["loss"])
            if r.get("event") == "end" and "bleu" in r:
                bleu.append(r["bleu"])
                em.append(100 * r["exact_match"])
    if not bleu:
        continue
    loss = statistics.mean(late) if late else float("nan")
    res[run] = {"bleu": bleu, "exact_match_pct": em, "parameters": params,
                "train_loss_last_100_steps": loss}
    rows.append("| %s | %s | %s | %.2f | %s | %.3f | %.0f |" % (
        names[run], params, " / ".join("%.2f" % b for b in bleu), statistics.mean(bleu),
        " / ".join("%.2f%%" % e for e in em), loss, statistics.mean(tps) if tps else float("nan")))
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(res, f, indent=1)
table = ["| model | parameters | test BLEU (seeds %s) | mean | exact match | train loss, last 100 steps "
         "| train tokens/s |" % " ".join(seeds), "|---|---:|---|---:|---|---:|---:|"] + rows
with open(os.path.join(out, "results.md"), "w") as f:
    f.write("\n".join(table) + "\n")
print("\n".join(table))
PY
