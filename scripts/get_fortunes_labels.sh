#!/usr/bin/env bash
# get_fortunes_labels.sh: builds the labelled task of the BERT encoder
# (docs/bert.md) from the fortunes corpus of scripts/get_fortunes_data.sh:
# tell which fortune file a fortune came from, among six topics.
#
#   bash scripts/get_fortunes_labels.sh [--train-per-class N] [--quiet]
#
# Reads data/fortunes/{train,valid}.txt and data/fortunes/SOURCE (run
# scripts/get_fortunes_data.sh first); downloads nothing. The corpus keeps
# the fortunes of each file together, files in the order of SOURCE, whose
# per-file counts therefore give every fortune its file back.
#
# Classes (files of the `fortunes` package): computers, men-women, politics,
# science, songs-poems, work.
#
# Split, by the corpus's own hash: r = (FNV-1a-64(text) >> 32) % 20, the
# rule whose r == 0 is the language-model validation set:
#   test   r in {0, 1, 2}  (15%)
#   valid  r == 3          (5%)
#   pool   r >= 4; the labelled training set is the first N of each class
#          in the order of (FNV-1a-64(text), text) (default N = 250), so it
#          is balanced and the same on every machine.
# Pretraining text: the fortunes of data/fortunes/train.txt whose r is not
# 1, 2 or 3 (every file, not only the six). Together with r == 0 being out
# of train.txt, no test or valid fortune is ever seen in pretraining.
#
# Writes data/fortunes/labels/:
#   classes                one class name a line (label k is line k, from 0)
#   {train,valid,test}.txt fortunes in the fortune file format ('%' lines)
#   {train,valid,test}.labels  the label of each fortune, one a line
#   pretrain.txt           the pretraining text (fortune file format)
#   SOURCE                 counts per class and split
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IN="$ROOT/data/fortunes"
OUT="$IN/labels"
QUIET=0
PER_CLASS=250

while [ $# -gt 0 ]; do
    case "$1" in
    --quiet | -q) QUIET=1 ;;
    --train-per-class)
        [ $# -ge 2 ] || { echo "get_fortunes_labels.sh: --train-per-class needs a value" >&2; exit 2; }
        PER_CLASS="$2"
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "get_fortunes_labels.sh: unknown option '$1' (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done
case "$PER_CLASS" in
'' | *[!0-9]*) echo "get_fortunes_labels.sh: --train-per-class '$PER_CLASS': expected a number" >&2; exit 2 ;;
esac
for f in train.txt valid.txt SOURCE; do
    [ -f "$IN/$f" ] || { echo "get_fortunes_labels.sh: $IN/$f is missing (run scripts/get_fortunes_data.sh)" >&2; exit 1; }
done
mkdir -p "$OUT"

python3 - "$IN" "$OUT" "$PER_CLASS" "$QUIET" <<'PYEOF'
import os, sys

src, out, per_class, quiet = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == '1'
CLASSES = ['computers', 'men-women', 'politics', 'science', 'songs-poems', 'work']

def fnv1a64(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h

def fortunes(path):
    text = open(path, 'rb').read().decode('utf-8')
    items, chunk = [], []
    for line in text.split('\n'):
        if line == '%':
            items.append('\n'.join(chunk))
            chunk = []
        else:
            chunk.append(line)
    if any(l for l in chunk):
        sys.exit('get_fortunes_labels.sh: %s does not end with a %% line' % path)
    return items

files = []  # (package, file, n_train, n_valid) in corpus order
for line in open(os.path.join(src, 'SOURCE')):
    if line.startswith('#'):
        continue
    f = line.rstrip('\n').split('\t')
    if len(f) == 5:
        files.append((f[0], f[1], int(f[3]), int(f[4])))
split_items = {'train': fortunes(os.path.join(src, 'train.txt')),
               'valid': fortunes(os.path.join(src, 'valid.txt'))}
for split, col in (('train', 2), ('valid', 3)):
    want = sum(f[col] for f in files)
    if want != len(split_items[split]):
        sys.exit('get_fortunes_labels.sh: SOURCE counts %d %s fortunes, %s.txt has %d'
                 % (want, split, split, len(split_items[split])))

# Every fortune with its file and hash residue.
rows = []  # (text, file, r, h, lm_split)
for split, col in (('train', 2), ('valid', 3)):
    items, i = split_items[split], 0
    for f in files:
        for _ in range(f[col]):
            b = items[i].encode('utf-8')
            h = fnv1a64(b)
            r = (h >> 32) % 20
            if (r == 0) != (split == 'valid'):
                sys.exit('get_fortunes_labels.sh: a fortune of %s.txt has r = %d: not the corpus '
                         'split rule (rebuild data/fortunes)' % (split, r))
            rows.append((items[i], f[1] if f[0] == 'fortunes' else None, r, h, split))
            i += 1

names = [f[1] for f in files if f[0] == 'fortunes']
for c in CLASSES:
    if c not in names:
        sys.exit('get_fortunes_labels.sh: the corpus has no file %s' % c)

sets = {'train': [], 'valid': [], 'test': []}
pool = {c: [] for c in CLASSES}
for text, fname, r, h, _ in rows:
    if fname not in CLASSES:
        continue
    k = CLASSES.index(fname)
    if r <= 2:
        sets['test'].append((text, k))
    elif r == 3:
        sets['valid'].append((text, k))
    else:
        pool[fname].append((h, text, k))
short = [c for c in CLASSES if len(pool[c]) < per_class]
if short:
    sys.exit('get_fortunes_labels.sh: classes %s have fewer than %d training fortunes'
             % (', '.join(short), per_class))
for c in CLASSES:
    chosen = sorted(pool[c])[:per_class]
    # Keep the corpus order among the chosen (classes in turn would be as good).
    keep = set((h, t) for h, t, _ in chosen)
    sets['train'].extend((t, k) for h, t, k in pool[c] if (h, t) in keep)

def write(name, items):
    with open(os.path.join(out, name + '.txt'), 'wb') as f:
        for text, _ in items:
            f.write(text.encode('utf-8') + b'\n%\n')
    with open(os.path.join(out, name + '.labels'), 'w') as f:
        for _, k in items:
            f.write('%d\n' % k)

for name, items in sets.items():
    write(name, items)
pre = [t for t, _, r, _, s in rows if s == 'train' and r not in (1, 2, 3)]
with open(os.path.join(out, 'pretrain.txt'), 'wb') as f:
    for t in pre:
        f.write(t.encode('utf-8') + b'\n%\n')
with open(os.path.join(out, 'classes'), 'w') as f:
    for c in CLASSES:
        f.write(c + '\n')
with open(os.path.join(out, 'SOURCE'), 'w') as f:
    f.write('# fortune-file classification, built by scripts/get_fortunes_labels.sh (docs/bert.md)\n')
    f.write('# r = (FNV-1a-64(text) >> 32) %% 20: test r <= 2, valid r == 3, train: first %d of r >= 4 '
            'by hash\n' % per_class)
    f.write('# class\tlabel\ttrain\tvalid\ttest\tpool\n')
    for k, c in enumerate(CLASSES):
        n = [sum(1 for _, j in sets[s] if j == k) for s in ('train', 'valid', 'test')]
        f.write('%s\t%d\t%d\t%d\t%d\t%d\n' % (c, k, n[0], n[1], n[2], len(pool[c])))
    f.write('# pretrain.txt: %d fortunes, %d bytes (train.txt without r in {1, 2, 3})\n'
            % (len(pre), sum(len(t.encode('utf-8')) + 3 for t in pre)))
if not quiet:
    print(open(os.path.join(out, 'SOURCE')).read(), end='')
PYEOF
[ "$QUIET" = 1 ] || echo "fortunes-labels: wrote $OUT"
