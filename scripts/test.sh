#!/usr/bin/env bash
# Set-up plus the whole test suite: installs packages, builds (Release), runs ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir build --output-on-failure -j"$(nproc)"
