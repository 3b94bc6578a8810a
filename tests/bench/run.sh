#!/usr/bin/env bash
# tests/bench/run.sh — the SPEC §8 benchmark table, every row measured against its
# baseline in the same run (see docs/performance.md).
#
#   tests/bench/run.sh [--employees N] [--smoke] [--reps R] [--kombofs PATH]
#                      [--floor PATH] [--out FILE] [--json FILE] [--keep]
#
#   --employees N   sandbox size (default 100000)
#   --smoke         about 1000 employees, 3 repetitions: checks that this script works
#                   (well under a minute); the targets are not the point
#   --reps R        repetitions of every measurement (default 5, smoke 3)
#   --kombofs PATH  the binary to measure (default build/kombofs); it is copied first,
#                   so a rebuild during the run does not change what is measured
#   --floor PATH    the FUSE floor (tests/bench/floor.c, built by meson as kombofs-floor;
#                   default: kombofs-floor beside the kombofs binary). Every read row is
#                   also measured on it; without it those columns stay empty
#   --out FILE      also write the markdown table (with the machine) to FILE
#   --json FILE     also write every sample as JSON to FILE
#   --keep          keep the temporary directory (logs, caches) for inspection
#
# Needs: root (a tmpfs is mounted for the baseline; without root /dev/shm is used),
# /dev/fuse, fusermount3, curl, jq, tar, /usr/bin/python3. Everything listens on
# 127.0.0.1; every server, mount and temporary file is gone when the script exits,
# also on Ctrl-C. Exit status 0 when every row was measured (met or not), 1 when the
# script failed, 2 for bad usage.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

employees=100000 reps='' smoke=0 kombofs="$root/build/kombofs" floor='' out='' json='' keep=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --employees) employees=${2:?}; shift 2 ;;
        --employees=*) employees=${1#*=}; shift ;;
        --reps) reps=${2:?}; shift 2 ;;
        --reps=*) reps=${1#*=}; shift ;;
        --kombofs) kombofs=${2:?}; shift 2 ;;
        --kombofs=*) kombofs=${1#*=}; shift ;;
        --floor) floor=${2:?}; shift 2 ;;
        --floor=*) floor=${1#*=}; shift ;;
        --out) out=${2:?}; shift 2 ;;
        --out=*) out=${1#*=}; shift ;;
        --json) json=${2:?}; shift 2 ;;
        --json=*) json=${1#*=}; shift ;;
        --smoke) smoke=1; shift ;;
        --keep) keep=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
if [ "$smoke" = 1 ]; then
    employees=1000
    reps=${reps:-3}
fi
reps=${reps:-5}
case "$employees$reps" in *[!0-9]*|'') echo "run.sh: --employees and --reps take numbers" >&2; exit 2 ;; esac
if [ "$employees" -lt 100 ] || [ "$reps" -lt 1 ]; then
    echo "run.sh: need --employees >= 100, --reps >= 1" >&2
    exit 2
fi
[ -x "$kombofs" ] || { echo "run.sh: $kombofs is not an executable (ninja -C build?)" >&2; exit 1; }
if [ -n "$floor" ]; then
    [ -x "$floor" ] || { echo "run.sh: $floor is not an executable (ninja -C build kombofs-floor?)" >&2; exit 1; }
elif [ -x "$(dirname "$kombofs")/kombofs-floor" ]; then
    floor=$(dirname "$kombofs")/kombofs-floor
else
    echo "run.sh: no kombofs-floor beside $kombofs: the floor columns stay empty" >&2
fi
for tool in fusermount3 curl jq tar find xargs grep; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (tests/deps.sh installs it)" >&2; exit 1; }
done
[ -x /usr/bin/python3 ] || { echo "run.sh: /usr/bin/python3 is missing" >&2; exit 1; }
[ -e /dev/fuse ] || { echo "run.sh: /dev/fuse is missing" >&2; exit 1; }

export PYTHONDONTWRITEBYTECODE=1
# meson test sets MALLOC_PERTURB_, which makes glibc fill every allocation and free: it
# makes `find -exec cat {} +` about 7 times slower on any file system, so the timed
# commands (and the daemons) run without it.
unset MALLOC_PERTURB_
tmp=$(mktemp -d /tmp/kombofs-bench.XXXXXX)
chmod 755 "$tmp"
pypid=

# Stops what the benchmark started: the Python driver first (it cleans up after itself),
# then, as a backstop, every process it recorded in $tmp/pids (only if the process still
# runs a command line naming $tmp, so a recycled pid is never hit), every mount under
# $tmp (deepest first), and the directory itself.
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    local status=$? pid m
    trap - EXIT INT TERM HUP
    if [ -n "$pypid" ] && kill -0 "$pypid" 2>/dev/null; then
        kill -INT "$pypid" 2>/dev/null || true
        for _ in $(seq 1 300); do kill -0 "$pypid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pypid" 2>/dev/null || true
    fi
    if [ -f "$tmp/pids" ]; then
        while read -r pid; do
            if [ -z "$pid" ] || [ ! -r "/proc/$pid/cmdline" ]; then continue; fi
            tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$tmp" || continue
            kill -TERM "$pid" 2>/dev/null || true
        done < "$tmp/pids"
    fi
    awk -v t="$tmp" 'index($2, t "/") == 1 { print $3, $2 }' /proc/mounts | sort -r -k 2 |
        while read -r type m; do
            case "$type" in
                fuse*) fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true ;;
                *) umount -l "$m" 2>/dev/null || true ;;
            esac
        done
    if [ "$keep" = 1 ]; then
        echo "run.sh: kept $tmp" >&2
    elif awk -v t="$tmp" 'index($2, t "/") == 1 { found = 1 } END { exit !found }' /proc/mounts; then
        echo "run.sh: something is still mounted under $tmp; not removing it" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

args=(--tmp "$tmp" --employees "$employees" --reps "$reps" --kombofs "$kombofs")
[ -n "$floor" ] && args+=(--floor "$floor")
[ "$smoke" = 1 ] && args+=(--smoke)
[ -n "$out" ] && args+=(--out "$out")
[ -n "$json" ] && args+=(--json "$json")

# In the background and waited for, so that a signal reaches the trap at once.
/usr/bin/python3 "$here/bench.py" "${args[@]}" &
pypid=$!
status=0
wait "$pypid" || status=$?
pypid=
exit "$status"
