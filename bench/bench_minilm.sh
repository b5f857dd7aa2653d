#!/usr/bin/env bash
# bench_minilm.sh: sentences/s of `attn embed` against sentence-transformers
# (bench/minilm_torch.py) with all-MiniLM-L6-v2 on the CPU: same sentences,
# same threads, same batch size, same machine, same run (docs/minilm.md).
#
# The sentences: the first paragraphs of the docstrings of Python's standard
# library (N of them, default 1000; the generator of
# tools/make_minilm_fixtures.py), written to runs/minilm_bench/sentences.txt.
# Both programs tokenize and embed all of them (sorted by length into
# batches: sentence-transformers sorts too); each is run RUNS times,
# interleaved (attn, torch, attn, torch, ...), and the median sentences/s is
# reported with the ratio, for the wall clock and for the process CPU time
# (sentences per CPU second: on a machine shared with other jobs the wall
# clock mostly measures the others). Both get OMP_NUM_THREADS=THREADS,
# OMP_WAIT_POLICY=passive and RAYON_NUM_THREADS=THREADS (the Rust tokenizer).
#
# Not part of the tests: exit 0 when sentence-transformers is missing (attn
# alone is measured).
#
# --precision bf16 runs attn's products with bf16 operands and f32 sums (AMX
# where the CPU has it; docs/mixed_precision.md); sentence-transformers stays
# in float32 (its default), so that row compares what each gives by default
# against attn's faster mode: the table says so.
#
# Usage: bash bench/bench_minilm.sh [--threads N] [--batch N] [--runs N] [--n N] [--precision f32|bf16]
#   env ST_PYTHON (default /opt/torch2/bin/python), ST_PATH (default /opt/st)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
THREADS=1
BATCH=32
RUNS=3
N=1000
PREC=f32
while [ $# -gt 0 ]; do
    case "$1" in
    --threads) THREADS="$2"; shift ;;
    --batch) BATCH="$2"; shift ;;
    --runs) RUNS="$2"; shift ;;
    --n) N="$2"; shift ;;
    --precision) PREC="$2"; shift ;;
    -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_minilm.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done
ST_PYTHON="${ST_PYTHON:-/opt/torch2/bin/python}"
ST_PATH="${ST_PATH:-/opt/st}"
MODEL="$ROOT/data/minilm"
OUT="$ROOT/runs/minilm_bench"
mkdir -p "$OUT"
[ -f "$MODEL/model.safetensors" ] || bash "$ROOT/scripts/get_minilm.sh" --quiet
[ -x "$ROOT/build/attn" ] || make -C "$ROOT" -j2 >/dev/null

python3 -W ignore - "$N" "$OUT/sentences.txt" <<'PYEOF'
import importlib, sys
n, path = int(sys.argv[1]), sys.argv[2]
mods = ['os', 'sys', 'json', 're', 'math', 'collections', 'itertools', 'functools', 'string',
        'textwrap', 'difflib', 'heapq', 'bisect', 'random', 'statistics', 'fractions', 'decimal',
        'datetime', 'calendar', 'pathlib', 'shutil', 'tempfile', 'glob', 'csv', 'zipfile', 'tarfile',
        'gzip', 'hashlib', 'hmac', 'secrets', 'socket', 'subprocess', 'threading', 'queue',
        'argparse', 'logging', 'unittest', 'inspect', 'typing', 'enum', 'copy', 'pprint', 'struct',
        'codecs', 'unicodedata', 'locale', 'gettext', 'email', 'html', 'xml.dom.minidom',
        'urllib.parse', 'http.client', 'sqlite3', 'pickle', 'asyncio', 'ast', 'dis', 'io', 'time',
        'os.path', 'builtins', 'operator', 'contextlib', 'abc', 'numbers', 'array', 'weakref',
        'types', 'mimetypes', 'base64', 'binascii', 'quopri', 'uuid', 'ipaddress', 'selectors',
        'signal', 'mmap', 'ctypes', 'doctest', 'pdb', 'timeit', 'trace', 'tracemalloc', 'zlib', 'bz2', 'lzma']
seen, out = set(), []
for name in mods:
    try:
        mod = importlib.import_module(name)
    except Exception:
        continue
    for attr in sorted(dir(mod)):
        doc = getattr(getattr(mod, attr, None), '__doc__', None)
        if attr.startswith('_') or not isinstance(doc, str):
            continue
        para = ' '.join(doc.strip().split('\n\n')[0].split())
        if len(para) < 20 or para in seen:
            continue
        seen.add(para)
        out.append(para)
while len(out) < n:
    out += out
open(path, 'w', encoding='utf-8').write('\n'.join(out[:n]) + '\n')
PYEOF
WORDS=$(wc -w <"$OUT/sentences.txt")
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "minilm bench: $N sentences ($WORDS words), batch $BATCH, $THREADS thread(s), $CPU"

have_st=1
PYTHONPATH="$ST_PATH" "$ST_PYTHON" -c 'import sentence_transformers' 2>/dev/null || have_st=0
[ "$have_st" = 1 ] || echo "sentence-transformers not found (ST_PYTHON=$ST_PYTHON, ST_PATH=$ST_PATH): attn alone"
STDIR=$(mktemp -d)
trap 'rm -rf "$STDIR"' EXIT
cp "$MODEL"/{model.safetensors,vocab.txt,config.json,tokenizer_config.json,special_tokens_map.json,sentence_bert_config.json,modules.json} "$STDIR/"
mkdir -p "$STDIR/1_Pooling" && cp "$MODEL/pooling_config.json" "$STDIR/1_Pooling/config.json"

export OMP_NUM_THREADS="$THREADS" OMP_WAIT_POLICY=passive OPENBLAS_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
# the Rust tokenizer of sentence-transformers runs a batch on rayon threads: same thread count
export RAYON_NUM_THREADS="$THREADS" TOKENIZERS_PARALLELISM=false
a=() t=() ac=() tc=()
for r in $(seq "$RUNS"); do
    line=$("$ROOT/build/attn" embed "$OUT/sentences.txt" --threads "$THREADS" --batch "$BATCH" --precision "$PREC" --out /dev/null 2>&1 | tail -1)
    s=$(echo "$line" | sed -n 's/.* \([0-9.]*\) sentences\/s.*/\1/p')
    c=$(echo "$line" | sed -n 's/.* \([0-9.]*\) sentences per CPU second.*/\1/p')
    [ -n "$s" ] || { echo "attn embed failed: $line" >&2; exit 1; }
    a+=("$s") ac+=("$c")
    echo "  run $r: attn $s sentences/s, $c per CPU second"
    if [ "$have_st" = 1 ]; then
        line=$(PYTHONPATH="$ST_PATH" "$ST_PYTHON" "$ROOT/bench/minilm_torch.py" "$STDIR" "$OUT/sentences.txt" "$THREADS" "$BATCH" 2>/dev/null | tail -1)
        s=$(echo "$line" | sed -n 's/^sentences\/s \([0-9.]*\) cpu \([0-9.]*\).*/\1/p')
        c=$(echo "$line" | sed -n 's/^sentences\/s \([0-9.]*\) cpu \([0-9.]*\).*/\2/p')
        [ -n "$s" ] || { echo "sentence-transformers failed: $line" >&2; exit 1; }
        t+=("$s") tc+=("$c")
        echo "  run $r: sentence-transformers $s sentences/s, $c per CPU second"
    fi
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
ma=$(median "${a[@]}")
mac=$(median "${ac[@]}")
if [ "$have_st" = 1 ]; then
    mt=$(median "${t[@]}")
    mtc=$(median "${tc[@]}")
    ratio=$(awk -v a="$ma" -v t="$mt" 'BEGIN { printf "%.2f", a / t }')
    ratioc=$(awk -v a="$mac" -v t="$mtc" 'BEGIN { printf "%.2f", a / t }')
    tv=$(PYTHONPATH="$ST_PATH" "$ST_PYTHON" -c 'import torch, sentence_transformers as s; print("torch", torch.__version__, "sentence-transformers", s.__version__)')
    {
        printf '| sentences | batch | threads | measure | attn (%s) | sentence-transformers (f32) | ratio |\n|---|---|---|---|---|---|---|\n' "$PREC"
        printf '| %s | %s | %s | sentences/s (wall clock) | %s | %s | %sx |\n' "$N" "$BATCH" "$THREADS" "$ma" "$mt" "$ratio"
        printf '| %s | %s | %s | sentences per CPU second | %s | %s | %sx |\n' "$N" "$BATCH" "$THREADS" "$mac" "$mtc" "$ratioc"
        echo "($tv; CPU: $CPU; medians of $RUNS interleaved runs; load average $(cut -d' ' -f1 /proc/loadavg))"
    } | tee "$OUT/table.md"
else
    echo "attn: $ma sentences/s (median of $RUNS)"
fi
