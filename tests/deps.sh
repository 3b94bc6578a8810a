# tests/deps.sh — the Debian 12 packages kombofs needs to build, test and demo.
# Sourced by tests/run.sh and examples/demo.sh; installs only what is missing.

KOMBOFS_DEPS=(
    gcc meson ninja-build pkg-config
    libfuse3-dev fuse3 libcurl4-openssl-dev libjansson-dev libsqlite3-dev
    libmicrohttpd-dev libssl-dev libzstd-dev libdeflate-dev
    python3 python3-pytest python3-pytest-timeout
    jq sqlite3 curl attr valgrind nginx
    strace  # tests/bench/webhook_trace.py --strace (test_bench_scripts.py)
    prometheus  # promtool check metrics (test_metrics.py); ~15 s to install, its service is not started
    clang-14 libclang-rt-14-dev llvm-14 cppcheck clang-tidy-14
)

kombofs_install_deps() {
    local missing=() p
    for p in "${KOMBOFS_DEPS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing: ${missing[*]}" >&2
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
