#!/usr/bin/env bash
# word2vec_speed.sh [REPEATS]: training speed of attn's word2vec against
# gensim 4.4.0's at one thread / worker (issue 16 part 3: attn at least 1.5x
# gensim's words/s). REPEATS (3) interleaved pairs of runs (attn, then
# gensim) of ONE epoch of skip-gram (MODEL=cbow for CBOW) on
# data/word2vec/train.txt with the settings of word2vec_vs_gensim.sh, no
# evaluation. words/s = in-vocabulary words / training seconds, by wall time
# and by process CPU time; the CPU-time ratio is the figure that does not
# depend on the other jobs of a shared machine. Prints a table and writes
# $OUT/speed.json (OUT: runs/word2vec-speed-MODEL).
# Environment: MODEL (skipgram), GENSIM_PATH (/opt/gensim), PYTHON, BUILD.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEATS="${1:-3}"
MODEL="${MODEL:-skipgram}"
GENSIM_PATH="${GENSIM_PATH:-/opt/gensim}"
PYTHON="${PYTHON:-python3}"
BUILD="${BUILD:-build}"
OUT="${OUT:-runs/word2vec-speed-$MODEL}"
DATA=data/word2vec
FLAGS=()
[ "$MODEL" = cbow ] && FLAGS=(--cbow)
[ -s "$DATA/train.txt" ] || bash scripts/get_word2vec_data.sh --quiet
make -s BUILD="$BUILD" "$BUILD/attn"
mkdir -p "$OUT"
: >"$OUT/runs.jsonl"
for r in $(seq "$REPEATS"); do
    echo "repeat $r of $REPEATS: attn..." >&2
    "$BUILD/attn" word2vec train --text "$DATA/train.txt" --out "$OUT/attn" --force --quiet --threads 1 --epochs 1 \
        --dim 100 --window 5 --negative 5 --min-count 5 --sample 1e-3 --seed "$r" "${FLAGS[@]}" >/dev/null
    grep '"type":"end"' "$OUT/attn/train.jsonl" | sed 's/^{/{"who":"attn",/' >>"$OUT/runs.jsonl"
    echo "repeat $r of $REPEATS: gensim..." >&2
    PYTHONPATH="$GENSIM_PATH" "$PYTHON" tools/word2vec_gensim.py train --text "$DATA/train.txt" --out "$OUT/gensim" \
        --no-eval --no-save --epochs 1 --dim 100 --window 5 --negative 5 --min-count 5 --sample 1e-3 --seed "$r" \
        "${FLAGS[@]}" | sed 's/^{/{"who":"gensim",/' >>"$OUT/runs.jsonl"
done
"$PYTHON" - "$OUT" "$MODEL" <<'PYEOF'
import json, statistics, sys
out, model = sys.argv[1], sys.argv[2]
runs = [json.loads(l) for l in open(out + "/runs.jsonl")]
words = [r["in_vocab_words"] for r in runs if r["who"] == "gensim"][0]
a = [r for r in runs if r["who"] == "attn"]
g = [r for r in runs if r["who"] == "gensim"]
a_cpu = [words / r["cpu_s"] for r in a]; g_cpu = [words / r["cpu_s"] for r in g]
a_wall = [words / r["train_s"] for r in a]; g_wall = [words / r["train_s"] for r in g]
med = statistics.median
res = {"model": model, "repeats": len(a), "words": words, "attn_words_per_cpu_s": a_cpu,
       "gensim_words_per_cpu_s": g_cpu, "attn_words_per_s": a_wall, "gensim_words_per_s": g_wall,
       "ratio_cpu_median": med(a_cpu) / med(g_cpu), "ratio_wall_median": med(a_wall) / med(g_wall)}
json.dump(res, open(out + "/speed.json", "w"), indent=1)
print("| %s, 1 thread, 1 epoch | attn | gensim | ratio |" % model)
print("|---|---|---|---|")
print("| words/s by CPU time (median of %d) | %.0f | %.0f | %.2fx |" % (len(a), med(a_cpu), med(g_cpu), res["ratio_cpu_median"]))
print("| words/s by wall time (median of %d) | %.0f | %.0f | %.2fx |" % (len(a), med(a_wall), med(g_wall), res["ratio_wall_median"]))
print("each run, CPU words/s: attn %s; gensim %s" % (", ".join("%.0f" % x for x in a_cpu), ", ".join("%.0f" % x for x in g_cpu)))
PYEOF
