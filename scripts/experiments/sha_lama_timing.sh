#!/usr/bin/env bash
# sha_lama_timing.sh: training speed of the issue 19 models measured
# interleaved (the shared machine's load changes from minute to minute, so
# the ms/step of runs taken one after the other are not comparable):
# ROUNDS rounds, each a STEPS-step run of every model in turn, 1 thread;
# prints the median ms/step of each and its ratio to the first model of its
# group. Groups: the byte LMs of sha_lstm_table.sh (sha-lstm, the ablation
# without attention, lstm-1, lstm, gpt at ~890k parameters, 8 x 64 bytes a
# step) and the classifiers of
# lama_table.sh (lama, attn, mhsa, mean; 32 fortunes a step).
#
# Environment: ROUNDS (3), STEPS (20), THREADS (1), OUT (runs/sha_lama_timing).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS="${ROUNDS:-3}"
STEPS="${STEPS:-20}"
THREADS="${THREADS:-1}"
OUT="${OUT:-runs/sha_lama_timing}"
make -s build/attn
mkdir -p "$OUT/data"
# the training text of data/wiki with a short valid.txt (the final
# evaluations are not what is timed)
ln -sf "$(pwd)/data/wiki/train.txt" "$OUT/data/train.txt"
head -c 3000 data/wiki/valid.txt >"$OUT/data/valid.txt"
cp "$OUT/data/valid.txt" "$OUT/data/test.txt"
A=build/attn
C=(--steps "$STEPS" --threads "$THREADS" --eval-every 0 --eval-n 1 --quiet --force --warmup 0 --seed 1)
declare -A CMD
CMD[sha-lstm]="rnnlm train --arch sha-lstm --layers 4 --d 129 --batch 8 --ctx 64 --data $OUT/data"
CMD[sha-noattn]="rnnlm train --arch sha-lstm --layers 4 --d 133 --attn-layer -1 --batch 8 --ctx 64 --data $OUT/data"
CMD[lstm-1]="rnnlm train --arch lstm --layers 1 --d 318 --batch 8 --ctx 64 --data $OUT/data"
CMD[lstm]="rnnlm train --arch lstm --layers 4 --d 162 --batch 8 --ctx 64 --data $OUT/data"
CMD[gpt]="lm train --arch gpt --layers 4 --heads 4 --d-model 128 --d-inner 567 --batch 8 --ctx 64 --data $OUT/data"
for p in lama attn mhsa mean; do
    CMD[$p]="classify train --pool $p --embed 64 --hidden 64 --heads 4 --rank 8 --batch 32"
done
ms() { # the step_ms of the end record of DIR/train.jsonl (the GPT: train_seconds / steps)
    python3 -c 'import json,sys
e=[json.loads(l) for l in open(sys.argv[1]) if "\"end\"" in l][-1]
print(e["step_ms"] if "step_ms" in e else 1000*e["train_seconds"]/int(sys.argv[2]))' "$1/train.jsonl" "$STEPS"
}
: >"$OUT/times.txt"
for r in $(seq 1 "$ROUNDS"); do
    for n in sha-lstm sha-noattn lstm-1 lstm gpt lama attn mhsa mean; do
        # shellcheck disable=SC2086
        "$A" ${CMD[$n]} "${C[@]}" --out "$OUT/$n" >"$OUT/$n.log" 2>&1 || { echo "$n failed: $(tail -n 3 "$OUT/$n.log")" >&2; exit 1; }
        echo "$n $(ms "$OUT/$n")" >>"$OUT/times.txt"
    done
done
python3 - "$OUT/times.txt" <<'PY'
import statistics, sys
t = {}
for line in open(sys.argv[1]):
    n, v = line.split()
    t.setdefault(n, []).append(float(v))
for group in (["sha-lstm", "sha-noattn", "lstm-1", "lstm", "gpt"], ["lama", "attn", "mhsa", "mean"]):
    base = statistics.median(t[group[0]])
    for n in group:
        m = statistics.median(t[n])
        print("%-9s median %7.1f ms/step over %d runs, %.2fx %s" % (n, m, len(t[n]), m / base, group[0]))
PY
