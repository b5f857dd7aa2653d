#!/usr/bin/env bash
# make_corpus.sh: the seed corpora of the fuzz harnesses, from real files.
#
#   bash fuzz/make_corpus.sh MAKE_SEEDS OUT_DIR
#
# MAKE_SEEDS is the built fuzz/make_seeds.c (fuzz/run.sh builds it): it writes
# small valid files made by attn itself (parameter files, checkpoints of each
# optimizer, GPT and BERT models and checkpoints, character and BPE
# vocabularies, IDX arrays, texts, a labelled fortune corpus, TSV pairs).
# This script adds real files from the machine where they exist:
#   mo/     three small gettext catalogs of /usr/share/locale (500 B - 4 KiB,
#           the first in path order) and a minimal one (header only)
#   idx/    slices of Fashion-MNIST (data/fashion-mnist or Debian's
#           /usr/share/datasets/fashion-mnist): 16 labels, 2 images, with
#           their headers rewritten for the new sizes
#   png/    the PNG fixtures of tests/fixtures/png
#   lm_text/, bert_corpus/, pairs/
#           the first lines of data/fortunes/train.txt and
#           data/gettext/en-de/train.tsv when those were built
# OUT_DIR/<target>/ is emptied and refilled; the output is the same on the
# same machine.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: make_corpus.sh MAKE_SEEDS OUT_DIR" >&2
    exit 2
fi
SEEDS_BIN="$1"
OUT="$2"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGETS=(safetensors safetensors_file checkpoint gpt_load bert_load s2s_load wavenet_load vocab mo idx lm_text bert_corpus pairs png deb_graph)
for t in "${TARGETS[@]}"; do
    rm -rf "${OUT:?}/$t"
    mkdir -p "$OUT/$t"
done
"$SEEDS_BIN" "$OUT"

# gettext catalogs
n=0
while IFS= read -r f; do
    cp "$f" "$OUT/mo/$(echo "${f#/usr/share/locale/}" | tr '/' '_')"
    n=$((n + 1))
done < <(find /usr/share/locale -name '*.mo' -size -4k -size +500c 2>/dev/null | LC_ALL=C sort | head -n 3)
# a catalog of one message (the header), little-endian, written by hand
printf '\xde\x12\x04\x95\x00\x00\x00\x00\x01\x00\x00\x00\x1c\x00\x00\x00\x24\x00\x00\x00\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x00\x00\x00\x2c\x00\x00\x00\x28\x00\x00\x00\x2d\x00\x00\x00\x00Content-Type: text/plain; charset=UTF-8\n\x00' \
    >"$OUT/mo/header_only.mo"

# IDX slices of Fashion-MNIST
fm=""
for d in "$ROOT/data/fashion-mnist" /usr/share/datasets/fashion-mnist; do
    if [ -f "$d/t10k-labels-idx1-ubyte" ] || [ -f "$d/t10k-labels-idx1-ubyte.gz" ]; then
        fm="$d"
        break
    fi
done
if [ -n "$fm" ]; then
    # (head closes the pipe early: the broken pipe upstream is expected)
    cat_idx() { if [ -f "$fm/$1" ]; then cat "$fm/$1"; else gzip -dc "$fm/$1.gz"; fi; }
    # header (type u8, 1 dim of 16), then the first 16 labels
    { printf '\x00\x00\x08\x01\x00\x00\x00\x10'; (set +o pipefail; cat_idx t10k-labels-idx1-ubyte | tail -c +9 | head -c 16); } \
        >"$OUT/idx/fashion_labels16.idx"
    # header [2, 28, 28], then the first two images
    { printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x1c\x00\x00\x00\x1c'
      (set +o pipefail; cat_idx t10k-images-idx3-ubyte | tail -c +17 | head -c 1568); } \
        >"$OUT/idx/fashion_images2.idx"
fi

# PNG files of an independent encoder (tools/make_png_fixtures.py): every
# colour type and bit depth, the three deflate block types
for f in "$ROOT"/tests/fixtures/png/*.png; do
    [ -f "$f" ] && cp "$f" "$OUT/png/"
done

# text corpora built by scripts/get_*_data.sh, when present
if [ -f "$ROOT/data/fortunes/train.txt" ]; then
    head -n 40 "$ROOT/data/fortunes/train.txt" >"$OUT/lm_text/fortunes40.txt"
    { printf '\x15'; head -n 40 "$ROOT/data/fortunes/train.txt"; } >"$OUT/bert_corpus/fortunes40"
fi
if [ -f "$ROOT/data/gettext/en-de/train.tsv" ]; then
    head -n 20 "$ROOT/data/gettext/en-de/train.tsv" >"$OUT/pairs/gettext_de20.tsv"
fi
# Debian Packages stanzas: the first 30 of the machine's index when
# data/debgraph exists (scripts/get_debian_graph.sh), and a written one
printf 'Package: a\nSection: contrib/utils\nDepends: b (>= 1), c | d:any\nDescription: a tool\n\nPackage: b\nSection: libs\nPre-Depends: a\nDescription: a library\n' \
    >"$OUT/deb_graph/two.txt"
if [ -f "$ROOT/data/debgraph/Packages" ]; then
    awk 'BEGIN { RS = ""; ORS = "\n\n" } NR <= 30' "$ROOT/data/debgraph/Packages" >"$OUT/deb_graph/debian30.txt"
fi
total=0
for t in "${TARGETS[@]}"; do total=$((total + $(ls "$OUT/$t" | wc -l))); done
echo "make_corpus: $total seed files in $OUT (${#TARGETS[@]} targets; .mo catalogs from the system: $n; Fashion-MNIST: ${fm:-absent})"
