#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] — build the libFuzzer targets and run each one
# for SECONDS (default 30) on a scratch copy of its seed corpus, after
# replaying every input of tests/fuzz/regressions/<target>/ once.
#
#   tests/fuzz/run.sh            # 30 s per target (CI)
#   tests/fuzz/run.sh 300        # a longer local run
#   KOMBOFS_FUZZ_TARGETS="page diff" tests/fuzz/run.sh 60
#
# Needs clang-14 and libclang-rt-14-dev (tests/deps.sh). Builds build-fuzz/
# (CC=clang, -Dfuzz=true -Db_lundef=false) if it is not there, and always
# reconfigures it (the fuzz library lists src/*.c at configure time).
# The committed corpus is never written to. Logs go to build-fuzz/fuzz-logs/,
# crashing inputs to build-fuzz/fuzz-artifacts/<target>-crash-<sha1>
# (replay one with: build-fuzz/tests/fuzz/fuzz_<target> FILE).
# Exit status 0 only if no regression input fails and no target crashes,
# leaks, times out or runs out of memory. Docs: docs/fuzzing.md.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

secs=${1:-30}
case $secs in
'' | *[!0-9]*) echo "usage: tests/fuzz/run.sh [SECONDS]" >&2; exit 2 ;;
esac
build=${KOMBOFS_FUZZ_BUILD:-build-fuzz}
read -r -a targets <<<"${KOMBOFS_FUZZ_TARGETS:-webhook page diff fsname control options}"
dir=tests/fuzz

# Per target: the longest input tried, and the dictionary.
max_len() {
    case $1 in
    page) echo 32768 ;;
    diff) echo 16384 ;;
    webhook) echo 4096 ;;
    options | fsname) echo 1024 ;;
    *) echo 256 ;;
    esac
}
dict() {
    case $1 in
    page | diff | webhook) echo "-dict=$dir/json.dict" ;;
    options) echo "-dict=$dir/options.dict" ;;
    esac
}

# clang-14 (Debian: clang-14, libclang-rt-14-dev); `clang` is only a symlink.
cc=${CC_FUZZ:-$(command -v clang-14 || command -v clang)}
[ -n "$cc" ] || { echo "tests/fuzz/run.sh: clang-14 is not installed" >&2; exit 1; }
# Symbolised sanitizer reports without the `llvm` metapackage.
if ! command -v llvm-symbolizer >/dev/null && [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
    export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi

echo "== building the fuzz targets in $build"
if [ -f "$build/build.ninja" ]; then
    meson setup --reconfigure "$build" >"$build/fuzz-setup.log" 2>&1 ||
        { cat "$build/fuzz-setup.log" >&2; exit 1; }
else
    mkdir -p "$(dirname "$build")"
    CC=$cc meson setup "$build" -Dfuzz=true -Db_lundef=false >/tmp/kombofs-fuzz-setup.$$ 2>&1 ||
        { cat /tmp/kombofs-fuzz-setup.$$ >&2; rm -f /tmp/kombofs-fuzz-setup.$$; exit 1; }
    rm -f /tmp/kombofs-fuzz-setup.$$
fi
exes=()
for t in "${targets[@]}"; do
    exes+=("tests/fuzz/fuzz_$t")
done
ninja -C "$build" "${exes[@]}" || exit 1

logs=$build/fuzz-logs
artifacts=$build/fuzz-artifacts
mkdir -p "$logs" "$artifacts"
work=$(mktemp -d "${TMPDIR:-/tmp}/kombofs-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
export TMPDIR=$work     # fuzz_options makes its sandbox there

status=0
rows=()
for t in "${targets[@]}"; do
    exe=$build/tests/fuzz/fuzz_$t

    # 1. every regression input, once each (a failing one does not stop the others)
    nreg=0 badreg=0
    if [ -d "$dir/regressions/$t" ]; then
        for f in "$dir/regressions/$t"/*; do
            [ -f "$f" ] || continue
            nreg=$((nreg + 1))
            if ! "$exe" "$f" >"$logs/$t-regression.log" 2>&1; then
                badreg=$((badreg + 1))
                echo "!! $t: regression input $f fails:" >&2
                grep -aE "PROPERTY FAILED|^  [^ ]|ERROR: |SUMMARY|^    #[0-9]+ .* (/[^ ]*)?(src|tests/fuzz)/" \
                    "$logs/$t-regression.log" | grep -av "^  0x" | head -12 >&2
                cp "$logs/$t-regression.log" "$logs/$t-regression-$(basename "$f").log"
            fi
        done
    fi

    # 2. fuzzing, on a scratch copy of the corpus
    mkdir -p "$work/$t"
    cp -r "$dir/corpus/$t/." "$work/$t/"
    log=$logs/$t.log
    echo "== fuzz_$t: ${secs} s, $(find "$work/$t" -type f | wc -l) seeds, $nreg regression inputs"
    # shellcheck disable=SC2046
    "$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
        -print_final_stats=1 -artifact_prefix="$artifacts/$t-" $(dict "$t") "$work/$t" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    corpus=$(find "$work/$t" -type f | wc -l)
    cov=$(grep -aoE "cov: [0-9]+" "$log" | tail -1 | cut -d' ' -f2)
    if [ "$rc" -eq 0 ] && [ "$badreg" -eq 0 ]; then
        result=ok
    else
        status=1
        result=
        [ "$badreg" -gt 0 ] && result="$badreg regression(s) fail"
        if [ "$rc" -ne 0 ]; then
            art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
            kind=$(grep -aoE "PROPERTY FAILED|ERROR: AddressSanitizer: [a-z-]+|ERROR: LeakSanitizer|runtime error|deadly signal|ERROR: libFuzzer: [a-z-]+" "$log" | head -1)
            result="${result:+$result; }FAILED (exit $rc: ${kind:-see $log})${art:+ -> $art}"
            echo "!! fuzz_$t failed, from $log:" >&2
            grep -aE "PROPERTY FAILED|^  [^ ]|ERROR: |SUMMARY|^    #[0-9]+ .* (/[^ ]*)?(src|tests/fuzz)/|runtime error" \
                "$log" | grep -av "^  0x" | head -20 >&2
        fi
    fi
    rows+=("$(printf '%-8s %12s %9s %7s %6s  %s' "$t" "${execs:-?}" "${rate:-?}" "$corpus" "${cov:-?}" "$result")")
done

echo
echo "== fuzz summary (${secs} s per target; logs in $logs)"
printf '%-8s %12s %9s %7s %6s  %s\n' target executions exec/s corpus edges result
printf '%s\n' "${rows[@]}"
exit "$status"
