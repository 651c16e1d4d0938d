#pragma once
// How OpenMP threads wait at barriers: a short spin, then sleep. alibi runs many short parallel
// regions per step (~100 per decoded token). Sleeping at once (OMP_WAIT_POLICY=passive) costs a
// wake-up at each: decoding BLOOM-560m-shaped Q8_0 ran at 18.0-20.5 tokens/s against
// 22.6-23.7 with 1,000 spins first (2 threads, alternating rounds; docs/gguf.md). Spinning
// without limit (active) steals the core a descheduled partner needs on a shared machine: a
// tiny training step beside a busy process ran at 0.77-0.80 of passive's tokens/s, 1,000 spins
// at 0.97-0.98. So GOMP_SPINCOUNT=1000 (libgomp drops it to 100 where threads outnumber cores).
// libgomp reads its environment once at load time, so the only way to set it for ourselves is to
// re-execute with it set. A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is always respected.
//
// `alibi serve` spins 300,000 times (libgomp's own default) instead: its engine thread runs steps
// back to back, and between their parallel regions does serial work (sampling, each sequence's
// cache appends) longer than 1,000 spins, so every region paid a wake-up. With 300,000 spins the
// server gave 1.09-1.13x the tokens/s at 1 client and 1.18-1.27x at 16 (3 alternating rounds,
// docs/serve.md); idle, its threads still go to sleep after the spin.
namespace alibi {

inline constexpr const char* kSpinCount = "1000";
inline constexpr const char* kServeSpinCount = "300000";

// Call first thing in main(); returns only if no re-exec was needed or it failed.
void ensure_omp_wait_policy(char** argv, const char* spin_count = kSpinCount);

}  // namespace alibi
