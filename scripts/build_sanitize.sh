#!/usr/bin/env bash
# The sanitizer build, shared by scripts/test_sanitize.sh (the test suite under it) and
# scripts/fuzz.sh (the libFuzzer targets): clang 14 with -fsanitize=address,undefined
# -fno-sanitize-recover=all and libFuzzer's coverage hooks (CMake option ALIBI_FUZZ), the test
# suite and the fuzz targets, into build-asan/. One compile of the library serves both.
# Installs clang and its compiler-rt if missing; the libraries alibi links come from
# scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for p in clang libclang-rt-14-dev; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
if [ ! -f build-asan/CMakeCache.txt ]; then
  # Build type "Sanitize": no flags of its own, ALIBI_FUZZ's (-O1, line tables) apply; asserts on.
  CC=clang CXX=clang++ cmake -S . -B build-asan -DALIBI_FUZZ=ON -DALIBI_BUILD_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=Sanitize > /dev/null
fi
cmake --build build-asan -j"$(nproc)"
