#!/usr/bin/env bash
# cli_driver.sh BUILD_DIR: the training driver's common behaviour, run
# through the CLI for every family on it (part of `make test`; about 15 s).
# Each family trains a tiny model on a corpus written here, for a few steps:
#
#   - training into a directory that holds a run is refused (exit 1, the
#     model untouched) unless --force (or --resume) is given;
#   - --resume with nothing to resume says so (exit 1);
#   - --resume with a flag that would change the model is refused (exit 2,
#     the flag named);
#   - --resume --steps N applies and prints the new total, and the progress
#     line counts the global step ("6/10" after 5 steps);
#   - --opt=value is the same as --opt value;
#   - SIGINT during training: the step finishes, a checkpoint is written, the
#     command says where and exits 130; the run resumes from it.
# Then inputs a user will give: a translate line that does not fit the
# arena (an error for that line, the others translated), characters outside
# the vocabulary (a warning naming them), translate --svg and viz --out into
# missing folders (created); gpt sample streaming its tokens and stopping on
# SIGINT. The GAN (on IDX files of random pixels written here) runs the same
# family checks through the driver's custom-step and save hooks, plus its
# own: both checkpoints, sample's grid, --lr refused, fid's errors.
#
# Prints one line per check and "cli_driver: N passed, N failed"; exits
# non-zero if any check failed.
set -uo pipefail

BUILD="${1:-build}"
ATTN="$BUILD/attn"
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/attn_cli_driver.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

if [ ! -x "$ATTN" ]; then
    fail "$ATTN is not built (run make)"
    echo "cli_driver: $passed passed, $failed failed"
    exit 1
fi

DATA="$TMP/data"
mkdir -p "$DATA"
for i in $(seq 1 40); do
    printf 'the cat sat on the mat.\n%%\na dog ran in the fog.\n%%\nsix hens fed ten chicks.\n%%\n'
done >"$DATA/train.txt"
for i in $(seq 1 4); do
    printf 'a dog ran in the fog.\n%%\nthe cat sat on the mat.\n%%\n'
done >"$DATA/valid.txt"

# Labelled data for fine-tuning: two classes, one integer label a line.
LAB="$TMP/labels"
mkdir -p "$LAB"
printf 'cats\ndogs\n' >"$LAB/classes"
for split in train valid test; do
    : >"$LAB/$split.txt"
    : >"$LAB/$split.labels"
    for i in $(seq 1 12); do
        printf 'the cat sat on the mat %d.\n%%\n' "$i" >>"$LAB/$split.txt"
        echo 0 >>"$LAB/$split.labels"
        printf 'a dog ran in the fog %d.\n%%\n' "$i" >>"$LAB/$split.txt"
        echo 1 >>"$LAB/$split.labels"
    done
done
cp "$DATA/train.txt" "$LAB/pretrain.txt"

# Fashion-MNIST-shaped IDX files of random pixels for the GAN: 12 training
# and 8 test images of 28 x 28 (header: magic 0x00000803, then the three
# dimensions, big-endian).
IDX="$TMP/idx"
mkdir -p "$IDX"
gan_idx_images() { # FILE N N_AS_HEX_BYTE
    printf "\\x00\\x00\\x08\\x03\\x00\\x00\\x00\\x$3\\x00\\x00\\x00\\x1c\\x00\\x00\\x00\\x1c" >"$1"
    head -c $(($2 * 784)) /dev/urandom >>"$1"
}
gan_idx_images "$IDX/train-images-idx3-ubyte" 12 0c
gan_idx_images "$IDX/t10k-images-idx3-ubyte" 8 08

# The families: name, then the command and options of a tiny run (without
# --out and --steps), then a shape flag with its value.
GPT=("$ATTN" gpt train --data "$DATA" --layers 1 --heads 2 --d-model 16 --ctx 16 --batch 4 --threads 1
     --eval-every 0 --log-every 1)
BERT=("$ATTN" bert pretrain --text "$DATA/train.txt" --valid "$DATA/valid.txt" --tokenizer char
      --layers 1 --heads 2 --d-model 16 --ctx 16 --batch 4 --threads 1 --eval-every 0 --log-every 1)
SEQ2SEQ=("$ATTN" seq2seq train --task dates --emb 8 --hidden 8 --batch 4 --threads 1 --eval-every 0
         --log-every 1)
TRANSFORMER=("$ATTN" transformer train --task dates --d-model 8 --heads 2 --layers 1 --batch 4 --threads 1
             --eval-every 0 --log-every 1)
FINETUNE=("$ATTN" bert finetune --data "$LAB" --tok char --layers 1 --heads 2 --d-model 16 --max-len 16
          --batch 4 --threads 1 --eval-every 0 --log-every 1)
GAN=("$ATTN" gan train --data "$IDX" --z-dim 8 --g-ch 8 --d-ch 8 --batch 4 --eval-n 4 --threads 1
     --eval-every 0 --log-every 1)

# attn lm: byte-level text with train, valid and test splits.
LMD="$TMP/lmdata"
mkdir -p "$LMD"
cp "$DATA/train.txt" "$LMD/train.txt"
cp "$DATA/valid.txt" "$LMD/valid.txt"
cp "$DATA/valid.txt" "$LMD/test.txt"
LMTXL=("$ATTN" lm train --data "$LMD" --arch txl --layers 1 --heads 2 --d-model 16 --segment 8 --mem-len 16
       --span 1 --span-max 16 --span-ramp 4 --span-init 8 --batch 4 --threads 1 --eval-every 0 --log-every 1)
LMGPT=("$ATTN" lm train --data "$LMD" --arch gpt --layers 1 --heads 2 --d-model 16 --ctx 16 --batch 4
       --threads 1 --eval-every 0 --log-every 1)
LMALL=("$ATTN" lm train --data "$LMD" --arch txl --layers 1 --heads 2 --d-model 16 --segment 8 --mem-len 8
       --no-ffn --persistent 4 --run-segments 0 --batch 4 --threads 1 --eval-every 0 --log-every 1)

# checks NAME SHAPE_FLAG SHAPE_VALUE -- CMD...
checks() {
    local name="$1" shape="$2" value="$3"
    shift 4
    local cmd=("$@") dir="$TMP/$name" out="$TMP/$name.out"

    "${cmd[@]}" --out "$dir" --steps 5 --quiet >"$out" 2>&1
    local rc=$?
    if [ "$rc" = 0 ] && [ -f "$dir/model.safetensors" ] && grep -q "<svg" "$dir/loss.svg" &&
        grep -q '"event":"end"' "$dir/train.jsonl"; then
        ok "$name: trains 5 steps; model, train.jsonl and loss.svg written"
    else
        fail "$name: first run: exit $rc: $(head -c 400 "$out")"
        return
    fi

    local sum
    sum=$(cksum <"$dir/model.safetensors")
    "${cmd[@]}" --out "$dir" --steps 5 --quiet >"$out" 2>&1
    rc=$?
    if [ "$rc" = 1 ] && grep -q "already holds a run" "$out" && grep -q -- "--force" "$out" &&
        [ "$(cksum <"$dir/model.safetensors")" = "$sum" ]; then
        ok "$name: training into a directory that holds a run is refused (exit 1), the model untouched"
    else
        fail "$name: overwrite not refused: exit $rc: $(head -c 400 "$out")"
    fi

    "${cmd[@]}" --out "$dir" --steps 5 --quiet --force >"$out" 2>&1
    rc=$?
    if [ "$rc" = 0 ] && [ "$(grep -c '"event":"start"' "$dir/train.jsonl")" = 1 ]; then
        ok "$name: --force overwrites the run (a new log)"
    else
        fail "$name: --force: exit $rc: $(head -c 400 "$out")"
    fi

    "${cmd[@]}" --out "$TMP/$name-empty" --resume --quiet >"$out" 2>&1
    rc=$?
    if [ "$rc" = 1 ] && grep -q "nothing to resume" "$out"; then
        ok "$name: --resume with nothing to resume says so (exit 1)"
    else
        fail "$name: --resume of nothing: exit $rc: $(head -c 400 "$out")"
    fi

    "$ATTN" "${cmd[1]}" "${cmd[2]}" --out "$dir" --resume "$shape" "$value" --quiet >"$out" 2>&1
    rc=$?
    if [ "$rc" = 2 ] && grep -q -- "$shape would change" "$out"; then
        ok "$name: --resume $shape $value is refused (exit 2) and the flag named"
    else
        fail "$name: --resume with a shape flag: exit $rc: $(head -c 400 "$out")"
    fi

    # Resume to 10 steps with --opt=value; the progress line (not --quiet,
    # stderr is a file: the first update and the last are written) shows
    # the global step.
    "$ATTN" "${cmd[1]}" "${cmd[2]}" --out="$dir" --resume --steps=10 --threads 1 >"$out" 2>"$out.err"
    rc=$?
    if [ "$rc" = 0 ] && grep -q "resume: --steps 10 (was 5)" "$out" &&
        grep -q '"event":"resume","step":5' "$dir/train.jsonl" &&
        grep -q '"event":"end","step":10' "$dir/train.jsonl"; then
        ok "$name: --resume --steps=10 applies and prints the new total, trains steps 6-10"
    else
        fail "$name: --resume --steps: exit $rc: $(head -c 400 "$out" "$out.err")"
    fi
    if grep -q " 6/10 " "$out.err" && grep -q " 10/10 " "$out.err"; then
        ok "$name: the progress line counts the global step (6/10 ... 10/10)"
    else
        fail "$name: progress line: $(head -c 400 "$out.err")"
    fi

    # SIGINT: a long run, interrupted once it has logged a step.
    local sdir="$TMP/$name-sig"
    "${cmd[@]}" --out "$sdir" --steps 1000000 --quiet >"$out" 2>"$out.err" &
    local pid=$!
    for _ in $(seq 1 300); do
        grep -q '"event":"train"' "$sdir/train.jsonl" 2>/dev/null && break
        sleep 0.1
    done
    kill -INT "$pid"
    wait "$pid"
    rc=$?
    local step
    step=$(sed -n 's/.*"event":"interrupted","step":\([0-9]*\).*/\1/p' "$sdir/train.jsonl" 2>/dev/null)
    if [ "$rc" = 130 ] && [ -n "$step" ] && [ -f "$sdir/model.safetensors" ] &&
        grep -q "interrupted by SIGINT after step $step .*checkpoint written to $sdir/model.safetensors" \
            "$out.err"; then
        ok "$name: SIGINT at step $step: exit 130, checkpoint written, its path printed"
    else
        fail "$name: SIGINT: exit $rc, step '$step': $(head -c 400 "$out.err")"
        return
    fi
    "$ATTN" "${cmd[1]}" "${cmd[2]}" --out "$sdir" --resume --steps $((step + 2)) --quiet >"$out" 2>&1
    rc=$?
    if [ "$rc" = 0 ] && grep -q "resuming .* at step $step" "$out"; then
        ok "$name: the interrupted run resumes at step $step"
    else
        fail "$name: resume after SIGINT: exit $rc: $(head -c 400 "$out")"
    fi
}

checks gpt --d-model 32 -- "${GPT[@]}"
checks bert-pretrain --layers 2 -- "${BERT[@]}"
checks bert-finetune --pre-ln 1 -- "${FINETUNE[@]}"
checks seq2seq --hidden 16 -- "${SEQ2SEQ[@]}"
checks transformer --d-model 16 -- "${TRANSFORMER[@]}"
checks lm-txl --mem-len 32 -- "${LMTXL[@]}"
checks lm-gpt --d-model 32 -- "${LMGPT[@]}"

# attn lstmn: word-level LSTMN and LSTM language models on verses in data/kjv's
# format (a heading line, then "  N text" lines).
LSD="$TMP/lstmndata"
mkdir -p "$LSD"
for split in train valid test; do
    n=30
    [ "$split" = train ] || n=4
    for i in $(seq 1 "$n"); do
        printf 'Book %d\n\n  1 In the beginning the cat sat on the mat.\n  2 And the dog ran, in the fog; and it was good.\n\n' "$i"
    done >"$LSD/$split.txt"
done
LSTMN=("$ATTN" lstmn train --data "$LSD" --vocab 12 --embed 8 --hidden 8 --attn 4 --ctx 6 --batch 4
       --threads 1 --eval-every 0 --log-every 1)
checks lstmn --hidden 16 -- "${LSTMN[@]}"
if "$ATTN" lstmn eval --model "$TMP/lstmn" --split test --threads 1 >"$TMP/lstmn-eval.out" 2>&1 &&
    grep -q '"cell": "lstmn", "split": "test".*"perplexity": [0-9.]*' "$TMP/lstmn-eval.out" &&
    [ "$(wc -l <"$TMP/lstmn/vocab.txt")" = 12 ] && [ "$(head -2 "$TMP/lstmn/vocab.txt" | tr '\n' ' ')" = "<unk> <eos> " ]; then
    ok "lstmn eval prints the test perplexity as JSON; vocab.txt holds <unk>, <eos> and 10 words"
else
    fail "lstmn eval: $(head -c 300 "$TMP/lstmn-eval.out")"
fi
if "${LSTMN[@]}" --cell lstm --out "$TMP/lstmn-lstm" --steps 3 --quiet >"$TMP/lstmn-lstm.out" 2>&1 &&
    grep -q "^LSTM LM: embed 8, hidden 8" "$TMP/lstmn-lstm.out" &&
    "$ATTN" lstmn eval --model "$TMP/lstmn-lstm" --split valid --threads 1 | grep -q '"cell": "lstm"'; then
    ok "lstmn train --cell lstm trains the LSTM baseline; eval reads it back"
else
    fail "lstmn --cell lstm: $(head -c 300 "$TMP/lstmn-lstm.out")"
fi
if "$ATTN" lstmn viz --model "$TMP/lstmn" --text "the cat sat on the mat." --out "$TMP/lv.svg" >"$TMP/lv.out" 2>&1 &&
    grep -q "<svg" "$TMP/lv.svg" && grep -q "7 words, 3 of them <unk>" "$TMP/lv.out"; then
    ok "lstmn viz draws the intra-attention of a text (SVG; sat, on, mat are outside the 12 words: 3 <unk>)"
else
    fail "lstmn viz: $(head -c 300 "$TMP/lv.out")"
fi
if "$ATTN" lstmn viz --model "$TMP/lstmn" --text "the cat sat on the mat." --html "$TMP/lv.html" \
    --weights "$TMP/lv.weights" >"$TMP/lvh.out" 2>&1 && grep -q "<script" "$TMP/lv.html" &&
    grep -q "LSTMN intra-attention" "$TMP/lv.html" && [ -s "$TMP/lv.weights" ]; then
    ok "lstmn viz --html writes the explorer page of the intra-attention (and --weights its values)"
else
    fail "lstmn viz --html: $(head -c 300 "$TMP/lvh.out")"
fi
# attn rnnlm: the SHA-LSTM and LSTM byte models (state carried) on the lm bytes;
# attn classify: the BiGRU classifier with LAMA pooling on the labelled data.
RNNLM=("$ATTN" rnnlm train --data "$LMD" --arch sha-lstm --d 8 --layers 2 --ctx 8 --run-segments 3 --batch 2
       --threads 1 --eval-every 0 --eval-n 2 --log-every 1)
checks rnnlm --d 16 -- "${RNNLM[@]}"
if "$ATTN" rnnlm eval --model "$TMP/rnnlm" --split test --streams 2 --threads 1 >"$TMP/rnnlm-eval.out" 2>&1 &&
    grep -q '"arch": "sha-lstm", "split": "test".*"bits_per_byte": [0-9.]*' "$TMP/rnnlm-eval.out" &&
    "$ATTN" rnnlm sample --model "$TMP/rnnlm" --prompt "the " --bytes 20 --threads 1 >"$TMP/rnnlm-s.out" 2>/dev/null &&
    [ "$(head -c 4 "$TMP/rnnlm-s.out")" = "the " ] && [ "$(wc -c <"$TMP/rnnlm-s.out")" = 25 ]; then
    ok "rnnlm eval prints the test bits/byte as JSON; sample writes the prompt and 20 bytes"
else
    fail "rnnlm eval/sample: $(head -c 300 "$TMP/rnnlm-eval.out")"
fi
if "${RNNLM[@]}" --arch lstm --out "$TMP/rnnlm-lstm" --steps 3 --quiet >"$TMP/rnnlm-lstm.out" 2>&1 &&
    grep -q "^LSTM LM: 2 layers of 8" "$TMP/rnnlm-lstm.out" &&
    "$ATTN" rnnlm eval --model "$TMP/rnnlm-lstm" --split valid --threads 1 | grep -q '"arch": "lstm"'; then
    ok "rnnlm train --arch lstm trains the plain LSTM; eval reads it back"
else
    fail "rnnlm --arch lstm: $(head -c 300 "$TMP/rnnlm-lstm.out")"
fi
if "$ATTN" rnnlm viz --model "$TMP/rnnlm" --text "the cat sat on the mat. a dog ran." --segment 8 --out "$TMP/rv.svg" \
    >"$TMP/rv.out" 2>&1 && grep -q "<svg" "$TMP/rv.svg" && grep -q "SHA: memory 8 + 8" "$TMP/rv.svg"; then
    ok "rnnlm viz draws the single-headed attention over the memory and the last segment (SVG)"
else
    fail "rnnlm viz: $(head -c 300 "$TMP/rv.out")"
fi
"${RNNLM[@]}" --out "$TMP/rnnlm-bad" --attn-layer 2 >"$TMP/rnnlm-bad.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q -- "--attn-layer 2 with --layers 2" "$TMP/rnnlm-bad.out" && [ ! -e "$TMP/rnnlm-bad" ] &&
    ok "rnnlm --attn-layer past the last block refused (exit 2), nothing written" ||
    fail "rnnlm --attn-layer: exit $rc: $(head -c 300 "$TMP/rnnlm-bad.out")"
"${RNNLM[@]}" --out "$TMP/rnnlm-bad" --ctx 4000 >"$TMP/rnnlm-bad2.out" 2>&1
rc=$?
[ "$rc" = 1 ] && grep -q "train.txt needs more than" "$TMP/rnnlm-bad2.out" &&
    ok "rnnlm with segments longer than the text: a clear error (exit 1)" ||
    fail "rnnlm --ctx 4000: exit $rc: $(head -c 300 "$TMP/rnnlm-bad2.out")"
CLASSIFY=("$ATTN" classify train --data "$LAB" --pool lama --bpe-merges 20 --embed 8 --hidden 4 --heads 2 --rank 2
          --max-len 16 --batch 4 --threads 1 --eval-every 0 --log-every 1)
checks classify --rank 3 -- "${CLASSIFY[@]}"
if "$ATTN" classify eval --model "$TMP/classify" --split test --threads 1 >"$TMP/classify-eval.out" 2>&1 &&
    grep -q '"pool": "lama", "split": "test", "parameters": [0-9]*, "n": 24, "accuracy": [0-9.]*' "$TMP/classify-eval.out"; then
    ok "classify eval prints the test accuracy of the 24 labelled texts as JSON"
else
    fail "classify eval: $(head -c 300 "$TMP/classify-eval.out")"
fi
for pool in attn mhsa mean; do
    if "${CLASSIFY[@]}" --pool "$pool" --out "$TMP/classify-$pool" --steps 2 --quiet >"$TMP/classify-$pool.out" 2>&1 &&
        grep -q "^BiGRU classifier, $pool pooling" "$TMP/classify-$pool.out" &&
        grep -q "test accuracy" "$TMP/classify-$pool.out"; then
        ok "classify train --pool $pool trains and reports the test accuracy"
    else
        fail "classify --pool $pool: $(head -c 300 "$TMP/classify-$pool.out")"
    fi
done
if "$ATTN" classify viz --model "$TMP/classify" --text "the cat sat on the mat" --out "$TMP/cv.svg" >"$TMP/cv.out" 2>&1 &&
    grep -q "<svg" "$TMP/cv.svg" && grep -q "LAMA: 2 heads" "$TMP/cv.svg" && grep -q "^predicted class [01]$" "$TMP/cv.out" &&
    ! "$ATTN" classify viz --model "$TMP/classify-mean" --text "the cat" --out "$TMP/cv2.svg" >/dev/null 2>&1; then
    ok "classify viz draws LAMA's distributions over a text (SVG) and names the class; mean pooling refused"
else
    fail "classify viz: $(head -c 300 "$TMP/cv.out")"
fi
"${CLASSIFY[@]}" --pool max --out "$TMP/classify-bad" >"$TMP/classify-bad.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q -- "--pool 'max'" "$TMP/classify-bad.out" && ok "classify --pool max refused (exit 2)" ||
    fail "classify --pool max: exit $rc: $(head -c 300 "$TMP/classify-bad.out")"
"${CLASSIFY[@]}" --data "$TMP/nosuchdir" --out "$TMP/classify-bad" >"$TMP/classify-bad2.out" 2>&1
rc=$?
[ "$rc" = 1 ] && grep -q "cannot open .*classes" "$TMP/classify-bad2.out" &&
    ok "classify without labelled data: a clear error naming the file (exit 1)" ||
    fail "classify no data: exit $rc: $(head -c 300 "$TMP/classify-bad2.out")"

lstmn_refused() { # CODE TEXT -- CMD...: the command exits CODE saying TEXT, nothing written
    local code="$1" text="$2"
    shift 3
    "$@" >"$TMP/lsr.out" 2>&1
    local r=$?
    if [ "$r" = "$code" ] && grep -q -- "$text" "$TMP/lsr.out" && [ ! -e "$TMP/lstmn-bad" ]; then
        ok "lstmn refuses: ${*:2:1} ... ${*: -2} (exit $code: $text)"
    else
        fail "lstmn refused option: exit $r: $* : $(head -c 300 "$TMP/lsr.out")"
    fi
}
LSB=("$ATTN" lstmn train --data "$LSD" --out "$TMP/lstmn-bad" --steps 2 --threads 1)
lstmn_refused 2 "expected lstmn or lstm" -- "${LSB[@]}" --cell gru
lstmn_refused 2 "expected an integer" -- "${LSB[@]}" --vocab 2
lstmn_refused 2 "expected an integer" -- "${LSB[@]}" --hidden 0
lstmn_refused 1 "fewer than 201 words" -- "${LSB[@]}" --ctx 200
lstmn_refused 1 "cannot read" -- "$ATTN" lstmn train --data "$TMP/nowhere" --out "$TMP/lstmn-bad" --steps 2
lstmn_refused 2 "expected test, valid or train" -- "$ATTN" lstmn eval --model "$TMP/lstmn" --split dev
lstmn_refused 1 "not a checkpoint of attn lstmn train" -- "$ATTN" lstmn eval --model "$TMP/gpt"

# attn seq2seq --cell lstmn: the LSTMN encoder-decoder (shallow and deep
# fusion) through the driver's common checks; resume keeps cell and fusion;
# translate (greedy and beam) and eval read it back; invalid combinations.
checks seq2seq-lstmn --hidden 16 -- "${SEQ2SEQ[@]}" --cell lstmn --fusion deep
if grep -q '"event":"resume".*"cell":"lstmn".*LSTMN (deep fusion)' "$TMP/seq2seq-lstmn/train.jsonl" &&
    "$ATTN" seq2seq translate --model "$TMP/seq2seq-lstmn" --threads 1 --beam 3 "12/25/99" \
        >"$TMP/s2s-tr.out" 2>&1 && [ "$(wc -l <"$TMP/s2s-tr.out")" = 1 ]; then
    ok "seq2seq-lstmn: the resumed run is the LSTMN with deep fusion (train.jsonl); beam 3 translates"
else
    fail "seq2seq-lstmn: resume/translate: $(grep -m1 resume "$TMP/seq2seq-lstmn/train.jsonl" | head -c 300)"
fi
"${SEQ2SEQ[@]}" --cell lstmn --out "$TMP/s2s-shallow" --steps 3 --quiet >"$TMP/s2s-sh.out" 2>&1
if grep -q "LSTMN (shallow fusion) seq2seq" "$TMP/s2s-sh.out" &&
    "$ATTN" seq2seq eval --model "$TMP/s2s-shallow" --threads 1 --beam 2 --limit 20 >"$TMP/s2s-sh.eval" 2>&1 &&
    grep -q "exact match" "$TMP/s2s-sh.eval"; then
    ok "seq2seq --cell lstmn defaults to shallow fusion; eval with beam 2 runs on it"
else
    fail "seq2seq --cell lstmn shallow: $(head -c 300 "$TMP/s2s-sh.out" "$TMP/s2s-sh.eval")"
fi
s2s_refused() { # TEXT -- OPTIONS...: train exits 2 saying TEXT, nothing written
    local text="$1"
    shift 2
    "${SEQ2SEQ[@]}" --out "$TMP/s2s-bad" --steps 2 "$@" >"$TMP/s2sr.out" 2>&1
    local r=$?
    if [ "$r" = 2 ] && grep -q -- "$text" "$TMP/s2sr.out" && [ ! -e "$TMP/s2s-bad" ]; then
        ok "seq2seq refuses $* (exit 2: $text)"
    else
        fail "seq2seq $*: exit $r: $(head -c 300 "$TMP/s2sr.out")"
    fi
}
s2s_refused "needs --cell lstmn" -- --fusion deep
s2s_refused "needs --cell lstmn" -- --cell lstm --fusion shallow
s2s_refused "expected shallow or deep" -- --cell lstmn --fusion none
s2s_refused "is not supported with it" -- --cell lstmn --attention general
s2s_refused "reads left to right" -- --cell lstmn --bidir 1
s2s_refused "one LSTMN layer" -- --cell lstmn --layers 2
s2s_refused "expected gru, lstm or lstmn" -- --cell rnn

# attn lm: a resumed GPT run is the run straight through (same batches, same
# AdamW state): the final valid bits/byte agree to the last digit. (The TXL's
# resumed memory is rebuilt with the current weights, so it is not bitwise.)
"${LMGPT[@]}" --out "$TMP/lm-straight" --steps 10 --quiet >"$TMP/lmst.out" 2>&1
rc=$?
v1=$(sed -n 's/.*"event":"eval","step":10,"valid_loss":[^,]*,"valid_bpb":\([^,]*\).*/\1/p' "$TMP/lm-straight/train.jsonl")
v2=$(sed -n 's/.*"event":"eval","step":10,"valid_loss":[^,]*,"valid_bpb":\([^,]*\).*/\1/p' "$TMP/lm-gpt/train.jsonl")
if [ "$rc" = 0 ] && [ -n "$v1" ] && [ "$v1" = "$v2" ]; then
    ok "lm-gpt: 5 steps + --resume to 10 = 10 steps straight (valid $v1 bits/byte)"
else
    fail "lm-gpt resume vs straight: exit $rc, '$v1' vs '$v2'"
fi

# attn lm: evaluation, sampling, pictures, and the options it refuses.
lmtest=$(($(wc -c <"$LMD/test.txt") - 1))
"$ATTN" lm eval --model "$TMP/lm-txl" --threads 1 >"$TMP/lm.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q "^test: [0-9.]* bits/byte over $lmtest bytes; txl segment 8 memory 16" "$TMP/lm.out"; then
    ok "lm eval: the TXL reads all of test.txt with its memory ($lmtest predictions)"
else
    fail "lm eval (txl): exit $rc: $(head -c 300 "$TMP/lm.out")"
fi
"${LMALL[@]}" --out "$TMP/lm-all" --steps 40 --lr 0.01 --warmup 0 --quiet >"$TMP/lma.out" 2>&1 &&
    "$ATTN" lm eval --model "$TMP/lm-all" --mem-len 0 --split valid --threads 1 >"$TMP/lm0.out" 2>&1 &&
    "$ATTN" lm eval --model "$TMP/lm-all" --mem-len 32 --split valid --threads 1 >"$TMP/lm32.out" 2>&1
rc=$?
b0=$(sed -n 's/^valid: \([0-9.]*\) bits.*/\1/p' "$TMP/lm0.out")
b32=$(sed -n 's/^valid: \([0-9.]*\) bits.*/\1/p' "$TMP/lm32.out")
if [ "$rc" = 0 ] && [ -n "$b0" ] && [ -n "$b32" ] && [ "$b0" != "$b32" ] && grep -q "memory 32" "$TMP/lm32.out"; then
    ok "lm eval --mem-len: the evaluation memory changes the result of a trained model (0: $b0, 32: $b32 bits/byte)"
else
    fail "lm eval --mem-len: exit $rc: $(head -c 300 "$TMP/lm0.out" "$TMP/lm32.out")"
fi
"$ATTN" lm eval --model "$TMP/lm-all" --mem-len 32 --split valid --losses "$TMP/lm32-losses.txt" --threads 1 >"$TMP/lml.out" 2>&1
rc=$?
lmvalid=$(($(wc -c <"$LMD/valid.txt") - 1))
bl=$(sed -n 's/^valid: \([0-9.]*\) bits.*/\1/p' "$TMP/lml.out")
bmean=$(awk '{ s += $1 } END { if (NR) printf "%.4f", s / NR }' "$TMP/lm32-losses.txt" 2>/dev/null)
"$ATTN" lm eval --model "$TMP/lm-gpt" --losses "$TMP/lmg-losses.txt" --threads 1 >"$TMP/lmg.out" 2>&1
rcg=$?
if [ "$rc" = 0 ] && [ "$bl" = "$b32" ] && [ "$bmean" = "$b32" ] && [ "$(wc -l <"$TMP/lm32-losses.txt")" = "$lmvalid" ] &&
    [ "$rcg" = 2 ] && grep -q "losses is for a Transformer-XL" "$TMP/lmg.out"; then
    ok "lm eval --losses: $lmvalid per-byte losses whose mean is the printed bits/byte ($bl); refused for a GPT"
else
    fail "lm eval --losses: exit $rc/$rcg, '$bl' '$bmean' vs '$b32': $(head -c 300 "$TMP/lml.out" "$TMP/lmg.out")"
fi
"$ATTN" lm eval --model "$TMP/lm-all" --mem-len 32 --clamp-len 4 --split valid --threads 1 >"$TMP/lmc.out" 2>&1 &&
    "$ATTN" lm eval --model "$TMP/lm-all" --mem-len 32 --clamp-len 39 --split valid --threads 1 >"$TMP/lmc39.out" 2>&1
rc=$?
bc=$(sed -n 's/^valid: \([0-9.]*\) bits.*/\1/p' "$TMP/lmc.out")
bc39=$(sed -n 's/^valid: \([0-9.]*\) bits.*/\1/p' "$TMP/lmc39.out")
if [ "$rc" = 0 ] && [ -n "$bc" ] && [ "$bc39" = "$b32" ] && grep -q "memory 32 clamp 4;" "$TMP/lmc.out"; then
    ok "lm eval --clamp-len: clamped at 4 ($bc bits/byte); at the largest distance (39) the unclamped result"
else
    fail "lm eval --clamp-len: exit $rc: $(head -c 300 "$TMP/lmc.out" "$TMP/lmc39.out")"
fi
"$ATTN" lm eval --model "$TMP/lm-gpt" --stride 1 --threads 1 >"$TMP/lm1.out" 2>&1 &&
    "$ATTN" lm eval --model "$TMP/lm-gpt" --threads 1 >"$TMP/lm16.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q "over $lmtest bytes; gpt context 16 stride 1;" "$TMP/lm1.out" &&
    grep -q "over $lmtest bytes; gpt context 16 stride 16;" "$TMP/lm16.out"; then
    ok "lm eval: the GPT's sliding window predicts every byte once at stride 1 and 16"
else
    fail "lm eval (gpt): exit $rc: $(head -c 300 "$TMP/lm1.out" "$TMP/lm16.out")"
fi
if grep -q '"event":"spans","step":[0-9]*,"mean_span":[0-9.e-]*,"max_window":[0-9]*,"spans":"\[\[' \
    "$TMP/lm-txl/train.jsonl"; then
    ok "lm train --span 1 logs the learned spans in train.jsonl"
else
    fail "lm spans record: $(grep spans "$TMP/lm-txl/train.jsonl" | head -c 300)"
fi
for m in lm-txl lm-gpt; do
    "$ATTN" lm sample --model "$TMP/$m" --prompt "the " --bytes 20 --temperature 0 --threads 1 >"$TMP/lms.out" 2>"$TMP/lms.err"
    rc=$?
    if [ "$rc" = 0 ] && [ "$(head -c 4 "$TMP/lms.out")" = "the " ] && [ "$(wc -c <"$TMP/lms.out")" = 25 ]; then
        ok "lm sample ($m): the prompt and 20 generated bytes"
    else
        fail "lm sample ($m): exit $rc: $(head -c 300 "$TMP/lms.out" "$TMP/lms.err")"
    fi
done
if grep -q "no FFN (all-attention), 4 persistent vectors" "$TMP/lma.out" &&
    grep -q "[0-9] parameters" "$TMP/lma.out"; then
    ok "lm train: all-attention (--no-ffn --persistent 4) trains, its parameters counted"
else
    fail "lm all-attention: exit $rc: $(head -c 300 "$TMP/lma.out")"
fi
"$ATTN" lm viz --model "$TMP/lm-txl" --out "$TMP/lmviz/txl" --threads 1 >"$TMP/lmv.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q "<svg" "$TMP/lmviz/txl-memory.svg" && grep -q "layer 0, head 1" "$TMP/lmviz/txl-memory.svg" &&
    grep -q "<svg" "$TMP/lmviz/txl-spans.svg" && grep -q "layer 0" "$TMP/lmviz/txl-spans.svg"; then
    ok "lm viz: memory attention heatmaps and the span bar chart (SVG)"
else
    fail "lm viz: exit $rc: $(head -c 300 "$TMP/lmv.out")"
fi
"$ATTN" lm viz --model "$TMP/lm-all" --out "$TMP/lmviz/all" --threads 1 >"$TMP/lmv.out" 2>&1 &&
    "$ATTN" lm viz --model "$TMP/lm-gpt" --out "$TMP/lmviz/gpt" --threads 1 >>"$TMP/lmv.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q ">p3<" "$TMP/lmviz/all-memory.svg" && [ -f "$TMP/lmviz/gpt-memory.svg" ] &&
    [ ! -e "$TMP/lmviz/all-spans.svg" ]; then
    ok "lm viz: persistent vectors drawn as keys p0..; a GPT's window drawn"
else
    fail "lm viz (all-attention / gpt): exit $rc: $(head -c 300 "$TMP/lmv.out")"
fi
"$ATTN" viz --model "$TMP/lm-txl" --out "$TMP/lmviz/via-viz" --threads 1 "the cat sat on the mat, the dog ran" >"$TMP/lmv.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q "<svg" "$TMP/lmviz/via-viz-memory.svg" && [ -f "$TMP/lmviz/via-viz-spans.svg" ]; then
    ok "attn viz on an attn lm checkpoint draws its memory attention and spans (as attn lm viz)"
else
    fail "attn viz on an attn lm checkpoint: exit $rc: $(head -c 300 "$TMP/lmv.out")"
fi
lm_refused() { # CODE TEXT -- CMD...: the command exits CODE saying TEXT, nothing written
    local code="$1" text="$2"
    shift 3
    "$@" >"$TMP/lmr.out" 2>&1
    local r=$?
    if [ "$r" = "$code" ] && grep -q -- "$text" "$TMP/lmr.out" && [ ! -e "$TMP/lm-bad" ]; then
        ok "lm refuses: ${*:2:1} ... ${*: -2} (exit $code: $text)"
    else
        fail "lm refused option: exit $r: $* : $(head -c 300 "$TMP/lmr.out")"
    fi
}
LMB=("$ATTN" lm train --data "$LMD" --out "$TMP/lm-bad" --steps 2 --threads 1)
lm_refused 2 "must be gpt, txl or reformer" -- "${LMB[@]}" --arch rnn
lm_refused 2 "longer than the memory" -- "${LMB[@]}" --span 1 --span-max 64 --mem-len 16
lm_refused 2 "Transformer-XL options" -- "${LMB[@]}" --arch gpt --persistent 4
lm_refused 1 "lower --run-segments" -- "${LMB[@]}" --segment 8 --run-segments 100000
lm_refused 2 "expected an integer" -- "${LMB[@]}" --segment 0
lm_refused 2 "expected an integer" -- "${LMB[@]}" --mem-len -5
lm_refused 2 "expected f32 or bf16" -- "${LMB[@]}" --precision f16
# mixed precision (docs/mixed_precision.md): the same tiny GPT trains with bf16 products
"${LMGPT[@]}" --out "$TMP/lm-bf16" --steps 3 --precision bf16 >"$TMP/lmbf.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q "precision: bf16 matrix products" "$TMP/lmbf.out" &&
    grep -q '"event":"end"' "$TMP/lm-bf16/train.jsonl"; then
    ok "lm train --precision bf16: trains with bf16 products and says so"
else
    fail "lm train --precision bf16: exit $rc: $(head -c 300 "$TMP/lmbf.out")"
fi
lm_refused 2 "for a GPT" -- "$ATTN" lm eval --model "$TMP/lm-txl" --stride 1
lm_refused 2 "for a Transformer-XL" -- "$ATTN" lm eval --model "$TMP/lm-gpt" --mem-len 64
lm_refused 2 "for a Transformer-XL" -- "$ATTN" lm eval --model "$TMP/lm-gpt" --clamp-len 64
lm_refused 2 "expected an integer" -- "$ATTN" lm eval --model "$TMP/lm-all" --clamp-len -1
lm_refused 2 "valid or test" -- "$ATTN" lm eval --model "$TMP/lm-txl" --split train
if "$ATTN" lm viz --model "$TMP/lm-all" --html "$TMP/lmviz/all.html" --threads 1 >"$TMP/lmv.out" 2>&1 &&
    grep -q '"name":"memory attention"' "$TMP/lmviz/all.html" && grep -q '"p3"' "$TMP/lmviz/all.html" &&
    [ ! -e "$TMP/lmviz/all.html-memory.svg" ]; then
    ok "lm viz --html: the memory attention (persistent vectors as keys) as a page, without --out"
else
    fail "lm viz --html: $(head -c 300 "$TMP/lmv.out")"
fi
lm_refused 1 "not a checkpoint of attn lm train" -- "$ATTN" lm eval --model "$TMP/gpt"
lm_refused 2 "are required" -- "$ATTN" lm viz --model "$TMP/lm-txl"
lm_refused 1 "cannot read" -- "$ATTN" lm train --data "$TMP/nowhere" --out "$TMP/lm-bad" --steps 2
lm_refused 2 "is not dense, random" -- "${LMB[@]}" --arch gpt --synth dense+attention

# attn lm --arch reformer (LSH attention, reversible layers, chunked FFN and
# output) and --data dup (the duplication task, for every architecture).
LMRF=("$ATTN" lm train --data "$LMD" --arch reformer --layers 2 --heads 2 --d-model 16 --ctx 16 --chunk 4
      --ff-chunk 5 --out-chunk 6 --rounds 2 --batch 4 --threads 1 --eval-every 0 --log-every 1)
checks lm-reformer --chunk 8 -- "${LMRF[@]}"
"${LMRF[@]}" --out "$TMP/lm-rf-straight" --steps 10 --quiet >"$TMP/lmrf.out" 2>&1
rc=$?
v1=$(sed -n 's/.*"event":"eval","step":10,"valid_loss":[^,]*,"valid_bpb":\([^,]*\).*/\1/p' "$TMP/lm-rf-straight/train.jsonl")
v2=$(sed -n 's/.*"event":"eval","step":10,"valid_loss":[^,]*,"valid_bpb":\([^,]*\).*/\1/p' "$TMP/lm-reformer/train.jsonl")
if [ "$rc" = 0 ] && [ -n "$v1" ] && [ "$v1" = "$v2" ]; then
    ok "lm-reformer: 5 steps + --resume to 10 = 10 steps straight (valid $v1 bits/byte)"
else
    fail "lm-reformer resume vs straight: exit $rc, '$v1' vs '$v2'"
fi
"$ATTN" lm eval --model "$TMP/lm-reformer" --eval-rounds 1 --threads 1 >"$TMP/lmr1.out" 2>&1 &&
    "$ATTN" lm eval --model "$TMP/lm-reformer" --eval-rounds 4 --threads 1 >"$TMP/lmr4.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q "^test: [0-9.]* bits/byte over $lmtest bytes; reformer context 16 stride 16, LSH 1 rounds" \
    "$TMP/lmr1.out" && grep -q "LSH 4 rounds" "$TMP/lmr4.out"; then
    ok "lm eval: the Reformer reads all of test.txt, --eval-rounds 1 and 4"
else
    fail "lm eval (reformer): exit $rc: $(head -c 300 "$TMP/lmr1.out" "$TMP/lmr4.out")"
fi
"$ATTN" lm sample --model "$TMP/lm-reformer" --prompt "the " --bytes 20 --temperature 0 --threads 1 >"$TMP/lms.out" 2>"$TMP/lms.err"
rc=$?
if [ "$rc" = 0 ] && [ "$(head -c 4 "$TMP/lms.out")" = "the " ] && [ "$(wc -c <"$TMP/lms.out")" = 25 ]; then
    ok "lm sample (lm-reformer): the prompt and 20 generated bytes"
else
    fail "lm sample (lm-reformer): exit $rc: $(head -c 300 "$TMP/lms.out" "$TMP/lms.err")"
fi
lm_refused 2 "must be even" -- "${LMB[@]}" --arch reformer --buckets 5
lm_refused 2 "is for a Reformer" -- "$ATTN" lm eval --model "$TMP/lm-gpt" --eval-rounds 2
lm_refused 2 "no dense map" -- "$ATTN" lm viz --model "$TMP/lm-reformer" --out "$TMP/lmviz/rf"
lm_refused 2 "must be even" -- "${LMB[@]}" --data dup --dup-len 9
lm_refused 2 "is not offered for --arch txl" -- "${LMB[@]}" --arch txl --pos rope
lm_refused 2 "is not offered for --arch reformer" -- "${LMB[@]}" --arch reformer --pos alibi
# the Reformer with rotary query-keys (--pos rope): no position table; trains, reloads, evaluates with 1 round
"$ATTN" lm train --data dup --dup-len 16 --dup-vocab 6 --dup-eval 8 --arch reformer --pos rope --layers 1 --heads 2 \
    --d-model 16 --chunk 4 --batch 4 --steps 3 --eval-every 0 --threads 1 --quiet --out "$TMP/lm-dup-rope" \
    >"$TMP/lmdr.out" 2>&1 && "$ATTN" lm eval --model "$TMP/lm-dup-rope" --eval-rounds 1 --threads 1 >>"$TMP/lmdr.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q "rotary (query-key) positions" "$TMP/lm-dup-rope/train.jsonl" &&
    grep -q "^dup: held-out accuracy [0-9.]*%" "$TMP/lmdr.out"; then
    ok "lm train --arch reformer --pos rope: rotary query-keys, reloaded and evaluated with 1 round"
else
    fail "lm reformer --pos rope: exit $rc: $(head -c 400 "$TMP/lmdr.out")"
fi
# the table and the rotation on 4 of the 8 dims of a head (--pos learned+rope --rope-dims 4)
"$ATTN" lm train --data dup --dup-len 16 --dup-vocab 6 --dup-eval 8 --arch reformer --pos learned+rope --rope-dims 4 \
    --layers 1 --heads 2 --d-model 16 --chunk 4 --batch 4 --steps 2 --eval-every 0 --threads 1 --quiet \
    --out "$TMP/lm-dup-lrope" >"$TMP/lmdr.out" 2>&1 && "$ATTN" lm eval --model "$TMP/lm-dup-lrope" --threads 1 >>"$TMP/lmdr.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q "learned and rotary (query-key) positions" "$TMP/lm-dup-lrope/train.jsonl" &&
    grep -q "^dup: held-out accuracy [0-9.]*%" "$TMP/lmdr.out"; then
    ok "lm train --arch reformer --pos learned+rope --rope-dims 4: trained, reloaded, evaluated"
else
    fail "lm reformer --pos learned+rope: exit $rc: $(head -c 400 "$TMP/lmdr.out")"
fi
lm_refused 2 "is for the Reformer with rotary" -- "${LMB[@]}" --arch reformer --rope-dims 4
lm_refused 2 "expected even (pairs" -- "${LMB[@]}" --arch reformer --pos rope --rope-dims 3
for a in gpt txl reformer; do
    steps=20
    [ "$a" = reformer ] && steps=300
    "$ATTN" lm train --data dup --dup-len 16 --dup-vocab 6 --dup-eval 32 --arch "$a" --layers 2 --heads 2 \
        --d-model 32 --chunk 4 --batch 16 --steps $steps --lr 3e-3 --eval-every 0 --threads 1 --quiet \
        --out "$TMP/lm-dup-$a" >"$TMP/lmd.out" 2>&1 &&
        "$ATTN" lm eval --model "$TMP/lm-dup-$a" --threads 1 >"$TMP/lmde.out" 2>&1
    rc=$?
    acc=$(sed -n 's/^dup: held-out accuracy \([0-9.]*\)% over 224 symbols.*/\1/p' "$TMP/lmde.out")
    if [ "$rc" = 0 ] && [ -n "$acc" ] && grep -q "held-out duplication accuracy $acc%" "$TMP/lmd.out" &&
        { [ "$a" != reformer ] || awk -v a="$acc" 'BEGIN { exit !(a >= 90) }'; }; then
        ok "lm train --data dup --arch $a: $steps steps, held-out accuracy of the second halves $acc%"
    else
        fail "lm dup ($a): exit $rc, accuracy '$acc': $(head -c 300 "$TMP/lmd.out" "$TMP/lmde.out")"
    fi
done
lm_refused 2 "GPT options" -- "${LMB[@]}" --arch txl --synth dense
lm_refused 2 "needs a random component" -- "${LMB[@]}" --arch gpt --synth dense --synth-fixed
# a synthesizer GPT (docs/synthesizer.md): trains, evaluates, samples without a KV cache
"${LMGPT[@]}" --out "$TMP/lm-syn" --steps 3 --synth dense+frandom+dot >"$TMP/lmsy.out" 2>&1 &&
    "$ATTN" lm eval --model "$TMP/lm-syn" --threads 1 >>"$TMP/lmsy.out" 2>&1 &&
    "$ATTN" lm sample --model "$TMP/lm-syn" --prompt "the " --bytes 20 --temperature 0 --threads 1 >"$TMP/lmss.out" 2>>"$TMP/lmsy.out"
rc=$?
if [ "$rc" = 0 ] && grep -q "synthesizer dense+frandom+dot" "$TMP/lmsy.out" && grep -q "bits/byte" "$TMP/lmsy.out" &&
    [ "$(wc -c <"$TMP/lmss.out")" = 25 ] && grep -q "window recomputed" "$TMP/lmsy.out"; then
    ok "lm train --synth: a synthesizer GPT trains, evaluates and samples (no KV cache)"
else
    fail "lm --synth: exit $rc: $(head -c 400 "$TMP/lmsy.out")"
fi
# the sparse mixers (docs/sinkhorn.md, docs/routing.md): refusals, then a
# routing GPT that trains, resumes with its centroids, evaluates and samples
lm_refused 2 "must be attention, sinkhorn" -- "${LMB[@]}" --arch gpt --mixer sinkhorns
lm_refused 2 "choose one" -- "${LMB[@]}" --arch gpt --synth dense --mixer routing
lm_refused 2 "need --mixer" -- "${LMB[@]}" --arch gpt --mixer-n 3
lm_refused 1 "multiple of its block" -- "${LMB[@]}" --arch gpt --mixer sinkhorn --mixer-block 5
"${LMGPT[@]}" --out "$TMP/lm-sk" --steps 2 --mixer sortcut --mixer-block 4 >"$TMP/lmsk.out" 2>&1 &&
    "${LMGPT[@]}" --out "$TMP/lm-rt" --steps 2 --mixer routing --mixer-n 3 >>"$TMP/lmsk.out" 2>&1 &&
    "$ATTN" lm train --out "$TMP/lm-rt" --steps 4 --resume --threads 1 --eval-every 0 >>"$TMP/lmsk.out" 2>&1 &&
    "$ATTN" lm eval --model "$TMP/lm-rt" --threads 1 >>"$TMP/lmsk.out" 2>&1 &&
    "$ATTN" lm sample --model "$TMP/lm-sk" --prompt "the " --bytes 12 --temperature 0 --threads 1 >"$TMP/lmsks.out" 2>>"$TMP/lmsk.out"
rc=$?
if [ "$rc" = 0 ] && grep -q "sortcut attention (block 4, 2 sorted blocks)" "$TMP/lmsk.out" &&
    grep -q "routing attention (3 clusters" "$TMP/lmsk.out" && grep -q "resuming" "$TMP/lmsk.out" &&
    grep -q "bits/byte" "$TMP/lmsk.out" && [ "$(wc -c <"$TMP/lmsks.out")" = 17 ]; then
    ok "lm train --mixer: SortCut and routing GPTs train, resume (centroids), evaluate and sample"
else
    fail "lm --mixer: exit $rc: $(tail -c 600 "$TMP/lmsk.out")"
fi

# block-sparse patterns in the GPT (docs/sparse.md): images as pixel sequences (tiny IDX files
# made here: 24 training images, the last 2 the validation split, 3 test images)
PXD="$TMP/pixels"
mkdir -p "$PXD"
{ printf '\000\000\010\003\000\000\000\030\000\000\000\034\000\000\000\034'; head -c $((24 * 784)) /dev/urandom; } >"$PXD/train-images-idx3-ubyte"
{ printf '\000\000\010\003\000\000\000\003\000\000\000\034\000\000\000\034'; head -c $((3 * 784)) /dev/urandom; } >"$PXD/t10k-images-idx3-ubyte"
LMPX=("$ATTN" lm train --data "$PXD" --arch gpt --pixels 16 --layers 2 --heads 2 --d-model 16 --batch 2
      --threads 1 --eval-every 0 --log-every 1 --warmup 1)
"${LMPX[@]}" --out "$TMP/lm-px" --steps 2 --pattern local2d:width=28,bh=4,bw=14,mh=4,mw=4 >"$TMP/lmpx.out" 2>&1 &&
    "$ATTN" lm train --out "$TMP/lm-px" --steps 3 --resume --threads 1 >>"$TMP/lmpx.out" 2>&1 &&
    "$ATTN" lm eval --model "$TMP/lm-px" --threads 1 >>"$TMP/lmpx.out" 2>&1 &&
    "$ATTN" lm viz --model "$TMP/lm-px" --png "$TMP/lmpx" --layer 1 --head 1 --threads 1 >>"$TMP/lmpx.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && [ "$(grep -c 'pattern local2d:width=28,bh=4,bw=14,mh=4,mw=4 (25.0% of the causal' "$TMP/lmpx.out")" = 2 ] &&
    grep -q "block raster order" "$TMP/lmpx.out" && grep -q "resuming" "$TMP/lmpx.out" &&
    grep -q "test: [0-9.]* bits/dim over 3 images" "$TMP/lmpx.out" && grep -q '"visible_share":0.25' "$TMP/lm-px/train.jsonl" &&
    [ -s "$TMP/lmpx-attn.png" ] && [ -s "$TMP/lmpx-query.png" ]; then
    ok "lm train --pixels --pattern: trains, resumes with its pattern, reports test bits/dim, draws a head"
else
    fail "lm --pixels --pattern: exit $rc: $(head -c 600 "$TMP/lmpx.out")"
fi
"${LMGPT[@]}" --out "$TMP/lm-sp" --steps 2 --pattern fixed:block=4,summary=1,heads=layers >"$TMP/lmsp.out" 2>&1 &&
    "$ATTN" lm pattern --model "$TMP/lm-sp" --png "$TMP/lmsp.png" >>"$TMP/lmsp.out" 2>&1 &&
    "$ATTN" lm pattern --pattern strided:block=8,heads=alternate --ctx 64 --png "$TMP/lmst.png" >>"$TMP/lmsp.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q "pattern fixed:block=4,summary=1,heads=layers (" "$TMP/lmsp.out" &&
    grep -q "pattern strided:block=8,heads=alternate, 2 layers x 4 heads, T 64: 18.56% of the causal" "$TMP/lmsp.out" &&
    [ -s "$TMP/lmsp.png" ] && [ -s "$TMP/lmst.png" ]; then
    ok "lm train --pattern heads=layers on bytes; lm pattern draws a model's and a given pattern's masks"
else
    fail "lm --pattern: exit $rc: $(head -c 600 "$TMP/lmsp.out")"
fi
lm_refused 2 "sampling is for byte models" -- "$ATTN" lm sample --model "$TMP/lm-px" --bytes 4 --threads 1
lm_refused 2 "unknown kind 'banded'" -- "${LMB[@]}" --arch gpt --pattern banded:block=4
lm_refused 2 "GPT options" -- "${LMB[@]}" --arch txl --pattern sliding:window=4
lm_refused 2 "heads=layers is for strided and fixed" -- "${LMB[@]}" --arch gpt --pattern sliding:window=4,heads=layers
lm_refused 2 "not --ctx 100" -- "${LMB[@]}" --arch gpt --pixels 16 --ctx 100
lm_refused 1 "blocks that tile" -- "${LMB[@]}" --arch gpt --data "$PXD" --pixels 16 --pattern local2d:width=28,bh=5,bw=14,mh=1,mw=1

# attn graph: node classification on a small Debian Packages index (made here)
GD="$TMP/debgraph"
mkdir -p "$GD"
for i in $(seq 1 40); do
    sec=$([ $((i % 2)) = 0 ] && echo libs || echo contrib/utils)
    printf 'Package: pkg%d\nSection: %s\n' "$i" "$sec"
    [ "$i" -gt 1 ] && printf 'Depends: pkg%d (>= 1.0), nothere | pkg1:any\n' $((i - 1))
    printf 'Description: tool number %d for %s\n\n' "$i" "$sec"
done >"$GD/Packages"
"$ATTN" graph train --data "$GD/Packages" --out "$TMP/graph" --steps 3 --hidden 8 --heads 2 --emb-dim 4 \
    --threads 1 --eval-every 0 >"$TMP/graph.out" 2>&1 &&
    "$ATTN" graph eval --model "$TMP/graph" --split valid --threads 1 >>"$TMP/graph.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q "40 packages" "$TMP/graph.out" && grep -q "2 sections" "$TMP/graph.out" &&
    grep -q "^valid: accuracy" "$TMP/graph.out" && grep -q '"event":"end"' "$TMP/graph/train.jsonl"; then
    ok "graph train / eval: a node classifier with graph attention on a Packages index"
else
    fail "graph train/eval: exit $rc: $(head -c 400 "$TMP/graph.out")"
fi
"$ATTN" graph viz --model "$TMP/graph" --package pkg7 --top 2 --html "$TMP/graph.html" >"$TMP/graphv.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q "^pkg7: section utils" "$TMP/graphv.out" && grep -q "^head 1: pkg" "$TMP/graphv.out" &&
    grep -q "<script" "$TMP/graph.html"; then
    ok "graph viz: a package's attention over its neighbours, printed and as an explorer page"
else
    fail "graph viz: exit $rc: $(head -c 300 "$TMP/graphv.out")"
fi
"$ATTN" graph train --data "$GD/Packages" --out "$TMP/graph-bad" --hidden 6 --heads 4 >"$TMP/graphr.out" 2>&1
rc=$?
if [ "$rc" = 2 ] && grep -q "does not divide" "$TMP/graphr.out" && [ ! -e "$TMP/graph-bad" ]; then
    ok "graph train refuses --heads that do not divide --hidden"
else
    fail "graph train --heads 4 --hidden 6: exit $rc: $(head -c 300 "$TMP/graphr.out")"
fi
"$ATTN" graph train --data "$TMP/nowhere/Packages" --out "$TMP/graph-bad" >"$TMP/graphr.out" 2>&1
rc=$?
if [ "$rc" = 1 ] && grep -q "cannot read the package index" "$TMP/graphr.out"; then
    ok "graph train: a missing index is a clear error"
else
    fail "graph train, missing index: exit $rc: $(head -c 300 "$TMP/graphr.out")"
fi

# Show, Attend and Tell (needs Fashion-MNIST; a random frozen encoder).
FMNIST="${ATTN_DATA_DIR:-data/fashion-mnist}"
if [ -f "$FMNIST/train-images-idx3-ubyte" ]; then
    CAPTION=("$ATTN" caption train --data "$FMNIST" --encoder random --train-scenes 64 --valid-scenes 16
             --embed 8 --hidden 8 --attn-size 8 --batch 4 --threads 1 --eval-every 0 --log-every 1)
    checks caption --hidden 16 -- "${CAPTION[@]}"
    CAP="$TMP/cap-hard"
    if "${CAPTION[@]}" --attention hard --out "$CAP" --steps 3 --quiet >"$TMP/cap.out" 2>&1 &&
        "$ATTN" caption eval --model "$CAP" --test-scenes 12 --pictures 1 --pictures-dir "$TMP" --json "$TMP/cap.json" \
            --threads 1 >"$TMP/cap.out" 2>&1 &&
        grep -q "hard attention, 12 test scenes: BLEU-4 .*attention accuracy" "$TMP/cap.out" &&
        grep -q '"bleu4"' "$TMP/cap.json" && head -c 8 "$TMP/attention-test0.png" | grep -q PNG; then
        ok "caption: hard attention trains; eval prints BLEU-4 and attention accuracy, writes JSON and a PNG"
    else
        fail "caption eval: $(head -c 400 "$TMP/cap.out")"
    fi
    # argmax decoding of the hard model, on its validation scenes; an unknown rule is refused
    if "$ATTN" caption eval --model "$CAP" --split valid --decode argmax --pictures 0 --json "$TMP/cap-am.json" \
            --threads 1 >"$TMP/cap-am.out" 2>&1 &&
        grep -q "hard attention, decoded with argmax, 16 valid scenes: BLEU-4" "$TMP/cap-am.out" &&
        grep -q '"split": "valid", "decode": "argmax"' "$TMP/cap-am.json"; then
        ok "caption eval --split valid --decode argmax"
    else
        fail "caption eval --decode argmax: $(head -c 400 "$TMP/cap-am.out")"
    fi
    "$ATTN" caption eval --model "$CAP" --decode sample --threads 1 >"$TMP/cap-am.out" 2>&1
    rc=$?
    [ "$rc" = 2 ] && grep -q "the rules are expected and argmax" "$TMP/cap-am.out" &&
        ok "caption eval --decode sample refused (exit 2)" ||
        fail "caption eval --decode sample: exit $rc: $(head -c 300 "$TMP/cap-am.out")"
    # hard attention with K draws per caption and reward-to-go, warm-started from the hard run
    if "${CAPTION[@]}" --attention hard --samples 3 --reward-to-go 1 --init "$CAP" --out "$TMP/cap-k3" --steps 2 \
            --quiet >"$TMP/cap-k3.out" 2>&1 &&
        grep -q "initialised from $CAP/model.safetensors (hard attention)" "$TMP/cap-k3.out" &&
        grep -q '"event":"reinforce","step":1,"reward":-' "$TMP/cap-k3/train.jsonl"; then
        ok "caption: hard attention --samples 3 --reward-to-go 1 --init trains and logs reward and baseline"
    else
        fail "caption --samples: $(tail -c 400 "$TMP/cap-k3.out")"
    fi
    # a mix schedule: from 1 (every caption expected) at the first step to 0 at the last, logged per step;
    # refused for soft attention and outside [0, 1]
    if "${CAPTION[@]}" --attention hard --mix-from 1 --mix 0 --out "$TMP/cap-mf" --steps 3 --quiet \
            >"$TMP/cap-mf.out" 2>&1 &&
        grep -q '"event":"reinforce","step":0,.*"mix":1[,}]' "$TMP/cap-mf/train.jsonl" &&
        grep -q '"event":"reinforce","step":1,.*"mix":0.5[,}]' "$TMP/cap-mf/train.jsonl" &&
        grep -q '"event":"reinforce","step":2,.*"mix":0[,}]' "$TMP/cap-mf/train.jsonl"; then
        ok "caption: --mix-from 1 --mix 0 anneals the mix linearly over the steps (logged)"
    else
        fail "caption --mix-from: $(tail -c 400 "$TMP/cap-mf.out")"
    fi
    "${CAPTION[@]}" --attention soft --mix-from 1 --out "$TMP/cap-mfs" --steps 1 >"$TMP/cap-mf.out" 2>&1
    rc=$?
    [ "$rc" = 2 ] && grep -q "mix-from is a schedule of hard attention" "$TMP/cap-mf.out" &&
        ok "caption: --mix-from with soft attention refused (exit 2)" ||
        fail "caption --mix-from with soft: exit $rc: $(head -c 300 "$TMP/cap-mf.out")"
    "${CAPTION[@]}" --attention hard --mix-from 1.5 --out "$TMP/cap-mfs" --steps 1 >"$TMP/cap-mf.out" 2>&1
    rc=$?
    [ "$rc" = 2 ] && grep -q "mix-from" "$TMP/cap-mf.out" &&
        ok "caption: --mix-from 1.5 refused (exit 2)" ||
        fail "caption --mix-from 1.5: exit $rc: $(head -c 300 "$TMP/cap-mf.out")"
    # describe: a user's 56x56 grey PNG (written here), and one of another size
    python3 - "$TMP/scene.png" 56 56 "$TMP/wide.png" 30 20 <<'PY'
import struct, sys, zlib
def png(path, w, h):
    raw = b"".join(b"\x00" + bytes((x * 7 + y * 3) % 256 if (x < 28) == (y < 28) else 0 for x in range(w)) for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
a = sys.argv[1:]
for i in range(0, len(a), 3):
    png(a[i], int(a[i + 1]), int(a[i + 2]))
PY
    if "$ATTN" caption describe --model "$CAP" "$TMP/scene.png" --picture "$TMP/desc.png" --threads 1 \
            >"$TMP/cap.out" 2>&1 && [ "$(wc -l <"$TMP/cap.out")" -ge 1 ] && head -c 8 "$TMP/desc.png" | grep -q PNG; then
        ok "caption describe: captions a user's 56x56 PNG and draws its attention"
    else
        fail "caption describe: $(head -c 400 "$TMP/cap.out")"
    fi
    if "$ATTN" caption describe --model "$CAP" "$TMP/scene.png" --html "$TMP/desc.html" --threads 1 \
            >"$TMP/cap.out" 2>"$TMP/cap.err" && grep -q '"kind":"alignment"' "$TMP/desc.html" &&
        grep -q '"colGrid":' "$TMP/desc.html" && [ "$(wc -l <"$TMP/cap.out")" = 1 ]; then
        ok "caption describe --html: each word's attention over the image regions as a page"
    else
        fail "caption describe --html: $(head -c 400 "$TMP/cap.err")"
    fi
    "$ATTN" caption describe --model "$CAP" "$TMP/wide.png" >"$TMP/cap.out" 2>&1
    rc=$?
    if [ "$rc" = 1 ] && grep -q "is 30x20 pixels; the model reads 56x56" "$TMP/cap.out"; then
        ok "caption describe: an image of another size is refused (exit 1) with both sizes named"
    else
        fail "caption describe of a 30x20 image: exit $rc: $(head -c 400 "$TMP/cap.out")"
    fi
    "$ATTN" caption describe --model "$CAP" "$TMP/missing.png" >"$TMP/cap.out" 2>&1
    rc=$?
    if [ "$rc" = 1 ] && grep -q "cannot read" "$TMP/cap.out"; then
        ok "caption describe: a missing image is a clear error (exit 1)"
    else
        fail "caption describe of a missing file: exit $rc: $(head -c 400 "$TMP/cap.out")"
    fi
else
    echo "skip caption checks: no Fashion-MNIST in $FMNIST"
fi

checks gan --g-ch 16 -- "${GAN[@]}"

# The GAN's own step and checkpoints: both nets written, the second's step
# equal; sample draws the grid; its constant learning rates refuse --lr; fid
# without a classifier is a usage error, with a missing one a clear failure.
if [ -f "$TMP/gan/discriminator.safetensors" ] && grep -q '"g_loss"' "$TMP/gan/train.jsonl" &&
    grep -q '"event":"eval".*"g_gamma"' "$TMP/gan/train.jsonl" && [ -s "$TMP/gan/samples.png" ]; then
    ok "gan: both checkpoints, D and G losses in the log, samples.png written"
else
    fail "gan: the run's files: $(ls "$TMP/gan" 2>&1)"
fi
"$ATTN" gan sample --model "$TMP/gan" --out "$TMP/grid.png" --rows 3 --threads 1 >"$TMP/gs.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && [ -s "$TMP/grid.png" ] && grep -q "9 samples written" "$TMP/gs.out"; then
    ok "gan sample: 3 x 3 samples written"
else
    fail "gan sample: exit $rc: $(head -c 300 "$TMP/gs.out")"
fi
"$ATTN" gan sample --model "$TMP/gan" --out "$TMP/grid.png" --rows 1 --html "$TMP/gan.html" --threads 1 >"$TMP/gs.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q '"name":"generator attention","kind":"cross","layers":1,"heads":1,"rows":196,"cols":196' \
    "$TMP/gan.html" && grep -q '"colGrid":14' "$TMP/gan.html"; then
    ok "gan sample --html: the generator's 196 x 196 attention map as a page"
else
    fail "gan sample --html: exit $rc: $(head -c 300 "$TMP/gs.out")"
fi
"${GAN[@]}" --out "$TMP/gan-lr" --steps 2 --lr 0.1 >"$TMP/gl.out" 2>&1
rc=$?
if [ "$rc" = 2 ] && grep -q -- "--lr-d" "$TMP/gl.out" && [ ! -e "$TMP/gan-lr/model.safetensors" ]; then
    ok "gan train: --lr is refused (exit 2) with the two rates named"
else
    fail "gan train --lr: exit $rc: $(head -c 300 "$TMP/gl.out")"
fi
"$ATTN" gan fid --model "$TMP/gan" >"$TMP/gf.out" 2>&1
rc1=$?
"$ATTN" gan fid --model "$TMP/gan" --classifier "$TMP/no-such-dir" --n 4 --data "$IDX" >"$TMP/gf2.out" 2>&1
rc2=$?
if [ "$rc1" = 2 ] && grep -q -- "--classifier" "$TMP/gf.out" && [ "$rc2" = 1 ] &&
    grep -q "cannot load the classifier" "$TMP/gf2.out"; then
    ok "gan fid: no classifier is a usage error (2), a missing one a failure (1) that says so"
else
    fail "gan fid errors: exit $rc1 / $rc2: $(head -c 300 "$TMP/gf.out" "$TMP/gf2.out")"
fi

# A checkpoint is untrusted input: a run setting out of range in its metadata
# (a batch of 2^59 + 1, which once made the batch's size wrap and the
# batcher write past a 128-byte buffer) is refused with the key named,
# before anything is allocated from it.
set_meta() { # FILE KEY VALUE: rewrites one metadata value of a safetensors file
    python3 - "$@" <<'PY'
import json, struct, sys
path, key, value = sys.argv[1:4]
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
head["__metadata__"][key] = value
text = json.dumps(head, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)
open(path, "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
PY
}
# Leftovers of killed runs: records logged after the last checkpoint are cut
# from train.jsonl on resume (each step logged once), and temporary files
# of killed saves ("<name>.tmp.<pid>" of a dead process) are removed; other
# files stay.
dir="$TMP/gpt"
last=$(sed -n 's/.*"event":"end","step":\([0-9]*\).*/\1/p' "$dir/train.jsonl" | tail -1)
printf '{"event":"train","step":%d,"loss":99.5}\n' $((last + 1)) >>"$dir/train.jsonl"
sleep 0 & deadpid=$!
wait "$deadpid"
: >"$dir/model.safetensors.tmp.$deadpid"
: >"$dir/vocab.tmp.$deadpid"
: >"$dir/notes.tmp.keep"
: >"$dir/model.safetensors.tmp.$$"
"$ATTN" gpt train --out "$dir" --resume --steps $((last + 2)) --log-every 1 --quiet >"$TMP/left.out" 2>&1
rc=$?
n=$(grep -c "\"event\":\"train\",\"step\":$((last + 1))," "$dir/train.jsonl")
if [ "$rc" = 0 ] && ! grep -q '"loss":99.5' "$dir/train.jsonl" && [ "$n" = 1 ]; then
    ok "gpt: resume cuts train.jsonl back to the checkpoint (step $((last + 1)) logged once)"
else
    fail "gpt: log after resume: exit $rc, step $((last + 1)) logged $n times: $(head -c 300 "$TMP/left.out")"
fi
if [ ! -e "$dir/model.safetensors.tmp.$deadpid" ] && [ ! -e "$dir/vocab.tmp.$deadpid" ] &&
    [ -e "$dir/notes.tmp.keep" ] && [ -e "$dir/model.safetensors.tmp.$$" ]; then
    ok "gpt: a run removes the temporary files of killed saves, and only those"
else
    fail "gpt: orphan temporary files: $(ls "$dir" | tr '\n' ' ')"
fi
rm -f "$dir/notes.tmp.keep" "$dir/model.safetensors.tmp.$$"

# A vocabulary that is not the model's (smaller: its unknown tokens would be
# trained on silently) is refused by resume and by sample.
cp "$TMP/gpt/vocab" "$TMP/vocab.saved"
printf 'attn-vocab 1 char 2 0\n61\n62\n' >"$TMP/gpt/vocab"
"$ATTN" gpt train --out "$TMP/gpt" --resume --steps 20 --quiet >"$TMP/voc.out" 2>&1
rc=$?
if [ "$rc" = 1 ] && grep -q "not this run's vocabulary" "$TMP/voc.out"; then
    ok "gpt: --resume with a vocabulary of another size is refused (exit 1)"
else
    fail "gpt: --resume with a wrong vocabulary: exit $rc: $(head -c 400 "$TMP/voc.out")"
fi
"$ATTN" gpt sample --model "$TMP/gpt" --prompt "the" --tokens 4 >"$TMP/voc.out" 2>&1
rc=$?
if [ "$rc" = 1 ] && grep -q "not this model's vocabulary" "$TMP/voc.out"; then
    ok "gpt: sample with a vocabulary of another size is refused (exit 1)"
else
    fail "gpt: sample with a wrong vocabulary: exit $rc: $(head -c 400 "$TMP/voc.out")"
fi
cp "$TMP/vocab.saved" "$TMP/gpt/vocab"

# --force that fails before its first checkpoint (a window longer than the
# corpus) must not leave the old model beside the new run's vocabulary
cp -a "$TMP/gpt" "$TMP/gpt-force"
"${GPT[@]}" --out "$TMP/gpt-force" --force --tokenizer bpe --bpe-merges 20 --ctx 100000 --steps 2 \
    --quiet >"$TMP/force.out" 2>&1
rc=$?
"$ATTN" gpt sample --model "$TMP/gpt-force" --tokens 2 >"$TMP/force2.out" 2>&1
rc2=$?
if [ "$rc" != 0 ] && [ ! -e "$TMP/gpt-force/model.safetensors" ] && [ "$rc2" = 1 ] &&
    grep -q "model.safetensors" "$TMP/force2.out"; then
    ok "gpt: a --force run that fails before its first checkpoint leaves no stale model (sample says so)"
else
    fail "gpt: failed --force: exit $rc, sample exit $rc2: $(head -c 300 "$TMP/force.out") $(head -c 300 "$TMP/force2.out")"
fi

for fam in gpt bert-pretrain; do
    dir="$TMP/$fam"
    cmd=("$ATTN" gpt train)
    [ "$fam" = bert-pretrain ] && cmd=("$ATTN" bert pretrain)
    for kv in "run.batch=576460752303423489" "run.steps=-3" "run.lr=nan" "step=1e99"; do
        key="${kv%%=*}"
        cp "$dir/model.safetensors" "$TMP/saved.safetensors"
        if ! command -v python3 >/dev/null || ! set_meta "$dir/model.safetensors" "$key" "${kv#*=}"; then
            fail "$fam: cannot rewrite the checkpoint's metadata (python3 missing?)"
            continue
        fi
        "${cmd[@]}" --out "$dir" --resume --steps 20 --quiet >"$TMP/meta.out" 2>&1
        rc=$?
        if [ "$rc" = 1 ] && grep -q "metadata '$key' = " "$TMP/meta.out"; then
            ok "$fam: --resume of a checkpoint with $kv is refused (exit 1), the key named"
        else
            fail "$fam: --resume with $kv: exit $rc: $(head -c 400 "$TMP/meta.out")"
        fi
        cp "$TMP/saved.safetensors" "$dir/model.safetensors"
    done
done

# ---- inputs a user will give (issue 10, part 5), on the models trained above ----------
S2S="$TMP/seq2seq"
T2T="$TMP/transformer"
long=$(printf 'the 3rd of March, 1997 %.0s' $(seq 1 300))
printf '12/25/99\n%s\nthe 4th of July, 2001 \xe2\x98\x83\n' "$long" |
    "$ATTN" seq2seq translate --model "$S2S" --arena-mb 1 --threads 1 >"$TMP/tr.out" 2>"$TMP/tr.err"
rc=$?
if [ "$rc" = 1 ] && [ "$(wc -l <"$TMP/tr.out")" = 3 ] && [ -n "$(sed -n 1p "$TMP/tr.out")" ] &&
    [ -z "$(sed -n 2p "$TMP/tr.out")" ] && [ -n "$(sed -n 3p "$TMP/tr.out")" ] &&
    grep -q "input 2 .*arena full" "$TMP/tr.err" && grep -q "raise --arena-mb (now 1)" "$TMP/tr.err" &&
    grep -q "1 of 3 inputs not translated" "$TMP/tr.err"; then
    ok "translate: a line that does not fit --arena-mb is an error for that line; the others are translated"
else
    fail "translate with a line too long: exit $rc: $(head -c 400 "$TMP/tr.out" "$TMP/tr.err")"
fi
if grep -q "input 3: a character outside the source vocabulary, read as <unk>: '$(printf '\xe2\x98\x83')'" \
    "$TMP/tr.err"; then
    ok "translate: a character outside the vocabulary is named in a warning"
else
    fail "translate: no warning naming the unknown character: $(head -c 400 "$TMP/tr.err")"
fi
if "$ATTN" seq2seq translate --model "$S2S" --svg "$TMP/new/maps/m.svg" "12/25/99" >/dev/null 2>&1 &&
    grep -q "<svg" "$TMP/new/maps/m.svg"; then
    ok "translate --svg creates the missing folders of its file"
else
    fail "translate --svg into a missing folder"
fi
if "$ATTN" viz --model "$T2T" --out "$TMP/viz/a/b" --threads 1 "12/25/99" >/dev/null 2>&1 &&
    grep -q "<svg" "$TMP/viz/a/b-cross.svg"; then
    ok "viz --out creates the missing folders of its prefix"
else
    fail "viz --out into a missing folder"
fi

# --html: the attention explorer page (docs/explorer.md; its behaviour in a
# browser is tests/explorer_test.sh): self-contained, every map of the model,
# standard output unchanged where it carries results.
"$ATTN" viz --model "$T2T" --html "$TMP/ex/a/t2t.html" --weights "$TMP/ex/t2t.tsv" --threads 1 "12/25/99" \
    >"$TMP/ex.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q '"name":"encoder self-attention"' "$TMP/ex/a/t2t.html" &&
    grep -q '"name":"cross-attention"' "$TMP/ex/a/t2t.html" && grep -q '"maskName":"causal"' "$TMP/ex/a/t2t.html" &&
    ! grep -q '<script[^>]*src=' "$TMP/ex/a/t2t.html" && [ "$(head -1 "$TMP/ex/t2t.tsv")" = "$(printf 'map\tlayer\thead\trow\tcol\tweight')" ] &&
    ! ls "$TMP"/ex/a/*.svg >/dev/null 2>&1; then
    ok "viz --html: one self-contained page with the encoder, decoder (causal mask) and cross maps; --weights as text"
else
    fail "viz --html: exit $rc: $(head -c 300 "$TMP/ex.out")"
fi
"$ATTN" seq2seq translate --model "$S2S" --html "$TMP/ex/tr.html" --threads 1 "12/25/99" "1 march 2001" \
    >"$TMP/ex.out" 2>"$TMP/ex.err"
rc=$?
if [ "$rc" = 0 ] && [ "$(wc -l <"$TMP/ex.out")" = 2 ] && grep -q '"kind":"alignment"' "$TMP/ex/tr-1.html" &&
    [ -s "$TMP/ex/tr-2.html" ] && grep -q "explorer page written to $TMP/ex/tr-2.html" "$TMP/ex.err"; then
    ok "translate --html: one alignment page per input (FILE-k.html); standard output keeps only the translations"
else
    fail "translate --html: exit $rc: $(head -c 300 "$TMP/ex.out" "$TMP/ex.err")"
fi
# location-sensitive and dv3 attention (docs/location_attention.md): tiny runs,
# their options in the checkpoint, translate and eval through them, bad
# options refused.
"${SEQ2SEQ[@]}" --attention location-sensitive --loc-filters 4 --loc-kernel 5 --steps 2 --quiet \
    --out "$TMP/s2s-ls" >"$TMP/ls.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -aq '"loc_filters":"4"' "$TMP/s2s-ls/model.safetensors" &&
    grep -aq '"loc_kernel":"5"' "$TMP/s2s-ls/model.safetensors" &&
    "$ATTN" seq2seq translate --model "$TMP/s2s-ls" --svg "$TMP/ls/m.svg" --threads 1 "12/25/99" \
        >/dev/null 2>&1 && grep -q "<svg" "$TMP/ls/m.svg" &&
    "$ATTN" seq2seq eval --model "$TMP/s2s-ls" --limit 8 --json --threads 1 2>/dev/null |
    grep -q '"attention":"location-sensitive"'; then
    ok "seq2seq --attention location-sensitive: trains, keeps --loc-filters/--loc-kernel, translates (--svg) and evaluates"
else
    fail "seq2seq location-sensitive: exit $rc: $(head -c 300 "$TMP/ls.out")"
fi
"${SEQ2SEQ[@]}" --attention dv3 --dv3-window 2 --steps 2 --quiet --out "$TMP/s2s-dv3" >"$TMP/dv3.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -aq '"dv3_window":"2"' "$TMP/s2s-dv3/model.safetensors" &&
    grep -aoq '"dv3_key_rate":"0\.[0-9]*"' "$TMP/s2s-dv3/model.safetensors" &&
    [ "$("$ATTN" seq2seq translate --model "$TMP/s2s-dv3" --threads 1 "12/25/99" "1 march 2001" | wc -l)" = 2 ]; then
    ok "seq2seq --attention dv3: trains with the key rate from the data (target/source < 1 on dates), keeps --dv3-window, translates"
else
    fail "seq2seq dv3: exit $rc: $(head -c 300 "$TMP/dv3.out")"
fi
"${SEQ2SEQ[@]}" --attention location-sensitive --loc-kernel 4 --steps 1 --out "$TMP/s2s-bad" >"$TMP/bad.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q -- "--loc-kernel 4: expected an odd width" "$TMP/bad.out" &&
    ok "seq2seq --loc-kernel 4 refused (exit 2, odd widths only)" ||
    fail "seq2seq --loc-kernel 4: exit $rc: $(head -c 300 "$TMP/bad.out")"
"${SEQ2SEQ[@]}" --attention location --dv3-key-rate nan --steps 1 --out "$TMP/s2s-bad2" >"$TMP/bad.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q -- "--dv3-key-rate" "$TMP/bad.out" && ok "seq2seq --dv3-key-rate nan refused (exit 2)" ||
    fail "seq2seq --dv3-key-rate nan: exit $rc: $(head -c 300 "$TMP/bad.out")"
"$ATTN" gpt sample --model "$TMP/gpt" --prompt "the " --tokens 5 --html "$TMP/ex/s.html" --threads 1 \
    >"$TMP/ex.out" 2>"$TMP/ex.err"
rc=$?
if [ "$rc" = 0 ] && grep -q '"name":"decoder self-attention"' "$TMP/ex/s.html" && ! grep -q "s.html" "$TMP/ex.out"; then
    ok "gpt sample --html: the prompt's and the sample's self-attention as a page"
else
    fail "gpt sample --html: exit $rc: $(head -c 300 "$TMP/ex.err")"
fi
"$ATTN" viz --model "$T2T" --weights "$TMP/ex/w.tsv" "12/25/99" >"$TMP/ex.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q -- "--weights goes with --html" "$TMP/ex.out" && ok "viz --weights without --html refused (exit 2)" ||
    fail "viz --weights without --html: exit $rc: $(head -c 300 "$TMP/ex.out")"
: >"$TMP/ex/file"
"$ATTN" viz --model "$T2T" --html "$TMP/ex/file/p.html" "12/25/99" >"$TMP/ex.out" 2>&1
rc=$?
[ "$rc" = 1 ] && grep -q "cannot create the folder of $TMP/ex/file/p.html" "$TMP/ex.out" &&
    ok "viz --html under a file: a clear error (exit 1)" ||
    fail "viz --html under a file: exit $rc: $(head -c 300 "$TMP/ex.out")"

# gpt sample streams: a long generation, interrupted once text has appeared,
# has printed what it drew and exits 130.
"$ATTN" gpt sample --model "$TMP/gpt" --prompt "the " --tokens 10000000 --threads 1 >"$TMP/s.out" 2>"$TMP/s.err" &
pid=$!
for _ in $(seq 1 300); do
    [ "$(wc -c <"$TMP/s.out")" -gt 20 ] && break
    sleep 0.1
done
kill -INT "$pid"
wait "$pid"
rc=$?
if [ "$rc" = 130 ] && [ "$(wc -c <"$TMP/s.out")" -gt 20 ] && grep -q "^the " "$TMP/s.out" &&
    grep -q "interrupted by SIGINT after [0-9]* of 10000000 tokens" "$TMP/s.err"; then
    ok "gpt sample streams tokens as drawn; SIGINT stops it with the text so far printed (exit 130)"
else
    fail "gpt sample streaming / SIGINT: exit $rc: $(head -c 200 "$TMP/s.out") $(head -c 300 "$TMP/s.err")"
fi

# --threads above the CPUs online is refused with the count (1,000 threads
# hung before), and the CLI runs with OpenMP's passive wait policy unless
# the user set one (cli/attn.c; docs/design.md, "Threads").
ncpu=$(getconf _NPROCESSORS_ONLN)
"$ATTN" gpt train --data "$DATA" --out "$TMP/thr" --threads 1000 >"$TMP/thr.out" 2>&1
rc=$?
if [ "$rc" = 2 ] && grep -q "expected an integer in \\[0, $ncpu\\]" "$TMP/thr.out" && [ ! -e "$TMP/thr" ]; then
    ok "--threads 1000 is refused naming the range [0, $ncpu] (exit 2, nothing written)"
else
    fail "--threads 1000: exit $rc: $(head -c 300 "$TMP/thr.out")"
fi
w_default=$(env -u OMP_WAIT_POLICY -u ATTN_SET_OMP_WAIT_POLICY "$ATTN" info | grep '^wait:')
w_user=$(env -u ATTN_SET_OMP_WAIT_POLICY OMP_WAIT_POLICY=active "$ATTN" info | grep '^wait:')
if [ "$(uname -s)" != Linux ] || ! "$ATTN" info | grep -q '^openmp: *yes'; then
    ok "wait policy: not a Linux OpenMP build, nothing to check"
elif echo "$w_default" | grep -q 'passive (set by attn' && echo "$w_user" | grep -q 'active (set by the user'; then
    ok "the CLI runs with OMP_WAIT_POLICY=passive when unset, and keeps the user's value"
else
    fail "wait policy: default '$w_default', user 'active' gave '$w_user'"
fi
# attn vision: a tiny Fashion-MNIST look-alike (random pixels, labels 0..9 in
# turn; 5,040 training images, as the last 5,000 validate) and a tiny CNN.
FM="$TMP/fmnist"
mkdir -p "$FM"
printf '\000\001\002\003\004\005\006\007\010\011' >"$TMP/ten"
idx_images() { # FILE N
    printf '\000\000\010\003' >"$1"
    printf "\\$(printf %03o $(($2 >> 24 & 255)))\\$(printf %03o $(($2 >> 16 & 255)))\\$(printf %03o $(($2 >> 8 & 255)))\\$(printf %03o $(($2 & 255)))" >>"$1"
    printf '\000\000\000\034\000\000\000\034' >>"$1"
    head -c $(($2 * 784)) /dev/urandom >>"$1"
}
idx_labels() { # FILE N (N a multiple of 10)
    printf '\000\000\010\001' >"$1"
    printf "\\$(printf %03o $(($2 >> 24 & 255)))\\$(printf %03o $(($2 >> 16 & 255)))\\$(printf %03o $(($2 >> 8 & 255)))\\$(printf %03o $(($2 & 255)))" >>"$1"
    for _ in $(seq 1 $(($2 / 10))); do cat "$TMP/ten"; done >>"$1"
}
idx_images "$FM/train-images-idx3-ubyte" 5040
idx_labels "$FM/train-labels-idx1-ubyte" 5040
idx_images "$FM/t10k-images-idx3-ubyte" 60
idx_labels "$FM/t10k-labels-idx1-ubyte" 60
VIS=("$ATTN" vision train --data "$FM" --width 8 --stages 2 --batch 8 --threads 1 --eval-every 2
     --eval-n 40 --log-every 1 --quiet)
if "${VIS[@]}" --out "$TMP/vis" --steps 4 --attention sagan >"$TMP/vis.out" 2>&1 &&
    grep -q "test accuracy [0-9.]* (loss [0-9.]*, 60 images); gamma" "$TMP/vis.out" &&
    grep -q '"event":"gamma","step":3' "$TMP/vis/train.jsonl" &&
    grep -q '"test_accuracy"' "$TMP/vis/train.jsonl"; then
    ok "vision train --attention sagan: test accuracy at the end, gamma logged in train.jsonl"
else
    fail "vision train: $(tail -c 400 "$TMP/vis.out")"
fi
"${VIS[@]}" --out "$TMP/vis" --steps 4 >"$TMP/vis2.out" 2>&1
rc=$?
[ "$rc" = 1 ] && grep -q -- "--force" "$TMP/vis2.out" && ok "vision train into a run refused without --force" ||
    fail "vision train over a run: exit $rc: $(head -c 300 "$TMP/vis2.out")"
"$ATTN" vision train --out "$TMP/vis" --resume --steps 6 --quiet --threads 1 >"$TMP/vis3.out" 2>&1
rc=$?
[ "$rc" = 0 ] && grep -q "resume: --steps 6 (was 4)" "$TMP/vis3.out" && grep -q "resuming .* at step 4" "$TMP/vis3.out" &&
    ok "vision train --resume --steps 6 continues at step 4" ||
    fail "vision resume: exit $rc: $(tail -c 300 "$TMP/vis3.out")"
"$ATTN" vision train --out "$TMP/vis" --resume --width 16 >"$TMP/vis4.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q -- "--width" "$TMP/vis4.out" && ok "vision --resume with --width refused (exit 2)" ||
    fail "vision --resume --width: exit $rc: $(head -c 300 "$TMP/vis4.out")"
"$ATTN" vision eval --model "$TMP/vis" --data "$FM" --threads 1 >"$TMP/vis5.out" 2>&1
rc=$?
[ "$rc" = 0 ] && grep -q "^test accuracy [0-9.]*, loss [0-9.]* (60 images" "$TMP/vis5.out" &&
    ok "vision eval prints the test accuracy" || fail "vision eval: exit $rc: $(head -c 300 "$TMP/vis5.out")"
"$ATTN" vision eval --model "$TMP/vis" --data "$FM" --tta flip --threads 1 >"$TMP/vis5.out" 2>&1
rc=$?
[ "$rc" = 0 ] && grep -q "^test accuracy [0-9.]*, loss [0-9.]* (60 images, .*flip TTA" "$TMP/vis5.out" &&
    ok "vision eval --tta flip prints the test accuracy with flips" ||
    fail "vision eval --tta flip: exit $rc: $(head -c 300 "$TMP/vis5.out")"
"$ATTN" vision eval --model "$TMP/vis" --data "$FM" --tta rotate --threads 1 >"$TMP/vis5.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q "expected none or flip" "$TMP/vis5.out" && ok "vision eval --tta rotate refused (exit 2)" ||
    fail "vision eval --tta rotate: exit $rc: $(head -c 300 "$TMP/vis5.out")"
"$ATTN" vision maps --model "$TMP/vis" --data "$FM" --out "$TMP/vismaps" --images 2 --threads 1 >"$TMP/vis6.out" 2>&1
rc=$?
[ "$rc" = 0 ] && [ "$(head -c 4 "$TMP/vismaps/maps.png" | od -An -tx1 | tr -d ' ')" = 89504e47 ] &&
    grep -q "^row 1: test image 1" "$TMP/vismaps/maps.txt" && ok "vision maps writes maps.png and maps.txt" ||
    fail "vision maps: exit $rc: $(head -c 300 "$TMP/vis6.out")"
"$ATTN" vision maps --model "$TMP/vis" --data "$FM" --out "$TMP/vismaps" --images 1 --html "$TMP/vismaps/p.html" \
    --threads 1 >"$TMP/vis6.out" 2>&1
rc=$?
[ "$rc" = 0 ] && grep -q '"name":"feature-map attention"' "$TMP/vismaps/p.html" && grep -q '"colGrid":' "$TMP/vismaps/p.html" &&
    ok "vision maps --html: the SAGAN weights of every query position as a page" ||
    fail "vision maps --html: exit $rc: $(head -c 300 "$TMP/vis6.out")"
"${VIS[@]}" --out "$TMP/visplain" --steps 2 >/dev/null 2>&1
"$ATTN" vision maps --model "$TMP/visplain" --data "$FM" --out "$TMP/vismaps2" >"$TMP/vis7.out" 2>&1
rc=$?
[ "$rc" = 1 ] && grep -q "has no attention block" "$TMP/vis7.out" && ok "vision maps of a model without attention: a clear error" ||
    fail "vision maps without attention: exit $rc: $(head -c 300 "$TMP/vis7.out")"
"${VIS[@]}" --out "$TMP/visbad" --attention bogus >"$TMP/vis8.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q "expected none, sagan, sagan-code, simple, channel" "$TMP/vis8.out" && ok "vision --attention bogus refused (exit 2)" ||
    fail "vision --attention bogus: exit $rc"
# the modules of docs/vision_modules.md: train, evaluate and draw (GC and
# PSA), and a channel-only module refused by maps
for vm in gc psa; do
    if "${VIS[@]}" --out "$TMP/vis-$vm" --steps 2 --attention "$vm" >"$TMP/vis-$vm.out" 2>&1 &&
        grep -q "test accuracy [0-9.]* (loss [0-9.]*, 60 images)" "$TMP/vis-$vm.out" &&
        "$ATTN" vision maps --model "$TMP/vis-$vm" --data "$FM" --out "$TMP/vismaps-$vm" --images 2 --threads 1 >"$TMP/vis-$vm.maps" 2>&1 &&
        [ "$(head -c 4 "$TMP/vismaps-$vm/maps.png" | od -An -tx1 | tr -d ' ')" = 89504e47 ]; then
        ok "vision train --attention $vm and its maps"
    else
        fail "vision --attention $vm: $(tail -c 300 "$TMP/vis-$vm.out") $(tail -c 200 "$TMP/vis-$vm.maps" 2>/dev/null)"
    fi
done
"${VIS[@]}" --out "$TMP/vis-channel" --steps 2 --attention channel >/dev/null 2>&1
"$ATTN" vision maps --model "$TMP/vis-channel" --data "$FM" --out "$TMP/vismaps-ch" >"$TMP/vis-ch.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q "weighs channels, it has no spatial map" "$TMP/vis-ch.out" &&
    ok "vision maps of a channel attention module: a clear error (exit 2)" ||
    fail "vision maps --attention channel: exit $rc: $(head -c 300 "$TMP/vis-ch.out")"
# --widths per stage, flips only, label smoothing; --init: a warm restart from that model
if "${VIS[@]}" --out "$TMP/visw" --steps 2 --widths 8,12 --augment 2 --label-smoothing 0.1 >"$TMP/visw.out" 2>&1 &&
    grep -q "widths 8 12 0 0" "$TMP/visw.out" && grep -q "augmentation left-right flips" "$TMP/visw.out" &&
    "$ATTN" vision train --data "$FM" --batch 8 --threads 1 --eval-every 2 --eval-n 40 --quiet --out "$TMP/visw2" \
        --steps 2 --init "$TMP/visw" >"$TMP/visw2.out" 2>&1 &&
    grep -q "initialised from $TMP/visw/model.safetensors" "$TMP/visw2.out" && grep -q "widths 8 12 0 0" "$TMP/visw2.out"; then
    ok "vision train --widths 8,12 --augment 2, and --init from it (its architecture)"
else
    fail "vision --widths/--init: $(tail -c 300 "$TMP/visw.out") $(tail -c 300 "$TMP/visw2.out" 2>/dev/null)"
fi
"${VIS[@]}" --out "$TMP/visw3" --steps 2 --init "$TMP/visw" --width 16 >"$TMP/visw3.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q -- "--width with --init: the model's architecture is the one of" "$TMP/visw3.out" && ok "vision --init with a model option refused (exit 2)" ||
    fail "vision --init --width: exit $rc: $(head -c 300 "$TMP/visw3.out")"
"${VIS[@]}" --out "$TMP/visw4" --steps 2 --widths 8,x >"$TMP/visw4.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q -- "--widths '8,x'" "$TMP/visw4.out" && ok "vision --widths 8,x refused (exit 2)" ||
    fail "vision --widths 8,x: exit $rc: $(head -c 300 "$TMP/visw4.out")"
"$ATTN" vision train --out "$TMP/visbad2" --data "$TMP/nowhere" --steps 2 >"$TMP/vis9.out" 2>&1
rc=$?
[ "$rc" = 1 ] && grep -q "cannot read Fashion-MNIST" "$TMP/vis9.out" && ok "vision train without the data: a clear error" ||
    fail "vision train --data nowhere: exit $rc: $(head -c 300 "$TMP/vis9.out")"
# attn vision masks: the mask network on scenes of the look-alike (tiny)
VM=("$ATTN" vision masks train --data "$FM" --width 4 --batch 4 --train-scenes 20 --valid-scenes 8
    --test-scenes 8 --threads 1 --eval-every 2 --log-every 1 --quiet)
if "${VM[@]}" --out "$TMP/vmask" --steps 3 --sag 1 >"$TMP/vm.out" 2>&1 &&
    grep -q "test item IoU [0-9.]* (class-agnostic [0-9.]*, loss [0-9.]*, [0-9]* items of 8 scenes)" "$TMP/vm.out" &&
    grep -q '"test_iou"' "$TMP/vmask/train.jsonl"; then
    ok "vision masks train --sag 1: test item IoU at the end, in train.jsonl"
else
    fail "vision masks train: $(tail -c 400 "$TMP/vm.out")"
fi
"$ATTN" vision masks train --out "$TMP/vmask" --resume --steps 4 --quiet --threads 1 >"$TMP/vm2.out" 2>&1
rc=$?
[ "$rc" = 0 ] && grep -q "resuming .* at step 3" "$TMP/vm2.out" && ok "vision masks train --resume --steps 4 continues at step 3" ||
    fail "vision masks resume: exit $rc: $(tail -c 300 "$TMP/vm2.out")"
"$ATTN" vision masks train --out "$TMP/vmask" --resume --sag 0 >"$TMP/vm3.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q -- "--sag" "$TMP/vm3.out" && ok "vision masks --resume with --sag refused (exit 2)" ||
    fail "vision masks --resume --sag: exit $rc: $(head -c 300 "$TMP/vm3.out")"
"$ATTN" vision masks eval --model "$TMP/vmask" --data "$FM" --threads 1 >"$TMP/vm4.out" 2>&1 &&
    grep -q "^test item IoU [0-9.]* (class-agnostic" "$TMP/vm4.out" && ok "vision masks eval prints the test item IoU" ||
    fail "vision masks eval: $(head -c 300 "$TMP/vm4.out")"
"$ATTN" vision masks pictures --model "$TMP/vmask" --data "$FM" --out "$TMP/vm.png" --scenes 2 --threads 1 >"$TMP/vm5.out" 2>&1 &&
    [ -s "$TMP/vm.png" ] && grep -q "^row 1: test scene 1:.*SAG map" "$TMP/vm.png.txt" &&
    ok "vision masks pictures writes the PNG and its rows" || fail "vision masks pictures: $(head -c 300 "$TMP/vm5.out")"
"${VM[@]}" --out "$TMP/vmask2" --threshold 300 >"$TMP/vm6.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q -- "--threshold" "$TMP/vm6.out" && ok "vision masks --threshold 300 refused (exit 2)" ||
    fail "vision masks --threshold 300: exit $rc: $(head -c 300 "$TMP/vm6.out")"

# attn embed / attn similar (all-MiniLM-L6-v2): the errors always; the
# outputs when data/minilm is there (bash scripts/get_minilm.sh).
"$ATTN" embed --model "$TMP/nomodel" </dev/null >"$TMP/emb1.out" 2>&1
rc=$?
[ "$rc" = 1 ] && grep -q "cannot load the model" "$TMP/emb1.out" && ok "embed without a model: a clear error" ||
    fail "embed --model nowhere: exit $rc: $(head -c 300 "$TMP/emb1.out")"
"$ATTN" embed --format bogus </dev/null >"$TMP/emb2.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q "expected jsonl or safetensors" "$TMP/emb2.out" && ok "embed --format bogus refused (exit 2)" ||
    fail "embed --format bogus: exit $rc"
"$ATTN" similar "only a query" >"$TMP/emb3.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q "expected QUERY and FILE" "$TMP/emb3.out" && ok "similar without FILE refused (exit 2)" ||
    fail "similar without FILE: exit $rc"
MINILM="${ATTN_MINILM_DIR:-data/minilm}"
if [ -f "$MINILM/model.safetensors" ]; then
    printf 'A man is eating food.\nThe girl plays the guitar.\n\nA cheetah chases its prey.\n' >"$TMP/sent.txt"
    "$ATTN" embed "$TMP/sent.txt" --model "$MINILM" >"$TMP/emb4.out" 2>"$TMP/emb4.err"
    rc=$?
    [ "$rc" = 0 ] && [ "$(wc -l <"$TMP/emb4.out")" = 4 ] && grep -q '^{"line": 2, "tokens": 2, "embedding": \[' "$TMP/emb4.out" &&
        python3 -c "import json,sys; v=[json.loads(l)['embedding'] for l in open(sys.argv[1])]; assert all(len(x)==384 and abs(sum(a*a for a in x)-1)<1e-4 for x in v)" "$TMP/emb4.out" &&
        ok "embed writes one JSON line of 384 unit-norm values per line" || fail "embed: exit $rc: $(head -c 300 "$TMP/emb4.err")"
    "$ATTN" embed "$TMP/sent.txt" --model "$MINILM" --format safetensors --out "$TMP/emb.safetensors" 2>/dev/null
    rc=$?
    [ "$rc" = 0 ] && python3 -c "import json,struct,sys; f=open(sys.argv[1],'rb'); n=struct.unpack('<Q',f.read(8))[0]; h=json.loads(f.read(n)); assert h['embeddings']['shape']==[4,384]" "$TMP/emb.safetensors" &&
        ok "embed --format safetensors writes embeddings [4, 384]" || fail "embed safetensors: exit $rc"
    "$ATTN" similar "Someone is eating a meal." "$TMP/sent.txt" --model "$MINILM" --top 2 >"$TMP/sim.out" 2>&1
    rc=$?
    [ "$rc" = 0 ] && [ "$(wc -l <"$TMP/sim.out")" = 2 ] && head -1 "$TMP/sim.out" | grep -q "	1	A man is eating food.$" &&
        ok "similar ranks the eating sentence first" || fail "similar: exit $rc: $(head -c 300 "$TMP/sim.out")"
else
    echo "skip embed/similar outputs: $MINILM/model.safetensors is absent (bash scripts/get_minilm.sh)"
fi
# attn wavenet: the causal dilated convolution LM on the bytes of attn lm's data.
WAVENET=("$ATTN" wavenet train --data "$LMD" --res-channels 8 --layers 3 --window 16 --batch 4 --threads 1
         --eval-every 0 --log-every 1)
checks wavenet --res-channels 16 -- "${WAVENET[@]}"
"$ATTN" wavenet eval --model "$TMP/wavenet" --split valid --threads 1 >"$TMP/wn.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q "valid.txt: [0-9.]* bits/byte over $(($(wc -c <"$LMD/valid.txt") - 1)) bytes (receptive field 8" "$TMP/wn.out"; then
    ok "wavenet eval: every byte of valid.txt but the first scored once, receptive field 8"
else
    fail "wavenet eval: exit $rc: $(head -c 300 "$TMP/wn.out")"
fi
"$ATTN" wavenet sample --model "$TMP/wavenet" --prompt "the " --tokens 20 --temperature 0 >"$TMP/wns.out" 2>"$TMP/wns.err"
rc=$?
if [ "$rc" = 0 ] && [ "$(head -c 4 "$TMP/wns.out")" = "the " ] && [ "$(wc -c <"$TMP/wns.out")" = 25 ] &&
    grep -q "incremental queues" "$TMP/wns.err"; then
    ok "wavenet sample: the prompt and 20 bytes from the incremental form"
else
    fail "wavenet sample: exit $rc: $(head -c 300 "$TMP/wns.out" "$TMP/wns.err")"
fi
"$ATTN" wavenet sample --model "$TMP/wavenet" --prompt "the " --tokens 20 --temperature 0.7 --seed 3 >"$TMP/wns1.out" 2>/dev/null &&
    "$ATTN" wavenet sample --model "$TMP/wavenet" --prompt "the " --tokens 20 --temperature 0.7 --seed 3 --no-queues \
        >"$TMP/wns2.out" 2>"$TMP/wns2.err"
rc=$?
if [ "$rc" = 0 ] && cmp -s "$TMP/wns1.out" "$TMP/wns2.out" && grep -q "a full forward per byte" "$TMP/wns2.err"; then
    ok "wavenet sample --no-queues (a full forward per byte) draws the same bytes as the queues"
else
    fail "wavenet sample --no-queues: exit $rc: $(head -c 300 "$TMP/wns1.out" "$TMP/wns2.out")"
fi
"${WAVENET[@]}" --out "$TMP/wn-bad" --kernel 1 >"$TMP/wnr.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q -- "--kernel" "$TMP/wnr.out" && [ ! -e "$TMP/wn-bad" ] && ok "wavenet train --kernel 1 refused (exit 2)" ||
    fail "wavenet --kernel 1: exit $rc: $(head -c 300 "$TMP/wnr.out")"
"${WAVENET[@]}" --out "$TMP/wn-bad" --layers 20 >"$TMP/wnr.out" 2>&1
rc=$?
[ "$rc" = 1 ] && grep -q "not longer than a row" "$TMP/wnr.out" && [ ! -e "$TMP/wn-bad" ] &&
    ok "wavenet train: a receptive field longer than the text is refused (exit 1), nothing written" ||
    fail "wavenet --layers 20: exit $rc: $(head -c 300 "$TMP/wnr.out")"
"$ATTN" wavenet eval --model "$TMP/lm-gpt" >"$TMP/wnr.out" 2>&1
rc=$?
[ "$rc" = 1 ] && grep -q "not a checkpoint of attn wavenet train" "$TMP/wnr.out" &&
    ok "wavenet eval of an attn lm checkpoint: a clear error (exit 1)" ||
    fail "wavenet eval of another model: exit $rc: $(head -c 300 "$TMP/wnr.out")"
# ---- attn word2vec (train / similar / analogy / eval, --force, SIGINT) ----
W2V_TEXT="$TMP/w2v.txt"
"${PYTHON3:-python3}" -c '
import random
r = random.Random(5)
for s in range(3000):
    g = "ab"[r.randrange(2)]
    print(" ".join(g + str(r.randrange(8)) for _ in range(12)))
' >"$W2V_TEXT" 2>/dev/null || for s in $(seq 1500); do echo "a1 a2 a3 a4 a5 a6 a7 a0 a1 a2"; echo "b1 b2 b3 b4 b5 b6 b7 b0 b1 b2"; done >"$W2V_TEXT"
W2V=("$ATTN" word2vec train --text "$W2V_TEXT" --dim 12 --min-count 1 --epochs 2 --threads 1 --quiet)
"${W2V[@]}" --out "$TMP/w2v" >"$TMP/w2v1.out" 2>&1
rc=$?
[ "$rc" = 0 ] && [ -s "$TMP/w2v/vectors.safetensors" ] && head -n 1 "$TMP/w2v/vectors.txt" | grep -q "^16 12$" &&
    grep -q '"type":"end","stopped":"epochs"' "$TMP/w2v/train.jsonl" &&
    ok "word2vec train writes vectors.safetensors, vectors.txt (16 x 12) and train.jsonl" ||
    fail "word2vec train: exit $rc: $(tail -c 300 "$TMP/w2v1.out")"
"${W2V[@]}" --out "$TMP/w2v" >"$TMP/w2v2.out" 2>&1
rc=$?
[ "$rc" = 1 ] && grep -q -- "--force" "$TMP/w2v2.out" && ok "word2vec train into a run refused without --force" ||
    fail "word2vec train over a run: exit $rc: $(head -c 300 "$TMP/w2v2.out")"
"$ATTN" word2vec similar --vectors "$TMP/w2v/vectors.safetensors" a3 -k 3 >"$TMP/w2v3.out" 2>&1
rc=$?
[ "$rc" = 0 ] && [ "$(wc -l <"$TMP/w2v3.out")" = 3 ] && [ "$(grep -c '^a' "$TMP/w2v3.out")" = 3 ] &&
    ok "word2vec similar: the 3 nearest words of a3 are a-words" ||
    fail "word2vec similar: exit $rc: $(head -c 300 "$TMP/w2v3.out")"
"$ATTN" word2vec analogy --vectors "$TMP/w2v/vectors.txt" a1 a2 nosuchword >"$TMP/w2v4.out" 2>&1
rc=$?
[ "$rc" = 1 ] && grep -q "'nosuchword' is not in the vocabulary" "$TMP/w2v4.out" &&
    ok "word2vec analogy with an unknown word: a clear error" || fail "word2vec analogy unknown: exit $rc: $(head -c 300 "$TMP/w2v4.out")"
"${W2V[@]}" --out "$TMP/w2vbad" --window 100000 >"$TMP/w2v5.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q -- "--window" "$TMP/w2v5.out" && ok "word2vec --window 100000 refused (exit 2)" ||
    fail "word2vec --window huge: exit $rc: $(head -c 300 "$TMP/w2v5.out")"
"${W2V[@]}" --out "$TMP/w2vbad" --lr nan >"$TMP/w2v6.out" 2>&1
rc=$?
[ "$rc" = 2 ] && ok "word2vec --lr nan refused (exit 2)" || fail "word2vec --lr nan: exit $rc: $(head -c 300 "$TMP/w2v6.out")"
: >"$TMP/w2vempty.txt"
"$ATTN" word2vec train --text "$TMP/w2vempty.txt" --out "$TMP/w2vbad" >"$TMP/w2v7.out" 2>&1
rc=$?
[ "$rc" = 1 ] && grep -q "empty vocabulary" "$TMP/w2v7.out" && ok "word2vec train on an empty text: a clear error" ||
    fail "word2vec empty text: exit $rc: $(head -c 300 "$TMP/w2v7.out")"
"$ATTN" word2vec train --text "$W2V_TEXT" --out "$TMP/w2vint" --dim 64 --min-count 1 --epochs 3000 --threads 1 \
    >"$TMP/w2v8.out" 2>&1 &
W2VPID=$!
sleep 1.5
kill -INT "$W2VPID" 2>/dev/null
wait "$W2VPID"
rc=$?
[ "$rc" = 130 ] && [ -s "$TMP/w2vint/vectors.safetensors" ] && grep -q '"stopped":"SIGINT"' "$TMP/w2vint/train.jsonl" &&
    ok "word2vec train: SIGINT saves the vectors trained so far, exit 130" ||
    fail "word2vec SIGINT: exit $rc: $(tail -c 300 "$TMP/w2v8.out")"

# empty inputs are errors, not results over nothing (an audit, 2026-12-07)
: >"$TMP/empty.tsv"
"$ATTN" data bpe --tsv "$TMP/empty.tsv" --merges 10 --out "$TMP/empty.vocab" >"$TMP/eb.out" 2>&1
rc=$?
[ "$rc" = 1 ] && grep -q "holds no pair" "$TMP/eb.out" && [ ! -e "$TMP/empty.vocab" ] &&
    ok "data bpe on an empty pair file: a clear error, no vocabulary written" ||
    fail "data bpe empty: exit $rc: $(head -c 300 "$TMP/eb.out")"
"$ATTN" lm eval --model "$TMP/lm-gpt" --stride 17 >"$TMP/es.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q "exceeds the model's context 16" "$TMP/es.out" &&
    ok "lm eval --stride above the context is refused (bytes would go unscored)" ||
    fail "lm eval --stride 17: exit $rc: $(head -c 300 "$TMP/es.out")"

# CLI audit, 2026-12: NUL bytes and empty sentences given to translate
printf '12/25/99\nab\000cd\n1 march 2001\n' |
    "$ATTN" seq2seq translate --model "$S2S" --threads 1 >"$TMP/nul.out" 2>"$TMP/nul.err"
rc=$?
if [ "$rc" = 1 ] && [ "$(wc -l <"$TMP/nul.out")" = 3 ] && [ -n "$(sed -n 1p "$TMP/nul.out")" ] &&
    [ -z "$(sed -n 2p "$TMP/nul.out")" ] && [ -n "$(sed -n 3p "$TMP/nul.out")" ] &&
    grep -q "line 2 of standard input holds a NUL byte (byte 3)" "$TMP/nul.err" &&
    grep -q "1 of 3 inputs not translated" "$TMP/nul.err"; then
    ok "translate: a line holding a NUL byte is an error naming the line (exit 1), not cut at the NUL"
else
    fail "translate with a NUL byte: exit $rc: $(head -c 400 "$TMP/nul.out" "$TMP/nul.err")"
fi
"$ATTN" seq2seq translate --model "$S2S" --threads 1 "12/25/99" "" >"$TMP/emp.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q "TEXT 2 is an empty sentence" "$TMP/emp.out" &&
    ok "translate \"\": an empty sentence is refused (exit 2)" ||
    fail "translate of an empty sentence: exit $rc: $(head -c 300 "$TMP/emp.out")"

# CLI audit, 2026-12: misleading option and checkpoint messages
audit_refused() { # CODE TEXT -- CMD...: CMD exits CODE saying TEXT
    local code="$1" text="$2"
    shift 3
    "$@" </dev/null >"$TMP/aud.out" 2>&1
    local r=$?
    if [ "$r" = "$code" ] && grep -qF -- "$text" "$TMP/aud.out"; then
        ok "attn ${*:2:2}: exit $code, \"$text\""
    else
        fail "attn ${*:2:2}: exit $r (expected $code, \"$text\"): $(head -c 300 "$TMP/aud.out")"
    fi
}
audit_refused 2 "--sym '2': expected 0 or 1" -- "$ATTN" vision train --out "$TMP/audbad" --sym 2
audit_refused 2 "--tie '3': expected 0 or 1" -- "${TRANSFORMER[@]}" --out "$TMP/audbad" --tie 3
audit_refused 2 "--out needs a directory, got an option ('--steps')" -- "$ATTN" gpt train --out --steps 1
audit_refused 2 "--data needs a directory, got an option ('--out')" -- "$ATTN" gpt train --data --out "$TMP/audbad"
[ ! -e "$TMP/--steps" ] && [ ! -e "$TMP/audbad" ] && ok "no run folder made by the refused options" ||
    fail "a refused option left a folder behind"
audit_refused 1 "its run.model is 'attn-lm', expected run.model 'attn-gpt'" -- \
    "$ATTN" gpt train --out "$TMP/lm-gpt" --resume --steps 1
audit_refused 1 "its run.model is 'attn-lm', expected run.model 'attn-vision'" -- \
    "$ATTN" vision train --out "$TMP/lm-gpt" --resume --steps 1
audit_refused 1 "its run.model is 'attn-gpt', expected model 'attn-seq2seq'" -- \
    "$ATTN" seq2seq translate --model "$TMP/gpt" "12/25/99"
audit_refused 1 "its model is 'attn-seq2seq', expected model 'attn-transformer'" -- \
    "$ATTN" transformer eval --model "$TMP/seq2seq"
audit_refused 2 "attn embed: --batch '0': expected an integer in [1, 4096] (try 'attn embed --help')" -- \
    "$ATTN" embed --batch 0
audit_refused 2 "attn similar: --top '-1'" -- "$ATTN" similar q "$TMP/sent.txt" --top -1
audit_refused 2 "--min-lr 1 is above the learning rate 0.001" -- "${GPT[@]}" --out "$TMP/audbad" --min-lr 1
audit_refused 2 "--min-lr 0.5 is above the learning rate 0.1" -- \
    "${GPT[@]}" --out "$TMP/audbad" --lr 0.1 --min-lr 0.5
[ ! -e "$TMP/audbad" ] && ok "the refused runs wrote nothing" || fail "a refused run wrote $TMP/audbad"
if [ -f "$MINILM/model.safetensors" ]; then
    echo "one line" | "$ATTN" embed --model "$MINILM" --threads 0 >/dev/null 2>"$TMP/emb0.err"
    rc=$?
    [ "$rc" = 0 ] && grep -q " [1-9][0-9]* threads\? (process CPU" "$TMP/emb0.err" &&
        ok "embed --threads 0 runs on all the CPUs and reports how many (not 0)" ||
        fail "embed --threads 0: exit $rc: $(head -c 300 "$TMP/emb0.err")"
fi

echo "cli_driver: $passed passed, $failed failed"
[ "$failed" = 0 ]
