#pragma once
// OpenMP threads that sleep at barriers instead of spinning. alibi runs many short parallel
// regions per step; on a machine whose cores are shared with other work (a laptop, CI, this
// project's 2-core VMs), a spinning thread steals the core its descheduled partner needs and a
// training step gets ~3x slower (bench_train under load: 1.2-1.6k vs 0.4-0.5k tok/s, tiny config).
// libgomp reads OMP_WAIT_POLICY once at load time, so the only way to set it for ourselves is to
// re-execute with it set. A user's own OMP_WAIT_POLICY is always respected.
namespace alibi {

// Call first thing in main(); returns only if no re-exec was needed or it failed.
void ensure_passive_omp_wait(char** argv);

}  // namespace alibi
