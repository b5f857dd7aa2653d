#!/usr/bin/env bash
# fault_tests.sh BUILD_DIR: faults a training run must survive (part of
# `make test`, so `make sanitize` runs it under ASan + UBSan too; about 40 s):
#
#   - kill -9 at random moments of a run that checkpoints every step (so
#     most kills land in or near a save): after each kill the last
#     checkpoint loads (gpt sample) with its optimizer state (--resume), no
#     temporary file is left under the final name, and the run resumes;
#   - a full disk during a save (a file-size limit, ulimit -f, with SIGXFSZ
#     ignored so the write fails as on a full disk): a clear error, exit 1,
#     the previous checkpoint byte for byte intact;
#   - resuming an interrupted run gives the same losses and the same final
#     weights, bit for bit, as the uninterrupted run, with dropout on, on 1
#     and 2 threads, for every training family (GPT, BERT, the RNN
#     translator, the Transformer, the GAN with its two checkpoints, the
#     vision CNN: shuffled batches and BatchNorm running statistics; the
#     LSTMN word LM; the WaveNet);
#   - hostile option values (negative, zero, huge, NaN, not a number, empty)
#     of every numeric option of the training commands: exit 2 with the
#     option named, never a crash.
#
# Prints one line per check and "fault_tests: N passed, N failed"; exits
# non-zero if any check failed.
set -uo pipefail

BUILD="${1:-build}"
ATTN="$BUILD/attn"
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
finish() {
    echo "fault_tests: $passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit
}

TMP="$(mktemp -d "${TMPDIR:-/tmp}/attn_faults.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
if [ ! -x "$ATTN" ]; then
    fail "$ATTN is not built (run make)"
    finish
fi

DATA="$TMP/data"
mkdir -p "$DATA"
for i in $(seq 1 40); do
    printf 'the cat sat on the mat.\n%%\na dog ran in the fog.\n%%\nsix hens fed ten chicks.\n%%\n'
done >"$DATA/train.txt"
for i in $(seq 1 4); do
    printf 'a dog ran in the fog.\n%%\nthe cat sat on the mat.\n%%\n'
done >"$DATA/valid.txt"

GPT=("$ATTN" gpt train --data "$DATA" --layers 1 --heads 2 --d-model 16 --ctx 16 --batch 4
     --dropout 0.1 --eval-n 2 --log-every 1)
BERT=("$ATTN" bert pretrain --text "$DATA/train.txt" --valid "$DATA/valid.txt" --tokenizer char
      --layers 1 --heads 2 --d-model 16 --ctx 16 --batch 4 --dropout 0.1 --log-every 1)
SEQ2SEQ=("$ATTN" seq2seq train --task dates --emb 8 --hidden 8 --batch 4 --dropout 0.1 --eval-n 8
         --log-every 1)
TRANSFORMER=("$ATTN" transformer train --task dates --d-model 8 --heads 2 --layers 1 --batch 4
             --dropout 0.1 --eval-n 8 --log-every 1)
WAVENET=("$ATTN" wavenet train --data "$DATA" --res-channels 8 --layers 3 --window 16 --batch 4
         --eval-n 64 --log-every 1)

# ---- kill -9 during checkpoint saves ------------------------------------------------------
dir="$TMP/kill"
"${GPT[@]}" --out "$dir" --steps 3 --eval-every 1 --threads 1 --quiet >"$TMP/k.out" 2>&1 ||
    fail "kill: the first run failed: $(head -c 300 "$TMP/k.out")"
kills=0
for round in 1 2 3 4 5; do
    "$ATTN" gpt train --out "$dir" --resume --steps 100000 --eval-every 1 --threads 1 --quiet \
        >"$TMP/k.out" 2>&1 &
    pid=$!
    sleep "0.$((RANDOM % 9 + 1))"
    kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
    wait "$pid" 2>/dev/null
    if ! "$ATTN" gpt sample --model "$dir" --prompt "the" --tokens 3 --seed 1 >"$TMP/s.out" 2>&1; then
        fail "kill -9 round $round: the last checkpoint does not load: $(head -c 300 "$TMP/s.out")"
    fi
done
if [ "$kills" -ge 3 ] && "$ATTN" gpt sample --model "$dir" --prompt "the" --tokens 3 --seed 1 \
    >/dev/null 2>&1; then
    ok "kill -9 at $kills random moments of a run that saves every step: the last checkpoint always loads"
else
    fail "kill -9: only $kills kills landed, or the checkpoint does not load"
fi
step=$(sed -n 's/.*"event":"\(eval\|end\|interrupted\)","step":\([0-9]*\).*/\2/p' "$dir/train.jsonl" | tail -1)
if "$ATTN" gpt train --out "$dir" --resume --steps $((step + 20)) --eval-every 0 --threads 1 --quiet \
    >"$TMP/k.out" 2>&1 && grep -q '"event":"resume"' "$dir/train.jsonl"; then
    ok "kill -9: the run resumes from the last checkpoint with its optimizer state and finishes"
else
    fail "kill -9: resume failed: $(head -c 300 "$TMP/k.out")"
fi

# ---- a full disk during a save ------------------------------------------------------------
sum=$(cksum <"$dir/model.safetensors")
size=$(wc -c <"$dir/model.safetensors")
(
    trap '' XFSZ
    ulimit -f $((size / 2048)) # KiB: half the checkpoint
    exec "$ATTN" gpt train --out "$dir" --resume --steps $((step + 25)) --eval-every 0 --threads 1 --quiet
) >"$TMP/d.out" 2>&1
rc=$?
if [ "$rc" = 1 ] && grep -qi "cannot\|error" "$TMP/d.out" && [ "$(cksum <"$dir/model.safetensors")" = "$sum" ] &&
    ! ls "$dir"/model.safetensors.tmp.* >/dev/null 2>&1; then
    ok "a full disk during a save: exit 1 with the error, the previous checkpoint intact, no temporary left"
else
    fail "full disk: exit $rc, checkpoint $( [ "$(cksum <"$dir/model.safetensors")" = "$sum" ] && echo intact || echo CHANGED): $(head -c 300 "$TMP/d.out")"
fi

# A tiny Fashion-MNIST look-alike for attn vision (random pixels, labels 0..9
# in turn; 5,040 training images, as the last 5,000 validate).
FM="$TMP/fmnist"
mkdir -p "$FM"
printf '\000\001\002\003\004\005\006\007\010\011' >"$TMP/ten"
be32() { printf "\\$(printf %03o $(($1 >> 24 & 255)))\\$(printf %03o $(($1 >> 16 & 255)))\\$(printf %03o $(($1 >> 8 & 255)))\\$(printf %03o $(($1 & 255)))"; }
{ printf '\000\000\010\003'; be32 5040; printf '\000\000\000\034\000\000\000\034'; head -c $((5040 * 784)) /dev/urandom; } >"$FM/train-images-idx3-ubyte"
{ printf '\000\000\010\001'; be32 5040; for _ in $(seq 1 504); do cat "$TMP/ten"; done; } >"$FM/train-labels-idx1-ubyte"
{ printf '\000\000\010\003'; be32 20; printf '\000\000\000\034\000\000\000\034'; head -c $((20 * 784)) /dev/urandom; } >"$FM/t10k-images-idx3-ubyte"
{ printf '\000\000\010\001'; be32 20; cat "$TMP/ten" "$TMP/ten"; } >"$FM/t10k-labels-idx1-ubyte"
VISION=("$ATTN" vision train --data "$FM" --width 8 --stages 2 --batch 8 --attention sagan --dropout 0.2
    --augment 1 --log-every 1)

# ---- bit-identical resume ------------------------------------------------------------------
# (an interrupted run is one cut at a checkpoint: here a 4-step run resumed
# to 8 steps, against 8 steps straight)
# The GAN (its own step and two checkpoints, cli/cmd_gan.c) on IDX files of
# random pixels: 12 training and 8 test images of 28 x 28.
IDX="$TMP/idx"
mkdir -p "$IDX"
idx_images() { # FILE N N_AS_HEX_BYTE
    printf "\\x00\\x00\\x08\\x03\\x00\\x00\\x00\\x$3\\x00\\x00\\x00\\x1c\\x00\\x00\\x00\\x1c" >"$1"
    head -c $(($2 * 784)) /dev/urandom >>"$1"
}
idx_images "$IDX/train-images-idx3-ubyte" 12 0c
idx_images "$IDX/t10k-images-idx3-ubyte" 8 08
GAN=("$ATTN" gan train --data "$IDX" --z-dim 8 --g-ch 8 --d-ch 8 --batch 4 --eval-n 4 --log-every 1)

# the data section of a safetensors file (the tensors' bytes, after the header)
tensor_bytes() { python3 -c '
import struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
sys.stdout.buffer.write(raw[8 + n:])' "$1"; }
losses() { sed -n 's/.*"event":"train","step":\([0-9]*\),.*"loss":\([-0-9.e+]*\).*/\1 \2/p' "$1"; }
same_run() { # FAM TH A B: the two runs' losses and final weights agree bit for bit
    [ -n "$(losses "$3/train.jsonl")" ] &&
        [ "$(losses "$3/train.jsonl")" = "$(losses "$4/train.jsonl")" ] &&
        cmp -s <(tensor_bytes "$3/model.safetensors") <(tensor_bytes "$4/model.safetensors")
}
for fam in GPT BERT VISION WAVENET; do
    declare -n base="$fam"
    # a constant learning rate: a 4-step run's schedule is then the 8-step
    # run's, and the 4-step run resumed to 8 must be the 8-step run
    cmd=("${base[@]}" --lr 0.001 --min-lr 0.001 --warmup 0)
    for th in 1 2; do
        a="$TMP/$fam-$th-a" b="$TMP/$fam-$th-b"
        "${cmd[@]}" --out "$a" --steps 8 --eval-every 4 --threads "$th" --quiet >"$TMP/r.out" 2>&1 &&
            "${cmd[@]}" --out "$b" --steps 4 --eval-every 4 --threads "$th" --quiet >>"$TMP/r.out" 2>&1 &&
            "$ATTN" "${cmd[1]}" "${cmd[2]}" --out "$b" --resume --steps 8 --eval-every 4 --threads "$th" \
                --log-every 1 --quiet >>"$TMP/r.out" 2>&1
        rc=$?
        if [ "$rc" = 0 ] && command -v python3 >/dev/null && same_run "$fam" "$th" "$a" "$b"; then
            ok "${fam,,}: 4 steps + resume to 8 = 8 steps, bit for bit (losses and weights), dropout on, $th thread(s)"
        else
            fail "${fam,,} resume, $th thread(s): exit $rc; losses $(diff <(losses "$a/train.jsonl") <(losses "$b/train.jsonl") | head -3 | tr '\n' ' ') $(tail -c 300 "$TMP/r.out")"
        fi
    done
    unset -n base
done
# The GAN's rates are constant: 4 steps + resume to 8 = 8 steps, the losses
# of both nets and both checkpoints (weights, spectral-norm vectors,
# batchnorm statistics, Adam states) bit for bit.
for th in 1 2; do
    a="$TMP/GAN-$th-a" b="$TMP/GAN-$th-b"
    "${GAN[@]}" --out "$a" --steps 8 --eval-every 4 --threads "$th" --quiet >"$TMP/r.out" 2>&1 &&
        "${GAN[@]}" --out "$b" --steps 4 --eval-every 4 --threads "$th" --quiet >>"$TMP/r.out" 2>&1 &&
        "$ATTN" gan train --out "$b" --resume --steps 8 --eval-every 4 --threads "$th" --log-every 1 --quiet \
            >>"$TMP/r.out" 2>&1
    rc=$?
    glosses() { sed -n 's/.*"event":"train","step":\([0-9]*\),.*"g_loss":\([-0-9.e+]*\).*/\1 \2/p' "$1"; }
    if [ "$rc" = 0 ] && command -v python3 >/dev/null && same_run GAN "$th" "$a" "$b" &&
        [ "$(glosses "$a/train.jsonl")" = "$(glosses "$b/train.jsonl")" ] &&
        cmp -s <(tensor_bytes "$a/discriminator.safetensors") <(tensor_bytes "$b/discriminator.safetensors"); then
        ok "gan: 4 steps + resume to 8 = 8 steps, bit for bit (D and G losses, both checkpoints), $th thread(s)"
    else
        fail "gan resume, $th thread(s): exit $rc; losses $(diff <(losses "$a/train.jsonl") <(losses "$b/train.jsonl") | head -3 | tr '\n' ' ') $(tail -c 300 "$TMP/r.out")"
    fi
done
# attn lstmn (the LSTMN word LM, dropout on): 4 steps + resume to 8 = 8 steps.
LSD="$TMP/lstmndata"
mkdir -p "$LSD"
for split in train valid test; do
    for i in $(seq 1 12); do
        printf 'Book %d\n\n  1 In the beginning the cat sat on the mat.\n  2 And the dog ran, in the fog; and it was good.\n\n' "$i"
    done >"$LSD/$split.txt"
done
LSTMN=("$ATTN" lstmn train --data "$LSD" --vocab 12 --embed 8 --hidden 8 --attn 4 --ctx 6 --batch 4
       --dropout 0.2 --log-every 1 --eval-n 4)
cmd=("${LSTMN[@]}" --lr 0.001 --min-lr 0.001 --warmup 0)
for th in 1 2; do
    a="$TMP/LSTMN-$th-a" b="$TMP/LSTMN-$th-b"
    "${cmd[@]}" --out "$a" --steps 8 --eval-every 4 --threads "$th" --quiet >"$TMP/r.out" 2>&1 &&
        "${cmd[@]}" --out "$b" --steps 4 --eval-every 4 --threads "$th" --quiet >>"$TMP/r.out" 2>&1 &&
        "$ATTN" lstmn train --out "$b" --resume --steps 8 --eval-every 4 --threads "$th" \
            --log-every 1 --quiet >>"$TMP/r.out" 2>&1
    rc=$?
    if [ "$rc" = 0 ] && command -v python3 >/dev/null && same_run LSTMN "$th" "$a" "$b"; then
        ok "lstmn: 4 steps + resume to 8 = 8 steps, bit for bit (losses and weights), dropout on, $th thread(s)"
    else
        fail "lstmn resume, $th thread(s): exit $rc; losses $(diff <(losses "$a/train.jsonl") <(losses "$b/train.jsonl") | head -3 | tr '\n' ' ') $(tail -c 300 "$TMP/r.out")"
    fi
done
# The encoder-decoders' cosine decays to 0 at the run's end: their run is cut
# by SIGINT (at whatever step it lands, checkpointed there) and resumed.
for fam in SEQ2SEQ TRANSFORMER; do
    declare -n fam_cmd="$fam"
    for th in 1 2; do
        a="$TMP/$fam-$th-a" b="$TMP/$fam-$th-b"
        "${fam_cmd[@]}" --out "$a" --steps 300 --eval-every 0 --threads "$th" --quiet >"$TMP/r.out" 2>&1
        "${fam_cmd[@]}" --out "$b" --steps 300 --eval-every 0 --threads "$th" --quiet >>"$TMP/r.out" 2>&1 &
        pid=$!
        for _ in $(seq 1 300); do
            grep -q '"event":"train"' "$b/train.jsonl" 2>/dev/null && break
            sleep 0.05
        done
        kill -INT "$pid" 2>/dev/null
        wait "$pid"
        cut=$(sed -n 's/.*"event":"interrupted","step":\([0-9]*\).*/\1/p' "$b/train.jsonl")
        "$ATTN" "${fam_cmd[1]}" "${fam_cmd[2]}" --out "$b" --resume --steps 300 --eval-every 0 --threads "$th" \
            --log-every 1 --quiet >>"$TMP/r.out" 2>&1
        rc=$?
        if [ "$rc" = 0 ] && [ -n "$cut" ] && command -v python3 >/dev/null && same_run "$fam" "$th" "$a" "$b"; then
            ok "${fam,,}: cut by SIGINT at step $cut and resumed = 300 steps straight, bit for bit, dropout on, $th thread(s)"
        else
            fail "${fam,,} resume after SIGINT (step '$cut'), $th thread(s): exit $rc; $(diff <(losses "$a/train.jsonl") <(losses "$b/train.jsonl") | head -3 | tr '\n' ' ') $(tail -c 200 "$TMP/r.out")"
        fi
    done
    unset -n fam_cmd
done

# ---- hostile option values -----------------------------------------------------------------
hostile=("-1" "0" "99999999999999999999" "nan" "abc" "")
check_opts() { # NAME OPTION... -- CMD...
    local name="$1"
    shift
    local opts=()
    while [ "$1" != "--" ]; do opts+=("$1"); shift; done
    shift
    local bad=0 total=0
    for opt in "${opts[@]}"; do
        for v in "${hostile[@]}"; do
            "$@" --out "$TMP/hostile" "$opt" "$v" --steps 1 --quiet >"$TMP/h.out" 2>&1
            local rc=$?
            total=$((total + 1))
            if [ "$rc" -ge 128 ]; then
                bad=$((bad + 1))
                fail "$name $opt '$v': crashed (exit $rc): $(head -c 200 "$TMP/h.out")"
            elif [ "$rc" = 0 ]; then
                rm -rf "$TMP/hostile" # a value that is valid for this option (0, -1 where allowed)
            elif [ "$rc" != 2 ] || ! grep -q -- "$opt" "$TMP/h.out"; then
                bad=$((bad + 1))
                fail "$name $opt '$v': exit $rc without naming $opt: $(head -c 200 "$TMP/h.out")"
            fi
        done
    done
    [ "$bad" = 0 ] && ok "$name: $total hostile option values: exit 2 naming the option (or accepted when valid), no crash"
}
check_opts "gpt train" --steps --batch --lr --min-lr --warmup --weight-decay --seed --layers --heads \
    --kv-heads --d-model --d-ff --ctx --dropout --bpe-merges --eval-every --eval-n --log-every \
    --threads --time-budget --epochs --arena-mb \
    -- "${GPT[@]}"
check_opts "bert pretrain" --steps --batch --lr --warmup --layers --heads --d-model --d-ff --ctx \
    --dropout --threads --mask-prob --eval-every --log-every \
    -- "${BERT[@]}"
check_opts "seq2seq train" --steps --batch --lr --emb --hidden --dropout --threads --beam \
    --eval-every --eval-n --log-every \
    -- "${SEQ2SEQ[@]}"
check_opts "transformer train" --steps --batch --lr --d-model --heads --layers --d-ff --dropout \
    --threads --eval-every --log-every \
    -- "${TRANSFORMER[@]}"
check_opts "lstmn train" --steps --batch --lr --min-lr --warmup --weight-decay --seed --vocab --embed \
    --hidden --attn --ctx --dropout --eval-every --eval-n --log-every --threads --time-budget --epochs \
    --arena-mb \
    -- "${LSTMN[@]}"
check_opts "vision train" --steps --batch --lr --min-lr --warmup --weight-decay --seed --stages \
    --width --convs --attention-stage --dropout --label-smoothing --augment --eval-every --eval-n \
    --log-every --threads --time-budget --epochs \
    -- "${VISION[@]}"
check_opts "wavenet train" --steps --batch --lr --min-lr --warmup --weight-decay --seed --res-channels \
    --gate-channels --skip-channels --head-channels --kernel --layers --blocks --window --eval-every \
    --eval-n --final-eval-n --log-every --threads --time-budget --epochs --arena-mb \
    -- "${WAVENET[@]}"

# Show, Attend and Tell (needs Fashion-MNIST): hard attention, whose step
# also draws locations and moves the REINFORCE baseline, resumes bit for
# bit; its options take hostile values like the others'.
FMNIST="${ATTN_DATA_DIR:-data/fashion-mnist}"
if [ -f "$FMNIST/train-images-idx3-ubyte" ]; then
    CAPTION=("$ATTN" caption train --data "$FMNIST" --encoder random --attention hard --train-scenes 32
             --valid-scenes 8 --embed 8 --hidden 8 --attn-size 8 --batch 4 --log-every 1 --eval-n 4)
    cmd=("${CAPTION[@]}" --lr 0.001 --min-lr 0.001 --warmup 0)
    for th in 1 2; do
        a="$TMP/CAPTION-$th-a" b="$TMP/CAPTION-$th-b"
        "${cmd[@]}" --out "$a" --steps 8 --eval-every 4 --threads "$th" --quiet >"$TMP/r.out" 2>&1 &&
            "${cmd[@]}" --out "$b" --steps 4 --eval-every 4 --threads "$th" --quiet >>"$TMP/r.out" 2>&1 &&
            "$ATTN" caption train --out "$b" --resume --steps 8 --eval-every 4 --threads "$th" \
                --log-every 1 --quiet >>"$TMP/r.out" 2>&1
        rc=$?
        if [ "$rc" = 0 ] && command -v python3 >/dev/null && same_run CAPTION "$th" "$a" "$b"; then
            ok "caption (hard attention): 4 steps + resume to 8 = 8 steps, bit for bit (losses, weights, baseline), $th thread(s)"
        else
            fail "caption resume, $th thread(s): exit $rc; losses $(diff <(losses "$a/train.jsonl") <(losses "$b/train.jsonl") | head -3 | tr '\n' ' ') $(tail -c 300 "$TMP/r.out")"
        fi
    done
    check_opts "caption train" --steps --batch --lr --embed --hidden --attn-size --lambda --entropy \
        --reinforce --mix --train-scenes --valid-scenes --scene-seed --encoder-stage --eval-every --threads \
        -- "${CAPTION[@]}" --eval-every 0
fi
check_opts "gan train" --steps --batch --lr-d --lr-g --beta1 --beta2 --seed --z-dim --g-ch --d-ch \
    --attention --eval-every --eval-n --log-every --threads --time-budget --arena-mb \
    -- "${GAN[@]}"

finish
