#!/usr/bin/env bash
# get_wiki_data.sh: builds the Wikipedia byte-level language-model corpus
# (enwik8-style) of the long-context models (issue 14, docs/long_context.md).
#
#   bash scripts/get_wiki_data.sh [--quiet] [--force]
#
# 1. Downloads the gensim 4.4.0 distribution from PyPI with
#    `pip download --no-deps gensim==4.4.0` (a wheel, which is a zip, or the
#    source archive; about 28 MB) into data/wiki/download/, kept for later
#    runs.
# 2. Extracts gensim/test/test_data/
#    enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2
#    (it decompresses to 6,089,746 bytes of raw Wikipedia XML, 206 pages, the format of the
#    enwik8 benchmark) and decompresses it.
# 3. Cuts the XML into the header (everything before the first <page>), the
#    pages (each from the line holding <page> through the line holding
#    </page>, raw bytes) and the trailer; splits the pages by a hash of
#    their title (the bytes between <title> and </title>):
#    h = FNV-1a-64(title) >> 32; h % 20 == 0 -> test, == 1 -> valid, else
#    train (5% / 5% / 90% of the pages); header and trailer go to train.
# 4. Writes data/wiki/{train,valid,test}.txt (the raw bytes of their pages,
#    in file order: a byte-level corpus, markup included as in enwik8) and
#    data/wiki/SOURCE (the distribution file and its SHA-256, the member,
#    its SHA-256, the split rule, pages and bytes of each split, and the
#    titles of the valid and test pages).
# Idempotent: when data/wiki/SOURCE exists and the three splits match the
# sizes it records, nothing is done (--force rebuilds); the downloaded file
# is reused when present. Needs python3 with pip (or pip3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/data/wiki"
QUIET=0
FORCE=0
MEMBER="gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
MEMBER_SHA256="a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d" # checked before use

while [ $# -gt 0 ]; do
    case "$1" in
    --quiet | -q) QUIET=1 ;;
    --force) FORCE=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "get_wiki_data.sh: unknown option '$1' (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done

say() { if [ "$QUIET" = 0 ]; then echo "wiki-data: $*"; fi; }
die() {
    echo "wiki-data: $*" >&2
    exit 1
}
command -v python3 >/dev/null 2>&1 || die "python3 is missing"

# Already built and intact?
if [ "$FORCE" = 0 ] && [ -f "$OUT/SOURCE" ] &&
    python3 - "$OUT" <<'PYEOF'; then
import os, sys
out = sys.argv[1]
want = {}
for line in open(os.path.join(out, 'SOURCE')):
    f = line.rstrip('\n').split('\t')
    if len(f) == 4 and f[0] in ('train', 'valid', 'test'):
        want[f[0]] = int(f[2])
ok = len(want) == 3 and all(
    os.path.isfile(os.path.join(out, s + '.txt')) and
    os.path.getsize(os.path.join(out, s + '.txt')) == n for s, n in want.items())
sys.exit(0 if ok else 1)
PYEOF
    say "$OUT is already built (SOURCE and the three splits agree); --force rebuilds"
    exit 0
fi

PIP=()
if python3 -m pip --version >/dev/null 2>&1; then
    PIP=(python3 -m pip)
elif command -v pip3 >/dev/null 2>&1; then
    PIP=(pip3)
else
    die "pip is missing (apt-get install python3-pip)"
fi

mkdir -p "$OUT/download"
dist=$(ls "$OUT/download"/gensim-4.4.0* 2>/dev/null | head -n 1 || true)
if [ -z "$dist" ]; then
    say "pip download --no-deps gensim==4.4.0"
    "${PIP[@]}" download -q --no-deps --dest "$OUT/download" gensim==4.4.0 </dev/null >&2 ||
        die "pip download gensim==4.4.0 failed (is PyPI reachable?)"
    dist=$(ls "$OUT/download"/gensim-4.4.0* 2>/dev/null | head -n 1 || true)
    [ -n "$dist" ] || die "pip download gave no gensim-4.4.0 file in $OUT/download"
else
    say "reusing $dist"
fi

python3 - "$dist" "$MEMBER" "$OUT" "$MEMBER_SHA256" <<'PYEOF'
import bz2, hashlib, os, sys, tarfile, zipfile

dist, member, out, want_sha = sys.argv[1:5]
if zipfile.is_zipfile(dist):
    with zipfile.ZipFile(dist) as z:
        names = [n for n in z.namelist() if n.endswith(member)]
        if not names:
            sys.exit("wiki-data: %s has no %s" % (dist, member))
        raw = z.read(names[0])
else:
    with tarfile.open(dist) as t:
        names = [n for n in t.getnames() if n.endswith(member)]
        if not names:
            sys.exit("wiki-data: %s has no %s" % (dist, member))
        raw = t.extractfile(names[0]).read()
sha = hashlib.sha256(raw).hexdigest()
if want_sha and sha != want_sha:
    sys.exit("wiki-data: %s has SHA-256 %s, expected %s" % (member, sha, want_sha))
xml = bz2.decompress(raw)

def fnv1a64(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h

lines = xml.splitlines(keepends=True)
splits = {'train': [], 'valid': [], 'test': []}
titles = {'train': [], 'valid': [], 'test': []}
page, in_page, seen_page = [], False, False
trailer = []
for line in lines:
    if not in_page and b'<page>' in line:
        in_page, seen_page, page = True, True, [line]
        continue
    if in_page:
        page.append(line)
        if b'</page>' in line:
            block = b''.join(page)
            a = block.find(b'<title>')
            b = block.find(b'</title>')
            if a < 0 or b < a:
                sys.exit("wiki-data: a page without a <title>")
            title = block[a + 7:b]
            h = (fnv1a64(title) >> 32) % 20
            split = 'test' if h == 0 else 'valid' if h == 1 else 'train'
            splits[split].append(block)
            titles[split].append(title.decode('utf-8', 'replace'))
            in_page = False
        continue
    if seen_page:
        trailer.append(line)
    else:
        splits['train'].append(line)  # the header
if in_page:
    sys.exit("wiki-data: the last <page> is not closed")
splits['train'].extend(trailer)

os.makedirs(out, exist_ok=True)
for s, parts in splits.items():
    tmp = os.path.join(out, s + '.txt.tmp')
    with open(tmp, 'wb') as f:
        f.write(b''.join(parts))
    os.replace(tmp, os.path.join(out, s + '.txt'))
dsha = hashlib.sha256(open(dist, 'rb').read()).hexdigest()
tmp = os.path.join(out, 'SOURCE.tmp')
with open(tmp, 'w') as f:
    f.write('# Wikipedia XML, enwik8-style byte-level splits, built by scripts/get_wiki_data.sh\n')
    f.write('distribution\t%s\tsha256\t%s\n' % (os.path.basename(dist), dsha))
    f.write('member\t%s\tsha256\t%s\n' % (member, sha))
    f.write('xml_bytes\t%d\n' % len(xml))
    f.write('# split rule: h = FNV-1a-64(title bytes) >> 32; h % 20 == 0 test, 1 valid, else train;\n')
    f.write('# the header before the first <page> and the trailer after the last go to train\n')
    f.write('# splits: name, pages, bytes, sha256\n')
    for s, parts in splits.items():
        data = b''.join(parts)
        f.write('%s\t%d\t%d\t%s\n' % (s, len(titles[s]), len(data), hashlib.sha256(data).hexdigest()))
    for s in ('valid', 'test'):
        f.write('# %s titles: %s\n' % (s, ' | '.join(titles[s])))
os.replace(tmp, os.path.join(out, 'SOURCE'))
PYEOF

say "wrote $OUT:"
[ "$QUIET" = 1 ] || grep -E '^(train|valid|test)	' "$OUT/SOURCE" | sed 's/^/  /'
