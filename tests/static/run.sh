#!/usr/bin/env bash
# tests/static/run.sh — static analysis of src/: cppcheck and clang-tidy.
#
#   tests/static/run.sh                 # both; exit 1 on any finding
#   tests/static/run.sh cppcheck        # one of them
#   tests/static/run.sh clang-tidy
#
# cppcheck (2.10): --enable=warning,performance,portability,style over src/*.c,
#   suppressions (each with its reason) in tests/static/cppcheck.supp.
# clang-tidy (14): the checks of tests/static/.clang-tidy (the exclusions and
#   their reasons are there), with the compile commands of build/ (configured
#   here if missing; KOMBOFS_BUILD_DIR overrides), over src/*.c and the src/
#   headers they include; accepted findings, each with its reason, in
#   tests/static/clang-tidy.supp.
# Needs cppcheck and clang-tidy (tests/deps.sh). Docs: docs/fuzzing.md.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

here=tests/static
build=${KOMBOFS_BUILD_DIR:-build}
what=${1:-all}
status=0
jobs=$(nproc 2>/dev/null || echo 2)

if [ ! -f "$build/compile_commands.json" ]; then
    meson setup "$build" >/dev/null || exit 1
fi
# version.h is generated at configure time, into the build directory.
[ -f "$build/version.h" ] || meson setup --reconfigure "$build" >/dev/null || exit 1

if [ "$what" = all ] || [ "$what" = cppcheck ]; then
    echo "== $(cppcheck --version): src/*.c"
    cppcheck --std=c11 --language=c --enable=warning,performance,portability,style \
        --library=posix -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I src -I "$build" \
        --suppressions-list="$here/cppcheck.supp" --error-exitcode=1 --quiet \
        -j "$jobs" --template='{file}:{line}: {severity}/{id}: {message}' src/*.c
    rc=$?
    if [ "$rc" -eq 0 ]; then
        echo "cppcheck: no findings"
    else
        echo "cppcheck: findings above (exit $rc)"
        status=1
    fi
fi

if [ "$what" = all ] || [ "$what" = clang-tidy ]; then
    tidy=$(command -v clang-tidy-14 || command -v clang-tidy)
    echo "== $($tidy --version | sed -n 's/.*version /clang-tidy /p'): src/*.c ($build/compile_commands.json)"
    out=$(mktemp -d "${TMPDIR:-/tmp}/kombofs-tidy.XXXXXX")
    trap 'rm -rf "$out"' EXIT
    # One process per file, in parallel, each into its own file.
    # shellcheck disable=SC2016  # expanded by the inner sh
    printf '%s\n' src/*.c | xargs -P "$jobs" -I{} sh -c \
        '"$1" -p "$2" --config-file="$3" --quiet "$4" >"$5/$(basename "$4").txt" 2>"$5/$(basename "$4").err" || true' \
        sh "$tidy" "$build" "$here/.clang-tidy" {} "$out"
    # "path:line:col: warning|error: message [check]", path made relative to
    # the repository (src/x.c), each finding once (a header is seen per file).
    cat "$out"/*.txt |
        sed -nE 's#^[^ :]*(src/[^/ :]+):([0-9]+):([0-9]+): (warning|error): (.*) \[([^]]+)\]$#\1:\2:\3: \4: \5 [\6]#p' |
        sort -u >"$out/all"
    # Compiler errors (a file that does not compile for clang) count too.
    grep -h "error:" "$out"/*.err 2>/dev/null | grep -v "^Error while processing" |
        sed -E 's#^[^ :]*(src/)#\1#' | sort -u >>"$out/all"
    declare -A accept=()
    while read -r f c _; do
        case $f in '' | '#'*) continue ;; esac
        accept["$f $c"]=1
    done <"$here/clang-tidy.supp"
    : >"$out/left"
    : >"$out/accepted"
    while IFS= read -r line; do
        file=${line%%:*}
        check=$(sed -nE 's/.*\[([^]]+)\]$/\1/p' <<<"$line")
        if [ -n "$check" ] && [ -n "${accept["$file $check"]:-}" ]; then
            echo "$line" >>"$out/accepted"
        else
            echo "$line" >>"$out/left"
        fi
    done <"$out/all"
    if [ -s "$out/left" ]; then
        cat "$out/left"
        echo "clang-tidy: $(wc -l <"$out/left") finding(s) above; $(wc -l <"$out/accepted") accepted in $here/clang-tidy.supp"
        status=1
    else
        echo "clang-tidy: no findings ($(wc -l <"$out/accepted") accepted in $here/clang-tidy.supp)"
    fi
    # An entry that no longer matches is stale: say so (without failing).
    for key in "${!accept[@]}"; do
        grep -qF "${key%% *}:" "$out/accepted" && grep -F "${key%% *}:" "$out/accepted" |
            grep -qF "[${key#* }]" || echo "note: stale entry in $here/clang-tidy.supp: $key"
    done
fi

exit "$status"
