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
#   hard-m75     from scratch, the expected context on 75% of the captions
#   hard-anneal  from scratch, the mix annealed linearly from 1 (every caption expected) at
#                the first step to the paper's 0.5 at the last (--mix-from 1 --mix 0.5)
#   hard-m75-e0  hard-m75 without the entropy bonus (--entropy 0)
#   hard-m75-e0-r3, -r10, -rtg, -l0   hard-m75-e0 with the REINFORCE term x3 or x10
#                (--reinforce), with reward-to-go (-rtg: the from-scratch recipe of
#                docs/caption.md), without the doubly stochastic penalty (--lambda 0)
#   hard-m80-e0-rtg  the same recipe with the expected context on 80% of the captions
#   hard-mix0.5-e0, hard-mix0.5-e0-rtg   from scratch, the paper's mix without the entropy
#                bonus (--entropy 0), and with reward-to-go as well
#   hard-k4      mix 0.5, 4 draws per caption with leave-one-out baselines and
#                reward-to-go, 8 captions a step (32 rows, as soft's batch)
#   hard-warm    the paper's rule (mix 0.5, one draw, moving baseline), the
#                decoder warm-started from soft-s<seed> (run first: list soft
#                before it), WARM_STEPS steps (default 1000) at lr 1e-3
#   soft-warm    the control of hard-warm: soft-s<seed> trained on with soft
#                attention for the same WARM_STEPS steps at lr 1e-3
#   hard-warm-e0     hard-warm without the entropy bonus (--entropy 0)
#   hard-warm-k4     hard-warm with 4 draws per caption (32 captions x 4 rows a step,
#                    leave-one-out baselines: the same captions, 4x the decoder's rows)
#   hard-warm-k4b8   the same with 8 captions x 4 draws (soft's 32 rows a step)
#   hard-warm-m75    hard-warm with the expected context on 75% of the captions
#   hard-warm-r0     a diagnostic: hard-warm without the REINFORCE term (--reinforce 0:
#                    the attention learns only through the expected rows and the gate)
#   hard-warm-lr3, soft-warm-lr3   hard-warm and its control at lr 3e-4
# The last columns compare BLEU-4 with the run's control of the same seed: soft-warm (soft-warm-lr3 for
# the -lr3 modes) for the warm starts, soft for the other hard modes (from scratch).
# Every hard run is also evaluated with the argmax location as its context
# (`attn caption eval --decode argmax`: eval-argmax.json; the rows "<mode> argmax"),
# and every run on its own 500 validation scenes (valid.json, valid-argmax.json):
# settings are chosen on validation, the test scenes only report.
MODES="${MODES:-soft hard none}"
WARM_STEPS="${WARM_STEPS:-1000}"
flags_of() { # kind seed
    case "$1" in
    soft | none) echo "--attention $1" ;;
    hard) echo "--attention hard --mix 0.8" ;;
    hard-mix0.5) echo "--attention hard --mix 0.5" ;;
    hard-m75) echo "--attention hard --mix 0.75" ;;
    hard-anneal) echo "--attention hard --mix-from 1 --mix 0.5" ;;
    hard-m75-e0) echo "--attention hard --mix 0.75 --entropy 0" ;;
    hard-m75-e0-r3) echo "--attention hard --mix 0.75 --entropy 0 --reinforce 3" ;;
    hard-m75-e0-r10) echo "--attention hard --mix 0.75 --entropy 0 --reinforce 10" ;;
    hard-m75-e0-rtg) echo "--attention hard --mix 0.75 --entropy 0 --reward-to-go 1" ;;
    hard-m80-e0-rtg) echo "--attention hard --mix 0.8 --entropy 0 --reward-to-go 1" ;;
    hard-m75-e0-l0) echo "--attention hard --mix 0.75 --entropy 0 --lambda 0" ;;
    hard-mix0.5-e0) echo "--attention hard --mix 0.5 --entropy 0" ;;
    hard-mix0.5-e0-rtg) echo "--attention hard --mix 0.5 --entropy 0 --reward-to-go 1" ;;
    hard-k4) echo "--attention hard --mix 0.5 --samples 4 --reward-to-go 1 --batch 8" ;;
    hard-warm) echo "--attention hard --mix 0.5 --init runs/caption/soft-s$2 --lr 1e-3" ;;
    soft-warm) echo "--attention soft --init runs/caption/soft-s$2 --lr 1e-3" ;;
    hard-warm-e0) echo "--attention hard --mix 0.5 --entropy 0 --init runs/caption/soft-s$2 --lr 1e-3" ;;
    hard-warm-k4) echo "--attention hard --mix 0.5 --samples 4 --init runs/caption/soft-s$2 --lr 1e-3" ;;
    hard-warm-k4b8) echo "--attention hard --mix 0.5 --samples 4 --batch 8 --init runs/caption/soft-s$2 --lr 1e-3" ;;
    hard-warm-m75) echo "--attention hard --mix 0.75 --init runs/caption/soft-s$2 --lr 1e-3" ;;
    hard-warm-r0) echo "--attention hard --mix 0.5 --reinforce 0 --init runs/caption/soft-s$2 --lr 1e-3" ;;
    hard-warm-lr3) echo "--attention hard --mix 0.5 --init runs/caption/soft-s$2 --lr 3e-4" ;;
    soft-warm-lr3) echo "--attention soft --init runs/caption/soft-s$2 --lr 3e-4" ;;
    *) echo "caption_table.sh: unknown run kind $1" >&2; exit 2 ;;
    esac
}
EXTRA="${CAPTION_EXTRA:-}"
TABLE_ONLY="${TABLE_ONLY:-0}" # 1: only print the table of the runs there are (nothing is trained)
[ "$TABLE_ONLY" = 1 ] || make -s all
mkdir -p runs/caption
for seed in $SEEDS; do # seed by seed: a cut-short table still compares the modes
    for mode in $MODES; do
        dir="runs/caption/$mode-s$seed"
        if [ -f "$dir/eval.json" ] || [ "$TABLE_ONLY" = 1 ]; then continue; fi # done already (re-run: delete it)
        flags=$(flags_of "$mode" "$seed")
        steps="$STEPS"
        if [[ $mode == *-warm* ]]; then steps="$WARM_STEPS"; fi # every warm start (soft-warm, hard-warm-e0, ...)
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
# validation scenes of every run, and the argmax decoding of the hard ones (test and validation)
for seed in $SEEDS; do
    for mode in $MODES; do
        dir="runs/caption/$mode-s$seed"
        [ -f "$dir/eval.json" ] && [ "$TABLE_ONLY" != 1 ] || continue
        ev() { # json, extra flags
            [ -f "$dir/$1" ] && return 0
            # shellcheck disable=SC2086
            build/attn caption eval --model "$dir" --pictures 0 --json "$dir/$1" --cache runs/caption/cache \
                --threads 1 $2 >>"$dir.txt" 2>&1 || echo "$mode seed $seed: eval $1 failed: $(tail -n 2 "$dir.txt")"
        }
        ev valid.json "--split valid"
        if [[ $mode == hard* ]]; then
            ev eval-argmax.json "--decode argmax --test-scenes 1000"
            ev valid-argmax.json "--split valid --decode argmax"
        fi
    done
done
python3 - "$MODES" "$SEEDS" <<'PY' | tee "${TABLE:-runs/caption/table.md}"
import json, os, statistics, sys
modes, seeds = sys.argv[1].split(), sys.argv[2].split()
def steps(d):
    s = 0
    for line in open(os.path.join(d, "train.jsonl")):
        r = json.loads(line)
        if r.get("event") == "end": s = r["step"]
    return s
def load(d, name):
    try:
        return json.load(open(os.path.join(d, name)))
    except OSError:
        return None
print("| attention | seed | steps | valid BLEU-4 | BLEU-4 | exact | attention acc. | novel BLEU-4 | novel exact | novel att. acc. | BLEU-4 - control |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
summary, valid, gaps = {}, {}, {}
rows = []
for m in modes:
    rows.append((m, m, "eval.json", "valid.json"))
    if m.startswith("hard"):
        rows.append((m + " argmax", m, "eval-argmax.json", "valid-argmax.json"))
for name, m, ejson, vjson in rows:
    for s in seeds:
        d = "runs/caption/%s-s%s" % (m, s)
        e = load(d, ejson)
        if e is None:
            print("| %s | %s | missing | | | | | | | | |" % (name, s)); continue
        v = load(d, vjson)
        ctrl_mode = "soft-warm-lr3" if m.endswith("-lr3") else "soft-warm"
        if "warm" not in m and m.startswith("hard"): ctrl_mode = "soft" # from scratch: soft of the same seed
        ctrl = load("runs/caption/%s-s%s" % (ctrl_mode, s), "eval.json") if "warm" in m or m.startswith("hard") else None
        gap = "" if ctrl is None else "%+.2f" % (e["bleu4"] - ctrl["bleu4"])
        if ctrl is not None: gaps.setdefault(name, []).append(e["bleu4"] - ctrl["bleu4"])
        acc = "-" if e["attention_accuracy"] < 0 else "%.1f%%" % (100 * e["attention_accuracy"])
        nacc = "-" if e["novel_attention_accuracy"] < 0 else "%.1f%%" % (100 * e["novel_attention_accuracy"])
        print("| %s | %s | %d | %s | %.2f | %.1f%% | %s | %.2f | %.1f%% | %s | %s |" % (name, s, steps(d),
              "-" if v is None else "%.2f" % v["bleu4"], e["bleu4"], 100 * e["exact"], acc,
              e["novel_bleu4"], 100 * e["novel_exact"], nacc, gap))
        summary.setdefault(name, []).append(e)
        if v is not None: valid.setdefault(name, []).append(v["bleu4"])
print()
print("| attention | runs | valid BLEU-4 | BLEU-4 | exact | attention acc. | novel BLEU-4 | BLEU-4 - control (per seed) |")
print("|---|---|---|---|---|---|---|---|")
def ms(v, scale=1.0, pct=False):
    v = [x * scale for x in v]
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return ("%.1f%% +- %.1f" if pct else "%.2f +- %.2f") % (statistics.mean(v), sd)
for m, es in summary.items():
    acc = [e["attention_accuracy"] for e in es]
    g = gaps.get(m)
    print("| %s | %d | %s | %s | %s | %s | %s | %s |" % (m, len(es), ms(valid[m]) if len(valid.get(m, [])) == len(es) else "-",
          ms([e["bleu4"] for e in es]), ms([e["exact"] for e in es], 100, True),
          "-" if min(acc) < 0 else ms(acc, 100, True), ms([e["novel_bleu4"] for e in es]),
          "" if not g else "%s (%s)" % (ms(g), " / ".join("%+.2f" % x for x in g))))
PY
