#!/usr/bin/env bash
# explorer_test.sh: the attention explorer (attn ... --html) in a real browser.
#
#   bash tests/explorer_test.sh [BUILD_DIR] [--screenshots DIR]
#
# Trains tiny models (a GPT, a BERT, an encoder-decoder Transformer and two RNN
# seq2seq, Bahdanau and local-m, on the date task, a Transformer-XL language
# model; seconds), writes
# their explorer pages with the weights at full precision beside them (--html
# PAGE --weights TSV), and checks each page in headless Chromium through the
# DevTools protocol (tests/explorer_browser.py: no console errors, a real mouse
# hover shows attn's weights to the page's precision, layer/head switching,
# the L x H heatmaps of the model view, the enlarged map's tooltips, the step
# view of an RNN alignment, screenshots checked for structure).
#
# Without a browser ($ATTN_BROWSER, else chromium, chromium-browser or google-chrome; install one
# with `bash scripts/setup.sh --browser`) or python3 it prints a counted skip:
# "explorer: 0 passed, 0 failed, 1 skipped". With --screenshots DIR the models
# train longer (clearer pictures) and a full-size screenshot of each view is
# kept as DIR/explorer-<model>-<view>.png (docs/img/ holds the committed ones).
set -u
cd "$(dirname "$0")/.."
BUILD=build
SHOTS=""
while [ $# -gt 0 ]; do
    case "$1" in
    --screenshots) SHOTS="$2"; shift 2 ;;
    *) BUILD="$1"; shift ;;
    esac
done
ATTN="$BUILD/attn"

skip() {
    echo "skip explorer browser test: $*"
    echo "explorer: 0 passed, 0 failed, 1 skipped"
    exit 0
}
BROWSER="${ATTN_BROWSER:-}"
if [ -z "$BROWSER" ]; then
    for b in chromium chromium-browser google-chrome; do
        if command -v "$b" >/dev/null 2>&1; then BROWSER="$b"; break; fi
    done
fi
[ -n "$BROWSER" ] && command -v "$BROWSER" >/dev/null 2>&1 ||
    skip "no chromium${BROWSER:+ ($BROWSER not found)} (install it with: bash scripts/setup.sh --browser)"
command -v python3 >/dev/null 2>&1 || skip "no python3"
if [ ! -x "$ATTN" ]; then
    echo "FAIL $ATTN is not built (run make)"
    echo "explorer: 0 passed, 1 failed"
    exit 1
fi
ATTN="$(cd "$(dirname "$ATTN")" && pwd)/attn" # absolute: pages are written from $TMP

TMP="$(mktemp -d "${TMPDIR:-/tmp}/attn_explorer.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

DATA="$TMP/data"
mkdir -p "$DATA"
for i in $(seq 1 40); do
    printf 'the cat sat on the mat.\n%%\na dog ran in the fog.\n%%\nsix hens fed ten chicks.\n%%\n'
done >"$DATA/train.txt"
for i in $(seq 1 4); do
    printf 'a dog ran in the fog.\n%%\nthe cat sat on the mat.\n%%\n'
done >"$DATA/valid.txt"
cp "$DATA/valid.txt" "$DATA/test.txt"

STEPS=60
S2S_STEPS=60
S2S_SIZE=(--batch 8)
if [ -n "$SHOTS" ]; then STEPS=400; S2S_STEPS=3000; S2S_SIZE=(--batch 32); fi
COMMON=(--threads 1 --eval-every 0 --log-every 1000 --quiet)
train() { # NAME CMD...
    local name="$1"
    shift
    if "$@" --out "$TMP/$name" "${COMMON[@]}" >"$TMP/$name.log" 2>&1; then
        return 0
    fi
    fail "$name: training failed: $(tail -c 300 "$TMP/$name.log")"
    return 1
}
page() { # NAME CMD... (--html and --weights added)
    local name="$1"
    shift
    # run in $TMP with the model's folder relative: the page's subtitle names it
    if (cd "$TMP" && "$@" --html "pages/$name.html" --weights "pages/$name.tsv") >"$TMP/$name.page.log" 2>&1 &&
        [ -s "$TMP/pages/$name.html" ] && [ -s "$TMP/pages/$name.tsv" ]; then
        ok "$name: page and weights written ($(wc -c <"$TMP/pages/$name.html") bytes)"
        PAGES+=("$TMP/pages/$name.html:$TMP/pages/$name.tsv:$name")
    else
        fail "$name: no page: $(tail -c 300 "$TMP/$name.page.log")"
    fi
}
PAGES=()

train gpt "$ATTN" gpt train --data "$DATA" --layers 2 --heads 4 --d-model 32 --ctx 32 --batch 8 \
    --steps "$STEPS" && page gpt "$ATTN" viz --model gpt --threads 1 "the cat sat on the mat."
# the same page with 2 decimals (uint8 weights), the encoding of big pages
if [ -d "$TMP/gpt" ]; then
    ATTN_EXPLORER_DECIMALS=2 page gpt2dec "$ATTN" viz --model gpt --threads 1 "a dog ran in the fog."
    grep -q '"decimals":2' "$TMP/pages/gpt2dec.html" && ok "gpt2dec: ATTN_EXPLORER_DECIMALS=2 gives a 2-decimal page" ||
        fail "gpt2dec: not a 2-decimal page"
fi
train bert "$ATTN" bert pretrain --text "$DATA/train.txt" --valid "$DATA/valid.txt" --tokenizer char \
    --layers 2 --heads 2 --d-model 16 --ctx 32 --batch 8 --steps "$STEPS" &&
    page bert "$ATTN" viz --model bert --threads 1 "a dog ran in the fog."
train transformer "$ATTN" transformer train --task dates --d-model 32 --heads 4 --layers 2 "${S2S_SIZE[@]}" \
    --steps "$S2S_STEPS" &&
    page transformer "$ATTN" viz --model transformer --threads 1 "december 25, 1999"
train rnn "$ATTN" seq2seq train --task dates --emb 32 --hidden 32 "${S2S_SIZE[@]}" --steps "$S2S_STEPS" &&
    page rnn "$ATTN" seq2seq translate --model rnn --threads 1 "december 25, 1999"
# a local-m RNN: its window (|s - t| <= D) drawn as the mask, checked against the weights
train localm "$ATTN" seq2seq train --task dates --emb 16 --hidden 16 --attention local-m --window 2 \
    "${S2S_SIZE[@]}" --steps "$S2S_STEPS" &&
    page localm "$ATTN" seq2seq translate --model localm --threads 1 "december 25, 1999"
train txl "$ATTN" lm train --data "$DATA" --arch txl --layers 2 --heads 2 --d-model 16 --segment 8 \
    --mem-len 8 --batch 4 --steps "$STEPS" &&
    page txl "$ATTN" lm viz --model txl --threads 1 --text "the cat sat on the mat."

# Size: a 6-layer, 12-head GPT (untrained: 2 steps) over 127 tokens, 1.2 M
# weights in a 3 MB page, must be drawn and painted within BIG_MS of the start
# of navigation (the target is 1 s on a quiet machine; the bound leaves room
# for a loaded CI machine, and catches a page that takes many seconds).
BIG_MS="${ATTN_EXPLORER_BIG_MS:-5000}"
BIGTEXT="the quick brown fox jumps over the lazy dog and the cat sat on the mat while six hens fed ten chicks in the fog. the"
if train big "$ATTN" gpt train --data "$DATA" --layers 6 --heads 12 --d-model 96 --ctx 128 --batch 2 --steps 2 &&
    "$ATTN" viz --model "$TMP/big" --threads 1 --html "$TMP/pages/big.html" "$BIGTEXT" >"$TMP/big.page.log" 2>&1; then
    ok "big: a page of 6 layers x 12 heads over ${#BIGTEXT} tokens written ($(wc -c <"$TMP/pages/big.html") bytes)"
    PAGES+=("$TMP/pages/big.html::big:$BIG_MS")
else
    fail "big: no page: $(tail -c 300 "$TMP/big.page.log")"
fi

# A page is one file that needs nothing else: no external script, style or URL.
for p in "${PAGES[@]}"; do
    f="${p%%:*}"
    if grep -Eq '<script[^>]+src=|<link[^>]+href=|https?://' "$f"; then
        fail "$(basename "$f"): refers to something outside the page"
    else
        ok "$(basename "$f"): self-contained (no src=, href= or URL)"
    fi
done

args=(--browser "$BROWSER")
[ -n "$SHOTS" ] && args+=(--screenshots "$SHOTS")
python3 tests/explorer_browser.py "${args[@]}" "${PAGES[@]}" >"$TMP/browser.out" 2>&1
rc=$?
grep -v '^explorer: ' "$TMP/browser.out"
line="$(grep '^explorer: [0-9]* passed, [0-9]* failed' "$TMP/browser.out" | tail -1)"
if [ -n "$line" ]; then
    bp="$(echo "$line" | awk '{print $2}')"
    bf="$(echo "$line" | awk '{print $4}')"
    passed=$((passed + bp))
    failed=$((failed + bf))
fi
[ "$rc" = 0 ] || [ "$failed" -gt 0 ] || fail "explorer_browser.py exited with status $rc"
echo "explorer: $passed passed, $failed failed"
[ "$failed" = 0 ]
