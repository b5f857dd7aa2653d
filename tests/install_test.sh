#!/usr/bin/env bash
# install_test.sh [BUILD_DIR]: `make install` into a temporary prefix (and
# once more with DESTDIR), then builds tests/install/consumer.c OUTSIDE the
# tree with `pkg-config --cflags --libs attn` (shared library) and with
# `pkg-config --static` (libattn.a), runs both, checks the soname chain and
# the installed CLI, then `make uninstall` and checks that no file is left.
# Prints one line per check and "install: N passed, N failed". Seconds.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
passed=0
failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1" >&2; failed=$((failed + 1)); }
check() { local name="$1"; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

VERSION=$(sed -n 's/^#define ATTN_VERSION_STRING "\(.*\)"/\1/p' include/attn/info.h)
ABI=$(sed -n 's/^#define ATTN_ABI_VERSION \([0-9][0-9]*\).*/\1/p' include/attn/info.h)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/attn_install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PREFIX="$TMP/prefix"
WORK="$TMP/consumer"
mkdir -p "$WORK"
cp tests/install/consumer.c "$WORK/"

echo "+ make install BUILD=$BUILD PREFIX=$PREFIX"
if make -s install BUILD="$BUILD" PREFIX="$PREFIX" >"$TMP/install.log" 2>&1; then
    ok "make install"
else
    cat "$TMP/install.log" >&2
    bad "make install"
    echo "install: $passed passed, $((failed + 1)) failed"
    exit 1
fi
L="$PREFIX/lib"
check "libattn.so.$VERSION is a file" test -f "$L/libattn.so.$VERSION" -a ! -L "$L/libattn.so.$VERSION"
check "libattn.so.$ABI -> libattn.so.$VERSION" test "$(readlink "$L/libattn.so.$ABI")" = "libattn.so.$VERSION"
check "libattn.so -> libattn.so.$ABI" test "$(readlink "$L/libattn.so")" = "libattn.so.$ABI"
if command -v readelf >/dev/null 2>&1; then
    check "soname is libattn.so.$ABI" grep -q "Library soname: \[libattn.so.$ABI\]" <(readelf -d "$L/libattn.so.$VERSION")
fi
check "headers installed" test -f "$PREFIX/include/attn/attn.h" -a -f "$PREFIX/include/attn/sdpa.h"
check "libattn.a installed" test -f "$L/libattn.a"
check "attn.pc installed" test -f "$L/pkgconfig/attn.pc"
check "installed CLI prints abi $ABI" grep -q "^abi: *$ABI " <("$PREFIX/bin/attn" info)

export PKG_CONFIG_PATH="$L/pkgconfig"
if ! command -v pkg-config >/dev/null 2>&1; then
    bad "pkg-config is not installed (apt-get install pkgconf)"
else
    check "pkg-config --modversion attn = $VERSION" test "$(pkg-config --modversion attn)" = "$VERSION"
    CC="${CC:-cc}"
    # The shared build (-lm is the program's own: sinf): the program records libattn.so.$ABI and finds it in the prefix.
    if (cd "$WORK" && $CC -std=c11 -Wall -Wextra -Werror -o consumer_shared consumer.c \
            $(pkg-config --cflags --libs attn) -lm) 2>"$TMP/cc.log"; then
        ok "build with pkg-config --cflags --libs attn"
        check "consumer_shared needs libattn.so.$ABI" grep -q "NEEDED.*\[libattn.so.$ABI\]" <(readelf -d "$WORK/consumer_shared" 2>/dev/null)
        check "consumer_shared runs" env LD_LIBRARY_PATH="$L" "$WORK/consumer_shared"
    else
        cat "$TMP/cc.log" >&2
        bad "build with pkg-config --cflags --libs attn"
    fi
    # The static build: Libs.private added, and libattn.a taken over
    # libattn.so (-Bstatic around -lattn: both are in the prefix, and the
    # linker prefers the shared one); no libattn.so is needed at run time.
    if (cd "$WORK" && $CC -std=c11 -Wall -Wextra -Werror -o consumer_static consumer.c \
            $(pkg-config --static --cflags --libs attn | sed 's/-lattn/-Wl,-Bstatic -lattn -Wl,-Bdynamic/') -lm) \
            2>"$TMP/cc.log"; then
        ok "build with pkg-config --static --cflags --libs attn"
        check "consumer_static does not need libattn.so" bash -c "! readelf -d '$WORK/consumer_static' | grep -q 'NEEDED.*libattn'"
        check "consumer_static runs" "$WORK/consumer_static"
    else
        cat "$TMP/cc.log" >&2
        bad "build with pkg-config --static --cflags --libs attn"
    fi
fi

echo "+ make uninstall PREFIX=$PREFIX"
make -s uninstall BUILD="$BUILD" PREFIX="$PREFIX" >/dev/null 2>&1
check "make uninstall leaves no file" test -z "$(find "$PREFIX" ! -type d)"

# DESTDIR: a staged install (as a package build does) puts the files under
# DESTDIR while attn.pc names the final PREFIX.
STAGE="$TMP/stage"
make -s install BUILD="$BUILD" PREFIX=/opt/attn DESTDIR="$STAGE" >/dev/null 2>&1
check "DESTDIR install" test -f "$STAGE/opt/attn/lib/libattn.so.$VERSION" -a -f "$STAGE/opt/attn/include/attn/attn.h"
check "attn.pc names PREFIX, not DESTDIR" grep -qx "prefix=/opt/attn" "$STAGE/opt/attn/lib/pkgconfig/attn.pc"
make -s uninstall BUILD="$BUILD" PREFIX=/opt/attn DESTDIR="$STAGE" >/dev/null 2>&1
check "DESTDIR uninstall leaves no file" test -z "$(find "$STAGE" ! -type d)"

echo "install: $passed passed, $failed failed"
[ "$failed" = 0 ]
