#!/usr/bin/env bash
# The GPU check of the CUDA backend, in one call on a machine with an NVIDIA GPU (docs/cuda.md):
# builds Release with CUDA into build-gpu/, runs every cuda test (they must run, not skip), times
# the fused attention against FlexAttention / SDPA / FlashAttention-2 (when torch imports) and a
# training run of the tiny model through `alibi bench`, and prints a short table last. Everything
# it prints, and the logs, go to $OUT (the device tool's output folder) or /tmp/alibi-gpu.
#
#   bash bench/gpu/run.sh [--quick]        # --quick: T 1k and 4k only
set -uo pipefail
cd "$(dirname "$0")/../.."
W=${OUT:-/tmp/alibi-gpu}
mkdir -p "$W"
exec > >(tee "$W/gpu-run.log") 2>&1
LENGTHS=1024,2048,4096,8192,16384
[ "${1:-}" = --quick ] && LENGTHS=1024,4096
JOBS=$(nproc)
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

echo "== build"
t0=$(date +%s)
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DALIBI_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  > $W/build-gpu.cmake.log 2>&1 || { tail -20 $W/build-gpu.cmake.log; exit 1; }
cmake --build build-gpu -j"$JOBS" --target alibi alibi_tests bench_device_attention \
  > $W/build-gpu.log 2>&1 || { grep -E "error" -A3 $W/build-gpu.log | head -40; exit 1; }
echo "built in $(( $(date +%s) - t0 )) s"

echo "== tests on the GPU"
ctest --test-dir build-gpu -R "cuda|Cuda" -j4 --output-on-failure --timeout 300 \
  > $W/ctest-gpu.log 2>&1
tests_rc=$?
grep -E "tests passed|Failed|Skipped|\*\*\*" $W/ctest-gpu.log | head -60

echo "== attention"
rm -f "$W/attn-ours.txt"
for dt in bf16 fp32; do
  build-gpu/bench/bench_device_attention --device cuda --dtype $dt --lengths "$LENGTHS" \
    --seconds 0.5 | tee -a "$W/attn-ours.txt"
done
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  python3 bench/gpu/flex_bench.py --lengths "$LENGTHS" | tee $W/attn-base.txt
else
  echo "skip baselines: torch with CUDA does not import here" | tee $W/attn-base.txt
fi

echo "== training and evaluation tokens/s (alibi bench, tiny model, cuda against cpu)"
build-gpu/alibi bench --device cuda --configs tiny --lengths 512,2048 --rounds 1 \
  > $W/bench-cuda.md 2>&1; tail -15 $W/bench-cuda.md

echo "== summary"
echo "cuda tests: $(grep -E 'tests passed' $W/ctest-gpu.log || echo 'did not finish') (rc $tests_rc)"
W="$W" python3 - <<'PY'
import os
import re
ours, base = {}, {}
W = os.environ["W"]
for line in open(f"{W}/attn-ours.txt"):
    m = re.match(r"attn device cuda dtype (\w+) T (\d+) HS (\d+) fwd_ms ([\d.]+) fb_ms ([\d.]+)",
                 line)
    if m:
        ours[(m[1], int(m[2]), int(m[3]))] = (float(m[4]), float(m[5]))
for line in open(f"{W}/attn-base.txt"):
    m = re.match(r"base (\w+) T (\d+) HS (\d+) fwd_ms ([\d.]+) fb_ms ([\d.]+)", line)
    if m:
        base[(m[1], int(m[2]), int(m[3]))] = (float(m[4]), float(m[5]))
print("| T | HS | ours bf16 fwd ms | fb ms | flex fwd | fb | x flex fwd | x flex fb |")
print("|---|---|---|---|---|---|---|---|")
for (dt, T, HS), (f, b) in sorted(ours.items()):
    if dt != "bf16":
        continue
    ff, fb = base.get(("flex", T, HS), (float("nan"), float("nan")))
    print(f"| {T} | {HS} | {f:.2f} | {b:.2f} | {ff:.2f} | {fb:.2f} | {ff / f:.2f} | {fb / b:.2f} |")
PY
grep "^gemm" $W/attn-ours.txt
exit $tests_rc
