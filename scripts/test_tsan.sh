#!/usr/bin/env bash
# ThreadSanitizer over the OpenMP kernels (not in CI: docs/reliability.md#threadsanitizer).
# clang 14 with -fsanitize=thread links LLVM's libomp; its Archer tool
# (OMP_TOOL_LIBRARIES=libarcher.so) tells TSan about OpenMP's barriers, tasks and locks, so only
# real races are reported. oneDNN runs on its own, uninstrumented GNU OpenMP runtime: its insides
# are not checked. Builds build-tsan/ and runs the tests that drive the kernels and the model.
#   scripts/test_tsan.sh [CTEST_REGEX]
set -euo pipefail
cd "$(dirname "$0")/.."
FILTER=${1:-"Backend|Attention|Layers|Model|Golden|Position|Generate|Eval|Train|Mlm|CheckFinite"}
ARCHER=/usr/lib/llvm-14/lib/libarcher.so
[ -f "$ARCHER" ] || { echo "test_tsan.sh: $ARCHER missing; expected libomp-14-dev" >&2; exit 2; }
if [ ! -f build-tsan/CMakeCache.txt ]; then
  CC=clang CXX=clang++ cmake -S . -B build-tsan -DALIBI_BUILD_BENCH=OFF -DALIBI_CUDA=OFF \
    -DCMAKE_BUILD_TYPE=Tsan \
    -DCMAKE_CXX_FLAGS="-fsanitize=thread -O1 -gline-tables-only -march=native -Wno-pass-failed" \
    -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread > /dev/null
fi
cmake --build build-tsan -j"$(nproc)" --target alibi alibi_tests
export OMP_TOOL_LIBRARIES=$ARCHER
export TSAN_OPTIONS="halt_on_error=1 ignore_noninstrumented_modules=1"
ctest --test-dir build-tsan --output-on-failure -j"$(nproc)" -R "$FILTER" -E "Distributed\."
