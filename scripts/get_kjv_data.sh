#!/usr/bin/env bash
# get_kjv_data.sh: builds the King James Bible byte-level corpus, the second
# corpus of the long-context language models (issue 14, docs/long_context.md).
#
#   bash scripts/get_kjv_data.sh [--quiet] [--force]
#
# 1. Downloads Debian's bible-kjv-text (the text database) and bible-kjv
#    (the `bible` program) with `apt-get download` (no installation; about
#    2.5 MB), the pinned Debian 12 version first, Debian's current one when
#    it is gone (SOURCE records which); `apt-get update` runs only when a
#    package cannot be found.
# 2. Unpacks both with dpkg-deb -x and exports the whole text with the
#    package's own program: `bible -p DIR/usr/lib -l0 gen1:1-rev22:21`
#    (4,298,239 bytes with 4.38: each chapter is a blank line, a heading
#    "Book N", a blank line, then one line per verse "  V text").
# 3. Cuts the export into chapters (each from the blank line before its
#    heading to the line before the next one) and splits them by a hash of
#    the heading: h = FNV-1a-64(heading) >> 32; h % 20 == 0 -> test,
#    == 1 -> valid, else train (5% / 5% / 90% of the 1,189 chapters).
# 4. Writes data/kjv/{train,valid,test}.txt (the chapters' bytes in Bible
#    order) and data/kjv/SOURCE (packages, versions, the command, the
#    split rule, chapters and bytes of each split, SHA-256s).
# Idempotent: when data/kjv/SOURCE exists and the three splits match the
# sizes it records, nothing is done (--force rebuilds). Needs apt-get,
# apt-cache, dpkg-deb and python3; root only when apt-get update must run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/data/kjv"
QUIET=0
FORCE=0
# PACKAGE=PINNED_VERSION. Debian 12 (bookworm), checked 2026-12.
PKGS=(bible-kjv-text=4.38 bible-kjv=4.38)
RANGE="gen1:1-rev22:21"

while [ $# -gt 0 ]; do
    case "$1" in
    --quiet | -q) QUIET=1 ;;
    --force) FORCE=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "get_kjv_data.sh: unknown option '$1' (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done

export DEBIAN_FRONTEND=noninteractive
say() { if [ "$QUIET" = 0 ]; then echo "kjv-data: $*"; fi; }
die() {
    echo "kjv-data: $*" >&2
    exit 1
}
for tool in apt-get apt-cache dpkg-deb python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done

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

APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" = 0 ]; then
        [ "$(id -u)" = 0 ] || die "apt-get update needs root (run as root, or with sudo)"
        say "apt-get update"
        apt-get update -q </dev/null >/dev/null 2>&1 || echo "kjv-data: apt-get update failed" >&2
        APT_UPDATED=1
    fi
}
resolve_version() {
    local pkg="$1" pinned="$2" versions
    versions="$(apt-cache madison "$pkg" 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}')"
    if [ -z "$versions" ]; then
        echo ""
    elif printf '%s\n' "$versions" | grep -qxF "$pinned"; then
        echo "$pinned"
    else
        printf '%s\n' "$versions" | head -n 1
    fi
}

WORK="$(mktemp -d "${TMPDIR:-/tmp}/attn-kjv.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/debs" "$WORK/x" "$OUT"
specs=()
for spec in "${PKGS[@]}"; do
    pkg="${spec%%=*}"
    pinned="${spec#*=}"
    v="$(resolve_version "$pkg" "$pinned")"
    if [ -z "$v" ]; then
        apt_update_once
        v="$(resolve_version "$pkg" "$pinned")"
    fi
    [ -n "$v" ] || die "Debian package $pkg is unknown to apt (is deb.debian.org bookworm in the sources?)"
    [ "$v" = "$pinned" ] || echo "kjv-data: $pkg $pinned is gone from the archive; using $v" >&2
    specs+=("$pkg=$v")
done
say "downloading ${specs[*]}"
if ! (cd "$WORK/debs" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "${specs[@]}" </dev/null >"$WORK/log" 2>&1); then
    apt_update_once
    (cd "$WORK/debs" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "${specs[@]}" </dev/null >"$WORK/log" 2>&1) || {
        tail -n 5 "$WORK/log" >&2
        die "apt-get download failed"
    }
fi
for spec in "${specs[@]}"; do
    pkg="${spec%%=*}"
    deb=$(ls "$WORK/debs/${pkg}_"*.deb 2>/dev/null | head -n 1)
    [ -n "$deb" ] || die "apt-get download gave no .deb for $pkg"
    dpkg-deb -x "$deb" "$WORK/x"
done
[ -x "$WORK/x/usr/bin/bible" ] || die "bible-kjv has no usr/bin/bible"
"$WORK/x/usr/bin/bible" -p "$WORK/x/usr/lib" -l0 "$RANGE" </dev/null >"$WORK/kjv.txt" ||
    die "bible -p ... -l0 $RANGE failed"

python3 - "$WORK/kjv.txt" "$OUT" "$RANGE" "${specs[@]}" <<'PYEOF'
import hashlib, os, sys

src, out, rng = sys.argv[1:4]
specs = sys.argv[4:]
text = open(src, 'rb').read()

def fnv1a64(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h

lines = text.split(b'\n')
# a heading: a non-empty line that does not start with a space, after a blank line
starts = [i for i in range(1, len(lines))
          if lines[i] and not lines[i].startswith(b' ') and lines[i - 1] == b'']
if len(starts) < 1000:
    sys.exit("kjv-data: only %d chapter headings in the export" % len(starts))
chapters = []
for n, i in enumerate(starts):
    end = starts[n + 1] - 1 if n + 1 < len(starts) else len(lines)
    block = b'\n'.join(lines[i - 1:end])
    if end < len(lines):
        block += b'\n'
    chapters.append((lines[i], block))
if b''.join(b for _, b in chapters) != text[text.index(chapters[0][1]):]:
    sys.exit("kjv-data: the chapters do not cover the export")
splits = {'train': [], 'valid': [], 'test': []}
for head, block in chapters:
    h = (fnv1a64(head) >> 32) % 20
    splits['test' if h == 0 else 'valid' if h == 1 else 'train'].append((head, block))
for s, items in splits.items():
    tmp = os.path.join(out, s + '.txt.tmp')
    with open(tmp, 'wb') as f:
        f.write(b''.join(b for _, b in items))
    os.replace(tmp, os.path.join(out, s + '.txt'))
tmp = os.path.join(out, 'SOURCE.tmp')
with open(tmp, 'w') as f:
    f.write('# King James Bible, byte-level splits by chapter, built by scripts/get_kjv_data.sh\n')
    f.write('# packages (apt-get download)\n')
    for spec in specs:
        f.write('%s\t%s\n' % tuple(spec.split('=', 1)))
    f.write('command\tbible -p <bible-kjv>/usr/lib -l0 %s\n' % rng)
    f.write('export\t%d bytes\tsha256\t%s\n' % (len(text), hashlib.sha256(text).hexdigest()))
    f.write('# split rule: h = FNV-1a-64(chapter heading) >> 32; h % 20 == 0 test, 1 valid, else train\n')
    f.write('# splits: name, chapters, bytes, sha256\n')
    for s, items in splits.items():
        data = b''.join(b for _, b in items)
        f.write('%s\t%d\t%d\t%s\n' % (s, len(items), len(data), hashlib.sha256(data).hexdigest()))
    for s in ('valid', 'test'):
        f.write('# %s chapters: %s\n' % (s, ', '.join(h.decode() for h, _ in splits[s])))
os.replace(tmp, os.path.join(out, 'SOURCE'))
PYEOF

say "wrote $OUT:"
[ "$QUIET" = 1 ] || grep -E '^(train|valid|test)	' "$OUT/SOURCE" | sed 's/^/  /'
