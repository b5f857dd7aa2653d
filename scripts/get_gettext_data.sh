#!/usr/bin/env bash
# get_gettext_data.sh: builds the English -> German and English -> French
# parallel data sets from Debian's gettext catalogs (.mo files).
#
#   bash scripts/get_gettext_data.sh [--small] [--with-system] [--langs "de fr"] [--quiet]
#
# 1. Downloads the named Debian packages below with `apt-get download` (no
#    installation; about 170 MB, or 1.7 MB with --small: LibreOffice only),
#    asking for the pinned versions first and Debian's current version when a
#    pinned one is gone from the mirror (SOURCE records which one was used).
#    `apt-get update` runs only when a package cannot be found.
# 2. Unpacks each package with dpkg-deb -x into a temporary directory and
#    keeps only its */LANG/LC_MESSAGES/*.mo files, in
#    data/gettext-cache/pkgs/PACKAGE/ (gitignored); a package already there
#    at the same version is not downloaded again.
# 3. Runs `build/attn data gettext --lang LANG` over that cache and, with
#    --with-system, also over the catalogs already in /usr/share/locale, writing
#    data/gettext/en-LANG/{train,valid,test}.tsv and catalogs.tsv.
# 4. Writes data/gettext/SOURCE: the packages and versions used (those of
#    /usr/share/locale found with dpkg -S), clean pairs per package, and the
#    pair counts per split; prints the counts.
# By default the data set depends only on the pinned packages, so it is the
# same on every machine (the splits every table of docs/ uses); --with-system
# also takes whatever catalogs this machine has installed (more pairs, but
# they differ between machines). Non-interactive (CI=true, no standard input); needs
# root for apt-get only when a package is not cached yet.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/data/gettext-cache"
OUT="$ROOT/data/gettext"
ATTN="$ROOT/build/attn"
LANGS="de fr"
SMALL=0
SYSTEM=0
QUIET=0

while [ $# -gt 0 ]; do
    case "$1" in
    --small) SMALL=1 ;;
    --no-system) SYSTEM=0 ;; # the default; kept for old command lines
    --with-system) SYSTEM=1 ;;
    --langs)
        [ $# -ge 2 ] || { echo "get_gettext_data.sh: --langs needs a value" >&2; exit 2; }
        LANGS="$2"
        shift
        ;;
    --quiet | -q) QUIET=1 ;;
    -h | --help)
        sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "get_gettext_data.sh: unknown option '$1' (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done

# PACKAGE=PINNED_VERSION. Versions of Debian 12 (bookworm), checked 2026-11.
PKGS=(
    libreoffice-l10n-de=4:7.4.7-1+deb12u14
    libreoffice-l10n-fr=4:7.4.7-1+deb12u14
)
if [ "$SMALL" = 0 ]; then
    for c in httt utbs nr trow did low dm sof sota sotbe tsg ei l dw thot ttb; do
        PKGS+=("wesnoth-1.16-$c=1:1.16.9-1")
    done
    PKGS+=(
        gcc-12-locales=12.2.0-14+deb12u1
        gnucash-common=1:4.13-1
        freeciv-data=3.0.6-1+deb12u1
    )
fi

export DEBIAN_FRONTEND=noninteractive
say() { if [ "$QUIET" = 0 ]; then echo "gettext-data: $*"; fi; }
die() {
    echo "gettext-data: $*" >&2
    exit 1
}

for tool in apt-get apt-cache dpkg-deb; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing: this script needs Debian's apt and dpkg"
done

# The language directories whose catalogs we keep, as a find(1) expression.
lang_expr=()
for l in $LANGS; do
    case "$l" in
    *[!A-Za-z_@]* | "") die "language '$l': expected a locale name such as de or fr" ;;
    esac
    [ ${#lang_expr[@]} -gt 0 ] && lang_expr+=(-o)
    lang_expr+=(-path "*/$l/LC_MESSAGES/*.mo")
done

APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" = 0 ]; then
        [ "$(id -u)" = 0 ] || die "apt-get update needs root (run as root, or with sudo)"
        say "apt-get update"
        apt-get update -q </dev/null >/dev/null 2>&1 || echo "gettext-data: apt-get update failed" >&2
        APT_UPDATED=1
    fi
}

# The version apt would download for PKG=VERSION: VERSION when the archive
# still has it, else the candidate; empty when the package is unknown.
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

mkdir -p "$CACHE/pkgs" "$CACHE/debs"
declare -A VERSION
to_fetch=()
for spec in "${PKGS[@]}"; do
    pkg="${spec%%=*}"
    pinned="${spec#*=}"
    stamp="$CACHE/pkgs/$pkg/VERSION"
    cached=""
    [ -f "$stamp" ] && cached="$(cat "$stamp")"
    if [ -n "$cached" ] && [ "$cached" = "$pinned" ]; then
        VERSION[$pkg]="$cached"
        continue
    fi
    v="$(resolve_version "$pkg" "$pinned")"
    if [ -z "$v" ] && [ -n "$cached" ]; then
        VERSION[$pkg]="$cached" # apt knows nothing newer: keep what we have
        continue
    fi
    if [ -z "$v" ]; then
        apt_update_once
        v="$(resolve_version "$pkg" "$pinned")"
    fi
    [ -n "$v" ] || die "Debian package $pkg is unknown to apt (is deb.debian.org bookworm in the sources?)"
    [ "$v" = "$pinned" ] || echo "gettext-data: $pkg $pinned is gone from the archive; using $v" >&2
    if [ "$cached" = "$v" ]; then
        VERSION[$pkg]="$v"
        continue
    fi
    VERSION[$pkg]="$v"
    to_fetch+=("$pkg=$v")
done

DL_BYTES=0
DL_SECS=0
if [ ${#to_fetch[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || [ -w "$CACHE/debs" ] || die "cannot write $CACHE/debs"
    say "downloading ${#to_fetch[@]} packages: ${to_fetch[*]%%=*}"
    rm -f "$CACHE/debs/"*.deb
    t0=$(date +%s.%N)
    # The sandbox user _apt cannot write into a root-owned directory: download
    # as the caller instead (the warning apt prints otherwise is harmless).
    if ! (cd "$CACHE/debs" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "${to_fetch[@]}" </dev/null >"$CACHE/debs/log" 2>&1); then
        apt_update_once
        (cd "$CACHE/debs" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "${to_fetch[@]}" </dev/null >"$CACHE/debs/log" 2>&1) || {
            tail -n 5 "$CACHE/debs/log" >&2
            die "apt-get download failed"
        }
    fi
    t1=$(date +%s.%N)
    DL_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    DL_BYTES=$(cat "$CACHE/debs/"*.deb | wc -c)
    say "downloaded $(awk -v b="$DL_BYTES" 'BEGIN { printf "%.1f", b / 1e6 }') MB in $DL_SECS s"
    for spec in "${to_fetch[@]}"; do
        pkg="${spec%%=*}"
        deb=$(ls "$CACHE/debs/${pkg}_"*.deb 2>/dev/null | head -n 1)
        [ -n "$deb" ] || die "apt-get download gave no .deb for $pkg"
        tmp="$(mktemp -d "$CACHE/unpack.XXXXXX")"
        dpkg-deb -x "$deb" "$tmp"
        rm -rf "$CACHE/pkgs/$pkg"
        mkdir -p "$CACHE/pkgs/$pkg"
        # Keep only the catalogs of our languages, with their paths (the
        # builder needs .../LANG/LC_MESSAGES/); links are copied as files.
        (cd "$tmp" && find . \( "${lang_expr[@]}" \) \( -type f -o -type l \) -print0 |
            xargs -0 -r cp -L --parents -t "$CACHE/pkgs/$pkg")
        rm -rf "$tmp" "$deb"
        echo "${VERSION[$pkg]}" >"$CACHE/pkgs/$pkg/VERSION"
        say "$pkg ${VERSION[$pkg]}: $(find "$CACHE/pkgs/$pkg" -name '*.mo' | wc -l) catalogs"
    done
else
    say "all ${#PKGS[@]} packages already in $CACHE/pkgs"
fi

if [ ! -x "$ATTN" ]; then
    say "building $ATTN"
    make -C "$ROOT" -s build/attn >/dev/null
fi

dirs=(--mo-dir "$CACHE/pkgs")
[ "$SYSTEM" = 1 ] && [ -d /usr/share/locale ] && dirs+=(--mo-dir /usr/share/locale)
mkdir -p "$OUT"
declare -A REPORT
for l in $LANGS; do
    say "building en-$l"
    REPORT[$l]="$("$ATTN" data gettext --lang "$l" "${dirs[@]}" --out "$OUT")" ||
        die "attn data gettext --lang $l failed"
    [ "$QUIET" = 0 ] && printf '%s\n' "${REPORT[$l]}" | sed 's/^/  /'
done

# The manifest: which package each catalog came from, and the counts.
{
    echo "# gettext parallel data (English -> $LANGS), built by scripts/get_gettext_data.sh"
    echo "# Format of the splits: 'source<TAB>target' lines, no header. docs/data.md has the rules."
    echo "# packages downloaded (apt-get download; .mo files only):"
    for spec in "${PKGS[@]}"; do
        pkg="${spec%%=*}"
        printf '%s\t%s\n' "$pkg" "${VERSION[$pkg]}"
    done
    declare -A installed=()
    for l in $LANGS; do
        cat="$OUT/en-$l/catalogs.tsv"
        # The package of every catalog: its cache directory, or dpkg -S for
        # the catalogs of /usr/share/locale.
        declare -A owner=()
        sys=$(awk -F'\t' -v c="$CACHE/pkgs/" 'index($1, c) != 1 && $3 == "ok" && $5 > 0 { print $1 }' "$cat")
        if [ -n "$sys" ]; then
            while IFS= read -r line; do
                case "$line" in *": "/*) ;; *) continue ;; esac
                p="${line%%: /*}"
                f="/${line#*: /}"
                owner[$f]="${p%%,*}"
            done < <(printf '%s\n' "$sys" | xargs -d '\n' dpkg -S 2>/dev/null || true)
        fi
        echo "# en-$l: clean pairs (before deduplication) per package"
        rows=""
        while IFS=$'\t' read -r path domain status messages clean; do
            [ "$status" = ok ] || continue
            case "$path" in
            "$CACHE/pkgs/"*)
                rest="${path#"$CACHE/pkgs/"}"
                pkg="${rest%%/*}"
                ;;
            *)
                pkg="${owner[$path]:-unowned}"
                if [ "$clean" -gt 0 ] && [ "$pkg" != unowned ]; then installed[$pkg]=1; fi
                ;;
            esac
            rows+="$pkg"$'\t'"$clean"$'\n'
        done <"$cat"
        printf '%s' "$rows" | awk -F'\t' -v l="$l" '{ n[$1] += $2 } END { for (p in n) if (n[p] > 0) printf "en-%s\t%s\t%d\n", l, p, n[p] }' | sort
        unset owner
    done
    if [ "${#installed[@]}" -gt 0 ]; then
        echo "# versions of the installed packages above (from /usr/share/locale; dpkg-query):"
        for p in $(printf '%s\n' "${!installed[@]}" | sort); do
            printf '%s\t%s\n' "$p" "$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo '?')"
        done
    fi
    echo "# pairs per split"
    for l in $LANGS; do
        for s in train valid test; do
            printf 'en-%s\t%s\t%d\n' "$l" "$s" "$(wc -l <"$OUT/en-$l/$s.tsv")"
        done
    done
    if [ "$DL_BYTES" != 0 ]; then
        echo "# this run downloaded $DL_BYTES bytes in $DL_SECS s"
    fi
} >"$OUT/SOURCE"

echo "gettext-data: pairs per split (train / valid / test), in $OUT:"
for l in $LANGS; do
    printf '  en-%s: %d / %d / %d\n' "$l" "$(wc -l <"$OUT/en-$l/train.tsv")" \
        "$(wc -l <"$OUT/en-$l/valid.tsv")" "$(wc -l <"$OUT/en-$l/test.tsv")"
done
