#!/usr/bin/env bash
# long_context_table.sh: the experiment table of issue 14 (long-context
# language models with memory), byte-level, on the Wikipedia splits
# (data/wiki, scripts/get_wiki_data.sh) and the King James Bible (data/kjv,
# scripts/get_kjv_data.sh). Every row has the same budget: STEPS optimizer
# steps of BATCH x 64 bytes, THREADS threads, seed 1, AdamW lr 1e-3 (warmup
# 100, cosine to 1e-4), 4 layers, d_model 128, 4 heads of 32 (TXL), FFN 512:
#
#   gpt        attn's GPT, context 64 (d_ff 567: the TXL's parameter count)
#   txl-m64    Transformer-XL, segment 64, memory 64
#   txl-m192   Transformer-XL, segment 64, memory 192
#   txl-m512   Transformer-XL, segment 64, memory 512 (the fixed 512 span)
#   span512    Transformer-XL + adaptive span, max 512 (memory 512, ramp 32,
#              penalty 2e-6, spans start at 0)
#   allatt     all-attention: no FFN, 516 persistent vectors per head (the
#              FFN's parameters), segment 64, memory 64; the vectors in the
#              published code's parametrization (--pers-scaled 1, the default)
#   allatt-l6  all-attention, 6 layers, 236 persistent vectors per head
#              (890,112 parameters: the TXL's count, deeper; not in the
#              default ROWS)
#   allatt-l8  all-attention, 8 layers, 97 persistent vectors per head
#              (891,136 parameters; not in the default ROWS)
# then on the KJV: gpt and the wiki TXL row with the best test bits/byte.
# (The all-attention target itself was met with allatt_lr_sweep.sh: a
# 9-layer all-attention row and txl-m64 with their learning rates chosen on
# valid, at 20,000 steps; docs/long_context.md.)
#
# Reported per row: parameters, training seconds (wall and the process's
# CPU) and ms/step, held-out TEST bits/byte (the whole test.txt, read once
# from the start: the TXL segment by segment with its memory, the GPT in
# windows of 64 with stride 64), the TXL rows of memory 64 and 192 also with
# evaluation memories 64, 256, 512 and 1024, and with the memories longer
# than the training one again with the relative distances clamped to the
# largest one of training (--clamp-len mem_len + 63: Transformer-XL's
# clamp_len; every farther key shares the position row of that distance);
# txl-m512 the same sweep; the mean learned span and the span row's step time against txl-m512; the
# evaluation speed of the memory cache (txl-m64: every byte sees >= 64 bytes)
# against the GPT's sliding window moved one byte at a time (every byte sees
# exactly 64), both over the first SPEED_BYTES bytes of test.txt.
#
# Budget (chosen from 20-step runs of each row, docs/long_context.md "The
# table"): STEPS 1000, BATCH 8, THREADS 1: about 55-60 minutes of one core
# (measured on a 2-core machine under load; less on an idle core). Writes
# runs/long_context/table.md (and each run's directory and log there).
#
# Environment: ATTN (the binary, default build/attn, built first), STEPS, BATCH, THREADS, SPEED_BYTES (8192), EVAL_BYTES (0: the
# whole test text), EVAL_EVERY (0: a checkpoint at the end only; N: a validation
# over 16,384 bytes of valid.txt and a checkpoint every N steps, for long runs
# that may be evaluated or resumed before they end), ROWS (the wiki rows to run, default all six in the order
# above), KJV (1: the two KJV rows; 0: none), REUSE=1 (keep a run of OUT
# whose train.jsonl ends with STEPS steps instead of training it again:
# rows trained one at a time, the table assembled at the end), SMOKE=1 (a
# seconds-long check of the script itself: tiny models, 3 steps, 2048
# evaluation bytes; its numbers mean nothing). A partial table (ROWS, KJV 0)
# leaves out the rows and the comparisons it did not run.
#
# The 5,000-step rows of docs/long_context.md ("A longer budget"):
#   STEPS=5000 ROWS="gpt txl-m64 txl-m192 allatt" KJV=0 OUT=runs/lc5k REUSE=1 \
#     bash scripts/experiments/long_context_table.sh
#   STEPS=5000 ROWS="txl-m512 allatt-l8 allatt-l6" KJV=0 OUT=runs/lc5k REUSE=1 \
#     bash scripts/experiments/long_context_table.sh
# The 20,000-step memory-512 run ("A 20,000-step run of the memory-512 row";
# its checkpoints evaluated with long_context_memory_noise.sh):
#   STEPS=20000 ROWS="txl-m512" KJV=0 OUT=runs/lc20k REUSE=1 EVAL_EVERY=1000 \
#     bash scripts/experiments/long_context_table.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${STEPS:-1000}"
BATCH="${BATCH:-8}"
THREADS="${THREADS:-1}"
SPEED_BYTES="${SPEED_BYTES:-8192}"
EVAL_BYTES="${EVAL_BYTES:-0}"
EVAL_EVERY="${EVAL_EVERY:-0}"
OUT="${OUT:-runs/long_context}"
ROWS="${ROWS:-gpt txl-m64 txl-m192 txl-m512 span512 allatt}"
KJV="${KJV:-1}"
REUSE="${REUSE:-0}"
MODEL=(--layers 4 --heads 4 --d-model 128)
FFN=512
GPT_FF=567    # the GPT's d_ff that gives the TXL's parameter count (890,844 vs 890,624)
PERSIST=516   # persistent vectors per head replacing the FFN (891,136 parameters)
DEEP6=(6 236) # layers and persistent vectors of allatt-l6 (890,112 parameters)
DEEP8=(8 97)  # the same of allatt-l8 (891,136 parameters)
if [ "${SMOKE:-0}" = 1 ]; then
    STEPS=3
    MODEL=(--layers 1 --heads 2 --d-model 32)
    FFN=64; GPT_FF=80; PERSIST=8; DEEP6=(2 4); DEEP8=(3 2)
    EVAL_BYTES=2048; SPEED_BYTES=512
    OUT="${OUT}-smoke"
fi
ATTN="${ATTN:-build/attn}"
[ "$ATTN" = build/attn ] && make -s build/attn
[ -f data/wiki/test.txt ] || bash scripts/get_wiki_data.sh
[ -f data/kjv/test.txt ] || bash scripts/get_kjv_data.sh
mkdir -p "$OUT"
COMMON=(--batch "$BATCH" --steps "$STEPS" --warmup 100 --lr 1e-3 --seed 1 --threads "$THREADS"
        --eval-every "$EVAL_EVERY" --final-eval-n 16384 --quiet --force "${MODEL[@]}")
[ "$STEPS" -le 100 ] && COMMON+=(--warmup 0)
declare -A ARGS=(
    [gpt]="--arch gpt --ctx 64 --d-inner $GPT_FF"
    [txl-m64]="--arch txl --segment 64 --mem-len 64 --d-inner $FFN"
    [txl-m192]="--arch txl --segment 64 --mem-len 192 --d-inner $FFN"
    [txl-m512]="--arch txl --segment 64 --mem-len 512 --d-inner $FFN"
    [span512]="--arch txl --segment 64 --mem-len 512 --d-inner $FFN --span 1 --span-max 512 --span-ramp 32 --span-penalty 2e-6"
    [allatt]="--arch txl --segment 64 --mem-len 64 --no-ffn --persistent $PERSIST"
    [allatt-l6]="--arch txl --segment 64 --mem-len 64 --no-ffn --layers ${DEEP6[0]} --persistent ${DEEP6[1]}"
    [allatt-l8]="--arch txl --segment 64 --mem-len 64 --no-ffn --layers ${DEEP8[0]} --persistent ${DEEP8[1]}"
)

# train CORPUS ROW: trains into $OUT/CORPUS-ROW (REUSE=1: keeps a finished run of STEPS steps).
# The row's options come last, so that they override the common ones (--layers).
train() {
    local corpus="$1" row="$2" dir="$OUT/$1-$2"
    if [ "$REUSE" = 1 ] && [ -f "$dir/model.safetensors" ] &&
        grep -q "\"event\":\"end\",\"step\":$STEPS,\"stopped\":\"steps\"" "$dir/train.jsonl" 2>/dev/null; then
        echo "   reusing $dir ($STEPS steps)" >&2
        return 0
    fi
    # shellcheck disable=SC2086
    "$ATTN" lm train --data "data/$corpus" --out "$dir" "${COMMON[@]}" ${ARGS[$row]} >"$dir.log" 2>&1 ||
        { echo "$corpus $row: training failed: $(tail -n 2 "$dir.log")" >&2; return 1; }
}
# evalrow DIR [options]: "bits bytes seconds params" of attn lm eval on test.txt
# (kept in DIR/eval-OPTIONS.txt; REUSE=1 reads it back instead of evaluating again)
evalrow() {
    local dir="$1"
    shift
    local cache
    cache="$dir/eval-bytes$EVAL_BYTES$(echo "$*" | tr -c 'A-Za-z0-9\n' '_').txt"
    if [ "$REUSE" = 1 ] && [ -s "$cache" ] && [ "$cache" -nt "$dir/model.safetensors" ]; then
        cat "$cache"
        return 0
    fi
    "$ATTN" lm eval --model "$dir" --split test --bytes "$EVAL_BYTES" --threads "$THREADS" "$@" |
        sed -n 's/^test: \([0-9.]*\) bits\/byte over \([0-9]*\) bytes.*; \([0-9.]*\) s, .*; \([0-9]*\) parameters.*/\1 \2 \3 \4/p' |
        tee "$cache"
}
endkey() { # DIR KEY: a number of the run's "end" record
    grep '"event":"end"' "$1/train.jsonl" | tail -n 1 | sed -n "s/.*\"$2\":\([-0-9.e]*\).*/\1/p"
}

declare -A BPB PARAMS MS TRAIN CPU M64 M256 M512 M1024 C256 C512 C1024
run_row() { # CORPUS ROW
    local corpus="$1" row="$2" dir="$OUT/$1-$2"
    echo "== $corpus $row: ${ARGS[$row]}" >&2
    train "$corpus" "$row" || return 1
    local r
    r=$(evalrow "$dir" || true)
    BPB[$corpus-$row]=$(echo "$r" | cut -d' ' -f1)
    PARAMS[$corpus-$row]=$(echo "$r" | cut -d' ' -f4)
    MS[$corpus-$row]=$(awk -v x="$(endkey "$dir" step_ms)" 'BEGIN { printf "%.1f", x }')
    TRAIN[$corpus-$row]=$(awk -v x="$(endkey "$dir" train_seconds)" 'BEGIN { printf "%.0f", x }')
    CPU[$corpus-$row]=$(awk -v x="$(endkey "$dir" train_cpu_seconds)" 'BEGIN { printf "%.0f", x }')
    echo "   test ${BPB[$corpus-$row]} bits/byte, ${PARAMS[$corpus-$row]} parameters, ${MS[$corpus-$row]} ms/step" >&2
}

t_start=$(date +%s)
has_row() { case " $ROWS " in *" $1 "*) return 0 ;; esac; return 1; }
for row in $ROWS; do
    [ -n "${ARGS[$row]:-}" ] || { echo "unknown row '$row' (rows: ${!ARGS[*]})" >&2; exit 2; }
done
for row in $ROWS; do run_row wiki "$row" || true; done
# evaluation memory sweep of the fixed-memory TXL rows (the training memory
# itself is the row's test figure); then the memories longer than the
# training one with the distances clamped to the largest of training
# (mem_len + segment - 1)
for row in txl-m64 txl-m192 txl-m512; do
    has_row "$row" && [ -n "${BPB[wiki-$row]:-}" ] || continue
    trained=${row#txl-m}
    clamp=$(( trained + 63 ))
    for m in 64 256 512 1024; do
        if [ "$m" = "$trained" ]; then r=${BPB[wiki-$row]}; else r=$(evalrow "$OUT/wiki-$row" --mem-len "$m" || true); fi
        case $m in 64) M64[$row]=${r%% *} ;; 256) M256[$row]=${r%% *} ;; 512) M512[$row]=${r%% *} ;; 1024) M1024[$row]=${r%% *} ;; esac
    done
    for m in 256 512 1024; do
        [ "$m" -gt "$trained" ] || continue
        r=$(evalrow "$OUT/wiki-$row" --mem-len "$m" --clamp-len "$clamp" || true)
        case $m in 256) C256[$row]=${r%% *} ;; 512) C512[$row]=${r%% *} ;; 1024) C1024[$row]=${r%% *} ;; esac
    done
done
# evaluation speed: the memory cache against the GPT's sliding window
gpt_speed=""; txl_speed=""
if has_row gpt && has_row txl-m64; then
    gpt_speed=$("$ATTN" lm eval --model "$OUT/wiki-gpt" --split test --bytes "$SPEED_BYTES" --stride 1 --threads "$THREADS")
    txl_speed=$("$ATTN" lm eval --model "$OUT/wiki-txl-m64" --split test --bytes "$SPEED_BYTES" --mem-len 64 --threads "$THREADS")
fi
gpt_bps=$(echo "$gpt_speed" | sed -n 's/.* s, \([0-9]*\) bytes\/s.*/\1/p')
txl_bps=$(echo "$txl_speed" | sed -n 's/.* s, \([0-9]*\) bytes\/s.*/\1/p')
gpt_sw=$(echo "$gpt_speed" | sed -n 's/^test: \([0-9.]*\) bits.*/\1/p')
txl_sw=$(echo "$txl_speed" | sed -n 's/^test: \([0-9.]*\) bits.*/\1/p')
mean_span=""
has_row span512 && mean_span=$(awk -v x="$(endkey "$OUT/wiki-span512" mean_span)" 'BEGIN { printf "%.1f", x }')
# the best TXL row on the KJV, beside the GPT
# (txl-m64 when no TXL row ran)
best=""
for row in txl-m64 txl-m192 txl-m512 span512 allatt allatt-l6 allatt-l8; do
    [ -n "${BPB[wiki-$row]:-}" ] || continue
    if [ -z "$best" ] || awk -v a="${BPB[wiki-$row]}" -v b="${BPB[wiki-$best]}" 'BEGIN { exit !(a < b) }'; then best=$row; fi
done
[ -n "$best" ] || best=txl-m64
if [ "$KJV" = 1 ]; then for row in gpt "$best"; do run_row kjv "$row" || true; done; fi
t_total=$(( $(date +%s) - t_start ))

table="$OUT/table.md"
{
    echo "# Long-context language models (issue 14)"
    echo
    echo "Byte-level, held-out test bits/byte ($([ "$EVAL_BYTES" != 0 ] && echo "the first $EVAL_BYTES bytes of test.txt" || echo "the whole test.txt")). Same budget for"
    echo "every row: $STEPS steps of $BATCH x 64 bytes, threads $THREADS, seed 1, AdamW 1e-3 (cosine),"
    echo "${MODEL[*]} (a row's own --layers overrides); the whole script took $t_total s on $(nproc) CPU(s) ($(uname -m))."
    echo
    echo "| corpus | model | parameters | test bits/byte | eval memory 64 | 256 | 512 | 1024 | 256 clamped | 512 clamped | 1024 clamped | train s | CPU s | ms/step |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    keys=()
    for row in $ROWS; do keys+=("wiki-$row"); done
    [ "$KJV" = 1 ] && keys+=(kjv-gpt "kjv-$best")
    for key in "${keys[@]}"; do
        row=${key#*-}
        corpus=${key%%-*}
        m64=""; m256=""; m512=""; m1024=""; c256=""; c512=""; c1024=""
        if [ "$corpus" = wiki ] && [ -n "${M64[$row]:-}" ]; then
            m64=${M64[$row]}; m256=${M256[$row]}; m512=${M512[$row]}; m1024=${M1024[$row]}
            c256=${C256[$row]:-}; c512=${C512[$row]:-}; c1024=${C1024[$row]:-}
        fi
        echo "| $corpus | $row: ${ARGS[$row]} | ${PARAMS[$key]:-} | ${BPB[$key]:-failed} | $m64 | $m256 | $m512 | $m1024 | $c256 | $c512 | $c1024 | ${TRAIN[$key]:-} | ${CPU[$key]:-} | ${MS[$key]:-} |"
    done
    echo
    has_row gpt && has_row txl-m64 &&
    echo "- TXL (memory 64) vs GPT (context 64), same segment length and parameter count:" \
         "$(awk -v a="${BPB[wiki-gpt]:-nan}" -v b="${BPB[wiki-txl-m64]:-nan}" 'BEGIN { printf "%.4f", a - b }') bits/byte better (target >= 0.05)."
    has_row span512 && has_row txl-m512 &&
    echo "- Adaptive span vs the fixed 512 span: $(awk -v a="${BPB[wiki-span512]:-nan}" -v b="${BPB[wiki-txl-m512]:-nan}" 'BEGIN { printf "%+.4f", a - b }') bits/byte" \
         "(target within 0.02); mean learned span $mean_span of 512 ($(awk -v s="${mean_span:-nan}" 'BEGIN { printf "%.1f", 100 * s / 512 }')%, target <= 25%);" \
         "step time ${MS[wiki-span512]:-} ms vs ${MS[wiki-txl-m512]:-} ms ($(awk -v a="${MS[wiki-span512]:-nan}" -v b="${MS[wiki-txl-m512]:-nan}" 'BEGIN { printf "%.0f", 100 * (1 - a / b) }')% saved)."
    for row in allatt allatt-l6 allatt-l8; do
        if has_row "$row" && has_row txl-m64; then
            echo "- All-attention ($row) vs the standard block (memory 64): $(awk -v a="${BPB[wiki-$row]:-nan}" -v b="${BPB[wiki-txl-m64]:-nan}" 'BEGIN { printf "%+.4f", a - b }') bits/byte (target within 0.03)."
        fi
    done
    [ -n "$gpt_speed" ] &&
    echo "- Evaluation speed over the first $SPEED_BYTES test bytes: TXL memory cache (segment 64, memory 64)" \
         "$txl_bps bytes/s ($txl_sw bits/byte) vs GPT sliding window stride 1 (context 64) $gpt_bps bytes/s" \
         "($gpt_sw bits/byte): $(awk -v a="${txl_bps:-0}" -v b="${gpt_bps:-1}" 'BEGIN { printf "%.1f", a / b }')x (target >= 10x)."
    echo "- Clamped: the relative distances above the largest one of training (mem_len + 63) use its position row."
    if [ "$KJV" = 1 ]; then echo "- KJV: the GPT and the best wiki TXL row ($best)."; fi
    has_row span512 &&
    echo "- Spans per layer and head: $OUT/wiki-span512/train.jsonl (\"spans\" records);" \
         "pictures: $OUT/span512-memory.svg (memory attention), $OUT/span512-spans.svg (learned spans)"
    true
} >"$table"
if has_row span512; then
    "$ATTN" lm viz --model "$OUT/wiki-span512" --out "$OUT/span512" --mem-len 192 --offset 4096 --threads "$THREADS" >/dev/null || true
fi
cat "$table"
