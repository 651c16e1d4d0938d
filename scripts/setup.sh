#!/usr/bin/env bash
# Installs the Debian 12 packages alibi needs and builds it (Release) into build/.
# Idempotent and non-interactive; run as root or with sudo available.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(build-essential cmake pkg-config libomp-dev libdnnl-dev libsentencepiece-dev
      libcli11-dev nlohmann-json3-dev libonig-dev libutf8proc-dev libgtest-dev libbenchmark-dev xz-utils
      libopenmpi-dev openmpi-bin libcpp-httplib-dev curl
      python3 python3-numpy python3-matplotlib python3-venv)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
# The CUDA backend is built where the toolkit is (docs/cuda.md); ALIBI_REQUIRE_CUDA=1 (CI) makes
# a missing toolkit an error instead of a CPU-only build.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
CUDA_FLAG=()
if [ "${ALIBI_REQUIRE_CUDA:-0}" = 1 ]; then CUDA_FLAG=(-DALIBI_CUDA=ON); fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "${CUDA_FLAG[@]}" >/dev/null
cmake --build build -j"$(nproc)"
