#!/usr/bin/env bash
# get_word2vec_data.sh: the word2vec corpus and evaluation sets (issue 16
# part 3, docs/word2vec.md).
#
#   bash scripts/get_word2vec_data.sh [--quiet] [--force]
#
# 1. Runs scripts/get_wiki_data.sh and scripts/get_kjv_data.sh (each does
#    nothing when its data is already there).
# 2. Extracts from the gensim 4.4.0 wheel kept in data/wiki/download/ the
#    evaluation sets gensim/test/test_data/questions-words.txt (19,544
#    analogy questions), wordsim353.tsv (353 pairs) and simlex999.txt (999
#    pairs) into data/word2vec/.
# 3. Writes data/word2vec/train.txt: the Wikipedia pages of
#    data/wiki/train.txt followed by the KJV of data/kjv/train.txt,
#    normalised like text8: XML entities decoded, tags <...> removed,
#    lower-cased, every character other than a-z a space; one line per
#    input line that keeps a word (a Wikipedia paragraph, a Bible verse),
#    words of more than 100 letters dropped. The valid/test splits are not
#    used: word2vec is evaluated on the analogy and similarity sets.
# 4. Writes data/word2vec/SOURCE (the inputs, sizes, word and line counts).
# Idempotent: does nothing when SOURCE exists (--force rebuilds).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/data/word2vec"
QUIET=0
FORCE=0
while [ $# -gt 0 ]; do
    case "$1" in
    --quiet | -q) QUIET=1 ;;
    --force) FORCE=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "get_word2vec_data.sh: unknown option '$1' (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done
say() { if [ "$QUIET" = 0 ]; then echo "word2vec-data: $*"; fi; }
die() {
    echo "word2vec-data: $*" >&2
    exit 1
}
command -v python3 >/dev/null 2>&1 || die "python3 is missing"

if [ "$FORCE" = 0 ] && [ -f "$OUT/SOURCE" ] && [ -s "$OUT/train.txt" ] && [ -s "$OUT/questions-words.txt" ]; then
    say "$OUT is already built; --force rebuilds"
    exit 0
fi
Q=()
[ "$QUIET" = 1 ] && Q=(--quiet)
bash "$ROOT/scripts/get_wiki_data.sh" "${Q[@]}"
bash "$ROOT/scripts/get_kjv_data.sh" "${Q[@]}"
WHEEL="$(ls "$ROOT"/data/wiki/download/gensim-4.4.0*.whl 2>/dev/null | head -1 || true)"
[ -n "$WHEEL" ] || die "no gensim 4.4.0 wheel in data/wiki/download/ (scripts/get_wiki_data.sh keeps it there)"
mkdir -p "$OUT"
python3 - "$WHEEL" "$ROOT/data/wiki/train.txt" "$ROOT/data/kjv/train.txt" "$OUT" <<'PYEOF'
import hashlib, html, os, re, sys, zipfile
wheel, wiki, kjv, out = sys.argv[1:5]
members = ["questions-words.txt", "wordsim353.tsv", "simlex999.txt"]
lines_src = ["wheel\t%s\t%s" % (os.path.basename(wheel), hashlib.sha256(open(wheel, "rb").read()).hexdigest())]
with zipfile.ZipFile(wheel) as z:
    for m in members:
        data = z.read("gensim/test/test_data/" + m)
        tmp = os.path.join(out, m + ".tmp")
        open(tmp, "wb").write(data)
        os.replace(tmp, os.path.join(out, m))
        lines_src.append("eval\t%s\t%d bytes\t%s" % (m, len(data), hashlib.sha256(data).hexdigest()))
tag = re.compile(r"<[^>]*>")
nonletter = re.compile(r"[^a-z]+")
tmp = os.path.join(out, "train.txt.tmp")
words = nlines = 0
with open(tmp, "w", encoding="ascii") as f:
    for name, path in (("wiki", wiki), ("kjv", kjv)):
        w0, l0 = words, nlines
        with open(path, "rb") as src:
            for raw in src:
                s = html.unescape(raw.decode("utf-8", "replace"))
                s = nonletter.sub(" ", tag.sub(" ", s).lower())
                ws = [w for w in s.split() if len(w) <= 100]
                if ws:
                    f.write(" ".join(ws) + "\n")
                    words += len(ws)
                    nlines += 1
        lines_src.append("corpus\t%s\t%s\t%d words\t%d lines" % (name, path, words - w0, nlines - l0))
os.replace(tmp, os.path.join(out, "train.txt"))
lines_src.append("train.txt\t%d words\t%d lines\t%d bytes" % (words, nlines, os.path.getsize(os.path.join(out, "train.txt"))))
open(os.path.join(out, "SOURCE"), "w").write("\n".join(lines_src) + "\n")
print("word2vec-data: %d words in %d lines" % (words, nlines))
PYEOF
say "wrote $OUT (train.txt, questions-words.txt, wordsim353.tsv, simlex999.txt, SOURCE)"
