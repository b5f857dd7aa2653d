#!/usr/bin/env bash
# python/run_tests.sh: the Python package's tests (part of .ci/run; `make
# python-test`). Installs the package from the repository root with pip
# (`pip install .`: setup.py builds libattn.a with make, in the build
# directory an earlier `make` filled, then the extension) into a temporary
# directory, runs pytest on python/tests/ against that installed copy, and
# prints "python: N passed, N failed, N skipped". Needs numpy and pytest
# (Debian's python3-numpy and python3-pytest: scripts/setup.sh installs
# them); the PyTorch tests are one counted skip when torch cannot be
# imported, and the translator's test when the CLI (ATTN_CLI, default
# build/attn) is not built. Offline: no build isolation, no index.
#   PYTHON=/path/to/python3 (default /usr/bin/python3, else python3)
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-/usr/bin/python3}"
[ -x "$PY" ] || PY=python3
missing=()
for mod in numpy pytest pip setuptools; do
    "$PY" -c "import $mod" 2>/dev/null || missing+=("$mod")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "python/run_tests.sh: $PY cannot import: ${missing[*]} (as root: bash scripts/setup.sh, or apt-get install python3-numpy python3-pytest python3-pip python3-setuptools python3-dev)" >&2
    echo "python: 0 passed, 1 failed"
    exit 1
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/attn_py.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
echo "+ $PY -m pip install --no-build-isolation --no-deps --no-index --target $TMP/site ."
if ! "$PY" -m pip install --no-build-isolation --no-deps --no-index --no-cache-dir --disable-pip-version-check \
        --target "$TMP/site" . >"$TMP/pip.log" 2>&1; then
    tail -n 30 "$TMP/pip.log" >&2
    echo "python: 0 passed, 1 failed"
    exit 1
fi
echo "+ $PY -m pytest python/tests"
# the translator's test compares with the CLI of the same build
export ATTN_CLI="${ATTN_CLI:-$PWD/${ATTN_BUILD:-build}/attn}"
PYTHONPATH="$TMP/site" "$PY" -m pytest -q -p no:cacheprovider -rs --junitxml="$TMP/junit.xml" python/tests
rc=$?
"$PY" - "$TMP/junit.xml" "$rc" <<'PYEOF'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception as e:  # pytest did not get as far as the report
    print(f"python/run_tests.sh: no pytest report ({e})", file=sys.stderr)
    print("python: 0 passed, 1 failed")
    sys.exit(1)
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
n = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
k = sum(int(s.get("skipped", 0)) for s in suites)
if f == 0 and int(sys.argv[2]) != 0:
    f = 1  # pytest failed without a failing test (a collection or usage error)
print(f"python: {n - f - k} passed, {f} failed, {k} skipped")
sys.exit(1 if f else 0)
PYEOF
