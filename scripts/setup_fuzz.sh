#!/usr/bin/env bash
# setup_fuzz.sh: makes this machine ready for `make fuzz` (fuzz/, docs/testing.md).
#
#   bash scripts/setup_fuzz.sh [--quiet]
#
# The fuzz harnesses need clang and its libFuzzer runtime (with ASan and
# UBSan). On Debian 12 that is the package `clang` and `libclang-rt-dev`
# (libclang-rt-14-dev holds libclang_rt.fuzzer-x86_64.a). When the compiler
# cannot link a -fsanitize=fuzzer program and we are root with apt, they are
# installed (`apt-get update` first); otherwise it says what to install and
# exits 1. Running it twice is harmless. Non-interactive: works with CI=true
# and no standard input. CLANG (default clang) names the compiler to check.
set -euo pipefail

QUIET=0
for arg in "$@"; do
    case "$arg" in
    --quiet | -q) QUIET=1 ;;
    -h | --help)
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "setup_fuzz.sh: unknown option '$arg' (expected --quiet)" >&2
        exit 2
        ;;
    esac
done

CLANG="${CLANG:-clang}"
PKGS=(clang libclang-rt-dev)
export DEBIAN_FRONTEND=noninteractive

say() { if [ "$QUIET" = 0 ]; then echo "setup_fuzz: $*"; fi; }
warn() { echo "setup_fuzz: $*" >&2; }

# 0 if $CLANG links a libFuzzer program with ASan and UBSan.
fuzzer_ok() {
    command -v "$CLANG" >/dev/null 2>&1 || return 1
    local dir rc
    dir="$(mktemp -d)"
    printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
        >"$dir/t.c"
    if "$CLANG" -fsanitize=fuzzer,address,undefined "$dir/t.c" -o "$dir/t" >/dev/null 2>&1; then
        rc=0
    else
        rc=1
    fi
    rm -rf "$dir"
    return "$rc"
}

if fuzzer_ok; then
    say "$CLANG links libFuzzer programs (ASan + UBSan)"
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log="$(mktemp)"
    say "apt-get update"
    apt-get update -q </dev/null >"$log" 2>&1 || { warn "apt-get update failed:"; tail -n 5 "$log" >&2; }
    say "apt-get install ${PKGS[*]}"
    if ! apt-get install -y -q --no-install-recommends "${PKGS[@]}" </dev/null >"$log" 2>&1; then
        warn "apt-get install ${PKGS[*]} failed:"
        tail -n 10 "$log" >&2
    fi
    rm -f "$log"
    if fuzzer_ok; then
        say "installed ${PKGS[*]}"
        exit 0
    fi
fi
warn "$CLANG cannot build libFuzzer programs. Install clang and its runtime, e.g. (as root):"
warn "    apt-get install ${PKGS[*]}"
exit 1
