#!/usr/bin/env bash
# get_debian_graph.sh: data/debgraph/Packages, the APT index of Debian's
# main archive (the package graph of attn graph train, include/attn/deb_graph.h):
# the uncompressed text of the machine's own apt list
# (/var/lib/apt/lists/*_main_binary-<arch>_Packages.lz4, or .xz / .gz /
# plain), written atomically. Runs `apt-get update` first when no list is
# there and we are root. The largest list wins (the release's main, not its
# security or updates lists). Prints what it wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=data/debgraph
mkdir -p "$OUT"
pick() { ls -S /var/lib/apt/lists/*_main_binary-*_Packages* 2>/dev/null | head -n 1 || true; }
LIST=$(pick)
if [ -z "$LIST" ] && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    LIST=$(pick)
fi
[ -n "$LIST" ] || { echo "get_debian_graph.sh: no APT Packages list in /var/lib/apt/lists (run apt-get update)" >&2; exit 1; }
TMP="$OUT/Packages.tmp.$$"
trap 'rm -f "$TMP"' EXIT
case "$LIST" in
*.lz4) if command -v lz4 >/dev/null; then lz4 -dc "$LIST" >"$TMP"; else /usr/lib/apt/apt-helper cat-file "$LIST" >"$TMP"; fi ;;
*.xz) xz -dc "$LIST" >"$TMP" ;;
*.gz) gzip -dc "$LIST" >"$TMP" ;;
*) cp "$LIST" "$TMP" ;;
esac
[ -s "$TMP" ] && grep -q '^Package: ' "$TMP" || { echo "get_debian_graph.sh: $LIST did not decompress to a Packages index" >&2; exit 1; }
mv "$TMP" "$OUT/Packages"
echo "$LIST" >"$OUT/SOURCE"
echo "get_debian_graph.sh: $OUT/Packages: $(grep -c '^Package: ' "$OUT/Packages") packages from $LIST"
