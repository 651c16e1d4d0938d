#pragma once
// The processes of a training job and the few collectives it needs, in one place: MPI when
// alibi runs under mpirun (OpenMPI; no launching, transport or collective code of our own), a
// single process otherwise. Everything is blocking and in a fixed order; the reductions that
// must be exact (docs/distributed.md) are built from these by the caller, never from an MPI sum
// of values from several ranks.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace alibi {

// [begin, end) in floats of a flat array.
struct Range {
  size_t begin = 0, end = 0;
  size_t size() const { return end - begin; }
};

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_size() const = 0;  // ranks on this host
  bool root() const { return rank() == 0; }

  // Every rank's `bytes` bytes, gathered on every rank in rank order (recv: size() * bytes).
  virtual void allgather(const void* send, void* recv, size_t bytes) = 0;
  // In place: rank r's part data[parts[r]] sent to every rank.
  virtual void allgather_parts(float* data, const std::vector<Range>& parts) = 0;
  // Rank r sends src[parts[o]] to each rank o and receives, from each rank r in rank order,
  // its part parts[rank()] into dst + r * parts[rank()].size().
  virtual void alltoall_parts(const float* src, const std::vector<Range>& parts, float* dst) = 0;
  // Rank r's part mine (parts[r].size() floats) into all[parts[r]] on rank 0 (all: root only).
  virtual void gather_parts(const float* mine, const std::vector<Range>& parts, float* all) = 0;
  // Element-wise sum over ranks, in place; exact only where at most one rank is nonzero.
  virtual void allreduce_sum(double* x, int n) = 0;
  virtual int allreduce_max(int x) = 0;
  virtual void send(const double& x, int to) = 0;
  virtual void recv(double& x, int from) = 0;

  // Bytes this rank has sent through the collectives above (user data, not MPI's envelopes).
  uint64_t bytes_sent() const { return bytes_sent_; }

 protected:
  uint64_t bytes_sent_ = 0;
};

// The job this process belongs to: MPI under mpirun (MPI_Init here, MPI_Finalize when the last
// reference goes), else a job of one. Once per process.
std::shared_ptr<Comm> make_comm();
std::shared_ptr<Comm> single_process_comm();
bool launched_by_mpirun();
// This process's rank as mpirun's environment gives it, before MPI_Init (0 outside mpirun).
int launch_rank();

// The split of a flat array of n floats into `ranks` contiguous parts on 16-float boundaries.
std::vector<Range> split_ranges(size_t n, int ranks);

}  // namespace alibi
