#!/usr/bin/env bash
# get_fortunes_data.sh: builds the English prose corpus of the GPT language
# model from Debian's fortune cookie packages.
#
#   bash scripts/get_fortunes_data.sh [--quiet]
#
# 1. Downloads the packages below with `apt-get download` (no installation;
#    about 0.9 MB), asking for the pinned Debian 12 versions first and for
#    Debian's current version when a pinned one is gone from the mirror
#    (SOURCE records which one was used). `apt-get update` runs only when a
#    package cannot be found.
# 2. Unpacks each with dpkg-deb -x and reads its fortune files
#    (usr/share/games/fortunes/NAME; not the NAME.dat indexes, not the
#    NAME.u8 links, not the `off/` offensive sets, not ascii-art (drawings)
#    nor translate-me (Latin)).
# 3. Cuts each file into fortunes at the lines that are exactly '%', and
#    normalises every fortune: the bytes must be valid UTF-8, tabs are
#    expanded to the next multiple of 8 columns, trailing spaces of each line
#    and blank lines at both ends are removed; a fortune with another control
#    character (C0 such as backspace overstrikes, DEL, or C1 U+0080-U+009F,
#    which only occur in doubly encoded text) or that is empty is dropped,
#    and so is a fortune identical to an earlier one.
# 4. Splits by a hash of the normalised text: valid when
#    (FNV-1a-64(text) >> 32) % 20 == 0, else train (5% valid).
# 5. Writes data/fortunes/{train,valid}.txt in the fortune file format (each
#    fortune followed by a line '%'), files in name order (package, then
#    file), fortunes in file order; and data/fortunes/SOURCE (packages,
#    versions, files, counts, bytes).
# Needs apt-get, dpkg-deb and python3; root only when a package must be
# downloaded into a root-owned directory or apt-get update must run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/data/fortunes"
QUIET=0

while [ $# -gt 0 ]; do
    case "$1" in
    --quiet | -q) QUIET=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "get_fortunes_data.sh: unknown option '$1' (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done

# PACKAGE=PINNED_VERSION. Debian 12 (bookworm), checked 2026-11.
PKGS=(
    fortunes-min=1:1.99.1-7.3
    fortunes=1:1.99.1-7.3
)
EXCLUDE="ascii-art translate-me"

export DEBIAN_FRONTEND=noninteractive
say() { if [ "$QUIET" = 0 ]; then echo "fortunes-data: $*"; fi; }
die() {
    echo "fortunes-data: $*" >&2
    exit 1
}
for tool in apt-get apt-cache dpkg-deb python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done

APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" = 0 ]; then
        [ "$(id -u)" = 0 ] || die "apt-get update needs root (run as root, or with sudo)"
        say "apt-get update"
        apt-get update -q </dev/null >/dev/null 2>&1 || echo "fortunes-data: apt-get update failed" >&2
        APT_UPDATED=1
    fi
}
# The pinned version when the archive has it, else the candidate; empty when unknown.
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

WORK="$(mktemp -d "${TMPDIR:-/tmp}/attn-fortunes.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/debs" "$OUT"
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
    [ "$v" = "$pinned" ] || echo "fortunes-data: $pkg $pinned is gone from the archive; using $v" >&2
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
    mkdir -p "$WORK/x/$pkg"
    dpkg-deb -x "$deb" "$WORK/x/$pkg"
    echo "${spec#*=}" >"$WORK/x/$pkg.version"
done

# The package list in the order of PKGS (which is the order of the output).
order=""
for spec in "${specs[@]}"; do order+="${spec%%=*} "; done

python3 - "$WORK/x" "$OUT" "$EXCLUDE" $order <<'PYEOF'
import os, sys

xdir, out, exclude = sys.argv[1], sys.argv[2], set(sys.argv[3].split())
pkgs = sys.argv[4:]

def fnv1a64(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h

def normalise(lines):
    res = []
    for line in lines:
        col, s = 0, []
        for ch in line:
            if ch == '\t':
                n = 8 - col % 8
                s.append(' ' * n)
                col += n
            else:
                s.append(ch)
                col += 1
        res.append(''.join(s).rstrip(' '))
    while res and res[0] == '':
        res.pop(0)
    while res and res[-1] == '':
        res.pop()
    text = '\n'.join(res)
    if not text or any((ord(c) < 32 and c != '\n') or 0x7f <= ord(c) <= 0x9f for c in text):
        return None
    return text

seen = set()
splits = {'train': [], 'valid': []}
files = []
dropped = {'control': 0, 'duplicate': 0, 'encoding': 0}
for pkg in pkgs:
    version = open(os.path.join(xdir, pkg + '.version')).read().strip()
    d = os.path.join(xdir, pkg, 'usr/share/games/fortunes')
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if (name.endswith('.dat') or name.endswith('.u8') or name in exclude
                or os.path.islink(path) or not os.path.isfile(path)):
            continue
        raw = open(path, 'rb').read()
        try:
            text = raw.decode('utf-8')
        except UnicodeDecodeError:
            dropped['encoding'] += 1
            continue
        kept = [0, 0]
        chunk = []
        for line in text.split('\n') + ['%']:
            if line != '%':
                chunk.append(line)
                continue
            body, blank, chunk = normalise(chunk), not any(l.strip() for l in chunk), []
            if body is None:
                if not blank:
                    dropped['control'] += 1
                continue
            if body in seen:
                dropped['duplicate'] += 1
                continue
            seen.add(body)
            b = body.encode('utf-8')
            valid = (fnv1a64(b) >> 32) % 20 == 0
            splits['valid' if valid else 'train'].append(b)
            kept[valid] += 1
        files.append((pkg, version, name, len(raw), kept[0], kept[1]))

for split, items in splits.items():
    with open(os.path.join(out, split + '.txt'), 'wb') as f:
        for b in items:
            f.write(b + b'\n%\n')

with open(os.path.join(out, 'SOURCE'), 'w') as f:
    f.write('# English fortunes, built by scripts/get_fortunes_data.sh (docs/data.md)\n')
    f.write('# packages (apt-get download)\n')
    for pkg in pkgs:
        f.write('%s\t%s\n' % (pkg, open(os.path.join(xdir, pkg + '.version')).read().strip()))
    f.write('# files: package, file, bytes, fortunes train, fortunes valid\n')
    for pkg, version, name, size, tr, va in files:
        f.write('%s\t%s\t%d\t%d\t%d\n' % (pkg, name, size, tr, va))
    f.write('# dropped fortunes: %s\n' % ', '.join('%s %d' % kv for kv in dropped.items()))
    f.write('# splits: name, fortunes, bytes, characters\n')
    for split, items in splits.items():
        size = sum(len(b) + 3 for b in items)
        chars = sum(len(b.decode('utf-8')) + 3 for b in items)
        f.write('%s\t%d\t%d\t%d\n' % (split, len(items), size, chars))
PYEOF

say "wrote $OUT:"
[ "$QUIET" = 1 ] || sed -n '/^# splits/,$p' "$OUT/SOURCE" | sed 's/^/  /'
