#!/usr/bin/env bash
# tests/run.sh — from a fresh Debian 12 machine to a tested build, safe to run twice:
# installs what is missing (apt-get), configures build/, builds, and runs every test
# (C unit tests and the pytest suites, all registered with meson). Exit status 0 only
# when every test passed.
#
#   tests/run.sh                 # everything: plain build, sanitizers, valgrind
#   tests/run.sh --quick         # the plain build only
#
# Three passes: (1) every test on the normal build; (2) the C unit tests and the
# integration tests again on an AddressSanitizer + UndefinedBehaviorSanitizer build
# (build-asan/), where any report fails the test (the daemon's log is scanned);
# (3) the C unit tests under valgrind memcheck, zero errors and leaks; (4) each libFuzzer
# target for 30 s on its corpus, and the regressions; (5) cppcheck and clang-tidy.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=tests/deps.sh
. tests/deps.sh
kombofs_install_deps

quick=0
[ "${1:-}" = --quick ] && quick=1

setup() {   # setup DIR [meson options...]
    local dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@" >/dev/null
    fi
    meson compile -C "$dir"
}

build=${KOMBOFS_BUILD_DIR:-build}
status=0
logs=()

setup "$build" -Dwerror=true
meson test -C "$build" --print-errorlogs --num-processes 2 || status=1
logs+=("$build/meson-logs/testlog.json")

if [ "$quick" = 0 ]; then
    echo "== sanitizers (ASan + UBSan)"
    setup build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        meson test -C build-asan --print-errorlogs --num-processes 2 --logbase testlog-asan \
        --no-suite sandbox --no-suite bench || status=1
    logs+=(build-asan/meson-logs/testlog-asan.json)

    echo "== packaged build types (release, plain) compile without warnings"
    for bt in release plain; do
        setup "build-$bt" -Dwerror=true -Dbuildtype="$bt" >/dev/null || {
            echo "FAIL: meson buildtype=$bt"; status=1; }
    done

    echo "== valgrind memcheck (C unit tests)"
    meson test -C "$build" --suite unit --print-errorlogs --logbase testlog-memcheck \
        --timeout-multiplier 5 \
        --wrap "valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect" \
        || status=1
    logs+=("$build"/meson-logs/testlog-memcheck*.json)   # meson appends the wrapper's name

    echo "== fuzzing (libFuzzer, 30 s per target)"
    tests/fuzz/run.sh 30 || status=1

    echo "== static analysis (cppcheck, clang-tidy)"
    tests/static/run.sh || status=1
fi

# One closing line that any CI can read: every TAP subtest and pytest test counted.
/usr/bin/python3 tests/summary.py "${logs[@]}" || status=1
exit "$status"
