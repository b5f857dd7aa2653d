#!/usr/bin/env bash
# bench_seq2seq.sh: training tokens/s of attn's seq2seq model against the same
# model in PyTorch (bench/seq2seq_torch.py), same sizes, same threads, same
# machine, same run.
#
# For each configuration of a FIXED list (bahdanau+gru, general+gru,
# general+lstm; 1 and 2 threads) it runs the two programs interleaved
# (attn, pytorch, attn, pytorch, ...) RUNS times, takes the median tokens/s of
# each, and prints a table with the ratio attn / pytorch. A case whose runs
# spread by more than 10% of the median is marked "noisy" (another process
# shared the cores). Each run is a fresh process: WARMUP untimed steps, then
# STEPS timed ones (its tokens/s is the median over its steps), B=64, sources of 12-30 tokens, targets of 10 + eos, vocab
# 60 / 14, emb 64, hidden 128, bidirectional one-layer encoder.
#
# Threads: attn gets --threads N; PyTorch gets torch.set_num_threads(N). Both
# processes run with OMP_NUM_THREADS=N and OPENBLAS_NUM_THREADS=N (Debian's
# torch uses the system OpenBLAS, whose thread count torch.set_num_threads
# does not reach).
#
# Not part of the tests: it never fails (exit 0), says what is missing, and
# measures attn alone when PyTorch is absent.
#
# Usage: bash bench/bench_seq2seq.sh [--runs N] [--steps N] [--warmup N] [--wait S]
#                                    [--omp-wait passive|active|env] [--quick]
#   --omp-wait P  OMP_WAIT_POLICY for both programs: passive (the default),
#             active, or env (leave the environment's). With threads that spin
#             between parallel regions (libgomp's default), a 2-thread run on
#             2 cores collapses whenever anything else runs, and Debian's torch
#             spins two pools at once (its OpenMP threads and OpenBLAS's
#             pthreads) even on an idle machine; passive makes both sleep.
#   --wait S  before each run, wait up to S seconds for the cores to be idle
#             (under 10% busy over half a second); the "busy" column gives the
#             highest load seen just before a run of that case
#   --quick   1 run of 5 steps per case (a smoke test of the script)
# Environment: PYTHON (default /usr/bin/python3), BUILD (default build),
#   ATTN_BLAS and OPENBLAS_CORETYPE as for attn.
set -u

cd "$(dirname "$0")/.." || exit 0
RUNS=3
STEPS=20
WARMUP=3
WAIT=0
OMPWAIT=passive
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) RUNS="${2:-3}"; shift 2 ;;
    --steps) STEPS="${2:-20}"; shift 2 ;;
    --warmup) WARMUP="${2:-3}"; shift 2 ;;
    --wait) WAIT="${2:-0}"; shift 2 ;;
    --omp-wait) OMPWAIT="${2:-passive}"; shift 2 ;;
    --quick) RUNS=1; STEPS=5; WARMUP=1; shift ;;
    -h | --help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "bench_seq2seq.sh: unknown option '$1' (see --help)"; exit 0 ;;
    esac
done

PYTHON="${PYTHON:-/usr/bin/python3}"
[ "$OMPWAIT" = env ] || export OMP_WAIT_POLICY="$OMPWAIT"
BUILD="${BUILD:-build}"
BIN="$BUILD/bench/bench_seq2seq"
CONFIGS="bahdanau:gru general:gru general:lstm"
THREADS="1 2"

if [ ! -x "$BIN" ] || [ "$BIN" -ot bench/bench_seq2seq.c ]; then
    echo "building $BIN (make bench) ..."
    if ! make -s bench >/tmp/bench_seq2seq_make.$$ 2>&1; then
        echo "bench_seq2seq.sh: 'make bench' failed; the last lines:"
        tail -n 5 /tmp/bench_seq2seq_make.$$
        rm -f /tmp/bench_seq2seq_make.$$
        exit 0
    fi
    rm -f /tmp/bench_seq2seq_make.$$
fi
if [ ! -x "$BIN" ]; then
    echo "bench_seq2seq.sh: $BIN is missing after 'make bench'"
    exit 0
fi

BLAS=""
HAVE_TORCH=0
TORCH_VERSION=""
if command -v "$PYTHON" >/dev/null 2>&1 &&
    TORCH_VERSION="$("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null)"; then
    HAVE_TORCH=1
else
    echo "PyTorch is not available to $PYTHON: measuring attn alone."
    echo "  To compare, install it: apt-get install python3-torch (Debian's torch 1.13),"
    echo "  or pip install torch, then run with PYTHON=/path/to/that/python3."
fi

# Percent of the machine's CPU time spent busy over half a second (/proc/stat).
busy_pct() {
    local a b
    a=($(sed -n 's/^cpu  *//p' /proc/stat))
    sleep 0.5
    b=($(sed -n 's/^cpu  *//p' /proc/stat))
    awk -v a="${a[*]}" -v b="${b[*]}" 'BEGIN {
        n = split(a, x, " "); split(b, y, " "); t = 0
        for (i = 1; i <= n; i++) t += y[i] - x[i]
        idle = (y[4] - x[4]) + (y[5] - x[5])
        printf "%d", (t > 0) ? 100 * (t - idle) / t : 0 }'
}
# Waits (up to WAIT seconds) for an idle machine; prints the last busy %.
settle() {
    local start=$SECONDS p
    p="$(busy_pct)"
    while [ "$p" -ge 10 ] && [ $((SECONDS - start)) -lt "$WAIT" ]; do
        sleep 1
        p="$(busy_pct)"
    done
    echo "$p"
}

# tokens_per_s from a JSON line ("" if absent)
tps() { sed -n 's/.*"tokens_per_s": *\([0-9.eE+-]*\).*/\1/p' | head -n 1; }
# median of numbers on stdin, one per line
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# "noisy" if (max - min) / median > 10%
spread() { sort -g | awk '{v[NR] = $1} END {if (NR < 2) {print "-"; exit} m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; s = (v[NR] - v[1]) / m; printf "%.0f%%%s", 100 * s, (s > 0.10 ? " noisy" : "")}'; }

echo "machine: $(nproc) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "attn: $BIN; pytorch: ${TORCH_VERSION:-absent} ($PYTHON); runs $RUNS, warm-up $WARMUP, timed steps $STEPS, OMP_WAIT_POLICY ${OMP_WAIT_POLICY:-unset}"
echo
printf '| %-9s | %-4s | %-7s | %-13s | %-13s | %-12s | %-14s | %-14s | %-4s |\n' \
    attention cell threads "attn tok/s" "pytorch tok/s" "attn/pytorch" "attn spread" "pytorch spread" busy
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' ----------- ------ --------- --------------- --------------- \
    -------------- ---------------- ---------------- ------
for nt in $THREADS; do
    for c in $CONFIGS; do
        att="${c%%:*}"
        cell="${c##*:}"
        args=(--attention "$att" --cell "$cell" --threads "$nt" --warmup "$WARMUP" --steps "$STEPS")
        a_runs=""
        t_runs=""
        a_err=""
        t_err=""
        busy=0
        for _ in $(seq "$RUNS"); do
            p="$(settle)"
            [ "$p" -gt "$busy" ] && busy="$p"
            out="$(OMP_NUM_THREADS=$nt OPENBLAS_NUM_THREADS=$nt "$BIN" "${args[@]}" 2>&1)"
            v="$(printf '%s\n' "$out" | tps)"
            [ -z "$BLAS" ] && BLAS="$(printf '%s\n' "$out" | sed -n 's/.*"blas": "\([^"]*\)".*/\1/p')"
            if [ -n "$v" ]; then a_runs="$a_runs$v"$'\n'; else a_err="$(printf '%s\n' "$out" | tail -n 1)"; fi
            if [ "$HAVE_TORCH" = 1 ]; then
                p="$(settle)"
                [ "$p" -gt "$busy" ] && busy="$p"
                out="$(OMP_NUM_THREADS=$nt OPENBLAS_NUM_THREADS=$nt "$PYTHON" bench/seq2seq_torch.py "${args[@]}" 2>&1)"
                v="$(printf '%s\n' "$out" | tps)"
                if [ -n "$v" ]; then t_runs="$t_runs$v"$'\n'; else t_err="$(printf '%s\n' "$out" | tail -n 1)"; fi
            fi
        done
        a_med="$(printf '%s' "$a_runs" | median)"
        t_med="$(printf '%s' "$t_runs" | median)"
        ratio="-"
        if [ -n "$a_med" ] && [ -n "$t_med" ]; then
            ratio="$(awk -v a="$a_med" -v t="$t_med" 'BEGIN {printf "%.2fx", a / t}')"
        fi
        printf '| %-9s | %-4s | %-7s | %-13s | %-13s | %-12s | %-14s | %-14s | %-4s |\n' "$att" "$cell" "$nt" \
            "${a_med:-failed}" "${t_med:-$([ "$HAVE_TORCH" = 1 ] && echo failed || echo absent)}" "$ratio" \
            "$(printf '%s' "$a_runs" | spread)" "$(printf '%s' "$t_runs" | spread)" "$busy%"
        [ -n "$a_err" ] && echo "  attn failed: $a_err"
        [ -n "$t_err" ] && echo "  pytorch failed: $t_err"
    done
done
echo
echo "tokens/s: target tokens (eos included, padding excluded) per second of training steps"
echo "(forward, backward, clipping, AdamW); medians of $RUNS fresh processes each, interleaved;"
echo "spread = (max - min) / median; busy = the most CPU others used just before a run."
echo "attn's matrix library: ${BLAS:-unknown}; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit 0
