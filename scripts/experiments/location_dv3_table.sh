#!/usr/bin/env bash
# location_dv3_table.sh [DATE_STEPS] [GETTEXT_STEPS] [THREADS]: the two
# attentions of docs/location_attention.md (location-sensitive, Deep Voice 3)
# in the RNN encoder-decoder at the README's budgets, next to its rows:
#   dates    DATE_STEPS steps (default 1000) of 64 dates, GRU, seed 1: held-out
#            exact match and alignment accuracy (greedy, 2000 test dates), as
#            dates_table.sh;
#   gettext  en-de, GETTEXT_STEPS steps (default 1000) of 64 pairs, BPE, GRU,
#            seed SEED (default 1): test BLEU and exact match, as
#            gettext_table.sh (bash scripts/get_gettext_data.sh builds the data).
# dv3 is evaluated twice: with its decoding window [p, p + 3) (the paper's
# inference) and without it (the same model, --dv3-window 0 at training
# changes only decoding; here the windowless numbers come from `attn seq2seq
# eval` on a copy whose metadata turns the window off).
# Then draws alignment maps (SVG, and PNG when rsvg-convert is there) of a
# few inputs for every model into runs/location_dv3/maps/.
# KINDS="..." (default "location-sensitive dv3"), TASKS="dates gettext",
# ARENA_MB (default 2048: location-sensitive keeps a [B, S, A] key tensor per
# step for the backward, about 0.5 GB for the longest gettext batches).
# Writes runs/location_dv3/table-TASKS-sSEED.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/../.."
DSTEPS="${1:-1000}"
GSTEPS="${2:-1000}"
THREADS="${3:-1}"
SEED="${SEED:-1}"
KINDS="${KINDS:-location-sensitive dv3}"
TASKS="${TASKS:-dates gettext}"
make -s all
out=runs/location_dv3
mkdir -p "$out/maps"
table="$out/table-${TASKS// /-}-s$SEED.md"
: >"$table"
row() { echo "$1" | tee -a "$table"; }

# eval_json DIR [SPLIT]: one JSON line of `attn seq2seq eval`
eval_json() { build/attn seq2seq eval --model "$1" --threads "$THREADS" --json 2>/dev/null; }
field() { grep -o "\"$1\":[0-9.e+-]*" | head -n 1 | cut -d: -f2; }

# a copy of a dv3 model whose decoding window is off (metadata dv3_window -1)
no_window_copy() {
    local src="$1" dst="$2"
    rm -rf "$dst"
    cp -r "$src" "$dst"
    python3 - "$dst/model.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]
b = open(p, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
h["__metadata__"]["dv3_window"] = "-1"
hb = json.dumps(h, separators=(",", ":")).encode()
hb += b" " * ((8 - len(hb) % 8) % 8)
open(p, "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PY
}

maps() { # maps DIR NAME TEXT...
    local dir="$1" name="$2"
    shift 2
    build/attn seq2seq translate --model "$dir" --threads "$THREADS" \
        --svg "$out/maps/$name.svg" "$@" >"$out/maps/$name.txt" 2>&1 || true
    if command -v rsvg-convert >/dev/null; then
        for f in "$out/maps/$name"*.svg; do rsvg-convert -o "${f%.svg}.png" "$f" || true; done
    fi
}

for task in $TASKS; do
    if [ "$task" = dates ]; then
        row "| dates, attention | exact match | alignment | train s |"
        row "|---|---|---|---|"
    else
        [ -f data/gettext/en-de/train.tsv ] || bash scripts/get_gettext_data.sh --langs de
        row "| gettext en-de, attention | test BLEU | exact match | train s |"
        row "|---|---|---|---|"
    fi
    for kind in $KINDS; do
        dir="$out/$task-$kind-s$SEED"
        rm -rf "$dir"
        start=$(date +%s.%N)
        if [ "$task" = dates ]; then
            args=(--task dates --steps "$DSTEPS")
        else
            args=(--task gettext --lang de --steps "$GSTEPS" --arena-mb "${ARENA_MB:-2048}")
        fi
        build/attn seq2seq train "${args[@]}" --attention "$kind" --threads "$THREADS" \
            --seed "$SEED" --quiet --eval-every 0 --out "$dir" >"$dir.txt" 2>&1 ||
            { row "| $kind | failed: $(tail -n 1 "$dir.txt") | | |"; continue; }
        secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }')
        variants="$kind"
        [ "$kind" = dv3 ] && { no_window_copy "$dir" "$dir-nowindow"; variants="dv3 dv3-nowindow"; }
        for v in $variants; do
            d="$dir"
            label="$kind"
            [ "$v" = dv3-nowindow ] && { d="$dir-nowindow"; label="dv3 (no decoding window)"; }
            [ "$v" = dv3 ] && label="dv3 (window [p, p+3))"
            j=$(eval_json "$d")
            exact=$(field exact_match <<<"$j" | awk '{ printf "%.2f%%", 100 * $1 }')
            if [ "$task" = dates ]; then
                align=$(field align_acc <<<"$j" | awk '{ printf "%.2f%%", 100 * $1 }')
                row "| $label | $exact | ${align:-n/a} | $secs |"
                maps "$d" "dates-$v" "saturday, march 3, 1990" "12 jul 34" "5/14/2011" \
                    "Tuesday 27 November 1979"
            else
                bleu=$(field bleu <<<"$j" | awk '{ printf "%.2f", $1 }')
                row "| $label | $bleu | $exact | $secs |"
                maps "$d" "gettext-$v" "Save the file before closing?" \
                    "Could not open the file %s: permission denied" "Show hidden files"
            fi
        done
    done
    row ""
done
echo "table: $table; maps: $out/maps/"
