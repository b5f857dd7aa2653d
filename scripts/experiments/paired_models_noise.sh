#!/usr/bin/env bash
# paired_models_noise.sh: is the difference in held-out bits/byte between two
# language models larger than the noise of the held-out text? (issue 14,
# docs/long_context.md "All-attention: the learning rate and a longer
# budget".) The companion of long_context_memory_noise.sh, which compares one
# model at two evaluation memories; this one compares two models on the same
# bytes.
#
# Evaluates A and B (run directories of attn lm train) on each text of SPLIT
# at their own training settings, keeping every predicted byte's loss (attn
# lm eval --losses), then the paired difference d_i = loss_B(i) - loss_A(i)
# in bits (positive: B is worse) with the standard error of its mean, by
# batch means over consecutive blocks of 4,096 bytes (neighbouring bytes'
# differences are correlated, so the i.i.d. figure, also printed, is too
# small), and the two texts pooled (byte-weighted; the texts are
# independent).
#
# Environment: A, B (required), SPLIT (default "test valid"), THREADS (1),
# ATTN (build/attn), OUT (B/paired: the per-byte loss files and paired.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
A="${A:?A=run directory}"
B="${B:?B=run directory}"
SPLIT="${SPLIT:-test valid}"
THREADS="${THREADS:-1}"
ATTN="${ATTN:-build/attn}"
OUT="${OUT:-$B/paired}"
mkdir -p "$OUT"
for split in $SPLIT; do
    for side in A B; do
        model="${!side}"
        f="$OUT/losses-$split-$side.txt"
        if [ -s "$f" ] && [ "$f" -nt "$model/model.safetensors" ]; then continue; fi
        "$ATTN" lm eval --model "$model" --split "$split" --threads "$THREADS" --losses "$f.tmp" >&2
        mv "$f.tmp" "$f"
    done
done
/usr/bin/env python3 - "$OUT" "$A" "$B" $SPLIT <<'PY' | tee "$OUT/paired.md"
import math, sys
out, a_dir, b_dir, splits = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
BLOCK = 4096
def read(path):
    with open(path) as f:
        return [float(x) for x in f]
print(f"A = {a_dir}, B = {b_dir}; d = loss_B - loss_A per predicted byte (bits)\n")
print("| text | bytes | A bits/byte | B bits/byte | mean d | SE, i.i.d. | SE, blocks of 4,096 | d / SE |")
print("|---|---|---|---|---|---|---|---|")
tot_n, tot_d, tot_var = 0, 0.0, 0.0
for split in splits:
    la, lb = read(f"{out}/losses-{split}-A.txt"), read(f"{out}/losses-{split}-B.txt")
    if len(la) != len(lb) or not la:
        sys.exit(f"paired_models_noise.sh: {split}: {len(la)} and {len(lb)} losses (expected the same, > 0)")
    n = len(la)
    d = [y - x for x, y in zip(la, lb)]
    mean = sum(d) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
    blocks = [sum(d[i:i + BLOCK]) / len(d[i:i + BLOCK]) for i in range(0, n - BLOCK + 1, BLOCK)]
    k = len(blocks)
    bm = sum(blocks) / k
    se_b = math.sqrt(sum((v - bm) ** 2 for v in blocks) / (k - 1) / k)
    print(f"| {split} | {n} | {sum(la) / n:.4f} | {sum(lb) / n:.4f} | {mean:+.4f} | {sd / math.sqrt(n):.4f} | {se_b:.4f} | {mean / se_b:.1f} |")
    tot_n += n
    tot_d += mean * n
    tot_var += (n * se_b) ** 2
if len(splits) > 1:
    se = math.sqrt(tot_var) / tot_n
    print(f"| pooled | {tot_n} | | | {tot_d / tot_n:+.4f} | | {se:.4f} | {tot_d / tot_n / se:.1f} |")
PY
