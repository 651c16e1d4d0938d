#include "dist/comm.h"

#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "core/error.h"

namespace alibi {
namespace {

class SingleComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_size() const override { return 1; }
  void allgather(const void* send, void* recv, size_t bytes) override {
    std::memmove(recv, send, bytes);
  }
  void allgather_parts(float*, const std::vector<Range>&) override {}
  void alltoall_parts(const float* src, const std::vector<Range>& parts, float* dst) override {
    std::memmove(dst, src + parts[0].begin, parts[0].size() * sizeof(float));
  }
  void gather_parts(const float* mine, const std::vector<Range>& parts, float* all) override {
    std::memmove(all + parts[0].begin, mine, parts[0].size() * sizeof(float));
  }
  void allreduce_sum(double*, int) override {}
  int allreduce_max(int x) override { return x; }
  void send(const double&, int) override { ALIBI_CHECK(false, "send in a job of one"); }
  void recv(double&, int) override { ALIBI_CHECK(false, "recv in a job of one"); }
};

// Counts and displacements in floats, as MPI wants them (int: parts stay under 2^31 floats).
std::vector<int> counts_of(const std::vector<Range>& parts) {
  std::vector<int> c;
  for (const Range& r : parts) c.push_back(int(r.size()));
  return c;
}
std::vector<int> displs_of(const std::vector<Range>& parts) {
  std::vector<int> d;
  for (const Range& r : parts) d.push_back(int(r.begin));
  return d;
}

class MpiComm final : public Comm {
 public:
  MpiComm() {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
  }
  // On an error the rank leaves without MPI_Finalize (which would wait for ranks that may never
  // get there): mpirun then ends the job with this rank's exit code.
  ~MpiComm() override {
    if (std::uncaught_exceptions() == 0) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_size_; }

  void allgather(const void* send, void* recv, size_t bytes) override {
    MPI_Allgather(send, int(bytes), MPI_BYTE, recv, int(bytes), MPI_BYTE, MPI_COMM_WORLD);
    bytes_sent_ += bytes * uint64_t(size_ - 1);
  }
  void allgather_parts(float* data, const std::vector<Range>& parts) override {
    const std::vector<int> c = counts_of(parts), d = displs_of(parts);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, c.data(), d.data(), MPI_FLOAT,
                   MPI_COMM_WORLD);
    bytes_sent_ += parts[size_t(rank_)].size() * sizeof(float) * uint64_t(size_ - 1);
  }
  void alltoall_parts(const float* src, const std::vector<Range>& parts, float* dst) override {
    const std::vector<int> sc = counts_of(parts), sd = displs_of(parts);
    const int mine = int(parts[size_t(rank_)].size());
    std::vector<int> rc(static_cast<size_t>(size_), mine), rd(static_cast<size_t>(size_));
    for (int r = 0; r < size_; ++r) rd[size_t(r)] = r * mine;
    MPI_Alltoallv(src, sc.data(), sd.data(), MPI_FLOAT, dst, rc.data(), rd.data(), MPI_FLOAT,
                  MPI_COMM_WORLD);
    for (int o = 0; o < size_; ++o)
      if (o != rank_) bytes_sent_ += parts[size_t(o)].size() * sizeof(float);
  }
  void gather_parts(const float* mine, const std::vector<Range>& parts, float* all) override {
    const std::vector<int> c = counts_of(parts), d = displs_of(parts);
    MPI_Gatherv(mine, c[size_t(rank_)], MPI_FLOAT, all, c.data(), d.data(), MPI_FLOAT, 0,
                MPI_COMM_WORLD);
    if (rank_ != 0) bytes_sent_ += parts[size_t(rank_)].size() * sizeof(float);
  }
  void allreduce_sum(double* x, int n) override {
    MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    bytes_sent_ += uint64_t(n) * sizeof(double);
  }
  int allreduce_max(int x) override {
    int y = 0;
    MPI_Allreduce(&x, &y, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    bytes_sent_ += sizeof(int);
    return y;
  }
  void send(const double& x, int to) override {
    MPI_Send(&x, 1, MPI_DOUBLE, to, 0, MPI_COMM_WORLD);
    bytes_sent_ += sizeof(double);
  }
  void recv(double& x, int from) override {
    MPI_Recv(&x, 1, MPI_DOUBLE, from, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  }

 private:
  int rank_ = 0, size_ = 1, local_size_ = 1;
};

}  // namespace

bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr;
}

int launch_rank() {
  const char* r = std::getenv("OMPI_COMM_WORLD_RANK");
  if (!r) r = std::getenv("PMIX_RANK");
  return r ? std::atoi(r) : 0;
}

std::shared_ptr<Comm> make_comm() {
  if (launched_by_mpirun()) return std::make_shared<MpiComm>();
  return single_process_comm();
}

std::shared_ptr<Comm> single_process_comm() { return std::make_shared<SingleComm>(); }

std::vector<Range> split_ranges(size_t n, int ranks) {
  std::vector<Range> parts(static_cast<size_t>(ranks));
  for (int r = 0; r < ranks; ++r) {
    auto edge = [&](int k) { return std::min(n, (n * size_t(k) / size_t(ranks)) / 16 * 16); };
    parts[size_t(r)] = {edge(r), r + 1 == ranks ? n : edge(r + 1)};
  }
  return parts;
}

}  // namespace alibi
