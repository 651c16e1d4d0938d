// fp32 weights packed once for inference (kernels/cpu/ops_cpu.h, "packed_cpu.cpp"): oneDNN's
// matmul primitive reads its weights fastest in a blocked layout of its own choosing (on
// AVX-512, its brgemm kernels). sgemm packs B inside every call, and at the few rows of a decoding
// step that packing is most of the work: with the weights packed at load the products of 1-80
// rows ran at 1.2-4.3x sgemm's rate (docs/serve.md). The layout is oneDNN's, asked for once per
// matrix shape and used only where the primitive for every row count takes the same one.
// In bf16 precision the weights are rounded to bf16 as they are packed, and each call rounds its
// rows to bf16 (as gemm's bf16 product does on every call, weights included): the primitive then
// multiplies bf16 by bf16 into fp32, on AMX tiles where the CPU has them (docs/serve.md).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <dnnl.hpp>
#include <map>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/simd.h"  // first: its pragmas must precede <immintrin.h>

namespace alibi::cpu {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

const dnnl::engine& engine() {
  static const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// The element type of the packed weights and of the rows multiplied by them: bf16 in bf16
// precision, fp32 otherwise. The results and the bias are fp32 either way.
dt element(MatmulPrecision p) { return p == MatmulPrecision::bf16 ? dt::bf16 : dt::f32; }

// W (OC, IC) row-major is the primitive's (K, N) = (IC, OC) weights, transposed (tag ba).
dnnl::memory::desc rows_md(int64_t M, int64_t IC, dt t = dt::f32) { return {{M, IC}, t, tag::ab}; }

dnnl::matmul::primitive_desc primitive_desc(int64_t M, int64_t IC, int64_t OC,
                                            const dnnl::memory::desc& w, bool bias) {
  const dnnl::memory::desc b =
      bias ? dnnl::memory::desc({1, OC}, dt::f32, tag::ab) : dnnl::memory::desc();
  return {dnnl::matmul::desc(rows_md(M, IC, w.data_type()), w, b, rows_md(M, OC)), engine()};
}

// The layout the primitive picks for (OC, IC) weights of element type t, or a zero desc where it
// is not the same for every row count a step or a prompt may have (then the weights stay as they
// are); and whether it is fp32 BA16a64b, which row_by_blocks reads.
struct Layout {
  dnnl::memory::desc md;
  bool blocks64 = false;
};

const Layout& layout_of(int64_t OC, int64_t IC, dt t) {
  static std::mutex mu;
  static std::map<std::tuple<int64_t, int64_t, dt>, Layout> known;
  std::lock_guard lock(mu);
  const auto key = std::tuple{OC, IC, t};
  if (auto it = known.find(key); it != known.end()) return it->second;
  const dnnl::memory::desc any({IC, OC}, t, tag::any);
  Layout l{primitive_desc(16, IC, OC, any, true).weights_desc()};
  for (int64_t M : {1, 2, 3, 4, 7, 8, 17, 33, 64, 128, 512, 4096})
    if (primitive_desc(M, IC, OC, any, true).weights_desc() != l.md) l.md = {};
  l.blocks64 = l.md == dnnl::memory::desc({IC, OC}, dt::f32, tag::BA16a64b);
  return known.emplace(key, l).first->second;  // a std::map's elements stay where they are
}

// Per calling thread: the stream and one primitive per (rows, shape, bias, thread count) with
// its arguments, made on first use (tens of microseconds each) and kept; a call only points the
// arguments at its data. (oneDNN's execute still makes a few small allocations of its own per
// call, its argument maps, as its sgemm does; the heap does not grow.)
using Key = std::tuple<int64_t, int64_t, int64_t, bool, dt, int>;
struct Entry {
  dnnl::matmul prim;
  std::unordered_map<int, dnnl::memory> args;
};
struct State {
  dnnl::stream strm{engine()};
  std::map<Key, Entry> prims;
  std::vector<uint16_t> rows_bf16;  // bf16 precision's rows, rounded; grow-only
};

Entry make_entry(int64_t N, int64_t IC, int64_t OC, bool bias, dt t) {
  const dnnl::memory::desc layout = layout_of(OC, IC, t).md;
  Entry e;
  try {
    e.prim = dnnl::matmul(primitive_desc(N, IC, OC, layout, bias));
  } catch (const dnnl::error& err) {  // a row count past those layout_of checked
    ALIBI_CHECK(false, "oneDNN's matmul takes no packed ", OC, " x ", IC, " matrix at ", N,
                " rows: ", err.what());
  }
  auto arg = [&](int which, const dnnl::memory::desc& md) {
    e.args.emplace(which, dnnl::memory(md, engine(), DNNL_MEMORY_NONE));
  };
  arg(DNNL_ARG_SRC, rows_md(N, IC, t));
  arg(DNNL_ARG_WEIGHTS, layout);
  arg(DNNL_ARG_DST, rows_md(N, OC));
  if (bias) arg(DNNL_ARG_BIAS, {{1, OC}, dt::f32, tag::ab});
  return e;
}

// One row against a matrix in oneDNN's BA16a64b layout (its AVX-512 choice here): the matrix
// is blocks of 64 outputs, each block its IC (padded to 16) rows of 64 floats one after another.
// One row is a stream of the matrix's bytes, which this reads in order, one block per task;
// oneDNN's primitive read it 2-10% slower than sgemm's gemv where the matrix comes from memory
// (docs/serve.md). Each output is one thread's sum over IC in order: no dependence on threads.
void row_by_blocks(float* out, const float* x, const float* Wp, const float* b, int64_t IC,
                   int64_t OC) {
  const int64_t blocks = (OC + 63) / 64, rows = (IC + 15) / 16 * 16;
#pragma omp parallel for schedule(static)
  for (int64_t nb = 0; nb < blocks; ++nb) {
    const float* w = Wp + nb * rows * 64;
    float acc[64] = {};
#if defined(__AVX512F__)
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t k = 0; k < IC; ++k, w += 64) {
      const __m512 xk = _mm512_set1_ps(x[k]);
      a0 = _mm512_fmadd_ps(xk, _mm512_loadu_ps(w), a0);
      a1 = _mm512_fmadd_ps(xk, _mm512_loadu_ps(w + 16), a1);
      a2 = _mm512_fmadd_ps(xk, _mm512_loadu_ps(w + 32), a2);
      a3 = _mm512_fmadd_ps(xk, _mm512_loadu_ps(w + 48), a3);
    }
    _mm512_storeu_ps(acc, a0);
    _mm512_storeu_ps(acc + 16, a1);
    _mm512_storeu_ps(acc + 32, a2);
    _mm512_storeu_ps(acc + 48, a3);
#else
    for (int64_t k = 0; k < IC; ++k, w += 64)
      for (int j = 0; j < 64; ++j) acc[j] = std::fma(x[k], w[j], acc[j]);
#endif
    const int64_t n0 = nb * 64, n = std::min<int64_t>(64, OC - n0);
    for (int64_t j = 0; j < n; ++j) out[n0 + j] = b ? acc[j] + b[n0 + j] : acc[j];
  }
}

}  // namespace

size_t packed_bytes(int64_t OC, int64_t IC, MatmulPrecision p) {
  if (OC <= 0 || IC <= 0) return 0;
  return layout_of(OC, IC, element(p)).md.get_size();
}

WeightView pack_weight(void* dst, const float* W, int64_t OC, int64_t IC, MatmulPrecision p) {
  const dnnl::memory::desc layout = layout_of(OC, IC, element(p)).md;
  ALIBI_CHECK(layout.get_size() > 0, "no packed layout for a ", OC, " x ", IC, " matrix");
  dnnl::stream strm(engine());
  dnnl::memory src({{IC, OC}, dt::f32, tag::ba}, engine(), const_cast<float*>(W));
  dnnl::memory out(layout, engine(), dst);
  // On one thread: a team of threads made by the loading thread outlives the load, and `alibi
  // serve` steps on another thread. With more threads than CPUs, libgomp then spins at a
  // barrier 100 times instead of GOMP_SPINCOUNT before it sleeps, so every parallel region of a
  // step waited on a futex: a decoded token took 4x as long (docs/serve.md).
  struct OneThread {
    int was = omp_get_max_threads();
    OneThread() { omp_set_num_threads(1); }
    ~OneThread() { omp_set_num_threads(was); }
  } one;
  dnnl::reorder(src, out).execute(strm, src, out);  // to bf16: rounded to nearest even
  strm.wait();
  return WeightView::packed_as(dst,
                               p == MatmulPrecision::bf16 ? WeightType::bf16 : WeightType::fp32);
}

void linear_packed(float* out, const float* inp, WeightView Wp, const float* b, int64_t N,
                   int64_t IC, int64_t OC) {
  if (N <= 0) return;
  const bool bf16 = Wp.type == WeightType::bf16;
  const dt t = bf16 ? dt::bf16 : dt::f32;
  if (N == 1 && !bf16 && layout_of(OC, IC, t).blocks64)
    return row_by_blocks(out, inp, Wp.f32(), b, IC, OC);
  thread_local State st;
  const Key key{N, IC, OC, b != nullptr, t, omp_get_max_threads()};
  auto it = st.prims.find(key);
  if (it == st.prims.end())
    it = st.prims.emplace(key, make_entry(N, IC, OC, b != nullptr, t)).first;
  Entry& e = it->second;
  const void* rows = inp;
  if (bf16) {
    if (st.rows_bf16.size() < size_t(N * IC)) st.rows_bf16.resize(size_t(N * IC));
    to_bf16(st.rows_bf16.data(), inp, N, IC, IC);
    rows = st.rows_bf16.data();
  }
  // oneDNN takes non-const handles; a primitive never writes its inputs.
  e.args.at(DNNL_ARG_SRC).set_data_handle(const_cast<void*>(rows));
  e.args.at(DNNL_ARG_WEIGHTS).set_data_handle(const_cast<void*>(Wp.data));
  e.args.at(DNNL_ARG_DST).set_data_handle(out);
  if (b) e.args.at(DNNL_ARG_BIAS).set_data_handle(const_cast<float*>(b));
  dnnl_exec_arg_t args[4];
  int n = 0;
  for (const auto& [which, mem] : e.args) args[n++] = {which, mem.get()};
  ALIBI_CHECK(dnnl_primitive_execute(e.prim.get(), st.strm.get(), n, args) == dnnl_success,
              "oneDNN's matmul of ", N, " x ", IC, " by ", IC, " x ", OC);
  st.strm.wait();
}

}  // namespace alibi::cpu
