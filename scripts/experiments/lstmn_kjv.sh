#!/usr/bin/env bash
# lstmn_kjv.sh: word-level language models on the King James Bible, LSTMN
# (Cheng et al. 2016) against an LSTM of the same parameter count (issue 16).
#
#   bash scripts/experiments/lstmn_kjv.sh [--seeds "1 2 3"] [--steps N] [--threads N] [--ablation]
#
# Default: seed 1 only (on the shared 2-core machine of 2026-12-06 one pair of
# runs took about 25 minutes; the issue asks for three seeds: --seeds "1 2 3").
# A run whose directory already holds its test result is not trained again, so
# a second call with more seeds only adds the missing runs and the table.
#
# 1. Re-splits data/kjv (scripts/get_kjv_data.sh; chapters hashed into
#    train/valid/test) by whole books with tools/kjv_book_split.py into
#    runs/kjv_books: valid Joshua, Proverbs, Romans; test Judges, John,
#    Hebrews; the other 60 books train.
# 2. For each seed trains `attn lstmn train` twice with the same data,
#    vocabulary (the 4,998 most frequent training words, <unk>, <eos>),
#    embedding 128, windows of 35 words from a zero state, batch 32, the
#    same steps and schedule:
#      lstmn: hidden 128, attention 128, the h~ term on;
#      lstm:  the hidden size whose parameter count is closest to the LSTMN's
#             (computed below from the formulas of attn_lstmn_lm_param_count).
#    With --ablation, also the LSTMN without the score's h~ term (--summary 0,
#    the encoder form; 16,384 parameters fewer), row "LSTMN, no h~ term".
# 3. `attn lstmn eval --split test` on each, and writes the table
#    runs/lstmn_kjv/results.md and results.json (test perplexity per seed,
#    mean and spread, parameters, words/s).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SEEDS="1"
STEPS=600
THREADS=1
ABLATION=0
while [ $# -gt 0 ]; do
    case "$1" in
    --seeds) SEEDS="$2"; shift ;;
    --steps) STEPS="$2"; shift ;;
    --threads) THREADS="$2"; shift ;;
    --ablation) ABLATION=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "lstmn_kjv.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done
ATTN="$ROOT/build/attn"
[ -x "$ATTN" ] || make -j2 >/dev/null
[ -f data/kjv/train.txt ] || bash scripts/get_kjv_data.sh --quiet
OUT=runs/lstmn_kjv
DATA=runs/kjv_books
mkdir -p "$OUT"
python3 tools/kjv_book_split.py data/kjv "$DATA" >/dev/null

V=5000 D=128 H=128 A=128
# the LSTM hidden size with the LSTMN's parameter count (vocabulary V: every word list of
# the KJV's training books has more than V words, so the vocabulary is exactly V)
HL=$(python3 -c "
V,D,H,A=$V,$D,$H,$A
lstmn=V*D+V*H+V+4*H*D+4*H+A*D+4*H*H+A*H+A+A*H
lstm=lambda h: V*D+V*h+V+4*h*(D+h)+8*h
print(min(range(1,4*H), key=lambda h: abs(lstm(h)-lstmn)))")
COMMON=(--data "$DATA" --vocab $V --embed $D --ctx 35 --batch 32 --steps "$STEPS" --warmup 50
        --lr 3e-3 --eval-every 200 --eval-n 100 --threads "$THREADS" --quiet --force)
CELLS="lstmn lstm"
[ "$ABLATION" = 1 ] && CELLS="lstmn lstm lstmn-nosum"
for seed in $SEEDS; do
    for run in $CELLS; do
        dir="$OUT/$run-s$seed"
        cell=${run%-nosum}
        case "$run" in
        lstmn) size=(--hidden $H --attn $A --summary 1) ;;
        lstmn-nosum) size=(--hidden $H --attn $A --summary 0) ;;
        *) size=(--hidden "$HL") ;;
        esac
        if [ -s "$dir.test.json" ] && [ -f "$dir/model.safetensors" ]; then
            echo "== $run seed $seed: done before ($dir.test.json)"
            continue
        fi
        echo "== $run seed $seed (${size[*]})"
        "$ATTN" lstmn train --out "$dir" --cell $cell "${size[@]}" --seed "$seed" "${COMMON[@]}" \
            | tee "$dir.train.log"
        "$ATTN" lstmn eval --model "$dir" --split test --threads "$THREADS" | tee "$dir.test.json"
    done
done
python3 - "$OUT" "$CELLS" $SEEDS <<'PY'
import json, math, os, statistics, sys
out, cells, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
names = {"lstmn": "LSTMN", "lstm": "LSTM", "lstmn-nosum": "LSTMN, no h~ term"}
rows, res = [], {}
for cell in cells:
    ppl, params, wps, wpc = [], None, [], []
    for s in seeds:
        d = os.path.join(out, "%s-s%s" % (cell, s))
        with open(d + ".test.json") as f:
            j = json.loads(f.read().strip().splitlines()[-1])
        ppl.append(j["perplexity"])
        params = j["parameters"]
        with open(os.path.join(d, "train.jsonl")) as f:
            for line in f:
                r = json.loads(line)
                if r.get("event") == "end":
                    wps.append(r["tokens_per_s"])
                    wpc.append(r["tokens_per_s"] * r["train_seconds"] / r["train_cpu_seconds"])
    mean = statistics.mean(ppl)
    sd = statistics.stdev(ppl) if len(ppl) > 1 else float("nan")
    res[cell] = {"test_ppl": ppl, "mean": mean, "sd": sd, "parameters": params, "words_per_s": wps,
                 "words_per_cpu_s": wpc}
    rows.append("| %s | %d | %s | %.2f +- %.2f | %.0f | %.0f |" % (
        names[cell], params, ", ".join("%.2f" % p for p in ppl), mean, sd, statistics.mean(wps),
        statistics.mean(wpc)))
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(res, f, indent=1)
table = ["| model | parameters | test perplexity per seed (%s) | mean +- sd | train words/s | words per CPU s |"
         % " ".join(seeds), "|---|---:|---|---:|---:|---:|"] + rows
with open(os.path.join(out, "results.md"), "w") as f:
    f.write("\n".join(table) + "\n")
print("\n".join(table))
PY
