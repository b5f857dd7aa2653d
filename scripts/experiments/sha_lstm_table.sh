#!/usr/bin/env bash
# sha_lstm_table.sh: the single-headed attention experiment of issue 19:
# the SHA-LSTM (Merity 2019; attn rnnlm train --arch sha-lstm) against the
# plain LSTM (--arch lstm) and attn's GPT (attn lm train --arch gpt), at
# about the parameter count of the GPT row of long_context_table.sh
# (890,844), on the bytes of the Wikipedia splits (data/wiki; CORPUS= any
# directory of train.txt / valid.txt / test.txt), with the same budget:
# STEPS optimizer steps of 512 scored bytes (8 x 64), AdamW lr 1e-3,
# warmup 100, cosine to 1e-4, weight decay 0.01, seed 1, THREADS threads:
#
#   gpt       4 layers, d_model 128, 4 heads, d_ff 567, context 64 (890,844)
#   sha-lstm  4 LSTM blocks of 129, the single-headed attention in block 2
#             with a memory of 64 earlier positions, Boom 129 -> 516 -> 129,
#             tied embedding (892,807 parameters)
#   sha-lstm-noattn  the ablation: the SHA-LSTM's blocks (layer norms, Boom)
#             without the attention, 4 blocks of 133 (892,952 parameters)
#   lstm      4 LSTM layers of 162, tied embedding (886,720 parameters)
#   lstm-1    1 LSTM layer of 318, tied embedding (893,200 parameters): the
#             4-layer LSTM stays on the unigram plateau (loss 3.6 nats) for
#             the whole budget at this learning rate, so the table also has
#             the shallow, wide LSTM that this budget can train
#
# The recurrent models read 8 streams of the training text segment after
# segment (runs of 16 segments of 64 bytes from seeded starts) with the
# state and the attention memory carried; the GPT reads random windows of 64.
# Test bits/byte on the whole test.txt: the GPT as attn lm eval (windows of
# 64, stride 64: each byte sees 0-63 earlier bytes); the recurrent models as
# attn rnnlm eval (8 streams, each from a zero state, the state carried: each
# byte sees everything before it in its stream), and again with every
# 64-byte segment read alone from a zero state (--reset-every 1: the GPT's
# context of 0-63 earlier bytes). Reported per row: parameters, training
# seconds, ms/step, valid and test bits/byte.
#
# Budget: STEPS 1000 at 1 thread, about 4 (GPT) to 6 (SHA-LSTM) minutes a
# row on a quiet core; 3-4x that on the shared machine. Writes
# $OUT/table.md.
#
# Environment: STEPS (1000), THREADS (1), CORPUS (data/wiki),
# OUT (runs/sha_lstm), REUSE=1 (keep finished rows), SMOKE=1 (seconds: tiny
# models, 3 steps; its numbers mean nothing).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${STEPS:-1000}"
THREADS="${THREADS:-1}"
CORPUS="${CORPUS:-data/wiki}"
OUT="${OUT:-runs/sha_lstm}"
GPT_MODEL=(--layers 4 --heads 4 --d-model 128 --d-inner 567)
SHA_MODEL=(--arch sha-lstm --layers 4 --d 129)
NOATT_MODEL=(--arch sha-lstm --layers 4 --d 133 --attn-layer -1)
LSTM_MODEL=(--arch lstm --layers 4 --d 162)
LSTM1_MODEL=(--arch lstm --layers 1 --d 318)
EVALN=0
if [ "${SMOKE:-0}" = 1 ]; then
    STEPS=3
    GPT_MODEL=(--layers 1 --heads 2 --d-model 16 --d-inner 32)
    SHA_MODEL=(--arch sha-lstm --layers 2 --d 16)
    NOATT_MODEL=(--arch sha-lstm --layers 2 --d 16 --attn-layer -1)
    LSTM_MODEL=(--arch lstm --layers 2 --d 16)
    LSTM1_MODEL=(--arch lstm --layers 1 --d 16)
    EVALN=4096
    OUT="${OUT}-smoke"
fi
make -s build/attn
[ -f "$CORPUS/valid.txt" ] || { [ "$CORPUS" = data/wiki ] && bash scripts/get_wiki_data.sh; }
mkdir -p "$OUT"
ATTN=build/attn
COMMON=(--data "$CORPUS" --steps "$STEPS" --batch 8 --lr 1e-3 --min-lr 1e-4 --weight-decay 0.01 --seed 1
        --threads "$THREADS" --eval-every 0 --quiet --force)
if [ "$STEPS" -le 100 ]; then COMMON+=(--warmup 0); else COMMON+=(--warmup 100); fi

jnum() { # jnum FILE EVENT KEY: KEY of the last EVENT record of a train.jsonl
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

GPT_EVAL=()
[ "$EVALN" -gt 0 ] && GPT_EVAL=(--final-eval-n "$EVALN")
run sha-lstm "$ATTN" rnnlm train "${SHA_MODEL[@]}" --ctx 64 --run-segments 16 "${COMMON[@]}"
run sha-lstm-noattn "$ATTN" rnnlm train "${NOATT_MODEL[@]}" --ctx 64 --run-segments 16 "${COMMON[@]}"
run lstm "$ATTN" rnnlm train "${LSTM_MODEL[@]}" --ctx 64 --run-segments 16 "${COMMON[@]}"
run lstm-1 "$ATTN" rnnlm train "${LSTM1_MODEL[@]}" --ctx 64 --run-segments 16 "${COMMON[@]}"
run gpt "$ATTN" lm train --arch gpt --ctx 64 "${GPT_MODEL[@]}" "${COMMON[@]}" "${GPT_EVAL[@]}"

"$ATTN" lm eval --model "$OUT/gpt" --split test --threads "$THREADS" >"$OUT/gpt-test.log" 2>&1
for n in sha-lstm sha-lstm-noattn lstm lstm-1; do
    "$ATTN" rnnlm eval --model "$OUT/$n" --split test --streams 8 --threads "$THREADS" >"$OUT/$n-test.log" 2>&1
    # the GPT's context: every 64-byte segment read alone from a zero state
    "$ATTN" rnnlm eval --model "$OUT/$n" --split test --streams 8 --reset-every 1 --threads "$THREADS" \
        >"$OUT/$n-test-w64.log" 2>&1
    "$ATTN" rnnlm sample --model "$OUT/$n" --prompt "$(head -c 200 "$CORPUS/valid.txt")" --bytes 300 --seed 1 \
        --threads "$THREADS" >"$OUT/$n-sample.txt" 2>"$OUT/$n-sample.log"
done

{
    echo "# SHA-LSTM vs LSTM vs GPT, bytes of $CORPUS, $STEPS steps of 8 x 64 bytes, $THREADS thread(s)"
    echo
    echo "| model | parameters | train s | ms/step | valid bits/byte | test bits/byte | test, 64-byte windows |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for n in sha-lstm sha-lstm-noattn lstm lstm-1 gpt; do
        j="$OUT/$n/train.jsonl"
        params=$(jnum "$j" start parameters)
        ts=$(jnum "$j" end train_seconds)
        ms=$(jnum "$j" end step_ms)
        bpb=$(jnum "$j" eval valid_bpb)
        if [ "$n" = gpt ]; then
            tst=$(grep -o '[0-9.]* bits/byte' "$OUT/gpt-test.log" | head -n 1 | cut -d' ' -f1)
            w64=$tst
        else
            bpb_of() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["bits_per_byte"])' "$1"; }
            tst=$(bpb_of "$OUT/$n-test.log")
            w64=$(bpb_of "$OUT/$n-test-w64.log")
        fi
        python3 -c 'import sys
n,p,ts,ms,bpb,tst,w64=sys.argv[1:]
f=lambda x,fmt: (fmt % float(x)) if x not in ("None","") else "-"
print("| %s | %s | %s | %s | %s | %s | %s |" % (n, "{:,}".format(int(p)), f(ts,"%.0f"), f(ms,"%.1f"), f(bpb,"%.4f"),
      f(tst,"%.4f"), f(w64,"%.4f")))' \
            "$n" "$params" "$ts" "$ms" "$bpb" "$tst" "$w64"
    done
} >"$OUT/table.md"
cat "$OUT/table.md"
