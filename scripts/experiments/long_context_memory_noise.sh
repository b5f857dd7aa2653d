#!/usr/bin/env bash
# long_context_memory_noise.sh: is a Transformer-XL's change of test
# bits/byte between two evaluation memories larger than the noise of the
# test text? (issue 14, docs/long_context.md "A 20,000-step run".)
#
# Evaluates MODEL on SPLIT with each memory of MEMS, keeping every predicted
# byte's loss (attn lm eval --losses), then for each consecutive pair of
# memories a -> b the paired difference d_i = loss_b(i) - loss_a(i) (bits;
# negative: the longer memory helps) and the standard error of its mean:
#
#   - "iid": sd(d) / sqrt(n), as if the bytes were independent (too small:
#     neighbouring bytes' differences are correlated);
#   - "blocks of B": the batch-means estimate, the text cut into n / B
#     consecutive blocks of B bytes, sd(block means) / sqrt(blocks), for B
#     64, 512 and 4,096 (it grows with B while the blocks are correlated and
#     settles once they are not; the largest B is the figure to quote, with
#     few blocks it is itself noisy);
#   - the difference per page (<page> of the XML): whether one page carries
#     the whole change.
#
# Environment: MODEL (a run directory of attn lm train, required), MEMS
# (default "64 256 512"), SPLIT (test; "test valid": both, and the two
# texts pooled: the byte-weighted mean difference and its standard error
# from each text's, the texts being independent), BYTES (0: the whole text; N: the
# first N bytes), THREADS (1), ATTN (build/attn), OUT (MODEL/noise: the
# per-byte loss files and noise.md). Cost: one evaluation per memory (the
# whole wiki test.txt at memory 512: about a minute of one core).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL="${MODEL:?MODEL=run directory}"
MEMS="${MEMS:-64 256 512}"
SPLIT="${SPLIT:-test}"
BYTES="${BYTES:-0}"
THREADS="${THREADS:-1}"
ATTN="${ATTN:-build/attn}"
OUT="${OUT:-$MODEL/noise}"
mkdir -p "$OUT"
for split in $SPLIT; do
    for m in $MEMS; do
        f="$OUT/losses-$split-bytes$BYTES-m$m.txt"
        if [ -s "$f" ] && [ "$f" -nt "$MODEL/model.safetensors" ]; then continue; fi
        "$ATTN" lm eval --model "$MODEL" --split "$split" --bytes "$BYTES" --mem-len "$m" --threads "$THREADS" \
            --losses "$f.tmp" >&2
        mv "$f.tmp" "$f"
    done
done
data=$(sed -n 's/.*"data":"\([^"]*\)".*/\1/p' "$MODEL/train.jsonl" | head -n 1)
[ -n "$data" ] || data=data/wiki
/usr/bin/env python3 - "$OUT" "$SPLIT" "$BYTES" "$data" $MEMS <<'PY' >"$OUT/noise.md"
import math, sys
out, splits, nbytes, data, mems = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4], sys.argv[5:]
pooled = {}  # (a, b) -> [sum of d, bytes, sum of (bytes * SE)^2]
for split in splits:
  text_path = f"{data}/{split}.txt"
  loss = {}
  for m in mems:
      with open(f"{out}/losses-{split}-bytes{nbytes}-m{m}.txt") as f:
          loss[m] = [float(x) for x in f]
  n = len(loss[mems[0]])
  text = open(text_path, "rb").read()[: n + 1]
  # page starts: loss i predicts byte i + 1, so byte j's loss is index j - 1
  starts = [0]  # the text's first page starts at its first bytes
  j = text.find(b"<page>", 64)
  while 0 <= j <= n:
      starts.append(j - 1)
      j = text.find(b"<page>", j + 1)
  starts.append(n)

  def mean(xs):
      return sum(xs) / len(xs)

  def se_blocks(d, b):
      k = len(d) // b
      if k < 2:
          return float("nan"), k
      ms = [mean(d[i * b:(i + 1) * b]) for i in range(k)]
      mu = mean(ms)
      return math.sqrt(sum((x - mu) ** 2 for x in ms) / (k - 1) / k), k

  print(f"# Evaluation memory: paired differences ({split}, {n} predicted bytes)\n")
  print("| memory | " + " | ".join(mems) + " |")
  print("|---" * (len(mems) + 1) + "|")
  print("| bits/byte | " + " | ".join(f"{mean(loss[m]):.4f}" for m in mems) + " |\n")
  print("| memories a -> b | mean(b - a) bits/byte | SE iid | SE blocks of 64 | 512 | 4096 | mean / SE(4096) |")
  print("|---|---|---|---|---|---|---|")
  for a, b in zip(mems, mems[1:]):
      d = [y - x for x, y in zip(loss[a], loss[b])]
      mu = mean(d)
      sd = math.sqrt(sum((x - mu) ** 2 for x in d) / (n - 1))
      ses = [se_blocks(d, bs) for bs in (64, 512, 4096)]
      cells = " | ".join(f"{s:.4f} ({k} blocks)" if k >= 2 else f"- ({k} block)" for s, k in ses)
      ratio = f"{mu / ses[-1][0]:+.1f}" if ses[-1][1] >= 2 and ses[-1][0] > 0 else "-"
      print(f"| {a} -> {b} | {mu:+.4f} | {sd / math.sqrt(n):.4f} | {cells} | {ratio} |")
      acc = pooled.setdefault((a, b), [0.0, 0, 0.0])
      acc[0] += sum(d)
      acc[1] += n
      acc[2] += (n * ses[-1][0]) ** 2 if ses[-1][1] >= 2 else float("nan")
  print("\nPer page (bytes; mean(b - a) bits/byte for each pair):\n")
  print("| page | bytes | " + " | ".join(f"{a} -> {b}" for a, b in zip(mems, mems[1:])) + " |")
  print("|---|---|" + "---|" * (len(mems) - 1))
  for p in range(len(starts) - 1):
      s, e = starts[p], starts[p + 1]
      if e <= s:
          continue
      row = [f"{mean([y - x for x, y in zip(loss[a][s:e], loss[b][s:e])]):+.4f}" for a, b in zip(mems, mems[1:])]
      print(f"| {p} | {e - s} | " + " | ".join(row) + " |")
  print()
if len(splits) > 1:  # the texts are independent: SE of the byte-weighted mean from each one's SE
    print(f"# Pooled over {' + '.join(splits)}\n")
    print("| memories a -> b | mean(b - a) bits/byte | bytes | SE (blocks of 4096) | mean / SE |")
    print("|---|---|---|---|---|")
    for (a, b), (tot, n, v) in pooled.items():
        se = math.sqrt(v) / n
        print(f"| {a} -> {b} | {tot / n:+.5f} | {n} | {se:.5f} | {tot / n / se:+.1f} |")
PY
cat "$OUT/noise.md"
