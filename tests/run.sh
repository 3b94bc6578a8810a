#!/usr/bin/env bash
# tests/run.sh — from a fresh Debian 12 machine to a tested build, safe to run twice:
# installs what is missing (apt-get), configures build/, builds, and runs every test
# (C unit tests and the pytest suites, all registered with meson). Exit status 0 only
# when every test passed.
#
#   tests/run.sh                 # everything
#   tests/run.sh --suite unit    # extra arguments go to `meson test`
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=tests/deps.sh
. tests/deps.sh
kombofs_install_deps

build=${KOMBOFS_BUILD_DIR:-build}
if [ -f "$build/build.ninja" ]; then
    meson setup --reconfigure "$build" >/dev/null
else
    meson setup "$build"
fi
meson compile -C "$build"

status=0
meson test -C "$build" --print-errorlogs --num-processes 2 "$@" || status=$?

# One closing line that any CI can read: every TAP subtest and pytest test counted.
/usr/bin/python3 tests/summary.py "$build/meson-logs/testlog.json" || status=1
exit "$status"
