#!/usr/bin/env bash
# wavenet_vs_gpt.sh: the experiment of issue 16 part 2: what attention buys
# over a fixed receptive field. Byte-level language models on the Wikipedia
# splits (data/wiki, scripts/get_wiki_data.sh; CORPUS=data/kjv or any
# directory of train.txt / valid.txt / test.txt works the same), every row at
# (about) the parameter count of the GPT row of long_context_table.sh
# (890,844) and the same budget: STEPS optimizer steps of 512 scored bytes
# (8 x 64), AdamW lr 1e-3, warmup 100, cosine to 1e-4, weight decay 0.01,
# seed 1, THREADS threads:
#
#   gpt       attn's GPT (attn lm train --arch gpt): 4 layers, d_model 128,
#             4 heads, d_ff 567, context 64 (long_context_table.sh's row)
#   wn64      WaveNet, kernel 2, 6 layers (dilations 1 .. 32): receptive
#             field 64; 150 channels everywhere (890,656 parameters);
#             8 rows x (63 context + 64 scored) bytes per step
#   wn1024    WaveNet, kernel 2, 10 layers (dilations 1 .. 512): receptive
#             field 1,024; 117 channels (886,180 parameters); 1 row of
#             (1,023 context + 512 scored) bytes per step (the same 512
#             scored bytes; 8 x 64 would compute 8 x 1,087 positions per step,
#             2 x 256 2 x 1,279, this 1,535)
#   wn64-r1   the control: wn64's model trained like wn1024, 1 row of
#             (63 context + 512 scored) bytes per step, so that the two
#             WaveNets differ in the receptive field (and the width) only
#
# Reported per row: parameters, context / receptive field, training seconds,
# ms/step, training speed (scored bytes per second of training), validation
# bits/byte on the whole valid.txt (the GPT: windows of 64 with stride 64, as
# attn lm train's final evaluation, and with stride 8 (every byte sees >= 56
# bytes); the WaveNets: every byte with min(offset, RF - 1) bytes of context),
# test bits/byte on the whole test.txt (the GPT as attn lm eval: stride 64),
# the evaluation speed, and the generation speed (GEN bytes after the first
# 1,100 bytes of valid.txt as the prompt, whose reading is not counted; one
# sequence: the WaveNet's incremental form with its queues, the GPT with its
# KV cache), and for the WaveNets what a byte costs without the queues (a
# full forward over the last RF bytes per byte, NAIVE bytes; the same text).
#
# Budget: STEPS 1000 at 1 thread took about 50 minutes on the shared 2-core
# machine under a load of 10-15 (docs/wavenet.md has the run; the RF 1,024
# row is two thirds of it). Writes $OUT/table.md (and each run's directory
# and log there).
#
# Environment: STEPS (1000), THREADS (1), CORPUS (data/wiki), GEN (2000),
# NAIVE (300: bytes of the no-queue generation cost, below),
# OUT (runs/wavenet_vs_gpt), REUSE=1 (keep the rows whose run in OUT has
# finished, e.g. after an interrupted table), SMOKE=1 (seconds: tiny models, 3 steps, 4096
# evaluation bytes; its numbers mean nothing).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${STEPS:-1000}"
THREADS="${THREADS:-1}"
CORPUS="${CORPUS:-data/wiki}"
GEN="${GEN:-2000}"
NAIVE="${NAIVE:-300}"
OUT="${OUT:-runs/wavenet_vs_gpt}"
EVALN=0
GPT_MODEL=(--layers 4 --heads 4 --d-model 128 --d-inner 567)
WN64=(--res-channels 150 --layers 6)
WN1024=(--res-channels 117 --layers 10)
if [ "${SMOKE:-0}" = 1 ]; then
    STEPS=3
    GPT_MODEL=(--layers 1 --heads 2 --d-model 16 --d-inner 32)
    WN64=(--res-channels 8 --layers 6)
    WN1024=(--res-channels 8 --layers 10)
    EVALN=4096
    GEN=50
    NAIVE=20
    OUT="${OUT}-smoke"
fi
make -s build/attn
[ -f "$CORPUS/valid.txt" ] || { [ "$CORPUS" = data/wiki ] && bash scripts/get_wiki_data.sh; }
mkdir -p "$OUT"
ATTN=build/attn
COMMON=(--data "$CORPUS" --steps "$STEPS" --lr 1e-3 --min-lr 1e-4 --weight-decay 0.01 --seed 1 --threads "$THREADS"
        --eval-every 0 --final-eval-n "$EVALN" --quiet --force)
if [ "$STEPS" -le 100 ]; then COMMON+=(--warmup 0); else COMMON+=(--warmup 100); fi

# jnum FILE EVENT KEY: the number KEY of the last EVENT record of a train.jsonl
jnum() {
    python3 -c 'import json,sys
v=None
for line in open(sys.argv[1]):
    r=json.loads(line)
    if r.get("event")==sys.argv[2] and sys.argv[3] in r: v=r[sys.argv[3]]
print(v)' "$1" "$2" "$3"
}

run() { # run NAME CMD...: trains into $OUT/NAME, log $OUT/NAME.log
    local name="$1"
    shift
    if [ "${REUSE:-0}" = 1 ] && grep -q '"event":"end"' "$OUT/$name/train.jsonl" 2>/dev/null; then
        echo "== $name: kept (REUSE=1)" >&2
        return
    fi
    echo "== $name: $*" >&2
    "$@" --out "$OUT/$name" >"$OUT/$name.log" 2>&1 || { echo "$name failed: $(tail -n 3 "$OUT/$name.log")" >&2; exit 1; }
}

run gpt "$ATTN" lm train --arch gpt --ctx 64 --batch 8 "${GPT_MODEL[@]}" "${COMMON[@]}"
run wn64 "$ATTN" wavenet train "${WN64[@]}" --batch 8 --window 64 "${COMMON[@]}"
run wn1024 "$ATTN" wavenet train "${WN1024[@]}" --batch 1 --window 512 "${COMMON[@]}"
run wn64-r1 "$ATTN" wavenet train "${WN64[@]}" --batch 1 --window 512 "${COMMON[@]}"

# the GPT with overlapping windows: every byte sees >= 56 bytes
EVB=()
[ "$EVALN" -gt 0 ] && EVB=(--bytes "$EVALN")
"$ATTN" lm eval --model "$OUT/gpt" --split valid --stride 8 --threads "$THREADS" "${EVB[@]}" >"$OUT/gpt-stride8.log" 2>&1
gpt_s8=$(sed -n 's/.* \([0-9.]*\) bits\/byte.*/\1/p' "$OUT/gpt-stride8.log" | head -n 1)
[ -n "$gpt_s8" ] || gpt_s8=$(grep -o '[0-9.]* bits' "$OUT/gpt-stride8.log" | head -n 1 | cut -d' ' -f1)
# the whole test.txt (the README's long-context table reports test bits/byte)
"$ATTN" lm eval --model "$OUT/gpt" --split test --threads "$THREADS" "${EVB[@]}" >"$OUT/gpt-test.log" 2>&1
for n in wn64 wn1024 wn64-r1; do
    "$ATTN" wavenet eval --model "$OUT/$n" --split test --threads "$THREADS" "${EVB[@]}" >"$OUT/$n-test.log" 2>&1
done
# generation starts after the first 1,100 bytes of valid.txt (longer than
# every receptive field: the no-queue forward then reads the whole RF)
PROMPT="$(head -c 1100 "$CORPUS/valid.txt")"
for n in wn64 wn1024 wn64-r1; do
    "$ATTN" wavenet sample --model "$OUT/$n" --prompt "$PROMPT" --tokens "$GEN" --temperature 0.8 --seed 1 \
        >"$OUT/$n-sample.txt" 2>"$OUT/$n-sample.log"
    # what generation costs without the queues: one full forward over the
    # last RF bytes per byte (the same draws: the same text)
    "$ATTN" wavenet sample --model "$OUT/$n" --prompt "$PROMPT" --tokens "$NAIVE" --temperature 0.8 --seed 1 --no-queues \
        >"$OUT/$n-naive.txt" 2>"$OUT/$n-naive.log"
    # (the prompt and the NAIVE bytes: all of the file but its final newline)
    k=$(($(wc -c <"$OUT/$n-naive.txt") - 1))
    cmp -s <(head -c "$k" "$OUT/$n-naive.txt") <(head -c "$k" "$OUT/$n-sample.txt") ||
        echo "$n: the text without queues differs from the incremental one" >&2
done
"$ATTN" lm sample --model "$OUT/gpt" --prompt "$PROMPT" --bytes "$GEN" --temperature 0.8 --seed 1 \
    --threads "$THREADS" >"$OUT/gpt-sample.txt" 2>"$OUT/gpt-sample.log"

{
    echo "# WaveNet vs GPT, bytes of $CORPUS, $STEPS steps of 512 scored bytes, $THREADS thread(s)"
    echo
    echo "| model | parameters | context / RF | train s | ms/step | train bytes/s | valid bits/byte | test bits/byte | eval bytes/s | generation bytes/s |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for n in gpt wn64 wn1024 wn64-r1; do
        j="$OUT/$n/train.jsonl"
        params=$(jnum "$j" start parameters)
        ts=$(jnum "$j" end train_seconds)
        ms=$(jnum "$j" end step_ms)
        tps=$(jnum "$j" end tokens_per_s)
        bpb=$(jnum "$j" eval valid_bpb)
        evb=$(jnum "$j" eval bytes)
        evs=$(jnum "$j" eval seconds)
        case $n in
            gpt) ctx="64 (window)" ;;
            wn64) ctx=64 ;;
            wn1024) ctx=1024 ;;
            wn64-r1) ctx=64 ;;
        esac
        gen=$(grep -o '[0-9]* bytes/s' "$OUT/$n-sample.log" | head -n 1 | cut -d' ' -f1)
        tst=$(grep -o '[0-9.]* bits/byte' "$OUT/$n-test.log" | head -n 1 | cut -d' ' -f1)
        python3 -c 'import sys
n,p,c,ts,ms,tps,bpb,tst,evb,evs,gen=sys.argv[1:]
f=lambda x,fmt: (fmt % float(x)) if x not in ("None","") else "-"
print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (n, "{:,}".format(int(p)), c, f(ts,"%.0f"), f(ms,"%.1f"),
      f(tps,"%.0f"), f(bpb,"%.4f"), f(tst,"%.4f"), "%.0f" % (float(evb)/float(evs)), gen or "-"))' \
            "$n" "$params" "$ctx" "$ts" "$ms" "$tps" "$bpb" "$tst" "$evb" "$evs" "$gen"
    done
    echo
    for n in wn64 wn1024 wn64-r1; do
        echo "$n generation without queues (a full forward over the last RF bytes per byte, $NAIVE bytes, the same text): $(grep -o '[0-9]* bytes/s' "$OUT/$n-naive.log" | head -n 1)"
    done
    echo
    echo "GPT with windows of 64 moved by 8 (every byte sees >= 56 bytes): valid $gpt_s8 bits/byte ($(tail -n 1 "$OUT/gpt-stride8.log"))"
} >"$OUT/table.md"
cat "$OUT/table.md"
