#!/usr/bin/env bash
# fuzz/run.sh: builds the libFuzzer harnesses of fuzz/ and runs each for a
# bounded time (`make fuzz` calls it; docs/testing.md, "Fuzzing").
#
#   bash fuzz/run.sh [SECONDS]            default 60 per target (FUZZ_SECONDS)
#
# Environment: FUZZ_TARGETS (space-separated subset, e.g. "vocab mo"),
# FUZZ_BUILD (default build-fuzz), CLANG (default clang), FUZZ_RSS_MB
# (default 2048: the memory a single input may use; one allocation larger
# than it is a failure too, "malloc limit").
#
# 1. clang with libFuzzer: scripts/setup_fuzz.sh installs it when missing.
# 2. the library in $FUZZ_BUILD (clang, -O1, coverage for libFuzzer, ASan +
#    UBSan, UBSan errors fatal, no OpenMP), then one program per
#    fuzz/fuzz_<target>.c.
# 3. the seeds (fuzz/make_corpus.sh) in $FUZZ_BUILD/seeds/<target>.
# 4. each target in turn, one process, for SECONDS: new inputs go to
#    $FUZZ_BUILD/corpus/<target> (kept between runs, so a later run starts
#    where this one stopped), the seeds are read from seeds/<target>, the
#    dictionary fuzz/<dict>.dict is used. A crash, a leak, a UBSan report, an
#    input that takes over 10 s or exceeds the memory limit stops that target
#    and keeps the input in $FUZZ_BUILD/crashes/<target>/ (crash-<sha1>,
#    leak-..., timeout-..., oom-...); the run goes on with the next target.
# It prints one line per target (executions, exec/s, coverage: edges and
# features, corpus size), then "fuzz: N passed, N failed" (a target passes
# when its run ends without a finding), and exits 1 if any target failed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER="${1:-${FUZZ_SECONDS:-60}}"
B="${FUZZ_BUILD:-build-fuzz}"
CLANG="${CLANG:-clang}"
RSS="${FUZZ_RSS_MB:-2048}"
ALL=(safetensors safetensors_file checkpoint gpt_load bert_load s2s_load wavenet_load vocab mo idx lm_text bert_corpus pairs png deb_graph wordpiece)
read -r -a TARGETS <<<"${FUZZ_TARGETS:-${ALL[*]}}"
case "$SECONDS_PER" in '' | *[!0-9]*) echo "fuzz/run.sh: SECONDS must be a positive integer, got '$SECONDS_PER'" >&2; exit 2 ;; esac
[ "$SECONDS_PER" -ge 1 ] || { echo "fuzz/run.sh: SECONDS must be >= 1" >&2; exit 2; }

dict_of() {
    case "$1" in
    safetensors | safetensors_file | checkpoint | gpt_load | bert_load | s2s_load | wavenet_load) echo fuzz/safetensors.dict ;;
    vocab) echo fuzz/vocab.dict ;;
    mo) echo fuzz/mo.dict ;;
    idx) echo fuzz/idx.dict ;;
    png) echo fuzz/png.dict ;;
    deb_graph) echo fuzz/deb_graph.dict ;;
    *) echo fuzz/text.dict ;;
    esac
}

CLANG="$CLANG" bash scripts/setup_fuzz.sh --quiet

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
echo "== fuzz: building the library and the harnesses in $B/"
make -j2 --no-print-directory BUILD="$B" CC="$CLANG" OPENMP=0 OPT="-O1" \
    EXTRA_CFLAGS="-fsanitize=fuzzer-no-link $SAN" "$B/libattn.a"
FCFLAGS=(-std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wshadow -Wno-unused-parameter -Werror
         -Iinclude -g -O1 $SAN)
build() { # build OUT SRC [flags...]: when the source, the common header or the library is newer
    local out="$1" src="$2"
    shift 2
    if [ ! -x "$out" ] || [ "$src" -nt "$out" ] || [ fuzz/fuzz_common.h -nt "$out" ] || [ "$B/libattn.a" -nt "$out" ]; then
        echo "$CLANG ... $src -o $out"
        "$CLANG" "${FCFLAGS[@]}" "$@" "$src" "$B/libattn.a" -lm -ldl -o "$out"
    fi
}
build "$B/make_seeds" fuzz/make_seeds.c -fsanitize=fuzzer-no-link
for t in "${TARGETS[@]}"; do
    [ -f "fuzz/fuzz_$t.c" ] || { echo "fuzz/run.sh: no harness fuzz/fuzz_$t.c" >&2; exit 2; }
    build "$B/fuzz_$t" "fuzz/fuzz_$t.c" -fsanitize=fuzzer
done
bash fuzz/make_corpus.sh "$B/make_seeds" "$B/seeds"

echo "== fuzz: each target for ${SECONDS_PER} s"
failed=()
printf '%-17s %6s %10s %8s %6s %7s %8s  %s\n' target seconds executions exec/s cov ft corpus result
for t in "${TARGETS[@]}"; do
    mkdir -p "$B/corpus/$t" "$B/crashes/$t" "$B/seeds/$t"
    log="$B/fuzz_$t.log"
    set +e
    ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:symbolize=1" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
        "$B/fuzz_$t" -max_total_time="$SECONDS_PER" -timeout=10 -rss_limit_mb="$RSS" \
        -print_final_stats=1 -dict="$(dict_of "$t")" \
        -artifact_prefix="$B/crashes/$t/" "$B/corpus/$t" "$B/seeds/$t" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    if [ "$rc" = 0 ]; then
        result=ok
    else
        result="FAILED (exit $rc)"
        failed+=("$t")
    fi
    printf '%-17s %6s %10s %8s %6s %7s %8s  %s\n' "$t" "$SECONDS_PER" "${execs:-?}" "${rate:-?}" \
        "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
    if [ "$rc" != 0 ]; then
        grep -E 'ERROR|SUMMARY|invariant broken|runtime error|Test unit written|==[0-9]+==' "$log" | head -n 12 | sed 's/^/    /'
        echo "    full log: $log; input kept in $B/crashes/$t/; replay: $B/fuzz_$t <input>"
    fi
done
# the closing line has the runners' form, so that .ci/run counts it
echo "fuzz: $((${#TARGETS[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
