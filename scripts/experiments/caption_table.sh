#!/usr/bin/env bash
# caption_table.sh [ENCODER] [SEEDS] [STEPS] [BUDGET_S]: Show, Attend and
# Tell with soft, hard and no attention over the same frozen CNN (ENCODER,
# default /work/models/cnn-base/model.safetensors or $CAPTION_ENCODER), SEEDS seeds each
# (default "1 2 3"), each run one thread, STEPS optimizer steps of 32
# captions (default 2000) or BUDGET_S seconds of training (default 240),
# whichever comes first, one run at a time; the scenes are encoded once
# (runs/caption/cache). Then `attn
# caption eval` on the 1000 held-out test scenes (the same for every run).
# Writes runs/caption/<mode>-s<seed>/ (model, log, eval.json, two attention
# pictures) and prints, and writes to runs/caption/table.md, a Markdown table
# of every run and the mean +- spread (sample standard deviation) per mode.
set -euo pipefail
cd "$(dirname "$0")/../.."
ENCODER="${1:-${CAPTION_ENCODER:-/work/models/cnn-base/model.safetensors}}"
SEEDS="${2:-1 2 3}"
STEPS="${3:-2000}"
BUDGET="${4:-240}"
# A run kind is soft, none, or hard attention (REINFORCE, moving-average
# baseline, entropy bonus) in one of these forms:
#   hard         the expected context on 80% of the captions (--mix 0.8)
#   hard-mix0.5  the paper's 50%
#   hard-k4      mix 0.5, 4 draws per caption with leave-one-out baselines and
#                reward-to-go, 8 captions a step (32 rows, as soft's batch)
#   hard-warm    the paper's rule (mix 0.5, one draw, moving baseline), the
#                decoder warm-started from soft-s<seed> (run first: list soft
#                before it), WARM_STEPS steps (default 1000) at lr 1e-3
#   soft-warm    the control of hard-warm: soft-s<seed> trained on with soft
#                attention for the same WARM_STEPS steps at lr 1e-3
MODES="${MODES:-soft hard none}"
WARM_STEPS="${WARM_STEPS:-1000}"
flags_of() { # kind seed
    case "$1" in
    soft | none) echo "--attention $1" ;;
    hard) echo "--attention hard --mix 0.8" ;;
    hard-mix0.5) echo "--attention hard --mix 0.5" ;;
    hard-k4) echo "--attention hard --mix 0.5 --samples 4 --reward-to-go 1 --batch 8" ;;
    hard-warm) echo "--attention hard --mix 0.5 --init runs/caption/soft-s$2 --lr 1e-3" ;;
    soft-warm) echo "--attention soft --init runs/caption/soft-s$2 --lr 1e-3" ;;
    *) echo "caption_table.sh: unknown run kind $1" >&2; exit 2 ;;
    esac
}
EXTRA="${CAPTION_EXTRA:-}"
make -s all
mkdir -p runs/caption
for seed in $SEEDS; do # seed by seed: a cut-short table still compares the modes
    for mode in $MODES; do
        dir="runs/caption/$mode-s$seed"
        if [ -f "$dir/eval.json" ]; then continue; fi # done already (re-run: delete it)
        flags=$(flags_of "$mode" "$seed")
        steps="$STEPS"
        if [[ $mode == *-warm ]]; then steps="$WARM_STEPS"; fi
        # shellcheck disable=SC2086
        build/attn caption train --out "$dir" --encoder "$ENCODER" $flags --seed "$seed" \
            --steps "$steps" --time-budget "$BUDGET" --eval-every 0 --threads 1 --quiet --force \
            --cache runs/caption/cache $EXTRA \
            >"$dir.txt" 2>&1 || { echo "$mode seed $seed: training failed: $(tail -n 2 "$dir.txt")"; continue; }
        build/attn caption eval --model "$dir" --test-scenes 1000 --pictures 2 --json "$dir/eval.json" \
            --cache runs/caption/cache \
            --threads 1 >>"$dir.txt" 2>&1 || { echo "$mode seed $seed: eval failed: $(tail -n 2 "$dir.txt")"; continue; }
    done
done
python3 - "$MODES" "$SEEDS" <<'PY' | tee runs/caption/table.md
import json, os, statistics, sys
modes, seeds = sys.argv[1].split(), sys.argv[2].split()
def steps(d):
    s = 0
    for line in open(os.path.join(d, "train.jsonl")):
        r = json.loads(line)
        if r.get("event") == "end": s = r["step"]
    return s
print("| attention | seed | steps | BLEU-4 | exact | attention acc. | novel BLEU-4 | novel exact | novel att. acc. |")
print("|---|---|---|---|---|---|---|---|---|")
summary = {}
for m in modes:
    for s in seeds:
        d = "runs/caption/%s-s%s" % (m, s)
        try:
            e = json.load(open(os.path.join(d, "eval.json")))
        except OSError:
            print("| %s | %s | missing | | | | | | |" % (m, s)); continue
        acc = "-" if e["attention_accuracy"] < 0 else "%.1f%%" % (100 * e["attention_accuracy"])
        nacc = "-" if e["novel_attention_accuracy"] < 0 else "%.1f%%" % (100 * e["novel_attention_accuracy"])
        print("| %s | %s | %d | %.2f | %.1f%% | %s | %.2f | %.1f%% | %s |" % (m, s, steps(d), e["bleu4"], 100 * e["exact"], acc,
              e["novel_bleu4"], 100 * e["novel_exact"], nacc))
        summary.setdefault(m, []).append(e)
print()
print("| attention | runs | BLEU-4 | exact | attention acc. | novel BLEU-4 |")
print("|---|---|---|---|---|---|")
def ms(v, scale=1.0, pct=False):
    v = [x * scale for x in v]
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return ("%.1f%% +- %.1f" if pct else "%.2f +- %.2f") % (statistics.mean(v), sd)
for m, es in summary.items():
    acc = [e["attention_accuracy"] for e in es]
    print("| %s | %d | %s | %s | %s | %s |" % (m, len(es), ms([e["bleu4"] for e in es]), ms([e["exact"] for e in es], 100, True),
          "-" if min(acc) < 0 else ms(acc, 100, True), ms([e["novel_bleu4"] for e in es])))
PY
