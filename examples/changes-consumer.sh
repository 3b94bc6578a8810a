#!/bin/bash
# changes-consumer.sh: feed kombofs change-log entries to a legacy program, in sequence
# order, each entry once, across restarts. See docs/recipes.md.
#
#   changes-consumer.sh [--once] [--interval=SECONDS] MNT STATE_FILE [COMMAND [ARG]...]
#
# For each entry of MNT/changes/ whose sequence number is above the one in STATE_FILE,
# runs `COMMAND ARG... MNT/changes/<seq>.json` and, when it succeeded, writes <seq> to
# STATE_FILE (a temporary file renamed over it). Without COMMAND, prints one line per
# entry: seq, at, model, op, id, tab-separated.
#
# Exit status: 0 when everything available was processed (--once) or after SIGTERM/SIGINT;
# 1 when a COMMAND failed or the mount could not be read (--once); 2 for a usage error or
# an unusable state file.
set -u -o pipefail

prog=${0##*/}
once=0
interval=60
batch=100   # entries per jq run when printing

usage() {
    echo "usage: $prog [--once] [--interval=SECONDS] MNT STATE_FILE [COMMAND [ARG]...]"
}
warn() { echo "$prog: $*" >&2; }
die() { local rc=$1; shift; warn "$@"; exit "$rc"; }

while [ $# -gt 0 ]; do
    case $1 in
        --once) once=1; shift ;;
        --interval=*) interval=${1#*=}; shift ;;
        --interval) [ $# -ge 2 ] || { usage >&2; exit 2; }; interval=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        -*) warn "unknown option $1"; usage >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -ge 2 ] || { usage >&2; exit 2; }
[[ $interval =~ ^[0-9]+([.][0-9]+)?$ && ! $interval =~ ^[0.]+$ ]] ||
    die 2 "--interval wants a positive number of seconds, not '$interval'"
mnt=${1%/} state=$2
shift 2
cmd=("$@")
changes=$mnt/changes
tmp=$state.tmp.$$

command -v jq >/dev/null || die 2 "jq is not installed"

# One consumer per state file.
if command -v flock >/dev/null; then
    exec 9>>"$state.lock" || die 2 "cannot open $state.lock"
    flock -n 9 || die 2 "another consumer is using $state"
fi

last=0
if [ -e "$state" ]; then
    last=$(<"$state") || die 2 "cannot read $state"
    last=${last//[[:space:]]/}
    [[ $last =~ ^[0-9]{1,15}$ ]] || die 2 "$state does not hold a sequence number"
    last=$((10#$last))
fi

save_state() {   # save_state SEQ: STATE_FILE := SEQ, atomically
    if ! { printf '%s\n' "$1" >"$tmp" && mv -f -- "$tmp" "$state"; }; then
        rm -f -- "$tmp"
        die 1 "cannot write $state (last processed entry: $1)"
    fi
    last=$1
}

stop=0
trap 'stop=1' TERM INT HUP
trap 'rm -f -- "$tmp"' EXIT

# Entries above $last, as their 12-digit names, in order. Fails if the mount is unreadable.
pending() {
    local names
    names=$(ls -- "$changes") || return 1
    printf '%s\n' "$names" | awk -v last="$last" 'length($0) == 17 && /^[0-9]+\.json$/ && substr($0, 1, 12) + 0 > last { print substr($0, 1, 12) }'
}

# Report the entries missing between $1 (the last one seen) and $2 (the next one there).
check_gap() {
    local prev=$1 next=$2
    if [ "$next" -eq $((prev + 2)) ]; then
        warn "entry $((prev + 1)) is gone from $changes (removed by --changes-retention?); continuing with $next"
    elif [ "$next" -gt $((prev + 2)) ]; then
        warn "entries $((prev + 1))..$((next - 1)) are gone from $changes (removed by --changes-retention?); continuing with $next"
    fi
}

# Print a batch of entries (SEQ PATH SEQ PATH ...) with one jq; the state moves past the
# batch when jq succeeded.
print_batch() {
    local files=() seq=0
    while [ $# -gt 0 ]; do
        seq=$1
        if [ -e "$2" ]; then
            files+=("$2")
        else
            warn "entry $1 was removed before it could be processed"
        fi
        shift 2
    done
    if [ ${#files[@]} -gt 0 ]; then
        jq -r '[.seq, .at, .model, .op, .id] | @tsv' "${files[@]}" || {
            warn "printing entries failed; state stays at $last"
            return 1
        }
    fi
    [ "$seq" -eq 0 ] || save_state "$seq"
}

# Process everything available; 0 when done (or asked to stop), 1 on a failure.
run_once() {
    local names name seq path seen=$last rc batchargs=()
    names=$(pending) || { warn "cannot list $changes"; return 1; }
    for name in $names; do
        seq=$((10#$name))
        path=$changes/$name.json
        check_gap "$seen" "$seq"
        seen=$seq
        if [ ${#cmd[@]} -eq 0 ]; then
            batchargs+=("$seq" "$path")
            if [ ${#batchargs[@]} -ge $((2 * batch)) ]; then
                print_batch "${batchargs[@]}" || return 1
                batchargs=()
                [ $stop -eq 0 ] || return 0
            fi
            continue
        fi
        if [ ! -e "$path" ]; then
            warn "entry $seq was removed before it could be processed"
            save_state "$seq"
            continue
        fi
        rc=0
        "${cmd[@]}" "$path" || rc=$?
        if [ $rc -ne 0 ]; then
            warn "${cmd[0]} failed on $path (exit status $rc); state stays at $last"
            return 1
        fi
        save_state "$seq"
        [ $stop -eq 0 ] || return 0
    done
    if [ ${#batchargs[@]} -gt 0 ]; then
        print_batch "${batchargs[@]}" || return 1
    fi
    return 0
}

if [ $once -eq 1 ]; then
    run_once
    exit
fi

while [ $stop -eq 0 ]; do
    run_once
    [ $stop -eq 0 ] || break
    sleep "$interval" &
    wait $! || kill $! 2>/dev/null
done
exit 0
