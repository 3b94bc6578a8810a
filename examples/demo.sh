#!/usr/bin/env bash
# examples/demo.sh — kombofs on the Kombo sandbox, in one command.
#
#   examples/demo.sh         install what is missing, build, start the sandbox with a
#                            generated company, mount kombofs, and show a short tour.
#                            The mount and the sandbox keep running.
#   examples/demo.sh stop    unmount, stop the sandbox, remove the demo directory.
#
# KOMBOFS_DEMO_DIR (default /tmp/kombofs-demo) holds the mount point, the cache, the
# key file and the logs; KOMBOFS_DEMO_EMPLOYEES (default 300) sizes the company.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${KOMBOFS_DEMO_DIR:-/tmp/kombofs-demo}
employees=${KOMBOFS_DEMO_EMPLOYEES:-300}
build=${KOMBOFS_BUILD_DIR:-build}
integration="personio:Q4vX8kLm2PzR7tYb3NcW9sHd"
mnt=$dir/mnt

stop() {
    if [ -d "$mnt" ] && grep -qs " $(realpath "$mnt") " /proc/mounts; then
        fusermount3 -u "$mnt" || fusermount3 -u -z "$mnt"
    fi
    for name in kombofs sandbox; do
        if [ -f "$dir/$name.pid" ]; then
            pid=$(cat "$dir/$name.pid")
            if kill -0 "$pid" 2>/dev/null; then
                kill "$pid" 2>/dev/null || true
                for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                kill -9 "$pid" 2>/dev/null || true
            fi
        fi
    done
    rm -rf "$dir"
    echo "kombofs demo stopped; $dir removed."
}

if [ "${1:-}" = stop ]; then
    stop
    exit 0
fi
if [ -n "${1:-}" ]; then
    echo "usage: examples/demo.sh [stop]" >&2
    exit 2
fi

# 1. Install and build, the same way as tests/run.sh.
. tests/deps.sh
kombofs_install_deps
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
meson compile -C "$build" >/dev/null

# 2. A fresh demo directory, the sandbox with a generated company.
if [ -e "$dir" ]; then stop >/dev/null; fi
mkdir -p "$mnt"
chmod 700 "$dir"
echo "demo-key-$(date +%s)" > "$dir/api-key"
head -c 24 /dev/urandom | base64 > "$dir/webhook-secret"
chmod 600 "$dir/api-key" "$dir/webhook-secret"
# A free port for kombofs's webhook receiver; the sandbox signs and sends its webhooks there.
whport=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
nohup /usr/bin/python3 tests/sandbox/kombo_sandbox.py --port 0 --employees "$employees" \
    --api-key-file "$dir/api-key" --integration "$integration" \
    --webhook-url "http://127.0.0.1:$whport/webhook" --webhook-secret-file "$dir/webhook-secret" \
    --ready-file "$dir/sandbox.port" >"$dir/sandbox.log" 2>&1 &
echo $! > "$dir/sandbox.pid"
for _ in $(seq 600); do [ -s "$dir/sandbox.port" ] && break; sleep 0.1; done
if [ ! -s "$dir/sandbox.port" ]; then
    echo "the sandbox did not start; see $dir/sandbox.log" >&2
    exit 1
fi
port=$(cat "$dir/sandbox.port")
api="http://127.0.0.1:$port/v1"

# 3. Mount: kombofs goes to the background once the mount is there.
"$root/$build/kombofs" "$integration" "$mnt" --api-url="$api" --api-key-file="$dir/api-key" \
    --cache="$dir/cache.db" --webhook-listen="127.0.0.1:$whport" \
    --webhook-secret-file="$dir/webhook-secret" 2>"$dir/kombofs.log"
pgrep -n -f "kombofs $integration $mnt" > "$dir/kombofs.pid" || true

# 4. The tour.
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
say "ls $mnt"
ls "$mnt"
say "ls $mnt/employees | head -3"
ls "$mnt/employees" | sed -n 1,3p
say "ls $mnt/employees | wc -l"
ls "$mnt/employees" | wc -l
first=$(ls "$mnt/employees" | sed -n 1p)
say "jq '{display_full_name, job_title, work_email}' $mnt/employees/$first"
jq '{display_full_name, job_title, work_email}' "$mnt/employees/$first"
say "jq -r 'select(.employment_status == \"ACTIVE\") | .display_full_name' $mnt/employees/*.json | head -5"
jq -r 'select(.employment_status == "ACTIVE") | .display_full_name' "$mnt"/employees/*.json | sed -n 1,5p

# 5. A change arrives: the sandbox changes a job title and sends its signed data-changed
#    webhook; kombofs verifies it, fetches the delta, and the file and changes/ show it.
id=${first%.json}
say "a change in the HR system, announced by a signed webhook"
curl -sf -X POST "http://127.0.0.1:$port/_sandbox/mutate" \
    -d "{\"op\": \"update_employee\", \"args\": {\"id\": \"$id\", \"job_title\": \"Head of Demos\"}}" >/dev/null
t0=$(date +%s%N)
curl -sf -X POST "http://127.0.0.1:$port/_sandbox/webhooks/flush" >/dev/null
for _ in $(seq 100); do
    [ "$(jq -r .job_title "$mnt/employees/$first")" = "Head of Demos" ] && break
    sleep 0.05
done
echo "visible after $(( ($(date +%s%N) - t0) / 1000000 )) ms:"
say "jq .job_title $mnt/employees/$first"
jq .job_title "$mnt/employees/$first"
last=$(ls "$mnt/changes" | sed -n '$p')
say "jq '{seq, model, id, op, sync, direct, nested, patch}' $mnt/changes/$last"
jq '{seq, model, id, op, sync, direct, nested, patch}' "$mnt/changes/$last"
say "jq .webhooks $mnt/.status"
jq -c .webhooks "$mnt/.status"

# 6. Proof: every file equals the sandbox's record (jq -S on both sides).
say "check: every employee file equals the sandbox's record"
curl -sf "http://127.0.0.1:$port/_sandbox/records/employees" > "$dir/expected.json"
expected=$(jq length "$dir/expected.json")
files=$(ls "$mnt/employees" | wc -l)
diffs=$(jq -S -c 'sort_by(.id)[]' "$dir/expected.json" |
        cmp -s - <(jq -S -c -s 'sort_by(.id)[]' "$mnt"/employees/*.json) && echo 0 || echo 1)
echo "sandbox: $expected employees; mount: $files files; identical: $([ "$diffs" = 0 ] && echo yes || echo NO)"

cat <<MSG

kombofs is mounted on $mnt (sandbox API at $api).
  read it:    ls $mnt/employees; jq . $mnt/.status
  resync:     echo resync > $mnt/.control
  logs:       $dir/kombofs.log (foreground messages), journalctl -t kombofs (background)
  stop both:  examples/demo.sh stop
MSG
[ "$diffs" = 0 ] && [ "$files" = "$expected" ]
