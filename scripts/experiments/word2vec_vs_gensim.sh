#!/usr/bin/env bash
# word2vec_vs_gensim.sh [MODEL]: attn's word2vec against gensim 4.4.0's
# (the oracle of issue 16 part 3, docs/word2vec.md). MODEL is skipgram
# (default) or cbow. Both train on data/word2vec/train.txt
# (scripts/get_word2vec_data.sh: Wikipedia pages of the gensim wheel + the
# KJV, text8-style normalisation, 1.46M words) with the same settings and ONE
# thread / worker: dim 100, window 5, negative 5, min_count 5, sample 1e-3,
# $EPOCHS epochs (5), alpha 0.025 (CBOW 0.05) falling linearly to alpha *
# 1e-4, seed $SEED (1). One run at a time (attn first, then gensim). Then each
# model's vectors are scored twice: by attn (`attn word2vec eval`) and by
# gensim's evaluators (tools/word2vec_gensim.py eval on the text vectors),
# on questions-words.txt (analogies, 3CosAdd over the 300,000 most frequent
# words), wordsim353.tsv and simlex999.txt (Spearman), counting the
# questions and pairs the vocabulary covers.
#
# Speed: words/s = in-vocabulary corpus words x epochs / training seconds,
# both as wall time and as process CPU time (this machine is shared: the
# CPU-time figure is the one that does not depend on the other jobs).
# Writes $OUT/results.md and $OUT/results.json (OUT: runs/word2vec-vs-gensim-MODEL-sSEED).
#
# Environment: ATTN_FLAGS (more flags for attn word2vec train, e.g.
# --skip-saturated), EPOCHS (5), SEED (1), REUSE_GENSIM (1: keep $OUT/gensim.json
# and $OUT/gensim/ from an earlier run of the same settings, since gensim's
# side does not depend on attn's code; 0 retrains it), GENSIM_PATH (/opt/gensim: pip install --target
# /opt/gensim gensim==4.4.0), PYTHON (python3), BUILD (build).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL="${1:-skipgram}"
EPOCHS="${EPOCHS:-5}"
SEED="${SEED:-1}"
REUSE_GENSIM="${REUSE_GENSIM:-1}"
GENSIM_PATH="${GENSIM_PATH:-/opt/gensim}"
PYTHON="${PYTHON:-python3}"
BUILD="${BUILD:-build}"
OUT="${OUT:-runs/word2vec-vs-gensim-$MODEL-s$SEED}"
DATA=data/word2vec
case "$MODEL" in
skipgram) FLAGS=() ; GFLAGS=() ;;
cbow) FLAGS=(--cbow) ; GFLAGS=(--cbow) ;;
*) echo "word2vec_vs_gensim.sh: MODEL is skipgram or cbow, not '$MODEL'" >&2; exit 2 ;;
esac
[ -s "$DATA/train.txt" ] || bash scripts/get_word2vec_data.sh --quiet
PYTHONPATH="$GENSIM_PATH" "$PYTHON" -c 'import gensim' 2>/dev/null ||
    { echo "word2vec_vs_gensim.sh: gensim is not importable from $GENSIM_PATH (pip install --target $GENSIM_PATH gensim==4.4.0)" >&2; exit 1; }
make -s BUILD="$BUILD" "$BUILD/attn"
mkdir -p "$OUT"

echo "attn word2vec train ($MODEL, $EPOCHS epochs, 1 thread)..." >&2
"$BUILD/attn" word2vec train ${ATTN_FLAGS:-} --text "$DATA/train.txt" --out "$OUT/attn" --force --quiet --threads 1 \
    --epochs "$EPOCHS" --dim 100 --window 5 --negative 5 --min-count 5 --sample 1e-3 --seed "$SEED" "${FLAGS[@]}" \
    --eval-dir "$DATA" >"$OUT/attn.txt"
if [ "$REUSE_GENSIM" = 1 ] && [ -s "$OUT/gensim.json" ] && [ -s "$OUT/gensim/vectors.txt" ] &&
    [ "$OUT/gensim/vectors.txt" -nt "$DATA/train.txt" ]; then
    echo "gensim: reusing $OUT/gensim.json (REUSE_GENSIM=0 retrains)" >&2
else
    echo "gensim Word2Vec ($MODEL, $EPOCHS epochs, workers=1)..." >&2
    PYTHONPATH="$GENSIM_PATH" "$PYTHON" tools/word2vec_gensim.py train --text "$DATA/train.txt" --out "$OUT/gensim" \
        --epochs "$EPOCHS" --dim 100 --window 5 --negative 5 --min-count 5 --sample 1e-3 --seed "$SEED" \
        "${GFLAGS[@]}" --eval-dir "$DATA" >"$OUT/gensim.json"
fi
echo "cross-scoring (attn's evaluator on gensim's vectors, gensim's on attn's)..." >&2
"$BUILD/attn" word2vec eval --vectors "$OUT/gensim/vectors.txt" --eval-dir "$DATA" >"$OUT/gensim_by_attn.txt"
PYTHONPATH="$GENSIM_PATH" "$PYTHON" tools/word2vec_gensim.py eval --vectors "$OUT/attn/vectors.txt" \
    --eval-dir "$DATA" >"$OUT/attn_by_gensim.json"

"$PYTHON" - "$OUT" "$MODEL" "$EPOCHS" <<'PYEOF'
import json, re, sys
out, model, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
log = [json.loads(l) for l in open(out + "/attn/train.jsonl")]
start = [r for r in log if r["type"] == "start"][0]
end = [r for r in log if r["type"] == "end"][0]
ev = {r["set"]: r for r in log if r["type"] == "eval"}
g = json.load(open(out + "/gensim.json"))
ag = json.load(open(out + "/attn_by_gensim.json"))
ga = open(out + "/gensim_by_attn.txt").read()
def attn_txt(txt):
    r = {}
    m = re.search(r"analogies .*: ([0-9.na]+)% correct \((\d+) of (\d+)", txt)
    if m: r["analogy_accuracy"], r["analogy_covered"] = float(m.group(1)), int(m.group(2))
    for k in ("wordsim353", "simlex999"):
        m = re.search(k + r"\.\w+: Spearman ([-0-9.na]+) \((\d+) of (\d+)", txt)
        if m: r[k + "_spearman"], r[k + "_covered"] = float(m.group(1)), int(m.group(2))
    return r
ga = attn_txt(ga)
words = start["train_words"] * epochs
a = {"words_per_s": words / end["train_s"], "words_per_cpu_s": words / end["cpu_s"], "train_s": end["train_s"],
     "cpu_s": end["cpu_s"], "vocab": start["vocab"], "in_vocab_words": start["train_words"],
     "analogy_accuracy": ev["questions-words"]["accuracy"], "analogy_covered": ev["questions-words"]["covered"],
     "analogy_questions": ev["questions-words"]["questions"],
     "wordsim353_spearman": ev["wordsim353.tsv"]["spearman"], "wordsim353_covered": ev["wordsim353.tsv"]["covered"],
     "wordsim353_pairs": ev["wordsim353.tsv"]["pairs"],
     "simlex999_spearman": ev["simlex999.txt"]["spearman"], "simlex999_covered": ev["simlex999.txt"]["covered"],
     "simlex999_pairs": ev["simlex999.txt"]["pairs"]}
res = {"model": model, "epochs": epochs, "attn": a, "gensim": g, "attn_scored_by_gensim": ag,
       "gensim_scored_by_attn": ga}
res["checks"] = {
    "analogy_diff_points": a["analogy_accuracy"] - g["analogy_accuracy"],
    "wordsim_diff": a["wordsim353_spearman"] - g["wordsim353_spearman"],
    "speed_ratio_wall": a["words_per_s"] / g["words_per_s"],
    "speed_ratio_cpu": a["words_per_cpu_s"] / g["words_per_cpu_s"],
}
c = res["checks"]
c["analogy_within_2_points"] = abs(c["analogy_diff_points"]) <= 2
c["wordsim_within_0.03"] = abs(c["wordsim_diff"]) <= 0.03
c["speed_1.5x_cpu"] = c["speed_ratio_cpu"] >= 1.5
json.dump(res, open(out + "/results.json", "w"), indent=1)
L = ["# word2vec: attn against gensim %s (%s, %d epochs, 1 thread)" % (g["gensim"], model, epochs), "",
     "Corpus data/word2vec/train.txt: %d in-vocabulary words, vocabulary %d (min_count 5); gensim vocabulary %d." %
     (a["in_vocab_words"], a["vocab"], g["vocab"]), "",
     "| | attn | gensim | attn's vectors scored by gensim | gensim's vectors scored by attn |",
     "|---|---|---|---|---|",
     "| analogy accuracy (%%) | %.2f | %.2f | %.2f | %.2f |" % (a["analogy_accuracy"], g["analogy_accuracy"],
        ag["analogy_accuracy"], ga.get("analogy_accuracy", float("nan"))),
     "| analogy questions covered | %d of %d | %d of %d | %d | %d |" % (a["analogy_covered"], a["analogy_questions"],
        g["analogy_covered"], g["analogy_questions"], ag["analogy_covered"], ga.get("analogy_covered", -1)),
     "| WordSim-353 Spearman | %.4f | %.4f | %.4f | %.4f |" % (a["wordsim353_spearman"], g["wordsim353_spearman"],
        ag["wordsim353_spearman"], ga.get("wordsim353_spearman", float("nan"))),
     "| WordSim-353 pairs covered | %d of %d | %d of %d | | |" % (a["wordsim353_covered"], a["wordsim353_pairs"],
        g["wordsim353_covered"], g["wordsim353_pairs"]),
     "| SimLex-999 Spearman | %.4f | %.4f | %.4f | %.4f |" % (a["simlex999_spearman"], g["simlex999_spearman"],
        ag["simlex999_spearman"], ga.get("simlex999_spearman", float("nan"))),
     "| SimLex-999 pairs covered | %d of %d | %d of %d | | |" % (a["simlex999_covered"], a["simlex999_pairs"],
        g["simlex999_covered"], g["simlex999_pairs"]),
     "| training wall s | %.1f | %.1f | | |" % (a["train_s"], g["train_s"]),
     "| training CPU s | %.1f | %.1f | | |" % (a["cpu_s"], g["cpu_s"]),
     "| words/s (wall) | %.0f | %.0f | | |" % (a["words_per_s"], g["words_per_s"]),
     "| words/s (CPU) | %.0f | %.0f | | |" % (a["words_per_cpu_s"], g["words_per_cpu_s"]),
     "",
     "Checks: analogy difference %+.2f points (within 2: %s); WordSim difference %+.4f (within 0.03: %s); "
     "speed ratio %.2fx by CPU time, %.2fx by wall time (>= 1.5x by CPU time: %s)." %
     (c["analogy_diff_points"], c["analogy_within_2_points"], c["wordsim_diff"], c["wordsim_within_0.03"],
      c["speed_ratio_cpu"], c["speed_ratio_wall"], c["speed_1.5x_cpu"])]
open(out + "/results.md", "w").write("\n".join(L) + "\n")
print("\n".join(L))
PYEOF
